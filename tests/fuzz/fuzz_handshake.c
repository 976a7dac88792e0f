/* libFuzzer target for the handshake state machines: the input is a program of commands
 * (connect, close, hello, reconcile, delta, stray messages, forget, upstream steps) run against
 * one kd_hs_down and one kd_hs_up. Invariants checked on every step (abort on violation):
 * - the downstream applies an op only for the source's current epoch, delta ops only in READY,
 *   reconcile ops only while HANDSHAKING;
 * - the deltas of one (source, epoch) are applied exactly once each, in seq order 1, 2, 3...;
 * - a refused message (< 0) applied nothing;
 * - every message either machine emits passes kd_msg_validate (so it can be encoded);
 * - the upstream's reconcile puts every held key in exactly one of keep/drop/resend and resends
 *   every wanted, unpersisted key the downstream lacks; stamping works only in READY;
 * - paging: state and reconcile messages get random part/more; a reconcile page with more
 *   applies nothing, a state page with more emits nothing, and the reconcile emitted after the
 *   last state page covers the held keys of all pages (the harness accumulates them; the
 *   wanted/persisted masks stay fixed while a paged state is open). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd/handshake.h"

#define NCONN 4
#define NSRC  2
#define NEP   9 /* epochs 1..8 */
#define NSEQ  13

static const char *const srcs[NSRC] = {"a", "b"};

struct prog {
	const uint8_t *p;
	size_t n;
};

static unsigned next(struct prog *g)
{
	if (!g->n)
		return 0;
	g->n--;
	return *g->p++;
}

/* ---- downstream harness ----------------------------------------------------------------- */

static struct kd_hs_down *D;
static unsigned applied_upto[NSRC][NEP]; /* highest delta seq applied per (source, epoch) */
static unsigned applies;                 /* total apply calls */
static bool fail_apply, fail_held;
static bool in_reconcile;
static char store[64][32]; /* keys the mock stage holds */

static int src_idx(const char *s)
{
	for (int i = 0; i < NSRC; i++)
		if (strcmp(s, srcs[i]) == 0)
			return i;
	abort();
}

static void store_put(const char *key)
{
	for (int i = 0; i < 64; i++)
		if (strcmp(store[i], key) == 0)
			return;
	for (int i = 0; i < 64; i++)
		if (!store[i][0]) {
			snprintf(store[i], sizeof(store[i]), "%s", key);
			return;
		}
}

static void store_del(const char *key)
{
	for (int i = 0; i < 64; i++)
		if (strcmp(store[i], key) == 0)
			store[i][0] = '\0';
}

static int d_held(void *ud, const char *source, struct kd_op_list *held, struct kd_error **err)
{
	(void)ud;
	(void)source;
	if (fail_held)
		return kd_error_set(err, EIO, 0, "held failed");
	for (int i = 0; i < 64; i++)
		if (store[i][0])
			kd_op_init(kd_op_list_push(held), KD_OP_UPSERT, store[i]);
	return 0;
}

static int d_apply(void *ud, const char *source, uint64_t epoch, const struct kd_op *op,
                   struct kd_error **err)
{
	(void)ud;
	int si = src_idx(source);
	if (epoch != kd_hs_down_epoch(D, source))
		abort(); /* stale epoch applied */
	enum kd_hs_phase ph = kd_hs_down_phase(D, source);
	if (in_reconcile ? ph != KD_HS_HANDSHAKING : ph != KD_HS_READY)
		abort();
	applies++;
	unsigned e, s;
	char sname[8];
	if (sscanf(op->key, "%1[a-b]-e%u/s%u", sname, &e, &s) == 3) {
		if (strcmp(sname, source) != 0 || e != epoch || s >= NSEQ)
			abort(); /* delta of another source/epoch leaked in */
		if (applied_upto[si][e] + 1 != s)
			abort(); /* out of order or twice */
		applied_upto[si][e] = s;
	}
	if (fail_apply)
		return kd_error_set(err, ENOENT, 0, "refused");
	if (op->kind == KD_OP_UPSERT)
		store_put(op->key);
	else
		store_del(op->key);
	return 0;
}

static int d_drop(void *ud, const char *source, const char *key, struct kd_error **err)
{
	(void)ud;
	(void)source;
	(void)err;
	if (!in_reconcile)
		abort();
	store_del(key);
	return 0;
}

static void check_out(const struct kd_msg_vec *out)
{
	for (size_t i = 0; i < out->n; i++) {
		struct kd_error *err = NULL;
		if (kd_msg_validate(out->v[i], NULL, &err) < 0) {
			fprintf(stderr, "invalid output: %s\n", kd_error_msg(err));
			abort();
		}
	}
}

static void feed_down(struct kd_hs_conn *c, const struct kd_msg *m)
{
	if (kd_msg_validate(m, NULL, NULL) < 0)
		return; /* the decoder would never deliver it */
	struct kd_msg_vec out = {0};
	struct kd_error *err = NULL;
	unsigned before = applies;
	in_reconcile = m->type == KD_MSG_RECONCILE;
	int rc = kd_hs_down_on_msg(c, m, &out, &err);
	in_reconcile = false;
	if (rc < 0 && applies != before)
		abort(); /* refused but applied */
	if (m->type == KD_MSG_RECONCILE && m->more && (applies != before || (rc == 0 && out.n)))
		abort(); /* a non-final page took effect */
	if (rc < 0 && !err)
		abort();
	check_out(&out);
	kd_msg_vec_fini(&out);
	kd_error_free(err);
}

static void down_step(struct prog *g, struct kd_hs_conn **conns)
{
	unsigned op = next(g) % 8, ci = next(g) % NCONN;
	uint64_t epoch = next(g) % (NEP - 1) + 1;
	int si = (int)(next(g) % NSRC);
	fail_apply = next(g) % 8 == 0;
	fail_held = next(g) % 8 == 0;
	struct kd_hs_conn *c = conns[ci];
	if (op == 0) {
		if (!c)
			conns[ci] = kd_hs_conn_new(D);
		return;
	}
	if (op == 1) {
		kd_hs_conn_free(c);
		conns[ci] = NULL;
		return;
	}
	if (op == 7) {
		int busy = 0;
		for (int i = 0; i < NCONN; i++)
			busy |= conns[i] && kd_hs_conn_source(conns[i]) &&
			        strcmp(kd_hs_conn_source(conns[i]), srcs[si]) == 0;
		int rc = kd_hs_down_forget(D, srcs[si]);
		if (busy ? rc != -EBUSY : (rc != 0 && rc != -ENOENT))
			abort();
		if (rc == 0)
			memset(applied_upto[si], 0, sizeof(applied_upto[si]));
		return;
	}
	if (!c)
		return;
	struct kd_msg *m = NULL;
	char key[32];
	switch (op) {
	case 2:
		m = kd_msg_new(KD_MSG_HELLO, epoch, 0);
		m->hello.source = kd_xstrdup(srcs[si]);
		break;
	case 3: {
		m = kd_msg_new(KD_MSG_RECONCILE, epoch, 0);
		unsigned k = next(g);
		snprintf(key, sizeof(key), "r/k%u", k % 4);
		if (k & 4)
			kd_key_list_push(&m->reconcile.drop, key);
		snprintf(key, sizeof(key), "r/n%u", k % 4);
		if (k & 8)
			kd_op_init(kd_op_list_push(&m->reconcile.resend), KD_OP_UPSERT, key);
		unsigned pg = next(g); /* paging: part 0..3, more */
		m->part = pg & 3;
		m->more = (pg & 4) != 0;
		break;
	}
	case 4:
	case 5: {
		uint64_t seq = next(g) % (NSEQ - 1) + 1;
		/* the delta names the source the connection is bound to (or "a") */
		const char *s = kd_hs_conn_source(c) ? kd_hs_conn_source(c) : srcs[0];
		m = kd_msg_new(KD_MSG_DELTA, epoch, seq);
		snprintf(key, sizeof(key), "%s-e%u/s%u", s, (unsigned)epoch, (unsigned)seq);
		kd_op_init(kd_op_list_push(&m->delta.ops), KD_OP_UPSERT, key);
		break;
	}
	default: {
		static const enum kd_msg_type stray[] = {KD_MSG_STATE, KD_MSG_READY, KD_MSG_ACK,
		                                         KD_MSG_ERROR};
		enum kd_msg_type t = stray[next(g) % 4];
		m = kd_msg_new(t, epoch, t == KD_MSG_ACK ? 1 : 0);
		if (t == KD_MSG_ERROR)
			m->error.code = KD_CODE_PROTOCOL;
		break;
	}
	}
	feed_down(c, m);
	kd_msg_free(m);
}

/* ---- upstream harness ------------------------------------------------------------------- */

static struct kd_hs_up *U;
static unsigned wanted_mask, persisted_mask; /* over keys "w/k0".."w/k7" */

static int u_wanted(void *ud, struct kd_op_list *out, struct kd_error **err)
{
	(void)ud;
	(void)err;
	char key[16];
	for (unsigned i = 0; i < 8; i++)
		if (wanted_mask & (1u << i)) {
			snprintf(key, sizeof(key), "w/k%u", i);
			kd_op_init(kd_op_list_push(out), KD_OP_UPSERT, key);
		}
	return 0;
}

static bool u_persisted(void *ud, const char *key)
{
	(void)ud;
	unsigned i;
	return sscanf(key, "w/k%u", &i) == 1 && i < 8 && (persisted_mask & (1u << i));
}

static bool in_keys(const struct kd_key_list *l, const char *k)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], k) == 0)
			return true;
	return false;
}

static bool in_ops(const struct kd_op_list *l, const char *k)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].key, k) == 0)
			return true;
	return false;
}

static void check_reconcile(const struct kd_msg *state, const struct kd_msg *r)
{
	const struct kd_op_list *held = &state->state.held;
	for (size_t i = 0; i < held->n; i++) {
		const char *k = held->v[i].key;
		int n = in_keys(&r->reconcile.keep, k) + in_keys(&r->reconcile.drop, k) +
		        in_ops(&r->reconcile.resend, k);
		if (n != 1)
			abort();
	}
	char key[16];
	for (unsigned i = 0; i < 8; i++) {
		snprintf(key, sizeof(key), "w/k%u", i);
		bool w = wanted_mask & (1u << i), p = persisted_mask & (1u << i);
		bool h = in_ops(held, key);
		if (w && !p && !h && !in_ops(&r->reconcile.resend, key))
			abort();
		if (!w && h && !p && !in_keys(&r->reconcile.drop, key))
			abort();
		if (!w && in_ops(&r->reconcile.resend, key))
			abort();
	}
}

static struct kd_msg *acc; /* held keys of the pages of the open state, or NULL */

static void up_step(struct prog *g)
{
	unsigned op = next(g) % 6;
	struct kd_msg_vec out = {0};
	struct kd_error *err = NULL;
	unsigned wm = next(g), pm = next(g);
	if (!acc) { /* the callbacks must answer the same for every page of one state */
		wanted_mask = wm;
		persisted_mask = pm;
	}
	uint64_t epoch = kd_hs_up_epoch(U) - (next(g) % 3 == 0 ? 1 : 0);
	struct kd_msg *m = NULL;
	switch (op) {
	case 0:
		kd_hs_up_connect(U, &out);
		break;
	case 1:
		kd_hs_up_disconnect(U);
		break;
	case 2: {
		m = kd_msg_new(KD_MSG_STATE, epoch ? epoch : 1, 0);
		unsigned hm = next(g);
		char key[16];
		for (unsigned i = 0; i < 8; i++)
			if (hm & (1u << i)) {
				snprintf(key, sizeof(key), "w/k%u", i);
				kd_op_init(kd_op_list_push(&m->state.held), KD_OP_UPSERT, key);
			}
		unsigned pg = next(g); /* paging: part 0..3, more */
		m->part = pg & 3;
		m->more = (pg & 4) != 0;
		break;
	}
	case 3:
		m = kd_msg_new(KD_MSG_READY, epoch ? epoch : 1, 0);
		break;
	case 4:
		m = kd_msg_new(KD_MSG_ACK, epoch ? epoch : 1, next(g) % 5 + 1);
		break;
	default: {
		struct kd_msg d;
		kd_msg_init(&d, KD_MSG_DELTA, 0, 0);
		kd_op_init(kd_op_list_push(&d.delta.ops), KD_OP_UPSERT, "w/k0");
		bool ready = kd_hs_up_ready(U);
		int rc = kd_hs_up_stamp(U, &d, NULL);
		if ((rc == 0) != ready ||
		    (rc == 0 && (d.epoch != kd_hs_up_epoch(U) || d.seq != kd_hs_up_last_seq(U))))
			abort();
		kd_msg_fini(&d);
		break;
	}
	}
	int rc_up = 0;
	if (m && kd_msg_validate(m, NULL, NULL) == 0) {
		enum kd_hs_phase before = kd_hs_up_phase(U);
		int rc = rc_up = kd_hs_up_on_msg(U, m, &out, &err);
		if (rc == 0 && m->type == KD_MSG_STATE) {
			if (before != KD_HS_HANDSHAKING)
				abort();
			if (m->part == 0) {
				kd_msg_free(acc);
				acc = kd_msg_new(KD_MSG_STATE, 1, 0);
			}
			if (!acc)
				abort(); /* a part > 0 accepted without part 0 */
			for (size_t i = 0; i < m->state.held.n; i++)
				kd_op_copy(kd_op_list_push(&acc->state.held), &m->state.held.v[i]);
			if (m->more) {
				if (out.n != 0 || kd_hs_up_phase(U) != KD_HS_HANDSHAKING)
					abort();
			} else {
				if (out.n != 1 || out.v[0]->type != KD_MSG_RECONCILE)
					abort();
				check_reconcile(acc, out.v[0]);
				kd_msg_free(acc);
				acc = NULL;
			}
		}
	}
	if (acc && kd_hs_up_phase(U) != KD_HS_HANDSHAKING) { /* refused or reconnected */
		kd_msg_free(acc);
		acc = NULL;
	}
	if (acc && (op == 0 || rc_up < 0)) { /* reconnected, or the upstream refused */
		kd_msg_free(acc);
		acc = NULL;
	}
	check_out(&out);
	kd_msg_free(m);
	kd_msg_vec_fini(&out);
	kd_error_free(err);
}

static const struct kd_hs_down_cbs dcbs = {.held = d_held, .apply = d_apply, .drop = d_drop};
static const struct kd_hs_up_cbs ucbs = {.wanted = u_wanted, .persisted = u_persisted};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct prog g = {data, size};
	struct kd_hs_down_config cfg = {.reorder_window = 4};
	D = kd_hs_down_new(&dcbs, NULL, &cfg);
	U = kd_hs_up_new("up", &ucbs, NULL);
	memset(applied_upto, 0, sizeof(applied_upto));
	memset(store, 0, sizeof(store));
	applies = 0;
	struct kd_hs_conn *conns[NCONN] = {0};
	for (unsigned steps = 0; g.n && steps < 256; steps++) {
		if (next(&g) & 1)
			down_step(&g, conns);
		else
			up_step(&g);
	}
	for (int i = 0; i < NCONN; i++)
		kd_hs_conn_free(conns[i]);
	kd_hs_down_free(D);
	kd_hs_up_free(U);
	kd_msg_free(acc);
	acc = NULL;
	return 0;
}
