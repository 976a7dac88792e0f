/* Unit tests for plugins/runtime-kubelet.
 *  - Its pure parts (rk_pod.c, linked in): what a Pod from a watch event says (IP, Ready, phase,
 *    exit code and reason, managed, terminating), the adopt decision for an existing Pod of the
 *    instance's name, the events an observation calls for in each sandbox phase, the Pod it
 *    creates and the DeleteOptions it sends.
 *  - The plugin through the real loader against a scripted API on loopback (kd_test_httpd: it
 *    stores nothing; the test scripts the answers and the watch events, as the kubelet's status
 *    writes would show them): a create that reports STARTED and READY only when the watch says
 *    so, a stop that DELETEs with the grace and uid and ends when the watch shows the Pod gone,
 *    a 409 that adopts a managed Pod and refuses a foreign one, a start with a uid (kd-node
 *    restarted) that creates nothing, and the ABI's refusals. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../plugins/runtime-kubelet/rk_pod.h"
#include "kd/json.h"
#include "kd/k8s.h"
#include "kd/log.h"
#include "kd/loop.h"
#include "kd/plugin.h"
#include "kd/stage.h"
#include "kd_test_httpd.h"

/* ---- fixtures ------------------------------------------------------------------------------- */

/* A Pod as the API shows it: managed (or not) on node, with the status fields given (NULL:
 * absent). ready: NULL no conditions, else the Ready condition's status. Owned. */
static void put_str(json_object *o, const char *key, const char *val)
{
	if (val)
		json_object_object_add(o, key, json_object_new_string(val));
}

static json_object *put_obj(json_object *o, const char *key)
{
	json_object *c = json_object_new_object();
	json_object_object_add(o, key, c);
	return c;
}

static json_object *pod_json(const char *name, const char *uid, const char *node, bool managed,
                             const char *phase, const char *ip, const char *ready, bool terminating)
{
	json_object *o = json_object_new_object();
	put_str(o, "apiVersion", "v1");
	put_str(o, "kind", "Pod");
	json_object *md = put_obj(o, "metadata");
	put_str(md, "name", name);
	put_str(md, "namespace", "ns");
	put_str(md, "uid", uid);
	put_str(md, "resourceVersion", "7");
	json_object *labels = put_obj(md, "labels");
	put_str(labels, "app", "x");
	if (managed)
		put_str(labels, "kubedirect.dev/managed", "true");
	if (terminating)
		put_str(md, "deletionTimestamp", "2026-01-01T00:00:00Z");
	json_object *spec = put_obj(o, "spec");
	put_str(spec, "nodeName", node);
	json_object *containers = json_object_new_array();
	json_object *c = json_object_new_object();
	put_str(c, "name", "c");
	put_str(c, "image", "i");
	json_object_array_add(containers, c);
	json_object_object_add(spec, "containers", containers);
	json_object *st = put_obj(o, "status");
	put_str(st, "phase", phase);
	put_str(st, "podIP", ip);
	if (ready) {
		json_object *conds = json_object_new_array();
		c = json_object_new_object();
		put_str(c, "type", "PodScheduled");
		put_str(c, "status", "True");
		json_object_array_add(conds, c);
		c = json_object_new_object();
		put_str(c, "type", "Ready");
		put_str(c, "status", ready);
		json_object_array_add(conds, c);
		json_object_object_add(st, "conditions", conds);
	}
	return o;
}

static json_object *parse(const char *text)
{
	json_object *o = NULL;
	assert_int_equal(kd_json_parse(text, strlen(text), 0, "test", &o, NULL), 0);
	return o;
}

/* ---- pure: readiness from a watch event ----------------------------------------------------- */

static void pod_state_from_watch_events(void **state)
{
	(void)state;
	struct rk_pod_state st;
	kd_autojson json_object *pending =
	    pod_json("p", "u1", "n1", true, "Pending", NULL, NULL, false);
	assert_int_equal(rk_pod_state_read(pending, &st), 0);
	assert_string_equal(st.uid, "u1");
	assert_string_equal(st.node, "n1");
	assert_null(st.ip);
	assert_int_equal(st.phase, RK_PHASE_PENDING);
	assert_false(st.ready);
	assert_true(st.managed);
	assert_false(st.terminating);

	kd_autojson json_object *started =
	    pod_json("p", "u1", "n1", true, "Running", "10.244.3.7", "False", false);
	assert_int_equal(rk_pod_state_read(started, &st), 0);
	assert_string_equal(st.ip, "10.244.3.7");
	assert_int_equal(st.phase, RK_PHASE_RUNNING);
	assert_false(st.ready); /* Ready=False, PodScheduled=True does not count */

	kd_autojson json_object *ready =
	    pod_json("p", "u1", "n1", true, "Running", "10.244.3.7", "True", false);
	assert_int_equal(rk_pod_state_read(ready, &st), 0);
	assert_true(st.ready);
	assert_null(st.reason);

	kd_autojson json_object *empty_ip =
	    pod_json("p", "u1", "n1", false, "Pending", "", NULL, true);
	assert_int_equal(rk_pod_state_read(empty_ip, &st), 0);
	assert_null(st.ip); /* "" is no address */
	assert_false(st.managed);
	assert_true(st.terminating);

	/* finished: the exit code and reason of the terminated container, the Pod's own reason
	 * first */
	kd_autojson json_object *done = parse(
	    "{\"metadata\":{\"name\":\"p\",\"uid\":\"u1\"},\"status\":{\"phase\":\"Succeeded\","
	    "\"containerStatuses\":[{\"name\":\"a\",\"state\":{\"running\":{}}},{\"name\":\"b\","
	    "\"state\":{\"terminated\":{\"exitCode\":3,\"reason\":\"Completed\"}}}]}}");
	assert_int_equal(rk_pod_state_read(done, &st), 0);
	assert_int_equal(st.phase, RK_PHASE_SUCCEEDED);
	assert_int_equal(st.exit_code, 3);
	assert_string_equal(st.reason, "Completed");
	kd_autojson json_object *evicted =
	    parse("{\"metadata\":{\"name\":\"p\"},\"status\":{\"phase\":\"Failed\",\"reason\":"
	          "\"Evicted\",\"message\":\"low on memory\",\"containerStatuses\":[{\"state\":{"
	          "\"terminated\":{\"exitCode\":137,\"reason\":\"Error\",\"message\":\"m\"}}}]}}");
	assert_int_equal(rk_pod_state_read(evicted, &st), 0);
	assert_int_equal(st.phase, RK_PHASE_FAILED);
	assert_string_equal(st.reason, "Evicted");
	assert_string_equal(st.message, "low on memory");
	assert_int_equal(st.exit_code, 137);
	assert_null(st.uid);

	/* not a Pod */
	kd_autojson json_object *nameless = parse("{\"metadata\":{},\"status\":{}}");
	assert_int_equal(rk_pod_state_read(nameless, &st), -EINVAL);
	kd_autojson json_object *arr = parse("[]");
	assert_int_equal(rk_pod_state_read(arr, &st), -EINVAL);
	assert_int_equal(rk_pod_state_read(NULL, &st), -EINVAL);
}

/* ---- pure: the adopt decision --------------------------------------------------------------- */

static enum rk_adopt decide(json_object *pod, const char *node, const char *want_uid)
{
	struct rk_pod_state st;
	assert_int_equal(rk_pod_state_read(pod, &st), 0);
	return rk_adopt_decide(&st, node, want_uid);
}

static void adopt_decision(void **state)
{
	(void)state;
	kd_autojson json_object *ours =
	    pod_json("p", "u1", "n1", true, "Running", "10.0.0.1", "True", false);
	kd_autojson json_object *foreign =
	    pod_json("p", "u1", "n1", false, "Running", NULL, NULL, false);
	kd_autojson json_object *elsewhere =
	    pod_json("p", "u1", "n2", true, NULL, NULL, NULL, false);
	kd_autojson json_object *going =
	    pod_json("p", "u1", "n1", true, "Running", "10.0.0.1", "True", true);
	kd_autojson json_object *failed =
	    pod_json("p", "u1", "n1", true, "Failed", NULL, NULL, false);
	kd_autojson json_object *fresh = pod_json("p", "u1", "n1", true, NULL, NULL, NULL, false);

	/* a create's 409 (no uid wanted) */
	assert_int_equal(decide(ours, "n1", NULL), RK_ADOPT);
	assert_int_equal(decide(fresh, "n1", NULL), RK_ADOPT); /* not started by the kubelet yet */
	assert_int_equal(decide(foreign, "n1", NULL), RK_ADOPT_FOREIGN);
	assert_int_equal(decide(elsewhere, "n1", NULL), RK_ADOPT_OTHER_NODE);
	assert_int_equal(decide(going, "n1", NULL), RK_ADOPT_WAIT_GONE);
	assert_int_equal(decide(failed, "n1", NULL), RK_ADOPT_FINISHED);
	/* a start with a uid (a written-back instance kd-node adopts after a restart) */
	assert_int_equal(decide(ours, "n1", "u1"), RK_ADOPT);
	assert_int_equal(decide(ours, "n1", "u2"), RK_ADOPT_OTHER_UID);
	assert_int_equal(decide(going, "n1", "u1"), RK_ADOPT); /* its deletion ends the sandbox */
	assert_int_equal(decide(going, "n1", "u2"), RK_ADOPT_OTHER_UID);
	/* foreign wins over everything: never touched */
	assert_int_equal(decide(foreign, "n2", "u2"), RK_ADOPT_FOREIGN);
	assert_int_equal(decide(elsewhere, "n1", "u2"), RK_ADOPT_OTHER_NODE);
	assert_int_equal(decide(ours, NULL, NULL), RK_ADOPT_OTHER_NODE);

	assert_string_equal(rk_adopt_name(RK_ADOPT), "adopt");
	assert_string_equal(rk_adopt_name(RK_ADOPT_WAIT_GONE), "wait-gone");
	assert_string_equal(rk_adopt_name(RK_ADOPT_FOREIGN), "foreign");
	assert_string_equal(rk_adopt_name(RK_ADOPT_OTHER_NODE), "other-node");
	assert_string_equal(rk_adopt_name(RK_ADOPT_OTHER_UID), "other-uid");
	assert_string_equal(rk_adopt_name(RK_ADOPT_FINISHED), "finished");
	assert_string_equal(rk_adopt_name((enum rk_adopt)99), "unknown");
}

/* ---- pure: event mapping -------------------------------------------------------------------- */

static void events_of(enum kd_sandbox_phase cur, json_object *pod, struct rk_events *out)
{
	struct rk_pod_state st;
	assert_int_equal(rk_pod_state_read(pod, &st), 0);
	rk_events_for(cur, &st, out);
}

static void event_mapping(void **state)
{
	(void)state;
	struct rk_events e;
	kd_autojson json_object *pending =
	    pod_json("p", "u", "n", true, "Pending", NULL, NULL, false);
	kd_autojson json_object *started =
	    pod_json("p", "u", "n", true, "Running", "10.0.0.1", "False", false);
	kd_autojson json_object *ready =
	    pod_json("p", "u", "n", true, "Running", "10.0.0.1", "True", false);
	kd_autojson json_object *ready_no_ip =
	    pod_json("p", "u", "n", true, "Running", NULL, "True", false);
	kd_autojson json_object *succeeded =
	    pod_json("p", "u", "n", true, "Succeeded", "10.0.0.1", NULL, false);
	kd_autojson json_object *failed =
	    pod_json("p", "u", "n", true, "Failed", NULL, NULL, false);

	events_of(KD_SANDBOX_PENDING, pending, &e);
	assert_int_equal(e.n, 0);
	assert_false(e.final);
	events_of(KD_SANDBOX_PENDING, started, &e);
	assert_int_equal(e.n, 1);
	assert_int_equal(e.type[0], KD_RUNTIME_STARTED);
	/* the first sight is already Ready: STARTED, then READY */
	events_of(KD_SANDBOX_PENDING, ready, &e);
	assert_int_equal(e.n, 2);
	assert_int_equal(e.type[0], KD_RUNTIME_STARTED);
	assert_int_equal(e.type[1], KD_RUNTIME_READY);
	assert_false(e.final);
	events_of(KD_SANDBOX_STARTED, ready, &e);
	assert_int_equal(e.n, 1);
	assert_int_equal(e.type[0], KD_RUNTIME_READY);
	/* nothing again, and nothing when readiness goes away */
	events_of(KD_SANDBOX_READY, ready, &e);
	assert_int_equal(e.n, 0);
	events_of(KD_SANDBOX_READY, started, &e);
	assert_int_equal(e.n, 0);
	events_of(KD_SANDBOX_STARTED, started, &e);
	assert_int_equal(e.n, 0);
	/* Ready without an address is not READY: there is nowhere to send traffic */
	events_of(KD_SANDBOX_PENDING, ready_no_ip, &e);
	assert_int_equal(e.n, 0);
	/* finished, in any phase */
	events_of(KD_SANDBOX_READY, succeeded, &e);
	assert_int_equal(e.n, 1);
	assert_int_equal(e.type[0], KD_RUNTIME_EXITED);
	assert_true(e.final);
	assert_string_equal(e.reason, "Completed");
	events_of(KD_SANDBOX_PENDING, failed, &e);
	assert_int_equal(e.n, 1);
	assert_int_equal(e.type[0], KD_RUNTIME_FAILED);
	assert_true(e.final);
	assert_string_equal(e.reason, "Failed");
}

/* ---- pure: request bodies ------------------------------------------------------------------- */

static void create_and_delete_bodies(void **state)
{
	(void)state;
	kd_autojson json_object *pod = parse(
	    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"namespace\":"
	    "\"ns\",\"uid\":\"u\",\"resourceVersion\":\"9\",\"creationTimestamp\":\"x\","
	    "\"generation\":2,\"managedFields\":[],\"labels\":{\"a\":\"b\"},\"annotations\":{"
	    "\"k\":\"v\"},\"ownerReferences\":[{\"kind\":\"PodAutoscaler\"}]},\"spec\":{"
	    "\"nodeName\":\"old\",\"containers\":[]},\"status\":{\"phase\":\"Running\"}}");
	kd_autojson json_object *body = rk_pod_for_create(pod, "n1");
	assert_non_null(body);
	kd_autofree char *text = kd_json_dumps(body);
	assert_string_equal(text,
	                    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\","
	                    "\"namespace\":\"ns\",\"labels\":{\"a\":\"b\"},\"annotations\":{\"k\":"
	                    "\"v\"},\"ownerReferences\":[{\"kind\":\"PodAutoscaler\"}]},\"spec\":{"
	                    "\"nodeName\":\"n1\",\"containers\":[]}}");
	/* the given Pod is left as it was */
	assert_string_equal(kd_json_get_string(pod, "metadata.uid"), "u");
	assert_string_equal(kd_json_get_string(pod, "spec.nodeName"), "old");
	kd_autojson json_object *nospec = parse("{\"metadata\":{\"name\":\"p\"}}");
	assert_null(rk_pod_for_create(nospec, "n1"));

	struct {
		uint32_t ms;
		const char *uid;
		const char *want;
	} cases[] = {
	    {0, "u1", "{\"gracePeriodSeconds\":0,\"preconditions\":{\"uid\":\"u1\"}}"},
	    {1, NULL, "{\"gracePeriodSeconds\":1}"},
	    {1000, "", "{\"gracePeriodSeconds\":1}"},
	    {1001, NULL, "{\"gracePeriodSeconds\":2}"},
	    {30000, NULL, "{\"gracePeriodSeconds\":30}"},
	    {UINT32_MAX, NULL, "{\"gracePeriodSeconds\":3600}"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kd_autojson json_object *o = rk_delete_options(cases[i].ms, cases[i].uid);
		kd_autofree char *t = kd_json_dumps(o);
		assert_string_equal(t, cases[i].want);
	}
	kd_autofree char *fs = rk_field_selector("kd-node-3");
	assert_string_equal(fs, "spec.nodeName=kd-node-3");
}

/* ---- the plugin on a scripted API ----------------------------------------------------------- */

#define MAX_EVENTS 16

/* What the scripted API answers; the handler runs on the server's threads. */
static struct {
	pthread_mutex_t lock;
	int post_code;           /* 0: 201 with uid "uid-<n>" */
	char *get_pod;           /* answer to GET pods/<name>, or NULL: 404 */
	char *watch[MAX_EVENTS]; /* watch events not yet streamed (owned) */
	size_t n_watch;
	unsigned uids;
} api = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void api_reset(void)
{
	pthread_mutex_lock(&api.lock);
	api.post_code = 0;
	free(api.get_pod);
	api.get_pod = NULL;
	for (size_t i = 0; i < api.n_watch; i++)
		free(api.watch[i]);
	api.n_watch = 0;
	pthread_mutex_unlock(&api.lock);
}

/* Queues a watch event (type, Pod) for the open watch. */
static void api_event(const char *type, json_object *pod)
{
	char *line = kd_xasprintf("{\"type\":\"%s\",\"object\":%s}\n", type,
	                          json_object_to_json_string_ext(pod, JSON_C_TO_STRING_PLAIN));
	pthread_mutex_lock(&api.lock);
	assert_true(api.n_watch < MAX_EVENTS);
	api.watch[api.n_watch++] = line;
	pthread_mutex_unlock(&api.lock);
}

static void api_get_pod(json_object *pod)
{
	pthread_mutex_lock(&api.lock);
	free(api.get_pod);
	api.get_pod = pod ? kd_xstrdup(json_object_to_json_string(pod)) : NULL;
	pthread_mutex_unlock(&api.lock);
}

static void respond_status(struct kd_test_httpd_conn *conn, int code, const char *reason)
{
	kd_autofree char *body = kd_xasprintf("{\"kind\":\"Status\",\"apiVersion\":\"v1\","
	                                      "\"status\":\"Failure\",\"message\":\"%s (test)\","
	                                      "\"reason\":\"%s\",\"code\":%d}",
	                                      reason, reason, code);
	kd_test_httpd_respond(conn, code, "application/json", body);
}

static void api_handler(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req,
                        void *arg)
{
	(void)arg;
	if (strcmp(req->method, "GET") == 0 && strcmp(req->path, "/api/v1/pods") == 0) {
		if (!strstr(req->query, "watch=1")) {
			kd_test_httpd_respond(
			    conn, 200, "application/json",
			    "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":"
			    "{\"resourceVersion\":\"5\"},\"items\":[]}");
			return;
		}
		kd_test_httpd_begin_chunked(conn, 200, "application/json");
		while (kd_test_httpd_sleep(conn, 5)) {
			pthread_mutex_lock(&api.lock);
			char *line = NULL;
			if (api.n_watch) {
				line = api.watch[0];
				memmove(api.watch, api.watch + 1, --api.n_watch * sizeof(char *));
			}
			pthread_mutex_unlock(&api.lock);
			int rc = line ? kd_test_httpd_chunk(conn, line, strlen(line))
			              : kd_test_httpd_chunk(conn, "\n", 1);
			free(line);
			if (rc < 0)
				break;
		}
		return;
	}
	pthread_mutex_lock(&api.lock);
	int post = api.post_code;
	unsigned uid = ++api.uids;
	kd_autofree char *got = api.get_pod ? kd_xstrdup(api.get_pod) : NULL;
	pthread_mutex_unlock(&api.lock);
	if (strcmp(req->method, "POST") == 0) {
		if (post) {
			respond_status(conn, post, post == 409 ? "AlreadyExists" : "Forbidden");
			return;
		}
		json_object *o = NULL;
		assert_int_equal(kd_json_parse(req->body, req->body_len, 0, "POST", &o, NULL), 0);
		kd_autofree char *u = kd_xasprintf("uid-%u", uid);
		json_object_object_add(kd_json_get_object(o, "metadata"), "uid",
		                       json_object_new_string(u));
		kd_test_httpd_respond(conn, 201, "application/json",
		                      json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	} else if (strcmp(req->method, "GET") == 0) {
		if (got)
			kd_test_httpd_respond(conn, 200, "application/json", got);
		else
			respond_status(conn, 404, "NotFound");
	} else if (strcmp(req->method, "DELETE") == 0) {
		kd_test_httpd_respond(conn, 200, "application/json",
		                      "{\"kind\":\"Status\",\"status\":\"Success\"}");
	} else {
		respond_status(conn, 404, "NotFound");
	}
}

struct rec {
	enum kd_runtime_event_type type;
	char key[64], uid[64], ip[KD_IP_STRLEN], reason[64];
};

static struct {
	struct kd_test_httpd *srv;
	struct kd_loop *loop;
	struct kd_k8s_config *kcfg;
	struct kd_k8s *k8s;
	struct kd_host host;
	struct kd_plugin_handle *plugin;
	const struct kd_runtime_ops *ops;
	void *rt;
	struct rec ev[32];
	size_t n_ev;
} T;

static void on_event(const struct kd_runtime_event *ev, void *arg)
{
	assert_ptr_equal(arg, &T);
	assert_true(T.n_ev < sizeof(T.ev) / sizeof(T.ev[0]));
	struct rec *r = &T.ev[T.n_ev++];
	r->type = ev->type;
	snprintf(r->key, sizeof(r->key), "%s", ev->key);
	snprintf(r->uid, sizeof(r->uid), "%s", ev->uid ? ev->uid : "");
	snprintf(r->ip, sizeof(r->ip), "%s", ev->pod_ip ? ev->pod_ip : "");
	snprintf(r->reason, sizeof(r->reason), "%s", ev->reason ? ev->reason : "");
}

/* Runs the loop until cond holds, at most 10 s (bounded in count and time). */
#define RUN_UNTIL(cond)                                                                            \
	do {                                                                                       \
		uint64_t dl_ = kd_now_ns() + 10000000000ull;                                       \
		for (int i_ = 0; i_ < 100000 && !(cond) && kd_now_ns() < dl_; i_++)                \
			kd_loop_run_once(T.loop, 10);                                              \
		if (!(cond))                                                                       \
			fail_msg("not reached: %s", #cond);                                        \
	} while (0)

/* Runs the loop for about ms milliseconds. */
static void run_for(unsigned ms)
{
	uint64_t end = kd_now_ns() + (uint64_t)ms * 1000000ull;
	for (int i = 0; i < 10000 && kd_now_ns() < end; i++)
		kd_loop_run_once(T.loop, 5);
}

static size_t requests(const char *method, const char *path)
{
	size_t n = kd_test_httpd_count(T.srv), c = 0;
	for (size_t i = 0; i < n; i++) {
		struct kd_test_httpd_req q = {0};
		kd_test_httpd_get(T.srv, i, &q);
		c += strcmp(q.method, method) == 0 && (!path || strcmp(q.path, path) == 0);
		kd_test_httpd_req_fini(&q);
	}
	return c;
}

/* Body of the last request with that method (owned), or NULL. */
static json_object *last_body(const char *method)
{
	size_t n = kd_test_httpd_count(T.srv);
	json_object *o = NULL;
	for (size_t i = n; i-- > 0 && !o;) {
		struct kd_test_httpd_req q = {0};
		kd_test_httpd_get(T.srv, i, &q);
		if (strcmp(q.method, method) == 0)
			assert_int_equal(kd_json_parse(q.body, q.body_len, 0, "body", &o, NULL), 0);
		kd_test_httpd_req_fini(&q);
	}
	return o;
}

static int setup(void **state)
{
	(void)state;
	memset(&T, 0, sizeof(T));
	api_reset();
	kd_log_set_level(KD_LOG_ERROR);
	setenv("KD_PLUGIN_DIR", KD_BUILD_DIR "/plugins", 1);
	T.srv = kd_test_httpd_start(api_handler, NULL, NULL, NULL);
	T.loop = kd_loop_new();
	assert_non_null(T.loop);
	T.kcfg = kd_k8s_config_new(kd_test_httpd_url(T.srv));
	assert_int_equal(kd_k8s_new(T.kcfg, T.loop, NULL, &T.k8s, NULL), 0);
	kd_host_init(&T.host, T.loop, "test-runtime-kubelet");
	T.host.k8s = T.k8s; /* the plugin takes its connection settings */
	kd_autoerr struct kd_error *err = NULL;
	if (kd_plugin_load("runtime-kubelet", KD_PLUGIN_RUNTIME, "{\"stop-timeout\":\"2s\"}",
	                   &T.host, &T.plugin, &err) < 0)
		fail_msg("load: %s", kd_error_msg(err));
	T.ops = kd_plugin_ops(T.plugin);
	T.rt = kd_plugin_state(T.plugin);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	kd_plugin_unload(T.plugin);
	kd_k8s_free(T.k8s);
	kd_k8s_config_free(T.kcfg);
	kd_loop_free(T.loop);
	kd_test_httpd_stop(T.srv);
	api_reset();
	return 0;
}

/* start() of ns/<name> on n1 from Pod `pod` (borrowed), uid as given. */
static int start(const char *name, const char *uid, json_object *pod, struct kd_error **err)
{
	char key[64];
	snprintf(key, sizeof(key), "ns/%s", name);
	struct kd_sandbox_spec spec = {
	    .key = key, .ns = "ns", .name = name, .uid = uid, .node = "n1", .pod = pod};
	return T.ops->start(T.rt, &spec, on_event, &T, err);
}

static void owns_the_pod(void **state)
{
	(void)state;
	assert_true(KD_HAS_MEMBER(T.ops, struct kd_runtime_ops, caps));
	assert_int_equal(T.ops->caps & KD_RUNTIME_CAP_OWNS_POD, KD_RUNTIME_CAP_OWNS_POD);
	assert_string_equal(kd_plugin_name(T.plugin), "runtime-kubelet");
}

static void create_ready_stop(void **state)
{
	(void)state;
	/* the Pod kd-node built (no uid, no status) */
	kd_autojson json_object *pod = pod_json("p1", NULL, "n1", true, NULL, NULL, NULL, false);
	json_object_object_del(pod, "status");
	assert_int_equal(start("p1", NULL, pod, NULL), 0);
	assert_int_equal(start("p1", NULL, pod, NULL), 0); /* idempotent */
	assert_int_equal(T.n_ev, 0);                       /* never from inside start */
	RUN_UNTIL(requests("POST", "/api/v1/namespaces/ns/pods") == 1);
	kd_autojson json_object *sent = last_body("POST");
	assert_string_equal(kd_json_get_string(sent, "spec.nodeName"), "n1");
	assert_null(kd_json_get(sent, "metadata.resourceVersion"));
	assert_null(kd_json_get(sent, "status"));
	struct kd_sandbox_status ss;
	run_for(50);
	assert_int_equal(T.ops->status(T.rt, "ns/p1", &ss), 0);
	assert_int_equal(ss.phase, KD_SANDBOX_PENDING);
	assert_true(strncmp(ss.uid, "uid-", 4) == 0); /* from the create's answer */
	kd_autofree char *uid = kd_xstrdup(ss.uid);
	assert_int_equal(T.n_ev, 0); /* created is not started: the kubelet has not said so */

	/* the kubelet's status writes, as the watch shows them */
	kd_autojson json_object *running =
	    pod_json("p1", uid, "n1", true, "Running", "10.244.9.4", "False", false);
	api_event("MODIFIED", running);
	RUN_UNTIL(T.n_ev == 1);
	assert_int_equal(T.ev[0].type, KD_RUNTIME_STARTED);
	assert_string_equal(T.ev[0].ip, "10.244.9.4");
	assert_string_equal(T.ev[0].uid, uid);
	kd_autojson json_object *ready =
	    pod_json("p1", uid, "n1", true, "Running", "10.244.9.4", "True", false);
	api_event("MODIFIED", ready);
	RUN_UNTIL(T.n_ev == 2);
	assert_int_equal(T.ev[1].type, KD_RUNTIME_READY);
	assert_string_equal(T.ev[1].ip, "10.244.9.4");
	assert_int_equal(T.ops->status(T.rt, "ns/p1", &ss), 0);
	assert_int_equal(ss.phase, KD_SANDBOX_READY);
	assert_string_equal(ss.pod_ip, "10.244.9.4");
	/* an event of another incarnation of the name changes nothing */
	kd_autojson json_object *other =
	    pod_json("p1", "uid-other", "n1", true, "Failed", NULL, NULL, false);
	api_event("MODIFIED", other);
	run_for(100);
	assert_int_equal(T.n_ev, 2);

	/* stop: DELETE with the grace and the uid; EXITED only once the watch shows it gone */
	assert_int_equal(T.ops->stop(T.rt, "ns/p1", 1500, NULL), 0);
	assert_int_equal(T.ops->status(T.rt, "ns/p1", &ss), -ENOENT);
	RUN_UNTIL(requests("DELETE", "/api/v1/namespaces/ns/pods/p1") == 1);
	kd_autojson json_object *opts = last_body("DELETE");
	assert_int_equal(json_object_get_int(json_object_object_get(opts, "gracePeriodSeconds")),
	                 2);
	assert_string_equal(kd_json_get_string(opts, "preconditions.uid"), uid);
	run_for(100);
	assert_int_equal(T.n_ev, 2);
	api_event("DELETED", ready);
	RUN_UNTIL(T.n_ev == 3);
	assert_int_equal(T.ev[2].type, KD_RUNTIME_EXITED);
	assert_string_equal(T.ev[2].reason, "Stopped");
	assert_int_equal(requests("POST", NULL), 1);
	assert_int_equal(T.ops->stop(T.rt, "ns/p1", 0, NULL), -ENOENT);
}

static void conflict_adopts_managed_pod(void **state)
{
	(void)state;
	pthread_mutex_lock(&api.lock);
	api.post_code = 409;
	pthread_mutex_unlock(&api.lock);
	kd_autojson json_object *existing =
	    pod_json("p2", "uid-existing", "n1", true, "Running", "10.244.9.5", "True", false);
	api_get_pod(existing);
	kd_autojson json_object *pod = pod_json("p2", NULL, "n1", true, NULL, NULL, NULL, false);
	assert_int_equal(start("p2", NULL, pod, NULL), 0);
	RUN_UNTIL(T.n_ev == 2);
	assert_int_equal(requests("GET", "/api/v1/namespaces/ns/pods/p2"), 1);
	assert_int_equal(T.ev[0].type, KD_RUNTIME_STARTED);
	assert_int_equal(T.ev[1].type, KD_RUNTIME_READY);
	assert_string_equal(T.ev[1].uid, "uid-existing");
	assert_string_equal(T.ev[1].ip, "10.244.9.5");
	/* the same key with another uid is not this sandbox */
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(start("p2", "uid-else", pod, &err), -EBUSY);
	assert_non_null(strstr(kd_error_msg(err), "uid-existing"));
	/* a Pod deleted by someone else ends the sandbox (the watch shows it first) */
	api_event("ADDED", existing);
	api_event("DELETED", existing);
	RUN_UNTIL(T.n_ev == 3);
	assert_int_equal(T.ev[2].type, KD_RUNTIME_EXITED);
	assert_string_equal(T.ev[2].reason, "Deleted");
	assert_int_equal(requests("DELETE", NULL), 0);
}

static void conflict_refuses_foreign_pod(void **state)
{
	(void)state;
	pthread_mutex_lock(&api.lock);
	api.post_code = 409;
	pthread_mutex_unlock(&api.lock);
	kd_autojson json_object *foreign =
	    pod_json("p3", "uid-f", "n1", false, "Running", "10.244.9.6", "True", false);
	api_get_pod(foreign);
	kd_autojson json_object *pod = pod_json("p3", NULL, "n1", true, NULL, NULL, NULL, false);
	assert_int_equal(start("p3", NULL, pod, NULL), 0);
	RUN_UNTIL(T.n_ev == 1);
	assert_int_equal(T.ev[0].type, KD_RUNTIME_FAILED);
	assert_string_equal(T.ev[0].reason, "AlreadyExists");
	run_for(100);
	assert_int_equal(requests("DELETE", NULL), 0); /* never touched */
	assert_int_equal(T.ops->stop(T.rt, "ns/p3", 0, NULL), -ENOENT);
}

static void start_with_uid_adopts_without_create(void **state)
{
	(void)state;
	kd_autojson json_object *existing =
	    pod_json("p4", "uid-4", "n1", true, "Running", "10.244.9.7", "True", false);
	api_get_pod(existing);
	assert_int_equal(start("p4", "uid-4", existing, NULL), 0);
	RUN_UNTIL(T.n_ev == 2);
	assert_int_equal(T.ev[1].type, KD_RUNTIME_READY);
	assert_string_equal(T.ev[1].ip, "10.244.9.7");
	assert_int_equal(requests("POST", NULL), 0);
	/* stopped before anything else: the DELETE goes out, the stop timeout (2 s in this
	 * config) ends it when the watch never confirms */
	assert_int_equal(T.ops->stop(T.rt, "ns/p4", 0, NULL), 0);
	RUN_UNTIL(requests("DELETE", NULL) == 1);
	RUN_UNTIL(T.n_ev == 3);
	assert_int_equal(T.ev[2].type, KD_RUNTIME_EXITED);
	assert_string_equal(T.ev[2].reason, "StopTimeout");

	/* a uid the API no longer has: FAILED, nothing created */
	api_get_pod(NULL);
	assert_int_equal(start("p5", "uid-5", existing, NULL), 0);
	RUN_UNTIL(T.n_ev == 4);
	assert_int_equal(T.ev[3].type, KD_RUNTIME_FAILED);
	assert_string_equal(T.ev[3].reason, "NotFound");
	assert_int_equal(requests("POST", NULL), 0);
}

static void refusals_and_stop_before_create(void **state)
{
	(void)state;
	kd_autoerr struct kd_error *err = NULL;
	struct kd_sandbox_spec nopod = {.key = "ns/x", .ns = "ns", .name = "x", .node = "n1"};
	assert_int_equal(T.ops->start(T.rt, &nopod, on_event, &T, &err), -EINVAL);
	assert_non_null(strstr(kd_error_msg(err), "no Pod object"));
	kd_error_free(err);
	err = NULL;
	kd_autojson json_object *pod = pod_json("x", NULL, "n1", true, NULL, NULL, NULL, false);
	struct kd_sandbox_spec nonode = {.key = "ns/x", .ns = "ns", .name = "x", .pod = pod};
	assert_int_equal(T.ops->start(T.rt, &nonode, on_event, &T, &err), -EINVAL);
	kd_error_free(err);
	err = NULL;
	assert_int_equal(T.ops->stop(T.rt, "ns/none", 0, &err), -ENOENT);
	assert_string_equal(kd_error_msg(err), "runtime-kubelet: stop ns/none: no such sandbox");

	/* a create refused for good: FAILED with the API's message */
	pthread_mutex_lock(&api.lock);
	api.post_code = 403;
	pthread_mutex_unlock(&api.lock);
	assert_int_equal(start("x", NULL, pod, NULL), 0);
	RUN_UNTIL(T.n_ev == 1);
	assert_int_equal(T.ev[0].type, KD_RUNTIME_FAILED);
	assert_string_equal(T.ev[0].reason, "CreateFailed");

	/* stopped in the same iteration as started: nothing made, EXITED, no request */
	size_t before = kd_test_httpd_count(T.srv);
	assert_int_equal(start("y", NULL, pod, NULL), 0);
	assert_int_equal(T.ops->stop(T.rt, "ns/y", 0, NULL), 0);
	assert_int_equal(T.n_ev, 1); /* never from inside stop */
	RUN_UNTIL(T.n_ev == 2);
	assert_int_equal(T.ev[1].type, KD_RUNTIME_EXITED);
	run_for(50);
	size_t after = kd_test_httpd_count(T.srv);
	for (size_t i = before; i < after; i++) {
		struct kd_test_httpd_req q = {0};
		kd_test_httpd_get(T.srv, i, &q);
		assert_string_not_equal(q.method, "POST");
		kd_test_httpd_req_fini(&q);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(pod_state_from_watch_events),
	    cmocka_unit_test(adopt_decision),
	    cmocka_unit_test(event_mapping),
	    cmocka_unit_test(create_and_delete_bodies),
	    cmocka_unit_test_setup_teardown(owns_the_pod, setup, teardown),
	    cmocka_unit_test_setup_teardown(create_ready_stop, setup, teardown),
	    cmocka_unit_test_setup_teardown(conflict_adopts_managed_pod, setup, teardown),
	    cmocka_unit_test_setup_teardown(conflict_refuses_foreign_pod, setup, teardown),
	    cmocka_unit_test_setup_teardown(start_with_uid_adopts_without_create, setup, teardown),
	    cmocka_unit_test_setup_teardown(refusals_and_stop_before_create, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
