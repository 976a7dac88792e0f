/* kd/statclient.h: a WebSocket client that sends metrics to an autoscaler as Knative's activator
 * does: binary frames, each one protobuf WireStatMessages (kd/wirestat.h), on one connection to
 * ws://HOST:PORT/ with no subprotocol. Both Knative's autoscaler (its stat server, port 8080)
 * and kd-autoscaler (--stats-port) accept it. Used by kd-activator and by the benchmarks that
 * hand both autoscalers the same stat.
 *
 * Runs libwebsockets on the process loop (kd_chan_lws, kd/chan.h). Connects at once and
 * reconnects with jittered backoff (100 ms doubling to 5 s) after a failure or a close. Frames
 * are queued (at most KD_STATCLIENT_MAX_QUEUED) only while connected; what is sent while
 * disconnected is dropped, because the sender reports again next period (as the activator
 * does), and so is what is still queued when the connection is lost. Logs (kd_log) "stats:
 * connected to PEER at HOST:PORT" (info), and "stats: connection to PEER at HOST:PORT
 * closed|failed: REASON" (warn) when an open connection is lost or the first attempt of a
 * failing series fails. Loop thread only. */
#ifndef KD_STATCLIENT_H
#define KD_STATCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kd/common.h"
#include "kd/error.h"
#include "kd/loop.h"
#include "kd/wirestat.h"

#define KD_STATCLIENT_MAX_QUEUED 256u

struct kd_statclient_opts {
	/* "HOST:PORT" or "[V6]:PORT", HOST a name or an IPv4 literal (kd_instance_addr_parse);
	 * required */
	const char *addr;
	/* bearer token for the upgrade (kd-autoscaler's --chan-token); NULL or "": none, and no
	 * Authorization header */
	const char *token;
	/* what the logs call the peer, e.g. "kd-autoscaler"; NULL: "autoscaler" */
	const char *peer;
	/* Called on the loop when the connection opens (true) and when an open connection is lost
	 * (false, after which the client reconnects); attempts that fail are not reported, nor is
	 * the close by kd_statclient_free. May call kd_statclient_send, not kd_statclient_free.
	 * May be NULL. */
	void (*on_state)(void *ud, bool connected);
	void *ud;
};

struct kd_statclient;

/* Starts connecting (on_state is not called from inside). opts is borrowed, its strings are
 * copied. Returns owned (kd_statclient_free), or NULL with *err: a missing or bad address
 * (EINVAL, "stats client: channel address \"x\": expected host:port"), an lws context that
 * cannot be made. */
KD_API struct kd_statclient *kd_statclient_new(struct kd_loop *loop,
                                               const struct kd_statclient_opts *opts,
                                               struct kd_error **err);

/* Encodes msgs[0..n) (borrowed; copied before it returns) as one WireStatMessages frame
 * (kd_wirestat_encode: each one a stat, whatever its type and has_stat) and queues it. 0 when
 * queued, -ENOTCONN when not connected (dropped), -ENOBUFS when KD_STATCLIENT_MAX_QUEUED frames
 * are waiting for the socket (dropped), -EINVAL for n == 0. */
KD_API int kd_statclient_send(struct kd_statclient *c, const struct kd_statmsg *msgs, size_t n);

/* One stat as Knative's activator reports it for a revision: pod, concurrency and requests
 * (here the same count, the requests in flight over a 1 s period), the current time. Strings
 * are borrowed. Returns as kd_statclient_send. */
KD_API int kd_statclient_send_stat(struct kd_statclient *c, const char *ns, const char *revision,
                                   const char *pod, double concurrency);

/* True while the WebSocket is open. */
KD_API bool kd_statclient_connected(const struct kd_statclient *c);

/* Frames written to the socket so far (for /metrics and tests). */
KD_API uint64_t kd_statclient_frames_sent(const struct kd_statclient *c);

/* Closes the connection, drops queued frames, frees; no reconnect and no on_state from here on.
 * NULL is fine. Also from inside a loop callback (lws then finishes the close on the loop, and
 * kd_loop_free waits for it); not from inside on_state. */
KD_API void kd_statclient_free(struct kd_statclient *c);

#endif /* KD_STATCLIENT_H */
