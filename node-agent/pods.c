/* node-agent/pods.c: the lifecycle of pods bound to this process's nodes (see agent.h).
 *
 * One entry per pod key "ns/name" in a hash table; per entry at most one live sandbox
 * (`sandbox` true from an accepted runtime start until EXITED/FAILED), whatever events repeat:
 * ADDED, MODIFIED and relists only update the entry. States:
 *
 *   new pod on our node --start--> sandbox --READY--> patch status Running/Ready (uid precondition)
 *   FAILED/EXITED (not terminating) --> status Waiting (CrashLoopBackOff) + restart after backoff,
 *                                      or Failed for restartPolicy Never
 *   deletionTimestamp --> stop(grace = deletionGracePeriodSeconds) --EXITED--> DELETE pod with
 *                         gracePeriodSeconds=0 and preconditions.uid (as the kubelet does)
 *   pod gone from the API --> stop(0); the entry is freed once the sandbox has ended and no
 *                             request is in flight.
 *
 * Pods are started only once the informer has synced and their node is registered (as a kubelet
 * does; it also makes sure the node's podCIDR is the one the API Server has, which wins over
 * ours), pods that already have an IP first: after a restart every adopted address is
 * re-registered with the runtime before a new pod can be given one, so no IP is handed out
 * twice.
 *
 * Restart adoption: a pod that already shows status.podIP is started with that address
 * (kd_sandbox_spec.pod_ip), so the runtime re-registers it instead of allocating a new one
 * (runtime-sim supports this); when it is ready and the API already shows it Running and Ready
 * with that IP, no patch is sent. A status that someone else changes after our successful patch
 * is not re-asserted (kubelet would on its next sync; we do on the next sandbox event).
 *
 * Status writes: coalesced per pod (one in flight; a newer wish is sent when it completes),
 * through the rate-limited client a->k8s_pods (--status-qps, as a kubelet's), except for managed
 * instances in direct mode: their status patch is the second write of the write-back and goes
 * through its client (kd_node_direct_client: --direct-write-qps, HTTP/2). Failures other than
 * "pod gone" (404, or 409 on the uid precondition) are retried with jittered backoff.
 *
 * A runtime with KD_RUNTIME_CAP_OWNS_POD (runtime-kubelet, --attach-node) hands the Pod to the
 * node's real kubelet: only managed Pods (kubedirect instances) get an entry, no status is ever
 * patched (the kubelet writes it), and the runtime's READY comes from the kubelet's status. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "direct.h"
#include "kd/instance.h"
#include "kd/json.h"
#include "kd/log.h"
#include "kd/runtimejson.h"

#define PATCH_BACKOFF_BASE_MS 200
#define PATCH_BACKOFF_CAP_MS  10000

enum want_status { WANT_NONE = 0, WANT_RUNNING, WANT_WAITING, WANT_FAILED };

struct kd_pod;
static const char *pod_revision(const struct kd_pod *p);

struct kd_pod {
	struct kd_node_agent *a;
	char *key; /* "ns/name"; the table key */
	char *ns, *name;
	char *uid;         /* uid of the pod object we serve */
	char *sandbox_uid; /* uid the live sandbox was started with */
	struct kd_node *node;
	struct json_object *obj; /* latest object seen (owned reference) */

	bool sandbox;        /* a runtime sandbox is live for key */
	bool ready;          /* READY reported for the live sandbox */
	bool stop_requested; /* stop() called on the live sandbox */
	bool terminating;    /* deletionTimestamp seen */
	bool gone;           /* deleted from the API (DELETED event / relist) */
	bool replace;        /* a new pod with the same name (new uid) waits for the old sandbox */
	bool final;          /* terminal (Failed, restartPolicy Never): never restarted */
	bool direct;         /* started from a direct op (direct.c) before its API object */
	bool managed;        /* a kubedirect instance: readiness is reported upstream */
	char pod_ip[KD_IP_STRLEN];
	uint64_t start_wall_ns, ready_wall_ns;
	unsigned restarts;

	enum want_status want;
	char *reason, *message; /* for WAITING/FAILED */
	bool patch_inflight, patch_dirty, patched;
	unsigned patch_attempt;
	struct kd_timer *patch_timer;

	bool delete_inflight, deleted;
	unsigned delete_attempt;
	struct kd_timer *delete_timer;

	struct kd_timer *restart_timer;
};

/* The Knative revision label of the pod (borrowed from p->obj), or NULL. */
static const char *pod_revision(const struct kd_pod *p)
{
	struct json_object *labels = kd_json_get_object(p->obj, "metadata.labels"), *v;
	if (!labels || !json_object_object_get_ex(labels, KD_KNATIVE_LABEL_REVISION, &v))
		return NULL;
	return json_object_get_string(v);
}

static void pod_start(struct kd_pod *p);
static void send_patch(struct kd_pod *p);
static void send_delete(struct kd_pod *p);

/* ---- entries
 * ------------------------------------------------------------------------------------- */

static void pod_free(struct kd_pod *p)
{
	if (p->managed && !p->a->stopping)
		kd_node_direct_report_gone(p->a, p->key, "Released");
	kd_loop_timer_free(p->patch_timer);
	kd_loop_timer_free(p->delete_timer);
	kd_loop_timer_free(p->restart_timer);
	if (p->obj)
		json_object_put(p->obj);
	free(p->key);
	free(p->ns);
	free(p->name);
	free(p->uid);
	free(p->sandbox_uid);
	free(p->reason);
	free(p->message);
	free(p);
}

static struct kd_pod *pod_lookup(struct kd_node_agent *a, const char *key)
{
	return key ? kd_strmap_get(&a->pods, key) : NULL;
}

/* Frees the entry once nothing refers to it any more. */
static void maybe_free(struct kd_pod *p)
{
	if (p->a->stopping)
		return;
	if (!(p->gone || p->deleted) || p->sandbox || p->patch_inflight || p->delete_inflight ||
	    p->replace)
		return;
	kd_log_debug("pod %s: released", p->key);
	kd_strmap_del(&p->a->pods, p->key);
	pod_free(p);
}

static void set_obj(struct kd_pod *p, struct json_object *obj)
{
	struct json_object *prev = p->obj;
	p->obj = json_object_get(obj); /* before the put: obj may be p->obj */
	if (prev)
		json_object_put(prev);
}

static void set_reason(struct kd_pod *p, const char *reason, const char *message)
{
	free(p->reason);
	free(p->message);
	p->reason = reason ? kd_xstrdup(reason) : NULL;
	p->message = message ? kd_xstrdup(message) : NULL;
}

/* Resets the entry to serve a new pod object (same key, new uid). */
static void reset_for(struct kd_pod *p, struct json_object *obj)
{
	set_obj(p, obj);
	free(p->uid);
	p->uid = kd_xstrdup(kd_json_get_string(obj, "metadata.uid"));
	p->ready = p->stop_requested = p->terminating = p->gone = p->replace = p->final = false;
	p->pod_ip[0] = '\0';
	p->start_wall_ns = p->ready_wall_ns = 0;
	p->restarts = 0;
	p->want = WANT_NONE;
	set_reason(p, NULL, NULL);
	p->patch_dirty = p->patched = false;
	p->patch_attempt = p->delete_attempt = 0;
	p->deleted = false;
	kd_loop_timer_stop(p->patch_timer);
	kd_loop_timer_stop(p->delete_timer);
	kd_loop_timer_stop(p->restart_timer);
}

/* ---- status patches ------------------------------------------------------------------------- */

static void on_patch_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	send_patch(arg);
}

static void request_patch(struct kd_pod *p, enum want_status want)
{
	p->want = want;
	p->patched = false;
	if (p->patch_inflight) {
		p->patch_dirty = true;
		return;
	}
	if (p->patch_timer && kd_loop_timer_pending(p->patch_timer))
		return; /* a retry is scheduled and will send the latest wish */
	send_patch(p);
}

static void on_patch_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	(void)resp;
	struct kd_pod *p = arg;
	struct kd_node_agent *a = p->a;
	p->patch_inflight = false;
	if (a->stopping)
		return;
	if (err && (err->errnum == ENOENT || err->errnum == EBUSY)) {
		/* the pod is gone, or the name now belongs to another uid */
		kd_log_debug("pod %s: status not written: %s", p->key, kd_error_msg(err));
		p->patch_dirty = false;
		maybe_free(p);
		return;
	}
	if (err) {
		a->n_patch_errors++;
		uint64_t ms =
		    kd_backoff_ms(p->patch_attempt++, PATCH_BACKOFF_BASE_MS, PATCH_BACKOFF_CAP_MS);
		kd_log_warn("pod %s: patch status: %s; retrying in %llu ms", p->key,
		            kd_error_msg(err), (unsigned long long)ms);
		if (!p->patch_timer)
			p->patch_timer = kd_loop_timer_new(a->loop, on_patch_timer, p);
		kd_loop_timer_start(p->patch_timer, ms);
		return;
	}
	p->patch_attempt = 0;
	if (p->patch_dirty) {
		p->patch_dirty = false;
		send_patch(p);
		return;
	}
	p->patched = true;
	if (p->want == WANT_RUNNING) {
		a->n_ready_patched++;
		kd_log_debug("pod %s: Running and Ready at %s (%s)", p->key, p->pod_ip,
		             p->node->name);
	}
	maybe_free(p);
}

static void send_patch(struct kd_pod *p)
{
	struct kd_node_agent *a = p->a;
	if (p->patch_inflight || a->stopping || p->gone || p->want == WANT_NONE)
		return;
	if (a->rt_owns_pod) {
		p->patched = true; /* the node's kubelet writes the status of the Pods it runs */
		return;
	}
	if (!p->uid)
		return; /* a direct instance not written back yet: sent once the API shows it */
	struct kd_node_pod_info info = {
	    .host_ip = p->node->internal_ip,
	    .pod_ip = p->pod_ip[0] ? p->pod_ip : NULL,
	    .runtime = a->runtime_name,
	    .start_wall_ns = p->start_wall_ns,
	    .ready_wall_ns = p->ready_wall_ns,
	    .restart_count = p->restarts,
	    .reason = p->reason,
	    .message = p->message,
	};
	uint64_t now = kd_wall_ns();
	kd_autojson struct json_object *patch = NULL;
	switch (p->want) {
	case WANT_RUNNING:
		if (kd_node_pod_is_running_ready(p->obj, info.pod_ip)) {
			p->patched = true; /* adopted: the API already says so */
			kd_log_debug("pod %s: already Running and Ready at %s", p->key, p->pod_ip);
			return;
		}
		patch = kd_node_pod_status_running(p->obj, &info, now);
		break;
	case WANT_WAITING:
		patch = kd_node_pod_status_waiting(p->obj, &info, now);
		break;
	case WANT_FAILED:
		patch = kd_node_pod_status_failed(p->obj, &info, now);
		break;
	case WANT_NONE:
		return;
	}
	if (!patch) {
		kd_log_warn("pod %s: cannot build a status patch (no uid or no address)", p->key);
		return;
	}
	struct kd_k8s_request req = {
	    .verb = KD_K8S_PATCH,
	    .res = &kd_k8s_pods,
	    .ns = p->ns,
	    .name = p->name,
	    .subresource = "status",
	    .patch_type = KD_K8S_PATCH_STRATEGIC,
	    .body = patch,
	};
	struct kd_error *err = NULL;
	p->patch_inflight = true;
	struct kd_k8s *c = p->managed ? kd_node_direct_client(a) : NULL;
	if (kd_k8s_submit(c ? c : a->k8s_pods, &req, on_patch_done, p, &err) < 0) {
		p->patch_inflight = false;
		kd_log_warn("pod %s: patch status: %s", p->key, kd_error_msg(err));
		kd_error_free(err);
		if (!p->patch_timer)
			p->patch_timer = kd_loop_timer_new(a->loop, on_patch_timer, p);
		kd_loop_timer_start(p->patch_timer, PATCH_BACKOFF_CAP_MS);
	}
}

/* ---- deletion
 * ------------------------------------------------------------------------------------ */

static void on_delete_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	send_delete(arg);
}

static void on_delete_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	(void)resp;
	struct kd_pod *p = arg;
	struct kd_node_agent *a = p->a;
	p->delete_inflight = false;
	if (a->stopping)
		return;
	if (err && err->errnum != ENOENT && err->errnum != EBUSY) {
		uint64_t ms =
		    kd_backoff_ms(p->delete_attempt++, PATCH_BACKOFF_BASE_MS, PATCH_BACKOFF_CAP_MS);
		kd_log_warn("pod %s: delete: %s; retrying in %llu ms", p->key, kd_error_msg(err),
		            (unsigned long long)ms);
		if (!p->delete_timer)
			p->delete_timer = kd_loop_timer_new(a->loop, on_delete_timer, p);
		kd_loop_timer_start(p->delete_timer, ms);
		return;
	}
	p->deleted = true;
	a->n_deleted++;
	kd_log_debug("pod %s: deleted (%s)", p->key, err ? kd_error_msg(err) : "ok");
	maybe_free(p);
}

/* DELETE with gracePeriodSeconds=0 and a uid precondition, once the sandbox has stopped. */
static void send_delete(struct kd_pod *p)
{
	struct kd_node_agent *a = p->a;
	if (p->delete_inflight || p->deleted || p->gone || a->stopping || p->sandbox)
		return;
	kd_autojson struct json_object *opts = json_object_new_object();
	json_object_object_add(opts, "gracePeriodSeconds", json_object_new_int(0));
	if (p->uid && *p->uid) {
		struct json_object *pre = json_object_new_object();
		json_object_object_add(pre, "uid", json_object_new_string(p->uid));
		json_object_object_add(opts, "preconditions", pre);
	}
	struct kd_k8s_request req = {
	    .verb = KD_K8S_DELETE,
	    .res = &kd_k8s_pods,
	    .ns = p->ns,
	    .name = p->name,
	    .body = opts,
	};
	struct kd_error *err = NULL;
	p->delete_inflight = true;
	if (kd_k8s_submit(a->k8s_pods, &req, on_delete_done, p, &err) < 0) {
		p->delete_inflight = false;
		kd_log_warn("pod %s: delete: %s", p->key, kd_error_msg(err));
		kd_error_free(err);
		if (!p->delete_timer)
			p->delete_timer = kd_loop_timer_new(a->loop, on_delete_timer, p);
		kd_loop_timer_start(p->delete_timer, PATCH_BACKOFF_CAP_MS);
	}
}

static void stop_sandbox(struct kd_pod *p, uint32_t grace_ms)
{
	struct kd_node_agent *a = p->a;
	if (!p->sandbox || p->stop_requested)
		return;
	struct kd_error *err = NULL;
	p->stop_requested = true;
	if (a->rt->stop(a->rt_state, p->key, grace_ms, &err) < 0) {
		/* -ENOENT: the runtime no longer has it; treat as ended */
		kd_log_debug("pod %s: stop: %s", p->key, kd_error_msg(err));
		kd_error_free(err);
		p->sandbox = false;
		p->ready = false;
	}
}

static void pod_terminate(struct kd_pod *p)
{
	p->terminating = true;
	kd_loop_timer_stop(p->restart_timer);
	if (p->sandbox) {
		int64_t grace_s = 30;
		kd_json_get_int64(p->obj, "metadata.deletionGracePeriodSeconds", &grace_s);
		if (grace_s < 0)
			grace_s = 0;
		stop_sandbox(p, (uint32_t)KD_MIN(grace_s, 3600) * 1000u);
	}
	if (!p->sandbox)
		send_delete(p);
}

/* ---- runtime events ------------------------------------------------------------------------- */

static void on_restart_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	pod_start(arg);
}

/* The sandbox ended without being asked to: report and restart per restartPolicy. */
static void sandbox_failed(struct kd_pod *p, const char *reason, const char *message)
{
	struct kd_node_agent *a = p->a;
	a->n_failed++;
	p->restarts++;
	if (kd_node_pod_restart_never(p->obj)) {
		p->final = true;
		set_reason(p, reason ? reason : "Error", message);
		kd_log_warn("pod %s: sandbox failed (%s: %s); restartPolicy Never, marking Failed",
		            p->key, p->reason, message ? message : "");
		request_patch(p, WANT_FAILED);
		return;
	}
	uint64_t ms = kd_backoff_ms(p->restarts - 1, a->cfg->restart_backoff_ms,
	                            KD_MAX(a->cfg->restart_backoff_ms, 300000));
	kd_autofree char *msg = kd_xasprintf("back-off %llu ms restarting failed sandbox: %s%s%s",
	                                     (unsigned long long)ms, reason ? reason : "Error",
	                                     message ? ": " : "", message ? message : "");
	set_reason(p, "CrashLoopBackOff", msg);
	kd_log_warn("pod %s: %s (restart %u)", p->key, msg, p->restarts);
	request_patch(p, WANT_WAITING);
	if (!p->restart_timer)
		p->restart_timer = kd_loop_timer_new(a->loop, on_restart_timer, p);
	kd_loop_timer_start(p->restart_timer, ms);
}

static void sandbox_ended(struct kd_pod *p, const struct kd_runtime_event *ev)
{
	bool asked = p->stop_requested;
	if (p->managed) {
		if (asked || p->gone || p->terminating || kd_node_pod_restart_never(p->obj))
			kd_node_direct_report_gone(p->a, p->key,
			                           ev->reason ? ev->reason : "Stopped");
		else
			kd_node_direct_report(p->a, p->key, p->node->name, false,
			                      p->pod_ip[0] ? p->pod_ip : NULL,
			                      ev->reason ? ev->reason : "Error", pod_revision(p));
	}
	p->sandbox = false;
	p->ready = false;
	p->stop_requested = false;
	free(p->sandbox_uid);
	p->sandbox_uid = NULL;
	if (p->replace && !p->gone) { /* the new pod with this name can start now */
		p->replace = false;
		struct json_object *obj = json_object_get(p->obj);
		reset_for(p, obj);
		json_object_put(obj);
		pod_start(p);
		return;
	}
	if (p->gone) {
		maybe_free(p);
		return;
	}
	if (p->terminating) {
		send_delete(p);
		return;
	}
	if (!asked) {
		char msg[64];
		const char *m = ev->message;
		if (ev->type == KD_RUNTIME_EXITED && !m) {
			snprintf(msg, sizeof(msg), "exit code %d", ev->exit_code);
			m = msg;
		}
		sandbox_failed(p, ev->reason, m);
	}
}

static void on_runtime_event(const struct kd_runtime_event *ev, void *arg)
{
	struct kd_node_agent *a = arg;
	struct kd_pod *p = pod_lookup(a, ev->key);
	if (!p || !p->sandbox)
		return;
	if (ev->uid && p->sandbox_uid && strcmp(ev->uid, p->sandbox_uid) != 0)
		return; /* an older incarnation */
	if (ev->pod_ip && *ev->pod_ip)
		snprintf(p->pod_ip, sizeof(p->pod_ip), "%s", ev->pod_ip);
	switch (ev->type) {
	case KD_RUNTIME_STARTED:
		kd_log_debug("pod %s: sandbox started at %s", p->key, p->pod_ip);
		break;
	case KD_RUNTIME_READY:
		if (p->ready || p->terminating || p->stop_requested)
			break;
		p->ready = true;
		p->ready_wall_ns = kd_wall_ns();
		set_reason(p, NULL, NULL);
		if (p->managed)
			kd_node_direct_report(a, p->key, p->node->name, true, p->pod_ip, NULL,
			                      pod_revision(p));
		request_patch(p, WANT_RUNNING);
		break;
	case KD_RUNTIME_FAILED:
	case KD_RUNTIME_EXITED:
		kd_log_debug("pod %s: sandbox %s (%s)", p->key,
		             ev->type == KD_RUNTIME_FAILED ? "failed" : "exited",
		             ev->reason ? ev->reason : "-");
		sandbox_ended(p, ev);
		break;
	}
}

/* ---- start ---------------------------------------------------------------------------------- */

static void pod_start(struct kd_pod *p)
{
	struct kd_node_agent *a = p->a;
	if (p->sandbox || p->terminating || p->gone || p->final || a->stopping)
		return;
	struct kd_sandbox_view view;
	struct kd_error *err = NULL;
	if (kd_sandbox_view_init(&view, p->obj, p->node->name, p->node->pod_cidr, &err) < 0) {
		kd_log_error("pod %s: cannot run: %s", p->key, kd_error_msg(err));
		p->final = true;
		set_reason(p, "InvalidPodSpec", kd_error_msg(err));
		kd_error_free(err);
		request_patch(p, WANT_WAITING);
		return;
	}
	int rc = a->rt->start(a->rt_state, &view.spec, on_runtime_event, a, &err);
	kd_sandbox_view_fini(&view);
	if (rc == -EBUSY) {
		/* the runtime still runs an older pod of this name: stop it, start when it ends */
		kd_log_warn("pod %s: %s; stopping the old sandbox first", p->key,
		            kd_error_msg(err));
		kd_error_free(err);
		struct kd_error *e2 = NULL;
		if (a->rt->stop(a->rt_state, p->key, 0, &e2) < 0)
			kd_error_free(e2);
		if (!p->restart_timer)
			p->restart_timer = kd_loop_timer_new(a->loop, on_restart_timer, p);
		kd_loop_timer_start(p->restart_timer, 500);
		return;
	}
	if (rc < 0) {
		kd_autofree char *msg = kd_xstrdup(kd_error_msg(err));
		kd_error_free(err);
		p->restarts++;
		uint64_t ms = kd_backoff_ms(p->restarts - 1, a->cfg->restart_backoff_ms,
		                            KD_MAX(a->cfg->restart_backoff_ms, 300000));
		kd_log_warn("pod %s: start sandbox: %s; retrying in %llu ms", p->key, msg,
		            (unsigned long long)ms);
		set_reason(p, "CreatePodSandboxError", msg);
		request_patch(p, WANT_WAITING);
		if (!p->restart_timer)
			p->restart_timer = kd_loop_timer_new(a->loop, on_restart_timer, p);
		kd_loop_timer_start(p->restart_timer, ms);
		return;
	}
	p->sandbox = true;
	p->ready = false;
	p->stop_requested = false;
	free(p->sandbox_uid);
	p->sandbox_uid = p->uid ? kd_xstrdup(p->uid) : NULL;
	uint64_t st;
	if (!p->start_wall_ns)
		p->start_wall_ns =
		    kd_node_parse_time(kd_json_get_string(p->obj, "status.startTime"), &st) == 0
		        ? st
		        : kd_wall_ns();
	a->n_started++;
	kd_log_debug("pod %s: sandbox requested on %s", p->key, p->node->name);
	/* an idempotent start of a sandbox that is already ready produces no new event */
	struct kd_sandbox_status ss;
	if (a->rt->status(a->rt_state, p->key, &ss) == 0 && ss.phase == KD_SANDBOX_READY) {
		if (ss.pod_ip[0])
			snprintf(p->pod_ip, sizeof(p->pod_ip), "%s", ss.pod_ip);
		p->ready = true;
		p->ready_wall_ns = kd_wall_ns();
		if (p->managed)
			kd_node_direct_report(a, p->key, p->node->name, true, p->pod_ip, NULL,
			                      pod_revision(p));
		request_patch(p, WANT_RUNNING);
	}
}

/* ---- informer
 * ------------------------------------------------------------------------------------ */

static bool is_terminal(struct json_object *obj)
{
	const char *phase = kd_json_get_string(obj, "status.phase");
	return phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0);
}

static void on_pod_upsert(struct kd_node_agent *a, struct json_object *obj)
{
	struct kd_node *node = kd_node_lookup(a, kd_json_get_string(obj, "spec.nodeName"));
	if (!node)
		return;
	const char *ns = kd_json_get_string(obj, "metadata.namespace");
	const char *name = kd_json_get_string(obj, "metadata.name");
	const char *uid = kd_json_get_string(obj, "metadata.uid");
	if (!ns || !name)
		return;
	bool deleting = kd_json_get(obj, "metadata.deletionTimestamp") != NULL;
	bool managed = kd_instance_pod_is_managed(obj);
	if (!managed && a->rt_owns_pod)
		return; /* the kubelet's Pod: a runtime that owns Pods runs kubedirect instances
		           only */
	kd_autofree char *key = kd_xasprintf("%s/%s", ns, name);
	if (managed) {
		kd_node_direct_observe(a, key, obj, false);
		if (kd_node_direct_ignore(a, key))
			return; /* a cancelled direct instance whose create landed: being deleted */
	}
	struct kd_pod *p = pod_lookup(a, key);
	bool first_sight = false;
	if (p && p->direct && !p->uid && uid) {
		/* the written-back copy of a direct instance: the same sandbox, now persisted */
		p->uid = kd_xstrdup(uid);
		p->direct = false;
		first_sight = true;
		kd_log_debug("pod %s: direct instance persisted (uid %s)", key, uid);
	}
	if (!p) {
		if (is_terminal(obj) && !deleting)
			return; /* finished before we saw it: nothing to run */
		p = kd_xcalloc(1, sizeof(*p));
		p->a = a;
		p->key = kd_xstrdup(key);
		p->ns = kd_xstrdup(ns);
		p->name = kd_xstrdup(name);
		p->uid = uid ? kd_xstrdup(uid) : NULL;
		p->node = node;
		p->managed = managed;
		set_obj(p, obj);
		kd_strmap_put(&a->pods, p->key, p);
	} else if (uid && p->uid && strcmp(uid, p->uid) != 0) {
		/* same name, new pod: the old one is gone */
		kd_log_info("pod %s: replaced (uid %s -> %s)", key, p->uid, uid);
		p->node = node;
		if (p->sandbox) {
			set_obj(p, obj);
			p->replace = true;
			p->gone = false;
			stop_sandbox(p, 0);
			if (p->sandbox)
				return; /* started again in sandbox_ended */
			p->replace = false;
		}
		reset_for(p, obj);
	} else {
		set_obj(p, obj);
		if (p->replace)
			return;
		if (p->gone) { /* seen again after a relist: serve it */
			p->gone = false;
		}
	}
	if (deleting) {
		if (!p->terminating)
			kd_log_debug("pod %s: terminating", p->key);
		pod_terminate(p);
		return;
	}
	if (is_terminal(obj))
		return;
	if (!node->registered || !kd_informer_synced(a->pods_inf))
		return; /* started by start_pending once synced and registered */
	if (!p->sandbox && !(p->restart_timer && kd_loop_timer_pending(p->restart_timer)))
		pod_start(p);
	else if (first_sight && p->want != WANT_NONE && !p->patched && !p->patch_inflight &&
	         !(p->patch_timer && kd_loop_timer_pending(p->patch_timer)))
		send_patch(p);
	else if (p->ready && !p->patched && !p->patch_inflight && p->want == WANT_RUNNING &&
	         !(p->patch_timer && kd_loop_timer_pending(p->patch_timer)))
		send_patch(p);
}

static void on_add(struct kd_informer *inf, struct json_object *obj, void *arg)
{
	(void)inf;
	on_pod_upsert(arg, obj);
}

static void on_delete(struct kd_informer *inf, struct json_object *obj, void *arg)
{
	(void)inf;
	struct kd_node_agent *a = arg;
	const char *ns = kd_json_get_string(obj, "metadata.namespace");
	const char *name = kd_json_get_string(obj, "metadata.name");
	if (!ns || !name)
		return;
	kd_autofree char *key = kd_xasprintf("%s/%s", ns, name);
	if (kd_instance_pod_is_managed(obj) &&
	    kd_node_lookup(a, kd_json_get_string(obj, "spec.nodeName")))
		kd_node_direct_observe(a, key, obj, true);
	struct kd_pod *p = pod_lookup(a, key);
	if (!p)
		return;
	/* compare with the latest object (during a replacement p->uid is still the old pod's) */
	const char *uid = kd_json_get_string(obj, "metadata.uid");
	const char *cur = kd_json_get_string(p->obj, "metadata.uid");
	if (uid && cur && strcmp(uid, cur) != 0)
		return; /* an older pod of this name */
	kd_log_debug("pod %s: deleted from the API Server", p->key);
	p->gone = true;
	p->replace = false;
	kd_loop_timer_stop(p->restart_timer);
	kd_loop_timer_stop(p->patch_timer);
	kd_loop_timer_stop(p->delete_timer);
	stop_sandbox(p, 0);
	maybe_free(p);
}

/* Starts every pod seen on a registered node (all nodes when node is NULL) that has no sandbox
 * yet. Pods that already have an IP (adopted after a restart) go first, so that their addresses
 * are re-registered with the runtime before any new pod can be handed one of them. */
static void start_pending(struct kd_node_agent *a, struct kd_node *node)
{
	if (!a->pods_inf || !kd_informer_synced(a->pods_inf))
		return;
	/* pod_start neither adds nor removes entries (the runtime delivers no event from inside
	 * start), so the table can be iterated directly */
	for (int pass = 0; pass < 2; pass++) {
		size_t pos = 0;
		for (struct kd_pod *p; (p = kd_strmap_next(&a->pods, &pos));) {
			if ((node && p->node != node) || !p->node->registered || p->sandbox ||
			    p->terminating || p->gone || p->replace || p->final ||
			    is_terminal(p->obj) ||
			    (p->restart_timer && kd_loop_timer_pending(p->restart_timer)))
				continue;
			const char *ip = kd_json_get_string(p->obj, "status.podIP");
			bool has_ip = ip && *ip;
			if (has_ip == (pass == 0))
				pod_start(p); /* never frees p */
		}
	}
}

static void on_synced(struct kd_informer *inf, void *arg)
{
	struct kd_node_agent *a = arg;
	kd_log_info("pod informer synced in %llu ms: %zu bound pods in the cluster, %zu on our "
	            "%" PRIu64 " nodes; running pods",
	            (unsigned long long)(kd_loop_now_ms(a->loop) - a->pods_start_ms),
	            kd_informer_count(inf), a->pods.n, a->cfg->nodes);
	start_pending(a, NULL);
}

void kd_node_pods_node_ready(struct kd_node_agent *a, struct kd_node *node)
{
	start_pending(a, node);
}

int kd_node_pods_init(struct kd_node_agent *a, struct kd_error **err)
{
	struct kd_informer_opts opts = {
	    .res = &kd_k8s_pods,
	    .field_selector = "spec.nodeName!=",
	};
	struct kd_informer_handlers h = {
	    .on_add = on_add,
	    .on_update = kd_informer_update_as_add,
	    .on_delete = on_delete,
	    .on_synced = on_synced,
	    .arg = a,
	};
	if (kd_informer_new(a->k8s, &opts, &h, &a->pods_inf, err) < 0)
		return kd_error_wrap(err, "pod informer");
	return 0;
}

void kd_node_pods_start(struct kd_node_agent *a)
{
	a->pods_start_ms = kd_loop_now_ms(a->loop);
	kd_informer_start(a->pods_inf);
}

void kd_node_pods_count(struct kd_node_agent *a, struct kd_node_pod_counts *out)
{
	memset(out, 0, sizeof(*out));
	size_t pos = 0;
	struct kd_pod *p;
	while ((p = kd_strmap_next(&a->pods, &pos))) {
		if (p->sandbox && (p->stop_requested || p->terminating))
			out->stopping++;
		else if (p->sandbox && p->ready)
			out->ready++;
		else if (p->sandbox)
			out->starting++;
		else
			out->waiting++;
		out->managed += p->managed;
	}
}

void kd_node_pods_fini(struct kd_node_agent *a)
{
	if (a->pods_inf)
		kd_informer_free(a->pods_inf);
	a->pods_inf = NULL;
	size_t pos = 0;
	for (struct kd_pod *p; (p = kd_strmap_next(&a->pods, &pos));)
		pod_free(p);
	kd_strmap_fini(&a->pods);
}

/* ---- direct instances (direct.c) ------------------------------------------------------------ */

int kd_node_pods_direct_start(struct kd_node_agent *a, struct kd_node *node, const char *key,
                              struct json_object *pod, struct kd_error **err)
{
	struct kd_pod *p = pod_lookup(a, key);
	if (p) {
		if (p->gone || p->terminating || p->replace)
			return kd_error_set(err, EBUSY, 0, "pod %s is being deleted on %s", key,
			                    p->node->name);
		if (p->node != node)
			return kd_error_set(err, EEXIST, 0, "pod %s already runs on node %s", key,
			                    p->node->name);
		return 0; /* duplicate op, or the API pod arrived first: one sandbox per key */
	}
	const char *ns = kd_json_get_string(pod, "metadata.namespace");
	const char *name = kd_json_get_string(pod, "metadata.name");
	if (!ns || !name)
		return kd_error_set(err, EINVAL, 0, "pod %s: no namespace/name", key);
	p = kd_xcalloc(1, sizeof(*p));
	p->a = a;
	p->key = kd_xstrdup(key);
	p->ns = kd_xstrdup(ns);
	p->name = kd_xstrdup(name);
	p->node = node;
	p->direct = true;
	p->managed = true;
	set_obj(p, pod);
	kd_strmap_put(&a->pods, p->key, p);
	pod_start(p);
	return 0;
}

int kd_node_pods_direct_stop(struct kd_node_agent *a, const char *key, const char *reason)
{
	struct kd_pod *p = pod_lookup(a, key);
	if (!p)
		return -ENOENT;
	kd_loop_timer_stop(p->restart_timer);
	if (!p->uid) {
		/* ephemeral: no API object; the entry goes once its sandbox has ended */
		kd_log_debug("pod %s: direct instance cancelled (%s)", key, reason ? reason : "-");
		p->gone = true;
		kd_loop_timer_stop(p->patch_timer);
		stop_sandbox(p, 0);
		if (!p->sandbox)
			kd_node_direct_report_gone(a, key, reason ? reason : "Cancelled");
		maybe_free(p);
		return 0;
	}
	/* persisted: stop at once, then DELETE (grace 0, uid precondition) as after a graceful
	 * termination; the autoscaler's own graceful DELETE may come first, either is fine */
	if (!p->terminating)
		kd_log_debug("pod %s: direct delete of a persisted instance (%s)", key,
		             reason ? reason : "-");
	p->terminating = true;
	stop_sandbox(p, 0);
	if (!p->sandbox)
		send_delete(p);
	return 1;
}

int kd_node_pods_state(struct kd_node_agent *a, const char *key, const char *node)
{
	struct kd_pod *p = pod_lookup(a, key);
	if (!p)
		return 0;
	int st = KD_NODE_POD_EXISTS;
	if (p->uid)
		st |= KD_NODE_POD_PERSISTED;
	if (p->gone || p->terminating || p->replace)
		st |= KD_NODE_POD_STOPPING;
	if (node && strcmp(node, p->node->name) == 0)
		st |= KD_NODE_POD_SAME_NODE;
	return st;
}
