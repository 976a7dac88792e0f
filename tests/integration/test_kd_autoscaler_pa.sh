#!/usr/bin/env bash
# kd-autoscaler reconciles the PodAutoscaler of a kd-class Knative Service and leaves a vanilla
# (KPA) Service alone, side by side in one namespace:
#  - kd Service (initial-scale 0): public Service <rev> (no selector, serviceType Public, port
#    http 80->8012, owned by the PA), private Service <rev>-private (selector revisionUID,
#    serviceType Private), public Endpoints <rev>; no ServerlessService; PA status serviceName,
#    metricsServiceName, observedGeneration == generation, SKSReady and ScaleTargetInitialized
#    True, Active False NoTraffic; Knative reports the Revision Ready with 0 actual replicas; the
#    template Deployment stays at 0 replicas, annotated kubedirect.dev/replicas=0.
#  - the stats WebSocket answers a ping with a pong (Knative's activator needs it), and a Knative
#    binary poke makes the decider want an instance at once; this kd-autoscaler may use no node
#    (--node-selector matching none), so the PA says Active Unknown Unschedulable and a
#    FailedScheduling event exists (bad input: fits no node).
#  - bad input: a kd Service with an unknown metric annotation gets Active False DecisionFailed
#    naming the annotation, and a Warning event.
#  - kd Service with the default initial-scale (1): Knative creates its Deployment with 1 replica;
#    kd-autoscaler patches it back to 0 and says so in a ScaledTemplateToZero event.
#  - the vanilla Service's PA, Deployment and SKS objects carry no field written by kd-autoscaler
#    (managedFields managers), and no object of the kd Services has a ReplicaSet pod.
#  - deleting the kd Service leaves none of our Services/Endpoints behind (owner references).
. "$(dirname "$0")/lib.sh"
. "$IT_DIR/lib_kd_as.sh"

kd_it_namespace kd-it-as
as_start --node-selector kubedirect.dev/no-such-node=x

ksvc_apply kd kd.kubedirect.dev '        autoscaling.knative.dev/initial-scale: "0"'
ksvc_apply vanilla kpa.autoscaling.knative.dev '        autoscaling.knative.dev/initial-scale: "0"'
ksvc_apply badmetric kd.kubedirect.dev '        autoscaling.knative.dev/initial-scale: "0"
        autoscaling.knative.dev/metric: memory'
ksvc_apply kdone kd.kubedirect.dev ''

for s in kd vanilla badmetric kdone; do
	wait_for "revision of $s created" 120 has_rev "$s"
done
REV="$(rev_of kd)"
VREV="$(rev_of vanilla)"
BREV="$(rev_of badmetric)"
OREV="$(rev_of kdone)"
log "revisions: kd $REV, vanilla $VREV, bad metric $BREV, initial-scale 1 $OREV"

# --- the kd revision -------------------------------------------------------------------------
wait_for "Revision $REV Ready" 120 rev_ready "$REV"
expect_eq "Revision actualReplicas" 0 "$(kc -n "$NS" get revision "$REV" -o jsonpath='{.status.actualReplicas}')"
pa="$(kc -n "$NS" get podautoscaler "$REV" -o json)"
expect_eq "PA serviceName" "$REV" "$(jq -r .status.serviceName <<<"$pa")"
expect_eq "PA metricsServiceName" "$REV-private" "$(jq -r .status.metricsServiceName <<<"$pa")"
expect_eq "PA observedGeneration == generation" "$(jq -r .metadata.generation <<<"$pa")" "$(jq -r .status.observedGeneration <<<"$pa")"
expect_eq "PA actualScale" 0 "$(jq -r .status.actualScale <<<"$pa")"
cond() { jq -r --arg t "$1" '.status.conditions[] | select(.type == $t) | .status + "/" + (.reason // "")' <<<"$pa"; }
expect_eq "SKSReady" "True/" "$(cond SKSReady)"
expect_eq "ScaleTargetInitialized" "True/" "$(cond ScaleTargetInitialized)"
expect_eq "Active" "False/NoTraffic" "$(cond Active)"
expect_eq "Ready follows Active" "False/NoTraffic" "$(cond Ready)"
expect_eq "every condition has a lastTransitionTime" 4 "$(jq '[.status.conditions[] | select(.lastTransitionTime != null)] | length' <<<"$pa")"

pub="$(kc -n "$NS" get service "$REV" -o json)"
expect_eq "public Service has no selector" null "$(jq -c .spec.selector <<<"$pub")"
expect_eq "public Service serviceType label" Public "$(jq -r '.metadata.labels["networking.internal.knative.dev/serviceType"]' <<<"$pub")"
expect_eq "public Service keeps the revision label" "$REV" "$(jq -r '.metadata.labels["serving.knative.dev/revision"]' <<<"$pub")"
expect_eq "public Service port http 80 -> 8012" "http:80:8012" "$(jq -r '.spec.ports[0] | "\(.name):\(.port):\(.targetPort)"' <<<"$pub")"
expect_eq "public Service owned by the PA" "PodAutoscaler/$REV/true" "$(jq -r '.metadata.ownerReferences[0] | "\(.kind)/\(.name)/\(.controller)"' <<<"$pub")"
priv="$(kc -n "$NS" get service "$REV-private" -o json)"
RUID="$(kc -n "$NS" get revision "$REV" -o jsonpath='{.metadata.uid}')"
expect_eq "private Service selects the revision UID" "$RUID" "$(jq -r '.spec.selector["serving.knative.dev/revisionUID"]' <<<"$priv")"
expect_eq "private Service serviceType label" Private "$(jq -r '.metadata.labels["networking.internal.knative.dev/serviceType"]' <<<"$priv")"
expect_eq "private Service ports" "http,https,http-autometric,http-usermetric,http-istio" "$(jq -r '[.spec.ports[].name] | join(",")' <<<"$priv")"
expect_eq "public Endpoints exist, owned by the PA" "PodAutoscaler" "$(kc -n "$NS" get endpoints "$REV" -o jsonpath='{.metadata.ownerReferences[0].kind}')"
expect_eq "no ServerlessService for the kd revision" "" "$(kc -n "$NS" get serverlessservice "$REV" -o name --ignore-not-found)"
expect_eq "template Deployment at 0" 0 "$(kc -n "$NS" get deployment "$REV-deployment" -o jsonpath='{.spec.replicas}')"
annot0() { [[ "$(kc -n "$NS" get deployment "$REV-deployment" -o jsonpath='{.metadata.annotations.kubedirect\.dev/replicas}')" == 0 ]]; }
wait_for "template annotated kubedirect.dev/replicas=0" 30 annot0

# --- stats WebSocket: ping, poke ------------------------------------------------------------
check "stats WebSocket answers ping with pong" as_ws ping
check "Knative binary poke accepted" as_ws poke "$NS" "$REV"
poked() { grep -q "desired -1 -> 1 (poke)\|desired 0 -> 1 (poke)" "$AS_LOG"; }
wait_for "the poke triggered an immediate decision (desired 1)" 10 poked
# no node is selected for this kd-autoscaler: the instance cannot be placed (fits no node)
unsched() { [[ "$(pa_cond "$NS" "$REV" Active reason)" == Unschedulable ]]; }
wait_for "no node with an instance channel: Active Unschedulable" 30 unsched
log "  message: $(pa_cond "$NS" "$REV" Active message)"
wait_for "FailedScheduling event on the PA" 30 has_event "$REV" FailedScheduling
check "JSON scale message accepted" as_ws text "{\"type\":\"scale\",\"namespace\":\"$NS\",\"revision\":\"$REV\",\"desired\":0}"
back() { [[ "$(pa_cond "$NS" "$REV" Active reason)" == NoTraffic ]]; }
wait_for "scale message to 0: Active back to NoTraffic" 30 back

# --- bad input: unknown metric ------------------------------------------------------------------
badm() { [[ "$(pa_cond "$NS" "$BREV" Active reason)" == DecisionFailed ]]; }
wait_for "unknown metric: Active DecisionFailed" 60 badm
msg="$(pa_cond "$NS" "$BREV" Active message)"
[[ "$msg" == *metric* && "$msg" == *memory* ]] || die "condition message does not name the metric: $msg"
log "ok: message names it: $msg"
wait_for "DecisionFailed event" 30 has_event "$BREV" DecisionFailed

# --- initial-scale 1: template scaled back to 0 --------------------------------------------------
zero() { [[ "$(kc -n "$NS" get deployment "$OREV-deployment" -o jsonpath='{.spec.replicas}')" == 0 ]]; }
wait_for "template Deployment of $OREV patched to 0" 60 zero
wait_for "ScaledTemplateToZero event" 30 has_event "$OREV-deployment" ScaledTemplateToZero

# --- vanilla untouched ------------------------------------------------------------------------
for o in "podautoscaler/$VREV" "deployment/$VREV-deployment" "service/$VREV" "service/$VREV-private" "endpoints/$VREV"; do
	m="$(kc -n "$NS" get "$o" -o json --show-managed-fields 2>/dev/null | jq -r '[.metadata.managedFields[]?.manager] | join(",")')"
	[[ "$m" != *kd-autoscaler* ]] || die "$o has fields written by kd-autoscaler ($m)"
done
log "ok: no vanilla object carries a kd-autoscaler field manager"
m="$(kc -n "$NS" get podautoscaler "$REV" -o json --show-managed-fields | jq -r '[.metadata.managedFields[]?.manager] | join(",")')"
[[ "$m" == *kd-autoscaler* ]] || die "kd PA has no kd-autoscaler field manager ($m): the check above cannot tell"
expect_eq "vanilla PA class untouched" kpa.autoscaling.knative.dev "$(kc -n "$NS" get podautoscaler "$VREV" -o jsonpath='{.metadata.annotations.autoscaling\.knative\.dev/class}')"

# --- deletion ------------------------------------------------------------------------------------
kc -n "$NS" delete ksvc kd --wait=false >/dev/null
gone() { [[ -z "$(kc -n "$NS" get service,endpoints -o name | grep -E "/$REV(-private)?\$")" ]]; }
wait_for "kd Services and Endpoints garbage-collected with the revision" 120 gone
