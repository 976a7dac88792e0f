/* kd/stage.h: kind-specific plugin vtables (the `ops` of struct kd_plugin) and the data they
 * exchange: decider (metrics -> desired scale), workload (desired scale -> instance names and
 * victims), scheduler (instances -> nodes), runtime (bound instance -> sandbox -> ready address).
 *
 * Rules for every vtable: the first member is `uint32_t struct_size` (sizeof of the plugin's
 * copy); members are only appended; the host checks KD_HAS_MEMBER (kd/plugin.h) before calling a
 * member added after version 1. Every op gets the `state` returned by the plugin's init as first
 * argument and runs on the host's loop thread. Input pointers are borrowed for the duration of
 * the call only (copy what you keep); `struct kd_error **err` is set on failure (may be NULL).
 */
#ifndef KD_STAGE_H
#define KD_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "kd/common.h"
#include "kd/config.h"
#include "kd/error.h"

struct json_object;

/* Resource amounts: a node's allocatable, a pod's requests, a container's limits. */
struct kd_resources {
	int64_t cpu_milli;
	int64_t memory_bytes;
	int64_t pods;
};

/* ==== runtime ================================================================================ */

/* Longest textual IPv6 address plus NUL (INET6_ADDRSTRLEN). */
#define KD_IP_STRLEN 46

/* Where an environment variable's value comes from: the spec, or what only the runtime knows
 * (the downward API's status fields). */
enum kd_env_source {
	KD_ENV_VALUE = 0,   /* value */
	KD_ENV_POD_IP = 1,  /* the sandbox's address (fieldRef status.podIP, status.podIPs) */
	KD_ENV_HOST_IP = 2, /* the node's address (fieldRef status.hostIP, status.hostIPs) */
};

struct kd_env_var {
	const char *name;
	const char *value; /* KD_ENV_VALUE: the value; else "" */
	enum kd_env_source source;
};

struct kd_container_port {
	const char *name; /* may be NULL */
	uint16_t container_port;
	const char *protocol; /* "TCP" (NULL means TCP), "UDP", "SCTP" */
};

enum kd_probe_type {
	KD_PROBE_NONE = 0, /* ready as soon as started */
	KD_PROBE_HTTP = 1, /* GET http://<pod ip>:port<http_path>, 200-399 is success */
	KD_PROBE_TCP = 2,  /* connect to <pod ip>:port */
	KD_PROBE_EXEC = 3, /* run exec_command in the container, exit 0 is success */
};

/* An HTTP request header (a probe's httpGet.httpHeaders[]). */
struct kd_http_header {
	const char *name;
	const char *value;
};

/* Readiness probe basics (Kubernetes' Probe; zero means Kubernetes' default). */
struct kd_probe {
	enum kd_probe_type type;
	const char *http_path;           /* HTTP */
	uint16_t port;                   /* HTTP, TCP */
	const char *const *exec_command; /* EXEC: argv, n_exec_command entries */
	size_t n_exec_command;
	uint32_t initial_delay_ms;
	uint32_t period_ms;
	uint32_t timeout_ms;
	uint32_t success_threshold;
	uint32_t failure_threshold;
	const struct kd_http_header *http_headers; /* HTTP: sent with the request, in order */
	size_t n_http_headers;
};

struct kd_container_spec {
	const char *name;  /* "user-container", "queue-proxy" */
	const char *image; /* as in the pod spec; runtimes without images map it themselves */
	const char *const *command; /* entrypoint override (n_command entries) or NULL */
	size_t n_command;
	const char *const *args;
	size_t n_args;
	const struct kd_env_var *env;
	size_t n_env;
	const struct kd_container_port *ports;
	size_t n_ports;
	struct kd_probe readiness;
	/* resources.limits: cpu_milli and memory_bytes, 0 where the container sets none (pods is
	 * not used) */
	struct kd_resources limits;
};

/* The Pod's spec.restartPolicy. */
enum kd_restart_policy {
	KD_RESTART_ALWAYS = 0, /* Kubernetes' default */
	KD_RESTART_ON_FAILURE = 1,
	KD_RESTART_NEVER = 2,
};

/* What a runtime starts: one pod sandbox. Everything borrowed for the duration of start(). */
struct kd_sandbox_spec {
	const char *key;    /* "namespace/name": the instance identity (one sandbox per key) */
	const char *ns;     /* pod namespace */
	const char *name;   /* pod name */
	const char *uid;    /* pod UID, or NULL if not yet known (not yet written back) */
	const char *node;   /* node name the pod is bound to */
	const char *pod_ip; /* address to use, or NULL: the runtime assigns one from pod_cidr */
	const char
	    *pod_cidr; /* the node's pod CIDR ("10.244.3.0/24"), or NULL: runtime's default */
	const struct kd_container_spec *containers;
	size_t n_containers;
	/* The full Pod object if the host has one, else NULL. The other members hold what a runtime
	 * needs of it (kd/runtimejson.h makes them); this is for one that hands the Pod on. */
	struct json_object *pod;
	enum kd_restart_policy restart_policy;
};

enum kd_runtime_event_type {
	KD_RUNTIME_STARTED = 1, /* sandbox exists, has its address; containers launched */
	KD_RUNTIME_READY = 2,   /* readiness passed: traffic may be sent to pod_ip */
	KD_RUNTIME_FAILED =
	    3, /* could not start or crashed; the sandbox is gone (reason/message) */
	KD_RUNTIME_EXITED = 4, /* stopped or exited (exit_code); the sandbox is gone */
};

/* One state change. All pointers borrowed, valid only during the callback. */
struct kd_runtime_event {
	enum kd_runtime_event_type type;
	const char *key;     /* the sandbox key given to start */
	const char *uid;     /* the uid given to start, or NULL */
	const char *pod_ip;  /* the sandbox address (all events once assigned), or NULL */
	const char *reason;  /* FAILED/EXITED: CamelCase reason ("Stopped", "Error"), else NULL */
	const char *message; /* human-readable detail, or NULL */
	int exit_code;       /* EXITED */
	uint64_t at_ms;      /* host loop time of the change */
};

/* Called on the loop thread, never from inside start/stop/status (no reentrancy). Per sandbox:
 * STARTED before READY; after FAILED or EXITED nothing more. When a key is started again right
 * after a stop, the old sandbox's EXITED is delivered before the new one's STARTED (tell them
 * apart by uid). The callback may call start/stop. */
typedef void (*kd_runtime_event_cb)(const struct kd_runtime_event *ev, void *arg);

enum kd_sandbox_phase {
	KD_SANDBOX_PENDING = 0, /* accepted, STARTED not yet reported */
	KD_SANDBOX_STARTED = 1,
	KD_SANDBOX_READY = 2,
};

struct kd_sandbox_status {
	enum kd_sandbox_phase phase;
	char pod_ip[KD_IP_STRLEN]; /* "" if none yet */
	char uid[64];              /* uid given to start (truncated), "" if none */
	uint64_t created_ms;       /* loop time of start() */
	uint64_t ready_ms;         /* loop time of READY, 0 before */
};

/* What a runtime's status op answers for a live sandbox: *out (caller storage) is zeroed, then
 * given phase, the times, and copies of pod_ip and uid (truncated to the fields; NULL or "":
 * left ""). */
KD_API void kd_sandbox_status_set(struct kd_sandbox_status *out, enum kd_sandbox_phase phase,
                                  const char *pod_ip, const char *uid, uint64_t created_ms,
                                  uint64_t ready_ms);

/* One container of a live sandbox (kubelet's ContainerStatus, reduced). Versioned by
 * struct_size (not part of the build signature): members are only appended. */
struct kd_container_status {
	uint32_t struct_size; /* set by the caller */
	char name[64];
	bool running;           /* its process is alive */
	bool ready;             /* running and its readiness probe passed (or it has none) */
	uint32_t restart_count; /* restarts by the runtime since the sandbox started */
	int last_exit_code;     /* of its last termination; 128+n for signal n; -1 if none */
	char reason[64];        /* waiting reason ("ContainerCreating", "CrashLoopBackOff") or "" */
	char message[256];      /* detail of the reason, or the last readiness failure, or "" */
	int64_t pid;            /* host pid while running, else 0 */
};

struct kd_runtime_ops {
	uint32_t struct_size; /* sizeof(struct kd_runtime_ops) */
	/* Starts the sandbox for spec->key. Returns 0 once accepted; events then follow through
	 * cb(ev, cb_arg) (cb_arg borrowed until EXITED/FAILED is delivered or fini). Idempotent:
	 * a start for a key that already has a sandbox with the same uid (or either uid NULL)
	 * returns 0 and changes nothing (the first cb/cb_arg stay). A different uid for a live key
	 * is -EBUSY. No address left: -EADDRNOTAVAIL. Bad spec: -EINVAL. */
	int (*start)(void *state, const struct kd_sandbox_spec *spec, kd_runtime_event_cb cb,
	             void *cb_arg, struct kd_error **err);
	/* Stops the sandbox: SIGTERM-like, SIGKILL-like after grace_ms. Its address is released and
	 * EXITED is delivered (asynchronously). Unknown key: -ENOENT. */
	int (*stop)(void *state, const char *key, uint32_t grace_ms, struct kd_error **err);
	/* Current state of a live sandbox into *out (caller storage). Unknown key: -ENOENT. */
	int (*status)(void *state, const char *key, struct kd_sandbox_status *out);
	/* New members only below this line. */
	/* Optional (check KD_HAS_MEMBER and NULL): the state of container `index` (the order of
	 * kd_sandbox_spec.containers) of a live sandbox into *out (caller storage; the caller sets
	 * out->struct_size = sizeof(*out), the runtime fills what that covers), as a kubelet's
	 * containerStatuses would show it. Unknown key: -ENOENT; index out of range: -ERANGE. */
	int (*container_status)(void *state, const char *key, size_t index,
	                        struct kd_container_status *out);
	/* Optional (check KD_HAS_MEMBER; 0 when absent): KD_RUNTIME_CAP_* bits. */
	uint32_t caps;
};

/* kd_runtime_ops.caps: the runtime writes the Pod itself. start() creates the bound Pod from
 * kd_sandbox_spec.pod (or adopts it when it exists), stop() deletes it, and its status is the
 * node's real kubelet's (runtime-kubelet). Its host creates no Pod, patches no Pod status, and
 * hands it kubedirect instances only: every other Pod bound to the node is the kubelet's. */
#define KD_RUNTIME_CAP_OWNS_POD 1u

/* ==== decider ================================================================================ */

/* One metrics sample for a revision (from the activator or a pod's queue-proxy). */
struct kd_metric_sample {
	uint64_t at_ms;     /* host loop time the sample was taken */
	const char *source; /* pod or activator name, or NULL; borrowed */
	double concurrency; /* average concurrent requests over the sample period */
	double rps;         /* requests per second over the sample period */
};

/* Per-revision scaling input. annotations: the revision's annotations object (Knative's
 * per-revision autoscaling keys override the plugin config), borrowed, or NULL. */
struct kd_scale_input {
	uint64_t now_ms;
	uint32_t ready;     /* ready instances now */
	uint32_t min_scale; /* 0: none */
	uint32_t max_scale; /* 0: unbounded */
	struct json_object *annotations;
	/* From the PodAutoscaler spec (not annotations); zero values are Knative's defaults. */
	uint32_t container_concurrency; /* spec.containerConcurrency; 0: unlimited */
	bool unreachable;               /* spec.reachability == "Unreachable" */
};

struct kd_scale_decision {
	int32_t desired; /* desired instances, or -1: no decision yet (not enough data) */
	double excess_burst_capacity;
	bool panic; /* in panic mode */
};

struct kd_decider_ops {
	uint32_t struct_size;
	/* Adds a sample to the revision's windows ("ns/name", borrowed). 0 or -errno. */
	int (*record)(void *state, const char *revision, const struct kd_metric_sample *sample);
	/* Computes the desired scale of a revision into *out (caller storage). */
	int (*decide)(void *state, const char *revision, const struct kd_scale_input *in,
	              struct kd_scale_decision *out, struct kd_error **err);
	/* Drops everything kept for a revision (deleted or given back to Knative). */
	void (*forget)(void *state, const char *revision);
	/* New members only below this line. */
	/* Knative's Poke: after record, whether this sample calls for an immediate decide instead
	 * of waiting for the next tick (the revision is at zero, or unknown, and the sample shows
	 * load). 1 yes, 0 no. Optional (check KD_HAS_MEMBER and NULL). */
	int (*poke)(void *state, const char *revision, const struct kd_metric_sample *sample);
	/* Replaces the plugin's configuration while it runs (kd-autoscaler: config-autoscaler
	 * changed). config is a struct of the descriptor's config_size filled from its options
	 * table, as init gets it, but borrowed for the call only (copy what is kept, strings
	 * included). Validated as init validates: on failure -EINVAL with *err, and the
	 * previous configuration stays in force. Kept per revision (metric windows, panic state);
	 * new values apply from each revision's next decide. Optional (check KD_HAS_MEMBER and
	 * NULL): without it the configuration given to init is final. */
	int (*reconfigure)(void *state, const void *config, struct kd_error **err);
};

/* ==== workload =============================================================================== */

enum kd_instance_state {
	KD_INSTANCE_EPHEMERAL = 1,  /* sent downstream, not persisted */
	KD_INSTANCE_PERSISTING = 2, /* write in flight */
	KD_INSTANCE_PERSISTED = 3,  /* observed through the API Server watch */
};

/* A Kubernetes owner reference (metadata.ownerReferences[] with controller: true). Borrowed. */
struct kd_owner_ref {
	const char *api_version; /* "autoscaling.internal.knative.dev/v1alpha1", or NULL */
	const char *kind;        /* "PodAutoscaler" */
	const char *name;
	const char *uid;
};

struct kd_instance {
	const char *name; /* pod name */
	const char *node; /* node, or NULL if not yet scheduled */
	enum kd_instance_state state;
	bool ready;
	uint64_t created_ms;
};

struct kd_workload_input {
	const char *revision; /* "ns/name" */
	const char *ns;
	const char *base_name; /* prefix for new instance names (the template Deployment's name) */
	int32_t desired;
	const struct kd_instance *current; /* every live instance of the revision */
	size_t n_current;
	/* Appended after version 1 (zero/NULL: absent; plugins may require them). */
	struct kd_owner_ref owner; /* the PodAutoscaler that controller-owns every instance */
	const char *template_hash; /* hash of the template pod spec, or NULL */
	/* Names new instances must not take although they do not count toward desired:
	 * instances still terminating, cancelled ones not yet confirmed gone. */
	const char *const *reserved;
	size_t n_reserved;
};

/* A new instance as the workload stage hands it on: identity plus what every instance of the
 * revision carries. All strings owned by the plan (kd_workload_plan_clear). */
struct kd_instance_spec {
	char *name;              /* == create.items[i] */
	char *key;               /* "ns/name" */
	char *owner_api_version; /* copies of kd_workload_input.owner (NULL where it had none) */
	char *owner_kind;
	char *owner_name;
	char *owner_uid;
	char *template_hash; /* copy of kd_workload_input.template_hash, or NULL */
};

/* Output of plan: owned by the caller, freed with kd_workload_plan_clear. */
struct kd_workload_plan {
	struct kd_strlist create;  /* names of new instances (unique, never reused while live) */
	struct kd_strlist victims; /* names of instances to remove */
	/* Appended after version 1: one entry per create.items[i], same order, or NULL when the
	 * plugin does not fill it. */
	struct kd_instance_spec *created;
};

/* Frees everything a plan owns and zeroes it (plugins and host share libc's allocator). */
static inline void kd_workload_plan_clear(struct kd_workload_plan *plan)
{
	if (plan->created) {
		for (size_t i = 0; i < plan->create.n; i++) {
			struct kd_instance_spec *s = &plan->created[i];
			free(s->name);
			free(s->key);
			free(s->owner_api_version);
			free(s->owner_kind);
			free(s->owner_name);
			free(s->owner_uid);
			free(s->template_hash);
		}
		free(plan->created);
		plan->created = NULL;
	}
	kd_strlist_clear(&plan->create);
	kd_strlist_clear(&plan->victims);
}

struct kd_workload_ops {
	uint32_t struct_size;
	/* Fills *out (zeroed by the caller) so that current + create - victims == desired (a
	 * plugin may create fewer per call, e.g. a configured cap; the host plans again). */
	int (*plan)(void *state, const struct kd_workload_input *in, struct kd_workload_plan *out,
	            struct kd_error **err);
	void (*forget)(void *state, const char *revision);
	/* New members only below this line. */
};

/* ==== scheduler ============================================================================== */

/* Longest node name (DNS subdomain, 253) plus NUL. */
#define KD_NODE_NAME_MAX 254

/* One label or nodeSelector entry. Borrowed. */
struct kd_label {
	const char *key;
	const char *value;
};

enum kd_taint_effect {
	KD_TAINT_ANY = 0, /* tolerations only: matches every effect */
	KD_TAINT_NO_SCHEDULE = 1,
	KD_TAINT_PREFER_NO_SCHEDULE = 2,
	KD_TAINT_NO_EXECUTE = 3,
};

/* A node taint (spec.taints[]). Borrowed. */
struct kd_taint {
	const char *key;
	const char *value; /* NULL or "" */
	enum kd_taint_effect effect;
};

enum kd_toleration_op {
	KD_TOLERATION_EQUAL = 0, /* "Equal" (Kubernetes' default) */
	KD_TOLERATION_EXISTS = 1,
};

/* A pod toleration (spec.tolerations[]). Borrowed. key NULL or "" with EXISTS tolerates every
 * taint; effect KD_TAINT_ANY matches every effect. */
struct kd_toleration {
	const char *key;
	enum kd_toleration_op op;
	const char *value;
	enum kd_taint_effect effect;
};

struct kd_node_info {
	const char *name;
	bool ready;
	bool schedulable; /* false when cordoned */
	struct kd_resources allocatable;
	const char *pod_cidr; /* or NULL */
	/* Appended after version 1 (NULL/0: none). */
	const struct kd_label *labels;
	size_t n_labels;
	const struct kd_taint *taints;
	size_t n_taints;
};

struct kd_pod_request {
	const char *key;              /* "ns/name" */
	const char *revision;         /* "ns/name", for spreading */
	struct kd_resources requests; /* pods is normally 1 */
	/* Appended after version 1 (NULL/0: none). */
	const struct kd_label *node_selector; /* spec.nodeSelector: every entry must match */
	size_t n_node_selector;
	const struct kd_toleration *tolerations;
	size_t n_tolerations;
};

/* One result of place_batch (caller storage). */
struct kd_placement {
	int rc;                      /* 0 placed, -ENOSPC nothing fits, -EINVAL bad request */
	char node[KD_NODE_NAME_MAX]; /* chosen node when rc == 0, else "" */
};

struct kd_scheduler_ops {
	uint32_t struct_size;
	/* Adds or replaces a node. */
	int (*node_update)(void *state, const struct kd_node_info *node, struct kd_error **err);
	void (*node_remove)(void *state, const char *node);
	/* Accounts a pod bound by someone else (seen in the API Server) on `node`; idempotent by
	 * key. */
	int (*pod_bound)(void *state, const struct kd_pod_request *pod, const char *node);
	/* Chooses a node and reserves the requests on it; idempotent by key (same node again).
	 * Writes the node name to node_out. Nothing fits: -ENOSPC with *err. */
	int (*place)(void *state, const struct kd_pod_request *pod, char node_out[KD_NODE_NAME_MAX],
	             struct kd_error **err);
	/* Releases a pod's reservation (deleted, cancelled). Unknown key: no-op. */
	void (*release)(void *state, const char *key);
	/* New members only below this line. */
	/* Places pods[0..n) in order, each exactly as place() would (earlier ones count for later
	 * ones); results to out[0..n) (caller storage). Not atomic: what fits stays placed.
	 * Returns 0 when all were placed, else the first failing entry's rc (-ENOSPC, -EINVAL)
	 * with *err describing that entry and how many others failed. Optional (check
	 * KD_HAS_MEMBER and NULL). */
	int (*place_batch)(void *state, const struct kd_pod_request *pods, size_t n,
	                   struct kd_placement *out, struct kd_error **err);
};

#endif /* KD_STAGE_H */
