/* Unit tests for bench/trace/trace_parse.c: the Azure 2019 pair (counts per minute joined with
 * the durations column on owner+app+function), the 2021 per-invocation trace and the targets
 * TSV, good and bad. Good: CRLF lines, a last line without '\n', rows of other functions or
 * arms ignored, the first F functions kept, the shipped example files. Bad: every refusal is
 * -EINVAL with "FILE:LINE: what" (or "FILE: what" for what no line holds) and no output. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../bench/trace/trace_parse.h"
#include "kd/error.h"

/* What an output parameter points at before a refusal, which must leave it so. */
static struct kd_trace untouched_trace;
static struct kd_trace_target untouched_target;

#define INV_HDR "HashOwner,HashApp,HashFunction,Trigger,1,2,3\n"
#define DUR_HDR "HashOwner,HashApp,HashFunction,Average,Count,Minimum\n"

static struct kd_trace *parse19(const char *inv, const char *dur, size_t max_fns)
{
	struct kd_trace *t = NULL;
	kd_autoerr struct kd_error *err = NULL;
	int rc = kd_trace_parse_2019("inv.csv", inv, strlen(inv), "dur.csv", dur, strlen(dur),
	                             "Average", max_fns, &t, &err);
	if (rc != 0)
		fail_msg("parse: %s", kd_error_msg(err));
	assert_non_null(t);
	return t;
}

/* The 2019 pair is refused with a message containing want. */
static void bad19(const char *inv, const char *dur, const char *want)
{
	struct kd_trace *t = &untouched_trace; /* untouched on failure */
	kd_autoerr struct kd_error *err = NULL;
	int rc = kd_trace_parse_2019("inv.csv", inv, strlen(inv), "dur.csv", dur, strlen(dur),
	                             "Average", 0, &t, &err);
	assert_int_equal(rc, -EINVAL);
	assert_ptr_equal(t, &untouched_trace);
	assert_non_null(err);
	if (!strstr(kd_error_msg(err), want))
		fail_msg("error \"%s\" does not contain \"%s\"", kd_error_msg(err), want);
}

static const char good_dur[] = DUR_HDR "o1,a1,f1,100.0,57523.0,99.0\n"
                                       "o9,a9,f9,7,1,1\n" /* not in the invocations: ignored */
                                       "o2,a2,f2,2.5e2,1,1\n";

static void azure2019_counts_joined_with_durations(void **state)
{
	(void)state;
	struct kd_trace *t = parse19(INV_HDR "o1,a1,f1,http,1,0,12\n"
	                                     "o2,a2,f2,queue,0,3,4", /* no final newline */
	                             good_dur, 0);
	assert_int_equal(t->format, KD_TRACE_AZURE2019);
	assert_int_equal(t->n_fns, 2);
	assert_int_equal(t->n_fns_file, 2);
	assert_int_equal(t->n_minutes, 3);
	assert_string_equal(t->fns[0].owner, "o1");
	assert_string_equal(t->fns[0].app, "a1");
	assert_string_equal(t->fns[0].func, "f1");
	assert_string_equal(t->fns[0].trigger, "http");
	assert_int_equal(t->fns[0].line, 2);
	assert_int_equal(t->fns[0].counts[0], 1);
	assert_int_equal(t->fns[0].counts[1], 0);
	assert_int_equal(t->fns[0].counts[2], 12);
	assert_true(t->fns[0].duration_ms == 100.0);
	assert_int_equal(t->fns[0].duration_line, 2);
	assert_string_equal(t->fns[1].trigger, "queue");
	assert_int_equal(t->fns[1].counts[2], 4);
	assert_true(t->fns[1].duration_ms == 250.0);
	assert_int_equal(t->fns[1].duration_line, 4);
	assert_null(t->invs);
	kd_trace_free(t);
}

static void azure2019_crlf_and_other_columns(void **state)
{
	(void)state;
	struct kd_trace *t = NULL;
	kd_autoerr struct kd_error *err = NULL;
	const char inv[] = "HashOwner,HashApp,HashFunction,Trigger,1\r\no,a,f,timer,5\r\n";
	const char dur[] = "HashOwner,HashApp,HashFunction,Average,percentile_Average_99\r\n"
	                   "o,a,f,3,8.25\r\n";
	assert_int_equal(kd_trace_parse_2019("i", inv, strlen(inv), "d", dur, strlen(dur),
	                                     "percentile_Average_99", 0, &t, &err),
	                 0);
	assert_true(t->fns[0].duration_ms == 8.25);
	assert_string_equal(t->fns[0].trigger, "timer");
	kd_trace_free(t);
}

static void azure2019_first_functions_kept(void **state)
{
	(void)state;
	/* the second function has no durations row: not needed when only the first is kept */
	struct kd_trace *t = parse19(INV_HDR "o1,a1,f1,http,1,0,12\n"
	                                     "o3,a3,f3,http,0,0,1\n",
	                             DUR_HDR "o1,a1,f1,100,1,1\n", 1);
	assert_int_equal(t->n_fns, 1);
	assert_int_equal(t->n_fns_file, 2);
	assert_string_equal(t->fns[0].func, "f1");
	kd_trace_free(t);
	/* the rows not kept are still checked */
	struct kd_trace *u = &untouched_trace;
	kd_autoerr struct kd_error *err = NULL;
	const char inv[] = INV_HDR "o1,a1,f1,http,1,0,12\no3,a3,f3,http,0,x,1\n";
	const char dur[] = DUR_HDR "o1,a1,f1,100,1,1\n";
	assert_int_equal(kd_trace_parse_2019("inv.csv", inv, strlen(inv), "dur.csv", dur,
	                                     strlen(dur), "Average", 1, &u, &err),
	                 -EINVAL);
	assert_non_null(strstr(kd_error_msg(err), "inv.csv:3: column 6 (minute 2)"));
}

static void azure2019_bad_invocations(void **state)
{
	(void)state;
	const char *d = good_dur;
	bad19("", d, "inv.csv: empty file (no header)");
	bad19("Owner,HashApp,HashFunction,Trigger,1\n", d,
	      "inv.csv:1: header: column 1 is \"Owner\", \"HashOwner\" expected");
	bad19("HashOwner,HashApp,HashFunction\n", d,
	      "inv.csv:1: header: column 4 missing, \"Trigger\" expected");
	bad19("HashOwner,HashApp,HashFunction,Trigger\n", d, "inv.csv:1: header: no minute column");
	bad19("HashOwner,HashApp,HashFunction,Trigger,1,3\n", d,
	      "inv.csv:1: header: column 6 is \"3\", \"2\" expected");
	bad19(INV_HDR, d, "inv.csv: no function rows after the header");
	bad19(INV_HDR "o1,a1,f1,http,1,0\n", d, "inv.csv:2: 6 fields, the header has 7");
	bad19(INV_HDR "o1,a1,f1,http,1,0,1,2\n", d, "inv.csv:2: 8 fields, the header has 7");
	bad19(INV_HDR "o1,a1,f1,http,1,x,1\n", d,
	      "inv.csv:2: column 6 (minute 2): \"x\" is not a count");
	bad19(INV_HDR "o1,a1,f1,http,1,-1,1\n", d, "column 6 (minute 2): \"-1\" is not a count");
	bad19(INV_HDR "o1,a1,f1,http,1,1.5,1\n", d, "column 6 (minute 2): \"1.5\" is not a count");
	bad19(INV_HDR "o1,a1,f1,http,1,,1\n", d, "column 6 (minute 2): \"\" is not a count");
	bad19(INV_HDR "o1,a1,f1,http,1, 2,1\n", d, "column 6 (minute 2): \" 2\" is not a count");
	bad19(INV_HDR "o1,a1,f1,http,1,100000001,1\n", d,
	      "is not a count (an integer 0..100000000)");
	bad19(INV_HDR "o1,,f1,http,1,0,1\n", d, "inv.csv:2: column 2 (HashApp) is empty");
	bad19(INV_HDR "o1,a 1,f1,http,1,0,1\n", d, "column 2 (HashApp): \"a 1\" is not an id");
	bad19(INV_HDR "o1,a1,f1,ht/tp,1,0,1\n", d,
	      "column 4 (Trigger): \"ht/tp\" is not a trigger");
	bad19(INV_HDR "o1,a1,f1,http,1,0,1\no1,a1,f1,http,1,0,1\n", d,
	      "inv.csv:3: function o1/a1/f1 again (first on line 2)");
	bad19(INV_HDR "o1,a1,f1,http,1,0,1\n\no2,a2,f2,http,1,0,1\n", d, "inv.csv:3: empty line");
	bad19(INV_HDR "o1,a1,f1,http,1,0,1\n\n", d, "inv.csv:3: empty line");
	bad19(INV_HDR "o1,\"a1\",f1,http,1,0,1\n", d,
	      "inv.csv:2: '\"' at byte 4: quoted fields are not supported");
	bad19(INV_HDR "o1,a1,f1,http,1,0\t,1\n", d, "inv.csv:2: tab at byte 18");
	bad19(INV_HDR "o1,a1,f1,http,1,0\r,1\n", d, "inv.csv:2: control character 0x0d at byte 18");
	/* a NUL byte inside the buffer */
	struct kd_trace *t = NULL;
	kd_autoerr struct kd_error *err = NULL;
	const char inv[] = INV_HDR "o1,a1,f1,http,1,0\0,1\n";
	assert_int_equal(kd_trace_parse_2019("inv.csv", inv, sizeof(inv) - 1, "dur.csv", d,
	                                     strlen(d), "Average", 0, &t, &err),
	                 -EINVAL);
	assert_non_null(strstr(kd_error_msg(err), "inv.csv:2: control character 0x00 at byte 18"));
}

static void azure2019_bad_durations(void **state)
{
	(void)state;
	const char *i = INV_HDR "o1,a1,f1,http,1,0,12\n";
	bad19(i, "", "dur.csv: empty file (no header)");
	bad19(i, "HashOwner,HashApp,Function,Average\n", "dur.csv:1: header: column 3 is");
	bad19(i, "HashOwner,HashApp,HashFunction,Mean\no1,a1,f1,1\n",
	      "dur.csv:1: header: no column \"Average\"");
	bad19(i, "HashOwner,HashApp,HashFunction,Average,\n",
	      "dur.csv:1: header: column 5 has no name");
	bad19(i, DUR_HDR, "dur.csv: no row for function o1/a1/f1 (invocations line 2)");
	bad19(i, DUR_HDR "o2,a2,f2,1,1,1\n", "dur.csv: no row for function o1/a1/f1");
	bad19(i, DUR_HDR "o1,a1,f1,abc,1,1\n",
	      "dur.csv:2: column 4 (Average): \"abc\" is not a finite non-negative decimal number");
	bad19(i, DUR_HDR "o1,a1,f1,nan,1,1\n", "column 4 (Average): \"nan\" is not a finite");
	bad19(i, DUR_HDR "o1,a1,f1,inf,1,1\n", "column 4 (Average): \"inf\" is not a finite");
	bad19(i, DUR_HDR "o1,a1,f1,-5,1,1\n", "column 4 (Average): \"-5\" is not a finite");
	bad19(i, DUR_HDR "o1,a1,f1,0x10,1,1\n", "column 4 (Average): \"0x10\" is not a finite");
	bad19(i, DUR_HDR "o1,a1,f1,1e999,1,1\n", "column 4 (Average): \"1e999\" is not a finite");
	bad19(i, DUR_HDR "o1,a1,f1,,1,1\n", "column 4 (Average): \"\" is not a finite");
	bad19(i, DUR_HDR "o1,a1,f1,5,1,x\n",
	      "dur.csv:2: column 6 (Minimum): \"x\" is not a finite");
	bad19(i, DUR_HDR "o1,a1,f1,5,1\n", "dur.csv:2: 5 fields, the header has 6");
	bad19(i, DUR_HDR "o1,a1,f1,5,1,1\no1,a1,f1,6,1,1\n",
	      "dur.csv:3: function o1/a1/f1 again (first on line 2)");
	bad19(i, DUR_HDR "o1,a1,f1,86400001,1,1\n", "dur.csv:2: column 4 (Average): 8.64e+07 ms");
}

static void azure2019_example_files(void **state)
{
	(void)state;
	struct kd_trace *t = NULL;
	kd_autoerr struct kd_error *err = NULL;
	int rc = kd_trace_load_2019(
	    KD_SRC_DIR "/bench/trace/data/azure2019-example-invocations.csv",
	    KD_SRC_DIR "/bench/trace/data/azure2019-example-durations.csv", "Average", 0, &t, &err);
	if (rc)
		fail_msg("%s", kd_error_msg(err));
	assert_int_equal(t->n_fns, 4);
	assert_int_equal(t->n_minutes, 1440);
	static const double avg[] = {100, 500, 250, 125};
	static const unsigned first10[] = {50, 25, 25, 25};
	for (size_t f = 0; f < 4; f++) {
		assert_true(t->fns[f].duration_ms == avg[f]);
		unsigned sum = 0;
		for (size_t m = 0; m < 10; m++)
			sum += t->fns[f].counts[m];
		assert_int_equal(sum, first10[f]);
	}
	assert_string_equal(t->fns[3].trigger, "timer");
	kd_trace_free(t);
}

static void load_errors_name_the_file(void **state)
{
	(void)state;
	struct kd_trace *t = NULL;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_trace_load_2021("/nonexistent/trace.csv", 0, &t, &err), -ENOENT);
	assert_string_equal(kd_error_msg(err),
	                    "read /nonexistent/trace.csv: No such file or directory");
	assert_null(t);
	kd_autoerr struct kd_error *err2 = NULL;
	assert_true(kd_trace_load_2019(KD_SRC_DIR
	                               "/bench/trace/data/azure2019-example-invocations.csv",
	                               "/nonexistent/d.csv", "Average", 0, &t, &err2) < 0);
	assert_non_null(strstr(kd_error_msg(err2), "read /nonexistent/d.csv"));
	/* a directory is not a file */
	kd_autoerr struct kd_error *err3 = NULL;
	assert_true(kd_trace_load_2021("/", 0, &t, &err3) < 0);
	assert_non_null(strstr(kd_error_msg(err3), "read /:"));
	/* the size cap */
	char *buf = NULL;
	size_t len = 0;
	kd_autoerr struct kd_error *err4 = NULL;
	assert_int_equal(
	    kd_trace_read_file(KD_SRC_DIR "/bench/trace/data/README.md", 100, &buf, &len, &err4),
	    -EFBIG);
	assert_non_null(strstr(kd_error_msg(err4), "larger than 100 bytes"));
	assert_null(buf);
}

#define H21 "app,func,end_timestamp,duration\n"

static void azure2021_invocations(void **state)
{
	(void)state;
	const char buf[] = H21 "a1,f1,10.5,0.5\n"
	                       "a2,f2,0.0775,0.078\n" /* start -0.0005: within 1 ms, 0 */
	                       "a1,f1,130,10\n"
	                       "a1,f2,61,1"; /* another function: (app, func) pairs */
	struct kd_trace *t = NULL;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_trace_parse_2021("t.csv", buf, strlen(buf), 0, &t, &err), 0);
	assert_int_equal(t->format, KD_TRACE_AZURE2021);
	assert_int_equal(t->n_fns, 3);
	assert_int_equal(t->n_fns_file, 3);
	assert_string_equal(t->fns[0].app, "a1");
	assert_string_equal(t->fns[0].func, "f1");
	assert_null(t->fns[0].owner);
	assert_string_equal(t->fns[1].app, "a2");
	assert_string_equal(t->fns[2].func, "f2");
	assert_int_equal(t->fns[2].line, 5);
	assert_int_equal(t->n_invs, 4);
	assert_int_equal(t->invs[0].fn, 0);
	assert_true(fabs(t->invs[0].start_s - 10.0) < 1e-9);
	assert_true(fabs(t->invs[0].duration_ms - 500.0) < 1e-9);
	assert_true(t->invs[1].start_s == 0);
	assert_int_equal(t->invs[2].fn, 0);
	assert_true(fabs(t->invs[2].start_s - 120.0) < 1e-9);
	assert_int_equal(t->invs[3].fn, 2);
	assert_int_equal(t->invs[3].line, 5);
	assert_int_equal(t->n_minutes, 3); /* the last start, 120 s, is in minute 3 */
	kd_trace_free(t);
	/* the first function only */
	assert_int_equal(kd_trace_parse_2021("t.csv", buf, strlen(buf), 1, &t, &err), 0);
	assert_int_equal(t->n_fns, 1);
	assert_int_equal(t->n_fns_file, 3);
	assert_int_equal(t->n_invs, 2);
	kd_trace_free(t);
}

static void bad21(const char *buf, const char *want)
{
	struct kd_trace *t = &untouched_trace;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_trace_parse_2021("t.csv", buf, strlen(buf), 0, &t, &err), -EINVAL);
	assert_ptr_equal(t, &untouched_trace);
	if (!strstr(kd_error_msg(err), want))
		fail_msg("error \"%s\" does not contain \"%s\"", kd_error_msg(err), want);
}

static void azure2021_bad_rows(void **state)
{
	(void)state;
	bad21("", "t.csv: empty file (no header)");
	bad21("app,func,end,duration\n", "t.csv:1: header: column 3 is \"end\", \"end_timestamp\"");
	bad21("app,func,end_timestamp,duration,x\n", "t.csv:1: header: 5 columns, 4 expected");
	bad21(H21, "t.csv: no invocation rows after the header");
	bad21(H21 "a,f,1\n", "t.csv:2: 3 fields, the header has 4");
	bad21(H21 "a,f,1,0.5\na,,1,1\n", "t.csv:3: column 2 (func) is empty");
	bad21(H21 "a,f,x,0.5\n", "t.csv:2: column 3 (end_timestamp): \"x\" is not a finite");
	bad21(H21 "a,f,1,nan\n", "t.csv:2: column 4 (duration): \"nan\" is not a finite");
	bad21(H21 "a,f,1,-0.5\n", "column 4 (duration): \"-0.5\" is not a finite");
	bad21(H21 "a,f,1,1.5\n", "t.csv:2: start = end_timestamp - duration = -0.500000 s");
	bad21(H21 "a,f,2e9,1\n", "t.csv:2: column 3 (end_timestamp): 2e+09 s is past 1e9 s");
	bad21(H21 "a,f,200000,100000\n",
	      "t.csv:2: column 4 (duration): 100000 s is more than a day");
}

static void azure2021_example_file(void **state)
{
	(void)state;
	struct kd_trace *t = NULL;
	kd_autoerr struct kd_error *err = NULL;
	int rc = kd_trace_load_2021(KD_SRC_DIR "/bench/trace/data/azure2021-invocations-200.csv", 0,
	                            &t, &err);
	if (rc)
		fail_msg("%s", kd_error_msg(err));
	assert_int_equal(t->n_invs, 199);
	assert_int_equal(t->n_fns, 31);
	assert_int_equal(t->n_minutes, 21);
	kd_trace_free(t);
}

static struct kd_trace_target *targets(const char *buf, const char *arm, size_t n)
{
	struct kd_trace_target *tg = NULL;
	kd_autoerr struct kd_error *err = NULL;
	if (kd_trace_parse_targets("tg.tsv", buf, strlen(buf), arm, n, &tg, &err) != 0)
		fail_msg("targets: %s", kd_error_msg(err));
	return tg;
}

static void targets_of_one_arm(void **state)
{
	(void)state;
	const char buf[] = "# fn\tarm\turl\thost\n"
	                   "2\tkd\thttp://10.88.0.2/\tkd-t2.ns.example.com\n"
	                   "1\tvanilla\thttp://10.88.0.2\tvanilla-t1.ns.example.com\n"
	                   "1\tkd\thttp://10.88.0.2:8080/p//\t-\n"
	                   "3\tkd\thttps://h\tx\n" /* past n_fns: ignored */
	                   "2\tvanilla\thttp://10.88.0.2\tvanilla-t2.ns.example.com\r\n";
	struct kd_trace_target *kd = targets(buf, "kd", 2);
	assert_string_equal(kd[0].url, "http://10.88.0.2:8080/p");
	assert_null(kd[0].host);
	assert_int_equal(kd[0].line, 4);
	assert_string_equal(kd[1].url, "http://10.88.0.2");
	assert_string_equal(kd[1].host, "kd-t2.ns.example.com");
	kd_trace_targets_free(kd, 2);
	struct kd_trace_target *v = targets(buf, "vanilla", 2);
	assert_string_equal(v[0].host, "vanilla-t1.ns.example.com");
	assert_string_equal(v[1].host, "vanilla-t2.ns.example.com");
	kd_trace_targets_free(v, 2);
}

static void badtg(const char *buf, size_t n, const char *want)
{
	struct kd_trace_target *tg = &untouched_target;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_trace_parse_targets("tg.tsv", buf, strlen(buf), "kd", n, &tg, &err),
	                 -EINVAL);
	assert_ptr_equal(tg, &untouched_target);
	if (!strstr(kd_error_msg(err), want))
		fail_msg("error \"%s\" does not contain \"%s\"", kd_error_msg(err), want);
}

static void targets_refused(void **state)
{
	(void)state;
	badtg("", 1, "tg.tsv: no row for function 1 of arm kd");
	badtg("1\tvanilla\thttp://h\t-\n", 1, "tg.tsv: no row for function 1 of arm kd");
	badtg("1\tkd\thttp://h\n", 1, "tg.tsv:1: 3 fields, 4 expected (INDEX, ARM, URL, HOST)");
	badtg("1,kd,http://h,-\n", 1, "tg.tsv:1: 1 fields, 4 expected");
	badtg("0\tkd\thttp://h\t-\n", 1,
	      "tg.tsv:1: column 1 (function index): \"0\" is not an index");
	badtg("x\tkd\thttp://h\t-\n", 1, "column 1 (function index): \"x\"");
	badtg("1\tk d\thttp://h\t-\n", 1, "tg.tsv:1: column 2 (arm): \"k d\" is not an arm name");
	badtg("1\tkd\tftp://h\t-\n", 1, "tg.tsv:1: column 3 (URL): \"ftp://h\" is not an http://");
	badtg("1\tkd\thttp://\t-\n", 1, "column 3 (URL): \"http://\" is not");
	badtg("1\tkd\thttp:///x\t-\n", 1, "column 3 (URL): \"http:///x\" is not");
	badtg("1\tkd\thttp://h/?a=1\t-\n", 1, "column 3 (URL): \"http://h/?a=1\" has a query");
	badtg("1\tkd\thttp://h\t\n", 1, "tg.tsv:1: column 4 (Host): \"\" is not a Host header");
	badtg("1\tkd\thttp://h\ta b\n", 1, "column 4 (Host): \"a b\" is not a Host header");
	badtg("1\tkd\thttp://h\t-\n1\tkd\thttp://g\t-\n", 1,
	      "tg.tsv:2: function 1 of arm kd again (first on line 1)");
	badtg("1\tkd\thttp://h\t-\n\n", 1, "tg.tsv:2: empty line");
	/* rows of other arms are checked too */
	badtg("1\tkd\thttp://h\t-\n1\tvanilla\thttp://h\t\n", 1, "tg.tsv:2: column 4 (Host)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(azure2019_counts_joined_with_durations),
	    cmocka_unit_test(azure2019_crlf_and_other_columns),
	    cmocka_unit_test(azure2019_first_functions_kept),
	    cmocka_unit_test(azure2019_bad_invocations),
	    cmocka_unit_test(azure2019_bad_durations),
	    cmocka_unit_test(azure2019_example_files),
	    cmocka_unit_test(load_errors_name_the_file),
	    cmocka_unit_test(azure2021_invocations),
	    cmocka_unit_test(azure2021_bad_rows),
	    cmocka_unit_test(azure2021_example_file),
	    cmocka_unit_test(targets_of_one_arm),
	    cmocka_unit_test(targets_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
