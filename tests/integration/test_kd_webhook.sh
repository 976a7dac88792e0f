#!/usr/bin/env bash
# kd-autoscaler's admission webhook (--webhook-port) on the real API Server, registered the way
# manifests/ registers it (a Service without selector + Endpoints to kd-autoscaler in kd-cp, a
# MutatingWebhookConfiguration with failurePolicy Ignore and no caBundle):
#  - kd-autoscaler makes the certificate Secret (ca-cert.pem, server-cert.pem, server-key.pem)
#    and writes the caBundle; the API Server then calls it over TLS;
#  - a kd Service with only the class annotation (default initial-scale 1) gets its Deployment
#    created with replicas 0 (annotation kubedirect.dev/initial-replicas=1); its revision reaches
#    Ready with 1 instance made through the chain, and no Pod of it is ever made by a ReplicaSet;
#  - a vanilla (KPA) Service in the same namespace keeps its Deployment's replicas (1);
#  - a Secret holding a certificate for other names is replaced at start, and the caBundle
#    follows (the next kd Service is zeroed again);
#  - the webhook down never blocks Knative: with kd-autoscaler stopped, a kd Service's
#    Deployment is created as asked, and a restarted kd-autoscaler scales it back to 0;
#  - /metrics counts the zeroed reviews.
. "$(dirname "$0")/lib.sh"
. "$IT_DIR/lib_kd_as.sh"

kd_it_namespace kd-it-wh
WH_PORT=$((AS_STATS_PORT + 5))
AS_ADMIN_PORT=$((AS_STATS_PORT + 6))
CFG="kd-it-webhook-$NS"
wh_cleanup() { kc delete mutatingwebhookconfiguration "$CFG" --ignore-not-found >/dev/null 2>&1; }
AS_CLEANUP_EXTRA=wh_cleanup
dn_start kd-wh 170 1

kc apply -f - >/dev/null <<EOT
apiVersion: v1
kind: Service
metadata: {name: kd-webhook, namespace: $NS}
spec:
  ports: [{name: https, port: 443, targetPort: $WH_PORT}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: kd-webhook, namespace: $NS}
subsets: [{addresses: [{ip: 10.88.0.2}], ports: [{name: https, port: $WH_PORT}]}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: $CFG
  labels: {app.kubernetes.io/part-of: kubedirect}
webhooks:
- name: deployments.kubedirect.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Ignore
  timeoutSeconds: 5
  clientConfig:
    service: {namespace: $NS, name: kd-webhook, path: /mutate, port: 443}
  namespaceSelector:
    matchLabels: {kubernetes.io/metadata.name: $NS}
  rules:
  - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments], scope: Namespaced}
EOT

wh_start() {
	as_start --node-selector "$(dn_selector)" --admin-port "$AS_ADMIN_PORT" \
		--webhook-port "$WH_PORT" --webhook-bind 10.88.0.2 --webhook-service "kd-webhook.$NS" \
		--webhook-secret "kd-webhook-certs.$NS" --webhook-config "$CFG"
}
wh_start
secret_keys() { kc -n "$NS" get secret kd-webhook-certs -o json | jq -r '.data | keys | join(",")'; }
has_secret() { [[ "$(secret_keys)" == "ca-cert.pem,server-cert.pem,server-key.pem" ]]; }
wait_for "kd-autoscaler made the certificate Secret" 30 has_secret
bundle() { kc get mutatingwebhookconfiguration "$CFG" -o jsonpath='{.webhooks[0].clientConfig.caBundle}'; }
ca_of_secret() { kc -n "$NS" get secret kd-webhook-certs -o jsonpath='{.data.ca-cert\.pem}'; }
bundle_is_ours() { [[ -n "$(bundle)" && "$(bundle)" == "$(ca_of_secret)" ]]; }
wait_for "caBundle is the Secret's CA" 30 bundle_is_ours
grep -q "webhook: serving https://10.88.0.2:$WH_PORT/mutate" "$AS_LOG" || die "no serving line in $AS_LOG"

# --- a kd Service with only the class annotation ---------------------------------------------
ksvc_apply kd kd.kubedirect.dev ''
ksvc_apply vanilla kpa.autoscaling.knative.dev ''
wait_for "kd revision created" 120 has_rev kd
REV="$(rev_of kd)"
wait_for "Deployment $REV-deployment exists" 60 kc -n "$NS" get deployment "$REV-deployment"
dep="$(kc -n "$NS" get deployment "$REV-deployment" -o json)"
expect_eq "Deployment created with replicas 0" 0 "$(jq -r .spec.replicas <<<"$dep")"
expect_eq "the replicas asked for, annotated" 1 "$(jq -r '.metadata.annotations["kubedirect.dev/initial-replicas"]' <<<"$dep")"
grep -q "webhook: Deployment $NS/$REV-deployment (revision $REV) created with replicas 0 instead of 1" "$AS_LOG" ||
	die "kd-autoscaler did not log the zeroed Deployment ($AS_LOG)"
wait_for "Revision $REV Ready at its initial scale" 120 rev_ready "$REV"
wait_for "Knative reports 1 actual replica" 60 actual_is 1
pods="$(rev_pods -o json)"
expect_eq "one Pod of the revision" 1 "$(jq '.items | length' <<<"$pods")"
expect_eq "it is a kd instance" true "$(jq -r '.items[0].metadata.labels["kubedirect.dev/managed"]' <<<"$pods")"
expect_eq "no Pod owned by a ReplicaSet" 0 "$(jq '[.items[].metadata.ownerReferences[]? | select(.kind == "ReplicaSet")] | length' <<<"$pods")"
rs_creates() { kc -n "$NS" get events -o json | jq '[.items[] | select(.involvedObject.kind == "ReplicaSet" and .reason == "SuccessfulCreate" and (.involvedObject.name | startswith("'"$REV"'")))] | length'; }
expect_eq "no ReplicaSet of $REV ever created a Pod (events)" 0 "$(rs_creates)"
VREV="$(rev_of vanilla)"
wait_for "vanilla Deployment exists" 60 kc -n "$NS" get deployment "$VREV-deployment"
expect_eq "vanilla Deployment keeps replicas 1" 1 "$(kc -n "$NS" get deployment "$VREV-deployment" -o jsonpath='{.spec.replicas}')"
metric() { ip netns exec kd-cp curl -s --max-time 5 "http://127.0.0.1:$AS_ADMIN_PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
expect_eq "/metrics: one zeroed review" 1 "$(metric 'kd_autoscaler_webhook_reviews_total{result="zeroed"}')"
expect_eq "/metrics: caBundle ok" 1 "$(metric kd_autoscaler_webhook_ca_bundle_ok)"

# --- a Secret unusable for our names is replaced at start, and the caBundle follows ----------
as_stop
old_bundle="$(bundle)"
other_ca="$(openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=other.example \
	-days 30 -keyout /dev/null 2>/dev/null | base64 -w0)"
kc -n "$NS" patch secret kd-webhook-certs --type merge -p "{\"data\":{\"server-cert.pem\":\"$other_ca\"}}" >/dev/null
wh_start
replaced() { [[ -n "$(bundle)" && "$(bundle)" != "$old_bundle" ]] && bundle_is_ours; }
wait_for "new certificate issued and the caBundle follows" 30 replaced
grep -q "issuing a new one" "$AS_LOG" || die "kd-autoscaler did not say why it replaced the Secret ($AS_LOG)"
ksvc_apply kd2 kd.kubedirect.dev ''
wait_for "kd2 revision created" 120 has_rev kd2
REV2="$(rev_of kd2)"
wait_for "Deployment $REV2-deployment exists" 60 kc -n "$NS" get deployment "$REV2-deployment"
expect_eq "zeroed through the new certificate" 0 "$(kc -n "$NS" get deployment "$REV2-deployment" -o jsonpath='{.spec.replicas}')"

# --- the webhook down never blocks Knative ----------------------------------------------------
as_stop
ksvc_apply kd3 kd.kubedirect.dev ''
wait_for "kd3 revision created" 120 has_rev kd3
REV3="$(rev_of kd3)"
wait_for "Deployment $REV3-deployment created without the webhook" 60 kc -n "$NS" get deployment "$REV3-deployment"
expect_eq "created as asked (failurePolicy Ignore)" 1 "$(kc -n "$NS" get deployment "$REV3-deployment" -o jsonpath='{.spec.replicas}')"
wh_start
zero3() { [[ "$(kc -n "$NS" get deployment "$REV3-deployment" -o jsonpath='{.spec.replicas}')" == 0 ]]; }
wait_for "restarted kd-autoscaler scales it back to 0" 60 zero3
log "webhook: zeroed $REV and $REV2, left the vanilla and the unreachable-webhook case as asked"
