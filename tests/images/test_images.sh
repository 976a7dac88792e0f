#!/usr/bin/env bash
# tests/images/test_images.sh: `make test-images` (not part of test-all: images are not needed by
# the rig). Builds the four images (scripts/images.sh) and runs each through the engine
# (scripts/image-engine.sh: podman, buildah or docker), without a network: --help and --version
# (every shared library resolves in the image; the version is the tag), the image's user 65532
# and no shell; kd-autoscaler loads its decider, workload and scheduler plugins from
# /usr/lib/kubedirect/plugins and opens its status channel (libwebsockets with its libuv event
# library) before it stops on a port taken; kd-node loads each runtime plugin, whose own option
# table then refuses a key; kd-activator serves. Prints "ok NAME" / "not ok NAME" lines and
# "images: N passed, N failed"; skips (exit 0) when no engine is usable.
# KD_IMAGE_RUN_ARGS: extra options of `podman run` / `docker run` / `buildah run`. Without it, a
# host where the engine cannot start containers with its defaults (no CAP_SYS_RESOURCE for its
# rlimits, crun and hybrid cgroups) is retried with lower rlimits and runc, which is said.
set -u
cd "$(dirname "$0")/../.." || exit 1
export BUILD="${BUILD:-build}"
passed=0 failed=0
ok() {
	echo "ok $1"
	passed=$((passed + 1))
}
not_ok() {
	echo "not ok $1${2:+: $2}"
	failed=$((failed + 1))
}
finish() {
	echo "images: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit
}
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT

if ! engine="$(scripts/image-engine.sh 2>"$T/why")"; then
	echo "images: skipped: $(cat "$T/why")"
	exit 0
fi
version="$(cat images/VERSION)"
comps=(kd-autoscaler kd-node kd-activator kd-gateway)
echo "images: engine $engine"

if scripts/images.sh "${comps[@]}" >"$T/build" 2>&1; then
	ok "scripts/images.sh builds the four images"
	grep -E '^ +localhost/' "$T/build"
else
	not_ok "scripts/images.sh builds the four images" "$(tail -5 "$T/build")"
	finish
fi

# A kubeconfig whose API Server nobody serves: the components get past their configuration.
cat >"$T/kubeconfig" <<'EOF'
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
EOF
chmod 0644 "$T/kubeconfig"

# run COMP ARGS...: COMP's image with ARGS, output in $T/out; returns the container's status.
# RUN_ARGS (an array) are the extra options; ENTRY replaces the entry point when set.
read -ra RUN_ARGS <<<"${KD_IMAGE_RUN_ARGS:-}"
ENTRY=
run() {
	local comp="$1" img="localhost/kubedirect/$1:$version" rc c
	shift
	local vol=(-v "$T/kubeconfig:/etc/kubeconfig:ro")
	case "$engine" in
	podman | docker)
		timeout 120 "$engine" run --rm --network=none "${vol[@]}" "${RUN_ARGS[@]}" \
			${ENTRY:+--entrypoint="$ENTRY"} "$img" "$@" >"$T/out" 2>&1
		rc=$?
		;;
	buildah)
		c="$(buildah from -q "$img")" || return 125
		timeout 120 buildah run --network=none "${vol[@]}" "${RUN_ARGS[@]}" "$c" -- \
			"${ENTRY:-/usr/bin/$comp}" "$@" >"$T/out" 2>&1
		rc=$?
		buildah rm "$c" >/dev/null
		;;
	esac
	return "$rc"
}
# The engine failed to start the container (not the program in it failing).
engine_failed() { # engine_failed STATUS
	case "$engine" in
	podman | docker) [ "$1" -eq 125 ] || [ "$1" -eq 126 ] ;;
	buildah) [ "$1" -ne 0 ] && grep -q 'error running container' "$T/out" ;;
	esac && grep -qiE 'OCI|runtime|crun|runc|rlimit|cgroup' "$T/out"
}

# Can this host start a container at all? Retry with lower rlimits and runc when not.
run kd-gateway --version
rc=$?
if [ -z "${KD_IMAGE_RUN_ARGS:-}" ] && engine_failed "$rc"; then
	first="$(head -1 "$T/out")"
	limits=(--ulimit=nofile=1024:1024 --ulimit=nproc=4096:4096)
	case "$engine" in
	podman) tries=("${limits[*]}" "--runtime=runc ${limits[*]}") ;;
	docker) tries=("${limits[*]}") ;;
	buildah) tries=("--runtime=runc") ;;
	esac
	for t in "${tries[@]}"; do
		read -ra RUN_ARGS <<<"$t"
		if [[ "$t" == *runc* ]] && ! command -v runc >/dev/null; then continue; fi
		run kd-gateway --version
		rc=$?
		engine_failed "$rc" || break
	done
	if engine_failed "$rc"; then
		not_ok "$engine starts a container here" "$first (set KD_IMAGE_RUN_ARGS)"
		finish
	fi
	echo "images: note: $engine starts no container here with its defaults ($first);" \
		"running with: ${RUN_ARGS[*]} (KD_IMAGE_RUN_ARGS to choose)"
fi

for c in "${comps[@]}"; do
	if run "$c" --help && grep -q "^Usage: $c " "$T/out"; then
		ok "$c --help in its image (its shared libraries resolve)"
	else
		not_ok "$c --help in its image (its shared libraries resolve)" "$(head -3 "$T/out")"
	fi
	if run "$c" --version && grep -q "^$c $version " "$T/out"; then
		ok "$c --version is the tag $version"
	else
		not_ok "$c --version is the tag $version" "$(head -3 "$T/out")"
	fi
	case "$engine" in
	buildah) user="$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' \
		"localhost/kubedirect/$c:$version")" ;;
	*) user="$("$engine" image inspect --format '{{.Config.User}}' \
		"localhost/kubedirect/$c:$version")" ;;
	esac
	if [ "$user" = 65532:65532 ]; then
		ok "$c runs as 65532:65532"
	else
		not_ok "$c runs as 65532:65532" "user \"$user\""
	fi
	ENTRY=/bin/sh
	if run "$c" -c true; then
		not_ok "$c image has no shell" "/bin/sh ran"
	elif grep -q '/bin/sh' "$T/out"; then
		ok "$c image has no shell"
	else
		not_ok "$c image has no shell" "$(head -3 "$T/out")"
	fi
	ENTRY=
done

# kd-autoscaler: plugins, then its status channel, then the stats port is the one just taken.
run kd-autoscaler --kubeconfig=/etc/kubeconfig --status-port=19471 --stats-port=19471 \
	--stats-bind=0.0.0.0
rc=$?
missing=()
for p in decider-kpa workload scheduler; do
	grep -q "plugin $p loaded from /usr/lib/kubedirect/plugins/kd-$p.so" "$T/out" ||
		missing+=("$p")
done
if [ "$rc" -eq 1 ] && [ ${#missing[@]} -eq 0 ]; then
	ok "kd-autoscaler loads its three plugins from /usr/lib/kubedirect/plugins"
else
	not_ok "kd-autoscaler loads its three plugins from /usr/lib/kubedirect/plugins" \
		"exit $rc, missing ${missing[*]}: $(tail -3 "$T/out")"
fi
if grep -q 'status channel on 0.0.0.0:19471' "$T/out" && grep -q 'Address already in use' "$T/out"; then
	ok "kd-autoscaler opens its status channel (libwebsockets' libuv loop) in its image"
else
	not_ok "kd-autoscaler opens its status channel (libwebsockets' libuv loop) in its image" \
		"$(tail -3 "$T/out")"
fi

# kd-node: each runtime plugin loads; its option table refuses an unknown key (exit 1).
for r in runtime-sim runtime-process; do
	run kd-node --kubeconfig=/etc/kubeconfig --runtime="$r" --runtime-config='{"nope":1}'
	rc=$?
	if [ "$rc" -eq 1 ] && grep -q "kd-$r.so: config: unknown option \"nope\" for plugin $r" "$T/out"; then
		ok "kd-node loads $r from its image"
	else
		not_ok "kd-node loads $r from its image" "exit $rc: $(tail -3 "$T/out")"
	fi
done

# kd-activator: serves, then stops on its status port being its admin port.
run kd-activator --kubeconfig=/etc/kubeconfig --status-port=19472 --admin-port=19472
rc=$?
if [ "$rc" -eq 1 ] && grep -q 'serving requests on 0.0.0.0:8012' "$T/out"; then
	ok "kd-activator serves in its image"
else
	not_ok "kd-activator serves in its image" "exit $rc: $(tail -3 "$T/out")"
fi
finish
