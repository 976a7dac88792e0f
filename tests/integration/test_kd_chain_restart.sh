#!/usr/bin/env bash
# Invariant 3 for kd-autoscaler: killed (SIGKILL) 200 ms into a 0 -> N burst through the chain,
# restarted and handed the same decision again, it converges to exactly N instances: it adopts the
# written-back Pods (and restores the decision written back in PA status.desiredScale, if it got
# there), cancels or replaces what was in flight, so the
# revision ends with N Running+Ready pods owned by the PodAutoscaler, no duplicate name, no
# orphan, and Knative reports N. Own kd-autoscaler and kd-node (direct mode), as in
# test_kd_chain_scale.sh.
. "$(dirname "$0")/lib.sh"
. "$IT_DIR/lib_kd_as.sh"
N="${KD_IT_N:-100}"

kd_it_namespace kd-it-chainrs
dn_start kd-asr 150 2
as_start --node-selector "$(dn_selector)"

kd_ksvc kd
kd_rev_at_zero

check "scale message -> $N" as_scale "$REV" "$N"
sleep 0.2 # mid-burst: instances sent, some written back, most not yet
before="$(rev_pods -o name | wc -l)"
kill -9 "$AS_PID"
wait "$AS_PID" 2>/dev/null || true
AS_PID=""
log "killed kd-autoscaler with $before/$N pods in the API"
as_start --node-selector "$(dn_selector)"
# the client repeats its decision (idempotent: the same desired scale)
check "scale message -> $N again" as_scale "$REV" "$N"

wait_for "converged: Knative reports $N actual replicas" 180 actual_is "$N"
wait_for "$N pods Running and Ready" 180 running_ready_is "$N"
settled() { [[ "$(rev_pods -o name | wc -l)" == "$N" ]]; }
wait_for "exactly $N pods (no orphan left terminating)" 120 settled
pods="$(rev_pods -o json)"
expect_eq "unique names" "$N" "$(jq '[.items[].metadata.name] | unique | length' <<<"$pods")"
expect_eq "unique IPs" "$N" "$(jq '[.items[].status.podIP] | unique | length' <<<"$pods")"
PAUID="$(kc -n "$NS" get podautoscaler "$REV" -o jsonpath='{.metadata.uid}')"
expect_eq "all owned by the PodAutoscaler" "$N" "$(jq --arg u "$PAUID" '[.items[] | select(.metadata.ownerReferences[0].uid == $u)] | length' <<<"$pods")"
grep -q "adopted\|restored from status.desiredScale" "$AS_LOG" || die "restarted kd-autoscaler neither adopted nor restored anything ($AS_LOG)"
log "ok: restart log: $(grep -c adopted "$AS_LOG") adopted; $(grep -c 'restored from status' "$AS_LOG") decision restored"
