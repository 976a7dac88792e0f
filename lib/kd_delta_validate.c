/* lib/kd_delta_validate.c: the rules of the wire format (kd/delta.h) on an in-memory message:
 * kd_key_check, kd_msg_validate, and the helpers the decoder shares (UTF-8, quoting, context). */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "kd/check.h"
#include "kd/delta.h"
#include "kd/strmap.h"
#include "kd_delta_priv.h"

/* ---- validation ------------------------------------------------------------------------------ */

/* Length of the valid UTF-8 prefix of s[0..len) that contains no NUL; == len when all valid.
 * Rejects overlong forms, surrogates and code points above U+10FFFF. */
size_t kd__utf8_valid_prefix(const unsigned char *s, size_t len)
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

/* Quotes at most 64 bytes of s for error messages, escaping non-printables. Writes into buf. */
const char *kd__quote(char *buf, size_t bufsz, const char *s, size_t len)
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

int kd_key_check(const char *key, size_t len, struct kd_error **err)
{
	char q[KD__QBUF];
	if (!key)
		return kd_error_set(err, EINVAL, 0, "key is missing");
	const char *slash = memchr(key, '/', len);
	if (!slash)
		return kd_error_set(err, EINVAL, 0, "key %s has no '/' (want namespace/name)",
		                    kd__quote(q, sizeof(q), key, len));
	size_t nslen = (size_t)(slash - key);
	const char *name = slash + 1;
	size_t namelen = len - nslen - 1;
	if (memchr(name, '/', namelen))
		return kd_error_set(err, EINVAL, 0, "key %s has more than one '/'",
		                    kd__quote(q, sizeof(q), key, len));
	const char *why = kd_dns_label_why(key, nslen);
	if (why)
		return kd_error_set(err, EINVAL, 0, "key %s: namespace %s",
		                    kd__quote(q, sizeof(q), key, len), why);
	why = kd_dns_subdomain_why(name, namelen);
	if (why)
		return kd_error_set(err, EINVAL, 0, "key %s: name %s",
		                    kd__quote(q, sizeof(q), key, len), why);
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
		if (kd_dns_subdomain_why(s, (size_t)(slash - s)))
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
	if (kd__utf8_valid_prefix((const unsigned char *)s, len) != len)
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

static const char *ctx_str(const struct kd__vctx *c, char *buf, size_t bufsz)
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

int kd__vfail(const struct kd__vctx *c, int errnum, const char *fmt, ...)
{
	char cb[96];
	va_list ap;
	va_start(ap, fmt);
	kd_autofree char *detail = kd_xvasprintf(fmt, ap);
	va_end(ap);
	return kd_error_set(c->err, errnum, 0, "%s: %s", ctx_str(c, cb, sizeof(cb)), detail);
}

static int check_kvs(const struct kd__vctx *c, const struct kd_kv_list *l, const char *what,
                     bool labels)
{
	char q[KD__QBUF];
	if (l->n > KD_KV_MAX)
		return kd__vfail(c, E2BIG, "%zu %s exceed the limit of %d", l->n, what, KD_KV_MAX);
	for (size_t i = 0; i < l->n; i++) {
		const char *k = l->v[i].key, *v = l->v[i].value;
		if (!k || !v)
			return kd__vfail(c, EINVAL, "%s entry %zu is missing its key or value",
			                 what, i);
		const char *why = kv_key_why(k);
		if (why)
			return kd__vfail(c, EINVAL, "%s key %s %s", what,
			                 kd__quote(q, sizeof(q), k, strlen(k)), why);
		why = labels ? label_value_why(v) : text_why(v, KD_ANNOT_VAL_MAX);
		if (why)
			return kd__vfail(c, EINVAL, "%s %s: value %s", what,
			                 kd__quote(q, sizeof(q), k, strlen(k)), why);
		for (size_t j = 0; j < i; j++)
			if (strcmp(l->v[j].key, k) == 0)
				return kd__vfail(c, EINVAL, "%s key %s appears twice", what,
				                 kd__quote(q, sizeof(q), k, strlen(k)));
	}
	return 0;
}

static int check_op(struct kd__vctx *c, const struct kd_op *op, bool upsert_only)
{
	char q[KD__QBUF];
	kd_autoerr struct kd_error *kerr = NULL;
	if (op->kind != KD_OP_UPSERT && op->kind != KD_OP_DELETE)
		return kd__vfail(c, EINVAL, "op is neither \"upsert\" nor \"delete\"");
	if (upsert_only && op->kind != KD_OP_UPSERT)
		return kd__vfail(c, EINVAL, "must be an upsert");
	if (!op->key)
		return kd__vfail(c, EINVAL, "missing key");
	if (kd_key_check(op->key, strlen(op->key), &kerr) < 0)
		return kd__vfail(c, EINVAL, "%s", kerr->msg);
	const char *why;
	if (op->reason && (why = text_why(op->reason, KD_REASON_MAX)))
		return kd__vfail(c, EINVAL, "reason %s", why);
	if (op->kind == KD_OP_DELETE) {
		if (op->has || op->node || op->ip || op->labels.n || op->annotations.n)
			return kd__vfail(c, EINVAL, "delete of %s carries upsert fields",
			                 kd__quote(q, sizeof(q), op->key, strlen(op->key)));
		return 0;
	}
	if (op->has & ~(unsigned)(KD_OP_HAS_CTIME | KD_OP_HAS_CPU | KD_OP_HAS_MEM |
	                          KD_OP_HAS_READY | KD_OP_HAS_TMPL))
		return kd__vfail(c, EINVAL, "unknown has bits 0x%x", op->has);
	if (op->has & KD_OP_HAS_TMPL) {
		const struct kd_tmpl_ref *t = &op->tmpl;
		if (!t->kind || !t->name || !t->uid || !t->hash)
			return kd__vfail(c, EINVAL, "tmpl needs kind, name, uid and hash");
	}
	if ((op->has & KD_OP_HAS_TMPL) && !(c->last_tmpl && kd__tmpl_eq(c->last_tmpl, &op->tmpl))) {
		const struct kd_tmpl_ref *t = &op->tmpl;
		if ((why = charset_why(t->kind, 63, "", false)))
			return kd__vfail(c, EINVAL, "tmpl kind %s %s",
			                 kd__quote(q, sizeof(q), t->kind, strlen(t->kind)), why);
		if ((why = kd_dns_subdomain_why(t->name, strlen(t->name))))
			return kd__vfail(c, EINVAL, "tmpl name %s %s",
			                 kd__quote(q, sizeof(q), t->name, strlen(t->name)), why);
		if ((why = charset_why(t->uid, 128, "-", false)))
			return kd__vfail(c, EINVAL, "tmpl uid %s %s",
			                 kd__quote(q, sizeof(q), t->uid, strlen(t->uid)), why);
		if ((why = charset_why(t->hash, 64, "_-", false)))
			return kd__vfail(c, EINVAL, "tmpl hash %s %s",
			                 kd__quote(q, sizeof(q), t->hash, strlen(t->hash)), why);
		c->last_tmpl = t;
	} else if (op->has & KD_OP_HAS_TMPL) {
		/* same as the last valid one */
	} else if (op->tmpl.kind || op->tmpl.name || op->tmpl.uid || op->tmpl.hash) {
		return kd__vfail(c, EINVAL, "tmpl fields set without KD_OP_HAS_TMPL");
	}
	if (op->node && (why = kd_dns_subdomain_why(op->node, strlen(op->node))))
		return kd__vfail(c, EINVAL, "node %s %s",
		                 kd__quote(q, sizeof(q), op->node, strlen(op->node)), why);
	if ((op->has & KD_OP_HAS_CTIME) && (op->ctime_ms < 1 || op->ctime_ms > KD_INT_MAX))
		return kd__vfail(c, EINVAL, "ctime %lld out of range [1, 2^53-1]",
		                 (long long)op->ctime_ms);
	if ((op->has & KD_OP_HAS_CPU) && (op->cpu_millis < 0 || op->cpu_millis > KD_CPU_MAX))
		return kd__vfail(c, EINVAL, "cpu %lld out of range [0, %lld]",
		                 (long long)op->cpu_millis, (long long)KD_CPU_MAX);
	if ((op->has & KD_OP_HAS_MEM) && (op->mem_bytes < 0 || op->mem_bytes > KD_INT_MAX))
		return kd__vfail(c, EINVAL, "mem %lld out of range [0, 2^53-1]",
		                 (long long)op->mem_bytes);
	if (op->ip && (why = ip_why(op->ip)))
		return kd__vfail(c, EINVAL, "ip %s %s",
		                 kd__quote(q, sizeof(q), op->ip, strlen(op->ip)), why);
	int rc = check_kvs(c, &op->labels, "labels", true);
	if (rc < 0)
		return rc;
	return check_kvs(c, &op->annotations, "annotations", false);
}

static int check_ops(struct kd__vctx *c, const struct kd_op_list *l, const char *list, size_t max,
                     bool upsert_only, struct kd_strmap *seen)
{
	char q[KD__QBUF];
	c->list = NULL;
	if (l->n > max)
		return kd__vfail(c, E2BIG, "%zu %s ops exceed the limit of %zu", l->n, list, max);
	for (size_t i = 0; i < l->n; i++) {
		c->list = list;
		c->idx = i;
		int rc = check_op(c, &l->v[i], upsert_only);
		if (rc < 0)
			return rc;
		if (kd_strmap_add(seen, l->v[i].key, l->v[i].key)) /* value: any non-NULL */
			return kd__vfail(c, EINVAL, "key %s appears more than once",
			                 kd__quote(q, sizeof(q), l->v[i].key, strlen(l->v[i].key)));
	}
	c->list = NULL;
	return 0;
}

static int check_keys(struct kd__vctx *c, const struct kd_key_list *l, const char *list, size_t max,
                      struct kd_strmap *seen)
{
	char q[KD__QBUF];
	kd_autoerr struct kd_error *kerr = NULL;
	c->list = NULL;
	if (l->n > max)
		return kd__vfail(c, E2BIG, "%zu %s keys exceed the limit of %zu", l->n, list, max);
	for (size_t i = 0; i < l->n; i++) {
		c->list = list;
		c->idx = i;
		if (!l->v[i])
			return kd__vfail(c, EINVAL, "missing key");
		if (kd_key_check(l->v[i], strlen(l->v[i]), &kerr) < 0)
			return kd__vfail(c, EINVAL, "%s", kerr->msg);
		if (kd_strmap_add(seen, l->v[i], l->v[i]))
			return kd__vfail(c, EINVAL, "key %s appears more than once",
			                 kd__quote(q, sizeof(q), l->v[i], strlen(l->v[i])));
	}
	c->list = NULL;
	return 0;
}

struct kd_delta_limits kd__delta_limits(const struct kd_delta_limits *lim)
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
	struct kd_delta_limits l = kd__delta_limits(lim);
	struct kd__vctx c = {.m = m, .err = err};
	const char *tn = kd_msg_type_name(m->type);
	if (!tn)
		return kd_error_set(err, EINVAL, 0, "unknown message type %d", (int)m->type);
	if (m->type != KD_MSG_ERROR && m->epoch == 0)
		return kd__vfail(&c, EINVAL, "epoch 0 is only valid in an error message");
	bool data = m->type == KD_MSG_DELTA || m->type == KD_MSG_ACK;
	if (data && (m->seq < 1 || m->seq > KD_SEQ_MAX))
		return kd__vfail(&c, EINVAL, "seq %llu out of range [1, 2^53-1]",
		                 (unsigned long long)m->seq);
	if (!data && m->seq != 0)
		return kd__vfail(&c, EINVAL, "seq must be 0 on a control message, not %llu",
		                 (unsigned long long)m->seq);
	bool pageable = m->type == KD_MSG_STATE || m->type == KD_MSG_RECONCILE;
	if (!pageable && (m->part || m->more))
		return kd__vfail(&c, EINVAL, "part/more are only valid on state and reconcile");
	if (m->part > KD_PART_MAX)
		return kd__vfail(&c, EINVAL, "part %u out of range [0, %u]", m->part, KD_PART_MAX);
	const char *why;
	struct kd_strmap seen = {0}; /* keys so far (set use) */
	int rc = 0;
	switch (m->type) {
	case KD_MSG_HELLO:
		if (!m->hello.source)
			return kd__vfail(&c, EINVAL, "missing source");
		if ((why = source_why(m->hello.source)))
			return kd__vfail(&c, EINVAL, "source %s", why);
		return 0;
	case KD_MSG_STATE:
		if (m->state.last_seq > KD_SEQ_MAX)
			return kd__vfail(&c, EINVAL, "last_seq out of range [0, 2^53-1]");
		kd_strmap_reserve(&seen, KD_MIN(m->state.held.n, l.max_ops));
		rc = check_ops(&c, &m->state.held, "held", l.max_ops, true, &seen);
		kd_strmap_fini(&seen);
		return rc;
	case KD_MSG_RECONCILE: {
		const struct kd_key_list *keep = &m->reconcile.keep, *drop = &m->reconcile.drop;
		size_t total = KD_MIN(keep->n, l.max_keys) + KD_MIN(drop->n, l.max_keys) +
		               KD_MIN(m->reconcile.resend.n, l.max_ops);
		kd_strmap_reserve(&seen, total);
		rc = check_keys(&c, keep, "keep", l.max_keys, &seen);
		if (rc == 0)
			rc = check_keys(&c, drop, "drop", l.max_keys, &seen);
		if (rc == 0)
			rc = check_ops(&c, &m->reconcile.resend, "resend", l.max_ops, true, &seen);
		kd_strmap_fini(&seen);
		return rc;
	}
	case KD_MSG_DELTA:
		if (m->delta.ops.n == 0)
			return kd__vfail(&c, EINVAL, "a delta needs at least one op");
		kd_strmap_reserve(&seen, KD_MIN(m->delta.ops.n, l.max_ops));
		rc = check_ops(&c, &m->delta.ops, "op", l.max_ops, false, &seen);
		kd_strmap_fini(&seen);
		return rc;
	case KD_MSG_ERROR:
		if (m->error.code < 1 || m->error.code > KD_CODE_MAX)
			return kd__vfail(&c, EINVAL, "code %d out of range [1, 65535]",
			                 m->error.code);
		if (m->error.reason && (why = text_why(m->error.reason, KD_REASON_MAX)))
			return kd__vfail(&c, EINVAL, "reason %s", why);
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
	size_t ok =
	    kd__utf8_valid_prefix((const unsigned char *)r, KD_MIN(len, (size_t)KD_REASON_MAX));
	r[ok] = '\0';
	m->error.reason = r;
	return m;
}
