/* functions/fn_httpd.c: the sample functions' HTTP server on libmicrohttpd (see fn_httpd.h).
 *
 * libmicrohttpd runs $FN_THREADS internal worker threads (epoll) on a listening socket made here
 * (SO_REUSEADDR, backlog 1024, so bind errors are reported as before). Each request gets a
 * struct fn_req from the URI log callback (which sees the raw target, query included) and loses
 * it in the completion callback; between the two it counts as in flight. A delayed response
 * suspends the connection and puts the request on a list sorted by due time; one timer thread
 * resumes it when due, and the access handler then queues the stored response.
 */
#include "fn_httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FN_STOP_GRACE_MS 30000u
#define FN_ABORT_WAIT_MS 1000u
#define FN_MEMORY_LIMIT  (17u * 1024u) /* per connection: headers up to about 16 KiB fit */
#define FN_CONN_LIMIT    16384u

enum fn_stage {
	FN_NEW = 0,  /* headers only so far */
	FN_BODY,     /* body being discarded, or complete */
	FN_WAITING,  /* suspended until due_ns */
	FN_RESUMED,  /* due (or aborted): send resp */
	FN_ANSWERED, /* a response is queued */
};

/* One request (libmicrohttpd's *req_cls). */
struct fn_req {
	char *uri; /* raw target, owned */
	enum fn_stage stage;
	bool abort; /* resumed at shutdown without its response: close the connection */
	struct fn_response resp;
	uint64_t due_ns;             /* CLOCK_MONOTONIC */
	struct MHD_Connection *conn; /* while FN_WAITING */
	struct fn_req *next;         /* pending list */
};

static atomic_int fn_stopping;
static atomic_long fn_inflight;

static pthread_mutex_t fn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fn_cond;             /* CLOCK_MONOTONIC; guarded by fn_lock */
static struct fn_req *fn_pending;          /* sorted by due_ns; guarded by fn_lock */
static bool fn_timer_quit, fn_timer_abort; /* guarded by fn_lock */

static uint64_t fn_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool fn_query_get(const char *query, const char *key, char *out, size_t out_size)
{
	size_t kl = strlen(key);
	for (const char *p = query; p && *p;) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		if (len > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
			size_t vl = len - kl - 1;
			if (vl >= out_size)
				vl = out_size - 1;
			memcpy(out, p + kl + 1, vl);
			out[vl] = '\0';
			return true;
		}
		p = amp ? amp + 1 : NULL;
	}
	return false;
}

const char *fn_identity(void)
{
	static char id[256];
	if (!id[0]) {
		const char *r = getenv("K_REVISION");
		if (r && *r)
			snprintf(id, sizeof(id), "%s", r);
		else if (gethostname(id, sizeof(id) - 1) < 0)
			snprintf(id, sizeof(id), "unknown");
	}
	return id;
}

/* --- delayed responses ------------------------------------------------------------------------ */
/* Suspends r's connection and queues r for the timer thread. Suspending first: the timer can
 * only resume what it finds on the list. */
static void fn_delay(struct MHD_Connection *conn, struct fn_req *r)
{
	r->stage = FN_WAITING;
	r->conn = conn;
	r->due_ns = fn_now_ns() + r->resp.delay_ms * 1000000u; /* never shorter than asked */
	MHD_suspend_connection(conn);
	pthread_mutex_lock(&fn_lock);
	struct fn_req **pp = &fn_pending;
	while (*pp && (*pp)->due_ns <= r->due_ns)
		pp = &(*pp)->next;
	r->next = *pp;
	*pp = r;
	pthread_cond_signal(&fn_cond);
	pthread_mutex_unlock(&fn_lock);
}

static void *fn_timer_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&fn_lock);
	for (;;) {
		uint64_t now = fn_now_ns();
		struct fn_req *due = NULL, **tail = &due;
		while (fn_pending && (fn_timer_abort || fn_pending->due_ns <= now)) {
			struct fn_req *r = fn_pending;
			fn_pending = r->next;
			r->next = NULL;
			*tail = r;
			tail = &r->next;
		}
		if (due) {
			bool abort_all = fn_timer_abort;
			pthread_mutex_unlock(&fn_lock);
			for (struct fn_req *r = due, *next; r; r = next) {
				/* after the resume a worker may answer and free r at once */
				next = r->next;
				struct MHD_Connection *conn = r->conn;
				r->abort = abort_all;
				r->stage = FN_RESUMED;
				MHD_resume_connection(conn);
			}
			pthread_mutex_lock(&fn_lock);
			continue;
		}
		if (fn_timer_quit)
			break; /* (with abort set, nothing is left suspended) */
		if (fn_pending) {
			uint64_t at = fn_pending->due_ns;
			struct timespec ts = {.tv_sec = (time_t)(at / 1000000000u),
			                      .tv_nsec = (long)(at % 1000000000u)};
			pthread_cond_timedwait(&fn_cond, &fn_lock, &ts);
		} else {
			pthread_cond_wait(&fn_cond, &fn_lock);
		}
	}
	pthread_mutex_unlock(&fn_lock);
	return NULL;
}

static void fn_timer_signal(bool quit, bool abort_all)
{
	pthread_mutex_lock(&fn_lock);
	fn_timer_quit = fn_timer_quit || quit;
	fn_timer_abort = fn_timer_abort || abort_all;
	pthread_cond_signal(&fn_cond);
	pthread_mutex_unlock(&fn_lock);
}

/* --- libmicrohttpd callbacks ------------------------------------------------------------------ */
static void *fn_on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	(void)cls, (void)conn;
	struct fn_req *r = calloc(1, sizeof(*r));
	char *u = strdup(uri ? uri : "/");
	if (!r || !u)
		abort();
	r->uri = u;
	atomic_fetch_add(&fn_inflight, 1);
	return r;
}

static void fn_on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                            enum MHD_RequestTerminationCode toe)
{
	(void)cls, (void)conn, (void)toe;
	struct fn_req *r = *req_cls;
	if (!r)
		return;
	*req_cls = NULL;
	free(r->uri);
	free(r);
	atomic_fetch_sub(&fn_inflight, 1);
}

static enum MHD_Result fn_reply(struct MHD_Connection *conn, struct fn_req *r, bool close_after)
{
	size_t blen = strnlen(r->resp.body, sizeof(r->resp.body));
	struct MHD_Response *mr =
	    MHD_create_response_from_buffer(blen, r->resp.body, MHD_RESPMEM_MUST_COPY);
	if (!mr)
		return MHD_NO;
	MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
	if (close_after || atomic_load(&fn_stopping))
		MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");
	r->stage = FN_ANSWERED;
	enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->resp.status, mr);
	MHD_destroy_response(mr);
	return ret;
}

static enum MHD_Result fn_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                     const char *method, const char *version,
                                     const char *upload_data, size_t *upload_data_size,
                                     void **req_cls)
{
	(void)cls, (void)url, (void)version, (void)upload_data;
	struct fn_req *r = *req_cls;
	if (!r)
		return MHD_NO; /* the URI callback always sets it */
	switch (r->stage) {
	case FN_NEW: {
		r->stage = FN_BODY;
		const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                             MHD_HTTP_HEADER_TRANSFER_ENCODING);
		if (te && strcasestr(te, "chunked")) {
			r->resp.status = MHD_HTTP_LENGTH_REQUIRED;
			snprintf(r->resp.body, sizeof(r->resp.body),
			         "chunked request bodies are not supported\n");
			return fn_reply(conn, r, true);
		}
		return MHD_YES; /* the body (if any) follows, then the final call */
	}
	case FN_BODY:
		if (*upload_data_size) {
			*upload_data_size = 0; /* discarded */
			return MHD_YES;
		}
		break;
	case FN_RESUMED:
		if (r->abort)
			return MHD_NO;
		return fn_reply(conn, r, false);
	case FN_WAITING:
	case FN_ANSWERED:
	default:
		return MHD_YES;
	}
	const char *q = strchr(r->uri, '?');
	struct fn_request req = {.method = method, .target = r->uri, .query = q ? q + 1 : ""};
	r->resp.status = 200;
	fn_handle(&req, &r->resp);
	if (r->resp.delay_ms) {
		fn_delay(conn, r);
		return MHD_YES;
	}
	return fn_reply(conn, r, false);
}

/* --- serve ------------------------------------------------------------------------------------ */
/* Waits (polling; only at shutdown) until no request is in flight or for at most wait_ms. */
static void fn_wait_idle(uint64_t wait_ms)
{
	uint64_t deadline = fn_now_ns() + wait_ms * 1000000u;
	while (atomic_load(&fn_inflight) > 0 && fn_now_ns() < deadline) {
		struct timespec ts = {.tv_nsec = 10 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

int fn_serve(const char *name)
{
	const char *port_s = getenv("PORT");
	long port = port_s && *port_s ? strtol(port_s, NULL, 10) : 8080;
	if (port <= 0 || port > 65535) {
		fprintf(stderr, "%s: bad PORT \"%s\"\n", name, port_s);
		return 2;
	}
	const char *addr_s = getenv("FN_LISTEN");
	const char *thr_s = getenv("FN_THREADS");
	long nthreads = thr_s && *thr_s ? strtol(thr_s, NULL, 10) : 4;
	if (nthreads < 1 || nthreads > 64)
		nthreads = 4;

	/* every thread started from here on inherits the mask; only sigwait takes them */
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	pthread_sigmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (addr_s && *addr_s && inet_pton(AF_INET, addr_s, &sa.sin_addr) != 1) {
		fprintf(stderr, "%s: bad FN_LISTEN \"%s\"\n", name, addr_s);
		return 2;
	}
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1024) < 0) {
		fprintf(stderr, "%s: listen on port %ld: %s\n", name, port, strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return 1;
	}
	(void)fn_identity(); /* computed once, before the workers read it */

	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fn_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_t timer;
	if (pthread_create(&timer, NULL, fn_timer_main, NULL) != 0) {
		fprintf(stderr, "%s: timer thread: %s\n", name, strerror(errno));
		close(lfd);
		return 1;
	}

	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
	struct MHD_Daemon *d = MHD_start_daemon(
	    flags, 0, NULL, NULL, fn_on_request, NULL, MHD_OPTION_LISTEN_SOCKET, lfd,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)nthreads, MHD_OPTION_URI_LOG_CALLBACK, fn_on_uri,
	    NULL, MHD_OPTION_NOTIFY_COMPLETED, fn_on_completed, NULL,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)FN_MEMORY_LIMIT,
	    MHD_OPTION_CONNECTION_LIMIT, FN_CONN_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT, 0u,
	    MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "%s: cannot start the HTTP server (libmicrohttpd)\n", name);
		fn_timer_signal(true, false);
		pthread_join(timer, NULL);
		close(lfd);
		return 1;
	}
	fprintf(stderr, "%s: listening on %s:%ld with %ld threads\n", name,
	        addr_s && *addr_s ? addr_s : "0.0.0.0", port, nthreads);
	int sig = 0;
	sigwait(&ss, &sig);
	fprintf(stderr, "%s: signal %d, shutting down\n", name, sig);
	atomic_store(&fn_stopping, 1);
	MHD_quiesce_daemon(d); /* returns lfd: closed after MHD_stop_daemon */
	fn_wait_idle(FN_STOP_GRACE_MS);
	if (atomic_load(&fn_inflight) > 0) {
		/* past the grace period: delayed responses still waiting are dropped (their
		 * connections closed); libmicrohttpd must not be stopped with any suspended */
		fn_timer_signal(false, true);
		fn_wait_idle(FN_ABORT_WAIT_MS);
	}
	fn_timer_signal(true, true);
	pthread_join(timer, NULL);
	MHD_stop_daemon(d);
	close(lfd);
	pthread_cond_destroy(&fn_cond);
	return 0;
}
