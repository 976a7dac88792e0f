#!/usr/bin/env bash
# libkd's Kubernetes client (kd_k8s + kd_informer) against the rig's real API server: kubeconfig
# with embedded CA and client certificate, paginated list, informer add/update/delete, 200 async
# creates, AlreadyExists vs Conflict, the three patch types, watch reconnect after timeoutSeconds.
# Runs tests/harness/k8s_smoke inside the control-plane netns against https://127.0.0.1:6443
# (the API server certificate covers 127.0.0.1), over HTTP/1.1 and with HTTP/2 requested.
. "$(dirname "$0")/lib.sh"

smoke="$KD_BUILD_DIR/tests/harness/k8s_smoke"
[[ -x "$smoke" ]] || die "$smoke not built (make BUILD=... test builds harness programs)"

kcfg="$(mktemp)"
sed "s#server: $KD_APISERVER_URL#server: https://127.0.0.1:6443#" "$KD_KUBECONFIG" >"$kcfg"
grep -q 'server: https://127.0.0.1:6443' "$kcfg" || die "could not point the kubeconfig at loopback"

for mode in "" --http2; do
	it_namespace kd-it-k8s
	NS="$IT_NS"
	log "namespace $NS ${mode:-(HTTP/1.1)}"
	# shellcheck disable=SC2086 # empty mode must vanish
	check "k8s_smoke ${mode:-http1}" ip netns exec kd-cp "$smoke" "$kcfg" "$NS" $mode
	kc delete namespace "$NS" --wait=false >/dev/null
done
rm -f "$kcfg"
