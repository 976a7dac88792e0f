/* kd/http.h: an HTTP/1.1 server and reverse-proxy forwarder on the process's one kd_loop.
 * The server is libmicrohttpd in external-epoll mode (its epoll fd watched by the loop, its
 * timeouts a loop timer); the forwarder is libcurl multi on the same loop (kd/curlm.h), one
 * connection pool per server. No HTTP byte is parsed here: both libraries do that.
 *
 * A request is delivered once its headers are in (kd_http_handler_cb). The handler, then or later
 * (from any loop callback), does exactly one of: kd_http_req_respond (a complete response),
 * kd_http_req_forward (streams the request to an upstream and its response back, bodies in both
 * directions flowing through bounded buffers with backpressure, never buffered whole), or nothing
 * yet: the request is then held (its connection suspended) until it does. A forward that
 * provably never reached the upstream (connection refused or not established) is reported with
 * `reached` false and the request may be forwarded again or answered.
 *
 * Ownership: the server owns every kd_http_req; it stays valid until the response has been sent
 * or the client has gone. A held request whose client goes away is reported through its abort
 * callback (kd_http_req_on_abort), after which it must not be touched. A forwarded request's end,
 * client gone included, is reported through the forward's done callback instead.
 * Not thread-safe: everything on the loop thread. */
#ifndef KD_HTTP_H
#define KD_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "kd/common.h"
#include "kd/error.h"
#include "kd/loop.h"

struct kd_http_server;
struct kd_http_req;

typedef void (*kd_http_handler_cb)(void *ud, struct kd_http_req *req);

struct kd_http_server_opts {
	const char *bind_addr;        /* IPv4 or IPv6 literal; NULL: "0.0.0.0" */
	int port;                     /* 0: an ephemeral port (kd_http_server_port) */
	unsigned idle_timeout_s;      /* idle keep-alive connections closed after; 0: 120 */
	unsigned max_upstream_conns;  /* idle upstream connections kept by the forwarder; 0: 256 */
	unsigned upstream_connect_ms; /* forward connect timeout; 0: 2000 */
	/* > 0: each request is delivered only once its whole body is in (kd_http_req_body), at
	 * most body_max bytes: a larger Content-Length is answered 413, a chunked body growing
	 * past it closes the connection. Such a server does not forward. 0: streamed bodies. */
	size_t body_max;
	/* HTTPS: the serving certificate (chain, leaf first) and its private key, PEM, copied.
	 * Both NULL: plain HTTP. */
	const char *tls_cert_pem;
	const char *tls_key_pem;
};

/* Listens on bind_addr:port and serves on loop. Returns owned (kd_http_server_free) or NULL with
 * *err naming the address ("listen 0.0.0.0:8012: Address already in use"). */
KD_API struct kd_http_server *kd_http_server_new(struct kd_loop *loop,
                                                 const struct kd_http_server_opts *opts,
                                                 kd_http_handler_cb handler, void *ud,
                                                 struct kd_error **err);
/* Closes the listener and every connection; in-flight forwards are reported done with
 * client_aborted, held requests through their abort callbacks. NULL is a no-op. */
KD_API void kd_http_server_free(struct kd_http_server *s);
/* Serves a new certificate and key (PEM, copied) on a server started with TLS: new connections
 * get them at once, connections already open finish on the previous pair (no request is cut).
 * A pair libmicrohttpd refuses leaves the previous one served. 0, or -EINVAL with *err. */
KD_API int kd_http_server_set_tls(struct kd_http_server *s, const char *cert_pem,
                                  const char *key_pem, struct kd_error **err);
/* The port listened on (the ephemeral one when opts.port was 0). */
KD_API int kd_http_server_port(const struct kd_http_server *s);

/* Request accessors; returned strings are borrowed, valid while req is. */
KD_API const char *kd_http_req_method(const struct kd_http_req *req);
/* The request target as sent: path and query ("/a/b?x=1"). */
KD_API const char *kd_http_req_target(const struct kd_http_req *req);
/* The value of header `name` (case-insensitive), or NULL. */
KD_API const char *kd_http_req_header(const struct kd_http_req *req, const char *name);
/* body_max servers: the whole request body (NUL-terminated; *len its length, NUL bytes in it
 * included), borrowed, valid while req is. NULL on other servers. */
KD_API const char *kd_http_req_body(const struct kd_http_req *req, size_t *len);
/* The client's address ("10.0.0.1"), or "" if unknown. */
KD_API const char *kd_http_req_peer(const struct kd_http_req *req);

/* Sends a complete response (body copied; len 0 allowed; content_type NULL: none). Once per
 * request, not after kd_http_req_forward succeeded. Returns 0 or -EALREADY. */
KD_API int kd_http_req_respond(struct kd_http_req *req, int status, const char *content_type,
                               const char *body, size_t len);

/* kd_http_req_respond with extra response headers, "Name: value" each (copied). */
KD_API int kd_http_req_respond_with(struct kd_http_req *req, int status, const char *content_type,
                                    const char *const *headers, size_t n_headers, const char *body,
                                    size_t len);

/* cb(ud, req) when the client goes away while req is held (neither answered nor forwarded). NULL
 * cb clears it. Never called after kd_http_req_respond or during a forward. */
typedef void (*kd_http_abort_cb)(void *ud, struct kd_http_req *req);
KD_API void kd_http_req_on_abort(struct kd_http_req *req, kd_http_abort_cb cb, void *ud);

struct kd_http_fwd_opts {
	unsigned timeout_ms; /* whole exchange with the upstream; 0: none */
	/* Headers set on the forwarded request, "Name: value" each (borrowed for the call): a
	 * client header of the same name is dropped, so a client cannot spoof them. */
	const char *const *set_headers;
	size_t n_set_headers;
	const char *host; /* the Host sent upstream instead of the client's; NULL: the client's */
};

/* How a forward ended; borrowed for the callback's duration. */
struct kd_http_fwd_result {
	bool reached;        /* the upstream may have seen the request (false: safe to retry) */
	bool upstream_ok;    /* the exchange with the upstream completed */
	bool client_aborted; /* the client went away first */
	bool new_conn;       /* a new upstream connection was opened (false: one was reused) */
	int status;          /* the status the client got (upstream's, or 502/504 of ours) */
	const char *error;   /* what went wrong, or NULL */
};
typedef void (*kd_http_fwd_cb)(void *ud, struct kd_http_req *req,
                               const struct kd_http_fwd_result *res);

/* Forwards req to http://ip:port<target>: the client's headers without the hop-by-hop ones (and
 * those the Connection header names), X-Forwarded-For and X-Forwarded-Proto added; the upstream's
 * response relayed the same way. done runs once, when the upstream exchange ended (the client may
 * still be receiving the last bytes). When !res->reached nothing was sent to the client and req
 * is the caller's again (respond or forward once more); otherwise req must not be used after
 * done. Returns 0, or -errno (nothing started, req still the caller's). */
KD_API int kd_http_req_forward(struct kd_http_req *req, const char *ip, int port,
                               const struct kd_http_fwd_opts *opts, kd_http_fwd_cb done, void *ud);

#endif /* KD_HTTP_H */
