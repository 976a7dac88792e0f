#!/usr/bin/env bash
# scripts/images.sh [COMPONENT...]: `make images`: builds localhost/kubedirect/COMPONENT:VERSION
# (VERSION: images/VERSION) for each component (default all four) from images/COMPONENT/
# Containerfile and this machine's build (BUILD, default build): scripts/image-rootfs.sh stages
# the context in BUILD/images/COMPONENT, then the engine scripts/image-engine.sh picks builds it
# (podman build, buildah bud or docker build). Prints each image's size. Exit 2 when no engine
# is usable (scripts/image-engine.sh says why), 1 when a build fails.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${BUILD:-build}"
export BUILD
version="$(cat images/VERSION)"
comps=("$@")
[ ${#comps[@]} -gt 0 ] || comps=(kd-autoscaler kd-node kd-activator kd-gateway)
for c in "${comps[@]}"; do
	[ -f "images/$c/Containerfile" ] || {
		echo "images: no images/$c/Containerfile" >&2
		exit 2
	}
done
engine="$(scripts/image-engine.sh)" || exit 2
echo "images: engine $engine, version $version"
for c in "${comps[@]}"; do
	ctx="$BUILD/images/$c"
	scripts/image-rootfs.sh "$c" "$ctx"
	tag="localhost/kubedirect/$c:$version"
	args=(-f "images/$c/Containerfile" --build-arg "VERSION=$version" -t "$tag" "$ctx")
	case "$engine" in
	podman) podman build -q "${args[@]}" >/dev/null ;;
	buildah) buildah bud -q --layers "${args[@]}" >/dev/null ;;
	docker) docker build -q "${args[@]}" >/dev/null ;;
	esac
	echo "images: built $tag"
done
echo "images: sizes"
for c in "${comps[@]}"; do
	tag="localhost/kubedirect/$c:$version"
	case "$engine" in
	podman) podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$tag" ;;
	buildah) buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$tag" ;;
	docker) docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$tag" ;;
	esac | sed -e 's/^ *//' -e 's/  */ /g' -e 's/^/  /'
done
