/* kd/common.h: allocation helpers that abort on failure, cleanup attributes, time, and small
 * macros every libkd module and component uses. */
#ifndef KD_COMMON_H
#define KD_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define KD_ARRAY_SIZE(a)     (sizeof(a) / sizeof((a)[0]))
#define KD_UNUSED            __attribute__((unused))
#define KD_EXPORT            __attribute__((visibility("default")))
#define KD_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define KD_MIN(a, b)         ((a) < (b) ? (a) : (b))
#define KD_MAX(a, b)         ((a) > (b) ? (a) : (b))

/* Allocation: failure aborts the process with a message on stderr (CONVENTIONS.md: tests inject
 * I/O and HTTP failures instead of allocation failures). All return owned memory; free(). */
void *kd_xmalloc(size_t n);
void *kd_xcalloc(size_t nmemb, size_t size);
void *kd_xrealloc(void *p, size_t n);
char *kd_xstrdup(const char *s);
char *kd_xstrndup(const char *s, size_t n);
char *kd_xasprintf(const char *fmt, ...) KD_PRINTF(1, 2);
char *kd_xvasprintf(const char *fmt, va_list ap) KD_PRINTF(1, 0);

/* Cleanup attribute: `kd_autofree char *s = ...;` frees s when it leaves scope. */
static inline void kd__freep(void *p)
{
	free(*(void **)p);
}
#define kd_autofree __attribute__((cleanup(kd__freep)))

/* Clocks, in nanoseconds. kd_now_ns is CLOCK_MONOTONIC, kd_wall_ns is CLOCK_REALTIME. */
uint64_t kd_now_ns(void);
uint64_t kd_wall_ns(void);

/* Full jitter backoff: a uniformly random delay in [base/2, min(cap, base * 2^attempt)] ms. */
uint64_t kd_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms);

#endif /* KD_COMMON_H */
