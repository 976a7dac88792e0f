/* kd_json.c: json-c helpers: dotted-path getters and a strict, capped parser. */
#include "kd/json.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

/* Copies the next path segment (unescaping "\.") into seg (size cap); advances *p past it and
 * its '.' separator. Returns the segment length, or -1 if it does not fit. */
static int next_segment(const char **p, char *seg, size_t cap)
{
	size_t n = 0;
	const char *s = *p;
	while (*s && *s != '.') {
		if (s[0] == '\\' && s[1] == '.')
			s++;
		if (n + 1 >= cap)
			return -1;
		seg[n++] = *s++;
	}
	seg[n] = '\0';
	if (*s == '.')
		s++;
	*p = s;
	return (int)n;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

struct json_object *kd_json_get(struct json_object *obj, const char *path)
{
	if (!path)
		return obj;
	const char *p = path;
	char seg[256];
	while (obj && *p) {
		if (next_segment(&p, seg, sizeof(seg)) < 0)
			return NULL;
		if (json_object_is_type(obj, json_type_object)) {
			struct json_object *child = NULL;
			if (!json_object_object_get_ex(obj, seg, &child))
				return NULL;
			obj = child;
		} else if (json_object_is_type(obj, json_type_array) && all_digits(seg)) {
			errno = 0;
			unsigned long idx = strtoul(seg, NULL, 10);
			if (errno || idx >= json_object_array_length(obj))
				return NULL;
			obj = json_object_array_get_idx(obj, idx);
		} else {
			return NULL;
		}
	}
	return obj;
}

const char *kd_json_get_string(struct json_object *obj, const char *path)
{
	struct json_object *v = kd_json_get(obj, path);
	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

struct json_object *kd_json_get_object(struct json_object *obj, const char *path)
{
	struct json_object *v = kd_json_get(obj, path);
	return json_object_is_type(v, json_type_object) ? v : NULL;
}

struct json_object *kd_json_get_array(struct json_object *obj, const char *path)
{
	struct json_object *v = kd_json_get(obj, path);
	return json_object_is_type(v, json_type_array) ? v : NULL;
}

int kd_json_get_int64(struct json_object *obj, const char *path, int64_t *out)
{
	struct json_object *v = kd_json_get(obj, path);
	if (!v)
		return -ENOENT;
	if (json_object_is_type(v, json_type_int)) {
		*out = json_object_get_int64(v);
		return 0;
	}
	if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);
		const char *d = (*s == '-') ? s + 1 : s;
		if (!all_digits(d))
			return -EINVAL;
		errno = 0;
		char *end = NULL;
		long long x = strtoll(s, &end, 10);
		if (errno || *end)
			return -EINVAL;
		*out = x;
		return 0;
	}
	return -EINVAL;
}

int kd_json_get_bool(struct json_object *obj, const char *path, bool *out)
{
	struct json_object *v = kd_json_get(obj, path);
	if (!v)
		return -ENOENT;
	if (json_object_is_type(v, json_type_boolean)) {
		*out = json_object_get_boolean(v);
		return 0;
	}
	if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);
		if (!strcmp(s, "true")) {
			*out = true;
			return 0;
		}
		if (!strcmp(s, "false")) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int kd_json_parse(const char *buf, size_t len, size_t max_bytes, const char *what,
                  struct json_object **out, struct kd_error **err)
{
	if (!what)
		what = "json";
	if (!max_bytes)
		max_bytes = KD_JSON_DEFAULT_MAX_BYTES;
	if (len > max_bytes)
		return kd_error_set(err, EMSGSIZE, 0, "%s: %zu bytes exceeds the %zu byte limit",
		                    what, len, max_bytes);
	if (len > (size_t)INT32_MAX)
		return kd_error_set(err, EMSGSIZE, 0, "%s: too large", what);
	size_t start = 0;
	while (start < len && is_ws(buf[start]))
		start++;
	if (start == len)
		return kd_error_set(err, EINVAL, 0, "%s: empty document", what);
	struct json_tokener *tok = json_tokener_new_ex(KD_JSON_MAX_DEPTH);
	if (!tok)
		abort();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
	struct json_object *obj = json_tokener_parse_ex(tok, buf + start, (int)(len - start));
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t end = start + json_tokener_get_parse_end(tok);
	if (!obj && jerr == json_tokener_continue && end == len) {
		/* A top-level scalar such as 12 only ends at a delimiter: terminate it. */
		obj = json_tokener_parse_ex(tok, " ", 1);
		jerr = json_tokener_get_error(tok);
	}
	json_tokener_free(tok);
	if (jerr == json_tokener_continue)
		return kd_error_set(err, EINVAL, 0, "%s: truncated JSON (%zu bytes)", what, len);
	if (jerr != json_tokener_success)
		return kd_error_set(err, EINVAL, 0, "%s: invalid JSON at offset %zu: %s", what, end,
		                    json_tokener_error_desc(jerr));
	for (size_t i = end; i < len; i++) {
		if (!is_ws(buf[i])) {
			json_object_put(obj);
			return kd_error_set(err, EINVAL, 0, "%s: trailing garbage at offset %zu",
			                    what, i);
		}
	}
	*out = obj;
	return 0;
}

char *kd_json_dumps(struct json_object *obj)
{
	return kd_xstrdup(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
	                                                          JSON_C_TO_STRING_NOSLASHESCAPE));
}
