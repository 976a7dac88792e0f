/* kd/error.h: the error object returned across libkd boundaries (REST, channels, loader).
 * Convention: functions return 0 or -errno and, when given a non-NULL `struct kd_error **err`,
 * set *err to an owned error on failure. Context is added by wrapping, never by overwriting. */
#ifndef KD_ERROR_H
#define KD_ERROR_H

#include "kd/common.h"

struct kd_error {
	int errnum;       /* positive errno value describing the failure class */
	long http_status; /* HTTP status when the failure came from an HTTP peer, else 0 */
	char *reason;     /* Kubernetes Status.reason (e.g. "AlreadyExists") or NULL; owned */
	char *msg;        /* human-readable, "what failed, on what, and why"; owned */
};

/* Sets *err to a new error if err is non-NULL and *err is NULL (the first error wins).
 * Returns -errnum so that callers can `return kd_error_set(err, EINVAL, 0, "...")`. */
KD_API int kd_error_set(struct kd_error **err, int errnum, long http_status, const char *fmt, ...)
    KD_PRINTF(4, 5);

/* Like kd_error_set, also recording a Kubernetes Status reason (copied). */
KD_API int kd_error_set_reason(struct kd_error **err, int errnum, long http_status,
                               const char *reason, const char *fmt, ...) KD_PRINTF(5, 6);

/* Prefixes the message of *err with context: "context: previous message". No-op when err or
 * *err is NULL. Returns -(*err)->errnum, or -EIO when there is no error to wrap. */
KD_API int kd_error_wrap(struct kd_error **err, const char *fmt, ...) KD_PRINTF(2, 3);

/* Frees an error; NULL is fine. Preserves errno. */
KD_API void kd_error_free(struct kd_error *e);

/* Message of e, or "(no error)" for NULL. Borrowed; valid until e is freed. */
KD_API const char *kd_error_msg(const struct kd_error *e);

static inline void kd__error_freep(struct kd_error **e)
{
	kd_error_free(*e);
}
/* `kd_autoerr struct kd_error *err = NULL;` frees err when it leaves scope. */
#define kd_autoerr __attribute__((cleanup(kd__error_freep)))

#endif /* KD_ERROR_H */
