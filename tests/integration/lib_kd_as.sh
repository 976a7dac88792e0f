# shellcheck shell=bash
# Helpers for the kd-autoscaler integration tests (sourced after lib.sh): start kd-autoscaler on
# the rig inside the control-plane netns kd-cp (API Server 10.88.0.2:6443 reachable, stats
# WebSocket on 10.88.0.2:$AS_STATS_PORT, status channel on :$AS_STATUS_PORT) with the rig's admin
# kubeconfig, and stop it when the test exits. Binary: $KD_BUILD_DIR/bin/kd-autoscaler (plugins
# from $KD_BUILD_DIR/plugins). Log: $AS_LOG.
AS_STATS_PORT="${AS_STATS_PORT:-8080}"
AS_STATUS_PORT="${AS_STATUS_PORT:-9471}"
AS_PID=""
AS_LOG=""

as_bin() {
	local b
	for b in "${KD_BUILD_DIR:-}/bin/kd-autoscaler" "$REPO/build/bin/kd-autoscaler"; do
		[[ -x "$b" ]] && { echo "$b"; return 0; }
	done
	return 1
}

# as_start [EXTRA ARGS...]: starts kd-autoscaler; waits (10 s) until it reconciles.
as_start() {
	local bin plugins
	bin="$(as_bin)" || die "kd-autoscaler not built (make BUILD=...)"
	plugins="$(cd "$(dirname "$bin")/../plugins" && pwd)"
	AS_LOG="$(mktemp /tmp/kd-autoscaler-it.XXXXXX.log)"
	ip netns exec kd-cp env KD_PLUGIN_DIR="$plugins" "$bin" --kubeconfig "$KD_KUBECONFIG" \
		--stats-port "$AS_STATS_PORT" --status-port "$AS_STATUS_PORT" "$@" >"$AS_LOG" 2>&1 &
	AS_PID=$!
	trap 'as_stop; kc delete namespace "${IT_NS:-none}" --wait=false >/dev/null 2>&1 || true' EXIT
	local t0=$SECONDS
	until grep -q "reconciling PodAutoscalers" "$AS_LOG"; do
		kill -0 "$AS_PID" 2>/dev/null || { cat "$AS_LOG" >&2; die "kd-autoscaler exited"; }
		((SECONDS - t0 < 10)) || { cat "$AS_LOG" >&2; die "kd-autoscaler did not start"; }
		sleep 0.2
	done
	log "kd-autoscaler pid $AS_PID, log $AS_LOG"
}

as_stop() {
	[[ -n "$AS_PID" ]] || return 0
	kill "$AS_PID" 2>/dev/null || true
	local i
	for i in $(seq 1 50); do
		kill -0 "$AS_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$AS_PID" 2>/dev/null || true
	AS_PID=""
}

# as_ws ARGS...: tests/integration/kd_ws.py against the stats WebSocket.
as_ws() {
	ip netns exec kd-cp python3 "$IT_DIR/kd_ws.py" 127.0.0.1 "$AS_STATS_PORT" "$@"
}

# jsonpath helpers
pa_cond() { kc -n "$1" get podautoscaler "$2" -o jsonpath="{.status.conditions[?(@.type==\"$3\")].$4}"; }
