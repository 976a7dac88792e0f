/* lib/kd_check.c: checks of operator input (kd/check.h). */
#include "kd/check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kd/quantity.h"

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

const char *kd_dns_label_why(const char *s, size_t len)
{
	if (len == 0)
		return "is empty";
	if (len > 63)
		return "is longer than 63 characters";
	for (size_t i = 0; i < len; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return "has a character outside [a-z0-9-]";
	if (s[0] == '-' || s[len - 1] == '-')
		return "must start and end with [a-z0-9]";
	return NULL;
}

const char *kd_dns_subdomain_why(const char *s, size_t len)
{
	if (len == 0)
		return "is empty";
	if (len > 253)
		return "is longer than 253 characters";
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (i == start)
				return "has an empty DNS label";
			for (size_t k = start; k < i; k++)
				if (!is_lower_alnum(s[k]) && s[k] != '-')
					return "has a character outside [a-z0-9.-]";
			if (s[start] == '-' || s[i - 1] == '-')
				return "has a DNS label not starting and ending with [a-z0-9]";
			start = i + 1;
		}
	}
	return NULL;
}

int kd_check_dns_label(const char *what, const char *value, struct kd_error **err)
{
	const char *v = value ? value : "";
	const char *why = kd_dns_label_why(v, strlen(v));
	if (why)
		return kd_error_set(err, EINVAL, 0, "%s: \"%s\" is not a DNS-1123 label: %s", what,
		                    v, why);
	return 0;
}

int kd_check_dns_subdomain(const char *what, const char *value, struct kd_error **err)
{
	const char *v = value ? value : "";
	const char *why = kd_dns_subdomain_why(v, strlen(v));
	if (why)
		return kd_error_set(err, EINVAL, 0, "%s: \"%s\" is not a DNS-1123 subdomain: %s",
		                    what, v, why);
	return 0;
}

int kd_check_quantity(const char *what, const char *value, bool milli, int64_t *out,
                      struct kd_error **err)
{
	int64_t q;
	int rc = kd_quantity_parse(value ? value : "", milli, &q);
	if (rc == -ERANGE)
		return kd_error_set(err, ERANGE, 0, "%s: \"%s\" is too large a quantity", what,
		                    value);
	if (rc < 0)
		return kd_error_set(
		    err, EINVAL, 0, "%s: \"%s\" is not a Kubernetes quantity (e.g. %s)", what,
		    value ? value : "", milli ? "500m, 2, 1.5" : "512Mi, 128Gi, 1G");
	if (out)
		*out = q;
	return 0;
}

int kd_hostport_parse(const char *what, const char *value, char **host, int *port,
                      struct kd_error **err)
{
	const char *addr = value;
	if (!addr || !*addr)
		return kd_error_set(err, EINVAL, 0, "%s is empty", what);
	const char *colon;
	kd_autofree char *h = NULL;
	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');
		if (!rb || rb[1] != ':')
			return kd_error_set(err, EINVAL, 0, "%s \"%s\": expected [v6]:port", what,
			                    addr);
		h = kd_xstrndup(addr + 1, (size_t)(rb - addr - 1));
		struct in6_addr a6;
		if (inet_pton(AF_INET6, h, &a6) != 1)
			return kd_error_set(err, EINVAL, 0, "%s \"%s\": bad IPv6 literal", what,
			                    addr);
		colon = rb + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || colon == addr || strchr(addr, ':') != colon)
			return kd_error_set(err, EINVAL, 0, "%s \"%s\": expected host:port", what,
			                    addr);
		h = kd_xstrndup(addr, (size_t)(colon - addr));
		for (const char *p = h; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
				return kd_error_set(err, EINVAL, 0, "%s \"%s\": bad host", what,
				                    addr);
	}
	char *end = NULL;
	errno = 0;
	long p = strtol(colon + 1, &end, 10);
	if (errno || !end || *end || colon[1] < '0' || colon[1] > '9' || p < 1 || p > 65535)
		return kd_error_set(err, EINVAL, 0, "%s \"%s\": bad port (1-65535)", what, addr);
	if (host) {
		*host = h;
		h = NULL;
	}
	if (port)
		*port = (int)p;
	return 0;
}

int kd_check_ip(const char *what, const char *value, bool v4_only, struct kd_error **err)
{
	const char *v = value ? value : "";
	unsigned char buf[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, v, buf) == 1 || (!v4_only && inet_pton(AF_INET6, v, buf) == 1))
		return 0;
	return kd_error_set(err, EINVAL, 0, "%s: \"%s\" is not an %s address", what, v,
	                    v4_only ? "IPv4" : "IPv4 or IPv6");
}

int kd_check_chan_token(const char *token, bool in_pod, bool insecure, struct kd_error **err)
{
	if (!token || !*token) {
		if (in_pod && !insecure)
			return kd_error_set(
			    err, EINVAL, 0,
			    "--chan-token: unset in a Kubernetes Pod: the channels would run "
			    "unauthenticated on the cluster network; set it ($KD_CHAN_TOKEN, from "
			    "the Secret kd-chan-token in manifests/) or pass --insecure-channels");
		return 0;
	}
	size_t n = strlen(token);
	if (n < KD_CHAN_TOKEN_MIN)
		return kd_error_set(
		    err, EINVAL, 0,
		    "--chan-token: %zu characters, at least %d wanted (openssl rand "
		    "-hex 32 makes one)",
		    n, KD_CHAN_TOKEN_MIN);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)token[i] <= ' ' || (unsigned char)token[i] == 0x7f)
			return kd_error_set(err, EINVAL, 0,
			                    "--chan-token: has a space or control character at %zu "
			                    "(it is sent in an HTTP header)",
			                    i);
	return 0;
}

bool kd_in_pod(void)
{
	const char *h = getenv("KUBERNETES_SERVICE_HOST");
	return h && *h;
}

int kd_listen_probe(const char *addr, int port, struct kd_error **err)
{
	const char *a = addr && *addr ? addr : "0.0.0.0";
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (port < 0 || port > 65535)
		return kd_error_set(err, EINVAL, 0, "listen %s:%d: the port is not in 0-65535", a,
		                    port);
	if (inet_pton(AF_INET, a, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, a, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		sl = sizeof(*s6);
	} else {
		return kd_error_set(err, EINVAL, 0, "listen %s:%d: not an IPv4 or IPv6 address", a,
		                    port);
	}
	if (port == 0)
		return 0;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kd_error_set(err, errno, 0, "listen %s:%d: socket: %s", a, port,
		                    strerror(errno));
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* as lws and lib/http do */
	int rc = 0;
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 1) < 0)
		rc = kd_error_set(err, errno, 0, "listen %s:%d: %s", a, port, strerror(errno));
	close(fd);
	return rc;
}
