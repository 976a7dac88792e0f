/* bench/delta/jsonc_decode.c: the json-c baseline decoder (see jsonc_decode.h). The walk
 * mirrors lib/kd_delta_decode.c member by member, so the two differ only in the parser. */
#include "jsonc_decode.h"

#include <errno.h>
#include <json-c/json.h>
#include <string.h>

#define JSON_MAX_DEPTH 8

struct jdec {
	struct kd_tmpl_ref *tmpls; /* the frame's "tmpls", decoded once (owned) or NULL */
	size_t ntmpls;
	bool *tused;
	struct kd_error **err;
};

static json_object *member(json_object *obj, const char *name)
{
	json_object *v = NULL;
	return json_object_object_get_ex(obj, name, &v) ? v : NULL;
}

static int fail(struct jdec *d, const char *what, const char *name)
{
	return kd_error_set(d->err, EINVAL, 0, "%s \"%s\"", what, name);
}

/* The tokener validated UTF-8; an escaped NUL shows as a length beyond strlen. */
static int get_str(struct jdec *d, json_object *obj, const char *name, bool required, char **out)
{
	json_object *v = member(obj, name);
	*out = NULL;
	if (!v)
		return required ? fail(d, "missing field", name) : 0;
	if (!json_object_is_type(v, json_type_string))
		return fail(d, "not a string:", name);
	const char *s = json_object_get_string(v);
	size_t len = (size_t)json_object_get_string_len(v);
	if (strlen(s) != len)
		return fail(d, "NUL in", name);
	*out = kd_xstrndup(s, len);
	return 0;
}

static int get_int(struct jdec *d, json_object *obj, const char *name, bool required, int64_t max,
                   int64_t *out, bool *present)
{
	json_object *v = member(obj, name);
	*present = false;
	if (!v)
		return required ? fail(d, "missing field", name) : 0;
	if (!json_object_is_type(v, json_type_int))
		return fail(d, "not an integer:", name);
	int64_t x = json_object_get_int64(v);
	if (x < 0 || x > max)
		return fail(d, "out of range:", name);
	*out = x;
	*present = true;
	return 0;
}

static int parse_epoch(struct jdec *d, json_object *obj, uint64_t *out)
{
	json_object *v = member(obj, "epoch");
	if (!v || !json_object_is_type(v, json_type_string))
		return fail(d, "missing or not a string:", "epoch");
	const char *s = json_object_get_string(v);
	size_t len = (size_t)json_object_get_string_len(v);
	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return fail(d, "not canonical:", "epoch");
	uint64_t x = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned dv = (unsigned)(s[i] - '0');
		if (s[i] < '0' || s[i] > '9' || x > (UINT64_MAX - dv) / 10)
			return fail(d, "not canonical:", "epoch");
		x = x * 10 + dv;
	}
	*out = x;
	return 0;
}

static int get_kvs(struct jdec *d, json_object *obj, const char *name, struct kd_kv_list *out)
{
	json_object *v = member(obj, name);
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_object))
		return fail(d, "not an object:", name);
	if ((size_t)json_object_object_length(v) > KD_KV_MAX)
		return fail(d, "too many entries in", name);
	json_object_object_foreach(v, k, val)
	{
		if (!json_object_is_type(val, json_type_string))
			return fail(d, "value not a string in", name);
		const char *s = json_object_get_string(val);
		if (strlen(s) != (size_t)json_object_get_string_len(val))
			return fail(d, "NUL in", name);
		kd_kv_list_push(out, k, s);
	}
	return 0;
}

static int dec_tmpl(struct jdec *d, json_object *jt, struct kd_tmpl_ref *t)
{
	int rc;
	if (!json_object_is_type(jt, json_type_object))
		return fail(d, "not an object:", "tmpl");
	if ((rc = get_str(d, jt, "kind", true, &t->kind)) < 0 ||
	    (rc = get_str(d, jt, "name", true, &t->name)) < 0 ||
	    (rc = get_str(d, jt, "uid", true, &t->uid)) < 0 ||
	    (rc = get_str(d, jt, "hash", true, &t->hash)) < 0)
		return rc;
	return 0;
}

static int dec_op(struct jdec *d, json_object *jo, struct kd_op *op, bool upsert_list)
{
	if (!json_object_is_type(jo, json_type_object))
		return fail(d, "not an object:", "op");
	json_object *jk = member(jo, "op");
	if (!jk && upsert_list)
		op->kind = KD_OP_UPSERT;
	else if (!jk || !json_object_is_type(jk, json_type_string))
		return fail(d, "missing or not a string:", "op");
	else if (strcmp(json_object_get_string(jk), "upsert") == 0)
		op->kind = KD_OP_UPSERT;
	else if (strcmp(json_object_get_string(jk), "delete") == 0)
		op->kind = KD_OP_DELETE;
	else
		return fail(d, "unknown", "op");
	int rc;
	if ((rc = get_str(d, jo, "key", true, &op->key)) < 0 ||
	    (rc = get_str(d, jo, "reason", false, &op->reason)) < 0)
		return rc;
	if (op->kind == KD_OP_DELETE) {
		static const char *const upsert_only[] = {"tmpl", "t",          "node",   "ctime",
		                                          "cpu",  "mem",        "labels", "ready",
		                                          "ip",   "annotations"};
		for (size_t i = 0; i < KD_ARRAY_SIZE(upsert_only); i++)
			if (member(jo, upsert_only[i]))
				return fail(d, "delete carries", upsert_only[i]);
		return 0;
	}
	json_object *jt = member(jo, "tmpl"), *jti = member(jo, "t");
	if (jt && jti)
		return fail(d, "both t and", "tmpl");
	if (jt) {
		op->has |= KD_OP_HAS_TMPL;
		if ((rc = dec_tmpl(d, jt, &op->tmpl)) < 0)
			return rc;
	}
	if (jti) {
		int64_t ti = 0;
		bool tp;
		if (!d->tmpls)
			return fail(d, "no table for", "t");
		if ((rc = get_int(d, jo, "t", false, (int64_t)d->ntmpls - 1, &ti, &tp)) < 0)
			return rc;
		const struct kd_tmpl_ref *t = &d->tmpls[ti];
		kd_op_set_tmpl(op, t->kind, t->name, t->uid, t->hash);
		d->tused[ti] = true;
	}
	if ((rc = get_str(d, jo, "node", false, &op->node)) < 0 ||
	    (rc = get_str(d, jo, "ip", false, &op->ip)) < 0)
		return rc;
	bool present;
	if ((rc = get_int(d, jo, "ctime", false, KD_INT_MAX, &op->ctime_ms, &present)) < 0)
		return rc;
	op->has |= present ? KD_OP_HAS_CTIME : 0;
	if ((rc = get_int(d, jo, "cpu", false, KD_CPU_MAX, &op->cpu_millis, &present)) < 0)
		return rc;
	op->has |= present ? KD_OP_HAS_CPU : 0;
	if ((rc = get_int(d, jo, "mem", false, KD_INT_MAX, &op->mem_bytes, &present)) < 0)
		return rc;
	op->has |= present ? KD_OP_HAS_MEM : 0;
	json_object *jr = member(jo, "ready");
	if (jr) {
		if (!json_object_is_type(jr, json_type_boolean))
			return fail(d, "not a boolean:", "ready");
		op->ready = json_object_get_boolean(jr);
		op->has |= KD_OP_HAS_READY;
	}
	if ((rc = get_kvs(d, jo, "labels", &op->labels)) < 0)
		return rc;
	return get_kvs(d, jo, "annotations", &op->annotations);
}

static int dec_ops(struct jdec *d, json_object *root, const char *field, bool upsert_list,
                   struct kd_op_list *out)
{
	json_object *ja = member(root, field);
	if (!ja || !json_object_is_type(ja, json_type_array))
		return fail(d, "missing or not an array:", field);
	size_t n = json_object_array_length(ja);
	if (n > KD_DELTA_MAX_OPS_DEFAULT)
		return kd_error_set(d->err, E2BIG, 0, "too many ops");
	out->v = kd_xcalloc(n ? n : 1, sizeof(*out->v));
	out->cap = n ? n : 1;
	for (size_t i = 0; i < n; i++) {
		int rc =
		    dec_op(d, json_object_array_get_idx(ja, i), &out->v[out->n++], upsert_list);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int dec_keys(struct jdec *d, json_object *root, const char *field, struct kd_key_list *out)
{
	json_object *ja = member(root, field);
	if (!ja || !json_object_is_type(ja, json_type_array))
		return fail(d, "missing or not an array:", field);
	size_t n = json_object_array_length(ja);
	if (n > KD_DELTA_MAX_KEYS_DEFAULT)
		return kd_error_set(d->err, E2BIG, 0, "too many keys");
	for (size_t i = 0; i < n; i++) {
		json_object *k = json_object_array_get_idx(ja, i);
		if (!json_object_is_type(k, json_type_string))
			return fail(d, "key not a string in", field);
		kd_key_list_push(out, json_object_get_string(k));
	}
	return 0;
}

static int dec_body(struct jdec *d, json_object *root, struct kd_msg *m)
{
	int64_t x = 0;
	bool present;
	int rc;
	if (m->type == KD_MSG_STATE || m->type == KD_MSG_RECONCILE) {
		if ((rc = get_int(d, root, "part", false, KD_PART_MAX, &x, &present)) < 0)
			return rc;
		m->part = (uint32_t)x;
		json_object *jm = member(root, "more");
		m->more = jm && json_object_get_boolean(jm);
	}
	json_object *jt = member(root, "tmpls");
	if (jt) {
		if (!json_object_is_type(jt, json_type_array) || !json_object_array_length(jt))
			return fail(d, "not a non-empty array:", "tmpls");
		d->ntmpls = json_object_array_length(jt);
		d->tmpls = kd_xcalloc(d->ntmpls, sizeof(*d->tmpls));
		d->tused = kd_xcalloc(d->ntmpls, sizeof(*d->tused));
		for (size_t i = 0; i < d->ntmpls; i++)
			if ((rc = dec_tmpl(d, json_object_array_get_idx(jt, i), &d->tmpls[i])) < 0)
				return rc;
	}
	switch (m->type) {
	case KD_MSG_HELLO:
		return get_str(d, root, "source", true, &m->hello.source);
	case KD_MSG_STATE:
		if ((rc = get_int(d, root, "last_seq", true, (int64_t)KD_SEQ_MAX, &x, &present)) <
		    0)
			return rc;
		m->state.last_seq = (uint64_t)x;
		rc = dec_ops(d, root, "held", true, &m->state.held);
		break;
	case KD_MSG_RECONCILE:
		if ((rc = dec_keys(d, root, "keep", &m->reconcile.keep)) < 0 ||
		    (rc = dec_keys(d, root, "drop", &m->reconcile.drop)) < 0)
			return rc;
		rc = dec_ops(d, root, "resend", true, &m->reconcile.resend);
		break;
	case KD_MSG_DELTA:
		rc = dec_ops(d, root, "ops", false, &m->delta.ops);
		break;
	case KD_MSG_ERROR:
		if ((rc = get_int(d, root, "code", true, KD_CODE_MAX, &x, &present)) < 0)
			return rc;
		m->error.code = (int)x;
		return get_str(d, root, "reason", false, &m->error.reason);
	default:
		return 0;
	}
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < d->ntmpls; i++)
		if (!d->tused[i])
			return fail(d, "unreferenced", "tmpls");
	return 0;
}

static json_object *parse(const char *buf, size_t len)
{
	json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *root = json_tokener_parse_ex(tok, buf, (int)len);
	if (root && json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(root);
		root = NULL;
	}
	json_tokener_free(tok);
	return root;
}

int bench_jsonc_parse_only(const char *buf, size_t len)
{
	json_object *root = parse(buf, len);
	if (!root)
		return -EINVAL;
	json_object_put(root);
	return 0;
}

int bench_jsonc_decode(const char *buf, size_t len, struct kd_msg **out, struct kd_error **err)
{
	json_object *root = parse(buf, len);
	if (!root || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		return kd_error_set(err, EINVAL, 0, "frame is not a JSON object");
	}
	struct jdec d = {.err = err};
	enum kd_msg_type type = KD_MSG_NONE;
	json_object *jt = member(root, "type");
	const char *ts = jt ? json_object_get_string(jt) : "";
	for (int t = KD_MSG_HELLO; t <= KD_MSG_ERROR; t++)
		if (strcmp(ts, kd_msg_type_name((enum kd_msg_type)t)) == 0)
			type = (enum kd_msg_type)t;
	int rc;
	struct kd_msg *m = NULL;
	if (type == KD_MSG_NONE) {
		rc = fail(&d, "unknown", "type");
		goto out;
	}
	m = kd_msg_new(type, 0, 0);
	int64_t seq = 0;
	bool present;
	bool data = type == KD_MSG_DELTA || type == KD_MSG_ACK;
	if ((rc = parse_epoch(&d, root, &m->epoch)) < 0 ||
	    (rc = get_int(&d, root, "seq", data, (int64_t)KD_SEQ_MAX, &seq, &present)) < 0)
		goto out;
	m->seq = (uint64_t)seq;
	if ((rc = dec_body(&d, root, m)) < 0 || (rc = kd_msg_validate(m, NULL, err)) < 0)
		goto out;
	*out = m;
	m = NULL;
out:
	kd_msg_free(m);
	for (size_t i = 0; i < d.ntmpls; i++) {
		free(d.tmpls[i].kind);
		free(d.tmpls[i].name);
		free(d.tmpls[i].uid);
		free(d.tmpls[i].hash);
	}
	free(d.tmpls);
	free(d.tused);
	json_object_put(root);
	return rc;
}
