/* node-agent/agent.h: shared state of kd-node, the node agent in kubelet-compatible mode.
 *
 * One process serves M nodes ("<prefix>-<base+i>"). Everything runs on one kd_loop:
 *  - nodes.c registers each Node (create, or patch if present: idempotent on restart), keeps it
 *    Ready by renewing its Lease in kube-node-lease every --lease-interval and re-posting the
 *    Node status (Ready heartbeat) every --status-interval.
 *  - pods.c watches pods bound to its nodes through ONE informer over all namespaces with the
 *    server-side field selector "spec.nodeName!=" (bound pods only) and a client-side filter on
 *    membership of spec.nodeName in this process's node table (a field selector cannot express
 *    "nodeName in set", and one watch per node does not scale to hundreds of nodes). Each pod
 *    gets exactly one sandbox from the runtime plugin (keyed "ns/name", started once whatever
 *    events repeat); when the runtime reports ready its status is patched (strategic merge
 *    patch on pods/NAME/status with a uid precondition), asynchronously through a second
 *    client with its own rate limit (--status-qps/--status-burst per node, like one kubelet
 *    each, times --nodes for the process), coalesced per pod, retried with backoff.
 *
 * Attach mode (--attach-node NAME): the table holds one existing Node with a real kubelet; only
 * its kubedirect instances are served, through a runtime that owns the Pod (runtime-kubelet),
 * and only the channel annotation is written on the Node (nodes.c).
 *
 * Two Kubernetes clients: `k8s` (watch, Node, Lease; not rate limited, so heartbeats never queue
 * behind a burst of pod writes) and `k8s_pods` (pod status patches and deletes, rate limited). */
#ifndef KD_NODE_AGENT_H
#define KD_NODE_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "kd/config.h"
#include "kd/http.h"
#include "kd/k8s.h"
#include "kd/loop.h"
#include "kd/plugin.h"
#include "kd/stage.h"
#include "kd/strmap.h"
#include "kd/watch.h"

#include "objects.h"

/* Command-line options (main.c's option table fills this). */
struct kd_node_cfg {
	char *kubeconfig;
	char *context;
	char *attach_node; /* attach to this existing Node (its real kubelet runs the Pods), or NULL
	                    */
	uint64_t nodes;
	char *node_prefix;
	uint64_t node_index_base;
	char *pod_cidr;
	uint64_t node_cidr_prefix;
	char *node_ip_cidr;
	char *cpu;
	char *memory;
	uint64_t max_pods;
	char *kubelet_version;
	char *runtime;
	char *runtime_config;
	uint64_t lease_interval_ms;
	uint64_t status_interval_ms;
	double status_qps;
	uint64_t status_burst;
	uint64_t restart_backoff_ms;
	/* direct mode (direct.c) */
	bool direct;             /* serve the instance channel (kd/instance.h) */
	char *direct_bind;       /* listen address of the instance channel */
	uint64_t direct_port;    /* its port (0: ephemeral) */
	char *direct_addr;       /* "host:port" published on the Nodes (default: bind:port) */
	char *status_addr;       /* kd-autoscaler's status channel "host:port" */
	char *chan_token;        /* bearer token of both channels, or NULL */
	bool insecure_channels;  /* no token in a Pod is fine */
	double direct_write_qps; /* write-back client (Pod creates) */
	uint64_t direct_write_burst;
	char *admin_bind;    /* admin server (admin.c) address */
	uint64_t admin_port; /* its port; 0: no admin server */
	int log_level;       /* enum kd_log_level */
	int log_format;      /* enum kd_log_format */
};

/* One node served by this process. */
struct kd_node {
	struct kd_node_agent *agent;
	unsigned index;
	char *name;
	char *pod_cidr;    /* ours, or the existing Node's (podCIDR is immutable once set) */
	char *internal_ip; /* owned */
	char *uid;         /* Node UID once known, else NULL */
	bool registered;   /* Node exists and its status was posted (attach mode: it exists) */
	bool published;    /* attach mode: our KD_ANNOT_CHANNEL_ADDR was written once */
	bool lease_ok;     /* the last lease renewal succeeded */
	unsigned attempt;  /* consecutive failures of the current step (backoff) */
	uint64_t ready_since_ns;
	struct kd_timer *register_timer;
	struct kd_timer *lease_timer;
	struct kd_timer *status_timer;
	bool lease_inflight, status_inflight, register_inflight;
};

struct kd_node_agent {
	struct kd_node_cfg *cfg; /* borrowed from main */
	struct kd_loop *loop;
	struct kd_k8s *k8s;      /* watch + nodes + leases */
	struct kd_k8s *k8s_pods; /* pod status + deletes, rate limited */
	const char *server;      /* borrowed from the config, for messages */

	struct kd_node *nodes;    /* cfg->nodes entries */
	struct kd_strmap by_name; /* node name -> struct kd_node * (keys: kd_node.name) */

	struct kd_host host;
	struct kd_plugin_handle *runtime;
	const struct kd_runtime_ops *rt;
	void *rt_state;
	const char *runtime_name; /* containerID scheme, e.g. "kd-sim" */
	bool rt_owns_pod;         /* the runtime has KD_RUNTIME_CAP_OWNS_POD (runtime-kubelet) */
	char *runtime_version;    /* nodeInfo.containerRuntimeVersion, owned */

	struct kd_direct *direct; /* direct mode, or NULL (direct.h) */
	char *channel_addr;       /* published on every Node (KD_ANNOT_CHANNEL_ADDR), or NULL */

	struct kd_http_server *admin; /* admin.c, or NULL */
	bool api_ok;                  /* the API Server answered once (main.c's wait is over) */
	uint64_t pods_start_ms;       /* loop ms when the pod informer was started */

	struct kd_informer *pods_inf;
	struct kd_strmap pods; /* "ns/name" -> struct kd_pod * (owned; keys: kd_pod.key) */
	bool stopping;

	/* counters, logged periodically at debug level and on exit */
	uint64_t n_started, n_ready_patched, n_deleted, n_failed, n_patch_errors;
};

/* admin.c: /healthz, /readyz, /metrics on --admin-bind:--admin-port (lib/http). */
/* Starts it unless --admin-port is 0. 0 or -errno with *err naming the address. */
int kd_node_admin_start(struct kd_node_agent *a, struct kd_error **err);
void kd_node_admin_stop(struct kd_node_agent *a);
/* Why kd-node is not ready (static text), or NULL when it is: the API Server reached, the pod
 * informer (and in direct mode the Deployment informer) listed, every status channel
 * handshaken. */
const char *kd_node_not_ready_why(struct kd_node_agent *a);
/* The /metrics text (owned; free), its length in *len. */
char *kd_node_metrics(struct kd_node_agent *a, size_t *len);

/* nodes.c */
/* Attach mode (--attach-node NAME): the node table holds that one Node, which exists and has a
 * real kubelet. kd-node never creates, heartbeats or deletes it: it publishes its instance
 * channel address on it (merge patch of KD_ANNOT_CHANNEL_ADDR, when direct mode starts, retried
 * with backoff; a restarted kd-node writes its own address again) and removes the annotation on
 * a clean shutdown (kd_node_nodes_detach). */
/* The Node named by --attach-node (GET, retried while the API Server fails, the loop running
 * between attempts): 0 with its podCIDR and InternalIP taken into the node table, -ENOENT with
 * *err naming it when there is no such Node, -EINTR on a signal. */
int kd_node_nodes_attach(struct kd_node_agent *a, struct kd_error **err);
/* Removes our annotation from the attached Node (synchronous JSON patch, only while it still
 * holds our address). Logs what happened; nothing when not attached or nothing was published. */
void kd_node_nodes_detach(struct kd_node_agent *a);
/* Checks the options the node table is built from (CIDRs, node count against them, node names)
 * without building it: kd-node refuses them at start (exit 2). 0 or -errno with *err. */
int kd_node_nodes_check(const struct kd_node_cfg *cfg, struct kd_error **err);
/* Allocates the node table from cfg (names, CIDRs, IPs). 0 or -EINVAL with *err (bad CIDR, too
 * many nodes for the CIDR). */
int kd_node_nodes_init(struct kd_node_agent *a, struct kd_error **err);
/* Starts registration and heartbeats for every node (asynchronous). */
void kd_node_nodes_start(struct kd_node_agent *a);
/* Stops timers and frees the table. */
void kd_node_nodes_fini(struct kd_node_agent *a);
/* The node served here with that name, or NULL. Borrowed. */
struct kd_node *kd_node_lookup(struct kd_node_agent *a, const char *name);
/* Builds the params for node n (borrowed strings, valid while n lives). */
void kd_node_params_for(const struct kd_node *n, struct kd_node_params *out);

/* pods.c */
/* Creates the pod informer and table; 0 or -errno with *err. */
int kd_node_pods_init(struct kd_node_agent *a, struct kd_error **err);
/* Starts the informer. */
void kd_node_pods_start(struct kd_node_agent *a);
/* Starts the pods already seen on `node`, which just became registered. */
void kd_node_pods_node_ready(struct kd_node_agent *a, struct kd_node *node);
/* Direct instances (direct.c; one sandbox per key shared with API pods). Starts a sandbox for
 * the instance Pod `pod` (borrowed; built by kd_instance_build_pod, no uid) on `node` at once.
 * 0 also when the key already has a live entry on that node (duplicate op or API pod seen
 * first); -EBUSY (being deleted), -EEXIST (another node), -EINVAL with *err. */
int kd_node_pods_direct_start(struct kd_node_agent *a, struct kd_node *node, const char *key,
                              struct json_object *pod, struct kd_error **err);
/* State of the pod table's entry for key (bits KD_NODE_POD_*); node may be NULL (then
 * SAME_NODE is never set). 0 when there is no entry. */
#define KD_NODE_POD_EXISTS    1
#define KD_NODE_POD_PERSISTED 2 /* seen in the API (has a uid) */
#define KD_NODE_POD_STOPPING  4 /* cancelled, terminating or replaced */
#define KD_NODE_POD_SAME_NODE 8
int kd_node_pods_state(struct kd_node_agent *a, const char *key, const char *node);
/* Delete op for key: an entry never seen in the API (ephemeral) stops its sandbox and goes;
 * a persisted one stops at once and is DELETEd (grace 0, uid precondition). Returns 0
 * (ephemeral), 1 (persisted) or -ENOENT (no entry). reason borrowed, may be NULL. */
int kd_node_pods_direct_stop(struct kd_node_agent *a, const char *key, const char *reason);
/* The pod table by state, for /metrics: ready (sandbox live and ready), starting (live, not
 * ready yet), stopping (stop requested or terminating), waiting (no live sandbox: restart
 * backoff, terminal, or not started yet); managed counts the kubedirect instances among all. */
struct kd_node_pod_counts {
	uint64_t ready, starting, stopping, waiting, managed;
};
void kd_node_pods_count(struct kd_node_agent *a, struct kd_node_pod_counts *out);
/* Stops the informer, frees every pod entry (sandboxes are left to the runtime's fini). */
void kd_node_pods_fini(struct kd_node_agent *a);

#endif /* KD_NODE_AGENT_H */
