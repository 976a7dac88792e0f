/* bench/trace/trace_parse.c: strict readers of the trace replayer's input files (see
 * trace_parse.h). One line reader splits a buffer into lines and fields, refusing what the
 * formats never contain (NUL, '"', a lone '\r', empty lines, overlong lines); the format
 * functions then check the header and every field of every row, naming the file, the line and
 * the column of the first thing wrong. */
#include "trace_parse.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd/common.h"
#include "kd/strmap.h"

/* ---- lines and fields ------------------------------------------------------------------------ */

struct rd {
	const char *name;
	const char *p, *end;
	size_t line; /* of the current line, 1-based */
	char sep;
	char *buf; /* the current line, fields NUL-separated; owned */
	char **f;  /* fields, pointing into buf; owned array */
	size_t nf, f_cap;
};

static void rd_init(struct rd *r, const char *name, const char *buf, size_t len, char sep)
{
	memset(r, 0, sizeof(*r));
	r->name = name;
	r->p = buf;
	r->end = buf + len;
	r->sep = sep;
}

static void rd_fini(struct rd *r)
{
	free(r->buf);
	free(r->f);
	r->buf = NULL;
	r->f = NULL;
}

/* "NAME:LINE: message" as *err; returns -EINVAL. */
static int KD_PRINTF(3, 4) rd_err(const struct rd *r, struct kd_error **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kd_autofree char *msg = kd_xvasprintf(fmt, ap);
	va_end(ap);
	kd_error_set(err, EINVAL, 0, "%s:%zu: %s", r->name, r->line, msg);
	return -EINVAL;
}

/* The next line into r->f / r->nf. 1 for a line, 0 at the end of the buffer, -EINVAL. */
static int rd_next(struct rd *r, struct kd_error **err)
{
	if (r->p >= r->end)
		return 0;
	r->line++;
	const char *s = r->p;
	size_t avail = (size_t)(r->end - s);
	const char *nl = memchr(s, '\n', avail);
	size_t len = nl ? (size_t)(nl - s) : avail;
	r->p = nl ? nl + 1 : r->end;
	if (len > KD_TRACE_LINE_MAX) {
		rd_err(r, err, "line longer than %u bytes", KD_TRACE_LINE_MAX);
		return -EINVAL;
	}
	if (len && s[len - 1] == '\r')
		len--;
	if (len == 0) {
		rd_err(r, err, "empty line");
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"') {
			rd_err(r, err, "'\"' at byte %zu: quoted fields are not supported", i + 1);
			return -EINVAL;
		}
		if (c < 0x20 && c != '\t') {
			rd_err(r, err, "control character 0x%02x at byte %zu", c, i + 1);
			return -EINVAL;
		}
		if (c == '\t' && r->sep != '\t') {
			rd_err(r, err, "tab at byte %zu (fields are separated by '%c')", i + 1,
			       r->sep);
			return -EINVAL;
		}
	}
	free(r->buf);
	r->buf = kd_xstrndup(s, len);
	r->nf = 0;
	char *p = r->buf;
	for (;;) {
		if (r->nf == r->f_cap) {
			r->f_cap = r->f_cap ? 2 * r->f_cap : 16;
			r->f = kd_xrealloc(r->f, r->f_cap * sizeof(*r->f));
		}
		r->f[r->nf++] = p;
		char *q = strchr(p, r->sep);
		if (!q)
			break;
		*q = '\0';
		p = q + 1;
	}
	return 1;
}

/* ---- fields ---------------------------------------------------------------------------------- */

static bool chars_ok(const char *s, const char *extra, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
			return false;
	return true;
}

#define ID_CHARS      "._:-"
#define TRIGGER_CHARS "_-"

static int check_id(const struct rd *r, size_t col, const char *what, const char *s,
                    struct kd_error **err)
{
	if (chars_ok(s, ID_CHARS, KD_TRACE_ID_MAX))
		return 0;
	if (!*s)
		return rd_err(r, err, "column %zu (%s) is empty", col + 1, what);
	return rd_err(r, err,
	              "column %zu (%s): \"%.40s\" is not an id (1-%u characters of "
	              "[A-Za-z0-9._:-])",
	              col + 1, what, s, KD_TRACE_ID_MAX);
}

/* A decimal count: digits only, at most KD_TRACE_COUNT_MAX. */
static bool parse_count(const char *s, uint32_t *out)
{
	size_t n = strlen(s);
	if (n == 0 || n > 10)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > KD_TRACE_COUNT_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* A finite non-negative decimal number: [+]digits[.digits][e[+-]digits], at least one digit
 * before the exponent (no sign '-', no "inf"/"nan", no hex). */
static bool parse_num(const char *s, double *out)
{
	const char *p = s;
	size_t digits = 0;
	if (*p == '+')
		p++;
	while (*p >= '0' && *p <= '9') {
		p++;
		digits++;
	}
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			p++;
			digits++;
		}
	}
	if (!digits)
		return false;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p)
		return false;
	errno = 0;
	char *end = NULL;
	double v = strtod(s, &end);
	if (end != p || !isfinite(v) || v < 0)
		return false;
	*out = v;
	return true;
}

static int num_field(const struct rd *r, size_t col, const char *what, double *out,
                     struct kd_error **err)
{
	if (parse_num(r->f[col], out))
		return 0;
	return rd_err(r, err,
	              "column %zu (%s): \"%.40s\" is not a finite non-negative decimal number",
	              col + 1, what, r->f[col]);
}

/* Header column `col` must be `want`. */
static int want_col(const struct rd *r, size_t col, const char *want, struct kd_error **err)
{
	if (col < r->nf && strcmp(r->f[col], want) == 0)
		return 0;
	if (col >= r->nf)
		return rd_err(r, err, "header: column %zu missing, \"%s\" expected", col + 1, want);
	return rd_err(r, err, "header: column %zu is \"%.40s\", \"%s\" expected", col + 1,
	              r->f[col], want);
}

static int want_nf(const struct rd *r, size_t want, struct kd_error **err)
{
	if (r->nf == want)
		return 0;
	return rd_err(r, err, "%zu fields, the header has %zu", r->nf, want);
}

/* ---- the trace ------------------------------------------------------------------------------- */

/* A function's key ("owner,app,func" or "app,func") with what the maps need to know of it:
 * the strmaps point their keys into these and map to them. */
struct key {
	size_t line; /* where it first appeared */
	size_t idx;  /* 1-based index among the kept functions; 0: not kept */
	char k[];
};

/* The keys, owned, freed together. */
struct keys {
	struct key **k;
	size_t n, cap;
};

static struct key *keys_add(struct keys *ks, const char *k, size_t line)
{
	if (ks->n == ks->cap) {
		ks->cap = ks->cap ? 2 * ks->cap : 64;
		ks->k = kd_xrealloc(ks->k, ks->cap * sizeof(*ks->k));
	}
	size_t len = strlen(k);
	struct key *x = kd_xmalloc(sizeof(*x) + len + 1);
	x->line = line;
	x->idx = 0;
	memcpy(x->k, k, len + 1);
	ks->k[ks->n++] = x;
	return x;
}

static void keys_fini(struct keys *ks)
{
	for (size_t i = 0; i < ks->n; i++)
		free(ks->k[i]);
	free(ks->k);
	memset(ks, 0, sizeof(*ks));
}

static struct kd_trace_fn *push_fn(struct kd_trace *t, size_t *cap)
{
	if (t->n_fns == *cap) {
		*cap = *cap ? 2 * *cap : 16;
		t->fns = kd_xrealloc(t->fns, *cap * sizeof(*t->fns));
	}
	struct kd_trace_fn *fn = &t->fns[t->n_fns++];
	memset(fn, 0, sizeof(*fn));
	return fn;
}

void kd_trace_free(struct kd_trace *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_fns; i++) {
		free(t->fns[i].owner);
		free(t->fns[i].app);
		free(t->fns[i].func);
		free(t->fns[i].trigger);
		free(t->fns[i].counts);
	}
	free(t->fns);
	free(t->invs);
	free(t);
}

static const char *const hdr2019[] = {"HashOwner", "HashApp", "HashFunction", "Trigger"};

/* The invocations file: header and rows into t; `kept` maps the kept functions' keys
 * ("owner,app,func") to their struct key in ks. */
static int parse_2019_invocations(struct rd *r, size_t max_fns, struct kd_trace *t,
                                  struct kd_strmap *kept, struct keys *ks, struct kd_error **err)
{
	int rc = rd_next(r, err);
	if (rc <= 0)
		return rc < 0 ? rc
		              : kd_error_set(err, EINVAL, 0, "%s: empty file (no header)", r->name);
	for (size_t i = 0; i < 4; i++)
		if ((rc = want_col(r, i, hdr2019[i], err)) < 0)
			return rc;
	if (r->nf < 5)
		return rd_err(r, err, "header: no minute column (\"1\" expected after Trigger)");
	size_t nf = r->nf;
	t->n_minutes = nf - 4;
	for (size_t m = 0; m < t->n_minutes; m++) {
		char want[24];
		snprintf(want, sizeof(want), "%zu", m + 1);
		if ((rc = want_col(r, 4 + m, want, err)) < 0)
			return rc;
	}
	struct kd_strmap all = {0}; /* every function of the file: key -> struct key */
	size_t cap = 0;
	while ((rc = rd_next(r, err)) == 1) {
		if ((rc = want_nf(r, nf, err)) < 0)
			break;
		for (size_t i = 0; i < 3 && rc == 0; i++)
			rc = check_id(r, i, hdr2019[i], r->f[i], err);
		if (rc < 0)
			break;
		if (!chars_ok(r->f[3], TRIGGER_CHARS, KD_TRACE_ID_MAX)) {
			rc = rd_err(
			    r, err,
			    "column 4 (Trigger): \"%.40s\" is not a trigger (1-%u characters "
			    "of [A-Za-z0-9_-])",
			    r->f[3], KD_TRACE_ID_MAX);
			break;
		}
		kd_autofree char *ktext = kd_xasprintf("%s,%s,%s", r->f[0], r->f[1], r->f[2]);
		struct key *key = keys_add(ks, ktext, r->line);
		const struct key *first = kd_strmap_add(&all, key->k, key);
		if (first) {
			rc = rd_err(r, err, "function %s/%s/%s again (first on line %zu)", r->f[0],
			            r->f[1], r->f[2], first->line);
			break;
		}
		bool keep = max_fns == 0 || t->n_fns < max_fns;
		uint32_t *counts = keep ? kd_xcalloc(t->n_minutes, sizeof(uint32_t)) : NULL;
		for (size_t m = 0; m < t->n_minutes; m++) {
			uint32_t c;
			if (!parse_count(r->f[4 + m], &c)) {
				rc = rd_err(r, err,
				            "column %zu (minute %zu): \"%.40s\" is not a count (an "
				            "integer 0..%u)",
				            5 + m, m + 1, r->f[4 + m], KD_TRACE_COUNT_MAX);
				break;
			}
			if (counts)
				counts[m] = c;
		}
		if (rc < 0) {
			free(counts);
			break;
		}
		t->n_fns_file++;
		if (!keep)
			continue;
		struct kd_trace_fn *fn = push_fn(t, &cap);
		fn->owner = kd_xstrdup(r->f[0]);
		fn->app = kd_xstrdup(r->f[1]);
		fn->func = kd_xstrdup(r->f[2]);
		fn->trigger = kd_xstrdup(r->f[3]);
		fn->line = r->line;
		fn->counts = counts;
		key->idx = t->n_fns;
		kd_strmap_put(kept, key->k, key);
	}
	kd_strmap_fini(&all);
	if (rc < 0)
		return rc;
	if (t->n_fns_file == 0)
		return kd_error_set(err, EINVAL, 0, "%s: no function rows after the header",
		                    r->name);
	return 0;
}

static int parse_2019_durations(struct rd *r, const char *column, struct kd_trace *t,
                                const struct kd_strmap *kept, struct kd_error **err)
{
	int rc = rd_next(r, err);
	if (rc <= 0)
		return rc < 0 ? rc
		              : kd_error_set(err, EINVAL, 0, "%s: empty file (no header)", r->name);
	for (size_t i = 0; i < 3; i++)
		if ((rc = want_col(r, i, hdr2019[i], err)) < 0)
			return rc;
	size_t nf = r->nf, col = 0;
	kd_autofree char **names = kd_xcalloc(nf, sizeof(char *));
	for (size_t i = 3; i < nf; i++) {
		if (!*r->f[i]) {
			rc = rd_err(r, err, "header: column %zu has no name", i + 1);
			goto out;
		}
		names[i] = kd_xstrdup(r->f[i]);
		if (!col && strcmp(r->f[i], column) == 0)
			col = i;
	}
	if (!col) {
		rc = rd_err(r, err, "header: no column \"%s\" (the durations column, ms)", column);
		goto out;
	}
	while ((rc = rd_next(r, err)) == 1) {
		if ((rc = want_nf(r, nf, err)) < 0)
			break;
		for (size_t i = 0; i < 3 && rc == 0; i++)
			rc = check_id(r, i, hdr2019[i], r->f[i], err);
		double v = 0, mine = 0;
		for (size_t i = 3; i < nf && rc == 0; i++) {
			rc = num_field(r, i, names[i], &v, err);
			if (i == col)
				mine = v;
		}
		if (rc < 0)
			break;
		kd_autofree char *key = kd_xasprintf("%s,%s,%s", r->f[0], r->f[1], r->f[2]);
		const struct key *kk = kd_strmap_get(kept, key);
		if (!kk)
			continue; /* a function not replayed */
		struct kd_trace_fn *fn = &t->fns[kk->idx - 1];
		if (fn->duration_line) {
			rc = rd_err(r, err, "function %s/%s/%s again (first on line %zu)", r->f[0],
			            r->f[1], r->f[2], fn->duration_line);
			break;
		}
		if (mine > KD_TRACE_MS_MAX) {
			rc = rd_err(r, err, "column %zu (%s): %g ms is more than a day", col + 1,
			            column, mine);
			break;
		}
		fn->duration_ms = mine;
		fn->duration_line = r->line;
	}
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < t->n_fns; i++) {
		const struct kd_trace_fn *fn = &t->fns[i];
		if (!fn->duration_line) {
			rc = kd_error_set(err, EINVAL, 0,
			                  "%s: no row for function %s/%s/%s (invocations line %zu)",
			                  r->name, fn->owner, fn->app, fn->func, fn->line);
			goto out;
		}
	}
	rc = 0;
out:
	for (size_t i = 0; i < nf; i++)
		free(names[i]);
	return rc;
}

int kd_trace_parse_2019(const char *inv_name, const char *inv, size_t inv_len, const char *dur_name,
                        const char *dur, size_t dur_len, const char *column, size_t max_fns,
                        struct kd_trace **out, struct kd_error **err)
{
	struct kd_trace *t = kd_xcalloc(1, sizeof(*t));
	t->format = KD_TRACE_AZURE2019;
	struct kd_strmap kept = {0};
	struct keys ks = {0};
	struct rd r;
	rd_init(&r, inv_name, inv, inv_len, ',');
	int rc = parse_2019_invocations(&r, max_fns, t, &kept, &ks, err);
	rd_fini(&r);
	if (rc == 0) {
		rd_init(&r, dur_name, dur, dur_len, ',');
		rc =
		    parse_2019_durations(&r, column && *column ? column : "Average", t, &kept, err);
		rd_fini(&r);
	}
	kd_strmap_fini(&kept);
	keys_fini(&ks);
	if (rc < 0) {
		kd_trace_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

static const char *const hdr2021[] = {"app", "func", "end_timestamp", "duration"};

struct p2021 {
	struct kd_trace *t;
	size_t max_fns;
	struct kd_strmap fns; /* "app,func" -> its struct key, every function of the file */
	struct keys ks;
	size_t fn_cap, inv_cap, rows;
	double last_start; /* of the kept invocations; -1: none */
};

static int parse_2021_row(const struct rd *r, struct p2021 *st, struct kd_error **err)
{
	struct kd_trace *t = st->t;
	int rc = want_nf(r, 4, err);
	for (size_t i = 0; i < 2 && rc == 0; i++)
		rc = check_id(r, i, hdr2021[i], r->f[i], err);
	double end = 0, dur = 0;
	if (rc == 0)
		rc = num_field(r, 2, hdr2021[2], &end, err);
	if (rc == 0)
		rc = num_field(r, 3, hdr2021[3], &dur, err);
	if (rc < 0)
		return rc;
	if (end > 1e9)
		return rd_err(r, err, "column 3 (end_timestamp): %g s is past 1e9 s", end);
	if (dur * 1000.0 > KD_TRACE_MS_MAX)
		return rd_err(r, err, "column 4 (duration): %g s is more than a day", dur);
	double start = end - dur;
	if (start < -0.001)
		return rd_err(r, err,
		              "start = end_timestamp - duration = %.6f s is before the trace start",
		              start);
	if (start < 0)
		start = 0;
	st->rows++;
	kd_autofree char *key = kd_xasprintf("%s,%s", r->f[0], r->f[1]);
	struct key *kk = kd_strmap_get(&st->fns, key);
	if (!kk) {
		kk = keys_add(&st->ks, key, r->line);
		kd_strmap_put(&st->fns, kk->k, kk);
		t->n_fns_file++;
		if (st->max_fns == 0 || t->n_fns < st->max_fns) {
			kk->idx = t->n_fns + 1;
			struct kd_trace_fn *fn = push_fn(t, &st->fn_cap);
			fn->app = kd_xstrdup(r->f[0]);
			fn->func = kd_xstrdup(r->f[1]);
			fn->line = r->line;
		}
	}
	if (!kk->idx)
		return 0; /* a function not replayed */
	size_t idx = kk->idx;
	if (t->n_invs == st->inv_cap) {
		st->inv_cap = st->inv_cap ? 2 * st->inv_cap : 256;
		t->invs = kd_xrealloc(t->invs, st->inv_cap * sizeof(*t->invs));
	}
	t->invs[t->n_invs++] = (struct kd_trace_inv){
	    .fn = idx - 1, .start_s = start, .duration_ms = dur * 1000.0, .line = r->line};
	if (start > st->last_start)
		st->last_start = start;
	return 0;
}

int kd_trace_parse_2021(const char *name, const char *buf, size_t len, size_t max_fns,
                        struct kd_trace **out, struct kd_error **err)
{
	struct p2021 st = {.max_fns = max_fns, .last_start = -1};
	st.t = kd_xcalloc(1, sizeof(*st.t));
	st.t->format = KD_TRACE_AZURE2021;
	struct rd r;
	rd_init(&r, name, buf, len, ',');
	int rc = rd_next(&r, err);
	if (rc == 0)
		rc = kd_error_set(err, EINVAL, 0, "%s: empty file (no header)", name);
	for (size_t i = 0; i < 4 && rc > 0; i++)
		if (want_col(&r, i, hdr2021[i], err) < 0)
			rc = -EINVAL;
	if (rc > 0 && r.nf != 4)
		rc = rd_err(&r, err, "header: %zu columns, 4 expected (%s,%s,%s,%s)", r.nf,
		            hdr2021[0], hdr2021[1], hdr2021[2], hdr2021[3]);
	if (rc > 0) {
		while ((rc = rd_next(&r, err)) == 1)
			if ((rc = parse_2021_row(&r, &st, err)) < 0)
				break;
	}
	rd_fini(&r);
	kd_strmap_fini(&st.fns);
	keys_fini(&st.ks);
	if (rc == 0 && st.rows == 0)
		rc = kd_error_set(err, EINVAL, 0, "%s: no invocation rows after the header", name);
	if (rc < 0) {
		kd_trace_free(st.t);
		return rc;
	}
	st.t->n_minutes = st.last_start < 0 ? 0 : (size_t)floor(st.last_start / 60.0) + 1;
	*out = st.t;
	return 0;
}

/* ---- targets --------------------------------------------------------------------------------- */

void kd_trace_targets_free(struct kd_trace_target *t, size_t n)
{
	for (size_t i = 0; t && i < n; i++) {
		free(t[i].url);
		free(t[i].host);
	}
	free(t);
}

static bool url_ok(const char *u)
{
	const char *rest = NULL;
	if (strncmp(u, "http://", 7) == 0)
		rest = u + 7;
	else if (strncmp(u, "https://", 8) == 0)
		rest = u + 8;
	if (!rest || !*rest || *rest == '/')
		return false;
	for (const char *p = u; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return false;
	return true;
}

static bool host_ok(const char *h)
{
	if (!*h || strlen(h) > 1024)
		return false;
	for (; *h; h++)
		if ((unsigned char)*h <= 0x20 || (unsigned char)*h >= 0x7f)
			return false;
	return true;
}

int kd_trace_parse_targets(const char *name, const char *buf, size_t len, const char *arm,
                           size_t n_fns, struct kd_trace_target **out, struct kd_error **err)
{
	struct kd_trace_target *t = kd_xcalloc(n_fns ? n_fns : 1, sizeof(*t));
	struct rd r;
	rd_init(&r, name, buf, len, '\t');
	int rc;
	while ((rc = rd_next(&r, err)) == 1) {
		if (r.f[0][0] == '#')
			continue;
		if (r.nf != 4) {
			rc =
			    rd_err(&r, err, "%zu fields, 4 expected (INDEX, ARM, URL, HOST)", r.nf);
			break;
		}
		uint32_t idx = 0;
		if (!parse_count(r.f[0], &idx) || idx == 0 || idx > 1000000) {
			rc = rd_err(
			    &r, err,
			    "column 1 (function index): \"%.40s\" is not an index 1..1000000",
			    r.f[0]);
			break;
		}
		if (!chars_ok(r.f[1], TRIGGER_CHARS, 64)) {
			rc = rd_err(&r, err,
			            "column 2 (arm): \"%.40s\" is not an arm name (1-64 characters "
			            "of [A-Za-z0-9_-])",
			            r.f[1]);
			break;
		}
		if (!url_ok(r.f[2])) {
			rc = rd_err(&r, err,
			            "column 3 (URL): \"%.60s\" is not an http:// or https:// URL "
			            "with a host (printable ASCII, no spaces)",
			            r.f[2]);
			break;
		}
		if (strpbrk(r.f[2], "?#")) {
			rc =
			    rd_err(&r, err,
			           "column 3 (URL): \"%.60s\" has a query or fragment (the request "
			           "is URL/?ms=N)",
			           r.f[2]);
			break;
		}
		if (!host_ok(r.f[3])) {
			rc = rd_err(
			    &r, err,
			    "column 4 (Host): \"%.60s\" is not a Host header value (printable "
			    "ASCII, no spaces; \"-\" for none)",
			    r.f[3]);
			break;
		}
		if (strcmp(r.f[1], arm) != 0 || idx > n_fns)
			continue;
		struct kd_trace_target *x = &t[idx - 1];
		if (x->url) {
			rc = rd_err(&r, err, "function %u of arm %s again (first on line %zu)", idx,
			            arm, x->line);
			break;
		}
		size_t ul = strlen(r.f[2]);
		while (ul > 0 && r.f[2][ul - 1] == '/')
			ul--;
		x->url = kd_xstrndup(r.f[2], ul);
		x->host = strcmp(r.f[3], "-") == 0 ? NULL : kd_xstrdup(r.f[3]);
		x->line = r.line;
	}
	rd_fini(&r);
	for (size_t i = 0; rc == 0 && i < n_fns; i++)
		if (!t[i].url)
			rc = kd_error_set(err, EINVAL, 0, "%s: no row for function %zu of arm %s",
			                  name, i + 1, arm);
	if (rc < 0) {
		kd_trace_targets_free(t, n_fns);
		return rc;
	}
	*out = t;
	return 0;
}

/* ---- files ----------------------------------------------------------------------------------- */

int kd_trace_read_file(const char *path, size_t max, char **buf, size_t *len, struct kd_error **err)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return kd_error_set(err, errno, 0, "read %s: %s", path, strerror(errno));
	size_t cap = KD_MIN((size_t)65536, max), n = 0;
	char *b = kd_xmalloc(cap + 1);
	int rc = 0;
	for (;;) {
		if (n == cap && cap < max) {
			cap = KD_MIN(2 * cap, max);
			b = kd_xrealloc(b, cap + 1);
		}
		/* at the cap, one more byte (b has room for it) tells a file of max bytes from a
		 * longer one */
		errno = 0;
		size_t got = fread(b + n, 1, n < cap ? cap - n : 1, f);
		if (got == 0) {
			if (ferror(f))
				rc = kd_error_set(err, errno ? errno : EIO, 0, "read %s: %s", path,
				                  strerror(errno ? errno : EIO));
			break;
		}
		n += got;
		if (n > max) {
			rc = kd_error_set(err, EFBIG, 0, "read %s: larger than %zu bytes", path,
			                  max);
			break;
		}
	}
	fclose(f);
	if (rc < 0) {
		free(b);
		return rc;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

int kd_trace_load_2019(const char *inv_path, const char *dur_path, const char *column,
                       size_t max_fns, struct kd_trace **out, struct kd_error **err)
{
	kd_autofree char *inv = NULL, *dur = NULL;
	size_t il = 0, dl = 0;
	int rc = kd_trace_read_file(inv_path, KD_TRACE_FILE_MAX, &inv, &il, err);
	if (rc == 0)
		rc = kd_trace_read_file(dur_path, KD_TRACE_FILE_MAX, &dur, &dl, err);
	if (rc == 0)
		rc = kd_trace_parse_2019(inv_path, inv, il, dur_path, dur, dl, column, max_fns, out,
		                         err);
	return rc;
}

int kd_trace_load_2021(const char *path, size_t max_fns, struct kd_trace **out,
                       struct kd_error **err)
{
	kd_autofree char *buf = NULL;
	size_t len = 0;
	int rc = kd_trace_read_file(path, KD_TRACE_FILE_MAX, &buf, &len, err);
	if (rc == 0)
		rc = kd_trace_parse_2021(path, buf, len, max_fns, out, err);
	return rc;
}

int kd_trace_load_targets(const char *path, const char *arm, size_t n_fns,
                          struct kd_trace_target **out, struct kd_error **err)
{
	kd_autofree char *buf = NULL;
	size_t len = 0;
	int rc = kd_trace_read_file(path, 1024u * 1024u, &buf, &len, err);
	if (rc == 0)
		rc = kd_trace_parse_targets(path, buf, len, arm, n_fns, out, err);
	return rc;
}
