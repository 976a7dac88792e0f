#!/usr/bin/env bash
# bench/scale-pods/run.sh: the scale-pods benchmark (docs/ARCHITECTURE.md section 8), both arms in one run on the rig
# (`make bench-scale-pods N=50,200,500 [BUILD=...]`).
#
# Setup (all ours, removed afterwards): a kd-node in direct mode serving 4 Nodes kd-bsp-160..163
# (runtime-sim, ready-delay 0 ms, kubelet status write limits per node of the rig's setting:
# 200/400 tuned, 50/100 default; the kd instances' writes go through the write-back, the vanilla
# pods' through kd-node's kubelet mode), labelled kd-bench=<namespace>; a kd-autoscaler limited
# to the namespace; per N two Knative Services at zero, kd-n<N>-r<i> (class kd.kubedirect.dev) and
# vanilla-n<N>-r<i> (class kpa.autoscaling.knative.dev), identical except the class annotation
# (target 1, target-utilization 100 %, nodeSelector on those Nodes). Both arms start from the
# same input, the stat Knative's activator would send for N requests in flight, one protobuf
# WireStatMessages frame, repeated every second during the run; each autoscaler decides N from
# it at once (a stat for a revision at zero is a poke in both):
#  - kd arm (bench/scale-pods --decision stat): the frame on kd-autoscaler's stats WebSocket;
#    kd's decider decides, the chain places and starts; chain = reported ready through the chain
#    (kd-node's status op, which this benchmark receives too via kd-node --status-addr
#    AS,BENCH,ACT); routable = held as ready in kd-activator's routing table (its
#    /debug/routes, the data plane's own view); API Ready = seen Ready through a watch.
#  - vanilla arm (bench/scale-pods-vanilla --knative-stats): the same frame to Knative's
#    autoscaler (its stat server, 10.88.0.12:8080 in kd-kn-as); the KPA decides and scales the
#    revision's Deployment; ReplicaSet controller, kube-scheduler, kd-node in kubelet mode;
#    routable = the pod's address first among the ready addresses of the revision's private
#    Endpoints (<revision>-private, what Knative's activator routes on); API Ready = seen Ready
#    through a watch.
# Each arm's Service of an N is deleted after its run (no run inherits an autoscaler's window),
# and the next N starts when its pods are gone.
# The vanilla arm runs against the control plane as the rig runs it: "tuned" (rig/up's default,
# KubeDirect's baseline tuning) or `KD_RIG_CLIENT_LIMITS=default rig/up` (upstream defaults); the
# flags are in rig/README.md "Client limits". This script does not switch (that is a rig restart):
# it reads the mode from $KD_RIG_DIR/client-limits and reports that one.
# Then bench/apiserver-ceiling with the same pod spec and N: the API Server's own ceiling for the
# write-back's writes (N creates, then N status patches), printed per N beside the kd arm's API
# consistency (kd API Ready p100 after the decision) as `N=<n> api consistent: <ms> ceiling: <ms>`,
# and `api p90 ratio <mode>: <x>` (vanilla / kd API Ready p90 at the largest N).
# The ratio lines compare like with like, never mixed:
#  - `p90 ratio <mode>: <x>`: routable with routable, vanilla Endpoints p90 / kd-activator p90,
#    at N=200 (else the largest N); the other mode's line says n/a;
#  - `api p90 ratio <mode>: <x>`: Pod Ready with Pod Ready through a watch (KubeDirect's
#    scale-pods metric), vanilla API Ready p90 / kd API Ready p90 at the largest N.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
. "$REPO/rig/lib.sh"
COUNTS="${N:-50,200,500}"
BUILD_DIR="${KD_BUILD_DIR:-$REPO/${BUILD:-build}}"
AS_STATS_PORT="${BSP_STATS_PORT:-18090}"
AS_STATUS_PORT="${BSP_STATUS_PORT:-19481}"
BENCH_STATUS_PORT="${BSP_BENCH_STATUS_PORT:-19482}"
ACT_STATUS_PORT="${BSP_ACT_STATUS_PORT:-19483}"
ACT_ADMIN_PORT="${BSP_ACT_ADMIN_PORT:-19484}"
ACT_PORT="${BSP_ACT_PORT:-19485}"
DN_PORT="${BSP_NODE_PORT:-19480}"
NODES=4
PREFIX=kd-bsp
BASE=160
KC="$KD_K8S_BIN/kubectl"
kc() { "$KC" --kubeconfig "$KD_KUBECONFIG" --request-timeout=20s "$@"; }
say() { printf '%s\n' "$*" >&2; }
die() {
	say "scale-pods: $*"
	exit 1
}
for b in bin/kd-node bin/kd-autoscaler bin/kd-activator bench/scale-pods/scale-pods bench/scale-pods-vanilla/scale-pods-vanilla; do
	[[ -x "$BUILD_DIR/$b" ]] || die "$BUILD_DIR/$b not built"
done
"$REPO/rig/status" --quiet || die "the rig is not up"

exec 9>/var/lock/kd-autoscaler-it.lock
flock -w 900 9 || die "another kd-autoscaler test holds /var/lock/kd-autoscaler-it.lock"

# a previous benchmark's namespace still being deleted would load the API Server during this one
t0=$SECONDS
while kc get namespaces -o name | grep -q '^namespace/kd-bench-'; do
	((SECONDS - t0 < 180)) || die "a previous benchmark's namespace kd-bench-* is still there after 180 s"
	sleep 1
done
NS="kd-bench-sp-$(date +%s)"
if [[ -n "${KD_BENCH_OUT:-}" ]]; then # bench/ab: the report folder of this scenario
	WORK="$KD_BENCH_OUT"
	mkdir -p "$WORK"
else
	WORK="$(mktemp -d /tmp/kd-bench-sp.XXXXXX)"
fi
AS_PID=""
DN_PID=""
ACT_PID=""
NODE_LIST=()
for ((i = 0; i < NODES; i++)); do NODE_LIST+=("$PREFIX-$((BASE + i))"); done
stop_pid() {
	local pid="$1" i
	[[ -n "$pid" ]] || return 0
	kill "$pid" 2>/dev/null || true
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
}
cleanup() {
	stop_pid "$ACT_PID"
	stop_pid "$AS_PID"
	stop_pid "$DN_PID"
	kc delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
	kc delete node "${NODE_LIST[@]}" --wait=false >/dev/null 2>&1 || true
	say "logs: $WORK"
}
trap cleanup EXIT
kc create namespace "$NS" >/dev/null

# kd-activator: the data plane's routing table ("routable" = held there as ready)
ip netns exec kd-cp "$BUILD_DIR/bin/kd-activator" --kubeconfig "$KD_KUBECONFIG" --namespace "$NS" \
	--bind 127.0.0.1 --port "$ACT_PORT" --admin-bind 127.0.0.1 --admin-port "$ACT_ADMIN_PORT" \
	--status-bind 127.0.0.1 --status-port "$ACT_STATUS_PORT" >"$WORK/kd-activator.log" 2>&1 9>&- &
ACT_PID=$!
# the rig's setting (rig/up writes it); kd-node stands in for the kubelets of the vanilla pods,
# so their status writes get the kubelet limits of that setting (rig/README.md "Client limits")
MODE="$(cat "$KD_RIG_DIR/client-limits" 2>/dev/null || echo tuned)"
if [[ $MODE == tuned ]]; then KUBELET_LIMITS=(--status-qps 200 --status-burst 400); else KUBELET_LIMITS=(); fi
ip netns exec kd-cp env KD_PLUGIN_DIR="$BUILD_DIR/plugins" "$BUILD_DIR/bin/kd-node" \
	--kubeconfig "$KD_KUBECONFIG" --nodes "$NODES" --node-prefix "$PREFIX" \
	--node-index-base "$BASE" --max-pods 500 --runtime runtime-sim "${KUBELET_LIMITS[@]}" \
	--runtime-config '{"ready-delay":"0ms"}' --direct --direct-port "$DN_PORT" \
	--status-addr "127.0.0.1:$AS_STATUS_PORT,127.0.0.1:$BENCH_STATUS_PORT,127.0.0.1:$ACT_STATUS_PORT" \
	>"$WORK/kd-node.log" 2>&1 9>&- &
DN_PID=$!
t0=$SECONDS
until [[ "$(grep -c 'registered (podCIDR' "$WORK/kd-node.log")" -ge "$NODES" ]]; do
	kill -0 "$DN_PID" 2>/dev/null || die "kd-node exited: $(tail -3 "$WORK/kd-node.log")"
	((SECONDS - t0 < 60)) || die "kd-node Nodes not registered"
	sleep 0.5
done
for n in "${NODE_LIST[@]}"; do kc label node "$n" "kd-bench=$NS" --overwrite >/dev/null; done

ip netns exec kd-cp env KD_PLUGIN_DIR="$BUILD_DIR/plugins" "$BUILD_DIR/bin/kd-autoscaler" \
	--kubeconfig "$KD_KUBECONFIG" --stats-bind 127.0.0.1 --stats-port "$AS_STATS_PORT" \
	--status-bind 127.0.0.1 --status-port "$AS_STATUS_PORT" --namespace "$NS" \
	--source "kd-autoscaler:$NS" >"$WORK/kd-autoscaler.log" 2>&1 9>&- &
AS_PID=$!
t0=$SECONDS
until grep -q "reconciling PodAutoscalers" "$WORK/kd-autoscaler.log"; do
	kill -0 "$AS_PID" 2>/dev/null || die "kd-autoscaler exited: $(tail -3 "$WORK/kd-autoscaler.log")"
	((SECONDS - t0 < 20)) || die "kd-autoscaler did not start"
	sleep 0.2
done

# One Knative Service per arm and N, all at zero, identical except the class annotation: target
# 1 and target-utilization 100 % make both autoscalers (kd's decider-kpa and Knative's KPA)
# decide N from a concurrency of N.
IFS=, read -r -a NLIST <<<"$COUNTS"
ksvc() { # NAME CLASS
	cat <<EOT
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: $1
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/class: $2
        autoscaling.knative.dev/initial-scale: "0"
        autoscaling.knative.dev/min-scale: "0"
        autoscaling.knative.dev/target: "1"
        autoscaling.knative.dev/target-utilization-percentage: "100"
    spec:
      nodeSelector: {kd-bench: $NS}
      containers:
      - image: dev.local/hello
        ports:
        - containerPort: 8080
---
EOT
}
KD_REVS=() KD_SVCS=() VN_REVS=() VN_SVCS=()
for i in "${!NLIST[@]}"; do # run i of N: kd-n<N>-r<i> and vanilla-n<N>-r<i> (an N may repeat)
	KD_SVCS+=("kd-n${NLIST[$i]}-r$i") VN_SVCS+=("vanilla-n${NLIST[$i]}-r$i")
	ksvc "${KD_SVCS[$i]}" kd.kubedirect.dev
	ksvc "${VN_SVCS[$i]}" kpa.autoscaling.knative.dev
done | kc -n "$NS" apply -f - >/dev/null
for i in "${!NLIST[@]}"; do
	KD_SVCS+=("kd-n${NLIST[$i]}-r$i") VN_SVCS+=("vanilla-n${NLIST[$i]}-r$i")
done
rev_ready() { # SERVICE: prints its revision once that is Ready
	local r
	r="$(kc -n "$NS" get ksvc "$1" -o jsonpath='{.status.latestCreatedRevisionName}' 2>/dev/null || true)"
	[[ -n "$r" && "$(kc -n "$NS" get revision "$r" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]] && echo "$r"
}
t0=$SECONDS
for s in "${KD_SVCS[@]}" "${VN_SVCS[@]}"; do
	until r="$(rev_ready "$s")"; do
		((SECONDS - t0 < 180)) || die "revision of $s not Ready at zero"
		sleep 0.5
	done
	if [[ $s == kd-* ]]; then KD_REVS+=("$r"); else VN_REVS+=("$r"); fi
done
join() { local IFS=,; echo "$*"; }
REV="${KD_REVS[0]}"
say "scale-pods: namespace $NS, Services kd-n<N>-r<i> and vanilla-n<N>-r<i> for N in $COUNTS, control plane client limits: $MODE"
# the vanilla pods are the revision's pods: same spec (user-container + queue-proxy) as the kd ones
kc get --raw "/apis/apps/v1/namespaces/$NS/deployments/$REV-deployment" |
	python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["spec"]["template"]["spec"]))' >"$WORK/podspec.json"

ip netns exec kd-cp "$BUILD_DIR/bench/scale-pods/scale-pods" --kubeconfig "$KD_KUBECONFIG" \
	--namespace "$NS" --decision stat --revisions "$(join "${KD_REVS[@]}")" \
	--services "$(join "${KD_SVCS[@]}")" --stats-addr "127.0.0.1:$AS_STATS_PORT" \
	--status-port "$BENCH_STATUS_PORT" --counts "$COUNTS" --json "$WORK/kd.json" \
	--activator-admin "127.0.0.1:$ACT_ADMIN_PORT" ||
	say "scale-pods: kd arm reported a failure (see above)"
stop_pid "$AS_PID" # the vanilla arm runs with the chain idle
AS_PID=""
# the vanilla arm: the same stat to Knative's autoscaler (its stat server in kd-kn-as)
"$BUILD_DIR/bench/scale-pods-vanilla/scale-pods-vanilla" --kubeconfig "$KD_KUBECONFIG" \
	--namespace "$NS" --counts "$COUNTS" --knative-stats "${KD_NS_IP[kn-as]}:8080" \
	--revisions "$(join "${VN_REVS[@]}")" --services "$(join "${VN_SVCS[@]}")" \
	--json "$WORK/vanilla.json" >"$WORK/vanilla.txt" 2>&1 || say "scale-pods: vanilla arm reported a failure"
cat "$WORK/vanilla.txt"
# the API Server's own ceiling for the write-back's writes (same pod spec, same N), run with
# both arms idle: N creates then N status patches, as fast as it accepts them
"$BUILD_DIR/bench/apiserver-ceiling/apiserver-ceiling" --kubeconfig "$KD_KUBECONFIG" \
	--namespace "$NS-ceiling" --pod-spec "$WORK/podspec.json" --counts "$COUNTS" \
	>"$WORK/ceiling.txt" 2>&1 || say "scale-pods: the ceiling benchmark reported a failure"
cat "$WORK/ceiling.txt"

python3 - "$WORK/kd.json" "$WORK/vanilla.json" "$MODE" "$WORK/ceiling.txt" <<'EOF'
import json, re, sys
kd = {r["n"]: r for r in json.load(open(sys.argv[1]))}
va = {r["n"]: r for r in json.load(open(sys.argv[2]))}
mode = sys.argv[3]
ceiling = {int(m.group(1)): float(m.group(2)) for m in
           (re.match(r"N=(\d+) ceiling: (\d+)", l) for l in open(sys.argv[4])) if m}
print()
print(f"{'N':>5} | {'kd routable (kd-activator)':>28} | {'vanilla routable (Endpoints)':>28} | "
      f"routable p90 ratio | {'kd chain':>16} | {'kd API Ready':>16} | "
      f"{'vanilla ('+mode+') Ready':>24} | Ready p90 ratio")
print(f"{'':>5} | {'p50/p90/p100 ms':>28} | {'p50/p90/p100 ms':>28} | {'':>18} | "
      f"{'p50/p90/p100 ms':>16} | {'p50/p90/p100 ms':>16} | {'p50/p90/p100 ms':>24} |")
last = None
for n in sorted(set(kd) | set(va)):
    k, v = kd.get(n), va.get(n)
    def f(r, p):
        if not r or p + "90_ms" not in r:
            return "-"
        return "/".join(f"{r[p + s + '_ms']:.0f}" for s in ("50", "90", "100"))
    ratio = v["ready_p90_ms"] / k["ready_p90_ms"] if k and v and k["ready_p90_ms"] > 0 else None
    rratio = (v["routable_p90_ms"] / k["activator_p90_ms"]
              if k and v and k.get("activator_p90_ms", -1) > 0 and v.get("routable_p90_ms", -1) > 0
              else None)
    print(f"{n:>5} | {f(k, 'activator_p'):>28} | {f(v, 'routable_p'):>28} | "
          + (f"{rratio:.2f}x" if rratio else "-").rjust(18)
          + f" | {f(k, 'routable_p'):>16} | {f(k, 'ready_p'):>16} | "
          f"{f(v, 'ready_p'):>24} | " + (f"{ratio:.2f}x" if ratio else "-"))
    if k:
        print(f"{'':>5}   chain throughput {k['chain_rate_per_s']:.0f} instances/s (one batch); "
              f"write-back lag (API p100 - chain p100) {k['ready_p100_ms'] - k['routable_p100_ms']:.0f} ms")
    if rratio and (last is None or last[0] != 200):
        last = (n, rratio, k, v)
print()
for n in sorted(kd):
    c = ceiling.get(n)
    cons = kd[n]["ready_p100_ms"]
    print(f"N={n} api consistent: {cons:.0f} ceiling: " + (f"{c:.0f}" if c else "n/a") +
          (f"  ({cons / c:.2f}x the ceiling; api consistent = kd API Ready p100 after the decision)" if c else ""))
for n in sorted(set(kd) & set(va)):
    if kd[n]["ready_p90_ms"] > 0:
        print(f"N={n} api p90 ratio {mode}: {va[n]['ready_p90_ms'] / kd[n]['ready_p90_ms']:.2f}")
big = max(set(kd) & set(va), default=None)
if big and kd[big]["ready_p90_ms"] > 0:
    print(f"api p90 ratio {mode}: {va[big]['ready_p90_ms'] / kd[big]['ready_p90_ms']:.2f}  (N={big}, vanilla API Ready p90 / kd API Ready p90)")
if last:
    print(f"p90 ratio {mode}: {last[1]:.2f}  (N={last[0]}, vanilla routable p90 (private-Service Endpoints) / kd routable p90 (kd-activator))")
    print(f"routable p90 kd: {last[2]['activator_p90_ms']:.0f}  (N={last[0]}, kd-activator's routing table)")
    print(f"routable p90 vanilla: {last[3]['routable_p90_ms']:.0f}  (N={last[0]}, ready in the Endpoints)")
other = "default" if mode == "tuned" else "tuned"
print(f"p90 ratio {other}: n/a (not measured in this run: rig/up runs one mode at a time)")
EOF
