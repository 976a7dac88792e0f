/* kd_k8s.c: Kubernetes REST client: sync calls on one reused easy handle, async calls and streams
 * on curl multi handles driven by a kd_loop. Its configuration and token are kd_kubeconfig.c's. */
#include "kd/curlm.h"
#include "kd/k8s.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kd/json.h"
#include "kd/kubeconfig.h"
#include "kd/log.h"

#define DEFAULT_TIMEOUT_MS         30000u
#define DEFAULT_CONNECT_TIMEOUT_MS 10000u
#define DEFAULT_MAX_RESPONSE       (64u * 1024u * 1024u)
#define DEFAULT_MAX_CONNECTIONS    64u
#define DEFAULT_LIST_LIMIT         500
#define MAX_ERROR_BODY             (64u * 1024u)
#define DEFAULT_USER_AGENT         "kubedirect/0.1 (libkd)"

/* ------------------------------------------------------------------------------------------ */
/* Resources                                                                                   */

const struct kd_k8s_resource kd_k8s_pods = {"", "v1", "pods", true};
const struct kd_k8s_resource kd_k8s_nodes = {"", "v1", "nodes", false};
const struct kd_k8s_resource kd_k8s_services = {"", "v1", "services", true};
const struct kd_k8s_resource kd_k8s_endpoints = {"", "v1", "endpoints", true};
const struct kd_k8s_resource kd_k8s_deployments = {"apps", "v1", "deployments", true};
const struct kd_k8s_resource kd_k8s_replicasets = {"apps", "v1", "replicasets", true};
const struct kd_k8s_resource kd_k8s_leases = {"coordination.k8s.io", "v1", "leases", true};
const struct kd_k8s_resource kd_k8s_podautoscalers = {"autoscaling.internal.knative.dev",
                                                      "v1alpha1", "podautoscalers", true};

/* Growable byte buffer. */
struct buf {
	char *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *data, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = kd_xrealloc(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_free(struct buf *b)
{
	free(b->p);
	*b = (struct buf){0};
}

/* Percent-encodes everything but RFC 3986 unreserved characters. */
static void buf_add_escaped(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
			buf_add(b, s, 1);
		} else {
			char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
			buf_add(b, e, 3);
		}
	}
}

char *kd_k8s_path(const struct kd_k8s_resource *res, const char *ns, const char *name,
                  const char *subresource)
{
	struct buf b = {0};
	if (!res->group || !*res->group) {
		buf_adds(&b, "/api/");
	} else {
		buf_adds(&b, "/apis/");
		buf_add_escaped(&b, res->group);
		buf_adds(&b, "/");
	}
	buf_add_escaped(&b, res->version);
	if (res->namespaced && ns && *ns) {
		buf_adds(&b, "/namespaces/");
		buf_add_escaped(&b, ns);
	}
	buf_adds(&b, "/");
	buf_add_escaped(&b, res->resource);
	if (name && *name) {
		buf_adds(&b, "/");
		buf_add_escaped(&b, name);
		if (subresource && *subresource) {
			buf_adds(&b, "/");
			buf_add_escaped(&b, subresource);
		}
	}
	return b.p;
}

/* Hands e to the caller's err slot (first error wins) or frees it. */
static void propagate(struct kd_error **err, struct kd_error *e)
{
	if (err && !*err)
		*err = e;
	else
		kd_error_free(e);
}

/* ------------------------------------------------------------------------------------------ */
/* Client                                                                                      */

struct kd_k8s;

/* One curl multi handle on the loop (kd/curlm.h). */
struct kmulti {
	struct kd_k8s *c;
	struct kd_curlm *cm;
	CURLM *multi; /* kd_curlm_multi(cm) */
};

/* One HTTP exchange (an async call, possibly several LIST pages) or a stream. */
struct xfer {
	struct xfer *prev, *next; /* c->queue or c->active */
	bool queued, active;
	struct kd_k8s *c;
	bool is_stream, is_list, closed;
	bool warm; /* kd_k8s_warm's: opens its own connection (no PIPEWAIT) */
	CURL *easy;
	struct curl_slist *hdrs;
	const char *method; /* static string */
	char *url_base;     /* server + path + '?' + query (without continue) */
	char *body;
	const char *ctype;
	char *desc;
	char *cont; /* next LIST page token */
	struct json_object *items;
	char *list_kind;
	kd_k8s_done_cb cb;
	void *arg;
	kd_k8s_stream_data_cb on_data;
	kd_k8s_stream_done_cb on_done;
	unsigned low_speed_s;
	struct buf rbuf;
	bool too_big;
	char errbuf[CURL_ERROR_SIZE];
};

struct kd_k8s_stream {
	struct xfer x;
};

struct xlist {
	struct xfer *head, *tail;
};

struct kd_k8s {
	struct kd_k8s_config *cfg;
	struct kd_loop *loop;
	uint64_t timeout_ms, connect_timeout_ms;
	size_t max_response;
	char *user_agent;
	unsigned max_connections;
	bool http2;

	CURLSH *share;
	pthread_mutex_t share_lock;

	pthread_mutex_t sync_lock;
	CURL *sync_easy;

	pthread_mutex_t auth_lock; /* token cache + rate limiter */
	struct kd_k8s_token token;
	double qps, tokens;
	unsigned burst;
	uint64_t rl_last_ns;

	struct kmulti req, strm;
	struct kd_timer *kick;
	struct xlist queue, active;
	bool closing;
	struct kd_k8s_stats stats;
	uint64_t responses[KD_K8S_RESPONSE_CLASSES]; /* kd_k8s_get_responses */
};

static void xlist_push(struct xlist *l, struct xfer *x)
{
	x->next = NULL;
	x->prev = l->tail;
	if (l->tail)
		l->tail->next = x;
	else
		l->head = x;
	l->tail = x;
}

static void xlist_remove(struct xlist *l, struct xfer *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		l->head = x->next;
	if (x->next)
		x->next->prev = x->prev;
	else
		l->tail = x->prev;
	x->prev = x->next = NULL;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "kd_k8s: curl_global_init failed\n");
		abort();
	}
}

static void share_lock_cb(CURL *h, curl_lock_data d, curl_lock_access a, void *p)
{
	(void)h;
	(void)d;
	(void)a;
	pthread_mutex_lock(&((struct kd_k8s *)p)->share_lock);
}

static void share_unlock_cb(CURL *h, curl_lock_data d, void *p)
{
	(void)h;
	(void)d;
	pthread_mutex_unlock(&((struct kd_k8s *)p)->share_lock);
}

/* The current bearer token (re-read from its file when it changed). Caller holds auth_lock. */
static const char *current_token(struct kd_k8s *c, struct kd_error **err)
{
	return kd_k8s_token_current(&c->token, c->cfg, err);
}

/* Token bucket: 0 if a token was taken, else nanoseconds to wait before trying again. */
static uint64_t rl_take(struct kd_k8s *c)
{
	if (c->qps <= 0)
		return 0;
	pthread_mutex_lock(&c->auth_lock);
	uint64_t now = kd_now_ns();
	c->tokens += (double)(now - c->rl_last_ns) * c->qps / 1e9;
	if (c->tokens > (double)c->burst)
		c->tokens = (double)c->burst;
	c->rl_last_ns = now;
	uint64_t wait = 0;
	if (c->tokens >= 1.0)
		c->tokens -= 1.0;
	else
		wait = (uint64_t)((1.0 - c->tokens) / c->qps * 1e9) + 1;
	pthread_mutex_unlock(&c->auth_lock);
	return wait;
}

static void kick_cb(struct kd_loop *loop, struct kd_timer *t, void *arg);
static void multi_done(void *ud, CURL *e, CURLcode rc);
static void multi_after(void *ud);

static void kmulti_init(struct kd_k8s *c, struct kmulti *m, long max_conns)
{
	m->c = c;
	m->cm = kd_curlm_new(c->loop, "k8s", multi_done, multi_after, m);
	m->multi = kd_curlm_multi(m->cm);
	if (max_conns > 0) {
		curl_multi_setopt(m->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_conns);
		curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, max_conns);
	}
	curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
}

/* True while curl runs one of our callbacks (on either multi handle). */
static bool in_curl(const struct kd_k8s *c)
{
	return (c->req.cm && kd_curlm_inside(c->req.cm)) ||
	       (c->strm.cm && kd_curlm_inside(c->strm.cm));
}

int kd_k8s_new(const struct kd_k8s_config *cfg, struct kd_loop *loop,
               const struct kd_k8s_opts *opts, struct kd_k8s **out, struct kd_error **err)
{
	static const struct kd_k8s_opts defaults = {0};
	if (!opts)
		opts = &defaults;
	if (!cfg || !cfg->server || strncmp(cfg->server, "http", 4))
		return kd_error_set(err, EINVAL, 0, "k8s client: config has no http(s) server URL");
	pthread_once(&curl_once, curl_init_once);
	struct kd_k8s *c = kd_xcalloc(1, sizeof(*c));
	c->cfg = kd_k8s_config_dup(cfg);
	size_t sl = strlen(c->cfg->server);
	while (sl > 0 && c->cfg->server[sl - 1] == '/')
		c->cfg->server[--sl] = '\0';
	c->loop = loop;
	c->timeout_ms = opts->timeout_ms ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
	c->connect_timeout_ms =
	    opts->connect_timeout_ms ? opts->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
	c->max_response =
	    opts->max_response_bytes ? opts->max_response_bytes : DEFAULT_MAX_RESPONSE;
	c->user_agent = kd_xstrdup(opts->user_agent ? opts->user_agent : DEFAULT_USER_AGENT);
	c->max_connections =
	    opts->max_connections ? opts->max_connections : DEFAULT_MAX_CONNECTIONS;
	c->http2 = opts->http2;
	c->qps = opts->qps > 0 ? opts->qps : 0;
	c->burst = opts->burst ? opts->burst : (unsigned)KD_MAX(1.0, c->qps);
	c->tokens = c->burst;
	c->rl_last_ns = kd_now_ns();
	pthread_mutex_init(&c->share_lock, NULL);
	pthread_mutex_init(&c->sync_lock, NULL);
	pthread_mutex_init(&c->auth_lock, NULL);
	c->share = curl_share_init();
	c->sync_easy = curl_easy_init();
	if (!c->share || !c->sync_easy)
		abort();
	curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock_cb);
	curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock_cb);
	curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	if (loop) {
		kmulti_init(c, &c->req, (long)c->max_connections);
		kmulti_init(c, &c->strm, 0);
		c->kick = kd_loop_timer_new(loop, kick_cb, c);
	}
	if (c->cfg->token_file) {
		struct kd_error *e = NULL;
		if (!current_token(c, &e)) {
			int rc = -e->errnum;
			propagate(err, e);
			kd_k8s_free(c);
			return rc;
		}
	}
	*out = c;
	return 0;
}

const struct kd_k8s_config *kd_k8s_get_config(const struct kd_k8s *c)
{
	return c->cfg;
}

struct kd_loop *kd_k8s_get_loop(const struct kd_k8s *c)
{
	return c->loop;
}

void kd_k8s_get_stats(const struct kd_k8s *c, struct kd_k8s_stats *out)
{
	out->requests = __atomic_load_n(&c->stats.requests, __ATOMIC_RELAXED);
	out->throttled = __atomic_load_n(&c->stats.throttled, __ATOMIC_RELAXED);
	out->pending = __atomic_load_n(&c->stats.pending, __ATOMIC_RELAXED);
}

void kd_k8s_get_responses(const struct kd_k8s *c, uint64_t out[KD_K8S_RESPONSE_CLASSES])
{
	for (size_t i = 0; i < KD_K8S_RESPONSE_CLASSES; i++)
		out[i] = __atomic_load_n(&c->responses[i], __ATOMIC_RELAXED);
}

/* Counts one finished exchange for kd_k8s_get_responses. */
static void count_response(struct kd_k8s *c, long status)
{
	size_t cls = status >= 100 && status < 600 ? (size_t)(status / 100) : 0;
	__atomic_add_fetch(&c->responses[cls], 1, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------------------------ */
/* Errors                                                                                      */

int kd_k8s_errno_for(long status, const char *reason)
{
	switch (status) {
	case 400:
	case 422:
		return EINVAL;
	case 401:
		return EACCES;
	case 403:
		return EPERM;
	case 404:
		return ENOENT;
	case 405:
		return EOPNOTSUPP;
	case 409:
		return (reason && !strcmp(reason, "AlreadyExists")) ? EEXIST : EBUSY;
	case 410:
		return ESTALE;
	case 413:
		return EMSGSIZE;
	case 429:
	case 503:
		return EAGAIN;
	case 504:
		return ETIMEDOUT;
	default:
		if (status >= 500)
			return EIO;
		if (status >= 400)
			return EPROTO;
		return EIO;
	}
}

static int errno_for_curl(CURLcode cc)
{
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		return ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return EHOSTUNREACH;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_SHUTDOWN_FAILED:
		return EPROTO;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		return ECONNRESET;
	case CURLE_FILESIZE_EXCEEDED:
		return EMSGSIZE;
	case CURLE_WRITE_ERROR:
	case CURLE_ABORTED_BY_CALLBACK:
		return ECANCELED;
	default:
		return EIO;
	}
}

static bool is_tls_error(CURLcode cc)
{
	return errno_for_curl(cc) == EPROTO;
}

/* Builds the error of a finished transfer (transport failure or non-2xx). */
static int xfer_error(struct kd_k8s *c, struct xfer *x, CURLcode cc, long status,
                      struct json_object *body, struct kd_error **err)
{
	if (x->too_big || cc == CURLE_FILESIZE_EXCEEDED)
		return kd_error_set(err, EMSGSIZE, status, "%s: response exceeds %zu bytes",
		                    x->desc, c->max_response);
	if (cc != CURLE_OK) {
		const char *why = x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc);
		if (is_tls_error(cc))
			return kd_error_set(err, EPROTO, 0, "%s: TLS with %s failed: %s", x->desc,
			                    c->cfg->server, why);
		return kd_error_set(err, errno_for_curl(cc), 0, "%s: %s: %s", x->desc,
		                    c->cfg->server, why);
	}
	const char *reason = kd_json_get_string(body, "reason");
	const char *message = kd_json_get_string(body, "message");
	int e = kd_k8s_errno_for(status, reason);
	if (message && reason && *reason)
		return kd_error_set_reason(err, e, status, reason, "%s: %ld %s: %s", x->desc,
		                           status, reason, message);
	if (message)
		return kd_error_set_reason(err, e, status, reason, "%s: %ld: %s", x->desc, status,
		                           message);
	/* Not a Status: show the start of the body. */
	int shown = (int)KD_MIN(x->rbuf.len, (size_t)200);
	size_t n = 0;
	while ((int)n < shown && x->rbuf.p[n] != '\n' && x->rbuf.p[n] != '\r')
		n++;
	return kd_error_set_reason(err, e, status, reason, "%s: HTTP %ld%s%.*s", x->desc, status,
	                           n ? ": " : "", (int)n, x->rbuf.p ? x->rbuf.p : "");
}

/* Parses the response buffer. For non-2xx returns the mapped error (with *bodyp set to the
 * parsed Status if any). */
static int xfer_result(struct kd_k8s *c, struct xfer *x, CURLcode cc, long status,
                       struct json_object **bodyp, struct kd_error **err)
{
	*bodyp = NULL;
	if (cc != CURLE_OK || x->too_big)
		return xfer_error(c, x, cc, status, NULL, err);
	struct json_object *body = NULL;
	bool empty = true;
	for (size_t i = 0; i < x->rbuf.len; i++) {
		char ch = x->rbuf.p[i];
		if (ch != ' ' && ch != '\n' && ch != '\r' && ch != '\t') {
			empty = false;
			break;
		}
	}
	if (!empty) {
		struct kd_error *perr = NULL;
		if (kd_json_parse(x->rbuf.p, x->rbuf.len, c->max_response, "response", &body,
		                  &perr) < 0) {
			if (status >= 200 && status < 300) {
				int rc = kd_error_set(err, EBADMSG, status, "%s: %s", x->desc,
				                      kd_error_msg(perr));
				kd_error_free(perr);
				return rc;
			}
			kd_error_free(perr);
			body = NULL;
		}
	}
	if (status < 200 || status >= 300) {
		int rc = xfer_error(c, x, CURLE_OK, status, body, err);
		*bodyp = body;
		return rc;
	}
	*bodyp = body;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Easy handle setup                                                                           */

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;
	if (x->is_stream) {
		if (x->closed)
			return 0;
		long status = 0;
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 200 && status < 300) {
			if (x->on_data(ptr, n, x->arg) != 0 || x->closed)
				return 0;
			return n;
		}
		if (x->rbuf.len + n > MAX_ERROR_BODY)
			return n; /* keep the start of an error body only */
		buf_add(&x->rbuf, ptr, n);
		return n;
	}
	if (x->rbuf.len + n > x->c->max_response) {
		x->too_big = true;
		return 0;
	}
	buf_add(&x->rbuf, ptr, n);
	return n;
}

static const char *verb_name(enum kd_k8s_verb v)
{
	switch (v) {
	case KD_K8S_GET:
		return "get";
	case KD_K8S_LIST:
		return "list";
	case KD_K8S_CREATE:
		return "create";
	case KD_K8S_UPDATE:
		return "update";
	case KD_K8S_DELETE:
		return "delete";
	case KD_K8S_PATCH:
		return "patch";
	}
	return "request";
}

static const char *patch_ctype(enum kd_k8s_patch_type t)
{
	switch (t) {
	case KD_K8S_PATCH_JSON:
		return "application/json-patch+json";
	case KD_K8S_PATCH_STRATEGIC:
		return "application/strategic-merge-patch+json";
	case KD_K8S_PATCH_MERGE:
	default:
		return "application/merge-patch+json";
	}
}

static void qsep(struct buf *u, bool *q)
{
	buf_adds(u, *q ? "&" : "?");
	*q = true;
}

/* Fills x (method, url_base, body, desc) from req. 0 or -EINVAL. */
static int xfer_prepare(struct kd_k8s *c, struct xfer *x, const struct kd_k8s_request *req,
                        struct kd_error **err)
{
	if (!req || !req->res || !req->res->resource || !req->res->version)
		return kd_error_set(err, EINVAL, 0, "k8s request: missing resource");
	const struct kd_k8s_resource *res = req->res;
	const char *vn = verb_name(req->verb);
	const char *name = req->name;
	if (req->verb == KD_K8S_CREATE && req->body) {
		name = kd_json_get_string(req->body, "metadata.name");
		if (!name)
			name = kd_json_get_string(req->body, "metadata.generateName");
	}
	const char *ns = res->namespaced ? req->ns : NULL;
	if (res->namespaced && (!ns || !*ns) && req->verb == KD_K8S_CREATE)
		ns = kd_json_get_string(req->body, "metadata.namespace");
	struct buf d = {0};
	buf_adds(&d, vn);
	buf_adds(&d, " ");
	buf_adds(&d, res->resource);
	if (req->subresource && *req->subresource) {
		buf_adds(&d, "/");
		buf_adds(&d, req->subresource);
	}
	if ((ns && *ns) || (name && *name)) {
		buf_adds(&d, " ");
		if (ns && *ns) {
			buf_adds(&d, ns);
			if (name && *name)
				buf_adds(&d, "/");
		}
		if (name && *name)
			buf_adds(&d, name);
	}
	x->desc = d.p;

	bool needs_name = req->verb == KD_K8S_GET || req->verb == KD_K8S_UPDATE ||
	                  req->verb == KD_K8S_DELETE || req->verb == KD_K8S_PATCH;
	if (needs_name && (!req->name || !*req->name))
		return kd_error_set(err, EINVAL, 0, "%s: missing name", x->desc);
	bool needs_body =
	    req->verb == KD_K8S_CREATE || req->verb == KD_K8S_UPDATE || req->verb == KD_K8S_PATCH;
	if (needs_body && !req->body)
		return kd_error_set(err, EINVAL, 0, "%s: missing body", x->desc);
	if (res->namespaced && (!ns || !*ns) && req->verb != KD_K8S_LIST)
		return kd_error_set(err, EINVAL, 0, "%s: missing namespace", x->desc);

	kd_autofree char *path = kd_k8s_path(
	    res, ns, req->verb == KD_K8S_CREATE || req->verb == KD_K8S_LIST ? NULL : req->name,
	    req->subresource);
	struct buf u = {0};
	buf_adds(&u, c->cfg->server);
	buf_adds(&u, path);
	bool q = false;
	if (req->verb == KD_K8S_LIST) {
		qsep(&u, &q);
		char lim[32];
		snprintf(lim, sizeof(lim), "limit=%ld",
		         req->limit > 0 ? req->limit : (long)DEFAULT_LIST_LIMIT);
		buf_adds(&u, lim);
		if (req->label_selector && *req->label_selector) {
			qsep(&u, &q);
			buf_adds(&u, "labelSelector=");
			buf_add_escaped(&u, req->label_selector);
		}
		if (req->field_selector && *req->field_selector) {
			qsep(&u, &q);
			buf_adds(&u, "fieldSelector=");
			buf_add_escaped(&u, req->field_selector);
		}
		x->is_list = true;
	}
	if (req->query && *req->query) {
		qsep(&u, &q);
		buf_adds(&u, req->query);
	}
	if (!q)
		buf_adds(&u, "?");
	x->url_base = u.p;

	switch (req->verb) {
	case KD_K8S_GET:
	case KD_K8S_LIST:
		x->method = "GET";
		break;
	case KD_K8S_CREATE:
		x->method = "POST";
		x->ctype = "application/json";
		break;
	case KD_K8S_UPDATE:
		x->method = "PUT";
		x->ctype = "application/json";
		break;
	case KD_K8S_DELETE:
		x->method = "DELETE";
		x->ctype = req->body ? "application/json" : NULL;
		break;
	case KD_K8S_PATCH:
		x->method = "PATCH";
		x->ctype = patch_ctype(req->patch_type);
		break;
	}
	if (req->body && req->verb != KD_K8S_GET && req->verb != KD_K8S_LIST)
		x->body = kd_json_dumps(req->body);
	return 0;
}

static void xfer_free(struct xfer *x)
{
	if (!x)
		return;
	if (x->easy)
		curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->hdrs);
	free(x->url_base);
	free(x->body);
	free(x->desc);
	free(x->cont);
	free(x->list_kind);
	if (x->items)
		json_object_put(x->items);
	buf_free(&x->rbuf);
	free(x);
}

/* Configures easy handle e for the next request of x (page with x->cont for LIST). */
static int setup_easy(struct kd_k8s *c, struct xfer *x, CURL *e, struct kd_error **err)
{
	x->easy = e;
	buf_free(&x->rbuf);
	x->too_big = false;
	x->errbuf[0] = '\0';
	curl_slist_free_all(x->hdrs);
	x->hdrs = NULL;

	kd_autofree char *url = NULL;
	if (x->cont) {
		struct buf u = {0};
		buf_adds(&u, x->url_base);
		size_t l = strlen(x->url_base);
		if (l && x->url_base[l - 1] != '?')
			buf_adds(&u, "&");
		buf_adds(&u, "continue=");
		buf_add_escaped(&u, x->cont);
		url = u.p;
	} else {
		size_t l = strlen(x->url_base);
		url = kd_xstrndup(x->url_base, (l && x->url_base[l - 1] == '?') ? l - 1 : l);
	}

	struct kd_error *terr = NULL;
	pthread_mutex_lock(&c->auth_lock);
	const char *tok = current_token(c, &terr);
	kd_autofree char *auth = tok && *tok ? kd_xasprintf("Authorization: Bearer %s", tok) : NULL;
	pthread_mutex_unlock(&c->auth_lock);
	if (terr) {
		int rc = kd_error_wrap(&terr, "%s", x->desc);
		propagate(err, terr);
		return rc;
	}

	x->hdrs = curl_slist_append(x->hdrs, "Accept: application/json");
	x->hdrs = curl_slist_append(x->hdrs, "Expect:");
	if (x->ctype) {
		kd_autofree char *ct = kd_xasprintf("Content-Type: %s", x->ctype);
		x->hdrs = curl_slist_append(x->hdrs, ct);
	}
	if (auth)
		x->hdrs = curl_slist_append(x->hdrs, auth);
	if (!x->hdrs)
		abort();

	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_SHARE, c->share);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
	                 c->http2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
	/* HTTP/2: a burst of calls waits for a connection being set up to multiplex on, instead of
	 * opening (and TLS-handshaking, on the loop) one connection per call; kd_k8s_warm opens the
	 * pool beforehand. */
	if (c->http2)
		curl_easy_setopt(e, CURLOPT_PIPEWAIT, x->warm ? 0L : 1L);
	if (x->is_stream) {
		if (x->low_speed_s) {
			curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
			curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)x->low_speed_s);
		}
	} else {
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
		curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_response);
	}
	const struct kd_k8s_config *cfg = c->cfg;
	if (cfg->ca_data) {
		struct curl_blob blob = {cfg->ca_data, cfg->ca_len, CURL_BLOB_COPY};
		curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
	} else if (cfg->ca_file) {
		curl_easy_setopt(e, CURLOPT_CAINFO, cfg->ca_file);
	}
	if (cfg->insecure_skip_tls_verify) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (cfg->cert_data) {
		struct curl_blob blob = {cfg->cert_data, cfg->cert_len, CURL_BLOB_COPY};
		curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &blob);
		curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
	} else if (cfg->cert_file) {
		curl_easy_setopt(e, CURLOPT_SSLCERT, cfg->cert_file);
		curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
	}
	if (cfg->key_data) {
		struct curl_blob blob = {cfg->key_data, cfg->key_len, CURL_BLOB_COPY};
		curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &blob);
		curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
	} else if (cfg->key_file) {
		curl_easy_setopt(e, CURLOPT_SSLKEY, cfg->key_file);
		curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
	}
	if (!strcmp(x->method, "POST")) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
	} else if (strcmp(x->method, "GET")) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->method);
	}
	if (x->body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(x->body));
	} else if (!strcmp(x->method, "POST")) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
	}
	return 0;
}

/* After a successful LIST page: merges its items into x->items and sets x->cont for the next
 * page. Returns true when the list is complete; *final is then set to the merged list. */
static bool list_page(struct xfer *x, struct json_object *page, struct json_object **final)
{
	if (!x->items)
		x->items = json_object_new_array();
	struct json_object *items = kd_json_get_array(page, "items");
	size_t n = items ? json_object_array_length(items) : 0;
	for (size_t i = 0; i < n; i++)
		json_object_array_add(x->items,
		                      json_object_get(json_object_array_get_idx(items, i)));
	if (!x->list_kind) {
		const char *k = kd_json_get_string(page, "kind");
		x->list_kind = kd_xstrdup(k ? k : "List");
	}
	const char *cont = kd_json_get_string(page, "metadata.continue");
	free(x->cont);
	x->cont = NULL;
	if (cont && *cont) {
		x->cont = kd_xstrdup(cont);
		return false;
	}
	struct json_object *list = json_object_new_object();
	json_object_object_add(list, "kind", json_object_new_string(x->list_kind));
	const char *api = kd_json_get_string(page, "apiVersion");
	if (api)
		json_object_object_add(list, "apiVersion", json_object_new_string(api));
	struct json_object *md = json_object_new_object();
	const char *rv = kd_json_get_string(page, "metadata.resourceVersion");
	if (rv)
		json_object_object_add(md, "resourceVersion", json_object_new_string(rv));
	json_object_object_add(list, "metadata", md);
	json_object_object_add(list, "items", x->items);
	x->items = NULL;
	*final = list;
	return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Sync calls                                                                                  */

int kd_k8s_do(struct kd_k8s *c, const struct kd_k8s_request *req, struct json_object **out,
              struct kd_error **err)
{
	struct xfer *x = kd_xcalloc(1, sizeof(*x));
	x->c = c;
	int rc = xfer_prepare(c, x, req, err);
	if (rc < 0) {
		xfer_free(x);
		return rc;
	}
	struct json_object *result = NULL;
	pthread_mutex_lock(&c->sync_lock);
	for (unsigned pages = 0;; pages++) {
		uint64_t wait;
		bool throttled = false;
		while ((wait = rl_take(c)) != 0) {
			throttled = true;
			struct timespec ts = {(time_t)(wait / 1000000000ull),
			                      (long)(wait % 1000000000ull)};
			nanosleep(&ts, NULL);
		}
		if (throttled)
			__atomic_add_fetch(&c->stats.throttled, 1, __ATOMIC_RELAXED);
		curl_easy_reset(c->sync_easy);
		rc = setup_easy(c, x, c->sync_easy, err);
		if (rc < 0)
			break;
		__atomic_add_fetch(&c->stats.requests, 1, __ATOMIC_RELAXED);
		CURLcode cc = curl_easy_perform(c->sync_easy);
		long status = 0;
		curl_easy_getinfo(c->sync_easy, CURLINFO_RESPONSE_CODE, &status);
		count_response(c, status);
		struct json_object *body = NULL;
		rc = xfer_result(c, x, cc, status, &body, err);
		if (rc < 0) {
			if (body)
				json_object_put(body);
			break;
		}
		if (!x->is_list) {
			result = body;
			break;
		}
		struct json_object *final = NULL;
		bool done = list_page(x, body, &final);
		if (body)
			json_object_put(body);
		if (done) {
			result = final;
			break;
		}
		if (pages > 100000) {
			rc = kd_error_set(err, ELOOP, 0, "%s: too many pages", x->desc);
			break;
		}
	}
	/* Drop references to x (headers, buffers) but keep the handle's connections alive. */
	curl_easy_reset(c->sync_easy);
	x->easy = NULL; /* the sync handle is the client's */
	pthread_mutex_unlock(&c->sync_lock);
	xfer_free(x);
	if (rc < 0)
		return rc;
	if (out)
		*out = result;
	else if (result)
		json_object_put(result);
	return 0;
}

int kd_k8s_get(struct kd_k8s *c, const struct kd_k8s_resource *res, const char *ns,
               const char *name, struct json_object **out, struct kd_error **err)
{
	struct kd_k8s_request r = {.verb = KD_K8S_GET, .res = res, .ns = ns, .name = name};
	return kd_k8s_do(c, &r, out, err);
}

int kd_k8s_list(struct kd_k8s *c, const struct kd_k8s_resource *res, const char *ns,
                const char *label_selector, const char *field_selector, struct json_object **out,
                struct kd_error **err)
{
	struct kd_k8s_request r = {.verb = KD_K8S_LIST,
	                           .res = res,
	                           .ns = ns,
	                           .label_selector = label_selector,
	                           .field_selector = field_selector};
	return kd_k8s_do(c, &r, out, err);
}

int kd_k8s_create(struct kd_k8s *c, const struct kd_k8s_resource *res, const char *ns,
                  struct json_object *obj, struct json_object **out, struct kd_error **err)
{
	struct kd_k8s_request r = {.verb = KD_K8S_CREATE, .res = res, .ns = ns, .body = obj};
	return kd_k8s_do(c, &r, out, err);
}

int kd_k8s_update(struct kd_k8s *c, const struct kd_k8s_resource *res, const char *ns,
                  const char *name, const char *subresource, struct json_object *obj,
                  struct json_object **out, struct kd_error **err)
{
	struct kd_k8s_request r = {.verb = KD_K8S_UPDATE,
	                           .res = res,
	                           .ns = ns,
	                           .name = name,
	                           .subresource = subresource,
	                           .body = obj};
	return kd_k8s_do(c, &r, out, err);
}

int kd_k8s_patch(struct kd_k8s *c, const struct kd_k8s_resource *res, const char *ns,
                 const char *name, const char *subresource, enum kd_k8s_patch_type type,
                 struct json_object *patch, struct json_object **out, struct kd_error **err)
{
	struct kd_k8s_request r = {.verb = KD_K8S_PATCH,
	                           .res = res,
	                           .ns = ns,
	                           .name = name,
	                           .subresource = subresource,
	                           .patch_type = type,
	                           .body = patch};
	return kd_k8s_do(c, &r, out, err);
}

int kd_k8s_delete(struct kd_k8s *c, const struct kd_k8s_resource *res, const char *ns,
                  const char *name, struct json_object *delete_options, struct json_object **out,
                  struct kd_error **err)
{
	struct kd_k8s_request r = {
	    .verb = KD_K8S_DELETE, .res = res, .ns = ns, .name = name, .body = delete_options};
	return kd_k8s_do(c, &r, out, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Async: curl multi on the loop                                                               */

static void kick(struct kd_k8s *c, uint64_t after_ms)
{
	if (!c->kick)
		return;
	if (kd_loop_timer_pending(c->kick) && after_ms > 0)
		return;
	kd_loop_timer_start(c->kick, after_ms);
}

static void finish_call(struct kd_k8s *c, struct xfer *x, struct kd_k8s_response *resp,
                        struct kd_error *err)
{
	__atomic_sub_fetch(&c->stats.pending, 1, __ATOMIC_RELAXED);
	if (x->cb)
		x->cb(resp, err, x->arg);
}

/* Starts transfer x on its multi handle. */
static void start_xfer(struct kd_k8s *c, struct xfer *x)
{
	struct kd_error *err = NULL;
	CURL *e = x->easy ? x->easy : curl_easy_init();
	if (!e)
		abort();
	if (x->easy)
		curl_easy_reset(e);
	if (setup_easy(c, x, e, &err) < 0) {
		xlist_remove(&c->active, x);
		x->active = false;
		if (x->is_stream) {
			if (x->on_done)
				x->on_done(err, x->arg);
		} else {
			finish_call(c, x, NULL, err);
		}
		kd_error_free(err);
		xfer_free(x);
		return;
	}
	__atomic_add_fetch(&c->stats.requests, 1, __ATOMIC_RELAXED);
	if (kd_curlm_add(x->is_stream ? c->strm.cm : c->req.cm, e) < 0) {
		kd_log_error("k8s: curl_multi_add_handle failed");
		abort();
	}
}

static void dispatch(struct kd_k8s *c)
{
	while (c->queue.head && !c->closing) {
		struct xfer *x = c->queue.head;
		if (!x->is_stream) {
			uint64_t wait = rl_take(c);
			if (wait) {
				__atomic_add_fetch(&c->stats.throttled, 1, __ATOMIC_RELAXED);
				kick(c, (wait + 999999) / 1000000);
				return;
			}
		}
		xlist_remove(&c->queue, x);
		x->queued = false;
		xlist_push(&c->active, x);
		x->active = true;
		start_xfer(c, x);
	}
}

static void kick_cb(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	dispatch(arg);
}

static void complete_xfer(struct kd_k8s *c, struct xfer *x, CURLcode cc)
{
	long status = 0;
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	count_response(c, status);
	if (x->is_stream) {
		xlist_remove(&c->active, x);
		x->active = false;
		if (x->closed) {
			xfer_free(x);
			return;
		}
		struct kd_error *err = NULL;
		if (cc == CURLE_WRITE_ERROR)
			kd_error_set(&err, ECANCELED, status, "%s: aborted by consumer", x->desc);
		else if (cc != CURLE_OK)
			xfer_error(c, x, cc, status, NULL, &err);
		else if (status < 200 || status >= 300) {
			struct json_object *body = NULL;
			xfer_result(c, x, CURLE_OK, status, &body, &err);
			if (body)
				json_object_put(body);
		}
		if (x->on_done)
			x->on_done(err, x->arg);
		kd_error_free(err);
		xfer_free(x);
		return;
	}
	struct kd_error *err = NULL;
	struct json_object *body = NULL;
	int rc = xfer_result(c, x, cc, status, &body, &err);
	if (rc == 0 && x->is_list) {
		struct json_object *final = NULL;
		bool done = list_page(x, body, &final);
		if (body)
			json_object_put(body);
		body = NULL;
		if (!done) {
			/* Next page: back to the queue, reusing the easy handle. */
			xlist_remove(&c->active, x);
			x->active = false;
			xlist_push(&c->queue, x);
			x->queued = true;
			kick(c, 0);
			return;
		}
		body = final;
	}
	xlist_remove(&c->active, x);
	x->active = false;
	struct kd_k8s_response resp = {.http_status = status, .body = body};
	resp.resource_version = kd_json_get_string(body, "metadata.resourceVersion");
	finish_call(c, x, (rc == 0 || body) ? &resp : NULL, err);
	if (resp.body)
		json_object_put(resp.body);
	kd_error_free(err);
	xfer_free(x);
}

static void multi_done(void *ud, CURL *e, CURLcode cc)
{
	struct kmulti *m = ud;
	struct xfer *x = NULL;
	curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
	complete_xfer(m->c, x, cc);
}

static void multi_after(void *ud)
{
	struct kmulti *m = ud;
	struct kd_k8s *c = m->c;
	/* Streams closed from inside curl callbacks: detach now. */
	for (struct xfer *x = c->active.head; x;) {
		struct xfer *next = x->next;
		if (x->is_stream && x->closed && !in_curl(c)) {
			curl_multi_remove_handle(c->strm.multi, x->easy);
			xlist_remove(&c->active, x);
			xfer_free(x);
		}
		x = next;
	}
	if (c->queue.head && !in_curl(c))
		dispatch(c);
}

int kd_k8s_submit(struct kd_k8s *c, const struct kd_k8s_request *req, kd_k8s_done_cb cb, void *arg,
                  struct kd_error **err)
{
	if (!c->loop)
		return kd_error_set(err, EINVAL, 0,
		                    "k8s: asynchronous call on a client without loop");
	if (c->closing)
		return kd_error_set(err, ECANCELED, 0, "k8s: client is shutting down");
	struct xfer *x = kd_xcalloc(1, sizeof(*x));
	x->c = c;
	int rc = xfer_prepare(c, x, req, err);
	if (rc < 0) {
		xfer_free(x);
		return rc;
	}
	x->cb = cb;
	x->arg = arg;
	xlist_push(&c->queue, x);
	x->queued = true;
	__atomic_add_fetch(&c->stats.pending, 1, __ATOMIC_RELAXED);
	kick(c, 0);
	return 0;
}

static void warm_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	(void)resp;
	(void)arg;
	if (err)
		kd_log_debug("k8s: warm-up connection: %s", kd_error_msg(err));
}

int kd_k8s_warm(struct kd_k8s *c, unsigned n, struct kd_error **err)
{
	if (!c->loop)
		return kd_error_set(err, EINVAL, 0, "k8s: warm-up on a client without loop");
	if (c->closing)
		return kd_error_set(err, ECANCELED, 0, "k8s: client is shutting down");
	n = KD_MIN(n, c->max_connections);
	for (unsigned i = 0; i < n; i++) {
		struct xfer *x = kd_xcalloc(1, sizeof(*x));
		x->c = c;
		x->warm = true;
		x->method = "GET";
		x->url_base = kd_xasprintf("%s/version?", c->cfg->server);
		x->desc = kd_xstrdup("get /version (warm-up)");
		x->cb = warm_done;
		xlist_push(&c->queue, x);
		x->queued = true;
		__atomic_add_fetch(&c->stats.pending, 1, __ATOMIC_RELAXED);
	}
	kick(c, 0);
	return 0;
}

int kd_k8s_stream_open(struct kd_k8s *c, const char *path_and_query, unsigned low_speed_timeout_s,
                       kd_k8s_stream_data_cb on_data, kd_k8s_stream_done_cb on_done, void *arg,
                       struct kd_k8s_stream **out, struct kd_error **err)
{
	if (!c->loop)
		return kd_error_set(err, EINVAL, 0, "k8s: stream on a client without loop");
	if (c->closing)
		return kd_error_set(err, ECANCELED, 0, "k8s: client is shutting down");
	if (!path_and_query || path_and_query[0] != '/' || !on_data)
		return kd_error_set(err, EINVAL, 0, "k8s: stream: bad path or callback");
	struct kd_k8s_stream *s = kd_xcalloc(1, sizeof(*s));
	struct xfer *x = &s->x;
	x->c = c;
	x->is_stream = true;
	x->method = "GET";
	x->url_base = kd_xasprintf("%s%s", c->cfg->server, path_and_query);
	const char *q = strchr(path_and_query, '?');
	x->desc = kd_xasprintf("watch %.*s",
	                       (int)(q ? (size_t)(q - path_and_query) : strlen(path_and_query)),
	                       path_and_query);
	x->on_data = on_data;
	x->on_done = on_done;
	x->arg = arg;
	x->low_speed_s = low_speed_timeout_s;
	xlist_push(&c->queue, x);
	x->queued = true;
	kick(c, 0);
	*out = s;
	return 0;
}

void kd_k8s_stream_close(struct kd_k8s_stream *s)
{
	if (!s)
		return;
	struct xfer *x = &s->x;
	struct kd_k8s *c = x->c;
	x->on_done = NULL;
	x->closed = true;
	if (x->queued) {
		xlist_remove(&c->queue, x);
		xfer_free(x);
		return;
	}
	if (x->active && !in_curl(c)) {
		curl_multi_remove_handle(c->strm.multi, x->easy);
		xlist_remove(&c->active, x);
		xfer_free(x);
	}
	/* else: inside a curl callback; the write callback aborts it and multi_after frees it. */
}

void kd_k8s_free(struct kd_k8s *c)
{
	if (!c)
		return;
	c->closing = true;
	struct xlist *lists[] = {&c->queue, &c->active};
	for (size_t i = 0; i < KD_ARRAY_SIZE(lists); i++) {
		struct xfer *next = lists[i]->head;
		lists[i]->head = lists[i]->tail = NULL;
		while (next) {
			struct xfer *x = next;
			next = x->next;
			if (x->easy && x->active)
				curl_multi_remove_handle(
				    x->is_stream ? c->strm.multi : c->req.multi, x->easy);
			if (!x->is_stream) {
				struct kd_error *err = NULL;
				kd_error_set(&err, ECANCELED, 0, "%s: cancelled (client closed)",
				             x->desc);
				finish_call(c, x, NULL, err);
				kd_error_free(err);
			}
			xfer_free(x);
		}
	}
	if (c->loop) {
		kd_curlm_free(c->req.cm);
		kd_curlm_free(c->strm.cm);
		kd_loop_timer_free(c->kick);
	}
	curl_easy_cleanup(c->sync_easy);
	curl_share_cleanup(c->share);
	pthread_mutex_destroy(&c->share_lock);
	pthread_mutex_destroy(&c->sync_lock);
	pthread_mutex_destroy(&c->auth_lock);
	kd_k8s_config_free(c->cfg);
	kd_k8s_token_fini(&c->token);
	free(c->user_agent);
	free(c);
}

int kd_k8s_open(const char *kubeconfig, const char *context, struct kd_loop *loop,
                const char *user_agent, struct kd_k8s_config **cfg_out, struct kd_k8s **out,
                struct kd_error **err)
{
	*out = NULL;
	int rc = kd_k8s_config_load(kubeconfig, context, cfg_out, err);
	if (rc < 0)
		return kd_error_wrap(err, "Kubernetes configuration");
	struct kd_k8s_opts o = {.user_agent = user_agent};
	rc = kd_k8s_new(*cfg_out, loop, &o, out, err);
	if (rc < 0)
		return kd_error_wrap(err, "Kubernetes client");
	return 0;
}
