/* tests/unit/test_hash.c: kd/hash.h against published FNV-1a 64 test vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "kd/hash.h"
#include "kd/strmap.h"

static void test_vectors(void **state)
{
	(void)state;
	/* From the FNV reference test suite (Landon Curt Noll). */
	assert_true(kd_hash_str(KD_HASH_INIT, "") == 0xcbf29ce484222325ull);
	assert_true(kd_hash_str(KD_HASH_INIT, "a") == 0xaf63dc4c8601ec8cull);
	assert_true(kd_hash_str(KD_HASH_INIT, "foobar") == 0x85944171f73967e8ull);
}

static void test_bytes_and_str_agree_and_chain(void **state)
{
	(void)state;
	const char *s = "namespace/name";
	assert_true(kd_hash_bytes(KD_HASH_INIT, s, strlen(s)) == kd_hash_str(KD_HASH_INIT, s));
	/* Hashing in two pieces continues the same hash. */
	uint64_t h = kd_hash_str(kd_hash_str(KD_HASH_INIT, "namespace/"), "name");
	assert_true(h == kd_hash_str(KD_HASH_INIT, s));
	assert_true(kd_hash_bytes(KD_HASH_INIT, NULL, 0) == KD_HASH_INIT);
	assert_true(kd_strmap_hash(s) == kd_hash_str(KD_HASH_INIT, s));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_bytes_and_str_agree_and_chain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
