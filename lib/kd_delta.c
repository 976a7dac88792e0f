/* lib/kd_delta.c: the channel message model (struct kd_msg, struct kd_op and their lists):
 * init/fini, copy, equality, names. Validation, encoding and decoding are in kd_delta_validate.c,
 * kd_delta_encode.c and kd_delta_decode.c; the wire format is specified in kd/delta.h. */
#include "kd/delta.h"

#include <string.h>

#include "kd_delta_priv.h"

/* ---- model ---------------------------------------------------------------------------------- */

void *kd__delta_grow(void *v, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return v;
	size_t nc = *cap ? *cap * 2 : 8;
	v = kd_xrealloc(v, nc * elem);
	*cap = nc;
	return v;
}

void kd_kv_list_push(struct kd_kv_list *l, const char *key, const char *value)
{
	l->v = kd__delta_grow(l->v, &l->cap, l->n, sizeof(*l->v));
	l->v[l->n].key = kd_xstrdup(key);
	l->v[l->n].value = kd_xstrdup(value);
	l->n++;
}

void kd_kv_list_fini(struct kd_kv_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].value);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

void kd_key_list_push(struct kd_key_list *l, const char *key)
{
	l->v = kd__delta_grow(l->v, &l->cap, l->n, sizeof(*l->v));
	l->v[l->n++] = kd_xstrdup(key);
}

void kd_key_list_fini(struct kd_key_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

struct kd_op *kd_op_list_push(struct kd_op_list *l)
{
	l->v = kd__delta_grow(l->v, &l->cap, l->n, sizeof(*l->v));
	struct kd_op *op = &l->v[l->n++];
	memset(op, 0, sizeof(*op));
	return op;
}

void kd_op_list_fini(struct kd_op_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		kd_op_fini(&l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

void kd_op_init(struct kd_op *op, enum kd_op_kind kind, const char *key)
{
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->key = key ? kd_xstrdup(key) : NULL;
}

void kd__tmpl_fini(struct kd_tmpl_ref *t)
{
	free(t->kind);
	free(t->name);
	free(t->uid);
	free(t->hash);
	memset(t, 0, sizeof(*t));
}

bool kd__tmpl_eq(const struct kd_tmpl_ref *a, const struct kd_tmpl_ref *b)
{
	return strcmp(a->hash, b->hash) == 0 && strcmp(a->uid, b->uid) == 0 &&
	       strcmp(a->name, b->name) == 0 && strcmp(a->kind, b->kind) == 0;
}

void kd_op_fini(struct kd_op *op)
{
	if (!op)
		return;
	free(op->key);
	kd__tmpl_fini(&op->tmpl);
	free(op->node);
	kd_kv_list_fini(&op->labels);
	kd_kv_list_fini(&op->annotations);
	free(op->ip);
	free(op->reason);
	memset(op, 0, sizeof(*op));
}

static char *dup_or_null(const char *s)
{
	return s ? kd_xstrdup(s) : NULL;
}

void kd_op_set_str(char **field, const char *value)
{
	free(*field);
	*field = dup_or_null(value);
}

void kd_op_set_tmpl(struct kd_op *op, const char *kind, const char *name, const char *uid,
                    const char *hash)
{
	kd__tmpl_fini(&op->tmpl);
	op->tmpl.kind = dup_or_null(kind);
	op->tmpl.name = dup_or_null(name);
	op->tmpl.uid = dup_or_null(uid);
	op->tmpl.hash = dup_or_null(hash);
	op->has |= KD_OP_HAS_TMPL;
}

static void kv_copy(struct kd_kv_list *dst, const struct kd_kv_list *src)
{
	memset(dst, 0, sizeof(*dst));
	for (size_t i = 0; i < src->n; i++)
		kd_kv_list_push(dst, src->v[i].key, src->v[i].value);
}

void kd_op_copy(struct kd_op *dst, const struct kd_op *src)
{
	*dst = *src;
	dst->key = dup_or_null(src->key);
	dst->tmpl.kind = dup_or_null(src->tmpl.kind);
	dst->tmpl.name = dup_or_null(src->tmpl.name);
	dst->tmpl.uid = dup_or_null(src->tmpl.uid);
	dst->tmpl.hash = dup_or_null(src->tmpl.hash);
	dst->node = dup_or_null(src->node);
	dst->ip = dup_or_null(src->ip);
	dst->reason = dup_or_null(src->reason);
	kv_copy(&dst->labels, &src->labels);
	kv_copy(&dst->annotations, &src->annotations);
}

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool kv_equal(const struct kd_kv_list *a, const struct kd_kv_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!str_eq(a->v[i].key, b->v[i].key) || !str_eq(a->v[i].value, b->v[i].value))
			return false;
	return true;
}

bool kd_op_equal(const struct kd_op *a, const struct kd_op *b)
{
	if (a->kind != b->kind || a->has != b->has || !str_eq(a->key, b->key))
		return false;
	if ((a->has & KD_OP_HAS_TMPL) &&
	    (!str_eq(a->tmpl.kind, b->tmpl.kind) || !str_eq(a->tmpl.name, b->tmpl.name) ||
	     !str_eq(a->tmpl.uid, b->tmpl.uid) || !str_eq(a->tmpl.hash, b->tmpl.hash)))
		return false;
	if ((a->has & KD_OP_HAS_CTIME) && a->ctime_ms != b->ctime_ms)
		return false;
	if ((a->has & KD_OP_HAS_CPU) && a->cpu_millis != b->cpu_millis)
		return false;
	if ((a->has & KD_OP_HAS_MEM) && a->mem_bytes != b->mem_bytes)
		return false;
	if ((a->has & KD_OP_HAS_READY) && a->ready != b->ready)
		return false;
	return str_eq(a->node, b->node) && str_eq(a->ip, b->ip) && str_eq(a->reason, b->reason) &&
	       kv_equal(&a->labels, &b->labels) && kv_equal(&a->annotations, &b->annotations);
}

static bool ops_equal(const struct kd_op_list *a, const struct kd_op_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!kd_op_equal(&a->v[i], &b->v[i]))
			return false;
	return true;
}

static bool keys_equal(const struct kd_key_list *a, const struct kd_key_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!str_eq(a->v[i], b->v[i]))
			return false;
	return true;
}

static void ops_copy(struct kd_op_list *dst, const struct kd_op_list *src)
{
	memset(dst, 0, sizeof(*dst));
	for (size_t i = 0; i < src->n; i++)
		kd_op_copy(kd_op_list_push(dst), &src->v[i]);
}

static void keys_copy(struct kd_key_list *dst, const struct kd_key_list *src)
{
	memset(dst, 0, sizeof(*dst));
	for (size_t i = 0; i < src->n; i++)
		kd_key_list_push(dst, src->v[i]);
}

void kd_msg_init(struct kd_msg *m, enum kd_msg_type type, uint64_t epoch, uint64_t seq)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->epoch = epoch;
	m->seq = seq;
}

void kd_msg_fini(struct kd_msg *m)
{
	if (!m)
		return;
	switch (m->type) {
	case KD_MSG_HELLO:
		free(m->hello.source);
		break;
	case KD_MSG_STATE:
		kd_op_list_fini(&m->state.held);
		break;
	case KD_MSG_RECONCILE:
		kd_key_list_fini(&m->reconcile.keep);
		kd_key_list_fini(&m->reconcile.drop);
		kd_op_list_fini(&m->reconcile.resend);
		break;
	case KD_MSG_DELTA:
		kd_op_list_fini(&m->delta.ops);
		break;
	case KD_MSG_ERROR:
		free(m->error.reason);
		break;
	default:
		break;
	}
	memset(m, 0, sizeof(*m));
}

struct kd_msg *kd_msg_new(enum kd_msg_type type, uint64_t epoch, uint64_t seq)
{
	struct kd_msg *m = kd_xmalloc(sizeof(*m));
	kd_msg_init(m, type, epoch, seq);
	return m;
}

void kd_msg_free(struct kd_msg *m)
{
	if (!m)
		return;
	kd_msg_fini(m);
	free(m);
}

void kd_msg_copy(struct kd_msg *dst, const struct kd_msg *src)
{
	kd_msg_init(dst, src->type, src->epoch, src->seq);
	dst->part = src->part;
	dst->more = src->more;
	switch (src->type) {
	case KD_MSG_HELLO:
		dst->hello.source = dup_or_null(src->hello.source);
		break;
	case KD_MSG_STATE:
		dst->state.last_seq = src->state.last_seq;
		ops_copy(&dst->state.held, &src->state.held);
		break;
	case KD_MSG_RECONCILE:
		keys_copy(&dst->reconcile.keep, &src->reconcile.keep);
		keys_copy(&dst->reconcile.drop, &src->reconcile.drop);
		ops_copy(&dst->reconcile.resend, &src->reconcile.resend);
		break;
	case KD_MSG_DELTA:
		ops_copy(&dst->delta.ops, &src->delta.ops);
		break;
	case KD_MSG_ERROR:
		dst->error.code = src->error.code;
		dst->error.reason = dup_or_null(src->error.reason);
		break;
	default:
		break;
	}
}

bool kd_msg_equal(const struct kd_msg *a, const struct kd_msg *b)
{
	if (a->type != b->type || a->epoch != b->epoch || a->seq != b->seq || a->part != b->part ||
	    a->more != b->more)
		return false;
	switch (a->type) {
	case KD_MSG_HELLO:
		return str_eq(a->hello.source, b->hello.source);
	case KD_MSG_STATE:
		return a->state.last_seq == b->state.last_seq &&
		       ops_equal(&a->state.held, &b->state.held);
	case KD_MSG_RECONCILE:
		return keys_equal(&a->reconcile.keep, &b->reconcile.keep) &&
		       keys_equal(&a->reconcile.drop, &b->reconcile.drop) &&
		       ops_equal(&a->reconcile.resend, &b->reconcile.resend);
	case KD_MSG_DELTA:
		return ops_equal(&a->delta.ops, &b->delta.ops);
	case KD_MSG_ERROR:
		return a->error.code == b->error.code && str_eq(a->error.reason, b->error.reason);
	default:
		return true;
	}
}

static const char *const type_names[] = {
    [KD_MSG_HELLO] = "hello", [KD_MSG_STATE] = "state", [KD_MSG_RECONCILE] = "reconcile",
    [KD_MSG_READY] = "ready", [KD_MSG_DELTA] = "delta", [KD_MSG_ACK] = "ack",
    [KD_MSG_ERROR] = "error",
};

const char *kd_msg_type_name(enum kd_msg_type t)
{
	if ((unsigned)t >= KD_ARRAY_SIZE(type_names))
		return NULL;
	return type_names[t];
}

void kd_msg_vec_push(struct kd_msg_vec *v, struct kd_msg *m)
{
	v->v = kd__delta_grow(v->v, &v->cap, v->n, sizeof(*v->v));
	v->v[v->n++] = m;
}

void kd_frame_vec_fini(struct kd_frame_vec *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i].buf);
	free(v->v);
	memset(v, 0, sizeof(*v));
}

void kd__frame_vec_push(struct kd_frame_vec *v, char *buf, size_t len)
{
	v->v = kd__delta_grow(v->v, &v->cap, v->n, sizeof(*v->v));
	v->v[v->n].buf = buf;
	v->v[v->n].len = len;
	v->n++;
}

void kd_msg_vec_fini(struct kd_msg_vec *v)
{
	for (size_t i = 0; i < v->n; i++)
		kd_msg_free(v->v[i]);
	free(v->v);
	memset(v, 0, sizeof(*v));
}
