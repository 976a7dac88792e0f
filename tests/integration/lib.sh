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
# it_namespace PREFIX: create a fresh namespace, deleted when the test exits.
it_namespace() {
	IT_NS="$1-$(date +%s)-$RANDOM"
	kc create namespace "$IT_NS" >/dev/null
	trap 'kc delete namespace "$IT_NS" --wait=false >/dev/null 2>&1 || true' EXIT
	echo "$IT_NS"
}
