#!/usr/bin/env bash
# bench/cold-burst/run.sh: R concurrent first requests to a Knative Service at zero, both arms in
# one run on the rig (`make bench-cold-burst R=1,10,50 [REPEATS=3] [BUILD=...]`).
#
# Both arms are Knative Services running functions/hello in real sandboxes (plugins/runtime-process:
# own netns + veth, Knative's queue-proxy in front of the function), identical except the class
# annotation, each on a Node of its own served by a kd-node on this machine:
#  - kd arm: class kd.kubedirect.dev, requests sent to kd-activator with the Knative-Serving-*
#    headers; kd-activator pokes kd-autoscaler, the chain places the instance on the direct-mode
#    kd-node, which reports it ready to kd-activator over the status channel;
#  - vanilla arm: class kpa.autoscaling.knative.dev, requests sent to Knative's activator
#    (10.88.0.13:8012) with the same headers; KPA scales the Deployment, kube-scheduler binds, the
#    kd-node (kubelet mode) starts the Pod, Knative's activator routes on the private Endpoints.
# DOOR=gateway sends both arms through the same door instead: kd-gateway (rig/kd-gateway-start,
# our Knative ingress class) by the Service URL's Host, which forwards by the Route's KIngress to
# the revision's public Endpoints (Knative's activator for vanilla, kd-activator for kd, as
# kd-autoscaler --activator-ips writes them); the warm path then also measures both through it.
# Every (arm, R, repeat) gets a fresh Service at zero; arms alternate which goes first per repeat.
# Then the warm path, with one instance of each arm ready: wrk (bounded: 1 thread, 8 connections,
# WARM_SECONDS s) direct to the pod's queue-proxy, through kd-activator, and through Knative's
# activator. The sandbox start time comes from bench/sandbox in the same run.
# Prints a table and the lines scripts read:
#   cold p50 kd: <ms>            cold p50 vanilla: <ms>      sandbox start p50: <ms>
#   cold-burst R=<max R> p99 ratio: <x> (vanilla/kd)
#   warm p50 overhead: <x> (kd-activator / direct)   warm rps ratio: <x> (kd-activator / Knative)
# Raw samples: $OUT/samples.tsv (arm R repeat http_code seconds). Env: R (default 1,10,50),
# REPEATS (3), WARM_SECONDS (5), STARTUP_PROBE (startup-probe-period of both arms
# sandboxes, 5ms as bench/sandbox), BUILD, KD_BENCH_OUT (default /var/lib/kubedirect/bench/cold-burst-<ts>).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
case "${1:-}" in
-h | --help)
	sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
"") ;;
*)
	echo "cold-burst: unknown argument '$1' (see --help)" >&2
	exit 2
	;;
esac
. "$REPO/rig/lib.sh"
RS="${R:-1,10,50}"
REPEATS="${REPEATS:-3}"
WARM_SECONDS="${WARM_SECONDS:-5}"
DOOR="${DOOR:-activators}"
[[ $DOOR == activators || $DOOR == gateway ]] || { echo "cold-burst: DOOR must be activators or gateway" >&2; exit 2; }
STARTUP_PROBE="${STARTUP_PROBE:-5ms}" # runtime-process startup-probe-period, both arms (bench/sandbox's)
B="${BUILD:-build}"
[[ $B == /* ]] || B="$REPO/$B"
BUILD_DIR="${KD_BUILD_DIR:-$B}"
OUT="${KD_BENCH_OUT:-/var/lib/kubedirect/bench/cold-burst-$(date -u +%Y%m%dT%H%M%SZ)}"
[[ "$RS" =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "cold-burst: R must be a list of counts, got '$RS'" >&2; exit 2; }
[[ "$REPEATS" =~ ^[1-9][0-9]*$ && "$REPEATS" -le 10 ]] || { echo "cold-burst: REPEATS must be 1-10" >&2; exit 2; }
IFS=, read -r -a RLIST <<<"$RS"
for r in "${RLIST[@]}"; do ((r >= 1 && r <= 200)) || { echo "cold-burst: each R must be 1-200" >&2; exit 2; }; done
[[ $EUID -eq 0 ]] || { echo "cold-burst: must run as root (network namespaces)" >&2; exit 1; }
for b in bin/kd-node bin/kd-autoscaler bin/kd-activator functions/hello plugins/kd-runtime-process.so bench/sandbox/sandbox; do
	[[ -e "$BUILD_DIR/$b" ]] || { echo "cold-burst: $BUILD_DIR/$b not built (make all)" >&2; exit 1; }
done
QUEUE="$KD_CACHE/bin/knative-serving-v0.50.0/queue"
[[ -x "$QUEUE" ]] || { echo "cold-burst: $QUEUE missing (rig/build)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "cold-burst: wrk missing (make deps)" >&2; exit 1; }
"$REPO/rig/status" --quiet || { echo "cold-burst: the rig is not up (rig/up)" >&2; exit 1; }
mkdir -p "$OUT"

KC="$KD_K8S_BIN/kubectl"
kc() { "$KC" --kubeconfig "$KD_KUBECONFIG" --request-timeout=20s "$@"; }
say() { printf '%s\n' "$*" >&2; }
die() {
	say "cold-burst: $*"
	exit 1
}
exec 9>/var/lock/kd-autoscaler-it.lock
flock -w 900 9 || die "another kd-autoscaler user holds /var/lock/kd-autoscaler-it.lock"

NS="kd-bench-cb-$(date +%s)"
KD_NODE=kd-cb-230 VN_NODE=kd-cb-231
BASE_PORT=$((22000 + RANDOM % 3000))
# kd-activator on 8012: the port kd-autoscaler --activator-ips writes into the public Endpoints
AS_STATS=$BASE_PORT AS_STATUS=$((BASE_PORT + 1)) ACT_PORT=8012
GW=10.88.0.2 GW_OURS=0
ACT_ADMIN=$((BASE_PORT + 3)) ACT_STATUS=$((BASE_PORT + 4))
KN_ACTIVATOR=10.88.0.13:8012
PIDS=()
FEATURES_BEFORE=""
cleanup() {
	local rc=$? p
	set +e
	kc delete namespace "$NS" --wait=false >/dev/null 2>&1
	((GW_OURS)) && "$REPO/rig/kd-gateway-stop" >/dev/null 2>&1
	for _ in $(seq 1 60); do
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
trap cleanup EXIT
trap 'exit 130' INT TERM
wait_for() { # WHAT SECONDS CMD...
	local what="$1" t="$2" t0=$SECONDS
	shift 2
	until "$@"; do
		((SECONDS - t0 < t)) || die "timed out after ${t}s waiting for $what"
		sleep 0.3
	done
}

# 1. Nodes, features, components
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
pns="$(prev nodeselector)" ptol="$(prev tolerations)"
FEATURES_BEFORE="{\"data\":{\"kubernetes.podspec-nodeselector\":$([[ -n "$pns" ]] && echo "\"$pns\"" || echo null),\"kubernetes.podspec-tolerations\":$([[ -n "$ptol" ]] && echo "\"$ptol\"" || echo null)}}"
kc -n knative-serving patch configmap config-features --type merge \
	-p '{"data":{"kubernetes.podspec-nodeselector":"enabled","kubernetes.podspec-tolerations":"enabled"}}' >/dev/null
kc create namespace "$NS" >/dev/null

if [[ $DOOR == gateway ]]; then
	out="$(KD_GATEWAY_BIN="$BUILD_DIR/bin/kd-gateway" "$REPO/rig/kd-gateway-start" 2>&1 9>&-)" || die "rig/kd-gateway-start: $out"
	[[ "$out" == *"already running"* ]] || GW_OURS=1
fi
PLUG="$BUILD_DIR/plugins"
cpx() { ip netns exec kd-cp "$@"; }
# started with ip netns exec directly (not through a shell function), so $! is the component
ip netns exec kd-cp env KD_PLUGIN_DIR="$PLUG" "$BUILD_DIR/bin/kd-autoscaler" --kubeconfig "$KD_KUBECONFIG" \
	--stats-port "$AS_STATS" --status-port "$AS_STATUS" --namespace "$NS" --source "kd-autoscaler:$NS" \
	--node-selector "kubernetes.io/hostname=$KD_NODE" --activator-ips 10.88.0.2 \
	>"$OUT/kd-autoscaler.log" 2>&1 9>&- &
PIDS+=($!)
ip netns exec kd-cp "$BUILD_DIR/bin/kd-activator" --kubeconfig "$KD_KUBECONFIG" --namespace "$NS" --port "$ACT_PORT" \
	--admin-port "$ACT_ADMIN" --status-port "$ACT_STATUS" --autoscaler "127.0.0.1:$AS_STATS" \
	>"$OUT/kd-activator.log" 2>&1 9>&- &
PIDS+=($!)
ccurl() { cpx curl -sS "$@"; }
act_ready() { [[ "$(ccurl -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ACT_ADMIN/readyz" 2>/dev/null)" == 200 ]]; }
wait_for "kd-activator /readyz" 30 act_ready
mkdir -p "$OUT/pods"
RTCFG="{\"bridge-netns\":\"/proc/$$/ns/net\",\"images\":\"{\\\"dev.local/hello\\\":\\\"$BUILD_DIR/functions/hello\\\"}\",\"queue-bin\":\"$QUEUE\",\"log-dir\":\"$OUT/pods\",\"restart-backoff\":\"1s\",\"startup-probe-period\":\"$STARTUP_PROBE\"}"
setsid ip netns exec kd-cp env KD_PLUGIN_DIR="$PLUG" "$BUILD_DIR/bin/kd-node" --kubeconfig "$KD_KUBECONFIG" \
	--nodes 1 --node-prefix kd-cb --node-index-base 230 --pod-cidr 10.244.0.0/16 --max-pods 100 \
	--runtime runtime-process --runtime-config "$RTCFG" --direct --direct-port 0 \
	--status-addr "127.0.0.1:$AS_STATUS,127.0.0.1:$ACT_STATUS" </dev/null >"$OUT/kd-node-kd.log" 2>&1 9>&- &
PIDS+=($!)
setsid ip netns exec kd-cp env KD_PLUGIN_DIR="$PLUG" "$BUILD_DIR/bin/kd-node" --kubeconfig "$KD_KUBECONFIG" \
	--nodes 1 --node-prefix kd-cb --node-index-base 231 --pod-cidr 10.244.0.0/16 --max-pods 100 \
	--runtime runtime-process --runtime-config "$RTCFG" </dev/null >"$OUT/kd-node-vanilla.log" 2>&1 9>&- &
PIDS+=($!)
node_ready() { [[ "$(kc get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
wait_for "node $KD_NODE Ready" 60 node_ready "$KD_NODE"
wait_for "node $VN_NODE Ready" 60 node_ready "$VN_NODE"
act_chan() { grep -q "status channel 127.0.0.1:$ACT_STATUS ready" "$OUT/kd-node-kd.log"; }
wait_for "kd-node's status channel to kd-activator" 30 act_chan

# 2. one Service per (arm, R, repeat), all at zero
ksvc() { # NAME CLASS NODE
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
    spec:
      nodeSelector: {kubernetes.io/hostname: $3}
      tolerations:
      - {key: kubedirect.dev/runtime, operator: Equal, value: process, effect: NoSchedule}
      containers:
      - image: dev.local/hello
        ports: [{containerPort: 8080}]
---
EOF
}
SVCS=()
for rep in $(seq 1 "$REPEATS"); do
	for r in "${RLIST[@]}"; do
		SVCS+=("kd-r$r-$rep" "vanilla-r$r-$rep")
	done
done
SVCS+=(kd-warm vanilla-warm)
for s in "${SVCS[@]}"; do
	if [[ $s == kd-* ]]; then ksvc "$s" kd.kubedirect.dev "$KD_NODE"; else ksvc "$s" kpa.autoscaling.knative.dev "$VN_NODE"; fi
done | kc -n "$NS" apply -f - >/dev/null
declare -A REV HOST
revs_ready() {
	local s r u
	for s in "${SVCS[@]}"; do
		r="$(kc -n "$NS" get ksvc "$s" -o jsonpath='{.status.latestCreatedRevisionName}')"
		[[ -n "$r" && "$(kc -n "$NS" get revision "$r" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]] || return 1
		REV[$s]="$r"
		if [[ $DOOR == gateway ]]; then # the Route Ready with its URL: served by kd-gateway
			[[ "$(kc -n "$NS" get ksvc "$s" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]] || return 1
			u="$(kc -n "$NS" get ksvc "$s" -o jsonpath='{.status.url}')"
			HOST[$s]="${u#*://}"
		fi
	done
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
	local lines
	mapfile -t lines < <(door "$1" "$2")
	TARGET="${lines[0]}"
	HDRS=()
	local h
	for h in "${lines[@]:1}"; do HDRS+=(-H "$h"); done
}
say "cold-burst: ${#SVCS[@]} Services in $NS, waiting for their revisions at zero"
wait_for "revisions Ready at zero" 300 revs_ready
no_pods() { [[ -z "$(kc -n "$NS" get pods -o name)" ]]; }
wait_for "no pods" 60 no_pods
known_all() {
	local s
	for s in "${SVCS[@]}"; do
		[[ $s == kd-* ]] || continue
		ccurl "http://127.0.0.1:$ACT_ADMIN/debug/routes" | jq -e --arg r "${REV[$s]}" '.revisions[] | select(.revision == $r and .known)' >/dev/null || return 1
	done
}
wait_for "kd-activator knows every kd revision" 60 known_all
sleep 5 # Knative's activator learns revisions through its own informers

# 3. cold bursts
SAMPLES="$OUT/samples.tsv"
: >"$SAMPLES"
burst() { # ARM R REPEAT SERVICE: R transfers started at once by one curl (--parallel-immediate)
	local arm="$1" r="$2" rep="$3" svc="$4" i dir
	dir="$(mktemp -d)"
	door_args "$arm" "$svc"
	cpx curl -sS -Z --parallel-immediate --parallel-max "$r" --max-time 120 "${HDRS[@]}" \
		-w '%{url} %{http_code} %{time_total}\n' -o "$dir/#1.body" "$TARGET/?i=[1-$r]" \
		>"$dir/res" 2>"$dir/err" || true
	local bad=0 n=0 url code secs idx
	while read -r url code secs; do
		idx="${url##*=}"
		n=$((n + 1))
		[[ $code == 200 && "$(cat "$dir/$idx.body" 2>/dev/null)" == "Hello from ${REV[$svc]}" ]] || bad=$((bad + 1))
		printf '%s\t%s\t%s\t%s\t%s\n' "$arm" "$r" "$rep" "$code" "$secs" >>"$SAMPLES"
	done <"$dir/res"
	for ((i = n; i < r; i++)); do # transfers curl never reported: failures
		printf '%s\t%s\t%s\t000\t120\n' "$arm" "$r" "$rep" >>"$SAMPLES"
		bad=$((bad + 1))
	done
	rm -rf "$dir"
	say "  repeat $rep/$REPEATS R=$r $arm: $((r - bad))/$r answered by the function"
}
T0=$SECONDS
for rep in $(seq 1 "$REPEATS"); do
	for r in "${RLIST[@]}"; do
		if ((rep % 2)); then order=(kd vanilla); else order=(vanilla kd); fi
		for arm in "${order[@]}"; do burst "$arm" "$r" "$rep" "$arm-r$r-$rep"; done
	done
done
say "cold-burst: cold phase took $((SECONDS - T0)) s"

# 4. sandbox start, same run
"$BUILD_DIR/bench/sandbox/sandbox" --n 20 --build-dir "$BUILD_DIR" >"$OUT/sandbox.txt" 2>&1 || say "bench/sandbox failed: $(tail -n 3 "$OUT/sandbox.txt")"
SANDBOX_P50="$(grep -m1 'start -> READY' "$OUT/sandbox.txt" | grep -oP 'p50\s+\K[0-9.]+' || true)"

# 5. warm path: one ready instance per arm
warm_up() { # ARM SERVICE
	door_args "$1" "$2"
	cpx curl -sS -o /dev/null --max-time 120 "${HDRS[@]}" "$TARGET/"
}
warm_up kd kd-warm
warm_up vanilla vanilla-warm
pod_ip() { kc -n "$NS" get pods -l "serving.knative.dev/revision=${REV[$1]}" -o jsonpath='{.items[0].status.podIP}'; }
has_ip() { [[ -n "$(pod_ip "$1")" ]]; }
wait_for "kd-warm pod IP in the API" 30 has_ip kd-warm
wait_for "vanilla-warm pod IP in the API" 30 has_ip vanilla-warm
KD_IP="$(pod_ip kd-warm)" VN_IP="$(pod_ip vanilla-warm)"
wrk_run() { # NAME URL REVISION-SERVICE
	cpx wrk -t1 -c8 -d"${WARM_SECONDS}s" --timeout 5s --latency -H "Knative-Serving-Namespace: $NS" \
		-H "Knative-Serving-Revision: ${REV[$3]}" "$2" >"$OUT/wrk-$1.txt" 2>&1 || true
}
wrk_run direct-kd "http://$KD_IP:8012/" kd-warm
wrk_run kd-activator "http://127.0.0.1:$ACT_PORT/" kd-warm
wrk_run direct-vanilla "http://$VN_IP:8012/" vanilla-warm
wrk_run knative-activator "http://$KN_ACTIVATOR/" vanilla-warm
if [[ $DOOR == gateway ]]; then
	for a in kd vanilla; do
		cpx wrk -t1 -c8 -d"${WARM_SECONDS}s" --timeout 5s --latency -H "Host: ${HOST[$a-warm]}" \
			"http://$GW/" >"$OUT/wrk-gateway-$a.txt" 2>&1 || true
	done
fi

# 6. report
DOOR="$DOOR" python3 - "$SAMPLES" "$OUT" "${SANDBOX_P50:-nan}" "${RLIST[*]}" "$REPEATS" <<'PY'
import os, sys, re, statistics
samples, out, sandbox, rlist, repeats = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(), int(sys.argv[5])
rows = [l.split('\t') for l in open(samples).read().splitlines() if l]
def pct(xs, p):
    xs = sorted(xs)
    if not xs: return float('nan')
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]
def ms(x): return x * 1000.0
print(f"door: {os.environ.get('DOOR', 'activators')}")
print("cold-burst: first requests to a Service at zero (ms; p50/p99/max over every request of every repeat;")
print("            per-repeat p50 min-max in brackets; ok = answered 200 by the function)")
print(f"{'R':>4} {'arm':<8} {'p50':>9} {'p99':>9} {'max':>9}  {'repeat p50 range':<22} ok")
stats = {}
for r in rlist:
    for arm in ('kd', 'vanilla'):
        sel = [x for x in rows if x[0] == arm and x[1] == r]
        t = [float(x[4]) for x in sel]
        ok = sum(1 for x in sel if x[3] == '200')
        per = [pct([float(x[4]) for x in sel if x[2] == str(k)], 50) for k in range(1, repeats + 1)]
        per = [p for p in per if p == p]
        stats[(arm, r)] = (pct(t, 50), pct(t, 99), max(t) if t else float('nan'))
        rng = f"[{ms(min(per)):.1f}-{ms(max(per)):.1f}]" if per else "-"
        print(f"{r:>4} {arm:<8} {ms(stats[(arm, r)][0]):9.1f} {ms(stats[(arm, r)][1]):9.1f} {ms(stats[(arm, r)][2]):9.1f}  {rng:<22} {ok}/{len(sel)}")
def wrk(name):
    try:
        txt = open(f"{out}/wrk-{name}.txt").read()
    except OSError:
        return float('nan'), float('nan')
    m = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s)\s*$", txt, re.M)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", txt)
    lat = float('nan')
    if m:
        lat = float(m.group(1)) * {'us': 0.001, 'ms': 1.0, 's': 1000.0}[m.group(2)]
    return lat, float(rps.group(1)) if rps else float('nan')
print("warm path (wrk, 1 thread, 8 connections; one ready instance):")
w = {}
names = ['direct-kd', 'kd-activator', 'direct-vanilla', 'knative-activator']
import os
names += [n for n in ('gateway-kd', 'gateway-vanilla') if os.path.exists(f"{out}/wrk-{n}.txt")]
for name in names:
    w[name] = wrk(name)
    print(f"  {name:<18} p50 {w[name][0]:7.3f} ms  {w[name][1]:9.0f} req/s")
r0 = rlist[0]
rmax = rlist[-1]
print(f"cold p50 kd: {ms(stats[('kd', r0)][0]):.1f}")
print(f"cold p50 vanilla: {ms(stats[('vanilla', r0)][0]):.1f}")
print(f"sandbox start p50: {sandbox}")
kd99 = stats[('kd', rmax)][1]
print(f"cold-burst R={rmax} p99 ratio: {stats[('vanilla', rmax)][1] / kd99:.2f}" if kd99 > 0 else f"cold-burst R={rmax} p99 ratio: n/a")
print(f"warm p50 overhead: {w['kd-activator'][0] / w['direct-kd'][0]:.2f}")
print(f"warm rps ratio: {w['kd-activator'][1] / w['knative-activator'][1]:.2f}")
PY
echo "report: $OUT"
