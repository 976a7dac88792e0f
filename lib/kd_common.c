/* kd_common.c: allocation helpers, clocks and backoff. */
#include "kd/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t n)
{
	fprintf(stderr, "kubedirect: out of memory allocating %zu bytes, aborting\n", n);
	abort();
}

void *kd_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *kd_xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (!p)
		oom(nmemb * size);
	return p;
}

void *kd_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *kd_xstrdup(const char *s)
{
	if (!s)
		s = "";
	char *p = strdup(s);
	if (!p)
		oom(strlen(s));
	return p;
}

char *kd_xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (!p)
		oom(n);
	return p;
}

char *kd_xvasprintf(const char *fmt, va_list ap)
{
	char *p = NULL;
	if (vasprintf(&p, fmt, ap) < 0)
		oom(strlen(fmt));
	return p;
}

char *kd_xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = kd_xvasprintf(fmt, ap);
	va_end(ap);
	return p;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t kd_now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t kd_wall_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

uint64_t kd_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms)
{
	uint64_t hi = base_ms;
	for (unsigned i = 0; i < attempt && hi < cap_ms; i++)
		hi *= 2;
	if (hi > cap_ms)
		hi = cap_ms;
	uint64_t lo = base_ms / 2;
	if (lo > hi)
		lo = hi;
	static __thread unsigned seed;
	if (!seed)
		seed = (unsigned)kd_now_ns();
	return lo + (hi > lo ? (uint64_t)rand_r(&seed) % (hi - lo + 1) : 0);
}

int kd_read_file(const char *path, size_t max, char **out, size_t *out_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char *p = NULL;
	size_t len = 0, cap = 0;
	char tmp[8192];
	for (;;) {
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			free(p);
			return -e;
		}
		if (n == 0)
			break;
		if (len + (size_t)n > max) {
			close(fd);
			free(p);
			return -EFBIG;
		}
		if (len + (size_t)n + 1 > cap) {
			cap = (len + (size_t)n + 1) * 2;
			p = kd_xrealloc(p, cap);
		}
		memcpy(p + len, tmp, (size_t)n);
		len += (size_t)n;
		p[len] = '\0';
	}
	close(fd);
	*out = p ? p : kd_xstrdup("");
	if (out_len)
		*out_len = len;
	return 0;
}
