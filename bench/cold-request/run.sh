#!/usr/bin/env bash
# bench/cold-request/run.sh: the vanilla arm's cold-request latency (`make bench-cold-request`).
# A Knative Service (KPA class) at zero gets its first request through Knative's own activator,
# served by functions/hello in a real sandbox (plugins/runtime-process, Knative's queue-proxy) on
# a kd-node in kubelet mode. Two loads: SEQ sequential cold requests (one fresh Service each) and
# 10 concurrent cold requests to one more. This is tests/integration/test_cold_request.sh run for
# its samples (it fails on any non-200 answer or a wrong body). Each setting of the control plane
# (rig/README.md "Client limits": tuned, default) gets REPEATS runs; the rig is restarted with
# that setting first (the limits are process flags) and is left up (tuned) if it was up, down if
# it was not. Prints a table (p50/p99/max in ms per setting and load, over all repeats, and the
# spread of the per-repeat p50s) and the lines scripts read:
#   vanilla cold p50 tuned: <ms>      vanilla cold p99 tuned: <ms>
#   vanilla cold p50 default: <ms>    vanilla cold p99 default: <ms>
# (over the sequential and concurrent samples together). Raw samples: $OUT/samples.tsv (setting
# repeat load http_code seconds). Env: SEQ (50; 1-100), REPEATS (3; 1-10), MODES (tuned,default),
# BUILD, KD_BENCH_OUT (default /var/lib/kubedirect/bench/cold-request-<ts>).
# `run.sh --summary DIR` prints the table and lines again from DIR/samples.tsv (no rig needed).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
SUMMARY_ONLY=0
case "${1:-}" in
-h | --help)
	sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
--summary)
	[[ -f "${2:-}/samples.tsv" ]] || { echo "cold-request: --summary DIR: no DIR/samples.tsv" >&2; exit 2; }
	SUMMARY_ONLY=1 KD_BENCH_OUT="$2"
	;;
"") ;;
*)
	echo "cold-request: unknown argument '$1' (see --help)" >&2
	exit 2
	;;
esac
SEQ="${SEQ:-50}"
REPEATS="${REPEATS:-3}"
MODES="${MODES:-tuned,default}"
[[ "$SEQ" =~ ^[0-9]+$ ]] && ((SEQ >= 1 && SEQ <= 100)) || { echo "cold-request: SEQ must be 1-100 (got '$SEQ')" >&2; exit 2; }
[[ "$REPEATS" =~ ^[0-9]+$ ]] && ((REPEATS >= 1 && REPEATS <= 10)) || { echo "cold-request: REPEATS must be 1-10 (got '$REPEATS')" >&2; exit 2; }
IFS=, read -r -a MLIST <<<"$MODES"
for m in "${MLIST[@]}"; do
	[[ $m == tuned || $m == default ]] || { echo "cold-request: MODES is a list of tuned, default (got '$MODES')" >&2; exit 2; }
done
[[ $EUID -eq 0 ]] || { echo "cold-request: must run as root (the rig uses network namespaces)" >&2; exit 1; }
B="${BUILD:-build}"
OUT="${KD_BENCH_OUT:-/var/lib/kubedirect/bench/cold-request-$(date -u +%Y%m%dT%H%M%SZ)}"
if ((SUMMARY_ONLY)); then
	MLIST=()
	for m in tuned default; do grep -q "^$m	" "$OUT/samples.tsv" && MLIST+=("$m"); done
	REPEATS="$(awk -F'\t' 'NR > 1 && $2 > r {r = $2} END {print r + 0}' "$OUT/samples.tsv")"
else
mkdir -p "$OUT"
make -s -C "$REPO" -j"$(nproc)" BUILD="$B" all >/dev/null

was_up=0
"$REPO/rig/status" --quiet && was_up=1
restore() {
	"$REPO/rig/down" --quiet >/dev/null 2>&1 || true
	if ((was_up)); then
		KD_RIG_CLIENT_LIMITS=tuned "$REPO/rig/up" >/dev/null || echo "cold-request: could not restore the rig" >&2
	fi
}
trap restore EXIT
trap 'exit 130' INT TERM

printf 'setting\trepeat\tload\thttp_code\tseconds\n' >"$OUT/samples.tsv"
for mode in "${MLIST[@]}"; do
	echo "== cold-request: control plane with $mode client limits"
	"$REPO/rig/down" --quiet >/dev/null 2>&1 || true
	KD_RIG_CLIENT_LIMITS=$mode "$REPO/rig/up" >"$OUT/rig-up-$mode.log" 2>&1 || {
		echo "cold-request: rig/up ($mode) failed; see $OUT/rig-up-$mode.log" >&2
		tail -5 "$OUT/rig-up-$mode.log" >&2
		exit 1
	}
	for rep in $(seq 1 "$REPEATS"); do
		s="$OUT/samples-$mode-$rep"
		: >"$s"
		if ! KD_IT_COLD_N="$SEQ" KD_IT_COLD_SAMPLES="$s" KD_IT_FILTER='^test_cold_request\.sh$' BUILD="$B" \
			"$REPO/tests/integration/run.sh" >"$OUT/run-$mode-$rep.log" 2>&1; then
			echo "cold-request: run $rep ($mode) failed; see $OUT/run-$mode-$rep.log" >&2
			grep -E 'FAIL|die|HTTP' "$OUT/run-$mode-$rep.log" | tail -5 >&2
			exit 1
		fi
		awk -v m="$mode" -v r="$rep" '{print m "\t" r "\t" $1 "\t" $2 "\t" $3}' "$s" >>"$OUT/samples.tsv"
		echo "  run $rep: $(grep -c '^sequential' "$s") sequential, $(grep -c '^concurrent' "$s") concurrent samples"
	done
done

fi

# nearest-rank percentiles in ms over one setting's samples of one load ("all": both loads)
pct() { # SETTING LOAD P [REPEAT]
	awk -F'\t' -v m="$1" -v l="$2" -v p="$3" -v r="${4:-}" \
		'NR > 1 && $1 == m && (l == "all" || $3 == l) && (r == "" || $2 == r) {print $5 * 1000}' \
		"$OUT/samples.tsv" | sort -n | awk -v p="$3" '{a[NR] = $1} END {
			if (NR == 0) { print "n/a"; exit }
			i = int(p / 100 * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR
			printf "%.0f", a[i] }'
}
count() { awk -F'\t' -v m="$1" -v l="$2" 'NR > 1 && $1 == m && (l == "all" || $3 == l)' "$OUT/samples.tsv" | wc -l; }
spread() { # SETTING LOAD: min-max of the per-repeat p50s
	local r v lo="" hi=""
	for r in $(seq 1 "$REPEATS"); do
		v="$(pct "$1" "$2" 50 "$r")"
		[[ $v == n/a ]] && continue
		[[ -z $lo ]] || ((v < lo)) && lo=$v
		[[ -z $hi ]] || ((v > hi)) && hi=$v
	done
	echo "${lo:-n/a}-${hi:-n/a}"
}
echo
printf '%-8s %-11s %5s %8s %8s %8s  %s\n' setting load n p50_ms p99_ms max_ms "p50 spread over $REPEATS repeats (ms)"
for mode in "${MLIST[@]}"; do
	for load in sequential concurrent all; do
		printf '%-8s %-11s %5s %8s %8s %8s  %s\n' "$mode" "$load" "$(count "$mode" $load)" \
			"$(pct "$mode" $load 50)" "$(pct "$mode" $load 99)" "$(pct "$mode" $load 100)" "$(spread "$mode" $load)"
	done
done
echo
echo "cold-request: report in $OUT"
for mode in "${MLIST[@]}"; do
	echo "vanilla cold p50 $mode: $(pct "$mode" all 50)"
	echo "vanilla cold p99 $mode: $(pct "$mode" all 99)"
done
