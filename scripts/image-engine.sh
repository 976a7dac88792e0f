#!/usr/bin/env bash
# scripts/image-engine.sh: prints the container engine that `make images` and tests/images use:
# $KD_IMAGE_ENGINE if set (podman, buildah or docker), else the first usable of podman, buildah
# (`podman info` / `buildah info` answer) and docker (its daemon answers `docker info`). When none
# is usable: one line on stderr saying which were tried and why not, and how to install one from
# Debian; exit 2.
set -uo pipefail
usable() { # usable ENGINE: 0 if it can build; else the reason on stdout
	command -v "$1" >/dev/null || {
		echo "not installed"
		return 1
	}
	local err
	case "$1" in
	podman | buildah) err="$(timeout 30 "$1" info 2>&1 >/dev/null)" ;;
	docker) err="$(timeout 10 docker info --format '{{.ServerVersion}}' 2>&1 >/dev/null)" ;;
	esac || {
		if [ "$1" = docker ]; then echo "no daemon answers"; else echo "'$1 info' failed: ${err%%$'\n'*}"; fi
		return 1
	}
}
engines=(podman buildah docker)
if [ -n "${KD_IMAGE_ENGINE:-}" ]; then
	case "$KD_IMAGE_ENGINE" in
	podman | buildah | docker) engines=("$KD_IMAGE_ENGINE") ;;
	*)
		echo "images: KD_IMAGE_ENGINE=$KD_IMAGE_ENGINE: not podman, buildah or docker" >&2
		exit 2
		;;
	esac
fi
tried=()
for e in "${engines[@]}"; do
	if why="$(usable "$e")"; then
		echo "$e"
		exit 0
	fi
	tried+=("$e: $why")
done
msg="$(printf '%s; ' "${tried[@]}")"
echo "images: no usable container engine (tried ${msg%; }); install one from Debian:" \
	"apt-get install podman (or buildah)" >&2
exit 2
