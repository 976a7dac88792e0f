/* bench/chan: direct-channel benchmarks between two processes on loopback.
 *
 *   rtt        round trip of a one-op delta (send -> downstream applies -> ack seen upstream)
 *   echo       raw WebSocket echo with plain libwebsockets (own poll loop on both ends), with
 *              the same frame size as the one-op delta frame: the floor for `rtt`
 *   batch      throughput of batched upserts on one channel (ops per frame configurable)
 *   handshake  connect + two-round handshake with N objects held downstream (all kept)
 *
 * Each phase forks a fresh downstream process. Prints a table and the ratios against the targets
 * (p50 rtt <= 2x echo p50; batched >= 100k ops/s; handshake with 10k held < 50 ms).
 * Usage: chan [--rounds N] [--batch-ops N] [--batch-total N] [--held N] [--hs-reps N]
 *             [--max-frame BYTES] */
#include <errno.h>
#include <libwebsockets.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kd/chan.h"
#include "kd/log.h"
#include "kd/loop.h"

/* Frame cap of both ends: 8 MiB unless --max-frame is given (e.g. 1048576, the library default,
 * with --held 50000 to time a handshake whose state{} and reconcile{} travel in pages). */
static size_t g_max_frame = (size_t)8 << 20;
#define MAX_FRAME g_max_frame

/* ---- minimal stages ------------------------------------------------------------------------- */

static void make_ops(struct kd_op_list *ops, const char *prefix, uint64_t first, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char key[96];
		uint64_t k = first + i;
		snprintf(key, sizeof(key), "bench/%s-%llu", prefix, (unsigned long long)k);
		struct kd_op *op = kd_op_list_push(ops);
		kd_op_init(op, KD_OP_UPSERT, key);
		kd_op_set_str(&op->node, "node-1");
		kd_op_set_tmpl(op, "PodAutoscaler", "hello-00001", "uid-1", "h1");
	}
}

struct down_stage {
	struct kd_op_list held;
	uint64_t applied;
};

static int ds_held(void *ud, const char *source KD_UNUSED, struct kd_op_list *out,
                   struct kd_error **err KD_UNUSED)
{
	struct down_stage *d = ud;
	for (size_t i = 0; i < d->held.n; i++)
		kd_op_copy(kd_op_list_push(out), &d->held.v[i]);
	return 0;
}

static int ds_apply(void *ud, const char *source KD_UNUSED, uint64_t epoch KD_UNUSED,
                    const struct kd_op *op KD_UNUSED, struct kd_error **err KD_UNUSED)
{
	struct down_stage *d = ud;
	d->applied++;
	return 0;
}

static int ds_drop(void *ud KD_UNUSED, const char *source KD_UNUSED, const char *key KD_UNUSED,
                   struct kd_error **err KD_UNUSED)
{
	return 0;
}

struct up_stage {
	struct kd_op_list wanted;
	struct kd_loop *loop;
	struct kd_chan_up *up;
	bool ready;
	uint64_t acked_id;
	uint64_t ready_ns;
};

static int us_wanted(void *ud, struct kd_op_list *out, struct kd_error **err KD_UNUSED)
{
	struct up_stage *u = ud;
	for (size_t i = 0; i < u->wanted.n; i++)
		kd_op_copy(kd_op_list_push(out), &u->wanted.v[i]);
	return 0;
}

static bool us_persisted(void *ud KD_UNUSED, const char *key KD_UNUSED)
{
	return false;
}

static void us_ready(void *ud, uint64_t epoch KD_UNUSED)
{
	struct up_stage *u = ud;
	u->ready = true;
	u->ready_ns = kd_now_ns();
}

static void us_acked(void *ud, uint64_t id)
{
	struct up_stage *u = ud;
	u->acked_id = id;
}

/* ---- child processes ------------------------------------------------------------------------ */

static volatile sig_atomic_t g_stop;
static void on_term(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void child_chan(int wfd, size_t held)
{
	struct kd_loop *loop = kd_loop_new();
	struct down_stage ds = {0};
	make_ops(&ds.held, "hs", 1, held);
	struct kd_hs_down_cbs cbs = {.held = ds_held, .apply = ds_apply, .drop = ds_drop};
	struct kd_chan_down_opts o = {.t.max_frame = MAX_FRAME, .reorder_window = 64};
	kd_autoerr struct kd_error *err = NULL;
	struct kd_chan_down *d = kd_chan_down_new(loop, &o, &cbs, &ds, &err);
	if (!d) {
		fprintf(stderr, "bench child: %s\n", kd_error_msg(err));
		_exit(1);
	}
	int port = kd_chan_down_port(d);
	if (write(wfd, &port, sizeof(port)) != sizeof(port))
		_exit(1);
	close(wfd);
	while (!g_stop)
		kd_loop_run_once(loop, 100);
	kd_chan_down_free(d);
	kd_op_list_fini(&ds.held);
	kd_loop_free(loop);
	_exit(0);
}

struct echo_pss {
	unsigned char *buf;
	size_t len;
	bool pending;
};

static int echo_srv_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
	struct echo_pss *p = user;
	switch (reason) {
	case LWS_CALLBACK_RECEIVE:
		if (!p->buf || p->len < len) {
			free(p->buf);
			p->buf = kd_xmalloc(LWS_PRE + len);
		}
		memcpy(p->buf + LWS_PRE, in, len);
		p->len = len;
		p->pending = true;
		lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (p->pending) {
			p->pending = false;
			if (lws_write(wsi, p->buf + LWS_PRE, p->len, LWS_WRITE_TEXT) < (int)p->len)
				return -1;
		}
		break;
	case LWS_CALLBACK_CLOSED:
		free(p->buf);
		p->buf = NULL;
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols echo_srv_protocols[] = {
    {"http", lws_callback_http_dummy, 0, 0, 0, NULL, 0},
    {"echo", echo_srv_cb, sizeof(struct echo_pss), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void child_echo(int wfd)
{
	struct lws_context_creation_info info = {0};
	info.port = 0;
	info.iface = "127.0.0.1";
	info.protocols = echo_srv_protocols;
	info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
	struct lws_context *ctx = lws_create_context(&info);
	if (!ctx)
		_exit(1);
	int port = lws_get_vhost_listen_port(lws_get_vhost_by_name(ctx, "default"));
	if (write(wfd, &port, sizeof(port)) != sizeof(port))
		_exit(1);
	close(wfd);
	while (!g_stop)
		lws_service(ctx, 0);
	lws_context_destroy(ctx);
	_exit(0);
}

/* CPU placement of the two processes of a round-trip phase: -1 = left to the scheduler. The
 * same-vCPU and across-vCPU costs differ by ~4x on this class of machine (reference/numbers.md),
 * so rtt and echo are compared under the same placement. */
static int g_cpu_parent = -1, g_cpu_child = -1;

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	if (cpu < 0) {
		for (int i = 0; i < CPU_SETSIZE; i++)
			CPU_SET(i, &set);
	} else {
		CPU_SET(cpu, &set);
	}
	sched_setaffinity(0, sizeof(set), &set);
}

static pid_t fork_child(int kind, size_t held, int *port)
{
	int p[2];
	if (pipe(p) < 0)
		return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		signal(SIGTERM, on_term);
		pin(g_cpu_child);
		if (kind == 0)
			child_chan(p[1], held);
		else
			child_echo(p[1]);
	}
	close(p[1]);
	if (read(p[0], port, sizeof(*port)) != sizeof(*port)) {
		close(p[0]);
		return -1;
	}
	close(p[0]);
	return pid;
}

/* Stops the child; returns its CPU time (user + system) in ms. */
static double end_child(pid_t pid)
{
	kill(pid, SIGTERM);
	int st;
	struct rusage ru = {0};
	wait4(pid, &st, 0, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static double self_cpu_ms(void)
{
	struct rusage ru = {0};
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* ---- measurements --------------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_us(uint64_t *v, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1));
	return (double)v[i] / 1000.0;
}

static struct kd_chan_up *make_up(struct up_stage *u, int port, const char *source)
{
	struct kd_chan_up_opts o = {
	    .host = "127.0.0.1",
	    .port = port,
	    .source = source,
	    .t.max_frame = MAX_FRAME,
	    .max_msgs = 1u << 16,
	    .max_bytes = (size_t)1 << 30,
	    .backoff_base_ms = 5,
	    .backoff_cap_ms = 50,
	};
	struct kd_chan_up_cbs cbs = {
	    .hs = {.wanted = us_wanted, .persisted = us_persisted},
	    .ready = us_ready,
	    .acked = us_acked,
	};
	kd_autoerr struct kd_error *err = NULL;
	struct kd_chan_up *up = kd_chan_up_new(u->loop, &o, &cbs, u, &err);
	if (!up)
		fprintf(stderr, "bench: %s\n", kd_error_msg(err));
	return up;
}

static bool run_until(struct up_stage *u, bool (*pred)(struct up_stage *, uint64_t), uint64_t arg,
                      uint64_t timeout_ms)
{
	uint64_t end = kd_now_ns() + timeout_ms * 1000000ull;
	while (!pred(u, arg)) {
		if (kd_now_ns() > end)
			return false;
		kd_loop_run_once(u->loop, 10);
	}
	return true;
}

static bool is_ready(struct up_stage *u, uint64_t arg KD_UNUSED)
{
	return u->ready;
}

static bool acked_to(struct up_stage *u, uint64_t id)
{
	return u->acked_id >= id;
}

/* One-op delta round trips. Returns 0 and fills p50/p99 (us) and the frame size. */
static int bench_rtt(size_t rounds, double *p50, double *p99, size_t *frame)
{
	int port;
	pid_t pid = fork_child(0, 0, &port);
	if (pid < 0)
		return -1;
	struct up_stage u = {.loop = kd_loop_new()};
	u.up = make_up(&u, port, "bench-rtt");
	int rc = -1;
	uint64_t *lat = kd_xcalloc(rounds, sizeof(*lat));
	if (!u.up || !run_until(&u, is_ready, 0, 5000))
		goto out;
	{
		struct kd_msg probe;
		kd_msg_init(&probe, KD_MSG_DELTA, kd_chan_up_epoch(u.up), 1);
		make_ops(&probe.delta.ops, "rtt", 1, 1);
		char *buf = NULL;
		if (kd_msg_encode(&probe, 0, NULL, &buf, frame, NULL) == 0)
			free(buf);
		kd_msg_fini(&probe);
	}
	size_t warm = rounds / 10;
	for (size_t i = 0; i < rounds + warm; i++) {
		struct kd_op_list ops = {0};
		make_ops(&ops, "rtt", i + 1, 1);
		uint64_t id = 0;
		uint64_t t0 = kd_now_ns();
		if (kd_chan_up_send(u.up, &ops, &id, NULL) < 0 ||
		    !run_until(&u, acked_to, id, 5000)) {
			kd_op_list_fini(&ops);
			goto out;
		}
		if (i >= warm)
			lat[i - warm] = kd_now_ns() - t0;
		kd_op_list_fini(&ops);
	}
	qsort(lat, rounds, sizeof(*lat), cmp_u64);
	*p50 = pct_us(lat, rounds, 0.50);
	*p99 = pct_us(lat, rounds, 0.99);
	rc = 0;
out:
	free(lat);
	kd_chan_up_free(u.up);
	kd_loop_free(u.loop);
	end_child(pid);
	return rc;
}

/* Raw echo with plain lws on both ends. */
struct echo_cli {
	size_t frame, rounds, warm, done;
	uint64_t t0;
	uint64_t *lat;
	unsigned char *buf;
	bool failed, finished;
};

static int echo_cli_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user KD_UNUSED,
                       void *in KD_UNUSED, size_t len)
{
	struct echo_cli *e = lws_context_user(lws_get_context(wsi));
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		memset(e->buf + LWS_PRE, 'x', e->frame);
		e->t0 = kd_now_ns();
		if (lws_write(wsi, e->buf + LWS_PRE, e->frame, LWS_WRITE_TEXT) < (int)e->frame)
			return -1;
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (lws_remaining_packet_payload(wsi) || !lws_is_final_fragment(wsi))
			break;
		(void)len;
		if (e->done >= e->warm)
			e->lat[e->done - e->warm] = kd_now_ns() - e->t0;
		if (++e->done == e->rounds + e->warm) {
			e->finished = true;
			return -1;
		}
		lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		e->failed = true;
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols echo_cli_protocols[] = {
    {"echo", echo_cli_cb, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static int bench_echo(size_t rounds, size_t frame, double *p50, double *p99)
{
	int port;
	pid_t pid = fork_child(1, 0, &port);
	if (pid < 0)
		return -1;
	struct echo_cli e = {.frame = frame, .rounds = rounds, .warm = rounds / 10};
	e.lat = kd_xcalloc(rounds, sizeof(*e.lat));
	e.buf = kd_xmalloc(LWS_PRE + frame);
	struct lws_context_creation_info info = {0};
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = echo_cli_protocols;
	info.user = &e;
	struct lws_context *ctx = lws_create_context(&info);
	int rc = -1;
	if (ctx) {
		struct lws_client_connect_info ci = {0};
		ci.context = ctx;
		ci.address = "127.0.0.1";
		ci.port = port;
		ci.path = "/";
		ci.host = "127.0.0.1";
		ci.origin = "127.0.0.1";
		ci.protocol = "echo";
		uint64_t end = kd_now_ns() + 60ull * 1000000000ull;
		if (lws_client_connect_via_info(&ci)) {
			while (!e.finished && !e.failed && kd_now_ns() < end)
				lws_service(ctx, 0);
		}
		lws_context_destroy(ctx);
	}
	if (e.finished) {
		qsort(e.lat, rounds, sizeof(*e.lat), cmp_u64);
		*p50 = pct_us(e.lat, rounds, 0.50);
		*p99 = pct_us(e.lat, rounds, 0.99);
		rc = 0;
	}
	free(e.lat);
	free(e.buf);
	end_child(pid);
	return rc;
}

static int bench_batch(size_t per_frame, size_t total, double *ops_s, double *frame_kb,
                       double *up_cpu, double *down_cpu)
{
	int port;
	pid_t pid = fork_child(0, 0, &port);
	if (pid < 0)
		return -1;
	struct up_stage u = {.loop = kd_loop_new()};
	u.up = make_up(&u, port, "bench-batch");
	int rc = -1;
	if (!u.up || !run_until(&u, is_ready, 0, 5000))
		goto out;
	{
		struct kd_msg probe;
		kd_msg_init(&probe, KD_MSG_DELTA, kd_chan_up_epoch(u.up), 1);
		make_ops(&probe.delta.ops, "batch", 1, per_frame);
		char *buf = NULL;
		size_t len = 0;
		struct kd_delta_limits lim = {.max_frame = MAX_FRAME};
		if (kd_msg_encode(&probe, 0, &lim, &buf, &len, NULL) == 0)
			free(buf);
		*frame_kb = (double)len / 1024.0;
		kd_msg_fini(&probe);
	}
	uint64_t t0 = kd_now_ns(), last = 0;
	double cpu0 = self_cpu_ms();
	for (size_t at = 0; at < total; at += per_frame) {
		struct kd_op_list ops = {0};
		make_ops(&ops, "batch", at + 1, KD_MIN(per_frame, total - at));
		int r;
		while ((r = kd_chan_up_send(u.up, &ops, &last, NULL)) == -EAGAIN)
			kd_loop_run_once(u.loop, 10);
		kd_op_list_fini(&ops);
		if (r < 0)
			goto out;
		kd_loop_run_once(u.loop, 0);
	}
	if (!run_until(&u, acked_to, last, 60000))
		goto out;
	*ops_s = (double)total / ((double)(kd_now_ns() - t0) / 1e9);
	*up_cpu = self_cpu_ms() - cpu0;
	rc = 0;
out:
	kd_chan_up_free(u.up);
	kd_loop_free(u.loop);
	*down_cpu = end_child(pid);
	return rc;
}

static int bench_handshake(size_t held, int reps, double *med_ms, double *max_ms)
{
	int port;
	pid_t pid = fork_child(0, held, &port);
	if (pid < 0)
		return -1;
	struct up_stage u = {.loop = kd_loop_new()};
	make_ops(&u.wanted, "hs", 1, held);
	double *v = kd_xcalloc((size_t)reps, sizeof(*v));
	int rc = -1;
	for (int r = 0; r < reps; r++) {
		u.ready = false;
		uint64_t t0 = kd_now_ns();
		u.up = make_up(&u, port, "bench-hs");
		if (!u.up || !run_until(&u, is_ready, 0, 10000))
			goto out;
		v[r] = (double)(u.ready_ns - t0) / 1e6;
		kd_chan_up_free(u.up);
		u.up = NULL;
	}
	for (int i = 1; i < reps; i++)
		for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	*med_ms = v[reps / 2];
	*max_ms = v[reps - 1];
	rc = 0;
out:
	free(v);
	kd_chan_up_free(u.up);
	kd_op_list_fini(&u.wanted);
	kd_loop_free(u.loop);
	end_child(pid);
	return rc;
}

int main(int argc, char **argv)
{
	size_t rounds = 20000, per_frame = 1000, total = 500000, held = 10000;
	int reps = 7;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--rounds"))
			rounds = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--batch-ops"))
			per_frame = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--batch-total"))
			total = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--held"))
			held = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--hs-reps"))
			reps = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--max-frame"))
			g_max_frame = strtoul(argv[i + 1], NULL, 10);
	}
	if (rounds < 10 || per_frame < 1 || total < per_frame || reps < 1 || g_max_frame < 4096) {
		fprintf(stderr, "bench/chan: bad arguments\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	kd_log_init("bench-chan", KD_LOG_WARN, KD_LOG_TEXT);
	lws_set_log_level(LLL_ERR, NULL);

	double ops_s = 0, fkb = 0, hs_med = 0, hs_max = 0, up_cpu = 0, down_cpu = 0;
	size_t frame = 0;
	int fails = 0;
	/* placements: scheduler's choice, same vCPU, across vCPUs (if there are two) */
	struct placement {
		const char *name;
		int parent, child;
		double rtt50, rtt99, echo50, echo99;
		bool ok;
	} pl[3] = {{"unpinned", -1, -1, 0, 0, 0, 0, false},
	           {"same vCPU", 0, 0, 0, 0, 0, 0, false},
	           {"across vCPUs", 0, 1, 0, 0, 0, 0, false}};
	int npl = sysconf(_SC_NPROCESSORS_ONLN) >= 2 ? 3 : 2;
	for (int k = 0; k < npl; k++) {
		g_cpu_parent = pl[k].parent;
		g_cpu_child = pl[k].child;
		pin(g_cpu_parent);
		pl[k].ok =
		    bench_rtt(rounds, &pl[k].rtt50, &pl[k].rtt99, &frame) == 0 &&
		    bench_echo(rounds, frame ? frame : 160, &pl[k].echo50, &pl[k].echo99) == 0;
		if (!pl[k].ok) {
			fprintf(stderr, "bench/chan: rtt/echo (%s) failed\n", pl[k].name);
			fails++;
		}
	}
	g_cpu_parent = g_cpu_child = -1;
	pin(-1);
	if (bench_batch(per_frame, total, &ops_s, &fkb, &up_cpu, &down_cpu) < 0) {
		fprintf(stderr, "bench/chan: batch failed\n");
		fails++;
	}
	if (bench_handshake(held, reps, &hs_med, &hs_max) < 0) {
		fprintf(stderr, "bench/chan: handshake failed\n");
		fails++;
	}

	printf("bench/chan: two processes on 127.0.0.1 (kd_chan on kd_loop + lws/libuv)\n");
	printf("%-44s %12s %12s\n", "measurement", "p50 / value", "p99 / max");
	for (int k = 0; k < npl; k++) {
		printf("%-44s %9.1f us %9.1f us\n",
		       k == 0 ? "one-op delta round trip (send->apply->ack)" : "  delta round trip",
		       pl[k].rtt50, pl[k].rtt99);
		printf("%-44s %9.1f us %9.1f us\n",
		       k == 0 ? "raw lws WebSocket echo, same frame size" : "  raw echo",
		       pl[k].echo50, pl[k].echo99);
		printf("%-44s %9.2fx   (%s)\n", "  ratio rtt/echo (p50)",
		       pl[k].echo50 > 0 ? pl[k].rtt50 / pl[k].echo50 : 0.0, pl[k].name);
	}
	printf("%-44s %9zu B\n", "  frame size (one-op delta)", frame);
	printf("%-44s %9.0f /s   (%zu ops/frame, %.1f KiB/frame, %zu ops)\n",
	       "batched upserts, one channel", ops_s, per_frame, fkb, total);
	printf("%-44s %9.0f ms up, %.0f ms down (%.0f ops per downstream CPU-second)\n",
	       "  CPU time of the batched run", up_cpu, down_cpu,
	       down_cpu > 0 ? (double)total / (down_cpu / 1e3) : 0.0);
	printf("%-44s %9.2f ms %9.2f ms  (%d runs)\n", "connect + handshake, held objects", hs_med,
	       hs_max, reps);
	printf("%-44s %9zu\n", "  held objects (all kept)", held);
	printf("%-44s %9zu B\n", "  frame cap (both ends)", g_max_frame);
	printf("\nratios vs targets:\n");
	for (int k = 0; k < npl; k++) {
		double ratio = pl[k].echo50 > 0 ? pl[k].rtt50 / pl[k].echo50 : 0;
		printf("  rtt p50 / echo p50      = %5.2fx  (target <= 2x)     %-6s (%s)\n", ratio,
		       ratio > 0 && ratio <= 2.0 ? "ok" : "MISSED", pl[k].name);
	}
	printf("  batched ops/s / 100k    = %5.2fx  (target >= 1x)     %s\n", ops_s / 100000.0,
	       ops_s >= 100000.0 ? "ok" : "MISSED");
	printf("  handshake p50 / 50 ms   = %5.2fx  (target < 1x)      %s\n", hs_med / 50.0,
	       hs_med > 0 && hs_med < 50.0 ? "ok" : "MISSED");
	return fails ? 1 : 0;
}
