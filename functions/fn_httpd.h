/* functions/fn_httpd.h: the tiny HTTP/1.1 server shared by the sample functions (hello, sleep).
 * Header-only (each functions/<name>/ folder is its own binary; this file is included by each).
 *
 * - Listens on 0.0.0.0:$PORT (default 8080; $FN_LISTEN overrides the address, e.g. 127.0.0.1).
 * - $FN_THREADS worker threads (default 4, 1..64), each with its own epoll set; the listening
 *   socket is in every set with EPOLLEXCLUSIVE. Connections are non-blocking, keep-alive
 *   (HTTP/1.1 default; HTTP/1.0 or "Connection: close" closes after the response), pipelined
 *   requests are answered in order. Request bodies (Content-Length) are read and discarded;
 *   chunked bodies are refused (411). Header block limit 16 KiB (431).
 * - The handler fills a response at once or asks for a delayed one: the worker arms a timerfd
 *   for that connection and sends the response when it fires (idle waits cost no thread).
 * - SIGTERM/SIGINT: stop accepting, finish responses in flight (at most 30 s), exit 0.
 */
#ifndef FN_HTTPD_H
#define FN_HTTPD_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define FN_HDR_MAX  16384
#define FN_BODY_MAX 4096

struct fn_request {
	const char *method; /* NUL-terminated, inside the connection buffer */
	const char *target; /* path and query */
	const char *query;  /* after '?', or "" */
};

struct fn_response {
	int status;             /* 200 */
	char body[FN_BODY_MAX]; /* text/plain */
	uint64_t delay_ms;      /* > 0: send after this long (the worker waits without blocking) */
};

/* Implemented by each function: fills *resp for *req. Runs on a worker thread. */
static void fn_handle(const struct fn_request *req, struct fn_response *resp);

enum fn_kind { FN_LISTENER = 1, FN_STOP, FN_SOCK, FN_TIMER };

/* What an epoll event's data.ptr points at. */
struct fn_tag {
	enum fn_kind kind;
	struct fn_conn *conn; /* FN_SOCK, FN_TIMER */
};

struct fn_conn {
	struct fn_tag sock_tag, timer_tag;
	int fd, tfd; /* tfd: timerfd while a delayed response waits, else -1 */
	char in[FN_HDR_MAX];
	size_t in_len;
	size_t body_left; /* request body bytes still to discard */
	char *out;
	size_t out_len, out_off;
	bool close_after; /* close once out is sent */
	bool waiting;     /* delayed response pending */
	struct fn_response pending;
	bool pending_close;
};

struct fn_worker {
	pthread_t th;
	int ep;
	int waiting; /* delayed responses pending in this worker */
};

static struct fn_tag fn_listener_tag = {.kind = FN_LISTENER};
static struct fn_tag fn_stop_tag = {.kind = FN_STOP};
static int fn_listen_fd = -1;
static int fn_stop_fd = -1; /* eventfd: becomes readable on SIGTERM */
static volatile int fn_stopping;

static uint64_t fn_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *fn_status_text(int s)
{
	switch (s) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 411:
		return "Length Required";
	case 431:
		return "Request Header Fields Too Large";
	default:
		return "Error";
	}
}

static void fn_queue_response(struct fn_conn *c, const struct fn_response *r, bool close_after)
{
	size_t blen = strnlen(r->body, sizeof(r->body));
	char head[256];
	int hl = snprintf(
	    head, sizeof(head),
	    "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n",
	    r->status, fn_status_text(r->status), blen, close_after ? "Connection: close\r\n" : "");
	size_t add = (size_t)hl + blen;
	char *n = realloc(c->out, c->out_len + add);
	if (!n)
		abort();
	c->out = n;
	memcpy(c->out + c->out_len, head, (size_t)hl);
	memcpy(c->out + c->out_len + hl, r->body, blen);
	c->out_len += add;
	if (close_after)
		c->close_after = true;
}

static void fn_conn_close(struct fn_worker *w, struct fn_conn *c)
{
	epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->tfd >= 0) {
		epoll_ctl(w->ep, EPOLL_CTL_DEL, c->tfd, NULL);
		close(c->tfd);
		w->waiting--;
	}
	free(c->out);
	free(c);
}

/* Case-insensitive search for a header's value in the header block [h, h+len). */
static bool fn_header_has(const char *h, const char *name, const char *token)
{
	size_t nl = strlen(name);
	for (const char *p = h; p && *p; p = strstr(p, "\r\n")) {
		if (p[0] == '\r')
			p += 2;
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			const char *e = strstr(v, "\r\n");
			size_t vl = e ? (size_t)(e - v) : strlen(v);
			size_t tl = strlen(token);
			for (size_t i = 0; i + tl <= vl; i++)
				if (strncasecmp(v + i, token, tl) == 0)
					return true;
			return false;
		}
	}
	return false;
}

static long fn_header_long(const char *h, const char *name)
{
	size_t nl = strlen(name);
	for (const char *p = h; p && *p; p = strstr(p, "\r\n")) {
		if (p[0] == '\r')
			p += 2;
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':')
			return strtol(p + nl + 1, NULL, 10);
	}
	return -1;
}

/* Parses as many complete requests as the buffer holds. Returns false if the connection must
 * be closed at once. Stops at a delayed response (the rest waits until it is sent). */
static bool fn_process(struct fn_worker *w, struct fn_conn *c)
{
	while (!c->waiting && !c->close_after) {
		if (c->body_left) {
			size_t d = c->in_len < c->body_left ? c->in_len : c->body_left;
			memmove(c->in, c->in + d, c->in_len - d);
			c->in_len -= d;
			c->body_left -= d;
			if (c->body_left)
				return true;
		}
		char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
		if (!end) {
			if (c->in_len >= sizeof(c->in) - 1) {
				struct fn_response r = {.status = 431};
				snprintf(r.body, sizeof(r.body), "request header too large\n");
				fn_queue_response(c, &r, true);
			}
			return true;
		}
		size_t hlen = (size_t)(end - c->in) + 4;
		char hdr[FN_HDR_MAX];
		memcpy(hdr, c->in, hlen - 2);
		hdr[hlen - 2] = '\0';
		memmove(c->in, c->in + hlen, c->in_len - hlen);
		c->in_len -= hlen;

		char *line_end = strstr(hdr, "\r\n");
		*line_end = '\0';
		char *headers = line_end + 2;
		char *sp1 = strchr(hdr, ' ');
		char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
		if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
			struct fn_response r = {.status = 400};
			snprintf(r.body, sizeof(r.body), "bad request line\n");
			fn_queue_response(c, &r, true);
			return true;
		}
		*sp1 = *sp2 = '\0';
		bool http10 = sp2[8] == '0';
		bool close_after = http10 ? !fn_header_has(headers, "Connection", "keep-alive")
		                          : fn_header_has(headers, "Connection", "close");
		if (fn_header_has(headers, "Transfer-Encoding", "chunked")) {
			struct fn_response r = {.status = 411};
			snprintf(r.body, sizeof(r.body),
			         "chunked request bodies are not supported\n");
			fn_queue_response(c, &r, true);
			return true;
		}
		long cl = fn_header_long(headers, "Content-Length");
		c->body_left = cl > 0 ? (size_t)cl : 0;

		char *q = strchr(sp1 + 1, '?');
		struct fn_request req = {.method = hdr, .target = sp1 + 1, .query = q ? q + 1 : ""};
		struct fn_response resp = {.status = 200};
		fn_handle(&req, &resp);
		if (resp.delay_ms) {
			c->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
			if (c->tfd < 0)
				return false;
			struct itimerspec its = {
			    .it_value = {.tv_sec = (time_t)(resp.delay_ms / 1000),
			                 .tv_nsec = (long)(resp.delay_ms % 1000) * 1000000L}};
			timerfd_settime(c->tfd, 0, &its, NULL);
			struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->timer_tag};
			epoll_ctl(w->ep, EPOLL_CTL_ADD, c->tfd, &ev);
			c->waiting = true;
			w->waiting++;
			/* no reads while waiting (level-triggered); HUP/ERR still close it */
			struct epoll_event cev = {.events = 0, .data.ptr = &c->sock_tag};
			epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &cev);
			c->pending = resp;
			c->pending_close = close_after;
			return true;
		}
		fn_queue_response(c, &resp, close_after);
	}
	return true;
}

/* Writes what is queued. Returns false when the connection is finished (close it). */
static bool fn_flush(struct fn_worker *w, struct fn_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP,
			                         .data.ptr = &c->sock_tag};
			epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
			return true;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	if (c->close_after)
		return false;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = &c->sock_tag};
	epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
	return true;
}

static void fn_accept(struct fn_worker *w)
{
	for (int i = 0; i < 64; i++) {
		int fd = accept4(fn_listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct fn_conn *c = calloc(1, sizeof(*c));
		if (!c)
			abort();
		c->fd = fd;
		c->tfd = -1;
		c->sock_tag = (struct fn_tag){.kind = FN_SOCK, .conn = c};
		c->timer_tag = (struct fn_tag){.kind = FN_TIMER, .conn = c};
		struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = &c->sock_tag};
		if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			free(c);
		}
	}
}

static void fn_on_timer(struct fn_worker *w, struct fn_conn *c)
{
	epoll_ctl(w->ep, EPOLL_CTL_DEL, c->tfd, NULL);
	close(c->tfd);
	c->tfd = -1;
	c->waiting = false;
	w->waiting--;
	fn_queue_response(c, &c->pending, c->pending_close || fn_stopping);
	if (!fn_process(w, c) || !fn_flush(w, c))
		fn_conn_close(w, c);
}

static void fn_on_conn(struct fn_worker *w, struct fn_conn *c, uint32_t events)
{
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		bool eof = false;
		for (;;) {
			if (c->in_len >= sizeof(c->in) - 1)
				break;
			ssize_t n =
			    recv(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len, 0);
			if (n > 0) {
				c->in_len += (size_t)n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
				eof = true;
			break;
		}
		if (!fn_process(w, c)) {
			fn_conn_close(w, c);
			return;
		}
		if (eof && (c->waiting || c->out_off >= c->out_len)) {
			fn_conn_close(w, c); /* the client is gone */
			return;
		}
		if (eof)
			c->close_after = true;
	}
	if (!c->waiting && !fn_flush(w, c))
		fn_conn_close(w, c);
}

static void *fn_worker_main(void *arg)
{
	struct fn_worker *w = arg;
	uint64_t deadline = 0;
	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(w->ep, evs, 64, fn_stopping ? 100 : -1);
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			const struct fn_tag *tag = evs[i].data.ptr;
			if (tag->kind == FN_LISTENER) {
				if (!fn_stopping)
					fn_accept(w);
			} else if (tag->kind == FN_STOP) {
				fn_stopping = 1;
			} else if (tag->kind == FN_TIMER) {
				fn_on_timer(w, tag->conn);
			} else {
				fn_on_conn(w, tag->conn, evs[i].events);
			}
		}
		if (fn_stopping) {
			if (!deadline) {
				deadline = fn_now_ms() + 30000;
				epoll_ctl(w->ep, EPOLL_CTL_DEL, fn_listen_fd, NULL);
				epoll_ctl(w->ep, EPOLL_CTL_DEL, fn_stop_fd, NULL);
			}
			/* done once no delayed response is pending here (or at the deadline) */
			if (w->waiting == 0 || fn_now_ms() > deadline)
				break;
		}
	}
	return NULL;
}

/* Value of `key` in a query string ("a=1&b=2"), copied into out; false if absent. */
__attribute__((unused)) static bool fn_query_get(const char *query, const char *key, char *out,
                                                 size_t out_size)
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

/* "Hello from <K_REVISION or hostname>" identity of this instance. */
static const char *fn_identity(void)
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

/* Runs the server until SIGTERM/SIGINT. Returns the process exit code. */
static int fn_serve(const char *name)
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

	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	pthread_sigmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);

	fn_listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fn_listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (addr_s && *addr_s && inet_pton(AF_INET, addr_s, &sa.sin_addr) != 1) {
		fprintf(stderr, "%s: bad FN_LISTEN \"%s\"\n", name, addr_s);
		return 2;
	}
	if (bind(fn_listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fn_listen_fd, 1024) < 0) {
		fprintf(stderr, "%s: listen on port %ld: %s\n", name, port, strerror(errno));
		return 1;
	}
	fn_stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	(void)fn_identity(); /* computed once, before the workers read it */
	struct fn_worker *ws = calloc((size_t)nthreads, sizeof(*ws));
	if (!ws)
		abort();
	for (long i = 0; i < nthreads; i++) {
		ws[i].ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE,
		                         .data.ptr = &fn_listener_tag};
		epoll_ctl(ws[i].ep, EPOLL_CTL_ADD, fn_listen_fd, &ev);
		struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &fn_stop_tag};
		epoll_ctl(ws[i].ep, EPOLL_CTL_ADD, fn_stop_fd, &sev);
		pthread_create(&ws[i].th, NULL, fn_worker_main, &ws[i]);
	}
	fprintf(stderr, "%s: listening on %s:%ld with %ld threads\n", name,
	        addr_s && *addr_s ? addr_s : "0.0.0.0", port, nthreads);
	int sig = 0;
	sigwait(&ss, &sig);
	fprintf(stderr, "%s: signal %d, shutting down\n", name, sig);
	uint64_t one64 = 1;
	if (write(fn_stop_fd, &one64, sizeof(one64)) < 0)
		fn_stopping = 1;
	for (long i = 0; i < nthreads; i++) {
		pthread_join(ws[i].th, NULL);
		close(ws[i].ep);
	}
	free(ws);
	close(fn_listen_fd);
	close(fn_stop_fd);
	return 0;
}

#endif /* FN_HTTPD_H */
