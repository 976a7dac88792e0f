#!/usr/bin/env bash
# kd-node in kubelet-compatible mode serves the vanilla path: its Nodes are registered and stay
# Ready through Leases; a Deployment scaled 0 -> 20 gets 20 Running and Ready pods on those nodes,
# each with a unique pod IP inside its node's podCIDR, hostIP = the node's InternalIP and a ready
# containerStatus for every container; scaling back to 0 deletes every pod (graceful termination:
# kd-node stops the sandbox and deletes the pod with a uid precondition).
. "$(dirname "$0")/lib.sh"

"$REPO/rig/kd-node-start"

nodes_json="$(kc get nodes -l kubedirect.dev/node-agent=kd-node -o json)"
n_nodes="$(jq '.items | length' <<<"$nodes_json")"
((n_nodes >= 1)) || die "no kd-node nodes registered"
log "kd-node serves $n_nodes nodes"
expect_eq "every kd-node node is Ready (KubeletReady)" "$n_nodes" \
	"$(jq '[.items[] | select(.status.conditions[] | .type == "Ready" and .status == "True" and .reason == "KubeletReady")] | length' <<<"$nodes_json")"
expect_eq "every kd-node node has a podCIDR" "$n_nodes" \
	"$(jq '[.items[] | select(.spec.podCIDR != null)] | length' <<<"$nodes_json")"
expect_eq "kubeletVersion matches the cluster" "$KD_K8S_VERSION" \
	"$(jq -r '.items[0].status.nodeInfo.kubeletVersion' <<<"$nodes_json")"
# Leases: held by the node, 40 s, renewed within the last 40 s (i.e. node-lifecycle sees it alive)
now="$(date +%s)"
for n in $(jq -r '.items[].metadata.name' <<<"$nodes_json"); do
	lease="$(kc -n kube-node-lease get lease "$n" -o json)"
	expect_eq "lease $n holder" "$n" "$(jq -r .spec.holderIdentity <<<"$lease")"
	expect_eq "lease $n duration" 40 "$(jq -r .spec.leaseDurationSeconds <<<"$lease")"
	renew="$(date -d "$(jq -r .spec.renewTime <<<"$lease")" +%s)"
	((now - renew <= 40)) || die "lease $n renewed $((now - renew))s ago"
done
# The TaintNodesByCondition admission plugin puts node.kubernetes.io/not-ready:NoSchedule on every
# new Node (kubelets too); node-lifecycle removes it once it sees Ready, and must never add one.
untainted() {
	[[ "$(kc get nodes -l kubedirect.dev/node-agent=kd-node -o json |
		jq '[.items[] | select((.spec.taints // []) | map(select(.key | startswith("node.kubernetes.io/"))) | length == 0)] | length')" == "$n_nodes" ]]
}
wait_for "no node-lifecycle taints on kd-node nodes" 60 untainted

it_namespace kd-it-node >/dev/null
NS="$IT_NS"
log "namespace $NS"
kc -n "$NS" create deployment web --image=dev.local/hello --replicas=0 >/dev/null
kc -n "$NS" patch deployment web --type=merge \
	-p '{"spec":{"template":{"spec":{"nodeSelector":{"kubedirect.dev/node-agent":"kd-node"},"terminationGracePeriodSeconds":5}}}}' >/dev/null
kc -n "$NS" scale deployment web --replicas=20 >/dev/null

ready_replicas() { [[ "$(kc -n "$NS" get deployment web -o jsonpath='{.status.readyReplicas}')" == "$1" ]]; }
wait_for "Deployment web has 20 ready replicas" 180 ready_replicas 20

pods="$(kc -n "$NS" get pods -l app=web -o json)"
expect_eq "20 pods" 20 "$(jq '.items | length' <<<"$pods")"
expect_eq "all Running" 20 "$(jq '[.items[] | select(.status.phase == "Running")] | length' <<<"$pods")"
expect_eq "all Ready=True" 20 "$(jq '[.items[] | select(.status.conditions[] | .type == "Ready" and .status == "True")] | length' <<<"$pods")"
expect_eq "all on kd-node nodes" 20 "$(jq --argjson nodes "$(jq '[.items[].metadata.name]' <<<"$nodes_json")" \
	'[.items[] | select(.spec.nodeName as $n | $nodes | index($n))] | length' <<<"$pods")"
expect_eq "20 distinct pod IPs" 20 "$(jq -r '.items[].status.podIP' <<<"$pods" | sort -u | grep -c .)"
expect_eq "podIPs[0] equals podIP" 20 "$(jq '[.items[] | select(.status.podIPs[0].ip == .status.podIP)] | length' <<<"$pods")"
expect_eq "every container has a ready, started status" 20 \
	"$(jq '[.items[] | select((.spec.containers | length) == ([.status.containerStatuses[] | select(.ready and .started and .state.running.startedAt != null)] | length))] | length' <<<"$pods")"
expect_eq "qosClass kept (BestEffort)" 20 "$(jq '[.items[] | select(.status.qosClass == "BestEffort")] | length' <<<"$pods")"
# each pod IP lies in its node's podCIDR (a /24 in the rig) and hostIP is the node's InternalIP
bad=0
while read -r node ip hostip; do
	cidr="$(jq -r --arg n "$node" '.items[] | select(.metadata.name == $n) | .spec.podCIDR' <<<"$nodes_json")"
	nip="$(jq -r --arg n "$node" '.items[] | select(.metadata.name == $n) | .status.addresses[] | select(.type == "InternalIP") | .address' <<<"$nodes_json")"
	[[ "${ip%.*}" == "$(cut -d/ -f1 <<<"$cidr" | sed 's/\.[0-9]*$//')" && "$cidr" == */24 ]] || { log "pod IP $ip not in $cidr"; bad=1; }
	[[ "$hostip" == "$nip" ]] || { log "hostIP $hostip != node InternalIP $nip"; bad=1; }
done < <(jq -r '.items[] | "\(.spec.nodeName) \(.status.podIP) \(.status.hostIP)"' <<<"$pods")
expect_eq "pod IPs inside node podCIDRs, hostIP = node InternalIP" 0 "$bad"

kc -n "$NS" scale deployment web --replicas=0 >/dev/null
no_pods() { [[ -z "$(kc -n "$NS" get pods -l app=web -o name)" ]]; }
wait_for "every pod deleted after scaling to 0" 120 no_pods
check "kd-node nodes still untainted and Ready" untainted
