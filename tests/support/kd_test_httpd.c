/* kd_test_httpd.c: scriptable loopback HTTP/1.1 (+TLS) server for unit tests. */
#include "kd_test_httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kd/common.h"

struct kd_test_httpd_conn {
	struct kd_test_httpd *srv;
	int fd;
	SSL *ssl;
	int id;
	bool close_after;
	bool dead;
	pthread_t thread;
	struct kd_test_httpd_conn *next;
	char *rbuf;
	size_t rlen, rcap;
};

struct kd_test_httpd {
	int lfd;
	int port;
	char url[64];
	SSL_CTX *ctx;
	kd_test_httpd_handler handler;
	void *arg;
	pthread_t accept_thread;
	atomic_bool stopping;
	pthread_mutex_t lock;
	struct kd_test_httpd_conn *conns;
	int nconns, open_conns, peak_conns;
	struct kd_test_httpd_req *reqs;
	size_t nreqs, capreqs;
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* --- I/O ---------------------------------------------------------------------------------- */

static ssize_t conn_read(struct kd_test_httpd_conn *c, char *buf, size_t n)
{
	for (;;) {
		if (atomic_load(&c->srv->stopping))
			return -1;
		struct pollfd p = {c->fd, POLLIN, 0};
		if (!(c->ssl && SSL_pending(c->ssl) > 0)) {
			int pr = poll(&p, 1, 100);
			if (pr < 0 && errno != EINTR)
				return -1;
			if (pr <= 0)
				continue;
		}
		if (c->ssl) {
			int r = SSL_read(c->ssl, buf, (int)n);
			if (r > 0)
				return r;
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				continue;
			return -1;
		}
		ssize_t r = recv(c->fd, buf, n, 0);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		return r <= 0 ? -1 : r;
	}
}

int kd_test_httpd_raw(struct kd_test_httpd_conn *c, const char *data, size_t len)
{
	if (c->dead)
		return -1;
	size_t off = 0;
	while (off < len) {
		ssize_t w;
		if (c->ssl) {
			int r = SSL_write(c->ssl, data + off, (int)(len - off));
			if (r <= 0) {
				c->dead = true;
				return -1;
			}
			w = r;
		} else {
			w = send(c->fd, data + off, len - off, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				c->dead = true;
				return -1;
			}
		}
		off += (size_t)w;
	}
	return 0;
}

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 409:
		return "Conflict";
	case 410:
		return "Gone";
	case 422:
		return "Unprocessable Entity";
	case 500:
		return "Internal Server Error";
	default:
		return "Status";
	}
}

int kd_test_httpd_respond(struct kd_test_httpd_conn *c, int status, const char *content_type,
                          const char *body)
{
	if (!body)
		body = "";
	char *hdr = kd_xasprintf(
	    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", status,
	    reason_phrase(status), content_type ? content_type : "application/json", strlen(body));
	int rc = kd_test_httpd_raw(c, hdr, strlen(hdr));
	free(hdr);
	if (rc == 0)
		rc = kd_test_httpd_raw(c, body, strlen(body));
	return rc;
}

int kd_test_httpd_begin_chunked(struct kd_test_httpd_conn *c, int status, const char *content_type)
{
	char *hdr = kd_xasprintf(
	    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n", status,
	    reason_phrase(status), content_type ? content_type : "application/json");
	int rc = kd_test_httpd_raw(c, hdr, strlen(hdr));
	free(hdr);
	return rc;
}

int kd_test_httpd_chunk(struct kd_test_httpd_conn *c, const char *data, size_t len)
{
	if (len == 0)
		return 0;
	char head[32];
	snprintf(head, sizeof(head), "%zx\r\n", len);
	if (kd_test_httpd_raw(c, head, strlen(head)) < 0 || kd_test_httpd_raw(c, data, len) < 0 ||
	    kd_test_httpd_raw(c, "\r\n", 2) < 0)
		return -1;
	return 0;
}

int kd_test_httpd_end_chunked(struct kd_test_httpd_conn *c)
{
	return kd_test_httpd_raw(c, "0\r\n\r\n", 5);
}

void kd_test_httpd_close(struct kd_test_httpd_conn *c)
{
	c->close_after = true;
}

bool kd_test_httpd_sleep(struct kd_test_httpd_conn *c, unsigned ms)
{
	while (ms > 0) {
		if (atomic_load(&c->srv->stopping))
			return false;
		unsigned step = ms < 10 ? ms : 10;
		sleep_ms(step);
		ms -= step;
	}
	return !atomic_load(&c->srv->stopping);
}

struct kd_test_httpd *kd_test_httpd_conn_server(struct kd_test_httpd_conn *c)
{
	return c->srv;
}

bool kd_test_httpd_stopping(const struct kd_test_httpd *srv)
{
	return atomic_load(&((struct kd_test_httpd *)srv)->stopping);
}

/* --- request parsing ---------------------------------------------------------------------- */

static char *find_header(const char *head, const char *name)
{
	size_t nl = strlen(name);
	const char *p = strstr(head, "\r\n");
	while (p && p[2]) {
		p += 2;
		if (!strncasecmp(p, name, nl) && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ')
				v++;
			const char *e = strstr(v, "\r\n");
			return kd_xstrndup(v, e ? (size_t)(e - v) : strlen(v));
		}
		p = strstr(p, "\r\n");
	}
	return NULL;
}

static void req_fini(struct kd_test_httpd_req *r)
{
	free(r->method);
	free(r->target);
	free(r->path);
	free(r->query);
	free(r->content_type);
	free(r->auth);
	free(r->user_agent);
	free(r->head);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

void kd_test_httpd_req_fini(struct kd_test_httpd_req *r)
{
	req_fini(r);
}

static char *dupz(const char *s)
{
	return s ? kd_xstrdup(s) : NULL;
}

static void req_copy(struct kd_test_httpd_req *d, const struct kd_test_httpd_req *s)
{
	d->method = dupz(s->method);
	d->target = dupz(s->target);
	d->path = dupz(s->path);
	d->query = dupz(s->query);
	d->content_type = dupz(s->content_type);
	d->auth = dupz(s->auth);
	d->user_agent = dupz(s->user_agent);
	d->head = dupz(s->head);
	d->body = kd_xmalloc(s->body_len + 1);
	memcpy(d->body, s->body, s->body_len + 1);
	d->body_len = s->body_len;
	d->conn_id = s->conn_id;
}

/* Reads at least until c->rbuf holds `need` bytes. 0, or -1 on EOF/error. */
static int fill(struct kd_test_httpd_conn *c, size_t need)
{
	while (c->rlen < need) {
		if (c->rlen + 4097 > c->rcap || need + 1 > c->rcap) {
			c->rcap = c->rcap * 2 + need;
			c->rbuf = kd_xrealloc(c->rbuf, c->rcap);
		}
		ssize_t n = conn_read(c, c->rbuf + c->rlen, 4096);
		if (n <= 0)
			return -1;
		c->rlen += (size_t)n;
		c->rbuf[c->rlen] = '\0';
	}
	return 0;
}

/* A chunked body after the head (head_len bytes of c->rbuf). 0, or -1. */
static int read_chunked(struct kd_test_httpd_conn *c, struct kd_test_httpd_req *r, size_t head_len)
{
	size_t pos = head_len, blen = 0;
	char *body = kd_xmalloc(1);
	for (;;) {
		char *eol;
		while (!(eol = strstr(c->rbuf + pos, "\r\n")))
			if (fill(c, c->rlen + 1) < 0)
				goto fail;
		size_t n = strtoul(c->rbuf + pos, NULL, 16);
		size_t data = (size_t)(eol - c->rbuf) + 2;
		if (fill(c, data + n + 2) < 0)
			goto fail;
		if (n == 0) {
			pos = data + 2; /* no trailers sent by our clients */
			break;
		}
		body = kd_xrealloc(body, blen + n + 1);
		memcpy(body + blen, c->rbuf + data, n);
		blen += n;
		pos = data + n + 2;
	}
	body[blen] = '\0';
	r->body = body;
	r->body_len = blen;
	memmove(c->rbuf, c->rbuf + pos, c->rlen - pos + 1);
	c->rlen -= pos;
	return 0;
fail:
	free(body);
	return -1;
}

char *kd_test_httpd_req_header(const struct kd_test_httpd_req *r, const char *name)
{
	return r->head ? find_header(r->head, name) : NULL;
}

/* Reads one request. 0, or -1 on EOF/error. */
static int read_request(struct kd_test_httpd_conn *c, struct kd_test_httpd_req *r)
{
	char *end;
	for (;;) {
		if ((end = strstr(c->rbuf, "\r\n\r\n")))
			break;
		if (c->rlen + 4097 > c->rcap) {
			c->rcap *= 2;
			c->rbuf = kd_xrealloc(c->rbuf, c->rcap);
		}
		ssize_t n = conn_read(c, c->rbuf + c->rlen, 4096);
		if (n <= 0)
			return -1;
		c->rlen += (size_t)n;
		c->rbuf[c->rlen] = '\0';
	}
	size_t head_len = (size_t)(end - c->rbuf) + 4;
	char *head = kd_xstrndup(c->rbuf, head_len);
	char method[16] = {0}, target[8192] = {0};
	if (sscanf(head, "%15s %8191s", method, target) != 2) {
		free(head);
		return -1;
	}
	r->method = kd_xstrdup(method);
	r->target = kd_xstrdup(target);
	char *q = strchr(target, '?');
	r->path = q ? kd_xstrndup(target, (size_t)(q - target)) : kd_xstrdup(target);
	r->query = kd_xstrdup(q ? q + 1 : "");
	r->content_type = find_header(head, "Content-Type");
	r->auth = find_header(head, "Authorization");
	r->user_agent = find_header(head, "User-Agent");
	char *cl = find_header(head, "Content-Length");
	char *te = find_header(head, "Transfer-Encoding");
	size_t blen = cl ? strtoul(cl, NULL, 10) : 0;
	free(cl);
	r->head = head;
	if (te && !strcasecmp(te, "chunked")) {
		free(te);
		return read_chunked(c, r, head_len);
	}
	free(te);
	while (c->rlen < head_len + blen) {
		if (c->rlen + 4097 > c->rcap) {
			c->rcap = c->rcap * 2 + blen;
			c->rbuf = kd_xrealloc(c->rbuf, c->rcap);
		}
		ssize_t n = conn_read(c, c->rbuf + c->rlen, 4096);
		if (n <= 0)
			return -1;
		c->rlen += (size_t)n;
		c->rbuf[c->rlen] = '\0';
	}
	r->body = kd_xstrndup(c->rbuf + head_len, blen);
	r->body_len = blen;
	memmove(c->rbuf, c->rbuf + head_len + blen, c->rlen - head_len - blen + 1);
	c->rlen -= head_len + blen;
	return 0;
}

static void *conn_main(void *arg)
{
	struct kd_test_httpd_conn *c = arg;
	struct kd_test_httpd *srv = c->srv;
	if (c->ssl) {
		SSL_set_fd(c->ssl, c->fd);
		/* Blocking accept with a receive timeout so a failing client cannot hang us. */
		struct timeval tv = {2, 0};
		setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (SSL_accept(c->ssl) <= 0)
			c->dead = true;
		tv.tv_sec = 0;
		setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	while (!c->dead && !c->close_after && !atomic_load(&srv->stopping)) {
		struct kd_test_httpd_req r = {0};
		if (read_request(c, &r) < 0) {
			req_fini(&r);
			break;
		}
		r.conn_id = c->id;
		pthread_mutex_lock(&srv->lock);
		if (srv->nreqs == srv->capreqs) {
			srv->capreqs = srv->capreqs ? srv->capreqs * 2 : 64;
			srv->reqs = kd_xrealloc(srv->reqs, srv->capreqs * sizeof(*srv->reqs));
		}
		req_copy(&srv->reqs[srv->nreqs++], &r);
		pthread_mutex_unlock(&srv->lock);
		srv->handler(c, &r, srv->arg);
		req_fini(&r);
	}
	if (c->ssl && !c->dead)
		SSL_shutdown(c->ssl);
	shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_lock(&srv->lock);
	srv->open_conns--;
	pthread_mutex_unlock(&srv->lock);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct kd_test_httpd *srv = arg;
	while (!atomic_load(&srv->stopping)) {
		struct pollfd p = {srv->lfd, POLLIN, 0};
		int pr = poll(&p, 1, 50);
		if (pr <= 0)
			continue;
		int fd = accept4(srv->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct kd_test_httpd_conn *c = kd_xcalloc(1, sizeof(*c));
		c->srv = srv;
		c->fd = fd;
		c->rcap = 8192;
		c->rbuf = kd_xmalloc(c->rcap);
		c->rbuf[0] = '\0';
		if (srv->ctx)
			c->ssl = SSL_new(srv->ctx);
		pthread_mutex_lock(&srv->lock);
		c->id = ++srv->nconns;
		srv->open_conns++;
		if (srv->open_conns > srv->peak_conns)
			srv->peak_conns = srv->open_conns;
		c->next = srv->conns;
		srv->conns = c;
		pthread_mutex_unlock(&srv->lock);
		if (pthread_create(&c->thread, NULL, conn_main, c) != 0)
			abort();
	}
	return NULL;
}

struct kd_test_httpd *kd_test_httpd_start(kd_test_httpd_handler handler, void *arg,
                                          const char *cert_pem, const char *key_pem)
{
	signal(SIGPIPE, SIG_IGN);
	struct kd_test_httpd *srv = kd_xcalloc(1, sizeof(*srv));
	srv->handler = handler;
	srv->arg = arg;
	pthread_mutex_init(&srv->lock, NULL);
	if (cert_pem) {
		srv->ctx = SSL_CTX_new(TLS_server_method());
		if (!srv->ctx || SSL_CTX_use_certificate_chain_file(srv->ctx, cert_pem) != 1 ||
		    SSL_CTX_use_PrivateKey_file(srv->ctx, key_pem, SSL_FILETYPE_PEM) != 1) {
			fprintf(stderr, "kd_test_httpd: cannot load %s / %s\n", cert_pem, key_pem);
			abort();
		}
	}
	srv->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;
	setsockopt(srv->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (srv->lfd < 0 || bind(srv->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(srv->lfd, 512) < 0) {
		perror("kd_test_httpd: listen");
		abort();
	}
	socklen_t sl = sizeof(sa);
	getsockname(srv->lfd, (struct sockaddr *)&sa, &sl);
	srv->port = ntohs(sa.sin_port);
	snprintf(srv->url, sizeof(srv->url), "%s://127.0.0.1:%d", cert_pem ? "https" : "http",
	         srv->port);
	if (pthread_create(&srv->accept_thread, NULL, accept_main, srv) != 0)
		abort();
	return srv;
}

void kd_test_httpd_stop(struct kd_test_httpd *srv)
{
	if (!srv)
		return;
	atomic_store(&srv->stopping, true);
	pthread_join(srv->accept_thread, NULL);
	pthread_mutex_lock(&srv->lock);
	for (struct kd_test_httpd_conn *c = srv->conns; c; c = c->next)
		shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_unlock(&srv->lock);
	while (srv->conns) {
		struct kd_test_httpd_conn *c = srv->conns;
		srv->conns = c->next;
		pthread_join(c->thread, NULL);
		if (c->ssl)
			SSL_free(c->ssl);
		close(c->fd);
		free(c->rbuf);
		free(c);
	}
	close(srv->lfd);
	for (size_t i = 0; i < srv->nreqs; i++)
		req_fini(&srv->reqs[i]);
	free(srv->reqs);
	if (srv->ctx)
		SSL_CTX_free(srv->ctx);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}

int kd_test_httpd_port(const struct kd_test_httpd *srv)
{
	return srv->port;
}

const char *kd_test_httpd_url(const struct kd_test_httpd *srv)
{
	return srv->url;
}

size_t kd_test_httpd_count(struct kd_test_httpd *srv)
{
	pthread_mutex_lock(&srv->lock);
	size_t n = srv->nreqs;
	pthread_mutex_unlock(&srv->lock);
	return n;
}

bool kd_test_httpd_get(struct kd_test_httpd *srv, size_t i, struct kd_test_httpd_req *out)
{
	pthread_mutex_lock(&srv->lock);
	bool ok = i < srv->nreqs;
	if (ok)
		req_copy(out, &srv->reqs[i]);
	pthread_mutex_unlock(&srv->lock);
	return ok;
}

int kd_test_httpd_connections(struct kd_test_httpd *srv)
{
	pthread_mutex_lock(&srv->lock);
	int n = srv->nconns;
	pthread_mutex_unlock(&srv->lock);
	return n;
}

int kd_test_httpd_peak_connections(struct kd_test_httpd *srv)
{
	pthread_mutex_lock(&srv->lock);
	int n = srv->peak_conns;
	pthread_mutex_unlock(&srv->lock);
	return n;
}

/* --- files and certificates ---------------------------------------------------------------- */

char *kd_test_httpd_mkdtemp(void)
{
	char *d = kd_xstrdup("/tmp/kd-test-XXXXXX");
	if (!mkdtemp(d))
		abort();
	return d;
}

void kd_test_httpd_rmrf(const char *dir)
{
	if (!dir || strncmp(dir, "/tmp/kd-test-", 13))
		return;
	char *cmd = kd_xasprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "kd_test_httpd: cannot remove %s\n", dir);
	free(cmd);
}

void kd_test_httpd_write_file(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror(path);
		abort();
	}
	size_t n = strlen(content);
	if (write(fd, content, n) != (ssize_t)n)
		abort();
	close(fd);
}

int kd_test_httpd_tls_gen(const char *dir)
{
	char *cmd = kd_xasprintf(
	    "cd '%s' && "
	    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
	    "-subj /CN=kd-test-ca -keyout ca.key -out ca.pem && "
	    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
	    "-subj /CN=127.0.0.1 -keyout server.key -out server.csr && "
	    "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && "
	    "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
	    "-extfile san.ext -out server.pem && "
	    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
	    "-subj /CN=kd-client -keyout client.key -out client.csr && "
	    "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
	    "-out client.pem",
	    dir);
	char *full = kd_xasprintf("(%s) >/dev/null 2>&1", cmd);
	int rc = system(full);
	free(cmd);
	free(full);
	return rc == 0 ? 0 : -1;
}
