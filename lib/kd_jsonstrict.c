/* lib/kd_jsonstrict.c: strict RFC 8259 parser into a read-only tree (see kd/jsonstrict.h). */
#include "kd/jsonstrict.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "kd/common.h"

#define JV_BLOCK 1024

struct jblock {
	struct jblock *prev;
	struct kd_jsonstrict_value v[JV_BLOCK];
};

struct jparser {
	const char *p, *end, *start;
	char *sbuf; /* unescaped strings */
	size_t sused;
	struct jblock *blk;
	size_t bused;
	unsigned max_depth;
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

static struct kd_jsonstrict_value *jp_node(struct jparser *jp, uint8_t type)
{
	if (!jp->blk || jp->bused == JV_BLOCK) {
		struct jblock *b = kd_xmalloc(sizeof(*b));
		b->prev = jp->blk;
		jp->blk = b;
		jp->bused = 0;
	}
	struct kd_jsonstrict_value *v = &jp->blk->v[jp->bused++];
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

static bool jp_number(struct jparser *jp, struct kd_jsonstrict_value *v)
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
		v->type = KD_JSONSTRICT_DOUBLE;
		return true;
	}
	v->type = KD_JSONSTRICT_INT;
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

static struct kd_jsonstrict_value *jp_value(struct jparser *jp, unsigned depth)
{
	jp_ws(jp);
	if (jp->p >= jp->end) {
		jp_fail(jp, "unexpected end");
		return NULL;
	}
	char c = *jp->p;
	struct kd_jsonstrict_value *v;
	if (c == '{' || c == '[') {
		if (depth >= jp->max_depth) {
			jp_fail(jp, "nesting too deep");
			return NULL;
		}
		bool obj = c == '{';
		char close = obj ? '}' : ']';
		v = jp_node(jp, obj ? KD_JSONSTRICT_OBJECT : KD_JSONSTRICT_ARRAY);
		jp->p++;
		jp_ws(jp);
		if (jp->p < jp->end && *jp->p == close) {
			jp->p++;
			return v;
		}
		struct kd_jsonstrict_value **tail = &v->first;
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
			struct kd_jsonstrict_value *e = jp_value(jp, depth + 1);
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
	v = jp_node(jp, KD_JSONSTRICT_NULL);
	switch (c) {
	case '"':
		v->type = KD_JSONSTRICT_STRING;
		return jp_string(jp, &v->s, &v->n) ? v : NULL;
	case 't':
		v->type = KD_JSONSTRICT_BOOL;
		v->b = true;
		return jp_lit(jp, "true", 4) ? v : NULL;
	case 'f':
		v->type = KD_JSONSTRICT_BOOL;
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

struct kd_jsonstrict {
	struct jblock *blk; /* the nodes */
	char *sbuf;         /* the unescaped strings */
	struct kd_jsonstrict_value *root;
};

int kd_jsonstrict_parse(const char *buf, size_t len, unsigned max_depth, const char *what,
                        struct kd_jsonstrict **out, struct kd_error **err)
{
	struct jparser jp = {.p = buf, .end = buf + len, .start = buf, .max_depth = max_depth};
	jp.sbuf = kd_xmalloc(len + 1);
	struct kd_jsonstrict_value *root = jp_value(&jp, 0);
	if (!root) {
		int rc;
		if (jp.truncated)
			rc = kd_error_set(err, EINVAL, 0, "%s is truncated JSON (%s at byte %zu)",
			                  what, jp.why, jp.at);
		else
			rc = kd_error_set(err, EINVAL, 0, "%s is not valid JSON: %s at byte %zu",
			                  what, jp.why, jp.at);
		jp_fini(&jp);
		return rc;
	}
	jp_ws(&jp);
	if (jp.p < jp.end) {
		jp_fini(&jp);
		return kd_error_set(err, EINVAL, 0, "%s has trailing bytes at byte %zu", what,
		                    (size_t)(jp.p - buf));
	}
	struct kd_jsonstrict *doc = kd_xmalloc(sizeof(*doc));
	doc->blk = jp.blk;
	doc->sbuf = jp.sbuf;
	doc->root = root;
	*out = doc;
	return 0;
}

const struct kd_jsonstrict_value *kd_jsonstrict_root(const struct kd_jsonstrict *doc)
{
	return doc->root;
}

void kd_jsonstrict_free(struct kd_jsonstrict *doc)
{
	if (!doc)
		return;
	struct jparser jp = {.blk = doc->blk, .sbuf = doc->sbuf};
	jp_fini(&jp);
	free(doc);
}

const struct kd_jsonstrict_value *kd_jsonstrict_member(const struct kd_jsonstrict_value *obj,
                                                       const char *name)
{
	if (obj->type != KD_JSONSTRICT_OBJECT)
		return NULL;
	size_t n = strlen(name);
	const struct kd_jsonstrict_value *found = NULL;
	for (const struct kd_jsonstrict_value *e = obj->first; e; e = e->next)
		if (e->name_len == n && memcmp(e->name, name, n) == 0)
			found = e;
	return found;
}

const char *kd_jsonstrict_type_name(const struct kd_jsonstrict_value *v)
{
	static const char *const names[] = {
	    [KD_JSONSTRICT_NULL] = "null",     [KD_JSONSTRICT_BOOL] = "boolean",
	    [KD_JSONSTRICT_INT] = "int",       [KD_JSONSTRICT_DOUBLE] = "double",
	    [KD_JSONSTRICT_STRING] = "string", [KD_JSONSTRICT_ARRAY] = "array",
	    [KD_JSONSTRICT_OBJECT] = "object"};
	return v->type < KD_ARRAY_SIZE(names) ? names[v->type] : "unknown";
}
