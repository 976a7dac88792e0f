/* Unit tests of the bench/trace binary (build/bench/trace/trace), run as a child process: --help
 * documents every option and the arithmetic; bad options exit 2 with a message naming them; a
 * refused input file exits 1 with FILE:LINE; --plan prints the same schedule for the same seed
 * (another for another seed) and sends nothing; an end-to-end replay of the shipped 2019 example
 * (first 6 minutes, compressed 120x: 3 s) against functions/sleep on 127.0.0.1 writes samples.tsv
 * (every invocation ok, response time >= requested duration) and summary.json (the counts and
 * the settings). */
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kd/common.h"
#include "kd_test_httpd.h"
#include "kd_test_proc.h"

static pid_t fn_pid; /* functions/sleep, when a test runs one */

#define BIN  KD_BUILD_DIR "/bench/trace/trace"
#define MAXA 40

static const char inv_csv[] = KD_SRC_DIR "/bench/trace/data/azure2019-example-invocations.csv";
static const char dur_csv[] = KD_SRC_DIR "/bench/trace/data/azure2019-example-durations.csv";
static const char t21_csv[] = KD_SRC_DIR "/bench/trace/data/azure2021-invocations-200.csv";

/* Runs the binary with args (NULL-terminated; argv[0] is added). */
static int run(char **out, char **err, const char *const *args)
{
	char *argv[MAXA] = {(char *)BIN};
	int n = 1;
	for (; n < MAXA - 1 && args[n - 1]; n++)
		argv[n] = (char *)args[n - 1];
	argv[n] = NULL;
	return kd_test_run(argv, 60000, out, err);
}

static void expect_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("\"%s\" not in:\n%s", needle, hay);
}

/* s with every run of spaces and newlines made one space (the help text is wrapped) */
static void squash(char *s)
{
	char *w = s;
	for (const char *r = s; *r; r++) {
		bool blank = *r == ' ' || *r == '\n';
		if (blank && (w == s || w[-1] == ' '))
			continue;
		*w++ = blank ? ' ' : *r;
	}
	*w = '\0';
}

static void help_documents_options_and_arithmetic(void **state)
{
	(void)state;
	char *out = NULL;
	assert_int_equal(run(&out, NULL, (const char *const[]){"--help", NULL}), 0);
	squash(out);
	static const char *const opts[] = {"--invocations=FILE",
	                                   "--durations=FILE",
	                                   "--duration-column=NAME",
	                                   "--invocations2021=FILE",
	                                   "--targets=FILE",
	                                   "--arm=NAME",
	                                   "--out=DIR",
	                                   "--[no-]plan",
	                                   "--seed=N",
	                                   "--minutes=N",
	                                   "--functions=N",
	                                   "--compress=NUM",
	                                   "--warmup=DURATION",
	                                   "--max-duration=DURATION",
	                                   "--max-invocations=N",
	                                   "--max-inflight=N",
	                                   "--timeout=DURATION",
	                                   "--deadline=DURATION",
	                                   "--slowdown-floor=DURATION",
	                                   "--[no-]check-body",
	                                   "--progress=DURATION"};
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		expect_contains(out, opts[i]);
	expect_contains(out, "(default: 2000ms; at most 10m)");
	expect_contains(out, "scheduling latency = response time - execution time");
	expect_contains(out, "execution time = the requested duration");
	expect_contains(out, "geometric mean exp(mean(ln x))");
	expect_contains(out, "ceil(p/100 * n) - 1");
	expect_contains(out, "sched_latency_ms slowdown bytes error");
	free(out);
}

static void bad_options_exit_2(void **state)
{
	(void)state;
	static const struct {
		const char *args[6];
		const char *msg;
	} cases[] = {
	    {{"--plan"}, "trace: no trace: --invocations FILE --durations FILE"},
	    {{"--invocations", inv_csv, "--plan"}, "--invocations needs --durations"},
	    {{"--invocations", inv_csv, "--durations", dur_csv, "--invocations2021", t21_csv},
	     "one trace"},
	    {{"--invocations2021", t21_csv}, "--targets FILE is required (or --plan)"},
	    {{"--invocations2021", t21_csv, "--targets", "x"}, "--arm NAME is required"},
	    {{"--invocations2021", t21_csv, "--targets", "x", "--arm", "kd"},
	     "--out DIR is required"},
	    {{"--invocations2021", t21_csv, "--plan", "--compress", "0"}, "--compress"},
	    {{"--invocations2021", t21_csv, "--plan", "--minutes", "ten"}, "--minutes"},
	    {{"--invocations2021", t21_csv, "--plan", "--warmup", "20"}, "is not a duration"},
	    {{"--invocations2021", t21_csv, "--plan", "--max-duration", "11m"}, "--max-duration"},
	    {{"--invocations2021", t21_csv, "--plan", "--bogus"}, "--bogus"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[10] = {(char *)BIN};
		size_t n = 1;
		for (size_t k = 0; k < 6 && cases[i].args[k]; k++)
			argv[n++] = (char *)cases[i].args[k];
		argv[n] = NULL;
		char *err = NULL, *out = NULL;
		int rc = kd_test_run(argv, 10000, &out, &err);
		if (rc != 2)
			fail_msg("case %zu: exit %d, stderr %s", i, rc, err);
		expect_contains(err, cases[i].msg);
		assert_string_equal(out, "");
		free(err);
		free(out);
	}
}

static void refused_files_exit_1_with_file_and_line(void **state)
{
	(void)state;
	char *dir = kd_test_httpd_mkdtemp();
	kd_autofree char *bad = kd_xasprintf("%s/inv.csv", dir);
	kd_test_httpd_write_file(bad, "HashOwner,HashApp,HashFunction,Trigger,1\no,a,f,http,1\n"
	                              "o,a,g,http,one\n");
	char *err = NULL;
	assert_int_equal(run(NULL, &err,
	                     (const char *const[]){"--invocations", bad, "--durations", dur_csv,
	                                           "--plan", "--minutes", "1", NULL}),
	                 1);
	kd_autofree char *want =
	    kd_xasprintf("%s:3: column 5 (minute 1): \"one\" is not a count", bad);
	expect_contains(err, want);
	free(err);
	assert_int_equal(run(NULL, &err,
	                     (const char *const[]){"--invocations", inv_csv, "--durations",
	                                           "/nonexistent.csv", "--plan", NULL}),
	                 1);
	expect_contains(err, "read /nonexistent.csv: No such file or directory");
	free(err);
	/* a targets file without the arm's rows */
	kd_autofree char *tg = kd_xasprintf("%s/targets.tsv", dir);
	kd_autofree char *outdir = kd_xasprintf("%s/out", dir);
	kd_test_httpd_write_file(tg, "1\tvanilla\thttp://127.0.0.1:9\t-\n");
	assert_int_equal(run(NULL, &err,
	                     (const char *const[]){"--invocations", inv_csv, "--durations", dur_csv,
	                                           "--functions", "1", "--targets", tg, "--arm",
	                                           "kd", "--out", outdir, NULL}),
	                 1);
	kd_autofree char *want2 = kd_xasprintf("%s: no row for function 1 of arm kd", tg);
	expect_contains(err, want2);
	free(err);
	kd_test_httpd_rmrf(dir);
	free(dir);
}

static void plan_is_reproducible(void **state)
{
	(void)state;
	char *a = NULL, *b = NULL, *c = NULL, *err = NULL;
	assert_int_equal(run(&a, &err,
	                     (const char *const[]){"--invocations", inv_csv, "--durations", dur_csv,
	                                           "--plan", NULL}),
	                 0);
	expect_contains(err, "plan: 125 invocations of 4 functions");
	free(err);
	assert_int_equal(run(&b, NULL,
	                     (const char *const[]){"--invocations", inv_csv, "--durations", dur_csv,
	                                           "--plan", NULL}),
	                 0);
	assert_int_equal(run(&c, NULL,
	                     (const char *const[]){"--invocations", inv_csv, "--durations", dur_csv,
	                                           "--plan", "--seed", "8", NULL}),
	                 0);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	size_t lines = 0;
	for (const char *p = a; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 126); /* header + 125 */
	static const char hdr[] =
	    "seq\tfn\tminute\ttrace_s\tsched_ms\ttrace_ms\trequested_ms\tcapped\twarmup\n";
	assert_memory_equal(a, hdr, sizeof(hdr) - 1);
	free(a);
	free(b);
	free(c);
	/* 2021: the first 10 minutes hold 104 of its 199 invocations, 51 of them capped */
	assert_int_equal(
	    run(NULL, &err, (const char *const[]){"--invocations2021", t21_csv, "--plan", NULL}),
	    0);
	expect_contains(err, "plan: 104 invocations of 31 functions");
	expect_contains(err, "51 capped");
	free(err);
}

static long jint(struct json_object *root, const char *a, const char *b)
{
	struct json_object *x = NULL, *y = NULL;
	if (!json_object_object_get_ex(root, a, &x) || !json_object_object_get_ex(x, b, &y))
		fail_msg("summary.json: no %s.%s", a, b);
	return (long)json_object_get_int64(y);
}

static void replay_end_to_end_against_functions_sleep(void **state)
{
	(void)state;
	uint16_t port = 0;
	fn_pid = kd_test_fn_start("sleep", "2", &port);
	char *dir = kd_test_httpd_mkdtemp();
	kd_autofree char *tg = kd_xasprintf("%s/targets.tsv", dir);
	kd_autofree char *outdir = kd_xasprintf("%s/out/kd", dir);
	kd_autofree char *rows = kd_xasprintf(
	    "# index arm url host\n"
	    "1\tkd\thttp://127.0.0.1:%u\tkd-t1.example\n2\tkd\thttp://127.0.0.1:%u/"
	    "\tkd-t2.example\n"
	    "3\tkd\thttp://127.0.0.1:%u\t-\n4\tkd\thttp://127.0.0.1:%u\tkd-t4.example\n"
	    "1\tvanilla\thttp://127.0.0.1:9\tvanilla-t1.example\n",
	    port, port, port, port);
	kd_test_httpd_write_file(tg, rows);
	char *out = NULL, *err = NULL;
	int rc = run(&out, &err,
	             (const char *const[]){"--invocations", inv_csv, "--durations", dur_csv,
	                                   "--minutes", "6", "--compress", "120", "--warmup",
	                                   "300ms", "--targets", tg, "--arm", "kd", "--out", outdir,
	                                   "--progress", "500ms", NULL});
	if (rc != 0)
		fail_msg("exit %d: %s", rc, err);
	expect_contains(out, "trace azure2019, arm kd:");
	expect_contains(out, "scheduling latency ms");
	expect_contains(err, "answered");
	expect_contains(err, "in flight");
	/* samples.tsv: a header, then every invocation ok with response >= requested */
	kd_autofree char *sp = kd_xasprintf("%s/samples.tsv", outdir);
	FILE *f = fopen(sp, "r");
	assert_non_null(f);
	char line[1024];
	assert_non_null(fgets(line, sizeof(line), f));
	assert_string_equal(line,
	                    "seq\tfn\tminute\ttrace_s\tsched_ms\tsent_ms\tsend_lag_ms\ttrace_ms\t"
	                    "requested_ms\tcapped\twarmup\tstatus\thttp_code\tcurl_code\t"
	                    "response_ms\tclient_ms\tsched_latency_ms\tslowdown\tbytes\terror\n");
	size_t n = 0, warm = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned seq, fn, minute, trace_ms, req_ms, capped, warmup, code, curl;
		double trace_s, sched_ms, sent_ms, lag, resp, client, sched_lat, slow;
		char status[16];
		int k = sscanf(
		    line,
		    "%u\t%u\t%u\t%lf\t%lf\t%lf\t%lf\t%u\t%u\t%u\t%u\t%15s\t%u\t%u\t%lf\t%lf\t"
		    "%lf\t%lf",
		    &seq, &fn, &minute, &trace_s, &sched_ms, &sent_ms, &lag, &trace_ms, &req_ms,
		    &capped, &warmup, status, &code, &curl, &resp, &client, &sched_lat, &slow);
		if (k != 18)
			fail_msg("row %zu: %d fields parsed: %s", n + 1, k, line);
		n++;
		assert_int_equal(seq, n);
		assert_string_equal(status, "ok");
		assert_int_equal(code, 200);
		assert_true(fn >= 1 && fn <= 4 && minute >= 1 && minute <= 6);
		assert_true(lag >= 0);
		assert_true(resp >= req_ms);
		assert_true(slow >= 1.0);
		warm += warmup;
	}
	fclose(f);
	assert_int_equal(n, 6 * 5 + 5 + 5 + 5); /* the example's first six minutes */
	/* summary.json */
	kd_autofree char *jp = kd_xasprintf("%s/summary.json", outdir);
	struct json_object *root = json_object_from_file(jp);
	assert_non_null(root);
	assert_int_equal(jint(root, "counts", "scheduled"), (long)n);
	assert_int_equal(jint(root, "counts", "sent"), (long)n);
	assert_int_equal(jint(root, "counts", "discarded"), (long)warm);
	assert_int_equal(jint(root, "counts", "ok"), (long)(n - warm));
	assert_int_equal(jint(root, "counts", "failed"), 0);
	assert_int_equal(jint(root, "counts", "capped"), 0);
	assert_int_equal(jint(root, "settings", "minutes"), 6);
	assert_int_equal(jint(root, "settings", "warmup_ms"), 300);
	assert_int_equal(jint(root, "settings", "max_duration_ms"), 2000);
	assert_int_equal(jint(root, "slowdown", "functions_measured"), 4);
	struct json_object *sl = NULL, *per = NULL;
	assert_true(json_object_object_get_ex(root, "slowdown", &sl));
	assert_true(json_object_object_get_ex(sl, "per_function", &per));
	assert_int_equal(json_object_array_length(per), 4);
	json_object_put(root);
	free(out);
	free(err);
	kd_test_httpd_rmrf(dir);
	free(dir);
}

/* functions/sleep of the test, stopped after it whatever happened */
static int stop_srv(void **state)
{
	(void)state;
	kd_test_fn_stop(fn_pid);
	fn_pid = 0;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(help_documents_options_and_arithmetic),
	    cmocka_unit_test(bad_options_exit_2),
	    cmocka_unit_test(refused_files_exit_1_with_file_and_line),
	    cmocka_unit_test(plan_is_reproducible),
	    cmocka_unit_test_teardown(replay_end_to_end_against_functions_sleep, stop_srv),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
