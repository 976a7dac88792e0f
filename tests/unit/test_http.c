/* Unit tests for kd_http (server + forwarder) on loopback: the server answers from the handler
 * and later (held requests), forwards with bodies streamed both ways (known length and chunked,
 * larger than its buffers), strips hop-by-hop headers and adds X-Forwarded-*, reuses upstream
 * connections, reports an upstream that was never reached (so the caller may retry) apart from
 * one that failed mid-exchange, survives clients that go away, and names a taken address.
 * The upstream is tests/support's threaded HTTP server; clients are blocking curl in a thread
 * while the test runs the loop. */
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../lib/kd_http_priv.h"
#include "kd/certs.h"
#include "kd/common.h"
#include "kd/http.h"
#include "kd/loop.h"
#include "kd_test_httpd.h"

enum mode {
	M_RESPOND,
	M_HOLD,
	M_HOLD_MANY,
	M_FORWARD,
	M_FORWARD_SET,
	M_FORWARD_DEAD_FIRST,
	M_BODY, /* body_max server: answers with the body's length and its first bytes */
};

struct fx {
	struct kd_loop *loop;
	struct kd_http_server *srv;
	struct kd_test_httpd *up;
	enum mode mode;
	int dead_port;
	int dones, reached, not_reached, aborted, new_conns, upstream_fail;
	int last_status;
	struct kd_timer *later;
	struct kd_http_req *held;
	struct kd_http_req *held_list[64];
	int n_held;
	int handled;
	bool held_forward; /* M_HOLD_MANY: forward the held requests (else answer 503) */
};

/* ---- the upstream --------------------------------------------------------------------------- */

static void up_handler(struct kd_test_httpd_conn *c, const struct kd_test_httpd_req *r, void *arg)
{
	(void)arg;
	if (strcmp(r->path, "/big") == 0) { /* 2 MiB, chunked, in pieces */
		kd_test_httpd_begin_chunked(c, 200, "application/octet-stream");
		char piece[8192];
		for (int i = 0; i < 256; i++) {
			memset(piece, 'a' + (i % 26), sizeof(piece));
			if (kd_test_httpd_chunk(c, piece, sizeof(piece)) < 0)
				return;
		}
		kd_test_httpd_end_chunked(c);
	} else if (strcmp(r->path, "/echo") == 0) {
		kd_test_httpd_respond(c, 200, "application/octet-stream", r->body);
	} else if (strcmp(r->path, "/die") == 0) {
		kd_test_httpd_close(c);
	} else if (strcmp(r->path, "/slow") == 0) {
		kd_test_httpd_sleep(c, 300);
		kd_test_httpd_respond(c, 200, "text/plain", "slow\n");
	} else {
		char *xu = kd_test_httpd_req_header(r, "X-Up-Want");
		char raw[256];
		snprintf(raw, sizeof(raw),
		         "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nX-Up: %s\r\n"
		         "Keep-Alive: timeout=5\r\nContent-Length: 3\r\n\r\nup\n",
		         xu ? xu : "none");
		free(xu);
		kd_test_httpd_raw(c, raw, strlen(raw));
	}
}

/* ---- the server under test ------------------------------------------------------------------ */

static void fwd_done(void *ud, struct kd_http_req *req, const struct kd_http_fwd_result *res);

static void answer_later(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	struct fx *f = arg;
	static const char msg[] = "no instance\n";
	if (f->mode == M_HOLD_MANY) {
		for (int i = 0; i < f->n_held; i++) {
			if (f->held_forward) {
				struct kd_http_fwd_opts o = {.timeout_ms = 5000};
				assert_int_equal(kd_http_req_forward(f->held_list[i], "127.0.0.1",
				                                     kd_test_httpd_port(f->up), &o,
				                                     fwd_done, f),
				                 0);
			} else {
				kd_http_req_respond(f->held_list[i], 503, "text/plain", msg,
				                    sizeof(msg) - 1);
			}
		}
		f->n_held = 0;
		return;
	}
	assert_int_equal(kd_http_req_respond(f->held, 503, "text/plain", msg, sizeof(msg) - 1), 0);
	assert_int_equal(kd_http_req_respond(f->held, 200, NULL, NULL, 0), -EALREADY);
	f->held = NULL;
}

static void handler(void *ud, struct kd_http_req *req)
{
	struct fx *f = ud;
	f->handled++;
	switch (f->mode) {
	case M_BODY: {
		size_t len = 0;
		const char *b = kd_http_req_body(req, &len);
		assert_non_null(b);
		assert_int_equal(b[len], '\0');
		assert_int_equal(kd_http_req_forward(req, "127.0.0.1", 80, NULL, fwd_done, f),
		                 -EINVAL);
		if (strcmp(kd_http_req_target(req), "/hold") == 0) { /* answered by a timer */
			f->held = req;
			kd_loop_timer_start(f->later, 50);
			break;
		}
		char *body = kd_xasprintf("len=%zu head=%.8s", len, b);
		kd_http_req_respond(req, 200, "text/plain", body, strlen(body));
		free(body);
		break;
	}
	case M_RESPOND: {
		const char *rev = kd_http_req_header(req, "knative-serving-revision");
		char *body =
		    kd_xasprintf("%s %s rev=%s peer=%s\n", kd_http_req_method(req),
		                 kd_http_req_target(req), rev ? rev : "-", kd_http_req_peer(req));
		static const char *const extra[] = {"K-Network-Hash: abc123"};
		kd_http_req_respond_with(req, 200, "text/plain", extra, 1, body, strlen(body));
		free(body);
		break;
	}
	case M_HOLD:
		f->held = req;
		kd_loop_timer_start(f->later, 50);
		break;
	case M_HOLD_MANY:
		f->held_list[f->n_held++] = req;
		if (f->n_held == 1)
			kd_loop_timer_start(f->later, 200);
		break;
	case M_FORWARD_SET: {
		static const char *const set[] = {"Knative-Serving-Revision: real-00001",
		                                  "X-Added: yes"};
		struct kd_http_fwd_opts o = {.timeout_ms = 5000,
		                             .set_headers = set,
		                             .n_set_headers = 2,
		                             .host = "rewritten.example"};
		assert_int_equal(kd_http_req_forward(req, "127.0.0.1", kd_test_httpd_port(f->up),
		                                     &o, fwd_done, f),
		                 0);
		break;
	}
	case M_FORWARD:
	case M_FORWARD_DEAD_FIRST: {
		int port = f->mode == M_FORWARD ? kd_test_httpd_port(f->up) : f->dead_port;
		struct kd_http_fwd_opts o = {.timeout_ms = 5000};
		assert_int_equal(kd_http_req_forward(req, "127.0.0.1", port, &o, fwd_done, f), 0);
		assert_int_equal(kd_http_req_forward(req, "127.0.0.1", port, &o, fwd_done, f),
		                 -EALREADY);
		break;
	}
	}
}

static void fwd_done(void *ud, struct kd_http_req *req, const struct kd_http_fwd_result *res)
{
	struct fx *f = ud;
	f->dones++;
	f->last_status = res->status;
	if (res->new_conn)
		f->new_conns++;
	if (!res->reached) {
		f->not_reached++;
		assert_non_null(res->error);
		/* Never reached: ours again; send it to the live upstream. */
		struct kd_http_fwd_opts o = {.timeout_ms = 5000};
		assert_int_equal(kd_http_req_forward(req, "127.0.0.1", kd_test_httpd_port(f->up),
		                                     &o, fwd_done, f),
		                 0);
		return;
	}
	f->reached++;
	if (res->client_aborted)
		f->aborted++;
	if (!res->upstream_ok)
		f->upstream_fail++;
}

static int closed_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	close(fd); /* nothing listens there now */
	return ntohs(a.sin_port);
}

static int setup(void **state)
{
	struct fx *f = kd_xcalloc(1, sizeof(*f));
	f->loop = kd_loop_new();
	f->up = kd_test_httpd_start(up_handler, NULL, NULL, NULL);
	f->later = kd_loop_timer_new(f->loop, answer_later, f);
	f->dead_port = closed_port();
	struct kd_http_server_opts o = {.bind_addr = "127.0.0.1"};
	struct kd_error *err = NULL;
	f->srv = kd_http_server_new(f->loop, &o, handler, f, &err);
	assert_null(err);
	assert_non_null(f->srv);
	assert_true(kd_http_server_port(f->srv) > 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	kd_http_server_free(f->srv);
	kd_loop_timer_free(f->later);
	kd_test_httpd_stop(f->up);
	kd_loop_free(f->loop);
	free(f);
	return 0;
}

/* ---- clients -------------------------------------------------------------------------------- */

struct call {
	const char *path;
	const char *method;
	struct curl_slist *hdrs;
	const char *body;
	size_t body_len;
	size_t sent;
	/* results */
	long status;
	char *resp;
	size_t resp_len;
	char *resp_hdrs;
	size_t resp_hdrs_len;
	double secs;
	int port;
	unsigned delay_ms; /* the client waits this long before sending */
	CURLcode rc;
	bool chunked_upload;
	const char *ca_pem; /* https://localhost, trusting this CA only */
};

static size_t c_write(char *p, size_t s, size_t n, void *arg)
{
	struct call *c = arg;
	c->resp = kd_xrealloc(c->resp, c->resp_len + s * n + 1);
	memcpy(c->resp + c->resp_len, p, s * n);
	c->resp_len += s * n;
	c->resp[c->resp_len] = '\0';
	return s * n;
}

static size_t c_header(char *p, size_t s, size_t n, void *arg)
{
	struct call *c = arg;
	c->resp_hdrs = kd_xrealloc(c->resp_hdrs, c->resp_hdrs_len + s * n + 1);
	memcpy(c->resp_hdrs + c->resp_hdrs_len, p, s * n);
	c->resp_hdrs_len += s * n;
	c->resp_hdrs[c->resp_hdrs_len] = '\0';
	return s * n;
}

static size_t c_read(char *buf, size_t s, size_t n, void *arg)
{
	struct call *c = arg;
	size_t k = KD_MIN(s * n, c->body_len - c->sent);
	k = KD_MIN(k, (size_t)7000); /* odd pieces */
	memcpy(buf, c->body + c->sent, k);
	c->sent += k;
	return k;
}

static void *client_main(void *arg)
{
	struct call *c = arg;
	CURL *e = curl_easy_init();
	char url[256];
	snprintf(url, sizeof(url), "%s:%d%s", c->ca_pem ? "https://localhost" : "http://127.0.0.1",
	         c->port, c->path);
	curl_easy_setopt(e, CURLOPT_URL, url);
	char resolve[64];
	snprintf(resolve, sizeof(resolve), "localhost:%d:127.0.0.1", c->port);
	struct curl_slist *res = curl_slist_append(NULL, resolve);
	curl_easy_setopt(e, CURLOPT_RESOLVE, res);
	struct curl_blob ca = {(void *)c->ca_pem, c->ca_pem ? strlen(c->ca_pem) : 0,
	                       CURL_BLOB_COPY};
	if (c->ca_pem) {
		curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &ca);
		curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
		curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	}
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, c_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, c_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
	if (c->hdrs)
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->hdrs);
	if (c->body) {
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, c_read);
		curl_easy_setopt(e, CURLOPT_READDATA, c);
		curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE,
		                 c->chunked_upload ? (curl_off_t)-1 : (curl_off_t)c->body_len);
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->method ? c->method : "POST");
	} else if (c->method) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->method);
	}
	if (c->delay_ms)
		usleep(c->delay_ms * 1000u);
	uint64_t t0 = kd_now_ns();
	c->rc = curl_easy_perform(e);
	c->secs = (double)(kd_now_ns() - t0) / 1e9;
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &c->status);
	curl_easy_cleanup(e);
	curl_slist_free_all(res);
	return NULL;
}

static void *batch_main(void *arg)
{
	struct call *c = arg;
	client_main(c);
	return NULL;
}

/* Runs the calls concurrently (one thread each) while this thread runs the loop; bounded. */
static void run_calls(struct fx *f, struct call *calls, size_t n)
{
	pthread_t *th = kd_xcalloc(n, sizeof(*th));
	atomic_int *done = kd_xcalloc(1, sizeof(*done));
	for (size_t i = 0; i < n; i++) {
		calls[i].port = calls[i].port ? calls[i].port : kd_http_server_port(f->srv);
		assert_int_equal(pthread_create(&th[i], NULL, batch_main, &calls[i]), 0);
	}
	uint64_t deadline = kd_now_ns() + 15ull * 1000000000ull;
	for (size_t i = 0; i < n; i++) {
		for (;;) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			if (pthread_timedjoin_np(th[i], NULL, &ts) == 0)
				break;
			assert_true(kd_now_ns() < deadline);
			kd_loop_run_once(f->loop, 5);
		}
	}
	/* Let the server finish its side (completion callbacks). */
	for (int i = 0; i < 20; i++)
		kd_loop_run_once(f->loop, 5);
	free(done);
	free(th);
}

static void call_fini(struct call *c)
{
	free(c->resp);
	free(c->resp_hdrs);
	curl_slist_free_all(c->hdrs);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void responds_from_the_handler_with_target_and_headers(void **state)
{
	struct fx *f = *state;
	f->mode = M_RESPOND;
	struct call c = {.path = "/a/b?x=1&y=2"};
	c.hdrs = curl_slist_append(NULL, "Knative-Serving-Revision: hello-00001");
	run_calls(f, &c, 1);
	assert_int_equal(c.rc, CURLE_OK);
	assert_int_equal(c.status, 200);
	assert_string_equal(c.resp, "GET /a/b?x=1&y=2 rev=hello-00001 peer=127.0.0.1\n");
	assert_non_null(strstr(c.resp_hdrs, "K-Network-Hash: abc123\r\n"));
	call_fini(&c);
}

static void held_request_is_answered_later(void **state)
{
	struct fx *f = *state;
	f->mode = M_HOLD;
	struct call c = {.path = "/held"};
	run_calls(f, &c, 1);
	assert_int_equal(c.status, 503);
	assert_string_equal(c.resp, "no instance\n");
	assert_true(c.secs >= 0.045);
	call_fini(&c);
}

static void many_held_requests_are_all_forwarded(void **state)
{
	struct fx *f = *state;
	f->mode = M_HOLD_MANY;
	f->held_forward = true;
	struct call c[20];
	memset(c, 0, sizeof(c));
	for (int i = 0; i < 20; i++) {
		c[i].path = "/x";
		c[i].delay_ms =
		    i ? 20u + (unsigned)i : 0u; /* the first is held before the rest come */
	}
	run_calls(f, c, 20);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(c[i].status, 201);
		assert_string_equal(c[i].resp, "up\n");
		call_fini(&c[i]);
	}
	assert_int_equal(f->dones, 20);
}

static void forward_relays_status_headers_and_strips_hop_by_hop(void **state)
{
	struct fx *f = *state;
	f->mode = M_FORWARD;
	struct call c = {.path = "/hdrs?q=1"};
	c.hdrs = curl_slist_append(NULL, "Host: hello.default.example.com");
	c.hdrs = curl_slist_append(c.hdrs, "Connection: keep-alive, X-Secret");
	c.hdrs = curl_slist_append(c.hdrs, "X-Secret: do-not-forward");
	c.hdrs = curl_slist_append(c.hdrs, "Keep-Alive: timeout=9");
	c.hdrs = curl_slist_append(c.hdrs, "X-Up-Want: yes");
	c.hdrs = curl_slist_append(c.hdrs, "X-Forwarded-For: 10.9.9.9");
	run_calls(f, &c, 1);
	assert_int_equal(c.rc, CURLE_OK);
	assert_int_equal(c.status, 201);
	assert_string_equal(c.resp, "up\n");
	assert_non_null(strstr(c.resp_hdrs, "X-Up: yes\r\n"));
	assert_null(strstr(c.resp_hdrs, "Keep-Alive: timeout=5")); /* hop-by-hop, upstream's */
	assert_int_equal(f->dones, 1);
	assert_int_equal(f->reached, 1);
	assert_int_equal(f->last_status, 201);
	struct kd_test_httpd_req r = {0};
	assert_true(kd_test_httpd_get(f->up, 0, &r));
	assert_string_equal(r.target, "/hdrs?q=1");
	char *v;
	assert_non_null(v = kd_test_httpd_req_header(&r, "Host"));
	assert_string_equal(v, "hello.default.example.com");
	free(v);
	assert_non_null(v = kd_test_httpd_req_header(&r, "X-Forwarded-For"));
	assert_string_equal(v, "10.9.9.9, 127.0.0.1");
	free(v);
	assert_non_null(v = kd_test_httpd_req_header(&r, "X-Forwarded-Proto"));
	assert_string_equal(v, "http");
	free(v);
	assert_null(kd_test_httpd_req_header(&r, "X-Secret"));
	assert_null(kd_test_httpd_req_header(&r, "Keep-Alive"));
	assert_null(kd_test_httpd_req_header(&r, "Expect"));
	kd_test_httpd_req_fini(&r);
	call_fini(&c);
}

static void forward_sets_headers_the_client_cannot_spoof(void **state)
{
	struct fx *f = *state;
	f->mode = M_FORWARD_SET;
	struct call c = {.path = "/x"};
	c.hdrs = curl_slist_append(NULL, "Knative-Serving-Revision: spoofed");
	c.hdrs = curl_slist_append(c.hdrs, "Host: original.example");
	run_calls(f, &c, 1);
	assert_int_equal(c.status, 201);
	struct kd_test_httpd_req r = {0};
	assert_true(kd_test_httpd_get(f->up, 0, &r));
	assert_null(strstr(r.head, "spoofed"));
	char *v;
	assert_non_null(v = kd_test_httpd_req_header(&r, "Knative-Serving-Revision"));
	assert_string_equal(v, "real-00001");
	free(v);
	assert_non_null(v = kd_test_httpd_req_header(&r, "X-Added"));
	assert_string_equal(v, "yes");
	free(v);
	assert_non_null(v = kd_test_httpd_req_header(&r, "Host"));
	assert_string_equal(v, "rewritten.example");
	free(v);
	kd_test_httpd_req_fini(&r);
	call_fini(&c);
}

static char *pattern(size_t n)
{
	char *b = kd_xmalloc(n + 1);
	for (size_t i = 0; i < n; i++)
		b[i] = (char)('A' + (i * 7 + i / 1000) % 26);
	b[n] = '\0';
	return b;
}

static void forward_streams_large_bodies_both_ways(void **state)
{
	struct fx *f = *state;
	f->mode = M_FORWARD;
	size_t n = 3u * 1024u * 1024u; /* far beyond the 64 KiB buffers of each direction */
	char *body = pattern(n);
	struct call c[3] = {
	    {.path = "/echo", .body = body, .body_len = n},
	    {.path = "/echo", .body = body, .body_len = n / 3, .chunked_upload = true},
	    {.path = "/big"},
	};
	run_calls(f, c, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(c[i].rc, CURLE_OK);
		assert_int_equal(c[i].status, 200);
	}
	assert_int_equal(c[0].resp_len, n);
	assert_memory_equal(c[0].resp, body, n);
	assert_int_equal(c[1].resp_len, n / 3);
	assert_memory_equal(c[1].resp, body, n / 3);
	assert_int_equal(c[2].resp_len, 256u * 8192u);
	assert_int_equal(c[2].resp[0], 'a');
	assert_int_equal(c[2].resp[256u * 8192u - 1], 'a' + 255 % 26);
	assert_int_equal(f->dones, 3);
	assert_int_equal(f->upstream_fail, 0);
	for (int i = 0; i < 3; i++)
		call_fini(&c[i]);
	free(body);
}

static void forward_reuses_the_upstream_connection(void **state)
{
	struct fx *f = *state;
	f->mode = M_FORWARD;
	for (int i = 0; i < 3; i++) {
		struct call c = {.path = "/x"};
		run_calls(f, &c, 1);
		assert_int_equal(c.status, 201);
		call_fini(&c);
	}
	assert_int_equal(f->dones, 3);
	assert_int_equal(f->new_conns, 1);
	assert_int_equal(kd_test_httpd_connections(f->up), 1);
}

static void unreachable_upstream_is_reported_not_reached_and_can_be_retried(void **state)
{
	struct fx *f = *state;
	f->mode = M_FORWARD_DEAD_FIRST;
	struct call c = {.path = "/echo", .body = "payload", .body_len = 7};
	run_calls(f, &c, 1);
	assert_int_equal(c.rc, CURLE_OK);
	assert_int_equal(c.status, 200);
	assert_string_equal(c.resp, "payload");
	assert_int_equal(f->not_reached, 1);
	assert_int_equal(f->reached, 1);
	call_fini(&c);
}

static void upstream_failing_mid_exchange_is_a_502_and_reached(void **state)
{
	struct fx *f = *state;
	f->mode = M_FORWARD;
	struct call c = {.path = "/die"};
	run_calls(f, &c, 1);
	assert_int_equal(c.status, 502);
	assert_non_null(strstr(c.resp, "kd-http: upstream failed"));
	assert_int_equal(f->reached, 1);
	assert_int_equal(f->not_reached, 0);
	assert_int_equal(f->upstream_fail, 1);
	assert_int_equal(f->last_status, 502);
	call_fini(&c);
}

static void concurrent_forwards_all_succeed(void **state)
{
	struct fx *f = *state;
	f->mode = M_FORWARD;
	struct call c[20];
	memset(c, 0, sizeof(c));
	for (int i = 0; i < 20; i++)
		c[i].path = "/slow";
	run_calls(f, c, 20);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(c[i].status, 200);
		assert_string_equal(c[i].resp, "slow\n");
		call_fini(&c[i]);
	}
	assert_int_equal(f->dones, 20);
	assert_true(kd_test_httpd_peak_connections(f->up) >= 10); /* in parallel, not one by one */
}

static void client_going_away_mid_forward_is_reported_once(void **state)
{
	struct fx *f = *state;
	f->mode = M_FORWARD;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)kd_http_server_port(f->srv)),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	static const char req[] = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n";
	assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
	uint64_t t0 = kd_now_ns();
	while (kd_now_ns() - t0 < 50000000ull)
		kd_loop_run_once(f->loop, 5);
	close(fd);
	while (kd_now_ns() - t0 < 1000000000ull && f->dones == 0)
		kd_loop_run_once(f->loop, 5);
	assert_int_equal(f->dones, 1);
	/* Still serving. */
	struct call c = {.path = "/x"};
	run_calls(f, &c, 1);
	assert_int_equal(c.status, 201);
	assert_int_equal(f->dones, 2);
	call_fini(&c);
}

static void taken_or_bad_address_is_a_clear_error(void **state)
{
	struct fx *f = *state;
	char want[64];
	snprintf(want, sizeof(want), "listen 127.0.0.1:%d: Address already in use",
	         kd_http_server_port(f->srv));
	struct kd_http_server_opts o = {.bind_addr = "127.0.0.1",
	                                .port = kd_http_server_port(f->srv)};
	struct kd_error *err = NULL;
	assert_null(kd_http_server_new(f->loop, &o, handler, f, &err));
	assert_non_null(err);
	assert_string_equal(err->msg, want);
	kd_error_free(err);
	err = NULL;
	o.bind_addr = "999.1.1.1";
	o.port = 80;
	assert_null(kd_http_server_new(f->loop, &o, handler, f, &err));
	assert_string_equal(err->msg, "listen 999.1.1.1:80: not an IPv4 or IPv6 address");
	kd_error_free(err);
	err = NULL;
	o.bind_addr = "127.0.0.1";
	o.port = 99999;
	assert_null(kd_http_server_new(f->loop, &o, handler, f, &err));
	assert_string_equal(err->msg, "listen 127.0.0.1:99999: the port is not in 0-65535");
	kd_error_free(err);
}

/* A server with other options than setup's (replaces f->srv). */
static void restart_server(struct fx *f, const struct kd_http_server_opts *o)
{
	kd_http_server_free(f->srv);
	struct kd_error *err = NULL;
	f->srv = kd_http_server_new(f->loop, o, handler, f, &err);
	assert_null(err);
	assert_non_null(f->srv);
}

static void body_server_delivers_the_whole_body_and_refuses_one_too_large(void **state)
{
	struct fx *f = *state;
	struct kd_http_server_opts o = {.bind_addr = "127.0.0.1", .body_max = 300000};
	restart_server(f, &o);
	f->mode = M_BODY;
	char *big = pattern(200000);
	char *huge = pattern(300001);
	struct call c[5] = {
	    {.path = "/known", .body = big, .body_len = 200000},
	    {.path = "/chunked", .body = big, .body_len = 200000, .chunked_upload = true},
	    {.path = "/empty", .method = "POST", .body = "", .body_len = 0},
	    {.path = "/huge", .body = huge, .body_len = 300001},
	    {.path = "/hold", .body = big, .body_len = 1000},
	};
	run_calls(f, c, 5);
	char want[64];
	snprintf(want, sizeof(want), "len=200000 head=%.8s", big);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(c[i].rc, CURLE_OK);
		assert_int_equal(c[i].status, 200);
		assert_string_equal(c[i].resp, want);
	}
	assert_int_equal(c[2].status, 200);
	assert_string_equal(c[2].resp, "len=0 head=");
	assert_int_equal(c[3].status, 413);
	assert_non_null(strstr(c[3].resp, "over 300000 bytes"));
	assert_int_equal(c[4].status, 503); /* held with its body, answered later */
	assert_string_equal(c[4].resp, "no instance\n");
	assert_int_equal(f->handled, 4); /* the refused one never reached the handler */
	for (int i = 0; i < 5; i++)
		call_fini(&c[i]);
	free(big);
	free(huge);
}

static void tls_serves_its_certificate_and_swaps_it_without_cutting_a_request(void **state)
{
	struct fx *f = *state;
	static const char *const names[] = {"localhost"};
	struct kd_certs a, b;
	struct kd_error *err = NULL;
	assert_int_equal(kd_certs_make(names, 1, time(NULL), 3600, &a, &err), 0);
	assert_int_equal(kd_certs_make(names, 1, time(NULL), 3600, &b, &err), 0);
	struct kd_http_server_opts o = {
	    .bind_addr = "127.0.0.1", .tls_cert_pem = a.cert_pem, .tls_key_pem = a.key_pem};
	restart_server(f, &o);
	f->mode = M_RESPOND;
	struct call plain = {.path = "/x", .ca_pem = a.ca_pem};
	struct call other = {.path = "/x", .ca_pem = b.ca_pem};
	run_calls(f, &plain, 1);
	run_calls(f, &other, 1);
	assert_int_equal(plain.rc, CURLE_OK);
	assert_int_equal(plain.status, 200);
	assert_int_equal(other.rc, CURLE_PEER_FAILED_VERIFICATION); /* a is served, not b */
	call_fini(&plain);
	call_fini(&other);

	/* a request held across the swap finishes on the old certificate's connection */
	f->mode = M_HOLD;
	pthread_t th;
	struct call held = {
	    .path = "/held", .ca_pem = a.ca_pem, .port = kd_http_server_port(f->srv)};
	assert_int_equal(pthread_create(&th, NULL, batch_main, &held), 0);
	for (int i = 0; i < 2000 && !f->held; i++)
		kd_loop_run_once(f->loop, 5);
	assert_non_null(f->held);
	kd_loop_timer_stop(f->later);
	assert_int_equal(kd_http_server_set_tls(f->srv, b.cert_pem, b.key_pem, &err), 0);
	assert_null(err);
	/* refused pairs change nothing */
	assert_int_equal(kd_http_server_set_tls(f->srv, "junk", b.key_pem, &err), -EINVAL);
	assert_non_null(err);
	kd_error_free(err);
	err = NULL;
	assert_int_equal(kd_http_server_set_tls(f->srv, a.cert_pem, b.key_pem, &err), -EINVAL);
	assert_non_null(strstr(kd_error_msg(err), "previous"));
	kd_error_free(err);
	err = NULL;
	kd_loop_timer_start(f->later, 0); /* answer_later: 503 */
	for (;;) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 0;
		ts.tv_nsec = ts.tv_nsec >= 999000000 ? ts.tv_nsec : ts.tv_nsec + 1000000;
		if (pthread_timedjoin_np(th, NULL, &ts) == 0)
			break;
		kd_loop_run_once(f->loop, 5);
	}
	assert_int_equal(held.rc, CURLE_OK);
	assert_int_equal(held.status, 503);
	call_fini(&held);

	f->mode = M_RESPOND;
	struct call old = {.path = "/x", .ca_pem = a.ca_pem};
	struct call now = {.path = "/x", .ca_pem = b.ca_pem};
	run_calls(f, &old, 1);
	run_calls(f, &now, 1);
	assert_int_equal(old.rc, CURLE_PEER_FAILED_VERIFICATION);
	assert_int_equal(now.rc, CURLE_OK);
	assert_int_equal(now.status, 200);
	call_fini(&old);
	call_fini(&now);

	/* a plain server has no certificate to swap; a bad pair at start is refused */
	struct kd_http_server_opts bad = {
	    .bind_addr = "127.0.0.1", .tls_cert_pem = a.cert_pem, .tls_key_pem = NULL};
	assert_null(kd_http_server_new(f->loop, &bad, handler, f, &err));
	assert_non_null(strstr(kd_error_msg(err), "both"));
	kd_error_free(err);
	err = NULL;
	kd_certs_fini(&a);
	kd_certs_fini(&b);
}

static void header_lines_content_length_and_hop_by_hop_are_parsed(void **state)
{
	(void)state;
	struct kd_http_hline h;
	assert_int_equal(kd_http_hline_parse("HTTP/1.1 200 OK\r\n", 17, &h), 0);
	assert_int_equal(kd_http_hline_parse("\r\n", 2, &h), 0);
	assert_int_equal(kd_http_hline_parse("no colon\r\n", 10, &h), -1);
	assert_int_equal(kd_http_hline_parse(": empty name\r\n", 14, &h), -1);
	static const char l[] = "X-Thing: \t a b \t\r\n";
	assert_int_equal(kd_http_hline_parse(l, sizeof(l) - 1, &h), 1);
	assert_int_equal(h.name_len, 7);
	assert_memory_equal(h.name, "X-Thing", 7);
	assert_int_equal(h.value_len, 3);
	assert_memory_equal(h.value, "a b", 3);
	long long v = -1;
	assert_int_equal(kd_http_content_length("1234", 4, &v), 0);
	assert_int_equal(v, 1234);
	assert_int_equal(kd_http_content_length("-1", 2, &v), -1);
	assert_int_equal(kd_http_content_length("12a", 3, &v), -1);
	assert_int_equal(kd_http_content_length("", 0, &v), -1);
	assert_int_equal(kd_http_content_length("9999999999999999999", 19, &v), -1);
	assert_true(kd_http_hop_by_hop("connection", 10, NULL));
	assert_true(kd_http_hop_by_hop("Transfer-Encoding", 17, NULL));
	assert_false(kd_http_hop_by_hop("Content-Type", 12, NULL));
	assert_true(kd_http_hop_by_hop("X-Secret", 8, "keep-alive, x-secret"));
	assert_false(kd_http_hop_by_hop("X-Secre", 7, "keep-alive, x-secret"));
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(responds_from_the_handler_with_target_and_headers,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(held_request_is_answered_later, setup, teardown),
	    cmocka_unit_test_setup_teardown(many_held_requests_are_all_forwarded, setup, teardown),
	    cmocka_unit_test_setup_teardown(forward_relays_status_headers_and_strips_hop_by_hop,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(forward_streams_large_bodies_both_ways, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(forward_sets_headers_the_client_cannot_spoof, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(forward_reuses_the_upstream_connection, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        unreachable_upstream_is_reported_not_reached_and_can_be_retried, setup, teardown),
	    cmocka_unit_test_setup_teardown(upstream_failing_mid_exchange_is_a_502_and_reached,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(concurrent_forwards_all_succeed, setup, teardown),
	    cmocka_unit_test_setup_teardown(client_going_away_mid_forward_is_reported_once, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(taken_or_bad_address_is_a_clear_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        body_server_delivers_the_whole_body_and_refuses_one_too_large, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        tls_serves_its_certificate_and_swaps_it_without_cutting_a_request, setup, teardown),
	    cmocka_unit_test(header_lines_content_length_and_hop_by_hop_are_parsed),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
