/* plugins/decider-kpa/kpa.h: Knative's KPA autoscaling algorithm (knative.dev/serving v0.50,
 * Knative 1.23), in C, with no plugin glue: the config-autoscaler keys and defaults, the
 * per-revision decider spec (MakeDecider/ResolveMetricTarget/MakeMetric), the one-second metric
 * buckets of the collector (linear or weighted-exponential window averages), the max-over-time
 * window behind scale-down-delay, and Scale() itself (stable/panic windows, rate limits, panic
 * mode, activation scale, excess burst capacity).
 *
 * Upstream sources, all at tag knative-v1.23.0:
 *   pkg/autoscaler/config/config.go               kpa_config_*
 *   pkg/reconciler/autoscaling/kpa/resources/decider.go, resources/target.go, resources/metric.go
 *                                                 kpa_spec_init
 *   pkg/autoscaler/aggregation/bucketing.go       kpa_buckets_*
 *   pkg/autoscaler/aggregation/max/{window,timewindow}.go kpa_maxwin_*
 *   pkg/autoscaler/metrics/collector.go           kpa_record*, kpa_observed (one collection)
 *   pkg/autoscaler/scaling/autoscaler.go          kpa_decide (Scale), kpa_state_new (New)
 *   pkg/autoscaler/scaling/multiscaler.go         kpa_scale (tickScaler/updateLatestScale),
 *                                                 kpa_should_poke (Poke)
 *   pkg/reconciler/autoscaling/kpa/{scaler,kpa}.go kpa_apply_bounds, kpa_num_activators
 *
 * Time is an int64 millisecond count on any monotonic clock (the caller's `now`); buckets are
 * aligned to whole seconds of that clock, as Knative aligns them to Unix seconds. Divisions of
 * time use floor semantics, so the clock may start anywhere (even below 0).
 *
 * What stays with the caller, as in Knative where it lives in the PA reconciler, not the decider:
 * min/max-scale and initial-scale bounds (kpa_apply_bounds helps), the scale-to-zero grace period
 * and pod retention (handleScaleToZero), enable-scale-to-zero, SKS mode and activator count
 * (kpa_num_activators helps).
 *
 * Not thread-safe: one state is used from one thread (the host's loop). */
#ifndef KD_PLUGIN_DECIDER_KPA_H
#define KD_PLUGIN_DECIDER_KPA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kd/error.h"

/* Constants of pkg/apis/autoscaling/register.go and the autoscaler. */
#define KPA_TARGET_MIN                  0.01    /* autoscaling.TargetMin */
#define KPA_WINDOW_MIN_MS               6000    /* autoscaling.WindowMin */
#define KPA_WINDOW_MAX_MS               3600000 /* autoscaling.WindowMax */
#define KPA_PANIC_WINDOW_PERCENTAGE_MIN 1.0
#define KPA_PANIC_WINDOW_PERCENTAGE_MAX 100.0
#define KPA_BUCKET_MS                   1000 /* config.BucketSize: metric bucket granularity */
#define KPA_TICK_MS                     2000 /* scaling.tickInterval: decision period */
#define KPA_MIN_ACTIVATORS              2    /* kpa.minActivators */
#define KPA_DEFAULT_CLASS               "kpa.autoscaling.knative.dev"

/* config-autoscaler (pkg/autoscaler/config/config.go). Field types are those of kd/config.h
 * (durations uint64 ms, integers int64, strings owned char *) so a kd_config option table can
 * point straight at them. Defaults by kpa_config_defaults, identical to Knative's. */
struct kpa_config {
	bool enable_scale_to_zero;     /* enable-scale-to-zero: true */
	bool allow_zero_initial_scale; /* allow-zero-initial-scale: false */
	/* container-concurrency-target-percentage: 70. A value in (0, 1] is a fraction (legacy),
	 * above 1 a percentage; kpa_config_finalize turns it into a fraction. */
	double container_concurrency_target_percentage;
	double container_concurrency_target_default; /* container-concurrency-target-default: 100 */
	double requests_per_second_target_default;   /* requests-per-second-target-default: 200 */
	double target_burst_capacity;      /* target-burst-capacity: 211; -1 = unlimited */
	double panic_window_percentage;    /* panic-window-percentage: 10 (of the stable window) */
	double panic_threshold_percentage; /* panic-threshold-percentage: 200 */
	double max_scale_up_rate;          /* max-scale-up-rate: 1000 */
	double max_scale_down_rate;        /* max-scale-down-rate: 2 */
	double activator_capacity;         /* activator-capacity: 100 */
	uint64_t stable_window_ms;         /* stable-window: 60s */
	uint64_t scale_to_zero_grace_period_ms;         /* scale-to-zero-grace-period: 30s */
	uint64_t scale_to_zero_pod_retention_period_ms; /* scale-to-zero-pod-retention-period: 0s */
	uint64_t scale_down_delay_ms;                   /* scale-down-delay: 0s */
	int64_t initial_scale;                          /* initial-scale: 1 */
	int64_t min_scale;                              /* min-scale: 0 */
	int64_t max_scale;                              /* max-scale: 0 = unbounded */
	int64_t max_scale_limit;                        /* max-scale-limit: 0 */
	char *pod_autoscaler_class; /* pod-autoscaler-class; owned; NULL means the default */
	/* Set by kpa_config_finalize (not keys): fraction form of the percentage above, and the
	 * target utilization RPS uses (Knative's TargetUtilization, fixed at 0.7). */
	double container_concurrency_target_fraction;
	double target_utilization;
};

/* Fills *cfg with Knative's defaults (already finalized). pod_autoscaler_class is NULL. */
void kpa_config_defaults(struct kpa_config *cfg);

/* Converts the percentage (> 1 -> /100) into container_concurrency_target_fraction and checks
 * every rule of Knative's validate(); messages use Knative's wording. 0 or -EINVAL with *err.
 * Idempotent. */
int kpa_config_finalize(struct kpa_config *cfg, struct kd_error **err);

enum kpa_metric {
	KPA_METRIC_CONCURRENCY = 0, /* autoscaling.knative.dev/metric: concurrency (default) */
	KPA_METRIC_RPS = 1,         /* rps */
};

enum kpa_aggregation {
	KPA_AGG_LINEAR = 0,   /* the default: plain average over the window */
	KPA_AGG_WEIGHTED = 1, /* metric-aggregation-algorithm: weightedExponential */
};

/* Per-revision overrides (the PA's autoscaling.knative.dev/... annotations and spec). A `has_`
 * flag false means "use the cluster config". Zero-initialise, then set what the PA says. */
struct kpa_revision {
	int64_t container_concurrency; /* PA spec.containerConcurrency; 0 = unlimited */
	double target;                 /* autoscaling.knative.dev/target */
	double target_utilization;    /* target-utilization-percentage, as a fraction (70 -> 0.7) */
	double target_burst_capacity; /* target-burst-capacity */
	uint64_t window_ms;           /* window */
	double panic_window_percentage;    /* panic-window-percentage */
	double panic_threshold_percentage; /* panic-threshold-percentage */
	uint64_t scale_down_delay_ms;      /* scale-down-delay */
	int64_t initial_scale;             /* initial-scale */
	enum kpa_metric metric;
	enum kpa_aggregation aggregation;
	int32_t activation_scale; /* activation-scale; 0 = unset */
	bool unreachable;         /* spec.reachability == Unreachable */
	bool has_target, has_target_utilization, has_target_burst_capacity, has_window;
	bool has_panic_window_percentage, has_panic_threshold_percentage, has_scale_down_delay;
	bool has_initial_scale;
};

/* Knative's DeciderSpec plus the two metric windows of the Metric object. */
struct kpa_spec {
	enum kpa_metric metric;
	enum kpa_aggregation aggregation;
	double max_scale_up_rate;
	double max_scale_down_rate;
	double target_value;          /* per pod, what the autoscaler aims for: max(0.01, total *
	                                 utilization) */
	double total_value;           /* per pod, the most a pod can take */
	double target_burst_capacity; /* -1 = unlimited (activator always in path) */
	double activator_capacity;
	double panic_threshold;    /* a factor: 2.0 for 200% */
	uint64_t stable_window_ms; /* also how long panic mode lasts after the last surge */
	uint64_t panic_window_ms;  /* stable * percentage / 100, rounded to 1s, at least 1s */
	uint64_t scale_down_delay_ms;
	int32_t initial_scale;
	int32_t activation_scale;
	bool reachable;
};

/* MakeDecider + MakeMetric: the spec for one revision from the cluster config (finalized) and
 * the revision's overrides (NULL: none). */
void kpa_spec_init(struct kpa_spec *spec, const struct kpa_config *cfg,
                   const struct kpa_revision *rev);

/* Field by field equality (a changed spec is applied with kpa_state_update). */
bool kpa_spec_equal(const struct kpa_spec *a, const struct kpa_spec *b);

/* --- aggregation: time-bucketed windows (bucketing.go) ---------------------------------------- */

/* TimedFloat64Buckets / WeightedFloat64Buckets: a ring of ceil(window / granularity) buckets;
 * values recorded in the same bucket add up. */
struct kpa_buckets {
	double *buckets; /* owned */
	size_t n;
	int64_t granularity_ms; /* a whole number of seconds */
	int64_t window_ms;
	bool has_first, has_last; /* Go's zero time.Time for first/lastWrite when false */
	int64_t first_write_ms, last_write_ms; /* bucket-aligned */
	double window_total;
	bool weighted;
	double smoothing; /* weighted only */
};

/* Prepares b (caller storage). granularity_ms must be a positive multiple of 1000 and window_ms
 * positive; -EINVAL otherwise. Free with kpa_buckets_fini. */
int kpa_buckets_init(struct kpa_buckets *b, int64_t window_ms, int64_t granularity_ms,
                     bool weighted);
void kpa_buckets_fini(struct kpa_buckets *b);
/* Adds value to the bucket of now_ms, zeroing buckets skipped since the last write; a value
 * older than a window before the last write is dropped. */
void kpa_buckets_record(struct kpa_buckets *b, int64_t now_ms, double value);
/* True if nothing was recorded for more than a window before now_ms. */
bool kpa_buckets_is_empty(const struct kpa_buckets *b, int64_t now_ms);
/* Linear: average over the valid buckets, rounded to 6 digits; weighted: the exponentially
 * weighted sum, newest bucket heaviest. 0 after a window without data. */
double kpa_buckets_average(const struct kpa_buckets *b, int64_t now_ms);
/* ResizeWindow: keeps the newest buckets that fit. now_ms stands for Go's time.Now(). */
void kpa_buckets_resize(struct kpa_buckets *b, int64_t window_ms, int64_t now_ms);
/* The smoothing coefficient for nb buckets: max(1 - (1 - 0.9999)^(1/nb), 0.2). */
double kpa_smoothing_coeff(double nb);
/* math.Round(f * 10^n) / 10^n. */
double kpa_round_digits(int n, double f);

/* --- aggregation: max over a time window (max/window.go, max/timewindow.go) ------------------- */

struct kpa_maxwin_entry {
	int32_t value;
	int64_t index;
};

/* Descending-minima window of `size` slots over integer indexes. */
struct kpa_maxwin {
	struct kpa_maxwin_entry *maxima; /* owned */
	size_t size, first, length;
	int64_t granularity_ms; /* TimeWindow: index = floor(seconds / granularity seconds) */
};

/* Slots = ceil(duration / granularity); granularity_ms a positive multiple of 1000 (or 0 for a
 * bare index window of `duration_ms` slots, used by the index-level tests). -EINVAL if invalid. */
int kpa_maxwin_init(struct kpa_maxwin *w, int64_t duration_ms, int64_t granularity_ms);
void kpa_maxwin_fini(struct kpa_maxwin *w);
void kpa_maxwin_record_index(struct kpa_maxwin *w, int64_t index, int32_t value);
void kpa_maxwin_record(struct kpa_maxwin *w, int64_t now_ms, int32_t value);
/* The maximum recorded in the last window (0 before any record). */
int32_t kpa_maxwin_current(const struct kpa_maxwin *w);

/* --- the decider state of one revision -------------------------------------------------------- */

/* One stat as Knative's metrics.Stat: from a pod (queue-proxy) or an activator, covering about
 * one second. Proxied parts are subtracted before recording (counted by the activator). */
struct kpa_stat {
	double concurrency;         /* AverageConcurrentRequests */
	double proxied_concurrency; /* AverageProxiedConcurrentRequests */
	double requests;            /* RequestCount */
	double proxied_requests;    /* ProxiedRequestCount */
};

struct kpa_result {
	bool valid;      /* ScaleValid: false = no decision (no data or pods uncountable) */
	int32_t desired; /* DesiredPodCount */
	int32_t ebc;     /* ExcessBurstCapacity (negative: keep the activator in path) */
	bool panicking;  /* panic mode after this decision */
	bool changed;    /* kpa_scale only: desired changed or ebc changed sign (Inform) */
	double
	    stable_value; /* observed over the stable window (concurrency or rps, revision-wide) */
	double panic_value; /* observed over the panic window */
};

struct kpa_state {
	struct kpa_spec spec;
	/* collector: revision-wide sums per second */
	struct kpa_buckets conc_stable, conc_panic, rps_stable, rps_panic;
	/* autoscaler */
	bool panicking; /* Go: !panicTime.IsZero() */
	int64_t panic_time_ms;
	int32_t max_panic_pods;
	bool has_delay; /* delayWindow != nil (scale-down-delay > 0 at creation or update) */
	struct kpa_maxwin delay;
	/* multiscaler runner: the last valid decision; desired -1 until the first one */
	int32_t latest_desired;
	int32_t latest_ebc;
};

/* New(): creates the decider of one revision. ready_pods is the ready count at creation (< 0 if
 * unknown; treated as 0): above 1 the decider starts in panic mode at now_ms with that many pods,
 * so a restarted autoscaler never scales down before it has data. The initial latest EBC is
 * Knative's (TBC -1/0 as is, else initial_scale * total - TBC). Returns owned; kpa_state_free. */
struct kpa_state *kpa_state_new(const struct kpa_spec *spec, int ready_pods, int64_t now_ms);
void kpa_state_free(struct kpa_state *st);

/* Update(): applies a new spec. Windows whose length changed are resized (keeping data); the
 * delay window is created, resized or dropped to follow scale_down_delay_ms (Knative keeps the
 * one made at creation: a deliberate difference, so a changed delay takes effect). */
void kpa_state_update(struct kpa_state *st, const struct kpa_spec *spec, int64_t now_ms);

/* Records one stat at now_ms into the stable and panic windows of both metrics. Stats from
 * several sources in the same second add up: the windows hold revision-wide totals. */
void kpa_record_stat(struct kpa_state *st, int64_t now_ms, const struct kpa_stat *stat);
/* Shorthand: concurrency and requests per second, nothing proxied. */
void kpa_record(struct kpa_state *st, int64_t now_ms, double concurrency, double rps);

/* StableAndPanic{Concurrency,RPS} for the spec's metric. -ENODATA when the stable window saw no
 * data for a whole window and the revision is scraped (TBC != -1), exactly like Knative; with
 * TBC == -1 (activator always in path, no scrape target) an empty window reads as 0. */
int kpa_observed(const struct kpa_state *st, int64_t now_ms, double *stable, double *panic);

/* Scale() on given observed values (the unit Knative's tests drive with a fake metric client).
 * ready_pods < 0 means "cannot count pods": result invalid, -EIO. Updates panic state and the
 * delay window. Returns 0 and a valid *res. */
int kpa_decide(struct kpa_state *st, int64_t now_ms, int ready_pods, double stable, double panic,
               struct kpa_result *res);

/* One tick: kpa_observed + kpa_decide, then remembers a valid result as the latest decision
 * (res->changed says whether a watcher should be informed). Returns 0, or -ENODATA / -EIO with
 * res->valid false (no decision: keep the current scale). */
int kpa_scale(struct kpa_state *st, int64_t now_ms, int ready_pods, struct kpa_result *res);

/* Poke(): true if a stat with this concurrency should trigger an immediate tick (the latest
 * decision is 0 and the stat shows load), i.e. scale from zero without waiting for the tick. */
bool kpa_should_poke(const struct kpa_state *st, double concurrency);

/* applyBounds with the min-scale raise for an uninitialized scale target: min, max (0 =
 * unbounded) and initial scale (applies while !initialized and reachable, if > 1). desired < 0
 * (unknown) is returned unchanged. */
int32_t kpa_apply_bounds(int32_t desired, int32_t min_scale, int32_t max_scale,
                         int32_t initial_scale, bool initialized, bool reachable);

/* GetInitialScale: the revision's initial-scale annotation if set (and 0 only if allowed), else
 * the cluster's. */
int32_t kpa_initial_scale(const struct kpa_config *cfg, const struct kpa_revision *rev);

/* computeNumActivators: how many activators to put in the path for ready_pods pods. */
int32_t kpa_num_activators(const struct kpa_spec *spec, int ready_pods);

#endif /* KD_PLUGIN_DECIDER_KPA_H */
