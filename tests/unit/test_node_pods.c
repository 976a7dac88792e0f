/* Unit tests of kd-node's pod lifecycle (node-agent/pods.c) in kubelet mode, on the loopback
 * harness (test_node_harness.h: fake runtime, scripted HTTP server): pending -> started -> ready
 * -> terminating -> gone, graceful deletion with the uid precondition, runtime failures
 * (CrashLoopBackOff, restartPolicy Never, start errors), invalid specs (no containers, a limit
 * that is not a quantity) reported and never started, same-name replacement, restart
 * adoption, and the exact status patch sent in each state. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "test_node_harness.h"

#define NS "demo"

/* A Pod bound to node; status and metadata_extra are JSON members (may be ""). Returns owned. */
static json_object *pod_obj(const char *name, const char *uid, const char *node,
                            const char *restart_policy, const char *metadata_extra,
                            const char *status)
{
	kd_autofree char *s = kd_xasprintf(
	    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\",\"namespace\":"
	    "\"" NS "\",\"uid\":\"%s\",\"resourceVersion\":\"5\"%s%s},\"spec\":{\"nodeName\":"
	    "\"%s\",\"restartPolicy\":\"%s\",\"containers\":[{\"name\":\"user-container\","
	    "\"image\":\"dev.local/hello\"}]},\"status\":{%s}}",
	    name, uid, *metadata_extra ? "," : "", metadata_extra, node, restart_policy, status);
	json_object *o = NULL;
	assert_int_equal(kd_json_parse(s, strlen(s), 0, "pod", &o, NULL), 0);
	return o;
}

static json_object *simple_pod(const char *name, const char *uid)
{
	return pod_obj(name, uid, "kd-node-0", "Always", "", "\"phase\":\"Pending\"");
}

static const char *str_at(json_object *o, const char *path)
{
	const char *s = kd_json_get_string(o, path);
	if (!s)
		fail_msg("no string at %s in %s", path,
		         json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	return s;
}

static json_object *first_container_status(json_object *patch)
{
	json_object *arr = kd_json_get_array(patch, "status.containerStatuses");
	assert_non_null(arr);
	assert_int_equal(json_object_array_length(arr), 1);
	return json_object_array_get_idx(arr, 0);
}

static const char *condition(json_object *patch, const char *type)
{
	json_object *conds = kd_json_get_array(patch, "status.conditions");
	for (size_t i = 0; conds && i < json_object_array_length(conds); i++) {
		json_object *c = json_object_array_get_idx(conds, i);
		if (strcmp(str_at(c, "type"), type) == 0)
			return str_at(c, "status");
	}
	fail_msg("no condition %s", type);
	return NULL;
}

static int64_t int_at(json_object *o, const char *path)
{
	int64_t v = -1;
	assert_int_equal(kd_json_get_int64(o, path, &v), 0);
	return v;
}

/* The pod's latest patch is answered and nothing more is queued. */
static bool patch_settled(const char *key)
{
	struct kd_pod *p = h_pod(key);
	return p && !p->patch_inflight && !p->patch_dirty;
}

/* A restart is scheduled (the backoff timer runs); fire it now instead of waiting for it. */
static void restart_now(const char *key)
{
	struct kd_pod *p = h_pod(key);
	assert_true(p->restart_timer && kd_loop_timer_pending(p->restart_timer));
	kd_loop_timer_stop(p->restart_timer);
	kd_loop_timer_start(p->restart_timer, 0);
}

#define STATUS_PATH(name) "/api/v1/namespaces/" NS "/pods/" name "/status"
#define POD_PATH(name)    "/api/v1/namespaces/" NS "/pods/" name

static void lifecycle_start_ready_patch_then_graceful_delete_with_uid(void **state)
{
	(void)state;
	h_init(1, NULL, false, NULL);
	h_sync_pods();
	struct kd_node_agent *a = &H.a;
	kd_autojson json_object *obj = simple_pod("p1", "u1");

	/* pending: accepted and started once, nothing patched yet */
	on_add(NULL, obj, a);
	assert_int_equal(rt_created(&H.rt, NS "/p1"), 1);
	struct rt_sandbox *sb = rt_live(&H.rt, NS "/p1");
	assert_non_null(sb);
	assert_string_equal(sb->uid, "u1");
	assert_int_equal(kd_node_pods_state(a, NS "/p1", "kd-node-0"),
	                 KD_NODE_POD_EXISTS | KD_NODE_POD_PERSISTED | KD_NODE_POD_SAME_NODE);
	h_pod_update(obj, obj, a); /* MODIFIED and relists only update the entry */
	h_pod_update(obj, obj, a);
	assert_int_equal(H.rt.start_calls, 1);
	assert_int_equal(H.a.n_started, 1);

	/* started: still nothing to patch */
	rt_emit(&H.rt, NS "/p1", KD_RUNTIME_STARTED, NULL, NULL, 0);
	assert_int_equal(h_pod(NS "/p1")->want, WANT_NONE);
	assert_false(h_pod(NS "/p1")->patch_inflight);

	/* ready: Running and Ready, uid precondition, every container running */
	rt_emit(&H.rt, NS "/p1", KD_RUNTIME_READY, NULL, NULL, 0);
	RUN_UNTIL(h_pod(NS "/p1")->patched);
	assert_int_equal(api_count("PATCH", STATUS_PATH("p1")), 1);
	kd_autojson json_object *patch = api_body("PATCH", STATUS_PATH("p1"), 0);
	assert_string_equal(str_at(patch, "metadata.uid"), "u1");
	assert_string_equal(str_at(patch, "status.phase"), "Running");
	assert_string_equal(str_at(patch, "status.podIP"), sb->ip);
	assert_string_equal(str_at(patch, "status.hostIP"), "172.31.0.1");
	assert_string_equal(condition(patch, "Ready"), "True");
	assert_null(kd_json_get(patch, "status.qosClass"));
	json_object *cs = first_container_status(patch);
	kd_autofree char *cid = kd_node_container_id("kd-sim", "u1", "user-container");
	assert_string_equal(str_at(cs, "containerID"), cid);
	assert_non_null(kd_json_get(cs, "state.running"));
	assert_int_equal(a->n_ready_patched, 1);
	h_pod_update(obj, obj, a); /* already patched: no second write */
	assert_false(h_pod(NS "/p1")->patch_inflight);

	/* terminating: the sandbox stops with the pod's grace period; no DELETE before it ended */
	kd_autojson json_object *del = pod_obj(
	    "p1", "u1", "kd-node-0", "Always",
	    "\"deletionTimestamp\":\"2025-01-01T00:00:00Z\",\"deletionGracePeriodSeconds\":7",
	    "\"phase\":\"Running\"");
	h_pod_update(obj, del, a);
	assert_true(sb->stop_called);
	assert_int_equal(sb->grace_ms, 7000);
	assert_int_equal(kd_node_pods_state(a, NS "/p1", NULL) & KD_NODE_POD_STOPPING,
	                 KD_NODE_POD_STOPPING);
	assert_false(h_pod(NS "/p1")->delete_inflight);
	h_pod_update(del, del, a); /* repeated: one stop */
	assert_int_equal(H.rt.stop_calls, 1);

	/* ended: DELETE with grace 0 and the uid precondition, then the entry goes */
	rt_emit(&H.rt, NS "/p1", KD_RUNTIME_EXITED, "Stopped", NULL, 0);
	RUN_UNTIL(h_pod(NS "/p1") == NULL);
	assert_int_equal(api_count("DELETE", POD_PATH("p1")), 1);
	kd_autojson json_object *opts = api_body("DELETE", POD_PATH("p1"), 0);
	assert_int_equal(int_at(opts, "gracePeriodSeconds"), 0);
	assert_string_equal(str_at(opts, "preconditions.uid"), "u1");
	assert_int_equal(a->n_deleted, 1);
	assert_int_equal(rt_created(&H.rt, NS "/p1"), 1);
	assert_int_equal(api_count("PATCH", STATUS_PATH("p1")),
	                 1); /* terminating patches nothing */
	h_fini();
}

static void failure_with_restart_always_is_crashloopbackoff_then_restarts(void **state)
{
	(void)state;
	h_init(1, NULL, false, NULL);
	h_sync_pods();
	kd_autojson json_object *obj = simple_pod("p2", "u2");
	on_add(NULL, obj, &H.a);
	rt_emit(&H.rt, NS "/p2", KD_RUNTIME_STARTED, NULL, NULL, 0);
	rt_emit(&H.rt, NS "/p2", KD_RUNTIME_FAILED, "ErrImagePull", "pull access denied", 0);
	assert_null(rt_live(&H.rt, NS "/p2"));
	assert_int_equal(H.a.n_failed, 1);

	/* waiting with CrashLoopBackOff, the runtime's reason in the message, restartCount 1 */
	RUN_UNTIL(api_count("PATCH", STATUS_PATH("p2")) >= 1);
	kd_autojson json_object *w = api_body("PATCH", STATUS_PATH("p2"), 0);
	assert_string_equal(str_at(w, "metadata.uid"), "u2");
	assert_string_equal(str_at(w, "status.phase"), "Pending");
	assert_string_equal(condition(w, "Ready"), "False");
	json_object *cs = first_container_status(w);
	assert_string_equal(str_at(cs, "state.waiting.reason"), "CrashLoopBackOff");
	const char *msg = str_at(cs, "state.waiting.message");
	assert_non_null(strstr(msg, "restarting failed sandbox: ErrImagePull: pull access denied"));
	assert_int_equal(int_at(cs, "restartCount"), 1);
	bool ready = true;
	assert_int_equal(kd_json_get_bool(cs, "ready", &ready), 0);
	assert_false(ready);

	/* after the backoff: a second sandbox, never two at once; ready -> Running, restartCount 1
	 */
	assert_int_equal(rt_created(&H.rt, NS "/p2"), 1);
	restart_now(NS "/p2");
	RUN_UNTIL(rt_created(&H.rt, NS "/p2") == 2);
	assert_false(rt_nth(&H.rt, NS "/p2", 0)->live);
	assert_true(rt_nth(&H.rt, NS "/p2", 1)->live);
	rt_emit(&H.rt, NS "/p2", KD_RUNTIME_READY, NULL, NULL, 0);
	RUN_UNTIL(h_pod(NS "/p2")->patched && patch_settled(NS "/p2"));
	size_t n = api_count("PATCH", STATUS_PATH("p2"));
	kd_autojson json_object *r = api_body("PATCH", STATUS_PATH("p2"), n - 1);
	assert_string_equal(str_at(r, "status.phase"), "Running");
	assert_int_equal(int_at(first_container_status(r), "restartCount"), 1);
	h_fini();
}

static void failure_with_restart_never_is_failed_and_never_restarts(void **state)
{
	(void)state;
	h_init(1, NULL, false, NULL);
	H.cfg.restart_backoff_ms = 1; /* a restart, if one were scheduled, would come at once */
	h_sync_pods();
	kd_autojson json_object *obj =
	    pod_obj("p3", "u3", "kd-node-0", "Never", "", "\"phase\":\"Pending\"");
	on_add(NULL, obj, &H.a);
	rt_emit(&H.rt, NS "/p3", KD_RUNTIME_STARTED, NULL, NULL, 0);
	rt_emit(&H.rt, NS "/p3", KD_RUNTIME_EXITED, "Error", NULL, 3);
	RUN_UNTIL(h_pod(NS "/p3")->patched);
	kd_autojson json_object *f = api_body("PATCH", STATUS_PATH("p3"), 0);
	assert_string_equal(str_at(f, "status.phase"), "Failed");
	assert_string_equal(str_at(f, "status.reason"), "Error");
	assert_string_equal(str_at(f, "status.message"), "exit code 3");
	json_object *cs = first_container_status(f);
	assert_string_equal(str_at(cs, "state.terminated.reason"), "Error");
	assert_int_equal(int_at(cs, "state.terminated.exitCode"), 1);
	/* final: neither a relist, a MODIFIED event nor the node becoming ready restarts it */
	assert_true(h_pod(NS "/p3")->final);
	h_pod_update(obj, obj, &H.a);
	kd_node_pods_node_ready(&H.a, &H.a.nodes[0]);
	assert_int_equal(rt_created(&H.rt, NS "/p3"), 1);
	assert_false(h_pod(NS "/p3")->restart_timer &&
	             kd_loop_timer_pending(h_pod(NS "/p3")->restart_timer));
	h_fini();
}

static void start_error_is_create_pod_sandbox_error_and_retried(void **state)
{
	(void)state;
	h_init(1, NULL, false, NULL);
	h_sync_pods();
	H.rt.fail_starts = 1;
	kd_autojson json_object *obj = simple_pod("p4", "u4");
	on_add(NULL, obj, &H.a);
	assert_int_equal(rt_created(&H.rt, NS "/p4"), 0);
	RUN_UNTIL(api_count("PATCH", STATUS_PATH("p4")) >= 1);
	kd_autojson json_object *w = api_body("PATCH", STATUS_PATH("p4"), 0);
	json_object *cs = first_container_status(w);
	assert_string_equal(str_at(cs, "state.waiting.reason"), "CreatePodSandboxError");
	assert_string_equal(str_at(cs, "state.waiting.message"),
	                    "no address left in 10.244.0.0/24");
	h_pod_update(obj, obj, &H.a); /* a retry is scheduled: an event does not start early */
	assert_int_equal(H.rt.start_calls, 1);
	restart_now(NS "/p4");
	RUN_UNTIL(rt_created(&H.rt, NS "/p4") == 1);
	assert_int_equal(H.rt.start_calls, 2);
	h_fini();
}

static void invalid_spec_is_reported_and_never_started(void **state)
{
	(void)state;
	h_init(1, NULL, false, NULL);
	h_sync_pods();
	kd_autojson json_object *obj = NULL;
	const char *s = "{\"metadata\":{\"name\":\"p5\",\"namespace\":\"" NS "\",\"uid\":\"u5\"},"
	                "\"spec\":{\"nodeName\":\"kd-node-0\"},\"status\":{}}";
	assert_int_equal(kd_json_parse(s, strlen(s), 0, "pod", &obj, NULL), 0);
	on_add(NULL, obj, &H.a);
	assert_int_equal(H.rt.start_calls, 0);
	assert_true(h_pod(NS "/p5")->final);
	assert_string_equal(h_pod(NS "/p5")->reason, "InvalidPodSpec");
	RUN_UNTIL(h_pod(NS "/p5")->patched);
	kd_autojson json_object *w = api_body("PATCH", STATUS_PATH("p5"), 0);
	assert_string_equal(str_at(w, "status.phase"), "Pending");
	assert_string_equal(condition(w, "Ready"), "False");
	h_pod_update(obj, obj, &H.a);
	assert_int_equal(H.rt.start_calls, 0);
	h_fini();
}

/* A limit that is not a quantity: the Pod is not run (under no runtime: never "no limit") and
 * its status says which container, field and value. */
static void bad_limit_is_reported_and_never_started(void **state)
{
	(void)state;
	h_init(1, NULL, false, NULL);
	h_sync_pods();
	kd_autojson json_object *obj = NULL;
	const char *s = "{\"metadata\":{\"name\":\"p5l\",\"namespace\":\"" NS "\",\"uid\":"
	                "\"u5l\"},\"spec\":{\"nodeName\":\"kd-node-0\",\"containers\":[{\"name\":"
	                "\"user-container\",\"image\":\"x\",\"resources\":{\"limits\":"
	                "{\"memory\":\"12Q\"}}}]},\"status\":{}}";
	assert_int_equal(kd_json_parse(s, strlen(s), 0, "pod", &obj, NULL), 0);
	on_add(NULL, obj, &H.a);
	assert_int_equal(H.rt.start_calls, 0);
	assert_true(h_pod(NS "/p5l")->final);
	RUN_UNTIL(api_count("PATCH", STATUS_PATH("p5l")) >= 1);
	kd_autojson json_object *w = api_body("PATCH", STATUS_PATH("p5l"), 0);
	json_object *cs = first_container_status(w);
	assert_string_equal(str_at(cs, "state.waiting.reason"), "InvalidPodSpec");
	assert_string_equal(str_at(cs, "state.waiting.message"),
	                    "pod " NS "/p5l: container user-container: resources.limits.memory "
	                    "\"12Q\": not a quantity");
	h_fini();
}

static void same_name_new_uid_waits_for_the_old_sandbox(void **state)
{
	(void)state;
	h_init(1, NULL, false, NULL);
	h_sync_pods();
	kd_autojson json_object *old = simple_pod("p6", "u6a");
	kd_autojson json_object *neu = simple_pod("p6", "u6b");
	on_add(NULL, old, &H.a);
	rt_emit(&H.rt, NS "/p6", KD_RUNTIME_STARTED, NULL, NULL, 0);
	struct rt_sandbox *first = rt_live(&H.rt, NS "/p6");
	h_pod_update(old, neu, &H.a);
	assert_true(first->stop_called);
	assert_int_equal(first->grace_ms, 0);
	h_pod_update(neu, neu, &H.a); /* repeated: no second stop, no start */
	assert_int_equal(H.rt.stop_calls, 1);
	assert_int_equal(rt_created(&H.rt, NS "/p6"), 1);
	assert_int_equal(H.rt.start_calls, 1);
	/* an event of the old incarnation does not touch the new pod's state */
	rt_emit(&H.rt, NS "/p6", KD_RUNTIME_EXITED, "Stopped", NULL, 0);
	assert_int_equal(rt_created(&H.rt, NS "/p6"), 2);
	struct rt_sandbox *second = rt_live(&H.rt, NS "/p6");
	assert_non_null(second);
	assert_string_equal(second->uid, "u6b");
	assert_string_equal(h_pod(NS "/p6")->uid, "u6b");
	assert_int_equal(api_count("DELETE", POD_PATH("p6")), 0);
	h_fini();
}

static void deleted_from_api_stops_now_and_releases_without_delete(void **state)
{
	(void)state;
	h_init(1, NULL, false, NULL);
	h_sync_pods();
	kd_autojson json_object *obj = simple_pod("p7", "u7");
	kd_autojson json_object *older = simple_pod("p7", "u7-older");
	on_add(NULL, obj, &H.a);
	on_delete(NULL, older, &H.a); /* a DELETED event of an older pod of that name */
	assert_int_equal(H.rt.stop_calls, 0);
	on_delete(NULL, obj, &H.a);
	struct rt_sandbox *sb = rt_live(&H.rt, NS "/p7");
	assert_true(sb->stop_called);
	assert_int_equal(sb->grace_ms, 0);
	assert_non_null(h_pod(NS "/p7")); /* kept until its sandbox ended */
	assert_int_equal(kd_node_pods_state(&H.a, NS "/p7", NULL) & KD_NODE_POD_STOPPING,
	                 KD_NODE_POD_STOPPING);
	rt_emit(&H.rt, NS "/p7", KD_RUNTIME_EXITED, "Stopped", NULL, 0);
	assert_null(h_pod(NS "/p7"));
	assert_int_equal(api_count("DELETE", POD_PATH("p7")), 0);
	h_fini();
}

static void status_conflict_is_dropped_and_server_errors_are_retried(void **state)
{
	(void)state;
	h_init(1, NULL, false, NULL);
	h_sync_pods();
	/* 409 on the uid precondition: the name belongs to another pod now; not retried */
	api_set(&api.patch_code, 409);
	kd_autojson json_object *a1 = simple_pod("p8", "u8");
	on_add(NULL, a1, &H.a);
	rt_emit(&H.rt, NS "/p8", KD_RUNTIME_READY, NULL, NULL, 0);
	RUN_UNTIL(api_count("PATCH", STATUS_PATH("p8")) == 1 && patch_settled(NS "/p8"));
	struct kd_pod *p = h_pod(NS "/p8");
	assert_false(p->patched);
	assert_false(p->patch_timer && kd_loop_timer_pending(p->patch_timer));
	assert_int_equal(H.a.n_patch_errors, 0);

	/* 500: retried with backoff until it succeeds */
	api_set(&api.patch_code, 500);
	kd_autojson json_object *a2 = simple_pod("p9", "u9");
	on_add(NULL, a2, &H.a);
	rt_emit(&H.rt, NS "/p9", KD_RUNTIME_READY, NULL, NULL, 0);
	RUN_UNTIL(H.a.n_patch_errors == 1);
	p = h_pod(NS "/p9");
	assert_true(p->patch_timer && kd_loop_timer_pending(p->patch_timer));
	api_set(&api.patch_code, 0);
	RUN_UNTIL(h_pod(NS "/p9")->patched);
	assert_true(api_count("PATCH", STATUS_PATH("p9")) >= 2);
	h_fini();
}

/* The pod list of a restarted kd-node: an adopted pod (already Running and Ready at an address),
 * a new one, a finished one, and one on a node not registered yet. */
#define ADOPTED                                                                                    \
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"old\",\"namespace\":"    \
	"\"" NS "\",\"uid\":\"u-old\",\"resourceVersion\":\"3\"},\"spec\":{\"nodeName\":"          \
	"\"kd-node-0\",\"containers\":[{\"name\":\"user-container\",\"image\":"                    \
	"\"dev.local/hello\"}]},\"status\":{\"phase\":\"Running\",\"podIP\":\"10.244.0.77\","      \
	"\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}],\"containerStatuses\":[{"       \
	"\"name\":\"user-container\",\"ready\":true}]}}"
#define LISTED(name, node, phase)                                                                  \
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"" name "\","             \
	"\"namespace\":\"" NS "\",\"uid\":\"u-" name "\",\"resourceVersion\":\"3\"},\"spec\":{"    \
	"\"nodeName\":\"" node "\",\"containers\":[{\"name\":\"user-container\",\"image\":"        \
	"\"dev.local/hello\"}]},\"status\":{\"phase\":\"" phase "\"}}"

static void restart_adopts_listed_pods_addressed_first_and_skips_needless_patch(void **state)
{
	(void)state;
	h_init(2,
	       LISTED("new", "kd-node-0", "Pending") "," ADOPTED "," LISTED(
	           "done", "kd-node-0", "Succeeded") "," LISTED("late", "kd-node-1", "Pending"),
	       false, NULL);
	H.a.nodes[1].registered = false;
	h_sync_pods();
	/* started at sync, the pod that already has an address first and with that address */
	assert_true(H.rt.n >= 2);
	assert_string_equal(H.rt.sb[0].key, NS "/old");
	assert_string_equal(H.rt.sb[0].ip, "10.244.0.77");
	assert_string_equal(H.rt.sb[1].key, NS "/new");
	assert_int_equal(H.rt.n,
	                 2); /* not the finished pod, not the one on the unregistered node */
	assert_null(h_pod(NS "/done"));
	assert_non_null(h_pod(NS "/late"));

	/* ready again at the same address: the API already says so, nothing is written */
	rt_emit(&H.rt, NS "/old", KD_RUNTIME_READY, NULL, NULL, 0);
	assert_true(h_pod(NS "/old")->patched);
	assert_false(h_pod(NS "/old")->patch_inflight);

	/* the other node registers: its pods start */
	H.a.nodes[1].registered = true;
	kd_node_pods_node_ready(&H.a, &H.a.nodes[1]);
	assert_int_equal(rt_created(&H.rt, NS "/late"), 1);
	kd_node_pods_node_ready(&H.a, NULL);
	assert_int_equal(H.rt.n, 3);
	assert_int_equal(api_count("PATCH", STATUS_PATH("old")), 0);

	/* pods of other nodes are not ours */
	kd_autojson json_object *other =
	    pod_obj("x", "ux", "someone-else", "Always", "", "\"phase\":\"Pending\"");
	on_add(NULL, other, &H.a);
	assert_null(h_pod(NS "/x"));
	h_fini();
}

static void events_before_sync_wait_for_it(void **state)
{
	(void)state;
	h_init(1, NULL, false, NULL);
	kd_autojson json_object *obj = simple_pod("p10", "u10");
	on_add(NULL, obj, &H.a); /* the informer has not synced: recorded, not started */
	assert_non_null(h_pod(NS "/p10"));
	assert_int_equal(H.rt.start_calls, 0);
	h_sync_pods();
	assert_int_equal(rt_created(&H.rt, NS "/p10"), 1);
	h_fini();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(lifecycle_start_ready_patch_then_graceful_delete_with_uid),
	    cmocka_unit_test(failure_with_restart_always_is_crashloopbackoff_then_restarts),
	    cmocka_unit_test(failure_with_restart_never_is_failed_and_never_restarts),
	    cmocka_unit_test(start_error_is_create_pod_sandbox_error_and_retried),
	    cmocka_unit_test(invalid_spec_is_reported_and_never_started),
	    cmocka_unit_test(bad_limit_is_reported_and_never_started),
	    cmocka_unit_test(same_name_new_uid_waits_for_the_old_sandbox),
	    cmocka_unit_test(deleted_from_api_stops_now_and_releases_without_delete),
	    cmocka_unit_test(status_conflict_is_dropped_and_server_errors_are_retried),
	    cmocka_unit_test(restart_adopts_listed_pods_addressed_first_and_skips_needless_patch),
	    cmocka_unit_test(events_before_sync_wait_for_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
