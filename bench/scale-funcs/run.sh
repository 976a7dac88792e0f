#!/usr/bin/env bash
# bench/scale-funcs/run.sh: K Services at zero, each sent its first request at the same moment,
# both arms in one run on the rig (`make bench-scale-funcs K=20,100 [REPEATS=3] [DOOR=gateway]`).
#
# The arms are those of bench/lib/arms.sh: Knative Services running functions/hello in real
# sandboxes, identical except the class annotation (kd.kubedirect.dev through kd-activator and
# the chain, kpa.autoscaling.knative.dev through Knative's activator and KPA), each arm on a Node
# of its own. Per arm, max(K) Services are created once, all at zero. For each repeat and each K,
# one curl starts a first request to each of the first K Services of one arm at once
# (--parallel-immediate), then the same for the other arm (the arm that goes first alternates per
# repeat); then every Service is left to scale back to zero (window ARMS_WINDOW, 6s by default,
# on both arms) before the next round. The time of a Service is its request's total time from
# that common start: the time until it answered its first request.
# Prints, per K and arm, the p50/p90/p100 Service (over every repeat) and the spread of the
# per-repeat p90s, and the lines scripts read:
#   scale-funcs K=<k> p90 kd: <ms>      scale-funcs K=<k> p90 vanilla: <ms>
#   scale-funcs K=<max K> p90 ratio: <x> (vanilla / kd)
# Raw samples: $OUT/samples.tsv (arm K repeat service http_code seconds); settings in
# $OUT/settings.json. Env: K (default 20,100), REPEATS (3), DOOR (activators|gateway),
# ARMS_WINDOW (6s), STARTUP_PROBE (5ms), BUILD, KD_BENCH_OUT (default
# /var/lib/kubedirect/bench/scale-funcs-<ts>).
set -euo pipefail
SCEN=scale-funcs
case "${1:-}" in
-h | --help)
	sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
"") ;;
*)
	echo "$SCEN: unknown argument '$1' (see --help)" >&2
	exit 2
	;;
esac
KS="${K:-20,100}"
REPEATS="${REPEATS:-3}"
export ARMS_WINDOW="${ARMS_WINDOW:-6s}"
OUT="${KD_BENCH_OUT:-/var/lib/kubedirect/bench/scale-funcs-$(date -u +%Y%m%dT%H%M%SZ)}"
[[ "$KS" =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "$SCEN: K must be a list of counts, got '$KS'" >&2; exit 2; }
[[ "$REPEATS" =~ ^[1-9][0-9]*$ && "$REPEATS" -le 10 ]] || { echo "$SCEN: REPEATS must be 1-10" >&2; exit 2; }
IFS=, read -r -a KLIST <<<"$KS"
KMAX=0
for k in "${KLIST[@]}"; do
	((k >= 1 && k <= 200)) || { echo "$SCEN: each K must be 1-200" >&2; exit 2; }
	((k > KMAX)) && KMAX=$k
done
. "$(dirname "$0")/../lib/arms.sh"
arms_check
arms_setup

# 1. max(K) Services per arm, at zero
names=()
for i in $(seq 1 "$KMAX"); do names+=("kd-f$i" "vanilla-f$i"); done
T0=$SECONDS
arms_create "${names[@]}"
arms_wait_ready $((120 + 4 * KMAX))
say "$SCEN: $((2 * KMAX)) Services ready at zero in $((SECONDS - T0)) s"
printf '{"scenario":"scale-funcs","k":[%s],"repeats":%s,"door":"%s","window":"%s","startup_probe":"%s","client_limits":"%s","namespace":"%s"}\n' \
	"$KS" "$REPEATS" "$DOOR" "$ARMS_WINDOW" "$STARTUP_PROBE" "$(cat "$KD_RIG_DIR/client-limits" 2>/dev/null || echo unknown)" "$NS" >"$OUT/settings.json"

# 2. rounds: the first K Services of one arm at once, then of the other; back to zero
SAMPLES="$OUT/samples.tsv"
: >"$SAMPLES"
fan() { # ARM K REPEAT: one first request to each of the arm's first K Services, all at once
	local arm="$1" k="$2" rep="$3" i dir args=() svc bad=0 n=0 url code secs idx
	dir="$(mktemp -d)"
	for i in $(seq 1 "$k"); do
		svc="$arm-f$i"
		door_args "$arm" "$svc"
		((i > 1)) && args+=(--next)
		args+=("${HDRS[@]}" -o "$dir/$i.body" -w '%{url} %{http_code} %{time_total}\n' --max-time 120 "$TARGET/?f=$i")
	done
	cpx curl -sS -Z --parallel-immediate --parallel-max "$k" "${args[@]}" >"$dir/res" 2>"$dir/err" || true
	while read -r url code secs; do
		idx="${url##*=}"
		n=$((n + 1))
		[[ $code == 200 && "$(cat "$dir/$idx.body" 2>/dev/null)" == "Hello from ${REV[$arm-f$idx]}" ]] || bad=$((bad + 1))
		printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$arm" "$k" "$rep" "$arm-f$idx" "$code" "$secs" >>"$SAMPLES"
	done <"$dir/res"
	for ((i = n; i < k; i++)); do # transfers curl never reported: failures
		printf '%s\t%s\t%s\t-\t000\t120\n' "$arm" "$k" "$rep" >>"$SAMPLES"
		bad=$((bad + 1))
	done
	rm -rf "$dir"
	say "  repeat $rep/$REPEATS K=$k $arm: $((k - bad))/$k Services answered their first request"
}
back_to_zero() { [[ -z "$(kc -n "$NS" get pods -o name 2>/dev/null)" ]]; }
T0=$SECONDS
for rep in $(seq 1 "$REPEATS"); do
	for k in "${KLIST[@]}"; do
		if ((rep % 2)); then order=(kd vanilla); else order=(vanilla kd); fi
		for arm in "${order[@]}"; do fan "$arm" "$k" "$rep"; done
		t=$SECONDS
		wait_for "every Service back at zero" 300 back_to_zero
		sleep 3 # the activators see the Endpoints empty too
		say "  back at zero in $((SECONDS - t)) s"
	done
done
say "$SCEN: rounds took $((SECONDS - T0)) s"

# 3. report
PYTHONPATH="$ARMS_REPO/bench/lib" python3 - "$SAMPLES" "${KLIST[*]}" "$REPEATS" "$DOOR" <<'PY'
import sys
samples, klist, repeats, door = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), sys.argv[4]
rows = [l.split('\t') for l in open(samples).read().splitlines() if l]
from kdstats import pct
print(f"door: {door}")
print("scale-funcs: K Services at zero, one first request each at once; ms until the p50/p90/p100")
print("             Service answered (over every repeat); per-repeat p90 min-max; ok = answered 200")
print(f"{'K':>4} {'arm':<8} {'p50':>9} {'p90':>9} {'p100':>9}  {'repeat p90 range':<22} ok")
st = {}
for k in klist:
    for arm in ('kd', 'vanilla'):
        sel = [x for x in rows if x[0] == arm and x[1] == k]
        t = [float(x[5]) * 1000 for x in sel]
        ok = sum(1 for x in sel if x[4] == '200')
        per = [pct([float(x[5]) * 1000 for x in sel if x[2] == str(r)], 90) for r in range(1, repeats + 1)]
        per = [p for p in per if p == p]
        st[(arm, k)] = (pct(t, 50), pct(t, 90), max(t) if t else float('nan'))
        rng = f"[{min(per):.1f}-{max(per):.1f}]" if per else "-"
        print(f"{k:>4} {arm:<8} {st[(arm, k)][0]:9.1f} {st[(arm, k)][1]:9.1f} {st[(arm, k)][2]:9.1f}  {rng:<22} {ok}/{len(sel)}")
for k in klist:
    print(f"scale-funcs K={k} p90 kd: {st[('kd', k)][1]:.1f}")
    print(f"scale-funcs K={k} p90 vanilla: {st[('vanilla', k)][1]:.1f}")
km = max(klist, key=int)
kd90 = st[('kd', km)][1]
print(f"scale-funcs K={km} p90 ratio: {st[('vanilla', km)][1] / kd90:.2f}" if kd90 > 0 else f"scale-funcs K={km} p90 ratio: n/a")
PY
say "$SCEN: report in $OUT"
