/* lib/kd_statclient.c: the WireStatMessages WebSocket client (kd/statclient.h). One lws client
 * context on the process loop (kd_chan_lws), one connection at a time. The connection finds its
 * client through the wsi's opaque user data, never through the context: kd_statclient_free
 * detaches it first, so whatever lws still runs of the closing context (on the loop, when freed
 * from inside a loop callback) reaches nothing of a freed client and schedules no reconnect. */
#include <errno.h>
#include <libwebsockets.h>
#include <string.h>

#include "kd/chan.h"
#include "kd/instance.h"
#include "kd/log.h"
#include "kd/statclient.h"

#define RETRY_BASE_MS 100u
#define RETRY_CAP_MS  5000u

struct sframe {
	struct sframe *next;
	size_t len;
	unsigned char *buf; /* LWS_PRE headroom, then len bytes */
};

struct kd_statclient {
	struct kd_chan_lws *lws;
	char *host;
	int port;
	char *token; /* NULL: none */
	char *peer;
	void (*on_state)(void *ud, bool connected);
	void *ud;
	struct lws *wsi; /* the current connection, once lws has named it */
	bool pending;    /* a connection (attempt or open) is out: its end is still to come */
	bool open;
	unsigned attempt;
	struct kd_timer *retry;
	struct sframe *head, *tail;
	size_t queued;
	uint64_t frames_sent;
};

static void frame_free(struct sframe *f)
{
	free(f->buf);
	free(f);
}

static void drop_frames(struct kd_statclient *c)
{
	for (struct sframe *f = c->head, *n; f; f = n) {
		n = f->next;
		frame_free(f);
	}
	c->head = c->tail = NULL;
	c->queued = 0;
}

static void schedule_retry(struct kd_statclient *c)
{
	if (c->retry)
		kd_loop_timer_start(c->retry,
		                    kd_backoff_ms(c->attempt++, RETRY_BASE_MS, RETRY_CAP_MS));
}

/* Writes the head frame. 0, or -1 to close (lws could not take it). */
static int write_one(struct kd_statclient *c, struct lws *wsi)
{
	struct sframe *f = c->head;
	if (!f)
		return 0;
	if (lws_write(wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_BINARY) < (int)f->len)
		return -1;
	c->head = f->next;
	if (!c->head)
		c->tail = NULL;
	c->queued--;
	c->frames_sent++;
	frame_free(f);
	if (c->head)
		lws_callback_on_writable(wsi);
	return 0;
}

/* The end of the current connection (a failed attempt or a close): drop what is queued, log the
 * first failure of a series and every loss of an open connection, reconnect after backoff. */
static void conn_ended(struct kd_statclient *c, const void *in, size_t len)
{
	bool was_open = c->open;
	if (was_open || c->attempt == 0)
		kd_log_warn("stats: connection to %s at %s:%d %s: %s", c->peer, c->host, c->port,
		            was_open ? "closed" : "failed",
		            in && len ? (const char *)in : "no reason given");
	c->wsi = NULL;
	c->pending = false;
	c->open = false;
	drop_frames(c);
	schedule_retry(c);
	if (was_open && c->on_state)
		c->on_state(c->ud, false);
}

static int statclient_lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                             void *in, size_t len)
{
	struct kd_statclient *c = wsi ? lws_get_opaque_user_data(wsi) : NULL;
	/* not ours: the context's own callbacks, or a connection kd_statclient_free detached */
	if (!c || !c->pending || (c->wsi && c->wsi != wsi))
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	c->wsi = wsi;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		return kd_chan_lws_add_bearer(wsi, c->token, in, len) < 0 ? -1 : 0;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		c->open = true;
		c->attempt = 0;
		kd_log_info("stats: connected to %s at %s:%d", c->peer, c->host, c->port);
		if (c->on_state)
			c->on_state(c->ud, true);
		return 0;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return write_one(c, wsi);
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return 0; /* the autoscaler sends nothing on this socket */
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
	case LWS_CALLBACK_CLIENT_CLOSED:
		conn_ended(c, in, len);
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static const struct lws_protocols protocols[] = {
    {"kd-statclient", statclient_lws_cb, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void connect_now(struct kd_statclient *c)
{
	struct lws_client_connect_info ci;
	memset(&ci, 0, sizeof(ci));
	ci.context = kd_chan_lws_context(c->lws);
	ci.address = c->host;
	ci.port = c->port;
	ci.path = "/";
	ci.host = c->host;
	ci.origin = c->host;
	ci.local_protocol_name = protocols[0].name; /* no subprotocol on the wire, as Knative */
	ci.opaque_user_data = c;
	c->wsi = NULL;
	c->pending = true;
	struct lws *wsi = lws_client_connect_via_info(&ci);
	if (!c->pending)
		return; /* it failed already, and conn_ended scheduled the retry */
	if (wsi) {
		c->wsi = wsi;
		return;
	}
	c->pending = false; /* refused without a callback */
	schedule_retry(c);
}

static void on_retry(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	connect_now(arg);
}

struct kd_statclient *kd_statclient_new(struct kd_loop *loop, const struct kd_statclient_opts *opts,
                                        struct kd_error **err)
{
	if (!opts || !opts->addr) {
		kd_error_set(err, EINVAL, 0, "stats client: no address");
		return NULL;
	}
	char *host = NULL;
	int port = 0;
	if (kd_instance_addr_parse(opts->addr, &host, &port, err) < 0) {
		kd_error_wrap(err, "stats client");
		return NULL;
	}
	struct kd_statclient *c = kd_xcalloc(1, sizeof(*c));
	c->host = host;
	c->port = port;
	c->token = opts->token && *opts->token ? kd_xstrdup(opts->token) : NULL;
	c->peer = kd_xstrdup(opts->peer && *opts->peer ? opts->peer : "autoscaler");
	c->on_state = opts->on_state;
	c->ud = opts->ud;
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.timeout_secs = 5;
	info.connect_timeout_secs = 5;
	c->lws = kd_chan_lws_new(loop, &info, err);
	if (!c->lws) {
		kd_error_wrap(err, "stats client for %s:%d", c->host, c->port);
		kd_statclient_free(c);
		return NULL;
	}
	c->retry = kd_loop_timer_new(loop, on_retry, c);
	connect_now(c);
	return c;
}

int kd_statclient_send(struct kd_statclient *c, const struct kd_statmsg *msgs, size_t n)
{
	if (n == 0)
		return -EINVAL;
	if (!c->open)
		return -ENOTCONN; /* the sender reports again next period */
	if (c->queued >= KD_STATCLIENT_MAX_QUEUED)
		return -ENOBUFS;
	size_t len = 0;
	kd_autofree uint8_t *bytes = kd_wirestat_encode(msgs, n, &len);
	struct sframe *f = kd_xcalloc(1, sizeof(*f));
	f->buf = kd_xmalloc(LWS_PRE + len);
	memcpy(f->buf + LWS_PRE, bytes, len);
	f->len = len;
	if (c->tail)
		c->tail->next = f;
	else
		c->head = f;
	c->tail = f;
	c->queued++;
	lws_callback_on_writable(c->wsi);
	return 0;
}

int kd_statclient_send_stat(struct kd_statclient *c, const char *ns, const char *revision,
                            const char *pod, double concurrency)
{
	char *ns_c = kd_xstrdup(ns), *rev_c = kd_xstrdup(revision), *pod_c = kd_xstrdup(pod);
	struct kd_statmsg m = {
	    .type = KD_STATMSG_STAT,
	    .ns = ns_c,
	    .revision = rev_c,
	    .has_stat = true,
	    .pod = pod_c,
	    .concurrency = concurrency,
	    .requests = concurrency,
	    .timestamp = (int64_t)(kd_wall_ns() / 1000000000ull),
	};
	int rc = kd_statclient_send(c, &m, 1);
	free(ns_c);
	free(rev_c);
	free(pod_c);
	return rc;
}

bool kd_statclient_connected(const struct kd_statclient *c)
{
	return c->open;
}

uint64_t kd_statclient_frames_sent(const struct kd_statclient *c)
{
	return c->frames_sent;
}

void kd_statclient_free(struct kd_statclient *c)
{
	if (!c)
		return;
	/* no reconnect from here on, and no callback of the closing context reaches c */
	kd_loop_timer_free(c->retry);
	c->retry = NULL;
	if (c->wsi)
		lws_set_opaque_user_data(c->wsi, NULL);
	c->pending = false;
	kd_chan_lws_free(c->lws);
	drop_frames(c);
	free(c->host);
	free(c->token);
	free(c->peer);
	free(c);
}
