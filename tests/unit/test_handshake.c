/* Unit tests for kd_handshake: the two-round handshake, epoch fencing, sequencing (duplicates,
 * reordering, gaps) and reconciliation after restarts of either side. Every message between the
 * two state machines goes through kd_msg_encode/kd_msg_decode, as on the wire. The "stage" on
 * each side is a small in-memory mock of our own cache. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kd/handshake.h"

#define MAXOBJ 64

/* ---- mock downstream stage: objects held (ephemeral) with apply counters -------------------- */

struct dobj {
	struct kd_op op;
	bool present;
	int applied; /* how many times apply() materialised it (exactly-once check) */
};

struct dstage {
	struct dobj o[MAXOBJ];
	int drops, keeps;
	int fail_held;
	const char *refuse_key; /* apply of this key fails */
	char last_source[64];
};

static struct dobj *dfind(struct dstage *s, const char *key, bool create)
{
	for (int i = 0; i < MAXOBJ; i++)
		if (s->o[i].op.key && strcmp(s->o[i].op.key, key) == 0)
			return &s->o[i];
	if (!create)
		return NULL;
	for (int i = 0; i < MAXOBJ; i++)
		if (!s->o[i].op.key)
			return &s->o[i];
	fail_msg("mock store full");
	return NULL;
}

static int d_held(void *ud, const char *source, struct kd_op_list *held, struct kd_error **err)
{
	struct dstage *s = ud;
	snprintf(s->last_source, sizeof(s->last_source), "%s", source);
	if (s->fail_held)
		return kd_error_set(err, EIO, 0, "cache unavailable");
	for (int i = 0; i < MAXOBJ; i++)
		if (s->o[i].present)
			kd_op_copy(kd_op_list_push(held), &s->o[i].op);
	return 0;
}

static int d_apply(void *ud, const char *source, uint64_t epoch, const struct kd_op *op,
                   struct kd_error **err)
{
	(void)source;
	(void)epoch;
	struct dstage *s = ud;
	if (s->refuse_key && strcmp(op->key, s->refuse_key) == 0)
		return kd_error_set(err, ENOENT, 0, "template not found");
	struct dobj *o = dfind(s, op->key, op->kind == KD_OP_UPSERT);
	if (op->kind == KD_OP_DELETE) {
		if (o && o->present)
			o->present = false;
		return 0;
	}
	/* idempotent by key: an identical upsert of a present object is a no-op */
	if (o->present && kd_op_equal(&o->op, op))
		return 0;
	int applied = o->applied;
	kd_op_fini(&o->op);
	kd_op_copy(&o->op, op);
	o->present = true;
	o->applied = applied + 1;
	return 0;
}

static int d_drop(void *ud, const char *source, const char *key, struct kd_error **err)
{
	(void)source;
	(void)err;
	struct dstage *s = ud;
	struct dobj *o = dfind(s, key, false);
	if (o)
		o->present = false;
	s->drops++;
	return 0;
}

static int d_keep(void *ud, const char *source, const char *key, struct kd_error **err)
{
	(void)source;
	(void)key;
	(void)err;
	((struct dstage *)ud)->keeps++;
	return 0;
}

static void dstage_fini(struct dstage *s)
{
	for (int i = 0; i < MAXOBJ; i++)
		kd_op_fini(&s->o[i].op);
	memset(s, 0, sizeof(*s));
}

static int dcount(struct dstage *s)
{
	int n = 0;
	for (int i = 0; i < MAXOBJ; i++)
		n += s->o[i].present;
	return n;
}

static int dapplied(struct dstage *s, const char *key)
{
	struct dobj *o = dfind(s, key, false);
	return o ? o->applied : 0;
}

static bool dhas(struct dstage *s, const char *key)
{
	struct dobj *o = dfind(s, key, false);
	return o && o->present;
}

static const struct kd_hs_down_cbs dcbs = {
    .held = d_held, .apply = d_apply, .drop = d_drop, .keep = d_keep};

/* ---- mock upstream stage: wanted ephemeral objects + the "API Server" ------------------------ */

struct ustage {
	struct kd_op_list wanted;
	const char *persisted[MAXOBJ];
	int remote_errors;
	char last_remote[256];
	int fail_wanted;
};

static int u_wanted(void *ud, struct kd_op_list *out, struct kd_error **err)
{
	struct ustage *s = ud;
	if (s->fail_wanted)
		return kd_error_set(err, EIO, 0, "cache unavailable");
	for (size_t i = 0; i < s->wanted.n; i++)
		kd_op_copy(kd_op_list_push(out), &s->wanted.v[i]);
	return 0;
}

static bool u_persisted(void *ud, const char *key)
{
	struct ustage *s = ud;
	for (int i = 0; i < MAXOBJ && s->persisted[i]; i++)
		if (strcmp(s->persisted[i], key) == 0)
			return true;
	return false;
}

static void u_remote_error(void *ud, int code, const char *reason)
{
	struct ustage *s = ud;
	assert_int_equal(code, KD_CODE_APPLY);
	s->remote_errors++;
	snprintf(s->last_remote, sizeof(s->last_remote), "%s", reason);
}

static const struct kd_hs_up_cbs ucbs = {
    .wanted = u_wanted, .persisted = u_persisted, .remote_error = u_remote_error};

static void make_pod(struct kd_op *op, const char *key, const char *node, const char *hash)
{
	kd_op_init(op, KD_OP_UPSERT, key);
	kd_op_set_tmpl(op, "PodAutoscaler", "hello-00001", "uid-1", hash);
	kd_op_set_str(&op->node, node);
	op->has |= KD_OP_HAS_CTIME;
	op->ctime_ms = 1763920000000;
}

static void want(struct ustage *s, const char *key, const char *node)
{
	make_pod(kd_op_list_push(&s->wanted), key, node, "h1");
}

/* Puts an object into the downstream stage as if it had been applied earlier. */
static void hold(struct dstage *s, const char *key, const char *node)
{
	struct dobj *o = dfind(s, key, true);
	kd_op_fini(&o->op);
	make_pod(&o->op, key, node, "h1");
	o->present = true;
	o->applied = 1;
}

/* ---- wire ------------------------------------------------------------------------------------ */

/* Encodes and decodes m, as the transport would. Returns owned. */
static struct kd_msg *wire(const struct kd_msg *m)
{
	char *buf = NULL;
	size_t len = 0;
	struct kd_error *err = NULL;
	if (kd_msg_encode(m, 0, NULL, &buf, &len, &err) < 0)
		fail_msg("encode %s: %s", kd_msg_type_name(m->type), kd_error_msg(err));
	struct kd_msg *back = NULL;
	if (kd_msg_decode(buf, len, NULL, &back, &err) < 0)
		fail_msg("decode %s: %s", buf, kd_error_msg(err));
	free(buf);
	return back;
}

/* Element i of v; aborts the test when it is missing (abort() also tells the static analyzer). */
static struct kd_msg *at(const struct kd_msg_vec *v, size_t i)
{
	if (i >= v->n || !v->v[i]) {
		fprintf(stderr, "expected at least %zu messages, got %zu\n", i + 1, v->n);
		abort();
	}
	return v->v[i];
}

/* Feeds m to the downstream connection; returns rc, replies (decoded) in out. */
static int to_down(struct kd_hs_conn *c, const struct kd_msg *m, struct kd_msg_vec *out,
                   struct kd_error **err)
{
	kd_automsg struct kd_msg *w = wire(m);
	struct kd_msg_vec raw = {0};
	int rc = kd_hs_down_on_msg(c, w, &raw, err);
	for (size_t i = 0; i < raw.n; i++)
		kd_msg_vec_push(out, wire(raw.v[i]));
	kd_msg_vec_fini(&raw);
	return rc;
}

static int to_up(struct kd_hs_up *u, const struct kd_msg *m, struct kd_msg_vec *out,
                 struct kd_error **err)
{
	kd_automsg struct kd_msg *w = wire(m);
	struct kd_msg_vec raw = {0};
	int rc = kd_hs_up_on_msg(u, w, &raw, err);
	for (size_t i = 0; i < raw.n; i++)
		kd_msg_vec_push(out, wire(raw.v[i]));
	kd_msg_vec_fini(&raw);
	return rc;
}

/* Runs the whole handshake between u and c; asserts both end READY. Returns the reconcile
 * message (owned) so callers can inspect keep/drop/resend. */
static struct kd_msg *handshake(struct kd_hs_up *u, struct kd_hs_conn *c)
{
	struct kd_msg_vec v1 = {0}, v2 = {0}, v3 = {0}, v4 = {0};
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_hs_up_connect(u, &v1), 0);
	assert_int_equal(v1.n, 1);
	assert_int_equal(at(&v1, 0)->type, KD_MSG_HELLO);
	if (to_down(c, v1.v[0], &v2, &err) < 0)
		fail_msg("hello: %s", kd_error_msg(err));
	assert_int_equal(v2.n, 1);
	assert_int_equal(at(&v2, 0)->type, KD_MSG_STATE);
	if (to_up(u, v2.v[0], &v3, &err) < 0)
		fail_msg("state: %s", kd_error_msg(err));
	assert_int_equal(v3.n, 1);
	assert_int_equal(at(&v3, 0)->type, KD_MSG_RECONCILE);
	assert_int_equal(kd_hs_up_phase(u), KD_HS_RECONCILING);
	if (to_down(c, v3.v[0], &v4, &err) < 0)
		fail_msg("reconcile: %s", kd_error_msg(err));
	assert_true(v4.n >= 1);
	assert_int_equal(at(&v4, 0)->type, KD_MSG_READY);
	struct kd_msg_vec v5 = {0};
	assert_int_equal(to_up(u, v4.v[0], &v5, &err), 0);
	assert_int_equal(v5.n, 0);
	assert_true(kd_hs_up_ready(u));
	struct kd_msg *rec = v3.v[0];
	v3.v[0] = NULL;
	kd_msg_vec_fini(&v1);
	kd_msg_vec_fini(&v2);
	kd_msg_vec_fini(&v3);
	kd_msg_vec_fini(&v4);
	return rec;
}

/* Builds and stamps a delta with upserts of the given keys. Returns owned. */
static struct kd_msg *delta_of(struct kd_hs_up *u, const char *const *keys, size_t n)
{
	struct kd_msg *d = kd_msg_new(KD_MSG_DELTA, 0, 0);
	for (size_t i = 0; i < n; i++)
		make_pod(kd_op_list_push(&d->delta.ops), keys[i], "node-1", "h1");
	assert_int_equal(kd_hs_up_stamp(u, d, NULL), 0);
	return d;
}

static bool has_key(const struct kd_key_list *l, const char *k)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], k) == 0)
			return true;
	return false;
}

static bool has_op(const struct kd_op_list *l, const char *k)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].key, k) == 0)
			return true;
	return false;
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void full_two_round_handshake_then_deltas(void **state)
{
	(void)state;
	struct dstage ds = {0};
	struct ustage us = {0};
	struct kd_hs_down *d = kd_hs_down_new(&dcbs, &ds, NULL);
	struct kd_hs_conn *c = kd_hs_conn_new(d);
	struct kd_hs_up *u = kd_hs_up_new("autoscaler-0", &ucbs, &us);

	struct kd_msg_vec out = {0};
	kd_autoerr struct kd_error *err = NULL;
	/* deltas are refused before the handshake on the upstream side too */
	kd_automsg struct kd_msg *early = kd_msg_new(KD_MSG_DELTA, 0, 0);
	assert_int_equal(kd_hs_up_stamp(u, early, NULL), -EAGAIN);

	assert_int_equal(kd_hs_up_connect(u, &out), 0);
	assert_int_equal(kd_hs_up_phase(u), KD_HS_HANDSHAKING);
	assert_string_equal(at(&out, 0)->hello.source, "autoscaler-0");
	uint64_t epoch = kd_hs_up_epoch(u);
	assert_true(epoch > 0);
	assert_int_equal(at(&out, 0)->epoch, epoch);
	struct kd_msg_vec st = {0};
	assert_int_equal(to_down(c, out.v[0], &st, &err), 0);
	assert_int_equal(kd_hs_down_phase(d, "autoscaler-0"), KD_HS_HANDSHAKING);
	assert_int_equal(kd_hs_down_epoch(d, "autoscaler-0"), epoch);
	assert_string_equal(kd_hs_conn_source(c), "autoscaler-0");
	assert_string_equal(ds.last_source, "autoscaler-0");
	assert_int_equal(at(&st, 0)->epoch, epoch);
	assert_int_equal(at(&st, 0)->state.last_seq, 0);
	assert_int_equal(at(&st, 0)->state.held.n, 0);
	struct kd_msg_vec rec = {0};
	assert_int_equal(to_up(u, st.v[0], &rec, &err), 0);
	assert_int_equal(at(&rec, 0)->reconcile.keep.n + at(&rec, 0)->reconcile.drop.n +
	                     at(&rec, 0)->reconcile.resend.n,
	                 0);
	struct kd_msg_vec rdy = {0};
	assert_int_equal(to_down(c, rec.v[0], &rdy, &err), 0);
	assert_int_equal(rdy.n, 1);
	assert_int_equal(at(&rdy, 0)->type, KD_MSG_READY);
	assert_int_equal(kd_hs_down_phase(d, "autoscaler-0"), KD_HS_READY);
	struct kd_msg_vec none = {0};
	assert_int_equal(to_up(u, rdy.v[0], &none, &err), 0);
	assert_true(kd_hs_up_ready(u));

	const char *k1[] = {"default/p-1", "default/p-2"};
	kd_automsg struct kd_msg *d1 = delta_of(u, k1, 2);
	assert_int_equal(d1->seq, 1);
	assert_int_equal(d1->epoch, epoch);
	struct kd_msg_vec ack = {0};
	assert_int_equal(to_down(c, d1, &ack, &err), 0);
	assert_int_equal(ack.n, 1);
	assert_int_equal(at(&ack, 0)->type, KD_MSG_ACK);
	assert_int_equal(at(&ack, 0)->seq, 1);
	assert_int_equal(dcount(&ds), 2);
	assert_int_equal(kd_hs_down_last_seq(d, "autoscaler-0"), 1);
	assert_int_equal(to_up(u, ack.v[0], &none, &err), 0);
	assert_int_equal(kd_hs_up_acked(u), 1);

	kd_msg_vec_fini(&out);
	kd_msg_vec_fini(&st);
	kd_msg_vec_fini(&rec);
	kd_msg_vec_fini(&rdy);
	kd_msg_vec_fini(&ack);
	kd_hs_up_free(u);
	kd_hs_conn_free(c);
	kd_hs_down_free(d);
	dstage_fini(&ds);
}

static void held_state_recovery_keep_drop_resend(void **state)
{
	(void)state;
	struct dstage ds = {0};
	struct ustage us = {0};
	hold(&ds, "default/a", "node-1"); /* both agree -> keep */
	hold(&ds, "default/b", "node-1"); /* upstream cancelled it, not persisted -> drop */
	hold(&ds, "default/p", "node-1"); /* upstream forgot, but persisted -> keep */
	hold(&ds, "default/m", "node-1"); /* upstream wants it on node-2 -> resend */
	want(&us, "default/a", "node-1");
	want(&us, "default/c", "node-1"); /* downstream lacks it -> resend */
	want(&us, "default/m", "node-2");
	want(&us, "default/w", "node-1"); /* already written back -> nothing */
	us.persisted[0] = "default/p";
	us.persisted[1] = "default/w";

	struct kd_hs_down *d = kd_hs_down_new(&dcbs, &ds, NULL);
	struct kd_hs_conn *c = kd_hs_conn_new(d);
	struct kd_hs_up *u = kd_hs_up_new("sched", &ucbs, &us);
	kd_automsg struct kd_msg *rec = handshake(u, c);
	assert_int_equal(rec->reconcile.keep.n, 2);
	assert_true(has_key(&rec->reconcile.keep, "default/a"));
	assert_true(has_key(&rec->reconcile.keep, "default/p"));
	assert_int_equal(rec->reconcile.drop.n, 1);
	assert_true(has_key(&rec->reconcile.drop, "default/b"));
	assert_int_equal(rec->reconcile.resend.n, 2);
	assert_true(has_op(&rec->reconcile.resend, "default/c"));
	assert_true(has_op(&rec->reconcile.resend, "default/m"));

	/* the downstream applied it: a, p kept untouched, b dropped, c new, m moved */
	assert_true(dhas(&ds, "default/a"));
	assert_int_equal(dapplied(&ds, "default/a"), 1);
	assert_true(dhas(&ds, "default/p"));
	assert_false(dhas(&ds, "default/b"));
	assert_true(dhas(&ds, "default/c"));
	assert_string_equal(dfind(&ds, "default/m", false)->op.node, "node-2");
	assert_false(dhas(&ds, "default/w"));
	assert_int_equal(ds.drops, 1);
	assert_int_equal(ds.keeps, 2);
	assert_int_equal(dcount(&ds), 4);

	kd_op_list_fini(&us.wanted);
	kd_hs_up_free(u);
	kd_hs_conn_free(c);
	kd_hs_down_free(d);
	dstage_fini(&ds);
}

static void fencing_rejects_old_epoch_after_new_hello(void **state)
{
	(void)state;
	struct dstage ds = {0};
	struct ustage us = {0};
	struct kd_hs_down *d = kd_hs_down_new(&dcbs, &ds, NULL);
	struct kd_hs_conn *c1 = kd_hs_conn_new(d);
	struct kd_hs_up *u = kd_hs_up_new("up", &ucbs, &us);
	kd_msg_free(handshake(u, c1));
	uint64_t e1 = kd_hs_up_epoch(u);
	const char *k[] = {"ns/x1"};
	kd_automsg struct kd_msg *stale = delta_of(u, k, 1); /* in flight on the old connection */

	/* the upstream reconnects on a new connection: new epoch, new hello */
	struct kd_hs_conn *c2 = kd_hs_conn_new(d);
	kd_hs_up_disconnect(u);
	kd_msg_free(handshake(u, c2));
	uint64_t e2 = kd_hs_up_epoch(u);
	assert_true(e2 > e1);
	assert_int_equal(kd_hs_down_epoch(d, "up"), e2);

	struct kd_msg_vec out = {0};
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(to_down(c1, stale, &out, &err), -ESTALE);
	assert_int_equal(out.n, 1);
	assert_int_equal(at(&out, 0)->type, KD_MSG_ERROR);
	assert_int_equal(at(&out, 0)->error.code, KD_CODE_STALE_EPOCH);
	assert_non_null(strstr(err->msg, "is fenced"));
	assert_false(dhas(&ds, "ns/x1"));
	assert_int_equal(dapplied(&ds, "ns/x1"), 0);
	kd_msg_vec_fini(&out);
	kd_error_free(err);
	err = NULL;

	/* the old epoch on the NEW connection is fenced too */
	assert_int_equal(to_down(c2, stale, &out, &err), -ESTALE);
	assert_false(dhas(&ds, "ns/x1"));
	kd_msg_vec_fini(&out);
	kd_error_free(err);
	err = NULL;

	/* a hello replaying the old epoch (or the same one) is refused */
	struct kd_hs_conn *c3 = kd_hs_conn_new(d);
	kd_automsg struct kd_msg *old_hello = kd_msg_new(KD_MSG_HELLO, e1, 0);
	old_hello->hello.source = kd_xstrdup("up");
	assert_int_equal(to_down(c3, old_hello, &out, &err), -ESTALE);
	assert_int_equal(at(&out, 0)->error.code, KD_CODE_STALE_EPOCH);
	assert_non_null(strstr(err->msg, "is not newer than its current epoch"));
	assert_int_equal(kd_hs_down_epoch(d, "up"), e2);
	kd_msg_vec_fini(&out);
	kd_error_free(err);
	err = NULL;
	old_hello->epoch = e2;
	assert_int_equal(to_down(c3, old_hello, &out, &err), -ESTALE);
	kd_msg_vec_fini(&out);

	/* the current epoch still works */
	kd_automsg struct kd_msg *fresh = delta_of(u, k, 1);
	assert_int_equal(to_down(c2, fresh, &out, &err), 0);
	assert_true(dhas(&ds, "ns/x1"));
	kd_msg_vec_fini(&out);

	kd_hs_up_free(u);
	kd_hs_conn_free(c1);
	kd_hs_conn_free(c2);
	kd_hs_conn_free(c3);
	kd_hs_down_free(d);
	dstage_fini(&ds);
}

static void delta_during_handshake_is_refused(void **state)
{
	(void)state;
	struct dstage ds = {0};
	struct kd_hs_down *d = kd_hs_down_new(&dcbs, &ds, NULL);
	struct kd_hs_conn *c = kd_hs_conn_new(d);
	kd_automsg struct kd_msg *hello = kd_msg_new(KD_MSG_HELLO, 100, 0);
	hello->hello.source = kd_xstrdup("up");
	struct kd_msg_vec out = {0};
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(to_down(c, hello, &out, &err), 0);
	kd_msg_vec_fini(&out);

	kd_automsg struct kd_msg *dl = kd_msg_new(KD_MSG_DELTA, 100, 1);
	make_pod(kd_op_list_push(&dl->delta.ops), "ns/early", "node-1", "h1");
	assert_int_equal(to_down(c, dl, &out, &err), -EBUSY);
	assert_int_equal(at(&out, 0)->error.code, KD_CODE_HANDSHAKING);
	assert_non_null(strstr(err->msg, "handshake not finished"));
	assert_false(dhas(&ds, "ns/early"));
	assert_int_equal(kd_hs_down_phase(d, "up"), KD_HS_HANDSHAKING);
	kd_msg_vec_fini(&out);
	kd_error_free(err);
	err = NULL;

	/* after the reconcile, seq 1 of the epoch is accepted */
	kd_automsg struct kd_msg *rec = kd_msg_new(KD_MSG_RECONCILE, 100, 0);
	assert_int_equal(to_down(c, rec, &out, &err), 0);
	assert_int_equal(at(&out, 0)->type, KD_MSG_READY);
	kd_msg_vec_fini(&out);
	assert_int_equal(to_down(c, dl, &out, &err), 0);
	assert_true(dhas(&ds, "ns/early"));
	kd_msg_vec_fini(&out);

	/* a second reconcile in READY is a protocol error */
	assert_int_equal(to_down(c, rec, &out, &err), -EPROTO);
	assert_int_equal(at(&out, 0)->error.code, KD_CODE_PROTOCOL);
	kd_msg_vec_fini(&out);

	kd_hs_conn_free(c);
	kd_hs_down_free(d);
	dstage_fini(&ds);
}

static void duplicates_and_reordering_apply_exactly_once(void **state)
{
	(void)state;
	struct dstage ds = {0};
	struct ustage us = {0};
	struct kd_hs_down_config cfg = {.reorder_window = 4};
	struct kd_hs_down *d = kd_hs_down_new(&dcbs, &ds, &cfg);
	struct kd_hs_conn *c = kd_hs_conn_new(d);
	struct kd_hs_up *u = kd_hs_up_new("up", &ucbs, &us);
	kd_msg_free(handshake(u, c));

	const char *keys[][1] = {{"ns/s1"}, {"ns/s2"}, {"ns/s3"}, {"ns/s4"}, {"ns/s5"}};
	struct kd_msg *dl[5];
	for (int i = 0; i < 5; i++)
		dl[i] = delta_of(u, keys[i], 1);
	/* arrival order: 1, 3, 2, 2, 1, 5, 4, 3 */
	const int order[] = {0, 2, 1, 1, 0, 4, 3, 2};
	const int acks_expected[] = {1, 0, 2, 1, 1, 0, 2, 1}; /* acks produced per arrival */
	uint64_t acked_seqs[16];
	size_t nacked = 0;
	kd_autoerr struct kd_error *err = NULL;
	for (size_t i = 0; i < KD_ARRAY_SIZE(order); i++) {
		struct kd_msg_vec out = {0};
		assert_int_equal(to_down(c, dl[order[i]], &out, &err), 0);
		assert_int_equal(out.n, acks_expected[i]);
		for (size_t j = 0; j < out.n; j++) {
			assert_int_equal(at(&out, j)->type, KD_MSG_ACK);
			acked_seqs[nacked++] = at(&out, j)->seq;
			struct kd_msg_vec none = {0};
			assert_int_equal(to_up(u, out.v[j], &none, &err), 0);
		}
		kd_msg_vec_fini(&out);
	}
	/* first acks of seqs 1..5 come in order */
	const uint64_t want_acks[] = {1, 2, 3, 2, 1, 4, 5, 3};
	assert_int_equal(nacked, KD_ARRAY_SIZE(want_acks));
	for (size_t i = 0; i < nacked; i++)
		assert_int_equal(acked_seqs[i], want_acks[i]);
	for (int i = 0; i < 5; i++)
		assert_int_equal(dapplied(&ds, keys[i][0]), 1);
	assert_int_equal(kd_hs_down_last_seq(d, "up"), 5);
	assert_int_equal(kd_hs_up_acked(u), 5);

	/* a gap beyond the window: refused, nothing applied, connection to be closed */
	kd_automsg struct kd_msg *far = kd_msg_new(KD_MSG_DELTA, kd_hs_up_epoch(u), 10);
	make_pod(kd_op_list_push(&far->delta.ops), "ns/far", "node-1", "h1");
	struct kd_msg_vec out = {0};
	assert_int_equal(to_down(c, far, &out, &err), -ERANGE);
	assert_int_equal(at(&out, 0)->error.code, KD_CODE_SEQ_GAP);
	assert_non_null(strstr(err->msg, "exceeds the reorder window of 4"));
	assert_false(dhas(&ds, "ns/far"));
	kd_msg_vec_fini(&out);

	for (int i = 0; i < 5; i++)
		kd_msg_free(dl[i]);
	kd_hs_up_free(u);
	kd_hs_conn_free(c);
	kd_hs_down_free(d);
	dstage_fini(&ds);
}

static void upstream_restart_gets_new_epoch_and_recovers(void **state)
{
	(void)state;
	struct dstage ds = {0};
	struct ustage us = {0};
	struct kd_hs_down *d = kd_hs_down_new(&dcbs, &ds, NULL);
	struct kd_hs_conn *c1 = kd_hs_conn_new(d);
	struct kd_hs_up *u1 = kd_hs_up_new("up", &ucbs, &us);
	kd_msg_free(handshake(u1, c1));
	const char *k[] = {"ns/a", "ns/b"};
	kd_automsg struct kd_msg *d1 = delta_of(u1, k, 2);
	struct kd_msg_vec out = {0};
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(to_down(c1, d1, &out, &err), 0);
	kd_msg_vec_fini(&out);
	const char *k2[] = {"ns/c"};
	kd_automsg struct kd_msg *inflight = delta_of(u1, k2, 1); /* never delivered */
	uint64_t e1 = kd_hs_up_epoch(u1);

	/* the upstream process dies; its replacement rebuilt from the API Server: it still wants
	 * a (ephemeral) and c; b was cancelled meanwhile */
	kd_hs_up_free(u1);
	kd_hs_conn_free(c1);
	want(&us, "ns/a", "node-1");
	want(&us, "ns/c", "node-1");
	struct kd_hs_up *u2 = kd_hs_up_new("up", &ucbs, &us);
	struct kd_hs_conn *c2 = kd_hs_conn_new(d);
	kd_automsg struct kd_msg *rec = handshake(u2, c2);
	assert_true(kd_hs_up_epoch(u2) > e1);
	assert_int_equal(kd_hs_up_peer_last_seq(u2), 1); /* progress of the previous epoch */
	assert_true(has_key(&rec->reconcile.keep, "ns/a"));
	assert_true(has_key(&rec->reconcile.drop, "ns/b"));
	assert_true(has_op(&rec->reconcile.resend, "ns/c"));
	assert_true(dhas(&ds, "ns/a"));
	assert_false(dhas(&ds, "ns/b"));
	assert_true(dhas(&ds, "ns/c"));
	assert_int_equal(dapplied(&ds, "ns/a"), 1);

	/* the dead upstream's in-flight delta shows up late: fenced, even on the new conn */
	assert_int_equal(to_down(c2, inflight, &out, &err), -ESTALE);
	kd_msg_vec_fini(&out);
	assert_int_equal(dapplied(&ds, "ns/c"), 1);

	kd_op_list_fini(&us.wanted);
	kd_hs_up_free(u2);
	kd_hs_conn_free(c2);
	kd_hs_down_free(d);
	dstage_fini(&ds);
}

static void downstream_restart_gets_lost_objects_resent(void **state)
{
	(void)state;
	struct dstage ds = {0};
	struct ustage us = {0};
	struct kd_hs_down *d = kd_hs_down_new(&dcbs, &ds, NULL);
	struct kd_hs_conn *c = kd_hs_conn_new(d);
	struct kd_hs_up *u = kd_hs_up_new("up", &ucbs, &us);
	kd_msg_free(handshake(u, c));
	const char *k[] = {"ns/a", "ns/b", "ns/c"};
	kd_automsg struct kd_msg *d1 = delta_of(u, k, 3);
	struct kd_msg_vec out = {0};
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(to_down(c, d1, &out, &err), 0);
	kd_msg_vec_fini(&out);
	for (size_t i = 0; i < 3; i++)
		want(&us, k[i], "node-1");
	us.persisted[0] = "ns/c"; /* c was written back before the crash */

	/* downstream crashes: memory lost */
	kd_hs_conn_free(c);
	kd_hs_down_free(d);
	dstage_fini(&ds);
	d = kd_hs_down_new(&dcbs, &ds, NULL);
	c = kd_hs_conn_new(d);
	kd_hs_up_disconnect(u);
	kd_automsg struct kd_msg *rec = handshake(u, c);
	assert_int_equal(rec->reconcile.resend.n, 2);
	assert_true(has_op(&rec->reconcile.resend, "ns/a"));
	assert_true(has_op(&rec->reconcile.resend, "ns/b"));
	assert_false(has_op(&rec->reconcile.resend, "ns/c"));
	assert_true(dhas(&ds, "ns/a"));
	assert_true(dhas(&ds, "ns/b"));
	assert_false(dhas(&ds, "ns/c"));
	assert_int_equal(kd_hs_up_peer_last_seq(u), 0);

	kd_op_list_fini(&us.wanted);
	kd_hs_up_free(u);
	kd_hs_conn_free(c);
	kd_hs_down_free(d);
	dstage_fini(&ds);
}

static void reconnect_does_not_rematerialise(void **state)
{
	(void)state;
	/* An object delivered in epoch 1 whose ack was lost is neither re-applied by a duplicate
	 * in epoch 1 nor re-sent by the reconcile of epoch 2: exactly one sandbox per name. */
	struct dstage ds = {0};
	struct ustage us = {0};
	struct kd_hs_down *d = kd_hs_down_new(&dcbs, &ds, NULL);
	struct kd_hs_conn *c = kd_hs_conn_new(d);
	struct kd_hs_up *u = kd_hs_up_new("up", &ucbs, &us);
	kd_msg_free(handshake(u, c));
	const char *k[] = {"ns/only"};
	kd_automsg struct kd_msg *d1 = delta_of(u, k, 1);
	want(&us, "ns/only", "node-1");
	struct kd_msg_vec out = {0};
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(to_down(c, d1, &out, &err), 0);
	kd_msg_vec_fini(&out);                           /* ack lost */
	assert_int_equal(to_down(c, d1, &out, &err), 0); /* transport retransmits */
	assert_int_equal(at(&out, 0)->type, KD_MSG_ACK);
	kd_msg_vec_fini(&out);
	assert_int_equal(dapplied(&ds, "ns/only"), 1);

	kd_hs_conn_free(c);
	c = kd_hs_conn_new(d);
	kd_hs_up_disconnect(u);
	kd_automsg struct kd_msg *rec = handshake(u, c);
	assert_true(has_key(&rec->reconcile.keep, "ns/only"));
	assert_int_equal(rec->reconcile.resend.n, 0);
	assert_int_equal(dapplied(&ds, "ns/only"), 1);
	assert_int_equal(dcount(&ds), 1);

	/* the same upsert re-delivered in the new epoch (e.g. the stage re-sends) is a no-op */
	kd_automsg struct kd_msg *d2 = delta_of(u, k, 1);
	assert_int_equal(to_down(c, d2, &out, &err), 0);
	kd_msg_vec_fini(&out);
	assert_int_equal(dapplied(&ds, "ns/only"), 1);

	kd_op_list_fini(&us.wanted);
	kd_hs_up_free(u);
	kd_hs_conn_free(c);
	kd_hs_down_free(d);
	dstage_fini(&ds);
}

static void stage_refusal_is_reported_not_fatal(void **state)
{
	(void)state;
	struct dstage ds = {.refuse_key = "ns/bad"};
	struct ustage us = {0};
	struct kd_hs_down *d = kd_hs_down_new(&dcbs, &ds, NULL);
	struct kd_hs_conn *c = kd_hs_conn_new(d);
	struct kd_hs_up *u = kd_hs_up_new("up", &ucbs, &us);
	kd_msg_free(handshake(u, c));
	const char *k[] = {"ns/ok", "ns/bad"};
	kd_automsg struct kd_msg *d1 = delta_of(u, k, 2);
	struct kd_msg_vec out = {0};
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(to_down(c, d1, &out, &err), 0);
	assert_int_equal(out.n, 2);
	assert_int_equal(at(&out, 0)->type, KD_MSG_ACK);
	assert_int_equal(at(&out, 1)->type, KD_MSG_ERROR);
	assert_int_equal(at(&out, 1)->error.code, KD_CODE_APPLY);
	assert_string_equal(at(&out, 1)->error.reason,
	                    "delta seq 1 op 1: key \"ns/bad\": template not found");
	assert_true(dhas(&ds, "ns/ok"));
	struct kd_msg_vec none = {0};
	for (size_t i = 0; i < out.n; i++)
		assert_int_equal(to_up(u, out.v[i], &none, &err), 0);
	assert_int_equal(us.remote_errors, 1);
	assert_non_null(strstr(us.last_remote, "template not found"));
	assert_true(kd_hs_up_ready(u));
	kd_msg_vec_fini(&out);

	kd_hs_up_free(u);
	kd_hs_conn_free(c);
	kd_hs_down_free(d);
	dstage_fini(&ds);
}

static void protocol_violations_close(void **state)
{
	(void)state;
	struct dstage ds = {0};
	struct ustage us = {0};
	struct kd_hs_down *d = kd_hs_down_new(&dcbs, &ds, NULL);
	struct kd_hs_conn *c = kd_hs_conn_new(d);
	struct kd_msg_vec out = {0};
	kd_autoerr struct kd_error *err = NULL;

	/* delta before any hello */
	kd_automsg struct kd_msg *dl = kd_msg_new(KD_MSG_DELTA, 5, 1);
	make_pod(kd_op_list_push(&dl->delta.ops), "ns/x", "node-1", "h1");
	assert_int_equal(to_down(c, dl, &out, &err), -EPROTO);
	assert_non_null(strstr(err->msg, "delta epoch 5 before hello"));
	kd_msg_vec_fini(&out);
	kd_error_free(err);
	err = NULL;

	/* an error before hello closes without a reply (no error ping-pong) */
	kd_automsg struct kd_msg *early_err = kd_msg_new_error(5, KD_CODE_INTERNAL, "early");
	assert_int_equal(to_down(c, early_err, &out, &err), -ECONNABORTED);
	assert_int_equal(out.n, 0);
	assert_non_null(strstr(err->msg, "(before hello)"));
	kd_error_free(err);
	err = NULL;

	/* held() failing: refused, epoch not installed */
	kd_automsg struct kd_msg *hello = kd_msg_new(KD_MSG_HELLO, 5, 0);
	hello->hello.source = kd_xstrdup("up");
	ds.fail_held = 1;
	assert_int_equal(to_down(c, hello, &out, &err), -EIO);
	assert_int_equal(at(&out, 0)->error.code, KD_CODE_INTERNAL);
	assert_int_equal(kd_hs_down_epoch(d, "up"), 0);
	kd_msg_vec_fini(&out);
	kd_error_free(err);
	err = NULL;
	ds.fail_held = 0;

	/* a second hello on a bound connection */
	assert_int_equal(to_down(c, hello, &out, &err), 0);
	kd_msg_vec_fini(&out);
	hello->epoch = 6;
	assert_int_equal(to_down(c, hello, &out, &err), -EPROTO);
	kd_msg_vec_fini(&out);
	kd_error_free(err);
	err = NULL;

	/* an ack is never sent to a downstream */
	kd_automsg struct kd_msg *ack = kd_msg_new(KD_MSG_ACK, 5, 1);
	assert_int_equal(to_down(c, ack, &out, &err), -EPROTO);
	kd_msg_vec_fini(&out);
	kd_error_free(err);
	err = NULL;

	/* an error from the upstream closes without a reply */
	kd_automsg struct kd_msg *em = kd_msg_new_error(5, KD_CODE_INTERNAL, "bye");
	assert_int_equal(to_down(c, em, &out, &err), -ECONNABORTED);
	assert_int_equal(out.n, 0);
	kd_error_free(err);
	err = NULL;

	/* upstream: ready before state, state with a wrong epoch, ack of an unsent seq */
	struct kd_hs_up *u = kd_hs_up_new("up", &ucbs, &us);
	kd_automsg struct kd_msg *rdy = kd_msg_new(KD_MSG_READY, 9, 0);
	assert_int_equal(to_up(u, rdy, &out, &err), -EPROTO); /* not connected */
	kd_error_free(err);
	err = NULL;
	assert_int_equal(kd_hs_up_connect(u, &out), 0);
	kd_msg_vec_fini(&out);
	rdy->epoch = kd_hs_up_epoch(u);
	assert_int_equal(to_up(u, rdy, &out, &err), -EPROTO);
	kd_msg_vec_fini(&out);
	kd_error_free(err);
	err = NULL;
	kd_automsg struct kd_msg *st = kd_msg_new(KD_MSG_STATE, kd_hs_up_epoch(u) - 1, 0);
	assert_int_equal(to_up(u, st, &out, &err), -ESTALE);
	kd_msg_vec_fini(&out);
	kd_error_free(err);
	err = NULL;
	/* wanted() failing */
	us.fail_wanted = 1;
	st->epoch = kd_hs_up_epoch(u);
	assert_int_equal(to_up(u, st, &out, &err), -EIO);
	assert_int_equal(at(&out, 0)->error.code, KD_CODE_INTERNAL);
	kd_msg_vec_fini(&out);
	kd_error_free(err);
	err = NULL;
	us.fail_wanted = 0;
	assert_int_equal(to_up(u, st, &out, &err), 0);
	kd_msg_vec_fini(&out);
	assert_int_equal(to_up(u, rdy, &out, &err), 0);
	ack->epoch = kd_hs_up_epoch(u);
	assert_int_equal(to_up(u, ack, &out, &err), -EPROTO);
	kd_msg_vec_fini(&out);

	kd_hs_up_free(u);
	kd_hs_conn_free(c);
	kd_hs_down_free(d);
	dstage_fini(&ds);
}

static void forget_source_only_when_unbound(void **state)
{
	(void)state;
	struct dstage ds = {0};
	struct ustage us = {0};
	struct kd_hs_down *d = kd_hs_down_new(&dcbs, &ds, NULL);
	struct kd_hs_conn *c = kd_hs_conn_new(d);
	struct kd_hs_up *u = kd_hs_up_new("gone", &ucbs, &us);
	kd_msg_free(handshake(u, c));
	uint64_t e = kd_hs_up_epoch(u);
	assert_int_equal(kd_hs_down_forget(d, "gone"), -EBUSY);
	assert_int_equal(kd_hs_down_forget(d, "never-seen"), -ENOENT);
	kd_hs_conn_free(c);
	assert_int_equal(kd_hs_down_forget(d, "gone"), 0);
	assert_int_equal(kd_hs_down_epoch(d, "gone"), 0);
	assert_int_equal(kd_hs_down_phase(d, "gone"), KD_HS_IDLE);
	/* the record is gone: an older epoch is accepted again */
	c = kd_hs_conn_new(d);
	kd_automsg struct kd_msg *hello = kd_msg_new(KD_MSG_HELLO, e - 1, 0);
	hello->hello.source = kd_xstrdup("gone");
	struct kd_msg_vec out = {0};
	assert_int_equal(to_down(c, hello, &out, NULL), 0);
	assert_int_equal(at(&out, 0)->type, KD_MSG_STATE);
	kd_msg_vec_fini(&out);
	kd_hs_up_free(u);
	kd_hs_conn_free(c);
	kd_hs_down_free(d);
	dstage_fini(&ds);
}

static void epochs_increase_even_when_the_clock_steps_back(void **state)
{
	(void)state;
	uint64_t last = 0;
	uint64_t a = kd_epoch_next(1000, &last);
	assert_int_equal(a, 1000ULL << 16);
	uint64_t b = kd_epoch_next(1000, &last);
	assert_int_equal(b, a + 1);
	uint64_t c = kd_epoch_next(999, &last); /* clock stepped back */
	assert_int_equal(c, a + 2);
	uint64_t e = kd_epoch_next(2000, &last);
	assert_int_equal(e, 2000ULL << 16);
	/* a restarted process (last = 0) minting later gets a larger epoch */
	uint64_t fresh = 0;
	assert_true(kd_epoch_next(2001, &fresh) > e);

	uint64_t prev = kd_epoch_mint();
	assert_true(prev > (1700000000000ULL << 16)); /* wall-clock based */
	for (int i = 0; i < 10000; i++) {
		uint64_t x = kd_epoch_mint();
		assert_true(x > prev);
		prev = x;
	}
}

/* ---- paging ---------------------------------------------------------------------------------- */

/* Encodes m as pages of at most max_frame bytes and decodes each, as the transport would. */
static void pages_of(const struct kd_msg *m, size_t max_frame, struct kd_msg_vec *pages)
{
	struct kd_delta_limits lim = {.max_frame = max_frame};
	struct kd_frame_vec fv = {0};
	kd_autoerr struct kd_error *err = NULL;
	if (kd_msg_encode_pages(m, 0, &lim, &fv, &err) < 0)
		fail_msg("encode pages: %s", kd_error_msg(err));
	for (size_t i = 0; i < fv.n; i++) {
		struct kd_msg *back = NULL;
		if (kd_msg_decode(fv.v[i].buf, fv.v[i].len, &lim, &back, &err) < 0)
			fail_msg("decode page %zu: %s", i, kd_error_msg(err));
		kd_msg_vec_push(pages, back);
	}
	kd_frame_vec_fini(&fv);
}

static void paged_handshake_acts_only_on_the_whole_message(void **state)
{
	(void)state;
	struct dstage ds = {0};
	struct ustage us = {0};
	char key[32];
	for (int i = 0; i < 40; i++) { /* 0..29 wanted as held, 30..39 nobody wants */
		snprintf(key, sizeof(key), "ns/h-%d", i);
		hold(&ds, key, "node-1");
		if (i < 30)
			want(&us, key, "node-1");
	}
	for (int i = 0; i < 10; i++) { /* the downstream lacks these */
		snprintf(key, sizeof(key), "ns/w-%d", i);
		want(&us, key, "node-2");
	}
	struct kd_hs_down *d = kd_hs_down_new(&dcbs, &ds, NULL);
	struct kd_hs_conn *c = kd_hs_conn_new(d);
	struct kd_hs_up *u = kd_hs_up_new("up", &ucbs, &us);
	struct kd_msg_vec v1 = {0}, v2 = {0}, v3 = {0}, pages = {0}, out = {0};
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_hs_up_connect(u, &v1), 0);
	assert_int_equal(to_down(c, at(&v1, 0), &v2, &err), 0);
	assert_int_equal(at(&v2, 0)->type, KD_MSG_STATE);
	assert_int_equal(at(&v2, 0)->state.held.n, 40);

	/* round 1 in pages: the upstream answers only after the last one */
	pages_of(at(&v2, 0), 700, &pages);
	assert_true(pages.n >= 3);
	for (size_t i = 0; i < pages.n; i++) {
		assert_int_equal(at(&pages, i)->part, i);
		assert_int_equal(at(&pages, i)->more, i + 1 < pages.n);
		assert_int_equal(kd_hs_up_on_msg(u, at(&pages, i), &v3, &err), 0);
		if (i + 1 < pages.n) {
			assert_int_equal(v3.n, 0);
			assert_int_equal(kd_hs_up_phase(u), KD_HS_HANDSHAKING);
		}
	}
	assert_int_equal(v3.n, 1);
	struct kd_msg *rec = at(&v3, 0);
	assert_int_equal(rec->type, KD_MSG_RECONCILE);
	assert_int_equal(rec->reconcile.keep.n, 30);
	assert_int_equal(rec->reconcile.drop.n, 10);
	assert_int_equal(rec->reconcile.resend.n, 10);
	assert_string_equal(rec->reconcile.keep.v[0], "ns/h-0");
	assert_string_equal(rec->reconcile.drop.v[9], "ns/h-39");
	assert_int_equal(kd_hs_up_phase(u), KD_HS_RECONCILING);
	kd_msg_vec_fini(&pages);

	/* round 2 in pages: the downstream applies nothing before the last page, and deltas in
	 * between are refused */
	pages_of(rec, 400, &pages);
	assert_true(pages.n >= 3);
	kd_automsg struct kd_msg *dl = kd_msg_new(KD_MSG_DELTA, kd_hs_up_epoch(u), 1);
	make_pod(kd_op_list_push(&dl->delta.ops), "ns/early", "node-1", "h1");
	for (size_t i = 0; i < pages.n; i++) {
		assert_int_equal(kd_hs_down_on_msg(c, at(&pages, i), &out, &err), 0);
		if (i + 1 < pages.n) {
			assert_int_equal(out.n, 0);
			assert_int_equal(ds.drops, 0);
			assert_int_equal(ds.keeps, 0);
			assert_false(dhas(&ds, "ns/w-0"));
			assert_int_equal(kd_hs_down_phase(d, "up"), KD_HS_HANDSHAKING);
			if (i == 0) {
				assert_int_equal(kd_hs_down_on_msg(c, dl, &out, &err), -EBUSY);
				assert_int_equal(at(&out, 0)->error.code, KD_CODE_HANDSHAKING);
				kd_msg_vec_fini(&out);
				kd_error_free(err);
				err = NULL;
			}
		}
	}
	assert_int_equal(at(&out, 0)->type, KD_MSG_READY);
	assert_int_equal(ds.drops, 10);
	assert_int_equal(ds.keeps, 30);
	assert_true(dhas(&ds, "ns/w-9"));
	assert_false(dhas(&ds, "ns/early"));
	assert_int_equal(kd_hs_down_phase(d, "up"), KD_HS_READY);
	struct kd_msg_vec v5 = {0};
	assert_int_equal(kd_hs_up_on_msg(u, at(&out, 0), &v5, &err), 0);
	assert_true(kd_hs_up_ready(u));
	kd_msg_vec_fini(&out);
	assert_int_equal(kd_hs_down_on_msg(c, dl, &out, &err), 0);
	assert_true(dhas(&ds, "ns/early"));

	kd_msg_vec_fini(&out);
	kd_msg_vec_fini(&pages);
	kd_msg_vec_fini(&v1);
	kd_msg_vec_fini(&v2);
	kd_msg_vec_fini(&v3);
	kd_hs_conn_free(c);
	kd_hs_down_free(d);
	kd_hs_up_free(u);
	dstage_fini(&ds);
	kd_op_list_fini(&us.wanted);
}

/* A state page of `n` held keys ns/<prefix>-<first..first+n-1>. Returns owned. */
static struct kd_msg *state_page(uint64_t epoch, uint32_t part, bool more, uint64_t last_seq,
                                 const char *prefix, int first, int n)
{
	struct kd_msg *m = kd_msg_new(KD_MSG_STATE, epoch, 0);
	m->part = part;
	m->more = more;
	m->state.last_seq = last_seq;
	char key[32];
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "ns/%s-%d", prefix, first + i);
		make_pod(kd_op_list_push(&m->state.held), key, "node-1", "h1");
	}
	return m;
}

/* Feeds the pages to a freshly connected upstream; expects the last one to fail with rc and a
 * reason containing want, and nothing emitted but the error. */
static void expect_up_pages_refused(struct kd_msg **pg, size_t n, int rc, const char *want)
{
	struct ustage us = {0};
	struct kd_hs_up *u = kd_hs_up_new("up", &ucbs, &us);
	struct kd_msg_vec out = {0};
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_hs_up_connect(u, &out), 0);
	uint64_t epoch = kd_hs_up_epoch(u);
	kd_msg_vec_fini(&out);
	for (size_t i = 0; i < n; i++) {
		pg[i]->epoch = epoch;
		int r = kd_hs_up_on_msg(u, pg[i], &out, &err);
		if (i + 1 < n) {
			assert_int_equal(r, 0);
			assert_int_equal(out.n, 0);
			continue;
		}
		assert_int_equal(r, rc);
		assert_int_equal(out.n, 1);
		assert_int_equal(at(&out, 0)->type, KD_MSG_ERROR);
		assert_int_equal(at(&out, 0)->error.code, KD_CODE_PROTOCOL);
		if (!strstr(kd_error_msg(err), want))
			fail_msg("reason \"%s\" lacks \"%s\"", kd_error_msg(err), want);
	}
	for (size_t i = 0; i < n; i++)
		kd_msg_free(pg[i]);
	kd_msg_vec_fini(&out);
	kd_hs_up_free(u);
}

static void paged_state_violations_are_refused(void **state)
{
	(void)state;
	struct kd_msg *p[3];
	/* a page other than 0 first */
	p[0] = state_page(1, 1, false, 0, "a", 0, 2);
	expect_up_pages_refused(p, 1, -EPROTO, "part 1 out of order (expected 0)");
	/* a page repeated */
	p[0] = state_page(1, 0, true, 0, "a", 0, 2);
	p[1] = state_page(1, 0, false, 0, "a", 2, 2);
	expect_up_pages_refused(p, 2, -EPROTO, "part 0 out of order (expected 1)");
	/* last_seq changes between pages */
	p[0] = state_page(1, 0, true, 7, "a", 0, 2);
	p[1] = state_page(1, 1, false, 8, "a", 2, 2);
	expect_up_pages_refused(p, 2, -EPROTO, "last_seq 8, part 0 said 7");
	/* an empty page that is not the last */
	p[0] = state_page(1, 0, true, 0, "a", 0, 2);
	p[1] = state_page(1, 1, true, 0, "a", 2, 0);
	expect_up_pages_refused(p, 2, -EPROTO, "part 1 is empty but not the last");
	/* a key in two pages */
	p[0] = state_page(1, 0, true, 0, "a", 0, 2);
	p[1] = state_page(1, 1, true, 0, "b", 0, 2);
	p[2] = state_page(1, 2, false, 0, "a", 1, 2);
	expect_up_pages_refused(p, 3, -EPROTO, "held key \"ns/a-1\" appears more than once");
}

static void paged_reconcile_violations_apply_nothing(void **state)
{
	(void)state;
	struct dstage ds = {0};
	struct kd_hs_down *d = kd_hs_down_new(&dcbs, &ds, NULL);
	struct kd_hs_conn *c = kd_hs_conn_new(d);
	hold(&ds, "ns/x", "node-1");
	kd_automsg struct kd_msg *hello = kd_msg_new(KD_MSG_HELLO, 100, 0);
	hello->hello.source = kd_xstrdup("up");
	struct kd_msg_vec out = {0};
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_hs_down_on_msg(c, hello, &out, &err), 0);
	kd_msg_vec_fini(&out);

	/* part 1 first */
	kd_automsg struct kd_msg *r1 = kd_msg_new(KD_MSG_RECONCILE, 100, 0);
	r1->part = 1;
	kd_key_list_push(&r1->reconcile.drop, "ns/x");
	assert_int_equal(kd_hs_down_on_msg(c, r1, &out, &err), -EPROTO);
	assert_int_equal(at(&out, 0)->error.code, KD_CODE_PROTOCOL);
	assert_non_null(strstr(err->msg, "part 1 out of order"));
	kd_msg_vec_fini(&out);
	kd_error_free(err);
	err = NULL;

	/* the drop of ns/x in page 0, then ns/x again (as a resend) in page 1: refused, and the
	 * drop of page 0 was not applied */
	kd_automsg struct kd_msg *r0 = kd_msg_new(KD_MSG_RECONCILE, 100, 0);
	r0->more = true;
	kd_key_list_push(&r0->reconcile.drop, "ns/x");
	assert_int_equal(kd_hs_down_on_msg(c, r0, &out, &err), 0);
	assert_int_equal(out.n, 0);
	kd_automsg struct kd_msg *r1b = kd_msg_new(KD_MSG_RECONCILE, 100, 0);
	r1b->part = 1;
	make_pod(kd_op_list_push(&r1b->reconcile.resend), "ns/x", "node-2", "h1");
	assert_int_equal(kd_hs_down_on_msg(c, r1b, &out, &err), -EPROTO);
	assert_non_null(strstr(err->msg, "key \"ns/x\" appears more than once across pages"));
	assert_int_equal(ds.drops, 0);
	assert_true(dhas(&ds, "ns/x"));
	assert_int_equal(kd_hs_down_phase(d, "up"), KD_HS_HANDSHAKING);
	kd_msg_vec_fini(&out);
	kd_error_free(err);
	err = NULL;

	/* an empty non-final page */
	kd_automsg struct kd_msg *re = kd_msg_new(KD_MSG_RECONCILE, 100, 0);
	re->more = true;
	assert_int_equal(kd_hs_down_on_msg(c, re, &out, &err), -EPROTO);
	assert_non_null(strstr(err->msg, "part 0 is empty but not the last"));
	kd_msg_vec_fini(&out);

	kd_hs_conn_free(c);
	kd_hs_down_free(d);
	dstage_fini(&ds);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(full_two_round_handshake_then_deltas),
	    cmocka_unit_test(held_state_recovery_keep_drop_resend),
	    cmocka_unit_test(fencing_rejects_old_epoch_after_new_hello),
	    cmocka_unit_test(delta_during_handshake_is_refused),
	    cmocka_unit_test(duplicates_and_reordering_apply_exactly_once),
	    cmocka_unit_test(upstream_restart_gets_new_epoch_and_recovers),
	    cmocka_unit_test(downstream_restart_gets_lost_objects_resent),
	    cmocka_unit_test(reconnect_does_not_rematerialise),
	    cmocka_unit_test(stage_refusal_is_reported_not_fatal),
	    cmocka_unit_test(protocol_violations_close),
	    cmocka_unit_test(forget_source_only_when_unbound),
	    cmocka_unit_test(epochs_increase_even_when_the_clock_steps_back),
	    cmocka_unit_test(paged_handshake_acts_only_on_the_whole_message),
	    cmocka_unit_test(paged_state_violations_are_refused),
	    cmocka_unit_test(paged_reconcile_violations_apply_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
