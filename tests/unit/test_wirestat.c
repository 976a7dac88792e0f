/* Unit tests for kd_wirestat: Knative's WireStatMessages (protobuf, known-answer bytes built
 * from stat.proto's field numbers) and our JSON stat/scale frames. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "kd/wirestat.h"

/* WireStatMessages{[{namespace:"demo", name:"hello-00001", stat:{pod_name:"activator-0",
 * average_concurrent_requests:1, request_count:1, timestamp:1763920000}}]} as gogo marshals it
 * (fields in number order, zero fields omitted). */
static const uint8_t poke[] = {
    0x0a, 0x3a,                        /* messages, 58 bytes */
    0x0a, 0x04, 'd',  'e',  'm',  'o', /* namespace */
    0x12, 0x0b, 'h',  'e',  'l',  'l',  'o', '-',  '0',  '0', '0', '0', '1', /* name */
    0x1a, 0x25,                                                              /* stat, 37 bytes */
    0x0a, 0x0b, 'a',  'c',  't',  'i',  'v', 'a',  't',  'o', 'r', '-', '0', /* pod_name */
    0x11, 0,    0,    0,    0,    0,    0,   0xf0, 0x3f, /* avg concurrency 1.0 */
    0x21, 0,    0,    0,    0,    0,    0,   0xf0, 0x3f, /* request_count 1.0 */
    0x38, 0x80, 0x91, 0x8d, 0xc9, 0x06,                  /* timestamp */
};

static void decodes_knative_poke(void **state)
{
	(void)state;
	struct kd_statmsg_list l = {0};
	assert_int_equal(kd_wirestat_decode(poke, sizeof(poke), &l, NULL), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.v[0].type, KD_STATMSG_STAT);
	assert_string_equal(l.v[0].ns, "demo");
	assert_string_equal(l.v[0].revision, "hello-00001");
	assert_string_equal(l.v[0].pod, "activator-0");
	assert_true(l.v[0].has_stat);
	assert_true(l.v[0].concurrency == 1.0);
	assert_true(l.v[0].requests == 1.0);
	assert_true(l.v[0].proxied_concurrency == 0.0);
	assert_int_equal(l.v[0].timestamp, 1763920000);
	/* the encoder produces the same bytes */
	size_t len = 0;
	uint8_t *enc = kd_wirestat_encode(l.v, l.n, &len);
	assert_int_equal(len, sizeof(poke));
	assert_memory_equal(enc, poke, sizeof(poke));
	free(enc);
	kd_statmsg_list_fini(&l);
}

static void skips_unknown_fields_and_tolerates_order(void **state)
{
	(void)state;
	/* stat before name, an unknown varint field 9 and fixed32 field 10 in the message */
	const uint8_t b[] = {0x0a, 0x19, 0x1a, 0x09, 0x19, 0,    0,
	                     0,    0,    0,    0,    0,    0x40, /* proxied 2 */
	                     0x48, 0x96, 0x01,                   /* f9 = 150 */
	                     0x55, 1,    2,    3,    4,          /* f10 fixed32 */
	                     0x12, 0x01, 'r',  0x0a, 0x01, 'n'};
	struct kd_statmsg_list l = {0};
	assert_int_equal(kd_wirestat_decode(b, sizeof(b), &l, NULL), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0].ns, "n");
	assert_string_equal(l.v[0].revision, "r");
	assert_true(l.v[0].proxied_concurrency == 2.0);
	assert_null(l.v[0].pod);
	/* an entry without stat decodes with has_stat false (the server skips it) */
	const uint8_t nostat[] = {0x0a, 0x03, 0x0a, 0x01, 'x'};
	assert_int_equal(kd_wirestat_decode(nostat, sizeof(nostat), &l, NULL), 0);
	assert_int_equal(l.n, 2);
	assert_false(l.v[1].has_stat);
	assert_string_equal(l.v[1].revision, "");
	kd_statmsg_list_fini(&l);
	/* empty frame: no messages */
	assert_int_equal(kd_wirestat_decode(b, 0, &l, NULL), 0);
	assert_int_equal(l.n, 0);
}

static void rejects_malformed_frames(void **state)
{
	(void)state;
	struct kd_statmsg_list l = {0};
	/* one good message first: nothing may be appended on failure */
	assert_int_equal(kd_wirestat_decode(poke, sizeof(poke), &l, NULL), 0);
	const struct {
		const char *what;
		uint8_t b[16];
		size_t n;
	} bad[] = {
	    {"truncated length", {0x0a, 0x05, 0x0a}, 3},
	    {"truncated double", {0x0a, 0x05, 0x1a, 0x03, 0x11, 0, 0}, 7},
	    {"group wire type", {0x0b, 0x0c}, 2},
	    {"field 0", {0x02, 0x00}, 2},
	    {"overlong varint",
	     {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	     11},
	    {"NUL in string", {0x0a, 0x04, 0x0a, 0x02, 'a', 0}, 6},
	    {"NaN", {0x0a, 0x0b, 0x1a, 0x09, 0x11, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f}, 13},
	    {"bad tag", {0x80}, 1},
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(bad); i++) {
		struct kd_error *err = NULL;
		int rc = kd_wirestat_decode(bad[i].b, bad[i].n, &l, &err);
		if (rc != -EINVAL)
			fail_msg("%s: rc %d", bad[i].what, rc);
		assert_non_null(strstr(kd_error_msg(err), "wirestat"));
		kd_error_free(err);
		assert_int_equal(l.n, 1);
	}
	/* a string longer than KD_WIRESTAT_MAX_STR */
	uint8_t big[300] = {0x0a, 0xa8, 0x02, 0x0a, 0xa5, 0x02};
	memset(big + 6, 'a', 293);
	assert_int_equal(kd_wirestat_decode(big, 299, &l, NULL), -EINVAL);
	kd_statmsg_list_fini(&l);
}

static void too_many_messages_is_e2big(void **state)
{
	(void)state;
	size_t n = KD_WIRESTAT_MAX_MSGS + 1;
	uint8_t *b = kd_xmalloc(n * 2);
	for (size_t i = 0; i < n; i++) {
		b[2 * i] = 0x0a;
		b[2 * i + 1] = 0x00;
	}
	struct kd_statmsg_list l = {0};
	assert_int_equal(kd_wirestat_decode(b, n * 2, &l, NULL), -E2BIG);
	assert_int_equal(l.n, 0);
	assert_int_equal(kd_wirestat_decode(b, (n - 1) * 2, &l, NULL), 0);
	assert_int_equal(l.n, n - 1);
	kd_statmsg_list_fini(&l);
	free(b);
}

static void json_stat_and_scale(void **state)
{
	(void)state;
	const char *s =
	    "[{\"type\":\"stat\",\"namespace\":\"demo\",\"revision\":\"r1\",\"pod\":\"a\","
	    "\"concurrency\":1.5,\"requests\":3,\"timestamp\":1763920000},"
	    "{\"type\":\"scale\",\"namespace\":\"demo\",\"revision\":\"r1\",\"desired\":50}]";
	struct kd_statmsg_list l = {0};
	assert_int_equal(kd_statmsg_decode_json(s, strlen(s), &l, NULL), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.v[0].type, KD_STATMSG_STAT);
	assert_true(l.v[0].concurrency == 1.5);
	assert_true(l.v[0].requests == 3);
	assert_string_equal(l.v[0].pod, "a");
	assert_int_equal(l.v[0].timestamp, 1763920000);
	assert_int_equal(l.v[1].type, KD_STATMSG_SCALE);
	assert_int_equal(l.v[1].desired, 50);
	assert_string_equal(l.v[1].revision, "r1");
	const char *one = "{\"type\":\"stat\",\"namespace\":\"d\",\"revision\":\"r\"}";
	assert_int_equal(kd_statmsg_decode_json(one, strlen(one), &l, NULL), 0);
	assert_int_equal(l.n, 3);
	assert_true(l.v[2].concurrency == 0);
	const char *bad[] = {
	    "{\"type\":\"scale\",\"namespace\":\"d\",\"revision\":\"r\",\"desired\":-1}",
	    "{\"type\":\"scale\",\"namespace\":\"d\",\"revision\":\"r\",\"desired\":1.5}",
	    "{\"type\":\"scale\",\"namespace\":\"d\",\"revision\":\"r\"}",
	    "{\"type\":\"scale\",\"namespace\":\"d\",\"revision\":\"r\",\"desired\":\"5\"}",
	    "{\"type\":\"stat\",\"namespace\":\"d\"}",
	    "{\"type\":\"nope\",\"namespace\":\"d\",\"revision\":\"r\"}",
	    "{\"type\":\"stat\",\"namespace\":\"d\",\"revision\":\"r\",\"concurrency\":-2}",
	    "[{\"type\":\"stat\",\"namespace\":\"d\",\"revision\":\"r\"}, 5]",
	    "{\"type\":\"stat\"",
	    "42",
	    "",
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(bad); i++) {
		struct kd_error *err = NULL;
		if (kd_statmsg_decode_json(bad[i], strlen(bad[i]), &l, &err) >= 0)
			fail_msg("accepted %s", bad[i]);
		assert_non_null(err);
		kd_error_free(err);
		assert_int_equal(l.n, 3);
	}
	kd_statmsg_list_fini(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(decodes_knative_poke),
	    cmocka_unit_test(skips_unknown_fields_and_tolerates_order),
	    cmocka_unit_test(rejects_malformed_frames),
	    cmocka_unit_test(too_many_messages_is_e2big),
	    cmocka_unit_test(json_stat_and_scale),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
