/* kd/handshake.h: the two-round handshake and epoch fencing of the direct channels
 * (docs/ARCHITECTURE.md section 3) as pure state machines: no I/O, no clock except kd_epoch_mint,
 * no threads. The transport (kd_chan) decodes a frame (kd_msg_decode), feeds the message in, sends
 * the messages appended to `out` (in order) and, when the call returns < 0, closes the
 * connection after sending them. Each object is single-threaded: use it from one kd_loop.
 *
 * Compatibility: this header is the contract with kd_chan; changes are compatible only.
 *
 * Protocol (per connection; the upstream mints a fresh epoch for every connection):
 *   up -> down   hello{source, epoch}
 *   down -> up   state{epoch, last_seq, held[]}          (round 1)
 *   up -> down   reconcile{epoch, keep[], drop[], resend[]}
 *   down -> up   ready{epoch}                            (round 2)
 *   up -> down   delta{epoch, seq=1,2,...}  /  down -> up   ack{epoch, seq}
 *
 * Division of labour with kd_chan:
 * - kd_chan owns the transport: connections, keepalive, back-pressure and the retransmission
 *   queue WITHIN one epoch (unacked deltas re-sent unchanged, same epoch and seq; the
 *   downstream acks duplicates without re-applying them).
 * - The handshake owns SEMANTIC resend ACROSS epochs: when a connection is replaced, deltas of
 *   the old epoch would be fenced, so kd_chan either discards its unacked ones or re-stamps
 *   (kd_hs_up_stamp) those still needed after removing the ops the reconcile covered. The reconcile
 *   round recomputes what the downstream lacks from the upstream cache (`wanted`: every object
 *   it produced and has not yet seen persisted) and sends it as `resend`, and cancels what the
 *   downstream holds but the upstream no longer wants (`drop`). Nothing is lost, because an
 *   upstream keeps a cache entry until it observes the persisted object (docs/ARCHITECTURE.md
 * section 4).
 *
 * Downstream rules (per source, i.e. per upstream stage instance):
 * - hello with epoch > current epoch of that source installs the epoch in phase HANDSHAKING
 *   (whatever connection carried the previous one) and answers state{} with held[] from the
 *   `held` callback and last_seq = the highest seq applied in the source's previous epoch.
 *   A hello with epoch <= current is refused: error{STALE_EPOCH}, return -ESTALE.
 * - Any message whose epoch differs from the connection's epoch, or whose epoch is no longer the
 *   source's current one (a newer hello arrived, on any connection), is rejected (fencing):
 *   error{STALE_EPOCH}, -ESTALE. Nothing is applied.
 * - delta while HANDSHAKING: refused, error{HANDSHAKING}, -EBUSY (nothing applied).
 * - reconcile while HANDSHAKING: drop[] through `drop`, keep[] through `keep` (optional),
 *   resend[] through `apply`, then ready{epoch}; phase READY; seq tracking restarts at 0.
 * - delta in READY: seq <= last applied -> duplicate: ack, not re-applied. seq == last+1 ->
 *   applied op by op (through `apply`), ack; then any buffered successors are applied and acked
 *   in order. last+1 < seq <= last+reorder_window -> buffered (a copy), no ack yet; a second copy
 *   of a buffered seq is ignored. seq > last+reorder_window -> error{SEQ_GAP}, -ERANGE (the
 *   upstream re-handshakes; the reconcile repairs whatever was lost).
 * - A stage refusing an op (`apply` < 0) does not stop the delta: the other ops are applied, the
 *   delta is acked (delivery succeeded), and error{APPLY, "delta seq S op I: key K: why"} is
 *   appended after the ack (non-fatal, return 0). The upstream keeps the object as ephemeral;
 *   the next handshake resends it if the downstream still lacks it.
 * - A stage failing `held` answers error{INTERNAL}, -EIO (the upstream retries later).
 * - Messages a downstream never receives (state, ready, ack) or a second hello on a connection
 *   that already has an epoch -> error{PROTOCOL}, -EPROTO. An error message from the upstream
 *   closes the connection (-ECONNABORTED) without a reply.
 *
 * Upstream rules:
 * - kd_hs_up_connect mints an epoch (kd_epoch_mint) and emits hello. state{} must echo the epoch;
 *   the upstream computes, from held[] (H), its `wanted` set (W) and the API Server truth
 *   (`persisted`):
 *     key in H and W: keep if the held op equals the wanted op's identity (tmpl hash and node),
 *                     else resend the wanted op (upsert by key replaces it downstream);
 *     key in H only:  keep if persisted (the API Server wins, the downstream is writing it
 *                     back), else drop (an ephemeral object nobody wants any more);
 *     key in W only:  resend unless persisted (then it was already written back).
 *   and emits reconcile{} (keys in held[] order, resend in wanted[] order). ready{} with the
 *   epoch moves to READY; kd_hs_up_stamp then numbers deltas 1, 2, ...
 * - ack{} records the highest acked seq (kd_hs_up_acked). error{APPLY} is non-fatal (reported to
 *   the optional `remote_error` callback); any other error, a wrong epoch or a message out of
 *   phase returns < 0 (close and reconnect with a new epoch).
 *
 * Paged state{} and reconcile{} (kd/delta.h "Paging"): both machines accept a message as pages
 * part 0, 1, ... (more=true on all but the last) and act only on the whole: the upstream
 * classifies each state page as it arrives (keep/drop in held order) and emits the reconcile
 * after the last page; the downstream collects reconcile pages and applies nothing before the
 * last one (deltas stay refused with HANDSHAKING meanwhile). Refused with error{PROTOCOL}
 * (-EPROTO): a part out of order (including a part > 0 first, or a page after a new hello), an
 * empty non-final page, a state page whose last_seq differs from part 0's, a key repeated across
 * pages; with -E2BIG: more than KD_HS_MAX_TOTAL entries in all pages. The state machines EMIT one
 * message (state or reconcile) in `out`; the transport pages it when sending
 * (kd_msg_encode_pages). A message in one frame is handled as a single final page.
 */
#ifndef KD_HANDSHAKE_H
#define KD_HANDSHAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "kd/common.h"
#include "kd/delta.h"
#include "kd/error.h"

/* Most entries one paged state{} (held) or reconcile{} (keep + drop + resend) may carry in all
 * its pages (see "Paging" in kd/delta.h). */
#define KD_HS_MAX_TOTAL 1000000u

enum kd_hs_phase {
	KD_HS_IDLE = 0,    /* no epoch yet (down: unknown source; up: not connected) */
	KD_HS_HANDSHAKING, /* down: state sent, waiting reconcile; up: hello sent, waiting state */
	KD_HS_RECONCILING, /* up only: reconcile sent, waiting ready */
	KD_HS_READY,       /* deltas flow */
};

KD_API const char *kd_hs_phase_name(enum kd_hs_phase p); /* borrowed static string */

/* Epochs: (wall-clock ms << 16) | counter, strictly increasing within the process (thread-safe)
 * and, given a wall clock that does not step back by more than the restart time, across
 * restarts. Never 0. */
KD_API uint64_t kd_epoch_mint(void);
/* The pure step behind kd_epoch_mint, for tests: returns max(*last + 1, wall_ms << 16) and
 * stores it in *last. */
KD_API uint64_t kd_epoch_next(uint64_t wall_ms, uint64_t *last);

/* ---- downstream ----------------------------------------------------------------------------- */

struct kd_hs_down_cbs {
	/* Appends (kd_op_list_push + kd_op_init) every object the stage holds for `source` that is
	 * not yet written back. 0 or -errno with *err set. Required. */
	int (*held)(void *ud, const char *source, struct kd_op_list *held, struct kd_error **err);
	/* Applies one upsert or delete (from a delta or reconcile.resend); must be idempotent by
	 * key. 0, or -errno with *err set (reported upstream as error{APPLY}). Required. */
	int (*apply)(void *ud, const char *source, uint64_t epoch, const struct kd_op *op,
	             struct kd_error **err);
	/* Cancels an ephemeral object (reconcile.drop); an unknown key is not an error. Required.
	 */
	int (*drop)(void *ud, const char *source, const char *key, struct kd_error **err);
	/* Optional: the upstream confirmed the object (reconcile.keep). */
	int (*keep)(void *ud, const char *source, const char *key, struct kd_error **err);
};

struct kd_hs_down_config {
	unsigned reorder_window; /* deltas buffered ahead of the next seq; 0 = default 64 */
};

struct kd_hs_down;
struct kd_hs_conn;

/* Returns an owned downstream; free with kd_hs_down_free (after every conn is freed). cbs is
 * copied; ud is borrowed; cfg may be NULL. */
KD_API struct kd_hs_down *kd_hs_down_new(const struct kd_hs_down_cbs *cbs, void *ud,
                                         const struct kd_hs_down_config *cfg);
KD_API void kd_hs_down_free(struct kd_hs_down *d);

/* One per accepted transport connection. Returns owned; free with kd_hs_conn_free when the
 * connection closes (the source keeps its epoch, so the closed connection's epoch stays fenced;
 * a handshake in progress on it is abandoned until the next hello). */
KD_API struct kd_hs_conn *kd_hs_conn_new(struct kd_hs_down *d);
KD_API void kd_hs_conn_free(struct kd_hs_conn *c);

/* Feeds one decoded message received on c. Appends replies to out (owned by the caller).
 * Returns 0 to keep the connection, or -errno (see rules above) to send `out` and close. */
KD_API int kd_hs_down_on_msg(struct kd_hs_conn *c, const struct kd_msg *in, struct kd_msg_vec *out,
                             struct kd_error **err);

/* Introspection (tests, metrics, logs). Unknown source: 0 / KD_HS_IDLE. source is borrowed. */
KD_API uint64_t kd_hs_down_epoch(const struct kd_hs_down *d, const char *source);
KD_API enum kd_hs_phase kd_hs_down_phase(const struct kd_hs_down *d, const char *source);
KD_API uint64_t kd_hs_down_last_seq(const struct kd_hs_down *d,
                                    const char *source); /* current epoch */
/* Forgets everything about `source` (its epoch, phase, seq tracking), e.g. when the upstream
 * instance is known to be gone for good, so a long-lived downstream does not accumulate one
 * record per upstream incarnation. -EBUSY while a connection is bound to it, -ENOENT if unknown.
 * After this a hello with any epoch is accepted again for that name: call it only for instances
 * that cannot come back with an older epoch (epochs are wall-clock based, so in practice: ones
 * that are gone). */
KD_API int kd_hs_down_forget(struct kd_hs_down *d, const char *source);

/* Source bound to c by its hello, or NULL. Borrowed; valid while c lives. */
KD_API const char *kd_hs_conn_source(const struct kd_hs_conn *c);
KD_API uint64_t kd_hs_conn_epoch(const struct kd_hs_conn *c);

/* ---- upstream ------------------------------------------------------------------------------- */

struct kd_hs_up_cbs {
	/* Appends every object the upstream wants the downstream to hold that it has not yet seen
	 * persisted (its ephemeral/persisting cache entries for that destination), as full upserts.
	 * 0 or -errno with *err set. Required. */
	int (*wanted)(void *ud, struct kd_op_list *out, struct kd_error **err);
	/* API Server truth: true when key is persisted (observed through the stage's watch).
	 * Required. */
	bool (*persisted)(void *ud, const char *key);
	/* Optional: a non-fatal error{APPLY} from the downstream. reason is borrowed. */
	void (*remote_error)(void *ud, int code, const char *reason);
};

struct kd_hs_up;

/* Returns an owned upstream for one destination, named `source` in hello (copied); free with
 * kd_hs_up_free. cbs is copied, ud borrowed. */
KD_API struct kd_hs_up *kd_hs_up_new(const char *source, const struct kd_hs_up_cbs *cbs, void *ud);
KD_API void kd_hs_up_free(struct kd_hs_up *u);

/* A new connection is up: mints a fresh epoch, appends hello to out, phase HANDSHAKING.
 * Any previous epoch is abandoned. Returns 0. */
KD_API int kd_hs_up_connect(struct kd_hs_up *u, struct kd_msg_vec *out);
/* The connection closed: phase IDLE (deltas are refused until the next connect). */
KD_API void kd_hs_up_disconnect(struct kd_hs_up *u);

/* Feeds one decoded message from the downstream. Appends replies to out. 0 = keep going, <0 =
 * close (then reconnect: kd_hs_up_connect). */
KD_API int kd_hs_up_on_msg(struct kd_hs_up *u, const struct kd_msg *in, struct kd_msg_vec *out,
                           struct kd_error **err);

/* Stamps a delta the caller built (type KD_MSG_DELTA): sets its epoch and the next seq.
 * -EAGAIN when not READY (the caller keeps the ops in its cache; the next reconcile carries
 * them). */
KD_API int kd_hs_up_stamp(struct kd_hs_up *u, struct kd_msg *delta, struct kd_error **err);

KD_API enum kd_hs_phase kd_hs_up_phase(const struct kd_hs_up *u);
KD_API bool kd_hs_up_ready(const struct kd_hs_up *u);
KD_API uint64_t kd_hs_up_epoch(const struct kd_hs_up *u);    /* 0 before the first connect */
KD_API uint64_t kd_hs_up_last_seq(const struct kd_hs_up *u); /* last seq stamped in this epoch */
KD_API uint64_t kd_hs_up_acked(const struct kd_hs_up *u);    /* highest seq acked in this epoch */
/* last_seq reported by the downstream's state{} of this epoch (its previous epoch's progress). */
KD_API uint64_t kd_hs_up_peer_last_seq(const struct kd_hs_up *u);

#endif /* KD_HANDSHAKE_H */
