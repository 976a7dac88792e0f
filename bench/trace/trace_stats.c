/* bench/trace/trace_stats.c: percentiles, means and the replay summary (see trace_stats.h). */
#include "trace_stats.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kd/common.h"

const char *kd_trace_status_name(enum kd_trace_status s)
{
	switch (s) {
	case KD_TRACE_UNSENT:
		return "unsent";
	case KD_TRACE_OK:
		return "ok";
	case KD_TRACE_HTTP:
		return "http";
	case KD_TRACE_BODY:
		return "body";
	case KD_TRACE_TRANSPORT:
		return "transport";
	case KD_TRACE_ABORTED:
		return "aborted";
	}
	return "?";
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double kd_trace_pct(const double *sorted, size_t n, double p)
{
	if (n == 0)
		return NAN;
	/* kdstats.pct: max(0, min(n - 1, int(math.ceil(p / 100.0 * n)) - 1)) */
	double k = ceil(p / 100.0 * (double)n) - 1;
	if (!(k >= 0))
		k = 0;
	if (k > (double)(n - 1))
		k = (double)(n - 1);
	return sorted[(size_t)k];
}

double kd_trace_pct_of(double *v, size_t n, double p)
{
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_double);
	return kd_trace_pct(v, n, p);
}

double kd_trace_mean(const double *v, size_t n)
{
	if (n == 0)
		return NAN;
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += v[i];
	return s / (double)n;
}

double kd_trace_geomean(const double *v, size_t n)
{
	if (n == 0)
		return NAN;
	double s = 0;
	bool zero = false;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < 0 || isnan(v[i]))
			return NAN;
		if (v[i] == 0)
			zero = true;
		else
			s += log(v[i]);
	}
	return zero ? 0 : exp(s / (double)n);
}

double kd_trace_slowdown(double response_ms, double requested_ms, double floor_ms)
{
	return response_ms / (requested_ms > floor_ms ? requested_ms : floor_ms);
}

void kd_trace_summarize(const struct kd_trace_sched *s, const struct kd_trace_result *r,
                        double floor_ms, struct kd_trace_summary *out)
{
	memset(out, 0, sizeof(*out));
	out->scheduled = s->n;
	out->truncated = s->truncated;
	out->capped = s->capped;
	out->floor_ms = floor_ms;
	out->n_fns = s->n_fns;
	out->fns = kd_xcalloc(s->n_fns ? s->n_fns : 1, sizeof(*out->fns));
	size_t n = s->n ? s->n : 1;
	double *lag = kd_xcalloc(n, sizeof(double));
	double *resp = kd_xcalloc(n, sizeof(double));
	double *sched = kd_xcalloc(n, sizeof(double));
	double *slow = kd_xcalloc(n, sizeof(double));
	size_t n_lag = 0, n_ok = 0;
	/* per function: the ok calls' slowdowns, grouped by function (offsets into byfn) */
	size_t *fn_off = kd_xcalloc(s->n_fns + 1, sizeof(size_t));
	size_t *fn_fill = kd_xcalloc(s->n_fns + 1, sizeof(size_t));
	double *byfn = kd_xcalloc(n, sizeof(double));
	for (size_t i = 0; i < s->n; i++) {
		const struct kd_trace_call *c = &s->calls[i];
		const struct kd_trace_result *x = &r[i];
		if (x->sent_us >= 0 && x->status != KD_TRACE_UNSENT) {
			out->sent++;
			lag[n_lag++] = (double)(x->sent_us - (int64_t)c->at_us) / 1000.0;
		}
		if (c->warmup) {
			out->discarded++;
			out->warmup_failed += x->status != KD_TRACE_OK;
			continue;
		}
		out->measured++;
		switch (x->status) {
		case KD_TRACE_OK:
			break;
		case KD_TRACE_HTTP:
			out->f_http++;
			continue;
		case KD_TRACE_BODY:
			out->f_body++;
			continue;
		case KD_TRACE_TRANSPORT:
			out->f_transport++;
			continue;
		case KD_TRACE_ABORTED:
			out->f_aborted++;
			continue;
		case KD_TRACE_UNSENT:
		default:
			out->f_unsent++;
			continue;
		}
		out->ok++;
		double rms = (double)x->response_us / 1000.0;
		resp[n_ok] = rms;
		sched[n_ok] = rms - (double)c->req_ms;
		slow[n_ok] = kd_trace_slowdown(rms, (double)c->req_ms, floor_ms);
		out->floored += (double)c->req_ms < floor_ms;
		n_ok++;
		if (c->fn < s->n_fns)
			fn_off[c->fn + 1]++;
	}
	out->failed = out->measured - out->ok;
	for (size_t f = 0; f < s->n_fns; f++)
		fn_off[f + 1] += fn_off[f];
	for (size_t i = 0, k = 0; i < s->n; i++) { /* the same ok calls, in the same order */
		const struct kd_trace_call *c = &s->calls[i];
		if (c->warmup || r[i].status != KD_TRACE_OK)
			continue;
		if (c->fn < s->n_fns)
			byfn[fn_off[c->fn] + fn_fill[c->fn]++] = slow[k];
		k++;
	}
	double *arith = kd_xcalloc(s->n_fns ? s->n_fns : 1, sizeof(double));
	double *geo = kd_xcalloc(s->n_fns ? s->n_fns : 1, sizeof(double));
	for (size_t f = 0; f < s->n_fns; f++) {
		struct kd_trace_fn_stats *fs = &out->fns[f];
		fs->n = fn_fill[f];
		fs->arith = kd_trace_mean(byfn + fn_off[f], fs->n);
		fs->geo = kd_trace_geomean(byfn + fn_off[f], fs->n);
		if (fs->n) {
			arith[out->fns_measured] = fs->arith;
			geo[out->fns_measured] = fs->geo;
			out->fns_measured++;
		}
	}
	out->lag_p50 = kd_trace_pct_of(lag, n_lag, 50);
	out->lag_p99 = kd_trace_pct(lag, n_lag, 99);
	out->lag_max = kd_trace_pct(lag, n_lag, 100);
	out->resp_p50 = kd_trace_pct_of(resp, n_ok, 50);
	out->resp_p99 = kd_trace_pct(resp, n_ok, 99);
	out->sched_p50 = kd_trace_pct_of(sched, n_ok, 50);
	out->sched_p99 = kd_trace_pct(sched, n_ok, 99);
	out->slow_p50 = kd_trace_pct_of(slow, n_ok, 50);
	out->slow_p99 = kd_trace_pct(slow, n_ok, 99);
	out->fn_arith_p50 = kd_trace_pct_of(arith, out->fns_measured, 50);
	out->fn_arith_p99 = kd_trace_pct(arith, out->fns_measured, 99);
	out->fn_geo_p50 = kd_trace_pct_of(geo, out->fns_measured, 50);
	out->fn_geo_p99 = kd_trace_pct(geo, out->fns_measured, 99);
	free(lag);
	free(resp);
	free(sched);
	free(slow);
	free(fn_off);
	free(fn_fill);
	free(byfn);
	free(arith);
	free(geo);
}

void kd_trace_summary_fini(struct kd_trace_summary *sum)
{
	free(sum->fns);
	sum->fns = NULL;
	sum->n_fns = 0;
}
