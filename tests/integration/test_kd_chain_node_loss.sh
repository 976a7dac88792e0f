#!/usr/bin/env bash
# Bad input: a node disappears. Two kd-nodes in direct mode (one node each); a kd-class Service
# scaled to N (default 20) through the chain; then one kd-node is killed (SIGKILL) and its Node
# deleted. kd-autoscaler stops counting the instances that were there, deletes their Pods (grace
# 0, as pod GC would) and replaces them on the remaining node(s): the revision converges to N
# Running+Ready pods, none on the vanished node, unique names, Knative reporting N, and the public
# Endpoints list exactly the N live IPs.
. "$(dirname "$0")/lib.sh"
. "$IT_DIR/lib_kd_as.sh"
N="${KD_IT_N:-20}"

kd_it_namespace kd-it-chainnl
dn_start kd-asl 160 1
LOST_PID="$DN_PID"
LOST_NODE=kd-asl-160
dn_start kd-asm 170 1
as_start --node-selector "$(dn_selector)"

kd_ksvc kd
kd_rev_at_zero
check "scale message -> $N" as_scale "$REV" "$N"
wait_for "$N pods Running and Ready" 120 running_ready_is "$N"
on_lost() { rev_pods -o json | jq --arg n "$LOST_NODE" '[.items[] | select(.spec.nodeName == $n)] | length'; }
lost="$(on_lost)"
((lost > 0)) || die "no instance landed on $LOST_NODE: the test cannot tell"
log "$lost of $N instances on $LOST_NODE; killing its kd-node and deleting the Node"
kill -9 "$LOST_PID"
kc delete node "$LOST_NODE" --wait=false >/dev/null

none_lost() { [[ "$(on_lost)" == 0 ]]; }
wait_for "no pod left on $LOST_NODE" 120 none_lost
wait_for "converged: $N pods Running and Ready again" 120 running_ready_is "$N"
wait_for "Knative reports $N" 60 actual_is "$N"
pods="$(rev_pods -o json)"
expect_eq "unique names" "$N" "$(jq '[.items[].metadata.name] | unique | length' <<<"$pods")"
ips="$(jq -r '[.items[].status.podIP] | sort | join(" ")' <<<"$pods")"
eps_match() { [[ "$(kc -n "$NS" get endpoints "$REV" -o json | jq -r '[.subsets[]?.addresses[]?.ip] | sort | join(" ")')" == "$ips" ]]; }
wait_for "public Endpoints list exactly the live IPs" 30 eps_match
