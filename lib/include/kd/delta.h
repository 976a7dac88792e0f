/* kd/delta.h: the message codec of the direct channels (docs/ARCHITECTURE.md section 3): a C model
 * of every channel message (struct kd_msg, a tagged union; struct kd_op, one object change) and its
 * strict JSON text-frame encoding (one message per WebSocket text frame, decoded with the strict
 * RFC 8259 parser of kd/jsonstrict.h; bench/delta/RESULTS.md compares it with a json-c decoder).
 * Implemented in lib/kd_delta.c (model), kd_delta_validate.c, kd_delta_encode.c (encoder and
 * paging) and kd_delta_decode.c.
 *
 * Compatibility: this header is the contract with kd_chan and with peers on the wire. Changes
 * are compatible only: struct members are appended, and the decoder accepts every frame of
 * wire format version 1. Version 1.1 (below) adds paging ("part"/"more"), the template table
 * ("tmpls"/"t") and the optional "op" in held[]/resend[]; a message without them is encoded
 * exactly as in version 1.
 *
 * ---- Wire format (version 1) -------------------------------------------------------------
 * Every frame is exactly one JSON object (UTF-8, no NUL byte, optional surrounding whitespace,
 * nothing else), at most kd_delta_limits.max_frame bytes (default 1 MiB; checked before parsing):
 *
 *   {"type":"hello",    "epoch":"E","seq":0,"source":"autoscaler-0"}
 *   {"type":"state",    "epoch":"E","seq":0,"last_seq":41,"held":[OP...],"tmpls":[T...]}
 *   {"type":"reconcile","epoch":"E","seq":0,"keep":["ns/a"],"drop":["ns/b"],"resend":[OP...],
 *                       "tmpls":[T...]}
 *   {"type":"ready",    "epoch":"E","seq":0}
 *   {"type":"delta",    "epoch":"E","seq":12,"ops":[OP...],"tmpls":[T...]}
 *   {"type":"ack",      "epoch":"E","seq":12}
 *   {"type":"error",    "epoch":"E","seq":0,"code":2,"reason":"..."}
 *
 * - "epoch" is a uint64 encoded as a JSON *string* of decimal digits ("1763920000000065536"),
 *   because epochs minted as wall-clock-ms << 16 exceed 2^53 and would lose precision in
 *   JavaScript/double-based parsers. No sign, no leading zeros, 1..20 digits, <= UINT64_MAX.
 *   Epoch 0 means "no epoch" and is valid only in an error message (an error about a frame
 *   whose epoch could not be read); every other message needs epoch >= 1.
 * - "seq" is a JSON integer in [0, KD_SEQ_MAX = 2^53-1]. Data messages (delta) and their acks
 *   carry seq >= 1 (per epoch, starting at 1, +1 per delta). Control messages (hello, state,
 *   reconcile, ready, error) carry seq 0; a non-zero seq on them is rejected. "seq" may be
 *   omitted on control messages (decoded as 0); the encoder always writes it.
 * - All other integers (last_seq, code, ctime, cpu, mem) are JSON integers in documented ranges;
 *   floats, exponents and out-of-range values are rejected.
 * - Strings: raw bytes must be valid UTF-8 (no overlongs, no surrogates) without NUL or other
 *   control characters (< 0x20, which must be escaped); the escape \u0000 is rejected anywhere
 *   in the frame; a surrogate pair escape decodes to its code point, a lone surrogate escape
 *   (\ud800) to U+FFFD. Numbers follow RFC 8259 (no leading zeros); integers beyond int64
 *   saturate and so fail the range checks.
 * - Unknown top-level and op fields are IGNORED (forward compatibility: a newer peer may add
 *   optional fields). Known fields must have the documented type. Duplicate JSON member names in
 *   one object: the last one counts (not a semantic channel), except in labels/annotations,
 *   where a repeated key is rejected.
 * - Op lists (ops, held, resend) and key lists (keep, drop) must not name one key twice, and one
 *   key may appear in at most one of keep/drop/resend: duplicates are REJECTED (not "last wins"),
 *   so a frame has exactly one meaning; senders coalesce ops per key before batching.
 *
 * Paging (state and reconcile only): a state{} or reconcile{} too large for one frame is sent
 * as pages: consecutive frames of the same type and epoch with "part":0,1,2,... and
 * "more":true on every page but the last. Each page is a complete, valid message on its own
 * (every per-frame rule and limit applies to it; duplicate keys are rejected across pages by the
 * receiver); a state page repeats last_seq (it must be the same on every page); a reconcile
 * page carries a slice of keep, then drop, then resend (all three arrays always present).
 * "part" is an integer in [0, KD_PART_MAX], "more" a boolean; both are written only when not
 * 0/false, so a message that fits one frame is encoded exactly as in version 1. They are
 * rejected on other message types (where they would otherwise be unknown, ignored fields: a
 * peer must not believe a delta was paged). The receiver (kd/handshake.h) assembles the pages:
 * in order, same epoch, a non-final page carries at least one entry, at most max_total entries
 * in all; nothing of a paged message takes effect before its last page arrived.
 *
 * Template table: "tmpls" (optional, any message with op lists) is an array of T =
 * {"kind":"Deployment","name":"hello-00001-deployment","uid":"…","hash":"7f9c…"} (all four members
 * required); an op refers to entry i with "t":i. The table must not be empty, every entry must
 * be referenced by at least one op of the frame, and an op carries "t" or an inline "tmpl" (the
 * same object as T), not both. The encoder always uses the table, numbering templates in order
 * of first use (ops in list order: held / keep-drop-resend / ops) and writes it after the lists.
 *
 * An OP is {"op":"upsert"|"delete","key":"namespace/name", ...}. key: namespace is a DNS-1123
 * label (<= 63), name a DNS-1123 subdomain (<= 253), exactly one '/'. In held[] and resend[]
 * (upserts only) "op" may be omitted and the encoder omits it. Upsert optional fields,
 * written only when set (compact; "only what differs from the template"):
 *   "t":0  template reference (index into "tmpls"), or inline
 *   "tmpl":{"kind":"Deployment","name":"hello-00001-deployment","uid":"…","hash":"7f9c…"}
 *          template reference: the owner (same namespace as key) and the template hash; when
 *          present all four members are required.
 *   "node":"node-1"            bound node (DNS-1123 subdomain)
 *   "ctime":1763920000123      creation time, unix milliseconds, 1..2^53-1
 *   "cpu":250                  cpu request in millicores, 0..10^9, only if not the template's
 *   "mem":268435456            memory request in bytes, 0..2^53-1, only if not the template's
 *   "labels":{"k":"v"}         additions to the template's labels (<= 64, key <= 317, value <= 63)
 *   "annotations":{"k":"v"}    additions (<= 64, key <= 317, value <= 4096 bytes)
 *   status flowing back upstream: "ready":true|false, "ip":"10.1.2.3" (IPv4/IPv6 literal),
 *   "reason":"…" (<= 1024 bytes)
 * A delete op carries the key and optionally "reason"; any other delete field is rejected.
 * held[] and resend[] carry upserts only; a delta carries at least one op (empty batches are
 * rejected; keepalive is the transport's business). Label values are empty or
 * [A-Za-z0-9._-] starting and ending alphanumeric; label/annotation keys are Kubernetes
 * qualified names ([DNS-subdomain/]name). JSON nesting deeper than 8 levels is rejected, and
 * so, before parsing, is a frame with more than 4 * max_ops + 16 objects or 64 arrays (-E2BIG; a
 * memory bound no legitimate frame comes close to). Decoding uses ~64 bytes per JSON value plus
 * one copy of the frame.
 *
 * ---- Ownership / threading --------------------------------------------------------------
 * All strings inside a kd_msg/kd_op are owned by it (malloc'ed, NUL-terminated) and freed by
 * kd_msg_fini/kd_op_fini. The codec is reentrant and holds no global state.
 */
#ifndef KD_DELTA_H
#define KD_DELTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kd/common.h"
#include "kd/error.h"

#define KD_SEQ_MAX ((uint64_t)9007199254740991ULL) /* 2^53-1: the largest seq on the wire */
#define KD_INT_MAX ((int64_t)9007199254740991LL)   /* largest ctime/mem */
#define KD_CPU_MAX ((int64_t)1000000000LL)         /* largest cpu request, millicores */

#define KD_DELTA_MAX_FRAME_DEFAULT ((size_t)1 << 20) /* 1 MiB */
#define KD_DELTA_MAX_OPS_DEFAULT   10000u            /* per ops/held/resend list */
#define KD_DELTA_MAX_KEYS_DEFAULT  100000u           /* per keep/drop list */
#define KD_DELTA_MAX_TOTAL_DEFAULT 1000000u          /* entries of one paged message, all pages */
#define KD_PART_MAX                1000000u          /* largest "part" index */

#define KD_KEY_MAX       (63 + 1 + 253) /* "namespace/name" */
#define KD_SOURCE_MAX    253            /* hello.source: [A-Za-z0-9._:/-], 1..253 */
#define KD_REASON_MAX    1024           /* op.reason and error.reason, bytes of UTF-8 */
#define KD_KV_MAX        64             /* labels / annotations per op */
#define KD_KV_KEY_MAX    317            /* [prefix/]name: 253 + 1 + 63 */
#define KD_LABEL_VAL_MAX 63
#define KD_ANNOT_VAL_MAX 4096

enum kd_msg_type {
	KD_MSG_NONE = 0,
	KD_MSG_HELLO,     /* upstream -> downstream: open an epoch for `source` */
	KD_MSG_STATE,     /* downstream -> upstream: last applied seq + held objects */
	KD_MSG_RECONCILE, /* upstream -> downstream: keep / drop / resend */
	KD_MSG_READY,     /* downstream -> upstream: reconcile applied, deltas may flow */
	KD_MSG_DELTA,     /* upstream -> downstream: batch of ops, seq >= 1 */
	KD_MSG_ACK,       /* downstream -> upstream: delta `seq` applied (or a duplicate of one) */
	KD_MSG_ERROR,     /* either way: a refusal, see enum kd_chan_code */
};

/* error.code values (the wire carries the integer; unknown codes 1..65535 decode fine). */
enum kd_chan_code {
	KD_CODE_MALFORMED = 1,   /* frame did not decode; reason says why */
	KD_CODE_STALE_EPOCH = 2, /* epoch older than (or not) the current one of that source */
	KD_CODE_HANDSHAKING = 3, /* data message before the handshake finished */
	KD_CODE_SEQ_GAP = 4,     /* seq beyond the reorder window; re-handshake needed */
	KD_CODE_PROTOCOL = 5,    /* message not valid in the current state (e.g. two hellos) */
	KD_CODE_APPLY = 6,       /* the stage refused an op (e.g. template not found); non-fatal */
	KD_CODE_INTERNAL = 7,    /* the stage callback failed (e.g. cannot list held objects) */
	KD_CODE_MAX = 65535,
};

enum kd_op_kind {
	KD_OP_NONE = 0,
	KD_OP_UPSERT,
	KD_OP_DELETE,
};

/* Bits of kd_op.has: which optional upsert fields are set (strings are set iff non-NULL). */
enum {
	KD_OP_HAS_CTIME = 1u << 0,
	KD_OP_HAS_CPU = 1u << 1,
	KD_OP_HAS_MEM = 1u << 2,
	KD_OP_HAS_READY = 1u << 3,
	KD_OP_HAS_TMPL = 1u << 4,
};

struct kd_kv {
	char *key;   /* owned */
	char *value; /* owned */
};

struct kd_kv_list {
	struct kd_kv *v; /* owned array of n entries (cap allocated) */
	size_t n, cap;
};

struct kd_tmpl_ref {
	char *kind; /* owner kind, [A-Za-z0-9], 1..63; owned */
	char *name; /* owner name, DNS-1123 subdomain; owned */
	char *uid;  /* owner uid, [A-Za-z0-9-], 1..128; owned */
	char *hash; /* template hash, [A-Za-z0-9_-], 1..64; owned */
};

struct kd_op {
	enum kd_op_kind kind;
	char *key;                     /* "namespace/name"; owned; required */
	unsigned has;                  /* KD_OP_HAS_* */
	struct kd_tmpl_ref tmpl;       /* valid iff has & KD_OP_HAS_TMPL */
	char *node;                    /* owned or NULL */
	int64_t ctime_ms;              /* iff KD_OP_HAS_CTIME */
	int64_t cpu_millis;            /* iff KD_OP_HAS_CPU */
	int64_t mem_bytes;             /* iff KD_OP_HAS_MEM */
	struct kd_kv_list labels;      /* additions to the template's */
	struct kd_kv_list annotations; /* additions to the template's */
	bool ready;                    /* iff KD_OP_HAS_READY */
	char *ip;                      /* owned or NULL */
	char *reason; /* owned or NULL (upsert status reason, or why a delete happens) */
};

struct kd_op_list {
	struct kd_op *v; /* owned array of n ops */
	size_t n, cap;
};

struct kd_key_list {
	char **v; /* owned array of n owned keys */
	size_t n, cap;
};

struct kd_msg {
	enum kd_msg_type type;
	uint64_t epoch;
	uint64_t seq; /* delta/ack: >= 1; control messages: 0 */
	union {
		struct {
			char *source; /* owned */
		} hello;
		struct {
			uint64_t
			    last_seq; /* highest delta seq applied for that source (0 if none) */
			struct kd_op_list
			    held; /* upserts the downstream holds, not yet written back */
		} state;
		struct {
			struct kd_key_list keep; /* keys the downstream keeps as they are */
			struct kd_key_list
			    drop; /* keys the downstream must cancel (never persist) */
			struct kd_op_list resend; /* full ops the downstream lacks */
		} reconcile;
		struct {
			struct kd_op_list ops;
		} delta;
		struct {
			int code;     /* enum kd_chan_code or a newer code, 1..65535 */
			char *reason; /* owned; may be NULL (encoded as absent) */
		} error;
	};
	/* Paging of state/reconcile: index of this page and whether more pages follow. 0/false for
	 * a message in one frame and for every other type. */
	uint32_t part;
	bool more;
};

/* A growable list of owned messages (handshake outputs). */
struct kd_msg_vec {
	struct kd_msg **v; /* owned array of owned messages */
	size_t n, cap;
};

/* Decode limits; a NULL pointer or a zero member means the default. */
struct kd_delta_limits {
	size_t max_frame; /* bytes, checked before parsing; default 1 MiB */
	size_t max_ops;   /* per op list; default KD_DELTA_MAX_OPS_DEFAULT */
	size_t max_keys;  /* per key list; default KD_DELTA_MAX_KEYS_DEFAULT */
	/* Entries (ops + keys) of one paged message across all its pages, for kd_msg_encode_pages
	 * and the assembling receiver; default KD_DELTA_MAX_TOTAL_DEFAULT. */
	size_t max_total;
};

/* One encoded frame: buf is an owned allocation of headroom + len + 1 bytes, the JSON text at
 * buf + headroom, NUL-terminated (as kd_msg_encode). */
struct kd_frame {
	char *buf;
	size_t len;
};

struct kd_frame_vec {
	struct kd_frame *v; /* owned array of n frames */
	size_t n, cap;
};

/* Frees every frame buffer and the array; leaves v empty. */
KD_API void kd_frame_vec_fini(struct kd_frame_vec *v);

/* ---- model ---------------------------------------------------------------------------------- */

/* Initialises caller storage m as an empty message of `type`. Pair with kd_msg_fini. */
KD_API void kd_msg_init(struct kd_msg *m, enum kd_msg_type type, uint64_t epoch, uint64_t seq);
/* Frees everything m owns and leaves it as KD_MSG_NONE. NULL is fine. */
KD_API void kd_msg_fini(struct kd_msg *m);
/* Returns an owned, initialised message; free with kd_msg_free. */
KD_API struct kd_msg *kd_msg_new(enum kd_msg_type type, uint64_t epoch, uint64_t seq);
/* Frees m and its contents; NULL is fine. */
KD_API void kd_msg_free(struct kd_msg *m);
/* Deep copy of src into caller storage dst (dst is overwritten, not freed). */
KD_API void kd_msg_copy(struct kd_msg *dst, const struct kd_msg *src);
/* Deep structural equality (same type, epoch, seq, and fields, lists in order). */
KD_API bool kd_msg_equal(const struct kd_msg *a, const struct kd_msg *b);

/* "hello", "state", ... or NULL for an unknown type. Borrowed static string. */
KD_API const char *kd_msg_type_name(enum kd_msg_type t);

/* Initialises / frees an op in caller storage. kd_op_fini leaves it zeroed. */
KD_API void kd_op_init(struct kd_op *op, enum kd_op_kind kind, const char *key);
KD_API void kd_op_fini(struct kd_op *op);
/* Deep copy of src into caller storage dst (dst is overwritten, not freed). */
KD_API void kd_op_copy(struct kd_op *dst, const struct kd_op *src);
KD_API bool kd_op_equal(const struct kd_op *a, const struct kd_op *b);
/* Setters: copy their arguments (free any previous value) and set the `has` bit. */
KD_API void kd_op_set_tmpl(struct kd_op *op, const char *kind, const char *name, const char *uid,
                           const char *hash);
KD_API void kd_op_set_str(char **field,
                          const char *value); /* e.g. kd_op_set_str(&op->node, "n1") */

/* Appends a zeroed op to l and returns it (borrowed; valid until l changes). The caller
 * initialises it (kd_op_init). */
KD_API struct kd_op *kd_op_list_push(struct kd_op_list *l);
/* Frees every op and the array; leaves l empty. */
KD_API void kd_op_list_fini(struct kd_op_list *l);
/* Appends a copy of key. */
KD_API void kd_key_list_push(struct kd_key_list *l, const char *key);
KD_API void kd_key_list_fini(struct kd_key_list *l);
/* Appends copies of key and value. */
KD_API void kd_kv_list_push(struct kd_kv_list *l, const char *key, const char *value);
KD_API void kd_kv_list_fini(struct kd_kv_list *l);

/* Returns an owned error message {epoch, code, reason formatted}; free with kd_msg_free. The
 * reason is truncated to KD_REASON_MAX bytes (at a UTF-8 boundary). */
KD_API struct kd_msg *kd_msg_new_error(uint64_t epoch, int code, const char *fmt, ...)
    KD_PRINTF(3, 4);

/* Appends m (ownership moves to v). */
KD_API void kd_msg_vec_push(struct kd_msg_vec *v, struct kd_msg *m);
/* Frees every message and the array; leaves v empty. */
KD_API void kd_msg_vec_fini(struct kd_msg_vec *v);

/* ---- validation ------------------------------------------------------------------------------ */

/* 0 if key (len bytes, need not be NUL-terminated) is "namespace/name" as specified above,
 * else -EINVAL with a reason such as `key "a/b/c" has more than one '/'`. */
KD_API int kd_key_check(const char *key, size_t len, struct kd_error **err);

/* Checks every rule the decoder enforces, on an in-memory message: 0 or -EINVAL/-E2BIG with a
 * precise reason (`delta seq 12 op 3: key "a/b/c" has more than one '/'`). lim may be NULL. */
KD_API int kd_msg_validate(const struct kd_msg *m, const struct kd_delta_limits *lim,
                           struct kd_error **err);

/* ---- codec ---------------------------------------------------------------------------------- */

/* Encodes m as one compact JSON text frame. Validates first (kd_msg_validate), so a peer never
 * receives something it would reject: -EINVAL on invalid content, -EMSGSIZE when the text would
 * exceed lim->max_frame (the sender should split the batch). On success *buf is an owned
 * allocation (free()) of headroom + *len + 1 bytes: `headroom` bytes reserved at the front
 * (pass LWS_PRE for lws_write), then the JSON text at *buf + headroom, NUL-terminated; *len
 * excludes headroom and the NUL. Out-parameters are set only on success. lim may be NULL. */
KD_API int kd_msg_encode(const struct kd_msg *m, size_t headroom, const struct kd_delta_limits *lim,
                         char **buf, size_t *len, struct kd_error **err);

/* Encodes m as one or more frames appended to out. A state or reconcile message (which must
 * have part 0 and more false) that does not fit one frame (lim->max_frame, at most max_ops ops /
 * max_keys keys per list) is split into pages (see "Paging" above), each filled greedily in
 * list order; anything else, and a state/reconcile that fits, gives exactly kd_msg_encode's one
 * frame. The whole message is validated first with max_total as the per-list limit (duplicates
 * are checked across the whole message). -EINVAL (invalid, or already a page), -EMSGSIZE (one
 * entry alone does not fit a frame), -E2BIG (more than max_total entries in one list); out is
 * left unchanged on failure. lim may be NULL. */
KD_API int kd_msg_encode_pages(const struct kd_msg *m, size_t headroom,
                               const struct kd_delta_limits *lim, struct kd_frame_vec *out,
                               struct kd_error **err);

/* Decodes one frame of len bytes (need not be NUL-terminated). Rejects, before parsing, frames
 * larger than lim->max_frame (-EMSGSIZE), then invalid UTF-8 and NUL bytes, non-JSON, trailing
 * bytes, non-objects, unknown types, missing or ill-typed fields, bad keys, too many ops (-E2BIG)
 * and out-of-range integers (-EINVAL), with a precise reason in *err. On success *out is an owned
 * message (kd_msg_free) that passes kd_msg_validate. lim may be NULL. */
KD_API int kd_msg_decode(const char *buf, size_t len, const struct kd_delta_limits *lim,
                         struct kd_msg **out, struct kd_error **err);

static inline void kd__msg_freep(struct kd_msg **m)
{
	kd_msg_free(*m);
}
/* `kd_automsg struct kd_msg *m = NULL;` frees m when it leaves scope. */
#define kd_automsg __attribute__((cleanup(kd__msg_freep)))

#endif /* KD_DELTA_H */
