/* lib/kd_http.c: HTTP server (libmicrohttpd, external epoll) and forwarder (curl multi) on one
 * kd_loop (see kd/http.h).
 *
 * libmicrohttpd calls the access handler for a request: once when its headers are in, once per
 * body chunk, and once more (no data) when the body is complete; a response can be queued from
 * any of these calls. A connection can be suspended only from the access handler or the content
 * reader, and resumed from anywhere. So every decision is taken at the end of a handler or
 * reader call from the request's state: queue a response if one is ready, else suspend if there
 * is nothing to do until an event of ours (the caller answering or forwarding, the upstream's
 * headers or body bytes, curl reading the request body); every such event resumes. */
#include "kd/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kd/common.h"
#include "kd/curlm.h"
#include "kd/log.h"
#include "kd_http_priv.h"

#define BUF_CAP    (64u * 1024u) /* each direction's buffer between the two libraries */
#define READ_BLOCK (16u * 1024u) /* what the content reader is asked for at most */

struct kd_http_server {
	struct kd_loop *loop;
	struct MHD_Daemon *d;
	int epfd;
	/* after kd_http_server_set_tls: the daemon of the previous certificate, no longer
	 * accepting, serving its open connections until they end */
	struct MHD_Daemon *old_d;
	int old_epfd;
	int lfd; /* the listening socket, ours (the daemons are given it) */
	bool v6;
	unsigned idle_timeout_s;
	size_t body_max;
	char *tls_cert, *tls_key; /* PEM, or NULL: plain HTTP */
	char *old_cert, *old_key; /* old_d's, kept while it runs */
	int port;
	struct kd_timer *timer; /* libmicrohttpd's next timeout, or a 0-ms kick after a resume */
	kd_http_handler_cb handler;
	void *ud;
	struct kd_curlm *cm;
	unsigned connect_ms;
	struct kd_http_req *reqs; /* live requests */
	CURL *easy_pool[64];      /* idle easy handles, reset (their allocations reused) */
	unsigned n_easy;
	char *buf_pool[128]; /* idle BUF_CAP buffers: no allocator churn per request */
	unsigned n_buf;
	bool stopping;
};

/* Forward state: the upstream side of a request. */
struct fwd {
	CURL *e;
	struct curl_slist *hdrs;
	kd_http_fwd_cb done;
	void *ud;
	char errbuf[CURL_ERROR_SIZE];
	bool in_multi;
	bool send_paused; /* curl's read callback paused: no request body bytes yet */
	bool recv_paused; /* curl's write callback paused: the client-bound buffer is full */
	bool headers_done;
	bool up_done, up_failed;
	int status;
	long long resp_len;           /* the upstream's Content-Length, or -1 */
	struct curl_slist *resp_hdrs; /* "Name: value" lines to relay */
};

struct kd_http_req {
	struct kd_http_req *prev, *next;
	struct kd_http_server *s;
	struct MHD_Connection *conn;
	char *target;
	const char *method; /* libmicrohttpd's, valid while the connection is */
	char peer[INET6_ADDRSTRLEN];
	bool delivered;  /* the handler has seen it */
	bool body_done;  /* the whole request body was received */
	bool in_handler; /* inside an access-handler call */
	bool suspended;  /* connection suspended by us */
	bool answered;   /* a response was queued (ours or the upstream's) */
	bool fwd_over;   /* a reached forward ended (done was called) */
	bool has_body;
	bool headers_seen;  /* body_max mode: the first handler call happened */
	long long body_len; /* Content-Length, or -1 (chunked / none) */
	char *body;         /* body_max mode: the whole request body, NUL-terminated */
	size_t body_got;
	unsigned long long body_sent;
	struct MHD_Response *pending; /* ours, waiting for a handler call to queue it */
	int pending_status;
	kd_http_abort_cb abort_cb;
	void *abort_ud;
	struct fwd *f;
	/* client -> upstream bytes */
	char *in;
	size_t in_off, in_len;
	/* upstream -> client bytes */
	char *out;
	size_t out_off, out_len;
};

static char *buf_get(struct kd_http_server *s)
{
	return s->n_buf ? s->buf_pool[--s->n_buf] : kd_xmalloc(BUF_CAP);
}

static void buf_put(struct kd_http_server *s, char *b)
{
	if (!b)
		return;
	if (s->n_buf < KD_ARRAY_SIZE(s->buf_pool) && !s->stopping)
		s->buf_pool[s->n_buf++] = b;
	else
		free(b);
}

static const char *const hop_by_hop[] = {
    "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
    "TE",         "Trailer",    "Trailers",         "Transfer-Encoding",  "Upgrade",
};

bool kd_http_hop_by_hop(const char *name, size_t len, const char *connection)
{
	for (size_t i = 0; i < KD_ARRAY_SIZE(hop_by_hop); i++)
		if (strlen(hop_by_hop[i]) == len && strncasecmp(hop_by_hop[i], name, len) == 0)
			return true;
	/* Tokens of the Connection header name more hop-by-hop headers. */
	for (const char *p = connection; p && *p;) {
		p += strspn(p, " \t,");
		size_t n = strcspn(p, " \t,");
		if (n == len && n > 0 && strncasecmp(p, name, len) == 0)
			return true;
		p += n;
	}
	return false;
}

/* ---- loop glue ------------------------------------------------------------------------------ */

static void old_daemon_stop(struct kd_http_server *s);

static void run_mhd(struct kd_http_server *s)
{
	MHD_run(s->d);
	MHD_UNSIGNED_LONG_LONG to = 0;
	bool have = MHD_get_timeout(s->d, &to) == MHD_YES;
	if (s->old_d) {
		MHD_run(s->old_d);
		const union MHD_DaemonInfo *di =
		    MHD_get_daemon_info(s->old_d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
		MHD_UNSIGNED_LONG_LONG old_to = 0;
		if (!di || di->num_connections == 0)
			old_daemon_stop(s); /* its last connection ended */
		else if (MHD_get_timeout(s->old_d, &old_to) == MHD_YES && (!have || old_to < to)) {
			to = old_to;
			have = true;
		}
	}
	if (have)
		kd_loop_timer_start(s->timer, (uint64_t)to);
	else
		kd_loop_timer_stop(s->timer);
}

static void ep_cb(struct kd_loop *loop, int fd, unsigned events, void *arg)
{
	(void)loop;
	(void)fd;
	(void)events;
	run_mhd(arg);
}

static void timer_cb(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	run_mhd(arg);
}

/* Wakes a request suspended by us: libmicrohttpd calls its handler or reader again. Inside a
 * handler call the end of that call decides instead. */
static void wake(struct kd_http_req *r)
{
	if (!r->suspended || r->in_handler || r->s->stopping)
		return;
	r->suspended = false;
	MHD_resume_connection(r->conn);
	kd_loop_timer_start(r->s->timer, 0);
}

static void suspend(struct kd_http_req *r)
{
	if (r->suspended)
		return;
	r->suspended = true;
	MHD_suspend_connection(r->conn);
}

/* ---- forward: curl side --------------------------------------------------------------------- */

static void set_pause(struct fwd *f)
{
	int mask = (f->send_paused ? CURLPAUSE_SEND : 0) | (f->recv_paused ? CURLPAUSE_RECV : 0);
	curl_easy_pause(f->e, mask);
}

static size_t read_cb(char *buf, size_t size, size_t nitems, void *arg)
{
	struct kd_http_req *r = arg;
	size_t want = size * nitems;
	size_t have = r->in_len - r->in_off;
	if (have == 0) {
		if (r->body_done)
			return 0;
		r->f->send_paused = true;
		return CURL_READFUNC_PAUSE;
	}
	size_t n = KD_MIN(want, have);
	memcpy(buf, r->in + r->in_off, n);
	r->in_off += n;
	r->body_sent += n;
	if (r->in_off == r->in_len)
		r->in_off = r->in_len = 0;
	wake(r); /* room for more of the client's body */
	return n;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct kd_http_req *r = arg;
	struct fwd *f = r->f;
	size_t n = size * nmemb;
	if (r->out_off > 0 && r->out_off == r->out_len)
		r->out_off = r->out_len = 0;
	if (r->out_off > 0 && BUF_CAP - r->out_len < n) { /* compact */
		memmove(r->out, r->out + r->out_off, r->out_len - r->out_off);
		r->out_len -= r->out_off;
		r->out_off = 0;
	}
	if (BUF_CAP - r->out_len < n && r->out_len > 0) {
		f->recv_paused = true;
		return CURL_WRITEFUNC_PAUSE;
	}
	if (n > BUF_CAP)
		return 0; /* never: curl hands over at most CURL_MAX_WRITE_SIZE (16 KiB) at once */
	if (!r->out)
		r->out = buf_get(r->s);
	memcpy(r->out + r->out_len, ptr, n);
	r->out_len += n;
	wake(r);
	return n;
}

int kd_http_hline_parse(const char *line, size_t len, struct kd_http_hline *out)
{
	memset(out, 0, sizeof(*out));
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	if (len == 0 || (len >= 5 && strncmp(line, "HTTP/", 5) == 0))
		return 0;
	const char *colon = memchr(line, ':', len);
	if (!colon || colon == line)
		return -1;
	const char *v = colon + 1, *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	out->name = line;
	out->name_len = (size_t)(colon - line);
	out->value = v;
	out->value_len = (size_t)(end - v);
	return 1;
}

int kd_http_content_length(const char *v, size_t len, long long *out)
{
	if (len == 0 || len > 18)
		return -1;
	long long n = 0;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	*out = n;
	return 0;
}

static bool name_is(const struct kd_http_hline *h, const char *name)
{
	return strlen(name) == h->name_len && strncasecmp(h->name, name, h->name_len) == 0;
}

static size_t header_cb(char *line, size_t size, size_t nitems, void *arg)
{
	struct kd_http_req *r = arg;
	struct fwd *f = r->f;
	size_t n = size * nitems;
	struct kd_http_hline h;
	int kind = kd_http_hline_parse(line, n, &h);
	if (kind < 0)
		return n;
	if (kind == 0) {
		size_t len = n;
		while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
			len--;
		if (len > 0) { /* a status line: a new header block */
			curl_slist_free_all(f->resp_hdrs);
			f->resp_hdrs = NULL;
			f->resp_len = -1;
			return n;
		}
		long code = 0; /* end of a header block */
		curl_easy_getinfo(f->e, CURLINFO_RESPONSE_CODE, &code);
		if (code >= 100 && code < 200)
			return n; /* 100 Continue, 103 Early Hints: the final response follows */
		f->status = (int)code;
		f->headers_done = true;
		wake(r);
		return n;
	}
	if (name_is(&h, "Content-Length")) {
		long long cl;
		if (kd_http_content_length(h.value, h.value_len, &cl) == 0)
			f->resp_len = cl;
		return n;
	}
	if (kd_http_hop_by_hop(h.name, h.name_len, NULL) || name_is(&h, "Date"))
		return n; /* ours: the server writes framing and Date itself */
	kd_autofree char *line_out =
	    kd_xasprintf("%.*s: %.*s", (int)h.name_len, h.name, (int)h.value_len, h.value);
	f->resp_hdrs = curl_slist_append(f->resp_hdrs, line_out);
	return n;
}

static void fwd_free(struct kd_http_server *s, struct fwd *f)
{
	if (!f)
		return;
	if (f->e && s->n_easy < KD_ARRAY_SIZE(s->easy_pool) && !s->stopping) {
		curl_easy_reset(f->e); /* nothing of this request's stays set */
		s->easy_pool[s->n_easy++] = f->e;
	} else if (f->e) {
		curl_easy_cleanup(f->e);
	}
	curl_slist_free_all(f->hdrs);
	curl_slist_free_all(f->resp_hdrs);
	free(f);
}

static struct MHD_Response *text_response(const char *content_type, const char *body, size_t len)
{
	struct MHD_Response *mr =
	    MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (mr && content_type)
		MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	return mr;
}

static bool connect_failed(CURLcode rc, CURL *e)
{
	if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
		return true;
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		curl_off_t ct = 0;
		curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &ct);
		return ct == 0;
	}
	return false;
}

/* Reports the end of a reached forward once. */
static void fwd_report(struct kd_http_req *r, struct kd_http_fwd_result *res)
{
	struct fwd *f = r->f;
	if (r->fwd_over)
		return;
	r->fwd_over = true;
	f->done(f->ud, r, res);
}

static void curl_done(void *ud, CURL *e, CURLcode rc)
{
	(void)ud;
	struct kd_http_req *r = NULL;
	curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
	struct fwd *f = r->f;
	f->in_multi = false;
	long nconn = 0;
	curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &nconn);
	struct kd_http_fwd_result res = {.new_conn = nconn > 0};
	bool reached = f->headers_done || r->body_sent > 0 || !connect_failed(rc, e);
	if (!reached) {
		/* Nothing reached the upstream: the request is the caller's again. */
		char err[CURL_ERROR_SIZE + 64];
		snprintf(err, sizeof(err), "%s", f->errbuf[0] ? f->errbuf : curl_easy_strerror(rc));
		r->f = NULL;
		kd_http_fwd_cb done = f->done;
		void *dud = f->ud;
		fwd_free(r->s, f);
		res.status = 502;
		res.error = err;
		done(dud, r, &res);
		return;
	}
	f->up_done = true;
	f->up_failed = rc != CURLE_OK;
	res.reached = true;
	res.upstream_ok = rc == CURLE_OK;
	res.error = rc == CURLE_OK ? NULL : (f->errbuf[0] ? f->errbuf : curl_easy_strerror(rc));
	if (!f->headers_done && !r->answered) {
		int st = rc == CURLE_OPERATION_TIMEDOUT ? 504 : 502;
		kd_autofree char *body =
		    kd_xasprintf("kd-http: upstream %s: %s\n", st == 504 ? "timed out" : "failed",
		                 res.error ? res.error : "no response");
		r->pending = text_response("text/plain; charset=utf-8", body, strlen(body));
		r->pending_status = st;
		res.status = st;
	} else {
		res.status = f->status;
	}
	wake(r);
	fwd_report(r, &res);
}

/* ---- requests ------------------------------------------------------------------------------- */

/* Frees r, already unlinked from its server's list. */
static void req_destroy(struct kd_http_req *r)
{
	if (r->pending)
		MHD_destroy_response(r->pending);
	fwd_free(r->s, r->f);
	free(r->target);
	free(r->body);
	buf_put(r->s, r->in);
	buf_put(r->s, r->out);
	free(r);
}

static void req_free(struct kd_http_req *r)
{
	struct kd_http_server *s = r->s;
	if (r->prev)
		r->prev->next = r->next;
	else
		s->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	req_destroy(r);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct kd_http_server *s = cls;
	struct kd_http_req *r = kd_xcalloc(1, sizeof(*r));
	r->s = s;
	r->conn = conn;
	r->target = kd_xstrdup(uri ? uri : "/");
	r->body_len = -1;
	r->next = s->reqs;
	if (s->reqs)
		s->reqs->prev = r;
	s->reqs = r;
	return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	struct kd_http_req *r = *con_cls;
	if (!r)
		return;
	*con_cls = NULL;
	bool ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;
	if (r->f && !r->fwd_over) {
		struct fwd *f = r->f;
		if (f->in_multi) {
			kd_curlm_remove(r->s->cm, f->e);
			f->in_multi = false;
		}
		struct kd_http_fwd_result res = {
		    .reached = true,
		    .upstream_ok = ok,
		    .client_aborted = !ok,
		    .status = ok ? f->status : 499,
		    .error = ok ? NULL : "the client went away",
		};
		fwd_report(r, &res);
	} else if (!r->f && !r->answered && r->abort_cb) {
		kd_http_abort_cb cb = r->abort_cb;
		r->abort_cb = NULL;
		cb(r->abort_ud, r);
	}
	req_free(r);
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct kd_http_req *r = cls;
	struct fwd *f = r->f;
	if (!f)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	size_t have = r->out_len - r->out_off;
	if (have > 0) {
		size_t n = KD_MIN(have, max);
		memcpy(buf, r->out + r->out_off, n);
		r->out_off += n;
		if (f->recv_paused && !f->up_done) {
			f->recv_paused = false;
			set_pause(f); /* may deliver more into the buffer at once */
		}
		return (ssize_t)n;
	}
	if (f->up_done)
		return f->up_failed ? MHD_CONTENT_READER_END_WITH_ERROR
		                    : MHD_CONTENT_READER_END_OF_STREAM;
	suspend(r); /* woken by write_cb or curl_done */
	return 0;
}

static enum MHD_Result queue(struct kd_http_req *r, int status, struct MHD_Response *mr)
{
	r->answered = true;
	enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, mr);
	MHD_destroy_response(mr);
	return ret;
}

static enum MHD_Result queue_upstream(struct kd_http_req *r)
{
	struct fwd *f = r->f;
	uint64_t size = f->resp_len >= 0 ? (uint64_t)f->resp_len : MHD_SIZE_UNKNOWN;
	struct MHD_Response *mr =
	    MHD_create_response_from_callback(size, READ_BLOCK, reader, r, NULL);
	if (!mr)
		return MHD_NO;
	for (struct curl_slist *h = f->resp_hdrs; h; h = h->next) {
		char *colon = strchr(h->data, ':');
		if (!colon)
			continue;
		*colon = '\0';
		MHD_add_response_header(mr, h->data, colon + 2);
		*colon = ':';
	}
	return queue(r, f->status, mr);
}

/* Copies as much of the client's body chunk as fits; returns how much was taken. */
static size_t take_body(struct kd_http_req *r, const char *data, size_t len)
{
	if (r->in_off > 0) {
		memmove(r->in, r->in + r->in_off, r->in_len - r->in_off);
		r->in_len -= r->in_off;
		r->in_off = 0;
	}
	size_t n = KD_MIN(len, BUF_CAP - r->in_len);
	if (n == 0)
		return 0;
	if (!r->in)
		r->in = buf_get(r->s);
	memcpy(r->in + r->in_len, data, n);
	r->in_len += n;
	return n;
}

static void deliver(struct kd_http_req *r, const char *method)
{
	struct kd_http_server *s = r->s;
	r->method = method;
	r->delivered = true;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;
		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET,
			          &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
			          r->peer, sizeof(r->peer));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6,
			          &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
			          r->peer, sizeof(r->peer));
	}
	const char *cl = kd_http_req_header(r, "Content-Length");
	const char *te = kd_http_req_header(r, "Transfer-Encoding");
	long long v;
	if (cl && kd_http_content_length(cl, strlen(cl), &v) == 0)
		r->body_len = v;
	r->has_body = r->body_len > 0 || (te && strcasecmp(te, "identity") != 0);
	s->handler(s->ud, r);
}

/* body_max mode: the request is delivered once its whole body is in (kd_http_req_body); a body
 * over body_max is answered 413 at once when Content-Length says so, else the connection is
 * closed when it grows past it. */
static enum MHD_Result collect_body(struct kd_http_req *r, const char *method, const char *data,
                                    size_t *data_size)
{
	size_t max = r->s->body_max;
	if (!r->headers_seen) {
		r->headers_seen = true;
		r->method = method;
		const char *cl = kd_http_req_header(r, "Content-Length");
		long long v;
		if (cl && kd_http_content_length(cl, strlen(cl), &v) == 0 && v > (long long)max) {
			kd_log_warn("http: %s %s: body of %lld bytes refused (at most %zu)", method,
			            r->target, v, max);
			char msg[96];
			int n = snprintf(msg, sizeof(msg), "request body over %zu bytes\n", max);
			return queue(r, 413, text_response("text/plain", msg, (size_t)n));
		}
		r->body = kd_xmalloc(1);
		r->body[0] = '\0';
		return MHD_YES;
	}
	if (r->answered)
		return MHD_YES;
	if (r->delivered) { /* woken: the handler answered */
		*data_size = 0;
		goto answer;
	}
	if (*data_size > 0) {
		if (*data_size > max - r->body_got) {
			kd_log_warn("http: %s %s: body over %zu bytes; closing the connection",
			            method, r->target, max);
			return MHD_NO;
		}
		r->body = kd_xrealloc(r->body, r->body_got + *data_size + 1);
		memcpy(r->body + r->body_got, data, *data_size);
		r->body_got += *data_size;
		r->body[r->body_got] = '\0';
		*data_size = 0;
		return MHD_YES;
	}
	r->body_done = true;
	deliver(r, method);
answer:;
	enum MHD_Result ret = MHD_YES;
	if (r->pending) {
		struct MHD_Response *mr = r->pending;
		r->pending = NULL;
		ret = queue(r, r->pending_status, mr);
	} else if (!r->answered) {
		suspend(r); /* held until the handler answers */
	}
	return ret;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *data,
                                 size_t *data_size, void **con_cls)
{
	(void)cls;
	(void)url;
	(void)version;
	struct kd_http_req *r = *con_cls;
	if (!r)
		return MHD_NO;
	r->conn = conn;
	r->suspended = false; /* we are being called: not suspended */
	r->in_handler = true;
	bool need_event = false; /* nothing to do until an event of ours */
	if (r->s->body_max) {    /* a body server never forwards: collect_body does it all */
		enum MHD_Result ret = collect_body(r, method, data, data_size);
		r->in_handler = false;
		return ret;
	}
	if (!r->delivered) {
		deliver(r, method);
		need_event = !r->pending && !r->f && !r->answered;
	} else if (*data_size > 0) {
		if (r->answered || r->pending || r->fwd_over) {
			*data_size = 0; /* answered already: the rest of the body is dropped */
		} else if (!r->f) {
			need_event = true; /* held: the body waits in the connection */
		} else {
			size_t n = take_body(r, data, *data_size);
			*data_size -= n;
			if (n > 0 && r->f->send_paused) {
				r->f->send_paused = false;
				set_pause(r->f);
			}
			need_event = *data_size > 0;
		}
	} else {
		r->body_done = true;
		if (r->f && r->f->send_paused) {
			r->f->send_paused = false;
			set_pause(r->f); /* curl reads the end of the body */
		}
	}
	enum MHD_Result ret = MHD_YES;
	if (r->pending) {
		struct MHD_Response *mr = r->pending;
		r->pending = NULL;
		ret = queue(r, r->pending_status, mr);
	} else if (!r->answered && r->f && r->f->headers_done && (r->body_done || r->f->up_done)) {
		ret = queue_upstream(r);
	} else if (!r->answered && r->body_done) {
		need_event = true; /* body in, response not ready */
	}
	if (need_event && !r->answered)
		suspend(r);
	r->in_handler = false;
	return ret;
}

/* ---- public: requests ------------------------------------------------------------------------ */

const char *kd_http_req_method(const struct kd_http_req *req)
{
	return req->method ? req->method : "";
}

const char *kd_http_req_target(const struct kd_http_req *req)
{
	return req->target;
}

const char *kd_http_req_header(const struct kd_http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *kd_http_req_peer(const struct kd_http_req *req)
{
	return req->peer;
}

int kd_http_req_respond(struct kd_http_req *req, int status, const char *content_type,
                        const char *body, size_t len)
{
	return kd_http_req_respond_with(req, status, content_type, NULL, 0, body, len);
}

int kd_http_req_respond_with(struct kd_http_req *req, int status, const char *content_type,
                             const char *const *headers, size_t n_headers, const char *body,
                             size_t len)
{
	if (req->answered || req->pending || req->f || req->fwd_over)
		return -EALREADY;
	req->pending = text_response(content_type, body ? body : "", body ? len : 0);
	for (size_t i = 0; req->pending && i < n_headers; i++) {
		const char *colon = strchr(headers[i], ':');
		if (!colon || colon == headers[i])
			continue;
		kd_autofree char *name = kd_xstrndup(headers[i], (size_t)(colon - headers[i]));
		const char *v = colon + 1 + strspn(colon + 1, " \t");
		MHD_add_response_header(req->pending, name, v);
	}
	req->pending_status = status;
	req->abort_cb = NULL;
	wake(req);
	return 0;
}

void kd_http_req_on_abort(struct kd_http_req *req, kd_http_abort_cb cb, void *ud)
{
	req->abort_cb = cb;
	req->abort_ud = ud;
}

struct hdr_ctx {
	struct curl_slist *list;
	const char *connection;
	bool has_accept, has_xfp;
	const char *xff;
	const struct kd_http_fwd_opts *opts;
};

/* True if `key` is one of the headers opts sets (or Host, when opts rewrites it). */
static bool overridden(const struct kd_http_fwd_opts *o, const char *key)
{
	if (!o)
		return false;
	if (o->host && strcasecmp(key, "Host") == 0)
		return true;
	size_t klen = strlen(key);
	for (size_t i = 0; i < o->n_set_headers; i++)
		if (strncasecmp(o->set_headers[i], key, klen) == 0 &&
		    o->set_headers[i][klen] == ':')
			return true;
	return false;
}

static enum MHD_Result copy_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
	(void)kind;
	struct hdr_ctx *c = cls;
	size_t klen = strlen(key);
	if (kd_http_hop_by_hop(key, klen, c->connection) ||
	    strcasecmp(key, "Content-Length") == 0 || strcasecmp(key, "Expect") == 0 ||
	    strcasecmp(key, "X-Forwarded-For") == 0 || overridden(c->opts, key))
		return MHD_YES;
	if (strcasecmp(key, "Accept") == 0)
		c->has_accept = true;
	if (strcasecmp(key, "X-Forwarded-Proto") == 0)
		c->has_xfp = true;
	/* curl: "Name;" sends a header with an empty value. */
	kd_autofree char *h =
	    value && *value ? kd_xasprintf("%s: %s", key, value) : kd_xasprintf("%s;", key);
	c->list = curl_slist_append(c->list, h);
	return MHD_YES;
}

int kd_http_req_forward(struct kd_http_req *req, const char *ip, int port,
                        const struct kd_http_fwd_opts *opts, kd_http_fwd_cb done, void *ud)
{
	struct kd_http_server *s = req->s;
	if (req->answered || req->pending || req->f || req->fwd_over)
		return -EALREADY;
	if (!ip || !*ip || port <= 0 || port > 65535 || !done || s->body_max)
		return -EINVAL; /* a body_max server has taken the body already */
	if (s->stopping)
		return -ESHUTDOWN;
	struct fwd *f = kd_xcalloc(1, sizeof(*f));
	f->done = done;
	f->ud = ud;
	f->resp_len = -1;
	f->e = s->n_easy ? s->easy_pool[--s->n_easy] : curl_easy_init();
	if (!f->e) {
		free(f);
		return -ENOMEM;
	}
	struct hdr_ctx hc = {.connection = kd_http_req_header(req, "Connection"),
	                     .xff = kd_http_req_header(req, "X-Forwarded-For"),
	                     .opts = opts};
	MHD_get_connection_values(req->conn, MHD_HEADER_KIND, copy_header, &hc);
	kd_autofree char *xff =
	    hc.xff && *hc.xff
	        ? kd_xasprintf("X-Forwarded-For: %s, %s", hc.xff,
	                       req->peer[0] ? req->peer : "unknown")
	        : kd_xasprintf("X-Forwarded-For: %s", req->peer[0] ? req->peer : "unknown");
	hc.list = curl_slist_append(hc.list, xff);
	if (!hc.has_xfp)
		hc.list = curl_slist_append(hc.list, "X-Forwarded-Proto: http");
	if (!hc.has_accept)
		hc.list = curl_slist_append(hc.list, "Accept:"); /* no curl default */
	hc.list = curl_slist_append(hc.list, "Expect:");         /* no 100-continue round trip */
	for (size_t i = 0; opts && i < opts->n_set_headers; i++)
		hc.list = curl_slist_append(hc.list, opts->set_headers[i]);
	if (opts && opts->host) {
		kd_autofree char *h = kd_xasprintf("Host: %s", opts->host);
		hc.list = curl_slist_append(hc.list, h);
	}
	f->hdrs = hc.list;

	bool v6 = strchr(ip, ':') != NULL;
	kd_autofree char *url =
	    kd_xasprintf("http://%s%s%s:%d%s", v6 ? "[" : "", ip, v6 ? "]" : "", port, req->target);
	CURL *e = f->e;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)req);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->hdrs);
	curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never a proxy from the environment */
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)s->connect_ms);
	if (opts && opts->timeout_ms)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)opts->timeout_ms);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, req);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
	const char *m = kd_http_req_method(req);
	if (strcmp(m, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	if (req->has_body) {
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(e, CURLOPT_READDATA, req);
		curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
	}
	if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
	else if (req->has_body)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m); /* a GET with a body stays a GET */
	req->f = f;
	if (kd_curlm_add(s->cm, e) < 0) {
		req->f = NULL;
		fwd_free(s, f);
		return -EIO;
	}
	f->in_multi = true;
	req->abort_cb = NULL;
	wake(req); /* the body (if any) may flow now */
	return 0;
}

/* ---- public: server -------------------------------------------------------------------------- */

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	kd_log_debug("http: %s", msg);
}

/* A listening socket on addr:port, or -1 with *err naming the address. */
static int listen_on(const char *addr, int port, bool *v6, struct kd_error **err)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (port < 0 || port > 65535) {
		kd_error_set(err, EINVAL, 0, "listen %s:%d: the port is not in 0-65535", addr,
		             port);
		return -1;
	}
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		sl = sizeof(*s4);
		*v6 = false;
	} else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		sl = sizeof(*s6);
		*v6 = true;
	} else {
		kd_error_set(err, EINVAL, 0, "listen %s:%d: not an IPv4 or IPv6 address", addr,
		             port);
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		kd_error_set(err, errno, 0, "listen %s:%d: socket: %s", addr, port,
		             strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 1024) < 0) {
		int e = errno;
		close(fd);
		kd_error_set(err, e, 0, "listen %s:%d: %s", addr, port, strerror(e));
		return -1;
	}
	return fd;
}

/* A daemon on s->lfd with s's settings (TLS when s->tls_cert is set); NULL when libmicrohttpd
 * refuses (a bad certificate or key, for one). */
static struct MHD_Daemon *daemon_start(struct kd_http_server *s, int *epfd)
{
	struct rlimit rl = {0};
	unsigned limit = 4096;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		limit =
		    (unsigned)KD_MAX((long long)rl.rlim_cur - 64, 16LL) / 2; /* half: upstreams */
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
	                 (s->v6 ? MHD_USE_IPv6 : 0) | (s->tls_cert ? MHD_USE_TLS : 0);
	struct MHD_OptionItem tls[] = {
	    {s->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, s->tls_cert},
	    {MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key},
	    {MHD_OPTION_END, 0, NULL},
	};
	/* each daemon its own descriptor of the socket: one that fails to start, or stops, closes
	 * its own and never the one a sibling daemon listens on */
	int fd = fcntl(s->lfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		kd_log_error("http: dup of the listening socket: %s", strerror(errno));
		return NULL;
	}
	struct MHD_Daemon *d = MHD_start_daemon(
	    flags, 0, NULL, NULL, on_access, s, MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
	    MHD_OPTION_CONNECTION_TIMEOUT, s->idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT, limit,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
	if (!d) {
		if (fcntl(fd, F_GETFD) >= 0)
			close(fd); /* not closed by libmicrohttpd's failure path */
		return NULL;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD);
	*epfd = di ? di->epoll_fd : -1;
	int rc = *epfd >= 0 ? kd_loop_add_fd(s->loop, *epfd, KD_LOOP_IN, ep_cb, s) : -EBADF;
	if (rc < 0) {
		kd_log_error("http: cannot watch libmicrohttpd's epoll fd: %s", strerror(-rc));
		MHD_stop_daemon(d); /* closes its descriptor of the socket */
		return NULL;
	}
	return d;
}

/* Stops daemon d (watched through epfd): its held connections resumed first (libmicrohttpd
 * must not be stopped with suspended ones), then every request completed (on_completed). It
 * closes its own descriptor of the listening socket; s->lfd stays open. */
static void daemon_stop(struct kd_http_server *s, struct MHD_Daemon *d, int epfd)
{
	if (!d)
		return;
	if (epfd >= 0)
		kd_loop_del_fd(s->loop, epfd);
	for (struct kd_http_req *r = s->reqs; r; r = r->next) {
		const union MHD_ConnectionInfo *ci =
		    r->suspended ? MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_DAEMON)
		                 : NULL;
		if (ci && ci->daemon == d) {
			r->suspended = false;
			MHD_resume_connection(r->conn);
		}
	}
	bool was = s->stopping;
	s->stopping = true; /* no resume from the completion callbacks */
	MHD_run(d);         /* takes the resumed connections back */
	MHD_stop_daemon(d);
	s->stopping = was;
}

static void old_daemon_stop(struct kd_http_server *s)
{
	struct MHD_Daemon *d = s->old_d;
	s->old_d = NULL;
	daemon_stop(s, d, s->old_epfd);
	s->old_epfd = -1;
	free(s->old_cert);
	free(s->old_key);
	s->old_cert = s->old_key = NULL;
}

static int tls_set(struct kd_http_server *s, const char *cert, const char *key,
                   struct kd_error **err)
{
	if (!cert != !key) {
		kd_error_set(err, EINVAL, 0, "TLS needs both a certificate and a key");
		return -EINVAL;
	}
	if (cert && (!strstr(cert, "-----BEGIN ") || !strstr(key, "-----BEGIN "))) {
		kd_error_set(err, EINVAL, 0, "TLS certificate and key must be PEM");
		return -EINVAL;
	}
	free(s->tls_cert);
	free(s->tls_key);
	s->tls_cert = cert ? kd_xstrdup(cert) : NULL;
	s->tls_key = key ? kd_xstrdup(key) : NULL;
	return 0;
}

struct kd_http_server *kd_http_server_new(struct kd_loop *loop,
                                          const struct kd_http_server_opts *opts,
                                          kd_http_handler_cb handler, void *ud,
                                          struct kd_error **err)
{
	static const struct kd_http_server_opts defaults = {0};
	if (!opts)
		opts = &defaults;
	const char *addr = opts->bind_addr && *opts->bind_addr ? opts->bind_addr : "0.0.0.0";
	struct kd_http_server *s = kd_xcalloc(1, sizeof(*s));
	s->loop = loop;
	s->handler = handler;
	s->ud = ud;
	s->epfd = -1;
	s->old_epfd = -1;
	s->body_max = opts->body_max;
	s->idle_timeout_s = opts->idle_timeout_s ? opts->idle_timeout_s : 120;
	s->connect_ms = opts->upstream_connect_ms ? opts->upstream_connect_ms : 2000;
	if (tls_set(s, opts->tls_cert_pem, opts->tls_key_pem, err) < 0) {
		free(s);
		return NULL;
	}
	s->lfd = listen_on(addr, opts->port, &s->v6, err);
	if (s->lfd < 0) {
		free(s->tls_cert);
		free(s->tls_key);
		free(s);
		return NULL;
	}
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	socklen_t sl = sizeof(ss);
	if (getsockname(s->lfd, (struct sockaddr *)&ss, &sl) == 0)
		s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
		                                         : ((struct sockaddr_in *)&ss)->sin_port);
	s->timer = kd_loop_timer_new(loop, timer_cb, s);
	s->d = daemon_start(s, &s->epfd);
	if (!s->d) {
		kd_error_set(err, EIO, 0, "listen %s:%d: libmicrohttpd did not start%s", addr,
		             opts->port,
		             s->tls_cert ? " (is the TLS certificate and key valid?)" : "");
		kd_http_server_free(s);
		return NULL;
	}
	s->cm = kd_curlm_new(loop, "http", curl_done, NULL, s);
	long keep = opts->max_upstream_conns ? (long)opts->max_upstream_conns : 256;
	curl_multi_setopt(kd_curlm_multi(s->cm), CURLMOPT_MAXCONNECTS, keep);
	kd_loop_timer_start(s->timer, 0);
	return s;
}

int kd_http_server_set_tls(struct kd_http_server *s, const char *cert_pem, const char *key_pem,
                           struct kd_error **err)
{
	if (!s->tls_cert) {
		kd_error_set(err, EINVAL, 0, "this server was started without TLS");
		return -EINVAL;
	}
	if (!cert_pem || !key_pem) {
		kd_error_set(err, EINVAL, 0, "TLS needs both a certificate and a key");
		return -EINVAL;
	}
	char *old_cert = s->tls_cert, *old_key = s->tls_key;
	s->tls_cert = s->tls_key = NULL;
	if (tls_set(s, cert_pem, key_pem, err) < 0) {
		s->tls_cert = old_cert;
		s->tls_key = old_key;
		return -EINVAL;
	}
	int epfd = -1;
	struct MHD_Daemon *d = daemon_start(s, &epfd);
	if (!d) { /* the new pair is refused: keep serving the old one */
		free(s->tls_cert);
		free(s->tls_key);
		s->tls_cert = old_cert;
		s->tls_key = old_key;
		kd_error_set(err, EINVAL, 0,
		             "libmicrohttpd refused the new TLS certificate and key; still serving "
		             "the previous ones");
		return -EINVAL;
	}
	/* the previous daemon stops accepting and finishes what it serves */
	if (s->old_d)
		old_daemon_stop(s);
	s->old_cert = old_cert;
	s->old_key = old_key;
	MHD_socket q = MHD_quiesce_daemon(s->d);
	if (q != MHD_INVALID_SOCKET)
		close(q); /* its descriptor of the socket: the new daemon has its own */
	s->old_d = s->d;
	s->old_epfd = s->epfd;
	s->d = d;
	s->epfd = epfd;
	kd_loop_timer_start(s->timer, 0);
	return 0;
}

const char *kd_http_req_body(const struct kd_http_req *req, size_t *len)
{
	if (len)
		*len = req->body ? req->body_got : 0;
	return req->body;
}

void kd_http_server_free(struct kd_http_server *s)
{
	if (!s)
		return;
	s->stopping = true;
	old_daemon_stop(s);
	struct MHD_Daemon *d = s->d;
	s->d = NULL;
	daemon_stop(s, d, s->epfd);
	s->epfd = -1;
	for (struct kd_http_req *r = s->reqs, *next; r; r = next) {
		next = r->next; /* requests never handed to a connection callback */
		req_destroy(r);
	}
	s->reqs = NULL;
	if (s->lfd >= 0)
		close(s->lfd);
	kd_curlm_free(s->cm);
	while (s->n_easy)
		curl_easy_cleanup(s->easy_pool[--s->n_easy]);
	while (s->n_buf)
		free(s->buf_pool[--s->n_buf]);
	kd_loop_timer_free(s->timer);
	free(s->tls_cert);
	free(s->tls_key);
	free(s);
}

int kd_http_server_port(const struct kd_http_server *s)
{
	return s->port;
}
