/* plugins/decider-kpa/plugin.c: the kd decider plugin around kpa.c (Knative's KPA).
 *
 * Config: the keys of Knative's config-autoscaler ConfigMap, same names, same defaults, same
 * validation (JSON strings are accepted for every value). kd-autoscaler reads and watches that
 * ConfigMap itself (ignoring `_example`, as Knative does) and hands every change to the
 * reconfigure op; its --decider-config takes the same keys, as overrides. Per revision, Knative's
 * autoscaling.knative.dev/<key> annotations override them (metric, target,
 * target-utilization-percentage, target-burst-capacity, window, panic-window-percentage,
 * panic-threshold-percentage, scale-down-delay, initial-scale, activation-scale, min-scale,
 * max-scale, metric-aggregation-algorithm, scale-to-zero-pod-retention-period); a bad annotation
 * value fails decide with -EINVAL naming it (Knative's webhook would have refused it).
 *
 * One kpa_state per revision, created on the first record or decide that names it. Besides
 * Scale() itself, decide does what Knative's PA reconciler does with the decider's answer
 * (kpa/scaler.go), because here nobody else does:
 *  - min/max-scale bounds (kd_scale_input's, else the annotations', else the config's) and the
 *    initial-scale floor until the revision first reached max(min-scale, initial-scale) ready;
 *  - scale to zero: with enable-scale-to-zero false a 0 becomes 1; otherwise a revision that had
 *    instances (an output > 0, or ready ones: the host made the initial scale) is held at 1
 *    until the decider has wanted 0 for max(scale-to-zero-grace-period,
 *    scale-to-zero-pod-retention-period) (Knative's "inactive for the grace period"; the activator
 *    probe is moot since kubedirect's activator hook is always in front of a revision at zero).
 *  - a revision that has several ready instances when its state is created starts in panic mode
 *    with that floor, as Knative's New() does when the autoscaler restarts.
 * No decision yet (no data on a scraped revision) is desired = -1. */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd/plugin.h"
#include "kpa.h"

struct kpa_rev {
	char *key; /* "ns/name"; owned */
	struct kpa_state *st;
	bool decided;      /* decide ran at least once (start-in-panic applied) */
	bool initialized;  /* reached max(min-scale, initial-scale) ready once */
	int32_t last_out;  /* last desired handed to the host, -1 before */
	bool zero_pending; /* the decider wants 0, held at 1 since zero_since_ms */
	int64_t zero_since_ms;
};

struct kpa_plugin {
	const struct kd_host *host;
	struct kpa_config cfg; /* finalized copy; pod_autoscaler_class borrowed from the host's
	                          init config, or class after a reconfigure */
	char *class;           /* owned copy of the last reconfigure's pod-autoscaler-class */
	struct kpa_rev **revs;
	size_t n, cap;
};

#define OPT(kind, key, field, dflt, text)                                                          \
	KD_OPT_##kind(key, struct kpa_config, field, .def = dflt, .help = text)

static const struct kd_config_option kpa_options[] = {
    OPT(DOUBLE, "container-concurrency-target-percentage", container_concurrency_target_percentage,
        "70", "target utilization of containerConcurrency, percent (a value <= 1 is a fraction)"),
    OPT(DOUBLE, "container-concurrency-target-default", container_concurrency_target_default, "100",
        "concurrency target per pod when containerConcurrency is 0 (unlimited)"),
    OPT(DOUBLE, "requests-per-second-target-default", requests_per_second_target_default, "200",
        "requests-per-second target per pod for the rps metric"),
    OPT(DOUBLE, "target-burst-capacity", target_burst_capacity, "211",
        "spare capacity to keep before the activator leaves the path; -1 unlimited, 0 never"),
    OPT(DURATION, "stable-window", stable_window_ms, "60s",
        "averaging window of the stable mode, and how long panic mode lasts; 6s..1h"),
    OPT(DOUBLE, "panic-window-percentage", panic_window_percentage, "10",
        "panic window as a percentage of the stable window; 1..100"),
    OPT(DOUBLE, "panic-threshold-percentage", panic_threshold_percentage, "200",
        "enter panic mode when the panic window wants this percentage of the ready pods"),
    OPT(DOUBLE, "max-scale-up-rate", max_scale_up_rate, "1000",
        "at most this factor times the ready pods per decision; > 1"),
    OPT(DOUBLE, "max-scale-down-rate", max_scale_down_rate, "2",
        "at least ready pods divided by this per decision; > 1"),
    OPT(BOOL, "enable-scale-to-zero", enable_scale_to_zero, "true",
        "allow a revision without traffic to go to zero instances"),
    OPT(DURATION, "scale-to-zero-grace-period", scale_to_zero_grace_period_ms, "30s",
        "how long a revision is held at 1 after the decider wants 0"),
    OPT(DURATION, "scale-to-zero-pod-retention-period", scale_to_zero_pod_retention_period_ms, "0s",
        "minimum time the last instance is kept after the decider wants 0"),
    OPT(STRING, "pod-autoscaler-class", pod_autoscaler_class, KPA_DEFAULT_CLASS,
        "accepted for compatibility with config-autoscaler; not used by the decider"),
    OPT(DOUBLE, "activator-capacity", activator_capacity, "100",
        "requests one activator handles, for the activator count; >= 1"),
    OPT(INT, "initial-scale", initial_scale, "1", "instances a new revision starts with"),
    OPT(BOOL, "allow-zero-initial-scale", allow_zero_initial_scale, "false",
        "allow initial-scale 0 (cluster-wide and in annotations)"),
    OPT(INT, "min-scale", min_scale, "0", "default lower bound of a revision's instances"),
    OPT(INT, "max-scale", max_scale, "0", "default upper bound of a revision's instances; 0 none"),
    OPT(DURATION, "scale-down-delay", scale_down_delay_ms, "0s",
        "a scale-down takes effect only after the lower scale held this long; whole seconds"),
    OPT(INT, "max-scale-limit", max_scale_limit, "0",
        "largest max-scale a revision may ask for; 0 none"),
    KD_CONFIG_END,
};

/* --- revisions -------------------------------------------------------------------------------- */

static struct kpa_rev *rev_find(struct kpa_plugin *p, const char *key, size_t *pos)
{
	for (size_t i = 0; i < p->n; i++) {
		if (strcmp(p->revs[i]->key, key) == 0) {
			if (pos)
				*pos = i;
			return p->revs[i];
		}
	}
	return NULL;
}

static struct kpa_rev *rev_get(struct kpa_plugin *p, const char *key, int ready, int64_t now_ms)
{
	struct kpa_rev *r = rev_find(p, key, NULL);
	if (r)
		return r;
	struct kpa_spec spec;
	kpa_spec_init(&spec, &p->cfg, NULL);
	r = kd_xcalloc(1, sizeof(*r));
	r->key = kd_xstrdup(key);
	r->st = kpa_state_new(&spec, ready, now_ms);
	r->decided = ready >= 0;
	r->last_out = -1;
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 16;
		p->revs = kd_xrealloc(p->revs, p->cap * sizeof(*p->revs));
	}
	p->revs[p->n++] = r;
	return r;
}

static void rev_free(struct kpa_rev *r)
{
	kpa_state_free(r->st);
	free(r->key);
	free(r);
}

/* --- annotations ------------------------------------------------------------------------------ */

#define ANN_PREFIX "autoscaling.knative.dev/"

static const char *ann(struct json_object *anns, const char *key)
{
	char full[96];
	struct json_object *v;
	snprintf(full, sizeof(full), ANN_PREFIX "%s", key);
	if (!anns || !json_object_object_get_ex(anns, full, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int bad_ann(struct kd_error **err, const char *rev, const char *key, const char *v,
                   const char *why)
{
	return kd_error_set(err, EINVAL, 0, "revision %s: annotation " ANN_PREFIX "%s=\"%s\": %s",
	                    rev, key, v, why);
}

static int ann_double(struct json_object *anns, const char *rev, const char *key, bool *has,
                      double *out, struct kd_error **err)
{
	const char *v = ann(anns, key);
	if (!v)
		return 0;
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (!*v || *end || errno || !isfinite(d))
		return bad_ann(err, rev, key, v, "not a number");
	*out = d;
	*has = true;
	return 0;
}

static int ann_int(struct json_object *anns, const char *rev, const char *key, bool *has,
                   int64_t *out, struct kd_error **err)
{
	const char *v = ann(anns, key);
	if (!v)
		return 0;
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (!*v || *end || errno || n < 0 || n > INT32_MAX)
		return bad_ann(err, rev, key, v, "not a non-negative integer");
	*out = n;
	*has = true;
	return 0;
}

static int ann_duration(struct json_object *anns, const char *rev, const char *key, bool *has,
                        uint64_t *out, struct kd_error **err)
{
	const char *v = ann(anns, key);
	if (!v)
		return 0;
	uint64_t ms;
	if (kd_config_parse_duration(v, &ms) < 0)
		return bad_ann(err, rev, key, v, "not a duration (e.g. 60s, 1m30s)");
	*out = ms;
	*has = true;
	return 0;
}

/* Per-revision view of the config: annotations and the PA spec facts. */
struct rev_view {
	struct kpa_revision r;
	bool has_min, has_max, has_retention;
	int64_t min_scale, max_scale;
	uint64_t retention_ms;
};

static int read_annotations(const struct kpa_plugin *p, const char *rev,
                            const struct kd_scale_input *in, struct rev_view *v,
                            struct kd_error **err)
{
	struct json_object *a = in->annotations;
	struct kpa_revision *r = &v->r;
	memset(v, 0, sizeof(*v));
	r->container_concurrency = in->container_concurrency;
	r->unreachable = in->unreachable;
	const char *m = ann(a, "metric");
	if (m && strcmp(m, "rps") == 0)
		r->metric = KPA_METRIC_RPS;
	else if (m && strcmp(m, "concurrency") != 0)
		return bad_ann(err, rev, "metric", m, "the KPA scales on concurrency or rps");
	const char *alg = ann(a, "metric-aggregation-algorithm");
	if (alg &&
	    (strcmp(alg, "weightedExponential") == 0 || strcmp(alg, "weighted-exponential") == 0))
		r->aggregation = KPA_AGG_WEIGHTED;
	else if (alg && strcmp(alg, "linear") != 0)
		return bad_ann(err, rev, "metric-aggregation-algorithm", alg,
		               "must be linear or weightedExponential");
	bool has_act = false;
	int64_t act = 0;
	double tu = 0;
	int rc;
	if ((rc = ann_double(a, rev, "target", &r->has_target, &r->target, err)) < 0 ||
	    (rc = ann_double(a, rev, "target-utilization-percentage", &r->has_target_utilization,
	                     &tu, err)) < 0 ||
	    (rc = ann_double(a, rev, "target-burst-capacity", &r->has_target_burst_capacity,
	                     &r->target_burst_capacity, err)) < 0 ||
	    (rc = ann_duration(a, rev, "window", &r->has_window, &r->window_ms, err)) < 0 ||
	    (rc = ann_double(a, rev, "panic-window-percentage", &r->has_panic_window_percentage,
	                     &r->panic_window_percentage, err)) < 0 ||
	    (rc = ann_double(a, rev, "panic-threshold-percentage",
	                     &r->has_panic_threshold_percentage, &r->panic_threshold_percentage,
	                     err)) < 0 ||
	    (rc = ann_duration(a, rev, "scale-down-delay", &r->has_scale_down_delay,
	                       &r->scale_down_delay_ms, err)) < 0 ||
	    (rc = ann_int(a, rev, "initial-scale", &r->has_initial_scale, &r->initial_scale, err)) <
	        0 ||
	    (rc = ann_int(a, rev, "activation-scale", &has_act, &act, err)) < 0 ||
	    (rc = ann_int(a, rev, "min-scale", &v->has_min, &v->min_scale, err)) < 0 ||
	    (rc = ann_int(a, rev, "max-scale", &v->has_max, &v->max_scale, err)) < 0 ||
	    (rc = ann_duration(a, rev, "scale-to-zero-pod-retention-period", &v->has_retention,
	                       &v->retention_ms, err)) < 0)
		return rc;
	if (r->has_target && !(r->target >= KPA_TARGET_MIN))
		return bad_ann(err, rev, "target", ann(a, "target"), "must be at least 0.01");
	if (r->has_target_utilization) {
		if (!(tu >= 1 && tu <= 100))
			return bad_ann(err, rev, "target-utilization-percentage",
			               ann(a, "target-utilization-percentage"),
			               "must be in [1, 100]");
		r->target_utilization = tu / 100.0;
	}
	if (r->has_target_burst_capacity && r->target_burst_capacity < 0 &&
	    r->target_burst_capacity != -1)
		return bad_ann(err, rev, "target-burst-capacity", ann(a, "target-burst-capacity"),
		               "must be >= 0 or -1");
	if (r->has_window && (r->window_ms < KPA_WINDOW_MIN_MS ||
	                      r->window_ms > KPA_WINDOW_MAX_MS || r->window_ms % 1000 != 0))
		return bad_ann(err, rev, "window", ann(a, "window"),
		               "must be whole seconds in [6s, 1h]");
	if (r->has_panic_window_percentage &&
	    !(r->panic_window_percentage >= KPA_PANIC_WINDOW_PERCENTAGE_MIN &&
	      r->panic_window_percentage <= KPA_PANIC_WINDOW_PERCENTAGE_MAX))
		return bad_ann(err, rev, "panic-window-percentage",
		               ann(a, "panic-window-percentage"), "must be in [1, 100]");
	if (r->has_panic_threshold_percentage &&
	    !(r->panic_threshold_percentage >= 110 && r->panic_threshold_percentage <= 1000))
		return bad_ann(err, rev, "panic-threshold-percentage",
		               ann(a, "panic-threshold-percentage"), "must be in [110, 1000]");
	if (r->has_scale_down_delay &&
	    (r->scale_down_delay_ms % 1000 != 0 || r->scale_down_delay_ms > KPA_WINDOW_MAX_MS))
		return bad_ann(err, rev, "scale-down-delay", ann(a, "scale-down-delay"),
		               "must be whole seconds, at most 1h");
	if (has_act) {
		if (act < 2)
			return bad_ann(err, rev, "activation-scale", ann(a, "activation-scale"),
			               "must be greater than 1");
		r->activation_scale = (int32_t)act;
	}
	if (v->has_max && p->cfg.max_scale_limit > 0 && v->max_scale > p->cfg.max_scale_limit)
		return bad_ann(err, rev, "max-scale", ann(a, "max-scale"),
		               "exceeds max-scale-limit");
	return 0;
}

/* --- ops -------------------------------------------------------------------------------------- */

static int kpa_op_record(void *state, const char *revision, const struct kd_metric_sample *s)
{
	struct kpa_plugin *p = state;
	if (!revision || !s)
		return -EINVAL;
	struct kpa_rev *r = rev_get(p, revision, -1, (int64_t)s->at_ms);
	kpa_record(r->st, (int64_t)s->at_ms, s->concurrency, s->rps);
	return 0;
}

static int kpa_op_poke(void *state, const char *revision, const struct kd_metric_sample *s)
{
	struct kpa_plugin *p = state;
	if (!revision || !s)
		return 0;
	const struct kpa_rev *r = rev_find(p, revision, NULL);
	if (!r || r->st->latest_desired < 0)
		return s->concurrency != 0; /* unknown scale: deciding early costs one tick */
	return kpa_should_poke(r->st, s->concurrency);
}

static int32_t u32_to_i32(uint32_t v)
{
	return v > INT32_MAX ? INT32_MAX : (int32_t)v;
}

static int kpa_op_decide(void *state, const char *revision, const struct kd_scale_input *in,
                         struct kd_scale_decision *out, struct kd_error **err)
{
	struct kpa_plugin *p = state;
	if (!revision || !in || !out)
		return kd_error_set(err, EINVAL, 0, "decide: revision, input and output required");
	struct rev_view v;
	int rc = read_annotations(p, revision, in, &v, err);
	if (rc < 0)
		return rc;
	int64_t now = (int64_t)in->now_ms;
	int ready = (int)KD_MIN(in->ready, (uint32_t)INT32_MAX);
	struct kpa_rev *r = rev_get(p, revision, ready, now);

	struct kpa_spec spec;
	kpa_spec_init(&spec, &p->cfg, &v.r);
	if (!kpa_spec_equal(&spec, &r->st->spec))
		kpa_state_update(r->st, &spec, now);
	if (!r->decided) {
		/* Created by record, before anyone knew the ready count: New()'s start-in-panic. */
		r->decided = true;
		if (ready > 1 && !r->st->panicking) {
			r->st->panicking = true;
			r->st->panic_time_ms = now;
			r->st->max_panic_pods = KD_MAX(r->st->max_panic_pods, ready);
		}
	}

	struct kpa_result res;
	rc = kpa_scale(r->st, now, ready, &res);
	out->panic = r->st->panicking;
	if (rc < 0) {
		/* No data yet: no decision, the host keeps the current scale. */
		out->desired = -1;
		out->excess_burst_capacity = r->st->latest_ebc;
		return 0;
	}
	out->excess_burst_capacity = res.ebc;

	int32_t min = u32_to_i32(in->min_scale), max = u32_to_i32(in->max_scale);
	if (!min)
		min = (int32_t)(v.has_min ? v.min_scale : p->cfg.min_scale);
	if (!max)
		max = (int32_t)(v.has_max ? v.max_scale : p->cfg.max_scale);
	int32_t initial = spec.initial_scale;
	if (!r->initialized && ready >= KD_MAX(min, initial))
		r->initialized = true;
	int32_t desired =
	    kpa_apply_bounds(res.desired, min, max, initial, r->initialized, spec.reachable);

	/* handleScaleToZero */
	if (desired == 0) {
		if (!p->cfg.enable_scale_to_zero) {
			desired = 1;
		} else if (r->last_out > 0 || ready > 0 || r->zero_pending) {
			uint64_t retention = v.has_retention
			                         ? v.retention_ms
			                         : p->cfg.scale_to_zero_pod_retention_period_ms;
			if (!spec.reachable)
				retention = 0;
			uint64_t hold = KD_MAX(p->cfg.scale_to_zero_grace_period_ms, retention);
			if (!r->zero_pending) {
				r->zero_pending = true;
				r->zero_since_ms = now;
			}
			if (now - r->zero_since_ms < (int64_t)hold)
				desired = 1;
			else
				r->zero_pending = false;
		}
	} else {
		r->zero_pending = false;
	}
	r->last_out = desired;
	out->desired = desired;
	return 0;
}

/* A new cluster config: validated like init's; revisions keep their windows and pick the new
 * values up in their next decide (kpa_spec_equal -> kpa_state_update). */
static int kpa_op_reconfigure(void *state, const void *config, struct kd_error **err)
{
	struct kpa_plugin *p = state;
	if (!p || !config)
		return kd_error_set(err, EINVAL, 0, "reconfigure: config required");
	struct kpa_config cfg = *(const struct kpa_config *)config;
	int rc = kpa_config_finalize(&cfg, err);
	if (rc < 0)
		return rc;
	free(p->class);
	p->class = cfg.pod_autoscaler_class ? kd_xstrdup(cfg.pod_autoscaler_class) : NULL;
	cfg.pod_autoscaler_class = p->class;
	p->cfg = cfg;
	return 0;
}

static void kpa_op_forget(void *state, const char *revision)
{
	struct kpa_plugin *p = state;
	size_t pos;
	struct kpa_rev *r = revision ? rev_find(p, revision, &pos) : NULL;
	if (!r)
		return;
	rev_free(r);
	p->revs[pos] = p->revs[--p->n];
}

/* --- lifecycle -------------------------------------------------------------------------------- */

static int kpa_init(const struct kd_host *host, const void *config, void **state,
                    struct kd_error **err)
{
	struct kpa_config cfg = *(const struct kpa_config *)config;
	int rc = kpa_config_finalize(&cfg, err);
	if (rc < 0)
		return kd_error_wrap(err, "plugin decider-kpa");
	struct kpa_plugin *p = kd_xcalloc(1, sizeof(*p));
	p->host = host;
	p->cfg = cfg;
	*state = p;
	return 0;
}

static void kpa_fini(void *state)
{
	struct kpa_plugin *p = state;
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		rev_free(p->revs[i]);
	free(p->revs);
	free(p->class);
	free(p);
}

static const struct kd_decider_ops kpa_ops = {
    .struct_size = sizeof(struct kd_decider_ops),
    .record = kpa_op_record,
    .decide = kpa_op_decide,
    .forget = kpa_op_forget,
    .poke = kpa_op_poke,
    .reconfigure = kpa_op_reconfigure,
};

KD_PLUGIN_EXPORT(
    "decider-kpa", KD_PLUGIN_DECIDER,
    .description = "Knative's KPA (stable/panic windows) with config-autoscaler's keys",
    .options = kpa_options, .config_size = sizeof(struct kpa_config), .init = kpa_init,
    .fini = kpa_fini, .ops = &kpa_ops)
