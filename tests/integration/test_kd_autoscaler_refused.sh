#!/usr/bin/env bash
# Bad input: the API Server refuses kd-autoscaler's writes for a while. kd-autoscaler runs with
# its own client certificate whose RBAC lets it read everything it watches (config-autoscaler
# included) and write PA status,
# Endpoints, Events and Deployments, but not create Services. Its PodAutoscaler then says
# SKSReady False / WriteFailed naming the refused write (403 Forbidden), a WriteFailed Warning
# event exists, and serviceName stays empty (Knative keeps the Revision not ready). Once the
# permission is granted, kd-autoscaler writes the Services on its own (periodic retry of failed
# writes): SKSReady True, serviceName set, Revision Ready. Nothing had to be re-created by hand.
. "$(dirname "$0")/lib.sh"
. "$IT_DIR/lib_kd_as.sh"

kd_it_namespace kd-it-asref
ID="kd-as-it-${NS##*-}"
KCFG="$("$REPO/rig/kubeconfig" "$ID" "$ID")"
rbac_cleanup() {
	kc delete clusterrolebinding "$ID-base" "$ID-svc" --ignore-not-found >/dev/null 2>&1 || true
	kc delete clusterrole "$ID-base" "$ID-svc" --ignore-not-found >/dev/null 2>&1 || true
}
kc apply -f - >/dev/null <<EOT
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: $ID-base}
rules:
- apiGroups: [autoscaling.internal.knative.dev]
  resources: [podautoscalers]
  verbs: [get, list, watch]
- apiGroups: [autoscaling.internal.knative.dev]
  resources: [podautoscalers/status]
  verbs: [get, patch, update]
- apiGroups: [apps]
  resources: [deployments, deployments/scale]
  verbs: [get, list, watch, patch]
- apiGroups: [""]
  resources: [pods, nodes, services, configmaps]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods]
  verbs: [delete]
- apiGroups: [""]
  resources: [endpoints]
  verbs: [get, create, update, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: $ID-base}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: $ID-base}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: $ID}]
EOT
as_start --kubeconfig "$KCFG"
trap 'as_cleanup; rbac_cleanup' EXIT

kd_ksvc kd
wait_for "revision created" 120 has_rev
REV="$(rev_of)"
refused() { [[ "$(pa_cond "$NS" "$REV" SKSReady reason)" == WriteFailed ]]; }
wait_for "refused Service create: SKSReady False WriteFailed" 90 refused
msg="$(pa_cond "$NS" "$REV" SKSReady message)"
[[ "$msg" == *svc:* && "$msg" == *403* ]] || die "condition does not say which write was refused and why: $msg"
log "ok: $msg"
expect_eq "SKSReady status" False "$(pa_cond "$NS" "$REV" SKSReady status)"
expect_eq "no serviceName while the public Service is missing" "" "$(kc -n "$NS" get podautoscaler "$REV" -o jsonpath='{.status.serviceName}')"
wait_for "WriteFailed Warning event" 30 has_event "$REV" WriteFailed

kc apply -f - >/dev/null <<EOT
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: $ID-svc}
rules:
- apiGroups: [""]
  resources: [services]
  verbs: [create, patch, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: $ID-svc}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: $ID-svc}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: $ID}]
EOT
log "granted: create services"
sks() { [[ "$(pa_cond "$NS" "$REV" SKSReady status)" == True ]]; }
wait_for "Services written on retry: SKSReady True" 60 sks
expect_eq "serviceName" "$REV" "$(kc -n "$NS" get podautoscaler "$REV" -o jsonpath='{.status.serviceName}')"
wait_for "Revision Ready" 60 rev_ready
