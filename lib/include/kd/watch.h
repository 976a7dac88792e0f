/* kd/watch.h: Kubernetes watch streams and informers on a kd_loop.
 *
 * Two layers:
 *  - kd_watch_decoder: a streaming decoder for a watch response body (one JSON event per line,
 *    as it arrives in arbitrary chunks). It never buffers more than the current event, enforces a
 *    per-event size cap and validates each event. Pure, no I/O: fuzzed by
 *    tests/fuzz/fuzz_watch_events.c.
 *  - kd_informer: list-then-watch of one resource type with a local cache keyed "ns/name"
 *    (O(1) lookup), add/update/delete callbacks, a synced notification after the first list,
 *    watch bookmarks, relist on 410 Gone / ERROR events / malformed streams, and reconnection
 *    with jittered backoff from the last resourceVersion. Objects that disappeared while the
 *    watch was down produce delete callbacks when the relist shows them gone.
 *
 * Everything runs on the loop of the struct kd_k8s given (which must have one). Callbacks run on
 * that loop thread. */
#ifndef KD_WATCH_H
#define KD_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "kd/common.h"
#include "kd/error.h"
#include "kd/k8s.h"

/* ------------------------------------------------------------------------------------------ */
/* Streaming event decoder                                                                     */

enum kd_watch_event_type {
	KD_WATCH_ADDED = 0,
	KD_WATCH_MODIFIED,
	KD_WATCH_DELETED,
	KD_WATCH_BOOKMARK,
	KD_WATCH_ERROR, /* object is a metav1.Status (code 410: resourceVersion too old) */
};

struct kd_watch_event {
	enum kd_watch_event_type type;
	struct json_object *object;   /* borrowed; json_object_get() to keep beyond the callback */
	const char *resource_version; /* object's metadata.resourceVersion or NULL; borrowed */
};

/* Default per-event cap. */
#define KD_WATCH_DEFAULT_MAX_EVENT_BYTES (16u * 1024u * 1024u)

struct kd_watch_decoder;

/* Return 0 to continue decoding, non-zero to stop (kd_watch_decoder_feed then returns that
 * value, negated if positive). */
typedef int (*kd_watch_event_cb)(const struct kd_watch_event *ev, void *arg);

/* max_event_bytes 0: KD_WATCH_DEFAULT_MAX_EVENT_BYTES. Returns owned; free with
 * kd_watch_decoder_free. */
KD_API struct kd_watch_decoder *kd_watch_decoder_new(size_t max_event_bytes);
KD_API void kd_watch_decoder_free(struct kd_watch_decoder *d);
/* Forgets any partial event (e.g. for a new stream). */
KD_API void kd_watch_decoder_reset(struct kd_watch_decoder *d);

/* Feeds len bytes (any split: events may span calls, several events may be in one call) and
 * calls cb for each complete event, in order. Returns 0, the callback's stop value, or -errno
 * with *err set: -EBADMSG for malformed JSON or an invalid event (not an object, missing or
 * unknown "type", missing "object") and -EMSGSIZE for an event over the cap. After an error the
 * decoder refuses further input until kd_watch_decoder_reset. */
KD_API int kd_watch_decoder_feed(struct kd_watch_decoder *d, const char *data, size_t len,
                                 kd_watch_event_cb cb, void *arg, struct kd_error **err);
/* End of stream: 0 if no partial event is pending, else -EBADMSG ("truncated event"). */
KD_API int kd_watch_decoder_finish(struct kd_watch_decoder *d, struct kd_error **err);

/* "ADDED" ... "ERROR" */
KD_API const char *kd_watch_event_type_name(enum kd_watch_event_type t);

/* ------------------------------------------------------------------------------------------ */
/* Informer                                                                                    */

struct kd_informer;

/* Object arguments are borrowed for the duration of the callback (json_object_get to keep).
 * old in on_update is the previous cached version; obj in on_delete the last known state (the
 * DELETED event's object, or the cached one when a relist shows the object gone). Callbacks may
 * call kd_informer_get/foreach, kd_k8s_submit, and kd_informer_free on their own informer.
 * Order: a list's adds and updates come in the order of its items; a relist first reports the
 * vanished objects, in cache order (see kd_informer_foreach); watch events come as received. */
struct kd_informer_handlers {
	void (*on_add)(struct kd_informer *inf, struct json_object *obj, void *arg);
	void (*on_update)(struct kd_informer *inf, struct json_object *old, struct json_object *obj,
	                  void *arg);
	void (*on_delete)(struct kd_informer *inf, struct json_object *obj, void *arg);
	/* After the first successful list has been applied (cache complete). Once. */
	void (*on_synced)(struct kd_informer *inf, void *arg);
	void *arg;
};

/* An on_update for informers whose on_add takes every version of an object: calls the informer's
 * on_add with the new version (old is not passed on). `.on_update = kd_informer_update_as_add`. */
KD_API void kd_informer_update_as_add(struct kd_informer *inf, struct json_object *old,
                                      struct json_object *obj, void *arg);

struct kd_informer_opts {
	const struct kd_k8s_resource *res; /* required; borrowed, must outlive the informer */
	const char *ns;                    /* NULL/"": all namespaces (copied) */
	const char *label_selector;        /* passed to the server (copied) */
	const char *field_selector;        /* passed to the server (copied) */
	long list_limit;                   /* LIST page size; 0: 500 */
	unsigned watch_timeout_s; /* server-side watch timeoutSeconds; 0: 300 (randomised +-10%) */
	unsigned idle_timeout_s;  /* reconnect after this long without a byte; 0: 2*timeout+60 */
	size_t max_event_bytes;   /* 0: KD_WATCH_DEFAULT_MAX_EVENT_BYTES */
	uint64_t backoff_base_ms; /* 0: 200 */
	uint64_t backoff_cap_ms;  /* 0: 30000 */
};

struct kd_informer_stats {
	uint64_t lists;     /* completed lists (initial + relists) */
	uint64_t relists;   /* relists after the first list (410, ERROR events, malformed data) */
	uint64_t watches;   /* watch requests started */
	uint64_t events;    /* events applied */
	uint64_t bookmarks; /* BOOKMARK events */
	uint64_t errors;    /* failed lists/watches, malformed events */
};

/* Creates an informer on client c (must have a loop; borrowed, must outlive the informer).
 * Nothing happens until kd_informer_start. Returns 0 and *out owned (kd_informer_free), or
 * -EINVAL with *err set. */
KD_API int kd_informer_new(struct kd_k8s *c, const struct kd_informer_opts *opts,
                           const struct kd_informer_handlers *handlers, struct kd_informer **out,
                           struct kd_error **err);
/* Starts listing (asynchronously). 0, or -EALREADY. */
KD_API int kd_informer_start(struct kd_informer *inf);
/* Stops and frees; pending requests are cancelled, no callback runs afterwards. Safe from inside
 * the informer's own callbacks (freeing is then deferred to when the callback returns). */
KD_API void kd_informer_free(struct kd_informer *inf);

/* True once the first list has been applied. */
KD_API bool kd_informer_synced(const struct kd_informer *inf);
/* Cached object "ns/name" (cluster-scoped: ns NULL or ""), or NULL. Borrowed: valid until the
 * loop next runs informer code (next event); json_object_get() to keep. */
KD_API struct json_object *kd_informer_get(struct kd_informer *inf, const char *ns,
                                           const char *name);
KD_API size_t kd_informer_count(const struct kd_informer *inf);
/* Calls fn for every cached object (borrowed) in cache order (the last list's items order, then
 * objects added by watch events as they came; an update keeps the object's place); stops when fn
 * returns non-zero and returns that value. fn must not modify the informer. */
KD_API int kd_informer_foreach(struct kd_informer *inf,
                               int (*fn)(struct json_object *obj, void *arg), void *arg);
/* Last resourceVersion seen (list, event or bookmark), or NULL. Borrowed until the next event. */
KD_API const char *kd_informer_resource_version(const struct kd_informer *inf);
KD_API void kd_informer_get_stats(const struct kd_informer *inf, struct kd_informer_stats *out);

/* Cache key of an object: "ns/name" or "name" for cluster-scoped objects. Returns owned; free().
 * NULL if the object has no metadata.name. */
KD_API char *kd_informer_key(struct json_object *obj);

#endif /* KD_WATCH_H */
