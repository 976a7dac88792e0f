/* activator-hook/ident.c: the revision a request names (see ident.h). */
#include "ident.h"

#include <errno.h>
#include <string.h>

#include "kd/common.h"

#define PRIVATE_SUFFIX "-private"

int kd_act_identify(const char *ns_header, const char *rev_header, const char *host, char **ns,
                    char **name)
{
	if (ns_header && *ns_header && rev_header && *rev_header) {
		*ns = kd_xstrdup(ns_header);
		*name = kd_xstrdup(rev_header);
		return 0;
	}
	const char *dot = host ? strchr(host, '.') : NULL;
	if (!dot || dot == host)
		return -ENOENT;
	const char *end = dot + 1 + strcspn(dot + 1, ".:");
	if (end == dot + 1)
		return -ENOENT;
	size_t rl = (size_t)(dot - host);
	const size_t sl = sizeof(PRIVATE_SUFFIX) - 1;
	if (rl > sl && strncmp(dot - sl, PRIVATE_SUFFIX, sl) == 0)
		rl -= sl;
	*name = kd_xstrndup(host, rl);
	*ns = kd_xstrndup(dot + 1, (size_t)(end - dot - 1));
	return 0;
}
