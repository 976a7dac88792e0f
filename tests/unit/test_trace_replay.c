/* Unit tests for bench/trace/trace_replay.c, on loopback: a tiny trace replayed against
 * functions/sleep (spawned on 127.0.0.1) has every invocation answered ok, each response time at
 * least its requested duration and no call sent before its time; against the test HTTP server:
 * the Host header and ?ms= of each request, failures classified (non-200, a body that is not
 * sleep's, the body check off, a refused connection, the per-request timeout), the deadline
 * aborting what is in flight and leaving the rest unsent, and max_inflight bounding the requests
 * in flight (a call waits for a free slot: its send lag shows it). */
#include <curl/curl.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../bench/trace/trace_replay.h"
#include "kd/common.h"
#include "kd_test_httpd.h"
#include "kd_test_proc.h"

static pid_t fn_pid; /* functions/sleep, when a test runs one */

/* A schedule from 2021 rows ("app,func,end,duration" lines), compress 1, no cap below 10 s. */
static struct kd_trace_sched *sched21(const char *rows, struct kd_trace **tp)
{
	kd_autofree char *buf = kd_xasprintf("app,func,end_timestamp,duration\n%s", rows);
	kd_autoerr struct kd_error *err = NULL;
	struct kd_trace *t = NULL;
	if (kd_trace_parse_2021("t.csv", buf, strlen(buf), 0, &t, &err) != 0)
		fail_msg("%s", kd_error_msg(err));
	struct kd_trace_sched_opts o = {
	    .compress = 1, .max_duration_ms = 10000, .max_invocations = 1000};
	struct kd_trace_sched *s = NULL;
	if (kd_trace_sched_build(t, &o, &s, &err) != 0)
		fail_msg("%s", kd_error_msg(err));
	*tp = t;
	return s;
}

static struct kd_trace_replay_opts ropts(void)
{
	return (struct kd_trace_replay_opts){
	    .timeout_ms = 5000, .max_inflight = 100, .check_body = true};
}

/* n targets at url; Host "fn<i>.<domain>" (i 1-based), or none for domain NULL */
static struct kd_trace_target *targets_all(size_t n, const char *url, const char *domain)
{
	struct kd_trace_target *tg = kd_xcalloc(n, sizeof(*tg));
	for (size_t i = 0; i < n; i++) {
		tg[i].url = kd_xstrdup(url);
		tg[i].host = domain ? kd_xasprintf("fn%zu.%s", i + 1, domain) : NULL;
	}
	return tg;
}

static void replay_against_functions_sleep(void **state)
{
	(void)state;
	uint16_t port = 0;
	fn_pid = kd_test_fn_start("sleep", "2", &port);
	struct kd_trace *t = NULL;
	/* 2 functions, 9 invocations in the first 0.9 s; one of 0 ms, one capped below */
	struct kd_trace_sched *s = sched21("a,f,0.25,0.2\n"
	                                   "a,g,0.15,0.1\n"
	                                   "a,f,0.35,0.3\n"
	                                   "a,g,0.3,0\n"
	                                   "a,f,0.8,0.5\n"
	                                   "a,g,0.65,0.15\n"
	                                   "a,g,0.75,0.2\n"
	                                   "a,f,0.7,0.1\n"
	                                   "a,f,0.9,0.05\n",
	                                   &t);
	assert_int_equal(s->n, 9);
	kd_autofree char *url = kd_xasprintf("http://127.0.0.1:%u/", port);
	struct kd_trace_target *tg = targets_all(2, url, "example");
	struct kd_trace_result r[9];
	struct kd_trace_replay_info info;
	struct kd_trace_replay_opts o = ropts();
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_trace_replay(s, tg, &o, r, &info, &err), 0);
	assert_false(info.deadline_hit);
	assert_false(info.interrupted);
	assert_int_equal(info.aborted, 0);
	assert_int_equal(info.unsent, 0);
	assert_true(info.peak_inflight >= 1);
	for (size_t i = 0; i < 9; i++) {
		const struct kd_trace_call *c = &s->calls[i];
		if (r[i].status != KD_TRACE_OK)
			fail_msg("call %zu: %s, http %ld, curl %d", i,
			         kd_trace_status_name(r[i].status), r[i].http_code, r[i].curl_code);
		assert_int_equal(r[i].http_code, 200);
		assert_true(r[i].sent_us >= (int64_t)c->at_us); /* never early */
		assert_true(r[i].response_us >= (int64_t)c->req_ms * 1000);
		assert_true(r[i].client_us >= r[i].response_us - 1000);
		assert_true(r[i].bytes > strlen("slept 0 ms"));
	}
	struct kd_trace_summary m;
	kd_trace_summarize(s, r, 1, &m);
	assert_int_equal(m.ok, 9);
	assert_int_equal(m.failed, 0);
	assert_int_equal(m.fns_measured, 2);
	assert_true(m.sched_p50 >= 0); /* response >= requested: latency >= 0 */
	kd_trace_summary_fini(&m);
	kd_trace_targets_free(tg, 2);
	kd_trace_sched_free(s);
	kd_trace_free(t);
}

/* The test server: functions/sleep's answer for ?ms=N after N ms, except by Host:
 * "status.x" 503, "body.x" a body that is not sleep's. */
static void handler(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req, void *arg)
{
	(void)arg;
	kd_autofree char *host = kd_test_httpd_req_header(req, "Host");
	const char *ms = strstr(req->query, "ms=");
	unsigned n = ms ? (unsigned)strtoul(ms + 3, NULL, 10) : 0;
	if (host && strcmp(host, "status.x") == 0) {
		kd_test_httpd_respond(conn, 503, "text/plain", "no\n");
		return;
	}
	if (host && strcmp(host, "body.x") == 0) {
		kd_test_httpd_respond(conn, 200, "text/plain", "Hello from x\n");
		return;
	}
	kd_test_httpd_sleep(conn, n);
	char body[64];
	snprintf(body, sizeof(body), "slept %u ms (idle) in test\n", n);
	kd_test_httpd_respond(conn, 200, "text/plain", body);
}

static void requests_carry_host_and_duration(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(handler, NULL, NULL, NULL);
	struct kd_trace *t = NULL;
	struct kd_trace_sched *s = sched21("a,f,0.02,0.02\na,g,0.05,0.03\n", &t);
	struct kd_trace_target *tg = targets_all(2, kd_test_httpd_url(srv), "ns.example");
	struct kd_trace_result r[2];
	struct kd_trace_replay_info info;
	struct kd_trace_replay_opts o = ropts();
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_trace_replay(s, tg, &o, r, &info, &err), 0);
	assert_int_equal(kd_test_httpd_count(srv), 2);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(r[i].status, KD_TRACE_OK);
		struct kd_test_httpd_req q;
		assert_true(kd_test_httpd_get(srv, i, &q));
		kd_autofree char *host = kd_test_httpd_req_header(&q, "Host");
		assert_string_equal(q.method, "GET");
		assert_string_equal(q.path, "/");
		/* f at 0 s for 20 ms, g at 0.02 s for 30 ms: they arrive in that order */
		kd_autofree char *want = kd_xasprintf("ms=%u", s->calls[i].req_ms);
		assert_string_equal(q.query, want);
		kd_autofree char *want_host =
		    kd_xasprintf("fn%u.ns.example", (unsigned)s->calls[i].fn + 1);
		assert_string_equal(host, want_host);
		kd_test_httpd_req_fini(&q);
	}
	kd_trace_targets_free(tg, 2);
	kd_trace_sched_free(s);
	kd_trace_free(t);
	kd_test_httpd_stop(srv);
}

static void failures_are_classified(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(handler, NULL, NULL, NULL);
	struct kd_trace *t = NULL;
	/* functions a/1 .. a/5 at 0, 10, 20, 30, 40 ms */
	struct kd_trace_sched *s = sched21("a,1,0.01,0.01\n"
	                                   "a,2,0.02,0.01\n"
	                                   "a,3,0.03,0.01\n"
	                                   "a,4,0.04,0.01\n"
	                                   "a,5,3.05,3.01\n",
	                                   &t);
	assert_int_equal(s->n_fns, 5);
	struct kd_trace_target *tg = targets_all(5, kd_test_httpd_url(srv), NULL);
	free(tg[0].host);
	tg[0].host = kd_xstrdup("status.x");
	free(tg[1].host);
	tg[1].host = kd_xstrdup("body.x");
	free(tg[2].url); /* a port nothing listens on */
	tg[2].url = kd_xasprintf("http://127.0.0.1:%u", kd_test_free_port());
	/* 4: ok; 5: 3010 ms requested, more than the timeout */
	struct kd_trace_result r[5];
	struct kd_trace_replay_info info;
	struct kd_trace_replay_opts o = ropts();
	o.timeout_ms = 300;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_trace_replay(s, tg, &o, r, &info, &err), 0);
	enum kd_trace_status want[5] = {KD_TRACE_HTTP, KD_TRACE_BODY, KD_TRACE_TRANSPORT,
	                                KD_TRACE_OK, KD_TRACE_TRANSPORT};
	for (size_t i = 0; i < 5; i++) {
		size_t fn = s->calls[i].fn;
		if (r[i].status != want[fn])
			fail_msg("function %zu: %s, want %s", fn + 1,
			         kd_trace_status_name(r[i].status), kd_trace_status_name(want[fn]));
		if (fn == 0)
			assert_int_equal(r[i].http_code, 503);
		if (fn == 2)
			assert_int_equal(r[i].curl_code, CURLE_COULDNT_CONNECT);
		if (fn == 4) {
			assert_int_equal(r[i].curl_code, CURLE_OPERATION_TIMEDOUT);
			assert_true(r[i].client_us < 3000000);
		}
	}
	/* without the body check, sleep's answer is not required */
	o.check_body = false;
	assert_int_equal(kd_trace_replay(s, tg, &o, r, &info, &err), 0);
	for (size_t i = 0; i < 5; i++)
		if (s->calls[i].fn == 1)
			assert_int_equal(r[i].status, KD_TRACE_OK);
	kd_trace_targets_free(tg, 5);
	kd_trace_sched_free(s);
	kd_trace_free(t);
	kd_test_httpd_stop(srv);
}

static void the_deadline_aborts_and_leaves_the_rest_unsent(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(handler, NULL, NULL, NULL);
	struct kd_trace *t = NULL;
	/* 3 s at 0 s, then a call at 1.1 s */
	struct kd_trace_sched *s = sched21("a,f,3,3\na,f,1.2,0.1\n", &t);
	struct kd_trace_target *tg = targets_all(1, kd_test_httpd_url(srv), NULL);
	struct kd_trace_result r[2];
	struct kd_trace_replay_info info;
	struct kd_trace_replay_opts o = ropts();
	o.deadline_ms = 300;
	kd_autoerr struct kd_error *err = NULL;
	uint64_t t0 = kd_now_ns();
	assert_int_equal(kd_trace_replay(s, tg, &o, r, &info, &err), -ETIMEDOUT);
	assert_true(kd_now_ns() - t0 < 2500000000ull);
	assert_true(info.deadline_hit);
	assert_false(info.interrupted);
	assert_int_equal(info.deadline_ms, 300);
	assert_int_equal(info.aborted, 1);
	assert_int_equal(info.unsent, 1);
	assert_int_equal(r[0].status, KD_TRACE_ABORTED);
	assert_true(r[0].sent_us >= 0);
	assert_int_equal(r[1].status, KD_TRACE_UNSENT);
	assert_int_equal(r[1].sent_us, -1);
	/* the default deadline: the span + the timeout + 5 s */
	o.deadline_ms = 0;
	o.timeout_ms = 200;
	assert_int_equal(kd_trace_replay(s, tg, &o, r, &info, &err), 0);
	assert_int_equal(info.deadline_ms, 1100 + 200 + 5000);
	assert_int_equal(r[0].status, KD_TRACE_TRANSPORT);
	assert_int_equal(r[1].status, KD_TRACE_OK);
	kd_trace_targets_free(tg, 1);
	kd_trace_sched_free(s);
	kd_trace_free(t);
	kd_test_httpd_stop(srv);
}

static void max_inflight_bounds_the_requests_in_flight(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(handler, NULL, NULL, NULL);
	struct kd_trace *t = NULL;
	/* 4 calls of 100 ms, all due at 0 s */
	struct kd_trace_sched *s =
	    sched21("a,f,0.1,0.1\na,f,0.1,0.1\na,f,0.1,0.1\na,f,0.1,0.1\n", &t);
	struct kd_trace_target *tg = targets_all(1, kd_test_httpd_url(srv), NULL);
	struct kd_trace_result r[4];
	struct kd_trace_replay_info info;
	struct kd_trace_replay_opts o = ropts();
	o.max_inflight = 1;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_trace_replay(s, tg, &o, r, &info, &err), 0);
	assert_int_equal(info.peak_inflight, 1);
	assert_int_equal(kd_test_httpd_peak_connections(srv), 1);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(r[i].status, KD_TRACE_OK);
	/* one after another: the 4th waited for three answers of at least 100 ms each */
	assert_true(r[3].sent_us - (int64_t)s->calls[3].at_us >= 300000);
	/* unbounded: all four at once */
	o.max_inflight = 100;
	assert_int_equal(kd_trace_replay(s, tg, &o, r, &info, &err), 0);
	assert_int_equal(info.peak_inflight, 4);
	kd_trace_targets_free(tg, 1);
	kd_trace_sched_free(s);
	kd_trace_free(t);
	kd_test_httpd_stop(srv);
}

static void bad_options_refused(void **state)
{
	(void)state;
	struct kd_trace_sched s = {.n = 0, .n_fns = 0};
	struct kd_trace_replay_opts o = ropts();
	o.timeout_ms = 0;
	struct kd_trace_replay_info info;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_trace_replay(&s, NULL, &o, NULL, &info, &err), -EINVAL);
	assert_non_null(err);
	/* an empty schedule is done at once */
	o = ropts();
	assert_int_equal(kd_trace_replay(&s, NULL, &o, NULL, &info, NULL), 0);
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
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(replay_against_functions_sleep, stop_srv),
	    cmocka_unit_test(requests_carry_host_and_duration),
	    cmocka_unit_test(failures_are_classified),
	    cmocka_unit_test(the_deadline_aborts_and_leaves_the_rest_unsent),
	    cmocka_unit_test(max_inflight_bounds_the_requests_in_flight),
	    cmocka_unit_test(bad_options_refused),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
