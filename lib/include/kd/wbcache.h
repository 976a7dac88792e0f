/* kd/wbcache.h: the hierarchical write-back cache of a chain stage (docs/ARCHITECTURE.md section
 * 4). Each object a stage produces gets an entry keyed "namespace/name" that moves ephemeral ->
 * persisting -> persisted, and leaves the cache only after its persisted copy has been observed
 * through the stage's own watch. Writes are asynchronous, batched, concurrency- and rate-limited,
 * and retried with jittered backoff; the cache never speaks HTTP itself but drives a writer
 * interface (struct kd_wb_writer) that a stage adapts to its Kubernetes client.
 *
 * States (enum kd_wb_state):
 *   EPHEMERAL  put() but no write issued yet: the object exists only in the chain.
 *   PERSISTING a create was issued at least once (in flight, backing off, or completed and waiting
 * to be observed); the object may or may not exist in the API Server. PERSISTED  the API copy was
 * observed (kd_wb_observe). Only now may the entry be evicted. FAILED     the create failed
 * permanently (e.g. 422); held with its error until the stage cancels it, retries it (kd_wb_retry)
 * or a put() with new content re-queues it. DELETING   cancelled after a create was issued: a
 * delete is issued (after any in-flight create completes); the entry is removed when the delete
 * succeeds or finds nothing. Live instances (kd_wb_count) = EPHEMERAL + PERSISTING + PERSISTED. A
 * stage that evicts persisted entries counts |objects seen by its watch| + EPHEMERAL + PERSISTING:
 * an entry turns PERSISTED in the same call that the stage's watch hands it the object, so nothing
 * is counted twice or by nobody.
 *
 * Rules (decisions documented here, see also each function):
 * - Keys are opaque, non-empty strings (< 1024 bytes) by convention "namespace/name"; a stage that
 *   keeps several kinds with the same name in one cache prefixes the kind ("endpoints:ns/name").
 * - Payloads are json_object*: the cache takes its own reference (json_object_get) of what put() or
 *   observe() pass; callers must not modify an object after handing it over.
 * - The API object wins: observe() of an EPHEMERAL, PERSISTING or FAILED entry replaces the cached
 *   copy with the API copy, cancels any pending or in-flight write (its result is ignored) and
 * makes the entry PERSISTED. A stage that must change an object after creating it (node stage:
 * status Ready) puts the change once the entry is PERSISTED (persisted callback); put() on a
 * PERSISTED entry queues an UPDATE that a later observe() does not cancel.
 * - observe_deleted() removes PERSISTED and DELETING entries. For EPHEMERAL, PERSISTING and FAILED
 *   entries (never observed) a deletion event refers to an older object of the same name and is
 *   ignored. A create that succeeded but is never observed (a watch gap hid its creation and
 *   deletion) is re-read after observe_timeout_ms when the writer has a reread hook.
 * - All writes are issued from timer callbacks on the loop, never from inside a public call, so a
 *   stage may call the cache from any loop callback, including the cache's own callbacks. The cache
 *   is not thread-safe: use it on its loop's thread only.
 */
#ifndef KD_WBCACHE_H
#define KD_WBCACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "kd/common.h"
#include "kd/error.h"
#include "kd/loop.h"
#include "kd/prom.h"

struct kd_wb;

enum kd_wb_state {
	KD_WB_EPHEMERAL = 0,
	KD_WB_PERSISTING = 1,
	KD_WB_PERSISTED = 2,
	KD_WB_FAILED = 3,
	KD_WB_DELETING = 4,
};
#define KD_WB_STATE_BIT(s) (1u << (s))
/* State mask of kd_wb_held: every entry not (yet) persisted that the stage still holds. */
#define KD_WB_HELD_MASK                                                                            \
	(KD_WB_STATE_BIT(KD_WB_EPHEMERAL) | KD_WB_STATE_BIT(KD_WB_PERSISTING) |                    \
	 KD_WB_STATE_BIT(KD_WB_FAILED))

/* What the writer must do; the stage's writer chooses path and verb (POST, PUT/PATCH, DELETE). */
enum kd_wb_op {
	KD_WB_OP_CREATE = 0, /* obj: the object to create */
	KD_WB_OP_UPDATE = 1, /* obj: the desired object; base: last observed API copy or NULL */
	KD_WB_OP_DELETE = 2, /* obj: last known copy (observed, else cached), for preconditions */
};

/* Outcome of a write (or reread), as reported by the writer. kd_wb_classify maps HTTP results. */
enum kd_wb_result {
	KD_WB_OK = 0,             /* 2xx */
	KD_WB_ALREADY_EXISTS = 1, /* 409 reason AlreadyExists: a create is done */
	KD_WB_CONFLICT = 2,       /* 409 other (stale resourceVersion): re-read, then re-issue */
	KD_WB_NOT_FOUND = 3,      /* 404: a delete is done; an update has nothing left to update */
	KD_WB_RETRY = 4,          /* 5xx, 429, connection refused, timeout: retry with backoff */
	KD_WB_PERMANENT = 5,      /* other 4xx: the entry's write failed, callback fires */
};

/* Why an entry left the cache (removed callback). */
enum kd_wb_gone {
	KD_WB_GONE_CANCELLED = 0,   /* cancelled while nothing had been created: no write made */
	KD_WB_GONE_DELETED = 1,     /* our delete completed (ok or not found) */
	KD_WB_GONE_API_DELETED = 2, /* deletion observed through the watch (observe_deleted) */
	KD_WB_GONE_EVICTED = 3,     /* persisted, observed and evicted (retention or kd_wb_evict) */
};

/* Completion of one write: called exactly once per successful write() call, on the loop thread
 * (possibly from inside write() itself). err is borrowed (may be NULL); it is copied. */
typedef void (*kd_wb_done_cb)(void *done_arg, enum kd_wb_result res, const struct kd_error *err);
/* Completion of a reread: res KD_WB_OK with obj (borrowed; the cache takes a reference),
 * KD_WB_NOT_FOUND with obj NULL, or an error result (retried with backoff). */
typedef void (*kd_wb_reread_cb)(void *arg, enum kd_wb_result res, json_object *obj,
                                const struct kd_error *err);

struct kd_wb_writer {
	/* Required. Starts one asynchronous write. key, obj and base are borrowed and stay valid
	 * until done is called (take references to keep them longer). Returns 0 when started (then
	 * done must be called exactly once, even after kd_wb_free), or -errno when the write could
	 * not be started (done must not be called; the cache retries with backoff). */
	int (*write)(void *ctx, const char *key, enum kd_wb_op op, json_object *obj,
	             json_object *base, kd_wb_done_cb done, void *done_arg);
	/* Optional. Fetches the current API copy of key (a GET), used after a Conflict and after
	 * AlreadyExists (whose object may already have been seen by the watch before the entry
	 * existed). Same contract as write: 0 then cb exactly once, or -errno. Without it a
	 * Conflict re-issues the write after backoff with the latest observed copy as base. */
	int (*reread)(void *ctx, const char *key, kd_wb_reread_cb cb, void *cb_arg);
	/* Optional. Called after each round of write() calls, so a batching adapter can send them
	 * together. */
	void (*flush)(void *ctx);
	void *ctx;
};

/* Stage callbacks, all optional, all on the loop thread; they may call back into the cache
 * (except kd_wb_free). key and objects are borrowed for the duration of the call. */
struct kd_wb_callbacks {
	/* The entry became PERSISTED: api_obj is the observed API copy (which won over the cache).
	 */
	void (*persisted)(void *ctx, const char *key, json_object *api_obj);
	/* A write failed permanently (or ran out of max_attempts). The entry keeps the error
	 * (kd_wb_error); a failed create leaves it FAILED. Surface it as an event/condition. */
	void (*failed)(void *ctx, const char *key, enum kd_wb_op op, const struct kd_error *err);
	/* The entry left the cache. */
	void (*removed)(void *ctx, const char *key, enum kd_wb_gone why);
	void *ctx;
};

#define KD_WB_RETAIN_FOREVER UINT64_MAX

struct kd_wb_config {
	unsigned max_in_flight;   /* writes outstanding at once; 0 = unlimited */
	unsigned batch_size;      /* flush as soon as this many entries wait; 0 = only by period */
	uint64_t batch_period_ms; /* flush pending entries this long after the first queued one */
	double qps;            /* client-side rate limit on writes (token bucket); 0 = unlimited */
	unsigned burst;        /* bucket size; 0 with qps > 0 means 1 */
	uint64_t retention_ms; /* evict PERSISTED entries this long after observation;
	                          KD_WB_RETAIN_FOREVER = only on kd_wb_evict */
	uint64_t backoff_base_ms; /* retry delays: kd_backoff_ms(attempt - 1, base, cap) */
	uint64_t backoff_cap_ms;
	unsigned max_attempts; /* retryable failures before a write is failed; 0 = retry forever */
	/* A create that succeeded but is not observed within this long is re-read (needs the
	 * writer's reread hook): found -> PERSISTED, gone -> removed (deleted in the API while the
	 * watch was not looking, e.g. across a relist). 0 = never; the entry waits for the watch.
	 */
	uint64_t observe_timeout_ms;
};

/* Defaults: 64 in flight, batches of 64 or every 5 ms, unlimited QPS, retention 30 s, backoff
 * 100 ms .. 10 s, retry forever, unobserved creates re-read after 30 s. */
#define KD_WB_CONFIG_DEFAULT                                                                       \
	((struct kd_wb_config){.max_in_flight = 64,                                                \
	                       .batch_size = 64,                                                   \
	                       .batch_period_ms = 5,                                               \
	                       .qps = 0,                                                           \
	                       .burst = 0,                                                         \
	                       .retention_ms = 30000,                                              \
	                       .backoff_base_ms = 100,                                             \
	                       .backoff_cap_ms = 10000,                                            \
	                       .max_attempts = 0,                                                  \
	                       .observe_timeout_ms = 30000})

/* Counters: gauges (entries now in each state, queue/in-flight sizes) and monotonic totals. */
struct kd_wb_counters {
	/* gauges */
	uint64_t ephemeral, persisting, persisted, failed, deleting;
	uint64_t queued;    /* waiting for a batch flush or a write slot */
	uint64_t backoff;   /* waiting for a retry timer */
	uint64_t in_flight; /* writes handed to the writer and not completed (incl. ignored ones) */
	uint64_t rereads_in_flight;
	/* totals */
	uint64_t puts, noop_puts; /* noop: same key and content as the last put */
	uint64_t writes_issued, creates_issued, updates_issued, deletes_issued;
	uint64_t writes_ok, already_exists, conflicts, not_found, retries, permanent_errors;
	uint64_t rereads;
	uint64_t verifies;        /* rereads of creates not observed within observe_timeout_ms */
	uint64_t observed;        /* observe() calls that matched an entry */
	uint64_t api_wins;        /* observe() that cancelled a pending or in-flight write */
	uint64_t ignored_results; /* completions of writes whose entry had moved on */
	uint64_t cancelled;       /* removed by cancel without any write */
	uint64_t deleted;         /* removed after our delete completed */
	uint64_t api_deleted;     /* removed by an observed API deletion */
	uint64_t evicted;
};

/* Creates a cache on loop (borrowed; must outlive the cache). cfg NULL means
 * KD_WB_CONFIG_DEFAULT; writer is copied and writer->write is required; cbs may be NULL.
 * Returns owned; free with kd_wb_free. NULL with *err set (EINVAL) on a bad argument. */
KD_API struct kd_wb *kd_wb_new(struct kd_loop *loop, const struct kd_wb_config *cfg,
                               const struct kd_wb_writer *writer, const struct kd_wb_callbacks *cbs,
                               struct kd_error **err);
/* Frees the cache and its entries without callbacks. Writes still in flight are detached: the
 * writer must still call their done callbacks (which then only free their records). */
KD_API void kd_wb_free(struct kd_wb *wb);

/* Stores obj (borrowed; the cache takes a reference) as the wanted state of key.
 * New key: EPHEMERAL, a create is queued. Same content as the last put() of key: no-op (even
 * when an API copy has since replaced the cached copy). Different:
 * EPHEMERAL -> the pending create carries the new content; PERSISTING -> an UPDATE follows the
 * create (unless observe() lets the API copy win first); PERSISTED -> an UPDATE is queued;
 * FAILED -> back to EPHEMERAL with the new content. Returns 0, -EINVAL (bad key or obj NULL) or
 * -EBUSY (entry is DELETING). */
KD_API int kd_wb_put(struct kd_wb *wb, const char *key, json_object *obj);

/* The stage's watch saw api_obj (borrowed; referenced) for key (ADDED or MODIFIED).
 * EPHEMERAL/PERSISTING/FAILED -> PERSISTED with the API copy as cached copy, pending and in-flight
 * writes cancelled, persisted callback fired. PERSISTED: records the API copy (and adopts it as the
 * cached copy unless an update is pending). DELETING: records it (the delete proceeds).
 * Returns 0, or -ENOENT for a key the cache does not hold (nothing done). */
KD_API int kd_wb_observe(struct kd_wb *wb, const char *key, json_object *api_obj);

/* The stage's watch saw key DELETED. Removes PERSISTED and DELETING entries (removed callback,
 * KD_WB_GONE_API_DELETED); ignored for entries never observed (see header rules).
 * Returns 0 (removed), -EAGAIN (ignored: entry never observed), -ENOENT (no entry). */
KD_API int kd_wb_observe_deleted(struct kd_wb *wb, const char *key);

/* Scale-down of key. EPHEMERAL or FAILED: removed now without any write (removed callback,
 * KD_WB_GONE_CANCELLED). PERSISTING/PERSISTED: DELETING; a delete is issued once no create or
 * update is in flight, so an object whose create is still in flight ends up deleted too.
 * DELETING: nothing more. Returns 0 or -ENOENT. */
KD_API int kd_wb_cancel(struct kd_wb *wb, const char *key);

/* Evicts a PERSISTED entry with nothing pending now (removed callback, KD_WB_GONE_EVICTED).
 * Returns 0, -ENOENT, or -EBUSY (not persisted yet, or a write pending): eviction only ever
 * follows observation. */
KD_API int kd_wb_evict(struct kd_wb *wb, const char *key);

/* Re-queues the failed write of key: FAILED -> EPHEMERAL (create again); a PERSISTED entry whose
 * update failed, or a DELETING entry whose delete failed, issues it again. Returns 0, -ENOENT,
 * or -EINVAL (nothing failed). */
KD_API int kd_wb_retry(struct kd_wb *wb, const char *key);

/* State of key in *state. 0 or -ENOENT. */
KD_API int kd_wb_state(const struct kd_wb *wb, const char *key, enum kd_wb_state *state);
/* Cached copy of key: borrowed, valid until the next call into the cache; NULL if absent. */
KD_API json_object *kd_wb_get(const struct kd_wb *wb, const char *key);
/* Last permanent error of key: borrowed, valid until the next call into the cache; NULL if none. */
KD_API const struct kd_error *kd_wb_error(const struct kd_wb *wb, const char *key);

/* Iteration in insertion order over entries whose state bit is in state_mask
 * (KD_WB_STATE_BIT(s) | ...). cb returns 0 to continue, non-zero to stop; it must not modify the
 * cache. key and obj are borrowed for the call. Returns the number of entries visited. */
typedef int (*kd_wb_iter_cb)(void *arg, const char *key, enum kd_wb_state state, json_object *obj);
KD_API size_t kd_wb_foreach(const struct kd_wb *wb, unsigned state_mask, kd_wb_iter_cb cb,
                            void *arg);
/* Every entry not yet persisted that the stage holds (EPHEMERAL, PERSISTING, FAILED): the
 * content of a handshake's state message. */
KD_API size_t kd_wb_held(const struct kd_wb *wb, kd_wb_iter_cb cb, void *arg);

/* Live instances: EPHEMERAL + PERSISTING + PERSISTED entries. */
KD_API size_t kd_wb_count(const struct kd_wb *wb);
/* Number of entries of any state. */
KD_API size_t kd_wb_size(const struct kd_wb *wb);
KD_API void kd_wb_get_counters(const struct kd_wb *wb, struct kd_wb_counters *out);
/* Histogram (kd/prom.h, seconds, kd_prom_latency_le) of the time from an entry being queued for
 * a write (put, or a retry after its backoff) to the writer's answer to that write. */
KD_API void kd_wb_get_latency(const struct kd_wb *wb, struct kd_prom_hist *out);
/* Writes the counters and one line per entry (key, state, pending op, attempts, error) to out. */
KD_API void kd_wb_dump(const struct kd_wb *wb, FILE *out);

/* Maps an HTTP outcome to a result: 2xx OK; 409 with reason "AlreadyExists" ALREADY_EXISTS;
 * other 409 CONFLICT; 404 NOT_FOUND; 408, 429, 5xx RETRY; other 4xx PERMANENT; http_status 0
 * (transport failure: refused, reset, timeout, DNS) RETRY. reason may be NULL. */
KD_API enum kd_wb_result kd_wb_classify(long http_status, const char *reason);
/* Same, from a kd_error (NULL means OK). */
KD_API enum kd_wb_result kd_wb_classify_error(const struct kd_error *err);

KD_API const char *kd_wb_state_name(enum kd_wb_state s);
KD_API const char *kd_wb_op_name(enum kd_wb_op op);
KD_API const char *kd_wb_result_name(enum kd_wb_result r);
KD_API const char *kd_wb_gone_name(enum kd_wb_gone why);

#endif /* KD_WBCACHE_H */
