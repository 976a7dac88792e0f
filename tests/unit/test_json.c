/* Unit tests for kd_json: path getters, strict capped parsing, cleanup attribute. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "kd/json.h"

static const char *doc =
    "{\"metadata\":{\"name\":\"p1\",\"namespace\":\"default\",\"generation\":7,"
    "\"resourceVersion\":\"12345\",\"labels\":{\"app.kubernetes.io/name\":\"web\"}},"
    "\"spec\":{\"replicas\":\"3\",\"paused\":false,\"ok\":\"true\",\"n\":null},"
    "\"items\":[{\"name\":\"a\"},{\"name\":\"b\"}]}";

static struct json_object *parse_doc(void)
{
	struct json_object *o = NULL;
	assert_int_equal(kd_json_parse(doc, strlen(doc), 0, "doc", &o, NULL), 0);
	assert_non_null(o);
	return o;
}

static void get_string_follows_dotted_paths(void **state)
{
	(void)state;
	kd_autojson struct json_object *o = parse_doc();
	assert_string_equal(kd_json_get_string(o, "metadata.name"), "p1");
	assert_string_equal(kd_json_get_string(o, "metadata.labels.app\\.kubernetes\\.io/name"),
	                    "web");
	assert_string_equal(kd_json_get_string(o, "items.1.name"), "b");
	assert_null(kd_json_get_string(o, "items.2.name"));
	assert_null(kd_json_get_string(o, "metadata.generation")); /* not a string */
	assert_null(kd_json_get_string(o, "metadata.missing"));
	assert_null(kd_json_get_string(o, "metadata.name.deeper"));
	assert_null(kd_json_get_string(NULL, "metadata.name"));
	assert_ptr_equal(kd_json_get(o, ""), o);
}

static void typed_getters_check_types(void **state)
{
	(void)state;
	kd_autojson struct json_object *o = parse_doc();
	int64_t v = -1;
	assert_int_equal(kd_json_get_int64(o, "metadata.generation", &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(kd_json_get_int64(o, "spec.replicas", &v), 0); /* quoted int */
	assert_int_equal(v, 3);
	v = 99;
	assert_int_equal(kd_json_get_int64(o, "metadata.name", &v), -EINVAL);
	assert_int_equal(kd_json_get_int64(o, "spec.nope", &v), -ENOENT);
	assert_int_equal(kd_json_get_int64(o, "spec.n", &v), -ENOENT); /* JSON null */
	assert_int_equal(v, 99);                                       /* untouched on error */
	bool b = true;
	assert_int_equal(kd_json_get_bool(o, "spec.paused", &b), 0);
	assert_false(b);
	assert_int_equal(kd_json_get_bool(o, "spec.ok", &b), 0);
	assert_true(b);
	assert_int_equal(kd_json_get_bool(o, "metadata.name", &b), -EINVAL);
	assert_non_null(kd_json_get_object(o, "metadata.labels"));
	assert_null(kd_json_get_object(o, "items"));
	assert_non_null(kd_json_get_array(o, "items"));
	assert_int_equal(json_object_array_length(kd_json_get_array(o, "items")), 2);
}

static void parse_rejects_trailing_garbage(void **state)
{
	(void)state;
	struct kd_error *err = NULL;
	struct json_object *o = NULL;
	const char *s = "{\"a\":1} x";
	assert_int_equal(kd_json_parse(s, strlen(s), 0, "response", &o, &err), -EINVAL);
	assert_null(o);
	assert_non_null(strstr(err->msg, "response: trailing garbage at offset 8"));
	kd_error_free(err);
	err = NULL;
	s = "{\"a\":1}{\"b\":2}";
	assert_int_equal(kd_json_parse(s, strlen(s), 0, "r", &o, &err), -EINVAL);
	kd_error_free(err);
	err = NULL;
	s = "  {\"a\":1}\n\t ";
	assert_int_equal(kd_json_parse(s, strlen(s), 0, "r", &o, &err), 0);
	assert_null(err);
	json_object_put(o);
}

static void parse_rejects_invalid_truncated_and_empty(void **state)
{
	(void)state;
	const char *bad[] = {"{\"a\":}", "{\"a\":1", "", "   ", "[1,]", "{\"a\" 1}"};
	for (size_t i = 0; i < KD_ARRAY_SIZE(bad); i++) {
		struct kd_error *err = NULL;
		struct json_object *o = NULL;
		assert_int_equal(kd_json_parse(bad[i], strlen(bad[i]), 0, "x", &o, &err), -EINVAL);
		assert_null(o);
		assert_non_null(err);
		assert_int_equal(strncmp(err->msg, "x: ", 3), 0);
		kd_error_free(err);
	}
}

static void parse_handles_scalars_and_unterminated_buffers(void **state)
{
	(void)state;
	struct json_object *o = NULL;
	assert_int_equal(kd_json_parse("12", 2, 0, "n", &o, NULL), 0);
	assert_int_equal(json_object_get_int(o), 12);
	json_object_put(o);
	/* Only len bytes are read: "[1]" followed by bytes that are not part of the input. */
	const char buf[] = {'[', '1', ']', 'z', 'z'};
	assert_int_equal(kd_json_parse(buf, 3, 0, "b", &o, NULL), 0);
	assert_int_equal(json_object_array_length(o), 1);
	json_object_put(o);
}

static void parse_enforces_size_cap(void **state)
{
	(void)state;
	struct kd_error *err = NULL;
	struct json_object *o = NULL;
	const char *s = "{\"abcdefghij\":1}";
	assert_int_equal(kd_json_parse(s, strlen(s), 10, "big", &o, &err), -EMSGSIZE);
	assert_non_null(strstr(err->msg, "exceeds the 10 byte limit"));
	kd_error_free(err);
	assert_int_equal(kd_json_parse(s, strlen(s), strlen(s), "big", &o, NULL), 0);
	json_object_put(o);
}

static void parse_limits_depth(void **state)
{
	(void)state;
	char deep[2 * (KD_JSON_MAX_DEPTH + 10) + 1];
	size_t n = 0;
	for (int i = 0; i < KD_JSON_MAX_DEPTH + 10; i++)
		deep[n++] = '[';
	for (int i = 0; i < KD_JSON_MAX_DEPTH + 10; i++)
		deep[n++] = ']';
	struct kd_error *err = NULL;
	struct json_object *o = NULL;
	assert_int_equal(kd_json_parse(deep, n, 0, "deep", &o, &err), -EINVAL);
	kd_error_free(err);
}

static void dumps_is_compact(void **state)
{
	(void)state;
	kd_autojson struct json_object *o = json_object_new_object();
	json_object_object_add(o, "path", json_object_new_string("/a/b"));
	kd_autofree char *s = kd_json_dumps(o);
	assert_string_equal(s, "{\"path\":\"/a/b\"}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(get_string_follows_dotted_paths),
	    cmocka_unit_test(typed_getters_check_types),
	    cmocka_unit_test(parse_rejects_trailing_garbage),
	    cmocka_unit_test(parse_rejects_invalid_truncated_and_empty),
	    cmocka_unit_test(parse_handles_scalars_and_unterminated_buffers),
	    cmocka_unit_test(parse_enforces_size_cap),
	    cmocka_unit_test(parse_limits_depth),
	    cmocka_unit_test(dumps_is_compact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
