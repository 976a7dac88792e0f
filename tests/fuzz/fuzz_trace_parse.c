/* libFuzzer target for bench/trace's input files (bench/trace/trace_parse.c and, for parsed 2019
 * traces with few invocations, trace_sched.c, linked in). Byte 0 picks the reader (low two
 * bits), byte 1 is the targets' function count (% 8), the rest is the input: 0 the 2019 pair
 * (split at the first '\f' into the invocations and the durations file; a reader refuses '\f',
 * so the split byte is never content), 1 the 2021 trace, 2 the targets TSV (arm "kd"), 3 the
 * 2019 pair keeping only the first function. Bit 2 of byte 0 joins on the durations column
 * "Count" instead of "Average".
 * Invariants: no crash, leak or out-of-bounds read; a refusal is -EINVAL with a message that
 * names the file and leaves the output untouched; a parse gives what the header promised
 * (functions with ids, a durations row each and n_minutes counts for 2019; 2021 invocations of
 * kept functions that start at or after 0, inside n_minutes; a URL for every target), and a
 * schedule keeps each kept minute's count of each function, inside that minute, sorted. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../bench/trace/trace_parse.h"
#include "../../bench/trace/trace_sched.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What an output parameter points at before a refusal, which must leave it so. */
static struct kd_trace untouched_trace;
static struct kd_trace_target untouched_target;

static void check_err(int rc, struct kd_error *err, const char *name)
{
	if (rc != -EINVAL || !err || strncmp(kd_error_msg(err), name, strlen(name)) != 0)
		abort();
	kd_error_free(err);
}

static void check_sched(const struct kd_trace *t)
{
	uint64_t sum = 0;
	size_t minutes = t->n_minutes < 3 ? t->n_minutes : 3;
	for (size_t f = 0; f < t->n_fns; f++)
		for (size_t m = 0; m < minutes; m++)
			sum += t->fns[f].counts[m];
	if (sum > 20000)
		return; /* the fuzzer's memory, not the code, would be the limit */
	struct kd_trace_sched_opts o = {.seed = 1,
	                                .minutes = minutes,
	                                .compress = 3,
	                                .max_duration_ms = 1000,
	                                .max_invocations = 100000};
	struct kd_trace_sched *s = NULL;
	struct kd_error *err = NULL;
	if (kd_trace_sched_build(t, &o, &s, &err) != 0)
		abort();
	if (s->n != sum || s->truncated != 0)
		abort();
	for (size_t i = 0; i < s->n; i++) {
		const struct kd_trace_call *c = &s->calls[i];
		if (c->fn >= t->n_fns || c->minute >= minutes || c->req_ms > 1000 ||
		    c->trace_s < 60.0 * c->minute || c->trace_s >= 60.0 * (c->minute + 1) ||
		    (i && s->calls[i - 1].trace_s > c->trace_s))
			abort();
	}
	kd_trace_sched_free(s);
}

static void parse_2019(const char *d, size_t n, bool first_only, const char *column)
{
	const char *ff = memchr(d, '\f', n);
	size_t il = ff ? (size_t)(ff - d) : n;
	const char *dur = ff ? ff + 1 : "";
	size_t dl = ff ? n - il - 1 : 0;
	struct kd_trace *t = &untouched_trace;
	struct kd_error *err = NULL;
	int rc =
	    kd_trace_parse_2019("i", d, il, "d", dur, dl, column, first_only ? 1 : 0, &t, &err);
	if (rc != 0) {
		if (t != &untouched_trace)
			abort();
		/* both names are one letter: "i:" or "d:" */
		if (rc != -EINVAL || !err ||
		    (kd_error_msg(err)[0] != 'i' && kd_error_msg(err)[0] != 'd') ||
		    kd_error_msg(err)[1] != ':')
			abort();
		kd_error_free(err);
		return;
	}
	if (t->format != KD_TRACE_AZURE2019 || t->n_fns == 0 || t->n_minutes == 0 ||
	    t->n_fns > t->n_fns_file || (first_only && t->n_fns != 1))
		abort();
	for (size_t f = 0; f < t->n_fns; f++) {
		const struct kd_trace_fn *fn = &t->fns[f];
		if (!*fn->owner || !*fn->app || !*fn->func || !*fn->trigger || !fn->counts ||
		    !fn->duration_line || !(fn->duration_ms >= 0) ||
		    fn->duration_ms > KD_TRACE_MS_MAX)
			abort();
		for (size_t m = 0; m < t->n_minutes; m++)
			if (fn->counts[m] > KD_TRACE_COUNT_MAX)
				abort();
	}
	check_sched(t);
	kd_trace_free(t);
}

static void parse_2021(const char *d, size_t n)
{
	struct kd_trace *t = &untouched_trace;
	struct kd_error *err = NULL;
	int rc = kd_trace_parse_2021("t", d, n, 0, &t, &err);
	if (rc != 0) {
		if (t != &untouched_trace)
			abort();
		check_err(rc, err, "t:");
		return;
	}
	if (t->format != KD_TRACE_AZURE2021 || t->n_invs == 0 || t->n_fns == 0 ||
	    t->n_fns != t->n_fns_file || t->n_minutes == 0)
		abort();
	for (size_t i = 0; i < t->n_invs; i++) {
		const struct kd_trace_inv *in = &t->invs[i];
		if (in->fn >= t->n_fns || !(in->start_s >= 0) || !isfinite(in->duration_ms) ||
		    in->start_s >= 60.0 * (double)t->n_minutes)
			abort();
	}
	kd_trace_free(t);
}

static void parse_targets(const char *d, size_t n, size_t n_fns)
{
	struct kd_trace_target *tg = &untouched_target;
	struct kd_error *err = NULL;
	int rc = kd_trace_parse_targets("g", d, n, "kd", n_fns, &tg, &err);
	if (rc != 0) {
		if (tg != &untouched_target)
			abort();
		check_err(rc, err, "g:");
		return;
	}
	for (size_t i = 0; i < n_fns; i++) {
		size_t ul = strlen(tg[i].url);
		if (strncmp(tg[i].url, "http", 4) != 0 || tg[i].url[ul - 1] == '/' ||
		    strpbrk(tg[i].url, "?# \t") || (tg[i].host && !*tg[i].host))
			abort();
	}
	kd_trace_targets_free(tg, n_fns);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	const char *d = (const char *)data + 2;
	size_t n = size - 2;
	const char *column = (data[0] & 4) ? "Count" : "Average";
	switch (data[0] & 3) {
	case 0:
		parse_2019(d, n, false, column);
		break;
	case 1:
		parse_2021(d, n);
		break;
	case 2:
		parse_targets(d, n, data[1] % 8);
		break;
	default:
		parse_2019(d, n, true, column);
		break;
	}
	return 0;
}
