/* autoscaler-shim/chain.c: the direct scale-out chain of kd-autoscaler (see autoscaler.h and the
 * channel contract in kd/instance.h).
 *
 * Decisions made here:
 *  - Only Nodes that publish KD_ANNOT_CHANNEL_ADDR are given to the scheduler plugin; one
 *    kd_chan_up per distinct address, hello.source = --source.
 *  - Ops for one channel are coalesced per key until the next flush (a decision round), so one
 *    delta never names a key twice; a delete replaces a pending upsert of the same key.
 *  - Victims not yet observed in the API are cancelled: a delete op to the node, the scheduler
 *    reservation released and the instance forgotten at once. Victims already persisted get a
 *    delete op (the node stops the sandbox at once) and a graceful DELETE through the API Server
 *    with a uid precondition; they stop counting at once and leave the table when the Pod
 *    informer reports the deletion.
 *  - A status "gone" for an instance never persisted means the node lost it: it is forgotten and
 *    the next decision replaces it.
 *  - A Node whose KD_ANNOT_CHANNEL_ADDR changes (its kd-node restarted on another port) moves,
 *    with every instance placed on it, to the channel of the new address (node_move); the
 *    scheduler keeps its reservations, unpersisted instances are resent there (handshake and a
 *    queued upsert), and the old channel is closed once no Node publishes its address.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "autoscaler.h"
#include "kd/json.h"
#include "kd/log.h"
#include "objects.h"

/* ---- instances ------------------------------------------------------------------------------ */

static void rev_add_inst(struct kd_as_rev *rev, struct kd_as_inst *inst)
{
	if (rev->n_insts == rev->cap_insts) {
		rev->cap_insts = rev->cap_insts ? rev->cap_insts * 2 : 16;
		rev->insts = kd_xrealloc(rev->insts, rev->cap_insts * sizeof(*rev->insts));
	}
	rev->insts[rev->n_insts++] = inst;
	inst->rev = rev;
}

static void rev_del_inst(struct kd_as_rev *rev, struct kd_as_inst *inst)
{
	for (size_t i = 0; i < rev->n_insts; i++)
		if (rev->insts[i] == inst) {
			rev->insts[i] = rev->insts[--rev->n_insts];
			return;
		}
}

bool kd_as_inst_routable(struct kd_as *as, const struct kd_as_inst *inst)
{
	void *v = NULL;
	return inst->ready && inst->ip && !inst->deleting &&
	       !(inst->d.node && lh_table_lookup_ex(as->notready, inst->d.node, &v));
}

void kd_as_inst_remove(struct kd_as *as, struct kd_as_inst *inst)
{
	if (as->scheduler)
		as->scheduler->release(kd_plugin_state(as->scheduler_h), inst->key);
	lh_table_delete(as->insts, inst->key);
	if (inst->rev) {
		rev_del_inst(inst->rev, inst);
		kd_as_rev_dirty(as, inst->rev);
	}
	kd_instance_fini(&inst->d);
	free(inst->ip);
	free(inst->status_source);
	free(inst->key);
	free(inst);
}

static struct kd_as_inst *inst_find(struct kd_as *as, const char *key)
{
	void *v = NULL;
	return lh_table_lookup_ex(as->insts, key, &v) ? v : NULL;
}

static struct kd_as_inst *inst_new(struct kd_as *as, struct kd_as_rev *rev,
                                   struct kd_instance_desc *d)
{
	struct kd_as_inst *inst = kd_xcalloc(1, sizeof(*inst));
	inst->d = *d; /* moved */
	kd_instance_init(d);
	inst->key = kd_instance_key(&inst->d);
	inst->created_ms = kd_loop_now_ms(as->loop);
	lh_table_insert(as->insts, inst->key, inst);
	rev_add_inst(rev, inst);
	return inst;
}

/* ---- channels ------------------------------------------------------------------------------- */

static struct kd_as_chan *chan_find(struct kd_as *as, const char *addr)
{
	void *v = NULL;
	return addr && lh_table_lookup_ex(as->chans, addr, &v) ? v : NULL;
}

static struct kd_as_chan *chan_for_node(struct kd_as *as, const char *node)
{
	void *addr = NULL;
	if (!node || !lh_table_lookup_ex(as->node_addr, node, &addr))
		return NULL;
	return chan_find(as, addr);
}

/* Queues op (moved) on ch, replacing a pending op of the same key. */
static void chan_queue(struct kd_as_chan *ch, struct kd_op *op)
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
	struct lh_entry *e;
	lh_foreach(as->chans, e)
	{
		chan_flush((struct kd_as_chan *)lh_entry_v(e));
	}
}

static int chan_wanted(void *ud, struct kd_op_list *out, struct kd_error **err)
{
	struct kd_as_chan *ch = ud;
	struct lh_entry *e;
	lh_foreach(ch->as->insts, e)
	{
		struct kd_as_inst *inst = (struct kd_as_inst *)lh_entry_v(e);
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
	struct kd_as_inst *inst = inst_find(ch->as, key);
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

/* Warm: every channel known after the Node informer synced has completed a handshake (or
 * KD_AS_WARMUP_MS passed). Until then no decision is applied: the handshakes first cancel what
 * a previous incarnation left in flight, then decisions create what is missing (no over-scaling
 * after a restart). */
#define KD_AS_WARMUP_MS 5000

static void check_warm(struct kd_as *as)
{
	if (as->warm || !as->node_inf || !kd_informer_synced(as->node_inf))
		return;
	struct lh_entry *e;
	lh_foreach(as->chans, e)
	{
		struct kd_as_chan *ch = (struct kd_as_chan *)lh_entry_v(e);
		if (!ch->was_ready)
			return;
	}
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
	lh_table_insert(as->chans, ch->addr, ch);
	kd_log_info("chain: instance channel to %s", addr);
	return ch;
}

static void delete_through_api(struct kd_as *as, struct kd_as_inst *inst, bool force);
static void on_nodes_synced(struct kd_informer *inf, void *arg);

/* ---- scheduling constraints from JSON (strings borrowed from the JSON) ---------------------- */

struct constraints {
	struct kd_label *labels;
	size_t n_labels;
	struct kd_taint *taints;
	size_t n_taints;
	struct kd_toleration *tols;
	size_t n_tols;
};

static void constraints_fini(struct constraints *c)
{
	free(c->labels);
	free(c->taints);
	free(c->tols);
	memset(c, 0, sizeof(*c));
}

static enum kd_taint_effect effect_of(const char *e)
{
	if (!e || !*e)
		return KD_TAINT_ANY;
	if (strcmp(e, "NoSchedule") == 0)
		return KD_TAINT_NO_SCHEDULE;
	if (strcmp(e, "PreferNoSchedule") == 0)
		return KD_TAINT_PREFER_NO_SCHEDULE;
	if (strcmp(e, "NoExecute") == 0)
		return KD_TAINT_NO_EXECUTE;
	return KD_TAINT_ANY;
}

/* A string map (labels, nodeSelector) as kd_label entries. */
static void labels_of(json_object *map, struct kd_label **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!map || !json_object_is_type(map, json_type_object))
		return;
	*out = kd_xcalloc((size_t)json_object_object_length(map) + 1, sizeof(**out));
	json_object_object_foreach(map, k, v)
	{
		if (!json_object_is_type(v, json_type_string))
			continue;
		(*out)[*n].key = k;
		(*out)[(*n)++].value = json_object_get_string(v);
	}
}

static void node_constraints(json_object *node, struct constraints *c)
{
	memset(c, 0, sizeof(*c));
	labels_of(kd_json_get_object(node, "metadata.labels"), &c->labels, &c->n_labels);
	json_object *taints = kd_json_get_array(node, "spec.taints");
	size_t n = taints ? json_object_array_length(taints) : 0;
	c->taints = kd_xcalloc(n + 1, sizeof(*c->taints));
	for (size_t i = 0; i < n; i++) {
		json_object *t = json_object_array_get_idx(taints, i);
		const char *key = kd_json_get_string(t, "key");
		if (!key)
			continue;
		c->taints[c->n_taints].key = key;
		c->taints[c->n_taints].value = kd_json_get_string(t, "value");
		c->taints[c->n_taints++].effect = effect_of(kd_json_get_string(t, "effect"));
	}
}

static void pod_constraints(json_object *deploy, struct constraints *c)
{
	memset(c, 0, sizeof(*c));
	labels_of(kd_json_get_object(deploy, "spec.template.spec.nodeSelector"), &c->labels,
	          &c->n_labels);
	json_object *tols = kd_json_get_array(deploy, "spec.template.spec.tolerations");
	size_t n = tols ? json_object_array_length(tols) : 0;
	c->tols = kd_xcalloc(n + 1, sizeof(*c->tols));
	for (size_t i = 0; i < n; i++) {
		json_object *t = json_object_array_get_idx(tols, i);
		const char *op = kd_json_get_string(t, "operator");
		struct kd_toleration *o = &c->tols[c->n_tols++];
		o->key = kd_json_get_string(t, "key");
		o->op =
		    op && strcmp(op, "Exists") == 0 ? KD_TOLERATION_EXISTS : KD_TOLERATION_EQUAL;
		o->value = kd_json_get_string(t, "value");
		o->effect = effect_of(kd_json_get_string(t, "effect"));
	}
}

/* ---- nodes ---------------------------------------------------------------------------------- */

static bool node_ready(json_object *node)
{
	json_object *conds = kd_json_get_array(node, "status.conditions");
	for (size_t i = 0; conds && i < json_object_array_length(conds); i++) {
		json_object *c = json_object_array_get_idx(conds, i);
		const char *t = kd_json_get_string(c, "type");
		const char *s = kd_json_get_string(c, "status");
		if (t && s && strcmp(t, "Ready") == 0)
			return strcmp(s, "True") == 0;
	}
	return false;
}

static void node_forget(struct kd_as *as, const char *name)
{
	void *addr = NULL;
	if (!lh_table_lookup_ex(as->node_addr, name, &addr))
		return;
	struct lh_entry *e = lh_table_lookup_entry(as->node_addr, name);
	char *k = e ? (char *)lh_entry_k(e) : NULL;
	struct kd_as_chan *ch = chan_find(as, addr);
	if (ch && ch->nodes)
		ch->nodes--;
	lh_table_delete(as->node_addr, name);
	free(k);
	free(addr);
	as->scheduler->node_remove(kd_plugin_state(as->scheduler_h), name);
}

/* Closes ch (no node publishes its address any more): its pending ops go to `to` (may be NULL:
 * dropped; the handshake of the instances' channel recomputes what is missing) and every
 * instance still naming it is detached (deleted Nodes' instances keep no dangling pointer). */
static void chan_close(struct kd_as *as, struct kd_as_chan *ch, struct kd_as_chan *to)
{
	for (size_t i = 0; to && i < ch->pending.n; i++)
		chan_queue(to, &ch->pending.v[i]);
	struct lh_entry *e;
	lh_foreach(as->insts, e)
	{
		struct kd_as_inst *inst = (struct kd_as_inst *)lh_entry_v(e);
		if (inst->chan == ch)
			inst->chan = to;
	}
	kd_log_info("chain: instance channel to %s closed (no node publishes it)", ch->addr);
	lh_table_delete(as->chans, ch->addr);
	kd_chan_up_free(ch->up);
	kd_op_list_fini(&ch->pending);
	free(ch->addr);
	free(ch);
}

/* Node `name` now publishes the address of `to` (a restarted kd-node on another port): the node
 * and every instance placed on it move to `to`, without touching the scheduler (its
 * reservations stay). Unpersisted live instances are queued as upserts on `to`: its handshake
 * resends them (wanted) if it has not completed yet, the queued upsert (idempotent by key) if it
 * has (its drop of a key still bound to the old channel is undone). Pending ops of the old
 * channel for those instances follow them; the old channel closes when no node uses it. */
static void node_move(struct kd_as *as, const char *name, struct kd_as_chan *to)
{
	struct lh_entry *ne = lh_table_lookup_entry(as->node_addr, name);
	if (!ne)
		return;
	char *old_addr = (char *)lh_entry_v(ne);
	struct kd_as_chan *from = chan_find(as, old_addr);
	kd_log_info("chain: node %s moved from %s to %s", name, old_addr, to->addr);
	lh_entry_set_val(ne, kd_xstrdup(to->addr));
	free(old_addr);
	to->nodes++;
	if (from && from->nodes)
		from->nodes--;
	size_t moved = 0;
	struct lh_entry *e;
	lh_foreach(as->insts, e)
	{
		struct kd_as_inst *inst = (struct kd_as_inst *)lh_entry_v(e);
		if (!inst->d.node || strcmp(inst->d.node, name) != 0)
			continue;
		if (from) { /* its pending op (upsert or delete) follows it */
			for (size_t i = 0; i < from->pending.n; i++) {
				if (strcmp(from->pending.v[i].key, inst->key) != 0)
					continue;
				chan_queue(to, &from->pending.v[i]);
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
		chan_queue(to, &op);
		moved++;
	}
	if (moved)
		kd_log_info("chain: %zu unpersisted instances on %s resent to %s", moved, name,
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
	void *cur = NULL;
	bool known = lh_table_lookup_ex(as->node_addr, name, &cur);
	if (known && !addr)
		node_forget(as, name);
	if (!addr)
		return;
	struct kd_as_chan *ch = chan_get(as, addr);
	if (!ch)
		return;
	if (known && strcmp(cur, addr) != 0)
		node_move(as, name, ch);
	if (!lh_table_lookup_ex(as->node_addr, name, &cur)) {
		lh_table_insert(as->node_addr, kd_xstrdup(name), kd_xstrdup(addr));
		ch->nodes++;
	}
	struct kd_node_info info = {.name = name};
	info.ready = node_ready(node);
	/* a NotReady node's instances are not routable (kd_as_inst_routable) */
	void *was = NULL;
	bool known_down = lh_table_lookup_ex(as->notready, name, &was);
	if (!info.ready && !known_down) {
		char *k = kd_xstrdup(name);
		lh_table_insert(as->notready, k, k);
	} else if (info.ready && known_down) {
		lh_table_delete(as->notready, name);
		free(was);
	}
	if (info.ready == known_down) { /* changed: every revision with instances there */
		struct lh_entry *e;
		lh_foreach(as->insts, e)
		{
			struct kd_as_inst *inst = (struct kd_as_inst *)lh_entry_v(e);
			if (inst->d.node && strcmp(inst->d.node, name) == 0)
				kd_as_rev_dirty(as, inst->rev);
		}
	}
	bool unsched = false;
	(void)kd_json_get_bool(node, "spec.unschedulable", &unsched);
	info.schedulable = !unsched;
	json_object *alloc = kd_json_get_object(node, "status.allocatable");
	(void)kd_as_parse_cpu_milli(kd_json_get_string(alloc, "cpu"), &info.allocatable.cpu_milli);
	(void)kd_as_parse_bytes(kd_json_get_string(alloc, "memory"),
	                        &info.allocatable.memory_bytes);
	int64_t pods = 0;
	if (kd_as_parse_bytes(kd_json_get_string(alloc, "pods"), &pods) == 0)
		info.allocatable.pods = pods;
	info.pod_cidr = kd_json_get_string(node, "spec.podCIDR");
	struct constraints c;
	node_constraints(node, &c);
	info.labels = c.labels;
	info.n_labels = c.n_labels;
	info.taints = c.taints;
	info.n_taints = c.n_taints;
	kd_autoerr struct kd_error *err = NULL;
	if (as->scheduler->node_update(kd_plugin_state(as->scheduler_h), &info, &err) < 0)
		kd_log_warn("chain: node %s: %s", name, kd_error_msg(err));
	constraints_fini(&c);
}

static void on_node_update(struct kd_informer *inf, json_object *old, json_object *node, void *arg)
{
	(void)old;
	on_node(inf, node, arg);
}

static void on_node_delete(struct kd_informer *inf, json_object *node, void *arg)
{
	(void)inf;
	struct kd_as *as = arg;
	const char *name = kd_json_get_string(node, "metadata.name");
	if (!name)
		return;
	node_forget(as, name);
	void *was = NULL;
	if (lh_table_lookup_ex(as->notready, name, &was)) {
		lh_table_delete(as->notready, name);
		free(was);
	}
	/* instances on a vanished node are lost: unwritten ones are forgotten, persisted ones stop
	 * counting and their Pods are deleted (grace 0, as pod GC would, only sooner); then a
	 * decision replaces them on the remaining nodes */
	struct kd_as_rev *touched[16] = {0};
	size_t nt = 0;
	struct lh_entry *e, *tmp;
	lh_foreach_safe(as->insts, e, tmp)
	{
		struct kd_as_inst *inst = (struct kd_as_inst *)lh_entry_v(e);
		if (!inst->d.node || strcmp(inst->d.node, name) != 0 || inst->deleting)
			continue;
		kd_log_warn("chain: node %s gone: instance %s lost", name, inst->key);
		struct kd_as_rev *rev = inst->rev;
		if (!inst->observed) {
			kd_as_inst_remove(as, inst);
		} else {
			inst->deleting = true;
			inst->ready = false;
			delete_through_api(as, inst, true);
			kd_as_rev_dirty(as, rev);
		}
		bool seen = false;
		for (size_t i = 0; i < nt; i++)
			seen = seen || touched[i] == rev;
		if (rev && !seen && nt < KD_ARRAY_SIZE(touched))
			touched[nt++] = rev;
	}
	for (size_t i = 0; i < nt; i++)
		kd_as_decide(as, touched[i], "node gone");
}

/* ---- apply a decision ----------------------------------------------------------------------- */

static void delete_through_api_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	(void)resp;
	char *key = arg;
	if (err && err->http_status != 404 && err->http_status != 409)
		kd_log_warn("chain: delete pod %s: %s", key, kd_error_msg(err));
	free(key);
}

static void delete_through_api(struct kd_as *as, struct kd_as_inst *inst, bool force)
{
	json_object *body = json_object_new_object();
	if (force) /* its node is gone: nothing can terminate it gracefully (as pod GC does) */
		json_object_object_add(body, "gracePeriodSeconds", json_object_new_int(0));
	kd_autojson json_object *pod = NULL;
	json_object *cached = kd_informer_get(as->pod_inf, inst->d.ns, inst->d.name);
	const char *uid = kd_json_get_string(cached, "metadata.uid");
	if (uid) {
		json_object *pre = json_object_new_object();
		json_object_object_add(pre, "uid", json_object_new_string(uid));
		json_object_object_add(body, "preconditions", pre);
	}
	struct kd_k8s_request req = {.verb = KD_K8S_DELETE,
	                             .res = &kd_k8s_pods,
	                             .ns = inst->d.ns,
	                             .name = inst->d.name,
	                             .body = body};
	kd_autoerr struct kd_error *err = NULL;
	char *key = kd_xstrdup(inst->key);
	if (kd_k8s_submit(as->k8s_w, &req, delete_through_api_done, key, &err) < 0) {
		kd_log_warn("chain: delete pod %s: %s", key, kd_error_msg(err));
		free(key);
	}
	json_object_put(body);
	(void)pod;
}

static void send_delete(struct kd_as_inst *inst, const char *reason)
{
	if (!inst->chan)
		return;
	struct kd_op op;
	kd_op_init(&op, KD_OP_DELETE, inst->key);
	kd_op_set_str(&op.reason, reason);
	chan_queue(inst->chan, &op);
}

static int create_one(struct kd_as *as, struct kd_as_rev *rev, const char *name)
{
	struct kd_instance_desc d;
	kd_instance_init(&d);
	d.ns = kd_xstrdup(rev->ns);
	d.name = kd_xstrdup(name);
	d.tmpl_name = kd_xstrdup(kd_json_get_string(rev->deploy, "metadata.name"));
	d.tmpl_uid = kd_xstrdup(kd_json_get_string(rev->deploy, "metadata.uid"));
	d.tmpl_hash = kd_xstrdup(rev->tmpl_hash);
	d.owner_name = kd_xstrdup(rev->name);
	d.owner_uid = kd_xstrdup(rev->pa_uid);
	d.ctime_ms = (int64_t)(kd_wall_ns() / 1000000);
	kd_autofree char *key = kd_instance_key(&d);
	if (inst_find(as, key)) {
		kd_instance_fini(&d);
		return 0; /* the workload plugin never reuses a live name; be safe */
	}
	struct kd_pod_request req = {
	    .key = key,
	    .revision = rev->key,
	    .requests = {.cpu_milli = rev->cpu_milli, .memory_bytes = rev->mem_bytes, .pods = 1}};
	struct constraints c;
	pod_constraints(rev->deploy, &c);
	req.node_selector = c.labels;
	req.n_node_selector = c.n_labels;
	req.tolerations = c.tols;
	req.n_tolerations = c.n_tols;
	char node[KD_NODE_NAME_MAX];
	kd_autoerr struct kd_error *err = NULL;
	int rc = as->scheduler->place(kd_plugin_state(as->scheduler_h), &req, node, &err);
	constraints_fini(&c);
	if (rc < 0) {
		/* "no node fits pod ns/name: why": name the revision, not the (random) pod name,
		 * so the condition and the event stay the same while the cause does */
		const char *msg = kd_error_msg(err);
		const char *at = strstr(msg, key);
		free(rev->sched_error);
		if (at && strncmp(at + strlen(key), ": ", 2) == 0)
			rev->sched_error = kd_xasprintf("no node fits an instance of %s: %s",
			                                rev->key, at + strlen(key) + 2);
		else
			rev->sched_error = kd_xstrdup(msg);
		kd_instance_fini(&d);
		return rc;
	}
	struct kd_as_chan *ch = chan_for_node(as, node);
	if (!ch) {
		as->scheduler->release(kd_plugin_state(as->scheduler_h), key);
		free(rev->sched_error);
		rev->sched_error = kd_xasprintf("node %s has no instance channel", node);
		kd_instance_fini(&d);
		return -ENXIO;
	}
	d.node = kd_xstrdup(node);
	struct kd_op op;
	memset(&op, 0, sizeof(op));
	rc = kd_instance_to_op(&d, &op, &err);
	if (rc < 0) {
		as->scheduler->release(kd_plugin_state(as->scheduler_h), key);
		free(rev->sched_error);
		rev->sched_error = kd_xstrdup(kd_error_msg(err));
		kd_instance_fini(&d);
		return rc;
	}
	struct kd_as_inst *inst = inst_new(as, rev, &d);
	inst->chan = ch;
	chan_queue(ch, &op);
	as->created++;
	return 0;
}

void kd_as_chain_apply(struct kd_as *as, struct kd_as_rev *rev, int32_t desired)
{
	if (!rev->deploy || !rev->pa_uid || !as->warm)
		return; /* the tick applies it later */
	size_t n = rev->n_insts;
	struct kd_instance *cur = kd_xcalloc(n ? n : 1, sizeof(*cur));
	const char **reserved = kd_xcalloc(n ? n : 1, sizeof(*reserved));
	size_t k = 0, nr = 0;
	for (size_t i = 0; i < n; i++) {
		struct kd_as_inst *inst = rev->insts[i];
		if (inst->deleting) {
			reserved[nr++] = inst->d.name;
			continue;
		}
		cur[k].name = inst->d.name;
		cur[k].node = inst->d.node;
		cur[k].state = inst->observed ? KD_INSTANCE_PERSISTED : KD_INSTANCE_EPHEMERAL;
		cur[k].ready = kd_as_inst_routable(as, inst);
		cur[k].created_ms = inst->created_ms;
		k++;
	}
	struct kd_workload_input in = {.revision = rev->key,
	                               .ns = rev->ns,
	                               .base_name = rev->name,
	                               .desired = desired,
	                               .current = cur,
	                               .n_current = k,
	                               .owner = {.api_version = KD_PA_API_VERSION,
	                                         .kind = KD_PA_KIND,
	                                         .name = rev->name,
	                                         .uid = rev->pa_uid},
	                               .template_hash = rev->tmpl_hash,
	                               .reserved = reserved,
	                               .n_reserved = nr};
	struct kd_workload_plan plan;
	memset(&plan, 0, sizeof(plan));
	kd_autoerr struct kd_error *err = NULL;
	int rc = as->workload->plan(kd_plugin_state(as->workload_h), &in, &plan, &err);
	free(cur);
	free(reserved);
	if (rc < 0) {
		kd_log_error("chain: %s: workload plan for %d: %s", rev->key, desired,
		             kd_error_msg(err));
		kd_workload_plan_clear(&plan);
		return;
	}
	bool placed_all = true;
	size_t created = 0;
	for (size_t i = 0; i < plan.create.n; i++) {
		if (create_one(as, rev, plan.create.items[i]) < 0) {
			placed_all = false;
			break;
		}
		created++;
	}
	if (placed_all && plan.create.n) {
		free(rev->sched_error);
		rev->sched_error = NULL;
	} else if (!placed_all && rev->sched_error) {
		kd_log_warn("chain: %s: %s", rev->key, rev->sched_error);
		kd_as_event(as, rev->pa, "Warning", "FailedScheduling", "%s", rev->sched_error);
	}
	for (size_t i = 0; i < plan.victims.n; i++) {
		kd_autofree char *key = kd_xasprintf("%s/%s", rev->ns, plan.victims.items[i]);
		struct kd_as_inst *inst = inst_find(as, key);
		if (!inst || inst->deleting)
			continue;
		send_delete(inst, "ScaleDown");
		if (!inst->observed) {
			as->cancelled++;
			kd_as_inst_remove(as, inst);
		} else {
			inst->deleting = true;
			inst->ready = false;
			as->deleted++;
			/* the node deletes a persisted instance it is told to delete
			 * (kd/instance.h); the API Server delete is the fallback when its channel
			 * is down or the Pod is still there KD_AS_DELETE_FALLBACK_MS later */
			if (inst->chan && inst->chan->up && kd_chan_up_ready(inst->chan->up))
				inst->delete_at =
				    kd_loop_now_ms(as->loop) + KD_AS_DELETE_FALLBACK_MS;
			else
				delete_through_api(as, inst, false);
		}
	}
	if (created || plan.victims.n)
		kd_log_info("chain: %s: desired %d: +%zu -%zu", rev->key, desired, created,
		            plan.victims.n);
	bool changed = created || plan.victims.n || !placed_all;
	kd_workload_plan_clear(&plan);
	kd_as_chain_flush(as);
	if (changed)
		kd_as_rev_dirty(as, rev);
}

void kd_as_chain_sweep(struct kd_as *as)
{
	uint64_t now = kd_loop_now_ms(as->loop);
	struct lh_entry *e;
	lh_foreach(as->insts, e)
	{
		struct kd_as_inst *inst = (struct kd_as_inst *)lh_entry_v(e);
		if (inst->deleting && inst->delete_at && now >= inst->delete_at) {
			inst->delete_at = 0;
			kd_log_info(
			    "chain: %s still in the API after its delete op; deleting it there",
			    inst->key);
			delete_through_api(as, inst, false);
		}
	}
}

void kd_as_chain_forget_rev(struct kd_as *as, struct kd_as_rev *rev)
{
	while (rev->n_insts) {
		struct kd_as_inst *inst = rev->insts[rev->n_insts - 1];
		if (!inst->observed)
			send_delete(inst, "RevisionDeleted");
		inst->rev = NULL;
		rev->n_insts--;
		kd_as_inst_remove(as, inst);
	}
	kd_as_chain_flush(as);
}

/* ---- pods seen through the API -------------------------------------------------------------- */

static bool pod_ready(json_object *pod)
{
	json_object *conds = kd_json_get_array(pod, "status.conditions");
	for (size_t i = 0; conds && i < json_object_array_length(conds); i++) {
		json_object *c = json_object_array_get_idx(conds, i);
		const char *t = kd_json_get_string(c, "type");
		const char *s = kd_json_get_string(c, "status");
		if (t && s && strcmp(t, "Ready") == 0)
			return strcmp(s, "True") == 0;
	}
	return false;
}

struct kd_as_inst *kd_as_inst_observe(struct kd_as *as, json_object *pod)
{
	kd_autofree char *key = kd_informer_key(pod);
	if (!key)
		return NULL;
	struct kd_as_inst *inst = inst_find(as, key);
	if (!inst) {
		struct kd_instance_desc d;
		if (kd_instance_from_pod(pod, &d, NULL) < 0)
			return NULL;
		struct kd_as_rev *rev = kd_as_rev_find(as, d.ns, d.owner_name);
		if (!rev || !rev->pa_uid || strcmp(rev->pa_uid, d.owner_uid) != 0) {
			kd_instance_fini(&d);
			return NULL;
		}
		inst = inst_new(as, rev, &d);
		inst->chan = chan_for_node(as, inst->d.node);
		kd_log_info("chain: adopted %s on %s", inst->key, inst->d.node);
	}
	if (!inst->observed && inst->d.node) {
		struct kd_pod_request req = {.key = inst->key,
		                             .revision = inst->rev ? inst->rev->key : NULL,
		                             .requests = {.pods = 1}};
		if (inst->rev) {
			req.requests.cpu_milli = inst->rev->cpu_milli;
			req.requests.memory_bytes = inst->rev->mem_bytes;
		}
		as->scheduler->pod_bound(kd_plugin_state(as->scheduler_h), &req, inst->d.node);
	}
	inst->observed = true;
	if (kd_json_get(pod, "metadata.deletionTimestamp") && !inst->deleting) {
		inst->deleting = true;
		inst->ready = false;
	}
	if (!inst->status_source && !inst->deleting) {
		bool r = pod_ready(pod);
		const char *ip = kd_json_get_string(pod, "status.podIP");
		if (r != inst->ready || (ip && (!inst->ip || strcmp(ip, inst->ip) != 0))) {
			inst->ready = r && ip;
			free(inst->ip);
			inst->ip = ip ? kd_xstrdup(ip) : NULL;
		}
	}
	if (inst->rev)
		kd_as_rev_dirty(as, inst->rev);
	return inst;
}

/* ---- status channel (kd-node -> us) --------------------------------------------------------- */

static int st_held(void *ud, const char *source, struct kd_op_list *held, struct kd_error **err)
{
	(void)err;
	struct kd_as *as = ud;
	struct lh_entry *e;
	lh_foreach(as->insts, e)
	{
		struct kd_as_inst *inst = (struct kd_as_inst *)lh_entry_v(e);
		if (inst->status_source && strcmp(inst->status_source, source) == 0)
			kd_instance_status_held_op(inst->key, kd_op_list_push(held));
	}
	return 0;
}

static int st_apply(void *ud, const char *source, uint64_t epoch, const struct kd_op *op,
                    struct kd_error **err)
{
	(void)epoch;
	struct kd_as *as = ud;
	struct kd_instance_status st;
	int rc = kd_instance_status_from_op(op, &st, err);
	if (rc < 0)
		return rc;
	struct kd_as_inst *inst = inst_find(as, op->key);
	if (!inst) {
		kd_instance_status_fini(&st);
		return 0; /* not (or no longer) ours: nothing to count */
	}
	if (st.gone) {
		free(inst->status_source);
		inst->status_source = NULL;
		inst->ready = false;
		if (!inst->observed && !inst->deleting) {
			kd_log_warn("chain: %s gone from its node before write-back (%s)",
			            inst->key, st.reason ? st.reason : "no reason");
			struct kd_as_rev *rev = inst->rev;
			kd_as_inst_remove(as, inst);
			if (rev)
				kd_as_decide(as, rev, "instance lost");
		}
	} else {
		bool was = inst->ready;
		free(inst->status_source);
		inst->status_source = kd_xstrdup(source);
		inst->ready = st.ready && st.ip && !inst->deleting;
		if (st.ip) {
			free(inst->ip);
			inst->ip = kd_xstrdup(st.ip);
		}
		if (inst->rev && inst->ready != was)
			kd_as_rev_dirty(as, inst->rev);
	}
	kd_instance_status_fini(&st);
	return 0;
}

static int st_drop(void *ud, const char *source, const char *key, struct kd_error **err)
{
	(void)err;
	struct kd_as *as = ud;
	struct kd_as_inst *inst = inst_find(as, key);
	if (inst && inst->status_source && strcmp(inst->status_source, source) == 0) {
		free(inst->status_source);
		inst->status_source = NULL;
		inst->ready = false;
		if (inst->rev)
			kd_as_rev_dirty(as, inst->rev);
	}
	return 0;
}

int kd_as_chain_start(struct kd_as *as, struct kd_error **err)
{
	as->insts = lh_kchar_table_new(1024, NULL);
	as->chans = lh_kchar_table_new(64, NULL);
	as->node_addr = lh_kchar_table_new(64, NULL);
	as->notready = lh_kchar_table_new(64, NULL);
	struct kd_chan_down_opts o = {.bind = as->cfg.status_bind,
	                              .port = (int)as->cfg.status_port};
	o.t.token = as->cfg.chan_token && *as->cfg.chan_token ? as->cfg.chan_token : NULL;
	struct kd_hs_down_cbs cbs = {.held = st_held, .apply = st_apply, .drop = st_drop};
	as->status_down = kd_chan_down_new(as->loop, &o, &cbs, as, err);
	if (!as->status_down)
		return kd_error_wrap(err, "status channel");
	kd_log_info("chain: status channel on %s:%d", as->cfg.status_bind,
	            kd_chan_down_port(as->status_down));
	struct kd_informer_opts io = {.res = &kd_k8s_nodes,
	                              .label_selector = as->cfg.node_selector};
	struct kd_informer_handlers h = {.on_add = on_node,
	                                 .on_update = on_node_update,
	                                 .on_delete = on_node_delete,
	                                 .on_synced = on_nodes_synced,
	                                 .arg = as};
	/* started by kd_as_chain_nodes_start once the PodAutoscalers and Pods are known: a
	 * handshake must see every persisted instance, or it would drop ones that exist */
	return kd_informer_new(as->k8s, &io, &h, &as->node_inf, err);
}

static void on_nodes_synced(struct kd_informer *inf, void *arg)
{
	(void)inf;
	check_warm(arg);
}

void kd_as_chain_nodes_start(struct kd_as *as)
{
	if (as->node_inf && kd_informer_start(as->node_inf) == 0) {
		kd_log_info("chain: PodAutoscalers and instances known; watching Nodes");
		as->warm_timer = kd_loop_timer_new(as->loop, warm_timeout, as);
		kd_loop_timer_start(as->warm_timer, KD_AS_WARMUP_MS);
	}
}

void kd_as_chain_stop(struct kd_as *as)
{
	kd_loop_timer_free(as->warm_timer);
	as->warm_timer = NULL;
	kd_informer_free(as->node_inf);
	as->node_inf = NULL;
	kd_chan_down_free(as->status_down);
	as->status_down = NULL;
	if (as->insts) {
		struct lh_entry *e, *tmp;
		lh_foreach_safe(as->insts, e, tmp)
		{
			struct kd_as_inst *inst = (struct kd_as_inst *)lh_entry_v(e);
			if (inst->rev)
				rev_del_inst(inst->rev, inst);
			inst->rev = NULL;
			kd_as_inst_remove(as, inst);
		}
		lh_table_free(as->insts);
		as->insts = NULL;
	}
	if (as->chans) {
		struct lh_entry *e;
		lh_foreach(as->chans, e)
		{
			struct kd_as_chan *ch = (struct kd_as_chan *)lh_entry_v(e);
			kd_chan_up_free(ch->up);
			kd_op_list_fini(&ch->pending);
			free(ch->addr);
			free(ch);
		}
		lh_table_free(as->chans);
		as->chans = NULL;
	}
	if (as->node_addr) {
		struct lh_entry *e;
		lh_foreach(as->node_addr, e)
		{
			free(lh_entry_k(e));
			free(lh_entry_v(e));
		}
		lh_table_free(as->node_addr);
		as->node_addr = NULL;
	}
	if (as->notready) {
		struct lh_entry *e;
		lh_foreach(as->notready, e)
		{
			free(lh_entry_k(e));
		}
		lh_table_free(as->notready);
		as->notready = NULL;
	}
}
