/* kd_chan.c: WebSocket transport of the direct channels on libwebsockets (libuv foreign loop
 * embedded in kd_loop; see kd/chan.h for why and how). */
#include "kd/chan.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "kd/check.h"
#include "kd/log.h"

#define PING_MS_DEFAULT      1000u
#define DEAD_MS_DEFAULT      3000u
#define HANDSHAKE_MS_DEFAULT 5000u
#define MAX_MSGS_DEFAULT     1024u
#define MAX_BYTES_DEFAULT    ((size_t)64 << 20)
#define OPS_PER_FRAME_DEF    1000u
#define BACKOFF_BASE_DEF     50u
#define BACKOFF_CAP_DEF      2000u
/* Bytes per send() and recv() of a channel socket (lws's protocol tx_packet_size and
 * rx_buffer_size, and the context's service buffer). lws's default, 4 KiB, cut a 60 KiB delta
 * into 15 sends, each waiting for its own POLLOUT turn of the loop and copying the rest into
 * lws's send list: batched throughput was bound by loop turns, not bytes. */
#define IO_CHUNK      (64u << 10)
#define WRITES_PER_CB 64 /* frames written per WRITEABLE callback at most */
#define PROTO_NAME    "kd.v1"
/* After writing an error message, how long we wait for the peer to close (reading and dropping
 * its input meanwhile) before closing ourselves: closing with unread input resets the TCP
 * connection, and the peer could lose the error message that says why. */
#define CLOSE_LINGER_MS 1000u

/* ---- lws logging into kd_log ---------------------------------------------------------------- */

static void lws_log_emit(int level, const char *line)
{
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	if (level & LLL_ERR)
		kd_log_warn("lws: %.*s", (int)n, line);
	else
		kd_log_info("lws: %.*s", (int)n, line);
}

static pthread_once_t lws_log_once = PTHREAD_ONCE_INIT;
static void lws_log_setup(void)
{
	/* KD_LWS_LOG=<lws level bitmask> turns on libwebsockets' own logs (debugging aid) */
	const char *env = getenv("KD_LWS_LOG");
	lws_set_log_level(env ? (int)strtol(env, NULL, 0) : LLL_ERR, lws_log_emit);
}

/* ---- lws on the process loop ---------------------------------------------------------------- */

/* Depth of our lws protocol callbacks on this thread. Inside one, a wsi is closed asynchronously
 * (lws must not free a wsi it is servicing); elsewhere (kd_loop timers, API calls) at once. */
static __thread int lws_cb_depth;

/* lws's static uv handles carry the context as handle->data; they are closed once every wsi is
 * gone, and only then may lws_context_destroy be called again to finish (foreign loop). */
static void count_ctx_handle(uv_handle_t *h, void *arg)
{
	void **a = arg;
	if (h->data == a[0])
		(*(int *)a[1])++;
}

static int ctx_static_handles(struct kd_loop *loop, struct lws_context *ctx)
{
	int n = 0;
	void *a[2] = {ctx, &n};
	uv_walk(kd_loop_uv(loop), count_ctx_handle, a);
	return n;
}

/* Finishes destroying an lws context on the process loop: once its handles are closed, the
 * second lws_context_destroy frees it and NULLs *pctx (info.pcontext). Returns true when done. */
static bool ctx_destroy_step(struct kd_loop *loop, struct lws_context **pctx)
{
	if (*pctx && ctx_static_handles(loop, *pctx) == 0)
		lws_context_destroy(*pctx);
	return *pctx == NULL;
}

typedef void (*ctx_done_fn)(void *arg);

struct ctx_reaper {
	struct kd_loop *loop;
	struct lws_context **pctx;
	ctx_done_fn done;
	void *arg;
	struct kd_timer *t;
	unsigned ticks;
};

#define REAPER_TICK_MS  1u
#define REAPER_MAX_TICK 5000u /* 5 s: lws gave up; leak rather than free what it may still use */

static void reaper_cb(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	struct ctx_reaper *r = arg;
	if (!ctx_destroy_step(loop, r->pctx) && ++r->ticks < REAPER_MAX_TICK) {
		kd_loop_timer_start(t, REAPER_TICK_MS);
		return;
	}
	if (*r->pctx)
		kd_log_warn("chan: lws context not destroyed within %u ms; leaving it",
		            REAPER_MAX_TICK * REAPER_TICK_MS);
	else
		r->done(r->arg);
	kd_loop_release(loop);
	kd_loop_timer_free(t);
	free(r);
}

/* Destroys *pctx (an lws context on loop's uv loop), then calls done(arg), which frees what
 * lws callbacks may still reach. Outside kd_loop_run (at exit, in tests) this happens before it
 * returns, running only lws's handles meanwhile; inside a callback, on the loop (uv_run is not
 * reentrant), with a kd_loop_hold so that kd_loop_free waits for it. */
static void ctx_destroy(struct kd_loop *loop, struct lws_context **pctx, ctx_done_fn done,
                        void *arg)
{
	if (!*pctx) {
		done(arg);
		return;
	}
	lws_context_destroy(*pctx);
	if (kd_loop_running(loop)) {
		struct ctx_reaper *r = kd_xcalloc(1, sizeof(*r));
		r->loop = loop;
		r->pctx = pctx;
		r->done = done;
		r->arg = arg;
		r->t = kd_loop_timer_new(loop, reaper_cb, r);
		kd_loop_hold(loop);
		kd_loop_timer_start(r->t, REAPER_TICK_MS);
		return;
	}
	for (int i = 0; i < 1000 && !ctx_destroy_step(loop, pctx); i++)
		kd_loop_run_attached(loop);
	if (*pctx) {
		kd_log_warn("chan: lws context not fully destroyed; leaving it");
		return;
	}
	done(arg);
}

/* lws 4.1.6 on a foreign loop keeps a context whose listen socket failed to bind (no default
 * vhost), and destroying that context with its handles still on the loop reads freed memory (a
 * taken port segfaulted kd-autoscaler). So the address is tried first (kd_listen_probe), and a
 * context is created only for an address that can be bound. iface: an IPv4 address (NULL:
 * 0.0.0.0; lws listens on IPv4 only here); port 0 (ephemeral) needs no check. 0, or -errno with
 * *err naming the address ("listen 0.0.0.0:8080: Address already in use"). */
static int probe_listen(const char *iface, int port, struct kd_error **err)
{
	const char *addr = iface && *iface ? iface : "0.0.0.0";
	struct in_addr a4;
	if (inet_pton(AF_INET, addr, &a4) != 1)
		return kd_error_set(err, EINVAL, 0, "listen %s:%d: not an IPv4 address", addr,
		                    port);
	return kd_listen_probe(addr, port, err);
}

/* The port the context's default vhost listens on, or -1 (no such vhost: its bind failed). */
static int ctx_listen_port(struct lws_context *ctx)
{
	struct lws_vhost *vh = ctx ? lws_get_vhost_by_name(ctx, "default") : NULL;
	int port = vh ? lws_get_vhost_listen_port(vh) : -1;
	return port > 0 ? port : -1;
}

/* A context whose listener failed although the probe passed (the address was taken in
 * between): destroying it is the crash above, so it is left as it is, once, on the way out of a
 * process that cannot serve. Its memory stays allocated; nothing of it runs again. */
static struct lws_context *abandoned[16]; /* kept reachable: a deliberate leak, not a lost one */
static pthread_mutex_t abandoned_mu = PTHREAD_MUTEX_INITIALIZER;

static void ctx_abandon(struct lws_context **pctx)
{
	kd_log_debug("chan: leaving an lws context undestroyed (its listener failed)");
	pthread_mutex_lock(&abandoned_mu);
	for (size_t i = 0; i < KD_ARRAY_SIZE(abandoned); i++)
		if (!abandoned[i]) {
			abandoned[i] = *pctx;
			break;
		}
	pthread_mutex_unlock(&abandoned_mu);
	*pctx = NULL;
}

/* Outside any lws callback, lets lws finish what a close started (peers then see a close
 * rather than a reset), running only lws's handles; bounded. */
static void lws_settle(struct kd_loop *loop)
{
	if (kd_loop_running(loop))
		return;
	for (int i = 0; i < 50; i++)
		kd_loop_run_attached(loop);
}

/* ---- frames and connections ----------------------------------------------------------------- */

struct frame {
	struct frame *next;
	char *buf; /* LWS_PRE headroom, then len bytes */
	size_t len;
};

enum side { SIDE_UP, SIDE_DOWN };

struct conn {
	enum side side;
	struct lws *wsi;
	struct kd_chan_up *up;     /* SIDE_UP */
	struct kd_chan_down *down; /* SIDE_DOWN */
	struct kd_hs_conn *hs;     /* SIDE_DOWN */
	struct conn *next;         /* downstream list */
	char *rx;
	size_t rx_len, rx_cap;
	bool rx_in_msg;
	bool discard;     /* skipping the rest of an oversize message, then closing */
	size_t discarded; /* bytes skipped so far */
	char discard_reason[160];
	struct frame *q_head, *q_tail; /* control / reply frames */
	bool ping_due;
	bool established;
	int close_code; /* non-zero: close once q is flushed */
	bool linger;    /* after the flush, wait (bounded) for the peer to close first */
	uint64_t close_deadline_ms;
	char close_reason[320];
	uint64_t last_rx_ms;
	uint64_t last_ping_ms;
	struct kd_timer *ka;
};

struct xport {
	size_t max_frame;
	uint32_t ping_ms, dead_ms;
	char *token;
	char *tls_cert, *tls_key, *tls_ca;
	char *path;
};

static void xport_init(struct xport *x, const struct kd_chan_transport_opts *o)
{
	x->max_frame = o->max_frame ? o->max_frame : KD_DELTA_MAX_FRAME_DEFAULT;
	x->ping_ms = o->ping_ms ? o->ping_ms : PING_MS_DEFAULT;
	x->dead_ms = o->dead_ms ? o->dead_ms : DEAD_MS_DEFAULT;
	if (x->dead_ms <= x->ping_ms)
		x->dead_ms = x->ping_ms * 2;
	x->token = o->token ? kd_xstrdup(o->token) : NULL;
	x->tls_cert = o->tls_cert ? kd_xstrdup(o->tls_cert) : NULL;
	x->tls_key = o->tls_key ? kd_xstrdup(o->tls_key) : NULL;
	x->tls_ca = o->tls_ca ? kd_xstrdup(o->tls_ca) : NULL;
	x->path = kd_xstrdup(o->path ? o->path : KD_CHAN_PATH_DEFAULT);
}

static void xport_fini(struct xport *x)
{
	free(x->token);
	free(x->tls_cert);
	free(x->tls_key);
	free(x->tls_ca);
	free(x->path);
}

/* ---- upstream state ------------------------------------------------------------------------- */

/* One delta: ops handed to send, stamped with (epoch, seq) when written. */
struct pend {
	struct pend *next;
	struct kd_msg msg; /* KD_MSG_DELTA; epoch/seq 0 until stamped */
	uint64_t first_id, last_id;
	size_t bytes;   /* encoded size estimate, for back-pressure */
	uint64_t epoch; /* epoch it was last written under (0: never) */
	uint64_t seq;
	bool written;      /* in the current epoch */
	bool ever_written; /* in any epoch (retransmission accounting) */
};

enum up_state { UP_IDLE, UP_CONNECTING, UP_OPEN };

struct kd_chan_up {
	struct kd_loop *loop;
	struct lws_context *ctx;
	struct xport x;
	char *host;
	int port;
	size_t max_msgs, max_bytes, ops_per_frame;
	uint32_t handshake_ms, backoff_base, backoff_cap;
	bool fault_dup, fault_reorder;
	size_t fragment;
	struct kd_chan_up_cbs cbs;
	void *ud;
	struct kd_hs_up *hs;
	enum up_state state;
	struct conn *conn;
	struct kd_timer *retry;    /* reconnect backoff */
	struct kd_timer *hs_timer; /* connect + handshake deadline */
	unsigned attempt;          /* consecutive failed attempts */
	bool connected_once;
	bool destroying;
	/* delta queue: head..tail; `cursor` = first not written in the current epoch */
	struct pend *head, *tail, *cursor;
	size_t held_msgs, held_bytes, held_ops;
	uint64_t next_id;
	bool want_writable;
	uint64_t data_epoch;       /* epoch the written, unacked deltas were written under */
	uint64_t prev_hello_epoch; /* epoch of the hello before the current one */
	struct kd_chan_stats st;
};

/* ---- downstream state ----------------------------------------------------------------------- */

struct kd_chan_down {
	struct kd_loop *loop;
	struct lws_context *ctx;
	struct xport x;
	struct kd_hs_down_cbs user_cbs;
	void *ud;
	struct kd_hs_down *hs;
	struct conn *conns;
	size_t nconns;
	bool reading;
	bool destroying;
	int port;
	struct kd_chan_stats st;
};

/* ---- shared connection helpers -------------------------------------------------------------- */

static struct kd_loop *conn_loop(struct conn *c)
{
	return c->side == SIDE_UP ? c->up->loop : c->down->loop;
}

static struct xport *conn_x(struct conn *c)
{
	return c->side == SIDE_UP ? &c->up->x : &c->down->x;
}

static struct kd_chan_stats *conn_st(struct conn *c)
{
	return c->side == SIDE_UP ? &c->up->st : &c->down->st;
}

/* Process-wide counters by end (kd_chan_get_totals); the loop's thread only. */
static struct kd_chan_totals totals[2];

static struct kd_chan_totals *conn_tot(struct conn *c)
{
	return &totals[c->side == SIDE_UP ? KD_CHAN_END_UP : KD_CHAN_END_DOWN];
}

void kd_chan_get_totals(enum kd_chan_end end, struct kd_chan_totals *out)
{
	*out = totals[end == KD_CHAN_END_DOWN ? KD_CHAN_END_DOWN : KD_CHAN_END_UP];
}

/* Asks lws for a WRITEABLE callback on c. */
static void conn_want_write(struct conn *c)
{
	if (c->wsi)
		lws_callback_on_writable(c->wsi);
}

static const char *side_name(const struct conn *c)
{
	return c->side == SIDE_UP ? "upstream" : "downstream";
}

static void conn_queue_raw(struct conn *c, const char *buf, size_t len)
{
	struct frame *f = kd_xcalloc(1, sizeof(*f));
	f->buf = kd_xmalloc(LWS_PRE + len + 1);
	memcpy(f->buf + LWS_PRE, buf, len);
	f->len = len;
	if (c->q_tail)
		c->q_tail->next = f;
	else
		c->q_head = f;
	c->q_tail = f;
	conn_want_write(c);
}

/* Encodes and queues m; a state or reconcile too large for one frame is queued as its pages
 * (kd_msg_encode_pages). Returns 0 or -errno (logged). */
static int conn_queue_msg(struct conn *c, const struct kd_msg *m)
{
	kd_autoerr struct kd_error *err = NULL;
	struct kd_frame_vec fv = {0};
	struct kd_delta_limits lim = {.max_frame = conn_x(c)->max_frame};
	int rc = kd_msg_encode_pages(m, LWS_PRE, &lim, &fv, &err);
	if (rc < 0) {
		kd_log_error("chan %s: encode %s: %s", side_name(c), kd_msg_type_name(m->type),
		             kd_error_msg(err));
		return rc;
	}
	for (size_t i = 0; i < fv.n; i++) {
		struct frame *f = kd_xcalloc(1, sizeof(*f));
		f->buf = fv.v[i].buf;
		f->len = fv.v[i].len;
		if (c->q_tail)
			c->q_tail->next = f;
		else
			c->q_head = f;
		c->q_tail = f;
	}
	free(fv.v);
	conn_want_write(c);
	return 0;
}

/* Asks for the connection to be closed once the queued frames are written. */
static void conn_close_after_flush(struct conn *c, int code, const char *fmt, ...) KD_PRINTF(3, 4);
static void conn_close_after_flush(struct conn *c, int code, const char *fmt, ...)
{
	if (c->close_code)
		return;
	va_list ap;
	va_start(ap, fmt);
	/* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): started on the line above */
	vsnprintf(c->close_reason, sizeof(c->close_reason), fmt, ap);
	va_end(ap);
	c->close_code = code;
	kd_log_warn("chan %s: closing connection (%d): %s", side_name(c), code, c->close_reason);
	conn_want_write(c);
}

/* Refuses further input on c: tells the peer why in an error{MALFORMED} message (a WebSocket
 * close frame with the reason is not reliably delivered by lws 4.1 on the libuv backend), then
 * closes with `code` once that is written. Later input on c is ignored. Returns -1. */
static int conn_close_now(struct conn *c, int code, const char *fmt, ...) KD_PRINTF(3, 4);
static int conn_close_now(struct conn *c, int code, const char *fmt, ...)
{
	if (c->close_code)
		return -1;
	char reason[sizeof(c->close_reason)];
	va_list ap;
	va_start(ap, fmt);
	/* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): started on the line above */
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	uint64_t epoch = c->side == SIDE_UP ? kd_hs_up_epoch(c->up->hs) : kd_hs_conn_epoch(c->hs);
	kd_automsg struct kd_msg *e = kd_msg_new_error(epoch, KD_CODE_MALFORMED, "%s", reason);
	conn_queue_msg(c, e);
	c->linger = true;
	conn_close_after_flush(c, code, "%s", reason);
	return -1;
}

/* Closes c from outside its own lws callbacks (kd_loop timers, API calls). Outside lws callbacks
 * the wsi is closed synchronously, which runs the CLOSED callback: c is freed when this returns.
 * Inside one (of any wsi) the close is scheduled instead. */
static void conn_kill(struct conn *c, const char *reason)
{
	if (!c->wsi)
		return;
	if (reason != c->close_reason)
		snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
	if (!c->close_code)
		c->close_code = LWS_CLOSE_STATUS_GOINGAWAY;
	if (lws_cb_depth) {
		conn_want_write(c);
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		return;
	}
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
}

static void ka_timer_cb(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	struct conn *c = arg;
	struct xport *x = conn_x(c);
	uint64_t now = kd_loop_now_ms(loop);
	if (c->close_deadline_ms) {
		if (now >= c->close_deadline_ms) {
			conn_kill(c, c->close_reason); /* frees c */
			return;
		}
		kd_loop_timer_start(t, c->close_deadline_ms - now);
		return;
	}
	uint64_t quiet = now - c->last_rx_ms;
	if (quiet >= x->dead_ms) {
		conn_st(c)->dead_peers++;
		kd_log_warn("chan %s: dead peer: nothing received for %llu ms (limit %u ms)",
		            side_name(c), (unsigned long long)quiet, x->dead_ms);
		conn_kill(c, "dead peer"); /* frees c */
		return;
	}
	uint64_t next = x->dead_ms - quiet;
	if (quiet >= x->ping_ms && now - c->last_ping_ms >= x->ping_ms) {
		c->ping_due = true;
		c->last_ping_ms = now;
		conn_want_write(c);
	}
	next = KD_MIN(next, (uint64_t)x->ping_ms);
	kd_loop_timer_start(t, next ? next : 1);
}

static struct conn *conn_new(enum side side, struct lws *wsi)
{
	struct conn *c = kd_xcalloc(1, sizeof(*c));
	c->side = side;
	c->wsi = wsi;
	return c;
}

static void conn_start_keepalive(struct conn *c)
{
	struct kd_loop *loop = conn_loop(c);
	c->last_rx_ms = kd_loop_now_ms(loop);
	c->last_ping_ms = c->last_rx_ms;
	c->ka = kd_loop_timer_new(loop, ka_timer_cb, c);
	kd_loop_timer_start(c->ka, conn_x(c)->ping_ms);
}

static void conn_free(struct conn *c)
{
	if (!c)
		return;
	kd_loop_timer_free(c->ka);
	for (struct frame *f = c->q_head, *n; f; f = n) {
		n = f->next;
		free(f->buf);
		free(f);
	}
	free(c->rx);
	kd_hs_conn_free(c->hs);
	free(c);
}

/* Writes one frame; returns 0 or -1 (lws failed; close). */
static int write_frame(struct conn *c, char *buf, size_t len)
{
	size_t frag = c->side == SIDE_UP ? c->up->fragment : 0;
	if (frag && len > frag) {
		/* test-only: one message as several WebSocket fragments. lws writes each header
		 * into the LWS_PRE bytes before the fragment, i.e. over payload already sent. */
		for (size_t off = 0; off < len; off += frag) {
			size_t n = KD_MIN(frag, len - off);
			int flags = off == 0 ? LWS_WRITE_TEXT : LWS_WRITE_CONTINUATION;
			if (off + n < len)
				flags |= LWS_WRITE_NO_FIN;
			if (lws_write(c->wsi, (unsigned char *)buf + LWS_PRE + off, n,
			              (enum lws_write_protocol)flags) < (int)n)
				return -1;
		}
		conn_st(c)->frames_out++;
		conn_tot(c)->frames_out++;
		return 0;
	}
	int n = lws_write(c->wsi, (unsigned char *)buf + LWS_PRE, len, LWS_WRITE_TEXT);
	if (n < (int)len)
		return -1;
	conn_st(c)->frames_out++;
	conn_tot(c)->frames_out++;
	return 0;
}

/* Everything queued before the close is written: close now, or linger for the peer to close. */
static int conn_flushed_close(struct conn *c)
{
	if (c->linger) {
		if (!c->close_deadline_ms) {
			c->close_deadline_ms = kd_loop_now_ms(conn_loop(c)) + CLOSE_LINGER_MS;
			if (c->ka)
				kd_loop_timer_start(c->ka, CLOSE_LINGER_MS);
		}
		return 0;
	}
	lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
	                 (unsigned char *)c->close_reason, strlen(c->close_reason));
	return -1;
}

/* Writes the ping and control frames; returns 1 when more is pending, 0 when the control queue
 * is empty, -1 on a write failure. */
static int flush_control(struct conn *c, int *budget)
{
	if (c->ping_due) {
		unsigned char pb[LWS_PRE + 8];
		c->ping_due = false;
		/* a payload: the lws 4.1.6 client never answers an EMPTY ping from the server, so
		 * the downstream declared every idle upstream dead after dead_ms (added by nd) */
		memcpy(pb + LWS_PRE, "kdka", 4);
		if (lws_write(c->wsi, pb + LWS_PRE, 4, LWS_WRITE_PING) < 0)
			return -1;
		(*budget)--;
	}
	while (c->q_head && *budget > 0 && !lws_send_pipe_choked(c->wsi)) {
		struct frame *f = c->q_head;
		if (write_frame(c, f->buf, f->len) < 0)
			return -1;
		c->q_head = f->next;
		if (!c->q_head)
			c->q_tail = NULL;
		free(f->buf);
		free(f);
		(*budget)--;
	}
	return c->q_head ? 1 : 0;
}

/* Appends one received chunk; returns 1 when a whole message is in c->rx, 0 when more is
 * needed, -1 after deciding to close (the caller returns -1 from the callback). */
static int rx_chunk(struct conn *c, const void *in, size_t len)
{
	struct xport *x = conn_x(c);
	size_t remaining = lws_remaining_packet_payload(c->wsi);
	bool end = remaining == 0 && lws_is_final_fragment(c->wsi);
	c->last_rx_ms = kd_loop_now_ms(conn_loop(c));
	if (c->discard) {
		/* Read the oversize message to its end so that closing does not reset the
		 * connection (unread input) before the peer got our error message; bounded. */
		c->discarded += len;
		if (end || c->discarded > 16 * x->max_frame) {
			c->discard = false;
			c->rx_in_msg = false;
			return conn_close_now(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "%s",
			                      c->discard_reason);
		}
		return -1;
	}
	if (!c->rx_in_msg) {
		c->rx_in_msg = true;
		c->rx_len = 0;
		if (lws_frame_is_binary(c->wsi)) {
			conn_st(c)->rejected++;
			return conn_close_now(c, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
			                      "binary frame refused (text frames only)");
		}
	}
	if (c->rx_len + len + remaining > x->max_frame) {
		conn_st(c)->rejected++;
		snprintf(c->discard_reason, sizeof(c->discard_reason),
		         "frame of at least %zu bytes exceeds the %zu-byte cap",
		         c->rx_len + len + remaining, x->max_frame);
		kd_log_warn("chan %s: %s", side_name(c), c->discard_reason);
		c->discard = true;
		c->discarded = c->rx_len;
		c->rx_len = 0;
		return rx_chunk(c, in, len);
	}
	if (c->rx_len + len + 1 > c->rx_cap) {
		size_t cap = KD_MAX(c->rx_cap * 2, c->rx_len + len + remaining + 1);
		cap = KD_MIN(KD_MAX(cap, (size_t)4096), x->max_frame + 1);
		c->rx = kd_xrealloc(c->rx, cap);
		c->rx_cap = cap;
	}
	if (len)
		memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	if (end) {
		c->rx_in_msg = false;
		conn_st(c)->frames_in++;
		conn_tot(c)->frames_in++;
		return 1;
	}
	return 0;
}

/* Decodes c->rx; on failure queues error{MALFORMED} and requests a close (returns NULL). */
static struct kd_msg *rx_decode(struct conn *c, uint64_t epoch)
{
	kd_autoerr struct kd_error *err = NULL;
	struct kd_msg *m = NULL;
	struct kd_delta_limits lim = {.max_frame = conn_x(c)->max_frame};
	if (kd_msg_decode(c->rx, c->rx_len, &lim, &m, &err) < 0) {
		conn_st(c)->rejected++;
		kd_automsg struct kd_msg *e =
		    kd_msg_new_error(epoch, KD_CODE_MALFORMED, "%s", kd_error_msg(err));
		conn_queue_msg(c, e);
		c->linger = true;
		conn_close_after_flush(c, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "malformed frame: %s",
		                       kd_error_msg(err));
		return NULL;
	}
	return m;
}

/* ---- upstream ------------------------------------------------------------------------------- */

static void up_connect(struct kd_chan_up *up);

static void pend_free(struct pend *p)
{
	kd_msg_fini(&p->msg);
	free(p);
}

static void up_maybe_writable(struct kd_chan_up *up)
{
	if (!up->want_writable || up->destroying)
		return;
	if (up->held_msgs * 2 <= up->max_msgs && up->held_bytes * 2 <= up->max_bytes) {
		up->want_writable = false;
		if (up->cbs.writable)
			up->cbs.writable(up->ud);
	}
}

/* Pops settled deltas off the head (acked or emptied by a reconcile). */
static void up_settle_head(struct kd_chan_up *up, uint64_t acked_seq, bool ack_path)
{
	uint64_t settled_id = 0;
	uint64_t cur = kd_hs_up_epoch(up->hs);
	while (up->head) {
		struct pend *p = up->head;
		bool acked = ack_path && p->written && p->epoch == cur && p->seq <= acked_seq;
		if (!acked && p->msg.delta.ops.n > 0)
			break;
		if (acked)
			up->st.acked++;
		up->head = p->next;
		if (up->cursor == p)
			up->cursor = p->next;
		if (!up->head)
			up->tail = NULL;
		up->held_msgs--;
		up->held_bytes -= p->bytes;
		up->held_ops -= p->msg.delta.ops.n;
		settled_id = p->last_id;
		pend_free(p);
	}
	if (settled_id && up->cbs.acked)
		up->cbs.acked(up->ud, settled_id);
	up_maybe_writable(up);
}

/* Removes, from every held delta, the ops whose key is in keys (sorted). */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void up_filter_keys(struct kd_chan_up *up, char **keys, size_t nkeys)
{
	if (!nkeys)
		return;
	qsort(keys, nkeys, sizeof(*keys), cmp_str);
	for (struct pend *p = up->head; p; p = p->next) {
		struct kd_op_list *l = &p->msg.delta.ops;
		size_t w = 0;
		for (size_t r = 0; r < l->n; r++) {
			const char *k = l->v[r].key;
			if (bsearch(&k, keys, nkeys, sizeof(*keys), cmp_str)) {
				kd_op_fini(&l->v[r]);
				up->held_ops--;
				continue;
			}
			if (w != r)
				l->v[w] = l->v[r];
			w++;
		}
		l->n = w;
	}
}

/* A state{} arrived and kd_hs_up emitted the reconcile in `out`: drop what the downstream
 * reported applied and what the reconcile covers, so nothing is applied twice. */
static void up_after_reconcile(struct kd_chan_up *up, const struct kd_msg_vec *out)
{
	uint64_t last = kd_hs_up_peer_last_seq(up->hs);
	bool exact = up->data_epoch != 0 && up->data_epoch == up->prev_hello_epoch;
	if (exact) {
		for (struct pend *p = up->head; p; p = p->next) {
			if (p->written && p->epoch == up->data_epoch && p->seq <= last) {
				for (size_t i = 0; i < p->msg.delta.ops.n; i++)
					kd_op_fini(&p->msg.delta.ops.v[i]);
				up->held_ops -= p->msg.delta.ops.n;
				p->msg.delta.ops.n = 0;
				up->st.acked++;
			}
		}
	}
	size_t n = 0, cap = 0;
	char **keys = NULL;
	for (size_t i = 0; i < out->n; i++) {
		const struct kd_msg *m = out->v[i];
		if (m->type != KD_MSG_RECONCILE)
			continue;
		const struct kd_key_list *lists[2] = {&m->reconcile.drop, &m->reconcile.keep};
		for (size_t li = 0; li < (exact ? 1u : 2u); li++) {
			for (size_t j = 0; j < lists[li]->n; j++) {
				if (n == cap) {
					cap = cap ? cap * 2 : 64;
					keys = kd_xrealloc(keys, cap * sizeof(*keys));
				}
				keys[n++] = lists[li]->v[j];
			}
		}
		for (size_t j = 0; j < m->reconcile.resend.n; j++) {
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				keys = kd_xrealloc(keys, cap * sizeof(*keys));
			}
			keys[n++] = m->reconcile.resend.v[j].key;
		}
	}
	up_filter_keys(up, keys, n);
	free(keys);
	/* Everything left is (re)sent under the new epoch once READY. */
	for (struct pend *p = up->head; p; p = p->next) {
		p->written = false;
		p->seq = 0;
	}
	up->cursor = up->head;
	up_settle_head(up, 0, false);
	/* Empty deltas in the middle are dropped too. */
	for (struct pend **pp = &up->head; *pp;) {
		struct pend *p = *pp;
		if (p->msg.delta.ops.n == 0) {
			*pp = p->next;
			if (up->cursor == p)
				up->cursor = p->next;
			up->held_msgs--;
			up->held_bytes -= p->bytes;
			pend_free(p);
			continue;
		}
		pp = &p->next;
	}
	up->tail = NULL;
	for (struct pend *p = up->head; p; p = p->next)
		up->tail = p;
	up_maybe_writable(up);
}

/* Stamps and writes one delta. Returns 0 or -1 (close). */
static int up_write_pend(struct kd_chan_up *up, struct pend *p)
{
	struct conn *c = up->conn;
	if (!p->written) {
		kd_autoerr struct kd_error *err = NULL;
		if (kd_hs_up_stamp(up->hs, &p->msg, &err) < 0)
			return -1;
		p->epoch = p->msg.epoch;
		p->seq = p->msg.seq;
		p->written = true;
		if (p->ever_written)
			up->st.retransmitted++;
		p->ever_written = true;
		up->data_epoch = p->epoch;
	}
	kd_autoerr struct kd_error *err = NULL;
	kd_autofree char *buf = NULL;
	size_t len = 0;
	struct kd_delta_limits lim = {.max_frame = up->x.max_frame};
	if (kd_msg_encode(&p->msg, LWS_PRE, &lim, &buf, &len, &err) < 0) {
		kd_log_error("chan upstream: encode delta seq %llu: %s", (unsigned long long)p->seq,
		             kd_error_msg(err));
		return -1;
	}
	kd_autofree char *dup = NULL;
	if (up->fault_dup) {
		/* lws_write masks the payload in place: the copy must be taken first */
		dup = kd_xmalloc(LWS_PRE + len + 1);
		memcpy(dup, buf, LWS_PRE + len + 1);
	}
	if (write_frame(c, buf, len) < 0)
		return -1;
	up->st.sent++;
	if (dup) {
		if (write_frame(c, dup, len) < 0)
			return -1;
		up->st.sent++;
	}
	return 0;
}

static int up_writeable(struct kd_chan_up *up)
{
	struct conn *c = up->conn;
	int budget = WRITES_PER_CB;
	int rc = flush_control(c, &budget);
	if (rc < 0)
		return -1;
	if (rc == 0 && c->close_code)
		return conn_flushed_close(c);
	if (rc == 0 && kd_hs_up_ready(up->hs)) {
		while (up->cursor && budget > 0 && !lws_send_pipe_choked(c->wsi)) {
			struct pend *p = up->cursor;
			if (up->fault_reorder && p->next) {
				if (up_write_pend(up, p->next) < 0 || up_write_pend(up, p) < 0)
					return -1;
				up->cursor = p->next->next;
				budget -= 2;
				continue;
			}
			if (up_write_pend(up, p) < 0)
				return -1;
			up->cursor = p->next;
			budget--;
		}
	}
	if (c->q_head || c->ping_due || (kd_hs_up_ready(up->hs) && up->cursor))
		conn_want_write(c);
	return 0;
}

static void up_on_msg(struct kd_chan_up *up, struct kd_msg *m)
{
	struct conn *c = up->conn;
	kd_autoerr struct kd_error *err = NULL;
	struct kd_msg_vec out = {0};
	enum kd_hs_phase before = kd_hs_up_phase(up->hs);
	int rc = kd_hs_up_on_msg(up->hs, m, &out, &err);
	enum kd_hs_phase after = kd_hs_up_phase(up->hs);
	if (rc == 0 && before == KD_HS_HANDSHAKING && after == KD_HS_RECONCILING)
		up_after_reconcile(up, &out);
	for (size_t i = 0; i < out.n; i++)
		conn_queue_msg(c, out.v[i]);
	kd_msg_vec_fini(&out);
	if (rc < 0) {
		if (rc == -ESTALE)
			up->st.rejected++;
		conn_close_after_flush(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "%s message: %s",
		                       kd_msg_type_name(m->type), kd_error_msg(err));
		return;
	}
	if (m->type == KD_MSG_ACK)
		up_settle_head(up, kd_hs_up_acked(up->hs), true);
	if (before != KD_HS_READY && after == KD_HS_READY) {
		up->attempt = 0;
		kd_loop_timer_stop(up->hs_timer);
		/* everything not yet written in this epoch, including what was queued while the
		 * reconcile was in flight */
		up->cursor = up->head;
		while (up->cursor && up->cursor->written)
			up->cursor = up->cursor->next;
		kd_log_info("chan upstream: %s:%d ready, epoch %llu, %zu ops to (re)send", up->host,
		            up->port, (unsigned long long)kd_hs_up_epoch(up->hs), up->held_ops);
		if (up->cbs.ready)
			up->cbs.ready(up->ud, kd_hs_up_epoch(up->hs));
		conn_want_write(c);
	}
}

static void up_schedule_reconnect(struct kd_chan_up *up)
{
	if (up->destroying)
		return;
	uint64_t ms = kd_backoff_ms(up->attempt, up->backoff_base, up->backoff_cap);
	if (up->attempt < 30)
		up->attempt++;
	kd_log_debug("chan upstream: reconnecting to %s:%d in %llu ms", up->host, up->port,
	             (unsigned long long)ms);
	kd_loop_timer_start(up->retry, ms);
}

static void up_conn_gone(struct kd_chan_up *up, const char *why)
{
	struct conn *c = up->conn;
	up->conn = NULL;
	up->state = UP_IDLE;
	kd_loop_timer_stop(up->hs_timer);
	kd_hs_up_disconnect(up->hs);
	up->cursor = NULL; /* nothing written until the next READY */
	const char *reason = c && c->close_reason[0] ? c->close_reason : why;
	if (!up->destroying) {
		kd_log_info("chan upstream: connection to %s:%d down: %s", up->host, up->port,
		            reason);
		if (up->cbs.down)
			up->cbs.down(up->ud, reason);
	}
	conn_free(c);
	up_schedule_reconnect(up);
}

static int up_lws_cb_in(struct lws *wsi, enum lws_callback_reasons reason, void *user KD_UNUSED,
                        void *in, size_t len)
{
	struct kd_chan_up *up = lws_context_user(lws_get_context(wsi));
	struct conn *c = lws_get_opaque_user_data(wsi);
	if (!up || (c && c->up != up))
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		if (kd_chan_lws_add_bearer(wsi, up->x.token, in, len) < 0)
			return -1;
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
		if (!c)
			break;
		char why[160];
		snprintf(why, sizeof(why), "connect failed: %.*s", in ? (int)len : 7,
		         in ? (const char *)in : "unknown");
		if (in && strstr(in, "401"))
			up->st.rejected++;
		lws_set_opaque_user_data(wsi, NULL);
		c->wsi = NULL;
		up_conn_gone(up, why);
		break;
	}
	case LWS_CALLBACK_CLIENT_ESTABLISHED: {
		if (!c)
			break;
		c->established = true;
		up->state = UP_OPEN;
		up->st.connects++;
		totals[KD_CHAN_END_UP].connects++;
		if (up->connected_once) {
			up->st.reconnects++;
			totals[KD_CHAN_END_UP].reconnects++;
		}
		up->connected_once = true;
		conn_start_keepalive(c);
		struct kd_msg_vec out = {0};
		up->prev_hello_epoch = kd_hs_up_epoch(up->hs);
		kd_hs_up_connect(up->hs, &out);
		for (size_t i = 0; i < out.n; i++)
			conn_queue_msg(c, out.v[i]);
		kd_msg_vec_fini(&out);
		break;
	}
	case LWS_CALLBACK_CLIENT_RECEIVE: {
		if (!c)
			break;
		if (c->close_code)
			break; /* closing: ignore the rest */
		if (rx_chunk(c, in, len) <= 0)
			break;
		kd_automsg struct kd_msg *m = rx_decode(c, kd_hs_up_epoch(up->hs));
		if (m)
			up_on_msg(up, m);
		break;
	}
	case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
		if (c)
			c->last_rx_ms = kd_loop_now_ms(up->loop);
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (!c)
			break;
		return up_writeable(up);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		kd_log_debug("chan upstream: peer close frame, %zu bytes", len);
		if (c && len >= 2 && !c->close_reason[0]) {
			const unsigned char *b = in;
			snprintf(c->close_reason, sizeof(c->close_reason), "peer closed (%d): %.*s",
			         (b[0] << 8) | b[1], (int)(len - 2), (const char *)in + 2);
		}
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (!c)
			break;
		lws_set_opaque_user_data(wsi, NULL);
		c->wsi = NULL;
		up_conn_gone(up, "closed");
		break;
	case LWS_CALLBACK_WSI_DESTROY:
		/* Some close paths (e.g. during the HTTP upgrade) report neither CLIENT_CLOSED nor
		 * CONNECTION_ERROR; this one comes for every wsi, just before it is freed. */
		if (!c || c->wsi != wsi)
			break;
		lws_set_opaque_user_data(wsi, NULL);
		c->wsi = NULL;
		up_conn_gone(up, "connection closed during the upgrade");
		break;
	default:
		break;
	}
	return 0;
}

static void up_connect(struct kd_chan_up *up)
{
	if (up->destroying || up->conn)
		return;
	struct conn *c = conn_new(SIDE_UP, NULL);
	c->up = up;
	up->conn = c;
	up->state = UP_CONNECTING;
	struct lws_client_connect_info ci = {0};
	ci.context = up->ctx;
	ci.address = up->host;
	ci.port = up->port;
	ci.path = up->x.path;
	ci.host = up->host;
	ci.origin = up->host;
	ci.protocol = PROTO_NAME;
	ci.opaque_user_data = c;
	if (up->x.tls_ca || up->x.tls_cert)
		ci.ssl_connection = LCCSCF_USE_SSL | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK;
	kd_loop_timer_start(up->hs_timer, up->handshake_ms);
	struct lws *wsi = lws_client_connect_via_info(&ci);
	if (!wsi) {
		/* lws may already have reported CONNECTION_ERROR (and freed c via up_conn_gone) */
		if (up->conn == c) {
			up->conn = NULL;
			up->state = UP_IDLE;
			conn_free(c);
			kd_loop_timer_stop(up->hs_timer);
			up_schedule_reconnect(up);
		}
		return;
	}
	if (up->conn == c)
		c->wsi = wsi;
}

static void up_retry_cb(struct kd_loop *loop KD_UNUSED, struct kd_timer *t KD_UNUSED, void *arg)
{
	up_connect(arg);
}

static void up_hs_timeout_cb(struct kd_loop *loop KD_UNUSED, struct kd_timer *t KD_UNUSED,
                             void *arg)
{
	struct kd_chan_up *up = arg;
	if (!up->conn)
		return;
	kd_log_warn("chan upstream: %s:%d: connect + handshake not done within %u ms", up->host,
	            up->port, up->handshake_ms);
	if (up->conn->wsi)
		conn_kill(up->conn, "handshake timeout");
}

static void up_finish(void *arg);

/* A context being destroyed takes no new connection and no data (its user's state may already
 * be gone: see ctx_destroy); closes still run. */
static bool refused_while_destroying(enum lws_callback_reasons reason)
{
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
	case LWS_CALLBACK_CLIENT_RECEIVE:
	case LWS_CALLBACK_CLIENT_WRITEABLE:
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
	case LWS_CALLBACK_ESTABLISHED:
	case LWS_CALLBACK_RECEIVE:
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return true;
	default:
		return false;
	}
}

static int up_lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
	struct kd_chan_up *up = lws_context_user(lws_get_context(wsi));
	if (up && up->destroying && refused_while_destroying(reason))
		return -1;
	lws_cb_depth++;
	int rc = up_lws_cb_in(wsi, reason, user, in, len);
	lws_cb_depth--;
	return rc;
}

static const struct lws_protocols up_protocols[] = {
    {PROTO_NAME, up_lws_cb, 0, IO_CHUNK, 0, NULL, IO_CHUNK},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

struct kd_chan_up *kd_chan_up_new(struct kd_loop *loop, const struct kd_chan_up_opts *opts,
                                  const struct kd_chan_up_cbs *cbs, void *ud, struct kd_error **err)
{
	if (!opts->host || !opts->source || opts->port <= 0 || opts->port > 65535) {
		kd_error_set(err, EINVAL, 0, "chan upstream: host, source and port are required");
		return NULL;
	}
	if (!cbs->hs.wanted || !cbs->hs.persisted) {
		kd_error_set(err, EINVAL, 0, "chan upstream: wanted and persisted are required");
		return NULL;
	}
	pthread_once(&lws_log_once, lws_log_setup);
	struct kd_chan_up *up = kd_xcalloc(1, sizeof(*up));
	up->loop = loop;
	xport_init(&up->x, &opts->t);
	up->host = kd_xstrdup(opts->host);
	up->port = opts->port;
	up->max_msgs = opts->max_msgs ? opts->max_msgs : MAX_MSGS_DEFAULT;
	up->max_bytes = opts->max_bytes ? opts->max_bytes : MAX_BYTES_DEFAULT;
	up->ops_per_frame = opts->max_ops_per_frame ? opts->max_ops_per_frame : OPS_PER_FRAME_DEF;
	up->ops_per_frame = KD_MIN(up->ops_per_frame, (size_t)KD_DELTA_MAX_OPS_DEFAULT);
	up->handshake_ms = opts->handshake_ms ? opts->handshake_ms : HANDSHAKE_MS_DEFAULT;
	up->backoff_base = opts->backoff_base_ms ? opts->backoff_base_ms : BACKOFF_BASE_DEF;
	up->backoff_cap = opts->backoff_cap_ms ? opts->backoff_cap_ms : BACKOFF_CAP_DEF;
	up->fault_dup = opts->fault_dup;
	up->fault_reorder = opts->fault_reorder;
	up->fragment = opts->fragment;
	up->cbs = *cbs;
	up->ud = ud;
	up->next_id = 1;
	up->hs = kd_hs_up_new(opts->source, &cbs->hs, ud);
	up->retry = kd_loop_timer_new(loop, up_retry_cb, up);
	up->hs_timer = kd_loop_timer_new(loop, up_hs_timeout_cb, up);

	struct lws_context_creation_info info = {0};
	void *foreign[1] = {kd_loop_uv(loop)};
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = up_protocols;
	info.options = LWS_SERVER_OPTION_LIBUV;
	info.foreign_loops = foreign;
	info.pt_serv_buf_size = IO_CHUNK;
	info.user = up;
	info.pcontext = &up->ctx;
	info.timeout_secs = (up->handshake_ms + 999) / 1000;
	info.connect_timeout_secs = info.timeout_secs;
	if (up->x.tls_ca || up->x.tls_cert) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.client_ssl_ca_filepath = up->x.tls_ca;
		info.client_ssl_cert_filepath = up->x.tls_cert;
		info.client_ssl_private_key_filepath = up->x.tls_key;
	}
	up->ctx = lws_create_context(&info);
	if (!up->ctx) {
		kd_error_set(err, EIO, 0, "chan upstream: lws_create_context failed");
		up->destroying = true;
		kd_chan_up_free(up);
		return NULL;
	}
	up_connect(up);
	return up;
}

void kd_chan_up_free(struct kd_chan_up *up)
{
	if (!up)
		return;
	up->destroying = true;
	kd_loop_timer_free(up->retry);
	up->retry = NULL;
	kd_loop_timer_free(up->hs_timer);
	up->hs_timer = NULL;
	if (up->conn && up->conn->wsi) /* see kd_chan_down_free */
		conn_kill(up->conn, "upstream shutting down");
	lws_settle(up->loop);
	ctx_destroy(up->loop, &up->ctx, up_finish, up);
}

/* The rest of kd_chan_up_free, once lws is done with the context. */
static void up_finish(void *arg)
{
	struct kd_chan_up *up = arg;
	if (up->conn) {
		conn_free(up->conn);
		up->conn = NULL;
	}
	for (struct pend *p = up->head, *n; p; p = n) {
		n = p->next;
		pend_free(p);
	}
	kd_hs_up_free(up->hs);
	xport_fini(&up->x);
	free(up->host);
	free(up);
}

struct chunk {
	size_t at, n, bytes;
};

/* Encodes ops[at, at+n) as a worst-case delta (largest epoch and seq) to validate it and learn
 * its size; halves n until it fits the frame cap. 0 with *n and *bytes set, or -errno. */
static int plan_chunk(struct kd_chan_up *up, const struct kd_op_list *ops, size_t at, size_t *n,
                      size_t *bytes, struct kd_error **err)
{
	struct kd_delta_limits lim = {.max_frame = up->x.max_frame};
	for (;;) {
		struct kd_msg probe;
		kd_msg_init(&probe, KD_MSG_DELTA, UINT64_MAX, KD_SEQ_MAX);
		probe.delta.ops.v = ops->v + at; /* borrowed view, not freed */
		probe.delta.ops.n = probe.delta.ops.cap = *n;
		char *buf = NULL;
		size_t len = 0;
		kd_autoerr struct kd_error *e = NULL;
		int rc = kd_msg_encode(&probe, 0, &lim, &buf, &len, &e);
		probe.delta.ops.v = NULL;
		probe.delta.ops.n = probe.delta.ops.cap = 0;
		kd_msg_fini(&probe);
		free(buf);
		if (rc == 0) {
			*bytes = len;
			return 0;
		}
		if (rc == -EMSGSIZE && *n > 1) {
			*n /= 2;
			continue;
		}
		if (rc == -EMSGSIZE)
			return kd_error_set(err, EMSGSIZE, 0,
			                    "chan send: op %s alone exceeds the %zu-byte frame cap",
			                    ops->v[at].key, up->x.max_frame);
		kd_error_set(err, -rc, 0, "chan send: %s", kd_error_msg(e));
		return rc;
	}
}

static int send_full(struct kd_chan_up *up)
{
	up->st.eagain++;
	up->want_writable = true;
	return -EAGAIN;
}

int kd_chan_up_send(struct kd_chan_up *up, struct kd_op_list *ops, uint64_t *id,
                    struct kd_error **err)
{
	if (ops->n == 0)
		return kd_error_set(err, EINVAL, 0, "chan send: empty op list");
	if (up->held_msgs >= up->max_msgs || up->held_bytes >= up->max_bytes)
		return send_full(up);
	/* Plan the deltas first (validating and measuring every one), so that the call either
	 * queues everything or nothing, and a delta never fails to encode at write time. */
	size_t nch = 0, cap = 8, bytes = 0;
	kd_autofree struct chunk *ch = kd_xmalloc(cap * sizeof(*ch));
	for (size_t at = 0; at < ops->n;) {
		size_t n = KD_MIN(up->ops_per_frame, ops->n - at), b = 0;
		int rc = plan_chunk(up, ops, at, &n, &b, err);
		if (rc < 0)
			return rc;
		if (nch == cap) {
			cap *= 2;
			ch = kd_xrealloc(ch, cap * sizeof(*ch));
		}
		ch[nch++] = (struct chunk){.at = at, .n = n, .bytes = b};
		bytes += b;
		at += n;
	}
	if (up->held_msgs + nch > up->max_msgs || up->held_bytes + bytes > up->max_bytes)
		return send_full(up);
	for (size_t k = 0; k < nch; k++) {
		size_t n = ch[k].n;
		struct pend *p = kd_xcalloc(1, sizeof(*p));
		kd_msg_init(&p->msg, KD_MSG_DELTA, 0, 0);
		p->msg.delta.ops.v = kd_xmalloc(n * sizeof(struct kd_op));
		p->msg.delta.ops.cap = n;
		p->msg.delta.ops.n = n;
		memcpy(p->msg.delta.ops.v, ops->v + ch[k].at, n * sizeof(struct kd_op));
		p->bytes = ch[k].bytes;
		p->first_id = up->next_id;
		up->next_id += n;
		p->last_id = up->next_id - 1;
		if (up->tail)
			up->tail->next = p;
		else
			up->head = p;
		up->tail = p;
		if (!up->cursor && kd_hs_up_ready(up->hs))
			up->cursor = p;
		up->held_msgs++;
		up->held_bytes += p->bytes;
		up->held_ops += n;
	}
	/* the ops moved into the deltas: leave the caller's list empty */
	free(ops->v);
	ops->v = NULL;
	ops->n = ops->cap = 0;
	if (id)
		*id = up->next_id - 1;
	if (up->conn && up->conn->wsi && kd_hs_up_ready(up->hs)) {
		conn_want_write(up->conn);
	}
	return 0;
}

bool kd_chan_up_ready(const struct kd_chan_up *up)
{
	return up->conn && kd_hs_up_ready(up->hs);
}

uint64_t kd_chan_up_epoch(const struct kd_chan_up *up)
{
	return kd_hs_up_epoch(up->hs);
}

size_t kd_chan_up_pending_ops(const struct kd_chan_up *up)
{
	return up->held_ops;
}

const struct kd_chan_stats *kd_chan_up_stats(const struct kd_chan_up *up)
{
	return &up->st;
}

void kd_chan_up_kick(struct kd_chan_up *up)
{
	if (up->conn && up->conn->wsi)
		conn_kill(up->conn, "closed by kd_chan_up_kick");
}

int kd_chan_up_send_raw(struct kd_chan_up *up, const char *buf, size_t len)
{
	if (!up->conn || !up->conn->wsi || !up->conn->established)
		return -ENOTCONN;
	conn_queue_raw(up->conn, buf, len);
	return 0;
}

/* ---- downstream ----------------------------------------------------------------------------- */

static int down_apply_cb(void *ud, const char *source, uint64_t epoch, const struct kd_op *op,
                         struct kd_error **err)
{
	struct kd_chan_down *d = ud;
	d->st.applied_ops++;
	return d->user_cbs.apply(d->ud, source, epoch, op, err);
}

static int down_held_cb(void *ud, const char *source, struct kd_op_list *held,
                        struct kd_error **err)
{
	struct kd_chan_down *d = ud;
	return d->user_cbs.held(d->ud, source, held, err);
}

static int down_drop_cb(void *ud, const char *source, const char *key, struct kd_error **err)
{
	struct kd_chan_down *d = ud;
	return d->user_cbs.drop(d->ud, source, key, err);
}

static int down_keep_cb(void *ud, const char *source, const char *key, struct kd_error **err)
{
	struct kd_chan_down *d = ud;
	return d->user_cbs.keep ? d->user_cbs.keep(d->ud, source, key, err) : 0;
}

/* Upgrade filter: path and bearer token. Returns 0 to accept. */
static int down_filter(struct kd_chan_down *d, struct lws *wsi)
{
	char uri[256];
	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0 ||
	    strcmp(uri, d->x.path) != 0) {
		d->st.rejected++;
		kd_log_warn("chan downstream: upgrade refused: path \"%s\" is not \"%s\"", uri,
		            d->x.path);
		lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
		return -1;
	}
	enum kd_chan_auth a = kd_chan_lws_check_bearer(wsi, d->x.token);
	if (a == KD_CHAN_AUTH_OK || a == KD_CHAN_AUTH_NONE)
		return 0;
	d->st.rejected++;
	kd_log_warn("chan downstream: upgrade refused: %s bearer token (401)",
	            a == KD_CHAN_AUTH_WRONG ? "wrong" : "missing");
	lws_return_http_status(wsi, HTTP_STATUS_UNAUTHORIZED, NULL);
	return -1;
}

static void down_on_msg(struct kd_chan_down *d, struct conn *c, const struct kd_msg *m)
{
	kd_autoerr struct kd_error *err = NULL;
	struct kd_msg_vec out = {0};
	int rc = kd_hs_down_on_msg(c->hs, m, &out, &err);
	for (size_t i = 0; i < out.n; i++) {
		if (out.v[i]->type == KD_MSG_ACK)
			d->st.acked++;
		conn_queue_msg(c, out.v[i]);
	}
	kd_msg_vec_fini(&out);
	if (m->type == KD_MSG_DELTA && rc == 0)
		d->st.sent++; /* deltas accepted (applied or duplicate) */
	if (rc < 0) {
		if (rc == -ESTALE || rc == -EBUSY)
			d->st.rejected++;
		c->linger = m->type != KD_MSG_ERROR; /* we answered with an error message */
		conn_close_after_flush(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "%s message: %s",
		                       kd_msg_type_name(m->type), kd_error_msg(err));
	}
}

static int down_writeable(struct conn *c)
{
	int budget = WRITES_PER_CB;
	int rc = flush_control(c, &budget);
	if (rc < 0)
		return -1;
	if (rc == 0 && c->close_code)
		return conn_flushed_close(c);
	if (c->q_head || c->ping_due)
		conn_want_write(c);
	return 0;
}

static void down_unlink(struct kd_chan_down *d, struct conn *c)
{
	for (struct conn **pp = &d->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			d->nconns--;
			return;
		}
	}
}

static int down_lws_cb_in(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len)
{
	struct kd_chan_down *d = lws_context_user(lws_get_context(wsi));
	struct conn *c = lws_get_opaque_user_data(wsi);
	if (!d)
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return down_filter(d, wsi) < 0 ? 1 : 0;
	case LWS_CALLBACK_ESTABLISHED:
		c = conn_new(SIDE_DOWN, wsi);
		c->down = d;
		c->hs = kd_hs_conn_new(d->hs);
		c->established = true;
		c->next = d->conns;
		d->conns = c;
		d->nconns++;
		d->st.reconnects++;
		d->st.connects++;
		totals[KD_CHAN_END_DOWN].connects++;
		lws_set_opaque_user_data(wsi, c);
		conn_start_keepalive(c);
		if (!d->reading) {
			lws_rx_flow_control(wsi, 0);
			kd_loop_timer_stop(c->ka);
		}
		break;
	case LWS_CALLBACK_RECEIVE: {
		if (!c)
			break;
		if (c->close_code)
			break; /* closing: ignore the rest */
		if (rx_chunk(c, in, len) <= 0)
			break;
		kd_automsg struct kd_msg *m = rx_decode(c, kd_hs_conn_epoch(c->hs));
		if (m)
			down_on_msg(d, c, m);
		break;
	}
	case LWS_CALLBACK_RECEIVE_PONG:
		if (c)
			c->last_rx_ms = kd_loop_now_ms(d->loop);
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!c)
			break;
		return down_writeable(c);
	case LWS_CALLBACK_WSI_DESTROY:
	case LWS_CALLBACK_CLOSED:
		if (!c || c->wsi != wsi)
			break;
		lws_set_opaque_user_data(wsi, NULL);
		down_unlink(d, c);
		if (!d->destroying)
			kd_log_info("chan downstream: connection from %s closed%s%s",
			            kd_hs_conn_source(c->hs) ? kd_hs_conn_source(c->hs)
			                                     : "(no hello)",
			            c->close_reason[0] ? ": " : "", c->close_reason);
		conn_free(c);
		break;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
	return 0;
}

static void down_finish(void *arg);

static int down_lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
	struct kd_chan_down *d = lws_context_user(lws_get_context(wsi));
	if (d && d->destroying && refused_while_destroying(reason))
		return -1;
	lws_cb_depth++;
	int rc = down_lws_cb_in(wsi, reason, user, in, len);
	lws_cb_depth--;
	return rc;
}

static const struct lws_protocols down_protocols[] = {
    {"http", down_lws_cb, 0, 0, 0, NULL, 0},
    {PROTO_NAME, down_lws_cb, 0, IO_CHUNK, 0, NULL, IO_CHUNK},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

struct kd_chan_down *kd_chan_down_new(struct kd_loop *loop, const struct kd_chan_down_opts *opts,
                                      const struct kd_hs_down_cbs *cbs, void *ud,
                                      struct kd_error **err)
{
	if (!cbs->held || !cbs->apply || !cbs->drop) {
		kd_error_set(err, EINVAL, 0, "chan downstream: held, apply and drop are required");
		return NULL;
	}
	if (opts->port < 0 || opts->port > 65535) {
		kd_error_set(err, EINVAL, 0, "chan downstream: bad port %d", opts->port);
		return NULL;
	}
	pthread_once(&lws_log_once, lws_log_setup);
	struct kd_chan_down *d = kd_xcalloc(1, sizeof(*d));
	d->loop = loop;
	xport_init(&d->x, &opts->t);
	d->user_cbs = *cbs;
	d->ud = ud;
	d->reading = true;
	struct kd_hs_down_cbs wrap = {
	    .held = down_held_cb,
	    .apply = down_apply_cb,
	    .drop = down_drop_cb,
	    .keep = down_keep_cb,
	};
	struct kd_hs_down_config cfg = {.reorder_window = opts->reorder_window};
	d->hs = kd_hs_down_new(&wrap, d, &cfg);

	struct lws_context_creation_info info = {0};
	void *foreign[1] = {kd_loop_uv(loop)};
	info.port = opts->port;
	info.iface = opts->bind ? opts->bind : "127.0.0.1";
	if (probe_listen(info.iface, opts->port, err) < 0) {
		kd_error_wrap(err, "chan downstream");
		d->destroying = true;
		kd_chan_down_free(d);
		return NULL;
	}
	info.protocols = down_protocols;
	info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DISABLE_IPV6;
	info.foreign_loops = foreign;
	info.pt_serv_buf_size = IO_CHUNK;
	info.user = d;
	info.pcontext = &d->ctx;
	info.timeout_secs = 5;
	if (d->x.tls_cert) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = d->x.tls_cert;
		info.ssl_private_key_filepath = d->x.tls_key;
		if (d->x.tls_ca) {
			info.ssl_ca_filepath = d->x.tls_ca;
			info.options |= LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT;
		}
	}
	d->ctx = lws_create_context(&info);
	d->port = ctx_listen_port(d->ctx);
	if (!d->ctx || d->port <= 0) {
		kd_error_set(err, EADDRINUSE, 0,
		             "chan downstream: listen %s:%d: cannot bind (taken after the probe?)",
		             info.iface, opts->port);
		if (d->ctx)
			ctx_abandon(&d->ctx);
		kd_chan_down_free(d);
		return NULL;
	}
	return d;
}

void kd_chan_down_free(struct kd_chan_down *d)
{
	if (!d)
		return;
	d->destroying = true;
	/* Close the connections first and let lws finish them on the loop, so that the context
	 * is destroyed idle (peers see a close rather than a reset at exit). */
	while (d->conns && d->conns->wsi) {
		struct conn *c = d->conns;
		conn_kill(c, "downstream shutting down"); /* CLOSED unlinks and frees c */
		if (d->conns == c)
			break;
	}
	lws_settle(d->loop);
	ctx_destroy(d->loop, &d->ctx, down_finish, d);
}

/* The rest of kd_chan_down_free, once lws is done with the context. */
static void down_finish(void *arg)
{
	struct kd_chan_down *d = arg;
	while (d->conns) {
		struct conn *c = d->conns;
		d->conns = c->next;
		conn_free(c);
	}
	kd_hs_down_free(d->hs);
	xport_fini(&d->x);
	free(d);
}

int kd_chan_down_port(const struct kd_chan_down *d)
{
	return d->port;
}

size_t kd_chan_down_conns(const struct kd_chan_down *d)
{
	return d->nconns;
}

const struct kd_chan_stats *kd_chan_down_stats(const struct kd_chan_down *d)
{
	return &d->st;
}

const struct kd_hs_down *kd_chan_down_hs(const struct kd_chan_down *d)
{
	return d->hs;
}

void kd_chan_down_set_reading(struct kd_chan_down *d, bool reading)
{
	d->reading = reading;
	for (struct conn *c = d->conns; c; c = c->next) {
		lws_rx_flow_control(c->wsi, reading ? 1 : 0);
		/* a stuck peer runs no timers either */
		if (reading) {
			c->last_rx_ms = kd_loop_now_ms(d->loop);
			kd_loop_timer_start(c->ka, d->x.ping_ms);
		} else {
			kd_loop_timer_stop(c->ka);
		}
	}
}

int kd_chan_down_send_raw(struct kd_chan_down *d, const char *buf, size_t len)
{
	int n = 0;
	for (struct conn *c = d->conns; c; c = c->next, n++)
		conn_queue_raw(c, buf, len);
	return n;
}

/* ---- embedding other libwebsockets users (kd/chan.h, added 08:40 UTC) ------------------------ */

struct kd_chan_lws {
	struct kd_loop *loop;
	struct lws_context *ctx;
	bool listen; /* a server context: its default vhost listens */
};

struct kd_chan_lws *kd_chan_lws_new(struct kd_loop *loop, struct lws_context_creation_info *info,
                                    struct kd_error **err)
{
	pthread_once(&lws_log_once, lws_log_setup);
	if (info->port != CONTEXT_PORT_NO_LISTEN && probe_listen(info->iface, info->port, err) < 0)
		return NULL;
	struct kd_chan_lws *l = kd_xcalloc(1, sizeof(*l));
	l->loop = loop;
	void *foreign[1] = {kd_loop_uv(loop)};
	info->options |= LWS_SERVER_OPTION_LIBUV;
	info->foreign_loops = foreign;
	info->pcontext = &l->ctx;
	l->ctx = lws_create_context(info);
	info->foreign_loops = NULL;
	info->pcontext = NULL;
	if (!l->ctx) {
		kd_error_set(err, EIO, 0, "lws: cannot create context (port %d)", info->port);
		kd_chan_lws_free(l);
		return NULL;
	}
	if (info->port != CONTEXT_PORT_NO_LISTEN && ctx_listen_port(l->ctx) < 0) {
		const char *addr = info->iface && *info->iface ? info->iface : "0.0.0.0";
		kd_error_set(err, EADDRINUSE, 0,
		             "listen %s:%d: cannot bind (taken after the probe?)", addr,
		             info->port);
		ctx_abandon(&l->ctx);
		kd_chan_lws_free(l);
		return NULL;
	}
	l->listen = info->port != CONTEXT_PORT_NO_LISTEN;
	return l;
}

struct lws_context *kd_chan_lws_context(const struct kd_chan_lws *l)
{
	return l->ctx;
}

void kd_chan_lws_free(struct kd_chan_lws *l)
{
	if (!l)
		return;
	/* a listener that went away is the lws crash of probe_listen: never destroy that */
	if (l->listen && l->ctx && ctx_listen_port(l->ctx) < 0)
		ctx_abandon(&l->ctx);
	ctx_destroy(l->loop, &l->ctx, free, l);
}

/* ---- helpers for other lws users ------------------------------------------------------------ */

static bool token_ok(const char *want, const char *got, size_t got_len)
{
	size_t wl = strlen(want);
	unsigned diff = (unsigned)(wl ^ got_len);
	for (size_t i = 0; i < got_len; i++)
		diff |= (unsigned char)got[i] ^ (unsigned char)(i < wl ? want[i] : 0);
	return diff == 0;
}

enum kd_chan_auth kd_chan_lws_check_bearer(struct lws *wsi, const char *token)
{
	if (!token || !*token)
		return KD_CHAN_AUTH_NONE;
	char auth[1024];
	int n = lws_hdr_copy(wsi, auth, sizeof(auth), WSI_TOKEN_HTTP_AUTHORIZATION);
	if (n <= 0)
		return KD_CHAN_AUTH_MISSING;
	if (n > 7 && strncasecmp(auth, "Bearer ", 7) == 0 &&
	    token_ok(token, auth + 7, (size_t)n - 7))
		return KD_CHAN_AUTH_OK;
	return KD_CHAN_AUTH_WRONG;
}

int kd_chan_lws_add_bearer(struct lws *wsi, const char *token, void *in, size_t len)
{
	if (!token || !*token)
		return 0;
	unsigned char **p = in, *end = *p + len;
	kd_autofree char *v = kd_xasprintf("Bearer %s", token);
	return lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, (unsigned char *)v,
	                                    (int)strlen(v), p, end)
	           ? -1
	           : 0;
}

bool kd_chan_lws_peer_loopback(struct lws *wsi, char *buf, size_t len)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl = sizeof(ss);
	int fd = (int)lws_get_socket_fd(wsi);
	if (buf && len)
		snprintf(buf, len, "?");
	if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		return false;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		if (buf && len)
			inet_ntop(AF_INET, &a->sin_addr, buf, (socklen_t)len);
		return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
		if (buf && len)
			inet_ntop(AF_INET6, &a->sin6_addr, buf, (socklen_t)len);
		if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127;
	}
	if (ss.ss_family == AF_UNIX) {
		if (buf && len)
			snprintf(buf, len, "unix");
		return true;
	}
	return false;
}
