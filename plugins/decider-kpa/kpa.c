/* plugins/decider-kpa/kpa.c: Knative's KPA algorithm; see kpa.h for the upstream map. Comments
 * quote the Go they follow where the reason for a detail is not obvious. */
#include "kpa.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kd/common.h"

/* --- small helpers ---------------------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

static size_t pos_mod(int64_t a, size_t n)
{
	int64_t m = a % (int64_t)n;
	if (m < 0)
		m += (int64_t)n;
	return (size_t)m;
}

/* Go's time.Truncate for a granularity that divides the Unix epoch offset (whole seconds). */
static int64_t trunc_to(int64_t t_ms, int64_t g_ms)
{
	return floor_div(t_ms, g_ms) * g_ms;
}

/* Go's int32(f) for the values Scale() produces, without undefined behaviour out of range. */
static int32_t to_i32(double f)
{
	if (isnan(f))
		return 0;
	if (f >= (double)INT32_MAX)
		return INT32_MAX;
	if (f <= (double)INT32_MIN)
		return INT32_MIN;
	return (int32_t)f;
}

static int32_t clamp_i64(int64_t v)
{
	if (v > INT32_MAX)
		return INT32_MAX;
	if (v < INT32_MIN)
		return INT32_MIN;
	return (int32_t)v;
}

/* --- config ----------------------------------------------------------------------------------- */

void kpa_config_defaults(struct kpa_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->enable_scale_to_zero = true;
	cfg->allow_zero_initial_scale = false;
	cfg->container_concurrency_target_percentage = 0.7;
	cfg->container_concurrency_target_default = 100;
	cfg->requests_per_second_target_default = 200;
	cfg->target_burst_capacity = 211;
	cfg->panic_window_percentage = 10;
	cfg->panic_threshold_percentage = 200;
	cfg->max_scale_up_rate = 1000;
	cfg->max_scale_down_rate = 2;
	cfg->activator_capacity = 100;
	cfg->stable_window_ms = 60000;
	cfg->scale_to_zero_grace_period_ms = 30000;
	cfg->scale_to_zero_pod_retention_period_ms = 0;
	cfg->scale_down_delay_ms = 0;
	cfg->initial_scale = 1;
	cfg->min_scale = 0;
	cfg->max_scale = 0;
	cfg->max_scale_limit = 0;
	cfg->pod_autoscaler_class = NULL;
	cfg->container_concurrency_target_fraction = 0.7;
	cfg->target_utilization = 0.7;
}

int kpa_config_finalize(struct kpa_config *cfg, struct kd_error **err)
{
	/* "Adjust % => fractions: for legacy reasons we allow values in the (0, 1] interval". */
	double frac = cfg->container_concurrency_target_percentage;
	if (frac > 1.0)
		frac /= 100.0;
	cfg->target_utilization = 0.7; /* defaultTargetUtilization; not configurable upstream */

	if (cfg->scale_to_zero_grace_period_ms == 0)
		return kd_error_set(err, EINVAL, 0,
		                    "scale-to-zero-grace-period must be positive, was: 0s");
	if (cfg->scale_down_delay_ms % 1000 != 0)
		return kd_error_set(
		    err, EINVAL, 0,
		    "scale-down-delay = %llums, must be specified with at most second "
		    "precision",
		    (unsigned long long)cfg->scale_down_delay_ms);
	if (!(cfg->target_burst_capacity >= 0) && cfg->target_burst_capacity != -1)
		return kd_error_set(err, EINVAL, 0,
		                    "target-burst-capacity must be either non-negative or -1 (for "
		                    "unlimited), was: %f",
		                    cfg->target_burst_capacity);
	if (!(frac > 0 && frac <= 1))
		return kd_error_set(
		    err, EINVAL, 0,
		    "container-concurrency-target-percentage = %f is outside of valid "
		    "range of (0, 100]",
		    frac);
	if (!(frac * cfg->container_concurrency_target_default >= KPA_TARGET_MIN))
		return kd_error_set(
		    err, EINVAL, 0,
		    "container-concurrency-target-percentage and "
		    "container-concurrency-target-default yield target concurrency of "
		    "%g, can't be less than %g",
		    frac * cfg->container_concurrency_target_default, KPA_TARGET_MIN);
	if (!(cfg->requests_per_second_target_default >= KPA_TARGET_MIN))
		return kd_error_set(
		    err, EINVAL, 0,
		    "requests-per-second-target-default must be at least %g, was: %g",
		    KPA_TARGET_MIN, cfg->requests_per_second_target_default);
	if (!(cfg->activator_capacity >= 1))
		return kd_error_set(err, EINVAL, 0, "activator-capacity = %g, must be at least 1",
		                    cfg->activator_capacity);
	if (!(cfg->max_scale_up_rate > 1.0))
		return kd_error_set(err, EINVAL, 0,
		                    "max-scale-up-rate = %g, must be greater than 1.0",
		                    cfg->max_scale_up_rate);
	if (!(cfg->max_scale_down_rate > 1.0))
		return kd_error_set(err, EINVAL, 0,
		                    "max-scale-down-rate = %g, must be greater than 1.0",
		                    cfg->max_scale_down_rate);
	if (cfg->stable_window_ms < KPA_WINDOW_MIN_MS || cfg->stable_window_ms > KPA_WINDOW_MAX_MS)
		return kd_error_set(err, EINVAL, 0,
		                    "stable-window = %llums, must be in [6s; 1h0m0s] range",
		                    (unsigned long long)cfg->stable_window_ms);
	if (cfg->stable_window_ms % 1000 != 0)
		return kd_error_set(err, EINVAL, 0,
		                    "stable-window = %llums, must be specified with at most second "
		                    "precision",
		                    (unsigned long long)cfg->stable_window_ms);
	if (!(cfg->panic_window_percentage >= KPA_PANIC_WINDOW_PERCENTAGE_MIN &&
	      cfg->panic_window_percentage <= KPA_PANIC_WINDOW_PERCENTAGE_MAX))
		return kd_error_set(err, EINVAL, 0,
		                    "panic-window-percentage = %g, must be in [1, 100] interval",
		                    cfg->panic_window_percentage);
	if (!(cfg->panic_threshold_percentage > 0))
		/* Not checked upstream (a non-positive threshold panics forever); refused here. */
		return kd_error_set(err, EINVAL, 0,
		                    "panic-threshold-percentage = %g, must be positive",
		                    cfg->panic_threshold_percentage);
	if (cfg->initial_scale < 0 || (cfg->initial_scale == 0 && !cfg->allow_zero_initial_scale))
		return kd_error_set(err, EINVAL, 0,
		                    "initial-scale = %lld, must be at least 0 (or at least 1 when "
		                    "allow-zero-initial-scale is false)",
		                    (long long)cfg->initial_scale);
	if (cfg->min_scale < 0)
		return kd_error_set(err, EINVAL, 0, "min-scale = %lld, must be at least 0",
		                    (long long)cfg->min_scale);
	int64_t min_max_scale = cfg->max_scale_limit > 0 ? 1 : 0;
	if (cfg->max_scale < min_max_scale ||
	    (cfg->max_scale_limit > 0 && cfg->max_scale > cfg->max_scale_limit))
		return kd_error_set(
		    err, EINVAL, 0,
		    "max-scale = %lld, must be in [%lld, max-scale-limit(%lld)] range",
		    (long long)cfg->max_scale, (long long)min_max_scale,
		    (long long)cfg->max_scale_limit);
	if (cfg->max_scale_limit < 0)
		return kd_error_set(err, EINVAL, 0, "max-scale-limit = %lld, must be at least 0",
		                    (long long)cfg->max_scale_limit);
	if (cfg->min_scale > cfg->max_scale && cfg->max_scale > 0)
		return kd_error_set(err, EINVAL, 0,
		                    "min-scale (%lld) must be less than max-scale (%lld)",
		                    (long long)cfg->min_scale, (long long)cfg->max_scale);
	if (cfg->initial_scale > INT32_MAX || cfg->min_scale > INT32_MAX ||
	    cfg->max_scale > INT32_MAX || cfg->max_scale_limit > INT32_MAX)
		return kd_error_set(err, ERANGE, 0, "scale bounds must fit in int32");
	cfg->container_concurrency_target_fraction = frac;
	return 0;
}

/* ResolveMetricTarget (pkg/reconciler/autoscaling/resources/target.go). */
static void resolve_target(const struct kpa_config *cfg, const struct kpa_revision *rev,
                           double *target, double *total)
{
	double tu;
	if (rev->metric == KPA_METRIC_RPS) {
		*total = cfg->requests_per_second_target_default;
		tu = cfg->target_utilization;
	} else {
		*total = (double)rev->container_concurrency;
		if (*total == 0)
			*total = cfg->container_concurrency_target_default;
		tu = cfg->container_concurrency_target_fraction;
	}
	if (rev->has_target) {
		*total = rev->target;
		if (rev->metric == KPA_METRIC_CONCURRENCY && rev->container_concurrency != 0)
			*total = fmin(rev->target, (double)rev->container_concurrency);
	}
	if (rev->has_target_utilization)
		tu = rev->target_utilization;
	*target = fmax(KPA_TARGET_MIN, *total * tu);
}

int32_t kpa_initial_scale(const struct kpa_config *cfg, const struct kpa_revision *rev)
{
	if (!rev || !rev->has_initial_scale ||
	    (rev->initial_scale == 0 && !cfg->allow_zero_initial_scale))
		return clamp_i64(cfg->initial_scale);
	return clamp_i64(rev->initial_scale);
}

void kpa_spec_init(struct kpa_spec *spec, const struct kpa_config *cfg,
                   const struct kpa_revision *rev)
{
	static const struct kpa_revision none;
	if (!rev)
		rev = &none;
	memset(spec, 0, sizeof(*spec));
	spec->metric = rev->metric;
	spec->aggregation = rev->aggregation;
	spec->max_scale_up_rate = cfg->max_scale_up_rate;
	spec->max_scale_down_rate = cfg->max_scale_down_rate;
	resolve_target(cfg, rev, &spec->target_value, &spec->total_value);
	spec->target_burst_capacity = rev->has_target_burst_capacity ? rev->target_burst_capacity
	                                                             : cfg->target_burst_capacity;
	spec->activator_capacity = cfg->activator_capacity;
	double ptp = rev->has_panic_threshold_percentage ? rev->panic_threshold_percentage
	                                                 : cfg->panic_threshold_percentage;
	spec->panic_threshold = ptp / 100.0;
	spec->stable_window_ms = rev->has_window ? rev->window_ms : cfg->stable_window_ms;
	/* MakeMetric: time.Duration(float64(stable) * pct / 100.0).Round(time.Second), >= 1s. */
	double pwp = rev->has_panic_window_percentage ? rev->panic_window_percentage
	                                              : cfg->panic_window_percentage;
	double pw = round((double)spec->stable_window_ms * pwp / 100.0 / 1000.0) * 1000.0;
	spec->panic_window_ms = pw < KPA_BUCKET_MS ? KPA_BUCKET_MS : (uint64_t)pw;
	spec->scale_down_delay_ms =
	    rev->has_scale_down_delay ? rev->scale_down_delay_ms : cfg->scale_down_delay_ms;
	spec->initial_scale = kpa_initial_scale(cfg, rev);
	spec->reachable = !rev->unreachable;
	spec->activation_scale = rev->activation_scale;
}

bool kpa_spec_equal(const struct kpa_spec *a, const struct kpa_spec *b)
{
	return a->metric == b->metric && a->aggregation == b->aggregation &&
	       a->max_scale_up_rate == b->max_scale_up_rate &&
	       a->max_scale_down_rate == b->max_scale_down_rate &&
	       a->target_value == b->target_value && a->total_value == b->total_value &&
	       a->target_burst_capacity == b->target_burst_capacity &&
	       a->activator_capacity == b->activator_capacity &&
	       a->panic_threshold == b->panic_threshold &&
	       a->stable_window_ms == b->stable_window_ms &&
	       a->panic_window_ms == b->panic_window_ms &&
	       a->scale_down_delay_ms == b->scale_down_delay_ms &&
	       a->initial_scale == b->initial_scale && a->activation_scale == b->activation_scale &&
	       a->reachable == b->reachable;
}

/* --- buckets ---------------------------------------------------------------------------------- */

#define KPA_MIN_EXPONENT     0.2
#define KPA_WEIGHT_PRECISION 0.9999
#define KPA_PRECISION        6

double kpa_smoothing_coeff(double nb)
{
	return fmax(1 - pow(1 - KPA_WEIGHT_PRECISION, 1 / nb), KPA_MIN_EXPONENT);
}

double kpa_round_digits(int n, double f)
{
	double p = pow(10, n);
	return round(f * p) / p;
}

static size_t num_buckets(int64_t window_ms, int64_t granularity_ms)
{
	return (size_t)((window_ms + granularity_ms - 1) / granularity_ms);
}

int kpa_buckets_init(struct kpa_buckets *b, int64_t window_ms, int64_t granularity_ms,
                     bool weighted)
{
	if (granularity_ms <= 0 || granularity_ms % 1000 != 0 || window_ms <= 0)
		return -EINVAL;
	memset(b, 0, sizeof(*b));
	b->n = num_buckets(window_ms, granularity_ms);
	b->buckets = kd_xcalloc(b->n, sizeof(double));
	b->granularity_ms = granularity_ms;
	b->window_ms = window_ms;
	b->weighted = weighted;
	if (weighted)
		b->smoothing = kpa_smoothing_coeff((double)b->n);
	return 0;
}

void kpa_buckets_fini(struct kpa_buckets *b)
{
	free(b->buckets);
	b->buckets = NULL;
	b->n = 0;
}

/* timeToIndex: int(tm.Unix()) / int(granularity.Seconds()). */
static int64_t time_to_index(const struct kpa_buckets *b, int64_t t_ms)
{
	return floor_div(floor_div(t_ms, 1000), b->granularity_ms / 1000);
}

void kpa_buckets_record(struct kpa_buckets *b, int64_t now_ms, double value)
{
	int64_t bucket_time = trunc_to(now_ms, b->granularity_ms);
	int64_t write_idx = time_to_index(b, now_ms);

	if (!b->has_last || b->last_write_ms != bucket_time) {
		/* bucketTime.Add(window).After(lastWrite); a zero lastWrite is before everything.
		 */
		if (b->has_last && !(bucket_time + b->window_ms > b->last_write_ms))
			return; /* "Ignore this value because it happened a window size ago." */
		if (!b->has_first || b->first_write_ms > bucket_time) {
			b->first_write_ms = bucket_time;
			b->has_first = true;
		}
		if (!b->has_last || bucket_time > b->last_write_ms) {
			if (!b->has_last || bucket_time - b->last_write_ms >= b->window_ms) {
				/* No writes for a whole window: start over. */
				b->first_write_ms = bucket_time;
				b->has_first = true;
				memset(b->buckets, 0, b->n * sizeof(double));
				b->window_total = 0;
			} else {
				for (int64_t i = time_to_index(b, b->last_write_ms) + 1;
				     i <= write_idx; i++) {
					size_t idx = pos_mod(i, b->n);
					b->window_total -= b->buckets[idx];
					b->buckets[idx] = 0;
				}
			}
			b->last_write_ms = bucket_time;
			b->has_last = true;
		}
		/* else lastWrite - window < bucketTime < lastWrite: add to that bucket. */
	}
	b->buckets[pos_mod(write_idx, b->n)] += value;
	b->window_total += value;
}

/* now_ms already truncated. */
static bool is_empty_trunc(const struct kpa_buckets *b, int64_t now_ms)
{
	return !b->has_last || now_ms - b->last_write_ms > b->window_ms;
}

bool kpa_buckets_is_empty(const struct kpa_buckets *b, int64_t now_ms)
{
	return is_empty_trunc(b, trunc_to(now_ms, b->granularity_ms));
}

static double weighted_average(const struct kpa_buckets *b, int64_t now_ms)
{
	if (is_empty_trunc(b, now_ms))
		return 0;
	int64_t total_b = (int64_t)b->n;
	int64_t num_b = total_b;
	double multiplier = b->smoothing;
	if (now_ms > b->last_write_ms) {
		int64_t num_z = (now_ms - b->last_write_ms) / b->granularity_ms;
		multiplier *= pow(1 - b->smoothing, (double)num_z);
		num_b -= num_z;
	}
	int64_t start_idx = time_to_index(b, b->last_write_ms) + total_b;
	double ret = 0;
	for (int64_t i = 0; i < num_b; i++) {
		ret += b->buckets[pos_mod(start_idx - i, b->n)] * multiplier;
		multiplier *= 1 - b->smoothing;
	}
	return ret;
}

static double linear_average(const struct kpa_buckets *b, int64_t now_ms)
{
	if (!b->has_last)
		return 0;
	int64_t d = now_ms - b->last_write_ms;
	/* "+1 since the times are inclusive" */
	/* lastWrite.Sub(firstWrite)/granularity: Go's integer division of durations. */
	int64_t span_buckets = (b->last_write_ms - b->first_write_ms) / b->granularity_ms;
	double span = (double)span_buckets + 1;
	if (d <= 0) {
		double nb = fmin(span, (double)b->n);
		return kpa_round_digits(KPA_PRECISION, b->window_total / nb);
	}
	if (d < b->window_ms) {
		int64_t st = time_to_index(b, b->last_write_ms);
		int64_t e = time_to_index(b, now_ms);
		double ret = b->window_total;
		for (int64_t i = st + 1; i <= e; i++)
			ret -= b->buckets[pos_mod(i, b->n)];
		double nb = fmin(span, (double)((int64_t)b->n - (e - st)));
		return kpa_round_digits(KPA_PRECISION, ret / nb);
	}
	return 0;
}

double kpa_buckets_average(const struct kpa_buckets *b, int64_t now_ms)
{
	now_ms = trunc_to(now_ms, b->granularity_ms);
	return b->weighted ? weighted_average(b, now_ms) : linear_average(b, now_ms);
}

void kpa_buckets_resize(struct kpa_buckets *b, int64_t window_ms, int64_t now_ms)
{
	if (window_ms == b->window_ms || window_ms <= 0)
		return;
	size_t nn = num_buckets(window_ms, b->granularity_ms);
	double *nbk = kd_xcalloc(nn, sizeof(double));
	double total = 0;
	if (b->has_last && trunc_to(now_ms, b->granularity_ms) - b->last_write_ms <= b->window_ms) {
		size_t on = b->n;
		int64_t t_idx = time_to_index(b, b->last_write_ms);
		for (size_t k = 0; k < KD_MIN(nn, on); k++) {
			double v = b->buckets[pos_mod(t_idx, on)];
			nbk[pos_mod(t_idx, nn)] = v;
			total += v;
			t_idx--;
		}
		b->first_write_ms = b->last_write_ms - (int64_t)(on - 1) * b->granularity_ms;
		b->has_first = true;
	} else {
		b->has_first = false;
		b->first_write_ms = 0;
	}
	free(b->buckets);
	b->buckets = nbk;
	b->n = nn;
	b->window_ms = window_ms;
	b->window_total = total;
	if (b->weighted)
		b->smoothing = kpa_smoothing_coeff((double)nn);
}

/* --- max window ------------------------------------------------------------------------------- */

int kpa_maxwin_init(struct kpa_maxwin *w, int64_t duration_ms, int64_t granularity_ms)
{
	if (duration_ms <= 0 || granularity_ms < 0 || granularity_ms % 1000 != 0)
		return -EINVAL;
	memset(w, 0, sizeof(*w));
	w->granularity_ms = granularity_ms;
	w->size = granularity_ms ? num_buckets(duration_ms, granularity_ms) : (size_t)duration_ms;
	w->maxima = kd_xcalloc(w->size, sizeof(*w->maxima));
	return 0;
}

void kpa_maxwin_fini(struct kpa_maxwin *w)
{
	free(w->maxima);
	w->maxima = NULL;
	w->size = w->first = w->length = 0;
}

static size_t mw_index(const struct kpa_maxwin *w, size_t i)
{
	return i % w->size;
}

void kpa_maxwin_record_index(struct kpa_maxwin *w, int64_t index, int32_t v)
{
	/* Step one: drop smaller (older) values from the back; they can never be the max again. */
	for (; w->length > 0; w->length--) {
		if (v < w->maxima[mw_index(w, w->first + w->length - 1)].value)
			break;
	}
	/* Step two: drop entries that left the window from the front. */
	while (w->length > 0 && index - w->maxima[w->first].index >= (int64_t)w->size) {
		w->length--;
		w->first++;
		if (w->first == w->size)
			w->first = 0;
	}
	/* Step 2b: same index recorded twice keeps the larger. */
	if (w->length > 0) {
		struct kpa_maxwin_entry last = w->maxima[mw_index(w, w->first + w->length - 1)];
		if (last.index == index) {
			if (last.value > v)
				v = last.value;
			w->length--;
		}
	}
	/* Step three: append; the list stays in descending value order. */
	w->maxima[mw_index(w, w->first + w->length)] =
	    (struct kpa_maxwin_entry){.index = index, .value = v};
	w->length++;
}

void kpa_maxwin_record(struct kpa_maxwin *w, int64_t now_ms, int32_t value)
{
	int64_t g = w->granularity_ms ? w->granularity_ms / 1000 : 1;
	kpa_maxwin_record_index(w, floor_div(floor_div(now_ms, 1000), g), value);
}

int32_t kpa_maxwin_current(const struct kpa_maxwin *w)
{
	return w->maxima[w->first].value;
}

/* --- decider state ---------------------------------------------------------------------------- */

static void init_windows(struct kpa_state *st)
{
	const struct kpa_spec *s = &st->spec;
	bool wt = s->aggregation == KPA_AGG_WEIGHTED;
	int64_t sw = s->stable_window_ms ? (int64_t)s->stable_window_ms : KPA_BUCKET_MS;
	int64_t pw = s->panic_window_ms ? (int64_t)s->panic_window_ms : KPA_BUCKET_MS;
	/* Arguments are valid by construction (positive windows, 1 s granularity). */
	(void)kpa_buckets_init(&st->conc_stable, sw, KPA_BUCKET_MS, wt);
	(void)kpa_buckets_init(&st->conc_panic, pw, KPA_BUCKET_MS, wt);
	(void)kpa_buckets_init(&st->rps_stable, sw, KPA_BUCKET_MS, wt);
	(void)kpa_buckets_init(&st->rps_panic, pw, KPA_BUCKET_MS, wt);
}

static void set_delay(struct kpa_state *st, uint64_t delay_ms)
{
	if (st->has_delay) {
		kpa_maxwin_fini(&st->delay);
		st->has_delay = false;
	}
	if (delay_ms > 0 && delay_ms <= (uint64_t)INT64_MAX)
		st->has_delay = kpa_maxwin_init(&st->delay, (int64_t)delay_ms, KPA_TICK_MS) == 0;
}

struct kpa_state *kpa_state_new(const struct kpa_spec *spec, int ready_pods, int64_t now_ms)
{
	struct kpa_state *st = kd_xcalloc(1, sizeof(*st));
	st->spec = *spec;
	init_windows(st);
	set_delay(st, spec->scale_down_delay_ms);
	int cur = ready_pods < 0 ? 0 : ready_pods;
	/* "We always start in the panic mode, if the deployment is scaled up over 1 pod." */
	if (cur > 1) {
		st->panicking = true;
		st->panic_time_ms = now_ms;
	}
	st->max_panic_pods = cur;
	/* createScaler: DesiredScale -1 and the initial EBC. */
	st->latest_desired = -1;
	double tbc = spec->target_burst_capacity;
	if (tbc == -1 || tbc == 0)
		st->latest_ebc = (int32_t)tbc;
	else
		st->latest_ebc = to_i32((double)spec->initial_scale * spec->total_value - tbc);
	return st;
}

void kpa_state_free(struct kpa_state *st)
{
	if (!st)
		return;
	kpa_buckets_fini(&st->conc_stable);
	kpa_buckets_fini(&st->conc_panic);
	kpa_buckets_fini(&st->rps_stable);
	kpa_buckets_fini(&st->rps_panic);
	if (st->has_delay)
		kpa_maxwin_fini(&st->delay);
	free(st);
}

void kpa_state_update(struct kpa_state *st, const struct kpa_spec *spec, int64_t now_ms)
{
	struct kpa_spec old = st->spec;
	st->spec = *spec;
	if (spec->aggregation != old.aggregation) {
		/* The aggregation is immutable upstream (an annotation of the revision): rebuild.
		 */
		kpa_buckets_fini(&st->conc_stable);
		kpa_buckets_fini(&st->conc_panic);
		kpa_buckets_fini(&st->rps_stable);
		kpa_buckets_fini(&st->rps_panic);
		init_windows(st);
	} else {
		int64_t sw =
		    spec->stable_window_ms ? (int64_t)spec->stable_window_ms : KPA_BUCKET_MS;
		int64_t pw = spec->panic_window_ms ? (int64_t)spec->panic_window_ms : KPA_BUCKET_MS;
		kpa_buckets_resize(&st->conc_stable, sw, now_ms);
		kpa_buckets_resize(&st->rps_stable, sw, now_ms);
		kpa_buckets_resize(&st->conc_panic, pw, now_ms);
		kpa_buckets_resize(&st->rps_panic, pw, now_ms);
	}
	if (spec->scale_down_delay_ms != old.scale_down_delay_ms)
		set_delay(st, spec->scale_down_delay_ms);
}

void kpa_record_stat(struct kpa_state *st, int64_t now_ms, const struct kpa_stat *stat)
{
	/* "Proxied requests have been counted at the activator. Subtract them." */
	double conc = stat->concurrency - stat->proxied_concurrency;
	double rps = stat->requests - stat->proxied_requests;
	kpa_buckets_record(&st->conc_stable, now_ms, conc);
	kpa_buckets_record(&st->conc_panic, now_ms, conc);
	kpa_buckets_record(&st->rps_stable, now_ms, rps);
	kpa_buckets_record(&st->rps_panic, now_ms, rps);
}

void kpa_record(struct kpa_state *st, int64_t now_ms, double concurrency, double rps)
{
	struct kpa_stat s = {.concurrency = concurrency, .requests = rps};
	kpa_record_stat(st, now_ms, &s);
}

int kpa_observed(const struct kpa_state *st, int64_t now_ms, double *stable, double *panic)
{
	const struct kpa_buckets *sb, *pb;
	if (st->spec.metric == KPA_METRIC_RPS) {
		sb = &st->rps_stable;
		pb = &st->rps_panic;
	} else {
		sb = &st->conc_stable;
		pb = &st->conc_panic;
	}
	/* ScrapeTarget != "" exactly when TBC != -1 (kpa.go resolveScrapeTarget). */
	if (kpa_buckets_is_empty(sb, now_ms) && st->spec.target_burst_capacity != -1)
		return -ENODATA;
	*stable = kpa_buckets_average(sb, now_ms);
	*panic = kpa_buckets_average(pb, now_ms);
	return 0;
}

int kpa_decide(struct kpa_state *st, int64_t now_ms, int ready_pods, double stable, double panic,
               struct kpa_result *res)
{
	const struct kpa_spec *spec = &st->spec;
	memset(res, 0, sizeof(*res));
	res->panicking = st->panicking;
	if (ready_pods < 0)
		return -EIO; /* "Failed to get ready pod count": invalidSR */
	res->stable_value = stable;
	res->panic_value = panic;

	/* "Use 1 if there are zero current pods." */
	double ready = fmax(1, (double)ready_pods);
	double max_up = ceil(spec->max_scale_up_rate * ready);
	double max_down = 0;
	if (spec->reachable)
		max_down = floor(ready / spec->max_scale_down_rate);

	double dspc = ceil(stable / spec->target_value);
	double dppc = ceil(panic / spec->target_value);
	int32_t want_stable = to_i32(fmin(fmax(dspc, max_down), max_up));
	int32_t want_panic = to_i32(fmin(fmax(dppc, max_down), max_up));

	if (spec->activation_scale > 1) {
		if (dspc > 0 && spec->activation_scale > want_stable)
			want_stable = spec->activation_scale;
		if (dppc > 0 && spec->activation_scale > want_panic)
			want_panic = spec->activation_scale;
	}

	bool over = dppc / ready >= spec->panic_threshold;
	if (!st->panicking && over) {
		st->panicking = true; /* "PANICKING." */
		st->panic_time_ms = now_ms;
	} else if (over) {
		st->panic_time_ms = now_ms; /* still surging: extend the panic window */
	} else if (st->panicking && st->panic_time_ms + (int64_t)spec->stable_window_ms < now_ms) {
		/* "Stop panicking after the surge has made its way into the stable metric." */
		st->panicking = false;
		st->panic_time_ms = 0;
		st->max_panic_pods = 0;
	}

	int32_t desired = want_stable;
	if (st->panicking) {
		if (desired < want_panic)
			desired = want_panic;
		/* "We do not scale down while in panic mode. Only increases will be applied." */
		if (desired > st->max_panic_pods)
			st->max_panic_pods = desired;
		desired = st->max_panic_pods;
	}

	if (spec->reachable && st->has_delay) {
		kpa_maxwin_record(&st->delay, now_ms, desired);
		desired = kpa_maxwin_current(&st->delay);
	}

	/* EBC = TotCapacity - Cur#ReqInFlight - TargetBurstCapacity, from the panic value. */
	double ebc = -1;
	if (spec->target_burst_capacity == 0)
		ebc = 0;
	else if (spec->target_burst_capacity > 0)
		ebc = floor((double)ready_pods * spec->total_value - spec->target_burst_capacity -
		            panic);

	res->valid = true;
	res->desired = desired;
	res->ebc = to_i32(ebc);
	res->panicking = st->panicking;
	return 0;
}

static bool same_sign(int32_t a, int32_t b)
{
	return (a < 0) == (b < 0);
}

int kpa_scale(struct kpa_state *st, int64_t now_ms, int ready_pods, struct kpa_result *res)
{
	double stable = 0, panic = 0;
	if (ready_pods < 0) {
		memset(res, 0, sizeof(*res));
		res->panicking = st->panicking;
		return -EIO;
	}
	int rc = kpa_observed(st, now_ms, &stable, &panic);
	if (rc < 0) {
		memset(res, 0, sizeof(*res));
		res->panicking = st->panicking;
		return rc;
	}
	rc = kpa_decide(st, now_ms, ready_pods, stable, panic, res);
	if (rc < 0)
		return rc;
	/* updateLatestScale */
	bool changed = st->latest_desired != res->desired;
	st->latest_desired = res->desired;
	changed = changed || !same_sign(st->latest_ebc, res->ebc);
	st->latest_ebc = res->ebc;
	res->changed = changed;
	return 0;
}

bool kpa_should_poke(const struct kpa_state *st, double concurrency)
{
	return st->latest_desired == 0 && concurrency != 0;
}

int32_t kpa_apply_bounds(int32_t desired, int32_t min_scale, int32_t max_scale,
                         int32_t initial_scale, bool initialized, bool reachable)
{
	if (desired < 0)
		return desired;
	if (initial_scale > 1 && !initialized && reachable)
		min_scale = KD_MAX(initial_scale, min_scale);
	if (desired < min_scale)
		return min_scale;
	if (max_scale != 0 && desired > max_scale)
		return max_scale;
	return desired;
}

int32_t kpa_num_activators(const struct kpa_spec *spec, int ready_pods)
{
	if (spec->target_burst_capacity == 0)
		return KPA_MIN_ACTIVATORS;
	double cap = (double)ready_pods * spec->total_value;
	if (spec->target_burst_capacity > 0)
		cap += spec->target_burst_capacity;
	return to_i32(fmax(KPA_MIN_ACTIVATORS, ceil(cap / spec->activator_capacity)));
}
