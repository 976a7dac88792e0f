/* bench/trace/trace_replay.h: sends a schedule's invocations at their times and records each
 * outcome. One thread: curl multi on a kd_loop (kd/curlm.h), so every request of the schedule
 * may be in flight at once (up to max_inflight). Each call is `GET <URL>/?ms=<requested ms>`
 * with its function's Host header, HTTP/1.1, connections kept alive and reused.
 *
 * A call is sent when its wall offset has come (never early); when max_inflight requests are in
 * flight it waits for one to finish, and its send lag (sent - scheduled) shows it. Bounds: every
 * request has its own timeout, the whole run a deadline; the run ends when every call has an
 * outcome, at the deadline, or (stop_on_signals) at SIGINT/SIGTERM; the calls then still in
 * flight are aborted and those not yet sent stay unsent. */
#ifndef KD_TRACE_REPLAY_H
#define KD_TRACE_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kd/error.h"
#include "trace_parse.h"
#include "trace_sched.h"
#include "trace_stats.h"

struct kd_trace_replay_opts {
	uint64_t timeout_ms;  /* per request (curl's total time), > 0 */
	uint64_t deadline_ms; /* the whole run from its start; 0: span + timeout_ms + 5 s */
	size_t max_inflight;  /* > 0 */
	uint64_t progress_ms; /* a progress line on `progress` this often; 0: none */
	FILE *progress;       /* borrowed; NULL: none */
	bool check_body;      /* 200 must come with "slept N ms" for the N requested */
	bool stop_on_signals; /* SIGINT/SIGTERM end the run (the process's signal mask changes) */
};

struct kd_trace_replay_info {
	uint64_t start_wall_ns; /* CLOCK_REALTIME when the replay started */
	uint64_t elapsed_ms;    /* start to end */
	uint64_t deadline_ms;   /* the deadline used */
	size_t peak_inflight;   /* most requests in flight at once */
	size_t aborted, unsent; /* left when the run ended early */
	bool deadline_hit;
	bool interrupted;
};

/* Replays s (borrowed) to targets[0..s->n_fns) (borrowed) and fills r[0..s->n) and *info.
 * 0 when every call got its own outcome; -ETIMEDOUT (deadline) or -EINTR (signal) when the run
 * was cut short (r and *info are filled all the same); -EINVAL for bad options, or -errno when
 * the event loop cannot start, with *err. */
int kd_trace_replay(const struct kd_trace_sched *s, const struct kd_trace_target *targets,
                    const struct kd_trace_replay_opts *o, struct kd_trace_result *r,
                    struct kd_trace_replay_info *info, struct kd_error **err);

#endif /* KD_TRACE_REPLAY_H */
