#!/usr/bin/env bash
# kd-activator on the rig with real sandboxes (plugins/runtime-process: own netns + veth, Knative's
# queue-proxy + functions/hello): requests reach kubedirect-class revisions, woken from zero.
#  - a kd Service at zero answers its first request (sent to kd-activator with the Knative
#    headers) with the function's body: kd-activator holds it, pokes kd-autoscaler over the stats
#    WebSocket, kd-autoscaler scales 0 -> 1 through the chain, kd-node starts the sandbox and
#    reports it ready on the status channel to kd-autoscaler AND kd-activator, which forwards;
#  - 20 concurrent cold requests to another kd Service at zero all succeed;
#  - an unknown revision gets 404 with a reason; a revision whose instance never becomes ready
#    (an image the runtime cannot map) gets 503 after its timeoutSeconds;
#  - /healthz, /readyz and /metrics answer; /debug/routes lists the instance as routable;
#  - containerConcurrency 1 with 5 concurrent requests scales to >= 2 instances, never 2 in flight
#    on one; a KPA Service on the same rig is left to Knative (404 here, its public Endpoints
#    not ours) and answers from zero through Knative's activator;
#  - a kd revision goes back to zero once its traffic stops;
#  - kd-activator killed with SIGKILL mid-traffic and restarted routes again within 1 s on the
#    API fallback alone (private Endpoints), and no request sent after that fails.
# Isolation: our own kd-node (Node kd-act-210, tainted NoSchedule, pod CIDR 10.244.210.0/24),
# kd-autoscaler limited to our namespace and Node, kd-activator limited to our namespace.
. "$(dirname "$0")/lib.sh"
. "$IT_DIR/lib_kd_as.sh"

NODEBIN="$KD_BUILD_DIR/bin/kd-node"
ACTBIN="$KD_BUILD_DIR/bin/kd-activator"
HELLO="$KD_BUILD_DIR/functions/hello"
SLEEPFN="$KD_BUILD_DIR/functions/sleep"
PLUGINS="$KD_BUILD_DIR/plugins"
QUEUE="$KD_CACHE/bin/knative-serving-v0.50.0/queue"
for f in "$NODEBIN" "$ACTBIN" "$HELLO" "$SLEEPFN" "$PLUGINS/kd-runtime-process.so" "$QUEUE"; do
	[[ -e "$f" ]] || die "missing $f (make all; rig/build)"
done
"$REPO/rig/status" --quiet || die "the rig is not up"

NODE=kd-act-210
AS_ADMIN_PORT=$((AS_STATS_PORT + 6))
ACT_PORT=8012 # the port kd-autoscaler --activator-ips writes into the public Endpoints
ACT_ADMIN_PORT=$((AS_STATS_PORT + 2))
ACT_STATUS_PORT=$((AS_STATS_PORT + 3))
RUN="$KD_RUNS/current"
PODLOG="$RUN/pods-act"
mkdir -p "$PODLOG"
ACT_PID="" ACT_LOG="" GW_OURS=0 KDN_PID="" KDN_LOG="" FEATURES_BEFORE=""

act_cleanup() {
	local rc=$?
	set +e
	[[ -n "${IT_NS:-}" ]] && kc delete namespace "$IT_NS" --wait=false >/dev/null 2>&1
	as_stop
	((GW_OURS)) && "$REPO/rig/kd-gateway-stop" >/dev/null 2>&1
	if [[ -n "$ACT_PID" ]]; then
		kill "$ACT_PID" 2>/dev/null
		for _ in $(seq 1 50); do kill -0 "$ACT_PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$ACT_PID" 2>/dev/null
	fi
	if [[ -n "$KDN_PID" ]]; then
		for _ in $(seq 1 40); do
			[[ -z "$(ls /var/run/netns 2>/dev/null | grep -i 'kd-act\|10-244-210')" ]] && break
			sleep 0.25
		done
		kill -TERM "$KDN_PID" 2>/dev/null
		for _ in $(seq 1 100); do kill -0 "$KDN_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$KDN_PID" 2>/dev/null
	fi
	kc delete node "$NODE" --wait=false >/dev/null 2>&1
	kc delete lease -n kube-node-lease "$NODE" >/dev/null 2>&1
	[[ -n "$FEATURES_BEFORE" ]] &&
		kc -n knative-serving patch configmap config-features --type merge -p "$FEATURES_BEFORE" >/dev/null 2>&1
	exit $rc
}

kd_it_namespace kd-it-act
trap act_cleanup EXIT

# 1. our Node, tainted before kd-node takes it over; Knative's nodeSelector/tolerations features
kc delete node "$NODE" --ignore-not-found >/dev/null 2>&1 || true
kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $NODE
  labels: {kubernetes.io/hostname: $NODE}
spec:
  podCIDR: 10.244.210.0/24
  podCIDRs: [10.244.210.0/24]
  taints:
  - {key: kubedirect.dev/runtime, value: process, effect: NoSchedule}
EOF
prev() { kc -n knative-serving get configmap config-features -o jsonpath="{.data.kubernetes\.podspec-$1}" 2>/dev/null || true; }
pns="$(prev nodeselector)" ptol="$(prev tolerations)"
FEATURES_BEFORE="{\"data\":{\"kubernetes.podspec-nodeselector\":$([[ -n "$pns" ]] && echo "\"$pns\"" || echo null),\"kubernetes.podspec-tolerations\":$([[ -n "$ptol" ]] && echo "\"$ptol\"" || echo null)}}"
kc -n knative-serving patch configmap config-features --type merge \
	-p '{"data":{"kubernetes.podspec-nodeselector":"enabled","kubernetes.podspec-tolerations":"enabled"}}' >/dev/null

# 2. kd-autoscaler (our namespace, our Node), kd-activator, then kd-node (direct mode, process
#    runtime) reporting to both status channels
as_start --node-selector "kubernetes.io/hostname=$NODE" --activator-ips 10.88.0.2 --admin-port "$AS_ADMIN_PORT"
trap act_cleanup EXIT # as_start installs its own trap: ours also stops kd-activator and kd-node
ACT_LOG="$(mktemp /tmp/kd-activator-it.XXXXXX.log)"
act_start() {
	ip netns exec kd-cp "$ACTBIN" --kubeconfig "$KD_KUBECONFIG" --namespace "$NS" \
		--port "$ACT_PORT" --admin-port "$ACT_ADMIN_PORT" --status-port "$ACT_STATUS_PORT" \
		--autoscaler "127.0.0.1:$AS_STATS_PORT" --log-level debug >>"$ACT_LOG" 2>&1 &
	ACT_PID=$!
}
act_start
log "kd-activator pid $ACT_PID, log $ACT_LOG"
act() { ip netns exec kd-cp curl -sS --max-time "${CT:-60}" "$@"; }
act_ready() { [[ "$(act -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ACT_ADMIN_PORT/readyz")" == 200 ]]; }
wait_for "kd-activator /readyz" 30 act_ready

RTCFG="{\"bridge-netns\":\"/proc/$$/ns/net\",\"images\":\"{\\\"dev.local/hello\\\":\\\"$HELLO\\\",\\\"dev.local/sleep\\\":\\\"$SLEEPFN\\\"}\",\"queue-bin\":\"$QUEUE\",\"log-dir\":\"$PODLOG\",\"restart-backoff\":\"1s\"}"
KDN_LOG="$(mktemp /tmp/kd-node-act-it.XXXXXX.log)"
setsid ip netns exec kd-cp env KD_PLUGIN_DIR="$PLUGINS" "$NODEBIN" --kubeconfig "$KD_KUBECONFIG" \
	--nodes 1 --node-prefix kd-act --node-index-base 210 --pod-cidr 10.244.0.0/16 --max-pods 50 \
	--runtime runtime-process --runtime-config "$RTCFG" --direct --direct-port 0 \
	--status-addr "127.0.0.1:$AS_STATUS_PORT,127.0.0.1:$ACT_STATUS_PORT" </dev/null >"$KDN_LOG" 2>&1 &
KDN_PID=$!
log "kd-node (direct, runtime-process) pid $KDN_PID, log $KDN_LOG"
node_up() {
	[[ "$(kc get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True &&
		-n "$(kc get node "$NODE" -o jsonpath='{.metadata.annotations.kubedirect\.dev/channel-addr}')" ]]
}
wait_for "node $NODE Ready with an instance channel" 60 node_up
act_chan() { grep -q "status channel 127.0.0.1:$ACT_STATUS_PORT ready" "$KDN_LOG"; }
wait_for "kd-node's status channel to kd-activator handshaked" 30 act_chan

POD_LINES="      nodeSelector: {kubernetes.io/hostname: $NODE}
      tolerations:
      - {key: kubedirect.dev/runtime, operator: Equal, value: process, effect: NoSchedule}"
kd_ksvc kd "" "$POD_LINES"
kd_ksvc burst "" "$POD_LINES"
kd_rev_at_zero
REV1="$REV"
wait_for "revision of burst" 120 has_rev burst
REV2="$(rev_of burst)"
wait_for "Revision $REV2 Ready at 0" 120 rev_ready "$REV2"
no_pods() { [[ -z "$(kc -n "$NS" get pods -o name)" ]]; }
check "no instance yet (scaled to zero)" no_pods

# 3. first request of a revision at zero, through kd-activator
req() { # REV [CURL ARGS...]
	local r="$1"
	shift
	act -H "Knative-Serving-Namespace: $NS" -H "Knative-Serving-Revision: $r" "$@" \
		"http://127.0.0.1:$ACT_PORT/"
}
t0=$(date +%s%N)
body="$(req "$REV1")" || die "cold request failed: $(tail -n 20 "$ACT_LOG")"
ms=$((($(date +%s%N) - t0) / 1000000))
expect_eq "cold request body" "Hello from $REV1" "$body"
log "cold request through kd-activator answered in $ms ms"
has_inst() { act "http://127.0.0.1:$ACT_ADMIN_PORT/debug/routes" | jq -e --arg r "$REV1" \
	'.revisions[] | select(.revision == $r) | .instances[] | select(.routable)' >/dev/null; }
check "/debug/routes lists a routable instance of $REV1" has_inst
grep -q "poking kd-autoscaler" "$ACT_LOG" || die "kd-activator did not poke kd-autoscaler"
warm="$(req "$REV1")"
expect_eq "warm request body" "Hello from $REV1" "$warm"

# 4. 20 concurrent cold requests
OUT="$(mktemp -d)"
pids=()
for i in $(seq 1 20); do
	(req "$REV2" -o "$OUT/$i.body" -w '%{http_code}' >"$OUT/$i.code" 2>"$OUT/$i.err" || true) &
	pids+=($!)
done
wait "${pids[@]}" # not a bare wait: kd-activator, kd-node and kd-autoscaler are children too
ok=0
for i in $(seq 1 20); do
	[[ "$(cat "$OUT/$i.code")" == 200 && "$(cat "$OUT/$i.body")" == "Hello from $REV2" ]] && ok=$((ok + 1))
done
rm -rf "$OUT"
expect_eq "concurrent cold requests answered by the function" 20 "$ok"

# 5. unknown revision: 404 with a reason
code="$(req no-such-rev -o "$RUN/act-404.body" -w '%{http_code}')"
expect_eq "unknown revision status" 404 "$code"
grep -q "unknown revision $NS/no-such-rev" "$RUN/act-404.body" || die "404 body: $(cat "$RUN/act-404.body")"

# 6. a revision whose instance never becomes ready: 503 after its timeoutSeconds (5 s)
kc -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: broken}
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/class: kd.kubedirect.dev
        autoscaling.knative.dev/initial-scale: "0"
    spec:
      timeoutSeconds: 5
$POD_LINES
      containers:
      - image: dev.local/no-such-function
EOF
wait_for "revision of broken" 120 has_rev broken
REV3="$(rev_of broken)"
known3() { act "http://127.0.0.1:$ACT_ADMIN_PORT/debug/routes" | jq -e --arg r "$REV3" '.revisions[] | select(.revision == $r and .known)' >/dev/null; }
wait_for "kd-activator knows $REV3" 60 known3
t0=$SECONDS
code="$(CT=30 req "$REV3" -o "$RUN/act-503.body" -w '%{http_code}')"
expect_eq "never-ready revision status" 503 "$code"
grep -q "no ready instance after 5 s" "$RUN/act-503.body" || die "503 body: $(cat "$RUN/act-503.body")"
((SECONDS - t0 >= 4)) || die "503 came after $((SECONDS - t0)) s, before the 5 s timeout"

# 7. health and metrics
expect_eq "/healthz" 200 "$(act -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ACT_ADMIN_PORT/healthz")"
expect_eq "kd-autoscaler /readyz" 200 "$(act -o /dev/null -w '%{http_code}' "http://127.0.0.1:$AS_ADMIN_PORT/readyz")"
asm="$(act "http://127.0.0.1:$AS_ADMIN_PORT/metrics")"
grep -q '^kd_autoscaler_decisions_total [1-9]' <<<"$asm" || die "kd-autoscaler metrics lack decisions: $asm"
grep -q '^kd_autoscaler_instances{state="ready"} [1-9]' <<<"$asm" || die "kd-autoscaler metrics lack ready instances: $asm"
metrics="$(act "http://127.0.0.1:$ACT_ADMIN_PORT/metrics")"
grep -q "kd_activator_requests_total{namespace=\"$NS\",revision=\"$REV2\"} 20" <<<"$metrics" ||
	die "metrics lack 20 requests of $REV2: $(grep requests_total <<<"$metrics")"
grep -q '^kd_activator_proxy_latency_seconds_count [1-9]' <<<"$metrics" || die "no latency histogram"
# 7b. the same door for both arms: the Service's URL through kd-gateway (the ingress class of
#     ours) reaches the kd revision at zero via its public Endpoints, which kd-autoscaler
#     (--activator-ips) points at kd-activator
out="$(KD_GATEWAY_BIN="$KD_BUILD_DIR/bin/kd-gateway" "$REPO/rig/kd-gateway-start" 2>&1)" ||
	die "rig/kd-gateway-start: $out"
[[ "$out" == *"already running"* ]] || GW_OURS=1
GW_LOG="$KD_RUNS/current/kd-gateway.log"
kd_ksvc viagw "" "$POD_LINES"
wait_for "revision of viagw" 120 has_rev viagw
REV6="$(rev_of viagw)"
ksvc_ready() { [[ "$(kc -n "$NS" get ksvc viagw -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
wait_for "ksvc viagw Ready with its URL (kd-gateway)" 120 ksvc_ready
pub="$(kc -n "$NS" get endpoints "$REV6" -o jsonpath='{.subsets[0].addresses[0].ip}:{.subsets[0].ports[?(@.name=="http")].port}')"
expect_eq "public Endpoints of $REV6 (kd-activator)" "10.88.0.2:$ACT_PORT" "$pub"
GWHOST="$(kc -n "$NS" get ksvc viagw -o jsonpath='{.status.url}')"
GWHOST="${GWHOST#http://}"
npods="$(kc -n "$NS" get pods -l "serving.knative.dev/revision=$REV6" -o name | wc -l)"
expect_eq "pods of $REV6 before its first request" 0 "$npods"
t0=$(date +%s%N)
body="$(act -H "Host: $GWHOST" http://10.88.0.2/)" || die "request through kd-gateway failed: $(tail -n 5 "$GW_LOG")"
expect_eq "kd revision at zero through kd-gateway" "Hello from $REV6" "$body"
log "cold request through kd-gateway and kd-activator answered in $((($(date +%s%N) - t0) / 1000000)) ms"

# 8. containerConcurrency 1: 5 concurrent 2 s requests scale out to >= 2 instances and no instance
#    ever has 2 requests in flight (each instance's high-water mark in /debug/routes)
kc -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: cc1}
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/class: kd.kubedirect.dev
        autoscaling.knative.dev/initial-scale: "0"
    spec:
      containerConcurrency: 1
$POD_LINES
      containers:
      - image: dev.local/sleep
        ports: [{containerPort: 8080}]
EOF
wait_for "revision of cc1" 120 has_rev cc1
REV4="$(rev_of cc1)"
known4() { act "http://127.0.0.1:$ACT_ADMIN_PORT/debug/routes" | jq -e --arg r "$REV4" '.revisions[] | select(.revision == $r and .known)' >/dev/null; }
wait_for "kd-activator knows $REV4" 60 known4
OUT="$(mktemp -d)"
pids=()
for i in $(seq 1 5); do
	(act -H "Knative-Serving-Namespace: $NS" -H "Knative-Serving-Revision: $REV4" -o "$OUT/$i.body" \
		-w '%{http_code}' "http://127.0.0.1:$ACT_PORT/?ms=2000" >"$OUT/$i.code" 2>/dev/null || true) &
	pids+=($!)
done
max_insts=0
for _ in $(seq 1 50); do # 5 s, bounded
	ni="$(act "http://127.0.0.1:$ACT_ADMIN_PORT/debug/routes" | jq -r --arg r "$REV4" \
		'[.revisions[] | select(.revision == $r) | .instances[]] | length')"
	((ni > max_insts)) && max_insts=$ni
	sleep 0.1
done
wait "${pids[@]}"
ok=0
for i in $(seq 1 5); do
	[[ "$(cat "$OUT/$i.code")" == 200 ]] && grep -q "slept 2000 ms" "$OUT/$i.body" && ok=$((ok + 1))
done
rm -rf "$OUT"
expect_eq "containerConcurrency 1: requests answered" 5 "$ok"
((max_insts >= 2)) || die "containerConcurrency 1 with 5 concurrent requests: only $max_insts instance(s)"
# max_inflight is each instance's high-water mark of requests forwarded and not yet answered, kept
# by kd-activator on every forward (not sampled)
max_inflight="$(act "http://127.0.0.1:$ACT_ADMIN_PORT/debug/routes" | jq -r --arg r "$REV4" \
	'[.revisions[] | select(.revision == $r) | .instances[].max_inflight] | max // 0')"
log "containerConcurrency 1: up to $max_insts instances, at most $max_inflight request(s) in flight on one"
expect_eq "containerConcurrency 1: most requests ever in flight on one instance" 1 "$max_inflight"

# 8b. back to zero when traffic stops: kd-activator is the only source of a kd revision's
#     concurrency, so its zero reports are what lets the decider scale it in (window 6 s, then
#     the 30 s scale-to-zero grace period)
kd_ksvc idle "        autoscaling.knative.dev/window: \"6s\"" "$POD_LINES"
wait_for "revision of idle" 120 has_rev idle
REV7="$(rev_of idle)"
wait_for "Revision $REV7 Ready at 0" 120 rev_ready "$REV7"
known7() { act "http://127.0.0.1:$ACT_ADMIN_PORT/debug/routes" | jq -e --arg r "$REV7" '.revisions[] | select(.revision == $r and .known)' >/dev/null; }
wait_for "kd-activator knows $REV7" 60 known7
expect_eq "first request of $REV7" "Hello from $REV7" "$(req "$REV7")"
t0=$SECONDS
gone7() {
	[[ "$(act "http://127.0.0.1:$ACT_ADMIN_PORT/debug/routes" | jq -r --arg r "$REV7" '[.revisions[] | select(.revision == $r) | .instances[]] | length')" == 0 ]] &&
		[[ -z "$(kc -n "$NS" get pods -l "serving.knative.dev/revision=$REV7" -o name)" ]]
}
wait_for "$REV7 back to zero (instances and Pods)" 120 gone7
log "$REV7 scaled back to zero $((SECONDS - t0)) s after its only request"

# 9. a vanilla (KPA) Service on the same rig is not ours: not routed, 404 at kd-activator
ksvc_apply vanilla kpa.autoscaling.knative.dev "        autoscaling.knative.dev/initial-scale: \"0\"" "$POD_LINES"
wait_for "revision of vanilla" 120 has_rev vanilla
REV5="$(rev_of vanilla)"
wait_for "Revision $REV5 Ready (Knative's autoscaler)" 120 rev_ready "$REV5"
code="$(req "$REV5" -o /dev/null -w '%{http_code}')"
expect_eq "a KPA revision at kd-activator" 404 "$code"
if grep -qF "[$NS/$REV5] pa: ours" "$AS_LOG"; then die "kd-autoscaler took the KPA revision $REV5"; fi
pub5="$(kc -n "$NS" get endpoints "$REV5" -o jsonpath='{.subsets[*].addresses[*].ip}')"
[[ " $pub5 " != *" 10.88.0.2 "* ]] || die "the KPA revision's public Endpoints point at kd-activator: $pub5"
# and it still answers, from zero, through Knative's own activator (the same door: kd-gateway)
vready() { [[ "$(kc -n "$NS" get ksvc vanilla -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
wait_for "ksvc vanilla Ready" 120 vready
VHOST="$(kc -n "$NS" get ksvc vanilla -o jsonpath='{.status.url}')"
VHOST="${VHOST#http://}"
body="$(act -H "Host: $VHOST" http://10.88.0.2/)" || die "request to the KPA Service through kd-gateway failed"
expect_eq "KPA Service at zero, through Knative's activator" "Hello from $REV5" "$body"
log "vanilla revision $REV5 left to Knative, and answered through Knative's activator"

# 10. kd-activator killed with SIGKILL mid-traffic and restarted: it routes again within 1 s on
#     the API fallback alone. The new process listens for status on another port, which kd-node
#     does not send to, so only the private Endpoints can make the instance routable. Requests
#     sent after its first answer must all succeed; only those around the kill may fail.
TRAFFIC="$(mktemp)"
(
	for _ in $(seq 1 60); do # bounded: 60 requests, 2 s each at most
		ts=$(date +%s%N)
		code="$(req "$REV1" -o /dev/null -w '%{http_code}' --max-time 2 2>/dev/null)" || code=000
		echo "$ts ${code:-000}" >>"$TRAFFIC"
		sleep 0.05
	done
) &
traffic=$!
sleep 1
kill -KILL "$ACT_PID"
wait "$ACT_PID" 2>/dev/null || true
t0=$(date +%s%N)
ACT_STATUS_PORT=$((ACT_STATUS_PORT + 7)) act_start
first=""
for _ in $(seq 1 100); do # 5 s, bounded
	if [[ "$(CT=2 req "$REV1" -o /dev/null -w '%{http_code}' 2>/dev/null)" == 200 ]]; then
		first=$((($(date +%s%N) - t0) / 1000000))
		break
	fi
	sleep 0.05
done
t_ok=$(date +%s%N)
[[ -n "$first" ]] || die "kd-activator did not route $REV1 within 5 s of its restart: $(tail -n 20 "$ACT_LOG")"
src="$(act "http://127.0.0.1:$ACT_ADMIN_PORT/debug/routes" | jq -r --arg r "$REV1" \
	'[.revisions[] | select(.revision == $r) | .instances[] | select(.routable) | .source] | unique | join(",")')"
wait "$traffic"
log "restarted kd-activator answered $REV1 $first ms after it was started (routable by: $src)"
expect_eq "source of the route after the restart" endpoints "$src"
((first <= 1000)) || die "kd-activator routed again only after $first ms (> 1 s)"
total=$(wc -l <"$TRAFFIC")
failed=$(awk '$2 != 200' "$TRAFFIC" | wc -l)
late=$(awk -v t="$t_ok" '$1 > t && $2 != 200' "$TRAFFIC" | wc -l)
log "traffic across the SIGKILL: $((total - failed))/$total answered 200, $late failure(s) after the restart answered"
((late == 0)) || die "requests sent after the restarted kd-activator answered failed: $(awk -v t="$t_ok" '$1 > t && $2 != 200' "$TRAFFIC" | head -n 5 | tr '\n' ' ')"
((total - failed > 0)) || die "no request of the traffic loop was answered"
rm -f "$TRAFFIC"
log "kd-activator: all checks passed"
