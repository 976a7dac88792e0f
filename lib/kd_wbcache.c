/* kd_wbcache.c: hierarchical write-back cache: per-key entries in a kd_strmap, a batching
 * and rate-limited write scheduler on kd_loop, retries with jittered backoff. See kd/wbcache.h. */
#include "kd/wbcache.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "kd/log.h"
#include "kd/strmap.h"

#define KEY_MAX                    1024
#define UTOK                       1000000ull /* micro-tokens per token */
#define container(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

/* --- intrusive circular doubly linked lists --------------------------------------------------- */

struct dl {
	struct dl *prev, *next;
};

static void dl_init(struct dl *h)
{
	h->prev = h->next = h;
}

static bool dl_empty(const struct dl *h)
{
	return h->next == h;
}

static void dl_add_tail(struct dl *h, struct dl *n)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

static void dl_del(struct dl *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

static bool dl_linked(const struct dl *n)
{
	return n->next != n;
}

/* --- types ------------------------------------------------------------------------------------ */

enum need { NEED_NONE = 0, NEED_CREATE, NEED_UPDATE, NEED_DELETE };
/* Reread after: a Conflict; AlreadyExists (an older object of that name may have been seen before
 * the entry existed); or observe_timeout_ms without observing a create that succeeded. */
enum rr_why { RR_CONFLICT = 0, RR_EXISTS, RR_VERIFY };
enum where { Q_NONE = 0, Q_PENDING, Q_READY };

struct op;

struct entry {
	struct kd_wb *wb;
	char *key;     /* the key of wb->entries while the entry is in the cache */
	struct dl all; /* wb->all, insertion order */
	struct dl q;   /* wb->pending or wb->ready */
	enum where where;
	uint64_t queued_ns; /* kd_now_ns when queued for its next write, 0: not queued */
	struct dl ev;       /* wb->evict */
	uint64_t evict_at;
	enum kd_wb_state state;
	enum need need;
	json_object *obj;      /* cached copy: what is written, or the API copy that won (owned) */
	json_object *last_put; /* content of the last put(), for idempotency (owned) */
	json_object *observed; /* last API copy seen, or NULL (owned reference) */
	uint64_t gen;          /* bumped whenever obj changes */
	bool created;          /* a create completed, or the object was observed */
	struct op *op;         /* in-flight write or reread, or NULL */
	unsigned attempt;      /* failed attempts of attempt_op in a row */
	enum kd_wb_op attempt_op;
	struct kd_timer *retry; /* lazily allocated */
	bool in_backoff;
	struct kd_timer *verify; /* observe_timeout_ms after a create completed; lazily allocated */
	struct kd_error *error;  /* last permanent error (owned) */
	unsigned pins;           /* > 0 while a callback runs with this entry's key */
	bool zombie;             /* removed while pinned: freed at the last unpin */
};

struct op {
	struct kd_wb *wb; /* NULL once the cache is freed */
	struct entry *e;  /* NULL once detached from its entry */
	struct dl link;   /* wb->ops */
	char *key;
	enum kd_wb_op kind;
	bool reread;
	enum rr_why rr; /* why a reread was started */
	json_object *obj, *base;
	uint64_t gen;
	uint64_t queued_ns; /* the entry's queued_ns when the write was issued (0: a reread) */
	bool issuing, sync_done;
	enum kd_wb_result sync_res;
	struct kd_error *sync_err;
	json_object *sync_obj;
};

struct kd_wb {
	struct kd_loop *loop;
	struct kd_wb_config cfg;
	struct kd_wb_writer w;
	struct kd_wb_callbacks cb;
	struct kd_strmap entries; /* key -> struct entry (keys borrowed from the entries) */
	struct dl all, pending, ready, evict, ops;
	size_t npending, nready;
	struct kd_timer *flush_timer, *issue_timer, *evict_timer;
	struct kd_prom_hist latency; /* queued -> the writer's answer, seconds */
	uint64_t tokens;             /* micro-tokens */
	uint64_t last_refill_ms;
	struct kd_wb_counters c;
};

/* --- names and classification ----------------------------------------------------------------- */

const char *kd_wb_state_name(enum kd_wb_state s)
{
	switch (s) {
	case KD_WB_EPHEMERAL:
		return "ephemeral";
	case KD_WB_PERSISTING:
		return "persisting";
	case KD_WB_PERSISTED:
		return "persisted";
	case KD_WB_FAILED:
		return "failed";
	case KD_WB_DELETING:
		return "deleting";
	}
	return "?";
}

const char *kd_wb_op_name(enum kd_wb_op op)
{
	switch (op) {
	case KD_WB_OP_CREATE:
		return "create";
	case KD_WB_OP_UPDATE:
		return "update";
	case KD_WB_OP_DELETE:
		return "delete";
	}
	return "?";
}

const char *kd_wb_result_name(enum kd_wb_result r)
{
	switch (r) {
	case KD_WB_OK:
		return "ok";
	case KD_WB_ALREADY_EXISTS:
		return "already-exists";
	case KD_WB_CONFLICT:
		return "conflict";
	case KD_WB_NOT_FOUND:
		return "not-found";
	case KD_WB_RETRY:
		return "retryable error";
	case KD_WB_PERMANENT:
		return "permanent error";
	}
	return "?";
}

const char *kd_wb_gone_name(enum kd_wb_gone why)
{
	switch (why) {
	case KD_WB_GONE_CANCELLED:
		return "cancelled";
	case KD_WB_GONE_DELETED:
		return "deleted";
	case KD_WB_GONE_API_DELETED:
		return "deleted in the API";
	case KD_WB_GONE_EVICTED:
		return "evicted";
	}
	return "?";
}

enum kd_wb_result kd_wb_classify(long http_status, const char *reason)
{
	if (http_status >= 200 && http_status < 300)
		return KD_WB_OK;
	if (http_status == 409)
		return reason && !strcmp(reason, "AlreadyExists") ? KD_WB_ALREADY_EXISTS
		                                                  : KD_WB_CONFLICT;
	if (http_status == 404)
		return KD_WB_NOT_FOUND;
	if (http_status == 0 || http_status == 408 || http_status == 429 || http_status >= 500)
		return KD_WB_RETRY;
	return KD_WB_PERMANENT;
}

enum kd_wb_result kd_wb_classify_error(const struct kd_error *err)
{
	if (!err)
		return KD_WB_OK;
	if (err->http_status)
		return kd_wb_classify(err->http_status, err->reason);
	switch (err->errnum) {
	case EINVAL:
	case E2BIG:
	case EMSGSIZE:
	case EPERM:
	case EACCES:
		return KD_WB_PERMANENT; /* the request itself is bad: retrying cannot help */
	default:
		return KD_WB_RETRY; /* transport: refused, reset, timeout, DNS, TLS */
	}
}

/* --- the key index -------------------------------------------------------------------------- */

static struct entry *lookup(const struct kd_wb *wb, const char *key)
{
	return kd_strmap_get(&wb->entries, key);
}

static bool key_ok(const char *key)
{
	return key && key[0] && strnlen(key, KEY_MAX) < KEY_MAX;
}

/* --- small helpers ---------------------------------------------------------------------------- */

static uint64_t *gauge(struct kd_wb *wb, enum kd_wb_state s)
{
	switch (s) {
	case KD_WB_EPHEMERAL:
		return &wb->c.ephemeral;
	case KD_WB_PERSISTING:
		return &wb->c.persisting;
	case KD_WB_PERSISTED:
		return &wb->c.persisted;
	case KD_WB_FAILED:
		return &wb->c.failed;
	case KD_WB_DELETING:
		break;
	}
	return &wb->c.deleting;
}

/* The total that counts entries leaving the cache for why. */
static uint64_t *gone_total(struct kd_wb *wb, enum kd_wb_gone why)
{
	uint64_t *const totals[] = {
	    [KD_WB_GONE_CANCELLED] = &wb->c.cancelled,
	    [KD_WB_GONE_DELETED] = &wb->c.deleted,
	    [KD_WB_GONE_API_DELETED] = &wb->c.api_deleted,
	    [KD_WB_GONE_EVICTED] = &wb->c.evicted,
	};
	return (size_t)why < KD_ARRAY_SIZE(totals) ? totals[why] : NULL;
}

/* The total that counts write completions with res, or NULL: RETRY and PERMANENT are counted
 * where they are handled (backoff, fail), as retries and permanent_errors. */
static uint64_t *result_total(struct kd_wb *wb, enum kd_wb_result res)
{
	uint64_t *const totals[] = {
	    [KD_WB_OK] = &wb->c.writes_ok,
	    [KD_WB_ALREADY_EXISTS] = &wb->c.already_exists,
	    [KD_WB_CONFLICT] = &wb->c.conflicts,
	    [KD_WB_NOT_FOUND] = &wb->c.not_found,
	};
	return (size_t)res < KD_ARRAY_SIZE(totals) ? totals[res] : NULL;
}

static void count(uint64_t *total)
{
	if (total)
		(*total)++;
}

static void set_state(struct entry *e, enum kd_wb_state s)
{
	(*gauge(e->wb, e->state))--;
	e->state = s;
	(*gauge(e->wb, s))++;
}

static void set_obj(json_object **slot, json_object *obj)
{
	json_object *old = *slot;
	*slot = obj ? json_object_get(obj) : NULL;
	json_object_put(old);
}

static struct kd_error *error_copy(const struct kd_error *err)
{
	struct kd_error *copy = NULL;
	if (err)
		kd_error_set_reason(&copy, err->errnum ? err->errnum : EIO, err->http_status,
		                    err->reason, "%s", kd_error_msg(err));
	return copy;
}

static enum kd_wb_op need_op(enum need n)
{
	return n == NEED_CREATE   ? KD_WB_OP_CREATE
	       : n == NEED_UPDATE ? KD_WB_OP_UPDATE
	                          : KD_WB_OP_DELETE;
}

static void kick_issue(struct kd_wb *wb)
{
	if (wb->nready && !kd_loop_timer_pending(wb->issue_timer))
		kd_loop_timer_start(wb->issue_timer, 0);
}

static void unqueue(struct entry *e)
{
	if (e->where == Q_NONE)
		return;
	if (e->where == Q_PENDING)
		e->wb->npending--;
	else
		e->wb->nready--;
	e->wb->c.queued--;
	dl_del(&e->q);
	e->where = Q_NONE;
	e->queued_ns = 0;
}

static void stop_backoff(struct entry *e)
{
	if (!e->in_backoff)
		return;
	kd_loop_timer_stop(e->retry);
	e->in_backoff = false;
	e->wb->c.backoff--;
}

static void evict_unlink(struct entry *e)
{
	if (dl_linked(&e->ev))
		dl_del(&e->ev);
}

/* Queues e for the next batch if it needs a write and nothing else is under way for it. */
static void schedule(struct entry *e)
{
	struct kd_wb *wb = e->wb;
	if (e->need == NEED_NONE || e->op || e->in_backoff || e->where != Q_NONE || e->zombie)
		return;
	dl_add_tail(&wb->pending, &e->q);
	e->where = Q_PENDING;
	e->queued_ns = kd_now_ns();
	wb->npending++;
	wb->c.queued++;
	if (wb->cfg.batch_size && wb->npending >= wb->cfg.batch_size)
		kd_loop_timer_start(wb->flush_timer, 0);
	else if (!kd_loop_timer_pending(wb->flush_timer))
		kd_loop_timer_start(wb->flush_timer, wb->cfg.batch_period_ms);
}

/* Queues e for issue without waiting for a batch (retries, re-issues after a reread). */
static void make_ready(struct entry *e)
{
	struct kd_wb *wb = e->wb;
	if (e->need == NEED_NONE || e->op || e->in_backoff || e->zombie)
		return;
	if (e->where == Q_READY)
		return;
	uint64_t queued = e->queued_ns; /* from the pending queue: keeps its time */
	unqueue(e);
	dl_add_tail(&wb->ready, &e->q);
	e->where = Q_READY;
	e->queued_ns = queued ? queued : kd_now_ns();
	wb->nready++;
	wb->c.queued++;
	kick_issue(wb);
}

static void retry_cb(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	struct entry *e = arg;
	e->in_backoff = false;
	e->wb->c.backoff--;
	make_ready(e);
}

static void arm_retry(struct entry *e, uint64_t delay_ms)
{
	unqueue(e);
	if (!e->retry)
		e->retry = kd_loop_timer_new(e->wb->loop, retry_cb, e);
	if (!e->in_backoff)
		e->wb->c.backoff++;
	e->in_backoff = true;
	kd_loop_timer_start(e->retry, delay_ms);
}

static void maybe_evictable(struct entry *e)
{
	struct kd_wb *wb = e->wb;
	if (e->state != KD_WB_PERSISTED || e->need != NEED_NONE || e->op || e->zombie ||
	    dl_linked(&e->ev) || wb->cfg.retention_ms == KD_WB_RETAIN_FOREVER)
		return;
	e->evict_at = kd_loop_now_ms(wb->loop) + wb->cfg.retention_ms;
	dl_add_tail(&wb->evict, &e->ev);
	if (!kd_loop_timer_pending(wb->evict_timer))
		kd_loop_timer_start(wb->evict_timer, wb->cfg.retention_ms);
}

/* --- ops and entries -------------------------------------------------------------------------- */

static struct op *op_new(struct entry *e, enum kd_wb_op kind)
{
	struct op *op = kd_xcalloc(1, sizeof(*op));
	op->wb = e->wb;
	op->e = e;
	op->key = kd_xstrdup(e->key);
	op->kind = kind;
	op->gen = e->gen;
	dl_add_tail(&e->wb->ops, &op->link);
	e->op = op;
	return op;
}

static void op_free(struct op *op)
{
	if (op->e)
		op->e->op = NULL;
	if (op->wb)
		dl_del(&op->link);
	json_object_put(op->obj);
	json_object_put(op->base);
	json_object_put(op->sync_obj);
	kd_error_free(op->sync_err);
	free(op->key);
	free(op);
}

static void detach_op(struct entry *e)
{
	if (e->op) {
		e->op->e = NULL;
		e->op = NULL;
	}
}

static struct entry *entry_new(struct kd_wb *wb, const char *key, json_object *obj)
{
	struct entry *e = kd_xcalloc(1, sizeof(*e));
	e->wb = wb;
	e->key = kd_xstrdup(key);
	dl_init(&e->q);
	dl_init(&e->ev);
	e->obj = json_object_get(obj);
	e->last_put = json_object_get(obj);
	e->state = KD_WB_EPHEMERAL;
	e->need = NEED_CREATE;
	e->attempt_op = KD_WB_OP_CREATE;
	wb->c.ephemeral++;
	kd_strmap_put(&wb->entries, e->key, e);
	dl_add_tail(&wb->all, &e->all);
	return e;
}

static void entry_free(struct entry *e)
{
	kd_loop_timer_free(e->retry);
	kd_loop_timer_free(e->verify);
	json_object_put(e->obj);
	json_object_put(e->last_put);
	json_object_put(e->observed);
	kd_error_free(e->error);
	free(e->key);
	free(e);
}

static void pin(struct entry *e)
{
	e->pins++;
}

static void unpin(struct entry *e)
{
	if (--e->pins == 0 && e->zombie)
		entry_free(e);
}

/* Takes e out of the cache, fires the removed callback, frees e (later if pinned). */
static void entry_remove(struct entry *e, enum kd_wb_gone why)
{
	struct kd_wb *wb = e->wb;
	unqueue(e);
	stop_backoff(e);
	kd_loop_timer_stop(e->verify);
	evict_unlink(e);
	detach_op(e);
	if (lookup(wb, e->key) == e) /* by pointer, as a newer entry may hold the key */
		kd_strmap_del(&wb->entries, e->key);
	dl_del(&e->all);
	(*gauge(wb, e->state))--;
	count(gone_total(wb, why));
	e->zombie = true;
	kd_log_debug("wbcache: %s: %s", e->key, kd_wb_gone_name(why));
	pin(e);
	if (wb->cb.removed)
		wb->cb.removed(wb->cb.ctx, e->key, why);
	unpin(e);
}

/* The API copy wins: e becomes PERSISTED with api as its cached copy; pending writes cancelled. */
static void apply_observe(struct entry *e, json_object *api)
{
	struct kd_wb *wb = e->wb;
	if (e->op || e->need != NEED_NONE)
		wb->c.api_wins++;
	detach_op(e);
	unqueue(e);
	stop_backoff(e);
	kd_loop_timer_stop(e->verify);
	set_obj(&e->obj, api);
	set_obj(&e->observed, api);
	e->gen++;
	e->need = NEED_NONE;
	e->created = true;
	e->attempt = 0;
	kd_error_free(e->error);
	e->error = NULL;
	set_state(e, KD_WB_PERSISTED);
	maybe_evictable(e);
	pin(e);
	if (wb->cb.persisted)
		wb->cb.persisted(wb->cb.ctx, e->key, api);
	unpin(e);
}

/* Records a permanent failure of kind on e and tells the stage. */
static void fail(struct entry *e, enum kd_wb_op kind, enum kd_wb_result res,
                 const struct kd_error *err)
{
	struct kd_wb *wb = e->wb;
	wb->c.permanent_errors++;
	kd_error_free(e->error);
	e->error = error_copy(err);
	if (!e->error)
		kd_error_set(&e->error, EIO, 0, "%s %s: %s", kd_wb_op_name(kind), e->key,
		             kd_wb_result_name(res));
	e->need = NEED_NONE;
	e->attempt = 0;
	if (kind == KD_WB_OP_CREATE && e->state != KD_WB_DELETING)
		set_state(e, KD_WB_FAILED);
	maybe_evictable(e); /* a persisted object whose update failed: nothing pending now */
	kd_log_debug("wbcache: %s %s failed: %s", kd_wb_op_name(kind), e->key,
	             kd_error_msg(e->error));
	if (!wb->cb.failed)
		return;
	struct kd_error *copy = error_copy(e->error); /* the callback may clear e->error */
	pin(e);
	wb->cb.failed(wb->cb.ctx, e->key, kind, copy);
	unpin(e);
	kd_error_free(copy);
}

/* A retryable failure: back off, or fail after max_attempts. */
static void backoff(struct entry *e, enum kd_wb_op kind, const struct kd_error *err)
{
	struct kd_wb *wb = e->wb;
	e->attempt++;
	wb->c.retries++;
	if (wb->cfg.max_attempts && e->attempt >= wb->cfg.max_attempts) {
		struct kd_error *why = error_copy(err);
		if (why)
			kd_error_wrap(&why, "giving up after %u attempts", e->attempt);
		else
			kd_error_set(&why, EIO, 0, "%s %s: giving up after %u attempts",
			             kd_wb_op_name(kind), e->key, e->attempt);
		fail(e, kind, KD_WB_RETRY, why);
		kd_error_free(why);
		return;
	}
	arm_retry(e,
	          kd_backoff_ms(e->attempt - 1, wb->cfg.backoff_base_ms, wb->cfg.backoff_cap_ms));
}

static void verify_cb(struct kd_loop *loop, struct kd_timer *t, void *arg);

/* Arms the check of a PERSISTING entry whose create succeeded but which the watch has not shown
 * (a watch gap may have hidden its creation and deletion). Needs the reread hook. */
static void arm_verify(struct entry *e)
{
	struct kd_wb *wb = e->wb;
	if (!wb->cfg.observe_timeout_ms || !wb->w.reread || e->state != KD_WB_PERSISTING ||
	    !e->created || e->zombie)
		return;
	if (!e->verify)
		e->verify = kd_loop_timer_new(wb->loop, verify_cb, e);
	if (!kd_loop_timer_pending(e->verify))
		kd_loop_timer_start(e->verify, wb->cfg.observe_timeout_ms);
}

/* --- rereads ---------------------------------------------------------------------------------- */

static void reread_finished(struct op *op, enum kd_wb_result res, json_object *obj,
                            const struct kd_error *err);

static bool start_reread(struct entry *e, enum kd_wb_op kind, enum rr_why why);

static void verify_cb(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	struct entry *e = arg;
	if (e->state != KD_WB_PERSISTING || !e->created)
		return;
	if (e->op || e->where != Q_NONE || e->in_backoff) {
		arm_verify(e); /* busy writing: look again later */
		return;
	}
	e->wb->c.verifies++;
	start_reread(e, KD_WB_OP_CREATE, RR_VERIFY);
}

static void reread_done(void *arg, enum kd_wb_result res, json_object *obj,
                        const struct kd_error *err)
{
	struct op *op = arg;
	if (op->issuing) {
		op->sync_done = true;
		op->sync_res = res;
		op->sync_obj = obj ? json_object_get(obj) : NULL;
		op->sync_err = error_copy(err);
		return;
	}
	reread_finished(op, res, obj, err);
}

/* Starts a reread of e for an op of `kind`; false when the writer has no reread hook. */
static bool start_reread(struct entry *e, enum kd_wb_op kind, enum rr_why why)
{
	struct kd_wb *wb = e->wb;
	if (!wb->w.reread)
		return false;
	struct op *op = op_new(e, kind);
	op->reread = true;
	op->rr = why;
	wb->c.rereads++;
	wb->c.rereads_in_flight++;
	op->issuing = true;
	int rc = wb->w.reread(wb->w.ctx, op->key, reread_done, op);
	op->issuing = false;
	if (rc < 0) {
		struct kd_error *err = NULL;
		kd_error_set(&err, -rc, 0, "reread %s: could not start: %s", op->key,
		             strerror(-rc));
		reread_finished(op, KD_WB_RETRY, NULL, err);
		kd_error_free(err);
	} else if (op->sync_done) {
		reread_finished(op, op->sync_res, op->sync_obj, op->sync_err);
	}
	return true;
}

static void reread_finished(struct op *op, enum kd_wb_result res, json_object *obj,
                            const struct kd_error *err)
{
	struct kd_wb *wb = op->wb;
	struct entry *e = op->e;
	enum kd_wb_op kind = op->kind;
	enum rr_why why = op->rr;
	bool after_exists = why != RR_CONFLICT;
	if (wb)
		wb->c.rereads_in_flight--;
	if (!wb || !e) { /* cache freed, or entry gone or moved on */
		if (wb)
			wb->c.ignored_results++;
		op_free(op);
		return;
	}
	/* Detached from e now; freed at the end (obj may belong to it). */
	e->op = NULL;
	op->e = NULL;
	if (res == KD_WB_OK && !obj)
		res = KD_WB_NOT_FOUND;
	if (e->state == KD_WB_DELETING && kind != KD_WB_OP_DELETE) {
		/* Cancelled while we were looking: the object may exist, delete it. */
		if (res == KD_WB_OK)
			set_obj(&e->observed, obj);
		e->need = NEED_DELETE;
		e->attempt = 0;
		schedule(e);
		goto out;
	}
	switch (res) {
	case KD_WB_OK:
		if (kind == KD_WB_OP_CREATE) {
			wb->c.observed++;
			apply_observe(e, obj); /* the API copy wins */
			goto out;
		}
		set_obj(&e->observed, obj);
		break;
	case KD_WB_NOT_FOUND:
		if (kind == KD_WB_OP_DELETE) {
			entry_remove(e, KD_WB_GONE_DELETED);
			goto out;
		}
		if (why == RR_VERIFY) {
			/* Our create succeeded, and the object is gone: deleted in the API while
			 * the watch did not show it. The API wins. */
			entry_remove(e, KD_WB_GONE_API_DELETED);
			goto out;
		}
		if (kind == KD_WB_OP_UPDATE) {
			/* Nothing left to update: the watch reports the deletion. */
			e->need = NEED_NONE;
			e->attempt = 0;
			goto out;
		}
		/* create: AlreadyExists/Conflict but gone now: create again */
		e->created = false;
		e->need = NEED_CREATE;
		break;
	default:
		if (after_exists) {
			schedule(e); /* the create is done; the watch will show the object */
			arm_verify(e);
		} else
			backoff(e, kind, err);
		goto out;
	}
	if (after_exists || e->attempt <= 1)
		make_ready(e);
	else
		arm_retry(e, kd_backoff_ms(e->attempt - 1, wb->cfg.backoff_base_ms,
		                           wb->cfg.backoff_cap_ms));
out:
	op_free(op);
}

/* A Conflict: count, then reread (or back off and re-issue with the latest observed base). */
static void conflict(struct entry *e, enum kd_wb_op kind, const struct kd_error *err)
{
	struct kd_wb *wb = e->wb;
	if (!wb->w.reread) {
		backoff(e, kind, err);
		return;
	}
	e->attempt++;
	if (wb->cfg.max_attempts && e->attempt >= wb->cfg.max_attempts) {
		fail(e, kind, KD_WB_CONFLICT, err);
		return;
	}
	start_reread(e, kind, RR_CONFLICT);
}

/* --- write completion ------------------------------------------------------------------------- */

static void handle_write(struct entry *e, enum kd_wb_op kind, uint64_t gen, enum kd_wb_result res,
                         const struct kd_error *err)
{
	struct kd_wb *wb = e->wb;
	count(result_total(wb, res));
	if (e->state == KD_WB_DELETING && kind != KD_WB_OP_DELETE) {
		/* Cancelled while a create or update was in flight. */
		if (kind == KD_WB_OP_CREATE && !e->created &&
		    (res == KD_WB_PERMANENT || res == KD_WB_NOT_FOUND)) {
			entry_remove(e, KD_WB_GONE_CANCELLED); /* nothing was created */
			return;
		}
		if (kind == KD_WB_OP_CREATE && (res == KD_WB_OK || res == KD_WB_ALREADY_EXISTS))
			e->created = true;
		e->need = NEED_DELETE;
		e->attempt = 0;
		schedule(e);
		return;
	}
	if (res == KD_WB_RETRY) {
		backoff(e, kind, err);
		return;
	}
	if (res == KD_WB_PERMANENT) {
		fail(e, kind, res, err);
		return;
	}
	if (res == KD_WB_CONFLICT) {
		conflict(e, kind, err);
		return;
	}
	switch (kind) {
	case KD_WB_OP_CREATE:
		if (res == KD_WB_NOT_FOUND) { /* the namespace does not exist */
			fail(e, kind, res, err);
			return;
		}
		e->created = true;
		e->attempt = 0;
		e->need = e->gen != gen ? NEED_UPDATE : NEED_NONE;
		/* Stays PERSISTING until observed. After AlreadyExists the watch may have shown the
		 * object before this entry existed: read it. */
		if (res == KD_WB_ALREADY_EXISTS && start_reread(e, kind, RR_EXISTS))
			return;
		schedule(e);
		arm_verify(e);
		return;
	case KD_WB_OP_UPDATE:
		e->attempt = 0;
		e->need = res == KD_WB_NOT_FOUND ? NEED_NONE
		          : e->gen != gen        ? NEED_UPDATE
		                                 : NEED_NONE;
		schedule(e);
		maybe_evictable(e);
		return;
	case KD_WB_OP_DELETE:
		entry_remove(e, KD_WB_GONE_DELETED); /* ok or not found: gone */
		return;
	}
}

static void write_finished(struct op *op, enum kd_wb_result res, const struct kd_error *err)
{
	struct kd_wb *wb = op->wb;
	struct entry *e = op->e;
	if (!wb) { /* the cache was freed */
		op_free(op);
		return;
	}
	wb->c.in_flight--;
	if (op->queued_ns)
		kd_prom_hist_observe(&wb->latency, (double)(kd_now_ns() - op->queued_ns) / 1e9);
	if (!e) {
		wb->c.ignored_results++;
		op_free(op);
		kick_issue(wb);
		return;
	}
	e->op = NULL;
	op->e = NULL;
	handle_write(e, op->kind, op->gen, res, err);
	op_free(op); /* after: err may belong to it */
	kick_issue(wb);
}

static void write_done(void *arg, enum kd_wb_result res, const struct kd_error *err)
{
	struct op *op = arg;
	if (op->issuing) {
		op->sync_done = true;
		op->sync_res = res;
		op->sync_err = error_copy(err);
		return;
	}
	write_finished(op, res, err);
}

/* --- the scheduler ---------------------------------------------------------------------------- */

/* Token bucket in micro-tokens; true and one token spent, or false and *wait_ms until one. */
static bool take_token(struct kd_wb *wb, uint64_t *wait_ms)
{
	if (wb->cfg.qps <= 0)
		return true;
	uint64_t cap = (uint64_t)KD_MAX(wb->cfg.burst, 1u) * UTOK;
	uint64_t now = kd_loop_now_ms(wb->loop);
	if (now > wb->last_refill_ms) {
		double add = (double)(now - wb->last_refill_ms) * wb->cfg.qps * (UTOK / 1000.0);
		if (add >= 1.0) { /* keep fractions of a micro-token by not advancing the clock */
			wb->tokens =
			    add >= (double)cap ? cap : KD_MIN(cap, wb->tokens + (uint64_t)add);
			wb->last_refill_ms = now;
		}
	}
	if (wb->tokens >= UTOK) {
		wb->tokens -= UTOK;
		return true;
	}
	double per_ms = wb->cfg.qps * (UTOK / 1000.0);
	double w = (double)(UTOK - wb->tokens) / per_ms;
	*wait_ms = (uint64_t)w + 1;
	return false;
}

static void start_write(struct entry *e, uint64_t queued_ns)
{
	struct kd_wb *wb = e->wb;
	enum kd_wb_op kind = need_op(e->need);
	if (kind != e->attempt_op) {
		e->attempt = 0;
		e->attempt_op = kind;
	}
	struct op *op = op_new(e, kind);
	op->queued_ns = queued_ns;
	json_object *src = kind == KD_WB_OP_DELETE && e->observed ? e->observed : e->obj;
	op->obj = json_object_get(src);
	op->base = e->observed ? json_object_get(e->observed) : NULL;
	if (kind == KD_WB_OP_CREATE && e->state == KD_WB_EPHEMERAL)
		set_state(e, KD_WB_PERSISTING);
	wb->c.in_flight++;
	wb->c.writes_issued++;
	if (kind == KD_WB_OP_CREATE)
		wb->c.creates_issued++;
	else if (kind == KD_WB_OP_UPDATE)
		wb->c.updates_issued++;
	else
		wb->c.deletes_issued++;
	kd_log_trace("wbcache: %s %s (attempt %u)", kd_wb_op_name(kind), e->key, e->attempt + 1);
	op->issuing = true;
	int rc = wb->w.write(wb->w.ctx, op->key, kind, op->obj, op->base, write_done, op);
	op->issuing = false;
	if (rc < 0) {
		struct kd_error *err = NULL;
		kd_error_set(&err, -rc, 0, "%s %s: could not start: %s", kd_wb_op_name(kind),
		             op->key, strerror(-rc));
		write_finished(op, KD_WB_RETRY, err);
		kd_error_free(err);
	} else if (op->sync_done) {
		write_finished(op, op->sync_res, op->sync_err);
	}
}

static void issue(struct kd_wb *wb)
{
	bool any = false;
	while (wb->nready) {
		if (wb->cfg.max_in_flight && wb->c.in_flight >= wb->cfg.max_in_flight)
			break; /* resumed by write_finished */
		struct entry *e = container(wb->ready.next, struct entry, q);
		if (e->need == NEED_NONE || e->op) { /* defensive: nothing to write now */
			unqueue(e);
			continue;
		}
		uint64_t wait = 0;
		if (!take_token(wb, &wait)) {
			kd_loop_timer_start(wb->issue_timer, wait);
			break;
		}
		uint64_t queued = e->queued_ns;
		unqueue(e);
		start_write(e, queued);
		any = true;
	}
	if (any && wb->w.flush)
		wb->w.flush(wb->w.ctx);
}

static void issue_cb(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	issue(arg);
}

static void flush_cb(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	struct kd_wb *wb = arg;
	while (!dl_empty(&wb->pending)) {
		struct entry *e = container(wb->pending.next, struct entry, q);
		dl_del(&e->q);
		wb->npending--;
		dl_add_tail(&wb->ready, &e->q);
		e->where = Q_READY;
		wb->nready++;
	}
	issue(wb);
}

static void evict_cb(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)t;
	struct kd_wb *wb = arg;
	uint64_t now = kd_loop_now_ms(loop);
	while (!dl_empty(&wb->evict)) {
		struct entry *e = container(wb->evict.next, struct entry, ev);
		/* The analyzer does not follow the circular list: each entry is unlinked before it
		 * is freed, so the head is always live. */
		if (e->evict_at > now) { // NOLINT(clang-analyzer-unix.Malloc)
			kd_loop_timer_start(wb->evict_timer, e->evict_at - now);
			return;
		}
		entry_remove(e, KD_WB_GONE_EVICTED);
	}
}

/* --- public API ------------------------------------------------------------------------------- */

struct kd_wb *kd_wb_new(struct kd_loop *loop, const struct kd_wb_config *cfg,
                        const struct kd_wb_writer *writer, const struct kd_wb_callbacks *cbs,
                        struct kd_error **err)
{
	if (!loop || !writer || !writer->write) {
		kd_error_set(err, EINVAL, 0, "write-back cache: a loop and a writer are required");
		return NULL;
	}
	struct kd_wb_config c = cfg ? *cfg : KD_WB_CONFIG_DEFAULT;
	if (c.qps < 0 || isnan(c.qps)) {
		kd_error_set(err, EINVAL, 0, "write-back cache: qps must be >= 0");
		return NULL;
	}
	if (c.backoff_base_ms == 0)
		c.backoff_base_ms = 1;
	if (c.backoff_cap_ms < c.backoff_base_ms)
		c.backoff_cap_ms = c.backoff_base_ms;
	struct kd_wb *wb = kd_xcalloc(1, sizeof(*wb));
	wb->loop = loop;
	wb->cfg = c;
	wb->w = *writer;
	if (cbs)
		wb->cb = *cbs;
	dl_init(&wb->all);
	dl_init(&wb->pending);
	dl_init(&wb->ready);
	dl_init(&wb->evict);
	dl_init(&wb->ops);
	kd_prom_hist_init(&wb->latency, kd_prom_latency_le, KD_PROM_LATENCY_BUCKETS);
	wb->flush_timer = kd_loop_timer_new(loop, flush_cb, wb);
	wb->issue_timer = kd_loop_timer_new(loop, issue_cb, wb);
	wb->evict_timer = kd_loop_timer_new(loop, evict_cb, wb);
	wb->tokens = (uint64_t)KD_MAX(c.burst, 1u) * UTOK;
	wb->last_refill_ms = kd_loop_now_ms(loop);
	return wb;
}

void kd_wb_free(struct kd_wb *wb)
{
	if (!wb)
		return;
	while (!dl_empty(&wb->ops)) {
		struct op *op = container(wb->ops.next, struct op, link);
		dl_del(&op->link);
		op->wb = NULL;
		op->e = NULL;
	}
	for (struct dl *p = wb->all.next, *next; p != &wb->all; p = next) {
		next = p->next;
		entry_free(container(p, struct entry, all));
	}
	kd_loop_timer_free(wb->flush_timer);
	kd_loop_timer_free(wb->issue_timer);
	kd_loop_timer_free(wb->evict_timer);
	kd_strmap_fini(&wb->entries);
	free(wb);
}

int kd_wb_put(struct kd_wb *wb, const char *key, json_object *obj)
{
	if (!key_ok(key) || !obj)
		return -EINVAL;
	struct entry *e = lookup(wb, key);
	wb->c.puts++;
	if (!e) {
		e = entry_new(wb, key, obj);
		schedule(e);
		return 0;
	}
	if (e->state == KD_WB_DELETING)
		return -EBUSY;
	if (json_object_equal(e->last_put, obj)) {
		wb->c.noop_puts++;
		return 0;
	}
	set_obj(&e->last_put, obj);
	set_obj(&e->obj, obj);
	e->gen++;
	switch (e->state) {
	case KD_WB_EPHEMERAL:
		break; /* the queued create carries the new content */
	case KD_WB_PERSISTING:
		if (e->created && e->need == NEED_NONE)
			e->need = NEED_UPDATE;
		/* need CREATE: the next attempt carries it; in flight: handled at completion */
		schedule(e);
		break;
	case KD_WB_PERSISTED:
		evict_unlink(e);
		e->need = NEED_UPDATE;
		schedule(e);
		break;
	case KD_WB_FAILED:
		set_state(e, KD_WB_EPHEMERAL);
		kd_error_free(e->error);
		e->error = NULL;
		e->created = false;
		e->attempt = 0;
		e->need = NEED_CREATE;
		schedule(e);
		break;
	case KD_WB_DELETING:
		break;
	}
	return 0;
}

int kd_wb_observe(struct kd_wb *wb, const char *key, json_object *api_obj)
{
	if (!key_ok(key) || !api_obj)
		return -EINVAL;
	struct entry *e = lookup(wb, key);
	if (!e)
		return -ENOENT;
	wb->c.observed++;
	switch (e->state) {
	case KD_WB_EPHEMERAL:
	case KD_WB_PERSISTING:
	case KD_WB_FAILED:
		apply_observe(e, api_obj);
		break;
	case KD_WB_PERSISTED:
		set_obj(&e->observed, api_obj);
		if (e->need == NEED_NONE && !e->op && !e->error) {
			set_obj(&e->obj, api_obj);
			e->gen++;
		}
		break;
	case KD_WB_DELETING:
		set_obj(&e->observed, api_obj);
		e->created = true;
		break;
	}
	return 0;
}

int kd_wb_observe_deleted(struct kd_wb *wb, const char *key)
{
	if (!key_ok(key))
		return -EINVAL;
	struct entry *e = lookup(wb, key);
	if (!e)
		return -ENOENT;
	if (e->state != KD_WB_PERSISTED && e->state != KD_WB_DELETING)
		return -EAGAIN;
	entry_remove(e, KD_WB_GONE_API_DELETED);
	return 0;
}

int kd_wb_cancel(struct kd_wb *wb, const char *key)
{
	if (!key_ok(key))
		return -EINVAL;
	struct entry *e = lookup(wb, key);
	if (!e)
		return -ENOENT;
	switch (e->state) {
	case KD_WB_EPHEMERAL:
	case KD_WB_FAILED:
		entry_remove(e, KD_WB_GONE_CANCELLED);
		break;
	case KD_WB_PERSISTING:
	case KD_WB_PERSISTED:
		set_state(e, KD_WB_DELETING);
		evict_unlink(e);
		stop_backoff(e);
		kd_loop_timer_stop(e->verify);
		unqueue(e);
		e->need = NEED_DELETE;
		e->attempt = 0;
		schedule(
		    e); /* no-op while a write is in flight: its completion schedules the delete */
		break;
	case KD_WB_DELETING:
		break;
	}
	return 0;
}

int kd_wb_evict(struct kd_wb *wb, const char *key)
{
	if (!key_ok(key))
		return -EINVAL;
	struct entry *e = lookup(wb, key);
	if (!e)
		return -ENOENT;
	if (e->state != KD_WB_PERSISTED || e->need != NEED_NONE || e->op)
		return -EBUSY;
	entry_remove(e, KD_WB_GONE_EVICTED);
	return 0;
}

int kd_wb_retry(struct kd_wb *wb, const char *key)
{
	if (!key_ok(key))
		return -EINVAL;
	struct entry *e = lookup(wb, key);
	if (!e)
		return -ENOENT;
	if (e->state == KD_WB_FAILED) {
		set_state(e, KD_WB_EPHEMERAL);
		e->created = false;
		e->need = NEED_CREATE;
	} else if (e->state == KD_WB_DELETING && e->need == NEED_NONE && !e->op && e->error) {
		e->need = NEED_DELETE;
	} else if (e->state == KD_WB_PERSISTED && e->need == NEED_NONE && !e->op && e->error) {
		evict_unlink(e);
		e->need = NEED_UPDATE;
	} else {
		return -EINVAL;
	}
	kd_error_free(e->error);
	e->error = NULL;
	e->attempt = 0;
	schedule(e);
	return 0;
}

int kd_wb_state(const struct kd_wb *wb, const char *key, enum kd_wb_state *state)
{
	const struct entry *e = key_ok(key) ? lookup(wb, key) : NULL;
	if (!e)
		return -ENOENT;
	*state = e->state;
	return 0;
}

json_object *kd_wb_get(const struct kd_wb *wb, const char *key)
{
	const struct entry *e = key_ok(key) ? lookup(wb, key) : NULL;
	return e ? e->obj : NULL;
}

const struct kd_error *kd_wb_error(const struct kd_wb *wb, const char *key)
{
	const struct entry *e = key_ok(key) ? lookup(wb, key) : NULL;
	return e ? e->error : NULL;
}

size_t kd_wb_foreach(const struct kd_wb *wb, unsigned state_mask, kd_wb_iter_cb cb, void *arg)
{
	size_t n = 0;
	for (const struct dl *p = wb->all.next; p != &wb->all; p = p->next) {
		const struct entry *e = container(p, struct entry, all);
		if (!(state_mask & KD_WB_STATE_BIT(e->state)))
			continue;
		n++;
		if (cb && cb(arg, e->key, e->state, e->obj))
			break;
	}
	return n;
}

size_t kd_wb_held(const struct kd_wb *wb, kd_wb_iter_cb cb, void *arg)
{
	return kd_wb_foreach(wb, KD_WB_HELD_MASK, cb, arg);
}

size_t kd_wb_count(const struct kd_wb *wb)
{
	return (size_t)(wb->c.ephemeral + wb->c.persisting + wb->c.persisted);
}

size_t kd_wb_size(const struct kd_wb *wb)
{
	return wb->entries.n;
}

void kd_wb_get_counters(const struct kd_wb *wb, struct kd_wb_counters *out)
{
	*out = wb->c;
}

void kd_wb_get_latency(const struct kd_wb *wb, struct kd_prom_hist *out)
{
	*out = wb->latency;
}

static const char *need_name(enum need n)
{
	switch (n) {
	case NEED_NONE:
		return "-";
	case NEED_CREATE:
		return "create";
	case NEED_UPDATE:
		return "update";
	case NEED_DELETE:
		return "delete";
	}
	return "?";
}

void kd_wb_dump(const struct kd_wb *wb, FILE *out)
{
	const struct kd_wb_counters *c = &wb->c;
	fprintf(out,
	        "wbcache: %zu entries: ephemeral %" PRIu64 " persisting %" PRIu64
	        " persisted %" PRIu64 " failed %" PRIu64 " deleting %" PRIu64 "\n",
	        wb->entries.n, c->ephemeral, c->persisting, c->persisted, c->failed, c->deleting);
	fprintf(out,
	        "  queued %" PRIu64 " backoff %" PRIu64 " in-flight %" PRIu64 " rereads %" PRIu64
	        "\n",
	        c->queued, c->backoff, c->in_flight, c->rereads_in_flight);
	fprintf(out,
	        "  writes %" PRIu64 " (create %" PRIu64 " update %" PRIu64 " delete %" PRIu64
	        ") ok %" PRIu64 " already-exists %" PRIu64 " conflicts %" PRIu64
	        " not-found %" PRIu64 " retries %" PRIu64 " permanent %" PRIu64 "\n",
	        c->writes_issued, c->creates_issued, c->updates_issued, c->deletes_issued,
	        c->writes_ok, c->already_exists, c->conflicts, c->not_found, c->retries,
	        c->permanent_errors);
	fprintf(out,
	        "  puts %" PRIu64 " (no-op %" PRIu64 ") observed %" PRIu64 " api-wins %" PRIu64
	        " ignored-results %" PRIu64 " cancelled %" PRIu64 " deleted %" PRIu64
	        " api-deleted %" PRIu64 " evicted %" PRIu64 "\n",
	        c->puts, c->noop_puts, c->observed, c->api_wins, c->ignored_results, c->cancelled,
	        c->deleted, c->api_deleted, c->evicted);
	for (const struct dl *p = wb->all.next; p != &wb->all; p = p->next) {
		const struct entry *e = container(p, struct entry, all);
		fprintf(out, "  %s %s need=%s%s%s attempt=%u%s%s\n", e->key,
		        kd_wb_state_name(e->state), need_name(e->need),
		        e->op ? (e->op->reread ? " rereading" : " in-flight") : "",
		        e->in_backoff ? " backoff" : "", e->attempt, e->error ? " error=" : "",
		        e->error ? kd_error_msg(e->error) : "");
	}
}
