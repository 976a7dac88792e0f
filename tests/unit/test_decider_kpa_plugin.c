/* Unit tests for the decider-kpa plugin through the real loader (kd_plugin_load of the built
 * plugins/kd-decider-kpa.so): Knative's config-autoscaler keys, defaults and validation, and the
 * decider ops (record, poke, decide with annotations, bounds and the scale-to-zero grace period,
 * forget). The algorithm itself is tested in test_decider_kpa.c. */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "../../plugins/decider-kpa/kpa.h"
#include "kd/loop.h"
#include "kd/plugin.h"

#define KPA_SO "" KD_BUILD_DIR "/plugins/kd-decider-kpa.so"
#define REV    "default/hello-00001"
#define SEC    1000

static struct kd_loop *loop;
static struct kd_host host;

static int setup_all(void **state)
{
	(void)state;
	loop = kd_loop_new();
	if (!loop)
		return -1;
	kd_host_init(&host, loop, "test-decider-kpa");
	return 0;
}

static int teardown_all(void **state)
{
	(void)state;
	kd_loop_free(loop);
	return 0;
}

static struct kd_plugin_handle *load(const char *cfg)
{
	struct kd_plugin_handle *h = NULL;
	struct kd_error *err = NULL;
	int rc = kd_plugin_load(KPA_SO, KD_PLUGIN_DECIDER, cfg, &host, &h, &err);
	if (rc != 0)
		fail_msg("load %s: %s", KPA_SO, kd_error_msg(err));
	return h;
}

/* Loads a config that must be refused; returns the owned error. */
static struct kd_error *load_refused(const char *cfg)
{
	struct kd_plugin_handle *h = NULL;
	struct kd_error *err = NULL;
	int rc = kd_plugin_load(KPA_SO, KD_PLUGIN_DECIDER, cfg, &host, &h, &err);
	assert_true(rc < 0);
	assert_null(h);
	assert_non_null(err);
	return err;
}

static const struct kd_decider_ops *ops_of(struct kd_plugin_handle *h)
{
	return kd_plugin_ops(h);
}

static void loads_with_knative_defaults(void **state)
{
	(void)state;
	struct kd_plugin_handle *h = load(NULL);
	const struct kd_plugin *d = kd_plugin_desc(h);
	assert_string_equal(d->name, "decider-kpa");
	assert_int_equal(d->kind, KD_PLUGIN_DECIDER);
	const struct kd_decider_ops *o = ops_of(h);
	assert_true(KD_HAS_MEMBER(o, struct kd_decider_ops, poke));
	assert_non_null(o->poke);
	const struct kpa_config *c = kd_plugin_config(h);
	assert_non_null(c);
	assert_true(c->container_concurrency_target_percentage == 70);
	assert_true(c->container_concurrency_target_default == 100);
	assert_true(c->requests_per_second_target_default == 200);
	assert_true(c->target_burst_capacity == 211);
	assert_int_equal(c->stable_window_ms, 60000);
	assert_true(c->panic_window_percentage == 10);
	assert_true(c->panic_threshold_percentage == 200);
	assert_true(c->max_scale_up_rate == 1000);
	assert_true(c->max_scale_down_rate == 2);
	assert_true(c->enable_scale_to_zero);
	assert_int_equal(c->scale_to_zero_grace_period_ms, 30000);
	assert_int_equal(c->scale_to_zero_pod_retention_period_ms, 0);
	assert_string_equal(c->pod_autoscaler_class, KPA_DEFAULT_CLASS);
	assert_true(c->activator_capacity == 100);
	assert_int_equal(c->initial_scale, 1);
	assert_false(c->allow_zero_initial_scale);
	assert_int_equal(c->min_scale, 0);
	assert_int_equal(c->max_scale, 0);
	assert_int_equal(c->scale_down_delay_ms, 0);
	assert_int_equal(c->max_scale_limit, 0);
	kd_plugin_unload(h);
}

/* config_test.go "overridden", minus tick-interval (not a key of Knative's config either: Go's
 * parser ignores unknown keys, kd refuses them, see unknown_key_is_refused). */
static void knative_configmap_data_is_a_valid_config(void **state)
{
	(void)state;
	struct kd_plugin_handle *h = load("{\"enable-scale-to-zero\": \"true\","
	                                  " \"max-scale-down-rate\": \"3.0\","
	                                  " \"max-scale-up-rate\": \"1.01\","
	                                  " \"container-concurrency-target-percentage\": \"0.71\","
	                                  " \"container-concurrency-target-default\": \"10.5\","
	                                  " \"requests-per-second-target-default\": \"10.11\","
	                                  " \"target-burst-capacity\": \"12345\","
	                                  " \"scale-down-delay\": \"15m\","
	                                  " \"stable-window\": \"5m\","
	                                  " \"panic-window-percentage\": \"10\","
	                                  " \"panic-threshold-percentage\": \"200\","
	                                  " \"pod-autoscaler-class\": \"some.class\","
	                                  " \"activator-capacity\": \"905\","
	                                  " \"scale-to-zero-pod-retention-period\": \"2m3s\"}");
	const struct kpa_config *c = kd_plugin_config(h);
	assert_true(c->target_burst_capacity == 12345);
	assert_true(c->container_concurrency_target_default == 10.5);
	assert_true(c->container_concurrency_target_percentage == 0.71);
	assert_true(c->requests_per_second_target_default == 10.11);
	assert_true(c->max_scale_down_rate == 3 && c->max_scale_up_rate == 1.01);
	assert_int_equal(c->scale_down_delay_ms, 15 * 60 * SEC);
	assert_int_equal(c->stable_window_ms, 5 * 60 * SEC);
	assert_true(c->activator_capacity == 905);
	assert_string_equal(c->pod_autoscaler_class, "some.class");
	assert_int_equal(c->scale_to_zero_pod_retention_period_ms, 2 * 60 * SEC + 3 * SEC);
	kd_plugin_unload(h);
}

static void unknown_key_is_refused(void **state)
{
	(void)state;
	struct kd_error *err = load_refused("{\"tick-interval\": \"2s\"}");
	assert_non_null(strstr(kd_error_msg(err), "tick-interval"));
	kd_error_free(err);
}

/* config_test.go's wantErr cases reach the user as load errors with Knative's wording. */
static void invalid_values_are_refused_with_knative_messages(void **state)
{
	(void)state;
	static const struct {
		const char *cfg, *msg;
	} cases[] = {
	    {"{\"max-scale-up-rate\": \"1\"}", "max-scale-up-rate = 1, must be greater than 1.0"},
	    {"{\"max-scale-down-rate\": \"-55\"}", "max-scale-down-rate"},
	    {"{\"target-burst-capacity\": \"-11\"}", "target-burst-capacity must be either"},
	    {"{\"container-concurrency-target-percentage\": \"142.4\"}", "outside of valid range"},
	    {"{\"stable-window\": \"1h1s\"}", "stable-window"},
	    {"{\"stable-window\": \"1s\"}", "stable-window"},
	    {"{\"stable-window\": \"61984ms\"}", "at most second precision"},
	    {"{\"scale-down-delay\": \"61984ms\"}", "at most second precision"},
	    {"{\"scale-down-delay\": \"-1m23s\"}", "scale-down-delay"},
	    {"{\"stable-window\": \"not a duration\"}", "stable-window"},
	    {"{\"max-scale-up-rate\": \"not a float\"}", "max-scale-up-rate"},
	    {"{\"activator-capacity\": \"0.95\"}", "activator-capacity"},
	    {"{\"panic-window-percentage\": \"110\"}", "panic-window-percentage"},
	    {"{\"scale-to-zero-grace-period\": \"0s\"}", "scale-to-zero-grace-period"},
	    {"{\"initial-scale\": \"0\"}", "initial-scale"},
	    {"{\"allow-zero-initial-scale\": \"invalid\"}", "allow-zero-initial-scale"},
	    {"{\"max-scale\": \"10\", \"max-scale-limit\": \"9\"}", "max-scale"},
	    {"{\"min-scale\": \"4\", \"max-scale\": \"3\"}", "min-scale (4)"},
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(cases); i++) {
		struct kd_error *err = load_refused(cases[i].cfg);
		if (!strstr(kd_error_msg(err), cases[i].msg))
			fail_msg("%s: error \"%s\" lacks \"%s\"", cases[i].cfg, kd_error_msg(err),
			         cases[i].msg);
		kd_error_free(err);
	}
	/* and the accepted neighbours */
	kd_plugin_unload(
	    load("{\"allow-zero-initial-scale\": \"true\", \"initial-scale\": \"0\"}"));
	kd_plugin_unload(load("{\"enable-scale-to-zero\": \"false\", \"min-scale\": \"1\","
	                      " \"max-scale\": \"2\"}"));
	kd_plugin_unload(load("{\"target-burst-capacity\": \"-1\"}"));
}

/* --- decisions through the ops ---------------------------------------------------------------- */

struct fx {
	struct kd_plugin_handle *h;
	const struct kd_decider_ops *o;
	void *st;
};

static void fx_load(struct fx *f, const char *cfg)
{
	f->h = load(cfg);
	f->o = ops_of(f->h);
	f->st = kd_plugin_state(f->h);
}

static void rec(struct fx *f, const char *rev, uint64_t at, double conc)
{
	struct kd_metric_sample s = {.at_ms = at, .source = "activator-0", .concurrency = conc};
	assert_int_equal(f->o->record(f->st, rev, &s), 0);
}

static struct kd_scale_decision dec_with(struct fx *f, const char *rev, uint64_t now,
                                         uint32_t ready, struct json_object *anns)
{
	struct kd_scale_input in = {.now_ms = now, .ready = ready, .annotations = anns};
	struct kd_scale_decision out;
	struct kd_error *err = NULL;
	if (f->o->decide(f->st, rev, &in, &out, &err) != 0)
		fail_msg("decide %s: %s", rev, kd_error_msg(err));
	return out;
}

static struct kd_scale_decision dec(struct fx *f, const char *rev, uint64_t now, uint32_t ready)
{
	return dec_with(f, rev, now, ready, NULL);
}

/* Activator in path (TBC -1): cold revision at 0, a request pokes, the decision follows the
 * recorded concurrency, a burst panics (no scale-down while panicking), and after the load goes
 * away the revision is held at 1 for the grace period, then released to 0. */
static void cold_start_poke_panic_and_scale_to_zero_grace(void **state)
{
	(void)state;
	struct fx f;
	fx_load(&f, "{\"target-burst-capacity\": \"-1\"}");
	const uint64_t t0 = 5000000;
	struct kd_scale_decision d = dec(&f, REV, t0, 0);
	assert_int_equal(d.desired, 0);
	assert_true(d.excess_burst_capacity == -1);

	/* First request: the activator's first stat (concurrency 1) pokes. */
	struct kd_metric_sample s = {.at_ms = t0 + 500, .concurrency = 1};
	assert_int_equal(f.o->record(f.st, REV, &s), 0);
	assert_int_equal(f.o->poke(f.st, REV, &s), 1);
	d = dec(&f, REV, t0 + 500, 0);
	assert_int_equal(d.desired, 1);
	assert_int_equal(f.o->poke(f.st, REV, &s), 0); /* not at zero any more */

	/* 140 concurrent (two activators x 70) for 10 s on 1 pod: target 70 -> 2 pods. */
	uint64_t t = t0 + SEC;
	for (int i = 0; i < 10; i++, t += SEC) {
		rec(&f, REV, t, 70);
		rec(&f, REV, t, 70);
	}
	d = dec(&f, REV, t - SEC, 1);
	assert_int_equal(d.desired, 2); /* ceil(140 / 70) */
	assert_true(d.panic);           /* 2 wanted / 1 ready >= 2 */

	/* A burst of 2100 filling the 6 s panic window: 30 pods (panic value wins). */
	for (int i = 0; i < 6; i++, t += SEC)
		rec(&f, REV, t, 2100);
	d = dec(&f, REV, t - SEC, 2);
	assert_int_equal(d.desired, 30);
	assert_true(d.panic);
	/* Load stops: panic mode holds 30 for a stable window after the last surge. */
	uint64_t surge_end = t - SEC;
	for (int i = 0; i < 30; i++, t += SEC)
		rec(&f, REV, t, 0);
	d = dec(&f, REV, t - SEC, 30);
	assert_int_equal(d.desired, 30);
	assert_true(d.panic);

	/* Zeros until the stable window holds only zeros: out of panic; decider wants 0, but the
	 * revision had instances, so it is held at 1 for the 30 s grace period. */
	for (; t <= surge_end + 70 * SEC; t += SEC)
		rec(&f, REV, t, 0);
	d = dec(&f, REV, t - SEC, 30);
	assert_false(d.panic);
	assert_int_equal(d.desired, 15); /* max-scale-down-rate 2: 30 -> 15 */
	d = dec(&f, REV, t - SEC + 1, 1);
	assert_int_equal(d.desired, 1); /* decider 0, held at 1 */
	uint64_t zero_at = t - SEC + 1;
	d = dec(&f, REV, zero_at + 29 * SEC, 1);
	assert_int_equal(d.desired, 1);
	d = dec(&f, REV, zero_at + 30 * SEC, 1);
	assert_int_equal(d.desired, 0);
	d = dec(&f, REV, zero_at + 32 * SEC, 0);
	assert_int_equal(d.desired, 0);
	assert_int_equal(f.o->poke(f.st, REV, &s), 1); /* at zero again: a request pokes */
	kd_plugin_unload(f.h);
}

/* TBC 211 (scraped): no data is no decision (-1), never a scale-down. */
static void no_data_is_no_decision(void **state)
{
	(void)state;
	struct fx f;
	fx_load(&f, NULL);
	struct kd_scale_decision d = dec(&f, REV, 1000000, 3);
	assert_int_equal(d.desired, -1);
	assert_true(d.panic); /* created with 3 ready: New() starts in panic mode */
	rec(&f, REV, 1000000, 10);
	d = dec(&f, REV, 1000000, 3);
	assert_int_equal(d.desired, 3); /* panicking with 3 pods: never below 3 */
	assert_true(d.excess_burst_capacity == floor(3 * 100 - 211 - 10.0));
	kd_plugin_unload(f.h);
}

/* Knative's New() start-in-panic also applies when record created the state first. */
static void start_in_panic_when_record_came_first(void **state)
{
	(void)state;
	struct fx f;
	fx_load(&f, "{\"target-burst-capacity\": \"-1\"}");
	rec(&f, REV, 1000000, 1);
	struct kd_scale_decision d = dec(&f, REV, 1000000, 5);
	assert_true(d.panic);
	assert_int_equal(d.desired, 5);
	kd_plugin_unload(f.h);
}

static void annotations_override_config(void **state)
{
	(void)state;
	struct fx f;
	fx_load(&f, "{\"target-burst-capacity\": \"-1\"}");
	struct json_object *a = json_object_new_object();
	json_object_object_add(a, "autoscaling.knative.dev/target", json_object_new_string("10"));
	json_object_object_add(a, "autoscaling.knative.dev/target-utilization-percentage",
	                       json_object_new_string("100"));
	json_object_object_add(a, "autoscaling.knative.dev/max-scale", json_object_new_string("4"));
	json_object_object_add(a, "autoscaling.knative.dev/target-burst-capacity",
	                       json_object_new_string("0"));
	rec(&f, REV, 1000000, 55);
	struct kd_scale_decision d = dec_with(&f, REV, 1000000, 1, a);
	assert_int_equal(d.desired, 4); /* ceil(55/10) = 6, max-scale 4 */
	assert_true(d.excess_burst_capacity == 0);
	/* the input's bounds win over the annotation's */
	struct kd_scale_input in = {
	    .now_ms = 1000000, .ready = 1, .max_scale = 5, .annotations = a};
	struct kd_scale_decision out;
	assert_int_equal(f.o->decide(f.st, REV, &in, &out, NULL), 0);
	assert_int_equal(out.desired, 5);
	in.max_scale = 0;
	in.min_scale = 8;
	assert_int_equal(f.o->decide(f.st, REV, &in, &out, NULL), 0);
	assert_int_equal(out.desired, 8);

	/* RPS metric with its own target. */
	json_object *r = json_object_new_object();
	json_object_object_add(r, "autoscaling.knative.dev/metric", json_object_new_string("rps"));
	json_object_object_add(r, "autoscaling.knative.dev/target", json_object_new_string("20"));
	json_object_object_add(r, "autoscaling.knative.dev/target-utilization-percentage",
	                       json_object_new_string("100"));
	struct kd_metric_sample s = {.at_ms = 1000000, .concurrency = 1, .rps = 100};
	assert_int_equal(f.o->record(f.st, "default/rps-00001", &s), 0);
	struct kd_scale_decision dr = dec_with(&f, "default/rps-00001", 1000000, 1, r);
	assert_int_equal(dr.desired, 5); /* 100 rps / 20 */
	json_object_put(r);

	/* A bad annotation is a clear error. */
	json_object_object_add(a, "autoscaling.knative.dev/window", json_object_new_string("2s"));
	struct kd_error *err = NULL;
	in.min_scale = 0;
	assert_int_equal(f.o->decide(f.st, REV, &in, &out, &err), -EINVAL);
	assert_non_null(strstr(kd_error_msg(err), "autoscaling.knative.dev/window=\"2s\""));
	assert_non_null(strstr(kd_error_msg(err), REV));
	kd_error_free(err);
	json_object_put(a);
	kd_plugin_unload(f.h);
}

/* containerConcurrency from the PA spec caps the target; unreachable skips the rate limit down. */
static void pa_spec_facts(void **state)
{
	(void)state;
	struct fx f;
	fx_load(&f, "{\"target-burst-capacity\": \"-1\"}");
	rec(&f, REV, 1000000, 30);
	struct kd_scale_input in = {.now_ms = 1000000, .ready = 1, .container_concurrency = 10};
	struct kd_scale_decision out;
	assert_int_equal(f.o->decide(f.st, REV, &in, &out, NULL), 0);
	assert_int_equal(out.desired, 5); /* target 10 x 70% = 7: ceil(30 / 7) */
	kd_plugin_unload(f.h);

	fx_load(&f, "{\"target-burst-capacity\": \"-1\", \"scale-to-zero-grace-period\": \"1s\"}");
	rec(&f, REV, 1000000, 1);
	in = (struct kd_scale_input){.now_ms = 1000000, .ready = 1, .unreachable = true};
	assert_int_equal(f.o->decide(f.st, REV, &in, &out, NULL), 0);
	assert_int_equal(out.desired, 1);
	in.now_ms += 61 * SEC; /* window empty: 0, no pod retention for unreachable revisions */
	in.ready = 40;
	assert_int_equal(f.o->decide(f.st, REV, &in, &out, NULL), 0);
	assert_int_equal(out.desired, 1); /* grace 1 s */
	in.now_ms += SEC;
	assert_int_equal(f.o->decide(f.st, REV, &in, &out, NULL), 0);
	assert_int_equal(out.desired, 0); /* not rate-limited to 40 / 2 when unreachable */
	kd_plugin_unload(f.h);
}

static void scale_to_zero_disabled_keeps_one(void **state)
{
	(void)state;
	struct fx f;
	fx_load(&f, "{\"target-burst-capacity\": \"-1\", \"enable-scale-to-zero\": \"false\"}");
	struct kd_scale_decision d = dec(&f, REV, 1000000, 0);
	assert_int_equal(d.desired, 1);
	kd_plugin_unload(f.h);
}

/* scaler.go: initial-scale raises min-scale until the revision first had that many ready. */
static void initial_scale_until_initialized(void **state)
{
	(void)state;
	struct fx f;
	fx_load(&f, "{\"target-burst-capacity\": \"-1\", \"initial-scale\": \"3\"}");
	assert_int_equal(dec(&f, REV, 1000000, 0).desired, 3);
	assert_int_equal(dec(&f, REV, 1002000, 2).desired, 3);
	/* 3 ready: initialized; no traffic: max-scale-down-rate 2 allows floor(3 / 2) = 1. */
	assert_int_equal(dec(&f, REV, 1004000, 3).desired, 1);
	/* Then the decider wants 0: held at 1 for the 30 s grace period, then 0. */
	assert_int_equal(dec(&f, REV, 1006000, 1).desired, 1);
	assert_int_equal(dec(&f, REV, 1035999, 1).desired, 1);
	assert_int_equal(dec(&f, REV, 1036000, 1).desired, 0);
	kd_plugin_unload(f.h);
}

/* A config struct from JSON through the plugin's own table (what kd-autoscaler builds). */
static struct kpa_config *cfg_from(const struct kd_plugin_handle *h, const char *json)
{
	const struct kd_plugin *d = kd_plugin_desc(h);
	struct kpa_config *c = kd_xcalloc(1, d->config_size);
	struct kd_error *err = NULL;
	if (kd_config_parse_json_str(d->options, c, "test", json, 0, &err) < 0)
		fail_msg("config %s: %s", json, kd_error_msg(err));
	return c;
}

static void cfg_free(const struct kd_plugin_handle *h, struct kpa_config *c)
{
	kd_config_free(kd_plugin_desc(h)->options, c);
	free(c);
}

/* reconfigure: a new config applies from the next decide, windows kept; an invalid one is
 * refused with Knative's message and the previous one stays. */
static void reconfigure_applies_and_refuses(void **state)
{
	(void)state;
	struct fx f;
	fx_load(&f, "{\"target-burst-capacity\": \"-1\"}");
	assert_true(KD_HAS_MEMBER(f.o, struct kd_decider_ops, reconfigure));
	assert_non_null(f.o->reconfigure);
	rec(&f, REV, 1000000, 700);
	assert_int_equal(dec(&f, REV, 1000000, 1).desired, 10); /* 700 / (100 * 0.7) */
	/* target 50 per pod: the same window now reads 700 / 35 = 20 */
	struct kpa_config *c1 =
	    cfg_from(f.h, "{\"target-burst-capacity\": \"-1\", "
	                  "\"container-concurrency-target-percentage\": \"35\"}");
	struct kd_error *err = NULL;
	assert_int_equal(f.o->reconfigure(f.st, c1, &err), 0);
	assert_null(err);
	cfg_free(f.h, c1);
	assert_int_equal(dec(&f, REV, 1002000, 10).desired, 20);
	/* invalid (max-scale-up-rate must be > 1): refused, 35 % still in force */
	struct kpa_config *bad =
	    cfg_from(f.h, "{\"target-burst-capacity\": \"-1\", \"max-scale-up-rate\": \"1\"}");
	assert_int_equal(f.o->reconfigure(f.st, bad, &err), -EINVAL);
	assert_non_null(err);
	assert_non_null(strstr(kd_error_msg(err), "max-scale-up-rate"));
	kd_error_free(err);
	err = NULL;
	cfg_free(f.h, bad);
	assert_int_equal(dec(&f, REV, 1004000, 20).desired, 20);
	/* enable-scale-to-zero false: the idle revision is held at 1 */
	struct kpa_config *c2 = cfg_from(
	    f.h, "{\"target-burst-capacity\": \"-1\", \"enable-scale-to-zero\": \"false\"}");
	assert_int_equal(f.o->reconfigure(f.st, c2, NULL), 0);
	assert_int_equal(dec(&f, "default/idle-00001", 1004000, 0).desired, 1);
	cfg_free(f.h, c2); /* borrowed for the call only */
	assert_int_equal(dec(&f, "default/idle-00001", 1006000, 0).desired, 1);
	kd_plugin_unload(f.h);
}

/* Instances the host made without an output of ours (its initial scale, or found at a
 * restart) are held like any: wanting 0, the revision keeps 1 for the grace period (30 s). */
static void ready_instances_without_an_output_are_held_for_the_grace_period(void **state)
{
	(void)state;
	struct fx f;
	fx_load(&f, "{\"target-burst-capacity\": \"-1\"}");
	assert_int_equal(dec(&f, REV, 1000000, 1).desired, 1);
	assert_int_equal(dec(&f, REV, 1029000, 1).desired, 1);
	assert_int_equal(dec(&f, REV, 1031000, 1).desired, 0);
	/* nothing ready and nothing wanted before: 0 at once */
	assert_int_equal(dec(&f, "default/cold-00001", 1000000, 0).desired, 0);
	kd_plugin_unload(f.h);
}

static void forget_drops_the_revision(void **state)
{
	(void)state;
	struct fx f;
	fx_load(&f, "{\"target-burst-capacity\": \"-1\"}");
	rec(&f, REV, 1000000, 700);
	rec(&f, "default/other-00001", 1000000, 70);
	assert_int_equal(dec(&f, REV, 1000000, 1).desired, 10);
	f.o->forget(f.st, REV);
	f.o->forget(f.st, "default/never-seen");
	/* a new state: no history, no data -> 0 with TBC -1 (no instance ready to hold) */
	assert_int_equal(dec(&f, REV, 1000000, 0).desired, 0);
	assert_int_equal(dec(&f, "default/other-00001", 1000000, 1).desired, 1);
	kd_plugin_unload(f.h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(loads_with_knative_defaults),
	    cmocka_unit_test(knative_configmap_data_is_a_valid_config),
	    cmocka_unit_test(unknown_key_is_refused),
	    cmocka_unit_test(invalid_values_are_refused_with_knative_messages),
	    cmocka_unit_test(cold_start_poke_panic_and_scale_to_zero_grace),
	    cmocka_unit_test(no_data_is_no_decision),
	    cmocka_unit_test(start_in_panic_when_record_came_first),
	    cmocka_unit_test(annotations_override_config),
	    cmocka_unit_test(pa_spec_facts),
	    cmocka_unit_test(scale_to_zero_disabled_keeps_one),
	    cmocka_unit_test(initial_scale_until_initialized),
	    cmocka_unit_test(reconfigure_applies_and_refuses),
	    cmocka_unit_test(ready_instances_without_an_output_are_held_for_the_grace_period),
	    cmocka_unit_test(forget_drops_the_revision),
	};
	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
