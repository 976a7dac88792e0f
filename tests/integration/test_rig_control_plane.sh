#!/usr/bin/env bash
# The rig's control plane and Knative Serving work: API server (v1.35.x, RBAC enforced),
# controller-manager (Deployment -> ReplicaSet -> Pod), scheduler (acts on the Pod), Knative
# webhook (defaults a Service), controller (Configuration -> Revision -> Deployment with the
# queue-proxy sidecar, PodAutoscaler of class kpa, ServerlessService) and the selector-less
# Services/Endpoints wiring for webhook/autoscaler/activator; component namespaces have no route
# off the machine and resolve Knative service names through /etc/netns/<ns>/hosts.
. "$(dirname "$0")/lib.sh"

check "rig/status reports every component healthy" "$REPO/rig/status" --quiet
expect_eq "API server /readyz" ok "$(kc get --raw /readyz)"
expect_eq "API server version" "$KD_K8S_VERSION" "$(kc version -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | tail -1)"

# RBAC is on: an unknown user is denied, Knative's service accounts have their upstream rights.
expect_eq "RBAC denies an unknown user" no "$(kc auth can-i create pods --as=kd-nobody 2>/dev/null || true)"
expect_eq "RBAC grants knative controller SA deployments" yes \
	"$(kc auth can-i create deployments.apps -A --as=system:serviceaccount:knative-serving:controller 2>/dev/null || true)"

# Network isolation: component namespaces have no default route, so no address outside the
# machine is routable (checked with a local route lookup only; nothing is sent).
for s in "${KD_NS_ORDER[@]}"; do
	expect_eq "kd-$s has no default route" "" "$(ip -n "kd-$s" route show default)"
	if ip -n "kd-$s" route get 192.0.2.1 >/dev/null 2>&1; then die "kd-$s can route to 192.0.2.1"; fi
	if ip -n "kd-$s" route get 8.8.8.8 >/dev/null 2>&1; then die "kd-$s can route to 8.8.8.8"; fi
	expect_eq "kd-$s resolves the autoscaler service name" "${KD_NS_IP[kn-as]}" \
		"$(ip netns exec "kd-$s" getent hosts autoscaler.knative-serving.svc.cluster.local | awk '{print $1}')"
done

# kd-br0's MAC is fixed: a bridge with an unset MAC takes its lowest port MAC, so a sandbox veth
# with a lower random MAC would move it. Frames already addressed to the old MAC are then lost,
# and TCP backs off for tens of seconds (the cold-request stall of issue [baseline]).
br_mac() { cat "/sys/class/net/$KD_BRIDGE/address"; }
expect_eq "$KD_BRIDGE has the fixed MAC" "$KD_BRIDGE_MAC" "$(br_mac)"
trap 'ip link del kd-itmac0 2>/dev/null || true' EXIT
ip link add kd-itmac0 type veth peer name kd-itmac1
ip link set kd-itmac0 address 02:00:00:00:00:01
ip link set kd-itmac0 master "$KD_BRIDGE" up
expect_eq "$KD_BRIDGE keeps its MAC when a port with a lower MAC joins" "$KD_BRIDGE_MAC" "$(br_mac)"
ip link del kd-itmac0
expect_eq "$KD_BRIDGE keeps its MAC when that port leaves" "$KD_BRIDGE_MAC" "$(br_mac)"
trap - EXIT

# rig/kubeconfig mints client-cert identities signed by the rig CA (x509 authn works, RBAC applies)
kcfg="$("$REPO/rig/kubeconfig" kd-it-probe kd-it:probe kd-it:probers)"
expect_eq "rig/kubeconfig identity" "kd-it:probe" \
	"$(kc --kubeconfig "$kcfg" auth whoami -o jsonpath='{.status.userInfo.username}')"
expect_eq "minted identity has no rights by default" no \
	"$(kc --kubeconfig "$kcfg" auth can-i list pods 2>/dev/null || true)"
rm -f "$KD_PKI"/kd-it-probe.*

it_namespace kd-it-cp
NS="$IT_NS"
log "namespace $NS"

# kube-controller-manager + scheduler: a Deployment gets a ReplicaSet and a Pod; the scheduler
# sets PodScheduled (False/Unschedulable without Nodes, True once kd-node registers one).
kc -n "$NS" create deployment pending --image=dev.local/kd/none --replicas=1 >/dev/null
wait_for "ReplicaSet created by the deployment controller" 60 \
	bash -c "[[ -n \"\$($KUBECTL -n $NS get rs -l app=pending -o name)\" ]]"
wait_for "Pod created by the replicaset controller" 60 \
	bash -c "[[ -n \"\$($KUBECTL -n $NS get pods -l app=pending -o name)\" ]]"
wait_for "scheduler set the PodScheduled condition" 60 \
	bash -c "[[ -n \"\$($KUBECTL -n $NS get pods -l app=pending -o jsonpath='{.items[0].status.conditions[?(@.type==\"PodScheduled\")].status}')\" ]]"

# Knative wiring: selector-less Services with Endpoints at the component netns IPs.
expect_eq "webhook Endpoints" "${KD_NS_IP[kn-wh]}:8443" \
	"$(kc -n knative-serving get endpoints webhook -o jsonpath='{.subsets[0].addresses[0].ip}:{.subsets[0].ports[0].port}' 2>/dev/null)"
expect_eq "activator-service Endpoints" "${KD_NS_IP[kn-act]}" \
	"$(kc -n knative-serving get endpoints activator-service -o jsonpath='{.subsets[0].addresses[0].ip}' 2>/dev/null)"
wait_for "EndpointSlice mirrored for autoscaler" 60 \
	bash -c "$KUBECTL -n knative-serving get endpointslices -l kubernetes.io/service-name=autoscaler -o jsonpath='{.items[*].endpoints[*].addresses[*]}' | grep -qx '${KD_NS_IP[kn-as]}'"

# Knative Service -> Revision -> Deployment + PodAutoscaler(kpa) + SKS.
kc apply -f - >/dev/null <<YAML
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello, namespace: $NS}
spec:
  template:
    spec:
      containers:
      - image: dev.local/kd/hello:latest
        ports: [{containerPort: 8080}]
YAML
expect_eq "webhook defaulted containerConcurrency" 0 \
	"$(kc -n "$NS" get ksvc hello -o jsonpath='{.spec.template.spec.containerConcurrency}')"
expect_eq "webhook defaulted timeoutSeconds" 300 \
	"$(kc -n "$NS" get ksvc hello -o jsonpath='{.spec.template.spec.timeoutSeconds}')"
wait_for "Revision hello-00001" 90 kc -n "$NS" get revision hello-00001
wait_for "Deployment hello-00001-deployment" 90 kc -n "$NS" get deployment hello-00001-deployment
wait_for "PodAutoscaler hello-00001" 90 kc -n "$NS" get podautoscaler hello-00001
expect_eq "PodAutoscaler class" kpa.autoscaling.knative.dev \
	"$(kc -n "$NS" get podautoscaler hello-00001 -o jsonpath='{.metadata.annotations.autoscaling\.knative\.dev/class}')"
wait_for "ServerlessService hello-00001" 90 kc -n "$NS" get serverlessservice hello-00001
expect_eq "queue-proxy sidecar image" "dev.local/knative-serving/queue:$KD_KNATIVE_SERVING_VERSION" \
	"$(kc -n "$NS" get deployment hello-00001-deployment -o jsonpath='{.spec.template.spec.containers[?(@.name=="queue-proxy")].image}')"
expect_eq "user image kept (dev.local skips tag resolution)" dev.local/kd/hello:latest \
	"$(kc -n "$NS" get deployment hello-00001-deployment -o jsonpath='{.spec.template.spec.containers[?(@.name=="user-container")].image}')"
wait_for "Route created" 60 kc -n "$NS" get route hello

# activator -> autoscaler stats websocket resolved through /etc/netns/kd-kn-act/hosts
wait_for "activator connected to the autoscaler websocket" 30 \
	grep -q '"Autoscaler connection established"' "$KD_RUNS/current/kn-activator.log"
