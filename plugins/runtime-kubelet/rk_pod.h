/* plugins/runtime-kubelet/rk_pod.h: the pure parts of runtime-kubelet: what a Pod object (from
 * the plugin's watch, a GET or a create's answer) says about the sandbox the node's kubelet runs
 * for it, whether an existing Pod of an instance's name may be adopted, which runtime events an
 * observed Pod calls for, and the bodies the plugin sends (the Pod to create, the DeleteOptions).
 * No I/O; unit-tested in tests/unit/test_runtime_kubelet.c. */
#ifndef KD_RK_POD_H
#define KD_RK_POD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "kd/stage.h"

/* Label selector of the plugin's watch: kubedirect instances only (KD_LABEL_MANAGED). */
#define RK_LABEL_SELECTOR "kubedirect.dev/managed=true"

enum rk_phase {
	RK_PHASE_UNKNOWN = 0, /* no or an unknown status.phase */
	RK_PHASE_PENDING,
	RK_PHASE_RUNNING,
	RK_PHASE_SUCCEEDED,
	RK_PHASE_FAILED,
};

/* What a Pod says, all strings borrowed from it (valid while it lives). */
struct rk_pod_state {
	const char *uid;  /* metadata.uid, or NULL */
	const char *node; /* spec.nodeName, or NULL */
	const char *ip;   /* status.podIP, or NULL ("" reads as NULL) */
	enum rk_phase phase;
	bool ready;       /* condition Ready is "True" */
	bool managed;     /* label kubedirect.dev/managed is "true" */
	bool terminating; /* metadata.deletionTimestamp is set */
	/* Succeeded/Failed: status.reason, else the first terminated container's reason; NULL */
	const char *reason;
	const char *message; /* status.message, else that container's message; NULL */
	int exit_code;       /* that container's exitCode; 0 when none */
};

/* Reads pod (borrowed) into *out (caller storage, zeroed first). 0, or -EINVAL when pod is not
 * an object with metadata.name. */
int rk_pod_state_read(struct json_object *pod, struct rk_pod_state *out);

/* What start() does with a Pod already in the API under the instance's name. */
enum rk_adopt {
	RK_ADOPT = 0,        /* it is the instance: track it, create nothing */
	RK_ADOPT_WAIT_GONE,  /* an older Pod of the name is terminating: create once it is gone */
	RK_ADOPT_FOREIGN,    /* not a kubedirect instance: never touched (refused) */
	RK_ADOPT_OTHER_NODE, /* bound to another node (refused) */
	RK_ADOPT_OTHER_UID,  /* not the incarnation start() was given (refused) */
	RK_ADOPT_FINISHED,   /* Succeeded or Failed: its sandbox is gone for good (refused) */
};

/* The decision for `existing` (read by rk_pod_state_read) and an instance bound to `node`,
 * start()ed with want_uid (NULL: any uid, i.e. not yet written back). Rules, in order: not
 * managed -> FOREIGN; another node -> OTHER_NODE; want_uid given and different -> OTHER_UID;
 * want_uid NULL and terminating -> WAIT_GONE; Succeeded/Failed -> FINISHED; else ADOPT (a
 * terminating Pod of the wanted uid too: its deletion ends the sandbox). */
enum rk_adopt rk_adopt_decide(const struct rk_pod_state *existing, const char *node,
                              const char *want_uid);
/* Static name ("adopt", "wait-gone", "foreign", "other-node", "other-uid", "finished"). */
const char *rk_adopt_name(enum rk_adopt a);

/* The events an observed Pod calls for, in order, for a sandbox now in phase `cur` (a stopped
 * sandbox only ever ends by the Pod's deletion, not through this):
 *  - Succeeded: EXITED (exit_code, reason "Completed" unless the Pod says), final;
 *  - Failed: FAILED (the Pod's reason, else "Failed"), final;
 *  - else STARTED once the Pod has an IP (the kubelet made the sandbox), then READY when it
 *    also has condition Ready=True (the same observation may give both, STARTED first).
 * Readiness that goes away again gives no event (the ABI has none). */
struct rk_events {
	enum kd_runtime_event_type type[2];
	size_t n;
	bool final;         /* the last event is FAILED or EXITED: the sandbox is gone */
	const char *reason; /* for the final event (borrowed from the state or static) */
};
void rk_events_for(enum kd_sandbox_phase cur, const struct rk_pod_state *st, struct rk_events *out);

/* The Pod to POST: a deep copy of pod (borrowed) without what the API Server sets
 * (metadata.uid, resourceVersion, creationTimestamp, deletionTimestamp,
 * deletionGracePeriodSeconds, generation, managedFields, selfLink; status), bound to node
 * (spec.nodeName). Returns owned, or NULL when pod has no spec object. */
struct json_object *rk_pod_for_create(struct json_object *pod, const char *node);

/* DeleteOptions for stop(grace_ms): gracePeriodSeconds = grace rounded up to seconds (capped
 * at one hour), preconditions.uid when uid is given. Returns owned. */
struct json_object *rk_delete_options(uint32_t grace_ms, const char *uid);

/* Field selector of the watch of one node: "spec.nodeName=<node>". Returns owned; free(). */
char *rk_field_selector(const char *node);

#endif /* KD_RK_POD_H */
