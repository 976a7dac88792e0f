/* kd_test_httpd.h: a small scriptable HTTP/1.1 server for unit tests (loopback only).
 * One listening thread on 127.0.0.1 (ephemeral port) plus one thread per connection; a handler
 * callback written by the test answers each request with a full response, a chunked response
 * built piece by piece (with delays), or by closing the connection mid-stream. Optional TLS
 * (OpenSSL) with a certificate generated at test start by kd_test_httpd_tls_gen. Every request is
 * recorded for later assertions. */
#ifndef KD_TEST_HTTPD_H
#define KD_TEST_HTTPD_H

#include <stdbool.h>
#include <stddef.h>

struct kd_test_httpd;
struct kd_test_httpd_conn;

/* A recorded request. All strings owned by the record. */
struct kd_test_httpd_req {
	char *method;
	char *target;       /* path and query as sent */
	char *path;         /* target up to '?' */
	char *query;        /* after '?', or "" */
	char *content_type; /* Content-Type header or NULL */
	char *auth;         /* Authorization header or NULL */
	char *user_agent;   /* User-Agent header or NULL */
	char *head;         /* the request line and headers as received */
	char *body;         /* NUL-terminated, "" if none */
	size_t body_len;
	int conn_id; /* connection number, 1-based: same id = keep-alive reuse */
};

/* Runs on the connection's thread for each request (req borrowed for the call). The handler
 * must send exactly one response (or close the connection). */
typedef void (*kd_test_httpd_handler)(struct kd_test_httpd_conn *conn,
                                      const struct kd_test_httpd_req *req, void *arg);

/* Starts a server. cert/key: PEM paths for TLS, or NULL for plain HTTP. Aborts on failure. */
struct kd_test_httpd *kd_test_httpd_start(kd_test_httpd_handler handler, void *arg,
                                          const char *cert_pem, const char *key_pem);
/* Stops: wakes blocked handlers (kd_test_httpd_stopping becomes true, sockets shut down), joins
 * all threads, frees. */
void kd_test_httpd_stop(struct kd_test_httpd *srv);
int kd_test_httpd_port(const struct kd_test_httpd *srv);
/* "http(s)://127.0.0.1:<port>"; borrowed. */
const char *kd_test_httpd_url(const struct kd_test_httpd *srv);
struct kd_test_httpd *kd_test_httpd_conn_server(struct kd_test_httpd_conn *conn);
bool kd_test_httpd_stopping(const struct kd_test_httpd *srv);

/* The value of header `name` (case-insensitive) in r->head; owned (free()), or NULL. */
char *kd_test_httpd_req_header(const struct kd_test_httpd_req *r, const char *name);

/* Responses (from the handler). All return 0, or -1 once the peer is gone. */
int kd_test_httpd_respond(struct kd_test_httpd_conn *conn, int status, const char *content_type,
                          const char *body);
int kd_test_httpd_begin_chunked(struct kd_test_httpd_conn *conn, int status,
                                const char *content_type);
int kd_test_httpd_chunk(struct kd_test_httpd_conn *conn, const char *data, size_t len);
int kd_test_httpd_end_chunked(struct kd_test_httpd_conn *conn);
int kd_test_httpd_raw(struct kd_test_httpd_conn *conn, const char *data, size_t len);
/* Closes the connection after the handler returns (no more requests on it). */
void kd_test_httpd_close(struct kd_test_httpd_conn *conn);
/* Sleeps up to ms milliseconds, returning early (false) when the server is stopping. */
bool kd_test_httpd_sleep(struct kd_test_httpd_conn *conn, unsigned ms);

/* Request log. */
size_t kd_test_httpd_count(struct kd_test_httpd *srv);
/* Copy of request i (0-based) into *out; false if out of range. Free with _req_fini. */
bool kd_test_httpd_get(struct kd_test_httpd *srv, size_t i, struct kd_test_httpd_req *out);
void kd_test_httpd_req_fini(struct kd_test_httpd_req *r);
/* Number of connections accepted so far. */
int kd_test_httpd_connections(struct kd_test_httpd *srv);
/* Peak number of simultaneously open connections. */
int kd_test_httpd_peak_connections(struct kd_test_httpd *srv);

/* Generates into dir a self-signed CA + server certificate for 127.0.0.1 using the openssl CLI:
 * dir/ca.pem, dir/ca.key, dir/server.pem, dir/server.key. Also a client cert signed by the CA
 * (dir/client.pem, dir/client.key). Returns 0 or -1. */
int kd_test_httpd_tls_gen(const char *dir);

/* Makes a private temporary directory; returns owned path (free()). Removed by kd_test_httpd_rmrf.
 */
char *kd_test_httpd_mkdtemp(void);
void kd_test_httpd_rmrf(const char *dir);
/* Writes a file (mode 0600). Aborts on failure. */
void kd_test_httpd_write_file(const char *path, const char *content);

#endif /* KD_TEST_HTTPD_H */
