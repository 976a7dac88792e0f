/* Unit tests for bench/trace/trace_sched.c: a 2019 schedule is reproducible with its seed (and
 * another seed gives another one), keeps each function's count of each minute with every arrival
 * inside its minute, is sorted, and a function's arrivals do not change with the functions or
 * minutes kept; compression divides the wall offsets; durations are capped and counted; warm-up
 * flags follow the wall offset; the invocation bound keeps the earliest; the 2021 schedule is
 * the recorded starts; options that do not fit the trace are refused. */
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

#include "../../bench/trace/trace_sched.h"
#include "kd/error.h"

/* What the output parameter points at before a refusal, which must leave it so. */
static struct kd_trace_sched untouched_sched;

/* 3 functions, 4 minutes */
static const char inv[] = "HashOwner,HashApp,HashFunction,Trigger,1,2,3,4\n"
                          "o,a,f0,http,5,0,3,7\n"
                          "o,a,f1,http,1,2,0,0\n"
                          "o,a,f2,timer,0,0,0,10\n";
static const char dur[] = "HashOwner,HashApp,HashFunction,Average\n"
                          "o,a,f0,100\n"
                          "o,a,f1,2500.4\n"
                          "o,a,f2,0.4\n";
static const uint32_t counts[3][4] = {{5, 0, 3, 7}, {1, 2, 0, 0}, {0, 0, 0, 10}};

static struct kd_trace *trace19(size_t max_fns)
{
	struct kd_trace *t = NULL;
	kd_autoerr struct kd_error *err = NULL;
	if (kd_trace_parse_2019("inv", inv, strlen(inv), "dur", dur, strlen(dur), "Average",
	                        max_fns, &t, &err) != 0)
		fail_msg("%s", kd_error_msg(err));
	return t;
}

static struct kd_trace_sched_opts opts(void)
{
	return (struct kd_trace_sched_opts){.seed = KD_TRACE_SEED_DEFAULT,
	                                    .compress = 1,
	                                    .max_duration_ms = 2000,
	                                    .max_invocations = 100000};
}

static struct kd_trace_sched *build(const struct kd_trace *t, const struct kd_trace_sched_opts *o)
{
	struct kd_trace_sched *s = NULL;
	kd_autoerr struct kd_error *err = NULL;
	if (kd_trace_sched_build(t, o, &s, &err) != 0)
		fail_msg("%s", kd_error_msg(err));
	return s;
}

static void counts_kept_in_their_minutes_and_sorted(void **state)
{
	(void)state;
	struct kd_trace *t = trace19(0);
	struct kd_trace_sched_opts o = opts();
	struct kd_trace_sched *s = build(t, &o);
	assert_int_equal(s->n, 28);
	assert_int_equal(s->in_window, 28);
	assert_int_equal(s->truncated, 0);
	assert_int_equal(s->minutes, 4);
	assert_int_equal(s->n_fns, 3);
	uint32_t seen[3][4] = {{0}};
	for (size_t i = 0; i < s->n; i++) {
		const struct kd_trace_call *c = &s->calls[i];
		assert_true(c->fn < 3 && c->minute < 4);
		seen[c->fn][c->minute]++;
		assert_true(c->trace_s >= 60.0 * c->minute);
		assert_true(c->trace_s < 60.0 * (c->minute + 1));
		if (i > 0)
			assert_true(s->calls[i - 1].trace_s <= c->trace_s);
		assert_int_equal(c->at_us, (uint64_t)llround(c->trace_s * 1e6));
	}
	assert_memory_equal(seen, counts, sizeof(seen));
	kd_trace_sched_free(s);
	kd_trace_free(t);
}

static void same_seed_same_schedule(void **state)
{
	(void)state;
	struct kd_trace *t = trace19(0);
	struct kd_trace_sched_opts o = opts();
	struct kd_trace_sched *a = build(t, &o), *b = build(t, &o);
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		assert_int_equal(a->calls[i].fn, b->calls[i].fn);
		assert_true(a->calls[i].trace_s == b->calls[i].trace_s);
	}
	o.seed = 7;
	struct kd_trace_sched *c = build(t, &o);
	assert_int_equal(c->n, a->n);
	size_t differ = 0;
	for (size_t i = 0; i < a->n; i++)
		differ += a->calls[i].trace_s != c->calls[i].trace_s;
	assert_true(differ > a->n / 2);
	kd_trace_sched_free(a);
	kd_trace_sched_free(b);
	kd_trace_sched_free(c);
	kd_trace_free(t);
}

/* The arrivals of function 0 in the first m minutes, in order. */
static size_t fn0_times(const struct kd_trace_sched *s, size_t minutes, double *out)
{
	size_t n = 0;
	for (size_t i = 0; i < s->n; i++)
		if (s->calls[i].fn == 0 && s->calls[i].minute < minutes)
			out[n++] = s->calls[i].trace_s;
	return n;
}

static void a_function_does_not_depend_on_what_else_is_kept(void **state)
{
	(void)state;
	struct kd_trace *all = trace19(0), *one = trace19(1);
	struct kd_trace_sched_opts o = opts();
	struct kd_trace_sched *s_all = build(all, &o);
	struct kd_trace_sched *s_one = build(one, &o);
	o.minutes = 3;
	struct kd_trace_sched *s_three = build(all, &o);
	assert_int_equal(s_one->n, 15);
	assert_int_equal(s_three->n, 5 + 3 + 1 + 2);
	double x[32], y[32], z[32];
	size_t nx = fn0_times(s_all, 3, x), ny = fn0_times(s_one, 3, y),
	       nz = fn0_times(s_three, 3, z);
	assert_int_equal(nx, 8);
	assert_int_equal(ny, 8);
	assert_int_equal(nz, 8);
	assert_memory_equal(x, y, nx * sizeof(double));
	assert_memory_equal(x, z, nx * sizeof(double));
	kd_trace_sched_free(s_all);
	kd_trace_sched_free(s_one);
	kd_trace_sched_free(s_three);
	kd_trace_free(all);
	kd_trace_free(one);
}

static void compression_divides_wall_offsets(void **state)
{
	(void)state;
	struct kd_trace *t = trace19(0);
	struct kd_trace_sched_opts o = opts();
	struct kd_trace_sched *plain = build(t, &o);
	o.compress = 5;
	struct kd_trace_sched *fast = build(t, &o);
	assert_int_equal(fast->n, plain->n);
	uint64_t span = 0;
	for (size_t i = 0; i < fast->n; i++) {
		assert_true(fast->calls[i].trace_s == plain->calls[i].trace_s);
		assert_int_equal(fast->calls[i].at_us,
		                 (uint64_t)llround(plain->calls[i].trace_s / 5.0 * 1e6));
		assert_int_equal(fast->calls[i].req_ms,
		                 plain->calls[i].req_ms); /* not compressed */
		span = fast->calls[i].at_us > span ? fast->calls[i].at_us : span;
	}
	assert_int_equal(fast->span_us, span);
	assert_true(fast->span_us < 48u * 1000000u); /* the 4 minutes in under 48 s */
	assert_true(fast->compress == 5);
	kd_trace_sched_free(plain);
	kd_trace_sched_free(fast);
	kd_trace_free(t);
}

static void durations_rounded_and_capped_warmup_flagged(void **state)
{
	(void)state;
	struct kd_trace *t = trace19(0);
	struct kd_trace_sched_opts o = opts();
	o.warmup_ms = 90000; /* minute 1 and half of minute 2 */
	struct kd_trace_sched *s = build(t, &o);
	size_t capped = 0, warm = 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct kd_trace_call *c = &s->calls[i];
		static const uint32_t want_trace[] = {100, 2500, 0};
		assert_int_equal(c->trace_ms, want_trace[c->fn]);
		assert_int_equal(c->req_ms, c->fn == 1 ? 2000 : c->trace_ms);
		assert_int_equal(c->capped, c->fn == 1);
		assert_int_equal(c->warmup, c->at_us < 90000000u);
		capped += c->capped;
		warm += c->warmup;
		if (c->minute == 0)
			assert_true(c->warmup);
		if (c->minute >= 2)
			assert_false(c->warmup);
	}
	assert_int_equal(s->capped, 3);
	assert_int_equal(capped, 3);
	assert_int_equal(s->warmup, warm);
	kd_trace_sched_free(s);
	kd_trace_free(t);
}

static void the_bound_keeps_the_earliest(void **state)
{
	(void)state;
	struct kd_trace *t = trace19(0);
	struct kd_trace_sched_opts o = opts();
	struct kd_trace_sched *full = build(t, &o);
	o.max_invocations = 10;
	struct kd_trace_sched *s = build(t, &o);
	assert_int_equal(s->n, 10);
	assert_int_equal(s->in_window, 28);
	assert_int_equal(s->truncated, 18);
	for (size_t i = 0; i < 10; i++) {
		assert_int_equal(s->calls[i].fn, full->calls[i].fn);
		assert_true(s->calls[i].trace_s == full->calls[i].trace_s);
	}
	assert_int_equal(s->span_us, s->calls[9].at_us);
	kd_trace_sched_free(s);
	kd_trace_sched_free(full);
	kd_trace_free(t);
}

static void arrivals_spread_over_the_minute(void **state)
{
	(void)state;
	/* 6000 arrivals in one minute: each 6-second tenth holds about 600 (a fixed seed, so
	 * this is a check of the generator, not a statistical test that could fail by chance) */
	const char i1[] = "HashOwner,HashApp,HashFunction,Trigger,1\no,a,f,http,6000\n";
	const char d1[] = "HashOwner,HashApp,HashFunction,Average\no,a,f,1\n";
	struct kd_trace *t = NULL;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(
	    kd_trace_parse_2019("i", i1, strlen(i1), "d", d1, strlen(d1), "Average", 0, &t, &err),
	    0);
	struct kd_trace_sched_opts o = opts();
	struct kd_trace_sched *s = build(t, &o);
	assert_int_equal(s->n, 6000);
	unsigned bins[10] = {0};
	for (size_t i = 0; i < s->n; i++)
		bins[(size_t)(s->calls[i].trace_s / 6.0)]++;
	for (int b = 0; b < 10; b++)
		assert_true(bins[b] > 500 && bins[b] < 700);
	kd_trace_sched_free(s);
	kd_trace_free(t);
}

static void azure2021_recorded_starts(void **state)
{
	(void)state;
	const char buf[] = "app,func,end_timestamp,duration\n"
	                   "a,f,70,1.5\n"
	                   "a,g,2,1\n"
	                   "a,f,200,0.0004\n"
	                   "a,g,1.25,0.25\n";
	struct kd_trace *t = NULL;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_trace_parse_2021("t", buf, strlen(buf), 0, &t, &err), 0);
	struct kd_trace_sched_opts o = opts();
	o.compress = 2;
	struct kd_trace_sched *s = build(t, &o);
	assert_int_equal(s->n, 4);
	static const double starts[] = {1.0, 1.0, 68.5, 199.9996};
	static const uint32_t fns[] = {1, 1, 0, 0}, ms[] = {1000, 250, 1500, 0};
	for (size_t i = 0; i < 4; i++) {
		assert_true(fabs(s->calls[i].trace_s - starts[i]) < 1e-9);
		assert_int_equal(s->calls[i].fn, fns[i]);
		assert_int_equal(s->calls[i].trace_ms, ms[i]);
		assert_int_equal(s->calls[i].at_us, (uint64_t)llround(starts[i] / 2 * 1e6));
	}
	assert_int_equal(s->calls[2].minute, 1);
	assert_int_equal(s->calls[3].minute, 3);
	/* same start: the generation order (file order) decides */
	assert_true(s->calls[0].gen < s->calls[1].gen);
	o.minutes = 2;
	struct kd_trace_sched *w = build(t, &o);
	assert_int_equal(w->n, 3);
	assert_int_equal(w->in_window, 3);
	kd_trace_sched_free(s);
	kd_trace_sched_free(w);
	kd_trace_free(t);
}

static void options_that_do_not_fit_are_refused(void **state)
{
	(void)state;
	struct kd_trace *t = trace19(0);
	struct kd_trace_sched *s = &untouched_sched;
	struct kd_trace_sched_opts o = opts();
	o.minutes = 5;
	kd_autoerr struct kd_error *e1 = NULL;
	assert_int_equal(kd_trace_sched_build(t, &o, &s, &e1), -EINVAL);
	assert_string_equal(kd_error_msg(e1), "minutes 5: the trace has 4");
	o = opts();
	o.compress = 0;
	kd_autoerr struct kd_error *e2 = NULL;
	assert_int_equal(kd_trace_sched_build(t, &o, &s, &e2), -EINVAL);
	assert_non_null(strstr(kd_error_msg(e2), "a factor > 0 expected"));
	o = opts();
	o.max_invocations = 0;
	kd_autoerr struct kd_error *e3 = NULL;
	assert_int_equal(kd_trace_sched_build(t, &o, &s, &e3), -EINVAL);
	assert_ptr_equal(s, &untouched_sched);
	kd_trace_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(counts_kept_in_their_minutes_and_sorted),
	    cmocka_unit_test(same_seed_same_schedule),
	    cmocka_unit_test(a_function_does_not_depend_on_what_else_is_kept),
	    cmocka_unit_test(compression_divides_wall_offsets),
	    cmocka_unit_test(durations_rounded_and_capped_warmup_flagged),
	    cmocka_unit_test(the_bound_keeps_the_earliest),
	    cmocka_unit_test(arrivals_spread_over_the_minute),
	    cmocka_unit_test(azure2021_recorded_starts),
	    cmocka_unit_test(options_that_do_not_fit_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
