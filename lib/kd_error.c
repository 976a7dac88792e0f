/* kd_error.c: error objects with wrapping context. */
#include "kd/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int vset(struct kd_error **err, int errnum, long http_status, const char *reason,
                const char *fmt, va_list ap)
{
	if (errnum < 0)
		errnum = -errnum;
	if (errnum == 0)
		errnum = EIO;
	if (!err || *err)
		return -errnum;
	struct kd_error *e = kd_xcalloc(1, sizeof(*e));
	e->errnum = errnum;
	e->http_status = http_status;
	e->reason = reason ? kd_xstrdup(reason) : NULL;
	e->msg = kd_xvasprintf(fmt, ap);
	*err = e;
	return -errnum;
}

int kd_error_set(struct kd_error **err, int errnum, long http_status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vset(err, errnum, http_status, NULL, fmt, ap);
	va_end(ap);
	return rc;
}

int kd_error_set_reason(struct kd_error **err, int errnum, long http_status, const char *reason,
                        const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vset(err, errnum, http_status, reason, fmt, ap);
	va_end(ap);
	return rc;
}

int kd_error_wrap(struct kd_error **err, const char *fmt, ...)
{
	if (!err || !*err)
		return -EIO;
	va_list ap;
	va_start(ap, fmt);
	kd_autofree char *ctx = kd_xvasprintf(fmt, ap);
	va_end(ap);
	char *msg = kd_xasprintf("%s: %s", ctx, (*err)->msg);
	free((*err)->msg);
	(*err)->msg = msg;
	return -(*err)->errnum;
}

void kd_error_free(struct kd_error *e)
{
	if (!e)
		return;
	int saved = errno;
	free(e->msg);
	free(e->reason);
	free(e);
	errno = saved;
}

const char *kd_error_msg(const struct kd_error *e)
{
	return e ? e->msg : "(no error)";
}
