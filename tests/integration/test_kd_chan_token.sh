#!/usr/bin/env bash
# kd-autoscaler --chan-token-secret on the real API Server: the channels' bearer token kept in a
# Secret kd-autoscaler makes when it is missing (manifests/: kd-activator and kd-node read the
# same Secret as $KD_CHAN_TOKEN):
#  - missing: made with 64 hex characters under key "token", labelled part-of kubedirect;
#  - present: read, not replaced (a restart keeps the token; the status channel takes kd-node's
#    reports only with it);
#  - a Secret without the key is an error naming it (exit 1), and nothing is overwritten;
#  - inside a Pod (KUBERNETES_SERVICE_HOST set) kd-autoscaler, kd-activator and kd-node refuse to
#    start with no token (exit 2) unless --insecure-channels.
. "$(dirname "$0")/lib.sh"
. "$IT_DIR/lib_kd_as.sh"

kd_it_namespace kd-it-tok
tok() { kc -n "$NS" get secret kd-chan-token -o jsonpath='{.data.token}' | base64 -d; }
as_start --chan-token-secret "kd-chan-token.$NS"
grep -q "channels: made the bearer token, Secret $NS/kd-chan-token" "$AS_LOG" || die "no 'made' line ($AS_LOG)"
t1="$(tok)"
[[ "$t1" =~ ^[0-9a-f]{64}$ ]] || die "token is not 64 hex characters: '$t1'"
log "ok: Secret made with a 64-hex token"
expect_eq "labelled" kubedirect "$(kc -n "$NS" get secret kd-chan-token -o jsonpath='{.metadata.labels.app\.kubernetes\.io/part-of}')"

# a kd-node with the token reports on the status channel; one without is refused
KD_CHAN_TOKEN="$t1" dn_start kd-tok 190 1
ok_status() { grep -q "status channel 127.0.0.1:$AS_STATUS_PORT ready" "$DN_LOG"; }
wait_for "kd-node with the token: status channel ready" 30 ok_status

as_stop
as_start --chan-token-secret "kd-chan-token.$NS"
grep -q "channels: bearer token from Secret $NS/kd-chan-token" "$AS_LOG" || die "restart did not read the Secret ($AS_LOG)"
expect_eq "restart keeps the token" "$t1" "$(tok)"

# a Secret without the key
as_stop
kc -n "$NS" create secret generic kd-bad --from-literal=other=x >/dev/null
bin="$(as_bin)"
set +e
out="$(ip netns exec kd-cp "$bin" --kubeconfig "$KD_KUBECONFIG" --namespace "$NS" --stats-port 0 --status-port 0 \
	--chan-token-secret "kd-bad.$NS" 2>&1)"
rc=$?
set -e
expect_eq "a Secret without the key: exit 1" 1 "$rc"
grep -q 'kd-bad.'"$NS"': no key "token"' <<<"$out" || die "message does not name the key: $out"
expect_eq "nothing overwritten" x "$(kc -n "$NS" get secret kd-bad -o jsonpath='{.data.other}' | base64 -d)"

# in a Pod, no token: refused unless --insecure-channels
for b in kd-autoscaler kd-activator kd-node; do
	p="$(dirname "$bin")/$b"
	extra=()
	[[ $b == kd-node ]] && extra=(--direct)
	set +e
	out="$(KUBERNETES_SERVICE_HOST=10.96.0.1 KD_CHAN_TOKEN= "$p" "${extra[@]}" 2>&1)"
	rc=$?
	set -e
	expect_eq "$b in a Pod without a token: exit 2" 2 "$rc"
	grep -q -- "--insecure-channels" <<<"$out" || die "$b: message does not say how: $out"
done
