/* test_node_harness.h: the surroundings of kd-node on loopback, for the unit tests that drive
 * its orchestration (pods.c, direct.c) for real: test_node_pods.c and test_node_direct.c.
 *
 *  - The node-agent sources (admin.c too) are compiled into the test (their statics are
 *    reachable: the tests call the pod informer's handlers on_add/on_delete (h_pod_update for its
 *    on_update) and the instance channel's ch_apply directly, as the informer and kd_chan would).
 *  - A fake runtime plugin (struct kd_runtime_ops) that records every start and stop and
 *    delivers sandbox events only when the test says so (rt_emit), never from inside start or
 *    stop, as the runtime contract (kd/stage.h) requires. It refuses a second sandbox for a live
 *    key with another uid (-EBUSY) like runtime-sim, so `created` counts real sandboxes.
 *  - A scripted HTTP server on 127.0.0.1 (kd_test_httpd) answering what kd-node asks for: the
 *    pod and Deployment lists (their watches are held open and stay silent), POST/PATCH/DELETE of
 *    pods. It is not an API Server: it stores nothing and checks nothing; the tests assert on the
 *    requests kd-node sent (api_count, api_body).
 *
 * One harness per test (a global: the HTTP handler runs on the server's threads). */
#ifndef KD_TEST_NODE_HARNESS_H
#define KD_TEST_NODE_HARNESS_H

#include <pthread.h>

#include "../../node-agent/admin.c"     /* NOLINT(bugprone-suspicious-include) */
#include "../../node-agent/direct.c"    /* NOLINT(bugprone-suspicious-include) */
#include "../../node-agent/directops.c" /* NOLINT(bugprone-suspicious-include) */
#include "../../node-agent/nodes.c"     /* NOLINT(bugprone-suspicious-include) */
#include "../../node-agent/objects.c"   /* NOLINT(bugprone-suspicious-include) */
#include "../../node-agent/pods.c"      /* NOLINT(bugprone-suspicious-include) */
#include "kd/json.h"
#include "kd/log.h"
#include "kd_test_httpd.h"

/* Not every test uses every helper. */
#define H_FN static KD_UNUSED

/* An update (MODIFIED, or a relist) as the pod informer delivers it: its on_update is
 * kd_informer_update_as_add, which hands the new version to on_add. */
H_FN void h_pod_update(struct json_object *old, struct json_object *obj, void *arg)
{
	(void)old;
	on_add(NULL, obj, arg);
}

/* ---- fake runtime --------------------------------------------------------------------------- */

#define RT_MAX 64

struct rt_sandbox {
	char *key, *uid; /* uid NULL: started without one (direct instance) */
	char ip[KD_IP_STRLEN];
	bool live;
	bool stop_called;
	uint32_t grace_ms;
	enum kd_sandbox_phase phase;
	kd_runtime_event_cb cb;
	void *cb_arg;
};

struct fake_rt {
	struct rt_sandbox sb[RT_MAX]; /* every sandbox ever created, in order */
	size_t n;
	unsigned start_calls; /* start() calls, including idempotent ones and refusals */
	unsigned stop_calls;
	int fail_starts; /* the next N starts fail with -EADDRNOTAVAIL */
};

H_FN struct rt_sandbox *rt_live(struct fake_rt *rt, const char *key)
{
	for (size_t i = 0; i < rt->n; i++)
		if (rt->sb[i].live && strcmp(rt->sb[i].key, key) == 0)
			return &rt->sb[i];
	return NULL;
}

/* Sandboxes ever created for key. */
H_FN unsigned rt_created(struct fake_rt *rt, const char *key)
{
	unsigned c = 0;
	for (size_t i = 0; i < rt->n; i++)
		c += strcmp(rt->sb[i].key, key) == 0;
	return c;
}

/* The nth (0-based) sandbox created for key, or NULL. */
H_FN struct rt_sandbox *rt_nth(struct fake_rt *rt, const char *key, unsigned nth)
{
	for (size_t i = 0; i < rt->n; i++)
		if (strcmp(rt->sb[i].key, key) == 0 && nth-- == 0)
			return &rt->sb[i];
	return NULL;
}

H_FN bool same_uid(const char *x, const char *y)
{
	return !x || !y || strcmp(x, y) == 0;
}

H_FN int rt_start(void *state, const struct kd_sandbox_spec *spec, kd_runtime_event_cb cb,
                  void *cb_arg, struct kd_error **err)
{
	struct fake_rt *rt = state;
	rt->start_calls++;
	struct rt_sandbox *live = rt_live(rt, spec->key);
	if (live) {
		if (same_uid(live->uid, spec->uid))
			return 0; /* idempotent, as the contract says */
		return kd_error_set(err, EBUSY, 0, "sandbox %s: another uid is live", spec->key);
	}
	if (rt->fail_starts > 0) {
		rt->fail_starts--;
		return kd_error_set(err, EADDRNOTAVAIL, 0, "no address left in %s",
		                    spec->pod_cidr ? spec->pod_cidr : "?");
	}
	assert_true(rt->n < RT_MAX);
	struct rt_sandbox *s = &rt->sb[rt->n];
	memset(s, 0, sizeof(*s));
	s->key = kd_xstrdup(spec->key);
	s->uid = spec->uid ? kd_xstrdup(spec->uid) : NULL;
	if (spec->pod_ip)
		snprintf(s->ip, sizeof(s->ip), "%s", spec->pod_ip);
	else
		snprintf(s->ip, sizeof(s->ip), "10.244.0.%zu", 100 + rt->n);
	s->live = true;
	s->phase = KD_SANDBOX_PENDING;
	s->cb = cb;
	s->cb_arg = cb_arg;
	rt->n++;
	return 0;
}

H_FN int rt_stop(void *state, const char *key, uint32_t grace_ms, struct kd_error **err)
{
	struct fake_rt *rt = state;
	rt->stop_calls++;
	struct rt_sandbox *s = rt_live(rt, key);
	if (!s)
		return kd_error_set(err, ENOENT, 0, "sandbox %s: unknown", key);
	s->stop_called = true;
	s->grace_ms = grace_ms;
	return 0; /* EXITED follows when the test emits it */
}

H_FN int rt_status(void *state, const char *key, struct kd_sandbox_status *out)
{
	struct rt_sandbox *s = rt_live(state, key);
	if (!s)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	out->phase = s->phase;
	snprintf(out->pod_ip, sizeof(out->pod_ip), "%s", s->ip);
	snprintf(out->uid, sizeof(out->uid), "%s", s->uid ? s->uid : "");
	return 0;
}

static const struct kd_runtime_ops fake_rt_ops = {
    .struct_size = sizeof(struct kd_runtime_ops),
    .start = rt_start,
    .stop = rt_stop,
    .status = rt_status,
};

/* Delivers an event of key's live sandbox (which must exist), as the runtime would from the loop.
 * FAILED and EXITED end it. */
H_FN void rt_emit(struct fake_rt *rt, const char *key, enum kd_runtime_event_type type,
                  const char *reason, const char *message, int exit_code)
{
	struct rt_sandbox *s = rt_live(rt, key);
	assert_non_null(s);
	if (!s)
		return;
	struct kd_runtime_event ev = {.type = type,
	                              .key = s->key,
	                              .uid = s->uid,
	                              .pod_ip = s->ip,
	                              .reason = reason,
	                              .message = message,
	                              .exit_code = exit_code};
	if (type == KD_RUNTIME_STARTED)
		s->phase = KD_SANDBOX_STARTED;
	else if (type == KD_RUNTIME_READY)
		s->phase = KD_SANDBOX_READY;
	else
		s->live = false;
	s->cb(&ev, s->cb_arg);
}

H_FN void rt_fini(struct fake_rt *rt)
{
	for (size_t i = 0; i < rt->n; i++) {
		free(rt->sb[i].key);
		free(rt->sb[i].uid);
	}
	memset(rt, 0, sizeof(*rt));
}

/* ---- loopback HTTP server ------------------------------------------------------------------- */

struct fake_api {
	pthread_mutex_t lock;
	char *pod_items;    /* JSON array members of the pod list ("" = none) */
	char *deploy_items; /* JSON array members of the Deployment list */
	int post_code;      /* answer to POST pods: 0 = 201 with a uid */
	int patch_code;     /* answer to PATCH pods/x/status: 0 = 200 */
	int delete_code;    /* answer to DELETE pods/x: 0 = 200 */
	bool hold_post;     /* POSTs wait (on the server thread) until this is cleared */
	unsigned uids;
};

static struct fake_api api = {.lock = PTHREAD_MUTEX_INITIALIZER};

H_FN void api_set(int *field, int v)
{
	pthread_mutex_lock(&api.lock);
	*field = v;
	pthread_mutex_unlock(&api.lock);
}

H_FN void api_hold_post(bool hold)
{
	pthread_mutex_lock(&api.lock);
	api.hold_post = hold;
	pthread_mutex_unlock(&api.lock);
}

H_FN void respond_status(struct kd_test_httpd_conn *conn, int code, const char *reason)
{
	kd_autofree char *body = kd_xasprintf(
	    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":\"%s "
	    "(test)\",\"reason\":\"%s\",\"code\":%d}",
	    reason, reason, code);
	kd_test_httpd_respond(conn, code, "application/json", body);
}

H_FN const char *reason_of(int code)
{
	switch (code) {
	case 404:
		return "NotFound";
	case 409:
		return "Conflict";
	case 422:
		return "Invalid";
	default:
		return "InternalError";
	}
}

H_FN void api_handler(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req,
                      void *arg)
{
	(void)arg;
	if (strcmp(req->method, "GET") == 0 && strstr(req->query, "watch=1")) {
		kd_test_httpd_begin_chunked(conn, 200, "application/json");
		while (kd_test_httpd_sleep(conn, 50))
			if (kd_test_httpd_chunk(conn, "\n", 1) < 0)
				break;
		return;
	}
	pthread_mutex_lock(&api.lock);
	kd_autofree char *pods = kd_xstrdup(api.pod_items ? api.pod_items : "");
	kd_autofree char *deps = kd_xstrdup(api.deploy_items ? api.deploy_items : "");
	int post = api.post_code, patch = api.patch_code, del = api.delete_code;
	unsigned uid = ++api.uids;
	pthread_mutex_unlock(&api.lock);
	if (strcmp(req->method, "GET") == 0 && strcmp(req->path, "/api/v1/pods") == 0) {
		kd_autofree char *b = kd_xasprintf("{\"kind\":\"PodList\",\"apiVersion\":\"v1\","
		                                   "\"metadata\":{\"resourceVersion\":\"10\"},"
		                                   "\"items\":[%s]}",
		                                   pods);
		kd_test_httpd_respond(conn, 200, "application/json", b);
	} else if (strcmp(req->method, "GET") == 0 &&
	           strcmp(req->path, "/apis/apps/v1/deployments") == 0) {
		kd_autofree char *b = kd_xasprintf("{\"kind\":\"DeploymentList\",\"apiVersion\":"
		                                   "\"apps/v1\",\"metadata\":{\"resourceVersion\":"
		                                   "\"10\"},\"items\":[%s]}",
		                                   deps);
		kd_test_httpd_respond(conn, 200, "application/json", b);
	} else if (strcmp(req->method, "POST") == 0) {
		for (;;) {
			pthread_mutex_lock(&api.lock);
			bool hold = api.hold_post;
			pthread_mutex_unlock(&api.lock);
			if (!hold || !kd_test_httpd_sleep(conn, 5))
				break;
		}
		if (post) {
			respond_status(conn, post, reason_of(post));
			return;
		}
		json_object *o = NULL;
		if (kd_json_parse(req->body, req->body_len, 0, "POST body", &o, NULL) < 0) {
			respond_status(conn, 400, "BadRequest");
			return;
		}
		json_object *md = kd_json_get_object(o, "metadata");
		kd_autofree char *u = kd_xasprintf("uid-w%u", uid);
		json_object_object_add(md, "uid", json_object_new_string(u));
		json_object_object_add(md, "resourceVersion", json_object_new_string("11"));
		kd_test_httpd_respond(conn, 201, "application/json",
		                      json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	} else if (strcmp(req->method, "PATCH") == 0) {
		if (patch)
			respond_status(conn, patch, reason_of(patch));
		else
			kd_test_httpd_respond(conn, 200, "application/json",
			                      "{\"kind\":\"Pod\",\"apiVersion\":\"v1\"}");
	} else if (strcmp(req->method, "DELETE") == 0) {
		if (del)
			respond_status(conn, del, reason_of(del));
		else
			kd_test_httpd_respond(conn, 200, "application/json",
			                      "{\"kind\":\"Status\",\"apiVersion\":\"v1\","
			                      "\"status\":\"Success\"}");
	} else {
		respond_status(conn, 404, "NotFound");
	}
}

/* ---- the agent --------------------------------------------------------------------------------
 */

struct harness {
	struct kd_test_httpd *srv;
	struct kd_k8s_config *kcfg;
	struct kd_node_cfg cfg;
	struct kd_node_agent a;
	struct fake_rt rt;
};

static struct harness H;

/* Requests recorded with this method whose path is `path` (or, ending in '*', starts with it). */
H_FN bool path_matches(const char *have, const char *want)
{
	size_t n = strlen(want);
	if (n && want[n - 1] == '*')
		return strncmp(have, want, n - 1) == 0;
	return strcmp(have, want) == 0;
}

H_FN size_t api_count(const char *method, const char *path)
{
	size_t n = kd_test_httpd_count(H.srv), c = 0;
	for (size_t i = 0; i < n; i++) {
		struct kd_test_httpd_req q = {0};
		kd_test_httpd_get(H.srv, i, &q);
		c += strcmp(q.method, method) == 0 && path_matches(q.path, path);
		kd_test_httpd_req_fini(&q);
	}
	return c;
}

/* Parsed body of the nth (0-based) such request; owned (json_object_put), NULL if none. */
H_FN json_object *api_body(const char *method, const char *path, size_t nth)
{
	size_t n = kd_test_httpd_count(H.srv);
	json_object *o = NULL;
	for (size_t i = 0; i < n && !o; i++) {
		struct kd_test_httpd_req q = {0};
		kd_test_httpd_get(H.srv, i, &q);
		if (strcmp(q.method, method) == 0 && path_matches(q.path, path) && nth-- == 0)
			assert_int_equal(kd_json_parse(q.body, q.body_len, 0, "request", &o, NULL),
			                 0);
		kd_test_httpd_req_fini(&q);
	}
	return o;
}

/* Runs the loop until cond holds (fails the test after 20 s: generous for valgrind). */
#define RUN_UNTIL(cond)                                                                            \
	do {                                                                                       \
		uint64_t dl_ = kd_now_ns() + 20000000000ull;                                       \
		while (!(cond) && kd_now_ns() < dl_)                                               \
			kd_loop_run_once(H.a.loop, 10);                                            \
		if (!(cond))                                                                       \
			fail_msg("not reached: %s", #cond);                                        \
	} while (0)

/* Starts the server and the agent's state for `nodes` nodes ("kd-node-0"...), all registered,
 * without starting any informer. pod_items: the pod list the API serves (JSON members, may be
 * NULL). With direct, direct mode is created (deploy_items: the Deployment list) and its status
 * channel replaced by an unconnected queue the test reads (status_ops). */
H_FN void h_init(unsigned nodes, const char *pod_items, bool direct, const char *deploy_items)
{
	memset(&H, 0, sizeof(H));
	kd_log_set_level(KD_LOG_ERROR);
	pthread_mutex_lock(&api.lock);
	free(api.pod_items);
	free(api.deploy_items);
	api.pod_items = kd_xstrdup(pod_items ? pod_items : "");
	api.deploy_items = kd_xstrdup(deploy_items ? deploy_items : "");
	api.post_code = api.patch_code = api.delete_code = 0;
	api.hold_post = false;
	pthread_mutex_unlock(&api.lock);
	H.srv = kd_test_httpd_start(api_handler, NULL, NULL, NULL);
	H.kcfg = kd_k8s_config_new(kd_test_httpd_url(H.srv));

	struct kd_node_cfg *c = &H.cfg;
	c->nodes = nodes;
	c->node_prefix = "kd-node";
	c->pod_cidr = "10.244.0.0/16";
	c->node_cidr_prefix = 24;
	c->node_ip_cidr = "172.31.0.0/24";
	c->max_pods = 110;
	c->restart_backoff_ms = 60000; /* restarts only where a test shortens it */
	c->direct_bind = "127.0.0.1";
	c->direct_write_qps = 0;
	c->direct_write_burst = 100;
	c->status_addr = ""; /* no status channel: see below */

	struct kd_node_agent *a = &H.a;
	a->cfg = c;
	a->loop = kd_loop_new();
	assert_non_null(a->loop);
	assert_int_equal(kd_node_nodes_init(a, NULL), 0);
	for (unsigned i = 0; i < nodes; i++)
		a->nodes[i].registered = true;
	assert_int_equal(kd_k8s_new(H.kcfg, a->loop, NULL, &a->k8s, NULL), 0);
	assert_int_equal(kd_k8s_new(H.kcfg, a->loop, NULL, &a->k8s_pods, NULL), 0);
	a->rt = &fake_rt_ops;
	a->rt_state = &H.rt;
	a->runtime_name = "kd-sim";
	assert_int_equal(kd_node_pods_init(a, NULL), 0);
	if (direct) {
		kd_autoerr struct kd_error *err = NULL;
		int rc = kd_node_direct_new(a, H.kcfg, &err);
		if (rc < 0)
			fail_msg("direct: %s", kd_error_msg(err));
		/* status ops queue in stups[0].pending (never flushed: no channel) */
		struct kd_direct *d = a->direct;
		d->n_stups = 1;
		d->stups[0].d = d;
		d->stups[0].addr = kd_xstrdup("test");
	}
}

H_FN void h_sync_pods(void)
{
	kd_node_pods_start(&H.a);
	RUN_UNTIL(kd_informer_synced(H.a.pods_inf));
}

H_FN void h_sync_templates(void)
{
	kd_node_direct_start(&H.a);
	RUN_UNTIL(kd_informer_synced(H.a.direct->deploy_inf));
}

/* Shuts down in kd-node's order (main.c). */
H_FN void h_fini(void)
{
	struct kd_node_agent *a = &H.a;
	a->stopping = true;
	if (a->pods_inf) {
		kd_informer_free(a->pods_inf);
		a->pods_inf = NULL;
	}
	kd_node_direct_free(a);
	kd_k8s_free(a->k8s_pods);
	kd_k8s_free(a->k8s);
	kd_node_pods_fini(a);
	kd_node_nodes_fini(a);
	kd_loop_free(a->loop);
	kd_k8s_config_free(H.kcfg);
	kd_test_httpd_stop(H.srv);
	rt_fini(&H.rt);
	pthread_mutex_lock(&api.lock);
	free(api.pod_items);
	free(api.deploy_items);
	api.pod_items = api.deploy_items = NULL;
	pthread_mutex_unlock(&api.lock);
}

/* The pod table's entry for key, or NULL. */
H_FN struct kd_pod *h_pod(const char *key)
{
	return pod_lookup(&H.a, key);
}

#endif /* KD_TEST_NODE_HARNESS_H */
