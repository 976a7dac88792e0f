/* Unit tests for kd_wbcache: the write-back cache driven by a real kd_loop and a mock writer that
 * plays a tiny API Server (an object store that answers create/update/delete like Kubernetes and
 * emits watch events after a delay). The "stage" of these tests keeps an informer view fed by the
 * watch and by the persisted callback, and checks the counting invariant on every event:
 * |informer| + ephemeral + persisting == instances put - cancelled - failed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kd/loop.h"
#include "kd/wbcache.h"

/* --- the mock API Server + writer ----------------------------------------------------------------
 */

enum item_kind { IT_DONE, IT_REREAD, IT_WATCH_ADD, IT_WATCH_DEL };

struct item {
	uint64_t due;
	uint64_t seq;
	enum item_kind kind;
	char *key;
	enum kd_wb_result res;
	kd_wb_done_cb done;
	kd_wb_reread_cb reread_cb;
	void *arg;
	json_object *obj;
};

struct outcome {
	enum kd_wb_result res;
	bool apply; /* the server applied the write (true for OK; for RETRY = response lost) */
};

struct logrec {
	char key[64];
	enum kd_wb_op op;
	uint64_t t;
	int base_rv; /* rv of the base passed to the writer, -1 if none */
};

struct mock;
typedef struct outcome (*decide_fn)(struct mock *m, const char *key, enum kd_wb_op op,
                                    unsigned nth);

struct mock {
	struct kd_loop *loop;
	struct kd_wb *wb;
	uint64_t t0;       /* loop clock when the cache was created */
	uint64_t delay_ms; /* response delay */
	uint64_t watch_ms; /* watch event delay */
	bool watch;        /* emit watch events */
	bool hold;         /* keep responses until mock_release */
	bool mute_watch;   /* drop the next watch event (a lost event) */
	bool sync;         /* answer writes and rereads from inside the call */
	int start_rc;      /* what write() returns for the next start_fail calls */
	unsigned start_fail;
	decide_fn decide;
	json_object *store;    /* the API: key -> object */
	json_object *informer; /* the stage's view from its watch */
	json_object *calls;    /* key -> number of write() calls */
	int rv;
	struct item *items;
	size_t nitems, capitems;
	uint64_t seq;
	struct kd_timer *timer;
	/* stats */
	size_t nwrites, nrereads, inflight, max_inflight;
	size_t bad_state_at_write;
	struct logrec *log;
	size_t nlog, caplog;
	size_t n_persisted, n_failed, n_removed[4];
	enum kd_wb_op last_failed_op;
	char last_failed_msg[256];
	/* invariant */
	bool check;
	size_t keys_put;
	size_t violations;
};

static uint64_t now_ms(void)
{
	return kd_now_ns() / 1000000ull;
}

static int obj_rv(json_object *o)
{
	json_object *rv;
	return o && json_object_object_get_ex(o, "rv", &rv) ? json_object_get_int(rv) : -1;
}

static const char *obj_node(json_object *o)
{
	json_object *n;
	return o && json_object_object_get_ex(o, "node", &n) ? json_object_get_string(n) : NULL;
}

static json_object *mkobj(const char *name, const char *node)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "node", json_object_new_string(node));
	return o;
}

static void check_invariant(struct mock *m)
{
	if (!m->check || !m->wb)
		return;
	struct kd_wb_counters c;
	kd_wb_get_counters(m->wb, &c);
	size_t live = (size_t)json_object_object_length(m->informer) + c.ephemeral + c.persisting;
	size_t expect = m->keys_put - m->n_removed[KD_WB_GONE_CANCELLED] - c.failed;
	if (live != expect) {
		fprintf(stderr, "invariant: informer %d + eph %lu + persisting %lu != %zu\n",
		        json_object_object_length(m->informer), (unsigned long)c.ephemeral,
		        (unsigned long)c.persisting, expect);
		m->violations++;
	}
}

static void arm(struct mock *m)
{
	uint64_t min = UINT64_MAX;
	for (size_t i = 0; i < m->nitems; i++)
		if (m->items[i].due < min)
			min = m->items[i].due;
	if (min == UINT64_MAX) {
		kd_loop_timer_stop(m->timer);
		return;
	}
	uint64_t now = now_ms();
	kd_loop_timer_start(m->timer, min > now ? min - now : 0);
}

static void add_item(struct mock *m, struct item it)
{
	if (m->nitems == m->capitems) {
		m->capitems = m->capitems ? m->capitems * 2 : 64;
		m->items = kd_xrealloc(m->items, m->capitems * sizeof(*m->items));
	}
	it.seq = m->seq++;
	m->items[m->nitems++] = it;
	arm(m);
}

/* Watch event at t + watch_ms; t is the time of the write that caused it, so that a response
 * (due t + delay_ms) and its event keep their order even if the process is descheduled. */
static void emit_watch_at(struct mock *m, uint64_t t, const char *key, json_object *obj)
{
	if (m->mute_watch) {
		m->mute_watch = false;
		return;
	}
	if (!m->watch)
		return;
	add_item(m, (struct item){.due = t + m->watch_ms,
	                          .kind = obj ? IT_WATCH_ADD : IT_WATCH_DEL,
	                          .key = kd_xstrdup(key),
	                          .obj = obj ? json_object_get(obj) : NULL});
}

static void emit_watch(struct mock *m, const char *key, json_object *obj)
{
	emit_watch_at(m, now_ms(), key, obj);
}

static json_object *store_put(struct mock *m, const char *key, json_object *obj)
{
	json_object *copy = NULL;
	assert_int_equal(json_object_deep_copy(obj, &copy, NULL), 0);
	json_object_object_add(copy, "rv", json_object_new_int(++m->rv));
	json_object_object_add(m->store, key, copy);
	return copy;
}

/* Answers one write, with a Kubernetes-like error for failures. */
static void complete(struct mock *m, const char *key, enum kd_wb_result res, kd_wb_done_cb done,
                     void *arg)
{
	struct kd_error *err = NULL;
	if (res == KD_WB_PERMANENT)
		kd_error_set_reason(&err, EINVAL, 422, "Invalid", "pods \"%s\" is invalid", key);
	else if (res == KD_WB_RETRY)
		kd_error_set(&err, EIO, 503, "service unavailable");
	m->inflight--;
	done(arg, res, err);
	kd_error_free(err);
}

static void deliver(struct mock *m, struct item *it)
{
	switch (it->kind) {
	case IT_DONE:
		complete(m, it->key, it->res, it->done, it->arg);
		break;
	case IT_REREAD:
		it->reread_cb(it->arg, it->res, it->obj, NULL);
		break;
	case IT_WATCH_ADD:
		if (!m->wb)
			break;
		json_object_object_add(m->informer, it->key, json_object_get(it->obj));
		kd_wb_observe(m->wb, it->key, it->obj);
		check_invariant(m);
		break;
	case IT_WATCH_DEL:
		if (!m->wb)
			break;
		json_object_object_del(m->informer, it->key);
		kd_wb_observe_deleted(m->wb, it->key);
		check_invariant(m);
		break;
	}
	free(it->key);
	json_object_put(it->obj);
}

static int item_cmp(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	if (x->due != y->due)
		return x->due < y->due ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void mock_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	struct mock *m = arg;
	uint64_t now = now_ms();
	size_t n = 0, keep = 0;
	struct item *due = kd_xmalloc((m->nitems + 1) * sizeof(*due));
	for (size_t i = 0; i < m->nitems; i++) {
		if (m->items[i].due <= now)
			due[n++] = m->items[i];
		else
			m->items[keep++] = m->items[i];
	}
	m->nitems = keep;
	qsort(due, n, sizeof(*due), item_cmp);
	for (size_t i = 0; i < n; i++)
		deliver(m, &due[i]);
	free(due);
	arm(m);
}

static void log_write(struct mock *m, const char *key, enum kd_wb_op op, json_object *base)
{
	if (m->nlog == m->caplog) {
		m->caplog = m->caplog ? m->caplog * 2 : 64;
		m->log = kd_xrealloc(m->log, m->caplog * sizeof(*m->log));
	}
	struct logrec *r = &m->log[m->nlog++];
	snprintf(r->key, sizeof(r->key), "%s", key);
	r->op = op;
	r->t = kd_loop_now_ms(m->loop);
	r->base_rv = obj_rv(base);
}

static unsigned bump_calls(struct mock *m, const char *key)
{
	json_object *c;
	int n = json_object_object_get_ex(m->calls, key, &c) ? json_object_get_int(c) : 0;
	json_object_object_add(m->calls, key, json_object_new_int(n + 1));
	return (unsigned)n + 1;
}

static int mock_write(void *ctx, const char *key, enum kd_wb_op op, json_object *obj,
                      json_object *base, kd_wb_done_cb done, void *done_arg)
{
	struct mock *m = ctx;
	uint64_t t = now_ms();
	check_invariant(m);
	if (m->start_fail) {
		m->start_fail--;
		log_write(m, key, op, base);
		return m->start_rc;
	}
	m->nwrites++;
	log_write(m, key, op, base);
	enum kd_wb_state st;
	if (kd_wb_state(m->wb, key, &st) < 0 ||
	    (op == KD_WB_OP_DELETE ? st != KD_WB_DELETING
	                           : st != KD_WB_PERSISTING && st != KD_WB_PERSISTED))
		m->bad_state_at_write++;
	unsigned nth = bump_calls(m, key);
	struct outcome o = {KD_WB_OK, true};
	if (m->decide)
		o = m->decide(m, key, op, nth);
	enum kd_wb_result res = o.res;
	json_object *cur = NULL;
	bool exists = json_object_object_get_ex(m->store, key, &cur);
	if (o.apply) {
		switch (op) {
		case KD_WB_OP_CREATE:
			if (exists) {
				res = KD_WB_ALREADY_EXISTS;
			} else {
				json_object *stored = store_put(m, key, obj);
				emit_watch_at(m, t, key, stored);
			}
			break;
		case KD_WB_OP_UPDATE:
			if (!exists) {
				res = KD_WB_NOT_FOUND;
			} else {
				json_object *stored = store_put(m, key, obj);
				emit_watch_at(m, t, key, stored);
			}
			break;
		case KD_WB_OP_DELETE:
			if (!exists) {
				res = KD_WB_NOT_FOUND;
			} else {
				json_object_object_del(m->store, key);
				emit_watch_at(m, t, key, NULL);
			}
			break;
		}
	}
	m->inflight++;
	if (m->inflight > m->max_inflight)
		m->max_inflight = m->inflight;
	if (m->sync) { /* answer from inside write() */
		complete(m, key, res, done, done_arg);
		return 0;
	}
	add_item(m, (struct item){.due = m->hold ? UINT64_MAX : t + m->delay_ms,
	                          .kind = IT_DONE,
	                          .key = kd_xstrdup(key),
	                          .res = res,
	                          .done = done,
	                          .arg = done_arg});
	return 0;
}

static int mock_reread(void *ctx, const char *key, kd_wb_reread_cb cb, void *cb_arg)
{
	struct mock *m = ctx;
	m->nrereads++;
	json_object *cur = NULL;
	bool exists = json_object_object_get_ex(m->store, key, &cur);
	if (m->sync) {
		json_object *copy = NULL; /* a fresh object, dropped right after the callback */
		if (exists)
			json_object_deep_copy(cur, &copy, NULL);
		cb(cb_arg, exists ? KD_WB_OK : KD_WB_NOT_FOUND, copy, NULL);
		json_object_put(copy);
		return 0;
	}
	add_item(m, (struct item){.due = now_ms() + m->delay_ms,
	                          .kind = IT_REREAD,
	                          .key = kd_xstrdup(key),
	                          .res = exists ? KD_WB_OK : KD_WB_NOT_FOUND,
	                          .reread_cb = cb,
	                          .arg = cb_arg,
	                          .obj = exists ? json_object_get(cur) : NULL});
	return 0;
}

static void mock_release(struct mock *m)
{
	uint64_t now = now_ms();
	for (size_t i = 0; i < m->nitems; i++)
		if (m->items[i].due == UINT64_MAX)
			m->items[i].due = now;
	m->hold = false;
	arm(m);
}

static void cb_persisted(void *ctx, const char *key, json_object *api_obj)
{
	struct mock *m = ctx;
	m->n_persisted++;
	/* The stage learns the object here too (e.g. after a reread), so it is never uncounted. */
	json_object_object_add(m->informer, key, json_object_get(api_obj));
	check_invariant(m);
}

static void cb_failed(void *ctx, const char *key, enum kd_wb_op op, const struct kd_error *err)
{
	struct mock *m = ctx;
	(void)key;
	m->n_failed++;
	m->last_failed_op = op;
	snprintf(m->last_failed_msg, sizeof(m->last_failed_msg), "%s", kd_error_msg(err));
	check_invariant(m);
}

static void cb_removed(void *ctx, const char *key, enum kd_wb_gone why)
{
	struct mock *m = ctx;
	(void)key;
	m->n_removed[why]++;
	check_invariant(m);
}

static struct kd_wb_config test_cfg(void)
{
	struct kd_wb_config c = KD_WB_CONFIG_DEFAULT;
	c.max_in_flight = 16;
	c.batch_size = 8;
	c.batch_period_ms = 2;
	c.retention_ms = KD_WB_RETAIN_FOREVER;
	c.backoff_base_ms = 2;
	c.backoff_cap_ms = 50;
	return c;
}

static struct mock *mock_new(const struct kd_wb_config *cfg, bool with_reread)
{
	struct mock *m = kd_xcalloc(1, sizeof(*m));
	m->loop = kd_loop_new();
	assert_non_null(m->loop);
	m->timer = kd_loop_timer_new(m->loop, mock_timer, m);
	m->store = json_object_new_object();
	m->informer = json_object_new_object();
	m->calls = json_object_new_object();
	m->watch = true;
	m->watch_ms = 1;
	m->check = true;
	struct kd_wb_writer w = {
	    .write = mock_write, .reread = with_reread ? mock_reread : NULL, .ctx = m};
	struct kd_wb_callbacks cbs = {
	    .persisted = cb_persisted, .failed = cb_failed, .removed = cb_removed, .ctx = m};
	struct kd_wb_config c = cfg ? *cfg : test_cfg();
	m->wb = kd_wb_new(m->loop, &c, &w, &cbs, NULL);
	assert_non_null(m->wb);
	m->t0 = kd_loop_now_ms(m->loop);
	return m;
}

/* Frees the cache first, then answers what is still in flight (detached records). */
static void mock_free(struct mock *m)
{
	kd_wb_free(m->wb);
	m->wb = NULL;
	for (size_t i = 0; i < m->nitems; i++)
		deliver(m, &m->items[i]);
	free(m->items);
	kd_loop_timer_free(m->timer);
	kd_loop_free(m->loop);
	json_object_put(m->store);
	json_object_put(m->informer);
	json_object_put(m->calls);
	free(m->log);
	free(m);
}

static int put(struct mock *m, const char *key, const char *node)
{
	json_object *o = mkobj(key, node);
	enum kd_wb_state st;
	bool fresh = kd_wb_state(m->wb, key, &st) < 0;
	int rc = kd_wb_put(m->wb, key, o);
	json_object_put(o);
	if (rc == 0 && fresh)
		m->keys_put++;
	return rc;
}

static enum kd_wb_state state_of(struct mock *m, const char *key)
{
	enum kd_wb_state st = (enum kd_wb_state) - 1;
	if (kd_wb_state(m->wb, key, &st) < 0)
		return (enum kd_wb_state) - 1;
	return st;
}

static struct kd_wb_counters counters(struct mock *m)
{
	struct kd_wb_counters c;
	kd_wb_get_counters(m->wb, &c);
	return c;
}

/* Runs the loop until cond holds or max_ms passed; evaluates to cond. Every loop is bounded. */
#define RUN_UNTIL(m, cond, max_ms)                                                                 \
	({                                                                                         \
		uint64_t end_ = now_ms() + (max_ms);                                               \
		bool ok_;                                                                          \
		while (!(ok_ = (cond)) && now_ms() < end_)                                         \
			kd_loop_run_once((m)->loop, 5);                                            \
		ok_;                                                                               \
	})

static void run_for(struct mock *m, uint64_t ms)
{
	uint64_t end = now_ms() + ms;
	while (now_ms() < end)
		kd_loop_run_once(m->loop, 5);
}

static size_t count_ops(struct mock *m, const char *key, enum kd_wb_op op)
{
	size_t n = 0;
	for (size_t i = 0; i < m->nlog; i++)
		if ((!key || !strcmp(m->log[i].key, key)) && m->log[i].op == op)
			n++;
	return n;
}

/* --- tests
 * ---------------------------------------------------------------------------------------- */

static void happy_path(void **state)
{
	(void)state;
	struct mock *m = mock_new(NULL, false);
	const char *keys[] = {"default/p0", "default/p1", "default/p2"};
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(put(m, keys[i], "n1"), 0);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(state_of(m, keys[i]), KD_WB_EPHEMERAL);
	assert_int_equal(m->nwrites, 0); /* never written from inside put() */
	assert_int_equal(kd_wb_count(m->wb), 3);

	assert_true(RUN_UNTIL(m, counters(m).persisted == 3, 2000));
	struct kd_wb_counters c = counters(m);
	assert_int_equal(c.creates_issued, 3);
	assert_int_equal(c.writes_issued, 3);
	assert_int_equal(c.writes_ok, 3);
	assert_int_equal(c.ephemeral + c.persisting, 0);
	assert_int_equal(c.observed, 3);
	assert_int_equal(c.retries + c.permanent_errors + c.ignored_results, 0);
	struct kd_prom_hist lat;
	kd_wb_get_latency(m->wb, &lat);
	assert_int_equal(lat.count, 3); /* one latency per answered write */
	assert_int_equal(m->n_persisted, 3);
	assert_int_equal(m->bad_state_at_write, 0); /* PERSISTING while the create is in flight */
	assert_int_equal(kd_wb_count(m->wb), 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(state_of(m, keys[i]), KD_WB_PERSISTED);
		assert_true(obj_rv(kd_wb_get(m->wb, keys[i])) > 0); /* the API copy */
	}
	run_for(m, 20);
	assert_int_equal(m->nwrites, 3); /* nothing more to write */
	assert_int_equal(m->violations, 0);
	mock_free(m);
}

static void put_is_idempotent_by_key(void **state)
{
	(void)state;
	struct kd_wb_config cfg = test_cfg();
	cfg.batch_size = 0;
	cfg.batch_period_ms = 20;
	struct mock *m = mock_new(&cfg, false);
	assert_int_equal(put(m, "ns/a", "n1"), 0);
	assert_int_equal(put(m, "ns/a", "n1"), 0);
	assert_int_equal(counters(m).noop_puts, 1);
	assert_int_equal(put(m, "ns/a", "n2"), 0); /* updates the pending create */
	assert_int_equal(kd_wb_size(m->wb), 1);
	assert_int_equal(kd_wb_count(m->wb), 1);
	assert_true(RUN_UNTIL(m, state_of(m, "ns/a") == KD_WB_PERSISTED, 2000));
	assert_int_equal(count_ops(m, "ns/a", KD_WB_OP_CREATE), 1);
	json_object *stored = NULL;
	assert_true(json_object_object_get_ex(m->store, "ns/a", &stored));
	assert_string_equal(obj_node(stored), "n2");
	/* Same content again after persistence: still a no-op, no update. */
	assert_int_equal(put(m, "ns/a", "n2"), 0);
	run_for(m, 40);
	assert_int_equal(m->nwrites, 1);
	assert_int_equal(counters(m).noop_puts, 2);
	/* Different content on a persisted entry: one update. */
	assert_int_equal(put(m, "ns/a", "n3"), 0);
	assert_true(
	    RUN_UNTIL(m, counters(m).updates_issued == 1 && counters(m).writes_ok == 2, 2000));
	assert_true(json_object_object_get_ex(m->store, "ns/a", &stored));
	assert_string_equal(obj_node(stored), "n3");
	json_object *o = mkobj("x", "n1");
	assert_int_equal(kd_wb_put(m->wb, "", o), -EINVAL);
	assert_int_equal(kd_wb_put(m->wb, NULL, o), -EINVAL);
	assert_int_equal(kd_wb_put(m->wb, "ns/b", NULL), -EINVAL);
	json_object_put(o);
	assert_int_equal(m->violations, 0);
	mock_free(m);
}

static void already_exists_counts_as_done(void **state)
{
	(void)state;
	struct mock *m = mock_new(NULL, false);
	m->watch = false; /* the object existed before: the watch has nothing new to say */
	json_object *pre = mkobj("ns/a", "n2");
	store_put(m, "ns/a", pre);
	json_object_put(pre);
	assert_int_equal(put(m, "ns/a", "n1"), 0);
	assert_true(RUN_UNTIL(m, counters(m).already_exists == 1, 2000));
	struct kd_wb_counters c = counters(m);
	assert_int_equal(c.creates_issued, 1);
	assert_int_equal(c.retries, 0);
	assert_int_equal(c.permanent_errors, 0);
	assert_int_equal(c.failed, 0);
	/* done, but not observed yet: still counted as persisting, not evictable */
	assert_int_equal(state_of(m, "ns/a"), KD_WB_PERSISTING);
	assert_int_equal(kd_wb_evict(m->wb, "ns/a"), -EBUSY);
	run_for(m, 30);
	assert_int_equal(m->nwrites, 1); /* no retry */
	/* The stage's (re)list shows the API copy: it wins over the cached one. */
	json_object *api = NULL;
	assert_true(json_object_object_get_ex(m->store, "ns/a", &api));
	json_object_object_add(m->informer, "ns/a", json_object_get(api));
	assert_int_equal(kd_wb_observe(m->wb, "ns/a", api), 0);
	assert_int_equal(state_of(m, "ns/a"), KD_WB_PERSISTED);
	assert_string_equal(obj_node(kd_wb_get(m->wb, "ns/a")), "n2");
	assert_int_equal(m->violations, 0);
	mock_free(m);
}

static void already_exists_rereads_the_api_copy(void **state)
{
	(void)state;
	struct mock *m = mock_new(NULL, true);
	m->watch = false;
	json_object *pre = mkobj("ns/a", "n2");
	store_put(m, "ns/a", pre);
	json_object_put(pre);
	assert_int_equal(put(m, "ns/a", "n1"), 0);
	assert_true(RUN_UNTIL(m, state_of(m, "ns/a") == KD_WB_PERSISTED, 2000));
	struct kd_wb_counters c = counters(m);
	assert_int_equal(c.already_exists, 1);
	assert_int_equal(c.rereads, 1);
	assert_int_equal(c.retries, 0);
	assert_int_equal(m->nrereads, 1);
	assert_int_equal(m->nwrites, 1);
	assert_int_equal(m->n_persisted, 1);
	assert_string_equal(obj_node(kd_wb_get(m->wb, "ns/a")), "n2"); /* the API copy won */
	assert_int_equal(m->violations, 0);
	mock_free(m);
}

static struct outcome conflict_first_update(struct mock *m, const char *key, enum kd_wb_op op,
                                            unsigned nth)
{
	(void)nth;
	if (op == KD_WB_OP_UPDATE && count_ops(m, key, KD_WB_OP_UPDATE) == 1)
		return (struct outcome){KD_WB_CONFLICT, false};
	return (struct outcome){KD_WB_OK, true};
}

static void conflict_on_update(bool with_reread)
{
	struct mock *m = mock_new(NULL, with_reread);
	assert_int_equal(put(m, "ns/a", "n1"), 0);
	assert_true(RUN_UNTIL(m, state_of(m, "ns/a") == KD_WB_PERSISTED, 2000));
	/* Somebody else updates the object; our watch has not shown it yet. */
	json_object *cur = NULL;
	assert_true(json_object_object_get_ex(m->store, "ns/a", &cur));
	int seen_rv = obj_rv(cur);
	store_put(m, "ns/a", cur);
	int new_rv = m->rv;
	m->decide = conflict_first_update;
	assert_int_equal(put(m, "ns/a", "n1-ready"), 0);
	assert_true(RUN_UNTIL(m, counters(m).writes_ok == 2, 3000));
	struct kd_wb_counters c = counters(m);
	assert_int_equal(c.conflicts, 1);
	assert_int_equal(c.updates_issued, 2);
	assert_int_equal(count_ops(m, "ns/a", KD_WB_OP_UPDATE), 2);
	assert_int_equal(m->log[1].base_rv, seen_rv);
	if (with_reread) {
		assert_int_equal(c.rereads, 1);
		assert_int_equal(m->nrereads, 1);
		assert_int_equal(m->log[2].base_rv, new_rv); /* re-issued on the re-read copy */
	} else {
		assert_int_equal(c.rereads, 0);
		assert_int_equal(c.retries, 1); /* re-issued after backoff */
	}
	json_object *stored = NULL;
	assert_true(json_object_object_get_ex(m->store, "ns/a", &stored));
	assert_string_equal(obj_node(stored), "n1-ready");
	assert_int_equal(m->violations, 0);
	mock_free(m);
}

static void conflict_triggers_reread(void **state)
{
	(void)state;
	conflict_on_update(true);
}

static void conflict_without_reread_retries_with_latest_base(void **state)
{
	(void)state;
	conflict_on_update(false);
}

static struct outcome fail_first_ten(struct mock *m, const char *key, enum kd_wb_op op,
                                     unsigned nth)
{
	(void)m;
	(void)key;
	(void)op;
	return nth <= 10 ? (struct outcome){KD_WB_RETRY, false} : (struct outcome){KD_WB_OK, true};
}

static void retry_500_with_growing_backoff(void **state)
{
	(void)state;
	struct kd_wb_config cfg = test_cfg();
	cfg.batch_size = 1;
	cfg.backoff_base_ms = 2;
	cfg.backoff_cap_ms = 10000;
	struct mock *m = mock_new(&cfg, false);
	m->decide = fail_first_ten;
	assert_int_equal(put(m, "ns/a", "n1"), 0);
	assert_true(RUN_UNTIL(m, state_of(m, "ns/a") == KD_WB_PERSISTED, 15000));
	struct kd_wb_counters c = counters(m);
	assert_int_equal(count_ops(m, "ns/a", KD_WB_OP_CREATE), 11);
	assert_int_equal(c.retries, 10);
	assert_int_equal(c.writes_ok, 1);
	assert_int_equal(c.permanent_errors, 0);
	assert_int_equal(m->nlog, 11);
	/* Full jitter: attempt k waits in [base/2, base * 2^k]. Every wait respects the floor, and
	 * the last three (ranges up to 256..1024 ms) outlast the first three (at most 2+4+8 ms). */
	uint64_t gaps[10];
	for (size_t i = 0; i < 10; i++) {
		gaps[i] = m->log[i + 1].t - m->log[i].t;
		assert_true(gaps[i] >= cfg.backoff_base_ms / 2);
	}
	assert_true(gaps[7] + gaps[8] + gaps[9] > gaps[0] + gaps[1] + gaps[2]);
	assert_int_equal(m->violations, 0);
	mock_free(m);
}

static struct outcome reject_bad(struct mock *m, const char *key, enum kd_wb_op op, unsigned nth)
{
	(void)m;
	(void)op;
	(void)nth;
	if (!strcmp(key, "ns/bad"))
		return (struct outcome){KD_WB_PERMANENT, false};
	return (struct outcome){KD_WB_OK, true};
}

static int collect(void *arg, const char *key, enum kd_wb_state st, json_object *obj)
{
	char *buf = arg;
	(void)obj;
	size_t n = strlen(buf);
	snprintf(buf + n, 512 - n, "%s=%s;", key, kd_wb_state_name(st));
	return 0;
}

static void permanent_422_marks_failed(void **state)
{
	(void)state;
	struct mock *m = mock_new(NULL, false);
	m->decide = reject_bad;
	assert_int_equal(put(m, "ns/bad", "n1"), 0);
	assert_int_equal(put(m, "ns/ok", "n1"), 0);
	assert_true(RUN_UNTIL(m, m->n_failed == 1 && counters(m).persisted == 1, 2000));
	struct kd_wb_counters c = counters(m);
	assert_int_equal(state_of(m, "ns/bad"), KD_WB_FAILED);
	assert_int_equal(c.failed, 1);
	assert_int_equal(c.permanent_errors, 1);
	assert_int_equal(c.retries, 0);
	assert_int_equal(m->last_failed_op, KD_WB_OP_CREATE);
	assert_non_null(strstr(m->last_failed_msg, "is invalid"));
	const struct kd_error *err = kd_wb_error(m->wb, "ns/bad");
	assert_non_null(err);
	assert_int_equal(err->http_status, 422);
	assert_string_equal(err->reason, "Invalid");
	assert_int_equal(kd_wb_count(m->wb), 1); /* not a live instance */
	char held[512] = "";
	assert_int_equal(kd_wb_held(m->wb, collect, held), 1); /* but held: nothing is lost */
	assert_string_equal(held, "ns/bad=failed;");
	run_for(m, 30);
	assert_int_equal(count_ops(m, "ns/bad", KD_WB_OP_CREATE), 1); /* not retried */
	/* The stage fixes the cause and retries. */
	m->decide = NULL;
	assert_int_equal(kd_wb_retry(m->wb, "ns/bad"), 0);
	assert_int_equal(kd_wb_retry(m->wb, "ns/ok"), -EINVAL);
	assert_true(RUN_UNTIL(m, state_of(m, "ns/bad") == KD_WB_PERSISTED, 2000));
	assert_null(kd_wb_error(m->wb, "ns/bad"));
	assert_int_equal(count_ops(m, "ns/bad", KD_WB_OP_CREATE), 2);
	assert_int_equal(m->violations, 0);
	mock_free(m);
}

static struct outcome reject_updates(struct mock *m, const char *key, enum kd_wb_op op,
                                     unsigned nth)
{
	(void)m;
	(void)key;
	(void)nth;
	if (op == KD_WB_OP_UPDATE)
		return (struct outcome){KD_WB_PERMANENT, false};
	return (struct outcome){KD_WB_OK, true};
}

static void permanent_update_failure_keeps_the_instance(void **state)
{
	(void)state;
	struct mock *m = mock_new(NULL, false);
	m->decide = reject_updates;
	assert_int_equal(put(m, "ns/a", "n1"), 0);
	assert_true(RUN_UNTIL(m, state_of(m, "ns/a") == KD_WB_PERSISTED, 2000));
	assert_int_equal(put(m, "ns/a", "n1-ready"), 0);
	assert_true(RUN_UNTIL(m, m->n_failed == 1, 2000));
	assert_int_equal(m->last_failed_op, KD_WB_OP_UPDATE);
	assert_int_equal(state_of(m, "ns/a"), KD_WB_PERSISTED); /* it exists in the API */
	assert_int_equal(kd_wb_count(m->wb), 1);
	assert_non_null(kd_wb_error(m->wb, "ns/a"));
	struct kd_wb_counters c = counters(m);
	assert_int_equal(c.permanent_errors, 1);
	assert_int_equal(c.failed, 0);
	assert_int_equal(c.retries, 0);
	run_for(m, 20);
	assert_int_equal(count_ops(m, "ns/a", KD_WB_OP_UPDATE), 1);
	m->decide = NULL; /* the stage fixed the cause */
	assert_int_equal(kd_wb_retry(m->wb, "ns/a"), 0);
	assert_true(RUN_UNTIL(m, counters(m).writes_ok == 2, 2000));
	assert_null(kd_wb_error(m->wb, "ns/a"));
	json_object *stored = NULL;
	assert_true(json_object_object_get_ex(m->store, "ns/a", &stored));
	assert_string_equal(obj_node(stored), "n1-ready");
	run_for(m, 10);
	assert_int_equal(kd_wb_evict(m->wb, "ns/a"), 0); /* nothing pending any more */
	assert_int_equal(m->violations, 0);
	mock_free(m);
}

static void rate_limit_respected(void **state)
{
	(void)state;
	struct kd_wb_config cfg = test_cfg();
	cfg.qps = 1000;
	cfg.burst = 10;
	cfg.batch_size = 50;
	cfg.max_in_flight = 0;
	struct mock *m = mock_new(&cfg, false);
	char key[32];
	for (int i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "ns/r-%02d", i);
		assert_int_equal(put(m, key, "n1"), 0);
	}
	assert_true(RUN_UNTIL(m, counters(m).persisted == 50, 5000));
	assert_int_equal(m->nwrites, 50);
	for (size_t i = 0; i < 50; i++) {
		uint64_t elapsed = m->log[i].t - m->t0;
		/* never more than burst + elapsed * qps writes issued by loop time t */
		assert_true(i + 1 <= cfg.burst + elapsed * 1000 / 1000);
	}
	/* and the limit did apply: 40 writes beyond the burst need >= 40 ms at 1000 qps */
	assert_true(m->log[49].t - m->t0 >= 39);
	assert_int_equal(m->violations, 0);
	mock_free(m);
}

static void max_in_flight_respected(void **state)
{
	(void)state;
	struct kd_wb_config cfg = test_cfg();
	cfg.max_in_flight = 4;
	cfg.batch_size = 100;
	struct mock *m = mock_new(&cfg, false);
	m->delay_ms = 3;
	char key[32];
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "ns/m-%03d", i);
		assert_int_equal(put(m, key, "n1"), 0);
	}
	assert_true(
	    RUN_UNTIL(m, counters(m).persisted == 100 && counters(m).in_flight == 0, 10000));
	assert_int_equal(m->nwrites, 100);
	assert_int_equal(m->max_inflight, 4); /* reached, never exceeded */
	assert_int_equal(counters(m).in_flight, 0);
	assert_int_equal(m->violations, 0);
	mock_free(m);
}

static void cancel_ephemeral_makes_no_write(void **state)
{
	(void)state;
	struct kd_wb_config cfg = test_cfg();
	cfg.batch_size = 0;
	cfg.batch_period_ms = 30;
	struct mock *m = mock_new(&cfg, false);
	assert_int_equal(put(m, "ns/a", "n1"), 0);
	assert_int_equal(put(m, "ns/b", "n1"), 0);
	assert_int_equal(kd_wb_cancel(m->wb, "ns/a"), 0);
	assert_int_equal(m->n_removed[KD_WB_GONE_CANCELLED], 1);
	assert_int_equal((int)state_of(m, "ns/a"), -1);
	assert_int_equal(kd_wb_cancel(m->wb, "ns/a"), -ENOENT);
	assert_int_equal(kd_wb_count(m->wb), 1);
	assert_true(RUN_UNTIL(m, state_of(m, "ns/b") == KD_WB_PERSISTED, 2000));
	run_for(m, 40);
	assert_int_equal(m->nwrites, 1);
	assert_int_equal(count_ops(m, "ns/a", KD_WB_OP_CREATE), 0);
	assert_int_equal(counters(m).cancelled, 1);
	/* the latency counts from the put: the 30 ms batch wait is in it; the cancelled entry,
	 * never written, has none */
	struct kd_prom_hist lat;
	kd_wb_get_latency(m->wb, &lat);
	assert_int_equal(lat.count, 1);
	assert_true(lat.sum >= 0.029);
	for (size_t i = 0; i < lat.n && lat.le[i] < 0.029; i++)
		assert_int_equal(lat.counts[i], 0);
	assert_int_equal(m->violations, 0);
	mock_free(m);
}

static void cancel_persisting_creates_then_deletes(void **state)
{
	(void)state;
	struct mock *m = mock_new(NULL, false);
	m->watch = false;
	m->hold = true;
	m->check = false; /* a scale-down: the victim leaves the live count */
	assert_int_equal(put(m, "ns/a", "n1"), 0);
	assert_true(RUN_UNTIL(m, m->nwrites == 1, 2000));
	assert_int_equal(state_of(m, "ns/a"), KD_WB_PERSISTING);
	assert_int_equal(kd_wb_cancel(m->wb, "ns/a"), 0);
	assert_int_equal(state_of(m, "ns/a"), KD_WB_DELETING);
	assert_int_equal(kd_wb_count(m->wb), 0);
	assert_int_equal(counters(m).deleting, 1);
	assert_int_equal(kd_wb_held(m->wb, NULL, NULL), 0);
	assert_int_equal(kd_wb_put(m->wb, "ns/a", kd_wb_get(m->wb, "ns/a")), -EBUSY);
	run_for(m, 20);
	assert_int_equal(m->nwrites, 1); /* no delete while the create is in flight */
	mock_release(m);
	assert_true(RUN_UNTIL(m, (int)state_of(m, "ns/a") == -1, 2000));
	assert_int_equal(m->nlog, 2);
	assert_int_equal(m->log[0].op, KD_WB_OP_CREATE);
	assert_int_equal(m->log[1].op, KD_WB_OP_DELETE);
	assert_int_equal(json_object_object_length(m->store), 0); /* ended up deleted */
	assert_int_equal(m->n_removed[KD_WB_GONE_DELETED], 1);
	assert_int_equal(counters(m).deleted, 1);
	assert_int_equal(counters(m).deleting, 0);
	mock_free(m);
}

static struct outcome reject_all(struct mock *m, const char *key, enum kd_wb_op op, unsigned nth)
{
	(void)m;
	(void)key;
	(void)op;
	(void)nth;
	return (struct outcome){KD_WB_PERMANENT, false};
}

static void cancel_persisting_whose_create_fails_needs_no_delete(void **state)
{
	(void)state;
	struct mock *m = mock_new(NULL, false);
	m->hold = true;
	m->check = false;
	m->decide = reject_all;
	assert_int_equal(put(m, "ns/a", "n1"), 0);
	assert_true(RUN_UNTIL(m, m->nwrites == 1, 2000));
	assert_int_equal(kd_wb_cancel(m->wb, "ns/a"), 0);
	mock_release(m);
	assert_true(RUN_UNTIL(m, (int)state_of(m, "ns/a") == -1, 2000));
	run_for(m, 20);
	assert_int_equal(count_ops(m, "ns/a", KD_WB_OP_DELETE), 0);
	assert_int_equal(m->n_removed[KD_WB_GONE_CANCELLED], 1);
	assert_int_equal(m->n_failed, 0); /* nobody wants it any more */
	mock_free(m);
}

static void observe_before_write_completes_wins(void **state)
{
	(void)state;
	struct mock *m = mock_new(NULL, false);
	m->hold = true; /* the response is slow; the watch event (1 ms) comes first */
	assert_int_equal(put(m, "ns/a", "n1"), 0);
	assert_true(RUN_UNTIL(m, m->nwrites == 1, 2000));
	assert_true(RUN_UNTIL(m, state_of(m, "ns/a") == KD_WB_PERSISTED, 2000));
	assert_int_equal(counters(m).api_wins, 1);
	assert_int_equal(counters(m).in_flight, 1); /* still outstanding at the writer */
	mock_release(m);
	assert_true(RUN_UNTIL(m, counters(m).ignored_results == 1, 2000));
	struct kd_wb_counters c = counters(m);
	assert_int_equal(c.in_flight, 0);
	assert_int_equal(c.writes_ok, 0); /* its result no longer mattered */
	assert_int_equal(state_of(m, "ns/a"), KD_WB_PERSISTED);
	run_for(m, 20);
	assert_int_equal(m->nwrites, 1);
	assert_int_equal(m->violations, 0);
	mock_free(m);
}

static void observe_cancels_pending_create(void **state)
{
	(void)state;
	struct kd_wb_config cfg = test_cfg();
	cfg.batch_size = 0;
	cfg.batch_period_ms = 30;
	struct mock *m = mock_new(&cfg, false);
	assert_int_equal(put(m, "ns/a", "n1"), 0);
	json_object *api = mkobj("ns/a", "n2");
	json_object_object_add(api, "rv", json_object_new_int(7));
	json_object_object_add(m->informer, "ns/a", json_object_get(api));
	assert_int_equal(kd_wb_observe(m->wb, "ns/a", api), 0);
	json_object_put(api);
	assert_int_equal(state_of(m, "ns/a"), KD_WB_PERSISTED);
	assert_string_equal(obj_node(kd_wb_get(m->wb, "ns/a")), "n2");
	assert_int_equal(counters(m).api_wins, 1);
	assert_int_equal(m->n_persisted, 1);
	run_for(m, 60);
	assert_int_equal(m->nwrites, 0); /* the pending create was cancelled */
	json_object *other = mkobj("ns/zz", "n1");
	assert_int_equal(kd_wb_observe(m->wb, "ns/zz", other), -ENOENT);
	json_object_put(other);
	assert_int_equal(m->violations, 0);
	mock_free(m);
}

static void eviction_only_after_observe(void **state)
{
	(void)state;
	struct kd_wb_config cfg = test_cfg();
	cfg.retention_ms = 5;
	struct mock *m = mock_new(&cfg, false);
	m->watch = false;
	assert_int_equal(put(m, "ns/a", "n1"), 0);
	assert_true(RUN_UNTIL(m, counters(m).writes_ok == 1, 2000));
	assert_int_equal(state_of(m, "ns/a"), KD_WB_PERSISTING);
	assert_int_equal(kd_wb_evict(m->wb, "ns/a"), -EBUSY);
	run_for(m, 30); /* well past the retention: written, but not observed */
	assert_int_equal(state_of(m, "ns/a"), KD_WB_PERSISTING);
	assert_int_equal(counters(m).evicted, 0);
	json_object *api = NULL;
	assert_true(json_object_object_get_ex(m->store, "ns/a", &api));
	json_object_object_add(m->informer, "ns/a", json_object_get(api));
	assert_int_equal(kd_wb_observe(m->wb, "ns/a", api), 0);
	assert_true(RUN_UNTIL(m, (int)state_of(m, "ns/a") == -1, 2000));
	assert_int_equal(m->n_removed[KD_WB_GONE_EVICTED], 1);
	assert_int_equal(counters(m).evicted, 1);
	assert_int_equal(m->violations, 0);
	mock_free(m);

	/* Retained forever: evicted only on request, and not while an update is pending. */
	m = mock_new(NULL, false);
	assert_int_equal(put(m, "ns/b", "n1"), 0);
	assert_true(RUN_UNTIL(m, state_of(m, "ns/b") == KD_WB_PERSISTED, 2000));
	assert_int_equal(put(m, "ns/b", "n1-ready"), 0);
	assert_int_equal(kd_wb_evict(m->wb, "ns/b"), -EBUSY);
	assert_true(RUN_UNTIL(m, counters(m).writes_ok == 2, 2000));
	run_for(m, 20);
	assert_int_equal(state_of(m, "ns/b"), KD_WB_PERSISTED);
	assert_int_equal(kd_wb_evict(m->wb, "ns/b"), 0);
	assert_int_equal(kd_wb_evict(m->wb, "ns/b"), -ENOENT);
	assert_int_equal(m->n_removed[KD_WB_GONE_EVICTED], 1);
	mock_free(m);
}

static void unobserved_create_is_verified_by_reread(void **state)
{
	(void)state;
	struct kd_wb_config cfg = test_cfg();
	cfg.observe_timeout_ms = 20;
	struct mock *m = mock_new(&cfg, true);
	m->watch = false; /* a watch gap: neither event is ever delivered */
	assert_int_equal(put(m, "ns/a", "n1"), 0);
	assert_int_equal(put(m, "ns/b", "n1"), 0);
	assert_true(RUN_UNTIL(m, counters(m).writes_ok == 2, 2000));
	assert_int_equal(state_of(m, "ns/a"), KD_WB_PERSISTING);
	m->check = false;                         /* b leaves by an API deletion */
	json_object_object_del(m->store, "ns/b"); /* deleted while the watch was not looking */
	assert_true(RUN_UNTIL(
	    m, state_of(m, "ns/a") == KD_WB_PERSISTED && (int)state_of(m, "ns/b") == -1, 2000));
	struct kd_wb_counters c = counters(m);
	assert_int_equal(c.verifies, 2);
	assert_int_equal(m->nrereads, 2);
	assert_int_equal(obj_rv(kd_wb_get(m->wb, "ns/a")), 1); /* the API copy */
	assert_int_equal(m->n_removed[KD_WB_GONE_API_DELETED], 1);
	assert_int_equal(m->nwrites, 2); /* b is not re-created: the API wins */
	run_for(m, 50);
	assert_int_equal(counters(m).verifies, 2); /* a persisted entry is not verified again */
	mock_free(m);
}

static void held_lists_exactly_the_unpersisted(void **state)
{
	(void)state;
	struct kd_wb_config cfg = test_cfg();
	cfg.batch_size = 3;
	cfg.batch_period_ms = 100000;
	struct mock *m = mock_new(&cfg, false);
	m->check = false; /* includes a scale-down */
	m->decide = reject_bad;
	assert_int_equal(put(m, "ns/p1", "n1"), 0);
	assert_int_equal(put(m, "ns/p2", "n1"), 0);
	assert_int_equal(put(m, "ns/bad", "n1"), 0);
	assert_true(RUN_UNTIL(m, counters(m).persisted == 2 && m->n_failed == 1, 2000));
	m->watch = false;
	m->hold = true;
	assert_int_equal(put(m, "ns/s1", "n1"), 0);
	assert_int_equal(put(m, "ns/s2", "n1"), 0);
	assert_int_equal(put(m, "ns/d1", "n1"), 0);
	assert_true(RUN_UNTIL(m, m->nwrites == 6, 2000));
	assert_int_equal(kd_wb_cancel(m->wb, "ns/d1"), 0);
	assert_int_equal(put(m, "ns/e1", "n1"), 0);
	assert_int_equal(put(m, "ns/e2", "n1"), 0);
	run_for(m, 10);
	char held[512] = "";
	assert_int_equal(kd_wb_held(m->wb, collect, held), 5);
	assert_string_equal(held, "ns/bad=failed;ns/s1=persisting;ns/s2=persisting;"
	                          "ns/e1=ephemeral;ns/e2=ephemeral;");
	assert_int_equal(kd_wb_count(m->wb), 6); /* p1 p2 s1 s2 e1 e2 */
	assert_int_equal(kd_wb_size(m->wb), 8);
	assert_int_equal(kd_wb_foreach(m->wb, KD_WB_STATE_BIT(KD_WB_PERSISTED), NULL, NULL), 2);
	char *dump = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&dump, &len);
	assert_non_null(f);
	kd_wb_dump(m->wb, f);
	fclose(f);
	assert_non_null(strstr(dump, "ns/bad failed"));
	assert_non_null(strstr(dump, "error="));
	assert_non_null(strstr(dump, "ns/d1 deleting need=delete in-flight"));
	assert_non_null(strstr(dump, "persisting 2"));
	free(dump);
	mock_free(m); /* frees with writes in flight: they are answered after the cache is gone */
}

static void api_deletion_removes_persisted(void **state)
{
	(void)state;
	struct kd_wb_config cfg = test_cfg();
	cfg.batch_size = 1;
	struct mock *m = mock_new(&cfg, false);
	assert_int_equal(put(m, "ns/a", "n1"), 0);
	assert_true(RUN_UNTIL(m, state_of(m, "ns/a") == KD_WB_PERSISTED, 2000));
	m->check = false;
	json_object_object_del(m->store, "ns/a"); /* kubectl delete */
	emit_watch(m, "ns/a", NULL);
	assert_true(RUN_UNTIL(m, (int)state_of(m, "ns/a") == -1, 2000));
	assert_int_equal(m->n_removed[KD_WB_GONE_API_DELETED], 1);
	assert_int_equal(counters(m).api_deleted, 1);
	/* a deletion event for a name never observed refers to an older object: ignored */
	assert_int_equal(put(m, "ns/b", "n1"), 0);
	assert_int_equal(kd_wb_observe_deleted(m->wb, "ns/b"), -EAGAIN);
	assert_int_equal(state_of(m, "ns/b"), KD_WB_EPHEMERAL);
	assert_int_equal(kd_wb_observe_deleted(m->wb, "ns/zz"), -ENOENT);
	mock_free(m);
}

static void write_that_cannot_start_is_retried(void **state)
{
	(void)state;
	struct mock *m = mock_new(NULL, false);
	m->start_fail = 2;
	m->start_rc = -ECONNREFUSED;
	assert_int_equal(put(m, "ns/a", "n1"), 0);
	assert_true(RUN_UNTIL(m, state_of(m, "ns/a") == KD_WB_PERSISTED, 2000));
	struct kd_wb_counters c = counters(m);
	assert_int_equal(c.retries, 2);
	assert_int_equal(c.writes_issued, 3);
	assert_int_equal(c.in_flight, 0);
	assert_int_equal(m->nwrites, 1);
	assert_int_equal(m->violations, 0);
	mock_free(m);
}

static struct outcome always_503(struct mock *m, const char *key, enum kd_wb_op op, unsigned nth)
{
	(void)m;
	(void)key;
	(void)op;
	(void)nth;
	return (struct outcome){KD_WB_RETRY, false};
}

static void max_attempts_fails_the_write(void **state)
{
	(void)state;
	struct kd_wb_config cfg = test_cfg();
	cfg.max_attempts = 3;
	struct mock *m = mock_new(&cfg, false);
	m->decide = always_503;
	assert_int_equal(put(m, "ns/a", "n1"), 0);
	assert_true(RUN_UNTIL(m, m->n_failed == 1, 2000));
	run_for(m, 20);
	struct kd_wb_counters c = counters(m);
	assert_int_equal(c.creates_issued, 3);
	assert_int_equal(c.retries, 3);
	assert_int_equal(c.permanent_errors, 1);
	assert_int_equal(state_of(m, "ns/a"), KD_WB_FAILED);
	assert_non_null(strstr(m->last_failed_msg, "giving up after 3 attempts"));
	assert_int_equal(m->violations, 0);
	mock_free(m);
}

static void classify_maps_http_outcomes(void **state)
{
	(void)state;
	assert_int_equal(kd_wb_classify(201, NULL), KD_WB_OK);
	assert_int_equal(kd_wb_classify(409, "AlreadyExists"), KD_WB_ALREADY_EXISTS);
	assert_int_equal(kd_wb_classify(409, "Conflict"), KD_WB_CONFLICT);
	assert_int_equal(kd_wb_classify(409, NULL), KD_WB_CONFLICT);
	assert_int_equal(kd_wb_classify(404, "NotFound"), KD_WB_NOT_FOUND);
	assert_int_equal(kd_wb_classify(429, NULL), KD_WB_RETRY);
	assert_int_equal(kd_wb_classify(500, NULL), KD_WB_RETRY);
	assert_int_equal(kd_wb_classify(503, NULL), KD_WB_RETRY);
	assert_int_equal(kd_wb_classify(0, NULL), KD_WB_RETRY);
	assert_int_equal(kd_wb_classify(422, "Invalid"), KD_WB_PERMANENT);
	assert_int_equal(kd_wb_classify(403, "Forbidden"), KD_WB_PERMANENT);
	struct kd_error *err = NULL;
	assert_int_equal(kd_wb_classify_error(NULL), KD_WB_OK);
	kd_error_set(&err, ECONNREFUSED, 0, "connect 127.0.0.1:6443: refused");
	assert_int_equal(kd_wb_classify_error(err), KD_WB_RETRY);
	kd_error_free(err);
	err = NULL;
	kd_error_set_reason(&err, EEXIST, 409, "AlreadyExists", "pods \"p\" already exists");
	assert_int_equal(kd_wb_classify_error(err), KD_WB_ALREADY_EXISTS);
	kd_error_free(err);
	assert_string_equal(kd_wb_state_name(KD_WB_PERSISTING), "persisting");
	assert_string_equal(kd_wb_result_name(KD_WB_ALREADY_EXISTS), "already-exists");
	struct kd_wb_writer none = {0};
	struct kd_error *e2 = NULL;
	struct kd_loop *loop = kd_loop_new();
	assert_null(kd_wb_new(loop, NULL, &none, NULL, &e2));
	assert_non_null(e2);
	assert_int_equal(e2->errnum, EINVAL);
	kd_error_free(e2);
	kd_loop_free(loop);
}

static void writer_answering_synchronously(void **state)
{
	(void)state;
	struct mock *m = mock_new(NULL, true);
	m->sync = true;
	m->watch = false;
	m->decide = reject_bad;
	json_object *pre = mkobj("ns/b", "n2");
	store_put(m, "ns/b", pre);
	json_object_put(pre);
	assert_int_equal(put(m, "ns/a", "n1"), 0);
	assert_int_equal(put(m, "ns/b", "n1"), 0);
	assert_int_equal(put(m, "ns/bad", "n1"), 0);
	assert_true(RUN_UNTIL(m, m->n_failed == 1 && state_of(m, "ns/b") == KD_WB_PERSISTED, 2000));
	assert_string_equal(obj_node(kd_wb_get(m->wb, "ns/b")), "n2"); /* via the reread */
	assert_int_equal(state_of(m, "ns/a"), KD_WB_PERSISTING);       /* written, not observed */
	assert_int_equal(state_of(m, "ns/bad"), KD_WB_FAILED);
	assert_non_null(strstr(m->last_failed_msg, "is invalid"));
	assert_int_equal(kd_wb_error(m->wb, "ns/bad")->http_status, 422);
	struct kd_wb_counters c = counters(m);
	assert_int_equal(c.in_flight, 0);
	assert_int_equal(c.rereads_in_flight, 0);
	assert_int_equal(c.writes_issued, 3);
	assert_int_equal(c.already_exists, 1);
	assert_int_equal(m->violations, 0);
	mock_free(m);
}

/* --- 10,000 instances through the pipeline
 * --------------------------------------------------------- */

#define PIPE_N 10000

static struct outcome pipeline_decide(struct mock *m, const char *key, enum kd_wb_op op,
                                      unsigned nth)
{
	int i = atoi(strrchr(key, '-') + 1);
	if (op != KD_WB_OP_CREATE)
		return (struct outcome){KD_WB_OK, true};
	if (i % 1000 == 3)
		return (struct outcome){KD_WB_PERMANENT, false};
	if (i % 100 == 1 && nth == 1) /* plain 503 */
		return (struct outcome){KD_WB_RETRY, false};
	if (i % 100 == 2 && nth == 1) { /* applied, but the response (and watch event) lost */
		m->mute_watch = true;
		return (struct outcome){KD_WB_RETRY, true};
	}
	return (struct outcome){KD_WB_OK, true};
}

static void pipeline_10000_exact_counters(void **state)
{
	(void)state;
	struct kd_wb_config cfg = test_cfg();
	cfg.max_in_flight = 64;
	cfg.batch_size = 256;
	cfg.batch_period_ms = 2;
	cfg.retention_ms = 0;
	cfg.backoff_base_ms = 1;
	cfg.backoff_cap_ms = 4;
	struct mock *m = mock_new(&cfg, true);
	m->watch_ms = 2;
	m->decide = pipeline_decide;
	char key[32];
	for (int i = 0; i < PIPE_N; i++) {
		snprintf(key, sizeof(key), "pipe/p-%05d", i);
		assert_int_equal(put(m, key, "n1"), 0);
		if (i % 100 == 0)
			assert_int_equal(kd_wb_cancel(m->wb, key), 0); /* scale-down before write */
		if (i % 100 == 5)
			assert_int_equal(put(m, key, "n1"), 0); /* duplicate */
		if (i % 100 == 6)
			assert_int_equal(put(m, key, "n2"), 0); /* changed before written */
		if (i % 1000 == 999)
			for (int k = 0; k < 3; k++)
				kd_loop_run_once(m->loop, 0);
	}
	const uint64_t C = PIPE_N / 100, F = PIPE_N / 1000, R = PIPE_N / 100, L = PIPE_N / 100;
	const uint64_t done = PIPE_N - C - F;
	assert_true(RUN_UNTIL(m,
	                      counters(m).evicted == done && counters(m).in_flight == 0 &&
	                          counters(m).queued + counters(m).backoff == 0 &&
	                          counters(m).rereads_in_flight == 0,
	                      20000));
	struct kd_wb_counters c = counters(m);
	if (getenv("WB_DUMP"))
		kd_wb_dump(m->wb, stderr);
	assert_int_equal(c.puts, PIPE_N + 2 * PIPE_N / 100);
	assert_int_equal(c.noop_puts, PIPE_N / 100);
	assert_int_equal(c.cancelled, C);
	assert_int_equal(c.creates_issued, PIPE_N - C + R + L);
	assert_int_equal(c.writes_issued, c.creates_issued);
	assert_int_equal(c.writes_ok, done - L);
	assert_int_equal(c.retries, R + L);
	assert_int_equal(c.already_exists, L);
	assert_int_equal(c.rereads, L);
	assert_int_equal(c.permanent_errors, F);
	assert_int_equal(c.failed, F);
	assert_int_equal(m->n_failed, F);
	assert_int_equal(c.observed, done);
	assert_int_equal(c.api_wins, 0);
	assert_int_equal(c.ignored_results, 0);
	assert_int_equal(c.evicted, done);
	assert_int_equal(c.ephemeral + c.persisting + c.persisted + c.deleting, 0);
	/* every write has exactly one outcome: nothing silently lost */
	assert_int_equal(c.writes_issued, c.writes_ok + c.already_exists + c.conflicts +
	                                      c.not_found + c.retries + c.permanent_errors +
	                                      c.ignored_results);
	assert_int_equal(kd_wb_size(m->wb), F);
	assert_int_equal(kd_wb_held(m->wb, NULL, NULL), F);
	assert_int_equal(json_object_object_length(m->store), done);
	assert_int_equal(json_object_object_length(m->informer), done);
	assert_int_equal(m->n_persisted, done);
	assert_int_equal(m->bad_state_at_write, 0);
	json_object *o = NULL;
	assert_true(json_object_object_get_ex(m->store, "pipe/p-00106", &o));
	assert_string_equal(obj_node(o), "n2");
	assert_false(json_object_object_get_ex(m->store, "pipe/p-00100", &o));
	assert_false(json_object_object_get_ex(m->store, "pipe/p-01003", &o));
	assert_true(m->max_inflight <= 64);
	assert_int_equal(m->violations, 0);
	mock_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(happy_path),
	    cmocka_unit_test(put_is_idempotent_by_key),
	    cmocka_unit_test(already_exists_counts_as_done),
	    cmocka_unit_test(already_exists_rereads_the_api_copy),
	    cmocka_unit_test(conflict_triggers_reread),
	    cmocka_unit_test(conflict_without_reread_retries_with_latest_base),
	    cmocka_unit_test(retry_500_with_growing_backoff),
	    cmocka_unit_test(permanent_422_marks_failed),
	    cmocka_unit_test(permanent_update_failure_keeps_the_instance),
	    cmocka_unit_test(rate_limit_respected),
	    cmocka_unit_test(max_in_flight_respected),
	    cmocka_unit_test(cancel_ephemeral_makes_no_write),
	    cmocka_unit_test(cancel_persisting_creates_then_deletes),
	    cmocka_unit_test(cancel_persisting_whose_create_fails_needs_no_delete),
	    cmocka_unit_test(observe_before_write_completes_wins),
	    cmocka_unit_test(observe_cancels_pending_create),
	    cmocka_unit_test(eviction_only_after_observe),
	    cmocka_unit_test(unobserved_create_is_verified_by_reread),
	    cmocka_unit_test(held_lists_exactly_the_unpersisted),
	    cmocka_unit_test(api_deletion_removes_persisted),
	    cmocka_unit_test(write_that_cannot_start_is_retried),
	    cmocka_unit_test(max_attempts_fails_the_write),
	    cmocka_unit_test(writer_answering_synchronously),
	    cmocka_unit_test(classify_maps_http_outcomes),
	    cmocka_unit_test(pipeline_10000_exact_counters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
