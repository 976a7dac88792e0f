/* plugins/runtime-kubelet/rk_pod.c: the pure parts of runtime-kubelet (rk_pod.h). */
#include "rk_pod.h"

#include <errno.h>
#include <string.h>

#include "kd/common.h"
#include "kd/json.h"

static bool str_is(const char *s, const char *want)
{
	return s && strcmp(s, want) == 0;
}

static enum rk_phase phase_of(const char *s)
{
	if (str_is(s, "Pending"))
		return RK_PHASE_PENDING;
	if (str_is(s, "Running"))
		return RK_PHASE_RUNNING;
	if (str_is(s, "Succeeded"))
		return RK_PHASE_SUCCEEDED;
	if (str_is(s, "Failed"))
		return RK_PHASE_FAILED;
	return RK_PHASE_UNKNOWN;
}

static bool condition_true(struct json_object *pod, const char *type)
{
	struct json_object *conds = kd_json_get_array(pod, "status.conditions");
	size_t n = conds ? json_object_array_length(conds) : 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(conds, i);
		if (str_is(kd_json_get_string(c, "type"), type))
			return str_is(kd_json_get_string(c, "status"), "True");
	}
	return false;
}

/* The first container status with state.terminated (containers, then init containers), or
 * NULL. */
static struct json_object *terminated_container(struct json_object *pod)
{
	static const char *const lists[] = {"status.containerStatuses",
	                                    "status.initContainerStatuses"};
	for (size_t l = 0; l < KD_ARRAY_SIZE(lists); l++) {
		struct json_object *arr = kd_json_get_array(pod, lists[l]);
		size_t n = arr ? json_object_array_length(arr) : 0;
		for (size_t i = 0; i < n; i++) {
			struct json_object *t = kd_json_get_object(
			    json_object_array_get_idx(arr, i), "state.terminated");
			if (t)
				return t;
		}
	}
	return NULL;
}

int rk_pod_state_read(struct json_object *pod, struct rk_pod_state *out)
{
	memset(out, 0, sizeof(*out));
	if (!pod || !json_object_is_type(pod, json_type_object) ||
	    !kd_json_get_string(pod, "metadata.name"))
		return -EINVAL;
	out->uid = kd_json_get_string(pod, "metadata.uid");
	out->node = kd_json_get_string(pod, "spec.nodeName");
	const char *ip = kd_json_get_string(pod, "status.podIP");
	out->ip = ip && *ip ? ip : NULL;
	out->phase = phase_of(kd_json_get_string(pod, "status.phase"));
	out->ready = condition_true(pod, "Ready");
	out->managed =
	    str_is(kd_json_get_string(pod, "metadata.labels.kubedirect\\.dev/managed"), "true");
	out->terminating = kd_json_get(pod, "metadata.deletionTimestamp") != NULL;
	if (out->phase == RK_PHASE_SUCCEEDED || out->phase == RK_PHASE_FAILED) {
		struct json_object *t = terminated_container(pod);
		int64_t code = 0;
		if (t && kd_json_get_int64(t, "exitCode", &code) == 0 && code >= INT32_MIN &&
		    code <= INT32_MAX)
			out->exit_code = (int)code;
		out->reason = kd_json_get_string(pod, "status.reason");
		if (!out->reason && t)
			out->reason = kd_json_get_string(t, "reason");
		out->message = kd_json_get_string(pod, "status.message");
		if (!out->message && t)
			out->message = kd_json_get_string(t, "message");
	}
	return 0;
}

enum rk_adopt rk_adopt_decide(const struct rk_pod_state *existing, const char *node,
                              const char *want_uid)
{
	if (!existing->managed)
		return RK_ADOPT_FOREIGN;
	if (!existing->node || !node || strcmp(existing->node, node) != 0)
		return RK_ADOPT_OTHER_NODE;
	if (want_uid && (!existing->uid || strcmp(existing->uid, want_uid) != 0))
		return RK_ADOPT_OTHER_UID;
	if (!want_uid && existing->terminating)
		return RK_ADOPT_WAIT_GONE;
	if (existing->phase == RK_PHASE_SUCCEEDED || existing->phase == RK_PHASE_FAILED)
		return RK_ADOPT_FINISHED;
	return RK_ADOPT;
}

const char *rk_adopt_name(enum rk_adopt a)
{
	switch (a) {
	case RK_ADOPT:
		return "adopt";
	case RK_ADOPT_WAIT_GONE:
		return "wait-gone";
	case RK_ADOPT_FOREIGN:
		return "foreign";
	case RK_ADOPT_OTHER_NODE:
		return "other-node";
	case RK_ADOPT_OTHER_UID:
		return "other-uid";
	case RK_ADOPT_FINISHED:
		return "finished";
	}
	return "unknown";
}

void rk_events_for(enum kd_sandbox_phase cur, const struct rk_pod_state *st, struct rk_events *out)
{
	memset(out, 0, sizeof(*out));
	if (st->phase == RK_PHASE_SUCCEEDED) {
		out->type[out->n++] = KD_RUNTIME_EXITED;
		out->final = true;
		out->reason = st->reason ? st->reason : "Completed";
		return;
	}
	if (st->phase == RK_PHASE_FAILED) {
		out->type[out->n++] = KD_RUNTIME_FAILED;
		out->final = true;
		out->reason = st->reason ? st->reason : "Failed";
		return;
	}
	if (!st->ip)
		return;
	if (cur == KD_SANDBOX_PENDING) {
		out->type[out->n++] = KD_RUNTIME_STARTED;
		cur = KD_SANDBOX_STARTED;
	}
	if (cur == KD_SANDBOX_STARTED && st->ready)
		out->type[out->n++] = KD_RUNTIME_READY;
}

struct json_object *rk_pod_for_create(struct json_object *pod, const char *node)
{
	if (!kd_json_get_object(pod, "spec"))
		return NULL;
	struct json_object *copy = NULL;
	if (json_object_deep_copy(pod, &copy, NULL) != 0 || !copy)
		return NULL;
	static const char *const server_fields[] = {
	    "uid",        "resourceVersion", "creationTimestamp", "deletionTimestamp",
	    "generation", "managedFields",   "selfLink",          "deletionGracePeriodSeconds",
	};
	struct json_object *meta = kd_json_get_object(copy, "metadata");
	for (size_t i = 0; meta && i < KD_ARRAY_SIZE(server_fields); i++)
		json_object_object_del(meta, server_fields[i]);
	json_object_object_del(copy, "status");
	json_object_object_add(kd_json_get_object(copy, "spec"), "nodeName",
	                       json_object_new_string(node ? node : ""));
	return copy;
}

struct json_object *rk_delete_options(uint32_t grace_ms, const char *uid)
{
	struct json_object *o = json_object_new_object();
	int64_t s = ((int64_t)grace_ms + 999) / 1000;
	json_object_object_add(o, "gracePeriodSeconds", json_object_new_int64(KD_MIN(s, 3600)));
	if (uid && *uid) {
		struct json_object *pre = json_object_new_object();
		json_object_object_add(pre, "uid", json_object_new_string(uid));
		json_object_object_add(o, "preconditions", pre);
	}
	return o;
}

char *rk_field_selector(const char *node)
{
	return kd_xasprintf("spec.nodeName=%s", node ? node : "");
}
