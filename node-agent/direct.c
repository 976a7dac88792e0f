/* node-agent/direct.c: kd-node's direct mode: instance channel server, template informer,
 * write-back of instance Pods, status channel to kd-autoscaler. See direct.h for the decisions. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "direct.h"
#include "kd/chan.h"
#include "kd/instance.h"
#include "kd/json.h"
#include "kd/log.h"
#include "kd/strmap.h"
#include "kd/wbcache.h"
#include "kd/wbk8s.h"

#define REVISION_SELECTOR "serving.knative.dev/revision"
#define PENDING_RETRY_MS  100

/* Last status reported upstream for one instance. */
struct dstatus {
	char *key; /* its key in kd_direct.status */
	char *node;
	bool ready;
	char *ip;
	char *reason;
	char *revision;
};

/* One status channel (kd-node upstream) and the ops not yet handed to it. */
struct stup {
	struct kd_direct *d;
	char *addr;
	struct kd_chan_up *up;
	struct kd_op_list pending;
};

/* An upsert waiting for the informers. */
struct dpending {
	char *key; /* its key in kd_direct.pending (op.key changes when the op is replaced) */
	struct kd_op op;
	uint64_t deadline_ms; /* loop ms */
};

/* A cancelled instance whose create may still land. */
struct dtomb {
	char *key;
	uint64_t expiry_ms; /* loop ms */
};

/* The upstream that sent an unpersisted direct instance. */
struct dsrc {
	char *key;
	char *source;
};

struct kd_direct {
	struct kd_node_agent *a;
	struct kd_k8s *k8s_wb; /* write-back client (own rate limit) */
	struct kd_chan_down *down;
	struct kd_informer *deploy_inf;
	struct kd_wbk8s *wbk8s;
	struct kd_wb_writer wb_inner; /* kd_wbk8s's writer, behind wb_write */
	json_object *delete_opts;
	struct kd_wb *wb;

	struct stup *stups; /* one status channel per --status-addr entry */
	size_t n_stups;
	char *status_source;
	struct kd_strmap status; /* key -> struct dstatus * (owned) */
	struct kd_timer *st_timer;

	struct kd_strmap pending; /* key -> struct dpending * (owned) */
	struct kd_timer *pending_timer;
	struct kd_strmap tombs; /* key -> struct dtomb * (owned) */
	struct kd_strmap srcs;  /* key -> struct dsrc * (owned) */

	uint64_t n_ops, n_started, n_dups, n_waits, n_refused, n_cancelled, n_deleted, n_wb_failed,
	    n_status_sent, n_timeouts;
};

static struct kd_direct *D(struct kd_node_agent *a)
{
	return a ? a->direct : NULL;
}

/* ---- tables --------------------------------------------------------------------------------- */

static void dstatus_free(struct dstatus *s)
{
	free(s->key);
	free(s->node);
	free(s->ip);
	free(s->reason);
	free(s->revision);
	free(s);
}

static void dpending_free(struct dpending *p)
{
	free(p->key);
	kd_op_fini(&p->op);
	free(p);
}

static void dtomb_free(struct dtomb *t)
{
	free(t->key);
	free(t);
}

static void dsrc_free(struct dsrc *x)
{
	free(x->key);
	free(x->source);
	free(x);
}

/* Remove key from a table and free its entry; nothing if absent. */
static void status_del(struct kd_direct *d, const char *key)
{
	struct dstatus *s = kd_strmap_del(&d->status, key);
	if (s)
		dstatus_free(s);
}

static void pending_del(struct kd_direct *d, const char *key)
{
	struct dpending *p = kd_strmap_del(&d->pending, key);
	if (p)
		dpending_free(p);
}

static void tomb_del(struct kd_direct *d, const char *key)
{
	struct dtomb *t = kd_strmap_del(&d->tombs, key);
	if (t)
		dtomb_free(t);
}

static void src_del(struct kd_direct *d, const char *key)
{
	struct dsrc *x = kd_strmap_del(&d->srcs, key);
	if (x)
		dsrc_free(x);
}

static bool str_eq(const char *x, const char *y)
{
	return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

static void tomb_add(struct kd_direct *d, const char *key)
{
	uint64_t now = kd_loop_now_ms(d->a->loop);
	if (d->tombs.n >= 256) { /* sweep expired tombstones now and then */
		struct kd_key_list expired;
		memset(&expired, 0, sizeof(expired));
		size_t pos = 0;
		for (const struct dtomb *t; (t = kd_strmap_next(&d->tombs, &pos));)
			if (t->expiry_ms <= now)
				kd_key_list_push(&expired, t->key);
		for (size_t i = 0; i < expired.n; i++) /* not while iterating */
			tomb_del(d, expired.v[i]);
		kd_key_list_fini(&expired);
	}
	struct dtomb *t = kd_strmap_get(&d->tombs, key);
	if (!t) {
		t = kd_xcalloc(1, sizeof(*t));
		t->key = kd_xstrdup(key);
		kd_strmap_put(&d->tombs, t->key, t);
	}
	t->expiry_ms = now + KD_DIRECT_TOMB_MS;
}

static bool tomb_has(struct kd_direct *d, const char *key)
{
	const struct dtomb *t = kd_strmap_get(&d->tombs, key);
	if (!t)
		return false;
	if (t->expiry_ms > kd_loop_now_ms(d->a->loop))
		return true;
	tomb_del(d, key);
	return false;
}

/* ---- status channel (we are upstream) ------------------------------------------------------- */

static void st_flush(struct stup *u)
{
	if (!u->pending.n || !u->up)
		return;
	kd_autoerr struct kd_error *err = NULL;
	size_t n = u->pending.n;
	int rc = kd_chan_up_send(u->up, &u->pending, NULL, &err);
	if (rc == -EAGAIN)
		return; /* writable callback flushes again */
	if (rc < 0) {
		kd_log_warn("direct: status channel %s: %s (%zu status ops dropped; the next "
		            "handshake resends every live status)",
		            u->addr, kd_error_msg(err), n);
		kd_op_list_fini(&u->pending);
		return;
	}
	u->d->n_status_sent += n;
}

static void on_st_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	struct kd_direct *d = arg;
	for (size_t i = 0; i < d->n_stups; i++)
		st_flush(&d->stups[i]);
}

static void st_queue(struct kd_direct *d, const char *key, const char *node, bool ready,
                     const char *ip, const char *reason, const char *revision, bool gone)
{
	struct kd_op op;
	memset(&op, 0, sizeof(op));
	kd_autoerr struct kd_error *err = NULL;
	if (kd_node_direct_status_op(key, node, ready, ip, reason, revision, gone, &op, &err) < 0) {
		kd_log_warn("direct: status of %s: %s", key, kd_error_msg(err));
		return;
	}
	for (size_t i = 0; i < d->n_stups; i++)
		kd_op_copy(kd_op_list_push(&d->stups[i].pending), &op);
	kd_op_fini(&op);
	if (!kd_loop_timer_pending(d->st_timer))
		kd_loop_timer_start(d->st_timer, KD_DIRECT_STATUS_FLUSH_MS);
}

static int st_wanted(void *ud, struct kd_op_list *out, struct kd_error **err)
{
	struct kd_direct *d = ((struct stup *)ud)->d;
	size_t pos = 0;
	for (const struct dstatus *s; (s = kd_strmap_next(&d->status, &pos));) {
		struct kd_op op;
		memset(&op, 0, sizeof(op));
		if (kd_node_direct_status_op(s->key, s->node, s->ready, s->ip, s->reason,
		                             s->revision, false, &op, err) < 0)
			return -EINVAL;
		*kd_op_list_push(out) = op;
	}
	return 0;
}

static bool st_persisted(void *ud, const char *key)
{
	(void)ud;
	(void)key;
	return false; /* kd/instance.h: every live status is resent on each handshake */
}

static void st_ready(void *ud, uint64_t epoch)
{
	struct stup *u = ud;
	kd_log_info("direct: status channel %s ready (epoch %llu, %zu live statuses)", u->addr,
	            (unsigned long long)epoch, u->d->status.n);
	st_flush(u);
}

static void st_down(void *ud, const char *reason)
{
	(void)ud;
	kd_log_debug("direct: status channel down: %s", reason);
}

static void st_writable(void *ud)
{
	st_flush(ud);
}

void kd_node_direct_report(struct kd_node_agent *a, const char *key, const char *node, bool ready,
                           const char *ip, const char *reason, const char *revision)
{
	struct kd_direct *d = D(a);
	if (!d || a->stopping)
		return;
	struct dstatus *s = kd_strmap_get(&d->status, key);
	if (s && str_eq(s->node, node) && s->ready == ready && str_eq(s->ip, ip) &&
	    str_eq(s->reason, reason) && str_eq(s->revision, revision))
		return;
	if (!s) {
		s = kd_xcalloc(1, sizeof(*s));
		s->key = kd_xstrdup(key);
		kd_strmap_put(&d->status, s->key, s);
	}
	free(s->node);
	free(s->ip);
	free(s->reason);
	free(s->revision);
	s->node = node ? kd_xstrdup(node) : NULL;
	s->revision = revision ? kd_xstrdup(revision) : NULL;
	s->ready = ready;
	s->ip = ip ? kd_xstrdup(ip) : NULL;
	s->reason = reason ? kd_xstrdup(reason) : NULL;
	st_queue(d, key, node, ready, ip, reason, revision, false);
}

void kd_node_direct_report_gone(struct kd_node_agent *a, const char *key, const char *reason)
{
	struct kd_direct *d = D(a);
	if (!d || a->stopping || !kd_strmap_get(&d->status, key))
		return;
	status_del(d, key);
	st_queue(d, key, NULL, false, NULL, reason, NULL, true);
}

/* The instance is lost before it was ever reported (or reported): tell the autoscaler, which
 * forgets a never-persisted instance and replaces it. */
static void report_lost(struct kd_direct *d, const char *key, const char *reason)
{
	status_del(d, key);
	st_queue(d, key, NULL, false, NULL, reason, NULL, true);
}

/* ---- write-back ----------------------------------------------------------------------------- */

/* The cache's writer: kd_wbk8s, except that with a runtime owning the Pod
 * (KD_RUNTIME_CAP_OWNS_POD) the runtime creates and deletes it: a create or delete is then done
 * at once without a request, and the entry waits to be observed as for a create of ours. */
static int wb_write(void *ctx, const char *key, enum kd_wb_op op, json_object *obj,
                    json_object *base, kd_wb_done_cb done, void *done_arg)
{
	struct kd_direct *d = ctx;
	if (d->a->rt_owns_pod && (op == KD_WB_OP_CREATE || op == KD_WB_OP_DELETE)) {
		done(done_arg, KD_WB_OK, NULL);
		return 0;
	}
	return d->wb_inner.write(d->wb_inner.ctx, key, op, obj, base, done, done_arg);
}

static int wb_reread(void *ctx, const char *key, kd_wb_reread_cb cb, void *cb_arg)
{
	struct kd_direct *d = ctx;
	return d->wb_inner.reread(d->wb_inner.ctx, key, cb, cb_arg);
}

static void wb_flush(void *ctx)
{
	struct kd_direct *d = ctx;
	if (d->wb_inner.flush)
		d->wb_inner.flush(d->wb_inner.ctx);
}

static void wb_failed(void *ctx, const char *key, enum kd_wb_op op, const struct kd_error *err)
{
	struct kd_direct *d = ctx;
	d->n_wb_failed++;
	kd_log_warn("direct: write-back %s of pod %s failed: %s", kd_wb_op_name(op), key,
	            kd_error_msg(err));
	if (op != KD_WB_OP_CREATE)
		return;
	kd_autofree char *why = kd_xasprintf("WriteBackFailed: %s", kd_error_msg(err));
	kd_wb_cancel(d->wb, key);
	kd_node_pods_direct_stop(d->a, key, why);
	report_lost(d, key, why);
}

void kd_node_direct_observe(struct kd_node_agent *a, const char *key, json_object *obj,
                            bool deleted)
{
	struct kd_direct *d = D(a);
	if (!d)
		return;
	if (deleted)
		kd_wb_observe_deleted(d->wb, key);
	else
		kd_wb_observe(d->wb, key, obj);
}

struct kd_k8s *kd_node_direct_client(struct kd_node_agent *a)
{
	struct kd_direct *d = D(a);
	return d ? d->k8s_wb : NULL;
}

bool kd_node_direct_ignore(struct kd_node_agent *a, const char *key)
{
	struct kd_direct *d = D(a);
	if (!d)
		return false;
	enum kd_wb_state st;
	if (kd_wb_state(d->wb, key, &st) == 0 && st == KD_WB_DELETING)
		return true;
	return tomb_has(d, key);
}

/* ---- instance channel (we are downstream) --------------------------------------------------- */

static void pending_arm(struct kd_direct *d)
{
	if (d->pending.n && !kd_loop_timer_pending(d->pending_timer))
		kd_loop_timer_start(d->pending_timer, PENDING_RETRY_MS);
}

/* Collects the facts about an upsert and builds the Pod when the template is usable. */
static void upsert_facts(struct kd_direct *d, const struct kd_instance_desc *in,
                         struct kd_direct_facts *f, struct kd_node **node, json_object **pod,
                         struct kd_error **build_err)
{
	struct kd_node_agent *a = d->a;
	memset(f, 0, sizeof(*f));
	f->kind = KD_OP_UPSERT;
	*node = kd_node_lookup(a, in->node);
	f->node_ours = *node != NULL;
	kd_autofree char *key = kd_instance_key(in);
	f->cancelled = kd_node_direct_ignore(a, key);
	/* Wait for the pod informer AND the node's registration: adopted Pods (which keep their
	 * status.podIP) are started once both hold, and a direct instance started before them could
	 * be handed one of their addresses. */
	f->pods_synced =
	    a->pods_inf && kd_informer_synced(a->pods_inf) && (!*node || (*node)->registered);
	f->tmpl_synced = kd_informer_synced(d->deploy_inf);
	int st = kd_node_pods_state(a, key, in->node);
	f->has_entry = st & KD_NODE_POD_EXISTS;
	f->entry_persisted = st & KD_NODE_POD_PERSISTED;
	f->entry_stopping = st & KD_NODE_POD_STOPPING;
	f->entry_same_node = st & KD_NODE_POD_SAME_NODE;
	json_object *dep = kd_informer_get(d->deploy_inf, in->ns, in->tmpl_name);
	if (!dep) {
		f->tmpl = KD_DIRECT_TMPL_MISSING;
		return;
	}
	int rc = kd_instance_build_pod(dep, in, pod, build_err);
	f->tmpl = rc == 0 ? KD_DIRECT_TMPL_OK : KD_DIRECT_TMPL_STALE;
	if (rc < 0 && rc != -ESTALE)
		f->tmpl =
		    KD_DIRECT_TMPL_MISSING; /* unusable template: refused like a missing one */
}

/* Applies an upsert. from_pending: a retry of a waiting op (its deadline checked by the
 * caller). Returns 0, 1 (must wait) or -errno with *err (refused). */
static int apply_upsert(struct kd_direct *d, const struct kd_op *op, struct kd_error **err)
{
	struct kd_node_agent *a = d->a;
	struct kd_instance_desc in;
	int rc = kd_instance_from_op(op, &in, err);
	if (rc < 0)
		return rc;
	struct kd_direct_facts f;
	struct kd_node *node = NULL;
	kd_autojson json_object *pod = NULL;
	kd_autoerr struct kd_error *berr = NULL;
	upsert_facts(d, &in, &f, &node, &pod, &berr);
	enum kd_direct_action act = kd_node_direct_decide(&f);
	rc = 0;
	switch (act) {
	case KD_DIRECT_START:
		rc = kd_node_pods_direct_start(a, node, op->key, pod, err);
		if (rc == 0) {
			rc = kd_wb_put(d->wb, op->key, pod);
			if (rc < 0)
				kd_log_warn("direct: %s: write-back: %s", op->key, strerror(-rc));
			rc = 0;
			d->n_started++;
			kd_log_debug("direct: %s started on %s", op->key, in.node);
		}
		break;
	case KD_DIRECT_NOOP:
		d->n_dups++;
		break;
	case KD_DIRECT_WAIT:
		rc = 1;
		break;
	case KD_DIRECT_REFUSE_NODE:
		rc = kd_error_set(err, ENOENT, 0, "node %s is not served by this kd-node", in.node);
		break;
	case KD_DIRECT_REFUSE_TEMPLATE:
		if (berr)
			rc = kd_error_set(err, EINVAL, 0, "template Deployment %s/%s unusable: %s",
			                  in.ns, in.tmpl_name, kd_error_msg(berr));
		else
			rc = kd_error_set(err, ENOENT, 0, "unknown template Deployment %s/%s",
			                  in.ns, in.tmpl_name);
		break;
	case KD_DIRECT_REFUSE_BUSY:
		rc = kd_error_set(err, EBUSY, 0,
		                  "pod %s is being deleted or runs on another node; not started on "
		                  "%s",
		                  op->key, in.node);
		break;
	case KD_DIRECT_CANCEL:
	case KD_DIRECT_DELETE_PERSISTED:
		break; /* not for upserts */
	}
	if (rc < 0)
		d->n_refused++;
	kd_instance_fini(&in);
	return rc;
}

/* Delete op / reconcile drop. */
static void apply_delete(struct kd_direct *d, const char *key, const char *reason)
{
	struct kd_node_agent *a = d->a;
	if (kd_strmap_get(&d->pending, key)) {
		pending_del(d, key);
		src_del(d, key);
		d->n_cancelled++;
		return;
	}
	struct kd_direct_facts f;
	memset(&f, 0, sizeof(f));
	f.kind = KD_OP_DELETE;
	int st = kd_node_pods_state(a, key, NULL);
	f.has_entry = st & KD_NODE_POD_EXISTS;
	f.entry_persisted = st & KD_NODE_POD_PERSISTED;
	switch (kd_node_direct_decide(&f)) {
	case KD_DIRECT_CANCEL: {
		enum kd_wb_state ws;
		if (kd_wb_state(d->wb, key, &ws) == 0) {
			/* its create may land: ignore it, it is deleted (a runtime owning the Pod
			 * may have created it whatever the cache's state) */
			if (ws == KD_WB_PERSISTING || a->rt_owns_pod)
				tomb_add(d, key);
			kd_wb_cancel(d->wb, key);
		}
		kd_node_pods_direct_stop(a, key, reason);
		d->n_cancelled++;
		break;
	}
	case KD_DIRECT_DELETE_PERSISTED:
		kd_node_pods_direct_stop(a, key, reason);
		d->n_deleted++;
		break;
	default:
		kd_wb_cancel(d->wb, key); /* e.g. a FAILED entry without a pod entry */
		break;
	}
}

/* Records which upstream sent key (held[] and drop are per source). */
static void src_set(struct kd_direct *d, const char *key, const char *source)
{
	struct dsrc *x = kd_strmap_get(&d->srcs, key);
	if (x && strcmp(x->source, source) == 0)
		return;
	if (x) {
		free(x->source);
		x->source = kd_xstrdup(source);
		return;
	}
	x = kd_xcalloc(1, sizeof(*x));
	x->key = kd_xstrdup(key);
	x->source = kd_xstrdup(source);
	kd_strmap_put(&d->srcs, x->key, x);
}

/* True when key was sent by `source` (or by nobody we know of). */
static bool src_is(struct kd_direct *d, const char *key, const char *source)
{
	const struct dsrc *x = kd_strmap_get(&d->srcs, key);
	return !x || strcmp(x->source, source) == 0;
}

static void src_forget(void *ctx, const char *key)
{
	struct kd_direct *d = ctx;
	if (!kd_strmap_get(&d->pending, key))
		src_del(d, key);
}

static void wb_persisted(void *ctx, const char *key, json_object *api_obj)
{
	(void)api_obj;
	src_forget(ctx, key);
}

static void wb_removed(void *ctx, const char *key, enum kd_wb_gone why)
{
	(void)why;
	src_forget(ctx, key);
}

static int ch_apply(void *ud, const char *source, uint64_t epoch, const struct kd_op *op,
                    struct kd_error **err)
{
	(void)epoch;
	struct kd_direct *d = ud;
	d->n_ops++;
	if (op->kind == KD_OP_UPSERT)
		src_set(d, op->key, source);
	if (op->kind == KD_OP_DELETE) {
		apply_delete(d, op->key, op->reason);
		return 0;
	}
	int rc = apply_upsert(d, op, err);
	if (rc == 1) {
		struct dpending *p = kd_strmap_get(&d->pending, op->key);
		if (!p) {
			p = kd_xcalloc(1, sizeof(*p));
			p->key = kd_xstrdup(op->key);
			kd_strmap_put(&d->pending, p->key, p);
			p->deadline_ms = kd_loop_now_ms(d->a->loop) + KD_DIRECT_WAIT_MS;
		} else {
			kd_op_fini(&p->op);
		}
		kd_op_copy(&p->op, op);
		d->n_waits++;
		pending_arm(d);
		return 0;
	}
	if (rc < 0) {
		kd_log_warn("direct: refused %s: %s", op->key,
		            err && *err ? kd_error_msg(*err) : "");
		src_del(d, op->key);
		return rc;
	}
	pending_del(d, op->key);
	enum kd_wb_state ws;
	if (kd_wb_state(d->wb, op->key, &ws) < 0 || ws == KD_WB_PERSISTED)
		src_del(d, op->key); /* nothing of it is held */
	return 0;
}

static int ch_drop(void *ud, const char *source, const char *key, struct kd_error **err)
{
	(void)err;
	struct kd_direct *d = ud;
	if (!src_is(d, key, source))
		return 0; /* another upstream's instance: not this one's to cancel */
	apply_delete(d, key, "Dropped");
	return 0;
}

struct held_ctx {
	struct kd_direct *d;
	const char *source;
	struct kd_op_list *out;
	int rc;
	struct kd_error **err;
};

static int held_one(void *arg, const char *key, enum kd_wb_state state, json_object *obj)
{
	(void)state;
	struct held_ctx *h = arg;
	if (!src_is(h->d, key, h->source))
		return 0;
	struct kd_op op;
	memset(&op, 0, sizeof(op));
	kd_autoerr struct kd_error *e = NULL;
	if (kd_node_direct_held_op(obj, &op, &e) < 0) {
		kd_log_warn("direct: held %s: %s", key, kd_error_msg(e));
		return 0;
	}
	*kd_op_list_push(h->out) = op;
	return 0;
}

static int ch_held(void *ud, const char *source, struct kd_op_list *held, struct kd_error **err)
{
	struct kd_direct *d = ud;
	struct held_ctx h = {.d = d, .source = source, .out = held, .err = err};
	kd_wb_held(d->wb, held_one, &h);
	size_t pos = 0;
	for (const struct dpending *p; (p = kd_strmap_next(&d->pending, &pos));) {
		if (src_is(d, p->op.key, source))
			kd_op_copy(kd_op_list_push(held), &p->op);
	}
	kd_log_info("direct: handshake with %s: holding %zu unpersisted instances", source,
	            held->n);
	return 0;
}

static void on_pending_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)t;
	struct kd_direct *d = arg;
	uint64_t now = kd_loop_now_ms(loop);
	/* collect the keys first: apply_upsert must not run while iterating the table */
	struct kd_key_list keys;
	memset(&keys, 0, sizeof(keys));
	size_t pos = 0;
	for (const struct dpending *p; (p = kd_strmap_next(&d->pending, &pos));)
		kd_key_list_push(&keys, p->key);
	for (size_t i = 0; i < keys.n; i++) {
		struct dpending *p = kd_strmap_get(&d->pending, keys.v[i]);
		if (!p)
			continue;
		kd_autoerr struct kd_error *err = NULL;
		int rc = apply_upsert(d, &p->op, &err);
		if (rc == 1 && now < p->deadline_ms)
			continue;
		if (rc == 1) {
			d->n_timeouts++;
			kd_log_warn("direct: %s: template %s not usable after %d ms; reporting it "
			            "gone",
			            keys.v[i], p->op.tmpl.name ? p->op.tmpl.name : "?",
			            KD_DIRECT_WAIT_MS);
			report_lost(d, keys.v[i], "TemplateUnavailable");
		} else if (rc < 0) {
			kd_log_warn("direct: refused %s after waiting: %s", keys.v[i],
			            kd_error_msg(err));
			report_lost(d, keys.v[i], kd_error_msg(err));
		}
		pending_del(d, keys.v[i]);
		if (rc != 0)
			src_del(d, keys.v[i]);
	}
	kd_key_list_fini(&keys);
	pending_arm(d);
}

static void on_deploy(struct kd_informer *inf, json_object *obj, void *arg)
{
	(void)inf;
	(void)obj;
	struct kd_direct *d = arg;
	if (d->pending.n) {
		kd_loop_timer_stop(d->pending_timer);
		kd_loop_timer_start(d->pending_timer, 0);
	}
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

void kd_node_direct_log_stats(struct kd_node_agent *a)
{
	struct kd_direct *d = D(a);
	if (!d)
		return;
	struct kd_wb_counters c;
	kd_wb_get_counters(d->wb, &c);
	kd_log_info("direct: %" PRIu64 " ops: %" PRIu64 " started, %" PRIu64 " duplicates, %" PRIu64
	            " waited, %" PRIu64 " refused, %" PRIu64 " cancelled, %" PRIu64
	            " deleted, %" PRIu64 " timed out; write-back: %" PRIu64 " creates, %" PRIu64
	            " observed, %" PRIu64 " failed; %" PRIu64 " status ops sent",
	            d->n_ops, d->n_started, d->n_dups, d->n_waits, d->n_refused, d->n_cancelled,
	            d->n_deleted, d->n_timeouts, c.creates_issued, c.observed, d->n_wb_failed,
	            d->n_status_sent);
}

bool kd_node_direct_get_stats(struct kd_node_agent *a, struct kd_node_direct_stats *out)
{
	memset(out, 0, sizeof(*out));
	struct kd_direct *d = D(a);
	if (!d)
		return false;
	out->ops = d->n_ops;
	out->started = d->n_started;
	out->refused = d->n_refused;
	out->cancelled = d->n_cancelled;
	out->deleted = d->n_deleted;
	out->timeouts = d->n_timeouts;
	out->status_sent = d->n_status_sent;
	if (d->wb) {
		struct kd_wb_counters c;
		kd_wb_get_counters(d->wb, &c);
		out->wb_queue = c.ephemeral + c.persisting + c.failed;
		out->wb_creates = c.creates_issued;
		out->wb_queued = c.queued;
		kd_wb_get_latency(d->wb, &out->wb_latency);
	}
	out->wb_failed = d->n_wb_failed;
	out->status_chans = d->n_stups;
	for (size_t i = 0; i < d->n_stups; i++)
		out->status_chans_ready += d->stups[i].up && kd_chan_up_ready(d->stups[i].up);
	out->tmpl_synced = d->deploy_inf && kd_informer_synced(d->deploy_inf);
	return true;
}

int kd_node_direct_new(struct kd_node_agent *a, const struct kd_k8s_config *kcfg,
                       struct kd_error **err)
{
	const struct kd_node_cfg *cfg = a->cfg;
	struct kd_direct *d = kd_xcalloc(1, sizeof(*d));
	d->a = a;
	a->direct = d;
	d->st_timer = kd_loop_timer_new(a->loop, on_st_timer, d);
	d->pending_timer = kd_loop_timer_new(a->loop, on_pending_timer, d);
	const char *token = cfg->chan_token && *cfg->chan_token ? cfg->chan_token : NULL;
	char *host = NULL;  /* status channel host */
	char *addrs = NULL; /* copy of --status-addr for strtok_r */
	int port = 0;

	struct kd_k8s_opts kopts = {
	    .user_agent = "kd-node (write-back)",
	    .qps = cfg->direct_write_qps,
	    .burst = (unsigned)KD_MIN(cfg->direct_write_burst, 1000000u),
	    .http2 = true, /* a burst of creates multiplexed on one connection: no TLS storm */
	};
	if (kd_k8s_new(kcfg, a->loop, &kopts, &d->k8s_wb, err) < 0)
		goto fail;

	d->delete_opts = json_object_new_object();
	json_object_object_add(d->delete_opts, "gracePeriodSeconds", json_object_new_int(0));
	struct kd_wbk8s_route route = {
	    .prefix = "",
	    .res = &kd_k8s_pods,
	    .delete_options = d->delete_opts,
	    .create = KD_WBK8S_CREATE_POST,
	    .update = KD_WBK8S_UPDATE_STRATEGIC,
	    .uid_precondition = true,
	};
	d->wbk8s = kd_wbk8s_new(d->k8s_wb, &route, 1, err);
	if (!d->wbk8s)
		goto fail;
	kd_wbk8s_writer(d->wbk8s, &d->wb_inner);
	struct kd_wb_writer w = {.write = wb_write, .flush = wb_flush, .ctx = d};
	if (d->wb_inner.reread)
		w.reread = wb_reread;
	struct kd_wb_callbacks cbs = {
	    .persisted = wb_persisted, .failed = wb_failed, .removed = wb_removed, .ctx = d};
	struct kd_wb_config wcfg = KD_WB_CONFIG_DEFAULT;
	wcfg.max_in_flight = 256;
	wcfg.batch_period_ms = 1;
	wcfg.backoff_base_ms = 200;
	wcfg.backoff_cap_ms = 5000;
	wcfg.observe_timeout_ms = 10000;
	d->wb = kd_wb_new(a->loop, &wcfg, &w, &cbs, err);
	if (!d->wb)
		goto fail;

	struct kd_informer_opts io = {.res = &kd_k8s_deployments,
	                              .label_selector = REVISION_SELECTOR};
	struct kd_informer_handlers ih = {
	    .on_add = on_deploy, .on_update = kd_informer_update_as_add, .arg = d};
	if (kd_informer_new(a->k8s, &io, &ih, &d->deploy_inf, err) < 0)
		goto fail;

	struct kd_chan_down_opts dopts = {.bind = cfg->direct_bind, .port = (int)cfg->direct_port};
	dopts.t.token = token;
	struct kd_hs_down_cbs hcbs = {.held = ch_held, .apply = ch_apply, .drop = ch_drop};
	d->down = kd_chan_down_new(a->loop, &dopts, &hcbs, d, err);
	if (!d->down) {
		kd_error_wrap(err, "instance channel on %s:%" PRIu64, cfg->direct_bind,
		              cfg->direct_port);
		goto fail;
	}
	a->channel_addr =
	    kd_node_direct_addr(cfg->direct_addr, cfg->direct_bind, kd_chan_down_port(d->down));

	d->status_source = kd_xasprintf("kd-node:%s", a->nodes[0].name);
	addrs = kd_xstrdup(cfg->status_addr ? cfg->status_addr : "");
	size_t max_stups = 1;
	for (const char *c = addrs; *c; c++)
		max_stups += *c == ',';
	/* allocated once: each kd_chan_up keeps a pointer to its entry */
	d->stups = kd_xcalloc(max_stups, sizeof(*d->stups));
	for (char *sv = NULL, *tok = strtok_r(addrs, ",", &sv); tok;
	     tok = strtok_r(NULL, ",", &sv)) {
		free(host);
		host = NULL;
		if (kd_instance_addr_parse(tok, &host, &port, err) < 0) {
			kd_error_wrap(err, "--status-addr");
			goto fail;
		}
		struct stup *u = &d->stups[d->n_stups++];
		u->d = d;
		u->addr = kd_xstrdup(tok);
		struct kd_chan_up_opts uopts = {
		    .host = host, .port = port, .source = d->status_source};
		uopts.t.token = token;
		struct kd_chan_up_cbs ucbs = {
		    .hs = {.wanted = st_wanted, .persisted = st_persisted},
		    .ready = st_ready,
		    .down = st_down,
		    .writable = st_writable,
		};
		u->up = kd_chan_up_new(a->loop, &uopts, &ucbs, u, err);
		if (!u->up) {
			kd_error_wrap(err, "status channel to %s", tok);
			goto fail;
		}
	}
	kd_log_info("direct: instance channel on %s (published as %s), status channels to %s as "
	            "%s",
	            cfg->direct_bind, a->channel_addr, cfg->status_addr, d->status_source);
	free(host);
	free(addrs);
	return 0;
fail:
	free(host);
	free(addrs);
	kd_node_direct_free(a);
	return -((*err) ? (*err)->errnum : EINVAL);
}

void kd_node_direct_start(struct kd_node_agent *a)
{
	struct kd_direct *d = D(a);
	if (d)
		kd_informer_start(d->deploy_inf);
}

void kd_node_direct_free(struct kd_node_agent *a)
{
	struct kd_direct *d = D(a);
	if (!d)
		return;
	kd_node_direct_log_stats(a);
	a->direct = NULL;
	kd_chan_down_free(d->down);
	for (size_t i = 0; i < d->n_stups; i++) {
		kd_chan_up_free(d->stups[i].up);
		kd_op_list_fini(&d->stups[i].pending);
		free(d->stups[i].addr);
	}
	free(d->stups);
	if (d->deploy_inf)
		kd_informer_free(d->deploy_inf);
	kd_wb_free(d->wb);
	kd_wbk8s_free(d->wbk8s);
	kd_k8s_free(d->k8s_wb); /* completes writes still in flight (ECANCELED) */
	if (d->delete_opts)
		json_object_put(d->delete_opts);
	kd_loop_timer_free(d->st_timer);
	kd_loop_timer_free(d->pending_timer);
	size_t pos = 0;
	for (struct dstatus *s; (s = kd_strmap_next(&d->status, &pos));)
		dstatus_free(s);
	kd_strmap_fini(&d->status);
	pos = 0;
	for (struct dpending *p; (p = kd_strmap_next(&d->pending, &pos));)
		dpending_free(p);
	kd_strmap_fini(&d->pending);
	pos = 0;
	for (struct dtomb *t; (t = kd_strmap_next(&d->tombs, &pos));)
		dtomb_free(t);
	kd_strmap_fini(&d->tombs);
	pos = 0;
	for (struct dsrc *x; (x = kd_strmap_next(&d->srcs, &pos));)
		dsrc_free(x);
	kd_strmap_fini(&d->srcs);
	free(d->status_source);
	free(a->channel_addr);
	a->channel_addr = NULL;
	free(d);
}
