/* libFuzzer target for kd_jsonstrict_parse: arbitrary bytes must never crash or leak; a rejection
 * carries a reason; an accepted tree is well formed (child counts, NUL-terminated strings of the
 * stated length, names exactly on object members) and survives a round trip: written out again
 * as JSON and parsed, it gives the same tree (doubles compared by type only). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd/jsonstrict.h"

#define DEPTH 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct out {
	char *p;
	size_t len, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		o->cap = (o->len + n + 1) * 2;
		o->p = realloc(o->p, o->cap);
		if (!o->p)
			abort();
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void put_str(struct out *o, const char *s, size_t n)
{
	put(o, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == '"' || c == '\\') {
			char esc[8];
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(o, esc, 6);
		} else {
			put(o, s + i, 1);
		}
	}
	put(o, "\"", 1);
}

static void write_value(struct out *o, const struct kd_jsonstrict_value *v)
{
	char num[32];
	switch (v->type) {
	case KD_JSONSTRICT_NULL:
		put(o, "null", 4);
		break;
	case KD_JSONSTRICT_BOOL:
		put(o, v->b ? "true" : "false", v->b ? 4 : 5);
		break;
	case KD_JSONSTRICT_INT:
		put(o, num, (size_t)snprintf(num, sizeof(num), "%lld", (long long)v->i));
		break;
	case KD_JSONSTRICT_DOUBLE:
		put(o, "1.5", 3);
		break;
	case KD_JSONSTRICT_STRING:
		put_str(o, v->s, v->n);
		break;
	default: {
		bool obj = v->type == KD_JSONSTRICT_OBJECT;
		put(o, obj ? "{" : "[", 1);
		for (const struct kd_jsonstrict_value *e = v->first; e; e = e->next) {
			if (e != v->first)
				put(o, ",", 1);
			if (obj) {
				put_str(o, e->name, e->name_len);
				put(o, ":", 1);
			}
			write_value(o, e);
		}
		put(o, obj ? "}" : "]", 1);
	}
	}
}

/* Checks v's invariants; aborts on a violation. */
static void check(const struct kd_jsonstrict_value *v, bool member)
{
	if (v->type > KD_JSONSTRICT_OBJECT || !kd_jsonstrict_type_name(v))
		abort();
	if (member != (v->name != NULL) || (member && v->name[v->name_len] != '\0'))
		abort();
	if (v->type == KD_JSONSTRICT_STRING && (!v->s || v->s[v->n] != '\0'))
		abort();
	if (v->type == KD_JSONSTRICT_ARRAY || v->type == KD_JSONSTRICT_OBJECT) {
		uint32_t n = 0;
		for (const struct kd_jsonstrict_value *e = v->first; e; e = e->next, n++)
			check(e, v->type == KD_JSONSTRICT_OBJECT);
		if (n != v->n)
			abort();
	}
}

static bool same(const struct kd_jsonstrict_value *a, const struct kd_jsonstrict_value *b)
{
	if (a->type != b->type || a->n != b->n || a->name_len != b->name_len)
		return false;
	if (a->name && memcmp(a->name, b->name, a->name_len) != 0)
		return false;
	switch (a->type) {
	case KD_JSONSTRICT_BOOL:
		return a->b == b->b;
	case KD_JSONSTRICT_INT:
		return a->i == b->i;
	case KD_JSONSTRICT_STRING:
		return memcmp(a->s, b->s, a->n) == 0;
	case KD_JSONSTRICT_ARRAY:
	case KD_JSONSTRICT_OBJECT:
		for (const struct kd_jsonstrict_value *x = a->first, *y = b->first; x || y;
		     x = x->next, y = y->next)
			if (!x || !y || !same(x, y))
				return false;
		return true;
	default:
		return true;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kd_jsonstrict *doc = NULL;
	struct kd_error *err = NULL;
	if (kd_jsonstrict_parse((const char *)data, size, DEPTH, "input", &doc, &err) < 0) {
		if (doc || !err || !err->msg || !*err->msg)
			abort();
		kd_error_free(err);
		return 0;
	}
	const struct kd_jsonstrict_value *root = kd_jsonstrict_root(doc);
	check(root, false);
	struct out o = {0};
	write_value(&o, root);
	struct kd_jsonstrict *doc2 = NULL;
	if (kd_jsonstrict_parse(o.p, o.len, DEPTH, "rewritten", &doc2, &err) < 0)
		abort(); /* what was accepted, written out canonically, must parse */
	if (!same(root, kd_jsonstrict_root(doc2)))
		abort();
	kd_jsonstrict_free(doc2);
	kd_jsonstrict_free(doc);
	free(o.p);
	return 0;
}
