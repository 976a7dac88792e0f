#!/usr/bin/env bash
# kd-node restarts without disturbing its pods: after stop + start, the pods that were Running keep
# their names, IPs and status (their resourceVersion does not move: kd-node re-registers each IP
# with the runtime and sends no status patch when the API Server already shows it Running and
# Ready), the nodes stay Ready (same Ready transition time), and pods created afterwards get IPs distinct from the adopted ones
# (exactly one sandbox per pod, no address handed out twice).
. "$(dirname "$0")/lib.sh"

"$REPO/rig/kd-node-start"
it_namespace kd-it-adopt >/dev/null
NS="$IT_NS"
log "namespace $NS"
kc -n "$NS" create deployment web --image=dev.local/hello --replicas=0 >/dev/null
kc -n "$NS" patch deployment web --type=merge \
	-p '{"spec":{"template":{"spec":{"nodeSelector":{"kubedirect.dev/node-agent":"kd-node"},"terminationGracePeriodSeconds":5}}}}' >/dev/null
kc -n "$NS" scale deployment web --replicas=10 >/dev/null
ready_replicas() { [[ "$(kc -n "$NS" get deployment web -o jsonpath='{.status.readyReplicas}')" == "$1" ]]; }
wait_for "10 ready replicas" 120 ready_replicas 10

snapshot() { kc -n "$NS" get pods -l app=web -o json | jq -r '.items[] | "\(.metadata.name) \(.status.podIP) \(.metadata.resourceVersion)"' | sort; }
before="$(snapshot)"
ready_since() { kc get node kd-node-0 -o jsonpath='{.status.conditions[?(@.type=="Ready")].lastTransitionTime}'; }
since="$(ready_since)"

"$REPO/rig/kd-node-stop"
"$REPO/rig/kd-node-start"
# give the restarted agent time to list, re-register every sandbox and (wrongly) patch anything
sleep 5
after="$(snapshot)"
expect_eq "same pods, same IPs, same resourceVersions after the restart" "$before" "$after"
check "still 10 ready replicas" ready_replicas 10
expect_eq "node Ready lastTransitionTime kept across the restart" "$since" "$(ready_since)"

kc -n "$NS" scale deployment web --replicas=15 >/dev/null
wait_for "15 ready replicas after scaling up" 120 ready_replicas 15
expect_eq "15 distinct pod IPs (adopted + new)" 15 \
	"$(kc -n "$NS" get pods -l app=web -o jsonpath='{range .items[*]}{.status.podIP}{"\n"}{end}' | sort -u | grep -c .)"
expect_eq "adopted pods untouched" "$before" "$(snapshot | grep -F -f <(cut -d' ' -f1 <<<"$before"))"
