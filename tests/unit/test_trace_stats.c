/* Unit tests for bench/trace/trace_stats.c: nearest-rank percentiles as bench/lib/kdstats.py
 * computes them (the same double arithmetic, including its rounding at p = 7 of 100), the
 * arithmetic and geometric means, the slowdown floor, and a replay summary on a hand-computed
 * table: warm-up discarded, failures counted by kind, scheduling latency, per-invocation and
 * per-function slowdowns (both means), a function without an ok invocation left out. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../bench/trace/trace_stats.h"

#define near(a, b) assert_true(fabs((a) - (b)) < 1e-9)

static void nearest_rank_percentiles(void **state)
{
	(void)state;
	const double v[] = {15, 20, 35, 40, 50}; /* sorted */
	near(kd_trace_pct(v, 5, 0), 15);
	near(kd_trace_pct(v, 5, 5), 15);
	near(kd_trace_pct(v, 5, 30), 20);
	near(kd_trace_pct(v, 5, 40), 20);
	near(kd_trace_pct(v, 5, 50), 35);
	near(kd_trace_pct(v, 5, 99), 50);
	near(kd_trace_pct(v, 5, 100), 50);
	assert_true(isnan(kd_trace_pct(v, 0, 50)));
	near(kd_trace_pct(v, 1, 99), 15);
	/* kdstats: ceil(7 / 100.0 * 100) is 8 (7.000000000000001): the 8th sample */
	double h[100];
	for (int i = 0; i < 100; i++)
		h[i] = i + 1;
	near(kd_trace_pct(h, 100, 7), 8);
	near(kd_trace_pct(h, 100, 50), 50);
	near(kd_trace_pct(h, 100, 99), 99);
	/* unsorted input is sorted in place */
	double u[] = {40, 15, 50, 35, 20};
	near(kd_trace_pct_of(u, 5, 50), 35);
	near(u[0], 15);
	near(u[4], 50);
}

static void arithmetic_and_geometric_means(void **state)
{
	(void)state;
	const double a[] = {1, 2, 4};
	near(kd_trace_mean(a, 3), 7.0 / 3.0);
	near(kd_trace_geomean(a, 3), 2);
	const double b[] = {0.5, 2};
	near(kd_trace_mean(b, 2), 1.25);
	near(kd_trace_geomean(b, 2), 1);
	const double z[] = {3, 0};
	near(kd_trace_geomean(z, 2), 0);
	const double neg[] = {3, -1};
	assert_true(isnan(kd_trace_geomean(neg, 2)));
	assert_true(isnan(kd_trace_mean(a, 0)));
	assert_true(isnan(kd_trace_geomean(a, 0)));
}

static void slowdown_floor(void **state)
{
	(void)state;
	near(kd_trace_slowdown(300, 100, 1), 3);
	near(kd_trace_slowdown(5, 0, 1), 5);
	near(kd_trace_slowdown(5, 0.5, 1), 5);
	near(kd_trace_slowdown(5, 0, 10), 0.5);
}

static void summary_of_a_hand_computed_table(void **state)
{
	(void)state;
	/* fn req warm  outcome                 lag   resp  sched  slowdown
	 * 0  100  yes  ok                      0.5   150   -      - (discarded)
	 * 0  100  no   ok                      2     110   10     1.1
	 * 1  0    no   ok (floor 1 ms)         0     4     4      4
	 * 0  100  no   ok                      1     130   30     1.3
	 * 1  200  no   ok                      4     800   600    4
	 * 1  200  no   http 503                3     -
	 * 0  100  no   unsent                  -     -
	 * 2  50   no   transport               0     -
	 * fn 0: arith (1.1 + 1.3) / 2 = 1.2, geo sqrt(1.1 * 1.3) = 1.19583; fn 1: 4 and 4;
	 * fn 2: no ok call. */
	struct kd_trace_call calls[8] = {
	    {.fn = 0, .at_us = 0, .req_ms = 100, .warmup = true},
	    {.fn = 0, .at_us = 1000, .req_ms = 100},
	    {.fn = 1, .at_us = 2000, .req_ms = 0},
	    {.fn = 0, .at_us = 3000, .req_ms = 100},
	    {.fn = 1, .at_us = 4000, .req_ms = 200, .capped = true},
	    {.fn = 1, .at_us = 5000, .req_ms = 200},
	    {.fn = 0, .at_us = 6000, .req_ms = 100},
	    {.fn = 2, .at_us = 7000, .req_ms = 50},
	};
	struct kd_trace_result r[8] = {
	    {.status = KD_TRACE_OK, .sent_us = 500, .response_us = 150000, .http_code = 200},
	    {.status = KD_TRACE_OK, .sent_us = 3000, .response_us = 110000, .http_code = 200},
	    {.status = KD_TRACE_OK, .sent_us = 2000, .response_us = 4000, .http_code = 200},
	    {.status = KD_TRACE_OK, .sent_us = 4000, .response_us = 130000, .http_code = 200},
	    {.status = KD_TRACE_OK, .sent_us = 8000, .response_us = 800000, .http_code = 200},
	    {.status = KD_TRACE_HTTP, .sent_us = 8000, .response_us = 5000, .http_code = 503},
	    {.status = KD_TRACE_UNSENT, .sent_us = -1},
	    {.status = KD_TRACE_TRANSPORT, .sent_us = 7000, .curl_code = 7},
	};
	struct kd_trace_sched s = {
	    .calls = calls, .n = 8, .n_fns = 3, .capped = 1, .truncated = 2, .warmup = 1};
	struct kd_trace_summary m;
	kd_trace_summarize(&s, r, 1.0, &m);
	assert_int_equal(m.scheduled, 8);
	assert_int_equal(m.sent, 7);
	assert_int_equal(m.discarded, 1);
	assert_int_equal(m.measured, 7);
	assert_int_equal(m.ok, 4);
	assert_int_equal(m.failed, 3);
	assert_int_equal(m.f_http, 1);
	assert_int_equal(m.f_unsent, 1);
	assert_int_equal(m.f_transport, 1);
	assert_int_equal(m.f_body, 0);
	assert_int_equal(m.f_aborted, 0);
	assert_int_equal(m.warmup_failed, 0);
	assert_int_equal(m.capped, 1);
	assert_int_equal(m.truncated, 2);
	assert_int_equal(m.floored, 1);
	/* lags 0.5 2 0 1 4 3 0 -> 0 0 0.5 1 2 3 4: p50 the 4th, p99 the 7th */
	near(m.lag_p50, 1);
	near(m.lag_p99, 4);
	near(m.lag_max, 4);
	/* ok responses 4 110 130 800: p50 the 2nd, p99 the 4th */
	near(m.resp_p50, 110);
	near(m.resp_p99, 800);
	near(m.sched_p50, 10);
	near(m.sched_p99, 600);
	near(m.slow_p50, 1.3);
	near(m.slow_p99, 4);
	assert_int_equal(m.fns_measured, 2);
	assert_int_equal(m.n_fns, 3);
	assert_int_equal(m.fns[0].n, 2);
	near(m.fns[0].arith, 1.2);
	near(m.fns[0].geo, sqrt(1.1 * 1.3));
	assert_int_equal(m.fns[1].n, 2);
	near(m.fns[1].arith, 4);
	near(m.fns[1].geo, 4);
	assert_int_equal(m.fns[2].n, 0);
	assert_true(isnan(m.fns[2].arith));
	near(m.fn_arith_p50, 1.2);
	near(m.fn_arith_p99, 4);
	near(m.fn_geo_p50, sqrt(1.1 * 1.3));
	near(m.fn_geo_p99, 4);
	kd_trace_summary_fini(&m);
}

static void summary_without_samples(void **state)
{
	(void)state;
	struct kd_trace_sched s = {.n = 0, .n_fns = 1};
	struct kd_trace_summary m;
	kd_trace_summarize(&s, NULL, 1.0, &m);
	assert_int_equal(m.scheduled, 0);
	assert_int_equal(m.ok, 0);
	assert_true(isnan(m.sched_p99));
	assert_true(isnan(m.fn_arith_p50));
	assert_true(isnan(m.lag_max));
	kd_trace_summary_fini(&m);
}

static void status_names(void **state)
{
	(void)state;
	assert_string_equal(kd_trace_status_name(KD_TRACE_OK), "ok");
	assert_string_equal(kd_trace_status_name(KD_TRACE_UNSENT), "unsent");
	assert_string_equal(kd_trace_status_name(KD_TRACE_HTTP), "http");
	assert_string_equal(kd_trace_status_name(KD_TRACE_BODY), "body");
	assert_string_equal(kd_trace_status_name(KD_TRACE_TRANSPORT), "transport");
	assert_string_equal(kd_trace_status_name(KD_TRACE_ABORTED), "aborted");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(nearest_rank_percentiles),
	    cmocka_unit_test(arithmetic_and_geometric_means),
	    cmocka_unit_test(slowdown_floor),
	    cmocka_unit_test(summary_of_a_hand_computed_table),
	    cmocka_unit_test(summary_without_samples),
	    cmocka_unit_test(status_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
