/* Unit tests for kd-autoscaler's decider configuration (autoscaler-shim/cfgmap.c): Knative's
 * config-autoscaler ConfigMap read by an informer from a loopback fake API Server (one thread
 * answering the list with a ConfigMapList and holding a watch open, down which the test pushes
 * events), applied to the real decider-kpa plugin (build/plugins/kd-decider-kpa.so, through the
 * loader) with its reconfigure op. Checked:
 *  - initial read: the list is applied before decisions may start (kd_as_dcfg_ready), from the
 *    ConfigMap named in the namespace given (path and field selector), values in Knative's format;
 *  - update applied without a restart: a MODIFIED event changes the config in force and the
 *    decider's answer (enable-scale-to-zero false holds an idle revision at 1); keys together
 *    (initial-scale 0 with allow-zero-initial-scale) are validated together; a removed key and a
 *    deleted ConfigMap go back to the defaults; --decider-config overrides the ConfigMap;
 *    kd_as_initial_scale follows initial-scale / allow-zero-initial-scale;
 *  - `_example` ignored: not parsed, not logged, not counted;
 *  - bad values: one that does not parse (also a boolean Go's ParseBool, Knative's parser, refuses)
 *    and one the decider refuses are each logged with key and value and keep their previous
 *    value, while a good key of the same update is applied. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../autoscaler-shim/cfgmap.c" /* NOLINT(bugprone-suspicious-include) */
#include "../../plugins/decider-kpa/kpa.h"
#include "kd/kubeconfig.h"
#include "kd_test_httpd.h"
#include "kd_test_log.h"

#define KPA_SO "" KD_BUILD_DIR "/plugins/kd-decider-kpa.so"
#define SEC    1000

/* ---- the fake API Server ------------------------------------------------------------------- */

static struct {
	pthread_mutex_t lock;
	char *list; /* ConfigMapList body */
	char *events[16];
	size_t n_events, sent;
	int lists, watches;
} api = {.lock = PTHREAD_MUTEX_INITIALIZER};

static char *cm_json(const char *rv, const char *data)
{
	return kd_xasprintf("{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":"
	                    "\"config-autoscaler\",\"namespace\":\"knative-serving\","
	                    "\"resourceVersion\":\"%s\"},\"data\":{%s}}",
	                    rv, data);
}

/* The list answer: the ConfigMap with data (JSON members, without braces), or none (NULL). */
static void api_set_list(const char *data)
{
	kd_autofree char *cm = data ? cm_json("10", data) : NULL;
	pthread_mutex_lock(&api.lock);
	free(api.list);
	api.list = kd_xasprintf("{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"metadata\":{"
	                        "\"resourceVersion\":\"10\"},\"items\":[%s]}",
	                        cm ? cm : "");
	pthread_mutex_unlock(&api.lock);
}

/* Queues a watch event: type and data as for api_set_list. */
static void api_push(const char *type, const char *data)
{
	pthread_mutex_lock(&api.lock);
	char rv[16];
	snprintf(rv, sizeof(rv), "%zu", 11 + api.n_events);
	kd_autofree char *cm = cm_json(rv, data);
	assert_true(api.n_events < KD_ARRAY_SIZE(api.events));
	api.events[api.n_events++] = kd_xasprintf("{\"type\":\"%s\",\"object\":%s}\n", type, cm);
	pthread_mutex_unlock(&api.lock);
}

static void api_reset(void)
{
	pthread_mutex_lock(&api.lock);
	free(api.list);
	api.list = NULL;
	for (size_t i = 0; i < api.n_events; i++)
		free(api.events[i]);
	api.n_events = api.sent = 0;
	api.lists = api.watches = 0;
	pthread_mutex_unlock(&api.lock);
}

static void handler(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req, void *arg)
{
	(void)arg;
	if (strcmp(req->path, "/api/v1/namespaces/knative-serving/configmaps") != 0 ||
	    !strstr(req->query, "fieldSelector=metadata.name%3Dconfig-autoscaler")) {
		kd_test_httpd_respond(conn, 404, "application/json", "{\"kind\":\"Status\"}");
		return;
	}
	if (!strstr(req->query, "watch=1")) {
		pthread_mutex_lock(&api.lock);
		api.lists++;
		kd_autofree char *body = kd_xstrdup(api.list);
		pthread_mutex_unlock(&api.lock);
		kd_test_httpd_respond(conn, 200, "application/json", body);
		return;
	}
	pthread_mutex_lock(&api.lock);
	api.watches++;
	pthread_mutex_unlock(&api.lock);
	kd_test_httpd_begin_chunked(conn, 200, "application/json");
	for (int i = 0; i < 3000 && kd_test_httpd_sleep(conn, 5); i++) {
		pthread_mutex_lock(&api.lock);
		char *ev = api.sent < api.n_events ? kd_xstrdup(api.events[api.sent++]) : NULL;
		pthread_mutex_unlock(&api.lock);
		int rc = ev ? kd_test_httpd_chunk(conn, ev, strlen(ev)) : 0;
		free(ev);
		if (rc < 0)
			return;
	}
	kd_test_httpd_end_chunked(conn);
}

/* ---- kd-autoscaler's pieces: a loop, a client, the decider --------------------------------- */

struct fx {
	struct kd_test_httpd *srv;
	struct kd_as as;
};

/* Starts everything with --decider-config over (or NULL); the list must be set. */
static struct fx *fx_start(const char *over)
{
	struct fx *f = kd_xcalloc(1, sizeof(*f));
	f->srv = kd_test_httpd_start(handler, NULL, NULL, NULL);
	struct kd_as *as = &f->as;
	as->loop = kd_loop_new();
	struct kd_k8s_config *kc = kd_k8s_config_new(kd_test_httpd_url(f->srv));
	assert_int_equal(kd_k8s_new(kc, as->loop, NULL, &as->k8s, NULL), 0);
	kd_k8s_config_free(kc);
	as->cfg.knative_namespace = kd_xstrdup("knative-serving");
	as->cfg.config_autoscaler = kd_xstrdup("config-autoscaler");
	as->cfg.decider_config = over ? kd_xstrdup(over) : NULL;
	kd_autoerr struct kd_error *err = NULL;
	if (kd_as_dcfg_new(as, &err) < 0)
		fail_msg("dcfg: %s", kd_error_msg(err));
	kd_host_init(&as->host, as->loop, "test-as-cfgmap");
	kd_autofree char *json = kd_as_dcfg_loader_json(as);
	if (kd_plugin_load(KPA_SO, KD_PLUGIN_DECIDER, json, &as->host, &as->decider_h, &err) < 0)
		fail_msg("load: %s", kd_error_msg(err));
	as->decider = kd_plugin_ops(as->decider_h);
	if (kd_as_dcfg_start(as, &err) < 0)
		fail_msg("start: %s", kd_error_msg(err));
	return f;
}

static void fx_stop(struct fx *f)
{
	kd_as_dcfg_stop(&f->as);
	kd_plugin_unload(f->as.decider_h);
	kd_k8s_free(f->as.k8s);
	kd_test_httpd_stop(f->srv);
	kd_loop_free(f->as.loop);
	free(f->as.cfg.knative_namespace);
	free(f->as.cfg.config_autoscaler);
	free(f->as.cfg.decider_config);
	free(f);
	api_reset();
}

static const struct kpa_config *cfg(struct fx *f)
{
	return kd_as_dcfg_current(&f->as);
}

/* Runs the loop until cond(f) or 5 s. */
static void run_until(struct fx *f, bool (*cond)(struct fx *f), const char *what)
{
	uint64_t end = kd_now_ns() + 5000000000ull;
	while (!cond(f) && kd_now_ns() < end)
		kd_loop_run_once(f->as.loop, 10);
	if (!cond(f))
		fail_msg("timed out waiting for %s", what);
}

static bool is_ready(struct fx *f)
{
	return kd_as_dcfg_ready(&f->as);
}

static uint64_t n_changes(struct fx *f)
{
	uint64_t a, r;
	kd_as_dcfg_counts(&f->as, &a, &r);
	return a + r;
}

static uint64_t want_changes;
static bool changes_reached(struct fx *f)
{
	return n_changes(f) >= want_changes;
}

/* Pushes an event and runs until `more` further keys were applied or refused. */
static void push_and_wait(struct fx *f, const char *type, const char *data, uint64_t more)
{
	want_changes = n_changes(f) + more;
	api_push(type, data);
	run_until(f, changes_reached, "the ConfigMap change");
}

/* The decider's answer for an idle revision with no data (TBC -1: the activator in path). */
static int32_t idle_decision(struct fx *f, const char *rev, uint64_t now)
{
	struct kd_scale_input in = {.now_ms = now, .ready = 0};
	struct kd_scale_decision out = {.desired = -2};
	kd_autoerr struct kd_error *err = NULL;
	if (f->as.decider->decide(kd_plugin_state(f->as.decider_h), rev, &in, &out, &err) < 0)
		fail_msg("decide: %s", kd_error_msg(err));
	return out.desired;
}

/* A realistic _example block: Knative's, with values that are not valid config. */
#define EXAMPLE                                                                                    \
	"\"_example\":\"################################\\n# This block is not actually "          \
	"functional configuration\\ncontainer-concurrency-target-percentage: \\\"70\\\"\\n"        \
	"stable-window: \\\"sixty seconds\\\"\\n\""

/* ---- tests ----------------------------------------------------------------------------------- */

static void initial_read_applies_before_decisions(void **state)
{
	(void)state;
	api_set_list("\"stable-window\":\"30s\",\"container-concurrency-target-percentage\":\"35\","
	             "\"target-burst-capacity\":\"-1\",\"scale-to-zero-grace-period\":\"1m\"");
	struct fx *f = fx_start(NULL);
	assert_false(kd_as_dcfg_ready(&f->as)); /* decisions wait for the list */
	assert_int_equal(cfg(f)->stable_window_ms, 60 * SEC);
	run_until(f, is_ready, "config-autoscaler listed");
	assert_int_equal(cfg(f)->stable_window_ms, 30 * SEC);
	assert_true(cfg(f)->container_concurrency_target_percentage == 35);
	assert_true(cfg(f)->target_burst_capacity == -1);
	assert_int_equal(cfg(f)->scale_to_zero_grace_period_ms, 60 * SEC);
	assert_int_equal(cfg(f)->max_scale, 0); /* untouched keys: Knative's defaults */
	uint64_t applied, refused;
	kd_as_dcfg_counts(&f->as, &applied, &refused);
	assert_int_equal(applied, 4);
	assert_int_equal(refused, 0);
	/* the decider decides with it: 700 concurrent at 100 * 35 % per pod -> 20 */
	struct kd_metric_sample s = {.at_ms = 100 * SEC, .concurrency = 700};
	void *st = kd_plugin_state(f->as.decider_h);
	assert_int_equal(f->as.decider->record(st, "demo/hello-00001", &s), 0);
	struct kd_scale_input in = {.now_ms = 100 * SEC, .ready = 1};
	struct kd_scale_decision out;
	assert_int_equal(f->as.decider->decide(st, "demo/hello-00001", &in, &out, NULL), 0);
	assert_int_equal(out.desired, 20);
	fx_stop(f);
}

static void update_is_applied_without_restart(void **state)
{
	(void)state;
	api_set_list("\"target-burst-capacity\":\"-1\",\"max-scale\":\"7\"");
	struct fx *f = fx_start("{\"min-scale\":\"0\",\"scale-to-zero-grace-period\":\"5s\"}");
	run_until(f, is_ready, "config-autoscaler listed");
	assert_int_equal(cfg(f)->max_scale, 7);
	assert_int_equal(idle_decision(f, "demo/a-00001", 1000 * SEC), 0);

	/* enable-scale-to-zero false: the idle revision is held at 1 from the next decision */
	push_and_wait(f, "MODIFIED",
	              "\"target-burst-capacity\":\"-1\",\"max-scale\":\"7\","
	              "\"enable-scale-to-zero\":\"False\",\"scale-to-zero-grace-period\":\"2m\"",
	              2); /* "False": Go's strconv.ParseBool, as Knative reads it */
	assert_false(cfg(f)->enable_scale_to_zero);
	assert_int_equal(idle_decision(f, "demo/a-00001", 1002 * SEC), 1);
	/* --decider-config wins over the ConfigMap */
	assert_int_equal(cfg(f)->scale_to_zero_grace_period_ms, 5 * SEC);

	/* initial-scale 0 is valid only with allow-zero-initial-scale: both in one update */
	assert_int_equal(kd_as_initial_scale(&f->as, -1), 1);
	assert_int_equal(kd_as_initial_scale(&f->as, 0), 1); /* annotation 0 not allowed */
	assert_int_equal(kd_as_initial_scale(&f->as, 4), 4);
	push_and_wait(f, "MODIFIED",
	              "\"target-burst-capacity\":\"-1\",\"max-scale\":\"7\","
	              "\"enable-scale-to-zero\":\"False\",\"initial-scale\":\"0\","
	              "\"allow-zero-initial-scale\":\"true\"",
	              3); /* initial-scale, allow-zero..., grace period removed */
	assert_int_equal(cfg(f)->initial_scale, 0);
	assert_true(cfg(f)->allow_zero_initial_scale);
	assert_int_equal(kd_as_initial_scale(&f->as, -1), 0);
	assert_int_equal(kd_as_initial_scale(&f->as, 0), 0);

	/* a removed key goes back to its default */
	push_and_wait(f, "MODIFIED",
	              "\"target-burst-capacity\":\"-1\",\"initial-scale\":\"0\","
	              "\"allow-zero-initial-scale\":\"true\"",
	              2);
	assert_true(cfg(f)->enable_scale_to_zero);
	assert_int_equal(cfg(f)->max_scale, 0);
	assert_int_equal(idle_decision(f, "demo/b-00001", 1004 * SEC), 0);

	/* deleted: everything back to the defaults (with --decider-config) */
	push_and_wait(f, "DELETED", "", 3);
	assert_true(cfg(f)->target_burst_capacity == 211);
	assert_int_equal(cfg(f)->initial_scale, 1);
	assert_false(cfg(f)->allow_zero_initial_scale);
	assert_int_equal(cfg(f)->scale_to_zero_grace_period_ms, 5 * SEC);
	uint64_t applied, refused;
	kd_as_dcfg_counts(&f->as, &applied, &refused);
	assert_int_equal(refused, 0);
	fx_stop(f);
}

static void example_is_ignored(void **state)
{
	(void)state;
	api_set_list(EXAMPLE ",\"stable-window\":\"20s\"");
	kd_test_log_capture();
	struct fx *f = fx_start(NULL);
	run_until(f, is_ready, "config-autoscaler listed");
	push_and_wait(f, "MODIFIED", EXAMPLE ",\"stable-window\":\"40s\",\"no-such-key\":\"1\"", 1);
	kd_autofree char *logs = kd_test_log_take();
	assert_int_equal(cfg(f)->stable_window_ms, 40 * SEC);
	assert_true(cfg(f)->container_concurrency_target_percentage == 70);
	uint64_t applied, refused;
	kd_as_dcfg_counts(&f->as, &applied, &refused);
	assert_int_equal(applied, 2);
	assert_int_equal(refused, 0);
	assert_null(strstr(logs, "_example"));
	/* a key the decider does not have is logged (once) and ignored, as Knative ignores it */
	assert_non_null(strstr(logs, "no-such-key=\"1\" ignored"));
	fx_stop(f);
}

static void bad_value_keeps_the_previous_one(void **state)
{
	(void)state;
	api_set_list("\"stable-window\":\"30s\",\"panic-window-percentage\":\"10\"");
	struct fx *f = fx_start(NULL);
	run_until(f, is_ready, "config-autoscaler listed");
	kd_test_log_capture();
	/* stable-window does not parse; max-scale-up-rate parses but the decider refuses it
	 * (must be > 1); panic-window-percentage is fine */
	push_and_wait(f, "MODIFIED",
	              "\"stable-window\":\"abc\",\"panic-window-percentage\":\"20\","
	              "\"max-scale-up-rate\":\"1\",\"enable-scale-to-zero\":\"yes\"",
	              4);
	kd_autofree char *logs = kd_test_log_take();
	assert_int_equal(cfg(f)->stable_window_ms, 30 * SEC);
	assert_true(cfg(f)->max_scale_up_rate == 1000);
	assert_true(cfg(f)->panic_window_percentage == 20);
	uint64_t applied, refused;
	kd_as_dcfg_counts(&f->as, &applied, &refused);
	assert_int_equal(refused, 3);
	assert_true(cfg(f)->enable_scale_to_zero); /* "yes": not a Go boolean, Knative refuses it */
	assert_non_null(strstr(logs, "enable-scale-to-zero=\"yes\" refused: option "
	                             "\"enable-scale-to-zero\": \"yes\" is not a boolean"));
	assert_non_null(strstr(logs, "config-autoscaler knative-serving/config-autoscaler: "
	                             "stable-window=\"abc\" refused: "));
	assert_non_null(strstr(logs, "; keeping \"30s\""));
	assert_non_null(strstr(logs, "max-scale-up-rate=\"1\" refused: "));
	assert_non_null(strstr(logs, "; keeping the default"));
	/* still running: a later good value is applied */
	push_and_wait(f, "MODIFIED",
	              "\"stable-window\":\"90s\",\"panic-window-percentage\":\"20\","
	              "\"max-scale-up-rate\":\"1\"",
	              2); /* stable-window applied, max-scale-up-rate refused again */
	assert_int_equal(cfg(f)->stable_window_ms, 90 * SEC);
	assert_true(cfg(f)->max_scale_up_rate == 1000);
	fx_stop(f);
}

static void missing_configmap_means_defaults(void **state)
{
	(void)state;
	api_set_list(NULL);
	struct fx *f = fx_start("{\"max-scale\":\"3\"}");
	run_until(f, is_ready, "config-autoscaler listed");
	assert_int_equal(cfg(f)->stable_window_ms, 60 * SEC);
	assert_int_equal(cfg(f)->max_scale, 3);
	/* created later: applied */
	push_and_wait(f, "ADDED", "\"stable-window\":\"10s\"", 1);
	assert_int_equal(cfg(f)->stable_window_ms, 10 * SEC);
	fx_stop(f);
}

static void initial_scale_flag_is_a_decider_config_override(void **state)
{
	(void)state;
	struct kd_as as;
	memset(&as, 0, sizeof(as));
	as.cfg.initial_scale = (char *)"3";
	assert_int_equal(kd_as_dcfg_new(&as, NULL), 0);
	kd_autofree char *json = kd_as_dcfg_loader_json(&as);
	assert_string_equal(json, "{\"initial-scale\":\"3\"}");
	kd_as_dcfg_stop(&as);
	as.cfg.decider_config = (char *)"{\"initial-scale\":\"2\"}";
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_as_dcfg_new(&as, &err), -EINVAL);
	assert_non_null(strstr(kd_error_msg(err), "both given"));
	kd_as_dcfg_stop(&as);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(initial_read_applies_before_decisions),
	    cmocka_unit_test(update_is_applied_without_restart),
	    cmocka_unit_test(example_is_ignored),
	    cmocka_unit_test(bad_value_keeps_the_previous_one),
	    cmocka_unit_test(missing_configmap_means_defaults),
	    cmocka_unit_test(initial_scale_flag_is_a_decider_config_override),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
