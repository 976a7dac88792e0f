/* plugins/runtime-kubelet: a runtime that hands each instance to the node's real kubelet. start()
 * POSTs the bound Pod it is given (kd_sandbox_spec.pod: the Pod kd-node built with
 * kd_instance_build_pod, spec.nodeName = the node) to the API Server; the kubelet of that node
 * runs it and writes its status; the plugin watches the kubedirect instances of the node
 * (informer: fieldSelector spec.nodeName=<node>, labelSelector kubedirect.dev/managed=true) and
 * reports STARTED when the Pod has an IP and READY the moment condition Ready is True. stop()
 * DELETEs the Pod (gracePeriodSeconds from grace_ms, uid precondition) and reports EXITED when the
 * watch shows it gone. The runtime owns the Pod (KD_RUNTIME_CAP_OWNS_POD): its host writes no
 * Pod and no Pod status of its own (kd-node --attach-node).
 *
 * Decisions:
 *  - Own Kubernetes client (asynchronous, HTTP/2, `qps`/`burst`) on the host's loop, with the
 *    connection settings of the host's client (kd-node's --kubeconfig) unless `kubeconfig` names
 *    another file (no host client either: in-cluster). Made and driven through the host table's
 *    Kubernetes services (kd_host.k8s_new ...: the host's libkd, so nothing of this .so stays in
 *    the loop), and its own, so that fini completes its calls while the plugin is loaded.
 *  - One informer per node the host starts instances on, created with the first start there.
 *  - Adoption (rk_pod.h's rk_adopt_decide): a start finds the instance's Pod in the watch cache,
 *    or learns of it from a 409 AlreadyExists (then GETs it), or, when start() is given a uid
 *    (a written-back instance: kd-node restarted), GETs it instead of creating anything. A Pod of
 *    the name that is not a kubedirect instance, is bound to another node, has another uid than
 *    the one asked for, or has finished, is never touched: FAILED (reason AlreadyExists). An
 *    older incarnation being deleted is waited for, then the Pod is created.
 *  - Readiness (rk_events_for): STARTED once status.podIP is set, READY on Ready=True (both from
 *    one observation when the first one seen is ready, STARTED first); phase Succeeded ends the
 *    sandbox with EXITED, Failed with FAILED (the kubelet restarts crashed containers itself, a
 *    CrashLoopBackOff is no event); a Pod deleted by someone else ends it with EXITED "Deleted".
 *  - A create the API Server refuses for good (4xx other than 409 AlreadyExists/Conflict and
 *    429) is FAILED "CreateFailed" with its message; transport errors, 5xx and 429 are retried
 *    with jittered backoff, as are failed GETs and DELETEs.
 *  - stop: a Pod whose create is in flight is deleted once the create answers; one never created
 *    ends at once (EXITED on the next loop iteration). A Pod still there `stop-timeout` after
 *    grace_ms (a dead kubelet never confirms) is reported EXITED "StopTimeout" anyway: the host
 *    may force the deletion. A start of a key whose previous sandbox is still stopping waits for
 *    that one's EXITED before it creates anything (the ABI's order, and no 409 on the old Pod).
 *  - fini leaves every Pod as it is (they keep running under the kubelet; a restarted host adopts
 *    them) and delivers no event.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd/common.h"
#include "kd/config.h"
#include "kd/json.h"
#include "kd/plugin.h"
#include "kd/stage.h"
#include "kd/strmap.h"
#include "kd/watch.h"
#include "kd/wbcache.h"

#include "rk_pod.h"

#define RK_USER_AGENT   "kd-runtime-kubelet/0.1.0"
#define BACKOFF_BASE_MS 200
#define BACKOFF_CAP_MS  10000

struct rk_config {
	char *kubeconfig;
	double qps;
	uint64_t burst;
	uint64_t stop_timeout_ms;
};

static const struct kd_config_option rk_options[] = {
    KD_OPT_STRING("kubeconfig", struct rk_config, kubeconfig, .metavar = "FILE",
                  .help = "kubeconfig of the plugin's API client (default: the host's "
                          "connection settings, e.g. kd-node's --kubeconfig; else in-cluster)"),
    KD_OPT_DOUBLE("qps", struct rk_config, qps, .def = "0", .has_min = true, .min = 0,
                  .help = "client-side QPS of Pod creates, reads and deletes (0: unlimited)"),
    KD_OPT_UINT("burst", struct rk_config, burst, .def = "1000", .has_min = true, .min = 1,
                .has_max = true, .max = 1000000, .help = "burst of those requests"),
    KD_OPT_DURATION("stop-timeout", struct rk_config, stop_timeout_ms, .def = "60s",
                    .has_min = true, .min = 1000, .has_max = true, .max = 3600000,
                    .help = "how long after its grace period a stopped Pod may still be in the "
                            "API before EXITED is reported anyway"),
    KD_CONFIG_END,
};

struct rk;

enum sb_step {
	SB_WAIT_PRED = 0, /* the key's previous sandbox is still stopping */
	SB_INIT,          /* look at the watch cache, then create or look up */
	SB_CREATING,      /* POST (in flight, or again after a backoff) */
	SB_LOOKUP,        /* GET (in flight, or again after a backoff) */
	SB_WAIT_GONE,     /* an older Pod of the name is terminating */
	SB_TRACKING,      /* our Pod (uid known): events from the watch */
};

struct sandbox {
	struct rk *rk;
	char *key, *ns, *name, *node;
	char *uid;                /* of our Pod, once known (or given to start) */
	struct json_object *body; /* the Pod to create (owned) */
	enum sb_step step;
	enum kd_sandbox_phase phase;
	char ip[KD_IP_STRLEN];
	uint64_t created_ms, ready_ms;
	kd_runtime_event_cb cb;
	void *cb_arg;
	bool stopping;    /* stop() was called: out of `live`, in `dying` or ending */
	bool delete_sent; /* our DELETE was accepted: waiting for the watch */
	bool inflight;    /* one API call at a time per sandbox */
	bool dead;        /* out of every table and ended: freed once no call is in flight */
	uint32_t grace_ms;
	unsigned attempt;
	struct kd_timer *timer;      /* next step / retry */
	struct kd_timer *stop_timer; /* stop deadline */
	struct sandbox *pred, *succ; /* previous (stopping) / next sandbox of the key */
};

struct rk_watch {
	struct rk *rk;
	char *node;
	struct kd_informer *inf;
};

struct rk {
	const struct kd_host *host;
	const struct rk_config *cfg;
	struct kd_k8s_config *kcfg; /* the client's settings when not the host's (owned) */
	struct kd_k8s *k8s;
	struct kd_strmap live;    /* key -> struct sandbox (started, not stopped) */
	struct kd_strmap dying;   /* key -> struct sandbox (stopped; its Pod may still exist) */
	struct kd_strmap watches; /* node -> struct rk_watch */
	bool closing;
	uint64_t n_creates, n_adopted, n_deletes, n_refused;
};

static int rk_err(const struct rk *rk, struct kd_error **err, int errnum, const char *fmt, ...)
    KD_PRINTF(4, 5);
static int rk_err(const struct rk *rk, struct kd_error **err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = kd_xvasprintf(fmt, ap);
	va_end(ap);
	rk->host->error_set(err, errnum, 0, "%s", msg);
	free(msg);
	return -errnum;
}

#define LOG(rk, level, ...) (rk)->host->log(level, "runtime-kubelet: " __VA_ARGS__)

static void sb_step(struct sandbox *sb);
static void stop_step(struct sandbox *sb);

/* ---- sandboxes ------------------------------------------------------------------------------ */

static void sb_free(struct sandbox *sb)
{
	const struct kd_host *h = sb->rk->host;
	h->timer_free(sb->timer);
	h->timer_free(sb->stop_timer);
	if (sb->body)
		json_object_put(sb->body);
	free(sb->key);
	free(sb->ns);
	free(sb->name);
	free(sb->node);
	free(sb->uid);
	free(sb);
}

/* Frees a dead sandbox once nothing refers to it. */
static void sb_release(struct sandbox *sb)
{
	if (sb->dead && !sb->inflight)
		sb_free(sb);
}

static void sb_kick(struct sandbox *sb, uint64_t ms)
{
	sb->rk->host->timer_stop(sb->timer);
	sb->rk->host->timer_start(sb->timer, ms);
}

static void sb_retry(struct sandbox *sb, const char *what, const struct kd_error *err)
{
	uint64_t ms = kd_backoff_ms(sb->attempt++, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
	LOG(sb->rk, KD_LOG_WARN, "%s %s: %s; retrying in %llu ms", what, sb->key, kd_error_msg(err),
	    (unsigned long long)ms);
	sb_kick(sb, ms);
}

static void set_uid(struct sandbox *sb, const char *uid)
{
	if (!uid || (sb->uid && strcmp(sb->uid, uid) == 0))
		return;
	free(sb->uid);
	sb->uid = kd_xstrdup(uid);
}

/* The watch of a node (created and started on first use). */
static struct rk_watch *watch_for(struct rk *rk, const char *node, struct kd_error **err);

/* The watch cache's copy of the sandbox's Pod (borrowed), or NULL. */
static struct json_object *sb_cached(const struct sandbox *sb)
{
	const struct rk_watch *w = kd_strmap_get(&sb->rk->watches, sb->node);
	return w ? sb->rk->host->informer_get(w->inf, sb->ns, sb->name) : NULL;
}

static void emit(struct sandbox *sb, enum kd_runtime_event_type type, const char *reason,
                 const char *message, int exit_code)
{
	if (sb->rk->closing || !sb->cb)
		return;
	struct kd_runtime_event ev = {
	    .type = type,
	    .key = sb->key,
	    .uid = sb->uid,
	    .pod_ip = sb->ip[0] ? sb->ip : NULL,
	    .reason = reason,
	    .message = message,
	    .exit_code = exit_code,
	    .at_ms =
	        type == KD_RUNTIME_READY ? sb->ready_ms : sb->rk->host->now_ms(sb->rk->host->loop),
	};
	sb->cb(&ev, sb->cb_arg);
}

/* Ends the sandbox: out of every table, its successor may go on (after this event), then the
 * final event. sb is freed here unless a call is still in flight. */
static void sb_finish(struct sandbox *sb, enum kd_runtime_event_type type, const char *reason,
                      const char *message, int exit_code)
{
	struct rk *rk = sb->rk;
	if (sb->dead)
		return;
	if (kd_strmap_get(&rk->live, sb->key) == sb)
		kd_strmap_del(&rk->live, sb->key);
	if (kd_strmap_get(&rk->dying, sb->key) == sb)
		kd_strmap_del(&rk->dying, sb->key);
	sb->dead = true;
	rk->host->timer_stop(sb->timer);
	rk->host->timer_stop(sb->stop_timer);
	if (sb->pred) {
		sb->pred->succ = NULL;
		sb->pred = NULL;
	}
	if (sb->succ) { /* armed now, so its events follow this one */
		sb->succ->pred = NULL;
		sb->succ->step = SB_INIT;
		sb_kick(sb->succ, 0);
		sb->succ = NULL;
	}
	LOG(rk, KD_LOG_DEBUG, "%s: %s (%s%s%s)", sb->key,
	    type == KD_RUNTIME_FAILED ? "failed" : "exited", reason ? reason : "-",
	    message ? ": " : "", message ? message : "");
	emit(sb, type, reason, message, exit_code);
	sb_release(sb);
}

static void sb_fail(struct sandbox *sb, const char *reason, const char *fmt, ...) KD_PRINTF(3, 4);
static void sb_fail(struct sandbox *sb, const char *reason, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kd_autofree char *msg = kd_xvasprintf(fmt, ap);
	va_end(ap);
	LOG(sb->rk, KD_LOG_WARN, "%s: %s", sb->key, msg);
	sb_finish(sb, KD_RUNTIME_FAILED, reason, msg, 0);
}

/* Applies an observation of our Pod (borrowed) to a live sandbox: its IP, then the events it
 * calls for. */
static void sb_apply(struct sandbox *sb, struct json_object *pod)
{
	struct rk_pod_state st;
	if (sb->dead || sb->stopping || rk_pod_state_read(pod, &st) < 0)
		return;
	if (!st.uid || !sb->uid || strcmp(st.uid, sb->uid) != 0)
		return; /* another incarnation of the name */
	if (st.ip)
		snprintf(sb->ip, sizeof(sb->ip), "%s", st.ip);
	struct rk_events evs;
	rk_events_for(sb->phase, &st, &evs);
	if (evs.final) {
		sb_finish(sb, evs.type[0], evs.reason, st.message, st.exit_code);
		return;
	}
	for (size_t i = 0; i < evs.n; i++) {
		/* the previous event's callback may have stopped it */
		if (sb->dead || sb->stopping)
			return;
		if (evs.type[i] == KD_RUNTIME_STARTED) {
			sb->phase = KD_SANDBOX_STARTED;
		} else {
			sb->phase = KD_SANDBOX_READY;
			sb->ready_ms = sb->rk->host->now_ms(sb->rk->host->loop);
			LOG(sb->rk, KD_LOG_DEBUG, "%s: ready at %s", sb->key, sb->ip);
		}
		emit(sb, evs.type[i], NULL, NULL, 0);
	}
}

/* Our Pod (uid now known) is tracked from here on: the freshest copy decides. */
static void sb_track(struct sandbox *sb, struct json_object *seen)
{
	sb->step = SB_TRACKING;
	sb->attempt = 0;
	struct json_object *cached = sb_cached(sb);
	const char *cuid = kd_json_get_string(cached, "metadata.uid");
	if (sb->stopping) {
		stop_step(sb);
		return;
	}
	sb_apply(sb, cuid && strcmp(cuid, sb->uid) == 0 ? cached : seen);
}

/* What start() does with an existing Pod of the name (borrowed): 0 adopted or waiting,
 * -EEXIST refused (the sandbox has failed). */
static int sb_existing(struct sandbox *sb, struct json_object *pod)
{
	struct rk_pod_state st;
	if (rk_pod_state_read(pod, &st) < 0) {
		sb_fail(sb, "AlreadyExists", "pod %s: unreadable existing object", sb->key);
		return -EEXIST;
	}
	enum rk_adopt dec = rk_adopt_decide(&st, sb->node, sb->uid);
	switch (dec) {
	case RK_ADOPT:
		set_uid(sb, st.uid);
		sb->rk->n_adopted++;
		LOG(sb->rk, KD_LOG_DEBUG, "%s: adopted its Pod (uid %s)", sb->key, sb->uid);
		sb_track(sb, pod);
		return 0;
	case RK_ADOPT_WAIT_GONE:
		LOG(sb->rk, KD_LOG_DEBUG,
		    "%s: an older Pod of this name (uid %s) is terminating; "
		    "creating once it is gone",
		    sb->key, st.uid ? st.uid : "?");
		sb->step = SB_WAIT_GONE;
		if (sb->stopping)
			stop_step(sb);
		return 0;
	case RK_ADOPT_FOREIGN:
	case RK_ADOPT_OTHER_NODE:
	case RK_ADOPT_OTHER_UID:
	case RK_ADOPT_FINISHED:
		break;
	}
	if (sb->stopping) { /* nothing of ours to delete */
		sb_finish(sb, KD_RUNTIME_EXITED, "Stopped", "sandbox stopped", 0);
		return -EEXIST;
	}
	sb->rk->n_refused++;
	sb_fail(sb, "AlreadyExists",
	        "pod %s already exists and is not this instance's (%s: node %s, uid %s%s%s)",
	        sb->key, rk_adopt_name(dec), st.node ? st.node : "none", st.uid ? st.uid : "none",
	        sb->uid ? ", wanted " : "", sb->uid ? sb->uid : "");
	return -EEXIST;
}

/* ---- API calls ------------------------------------------------------------------------------ */

static bool transient(const struct kd_error *err)
{
	enum kd_wb_result r = kd_wb_classify_error(err);
	return r == KD_WB_RETRY || r == KD_WB_CONFLICT;
}

static void on_create_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	struct sandbox *sb = arg;
	sb->inflight = false;
	if (sb->dead || (err && err->errnum == ECANCELED)) {
		sb_release(sb);
		return;
	}
	if (!err) {
		sb->rk->n_creates++;
		struct json_object *created = resp ? resp->body : NULL;
		const char *uid = kd_json_get_string(created, "metadata.uid");
		if (!uid) {
			sb_fail(sb, "CreateFailed", "create pod %s: the answer has no metadata.uid",
			        sb->key);
			return;
		}
		set_uid(sb, uid);
		LOG(sb->rk, KD_LOG_DEBUG, "%s: created on %s (uid %s)", sb->key, sb->node, sb->uid);
		sb_track(sb, created);
		return;
	}
	if (err->errnum == EEXIST) { /* look at what is there */
		sb->step = SB_LOOKUP;
		sb_kick(sb, 0);
		return;
	}
	if (sb->stopping) { /* nothing was created */
		sb_finish(sb, KD_RUNTIME_EXITED, "Stopped",
		          "sandbox stopped before its Pod was made", 0);
		return;
	}
	if (transient(err)) {
		sb->step = SB_INIT; /* the cache may know it by then */
		sb_retry(sb, "create pod", err);
		return;
	}
	sb_fail(sb, "CreateFailed", "%s", kd_error_msg(err));
}

static void on_get_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	struct sandbox *sb = arg;
	sb->inflight = false;
	if (sb->dead || (err && err->errnum == ECANCELED)) {
		sb_release(sb);
		return;
	}
	if (!err) {
		sb_existing(sb, resp->body);
		return;
	}
	if (err->errnum == ENOENT) {
		if (sb->stopping) {
			sb_finish(sb, KD_RUNTIME_EXITED, "Stopped", "sandbox stopped", 0);
		} else if (sb->uid) {
			sb_fail(sb, "NotFound", "pod %s (uid %s) no longer exists", sb->key,
			        sb->uid);
		} else { /* it went away after our create's 409: create it now */
			sb->step = SB_CREATING;
			sb_kick(sb, 0);
		}
		return;
	}
	sb_retry(sb, "get pod", err);
}

static void on_delete_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	(void)resp;
	struct sandbox *sb = arg;
	sb->inflight = false;
	if (sb->dead || (err && err->errnum == ECANCELED)) {
		sb_release(sb);
		return;
	}
	if (err && (err->errnum == ENOENT || err->errnum == EBUSY)) {
		/* gone, or the name now belongs to another uid (precondition failed) */
		sb_finish(sb, KD_RUNTIME_EXITED, "Stopped", "sandbox stopped", 0);
		return;
	}
	if (err) {
		sb_retry(sb, "delete pod", err);
		return;
	}
	sb->rk->n_deletes++;
	sb->delete_sent = true; /* the watch's DELETED ends it */
}

static void sb_submit(struct sandbox *sb, const struct kd_k8s_request *req, kd_k8s_done_cb cb,
                      const char *what)
{
	struct kd_error *err = NULL;
	sb->inflight = true;
	if (sb->rk->host->k8s_submit(sb->rk->k8s, req, cb, sb, &err) < 0) {
		sb->inflight = false;
		sb_retry(sb, what, err);
		kd_error_free(err);
	}
}

static void do_create(struct sandbox *sb)
{
	struct kd_k8s_request req = {
	    .verb = KD_K8S_CREATE, .res = &kd_k8s_pods, .ns = sb->ns, .body = sb->body};
	sb_submit(sb, &req, on_create_done, "create pod");
}

static void do_get(struct sandbox *sb)
{
	struct kd_k8s_request req = {
	    .verb = KD_K8S_GET, .res = &kd_k8s_pods, .ns = sb->ns, .name = sb->name};
	sb_submit(sb, &req, on_get_done, "get pod");
}

static void do_delete(struct sandbox *sb)
{
	kd_autojson struct json_object *opts = rk_delete_options(sb->grace_ms, sb->uid);
	struct kd_k8s_request req = {.verb = KD_K8S_DELETE,
	                             .res = &kd_k8s_pods,
	                             .ns = sb->ns,
	                             .name = sb->name,
	                             .body = opts};
	LOG(sb->rk, KD_LOG_DEBUG, "%s: deleting its Pod (uid %s, grace %u ms)", sb->key, sb->uid,
	    sb->grace_ms);
	sb_submit(sb, &req, on_delete_done, "delete pod");
}

/* ---- state machine -------------------------------------------------------------------------- */

/* A stopped sandbox: delete what exists, end when it is gone (or nothing was made). */
static void stop_step(struct sandbox *sb)
{
	if (sb->dead || sb->inflight)
		return; /* the call's answer comes back here */
	switch (sb->step) {
	case SB_WAIT_PRED:
	case SB_INIT:
	case SB_WAIT_GONE:
		/* nothing made (a uid given to start names a Pod we were asked to run: delete) */
		if (sb->step == SB_INIT && sb->uid) {
			sb->step = SB_TRACKING;
			break;
		}
		sb_finish(sb, KD_RUNTIME_EXITED, "Stopped", "sandbox stopped", 0);
		return;
	case SB_CREATING:
		/* no create in flight (backing off): nothing was made */
		sb_finish(sb, KD_RUNTIME_EXITED, "Stopped",
		          "sandbox stopped before its Pod was made", 0);
		return;
	case SB_LOOKUP:
		do_get(sb); /* what is there decides (ours: delete it) */
		return;
	case SB_TRACKING:
		break;
	}
	if (!sb->delete_sent)
		do_delete(sb);
	/* else the watch's DELETED of our uid ends it (on_pod), or the stop timer */
}

static void sb_step(struct sandbox *sb)
{
	if (sb->dead)
		return;
	if (sb->stopping) {
		stop_step(sb);
		return;
	}
	if (sb->inflight)
		return;
	switch (sb->step) {
	case SB_WAIT_PRED:
	case SB_WAIT_GONE:
	case SB_TRACKING:
		return; /* an event moves it on */
	case SB_INIT: {
		struct json_object *cached = sb_cached(sb);
		if (cached) {
			sb_existing(sb, cached);
			return;
		}
		sb->step = sb->uid ? SB_LOOKUP : SB_CREATING;
		break;
	}
	case SB_CREATING:
	case SB_LOOKUP:
		break;
	}
	if (sb->step == SB_CREATING)
		do_create(sb);
	else
		do_get(sb);
}

static void on_sb_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop, (void)t;
	sb_step(arg);
}

static void on_stop_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop, (void)t;
	struct sandbox *sb = arg;
	LOG(sb->rk, KD_LOG_WARN,
	    "%s: its Pod (uid %s) is still in the API %llu ms after the stop; reporting it "
	    "exited",
	    sb->key, sb->uid ? sb->uid : "?",
	    (unsigned long long)(sb->grace_ms + sb->rk->cfg->stop_timeout_ms));
	sb_finish(sb, KD_RUNTIME_EXITED, "StopTimeout",
	          "the Pod was not deleted within the grace period and stop-timeout", 0);
}

/* ---- the watch ------------------------------------------------------------------------------ */

/* A watch event of one of the node's instance Pods (borrowed). */
static void on_pod(struct rk *rk, struct json_object *pod, bool deleted)
{
	const char *ns = kd_json_get_string(pod, "metadata.namespace");
	const char *name = kd_json_get_string(pod, "metadata.name");
	const char *uid = kd_json_get_string(pod, "metadata.uid");
	if (!ns || !name)
		return;
	kd_autofree char *key = kd_xasprintf("%s/%s", ns, name);
	struct sandbox *old = kd_strmap_get(&rk->dying, key);
	if (old && deleted && old->uid && uid && strcmp(old->uid, uid) == 0)
		/* gone (a DELETE of ours still in flight completes on the dead sandbox) */
		sb_finish(old, KD_RUNTIME_EXITED, "Stopped", "sandbox stopped", 0);
	struct sandbox *sb = kd_strmap_get(&rk->live, key);
	if (!sb)
		return;
	if (sb->step == SB_WAIT_GONE) { /* decided again once the cache has this event */
		sb->step = SB_INIT;
		sb_kick(sb, 0);
		return;
	}
	if (sb->step != SB_TRACKING || !sb->uid || !uid || strcmp(uid, sb->uid) != 0)
		return;
	if (deleted)
		sb_finish(sb, KD_RUNTIME_EXITED, "Deleted",
		          "its Pod was deleted from the API Server", 0);
	else
		sb_apply(sb, pod);
}

static void on_watch_add(struct kd_informer *inf, struct json_object *obj, void *arg)
{
	(void)inf;
	struct rk_watch *w = arg;
	on_pod(w->rk, obj, false);
}

static void on_watch_update(struct kd_informer *inf, struct json_object *old,
                            struct json_object *obj, void *arg)
{
	(void)inf, (void)old;
	struct rk_watch *w = arg;
	on_pod(w->rk, obj, false);
}

static void on_watch_delete(struct kd_informer *inf, struct json_object *obj, void *arg)
{
	(void)inf;
	struct rk_watch *w = arg;
	on_pod(w->rk, obj, true);
}

static void on_watch_synced(struct kd_informer *inf, void *arg)
{
	struct rk_watch *w = arg;
	LOG(w->rk, KD_LOG_INFO, "watching the kubedirect instances of node %s: %zu Pods", w->node,
	    w->rk->host->informer_count(inf));
}

static void watch_free(struct rk_watch *w)
{
	if (w->inf)
		w->rk->host->informer_free(w->inf);
	free(w->node);
	free(w);
}

static struct rk_watch *watch_for(struct rk *rk, const char *node, struct kd_error **err)
{
	struct rk_watch *w = kd_strmap_get(&rk->watches, node);
	if (w)
		return w;
	w = kd_xcalloc(1, sizeof(*w));
	w->rk = rk;
	w->node = kd_xstrdup(node);
	kd_autofree char *fs = rk_field_selector(node);
	struct kd_informer_opts opts = {
	    .res = &kd_k8s_pods, .label_selector = RK_LABEL_SELECTOR, .field_selector = fs};
	struct kd_informer_handlers h = {
	    .on_add = on_watch_add,
	    .on_update = on_watch_update,
	    .on_delete = on_watch_delete,
	    .on_synced = on_watch_synced,
	    .arg = w,
	};
	struct kd_error *e = NULL;
	if (rk->host->informer_new(rk->k8s, &opts, &h, &w->inf, &e) < 0 ||
	    rk->host->informer_start(w->inf) < 0) {
		rk_err(rk, err, e ? e->errnum : EINVAL, "watch of node %s: %s", node,
		       e ? kd_error_msg(e) : "cannot start");
		kd_error_free(e);
		watch_free(w);
		return NULL;
	}
	kd_strmap_put(&rk->watches, w->node, w);
	return w;
}

/* ---- ops ------------------------------------------------------------------------------------ */

static int rk_start(void *state, const struct kd_sandbox_spec *spec, kd_runtime_event_cb cb,
                    void *cb_arg, struct kd_error **err)
{
	struct rk *rk = state;
	if (!spec || !spec->key || !*spec->key || !spec->ns || !spec->name)
		return rk_err(rk, err, EINVAL, "runtime-kubelet: start: spec without key/ns/name");
	const char *uid = spec->uid && *spec->uid ? spec->uid : NULL;
	struct sandbox *sb = kd_strmap_get(&rk->live, spec->key);
	if (sb) {
		if (sb->uid && uid && strcmp(sb->uid, uid) != 0)
			return rk_err(rk, err, EBUSY,
			              "runtime-kubelet: start %s: a sandbox with uid %s already "
			              "exists (asked for uid %s)",
			              spec->key, sb->uid, uid);
		if (!sb->uid && uid && sb->step != SB_CREATING && sb->step != SB_LOOKUP)
			set_uid(sb, uid);
		return 0; /* idempotent */
	}
	if (!spec->node || !*spec->node)
		return rk_err(rk, err, EINVAL, "runtime-kubelet: start %s: no node", spec->key);
	if (!spec->pod)
		return rk_err(rk, err, EINVAL,
		              "runtime-kubelet: start %s: the host gave no Pod object to hand to "
		              "the kubelet",
		              spec->key);
	struct json_object *body = rk_pod_for_create(spec->pod, spec->node);
	if (!body)
		return rk_err(rk, err, EINVAL, "runtime-kubelet: start %s: the Pod has no spec",
		              spec->key);
	struct kd_error *e = NULL;
	if (!watch_for(rk, spec->node, &e)) {
		json_object_put(body);
		int rc = rk_err(rk, err, e->errnum, "runtime-kubelet: start %s: %s", spec->key,
		                kd_error_msg(e));
		kd_error_free(e);
		return rc;
	}
	sb = kd_xcalloc(1, sizeof(*sb));
	sb->rk = rk;
	sb->key = kd_xstrdup(spec->key);
	sb->ns = kd_xstrdup(spec->ns);
	sb->name = kd_xstrdup(spec->name);
	sb->node = kd_xstrdup(spec->node);
	sb->uid = uid ? kd_xstrdup(uid) : NULL;
	sb->body = body;
	sb->phase = KD_SANDBOX_PENDING;
	sb->created_ms = rk->host->now_ms(rk->host->loop);
	sb->cb = cb;
	sb->cb_arg = cb_arg;
	sb->timer = rk->host->timer_new(rk->host->loop, on_sb_timer, sb);
	sb->stop_timer = rk->host->timer_new(rk->host->loop, on_stop_timer, sb);
	struct sandbox *pred = kd_strmap_get(&rk->dying, sb->key);
	if (pred && !pred->succ) {
		/* its EXITED first, and its Pod gone before ours is made */
		sb->step = SB_WAIT_PRED;
		sb->pred = pred;
		pred->succ = sb;
	} else {
		sb->step = SB_INIT;
		sb_kick(sb, 0); /* events never come from inside start */
	}
	kd_strmap_put(&rk->live, sb->key, sb);
	return 0;
}

static int rk_stop(void *state, const char *key, uint32_t grace_ms, struct kd_error **err)
{
	struct rk *rk = state;
	if (!key)
		return rk_err(rk, err, EINVAL, "runtime-kubelet: stop: no key");
	struct sandbox *sb = kd_strmap_del(&rk->live, key);
	if (!sb)
		return rk_err(rk, err, ENOENT, "runtime-kubelet: stop %s: no such sandbox", key);
	sb->stopping = true;
	sb->grace_ms = grace_ms;
	if (sb->pred) { /* never made anything: ends on its own */
		sb->pred->succ = NULL;
		sb->pred = NULL;
	} else if (!kd_strmap_get(&rk->dying, sb->key)) {
		kd_strmap_put(&rk->dying, sb->key, sb);
	}
	rk->host->timer_start(sb->stop_timer, (uint64_t)grace_ms + rk->cfg->stop_timeout_ms);
	sb_kick(sb, 0); /* EXITED never comes from inside stop */
	return 0;
}

static int rk_status(void *state, const char *key, struct kd_sandbox_status *out)
{
	struct rk *rk = state;
	if (!key)
		return -EINVAL;
	const struct sandbox *sb = kd_strmap_get(&rk->live, key);
	if (!sb)
		return -ENOENT;
	kd_sandbox_status_set(out, sb->phase, sb->ip, sb->uid, sb->created_ms, sb->ready_ms);
	return 0;
}

static const struct kd_runtime_ops rk_ops = {
    .struct_size = sizeof(struct kd_runtime_ops),
    .start = rk_start,
    .stop = rk_stop,
    .status = rk_status,
    .caps = KD_RUNTIME_CAP_OWNS_POD,
};

/* ---- lifecycle ------------------------------------------------------------------------------ */

static void kill_all(struct kd_strmap *m)
{
	size_t pos = 0;
	for (struct sandbox *sb; (sb = kd_strmap_next(m, &pos));) {
		sb->dead = true;
		sb->pred = sb->succ = NULL;
		sb_release(sb); /* freed now, or when kd_k8s_free completes its call */
	}
	kd_strmap_fini(m);
}

static void rk_fini(void *state)
{
	struct rk *rk = state;
	if (!rk)
		return;
	rk->closing = true;
	bool busy = rk->n_creates || rk->n_adopted || rk->n_deletes || rk->n_refused || rk->live.n;
	LOG(rk, busy ? KD_LOG_INFO : KD_LOG_DEBUG,
	    "%llu Pods created, %llu adopted, %llu deleted, %llu refused; %zu left running",
	    (unsigned long long)rk->n_creates, (unsigned long long)rk->n_adopted,
	    (unsigned long long)rk->n_deletes, (unsigned long long)rk->n_refused, rk->live.n);
	size_t pos = 0;
	for (struct rk_watch *w; (w = kd_strmap_next(&rk->watches, &pos));)
		watch_free(w);
	kd_strmap_fini(&rk->watches);
	kill_all(&rk->live);
	kill_all(&rk->dying);
	rk->host->k8s_free(rk->k8s); /* completes the calls in flight (ECANCELED): frees their
	                              * sandboxes */
	kd_k8s_config_free(rk->kcfg);
	free(rk);
}

static int rk_init(const struct kd_host *host, const void *config, void **state,
                   struct kd_error **err)
{
	const struct rk_config *cfg = config;
	if (!KD_HAS_MEMBER(host, struct kd_host, informer_count) || !host->k8s_new) {
		host->error_set(err, ENOTSUP, 0,
		                "the host (%s) offers no Kubernetes client services (struct "
		                "kd_host.k8s_new ...): it is older than this plugin",
		                host->component ? host->component : "?");
		return -ENOTSUP;
	}
	struct rk *rk = kd_xcalloc(1, sizeof(*rk));
	rk->host = host;
	rk->cfg = cfg;
	struct kd_error *e = NULL;
	const struct kd_k8s_config *kcfg = NULL;
	int rc = 0;
	if (cfg->kubeconfig && *cfg->kubeconfig)
		rc = kd_k8s_config_from_kubeconfig(cfg->kubeconfig, NULL, &rk->kcfg, &e);
	else if (host->k8s)
		kcfg = host->k8s_config(host->k8s);
	else
		rc = kd_k8s_config_auto(&rk->kcfg, &e);
	if (!kcfg)
		kcfg = rk->kcfg;
	if (rc >= 0 && !kcfg) {
		rc = -EINVAL;
		host->error_set(&e, EINVAL, 0, "no connection settings");
	}
	struct kd_k8s_opts opts = {
	    .user_agent = RK_USER_AGENT,
	    .qps = cfg->qps,
	    .burst = (unsigned)cfg->burst,
	    .http2 = true, /* a burst of creates multiplexed on a few connections */
	};
	if (rc >= 0)
		rc = host->k8s_new(kcfg, host->loop, &opts, &rk->k8s, &e);
	if (rc < 0 || !kcfg) {
		host->error_set(err, e ? e->errnum : EINVAL, 0, "Kubernetes client: %s",
		                kd_error_msg(e));
		kd_error_free(e);
		kd_k8s_config_free(rk->kcfg);
		free(rk);
		return rc < 0 ? rc : -EINVAL;
	}
	LOG(rk, KD_LOG_DEBUG, "API Server %s, qps %g, burst %llu, stop-timeout %llu ms",
	    kcfg->server, cfg->qps, (unsigned long long)cfg->burst,
	    (unsigned long long)cfg->stop_timeout_ms);
	*state = rk;
	return 0;
}

KD_PLUGIN_EXPORT("runtime-kubelet", KD_PLUGIN_RUNTIME,
                 .description = "hands each instance's bound Pod to the node's real kubelet "
                                "(creates and deletes it in the API Server) and reports its "
                                "readiness from a watch",
                 .options = rk_options, .config_size = sizeof(struct rk_config), .init = rk_init,
                 .fini = rk_fini, .ops = &rk_ops)
