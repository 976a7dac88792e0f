# shellcheck shell=bash
# Helpers for the kd-autoscaler integration tests (sourced after lib.sh): start kd-autoscaler on
# the rig inside the control-plane netns kd-cp (API Server 10.88.0.2:6443 reachable, stats
# WebSocket on 10.88.0.2:$AS_STATS_PORT, status channel on :$AS_STATUS_PORT) with the rig's admin
# kubeconfig, and stop it when the test exits. Binary: $KD_BUILD_DIR/bin/kd-autoscaler (plugins
# from $KD_BUILD_DIR/plugins). Log: $AS_LOG.
# Ports differ per test run (the rig is shared: another test may run its own kd-autoscaler).
# Both stay below the kernel's ephemeral range (32768+): a listener there can collide with the
# local port of an outgoing connection in kd-cp (apiserver -> etcd, controllers -> apiserver).
AS_STATS_PORT="${AS_STATS_PORT:-$((21000 + RANDOM % 5000))}"
AS_STATUS_PORT="${AS_STATUS_PORT:-$((AS_STATS_PORT + 5000))}"
AS_PID=""
AS_LOG=""

# dn_selector: label selector of the Nodes started by dn_start (for as_start --node-selector).
dn_selector() {
	local IFS=,
	echo "kubernetes.io/hostname in (${DN_NODES[*]})"
}

# EXIT trap of tests using these helpers: our kd-node, kd-autoscaler, the test's own
# $AS_CLEANUP_EXTRA command (cluster-scoped objects it made), then the namespace.
AS_CLEANUP_EXTRA=""
as_cleanup() {
	dn_stop
	as_stop
	[[ -z "$AS_CLEANUP_EXTRA" ]] || $AS_CLEANUP_EXTRA || true
	kc delete namespace "${IT_NS:-none}" --wait=false >/dev/null 2>&1 || true
}

as_bin() {
	local b
	for b in "${KD_BUILD_DIR:-}/bin/kd-autoscaler" "$REPO/build/bin/kd-autoscaler"; do
		[[ -x "$b" ]] && { echo "$b"; return 0; }
	done
	return 1
}

# as_start [EXTRA ARGS...]: starts kd-autoscaler, limited to $IT_NS when set (the rig is shared:
# another test's kd-autoscaler must not see our PodAutoscalers); waits (10 s) until it reconciles.
as_start() {
	local bin plugins
	bin="$(as_bin)" || die "kd-autoscaler not built (make BUILD=...)"
	plugins="$(cd "$(dirname "$bin")/../plugins" && pwd)"
	AS_LOG="$(mktemp /tmp/kd-autoscaler-it.XXXXXX.log)"
	ip netns exec kd-cp env KD_PLUGIN_DIR="$plugins" "$bin" --kubeconfig "$KD_KUBECONFIG" \
		--stats-port "$AS_STATS_PORT" --status-port "$AS_STATUS_PORT" \
		${IT_NS:+--namespace "$IT_NS" --source "kd-autoscaler:$IT_NS"} "$@" >"$AS_LOG" 2>&1 &
	AS_PID=$!
	trap as_cleanup EXIT
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

# dn_start PREFIX INDEX_BASE COUNT: a kd-node of our own in direct mode (runtime-sim, ready after
# 100 ms) serving COUNT nodes PREFIX-<INDEX_BASE+i>, reporting to our status channel; waits (60 s)
# until they are Ready and publish their instance channel. May be called several times; DN_PID is
# the last one's pid. Instance channel port: $DN_DIRECT_PORT when set, else ephemeral (0); admin
# server (/metrics) on $DN_ADMIN_PORT when set, else none. dn_stop stops them all and deletes their Nodes (so no other kd-autoscaler
# places instances on a dead channel). kd-node binary from $KD_BUILD_DIR/bin.
DN_PID=""
DN_PIDS=()
DN_NODES=()
dn_start() {
	local prefix="$1" base="$2" count="$3" bin i
	bin="$(dirname "$(as_bin)")/kd-node"
	[[ -x "$bin" ]] || die "kd-node not built"
	grep -q -- '--direct' <<<"$("$bin" --help)" || die "kd-node has no direct mode"
	DN_LOG="$(mktemp /tmp/kd-node-it.XXXXXX.log)"
	ip netns exec kd-cp env KD_PLUGIN_DIR="$(cd "$(dirname "$bin")/../plugins" && pwd)" "$bin" \
		--kubeconfig "$KD_KUBECONFIG" --nodes "$count" --node-prefix "$prefix" \
		--node-index-base "$base" --max-pods 500 --runtime runtime-sim \
		--runtime-config '{"ready-delay":"100ms"}' --direct --direct-port "${DN_DIRECT_PORT:-0}" \
		--status-addr "127.0.0.1:$AS_STATUS_PORT" ${DN_ADMIN_PORT:+--admin-port "$DN_ADMIN_PORT"} \
		>"$DN_LOG" 2>&1 &
	DN_PID=$!
	DN_PIDS+=("$DN_PID")
	local mine=()
	for ((i = 0; i < count; i++)); do mine+=("$prefix-$((base + i))"); done
	DN_NODES+=("${mine[@]}")
	trap as_cleanup EXIT
	dn_ready() {
		local n
		for n in "$@"; do
			[[ "$(kc get node "$n" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True &&
				-n "$(kc get node "$n" -o jsonpath='{.metadata.annotations.kubedirect\.dev/channel-addr}')" ]] || return 1
		done
	}
	wait_for "kd-node (direct) nodes ${mine[*]} Ready with an instance channel" 60 dn_ready "${mine[@]}"
	log "kd-node pid $DN_PID, log $DN_LOG"
}
dn_stop() {
	local p i
	# DN_PID too: a test may start its own kd-node and only set DN_PID/DN_NODES
	[[ -n "$DN_PID" && " ${DN_PIDS[*]} " != *" $DN_PID "* ]] && DN_PIDS+=("$DN_PID")
	for p in "${DN_PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
		for i in $(seq 1 50); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$p" 2>/dev/null || true
	done
	DN_PIDS=()
	DN_PID=""
	((${#DN_NODES[@]})) && kc delete node "${DN_NODES[@]}" --wait=false >/dev/null 2>&1 || true
	DN_NODES=()
}

# --- Knative Services, revisions and instances (all in $NS) -----------------------------------
# ksvc_apply NAME CLASS [ANNOTATION-LINES [POD-SPEC-LINES [CONTAINER-LINES]]]: create (or update)
# Knative Service NAME with autoscaling class CLASS, image dev.local/hello on port 8080.
# ANNOTATION-LINES are extra template annotations, POD-SPEC-LINES extra pod spec fields,
# CONTAINER-LINES extra container fields, as YAML lines indented for their place (8, 6, 8 spaces).
ksvc_apply() {
	kc -n "$NS" apply -f - >/dev/null <<EOT
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: $1
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/class: $2
${3:+$3
}    spec:
${4:+$4
}      containers:
      - image: dev.local/hello
        ports:
        - containerPort: 8080${5:+
$5}
EOT
}
# kd_ksvc NAME [MORE-ANNOTATION-LINES [POD-SPEC-LINES [CONTAINER-LINES]]]: a kd-class Service with
# initial-scale 0 (ksvc_apply).
kd_ksvc() {
	ksvc_apply "$1" kd.kubedirect.dev "        autoscaling.knative.dev/initial-scale: \"0\"${2:+
$2}" "${3:-}" "${4:-}"
}
# rev_of [SVC]: latest created revision of Service SVC (default kd); has_rev [SVC]: there is one.
rev_of() { kc -n "$NS" get ksvc "${1:-kd}" -o jsonpath='{.status.latestCreatedRevisionName}'; }
has_rev() { [[ -n "$(rev_of "${1:-kd}")" ]]; }
# rev_ready [REV]: Revision REV (default $REV) is Ready.
rev_ready() { [[ "$(kc -n "$NS" get revision "${1:-$REV}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
# kd_rev_at_zero: wait (120 s) for the revision of Service kd, set REV, wait (120 s) until it is
# Ready (at 0 instances).
kd_rev_at_zero() {
	wait_for "revision created" 120 has_rev
	REV="$(rev_of)"
	wait_for "Revision $REV Ready at 0" 120 rev_ready
}
# as_scale REV DESIRED: hand kd-autoscaler the JSON scale message REV -> DESIRED.
as_scale() { as_ws text "{\"type\":\"scale\",\"namespace\":\"$NS\",\"revision\":\"$1\",\"desired\":$2}"; }
# rev_pods KUBECTL-GET-ARGS...: the Pods of revision $REV (e.g. rev_pods -o json).
rev_pods() { kc -n "$NS" get pods -l "serving.knative.dev/revision=$REV" "$@"; }
# running_ready_is N: exactly N Pods of $REV are Running and Ready, not being deleted.
running_ready_is() {
	[[ "$(rev_pods -o json |
		jq '[.items[] | select(.metadata.deletionTimestamp == null and .status.phase == "Running" and (.status.conditions[]? | .type == "Ready" and .status == "True"))] | length')" == "$1" ]]
}
# actual_is N: Knative reports N for $REV (PA actualScale and Revision actualReplicas).
actual_is() {
	[[ "$(kc -n "$NS" get podautoscaler "$REV" -o jsonpath='{.status.actualScale}')" == "$1" &&
		"$(kc -n "$NS" get revision "$REV" -o jsonpath='{.status.actualReplicas}')" == "$1" ]]
}
# has_event OBJECT REASON: an Event with REASON about OBJECT exists in $NS.
has_event() { kc -n "$NS" get events --field-selector "involvedObject.name=$1,reason=$2" -o name | grep -q .; }
# kd_it_namespace PREFIX: it_namespace PREFIX, NS set to it and logged (call it directly).
kd_it_namespace() {
	it_namespace "$1"
	NS="$IT_NS"
	log "namespace $NS"
}
