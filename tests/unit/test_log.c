/* Unit tests for kd_log: level filtering, text and JSON line formats, level parsing, and the
 * object key of kd_log_key_* (JSON field knative.dev/key, text prefix "[ns/name] "). */
#include <errno.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kd/log.h"

static char *capture(enum kd_log_format fmt, enum kd_log_level lvl, void (*emit)(void))
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	kd_log_init("kd-test", lvl, fmt);
	kd_log_set_stream(f);
	emit();
	kd_log_set_stream(NULL);
	fclose(f);
	return buf;
}

static void emit_all(void)
{
	kd_log_error("boom %d", 1);
	kd_log_warn("careful");
	kd_log_info("hello \"world\"\n");
	kd_log_debug("hidden at info");
}

static void text_filters_by_level(void **state)
{
	(void)state;
	char *out = capture(KD_LOG_TEXT, KD_LOG_INFO, emit_all);
	assert_non_null(strstr(out, "ERROR kd-test: boom 1\n"));
	assert_non_null(strstr(out, "WARN  kd-test: careful\n"));
	assert_non_null(strstr(out, "INFO  kd-test: hello"));
	assert_null(strstr(out, "hidden"));
	free(out);
	out = capture(KD_LOG_TEXT, KD_LOG_ERROR, emit_all);
	assert_non_null(strstr(out, "boom"));
	assert_null(strstr(out, "careful"));
	free(out);
}

static void json_lines_parse(void **state)
{
	(void)state;
	char *out = capture(KD_LOG_JSON, KD_LOG_DEBUG, emit_all);
	int lines = 0;
	char *save = NULL;
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_object *o = json_tokener_parse(line);
		assert_non_null(o);
		json_object *comp = NULL, *msg = NULL, *lvl = NULL;
		assert_true(json_object_object_get_ex(o, "component", &comp));
		assert_true(json_object_object_get_ex(o, "msg", &msg));
		assert_true(json_object_object_get_ex(o, "level", &lvl));
		assert_string_equal(json_object_get_string(comp), "kd-test");
		if (lines == 2) {
			assert_string_equal(json_object_get_string(msg), "hello \"world\"\n");
			assert_string_equal(json_object_get_string(lvl), "info");
		}
		json_object_put(o);
		lines++;
	}
	assert_int_equal(lines, 4);
	free(out);
}

static void parse_levels_and_formats(void **state)
{
	(void)state;
	enum kd_log_level l;
	enum kd_log_format f;
	assert_int_equal(kd_log_level_parse("DEBUG", &l), 0);
	assert_int_equal(l, KD_LOG_DEBUG);
	assert_int_equal(kd_log_level_parse("warning", &l), 0);
	assert_int_equal(l, KD_LOG_WARN);
	assert_int_equal(kd_log_level_parse("loud", &l), -EINVAL);
	assert_int_equal(kd_log_level_parse(NULL, &l), -EINVAL);
	assert_int_equal(kd_log_format_parse("json", &f), 0);
	assert_int_equal(f, KD_LOG_JSON);
	assert_int_equal(kd_log_format_parse("xml", &f), -EINVAL);
}

static void emit_keyed(void)
{
	kd_log_key_info("team-a/hello-00001", "pa: desired %d -> %d (%s)", 0, 1, "tick");
	kd_log_key_warn("we\"ird/na\\me\n", "route: \"%s\"", "odd");
	kd_log_key_info(NULL, "no key");
	kd_log_key_debug("team-a/hidden", "hidden at info");
}

static void key_in_json_and_text(void **state)
{
	(void)state;
	char *out = capture(KD_LOG_JSON, KD_LOG_INFO, emit_keyed);
	static const char *const want_key[] = {"team-a/hello-00001", "we\"ird/na\\me\n", NULL};
	static const char *const want_msg[] = {"pa: desired 0 -> 1 (tick)", "route: \"odd\"",
	                                       "no key"};
	int lines = 0;
	char *save = NULL;
	char *line = strtok_r(out, "\n", &save);
	for (; line && lines < 3; line = strtok_r(NULL, "\n", &save)) {
		json_object *o = json_tokener_parse(line); /* one valid JSON object per line */
		if (!o)
			fail_msg("not JSON: %s", line);
		json_object *key = NULL, *msg = NULL;
		bool has = json_object_object_get_ex(o, KD_LOG_KEY_FIELD, &key);
		if (want_key[lines]) {
			assert_true(has);
			assert_string_equal(json_object_get_string(key), want_key[lines]);
		} else {
			assert_false(has);
		}
		assert_true(json_object_object_get_ex(o, "msg", &msg));
		assert_string_equal(json_object_get_string(msg), want_msg[lines]);
		json_object_put(o);
		lines++;
	}
	assert_null(line); /* no fourth line: the debug one is filtered */
	assert_int_equal(lines, 3);
	assert_string_equal(KD_LOG_KEY_FIELD, "knative.dev/key");
	free(out);

	out = capture(KD_LOG_TEXT, KD_LOG_INFO, emit_keyed);
	assert_non_null(
	    strstr(out, "INFO  kd-test: [team-a/hello-00001] pa: desired 0 -> 1 (tick)\n"));
	assert_non_null(strstr(out, "INFO  kd-test: no key\n"));
	assert_null(strstr(out, "hidden"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(text_filters_by_level),
	    cmocka_unit_test(json_lines_parse),
	    cmocka_unit_test(key_in_json_and_text),
	    cmocka_unit_test(parse_levels_and_formats),
	};
	int rc = cmocka_run_group_tests_name("kd_log", tests, NULL, NULL);
	kd_log_init(NULL, KD_LOG_INFO, KD_LOG_TEXT);
	return rc;
}
