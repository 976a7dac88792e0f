/* autoscaler-shim/pa.c: PodAutoscaler reconciliation of kd-autoscaler (see autoscaler.h).
 *
 * Write-back (one kd_wbcache over one kd_wbk8s adapter, rate limited by --write-qps):
 *   "svc:<ns>/<rev>"          public Service (POST; merge patch on change)
 *   "svc:<ns>/<rev>-private"  private Service
 *   "ep:<ns>/<rev>"           public Endpoints (unconditional PUT: create-or-replace)
 *   "pa:<ns>/<rev>"           PodAutoscaler status (merge patch on /status)
 *   "dep:<ns>/<deployment>"   the template's kubedirect.dev/replicas annotation (merge patch)
 * The cache is never fed observations: an entry becomes persisting when its write was issued,
 * is re-read after the observe timeout, and evicted after retention; puts of unchanged content
 * are no-ops. SKSReady turns True once the three SKS objects were written successfully.
 *
 * Status semantics follow Knative (pa_lifecycle.go, kpa.go computeActiveCondition): minReady =
 * max(min-scale, initial-scale) until ScaleTargetInitialized, then max(min-scale, 1), with
 * initial-scale as GetInitialScale reads it (kd_as_initial_scale: the annotation, 0 only with
 * allow-zero-initial-scale, else the decider's configured initial-scale, cfgmap.c);
 * ScaleTargetInitialized latches once ready >= minReady with a serviceName; Active is False
 * NoTraffic at want 0, Unknown Queued while ready < minReady and want > 0, True when ready >=
 * minReady. Bad input overrides Active: a decider failure (e.g. unknown metric annotation) gives
 * Active False "DecisionFailed" with the decider's message; a placement failure gives Active
 * Unknown "Unschedulable"; a permanent write failure gives SKSReady False "WriteFailed". Each
 * also posts a Warning Event (once per distinct message).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "autoscaler.h"
#include "kd/json.h"
#include "kd/log.h"
#include "objects.h"

static const struct kd_k8s_resource events_res = {"", "v1", "events", true};

/* ---- events --------------------------------------------------------------------------------- */

static void event_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	(void)resp;
	(void)arg;
	if (err)
		kd_log_warn("event: %s", kd_error_msg(err));
}

void kd_as_event(struct kd_as *as, json_object *obj, const char *type, const char *reason,
                 const char *fmt, ...)
{
	if (!obj)
		return;
	va_list ap;
	va_start(ap, fmt);
	kd_autofree char *msg = kd_xvasprintf(fmt, ap);
	va_end(ap);
	const char *name = kd_json_get_string(obj, "metadata.name");
	struct kd_as_rev *rev = NULL;
	if (strcmp(type, "Warning") == 0 && name) {
		rev = kd_as_rev_find(as, kd_json_get_string(obj, "metadata.namespace"), name);
		kd_autofree char *tag = kd_xasprintf("%s:%s", reason, msg);
		if (rev && rev->last_event && strcmp(rev->last_event, tag) == 0)
			return; /* said already */
		if (rev) {
			free(rev->last_event);
			rev->last_event = kd_xstrdup(tag);
		}
	}
	kd_autojson json_object *ev = kd_as_build_event(obj, type, reason, msg, kd_wall_ns());
	struct kd_k8s_request req = {.verb = KD_K8S_CREATE,
	                             .res = &events_res,
	                             .ns = kd_json_get_string(ev, "metadata.namespace"),
	                             .body = ev};
	kd_autoerr struct kd_error *err = NULL;
	if (kd_k8s_submit(as->k8s, &req, event_done, NULL, &err) < 0)
		kd_log_warn("event: %s", kd_error_msg(err));
}

/* ---- revisions ------------------------------------------------------------------------------ */

struct kd_as_rev *kd_as_rev_find(struct kd_as *as, const char *ns, const char *name)
{
	if (!ns || !name)
		return NULL;
	kd_autofree char *key = kd_xasprintf("%s/%s", ns, name);
	return kd_strmap_get(&as->revs, key);
}

uint32_t kd_as_rev_live(const struct kd_as_rev *rev)
{
	uint32_t n = 0;
	for (size_t i = 0; i < rev->n_insts; i++)
		n += !rev->insts[i]->deleting;
	return n;
}

uint32_t kd_as_rev_ready(struct kd_as *as, const struct kd_as_rev *rev)
{
	uint32_t n = 0;
	for (size_t i = 0; i < rev->n_insts; i++)
		n += kd_as_inst_routable(as, rev->insts[i]);
	return n;
}

void kd_as_rev_dirty(struct kd_as *as, struct kd_as_rev *rev)
{
	if (!rev || as->stopping)
		return;
	rev->dirty = true;
	if (!kd_loop_timer_pending(as->sync_timer))
		kd_loop_timer_start(as->sync_timer, as->cfg.sync_delay_ms);
}

static bool ours(struct kd_as *as, json_object *pa)
{
	const char *c =
	    kd_json_get_string(pa, "metadata.annotations.autoscaling\\.knative\\.dev/class");
	return c && strcmp(c, as->cfg.pa_class) == 0;
}

static void rev_set_deploy(struct kd_as *as, struct kd_as_rev *rev, json_object *dep);
static void rev_clear_deploy(struct kd_as_rev *rev);
static void rev_forget_writes(struct kd_as *as, struct kd_as_rev *rev);

/* cancel: the revision goes away (cancel its instances along the chain); otherwise (shutdown)
 * its instances are only detached, so a restarted kd-autoscaler adopts them. */
static void rev_free(struct kd_as *as, struct kd_as_rev *rev, bool cancel)
{
	if (cancel) {
		kd_as_chain_forget_rev(as, rev);
		rev_forget_writes(as, rev);
	} else {
		for (size_t i = 0; i < rev->n_insts; i++)
			rev->insts[i]->rev = NULL;
		rev->n_insts = 0;
	}
	if (as->decider)
		as->decider->forget(kd_plugin_state(as->decider_h), rev->key);
	if (as->workload)
		as->workload->forget(kd_plugin_state(as->workload_h), rev->key);
	kd_strmap_del(&as->revs, rev->key);
	if (rev->pa)
		json_object_put(rev->pa);
	rev_clear_deploy(rev);
	if (rev->last_status)
		json_object_put(rev->last_status);
	free(rev->insts);
	free(rev->key);
	free(rev->ns);
	free(rev->name);
	free(rev->pa_uid);
	free(rev->decide_error);
	free(rev->sched_error);
	free(rev->write_error);
	free(rev->last_event);
	free(rev->scaled_rv);
	free(rev);
}

static int adopt_pod(json_object *pod, void *arg)
{
	kd_as_inst_observe(arg, pod);
	return 0;
}

static void on_pa(struct kd_informer *inf, json_object *pa, void *arg)
{
	(void)inf;
	struct kd_as *as = arg;
	const char *ns = kd_json_get_string(pa, "metadata.namespace");
	const char *name = kd_json_get_string(pa, "metadata.name");
	const char *uid = kd_json_get_string(pa, "metadata.uid");
	if (!ns || !name || !uid)
		return;
	struct kd_as_rev *rev = kd_as_rev_find(as, ns, name);
	if (!ours(as, pa)) {
		if (rev) { /* given back to Knative: stop managing it, touch nothing more */
			kd_log_key_info(rev->key, "pa: class is no longer %s; forgetting it",
			                as->cfg.pa_class);
			rev_free(as, rev, true);
		}
		return;
	}
	if (rev && rev->pa_uid && strcmp(rev->pa_uid, uid) != 0) {
		rev_free(as, rev, true); /* deleted and recreated under the same name */
		rev = NULL;
	}
	bool fresh = !rev;
	if (!rev) {
		rev = kd_xcalloc(1, sizeof(*rev));
		rev->key = kd_xasprintf("%s/%s", ns, name);
		rev->ns = kd_xstrdup(ns);
		rev->name = kd_xstrdup(name);
		rev->pa_uid = kd_xstrdup(uid);
		rev->desired = -1;
		rev->manual = -1;
		kd_strmap_put(&as->revs, rev->key, rev);
		kd_log_key_info(rev->key, "pa: ours (class %s)", as->cfg.pa_class);
	}
	if (rev->pa)
		json_object_put(rev->pa);
	rev->pa = json_object_get(pa);
	const char *st = NULL;
	json_object *conds = kd_json_get_array(pa, "status.conditions");
	for (size_t i = 0; conds && i < json_object_array_length(conds); i++) {
		json_object *c = json_object_array_get_idx(conds, i);
		const char *t = kd_json_get_string(c, "type");
		if (t && strcmp(t, "ScaleTargetInitialized") == 0)
			st = kd_json_get_string(c, "status");
	}
	if (st && strcmp(st, "True") == 0)
		rev->initialized = true;
	if (fresh) {
		const char *dname = kd_json_get_string(pa, "spec.scaleTargetRef.name");
		json_object *dep = dname ? kd_informer_get(as->deploy_inf, ns, dname) : NULL;
		if (dep)
			rev_set_deploy(as, rev, dep);
		kd_informer_foreach(as->pod_inf, adopt_pod, as);
	}
	kd_as_rev_dirty(as, rev);
	if (fresh && kd_informer_synced(as->pod_inf))
		kd_as_decide(as, rev, "new");
}

static void on_pa_delete(struct kd_informer *inf, json_object *pa, void *arg)
{
	(void)inf;
	struct kd_as *as = arg;
	struct kd_as_rev *rev = kd_as_rev_find(as, kd_json_get_string(pa, "metadata.namespace"),
	                                       kd_json_get_string(pa, "metadata.name"));
	if (!rev)
		return;
	kd_log_key_info(rev->key, "pa deleted: cancelling its instances");
	rev_free(as, rev, true);
}

/* ---- template Deployments ------------------------------------------------------------------- */

static void scale_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	(void)resp;
	char *key = arg;
	if (err)
		kd_log_warn("template %s: scale to 0: %s", key, kd_error_msg(err));
	free(key);
}

static void rev_clear_deploy(struct kd_as_rev *rev)
{
	kd_pod_view_fini(&rev->tmpl);
	free(rev->tmpl_error);
	rev->tmpl_error = NULL;
	if (rev->deploy)
		json_object_put(rev->deploy);
	rev->deploy = NULL;
}

static void rev_set_deploy(struct kd_as *as, struct kd_as_rev *rev, json_object *dep)
{
	rev_clear_deploy(rev);
	rev->deploy = json_object_get(dep);
	if (kd_instance_template_hash(dep, rev->tmpl_hash) < 0)
		rev->tmpl_hash[0] = 0;
	/* what every instance requests of its node, read once per template version */
	kd_autoerr struct kd_error *verr = NULL;
	if (kd_pod_view_init(&rev->tmpl, kd_json_get_object(dep, "spec.template.spec"), &verr) <
	    0) {
		rev->tmpl_error = kd_xstrdup(kd_error_msg(verr));
		kd_log_key_warn(rev->key, "template %s: spec.template.spec: %s",
		                kd_json_get_string(dep, "metadata.name"), rev->tmpl_error);
	}
	int64_t replicas = 0;
	const char *rv = kd_json_get_string(dep, "metadata.resourceVersion");
	const char *dname = kd_json_get_string(dep, "metadata.name");
	if (kd_json_get_int64(dep, "spec.replicas", &replicas) == 0 && replicas > 0 && rv &&
	    (!rev->scaled_rv || strcmp(rev->scaled_rv, rv) != 0)) {
		free(rev->scaled_rv);
		rev->scaled_rv = kd_xstrdup(rv);
		kd_log_key_info(rev->key,
		                "template %s: replicas %lld -> 0 (instances come from the chain)",
		                dname, (long long)replicas);
		kd_autojson json_object *patch = json_tokener_parse("{\"spec\":{\"replicas\":0}}");
		struct kd_k8s_request req = {.verb = KD_K8S_PATCH,
		                             .res = &kd_k8s_deployments,
		                             .ns = rev->ns,
		                             .name = dname,
		                             .subresource = "scale",
		                             .patch_type = KD_K8S_PATCH_MERGE,
		                             .body = patch};
		kd_autoerr struct kd_error *err = NULL;
		char *key = kd_xasprintf("%s/%s", rev->ns, dname);
		if (kd_k8s_submit(as->k8s, &req, scale_done, key, &err) < 0) {
			kd_log_warn("template %s: %s", key, kd_error_msg(err));
			free(key);
		}
		kd_as_event(as, dep, "Normal", "ScaledTemplateToZero",
		            "kubedirect: template Deployment scaled from %lld to 0; instances of "
		            "%s are created by kd-autoscaler",
		            (long long)replicas, rev->name);
	}
	kd_as_rev_dirty(as, rev);
}

static struct kd_as_rev *rev_of_deploy(struct kd_as *as, json_object *dep)
{
	const char *ns = kd_json_get_string(dep, "metadata.namespace");
	const char *rname =
	    kd_json_get_string(dep, "metadata.labels.serving\\.knative\\.dev/revision");
	struct kd_as_rev *rev = kd_as_rev_find(as, ns, rname);
	if (!rev || !rev->pa)
		return NULL;
	const char *want = kd_json_get_string(rev->pa, "spec.scaleTargetRef.name");
	const char *name = kd_json_get_string(dep, "metadata.name");
	return want && name && strcmp(want, name) == 0 ? rev : NULL;
}

static void on_deploy(struct kd_informer *inf, json_object *dep, void *arg)
{
	(void)inf;
	struct kd_as *as = arg;
	struct kd_as_rev *rev = rev_of_deploy(as, dep);
	if (rev)
		rev_set_deploy(as, rev, dep);
}

static void on_deploy_delete(struct kd_informer *inf, json_object *dep, void *arg)
{
	(void)inf;
	struct kd_as_rev *rev = rev_of_deploy(arg, dep);
	if (rev)
		rev_clear_deploy(rev);
}

/* ---- managed Pods --------------------------------------------------------------------------- */

static void on_pod(struct kd_informer *inf, json_object *pod, void *arg)
{
	(void)inf;
	kd_as_inst_observe(arg, pod);
}

static void on_pod_delete(struct kd_informer *inf, json_object *pod, void *arg)
{
	(void)inf;
	struct kd_as *as = arg;
	kd_autofree char *key = kd_informer_key(pod);
	struct kd_as_inst *inst = kd_as_inst_find(as, key);
	if (!inst)
		return;
	struct kd_as_rev *rev = inst->rev;
	bool was_victim = inst->deleting;
	kd_as_inst_remove(as, inst);
	if (rev && !was_victim)
		kd_as_decide(as, rev, "instance deleted");
}

/* ---- write-back ----------------------------------------------------------------------------- */

static bool written(struct kd_as *as, const char *key)
{
	return kd_strmap_get(&as->written, key) != NULL;
}

struct wdone {
	struct kd_as *as;
	char *key;
	kd_wb_done_cb done;
	void *done_arg;
};

/* The revision a write-back key belongs to ("svc:ns/rev-private" -> rev), or NULL. */
static struct kd_as_rev *rev_of_key(struct kd_as *as, const char *key)
{
	const char *colon = strchr(key, ':');
	kd_autofree char *ns = NULL;
	kd_autofree char *name = NULL;
	if (!colon || strncmp(key, "dep:", 4) == 0 ||
	    kd_instance_key_split(colon + 1, &ns, &name, NULL) < 0)
		return NULL;
	size_t l = strlen(name);
	if (l > 8 && strcmp(name + l - 8, "-private") == 0)
		name[l - 8] = 0;
	return kd_as_rev_find(as, ns, name);
}

static void wrap_done(void *arg, enum kd_wb_result res, const struct kd_error *err)
{
	struct wdone *w = arg;
	struct kd_as *as = w->as;
	if (!as->stopping && (res == KD_WB_OK || res == KD_WB_ALREADY_EXISTS)) {
		struct kd_as_rev *rev = rev_of_key(as, w->key);
		if (!written(as, w->key)) {
			char *k = kd_xstrdup(w->key);
			kd_strmap_put(&as->written, k, k);
			kd_as_rev_dirty(as, rev);
		}
		size_t kl = strlen(w->key);
		if (rev && rev->write_error && strncmp(rev->write_error, w->key, kl) == 0 &&
		    rev->write_error[kl] == ':') {
			kd_log_info("write-back %s: accepted again", w->key);
			free(rev->write_error);
			rev->write_error = NULL;
			kd_as_rev_dirty(as, rev);
		}
	}
	w->done(w->done_arg, res, err);
	free(w->key);
	free(w);
}

/* Re-issues the failed writes of rev (every 10 s at most): a refusal may be temporary (RBAC
 * granted later, namespace quota raised, admission webhook back). */
static void retry_failed_writes(struct kd_as *as, struct kd_as_rev *rev, uint64_t now)
{
	if (!rev->write_error || now - rev->write_retry_ms < 10000)
		return;
	rev->write_retry_ms = now;
	char *keys[] = {
	    kd_xasprintf("svc:%s/%s", rev->ns, rev->name),
	    kd_xasprintf("svc:%s/%s-private", rev->ns, rev->name),
	    kd_xasprintf("ep:%s/%s", rev->ns, rev->name),
	    kd_xasprintf("pa:%s/%s", rev->ns, rev->name),
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(keys); i++) {
		(void)kd_wb_retry(as->wb, keys[i]);
		free(keys[i]);
	}
}

static int wrap_write(void *ctx, const char *key, enum kd_wb_op op, json_object *obj,
                      json_object *base, kd_wb_done_cb done, void *done_arg)
{
	struct kd_as *as = ctx;
	struct wdone *w = kd_xcalloc(1, sizeof(*w));
	w->as = as;
	w->key = kd_xstrdup(key);
	w->done = done;
	w->done_arg = done_arg;
	int rc = as->inner.write(as->inner.ctx, key, op, obj, base, wrap_done, w);
	if (rc < 0) {
		free(w->key);
		free(w);
	}
	return rc;
}

static int wrap_reread(void *ctx, const char *key, kd_wb_reread_cb cb, void *cb_arg)
{
	struct kd_as *as = ctx;
	return as->inner.reread(as->inner.ctx, key, cb, cb_arg);
}

static void wb_failed(void *ctx, const char *key, enum kd_wb_op op, const struct kd_error *err)
{
	struct kd_as *as = ctx;
	struct kd_as_rev *rev = rev_of_key(as, key);
	enum kd_wb_state state;
	if (!rev) {
		/* the revision is gone (its objects go with it through garbage collection): drop
		 * the entry without writing anything */
		if (kd_wb_state(as->wb, key, &state) == 0 && state == KD_WB_FAILED)
			(void)kd_wb_cancel(as->wb, key);
		return;
	}
	kd_log_error("write-back %s %s failed: %s", kd_wb_op_name(op), key, kd_error_msg(err));
	free(rev->write_error);
	rev->write_error = kd_xasprintf("%s: %s", key, kd_error_msg(err));
	kd_as_event(as, rev->pa, "Warning", "WriteFailed", "%s", rev->write_error);
	kd_as_rev_dirty(as, rev);
	/* the API Server refusing writes for a while (5xx, 429, unreachable): keep trying; a
	 * permanent refusal (403, 422) is retried every 10 s by the tick (retry_failed_writes)
	 * and at once when the content changes (put re-queues a failed entry) */
	if (kd_wb_classify_error(err) == KD_WB_RETRY)
		(void)kd_wb_retry(as->wb, key);
}

/* Drops the write-back entries of a revision that goes away: failed ones at once, persisted
 * ones when nothing is pending; the others finish (or fail, then wb_failed drops them). */
static void rev_forget_writes(struct kd_as *as, struct kd_as_rev *rev)
{
	const char *dname = rev->deploy ? kd_json_get_string(rev->deploy, "metadata.name") : NULL;
	char *keys[] = {
	    kd_xasprintf("svc:%s/%s", rev->ns, rev->name),
	    kd_xasprintf("svc:%s/%s-private", rev->ns, rev->name),
	    kd_xasprintf("ep:%s/%s", rev->ns, rev->name),
	    kd_xasprintf("pa:%s/%s", rev->ns, rev->name),
	    dname ? kd_xasprintf("dep:%s/%s", rev->ns, dname) : NULL,
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(keys); i++) {
		enum kd_wb_state state;
		if (keys[i] && as->wb && kd_wb_state(as->wb, keys[i], &state) == 0) {
			if (state == KD_WB_FAILED)
				(void)kd_wb_cancel(as->wb, keys[i]);
			else if (state == KD_WB_PERSISTED)
				(void)kd_wb_evict(as->wb, keys[i]);
		}
		free(keys[i] ? kd_strmap_del(&as->written, keys[i]) : NULL);
		free(keys[i]);
	}
}

static void put(struct kd_as *as, const char *prefix, const char *ns, const char *name,
                json_object *obj)
{
	kd_autofree char *key = kd_xasprintf("%s:%s/%s", prefix, ns, name);
	int rc = kd_wb_put(as->wb, key, obj);
	if (rc < 0 && rc != -EBUSY)
		kd_log_warn("write-back %s: %s", key, strerror(-rc));
	json_object_put(obj);
}

static int32_t ann_int(json_object *pa, const char *key, int32_t def)
{
	json_object *a = kd_json_get_object(pa, "metadata.annotations");
	json_object *v = NULL;
	if (!a || !json_object_object_get_ex(a, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return def;
	char *end = NULL;
	long x = strtol(json_object_get_string(v), &end, 10);
	return end && !*end && x >= 0 && x <= INT32_MAX ? (int32_t)x : def;
}

static const char *prev_active(json_object *pa)
{
	json_object *conds = kd_json_get_array(pa, "status.conditions");
	for (size_t i = 0; conds && i < json_object_array_length(conds); i++) {
		json_object *c = json_object_array_get_idx(conds, i);
		const char *t = kd_json_get_string(c, "type");
		if (t && strcmp(t, "Active") == 0)
			return kd_json_get_string(c, "status");
	}
	return NULL;
}

static void sync_rev(struct kd_as *as, struct kd_as_rev *rev)
{
	rev->dirty = false;
	if (!rev->pa)
		return;
	/* SKS objects */
	put(as, "svc", rev->ns, rev->name, kd_as_build_public_service(rev->pa));
	if (rev->deploy) {
		kd_autofree char *priv = kd_xasprintf("%s-private", rev->name);
		put(as, "svc", rev->ns, priv,
		    kd_as_build_private_service(
		        rev->pa, kd_json_get_object(rev->deploy, "spec.selector.matchLabels")));
	}
	size_t n = 0;
	const char **ips = kd_xcalloc(rev->n_insts + as->n_activator_ips + 1, sizeof(*ips));
	if (as->n_activator_ips) {
		/* Knative's proxy mode, kept permanently: every request goes through kd-activator,
		 * which holds it at zero and routes on the chain's readiness */
		for (size_t i = 0; i < as->n_activator_ips; i++)
			ips[n++] = as->activator_ips[i];
	} else {
		for (size_t i = 0; i < rev->n_insts;
		     i++) { /* Serve mode: the instances themselves */
			struct kd_as_inst *inst = rev->insts[i];
			if (kd_as_inst_routable(as, inst))
				ips[n++] = inst->ip;
		}
	}
	put(as, "ep", rev->ns, rev->name, kd_as_build_endpoints(rev->pa, ips, n));
	free(ips);

	/* the template's live count, for humans */
	uint32_t live = kd_as_rev_live(rev);
	const char *dname = rev->deploy ? kd_json_get_string(rev->deploy, "metadata.name") : NULL;
	if (dname) {
		json_object *p = json_object_new_object();
		json_object *m = json_object_new_object();
		json_object *a = json_object_new_object();
		char buf[16];
		snprintf(buf, sizeof(buf), "%u", live);
		json_object_object_add(a, KD_ANNOT_REPLICAS, json_object_new_string(buf));
		json_object_object_add(m, "annotations", a);
		json_object_object_add(p, "metadata", m);
		put(as, "dep", rev->ns, dname, p);
	}

	/* status */
	uint32_t ready = kd_as_rev_ready(as, rev);
	if (rev->ready_since_ms && rev->desired > 0 && ready >= (uint32_t)rev->desired) {
		kd_log_key_info(
		    rev->key,
		    "pa: %u/%d instances ready through the chain %llu ms after the decision", ready,
		    rev->desired,
		    (unsigned long long)(kd_loop_now_ms(as->loop) - rev->ready_since_ms));
		rev->ready_since_ms = 0;
	}
	kd_autofree char *k_pub = kd_xasprintf("svc:%s/%s", rev->ns, rev->name);
	kd_autofree char *k_priv = kd_xasprintf("svc:%s/%s-private", rev->ns, rev->name);
	kd_autofree char *k_ep = kd_xasprintf("ep:%s/%s", rev->ns, rev->name);
	bool sks = written(as, k_pub) && written(as, k_priv) && written(as, k_ep);
	kd_autofree char *priv_name = kd_xasprintf("%s-private", rev->name);
	struct kd_as_status st = {
	    .observed_generation = 0,
	    .service_name = sks || written(as, k_pub) ? rev->name : NULL,
	    .metrics_service_name = written(as, k_priv) ? priv_name : NULL,
	    .desired = rev->desired,
	    .actual = (int32_t)ready,
	};
	(void)kd_json_get_int64(rev->pa, "metadata.generation", &st.observed_generation);
	int32_t min_scale = ann_int(rev->pa, "autoscaling.knative.dev/min-scale", 0);
	const char *reach = kd_json_get_string(rev->pa, "spec.reachability");
	if (reach && strcmp(reach, "Unreachable") == 0)
		min_scale = 0;
	int32_t initial =
	    kd_as_initial_scale(as, ann_int(rev->pa, "autoscaling.knative.dev/initial-scale", -1));
	int32_t min_ready = rev->initialized ? KD_MAX(min_scale, 1) : KD_MAX(min_scale, initial);
	if ((int32_t)ready >= min_ready && st.service_name)
		rev->initialized = true;
	/* as Knative's computeActiveCondition: minReady computed before this pass's initialization
	 */
	if (rev->initialized) {
		st.initialized.status = "True";
	} else {
		st.initialized.status = "Unknown";
		st.initialized.reason = "Queued";
		st.initialized.message = "Waiting for the initial scale.";
	}
	int32_t want = rev->desired;
	/* our own last status is the previous one (the informer's copy lags our writes) */
	json_object *prev = rev->last_status ? rev->last_status : rev->pa;
	const char *pact = prev_active(prev);
	bool prev_inactive = pact && strcmp(pact, "False") == 0;
	bool prev_activating = pact && strcmp(pact, "Unknown") == 0;
	static const char *no_traffic = "The target is not receiving traffic.";
	if (want == 0 || min_ready == 0) {
		if (prev_activating && min_ready > 0)
			st.active = (struct kd_as_cond){"False", "TimedOut",
			                                "The target could not be activated."};
		else
			st.active = (struct kd_as_cond){"False", "NoTraffic", no_traffic};
	} else if ((int32_t)ready < min_ready) {
		if (want > 0 || !prev_inactive)
			st.active = (struct kd_as_cond){"Unknown", "Queued",
			                                "Requests to the target are being buffered "
			                                "as resources are provisioned."};
		else
			st.active = (struct kd_as_cond){"False", "NoTraffic", no_traffic};
	} else if (want > 0 || !prev_inactive) {
		st.active = (struct kd_as_cond){.status = "True"};
	} else {
		st.active = (struct kd_as_cond){"False", "NoTraffic", no_traffic};
	}
	if (rev->decide_error)
		st.active = (struct kd_as_cond){"False", "DecisionFailed", rev->decide_error};
	else if (rev->sched_error && (int32_t)kd_as_rev_live(rev) < want)
		st.active = (struct kd_as_cond){"Unknown", "Unschedulable", rev->sched_error};
	if (rev->write_error)
		st.sks_ready = (struct kd_as_cond){"False", "WriteFailed", rev->write_error};
	else if (sks)
		st.sks_ready = (struct kd_as_cond){.status = "True"};
	else
		st.sks_ready = (struct kd_as_cond){"Unknown", "NotReady",
		                                   "Services and Endpoints are being written."};
	json_object *status = kd_as_build_status(&st, prev, kd_wall_ns());
	if (rev->last_status)
		json_object_put(rev->last_status);
	rev->last_status = json_object_get(status);
	put(as, "pa", rev->ns, rev->name, status);
}

static void sync_cb(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	struct kd_as *as = arg;
	size_t pos = 0;
	struct kd_as_rev *rev;
	while ((rev = kd_strmap_next(&as->revs, &pos)))
		if (rev->dirty)
			sync_rev(as, rev);
}

/* ---- decisions ------------------------------------------------------------------------------ */

void kd_as_decide(struct kd_as *as, struct kd_as_rev *rev, const char *why)
{
	if (!rev->pa || as->stopping)
		return;
	uint64_t now = kd_loop_now_ms(as->loop);
	int32_t desired = -1;
	as->decisions++;
	if (rev->manual >= 0 && now < rev->manual_until) {
		desired = rev->manual;
	} else if (!kd_as_dcfg_ready(as)) {
		/* config-autoscaler not read yet: no decision (as with no data) */
		rev->manual = -1;
	} else {
		rev->manual = -1;
		int64_t cc = 0;
		(void)kd_json_get_int64(rev->pa, "spec.containerConcurrency", &cc);
		const char *reach = kd_json_get_string(rev->pa, "spec.reachability");
		/* Knative's defaulting writes metric "" for classes it does not know ("the class's
		 * default"): the decider gets the annotations without it */
		json_object *ann = kd_json_get_object(rev->pa, "metadata.annotations");
		kd_autojson json_object *filtered = NULL;
		const char *metric = kd_json_get_string(ann, "autoscaling\\.knative\\.dev/metric");
		if (metric && !*metric && json_object_deep_copy(ann, &filtered, NULL) == 0) {
			json_object_object_del(filtered, KD_AS_ANNOT_METRIC);
			ann = filtered;
		}
		struct kd_scale_input in = {
		    .now_ms = now,
		    .ready = kd_as_rev_ready(as, rev),
		    .annotations = ann,
		    .container_concurrency = cc > 0 ? (uint32_t)cc : 0,
		    .unreachable = reach && strcmp(reach, "Unreachable") == 0,
		};
		struct kd_scale_decision out = {.desired = -1};
		kd_autoerr struct kd_error *err = NULL;
		int rc =
		    as->decider->decide(kd_plugin_state(as->decider_h), rev->key, &in, &out, &err);
		if (rc < 0) {
			const char *msg = kd_error_msg(err);
			if (!rev->decide_error || strcmp(rev->decide_error, msg) != 0) {
				kd_log_key_warn(rev->key, "pa: decision failed: %s", msg);
				free(rev->decide_error);
				rev->decide_error = kd_xstrdup(msg);
				kd_as_event(as, rev->pa, "Warning", "DecisionFailed", "%s", msg);
				kd_as_rev_dirty(as, rev);
			}
			return;
		}
		if (rev->decide_error) {
			free(rev->decide_error);
			rev->decide_error = NULL;
			kd_as_rev_dirty(as, rev);
		}
		desired = out.desired;
	}
	int64_t persisted_desired = -1;
	if (desired < 0 && rev->desired < 0 &&
	    kd_json_get_int64(rev->pa, "status.desiredScale", &persisted_desired) == 0 &&
	    persisted_desired >= 0 && persisted_desired <= INT32_MAX) {
		/* restarted: the last decision written back is the one to keep until the decider
		 * has one of its own (the API Server is the backing store) */
		desired = (int32_t)persisted_desired;
		why = "restored from status.desiredScale";
	}
	bool manual = rev->manual >= 0 && now < rev->manual_until;
	if (!rev->initialized && !manual && kd_as_dcfg_ready(as)) {
		/* until the revision first reached it, its initial scale is a floor: Knative
		 * creates the Deployment with replicas = initial-scale (MakeDeployment) and keeps
		 * it until ScaleTargetInitialized; a kd revision's Deployment stays at 0 (the
		 * admission webhook, or the template scaled to 0), so the chain makes them */
		const char *reach = kd_json_get_string(rev->pa, "spec.reachability");
		int32_t initial = kd_as_initial_scale(
		    as, ann_int(rev->pa, "autoscaling.knative.dev/initial-scale", -1));
		if ((!reach || strcmp(reach, "Unreachable") != 0) && initial > desired) {
			desired = initial;
			why = "initial scale";
		}
	}
	if (desired < 0) {
		/* no decision yet (no data): keep what runs; make sure status is written */
		kd_as_rev_dirty(as, rev);
		return;
	}
	if (desired != rev->desired) {
		kd_log_key_info(rev->key, "pa: desired %d -> %d (%s)", rev->desired, desired, why);
		rev->ready_since_ms = desired > rev->desired ? now : 0; /* scale-out timing */
		kd_as_rev_dirty(as, rev);
	}
	if (rev->sched_error && (uint32_t)desired <= kd_as_rev_live(rev)) {
		free(rev->sched_error);
		rev->sched_error = NULL;
		kd_as_rev_dirty(as, rev);
	}
	rev->desired = desired;
	kd_as_chain_apply(as, rev, desired);
}

static void tick_cb(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	struct kd_as *as = arg;
	if (kd_informer_synced(as->pod_inf) && kd_informer_synced(as->pa_inf)) {
		kd_as_chain_sweep(as);
		size_t pos = 0;
		struct kd_as_rev *rev;
		while ((rev = kd_strmap_next(&as->revs, &pos))) {
			retry_failed_writes(as, rev, kd_loop_now_ms(as->loop));
			kd_as_decide(as, rev, "tick");
		}
	}
	kd_loop_timer_start(t, as->cfg.tick_ms);
}

void kd_as_record(struct kd_as *as, const char *ns, const char *name,
                  const struct kd_metric_sample *s)
{
	struct kd_as_rev *rev = kd_as_rev_find(as, ns, name);
	if (!rev)
		return; /* not ours: Knative's autoscaler serves it */
	void *st = kd_plugin_state(as->decider_h);
	if (as->decider->record(st, rev->key, s) < 0)
		return;
	const struct kd_decider_ops *d = as->decider;
	if (KD_HAS_MEMBER(d, struct kd_decider_ops, poke) && d->poke) {
		if (d->poke(st, rev->key, s) == 1) {
			as->pokes++;
			kd_as_decide(as, rev, "poke");
		}
	} else if (kd_as_rev_live(rev) == 0 && s->concurrency > 0) {
		as->pokes++;
		kd_as_decide(as, rev, "poke");
	}
}

void kd_as_manual_scale(struct kd_as *as, const char *ns, const char *name, int32_t desired)
{
	struct kd_as_rev *rev = kd_as_rev_find(as, ns, name);
	if (!rev) {
		kd_log_warn("scale %s/%s to %d: not a PodAutoscaler of class %s", ns, name, desired,
		            as->cfg.pa_class);
		return;
	}
	rev->manual = desired;
	rev->manual_until = kd_loop_now_ms(as->loop) + as->cfg.scale_hold_ms;
	rev->ready_since_ms = 0;
	kd_as_decide(as, rev, "scale message");
}

/* ---- start / stop --------------------------------------------------------------------------- */

static void on_synced(struct kd_informer *inf, void *arg)
{
	(void)inf;
	struct kd_as *as = arg;
	if (kd_informer_synced(as->pa_inf) && kd_informer_synced(as->pod_inf) &&
	    kd_informer_synced(as->deploy_inf))
		kd_as_nodes_start(as);
	kd_as_note_synced(as);
}

static int informer(struct kd_as *as, const struct kd_k8s_resource *res, const char *selector,
                    const struct kd_informer_handlers *h, struct kd_informer **out,
                    struct kd_error **err)
{
	struct kd_informer_opts o = {
	    .res = res, .ns = as->cfg.namespace, .label_selector = selector};
	int rc = kd_informer_new(as->k8s, &o, h, out, err);
	if (rc < 0)
		return rc;
	return kd_informer_start(*out);
}

int kd_as_pa_start(struct kd_as *as, struct kd_error **err)
{
	as->sync_timer = kd_loop_timer_new(as->loop, sync_cb, as);
	as->tick = kd_loop_timer_new(as->loop, tick_cb, as);

	struct kd_wbk8s_route routes[] = {
	    {.prefix = "svc:",
	     .res = &kd_k8s_services,
	     .create = KD_WBK8S_CREATE_POST,
	     .update = KD_WBK8S_UPDATE_MERGE},
	    {.prefix = "ep:",
	     .res = &kd_k8s_endpoints,
	     .create = KD_WBK8S_CREATE_PUT,
	     .update = KD_WBK8S_UPDATE_PUT},
	    {.prefix = "pa:",
	     .res = &kd_k8s_podautoscalers,
	     .create = KD_WBK8S_CREATE_PATCH,
	     .update = KD_WBK8S_UPDATE_MERGE,
	     .subresource = "status"},
	    {.prefix = "dep:",
	     .res = &kd_k8s_deployments,
	     .create = KD_WBK8S_CREATE_PATCH,
	     .update = KD_WBK8S_UPDATE_MERGE},
	};
	as->wbk8s = kd_wbk8s_new(as->k8s_w, routes, KD_ARRAY_SIZE(routes), err);
	if (!as->wbk8s)
		return -EINVAL;
	kd_wbk8s_writer(as->wbk8s, &as->inner);
	struct kd_wb_writer w = {.write = wrap_write, .reread = wrap_reread, .ctx = as};
	struct kd_wb_callbacks cbs = {.failed = wb_failed, .ctx = as};
	struct kd_wb_config cfg = KD_WB_CONFIG_DEFAULT;
	cfg.qps = as->cfg.write_qps;
	cfg.burst = (unsigned)as->cfg.write_burst;
	cfg.observe_timeout_ms = 5000;
	cfg.retention_ms = KD_WB_RETAIN_FOREVER; /* unchanged puts stay no-ops */
	cfg.max_attempts = 8; /* then `failed`, which records the error and retries */
	as->wb = kd_wb_new(as->loop, &cfg, &w, &cbs, err);
	if (!as->wb)
		return -EINVAL;

	struct kd_informer_handlers hp = {.on_add = on_pa,
	                                  .on_update = kd_informer_update_as_add,
	                                  .on_delete = on_pa_delete,
	                                  .on_synced = on_synced,
	                                  .arg = as};
	struct kd_informer_handlers hd = {.on_add = on_deploy,
	                                  .on_update = kd_informer_update_as_add,
	                                  .on_delete = on_deploy_delete,
	                                  .on_synced = on_synced,
	                                  .arg = as};
	struct kd_informer_handlers hpod = {.on_add = on_pod,
	                                    .on_update = kd_informer_update_as_add,
	                                    .on_delete = on_pod_delete,
	                                    .on_synced = on_synced,
	                                    .arg = as};
	int rc = informer(as, &kd_k8s_deployments, "serving.knative.dev/revision", &hd,
	                  &as->deploy_inf, err);
	if (rc == 0)
		rc = informer(as, &kd_k8s_pods, KD_LABEL_MANAGED "=true", &hpod, &as->pod_inf, err);
	if (rc == 0)
		rc = informer(as, &kd_k8s_podautoscalers, NULL, &hp, &as->pa_inf, err);
	if (rc < 0)
		return rc;
	kd_loop_timer_start(as->tick, as->cfg.tick_ms);
	return 0;
}

void kd_as_pa_stop(struct kd_as *as)
{
	as->stopping = true;
	kd_informer_free(as->pa_inf);
	kd_informer_free(as->pod_inf);
	kd_informer_free(as->deploy_inf);
	as->pa_inf = as->pod_inf = as->deploy_inf = NULL;
	/* collect first: rev_free removes each from the map */
	size_t n = 0, pos = 0;
	struct kd_as_rev **all = kd_xcalloc(as->revs.n ? as->revs.n : 1, sizeof(*all));
	struct kd_as_rev *rev;
	while ((rev = kd_strmap_next(&as->revs, &pos)))
		all[n++] = rev;
	for (size_t i = 0; i < n; i++)
		rev_free(as, all[i], false);
	free(all);
	kd_strmap_fini(&as->revs);
	kd_wb_free(as->wb);
	as->wb = NULL;
	kd_wbk8s_free(as->wbk8s);
	as->wbk8s = NULL;
	pos = 0;
	char *key;
	while ((key = kd_strmap_next(&as->written, &pos)))
		free(key);
	kd_strmap_fini(&as->written);
	kd_loop_timer_free(as->sync_timer);
	kd_loop_timer_free(as->tick);
	as->sync_timer = as->tick = NULL;
}
