/* autoscaler-shim/stats.c: the stats WebSocket of kd-autoscaler. Plain WebSocket on
 * --stats-bind:--stats-port (127.0.0.1:8080 by default), any path, no subprotocol (what Knative's
 * activator dials: ws://autoscaler.<ns>.svc:8080). Binary frames are Knative WireStatMessages, text
 * frames our JSON (kd/wirestat.h). Pings are answered by libwebsockets. A message that does not
 * decode is logged and dropped (Knative's server does the same); the connection stays. Messages
 * for revisions that are not ours are ignored. Runs on the process kd_loop through kd_chan_lws.
 *
 * Authentication (the channels' bearer token, --chan-token, kd/chan.h kd_chan_lws_check_bearer):
 *  - a peer is authenticated when it sent the token, or, with no token configured, when it is on
 *    loopback;
 *  - with a token, an upgrade with a wrong token, or with none from a non-loopback peer, is
 *    refused (401): stats from the network need the token too; an unauthenticated loopback peer
 *    may send stats;
 *  - "scale" messages (which override the decider for --scale-hold) are applied only from an
 *    authenticated peer; others are refused with a log line naming the peer. */
#include <errno.h>
#include <libwebsockets.h>
#include <string.h>

#include "autoscaler.h"
#include "kd/log.h"
#include "kd/wirestat.h"

#define MAX_MESSAGE ((size_t)1 << 20)

struct kd_as_stats {
	struct kd_as *as;
	struct kd_chan_lws *lws;
	int port;
	const char *token; /* --chan-token (borrowed from the config), or NULL */
	uint64_t frames, bad_frames, stats, scales, refused, refused_upgrades;
};

struct sconn {
	char *buf;
	size_t len, cap;
	bool binary;
	bool oversize;
	bool checked;  /* the upgrade filter ran (authed, peer set) */
	bool authed;   /* may send scale messages */
	char peer[64]; /* peer address */
};

/* The upgrade filter: returns 0 to accept (c->authed set), -1 after a 401. */
static int check_peer(struct kd_as_stats *st, struct lws *wsi, struct sconn *c)
{
	char peer[64];
	bool loopback = kd_chan_lws_peer_loopback(wsi, peer, sizeof(peer));
	enum kd_chan_auth a = kd_chan_lws_check_bearer(wsi, st->token);
	if (a == KD_CHAN_AUTH_WRONG || (a == KD_CHAN_AUTH_MISSING && !loopback)) {
		st->refused_upgrades++;
		kd_log_warn("stats: upgrade from %s refused: %s bearer token (401)", peer,
		            a == KD_CHAN_AUTH_WRONG ? "wrong" : "missing");
		lws_return_http_status(wsi, HTTP_STATUS_UNAUTHORIZED, NULL);
		return -1;
	}
	if (c) {
		c->checked = true;
		c->authed = a == KD_CHAN_AUTH_OK || (a == KD_CHAN_AUTH_NONE && loopback);
		snprintf(c->peer, sizeof(c->peer), "%s", peer);
	}
	return 0;
}

static void handle(struct kd_as_stats *st, struct sconn *c)
{
	struct kd_statmsg_list l = {0};
	kd_autoerr struct kd_error *err = NULL;
	int rc = c->binary ? kd_wirestat_decode((const uint8_t *)c->buf, c->len, &l, &err)
	                   : kd_statmsg_decode_json(c->buf, c->len, &l, &err);
	st->frames++;
	if (rc < 0) {
		st->bad_frames++;
		kd_log_warn("stats: dropped a %s frame of %zu bytes: %s",
		            c->binary ? "binary" : "text", c->len, kd_error_msg(err));
		kd_statmsg_list_fini(&l);
		return;
	}
	struct kd_as *as = st->as;
	uint64_t now = kd_loop_now_ms(as->loop);
	for (size_t i = 0; i < l.n; i++) {
		const struct kd_statmsg *m = &l.v[i];
		if (m->type == KD_STATMSG_SCALE) {
			if (!c->authed) {
				st->refused++;
				kd_log_warn("stats: scale %s/%s to %d from %s refused: %s", m->ns,
				            m->revision, m->desired, c->peer,
				            st->token
				                ? "the peer sent no bearer token (--chan-token)"
				                : "not a loopback peer (set --chan-token to "
				                  "accept scale messages from the network)");
				continue;
			}
			st->scales++;
			kd_as_manual_scale(as, m->ns, m->revision, m->desired);
			continue;
		}
		if (!m->has_stat)
			continue; /* as Knative's server: entries without a stat are skipped */
		st->stats++;
		struct kd_metric_sample s = {.at_ms = now,
		                             .source = m->pod,
		                             .concurrency = m->concurrency,
		                             .rps = m->requests};
		kd_as_record(as, m->ns, m->revision, &s);
	}
	kd_statmsg_list_fini(&l);
}

static int stats_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
	struct sconn *c = user;
	struct lws_context *ctx = lws_get_context(wsi);
	struct kd_as_stats *st = ctx ? lws_context_user(ctx) : NULL;
	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return st && check_peer(st, wsi, c) < 0 ? 1 : 0;
	case LWS_CALLBACK_ESTABLISHED:
		/* c was zeroed by libwebsockets and filled by the upgrade filter */
		if (!c->checked) {
			/* no filter ran: only what the socket says (no token seen) */
			bool lo = kd_chan_lws_peer_loopback(wsi, c->peer, sizeof(c->peer));
			c->checked = true;
			c->authed = st && !st->token && lo;
		}
		return 0;
	case LWS_CALLBACK_RECEIVE:
		if (!st)
			return 0;
		if (lws_is_first_fragment(wsi)) {
			c->len = 0;
			c->oversize = false;
			c->binary = lws_frame_is_binary(wsi);
		}
		if (!c->oversize && c->len + len <= MAX_MESSAGE) {
			if (c->len + len > c->cap) {
				c->cap = KD_MAX(c->cap * 2, c->len + len + 1);
				c->buf = kd_xrealloc(c->buf, c->cap);
			}
			memcpy(c->buf + c->len, in, len);
			c->len += len;
		} else if (!c->oversize) {
			c->oversize = true;
			st->bad_frames++;
			kd_log_warn("stats: message over %zu bytes dropped", MAX_MESSAGE);
		}
		if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
			if (!c->oversize)
				handle(st, c);
			c->len = 0;
		}
		return 0;
	case LWS_CALLBACK_CLOSED:
	case LWS_CALLBACK_WSI_DESTROY:
		if (c) {
			free(c->buf);
			c->buf = NULL;
			c->len = c->cap = 0;
		}
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static const struct lws_protocols protocols[] = {
    {"kd-stats", stats_cb, sizeof(struct sconn), 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int kd_as_stats_start(struct kd_as *as, struct kd_error **err)
{
	struct kd_as_stats *st = kd_xcalloc(1, sizeof(*st));
	st->as = as;
	st->token = as->cfg.chan_token && *as->cfg.chan_token ? as->cfg.chan_token : NULL;
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = (int)as->cfg.stats_port;
	info.iface = as->cfg.stats_bind && *as->cfg.stats_bind ? as->cfg.stats_bind : NULL;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
	info.user = st;
	info.timeout_secs = 10;
	st->lws = kd_chan_lws_new(as->loop, &info, err);
	if (!st->lws) {
		free(st);
		return kd_error_wrap(err, "stats server on port %d", (int)as->cfg.stats_port);
	}
	struct lws_vhost *vh = lws_get_vhost_by_name(kd_chan_lws_context(st->lws), "default");
	st->port = vh ? lws_get_vhost_listen_port(vh) : -1;
	if (st->port <= 0) {
		kd_chan_lws_free(st->lws);
		free(st);
		return kd_error_set(err, EADDRINUSE, 0, "stats server: cannot listen on port %d",
		                    (int)as->cfg.stats_port);
	}
	as->stats = st;
	kd_log_info("stats: WebSocket on %s:%d (%s)", info.iface ? info.iface : "*", st->port,
	            st->token ? "bearer token required, except stats from loopback"
	                      : "no token: scale messages from loopback peers only");
	return 0;
}

int kd_as_stats_port(const struct kd_as *as)
{
	return as->stats ? as->stats->port : -1;
}

void kd_as_stats_stop(struct kd_as *as)
{
	if (!as->stats)
		return;
	kd_log_info("stats: %llu frames (%llu dropped), %llu stats, %llu scale messages (%llu "
	            "refused), %llu upgrades refused",
	            (unsigned long long)as->stats->frames,
	            (unsigned long long)as->stats->bad_frames, (unsigned long long)as->stats->stats,
	            (unsigned long long)as->stats->scales, (unsigned long long)as->stats->refused,
	            (unsigned long long)as->stats->refused_upgrades);
	kd_chan_lws_free(as->stats->lws);
	free(as->stats);
	as->stats = NULL;
}
