/* kd/wbk8s.h: the adapter from the write-back cache's writer interface (kd/wbcache.h) to the
 * asynchronous Kubernetes client (kd/k8s.h). One adapter serves one cache and may route several
 * resource kinds: each route owns a key prefix ("endpoints:"), and a cache key is
 * "<prefix><namespace>/<name>" (cluster-scoped: "<prefix><name>").
 *
 * Per route, the verbs used for each cache operation:
 *   CREATE: POST to the collection (KD_WBK8S_CREATE_POST), PUT to the object (CREATE_PUT: for
 *           kinds that allow create-on-update, e.g. Endpoints), or PATCH (CREATE_PATCH: the object
 *           exists already and only a part is ours, e.g. PodAutoscaler status).
 *   UPDATE: PUT of the object (UPDATE_PUT; metadata.resourceVersion taken from `base` when
 *           update_rv is set, so a stale write gets 409 Conflict; removed otherwise, i.e. an
 *           unconditional update), or PATCH with merge / strategic merge patch (UPDATE_MERGE,
 *           UPDATE_STRATEGIC; body = the desired object minus metadata.resourceVersion and
 *           metadata.uid, or the route's body hook).
 *   DELETE: DELETE with the route's DeleteOptions (e.g. {"gracePeriodSeconds":0}; NULL: server
 *           default, i.e. graceful) plus {"preconditions":{"uid":...}} when uid_precondition is
 *           set and the object has one (a same-named newer object is never deleted by mistake).
 * CREATE_PATCH and UPDATE_MERGE/STRATEGIC honour `subresource` ("status"); POST/PUT go to the
 * object itself unless put_subresource is set.
 * Results are classified with kd_wb_classify_error (2xx OK, 409 AlreadyExists, 409 Conflict,
 * 404, 5xx/429/transport RETRY, other 4xx PERMANENT). A DELETE answering 409 Conflict because
 * the uid precondition failed means our object is gone: reported as NOT_FOUND.
 * The reread hook GETs the object (without subresource).
 *
 * Lifetime: completions reach the cache through small tickets that do not point at the adapter,
 * so kd_wbk8s_free may run while writes are in flight; kd_k8s_free later completes them with
 * ECANCELED (reported as RETRY to a detached cache, which only frees its records). The client
 * must outlive the adapter's last submitted call (kd_k8s_free completes them).
 */
#ifndef KD_WBK8S_H
#define KD_WBK8S_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "kd/common.h"
#include "kd/error.h"
#include "kd/k8s.h"
#include "kd/wbcache.h"

enum kd_wbk8s_create {
	KD_WBK8S_CREATE_POST = 0,
	KD_WBK8S_CREATE_PUT = 1,
	KD_WBK8S_CREATE_PATCH = 2, /* with patch type of `update` (merge unless STRATEGIC) */
};

enum kd_wbk8s_update {
	KD_WBK8S_UPDATE_PUT = 0,
	KD_WBK8S_UPDATE_MERGE = 1,
	KD_WBK8S_UPDATE_STRATEGIC = 2,
};

/* Optional body hook: returns the owned request body for op (obj/base borrowed), or NULL to use
 * the default body. Not called for DELETE. */
typedef json_object *(*kd_wbk8s_body_cb)(void *arg, enum kd_wb_op op, json_object *obj,
                                         json_object *base);

struct kd_wbk8s_route {
	const char *prefix;                /* key prefix, "" for none (copied) */
	const struct kd_k8s_resource *res; /* borrowed; static storage */
	const char *subresource;           /* for PATCH (copied) or NULL */
	json_object *delete_options;       /* borrowed; the adapter keeps a reference */
	kd_wbk8s_body_cb body;             /* optional */
	void *body_arg;
	enum kd_wbk8s_create create;
	enum kd_wbk8s_update update;
	bool put_subresource;  /* PUT also goes to subresource */
	bool update_rv;        /* UPDATE_PUT carries base's resourceVersion */
	bool uid_precondition; /* DELETE carries preconditions.uid of obj */
};

struct kd_wbk8s;

/* Creates an adapter on client c (borrowed; must have a loop and outlive every call). routes
 * (n >= 1) are copied. Prefixes must be distinct; the first matching prefix wins, so list ""
 * last. Returns owned (kd_wbk8s_free), or NULL with *err (EINVAL) on bad routes. */
KD_API struct kd_wbk8s *kd_wbk8s_new(struct kd_k8s *c, const struct kd_wbk8s_route *routes,
                                     size_t n, struct kd_error **err);
KD_API void kd_wbk8s_free(struct kd_wbk8s *a);

/* Fills *w with this adapter's write and reread hooks (ctx = a). a must outlive the cache. */
KD_API void kd_wbk8s_writer(struct kd_wbk8s *a, struct kd_wb_writer *w);

/* Counters: writes by verb and results. */
struct kd_wbk8s_stats {
	uint64_t posts, puts, patches, deletes, gets;
	uint64_t ok, failed; /* completions: 2xx / anything else */
};
KD_API void kd_wbk8s_get_stats(const struct kd_wbk8s *a, struct kd_wbk8s_stats *out);

/* Splits a cache key: *route_index (first route whose prefix starts key), *ns (owned, NULL for
 * cluster-scoped resources) and *name (owned); free() both. 0 or -EINVAL (no route, bad key).
 * Out-parameters are set only on success. */
KD_API int kd_wbk8s_parse_key(const struct kd_wbk8s *a, const char *key, size_t *route_index,
                              char **ns, char **name);

#endif /* KD_WBK8S_H */
