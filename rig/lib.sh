# shellcheck shell=bash
# Common definitions for rig/* scripts. Sourced, never executed.
#
# Layout (all outside the repository):
#   $KD_CACHE/bin/<version-key>/<binary>   built upstream binaries (rig/build)
#   $KD_CACHE/src/<version-key>/           generated Go wrapper modules
#   $KD_CACHE/logs/<version-key>-<bin>.log build logs
#   $KD_RIG_DIR/                           runtime state of the cluster (rig/up)
#       pki/ kubeconfig run/*.pid runs/<timestamp>/<component>.log runs/current -> latest

KD_RIG_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KD_REPO="$(cd "$KD_RIG_SRC/.." && pwd)"
# shellcheck source=rig/versions.env
. "$KD_RIG_SRC/versions.env"

KD_CACHE="${KD_CACHE:-/var/cache/kubedirect}"
KD_RIG_DIR="${KD_RIG_DIR:-/var/lib/kubedirect/rig}"

KD_K8S_KEY="k8s-$KD_K8S_VERSION"
KD_KN_KEY="knative-serving-$KD_KNATIVE_SERVING_VERSION"
KD_ETCD_KEY="etcd-$KD_ETCD_VERSION"
KD_K8S_BIN="$KD_CACHE/bin/$KD_K8S_KEY"
KD_KN_BIN="$KD_CACHE/bin/$KD_KN_KEY"
KD_ETCD_BUILD_BIN="$KD_CACHE/bin/$KD_ETCD_KEY/etcd"

kd_say() { printf 'rig: %s\n' "$*"; }
kd_warn() { printf 'rig: warning: %s\n' "$*" >&2; }
kd_die() {
	printf 'rig: error: %s\n' "$*" >&2
	exit 1
}

# kd_etcd_bin: path of the etcd binary selected by versions.env.
kd_etcd_bin() {
	if [[ "$KD_ETCD_SOURCE" == system ]]; then
		echo "$KD_ETCD_SYSTEM_BIN"
	else
		echo "$KD_ETCD_BUILD_BIN"
	fi
}

# kd_need_tools TOOL...: fail with one clear message listing every missing tool.
kd_need_tools() {
	local missing=() t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || missing+=("$t")
	done
	((${#missing[@]} == 0)) || kd_die "missing tool(s): ${missing[*]} (see scripts/deps.sh)"
}

kd_need_root() {
	[[ $EUID -eq 0 ]] || kd_die "$1 must run as root (network namespaces, /etc/netns)"
}

# ---- network layout ---------------------------------------------------------------------------
# Bridge kd-br0 lives in the ROOT netns with 10.88.0.1/16 (so the admin kubeconfig works from the
# root netns); every component runs in its own netns (names kd-*) attached through a veth whose
# root end (kd-v-*) is enslaved to kd-br0. Namespaces get only on-link routes (10.88.0.0/16 and
# the pod range 10.244.0.0/16): no default route, so nothing can leave the machine.
# Pod sandboxes (created later by the process runtime) use 10.244.<node>.<n>/24 on the same
# bridge and need an on-link route to 10.88.0.0/16 themselves.
KD_BRIDGE=kd-br0
KD_NET_CIDR=10.88.0.0/16
KD_BRIDGE_IP=10.88.0.1
# kd-br0's MAC is set explicitly (0a:58 + the bridge IP's bytes, the CNI bridge plugin's scheme).
# A Linux bridge whose MAC was never set takes the lowest MAC of its ports and changes it as ports
# come and go. Pod sandboxes add and delete veths with random MACs all the time, so the bridge's
# MAC would change under the namespaces' ARP caches. Frames sent to the old MAC are not delivered
# to the root netns. A reply in flight is then resent with TCP backoff (0.2 ... 51 ... 102 s)
# until the neighbour entry expires. This was the cold-request "activator stall" of issue
# [baseline]: the activator's response to curl in the root netns was lost.
# Upstream: containernetworking/cni#285, kubernetes/kubernetes#30783, lxc/lxc#604.
KD_BRIDGE_MAC=0a:58:0a:58:00:01
KD_POD_CIDR=10.244.0.0/16
KD_SERVICE_CIDR=10.96.0.0/16
KD_SERVICE_IP=10.96.0.1
KD_CLUSTER_DOMAIN=cluster.local
KD_SYSTEM_NS=knative-serving

# netns short-name -> IP (netns is kd-<short>, root veth end kd-v-<short>, inner end eth0).
declare -A KD_NS_IP=(
	[cp]=10.88.0.2
	[kn-ctl]=10.88.0.10
	[kn-wh]=10.88.0.11
	[kn-as]=10.88.0.12
	[kn-act]=10.88.0.13
)
KD_NS_ORDER=(cp kn-ctl kn-wh kn-as kn-act)
KD_APISERVER_IP="${KD_NS_IP[cp]}"
KD_APISERVER_URL="https://$KD_APISERVER_IP:6443"

# component -> netns short name, in start order. Knative components keep upstream names with kn-.
KD_COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler
	kn-controller kn-webhook kn-autoscaler kn-activator)
declare -A KD_COMP_NS=(
	[etcd]=cp [kube-apiserver]=cp [kube-controller-manager]=cp [kube-scheduler]=cp
	[kn-controller]=kn-ctl [kn-webhook]=kn-wh [kn-autoscaler]=kn-as [kn-activator]=kn-act
)
# TCP ports each component listens on (checked free before start).
declare -A KD_COMP_PORTS=(
	[etcd]="2379 2380" [kube-apiserver]="6443" [kube-controller-manager]="10257"
	[kube-scheduler]="10259" [kn-controller]="8080" [kn-webhook]="8443 8080"
	[kn-autoscaler]="8080" [kn-activator]="8012 8013"
)

KD_PKI="$KD_RIG_DIR/pki"
KD_KUBECONFIG="$KD_RIG_DIR/kubeconfig"
KD_PIDDIR="$KD_RIG_DIR/run"
KD_RUNS="$KD_RIG_DIR/runs"
# etcd data on tmpfs when possible (etcd 3.4 has no --unsafe-no-fsync); wiped on every rig/up.
KD_ETCD_DATA="${KD_ETCD_DATA:-/dev/shm/kd-rig-etcd}"

# kd_curl ARGS...: curl that never uses a proxy and never hangs.
kd_curl() { curl --noproxy '*' -s --connect-timeout 2 --max-time 4 "$@"; }

# kd_health COMPONENT: 0 if the component's own health endpoint answers OK (from the root netns).
kd_health() {
	local ip="${KD_NS_IP[${KD_COMP_NS[$1]}]}" out
	case "$1" in
	etcd) out="$(ip netns exec kd-cp curl --noproxy '*' -s --max-time 3 http://127.0.0.1:2379/health 2>/dev/null)" &&
		[[ "$out" == *'"health":"true"'* ]] ;;
	kube-apiserver) out="$(kd_curl --cacert "$KD_PKI/ca.crt" --cert "$KD_PKI/admin.crt" --key "$KD_PKI/admin.key" \
		"$KD_APISERVER_URL/readyz")" && [[ "$out" == ok ]] ;;
	kube-controller-manager) out="$(kd_curl -k "https://$ip:10257/healthz")" && [[ "$out" == ok ]] ;;
	kube-scheduler) out="$(kd_curl -k "https://$ip:10259/healthz")" && [[ "$out" == ok ]] ;;
	kn-controller) kd_curl -f -o /dev/null "http://$ip:8080/readiness" ;;
	kn-webhook) kd_curl -f -k -o /dev/null -A kube-probe/1.35 "https://$ip:8443/" ;;
	kn-autoscaler) kd_curl -f -o /dev/null -A kube-probe/1.35 "http://$ip:8080/" ;;
	kn-activator) kd_curl -f -o /dev/null -A kube-probe/1.35 "http://$ip:8012/" ;;
	*) return 1 ;;
	esac
}

# kd_pid_alive COMPONENT: 0 if its pid file names a live process running that component.
kd_pid_alive() {
	local f="$KD_PIDDIR/$1.pid" pid
	[[ -f "$f" ]] || return 1
	pid="$(<"$f")"
	[[ "$pid" =~ ^[0-9]+$ ]] && [[ -r "/proc/$pid/cmdline" ]] || return 1
	# guard against pid reuse: the pid must still live in the component's netns
	[[ "$(ip netns identify "$pid" 2>/dev/null)" == "kd-${KD_COMP_NS[$1]}" ]]
}

# ---- PKI helpers (used by rig/up and rig/kubeconfig) ---------------------------------------------
# ossl must be defined by the caller (openssl with logging and error handling).
# kd_mkcert NAME SUBJECT [SAN]: $KD_PKI/NAME.{key,crt} signed by the rig CA; a client cert if no
# SAN is given, else a server+client cert. Existing certs are kept.
kd_mkcert() {
	local name="$1" subj="$2" san="${3:-}" ext="$KD_PKI/$1.ext"
	[[ -s "$KD_PKI/$name.crt" ]] && return 0
	ossl genrsa -out "$KD_PKI/$name.key" 2048
	ossl req -new -key "$KD_PKI/$name.key" -subj "$subj" -out "$KD_PKI/$name.csr"
	if [[ -n "$san" ]]; then
		printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$san" >"$ext"
	else
		printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >"$ext"
	fi
	ossl x509 -req -in "$KD_PKI/$name.csr" -CA "$KD_PKI/ca.crt" -CAkey "$KD_PKI/ca.key" \
		-CAcreateserial -days 3650 -sha256 -extfile "$ext" -out "$KD_PKI/$name.crt"
	rm -f "$KD_PKI/$name.csr" "$ext"
	chmod 600 "$KD_PKI/$name.key"
}

# kd_kubeconfig OUT CERTNAME: kubeconfig with embedded CA + client cert $KD_PKI/CERTNAME.*
kd_kubeconfig() {
	local out="$1" cert="$2"
	cat >"$out" <<EOF2
apiVersion: v1
kind: Config
clusters:
- name: kd-rig
  cluster:
    server: $KD_APISERVER_URL
    certificate-authority-data: $(base64 -w0 <"$KD_PKI/ca.crt")
users:
- name: $cert
  user:
    client-certificate-data: $(base64 -w0 <"$KD_PKI/$cert.crt")
    client-key-data: $(base64 -w0 <"$KD_PKI/$cert.key")
contexts:
- name: kd-rig
  context: {cluster: kd-rig, user: $cert}
current-context: kd-rig
EOF2
	chmod 600 "$out"
}
