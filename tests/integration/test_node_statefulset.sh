#!/usr/bin/env bash
# Same pod name, new pod: a StatefulSet recreates web-0 under the same name (new uid) after it is
# deleted; kd-node terminates the old one (stop, then DELETE with gracePeriodSeconds=0 and the old
# uid as precondition) and runs the new one, which becomes Running and Ready with its own status.
. "$(dirname "$0")/lib.sh"

"$REPO/rig/kd-node-start"
it_namespace kd-it-sts >/dev/null
NS="$IT_NS"
log "namespace $NS"
kc -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      nodeSelector: {kubedirect.dev/node-agent: kd-node}
      terminationGracePeriodSeconds: 3
      containers:
      - {name: app, image: dev.local/hello}
EOF
sts_ready() { [[ "$(kc -n "$NS" get statefulset web -o jsonpath='{.status.readyReplicas}')" == 2 ]]; }
wait_for "StatefulSet web has 2 ready replicas" 120 sts_ready

old_uid="$(kc -n "$NS" get pod web-0 -o jsonpath='{.metadata.uid}')"
kc -n "$NS" delete pod web-0 --wait=false >/dev/null
new_ready() {
	local j
	j="$(kc -n "$NS" get pod web-0 -o json 2>/dev/null)" || return 1
	[[ "$(jq -r .metadata.uid <<<"$j")" != "$old_uid" &&
		"$(jq -r '.status.conditions[]? | select(.type == "Ready") | .status' <<<"$j")" == True ]]
}
wait_for "web-0 recreated under the same name (new uid) and Ready" 120 new_ready
pod="$(kc -n "$NS" get pod web-0 -o json)"
expect_eq "new web-0 Running" Running "$(jq -r .status.phase <<<"$pod")"
expect_eq "new web-0 has a ready container status" true "$(jq -r '.status.containerStatuses[0].ready' <<<"$pod")"
check "new web-0 has a pod IP" test -n "$(jq -r '.status.podIP // empty' <<<"$pod")"
check "StatefulSet back to 2 ready replicas" sts_ready
expect_eq "distinct IPs for web-0 and web-1" 2 \
	"$(kc -n "$NS" get pods -l app=web -o jsonpath='{range .items[*]}{.status.podIP}{"\n"}{end}' | sort -u | grep -c .)"
