/* chan_up (test harness): an upstream process for the multi-process channel tests. Produces
 * upserts "ns/<prefix>-<i>" for i in [1, count], in batches, over kd_chan to 127.0.0.1:<port>,
 * keeping every produced op in its "wanted" cache (nothing is ever persisted), and reports on
 * stdout, one line each:
 *   READY <epoch>                      every time a handshake completes
 *   PROGRESS produced=N                every 100 batches
 *   DOWN <reason>                      every time the connection goes down
 *   DEAD eagain=E dead_peers=D         first dead-peer verdict (with --exit-on-dead: then exit 4)
 *   DONE sent=S acked=A retransmitted=T reconnects=R eagain=E rejected=J
 *                                      everything produced is acknowledged; exit 0
 *
 * Options:
 *   --port P --count N --batch B --prefix S --source NAME --token T
 *   --interval-ms MS   pause between batches (default 0: as fast as back-pressure allows)
 *   --resume           a restarted upstream: rebuild the cache with all `count` objects without
 *                      sending them; the reconcile round delivers what the downstream lacks
 *   --dup --reorder    fault injection on delta frames (kd_chan_up_opts.fault_*)
 *   --kick-every K     drop the connection after every K batches (many reconnects)
 *   --garbage          after the first READY, send a frame that is not JSON
 *   --oversize BYTES   after the first READY, send one frame of BYTES bytes
 *   --max-msgs M       back-pressure limit (deltas held)
 *   --ping-ms MS --dead-ms MS
 *   --tls-ca PEM [--tls-cert PEM --tls-key PEM]   TLS, with a client certificate if given
 *   --once             exit 3 on the first DOWN instead of reconnecting
 *   --exit-on-dead     exit 4 right after the first dead-peer verdict
 *   --log LEVEL */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chan_stage.h"
#include "kd/chan.h"
#include "kd/log.h"
#include "kd/loop.h"

struct app {
	struct ts_up us; /* first: the handshake callbacks (ts_up_cbs) get the app as their ud */
	struct kd_loop *loop;
	struct kd_chan_up *up;
	uint64_t count, batch, produced, batches;
	uint64_t interval_ms, kick_every;
	const char *prefix;
	const char *oversize_text;
	size_t oversize;
	bool garbage, once, exit_on_dead, resume;
	bool injected, dead_reported, blocked, done, stop;
	int exit_code;
	struct kd_timer *tick;
};

static void produce(struct app *a);

static void schedule(struct app *a, uint64_t ms)
{
	kd_loop_timer_start(a->tick, ms);
}

static void check_done(struct app *a)
{
	if (a->done || a->produced < a->count || kd_chan_up_pending_ops(a->up) != 0)
		return;
	if (!kd_chan_up_ready(a->up))
		return;
	const struct kd_chan_stats *st = kd_chan_up_stats(a->up);
	printf("DONE sent=%llu acked=%llu retransmitted=%llu reconnects=%llu eagain=%llu "
	       "rejected=%llu\n",
	       (unsigned long long)st->sent, (unsigned long long)st->acked,
	       (unsigned long long)st->retransmitted, (unsigned long long)st->reconnects,
	       (unsigned long long)st->eagain, (unsigned long long)st->rejected);
	fflush(stdout);
	a->done = true;
	a->exit_code = 0;
	a->stop = true;
}

static void on_ready(void *ud, uint64_t epoch)
{
	struct app *a = ud;
	printf("READY %llu\n", (unsigned long long)epoch);
	fflush(stdout);
	if (!a->injected && (a->garbage || a->oversize)) {
		a->injected = true;
		if (a->garbage) {
			static const char junk[] = "{\"type\":\"delta\",\"epoch\":nope}";
			kd_chan_up_send_raw(a->up, junk, sizeof(junk) - 1);
		} else {
			char *big = kd_xmalloc(a->oversize);
			memset(big, ' ', a->oversize);
			big[0] = '{';
			big[a->oversize - 1] = '}';
			kd_chan_up_send_raw(a->up, big, a->oversize);
			free(big);
		}
	}
	schedule(a, 0);
}

static void on_down(void *ud, const char *reason)
{
	struct app *a = ud;
	const struct kd_chan_stats *st = kd_chan_up_stats(a->up);
	printf("DOWN %s\n", reason);
	if (st->dead_peers && !a->dead_reported) {
		a->dead_reported = true;
		printf("DEAD eagain=%llu dead_peers=%llu\n", (unsigned long long)st->eagain,
		       (unsigned long long)st->dead_peers);
		if (a->exit_on_dead) {
			a->exit_code = 4;
			a->stop = true;
		}
	}
	fflush(stdout);
	if (a->once) {
		a->exit_code = 3;
		a->stop = true;
	}
}

static void on_writable(void *ud)
{
	struct app *a = ud;
	a->blocked = false;
	schedule(a, 0);
}

static void on_acked(void *ud, uint64_t id KD_UNUSED)
{
	check_done(ud);
}

static void produce(struct app *a)
{
	if (a->blocked || a->produced >= a->count)
		return;
	uint64_t n = KD_MIN(a->batch, a->count - a->produced);
	struct kd_op_list ops = {0};
	ts_make_ops(&a->us, &ops, a->prefix, a->produced + 1, n);
	int rc = kd_chan_up_send(a->up, &ops, NULL, NULL);
	kd_op_list_fini(&ops);
	if (rc == -EAGAIN) {
		/* wait for the writable callback; the ops stay in the wanted cache, so a
		 * reconcile may already deliver them: that is fine (idempotent by key) */
		a->blocked = true;
		return;
	}
	if (rc < 0) {
		fprintf(stderr, "chan_up: send: %s\n", strerror(-rc));
		a->exit_code = 1;
		a->stop = true;
		return;
	}
	a->produced += n;
	a->batches++;
	if (a->batches % 100 == 0) {
		printf("PROGRESS produced=%llu\n", (unsigned long long)a->produced);
		fflush(stdout);
	}
	if (a->kick_every && a->batches % a->kick_every == 0)
		kd_chan_up_kick(a->up);
	if (a->produced < a->count)
		schedule(a, a->interval_ms);
}

static void tick_cb(struct kd_loop *loop KD_UNUSED, struct kd_timer *t KD_UNUSED, void *arg)
{
	struct app *a = arg;
	produce(a);
	check_done(a);
}

static volatile sig_atomic_t g_stop;
static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

int main(int argc, char **argv)
{
	struct app a = {.count = 1000, .batch = 10, .prefix = "obj", .exit_code = 1};
	struct kd_chan_up_opts o = {.host = "127.0.0.1", .source = "harness-up"};
	enum kd_log_level lvl = KD_LOG_WARN;
	o.backoff_base_ms = 20;
	o.backoff_cap_ms = 200;
	for (int i = 1; i < argc; i++) {
		const char *k = argv[i];
		if (!strcmp(k, "--resume")) {
			a.resume = true;
			continue;
		}
		if (!strcmp(k, "--dup")) {
			o.fault_dup = true;
			continue;
		}
		if (!strcmp(k, "--reorder")) {
			o.fault_reorder = true;
			continue;
		}
		if (!strcmp(k, "--garbage")) {
			a.garbage = true;
			continue;
		}
		if (!strcmp(k, "--once")) {
			a.once = true;
			continue;
		}
		if (!strcmp(k, "--exit-on-dead")) {
			a.exit_on_dead = true;
			continue;
		}
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			fprintf(stderr, "chan_up: %s needs a value\n", k);
			return 2;
		}
		i++;
		if (!strcmp(k, "--port"))
			o.port = atoi(v);
		else if (!strcmp(k, "--count"))
			a.count = strtoull(v, NULL, 10);
		else if (!strcmp(k, "--batch"))
			a.batch = strtoull(v, NULL, 10);
		else if (!strcmp(k, "--prefix"))
			a.prefix = v;
		else if (!strcmp(k, "--source"))
			o.source = v;
		else if (!strcmp(k, "--token"))
			o.t.token = v;
		else if (!strcmp(k, "--interval-ms"))
			a.interval_ms = strtoull(v, NULL, 10);
		else if (!strcmp(k, "--kick-every"))
			a.kick_every = strtoull(v, NULL, 10);
		else if (!strcmp(k, "--oversize"))
			a.oversize = strtoul(v, NULL, 10);
		else if (!strcmp(k, "--max-msgs"))
			o.max_msgs = strtoul(v, NULL, 10);
		else if (!strcmp(k, "--ping-ms"))
			o.t.ping_ms = (uint32_t)atoi(v);
		else if (!strcmp(k, "--dead-ms"))
			o.t.dead_ms = (uint32_t)atoi(v);
		else if (!strcmp(k, "--tls-ca"))
			o.t.tls_ca = v;
		else if (!strcmp(k, "--tls-cert"))
			o.t.tls_cert = v;
		else if (!strcmp(k, "--tls-key"))
			o.t.tls_key = v;
		else if (!strcmp(k, "--log"))
			kd_log_level_parse(v, &lvl);
		else {
			fprintf(stderr, "chan_up: unknown option %s\n", k);
			return 2;
		}
	}
	if (!a.batch)
		a.batch = 1;
	kd_log_init("chan_up", lvl, KD_LOG_TEXT);
	a.loop = kd_loop_new();
	if (!a.loop)
		return 1;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (a.resume) {
		/* the restarted stage's cache: everything, already produced before the crash */
		struct kd_op_list ops = {0};
		ts_make_ops(&a.us, &ops, a.prefix, 1, a.count);
		kd_op_list_fini(&ops);
		a.produced = a.count;
	}
	struct kd_chan_up_cbs cbs = {
	    .hs = ts_up_cbs,
	    .ready = on_ready,
	    .down = on_down,
	    .writable = on_writable,
	    .acked = on_acked,
	};
	a.tick = kd_loop_timer_new(a.loop, tick_cb, &a);
	kd_autoerr struct kd_error *err = NULL;
	a.up = kd_chan_up_new(a.loop, &o, &cbs, &a, &err);
	if (!a.up) {
		fprintf(stderr, "chan_up: %s\n", kd_error_msg(err));
		return 1;
	}
	while (!g_stop && !a.stop)
		kd_loop_run_once(a.loop, 100);
	kd_loop_timer_free(a.tick);
	kd_chan_up_free(a.up);
	ts_up_fini(&a.us);
	kd_loop_free(a.loop);
	return a.exit_code;
}
