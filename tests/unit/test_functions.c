/* Unit tests for the sample functions (functions/hello, functions/sleep): each binary is spawned
 * on 127.0.0.1 (FN_LISTEN) with a free port in $PORT and driven by a small blocking client with
 * timeouts. Covered: hello's answer with K_REVISION, keep-alive (two requests, one connection),
 * sleep's idle waits served concurrently by one worker thread, busy waits, bad query values,
 * request bodies read and discarded on a kept-alive connection, chunked bodies refused (411),
 * HTTP/1.0 closed after the response, SIGTERM finishing the response in flight and exiting 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kd/common.h"

static pid_t server;
static uint16_t port;

static uint16_t free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	socklen_t sl = sizeof(sa);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* A connected client socket (2 s timeouts), retrying for up to 2 s while the server starts. */
static int dial(void)
{
	for (int i = 0; i < 200; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(fd >= 0);
		struct timeval tv = {.tv_sec = 2};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		struct sockaddr_in sa = {.sin_family = AF_INET,
		                         .sin_port = htons(port),
		                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		close(fd);
		usleep(10000);
	}
	fail_msg("cannot connect to 127.0.0.1:%u", port);
	return -1;
}

static void send_get(int fd, const char *target, bool close_conn)
{
	char req[256];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n", target,
	                 close_conn ? "Connection: close\r\n" : "");
	assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
}

/* Reads one response (headers + Content-Length body). Returns the status; body into out. */
static int read_response(int fd, char *out, size_t out_size)
{
	char buf[4096];
	size_t len = 0;
	char *hend = NULL;
	for (int i = 0; i < 100 && !hend && len < sizeof(buf) - 1; i++) {
		ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (r <= 0)
			return -1;
		len += (size_t)r;
		buf[len] = '\0';
		hend = strstr(buf, "\r\n\r\n");
	}
	if (!hend)
		return -1;
	int status = 0;
	assert_int_equal(sscanf(buf, "HTTP/1.1 %d", &status), 1);
	const char *cl = strcasestr(buf, "Content-Length:");
	assert_non_null(cl);
	size_t blen = (size_t)strtoul(cl + 15, NULL, 10);
	size_t have = len - (size_t)(hend + 4 - buf);
	for (int i = 0; i < 100 && have < blen && len < sizeof(buf) - 1; i++) {
		ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (r <= 0)
			return -1;
		len += (size_t)r;
		have += (size_t)r;
	}
	assert_true(have >= blen);
	snprintf(out, out_size, "%.*s", (int)blen, hend + 4);
	return status;
}

static int get(const char *target, char *out, size_t out_size)
{
	int fd = dial();
	send_get(fd, target, true);
	int st = read_response(fd, out, out_size);
	close(fd);
	return st;
}

static void spawn(const char *name, const char *threads)
{
	port = free_port();
	char path[512], ps[16];
	snprintf(path, sizeof(path), "%s/functions/%s", KD_BUILD_DIR, name);
	snprintf(ps, sizeof(ps), "%u", port);
	server = fork();
	assert_true(server >= 0);
	if (server == 0) {
		setenv("PORT", ps, 1);
		setenv("FN_LISTEN", "127.0.0.1", 1);
		setenv("FN_THREADS", threads, 1);
		setenv("K_REVISION", "rev-x", 1);
		execl(path, name, (char *)NULL);
		_exit(127);
	}
	close(dial()); /* up */
}

/* Waits (bounded) for the server to exit; returns its wait status or -1. */
static int reap_server(int max_ms)
{
	for (int i = 0; i < max_ms / 10; i++) {
		int st = 0;
		pid_t r = waitpid(server, &st, WNOHANG);
		if (r == server) {
			server = 0;
			return st;
		}
		usleep(10000);
	}
	return -1;
}

static int teardown(void **state)
{
	(void)state;
	if (server > 0) {
		kill(server, SIGKILL);
		waitpid(server, NULL, 0);
		server = 0;
	}
	return 0;
}

static void hello_answers_with_revision_and_keeps_alive(void **state)
{
	(void)state;
	spawn("hello", "2");
	int fd = dial();
	char body[256];
	send_get(fd, "/", false);
	assert_int_equal(read_response(fd, body, sizeof(body)), 200);
	assert_string_equal(body, "Hello from rev-x\n");
	send_get(fd, "/again?x=1", false); /* same connection */
	assert_int_equal(read_response(fd, body, sizeof(body)), 200);
	assert_string_equal(body, "Hello from rev-x\n");
	close(fd);
}

static void sleep_serves_idle_waits_concurrently(void **state)
{
	(void)state;
	spawn("sleep", "1"); /* one worker thread: concurrency comes from the timers */
	enum { N = 20 };
	int fds[N];
	uint64_t t0 = kd_now_ns();
	for (int i = 0; i < N; i++) {
		fds[i] = dial();
		send_get(fds[i], "/?ms=300&busy=0", false);
	}
	char body[256];
	for (int i = 0; i < N; i++) {
		assert_int_equal(read_response(fds[i], body, sizeof(body)), 200);
		assert_non_null(strstr(body, "slept 300 ms (idle) in rev-x"));
		close(fds[i]);
	}
	/* one after another would take 6 s */
	assert_true(kd_now_ns() - t0 < 3000ull * 1000000ull);
}

static void sleep_busy_waits_and_rejects_bad_values(void **state)
{
	(void)state;
	spawn("sleep", "2");
	char body[256];
	uint64_t t0 = kd_now_ns();
	assert_int_equal(get("/?ms=50&busy=1", body, sizeof(body)), 200);
	assert_true(kd_now_ns() - t0 >= 50ull * 1000000ull);
	assert_non_null(strstr(body, "slept 50 ms (busy)"));
	assert_int_equal(get("/", body, sizeof(body)), 200);
	assert_non_null(strstr(body, "slept 0 ms (idle)"));
	assert_int_equal(get("/?ms=abc", body, sizeof(body)), 400);
	assert_int_equal(get("/?ms=-1", body, sizeof(body)), 400);
	assert_int_equal(get("/?ms=600001", body, sizeof(body)), 400);
	assert_int_equal(get("/?ms=1&busy=2", body, sizeof(body)), 400);
}

static void bodies_are_discarded_chunked_refused_http10_closed(void **state)
{
	(void)state;
	spawn("hello", "1");
	char body[256];
	/* a body with Content-Length, then a second request on the same connection */
	int fd = dial();
	static const char post[] =
	    "POST /?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n"
	    "\r\nhello world";
	assert_int_equal(send(fd, post, sizeof(post) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(post) - 1);
	assert_int_equal(read_response(fd, body, sizeof(body)), 200);
	assert_string_equal(body, "Hello from rev-x\n");
	send_get(fd, "/", false);
	assert_int_equal(read_response(fd, body, sizeof(body)), 200);
	assert_string_equal(body, "Hello from rev-x\n");
	close(fd);
	/* chunked: 411, then the connection is closed */
	fd = dial();
	static const char chunked[] = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: "
	                              "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
	assert_int_equal(send(fd, chunked, sizeof(chunked) - 1, MSG_NOSIGNAL),
	                 (ssize_t)sizeof(chunked) - 1);
	assert_int_equal(read_response(fd, body, sizeof(body)), 411);
	char c;
	assert_int_equal(recv(fd, &c, 1, 0), 0);
	close(fd);
	/* HTTP/1.0 without keep-alive: the answer, then EOF */
	fd = dial();
	static const char h10[] = "GET / HTTP/1.0\r\n\r\n";
	assert_int_equal(send(fd, h10, sizeof(h10) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(h10) - 1);
	assert_int_equal(read_response(fd, body, sizeof(body)), 200);
	assert_string_equal(body, "Hello from rev-x\n");
	assert_int_equal(recv(fd, &c, 1, 0), 0);
	close(fd);
}

static void sigterm_finishes_response_in_flight_and_exits_zero(void **state)
{
	(void)state;
	spawn("sleep", "2");
	int fd = dial();
	send_get(fd, "/?ms=300", false);
	usleep(50000);
	assert_int_equal(kill(server, SIGTERM), 0);
	char body[256];
	assert_int_equal(read_response(fd, body, sizeof(body)), 200);
	assert_non_null(strstr(body, "slept 300 ms"));
	close(fd);
	int st = reap_server(3000);
	assert_true(st >= 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	/* and it no longer listens */
	int c = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons(port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), -1);
	close(c);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(hello_answers_with_revision_and_keeps_alive, teardown),
	    cmocka_unit_test_teardown(sleep_serves_idle_waits_concurrently, teardown),
	    cmocka_unit_test_teardown(sleep_busy_waits_and_rejects_bad_values, teardown),
	    cmocka_unit_test_teardown(bodies_are_discarded_chunked_refused_http10_closed, teardown),
	    cmocka_unit_test_teardown(sigterm_finishes_response_in_flight_and_exits_zero, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
