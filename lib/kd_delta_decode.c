/* lib/kd_delta_decode.c: the strict decoder of channel frames (kd_msg_decode): pre-checks of the
 * raw bytes, the strict JSON parser (kd/jsonstrict.h), the walk of the tree into a struct kd_msg
 * and kd_msg_validate. The wire format is specified in kd/delta.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kd/delta.h"
#include "kd/jsonstrict.h"
#include "kd_delta_priv.h"

/* Deepest legitimate nesting: frame object > list > op > labels. Unknown fields may nest a
 * little; anything deeper is rejected by the parser. */
#define JSON_MAX_DEPTH 8

static bool is_type(const struct kd_jsonstrict_value *v, enum kd_jsonstrict_type t)
{
	return v->type == t;
}

/* ---- decoder -------------------------------------------------------------------------------- */

struct dctx {
	struct kd__vctx v; /* message being built, for error context */
	struct kd_delta_limits lim;
	struct kd_tmpl_ref *tmpls; /* the frame's template table, decoded (owned) or NULL */
	size_t ntmpls;
	bool *tused; /* per table entry: referenced by an op */
};

/* String member: 0 with *out owned (or NULL when absent and optional), or -EINVAL. */
static int get_str_as(const struct kd__vctx *c, const struct kd_jsonstrict_value *obj,
                      const char *name, const char *shown, bool required, char **out)
{
	const struct kd_jsonstrict_value *v = kd_jsonstrict_member(obj, name);
	*out = NULL;
	if (!v) {
		if (required)
			return kd__vfail(c, EINVAL, "missing field \"%s\"", shown);
		return 0;
	}
	if (!is_type(v, KD_JSONSTRICT_STRING))
		return kd__vfail(c, EINVAL, "field \"%s\" must be a string, not %s", shown,
		                 kd_jsonstrict_type_name(v));
	const char *s = v->s;
	size_t len = (size_t)v->n;
	if (kd__utf8_valid_prefix((const unsigned char *)s, len) != len)
		return kd__vfail(c, EINVAL, "field \"%s\" is not valid UTF-8 or contains NUL",
		                 shown);
	*out = kd_xstrndup(s, len);
	return 0;
}

static int get_str(const struct kd__vctx *c, const struct kd_jsonstrict_value *obj,
                   const char *name, bool required, char **out)
{
	return get_str_as(c, obj, name, name, required, out);
}

/* Integer member in [0, max]: 0 with *out set and *present, or -EINVAL. */
static int get_int(const struct kd__vctx *c, const struct kd_jsonstrict_value *obj,
                   const char *name, bool required, int64_t max, int64_t *out, bool *present)
{
	const struct kd_jsonstrict_value *v = kd_jsonstrict_member(obj, name);
	*present = false;
	if (!v) {
		if (required)
			return kd__vfail(c, EINVAL, "missing field \"%s\"", name);
		return 0;
	}
	if (!is_type(v, KD_JSONSTRICT_INT))
		return kd__vfail(c, EINVAL, "field \"%s\" must be an integer, not %s", name,
		                 kd_jsonstrict_type_name(v));
	int64_t x = v->i; /* saturates at INT64_MAX/MIN */
	if (x < 0 || x > max)
		return kd__vfail(c, EINVAL, "field \"%s\" out of range [0, %lld]", name,
		                 (long long)max);
	*out = x;
	*present = true;
	return 0;
}

static int parse_epoch(const struct kd__vctx *c, const struct kd_jsonstrict_value *obj,
                       uint64_t *out)
{
	const struct kd_jsonstrict_value *v = kd_jsonstrict_member(obj, "epoch");
	if (!v)
		return kd__vfail(c, EINVAL, "missing field \"epoch\"");
	if (!is_type(v, KD_JSONSTRICT_STRING))
		return kd__vfail(c, EINVAL, "field \"epoch\" must be a decimal string, not %s",
		                 kd_jsonstrict_type_name(v));
	const char *s = v->s;
	size_t len = (size_t)v->n;
	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return kd__vfail(c, EINVAL, "field \"epoch\" is not a canonical uint64");
	uint64_t x = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return kd__vfail(c, EINVAL, "field \"epoch\" is not a canonical uint64");
		unsigned d = (unsigned)(s[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return kd__vfail(c, EINVAL, "field \"epoch\" exceeds 2^64-1");
		x = x * 10 + d;
	}
	*out = x;
	return 0;
}

static int get_kvs(const struct kd__vctx *c, const struct kd_jsonstrict_value *obj,
                   const char *name, struct kd_kv_list *out)
{
	const struct kd_jsonstrict_value *v = kd_jsonstrict_member(obj, name);
	if (!v)
		return 0;
	if (!is_type(v, KD_JSONSTRICT_OBJECT))
		return kd__vfail(c, EINVAL, "field \"%s\" must be an object, not %s", name,
		                 kd_jsonstrict_type_name(v));
	if ((size_t)v->n > KD_KV_MAX)
		return kd__vfail(c, E2BIG, "%d %s exceed the limit of %d", (int)v->n, name,
		                 KD_KV_MAX);
	for (const struct kd_jsonstrict_value *val = v->first; val; val = val->next) {
		const char *k = val->name;
		if (!is_type(val, KD_JSONSTRICT_STRING))
			return kd__vfail(c, EINVAL,
			                 "%s value of \"%.64s\" must be a string, not %s", name, k,
			                 kd_jsonstrict_type_name(val));
		const char *s = val->s;
		size_t len = (size_t)val->n;
		if (kd__utf8_valid_prefix((const unsigned char *)s, len) != len)
			return kd__vfail(c, EINVAL, "%s value is not valid UTF-8 or contains NUL",
			                 name);
		kd_kv_list_push(out, k, s);
	}
	return 0;
}

static int dec_tmpl(const struct kd__vctx *c, const struct kd_jsonstrict_value *jt,
                    const char *what, struct kd_tmpl_ref *t)
{
	char n[4][32];
	static const char *const f[4] = {"kind", "name", "uid", "hash"};
	if (!is_type(jt, KD_JSONSTRICT_OBJECT))
		return kd__vfail(c, EINVAL, "%s must be an object, not %s", what,
		                 kd_jsonstrict_type_name(jt));
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

static int dec_op(struct dctx *d, const struct kd_jsonstrict_value *jo, struct kd_op *op,
                  bool upsert_list)
{
	const struct kd__vctx *c = &d->v;
	if (!is_type(jo, KD_JSONSTRICT_OBJECT))
		return kd__vfail(c, EINVAL, "must be an object, not %s",
		                 kd_jsonstrict_type_name(jo));
	const struct kd_jsonstrict_value *jk = kd_jsonstrict_member(jo, "op");
	if (!jk && upsert_list)
		op->kind = KD_OP_UPSERT;
	else if (!jk)
		return kd__vfail(c, EINVAL, "missing field \"op\"");
	else if (!is_type(jk, KD_JSONSTRICT_STRING))
		return kd__vfail(c, EINVAL, "field \"op\" must be a string, not %s",
		                 kd_jsonstrict_type_name(jk));
	else if (strcmp(jk->s, "upsert") == 0 && jk->n == 6)
		op->kind = KD_OP_UPSERT;
	else if (strcmp(jk->s, "delete") == 0 && jk->n == 6)
		op->kind = KD_OP_DELETE;
	else
		return kd__vfail(c, EINVAL, "field \"op\" must be \"upsert\" or \"delete\"");
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
			if (kd_jsonstrict_member(jo, upsert_only[i]))
				return kd__vfail(c, EINVAL, "delete carries upsert field \"%s\"",
				                 upsert_only[i]);
		return 0;
	}
	const struct kd_jsonstrict_value *jt = kd_jsonstrict_member(jo, "tmpl");
	const struct kd_jsonstrict_value *jti = kd_jsonstrict_member(jo, "t");
	if (jt && jti)
		return kd__vfail(c, EINVAL, "op carries both \"t\" and \"tmpl\"");
	if (jt) {
		if (!is_type(jt, KD_JSONSTRICT_OBJECT))
			return kd__vfail(c, EINVAL, "field \"tmpl\" must be an object, not %s",
			                 kd_jsonstrict_type_name(jt));
		op->has |= KD_OP_HAS_TMPL;
		if ((rc = dec_tmpl(c, jt, "tmpl", &op->tmpl)) < 0)
			return rc;
	}
	if (jti) {
		int64_t ti = 0;
		bool tp;
		if (!d->tmpls)
			return kd__vfail(c, EINVAL, "field \"t\" without a \"tmpls\" table");
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
	const struct kd_jsonstrict_value *jr = kd_jsonstrict_member(jo, "ready");
	if (jr) {
		if (!is_type(jr, KD_JSONSTRICT_BOOL))
			return kd__vfail(c, EINVAL, "field \"ready\" must be a boolean, not %s",
			                 kd_jsonstrict_type_name(jr));
		op->ready = jr->b;
		op->has |= KD_OP_HAS_READY;
	}
	if ((rc = get_kvs(c, jo, "labels", &op->labels)) < 0)
		return rc;
	return get_kvs(c, jo, "annotations", &op->annotations);
}

/* The required array member `field` of root, with at most max elements (`what` they are, for
 * the message: "ops", "keys"): borrowed from root, or NULL with *rc set to the failure. */
static const struct kd_jsonstrict_value *get_list(struct dctx *d,
                                                  const struct kd_jsonstrict_value *root,
                                                  const char *field, size_t max, const char *what,
                                                  int *rc)
{
	d->v.list = NULL;
	const struct kd_jsonstrict_value *ja = kd_jsonstrict_member(root, field);
	if (!ja)
		*rc = kd__vfail(&d->v, EINVAL, "missing field \"%s\"", field);
	else if (!is_type(ja, KD_JSONSTRICT_ARRAY))
		*rc = kd__vfail(&d->v, EINVAL, "field \"%s\" must be an array, not %s", field,
		                kd_jsonstrict_type_name(ja));
	else if (ja->n > max)
		*rc = kd__vfail(&d->v, E2BIG, "%zu %s %s exceed the limit of %zu", (size_t)ja->n,
		                field, what, max);
	else
		return ja;
	return NULL;
}

static int dec_ops(struct dctx *d, const struct kd_jsonstrict_value *root, const char *field,
                   const char *list, bool upsert_list, struct kd_op_list *out)
{
	int rc = 0;
	const struct kd_jsonstrict_value *ja = get_list(d, root, field, d->lim.max_ops, "ops", &rc);
	if (!ja)
		return rc;
	size_t n = ja->n;
	out->v = kd_xcalloc(n ? n : 1, sizeof(*out->v));
	out->cap = n ? n : 1;
	size_t i = 0;
	for (const struct kd_jsonstrict_value *e = ja->first; e; e = e->next, i++) {
		d->v.list = list;
		d->v.idx = i;
		struct kd_op *op = &out->v[out->n++];
		rc = dec_op(d, e, op, upsert_list);
		if (rc < 0)
			return rc;
	}
	d->v.list = NULL;
	return 0;
}

static int dec_keys(struct dctx *d, const struct kd_jsonstrict_value *root, const char *field,
                    struct kd_key_list *out)
{
	int rc = 0;
	const struct kd_jsonstrict_value *ja =
	    get_list(d, root, field, d->lim.max_keys, "keys", &rc);
	if (!ja)
		return rc;
	size_t n = ja->n;
	out->v = kd_xcalloc(n ? n : 1, sizeof(*out->v));
	out->cap = n ? n : 1;
	size_t i = 0;
	for (const struct kd_jsonstrict_value *k = ja->first; k; k = k->next, i++) {
		d->v.list = field;
		d->v.idx = i;
		if (!is_type(k, KD_JSONSTRICT_STRING))
			return kd__vfail(&d->v, EINVAL, "must be a string, not %s",
			                 kd_jsonstrict_type_name(k));
		const char *s = k->s;
		size_t len = (size_t)k->n;
		if (strlen(s) != len)
			return kd__vfail(&d->v, EINVAL, "key contains NUL");
		out->v[out->n++] = kd_xstrndup(s, len);
	}
	d->v.list = NULL;
	return 0;
}

/* The frame's "tmpls" table, when present: an array of 1..max_ops objects (their members are
 * checked when an op refers to them). */
static int dec_tmpls(struct dctx *d, const struct kd_jsonstrict_value *root)
{
	const struct kd_jsonstrict_value *ja = kd_jsonstrict_member(root, "tmpls");
	d->v.list = NULL;
	if (!ja)
		return 0;
	if (!is_type(ja, KD_JSONSTRICT_ARRAY))
		return kd__vfail(&d->v, EINVAL, "field \"tmpls\" must be an array, not %s",
		                 kd_jsonstrict_type_name(ja));
	size_t n = ja->n;
	if (n == 0)
		return kd__vfail(&d->v, EINVAL, "field \"tmpls\" is empty");
	if (n > d->lim.max_ops)
		return kd__vfail(&d->v, E2BIG, "%zu tmpls exceed the limit of %zu", n,
		                 d->lim.max_ops);
	d->tmpls = kd_xcalloc(n, sizeof(*d->tmpls));
	d->ntmpls = n;
	d->tused = kd_xcalloc(n, sizeof(*d->tused));
	size_t i = 0;
	for (const struct kd_jsonstrict_value *e = ja->first; e; e = e->next, i++) {
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
			return kd__vfail(&d->v, EINVAL, "tmpls %zu is not referenced by any op", i);
	return 0;
}

static int dec_paging(struct dctx *d, const struct kd_jsonstrict_value *root, struct kd_msg *m)
{
	int64_t x = 0;
	bool present;
	int rc = get_int(&d->v, root, "part", false, KD_PART_MAX, &x, &present);
	if (rc < 0)
		return rc;
	m->part = (uint32_t)x;
	const struct kd_jsonstrict_value *jm = kd_jsonstrict_member(root, "more");
	if (jm) {
		if (!is_type(jm, KD_JSONSTRICT_BOOL))
			return kd__vfail(&d->v, EINVAL, "field \"more\" must be a boolean, not %s",
			                 kd_jsonstrict_type_name(jm));
		m->more = jm->b;
	}
	return 0;
}

static int dec_body(struct dctx *d, const struct kd_jsonstrict_value *root, struct kd_msg *m)
{
	int rc = 0;
	int64_t x = 0;
	bool present;
	if (m->type == KD_MSG_STATE || m->type == KD_MSG_RECONCILE) {
		if ((rc = dec_paging(d, root, m)) < 0)
			return rc;
	} else if (kd_jsonstrict_member(root, "part") || kd_jsonstrict_member(root, "more")) {
		return kd__vfail(&d->v, EINVAL, "part/more are only valid on state and reconcile");
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

static int dec_root(const struct kd_jsonstrict_value *root, struct dctx *dp, struct kd_msg **out,
                    struct kd_error **err);

int kd_msg_decode(const char *buf, size_t len, const struct kd_delta_limits *lim,
                  struct kd_msg **out, struct kd_error **err)
{
	struct dctx d = {.lim = kd__delta_limits(lim)};
	if (len > d.lim.max_frame)
		return kd_error_set(err, EMSGSIZE, 0, "frame of %zu bytes exceeds the %zu-byte cap",
		                    len, d.lim.max_frame);
	if (len == 0)
		return kd_error_set(err, EINVAL, 0, "frame is empty");
	size_t ok = kd__utf8_valid_prefix((const unsigned char *)buf, len);
	if (ok != len)
		return kd_error_set(err, EINVAL, 0, "frame byte %zu: %s", ok,
		                    buf[ok] == '\0' ? "NUL byte" : "invalid UTF-8");
	int prc = prescan(buf, len, 4 * d.lim.max_ops + 16, err);
	if (prc < 0)
		return prc;
	struct kd_jsonstrict *doc = NULL;
	int rc = kd_jsonstrict_parse(buf, len, JSON_MAX_DEPTH, "frame", &doc, err);
	if (rc < 0)
		return rc;
	rc = dec_root(kd_jsonstrict_root(doc), &d, out, err);
	kd_jsonstrict_free(doc);
	return rc;
}
/* Decodes the parsed frame into *out. */
static int dec_root(const struct kd_jsonstrict_value *root, struct dctx *dp, struct kd_msg **out,
                    struct kd_error **err)
{
	struct dctx d = *dp;
	if (!is_type(root, KD_JSONSTRICT_OBJECT))
		return kd_error_set(err, EINVAL, 0, "frame is a JSON %s, not an object",
		                    kd_jsonstrict_type_name(root));
	const struct kd_jsonstrict_value *jt = kd_jsonstrict_member(root, "type");
	if (!jt)
		return kd_error_set(err, EINVAL, 0, "frame has no \"type\"");
	if (!is_type(jt, KD_JSONSTRICT_STRING))
		return kd_error_set(err, EINVAL, 0, "frame \"type\" must be a string, not %s",
		                    kd_jsonstrict_type_name(jt));
	enum kd_msg_type type = KD_MSG_NONE;
	const char *ts = jt->s;
	for (int i = KD_MSG_HELLO; i <= KD_MSG_ERROR; i++) {
		const char *name = kd_msg_type_name((enum kd_msg_type)i);
		if (strcmp(ts, name) == 0 && strlen(name) == (size_t)jt->n)
			type = (enum kd_msg_type)i;
	}
	if (type == KD_MSG_NONE) {
		char q[KD__QBUF];
		return kd_error_set(err, EINVAL, 0, "unknown message type %s",
		                    kd__quote(q, sizeof(q), ts, (size_t)jt->n));
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
		kd__tmpl_fini(&d.tmpls[i]);
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
