/* autoscaler-shim/autoscaler.h: shared state of kd-autoscaler, the PodAutoscaler reconciler of
 * the kubedirect class (DESIGN.md sections 2-5). Everything runs on one kd_loop:
 *  - pa.c: informers (PodAutoscalers of our class, template Deployments, managed Pods), the
 *    per-revision table, the decision tick and pokes, and the write-back of the public/private
 *    Services, public Endpoints, PA status and the Deployment's replica annotation through
 *    kd_wbcache + kd_wbk8s. Invariant 6: a PA whose class annotation is not ours is never
 *    touched (not even read beyond the class check).
 *  - chain.c: decision -> workload plan -> scheduler place -> kd_op on the instance channel of
 *    the node's kd-node (kd/instance.h contract), victims cancelled along the chain or deleted
 *    through the API Server; the Node informer feeding the scheduler; the status channel
 *    (kd_chan_down) where kd-nodes report readiness.
 *  - stats.c: the stats WebSocket (Knative WireStatMessages and our JSON; kd/wirestat.h).
 *  - objects.c: pure builders (objects.h).
 *  - main.c: options, clients, plugins, signals.
 */
#ifndef KD_AUTOSCALER_H
#define KD_AUTOSCALER_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>
#include <json-c/linkhash.h>

#include "kd/chan.h"
#include "kd/config.h"
#include "kd/instance.h"
#include "kd/k8s.h"
#include "kd/loop.h"
#include "kd/plugin.h"
#include "kd/stage.h"
#include "kd/watch.h"
#include "kd/wbcache.h"
#include "kd/wbk8s.h"

struct kd_as_cfg {
	char *kubeconfig;
	char *context;
	char *pa_class;
	char *namespace;     /* only this namespace, or NULL/"": all */
	char *node_selector; /* label selector of the Nodes used, or NULL: all */
	char *source;
	char *decider;
	char *decider_config;
	char *workload;
	char *workload_config;
	char *scheduler;
	char *scheduler_config;
	char *stats_bind;
	uint64_t stats_port;
	char *status_bind;
	uint64_t status_port;
	char *chan_token;
	uint64_t tick_ms;
	uint64_t scale_hold_ms;
	uint64_t initial_scale;
	double write_qps;
	uint64_t write_burst;
	uint64_t sync_delay_ms;
	int log_level;
	int log_format;
};

struct kd_as;
struct kd_as_rev;

/* One instance channel: a kd-node address (Node annotation KD_ANNOT_CHANNEL_ADDR). */
struct kd_as_chan {
	struct kd_as *as;
	char *addr; /* "host:port"; the map key */
	struct kd_chan_up *up;
	struct kd_op_list pending; /* ops not yet handed to kd_chan (one per key) */
	size_t nodes;              /* nodes publishing this address */
	bool was_ready;            /* completed a handshake at least once */
};

/* One instance (a Pod of a revision, ephemeral or persisted). */
struct kd_as_inst {
	char *key; /* "ns/name"; the map key */
	struct kd_as_rev *rev;
	struct kd_instance_desc d; /* identity as sent on the instance channel */
	struct kd_as_chan *chan;   /* channel it was sent on, or NULL (adopted from the API) */
	bool observed;             /* the Pod was seen through the API Server */
	bool deleting;             /* a victim: no longer counted */
	bool ready;
	char *ip;
	char *status_source; /* status channel source that reported it, or NULL */
	uint64_t created_ms; /* loop ms */
	uint64_t delete_at;  /* victim: API delete fallback due at (loop ms), 0 none */
};

/* One revision = one PodAutoscaler of our class. */
struct kd_as_rev {
	char *key; /* "ns/name" of the PA; the map key */
	char *ns, *name;
	char *pa_uid;
	json_object *pa;          /* latest PA (owned reference) */
	json_object *deploy;      /* template Deployment (owned reference) or NULL */
	json_object *last_status; /* our last status patch (owned), the "previous" status */
	char tmpl_hash[KD_TEMPLATE_HASH_LEN + 1];
	int64_t cpu_milli, mem_bytes;
	struct kd_as_inst **insts; /* live and deleting instances */
	size_t n_insts, cap_insts;
	int32_t desired;         /* last applied decision, -1 before */
	int32_t manual;          /* direct scale decision, -1 none */
	uint64_t manual_until;   /* loop ms */
	bool initialized;        /* ScaleTargetInitialized latched */
	char *decide_error;      /* last decider failure, or NULL */
	char *sched_error;       /* last placement failure, or NULL */
	char *write_error;       /* "<wb key>: why" of the last failed write-back, or NULL */
	uint64_t write_retry_ms; /* loop ms of the last retry of failed writes */
	char *last_event;        /* reason+message of the last Warning event (dedup) */
	char *scaled_rv;         /* Deployment resourceVersion we last patched to 0 */
	bool dirty;
	uint64_t ready_since_ms; /* loop ms of the last scale-out decision, until all ready */
};

struct kd_as {
	struct kd_as_cfg cfg;
	struct kd_loop *loop;
	struct kd_k8s *k8s;   /* informers, events, scale patches */
	struct kd_k8s *k8s_w; /* write-back (rate limited) */
	struct kd_host host;
	struct kd_plugin_handle *decider_h, *workload_h, *scheduler_h;
	const struct kd_decider_ops *decider;
	const struct kd_workload_ops *workload;
	const struct kd_scheduler_ops *scheduler;
	struct kd_informer *pa_inf, *deploy_inf, *pod_inf, *node_inf;
	struct lh_table *revs;      /* key -> struct kd_as_rev * */
	struct lh_table *insts;     /* key -> struct kd_as_inst * */
	struct lh_table *chans;     /* addr -> struct kd_as_chan * */
	struct lh_table *node_addr; /* node name (owned key) -> addr (owned) */
	struct lh_table *notready;  /* names of NotReady nodes (owned keys) */
	struct lh_table *written;   /* wb keys whose write succeeded (owned keys) */
	struct kd_wbk8s *wbk8s;
	struct kd_wb_writer inner; /* the adapter's writer */
	struct kd_wb *wb;
	struct kd_chan_down *status_down;
	struct kd_as_stats *stats;
	struct kd_timer *tick, *sync_timer, *warm_timer;
	bool warm; /* decisions are applied (see chain.c check_warm) */
	bool stopping;
	uint64_t decisions, pokes, created, cancelled, deleted;
};

/* ---- pa.c ---- */
int kd_as_pa_start(struct kd_as *as, struct kd_error **err);
void kd_as_pa_stop(struct kd_as *as);
struct kd_as_rev *kd_as_rev_find(struct kd_as *as, const char *ns, const char *name);
/* Marks rev for a write-back sync (debounced). */
void kd_as_rev_dirty(struct kd_as *as, struct kd_as_rev *rev);
/* Runs the decider (or the manual decision) for rev and applies the result. */
void kd_as_decide(struct kd_as *as, struct kd_as_rev *rev, const char *why);
/* Records a metrics sample and pokes (immediate decision) when the decider asks for it. */
void kd_as_record(struct kd_as *as, const char *ns, const char *name,
                  const struct kd_metric_sample *s);
/* A direct scale decision (JSON "scale" message). */
void kd_as_manual_scale(struct kd_as *as, const char *ns, const char *name, int32_t desired);
/* Posts an Event about obj. */
void kd_as_event(struct kd_as *as, json_object *obj, const char *type, const char *reason,
                 const char *fmt, ...) KD_PRINTF(5, 6);
/* Live (not deleting) and ready instance counts of rev. */
uint32_t kd_as_rev_live(const struct kd_as_rev *rev);
uint32_t kd_as_rev_ready(struct kd_as *as, const struct kd_as_rev *rev);

/* ---- chain.c ---- */
int kd_as_chain_start(struct kd_as *as, struct kd_error **err);
void kd_as_chain_stop(struct kd_as *as);
/* Starts the Node informer (channels connect as nodes appear). */
void kd_as_chain_nodes_start(struct kd_as *as);
/* Brings rev's instances to `desired` (plan, place, send). */
void kd_as_chain_apply(struct kd_as *as, struct kd_as_rev *rev, int32_t desired);
/* Ready, with an IP, not a victim, and on a node not known NotReady. */
bool kd_as_inst_routable(struct kd_as *as, const struct kd_as_inst *inst);
/* Removes inst from every table (and its rev); releases its scheduler reservation; frees it. */
void kd_as_inst_remove(struct kd_as *as, struct kd_as_inst *inst);
/* Adopts a managed Pod (borrowed) seen in the API; returns the instance or NULL. */
struct kd_as_inst *kd_as_inst_observe(struct kd_as *as, json_object *pod);
/* Cancels every instance of rev along the chain (rev going away). */
void kd_as_chain_forget_rev(struct kd_as *as, struct kd_as_rev *rev);
/* API-deletes victims whose node did not delete them in time (tick). */
void kd_as_chain_sweep(struct kd_as *as);
#define KD_AS_DELETE_FALLBACK_MS 10000
/* Hands every channel's pending ops to kd_chan. */
void kd_as_chain_flush(struct kd_as *as);

/* ---- stats.c ---- */
struct kd_as_stats;
int kd_as_stats_start(struct kd_as *as, struct kd_error **err);
void kd_as_stats_stop(struct kd_as *as);
/* The port the stats WebSocket listens on, or -1. */
int kd_as_stats_port(const struct kd_as *as);

#endif /* KD_AUTOSCALER_H */
