/* Unit tests for kd_config: defaults, argv/kv/JSON/env parsing with exact error messages,
 * durations, ranges, required options, layering, table validation, --help and Markdown. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "kd/config.h"

struct cfg {
	char *name;
	int64_t count;
	uint64_t size;
	double ratio;
	bool verbose;
	uint64_t delay_ms;
	int mode;
	struct kd_strlist tags;
	char *token;
};

static const char *const modes[] = {"fast", "safe", "slow", NULL};

static const struct kd_config_option opts[] = {
    KD_OPT_STRING("name", struct cfg, name, .def = "anon", .help = "who we are"),
    KD_OPT_INT("count", struct cfg, count, .def = "3", .has_min = true, .min = 1, .has_max = true,
               .max = 100, .help = "how many"),
    KD_OPT_UINT("size", struct cfg, size, .def = "4096", .help = "bytes"),
    KD_OPT_DOUBLE("ratio", struct cfg, ratio, .def = "0.5", .has_max = true, .max = 1.0,
                  .help = "a fraction"),
    KD_OPT_BOOL("verbose", struct cfg, verbose, .help = "talk more"),
    KD_OPT_DURATION("delay", struct cfg, delay_ms, .def = "250ms", .env = "KD_TEST_DELAY",
                    .has_min = true, .min = 10, .help = "wait this long"),
    KD_OPT_ENUM("mode", struct cfg, mode, .choices = modes, .def = "safe", .help = "how"),
    KD_OPT_STRLIST("tags", struct cfg, tags, .help = "labels"),
    KD_OPT_STRING("token", struct cfg, token, .env = "KD_TEST_TOKEN", .required = true,
                  .metavar = "SECRET", .help = "bearer token"),
    KD_CONFIG_END,
};

static int setup(void **state)
{
	(void)state;
	unsetenv("KD_TEST_DELAY");
	unsetenv("KD_TEST_TOKEN");
	return 0;
}

static void defaults_are_parsed_like_input(void **state)
{
	(void)state;
	struct cfg c;
	memset(&c, 0xa5, sizeof(c)); /* fields are treated as uninitialised */
	assert_int_equal(kd_config_defaults(opts, &c, NULL), 0);
	assert_string_equal(c.name, "anon");
	assert_int_equal(c.count, 3);
	assert_int_equal(c.size, 4096);
	assert_true(c.ratio == 0.5);
	assert_false(c.verbose);
	assert_int_equal(c.delay_ms, 250);
	assert_int_equal(c.mode, 1);
	assert_int_equal(c.tags.n, 0);
	assert_null(c.tags.items);
	assert_null(c.token);
	kd_config_free(opts, &c);
	assert_null(c.name);
}

static void durations_parse_and_format(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		uint64_t ms;
	} good[] = {
	    {"0", 0},         {"0ms", 0},     {"250ms", 250},
	    {"2s", 2000},     {"1m", 60000},  {"1h", 3600000},
	    {"1m30s", 90000}, {"1.5s", 1500}, {"1h2m3s4ms", 3723004},
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(good); i++) {
		uint64_t ms = 12345;
		assert_int_equal(kd_config_parse_duration(good[i].in, &ms), 0);
		assert_int_equal(ms, good[i].ms);
		/* the formatted text parses back to the same value */
		kd_autofree char *txt = kd_config_format_duration(ms);
		uint64_t back = 1;
		assert_int_equal(kd_config_parse_duration(txt, &back), 0);
		assert_int_equal(back, ms);
	}
	static const char *const bad[] = {"",  "abc", "5",     "-1s", "1e3s", "2 s",
	                                  "s", "1x",  "0x10s", "1s-", "ms"};
	for (size_t i = 0; i < KD_ARRAY_SIZE(bad); i++) {
		uint64_t ms = 7;
		assert_int_equal(kd_config_parse_duration(bad[i], &ms), -EINVAL);
		assert_int_equal(ms, 7); /* untouched on failure */
	}
	uint64_t ms;
	assert_int_equal(kd_config_parse_duration("99999999999999h", &ms), -ERANGE);
	kd_autofree char *a = kd_config_format_duration(90000);
	assert_string_equal(a, "1m30s");
	kd_autofree char *b = kd_config_format_duration(0);
	assert_string_equal(b, "0ms");
}

static int parse_args(struct cfg *c, const char *const *args, int n, int *first,
                      struct kd_error **err)
{
	char *argv[16];
	argv[0] = (char *)"prog";
	for (int i = 0; i < n; i++)
		argv[i + 1] = (char *)args[i];
	return kd_config_parse_argv(opts, c, NULL, n + 1, argv, 0, first, err);
}

static void argv_forms_are_all_accepted(void **state)
{
	(void)state;
	struct cfg c;
	const char *args[] = {
	    "--name=bob",     "--count", "42",  "--verbose",    "--delay=2s", "--mode", "fast",
	    "--tags=a, b,,c", "--token", "t0k", "--ratio=0.25", "--size",     "0",      "--",
	    "--not-an-option"};
	int first = -1;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(parse_args(&c, args, (int)KD_ARRAY_SIZE(args), &first, &err), 0);
	assert_null(err);
	assert_string_equal(c.name, "bob");
	assert_int_equal(c.count, 42);
	assert_true(c.verbose);
	assert_int_equal(c.delay_ms, 2000);
	assert_int_equal(c.mode, 0);
	assert_int_equal(c.tags.n, 3);
	assert_string_equal(c.tags.items[0], "a");
	assert_string_equal(c.tags.items[1], "b");
	assert_string_equal(c.tags.items[2], "c");
	assert_string_equal(c.token, "t0k");
	assert_true(c.ratio == 0.25);
	assert_int_equal(c.size, 0);
	/* "--" ends options: the next argument is positional */
	assert_int_equal(first, 15);
	kd_config_free(opts, &c);

	const char *args2[] = {"--token=x", "--verbose", "--no-verbose", "file1", "--count=5"};
	assert_int_equal(parse_args(&c, args2, 5, &first, NULL), 0);
	assert_false(c.verbose);
	assert_int_equal(c.count, 3); /* parsing stopped at file1 */
	assert_int_equal(first, 4);
	kd_config_free(opts, &c);

	const char *args3[] = {"--token=x", "--verbose=false", "--name", "a", "--name", "b"};
	assert_int_equal(parse_args(&c, args3, 6, &first, NULL), 0);
	assert_false(c.verbose);
	assert_string_equal(c.name, "b"); /* the first value was freed (ASan/valgrind) */
	kd_config_free(opts, &c);
}

/* Parses one bad argument list and checks the exact message and return code. */
static void expect_argv_error(const char *const *args, int n, int rc, const char *msg)
{
	struct cfg c;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(parse_args(&c, args, n, NULL, &err), rc);
	assert_non_null(err);
	assert_string_equal(err->msg, msg);
	kd_config_free(opts, &c);
}

static void argv_errors_name_option_and_value(void **state)
{
	(void)state;
	const char *a1[] = {"--token=x", "--delay=abc"};
	expect_argv_error(a1, 2, -EINVAL, "--delay: \"abc\" is not a duration (e.g. 250ms, 2s)");
	const char *a2[] = {"--token=x", "--delay", "5ms"};
	expect_argv_error(a2, 3, -ERANGE, "--delay: 5ms is below the minimum 10ms");
	const char *a3[] = {"--token=x", "--count=0"};
	expect_argv_error(a3, 2, -ERANGE, "--count: 0 is below the minimum 1");
	const char *a4[] = {"--token=x", "--count=101"};
	expect_argv_error(a4, 2, -ERANGE, "--count: 101 is above the maximum 100");
	const char *a5[] = {"--token=x", "--count=12abc"};
	expect_argv_error(a5, 2, -EINVAL, "--count: \"12abc\" is not an integer");
	const char *a6[] = {"--token=x", "--size=-1"};
	expect_argv_error(a6, 2, -EINVAL, "--size: \"-1\" is not a non-negative integer");
	const char *a7[] = {"--token=x", "--ratio=lots"};
	expect_argv_error(a7, 2, -EINVAL, "--ratio: \"lots\" is not a number");
	const char *a8[] = {"--token=x", "--verbose=maybe"};
	expect_argv_error(
	    a8, 2, -EINVAL,
	    "--verbose: \"maybe\" is not a boolean (true/false, yes/no, on/off, 1/0)");
	const char *a9[] = {"--token=x", "--mode=turbo"};
	expect_argv_error(a9, 2, -EINVAL, "--mode: \"turbo\" is not one of: fast, safe, slow");
	const char *a10[] = {"--token=x", "--colour=red"};
	expect_argv_error(a10, 2, -EINVAL, "unknown option \"--colour\" (see --help)");
	const char *a11[] = {"--token=x", "-x"};
	expect_argv_error(a11, 2, -EINVAL, "unknown option \"-x\" (see --help)");
	const char *a12[] = {"--token=x", "--count"};
	expect_argv_error(a12, 2, -EINVAL, "--count: missing value");
	const char *a13[] = {"--token=x", "extra"};
	expect_argv_error(a13, 2, -EINVAL, "unexpected argument \"extra\"");
	const char *a14[] = {"--no-count"};
	expect_argv_error(a14, 1, -EINVAL, "unknown option \"--no-count\" (see --help)");
	const char *a15[] = {"--count=9"};
	expect_argv_error(a15, 1, -EINVAL, "missing required option --token (or $KD_TEST_TOKEN)");
	const char *a16[] = {"--token="};
	expect_argv_error(a16, 1, -EINVAL, "missing required option --token (or $KD_TEST_TOKEN)");
}

static void env_is_a_fallback_below_explicit_values(void **state)
{
	(void)state;
	struct cfg c;
	setenv("KD_TEST_DELAY", "3s", 1);
	setenv("KD_TEST_TOKEN", "from-env", 1);
	const char *none[] = {"--count=2"};
	assert_int_equal(parse_args(&c, none, 1, NULL, NULL), 0);
	assert_int_equal(c.delay_ms, 3000);
	assert_string_equal(c.token, "from-env"); /* required satisfied by the environment */
	kd_config_free(opts, &c);
	const char *over[] = {"--delay=1m"};
	assert_int_equal(parse_args(&c, over, 1, NULL, NULL), 0);
	assert_int_equal(c.delay_ms, 60000);
	kd_config_free(opts, &c);
	setenv("KD_TEST_DELAY", "soon", 1);
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(parse_args(&c, over, 1, NULL, &err), -EINVAL);
	assert_string_equal(err->msg, "$KD_TEST_DELAY (option \"delay\"): \"soon\" is not a "
	                              "duration (e.g. 250ms, 2s)");
	kd_config_free(opts, &c);
}

static void help_and_version_return_distinct_codes(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	assert_non_null(out);
	struct kd_config_cli cli = {.prog = "kd-test",
	                            .summary = "A test program.",
	                            .version = "1.2.3",
	                            .args = "[FILE...]",
	                            .out = out};
	struct cfg c;
	char *h[] = {(char *)"kd-test", (char *)"--count=5", (char *)"--help", (char *)"--bogus"};
	/* --help wins even though a required option is missing and a bad one follows */
	assert_int_equal(kd_config_parse_argv(opts, &c, &cli, 4, h, 0, NULL, NULL),
	                 KD_CONFIG_HELP_SHOWN);
	kd_config_free(opts, &c);
	char *v[] = {(char *)"kd-test", (char *)"--version"};
	assert_int_equal(kd_config_parse_argv(opts, &c, &cli, 2, v, 0, NULL, NULL),
	                 KD_CONFIG_VERSION_SHOWN);
	kd_config_free(opts, &c);
	char *s[] = {(char *)"kd-test", (char *)"-h"};
	assert_int_equal(kd_config_parse_argv(opts, &c, &cli, 2, s, 0, NULL, NULL),
	                 KD_CONFIG_HELP_SHOWN);
	kd_config_free(opts, &c);
	fclose(out);
	assert_non_null(strstr(buf, "Usage: kd-test [OPTIONS] [FILE...]\nA test program.\n\n"
	                            "Options:\n"));
	assert_non_null(
	    strstr(buf, "\n  --name=STRING                 who we are (default: anon)\n"));
	assert_non_null(strstr(buf, "\n  --count=INT                   how many (default: 3; range "
	                            "1..100)\n"));
	assert_non_null(strstr(buf, "\n  --[no-]verbose                talk more\n"));
	/* wrapped at 80 columns, the rest at the help column */
	assert_non_null(strstr(buf, "\n  --delay=DURATION              wait this long (default: "
	                            "250ms; at least 10ms;\n"
	                            "                                env: KD_TEST_DELAY)\n"));
	assert_non_null(strstr(buf, "\n  --mode=fast|safe|slow         how (default: safe)\n"));
	assert_non_null(strstr(buf,
	                       "\n  --token=SECRET                bearer token (required; env: "
	                       "KD_TEST_TOKEN)\n"));
	assert_non_null(strstr(buf, "\n  -h, --help                    show this help and exit\n"));
	/* "<prog> <version> (<commit>)", the program named once */
	assert_non_null(strstr(buf, "\nkd-test 1.2.3 (unknown)\n"));
	assert_null(strstr(buf, "kd-test kd-test"));
	/* the exit status footer ends the help */
	assert_non_null(strstr(buf,
	                       "\n\nExit status: 0 on success, 1 on a runtime failure, 2 on bad "
	                       "options (usage).\n"));
	free(buf);

	/* without a version string, --version is an unknown option */
	cli.version = NULL;
	cli.out = NULL;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_config_parse_argv(opts, &c, &cli, 2, v, 0, NULL, &err), -EINVAL);
	assert_string_equal(err->msg, "unknown option \"--version\" (see --help)");
	kd_config_free(opts, &c);
}

static void kv_list_parses_and_rejects_unknown_keys(void **state)
{
	(void)state;
	struct cfg c;
	const char *kv[] = {"count=9", "tags=x,y", "token=abc", "name="};
	assert_int_equal(kd_config_parse_kv(opts, &c, "plugin demo", kv, 4, 0, NULL), 0);
	assert_int_equal(c.count, 9);
	assert_int_equal(c.tags.n, 2);
	assert_string_equal(c.name, "");
	kd_config_free(opts, &c);

	kd_autoerr struct kd_error *err = NULL;
	const char *bad[] = {"token=a", "foo=1"};
	assert_int_equal(kd_config_parse_kv(opts, &c, "plugin demo", bad, 2, 0, &err), -EINVAL);
	assert_string_equal(err->msg, "unknown option \"foo\" for plugin demo (known: name, count, "
	                              "size, ratio, verbose, delay, mode, tags, token)");
	kd_config_free(opts, &c);
	kd_error_free(err);
	err = NULL;
	const char *noeq[] = {"token"};
	assert_int_equal(kd_config_parse_kv(opts, &c, "plugin demo", noeq, 1, 0, &err), -EINVAL);
	assert_string_equal(err->msg, "\"token\" for plugin demo: expected key=value");
	kd_config_free(opts, &c);
	kd_error_free(err);
	err = NULL;
	const char *val[] = {"token=a", "delay=abc"};
	assert_int_equal(kd_config_parse_kv(opts, &c, "plugin demo", val, 2, 0, &err), -EINVAL);
	assert_string_equal(err->msg, "option \"delay\" for plugin demo: \"abc\" is not a duration "
	                              "(e.g. 250ms, 2s)");
	kd_config_free(opts, &c);
}

static void json_object_accepts_native_types(void **state)
{
	(void)state;
	struct cfg c;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(
	    kd_config_parse_json_str(opts, &c, "plugin demo",
	                             "{\"count\": 7, \"ratio\": 0.75, \"verbose\": true, "
	                             "\"size\": \"12\", \"delay\": \"1.5s\", \"tags\": "
	                             "[\"p\", \"q\"], \"mode\": \"slow\", \"token\": \"t\"}",
	                             0, &err),
	    0);
	assert_int_equal(c.count, 7);
	assert_true(c.ratio == 0.75);
	assert_true(c.verbose);
	assert_int_equal(c.size, 12);
	assert_int_equal(c.delay_ms, 1500);
	assert_int_equal(c.tags.n, 2);
	assert_string_equal(c.tags.items[1], "q");
	assert_int_equal(c.mode, 2);
	kd_config_free(opts, &c);
	assert_null(c.tags.items);
	assert_null(c.token);
}

static void expect_json_error(const char *json, int rc, const char *msg)
{
	struct cfg c;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_config_parse_json_str(opts, &c, "plugin demo", json, 0, &err), rc);
	assert_non_null(err);
	if (!strstr(err->msg, msg))
		fail_msg("got \"%s\", want \"%s\"", err->msg, msg);
	kd_config_free(opts, &c);
}

static void json_errors_are_clear(void **state)
{
	(void)state;
	expect_json_error(
	    "{\"token\":\"t\",\"foo\":1}", -EINVAL,
	    "unknown option \"foo\" for plugin demo (known: name, count, size, ratio, "
	    "verbose, delay, mode, tags, token)");
	expect_json_error("{\"token\":\"t\",\"delay\":5}", -EINVAL,
	                  "option \"delay\" for plugin demo: expected a duration string (e.g. "
	                  "\"250ms\", \"2s\"), got int 5");
	expect_json_error("{\"token\":\"t\",\"count\":[1]}", -EINVAL,
	                  "option \"count\" for plugin demo: expected an integer, got array [1]");
	expect_json_error("{\"token\":\"t\",\"count\":1.5}", -EINVAL,
	                  "option \"count\" for plugin demo: \"1.5\" is not an integer");
	expect_json_error("{\"token\":\"t\",\"name\":null}", -EINVAL,
	                  "option \"name\" for plugin demo: expected a string, got null");
	expect_json_error("{\"token\":\"t\",\"verbose\":\"perhaps\"}", -EINVAL,
	                  "option \"verbose\" for plugin demo: \"perhaps\" is not a boolean");
	expect_json_error("{\"token\":\"t\",\"tags\":[\"a\",2]}", -EINVAL,
	                  "option \"tags\" for plugin demo: item 1 is int, expected a string");
	expect_json_error("{\"token\":\"t\",\"ratio\":2}", -ERANGE,
	                  "option \"ratio\" for plugin demo: 2 is above the maximum 1");
	expect_json_error("{\"count\":2}", -EINVAL,
	                  "missing required option \"token\" for plugin demo (or $KD_TEST_TOKEN)");
	expect_json_error("{\"token\":", -EINVAL, "config for plugin demo: invalid JSON at offset");
	expect_json_error("{} x", -EINVAL, "config for plugin demo: trailing data after JSON");
	expect_json_error("\"str\"", -EINVAL,
	                  "config for plugin demo: expected a JSON object, got string");
}

static void layers_keep_earlier_values(void **state)
{
	(void)state;
	struct cfg c;
	/* config file first (no required check yet), then argv on top (no defaults again) */
	assert_int_equal(kd_config_parse_json_str(opts, &c, "kd-test.json",
	                                          "{\"count\": 5, \"name\": \"file\"}",
	                                          KD_CONFIG_F_NO_REQUIRED, NULL),
	                 0);
	char *argv[] = {(char *)"kd-test", (char *)"--name=cli", (char *)"--token=t"};
	assert_int_equal(
	    kd_config_parse_argv(opts, &c, NULL, 3, argv, KD_CONFIG_F_NO_DEFAULTS, NULL, NULL), 0);
	assert_int_equal(c.count, 5);
	assert_string_equal(c.name, "cli");
	assert_string_equal(c.token, "t");
	assert_int_equal(c.delay_ms, 250);
	kd_config_free(opts, &c);
}

static void set_and_find_single_options(void **state)
{
	(void)state;
	struct cfg c;
	assert_int_equal(kd_config_defaults(opts, &c, NULL), 0);
	assert_ptr_equal(kd_config_find(opts, "mode"), &opts[6]);
	assert_null(kd_config_find(opts, "nope"));
	assert_int_equal(kd_config_set(opts, &c, NULL, "mode", "fast", NULL), 0);
	assert_int_equal(c.mode, 0);
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_config_set(opts, &c, NULL, "nope", "1", &err), -EINVAL);
	assert_string_equal(err->msg, "unknown option \"nope\" (known: name, count, size, ratio, "
	                              "verbose, delay, mode, tags, token)");
	kd_config_free(opts, &c);
}

struct small {
	int64_t a;
	char *b;
};

static void table_validation_catches_mistakes(void **state)
{
	(void)state;
	assert_int_equal(kd_config_validate_table(opts, sizeof(struct cfg), NULL), 0);
	assert_int_equal(kd_config_validate_table(NULL, 0, NULL), 0);

	kd_autoerr struct kd_error *err = NULL;
	/* the struct is too small for the table */
	assert_int_equal(kd_config_validate_table(opts, sizeof(struct small), &err), -EINVAL);
	assert_non_null(strstr(err->msg, "is outside the 16-byte config struct"));
	kd_error_free(err);
	err = NULL;

	const struct kd_config_option dup[] = {
	    KD_OPT_INT("a", struct small, a),
	    KD_OPT_STRING("a", struct small, b),
	    KD_CONFIG_END,
	};
	assert_int_equal(kd_config_validate_table(dup, sizeof(struct small), &err), -EINVAL);
	assert_string_equal(err->msg, "option \"a\" is defined twice");
	kd_error_free(err);
	err = NULL;

	const struct kd_config_option baddef[] = {
	    KD_OPT_INT("a", struct small, a, .def = "ten"),
	    KD_CONFIG_END,
	};
	assert_int_equal(kd_config_validate_table(baddef, sizeof(struct small), &err), -EINVAL);
	assert_string_equal(err->msg, "default of option \"a\": \"ten\" is not an integer");
	kd_error_free(err);
	err = NULL;

	const struct kd_config_option badkey[] = {
	    KD_OPT_INT("a b", struct small, a),
	    KD_CONFIG_END,
	};
	assert_int_equal(kd_config_validate_table(badkey, sizeof(struct small), &err), -EINVAL);
	assert_non_null(strstr(err->msg, "option \"a b\": key may only hold"));
	kd_error_free(err);
	err = NULL;

	const struct kd_config_option noenum[] = {
	    {.key = "e", .type = KD_CONFIG_ENUM, .offset = 0},
	    KD_CONFIG_END,
	};
	assert_int_equal(kd_config_validate_table(noenum, sizeof(struct small), &err), -EINVAL);
	assert_string_equal(err->msg, "option \"e\": enum without choices");
}

static void markdown_documents_every_option(void **state)
{
	(void)state;
	kd_autofree char *md = kd_config_markdown(opts, "kd-test");
	assert_non_null(strstr(md, "## kd-test\n\n| Option | Type | Default | Env | Description |\n"
	                           "|---|---|---|---|---|\n"));
	assert_non_null(strstr(md, "| `count` | integer | `3` | - | how many (range 1..100) |\n"));
	assert_non_null(strstr(md, "| `delay` | duration | `250ms` | `KD_TEST_DELAY` | wait this "
	                           "long (at least 10ms) |\n"));
	assert_non_null(strstr(md, "| `mode` | enum: fast, safe, slow | `safe` | - | how |\n"));
	assert_non_null(strstr(md,
	                       "| `token` | string | - | `KD_TEST_TOKEN` | **Required.** bearer "
	                       "token |\n"));
	/* one row per option */
	size_t rows = 0;
	for (const char *p = md; (p = strstr(p, "\n| `")); p++)
		rows++;
	assert_int_equal(rows, 9);
	kd_autofree char *empty = kd_config_markdown(NULL, NULL);
	assert_string_equal(empty, "No options.\n");
}

/* stderr captured into memory while kd_config_main prints its refusals. */
struct captured {
	char *buf;
	size_t len;
	FILE *mem, *saved;
};

static void capture_stderr(struct captured *c)
{
	c->buf = NULL;
	c->len = 0;
	c->mem = open_memstream(&c->buf, &c->len);
	assert_non_null(c->mem);
	c->saved = stderr;
	stderr = c->mem;
}

/* Restores stderr; returns what was written (owned; free()). */
static char *release_stderr(struct captured *c)
{
	stderr = c->saved;
	fclose(c->mem);
	return c->buf;
}

static void config_main_says_go_on_exit_0_or_exit_2_once(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	struct kd_config_cli cli = {
	    .prog = "kd-test", .version = "1", .commit = "abc1234", .out = out};
	struct cfg c;
	char *ok[] = {"kd-test", "--token=t", NULL};
	assert_int_equal(kd_config_main(opts, &c, &cli, 2, ok), -1);
	assert_string_equal(c.token, "t");
	kd_config_free(opts, &c);
	char *help[] = {"kd-test", "--help", NULL};
	assert_int_equal(kd_config_main(opts, &c, &cli, 2, help), 0);
	char *version[] = {"kd-test", "--version", NULL};
	assert_int_equal(kd_config_main(opts, &c, &cli, 2, version), 0);
	fclose(out);
	assert_non_null(strstr(buf, "\nkd-test 1 (abc1234)\n"));
	free(buf);
	/* bad options: 2, and "(see --help)" once even when the parser's message has it already */
	struct captured cap;
	capture_stderr(&cap);
	char *bad[] = {"kd-test", "--token=t", "--colour", NULL};
	int rc = kd_config_main(opts, &c, &cli, 3, bad);
	char *bad2[] = {"kd-test", "--token=t", "--count=lots", NULL};
	int rc2 = kd_config_main(opts, &c, &cli, 3, bad2);
	char *errbuf = release_stderr(&cap);
	assert_int_equal(rc, 2);
	assert_int_equal(rc2, 2);
	assert_non_null(strstr(errbuf, "kd-test: unknown option \"--colour\" (see --help)\n"));
	assert_null(strstr(errbuf, "(see --help) (see --help)"));
	assert_non_null(strstr(errbuf, "kd-test: --count"));
	free(errbuf);
}

/* --config-dir: one file per key (a mounted ConfigMap with its ..data symlinks), layered as
 * default < env < dir < argv; unknown keys and a missing directory exit 2 */
static char *make_config_dir(void)
{
	char tmpl[] = "/tmp/kd-test-config-dir.XXXXXX";
	char *dir = mkdtemp(tmpl);
	assert_non_null(dir);
	kd_autofree char *data = kd_xasprintf("%s/..2026_12_04", dir);
	assert_int_equal(mkdir(data, 0755), 0);
	static const char *const files[][2] = {
	    {"count", "7\n"}, {"delay", "2s"}, {"token", "from-dir\n"}, {"name", "dir-name"}};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		kd_autofree char *path = kd_xasprintf("%s/%s", data, files[i][0]);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fputs(files[i][1], f);
		fclose(f);
		kd_autofree char *target = kd_xasprintf("..data/%s", files[i][0]);
		kd_autofree char *link = kd_xasprintf("%s/%s", dir, files[i][0]);
		assert_int_equal(symlink(target, link), 0);
	}
	kd_autofree char *dotdata = kd_xasprintf("%s/..data", dir);
	assert_int_equal(symlink("..2026_12_04", dotdata), 0);
	return kd_xstrdup(dir);
}

static void remove_config_dir(const char *dir)
{
	kd_autofree char *cmd = kd_xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void config_dir_layers_between_env_and_argv(void **state)
{
	(void)state;
	kd_autofree char *dir = make_config_dir();
	struct kd_config_cli cli = {.prog = "kd-test", .config_dir = true};
	struct cfg c;
	setenv("KD_TEST_DELAY", "9s", 1);
	setenv("KD_TEST_TOKEN", "from-env", 1);
	char *argv[] = {"kd-test", "--config-dir", dir, "--name=from-argv", NULL};
	assert_int_equal(kd_config_main(opts, &c, &cli, 4, argv), -1);
	assert_int_equal(c.count, 7);             /* dir over default */
	assert_int_equal(c.delay_ms, 2000);       /* dir over env */
	assert_string_equal(c.token, "from-dir"); /* trailing newline dropped */
	assert_string_equal(c.name, "from-argv"); /* argv over dir */
	assert_int_equal(c.size, 4096);           /* untouched default */
	kd_config_free(opts, &c);
	/* $KD_CONFIG_DIR, and --config-dir=DIR */
	setenv("KD_CONFIG_DIR", dir, 1);
	char *argv2[] = {"kd-test", NULL};
	assert_int_equal(kd_config_main(opts, &c, &cli, 1, argv2), -1);
	assert_string_equal(c.name, "dir-name");
	kd_config_free(opts, &c);
	unsetenv("KD_CONFIG_DIR");
	kd_autofree char *eq = kd_xasprintf("--config-dir=%s", dir);
	char *argv3[] = {"kd-test", eq, "--count=2", NULL};
	assert_int_equal(kd_config_main(opts, &c, &cli, 3, argv3), -1);
	assert_int_equal(c.count, 2);
	assert_string_equal(c.token, "from-dir");
	kd_config_free(opts, &c);
	unsetenv("KD_TEST_DELAY");
	unsetenv("KD_TEST_TOKEN");
	/* a program without cli.config_dir does not know the option */
	struct kd_config_cli plain = {.prog = "kd-test"};
	struct captured cap;
	capture_stderr(&cap);
	int rc_plain = kd_config_main(opts, &c, &plain, 3, argv3);
	char *errbuf = release_stderr(&cap);
	assert_int_equal(rc_plain, 2);
	assert_non_null(strstr(errbuf, "unknown option \"--config-dir\""));
	free(errbuf);
	remove_config_dir(dir);
}

static void config_dir_refuses_unknown_keys_bad_values_and_missing_dirs(void **state)
{
	(void)state;
	kd_autofree char *dir = make_config_dir();
	struct kd_config_cli cli = {.prog = "kd-test", .config_dir = true};
	struct cfg c;
	struct captured cap;
	capture_stderr(&cap);
	/* a typo in a ConfigMap key */
	kd_autofree char *typo = kd_xasprintf("%s/cuont", dir);
	FILE *f = fopen(typo, "w");
	assert_non_null(f);
	fputs("5", f);
	fclose(f);
	char *argv[] = {"kd-test", "--config-dir", dir, NULL};
	int rc_typo = kd_config_main(opts, &c, &cli, 3, argv);
	assert_int_equal(unlink(typo), 0);
	/* a value out of range names the file */
	kd_autofree char *count = kd_xasprintf("%s/..data/count", dir);
	f = fopen(count, "w");
	assert_non_null(f);
	fputs("1000000", f);
	fclose(f);
	int rc_range = kd_config_main(opts, &c, &cli, 3, argv);
	char *missing[] = {"kd-test", "--config-dir=/nonexistent/kd", NULL};
	int rc_missing = kd_config_main(opts, &c, &cli, 2, missing);
	char *novalue[] = {"kd-test", "--token=t", "--config-dir", NULL};
	int rc_novalue = kd_config_main(opts, &c, &cli, 3, novalue);
	char *errbuf = release_stderr(&cap);
	assert_int_equal(rc_typo, 2);
	assert_int_equal(rc_range, 2);
	assert_int_equal(rc_missing, 2);
	assert_int_equal(rc_novalue, 2);
	assert_non_null(strstr(errbuf, "cuont: unknown option \"cuont\" (known: name, count"));
	assert_non_null(strstr(errbuf, "/count"));
	assert_non_null(strstr(errbuf, "--config-dir /nonexistent/kd: No such file or directory"));
	assert_non_null(strstr(errbuf, "--config-dir: missing value"));
	free(errbuf);
	remove_config_dir(dir);
}

static void help_lists_config_dir_when_the_program_accepts_it(void **state)
{
	(void)state;
	struct kd_config_cli cli = {.prog = "kd-test", .config_dir = true};
	kd_autofree char *help = kd_config_help(opts, &cli);
	assert_non_null(strstr(help, "  --config-dir=DIR"));
	assert_non_null(strstr(help, "KD_CONFIG_DIR"));
	struct kd_config_cli plain = {.prog = "kd-test"};
	kd_autofree char *help2 = kd_config_help(opts, &plain);
	assert_null(strstr(help2, "--config-dir"));
}

/* cli.check: refused (exit 2, its message, cfg freed); accepted: go on */
static int check_count_even(void *cfg, struct kd_error **err)
{
	const struct cfg *c = cfg;
	if (c->count % 2)
		return kd_error_set(err, EINVAL, 0, "--count: %lld is odd", (long long)c->count);
	return 0;
}

static void config_main_runs_the_check_and_exits_2_on_refusal(void **state)
{
	(void)state;
	struct kd_config_cli cli = {.prog = "kd-test", .check = check_count_even};
	struct cfg c;
	char *even[] = {"kd-test", "--token=t", "--count=4", NULL};
	assert_int_equal(kd_config_main(opts, &c, &cli, 3, even), -1);
	kd_config_free(opts, &c);
	struct captured cap;
	capture_stderr(&cap);
	char *odd[] = {"kd-test", "--token=t", "--count=5", NULL};
	int rc = kd_config_main(opts, &c, &cli, 3, odd);
	char *errbuf = release_stderr(&cap);
	assert_int_equal(rc, 2);
	assert_null(c.token); /* freed */
	assert_string_equal(errbuf, "kd-test: --count: 5 is odd (see --help)\n");
	free(errbuf);
}

struct wide {
	char *a;
	char *long_name_that_pushes_the_help_to_the_next_line;
	bool b;
};
static const struct kd_config_option wide_opts[] = {
    KD_OPT_STRING("a", struct wide, a, .def = "x",
                  .help = "a help text long enough to need three lines at eighty columns: it "
                          "goes on and on about what the option does, and then some more, "
                          "until it is done"),
    KD_OPT_STRING("long-name-that-pushes-the-help-to-the-next-line", struct wide,
                  long_name_that_pushes_the_help_to_the_next_line, .metavar = "VALUE",
                  .help = "the help starts on its own line at the help column and still wraps "
                          "at eighty columns like every other"),
    KD_OPT_BOOL("b", struct wide, b,
                .help = "https://example.invalid/a/word/longer/than/the/forty-eight/columns/"
                        "of/the/help/text stays whole"),
    KD_CONFIG_END,
};

/* Every line of --help fits 80 columns; continuation lines start at the help column; no word
 * is lost or split. */
static void help_wraps_at_80_columns(void **state)
{
	(void)state;
	struct kd_config_cli cli = {
	    .prog = "kd-wide",
	    .summary = "A summary sentence that is much longer than one line of a terminal, so "
	               "that it has to be wrapped like the option help texts are wrapped.",
	    .version = "1"};
	kd_autofree char *h = kd_config_help(wide_opts, &cli);
	size_t n_lines = 0, n_cont = 0;
	for (const char *l = h; *l;) {
		const char *nl = strchr(l, '\n');
		assert_non_null(nl);
		size_t len = (size_t)(nl - l);
		bool url = strstr(l, "https://") && strstr(l, "https://") < nl;
		if (!url)
			assert_true(len <= 80);
		if (len > 32 && strncmp(l, "                                ", 32) == 0 &&
		    l[32] != ' ')
			n_cont++;
		n_lines++;
		l = nl + 1;
	}
	assert_true(n_cont >= 3);
	/* the words in order, single-spaced once the wrap is undone */
	struct sb_words {
		char s[4096];
	} w = {{0}};
	size_t o = 0;
	for (const char *p = h; *p && o + 1 < sizeof(w.s); p++) {
		char ch = *p == '\n' ? ' ' : *p;
		if (ch == ' ' && o && w.s[o - 1] == ' ')
			continue;
		w.s[o++] = ch;
	}
	assert_non_null(strstr(w.s, "a help text long enough to need three lines at eighty "
	                            "columns: it goes on and on about what the option does, and "
	                            "then some more, until it is done (default: x)"));
	assert_non_null(strstr(w.s, " https://example.invalid/a/word/longer/than/the/forty-eight/"
	                            "columns/of/the/help/text stays whole "));
	assert_non_null(strstr(w.s, "A summary sentence that is much longer than one line of a "
	                            "terminal, so that it has to be wrapped like the option help "
	                            "texts are wrapped. Options:"));
	assert_non_null(strstr(h, "\n  --long-name-that-pushes-the-help-to-the-next-line=VALUE\n"
	                          "                                the help starts"));
	assert_true(n_lines > 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(defaults_are_parsed_like_input, setup),
	    cmocka_unit_test_setup(durations_parse_and_format, setup),
	    cmocka_unit_test_setup(argv_forms_are_all_accepted, setup),
	    cmocka_unit_test_setup(argv_errors_name_option_and_value, setup),
	    cmocka_unit_test_setup(env_is_a_fallback_below_explicit_values, setup),
	    cmocka_unit_test_setup(help_and_version_return_distinct_codes, setup),
	    cmocka_unit_test_setup(kv_list_parses_and_rejects_unknown_keys, setup),
	    cmocka_unit_test_setup(json_object_accepts_native_types, setup),
	    cmocka_unit_test_setup(json_errors_are_clear, setup),
	    cmocka_unit_test_setup(layers_keep_earlier_values, setup),
	    cmocka_unit_test_setup(set_and_find_single_options, setup),
	    cmocka_unit_test_setup(table_validation_catches_mistakes, setup),
	    cmocka_unit_test_setup(markdown_documents_every_option, setup),
	    cmocka_unit_test_setup(config_main_says_go_on_exit_0_or_exit_2_once, setup),
	    cmocka_unit_test_setup(config_main_runs_the_check_and_exits_2_on_refusal, setup),
	    cmocka_unit_test(help_wraps_at_80_columns),
	    cmocka_unit_test_setup(config_dir_layers_between_env_and_argv, setup),
	    cmocka_unit_test_setup(config_dir_refuses_unknown_keys_bad_values_and_missing_dirs,
	                           setup),
	    cmocka_unit_test(help_lists_config_dir_when_the_program_accepts_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
