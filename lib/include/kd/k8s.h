/* kd/k8s.h: Kubernetes REST client on libcurl + json-c: synchronous calls, and asynchronous calls
 * driven by the curl multi socket API on a kd_loop. The connection settings it takes (struct
 * kd_k8s_config: kubeconfig, in-cluster) are in kd/kubeconfig.h, included here.
 *
 * Threading: a struct kd_k8s is used from one thread, the thread running its kd_loop, except the
 * synchronous calls, which are serialised by an internal mutex and may be made from any thread
 * (they block that thread; do not make them from a loop callback on a hot path).
 *
 * Connections: synchronous calls reuse one curl easy handle (keep-alive). Asynchronous calls run
 * on a curl multi handle with a keep-alive pool of at most opts.max_connections connections
 * (further requests queue inside the client; with opts.http2 they are multiplexed over HTTP/2
 * when the server supports it). Long-running streams (watches) use a second multi handle that is
 * not counted against that pool, so watches never starve writes. DNS and TLS sessions are shared
 * between all handles.
 *
 * Errors (struct kd_error): http_status is the HTTP status (0 for transport errors), reason the
 * Kubernetes Status.reason, msg "<verb> <resource> <ns>/<name>: <status> <reason>: <message>",
 * e.g. `create pods default/x: 409 AlreadyExists: pods "x" already exists`. errnum mapping:
 *   400 BadRequest EINVAL, 422 Invalid EINVAL, 401 Unauthorized EACCES, 403 Forbidden EPERM,
 *   404 NotFound ENOENT, 405 EOPNOTSUPP, 409 AlreadyExists EEXIST,
 *   409 Conflict (stale resourceVersion; any other 409 reason) EBUSY, 410 Gone/Expired ESTALE,
 *   413 EMSGSIZE, 429 TooManyRequests EAGAIN, 503 EAGAIN, 504 ETIMEDOUT, other 5xx EIO,
 *   other 4xx EPROTO.
 * Transport: timeout ETIMEDOUT, connection refused/unreachable ECONNREFUSED, DNS EHOSTUNREACH,
 * TLS/certificate failure EPROTO (message names the server and curl's reason), response larger
 * than opts.max_response_bytes EMSGSIZE ("response exceeds N bytes"), bad JSON EBADMSG,
 * cancelled by kd_k8s_free ECANCELED. */
#ifndef KD_K8S_H
#define KD_K8S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "kd/common.h"
#include "kd/error.h"
#include "kd/kubeconfig.h"
#include "kd/loop.h"

/* ------------------------------------------------------------------------------------------ */
/* Client                                                                                      */

struct kd_k8s_opts {
	uint64_t timeout_ms;         /* whole request (not streams); 0: 30000 */
	uint64_t connect_timeout_ms; /* 0: 10000 */
	size_t max_response_bytes;   /* 0: 64 MiB, per HTTP response (each LIST page); larger
	                                responses fail with EMSGSIZE */
	double qps;                  /* client-side rate limit (token bucket); 0: unlimited */
	unsigned burst;              /* bucket size; 0: max(1, qps) */
	const char *user_agent;      /* copied; NULL: "kubedirect/0.1 (libkd)" */
	unsigned max_connections;    /* async keep-alive pool size; 0: 64 */
	bool http2; /* negotiate HTTP/2 over TLS (multiplexing); default HTTP/1.1 */
};

struct kd_k8s;

/* Creates a client. cfg is copied (the caller keeps ownership of its own). loop may be NULL:
 * then only synchronous calls are available (async calls fail with EINVAL). opts may be NULL
 * (all defaults). Returns 0 and *out owned (free with kd_k8s_free), or -errno with *err set
 * (e.g. unreadable token file). */
KD_API int kd_k8s_new(const struct kd_k8s_config *cfg, struct kd_loop *loop,
                      const struct kd_k8s_opts *opts, struct kd_k8s **out, struct kd_error **err);
/* Cancels every pending asynchronous call (their callbacks run with ECANCELED, inside this
 * call) and every stream (their callbacks do not run), then frees. Must not be called from a
 * callback of this client. NULL is fine. */
KD_API void kd_k8s_free(struct kd_k8s *c);
/* A component's client from its --kubeconfig/--context (kd_k8s_config_load) on loop: 0 with
 * *cfg_out and *out owned (kd_k8s_config_free, kd_k8s_free), or -errno with *err saying which
 * step failed ("Kubernetes configuration: ...", "Kubernetes client: ..."). */
KD_API int kd_k8s_open(const char *kubeconfig, const char *context, struct kd_loop *loop,
                       const char *user_agent, struct kd_k8s_config **cfg_out, struct kd_k8s **out,
                       struct kd_error **err);

/* Borrowed; valid until kd_k8s_free. */
KD_API const struct kd_k8s_config *kd_k8s_get_config(const struct kd_k8s *c);
KD_API struct kd_loop *kd_k8s_get_loop(const struct kd_k8s *c);

/* Counters (safe to read from any thread). */
struct kd_k8s_stats {
	uint64_t requests;  /* HTTP requests sent (each LIST page counts) */
	uint64_t throttled; /* requests delayed by the QPS limiter */
	uint64_t pending;   /* async calls submitted and not completed */
};
KD_API void kd_k8s_get_stats(const struct kd_k8s *c, struct kd_k8s_stats *out);
/* Completed exchanges by outcome (safe to read from any thread): out[0] ended without an HTTP
 * status (connection refused, TLS, timeout), out[1..5] answered 1xx..5xx; watch streams count
 * once, when they end. */
#define KD_K8S_RESPONSE_CLASSES 6
KD_API void kd_k8s_get_responses(const struct kd_k8s *c, uint64_t out[KD_K8S_RESPONSE_CLASSES]);

/* ------------------------------------------------------------------------------------------ */
/* Resources and paths                                                                         */

/* A resource type. group "" is the core group (/api/v1/...), others /apis/<group>/<version>. */
struct kd_k8s_resource {
	const char *group;    /* "" for core */
	const char *version;  /* "v1" */
	const char *resource; /* plural lower-case: "pods" */
	bool namespaced;
};

/* Common resources (static storage). */
KD_API extern const struct kd_k8s_resource kd_k8s_pods;
KD_API extern const struct kd_k8s_resource kd_k8s_nodes;
KD_API extern const struct kd_k8s_resource kd_k8s_services;
KD_API extern const struct kd_k8s_resource kd_k8s_endpoints;
KD_API extern const struct kd_k8s_resource kd_k8s_deployments; /* apps/v1 */
KD_API extern const struct kd_k8s_resource kd_k8s_replicasets; /* apps/v1 */
KD_API extern const struct kd_k8s_resource kd_k8s_leases;      /* coordination.k8s.io/v1 */
KD_API extern const struct kd_k8s_resource
    kd_k8s_podautoscalers; /* autoscaling.internal.knative.dev/v1alpha1 */

/* Path of a resource: "/api/v1/namespaces/<ns>/pods/<name>/<subresource>". ns is ignored for
 * cluster-scoped resources and may be NULL/"" (all namespaces) for collections; name and
 * subresource may be NULL. Path segments are URL-escaped. Returns owned; free(). */
KD_API char *kd_k8s_path(const struct kd_k8s_resource *res, const char *ns, const char *name,
                         const char *subresource);

/* ------------------------------------------------------------------------------------------ */
/* Requests                                                                                    */

enum kd_k8s_verb {
	KD_K8S_GET = 0,
	KD_K8S_LIST,   /* follows `continue`; result:
	                  {"kind":"<X>List","metadata":{"resourceVersion"},   "items":[...all
	                  pages...]}
	                */
	KD_K8S_CREATE, /* POST body to the collection (name ignored; taken from the body) */
	KD_K8S_UPDATE, /* PUT body */
	KD_K8S_DELETE, /* DELETE with optional body (DeleteOptions, e.g. gracePeriodSeconds) */
	KD_K8S_PATCH,  /* PATCH body with patch_type's content type */
};

enum kd_k8s_patch_type {
	KD_K8S_PATCH_MERGE = 0, /* application/merge-patch+json */
	KD_K8S_PATCH_JSON,      /* application/json-patch+json (body is an array of ops) */
	KD_K8S_PATCH_STRATEGIC, /* application/strategic-merge-patch+json (built-in types only) */
};

/* One call. Everything is borrowed and only needs to live until kd_k8s_do/kd_k8s_submit return
 * (they copy/serialise what they need). */
struct kd_k8s_request {
	enum kd_k8s_verb verb;
	const struct kd_k8s_resource *res;
	const char *ns;          /* namespace (NULL: all namespaces for LIST, or cluster-scoped) */
	const char *name;        /* object name (GET/UPDATE/DELETE/PATCH) */
	const char *subresource; /* "status", "scale", or NULL */
	const char *label_selector; /* LIST: "app=x,tier!=db" (URL-encoded by the client) */
	const char *field_selector; /* LIST: "spec.nodeName=n1" */
	long limit;                 /* LIST page size; 0: 500 */
	enum kd_k8s_patch_type patch_type;
	struct json_object *body; /* CREATE/UPDATE/PATCH (required) and DELETE (optional) */
	const char *query;        /* extra raw query parameters appended as-is ("dryRun=All") */
};

/* Result of a call. body is owned by the response (NULL for an empty 2xx body). */
struct kd_k8s_response {
	long http_status;
	struct json_object *body;
	const char
	    *resource_version; /* body's metadata.resourceVersion, borrowed from body, or NULL */
};

/* Synchronous call. On success returns 0 and, if out is non-NULL, *out = owned response body
 * (json_object_put; NULL for an empty body). -errno with *err set on failure (see top). */
KD_API int kd_k8s_do(struct kd_k8s *c, const struct kd_k8s_request *req, struct json_object **out,
                     struct kd_error **err);

/* Convenience wrappers over kd_k8s_do; *out as there (may be NULL when not wanted). */
KD_API int kd_k8s_get(struct kd_k8s *c, const struct kd_k8s_resource *res, const char *ns,
                      const char *name, struct json_object **out, struct kd_error **err);
KD_API int kd_k8s_list(struct kd_k8s *c, const struct kd_k8s_resource *res, const char *ns,
                       const char *label_selector, const char *field_selector,
                       struct json_object **out, struct kd_error **err);
KD_API int kd_k8s_create(struct kd_k8s *c, const struct kd_k8s_resource *res, const char *ns,
                         struct json_object *obj, struct json_object **out, struct kd_error **err);
KD_API int kd_k8s_update(struct kd_k8s *c, const struct kd_k8s_resource *res, const char *ns,
                         const char *name, const char *subresource, struct json_object *obj,
                         struct json_object **out, struct kd_error **err);
KD_API int kd_k8s_patch(struct kd_k8s *c, const struct kd_k8s_resource *res, const char *ns,
                        const char *name, const char *subresource, enum kd_k8s_patch_type type,
                        struct json_object *patch, struct json_object **out, struct kd_error **err);
/* delete_options may be NULL; e.g. {"gracePeriodSeconds":0,"propagationPolicy":"Background"}. */
KD_API int kd_k8s_delete(struct kd_k8s *c, const struct kd_k8s_resource *res, const char *ns,
                         const char *name, struct json_object *delete_options,
                         struct json_object **out, struct kd_error **err);

/* Completion of an asynchronous call, run on the loop thread, exactly once per accepted
 * submission, never from inside kd_k8s_submit. On success err is NULL and resp is set; on
 * failure err is set and resp may be NULL (transport error) or carry the error body. Both are
 * borrowed for the duration of the callback: to keep the body, json_object_get(resp->body) (or
 * steal it: take resp->body and set it to NULL). The callback may submit new calls. */
typedef void (*kd_k8s_done_cb)(struct kd_k8s_response *resp, struct kd_error *err, void *arg);

/* Asynchronous call on the client's loop. Returns 0 when accepted (cb will run), or -errno with
 * *err set and cb not run (no loop, bad request, client shutting down: ECANCELED). The request
 * starts on a later loop iteration. Requests beyond the QPS budget or the connection pool are
 * queued, in order. Hundreds/thousands of concurrent calls are fine (measured on loopback:
 * 2000 creates in ~0.2 s over 8 keep-alive connections). Calls cannot be cancelled individually:
 * if the object behind `arg` may die first, pass a small ticket that outlives it. */
KD_API int kd_k8s_submit(struct kd_k8s *c, const struct kd_k8s_request *req, kd_k8s_done_cb cb,
                         void *arg, struct kd_error **err);

/* Opens n connections of the asynchronous pool now (n parallel GET /version, which every
 * authenticated client may read; at most opts.max_connections), so that the first burst of calls
 * multiplexes on open connections instead of waiting for TLS handshakes on the loop (HTTP/2:
 * each connection carries up to 100 concurrent calls). Failures are logged at debug level only:
 * the calls that follow open what they need. 0, or -errno with *err (no loop, shutting down). */
KD_API int kd_k8s_warm(struct kd_k8s *c, unsigned n, struct kd_error **err);

/* ------------------------------------------------------------------------------------------ */
/* Streams (used by kd/watch.h; usable for any long-running GET)                               */

struct kd_k8s_stream;

/* Body bytes of a 2xx stream as they arrive (not NUL-terminated). Return 0 to continue, non-zero
 * to abort the stream (on_done then runs with ECANCELED). May call kd_k8s_stream_close (then
 * on_done does not run) and kd_k8s_submit. */
typedef int (*kd_k8s_stream_data_cb)(const char *data, size_t len, void *arg);
/* End of a stream: err NULL for a clean end of a 2xx body, else the failure (for non-2xx the
 * Status body is decoded into err as for other calls: a 410 has http_status 410, ESTALE). err is
 * borrowed. The stream is finished and freed after this returns: do not close it. */
typedef void (*kd_k8s_stream_done_cb)(struct kd_error *err, void *arg);

/* Starts GET <path_and_query> (e.g. "/api/v1/pods?watch=1&resourceVersion=5") with no overall
 * timeout and no response size cap (the consumer caps what it buffers). low_speed_timeout_s uses
 * curl's low-speed check, which averages over a few seconds (so it fires a few seconds late);
 * kd_informer uses its own loop timer instead. Streams run on their own
 * multi handle: they are not counted in opts.max_connections and not subject to opts.qps. The
 * request starts on the next loop iteration (never inside this call). low_speed_timeout_s > 0
 * aborts the stream (ETIMEDOUT) after that many seconds without a byte. Returns 0 and *out
 * (owned until on_done runs or kd_k8s_stream_close), or -errno with *err set. */
KD_API int kd_k8s_stream_open(struct kd_k8s *c, const char *path_and_query,
                              unsigned low_speed_timeout_s, kd_k8s_stream_data_cb on_data,
                              kd_k8s_stream_done_cb on_done, void *arg, struct kd_k8s_stream **out,
                              struct kd_error **err);
/* Aborts a stream; its callbacks never run afterwards. Safe from inside the stream's own
 * on_data. NULL is fine. */
KD_API void kd_k8s_stream_close(struct kd_k8s_stream *s);

/* Maps an HTTP status and Kubernetes Status reason to an errno as documented above. */
KD_API int kd_k8s_errno_for(long http_status, const char *reason);

#endif /* KD_K8S_H */
