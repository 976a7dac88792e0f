#!/usr/bin/env bash
# The direct chain end to end on the rig: kd-autoscaler + kd-node in direct mode (runtime-sim).
# A kd-class Knative Service and a vanilla (KPA) Service side by side:
#  - the kd one scales 0 -> N (KD_IT_N, default 50) through the chain on a JSON scale message:
#    Knative reports N actual replicas (PA actualScale, Revision actualReplicas); kubectl shows N
#    Running+Ready pods, each owned by the PodAutoscaler (controller), labelled
#    kubedirect.dev/managed=true, without pod-template-hash, bound to a kd-node node, with unique
#    IPs; the public Endpoints list the N IPs; the template Deployment's ReplicaSets made no pod;
#  - scaling back to 0 deletes them all; scaling to 5 and deleting the Service leaves no pod,
#    Service or Endpoints of ours behind;
#  - the vanilla Service keeps its ReplicaSet pod and carries no field written by kd-autoscaler;
#  - the decider applies the revision's annotations: min-scale 3 plus a Knative poke -> 3;
#  - bad input: a kd Service whose template fits no node (cpu 1000) gets Active Unknown
#    Unschedulable ("insufficient cpu") and a FailedScheduling event, and no pod.
# The test runs its own kd-autoscaler and its own kd-node in direct mode (2 nodes kd-asn-140/141,
# deleted at the end); instances may also land on other direct-mode nodes present in the rig.
. "$(dirname "$0")/lib.sh"
. "$IT_DIR/lib_kd_as.sh"
N="${KD_IT_N:-50}"

kd_it_namespace kd-it-chain
dn_start kd-asn 140 2
as_start --node-selector "$(dn_selector)"

ksvc() { # NAME CLASS SCALE: initial-scale and min-scale SCALE
	ksvc_apply "$1" "$2" "        autoscaling.knative.dev/initial-scale: \"$3\"
        autoscaling.knative.dev/min-scale: \"$3\""
}
ksvc kd kd.kubedirect.dev 0
ksvc vanilla kpa.autoscaling.knative.dev 1
wait_for "kd revision created" 120 has_rev kd
wait_for "vanilla revision created" 120 has_rev vanilla
REV="$(rev_of kd)"
VREV="$(rev_of vanilla)"
wait_for "Revision $REV Ready at 0" 120 rev_ready "$REV"
wait_for "Revision $VREV Ready" 180 rev_ready "$VREV"

# --- 0 -> N -----------------------------------------------------------------------------------
t0=$(date +%s.%N)
check "scale message $REV -> $N" as_scale "$REV" "$N"
wait_for "Knative reports $N actual replicas (PA actualScale, Revision actualReplicas)" 180 actual_is "$N"
t1=$(date +%s.%N)
log "0 -> $N reported by Knative after $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s"
running() {
	[[ "$(rev_pods -o json |
		jq '[.items[] | select(.status.phase == "Running" and (.status.conditions[]? | .type == "Ready" and .status == "True"))] | length')" == "$1" ]]
}
wait_for "$N pods Running and Ready in the API" 180 running "$N"
pods="$(rev_pods -o json)"
expect_eq "pods of the revision" "$N" "$(jq '.items | length' <<<"$pods")"
PAUID="$(kc -n "$NS" get podautoscaler "$REV" -o jsonpath='{.metadata.uid}')"
expect_eq "all controller-owned by the PodAutoscaler" "$N" \
	"$(jq --arg u "$PAUID" '[.items[] | select(.metadata.ownerReferences[0] | .kind == "PodAutoscaler" and .uid == $u and .controller == true)] | length' <<<"$pods")"
expect_eq "all labelled kubedirect.dev/managed=true" "$N" "$(jq '[.items[] | select(.metadata.labels["kubedirect.dev/managed"] == "true")] | length' <<<"$pods")"
expect_eq "none has pod-template-hash" 0 "$(jq '[.items[] | select(.metadata.labels["pod-template-hash"] != null)] | length' <<<"$pods")"
direct_nodes="$(kc get nodes -o json | jq -c '[.items[] | select(.metadata.annotations["kubedirect.dev/channel-addr"] != null) | .metadata.name]')"
expect_eq "all bound to direct-mode nodes" "$N" "$(jq --argjson d "$direct_nodes" '[.items[] | select(.spec.nodeName as $n | $d | index($n))] | length' <<<"$pods")"
expect_eq "unique pod IPs" "$N" "$(jq '[.items[].status.podIP] | unique | length' <<<"$pods")"
eps() { [[ "$(kc -n "$NS" get endpoints "$REV" -o jsonpath='{.subsets[*].addresses[*].ip}' | wc -w)" == "$1" ]]; }
wait_for "public Endpoints list $N IPs" 60 eps "$N"
expect_eq "template Deployment still at 0" 0 "$(kc -n "$NS" get deployment "$REV-deployment" -o jsonpath='{.spec.replicas}')"
expect_eq "its ReplicaSets created no pod" 0 \
	"$(kc -n "$NS" get rs -l "serving.knative.dev/revision=$REV" -o json | jq '[.items[].status.replicas] | add // 0')"

# --- back to 0 --------------------------------------------------------------------------------
check "scale message $REV -> 0" as_scale "$REV" 0
none() { [[ -z "$(rev_pods -o name)" ]]; }
wait_for "all $N pods deleted" 180 none
wait_for "PA actualScale 0" 60 actual_is 0

# --- 5, then delete the Service ---------------------------------------------------------------
check "scale message $REV -> 5" as_scale "$REV" 5
wait_for "5 pods Running and Ready" 120 running 5
# the vanilla Service untouched throughout
for o in "podautoscaler/$VREV" "deployment/$VREV-deployment" "service/$VREV" "endpoints/$VREV"; do
	m="$(kc -n "$NS" get "$o" -o json --show-managed-fields 2>/dev/null | jq -r '[.metadata.managedFields[]?.manager] | join(",")')"
	[[ "$m" != *kd-autoscaler* ]] || die "$o has fields written by kd-autoscaler ($m)"
done
vp="$(kc -n "$NS" get pods -l "serving.knative.dev/revision=$VREV" -o json)"
expect_eq "vanilla pod from its ReplicaSet (pod-template-hash, not managed)" 1 \
	"$(jq '[.items[] | select(.metadata.labels["pod-template-hash"] != null and .metadata.labels["kubedirect.dev/managed"] == null)] | length' <<<"$vp")"
# the decider's annotations: min-scale 3 and a Knative binary poke (concurrency 1) -> 3 instances
kd_ksvc mins '        autoscaling.knative.dev/min-scale: "3"'
wait_for "mins revision created" 120 has_rev mins
MREV="$(rev_of mins)"
check "Knative poke for $MREV" as_ws poke "$NS" "$MREV"
mins_actual() { [[ "$(kc -n "$NS" get podautoscaler "$MREV" -o jsonpath='{.status.actualScale}')" == 3 ]]; }
wait_for "poke + min-scale 3: 3 instances ready (PA actualScale 3)" 60 mins_actual
expect_eq "PA desiredScale" 3 "$(kc -n "$NS" get podautoscaler "$MREV" -o jsonpath='{.status.desiredScale}')"

# bad input: a template that fits no node (cpu request above every node's allocatable)
kd_ksvc huge '' '' '        resources:
          requests:
            cpu: "1000"'
wait_for "huge revision created" 120 has_rev huge
HREV="$(rev_of huge)"
wait_for "Revision $HREV Ready at 0" 120 rev_ready "$HREV"
check "scale message $HREV -> 1" as_scale "$HREV" 1
unsched() { [[ "$(pa_cond "$NS" "$HREV" Active reason)" == Unschedulable ]]; }
wait_for "fits no node: Active Unknown Unschedulable" 30 unsched
msg="$(pa_cond "$NS" "$HREV" Active message)"
[[ "$msg" == *"insufficient cpu"* ]] || die "condition does not say why: $msg"
log "ok: $msg"
wait_for "FailedScheduling event" 30 has_event "$HREV" FailedScheduling
expect_eq "no pod for it" "" "$(kc -n "$NS" get pods -l "serving.knative.dev/revision=$HREV" -o name)"

kc -n "$NS" delete ksvc kd --wait=false >/dev/null
wait_for "deleting the Service deletes its pods" 180 none
ours() { [[ -z "$(kc -n "$NS" get service,endpoints -o name | grep -E "/$REV(-private)?\$")" ]]; }
wait_for "and its Services and Endpoints" 120 ours
