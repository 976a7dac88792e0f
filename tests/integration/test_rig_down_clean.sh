#!/usr/bin/env bash
# kd-test: disruptive
# rig/down stops every rig process and leaves no network namespace, link, bridge or /etc/netns
# entry behind, keeps the logs, and is idempotent; rig/up then starts a fresh healthy rig and a
# second rig/up is a no-op ("already up").
. "$(dirname "$0")/lib.sh"

check "rig is up before the test" "$REPO/rig/status" --quiet
pids=()
for c in "${KD_COMPONENTS[@]}"; do [[ -f "$KD_PIDDIR/$c.pid" ]] && pids+=("$(<"$KD_PIDDIR/$c.pid")"); done
expect_eq "pid files for every component" "${#KD_COMPONENTS[@]}" "${#pids[@]}"
# plus anything else the rig runs (e.g. kd-node started by rig/kd-node-start)
for f in "$KD_PIDDIR"/*.pid; do
	p="$(<"$f")"
	[[ " ${pids[*]} " == *" $p "* ]] || pids+=("$p")
done
log_file="$KD_RUNS/current/kube-apiserver.log"

check "rig/down succeeds" "$REPO/rig/down"
for p in "${pids[@]}"; do
	if kill -0 "$p" 2>/dev/null; then die "pid $p ($(tr '\0' ' ' </proc/"$p"/cmdline)) still alive after rig/down"; fi
done
log "ok: all ${#pids[@]} component processes are gone"
expect_eq "kd-* network namespaces left" "" "$(ip netns list | awk '$1 ~ /^kd-/ {print $1}' | tr '\n' ' ')"
expect_eq "kd-* links left" "" "$(ip -o link show | awk -F': ' '$2 ~ /^kd-/ {print $2}' | tr '\n' ' ')"
expect_eq "/etc/netns/kd-* left" "" "$(ls -d /etc/netns/kd-* 2>/dev/null | tr '\n' ' ')"
expect_eq "10.88.0.0/16 routes left" "" "$(ip -4 route show | grep -E '^10\.88\.' || true)"
expect_eq "processes of the rig left" "" "$(rig_strays)"
check "logs kept after rig/down" test -s "$log_file"
if "$REPO/rig/status" --quiet; then die "rig/status reports healthy after rig/down"; fi
log "ok: rig/status exits non-zero when down"
check "rig/down is idempotent" "$REPO/rig/down" --quiet

t0=$SECONDS
check "rig/up restarts the rig" "$REPO/rig/up"
log "rig/up took $((SECONDS - t0))s"
check "rig/status healthy after restart" "$REPO/rig/status" --quiet
out="$("$REPO/rig/up" 2>&1)" || die "second rig/up failed: $out"
[[ "$out" == *"already up and healthy"* ]] || die "second rig/up did not report 'already up': $out"
log "ok: second rig/up is a no-op"
