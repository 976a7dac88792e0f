#!/usr/bin/env bash
# kd-autoscaler follows a kd-node that comes back on a NEW instance channel address: kd-node
# (2 Nodes, direct mode) is SIGKILLed 300 ms into a 0 -> N burst and restarted at once on another
# --direct-port, so both Nodes re-register with a different kubedirect.dev/channel-addr. The
# chain moves the Nodes and their instances to the channel of the new address (the old one is
# closed once no Node publishes it) and that channel's handshake resends every unpersisted
# instance: the revision converges to exactly N Running+Ready Pods with unique names and IPs,
# all owned by the PodAutoscaler, and Knative reports N. Own kd-autoscaler and kd-node, as in
# test_kd_chain_restart.sh.
. "$(dirname "$0")/lib.sh"
. "$IT_DIR/lib_kd_as.sh"
N="${KD_IT_N:-60}"
# one run at a time (fixed Node names; kd-autoscalers of concurrent runs would fight)
exec 9>/var/lock/kd-autoscaler-it.lock
flock -w 900 9 || die "another test holds /var/lock/kd-autoscaler-it.lock"

kd_it_namespace kd-it-chainaddr
PORT1=$((AS_STATUS_PORT + 11))
PORT2=$((PORT1 + 1))
as_start --node-selector "kubernetes.io/hostname in (kd-nad-160,kd-nad-161)"
DN_DIRECT_PORT=$PORT1 dn_start kd-nad 160 2
addr_of() { kc get node "$1" -o jsonpath='{.metadata.annotations.kubedirect\.dev/channel-addr}'; }
expect_eq "channel address before the restart" "127.0.0.1:$PORT1" "$(addr_of kd-nad-160)"

kd_ksvc kd
kd_rev_at_zero

check "scale message -> $N" as_scale "$REV" "$N"
sleep 0.3 # mid-burst: instances sent, some written back, most not yet
kill -9 "$DN_PID"
wait "$DN_PID" 2>/dev/null || true
log "killed kd-node with $(rev_pods -o name | wc -l)/$N pods in the API"
DN_DIRECT_PORT=$PORT2 dn_start kd-nad 160 2
new_addr() { [[ "$(addr_of kd-nad-160)" == "127.0.0.1:$PORT2" && "$(addr_of kd-nad-161)" == "127.0.0.1:$PORT2" ]]; }
wait_for "both Nodes publish the new address 127.0.0.1:$PORT2" 30 new_addr

wait_for "$N pods Running and Ready" 120 running_ready_is "$N"
wait_for "converged: Knative reports $N actual replicas" 120 actual_is "$N"
sleep 3 # a duplicate or an orphan would appear now
pods="$(rev_pods -o json)"
expect_eq "exactly $N pods" "$N" "$(jq '.items | length' <<<"$pods")"
expect_eq "unique names" "$N" "$(jq '[.items[].metadata.name] | unique | length' <<<"$pods")"
expect_eq "unique IPs" "$N" "$(jq '[.items[].status.podIP] | unique | length' <<<"$pods")"
expect_eq "all on the new kd-node's Nodes" "$N" "$(jq '[.items[] | select(.spec.nodeName | test("^kd-nad-16[01]$"))] | length' <<<"$pods")"
PAUID="$(kc -n "$NS" get podautoscaler "$REV" -o jsonpath='{.metadata.uid}')"
expect_eq "all owned by the PodAutoscaler" "$N" "$(jq --arg u "$PAUID" '[.items[] | select(.metadata.ownerReferences[0].uid == $u)] | length' <<<"$pods")"
grep -q "node kd-nad-160 moved from 127.0.0.1:$PORT1 to 127.0.0.1:$PORT2" "$AS_LOG" ||
	die "kd-autoscaler did not move kd-nad-160 to the new channel ($AS_LOG)"
grep -q "instance channel to 127.0.0.1:$PORT1 closed" "$AS_LOG" ||
	die "kd-autoscaler did not close the old channel ($AS_LOG)"
log "ok: $(grep -c ' moved from ' "$AS_LOG") Nodes moved; $(grep -o '[0-9]* unpersisted instances on [^ ]*' "$AS_LOG" | paste -sd, -) resent"
