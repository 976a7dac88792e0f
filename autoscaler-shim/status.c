/* autoscaler-shim/status.c: the status channel of kd-autoscaler (see autoscaler.h and the
 * channel contract in kd/instance.h): a kd_chan_down server where every kd-node reports the
 * readiness and address of the instances it runs.
 *
 * Decisions made here:
 *  - A report for a key we do not hold is ignored (not, or no longer, ours).
 *  - "gone" for an instance never persisted means the node lost it: it is forgotten and the
 *    next decision replaces it. For a persisted one only its readiness is dropped (the Pod
 *    informer reports the deletion).
 *  - The handshake's held set is every instance whose readiness this source reported; a drop
 *    makes the instance not ready until the source reports it again.
 */
#include <string.h>

#include "autoscaler.h"
#include "kd/log.h"

static int st_held(void *ud, const char *source, struct kd_op_list *held, struct kd_error **err)
{
	(void)err;
	struct kd_as *as = ud;
	size_t pos = 0;
	struct kd_as_inst *inst;
	while ((inst = kd_strmap_next(&as->insts, &pos)))
		if (inst->status_source && strcmp(inst->status_source, source) == 0)
			kd_instance_status_held_op(inst->key, kd_op_list_push(held));
	return 0;
}

static int st_apply(void *ud, const char *source, uint64_t epoch, const struct kd_op *op,
                    struct kd_error **err)
{
	(void)epoch;
	struct kd_as *as = ud;
	struct kd_instance_status st;
	int rc = kd_instance_status_from_op(op, &st, err);
	if (rc < 0)
		return rc;
	struct kd_as_inst *inst = kd_as_inst_find(as, op->key);
	if (!inst) {
		kd_instance_status_fini(&st);
		return 0; /* not (or no longer) ours: nothing to count */
	}
	if (st.gone) {
		free(inst->status_source);
		inst->status_source = NULL;
		inst->ready = false;
		if (!inst->observed && !inst->deleting) {
			kd_log_warn("chain: %s gone from its node before write-back (%s)",
			            inst->key, st.reason ? st.reason : "no reason");
			struct kd_as_rev *rev = inst->rev;
			kd_as_inst_remove(as, inst);
			if (rev)
				kd_as_decide(as, rev, "instance lost");
		}
	} else {
		bool was = inst->ready;
		free(inst->status_source);
		inst->status_source = kd_xstrdup(source);
		inst->ready = st.ready && st.ip && !inst->deleting;
		if (st.ip) {
			free(inst->ip);
			inst->ip = kd_xstrdup(st.ip);
		}
		if (inst->rev && inst->ready != was)
			kd_as_rev_dirty(as, inst->rev);
	}
	kd_instance_status_fini(&st);
	return 0;
}

static int st_drop(void *ud, const char *source, const char *key, struct kd_error **err)
{
	(void)err;
	struct kd_as *as = ud;
	struct kd_as_inst *inst = kd_as_inst_find(as, key);
	if (inst && inst->status_source && strcmp(inst->status_source, source) == 0) {
		free(inst->status_source);
		inst->status_source = NULL;
		inst->ready = false;
		if (inst->rev)
			kd_as_rev_dirty(as, inst->rev);
	}
	return 0;
}

int kd_as_status_start(struct kd_as *as, struct kd_error **err)
{
	struct kd_chan_down_opts o = {.bind = as->cfg.status_bind,
	                              .port = (int)as->cfg.status_port};
	o.t.token = as->cfg.chan_token && *as->cfg.chan_token ? as->cfg.chan_token : NULL;
	struct kd_hs_down_cbs cbs = {.held = st_held, .apply = st_apply, .drop = st_drop};
	as->status_down = kd_chan_down_new(as->loop, &o, &cbs, as, err);
	if (!as->status_down)
		return kd_error_wrap(err, "status channel");
	kd_log_info("chain: status channel on %s:%d", as->cfg.status_bind,
	            kd_chan_down_port(as->status_down));
	return 0;
}

void kd_as_status_stop(struct kd_as *as)
{
	kd_chan_down_free(as->status_down);
	as->status_down = NULL;
}
