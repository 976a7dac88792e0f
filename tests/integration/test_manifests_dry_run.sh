#!/usr/bin/env bash
# manifests/ against the rig's API Server (RBAC on, Knative Serving's CRDs and webhook):
#  - `kubectl kustomize` renders manifests/ and manifests/gateway/; server-side dry runs of both
#    and of manifests/examples/hello.yaml pass (the namespace kubedirect is created first when the
#    rig has none, and deleted again);
#  - every object carries app.kubernetes.io/part-of=kubedirect (and so does every pod template);
#  - every RBAC rule in the source files has a comment line right above it (the code site that
#    needs it), and no Role or ClusterRole grants "*" (verbs, resources or API groups);
#  - kd-autoscaler's activator-ips is kd-activator's clusterIP, kd-gateway's public-ip its own;
#  - every ConfigMap key is an option of its component: the built binary, given the ConfigMap as
#    --config-dir and its container's args, stops at the missing kubeconfig (exit 1), never at
#    its options (exit 2);
#  - with only the RBAC objects applied for real (ServiceAccounts, Roles, bindings; removed at
#    the end), each ServiceAccount may make the API calls its code makes and a sample of others
#    is refused (kubectl auth can-i --as). Skipped when kubedirect is installed on the rig.
. "$(dirname "$0")/lib.sh"

MF="$REPO/manifests"
BIN="$KD_BUILD_DIR/bin"
TMP="$(mktemp -d)"
made_ns=0 rbac_applied=0
cleanup() {
	if ((rbac_applied)); then
		kc delete -f "$TMP/rbac.json" --ignore-not-found --wait=false >/dev/null 2>&1 || true
	fi
	if ((made_ns)); then
		# waited for, so that a next run finds it gone rather than terminating
		kc delete namespace kubedirect --ignore-not-found --timeout=90s >/dev/null 2>&1 || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

# --- rendering --------------------------------------------------------------------------------
check "kubectl kustomize manifests renders" bash -c "'$KUBECTL' kustomize '$MF' >'$TMP/main.yaml'"
check "kubectl kustomize manifests/gateway renders" \
	bash -c "'$KUBECTL' kustomize '$MF/gateway' >'$TMP/gateway.yaml'"

# --- server-side dry runs ---------------------------------------------------------------------
ns_phase() { kc get namespace kubedirect -o jsonpath='{.status.phase}' 2>/dev/null || true; }
if [[ "$(ns_phase)" == Terminating ]]; then
	wait_for "namespace kubedirect (terminating) gone" 120 bash -c "[[ -z \"\$('$KUBECTL' get namespace kubedirect -o name 2>/dev/null)\" ]]"
fi
if kc get namespace kubedirect >/dev/null 2>&1; then
	log "namespace kubedirect exists already: left as it is"
else
	kc apply -f "$MF/base/namespace.yaml" >/dev/null
	made_ns=1
	log "namespace kubedirect created for the dry runs (deleted at the end)"
fi
dry() { # dry NAME ARGS...: server-side dry run, its objects as JSON in $TMP/NAME.json
	local name="$1"
	shift
	if ! kc apply --dry-run=server "$@" -o json >"$TMP/$name.json" 2>"$TMP/$name.err"; then
		cat "$TMP/$name.err" >&2
		die "kubectl apply --dry-run=server $*"
	fi
	log "ok: kubectl apply --dry-run=server $* ($(items "$name" | jq -s length) objects)"
}
items() { jq -c 'if .kind == "List" then .items[] else . end' "$TMP/$1.json"; }
dry main -k "$MF"
dry gateway -k "$MF/gateway"
dry hello -n default -f "$MF/examples/hello.yaml"

all() { items main; items gateway; }
expect_eq "kinds in manifests/" \
	"ClusterRole ClusterRoleBinding ConfigMap DaemonSet Deployment MutatingWebhookConfiguration Namespace PodDisruptionBudget Role RoleBinding Service ServiceAccount" \
	"$(items main | jq -r .kind | sort -u | xargs)"
expect_eq "Deployments and DaemonSets" \
	"DaemonSet/kd-node Deployment/kd-activator Deployment/kd-autoscaler Deployment/kd-gateway" \
	"$(all | jq -r 'select(.kind == "Deployment" or .kind == "DaemonSet") | "\(.kind)/\(.metadata.name)"' | sort | xargs)"
expect_eq "the example is a kd-class Knative Service with only that annotation" \
	'{"autoscaling.knative.dev/class":"kd.kubedirect.dev"}' \
	"$(items hello | jq -c '.spec.template.metadata.annotations')"

# --- labels -----------------------------------------------------------------------------------
unlabelled="$(all | jq -r 'select(.metadata.labels["app.kubernetes.io/part-of"] != "kubedirect") | "\(.kind)/\(.metadata.name)"')"
expect_eq "every object carries app.kubernetes.io/part-of=kubedirect" "" "$unlabelled"
unlabelled="$(all | jq -r 'select(.spec.template.metadata? and .spec.template.metadata.labels["app.kubernetes.io/part-of"] != "kubedirect") | "\(.kind)/\(.metadata.name)"')"
expect_eq "every pod template carries it too" "" "$unlabelled"
expect_eq "selectors stay without it (immutable once applied)" "" \
	"$(all | jq -r 'select(((.spec.selector? // {}) | tostring) | test("part-of")) | "\(.kind)/\(.metadata.name)"')"
expect_eq "every namespaced object names its namespace (kubedirect, or knative-serving for config-autoscaler)" \
	"knative-serving kubedirect" \
	"$(all | jq -r '.metadata.namespace // empty' | sort -u | xargs)"

# --- RBAC -------------------------------------------------------------------------------------
# In the source files: inside each Role/ClusterRole document, every rule ("- apiGroups:") has a
# comment line right above it.
uncommented="$(awk '
	FNR == 1 { kind = ""; prev = "" }
	/^---/ { kind = "" }
	/^kind:/ { kind = $2 }
	(kind == "Role" || kind == "ClusterRole") && /^ *- apiGroups:/ && prev !~ /^ *#/ { print FILENAME ":" FNR }
	{ prev = $0 }' "$MF"/base/*.yaml "$MF"/gateway/*.yaml)"
expect_eq "every RBAC rule has a comment line above it" "" "$uncommented"
src_rules="$(cat "$MF"/base/*.yaml "$MF"/gateway/*.yaml | awk '/^---/{k=""} /^kind:/{k=$2} (k=="Role"||k=="ClusterRole") && /^ *- apiGroups:/{n++} END{print n+0}')"
expect_eq "the rendered roles hold exactly the source's rules" "$src_rules" \
	"$(all | jq -s '[.[] | select(.kind == "Role" or .kind == "ClusterRole") | .rules[]] | length')"
expect_eq "no Role or ClusterRole grants \"*\"" "" \
	"$(all | jq -r 'select(.kind == "Role" or .kind == "ClusterRole") | . as $r | .rules[] | select(((.verbs // []) + (.resources // []) + (.apiGroups // [])) | index("*")) | "\($r.kind)/\($r.metadata.name): \(tostring)"')"
expect_eq "one ServiceAccount per component" "kd-activator kd-autoscaler kd-gateway kd-node" \
	"$(all | jq -r 'select(.kind == "ServiceAccount") | .metadata.name' | sort | xargs)"
expect_eq "each workload runs as its own ServiceAccount" "" \
	"$(all | jq -r 'select(.kind == "Deployment" or .kind == "DaemonSet") | select(.spec.template.spec.serviceAccountName != .metadata.name) | .metadata.name')"

# --- the wiring -------------------------------------------------------------------------------
cm() { all | jq -r --arg n "$1" --arg k "$2" 'select(.kind == "ConfigMap" and .metadata.name == $n) | .data[$k]'; }
svc_ip() { all | jq -r --arg n "$1" 'select(.kind == "Service" and .metadata.name == $n) | .spec.clusterIP'; }
expect_eq "kd-autoscaler's activator-ips is kd-activator's clusterIP" "$(svc_ip kd-activator)" "$(cm kd-autoscaler activator-ips)"
expect_eq "kd-gateway's public-ip is its Service's clusterIP" "$(svc_ip kd-gateway)" "$(cm kd-gateway public-ip)"
mwc="$(items main | jq -c 'select(.kind == "MutatingWebhookConfiguration") | .webhooks[0]')"
expect_eq "webhook: name, failurePolicy, sideEffects, timeout, versions" \
	'deployments.kubedirect.dev Ignore None 5 ["v1"]' \
	"$(jq -r '"\(.name) \(.failurePolicy) \(.sideEffects) \(.timeoutSeconds) \(.admissionReviewVersions | tojson)"' <<<"$mwc")"
expect_eq "webhook: no caBundle (kd-autoscaler writes it)" null "$(jq -r .clientConfig.caBundle <<<"$mwc")"
expect_eq "webhook: calls kd-autoscaler's --webhook-service" "$(cm kd-autoscaler webhook-service)" \
	"$(jq -r '"\(.clientConfig.service.name).\(.clientConfig.service.namespace)"' <<<"$mwc")"
expect_eq "webhook: never sees kube-system or kubedirect" true \
	"$(jq '[.namespaceSelector.matchExpressions[] | select(.operator == "NotIn") | .values[]] | (index("kube-system") != null and index("kubedirect") != null)' <<<"$mwc")"
expect_eq "the MutatingWebhookConfiguration is kd-autoscaler's --webhook-config" "$(cm kd-autoscaler webhook-config)" \
	"$(items main | jq -r 'select(.kind == "MutatingWebhookConfiguration") | .metadata.name')"
# a Service's port -> the number of the named container port it targets
svc_port() {
	local tp
	tp="$(all | jq -r --arg s "$1" --arg p "$3" 'select(.kind == "Service" and .metadata.name == $s) | .spec.ports[] | select(.port == ($p | tonumber)) | .targetPort')"
	all | jq -r --arg d "$2" --arg tp "$tp" 'select(.kind == "Deployment" and .metadata.name == $d) | .spec.template.spec.containers[0].ports[] | select(.name == $tp or (.containerPort | tostring) == $tp) | .containerPort'
}
expect_eq "kd-webhook's 443 reaches kd-autoscaler's webhook-port" "$(cm kd-autoscaler webhook-port)" "$(svc_port kd-webhook kd-autoscaler 443)"
expect_eq "kd-autoscaler's stats port is the stats-port" "$(cm kd-autoscaler stats-port)" "$(svc_port kd-autoscaler kd-autoscaler 8080)"
expect_eq "kd-autoscaler's status port is the status-port" "$(cm kd-autoscaler status-port)" "$(svc_port kd-autoscaler kd-autoscaler 9471)"
expect_eq "kd-activator's data port is its port" "$(cm kd-activator port)" "$(svc_port kd-activator kd-activator 8012)"
expect_eq "kd-activator's status port is its status-port" "$(cm kd-activator status-port)" "$(svc_port kd-activator kd-activator 9472)"
expect_eq "kd-gateway's port 80 reaches its port" "$(cm kd-gateway port)" "$(svc_port kd-gateway kd-gateway 80)"
expect_eq "kd-activator's --autoscaler is kd-autoscaler's stats Service port" "kd-autoscaler.kubedirect.svc:$(cm kd-autoscaler stats-port)" "$(cm kd-activator autoscaler)"
expect_eq "kd-node reports to kd-autoscaler's and kd-activator's status ports" \
	"kd-autoscaler.kubedirect.svc:$(cm kd-autoscaler status-port),kd-activator.kubedirect.svc:$(cm kd-activator status-port)" \
	"$(cm kd-node status-addr)"
for d in kd-autoscaler kd-activator kd-node kd-gateway; do
	expect_eq "$d's probes use its admin-port" "$(cm "$d" admin-port) $(cm "$d" admin-port)" \
		"$(all | jq -r --arg d "$d" 'select((.kind == "Deployment" or .kind == "DaemonSet") and .metadata.name == $d) | .spec.template.spec.containers[0] | . as $c | [.livenessProbe, .readinessProbe] | map(.httpGet.port as $p | $c.ports[] | select(.name == $p) | .containerPort) | join(" ")')"
done

# --- ConfigMap keys and container args against the built binaries ----------------------------
# A workload's container: its ConfigMap written out as a --config-dir, its args with $(VAR)
# replaced, --kubeconfig pointing nowhere. The options are checked before the kubeconfig is
# read: exit 1 (kubeconfig) means they were all accepted.
while read -r w; do
	name="$(jq -r .name <<<"$w")"
	bin="$BIN/$name"
	[[ -x "$bin" ]] || die "no $bin (make first)"
	dir="$TMP/config-$name"
	mkdir -p "$dir"
	all | jq -c --arg n "$name" 'select(.kind == "ConfigMap" and .metadata.name == $n) | .data | to_entries[]' |
		while read -r kv; do jq -j .value <<<"$kv" >"$dir/$(jq -r .key <<<"$kv")"; done
	# shellcheck disable=SC2016 # $(NODE_NAME) and $(POD_IP) are the manifests' literal text
	mapfile -t args < <(jq -r '.args[]' <<<"$w" |
		sed -e "s|^/etc/kubedirect/$name\$|$dir|" -e 's/\$(NODE_NAME)/kd-manifests-node/' -e 's/\$(POD_IP)/10.0.0.1/')
	missing="" help="$("$bin" --help)"
	for a in "${args[@]}"; do
		[[ "$a" == --* ]] || continue
		grep -q -- "^ *${a%%=*}[= ]" <<<"$help" || grep -q -- "^ *--\[no-\]${a#--}\b" <<<"$help" || missing+=" $a"
	done
	if [[ -n "$missing" ]]; then
		log "skip: $name's args use$missing, which $bin does not have yet (an unmerged branch)"
		args=(--config-dir "$dir")
	fi
	set +e
	POD_NAME=kd-manifests-test timeout 20 "$bin" "${args[@]}" --kubeconfig "$TMP/no-kubeconfig" >"$TMP/$name.out" 2>&1
	rc=$?
	set -e
	if ((rc != 1)) || ! grep -q "no-kubeconfig" "$TMP/$name.out"; then
		cat "$TMP/$name.out" >&2
		die "$name with its ConfigMap and args: exit $rc (want 1, at the kubeconfig)"
	fi
	log "ok: $name accepts its ConfigMap ($(find "$dir" -type f | wc -l) keys) and args"
done < <(all | jq -c 'select(.kind == "Deployment" or .kind == "DaemonSet") | .spec.template.spec.containers[0] | {name, args}')

# --- RBAC for real: what each ServiceAccount may do ------------------------------------------
if ((!made_ns)) || kc get clusterrole kubedirect:kd-autoscaler >/dev/null 2>&1; then
	log "skip: kubedirect is installed on this rig; its RBAC is not applied again nor removed"
	exit 0
fi
all | jq -s '{apiVersion: "v1", kind: "List", items: [.[] | select(.kind | test("^(ServiceAccount|Role|ClusterRole|RoleBinding|ClusterRoleBinding)$")) | del(.metadata.annotations, .metadata.uid, .metadata.resourceVersion, .metadata.creationTimestamp, .metadata.managedFields)]}' >"$TMP/rbac.json"
rbac_applied=1
kc apply -f "$TMP/rbac.json" >/dev/null
log "RBAC objects applied ($(jq '.items | length' "$TMP/rbac.json"))"
# can SA WANT VERB RESOURCE [kubectl auth can-i flags...]
can() {
	local sa="$1" want="$2" verb="$3" res="$4" got
	shift 4
	got="$(kc auth can-i "$verb" "$res" "$@" --as="system:serviceaccount:kubedirect:$sa" 2>/dev/null || true)"
	[[ "$got" == "$want" ]] || die "$sa: can-i $verb $res $*: want $want, got '$got'"
}
PA=podautoscalers.autoscaling.internal.knative.dev
n=0
while read -r sa want verbs res flags; do
	[[ -z "$sa" || "$sa" == \#* ]] && continue
	IFS=, read -ra vs <<<"$verbs"
	for v in "${vs[@]}"; do
		# shellcheck disable=SC2086 # flags split on purpose
		can "$sa" "$want" "$v" "$res" $flags
		n=$((n + 1))
	done
done <<EOF
kd-autoscaler yes get,list,watch $PA -A
kd-autoscaler yes patch $PA --subresource=status -A
kd-autoscaler yes update $PA --subresource=finalizers -A
kd-autoscaler no  update,delete,create $PA -A
kd-autoscaler yes get,list,watch,patch deployments.apps -A
kd-autoscaler yes patch deployments.apps --subresource=scale -A
kd-autoscaler no  create,update,delete deployments.apps -A
kd-autoscaler yes list,watch,delete pods -A
kd-autoscaler no  create,patch pods -A
kd-autoscaler yes get,create,patch services -A
kd-autoscaler no  delete services -A
kd-autoscaler yes get,create,update endpoints -A
kd-autoscaler yes create events -A
kd-autoscaler yes list,watch nodes
kd-autoscaler no  patch,update nodes
kd-autoscaler yes get revisions.serving.knative.dev -A
kd-autoscaler no  list revisions.serving.knative.dev -A
kd-autoscaler yes get,patch mutatingwebhookconfigurations.admissionregistration.k8s.io/kubedirect.dev
kd-autoscaler no  get,patch mutatingwebhookconfigurations.admissionregistration.k8s.io/other
kd-autoscaler no  list mutatingwebhookconfigurations.admissionregistration.k8s.io
kd-autoscaler yes get,update secrets/kd-webhook-certs -n kubedirect
kd-autoscaler yes create secrets -n kubedirect
kd-autoscaler no  get,update secrets/other -n kubedirect
kd-autoscaler no  list secrets -n kubedirect
kd-autoscaler no  get,create secrets -n default
kd-autoscaler yes list,watch configmaps/config-autoscaler -n knative-serving
kd-autoscaler no  list configmaps -n knative-serving
kd-autoscaler no  list configmaps/config-network -n knative-serving
kd-autoscaler no  list configmaps/config-autoscaler -n default
kd-node       yes get namespaces/kube-node-lease
kd-node       no  get namespaces/default
kd-node       yes get,patch nodes
kd-node       no  create,delete nodes
kd-node       no  patch nodes --subresource=status
kd-node       yes get,list,watch,create,patch,delete pods -A
kd-node       no  patch pods --subresource=status
kd-node       yes list,watch deployments.apps -A
kd-node       no  get,patch deployments.apps -A
kd-node       yes update $PA --subresource=finalizers -A
kd-node       no  create,update leases.coordination.k8s.io -n kube-node-lease
kd-node       no  list secrets -A
kd-activator  yes list,watch revisions.serving.knative.dev -A
kd-activator  yes list,watch endpoints -A
kd-activator  no  get revisions.serving.knative.dev -A
kd-activator  no  create,update,patch endpoints -A
kd-activator  no  list pods -A
kd-activator  no  list secrets -A
kd-gateway    yes list,watch ingresses.networking.internal.knative.dev -A
kd-gateway    yes patch ingresses.networking.internal.knative.dev --subresource=status -A
kd-gateway    no  patch,update ingresses.networking.internal.knative.dev -A
kd-gateway    yes list,watch services -A
kd-gateway    yes list,watch endpoints -A
kd-gateway    no  create services -A
kd-gateway    no  list secrets -A
EOF
log "ok: $n kubectl auth can-i checks as the four ServiceAccounts"
