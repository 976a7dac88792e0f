/* Unit tests for lib/kd_stage: kd_sandbox_status_set zeroes what it does not set, copies the
 * address and uid, truncates a uid longer than the field, and leaves both "" for NULL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kd/stage.h"

static void test_status_set_copies(void **state)
{
	(void)state;
	struct kd_sandbox_status st;
	memset(&st, 0xa5, sizeof(st)); /* garbage: all of it must be overwritten */
	kd_sandbox_status_set(&st, KD_SANDBOX_READY, "10.244.0.7", "0b6f-uid", 1200, 1450);
	assert_int_equal(st.phase, KD_SANDBOX_READY);
	assert_string_equal(st.pod_ip, "10.244.0.7");
	assert_string_equal(st.uid, "0b6f-uid");
	assert_int_equal(st.created_ms, 1200);
	assert_int_equal(st.ready_ms, 1450);
	/* the bytes after the strings are zero, not left over */
	for (size_t i = strlen(st.pod_ip); i < sizeof(st.pod_ip); i++)
		assert_int_equal(st.pod_ip[i], 0);
	for (size_t i = strlen(st.uid); i < sizeof(st.uid); i++)
		assert_int_equal(st.uid[i], 0);
}

static void test_status_set_null_and_truncated(void **state)
{
	(void)state;
	struct kd_sandbox_status st;
	memset(&st, 0xa5, sizeof(st));
	kd_sandbox_status_set(&st, KD_SANDBOX_PENDING, NULL, NULL, 5, 0);
	assert_int_equal(st.phase, KD_SANDBOX_PENDING);
	assert_string_equal(st.pod_ip, "");
	assert_string_equal(st.uid, "");
	assert_int_equal(st.created_ms, 5);
	assert_int_equal(st.ready_ms, 0);

	char long_uid[sizeof(st.uid) + 10];
	memset(long_uid, 'u', sizeof(long_uid) - 1);
	long_uid[sizeof(long_uid) - 1] = '\0';
	kd_sandbox_status_set(&st, KD_SANDBOX_STARTED, "", long_uid, 1, 2);
	assert_int_equal(st.phase, KD_SANDBOX_STARTED);
	assert_string_equal(st.pod_ip, "");
	assert_int_equal(strlen(st.uid), sizeof(st.uid) - 1);
	assert_memory_equal(st.uid, long_uid, sizeof(st.uid) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_status_set_copies),
	    cmocka_unit_test(test_status_set_null_and_truncated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
