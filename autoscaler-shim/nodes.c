/* autoscaler-shim/nodes.c: the Node informer and the pool of instance channels of kd-autoscaler
 * (see autoscaler.h and the channel contract in kd/instance.h).
 *
 * Decisions made here:
 *  - Only Nodes that publish KD_ANNOT_CHANNEL_ADDR are given to the scheduler plugin, as
 *    kd_node_view reads them (kd/schedjson.h); a Node it refuses is logged and not updated.
 *    One kd_chan_up per distinct address, hello.source = --source.
 *  - Ops for one channel are coalesced per key until the next flush (a decision round), so one
 *    delta never names a key twice; a delete replaces a pending upsert of the same key.
 *  - A Node whose KD_ANNOT_CHANNEL_ADDR changes (its kd-node restarted on another port) moves,
 *    with every instance placed on it, to the channel of the new address (node_move); the
 *    scheduler keeps its reservations, unpersisted instances are resent there (handshake and a
 *    queued upsert), and the old channel is closed once no Node publishes its address.
 *  - A deleted Node's instances are lost: unwritten ones are forgotten, persisted ones stop
 *    counting and their Pods are deleted with grace 0 (as pod GC would, only sooner); then a
 *    decision replaces them on the remaining nodes.
 *  - Warm: every channel known after the Node informer synced has completed a handshake (or
 *    KD_AS_WARMUP_MS passed). Until then no decision is applied: the handshakes first cancel
 *    what a previous incarnation left in flight, then decisions create what is missing (no
 *    over-scaling after a restart).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "autoscaler.h"
#include "kd/json.h"
#include "kd/log.h"

#define KD_AS_WARMUP_MS 5000

/* ---- channels ------------------------------------------------------------------------------- */

static struct kd_as_chan *chan_find(struct kd_as *as, const char *addr)
{
	return addr ? kd_strmap_get(&as->chans, addr) : NULL;
}

struct kd_as_chan *kd_as_chan_for_node(struct kd_as *as, const char *node)
{
	struct kd_as_node *n = node ? kd_strmap_get(&as->nodes, node) : NULL;
	return n ? chan_find(as, n->addr) : NULL;
}

void kd_as_chan_queue(struct kd_as_chan *ch, struct kd_op *op)
{
	for (size_t i = 0; i < ch->pending.n; i++)
		if (strcmp(ch->pending.v[i].key, op->key) == 0) {
			kd_op_fini(&ch->pending.v[i]);
			ch->pending.v[i] = *op;
			memset(op, 0, sizeof(*op));
			return;
		}
	*kd_op_list_push(&ch->pending) = *op;
	memset(op, 0, sizeof(*op));
}

static void chan_flush(struct kd_as_chan *ch)
{
	if (!ch->pending.n || !ch->up)
		return;
	kd_autoerr struct kd_error *err = NULL;
	int rc = kd_chan_up_send(ch->up, &ch->pending, NULL, &err);
	if (rc == -EAGAIN)
		return; /* the writable callback flushes again */
	if (rc < 0) {
		kd_log_error("chain: channel %s: %zu ops refused: %s", ch->addr, ch->pending.n,
		             kd_error_msg(err));
		kd_op_list_fini(&ch->pending);
	}
}

void kd_as_chain_flush(struct kd_as *as)
{
	size_t pos = 0;
	struct kd_as_chan *ch;
	while ((ch = kd_strmap_next(&as->chans, &pos)))
		chan_flush(ch);
}

static int chan_wanted(void *ud, struct kd_op_list *out, struct kd_error **err)
{
	struct kd_as_chan *ch = ud;
	size_t pos = 0;
	struct kd_as_inst *inst;
	while ((inst = kd_strmap_next(&ch->as->insts, &pos))) {
		if (inst->chan != ch || inst->observed || inst->deleting)
			continue;
		struct kd_op op;
		memset(&op, 0, sizeof(op));
		if (kd_instance_to_op(&inst->d, &op, err) < 0)
			return -EINVAL;
		*kd_op_list_push(out) = op;
	}
	return 0;
}

static bool chan_persisted(void *ud, const char *key)
{
	struct kd_as_chan *ch = ud;
	struct kd_as_inst *inst = kd_as_inst_find(ch->as, key);
	if (inst)
		return inst->observed;
	kd_autofree char *ns = NULL;
	kd_autofree char *name = NULL;
	if (kd_instance_key_split(key, &ns, &name, NULL) < 0)
		return false;
	const char *only = ch->as->cfg.namespace;
	if (only && *only && strcmp(ns, only) != 0)
		return true; /* another namespace: another kd-autoscaler's; keep, never drop */
	/* not ours any more: persisted if the API Server has it (then the node writes it back and
	 * we delete it through the API when we see it), else dropped */
	return kd_informer_get(ch->as->pod_inf, ns, name) != NULL;
}

static void chan_remote_error(void *ud, int code, const char *reason)
{
	struct kd_as_chan *ch = ud;
	kd_log_warn("chain: channel %s: node refused an op (code %d): %s", ch->addr, code, reason);
}

static void check_warm(struct kd_as *as)
{
	if (as->warm || !as->node_inf || !kd_informer_synced(as->node_inf))
		return;
	size_t pos = 0;
	struct kd_as_chan *ch;
	while ((ch = kd_strmap_next(&as->chans, &pos)))
		if (!ch->was_ready)
			return;
	as->warm = true;
	kd_log_info("chain: every instance channel handshaked; applying decisions");
}

static void warm_timeout(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	struct kd_as *as = arg;
	if (!as->warm) {
		as->warm = true;
		kd_log_warn("chain: not every instance channel handshaked within %d ms; applying "
		            "decisions anyway",
		            KD_AS_WARMUP_MS);
	}
}

static void chan_ready(void *ud, uint64_t epoch)
{
	struct kd_as_chan *ch = ud;
	kd_log_info("chain: channel %s ready (epoch %llu)", ch->addr, (unsigned long long)epoch);
	ch->was_ready = true;
	chan_flush(ch);
	check_warm(ch->as);
}

static void chan_down_cb(void *ud, const char *reason)
{
	struct kd_as_chan *ch = ud;
	kd_log_warn("chain: channel %s down: %s", ch->addr, reason);
}

static void chan_writable(void *ud)
{
	chan_flush(ud);
}

static struct kd_as_chan *chan_get(struct kd_as *as, const char *addr)
{
	struct kd_as_chan *ch = chan_find(as, addr);
	if (ch)
		return ch;
	kd_autofree char *host = NULL;
	int port = 0;
	kd_autoerr struct kd_error *err = NULL;
	if (kd_instance_addr_parse(addr, &host, &port, &err) < 0) {
		kd_log_warn("chain: %s", kd_error_msg(err));
		return NULL;
	}
	ch = kd_xcalloc(1, sizeof(*ch));
	ch->as = as;
	ch->addr = kd_xstrdup(addr);
	struct kd_chan_up_opts o = {.host = host, .port = port, .source = as->cfg.source};
	o.t.token = as->cfg.chan_token && *as->cfg.chan_token ? as->cfg.chan_token : NULL;
	struct kd_chan_up_cbs cbs = {
	    .hs = {.wanted = chan_wanted,
	           .persisted = chan_persisted,
	           .remote_error = chan_remote_error},
	    .ready = chan_ready,
	    .down = chan_down_cb,
	    .writable = chan_writable,
	};
	ch->up = kd_chan_up_new(as->loop, &o, &cbs, ch, &err);
	if (!ch->up) {
		kd_log_error("chain: channel %s: %s", addr, kd_error_msg(err));
		free(ch->addr);
		free(ch);
		return NULL;
	}
	kd_strmap_put(&as->chans, ch->addr, ch);
	kd_log_info("chain: instance channel to %s", addr);
	return ch;
}

static void chan_free(struct kd_as_chan *ch)
{
	kd_chan_up_free(ch->up);
	kd_op_list_fini(&ch->pending);
	free(ch->addr);
	free(ch);
}

/* Closes ch (no node publishes its address any more): its pending ops go to `to` (may be NULL:
 * dropped; the handshake of the instances' channel recomputes what is missing) and every
 * instance still naming it is detached (deleted Nodes' instances keep no dangling pointer). */
static void chan_close(struct kd_as *as, struct kd_as_chan *ch, struct kd_as_chan *to)
{
	for (size_t i = 0; to && i < ch->pending.n; i++)
		kd_as_chan_queue(to, &ch->pending.v[i]);
	size_t pos = 0;
	struct kd_as_inst *inst;
	while ((inst = kd_strmap_next(&as->insts, &pos)))
		if (inst->chan == ch)
			inst->chan = to;
	kd_log_info("chain: instance channel to %s closed (no node publishes it)", ch->addr);
	kd_strmap_del(&as->chans, ch->addr);
	chan_free(ch);
}

/* ---- nodes ---------------------------------------------------------------------------------- */

static void notready_set(struct kd_as *as, const char *name, bool notready)
{
	char *was = kd_strmap_get(&as->notready, name);
	if (notready && !was) {
		char *k = kd_xstrdup(name);
		kd_strmap_put(&as->notready, k, k);
	} else if (!notready && was) {
		kd_strmap_del(&as->notready, name);
		free(was);
	}
}

static void node_forget(struct kd_as *as, const char *name)
{
	struct kd_as_node *n = kd_strmap_del(&as->nodes, name);
	if (!n)
		return;
	struct kd_as_chan *ch = chan_find(as, n->addr);
	if (ch && ch->nodes)
		ch->nodes--;
	free(n->name);
	free(n->addr);
	free(n);
	as->scheduler->node_remove(kd_plugin_state(as->scheduler_h), name);
}

/* Node n now publishes the address of `to` (a restarted kd-node on another port): the node and
 * every instance placed on it move to `to`, without touching the scheduler (its reservations
 * stay). Unpersisted live instances are queued as upserts on `to`: its handshake resends them
 * (wanted) if it has not completed yet, the queued upsert (idempotent by key) if it has (its
 * drop of a key still bound to the old channel is undone). Pending ops of the old channel for
 * those instances follow them; the old channel closes when no node uses it. */
static void node_move(struct kd_as *as, struct kd_as_node *n, struct kd_as_chan *to)
{
	struct kd_as_chan *from = chan_find(as, n->addr);
	kd_log_info("chain: node %s moved from %s to %s", n->name, n->addr, to->addr);
	free(n->addr);
	n->addr = kd_xstrdup(to->addr);
	to->nodes++;
	if (from && from->nodes)
		from->nodes--;
	size_t moved = 0, pos = 0;
	struct kd_as_inst *inst;
	while ((inst = kd_strmap_next(&as->insts, &pos))) {
		if (!inst->d.node || strcmp(inst->d.node, n->name) != 0)
			continue;
		if (from) { /* its pending op (upsert or delete) follows it */
			for (size_t i = 0; i < from->pending.n; i++) {
				if (strcmp(from->pending.v[i].key, inst->key) != 0)
					continue;
				kd_as_chan_queue(to, &from->pending.v[i]);
				from->pending.v[i] = from->pending.v[--from->pending.n];
				break;
			}
		}
		inst->chan = to;
		if (inst->observed || inst->deleting)
			continue;
		struct kd_op op;
		memset(&op, 0, sizeof(op));
		kd_autoerr struct kd_error *err = NULL;
		if (kd_instance_to_op(&inst->d, &op, &err) < 0) {
			kd_log_warn("chain: %s: %s", inst->key, kd_error_msg(err));
			continue;
		}
		kd_as_chan_queue(to, &op);
		moved++;
	}
	if (moved)
		kd_log_info("chain: %zu unpersisted instances on %s resent to %s", moved, n->name,
		            to->addr);
	if (from && !from->nodes)
		chan_close(as, from, to);
	chan_flush(to);
}

static void on_node(struct kd_informer *inf, json_object *node, void *arg)
{
	(void)inf;
	struct kd_as *as = arg;
	const char *name = kd_json_get_string(node, "metadata.name");
	if (!name)
		return;
	const char *addr =
	    kd_json_get_string(node, "metadata.annotations.kubedirect\\.dev/channel-addr");
	struct kd_as_node *known = kd_strmap_get(&as->nodes, name);
	if (known && !addr)
		node_forget(as, name);
	if (!addr)
		return;
	struct kd_as_chan *ch = chan_get(as, addr);
	if (!ch)
		return;
	if (known && strcmp(known->addr, addr) != 0)
		node_move(as, known, ch);
	if (!known) {
		struct kd_as_node *n = kd_xcalloc(1, sizeof(*n));
		n->name = kd_xstrdup(name);
		n->addr = kd_xstrdup(addr);
		kd_strmap_put(&as->nodes, n->name, n);
		ch->nodes++;
	}
	struct kd_node_view v;
	kd_autoerr struct kd_error *err = NULL;
	if (kd_node_view_init(&v, node, &err) < 0) {
		kd_log_warn("chain: %s; not given to the scheduler", kd_error_msg(err));
		return;
	}
	/* a NotReady node's instances are not routable (kd_as_inst_routable) */
	bool known_down = kd_strmap_get(&as->notready, name) != NULL;
	notready_set(as, name, !v.info.ready);
	if (v.info.ready == known_down) { /* changed: every revision with instances there */
		size_t pos = 0;
		struct kd_as_inst *inst;
		while ((inst = kd_strmap_next(&as->insts, &pos)))
			if (inst->d.node && strcmp(inst->d.node, name) == 0)
				kd_as_rev_dirty(as, inst->rev);
	}
	if (as->scheduler->node_update(kd_plugin_state(as->scheduler_h), &v.info, &err) < 0)
		kd_log_warn("chain: node %s: %s", name, kd_error_msg(err));
	kd_node_view_fini(&v);
}

static void on_node_delete(struct kd_informer *inf, json_object *node, void *arg)
{
	(void)inf;
	struct kd_as *as = arg;
	const char *name = kd_json_get_string(node, "metadata.name");
	if (!name)
		return;
	node_forget(as, name);
	notready_set(as, name, false);
	/* collect first: removing an instance changes the table */
	size_t n = 0, pos = 0;
	struct kd_as_inst **lost = kd_xcalloc(as->insts.n ? as->insts.n : 1, sizeof(*lost));
	struct kd_as_inst *inst;
	while ((inst = kd_strmap_next(&as->insts, &pos)))
		if (inst->d.node && strcmp(inst->d.node, name) == 0 && !inst->deleting)
			lost[n++] = inst;
	struct kd_as_rev *touched[16] = {0};
	size_t nt = 0;
	for (size_t k = 0; k < n; k++) {
		inst = lost[k];
		kd_log_warn("chain: node %s gone: instance %s lost", name, inst->key);
		struct kd_as_rev *rev = inst->rev;
		if (!inst->observed) {
			kd_as_inst_remove(as, inst);
		} else {
			inst->deleting = true;
			inst->ready = false;
			kd_as_delete_through_api(as, inst, true);
			kd_as_rev_dirty(as, rev);
		}
		bool seen = false;
		for (size_t i = 0; i < nt; i++)
			seen = seen || touched[i] == rev;
		if (rev && !seen && nt < KD_ARRAY_SIZE(touched))
			touched[nt++] = rev;
	}
	free(lost);
	for (size_t i = 0; i < nt; i++)
		kd_as_decide(as, touched[i], "node gone");
}

static void on_nodes_synced(struct kd_informer *inf, void *arg)
{
	(void)inf;
	check_warm(arg);
	kd_as_note_synced(arg);
}

int kd_as_nodes_init(struct kd_as *as, struct kd_error **err)
{
	struct kd_informer_opts io = {.res = &kd_k8s_nodes,
	                              .label_selector = as->cfg.node_selector};
	struct kd_informer_handlers h = {.on_add = on_node,
	                                 .on_update = kd_informer_update_as_add,
	                                 .on_delete = on_node_delete,
	                                 .on_synced = on_nodes_synced,
	                                 .arg = as};
	/* started by kd_as_nodes_start once the PodAutoscalers and Pods are known: a handshake
	 * must see every persisted instance, or it would drop ones that exist */
	return kd_informer_new(as->k8s, &io, &h, &as->node_inf, err);
}

void kd_as_nodes_start(struct kd_as *as)
{
	if (as->node_inf && kd_informer_start(as->node_inf) == 0) {
		kd_log_info("chain: PodAutoscalers and instances known; watching Nodes");
		as->warm_timer = kd_loop_timer_new(as->loop, warm_timeout, as);
		kd_loop_timer_start(as->warm_timer, KD_AS_WARMUP_MS);
	}
}

void kd_as_nodes_stop(struct kd_as *as)
{
	kd_loop_timer_free(as->warm_timer);
	as->warm_timer = NULL;
	kd_informer_free(as->node_inf);
	as->node_inf = NULL;
	size_t pos = 0;
	struct kd_as_chan *ch;
	while ((ch = kd_strmap_next(&as->chans, &pos)))
		chan_free(ch);
	kd_strmap_fini(&as->chans);
	pos = 0;
	struct kd_as_node *n;
	while ((n = kd_strmap_next(&as->nodes, &pos))) {
		free(n->name);
		free(n->addr);
		free(n);
	}
	kd_strmap_fini(&as->nodes);
	pos = 0;
	char *name;
	while ((name = kd_strmap_next(&as->notready, &pos)))
		free(name);
	kd_strmap_fini(&as->notready);
}
