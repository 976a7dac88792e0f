/* bench/trace/trace_stats.h: the replayer's per-invocation outcomes and the figures computed from
 * them.
 *
 * Arithmetic (every time in ms):
 *  - execution time = the requested duration (functions/sleep answers after at least that long);
 *  - scheduling latency = response time - requested duration (curl's total time; not clamped);
 *  - slowdown of an invocation = response time / max(requested duration, floor);
 *  - per-function slowdown = the mean of its invocations' slowdowns, both the arithmetic mean
 *    (KubeDirect's figure) and the geometric mean exp(mean(ln x)) (Dirigent's);
 *  - percentiles are nearest-rank, as bench/lib/kdstats.py: the sorted sample at index
 *    ceil(p / 100 * n) - 1, clamped to [0, n - 1] (the same double arithmetic).
 * Only measured invocations count (sent after the warm-up, answered 200 with the expected body);
 * the send lag counts every invocation sent, warm-up included. */
#ifndef KD_TRACE_STATS_H
#define KD_TRACE_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "trace_sched.h"

enum kd_trace_status {
	KD_TRACE_UNSENT = 0, /* its send time never came before the run ended */
	KD_TRACE_OK,         /* HTTP 200 with the body "slept N ms ..." for the N requested */
	KD_TRACE_HTTP,       /* answered with a status other than 200 */
	KD_TRACE_BODY,       /* 200 with another body (check off: never) */
	KD_TRACE_TRANSPORT,  /* no answer: connect error, reset, timeout (curl_code) */
	KD_TRACE_ABORTED,    /* in flight when the deadline or a signal ended the run */
};

/* "unsent", "ok", "http", "body", "transport", "aborted"; static. */
const char *kd_trace_status_name(enum kd_trace_status s);

/* The outcome of one scheduled call (same index as the schedule's calls). */
struct kd_trace_result {
	enum kd_trace_status status;
	int curl_code;       /* CURLcode of the transfer (0: CURLE_OK) */
	long http_code;      /* 0 without an answer */
	int64_t sent_us;     /* wall offset of the send from the start of the replay; -1: unsent */
	int64_t response_us; /* curl's total time of the transfer */
	int64_t client_us;   /* from the send to the completion, on the replayer's clock */
	uint64_t bytes;      /* response body bytes */
};

struct kd_trace_fn_stats {
	size_t n;     /* measured invocations */
	double arith; /* arithmetic mean slowdown; NaN when n == 0 */
	double geo;   /* geometric mean slowdown; NaN when n == 0 */
};

struct kd_trace_summary {
	size_t scheduled; /* calls of the schedule */
	size_t sent;      /* handed to curl (warm-up included) */
	size_t discarded; /* warm-up calls, whatever their outcome */
	size_t measured;  /* scheduled - discarded */
	size_t ok;        /* measured and KD_TRACE_OK */
	size_t failed;    /* measured and not OK: the sum of the next five */
	size_t f_http, f_body, f_transport, f_aborted, f_unsent;
	size_t warmup_failed; /* warm-up calls not OK */
	size_t capped;        /* calls whose requested duration was capped (warm-up included) */
	size_t truncated;     /* calls of the window left out by the invocation bound */
	size_t floored;       /* ok calls whose requested duration was below the floor */
	double floor_ms;
	/* ms; NaN without samples */
	double lag_p50, lag_p99, lag_max;  /* send lag: sent - scheduled, every sent call */
	double resp_p50, resp_p99;         /* response time, ok calls */
	double sched_p50, sched_p99;       /* scheduling latency, ok calls */
	double slow_p50, slow_p99;         /* slowdown per invocation, ok calls */
	size_t fns_measured;               /* functions with at least one ok call */
	double fn_arith_p50, fn_arith_p99; /* over fns_measured functions */
	double fn_geo_p50, fn_geo_p99;
	struct kd_trace_fn_stats *fns; /* n_fns entries, owned */
	size_t n_fns;
};

/* Nearest-rank p-th percentile of v[0..n) sorted ascending; NaN for n == 0. */
double kd_trace_pct(const double *sorted, size_t n, double p);
/* The same of v in any order (sorts v in place). */
double kd_trace_pct_of(double *v, size_t n, double p);
/* Arithmetic mean; NaN for n == 0. */
double kd_trace_mean(const double *v, size_t n);
/* Geometric mean exp(mean(ln v)); 0 if a value is 0 (and none negative); NaN for n == 0 or a
 * negative value. */
double kd_trace_geomean(const double *v, size_t n);
/* response_ms / max(requested_ms, floor_ms) (floor_ms > 0). */
double kd_trace_slowdown(double response_ms, double requested_ms, double floor_ms);

/* The figures of a replay: s and r (s->n results) borrowed; floor_ms > 0. Fills *out (owned
 * members: kd_trace_summary_fini). */
void kd_trace_summarize(const struct kd_trace_sched *s, const struct kd_trace_result *r,
                        double floor_ms, struct kd_trace_summary *out);
void kd_trace_summary_fini(struct kd_trace_summary *sum);

#endif /* KD_TRACE_STATS_H */
