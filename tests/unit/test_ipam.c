/* Unit tests for lib/kd_ipam: CIDR parsing, usable addresses (network, gateway and broadcast
 * skipped), next-fit allocation and wrap-around reuse, exhaustion, explicit reservations, the
 * overlapping-CIDR rules of a pool set and the random start option. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kd/ipam.h"

#define IP(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (d))

static void test_parse_cidr(void **state)
{
	(void)state;
	uint32_t base = 0;
	unsigned prefix = 0;
	assert_int_equal(kd_ipam_parse_cidr("10.1.2.3/24", 8, &base, &prefix), 0);
	assert_int_equal(base, IP(10, 1, 2, 0));
	assert_int_equal(prefix, 24);
	assert_int_equal(kd_ipam_parse_cidr("0.0.0.0/0", 0, &base, &prefix), 0);
	assert_int_equal(base, 0);
	assert_int_equal(prefix, 0);
	const char *bad[] = {"banana",     "10.0.0.0",     "10.0.0.0/",     "10.0.0.0/31",
	                     "10.0.0.0/7", "10.0.0.0/24x", "10.0.0.256/24", "1000.100.100.100/8"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		base = 77;
		assert_int_equal(kd_ipam_parse_cidr(bad[i], 8, &base, &prefix), -EINVAL);
		assert_int_equal(base, 77); /* untouched */
	}
	assert_int_equal(kd_ipam_parse_cidr("10.0.0.0/7", 0, &base, &prefix), 0);
	char text[KD_IPAM_IP_STRLEN];
	kd_ipam_ip_text(IP(255, 255, 255, 255), text);
	assert_string_equal(text, "255.255.255.255");
}

static void test_alloc_skips_reserved_and_exhausts(void **state)
{
	(void)state;
	struct kd_ipam *ipam = kd_ipam_new(NULL);
	struct kd_error *err = NULL;
	struct kd_ipam_pool *p = kd_ipam_pool_get(ipam, "10.9.0.3/29", &err);
	assert_non_null(p);
	assert_string_equal(kd_ipam_pool_cidr(p), "10.9.0.0/29");
	assert_int_equal(kd_ipam_pool_prefix(p), 29);
	assert_int_equal(kd_ipam_pool_usable(p), 5);
	for (uint32_t i = 0; i < 5; i++) {
		uint32_t ip = 0;
		assert_int_equal(kd_ipam_alloc(p, &ip, &err), 0);
		assert_int_equal(ip, IP(10, 9, 0, 2 + i)); /* .0 network, .1 gateway skipped */
	}
	assert_int_equal(kd_ipam_pool_used(p), 5);
	uint32_t ip = 99;
	assert_int_equal(kd_ipam_alloc(p, &ip, &err), -EADDRNOTAVAIL);
	assert_int_equal(ip, 99);
	assert_non_null(err);
	assert_int_equal(err->errnum, EADDRNOTAVAIL);
	assert_string_equal(err->msg,
	                    "pod CIDR 10.9.0.0/29 is exhausted (5 of 5 addresses in use)");
	kd_error_free(err);
	kd_ipam_free(ipam);
}

static void test_next_fit_reuses_after_wrap(void **state)
{
	(void)state;
	struct kd_ipam *ipam = kd_ipam_new(NULL);
	struct kd_ipam_pool *p = kd_ipam_pool_get(ipam, "10.9.0.0/29", NULL);
	assert_non_null(p);
	uint32_t a, b, c;
	assert_int_equal(kd_ipam_alloc(p, &a, NULL), 0);
	assert_int_equal(kd_ipam_alloc(p, &b, NULL), 0);
	kd_ipam_release(p, a);
	kd_ipam_release(p, a);                /* twice: ignored */
	kd_ipam_release(p, IP(10, 10, 0, 2)); /* not of the pool: ignored */
	assert_int_equal(kd_ipam_pool_used(p), 1);
	/* next-fit: .4, .5, .6 before the released .2 comes round again */
	for (uint32_t i = 4; i <= 6; i++) {
		assert_int_equal(kd_ipam_alloc(p, &c, NULL), 0);
		assert_int_equal(c, IP(10, 9, 0, i));
	}
	assert_int_equal(kd_ipam_alloc(p, &c, NULL), 0);
	assert_int_equal(c, a);
	kd_ipam_free(ipam);
}

static void test_reserve(void **state)
{
	(void)state;
	struct kd_ipam *ipam = kd_ipam_new(NULL);
	struct kd_ipam_pool *p = kd_ipam_pool_get(ipam, "10.50.1.0/24", NULL);
	assert_non_null(p);
	struct kd_error *err = NULL;
	uint32_t ip = 0;
	assert_int_equal(kd_ipam_reserve(p, "10.50.1.77", &ip, &err), 0);
	assert_int_equal(ip, IP(10, 50, 1, 77));
	assert_int_equal(kd_ipam_pool_used(p), 1);
	assert_int_equal(kd_ipam_reserve(p, "10.50.1.77", &ip, &err), -EADDRINUSE);
	assert_string_equal(err->msg, "pod IP 10.50.1.77 is already in use");
	kd_error_free(err);
	err = NULL;
	const char *unusable[] = {"10.50.1.0", "10.50.1.1", "10.50.1.255", "10.50.2.7",
	                          "10.50.0.9"};
	for (size_t i = 0; i < sizeof(unusable) / sizeof(unusable[0]); i++) {
		assert_int_equal(kd_ipam_reserve(p, unusable[i], &ip, &err), -EINVAL);
		char want[128];
		snprintf(want, sizeof(want),
		         "pod IP %s is not a usable address of pod CIDR 10.50.1.0/24", unusable[i]);
		assert_string_equal(err->msg, want);
		kd_error_free(err);
		err = NULL;
	}
	assert_int_equal(kd_ipam_reserve(p, "pear", &ip, &err), -EINVAL);
	assert_string_equal(err->msg, "pod IP \"pear\" is not an IPv4 address");
	kd_error_free(err);
	/* a reserved address is skipped by allocation; the cursor does not move */
	assert_int_equal(kd_ipam_reserve(p, "10.50.1.2", &ip, NULL), 0);
	assert_int_equal(kd_ipam_alloc(p, &ip, NULL), 0);
	assert_int_equal(ip, IP(10, 50, 1, 3));
	assert_int_equal(kd_ipam_pool_used(p), 3);
	kd_ipam_free(ipam);
}

static void test_pool_set_and_overlaps(void **state)
{
	(void)state;
	struct kd_ipam *ipam = kd_ipam_new(NULL);
	struct kd_error *err = NULL;
	struct kd_ipam_pool *p = kd_ipam_pool_get(ipam, "10.50.1.0/24", &err);
	assert_non_null(p);
	assert_ptr_equal(kd_ipam_pool_get(ipam, "10.50.1.9/24", &err), p); /* same network */
	assert_non_null(kd_ipam_pool_get(ipam, "10.51.0.0/16", &err));     /* disjoint */
	uint32_t ip;
	assert_int_equal(kd_ipam_alloc(p, &ip, NULL), 0);
	assert_int_equal(kd_ipam_alloc(p, &ip, NULL), 0);
	/* busy overlapping pool: refused, both ways */
	assert_null(kd_ipam_pool_get(ipam, "10.50.0.0/16", &err));
	assert_int_equal(err->errnum, EINVAL);
	assert_string_equal(err->msg, "pod CIDR 10.50.0.0/16 overlaps 10.50.1.0/24, which still "
	                              "has 2 addresses in use");
	kd_error_free(err);
	err = NULL;
	assert_null(kd_ipam_pool_get(ipam, "10.50.1.128/25", &err));
	assert_non_null(strstr(err->msg, "overlaps 10.50.1.0/24"));
	kd_error_free(err);
	err = NULL;
	assert_null(kd_ipam_pool_get(ipam, "banana", &err));
	assert_string_equal(err->msg,
	                    "pod CIDR \"banana\" is not an IPv4 CIDR with a prefix length "
	                    "between 8 and 30");
	kd_error_free(err);
	err = NULL;
	/* idle overlapping pool: dropped, the new one starts afresh */
	kd_ipam_release(p, IP(10, 50, 1, 2));
	kd_ipam_release(p, IP(10, 50, 1, 3));
	struct kd_ipam_pool *q = kd_ipam_pool_get(ipam, "10.50.0.0/16", &err);
	assert_non_null(q);
	assert_string_equal(kd_ipam_pool_cidr(q), "10.50.0.0/16");
	assert_int_equal(kd_ipam_pool_used(q), 0);
	assert_int_equal(kd_ipam_alloc(q, &ip, NULL), 0);
	assert_int_equal(ip, IP(10, 50, 0, 2));
	/* the top of the address space: no overflow in the overlap test */
	struct kd_ipam_pool *top = kd_ipam_pool_get(ipam, "255.255.255.0/24", &err);
	assert_non_null(top);
	assert_ptr_equal(kd_ipam_pool_get(ipam, "255.255.255.0/24", &err), top);
	assert_int_equal(kd_ipam_alloc(top, &ip, NULL), 0);
	assert_int_equal(ip, IP(255, 255, 255, 2));
	assert_null(err);
	kd_ipam_free(ipam);
}

static void test_random_start(void **state)
{
	(void)state;
	/* 20 fresh /16 pools all starting at .0.2 by chance: probability 65533^-19 */
	struct kd_ipam_options opts = {.random_start = true};
	bool moved = false;
	for (int i = 0; i < 20; i++) {
		struct kd_ipam *ipam = kd_ipam_new(&opts);
		struct kd_ipam_pool *p = kd_ipam_pool_get(ipam, "10.60.0.0/16", NULL);
		assert_non_null(p);
		uint32_t ip;
		assert_int_equal(kd_ipam_alloc(p, &ip, NULL), 0);
		assert_true(ip >= IP(10, 60, 0, 2) && ip <= IP(10, 60, 255, 254));
		if (ip != IP(10, 60, 0, 2))
			moved = true;
		kd_ipam_free(ipam);
	}
	assert_true(moved);
	/* a random start still hands out every usable address exactly once, then exhausts */
	struct kd_ipam *ipam = kd_ipam_new(&opts);
	struct kd_ipam_pool *p = kd_ipam_pool_get(ipam, "10.61.0.0/26", NULL);
	uint8_t seen[64] = {0};
	for (int i = 0; i < 61; i++) {
		uint32_t ip;
		assert_int_equal(kd_ipam_alloc(p, &ip, NULL), 0);
		uint32_t off = ip - IP(10, 61, 0, 0);
		assert_true(off >= 2 && off <= 62);
		assert_int_equal(seen[off], 0);
		seen[off] = 1;
	}
	uint32_t ip;
	assert_int_equal(kd_ipam_alloc(p, &ip, NULL), -EADDRNOTAVAIL);
	kd_ipam_free(ipam);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_cidr),
	    cmocka_unit_test(test_alloc_skips_reserved_and_exhausts),
	    cmocka_unit_test(test_next_fit_reuses_after_wrap),
	    cmocka_unit_test(test_reserve),
	    cmocka_unit_test(test_pool_set_and_overlaps),
	    cmocka_unit_test(test_random_start),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
