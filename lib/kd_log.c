/* kd_log.c: leveled text/JSON logging. */
#include "kd/log.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static char *log_component;
static enum kd_log_level log_level = KD_LOG_INFO;
static enum kd_log_format log_format = KD_LOG_TEXT;
static FILE *log_stream;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void kd_log_init(const char *component, enum kd_log_level level, enum kd_log_format format)
{
	free(log_component);
	log_component = kd_xstrdup(component ? component : "kubedirect");
	log_level = level;
	log_format = format;
}

void kd_log_set_level(enum kd_log_level level)
{
	log_level = level;
}

enum kd_log_level kd_log_get_level(void)
{
	return log_level;
}

void kd_log_set_stream(FILE *stream)
{
	log_stream = stream;
}

const char *kd_log_level_name(enum kd_log_level level)
{
	if ((unsigned)level < KD_ARRAY_SIZE(level_names))
		return level_names[level];
	return "unknown";
}

int kd_log_level_parse(const char *s, enum kd_log_level *out)
{
	for (size_t i = 0; s && i < KD_ARRAY_SIZE(level_names); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum kd_log_level)i;
			return 0;
		}
	}
	if (s && strcasecmp(s, "warning") == 0) {
		*out = KD_LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

int kd_log_format_parse(const char *s, enum kd_log_format *out)
{
	if (s && strcasecmp(s, "text") == 0) {
		*out = KD_LOG_TEXT;
		return 0;
	}
	if (s && strcasecmp(s, "json") == 0) {
		*out = KD_LOG_JSON;
		return 0;
	}
	return -EINVAL;
}

static void timestamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void vwrite(enum kd_log_level level, const char *key, const char *fmt, va_list ap)
{
	int saved = errno;
	kd_autofree char *msg = kd_xvasprintf(fmt, ap);
	char ts[40];
	timestamp(ts, sizeof(ts));
	const char *comp = log_component ? log_component : "kubedirect";
	FILE *out = log_stream ? log_stream : stderr;
	if (log_format == KD_LOG_JSON) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "ts", json_object_new_string(ts));
		json_object_object_add(o, "level",
		                       json_object_new_string(kd_log_level_name(level)));
		json_object_object_add(o, "component", json_object_new_string(comp));
		if (key)
			json_object_object_add(o, KD_LOG_KEY_FIELD, json_object_new_string(key));
		json_object_object_add(o, "msg", json_object_new_string(msg));
		kd_autofree char *line = kd_xasprintf(
		    "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
		                                                  JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		fputs(line, out);
	} else {
		char lvl[8];
		snprintf(lvl, sizeof(lvl), "%s", kd_log_level_name(level));
		for (char *p = lvl; *p; p++)
			*p = (char)(*p - ('a' - 'A'));
		kd_autofree char *line =
		    key ? kd_xasprintf("%s %-5s %s: [%s] %s\n", ts, lvl, comp, key, msg)
		        : kd_xasprintf("%s %-5s %s: %s\n", ts, lvl, comp, msg);
		fputs(line, out);
	}
	fflush(out);
	errno = saved;
}

void kd_log_write(enum kd_log_level level, const char *fmt, ...)
{
	if (level > log_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	vwrite(level, NULL, fmt, ap);
	va_end(ap);
}

void kd_log_key_write(enum kd_log_level level, const char *key, const char *fmt, ...)
{
	if (level > log_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	vwrite(level, key, fmt, ap);
	va_end(ap);
}
