/* Unit tests for lib/kd_jsonstrict: the tree of every value type, member lookup (last one wins,
 * non-objects), the depth limit, strictness (control characters, leading zeros, trailing bytes),
 * escapes (surrogates, embedded NUL with exact lengths), integer saturation and error texts. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kd/jsonstrict.h"

static struct kd_jsonstrict *parse_ok(const char *text, unsigned depth)
{
	struct kd_jsonstrict *doc = NULL;
	struct kd_error *err = NULL;
	int rc = kd_jsonstrict_parse(text, strlen(text), depth, "frame", &doc, &err);
	if (rc < 0)
		fail_msg("%s: %s", text, kd_error_msg(err));
	assert_null(err);
	assert_non_null(doc);
	return doc;
}

static void parse_fails(const char *text, unsigned depth, const char *msg)
{
	struct kd_jsonstrict *doc = NULL;
	struct kd_error *err = NULL;
	assert_int_equal(kd_jsonstrict_parse(text, strlen(text), depth, "frame", &doc, &err),
	                 -EINVAL);
	assert_null(doc);
	assert_non_null(err);
	assert_string_equal(err->msg, msg);
	kd_error_free(err);
}

static void tree_of_every_type(void **state)
{
	(void)state;
	struct kd_jsonstrict *doc =
	    parse_ok(" {\"s\":\"a\\nb\",\"i\":-12,\"d\":1.5e3,\"t\":true,\"f\":false,\"z\":null,"
	             "\"a\":[1,[],{}]} ",
	             8);
	const struct kd_jsonstrict_value *r = kd_jsonstrict_root(doc);
	assert_int_equal(r->type, KD_JSONSTRICT_OBJECT);
	assert_int_equal(r->n, 7);
	const struct kd_jsonstrict_value *v = kd_jsonstrict_member(r, "s");
	assert_int_equal(v->type, KD_JSONSTRICT_STRING);
	assert_string_equal(v->s, "a\nb");
	assert_int_equal(v->n, 3);
	assert_int_equal(v->name_len, 1);
	assert_int_equal(kd_jsonstrict_member(r, "i")->i, -12);
	assert_string_equal(kd_jsonstrict_type_name(kd_jsonstrict_member(r, "d")), "double");
	assert_true(kd_jsonstrict_member(r, "t")->b);
	assert_false(kd_jsonstrict_member(r, "f")->b);
	assert_string_equal(kd_jsonstrict_type_name(kd_jsonstrict_member(r, "f")), "boolean");
	assert_int_equal(kd_jsonstrict_member(r, "z")->type, KD_JSONSTRICT_NULL);
	const struct kd_jsonstrict_value *a = kd_jsonstrict_member(r, "a");
	assert_int_equal(a->type, KD_JSONSTRICT_ARRAY);
	assert_int_equal(a->n, 3);
	assert_int_equal(a->first->i, 1);
	assert_int_equal(a->first->next->type, KD_JSONSTRICT_ARRAY);
	assert_int_equal(a->first->next->n, 0);
	assert_string_equal(kd_jsonstrict_type_name(a->first->next->next), "object");
	assert_null(a->first->next->next->next);
	assert_null(kd_jsonstrict_member(r, "missing"));
	assert_null(kd_jsonstrict_member(a, "s")); /* not an object */
	kd_jsonstrict_free(doc);
	kd_jsonstrict_free(NULL);
}

static void repeated_member_last_wins(void **state)
{
	(void)state;
	struct kd_jsonstrict *doc = parse_ok("{\"k\":1,\"kk\":2,\"k\":3}", 8);
	const struct kd_jsonstrict_value *r = kd_jsonstrict_root(doc);
	assert_int_equal(r->n, 3);
	assert_int_equal(kd_jsonstrict_member(r, "k")->i, 3);
	assert_int_equal(kd_jsonstrict_member(r, "kk")->i, 2);
	kd_jsonstrict_free(doc);
}

static void depth_limit(void **state)
{
	(void)state;
	kd_jsonstrict_free(parse_ok("[[[]]]", 3));
	parse_fails("[[[[]]]]", 3, "frame is not valid JSON: nesting too deep at byte 3");
}

static void strictness_and_error_texts(void **state)
{
	(void)state;
	parse_fails("{\"a\":\"x\ty\"}", 8,
	            "frame is not valid JSON: control character in string at byte 7");
	parse_fails("[01]", 8, "frame is not valid JSON: invalid number (leading zero) at byte 2");
	parse_fails("{} x", 8, "frame has trailing bytes at byte 3");
	parse_fails("{\"a\":", 8, "frame is truncated JSON (unexpected end at byte 5)");
	parse_fails("[tru", 8, "frame is truncated JSON (truncated literal at byte 4)");
	parse_fails("[1,]", 8, "frame is not valid JSON: unexpected character at byte 3");
	parse_fails("{\"a\" 1}", 8, "frame is not valid JSON: expected ':' at byte 5");
	parse_fails("\"\\x\"", 8, "frame is not valid JSON: invalid escape in string at byte 2");
	parse_fails("", 8, "frame is truncated JSON (unexpected end at byte 0)");
}

static void escapes_and_exact_lengths(void **state)
{
	(void)state;
	/* pair -> U+1F600, lone surrogate -> U+FFFD, \u0000 -> an embedded NUL */
	struct kd_jsonstrict *doc = parse_ok("[\"\\ud83d\\ude00\",\"\\ud800x\",\"a\\u0000b\"]", 8);
	const struct kd_jsonstrict_value *v = kd_jsonstrict_root(doc)->first;
	assert_int_equal(v->n, 4);
	assert_memory_equal(v->s, "\xf0\x9f\x98\x80", 4);
	v = v->next;
	assert_string_equal(v->s, "\xef\xbf\xbdx");
	v = v->next;
	assert_int_equal(v->n, 3);
	assert_int_equal(strlen(v->s), 1);
	assert_memory_equal(v->s, "a\0b", 3);
	kd_jsonstrict_free(doc);
}

static void integers_saturate(void **state)
{
	(void)state;
	struct kd_jsonstrict *doc =
	    parse_ok("[9223372036854775807,9223372036854775808,-9223372036854775809,-0]", 8);
	const struct kd_jsonstrict_value *v = kd_jsonstrict_root(doc)->first;
	assert_true(v->i == INT64_MAX);
	assert_true(v->next->i == INT64_MAX);
	assert_true(v->next->next->i == INT64_MIN);
	assert_int_equal(v->next->next->next->i, 0);
	kd_jsonstrict_free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(tree_of_every_type),
	    cmocka_unit_test(repeated_member_last_wins),
	    cmocka_unit_test(depth_limit),
	    cmocka_unit_test(strictness_and_error_texts),
	    cmocka_unit_test(escapes_and_exact_lengths),
	    cmocka_unit_test(integers_saturate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
