/* Unit tests for plugins/decider-kpa: the KPA algorithm compiled in directly (kpa.c is included
 * below), with Knative's own test cases ported one to one from knative-v1.23.0. Cases named
 * Test<Name> come from, and keep the inputs and expected outputs of:
 *   pkg/autoscaler/scaling/autoscaler_test.go (EBC compared with Knative's +-1 tolerance),
 *   pkg/autoscaler/aggregation/bucketing_test.go,
 *   pkg/autoscaler/aggregation/max/window_test.go and timewindow_test.go,
 *   pkg/autoscaler/metrics/collector_test.go,
 *   pkg/autoscaler/config/config_test.go (TestNewConfig_*: the validation rules).
 * Knative's fake metric client becomes the stable/panic values passed to kpa_decide, the fake pod
 * counter the ready_pods argument. Go's time.Now() becomes T0, a fixed clock value deliberately not
 * aligned to a second; time.Time{} becomes 0. The plugin, through the real loader, is tested in
 * test_decider_kpa_plugin.c. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "../../plugins/decider-kpa/kpa.c" /* NOLINT(bugprone-suspicious-include) */

#define SEC                1000
#define MINUTE             (60 * SEC)
#define T0                 ((int64_t)1700000000123)
#define STABLE_WINDOW      (60 * SEC)
#define TARGET_UTILIZATION 0.75
#define ACTIVATOR_CAPACITY 150

/* --- helpers mirroring autoscaler_test.go ----------------------------------------------------- */

/* newTestAutoscalerWithScalingMetric: the spec every Knative decider test starts from. */
static struct kpa_spec test_spec(double target, double tbc, enum kpa_metric metric)
{
	struct kpa_spec s = {
	    .metric = metric,
	    .target_value = target,
	    .total_value = target / TARGET_UTILIZATION,
	    .target_burst_capacity = tbc,
	    .panic_threshold = 2,
	    .max_scale_up_rate = 10,
	    .max_scale_down_rate = 10,
	    .activator_capacity = ACTIVATOR_CAPACITY,
	    .stable_window_ms = STABLE_WINDOW,
	    .panic_window_ms = 6 * SEC,
	    .reachable = true,
	};
	return s;
}

/* newTestAutoscaler: ready count 1 at creation (2 if startInPanic), no delay window. */
static struct kpa_state *new_test_autoscaler(double target, double tbc, bool start_in_panic)
{
	struct kpa_spec s = test_spec(target, tbc, KPA_METRIC_CONCURRENCY);
	return kpa_state_new(&s, start_in_panic ? 2 : 1, T0);
}

static int32_t expected_ebc(double tot_cap, double target_bc, double recorded, double pods)
{
	return (int32_t)floor(tot_cap / TARGET_UTILIZATION * pods - target_bc - recorded);
}

/* expectScale: runs the decider on (stable, panic) with `ready` pods and compares like Knative
 * (EBC within +-1). */
static void expect_scale_at(struct kpa_state *a, int64_t now, int ready, double stable,
                            double panic, int32_t want_desired, int32_t want_ebc, int line)
{
	struct kpa_result r;
	int rc = kpa_decide(a, now, ready, stable, panic, &r);
	if (rc != 0 || !r.valid || r.desired != want_desired || abs(r.ebc - want_ebc) > 1)
		fail_msg("line %d: got rc=%d valid=%d desired=%d ebc=%d, want desired=%d ebc=%d",
		         line, rc, r.valid, r.desired, r.ebc, want_desired, want_ebc);
}
#define expect_scale(a, now, ready, s, p, d, e) expect_scale_at(a, now, ready, s, p, d, e, __LINE__)

/* --- autoscaler_test.go ----------------------------------------------------------------------- */

static struct kpa_spec delay_spec(bool reachable)
{
	/* TestAutoscalerScaleDownDelay*: no TotalValue, TBC 0 (EBC 0), panic threshold 100. */
	struct kpa_spec s = {
	    .target_value = 10,
	    .max_scale_down_rate = 10,
	    .max_scale_up_rate = 10,
	    .panic_threshold = 100,
	    .scale_down_delay_ms = 5 * MINUTE,
	    .reachable = reachable,
	};
	return s;
}

static void TestAutoscalerScaleDownDelay(void **state)
{
	(void)state;
	struct kpa_spec s = delay_spec(true);
	struct kpa_state *as = kpa_state_new(&s, 0, 0);
	const int64_t now = 0; /* time.Time{} */
	assert_true(as->has_delay);

	/* simple: scale up. */
	expect_scale(as, now + 2 * SEC, 0, 40, 40, 4, 0);
	/* five minutes pass at reduced concurrency - should not scale down (less than delay). */
	expect_scale(as, now + 5 * MINUTE, 0, 0, 0, 4, 0);
	/* five minutes and 2 seconds pass at reduced concurrency - now we scale down. */
	expect_scale(as, now + 5 * MINUTE + 2 * SEC, 0, 0, 0, 0, 0);

	/* gradual */
	expect_scale(as, now + 9 * MINUTE, 0, 40, 40, 4, 0);
	expect_scale(as, now + 10 * MINUTE, 0, 30, 30, 4, 0); /* 4 still dominates */
	expect_scale(as, now + 11 * MINUTE, 0, 0, 0, 4, 0);   /* still at 4 */
	expect_scale(as, now + 14 * MINUTE, 0, 0, 0, 3, 0);   /* 4 scrolls out, drop to 3 */
	expect_scale(as, now + 15 * MINUTE, 0, 0, 0, 0, 0);   /* everything scrolled out */
	kpa_state_free(as);
}

static void TestAutoscalerScaleDownDelayNotReachable(void **state)
{
	(void)state;
	struct kpa_spec s = delay_spec(true);
	struct kpa_state *as = kpa_state_new(&s, 0, 0);
	const int64_t now = 0;
	expect_scale(as, now + 2 * SEC, 0, 40, 40, 4, 0);
	expect_scale(as, now + 1 * MINUTE, 0, 0, 0, 4, 0);
	/* mark as unreachable to simulate another revision coming up */
	struct kpa_spec u = delay_spec(false);
	kpa_state_update(as, &u, now + 1 * MINUTE);
	/* 2 seconds pass at reduced concurrency - now we scale down. */
	expect_scale(as, now + 2 * SEC, 0, 0, 0, 0, 0);
	kpa_state_free(as);
}

static void TestAutoscalerScaleDownDelayZero(void **state)
{
	(void)state;
	struct kpa_spec s = delay_spec(true);
	s.scale_down_delay_ms = 0;
	s.reachable = false; /* the upstream spec leaves Reachable unset */
	struct kpa_state *as = kpa_state_new(&s, 0, 0);
	assert_false(as->has_delay);
	expect_scale(as, 0, 0, 40, 40, 4, 0);
	/* With zero delay we should immediately scale down. */
	expect_scale(as, 500, 0, 20, 20, 2, 0);
	kpa_state_free(as);
}

static void TestAutoscalerNoDataNoAutoscale(void **state)
{
	(void)state;
	/* The metric client's error becomes "no data" of the collector: a revision that is scraped
	 * (TBC != -1) and has no stat for a whole window gets no decision. */
	struct kpa_state *a = new_test_autoscaler(10, 100, false);
	struct kpa_result r;
	assert_int_equal(kpa_scale(a, T0, 1, &r), -ENODATA);
	assert_false(r.valid);
	assert_int_equal(r.desired, 0);
	assert_int_equal(r.ebc, 0);
	assert_int_equal(a->latest_desired, -1);
	kpa_state_free(a);
}

static void TestAutoscalerStartMetrics(void **state)
{
	(void)state;
	struct kpa_state *a = new_test_autoscaler(10, 100, true);
	assert_true(a->panicking); /* panicMetric(true) */
	assert_int_equal(a->max_panic_pods, 2);
	kpa_state_free(a);
}

static void TestAutoscalerMetrics(void **state)
{
	(void)state;
	struct kpa_state *a = new_test_autoscaler(10, 100, false);
	assert_false(a->panicking); /* "Non-panic created autoscaler." */
	struct kpa_result r;
	assert_int_equal(kpa_decide(a, T0, 1, 50, 50, &r), 0);
	assert_int_equal(r.desired, 5);
	assert_true(abs(r.ebc - expected_ebc(10, 100, 50, 1)) <= 1);
	assert_true(r.panicking); /* concurrencyDataPoints(..., true, 5, ...) */
	assert_true(r.stable_value == 50 && r.panic_value == 50);
	kpa_state_free(a);
}

static void TestAutoscalerMetricsWithRPS(void **state)
{
	(void)state;
	struct kpa_spec s = test_spec(10, 100, KPA_METRIC_RPS);
	struct kpa_state *a = kpa_state_new(&s, 1, T0);
	struct kpa_result r;
	/* PanicRPS 99, StableRPS 100 */
	assert_int_equal(kpa_decide(a, T0 + 61 * SEC, 1, 100, 99, &r), 0);
	assert_int_equal(r.desired, 10);
	assert_true(abs(r.ebc - expected_ebc(10, 100, 99, 1)) <= 1);
	assert_true(r.panicking);
	kpa_state_free(a);
}

static void TestAutoscalerStableModeIncreaseWithConcurrencyDefault(void **state)
{
	(void)state;
	struct kpa_state *a = new_test_autoscaler(10, 101, false);
	expect_scale(a, T0, 1, 50, 10, 5, expected_ebc(10, 101, 10, 1));
	expect_scale(a, T0, 1, 100, 10, 10, expected_ebc(10, 101, 10, 1));
	kpa_state_free(a);
}

static void TestAutoscalerStableModeIncreaseWithRPS(void **state)
{
	(void)state;
	struct kpa_spec s = test_spec(10, 101, KPA_METRIC_RPS);
	struct kpa_state *a = kpa_state_new(&s, 1, T0);
	expect_scale(a, T0, 1, 50, 50, 5, expected_ebc(10, 101, 50, 1));
	expect_scale(a, T0, 1, 100, 99, 10, expected_ebc(10, 101, 99, 1));
	kpa_state_free(a);
}

static void TestAutoscalerUnpanicAfterSlowIncrease(void **state)
{
	(void)state;
	/* Do initial jump from 10 to 25 pods. */
	struct kpa_state *a = new_test_autoscaler(1, 98, false);
	int64_t start = T0, tm = start;
	expect_scale(a, tm, 10, 11, 25, 25, expected_ebc(1, 98, 25, 10));
	assert_true(a->panicking);
	assert_int_equal(a->panic_time_ms, tm);
	/* Half of the stable window has passed, and we've been adding 1 pod per cycle. */
	tm += STABLE_WINDOW / 2;
	expect_scale(a, tm, 25 + 15, 30, 41, 41, expected_ebc(1, 98, 41, 40));
	assert_int_equal(a->panic_time_ms, start); /* "Panic Time should not have moved" */
	/* Now at the end. Panic must end. And +30 pods. */
	tm += STABLE_WINDOW / 2 + KPA_TICK_MS;
	expect_scale(a, tm, 25 + 30, 50, 56, 50 /* no longer in panic */,
	             expected_ebc(1, 98, 56, 55));
	assert_false(a->panicking);
	kpa_state_free(a);
}

static void TestAutoscalerExtendPanicWindow(void **state)
{
	(void)state;
	struct kpa_state *a = new_test_autoscaler(1, 98, false);
	int64_t tm = T0;
	expect_scale(a, tm, 10, 11, 25, 25, expected_ebc(1, 98, 25, 10));
	assert_int_equal(a->panic_time_ms, tm);
	/* Half of the stable window has passed, and we're still surging. */
	tm += STABLE_WINDOW / 2;
	expect_scale(a, tm, 25 + 15, 30, 80, 80, expected_ebc(1, 98, 80, 40));
	assert_int_equal(a->panic_time_ms, tm);
	kpa_state_free(a);
}

static void TestAutoscalerStableModeDecrease(void **state)
{
	(void)state;
	struct kpa_state *a = new_test_autoscaler(10, 98, false);
	expect_scale(a, T0, 8, 100, 100, 10, expected_ebc(10, 98, 100, 8));
	expect_scale(a, T0, 8, 50, 50, 5, expected_ebc(10, 98, 50, 8));
	kpa_state_free(a);
}

static void TestAutoscalerStableModeNoTrafficScaleToZero(void **state)
{
	(void)state;
	struct kpa_state *a = new_test_autoscaler(10, 75, false);
	expect_scale(a, T0, 1, 1, 0, 1, expected_ebc(10, 75, 0, 1));
	expect_scale(a, T0, 1, 0, 0, 0, expected_ebc(10, 75, 0, 1));
	kpa_state_free(a);
}

static void TestAutoscalerActivationScale(void **state)
{
	(void)state;
	struct kpa_state *a = new_test_autoscaler(10, 75, false);
	a->spec.activation_scale = 2;
	expect_scale(a, T0, 1, 0, 0, 0, expected_ebc(10, 75, 0, 1));
	expect_scale(a, T0, 1, 1, 0, 2, expected_ebc(10, 75, 0, 1));
	kpa_state_free(a);
}

static void TestAutoscalerPanicModeExponentialTrackAndStabilize(void **state)
{
	(void)state;
	struct kpa_state *a = new_test_autoscaler(1, 101, false);
	expect_scale(a, T0, 1, 6, 6, 6, expected_ebc(1, 101, 6, 1));

	int64_t tm = T0 + 7; /* a later time.Now() */
	expect_scale(a, tm, 6, 36, 36, 36, expected_ebc(1, 101, 36, 6));
	assert_int_equal(a->panic_time_ms, tm);

	tm += SEC;
	expect_scale(a, tm, 36, 216, 216, 216, expected_ebc(1, 101, 216, 36));
	assert_int_equal(a->panic_time_ms, tm);

	expect_scale(a, tm, 216, 1296, 1296, 1296, expected_ebc(1, 101, 1296, 216));
	assert_int_equal(a->panic_time_ms, tm);

	tm += SEC;
	expect_scale(a, tm, 1296, 1296, 1296, 1296, expected_ebc(1, 101, 1296, 1296));
	kpa_state_free(a);
}

/* TestAutoscalerScale: the table. */
struct scale_case {
	const char *label;
	double target, tbc, stable, panic;
	void (*prep)(struct kpa_state *a);
	int base_scale;
	int32_t want_scale, want_ebc;
};

static void prep_panicking_5(struct kpa_state *a)
{
	a->panicking = true;
	a->panic_time_ms = T0 - 5 * SEC;
	a->max_panic_pods = 5;
}

static void prep_small_up_rate(struct kpa_state *a)
{
	a->spec.max_scale_up_rate = 1.1;
}

static void prep_small_down_rate(struct kpa_state *a)
{
	a->spec.max_scale_down_rate = 1.1;
}

static void prep_small_down_rate_unreachable(struct kpa_state *a)
{
	a->spec.max_scale_down_rate = 1.1;
	a->spec.reachable = false;
}

static void TestAutoscalerScale(void **state)
{
	(void)state;
	const struct scale_case cases[] = {
	    {"AutoscalerNoDataAtZeroNoAutoscale", 10, 100, 0, 0, NULL, 1, 0,
	     expected_ebc(10, 100, 0, 1)},
	    {"AutoscalerNoDataAtZeroNoAutoscaleWithExplicitEPs", 10, 100, 0, 0, NULL, 1, 0,
	     expected_ebc(10, 100, 0, 1)},
	    {"AutoscalerStableModeUnlimitedTBC", 181, -1, 21, 26, NULL, 1, 1, -1},
	    {"Autoscaler0TBC", 10, 0, 50, 49, NULL, 1, 5, 0},
	    {"AutoscalerStableModeNoChange", 10, 100, 50, 50, NULL, 1, 5,
	     expected_ebc(10, 100, 50, 1)},
	    {"AutoscalerPanicStableLargerThanPanic", 1, 100, 50, 30, prep_panicking_5, 5, 50,
	     expected_ebc(1, 100, 30, 5)},
	    {"AutoscalerPanicStableLessThanPanic", 1, 100, 20, 30, prep_panicking_5, 5, 30,
	     expected_ebc(1, 100, 30, 5)},
	    {"AutoscalerStableModeNoChangeAlreadyScaled", 10, 100, 50, 50, NULL, 5, 5,
	     expected_ebc(10, 100, 50, 5)},
	    {"AutoscalerStableModeIncreaseWithSmallScaleUpRate", 1, 1982, 3, 3.1,
	     prep_small_up_rate, 2, 3, expected_ebc(1, 1982, 3.1, 2)},
	    {"AutoscalerStableModeDecreaseWithSmallScaleDownRate", 10, 1982, 1, 1,
	     prep_small_down_rate, 100, 90, expected_ebc(10, 1982, 1, 100)},
	    {"AutoscalerStableModeDecreaseNonReachable", 10, 1982, 1, 1,
	     prep_small_down_rate_unreachable, 100, 1, expected_ebc(10, 1982, 1, 100)},
	    {"AutoscalerPanicModeDoublePodCount", 10, 84, 50, 100, NULL, 1, 10,
	     expected_ebc(10, 84, 100, 1)},
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(cases); i++) {
		const struct scale_case *c = &cases[i];
		struct kpa_state *a = new_test_autoscaler(c->target, c->tbc, false);
		if (c->prep)
			c->prep(a);
		struct kpa_result r;
		int rc = kpa_decide(a, T0, c->base_scale, c->stable, c->panic, &r);
		if (rc != 0 || !r.valid || r.desired != c->want_scale ||
		    abs(r.ebc - c->want_ebc) > 1)
			fail_msg("%s: got desired=%d ebc=%d valid=%d, want %d %d", c->label,
			         r.desired, r.ebc, r.valid, c->want_scale, c->want_ebc);
		kpa_state_free(a);
	}
}

static void TestAutoscalerPanicThenUnPanicScaleDown(void **state)
{
	(void)state;
	struct kpa_state *a = new_test_autoscaler(10, 93, false);
	expect_scale(a, T0, 1, 100, 100, 10, expected_ebc(10, 93, 100, 1));
	int64_t panic_time = T0 + 3;
	expect_scale(a, panic_time, 10, 100, 1000, 100, expected_ebc(10, 93, 1000, 10));
	/* Traffic dropped off, scale stays as we're still in panic. */
	expect_scale(a, panic_time + 30 * SEC, 10, 1, 1, 100, expected_ebc(10, 93, 1, 10));
	/* Scale down after the StableWindow */
	expect_scale(a, panic_time + 61 * SEC, 10, 1, 1, 1, expected_ebc(10, 93, 1, 10));
	kpa_state_free(a);
}

/* Go's panicTime.Add(StableWindow).Before(now): panic lasts a full stable window after the last
 * surge, inclusive; one millisecond later it ends. */
static void panic_mode_lasts_exactly_a_stable_window(void **state)
{
	(void)state;
	struct kpa_state *a = new_test_autoscaler(10, 93, false);
	expect_scale(a, T0, 10, 100, 1000, 100, expected_ebc(10, 93, 1000, 10));
	assert_true(a->panicking);
	expect_scale(a, T0 + STABLE_WINDOW, 10, 1, 1, 100, expected_ebc(10, 93, 1, 10));
	assert_true(a->panicking);
	expect_scale(a, T0 + STABLE_WINDOW + 1, 10, 1, 1, 1, expected_ebc(10, 93, 1, 10));
	assert_false(a->panicking);
	assert_int_equal(a->max_panic_pods, 0);
	kpa_state_free(a);
}

static void TestAutoscalerRateLimitScaleUp(void **state)
{
	(void)state;
	struct kpa_state *a = new_test_autoscaler(10, 61, false);
	/* Need 100 pods but only scale x10 */
	expect_scale(a, T0, 1, 1000, 1001, 10, expected_ebc(10, 61, 1001, 1));
	/* Scale x10 again */
	expect_scale(a, T0, 10, 1000, 1001, 100, expected_ebc(10, 61, 1001, 10));
	kpa_state_free(a);
}

static void TestAutoscalerRateLimitScaleDown(void **state)
{
	(void)state;
	struct kpa_state *a = new_test_autoscaler(10, 61, false);
	/* Need 1 pods but can only scale down ten times, to 10. */
	expect_scale(a, T0, 100, 1, 1, 10, expected_ebc(10, 61, 1, 100));
	/* Scale /10 again. */
	expect_scale(a, T0, 10, 1, 1, 1, expected_ebc(10, 61, 1, 10));
	kpa_state_free(a);
}

static void TestCantCountPods(void **state)
{
	(void)state;
	struct kpa_state *a = new_test_autoscaler(10, 81, false);
	struct kpa_result r;
	assert_int_equal(kpa_decide(a, T0, -1, 1000, 888, &r), -EIO);
	assert_false(r.valid);
	kpa_record(a, T0, 1000, 0);
	assert_int_equal(kpa_scale(a, T0, -1, &r), -EIO);
	assert_false(r.valid);
	kpa_state_free(a);
}

static void TestAutoscalerUseOnePodAsMinimumIfEndpointsNotFound(void **state)
{
	(void)state;
	struct kpa_state *a = new_test_autoscaler(10, 81, false);
	expect_scale(a, T0, 0, 1000, 888, 10, expected_ebc(10, 81, 888, 0));
	kpa_state_free(a);
}

static void TestAutoscalerUpdateTarget(void **state)
{
	(void)state;
	struct kpa_state *a = new_test_autoscaler(10, 77, false);
	expect_scale(a, T0, 1, 100, 101, 10, expected_ebc(10, 77, 101, 1));
	struct kpa_spec s = {
	    .target_value = 1,
	    .total_value = 1 / TARGET_UTILIZATION,
	    .activator_capacity = 21,
	    .target_burst_capacity = 71,
	    .panic_threshold = 2,
	    .max_scale_down_rate = 10,
	    .max_scale_up_rate = 10,
	    .stable_window_ms = STABLE_WINDOW,
	    .panic_window_ms = 6 * SEC,
	};
	kpa_state_update(a, &s, T0);
	expect_scale(a, T0, 10, 100, 101, 100, expected_ebc(1, 71, 101, 10));
	kpa_state_free(a);
}

static void TestStartInPanicMode(void **state)
{
	(void)state;
	struct kpa_spec s = {
	    .target_value = 100,
	    .total_value = 120,
	    .target_burst_capacity = 11,
	    .panic_threshold = 220,
	    .max_scale_up_rate = 10,
	    .max_scale_down_rate = 10,
	    .stable_window_ms = STABLE_WINDOW,
	};
	for (int i = 0; i < 2; i++) {
		struct kpa_state *a = kpa_state_new(&s, i, T0);
		assert_false(a->panicking);
		assert_int_equal(a->max_panic_pods, i);
		kpa_state_free(a);
	}
	/* Now start with 2 and make sure we're in panic mode. */
	struct kpa_state *a = kpa_state_new(&s, 2, T0);
	assert_true(a->panicking);
	assert_int_equal(a->max_panic_pods, 2);
	kpa_state_free(a);
}

static void TestNewFail(void **state)
{
	(void)state;
	struct kpa_spec s = test_spec(100, 11, KPA_METRIC_CONCURRENCY);
	struct kpa_state *a = kpa_state_new(&s, -1, T0); /* pod counter error */
	assert_int_equal(a->max_panic_pods, 0);
	assert_false(a->panicking);
	kpa_state_free(a);
}

/* --- multiscaler.go: latest decision, Inform on change, Poke ---------------------------------- */

static void multiscaler_latest_scale_and_poke(void **state)
{
	(void)state;
	struct kpa_spec s = test_spec(10, -1, KPA_METRIC_CONCURRENCY);
	struct kpa_state *a = kpa_state_new(&s, 0, T0);
	assert_int_equal(a->latest_desired, -1);
	assert_int_equal(a->latest_ebc, -1); /* TBC -1 kept as is */
	assert_false(kpa_should_poke(a, 1)); /* unknown scale: no poke */

	/* TBC -1: no scrape target, so an empty window reads as 0 and the decision is 0. */
	struct kpa_result r;
	assert_int_equal(kpa_scale(a, T0, 0, &r), 0);
	assert_true(r.valid);
	assert_int_equal(r.desired, 0);
	assert_true(r.changed); /* -1 -> 0 */
	assert_false(kpa_should_poke(a, 0));
	assert_true(kpa_should_poke(a, 1)); /* at zero with load: decide now */

	assert_int_equal(kpa_scale(a, T0 + 1, 0, &r), 0);
	assert_false(r.changed); /* same desired, same EBC sign */

	kpa_record(a, T0 + 2 * SEC, 25, 0);
	assert_int_equal(kpa_scale(a, T0 + 2 * SEC, 0, &r), 0);
	assert_int_equal(r.desired, 3);
	assert_true(r.changed);
	assert_false(kpa_should_poke(a, 1));
	kpa_state_free(a);

	/* createScaler: EBC initial_scale * total - TBC. */
	s = test_spec(10, 100, KPA_METRIC_CONCURRENCY);
	s.initial_scale = 3;
	a = kpa_state_new(&s, 0, T0);
	assert_int_equal(a->latest_ebc, (int32_t)(3 * (10 / TARGET_UTILIZATION) - 100));
	kpa_state_free(a);
}

/* --- through the collector: records in, decision out ------------------------------------------ */

static void rps_metric_decides_on_rps_windows(void **state)
{
	(void)state;
	struct kpa_spec s = test_spec(10, 101, KPA_METRIC_RPS);
	struct kpa_state *a = kpa_state_new(&s, 1, T0);
	kpa_record(a, T0, 7 /* concurrency, ignored for rps */, 50);
	struct kpa_result r;
	assert_int_equal(kpa_scale(a, T0, 1, &r), 0);
	assert_int_equal(r.desired, 5);
	assert_true(r.stable_value == 50 && r.panic_value == 50);
	kpa_state_free(a);

	s.metric = KPA_METRIC_CONCURRENCY;
	a = kpa_state_new(&s, 1, T0);
	kpa_record(a, T0, 7, 50);
	assert_int_equal(kpa_scale(a, T0, 1, &r), 0);
	assert_int_equal(r.desired, 1); /* ceil(7/10) */
	kpa_state_free(a);
}

/* Stats from several sources in one second add up to the revision total; the stable window
 * averages per-second totals; a burst shows in the panic window first and triggers panic mode. */
static void sources_sum_and_burst_panics(void **state)
{
	(void)state;
	struct kpa_config cfg;
	kpa_config_defaults(&cfg);
	struct kpa_spec s;
	kpa_spec_init(&s, &cfg, NULL); /* target 70, stable 60s, panic 6s, threshold 2 */
	assert_true(s.panic_window_ms == 6 * SEC);
	struct kpa_state *a = kpa_state_new(&s, 1, T0);
	int64_t t = T0;
	/* 54 seconds of 35 (two activators x 17.5) per second on 1 pod. */
	for (int i = 0; i < 54; i++, t += SEC) {
		kpa_record(a, t, 17.5, 0);
		kpa_record(a, t, 17.5, 0);
	}
	/* Then 6 seconds of 700. */
	for (int i = 0; i < 6; i++, t += SEC)
		kpa_record(a, t, 700, 0);
	t -= SEC;
	double st = 0, pn = 0;
	assert_int_equal(kpa_observed(a, t, &st, &pn), 0);
	assert_true(fabs(pn - 700) < 1e-9);
	assert_true(fabs(st - (54 * 35.0 + 6 * 700.0) / 60) < 1e-6);
	struct kpa_result r;
	assert_int_equal(kpa_scale(a, t, 1, &r), 0);
	assert_true(r.panicking);        /* ceil(700/70)=10 >= 2 x 1 pod */
	assert_int_equal(r.desired, 10); /* panic value wins */
	assert_int_equal(r.ebc, (int32_t)floor(1 * 100.0 - 211 - 700)); /* default TBC 211 */
	kpa_state_free(a);
}

/* --- bucketing_test.go ------------------------------------------------------------------------ */

/* forEachBucket of the Go test, summing. */
static double bucket_sum(const struct kpa_buckets *b, int64_t now)
{
	now = trunc_to(now, b->granularity_ms);
	int64_t nb = (int64_t)b->n - (now - b->last_write_ms) / b->granularity_ms;
	int64_t si = time_to_index(b, b->last_write_ms);
	double sum = 0;
	for (int64_t i = 0; i < nb; i++, si--)
		sum += b->buckets[pos_mod(si, b->n)];
	return sum;
}

static double bucket_at(const struct kpa_buckets *b, int64_t t)
{
	return b->buckets[pos_mod(time_to_index(b, t), b->n)];
}

static void TestComputeDecayMultiplier(void **state)
{
	(void)state;
	const double nb[] = {100, 60, 40, 6};
	const double want[] = {KPA_MIN_EXPONENT, KPA_MIN_EXPONENT, 0.20567, 0.78456};
	for (size_t i = 0; i < KD_ARRAY_SIZE(nb); i++)
		assert_true(fabs(kpa_smoothing_coeff(nb[i]) - want[i]) < 1e-5);
}

static void TestTimedFloat64BucketsSimple(void **state)
{
	(void)state;
	int64_t trunc1 = trunc_to(T0, SEC), trunc5 = trunc_to(T0, 5 * SEC);
	struct kpa_buckets b;
	/* granularity = 1s */
	assert_int_equal(kpa_buckets_init(&b, 2 * MINUTE, SEC, false), 0);
	assert_true(kpa_buckets_is_empty(&b, trunc1));
	kpa_buckets_record(&b, trunc1, 1.0);        /* activator scale from 0 */
	kpa_buckets_record(&b, trunc1 + 100, 10.0); /* from scraping pod/sent by activator */
	kpa_buckets_record(&b, trunc1 + SEC, 1.0);
	kpa_buckets_record(&b, trunc1 + 3 * SEC, 1.0);
	assert_true(bucket_at(&b, trunc1) == 11.0);
	assert_true(bucket_at(&b, trunc1 + SEC) == 1.0);
	assert_true(bucket_at(&b, trunc1 + 2 * SEC) == 0.0);
	assert_true(bucket_at(&b, trunc1 + 3 * SEC) == 1.0);
	assert_true(bucket_sum(&b, trunc1 + MINUTE) == 13.0);
	kpa_buckets_fini(&b);
	/* granularity = 5s */
	assert_int_equal(kpa_buckets_init(&b, 2 * MINUTE, 5 * SEC, false), 0);
	kpa_buckets_record(&b, trunc5, 1.0);
	kpa_buckets_record(&b, trunc5 + 3 * SEC, 11.0); /* same bucket */
	kpa_buckets_record(&b, trunc5 + 6 * SEC, 1.0);  /* next bucket */
	assert_true(bucket_at(&b, trunc5) == 12.0);
	assert_true(bucket_at(&b, trunc5 + 5 * SEC) == 1.0);
	assert_true(bucket_sum(&b, trunc1 + MINUTE) == 13.0);
	kpa_buckets_fini(&b);
	/* empty */
	assert_int_equal(kpa_buckets_init(&b, 2 * MINUTE, SEC, false), 0);
	assert_true(kpa_buckets_is_empty(&b, trunc1));
	assert_true(kpa_buckets_average(&b, trunc1) == 0);
	kpa_buckets_fini(&b);
	/* bad granularity */
	assert_int_equal(kpa_buckets_init(&b, MINUTE, 1500, false), -EINVAL);
}

static void TestTimedFloat64BucketsManyReps(void **state)
{
	(void)state;
	int64_t trunc1 = trunc_to(T0, SEC);
	struct kpa_buckets b;
	assert_int_equal(kpa_buckets_init(&b, MINUTE, SEC, false), 0);
	for (int p = 0; p < 5; p++) {
		trunc1 += SEC;
		for (int t = 0; t < 5; t++)
			kpa_buckets_record(&b, trunc1, p + t);
	}
	assert_true(bucket_sum(&b, trunc1) == 100.0);
	assert_true(bucket_sum(&b, trunc1) == 100.0);
	kpa_buckets_fini(&b);
}

static void TestTimedFloat64BucketsManyRepsWithNonMonotonicalOrder(void **state)
{
	(void)state;
	int64_t start = trunc_to(T0, SEC), end = start;
	struct kpa_buckets b;
	assert_int_equal(kpa_buckets_init(&b, MINUTE, SEC, false), 0);
	const int d[] = {0, 3, 2, 1, 4};
	for (int p = 0; p < 5; p++) {
		end = start + d[p] * SEC;
		for (int t = 0; t < 5; t++)
			kpa_buckets_record(&b, end, p + t);
	}
	assert_true(bucket_sum(&b, end) == 100.0);
	kpa_buckets_fini(&b);
}

static void TestTimedFloat64BucketsWeightedAverage(void **state)
{
	(void)state;
	int64_t now = T0;
	struct kpa_buckets b;
	assert_int_equal(kpa_buckets_init(&b, 5 * SEC, SEC, true), 0);
	kpa_buckets_record(&b, now, 2);
	double want = 2 * b.smoothing;
	assert_true(kpa_buckets_average(&b, now) == want);
	/* Read one second in future, but no writes. */
	want *= 1 - b.smoothing;
	assert_true(kpa_buckets_average(&b, now + SEC) == want);
	/* Record some more data. */
	kpa_buckets_record(&b, now + SEC, 2);
	want += 2 * b.smoothing;
	assert_true(kpa_buckets_average(&b, now + SEC) == want);
	/* Fill the whole window, with [2, 3, 4, 5, 6] */
	for (int i = 0; i < 5; i++)
		kpa_buckets_record(&b, now + (2 + i) * SEC, i + 2);
	double m = b.smoothing;
	want = 6 * m + 5 * m * (1 - m) + 4 * m * (1 - m) * (1 - m) +
	       3 * m * (1 - m) * (1 - m) * (1 - m) + 2 * m * (1 - m) * (1 - m) * (1 - m) * (1 - m);
	assert_true(fabs(kpa_buckets_average(&b, now + 6 * SEC) - want) < 1e-12);
	/* Read from an empty window. */
	assert_true(kpa_buckets_average(&b, now + 16 * SEC) == 0);
	kpa_buckets_fini(&b);
}

static void TestTimedFloat64BucketsWindowAverage(void **state)
{
	(void)state;
	int64_t now = T0;
	struct kpa_buckets b;
	assert_int_equal(kpa_buckets_init(&b, 5 * SEC, SEC, false), 0);
	/* This verifies that we properly use firstWrite. Without that we'd get 0.2. */
	kpa_buckets_record(&b, now, 1);
	assert_true(kpa_buckets_average(&b, now) == 1.);
	for (int i = 1; i < 5; i++)
		kpa_buckets_record(&b, now + i * SEC, i + 1);
	assert_true(kpa_buckets_average(&b, now + 4 * SEC) == 15. / 5);
	/* Check when `now` lags behind. */
	assert_true(kpa_buckets_average(&b, now + 3600) == 15. / 5);
	/* Check with short hole. */
	assert_true(kpa_buckets_average(&b, now + 6 * SEC) == (15. - 1 - 2) / (5 - 2));
	/* Check with a long hole. */
	assert_true(kpa_buckets_average(&b, now + 10 * SEC) == 0.);
	/* Check write with holes. */
	kpa_buckets_record(&b, now + 6 * SEC, 91);
	assert_true(kpa_buckets_average(&b, now + 6 * SEC) == (15. - 1 - 2 + 91) / 5);
	/* Advance much farther. */
	now += MINUTE;
	kpa_buckets_record(&b, now, 1984);
	assert_true(kpa_buckets_average(&b, now) == 1984.);
	/* Check with an earlier time. */
	kpa_buckets_record(&b, now - 3 * SEC, 4);
	assert_true(kpa_buckets_average(&b, now) == (4. + 1984) / 4);
	/* One more second pass. */
	now += SEC;
	kpa_buckets_record(&b, now, 5);
	assert_true(kpa_buckets_average(&b, now) == (4. + 1984 + 5) / 5);
	/* Insert an earlier time again. */
	kpa_buckets_record(&b, now - 3 * SEC, 10);
	assert_true(kpa_buckets_average(&b, now) == (4. + 10 + 1984 + 5) / 5);
	/* Verify that we ignore the value which is too early. */
	kpa_buckets_record(&b, now - 6 * SEC, 10);
	assert_true(kpa_buckets_average(&b, now) == (4. + 10 + 1984 + 5) / 5);
	/* Verify that we ignore the value with bound timestamp. */
	kpa_buckets_record(&b, now - 5 * SEC, 10);
	assert_true(kpa_buckets_average(&b, now) == (4. + 10 + 1984 + 5) / 5);
	/* Verify we clear up the data when not receiving data for exact `window` period. */
	kpa_buckets_record(&b, now + 5 * SEC, 10);
	assert_true(kpa_buckets_average(&b, now + 5 * SEC) == 10.);
	kpa_buckets_fini(&b);
}

static void TestDescendingRecord(void **state)
{
	(void)state;
	int64_t now = T0;
	struct kpa_buckets b;
	assert_int_equal(kpa_buckets_init(&b, 5 * SEC, SEC, false), 0);
	for (int64_t i = 8 * SEC; i >= 0; i -= SEC)
		kpa_buckets_record(&b, now + i, 5);
	assert_true(kpa_buckets_average(&b, now + 5 * SEC) == 5.);
	kpa_buckets_fini(&b);
}

static void TestTimedFloat64BucketsHoles(void **state)
{
	(void)state;
	int64_t now = T0;
	struct kpa_buckets b;
	assert_int_equal(kpa_buckets_init(&b, 5 * SEC, SEC, false), 0);
	for (int i = 0; i < 5; i++)
		kpa_buckets_record(&b, now + i * SEC, i + 1);
	assert_true(bucket_sum(&b, now + 4 * SEC) == 15.);
	assert_true(kpa_buckets_average(&b, now + 4 * SEC) == 15. / 5);
	/* Write at 9th second: seconds 5, 6, 7 become 0. */
	kpa_buckets_record(&b, now + 8 * SEC, 2.);
	assert_true(bucket_sum(&b, now + 8 * SEC) == 7.);
	kpa_buckets_fini(&b);
}

static void fill_1_to_6(struct kpa_buckets *b, int64_t start)
{
	for (int i = 0; i < 6; i++)
		kpa_buckets_record(b, start + i * SEC, i + 1);
}

static void TestWeightedFloat64BucketsResizeWindow(void **state)
{
	(void)state;
	int64_t start = T0;
	struct kpa_buckets b;
	assert_int_equal(kpa_buckets_init(&b, 5 * SEC, SEC, true), 0);
	assert_true(fabs(b.smoothing - kpa_smoothing_coeff(5)) < 1e-12);
	fill_1_to_6(&b, start);
	int64_t now = start + 5 * SEC;
	assert_true(bucket_sum(&b, now) == 2. + 3 + 4 + 5 + 6);
	assert_true(kpa_round_digits(3, kpa_buckets_average(&b, now)) == 5.812);
	kpa_buckets_resize(&b, 10 * SEC, now);
	assert_int_equal(b.n, 10);
	assert_int_equal(b.window_ms, 10 * SEC);
	assert_true(fabs(b.smoothing - kpa_smoothing_coeff(10)) < 1e-12);
	kpa_buckets_fini(&b);
}

static void TestTimedFloat64BucketsResizeWindow(void **state)
{
	(void)state;
	int64_t start = T0;
	struct kpa_buckets b;
	assert_int_equal(kpa_buckets_init(&b, 5 * SEC, SEC, false), 0);
	fill_1_to_6(&b, start);
	int64_t now = start + 5 * SEC;
	const double want_initial = 2. + 3 + 4 + 5 + 6;
	assert_true(bucket_sum(&b, now) == want_initial);
	assert_true(kpa_buckets_average(&b, now) == want_initial / 5);
	/* Increase window. */
	kpa_buckets_resize(&b, 10 * SEC, now);
	assert_int_equal(b.n, 10);
	assert_int_equal(b.window_ms, 10 * SEC);
	assert_true(bucket_sum(&b, now) == want_initial);
	/* The average doesn't change, since we know we had at most 5 buckets. */
	assert_true(kpa_buckets_average(&b, now) == want_initial / 5);
	/* Add one more. */
	now += SEC;
	kpa_buckets_record(&b, now, 7);
	const double want_update = want_initial + 7;
	assert_true(bucket_sum(&b, now) == want_update);
	assert_true(kpa_buckets_average(&b, now) == kpa_round_digits(6, want_update / 6));
	/* Reduce window size: just the last 4 buckets remain. */
	kpa_buckets_resize(&b, 4 * SEC, now);
	assert_int_equal(b.n, 4);
	const double want_shrink = want_update - 2 - 3;
	assert_true(bucket_sum(&b, now) == want_shrink);
	assert_true(kpa_buckets_average(&b, now) == want_shrink / 4);
	/* Idempotence. */
	const double *ob = b.buckets;
	kpa_buckets_resize(&b, 4 * SEC, now);
	assert_ptr_equal(ob, b.buckets);
	kpa_buckets_fini(&b);
}

static void TestTimedFloat64BucketsWindowUpdate3sGranularity(void **state)
{
	(void)state;
	const int64_t g = 3 * SEC;
	int64_t trunc1 = trunc_to(T0, g);
	struct kpa_buckets b;
	assert_int_equal(kpa_buckets_init(&b, 5 * SEC, g, false), 0);
	assert_int_equal(b.n, 2); /* ceil(5/3) */
	kpa_buckets_record(&b, trunc1, 10);
	kpa_buckets_record(&b, trunc1 + 1 * SEC, 2);
	kpa_buckets_record(&b, trunc1 + 2 * SEC, 3);
	kpa_buckets_record(&b, trunc1 + 3 * SEC, 4);
	kpa_buckets_record(&b, trunc1 + 4 * SEC, 5);
	kpa_buckets_record(&b, trunc1 + 5 * SEC, 6);
	kpa_buckets_record(&b, trunc1 + 6 * SEC, 7); /* overrides the initial 15 (10+2+3) */
	double want = (4. + 5 + 6) + 7;
	assert_true(bucket_sum(&b, trunc1 + 6 * SEC) == want);
	kpa_buckets_resize(&b, 10 * SEC, trunc1 + 6 * SEC);
	assert_int_equal(b.n, 4);
	assert_int_equal(b.window_ms, 10 * SEC);
	assert_true(bucket_sum(&b, trunc1 + 6 * SEC) == want);
	kpa_buckets_record(&b, trunc1 + 9 * SEC + 300, 42);
	want += 42;
	assert_true(bucket_sum(&b, trunc1 + 9 * SEC) == want);
	kpa_buckets_resize(&b, 4 * SEC, trunc1 + 9 * SEC);
	assert_int_equal(b.n, 2);
	assert_true(bucket_sum(&b, trunc1 + 9 * SEC) == 42 + 7);
	const double *ob = b.buckets;
	kpa_buckets_resize(&b, 4 * SEC, trunc1 + 9 * SEC);
	assert_ptr_equal(ob, b.buckets);
	kpa_buckets_fini(&b);
}

static void TestTimedFloat64BucketsWindowUpdateNoOp(void **state)
{
	(void)state;
	int64_t start = T0 - MINUTE;
	struct kpa_buckets b;
	assert_int_equal(kpa_buckets_init(&b, 5 * SEC, SEC, false), 0);
	kpa_buckets_record(&b, start, 19.82);
	assert_true(b.has_first && b.first_write_ms == b.last_write_ms);
	kpa_buckets_resize(&b, 10 * SEC, T0); /* time.Now() is a minute after the write */
	assert_false(b.has_first);
	kpa_buckets_fini(&b);
}

static void TestRoundToNDigits(void **state)
{
	(void)state;
	assert_true(kpa_round_digits(6, 3.6e-17) == 0.);
	assert_true(kpa_round_digits(3, -3.6e-17) == 0.);
	assert_true(kpa_round_digits(3, 0.0004) == 0.);
	assert_true(kpa_round_digits(3, 1.2345) == 1.235);
	assert_true(kpa_round_digits(4, 1.2345) == 1.2345);
	assert_true(kpa_round_digits(6, 12345) == 12345.);
}

/* --- max/window_test.go, max/timewindow_test.go ----------------------------------------------- */

struct maxcase {
	const char *name;
	int n;
	int32_t values[17];
	int32_t expect[17];
	int index_mode; /* 0: i, 1: gaps (i>=3 -> i+3), 2: always 1 */
};

static void TestWindowMax(void **state)
{
	(void)state;
	static const struct maxcase cases[] = {
	    {"single value", 1, {1}, {1}, 0},
	    {"ascending values", 2, {1, 2}, {1, 2}, 0},
	    {"descending values", 2, {2, 1}, {2, 2}, 0},
	    {"up, down, up", 3, {1, 2, 1}, {1, 2, 2}, 0},
	    {"windowing out", 7, {5, 6, 5, 5, 5, 5, 5}, {5, 6, 6, 6, 6, 6, 5}, 0},
	    {"windowing out with gaps", 4, {6, 5, 2, 1}, {6, 6, 6, 2}, 1},
	    {"windowing out 2", 7, {5, 6, 5, 7, 5, 5, 1}, {5, 6, 6, 7, 7, 7, 7}, 0},
	    {"windowing out 3", 6, {5, 8, 5, 7, 5, 5}, {5, 8, 8, 8, 8, 8}, 0},
	    {"windowing out 4", 7, {5, 8, 5, 7, 5, 5, 1}, {5, 8, 8, 8, 8, 8, 7}, 0},
	    {"windowing out 5",
	     10,
	     {5, 8, 5, 7, 5, 5, 1, 4, 4, 4},
	     {5, 8, 8, 8, 8, 8, 7, 7, 5, 5},
	     0},
	    {"windowing out 6",
	     11,
	     {5, 8, 5, 7, 5, 5, 1, 4, 4, 4, 4},
	     {5, 8, 8, 8, 8, 8, 7, 7, 5, 5, 4},
	     0},
	    {"windowing out 7",
	     12,
	     {5, 8, 5, 7, 5, 5, 1, 4, 4, 4, 4, 9},
	     {5, 8, 8, 8, 8, 8, 7, 7, 5, 5, 4, 9},
	     0},
	    {"windowing out 8",
	     17,
	     {5, 8, 5, 7, 5, 5, 1, 4, 4, 4, 4, 9, 3, 4, 2, 1, 0},
	     {5, 8, 8, 8, 8, 8, 7, 7, 5, 5, 4, 9, 9, 9, 9, 9, 4},
	     0},
	    {"multiple with same index, ascending",
	     7,
	     {1, 2, 3, 4, 5, 6, 7},
	     {1, 2, 3, 4, 5, 6, 7},
	     2},
	    {"multiple with same index, descending",
	     7,
	     {7, 6, 5, 4, 3, 2, 1},
	     {7, 7, 7, 7, 7, 7, 7},
	     2},
	};
	for (size_t c = 0; c < KD_ARRAY_SIZE(cases); c++) {
		struct kpa_maxwin w;
		assert_int_equal(kpa_maxwin_init(&w, 5, 0), 0);
		for (int i = 0; i < cases[c].n; i++) {
			int64_t idx = i;
			if (cases[c].index_mode == 1 && i >= 3)
				idx = i + 3;
			else if (cases[c].index_mode == 2)
				idx = 1;
			kpa_maxwin_record_index(&w, idx, cases[c].values[i]);
			if (kpa_maxwin_current(&w) != cases[c].expect[i])
				fail_msg("%s: step %d: current %d, want %d", cases[c].name, i,
				         kpa_maxwin_current(&w), cases[c].expect[i]);
		}
		kpa_maxwin_fini(&w);
	}
}

static void TestTimedWindowMax(void **state)
{
	(void)state;
	struct {
		int64_t at[2];
		int32_t v[2];
		int32_t expect;
		int n;
	} cases[] = {
	    {{0, 0}, {5, 0}, 5, 1},       /* single value */
	    {{0, 500}, {6, 5}, 6, 2},     /* two values in same second */
	    {{0, SEC}, {5, 8}, 8, 2},     /* two values */
	    {{0, 6 * SEC}, {5, 4}, 4, 2}, /* time gap */
	};
	for (size_t c = 0; c < KD_ARRAY_SIZE(cases); c++) {
		struct kpa_maxwin w;
		assert_int_equal(kpa_maxwin_init(&w, 5 * SEC, SEC), 0);
		for (int i = 0; i < cases[c].n; i++)
			kpa_maxwin_record(&w, T0 + cases[c].at[i], cases[c].v[i]);
		assert_int_equal(kpa_maxwin_current(&w), cases[c].expect);
		kpa_maxwin_fini(&w);
	}
}

/* --- collector_test.go ------------------------------------------------------------------------ */

static void TestMetricCollectorNoDataError(void **state)
{
	(void)state;
	/* Scrape target set (TBC != -1): no data is an error for both metrics. */
	struct kpa_spec s = test_spec(10, 100, KPA_METRIC_CONCURRENCY);
	struct kpa_state *a = kpa_state_new(&s, 1, T0);
	double st = 0, pn = 0;
	assert_int_equal(kpa_observed(a, T0, &st, &pn), -ENODATA);
	a->spec.metric = KPA_METRIC_RPS;
	assert_int_equal(kpa_observed(a, T0, &st, &pn), -ENODATA);
	kpa_state_free(a);
}

static void TestMetricCollectorNoScraper(void **state)
{
	(void)state;
	/* No scrape target (TBC -1): empty windows read as 0, no error. */
	struct kpa_spec s = test_spec(10, -1, KPA_METRIC_CONCURRENCY);
	struct kpa_state *a = kpa_state_new(&s, 1, T0);
	double st = -1, pn = -1;
	assert_int_equal(kpa_observed(a, T0 + 3 * SEC, &st, &pn), 0);
	assert_true(st == 0 && pn == 0);
	kpa_state_free(a);
}

static void TestMetricCollectorRecord(void **state)
{
	(void)state;
	const double want = 10.0;
	struct kpa_config cfg;
	kpa_config_defaults(&cfg);
	struct kpa_spec s;
	kpa_spec_init(&s, &cfg, NULL);
	struct kpa_state *a = kpa_state_new(&s, 1, T0);
	int64_t now = T0, old = now - 70 * SEC;
	double st = 0, pn = 0;
	/* Freshly created collection does not contain any metrics. */
	assert_int_equal(kpa_observed(a, now, &st, &pn), -ENODATA);
	/* The second record removes the first, outdated one. */
	struct kpa_stat outdated = {.concurrency = 100, .requests = 100};
	struct kpa_stat stat = {.concurrency = want + 10,
	                        .proxied_concurrency = 10,
	                        .requests = want + 20,
	                        .proxied_requests = 20};
	kpa_record_stat(a, old, &outdated);
	kpa_record_stat(a, now, &stat);
	assert_int_equal(kpa_observed(a, now, &st, &pn), 0);
	assert_true(fabs(st - want) < 0.001 && fabs(pn - want) < 0.001);
	a->spec.metric = KPA_METRIC_RPS;
	assert_int_equal(kpa_observed(a, now, &st, &pn), 0);
	assert_true(fabs(st - want) < 0.001 && fabs(pn - want) < 0.001);
	kpa_state_free(a);
}

static void TestMetricCollectorAggregate(void **state)
{
	(void)state;
	struct kpa_spec s = test_spec(10, 100, KPA_METRIC_CONCURRENCY);
	s.stable_window_ms = 6 * SEC;
	s.panic_window_ms = 2 * SEC;
	struct kpa_state *a = kpa_state_new(&s, 1, T0);
	int64_t now = T0;
	for (int i = 0; i < 10; i++)
		kpa_record(a, now + i * SEC, i + 5, i + 5);
	now += 9 * SEC;
	assert_false(kpa_buckets_is_empty(&a->conc_stable, now));
	assert_true(kpa_buckets_average(&a->conc_stable, now) == 11.5);
	assert_true(kpa_buckets_average(&a->conc_panic, now) == 13.5);
	kpa_state_free(a);
}

static void weighted_aggregation_follows_recent_load(void **state)
{
	(void)state;
	struct kpa_spec s = test_spec(10, -1, KPA_METRIC_CONCURRENCY);
	s.aggregation = KPA_AGG_WEIGHTED;
	struct kpa_state *a = kpa_state_new(&s, 1, T0);
	for (int i = 0; i < 60; i++)
		kpa_record(a, T0 + i * SEC, i < 50 ? 10 : 100, 0);
	double st = 0, pn = 0;
	assert_int_equal(kpa_observed(a, T0 + 59 * SEC, &st, &pn), 0);
	/* Linear would give (50*10 + 10*100)/60 = 25; the weighted average leans to 100. */
	assert_true(st > 80 && st < 100);
	kpa_state_free(a);
}

/* --- config_test.go --------------------------------------------------------------------------- */

static void TestNewConfig_defaults(void **state)
{
	(void)state;
	struct kpa_config c;
	kpa_config_defaults(&c);
	assert_int_equal(kpa_config_finalize(&c, NULL), 0);
	assert_true(c.enable_scale_to_zero && !c.allow_zero_initial_scale);
	assert_true(c.container_concurrency_target_fraction == 0.7);
	assert_true(c.container_concurrency_target_default == 100);
	assert_true(c.target_utilization == 0.7);
	assert_true(c.requests_per_second_target_default == 200);
	assert_true(c.max_scale_up_rate == 1000 && c.max_scale_down_rate == 2);
	assert_true(c.target_burst_capacity == 211);
	assert_true(c.panic_window_percentage == 10 && c.panic_threshold_percentage == 200);
	assert_true(c.activator_capacity == 100);
	assert_int_equal(c.stable_window_ms, 60000);
	assert_int_equal(c.scale_to_zero_grace_period_ms, 30000);
	assert_int_equal(c.scale_to_zero_pod_retention_period_ms, 0);
	assert_int_equal(c.scale_down_delay_ms, 0);
	assert_int_equal(c.initial_scale, 1);
	assert_int_equal(c.min_scale, 0);
	assert_int_equal(c.max_scale, 0);
	assert_int_equal(c.max_scale_limit, 0);
}

static void TestNewConfig_percentages(void **state)
{
	(void)state;
	struct kpa_config c;
	kpa_config_defaults(&c);
	c.container_concurrency_target_percentage = 55; /* "as percent" */
	assert_int_equal(kpa_config_finalize(&c, NULL), 0);
	assert_true(fabs(c.container_concurrency_target_fraction - 0.55) < 1e-12);
	kpa_config_defaults(&c);
	c.container_concurrency_target_percentage = 0.71; /* "overridden": a fraction */
	assert_int_equal(kpa_config_finalize(&c, NULL), 0);
	assert_true(c.container_concurrency_target_fraction == 0.71);
	assert_int_equal(kpa_config_finalize(&c, NULL), 0); /* idempotent */
	assert_true(c.container_concurrency_target_fraction == 0.71);
	kpa_config_defaults(&c);
	c.target_burst_capacity = -1; /* "with -1 tbc" */
	assert_int_equal(kpa_config_finalize(&c, NULL), 0);
	kpa_config_defaults(&c);
	/* "minimum" */
	c.max_scale_up_rate = 1.001;
	c.container_concurrency_target_percentage = 0.5;
	c.container_concurrency_target_default = 10;
	c.target_burst_capacity = 0;
	c.stable_window_ms = 5 * MINUTE;
	c.activator_capacity = 1;
	assert_int_equal(kpa_config_finalize(&c, NULL), 0);
}

/* One invalid field per case, named after the Knative case. */
static void TestNewConfig_invalid(void **state)
{
	(void)state;
	struct kpa_config c;
#define INVALID(name, stmt)                                                                        \
	do {                                                                                       \
		kpa_config_defaults(&c);                                                           \
		stmt;                                                                              \
		struct kd_error *e = NULL;                                                         \
		if (kpa_config_finalize(&c, &e) != -EINVAL || !e)                                  \
			fail_msg("%s: accepted", name);                                            \
		kd_error_free(e);                                                                  \
	} while (0)
	INVALID("invalid scale-down-delay not seconds", c.scale_down_delay_ms = 61984);
	INVALID("invalid target burst capacity", c.target_burst_capacity = -11);
	INVALID("invalid target %, too small", c.container_concurrency_target_percentage = -42);
	INVALID("invalid target %, too big", c.container_concurrency_target_percentage = 142.4);
	INVALID("invalid RPS target, too small", c.requests_per_second_target_default = -5.25);
	INVALID("max scale up rate 1.0", c.max_scale_up_rate = 1);
	INVALID("max down down rate negative", c.max_scale_down_rate = -55);
	INVALID("max down down rate 1.0", c.max_scale_down_rate = 1);
	INVALID("stable window too big", c.stable_window_ms = 3601000);
	INVALID("stable window too small", c.stable_window_ms = 1000);
	INVALID("stable not seconds", c.stable_window_ms = 61984);
	INVALID("activator-capacity invalid", c.activator_capacity = 0.95);
	INVALID("panic window percentage too small", c.panic_window_percentage = 0.1);
	INVALID("panic window percentage too big", c.panic_window_percentage = 110);
	INVALID("TU*CC < 0.01", (c.container_concurrency_target_percentage = 1,
	                         c.container_concurrency_target_default = 0.001));
	INVALID("grace window too small", c.scale_to_zero_grace_period_ms = 0);
	INVALID("with prohibited default initial scale", c.initial_scale = 0);
	INVALID("with negative default initial scale", c.initial_scale = -1);
	INVALID("with negative default max scale", c.max_scale = -1);
	INVALID("max scale exceeding max scale limit", (c.max_scale = 10, c.max_scale_limit = 9));
	INVALID("with negative max scale limit", c.max_scale_limit = -9);
	INVALID("with max scale limit and zero default max scale", c.max_scale_limit = 11);
	INVALID("with max scale less than min-scale", (c.min_scale = 4, c.max_scale = 3));
#undef INVALID
	/* and the valid neighbours */
	kpa_config_defaults(&c);
	c.allow_zero_initial_scale = true;
	c.initial_scale = 0;
	assert_int_equal(kpa_config_finalize(&c, NULL), 0);
	kpa_config_defaults(&c);
	c.min_scale = 4;
	assert_int_equal(kpa_config_finalize(&c, NULL), 0);
	kpa_config_defaults(&c);
	c.max_scale = 10;
	c.max_scale_limit = 11;
	assert_int_equal(kpa_config_finalize(&c, NULL), 0);
}

/* --- decider.go / target.go / metric.go / scaler.go ------------------------------------------- */

static void spec_from_config_and_revision(void **state)
{
	(void)state;
	struct kpa_config cfg;
	kpa_config_defaults(&cfg);
	struct kpa_spec s;
	kpa_spec_init(&s, &cfg, NULL);
	assert_true(fabs(s.target_value - 70) < 1e-9 && s.total_value == 100);
	assert_true(s.panic_threshold == 2 && s.target_burst_capacity == 211);
	assert_int_equal(s.stable_window_ms, 60 * SEC);
	assert_int_equal(s.panic_window_ms, 6 * SEC);
	assert_int_equal(s.initial_scale, 1);
	assert_true(s.reachable);

	/* containerConcurrency 10 caps an annotation target of 50; utilization 80%. */
	struct kpa_revision rev = {.container_concurrency = 10,
	                           .has_target = true,
	                           .target = 50,
	                           .has_target_utilization = true,
	                           .target_utilization = 0.8,
	                           .has_window = true,
	                           .window_ms = 7 * SEC,
	                           .has_panic_window_percentage = true,
	                           .panic_window_percentage = 1, /* 70 ms -> 1 s minimum */
	                           .unreachable = true};
	kpa_spec_init(&s, &cfg, &rev);
	assert_true(s.total_value == 10 && fabs(s.target_value - 8) < 1e-9);
	assert_int_equal(s.stable_window_ms, 7 * SEC);
	assert_int_equal(s.panic_window_ms, 1 * SEC);
	assert_false(s.reachable);

	/* RPS: default 200 x 0.7; a tiny utilization bottoms out at TargetMin. */
	struct kpa_revision rps = {.metric = KPA_METRIC_RPS};
	kpa_spec_init(&s, &cfg, &rps);
	assert_true(s.total_value == 200 && fabs(s.target_value - 140) < 1e-9);
	rps.has_target_utilization = true;
	rps.target_utilization = 0.00001;
	kpa_spec_init(&s, &cfg, &rps);
	assert_true(s.target_value == KPA_TARGET_MIN);

	/* initial scale: 0 only when allowed. */
	struct kpa_revision init0 = {.has_initial_scale = true, .initial_scale = 0};
	assert_int_equal(kpa_initial_scale(&cfg, &init0), 1);
	cfg.allow_zero_initial_scale = true;
	assert_int_equal(kpa_initial_scale(&cfg, &init0), 0);
}

static void bounds_and_activators(void **state)
{
	(void)state;
	assert_int_equal(kpa_apply_bounds(-1, 2, 5, 1, true, true), -1);
	assert_int_equal(kpa_apply_bounds(0, 2, 5, 1, true, true), 2);
	assert_int_equal(kpa_apply_bounds(9, 2, 5, 1, true, true), 5);
	assert_int_equal(kpa_apply_bounds(9, 0, 0, 1, true, true), 9);
	/* initial scale raises min until initialized, unless unreachable */
	assert_int_equal(kpa_apply_bounds(1, 0, 0, 4, false, true), 4);
	assert_int_equal(kpa_apply_bounds(1, 0, 0, 4, true, true), 1);
	assert_int_equal(kpa_apply_bounds(1, 0, 0, 4, false, false), 1);

	struct kpa_spec s = test_spec(10, 0, KPA_METRIC_CONCURRENCY);
	assert_int_equal(kpa_num_activators(&s, 50), KPA_MIN_ACTIVATORS);
	s.target_burst_capacity = -1; /* 100 pods x 13.33 / 150 -> 9 */
	assert_int_equal(kpa_num_activators(&s, 100), 9);
	s.target_burst_capacity = 300; /* (1333.3 + 300) / 150 -> 11 */
	assert_int_equal(kpa_num_activators(&s, 100), 11);
	assert_int_equal(kpa_num_activators(&s, 0), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(TestAutoscalerScaleDownDelay),
	    cmocka_unit_test(TestAutoscalerScaleDownDelayNotReachable),
	    cmocka_unit_test(TestAutoscalerScaleDownDelayZero),
	    cmocka_unit_test(TestAutoscalerNoDataNoAutoscale),
	    cmocka_unit_test(TestAutoscalerStartMetrics),
	    cmocka_unit_test(TestAutoscalerMetrics),
	    cmocka_unit_test(TestAutoscalerMetricsWithRPS),
	    cmocka_unit_test(TestAutoscalerStableModeIncreaseWithConcurrencyDefault),
	    cmocka_unit_test(TestAutoscalerStableModeIncreaseWithRPS),
	    cmocka_unit_test(TestAutoscalerUnpanicAfterSlowIncrease),
	    cmocka_unit_test(TestAutoscalerExtendPanicWindow),
	    cmocka_unit_test(TestAutoscalerStableModeDecrease),
	    cmocka_unit_test(TestAutoscalerStableModeNoTrafficScaleToZero),
	    cmocka_unit_test(TestAutoscalerActivationScale),
	    cmocka_unit_test(TestAutoscalerPanicModeExponentialTrackAndStabilize),
	    cmocka_unit_test(TestAutoscalerScale),
	    cmocka_unit_test(TestAutoscalerPanicThenUnPanicScaleDown),
	    cmocka_unit_test(panic_mode_lasts_exactly_a_stable_window),
	    cmocka_unit_test(TestAutoscalerRateLimitScaleUp),
	    cmocka_unit_test(TestAutoscalerRateLimitScaleDown),
	    cmocka_unit_test(TestCantCountPods),
	    cmocka_unit_test(TestAutoscalerUseOnePodAsMinimumIfEndpointsNotFound),
	    cmocka_unit_test(TestAutoscalerUpdateTarget),
	    cmocka_unit_test(TestStartInPanicMode),
	    cmocka_unit_test(TestNewFail),
	    cmocka_unit_test(multiscaler_latest_scale_and_poke),
	    cmocka_unit_test(rps_metric_decides_on_rps_windows),
	    cmocka_unit_test(sources_sum_and_burst_panics),
	    cmocka_unit_test(TestComputeDecayMultiplier),
	    cmocka_unit_test(TestTimedFloat64BucketsSimple),
	    cmocka_unit_test(TestTimedFloat64BucketsManyReps),
	    cmocka_unit_test(TestTimedFloat64BucketsManyRepsWithNonMonotonicalOrder),
	    cmocka_unit_test(TestTimedFloat64BucketsWeightedAverage),
	    cmocka_unit_test(TestTimedFloat64BucketsWindowAverage),
	    cmocka_unit_test(TestDescendingRecord),
	    cmocka_unit_test(TestTimedFloat64BucketsHoles),
	    cmocka_unit_test(TestWeightedFloat64BucketsResizeWindow),
	    cmocka_unit_test(TestTimedFloat64BucketsResizeWindow),
	    cmocka_unit_test(TestTimedFloat64BucketsWindowUpdate3sGranularity),
	    cmocka_unit_test(TestTimedFloat64BucketsWindowUpdateNoOp),
	    cmocka_unit_test(TestRoundToNDigits),
	    cmocka_unit_test(TestWindowMax),
	    cmocka_unit_test(TestTimedWindowMax),
	    cmocka_unit_test(TestMetricCollectorNoDataError),
	    cmocka_unit_test(TestMetricCollectorNoScraper),
	    cmocka_unit_test(TestMetricCollectorRecord),
	    cmocka_unit_test(TestMetricCollectorAggregate),
	    cmocka_unit_test(weighted_aggregation_follows_recent_load),
	    cmocka_unit_test(TestNewConfig_defaults),
	    cmocka_unit_test(TestNewConfig_percentages),
	    cmocka_unit_test(TestNewConfig_invalid),
	    cmocka_unit_test(spec_from_config_and_revision),
	    cmocka_unit_test(bounds_and_activators),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
