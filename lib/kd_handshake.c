/* kd_handshake.c: downstream and upstream state machines of the two-round handshake, epoch
 * fencing and per-(source, epoch) delta sequencing. Rules are specified in kd/handshake.h. */
#include "kd/handshake.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kd/strmap.h"

#define DEFAULT_REORDER_WINDOW 64u

const char *kd_hs_phase_name(enum kd_hs_phase p)
{
	switch (p) {
	case KD_HS_IDLE:
		return "idle";
	case KD_HS_HANDSHAKING:
		return "handshaking";
	case KD_HS_RECONCILING:
		return "reconciling";
	case KD_HS_READY:
		return "ready";
	}
	return "?";
}

/* ---- epochs --------------------------------------------------------------------------------- */

uint64_t kd_epoch_next(uint64_t wall_ms, uint64_t *last)
{
	uint64_t e = wall_ms << 16;
	if (e <= *last)
		e = *last + 1;
	*last = e;
	return e;
}

static _Atomic uint64_t last_epoch;

uint64_t kd_epoch_mint(void)
{
	uint64_t wall_ms = kd_wall_ns() / 1000000u;
	uint64_t old = atomic_load(&last_epoch);
	for (;;) {
		uint64_t cur = old;
		uint64_t e = kd_epoch_next(wall_ms, &cur);
		if (atomic_compare_exchange_weak(&last_epoch, &old, e))
			return e;
	}
}

/* ---- key sets: kd_strmap with borrowed keys, used as a set -------------------------------- */

/* Adds k; false when it was already there. The value is unused (any non-NULL: the map). */
static bool set_add(struct kd_strmap *m, const char *k)
{
	return kd_strmap_add(m, k, m) == NULL;
}

static bool set_has(const struct kd_strmap *m, const char *k)
{
	return kd_strmap_get(m, k) != NULL;
}

/* ---- downstream ----------------------------------------------------------------------------- */

struct src {
	char *name;
	uint64_t epoch;
	enum kd_hs_phase phase;
	uint64_t last_seq;       /* highest seq applied in the current epoch (contiguous) */
	struct kd_hs_conn *conn; /* connection carrying the current epoch, or NULL */
	struct kd_msg **ring;    /* reorder buffer, slot seq % window */
	unsigned nconns;         /* connections bound to this source (any epoch) */
	/* assembly of a paged reconcile{} of the current epoch */
	struct kd_msg *rasm;    /* pages so far (owned) or NULL */
	uint32_t rnext;         /* next expected part */
	size_t rtotal;          /* entries so far */
	struct kd_strmap rkeys; /* keys so far (borrowed from rasm) */
};

struct kd_hs_down {
	struct kd_hs_down_cbs cbs;
	void *ud;
	unsigned window;
	struct src **srcs;
	size_t n, cap;
};

struct kd_hs_conn {
	struct kd_hs_down *d;
	struct src *src; /* bound by hello; borrowed (owned by d) */
	uint64_t epoch;  /* epoch of the hello accepted on this connection */
};

struct kd_hs_down *kd_hs_down_new(const struct kd_hs_down_cbs *cbs, void *ud,
                                  const struct kd_hs_down_config *cfg)
{
	struct kd_hs_down *d = kd_xcalloc(1, sizeof(*d));
	d->cbs = *cbs;
	d->ud = ud;
	d->window = cfg && cfg->reorder_window ? cfg->reorder_window : DEFAULT_REORDER_WINDOW;
	return d;
}

static void ring_clear(struct kd_hs_down *d, struct src *s)
{
	if (!s->ring)
		return;
	for (unsigned i = 0; i < d->window; i++) {
		kd_msg_free(s->ring[i]);
		s->ring[i] = NULL;
	}
}

static void rasm_clear(struct src *s)
{
	kd_msg_free(s->rasm);
	s->rasm = NULL;
	kd_strmap_fini(&s->rkeys);
	s->rnext = 0;
	s->rtotal = 0;
}

static void src_free(struct kd_hs_down *d, struct src *s)
{
	rasm_clear(s);
	ring_clear(d, s);
	free(s->ring);
	free(s->name);
	free(s);
}

void kd_hs_down_free(struct kd_hs_down *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		src_free(d, d->srcs[i]);
	free(d->srcs);
	free(d);
}

static struct src *src_find(const struct kd_hs_down *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->srcs[i]->name, name) == 0)
			return d->srcs[i];
	return NULL;
}

static struct src *src_get(struct kd_hs_down *d, const char *name)
{
	struct src *s = src_find(d, name);
	if (s)
		return s;
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 4;
		d->srcs = kd_xrealloc(d->srcs, d->cap * sizeof(*d->srcs));
	}
	s = kd_xcalloc(1, sizeof(*s));
	s->name = kd_xstrdup(name);
	d->srcs[d->n++] = s;
	return s;
}

struct kd_hs_conn *kd_hs_conn_new(struct kd_hs_down *d)
{
	struct kd_hs_conn *c = kd_xcalloc(1, sizeof(*c));
	c->d = d;
	return c;
}

void kd_hs_conn_free(struct kd_hs_conn *c)
{
	if (!c)
		return;
	if (c->src) {
		if (c->src->conn == c)
			c->src->conn = NULL;
		c->src->nconns--;
	}
	free(c);
}

int kd_hs_down_forget(struct kd_hs_down *d, const char *source)
{
	for (size_t i = 0; i < d->n; i++) {
		struct src *s = d->srcs[i];
		if (strcmp(s->name, source) != 0)
			continue;
		if (s->nconns)
			return -EBUSY;
		src_free(d, s);
		d->srcs[i] = d->srcs[--d->n];
		return 0;
	}
	return -ENOENT;
}

const char *kd_hs_conn_source(const struct kd_hs_conn *c)
{
	return c->src ? c->src->name : NULL;
}

uint64_t kd_hs_conn_epoch(const struct kd_hs_conn *c)
{
	return c->epoch;
}

uint64_t kd_hs_down_epoch(const struct kd_hs_down *d, const char *source)
{
	const struct src *s = src_find(d, source);
	return s ? s->epoch : 0;
}

enum kd_hs_phase kd_hs_down_phase(const struct kd_hs_down *d, const char *source)
{
	const struct src *s = src_find(d, source);
	return s ? s->phase : KD_HS_IDLE;
}

uint64_t kd_hs_down_last_seq(const struct kd_hs_down *d, const char *source)
{
	const struct src *s = src_find(d, source);
	return s ? s->last_seq : 0;
}

/* Appends error{code} and sets *err; returns -errnum so callers can `return refuse(...)`. */
static int refuse(struct kd_msg_vec *out, struct kd_error **err, int errnum, uint64_t epoch,
                  int code, const char *fmt, ...) KD_PRINTF(6, 7);
static int refuse(struct kd_msg_vec *out, struct kd_error **err, int errnum, uint64_t epoch,
                  int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kd_autofree char *why = kd_xvasprintf(fmt, ap);
	va_end(ap);
	kd_msg_vec_push(out, kd_msg_new_error(epoch, code, "%s", why));
	return kd_error_set(err, errnum, 0, "%s", why);
}

static unsigned long long ull(uint64_t x)
{
	return (unsigned long long)x;
}

/* Collects stage refusals of single ops into one non-fatal error{APPLY}. */
struct apply_report {
	size_t failed;
	char *first; /* owned */
};

static void report_fail(struct apply_report *r, const char *what, const char *key,
                        const struct kd_error *e)
{
	if (r->failed++ == 0)
		r->first = kd_xasprintf("%s: key \"%s\": %s", what, key, kd_error_msg(e));
}

static void report_flush(struct apply_report *r, struct kd_msg_vec *out, uint64_t epoch)
{
	if (r->failed == 1)
		kd_msg_vec_push(out, kd_msg_new_error(epoch, KD_CODE_APPLY, "%s", r->first));
	else if (r->failed > 1)
		kd_msg_vec_push(out, kd_msg_new_error(epoch, KD_CODE_APPLY, "%s (and %zu more)",
		                                      r->first, r->failed - 1));
	free(r->first);
	memset(r, 0, sizeof(*r));
}

static void apply_delta(struct kd_hs_down *d, struct src *s, const struct kd_msg *in,
                        struct kd_msg_vec *out)
{
	struct apply_report rep = {0};
	for (size_t i = 0; i < in->delta.ops.n; i++) {
		kd_autoerr struct kd_error *e = NULL;
		const struct kd_op *op = &in->delta.ops.v[i];
		if (d->cbs.apply(d->ud, s->name, s->epoch, op, &e) < 0) {
			char what[64];
			snprintf(what, sizeof(what), "delta seq %llu op %zu", ull(in->seq), i);
			report_fail(&rep, what, op->key, e);
		}
	}
	s->last_seq = in->seq;
	kd_msg_vec_push(out, kd_msg_new(KD_MSG_ACK, s->epoch, in->seq));
	report_flush(&rep, out, s->epoch);
}

static int on_delta(struct kd_hs_down *d, struct src *s, const struct kd_msg *in,
                    struct kd_msg_vec *out, struct kd_error **err)
{
	if (in->seq <= s->last_seq) { /* duplicate: ack again, do not re-apply */
		kd_msg_vec_push(out, kd_msg_new(KD_MSG_ACK, s->epoch, in->seq));
		return 0;
	}
	if (in->seq - s->last_seq > d->window)
		return refuse(out, err, ERANGE, s->epoch, KD_CODE_SEQ_GAP,
		              "delta seq %llu from source %s: gap after seq %llu exceeds the "
		              "reorder window of %u",
		              ull(in->seq), s->name, ull(s->last_seq), d->window);
	if (in->seq > s->last_seq + 1) { /* early: buffer one copy */
		if (!s->ring)
			s->ring = kd_xcalloc(d->window, sizeof(*s->ring));
		struct kd_msg **slot = &s->ring[in->seq % d->window];
		if (!*slot) {
			*slot = kd_xmalloc(sizeof(**slot));
			kd_msg_copy(*slot, in);
		}
		return 0;
	}
	apply_delta(d, s, in, out);
	while (s->ring) { /* drain buffered successors */
		struct kd_msg **slot = &s->ring[(s->last_seq + 1) % d->window];
		if (!*slot || (*slot)->seq != s->last_seq + 1)
			break;
		struct kd_msg *next = *slot;
		*slot = NULL;
		apply_delta(d, s, next, out);
		kd_msg_free(next);
	}
	return 0;
}

static int apply_reconcile(struct kd_hs_down *d, struct src *s, const struct kd_msg *in,
                           struct kd_msg_vec *out)
{
	struct apply_report rep = {0};
	const struct kd_key_list *drop = &in->reconcile.drop, *keep = &in->reconcile.keep;
	for (size_t i = 0; i < drop->n; i++) {
		kd_autoerr struct kd_error *e = NULL;
		if (d->cbs.drop(d->ud, s->name, drop->v[i], &e) < 0)
			report_fail(&rep, "reconcile drop", drop->v[i], e);
	}
	for (size_t i = 0; d->cbs.keep && i < keep->n; i++) {
		kd_autoerr struct kd_error *e = NULL;
		if (d->cbs.keep(d->ud, s->name, keep->v[i], &e) < 0)
			report_fail(&rep, "reconcile keep", keep->v[i], e);
	}
	for (size_t i = 0; i < in->reconcile.resend.n; i++) {
		kd_autoerr struct kd_error *e = NULL;
		const struct kd_op *op = &in->reconcile.resend.v[i];
		if (d->cbs.apply(d->ud, s->name, s->epoch, op, &e) < 0)
			report_fail(&rep, "reconcile resend", op->key, e);
	}
	s->phase = KD_HS_READY;
	s->last_seq = 0;
	kd_msg_vec_push(out, kd_msg_new(KD_MSG_READY, s->epoch, 0));
	report_flush(&rep, out, s->epoch);
	return 0;
}

/* A key of a paged reconcile: refused when an earlier entry (any page, any list) had it. */
static bool rasm_key(struct src *s, const char *key)
{
	return set_add(&s->rkeys, key);
}

static int on_reconcile(struct kd_hs_down *d, struct src *s, const struct kd_msg *in,
                        struct kd_msg_vec *out, struct kd_error **err)
{
	if (in->part != s->rnext)
		return refuse(out, err, EPROTO, in->epoch, KD_CODE_PROTOCOL,
		              "reconcile epoch %llu from source %s: part %u out of order (expected "
		              "%u)",
		              ull(in->epoch), s->name, in->part, s->rnext);
	if (in->part == 0 && !in->more) /* one frame: nothing to assemble */
		return apply_reconcile(d, s, in, out);
	const struct kd_key_list *keep = &in->reconcile.keep, *drop = &in->reconcile.drop;
	const struct kd_op_list *resend = &in->reconcile.resend;
	size_t n = keep->n + drop->n + resend->n;
	if (in->more && n == 0)
		return refuse(out, err, EPROTO, in->epoch, KD_CODE_PROTOCOL,
		              "reconcile epoch %llu from source %s: part %u is empty but not the "
		              "last",
		              ull(in->epoch), s->name, in->part);
	if (n > KD_HS_MAX_TOTAL - s->rtotal) {
		rasm_clear(s);
		return refuse(out, err, E2BIG, in->epoch, KD_CODE_PROTOCOL,
		              "reconcile epoch %llu from source %s: more than %u entries in all "
		              "pages",
		              ull(in->epoch), s->name, KD_HS_MAX_TOTAL);
	}
	if (!s->rasm) {
		s->rasm = kd_msg_new(KD_MSG_RECONCILE, in->epoch, 0);
		kd_strmap_reserve(&s->rkeys, n);
	}
	struct kd_msg *a = s->rasm;
	const char *dup = NULL;
	for (size_t i = 0; !dup && i < keep->n; i++) {
		kd_key_list_push(&a->reconcile.keep, keep->v[i]);
		if (!rasm_key(s, a->reconcile.keep.v[a->reconcile.keep.n - 1]))
			dup = keep->v[i];
	}
	for (size_t i = 0; !dup && i < drop->n; i++) {
		kd_key_list_push(&a->reconcile.drop, drop->v[i]);
		if (!rasm_key(s, a->reconcile.drop.v[a->reconcile.drop.n - 1]))
			dup = drop->v[i];
	}
	for (size_t i = 0; !dup && i < resend->n; i++) {
		struct kd_op *op = kd_op_list_push(&a->reconcile.resend);
		kd_op_copy(op, &resend->v[i]);
		if (!rasm_key(s, op->key))
			dup = resend->v[i].key;
	}
	if (dup) {
		kd_autofree char *k = kd_xstrdup(dup);
		rasm_clear(s);
		return refuse(out, err, EPROTO, in->epoch, KD_CODE_PROTOCOL,
		              "reconcile epoch %llu from source %s part %u: key \"%s\" appears "
		              "more than once across pages",
		              ull(in->epoch), s->name, in->part, k);
	}
	s->rtotal += n;
	if (in->more) {
		s->rnext++;
		return 0;
	}
	struct kd_msg *whole = s->rasm;
	s->rasm = NULL;
	rasm_clear(s);
	int rc = apply_reconcile(d, s, whole, out);
	kd_msg_free(whole);
	return rc;
}

static int on_hello(struct kd_hs_conn *c, const struct kd_msg *in, struct kd_msg_vec *out,
                    struct kd_error **err)
{
	struct kd_hs_down *d = c->d;
	const char *name = in->hello.source;
	if (c->src)
		return refuse(out, err, EPROTO, in->epoch, KD_CODE_PROTOCOL,
		              "hello epoch %llu from source %s on a connection already bound to "
		              "source %s epoch %llu",
		              ull(in->epoch), name, c->src->name, ull(c->epoch));
	struct src *s = src_find(d, name);
	if (s && in->epoch <= s->epoch)
		return refuse(out, err, ESTALE, in->epoch, KD_CODE_STALE_EPOCH,
		              "hello epoch %llu from source %s is not newer than its current epoch "
		              "%llu",
		              ull(in->epoch), name, ull(s->epoch));
	struct kd_msg *st = kd_msg_new(KD_MSG_STATE, in->epoch, 0);
	kd_autoerr struct kd_error *e = NULL;
	if (d->cbs.held(d->ud, name, &st->state.held, &e) < 0) {
		kd_msg_free(st);
		return refuse(out, err, EIO, in->epoch, KD_CODE_INTERNAL,
		              "hello epoch %llu from source %s: cannot list held objects: %s",
		              ull(in->epoch), name, kd_error_msg(e));
	}
	/* Install the epoch: from now on every message of an older epoch of this source, on
	 * whatever connection, is fenced, and deltas wait for the reconcile. */
	s = src_get(d, name);
	st->state.last_seq = s->last_seq;
	s->epoch = in->epoch;
	s->phase = KD_HS_HANDSHAKING;
	s->last_seq = 0;
	ring_clear(d, s);
	rasm_clear(s);
	s->conn = c;
	s->nconns++;
	c->src = s;
	c->epoch = in->epoch;
	kd_msg_vec_push(out, st);
	return 0;
}

int kd_hs_down_on_msg(struct kd_hs_conn *c, const struct kd_msg *in, struct kd_msg_vec *out,
                      struct kd_error **err)
{
	const char *tn = kd_msg_type_name(in->type);
	if (!tn)
		return refuse(out, err, EPROTO, in->epoch, KD_CODE_PROTOCOL,
		              "unknown message type %d", (int)in->type);
	if (in->type == KD_MSG_HELLO)
		return on_hello(c, in, out, err);
	struct src *s = c->src;
	if (in->type == KD_MSG_ERROR) /* never answer an error with an error */
		return kd_error_set(err, ECONNABORTED, 0,
		                    "source %s epoch %llu sent error code %d: %s",
		                    s ? s->name : "(before hello)", ull(in->epoch), in->error.code,
		                    in->error.reason ? in->error.reason : "(no reason)");
	if (!s)
		return refuse(out, err, EPROTO, in->epoch, KD_CODE_PROTOCOL,
		              "%s epoch %llu before hello", tn, ull(in->epoch));
	if (in->epoch != c->epoch || c->epoch != s->epoch)
		return refuse(
		    out, err, ESTALE, in->epoch, KD_CODE_STALE_EPOCH,
		    "%s seq %llu epoch %llu from source %s is fenced: current epoch is %llu", tn,
		    ull(in->seq), ull(in->epoch), s->name, ull(s->epoch));
	switch (in->type) {
	case KD_MSG_RECONCILE:
		if (s->phase != KD_HS_HANDSHAKING)
			return refuse(out, err, EPROTO, in->epoch, KD_CODE_PROTOCOL,
			              "reconcile epoch %llu from source %s while %s",
			              ull(in->epoch), s->name, kd_hs_phase_name(s->phase));
		return on_reconcile(c->d, s, in, out, err);
	case KD_MSG_DELTA:
		if (s->phase != KD_HS_READY)
			return refuse(out, err, EBUSY, in->epoch, KD_CODE_HANDSHAKING,
			              "delta seq %llu epoch %llu from source %s refused: handshake "
			              "not finished",
			              ull(in->seq), ull(in->epoch), s->name);
		return on_delta(c->d, s, in, out, err);
	default:
		return refuse(out, err, EPROTO, in->epoch, KD_CODE_PROTOCOL,
		              "%s is not a message a downstream accepts (source %s)", tn, s->name);
	}
}

/* ---- upstream ------------------------------------------------------------------------------- */

struct kd_hs_up {
	char *source;
	struct kd_hs_up_cbs cbs;
	void *ud;
	enum kd_hs_phase phase;
	uint64_t epoch;
	uint64_t last_seq;
	uint64_t acked;
	uint64_t peer_last_seq;
	/* round 1 in progress: state{} pages are classified as they arrive */
	struct {
		bool open;         /* part 0 seen, more pages expected */
		uint32_t next;     /* next expected part */
		uint64_t last_seq; /* of part 0; every page repeats it */
		size_t total;      /* held entries so far */
		struct kd_op_list wanted;
		struct kd_strmap wmap; /* wanted key -> first index */
		unsigned char *wseen;  /* per wanted index: 0 not held, 1 held same, 2 held other */
		struct kd_strmap hset; /* held keys not wanted (borrowed from r's keep/drop) */
		struct kd_msg *r;      /* reconcile being built (owned) */
	} st;
};

static void st_clear(struct kd_hs_up *u)
{
	kd_op_list_fini(&u->st.wanted);
	kd_strmap_fini(&u->st.wmap);
	kd_strmap_fini(&u->st.hset);
	free(u->st.wseen);
	kd_msg_free(u->st.r);
	memset(&u->st, 0, sizeof(u->st));
}

struct kd_hs_up *kd_hs_up_new(const char *source, const struct kd_hs_up_cbs *cbs, void *ud)
{
	struct kd_hs_up *u = kd_xcalloc(1, sizeof(*u));
	u->source = kd_xstrdup(source);
	u->cbs = *cbs;
	u->ud = ud;
	return u;
}

void kd_hs_up_free(struct kd_hs_up *u)
{
	if (!u)
		return;
	st_clear(u);
	free(u->source);
	free(u);
}

int kd_hs_up_connect(struct kd_hs_up *u, struct kd_msg_vec *out)
{
	uint64_t e = kd_epoch_mint();
	u->epoch = e > u->epoch ? e : u->epoch + 1;
	u->phase = KD_HS_HANDSHAKING;
	u->last_seq = 0;
	u->acked = 0;
	u->peer_last_seq = 0;
	st_clear(u);
	struct kd_msg *h = kd_msg_new(KD_MSG_HELLO, u->epoch, 0);
	h->hello.source = kd_xstrdup(u->source);
	kd_msg_vec_push(out, h);
	return 0;
}

void kd_hs_up_disconnect(struct kd_hs_up *u)
{
	st_clear(u);
	u->phase = KD_HS_IDLE;
}

enum kd_hs_phase kd_hs_up_phase(const struct kd_hs_up *u)
{
	return u->phase;
}

bool kd_hs_up_ready(const struct kd_hs_up *u)
{
	return u->phase == KD_HS_READY;
}

uint64_t kd_hs_up_epoch(const struct kd_hs_up *u)
{
	return u->epoch;
}

uint64_t kd_hs_up_last_seq(const struct kd_hs_up *u)
{
	return u->last_seq;
}

uint64_t kd_hs_up_acked(const struct kd_hs_up *u)
{
	return u->acked;
}

uint64_t kd_hs_up_peer_last_seq(const struct kd_hs_up *u)
{
	return u->peer_last_seq;
}

static bool same_identity(const struct kd_op *a, const struct kd_op *b)
{
	bool ta = a->has & KD_OP_HAS_TMPL, tb = b->has & KD_OP_HAS_TMPL;
	if (ta != tb)
		return false;
	if (ta &&
	    (strcmp(a->tmpl.hash, b->tmpl.hash) != 0 || strcmp(a->tmpl.uid, b->tmpl.uid) != 0))
		return false;
	if (!a->node || !b->node)
		return a->node == b->node;
	return strcmp(a->node, b->node) == 0;
}

/* Part 0 of a state{}: lists the wanted objects and opens the reconcile. */
static int st_begin(struct kd_hs_up *u, const struct kd_msg *in, struct kd_msg_vec *out,
                    struct kd_error **err)
{
	struct kd_op_list wanted = {0};
	kd_autoerr struct kd_error *e = NULL;
	if (u->cbs.wanted(u->ud, &wanted, &e) < 0) {
		kd_op_list_fini(&wanted);
		return refuse(out, err, EIO, u->epoch, KD_CODE_INTERNAL,
		              "reconcile epoch %llu for %s: cannot list wanted objects: %s",
		              ull(u->epoch), u->source, kd_error_msg(e));
	}
	u->st.wanted = wanted;
	kd_strmap_reserve(&u->st.wmap, wanted.n);
	for (size_t i = 0; i < wanted.n; i++)
		if (wanted.v[i].kind == KD_OP_UPSERT && wanted.v[i].key)
			kd_strmap_add(&u->st.wmap, wanted.v[i].key, &wanted.v[i]);
	u->st.wseen = kd_xcalloc(wanted.n ? wanted.n : 1, 1);
	kd_strmap_reserve(&u->st.hset, in->state.held.n);
	u->st.r = kd_msg_new(KD_MSG_RECONCILE, u->epoch, 0);
	u->st.last_seq = in->state.last_seq;
	u->st.open = true;
	return 0;
}

/* Classifies the held entries of one page (keys in held order, across pages). */
static int st_feed(struct kd_hs_up *u, const struct kd_msg *in, struct kd_msg_vec *out,
                   struct kd_error **err)
{
	const struct kd_op_list *held = &in->state.held;
	struct kd_msg *r = u->st.r;
	for (size_t i = 0; i < held->n; i++) {
		const struct kd_op *h = &held->v[i];
		size_t wi;
		bool dup;
		const struct kd_op *w = kd_strmap_get(&u->st.wmap, h->key);
		if (w) {
			wi = (size_t)(w - u->st.wanted.v);
			dup = u->st.wseen[wi] != 0;
			if (!dup) {
				bool same = same_identity(h, &u->st.wanted.v[wi]);
				u->st.wseen[wi] = same ? 1 : 2;
				if (same)
					kd_key_list_push(&r->reconcile.keep, h->key);
				/* else: resent at the end (the upsert by key replaces the held
				 * copy)
				 */
			}
		} else {
			dup = set_has(&u->st.hset, h->key);
			if (!dup) {
				struct kd_key_list *l = u->cbs.persisted(u->ud, h->key)
				                            ? &r->reconcile.keep
				                            : &r->reconcile.drop;
				kd_key_list_push(l, h->key);
				set_add(&u->st.hset, l->v[l->n - 1]);
			}
		}
		if (dup)
			return refuse(
			    out, err, EPROTO, u->epoch, KD_CODE_PROTOCOL,
			    "state epoch %llu to %s part %u: held key \"%s\" appears more "
			    "than once",
			    ull(u->epoch), u->source, in->part, h->key);
	}
	return 0;
}

/* After the last page: resend what the downstream lacks, emit the reconcile. */
static void st_finish(struct kd_hs_up *u, struct kd_msg_vec *out)
{
	struct kd_msg *r = u->st.r;
	const struct kd_op_list *wanted = &u->st.wanted;
	for (size_t i = 0; i < wanted->n; i++) {
		const struct kd_op *w = &wanted->v[i];
		if (w->kind != KD_OP_UPSERT || !w->key)
			continue;
		if (kd_strmap_get(&u->st.wmap, w->key) != w)
			continue; /* a duplicate in wanted[]: the first one counts */
		if (u->st.wseen[i] == 2 ||
		    (u->st.wseen[i] == 0 && !u->cbs.persisted(u->ud, w->key)))
			kd_op_copy(kd_op_list_push(&r->reconcile.resend), w);
	}
	u->st.r = NULL; /* handed out below */
	u->peer_last_seq = u->st.last_seq;
	st_clear(u);
	u->phase = KD_HS_RECONCILING;
	kd_msg_vec_push(out, r);
}

static int on_state(struct kd_hs_up *u, const struct kd_msg *in, struct kd_msg_vec *out,
                    struct kd_error **err)
{
	if (in->part != u->st.next)
		return refuse(out, err, EPROTO, u->epoch, KD_CODE_PROTOCOL,
		              "state epoch %llu to %s: part %u out of order (expected %u)",
		              ull(u->epoch), u->source, in->part, u->st.next);
	size_t n = in->state.held.n;
	if (in->more && n == 0)
		return refuse(out, err, EPROTO, u->epoch, KD_CODE_PROTOCOL,
		              "state epoch %llu to %s: part %u is empty but not the last",
		              ull(u->epoch), u->source, in->part);
	if (in->part > 0 && in->state.last_seq != u->st.last_seq)
		return refuse(
		    out, err, EPROTO, u->epoch, KD_CODE_PROTOCOL,
		    "state epoch %llu to %s: part %u says last_seq %llu, part 0 said %llu",
		    ull(u->epoch), u->source, in->part, ull(in->state.last_seq),
		    ull(u->st.last_seq));
	if (n > KD_HS_MAX_TOTAL - u->st.total)
		return refuse(out, err, E2BIG, u->epoch, KD_CODE_PROTOCOL,
		              "state epoch %llu to %s: more than %u held entries in all pages",
		              ull(u->epoch), u->source, KD_HS_MAX_TOTAL);
	int rc;
	if (in->part == 0 && (rc = st_begin(u, in, out, err)) < 0)
		return rc;
	if ((rc = st_feed(u, in, out, err)) < 0)
		return rc;
	u->st.total += n;
	if (in->more) {
		u->st.next++;
		return 0;
	}
	st_finish(u, out);
	return 0;
}

static int up_on_msg(struct kd_hs_up *u, const struct kd_msg *in, struct kd_msg_vec *out,
                     struct kd_error **err)
{
	const char *tn = kd_msg_type_name(in->type);
	if (!tn)
		tn = "unknown";
	if (u->phase == KD_HS_IDLE)
		return kd_error_set(err, EPROTO, 0,
		                    "%s from the downstream of %s while not connected", tn,
		                    u->source);
	if (in->type == KD_MSG_ERROR) {
		if (in->error.code == KD_CODE_APPLY && in->epoch == u->epoch) {
			if (u->cbs.remote_error)
				u->cbs.remote_error(u->ud, in->error.code,
				                    in->error.reason ? in->error.reason : "");
			return 0;
		}
		return kd_error_set(err, ECONNABORTED, 0,
		                    "downstream of %s refused epoch %llu: code %d: %s", u->source,
		                    ull(in->epoch), in->error.code,
		                    in->error.reason ? in->error.reason : "(no reason)");
	}
	if (in->epoch != u->epoch)
		return refuse(out, err, ESTALE, in->epoch, KD_CODE_STALE_EPOCH,
		              "%s epoch %llu to %s does not match the current epoch %llu", tn,
		              ull(in->epoch), u->source, ull(u->epoch));
	switch (in->type) {
	case KD_MSG_STATE:
		if (u->phase != KD_HS_HANDSHAKING)
			break;
		return on_state(u, in, out, err);
	case KD_MSG_READY:
		if (u->phase != KD_HS_RECONCILING)
			break;
		u->phase = KD_HS_READY;
		return 0;
	case KD_MSG_ACK:
		if (u->phase != KD_HS_READY)
			break;
		if (in->seq > u->last_seq)
			return refuse(out, err, EPROTO, u->epoch, KD_CODE_PROTOCOL,
			              "ack seq %llu to %s for a delta never sent (last %llu)",
			              ull(in->seq), u->source, ull(u->last_seq));
		if (in->seq > u->acked)
			u->acked = in->seq;
		return 0;
	default:
		break;
	}
	return refuse(out, err, EPROTO, u->epoch, KD_CODE_PROTOCOL,
	              "%s epoch %llu to %s is unexpected while %s", tn, ull(in->epoch), u->source,
	              kd_hs_phase_name(u->phase));
}

int kd_hs_up_on_msg(struct kd_hs_up *u, const struct kd_msg *in, struct kd_msg_vec *out,
                    struct kd_error **err)
{
	int rc = up_on_msg(u, in, out, err);
	if (rc < 0)
		st_clear(u); /* the connection closes: a paged state{} in progress is abandoned */
	return rc;
}

int kd_hs_up_stamp(struct kd_hs_up *u, struct kd_msg *delta, struct kd_error **err)
{
	if (delta->type != KD_MSG_DELTA)
		return kd_error_set(err, EINVAL, 0, "stamp: %s is not a delta",
		                    kd_msg_type_name(delta->type) ? kd_msg_type_name(delta->type)
		                                                  : "unknown");
	if (u->phase != KD_HS_READY)
		return kd_error_set(err, EAGAIN, 0, "stamp delta for %s: channel is %s", u->source,
		                    kd_hs_phase_name(u->phase));
	delta->epoch = u->epoch;
	delta->seq = ++u->last_seq;
	return 0;
}
