/* lib/kd_http_priv.h: the pieces of kd_http.c that read bytes from the network themselves, out
 * for unit tests and the fuzz target (tests/fuzz/fuzz_http_headers.c). Not public API. */
#ifndef KD_HTTP_PRIV_H
#define KD_HTTP_PRIV_H

#include <stdbool.h>
#include <stddef.h>

/* One response header line as curl hands it over ("Name: value\r\n", no NUL needed). */
struct kd_http_hline {
	const char *name, *value; /* borrowed from the line */
	size_t name_len, value_len;
};
/* 1 with *out set for a "Name: value" line, 0 for a status line or the blank end-of-headers
 * line (*out zeroed), -1 for a line that is neither (no colon, empty name). */
int kd_http_hline_parse(const char *line, size_t len, struct kd_http_hline *out);
/* True if the header `name` (len bytes) is hop-by-hop (RFC 9110 7.6.1), or one of the tokens of
 * `connection` (a Connection header value, NUL-terminated, or NULL). */
bool kd_http_hop_by_hop(const char *name, size_t len, const char *connection);
/* A Content-Length value: 0 with *out set, or -1 if not a plain non-negative decimal. */
int kd_http_content_length(const char *v, size_t len, long long *out);

#endif /* KD_HTTP_PRIV_H */
