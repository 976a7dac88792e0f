/* kd_delta.c: channel message model, validation, compact JSON encoder (with paging) and strict
 * decoder (own RFC 8259 parser). The wire format is specified in kd/delta.h. */
#include "kd/delta.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Deepest legitimate nesting: frame object > list > op > labels. Unknown fields may nest a
 * little; anything deeper is rejected by the tokener. */
#define JSON_MAX_DEPTH 8

/* ---- model ---------------------------------------------------------------------------------- */

static void *grow(void *v, size_t *cap, size_t n, size_t elem)
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
	l->v = grow(l->v, &l->cap, l->n, sizeof(*l->v));
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
	l->v = grow(l->v, &l->cap, l->n, sizeof(*l->v));
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
	l->v = grow(l->v, &l->cap, l->n, sizeof(*l->v));
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

static void tmpl_fini(struct kd_tmpl_ref *t)
{
	free(t->kind);
	free(t->name);
	free(t->uid);
	free(t->hash);
	memset(t, 0, sizeof(*t));
}

void kd_op_fini(struct kd_op *op)
{
	if (!op)
		return;
	free(op->key);
	tmpl_fini(&op->tmpl);
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
	tmpl_fini(&op->tmpl);
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
	v->v = grow(v->v, &v->cap, v->n, sizeof(*v->v));
	v->v[v->n++] = m;
}

void kd_frame_vec_fini(struct kd_frame_vec *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i].buf);
	free(v->v);
	memset(v, 0, sizeof(*v));
}

static void frame_vec_push(struct kd_frame_vec *v, char *buf, size_t len)
{
	v->v = grow(v->v, &v->cap, v->n, sizeof(*v->v));
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

/* ---- validation ------------------------------------------------------------------------------ */

/* Length of the valid UTF-8 prefix of s[0..len) that contains no NUL; == len when all valid.
 * Rejects overlong forms, surrogates and code points above U+10FFFF. */
static size_t utf8_valid_prefix(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		/* fast path: 8 ASCII bytes without NUL at a time */
		if (len - i >= 8) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			uint64_t nul = (w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL;
			if (((w & 0x8080808080808080ULL) | nul) == 0) {
				i += 8;
				continue;
			}
		}
		unsigned char c = s[i];
		if (c >= 0x01 && c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		unsigned lo = 0x80, hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0;
			else if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;
		} else {
			return i; /* NUL, continuation byte, 0xc0/0xc1, 0xf5.. */
		}
		if (len - i <= n)
			return i;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return i;
		for (size_t k = 2; k <= n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return i;
		i += n + 1;
	}
	return i;
}

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, 1..63. NULL when fine, else why not. */
static const char *dns_label_why(const char *s, size_t len)
{
	if (len == 0)
		return "is empty";
	if (len > 63)
		return "is longer than 63 characters";
	for (size_t i = 0; i < len; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return "has a character outside [a-z0-9-]";
	if (s[0] == '-' || s[len - 1] == '-')
		return "must start and end with [a-z0-9]";
	return NULL;
}

/* DNS-1123 subdomain: labels joined by '.', 1..253. */
static const char *dns_subdomain_why(const char *s, size_t len)
{
	if (len == 0)
		return "is empty";
	if (len > 253)
		return "is longer than 253 characters";
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (i == start)
				return "has an empty DNS label";
			for (size_t k = start; k < i; k++)
				if (!is_lower_alnum(s[k]) && s[k] != '-')
					return "has a character outside [a-z0-9.-]";
			if (s[start] == '-' || s[i - 1] == '-')
				return "has a DNS label not starting and ending with [a-z0-9]";
			start = i + 1;
		}
	}
	return NULL;
}

/* Quotes at most 64 bytes of s for error messages, escaping non-printables. Writes into buf. */
static const char *quote(char *buf, size_t bufsz, const char *s, size_t len)
{
	size_t o = 0;
	buf[o++] = '"';
	for (size_t i = 0; i < len && o + 6 < bufsz; i++) {
		unsigned char c = (unsigned char)s[i];
		if (i >= 64) {
			o += (size_t)snprintf(buf + o, bufsz - o, "...");
			break;
		}
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			o += (size_t)snprintf(buf + o, bufsz - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

#define QBUF 300

int kd_key_check(const char *key, size_t len, struct kd_error **err)
{
	char q[QBUF];
	if (!key)
		return kd_error_set(err, EINVAL, 0, "key is missing");
	const char *slash = memchr(key, '/', len);
	if (!slash)
		return kd_error_set(err, EINVAL, 0, "key %s has no '/' (want namespace/name)",
		                    quote(q, sizeof(q), key, len));
	size_t nslen = (size_t)(slash - key);
	const char *name = slash + 1;
	size_t namelen = len - nslen - 1;
	if (memchr(name, '/', namelen))
		return kd_error_set(err, EINVAL, 0, "key %s has more than one '/'",
		                    quote(q, sizeof(q), key, len));
	const char *why = dns_label_why(key, nslen);
	if (why)
		return kd_error_set(err, EINVAL, 0, "key %s: namespace %s",
		                    quote(q, sizeof(q), key, len), why);
	why = dns_subdomain_why(name, namelen);
	if (why)
		return kd_error_set(err, EINVAL, 0, "key %s: name %s",
		                    quote(q, sizeof(q), key, len), why);
	return 0;
}

static const char *charset_why(const char *s, size_t maxlen, const char *extra, bool alnum_ends)
{
	size_t len = strlen(s);
	if (len == 0)
		return "is empty";
	if (len > maxlen)
		return "is too long";
	for (size_t i = 0; i < len; i++)
		if (!is_alnum(s[i]) && !strchr(extra, s[i]))
			return "has a character outside the allowed set";
	if (alnum_ends && (!is_alnum(s[0]) || !is_alnum(s[len - 1])))
		return "must start and end with an alphanumeric character";
	return NULL;
}

static const char *source_why(const char *s)
{
	return charset_why(s, KD_SOURCE_MAX, "._:/-", false);
}

/* Kubernetes qualified name: [prefix/]name; prefix a DNS subdomain, name 1..63 of
 * [A-Za-z0-9._-] starting and ending alphanumeric. */
static const char *kv_key_why(const char *s)
{
	size_t len = strlen(s);
	if (len > KD_KV_KEY_MAX)
		return "is too long";
	const char *slash = strchr(s, '/');
	const char *name = s;
	if (slash) {
		if (dns_subdomain_why(s, (size_t)(slash - s)))
			return "has a prefix that is not a DNS subdomain";
		name = slash + 1;
	}
	if (strchr(name, '/'))
		return "has more than one '/'";
	const char *why = charset_why(name, 63, "._-", true);
	return why ? why : NULL;
}

static const char *label_value_why(const char *s)
{
	if (!*s)
		return NULL;
	return charset_why(s, KD_LABEL_VAL_MAX, "._-", true);
}

static const char *text_why(const char *s, size_t maxlen)
{
	size_t len = strlen(s);
	if (len > maxlen)
		return "is too long";
	if (utf8_valid_prefix((const unsigned char *)s, len) != len)
		return "is not valid UTF-8";
	return NULL;
}

static const char *ip_why(const char *s)
{
	unsigned char buf[16];
	if (strlen(s) > 45)
		return "is not an IP address";
	if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1)
		return NULL;
	return "is not an IP address";
}

static bool tmpl_eq(const struct kd_tmpl_ref *a, const struct kd_tmpl_ref *b);

/* Context for error messages: "<type>[ seq S][ <list> <idx>]". */
struct vctx {
	const struct kd_tmpl_ref *last_tmpl; /* last template found valid (ops share templates) */
	const struct kd_msg *m;
	const char *list; /* "op", "held", "resend", "keep", "drop" or NULL */
	size_t idx;
	struct kd_error **err;
};

static const char *ctx_str(const struct vctx *c, char *buf, size_t bufsz)
{
	const char *tn = kd_msg_type_name(c->m->type);
	int o = snprintf(buf, bufsz, "%s", tn ? tn : "message");
	if ((c->m->type == KD_MSG_DELTA || c->m->type == KD_MSG_ACK) && c->m->seq)
		o += snprintf(buf + o, bufsz - (size_t)o, " seq %llu",
		              (unsigned long long)c->m->seq);
	if (c->m->part)
		o += snprintf(buf + o, bufsz - (size_t)o, " part %u", c->m->part);
	if (c->list)
		snprintf(buf + o, bufsz - (size_t)o, " %s %zu", c->list, c->idx);
	return buf;
}

static int vfail(const struct vctx *c, int errnum, const char *fmt, ...) KD_PRINTF(3, 4);
static int vfail(const struct vctx *c, int errnum, const char *fmt, ...)
{
	char cb[96];
	va_list ap;
	va_start(ap, fmt);
	kd_autofree char *detail = kd_xvasprintf(fmt, ap);
	va_end(ap);
	return kd_error_set(c->err, errnum, 0, "%s: %s", ctx_str(c, cb, sizeof(cb)), detail);
}

/* Open-addressing string set for duplicate detection (borrowed strings). */
struct keyset {
	const char **slot;
	size_t mask;
};

static void keyset_init(struct keyset *s, size_t n)
{
	size_t cap = 16;
	while (cap < n * 2)
		cap <<= 1;
	s->slot = kd_xcalloc(cap, sizeof(*s->slot));
	s->mask = cap - 1;
}

static void keyset_fini(struct keyset *s)
{
	free(s->slot);
	s->slot = NULL;
}

/* false when k was already present. */
static bool keyset_add(struct keyset *s, const char *k)
{
	uint64_t h = 1469598103934665603ULL;
	for (const unsigned char *p = (const unsigned char *)k; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	for (size_t i = (size_t)h & s->mask;; i = (i + 1) & s->mask) {
		if (!s->slot[i]) {
			s->slot[i] = k;
			return true;
		}
		if (strcmp(s->slot[i], k) == 0)
			return false;
	}
}

static int check_kvs(const struct vctx *c, const struct kd_kv_list *l, const char *what,
                     bool labels)
{
	char q[QBUF];
	if (l->n > KD_KV_MAX)
		return vfail(c, E2BIG, "%zu %s exceed the limit of %d", l->n, what, KD_KV_MAX);
	for (size_t i = 0; i < l->n; i++) {
		const char *k = l->v[i].key, *v = l->v[i].value;
		if (!k || !v)
			return vfail(c, EINVAL, "%s entry %zu is missing its key or value", what,
			             i);
		const char *why = kv_key_why(k);
		if (why)
			return vfail(c, EINVAL, "%s key %s %s", what,
			             quote(q, sizeof(q), k, strlen(k)), why);
		why = labels ? label_value_why(v) : text_why(v, KD_ANNOT_VAL_MAX);
		if (why)
			return vfail(c, EINVAL, "%s %s: value %s", what,
			             quote(q, sizeof(q), k, strlen(k)), why);
		for (size_t j = 0; j < i; j++)
			if (strcmp(l->v[j].key, k) == 0)
				return vfail(c, EINVAL, "%s key %s appears twice", what,
				             quote(q, sizeof(q), k, strlen(k)));
	}
	return 0;
}

static int check_op(struct vctx *c, const struct kd_op *op, bool upsert_only)
{
	char q[QBUF];
	kd_autoerr struct kd_error *kerr = NULL;
	if (op->kind != KD_OP_UPSERT && op->kind != KD_OP_DELETE)
		return vfail(c, EINVAL, "op is neither \"upsert\" nor \"delete\"");
	if (upsert_only && op->kind != KD_OP_UPSERT)
		return vfail(c, EINVAL, "must be an upsert");
	if (!op->key)
		return vfail(c, EINVAL, "missing key");
	if (kd_key_check(op->key, strlen(op->key), &kerr) < 0)
		return vfail(c, EINVAL, "%s", kerr->msg);
	const char *why;
	if (op->reason && (why = text_why(op->reason, KD_REASON_MAX)))
		return vfail(c, EINVAL, "reason %s", why);
	if (op->kind == KD_OP_DELETE) {
		if (op->has || op->node || op->ip || op->labels.n || op->annotations.n)
			return vfail(c, EINVAL, "delete of %s carries upsert fields",
			             quote(q, sizeof(q), op->key, strlen(op->key)));
		return 0;
	}
	if (op->has & ~(unsigned)(KD_OP_HAS_CTIME | KD_OP_HAS_CPU | KD_OP_HAS_MEM |
	                          KD_OP_HAS_READY | KD_OP_HAS_TMPL))
		return vfail(c, EINVAL, "unknown has bits 0x%x", op->has);
	if (op->has & KD_OP_HAS_TMPL) {
		const struct kd_tmpl_ref *t = &op->tmpl;
		if (!t->kind || !t->name || !t->uid || !t->hash)
			return vfail(c, EINVAL, "tmpl needs kind, name, uid and hash");
	}
	if ((op->has & KD_OP_HAS_TMPL) && !(c->last_tmpl && tmpl_eq(c->last_tmpl, &op->tmpl))) {
		const struct kd_tmpl_ref *t = &op->tmpl;
		if ((why = charset_why(t->kind, 63, "", false)))
			return vfail(c, EINVAL, "tmpl kind %s %s",
			             quote(q, sizeof(q), t->kind, strlen(t->kind)), why);
		if ((why = dns_subdomain_why(t->name, strlen(t->name))))
			return vfail(c, EINVAL, "tmpl name %s %s",
			             quote(q, sizeof(q), t->name, strlen(t->name)), why);
		if ((why = charset_why(t->uid, 128, "-", false)))
			return vfail(c, EINVAL, "tmpl uid %s %s",
			             quote(q, sizeof(q), t->uid, strlen(t->uid)), why);
		if ((why = charset_why(t->hash, 64, "_-", false)))
			return vfail(c, EINVAL, "tmpl hash %s %s",
			             quote(q, sizeof(q), t->hash, strlen(t->hash)), why);
		c->last_tmpl = t;
	} else if (op->has & KD_OP_HAS_TMPL) {
		/* same as the last valid one */
	} else if (op->tmpl.kind || op->tmpl.name || op->tmpl.uid || op->tmpl.hash) {
		return vfail(c, EINVAL, "tmpl fields set without KD_OP_HAS_TMPL");
	}
	if (op->node && (why = dns_subdomain_why(op->node, strlen(op->node))))
		return vfail(c, EINVAL, "node %s %s",
		             quote(q, sizeof(q), op->node, strlen(op->node)), why);
	if ((op->has & KD_OP_HAS_CTIME) && (op->ctime_ms < 1 || op->ctime_ms > KD_INT_MAX))
		return vfail(c, EINVAL, "ctime %lld out of range [1, 2^53-1]",
		             (long long)op->ctime_ms);
	if ((op->has & KD_OP_HAS_CPU) && (op->cpu_millis < 0 || op->cpu_millis > KD_CPU_MAX))
		return vfail(c, EINVAL, "cpu %lld out of range [0, %lld]",
		             (long long)op->cpu_millis, (long long)KD_CPU_MAX);
	if ((op->has & KD_OP_HAS_MEM) && (op->mem_bytes < 0 || op->mem_bytes > KD_INT_MAX))
		return vfail(c, EINVAL, "mem %lld out of range [0, 2^53-1]",
		             (long long)op->mem_bytes);
	if (op->ip && (why = ip_why(op->ip)))
		return vfail(c, EINVAL, "ip %s %s", quote(q, sizeof(q), op->ip, strlen(op->ip)),
		             why);
	int rc = check_kvs(c, &op->labels, "labels", true);
	if (rc < 0)
		return rc;
	return check_kvs(c, &op->annotations, "annotations", false);
}

static int check_ops(struct vctx *c, const struct kd_op_list *l, const char *list, size_t max,
                     bool upsert_only, struct keyset *seen)
{
	char q[QBUF];
	c->list = NULL;
	if (l->n > max)
		return vfail(c, E2BIG, "%zu %s ops exceed the limit of %zu", l->n, list, max);
	for (size_t i = 0; i < l->n; i++) {
		c->list = list;
		c->idx = i;
		int rc = check_op(c, &l->v[i], upsert_only);
		if (rc < 0)
			return rc;
		if (!keyset_add(seen, l->v[i].key))
			return vfail(c, EINVAL, "key %s appears more than once",
			             quote(q, sizeof(q), l->v[i].key, strlen(l->v[i].key)));
	}
	c->list = NULL;
	return 0;
}

static int check_keys(struct vctx *c, const struct kd_key_list *l, const char *list, size_t max,
                      struct keyset *seen)
{
	char q[QBUF];
	kd_autoerr struct kd_error *kerr = NULL;
	c->list = NULL;
	if (l->n > max)
		return vfail(c, E2BIG, "%zu %s keys exceed the limit of %zu", l->n, list, max);
	for (size_t i = 0; i < l->n; i++) {
		c->list = list;
		c->idx = i;
		if (!l->v[i])
			return vfail(c, EINVAL, "missing key");
		if (kd_key_check(l->v[i], strlen(l->v[i]), &kerr) < 0)
			return vfail(c, EINVAL, "%s", kerr->msg);
		if (!keyset_add(seen, l->v[i]))
			return vfail(c, EINVAL, "key %s appears more than once",
			             quote(q, sizeof(q), l->v[i], strlen(l->v[i])));
	}
	c->list = NULL;
	return 0;
}

static struct kd_delta_limits limits_of(const struct kd_delta_limits *lim)
{
	struct kd_delta_limits l = {KD_DELTA_MAX_FRAME_DEFAULT, KD_DELTA_MAX_OPS_DEFAULT,
	                            KD_DELTA_MAX_KEYS_DEFAULT, KD_DELTA_MAX_TOTAL_DEFAULT};
	if (lim) {
		if (lim->max_total)
			l.max_total = lim->max_total;
		if (lim->max_frame)
			l.max_frame = KD_MIN(lim->max_frame, (size_t)INT_MAX);
		if (lim->max_ops)
			l.max_ops = lim->max_ops;
		if (lim->max_keys)
			l.max_keys = lim->max_keys;
	}
	return l;
}

int kd_msg_validate(const struct kd_msg *m, const struct kd_delta_limits *lim,
                    struct kd_error **err)
{
	struct kd_delta_limits l = limits_of(lim);
	struct vctx c = {.m = m, .err = err};
	const char *tn = kd_msg_type_name(m->type);
	if (!tn)
		return kd_error_set(err, EINVAL, 0, "unknown message type %d", (int)m->type);
	if (m->type != KD_MSG_ERROR && m->epoch == 0)
		return vfail(&c, EINVAL, "epoch 0 is only valid in an error message");
	bool data = m->type == KD_MSG_DELTA || m->type == KD_MSG_ACK;
	if (data && (m->seq < 1 || m->seq > KD_SEQ_MAX))
		return vfail(&c, EINVAL, "seq %llu out of range [1, 2^53-1]",
		             (unsigned long long)m->seq);
	if (!data && m->seq != 0)
		return vfail(&c, EINVAL, "seq must be 0 on a control message, not %llu",
		             (unsigned long long)m->seq);
	bool pageable = m->type == KD_MSG_STATE || m->type == KD_MSG_RECONCILE;
	if (!pageable && (m->part || m->more))
		return vfail(&c, EINVAL, "part/more are only valid on state and reconcile");
	if (m->part > KD_PART_MAX)
		return vfail(&c, EINVAL, "part %u out of range [0, %u]", m->part, KD_PART_MAX);
	const char *why;
	struct keyset seen;
	int rc = 0;
	switch (m->type) {
	case KD_MSG_HELLO:
		if (!m->hello.source)
			return vfail(&c, EINVAL, "missing source");
		if ((why = source_why(m->hello.source)))
			return vfail(&c, EINVAL, "source %s", why);
		return 0;
	case KD_MSG_STATE:
		if (m->state.last_seq > KD_SEQ_MAX)
			return vfail(&c, EINVAL, "last_seq out of range [0, 2^53-1]");
		keyset_init(&seen, KD_MIN(m->state.held.n, l.max_ops));
		rc = check_ops(&c, &m->state.held, "held", l.max_ops, true, &seen);
		keyset_fini(&seen);
		return rc;
	case KD_MSG_RECONCILE: {
		const struct kd_key_list *keep = &m->reconcile.keep, *drop = &m->reconcile.drop;
		size_t total = KD_MIN(keep->n, l.max_keys) + KD_MIN(drop->n, l.max_keys) +
		               KD_MIN(m->reconcile.resend.n, l.max_ops);
		keyset_init(&seen, total);
		rc = check_keys(&c, keep, "keep", l.max_keys, &seen);
		if (rc == 0)
			rc = check_keys(&c, drop, "drop", l.max_keys, &seen);
		if (rc == 0)
			rc = check_ops(&c, &m->reconcile.resend, "resend", l.max_ops, true, &seen);
		keyset_fini(&seen);
		return rc;
	}
	case KD_MSG_DELTA:
		if (m->delta.ops.n == 0)
			return vfail(&c, EINVAL, "a delta needs at least one op");
		keyset_init(&seen, KD_MIN(m->delta.ops.n, l.max_ops));
		rc = check_ops(&c, &m->delta.ops, "op", l.max_ops, false, &seen);
		keyset_fini(&seen);
		return rc;
	case KD_MSG_ERROR:
		if (m->error.code < 1 || m->error.code > KD_CODE_MAX)
			return vfail(&c, EINVAL, "code %d out of range [1, 65535]", m->error.code);
		if (m->error.reason && (why = text_why(m->error.reason, KD_REASON_MAX)))
			return vfail(&c, EINVAL, "reason %s", why);
		return 0;
	default:
		return 0;
	}
}

struct kd_msg *kd_msg_new_error(uint64_t epoch, int code, const char *fmt, ...)
{
	struct kd_msg *m = kd_msg_new(KD_MSG_ERROR, epoch, 0);
	m->error.code = code;
	va_list ap;
	va_start(ap, fmt);
	char *r = kd_xvasprintf(fmt, ap);
	va_end(ap);
	size_t len = strlen(r);
	size_t ok = utf8_valid_prefix((const unsigned char *)r, KD_MIN(len, (size_t)KD_REASON_MAX));
	r[ok] = '\0';
	m->error.reason = r;
	return m;
}

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

/* Template table of one frame: distinct template references in order of first use. */
struct ttab {
	const struct kd_tmpl_ref **v; /* borrowed */
	size_t n, cap;
	uint32_t *slot; /* index + 1, 0 = empty */
	size_t mask;
};

static uint64_t fnv_str(uint64_t h, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (h ^ 0xff) * 1099511628211ULL; /* separator */
}

static uint64_t tmpl_hash(const struct kd_tmpl_ref *t)
{
	uint64_t h = 1469598103934665603ULL;
	h = fnv_str(h, t->kind);
	h = fnv_str(h, t->name);
	h = fnv_str(h, t->uid);
	return fnv_str(h, t->hash);
}

static bool tmpl_eq(const struct kd_tmpl_ref *a, const struct kd_tmpl_ref *b)
{
	return strcmp(a->hash, b->hash) == 0 && strcmp(a->uid, b->uid) == 0 &&
	       strcmp(a->name, b->name) == 0 && strcmp(a->kind, b->kind) == 0;
}

static void ttab_fini(struct ttab *t)
{
	free(t->v);
	free(t->slot);
	memset(t, 0, sizeof(*t));
}

static void ttab_reset(struct ttab *t)
{
	if (t->slot && t->n)
		memset(t->slot, 0, (t->mask + 1) * sizeof(*t->slot));
	t->n = 0;
}

static size_t ttab_find(const struct ttab *t, const struct kd_tmpl_ref *r, uint64_t h)
{
	size_t i = (size_t)h & t->mask;
	while (t->slot[i] && t->v && !tmpl_eq(t->v[t->slot[i] - 1], r))
		i = (i + 1) & t->mask;
	return i;
}

/* Index of r in t, or t->n (the index it would get) when absent. */
static size_t ttab_lookup(struct ttab *t, const struct kd_tmpl_ref *r)
{
	if (!t->slot)
		return t->n;
	size_t i = ttab_find(t, r, tmpl_hash(r));
	return t->slot[i] ? t->slot[i] - 1 : t->n;
}

static size_t ttab_add(struct ttab *t, const struct kd_tmpl_ref *r)
{
	if (!t->slot || (t->n + 1) * 2 > t->mask + 1) {
		size_t cap = t->slot ? (t->mask + 1) * 2 : 16;
		free(t->slot);
		t->slot = kd_xcalloc(cap, sizeof(*t->slot));
		t->mask = cap - 1;
		for (size_t k = 0; k < t->n; k++)
			t->slot[ttab_find(t, t->v[k], tmpl_hash(t->v[k]))] = (uint32_t)(k + 1);
	}
	size_t i = ttab_find(t, r, tmpl_hash(r));
	if (t->slot[i])
		return t->slot[i] - 1;
	t->v = grow(t->v, &t->cap, t->n, sizeof(*t->v));
	t->v[t->n] = r;
	t->slot[i] = (uint32_t)(t->n + 1);
	return t->n++;
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
		enc_tmpl_obj(b, t->v[i]);
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
			if (prev && tmpl_eq(prev, &v[i].tmpl)) {
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
	struct kd_delta_limits l = limits_of(lim);
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
	frame_vec_push(&p->frames, p->b.p, p->b.len - p->headroom);
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
	struct kd_delta_limits l = limits_of(lim);
	bool pageable = m->type == KD_MSG_STATE || m->type == KD_MSG_RECONCILE;
	if (!pageable) {
		char *buf = NULL;
		size_t len = 0;
		int rc = kd_msg_encode(m, headroom, &l, &buf, &len, err);
		if (rc < 0)
			return rc;
		frame_vec_push(out, buf, len);
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
			frame_vec_push(out, b.p, b.len - headroom);
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
		frame_vec_push(out, p.frames.v[i].buf, p.frames.v[i].len);
	free(p.frames.v);
	return 0;
}

/* ---- JSON parser ---------------------------------------------------------------------------- */

/* A small strict JSON parser (RFC 8259) into a read-only tree, replacing json-c on the decode
 * path (json-c built a hash table per object and one allocation per value, and its parse plus
 * free was ~1/3 of decoding a state{}). Nodes come from blocks of JV_BLOCK, strings are
 * unescaped into one buffer of the frame's size (a decoded string plus its NUL never exceeds
 * its quoted source), so a frame costs a handful of allocations. Semantics follow what the
 * json-c based decoder did: integers (-?(0|[1-9][0-9]*)) are "int" and saturate at
 * INT64_MIN/MAX, numbers with a fraction or exponent are "double"; a lone surrogate escape
 * becomes U+FFFD; for a repeated member name the last one counts (member()); containers
 * nested deeper than JSON_MAX_DEPTH are rejected. Raw control characters in strings and
 * leading zeros are rejected, as RFC 8259 requires. The input was already checked for valid
 * UTF-8 without NUL bytes and for the escape \u0000 (prescan). */

enum jtype { J_NULL, J_BOOL, J_INT, J_DOUBLE, J_STRING, J_ARRAY, J_OBJECT };

struct jv {
	struct jv *next;  /* next element / member of the parent */
	struct jv *first; /* array/object: first child */
	const char *name; /* object member: its name (NUL-terminated) */
	const char *s;    /* string: value (NUL-terminated, n bytes) */
	int64_t i;        /* int */
	uint32_t n;       /* string: length; array/object: children */
	uint32_t name_len;
	uint8_t type;
	bool b;
};

#define JV_BLOCK 1024

struct jblock {
	struct jblock *prev;
	struct jv v[JV_BLOCK];
};

struct jparser {
	const char *p, *end, *start;
	char *sbuf; /* unescaped strings */
	size_t sused;
	struct jblock *blk;
	size_t bused;
	const char *why; /* first error */
	size_t at;       /* byte offset of the error */
	bool truncated;
};

static void jp_fini(struct jparser *jp)
{
	for (struct jblock *b = jp->blk, *prev; b; b = prev) {
		prev = b->prev;
		free(b);
	}
	free(jp->sbuf);
	jp->blk = NULL;
	jp->sbuf = NULL;
}

static struct jv *jp_node(struct jparser *jp, uint8_t type)
{
	if (!jp->blk || jp->bused == JV_BLOCK) {
		struct jblock *b = kd_xmalloc(sizeof(*b));
		b->prev = jp->blk;
		jp->blk = b;
		jp->bused = 0;
	}
	struct jv *v = &jp->blk->v[jp->bused++];
	memset(v, 0, sizeof(*v));
	v->type = type;
	return v;
}

static bool jp_fail(struct jparser *jp, const char *why)
{
	if (!jp->why) {
		jp->why = why;
		jp->at = (size_t)(jp->p - jp->start);
		jp->truncated = jp->p >= jp->end;
	}
	return false;
}

static void jp_ws(struct jparser *jp)
{
	while (jp->p < jp->end &&
	       (*jp->p == ' ' || *jp->p == '\n' || *jp->p == '\r' || *jp->p == '\t'))
		jp->p++;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reads the 4 hex digits after "\u" at jp->p (which points at 'u'); -1 if malformed. */
static long jp_u4(struct jparser *jp)
{
	if (jp->end - jp->p < 5)
		return -1;
	long x = 0;
	for (int k = 1; k <= 4; k++) {
		int h = hexval(jp->p[k]);
		if (h < 0)
			return -1;
		x = x * 16 + h;
	}
	return x;
}

static char *put_utf8(char *o, unsigned long cp)
{
	if (cp < 0x80) {
		*o++ = (char)cp;
	} else if (cp < 0x800) {
		*o++ = (char)(0xc0 | (cp >> 6));
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xe0 | (cp >> 12));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*o++ = (char)(0xf0 | (cp >> 18));
		*o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	}
	return o;
}

/* Parses a string at jp->p (the opening quote); on success *out (length *len) points into sbuf. */
static bool jp_string(struct jparser *jp, const char **out, uint32_t *len)
{
	jp->p++; /* opening quote */
	char *o0 = jp->sbuf + jp->sused, *o = o0;
	for (;;) {
		/* plain run */
		const char *q = jp->p;
		while (q < jp->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
			q++;
		memcpy(o, jp->p, (size_t)(q - jp->p));
		o += q - jp->p;
		jp->p = q;
		if (jp->p >= jp->end)
			return jp_fail(jp, "unterminated string");
		char c = *jp->p;
		if (c == '"') {
			jp->p++;
			break;
		}
		if (c != '\\')
			return jp_fail(jp, "control character in string");
		jp->p++;
		if (jp->p >= jp->end)
			return jp_fail(jp, "unterminated string");
		c = *jp->p;
		static const char esc_in[] = "\"\\/bfnrt", esc_out[] = "\"\\/\b\f\n\r\t";
		const char *esc = c ? strchr(esc_in, c) : NULL;
		if (esc) { /* one-character escape: decoded char at the same index */
			*o++ = esc_out[esc - esc_in];
			jp->p++;
			continue;
		}
		switch (c) {
		case 'u':
			break;
		default:
			return jp_fail(jp, "invalid escape in string");
		}
		long cp = jp_u4(jp);
		if (cp < 0)
			return jp_fail(jp, jp->end - jp->p < 5 ? "unterminated string"
			                                       : "invalid \\u escape");
		jp->p += 5;
		if (cp >= 0xd800 && cp <= 0xdbff && jp->end - jp->p >= 6 && jp->p[0] == '\\' &&
		    jp->p[1] == 'u') {
			jp->p++;
			long lo = jp_u4(jp);
			jp->p--;
			if (lo >= 0xdc00 && lo <= 0xdfff) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				jp->p += 6;
			} else {
				cp = 0xfffd; /* lone high surrogate; the next escape stands alone */
			}
		} else if (cp >= 0xd800 && cp <= 0xdfff) {
			cp = 0xfffd; /* lone surrogate */
		}
		o = put_utf8(o, (unsigned long)cp);
	}
	*o = '\0';
	*out = o0;
	*len = (uint32_t)(o - o0);
	jp->sused += (size_t)(o - o0) + 1;
	return true;
}

static bool jp_number(struct jparser *jp, struct jv *v)
{
	const char *q = jp->p;
	bool neg = false;
	if (q < jp->end && *q == '-') {
		neg = true;
		q++;
	}
	if (q >= jp->end) {
		jp->p = q;
		return jp_fail(jp, "truncated number");
	}
	const char *digits = q;
	if (*q == '0') {
		q++;
	} else if (*q >= '1' && *q <= '9') {
		while (q < jp->end && *q >= '0' && *q <= '9')
			q++;
	} else {
		jp->p = q;
		return jp_fail(jp, "invalid number");
	}
	const char *int_end = q;
	bool is_double = false;
	if (q < jp->end && *q == '.') {
		q++;
		if (q >= jp->end || *q < '0' || *q > '9') {
			jp->p = q;
			return jp_fail(jp, "invalid number");
		}
		while (q < jp->end && *q >= '0' && *q <= '9')
			q++;
		is_double = true;
	}
	if (q < jp->end && (*q == 'e' || *q == 'E')) {
		q++;
		if (q < jp->end && (*q == '+' || *q == '-'))
			q++;
		if (q >= jp->end || *q < '0' || *q > '9') {
			jp->p = q;
			return jp_fail(jp, "invalid number");
		}
		while (q < jp->end && *q >= '0' && *q <= '9')
			q++;
		is_double = true;
	}
	if (q < jp->end && *q >= '0' && *q <= '9') { /* leading zero: "01" */
		jp->p = q;
		return jp_fail(jp, "invalid number (leading zero)");
	}
	jp->p = q;
	if (is_double) {
		v->type = J_DOUBLE;
		return true;
	}
	v->type = J_INT;
	uint64_t x = 0;
	bool over = false;
	for (const char *d = digits; d < int_end; d++) {
		unsigned dv = (unsigned)(*d - '0');
		if (x > (UINT64_MAX - dv) / 10) {
			over = true;
			break;
		}
		x = x * 10 + dv;
	}
	if (neg)
		v->i = (over || x > (uint64_t)INT64_MAX + 1) ? INT64_MIN : (int64_t)(0 - x);
	else
		v->i = (over || x > (uint64_t)INT64_MAX) ? INT64_MAX : (int64_t)x;
	return true;
}

static bool jp_lit(struct jparser *jp, const char *lit, size_t n)
{
	if ((size_t)(jp->end - jp->p) < n) {
		if (memcmp(jp->p, lit, (size_t)(jp->end - jp->p)) == 0) {
			jp->p = jp->end;
			return jp_fail(jp, "truncated literal");
		}
		return jp_fail(jp, "invalid literal");
	}
	if (memcmp(jp->p, lit, n) != 0)
		return jp_fail(jp, "invalid literal");
	jp->p += n;
	return true;
}

static struct jv *jp_value(struct jparser *jp, int depth)
{
	jp_ws(jp);
	if (jp->p >= jp->end) {
		jp_fail(jp, "unexpected end");
		return NULL;
	}
	char c = *jp->p;
	struct jv *v;
	if (c == '{' || c == '[') {
		if (depth >= JSON_MAX_DEPTH) {
			jp_fail(jp, "nesting too deep");
			return NULL;
		}
		bool obj = c == '{';
		char close = obj ? '}' : ']';
		v = jp_node(jp, obj ? J_OBJECT : J_ARRAY);
		jp->p++;
		jp_ws(jp);
		if (jp->p < jp->end && *jp->p == close) {
			jp->p++;
			return v;
		}
		struct jv **tail = &v->first;
		for (;;) {
			const char *name = NULL;
			uint32_t name_len = 0;
			if (obj) {
				jp_ws(jp);
				if (jp->p >= jp->end || *jp->p != '"') {
					jp_fail(jp, jp->p >= jp->end ? "unexpected end"
					                             : "expected a member name");
					return NULL;
				}
				if (!jp_string(jp, &name, &name_len))
					return NULL;
				jp_ws(jp);
				if (jp->p >= jp->end || *jp->p != ':') {
					jp_fail(jp, jp->p >= jp->end ? "unexpected end"
					                             : "expected ':'");
					return NULL;
				}
				jp->p++;
			}
			struct jv *e = jp_value(jp, depth + 1);
			if (!e)
				return NULL;
			e->name = name;
			e->name_len = name_len;
			*tail = e;
			tail = &e->next;
			v->n++;
			jp_ws(jp);
			if (jp->p >= jp->end) {
				jp_fail(jp, "unexpected end");
				return NULL;
			}
			if (*jp->p == ',') {
				jp->p++;
				continue;
			}
			if (*jp->p == close) {
				jp->p++;
				return v;
			}
			jp_fail(jp, obj ? "expected ',' or '}'" : "expected ',' or ']'");
			return NULL;
		}
	}
	v = jp_node(jp, J_NULL);
	switch (c) {
	case '"':
		v->type = J_STRING;
		return jp_string(jp, &v->s, &v->n) ? v : NULL;
	case 't':
		v->type = J_BOOL;
		v->b = true;
		return jp_lit(jp, "true", 4) ? v : NULL;
	case 'f':
		v->type = J_BOOL;
		return jp_lit(jp, "false", 5) ? v : NULL;
	case 'n':
		return jp_lit(jp, "null", 4) ? v : NULL;
	default:
		if (c == '-' || (c >= '0' && c <= '9'))
			return jp_number(jp, v) ? v : NULL;
		jp_fail(jp, "unexpected character");
		return NULL;
	}
}

static bool jv_is(const struct jv *v, enum jtype t)
{
	return v->type == t;
}

static const char *jtype_name(const struct jv *v)
{
	static const char *const names[] = {
	    [J_NULL] = "null",     [J_BOOL] = "boolean",  [J_INT] = "int",
	    [J_DOUBLE] = "double", [J_STRING] = "string", [J_ARRAY] = "array",
	    [J_OBJECT] = "object"};
	return names[v->type];
}

/* Borrowed member or NULL; the last one when a name repeats. */
static struct jv *member(const struct jv *obj, const char *name)
{
	size_t n = strlen(name);
	struct jv *found = NULL;
	for (struct jv *e = obj->first; e; e = e->next)
		if (e->name_len == n && memcmp(e->name, name, n) == 0)
			found = e;
	return found;
}

/* ---- decoder -------------------------------------------------------------------------------- */

struct dctx {
	struct vctx v; /* message being built, for error context */
	struct kd_delta_limits lim;
	struct kd_tmpl_ref *tmpls; /* the frame's template table, decoded (owned) or NULL */
	size_t ntmpls;
	bool *tused; /* per table entry: referenced by an op */
};

/* String member: 0 with *out owned (or NULL when absent and optional), or -EINVAL. */
static int get_str_as(const struct vctx *c, struct jv *obj, const char *name, const char *shown,
                      bool required, char **out)
{
	struct jv *v = member(obj, name);
	*out = NULL;
	if (!v) {
		if (required)
			return vfail(c, EINVAL, "missing field \"%s\"", shown);
		return 0;
	}
	if (!jv_is(v, J_STRING))
		return vfail(c, EINVAL, "field \"%s\" must be a string, not %s", shown,
		             jtype_name(v));
	const char *s = v->s;
	size_t len = (size_t)v->n;
	if (utf8_valid_prefix((const unsigned char *)s, len) != len)
		return vfail(c, EINVAL, "field \"%s\" is not valid UTF-8 or contains NUL", shown);
	*out = kd_xstrndup(s, len);
	return 0;
}

static int get_str(const struct vctx *c, struct jv *obj, const char *name, bool required,
                   char **out)
{
	return get_str_as(c, obj, name, name, required, out);
}

/* Integer member in [0, max]: 0 with *out set and *present, or -EINVAL. */
static int get_int(const struct vctx *c, struct jv *obj, const char *name, bool required,
                   int64_t max, int64_t *out, bool *present)
{
	struct jv *v = member(obj, name);
	*present = false;
	if (!v) {
		if (required)
			return vfail(c, EINVAL, "missing field \"%s\"", name);
		return 0;
	}
	if (!jv_is(v, J_INT))
		return vfail(c, EINVAL, "field \"%s\" must be an integer, not %s", name,
		             jtype_name(v));
	int64_t x = v->i; /* saturates at INT64_MAX/MIN */
	if (x < 0 || x > max)
		return vfail(c, EINVAL, "field \"%s\" out of range [0, %lld]", name,
		             (long long)max);
	*out = x;
	*present = true;
	return 0;
}

static int parse_epoch(const struct vctx *c, struct jv *obj, uint64_t *out)
{
	struct jv *v = member(obj, "epoch");
	if (!v)
		return vfail(c, EINVAL, "missing field \"epoch\"");
	if (!jv_is(v, J_STRING))
		return vfail(c, EINVAL, "field \"epoch\" must be a decimal string, not %s",
		             jtype_name(v));
	const char *s = v->s;
	size_t len = (size_t)v->n;
	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return vfail(c, EINVAL, "field \"epoch\" is not a canonical uint64");
	uint64_t x = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return vfail(c, EINVAL, "field \"epoch\" is not a canonical uint64");
		unsigned d = (unsigned)(s[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return vfail(c, EINVAL, "field \"epoch\" exceeds 2^64-1");
		x = x * 10 + d;
	}
	*out = x;
	return 0;
}

static int get_kvs(const struct vctx *c, struct jv *obj, const char *name, struct kd_kv_list *out)
{
	struct jv *v = member(obj, name);
	if (!v)
		return 0;
	if (!jv_is(v, J_OBJECT))
		return vfail(c, EINVAL, "field \"%s\" must be an object, not %s", name,
		             jtype_name(v));
	if ((size_t)v->n > KD_KV_MAX)
		return vfail(c, E2BIG, "%d %s exceed the limit of %d", (int)v->n, name, KD_KV_MAX);
	for (const struct jv *val = v->first; val; val = val->next) {
		const char *k = val->name;
		if (!jv_is(val, J_STRING))
			return vfail(c, EINVAL, "%s value of \"%.64s\" must be a string, not %s",
			             name, k, jtype_name(val));
		const char *s = val->s;
		size_t len = (size_t)val->n;
		if (utf8_valid_prefix((const unsigned char *)s, len) != len)
			return vfail(c, EINVAL, "%s value is not valid UTF-8 or contains NUL",
			             name);
		kd_kv_list_push(out, k, s);
	}
	return 0;
}

static int dec_tmpl(const struct vctx *c, struct jv *jt, const char *what, struct kd_tmpl_ref *t)
{
	char n[4][32];
	static const char *const f[4] = {"kind", "name", "uid", "hash"};
	if (!jv_is(jt, J_OBJECT))
		return vfail(c, EINVAL, "%s must be an object, not %s", what, jtype_name(jt));
	for (int i = 0; i < 4; i++)
		snprintf(n[i], sizeof(n[i]), "%s.%s", what, f[i]);
	int rc;
	if ((rc = get_str_as(c, jt, "kind", n[0], true, &t->kind)) < 0 ||
	    (rc = get_str_as(c, jt, "name", n[1], true, &t->name)) < 0 ||
	    (rc = get_str_as(c, jt, "uid", n[2], true, &t->uid)) < 0 ||
	    (rc = get_str_as(c, jt, "hash", n[3], true, &t->hash)) < 0)
		return rc;
	return 0;
}

static int dec_op(struct dctx *d, struct jv *jo, struct kd_op *op, bool upsert_list)
{
	const struct vctx *c = &d->v;
	if (!jv_is(jo, J_OBJECT))
		return vfail(c, EINVAL, "must be an object, not %s", jtype_name(jo));
	struct jv *jk = member(jo, "op");
	if (!jk && upsert_list)
		op->kind = KD_OP_UPSERT;
	else if (!jk)
		return vfail(c, EINVAL, "missing field \"op\"");
	else if (!jv_is(jk, J_STRING))
		return vfail(c, EINVAL, "field \"op\" must be a string, not %s", jtype_name(jk));
	else if (strcmp(jk->s, "upsert") == 0 && jk->n == 6)
		op->kind = KD_OP_UPSERT;
	else if (strcmp(jk->s, "delete") == 0 && jk->n == 6)
		op->kind = KD_OP_DELETE;
	else
		return vfail(c, EINVAL, "field \"op\" must be \"upsert\" or \"delete\"");
	int rc = get_str(c, jo, "key", true, &op->key);
	if (rc < 0)
		return rc;
	if ((rc = get_str(c, jo, "reason", false, &op->reason)) < 0)
		return rc;
	if (op->kind == KD_OP_DELETE) {
		static const char *const upsert_only[] = {"tmpl", "t",          "node",   "ctime",
		                                          "cpu",  "mem",        "labels", "ready",
		                                          "ip",   "annotations"};
		for (size_t i = 0; i < KD_ARRAY_SIZE(upsert_only); i++)
			if (member(jo, upsert_only[i]))
				return vfail(c, EINVAL, "delete carries upsert field \"%s\"",
				             upsert_only[i]);
		return 0;
	}
	struct jv *jt = member(jo, "tmpl");
	struct jv *jti = member(jo, "t");
	if (jt && jti)
		return vfail(c, EINVAL, "op carries both \"t\" and \"tmpl\"");
	if (jt) {
		if (!jv_is(jt, J_OBJECT))
			return vfail(c, EINVAL, "field \"tmpl\" must be an object, not %s",
			             jtype_name(jt));
		op->has |= KD_OP_HAS_TMPL;
		if ((rc = dec_tmpl(c, jt, "tmpl", &op->tmpl)) < 0)
			return rc;
	}
	if (jti) {
		int64_t ti = 0;
		bool tp;
		if (!d->tmpls)
			return vfail(c, EINVAL, "field \"t\" without a \"tmpls\" table");
		if ((rc = get_int(c, jo, "t", false, (int64_t)d->ntmpls - 1, &ti, &tp)) < 0)
			return rc;
		const struct kd_tmpl_ref *t = &d->tmpls[ti];
		op->has |= KD_OP_HAS_TMPL;
		op->tmpl.kind = kd_xstrdup(t->kind);
		op->tmpl.name = kd_xstrdup(t->name);
		op->tmpl.uid = kd_xstrdup(t->uid);
		op->tmpl.hash = kd_xstrdup(t->hash);
		d->tused[ti] = true;
	}
	if ((rc = get_str(c, jo, "node", false, &op->node)) < 0 ||
	    (rc = get_str(c, jo, "ip", false, &op->ip)) < 0)
		return rc;
	bool present;
	if ((rc = get_int(c, jo, "ctime", false, KD_INT_MAX, &op->ctime_ms, &present)) < 0)
		return rc;
	op->has |= present ? KD_OP_HAS_CTIME : 0;
	if ((rc = get_int(c, jo, "cpu", false, KD_CPU_MAX, &op->cpu_millis, &present)) < 0)
		return rc;
	op->has |= present ? KD_OP_HAS_CPU : 0;
	if ((rc = get_int(c, jo, "mem", false, KD_INT_MAX, &op->mem_bytes, &present)) < 0)
		return rc;
	op->has |= present ? KD_OP_HAS_MEM : 0;
	struct jv *jr = member(jo, "ready");
	if (jr) {
		if (!jv_is(jr, J_BOOL))
			return vfail(c, EINVAL, "field \"ready\" must be a boolean, not %s",
			             jtype_name(jr));
		op->ready = jr->b;
		op->has |= KD_OP_HAS_READY;
	}
	if ((rc = get_kvs(c, jo, "labels", &op->labels)) < 0)
		return rc;
	return get_kvs(c, jo, "annotations", &op->annotations);
}

static int dec_ops(struct dctx *d, struct jv *root, const char *field, const char *list,
                   bool upsert_list, struct kd_op_list *out)
{
	d->v.list = NULL;
	struct jv *ja = member(root, field);
	if (!ja)
		return vfail(&d->v, EINVAL, "missing field \"%s\"", field);
	if (!jv_is(ja, J_ARRAY))
		return vfail(&d->v, EINVAL, "field \"%s\" must be an array, not %s", field,
		             jtype_name(ja));
	size_t n = ja->n;
	if (n > d->lim.max_ops)
		return vfail(&d->v, E2BIG, "%zu %s ops exceed the limit of %zu", n, field,
		             d->lim.max_ops);
	out->v = kd_xcalloc(n ? n : 1, sizeof(*out->v));
	out->cap = n ? n : 1;
	size_t i = 0;
	for (struct jv *e = ja->first; e; e = e->next, i++) {
		d->v.list = list;
		d->v.idx = i;
		struct kd_op *op = &out->v[out->n++];
		int rc = dec_op(d, e, op, upsert_list);
		if (rc < 0)
			return rc;
	}
	d->v.list = NULL;
	return 0;
}

static int dec_keys(struct dctx *d, struct jv *root, const char *field, struct kd_key_list *out)
{
	d->v.list = NULL;
	struct jv *ja = member(root, field);
	if (!ja)
		return vfail(&d->v, EINVAL, "missing field \"%s\"", field);
	if (!jv_is(ja, J_ARRAY))
		return vfail(&d->v, EINVAL, "field \"%s\" must be an array, not %s", field,
		             jtype_name(ja));
	size_t n = ja->n;
	if (n > d->lim.max_keys)
		return vfail(&d->v, E2BIG, "%zu %s keys exceed the limit of %zu", n, field,
		             d->lim.max_keys);
	out->v = kd_xcalloc(n ? n : 1, sizeof(*out->v));
	out->cap = n ? n : 1;
	size_t i = 0;
	for (struct jv *k = ja->first; k; k = k->next, i++) {
		d->v.list = field;
		d->v.idx = i;
		if (!jv_is(k, J_STRING))
			return vfail(&d->v, EINVAL, "must be a string, not %s", jtype_name(k));
		const char *s = k->s;
		size_t len = (size_t)k->n;
		if (strlen(s) != len)
			return vfail(&d->v, EINVAL, "key contains NUL");
		out->v[out->n++] = kd_xstrndup(s, len);
	}
	d->v.list = NULL;
	return 0;
}

/* The frame's "tmpls" table, when present: an array of 1..max_ops objects (their members are
 * checked when an op refers to them). */
static int dec_tmpls(struct dctx *d, struct jv *root)
{
	struct jv *ja = member(root, "tmpls");
	d->v.list = NULL;
	if (!ja)
		return 0;
	if (!jv_is(ja, J_ARRAY))
		return vfail(&d->v, EINVAL, "field \"tmpls\" must be an array, not %s",
		             jtype_name(ja));
	size_t n = ja->n;
	if (n == 0)
		return vfail(&d->v, EINVAL, "field \"tmpls\" is empty");
	if (n > d->lim.max_ops)
		return vfail(&d->v, E2BIG, "%zu tmpls exceed the limit of %zu", n, d->lim.max_ops);
	d->tmpls = kd_xcalloc(n, sizeof(*d->tmpls));
	d->ntmpls = n;
	d->tused = kd_xcalloc(n, sizeof(*d->tused));
	size_t i = 0;
	for (struct jv *e = ja->first; e; e = e->next, i++) {
		char what[40];
		snprintf(what, sizeof(what), "tmpls %zu", i);
		int rc = dec_tmpl(&d->v, e, what, &d->tmpls[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int check_tmpls_used(struct dctx *d)
{
	for (size_t i = 0; i < d->ntmpls; i++)
		if (!d->tused[i])
			return vfail(&d->v, EINVAL, "tmpls %zu is not referenced by any op", i);
	return 0;
}

static int dec_paging(struct dctx *d, struct jv *root, struct kd_msg *m)
{
	int64_t x = 0;
	bool present;
	int rc = get_int(&d->v, root, "part", false, KD_PART_MAX, &x, &present);
	if (rc < 0)
		return rc;
	m->part = (uint32_t)x;
	struct jv *jm = member(root, "more");
	if (jm) {
		if (!jv_is(jm, J_BOOL))
			return vfail(&d->v, EINVAL, "field \"more\" must be a boolean, not %s",
			             jtype_name(jm));
		m->more = jm->b;
	}
	return 0;
}

static int dec_body(struct dctx *d, struct jv *root, struct kd_msg *m)
{
	int rc = 0;
	int64_t x = 0;
	bool present;
	if (m->type == KD_MSG_STATE || m->type == KD_MSG_RECONCILE) {
		if ((rc = dec_paging(d, root, m)) < 0)
			return rc;
	} else if (member(root, "part") || member(root, "more")) {
		return vfail(&d->v, EINVAL, "part/more are only valid on state and reconcile");
	}
	if (m->type == KD_MSG_STATE || m->type == KD_MSG_RECONCILE || m->type == KD_MSG_DELTA) {
		if ((rc = dec_tmpls(d, root)) < 0)
			return rc;
	}
	switch (m->type) {
	case KD_MSG_HELLO:
		return get_str(&d->v, root, "source", true, &m->hello.source);
	case KD_MSG_STATE:
		if ((rc = get_int(&d->v, root, "last_seq", true, (int64_t)KD_SEQ_MAX, &x,
		                  &present)) < 0)
			return rc;
		m->state.last_seq = (uint64_t)x;
		if ((rc = dec_ops(d, root, "held", "held", true, &m->state.held)) < 0)
			return rc;
		return check_tmpls_used(d);
	case KD_MSG_RECONCILE:
		if ((rc = dec_keys(d, root, "keep", &m->reconcile.keep)) < 0 ||
		    (rc = dec_keys(d, root, "drop", &m->reconcile.drop)) < 0 ||
		    (rc = dec_ops(d, root, "resend", "resend", true, &m->reconcile.resend)) < 0)
			return rc;
		return check_tmpls_used(d);
	case KD_MSG_DELTA:
		if ((rc = dec_ops(d, root, "ops", "op", false, &m->delta.ops)) < 0)
			return rc;
		return check_tmpls_used(d);
	case KD_MSG_ERROR:
		if ((rc = get_int(&d->v, root, "code", true, KD_CODE_MAX, &x, &present)) < 0)
			return rc;
		m->error.code = (int)x;
		return get_str(&d->v, root, "reason", false, &m->error.reason);
	default:
		return 0;
	}
}

/* Structural pre-scan of the raw frame, before the parser builds anything (kept from the json-c
 * decoder; the limits are part of the documented format):
 * - rejects the escape \u0000: member names and values are C strings, so an escaped NUL would
 *   silently truncate them;
 * - bounds the number of JSON objects and arrays. json-c spent ~700 bytes on every object (a
 *   16-bucket hash table), so 1 MiB of "{}," would cost ~270 MB: a legitimate frame needs at most
 *   4 objects per op (op, tmpl, labels, annotations) and a handful of arrays.
 * String boundaries are tracked only approximately for invalid JSON, which the parser rejects next.
 */
static int prescan(const char *buf, size_t len, size_t max_objects, struct kd_error **err)
{
	size_t objects = 0, arrays = 0;
	const size_t max_arrays = 64;
	bool in_str = false;
	for (size_t i = 0; i < len; i++) {
		char ch = buf[i];
		if (in_str) {
			if (ch == '"') {
				in_str = false;
			} else if (ch == '\\') {
				if (len - i >= 6 && buf[i + 1] == 'u' &&
				    memcmp(buf + i + 2, "0000", 4) == 0)
					return kd_error_set(err, EINVAL, 0,
					                    "frame byte %zu: escaped NUL (\\u0000)",
					                    i);
				i++; /* skip the escaped character */
			}
			continue;
		}
		if (ch == '"')
			in_str = true;
		else if (ch == '{' && ++objects > max_objects)
			return kd_error_set(err, E2BIG, 0, "frame has more than %zu JSON objects",
			                    max_objects);
		else if (ch == '[' && ++arrays > max_arrays)
			return kd_error_set(err, E2BIG, 0, "frame has more than %zu JSON arrays",
			                    max_arrays);
	}
	return 0;
}

static int dec_root(struct jv *root, struct dctx *dp, struct kd_msg **out, struct kd_error **err);

int kd_msg_decode(const char *buf, size_t len, const struct kd_delta_limits *lim,
                  struct kd_msg **out, struct kd_error **err)
{
	struct dctx d = {.lim = limits_of(lim)};
	if (len > d.lim.max_frame)
		return kd_error_set(err, EMSGSIZE, 0, "frame of %zu bytes exceeds the %zu-byte cap",
		                    len, d.lim.max_frame);
	if (len == 0)
		return kd_error_set(err, EINVAL, 0, "frame is empty");
	size_t ok = utf8_valid_prefix((const unsigned char *)buf, len);
	if (ok != len)
		return kd_error_set(err, EINVAL, 0, "frame byte %zu: %s", ok,
		                    buf[ok] == '\0' ? "NUL byte" : "invalid UTF-8");
	int prc = prescan(buf, len, 4 * d.lim.max_ops + 16, err);
	if (prc < 0)
		return prc;
	struct jparser jp = {.p = buf, .end = buf + len, .start = buf};
	jp.sbuf = kd_xmalloc(len + 1);
	struct jv *root = jp_value(&jp, 0);
	if (!root) {
		int rc;
		if (jp.truncated)
			rc =
			    kd_error_set(err, EINVAL, 0, "frame is truncated JSON (%s at byte %zu)",
			                 jp.why, jp.at);
		else
			rc = kd_error_set(err, EINVAL, 0, "frame is not valid JSON: %s at byte %zu",
			                  jp.why, jp.at);
		jp_fini(&jp);
		return rc;
	}
	jp_ws(&jp);
	if (jp.p < jp.end) {
		jp_fini(&jp);
		return kd_error_set(err, EINVAL, 0, "frame has trailing bytes at byte %zu",
		                    (size_t)(jp.p - buf));
	}
	int rc = dec_root(root, &d, out, err);
	jp_fini(&jp);
	return rc;
}

/* Decodes the parsed frame into *out. */
static int dec_root(struct jv *root, struct dctx *dp, struct kd_msg **out, struct kd_error **err)
{
	struct dctx d = *dp;
	if (!jv_is(root, J_OBJECT))
		return kd_error_set(err, EINVAL, 0, "frame is a JSON %s, not an object",
		                    jtype_name(root));
	struct jv *jt = member(root, "type");
	if (!jt)
		return kd_error_set(err, EINVAL, 0, "frame has no \"type\"");
	if (!jv_is(jt, J_STRING))
		return kd_error_set(err, EINVAL, 0, "frame \"type\" must be a string, not %s",
		                    jtype_name(jt));
	enum kd_msg_type type = KD_MSG_NONE;
	const char *ts = jt->s;
	for (size_t i = 1; i < KD_ARRAY_SIZE(type_names); i++)
		if (strcmp(ts, type_names[i]) == 0 && strlen(type_names[i]) == (size_t)jt->n)
			type = (enum kd_msg_type)i;
	if (type == KD_MSG_NONE) {
		char q[QBUF];
		return kd_error_set(err, EINVAL, 0, "unknown message type %s",
		                    quote(q, sizeof(q), ts, (size_t)jt->n));
	}
	kd_automsg struct kd_msg *m = kd_msg_new(type, 0, 0);
	d.v.m = m;
	d.v.err = err;
	int rc = parse_epoch(&d.v, root, &m->epoch);
	if (rc < 0)
		return rc;
	int64_t seq = 0;
	bool present;
	bool data = type == KD_MSG_DELTA || type == KD_MSG_ACK;
	if ((rc = get_int(&d.v, root, "seq", data, (int64_t)KD_SEQ_MAX, &seq, &present)) < 0)
		return rc;
	m->seq = (uint64_t)seq;
	rc = dec_body(&d, root, m);
	for (size_t i = 0; i < d.ntmpls; i++)
		tmpl_fini(&d.tmpls[i]);
	free(d.tmpls);
	free(d.tused);
	if (rc < 0)
		return rc;
	if ((rc = kd_msg_validate(m, &d.lim, err)) < 0)
		return rc;
	*out = m;
	m = NULL;
	return 0;
}
