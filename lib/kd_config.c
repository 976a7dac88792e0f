/* kd_config.c: declarative option tables: parsing from every source, --help and Markdown. */
#include "kd/config.h"
#include "kd/log.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <dirent.h>
#include <sys/stat.h>

#include <json-c/json.h>

/* ---- small string builder -------------------------------------------------------------------- */
struct sb {
	char *s;
	size_t len, cap;
};

static void sb_printf(struct sb *b, const char *fmt, ...) KD_PRINTF(2, 3);
static void sb_printf(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kd_autofree char *add = kd_xvasprintf(fmt, ap);
	va_end(ap);
	size_t n = strlen(add);
	if (b->len + n + 1 > b->cap) {
		b->cap = KD_MAX(b->cap * 2, b->len + n + 64);
		b->s = kd_xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, add, n + 1);
	b->len += n;
}

static char *sb_take(struct sb *b)
{
	if (!b->s)
		return kd_xstrdup("");
	return b->s;
}

/* --- helpers ---------------------------------------------------------------------------------- */
static size_t count_opts(const struct kd_config_option *opts)
{
	size_t n = 0;
	while (opts && opts[n].key)
		n++;
	return n;
}

static void *field(const struct kd_config_option *o, void *cfg)
{
	return (char *)cfg + o->offset;
}

static size_t type_size(enum kd_config_type t)
{
	switch (t) {
	case KD_CONFIG_STRING:
		return sizeof(char *);
	case KD_CONFIG_INT:
		return sizeof(int64_t);
	case KD_CONFIG_UINT:
	case KD_CONFIG_DURATION:
		return sizeof(uint64_t);
	case KD_CONFIG_DOUBLE:
		return sizeof(double);
	case KD_CONFIG_BOOL:
		return sizeof(bool);
	case KD_CONFIG_ENUM:
		return sizeof(int);
	case KD_CONFIG_STRLIST:
		return sizeof(struct kd_strlist);
	}
	return 0;
}

static const char *type_name(enum kd_config_type t)
{
	switch (t) {
	case KD_CONFIG_STRING:
		return "string";
	case KD_CONFIG_INT:
		return "integer";
	case KD_CONFIG_UINT:
		return "unsigned integer";
	case KD_CONFIG_DOUBLE:
		return "number";
	case KD_CONFIG_BOOL:
		return "boolean";
	case KD_CONFIG_DURATION:
		return "duration";
	case KD_CONFIG_ENUM:
		return "enum";
	case KD_CONFIG_STRLIST:
		return "string list";
	}
	return "?";
}

/* The type with its article, for "expected ..." messages. */
static const char *type_desc(enum kd_config_type t)
{
	switch (t) {
	case KD_CONFIG_STRING:
	case KD_CONFIG_ENUM:
		return "a string";
	case KD_CONFIG_INT:
		return "an integer";
	case KD_CONFIG_UINT:
		return "an unsigned integer";
	case KD_CONFIG_DOUBLE:
		return "a number";
	case KD_CONFIG_BOOL:
		return "a boolean";
	case KD_CONFIG_DURATION:
		return "a duration";
	case KD_CONFIG_STRLIST:
		return "a list of strings";
	}
	return "a value";
}

static char *choices_text(const struct kd_config_option *o, const char *sep)
{
	struct sb b = {0};
	for (size_t i = 0; o->choices && o->choices[i]; i++)
		sb_printf(&b, "%s%s", i ? sep : "", o->choices[i]);
	return sb_take(&b);
}

static char *known_keys(const struct kd_config_option *opts)
{
	struct sb b = {0};
	size_t n = count_opts(opts);
	for (size_t i = 0; i < n; i++)
		sb_printf(&b, "%s%s", i ? ", " : "", opts[i].key);
	if (n == 0)
		sb_printf(&b, "none");
	return sb_take(&b);
}

void kd_strlist_clear(struct kd_strlist *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

static void strlist_push(struct kd_strlist *l, const char *s, size_t len)
{
	l->items = kd_xrealloc(l->items, (l->n + 1) * sizeof(char *));
	l->items[l->n++] = kd_xstrndup(s, len);
}

/* --- durations -------------------------------------------------------------------------------- */
int kd_config_parse_duration(const char *s, uint64_t *out_ms)
{
	if (!s || !*s)
		return -EINVAL;
	if (strcmp(s, "0") == 0) {
		*out_ms = 0;
		return 0;
	}
	double total = 0;
	const char *p = s;
	while (*p) {
		if (!isdigit((unsigned char)*p) && *p != '.')
			return -EINVAL;
		char *end;
		errno = 0;
		double v = strtod(p, &end);
		if (end == p || errno || !isfinite(v) || v < 0)
			return -EINVAL;
		/* strtod accepts exponents and hex; only plain decimals are durations */
		for (const char *q = p; q < end; q++)
			if (!isdigit((unsigned char)*q) && *q != '.')
				return -EINVAL;
		p = end;
		double unit;
		if (strncmp(p, "ms", 2) == 0) {
			unit = 1;
			p += 2;
		} else if (*p == 's') {
			unit = 1000;
			p++;
		} else if (*p == 'm') {
			unit = 60000;
			p++;
		} else if (*p == 'h') {
			unit = 3600000;
			p++;
		} else {
			return -EINVAL;
		}
		total += v * unit;
		if (total >= 9.2e18)
			return -ERANGE;
	}
	*out_ms = (uint64_t)total;
	return 0;
}

char *kd_config_format_duration(uint64_t ms)
{
	if (ms == 0)
		return kd_xstrdup("0ms");
	struct sb b = {0};
	uint64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, r = ms % 1000;
	if (h)
		sb_printf(&b, "%lluh", (unsigned long long)h);
	if (m)
		sb_printf(&b, "%llum", (unsigned long long)m);
	if (s)
		sb_printf(&b, "%llus", (unsigned long long)s);
	if (r)
		sb_printf(&b, "%llums", (unsigned long long)r);
	return sb_take(&b);
}

/* --- parsing one value ------------------------------------------------------------------------ */
static int check_range(const struct kd_config_option *o, double v, const char *label,
                       const char *value, struct kd_error **err)
{
	if (o->has_min && v < o->min) {
		if (o->type == KD_CONFIG_DURATION) {
			kd_autofree char *m = kd_config_format_duration((uint64_t)o->min);
			return kd_error_set(err, ERANGE, 0, "%s: %s is below the minimum %s", label,
			                    value, m);
		}
		return kd_error_set(err, ERANGE, 0, "%s: %s is below the minimum %g", label, value,
		                    o->min);
	}
	if (o->has_max && v > o->max) {
		if (o->type == KD_CONFIG_DURATION) {
			kd_autofree char *m = kd_config_format_duration((uint64_t)o->max);
			return kd_error_set(err, ERANGE, 0, "%s: %s is above the maximum %s", label,
			                    value, m);
		}
		return kd_error_set(err, ERANGE, 0, "%s: %s is above the maximum %g", label, value,
		                    o->max);
	}
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < KD_ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* Parses `value` into the option's field. label: "--delay", "option \"delay\" for plugin x". */
static int parse_value(const struct kd_config_option *o, void *cfg, const char *value,
                       const char *label, struct kd_error **err)
{
	void *f = field(o, cfg);
	char *end;
	switch (o->type) {
	case KD_CONFIG_STRING: {
		char **sp = f;
		free(*sp);
		*sp = kd_xstrdup(value);
		return 0;
	}
	case KD_CONFIG_INT: {
		errno = 0;
		long long v = strtoll(value, &end, 10);
		if (!*value || *end || isspace((unsigned char)*value))
			return kd_error_set(err, EINVAL, 0, "%s: \"%s\" is not an integer", label,
			                    value);
		if (errno == ERANGE)
			return kd_error_set(err, ERANGE, 0, "%s: %s does not fit in 64 bits", label,
			                    value);
		int rc = check_range(o, (double)v, label, value, err);
		if (rc)
			return rc;
		*(int64_t *)f = v;
		return 0;
	}
	case KD_CONFIG_UINT: {
		errno = 0;
		unsigned long long v = strtoull(value, &end, 10);
		if (!isdigit((unsigned char)*value) || *end)
			return kd_error_set(err, EINVAL, 0,
			                    "%s: \"%s\" is not a non-negative integer", label,
			                    value);
		if (errno == ERANGE)
			return kd_error_set(err, ERANGE, 0, "%s: %s does not fit in 64 bits", label,
			                    value);
		int rc = check_range(o, (double)v, label, value, err);
		if (rc)
			return rc;
		*(uint64_t *)f = v;
		return 0;
	}
	case KD_CONFIG_DOUBLE: {
		errno = 0;
		double v = strtod(value, &end);
		if (!*value || *end || isspace((unsigned char)*value) || !isfinite(v) || errno)
			return kd_error_set(err, EINVAL, 0, "%s: \"%s\" is not a number", label,
			                    value);
		int rc = check_range(o, v, label, value, err);
		if (rc)
			return rc;
		*(double *)f = v;
		return 0;
	}
	case KD_CONFIG_BOOL: {
		bool v;
		if (parse_bool(value, &v) < 0)
			return kd_error_set(
			    err, EINVAL, 0,
			    "%s: \"%s\" is not a boolean (true/false, yes/no, on/off, "
			    "1/0)",
			    label, value);
		*(bool *)f = v;
		return 0;
	}
	case KD_CONFIG_DURATION: {
		uint64_t v;
		int rc = kd_config_parse_duration(value, &v);
		if (rc == -ERANGE)
			return kd_error_set(err, ERANGE, 0, "%s: \"%s\" is too long a duration",
			                    label, value);
		if (rc < 0)
			return kd_error_set(err, EINVAL, 0,
			                    "%s: \"%s\" is not a duration (e.g. 250ms, 2s)", label,
			                    value);
		rc = check_range(o, (double)v, label, value, err);
		if (rc)
			return rc;
		*(uint64_t *)f = v;
		return 0;
	}
	case KD_CONFIG_ENUM: {
		for (int i = 0; o->choices && o->choices[i]; i++) {
			if (strcmp(o->choices[i], value) == 0) {
				*(int *)f = i;
				return 0;
			}
		}
		kd_autofree char *c = choices_text(o, ", ");
		return kd_error_set(err, EINVAL, 0, "%s: \"%s\" is not one of: %s", label, value,
		                    c);
	}
	case KD_CONFIG_STRLIST: {
		struct kd_strlist *l = f;
		kd_strlist_clear(l);
		const char *p = value;
		while (*p) {
			const char *comma = strchr(p, ',');
			size_t len = comma ? (size_t)(comma - p) : strlen(p);
			const char *s = p;
			size_t n = len;
			while (n && isspace((unsigned char)*s)) {
				s++;
				n--;
			}
			while (n && isspace((unsigned char)s[n - 1]))
				n--;
			if (n)
				strlist_push(l, s, n);
			p += len;
			if (*p == ',')
				p++;
		}
		return 0;
	}
	}
	return kd_error_set(err, EINVAL, 0, "%s: option has unknown type %d", label, (int)o->type);
}

static void reset_field(const struct kd_config_option *o, void *cfg)
{
	memset(field(o, cfg), 0, type_size(o->type));
}

void kd_config_free(const struct kd_config_option *opts, void *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; opts && opts[i].key; i++) {
		if (opts[i].type == KD_CONFIG_STRING) {
			char **sp = field(&opts[i], cfg);
			free(*sp);
			*sp = NULL;
		} else if (opts[i].type == KD_CONFIG_STRLIST) {
			kd_strlist_clear(field(&opts[i], cfg));
		}
	}
}

const struct kd_config_option *kd_config_find(const struct kd_config_option *opts, const char *key)
{
	for (size_t i = 0; opts && key && opts[i].key; i++)
		if (strcmp(opts[i].key, key) == 0)
			return &opts[i];
	return NULL;
}

/* --- sources ---------------------------------------------------------------------------------- */
static char *opt_label(const struct kd_config_option *o, const char *what)
{
	if (what)
		return kd_xasprintf("option \"%s\" for %s", o->key, what);
	return kd_xasprintf("option \"%s\"", o->key);
}

static int apply_defaults(const struct kd_config_option *opts, void *cfg, bool *given,
                          struct kd_error **err)
{
	size_t n = count_opts(opts);
	for (size_t i = 0; i < n; i++)
		reset_field(&opts[i], cfg);
	for (size_t i = 0; i < n; i++) {
		if (!opts[i].def)
			continue;
		kd_autofree char *label = kd_xasprintf("default of option \"%s\"", opts[i].key);
		int rc = parse_value(&opts[i], cfg, opts[i].def, label, err);
		if (rc)
			return rc;
		if (given)
			given[i] = true;
	}
	return 0;
}

int kd_config_defaults(const struct kd_config_option *opts, void *cfg, struct kd_error **err)
{
	return apply_defaults(opts, cfg, NULL, err);
}

static int apply_env(const struct kd_config_option *opts, void *cfg, bool *given,
                     struct kd_error **err)
{
	for (size_t i = 0; opts && opts[i].key; i++) {
		const char *v = opts[i].env ? getenv(opts[i].env) : NULL;
		if (!v)
			continue;
		kd_autofree char *label =
		    kd_xasprintf("$%s (option \"%s\")", opts[i].env, opts[i].key);
		int rc = parse_value(&opts[i], cfg, v, label, err);
		if (rc)
			return rc;
		if (given)
			given[i] = true;
	}
	return 0;
}

int kd_config_apply_env(const struct kd_config_option *opts, void *cfg, struct kd_error **err)
{
	return apply_env(opts, cfg, NULL, err);
}

static bool field_nonzero(const struct kd_config_option *o, void *cfg)
{
	const unsigned char *p = field(o, cfg);
	if (o->type == KD_CONFIG_STRING) {
		const char *s = *(char *const *)(const void *)p;
		return s && *s;
	}
	if (o->type == KD_CONFIG_STRLIST)
		return ((const struct kd_strlist *)(const void *)p)->n > 0;
	for (size_t i = 0; i < type_size(o->type); i++)
		if (p[i])
			return true;
	return false;
}

/* Required: strings and lists must be non-empty; other types must have been given (default, env
 * or explicit value in this call) or be non-zero (set by an earlier layer). */
static int check_required(const struct kd_config_option *opts, void *cfg, const bool *given,
                          bool argv_style, const char *what, struct kd_error **err)
{
	for (size_t i = 0; opts && opts[i].key; i++) {
		const struct kd_config_option *o = &opts[i];
		if (!o->required)
			continue;
		bool ok = field_nonzero(o, cfg);
		if (o->type != KD_CONFIG_STRING && o->type != KD_CONFIG_STRLIST && given[i])
			ok = true;
		if (ok)
			continue;
		const char *envhint = o->env ? " (or $" : "";
		const char *envname = o->env ? o->env : "";
		const char *envend = o->env ? ")" : "";
		if (argv_style)
			return kd_error_set(err, EINVAL, 0, "missing required option --%s%s%s%s",
			                    o->key, envhint, envname, envend);
		return kd_error_set(err, EINVAL, 0, "missing required option \"%s\"%s%s%s%s%s",
		                    o->key, what ? " for " : "", what ? what : "", envhint, envname,
		                    envend);
	}
	return 0;
}

static int begin(const struct kd_config_option *opts, void *cfg, unsigned flags, bool *given,
                 struct kd_error **err)
{
	if (flags & KD_CONFIG_F_NO_DEFAULTS)
		return 0;
	int rc = apply_defaults(opts, cfg, given, err);
	if (rc)
		return rc;
	return apply_env(opts, cfg, given, err);
}

static int finish(const struct kd_config_option *opts, void *cfg, unsigned flags, const bool *given,
                  bool argv_style, const char *what, struct kd_error **err)
{
	if (flags & KD_CONFIG_F_NO_REQUIRED)
		return 0;
	return check_required(opts, cfg, given, argv_style, what, err);
}

static int unknown_key(const struct kd_config_option *opts, const char *key, const char *what,
                       struct kd_error **err)
{
	kd_autofree char *known = known_keys(opts);
	return kd_error_set(err, EINVAL, 0, "unknown option \"%s\"%s%s (known: %s)", key,
	                    what ? " for " : "", what ? what : "", known);
}

int kd_config_set(const struct kd_config_option *opts, void *cfg, const char *what, const char *key,
                  const char *value, struct kd_error **err)
{
	const struct kd_config_option *o = kd_config_find(opts, key);
	if (!o)
		return unknown_key(opts, key ? key : "(null)", what, err);
	kd_autofree char *label = opt_label(o, what);
	if (!value)
		return kd_error_set(err, EINVAL, 0, "%s: missing value", label);
	return parse_value(o, cfg, value, label, err);
}

int kd_config_parse_kv(const struct kd_config_option *opts, void *cfg, const char *what,
                       const char *const *kv, size_t n, unsigned flags, struct kd_error **err)
{
	size_t nopts = count_opts(opts);
	kd_autofree bool *given = kd_xcalloc(nopts + 1, sizeof(bool));
	int rc = begin(opts, cfg, flags, given, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(kv[i], '=');
		if (!eq)
			return kd_error_set(err, EINVAL, 0, "\"%s\"%s%s: expected key=value", kv[i],
			                    what ? " for " : "", what ? what : "");
		kd_autofree char *key = kd_xstrndup(kv[i], (size_t)(eq - kv[i]));
		rc = kd_config_set(opts, cfg, what, key, eq + 1, err);
		if (rc)
			return rc;
		given[kd_config_find(opts, key) - opts] = true;
	}
	return finish(opts, cfg, flags, given, false, what, err);
}

static int set_json(const struct kd_config_option *o, void *cfg, const char *what,
                    struct json_object *v, struct kd_error **err)
{
	kd_autofree char *label = opt_label(o, what);
	enum json_type jt = json_object_get_type(v);
	if (jt == json_type_null)
		return kd_error_set(err, EINVAL, 0, "%s: expected %s, got null", label,
		                    type_desc(o->type));
	if (o->type == KD_CONFIG_STRLIST && jt == json_type_array) {
		struct kd_strlist *l = field(o, cfg);
		kd_strlist_clear(l);
		size_t n = json_object_array_length(v);
		for (size_t i = 0; i < n; i++) {
			struct json_object *it = json_object_array_get_idx(v, i);
			if (!json_object_is_type(it, json_type_string))
				return kd_error_set(err, EINVAL, 0,
				                    "%s: item %zu is %s, expected a string", label,
				                    i, json_type_to_name(json_object_get_type(it)));
			strlist_push(l, json_object_get_string(it),
			             (size_t)json_object_get_string_len(it));
		}
		return 0;
	}
	bool ok;
	switch (o->type) {
	case KD_CONFIG_INT:
	case KD_CONFIG_UINT:
	case KD_CONFIG_DOUBLE:
		ok = jt == json_type_string || jt == json_type_int || jt == json_type_double;
		break;
	case KD_CONFIG_BOOL:
		ok = jt == json_type_string || jt == json_type_boolean;
		break;
	default:
		ok = jt == json_type_string;
		break;
	}
	if (!ok) {
		if (o->type == KD_CONFIG_DURATION)
			return kd_error_set(
			    err, EINVAL, 0,
			    "%s: expected a duration string (e.g. \"250ms\", \"2s\"), "
			    "got %s %s",
			    label, json_type_to_name(jt),
			    json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
		return kd_error_set(err, EINVAL, 0, "%s: expected %s, got %s %s", label,
		                    type_desc(o->type), json_type_to_name(jt),
		                    json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	}
	return parse_value(o, cfg, json_object_get_string(v), label, err);
}

int kd_config_parse_json(const struct kd_config_option *opts, void *cfg, const char *what,
                         struct json_object *obj, unsigned flags, struct kd_error **err)
{
	size_t nopts = count_opts(opts);
	kd_autofree bool *given = kd_xcalloc(nopts + 1, sizeof(bool));
	int rc = begin(opts, cfg, flags, given, err);
	if (rc)
		return rc;
	if (obj) {
		if (!json_object_is_type(obj, json_type_object))
			return kd_error_set(err, EINVAL, 0,
			                    "config%s%s: expected a JSON object, got %s",
			                    what ? " for " : "", what ? what : "",
			                    json_type_to_name(json_object_get_type(obj)));
		json_object_object_foreach(obj, key, val)
		{
			const struct kd_config_option *o = kd_config_find(opts, key);
			if (!o)
				return unknown_key(opts, key, what, err);
			rc = set_json(o, cfg, what, val, err);
			if (rc)
				return rc;
			given[o - opts] = true;
		}
	}
	return finish(opts, cfg, flags, given, false, what, err);
}

int kd_config_parse_json_str(const struct kd_config_option *opts, void *cfg, const char *what,
                             const char *json, unsigned flags, struct kd_error **err)
{
	struct json_object *obj = NULL;
	if (json && *json) {
		struct json_tokener *tok = json_tokener_new();
		obj = json_tokener_parse_ex(tok, json, (int)strlen(json));
		enum json_tokener_error jerr = json_tokener_get_error(tok);
		size_t off = json_tokener_get_parse_end(tok);
		json_tokener_free(tok);
		if (!obj || jerr != json_tokener_success || json[off] != '\0') {
			json_object_put(obj);
			/* leave cfg valid for kd_config_free, as every parse function does */
			for (size_t i = 0;
			     !(flags & KD_CONFIG_F_NO_DEFAULTS) && opts && opts[i].key; i++)
				reset_field(&opts[i], cfg);
			if (jerr == json_tokener_success)
				return kd_error_set(
				    err, EINVAL, 0,
				    "config%s%s: trailing data after JSON at offset %zu",
				    what ? " for " : "", what ? what : "", off);
			return kd_error_set(err, EINVAL, 0,
			                    "config%s%s: invalid JSON at offset %zu: %s",
			                    what ? " for " : "", what ? what : "", off,
			                    json_tokener_error_desc(jerr));
		}
	}
	int rc = kd_config_parse_json(opts, cfg, what, obj, flags, err);
	json_object_put(obj);
	return rc;
}

/* --- argv ------------------------------------------------------------------------------------- */
/* Reads the options of a --config-dir: one file per option, named by its key, holding its value
 * (a mounted ConfigMap: the keys are symlinks into "..data", which like every dotfile is
 * skipped). Trailing whitespace is dropped. Unknown names are errors: a typo in a ConfigMap key
 * must not be ignored silently. */
#define CONFIG_DIR_FILE_MAX (64 * 1024)
static int apply_config_dir(const struct kd_config_option *opts, void *cfg, const char *dir,
                            bool *given, struct kd_error **err)
{
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, alphasort);
	if (n < 0)
		return kd_error_set(err, errno, 0, "--config-dir %s: %s", dir, strerror(errno));
	int rc = 0;
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		if (rc || name[0] == '.')
			continue;
		kd_autofree char *path = kd_xasprintf("%s/%s", dir, name);
		struct stat st;
		if (stat(path, &st) != 0) {
			rc = kd_error_set(err, errno, 0, "--config-dir: %s: %s", path,
			                  strerror(errno));
			continue;
		}
		if (S_ISDIR(st.st_mode))
			continue;
		const struct kd_config_option *o = kd_config_find(opts, name);
		if (!o) {
			kd_autofree char *known = known_keys(opts);
			rc = kd_error_set(err, EINVAL, 0,
			                  "--config-dir: %s: unknown option \"%s\" (known: %s)",
			                  path, name, known);
			continue;
		}
		kd_autofree char *value = NULL;
		size_t len = 0;
		int e = S_ISREG(st.st_mode) ? kd_read_file(path, CONFIG_DIR_FILE_MAX, &value, &len)
		                            : -EINVAL;
		if (e == -EINVAL || e == -EFBIG) {
			rc =
			    kd_error_set(err, EINVAL, 0,
			                 "--config-dir: %s: not a regular file of at most %d bytes",
			                 path, CONFIG_DIR_FILE_MAX);
			continue;
		}
		if (e < 0) {
			rc = kd_error_set(err, -e, 0, "--config-dir: %s: %s", path, strerror(-e));
			continue;
		}
		while (len > 0 && isspace((unsigned char)value[len - 1]))
			len--;
		value[len] = '\0';
		if (memchr(value, '\0', len)) {
			rc = kd_error_set(err, EINVAL, 0, "--config-dir: %s: holds a NUL byte",
			                  path);
			continue;
		}
		kd_autofree char *label = kd_xasprintf("--config-dir %s", path);
		rc = parse_value(o, cfg, value, label, err);
		if (rc == 0)
			given[o - opts] = true;
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

static int parse_argv_layers(const struct kd_config_option *opts, void *cfg,
                             const struct kd_config_cli *cli, int argc, char *const *argv,
                             unsigned flags, const char *config_dir, int *first_arg,
                             struct kd_error **err)
{
	size_t nopts = count_opts(opts);
	kd_autofree bool *given = kd_xcalloc(nopts + 1, sizeof(bool));
	int rc = begin(opts, cfg, flags, given, err);
	if (rc)
		return rc;
	if (config_dir) {
		rc = apply_config_dir(opts, cfg, config_dir, given, err);
		if (rc)
			return rc;
	}
	FILE *out = cli && cli->out ? cli->out : stdout;
	int i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || a[1] == '\0')
			break;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			kd_autofree char *help = kd_config_help(opts, cli);
			fputs(help, out);
			fflush(out);
			return KD_CONFIG_HELP_SHOWN;
		}
		if (strcmp(a, "--version") == 0 && cli && cli->version) {
			fprintf(out, "%s %s (%s)\n", cli->prog ? cli->prog : "", cli->version,
			        cli->commit && *cli->commit ? cli->commit : "unknown");
			fflush(out);
			return KD_CONFIG_VERSION_SHOWN;
		}
		if (a[1] != '-')
			return kd_error_set(err, EINVAL, 0, "unknown option \"%s\" (see --help)",
			                    a);
		const char *name = a + 2;
		const char *eq = strchr(name, '=');
		kd_autofree char *key =
		    eq ? kd_xstrndup(name, (size_t)(eq - name)) : kd_xstrdup(name);
		kd_autofree char *label = kd_xasprintf("--%s", key);
		const struct kd_config_option *o = kd_config_find(opts, key);
		if (!o && !eq && strncmp(key, "no-", 3) == 0) {
			const struct kd_config_option *b = kd_config_find(opts, key + 3);
			if (b && b->type == KD_CONFIG_BOOL) {
				*(bool *)field(b, cfg) = false;
				given[b - opts] = true;
				continue;
			}
		}
		if (!o)
			return kd_error_set(err, EINVAL, 0, "unknown option \"--%s\" (see --help)",
			                    key);
		const char *value;
		if (eq)
			value = eq + 1;
		else if (o->type == KD_CONFIG_BOOL)
			value = "true";
		else if (i + 1 < argc)
			value = argv[++i];
		else
			return kd_error_set(err, EINVAL, 0, "%s: missing value", label);
		rc = parse_value(o, cfg, value, label, err);
		if (rc)
			return rc;
		given[o - opts] = true;
	}
	if (first_arg)
		*first_arg = i;
	else if (i < argc)
		return kd_error_set(err, EINVAL, 0, "unexpected argument \"%s\"", argv[i]);
	return finish(opts, cfg, flags, given, true, NULL, err);
}

int kd_config_parse_argv(const struct kd_config_option *opts, void *cfg,
                         const struct kd_config_cli *cli, int argc, char *const *argv,
                         unsigned flags, int *first_arg, struct kd_error **err)
{
	return parse_argv_layers(opts, cfg, cli, argc, argv, flags, NULL, first_arg, err);
}

/* --- validation ------------------------------------------------------------------------------- */
int kd_config_validate_table(const struct kd_config_option *opts, size_t cfg_size,
                             struct kd_error **err)
{
	size_t n = count_opts(opts);
	for (size_t i = 0; i < n; i++) {
		const struct kd_config_option *o = &opts[i];
		if (!*o->key)
			return kd_error_set(err, EINVAL, 0, "option %zu has an empty key", i);
		for (const char *p = o->key; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
				return kd_error_set(
				    err, EINVAL, 0,
				    "option \"%s\": key may only hold letters, digits, "
				    "'-', '_' and '.'",
				    o->key);
		for (size_t j = 0; j < i; j++)
			if (strcmp(opts[j].key, o->key) == 0)
				return kd_error_set(err, EINVAL, 0,
				                    "option \"%s\" is defined twice", o->key);
		size_t sz = type_size(o->type);
		if (!sz)
			return kd_error_set(err, EINVAL, 0, "option \"%s\": unknown type %d",
			                    o->key, (int)o->type);
		if (o->offset > cfg_size || sz > cfg_size - o->offset)
			return kd_error_set(
			    err, EINVAL, 0,
			    "option \"%s\": field at offset %zu (%zu bytes) is outside "
			    "the %zu-byte config struct",
			    o->key, o->offset, sz, cfg_size);
		if (o->type == KD_CONFIG_ENUM && (!o->choices || !o->choices[0]))
			return kd_error_set(err, EINVAL, 0, "option \"%s\": enum without choices",
			                    o->key);
		if (o->has_min && o->has_max && o->min > o->max)
			return kd_error_set(err, EINVAL, 0, "option \"%s\": minimum above maximum",
			                    o->key);
	}
	/* defaults must parse */
	void *scratch = kd_xcalloc(1, cfg_size ? cfg_size : 1);
	int rc = kd_config_defaults(opts, scratch, err);
	kd_config_free(opts, scratch);
	free(scratch);
	return rc;
}

/* --- help and docs ---------------------------------------------------------------------------- */
static char *metavar(const struct kd_config_option *o)
{
	if (o->metavar)
		return kd_xstrdup(o->metavar);
	switch (o->type) {
	case KD_CONFIG_STRING:
		return kd_xstrdup("STRING");
	case KD_CONFIG_INT:
		return kd_xstrdup("INT");
	case KD_CONFIG_UINT:
		return kd_xstrdup("N");
	case KD_CONFIG_DOUBLE:
		return kd_xstrdup("NUM");
	case KD_CONFIG_DURATION:
		return kd_xstrdup("DURATION");
	case KD_CONFIG_ENUM:
		return choices_text(o, "|");
	case KD_CONFIG_STRLIST:
		return kd_xstrdup("A,B,...");
	case KD_CONFIG_BOOL:
		break;
	}
	return kd_xstrdup("VALUE");
}

static void range_text(struct sb *b, const struct kd_config_option *o)
{
	if (!o->has_min && !o->has_max)
		return;
	if (o->type == KD_CONFIG_DURATION) {
		kd_autofree char *lo =
		    o->has_min ? kd_config_format_duration((uint64_t)o->min) : NULL;
		kd_autofree char *hi =
		    o->has_max ? kd_config_format_duration((uint64_t)o->max) : NULL;
		if (lo && hi)
			sb_printf(b, "range %s..%s", lo, hi);
		else if (lo)
			sb_printf(b, "at least %s", lo);
		else
			sb_printf(b, "at most %s", hi);
		return;
	}
	if (o->has_min && o->has_max)
		sb_printf(b, "range %g..%g", o->min, o->max);
	else if (o->has_min)
		sb_printf(b, "at least %g", o->min);
	else
		sb_printf(b, "at most %g", o->max);
}

#define HELP_COL   32
#define HELP_WIDTH 80

/* Appends text word-wrapped to HELP_WIDTH columns: the first line continues a line already at
 * column `col`, the following ones are indented by `indent`. A word longer than a line stands
 * alone on its line. Ends with a newline. */
static void sb_wrapped(struct sb *b, const char *text, size_t col, size_t indent)
{
	const char *p = text;
	bool first_word = true;
	while (*p) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		size_t w = strcspn(p, " ");
		if (!first_word && col + 1 + w > HELP_WIDTH) {
			sb_printf(b, "\n%*s", (int)indent, "");
			col = indent;
			first_word = true;
		}
		if (!first_word) {
			sb_printf(b, " ");
			col++;
		}
		sb_printf(b, "%.*s", (int)w, p);
		col += w;
		p += w;
		first_word = false;
	}
	sb_printf(b, "\n");
}

/* The line every program's --help ends with: kd_config_main's 0 and 2, and 1 for what fails
 * after the options were accepted (a port taken, an unusable kubeconfig, a plugin refused). */
static const char exit_status_text[] =
    "Exit status: 0 on success, 1 on a runtime failure, 2 on bad options (usage).";

char *kd_config_help(const struct kd_config_option *opts, const struct kd_config_cli *cli)
{
	struct sb b = {0};
	sb_printf(&b, "Usage: %s [OPTIONS]%s%s\n", cli && cli->prog ? cli->prog : "program",
	          cli && cli->args ? " " : "", cli && cli->args ? cli->args : "");
	if (cli && cli->summary)
		sb_wrapped(&b, cli->summary, 0, 0);
	sb_printf(&b, "\nOptions:\n");
	for (size_t i = 0; opts && opts[i].key; i++) {
		const struct kd_config_option *o = &opts[i];
		kd_autofree char *left = NULL;
		if (o->type == KD_CONFIG_BOOL) {
			left = kd_xasprintf("  --[no-]%s", o->key);
		} else {
			kd_autofree char *mv = metavar(o);
			left = kd_xasprintf("  --%s=%s", o->key, mv);
		}
		struct sb right = {0};
		sb_printf(&right, "%s", o->help ? o->help : "");
		struct sb extra = {0};
		if (o->required)
			sb_printf(&extra, "required");
		if (o->def)
			sb_printf(&extra, "%sdefault: %s", extra.len ? "; " : "",
			          *o->def ? o->def : "\"\"");
		if (o->has_min || o->has_max) {
			sb_printf(&extra, "%s", extra.len ? "; " : "");
			range_text(&extra, o);
		}
		if (o->env)
			sb_printf(&extra, "%senv: %s", extra.len ? "; " : "", o->env);
		if (extra.len)
			sb_printf(&right, "%s(%s)", right.len ? " " : "", extra.s);
		free(extra.s);
		size_t len = strlen(left);
		if (!right.len) {
			sb_printf(&b, "%s\n", left);
		} else if (len + 2 > HELP_COL) {
			sb_printf(&b, "%s\n%*s", left, HELP_COL, "");
			sb_wrapped(&b, right.s, HELP_COL, HELP_COL);
		} else {
			sb_printf(&b, "%s%*s", left, (int)(HELP_COL - len), "");
			sb_wrapped(&b, right.s, HELP_COL, HELP_COL);
		}
		free(right.s);
	}
	if (cli && cli->config_dir) {
		const char *left = "  --config-dir=DIR";
		sb_printf(&b, "%s%*s", left, (int)(HELP_COL - strlen(left)), "");
		sb_wrapped(&b,
		           "read options from DIR, one file per option named by its key (a mounted "
		           "ConfigMap); the command line wins over DIR, DIR over the environment "
		           "(env: KD_CONFIG_DIR)",
		           HELP_COL, HELP_COL);
	}
	sb_printf(&b, "  -h, --help%*sshow this help and exit\n", HELP_COL - 12, "");
	if (cli && cli->version)
		sb_printf(&b, "  --version%*sshow the version and exit\n", HELP_COL - 11, "");
	if (cli) {
		sb_printf(&b, "\n");
		sb_wrapped(&b, exit_status_text, 0, 0);
	}
	return sb_take(&b);
}

static void md_escaped(struct sb *b, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '|')
			sb_printf(b, "\\|");
		else if (*s == '\n')
			sb_printf(b, " ");
		else
			sb_printf(b, "%c", *s);
	}
}

char *kd_config_markdown(const struct kd_config_option *opts, const char *title)
{
	struct sb b = {0};
	if (title)
		sb_printf(&b, "## %s\n\n", title);
	if (!count_opts(opts)) {
		sb_printf(&b, "No options.\n");
		return sb_take(&b);
	}
	sb_printf(&b, "| Option | Type | Default | Env | Description |\n");
	sb_printf(&b, "|---|---|---|---|---|\n");
	for (size_t i = 0; opts[i].key; i++) {
		const struct kd_config_option *o = &opts[i];
		sb_printf(&b, "| `%s` | ", o->key);
		if (o->type == KD_CONFIG_ENUM) {
			kd_autofree char *c = choices_text(o, ", ");
			sb_printf(&b, "enum: ");
			md_escaped(&b, c);
		} else {
			sb_printf(&b, "%s", type_name(o->type));
		}
		sb_printf(&b, " | ");
		if (o->def) {
			sb_printf(&b, "`");
			md_escaped(&b, o->def);
			sb_printf(&b, "`");
		} else {
			sb_printf(&b, "-");
		}
		sb_printf(&b, " | %s%s%s | ", o->env ? "`" : "", o->env ? o->env : "-",
		          o->env ? "`" : "");
		if (o->required)
			sb_printf(&b, "**Required.** ");
		md_escaped(&b, o->help);
		if (o->has_min || o->has_max) {
			struct sb r = {0};
			range_text(&r, o);
			sb_printf(&b, "%s(%s)", o->help && *o->help ? " " : "", r.s);
			free(r.s);
		}
		sb_printf(&b, " |\n");
	}
	return sb_take(&b);
}

const char *const kd_config_log_levels[] = {"error", "warn", "info", "debug", "trace", NULL};
const char *const kd_config_log_formats[] = {"text", "json", NULL};

/* Takes --config-dir DIR / --config-dir=DIR out of argv (options before "--"), falling back to
 * $KD_CONFIG_DIR; the other arguments go to args (borrowed), in order. */
static int take_config_dir(int argc, char *const *argv, char **args, int *nargs, const char **dir,
                           struct kd_error **err)
{
	*dir = getenv("KD_CONFIG_DIR");
	if (*dir && !**dir)
		*dir = NULL;
	int n = 0;
	bool opts_end = false;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (i > 0 && !opts_end && strcmp(a, "--") == 0)
			opts_end = true;
		if (i == 0 || opts_end || strncmp(a, "--config-dir", 12) != 0 ||
		    (a[12] != '\0' && a[12] != '=')) {
			args[n++] = argv[i];
			continue;
		}
		if (a[12] == '=') {
			*dir = a + 13;
		} else if (i + 1 < argc) {
			*dir = argv[++i];
		} else {
			return kd_error_set(err, EINVAL, 0, "--config-dir: missing value");
		}
		if (!**dir)
			return kd_error_set(err, EINVAL, 0, "--config-dir: empty directory name");
	}
	args[n] = NULL;
	*nargs = n;
	return 0;
}

int kd_config_main(const struct kd_config_option *opts, void *cfg, const struct kd_config_cli *cli,
                   int argc, char *const *argv)
{
	struct kd_error *err = NULL;
	int rc = 0;
	const char *dir = NULL;
	kd_autofree char **args = kd_xcalloc((size_t)argc + 1, sizeof(char *));
	int nargs = 0;
	if (cli->config_dir)
		rc = take_config_dir(argc, argv, args, &nargs, &dir, &err);
	else
		for (nargs = 0; nargs < argc; nargs++)
			args[nargs] = argv[nargs];
	if (rc == 0)
		rc = parse_argv_layers(opts, cfg, cli, nargs, args, 0, dir, NULL, &err);
	else
		kd_config_defaults(opts, cfg, NULL); /* cfg valid for kd_config_free below */
	if (rc == 0 && cli->check)
		rc = cli->check(cfg, &err);
	if (rc == 0) {
		if (cli->log_level && cli->log_format)
			kd_log_init(cli->prog, (enum kd_log_level) * cli->log_level,
			            (enum kd_log_format) * cli->log_format);
		if (cli->ignore_sigpipe)
			signal(SIGPIPE, SIG_IGN);
		return -1;
	}
	kd_config_free(opts, cfg);
	if (rc > 0)
		return 0;
	const char *msg = kd_error_msg(err);
	fprintf(stderr, "%s: %s%s\n", cli->prog, msg,
	        strstr(msg, "(see --help)") ? "" : " (see --help)");
	kd_error_free(err);
	return 2;
}
