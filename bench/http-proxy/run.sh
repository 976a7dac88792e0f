#!/usr/bin/env bash
# bench/http-proxy/run.sh (`make bench-http-proxy`): what kd-activator's HTTP hop costs, on
# loopback, without the rig. functions/hello is the upstream; wrk (1 thread, C connections,
# D seconds, bounded) runs against it directly and through bench/http-proxy (lib/http), REPEATS
# times alternated. Prints per run p50/p99 and req/s, then `proxy p50 overhead: <x>` (proxy p50 /
# direct p50) and `proxy rps ratio: <x>` (proxy / direct), medians over the repeats.
# Env: BUILD (build), C (8), D (5), REPEATS (3).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
B="${BUILD:-build}"
[[ $B == /* ]] || B="$REPO/$B"
C="${C:-8}" D="${D:-5}" REPEATS="${REPEATS:-3}"
for v in C D REPEATS; do [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "http-proxy: $v must be a positive integer" >&2; exit 2; }; done
((D <= 60 && C <= 256 && REPEATS <= 10)) || { echo "http-proxy: D <= 60, C <= 256, REPEATS <= 10" >&2; exit 2; }
command -v wrk >/dev/null || { echo "http-proxy: wrk missing (make deps)" >&2; exit 1; }
for f in "$B/functions/hello" "$B/bench/http-proxy/http-proxy"; do [[ -x $f ]] || { echo "http-proxy: $f not built" >&2; exit 1; }; done
UP=$((18000 + RANDOM % 1000)) PX=$((UP + 1000))
PORT=$UP "$B/functions/hello" >/dev/null 2>&1 &
hello=$!
"$B/bench/http-proxy/http-proxy" --port "$PX" --upstream "127.0.0.1:$UP" --duration "$((REPEATS * D * 2 + 60))s" &
proxy=$!
trap 'kill $hello $proxy 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$PX/" && break; sleep 0.1; done
run() { # NAME PORT
	wrk -t1 -c"$C" -d"${D}s" --timeout 5s --latency "http://127.0.0.1:$2/" | python3 -c '
import re, sys
t = sys.stdin.read()
def ms(s):
    m = re.search(r"^\s*" + s + r"%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)] if m else float("nan")
rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
print(sys.argv[1], ms("50"), ms("99"), float(rps.group(1)) if rps else float("nan"))' "$1"
}
RES="$(mktemp)"
for rep in $(seq 1 "$REPEATS"); do
	if ((rep % 2)); then order=(direct proxy); else order=(proxy direct); fi
	for a in "${order[@]}"; do
		if [[ $a == direct ]]; then run direct "$UP"; else run proxy "$PX"; fi >>"$RES"
	done
done
python3 - "$RES" "$C" "$D" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
print(f"lib/http proxy hop on loopback (wrk -t1 -c{sys.argv[2]} -d{sys.argv[3]}s, functions/hello upstream)")
for arm in ("direct", "proxy"):
    r = [x for x in rows if x[0] == arm]
    for x in r:
        print(f"  {arm:<7} p50 {float(x[1]):7.3f} ms  p99 {float(x[2]):7.3f} ms  {float(x[3]):9.0f} req/s")
med = lambda arm, i: statistics.median(float(x[i]) for x in rows if x[0] == arm)
print(f"proxy p50 overhead: {med('proxy', 1) / med('direct', 1):.2f}")
print(f"proxy rps ratio: {med('proxy', 3) / med('direct', 3):.2f}")
PY
rm -f "$RES"
