/* activator-hook/revs.c: kd-activator's routing table (see activator.h): Revisions of our class
 * from the API, instances from kd-node's status stream and from the private Services' Endpoints.
 * An instance is routable while either source says ready, unless kd-node said it is gone (then
 * the API's copy is stale and only a new ready report brings it back). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "activator.h"
#include "kd/instance.h"
#include "kd/json.h"
#include "kd/log.h"

static const struct kd_k8s_resource revisions = {"serving.knative.dev", "v1", "revisions", true};

#define LABEL_SERVICE_TYPE "networking.internal.knative.dev/serviceType"
#define ANNOT_CLASS        "autoscaling.knative.dev/class"

/* ---- table ---------------------------------------------------------------------------------- */

struct kd_act_rev *kd_act_rev_get(struct kd_act *a, const char *ns, const char *name)
{
	kd_autofree char *key = kd_xasprintf("%s/%s", ns, name);
	return kd_strmap_get(&a->revs, key);
}

struct kd_act_rev *kd_act_rev_ensure(struct kd_act *a, const char *ns, const char *name)
{
	struct kd_act_rev *r = kd_act_rev_get(a, ns, name);
	if (r)
		return r;
	r = kd_xcalloc(1, sizeof(*r));
	r->key = kd_xasprintf("%s/%s", ns, name);
	r->ns = kd_xstrdup(ns);
	r->name = kd_xstrdup(name);
	r->timeout_ms = a->cfg.default_timeout_ms;
	kd_strmap_put(&a->revs, r->key, r);
	return r;
}

bool kd_act_inst_routable(const struct kd_act_inst *i)
{
	return i->ip[0] && (i->chan_ready || (i->api_ready && !i->chan_gone)) &&
	       (!i->bad_until_ms || kd_now_ns() / 1000000u >= i->bad_until_ms);
}

bool kd_act_inst_free(const struct kd_act_inst *i)
{
	return kd_act_inst_routable(i) && (i->rev->cc == 0 || i->inflight < i->rev->cc);
}

size_t kd_act_rev_routable(const struct kd_act_rev *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n_insts; i++)
		n += kd_act_inst_routable(r->insts[i]);
	return n;
}

static void inst_detach(struct kd_act_inst *inst)
{
	struct kd_act_rev *r = inst->rev;
	for (size_t i = 0; r && i < r->n_insts; i++)
		if (r->insts[i] == inst) {
			r->insts[i] = r->insts[--r->n_insts];
			break;
		}
	inst->rev = NULL;
}

static void inst_free(struct kd_act *a, struct kd_act_inst *inst)
{
	kd_strmap_del(&a->insts, inst->key);
	inst_detach(inst);
	free(inst->key);
	free(inst);
}

/* Re-evaluates inst after a change: logs and dispatches when it became routable, forgets it when
 * no source has it and nothing is in flight to it. */
static void inst_changed(struct kd_act *a, struct kd_act_inst *inst)
{
	bool now = kd_act_inst_routable(inst);
	struct kd_act_rev *r = inst->rev;
	if (now && !inst->routable_since_ms) {
		inst->routable_since_ms = kd_loop_now_ms(a->loop);
		kd_log_key_debug(r->key, "route: %s at %s routable (%s)", inst->key, inst->ip,
		                 inst->chan_ready ? "kd-node" : "Endpoints");
		kd_act_dispatch(a, r);
	} else if (!now && inst->routable_since_ms) {
		inst->routable_since_ms = 0;
		kd_log_key_debug(r->key, "route: %s no longer routable", inst->key);
	}
	if (!now && !inst->chan_ready && !inst->api_ready && inst->inflight == 0)
		inst_free(a, inst);
}

static struct kd_act_inst *inst_ensure(struct kd_act *a, struct kd_act_rev *r, const char *key)
{
	struct kd_act_inst *inst = kd_strmap_get(&a->insts, key);
	if (inst && inst->rev != r) {
		inst_detach(inst);
		inst->rev = NULL;
	}
	if (!inst) {
		inst = kd_xcalloc(1, sizeof(*inst));
		inst->key = kd_xstrdup(key);
		kd_strmap_put(&a->insts, inst->key, inst);
	}
	if (!inst->rev) {
		inst->rev = r;
		if (r->n_insts == r->cap_insts) {
			r->cap_insts = r->cap_insts ? r->cap_insts * 2 : 8;
			r->insts = kd_xrealloc(r->insts, r->cap_insts * sizeof(*r->insts));
		}
		r->insts[r->n_insts++] = inst;
	}
	return inst;
}

void kd_act_inst_release(struct kd_act *a, struct kd_act_inst *inst)
{
	if (!inst->rev) { /* its revision was freed while this request was in flight */
		if (inst->inflight == 0) {
			kd_strmap_del(&a->insts, inst->key);
			free(inst->key);
			free(inst);
		}
		return;
	}
	inst_changed(a, inst);
}

static void rev_free(struct kd_act *a, struct kd_act_rev *r)
{
	for (size_t i = 0; i < r->n_insts; i++) {
		struct kd_act_inst *inst = r->insts[i];
		inst->rev = NULL;
		if (inst->inflight == 0) {
			kd_strmap_del(&a->insts, inst->key);
			free(inst->key);
			free(inst);
		}
		/* else: the in-flight request frees it when done (inst->rev == NULL) */
	}
	r->n_insts = 0;
	kd_strmap_del(&a->revs, r->key);
	free(r->insts);
	free(r->key);
	free(r->ns);
	free(r->name);
	free(r);
}

/* ---- Revisions ------------------------------------------------------------------------------ */

static void ep_apply(struct kd_act *a, struct kd_act_rev *r, json_object *ep);

static bool ours(struct kd_act *a, json_object *obj)
{
	json_object *ann = kd_json_get_object(obj, "metadata.annotations"), *v;
	return ann && json_object_object_get_ex(ann, ANNOT_CLASS, &v) &&
	       strcmp(json_object_get_string(v), a->cfg.pa_class) == 0;
}

static void rev_upsert(struct kd_informer *inf, json_object *obj, void *arg)
{
	(void)inf;
	struct kd_act *a = arg;
	const char *ns = kd_json_get_string(obj, "metadata.namespace");
	const char *name = kd_json_get_string(obj, "metadata.name");
	if (!ns || !name)
		return;
	struct kd_act_rev *r = kd_act_rev_get(a, ns, name);
	if (!ours(a, obj)) {
		if (r && r->known) /* the class changed: not ours any more */
			kd_act_rev_drain(a, r, 404, "revision is not of class kd.kubedirect.dev");
		return;
	}
	r = kd_act_rev_ensure(a, ns, name);
	int64_t cc = 0, timeout_s = 0;
	kd_json_get_int64(obj, "spec.containerConcurrency", &cc);
	kd_json_get_int64(obj, "spec.timeoutSeconds", &timeout_s);
	bool was = r->known;
	r->known = true;
	r->cc = cc > 0 ? (unsigned)cc : 0;
	r->timeout_ms = timeout_s > 0 ? (uint64_t)timeout_s * 1000u : a->cfg.default_timeout_ms;
	r->draining = false;
	if (!was) {
		kd_log_key_info(
		    r->key,
		    "route: revision of our class (containerConcurrency %u, timeout %llu s)", r->cc,
		    (unsigned long long)(r->timeout_ms / 1000u));
		/* its Endpoints may have been listed before the revision was known */
		kd_autofree char *ep = kd_xasprintf("%s-private", name);
		json_object *cached = a->ep_inf ? kd_informer_get(a->ep_inf, ns, ep) : NULL;
		if (cached)
			ep_apply(a, r, cached);
	}
	kd_act_dispatch(a, r);
}

static void rev_delete(struct kd_informer *inf, json_object *obj, void *arg)
{
	(void)inf;
	struct kd_act *a = arg;
	const char *ns = kd_json_get_string(obj, "metadata.namespace");
	const char *name = kd_json_get_string(obj, "metadata.name");
	struct kd_act_rev *r = ns && name ? kd_act_rev_get(a, ns, name) : NULL;
	if (r)
		kd_act_rev_drain(a, r, 404, "revision deleted");
}

void kd_act_rev_drain(struct kd_act *a, struct kd_act_rev *r, int status, const char *why)
{
	kd_log_key_info(r->key, "route: %s; %zu held request(s) answered %d", why, r->qlen, status);
	r->known = false;
	r->draining = true;
	kd_act_dispatch(a, r); /* answers every held request: the revision is gone */
	kd_act_rev_release(a, r);
}

void kd_act_rev_release(struct kd_act *a, struct kd_act_rev *r)
{
	if (r->draining && r->inflight == 0 && r->qlen == 0)
		rev_free(a, r);
}

/* ---- Endpoints of the private Services ------------------------------------------------------ */

/* Marks api_ready of r's instances from an Endpoints object (NULL: none listed). */
static void ep_apply(struct kd_act *a, struct kd_act_rev *r, json_object *ep)
{
	a->api_updates++;
	const char *ns = r->ns;
	/* Everything the object does not list as ready is not ready per the API. */
	for (size_t i = 0; i < r->n_insts; i++)
		r->insts[i]->api_ready = false;
	json_object *subsets = ep ? kd_json_get_array(ep, "subsets") : NULL;
	size_t ns_ = subsets ? json_object_array_length(subsets) : 0;
	for (size_t s = 0; s < ns_; s++) {
		json_object *addrs =
		    kd_json_get_array(json_object_array_get_idx(subsets, s), "addresses");
		size_t na = addrs ? json_object_array_length(addrs) : 0;
		for (size_t k = 0; k < na; k++) {
			json_object *ad = json_object_array_get_idx(addrs, k);
			const char *ip = kd_json_get_string(ad, "ip");
			const char *pod = kd_json_get_string(ad, "targetRef.name");
			if (!ip || !pod || strlen(ip) >= sizeof(((struct kd_act_inst *)0)->ip))
				continue;
			kd_autofree char *key = kd_xasprintf("%s/%s", ns, pod);
			struct kd_act_inst *inst = inst_ensure(a, r, key);
			inst->api_ready = true;
			if (!inst->chan_ready)
				snprintf(inst->ip, sizeof(inst->ip), "%s", ip);
		}
	}
	/* inst_changed may free entries: iterate over a snapshot */
	size_t n = r->n_insts;
	struct kd_act_inst **snap = kd_xmalloc((n ? n : 1) * sizeof(*snap));
	memcpy(snap, r->insts, n * sizeof(*snap));
	for (size_t i = 0; i < n; i++)
		inst_changed(a, snap[i]);
	free(snap);
}

/* The revision an Endpoints object belongs to (ours only), or NULL. */
static struct kd_act_rev *ep_rev(struct kd_act *a, json_object *ep)
{
	const char *ns = kd_json_get_string(ep, "metadata.namespace");
	json_object *labels = kd_json_get_object(ep, "metadata.labels"), *v;
	if (!ns || !labels || !json_object_object_get_ex(labels, KD_KNATIVE_LABEL_REVISION, &v))
		return NULL;
	struct kd_act_rev *r = kd_act_rev_get(a, ns, json_object_get_string(v));
	return r && r->known ? r : NULL;
}

static void ep_add(struct kd_informer *inf, json_object *obj, void *arg)
{
	(void)inf;
	struct kd_act *a = arg;
	struct kd_act_rev *r = ep_rev(a, obj);
	if (r)
		ep_apply(a, r, obj);
}

static void ep_delete(struct kd_informer *inf, json_object *obj, void *arg)
{
	(void)inf;
	struct kd_act *a = arg;
	struct kd_act_rev *r = ep_rev(a, obj);
	if (r)
		ep_apply(a, r, NULL);
}

/* The first time both informers have listed: the "serving revisions" line. */
static void note_synced(struct kd_act *a)
{
	if (a->serving || !kd_act_revs_synced(a))
		return;
	a->serving = true;
	kd_log_info("serving revisions of class %s in %s via %s (informers synced in %llu ms)",
	            a->cfg.pa_class,
	            a->cfg.namespace && *a->cfg.namespace ? a->cfg.namespace : "all namespaces",
	            a->api_server ? a->api_server : "?",
	            (unsigned long long)(kd_loop_now_ms(a->loop) - a->start_ms));
}

static void ep_synced(struct kd_informer *inf, void *arg)
{
	(void)inf;
	note_synced(arg);
}

/* A revision became known after its Endpoints were listed: read them from the cache. */
static void rev_synced(struct kd_informer *inf, void *arg)
{
	(void)inf;
	struct kd_act *a = arg;
	note_synced(a);
	kd_log_info("routes: %zu revision(s) of class %s", a->revs.n, a->cfg.pa_class);
	/* requests held for revisions the API does not know get their 404 now */
	size_t pos = 0;
	struct kd_act_rev *r;
	struct kd_act_rev **unknown = kd_xcalloc(a->revs.n + 1, sizeof(*unknown));
	size_t n = 0;
	while ((r = kd_strmap_next(&a->revs, &pos)))
		if (!r->known)
			unknown[n++] = r;
	for (size_t i = 0; i < n; i++)
		kd_act_dispatch(a, unknown[i]);
	free(unknown);
}

/* ---- status stream from kd-node (we are downstream) ----------------------------------------- */

static int st_held(void *ud, const char *source, struct kd_op_list *held, struct kd_error **err)
{
	(void)source;
	(void)err;
	struct kd_act *a = ud;
	/* kd/instance.h convention: bare upserts of what we hold; kd-node then resends every live
	 * status and we drop the rest. Sources are not told apart: a key lives on one node. */
	size_t pos = 0;
	struct kd_act_inst *inst;
	while ((inst = kd_strmap_next(&a->insts, &pos)))
		if (inst->chan_ready || inst->chan_gone)
			kd_instance_status_held_op(inst->key, kd_op_list_push(held));
	return 0;
}

static int st_apply(void *ud, const char *source, uint64_t epoch, const struct kd_op *op,
                    struct kd_error **err)
{
	(void)source;
	(void)epoch;
	struct kd_act *a = ud;
	struct kd_instance_status st;
	if (kd_instance_status_from_op(op, &st, err) < 0)
		return -EINVAL;
	a->status_ops++;
	struct kd_act_inst *inst = kd_strmap_get(&a->insts, op->key);
	struct kd_act_rev *r = NULL;
	if (st.revision)
		r = kd_act_rev_ensure(a, st.ns, st.revision);
	else if (inst)
		r = inst->rev;
	if (st.gone) {
		if (inst) {
			inst->chan_ready = false;
			inst->chan_gone = true;
			inst_changed(a, inst);
		}
	} else if (r) {
		inst = inst_ensure(a, r, op->key);
		inst->chan_ready = st.ready && st.ip;
		inst->chan_gone = false;
		if (st.ip)
			snprintf(inst->ip, sizeof(inst->ip), "%s", st.ip);
		inst_changed(a, inst);
	}
	kd_instance_status_fini(&st);
	return 0;
}

static int st_drop(void *ud, const char *source, const char *key, struct kd_error **err)
{
	(void)source;
	(void)err;
	struct kd_act *a = ud;
	struct kd_act_inst *inst = kd_strmap_get(&a->insts, key);
	if (inst) {
		inst->chan_ready = false;
		inst->chan_gone = false;
		inst_changed(a, inst);
	}
	return 0;
}

/* ---- life cycle ----------------------------------------------------------------------------- */

bool kd_act_revs_synced(const struct kd_act *a)
{
	return a->rev_inf && kd_informer_synced(a->rev_inf) && a->ep_inf &&
	       kd_informer_synced(a->ep_inf) && a->status_down;
}

int kd_act_revs_start(struct kd_act *a, struct kd_error **err)
{
	struct kd_chan_down_opts dopts = {
	    .bind = a->cfg.status_bind,
	    .port = (int)a->cfg.status_port,
	    .t = {.token = a->cfg.chan_token && *a->cfg.chan_token ? a->cfg.chan_token : NULL}};
	struct kd_hs_down_cbs cbs = {.held = st_held, .apply = st_apply, .drop = st_drop};
	a->status_down = kd_chan_down_new(a->loop, &dopts, &cbs, a, err);
	if (!a->status_down)
		return kd_error_wrap(err, "status channel");
	kd_log_info("status channel (kd-node -> kd-activator) on %s:%d", a->cfg.status_bind,
	            kd_chan_down_port(a->status_down));

	const char *ns = a->cfg.namespace && *a->cfg.namespace ? a->cfg.namespace : NULL;
	struct kd_informer_opts ro = {.res = &revisions, .ns = ns};
	struct kd_informer_handlers rh = {.on_add = rev_upsert,
	                                  .on_update = kd_informer_update_as_add,
	                                  .on_delete = rev_delete,
	                                  .on_synced = rev_synced,
	                                  .arg = a};
	struct kd_informer_opts eo = {
	    .res = &kd_k8s_endpoints, .ns = ns, .label_selector = LABEL_SERVICE_TYPE "=Private"};
	struct kd_informer_handlers eh = {.on_add = ep_add,
	                                  .on_update = kd_informer_update_as_add,
	                                  .on_delete = ep_delete,
	                                  .on_synced = ep_synced,
	                                  .arg = a};
	if (kd_informer_new(a->k8s, &ro, &rh, &a->rev_inf, err) < 0 ||
	    kd_informer_new(a->k8s, &eo, &eh, &a->ep_inf, err) < 0)
		return kd_error_wrap(err, "informers");
	a->start_ms = kd_loop_now_ms(a->loop);
	kd_informer_start(a->rev_inf);
	kd_informer_start(a->ep_inf);
	return 0;
}

void kd_act_revs_stop(struct kd_act *a)
{
	kd_informer_free(a->ep_inf);
	a->ep_inf = NULL;
	kd_informer_free(a->rev_inf);
	a->rev_inf = NULL;
	kd_chan_down_free(a->status_down);
	a->status_down = NULL;
	size_t pos = 0;
	struct kd_act_rev *r;
	while ((pos = 0, r = kd_strmap_next(&a->revs, &pos)))
		rev_free(a, r);
	struct kd_act_inst *inst;
	while ((pos = 0, inst = kd_strmap_next(&a->insts, &pos))) {
		kd_strmap_del(&a->insts, inst->key);
		free(inst->key);
		free(inst);
	}
	kd_strmap_fini(&a->revs);
	kd_strmap_fini(&a->insts);
}
