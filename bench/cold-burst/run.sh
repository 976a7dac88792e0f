#!/usr/bin/env bash
# bench/cold-burst/run.sh: R concurrent first requests to a Knative Service at zero, both arms in
# one run on the rig (`make bench-cold-burst R=1,10,50 [REPEATS=3] [BUILD=...]`).
#
# The arms are those of bench/lib/arms.sh: Knative Services running functions/hello in real
# sandboxes (runtime-process, Knative's queue-proxy in front), identical except the class
# annotation, each arm on a Node of its own served by a kd-node: kd through kd-activator and the
# chain, vanilla through Knative's activator and KPA. DOOR=activators (default) sends each arm to
# its activator with the Knative-Serving-* headers; DOOR=gateway sends both through kd-gateway by
# the Service URL's Host (the same door; the warm path then also measures both through it).
# Every (arm, R, repeat) gets a fresh Service at zero; arms alternate which goes first per repeat.
# Then the warm path, with one instance of each arm ready: wrk (bounded: 1 thread, 8 connections,
# WARM_SECONDS s) direct to the pod's queue-proxy, through kd-activator, and through Knative's
# activator. The sandbox start time comes from bench/sandbox in the same run.
# Prints a table and the lines scripts read:
#   cold p50 kd: <ms>            cold p50 vanilla: <ms>      sandbox start p50: <ms>
#   cold-burst R=<max R> p99 ratio: <x> (vanilla/kd)
#   warm p50 overhead: <x> (kd-activator / direct)   warm rps ratio: <x> (kd-activator / Knative)
# Raw samples: $OUT/samples.tsv (arm R repeat http_code seconds), settings in $OUT/settings.json.
# Env: R (default 1,10,50), REPEATS (3), WARM_SECONDS (5), DOOR, STARTUP_PROBE (startup-probe-
# period of both arms' sandboxes, 5ms as bench/sandbox), BUILD, KD_BENCH_OUT (default
# /var/lib/kubedirect/bench/cold-burst-<ts>).
set -euo pipefail
case "${1:-}" in
-h | --help)
	sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
"") ;;
*)
	echo "cold-burst: unknown argument '$1' (see --help)" >&2
	exit 2
	;;
esac
SCEN=cold-burst
RS="${R:-1,10,50}"
REPEATS="${REPEATS:-3}"
WARM_SECONDS="${WARM_SECONDS:-5}"
OUT="${KD_BENCH_OUT:-/var/lib/kubedirect/bench/cold-burst-$(date -u +%Y%m%dT%H%M%SZ)}"
[[ "$RS" =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "cold-burst: R must be a list of counts, got '$RS'" >&2; exit 2; }
[[ "$REPEATS" =~ ^[1-9][0-9]*$ && "$REPEATS" -le 10 ]] || { echo "cold-burst: REPEATS must be 1-10" >&2; exit 2; }
IFS=, read -r -a RLIST <<<"$RS"
for r in "${RLIST[@]}"; do ((r >= 1 && r <= 200)) || { echo "cold-burst: each R must be 1-200" >&2; exit 2; }; done
. "$(dirname "$0")/../lib/arms.sh"
arms_check
arms_setup

# 1. one Service per (arm, R, repeat), all at zero
names=()
for rep in $(seq 1 "$REPEATS"); do
	for r in "${RLIST[@]}"; do
		names+=("kd-r$r-$rep" "vanilla-r$r-$rep")
	done
done
arms_create "${names[@]}" kd-warm vanilla-warm
arms_wait_ready
printf '{"scenario":"cold-burst","r":[%s],"repeats":%s,"door":"%s","startup_probe":"%s","warm_seconds":%s,"client_limits":"%s","namespace":"%s"}\n' \
	"$RS" "$REPEATS" "$DOOR" "$STARTUP_PROBE" "$WARM_SECONDS" "$(cat "$KD_RIG_DIR/client-limits" 2>/dev/null || echo unknown)" "$NS" >"$OUT/settings.json"

# 2. cold bursts
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

# 3. sandbox start, same run
"$BUILD_DIR/bench/sandbox/sandbox" --n 20 --build-dir "$BUILD_DIR" >"$OUT/sandbox.txt" 2>&1 || say "bench/sandbox failed: $(tail -n 3 "$OUT/sandbox.txt")"
SANDBOX_P50="$(grep -m1 'start -> READY' "$OUT/sandbox.txt" | grep -oP 'p50\s+\K[0-9.]+' || true)"

# 4. warm path: one ready instance per arm
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

# 5. report
PYTHONPATH="$ARMS_REPO/bench/lib" DOOR="$DOOR" python3 - "$SAMPLES" "$OUT" "${SANDBOX_P50:-nan}" "${RLIST[*]}" "$REPEATS" <<'PY'
import os, sys, re
samples, out, sandbox, rlist, repeats = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(), int(sys.argv[5])
rows = [l.split('\t') for l in open(samples).read().splitlines() if l]
from kdstats import pct
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
