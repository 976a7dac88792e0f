/* autoscaler-shim/autoscaler.h: shared state of kd-autoscaler, the PodAutoscaler reconciler of
 * the kubedirect class (docs/ARCHITECTURE.md sections 1-4), and the interface between its files.
 * Everything runs on one kd_loop:
 *  - pa.c: informers (PodAutoscalers of our class, template Deployments, managed Pods), the
 *    per-revision table, the decision tick and pokes, and the write-back of the public/private
 *    Services, public Endpoints, PA status and the Deployment's replica annotation through
 *    kd_wbcache + kd_wbk8s. Invariant 6: a PA whose class annotation is not ours is never
 *    touched (not even read beyond the class check).
 *  - insts.c: the instance table (every instance of every revision, by key) and the adoption
 *    of managed Pods seen through the API Server.
 *  - plan.c: the chain's decisions, without I/O: decider output -> workload plan -> scheduler
 *    placements -> what to create where, what to cancel, what to delete.
 *  - apply.c: carries a plan out: kd_op upserts/deletes queued on the instance channel of the
 *    node's kd-node (kd/instance.h contract), victims cancelled along the chain or deleted
 *    through the API Server.
 *  - nodes.c: the Node informer feeding the scheduler (through kd/schedjson.h) and the pool of
 *    instance channels, one kd_chan_up per kd-node address.
 *  - status.c: the status channel (kd_chan_down) where kd-nodes report readiness.
 *  - stats.c: the stats WebSocket (Knative WireStatMessages and our JSON; kd/wirestat.h).
 *  - objects.c: pure builders (objects.h).
 *  - cfgmap.c: the decider's configuration layers (defaults < config-autoscaler ConfigMap <
 *    --decider-config < revision annotations), the ConfigMap's informer and reconfigure.
 *  - main.c: options, clients, plugins, signals.
 */
#ifndef KD_AUTOSCALER_H
#define KD_AUTOSCALER_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "kd/chan.h"
#include "kd/config.h"
#include "kd/http.h"
#include "kd/instance.h"
#include "kd/k8s.h"
#include "kd/loop.h"
#include "kd/plugin.h"
#include "kd/schedjson.h"
#include "kd/stage.h"
#include "kd/strmap.h"
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
	char *knative_namespace; /* where config-autoscaler lives */
	char *config_autoscaler; /* its name, or "": not read */
	char *workload;
	char *workload_config;
	char *scheduler;
	char *scheduler_config;
	char *stats_bind;
	uint64_t stats_port;
	char *activator_ips; /* comma-separated; empty: Serve mode */
	char *status_bind;
	uint64_t status_port;
	char *admin_bind;
	uint64_t admin_port;
	char *chan_token;
	char *chan_token_secret; /* NAME.NAMESPACE of the Secret holding it (made if missing) */
	bool insecure_channels;
	uint64_t webhook_port; /* 0: no admission webhook */
	char *webhook_bind;
	char *webhook_service; /* NAME.NAMESPACE of the Service the API Server calls */
	char *webhook_secret;  /* NAME.NAMESPACE of the Secret holding its certificate */
	char *webhook_config;  /* the MutatingWebhookConfiguration whose caBundle is ours */
	uint64_t tick_ms;
	uint64_t scale_hold_ms;
	char *initial_scale; /* override of the decider's initial-scale, or NULL */
	double write_qps;
	uint64_t write_burst;
	uint64_t sync_delay_ms;
	int log_level;
	int log_format;
};

struct kd_as;
struct kd_as_rev;

/* A Node that publishes an instance channel address (Node annotation KD_ANNOT_CHANNEL_ADDR). */
struct kd_as_node {
	char *name; /* the map key */
	char *addr; /* "host:port" */
};

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
	/* deploy's pod template as scheduler input (borrows from deploy), valid while deploy is
	 * set and tmpl_error is NULL */
	struct kd_pod_view tmpl;
	char *tmpl_error;          /* why deploy's pod template cannot be placed, or NULL */
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
	char **activator_ips; /* --activator-ips, validated IPv4/IPv6 literals (owned) */
	size_t n_activator_ips;
	struct kd_loop *loop;
	struct kd_k8s *k8s;   /* informers, events, scale patches */
	struct kd_k8s *k8s_w; /* write-back (rate limited) */
	struct kd_host host;
	struct kd_plugin_handle *decider_h, *workload_h, *scheduler_h;
	const struct kd_decider_ops *decider;
	const struct kd_workload_ops *workload;
	const struct kd_scheduler_ops *scheduler;
	struct kd_informer *pa_inf, *deploy_inf, *pod_inf, *node_inf;
	/* Maps (kd/strmap.h); each key points into its value. */
	struct kd_strmap revs;     /* rev->key -> struct kd_as_rev */
	struct kd_strmap insts;    /* inst->key -> struct kd_as_inst */
	struct kd_strmap chans;    /* ch->addr -> struct kd_as_chan */
	struct kd_strmap nodes;    /* node->name -> struct kd_as_node */
	struct kd_strmap notready; /* names of NotReady nodes -> the same string (owned) */
	struct kd_strmap written;  /* wb keys whose write succeeded -> the same string (owned) */
	struct kd_wbk8s *wbk8s;
	struct kd_wb_writer inner; /* the adapter's writer */
	struct kd_wb *wb;
	struct kd_chan_down *status_down;
	struct kd_as_stats *stats;
	struct kd_as_dcfg *dcfg; /* cfgmap.c */
	struct kd_http_server *admin;
	struct kd_as_webhook *webhook; /* webhook.c, or NULL */
	struct kd_timer *tick, *sync_timer, *warm_timer;
	bool warm; /* decisions are applied (see nodes.c check_warm) */
	bool stopping;
	const char
	    *api_server;   /* borrowed from the kubeconfig (main.c), for the log; may be NULL */
	uint64_t start_ms; /* loop ms when the informers were started */
	bool reconciling;  /* every informer listed once (the "reconciling" line logged) */
	uint64_t decisions, pokes, created, cancelled, deleted;
};

/* ---- admin.c: /healthz, /readyz, /metrics on --admin-port (0: off) ---- */
int kd_as_admin_start(struct kd_as *as, struct kd_error **err);
/* True once every informer (PodAutoscalers, Deployments, Pods, Nodes) has listed once; what
 * /readyz checks first. */
bool kd_as_informers_synced(const struct kd_as *as);
/* Called from each informer's on_synced: the first time all have listed, logs "reconciling
 * PodAutoscalers of class X in NS (informers synced in N ms)" and sets as->reconciling. */
void kd_as_note_synced(struct kd_as *as);
void kd_as_admin_stop(struct kd_as *as);

/* ---- token.c: --chan-token-secret, read (or made) once at start; 0 when not set ---- */
int kd_as_chan_token_from_secret(struct kd_as *as, struct kd_error **err);

/* ---- webhook.c: the mutating admission webhook on --webhook-port (0: off) ---- */
struct kd_prom;
/* value of option opt is NAME.NAMESPACE: 0, or -EINVAL with *err naming opt. */
int kd_as_check_ref(const char *opt, const char *value, struct kd_error **err);
/* --webhook-service and --webhook-secret are NAME.NAMESPACE: 0, or -EINVAL with *err. */
int kd_as_webhook_check(const char *service, const char *secret, struct kd_error **err);
int kd_as_webhook_start(struct kd_as *as, struct kd_error **err);
void kd_as_webhook_stop(struct kd_as *as);
/* Its counters into p (nothing when the webhook is off). */
void kd_as_webhook_metrics(const struct kd_as *as, struct kd_prom *p);

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

/* ---- insts.c: the instance table ---- */
/* The instance of key ("ns/name"), or NULL. Borrowed. */
struct kd_as_inst *kd_as_inst_find(struct kd_as *as, const char *key);
/* A new instance of rev from *d (moved: *d is left as kd_instance_init makes it), in as->insts
 * and rev's list. Returns it (borrowed; freed by kd_as_inst_remove). */
struct kd_as_inst *kd_as_inst_new(struct kd_as *as, struct kd_as_rev *rev,
                                  struct kd_instance_desc *d);
/* Removes inst from every table (and its rev); releases its scheduler reservation; frees it. */
void kd_as_inst_remove(struct kd_as *as, struct kd_as_inst *inst);
/* Adopts a managed Pod (borrowed) seen in the API; returns the instance or NULL. The Pod's spec
 * (kd_pod_view) is what the scheduler counts for it. */
struct kd_as_inst *kd_as_inst_observe(struct kd_as *as, json_object *pod);
/* Removes every instance, without touching revisions (shutdown: after kd_as_pa_stop). */
void kd_as_insts_clear(struct kd_as *as);

/* ---- plan.c: the chain's decisions (no I/O) ---- */
/* Ready, with an IP, not a victim, and on a node not known NotReady. */
bool kd_as_inst_routable(struct kd_as *as, const struct kd_as_inst *inst);

/* One instance to create: placed (scheduler reservation held under its key) on d.node, which
 * has an instance channel. */
struct kd_as_plan_create {
	struct kd_instance_desc d; /* owned */
	struct kd_op op;           /* the upsert for d's channel, owned */
};

/* What it takes to bring a revision to a desired scale. Owned by the caller (zeroed before
 * kd_as_plan_make), freed with kd_as_plan_fini, which releases no reservation: kd_as_chain_apply
 * turns each create into an instance that owns its reservation. */
struct kd_as_plan {
	struct kd_as_plan_create *create; /* placed, in the workload's order */
	size_t n_create;
	struct kd_as_inst **cancel; /* victims never persisted: cancel along the chain (borrowed) */
	size_t n_cancel;
	struct kd_as_inst **del; /* persisted victims: the node deletes them (borrowed) */
	size_t n_del;
	size_t wanted;     /* creations the workload plan asked for */
	bool placed_all;   /* every one of them was placed */
	char *sched_error; /* when not: why (owned), naming the revision, not the instance */
};

/* Plans rev toward desired: the workload plan over rev's live instances (victims and
 * terminating ones reserve their names), then each new instance placed by the scheduler from
 * rev's template (rev->tmpl) on a node that has an instance channel, stopping at the first one
 * that cannot be (its reservation released); victims split into cancel (not observed in the API)
 * and del (persisted). Reads as->insts, as->nodes, as->chans, as->notready and the workload and
 * scheduler plugins; changes nothing but the scheduler's reservations. 0, or -errno with *err
 * when the workload plan fails (then nothing was reserved). rev needs deploy and pa_uid. */
int kd_as_plan_make(struct kd_as *as, struct kd_as_rev *rev, int32_t desired,
                    struct kd_as_plan *out, struct kd_error **err);
void kd_as_plan_fini(struct kd_as_plan *plan);

/* ---- apply.c: decisions carried out along the chain ---- */
/* Brings rev's instances to `desired` (kd_as_plan_make, then queue and send); a no-op until the
 * chain is warm and rev has its template and PA uid. */
void kd_as_chain_apply(struct kd_as *as, struct kd_as_rev *rev, int32_t desired);
/* Cancels every instance of rev along the chain (rev going away). */
void kd_as_chain_forget_rev(struct kd_as *as, struct kd_as_rev *rev);
/* API-deletes victims whose node did not delete them in time (tick). */
void kd_as_chain_sweep(struct kd_as *as);
#define KD_AS_DELETE_FALLBACK_MS 10000
/* DELETE of inst's Pod through the API Server (uid precondition when the informer knows it);
 * force: grace period 0 (its node is gone). Asynchronous; failures are logged. */
void kd_as_delete_through_api(struct kd_as *as, struct kd_as_inst *inst, bool force);

/* ---- nodes.c: Node informer and instance channel pool ---- */
/* Creates the Node informer (not started) and the warm-up timer. */
int kd_as_nodes_init(struct kd_as *as, struct kd_error **err);
/* Starts the Node informer (channels connect as nodes appear). */
void kd_as_nodes_start(struct kd_as *as);
/* Stops the informer and frees every channel and node record (after kd_as_insts_clear). */
void kd_as_nodes_stop(struct kd_as *as);
/* The instance channel of node (borrowed), or NULL when it publishes no address. */
struct kd_as_chan *kd_as_chan_for_node(struct kd_as *as, const char *node);
/* Queues op (moved: *op is zeroed) on ch, replacing a pending op of the same key. */
void kd_as_chan_queue(struct kd_as_chan *ch, struct kd_op *op);
/* Hands every channel's pending ops to kd_chan. */
void kd_as_chain_flush(struct kd_as *as);

/* ---- status.c: the status channel server ---- */
int kd_as_status_start(struct kd_as *as, struct kd_error **err);
void kd_as_status_stop(struct kd_as *as);

/* ---- cfgmap.c: the decider's configuration ---- */
struct kd_as_dcfg;
/* How long decisions wait for config-autoscaler to be listed once. */
#define KD_AS_DCFG_WAIT_MS 10000
/* Reads --decider-config and --initial-scale (layer 3) into as->dcfg; before the decider is
 * loaded. -EINVAL with *err (bad JSON, both given): a bad option. as->dcfg is set either way
 * (kd_as_dcfg_stop frees it). */
int kd_as_dcfg_new(struct kd_as *as, struct kd_error **err);
/* Layer 3 as the JSON text to load the decider with. Returns owned; free(). */
char *kd_as_dcfg_loader_json(const struct kd_as *as);
/* After the decider is loaded: starts the ConfigMap informer (when --config-autoscaler is set
 * and the decider has reconfigure). */
int kd_as_dcfg_start(struct kd_as *as, struct kd_error **err);
/* Stops the informer, frees as->dcfg; before the decider is unloaded. */
void kd_as_dcfg_stop(struct kd_as *as);
/* Whether the decider may decide: config-autoscaler was listed once (or is not read, or was
 * waited for KD_AS_DCFG_WAIT_MS). */
bool kd_as_dcfg_ready(const struct kd_as *as);
/* The decider's configuration in force (a struct of its config_size; borrowed until the next
 * ConfigMap change), or NULL before the decider is loaded. */
const void *kd_as_dcfg_current(const struct kd_as *as);
/* ConfigMap changes applied and refused so far. */
void kd_as_dcfg_counts(const struct kd_as *as, uint64_t *applied, uint64_t *refused);
/* Knative's GetInitialScale: the revision's initial-scale annotation (annotated; -1: none) if
 * set and (> 0 or allow-zero-initial-scale), else the configured initial-scale (1 when the
 * decider has no such option). */
int32_t kd_as_initial_scale(const struct kd_as *as, int32_t annotated);

/* ---- stats.c ---- */
struct kd_as_stats;
int kd_as_stats_start(struct kd_as *as, struct kd_error **err);
void kd_as_stats_stop(struct kd_as *as);
/* The port the stats WebSocket listens on, or -1. */
int kd_as_stats_port(const struct kd_as *as);

#endif /* KD_AUTOSCALER_H */
