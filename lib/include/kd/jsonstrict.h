/* kd/jsonstrict.h: a small strict JSON parser (RFC 8259) into a read-only tree, for the channel
 * decoder (kd/delta.h), where it replaced json-c (bench/delta/RESULTS.md has the comparison).
 * A parse costs a handful of allocations: nodes come from blocks, strings are unescaped into one
 * buffer of the input's size.
 *
 * Semantics: integers (-?(0|[1-9][0-9]*)) are KD_JSONSTRICT_INT and saturate at
 * INT64_MIN/INT64_MAX; numbers with a fraction or an exponent are KD_JSONSTRICT_DOUBLE (their
 * value is not converted); raw control characters (< 0x20) in strings and leading zeros in
 * numbers are rejected; a surrogate pair escape decodes to its code point, a lone surrogate escape
 * to U+FFFD; containers nested deeper than max_depth are rejected. Syntax only: bytes >= 0x80 are
 * passed through unchecked (validate UTF-8 before or after), and the escape \u0000 gives an
 * embedded NUL, so string and name lengths (n, name_len) are exact and may exceed strlen.
 * Reentrant, no global state. */
#ifndef KD_JSONSTRICT_H
#define KD_JSONSTRICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kd/common.h"
#include "kd/error.h"

enum kd_jsonstrict_type {
	KD_JSONSTRICT_NULL,
	KD_JSONSTRICT_BOOL,
	KD_JSONSTRICT_INT,
	KD_JSONSTRICT_DOUBLE,
	KD_JSONSTRICT_STRING,
	KD_JSONSTRICT_ARRAY,
	KD_JSONSTRICT_OBJECT,
};

/* One JSON value. Everything is borrowed from the document that holds it (kd_jsonstrict_free). */
struct kd_jsonstrict_value {
	struct kd_jsonstrict_value *next;  /* next element / member of the parent, or NULL */
	struct kd_jsonstrict_value *first; /* array/object: first child, or NULL */
	const char *name;                  /* object member: its name (NUL-terminated) */
	const char *s;                     /* string: its value (NUL-terminated, n bytes) */
	int64_t i;                         /* int: its value (saturated) */
	uint32_t n;                        /* string: length in bytes; array/object: children */
	uint32_t name_len;                 /* object member: length of name in bytes */
	uint8_t type;                      /* enum kd_jsonstrict_type */
	bool b;                            /* bool: its value */
};

/* A parsed document (opaque). */
struct kd_jsonstrict;

/* Parses buf (len bytes, need not be NUL-terminated) as exactly one JSON value with optional
 * surrounding whitespace. 0 with *out an owned document (kd_jsonstrict_free), or -EINVAL with
 * *err = "<what> is truncated JSON (<why> at byte N)", "<what> is not valid JSON: <why> at
 * byte N" or "<what> has trailing bytes at byte N". *out is set only on success. */
KD_API int kd_jsonstrict_parse(const char *buf, size_t len, unsigned max_depth, const char *what,
                               struct kd_jsonstrict **out, struct kd_error **err);

/* The root value; borrowed, valid until doc is freed. */
KD_API const struct kd_jsonstrict_value *kd_jsonstrict_root(const struct kd_jsonstrict *doc);

/* Frees doc and every value in it; NULL is fine. */
KD_API void kd_jsonstrict_free(struct kd_jsonstrict *doc);

/* The member `name` of object obj (the last one when the name repeats), or NULL (also when obj
 * is not an object). Borrowed, as obj. Linear in the members of obj. */
KD_API const struct kd_jsonstrict_value *kd_jsonstrict_member(const struct kd_jsonstrict_value *obj,
                                                              const char *name);

/* "null", "boolean", "int", "double", "string", "array" or "object" (json-c's names, which the
 * decoder's error texts quote). Borrowed static string. */
KD_API const char *kd_jsonstrict_type_name(const struct kd_jsonstrict_value *v);

#endif /* KD_JSONSTRICT_H */
