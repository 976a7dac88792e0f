#!/usr/bin/env bash
# kd-node runs the pods of a vanilla Knative Service (KPA class, image dev.local/hello; runtime-sim
# runs no image): the Revision becomes Ready, its PodAutoscaler exists, the Deployment scaled to 3
# has 3 Ready pods, each with a ready status for BOTH containers (user-container and Knative's
# queue-proxy), and Knative reports 3 actual replicas (Revision status.actualReplicas and
# PodAutoscaler status.actualScale).
#
# The Deployment is scaled to 3 the Knative way, through min-scale=3 on the template: the KPA owns
# the Deployment's scale subresource and would revert a manual `kubectl scale` to its own decision.
# No nodeSelector (Knative's webhook refuses it unless a feature flag is on): the rig has no
# other nodes than kd-node's, and the test asserts where the pods run.
. "$(dirname "$0")/lib.sh"

"$REPO/rig/kd-node-start"

it_namespace kd-it-knode >/dev/null
NS="$IT_NS"
log "namespace $NS"
kc -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/class: kpa.autoscaling.knative.dev
        autoscaling.knative.dev/min-scale: "3"
    spec:
      containers:
      - image: dev.local/hello
        ports:
        - containerPort: 8080
EOF

rev_name() { kc -n "$NS" get ksvc hello -o jsonpath='{.status.latestCreatedRevisionName}'; }
have_rev() { [[ -n "$(rev_name)" ]]; }
wait_for "Revision created" 120 have_rev
REV="$(rev_name)"
log "revision $REV"
expect_eq "PodAutoscaler of class kpa exists" kpa.autoscaling.knative.dev \
	"$(kc -n "$NS" get podautoscaler "$REV" -o jsonpath='{.metadata.annotations.autoscaling\.knative\.dev/class}')"

rev_ready() { [[ "$(kc -n "$NS" get revision "$REV" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
wait_for "Revision $REV Ready" 180 rev_ready

dep_ready() { [[ "$(kc -n "$NS" get deployment "$REV-deployment" -o jsonpath='{.status.readyReplicas}')" == 3 ]]; }
wait_for "Deployment $REV-deployment has 3 ready replicas" 180 dep_ready
expect_eq "Deployment spec.replicas" 3 "$(kc -n "$NS" get deployment "$REV-deployment" -o jsonpath='{.spec.replicas}')"

pods="$(kc -n "$NS" get pods -l "serving.knative.dev/revision=$REV" -o json)"
expect_eq "3 pods of the revision" 3 "$(jq '.items | length' <<<"$pods")"
expect_eq "all Running and Ready" 3 \
	"$(jq '[.items[] | select(.status.phase == "Running" and (.status.conditions[] | .type == "Ready" and .status == "True"))] | length' <<<"$pods")"
expect_eq "each pod has user-container and queue-proxy statuses, both ready" 3 \
	"$(jq '[.items[] | select([.status.containerStatuses[] | select(.ready) | .name] | sort == ["queue-proxy","user-container"])] | length' <<<"$pods")"
expect_eq "pods run on kd-node nodes" 3 \
	"$(jq '[.items[] | select(.spec.nodeName | startswith("kd-node-"))] | length' <<<"$pods")"

actual() {
	[[ "$(kc -n "$NS" get revision "$REV" -o jsonpath='{.status.actualReplicas}')" == 3 &&
		"$(kc -n "$NS" get podautoscaler "$REV" -o jsonpath='{.status.actualScale}')" == 3 ]]
}
wait_for "Knative reports 3 actual replicas (revision actualReplicas, PA actualScale)" 120 actual
ready_eps() {
	[[ "$(kc -n "$NS" get endpoints "$REV-private" -o jsonpath='{.subsets[*].addresses[*].ip}' | wc -w)" == 3 ]]
}
wait_for "the private Service's Endpoints list the 3 pod IPs as ready" 120 ready_eps

kc -n "$NS" delete ksvc hello --wait=false >/dev/null
gone() { [[ -z "$(kc -n "$NS" get pods -l "serving.knative.dev/revision=$REV" -o name)" ]]; }
wait_for "pods deleted with the Service" 180 gone
