/* bench/trace/trace_sched.h: the replay schedule of a parsed trace: every invocation's arrival
 * (trace time and wall offset), function and requested duration, in the order they are sent.
 *
 * 2019 (counts per minute): conditional on a minute's count c, the arrivals of a Poisson process
 * in that minute are c independent uniform points of the minute; so c points are drawn uniformly
 * in [60 m, 60 m + 60) s and the whole schedule is sorted. A minute keeps exactly the trace's
 * count. The points of (function i, minute m) come from their own pseudo-random stream
 * (splitmix64 seeded by a hash of seed, i and m): the same seed gives the same schedule, and a
 * function's arrivals do not depend on how many functions or minutes are kept.
 * 2021 (one row per invocation): the recorded start times.
 * Wall offset = trace time / compress. Durations are not compressed. */
#ifndef KD_TRACE_SCHED_H
#define KD_TRACE_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kd/error.h"
#include "trace_parse.h"

#define KD_TRACE_SEED_DEFAULT 20190101u

struct kd_trace_sched_opts {
	uint64_t seed;
	size_t minutes;           /* replay trace time [0, 60 * minutes) s; 0: the whole trace */
	double compress;          /* > 0: wall time = trace time / compress */
	uint32_t max_duration_ms; /* requested durations above it are capped to it */
	size_t max_invocations;   /* > 0: the schedule keeps the earliest ones */
	uint64_t warmup_ms;       /* invocations sent before this wall offset are warm-up */
};

/* One scheduled invocation. */
struct kd_trace_call {
	uint32_t fn;       /* index into the trace's fns */
	uint32_t minute;   /* trace minute, 0-based */
	double trace_s;    /* arrival in trace time, s */
	uint64_t at_us;    /* wall offset from the start of the replay: trace_s / compress */
	uint32_t trace_ms; /* the trace's duration, rounded to ms */
	uint32_t req_ms;   /* requested: min(trace_ms, max_duration_ms) */
	bool capped;       /* trace_ms > max_duration_ms */
	bool warmup;       /* at_us < warmup */
	uint64_t gen;      /* generation order (ties of trace_s) */
};

struct kd_trace_sched {
	struct kd_trace_call *calls; /* sorted by trace_s (then fn, then gen) */
	size_t n;
	size_t n_fns;     /* functions of the trace (all kept by the parser) */
	size_t minutes;   /* trace minutes replayed */
	size_t in_window; /* invocations in those minutes, before max_invocations */
	size_t truncated; /* in_window - n */
	size_t capped, warmup;
	uint64_t span_us; /* at_us of the last call, 0 if none */
	double compress;
};

/* Builds the schedule of t (borrowed). -EINVAL with *err for options that do not fit the trace
 * (compress <= 0, minutes past the trace's end, max_invocations 0). 0 with *out owned
 * (kd_trace_sched_free). */
int kd_trace_sched_build(const struct kd_trace *t, const struct kd_trace_sched_opts *o,
                         struct kd_trace_sched **out, struct kd_error **err);
void kd_trace_sched_free(struct kd_trace_sched *s);

#endif /* KD_TRACE_SCHED_H */
