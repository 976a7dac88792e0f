#!/usr/bin/env bash
# manifests/'s RBAC exercised for real (docs: the rig runs RBAC so that it is): kd-autoscaler,
# kd-activator and kd-gateway run on the rig as their manifests' ServiceAccounts (a client
# certificate of the rig CA for system:serviceaccount:kubedirect:<name>, bound by the manifests'
# own Roles and ClusterRoles, applied for real, removed at the end), with the manifests' names
# for the webhook's Service, Secret and MutatingWebhookConfiguration, and none of their logs says
# "forbidden":
#  - kd-autoscaler makes its certificate Secret in kubedirect and writes the caBundle into the
#    MutatingWebhookConfiguration kubedirect.dev (restricted here to our namespace), which a
#    second `kubectl apply` of the configuration keeps; it reads
#    Knative's config-autoscaler (its Role in knative-serving); a kd Service with only the class
#    annotation gets its Deployment created with replicas 0 (webhook, Revision read); scaled to
#    2 through the chain, its revision becomes Ready (informers, public/private Services, public
#    Endpoints, PA status); a revision with an unknown metric gets a Warning event
#    DecisionFailed (events);
#  - kd-activator lists Revisions and private Endpoints: /readyz 200, the revision in its routes;
#  - kd-gateway (an ingress class of its own, so the rig's gateway is left alone) writes a
#    KIngress's status: Ready.
# kd-node runs with the rig's admin identity (kubelet mode, runtime-sim): its manifests' RBAC is
# for attach mode with runtime-kubelet (a real kubelet), covered by test_manifests_dry_run.sh's
# kubectl auth can-i checks. Skipped when kubedirect is installed on the rig.
. "$(dirname "$0")/lib.sh"
. "$IT_DIR/lib_kd_as.sh"

MF="$REPO/manifests"
ACTBIN="$KD_BUILD_DIR/bin/kd-activator"
GWBIN="$KD_BUILD_DIR/bin/kd-gateway"
for f in "$ACTBIN" "$GWBIN"; do [[ -x "$f" ]] || die "missing $f (make)"; done
"$REPO/rig/status" --quiet || die "the rig is not up"
for o in namespace/kubedirect clusterrole/kubedirect:kd-autoscaler mutatingwebhookconfiguration/kubedirect.dev; do
	if kc get "$o" >/dev/null 2>&1; then
		log "skip: $o exists (kubedirect is installed on this rig; not touched)"
		exit 0
	fi
done
CP_IP="${KD_NS_IP[cp]}"
WH_PORT=$((AS_STATS_PORT + 5))
AS_ADMIN_PORT=$((AS_STATS_PORT + 6))
ACT_PORT=$((AS_STATS_PORT + 7)) ACT_ADMIN_PORT=$((AS_STATS_PORT + 8)) ACT_STATUS_PORT=$((AS_STATS_PORT + 9))
GW_PORT=$((AS_STATS_PORT + 10)) GW_ADMIN_PORT=$((AS_STATS_PORT + 11))
TMP="$(mktemp -d)"
ACT_PID="" GW_PID="" rbac_applied=0 made_ns=0

stop_pid() {
	[[ -n "$1" ]] || return 0
	kill "$1" 2>/dev/null || true
	for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$1" 2>/dev/null || true
}
eval "lib_$(declare -f as_cleanup)"
as_cleanup() {
	local rc=$?
	set +e
	stop_pid "$ACT_PID"
	stop_pid "$GW_PID"
	lib_as_cleanup
	kc delete mutatingwebhookconfiguration kubedirect.dev --ignore-not-found >/dev/null 2>&1
	((rbac_applied)) && kc delete -f "$TMP/rbac.json" --ignore-not-found --wait=false >/dev/null 2>&1
	((made_ns)) && kc delete namespace kubedirect --ignore-not-found --timeout=90s >/dev/null 2>&1
	rm -f "$KD_PKI"/kd-it-mf-*.*
	rm -rf "$TMP"
	exit $rc
}
trap as_cleanup EXIT

# --- the manifests' namespace and RBAC, for real ----------------------------------------------
"$KUBECTL" kustomize "$MF" >"$TMP/main.yaml"
"$KUBECTL" kustomize "$MF/gateway" >"$TMP/gateway.yaml"
made_ns=1
kc apply -f "$MF/base/namespace.yaml" >/dev/null
cat "$TMP/main.yaml" <(echo ---) "$TMP/gateway.yaml" | kc create --dry-run=client -f - -o json |
	jq -s '{apiVersion: "v1", kind: "List", items: [.[] | if .kind == "List" then .items[] else . end |
		select(.kind | test("^(ServiceAccount|Role|ClusterRole|RoleBinding|ClusterRoleBinding)$"))]}' >"$TMP/rbac.json"
rbac_applied=1
kc apply -f "$TMP/rbac.json" >/dev/null
log "the manifests' RBAC applied ($(jq '.items | length' "$TMP/rbac.json") objects)"
sa_kubeconfig() {
	"$REPO/rig/kubeconfig" "kd-it-mf-$1" "system:serviceaccount:kubedirect:$1" \
		system:serviceaccounts system:serviceaccounts:kubedirect
}
AS_KC="$(sa_kubeconfig kd-autoscaler)"
ACT_KC="$(sa_kubeconfig kd-activator)"
GW_KC="$(sa_kubeconfig kd-gateway)"
expect_eq "kd-autoscaler's identity" system:serviceaccount:kubedirect:kd-autoscaler \
	"$(kc --kubeconfig "$AS_KC" auth whoami -o jsonpath='{.status.userInfo.username}')"

kd_it_namespace kd-it-mf
trap as_cleanup EXIT

# --- the webhook as the manifests register it, limited to our namespace -----------------------
# kd-webhook without selector: its Endpoints are kd-autoscaler in kd-cp (no pods on the rig).
kc apply -f - >/dev/null <<EOT
apiVersion: v1
kind: Service
metadata: {name: kd-webhook, namespace: kubedirect}
spec:
  ports: [{name: https, port: 443, targetPort: $WH_PORT}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: kd-webhook, namespace: kubedirect}
subsets: [{addresses: [{ip: $CP_IP}], ports: [{name: https, port: $WH_PORT}]}]
EOT
kc create --dry-run=client -f "$TMP/main.yaml" -o json |
	jq --arg ns "$NS" 'if .kind == "List" then .items[] else . end | select(.kind == "MutatingWebhookConfiguration") |
		.webhooks[0].namespaceSelector = {matchLabels: {"kubernetes.io/metadata.name": $ns}}' >"$TMP/mwc.json"
kc apply -f "$TMP/mwc.json" >/dev/null
log "MutatingWebhookConfiguration kubedirect.dev (namespaceSelector: $NS only)"

# --- the components as their ServiceAccounts ----------------------------------------------------
dn_start kd-mf 180 1
as_start --kubeconfig "$AS_KC" --node-selector "$(dn_selector)" --admin-port "$AS_ADMIN_PORT" \
	--webhook-port "$WH_PORT" --webhook-bind "$CP_IP"
trap as_cleanup EXIT
ACT_LOG="$TMP/kd-activator.log"
ip netns exec kd-cp "$ACTBIN" --kubeconfig "$ACT_KC" --namespace "$NS" --bind "$CP_IP" --port "$ACT_PORT" \
	--admin-bind "$CP_IP" --admin-port "$ACT_ADMIN_PORT" --status-port "$ACT_STATUS_PORT" \
	--autoscaler "127.0.0.1:$AS_STATS_PORT" >"$ACT_LOG" 2>&1 &
ACT_PID=$!
GW_CLASS=kd-it-manifests.kubedirect.dev
GW_LOG="$TMP/kd-gateway.log"
ip netns exec kd-cp "$GWBIN" --kubeconfig "$GW_KC" --ingress-class "$GW_CLASS" --public-ip "$CP_IP" \
	--bind "$CP_IP" --port "$GW_PORT" --admin-bind "$CP_IP" --admin-port "$GW_ADMIN_PORT" >"$GW_LOG" 2>&1 &
GW_PID=$!

http_code() { ip netns exec kd-cp curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true; }
ready() { [[ "$(http_code "$1")" == 200 ]]; }
wait_for "kd-autoscaler /readyz (as its ServiceAccount; config-autoscaler read)" 30 ready "http://$CP_IP:$AS_ADMIN_PORT/readyz"
wait_for "kd-activator /readyz (as its ServiceAccount)" 30 ready "http://$CP_IP:$ACT_ADMIN_PORT/readyz"
wait_for "kd-gateway /readyz (as its ServiceAccount)" 30 ready "http://$CP_IP:$GW_ADMIN_PORT/readyz"

has_secret() { [[ "$(kc -n kubedirect get secret kd-webhook-certs -o json | jq -r '.data | keys | join(",")')" == "ca-cert.pem,server-cert.pem,server-key.pem" ]]; }
wait_for "kd-autoscaler made its Secret kubedirect/kd-webhook-certs" 30 has_secret
bundle_ok() {
	local b
	b="$(kc get mutatingwebhookconfiguration kubedirect.dev -o jsonpath='{.webhooks[0].clientConfig.caBundle}')"
	[[ -n "$b" && "$b" == "$(kc -n kubedirect get secret kd-webhook-certs -o jsonpath='{.data.ca-cert\.pem}')" ]]
}
wait_for "kd-autoscaler wrote the caBundle of kubedirect.dev" 30 bundle_ok
kc apply -f "$TMP/mwc.json" >/dev/null
check "kubectl apply of the configuration again keeps kd-autoscaler's caBundle" bundle_ok

# --- a kd Service with only the class annotation, scaled through the chain ----------------------
# (On main, decider-kpa decides 0 at once for a new kd revision without stats, so its initial
# scale 1 is not made and it is not Ready until something scales it: here a scale message.)
ksvc_apply kd kd.kubedirect.dev ''
wait_for "kd revision created" 120 has_rev kd
REV="$(rev_of kd)"
wait_for "Deployment $REV-deployment exists" 60 kc -n "$NS" get deployment "$REV-deployment"
expect_eq "created with replicas 0 by the webhook" 0 \
	"$(kc -n "$NS" get deployment "$REV-deployment" -o jsonpath='{.spec.replicas}')"
metric() { ip netns exec kd-cp curl -s --max-time 5 "http://$CP_IP:$AS_ADMIN_PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
expect_eq "the webhook zeroed it (its class read from the Revision)" 1 \
	"$(metric 'kd_autoscaler_webhook_reviews_total{result="zeroed"}')"
as_scale "$REV" 2 >/dev/null
wait_for "2 instances through the chain, Knative reports them (PA status)" 60 actual_is 2
wait_for "Revision $REV Ready" 60 rev_ready "$REV"
expect_eq "public Endpoints written by kd-autoscaler (Serve mode: the 2 instances)" 2 \
	"$(kc -n "$NS" get endpoints "$REV" -o json | jq '[.subsets[]?.addresses[]?] | length')"
expect_eq "private Service written by kd-autoscaler" "$REV-private" \
	"$(kc -n "$NS" get service "$REV-private" -o jsonpath='{.metadata.name}')"
expect_eq "public Service written by kd-autoscaler" "$REV" \
	"$(kc -n "$NS" get service "$REV" -o jsonpath='{.metadata.name}')"
routes() { ip netns exec kd-cp curl -s --max-time 2 "http://$CP_IP:$ACT_ADMIN_PORT/debug/routes" | grep -q "$REV"; }
wait_for "kd-activator knows revision $REV" 30 routes

# events: a revision whose decider fails
ksvc_apply bad kd.kubedirect.dev '        autoscaling.knative.dev/metric: kd-bogus'
wait_for "revision of bad created" 120 has_rev bad
BAD="$(rev_of bad)"
wait_for "Warning event DecisionFailed on $BAD" 60 has_event "$BAD" DecisionFailed

# --- kd-gateway: a KIngress of its class ------------------------------------------------------
kc apply -f - >/dev/null <<EOT
apiVersion: networking.internal.knative.dev/v1alpha1
kind: Ingress
metadata:
  name: mf
  namespace: $NS
  annotations: {networking.knative.dev/ingress.class: $GW_CLASS}
spec:
  rules:
  - hosts: [mf.$NS.example.com]
    visibility: ExternalIP
    http:
      paths:
      - splits:
        - {serviceName: $REV, serviceNamespace: $NS, servicePort: 80, percent: 100}
EOT
ing_ready() { [[ "$(kc -n "$NS" get ingresses.networking.internal.knative.dev mf -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
wait_for "kd-gateway wrote the KIngress status (Ready)" 30 ing_ready

# --- nothing was refused ----------------------------------------------------------------------
for l in "$AS_LOG" "$ACT_LOG" "$GW_LOG"; do
	if grep -i -E 'forbidden|403' "$l" >&2; then die "RBAC refused a call ($l)"; fi
done
log "ok: no call of kd-autoscaler, kd-activator or kd-gateway was refused"
