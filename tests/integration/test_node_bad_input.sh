#!/usr/bin/env bash
# kd-node on bad input: an unreachable API Server at start is retried with backoff and a clear log
# line (the process stays up and exits 0 on SIGTERM); an invalid runtime configuration, an unknown
# runtime plugin exit 1 and a malformed --pod-cidr exits 2 (checked before anything starts), each
# with the loader's / parser's message;
# once the API Server is reachable the same binary registers its node.
. "$(dirname "$0")/lib.sh"

KD_BUILD_DIR="${KD_BUILD_DIR:-$REPO/build}"
BIN="$KD_BUILD_DIR/bin/kd-node"
[[ -x "$BIN" ]] || die "kd-node not built at $BIN"
export KD_PLUGIN_DIR="$KD_BUILD_DIR/plugins"
TMP="$(mktemp -d)"
pid=""
cleanup() {
	[[ -n "$pid" ]] && kill "$pid" 2>/dev/null
	rm -rf "$TMP"
	kc delete node it-bad-200 --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

# 1. API Server down: a kubeconfig whose server is a closed loopback port.
port=$((20000 + RANDOM % 20000))
sed "s#server: .*#server: https://127.0.0.1:$port#" "$KD_KUBECONFIG" >"$TMP/down.kubeconfig"
"$BIN" --kubeconfig "$TMP/down.kubeconfig" --node-prefix it-bad >"$TMP/down.log" 2>&1 &
pid=$!
retried() { [[ "$(grep -c 'waiting for API Server https://127.0.0.1:'"$port"': API Server unreachable' "$TMP/down.log")" -ge 2 ]]; }
wait_for "kd-node logs that the API Server is unreachable and retries" 20 retried
check "kd-node is still running while the API Server is unreachable" kill -0 "$pid"
check "the log line says when it retries" grep -q 'retrying in [0-9]* ms (attempt 2)' "$TMP/down.log"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=""
expect_eq "exit status after SIGTERM while waiting" 0 "$rc"

# 2. Invalid runtime configuration: non-zero exit, the loader's message.
rc=0
"$BIN" --kubeconfig "$KD_KUBECONFIG" --node-prefix it-bad --runtime-config '{"ready-delay":"soon"}' \
	>"$TMP/cfg.log" 2>&1 || rc=$?
expect_eq "invalid runtime config exits 1" 1 "$rc"
check "message names the plugin, the option and the problem" \
	grep -q 'runtime plugin: plugin .*kd-runtime-sim.so: config: option "ready-delay" for plugin runtime-sim: "soon" is not a duration' "$TMP/cfg.log"
rc=0
"$BIN" --kubeconfig "$KD_KUBECONFIG" --node-prefix it-bad --runtime-config '{"bogus":1}' >"$TMP/cfg2.log" 2>&1 || rc=$?
expect_eq "unknown runtime option exits 1" 1 "$rc"
check "message lists the known options" grep -q 'unknown option "bogus" for plugin runtime-sim (known: ' "$TMP/cfg2.log"
rc=0
"$BIN" --kubeconfig "$KD_KUBECONFIG" --node-prefix it-bad --runtime no-such-runtime >"$TMP/rt.log" 2>&1 || rc=$?
expect_eq "unknown runtime plugin exits 1" 1 "$rc"
check "message says where it looked" grep -q 'plugin "no-such-runtime" not found (tried ' "$TMP/rt.log"
rc=0
"$BIN" --kubeconfig "$KD_KUBECONFIG" --node-prefix it-bad --pod-cidr 10.244.0.1/16 >"$TMP/cidr.log" 2>&1 || rc=$?
expect_eq "malformed --pod-cidr is a usage error: exits 2" 2 "$rc"
check "message explains the CIDR" grep -q 'host bits set' "$TMP/cidr.log"
absent() { ! kc get node it-bad-0 >/dev/null 2>&1; }
check "nothing was registered by the failed runs" absent

# 3. The same binary with the real API Server registers its node (in a pod CIDR slot far from
# rig/kd-node-start's nodes).
"$BIN" --kubeconfig "$KD_KUBECONFIG" --node-prefix it-bad --node-index-base 200 --pod-cidr "$KD_POD_CIDR" \
	>"$TMP/ok.log" 2>&1 &
pid=$!
node_ready() { [[ "$(kc get node it-bad-200 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]; }
wait_for "node it-bad-200 registered and Ready" 30 node_ready
kill -TERM "$pid"
wait "$pid" || true
pid=""
kc delete node it-bad-200 --wait=false >/dev/null
