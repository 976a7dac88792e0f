/* activator-hook/proxy.c: kd-activator's HTTP side (see activator.h): the data-plane server
 * (--port) and the admin server (--admin-port: /healthz, /readyz, /metrics, /debug/routes). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "activator.h"
#include "ident.h"
#include "kd/log.h"

/* A request of a revision: held in its queue, then in flight to one instance. */
struct kd_act_held {
	struct kd_act_held *prev, *next; /* rev queue while held */
	struct kd_act *a;
	struct kd_act_rev *rev;
	struct kd_act_inst *inst; /* while in flight */
	struct kd_http_req *req;
	struct kd_timer *timer; /* the revision's timeout while held */
	uint64_t t0_ns;
	unsigned tries;
	bool queued;
};

static void respondf(struct kd_http_req *req, int status, const char *fmt, ...) KD_PRINTF(3, 4);
static void respondf(struct kd_http_req *req, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = kd_xvasprintf(fmt, ap);
	va_end(ap);
	char *body = kd_xasprintf("%s\n", msg);
	kd_http_req_respond(req, status, "text/plain; charset=utf-8", body, strlen(body));
	free(body);
	free(msg);
}

static void count_status(struct kd_act_rev *r, int status)
{
	if (status >= 200 && status < 300)
		r->ok_2xx++;
	else if (status >= 400 && status < 500)
		r->resp_4xx++;
	else if (status >= 500)
		r->resp_5xx++;
}

static void unqueue(struct kd_act_held *h)
{
	struct kd_act_rev *r = h->rev;
	if (!h->queued)
		return;
	kd_act_stats_touch(h->a, r);
	if (h->prev)
		h->prev->next = h->next;
	else
		r->qhead = h->next;
	if (h->next)
		h->next->prev = h->prev;
	else
		r->qtail = h->prev;
	h->prev = h->next = NULL;
	h->queued = false;
	r->qlen--;
	kd_loop_timer_stop(h->timer);
}

static void enqueue(struct kd_act_held *h, bool front)
{
	struct kd_act_rev *r = h->rev;
	kd_act_stats_touch(h->a, r);
	if (front) {
		h->next = r->qhead;
		if (r->qhead)
			r->qhead->prev = h;
		else
			r->qtail = h;
		r->qhead = h;
	} else {
		h->prev = r->qtail;
		if (r->qtail)
			r->qtail->next = h;
		else
			r->qhead = h;
		r->qtail = h;
	}
	h->queued = true;
	r->qlen++;
}

/* Frees h. Never frees its revision: the event handlers call kd_act_rev_release last, so no
 * loop over a revision's queue sees it freed. */
static void held_free(struct kd_act_held *h)
{
	kd_http_req_on_abort(h->req, NULL, NULL); /* the request may outlive h (response sending) */
	unqueue(h);
	kd_loop_timer_free(h->timer);
	free(h);
}

/* Answers a request that never went to an instance (or came back unanswered). */
static void held_answer(struct kd_act_held *h, int status, const char *fmt, ...) KD_PRINTF(3, 4);
static void held_answer(struct kd_act_held *h, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = kd_xvasprintf(fmt, ap);
	va_end(ap);
	count_status(h->rev, status);
	respondf(h->req, status, "%s", msg);
	free(msg);
	held_free(h);
}

static void held_timeout(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	struct kd_act_held *h = arg;
	struct kd_act *a = h->a;
	struct kd_act_rev *r = h->rev;
	r->timeouts++;
	kd_log_key_warn(
	    r->key,
	    "route: request %s held %llu ms without a ready instance (%zu routable, %zu "
	    "queued): 503",
	    kd_http_req_target(h->req), (unsigned long long)(r->timeout_ms), kd_act_rev_routable(r),
	    r->qlen);
	held_answer(h, 503,
	            "kd-activator: revision %s has no ready instance after %llu s (its "
	            "timeoutSeconds)",
	            r->key, (unsigned long long)(r->timeout_ms / 1000u));
	kd_act_rev_release(a, r);
}

static void held_abort(void *ud, struct kd_http_req *req)
{
	(void)req;
	struct kd_act_held *h = ud;
	struct kd_act *a = h->a;
	struct kd_act_rev *r = h->rev;
	kd_log_key_debug(r->key, "route: client went away while its request was held");
	h->req = NULL; /* freed by the server when this returns */
	unqueue(h);
	kd_loop_timer_free(h->timer);
	free(h);
	kd_act_rev_release(a, r);
}

/* The least-loaded instance that can take a request now, or NULL. */
static struct kd_act_inst *pick(struct kd_act_rev *r)
{
	struct kd_act_inst *best = NULL;
	for (size_t i = 0; i < r->n_insts; i++) {
		struct kd_act_inst *c = r->insts[i];
		if (kd_act_inst_free(c) && (!best || c->inflight < best->inflight))
			best = c;
	}
	return best;
}

static void forward(struct kd_act_held *h, struct kd_act_inst *inst);

static void fwd_done(void *ud, struct kd_http_req *req, const struct kd_http_fwd_result *res)
{
	(void)req;
	struct kd_act_held *h = ud;
	struct kd_act *a = h->a;
	struct kd_act_rev *r = h->rev;
	struct kd_act_inst *inst = h->inst;
	kd_act_stats_touch(a, r);
	h->inst = NULL;
	inst->inflight--;
	r->inflight--;
	if (!res->reached) {
		/* Never reached the instance: safe to send elsewhere. Skip this one for a second.
		 */
		inst->bad_until_ms = kd_loop_now_ms(a->loop) + 1000u;
		kd_log_key_warn(r->key, "route: %s at %s:%llu refused the request (%s)%s",
		                inst->key, inst->ip, (unsigned long long)a->cfg.instance_port,
		                res->error ? res->error : "connect failed",
		                h->tries <= a->cfg.retries ? "; retrying" : "");
		kd_act_inst_release(a, inst);
		if (h->tries <= a->cfg.retries) {
			r->retried++;
			enqueue(h, true);
			kd_loop_timer_start(h->timer, r->timeout_ms);
			kd_act_dispatch(a, r);
			kd_act_rev_release(a, r);
			return;
		}
		held_answer(h, 502, "kd-activator: no instance of %s accepted the request", r->key);
		kd_act_rev_release(a, r);
		return;
	}
	if (res->client_aborted)
		kd_log_key_debug(r->key, "route: client went away during the forward to %s",
		                 inst->key);
	else if (!res->upstream_ok)
		kd_log_key_warn(r->key, "route: %s at %s failed mid-request: %s (client got %d)",
		                inst->key, inst->ip, res->error ? res->error : "?", res->status);
	count_status(r, res->status);
	kd_prom_hist_observe(&a->proxy_latency, (double)(kd_now_ns() - h->t0_ns) / 1e9);
	kd_act_inst_release(a, inst);
	held_free(h);
	kd_act_dispatch(a, r);
	kd_act_rev_release(a, r);
}

static void forward(struct kd_act_held *h, struct kd_act_inst *inst)
{
	struct kd_act *a = h->a;
	struct kd_act_rev *r = h->rev;
	kd_act_stats_touch(a, r);
	h->inst = inst;
	h->tries++;
	inst->inflight++;
	inst->max_inflight = KD_MAX(inst->max_inflight, inst->inflight);
	r->inflight++;
	struct kd_http_fwd_opts o = {.timeout_ms = (unsigned)KD_MIN(r->timeout_ms, UINT32_MAX)};
	int rc = kd_http_req_forward(h->req, inst->ip, (int)a->cfg.instance_port, &o, fwd_done, h);
	if (rc < 0) {
		kd_log_key_error(r->key, "route: forward to %s at %s: %s", inst->key, inst->ip,
		                 strerror(-rc));
		inst->inflight--;
		r->inflight--;
		h->inst = NULL;
		kd_act_inst_release(a, inst);
		held_answer(h, 502, "kd-activator: cannot forward to %s: %s", inst->key,
		            strerror(-rc));
	}
}

void kd_act_dispatch(struct kd_act *a, struct kd_act_rev *r)
{
	while (r->qhead) {
		struct kd_act_held *h = r->qhead;
		if (r->draining) {
			unqueue(h);
			held_answer(h, 404, "kd-activator: revision %s was deleted", r->key);
			continue;
		}
		if (!r->known && kd_informer_synced(a->rev_inf) && kd_act_rev_routable(r) == 0) {
			unqueue(h);
			a->unknown_revision++;
			held_answer(h, 404,
			            "kd-activator: unknown revision %s (no Revision of class %s)",
			            r->key, a->cfg.pa_class);
			continue;
		}
		struct kd_act_inst *inst = pick(r);
		if (!inst)
			return;
		unqueue(h);
		forward(h, inst);
	}
}

/* Revision of a request (ident.h): 0 with owned *ns and *name, or -ENOENT. */
static int identify(struct kd_http_req *req, char **ns, char **name)
{
	return kd_act_identify(kd_http_req_header(req, KD_ACT_HDR_NS),
	                       kd_http_req_header(req, KD_ACT_HDR_REV),
	                       kd_http_req_header(req, "Host"), ns, name);
}

static void on_request(void *ud, struct kd_http_req *req)
{
	struct kd_act *a = ud;
	kd_autofree char *ns = NULL, *name = NULL;
	if (identify(req, &ns, &name) < 0) {
		a->unknown_revision++;
		respondf(req, 404,
		         "kd-activator: no revision named (set the " KD_ACT_HDR_NS
		         " and " KD_ACT_HDR_REV " headers, or a Host of <revision>.<namespace>)");
		return;
	}
	struct kd_act_rev *r = kd_act_rev_get(a, ns, name);
	bool synced = kd_informer_synced(a->rev_inf);
	if ((!r || (!r->known && kd_act_rev_routable(r) == 0)) && synced) {
		a->unknown_revision++;
		kd_log_info("route %s/%s: unknown revision: 404", ns, name);
		respondf(req, 404, "kd-activator: unknown revision %s/%s (no Revision of class %s)",
		         ns, name, a->cfg.pa_class);
		return;
	}
	if (!r) /* not listed yet: held until the Revision informer has synced */
		r = kd_act_rev_ensure(a, ns, name);
	r->requests++;
	r->window_reqs++;
	r->active = true;
	if (r->qlen >= a->cfg.queue_depth) {
		r->rejected++;
		count_status(r, 503);
		kd_log_key_warn(r->key, "route: queue full (%zu held): 503", r->qlen);
		respondf(req, 503, "kd-activator: revision %s has %zu requests waiting already",
		         r->key, r->qlen);
		return;
	}
	struct kd_act_held *h = kd_xcalloc(1, sizeof(*h));
	h->a = a;
	h->rev = r;
	h->req = req;
	h->t0_ns = kd_now_ns();
	h->timer = kd_loop_timer_new(a->loop, held_timeout, h);
	kd_http_req_on_abort(req, held_abort, h);
	bool cold = kd_act_rev_routable(r) == 0;
	enqueue(h, false);
	kd_loop_timer_start(h->timer, r->timeout_ms);
	if (cold)
		kd_act_stats_poke(a, r);
	kd_act_dispatch(a, r);
}

/* ---- admin ---------------------------------------------------------------------------------- */

struct buf {
	char *s;
	size_t len, cap;
};

static void bprintf(struct buf *b, const char *fmt, ...) KD_PRINTF(2, 3);
static void bprintf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *piece = kd_xvasprintf(fmt, ap);
	va_end(ap);
	size_t n = strlen(piece);
	if (b->len + n + 1 > b->cap) {
		b->cap = KD_MAX(b->cap * 2, b->len + n + 256);
		b->s = kd_xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, piece, n + 1);
	b->len += n;
	free(piece);
}

/* One family with a sample per revision: "name{namespace=..,revision=..[,extra]} v". */
static void per_rev(struct kd_prom *p, struct kd_act *a, const char *name, const char *type,
                    const char *help, uint64_t (*get)(const struct kd_act_rev *))
{
	kd_prom_family(p, name, type, help);
	size_t pos = 0;
	struct kd_act_rev *r;
	while ((r = kd_strmap_next(&a->revs, &pos))) {
		kd_autofree char *l =
		    kd_xasprintf("{namespace=\"%s\",revision=\"%s\"}", r->ns, r->name);
		kd_prom_sample(p, name, l, get(r));
	}
}

static uint64_t rev_requests(const struct kd_act_rev *r)
{
	return r->requests;
}
static uint64_t rev_timeouts(const struct kd_act_rev *r)
{
	return r->timeouts;
}
static uint64_t rev_rejected(const struct kd_act_rev *r)
{
	return r->rejected;
}
static uint64_t rev_retried(const struct kd_act_rev *r)
{
	return r->retried;
}
static uint64_t rev_qlen(const struct kd_act_rev *r)
{
	return r->qlen;
}
static uint64_t rev_inflight(const struct kd_act_rev *r)
{
	return r->inflight;
}
static uint64_t rev_routable(const struct kd_act_rev *r)
{
	return kd_act_rev_routable(r);
}

static char *metrics(struct kd_act *a, size_t *len)
{
	struct kd_prom p = {0};
	per_rev(&p, a, "kd_activator_requests_total", "counter",
	        "Requests received for the revision.", rev_requests);
	per_rev(&p, a, "kd_activator_timeouts_total", "counter",
	        "Requests answered 503 after the revision's timeout without a ready instance.",
	        rev_timeouts);
	per_rev(&p, a, "kd_activator_rejected_total", "counter",
	        "Requests refused because the queue was full.", rev_rejected);
	per_rev(&p, a, "kd_activator_retries_total", "counter",
	        "Requests sent again after an instance refused the connection.", rev_retried);
	kd_prom_family(&p, "kd_activator_responses_total", "counter", "Responses by status class.");
	size_t pos = 0;
	struct kd_act_rev *r;
	while ((r = kd_strmap_next(&a->revs, &pos))) {
		const char *cls[] = {"2xx", "4xx", "5xx"};
		uint64_t v[] = {r->ok_2xx, r->resp_4xx, r->resp_5xx};
		for (int i = 0; i < 3; i++) {
			kd_autofree char *l =
			    kd_xasprintf("{namespace=\"%s\",revision=\"%s\",code=\"%s\"}", r->ns,
			                 r->name, cls[i]);
			kd_prom_sample(&p, "kd_activator_responses_total", l, v[i]);
		}
	}
	per_rev(&p, a, "kd_activator_queue_depth", "gauge",
	        "Requests held waiting for an instance.", rev_qlen);
	per_rev(&p, a, "kd_activator_inflight", "gauge", "Requests forwarded and not yet answered.",
	        rev_inflight);
	per_rev(&p, a, "kd_activator_ready_instances", "gauge",
	        "Instances the activator routes to (ready per kd-node or Endpoints).",
	        rev_routable);
	kd_prom_add(&p, "kd_activator_unknown_revision_total", "counter",
	            "Requests for no known revision (404).", NULL, a->unknown_revision);
	kd_prom_add(&p, "kd_activator_status_ops_total", "counter",
	            "Status ops applied from kd-node.", NULL, a->status_ops);
	kd_prom_add(&p, "kd_activator_endpoints_updates_total", "counter",
	            "Endpoints objects applied.", NULL, a->api_updates);
	kd_prom_add(&p, "kd_activator_pokes_total", "counter",
	            "Immediate stats sent for a revision without instances.", NULL, a->pokes);
	kd_prom_add(&p, "kd_activator_stats_sent_total", "counter",
	            "Stat frames sent to kd-autoscaler.", NULL, a->stats_sent);
	kd_prom_histogram(&p, "kd_activator_proxy_latency_seconds",
	                  "Time from a request's arrival to the end of its forwarded response.",
	                  NULL, &a->proxy_latency);
	return kd_prom_take(&p, len);
}

/* {"revisions":[{"namespace","revision","known","queued","inflight","instances":[{"pod","ip",
 * "routable","source","inflight","max_inflight","routable_since_ms"}]}]}: what the benchmarks and
 * the tests read (max_inflight: the most requests ever in flight to the instance at once). */
static void routes_json(struct kd_act *a, struct buf *b)
{
	bprintf(b, "{\"revisions\":[");
	size_t pos = 0;
	struct kd_act_rev *r;
	bool first = true;
	while ((r = kd_strmap_next(&a->revs, &pos))) {
		bprintf(b,
		        "%s{\"namespace\":\"%s\",\"revision\":\"%s\",\"known\":%s,\"queued\":%zu,"
		        "\"inflight\":%u,\"containerConcurrency\":%u,\"instances\":[",
		        first ? "" : ",", r->ns, r->name, r->known ? "true" : "false", r->qlen,
		        r->inflight, r->cc);
		first = false;
		for (size_t i = 0; i < r->n_insts; i++) {
			const struct kd_act_inst *in = r->insts[i];
			bprintf(b,
			        "%s{\"pod\":\"%s\",\"ip\":\"%s\",\"routable\":%s,\"source\":\"%s\","
			        "\"inflight\":%u,\"max_inflight\":%u,\"routable_since_ms\":%llu}",
			        i ? "," : "", strchr(in->key, '/') + 1, in->ip,
			        kd_act_inst_routable(in) ? "true" : "false",
			        in->chan_ready  ? "kd-node"
			        : in->api_ready ? "endpoints"
			                        : "none",
			        in->inflight, in->max_inflight,
			        (unsigned long long)in->routable_since_ms);
		}
		bprintf(b, "]}");
	}
	bprintf(b, "]}\n");
}

static void on_admin(void *ud, struct kd_http_req *req)
{
	struct kd_act *a = ud;
	const char *path = kd_http_req_target(req);
	size_t plen = strcspn(path, "?");
	struct buf b = {0};
	if (plen == 8 && strncmp(path, "/healthz", 8) == 0) {
		respondf(req, 200, "ok");
	} else if (plen == 7 && strncmp(path, "/readyz", 7) == 0) {
		if (kd_act_revs_synced(a))
			respondf(req, 200, "ready");
		else
			respondf(req, 503, "not ready: %s",
			         !kd_informer_synced(a->rev_inf)  ? "Revisions not listed yet"
			         : !kd_informer_synced(a->ep_inf) ? "Endpoints not listed yet"
			                                          : "status channel not listening");
	} else if (plen == 8 && strncmp(path, "/metrics", 8) == 0) {
		size_t len = 0;
		kd_autofree char *text = metrics(a, &len);
		kd_http_req_respond(req, 200, KD_PROM_CONTENT_TYPE, text, len);
	} else if (plen == 13 && strncmp(path, "/debug/routes", 13) == 0) {
		routes_json(a, &b);
		kd_http_req_respond(req, 200, "application/json", b.s, b.len);
	} else {
		respondf(req, 404,
		         "kd-activator admin: /healthz, /readyz, /metrics, /debug/routes");
	}
	free(b.s);
}

int kd_act_proxy_start(struct kd_act *a, struct kd_error **err)
{
	kd_prom_hist_init(&a->proxy_latency, kd_prom_latency_le, KD_PROM_LATENCY_BUCKETS);
	struct kd_http_server_opts o = {.bind_addr = a->cfg.bind, .port = (int)a->cfg.port};
	a->http = kd_http_server_new(a->loop, &o, on_request, a, err);
	if (!a->http)
		return kd_error_wrap(err, "data-plane server");
	struct kd_http_server_opts ao = {.bind_addr = a->cfg.admin_bind,
	                                 .port = (int)a->cfg.admin_port};
	a->admin = kd_http_server_new(a->loop, &ao, on_admin, a, err);
	if (!a->admin)
		return kd_error_wrap(err, "admin server");
	kd_log_info("serving requests on %s:%d, admin (/healthz /readyz /metrics /debug/routes) on "
	            "%s:%d",
	            a->cfg.bind, kd_http_server_port(a->http), a->cfg.admin_bind,
	            kd_http_server_port(a->admin));
	return 0;
}

void kd_act_proxy_stop(struct kd_act *a)
{
	size_t pos = 0;
	struct kd_act_rev *r;
	while ((r = kd_strmap_next(&a->revs, &pos)))
		while (r->qhead) {
			struct kd_act_held *h = r->qhead;
			unqueue(h);
			held_answer(h, 503, "kd-activator: shutting down");
		}
	kd_http_server_free(a->http);
	a->http = NULL;
	kd_http_server_free(a->admin);
	a->admin = NULL;
}
