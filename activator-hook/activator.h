/* activator-hook/activator.h: kd-activator's internal header: the data plane of kubedirect-class
 * revisions (docs/ARCHITECTURE.md sections 1 and 2). One process, one kd_loop:
 *  - revs.c:  the routing table. Revisions of our class from the API (Revision informer: timeout,
 *             containerConcurrency), their ready instances from kd-node's status stream (a
 *             kd_chan_down on --status-port, the node -> activator leg: same epochs and handshake
 *             as every channel) and, as the fallback after a restart or for instances started by
 *             another path, from the private Service's Endpoints (informer).
 *  - proxy.c: the HTTP side: identifies the revision (Knative-Serving-Namespace/-Revision headers,
 *             else Host), holds requests while the revision has no free ready instance (bounded
 *             queue, the revision's timeoutSeconds, then 503), forwards least-loaded under
 *             containerConcurrency, retries only requests that never reached an instance; the
 *             admin endpoints (/healthz, /readyz, /metrics, /debug/routes).
 *  - stats.c: the WebSocket to kd-autoscaler's stats port: a poke (a stat at once) on the first
 *             request of a revision without ready instances, then the concurrency of every revision
 *             with traffic each --stats-period, as Knative's activator reports it
 * (WireStatMessages). Not thread-safe: everything runs on the loop thread. */
#ifndef KD_ACTIVATOR_H
#define KD_ACTIVATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kd/chan.h"
#include "kd/common.h"
#include "kd/config.h"
#include "kd/error.h"
#include "kd/http.h"
#include "kd/k8s.h"
#include "kd/loop.h"
#include "kd/prom.h"
#include "kd/strmap.h"
#include "kd/watch.h"

#define KD_ACT_CLASS_DEFAULT       "kd.kubedirect.dev"
#define KD_ACT_PORT_DEFAULT        8012 /* Knative's activator http port */
#define KD_ACT_STATUS_PORT_DEFAULT 9472
#define KD_ACT_ADMIN_PORT_DEFAULT  9473

/* Options (kd_config table in main.c). Strings owned (kd_config_free). */
struct kd_act_cfg {
	char *kubeconfig;
	char *context;
	char *pa_class;
	char *namespace;
	char *bind;
	uint64_t port;
	char *admin_bind;
	uint64_t admin_port;
	char *status_bind;
	uint64_t status_port;
	char *chan_token;
	bool insecure_channels;
	char *autoscaler; /* host:port of kd-autoscaler's stats WebSocket; empty: no stats */
	uint64_t instance_port;
	uint64_t queue_depth;
	uint64_t default_timeout_ms;
	uint64_t stats_period_ms;
	uint64_t retries;
	char *pod_name;
	int log_level;
	int log_format;
};

struct kd_act_rev;

/* One instance of a revision, as we route to it. */
struct kd_act_inst {
	char *key; /* "ns/pod"; its key in kd_act.insts */
	struct kd_act_rev *rev;
	char ip[46];
	bool chan_ready; /* kd-node reports it ready */
	bool chan_gone;  /* kd-node reports it gone: the API's copy is stale */
	bool api_ready;  /* in the private Service's ready Endpoints addresses */
	unsigned inflight;
	unsigned max_inflight;      /* the most requests ever in flight to it at once */
	uint64_t routable_since_ms; /* 0: not routable */
	uint64_t bad_until_ms;      /* refused a connection: skipped until then */
};

struct kd_act_held; /* a request waiting for an instance (proxy.c) */

/* One revision. */
struct kd_act_rev {
	char *key; /* "ns/name"; its key in kd_act.revs */
	char *ns, *name;
	bool known;    /* the Revision (of our class) exists in the API */
	bool draining; /* deleted: freed once nothing is in flight (kd_act_rev_release) */
	unsigned cc;   /* containerConcurrency; 0 = unlimited */
	uint64_t timeout_ms;
	struct kd_act_inst **insts; /* every instance we know of (routable or not) */
	size_t n_insts, cap_insts;
	struct kd_act_held *qhead, *qtail;
	size_t qlen;
	unsigned inflight; /* requests forwarded and not done */
	/* stats window (stats.c) */
	double conc_ms;       /* integral of (inflight + qlen) over the window, in request-ms */
	uint64_t conc_at_ms;  /* when conc_ms was last advanced */
	uint64_t window_reqs; /* requests received in the window */
	bool active;          /* had traffic in the current or last window */
	/* counters (/metrics) */
	uint64_t requests, ok_2xx, resp_4xx, resp_5xx, timeouts, rejected, retried;
};

struct kd_act {
	struct kd_act_cfg cfg;
	struct kd_loop *loop;
	struct kd_k8s *k8s;
	bool stopping;
	const char
	    *api_server;       /* borrowed from the kubeconfig (main.c), for the log; may be NULL */
	uint64_t start_ms;     /* loop ms when the informers were started */
	bool serving;          /* both informers listed once ("serving revisions" logged) */
	struct kd_strmap revs; /* "ns/name" -> struct kd_act_rev * (owned) */
	struct kd_strmap insts; /* "ns/pod" -> struct kd_act_inst * (owned) */
	struct kd_informer *rev_inf, *ep_inf;
	struct kd_chan_down *status_down;
	struct kd_http_server *http, *admin;
	struct kd_act_stats *stats;
	/* counters (/metrics) */
	uint64_t unknown_revision, status_ops, api_updates, pokes, stats_sent;
	struct kd_prom_hist proxy_latency; /* request arrival -> end of the forwarded response */
};

/* ---- revs.c ---- */
int kd_act_revs_start(struct kd_act *a, struct kd_error **err);
void kd_act_revs_stop(struct kd_act *a);
/* The revision "ns/name", or NULL. */
struct kd_act_rev *kd_act_rev_get(struct kd_act *a, const char *ns, const char *name);
/* The revision "ns/name", created (not known yet) if absent. Borrowed. */
struct kd_act_rev *kd_act_rev_ensure(struct kd_act *a, const char *ns, const char *name);
/* True once the Revision and Endpoints informers have listed (and the status server listens). */
bool kd_act_revs_synced(const struct kd_act *a);
/* True when inst can take a request now (routable and under containerConcurrency). */
bool kd_act_inst_free(const struct kd_act_inst *inst);
bool kd_act_inst_routable(const struct kd_act_inst *inst);
size_t kd_act_rev_routable(const struct kd_act_rev *rev);

/* ---- proxy.c ---- */
int kd_act_proxy_start(struct kd_act *a, struct kd_error **err);
void kd_act_proxy_stop(struct kd_act *a);
/* Something changed for rev (an instance became routable, a request finished, the revision
 * appeared or went away): dispatches held requests that can go now. */
void kd_act_dispatch(struct kd_act *a, struct kd_act_rev *rev);
/* The revision is gone: every held request is answered and the entry freed once nothing is in
 * flight to it. */
void kd_act_rev_drain(struct kd_act *a, struct kd_act_rev *rev, int status, const char *why);
/* After a request of rev finished: frees a drained revision with nothing left in flight. */
void kd_act_rev_release(struct kd_act *a, struct kd_act_rev *rev);
/* After a request to inst finished: forgets an instance no source has any more. */
void kd_act_inst_release(struct kd_act *a, struct kd_act_inst *inst);

/* ---- stats.c ---- */
int kd_act_stats_start(struct kd_act *a, struct kd_error **err);
void kd_act_stats_stop(struct kd_act *a);
/* rev's concurrency (inflight + queued) is about to change: advance its window integral. */
void kd_act_stats_touch(struct kd_act *a, struct kd_act_rev *rev);
/* A request for rev arrived while it has no routable instance: tells kd-autoscaler at once. */
void kd_act_stats_poke(struct kd_act *a, struct kd_act_rev *rev);
/* True while the stats WebSocket is open (or no --autoscaler is configured). */
bool kd_act_stats_connected(const struct kd_act *a);

#endif /* KD_ACTIVATOR_H */
