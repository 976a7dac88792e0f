# shellcheck shell=bash
# Helpers for tests/integration/test_*.sh (sourced). Every wait is bounded in time.
# A test asserts with `check`/`expect_eq`/`wait_for`; any failed assertion exits 1 at once.
set -euo pipefail
IT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$IT_DIR/../.." && pwd)"
# shellcheck source=rig/lib.sh
. "$REPO/rig/lib.sh"
export KUBECONFIG="$KD_KUBECONFIG"
KUBECTL="$KD_K8S_BIN/kubectl"

kc() { "$KUBECTL" --request-timeout=20s "$@"; }
log() { printf '  %s\n' "$*"; }
die() {
	printf '  FAIL: %s\n' "$*" >&2
	exit 1
}
# check DESCRIPTION CMD...: run CMD, fail the test if it fails.
check() {
	local d="$1"
	shift
	if "$@"; then log "ok: $d"; else die "$d"; fi
}
# expect_eq DESCRIPTION WANT GOT
expect_eq() {
	if [[ "$2" == "$3" ]]; then log "ok: $1 ($3)"; else die "$1: want '$2', got '$3'"; fi
}
# wait_for DESCRIPTION TIMEOUT_S CMD...: poll CMD every 0.5 s until it succeeds.
wait_for() {
	local d="$1" t="$2" t0=$SECONDS
	shift 2
	until "$@" >/dev/null 2>&1; do
		((SECONDS - t0 < t)) || die "timed out after ${t}s waiting for: $d"
		sleep 0.5
	done
	log "ok: $d ($((SECONDS - t0))s)"
}
# it_namespace PREFIX: create a fresh namespace in $IT_NS, deleted when the test exits.
# Call it directly (not in $(...): the EXIT trap must belong to the test's shell).
it_namespace() {
	IT_NS="$1-$(date +%s)-$RANDOM"
	kc create namespace "$IT_NS" >/dev/null
	trap 'kc delete namespace "$IT_NS" --wait=false >/dev/null 2>&1 || true' EXIT
}

# rig_strays [EXTRA_DIR]: print processes that belong to a rig: running a rig binary (or etcd) and
# either outside the root netns or referring to $KD_RIG_DIR / the etcd data dir in their command
# line or environment. Other people's clusters on this machine (root netns, own paths) are ignored.
rig_strays() {
	local extra="${1:-}" root_ns e pid exe ns args
	root_ns="$(readlink /proc/self/ns/net)" # the test runs in the root netns
	for e in /proc/[0-9]*/exe; do
		pid="${e#/proc/}"
		pid="${pid%/exe}"
		exe="$(readlink "$e" 2>/dev/null || true)"
		[[ "$exe" == "$KD_CACHE"/bin/* || "$exe" == "$(kd_etcd_bin)" || (-n "$extra" && "$exe" == "$extra"/*) ]] || continue
		ns="$(readlink "/proc/$pid/ns/net" 2>/dev/null || true)"
		args="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null; tr '\0' ' ' <"/proc/$pid/environ" 2>/dev/null)" || true
		if [[ "$ns" != "$root_ns" || "$args" == *"$KD_RIG_DIR"* || "$args" == *"$KD_ETCD_DATA"* ||
			(-n "$extra" && "$args" == *"$extra"*) ]]; then
			printf '%s %s; ' "$pid" "$exe"
		fi
	done
	return 0
}
