/* Unit tests for lib/kd_strmap: put/get/replace, deletion with backward shift inside colliding
 * probe runs (every remaining key still found), growth, iteration, reuse after fini,
 * insert-if-absent (set use) and reserving room up front. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kd/strmap.h"

#define N 1000

static char keys[N][16];
static int vals[N];

static void fill(struct kd_strmap *m)
{
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "ns/pod-%d", i);
		vals[i] = i;
		kd_strmap_put(m, keys[i], &vals[i]);
	}
}

static void test_put_get_replace(void **state)
{
	(void)state;
	struct kd_strmap m = {0};
	assert_null(kd_strmap_get(&m, "x")); /* empty map, no table */
	assert_null(kd_strmap_del(&m, "x"));
	fill(&m);
	assert_int_equal(m.n, N);
	assert_true(m.n * 4 <= m.cap * 3); /* load factor kept */
	for (int i = 0; i < N; i++) {
		char k[16];
		snprintf(k, sizeof(k), "ns/pod-%d", i); /* a different pointer, same text */
		assert_ptr_equal(kd_strmap_get(&m, k), &vals[i]);
		assert_ptr_equal(kd_strmap_get_h(&m, k, kd_strmap_hash(k)), &vals[i]);
	}
	assert_null(kd_strmap_get(&m, "ns/pod-1000"));
	int other = 7;
	kd_strmap_put(&m, keys[5], &other);
	assert_int_equal(m.n, N);
	assert_ptr_equal(kd_strmap_get(&m, "ns/pod-5"), &other);
	kd_strmap_fini(&m);
	assert_int_equal(m.n, 0);
	assert_null(kd_strmap_get(&m, "ns/pod-5"));
	kd_strmap_put(&m, "again", &other); /* reusable after fini */
	assert_ptr_equal(kd_strmap_get(&m, "again"), &other);
	kd_strmap_fini(&m);
}

static void test_delete_keeps_others_reachable(void **state)
{
	(void)state;
	struct kd_strmap m = {0};
	fill(&m);
	/* delete every third key: backward shift must keep the rest of each probe run findable */
	for (int i = 0; i < N; i += 3)
		assert_ptr_equal(kd_strmap_del(&m, keys[i]), &vals[i]);
	assert_null(kd_strmap_del(&m, keys[0]));
	for (int i = 0; i < N; i++) {
		if (i % 3 == 0)
			assert_null(kd_strmap_get(&m, keys[i]));
		else
			assert_ptr_equal(kd_strmap_get(&m, keys[i]), &vals[i]);
	}
	assert_int_equal(m.n, N - (N + 2) / 3);
	kd_strmap_fini(&m);
}

static void test_small_table_wraparound(void **state)
{
	(void)state;
	/* 12 keys in the first 16-slot table: probe runs wrap past the end */
	struct kd_strmap m = {0};
	for (int i = 0; i < 12; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
		kd_strmap_put(&m, keys[i], &vals[i]);
	}
	assert_int_equal(m.cap, 16);
	for (int d = 0; d < 12; d++) {
		assert_ptr_equal(kd_strmap_del(&m, keys[d]), &vals[d]);
		for (int i = d + 1; i < 12; i++)
			assert_ptr_equal(kd_strmap_get(&m, keys[i]), &vals[i]);
	}
	assert_int_equal(m.n, 0);
	kd_strmap_fini(&m);
}

static void test_iteration_visits_each_once(void **state)
{
	(void)state;
	struct kd_strmap m = {0};
	size_t pos = 0;
	assert_null(kd_strmap_next(&m, &pos));
	fill(&m);
	static unsigned char seen[N];
	memset(seen, 0, sizeof(seen));
	size_t count = 0;
	pos = 0;
	for (int *v; (v = kd_strmap_next(&m, &pos));) {
		assert_true(*v >= 0 && *v < N);
		assert_int_equal(seen[*v], 0);
		seen[*v] = 1;
		count++;
	}
	assert_int_equal(count, N);
	assert_null(kd_strmap_next(&m, &pos)); /* stays at the end */
	kd_strmap_fini(&m);
}

static void test_add_inserts_only_when_absent(void **state)
{
	(void)state;
	struct kd_strmap m = {0};
	int a = 1, b = 2;
	assert_null(kd_strmap_add(&m, "ns/a", &a)); /* absent: inserted */
	assert_int_equal(m.n, 1);
	char same[] = "ns/a";                              /* another pointer, same text */
	assert_ptr_equal(kd_strmap_add(&m, same, &b), &a); /* present: existing value back */
	assert_int_equal(m.n, 1);
	assert_ptr_equal(kd_strmap_get(&m, "ns/a"), &a); /* and left unchanged */
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "ns/pod-%d", i);
		assert_null(kd_strmap_add(&m, keys[i], &vals[i]));
	}
	for (int i = 0; i < N; i++)
		assert_ptr_equal(kd_strmap_add(&m, keys[i], &a), &vals[i]);
	assert_int_equal(m.n, N + 1);
	kd_strmap_fini(&m);
}

static void test_reserve_avoids_rehash(void **state)
{
	(void)state;
	struct kd_strmap m = {0};
	kd_strmap_reserve(&m, N);
	assert_true(N * 4 <= m.cap * 3);
	assert_true(m.cap < 4 * N); /* the smallest power of two that holds N */
	const struct kd_strmap_slot *slots = m.slots;
	size_t cap = m.cap;
	fill(&m);
	assert_ptr_equal(m.slots, slots); /* no rehash while filling */
	assert_int_equal(m.cap, cap);
	kd_strmap_reserve(&m, 10); /* never shrinks */
	assert_int_equal(m.cap, cap);
	for (int i = 0; i < N; i++)
		assert_ptr_equal(kd_strmap_get(&m, keys[i]), &vals[i]);
	kd_strmap_fini(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_put_get_replace),
	    cmocka_unit_test(test_delete_keeps_others_reachable),
	    cmocka_unit_test(test_small_table_wraparound),
	    cmocka_unit_test(test_iteration_visits_each_once),
	    cmocka_unit_test(test_add_inserts_only_when_absent),
	    cmocka_unit_test(test_reserve_avoids_rehash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
