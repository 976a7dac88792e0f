/* bench/trace/trace_replay.c: the schedule sent over curl multi on a kd_loop (see
 * trace_replay.h).
 *
 * One timer, `tick`, sends every call that is due (kd_now_ns, not the loop's cached time) while
 * fewer than max_inflight are in flight, then re-arms for the next call's offset, rounded up to
 * the millisecond (a timer that fires early re-arms; calls are never sent early). A finished
 * transfer frees its slot; when calls wait for a slot, the curlm `after` callback re-arms tick
 * at once. `deadline` and `progress` are two more timers. */
#include "trace_replay.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "kd/common.h"
#include "kd/curlm.h"
#include "kd/loop.h"

#define BODY_HEAD 64 /* bytes of the body kept for the check */

struct req {
	size_t idx;
	CURL *easy;
	uint64_t sent_ns;
	char head[BODY_HEAD];
	size_t head_len;
	uint64_t bytes;
};

struct rp {
	const struct kd_trace_sched *s;
	const struct kd_trace_target *tg;
	const struct kd_trace_replay_opts *o;
	struct kd_trace_result *r;
	struct kd_trace_replay_info *info;
	struct kd_loop *loop;
	struct kd_curlm *m;
	struct curl_slist **hdrs; /* per function: "Host: ..." or NULL */
	struct req **live;        /* per call: the request in flight, or NULL */
	struct kd_timer *tick, *deadline, *prog;
	uint64_t t0_ns;
	size_t next; /* the next call to send */
	size_t inflight, done, failed;
	bool finished;
};

static size_t write_cb(char *p, size_t sz, size_t n, void *arg)
{
	struct req *q = arg;
	size_t len = sz * n;
	if (q->head_len < BODY_HEAD - 1) {
		size_t k = KD_MIN(len, BODY_HEAD - 1 - q->head_len);
		memcpy(q->head + q->head_len, p, k);
		q->head_len += k;
		q->head[q->head_len] = '\0';
	}
	q->bytes += len;
	return len;
}

static bool body_ok(const struct req *q, uint32_t req_ms)
{
	char want[48];
	int n = snprintf(want, sizeof(want), "slept %" PRIu32 " ms", req_ms);
	return n > 0 && q->head_len >= (size_t)n && memcmp(q->head, want, (size_t)n) == 0 &&
	       (q->head_len == (size_t)n || q->head[n] == ' ' || q->head[n] == '\n');
}

static int64_t since_us(const struct rp *p, uint64_t ns)
{
	return (int64_t)((ns - p->t0_ns) / 1000u);
}

static void finish(struct rp *p)
{
	if (!p->finished) {
		p->finished = true;
		kd_loop_stop(p->loop);
	}
}

static void send_call(struct rp *p, size_t i)
{
	const struct kd_trace_call *c = &p->s->calls[i];
	struct kd_trace_result *res = &p->r[i];
	struct req *q = kd_xcalloc(1, sizeof(*q));
	q->idx = i;
	q->easy = curl_easy_init();
	if (!q->easy) {
		fprintf(stderr, "trace: curl_easy_init failed\n");
		abort();
	}
	kd_autofree char *url = kd_xasprintf("%s/?ms=%" PRIu32, p->tg[c->fn].url, c->req_ms);
	CURL *e = q->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)p->o->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)p->o->timeout_ms);
	curl_easy_setopt(e, CURLOPT_PRIVATE, q);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
	if (p->hdrs[c->fn])
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, p->hdrs[c->fn]);
	q->sent_ns = kd_now_ns();
	res->sent_us = since_us(p, q->sent_ns);
	if (kd_curlm_add(p->m, e) < 0) {
		res->status = KD_TRACE_TRANSPORT;
		res->curl_code = CURLE_FAILED_INIT;
		curl_easy_cleanup(e);
		free(q);
		p->done++;
		p->failed++;
		return;
	}
	p->live[i] = q;
	p->inflight++;
	if (p->inflight > p->info->peak_inflight)
		p->info->peak_inflight = p->inflight;
}

static void tick_cb(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	struct rp *p = arg;
	const struct kd_trace_sched *s = p->s;
	while (p->next < s->n && p->inflight < p->o->max_inflight) {
		uint64_t now_us = (kd_now_ns() - p->t0_ns) / 1000u;
		uint64_t at = s->calls[p->next].at_us;
		if (at > now_us) {
			kd_loop_timer_start(t, (at - now_us + 999u) / 1000u);
			return;
		}
		send_call(p, p->next++);
	}
	if (p->next == s->n && p->inflight == 0)
		finish(p);
	/* else: full; a finished transfer re-arms (after_cb) */
}

static void done_cb(void *ud, CURL *easy, CURLcode result)
{
	struct rp *p = ud;
	struct req *q = NULL;
	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&q);
	uint64_t now = kd_now_ns();
	struct kd_trace_result *res = &p->r[q->idx];
	long code = 0;
	curl_off_t total = 0;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total);
	res->curl_code = (int)result;
	res->http_code = code;
	res->response_us = (int64_t)total;
	res->client_us = (int64_t)((now - q->sent_ns) / 1000u);
	res->bytes = q->bytes;
	if (result != CURLE_OK)
		res->status = KD_TRACE_TRANSPORT;
	else if (code != 200)
		res->status = KD_TRACE_HTTP;
	else if (p->o->check_body && !body_ok(q, p->s->calls[q->idx].req_ms))
		res->status = KD_TRACE_BODY;
	else
		res->status = KD_TRACE_OK;
	p->failed += res->status != KD_TRACE_OK;
	p->live[q->idx] = NULL;
	curl_easy_cleanup(easy);
	free(q);
	p->inflight--;
	p->done++;
}

static void after_cb(void *ud)
{
	struct rp *p = ud;
	if (p->finished)
		return;
	if (p->next == p->s->n && p->inflight == 0)
		finish(p);
	else if (p->next < p->s->n && p->inflight < p->o->max_inflight &&
	         !kd_loop_timer_pending(p->tick))
		kd_loop_timer_start(p->tick, 0);
}

static void progress_line(struct rp *p)
{
	if (!p->o->progress)
		return;
	uint64_t ms = (kd_now_ns() - p->t0_ns) / 1000000u;
	fprintf(p->o->progress,
	        "trace: %" PRIu64 ".%" PRIu64 " s: sent %zu/%zu, answered %zu (%zu not ok), in "
	        "flight %zu\n",
	        ms / 1000u, ms % 1000u / 100u, p->next, p->s->n, p->done, p->failed, p->inflight);
	fflush(p->o->progress);
}

static void prog_cb(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	struct rp *p = arg;
	progress_line(p);
	kd_loop_timer_start(t, p->o->progress_ms);
}

static void deadline_cb(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)t;
	struct rp *p = arg;
	p->info->deadline_hit = true;
	kd_loop_stop(loop);
}

/* The end of a run cut short: the transfers in flight are aborted, the rest stays unsent. */
static void abort_live(struct rp *p)
{
	uint64_t now = kd_now_ns();
	for (size_t i = 0; i < p->s->n; i++) {
		struct req *q = p->live[i];
		if (!q) {
			if (p->r[i].status == KD_TRACE_UNSENT)
				p->info->unsent++;
			continue;
		}
		kd_curlm_remove(p->m, q->easy);
		struct kd_trace_result *res = &p->r[i];
		res->status = KD_TRACE_ABORTED;
		res->curl_code = CURLE_ABORTED_BY_CALLBACK;
		res->client_us = (int64_t)((now - q->sent_ns) / 1000u);
		res->response_us = res->client_us;
		res->bytes = q->bytes;
		curl_easy_cleanup(q->easy);
		free(q);
		p->live[i] = NULL;
		p->inflight--;
		p->info->aborted++;
	}
}

int kd_trace_replay(const struct kd_trace_sched *s, const struct kd_trace_target *targets,
                    const struct kd_trace_replay_opts *o, struct kd_trace_result *r,
                    struct kd_trace_replay_info *info, struct kd_error **err)
{
	if (o->timeout_ms == 0 || o->max_inflight == 0)
		return kd_error_set(err, EINVAL, 0,
		                    "replay: timeout and max in flight must be > 0");
	if (o->timeout_ms > LONG_MAX)
		return kd_error_set(err, EINVAL, 0, "replay: timeout too large");
	memset(info, 0, sizeof(*info));
	for (size_t i = 0; i < s->n; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		r[i].status = KD_TRACE_UNSENT;
		r[i].sent_us = -1;
	}
	struct rp p = {.s = s, .tg = targets, .o = o, .r = r, .info = info};
	p.loop = kd_loop_new();
	if (!p.loop)
		return kd_error_set(err, errno ? errno : ENOMEM, 0, "replay: event loop: %s",
		                    strerror(errno ? errno : ENOMEM));
	int sigfd = -1;
	if (o->stop_on_signals) {
		sigfd = kd_loop_stop_on_signals(p.loop);
		if (sigfd < 0) {
			kd_loop_free(p.loop);
			return kd_error_set(err, -sigfd, 0, "replay: signals: %s",
			                    strerror(-sigfd));
		}
	}
	p.m = kd_curlm_new(p.loop, "trace", done_cb, after_cb, &p);
	curl_multi_setopt(kd_curlm_multi(p.m), CURLMOPT_MAXCONNECTS, (long)o->max_inflight);
	p.hdrs = kd_xcalloc(s->n_fns ? s->n_fns : 1, sizeof(*p.hdrs));
	for (size_t f = 0; f < s->n_fns; f++) {
		if (!targets[f].host)
			continue;
		kd_autofree char *h = kd_xasprintf("Host: %s", targets[f].host);
		p.hdrs[f] = curl_slist_append(NULL, h);
		if (!p.hdrs[f])
			abort();
	}
	p.live = kd_xcalloc(s->n ? s->n : 1, sizeof(*p.live));
	p.tick = kd_loop_timer_new(p.loop, tick_cb, &p);
	p.deadline = kd_loop_timer_new(p.loop, deadline_cb, &p);
	p.prog = kd_loop_timer_new(p.loop, prog_cb, &p);
	info->deadline_ms =
	    o->deadline_ms ? o->deadline_ms : s->span_us / 1000u + o->timeout_ms + 5000u;
	info->start_wall_ns = kd_wall_ns();
	p.t0_ns = kd_now_ns();
	int rc = 0;
	p.finished = s->n == 0;
	if (s->n > 0) {
		kd_loop_timer_start(p.tick, 0);
		kd_loop_timer_start(p.deadline, info->deadline_ms);
		if (o->progress_ms)
			kd_loop_timer_start(p.prog, o->progress_ms);
		rc = kd_loop_run(p.loop);
		if (rc < 0)
			kd_error_set(err, -rc, 0, "replay: event loop: %s", strerror(-rc));
	}
	info->elapsed_ms = (kd_now_ns() - p.t0_ns) / 1000000u;
	if (rc == 0 && !p.finished) {
		info->interrupted = !info->deadline_hit;
		rc = info->deadline_hit ? -ETIMEDOUT : -EINTR;
	}
	abort_live(&p);
	if (o->progress_ms)
		progress_line(&p);
	kd_loop_timer_free(p.tick);
	kd_loop_timer_free(p.deadline);
	kd_loop_timer_free(p.prog);
	kd_curlm_free(p.m);
	for (size_t f = 0; f < s->n_fns; f++)
		curl_slist_free_all(p.hdrs[f]);
	free(p.hdrs);
	free(p.live);
	if (sigfd >= 0)
		kd_loop_signals_close(p.loop, sigfd);
	kd_loop_free(p.loop);
	return rc;
}
