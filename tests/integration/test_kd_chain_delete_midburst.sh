#!/usr/bin/env bash
# Invariant 5 (docs/ARCHITECTURE.md section 5): deleting a revision in the middle of a burst removes all its
# instances, ephemeral and persisted. A kd Service is scaled 0 -> 1000 through the chain
# (kd-autoscaler + kd-node in direct mode, runtime-sim, 2 Nodes) and deleted at a random moment
# of the burst (seed printed; KD_IT_SEED replays it). Then:
#  - no Pod of the revision is left in the API (persisted instances deleted);
#  - kd-node holds nothing for it: kd-autoscaler is restarted, and on the new handshakes kd-node
#    reports no unpersisted instance on its instance channel and no live status on its status
#    channel (ephemeral instances cancelled, sandboxes stopped).
. "$(dirname "$0")/lib.sh"
. "$IT_DIR/lib_kd_as.sh"

SEED="${KD_IT_SEED:-$RANDOM}"
RANDOM=$SEED
DELAY_MS=$((RANDOM % 200))
log "seed $SEED: deleting the Service $DELAY_MS ms into the burst"

kd_it_namespace kd-it-del
DN_ADMIN_PORT=$((AS_STATS_PORT + 4))
dn_start kd-del 150 2
as_start --node-selector "$(dn_selector)"
kd_ksvc kd
kd_rev_at_zero

N=1000
as_scale "$REV" "$N" >/dev/null
sleep "$(printf '0.%03d' "$DELAY_MS")"
made="$(rev_pods -o name | wc -l)"
kc -n "$NS" delete ksvc kd --wait=false >/dev/null
log "deleting the Service with $made of $N instance Pod(s) written back"
# the test is only meaningful mid-burst: the decision was applied, not everything persisted
grep -q "desired [-0-9]* -> $N (scale message)" "$AS_LOG" || die "the scale decision was not applied before the delete"
((made < N)) || die "the burst was over before the delete ($made Pods): nothing ephemeral to cancel"

none() { [[ -z "$(rev_pods -o name)" ]]; }
wait_for "no Pod of $REV left" 180 none
# The delete reaches kd-node through the live chain: it stops every instance it was given,
# persisted or not (kd-autoscaler is restarted only then: ops still queued in a stopped process
# are not what this test is about; test_kd_chain_restart covers an incarnation that left some).
dn_instances() {
	ip netns exec kd-cp curl -s --max-time 5 "http://127.0.0.1:$DN_ADMIN_PORT/metrics" |
		awk '$1 == "kd_node_instances" {print $2}'
}
drained() { [[ "$(dn_instances)" == 0 ]]; }
wait_for "kd-node holds no instance (was told to delete them all)" 60 drained

# What kd-node still holds shows on a fresh handshake: restart kd-autoscaler.
mark="$(wc -l <"$DN_LOG")"
as_stop
as_start --node-selector "$(dn_selector)"
handshakes() {
	tail -n +"$((mark + 1))" "$DN_LOG" | grep -q "status channel 127.0.0.1:$AS_STATUS_PORT ready" &&
		tail -n +"$((mark + 1))" "$DN_LOG" | grep -q "direct: handshake with kd-autoscaler:$NS"
}
wait_for "kd-node handshakes with the restarted kd-autoscaler" 60 handshakes
after="$(tail -n +"$((mark + 1))" "$DN_LOG")"
grep -q "status channel 127.0.0.1:$AS_STATUS_PORT ready (epoch [0-9]*, 0 live statuses)" <<<"$after" ||
	die "kd-node still reports live instances: $(grep 'live statuses' <<<"$after")"
grep -q "handshake with kd-autoscaler:$NS: holding 0 unpersisted instances" <<<"$after" ||
	die "kd-node still holds unpersisted instances: $(grep 'unpersisted' <<<"$after")"
log "no ephemeral or persisted instance left (seed $SEED)"
