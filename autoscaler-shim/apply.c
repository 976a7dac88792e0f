/* autoscaler-shim/apply.c: decisions carried out along the chain (see autoscaler.h): a plan of
 * plan.c becomes instances and kd_op upserts queued on their nodes' instance channels, victims
 * cancelled or deleted, and the API Server delete as the fallback.
 *
 * Decisions made here:
 *  - Victims not yet observed in the API are cancelled: a delete op to the node, the scheduler
 *    reservation released and the instance forgotten at once. Victims already persisted get a
 *    delete op (the node stops and deletes them) and stop counting at once; a graceful DELETE
 *    through the API Server with a uid precondition follows only if their channel is down or
 *    the Pod is still there KD_AS_DELETE_FALLBACK_MS later. They leave the table when the Pod
 *    informer reports the deletion.
 *  - A placement failure is logged and posted as one Warning event (FailedScheduling) per
 *    distinct message; the revision keeps it (sched_error) for its status until a plan places
 *    everything again.
 */
#include <errno.h>
#include <string.h>

#include "autoscaler.h"
#include "kd/json.h"
#include "kd/log.h"

static void delete_through_api_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	(void)resp;
	char *key = arg;
	if (err && err->http_status != 404 && err->http_status != 409)
		kd_log_warn("chain: delete pod %s: %s", key, kd_error_msg(err));
	free(key);
}

void kd_as_delete_through_api(struct kd_as *as, struct kd_as_inst *inst, bool force)
{
	json_object *body = json_object_new_object();
	if (force) /* its node is gone: nothing can terminate it gracefully (as pod GC does) */
		json_object_object_add(body, "gracePeriodSeconds", json_object_new_int(0));
	json_object *cached = kd_informer_get(as->pod_inf, inst->d.ns, inst->d.name);
	const char *uid = kd_json_get_string(cached, "metadata.uid");
	if (uid) {
		json_object *pre = json_object_new_object();
		json_object_object_add(pre, "uid", json_object_new_string(uid));
		json_object_object_add(body, "preconditions", pre);
	}
	struct kd_k8s_request req = {.verb = KD_K8S_DELETE,
	                             .res = &kd_k8s_pods,
	                             .ns = inst->d.ns,
	                             .name = inst->d.name,
	                             .body = body};
	kd_autoerr struct kd_error *err = NULL;
	char *key = kd_xstrdup(inst->key);
	if (kd_k8s_submit(as->k8s_w, &req, delete_through_api_done, key, &err) < 0) {
		kd_log_warn("chain: delete pod %s: %s", key, kd_error_msg(err));
		free(key);
	}
	json_object_put(body);
}

static void send_delete(struct kd_as_inst *inst, const char *reason)
{
	if (!inst->chan)
		return;
	struct kd_op op;
	kd_op_init(&op, KD_OP_DELETE, inst->key);
	kd_op_set_str(&op.reason, reason);
	kd_as_chan_queue(inst->chan, &op);
}

void kd_as_chain_apply(struct kd_as *as, struct kd_as_rev *rev, int32_t desired)
{
	if (!rev->deploy || !rev->pa_uid || !as->warm)
		return; /* the tick applies it later */
	struct kd_as_plan plan;
	memset(&plan, 0, sizeof(plan));
	kd_autoerr struct kd_error *err = NULL;
	if (kd_as_plan_make(as, rev, desired, &plan, &err) < 0) {
		kd_log_key_error(rev->key, "chain: workload plan for %d: %s", desired,
		                 kd_error_msg(err));
		return;
	}
	for (size_t i = 0; i < plan.n_create; i++) {
		struct kd_as_plan_create *c = &plan.create[i];
		struct kd_as_inst *inst = kd_as_inst_new(as, rev, &c->d);
		inst->chan = kd_as_chan_for_node(as, inst->d.node);
		kd_as_chan_queue(inst->chan, &c->op);
		as->created++;
	}
	if (plan.placed_all && plan.wanted) {
		free(rev->sched_error);
		rev->sched_error = NULL;
	} else if (!plan.placed_all) {
		free(rev->sched_error);
		rev->sched_error = plan.sched_error;
		plan.sched_error = NULL;
		kd_log_key_warn(rev->key, "chain: %s", rev->sched_error);
		kd_as_event(as, rev->pa, "Warning", "FailedScheduling", "%s", rev->sched_error);
	}
	for (size_t i = 0; i < plan.n_cancel; i++) {
		send_delete(plan.cancel[i], "ScaleDown");
		as->cancelled++;
		kd_as_inst_remove(as, plan.cancel[i]);
	}
	for (size_t i = 0; i < plan.n_del; i++) {
		struct kd_as_inst *inst = plan.del[i];
		send_delete(inst, "ScaleDown");
		inst->deleting = true;
		inst->ready = false;
		as->deleted++;
		/* the node deletes a persisted instance it is told to delete (kd/instance.h); the
		 * API Server delete is the fallback when its channel is down or the Pod is still
		 * there KD_AS_DELETE_FALLBACK_MS later */
		if (inst->chan && inst->chan->up && kd_chan_up_ready(inst->chan->up))
			inst->delete_at = kd_loop_now_ms(as->loop) + KD_AS_DELETE_FALLBACK_MS;
		else
			kd_as_delete_through_api(as, inst, false);
	}
	size_t victims = plan.n_cancel + plan.n_del;
	if (plan.n_create || victims)
		kd_log_key_info(rev->key, "chain: desired %d: +%zu -%zu", desired, plan.n_create,
		                victims);
	bool changed = plan.n_create || victims || !plan.placed_all;
	kd_as_plan_fini(&plan);
	kd_as_chain_flush(as);
	if (changed)
		kd_as_rev_dirty(as, rev);
}

void kd_as_chain_sweep(struct kd_as *as)
{
	uint64_t now = kd_loop_now_ms(as->loop);
	size_t pos = 0;
	struct kd_as_inst *inst;
	while ((inst = kd_strmap_next(&as->insts, &pos))) {
		if (inst->deleting && inst->delete_at && now >= inst->delete_at) {
			inst->delete_at = 0;
			kd_log_key_info(
			    inst->rev ? inst->rev->key : NULL,
			    "chain: %s still in the API after its delete op; deleting it there",
			    inst->key);
			kd_as_delete_through_api(as, inst, false);
		}
	}
}

void kd_as_chain_forget_rev(struct kd_as *as, struct kd_as_rev *rev)
{
	while (rev->n_insts) {
		struct kd_as_inst *inst = rev->insts[rev->n_insts - 1];
		if (!inst->observed)
			send_delete(inst, "RevisionDeleted");
		inst->rev = NULL;
		rev->n_insts--;
		kd_as_inst_remove(as, inst);
	}
	kd_as_chain_flush(as);
}
