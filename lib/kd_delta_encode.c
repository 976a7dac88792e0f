/* lib/kd_delta_encode.c: the compact JSON encoder of channel messages (kd_msg_encode) and the
 * paging of large state/reconcile messages into several frames (kd_msg_encode_pages); the wire
 * format is specified in kd/delta.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kd/delta.h"
#include "kd/strmap.h"
#include "kd_delta_priv.h"

/* ---- encoder -------------------------------------------------------------------------------- */

struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_need(struct sbuf *b, size_t extra)
{
	if (b->p && b->len + extra + 1 <= b->cap)
		return;
	size_t nc = b->cap ? b->cap : 256;
	while (nc < b->len + extra + 1)
		nc *= 2;
	b->p = kd_xrealloc(b->p, nc);
	b->cap = nc;
}

static void sb_mem(struct sbuf *b, const char *s, size_t n)
{
	sb_need(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

#define SB_LIT(b, lit) sb_mem((b), (lit), sizeof(lit) - 1)

static void sb_u64(struct sbuf *b, uint64_t v)
{
	char tmp[24];
	size_t i = sizeof(tmp);
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	sb_mem(b, tmp + i, sizeof(tmp) - i);
}

static void sb_str(struct sbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strlen(s);
	sb_need(b, n * 6 + 2);
	char *o = b->p + b->len;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\') {
			*o++ = (char)c;
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"':
			*o++ = '"';
			break;
		case '\\':
			*o++ = '\\';
			break;
		case '\n':
			*o++ = 'n';
			break;
		case '\r':
			*o++ = 'r';
			break;
		case '\t':
			*o++ = 't';
			break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o++ = '"';
	b->len = (size_t)(o - b->p);
}

static void sb_kvs(struct sbuf *b, const char *name, const struct kd_kv_list *l)
{
	if (!l->n)
		return;
	sb_mem(b, ",\"", 2);
	sb_mem(b, name, strlen(name));
	sb_mem(b, "\":{", 3);
	for (size_t i = 0; i < l->n; i++) {
		if (i)
			SB_LIT(b, ",");
		sb_str(b, l->v[i].key);
		SB_LIT(b, ":");
		sb_str(b, l->v[i].value);
	}
	SB_LIT(b, "}");
}

/* Template table of one frame: distinct template references in order of first use, found by
 * their composite key "kind name uid hash" (validated members contain no space). */
struct tent {
	const struct kd_tmpl_ref *ref; /* borrowed from the message */
	size_t idx;                    /* index in the table */
	char key[];                    /* the composite key */
};

struct ttab {
	struct tent **v; /* owned array of n owned entries */
	size_t n, cap;
	struct kd_strmap idx; /* key (borrowed from the entry) -> entry */
};

/* Longest composite key of a validated template: kind, name, uid, hash and three spaces. */
#define TKEY_MAX (63 + 253 + 128 + 64 + 3)

/* The composite key of r into out (TKEY_MAX + 1 bytes); members are cut to their validated
 * maximum, so this never overflows (and is exact for every message that reaches the encoder). */
static const char *tkey(char *out, const struct kd_tmpl_ref *r)
{
	const char *f[4] = {r->kind, r->name, r->uid, r->hash};
	static const size_t max[4] = {63, 253, 128, 64};
	size_t o = 0;
	for (int i = 0; i < 4; i++) {
		size_t n = strnlen(f[i], max[i]);
		if (i)
			out[o++] = ' ';
		memcpy(out + o, f[i], n);
		o += n;
	}
	out[o] = '\0';
	return out;
}

static void ttab_reset(struct ttab *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i]);
	kd_strmap_fini(&t->idx);
	t->n = 0;
}

static void ttab_fini(struct ttab *t)
{
	ttab_reset(t);
	free(t->v);
	memset(t, 0, sizeof(*t));
}

/* Index of r in t, or t->n (the index it would get) when absent. */
static size_t ttab_lookup(const struct ttab *t, const struct kd_tmpl_ref *r)
{
	char k[TKEY_MAX + 1];
	const struct tent *e = kd_strmap_get(&t->idx, tkey(k, r));
	return e ? e->idx : t->n;
}

/* Index of r in t, adding it first when absent. */
static size_t ttab_add(struct ttab *t, const struct kd_tmpl_ref *r)
{
	char k[TKEY_MAX + 1];
	const struct tent *found = kd_strmap_get(&t->idx, tkey(k, r));
	if (found)
		return found->idx;
	size_t klen = strlen(k);
	struct tent *e = kd_xmalloc(sizeof(*e) + klen + 1);
	e->ref = r;
	e->idx = t->n;
	memcpy(e->key, k, klen + 1);
	t->v = kd__delta_grow(t->v, &t->cap, t->n, sizeof(*t->v));
	t->v[t->n++] = e;
	kd_strmap_put(&t->idx, e->key, e);
	return e->idx;
}

static void enc_tmpl_obj(struct sbuf *b, const struct kd_tmpl_ref *t)
{
	SB_LIT(b, "{\"kind\":");
	sb_str(b, t->kind);
	SB_LIT(b, ",\"name\":");
	sb_str(b, t->name);
	SB_LIT(b, ",\"uid\":");
	sb_str(b, t->uid);
	SB_LIT(b, ",\"hash\":");
	sb_str(b, t->hash);
	SB_LIT(b, "}");
}

/* Writes ,"tmpls":[...] when t is not empty. */
static void enc_tmpls(struct sbuf *b, const struct ttab *t)
{
	if (!t->n)
		return;
	SB_LIT(b, ",\"tmpls\":[");
	for (size_t i = 0; i < t->n; i++) {
		if (i)
			SB_LIT(b, ",");
		enc_tmpl_obj(b, t->v[i]->ref);
	}
	SB_LIT(b, "]");
}

/* One op; tidx is its template's table index (ignored without a template); upsert_list: in
 * held[]/resend[], where "op" is omitted. */
static void enc_op(struct sbuf *b, const struct kd_op *op, size_t tidx, bool upsert_list)
{
	if (upsert_list)
		SB_LIT(b, "{\"key\":");
	else if (op->kind == KD_OP_UPSERT)
		SB_LIT(b, "{\"op\":\"upsert\",\"key\":");
	else
		SB_LIT(b, "{\"op\":\"delete\",\"key\":");
	sb_str(b, op->key);
	if (op->has & KD_OP_HAS_TMPL) {
		SB_LIT(b, ",\"t\":");
		sb_u64(b, tidx);
	}
	if (op->node) {
		SB_LIT(b, ",\"node\":");
		sb_str(b, op->node);
	}
	if (op->has & KD_OP_HAS_CTIME) {
		SB_LIT(b, ",\"ctime\":");
		sb_u64(b, (uint64_t)op->ctime_ms);
	}
	if (op->has & KD_OP_HAS_CPU) {
		SB_LIT(b, ",\"cpu\":");
		sb_u64(b, (uint64_t)op->cpu_millis);
	}
	if (op->has & KD_OP_HAS_MEM) {
		SB_LIT(b, ",\"mem\":");
		sb_u64(b, (uint64_t)op->mem_bytes);
	}
	sb_kvs(b, "labels", &op->labels);
	sb_kvs(b, "annotations", &op->annotations);
	if (op->has & KD_OP_HAS_READY) {
		if (op->ready)
			SB_LIT(b, ",\"ready\":true");
		else
			SB_LIT(b, ",\"ready\":false");
	}
	if (op->ip) {
		SB_LIT(b, ",\"ip\":");
		sb_str(b, op->ip);
	}
	if (op->reason) {
		SB_LIT(b, ",\"reason\":");
		sb_str(b, op->reason);
	}
	SB_LIT(b, "}");
}

static void enc_ops(struct sbuf *b, const char *name, const struct kd_op *v, size_t n,
                    struct ttab *t, bool upsert_list)
{
	sb_mem(b, ",\"", 2);
	sb_mem(b, name, strlen(name));
	sb_mem(b, "\":[", 3);
	const struct kd_tmpl_ref *prev = NULL;
	size_t prev_idx = 0;
	for (size_t i = 0; i < n; i++) {
		if (i)
			SB_LIT(b, ",");
		size_t tidx = 0;
		if (v[i].has & KD_OP_HAS_TMPL) {
			if (prev && kd__tmpl_eq(prev, &v[i].tmpl)) {
				tidx = prev_idx;
			} else {
				tidx = prev_idx = ttab_add(t, &v[i].tmpl);
				prev = &v[i].tmpl;
			}
		}
		enc_op(b, &v[i], tidx, upsert_list);
	}
	SB_LIT(b, "]");
}

static void enc_keys(struct sbuf *b, const char *name, char *const *v, size_t n)
{
	sb_mem(b, ",\"", 2);
	sb_mem(b, name, strlen(name));
	sb_mem(b, "\":[", 3);
	for (size_t i = 0; i < n; i++) {
		if (i)
			SB_LIT(b, ",");
		sb_str(b, v[i]);
	}
	SB_LIT(b, "]");
}

static void enc_head(struct sbuf *b, const struct kd_msg *m)
{
	SB_LIT(b, "{\"type\":\"");
	const char *tn = kd_msg_type_name(m->type);
	sb_mem(b, tn, strlen(tn));
	SB_LIT(b, "\",\"epoch\":\"");
	sb_u64(b, m->epoch);
	SB_LIT(b, "\",\"seq\":");
	sb_u64(b, m->seq);
}

/* ,"part":P,"more":true} (each only when set) */
static void enc_tail(struct sbuf *b, uint32_t part, bool more)
{
	if (part) {
		SB_LIT(b, ",\"part\":");
		sb_u64(b, part);
	}
	if (more)
		SB_LIT(b, ",\"more\":true");
	SB_LIT(b, "}");
}

/* Encodes a validated message into b (after headroom). */
static void enc_msg(struct sbuf *b, const struct kd_msg *m)
{
	struct ttab t = {0};
	enc_head(b, m);
	switch (m->type) {
	case KD_MSG_HELLO:
		SB_LIT(b, ",\"source\":");
		sb_str(b, m->hello.source);
		break;
	case KD_MSG_STATE:
		SB_LIT(b, ",\"last_seq\":");
		sb_u64(b, m->state.last_seq);
		enc_ops(b, "held", m->state.held.v, m->state.held.n, &t, true);
		break;
	case KD_MSG_RECONCILE:
		enc_keys(b, "keep", m->reconcile.keep.v, m->reconcile.keep.n);
		enc_keys(b, "drop", m->reconcile.drop.v, m->reconcile.drop.n);
		enc_ops(b, "resend", m->reconcile.resend.v, m->reconcile.resend.n, &t, true);
		break;
	case KD_MSG_DELTA:
		enc_ops(b, "ops", m->delta.ops.v, m->delta.ops.n, &t, false);
		break;
	case KD_MSG_ERROR:
		SB_LIT(b, ",\"code\":");
		sb_u64(b, (uint64_t)m->error.code);
		if (m->error.reason) {
			SB_LIT(b, ",\"reason\":");
			sb_str(b, m->error.reason);
		}
		break;
	default:
		break;
	}
	enc_tmpls(b, &t);
	ttab_fini(&t);
	enc_tail(b, m->part, m->more);
}

int kd_msg_encode(const struct kd_msg *m, size_t headroom, const struct kd_delta_limits *lim,
                  char **buf, size_t *len, struct kd_error **err)
{
	struct kd_delta_limits l = kd__delta_limits(lim);
	int rc = kd_msg_validate(m, &l, err);
	if (rc < 0)
		return kd_error_wrap(err, "encode");
	struct sbuf b = {0};
	sb_need(&b, headroom + 64);
	b.len = headroom;
	enc_msg(&b, m);
	b.p[b.len] = '\0';
	size_t n = b.len - headroom;
	if (n > l.max_frame) {
		free(b.p);
		return kd_error_set(err, EMSGSIZE, 0,
		                    "encode %s: %zu bytes exceed the %zu-byte frame cap",
		                    kd_msg_type_name(m->type), n, l.max_frame);
	}
	*buf = b.p;
	*len = n;
	return 0;
}

/* ---- paging -----------------------------------------------------------------------------------
 */

/* Bytes a page may need after its last entry: closing the open list, empty remaining lists
 * (,"drop":[],"resend":[]), closing "tmpls", ,"part":1000000,"more":true}. */
#define PAGE_TAIL_RESERVE 96

struct pager {
	const struct kd_msg *m;
	struct kd_delta_limits lim;
	size_t headroom;
	struct kd_frame_vec frames;
	struct sbuf b;  /* the page being built */
	struct sbuf tb; /* its template table entries, comma separated */
	struct sbuf item;
	struct ttab t;
	uint32_t part;
	int list;       /* index of the open list in the page (-1 none) */
	size_t in_list; /* entries in the open list */
	size_t in_page; /* entries in the page */
	struct kd_error **err;
};

static const char *const state_lists[] = {"held"};
static const char *const rec_lists[] = {"keep", "drop", "resend"};

static void page_open(struct pager *p)
{
	p->b = (struct sbuf){0};
	sb_need(&p->b, p->headroom + 256);
	p->b.len = p->headroom;
	p->tb.len = 0;
	ttab_reset(&p->t);
	enc_head(&p->b, p->m);
	if (p->m->type == KD_MSG_STATE) {
		SB_LIT(&p->b, ",\"last_seq\":");
		sb_u64(&p->b, p->m->state.last_seq);
	}
	p->list = -1;
	p->in_list = 0;
	p->in_page = 0;
}

/* Opens list li (closing the previous ones, writing empty lists in between). */
static void page_list(struct pager *p, int li)
{
	const char *const *names = p->m->type == KD_MSG_STATE ? state_lists : rec_lists;
	while (p->list < li) {
		if (p->list >= 0)
			SB_LIT(&p->b, "]");
		p->list++;
		sb_mem(&p->b, ",\"", 2);
		sb_mem(&p->b, names[p->list], strlen(names[p->list]));
		sb_mem(&p->b, "\":[", 3);
		p->in_list = 0;
	}
}

static void page_close(struct pager *p, bool more)
{
	int nlists = p->m->type == KD_MSG_STATE ? 1 : 3;
	page_list(p, nlists - 1);
	SB_LIT(&p->b, "]");
	if (p->t.n) {
		SB_LIT(&p->b, ",\"tmpls\":[");
		sb_mem(&p->b, p->tb.p, p->tb.len);
		SB_LIT(&p->b, "]");
	}
	enc_tail(&p->b, p->part, more);
	p->b.p[p->b.len] = '\0';
	kd__frame_vec_push(&p->frames, p->b.p, p->b.len - p->headroom);
	p->b = (struct sbuf){0};
	p->part++;
}

/* Adds an entry of list li (a key, or an op of held/resend with key == op->key) to the current
 * page, closing it and opening the next one first when it does not fit. */
static int page_add(struct pager *p, int li, const char *lname, const char *key,
                    const struct kd_op *op)
{
	size_t max_in_list = op ? p->lim.max_ops : p->lim.max_keys;
	for (int attempt = 0; attempt < 2; attempt++) {
		size_t tidx = 0, tbytes = 0;
		bool newt = false;
		p->item.len = 0;
		if (op && (op->has & KD_OP_HAS_TMPL)) {
			tidx = ttab_lookup(&p->t, &op->tmpl);
			newt = tidx == p->t.n;
			if (newt && op) {
				size_t before = p->item.len;
				enc_tmpl_obj(&p->item, &op->tmpl);
				tbytes = p->item.len - before + 1; /* + comma */
				p->item.len = 0;
			}
		}
		if (op)
			enc_op(&p->item, op, tidx, true);
		else
			sb_str(&p->item, key);
		size_t cur = p->b.len - p->headroom + p->tb.len;
		size_t need = p->item.len + 1 + tbytes + 16 /* list opening */ + PAGE_TAIL_RESERVE;
		bool fits =
		    cur + need <= p->lim.max_frame && (p->list != li || p->in_list < max_in_list);
		if (!fits) {
			if (p->in_page == 0 || attempt == 1)
				return kd_error_set(
				    p->err, EMSGSIZE, 0,
				    "encode %s: %s entry %s does not fit a %zu-byte "
				    "frame",
				    kd_msg_type_name(p->m->type), lname, key, p->lim.max_frame);
			page_close(p, true);
			page_open(p);
			continue;
		}
		page_list(p, li);
		if (p->in_list)
			SB_LIT(&p->b, ",");
		sb_mem(&p->b, p->item.p, p->item.len);
		if (newt && op) {
			if (p->t.n)
				SB_LIT(&p->tb, ",");
			ttab_add(&p->t, &op->tmpl);
			enc_tmpl_obj(&p->tb, &op->tmpl);
		}
		p->in_list++;
		p->in_page++;
		return 0;
	}
	return -EMSGSIZE; /* not reached */
}

int kd_msg_encode_pages(const struct kd_msg *m, size_t headroom, const struct kd_delta_limits *lim,
                        struct kd_frame_vec *out, struct kd_error **err)
{
	struct kd_delta_limits l = kd__delta_limits(lim);
	bool pageable = m->type == KD_MSG_STATE || m->type == KD_MSG_RECONCILE;
	if (!pageable) {
		char *buf = NULL;
		size_t len = 0;
		int rc = kd_msg_encode(m, headroom, &l, &buf, &len, err);
		if (rc < 0)
			return rc;
		kd__frame_vec_push(out, buf, len);
		return 0;
	}
	if (m->part || m->more)
		return kd_error_set(err, EINVAL, 0, "encode %s pages: part %u is already a page",
		                    kd_msg_type_name(m->type), m->part);
	struct kd_delta_limits whole = l;
	whole.max_ops = whole.max_keys = l.max_total;
	int rc = kd_msg_validate(m, &whole, err);
	if (rc < 0)
		return kd_error_wrap(err, "encode pages");
	/* fast path: fits one frame under the per-frame limits */
	size_t nops = m->type == KD_MSG_STATE ? m->state.held.n : m->reconcile.resend.n;
	bool lists_fit = nops <= l.max_ops &&
	                 (m->type == KD_MSG_STATE ||
	                  (m->reconcile.keep.n <= l.max_keys && m->reconcile.drop.n <= l.max_keys));
	if (lists_fit) {
		struct sbuf b = {0};
		sb_need(&b, headroom + 64);
		b.len = headroom;
		enc_msg(&b, m);
		b.p[b.len] = '\0';
		if (b.len - headroom <= l.max_frame) {
			kd__frame_vec_push(out, b.p, b.len - headroom);
			return 0;
		}
		free(b.p);
	}
	struct pager p = {.m = m, .lim = l, .headroom = headroom, .err = err};
	page_open(&p);
	rc = 0;
	if (m->type == KD_MSG_STATE) {
		for (size_t i = 0; rc == 0 && i < m->state.held.n; i++)
			rc = page_add(&p, 0, "held", m->state.held.v[i].key, &m->state.held.v[i]);
	} else {
		for (size_t i = 0; rc == 0 && i < m->reconcile.keep.n; i++)
			rc = page_add(&p, 0, "keep", m->reconcile.keep.v[i], NULL);
		for (size_t i = 0; rc == 0 && i < m->reconcile.drop.n; i++)
			rc = page_add(&p, 1, "drop", m->reconcile.drop.v[i], NULL);
		for (size_t i = 0; rc == 0 && i < m->reconcile.resend.n; i++)
			rc = page_add(&p, 2, "resend", m->reconcile.resend.v[i].key,
			              &m->reconcile.resend.v[i]);
	}
	if (rc == 0 && p.part > KD_PART_MAX)
		rc = kd_error_set(err, E2BIG, 0, "encode %s: more than %u pages",
		                  kd_msg_type_name(m->type), KD_PART_MAX);
	if (rc == 0)
		page_close(&p, false);
	free(p.b.p);
	free(p.tb.p);
	free(p.item.p);
	ttab_fini(&p.t);
	if (rc < 0) {
		kd_frame_vec_fini(&p.frames);
		return rc;
	}
	for (size_t i = 0; i < p.frames.n; i++)
		kd__frame_vec_push(out, p.frames.v[i].buf, p.frames.v[i].len);
	free(p.frames.v);
	return 0;
}
