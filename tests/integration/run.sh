#!/usr/bin/env bash
# Integration tests (make test-integration): bring the rig up if needed, run every
# tests/integration/test_*.sh as its own process (non-disruptive ones first, then those marked
# "# kd-test: disruptive" that stop/restart the rig), print "N passed, N failed".
# Clean state afterwards: tests delete their namespaces; if this script started the rig it stops
# it, if the rig was already up it is left up (restarted if a disruptive test took it down).
# Env: BUILD (our C build dir, exported as KD_BUILD_DIR), KD_IT_TIMEOUT (per test, default 600 s),
# KD_IT_FILTER (regex on test file names).
set -euo pipefail
IT_DIR="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$IT_DIR/../.." && pwd)"
export KD_BUILD_DIR="$REPO/${BUILD:-build}"
TIMEOUT="${KD_IT_TIMEOUT:-600}"
[[ $EUID -eq 0 ]] || { echo "integration tests must run as root (the rig uses network namespaces)" >&2; exit 1; }

# Harness programs (tests/harness/*.c) are used by some integration tests; `make test-integration`
# only builds `all`, so build them here (make is incremental).
harness=()
for h in "$REPO"/tests/harness/*.c; do
	[[ -e "$h" ]] && harness+=("${BUILD:-build}/tests/harness/$(basename "$h" .c)")
done
if ((${#harness[@]})); then
	make -s -C "$REPO" -j2 BUILD="${BUILD:-build}" "${harness[@]}" || { echo "building harness programs failed" >&2; exit 1; }
fi

. "$REPO/rig/lib.sh"
for c in try-kd-autoscaler try-kd-activator try-kd-node; do
	if [[ -f "$KD_PIDDIR/$c.pid" ]] && kill -0 "$(<"$KD_PIDDIR/$c.pid")" 2>/dev/null; then
		echo "integration: rig/kd-start's components run (${c#try-}); stop them with rig/kd-stop first:" \
			"the tests start their own" >&2
		exit 1
	fi
done
was_up=0
"$REPO/rig/status" --quiet && was_up=1
finish() {
	if ((was_up)); then
		"$REPO/rig/status" --quiet || "$REPO/rig/up" >/dev/null || echo "warning: could not restore the rig" >&2
	else
		"$REPO/rig/down" --quiet || echo "warning: rig/down failed" >&2
	fi
}
trap finish EXIT
trap 'exit 130' INT TERM

normal=() disruptive=()
for t in "$IT_DIR"/test_*.sh; do
	[[ -e "$t" ]] || continue
	[[ -z "${KD_IT_FILTER:-}" || "$(basename "$t")" =~ $KD_IT_FILTER ]] || continue
	if grep -q '^# kd-test: disruptive' "$t"; then disruptive+=("$t"); else normal+=("$t"); fi
done

passed=0 failed=0 failures=()
for t in "${normal[@]}" "${disruptive[@]}"; do
	name="$(basename "$t" .sh)"
	if ! "$REPO/rig/status" --quiet; then
		echo "== bringing the rig up for $name"
		if ! "$REPO/rig/up"; then
			echo "FAIL $name (rig/up failed)"
			failed=$((failed + 1)); failures+=("$name")
			continue
		fi
	fi
	echo "== $name"
	t0=$SECONDS
	if timeout --kill-after=10 "$TIMEOUT" bash "$t"; then
		echo "PASS $name ($((SECONDS - t0))s)"
		passed=$((passed + 1))
	else
		rc=$?
		echo "FAIL $name (exit $rc, $((SECONDS - t0))s; rig logs: ${KD_RIG_DIR:-/var/lib/kubedirect/rig}/runs/current/)"
		failed=$((failed + 1)); failures+=("$name")
	fi
done
echo
((failed == 0)) || echo "failed: ${failures[*]}"
echo "integration: $passed passed, $failed failed"
((failed == 0 && passed > 0))
