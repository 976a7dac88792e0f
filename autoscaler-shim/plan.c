/* autoscaler-shim/plan.c: the chain's decisions, without I/O (see autoscaler.h): a desired scale
 * becomes a workload plan over the revision's live instances, each new instance a scheduler
 * placement on a node with an instance channel, and each victim a cancel or a delete.
 *
 * Decisions made here:
 *  - Live instances are the revision's non-victims; victims still terminating (and so possibly
 *    existing) reserve their names, so the workload never reuses one.
 *  - Every instance of a revision requests what its template's pod spec requests as Kubernetes
 *    counts it (kd_pod_view: init and sidecar containers, limits-only containers, overhead).
 *  - Placement stops at the first instance nothing fits (the next decision retries); a placed
 *    instance whose node has no instance channel is released at once.
 *  - A placement failure is reported for the revision ("no node fits an instance of ns/rev:
 *    why"), not for the random instance name, so a condition and its event stay the same while
 *    the cause does.
 *  - Victims never observed in the API are cancelled; persisted ones are deleted.
 */
#include <errno.h>
#include <string.h>

#include "autoscaler.h"
#include "kd/json.h"

bool kd_as_inst_routable(struct kd_as *as, const struct kd_as_inst *inst)
{
	return inst->ready && inst->ip && !inst->deleting &&
	       !(inst->d.node && kd_strmap_get(&as->notready, inst->d.node));
}

void kd_as_plan_fini(struct kd_as_plan *plan)
{
	for (size_t i = 0; i < plan->n_create; i++) {
		kd_instance_fini(&plan->create[i].d);
		kd_op_fini(&plan->create[i].op);
	}
	free(plan->create);
	free(plan->cancel);
	free(plan->del);
	free(plan->sched_error);
	memset(plan, 0, sizeof(*plan));
}

static void plan_failed(struct kd_as_plan *plan, char *why)
{
	plan->placed_all = false;
	free(plan->sched_error);
	plan->sched_error = why;
}

static bool planned_already(const struct kd_as_plan *plan, const char *name)
{
	for (size_t i = 0; i < plan->n_create; i++)
		if (strcmp(plan->create[i].d.name, name) == 0)
			return true;
	return false;
}

/* Places one new instance `name` of rev; on success appends it to plan->create. */
static int place_one(struct kd_as *as, struct kd_as_rev *rev, const char *name,
                     struct kd_as_plan *plan)
{
	void *sch = kd_plugin_state(as->scheduler_h);
	struct kd_instance_desc d;
	kd_instance_init(&d);
	d.ns = kd_xstrdup(rev->ns);
	d.name = kd_xstrdup(name);
	d.tmpl_name = kd_xstrdup(kd_json_get_string(rev->deploy, "metadata.name"));
	d.tmpl_uid = kd_xstrdup(kd_json_get_string(rev->deploy, "metadata.uid"));
	d.tmpl_hash = kd_xstrdup(rev->tmpl_hash);
	d.owner_name = kd_xstrdup(rev->name);
	d.owner_uid = kd_xstrdup(rev->pa_uid);
	d.ctime_ms = (int64_t)(kd_wall_ns() / 1000000);
	kd_autofree char *key = kd_instance_key(&d);
	if (kd_as_inst_find(as, key) || planned_already(plan, name)) {
		kd_instance_fini(&d);
		return 0; /* the workload plugin never reuses a live name; be safe */
	}
	struct kd_pod_request req = {.key = key, .revision = rev->key};
	kd_pod_view_apply(&rev->tmpl, &req);
	char node[KD_NODE_NAME_MAX];
	kd_autoerr struct kd_error *err = NULL;
	int rc = as->scheduler->place(sch, &req, node, &err);
	if (rc < 0) {
		/* "no node fits pod ns/name: why" -> name the revision */
		const char *msg = kd_error_msg(err);
		const char *at = strstr(msg, key);
		if (at && strncmp(at + strlen(key), ": ", 2) == 0)
			plan_failed(plan, kd_xasprintf("no node fits an instance of %s: %s",
			                               rev->key, at + strlen(key) + 2));
		else
			plan_failed(plan, kd_xstrdup(msg));
		kd_instance_fini(&d);
		return rc;
	}
	if (!kd_as_chan_for_node(as, node)) {
		as->scheduler->release(sch, key);
		plan_failed(plan, kd_xasprintf("node %s has no instance channel", node));
		kd_instance_fini(&d);
		return -ENXIO;
	}
	d.node = kd_xstrdup(node);
	struct kd_op op;
	memset(&op, 0, sizeof(op));
	rc = kd_instance_to_op(&d, &op, &err);
	if (rc < 0) {
		as->scheduler->release(sch, key);
		plan_failed(plan, kd_xstrdup(kd_error_msg(err)));
		kd_instance_fini(&d);
		return rc;
	}
	plan->create[plan->n_create].d = d;
	plan->create[plan->n_create++].op = op;
	return 0;
}

int kd_as_plan_make(struct kd_as *as, struct kd_as_rev *rev, int32_t desired,
                    struct kd_as_plan *out, struct kd_error **err)
{
	size_t n = rev->n_insts;
	struct kd_instance *cur = kd_xcalloc(n ? n : 1, sizeof(*cur));
	const char **reserved = kd_xcalloc(n ? n : 1, sizeof(*reserved));
	size_t k = 0, nr = 0;
	for (size_t i = 0; i < n; i++) {
		struct kd_as_inst *inst = rev->insts[i];
		if (inst->deleting) {
			reserved[nr++] = inst->d.name;
			continue;
		}
		cur[k].name = inst->d.name;
		cur[k].node = inst->d.node;
		cur[k].state = inst->observed ? KD_INSTANCE_PERSISTED : KD_INSTANCE_EPHEMERAL;
		cur[k].ready = kd_as_inst_routable(as, inst);
		cur[k].created_ms = inst->created_ms;
		k++;
	}
	struct kd_workload_input in = {.revision = rev->key,
	                               .ns = rev->ns,
	                               .base_name = rev->name,
	                               .desired = desired,
	                               .current = cur,
	                               .n_current = k,
	                               .owner = {.api_version = KD_PA_API_VERSION,
	                                         .kind = KD_PA_KIND,
	                                         .name = rev->name,
	                                         .uid = rev->pa_uid},
	                               .template_hash = rev->tmpl_hash,
	                               .reserved = reserved,
	                               .n_reserved = nr};
	struct kd_workload_plan wp;
	memset(&wp, 0, sizeof(wp));
	int rc = as->workload->plan(kd_plugin_state(as->workload_h), &in, &wp, err);
	free(cur);
	free(reserved);
	if (rc < 0) {
		kd_workload_plan_clear(&wp);
		return rc;
	}
	struct kd_as_plan plan = {.wanted = wp.create.n, .placed_all = true};
	plan.create = kd_xcalloc(wp.create.n ? wp.create.n : 1, sizeof(*plan.create));
	if (wp.create.n && rev->tmpl_error) {
		const char *dname = kd_json_get_string(rev->deploy, "metadata.name");
		plan_failed(&plan, kd_xasprintf("template %s/%s: %s", rev->ns, dname ? dname : "?",
		                                rev->tmpl_error));
	}
	for (size_t i = 0; plan.placed_all && i < wp.create.n; i++)
		if (place_one(as, rev, wp.create.items[i], &plan) < 0)
			break;
	plan.cancel = kd_xcalloc(wp.victims.n ? wp.victims.n : 1, sizeof(*plan.cancel));
	plan.del = kd_xcalloc(wp.victims.n ? wp.victims.n : 1, sizeof(*plan.del));
	for (size_t i = 0; i < wp.victims.n; i++) {
		kd_autofree char *key = kd_xasprintf("%s/%s", rev->ns, wp.victims.items[i]);
		struct kd_as_inst *inst = kd_as_inst_find(as, key);
		if (!inst || inst->deleting || inst->rev != rev)
			continue;
		if (inst->observed)
			plan.del[plan.n_del++] = inst;
		else
			plan.cancel[plan.n_cancel++] = inst;
	}
	kd_workload_plan_clear(&wp);
	*out = plan;
	return 0;
}
