/* chan_down (test harness): a downstream process for the multi-process channel tests. Serves
 * kd_chan on 127.0.0.1 with an in-memory stage (tests/support/chan_stage.c) and reports on
 * stdout, one line each:
 *   PORT <port>                                    once listening
 *   STAT applies=A dup=D live=L rejected=R conns=C stale=S
 *                                    whenever something changed (<= every 20 ms)
 * and a last STAT line on SIGTERM/SIGINT, then exits 0. "dup" counts keys applied more than once
 * in this process's life, "stale" ops applied under an epoch older than one already applied
 * (this harness serves one source at a time): the multi-process test requires both to be 0.
 *
 * Options: --port P (0: ephemeral), --token T, --max-frame BYTES, --ping-ms MS, --dead-ms MS,
 *          --tls-cert PEM --tls-key PEM [--tls-ca PEM: require client certificates], --log LEVEL */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chan_stage.h"
#include "kd/chan.h"
#include "kd/log.h"
#include "kd/loop.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

struct report {
	struct ts_down *ds;
	struct kd_chan_down *down;
	char last[256];
};

static void print_stat(struct report *r, bool force)
{
	const struct kd_chan_stats *st = kd_chan_down_stats(r->down);
	char line[256];
	snprintf(line, sizeof(line),
	         "STAT applies=%llu dup=%llu live=%zu rejected=%llu conns=%zu stale=%llu",
	         (unsigned long long)r->ds->applies, (unsigned long long)r->ds->dup_applies,
	         ts_down_live(r->ds), (unsigned long long)st->rejected, kd_chan_down_conns(r->down),
	         (unsigned long long)r->ds->stale_applies);
	if (!force && strcmp(line, r->last) == 0)
		return;
	snprintf(r->last, sizeof(r->last), "%s", line);
	printf("%s\n", line);
	fflush(stdout);
}

static void stat_timer(struct kd_loop *loop KD_UNUSED, struct kd_timer *t, void *arg)
{
	print_stat(arg, false);
	kd_loop_timer_start(t, 20);
}

int main(int argc, char **argv)
{
	struct kd_chan_down_opts o = {0};
	enum kd_log_level lvl = KD_LOG_WARN;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			fprintf(stderr, "chan_down: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "--port"))
			o.port = atoi(v);
		else if (!strcmp(a, "--token"))
			o.t.token = v;
		else if (!strcmp(a, "--max-frame"))
			o.t.max_frame = strtoul(v, NULL, 10);
		else if (!strcmp(a, "--ping-ms"))
			o.t.ping_ms = (uint32_t)atoi(v);
		else if (!strcmp(a, "--dead-ms"))
			o.t.dead_ms = (uint32_t)atoi(v);
		else if (!strcmp(a, "--tls-cert"))
			o.t.tls_cert = v;
		else if (!strcmp(a, "--tls-key"))
			o.t.tls_key = v;
		else if (!strcmp(a, "--tls-ca"))
			o.t.tls_ca = v;
		else if (!strcmp(a, "--log"))
			kd_log_level_parse(v, &lvl);
		else {
			fprintf(stderr, "chan_down: unknown option %s\n", a);
			return 2;
		}
	}
	kd_log_init("chan_down", lvl, KD_LOG_TEXT);
	struct kd_loop *loop = kd_loop_new();
	if (!loop)
		return 1;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	struct ts_down ds = {0};
	kd_autoerr struct kd_error *err = NULL;
	struct kd_chan_down *down = kd_chan_down_new(loop, &o, &ts_down_cbs, &ds, &err);
	if (!down) {
		fprintf(stderr, "chan_down: %s\n", kd_error_msg(err));
		return 1;
	}
	printf("PORT %d\n", kd_chan_down_port(down));
	fflush(stdout);
	struct report r = {.ds = &ds, .down = down};
	struct kd_timer *t = kd_loop_timer_new(loop, stat_timer, &r);
	kd_loop_timer_start(t, 20);
	while (!g_stop)
		kd_loop_run_once(loop, 100);
	print_stat(&r, true);
	kd_loop_timer_free(t);
	kd_chan_down_free(down);
	ts_down_fini(&ds);
	kd_loop_free(loop);
	return 0;
}
