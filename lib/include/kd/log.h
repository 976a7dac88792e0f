/* kd/log.h: leveled logging with a component prefix, as text or one JSON object per line.
 * Ownership: string arguments are borrowed for the call (kd_log_init copies the component);
 * returned strings are static. The logger's state is process-global. */
#ifndef KD_LOG_H
#define KD_LOG_H

#include <stdbool.h>
#include <stdio.h>

#include "kd/common.h"

enum kd_log_level {
	KD_LOG_ERROR = 0,
	KD_LOG_WARN = 1,
	KD_LOG_INFO = 2,
	KD_LOG_DEBUG = 3,
	KD_LOG_TRACE = 4,
};

enum kd_log_format {
	KD_LOG_TEXT = 0, /* "2026-11-27T07:50:29.123Z INFO  kd-node: message" */
	KD_LOG_JSON = 1, /* {"ts":"...","level":"info","component":"kd-node","msg":"..."} */
};

/* The JSON field naming the object a line is about (Knative's logkey.Key), "<namespace>/<name>". */
#define KD_LOG_KEY_FIELD "knative.dev/key"

/* Sets the component name (copied; NULL: "kubedirect"), level and format. Defaults:
 * "kubedirect", INFO, TEXT, stderr. Safe to call again (the previous copy is freed); not
 * thread-safe against concurrent kd_log calls. */
KD_API void kd_log_init(const char *component, enum kd_log_level level, enum kd_log_format format);
KD_API void kd_log_set_level(enum kd_log_level level);
KD_API enum kd_log_level kd_log_get_level(void);
/* Redirects output (borrowed, never closed by the logger; must stay open while logging goes to
 * it). NULL restores stderr. */
KD_API void kd_log_set_stream(FILE *stream);

/* Parses "error|warn|info|debug|trace" (case-insensitive; "warning" too). s borrowed, may be
 * NULL. Returns 0 with *out set, or -EINVAL (*out untouched). */
KD_API int kd_log_level_parse(const char *s, enum kd_log_level *out);
/* Parses "text|json". s borrowed. Returns 0 with *out set, or -EINVAL (*out untouched). */
KD_API int kd_log_format_parse(const char *s, enum kd_log_format *out);
/* "error", "warn", ... ("unknown" out of range). Borrowed static string, never NULL. */
KD_API const char *kd_log_level_name(enum kd_log_level level);

static inline bool kd_log_enabled(enum kd_log_level level)
{
	return level <= kd_log_get_level();
}

/* Writes one line (one write(2)-sized fputs) if level is enabled. fmt and the arguments are
 * borrowed for the call. */
KD_API void kd_log_write(enum kd_log_level level, const char *fmt, ...) KD_PRINTF(2, 3);

/* As kd_log_write, for a line about one object: key "<namespace>/<name>" (borrowed; NULL: none)
 * goes into the JSON field KD_LOG_KEY_FIELD, and in text before the message as "[ns/name] ". */
KD_API void kd_log_key_write(enum kd_log_level level, const char *key, const char *fmt, ...)
    KD_PRINTF(3, 4);

#define kd_log_error(...) kd_log_write(KD_LOG_ERROR, __VA_ARGS__)
#define kd_log_warn(...)  kd_log_write(KD_LOG_WARN, __VA_ARGS__)
#define kd_log_info(...)  kd_log_write(KD_LOG_INFO, __VA_ARGS__)
#define kd_log_debug(...)                                                                          \
	do {                                                                                       \
		if (kd_log_enabled(KD_LOG_DEBUG))                                                  \
			kd_log_write(KD_LOG_DEBUG, __VA_ARGS__);                                   \
	} while (0)
#define kd_log_trace(...)                                                                          \
	do {                                                                                       \
		if (kd_log_enabled(KD_LOG_TRACE))                                                  \
			kd_log_write(KD_LOG_TRACE, __VA_ARGS__);                                   \
	} while (0)

#define kd_log_key_error(key, ...) kd_log_key_write(KD_LOG_ERROR, key, __VA_ARGS__)
#define kd_log_key_warn(key, ...)  kd_log_key_write(KD_LOG_WARN, key, __VA_ARGS__)
#define kd_log_key_info(key, ...)  kd_log_key_write(KD_LOG_INFO, key, __VA_ARGS__)
#define kd_log_key_debug(key, ...)                                                                 \
	do {                                                                                       \
		if (kd_log_enabled(KD_LOG_DEBUG))                                                  \
			kd_log_key_write(KD_LOG_DEBUG, key, __VA_ARGS__);                          \
	} while (0)

#endif /* KD_LOG_H */
