/* lib/kd_prom.c: Prometheus text exposition (kd/prom.h). */
#include "kd/prom.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd/chan.h"
#include "kd/k8s.h"

static void put(struct kd_prom *p, const char *fmt, ...) KD_PRINTF(2, 3);
static void put(struct kd_prom *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = kd_xvasprintf(fmt, ap);
	va_end(ap);
	size_t n = strlen(s);
	if (p->len + n + 1 > p->cap) {
		p->cap = KD_MAX(p->cap * 2, p->len + n + 1 + 256);
		p->buf = kd_xrealloc(p->buf, p->cap);
	}
	memcpy(p->buf + p->len, s, n + 1);
	p->len += n;
	free(s);
}

const double kd_prom_latency_le[KD_PROM_LATENCY_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

void kd_prom_hist_init(struct kd_prom_hist *h, const double *le, size_t n)
{
	memset(h, 0, sizeof(*h));
	h->le = le;
	h->n = KD_MIN(n, (size_t)KD_PROM_HIST_MAX);
}

void kd_prom_hist_observe(struct kd_prom_hist *h, double v)
{
	size_t i = 0;
	while (i < h->n && v > h->le[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += v;
}

void kd_prom_histogram(struct kd_prom *p, const char *name, const char *help, const char *labels,
                       const struct kd_prom_hist *h)
{
	const char *l = labels && *labels ? labels : "";
	const char *sep = *l ? "," : "";
	kd_prom_family(p, name, "histogram", help);
	uint64_t cum = 0;
	for (size_t i = 0; i < h->n; i++) {
		cum += h->counts[i];
		put(p, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, l, sep, h->le[i],
		    (unsigned long long)cum);
	}
	put(p, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, l, sep, (unsigned long long)h->count);
	if (*l) {
		put(p, "%s_sum{%s} %.9g\n", name, l, h->sum);
		put(p, "%s_count{%s} %llu\n", name, l, (unsigned long long)h->count);
	} else {
		put(p, "%s_sum %.9g\n", name, h->sum);
		put(p, "%s_count %llu\n", name, (unsigned long long)h->count);
	}
}

void kd_prom_family(struct kd_prom *p, const char *name, const char *type, const char *help)
{
	put(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void kd_prom_sample(struct kd_prom *p, const char *name, const char *labels, uint64_t v)
{
	put(p, "%s%s %llu\n", name, labels ? labels : "", (unsigned long long)v);
}

void kd_prom_add(struct kd_prom *p, const char *name, const char *type, const char *help,
                 const char *labels, uint64_t v)
{
	kd_prom_family(p, name, type, help);
	kd_prom_sample(p, name, labels, v);
}

void kd_prom_k8s_clients(struct kd_prom *p, const char *prefix, struct kd_k8s *const *clients,
                         const char *const *names, size_t n)
{
	static const char *const classes[KD_K8S_RESPONSE_CLASSES] = {"error", "1xx", "2xx",
	                                                             "3xx",   "4xx", "5xx"};
	struct kd_k8s_stats st[8];
	uint64_t resp[8][KD_K8S_RESPONSE_CLASSES];
	n = KD_MIN(n, KD_ARRAY_SIZE(st));
	for (size_t i = 0; i < n; i++) {
		if (!clients[i])
			continue;
		kd_k8s_get_stats(clients[i], &st[i]);
		kd_k8s_get_responses(clients[i], resp[i]);
	}
	static const struct {
		const char *suffix, *type, *help;
	} fam[] = {
	    {"api_requests_total", "counter", "HTTP requests to the API Server."},
	    {"api_throttled_total", "counter", "Requests delayed by the client's rate limit."},
	    {"api_pending", "gauge", "API calls in flight."},
	    {"api_responses_total", "counter",
	     "Finished API exchanges by HTTP status class (error: no HTTP status)."},
	};
	for (size_t f = 0; f < KD_ARRAY_SIZE(fam); f++) {
		char name[128], labels[128];
		snprintf(name, sizeof(name), "%s_%s", prefix, fam[f].suffix);
		kd_prom_family(p, name, fam[f].type, fam[f].help);
		for (size_t i = 0; i < n; i++) {
			if (!clients[i])
				continue;
			if (f == 3) {
				for (size_t k = 0; k < KD_K8S_RESPONSE_CLASSES; k++) {
					snprintf(labels, sizeof(labels),
					         "{client=\"%s\",code=\"%s\"}", names[i],
					         classes[k]);
					kd_prom_sample(p, name, labels, resp[i][k]);
				}
				continue;
			}
			uint64_t v = f == 0   ? st[i].requests
			             : f == 1 ? st[i].throttled
			                      : st[i].pending;
			snprintf(labels, sizeof(labels), "{client=\"%s\"}", names[i]);
			kd_prom_sample(p, name, labels, v);
		}
	}
}

void kd_prom_chans(struct kd_prom *p, const char *prefix, const char *up_kind,
                   const char *down_kind)
{
	const char *kinds[2] = {up_kind, down_kind};
	static const char *const ends[2] = {"up", "down"};
	struct kd_chan_totals t[2];
	kd_chan_get_totals(KD_CHAN_END_UP, &t[0]);
	kd_chan_get_totals(KD_CHAN_END_DOWN, &t[1]);
	char name[128], labels[160];
	snprintf(name, sizeof(name), "%s_chan_connects_total", prefix);
	kd_prom_family(p, name, "counter",
	               "Channel connections established (upstream) or accepted (downstream).");
	for (int e = 0; e < 2; e++) {
		if (!kinds[e])
			continue;
		snprintf(labels, sizeof(labels), "{channel=\"%s\",end=\"%s\"}", kinds[e], ends[e]);
		kd_prom_sample(p, name, labels, t[e].connects);
	}
	if (up_kind) {
		snprintf(name, sizeof(name), "%s_chan_reconnects_total", prefix);
		kd_prom_family(p, name, "counter",
		               "Upstream channel connections after each channel's first.");
		snprintf(labels, sizeof(labels), "{channel=\"%s\",end=\"up\"}", up_kind);
		kd_prom_sample(p, name, labels, t[0].reconnects);
	}
	snprintf(name, sizeof(name), "%s_chan_frames_total", prefix);
	kd_prom_family(p, name, "counter", "Channel WebSocket frames, by direction.");
	for (int e = 0; e < 2; e++) {
		if (!kinds[e])
			continue;
		snprintf(labels, sizeof(labels), "{channel=\"%s\",end=\"%s\",direction=\"in\"}",
		         kinds[e], ends[e]);
		kd_prom_sample(p, name, labels, t[e].frames_in);
		snprintf(labels, sizeof(labels), "{channel=\"%s\",end=\"%s\",direction=\"out\"}",
		         kinds[e], ends[e]);
		kd_prom_sample(p, name, labels, t[e].frames_out);
	}
}

char *kd_prom_take(struct kd_prom *p, size_t *len)
{
	char *s = p->buf ? p->buf : kd_xstrdup("");
	if (len)
		*len = p->len;
	p->buf = NULL;
	p->len = p->cap = 0;
	return s;
}

void kd_prom_fini(struct kd_prom *p)
{
	free(p->buf);
	p->buf = NULL;
	p->len = p->cap = 0;
}
