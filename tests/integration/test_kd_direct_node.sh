#!/usr/bin/env bash
# kd-node's direct mode on the rig (issue 6 item 5), the parts test_kd_chain_scale.sh does not
# cover:
#  - one kd-node process serves both paths on the same Nodes: a plain Deployment pinned to one of
#    its Nodes runs through the API (kubelet-compatible path) while direct instances of a kd-class
#    Service run beside it, and it is never restarted by the chain;
#  - exactly one sandbox start per instance: kd-node's direct counters show N starts for N
#    instances, also after a duplicated scale message;
#  - kd-node restart mid-burst (SIGKILL 300 ms after a 0 -> N decision, restarted at once on
#    another instance channel port): the instances it had written back are adopted from the API
#    (same uid and pod IP), the ephemeral ones are resent by kd-autoscaler's handshake on the
#    channel of the new address, and the revision converges to exactly N Running+Ready instance
#    Pods with unique names and IPs; Knative reports N;
#  - after scaling to 0 every instance Pod is gone and the plain pod still runs (same uid);
#  - another upstream (tests/harness/kd_inst_send) naming a template kd-node does not know is
#    refused with error{APPLY} "unknown template ..." and no Pod is made; a valid op whose delta
#    frame is written twice starts one sandbox and is written back, and its handshake
#    does not disturb kd-autoscaler's instances (held[] and drop are per source).
# Own kd-autoscaler (ports 18080/19471) and kd-node (2 Nodes kd-dnt-<n>, index base 120), under
# `flock /var/lock/kd-autoscaler-it.lock`. Isolation from other tests' kd-autoscalers and
# kd-nodes on the shared rig: our Nodes are labelled and tainted kd-it=<namespace>, the template
# selects and tolerates that.
. "$(dirname "$0")/lib.sh"
AS_STATS_PORT="${AS_STATS_PORT:-18080}"
AS_STATUS_PORT="${AS_STATUS_PORT:-19471}"
. "$IT_DIR/lib_kd_as.sh"
N="${KD_IT_N:-60}"

exec 9>/var/lock/kd-autoscaler-it.lock
flock -w 900 9 || die "another test holds /var/lock/kd-autoscaler-it.lock"

kd_it_namespace kd-it-dnode
WORK_DIR="$(mktemp -d /tmp/kd-it-dnode.XXXXXX)"
as_start --write-qps 0
# our kd-node: lib_kd_as.sh's dn_start with a known instance channel port $DN_PORT (kd_inst_send
# dials it; the restart below moves it to another port, which kd-autoscaler follows); the state
# dn_stop/as_cleanup use is DN_PID, DN_NODES
DN_PORT="${DN_PORT:-19470}"
my_dn_start() {
	local bin
	bin="$(dirname "$(as_bin)")/kd-node"
	DN_LOG="$(mktemp /tmp/kd-node-it.XXXXXX.log)"
	ip netns exec kd-cp env KD_PLUGIN_DIR="$(cd "$(dirname "$bin")/../plugins" && pwd)" "$bin" \
		--kubeconfig "$KD_KUBECONFIG" --nodes 2 --node-prefix kd-dnt --node-index-base 120 \
		--max-pods 500 --runtime runtime-sim --runtime-config '{"ready-delay":"100ms"}' \
		--direct --direct-port "$DN_PORT" --status-addr "127.0.0.1:$AS_STATUS_PORT" \
		--log-level debug >"$DN_LOG" 2>&1 9>&- &
	DN_PID=$!
	DN_NODES=(kd-dnt-120 kd-dnt-121)
	dn_up() {
		local n
		kill -0 "$DN_PID" 2>/dev/null || die "kd-node exited: $(tail -3 "$DN_LOG")"
		grep -q "registered (podCIDR" "$DN_LOG" || return 1
		for n in "${DN_NODES[@]}"; do
			[[ "$(kc get node "$n" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}/{.metadata.annotations.kubedirect\.dev/channel-addr}')" == "True/127.0.0.1:$DN_PORT" ]] || return 1
		done
	}
	wait_for "kd-node (direct) Nodes ${DN_NODES[*]} Ready, channel 127.0.0.1:$DN_PORT" 60 dn_up
	log "kd-node pid $DN_PID, log $DN_LOG"
}
my_dn_start
NODE_A="${DN_NODES[0]}"
NODE_B="${DN_NODES[1]}"
# isolation on the shared rig: only our kd-autoscaler places on our Nodes (taint + toleration) and
# it places only there (label + nodeSelector); the scheduler plugin honours both
isolate() {
	local n
	for n in "${DN_NODES[@]}"; do
		kc label node "$n" "kd-it=$NS" --overwrite >/dev/null
		kc taint node "$n" "kd-it=$NS:NoSchedule" --overwrite >/dev/null
	done
}
isolate

kd_ksvc kd '        autoscaling.knative.dev/min-scale: "0"' "      nodeSelector: {kd-it: $NS}
      tolerations: [{key: kd-it, operator: Equal, value: $NS, effect: NoSchedule}]"
kc -n "$NS" apply -f - >/dev/null <<EOT
apiVersion: apps/v1
kind: Deployment
metadata:
  name: plain
spec:
  replicas: 1
  selector: {matchLabels: {app: plain}}
  template:
    metadata: {labels: {app: plain}}
    spec:
      nodeSelector: {kubernetes.io/hostname: $NODE_B}
      tolerations: [{key: kd-it, operator: Equal, value: $NS, effect: NoSchedule}]
      containers: [{name: c, image: dev.local/hello}]
EOT
kd_rev_at_zero
plain() { kc -n "$NS" get pods -l app=plain -o jsonpath='{.items[0].metadata.uid}/{.items[0].status.phase}/{.items[0].spec.nodeName}'; }
wait_for "plain API pod Running on $NODE_B" 60 eval '[[ "$(plain)" == */Running/$NODE_B ]]'
PLAIN="$(plain)"

scale() { as_scale "$REV" "$1"; }
inst_pods() { rev_pods -o json; }
running_ready() {
	inst_pods | jq -r '[.items[] | select(.status.phase=="Running" and .metadata.deletionTimestamp==null and
		any(.status.conditions[]?; .type=="Ready" and .status=="True"))] | length'
}
# kd-node logs "direct: OPS ops: S started, ..." every 10 s when its counters changed
started() { grep -o 'direct: [0-9]* ops: [0-9]* started' "$DN_LOG" | tail -1 | awk '{print $4}'; }

# --- both paths in one process; one start per instance ------------------------------------------
check "scale message 10 accepted" scale 10
check "duplicate scale message accepted" scale 10
wait_for "10 instances Running+Ready" 60 eval '[[ "$(running_ready)" == 10 ]]'
wait_for "kd-node counted 10 direct starts" 25 eval '[[ "$(started)" == 10 ]]'
sleep 11 # one more stats period: a second start of any instance would show now
expect_eq "one sandbox start per instance" 10 "$(started)"
expect_eq "the plain API pod is untouched" "$PLAIN" "$(plain)"
expect_eq "instances on our Nodes, both of them in use" 2 \
	"$(inst_pods | jq -r '.items[].spec.nodeName' | sort -u | grep -c "^kd-dnt-")"

# --- kd-node killed mid-burst and restarted -----------------------------------------------------------
before="$(inst_pods | jq -r '.items[] | "\(.metadata.name) \(.metadata.uid) \(.status.podIP)"' | sort)"
check "scale message $N accepted" scale "$N"
sleep 0.3
kill -9 "$DN_PID"
log "kd-node killed 300 ms into the burst: $(inst_pods | jq '.items | length') instance Pods in the API"
OLD_LOG="$DN_LOG"
# a NEW channel address (not DN_PORT + 1: that is AS_STATUS_PORT): kd-autoscaler moves the Nodes
# and resends
DN_PORT="${DN_PORT2:-19473}"
my_dn_start
isolate
wait_for "$N instances Running+Ready after the restart" 120 eval '[[ "$(running_ready)" == "$N" ]]'
sleep 3 # anything extra (a duplicate or an orphan) would appear now
pods="$(inst_pods)"
expect_eq "exactly $N instance Pods" "$N" "$(jq '.items | length' <<<"$pods")"
expect_eq "unique pod IPs" "$N" "$(jq -r '.items[].status.podIP' <<<"$pods" | sort -u | grep -c .)"
after="$(jq -r '.items[] | "\(.metadata.name) \(.metadata.uid) \(.status.podIP)"' <<<"$pods" | sort)"
missing="$(comm -23 <(echo "$before") <(echo "$after"))"
[[ -z "$missing" ]] || die "instances written back before the crash were not adopted as they were: $missing"
log "ok: the 10 instances from before the crash kept name, uid and pod IP"
actual() { kc -n "$NS" get revision "$REV" -o jsonpath='{.status.actualReplicas}'; }
wait_for "Knative reports $N actual replicas" 60 eval '[[ "$(actual)" == "$N" ]]'
grep -q "direct: handshake with kd-autoscaler:$NS: holding 0 unpersisted" "$DN_LOG" ||
	die "restarted kd-node did not answer the handshake with an empty held[]"
log "ok: restarted kd-node held nothing; ephemeral instances came back through the reconcile"
expect_eq "the plain API pod survived the kd-node restart (same uid)" "$PLAIN" "$(plain)"

# --- to 0 -----------------------------------------------------------------------------------------
check "scale message 0 accepted" scale 0
wait_for "every instance Pod deleted" 120 eval '[[ "$(inst_pods | jq ".items | length")" == 0 ]]'
expect_eq "the plain API pod still runs" "$PLAIN" "$(plain)"
# --- ops from another upstream (tests/harness/kd_inst_send) ---------------------------------------
SEND="${KD_BUILD_DIR:-$REPO/build}/tests/harness/kd_inst_send"
[[ -x "$SEND" ]] || die "$SEND not built (tests/integration/run.sh builds harness programs)"
send() { ip netns exec kd-cp "$SEND" --port "$DN_PORT" --source "kd-inst-send:$NS" --ns "$NS" --node "$NODE_A" --owner nobody/0000 "$@"; }
out="$(send --name ghost-1 --tmpl-name no-such-deployment)" || die "kd_inst_send: $out"
[[ "$out" == *"REFUSED 6 "*"unknown template Deployment $NS/no-such-deployment"* ]] ||
	die "an op naming an unknown template was not refused with a reason: $out"
log "ok: unknown template refused: ${out#*REFUSED }"
sleep 2
kc -n "$NS" get pod ghost-1 >/dev/null 2>&1 && die "a Pod was created for the refused op"
log "ok: no Pod for the refused op"
kc get --raw "/apis/apps/v1/namespaces/$NS/deployments/$REV-deployment" >"$WORK_DIR/dep.json"
out="$(send --name dup-1 --deployment "$WORK_DIR/dep.json" --dup)" || die "kd_inst_send: $out"
[[ "$out" == ACKED ]] || die "valid op sent twice (duplicated frames): $out"
# (its owner PodAutoscaler "nobody" does not exist, so the garbage collector deletes the Pod
# within milliseconds; kd-node's log tells that the written-back Pod was seen as the same sandbox)
wait_for "the instance sent twice is written back" 30 \
	grep -q "pod $NS/dup-1: direct instance persisted" "$DN_LOG"
expect_eq "its sandbox started once" 1 "$(grep -c "direct: $NS/dup-1 started" "$DN_LOG")"
expect_eq "and the runtime was asked once" 1 "$(grep -c "pod $NS/dup-1: sandbox requested" "$DN_LOG")"
kc -n "$NS" delete pod dup-1 --wait=false >/dev/null 2>&1 || true
wait_for "it is deleted" 60 eval '! kc -n "$NS" get pod dup-1 >/dev/null 2>&1'

for f in "$OLD_LOG" "$DN_LOG"; do
	if grep -v ghost-1 "$f" | grep -q "direct: refused"; then die "kd-node refused an op: $(grep 'direct: refused' "$f" | head -3)"; fi
done
log "ok: kd-node refused no op but the unknown-template one"
kill -0 "$DN_PID" 2>/dev/null || die "kd-node died"
kill -0 "$AS_PID" 2>/dev/null || die "kd-autoscaler died"
dn_stop
log "PASS"
