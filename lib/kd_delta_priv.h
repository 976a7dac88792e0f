/* lib/kd_delta_priv.h: internals shared by the files of the channel codec (kd/delta.h):
 * kd_delta.c (model), kd_delta_validate.c, kd_delta_encode.c (encoder and paging) and
 * kd_delta_decode.c. Not installed; no other module includes it. */
#ifndef KD_DELTA_PRIV_H
#define KD_DELTA_PRIV_H

#include <stdbool.h>
#include <stddef.h>

#include "kd/delta.h"
#include "kd/error.h"

/* ---- kd_delta.c ---- */

/* Returns array v (n of *cap elements of elem bytes used) grown, when full, so that one more
 * element fits; *cap updated. Owned, as v. */
void *kd__delta_grow(void *v, size_t *cap, size_t n, size_t elem);
/* Frees the strings of t and zeroes it. */
void kd__tmpl_fini(struct kd_tmpl_ref *t);
/* Member-wise equality of two template references with all four members set. */
bool kd__tmpl_eq(const struct kd_tmpl_ref *a, const struct kd_tmpl_ref *b);
/* Appends the frame buf (owned; ownership moves to v) of len bytes. */
void kd__frame_vec_push(struct kd_frame_vec *v, char *buf, size_t len);

/* ---- kd_delta_validate.c ---- */

/* The limits of lim (may be NULL) with defaults for zero members; max_frame at most INT_MAX. */
struct kd_delta_limits kd__delta_limits(const struct kd_delta_limits *lim);

/* Length of the valid UTF-8 prefix of s[0..len) that contains no NUL; == len when all valid.
 * Rejects overlong forms, surrogates and code points above U+10FFFF. */
size_t kd__utf8_valid_prefix(const unsigned char *s, size_t len);

/* Writes s (len bytes) quoted for an error message into buf (KD__QBUF bytes suffice): at most 64
 * bytes of s, non-printables as \xNN. Returns buf. */
#define KD__QBUF 300
const char *kd__quote(char *buf, size_t bufsz, const char *s, size_t len);

/* Context for error messages: "<type>[ seq S][ part P][ <list> <idx>]". */
struct kd__vctx {
	const struct kd_tmpl_ref *last_tmpl; /* last template found valid (ops share templates) */
	const struct kd_msg *m;
	const char *list; /* "op", "held", "resend", "keep", "drop" or NULL */
	size_t idx;
	struct kd_error **err;
};

/* Sets *c->err to "<context>: <fmt...>" and returns -errnum. */
int kd__vfail(const struct kd__vctx *c, int errnum, const char *fmt, ...) KD_PRINTF(3, 4);

#endif /* KD_DELTA_PRIV_H */
