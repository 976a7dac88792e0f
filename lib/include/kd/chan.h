/* kd/chan.h: the WebSocket transport of the direct channels (docs/ARCHITECTURE.md section 3): an
 * upstream end (WebSocket client, one per destination) and a downstream end (WebSocket server, many
 * sources), both on the process's one kd_loop, carrying kd_msg frames (kd/delta.h) and driving
 * the handshake state machines (kd/handshake.h).
 *
 * Event loop: libwebsockets runs in its libuv "foreign loop" mode on the process's one loop
 * (kd_loop_uv): lws's sockets and timers are libuv handles beside kd_loop's own, serviced by the
 * same uv_run. No thread is created; everything runs on the caller's kd_loop thread.
 * Freeing an end from inside a loop callback finishes on the loop (lws closes its handles over
 * later iterations, under a kd_loop_hold); no callback of the end runs after its _free returns.
 *
 * Semantics:
 * - The upstream mints a fresh epoch on every connection (kd_hs_up_connect), runs the two-round
 *   handshake, then sends delta{epoch, seq} with seq 1, 2, ... per epoch. A connection that
 *   fails, closes, or misses keepalive is retried with jittered backoff (kd_backoff_ms).
 * - At-least-once: every op handed to kd_chan_up_send is kept until a cumulative ack covers the
 *   delta that carried it. After a reconnect, when the new handshake is READY, the ops still
 *   unacked are sent again as new deltas of the new epoch, except (a) ops of deltas the
 *   downstream reported applied (state.last_seq, when it unambiguously refers to the epoch that
 *   carried them: the first handshake after that epoch) and (b) ops whose key the reconcile
 *   round just covered (resend or drop), so an op is not applied twice by one downstream.
 *   When last_seq is ambiguous (an intermediate handshake failed after hello) rule (b) is
 *   widened to keep[] too. Application downstream is idempotent by key in any case.
 * - Back-pressure: the upstream holds at most max_msgs deltas / max_bytes of encoded frames
 *   (queued + in flight + unacked). kd_chan_up_send returns -EAGAIN when full; the writable
 *   callback fires once the occupancy drops to half of both limits.
 * - Keepalive: each end sends a WebSocket PING every ping_ms of silence; no frame (of any kind)
 *   from the peer for dead_ms closes the connection ("dead peer") and the upstream reconnects.
 * - Frames: text, one kd_msg each, at most max_frame bytes after reassembly of fragments. An
 *   oversize frame closes with 1009 (message too big), a frame that does not decode with 1007 (and
 *   an error{MALFORMED} message first), a protocol violation with 1008; the reason is logged.
 * - Authentication: optional bearer token, checked by the downstream on the HTTP upgrade (401
 *   otherwise, constant-time compare); optional TLS with client certificates (mutual TLS). The
 *   upstream verifies the server certificate against tls_ca but not its host name (channels
 *   dial pod IPs; the CA is the channel's own). Known libwebsockets 4.1.6 issue: a TLS
 *   downstream that served a connection leaks its SSL_CTX (~700 KB) when freed.
 * - A state{} or reconcile{} larger than max_frame is sent as pages (kd_msg_encode_pages,
 *   "Paging" in kd/delta.h): each page is decoded as it arrives (transfer and decoding
 *   overlap) and the handshake machines act on the whole message after its last page. A held
 *   object costs ~45-70 bytes of state{} (template table), so 10,000 fit one 1 MiB frame and
 *   at most KD_HS_MAX_TOTAL (1,000,000) can be held per source.
 * - Deployment: the libuv event-lib plugin of lws must be installed (Debian package
 *   libwebsockets-evlib-uv, pulled in by libwebsockets-dev).
 *
 * Threading: single-threaded, on the kd_loop given at creation. Callbacks run on that loop.
 * Freeing an end from inside one of its own callbacks is not allowed (defer with a timer).
 */
#ifndef KD_CHAN_H
#define KD_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kd/common.h"
#include "kd/delta.h"
#include "kd/error.h"
#include "kd/handshake.h"
#include "kd/loop.h"

#define KD_CHAN_PATH_DEFAULT "/kd/v1"

/* Counters; monotonically increasing for the life of the end. */
struct kd_chan_stats {
	uint64_t sent;          /* delta frames written (retransmissions included) */
	uint64_t acked;         /* deltas acknowledged (upstream) / acks sent (downstream) */
	uint64_t retransmitted; /* deltas re-sent after a reconnect (upstream) */
	uint64_t rejected;      /* frames refused: oversize, malformed, fenced, auth (401) */
	uint64_t reconnects;    /* connections after the first (upstream) / accepted (down) */
	uint64_t dead_peers;    /* connections closed by keepalive */
	uint64_t applied_ops;   /* ops passed to the stage's apply (downstream) */
	uint64_t frames_in;     /* frames received */
	uint64_t frames_out;    /* frames written (control + data) */
	uint64_t eagain;        /* kd_chan_up_send calls refused with -EAGAIN */
	uint64_t connects;      /* connections established (upstream) / accepted (downstream) */
};

/* Process-wide counters of every end of one kind (upstream: dialled channels; downstream:
 * served ones), freed ends included: for /metrics. Loop thread only. */
enum kd_chan_end { KD_CHAN_END_UP = 0, KD_CHAN_END_DOWN = 1 };
struct kd_chan_totals {
	uint64_t connects;   /* connections established / accepted */
	uint64_t reconnects; /* upstream: connections after an end's first (downstream: 0) */
	uint64_t frames_in;  /* WebSocket messages received (control and data) */
	uint64_t frames_out; /* WebSocket messages written (control and data) */
};
KD_API void kd_chan_get_totals(enum kd_chan_end end, struct kd_chan_totals *out);

/* Transport options common to both ends. Zero means the default given in brackets. */
struct kd_chan_transport_opts {
	size_t max_frame;     /* [KD_DELTA_MAX_FRAME_DEFAULT] largest frame sent or accepted */
	uint32_t ping_ms;     /* [1000] ping after this much silence from the peer */
	uint32_t dead_ms;     /* [3000] close after this much silence from the peer */
	const char *token;    /* bearer token (borrowed during _new; copied) or NULL = no auth */
	const char *tls_cert; /* PEM file paths (copied); cert+key enable TLS for the server and */
	const char *tls_key;  /* client certificates for the upstream */
	const char *tls_ca;   /* CA to verify the peer; on the server it also requires a client
	                       * certificate (mutual TLS) */
	const char *path;     /* [KD_CHAN_PATH_DEFAULT] WebSocket path */
};

/* ---- upstream (WebSocket client) ------------------------------------------------------------ */

struct kd_chan_up;

struct kd_chan_up_cbs {
	/* Handshake callbacks (kd/handshake.h); wanted and persisted required. */
	struct kd_hs_up_cbs hs;
	/* Optional: handshake finished on epoch; deltas flow. */
	void (*ready)(void *ud, uint64_t epoch);
	/* Optional: the connection went down (reason borrowed for the call); a reconnect follows.
	 */
	void (*down)(void *ud, const char *reason);
	/* Optional: kd_chan_up_send refused with -EAGAIN earlier and there is room again. */
	void (*writable)(void *ud);
	/* Optional: every op up to and including id (see kd_chan_up_send) is acknowledged. */
	void (*acked)(void *ud, uint64_t id);
};

struct kd_chan_up_opts {
	const char *host; /* downstream address, e.g. "127.0.0.1" (copied) */
	int port;
	const char *source; /* our name in hello (copied) */
	struct kd_chan_transport_opts t;
	size_t max_msgs;          /* [1024] back-pressure: deltas held (queued + unacked) */
	size_t max_bytes;         /* [64 MiB] back-pressure: encoded bytes held */
	size_t max_ops_per_frame; /* [1000] kd_chan_up_send splits larger lists */
	uint32_t handshake_ms;    /* [5000] connect + handshake must finish within this */
	uint32_t backoff_base_ms; /* [50] reconnect backoff (kd_backoff_ms) */
	uint32_t backoff_cap_ms;  /* [2000] */
	/* Test-only fault injection on delta frames (the harness uses these): */
	bool fault_dup;     /* write every delta frame twice */
	bool fault_reorder; /* swap each pair of consecutive delta frames */
	size_t fragment;    /* write every message as WebSocket fragments of this many bytes */
};

/* Creates the upstream and starts connecting. cbs is copied, ud borrowed, opts strings copied.
 * Returns owned; free with kd_chan_up_free. NULL with *err on failure (bad options, lws). */
KD_API struct kd_chan_up *kd_chan_up_new(struct kd_loop *loop, const struct kd_chan_up_opts *opts,
                                         const struct kd_chan_up_cbs *cbs, void *ud,
                                         struct kd_error **err);
/* Closes the connection and frees everything (unacked ops are dropped). NULL is fine. */
KD_API void kd_chan_up_free(struct kd_chan_up *up);

/* Queues ops (moved: *ops is left empty on success) for delivery as deltas of at most
 * max_ops_per_frame ops, fewer when needed to fit max_frame (each delta is encoded once here to
 * validate and measure it, so a queued delta never fails to encode later). All or nothing.
 * Returns 0 with *id (optional) set to the id of the last op (ids count ops from 1, across
 * epochs); -EAGAIN when the queue is full (ops untouched; the writable callback follows);
 * -EMSGSIZE when one op alone exceeds max_frame; -EINVAL on an empty list or invalid ops (the
 * codec's rules, kd/delta.h), with *err saying which. May be called from any kd_chan callback. */
KD_API int kd_chan_up_send(struct kd_chan_up *up, struct kd_op_list *ops, uint64_t *id,
                           struct kd_error **err);

KD_API bool kd_chan_up_ready(const struct kd_chan_up *up);
KD_API uint64_t kd_chan_up_epoch(const struct kd_chan_up *up);
/* Ops handed to kd_chan_up_send and not yet acknowledged. */
KD_API size_t kd_chan_up_pending_ops(const struct kd_chan_up *up);
KD_API const struct kd_chan_stats *kd_chan_up_stats(const struct kd_chan_up *up); /* borrowed */
/* Closes the current connection (as if the peer vanished) and reconnects after backoff. */
KD_API void kd_chan_up_kick(struct kd_chan_up *up);
/* Test-only: writes `len` raw bytes as one text frame (after anything queued) on the current
 * connection. -ENOTCONN when there is none. */
KD_API int kd_chan_up_send_raw(struct kd_chan_up *up, const char *buf, size_t len);

/* ---- downstream (WebSocket server) ---------------------------------------------------------- */

struct kd_chan_down;

struct kd_chan_down_opts {
	const char *bind; /* ["127.0.0.1"] listen address (copied) */
	int port;         /* 0 = ephemeral; see kd_chan_down_port */
	struct kd_chan_transport_opts t;
	unsigned reorder_window; /* [64] see kd_hs_down_config */
};

/* Creates and starts the server. hs callbacks are copied, ud borrowed. Returns owned; free with
 * kd_chan_down_free. NULL with *err on failure (bind, lws). */
KD_API struct kd_chan_down *kd_chan_down_new(struct kd_loop *loop,
                                             const struct kd_chan_down_opts *opts,
                                             const struct kd_hs_down_cbs *cbs, void *ud,
                                             struct kd_error **err);
KD_API void kd_chan_down_free(struct kd_chan_down *down);

KD_API int kd_chan_down_port(const struct kd_chan_down *down);
/* Number of open WebSocket connections. */
KD_API size_t kd_chan_down_conns(const struct kd_chan_down *down);
KD_API const struct kd_chan_stats *
kd_chan_down_stats(const struct kd_chan_down *down); /* borrowed */
/* Handshake state per source (kd/handshake.h), borrowed. */
KD_API const struct kd_hs_down *kd_chan_down_hs(const struct kd_chan_down *down);
/* Test-only: stop (false) / resume (true) reading every connection; a paused downstream answers
 * no ping and sends no ack, like a stuck peer. */
KD_API void kd_chan_down_set_reading(struct kd_chan_down *down, bool reading);
/* Test-only: writes raw bytes as one text frame to every connection. Returns the count. */
KD_API int kd_chan_down_send_raw(struct kd_chan_down *down, const char *buf, size_t len);

/* ---- other libwebsockets users of the process
 * ---------------------------------------------------- The way kd_chan runs lws (foreign libuv
 * loop, see the top of this file), offered to other WebSocket endpoints of a process
 * (kd-autoscaler's stats server), so the process keeps one event loop. */
struct lws_context_creation_info;
struct lws_context;
struct kd_chan_lws;

/* Creates an lws context from info (borrowed; the caller fills protocols, port, iface, user ...;
 * this function adds LWS_SERVER_OPTION_LIBUV, the foreign loop kd_loop_uv(loop) and pcontext).
 * A server context (info->port not CONTEXT_PORT_NO_LISTEN) is returned only listening: a taken
 * or bad address is NULL with *err naming it ("listen 0.0.0.0:8080: Address already in use").
 * Returns owned (kd_chan_lws_free), or NULL with *err. */
KD_API struct kd_chan_lws *kd_chan_lws_new(struct kd_loop *loop,
                                           struct lws_context_creation_info *info,
                                           struct kd_error **err);
/* Borrowed; valid until kd_chan_lws_free. */
KD_API struct lws_context *kd_chan_lws_context(const struct kd_chan_lws *l);
/* Destroys the context (closing its connections). NULL is fine. A server context whose
 * listener is gone is left undestroyed instead (lws 4.1 would read freed memory; see
 * kd_chan.c probe_listen). Not from inside one of its own
 * lws callbacks. From inside another loop callback, lws finishes on the loop (the protocol
 * callbacks may still see the close of their connections, never new data). */
KD_API void kd_chan_lws_free(struct kd_chan_lws *l);

/* The channels' bearer-token authentication, for other WebSocket endpoints of a process (the
 * stats WebSocket of kd-autoscaler and its client in kd-activator): one token, sent as
 * "Authorization: Bearer <token>" on the upgrade, compared in constant time. */
struct lws;
enum kd_chan_auth {
	KD_CHAN_AUTH_NONE = 0,    /* no token configured: nothing to check */
	KD_CHAN_AUTH_OK = 1,      /* the upgrade carries the token */
	KD_CHAN_AUTH_MISSING = 2, /* a token is configured; the upgrade has no Authorization */
	KD_CHAN_AUTH_WRONG = 3,   /* it has one, not "Bearer <token>" */
};
/* Checks the Authorization header of a server connection during its upgrade
 * (LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION) against token (borrowed; NULL or "": none). */
KD_API enum kd_chan_auth kd_chan_lws_check_bearer(struct lws *wsi, const char *token);
/* Adds the Authorization header to a client upgrade, from
 * LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER (in, len: the callback's). token NULL or "": adds
 * nothing. 0, or -1 when it does not fit. */
KD_API int kd_chan_lws_add_bearer(struct lws *wsi, const char *token, void *in, size_t len);
/* True if the peer of the connection is on this host's loopback (127.0.0.0/8, ::1, a v4-mapped
 * 127.x, a Unix socket). Writes the peer's address text to buf (len bytes; "?" if unknown). */
KD_API bool kd_chan_lws_peer_loopback(struct lws *wsi, char *buf, size_t len);

#endif /* KD_CHAN_H */
