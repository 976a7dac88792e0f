/* kd_wirestat.c: Knative WireStatMessages (protobuf) and our JSON stat/scale frames
 * (kd/wirestat.h). */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "kd/json.h"
#include "kd/wirestat.h"

#define JSON_MAX_BYTES ((size_t)1 << 20)

void kd_statmsg_list_fini(struct kd_statmsg_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].ns);
		free(l->v[i].revision);
		free(l->v[i].pod);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static struct kd_statmsg *push(struct kd_statmsg_list *l)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 8;
		l->v = kd_xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	struct kd_statmsg *m = &l->v[l->n++];
	memset(m, 0, sizeof(*m));
	return m;
}

/* Drops messages appended after `mark` (failure: nothing appended). */
static void truncate_to(struct kd_statmsg_list *l, size_t mark)
{
	for (size_t i = mark; i < l->n; i++) {
		free(l->v[i].ns);
		free(l->v[i].revision);
		free(l->v[i].pod);
	}
	l->n = mark;
}

/* ---- protobuf reader ------------------------------------------------------------------------ */

struct pb {
	const uint8_t *p, *end;
};

static int pb_varint(struct pb *r, uint64_t *out)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end)
			return -EINVAL;
		uint8_t b = *r->p++;
		if (shift == 63 && b > 1)
			return -EINVAL; /* over 64 bits */
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return -EINVAL; /* more than 10 bytes */
}

static int pb_fixed64(struct pb *r, double *out)
{
	if (r->end - r->p < 8)
		return -EINVAL;
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | r->p[i];
	r->p += 8;
	memcpy(out, &v, sizeof(*out));
	return 0;
}

static int pb_bytes(struct pb *r, struct pb *sub)
{
	uint64_t n;
	if (pb_varint(r, &n) < 0 || n > (uint64_t)(r->end - r->p))
		return -EINVAL;
	sub->p = r->p;
	sub->end = r->p + n;
	r->p += n;
	return 0;
}

static int pb_skip(struct pb *r, unsigned wt)
{
	uint64_t v;
	struct pb sub;
	switch (wt) {
	case 0:
		return pb_varint(r, &v);
	case 1:
		if (r->end - r->p < 8)
			return -EINVAL;
		r->p += 8;
		return 0;
	case 2:
		return pb_bytes(r, &sub);
	case 5:
		if (r->end - r->p < 4)
			return -EINVAL;
		r->p += 4;
		return 0;
	default:
		return -EINVAL; /* groups (3, 4) and reserved types */
	}
}

static int pb_string(struct pb *r, char **out)
{
	struct pb s;
	if (pb_bytes(r, &s) < 0)
		return -EINVAL;
	size_t n = (size_t)(s.end - s.p);
	if (n > KD_WIRESTAT_MAX_STR || memchr(s.p, 0, n))
		return -EINVAL;
	free(*out);
	*out = kd_xstrndup((const char *)s.p, n);
	return 0;
}

static int decode_stat(struct pb *r, struct kd_statmsg *m, unsigned *bad_field)
{
	while (r->p < r->end) {
		uint64_t tag;
		if (pb_varint(r, &tag) < 0)
			return -EINVAL;
		unsigned field = (unsigned)(tag >> 3), wt = (unsigned)(tag & 7);
		*bad_field = field;
		double *d = NULL;
		switch (field) {
		case 2:
			d = &m->concurrency;
			break;
		case 3:
			d = &m->proxied_concurrency;
			break;
		case 4:
			d = &m->requests;
			break;
		case 5:
			d = &m->proxied_requests;
			break;
		case 6:
			d = &m->uptime_s;
			break;
		default:
			break;
		}
		int rc;
		if (field == 1 && wt == 2) {
			rc = pb_string(r, &m->pod);
		} else if (d && wt == 1) {
			rc = pb_fixed64(r, d);
			if (rc == 0 && !isfinite(*d))
				rc = -EINVAL;
		} else if (field == 7 && wt == 0) {
			uint64_t v = 0;
			rc = pb_varint(r, &v);
			if (rc == 0)
				m->timestamp = (int64_t)v;
		} else if (field == 0) {
			rc = -EINVAL;
		} else {
			rc = pb_skip(r, wt);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int decode_msg(struct pb *r, struct kd_statmsg *m, const char **where, unsigned *bad_field)
{
	while (r->p < r->end) {
		uint64_t tag;
		*where = "message";
		if (pb_varint(r, &tag) < 0)
			return -EINVAL;
		unsigned field = (unsigned)(tag >> 3), wt = (unsigned)(tag & 7);
		*bad_field = field;
		int rc;
		if (field == 1 && wt == 2) {
			rc = pb_string(r, &m->ns);
		} else if (field == 2 && wt == 2) {
			rc = pb_string(r, &m->revision);
		} else if (field == 3 && wt == 2) {
			struct pb sub;
			rc = pb_bytes(r, &sub);
			if (rc == 0) {
				*where = "stat";
				m->has_stat = true;
				rc = decode_stat(&sub, m, bad_field);
			}
		} else if (field == 0) {
			rc = -EINVAL;
		} else {
			rc = pb_skip(r, wt);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

int kd_wirestat_decode(const uint8_t *buf, size_t len, struct kd_statmsg_list *out,
                       struct kd_error **err)
{
	struct pb r = {buf, buf + len};
	size_t mark = out->n, count = 0;
	while (r.p < r.end) {
		uint64_t tag;
		if (pb_varint(&r, &tag) < 0) {
			truncate_to(out, mark);
			return kd_error_set(err, EINVAL, 0, "wirestat: bad tag at offset %zu",
			                    (size_t)(r.p - buf));
		}
		unsigned field = (unsigned)(tag >> 3), wt = (unsigned)(tag & 7);
		if (field != 1 || wt != 2) {
			if (field == 0 || pb_skip(&r, wt) < 0) {
				truncate_to(out, mark);
				return kd_error_set(err, EINVAL, 0,
				                    "wirestat: bad field %u (wire type %u)", field,
				                    wt);
			}
			continue;
		}
		if (++count > KD_WIRESTAT_MAX_MSGS) {
			truncate_to(out, mark);
			return kd_error_set(err, E2BIG, 0, "wirestat: more than %u messages",
			                    KD_WIRESTAT_MAX_MSGS);
		}
		struct pb sub;
		if (pb_bytes(&r, &sub) < 0) {
			truncate_to(out, mark);
			return kd_error_set(err, EINVAL, 0, "wirestat: message %zu: truncated",
			                    count);
		}
		struct kd_statmsg *m = push(out);
		m->type = KD_STATMSG_STAT;
		const char *where = "message";
		unsigned bad = 0;
		if (decode_msg(&sub, m, &where, &bad) < 0) {
			truncate_to(out, mark);
			return kd_error_set(err, EINVAL, 0,
			                    "wirestat: message %zu: %s: field %u: malformed", count,
			                    where, bad);
		}
		if (!m->ns)
			m->ns = kd_xstrdup("");
		if (!m->revision)
			m->revision = kd_xstrdup("");
	}
	return 0;
}

/* ---- protobuf writer ------------------------------------------------------------------------ */

struct pbw {
	uint8_t *v;
	size_t n, cap;
};

static void w_raw(struct pbw *w, const void *p, size_t n)
{
	if (w->n + n > w->cap) {
		w->cap = KD_MAX(w->cap * 2, w->n + n + 64);
		w->v = kd_xrealloc(w->v, w->cap);
	}
	memcpy(w->v + w->n, p, n);
	w->n += n;
}

static void w_varint(struct pbw *w, uint64_t v)
{
	uint8_t b[10];
	size_t n = 0;
	do {
		b[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			b[n] |= 0x80;
		n++;
	} while (v);
	w_raw(w, b, n);
}

static void w_string(struct pbw *w, unsigned field, const char *s)
{
	if (!s || !*s)
		return;
	w_varint(w, (uint64_t)field << 3 | 2);
	w_varint(w, strlen(s));
	w_raw(w, s, strlen(s));
}

static void w_double(struct pbw *w, unsigned field, double d)
{
	if (d == 0)
		return;
	uint64_t v;
	memcpy(&v, &d, sizeof(v));
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	w_varint(w, (uint64_t)field << 3 | 1);
	w_raw(w, b, 8);
}

static void w_sub(struct pbw *w, unsigned field, const struct pbw *sub)
{
	w_varint(w, (uint64_t)field << 3 | 2);
	w_varint(w, sub->n);
	if (sub->n)
		w_raw(w, sub->v, sub->n);
}

uint8_t *kd_wirestat_encode(const struct kd_statmsg *msgs, size_t n, size_t *len)
{
	struct pbw out = {0};
	for (size_t i = 0; i < n; i++) {
		const struct kd_statmsg *m = &msgs[i];
		struct pbw st = {0}, msg = {0};
		w_string(&st, 1, m->pod);
		w_double(&st, 2, m->concurrency);
		w_double(&st, 3, m->proxied_concurrency);
		w_double(&st, 4, m->requests);
		w_double(&st, 5, m->proxied_requests);
		w_double(&st, 6, m->uptime_s);
		if (m->timestamp) {
			w_varint(&st, 7 << 3);
			w_varint(&st, (uint64_t)m->timestamp);
		}
		w_string(&msg, 1, m->ns);
		w_string(&msg, 2, m->revision);
		w_sub(&msg, 3, &st);
		w_sub(&out, 1, &msg);
		free(st.v);
		free(msg.v);
	}
	if (!out.v)
		out.v = kd_xmalloc(1);
	*len = out.n;
	return out.v;
}

/* ---- JSON ----------------------------------------------------------------------------------- */

static int json_num(json_object *o, const char *key, double *out, bool *present)
{
	json_object *v = NULL;
	*present = json_object_object_get_ex(o, key, &v) && v;
	if (!*present)
		return 0;
	if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
		return -EINVAL;
	double d = json_object_get_double(v);
	if (!isfinite(d) || d < 0)
		return -EINVAL;
	*out = d;
	return 0;
}

static const char *json_str(json_object *o, const char *key)
{
	json_object *v = NULL;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	const char *s = json_object_get_string(v);
	size_t n = (size_t)json_object_get_string_len(v);
	if (n == 0 || n > KD_WIRESTAT_MAX_STR || strlen(s) != n)
		return NULL;
	return s;
}

static int json_one(json_object *o, size_t idx, struct kd_statmsg_list *out, struct kd_error **err)
{
	if (!json_object_is_type(o, json_type_object))
		return kd_error_set(err, EINVAL, 0, "stats json: item %zu is not an object", idx);
	const char *type = json_str(o, "type");
	const char *ns = json_str(o, "namespace");
	const char *rev = json_str(o, "revision");
	if (!type || !ns || !rev)
		return kd_error_set(
		    err, EINVAL, 0,
		    "stats json: item %zu: type, namespace and revision are required "
		    "strings (1..%u bytes)",
		    idx, KD_WIRESTAT_MAX_STR);
	struct kd_statmsg m = {0};
	bool present = false;
	if (strcmp(type, "stat") == 0) {
		m.type = KD_STATMSG_STAT;
		m.has_stat = true;
		double ts = 0;
		if (json_num(o, "concurrency", &m.concurrency, &present) < 0 ||
		    json_num(o, "requests", &m.requests, &present) < 0 ||
		    json_num(o, "timestamp", &ts, &present) < 0 || ts > 1e12)
			return kd_error_set(
			    err, EINVAL, 0,
			    "stats json: item %zu: concurrency, requests and timestamp "
			    "must be non-negative numbers",
			    idx);
		m.timestamp = (int64_t)ts;
		json_object *pod = NULL;
		if (json_object_object_get_ex(o, "pod", &pod) && pod) {
			if (!json_str(o, "pod"))
				return kd_error_set(err, EINVAL, 0, "stats json: item %zu: bad pod",
				                    idx);
			m.pod = kd_xstrdup(json_str(o, "pod"));
		}
	} else if (strcmp(type, "scale") == 0) {
		m.type = KD_STATMSG_SCALE;
		double d = -1;
		if (json_num(o, "desired", &d, &present) < 0 || !present ||
		    d > KD_WIRESTAT_MAX_DESIRED || d != floor(d))
			return kd_error_set(err, EINVAL, 0,
			                    "stats json: item %zu: desired must be an integer in "
			                    "0..%d",
			                    idx, KD_WIRESTAT_MAX_DESIRED);
		m.desired = (int32_t)d;
	} else {
		return kd_error_set(err, EINVAL, 0, "stats json: item %zu: unknown type \"%s\"",
		                    idx, type);
	}
	m.ns = kd_xstrdup(ns);
	m.revision = kd_xstrdup(rev);
	*push(out) = m;
	return 0;
}

int kd_statmsg_decode_json(const char *buf, size_t len, struct kd_statmsg_list *out,
                           struct kd_error **err)
{
	if (len > JSON_MAX_BYTES)
		return kd_error_set(err, EMSGSIZE, 0, "stats json: frame of %zu bytes exceeds %zu",
		                    len, JSON_MAX_BYTES);
	kd_autojson json_object *root = NULL;
	int rc = kd_json_parse(buf, len, JSON_MAX_BYTES, "stats frame", &root, err);
	if (rc < 0)
		return rc;
	size_t mark = out->n;
	if (json_object_is_type(root, json_type_array)) {
		size_t n = json_object_array_length(root);
		if (n > KD_WIRESTAT_MAX_MSGS)
			return kd_error_set(err, E2BIG, 0, "stats json: more than %u items",
			                    KD_WIRESTAT_MAX_MSGS);
		for (size_t i = 0; i < n; i++) {
			rc = json_one(json_object_array_get_idx(root, i), i, out, err);
			if (rc < 0) {
				truncate_to(out, mark);
				return rc;
			}
		}
		return 0;
	}
	return json_one(root, 0, out, err);
}
