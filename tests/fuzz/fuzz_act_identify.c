/* libFuzzer target for kd-activator's request identification (activator-hook/ident.c, linked in):
 * the bytes are split at the first two '\n' into the Knative-Serving-Namespace,
 * Knative-Serving-Revision and Host header values (a field that is missing is an absent header;
 * the first byte's low bit drops the namespace header too). Invariants: no crash, no read outside
 * the values, no leak; a success gives non-empty names, the header values themselves when both
 * are non-empty, else a revision that is a prefix of the Host's first label (without a '.') and a
 * namespace that is the Host's second label (without '.' or ':'); a failure leaves the outputs. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../activator-hook/ident.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The '\n'-terminated field of data at *pos as an owned string, or NULL when *pos is past the
 * last field (the bytes end without a '\n': that was the last one). */
static char *field(const char *data, size_t size, size_t *pos)
{
	if (*pos > size)
		return NULL;
	const char *nl = *pos < size ? memchr(data + *pos, '\n', size - *pos) : NULL;
	size_t n = nl ? (size_t)(nl - (data + *pos)) : size - *pos;
	char *s = malloc(n + 1);
	if (!s)
		abort();
	if (n)
		memcpy(s, data + *pos, n);
	s[n] = '\0';
	*pos = nl ? *pos + n + 1 : size + 1;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *d = (const char *)data;
	size_t pos = 0;
	bool drop_ns = size && (data[0] & 1);
	char *hn = field(d, size, &pos);
	char *hr = field(d, size, &pos);
	char *host = field(d, size, &pos);
	if (drop_ns) {
		free(hn);
		hn = NULL;
	}
	char *ns = (char *)"unset", *name = (char *)"unset";
	int rc = kd_act_identify(hn, hr, host, &ns, &name);
	if (rc == -ENOENT) {
		if (strcmp(ns, "unset") != 0 || strcmp(name, "unset") != 0)
			abort();
	} else if (rc != 0 || !*ns || !*name) {
		abort();
	} else if (hn && *hn && hr && *hr) {
		if (strcmp(ns, hn) != 0 || strcmp(name, hr) != 0)
			abort();
	} else {
		const char *dot = host ? strchr(host, '.') : NULL;
		size_t nl = strlen(name), sl = strlen(ns);
		if (!dot || nl > (size_t)(dot - host) || strncmp(name, host, nl) != 0 ||
		    strchr(name, '.') || strncmp(ns, dot + 1, sl) != 0 || strpbrk(ns, ".:") ||
		    (dot[1 + sl] != '\0' && dot[1 + sl] != '.' && dot[1 + sl] != ':'))
			abort();
	}
	if (rc == 0) {
		free(ns);
		free(name);
	}
	free(hn);
	free(hr);
	free(host);
	return 0;
}
