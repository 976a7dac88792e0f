/* node-agent/direct.h: kd-node's direct mode (docs/ARCHITECTURE.md sections 1, 3 and 4; wire
 * contract in kd/instance.h). With --direct, the same process that serves API-bound pods also:
 *  - runs ONE kd_chan downstream server (the instance channel) for all its nodes and publishes
 *    its "host:port" on each of its Node objects (annotation KD_ANNOT_CHANNEL_ADDR);
 *  - on an upsert op for one of its nodes builds the Pod from the revision's template Deployment
 *    (a Deployment informer over Deployments labelled serving.knative.dev/revision) with
 *    kd_instance_build_pod and starts it AT ONCE through the runtime plugin, in the same pod
 *    table as API pods (pods.c, keyed "ns/name": a duplicate op, or the written-back Pod arriving
 *    through the pod informer, never starts a second sandbox);
 *  - reports readiness upstream on the status channel (kd_chan upstream to kd-autoscaler) the
 *    moment the runtime says ready (ip, ready, reason), and "gone" when the sandbox ends for good;
 *  - writes the Pod back asynchronously through kd_wbcache + kd_wbk8s (POST; AlreadyExists is
 *    done); once the pod informer shows it, pods.c patches its status Ready with the same
 *    builder and client as in kubelet mode.
 *
 * Decisions:
 *  - held[] of the instance channel = write-back entries not yet persisted (EPHEMERAL,
 *    PERSISTING, FAILED; read back from the cached Pod with kd_instance_from_pod) plus ops waiting
 *    for their template, of the handshaking source only (the source of each unpersisted
 *    instance is recorded); a reconcile drop from one source never cancels another source's
 *    instance. Deletes are accepted from any source (idempotent by key).
 *  - An op whose template Deployment our informer has not got (not synced yet, or uid/hash
 *    differ: -ESTALE) waits up to KD_DIRECT_WAIT_MS for the informer; an op whose template does
 *    not exist in a synced informer is refused (error{APPLY} upstream, no guessing). A wait that
 *    times out is reported as "gone" (reason TemplateUnavailable) so the autoscaler replaces it.
 *  - Ops received before the pod informer has synced wait the same way (restart adoption first).
 *  - delete op: an instance never seen in the API (ephemeral) stops its sandbox and its
 *    write-back is cancelled (a create in flight is followed by a DELETE with grace 0; the
 *    created Pod is ignored by the pod informer meanwhile: tombstone for KD_DIRECT_TOMB_MS); a
 *    persisted one is stopped at once and DELETEd (grace 0, uid precondition) as after a
 *    graceful termination (the autoscaler also deletes it through the API Server).
 *  - A permanently failed create (e.g. 422, namespace terminating) stops the sandbox and reports
 *    the instance gone (reason WriteBackFailed: ...).
 *  - Status channel: source "kd-node:<first node name>"; wanted[] = a full status upsert of every
 *    live managed instance (ready or not), persisted() always false (kd/instance.h). Status ops
 *    are coalesced for KD_DIRECT_STATUS_FLUSH_MS and sent as one delta.
 *  - A runtime owning the Pod (KD_RUNTIME_CAP_OWNS_POD: runtime-kubelet, --attach-node) creates
 *    it itself from the Pod it is started with and deletes it on stop: the write-back cache
 *    keeps its entry (held[], cancel, observation) but issues no create or delete (both
 *    complete at once), and no status is patched (the kubelet writes it).
 *  - Restart: ephemeral instances are lost (the upstream's reconcile resends them: our held[] is
 *    empty); persisted ones are adopted by pods.c from the API as in kubelet mode and reported.
 *
 * Threading: everything on the agent's kd_loop. */
#ifndef KD_NODE_DIRECT_H
#define KD_NODE_DIRECT_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "kd/delta.h"
#include "kd/error.h"
#include "kd/k8s.h"
#include "kd/prom.h"

#define KD_DIRECT_WAIT_MS         10000
#define KD_DIRECT_TOMB_MS         60000
#define KD_DIRECT_STATUS_FLUSH_MS 2

struct kd_node_agent;
struct kd_direct;

/* ---- lifecycle (direct.c) ------------------------------------------------------------------- */

/* Creates direct mode for a (its pods table must exist): binds the instance channel server
 * (a->cfg->direct_bind/direct_port), sets a->channel_addr (before the nodes register), creates
 * the write-back client from kcfg (borrowed), the Deployment informer (not started) and the status
 * channel (connects in the background). Sets a->direct. 0 or -errno with *err. */
int kd_node_direct_new(struct kd_node_agent *a, const struct kd_k8s_config *kcfg,
                       struct kd_error **err);
/* Starts the Deployment informer. */
void kd_node_direct_start(struct kd_node_agent *a);
/* Frees everything (sandboxes are left to pods.c / the runtime); a->direct = NULL. NULL-safe. */
void kd_node_direct_free(struct kd_node_agent *a);
/* Logs the counters (info). */
void kd_node_direct_log_stats(struct kd_node_agent *a);
/* Direct mode's numbers for /metrics (admin.c). */
struct kd_node_direct_stats {
	uint64_t ops, started, refused, cancelled, deleted, timeouts; /* instance channel ops */
	uint64_t status_sent; /* status ops sent upstream, all channels */
	uint64_t wb_queue; /* write-back entries not yet persisted (queued, in flight, backoff) */
	uint64_t wb_creates, wb_failed;
	uint64_t wb_queued;             /* write-back entries waiting for a batch or a write slot */
	struct kd_prom_hist wb_latency; /* queued -> the API's answer (kd_wb_get_latency) */
	size_t status_chans, status_chans_ready; /* --status-addr channels, those handshaken */
	bool tmpl_synced;                        /* the Deployment informer has listed */
};
/* Fills *out; false (out zeroed) when direct mode is off. */
bool kd_node_direct_get_stats(struct kd_node_agent *a, struct kd_node_direct_stats *out);

/* ---- hooks called by pods.c (no-ops when direct mode is off) -------------------------------- */

/* The pod informer saw a managed Pod (borrowed) of one of our nodes: ADDED/MODIFIED or, when
 * deleted, DELETED. Feeds the write-back cache. */
void kd_node_direct_observe(struct kd_node_agent *a, const char *key, json_object *obj,
                            bool deleted);
/* True when key is a direct instance we cancelled whose Pod may still show up in the API: the
 * pod informer must not start it. */
bool kd_node_direct_ignore(struct kd_node_agent *a, const char *key);
/* Status of a managed instance changed (strings borrowed; ip/reason/revision may be NULL). Sent
 * upstream when it differs from the last report. */
void kd_node_direct_report(struct kd_node_agent *a, const char *key, const char *node, bool ready,
                           const char *ip, const char *reason, const char *revision);
/* The managed instance no longer exists on its node: sends a status delete if a status was
 * reported for key (idempotent). */
void kd_node_direct_report_gone(struct kd_node_agent *a, const char *key, const char *reason);

/* The write-back client (--direct-write-qps/-burst, HTTP/2), or NULL when direct mode is off.
 * pods.c sends the status patches of managed instances through it: they are the second write
 * of the write-back, not a kubelet's status traffic, so --status-qps does not limit them. */
struct kd_k8s *kd_node_direct_client(struct kd_node_agent *a);

/* ---- pure parts (directops.c; unit-tested in tests/unit/test_node_direct.c) ----------------- */

enum kd_direct_tmpl {
	KD_DIRECT_TMPL_OK = 0,  /* the Pod could be built */
	KD_DIRECT_TMPL_STALE,   /* our copy has another uid/hash (kd_instance_build_pod -ESTALE) */
	KD_DIRECT_TMPL_MISSING, /* our informer has no such Deployment */
};

/* What is known when an op arrives. */
struct kd_direct_facts {
	enum kd_op_kind kind;
	bool node_ours;       /* upsert: op.node is served by this process */
	bool has_entry;       /* the pod table has the key (direct or API pod) */
	bool entry_persisted; /* that entry has been seen in the API (has a uid) */
	bool entry_stopping;  /* that entry is being deleted / cancelled */
	bool entry_same_node; /* that entry runs on op.node */
	bool cancelled;       /* we cancelled this key and its write-back delete is pending */
	bool pods_synced;     /* the pod informer has synced (restart adoption done) */
	bool tmpl_synced;     /* the Deployment informer has synced */
	enum kd_direct_tmpl tmpl;
};

enum kd_direct_action {
	KD_DIRECT_NOOP = 0,         /* nothing to do (duplicate, unknown delete) */
	KD_DIRECT_START,            /* start the sandbox now and write the Pod back */
	KD_DIRECT_WAIT,             /* keep the op until the informers catch up */
	KD_DIRECT_REFUSE_NODE,      /* error: the node is not ours */
	KD_DIRECT_REFUSE_TEMPLATE,  /* error: unknown template */
	KD_DIRECT_REFUSE_BUSY,      /* error: key is being deleted, or runs on another node */
	KD_DIRECT_CANCEL,           /* delete of an ephemeral instance */
	KD_DIRECT_DELETE_PERSISTED, /* delete of a written-back instance */
};

/* The decision table of an incoming op (see the rules at the top). */
enum kd_direct_action kd_node_direct_decide(const struct kd_direct_facts *f);
/* Static name of an action ("start", "wait", ...). */
const char *kd_node_direct_action_name(enum kd_direct_action act);

/* held[] entry from a cached instance Pod (borrowed): fills caller storage op (zeroed) with the
 * upsert (kd_instance_from_pod + kd_instance_to_op). 0 or -EINVAL with *err. */
int kd_node_direct_held_op(json_object *pod, struct kd_op *op, struct kd_error **err);

/* Status op of one instance into caller storage op (zeroed): upsert {key, node, ready, ip,
 * reason, revision label} or, when gone, delete {key, reason}. 0 or -EINVAL with *err. */
int kd_node_direct_status_op(const char *key, const char *node, bool ready, const char *ip,
                             const char *reason, const char *revision, bool gone, struct kd_op *op,
                             struct kd_error **err);

/* Address to publish: `advertise` when set, else bind:port, where an unspecified bind
 * ("", "0.0.0.0", "::") becomes 127.0.0.1 and an IPv6 literal is bracketed. Returns owned. */
char *kd_node_direct_addr(const char *advertise, const char *bind, int port);

#endif /* KD_NODE_DIRECT_H */
