#!/usr/bin/env bash
# kd-autoscaler takes its decider configuration from Knative's config-autoscaler ConfigMap and
# follows changes without a restart (autoscaler-shim/cfgmap.c):
#  - at start it applies the rig's config-autoscaler (knative-serving): the log says
#    target-burst-capacity="-1" and allow-zero-initial-scale="true" applied, and nothing about
#    `_example`; an idle kd revision (initial-scale 0, no stats) is decided 0 (TBC -1: no data
#    reads as 0), PA status.desiredScale 0, Revision Ready at 0 (allow-zero-initial-scale);
#  - enable-scale-to-zero "false" patched into knative-serving/config-autoscaler: the same
#    process (same pid) logs it applied and decides 1 for the idle revision (desiredScale 1;
#    this kd-autoscaler may use no Node, so nothing is created); restoring the original value
#    brings the decision back to 0 (after the scale-to-zero grace period);
#  - an invalid value cannot be tried on the real ConfigMap (Knative's configmap webhook refuses
#    it), so a second kd-autoscaler reads a copy in the test namespace (--knative-namespace $NS,
#    outside the webhook's namespaceSelector): enable-scale-to-zero "maybe" is logged with key and
#    value and refused, the previous "false" is kept (desiredScale still 1 over two more
#    decisions, /metrics counts one refused change), and a later valid value is applied again.
# The real config-autoscaler is restored when the test exits (trap), whatever happened.
. "$(dirname "$0")/lib.sh"
. "$IT_DIR/lib_kd_as.sh"

KN_NS=knative-serving
AS_ADMIN_PORT=$((AS_STATS_PORT + 6))
ORIG_STZ="" ORIG_SET=0

cfg_cleanup() {
	local rc=$?
	set +e
	if ((ORIG_SET)); then
		local v=null
		[[ -n "$ORIG_STZ" ]] && v="\"$ORIG_STZ\""
		kc -n "$KN_NS" patch configmap config-autoscaler --type merge \
			-p "{\"data\":{\"enable-scale-to-zero\":$v}}" >/dev/null 2>&1 ||
			echo "  WARNING: could not restore $KN_NS/config-autoscaler enable-scale-to-zero" >&2
	fi
	as_cleanup
	exit $rc
}

kd_it_namespace kd-it-ascfg
as_start --node-selector kubedirect.dev/no-such-node=x --admin-port "$AS_ADMIN_PORT"
trap cfg_cleanup EXIT # as_start installs its own trap: ours also restores config-autoscaler
PID1="$AS_PID"

# --- 1. the rig's config-autoscaler at start ---------------------------------------------------
applied() { grep -qF "config-autoscaler $1: $2=\"$3\" applied" "$AS_LOG"; }
wait_for "rig's target-burst-capacity applied" 10 applied "$KN_NS/config-autoscaler" target-burst-capacity -1
wait_for "rig's allow-zero-initial-scale applied" 10 applied "$KN_NS/config-autoscaler" allow-zero-initial-scale true
check "the log says nothing about _example" bash -c "! grep -q _example '$AS_LOG'"
check "no config-autoscaler value refused" bash -c "! grep -q 'config-autoscaler.* refused' '$AS_LOG'"

kd_ksvc kd
kd_rev_at_zero
desired_is() { [[ "$(kc -n "$NS" get podautoscaler "$REV" -o jsonpath='{.status.desiredScale}')" == "$1" ]]; }
wait_for "idle revision decided 0 (PA desiredScale 0)" 30 desired_is 0

# --- 2. a change to the real config-autoscaler, applied without a restart ------------------------
ORIG_STZ="$(kc -n "$KN_NS" get configmap config-autoscaler -o jsonpath='{.data.enable-scale-to-zero}')"
ORIG_SET=1
kc -n "$KN_NS" patch configmap config-autoscaler --type merge -p '{"data":{"enable-scale-to-zero":"false"}}' >/dev/null
wait_for "enable-scale-to-zero=false applied" 30 applied "$KN_NS/config-autoscaler" enable-scale-to-zero false
wait_for "the idle revision is now decided 1 (PA desiredScale 1)" 30 desired_is 1
check "decision logged as a tick decision 0 -> 1" grep -qF "[$NS/$REV] pa: desired 0 -> 1 (tick)" "$AS_LOG"
check "the same kd-autoscaler process still runs" kill -0 "$PID1"
expect_eq "it started once (no restart)" 1 "$(grep -c "reconciling PodAutoscalers" "$AS_LOG")"

v=null
[[ -n "$ORIG_STZ" ]] && v="\"$ORIG_STZ\""
kc -n "$KN_NS" patch configmap config-autoscaler --type merge -p "{\"data\":{\"enable-scale-to-zero\":$v}}" >/dev/null
ORIG_SET=0
restored() { grep -qE "config-autoscaler $KN_NS/config-autoscaler: enable-scale-to-zero (removed|=\"$ORIG_STZ\" applied)" "$AS_LOG"; }
wait_for "original enable-scale-to-zero restored and applied" 30 restored
wait_for "back to desiredScale 0 (after the grace period)" 90 desired_is 0
as_stop

# --- 3. invalid value: a copy of config-autoscaler in our namespace (no Knative webhook there) ---
kc -n "$NS" apply -f - >/dev/null <<EOT
apiVersion: v1
kind: ConfigMap
metadata: {name: config-autoscaler}
data:
  _example: |
    # not configuration: Knative's documentation block
    enable-scale-to-zero: "maybe"
  target-burst-capacity: "-1"
  allow-zero-initial-scale: "true"
  enable-scale-to-zero: "false"
EOT
as_start --node-selector kubedirect.dev/no-such-node=x --admin-port "$AS_ADMIN_PORT" --knative-namespace "$NS"
trap cfg_cleanup EXIT
PID2="$AS_PID"
wait_for "copy: enable-scale-to-zero=false applied" 10 applied "$NS/config-autoscaler" enable-scale-to-zero false
wait_for "idle revision decided 1 under the copy" 30 desired_is 1
metric() { ip netns exec kd-cp curl -s --max-time 5 "http://127.0.0.1:$AS_ADMIN_PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
expect_eq "no refused change yet" 0 "$(metric 'kd_autoscaler_config_changes_total{result="refused"}')"

kc -n "$NS" patch configmap config-autoscaler --type merge -p '{"data":{"enable-scale-to-zero":"maybe"}}' >/dev/null
refused() { grep -qF "config-autoscaler $NS/config-autoscaler: enable-scale-to-zero=\"maybe\" refused" "$AS_LOG"; }
wait_for "invalid value logged with key and value" 30 refused
check "the log says why and that the previous value is kept" grep -qE \
	'enable-scale-to-zero="maybe" refused: option "enable-scale-to-zero": "maybe" is not a boolean .*; keeping "false"$' "$AS_LOG"
expect_eq "/metrics: one refused change" 1 "$(metric 'kd_autoscaler_config_changes_total{result="refused"}')"
d0="$(metric kd_autoscaler_decisions_total)"
two_more() { (($(metric kd_autoscaler_decisions_total) >= d0 + 2)); }
wait_for "two more decisions after the refused value" 30 two_more
check "previous value kept: desiredScale still 1" desired_is 1
check "no decision back to 0" bash -c "! grep -qF '[$NS/$REV] pa: desired 1 -> 0' '$AS_LOG'"
check "kd-autoscaler did not crash" kill -0 "$PID2"

kc -n "$NS" patch configmap config-autoscaler --type merge -p '{"data":{"enable-scale-to-zero":"true"}}' >/dev/null
wait_for "a valid value after the invalid one is applied" 30 applied "$NS/config-autoscaler" enable-scale-to-zero true
wait_for "decided 0 again (after the grace period)" 90 desired_is 0
log "PASS"
