#!/usr/bin/env bash
# bench/trace/run.sh: an Azure Functions invocation trace replayed against both arms on the rig
# (`make bench-trace [MINUTES=10] [COMPRESS=10] [REPEATS=1]`).
#
# The arms are those of bench/lib/arms.sh running functions/sleep (ARMS_IMAGE=dev.local/sleep,
# ARMS_FUNCTION=sleep) in real sandboxes, identical except the class annotation: one Knative
# Service per trace function and arm, kd-t<i> (kd-activator and the chain) and vanilla-t<i>
# (Knative's activator and KPA), all at zero at the start, reached through kd-gateway
# (DOOR=gateway) by each Service's Host. $OUT/targets.tsv maps function i of each arm to the
# gateway's URL and that Host. bench/trace (build/bench/trace/trace, run in kd-cp) replays the
# trace once per arm and repeat, the first arm alternating per repeat (kd first in repeat 1); an
# arm's Services are back at zero before each of its runs. Each invocation is GET /?ms=<its
# duration> (functions/sleep answers after that long); scheduling latency = response time -
# requested duration, per-function slowdown = the mean of response time / requested duration
# (arithmetic, KubeDirect's, and geometric, Dirigent's); see `build/bench/trace/trace --help`.
# Prints the tool's table per run, a summary (median [min-max] over repeats) and the lines
# scripts read (medians over repeats; slowdown = per-function arithmetic mean, geo = geometric):
#   trace p50 sched kd: <ms>          trace p99 sched kd: <ms>          (and vanilla)
#   trace slowdown p50 kd: <x>        trace slowdown p99 kd: <x>        (and vanilla)
#   trace slowdown geo p50 kd: <x>    trace slowdown geo p99 kd: <x>    (and vanilla)
#   trace ok kd: <ok>/<measured>      trace ok vanilla: <ok>/<measured>
#   trace p99 sched ratio: <x> (vanilla / kd)
# Raw: $OUT/<arm>-<repeat>/{samples.tsv,summary.json,stdout,stderr} (the tool's), $OUT/plan.tsv,
# $OUT/targets.tsv, $OUT/settings.json.
# Env: TRACE (2019: bench/trace/data's 2019 pair, 4 functions; 2021: its 2021 trace, 31
# functions), MINUTES (10: trace minutes replayed), COMPRESS (10), WARMUP (10s), FUNCTIONS (0:
# all), MAX_DURATION (2000ms), SEED (the tool's default), TIMEOUT (30s per request), REPEATS (1),
# ARMS_WINDOW (6s), STARTUP_PROBE (5ms), BUILD, KD_BENCH_OUT (default
# /var/lib/kubedirect/bench/trace-<ts>).
# With the defaults (125 invocations over 60 s of wall time per run) the scenario takes about
# 3 minutes: setup and 8 Services ready at zero ~40-60 s, two runs of ~62 s, teardown ~10 s;
# each further repeat adds two runs and the waits for each arm's Services back at zero.
set -euo pipefail
SCEN=trace
case "${1:-}" in
-h | --help)
	sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
"") ;;
*)
	echo "$SCEN: unknown argument '$1' (see --help)" >&2
	exit 2
	;;
esac
TRACE="${TRACE:-2019}"
MINUTES="${MINUTES:-10}"
COMPRESS="${COMPRESS:-10}"
WARMUP="${WARMUP:-10s}"
FUNCTIONS="${FUNCTIONS:-0}"
MAX_DURATION="${MAX_DURATION:-2000ms}"
SEED="${SEED:-}"
TIMEOUT="${TIMEOUT:-30s}"
REPEATS="${REPEATS:-1}"
[[ "${DOOR:-gateway}" == gateway ]] || { echo "$SCEN: DOOR must be gateway (the targets are the gateway's URL and a Host)" >&2; exit 2; }
export DOOR=gateway ARMS_IMAGE=dev.local/sleep ARMS_FUNCTION=sleep
export ARMS_WINDOW="${ARMS_WINDOW:-6s}"
OUT="${KD_BENCH_OUT:-/var/lib/kubedirect/bench/trace-$(date -u +%Y%m%dT%H%M%SZ)}"
[[ "$MINUTES" =~ ^[0-9]+$ && "$MINUTES" -ge 1 ]] || { echo "$SCEN: MINUTES must be a count >= 1" >&2; exit 2; }
[[ "$COMPRESS" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "$SCEN: COMPRESS must be a number" >&2; exit 2; }
[[ "$FUNCTIONS" =~ ^[0-9]+$ ]] || { echo "$SCEN: FUNCTIONS must be a count (0: all)" >&2; exit 2; }
[[ -z "$SEED" || "$SEED" =~ ^[0-9]+$ ]] || { echo "$SCEN: SEED must be a number" >&2; exit 2; }
[[ "$REPEATS" =~ ^[1-9][0-9]*$ && "$REPEATS" -le 10 ]] || { echo "$SCEN: REPEATS must be 1-10" >&2; exit 2; }
DATA="$(cd "$(dirname "$0")" && pwd)/data"
case "$TRACE" in
2019) TRACE_ARGS=(--invocations "$DATA/azure2019-example-invocations.csv" --durations "$DATA/azure2019-example-durations.csv") ;;
2021) TRACE_ARGS=(--invocations2021 "$DATA/azure2021-invocations-200.csv") ;;
*)
	echo "$SCEN: TRACE must be 2019 or 2021" >&2
	exit 2
	;;
esac
TRACE_ARGS+=(--minutes "$MINUTES" --compress "$COMPRESS" --warmup "$WARMUP" --functions "$FUNCTIONS"
	--max-duration "$MAX_DURATION" --timeout "$TIMEOUT")
[[ -n "$SEED" ]] && TRACE_ARGS+=(--seed "$SEED")
# shellcheck source-path=SCRIPTDIR source=../lib/arms.sh
. "$(dirname "$0")/../lib/arms.sh"
TOOL="$BUILD_DIR/bench/trace/trace"
[[ -x "$TOOL" ]] || die "$TOOL not built (make all)"
arms_check

# 0. the schedule (the options are checked before the rig is touched): how many functions
PLAN_ERR="$("$TOOL" "${TRACE_ARGS[@]}" --plan 2>&1 >"$OUT/plan.tsv")" || die "the trace tool refused: $PLAN_ERR"
[[ "$PLAN_ERR" =~ plan:\ ([0-9]+)\ invocations\ of\ ([0-9]+)\ functions ]] || die "cannot read the plan: $PLAN_ERR"
NINV="${BASH_REMATCH[1]}" NFN="${BASH_REMATCH[2]}"
((NFN >= 1 && NFN <= 100)) || die "$NFN functions: 1-100 Services per arm (FUNCTIONS=)"
say "$SCEN: $PLAN_ERR"
arms_setup

# 1. one Service per trace function and arm, at zero
names=()
for i in $(seq 1 "$NFN"); do names+=("kd-t$i" "vanilla-t$i"); done
T0=$SECONDS
arms_create "${names[@]}"
arms_wait_ready $((120 + 8 * NFN))
say "$SCEN: $((2 * NFN)) Services ready at zero in $((SECONDS - T0)) s"
TARGETS="$OUT/targets.tsv"
{
	printf '# function-index\tarm\tURL\tHost (bench/trace/run.sh, DOOR=gateway)\n'
	for arm in kd vanilla; do
		for i in $(seq 1 "$NFN"); do
			mapfile -t lines < <(door "$arm" "$arm-t$i")
			[[ "${lines[1]:-}" == "Host: "* ]] || die "no Host for $arm-t$i"
			printf '%s\t%s\t%s\t%s\n' "$i" "$arm" "${lines[0]}" "${lines[1]#Host: }"
		done
	done
} >"$TARGETS"
printf '{"scenario":"trace","trace":"%s","minutes":%s,"compress":%s,"warmup":"%s","functions":%s,"invocations":%s,"max_duration":"%s","timeout":"%s","seed":"%s","repeats":%s,"door":"%s","window":"%s","startup_probe":"%s","image":"%s","client_limits":"%s","namespace":"%s"}\n' \
	"$TRACE" "$MINUTES" "$COMPRESS" "$WARMUP" "$NFN" "$NINV" "$MAX_DURATION" "$TIMEOUT" "${SEED:-default}" "$REPEATS" "$DOOR" "$ARMS_WINDOW" "$STARTUP_PROBE" "$ARMS_IMAGE" \
	"$(cat "$KD_RIG_DIR/client-limits" 2>/dev/null || echo unknown)" "$NS" >"$OUT/settings.json"

# 2. runs: per repeat, each arm once (the order alternates), from zero
arm_node() { if [[ $1 == kd ]]; then echo "$KD_NODE"; else echo "$VN_NODE"; fi; }
arm_at_zero() { [[ -z "$(kc -n "$NS" get pods --field-selector "spec.nodeName=$(arm_node "$1")" -o name 2>/dev/null)" ]]; }
FAILED_RUNS=0
declare -A RAN
T0=$SECONDS
for rep in $(seq 1 "$REPEATS"); do
	if ((rep % 2)); then order=(kd vanilla); else order=(vanilla kd); fi
	for arm in "${order[@]}"; do
		if [[ -n "${RAN[$arm]:-}" ]]; then
			t=$SECONDS
			wait_for "the $arm Services back at zero" 300 arm_at_zero "$arm"
			sleep 3 # the activators see the Endpoints empty too
			say "  $arm back at zero in $((SECONDS - t)) s"
		fi
		RAN[$arm]=1
		dir="$OUT/$arm-$rep"
		mkdir -p "$dir"
		say "$SCEN: repeat $rep/$REPEATS, arm $arm"
		rc=0
		cpx "$TOOL" "${TRACE_ARGS[@]}" --targets "$TARGETS" --arm "$arm" --out "$dir" \
			2>&1 >"$dir/stdout" 9>&- | tee "$dir/stderr" >&2 || rc=$?
		cat "$dir/stdout" >&2
		if ((rc != 0)) || [[ ! -s "$dir/summary.json" ]]; then
			say "$SCEN: repeat $rep arm $arm: the trace tool exited $rc (see $dir/stderr)"
			FAILED_RUNS=$((FAILED_RUNS + 1))
		fi
	done
done
say "$SCEN: runs took $((SECONDS - T0)) s"

# 3. report: the tool's figures per run, median [min-max] over repeats
PYTHONPATH="$ARMS_REPO/bench/lib" python3 - "$OUT" "$REPEATS" <<'PY'
import json, os, sys
from kdstats import median
out, repeats = sys.argv[1], int(sys.argv[2])
runs = {'kd': [], 'vanilla': []}
for arm in runs:
    for r in range(1, repeats + 1):
        p = os.path.join(out, f"{arm}-{r}", "summary.json")
        if os.path.exists(p):
            runs[arm].append(json.load(open(p)))
def fig(s, *path):
    for k in path:
        s = s.get(k) if isinstance(s, dict) else None
    return float('nan') if s is None else float(s)
rows = [("sched p50 ms", ("sched_latency_ms", "p50")), ("sched p99 ms", ("sched_latency_ms", "p99")),
        ("response p99 ms", ("response_ms", "p99")), ("send lag p99 ms", ("send_lag_ms", "p99")),
        ("slowdown/fn arith p50", ("slowdown", "function_arith", "p50")),
        ("slowdown/fn arith p99", ("slowdown", "function_arith", "p99")),
        ("slowdown/fn geo p50", ("slowdown", "function_geo", "p50")),
        ("slowdown/fn geo p99", ("slowdown", "function_geo", "p99"))]
print("trace: median [min-max] over repeats of each run's figure (bench/trace's summary.json)")
print(f"{'':<24} {'kd':<28} {'vanilla':<28}")
med = {}
for name, path in rows:
    cells = []
    for arm in ('kd', 'vanilla'):
        v = [fig(s, *path) for s in runs[arm]]
        v = [x for x in v if x == x]
        med[(arm, path)] = median(v)
        cells.append(f"{median(v):.3f} [{min(v):.3f}-{max(v):.3f}]" if v else "-")
    print(f"{name:<24} {cells[0]:<28} {cells[1]:<28}")
for arm in ('kd', 'vanilla'):
    ok = sum(int(fig(s, 'counts', 'ok')) for s in runs[arm])
    meas = sum(int(fig(s, 'counts', 'measured')) for s in runs[arm])
    disc = sum(int(fig(s, 'counts', 'discarded')) for s in runs[arm])
    print(f"{arm}: {len(runs[arm])} runs, ok {ok}/{meas} measured, {disc} warm-up discarded")
def line(label, arm, path, fmt):
    v = med[(arm, path)]
    print(f"trace {label} {arm}: " + (fmt % v if v == v else "n/a"))
for arm in ('kd', 'vanilla'):
    line("p50 sched", arm, ("sched_latency_ms", "p50"), "%.1f")
    line("p99 sched", arm, ("sched_latency_ms", "p99"), "%.1f")
    line("slowdown p50", arm, ("slowdown", "function_arith", "p50"), "%.3f")
    line("slowdown p99", arm, ("slowdown", "function_arith", "p99"), "%.3f")
    line("slowdown geo p50", arm, ("slowdown", "function_geo", "p50"), "%.3f")
    line("slowdown geo p99", arm, ("slowdown", "function_geo", "p99"), "%.3f")
for arm in ('kd', 'vanilla'):
    ok = sum(int(fig(s, 'counts', 'ok')) for s in runs[arm])
    meas = sum(int(fig(s, 'counts', 'measured')) for s in runs[arm])
    print(f"trace ok {arm}: {ok}/{meas}")
kd99, v99 = med[('kd', ("sched_latency_ms", "p99"))], med[('vanilla', ("sched_latency_ms", "p99"))]
print(f"trace p99 sched ratio: {v99 / kd99:.2f}" if kd99 == kd99 and v99 == v99 and kd99 > 0 else "trace p99 sched ratio: n/a")
PY
say "$SCEN: report in $OUT"
((FAILED_RUNS == 0)) || die "$FAILED_RUNS run(s) of the trace tool failed"
