#!/usr/bin/env bash
# tests/unit/test_image_scripts.sh: the image scripts without a container engine (CI has none;
# tests/images/test_images.sh runs the images themselves). scripts/image-engine.sh with fake
# engines on PATH: the first usable of podman, buildah, docker wins, KD_IMAGE_ENGINE chooses,
# none usable is one line and exit 2 (so is scripts/images.sh). scripts/image-rootfs.sh on this
# build: each component's plugins and no others, nonroot 65532 and its home, no shell, every
# file in the manifest with its Debian package, the same base.tar twice; as root, the binaries
# run chrooted into the staged file system (--help; kd-node loads its runtime plugins there).
# Prints "ok NAME" / "not ok NAME" lines (tests/run-unit.sh counts them).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD="${BUILD:-build}"
export BUILD
status=0
ok() { echo "ok $1"; }
not_ok() {
	echo "not ok $1${2:+: $2}"
	status=1
}
verdict() { # verdict STATUS NAME [DETAIL]: ok NAME when STATUS is 0
	if [ "$1" -eq 0 ]; then ok "$2"; else not_ok "$2" "${3:-}"; fi
}
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT

# --- scripts/image-engine.sh -----------------------------------------------------------------
# fake_engine DIR NAME OK: NAME on DIR whose `info` succeeds (OK=1) or fails
fake_engine() {
	mkdir -p "$1"
	if [ "$3" = 1 ]; then
		printf '#!/bin/sh\nexit 0\n' >"$1/$2"
	else
		printf '#!/bin/sh\necho "cannot connect" >&2\nexit 1\n' >"$1/$2"
	fi
	chmod +x "$1/$2"
}
# engine DIR [VAR=VALUE...]: scripts/image-engine.sh with only DIR and the tools it needs on PATH
mkdir -p "$T/tools"
for t in bash timeout; do ln -s "$(command -v "$t")" "$T/tools/$t"; done
engine() {
	local dir="$1"
	shift
	env -i PATH="$dir:$T/tools" "$@" bash scripts/image-engine.sh >"$T/out" 2>"$T/err"
}
mkdir -p "$T/none"
engine "$T/none"
rc=$?
if [ "$rc" -eq 2 ] && [ ! -s "$T/out" ] && [ "$(wc -l <"$T/err")" -eq 1 ] &&
	grep -q 'tried podman: not installed; buildah: not installed; docker: not installed' "$T/err" &&
	grep -q 'apt-get install podman (or buildah)' "$T/err"; then
	ok "no engine: one line naming the three and how to install one, exit 2"
else
	not_ok "no engine: one line naming the three and how to install one, exit 2" \
		"exit $rc: $(cat "$T/err")"
fi
fake_engine "$T/all" podman 1
fake_engine "$T/all" buildah 1
fake_engine "$T/all" docker 1
engine "$T/all" && [ "$(cat "$T/out")" = podman ]
verdict $? "podman first" "$(cat "$T/out" "$T/err")"
fake_engine "$T/nopodman" podman 0
fake_engine "$T/nopodman" buildah 1
engine "$T/nopodman" && [ "$(cat "$T/out")" = buildah ]
verdict $? "buildah when podman info fails" "$(cat "$T/out" "$T/err")"
fake_engine "$T/deaddocker" docker 0
engine "$T/deaddocker"
rc=$?
[ "$rc" -eq 2 ] && grep -q 'docker: no daemon answers' "$T/err"
verdict $? "docker without a daemon is not usable" "exit $rc: $(cat "$T/err")"
engine "$T/all" KD_IMAGE_ENGINE=docker && [ "$(cat "$T/out")" = docker ]
verdict $? "KD_IMAGE_ENGINE chooses" "$(cat "$T/out" "$T/err")"
engine "$T/all" KD_IMAGE_ENGINE=rkt
rc=$?
[ "$rc" -eq 2 ] && grep -q 'KD_IMAGE_ENGINE=rkt' "$T/err"
verdict $? "KD_IMAGE_ENGINE unknown: exit 2" "exit $rc: $(cat "$T/err")"
for t in cat dirname; do ln -s "$(command -v "$t")" "$T/tools/$t"; done
env -i PATH="$T/none:$T/tools" BUILD="$BUILD" bash scripts/images.sh >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" -eq 2 ] && grep -q 'no usable container engine' "$T/err" && [ ! -s "$T/out" ]
verdict $? "scripts/images.sh without an engine: exit 2" "exit $rc: $(cat "$T/out" "$T/err")"

# --- scripts/image-rootfs.sh -----------------------------------------------------------------
scripts/image-rootfs.sh kd-dashboard "$T/x" >/dev/null 2>&1
rc=$?
[ "$rc" -eq 2 ]
verdict $? "image-rootfs: unknown component: exit 2" "exit $rc"
BUILD="$T/none" scripts/image-rootfs.sh kd-node "$T/x" >"$T/out" 2>&1
rc=$?
[ "$rc" -eq 1 ] && grep -q 'make bins first' "$T/out"
verdict $? "image-rootfs: no binary: exit 1" "exit $rc: $(cat "$T/out")"

stage() { # stage COMP DIR
	scripts/image-rootfs.sh "$1" "$2" >"$T/out" 2>&1 && [ -f "$2/base.tar" ]
	verdict $? "image-rootfs stages $1" "$(tail -3 "$T/out")"
}
stage kd-autoscaler "$T/as"
stage kd-autoscaler "$T/as2"
stage kd-node "$T/node"
stage kd-gateway "$T/gw"
plugins() { find "$1/plugins" -type f -printf '%f\n' | sort | paste -sd' ' -; }
[ "$(plugins "$T/as")" = "kd-decider-kpa.so kd-scheduler.so kd-workload.so" ]
verdict $? "kd-autoscaler: the decider, scheduler and workload plugins" "$(plugins "$T/as")"
[ "$(plugins "$T/node")" = "kd-runtime-kubelet.so kd-runtime-process.so kd-runtime-sim.so" ]
verdict $? "kd-node: the runtime plugins" "$(plugins "$T/node")"
[ -z "$(plugins "$T/gw")" ]
verdict $? "kd-gateway: no plugin" "$(plugins "$T/gw")"
cmp -s "$T/as/base.tar" "$T/as2/base.tar"
verdict $? "base.tar is the same twice"

tar -tvf "$T/node/base.tar" >"$T/list"
grep -qE '^drwxr-xr-x 65532/65532 .* \./home/nonroot/$' "$T/list" &&
	grep -qE '^drwxrwxrwt 0/0 .* \./tmp/$' "$T/list"
verdict $? "nonroot owns its home; /tmp" "$(grep -E 'home|tmp' "$T/list")"
tar -xOf "$T/node/base.tar" ./etc/passwd >"$T/passwd"
grep -qx 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' "$T/passwd"
verdict $? "/etc/passwd has nonroot 65532" "$(cat "$T/passwd")"
! grep -qE '\./(usr/)?bin/(sh|bash|dash)( |$)' "$T/list"
verdict $? "no shell"
grep -q '\./etc/ssl/certs/ca-certificates.crt$' "$T/list"
verdict $? "CA certificates"
tar -xOf "$T/node/base.tar" ./usr/share/kubedirect/image-manifest >"$T/manifest"
if grep -qE $'/libc\\.so\\.6\tlibc6:' "$T/manifest" &&
	grep -q $'libwebsockets-evlib_uv.so\tlibwebsockets-evlib-uv:' "$T/manifest" &&
	! grep -qv -e '^#' -e $'\t[a-z0-9][-+.a-z0-9]*\\(:[a-z0-9]*\\)\\{0,1\\}\t[0-9]' "$T/manifest"; then
	ok "the manifest names each file's package and version"
else
	not_ok "the manifest names each file's package and version" "$(cat "$T/manifest")"
fi

# As root: the binaries run in the staged file system, which has nothing of this machine's.
# (Not for a sanitizer build: its runtime needs /proc.)
chrooted() { # chrooted DIR COMP: DIR/base.tar, the binary and plugins unpacked in $T/root-COMP
	local r="$T/root-$2"
	mkdir -p "$r/usr/bin" "$r/usr/lib/kubedirect" && tar -xf "$1/base.tar" -C "$r" &&
		cp "$1/$2" "$r/usr/bin/" && cp -r "$1/plugins" "$r/usr/lib/kubedirect/"
}
if [ "$(id -u)" -ne 0 ]; then
	ok "chrooted runs # skip: not root"
elif ldd "$BUILD/bin/kd-node" | grep -qE 'lib(asan|ubsan|tsan)'; then
	ok "chrooted runs # skip: a sanitizer build"
else
	for c in kd-autoscaler kd-node kd-gateway; do
		case "$c" in kd-autoscaler) d="$T/as" ;; kd-node) d="$T/node" ;; kd-gateway) d="$T/gw" ;; esac
		if chrooted "$d" "$c" && chroot --userspec=65532:65532 "$T/root-$c" "/usr/bin/$c" --help \
			>"$T/out" 2>&1 && grep -q "^Usage: $c " "$T/out"; then
			ok "$c --help chrooted into its file system"
		else
			not_ok "$c --help chrooted into its file system" "$(head -3 "$T/out")"
		fi
	done
	cat >"$T/root-kd-node/tmp/kubeconfig" <<'EOF'
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
EOF
	for r in runtime-sim runtime-process; do
		chroot --userspec=65532:65532 "$T/root-kd-node" /usr/bin/kd-node --kubeconfig=/tmp/kubeconfig \
			--runtime="$r" --runtime-config='{"nope":1}' >"$T/out" 2>&1
		rc=$?
		grep -q "plugins/kd-$r.so: config: unknown option \"nope\"" "$T/out"
		verdict $? "kd-node loads $r chrooted" "exit $rc: $(cat "$T/out")"
	done
fi
exit "$status"
