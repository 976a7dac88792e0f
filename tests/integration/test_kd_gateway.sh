#!/usr/bin/env bash
# kd-gateway, the Knative ingress class of ours (config-network ingress-class, set by rig/up), on
# the rig with real sandboxes (a kd-node as kubelet with plugins/runtime-process: Knative's
# queue-proxy + functions/hello):
#  - a Knative Service becomes Ready with its URL: kd-gateway reconciles the Route's KIngress and
#    writes its status (NetworkConfigured, LoadBalancerReady, Ready; load balancer IP 10.88.0.2);
#  - `curl` of the URL's host (and of the cluster-local host) through the gateway answers with the
#    function's body; Knative's ingress probe gets 200 and the configuration's hash;
#  - from the host's own network namespace, `curl --resolve <host>:80:10.88.0.2` of the URL works;
#  - a KPA Service at zero answers its first request through the gateway (Knative's activator);
#  - a 50/50 traffic split between two revisions is honoured within +-10 % over 200 requests, and
#    its tag route (tag: canary) answers on its own host;
#  - an unknown host gets 404 with the reason; deleting the Service removes its routes.
. "$(dirname "$0")/lib.sh"

GWBIN="$KD_BUILD_DIR/bin/kd-gateway"
NODEBIN="$KD_BUILD_DIR/bin/kd-node"
HELLO="$KD_BUILD_DIR/functions/hello"
PLUGINS="$KD_BUILD_DIR/plugins"
QUEUE="$KD_CACHE/bin/knative-serving-v0.50.0/queue"
for f in "$GWBIN" "$NODEBIN" "$HELLO" "$PLUGINS/kd-runtime-process.so" "$QUEUE"; do
	[[ -e "$f" ]] || die "missing $f (make all; rig/build)"
done
"$REPO/rig/status" --quiet || die "the rig is not up"

NODE=kd-gw-220
GW_IP=10.88.0.2
GW_ADMIN=9474 # rig/kd-gateway-start's
GW_OURS=0
RUN="$KD_RUNS/current"
PODLOG="$RUN/pods-gw"
mkdir -p "$PODLOG"
KDN_PID="" KDN_LOG="" FEATURES_BEFORE=""

gw_cleanup() {
	local rc=$?
	set +e
	[[ -n "${IT_NS:-}" ]] && kc delete namespace "$IT_NS" --wait=false >/dev/null 2>&1
	for _ in $(seq 1 40); do
		[[ -z "$(kc get pods -A --field-selector spec.nodeName=$NODE -o name 2>/dev/null)" ]] && break
		sleep 0.5
	done
	((GW_OURS)) && "$REPO/rig/kd-gateway-stop" >/dev/null 2>&1
	for p in $KDN_PID; do kill -TERM "$p" 2>/dev/null; done
	for p in $KDN_PID; do
		for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
	done
	kc delete node "$NODE" --wait=false >/dev/null 2>&1
	kc delete lease -n kube-node-lease "$NODE" >/dev/null 2>&1
	[[ -n "$FEATURES_BEFORE" ]] &&
		kc -n knative-serving patch configmap config-features --type merge -p "$FEATURES_BEFORE" >/dev/null 2>&1
	exit $rc
}
trap gw_cleanup EXIT

class="$(kc -n knative-serving get configmap config-network -o jsonpath='{.data.ingress-class}')"
expect_eq "config-network ingress-class (rig/up)" ingress.kubedirect.dev "$class"

# 1. our Node with a kubelet-mode kd-node running real sandboxes
kc delete node "$NODE" --ignore-not-found >/dev/null 2>&1 || true
kc apply -f - >/dev/null <<EOT
apiVersion: v1
kind: Node
metadata:
  name: $NODE
  labels: {kubernetes.io/hostname: $NODE}
spec:
  podCIDR: 10.244.220.0/24
  podCIDRs: [10.244.220.0/24]
  taints:
  - {key: kubedirect.dev/runtime, value: process, effect: NoSchedule}
EOT
prev() { kc -n knative-serving get configmap config-features -o jsonpath="{.data.kubernetes\.podspec-$1}" 2>/dev/null || true; }
pns="$(prev nodeselector)" ptol="$(prev tolerations)"
FEATURES_BEFORE="{\"data\":{\"kubernetes.podspec-nodeselector\":$([[ -n "$pns" ]] && echo "\"$pns\"" || echo null),\"kubernetes.podspec-tolerations\":$([[ -n "$ptol" ]] && echo "\"$ptol\"" || echo null)}}"
kc -n knative-serving patch configmap config-features --type merge \
	-p '{"data":{"kubernetes.podspec-nodeselector":"enabled","kubernetes.podspec-tolerations":"enabled"}}' >/dev/null
RTCFG="{\"bridge-netns\":\"/proc/$$/ns/net\",\"images\":\"{\\\"dev.local/hello\\\":\\\"$HELLO\\\"}\",\"queue-bin\":\"$QUEUE\",\"log-dir\":\"$PODLOG\",\"restart-backoff\":\"1s\",\"startup-probe-period\":\"5ms\"}"
KDN_LOG="$(mktemp /tmp/kd-node-gw-it.XXXXXX.log)"
setsid ip netns exec kd-cp env KD_PLUGIN_DIR="$PLUGINS" "$NODEBIN" --kubeconfig "$KD_KUBECONFIG" \
	--nodes 1 --node-prefix kd-gw --node-index-base 220 --pod-cidr 10.244.0.0/16 --max-pods 50 \
	--runtime runtime-process --runtime-config "$RTCFG" </dev/null >"$KDN_LOG" 2>&1 &
KDN_PID=$!
node_ready() { [[ "$(kc get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
wait_for "node $NODE Ready" 60 node_ready

# 2. kd-gateway on the control plane's address, port 80 (rig/kd-gateway-start; left running if it
#    already was)
out="$(KD_GATEWAY_BIN="$GWBIN" "$REPO/rig/kd-gateway-start" 2>&1)" || die "rig/kd-gateway-start: $out"
[[ "$out" == *"already running"* ]] || GW_OURS=1
log "$out"
gw() { ip netns exec kd-cp curl -sS --max-time "${CT:-30}" "$@"; }

it_namespace kd-it-gw >/dev/null
trap gw_cleanup EXIT # it_namespace replaced the trap
NS="$IT_NS"
ksvc() { # NAME [TRAFFIC-YAML] [REVISION-NAME]
	kc -n "$NS" apply -f - >/dev/null <<EOT
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: $1}
spec:
  template:
    metadata:
      ${3:+name: $3}
      annotations:
        autoscaling.knative.dev/min-scale: "1"
    spec:
      nodeSelector: {kubernetes.io/hostname: $NODE}
      tolerations:
      - {key: kubedirect.dev/runtime, operator: Equal, value: process, effect: NoSchedule}
      containers:
      - image: dev.local/hello
        ports: [{containerPort: 8080}]
${2:-}
EOT
}
admit() { ksvc hello "" hello-one 2>/dev/null; }
wait_for "Service admitted" 60 admit
ksvc_ready() { [[ "$(kc -n "$NS" get ksvc "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
wait_for "ksvc hello Ready (Route through kd-gateway)" 120 ksvc_ready hello
URL="$(kc -n "$NS" get ksvc hello -o jsonpath='{.status.url}')"
HOST="${URL#http://}"
log "ksvc hello: $URL"
[[ "$HOST" == hello.$NS.* ]] || die "unexpected URL $URL"
ing_ready="$(kc -n "$NS" get ingresses.networking.internal.knative.dev hello -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}/{.status.publicLoadBalancer.ingress[0].ip}')"
expect_eq "KIngress hello Ready and its load balancer" "True/$GW_IP" "$ing_ready"

# 3. requests through the gateway by Host
body="$(gw -H "Host: $HOST" "http://$GW_IP/")"
expect_eq "curl of the URL's host" "Hello from hello-one" "$body"
body="$(gw -H "Host: hello.$NS.svc.cluster.local" "http://$GW_IP/")"
expect_eq "curl of the cluster-local host" "Hello from hello-one" "$body"
body="$(curl -sS --max-time 30 --resolve "$HOST:80:$GW_IP" "http://$HOST/")"
expect_eq "curl --resolve of the URL from the host" "Hello from hello-one" "$body"
code="$(gw -o "$RUN/gw-404.body" -w '%{http_code}' -H "Host: nobody.$NS.example.com" "http://$GW_IP/")"
expect_eq "unknown host" 404 "$code"
grep -q "serves host nobody.$NS.example.com" "$RUN/gw-404.body" || die "404 body: $(cat "$RUN/gw-404.body")"
hash="$(gw -D - -o /dev/null -H "Host: $HOST" -H 'K-Network-Probe: probe' "http://$GW_IP/" | tr -d '\r' | sed -n 's/^K-Network-Hash: //Ip')"
[[ -n "$hash" ]] || die "the ingress probe got no K-Network-Hash"
code="$(gw -o /dev/null -w '%{http_code}' -H "Host: $HOST" -H 'K-Network-Probe: probe' -H "K-Network-Hash: $hash" "http://$GW_IP/")"
expect_eq "ingress probe with the served hash" 200 "$code"
code="$(gw -o /dev/null -w '%{http_code}' -H "Host: $HOST" -H 'K-Network-Probe: probe' -H "K-Network-Hash: stale" "http://$GW_IP/")"
expect_eq "ingress probe with another hash" 404 "$code"

# 4. a KPA Service at zero: its first request through the gateway (Knative's activator wakes it)
kc -n "$NS" apply -f - >/dev/null <<EOT
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: zero}
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/initial-scale: "0"
    spec:
      nodeSelector: {kubernetes.io/hostname: $NODE}
      tolerations:
      - {key: kubedirect.dev/runtime, operator: Equal, value: process, effect: NoSchedule}
      containers:
      - image: dev.local/hello
        ports: [{containerPort: 8080}]
EOT
wait_for "ksvc zero Ready at zero" 120 ksvc_ready zero
ZHOST="$(kc -n "$NS" get ksvc zero -o jsonpath='{.status.url}')"
ZHOST="${ZHOST#http://}"
ZREV="$(kc -n "$NS" get ksvc zero -o jsonpath='{.status.latestCreatedRevisionName}')"
[[ -z "$(kc -n "$NS" get pods -l "serving.knative.dev/revision=$ZREV" -o name)" ]] || die "zero has pods before its first request"
t0=$(date +%s%N)
body="$(CT=120 gw -H "Host: $ZHOST" "http://$GW_IP/")"
expect_eq "vanilla Service at zero through the gateway" "Hello from $ZREV" "$body"
log "vanilla cold request through kd-gateway answered in $((($(date +%s%N) - t0) / 1000000)) ms"

# 5. a 50/50 split between two revisions, the second also under the tag canary
ksvc hello "  traffic:
  - {revisionName: hello-one, percent: 50}
  - {revisionName: hello-two, percent: 50, tag: canary}" hello-two
rev_ready() { [[ "$(kc -n "$NS" get revision "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
wait_for "revision hello-two Ready" 120 rev_ready hello-two
split_ready() {
	ksvc_ready hello && [[ "$(kc -n "$NS" get ksvc hello -o jsonpath='{.status.traffic[*].percent}')" == "50 50" ]]
}
wait_for "ksvc hello Ready with the 50/50 split" 120 split_ready
one=0 two=0
for _ in $(seq 1 200); do # bounded: 200 requests
	case "$(gw -H "Host: $HOST" "http://$GW_IP/")" in
	"Hello from hello-one") one=$((one + 1)) ;;
	"Hello from hello-two") two=$((two + 1)) ;;
	esac
done
log "50/50 split: $one to hello-one, $two to hello-two"
((one >= 80 && two >= 80 && one + two == 200)) || die "split not within +-10 %: $one / $two of 200"
CANARY="$(kc -n "$NS" get ksvc hello -o jsonpath='{.status.traffic[?(@.tag=="canary")].url}')"
CANARY="${CANARY#http://}"
[[ -n "$CANARY" ]] || die "no URL for the canary tag"
tagged=0
for _ in $(seq 1 10); do
	[[ "$(gw -H "Host: $CANARY" "http://$GW_IP/")" == "Hello from hello-two" ]] && tagged=$((tagged + 1))
done
expect_eq "tag route $CANARY answers from hello-two only" 10 "$tagged"
metrics="$(gw "http://$GW_IP:$GW_ADMIN/metrics")"
grep -q '^kd_gateway_requests_total [1-9]' <<<"$metrics" || die "no request counter: $metrics"

# 6. deleting the Service removes its routes
kc -n "$NS" delete ksvc hello --wait=true >/dev/null
host_gone() { ! gw "http://$GW_IP:$GW_ADMIN/debug/hosts" | jq -e --arg h "$HOST" '.[] | select(.host == $h)' >/dev/null; }
wait_for "the gateway forgot $HOST" 60 host_gone
for h in "$HOST" "$CANARY" "hello.$NS.svc.cluster.local"; do
	expect_eq "the deleted Service's host $h" 404 "$(gw -o /dev/null -w '%{http_code}' -H "Host: $h" "http://$GW_IP/")"
done
log "kd-gateway: all checks passed"
