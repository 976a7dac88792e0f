/* activator-hook/stats.c: kd-activator -> kd-autoscaler stats (see activator.h). One WebSocket
 * client (libwebsockets on the process loop through kd_chan_lws) to --autoscaler, sending Knative
 * WireStatMessages as binary frames, exactly what Knative's activator sends its autoscaler:
 * per revision with traffic, every --stats-period, the average concurrency (held + in flight)
 * over the period and the requests received; a poke (one stat at once, concurrency >= 1) when a
 * request arrives for a revision without a routable instance, so the decider acts without
 * waiting for a tick. Reconnects with jittered backoff; frames made while disconnected are
 * dropped except the latest poke per revision (the next period reports again anyway). With
 * --chan-token the upgrade carries it as a bearer token (kd-autoscaler requires it from
 * non-loopback peers when it has one). */
#include <errno.h>
#include <libwebsockets.h>
#include <string.h>

#include "activator.h"
#include "kd/instance.h"
#include "kd/log.h"
#include "kd/wirestat.h"

#define MAX_QUEUED 256u /* frames waiting for the socket */

struct sframe {
	struct sframe *next;
	size_t len;
	unsigned char *buf; /* LWS_PRE headroom, then len bytes */
};

struct kd_act_stats {
	struct kd_act *a;
	struct kd_chan_lws *lws;
	struct lws *wsi;
	bool open;
	char *host;
	int port;
	unsigned attempt;
	struct kd_timer *retry, *tick;
	struct sframe *head, *tail;
	size_t queued;
};

static void connect_now(struct kd_act_stats *st);

static void queue_frame(struct kd_act_stats *st, const struct kd_statmsg *m, size_t n)
{
	if (!st->open || st->queued >= MAX_QUEUED)
		return; /* kd-autoscaler gets the next period's report */
	size_t len = 0;
	uint8_t *bytes = kd_wirestat_encode(m, n, &len);
	struct sframe *f = kd_xcalloc(1, sizeof(*f));
	f->buf = kd_xmalloc(LWS_PRE + len);
	memcpy(f->buf + LWS_PRE, bytes, len);
	f->len = len;
	free(bytes);
	if (st->tail)
		st->tail->next = f;
	else
		st->head = f;
	st->tail = f;
	st->queued++;
	lws_callback_on_writable(st->wsi);
}

static void drop_frames(struct kd_act_stats *st)
{
	for (struct sframe *f = st->head, *n; f; f = n) {
		n = f->next;
		free(f->buf);
		free(f);
	}
	st->head = st->tail = NULL;
	st->queued = 0;
}

static void fill(struct kd_act_stats *st, struct kd_statmsg *m, const struct kd_act_rev *r,
                 double concurrency, double requests)
{
	memset(m, 0, sizeof(*m));
	m->type = KD_STATMSG_STAT;
	m->ns = r->ns;
	m->revision = r->name;
	m->has_stat = true;
	m->pod = st->a->cfg.pod_name;
	m->concurrency = concurrency;
	m->requests = requests;
	m->timestamp = (int64_t)(kd_wall_ns() / 1000000000ull);
}

void kd_act_stats_touch(struct kd_act *a, struct kd_act_rev *r)
{
	uint64_t now = kd_loop_now_ms(a->loop);
	if (r->conc_at_ms)
		r->conc_ms += (double)(now - r->conc_at_ms) * (double)(r->inflight + r->qlen);
	r->conc_at_ms = now;
}

void kd_act_stats_poke(struct kd_act *a, struct kd_act_rev *r)
{
	struct kd_act_stats *st = a->stats;
	a->pokes++;
	kd_log_key_debug(r->key, "route: no routable instance: poking kd-autoscaler");
	if (!st)
		return;
	struct kd_statmsg m;
	fill(st, &m, r, (double)KD_MAX(r->inflight + r->qlen + 1u, 1u), 1);
	queue_frame(st, &m, 1);
	a->stats_sent++;
}

static void on_tick(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	struct kd_act_stats *st = arg;
	struct kd_act *a = st->a;
	double period = (double)a->cfg.stats_period_ms;
	size_t cap = a->revs.n, n = 0;
	struct kd_statmsg *msgs = kd_xcalloc(cap ? cap : 1, sizeof(*msgs));
	size_t pos = 0;
	struct kd_act_rev *r;
	while ((r = kd_strmap_next(&a->revs, &pos))) {
		kd_act_stats_touch(a, r);
		bool busy = r->inflight || r->qlen || r->window_reqs;
		/* Every request of a kd revision passes here (its public Endpoints point at us for
		 * good), so we are its only source of concurrency: report it every period while it
		 * has instances, zeros included, which is what lets the decider scale it to zero.
		 * Knative's own activator reports once after traffic ends because Knative's
		 * autoscaler also scrapes the pods; nothing scrapes kd's instances. */
		if (busy || r->active || r->n_insts)
			fill(st, &msgs[n++], r, r->conc_ms / period, (double)r->window_reqs);
		r->active = busy;
		r->conc_ms = 0;
		r->window_reqs = 0;
	}
	if (n) {
		queue_frame(st, msgs, n);
		a->stats_sent++;
	}
	free(msgs);
	kd_loop_timer_start(t, a->cfg.stats_period_ms);
	(void)loop;
}

static int stats_lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	struct kd_act_stats *st = ctx ? lws_context_user(ctx) : NULL;
	if (!st)
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		return kd_chan_lws_add_bearer(wsi, st->a->cfg.chan_token, in, len) < 0 ? -1 : 0;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		st->open = true;
		st->attempt = 0;
		kd_log_info("stats: connected to kd-autoscaler at %s:%d", st->host, st->port);
		return 0;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (st->head) {
			struct sframe *f = st->head;
			if (lws_write(wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_BINARY) <
			    (int)f->len)
				return -1;
			st->head = f->next;
			if (!st->head)
				st->tail = NULL;
			st->queued--;
			free(f->buf);
			free(f);
			if (st->head)
				lws_callback_on_writable(wsi);
		}
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return 0; /* kd-autoscaler sends nothing on this socket */
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (wsi != st->wsi)
			return 0;
		if (st->open || st->attempt == 0)
			kd_log_warn("stats: connection to kd-autoscaler at %s:%d %s: %s", st->host,
			            st->port, st->open ? "closed" : "failed",
			            in && len ? (const char *)in : "no reason given");
		st->wsi = NULL;
		st->open = false;
		drop_frames(st);
		if (!st->a->stopping && st->retry)
			kd_loop_timer_start(st->retry, kd_backoff_ms(st->attempt++, 100, 5000));
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static const struct lws_protocols protocols[] = {
    {"kd-activator-stats", stats_lws_cb, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void connect_now(struct kd_act_stats *st)
{
	struct lws_client_connect_info ci;
	memset(&ci, 0, sizeof(ci));
	ci.context = kd_chan_lws_context(st->lws);
	ci.address = st->host;
	ci.port = st->port;
	ci.path = "/";
	ci.host = st->host;
	ci.origin = st->host;
	ci.local_protocol_name = protocols[0].name; /* no subprotocol on the wire, as Knative */
	ci.pwsi = &st->wsi;
	if (!lws_client_connect_via_info(&ci) && !st->wsi && st->retry)
		kd_loop_timer_start(st->retry, kd_backoff_ms(st->attempt++, 100, 5000));
}

static void on_retry(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	connect_now(arg);
}

bool kd_act_stats_connected(const struct kd_act *a)
{
	return !a->stats || a->stats->open;
}

int kd_act_stats_start(struct kd_act *a, struct kd_error **err)
{
	if (!a->cfg.autoscaler || !*a->cfg.autoscaler) {
		kd_log_warn("stats: no --autoscaler: revisions at zero are not woken by requests");
		return 0;
	}
	struct kd_act_stats *st = kd_xcalloc(1, sizeof(*st));
	st->a = a;
	if (kd_instance_addr_parse(a->cfg.autoscaler, &st->host, &st->port, err) < 0) {
		free(st);
		return kd_error_wrap(err, "--autoscaler");
	}
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.user = st;
	info.timeout_secs = 5;
	info.connect_timeout_secs = 5;
	st->lws = kd_chan_lws_new(a->loop, &info, err);
	if (!st->lws) {
		free(st->host);
		free(st);
		return kd_error_wrap(err, "stats client");
	}
	st->retry = kd_loop_timer_new(a->loop, on_retry, st);
	st->tick = kd_loop_timer_new(a->loop, on_tick, st);
	a->stats = st;
	kd_loop_timer_start(st->tick, a->cfg.stats_period_ms);
	connect_now(st);
	return 0;
}

void kd_act_stats_stop(struct kd_act *a)
{
	struct kd_act_stats *st = a->stats;
	if (!st)
		return;
	kd_loop_timer_free(st->retry);
	st->retry = NULL;
	kd_loop_timer_free(st->tick);
	st->tick = NULL;
	kd_chan_lws_free(st->lws);
	drop_frames(st);
	free(st->host);
	free(st);
	a->stats = NULL;
}
