/* activator-hook/stats.c: kd-activator -> kd-autoscaler stats (see activator.h), through the
 * WireStatMessages WebSocket client kd/statclient.h to --autoscaler (binary frames, exactly what
 * Knative's activator sends its autoscaler): per revision with traffic, every --stats-period, the
 * average concurrency (held + in flight) over the period and the requests received; a poke (one
 * stat at once, concurrency >= 1) when a request arrives for a revision without a routable
 * instance, so the decider acts without waiting for a tick. The client reconnects with jittered
 * backoff; what is made while it is disconnected is dropped (the next period reports again
 * anyway). With --chan-token the upgrade carries it as a bearer token (kd-autoscaler requires it
 * from non-loopback peers when it has one). */
#include <string.h>

#include "activator.h"
#include "kd/log.h"
#include "kd/statclient.h"
#include "kd/wirestat.h"

struct kd_act_stats {
	struct kd_act *a;
	struct kd_statclient *client;
	struct kd_timer *tick;
};

/* kd-autoscaler gets the next period's report when this one is dropped (disconnected, or the
 * queue is full): kd_statclient_send's refusals are the policy, not errors. */
static void send_stats(struct kd_act_stats *st, const struct kd_statmsg *m, size_t n)
{
	(void)kd_statclient_send(st->client, m, n);
	st->a->stats_sent++;
}

static void fill(struct kd_act_stats *st, struct kd_statmsg *m, const struct kd_act_rev *r,
                 double concurrency, double requests)
{
	memset(m, 0, sizeof(*m));
	m->type = KD_STATMSG_STAT;
	m->ns = r->ns;
	m->revision = r->name;
	m->has_stat = true;
	m->pod = st->a->cfg.pod_name;
	m->concurrency = concurrency;
	m->requests = requests;
	m->timestamp = (int64_t)(kd_wall_ns() / 1000000000ull);
}

void kd_act_stats_touch(struct kd_act *a, struct kd_act_rev *r)
{
	uint64_t now = kd_loop_now_ms(a->loop);
	if (r->conc_at_ms)
		r->conc_ms += (double)(now - r->conc_at_ms) * (double)(r->inflight + r->qlen);
	r->conc_at_ms = now;
}

void kd_act_stats_poke(struct kd_act *a, struct kd_act_rev *r)
{
	struct kd_act_stats *st = a->stats;
	a->pokes++;
	kd_log_key_debug(r->key, "route: no routable instance: poking kd-autoscaler");
	if (!st)
		return;
	struct kd_statmsg m;
	fill(st, &m, r, (double)KD_MAX(r->inflight + r->qlen + 1u, 1u), 1);
	send_stats(st, &m, 1);
}

static void on_tick(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	struct kd_act_stats *st = arg;
	struct kd_act *a = st->a;
	double period = (double)a->cfg.stats_period_ms;
	size_t cap = a->revs.n, n = 0;
	struct kd_statmsg *msgs = kd_xcalloc(cap ? cap : 1, sizeof(*msgs));
	size_t pos = 0;
	struct kd_act_rev *r;
	while ((r = kd_strmap_next(&a->revs, &pos))) {
		kd_act_stats_touch(a, r);
		bool busy = r->inflight || r->qlen || r->window_reqs;
		/* Every request of a kd revision passes here (its public Endpoints point at us for
		 * good), so we are its only source of concurrency: report it every period while it
		 * has instances, zeros included, which is what lets the decider scale it to zero.
		 * Knative's own activator reports once after traffic ends because Knative's
		 * autoscaler also scrapes the pods; nothing scrapes kd's instances. */
		if (busy || r->active || r->n_insts)
			fill(st, &msgs[n++], r, r->conc_ms / period, (double)r->window_reqs);
		r->active = busy;
		r->conc_ms = 0;
		r->window_reqs = 0;
	}
	if (n)
		send_stats(st, msgs, n);
	free(msgs);
	kd_loop_timer_start(t, a->cfg.stats_period_ms);
	(void)loop;
}

bool kd_act_stats_connected(const struct kd_act *a)
{
	return !a->stats || kd_statclient_connected(a->stats->client);
}

int kd_act_stats_start(struct kd_act *a, struct kd_error **err)
{
	if (!a->cfg.autoscaler || !*a->cfg.autoscaler) {
		kd_log_warn("stats: no --autoscaler: revisions at zero are not woken by requests");
		return 0;
	}
	struct kd_statclient_opts o = {
	    .addr = a->cfg.autoscaler, .token = a->cfg.chan_token, .peer = "kd-autoscaler"};
	struct kd_statclient *client = kd_statclient_new(a->loop, &o, err);
	if (!client)
		return kd_error_wrap(err, "--autoscaler");
	struct kd_act_stats *st = kd_xcalloc(1, sizeof(*st));
	st->a = a;
	st->client = client;
	st->tick = kd_loop_timer_new(a->loop, on_tick, st);
	a->stats = st;
	kd_loop_timer_start(st->tick, a->cfg.stats_period_ms);
	return 0;
}

void kd_act_stats_stop(struct kd_act *a)
{
	struct kd_act_stats *st = a->stats;
	if (!st)
		return;
	kd_loop_timer_free(st->tick);
	kd_statclient_free(st->client);
	free(st);
	a->stats = NULL;
}
