#!/usr/bin/env bash
# kd-node killed (SIGKILL) in the middle of a 0 -> 150 burst and started again converges: all 150
# pods become Running and Ready, with 150 distinct pod IPs (pods made Ready before the crash keep
# their address, the others get fresh ones that never collide with an adopted one), and scaling
# back to 0 deletes them all (invariants 1, 3 and 8 of docs/ARCHITECTURE.md section 5, for the node stage).
. "$(dirname "$0")/lib.sh"

"$REPO/rig/kd-node-start"
it_namespace kd-it-crash >/dev/null
NS="$IT_NS"
log "namespace $NS"
kc -n "$NS" create deployment web --image=dev.local/hello --replicas=0 >/dev/null
kc -n "$NS" patch deployment web --type=merge \
	-p '{"spec":{"template":{"spec":{"nodeSelector":{"kubedirect.dev/node-agent":"kd-node"},"terminationGracePeriodSeconds":5}}}}' >/dev/null

ready_count() { kc -n "$NS" get pods -l app=web -o json | jq '[.items[] | select(.status.conditions[]? | .type == "Ready" and .status == "True")] | length'; }
some_bound() { [[ -n "$(kc -n "$NS" get pods -l app=web -o jsonpath='{.items[*].spec.nodeName}')" ]]; }

kc -n "$NS" scale deployment web --replicas=150 >/dev/null
wait_for "the burst has started (a first pod is bound to a node)" 60 some_bound
pid="$(<"$KD_PIDDIR/kd-node.pid")"
kill -KILL "$pid"
log "killed kd-node (pid $pid) with $(ready_count) of 150 pods Ready"
"$REPO/rig/kd-node-stop" >/dev/null
"$REPO/rig/kd-node-start"

all_ready() { [[ "$(ready_count)" == 150 ]]; }
wait_for "all 150 pods Ready after the restart" 180 all_ready
pods="$(kc -n "$NS" get pods -l app=web -o json)"
expect_eq "150 pods (no duplicates)" 150 "$(jq '.items | length' <<<"$pods")"
expect_eq "150 distinct pod IPs" 150 "$(jq -r '.items[].status.podIP' <<<"$pods" | sort -u | grep -c .)"
expect_eq "every container status ready" 150 \
	"$(jq '[.items[] | select((.spec.containers | length) == ([.status.containerStatuses[]? | select(.ready)] | length))] | length' <<<"$pods")"

kc -n "$NS" scale deployment web --replicas=0 >/dev/null
no_pods() { [[ -z "$(kc -n "$NS" get pods -l app=web -o name)" ]]; }
wait_for "every pod deleted after scaling to 0" 120 no_pods
