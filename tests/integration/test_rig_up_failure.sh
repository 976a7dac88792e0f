#!/usr/bin/env bash
# kd-test: disruptive
# Bad input to the rig gives a clear message and leaves nothing behind: unknown arguments, missing
# binaries (--no-build), an address range already routed on the machine, a component that
# crashes at startup (rig/up names it and its log, tears everything down, exits non-zero), and
# rig/build without Go, with too old a Go, or with a failing compile (log path printed).
. "$(dirname "$0")/lib.sh"

TMP="$(mktemp -d /tmp/kd-it-rigfail.XXXXXX)"
cleanup() {
	ip link del kdit0 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

assert_nothing_left() {
	expect_eq "$1: kd-* namespaces left" "" "$(ip netns list | awk '$1 ~ /^kd-/ {print $1}' | tr '\n' ' ')"
	expect_eq "$1: kd-* links left" "" "$(ip -o link show | awk -F': ' '$2 ~ /^kd-/ {print $2}' | tr '\n' ' ')"
	expect_eq "$1: /etc/netns/kd-* left" "" "$(ls -d /etc/netns/kd-* 2>/dev/null | tr '\n' ' ')"
	expect_eq "$1: rig processes left" "" "$(rig_strays "$TMP")"
}
# expect_fail DESCRIPTION PATTERN CMD...: CMD exits non-zero and its output matches PATTERN.
expect_fail() {
	local d="$1" pat="$2" out rc=0
	shift 2
	out="$("$@" 2>&1)" || rc=$?
	((rc != 0)) || die "$d: expected failure, got exit 0: $out"
	[[ "$out" =~ $pat ]] || die "$d: output does not match /$pat/: $out"
	log "ok: $d (exit $rc)"
	LAST_OUT="$out"
}

"$REPO/rig/down" --quiet
expect_fail "rig/up rejects an unknown argument" "unknown argument '--bogus'" "$REPO/rig/up" --bogus
expect_fail "rig/build rejects an unknown binary" "unknown binary 'nope'" "$REPO/rig/build" nope

# missing binaries with --no-build: clear message, nothing created
mkdir -p "$TMP/empty-cache"
expect_fail "rig/up --no-build with an empty cache" "binaries missing from $TMP/empty-cache" \
	env KD_CACHE="$TMP/empty-cache" KD_RIG_DIR="$TMP/rig" "$REPO/rig/up" --no-build
assert_nothing_left "missing binaries"

# the rig's address range is already routed on this machine
ip link add kdit0 type veth peer name kdit1
ip link set kdit1 up
ip addr add 10.88.255.254/16 dev kdit0
ip link set kdit0 up
expect_fail "rig/up refuses an address range in use" "10\.88\.0\.0/16.*already routed" "$REPO/rig/up" --no-build
ip link del kdit0
assert_nothing_left "address in use"

# kube-scheduler crashes at startup: a cache whose kube-scheduler is a failing script
mkdir -p "$TMP/cache/bin/$KD_K8S_KEY"
for b in "$KD_K8S_BIN"/*; do ln -s "$b" "$TMP/cache/bin/$KD_K8S_KEY/"; done
ln -s "$KD_KN_BIN" "$TMP/cache/bin/$KD_KN_KEY"
[[ -d "$KD_CACHE/bin/$KD_ETCD_KEY" ]] && ln -s "$KD_CACHE/bin/$KD_ETCD_KEY" "$TMP/cache/bin/$KD_ETCD_KEY"
rm "$TMP/cache/bin/$KD_K8S_KEY/kube-scheduler"
printf '#!/bin/sh\necho "kd-it: simulated scheduler crash" >&2\nexit 3\n' >"$TMP/cache/bin/$KD_K8S_KEY/kube-scheduler"
chmod +x "$TMP/cache/bin/$KD_K8S_KEY/kube-scheduler"
expect_fail "rig/up names the crashing component" "error: kube-scheduler: process exited (immediately|during startup)" \
	env KD_CACHE="$TMP/cache" KD_RIG_DIR="$TMP/rig" "$REPO/rig/up" --no-build --timeout 60
[[ "$LAST_OUT" == *"log: $TMP/rig/runs/"*"/kube-scheduler.log"* ]] || die "failure message lacks the log path: $LAST_OUT"
log "ok: failure message names the log file"
grep -q "simulated scheduler crash" "$TMP"/rig/runs/current/kube-scheduler.log || die "scheduler log not kept"
log "ok: the component log is kept"
assert_nothing_left "crashed component"

# rig/build: no Go, too old a Go, and a failing compile each give a clear message
expect_fail "rig/build without Go" "no Go >= 1.25 found" env KD_GO="$TMP/none/go" KD_GO_ROOT="$TMP/none" KD_GO_CANDIDATES="" PATH=/usr/sbin:/usr/bin:/sbin:/bin KD_CACHE="$TMP/bc" "$REPO/rig/build" kubectl
mkdir -p "$TMP/fakego"
printf 'module k8s.io/kubernetes\n\ngo 1.25.0\n\nrequire (\n\tk8s.io/api v0.0.0\n)\n' >"$TMP/fakego/k8s.mod"
cat >"$TMP/fakego/go" <<FAKE
#!/bin/sh
# fake go: version \$FAKE_GOVERSION, module download/tidy succeed, every build fails
case "\$1 \$2" in
"env GOVERSION") echo "\${FAKE_GOVERSION:-go1.26.8}" ;;
"mod download") printf '{\n\t"GoMod": "%s",\n}\n' "$TMP/fakego/k8s.mod" ;;
"mod tidy") exit 0 ;;
build*) echo "fake compile error" >&2; exit 1 ;;
*) exit 1 ;;
esac
FAKE
chmod +x "$TMP/fakego/go"
expect_fail "rig/build with Go 1.19" "no Go >= 1\.25 found \(too old: $TMP/fakego/go go1\.19\.8\)" \
	env FAKE_GOVERSION=go1.19.8 KD_GO="$TMP/fakego/go" KD_GO_ROOT="$TMP/none" KD_GO_CANDIDATES="" \
	PATH=/usr/sbin:/usr/bin:/sbin:/bin KD_CACHE="$TMP/bc" "$REPO/rig/build" kubectl
expect_fail "rig/build reports a failed compile with its log" \
	"build of kube-scheduler failed; see $TMP/bc/logs/k8s-$KD_K8S_VERSION-kube-scheduler.log" \
	env KD_GO="$TMP/fakego/go" KD_CACHE="$TMP/bc" "$REPO/rig/build" kube-scheduler
grep -q "fake compile error" "$TMP/bc/logs/k8s-$KD_K8S_VERSION-kube-scheduler.log" || die "build log lacks the compiler output"
log "ok: the build log holds the compiler output"
[[ ! -e "$TMP/bc/bin/k8s-$KD_K8S_VERSION/kube-scheduler" ]] || die "a failed build left a binary in the cache"
log "ok: no binary cached after a failed build"
grep -q "k8s.io/api => k8s.io/api $KD_K8S_STAGING_VERSION" "$TMP/bc/src/k8s-$KD_K8S_VERSION/go.mod" ||
	die "wrapper go.mod lacks the staging replace"
log "ok: wrapper go.mod replaces staging modules at $KD_K8S_STAGING_VERSION"
