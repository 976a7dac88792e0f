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
#define KD_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define KD_MIN(a, b)         ((a) < (b) ? (a) : (b))
#define KD_MAX(a, b)         ((a) > (b) ? (a) : (b))

/* Symbol visibility. lib/ is compiled with -fvisibility=hidden: libkd.so exports exactly the
 * declarations marked KD_API (the functions and data of lib/include/kd/). KD_EXPORT marks a
 * plugin's one export, kd_plugin_entry (plugins are built hidden too). */
#define KD_API    __attribute__((visibility("default")))
#define KD_EXPORT __attribute__((visibility("default")))

/* Allocation: failure aborts the process with a message on stderr (CONVENTIONS.md: tests inject
 * I/O and HTTP failures instead of allocation failures). All return owned memory; free(). */
KD_API void *kd_xmalloc(size_t n);
KD_API void *kd_xcalloc(size_t nmemb, size_t size);
KD_API void *kd_xrealloc(void *p, size_t n);
KD_API char *kd_xstrdup(const char *s);
KD_API char *kd_xstrndup(const char *s, size_t n);
KD_API char *kd_xasprintf(const char *fmt, ...) KD_PRINTF(1, 2);
KD_API char *kd_xvasprintf(const char *fmt, va_list ap) KD_PRINTF(1, 0);

/* Cleanup attribute: `kd_autofree char *s = ...;` frees s when it leaves scope. */
static inline void kd__freep(void *p)
{
	free(*(void **)p);
}
#define kd_autofree __attribute__((cleanup(kd__freep)))

/* Reads a whole file (at most max bytes; more: -EFBIG) into *out, owned and NUL-terminated
 * (*out_len without the NUL; out_len may be NULL). 0 or -errno; *out set only on 0. */
KD_API int kd_read_file(const char *path, size_t max, char **out, size_t *out_len);

/* Clocks, in nanoseconds. kd_now_ns is CLOCK_MONOTONIC, kd_wall_ns is CLOCK_REALTIME. */
KD_API uint64_t kd_now_ns(void);
KD_API uint64_t kd_wall_ns(void);

/* Full jitter backoff: a uniformly random delay in [base/2, min(cap, base * 2^attempt)] ms. */
KD_API uint64_t kd_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms);

#endif /* KD_COMMON_H */
