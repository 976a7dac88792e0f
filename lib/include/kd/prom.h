/* kd/prom.h: the Prometheus text exposition format (version 0.0.4) built in memory, for the
 * /metrics of the admin servers: metric families (# HELP, # TYPE) and their samples, and the
 * API client families every component exposes from its kd_k8s clients. Not thread-safe. */
#ifndef KD_PROM_H
#define KD_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "kd/common.h"

struct kd_k8s;

#define KD_PROM_CONTENT_TYPE "text/plain; version=0.0.4"

/* A text being built; zero-initialise, then kd_prom_take (or kd_prom_fini). */
struct kd_prom {
	char *buf;
	size_t len, cap;
};

/* A histogram's observations: bucket i counts values <= le[i] (and > le[i-1]); counts[n]: above
 * the last bound. Caller storage: kd_prom_hist_init, then kd_prom_hist_observe. */
#define KD_PROM_HIST_MAX 24
struct kd_prom_hist {
	const double *le; /* n increasing upper bounds, borrowed (a static table) */
	size_t n;
	uint64_t counts[KD_PROM_HIST_MAX + 1];
	uint64_t count;
	double sum;
};

/* Latency bounds in seconds, 0.5 ms to 10 s (Prometheus' defaults, finer at the low end). */
#define KD_PROM_LATENCY_BUCKETS 14
KD_API extern const double kd_prom_latency_le[KD_PROM_LATENCY_BUCKETS];

/* Empties h with bounds le (borrowed; must outlive h); n is capped at KD_PROM_HIST_MAX. */
KD_API void kd_prom_hist_init(struct kd_prom_hist *h, const double *le, size_t n);
KD_API void kd_prom_hist_observe(struct kd_prom_hist *h, double v);

/* Starts a family: "# HELP name help" and "# TYPE name type" (type "counter", "gauge" or
 * "histogram"). */
KD_API void kd_prom_family(struct kd_prom *p, const char *name, const char *type, const char *help);
/* One sample "name{labels} v"; labels: "{k=\"v\",...}" as written, or NULL / "" for none. */
KD_API void kd_prom_sample(struct kd_prom *p, const char *name, const char *labels, uint64_t v);
/* A family with its first sample. */
KD_API void kd_prom_add(struct kd_prom *p, const char *name, const char *type, const char *help,
                        const char *labels, uint64_t v);

/* A histogram family: name_bucket{labels,le="..."} (cumulative, then le="+Inf"), name_sum and
 * name_count. labels: the inner part "k=\"v\",..." without braces, or NULL for none. */
KD_API void kd_prom_histogram(struct kd_prom *p, const char *name, const char *help,
                              const char *labels, const struct kd_prom_hist *h);

/* The families of n API clients, each sample labelled client="<names[i]>": <prefix>_api_
 * requests_total, _api_throttled_total, _api_pending and _api_responses_total{code="2xx",...;
 * "error": no HTTP status} (kd_k8s_get_stats, kd_k8s_get_responses). A NULL client is skipped. */
KD_API void kd_prom_k8s_clients(struct kd_prom *p, const char *prefix,
                                struct kd_k8s *const *clients, const char *const *names, size_t n);

/* The channel families of the process (kd_chan_get_totals), labelled channel="<kind>" and
 * end="up|down": <prefix>_chan_connects_total, _chan_reconnects_total (upstream only) and
 * _chan_frames_total{direction="in|out"}. up_kind / down_kind: what the process's upstream /
 * downstream ends carry ("instance", "status"), or NULL if it has none of that end. */
KD_API void kd_prom_chans(struct kd_prom *p, const char *prefix, const char *up_kind,
                          const char *down_kind);

/* The text (owned; free(); "" when nothing was added); p is empty again. */
KD_API char *kd_prom_take(struct kd_prom *p, size_t *len);
/* Frees what p holds. */
KD_API void kd_prom_fini(struct kd_prom *p);

#endif /* KD_PROM_H */
