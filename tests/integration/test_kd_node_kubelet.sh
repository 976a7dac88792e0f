#!/usr/bin/env bash
# kd-node --attach-node with the runtime-kubelet plugin on the rig (issue 13 item 3). A vanilla
# kd-node (kubelet-compatible mode, runtime-sim, no direct mode) registers Node kd-kub-250 and
# plays that Node's real kubelet; a second kd-node attaches to it (--attach-node kd-kub-250
# --runtime runtime-kubelet --direct) and kd-autoscaler scales a kd revision through the chain:
#  - option refusals: own-Node options or no --direct with --attach-node, a runtime that runs
#    sandboxes itself with it, runtime-kubelet without it (exit 2); a Node that does not exist
#    (exit 1, named);
#  - the attached kd-node publishes its instance channel on the Node (merge patch) and creates,
#    heartbeats and deletes no Node;
#  - 0 -> N: the N Pods are created by runtime-kubelet already bound (their managedFields:
#    runtime-kubelet's one write, at the creation time, owns spec.nodeName, no binding; no
#    Scheduled event, no ReplicaSet owner, no pod-template-hash), the "kubelet" runs them (IPs from its podCIDR) and
#    makes them Ready, the attached kd-node reports them ready on the status channel (its
#    /metrics: N ready instances, status ops sent; Knative reports N) and patches no status;
#  - SIGKILL of the attached kd-node and a restart on a new port (the Node named by
#    $KD_NODE_NAME this time): the annotation is restored,
#    the N Pods are adopted (same uids, none created), reported ready again;
#  - N -> 0 deletes them; SIGTERM removes the annotation, the Node stays (Ready).
# Own kd-autoscaler (random ports, lib_kd_as.sh) limited to our namespace and Node; our Node is
# labelled and tainted kd-it=<namespace> and the template selects and tolerates that, so no other
# test's chain places on it and ours places nowhere else.
. "$(dirname "$0")/lib.sh"
. "$IT_DIR/lib_kd_as.sh"
N="${KD_IT_N:-20}"
NODE=kd-kub-250
ADMIN_PORT="${KD_IT_ADMIN_PORT:-$((AS_STATUS_PORT + 1))}"

kd_it_namespace kd-it-kubelet
BIN="$(dirname "$(as_bin)")/kd-node"
PLUGINS="$(cd "$(dirname "$BIN")/../plugins" && pwd)"
[[ -x "$BIN" && -e "$PLUGINS/kd-runtime-kubelet.so" ]] || die "kd-node or kd-runtime-kubelet.so not built"
# kd-node in kd-cp, run directly (not through a function: $! must be kd-node itself)
KDN=(ip netns exec kd-cp env KD_PLUGIN_DIR="$PLUGINS" "$BIN" --kubeconfig "$KD_KUBECONFIG")
trap as_cleanup EXIT
exec 3>&2

# --- refusals ---------------------------------------------------------------------------------
# refused RC PATTERN ARGS...: kd-node ARGS exits RC (bounded: 30 s) with PATTERN in its output
refused() {
	local want="$1" pat="$2" out rc=0
	shift 2
	out="$(timeout 30 "${KDN[@]}" "$@" 2>&1)" || rc=$?
	[[ "$rc" == "$want" && "$out" == *"$pat"* ]] || die "kd-node $*: exit $rc (want $want), output: $out"
	log "ok: kd-node $* -> exit $rc: ${out##*kd-node: }"
}
refused 2 "--nodes describes Nodes kd-node registers itself" --attach-node "$NODE" --direct --nodes 2
refused 2 "--pod-cidr describes Nodes" --attach-node "$NODE" --direct --pod-cidr 10.9.0.0/16
refused 2 "add --direct" --attach-node "$NODE" --runtime runtime-kubelet
refused 2 "runtime plugin runtime-sim runs sandboxes itself" --attach-node "$NODE" --direct --direct-port 0
refused 2 "--runtime runtime-kubelet hands Pods to a Node's real kubelet: it needs --attach-node" \
	--node-prefix kd-it-never --runtime runtime-kubelet
GHOST="kd-kub-nonexistent-$RANDOM"
refused 1 "there is no Node $GHOST" --attach-node "$GHOST" --runtime runtime-kubelet --direct --direct-port 0
check "no Node $GHOST was created" eval '! kc get node "$GHOST" >/dev/null 2>&1'

# --- the Node and its "kubelet" ---------------------------------------------------------------
KUB_LOG="$(mktemp /tmp/kd-node-kubelet-it.XXXXXX.log)"
"${KDN[@]}" --nodes 1 --node-prefix kd-kub --node-index-base 250 --max-pods 100 --runtime runtime-sim \
	--runtime-config '{"ready-delay":"100ms"}' >"$KUB_LOG" 2>&1 &
KUB_PID=$!
DN_PIDS+=("$KUB_PID")
# shellcheck disable=SC2034 # dn_stop (lib_kd_as.sh) deletes them
DN_NODES=("$NODE")
node_ready() { [[ "$(kc get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
wait_for "Node $NODE registered and Ready (its kubelet: kd-node pid $KUB_PID)" 60 node_ready
kc label node "$NODE" "kd-it=$NS" --overwrite >/dev/null
kc taint node "$NODE" "kd-it=$NS:NoSchedule" --overwrite >/dev/null
annot() { kc get node "$NODE" -o jsonpath='{.metadata.annotations.kubedirect\.dev/channel-addr}'; }
expect_eq "no instance channel on the Node before the attach" "" "$(annot)"
NODE_UID="$(kc get node "$NODE" -o jsonpath='{.metadata.uid}')"
CIDR="$(kc get node "$NODE" -o jsonpath='{.spec.podCIDR}')"

as_start --node-selector "kubernetes.io/hostname in ($NODE)"

# --- the attached kd-node ---------------------------------------------------------------------
ATT_PID=""
# att_start [env]: the attached kd-node, named by --attach-node (or, with "env", by
# $KD_NODE_NAME as a DaemonSet sets it)
att_start() {
	local pre=() how=(--attach-node "$NODE")
	[[ "${1:-}" == env ]] && pre=(env "KD_NODE_NAME=$NODE") how=()
	ATT_LOG="$(mktemp /tmp/kd-node-attach-it.XXXXXX.log)"
	"${pre[@]}" "${KDN[@]}" "${how[@]}" --runtime runtime-kubelet --direct --direct-port 0 \
		--status-addr "127.0.0.1:$AS_STATUS_PORT" --admin-bind 127.0.0.1 --admin-port "$ADMIN_PORT" \
		--log-level debug >"$ATT_LOG" 2>&1 &
	ATT_PID=$!
	DN_PIDS+=("$ATT_PID")
	attached() {
		# (fd 3: wait_for silences the check's own output)
		kill -0 "$ATT_PID" 2>/dev/null || die "attached kd-node exited: $(tail -3 "$ATT_LOG")" 2>&3
		local addr
		addr="$(grep -o 'instance channel [0-9.:]* published' "$ATT_LOG" | tail -1 | awk '{print $3}')"
		[[ -n "$addr" && "$(annot)" == "$addr" ]]
	}
	wait_for "kd-node --attach-node $NODE published its instance channel on the Node" 60 attached
	log "attached kd-node pid $ATT_PID, log $ATT_LOG, channel $(annot)"
}
metric() { # NAME{LABELS}: its value on the attached kd-node's /metrics (empty if none)
	ip netns exec kd-cp curl -sf --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" |
		awk -v m="$1" '$1 == m { print $2 }'
}
att_start
expect_eq "the Node is the same object (not re-created)" "$NODE_UID" "$(kc get node "$NODE" -o jsonpath='{.metadata.uid}')"
expect_eq "the attached kd-node made no Lease (the kubelet's is the only one)" 1 \
	"$(kc -n kube-node-lease get lease "$NODE" -o name | grep -c .)"

# --- 0 -> N through the chain -------------------------------------------------------------------
kd_ksvc kd '        autoscaling.knative.dev/min-scale: "0"' "      nodeSelector: {kd-it: $NS}
      tolerations: [{key: kd-it, operator: Equal, value: $NS, effect: NoSchedule}]"
kd_rev_at_zero
check "scale message $REV -> $N" as_scale "$REV" "$N"
wait_for "$N instance Pods Running and Ready" 120 running_ready_is "$N"
pods="$(rev_pods -o json --show-managed-fields)"
expect_eq "instance Pods" "$N" "$(jq '.items | length' <<<"$pods")"
expect_eq "all bound to $NODE" "$N" "$(jq --arg n "$NODE" '[.items[] | select(.spec.nodeName == $n)] | length' <<<"$pods")"
# the create is the only write of runtime-kubelet (an "Update" of the main resource at the
# Pod's creation time, which owns spec.nodeName); a Binding would be the scheduler's
expect_eq "all created by runtime-kubelet with spec.nodeName set at creation (managedFields)" "$N" \
	"$(jq '[.items[] | .metadata.creationTimestamp as $t | select(any(.metadata.managedFields[]; .manager == "kd-runtime-kubelet" and .subresource == null and .time == $t and (.fieldsV1["f:spec"]["f:nodeName"] != null)) and all(.metadata.managedFields[]; .subresource != "binding"))] | length' <<<"$pods")"
PAUID="$(kc -n "$NS" get podautoscaler "$REV" -o jsonpath='{.metadata.uid}')"
expect_eq "owned by the PodAutoscaler only (no ReplicaSet owner)" "$N" \
	"$(jq --arg u "$PAUID" '[.items[] | select(([.metadata.ownerReferences[].kind] == ["PodAutoscaler"]) and .metadata.ownerReferences[0].uid == $u)] | length' <<<"$pods")"
expect_eq "labelled kubedirect.dev/managed, no pod-template-hash" "$N" \
	"$(jq '[.items[] | select(.metadata.labels["kubedirect.dev/managed"] == "true" and .metadata.labels["pod-template-hash"] == null)] | length' <<<"$pods")"
expect_eq "none bound by the scheduler (no Scheduled event)" 0 \
	"$(kc -n "$NS" get events --field-selector reason=Scheduled -o name | grep -c . || true)"
prefix="${CIDR%.*}."
expect_eq "unique pod IPs from the kubelet's podCIDR $CIDR" "$N" \
	"$(jq -r '.items[].status.podIP' <<<"$pods" | grep -F "$prefix" | sort -u | grep -c .)"
ready_reported() { [[ "$(metric 'kd_node_pods{state="ready"}')" == "$1" && "$(metric kd_node_instances)" == "$1" ]]; }
wait_for "the attached kd-node holds $N ready instances (runtime-kubelet READY)" 30 ready_reported "$N"
sent="$(metric kd_node_status_ops_sent_total)"
((sent >= N)) || die "status ops sent upstream: $sent < $N"
log "ok: $sent status ops sent upstream on the status channel"
expect_eq "status channel connected" 1 "$(metric 'kd_node_status_channels{state="connected"}')"
wait_for "Knative reports $N (PA actualScale, Revision actualReplicas)" 60 actual_is "$N"
expect_eq "the attached kd-node patched no Pod status (the kubelet's)" 0 "$(metric kd_node_pods_ready_patched_total)"
expect_eq "one sandbox start per instance" "$N" "$(metric kd_node_direct_started_total)"
before="$(jq -r '.items[] | "\(.metadata.name) \(.metadata.uid) \(.status.podIP)"' <<<"$pods" | sort)"

# --- SIGKILL and restart: adoption ----------------------------------------------------------------
old_addr="$(annot)"
kill -9 "$ATT_PID"
wait "$ATT_PID" 2>/dev/null || true
expect_eq "a killed kd-node leaves its annotation (no clean stop)" "$old_addr" "$(annot)"
att_start env
[[ "$(annot)" != "$old_addr" ]] || log "note: the new ephemeral port equals the old one"
wait_for "restarted: $N ready instances again" 60 ready_reported "$N"
after="$(rev_pods -o json | jq -r '.items[] | "\(.metadata.name) \(.metadata.uid) \(.status.podIP)"' | sort)"
[[ "$before" == "$after" ]] || die "the Pods changed across the restart: $(diff <(echo "$before") <(echo "$after") | head -5)"
log "ok: the same $N Pods (name, uid, IP): adopted, not re-created"
expect_eq "runtime-kubelet adopted each of them" "$N" "$(grep -c 'runtime-kubelet: .*: adopted its Pod' "$ATT_LOG" || true)"
expect_eq "and created none" 0 "$(grep -c 'runtime-kubelet: .*: created on' "$ATT_LOG" || true)"
check "Knative still reports $N" actual_is "$N"

# --- N -> 0 -------------------------------------------------------------------------------------------
check "scale message $REV -> 0" as_scale "$REV" 0
none() { [[ -z "$(rev_pods -o name)" ]]; }
wait_for "every instance Pod deleted" 120 none
wait_for "the attached kd-node holds no instance" 30 eval '[[ "$(metric kd_node_instances)" == 0 ]]'
wait_for "PA actualScale 0" 60 actual_is 0

# --- clean shutdown ---------------------------------------------------------------------------------
kill -TERM "$ATT_PID"
rc=0
for _ in $(seq 1 100); do kill -0 "$ATT_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$ATT_PID" 2>/dev/null && die "attached kd-node did not stop within 10 s of SIGTERM"
wait "$ATT_PID" || rc=$?
expect_eq "attached kd-node exit status after SIGTERM" 0 "$rc"
expect_eq "the annotation is removed at shutdown" "" "$(annot)"
grep -q "detached, annotation kubedirect.dev/channel-addr removed" "$ATT_LOG" || die "no detach in the log"
expect_eq "the Node stays, the same object" "$NODE_UID" "$(kc get node "$NODE" -o jsonpath='{.metadata.uid}')"
check "and Ready (its kubelet runs on)" node_ready
kill -0 "$KUB_PID" 2>/dev/null || die "the kubelet kd-node died"
kill -0 "$AS_PID" 2>/dev/null || die "kd-autoscaler died"
log "PASS"
