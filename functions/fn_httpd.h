/* functions/fn_httpd.h: the HTTP/1.1 server shared by the sample functions (hello, sleep), on
 * libmicrohttpd (fn_httpd.c, linked into each function's binary). A function implements
 * fn_handle() and calls fn_serve() from main().
 *
 * - Listens on 0.0.0.0:$PORT (default 8080; $FN_LISTEN overrides the address, e.g. 127.0.0.1).
 * - $FN_THREADS worker threads (default 4, 1..64; libmicrohttpd's thread pool, epoll each).
 *   Connections are keep-alive (HTTP/1.1 default; HTTP/1.0 or "Connection: close" closes after
 *   the response), pipelined requests are answered in order. Request bodies (Content-Length)
 *   are read and discarded; chunked bodies are refused (411). Headers larger than about 16 KiB
 *   are refused (431, by libmicrohttpd).
 * - Responses are text/plain with a Content-Length. The handler fills a response at once or
 *   asks for a delayed one: the connection is suspended and resumed by a timer thread when the
 *   delay is over (idle waits cost no worker thread).
 * - SIGTERM/SIGINT: stop accepting, finish responses in flight (at most 30 s; they carry
 *   "Connection: close"), exit 0.
 */
#ifndef FN_HTTPD_H
#define FN_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FN_BODY_MAX 4096

struct fn_request {
	const char *method; /* "GET", ... */
	const char *target; /* path and query as received (not decoded) */
	const char *query;  /* after '?', or "" */
};

struct fn_response {
	int status;             /* 200 */
	char body[FN_BODY_MAX]; /* text/plain, NUL-terminated */
	uint64_t delay_ms;      /* > 0: send after this long (no worker thread waits) */
};

/* Implemented by each function: fills *resp for *req (both borrowed for the call; *resp comes
 * with status 200 and an empty body). Runs on a worker thread, possibly several at once. */
void fn_handle(const struct fn_request *req, struct fn_response *resp);

/* Runs the server until SIGTERM/SIGINT. Returns the process exit code (0 after a clean
 * shutdown; 2 for a bad $PORT or $FN_LISTEN, 1 if it cannot listen). name prefixes messages. */
int fn_serve(const char *name);

/* Value of `key` in a query string ("a=1&b=2", not decoded) copied into out (truncated to
 * out_size - 1); false if absent. */
bool fn_query_get(const char *query, const char *key, char *out, size_t out_size);

/* "<K_REVISION or hostname>": this instance's identity. Static storage, computed once by
 * fn_serve before the workers start. */
const char *fn_identity(void);

#endif /* FN_HTTPD_H */
