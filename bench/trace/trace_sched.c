/* bench/trace/trace_sched.c: the replay schedule (see trace_sched.h). */
#include "trace_sched.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kd/common.h"

/* A minute of the 2019 trace (every function) holds at most this many invocations: the points
 * of a minute are all drawn before the earliest max_invocations are kept. */
#define KD_TRACE_MINUTE_CALLS_MAX 50000000u

/* splitmix64 (Steele, Lea, Flood 2014): a full-period 64-bit generator; its output function also
 * mixes the seed of a stream. */
static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* The stream of (function, minute): its state is a mix of the three. */
static uint64_t stream_seed(uint64_t seed, uint64_t fn, uint64_t minute)
{
	uint64_t s = seed;
	uint64_t a = splitmix64(&s);
	s = a ^ (fn * 0xd6e8feb86659fd93u);
	uint64_t b = splitmix64(&s);
	s = b ^ (minute * 0xa0761d6478bd642fu);
	return splitmix64(&s);
}

/* Uniform in [0, 1): the top 53 bits. */
static double unit(uint64_t *state)
{
	return (double)(splitmix64(state) >> 11) * 0x1.0p-53;
}

static int cmp_call(const void *a, const void *b)
{
	const struct kd_trace_call *x = a, *y = b;
	if (x->trace_s != y->trace_s)
		return x->trace_s < y->trace_s ? -1 : 1;
	if (x->fn != y->fn)
		return x->fn < y->fn ? -1 : 1;
	return x->gen < y->gen ? -1 : x->gen > y->gen;
}

struct calls {
	struct kd_trace_call *v;
	size_t n, cap;
};

static struct kd_trace_call *push(struct calls *c)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 1024;
		c->v = kd_xrealloc(c->v, c->cap * sizeof(*c->v));
	}
	struct kd_trace_call *x = &c->v[c->n];
	memset(x, 0, sizeof(*x));
	x->gen = c->n++;
	return x;
}

static uint32_t round_ms(double ms)
{
	double r = floor(ms + 0.5);
	return r <= 0 ? 0 : r >= 4294967295.0 ? UINT32_MAX : (uint32_t)r;
}

static void gen_2019(const struct kd_trace *t, const struct kd_trace_sched_opts *o, size_t minutes,
                     struct calls *c, size_t *in_window)
{
	*in_window = 0;
	for (size_t m = 0; m < minutes; m++)
		for (size_t f = 0; f < t->n_fns; f++)
			*in_window += t->fns[f].counts[m];
	for (size_t m = 0; m < minutes && c->n < o->max_invocations; m++) {
		for (size_t f = 0; f < t->n_fns; f++) {
			uint64_t st = stream_seed(o->seed, f, m);
			uint32_t dur = round_ms(t->fns[f].duration_ms);
			for (uint32_t k = 0; k < t->fns[f].counts[m]; k++) {
				struct kd_trace_call *x = push(c);
				x->fn = (uint32_t)f;
				x->minute = (uint32_t)m;
				x->trace_s = 60.0 * ((double)m + unit(&st));
				x->trace_ms = dur;
			}
		}
	}
}

static void gen_2021(const struct kd_trace *t, size_t minutes, struct calls *c, size_t *in_window)
{
	double end_s = 60.0 * (double)minutes;
	for (size_t i = 0; i < t->n_invs; i++) {
		const struct kd_trace_inv *in = &t->invs[i];
		if (in->start_s >= end_s)
			continue;
		struct kd_trace_call *x = push(c);
		x->fn = (uint32_t)in->fn;
		x->minute = (uint32_t)floor(in->start_s / 60.0);
		x->trace_s = in->start_s;
		x->trace_ms = round_ms(in->duration_ms);
	}
	*in_window = c->n;
}

int kd_trace_sched_build(const struct kd_trace *t, const struct kd_trace_sched_opts *o,
                         struct kd_trace_sched **out, struct kd_error **err)
{
	if (!(o->compress > 0) || !isfinite(o->compress))
		return kd_error_set(err, EINVAL, 0, "compress %g: a factor > 0 expected",
		                    o->compress);
	if (o->max_invocations == 0)
		return kd_error_set(err, EINVAL, 0, "max invocations 0: at least 1 expected");
	if (o->minutes > t->n_minutes)
		return kd_error_set(err, EINVAL, 0, "minutes %zu: the trace has %zu", o->minutes,
		                    t->n_minutes);
	size_t minutes = o->minutes ? o->minutes : t->n_minutes;
	if (t->format == KD_TRACE_AZURE2019) {
		for (size_t m = 0; m < minutes; m++) {
			uint64_t sum = 0;
			for (size_t f = 0; f < t->n_fns; f++)
				sum += t->fns[f].counts[m];
			if (sum > KD_TRACE_MINUTE_CALLS_MAX)
				return kd_error_set(
				    err, E2BIG, 0,
				    "minute %zu has %llu invocations (at most %u per "
				    "minute: keep fewer functions)",
				    m + 1, (unsigned long long)sum, KD_TRACE_MINUTE_CALLS_MAX);
		}
	}
	struct calls c = {0};
	size_t in_window = 0;
	if (t->format == KD_TRACE_AZURE2019)
		gen_2019(t, o, minutes, &c, &in_window);
	else
		gen_2021(t, minutes, &c, &in_window);
	if (c.n > 1)
		qsort(c.v, c.n, sizeof(*c.v), cmp_call);
	struct kd_trace_sched *s = kd_xcalloc(1, sizeof(*s));
	s->n = KD_MIN(c.n, o->max_invocations);
	s->calls = c.v;
	s->n_fns = t->n_fns;
	s->minutes = minutes;
	s->in_window = in_window;
	s->truncated = in_window - s->n;
	s->compress = o->compress;
	for (size_t i = 0; i < s->n; i++) {
		struct kd_trace_call *x = &s->calls[i];
		double us = floor(x->trace_s / o->compress * 1e6 + 0.5);
		x->at_us = us <= 0 ? 0 : (uint64_t)us;
		x->capped = x->trace_ms > o->max_duration_ms;
		x->req_ms = x->capped ? o->max_duration_ms : x->trace_ms;
		x->warmup = x->at_us < o->warmup_ms * 1000u;
		s->capped += x->capped;
		s->warmup += x->warmup;
		s->span_us = KD_MAX(s->span_us, x->at_us);
	}
	*out = s;
	return 0;
}

void kd_trace_sched_free(struct kd_trace_sched *s)
{
	if (!s)
		return;
	free(s->calls);
	free(s);
}
