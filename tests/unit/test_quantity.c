/* Unit tests for lib/kd_quantity.c: Kubernetes quantities as integers, rounded up as
 * resource.Quantity's Value()/MilliValue() do; malformed, negative and out-of-range text refused
 * without touching the output; the same from JSON values (strings, non-negative integers) and
 * from members of JSON objects (errors naming the member and its value). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "kd/quantity.h"

static void quantities_round_up_like_kubernetes(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		bool milli;
		int64_t want;
	} ok[] = {
	    {"0", false, 0},
	    {"1", false, 1},
	    {"1", true, 1000},
	    {"100m", true, 100},
	    {"100m", false, 1}, /* rounds up */
	    {"1.5", true, 1500},
	    {"0.1", true, 100},
	    {".5", true, 500},
	    {"2.", false, 2},
	    {"+3", false, 3},
	    {"1k", false, 1000},
	    {"1Ki", false, 1024},
	    {"128974848", false, 128974848},
	    {"129e6", false, 129000000},
	    {"129M", false, 129000000},
	    {"123Mi", false, 128974848},
	    {"1.5Gi", false, 1610612736},
	    {"8Ei", false, INT64_MAX}, /* 2^63 does not fit */
	    {"1E", false, 1000000000000000000},
	    {"1E3", false, 1000},
	    {"1e-3", true, 1},
	    {"250u", true, 1}, /* 0.25m rounds up to 1m */
	    {"1n", false, 1},
	    {"3900m", true, 3900},
	    {"0.000", true, 0},
	    {"0000000000000000000000000001", false, 1},
	    {"1.000000000000000000000000001", false, 2}, /* a dropped digit still rounds up */
	    {"9223372036854775807", false, INT64_MAX},
	    {"110", false, 110},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int64_t v = -7;
		int rc = kd_quantity_parse(ok[i].s, ok[i].milli, &v);
		if (ok[i].want == INT64_MAX && strcmp(ok[i].s, "8Ei") == 0) {
			assert_int_equal(rc, -ERANGE);
			assert_int_equal(v, -7);
			continue;
		}
		if (rc != 0 || v != ok[i].want)
			fail_msg("%s (milli %d): rc %d value %lld, want %lld", ok[i].s, ok[i].milli,
			         rc, (long long)v, (long long)ok[i].want);
	}
	static const char *const bad[] = {"",  "-1",   "abc", "1x", "1KiB", "1ki", "1e",  "e3",
	                                  ".", "1..2", "1 ",  " 1", "1m5",  "++1", "1e+", "Mi"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t v = -7;
		if (kd_quantity_parse(bad[i], false, &v) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_int_equal(v, -7);
	}
	int64_t v;
	assert_int_equal(kd_quantity_parse("9223372036854775808", false, &v), -ERANGE);
	assert_int_equal(kd_quantity_parse("9223372036854775807", true, &v), -ERANGE);
	assert_int_equal(kd_quantity_parse("1e400", false, &v), -ERANGE);
	assert_int_equal(kd_quantity_parse("1e-400", false, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(kd_quantity_parse(NULL, false, &v), -EINVAL);
}

static void json_quantities_are_strings_or_non_negative_integers(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		bool milli;
		int rc;
		int64_t want;
	} cases[] = {
	    {"\"250m\"", true, 0, 250},
	    {"\"2Gi\"", false, 0, 2147483648},
	    {"4", false, 0, 4},
	    {"4", true, 0, 4000},
	    {"0", true, 0, 0},
	    {"9223372036854775", true, 0, 9223372036854775000},
	    {"9223372036854776", true, -ERANGE, -7},
	    {"-1", false, -EINVAL, -7},
	    {"1.5", false, -EINVAL, -7}, /* a JSON double: not a quantity */
	    {"true", false, -EINVAL, -7},
	    {"null", false, -EINVAL, -7},
	    {"{}", false, -EINVAL, -7},
	    {"\"lots\"", false, -EINVAL, -7},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json_object *v = json_tokener_parse(cases[i].json);
		int64_t q = -7;
		int rc = kd_quantity_parse_json(v, cases[i].milli, &q);
		if (rc != cases[i].rc || q != cases[i].want)
			fail_msg("%s (milli %d): rc %d value %lld, want rc %d value %lld",
			         cases[i].json, cases[i].milli, rc, (long long)q, cases[i].rc,
			         (long long)cases[i].want);
		json_object_put(v);
	}
	int64_t q = -7;
	assert_int_equal(kd_quantity_parse_json(NULL, false, &q), -EINVAL);
	assert_int_equal(q, -7);
}

static void map_members_are_read_or_refused_with_their_name(void **state)
{
	(void)state;
	static const struct {
		const char *map;
		bool milli;
		int rc;
		int64_t want;
		const char *msg;
	} cases[] = {
	    {"{\"cpu\":\"250m\"}", true, 0, 250, NULL},
	    {"{\"cpu\":3}", true, 0, 3000, NULL},
	    {"{\"cpu\":null}", true, 0, 0, NULL}, /* null: absent */
	    {"{\"memory\":\"1Gi\"}", true, 0, 0, NULL},
	    {"{}", true, 0, 0, NULL},
	    {"[\"cpu\"]", true, 0, 0, NULL}, /* not an object: empty */
	    {"\"cpu\"", true, 0, 0, NULL},
	    {"{\"cpu\":\"lots\"}", true, -EINVAL, -7, "limits.cpu \"lots\": not a quantity"},
	    {"{\"cpu\":-1}", true, -EINVAL, -7, "limits.cpu \"-1\": not a quantity"},
	    {"{\"cpu\":{\"a\":1}}", true, -EINVAL, -7,
	     "limits.cpu \"{ \"a\": 1 }\": not a quantity"},
	    {"{\"cpu\":\"10E\"}", true, -ERANGE, -7, "limits.cpu \"10E\": out of range"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json_object *map = json_tokener_parse(cases[i].map);
		int64_t q = -7;
		struct kd_error *err = NULL;
		int rc = kd_quantity_member(map, "cpu", cases[i].milli, "limits", &q, &err);
		const char *msg = err ? kd_error_msg(err) : NULL;
		if (rc != cases[i].rc || q != cases[i].want ||
		    (cases[i].msg ? !msg || strcmp(msg, cases[i].msg) != 0 : msg != NULL))
			fail_msg("%s: rc %d value %lld error %s", cases[i].map, rc, (long long)q,
			         msg ? msg : "none");
		if (rc < 0) /* the same without an error to fill */
			assert_int_equal(kd_quantity_member(map, "cpu", true, "limits", &q, NULL),
			                 rc);
		kd_error_free(err);
		json_object_put(map);
	}
	int64_t q = -7;
	assert_int_equal(kd_quantity_member(NULL, "cpu", true, "limits", &q, NULL), 0);
	assert_int_equal(q, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(quantities_round_up_like_kubernetes),
	    cmocka_unit_test(json_quantities_are_strings_or_non_negative_integers),
	    cmocka_unit_test(map_members_are_read_or_refused_with_their_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
