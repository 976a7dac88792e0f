/* Unit tests for kd_error: first error wins, wrapping adds context, free keeps errno. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "kd/error.h"

static void set_returns_negative_errno_and_first_wins(void **state)
{
	(void)state;
	struct kd_error *err = NULL;
	assert_int_equal(kd_error_set(&err, ENOENT, 404, "get pod %s: not found", "a/b"), -ENOENT);
	assert_int_equal(kd_error_set(&err, EIO, 500, "second"), -EIO);
	assert_non_null(err);
	assert_int_equal(err->errnum, ENOENT);
	assert_int_equal(err->http_status, 404);
	assert_string_equal(kd_error_msg(err), "get pod a/b: not found");
	kd_error_free(err);
}

static void set_with_null_err_only_returns(void **state)
{
	(void)state;
	assert_int_equal(kd_error_set(NULL, EINVAL, 0, "x"), -EINVAL);
	assert_int_equal(kd_error_set(NULL, -EINVAL, 0, "negative errnum is normalised"), -EINVAL);
	assert_int_equal(kd_error_set(NULL, 0, 0, "zero becomes EIO"), -EIO);
}

static void wrap_prefixes_context(void **state)
{
	(void)state;
	kd_autoerr struct kd_error *err = NULL;
	kd_error_set_reason(&err, EEXIST, 409, "AlreadyExists", "pods \"p\" already exists");
	assert_int_equal(kd_error_wrap(&err, "create %s", "default/p"), -EEXIST);
	assert_string_equal(err->msg, "create default/p: pods \"p\" already exists");
	assert_string_equal(err->reason, "AlreadyExists");
	struct kd_error *none = NULL;
	assert_int_equal(kd_error_wrap(&none, "ctx"), -EIO);
	assert_null(none);
	assert_string_equal(kd_error_msg(NULL), "(no error)");
}

static void free_preserves_errno(void **state)
{
	(void)state;
	struct kd_error *err = NULL;
	kd_error_set(&err, EPERM, 0, "x");
	errno = ETIMEDOUT;
	kd_error_free(err);
	assert_int_equal(errno, ETIMEDOUT);
	kd_error_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(set_returns_negative_errno_and_first_wins),
	    cmocka_unit_test(set_with_null_err_only_returns),
	    cmocka_unit_test(wrap_prefixes_context),
	    cmocka_unit_test(free_preserves_errno),
	};
	return cmocka_run_group_tests_name("kd_error", tests, NULL, NULL);
}
