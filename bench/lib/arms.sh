# bench/lib/arms.sh: the two arms of the request benchmarks (bench/cold-burst, bench/scale-funcs,
# bench/trace) on the running rig, sourced by their run.sh. Both arms are Knative Services running
# a sample function (functions/hello unless ARMS_FUNCTION says otherwise) in real sandboxes
# (plugins/runtime-process: own netns + veth, Knative's queue-proxy in front of the function),
# identical except the class annotation, each on a Node of its own served by a kd-node on this
# machine:
#  - kd arm: class kd.kubedirect.dev; kd-activator (10.88.0.2:8012 in kd-cp) holds the first
#    request, pokes kd-autoscaler, the chain places the instance on the direct-mode kd-node, which
#    reports it ready to kd-activator over the status channel;
#  - vanilla arm: class kpa.autoscaling.knative.dev; Knative's activator (10.88.0.13:8012); KPA
#    scales the Deployment, kube-scheduler binds, the kd-node (kubelet mode) starts the Pod,
#    Knative's activator routes on the private Endpoints.
# DOOR=activators (default) sends each arm to its activator with the Knative-Serving-* headers;
# DOOR=gateway sends both through kd-gateway (our Knative ingress class, rig/kd-gateway-start) by
# the Service URL's Host, which forwards by the Route's KIngress to the revision's public
# Endpoints (Knative's activator for vanilla, kd-activator for kd).
#
# The caller sets SCEN (its name, for messages), OUT (its report folder), and may set DOOR,
# STARTUP_PROBE, BUILD/KD_BUILD_DIR, ARMS_MAX_PODS (per Node, default 250), ARMS_WINDOW (the
# autoscaling window annotation of every Service, unset: Knative's default), ARMS_IMAGE and
# ARMS_FUNCTION (the Services' image, default dev.local/hello, and the functions/<name> binary
# the sandboxes run for it, default hello: the runtime-config "images" maps one to the other;
# bench/trace uses dev.local/sleep and sleep); then calls
# arms_check, arms_setup, arms_create SERVICE..., arms_wait_ready; door_args ARM SERVICE sets
# TARGET and HDRS. Services named kd-* are the kd arm, every other one vanilla. Everything it
# creates (namespace, Nodes, processes, the config-features change) is undone on exit.

ARMS_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
. "$ARMS_REPO/rig/lib.sh"
DOOR="${DOOR:-activators}"
STARTUP_PROBE="${STARTUP_PROBE:-5ms}" # runtime-process startup-probe-period, both arms (bench/sandbox's)
ARMS_MAX_PODS="${ARMS_MAX_PODS:-250}"
ARMS_IMAGE="${ARMS_IMAGE:-dev.local/hello}"
ARMS_FUNCTION="${ARMS_FUNCTION:-hello}"
_b="${BUILD:-build}"
[[ $_b == /* ]] || _b="$ARMS_REPO/$_b"
BUILD_DIR="${KD_BUILD_DIR:-$_b}"
QUEUE="$KD_CACHE/bin/knative-serving-v0.50.0/queue"
KC="$KD_K8S_BIN/kubectl"
kc() { "$KC" --kubeconfig "$KD_KUBECONFIG" --request-timeout=20s "$@"; }
say() { printf '%s\n' "$*" >&2; }
die() {
	say "$SCEN: $*"
	exit 1
}
wait_for() { # WHAT SECONDS CMD...
	local what="$1" t="$2" t0=$SECONDS
	shift 2
	until "$@"; do
		((SECONDS - t0 < t)) || die "timed out after ${t}s waiting for $what"
		sleep 0.3
	done
}
cpx() { ip netns exec kd-cp "$@"; }
ccurl() { cpx curl -sS "$@"; }

# arms_check: the prerequisites, with one line saying what is missing
arms_check() {
	[[ $DOOR == activators || $DOOR == gateway ]] || { say "$SCEN: DOOR must be activators or gateway"; exit 2; }
	[[ $ARMS_IMAGE =~ ^[a-z0-9./:_-]+$ ]] || { say "$SCEN: ARMS_IMAGE '$ARMS_IMAGE' is not an image name"; exit 2; }
	[[ $ARMS_FUNCTION =~ ^[a-z0-9_-]+$ ]] || { say "$SCEN: ARMS_FUNCTION '$ARMS_FUNCTION' is not a functions/<name>"; exit 2; }
	[[ $EUID -eq 0 ]] || die "must run as root (network namespaces)"
	local b
	for b in bin/kd-node bin/kd-autoscaler bin/kd-activator bin/kd-gateway "functions/$ARMS_FUNCTION" plugins/kd-runtime-process.so bench/sandbox/sandbox; do
		[[ -e "$BUILD_DIR/$b" ]] || die "$BUILD_DIR/$b not built (make all)"
	done
	[[ -x "$QUEUE" ]] || die "$QUEUE missing (rig/build)"
	command -v wrk >/dev/null || die "wrk missing (make deps)"
	command -v jq >/dev/null || die "jq missing (make deps)"
	"$ARMS_REPO/rig/status" --quiet || die "the rig is not up (rig/up)"
	mkdir -p "$OUT"
	# A benchmark namespace still being deleted (the previous scenario's pods going, Endpoints
	# churning) would slow both arms here, the vanilla arm most: wait until the cluster is quiet.
	local t0=$SECONDS
	while kc get namespaces -o name 2>/dev/null | grep -q '^namespace/kd-bench-'; do
		((SECONDS - t0 < 300)) || die "a previous benchmark's namespace kd-bench-* is still there after 300 s"
		sleep 2
	done
	((SECONDS - t0 < 2)) || say "$SCEN: waited $((SECONDS - t0)) s for the previous benchmark's namespaces to go"
}

NS="kd-bench-${SCEN:-arms}-$(date +%s)"
KD_NODE=kd-cb-230 VN_NODE=kd-cb-231
BASE_PORT=$((22000 + RANDOM % 3000))
# kd-activator on 8012: the port kd-autoscaler --activator-ips writes into the public Endpoints
AS_STATS=$BASE_PORT AS_STATUS=$((BASE_PORT + 1)) ACT_PORT=8012
GW=10.88.0.2 GW_OURS=0
ACT_ADMIN=$((BASE_PORT + 3)) ACT_STATUS=$((BASE_PORT + 4))
KN_ACTIVATOR=10.88.0.13:8012
PIDS=()
FEATURES_BEFORE=""
arms_cleanup() {
	local rc=$? p
	set +e
	kc delete namespace "$NS" --wait=false >/dev/null 2>&1
	((GW_OURS)) && "$ARMS_REPO/rig/kd-gateway-stop" >/dev/null 2>&1
	for _ in $(seq 1 120); do
		[[ -z "$(kc get pods -A --field-selector spec.nodeName=$VN_NODE -o name 2>/dev/null)" ]] && break
		sleep 0.5
	done
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
	done
	kc delete node "$KD_NODE" "$VN_NODE" --wait=false >/dev/null 2>&1
	kc delete lease -n kube-node-lease "$KD_NODE" "$VN_NODE" >/dev/null 2>&1
	[[ -n "$FEATURES_BEFORE" ]] &&
		kc -n knative-serving patch configmap config-features --type merge -p "$FEATURES_BEFORE" >/dev/null 2>&1
	exit $rc
}

# arms_setup: the lock, Nodes, config-features, the namespace, kd-gateway (DOOR=gateway) and our
# components, each ready
arms_setup() {
	exec 9>/var/lock/kd-autoscaler-it.lock
	flock -w 900 9 || die "another kd-autoscaler user holds /var/lock/kd-autoscaler-it.lock"
	trap arms_cleanup EXIT
	trap 'exit 130' INT TERM
	local n
	for n in "$KD_NODE:230" "$VN_NODE:231"; do
		kc delete node "${n%%:*}" --ignore-not-found >/dev/null 2>&1 || true
		kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: ${n%%:*}
  labels: {kubernetes.io/hostname: ${n%%:*}}
spec:
  podCIDR: 10.244.${n##*:}.0/24
  podCIDRs: [10.244.${n##*:}.0/24]
  taints:
  - {key: kubedirect.dev/runtime, value: process, effect: NoSchedule}
EOF
	done
	prev() { kc -n knative-serving get configmap config-features -o jsonpath="{.data.kubernetes\.podspec-$1}" 2>/dev/null || true; }
	local pns ptol
	pns="$(prev nodeselector)" ptol="$(prev tolerations)"
	FEATURES_BEFORE="{\"data\":{\"kubernetes.podspec-nodeselector\":$([[ -n "$pns" ]] && echo "\"$pns\"" || echo null),\"kubernetes.podspec-tolerations\":$([[ -n "$ptol" ]] && echo "\"$ptol\"" || echo null)}}"
	kc -n knative-serving patch configmap config-features --type merge \
		-p '{"data":{"kubernetes.podspec-nodeselector":"enabled","kubernetes.podspec-tolerations":"enabled"}}' >/dev/null
	kc create namespace "$NS" >/dev/null
	if [[ $DOOR == gateway ]]; then
		local out
		out="$(KD_GATEWAY_BIN="$BUILD_DIR/bin/kd-gateway" "$ARMS_REPO/rig/kd-gateway-start" 2>&1 9>&-)" || die "rig/kd-gateway-start: $out"
		[[ "$out" == *"already running"* ]] || GW_OURS=1
	fi
	local plug="$BUILD_DIR/plugins"
	# started with ip netns exec directly (not through a shell function), so $! is the component
	ip netns exec kd-cp env KD_PLUGIN_DIR="$plug" "$BUILD_DIR/bin/kd-autoscaler" --kubeconfig "$KD_KUBECONFIG" \
		--stats-port "$AS_STATS" --status-port "$AS_STATUS" --namespace "$NS" --source "kd-autoscaler:$NS" \
		--node-selector "kubernetes.io/hostname=$KD_NODE" --activator-ips 10.88.0.2 \
		>"$OUT/kd-autoscaler.log" 2>&1 9>&- &
	PIDS+=($!)
	ip netns exec kd-cp "$BUILD_DIR/bin/kd-activator" --kubeconfig "$KD_KUBECONFIG" --namespace "$NS" --port "$ACT_PORT" \
		--admin-port "$ACT_ADMIN" --status-port "$ACT_STATUS" --autoscaler "127.0.0.1:$AS_STATS" \
		>"$OUT/kd-activator.log" 2>&1 9>&- &
	PIDS+=($!)
	act_ready() { [[ "$(ccurl -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ACT_ADMIN/readyz" 2>/dev/null)" == 200 ]]; }
	wait_for "kd-activator /readyz" 30 act_ready
	mkdir -p "$OUT/pods"
	local rtcfg="{\"bridge-netns\":\"/proc/$$/ns/net\",\"images\":\"{\\\"$ARMS_IMAGE\\\":\\\"$BUILD_DIR/functions/$ARMS_FUNCTION\\\"}\",\"queue-bin\":\"$QUEUE\",\"log-dir\":\"$OUT/pods\",\"restart-backoff\":\"1s\",\"startup-probe-period\":\"$STARTUP_PROBE\"}"
	setsid ip netns exec kd-cp env KD_PLUGIN_DIR="$plug" "$BUILD_DIR/bin/kd-node" --kubeconfig "$KD_KUBECONFIG" \
		--nodes 1 --node-prefix kd-cb --node-index-base 230 --pod-cidr 10.244.0.0/16 --max-pods "$ARMS_MAX_PODS" \
		--runtime runtime-process --runtime-config "$rtcfg" --direct --direct-port 0 \
		--status-addr "127.0.0.1:$AS_STATUS,127.0.0.1:$ACT_STATUS" </dev/null >"$OUT/kd-node-kd.log" 2>&1 9>&- &
	PIDS+=($!)
	setsid ip netns exec kd-cp env KD_PLUGIN_DIR="$plug" "$BUILD_DIR/bin/kd-node" --kubeconfig "$KD_KUBECONFIG" \
		--nodes 1 --node-prefix kd-cb --node-index-base 231 --pod-cidr 10.244.0.0/16 --max-pods "$ARMS_MAX_PODS" \
		--runtime runtime-process --runtime-config "$rtcfg" </dev/null >"$OUT/kd-node-vanilla.log" 2>&1 9>&- &
	PIDS+=($!)
	node_ready() { [[ "$(kc get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
	wait_for "node $KD_NODE Ready" 60 node_ready "$KD_NODE"
	wait_for "node $VN_NODE Ready" 60 node_ready "$VN_NODE"
	act_chan() { grep -q "status channel 127.0.0.1:$ACT_STATUS ready" "$OUT/kd-node-kd.log"; }
	wait_for "kd-node's status channel to kd-activator" 30 act_chan
}

# arms_ksvc NAME CLASS NODE: a Service at zero (YAML document)
arms_ksvc() {
	cat <<EOF
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: $1}
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/class: $2
        autoscaling.knative.dev/initial-scale: "0"
EOF
	[[ -n "${ARMS_WINDOW:-}" ]] && echo "        autoscaling.knative.dev/window: \"$ARMS_WINDOW\""
	cat <<EOF
    spec:
      nodeSelector: {kubernetes.io/hostname: $3}
      tolerations:
      - {key: kubedirect.dev/runtime, operator: Equal, value: process, effect: NoSchedule}
      containers:
      - image: $ARMS_IMAGE
        ports: [{containerPort: 8080}]
---
EOF
}

# arms_create SERVICE...: kd-* on the kd arm, the others vanilla; all at zero
SVCS=()
declare -A REV HOST
arms_create() {
	local s
	SVCS+=("$@")
	for s in "$@"; do
		if [[ $s == kd-* ]]; then arms_ksvc "$s" kd.kubedirect.dev "$KD_NODE"; else arms_ksvc "$s" kpa.autoscaling.knative.dev "$VN_NODE"; fi
	done | kc -n "$NS" apply -f - >/dev/null
}
_revs_ready() {
	local s r u
	for s in "${SVCS[@]}"; do
		[[ -n "${REV[$s]:-}" && ($DOOR != gateway || -n "${HOST[$s]:-}") ]] && continue
		r="$(kc -n "$NS" get ksvc "$s" -o jsonpath='{.status.latestCreatedRevisionName}')"
		[[ -n "$r" && "$(kc -n "$NS" get revision "$r" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]] || return 1
		if [[ $DOOR == gateway ]]; then # the Route Ready with its URL: served by kd-gateway
			[[ "$(kc -n "$NS" get ksvc "$s" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]] || return 1
			u="$(kc -n "$NS" get ksvc "$s" -o jsonpath='{.status.url}')"
			HOST[$s]="${u#*://}"
		fi
		REV[$s]="$r"
	done
}
_known_all() {
	local s routes
	routes="$(ccurl "http://127.0.0.1:$ACT_ADMIN/debug/routes")" || return 1
	for s in "${SVCS[@]}"; do
		[[ $s == kd-* ]] || continue
		jq -e --arg r "${REV[$s]}" '.revisions[] | select(.revision == $r and .known)' <<<"$routes" >/dev/null || return 1
	done
}
_no_pods() { [[ -z "$(kc -n "$NS" get pods -o name)" ]]; }
# arms_wait_ready [SECONDS]: every Service's revision Ready at zero (and its Route, DOOR=gateway),
# no pod, and kd-activator knows every kd revision
arms_wait_ready() {
	say "$SCEN: ${#SVCS[@]} Services in $NS, waiting for their revisions at zero"
	wait_for "revisions Ready at zero" "${1:-300}" _revs_ready
	wait_for "no pods" 60 _no_pods
	wait_for "kd-activator knows every kd revision" 60 _known_all
	sleep 5 # Knative's activator learns revisions through its own informers
}

# door ARM SERVICE: the URL and headers (one per line) a client sends to reach SERVICE
door() {
	if [[ $DOOR == gateway ]]; then
		printf 'http://%s\nHost: %s\n' "$GW" "${HOST[$2]}"
	elif [[ $1 == vanilla ]]; then
		printf 'http://%s\nKnative-Serving-Namespace: %s\nKnative-Serving-Revision: %s\n' "$KN_ACTIVATOR" "$NS" "${REV[$2]}"
	else
		printf 'http://127.0.0.1:%s\nKnative-Serving-Namespace: %s\nKnative-Serving-Revision: %s\n' "$ACT_PORT" "$NS" "${REV[$2]}"
	fi
}
door_args() { # ARM SERVICE: sets TARGET and HDRS (curl/wrk -H arguments)
	local lines h
	mapfile -t lines < <(door "$1" "$2")
	TARGET="${lines[0]}"
	HDRS=()
	for h in "${lines[@]:1}"; do HDRS+=(-H "$h"); done
}
