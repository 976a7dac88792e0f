/* autoscaler-shim/insts.c: the instance table of kd-autoscaler (see autoscaler.h): every
 * instance of every revision by key, each also listed by its revision, and the adoption of
 * managed Pods seen through the API Server.
 *
 * Decisions made here:
 *  - A managed Pod is adopted only when its owner is one of our PodAutoscalers with the same
 *    uid (restart: what a previous incarnation created).
 *  - The first time an instance is observed in the API it is accounted to the scheduler as
 *    bound on its node with the Pod's own spec (kd_pod_view); the template's requests count
 *    only when that spec cannot be read.
 *  - Until the node reports it on the status channel, readiness and IP come from the Pod.
 */
#include <errno.h>
#include <string.h>

#include "autoscaler.h"
#include "kd/json.h"
#include "kd/log.h"

static void rev_add_inst(struct kd_as_rev *rev, struct kd_as_inst *inst)
{
	if (rev->n_insts == rev->cap_insts) {
		rev->cap_insts = rev->cap_insts ? rev->cap_insts * 2 : 16;
		rev->insts = kd_xrealloc(rev->insts, rev->cap_insts * sizeof(*rev->insts));
	}
	rev->insts[rev->n_insts++] = inst;
	inst->rev = rev;
}

static void rev_del_inst(struct kd_as_rev *rev, struct kd_as_inst *inst)
{
	for (size_t i = 0; i < rev->n_insts; i++)
		if (rev->insts[i] == inst) {
			rev->insts[i] = rev->insts[--rev->n_insts];
			return;
		}
}

struct kd_as_inst *kd_as_inst_find(struct kd_as *as, const char *key)
{
	return key ? kd_strmap_get(&as->insts, key) : NULL;
}

struct kd_as_inst *kd_as_inst_new(struct kd_as *as, struct kd_as_rev *rev,
                                  struct kd_instance_desc *d)
{
	struct kd_as_inst *inst = kd_xcalloc(1, sizeof(*inst));
	inst->d = *d; /* moved */
	kd_instance_init(d);
	inst->key = kd_instance_key(&inst->d);
	inst->created_ms = as->loop ? kd_loop_now_ms(as->loop) : 0;
	kd_strmap_put(&as->insts, inst->key, inst);
	rev_add_inst(rev, inst);
	return inst;
}

void kd_as_inst_remove(struct kd_as *as, struct kd_as_inst *inst)
{
	if (as->scheduler)
		as->scheduler->release(kd_plugin_state(as->scheduler_h), inst->key);
	kd_strmap_del(&as->insts, inst->key);
	if (inst->rev) {
		rev_del_inst(inst->rev, inst);
		kd_as_rev_dirty(as, inst->rev);
	}
	kd_instance_fini(&inst->d);
	free(inst->ip);
	free(inst->status_source);
	free(inst->key);
	free(inst);
}

void kd_as_insts_clear(struct kd_as *as)
{
	size_t n = as->insts.n, k = 0, pos = 0;
	struct kd_as_inst **all = kd_xcalloc(n ? n : 1, sizeof(*all));
	struct kd_as_inst *inst;
	while ((inst = kd_strmap_next(&as->insts, &pos)))
		all[k++] = inst;
	for (size_t i = 0; i < k; i++) {
		if (all[i]->rev)
			rev_del_inst(all[i]->rev, all[i]);
		all[i]->rev = NULL;
		kd_as_inst_remove(as, all[i]);
	}
	free(all);
	kd_strmap_fini(&as->insts);
}

static bool pod_ready(json_object *pod)
{
	json_object *conds = kd_json_get_array(pod, "status.conditions");
	for (size_t i = 0; conds && i < json_object_array_length(conds); i++) {
		json_object *c = json_object_array_get_idx(conds, i);
		const char *t = kd_json_get_string(c, "type");
		const char *s = kd_json_get_string(c, "status");
		if (t && s && strcmp(t, "Ready") == 0)
			return strcmp(s, "True") == 0;
	}
	return false;
}

/* Accounts inst's Pod (borrowed) to the scheduler as bound on its node. */
static void account_bound(struct kd_as *as, struct kd_as_inst *inst, json_object *pod)
{
	struct kd_pod_request req = {.key = inst->key,
	                             .revision = inst->rev ? inst->rev->key : NULL,
	                             .requests = {.pods = 1}};
	struct kd_pod_view pv;
	kd_autoerr struct kd_error *err = NULL;
	bool own = kd_pod_view_init(&pv, kd_json_get_object(pod, "spec"), &err) == 0;
	if (own) {
		kd_pod_view_apply(&pv, &req);
	} else {
		kd_log_key_warn(inst->rev ? inst->rev->key : NULL,
		                "chain: pod %s: %s; counting its template's requests", inst->key,
		                kd_error_msg(err));
		if (inst->rev && inst->rev->deploy && !inst->rev->tmpl_error)
			kd_pod_view_apply(&inst->rev->tmpl, &req);
	}
	as->scheduler->pod_bound(kd_plugin_state(as->scheduler_h), &req, inst->d.node);
	if (own)
		kd_pod_view_fini(&pv);
}

struct kd_as_inst *kd_as_inst_observe(struct kd_as *as, json_object *pod)
{
	kd_autofree char *key = kd_informer_key(pod);
	if (!key)
		return NULL;
	struct kd_as_inst *inst = kd_as_inst_find(as, key);
	if (!inst) {
		struct kd_instance_desc d;
		if (kd_instance_from_pod(pod, &d, NULL) < 0)
			return NULL;
		struct kd_as_rev *rev = kd_as_rev_find(as, d.ns, d.owner_name);
		if (!rev || !rev->pa_uid || strcmp(rev->pa_uid, d.owner_uid) != 0) {
			kd_instance_fini(&d);
			return NULL;
		}
		inst = kd_as_inst_new(as, rev, &d);
		inst->chan = kd_as_chan_for_node(as, inst->d.node);
		kd_log_key_info(rev->key, "chain: adopted %s on %s", inst->key, inst->d.node);
	}
	if (!inst->observed && inst->d.node)
		account_bound(as, inst, pod);
	inst->observed = true;
	if (kd_json_get(pod, "metadata.deletionTimestamp") && !inst->deleting) {
		inst->deleting = true;
		inst->ready = false;
	}
	if (!inst->status_source && !inst->deleting) {
		bool r = pod_ready(pod);
		const char *ip = kd_json_get_string(pod, "status.podIP");
		if (r != inst->ready || (ip && (!inst->ip || strcmp(ip, inst->ip) != 0))) {
			inst->ready = r && ip;
			free(inst->ip);
			inst->ip = ip ? kd_xstrdup(ip) : NULL;
		}
	}
	if (inst->rev)
		kd_as_rev_dirty(as, inst->rev);
	return inst;
}
