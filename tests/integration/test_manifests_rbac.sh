#!/usr/bin/env bash
# manifests/'s RBAC exercised for real (docs: the rig runs RBAC so that it is): kd-autoscaler,
# kd-activator, kd-gateway and kd-node run on the rig as their manifests' ServiceAccounts (a
# client certificate of the rig CA for system:serviceaccount:kubedirect:<name>, bound by the
# manifests' own Roles and ClusterRoles, applied for real), with the manifests' names for the
# webhook's Service, Secret and MutatingWebhookConfiguration, through a full scale-out, request
# and scale-in cycle, and `kubectl delete -k manifests/` removes all of it:
#  - kd-autoscaler makes its certificate Secret in kubedirect and writes the caBundle into the
#    MutatingWebhookConfiguration kubedirect.dev (restricted here to our namespace), which a
#    second `kubectl apply` of the configuration keeps; it reads Knative's config-autoscaler
#    (its Role in knative-serving);
#  - kd-node as in its DaemonSet (base/kd-node.yaml): the ConfigMap's keys as its --config-dir,
#    the args --attach-node <Node> --runtime runtime-kubelet --direct (--direct-port,
#    --direct-addr and status-addr/admin-port set for the rig), attached to Node kd-mfk-185
#    whose "kubelet" is a vanilla kd-node (kubelet-compatible mode, the rig's admin identity,
#    plugins/runtime-process: real sandboxes, Knative's queue-proxy + functions/hello), as
#    test_kd_node_kubelet.sh sets it up; it publishes its instance channel on the Node;
#  - the example Service manifests/examples/hello.yaml (class annotation only) gets its
#    Deployment created with replicas 0 (webhook, Revision read) and its revision reaches Ready
#    at its initial scale 1 (informers, public/private Services, public Endpoints, PA status)
#    with its one Pod created by runtime-kubelet as kd-node (managedFields: kd-runtime-kubelet,
#    spec.nodeName set at creation; owned by the PodAutoscaler only, no ReplicaSet owner, no
#    SuccessfulCreate event of a ReplicaSet of the revision, no Scheduled event), run and made
#    Ready by the "kubelet";
#  - a request through kd-activator (Knative-Serving-Namespace/-Revision headers, its data port)
#    and one through kd-gateway by Host (a KIngress of kd-gateway's own class, whose status it
#    writes: Ready) are answered "Hello from <revision>" by the instance;
#  - scale-in: the JSON scale message revision -> 0 deletes the Pod (runtime-kubelet's DELETE as
#    kd-node), Knative reports 0, the attached kd-node holds no instance;
#  - a revision with an unknown metric gets a Warning event DecisionFailed (events);
#  - the attached kd-node stops cleanly (SIGTERM: exit 0, its annotation removed: nodes patch);
#  - none of the five components' logs has "forbidden" or " 403";
#  - then `kubectl delete -k manifests/gateway/` and `kubectl delete -k manifests/` (with
#    --ignore-not-found: only the namespace, the RBAC objects and the MutatingWebhookConfiguration
#    were applied; the Deployments, DaemonSet, ConfigMaps and manifests' Services were not, the
#    components run on the rig's control plane, not in Pods) leave, within 60 s, no object
#    labelled app.kubernetes.io/part-of=kubedirect of any listable kind, namespaced (all
#    namespaces) or cluster-scoped.
# Not covered: the components' own Pods (Deployments, DaemonSet, images, the chan-token Secret:
# test_manifests_dry_run.sh dry-runs them), kd-node's --direct-bind 0.0.0.0 reached at a pod IP.
# Our Node is not tainted (the example has no toleration): kd-autoscaler's --node-selector keeps
# its instances there. Skipped when kubedirect is installed on the rig.
. "$(dirname "$0")/lib.sh"
. "$IT_DIR/lib_kd_as.sh"

MF="$REPO/manifests"
ACTBIN="$KD_BUILD_DIR/bin/kd-activator"
GWBIN="$KD_BUILD_DIR/bin/kd-gateway"
NODEBIN="$KD_BUILD_DIR/bin/kd-node"
PLUGINS="$KD_BUILD_DIR/plugins"
HELLO="$KD_BUILD_DIR/functions/hello"
QUEUE="$KD_CACHE/bin/knative-serving-v0.50.0/queue"
for f in "$ACTBIN" "$GWBIN" "$NODEBIN" "$HELLO" "$PLUGINS/kd-runtime-kubelet.so" "$PLUGINS/kd-runtime-process.so" "$QUEUE"; do
	[[ -e "$f" ]] || die "missing $f (make all; rig/build)"
done
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
KDN_DIRECT_PORT=$((AS_STATS_PORT + 12)) KDN_ADMIN_PORT=$((AS_STATS_PORT + 13))
NODE=kd-mfk-185
PART_OF=app.kubernetes.io/part-of=kubedirect
TMP="$(mktemp -d)"
PODLOG="$KD_RUNS/current/pods-mf"
mkdir -p "$PODLOG"
ACT_PID="" GW_PID="" KUB_PID="" ATT_PID="" KUB_LOG="" ATT_LOG="" rbac_applied=0 made_ns=0

# stop_pid PID [SIGNAL]: SIGNAL (TERM), then SIGKILL after 10 s
stop_pid() {
	[[ -n "$1" ]] || return 0
	kill "-${2:-TERM}" "$1" 2>/dev/null || true
	for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$1" 2>/dev/null || true
}
on_node() { kc get pods -A --field-selector "spec.nodeName=$NODE" -o name 2>/dev/null; }
eval "lib_$(declare -f as_cleanup)"
as_cleanup() {
	local rc=$?
	set +e
	stop_pid "$ACT_PID"
	stop_pid "$GW_PID"
	if [[ -n "$KUB_PID" ]]; then
		# the "kubelet" stops the sandboxes of what is deleted (bounded: 20 s)
		kc delete namespace "${IT_NS:-none}" --wait=false >/dev/null 2>&1
		for _ in $(seq 1 40); do [[ -z "$(on_node)" ]] && break; sleep 0.5; done
	fi
	stop_pid "$ATT_PID"
	stop_pid "$KUB_PID"
	lib_as_cleanup
	kc delete lease -n kube-node-lease "$NODE" --ignore-not-found >/dev/null 2>&1
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
# objects_of FILE JQ-SELECT: the objects of a rendered file, one JSON document each
objects_of() { kc create --dry-run=client -f "$1" -o json | jq -c "if .kind == \"List\" then .items[] else . end | $2"; }
objects_of "$TMP/main.yaml" 'select(.kind == "Namespace")' >"$TMP/ns.json"
made_ns=1
kc apply -f "$TMP/ns.json" >/dev/null
expect_eq "namespace kubedirect applied from the rendered manifests (labelled)" kubedirect \
	"$(kc get namespace -l "$PART_OF" -o jsonpath='{.items[*].metadata.name}')"
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
KDN_KC="$(sa_kubeconfig kd-node)"
expect_eq "kd-autoscaler's identity" system:serviceaccount:kubedirect:kd-autoscaler \
	"$(kc --kubeconfig "$AS_KC" auth whoami -o jsonpath='{.status.userInfo.username}')"
expect_eq "kd-node's identity" system:serviceaccount:kubedirect:kd-node \
	"$(kc --kubeconfig "$KDN_KC" auth whoami -o jsonpath='{.status.userInfo.username}')"

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
objects_of "$TMP/main.yaml" 'select(.kind == "MutatingWebhookConfiguration") |
	.webhooks[0].namespaceSelector = {matchLabels: {"kubernetes.io/metadata.name": "'"$NS"'"}}' >"$TMP/mwc.json"
kc apply -f "$TMP/mwc.json" >/dev/null
log "MutatingWebhookConfiguration kubedirect.dev (namespaceSelector: $NS only)"

# --- the Node and its "kubelet" (a vanilla kd-node, the rig's admin identity: not ours) ---------
RTCFG="{\"bridge-netns\":\"/proc/$$/ns/net\",\"images\":\"{\\\"dev.local/hello\\\":\\\"$HELLO\\\"}\",\"queue-bin\":\"$QUEUE\",\"log-dir\":\"$PODLOG\",\"restart-backoff\":\"1s\",\"startup-probe-period\":\"5ms\"}"
kc delete node "$NODE" --ignore-not-found >/dev/null 2>&1 || true
KUB_LOG="$TMP/kd-node-kubelet.log"
setsid ip netns exec kd-cp env KD_PLUGIN_DIR="$PLUGINS" "$NODEBIN" --kubeconfig "$KD_KUBECONFIG" \
	--nodes 1 --node-prefix kd-mfk --node-index-base 185 --pod-cidr 10.244.0.0/16 --max-pods 50 \
	--runtime runtime-process --runtime-config "$RTCFG" </dev/null >"$KUB_LOG" 2>&1 &
KUB_PID=$!
# shellcheck disable=SC2034 # dn_stop (lib_kd_as.sh) deletes it
DN_NODES=("$NODE")
node_ready() { [[ "$(kc get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
wait_for "Node $NODE registered and Ready (its kubelet: kd-node pid $KUB_PID, runtime-process)" 60 node_ready
annot() { kc get node "$NODE" -o jsonpath='{.metadata.annotations.kubedirect\.dev/channel-addr}'; }
expect_eq "no instance channel on the Node before the attach" "" "$(annot)"
CIDR="$(kc get node "$NODE" -o jsonpath='{.spec.podCIDR}')"

# --- the components as their ServiceAccounts ----------------------------------------------------
as_start --kubeconfig "$AS_KC" --node-selector "kubernetes.io/hostname in ($NODE)" --admin-port "$AS_ADMIN_PORT" \
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

# kd-node as its DaemonSet runs it: the ConfigMap's keys as --config-dir, the DaemonSet's args
# (--attach-node --runtime runtime-kubelet --direct --direct-port --direct-addr); for the rig,
# args (which win over the directory) give the status channels' and admin addresses.
CFG="$TMP/kd-node-config"
mkdir -p "$CFG"
objects_of "$TMP/main.yaml" 'select(.kind == "ConfigMap" and .metadata.name == "kd-node")' >"$TMP/kd-node-cm.json"
jq -r '.data | keys[]' "$TMP/kd-node-cm.json" | while read -r k; do
	jq -j --arg k "$k" '.data[$k]' "$TMP/kd-node-cm.json" >"$CFG/$k"
done
expect_eq "kd-node's ConfigMap keys" "admin-bind admin-port direct-bind direct-write-burst direct-write-qps log-format log-level runtime-config status-addr" \
	"$(cd "$CFG" && echo *)"
DS_ARGS="$(objects_of "$TMP/main.yaml" 'select(.kind == "DaemonSet" and .metadata.name == "kd-node") | .spec.template.spec.containers[0].args | join(" ")')"
# shellcheck disable=SC2016 # the DaemonSet's literal $(NODE_NAME) and $(POD_IP)
expect_eq "kd-node's DaemonSet args (as this test gives them)" \
	'"--config-dir /etc/kubedirect/kd-node --attach-node $(NODE_NAME) --runtime runtime-kubelet --direct --direct-port 9470 --direct-addr $(POD_IP):9470"' "$DS_ARGS"
# shellcheck disable=SC2153 # AS_STATUS_PORT: lib_kd_as.sh
att_ready() {
	kill -0 "$ATT_PID" 2>/dev/null || return 1
	[[ -n "$(annot)" && "$(annot)" == "$CP_IP:$KDN_DIRECT_PORT" ]] &&
		grep -q "status channel 127.0.0.1:$AS_STATUS_PORT ready" "$ATT_LOG" &&
		grep -q "status channel $CP_IP:$ACT_STATUS_PORT ready" "$ATT_LOG"
}
ATT_LOG="$TMP/kd-node.log"
ip netns exec kd-cp env KD_PLUGIN_DIR="$PLUGINS" "$NODEBIN" --kubeconfig "$KDN_KC" --config-dir "$CFG" \
	--attach-node "$NODE" --runtime runtime-kubelet --direct --direct-port "$KDN_DIRECT_PORT" \
	--direct-addr "$CP_IP:$KDN_DIRECT_PORT" \
	--status-addr "127.0.0.1:$AS_STATUS_PORT,$CP_IP:$ACT_STATUS_PORT" --admin-port "$KDN_ADMIN_PORT" \
	>"$ATT_LOG" 2>&1 &
ATT_PID=$!
wait_for "kd-node (as its ServiceAccount) attached to $NODE: channel published, both status channels handshaken" 60 att_ready
wait_for "kd-node /readyz (as its ServiceAccount)" 30 ready "http://127.0.0.1:$KDN_ADMIN_PORT/readyz"
kdn_metric() { ip netns exec kd-cp curl -sf --max-time 5 "http://127.0.0.1:$KDN_ADMIN_PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
log "kd-node (attach) pid $ATT_PID, log $ATT_LOG; its kubelet pid $KUB_PID, log $KUB_LOG"

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

# --- scale-out: the example Service (class annotation only) at its initial scale ----------------
expect_eq "the example's only annotation is the class" '{"autoscaling.knative.dev/class":"kd.kubedirect.dev"}' \
	"$(objects_of "$MF/examples/hello.yaml" '.spec.template.metadata.annotations')"
kc -n "$NS" apply -f "$MF/examples/hello.yaml" >/dev/null
wait_for "revision of hello created" 120 has_rev hello
REV="$(rev_of hello)"
wait_for "Deployment $REV-deployment exists" 60 kc -n "$NS" get deployment "$REV-deployment"
dep="$(kc -n "$NS" get deployment "$REV-deployment" -o json)"
expect_eq "created with replicas 0 by the webhook" 0 "$(jq -r .spec.replicas <<<"$dep")"
expect_eq "the replicas asked for, annotated" 1 "$(jq -r '.metadata.annotations["kubedirect.dev/initial-replicas"]' <<<"$dep")"
metric() { ip netns exec kd-cp curl -s --max-time 5 "http://$CP_IP:$AS_ADMIN_PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
expect_eq "the webhook zeroed it (its class read from the Revision)" 1 \
	"$(metric 'kd_autoscaler_webhook_reviews_total{result="zeroed"}')"
wait_for "Revision $REV Ready at its initial scale" 120 rev_ready "$REV"
wait_for "Knative reports 1 (PA actualScale, Revision actualReplicas)" 60 actual_is 1
ksvc_ready() { [[ "$(kc -n "$NS" get ksvc hello -o jsonpath='{.status.conditions[?(@.type=="ConfigurationsReady")].status}')" == True ]]; }
check "ksvc hello: ConfigurationsReady" ksvc_ready
pods="$(rev_pods -o json --show-managed-fields)"
expect_eq "one Pod of the revision" 1 "$(jq '.items | length' <<<"$pods")"
expect_eq "a kd instance (kubedirect.dev/managed), no pod-template-hash" 1 \
	"$(jq '[.items[] | select(.metadata.labels["kubedirect.dev/managed"] == "true" and .metadata.labels["pod-template-hash"] == null)] | length' <<<"$pods")"
expect_eq "bound to $NODE" "$NODE" "$(jq -r '.items[0].spec.nodeName' <<<"$pods")"
expect_eq "created by runtime-kubelet (kd-node) with spec.nodeName set at creation: only it owns nodeName, no binding (managedFields)" 1 \
	"$(jq '[.items[] | select(any(.metadata.managedFields[]; .manager == "kd-runtime-kubelet" and .subresource == null and (.fieldsV1["f:spec"]["f:nodeName"] != null)) and all(.metadata.managedFields[]; .subresource != "binding" and (.manager == "kd-runtime-kubelet" or (.fieldsV1["f:spec"]["f:nodeName"] == null))))] | length' <<<"$pods")"
PAUID="$(kc -n "$NS" get podautoscaler "$REV" -o jsonpath='{.metadata.uid}')"
expect_eq "owned by the PodAutoscaler only (no ReplicaSet owner)" 1 \
	"$(jq --arg u "$PAUID" '[.items[] | select(([.metadata.ownerReferences[].kind] == ["PodAutoscaler"]) and .metadata.ownerReferences[0].uid == $u)] | length' <<<"$pods")"
rs_creates() { kc -n "$NS" get events -o json | jq --arg r "$REV" '[.items[] | select(.involvedObject.kind == "ReplicaSet" and .reason == "SuccessfulCreate" and (.involvedObject.name | startswith($r)))] | length'; }
expect_eq "no ReplicaSet of $REV created a Pod (events)" 0 "$(rs_creates)"
expect_eq "none bound by the scheduler (no Scheduled event)" 0 \
	"$(kc -n "$NS" get events --field-selector reason=Scheduled -o name | grep -c . || true)"
POD_IP="$(jq -r '.items[0].status.podIP' <<<"$pods")"
[[ "$POD_IP" == "${CIDR%.*}."* ]] || die "pod IP $POD_IP not from the kubelet's podCIDR $CIDR"
log "ok: pod IP $POD_IP from the kubelet's podCIDR $CIDR"
kdn_holds() { [[ "$(kdn_metric 'kd_node_pods{state="ready"}')" == "$1" && "$(kdn_metric kd_node_instances)" == "$2" ]]; }
wait_for "kd-node holds 1 ready instance (runtime-kubelet READY)" 30 kdn_holds 1 1
expect_eq "public Endpoints written by kd-autoscaler (Serve mode: the instance)" "$POD_IP" \
	"$(kc -n "$NS" get endpoints "$REV" -o json 2>/dev/null | jq -r '[.subsets[]?.addresses[]?.ip] | join(",")')"
expect_eq "private Service written by kd-autoscaler" "$REV-private" \
	"$(kc -n "$NS" get service "$REV-private" -o jsonpath='{.metadata.name}')"
expect_eq "public Service written by kd-autoscaler" "$REV" \
	"$(kc -n "$NS" get service "$REV" -o jsonpath='{.metadata.name}')"
routes() { ip netns exec kd-cp curl -s --max-time 2 "http://$CP_IP:$ACT_ADMIN_PORT/debug/routes" | jq -e --arg r "$REV" \
	'.revisions[] | select(.revision == $r) | .instances[] | select(.routable)'; }
wait_for "kd-activator routes revision $REV (a routable instance)" 30 routes

# --- requests -------------------------------------------------------------------------------------
body="$(ip netns exec kd-cp curl -sS --max-time 30 -H "Knative-Serving-Namespace: $NS" \
	-H "Knative-Serving-Revision: $REV" "http://$CP_IP:$ACT_PORT/")" || die "request through kd-activator failed: $(tail -n 20 "$ACT_LOG")"
expect_eq "a request through kd-activator answered by the instance" "Hello from $REV" "$body"

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
body="$(ip netns exec kd-cp curl -sS --max-time 30 -H "Host: mf.$NS.example.com" "http://$CP_IP:$GW_PORT/")" ||
	die "request through kd-gateway failed: $(tail -n 20 "$GW_LOG")"
expect_eq "a request through kd-gateway by Host answered by the instance" "Hello from $REV" "$body"

# --- scale-in ---------------------------------------------------------------------------------------
check "scale message $REV -> 0" as_scale "$REV" 0
none() { [[ -z "$(rev_pods -o name)" ]]; }
wait_for "the instance Pod deleted" 120 none
wait_for "PA actualScale and Revision actualReplicas 0" 60 actual_is 0
wait_for "kd-node holds no instance" 30 kdn_holds 0 0

# events: a revision whose decider fails
ksvc_apply bad kd.kubedirect.dev '        autoscaling.knative.dev/metric: kd-bogus'
wait_for "revision of bad created" 120 has_rev bad
BAD="$(rev_of bad)"
wait_for "Warning event DecisionFailed on $BAD" 60 has_event "$BAD" DecisionFailed
check "still no Pod of $REV" none

# --- the components stop; nothing was refused ----------------------------------------------------
stop_pid "$ATT_PID" TERM
rc=0
wait "$ATT_PID" || rc=$?
ATT_PID=""
expect_eq "kd-node's exit status after SIGTERM" 0 "$rc"
expect_eq "its annotation removed from $NODE (as kd-node)" "" "$(annot)"
stop_pid "$ACT_PID" && ACT_PID=""
stop_pid "$GW_PID" && GW_PID=""
as_stop
for l in "$AS_LOG" "$ACT_LOG" "$GW_LOG" "$ATT_LOG" "$KUB_LOG"; do
	if grep -i -E 'forbidden| 403([^0-9]|$)' "$l" >&2; then die "RBAC refused a call ($l)"; fi
done
log "ok: no call of kd-autoscaler, kd-activator, kd-gateway or kd-node was refused (no \"forbidden\" or \" 403\" in their logs)"

# --- kubectl delete -k leaves no object of ours ----------------------------------------------------
out="$(kc delete -k "$MF/gateway" --ignore-not-found --timeout=90s 2>&1)" || die "kubectl delete -k manifests/gateway/: $out"
out="$(kc delete -k "$MF" --ignore-not-found --timeout=90s 2>&1)" || die "kubectl delete -k manifests/: $out"
log "kubectl delete -k manifests/gateway/ and manifests/: $(grep -c deleted <<<"$out") objects deleted by the second"
NS_KINDS="$(kc api-resources --verbs=list --namespaced=true -o name | paste -sd, -)"
CL_KINDS="$(kc api-resources --verbs=list --namespaced=false -o name | paste -sd, -)"
# the namespaces manifests/ puts objects in (kubedirect, knative-serving): objects of ours made
# in other namespaces belong to other tests (test_kd_webhook's Secret in its own namespace,
# still terminating after its --wait=false delete), not to this installation
MF_NS="$(cat "$TMP/main.yaml" "$TMP/gateway.yaml" | awk '/^  namespace: /{print $2} /^kind: Namespace/{ns=1} ns && /^  name: /{print $2; ns=0}' | sort -u | paste -sd' ' -)"
ours() {
	local list
	list="$(kc get "$NS_KINDS" -A -l "$PART_OF" \
		-o jsonpath='{range .items[*]}{.metadata.namespace} {.kind}/{.metadata.name}{"\n"}{end}' 2>/dev/null)" ||
		{ echo "(list failed)"; return; }
	awk -v keep="$MF_NS" 'BEGIN { n = split(keep, k, " "); for (i = 1; i <= n; i++) want[k[i]] = 1 }
		($1 in want) { print $1 "/" $2 }' <<<"$list"
	kc get "$CL_KINDS" -l "$PART_OF" -o name 2>/dev/null || echo "(list failed)"
}
left="$(ours)" t0=$SECONDS
while [[ -n "$left" ]]; do
	((SECONDS - t0 < 60)) || die "60 s after kubectl delete -k, objects labelled $PART_OF are left: $(tr '\n' ' ' <<<"$left")"
	sleep 1
	left="$(ours)"
done
log "ok: no object labelled $PART_OF left, namespaced (in $MF_NS) or cluster-scoped ($((SECONDS - t0))s)"
expect_eq "none of the applied objects left (by name)" "" \
	"$(cat "$TMP/ns.json" "$TMP/mwc.json" "$TMP/rbac.json" | kc get -f - --ignore-not-found -o name 2>&1)"
log "PASS"
