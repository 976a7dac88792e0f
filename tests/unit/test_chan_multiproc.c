/* Multi-process tests of the direct channels: the harness programs chan_down (downstream) and
 * chan_up (upstream) from KD_BUILD_DIR/tests/harness talk over loopback while this test kills,
 * stops, restarts and faults them. Every wait is bounded; teardown kills and reaps every child. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kd/common.h"

#define MAX_CHILDREN 8

struct child {
	pid_t pid; /* 0: reaped */
	int out;   /* read end of its stdout */
	char buf[1 << 16];
	size_t len;
	int status;
};

static struct child kids[MAX_CHILDREN];

static uint64_t now_ms(void)
{
	return kd_now_ns() / 1000000u;
}

static struct child *spawn(const char *prog, ...)
{
	const char *argv[40];
	int argc = 0;
	char path[512];
	snprintf(path, sizeof(path), "%s/tests/harness/%s", KD_BUILD_DIR, prog);
	argv[argc++] = path;
	va_list ap;
	va_start(ap, prog);
	const char *a;
	while ((a = va_arg(ap, const char *)) && argc < 39)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	struct child *c = NULL;
	for (int i = 0; i < MAX_CHILDREN; i++) {
		if (!kids[i].pid && !kids[i].out) {
			c = &kids[i];
			break;
		}
	}
	assert_non_null(c);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 1);
		if (!getenv("KD_TEST_DEBUG")) {
			int nul = open("/dev/null", O_WRONLY);
			if (nul >= 0)
				dup2(nul, 2);
		}
		execv(path, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	memset(c, 0, sizeof(*c));
	c->pid = pid;
	c->out = p[0];
	return c;
}

/* Waits for a line starting with prefix (lines before it are consumed). Copies the line to
 * line (if non-NULL) and returns true; false on timeout or EOF. */
static bool wait_line(struct child *c, const char *prefix, int timeout_ms, char *line, size_t size)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	size_t plen = strlen(prefix);
	for (;;) {
		char *nl;
		while ((nl = memchr(c->buf, '\n', c->len))) {
			size_t n = (size_t)(nl - c->buf);
			bool hit = n >= plen && memcmp(c->buf, prefix, plen) == 0;
			if (hit && line) {
				size_t k = KD_MIN(n, size - 1);
				memcpy(line, c->buf, k);
				line[k] = '\0';
			}
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			if (hit)
				return true;
		}
		uint64_t now = now_ms();
		if (now >= end || c->len == sizeof(c->buf))
			return false;
		struct pollfd pfd = {.fd = c->out, .events = POLLIN};
		int r = poll(&pfd, 1, (int)(end - now));
		if (r <= 0)
			continue;
		ssize_t got = read(c->out, c->buf + c->len, sizeof(c->buf) - c->len);
		if (got <= 0)
			return false;
		c->len += (size_t)got;
	}
}

/* Reaps c within timeout_ms; returns its exit code, 128+signal, or -1 on timeout. */
static int reap(struct child *c, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	while (c->pid) {
		pid_t r = waitpid(c->pid, &c->status, WNOHANG);
		if (r == c->pid) {
			c->pid = 0;
			break;
		}
		if (now_ms() >= end)
			return -1;
		usleep(2000);
	}
	return WIFEXITED(c->status) ? WEXITSTATUS(c->status) : 128 + WTERMSIG(c->status);
}

static void kill_child(struct child *c)
{
	if (c->pid) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, &c->status, 0);
		c->pid = 0;
	}
	if (c->out > 0)
		close(c->out);
	c->out = 0;
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < MAX_CHILDREN; i++)
		kill_child(&kids[i]);
	return 0;
}

struct dstat {
	unsigned long long applies, dup, rejected, stale;
	size_t live, conns;
};

static bool parse_stat(const char *line, struct dstat *s)
{
	return sscanf(line,
	              "STAT applies=%llu dup=%llu live=%zu rejected=%llu conns=%zu stale=%llu",
	              &s->applies, &s->dup, &s->live, &s->rejected, &s->conns, &s->stale) == 6;
}

/* Reads the STAT lines printed within settle_ms and updates *s with the last one: STAT lines
 * come only on change, so afterwards *s is the current state. */
static void last_stat(struct child *d, int settle_ms, struct dstat *s)
{
	uint64_t end = now_ms() + (uint64_t)settle_ms;
	char line[256];
	while (now_ms() < end)
		if (wait_line(d, "STAT ", (int)(end - now_ms()), line, sizeof(line)))
			parse_stat(line, s);
}

/* Waits for a STAT line with live == want. */
static bool wait_live(struct child *d, size_t want, int timeout_ms, struct dstat *s)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	char line[256];
	while (now_ms() < end) {
		if (!wait_line(d, "STAT ", (int)(end - now_ms()), line, sizeof(line)))
			return false;
		if (parse_stat(line, s) && s->live == want)
			return true;
	}
	return false;
}

/* Stops the downstream (SIGTERM) and returns its final counters. */
static void stop_down(struct child *d, struct dstat *s)
{
	kill(d->pid, SIGTERM);
	assert_int_equal(reap(d, 5000), 0);
	char line[256];
	bool got = false;
	/* the last STAT line is the final report */
	while (wait_line(d, "STAT ", 500, line, sizeof(line)))
		got = parse_stat(line, s);
	assert_true(got);
}

static struct child *start_down(const char *port, char *port_out, const char *extra1,
                                const char *extra2)
{
	struct child *d = spawn("chan_down", "--port", port, extra1, extra2, (const char *)NULL);
	char line[64];
	assert_true(wait_line(d, "PORT ", 3000, line, sizeof(line)));
	snprintf(port_out, 16, "%d", atoi(line + 5));
	return d;
}

static void duplicated_and_reordered_frames_apply_once(void **state)
{
	(void)state;
	char port[16];
	struct child *d = start_down("0", port, NULL, NULL);
	struct child *u = spawn("chan_up", "--port", port, "--count", "3000", "--batch", "7",
	                        "--dup", "--reorder", (const char *)NULL);
	char line[256];
	assert_true(wait_line(u, "DONE ", 8000, line, sizeof(line)));
	unsigned long long sent = 0, acked = 0;
	assert_int_equal(sscanf(line, "DONE sent=%llu acked=%llu", &sent, &acked), 2);
	assert_int_equal(sent, 2 * ((3000 + 6) / 7)); /* every delta frame written twice */
	assert_int_equal(reap(u, 3000), 0);
	struct dstat s = {0};
	assert_true(wait_live(d, 3000, 3000, &s));
	stop_down(d, &s);
	assert_int_equal(s.live, 3000);
	assert_int_equal(s.applies, 3000);
	assert_int_equal(s.dup, 0);
	assert_int_equal(s.stale, 0);
}

static void upstream_kill9_restart_converges_without_duplicates(void **state)
{
	(void)state;
	char port[16];
	struct child *d = start_down("0", port, NULL, NULL);
	struct child *u1 = spawn("chan_up", "--port", port, "--count", "6000", "--batch", "10",
	                         "--interval-ms", "1", (const char *)NULL);
	assert_true(wait_line(u1, "PROGRESS produced=1000", 8000, NULL, 0));
	kill(u1->pid, SIGKILL); /* mid-stream: deltas in flight, acks lost */
	assert_int_equal(reap(u1, 3000), 128 + SIGKILL);
	struct dstat s = {0};
	assert_true(wait_line(d, "STAT ", 2000, NULL, 0));
	/* the restarted upstream rebuilds its cache (all 6000) and relies on the handshake */
	struct child *u2 =
	    spawn("chan_up", "--port", port, "--count", "6000", "--resume", (const char *)NULL);
	assert_true(wait_line(u2, "DONE ", 8000, NULL, 0));
	assert_int_equal(reap(u2, 3000), 0);
	assert_true(wait_live(d, 6000, 3000, &s));
	stop_down(d, &s);
	assert_int_equal(s.live, 6000);
	assert_int_equal(s.dup, 0);
	assert_int_equal(s.stale, 0);
	assert_int_equal(s.applies, 6000);
}

static void stale_upstream_is_fenced_after_restart(void **state)
{
	(void)state;
	char port[16];
	struct child *d = start_down("0", port, "--dead-ms", "20000");
	/* u1 will be frozen, replaced by u2, then thawed: its old-epoch deltas must bounce */
	struct child *u1 =
	    spawn("chan_up", "--port", port, "--count", "100000", "--batch", "5", "--interval-ms",
	          "1", "--once", "--ping-ms", "5000", "--dead-ms", "20000", (const char *)NULL);
	char line[256];
	assert_true(wait_line(u1, "READY ", 3000, line, sizeof(line)));
	unsigned long long e1 = strtoull(line + 6, NULL, 10);
	assert_true(wait_line(u1, "PROGRESS produced=500", 8000, NULL, 0));
	kill(u1->pid, SIGSTOP);
	struct child *u2 = spawn("chan_up", "--port", port, "--count", "200", "--prefix", "new",
	                         (const char *)NULL);
	assert_true(wait_line(u2, "READY ", 3000, line, sizeof(line)));
	unsigned long long e2 = strtoull(line + 6, NULL, 10);
	assert_true(e2 > e1);
	assert_true(wait_line(u2, "DONE ", 8000, NULL, 0));
	assert_int_equal(reap(u2, 3000), 0);
	struct dstat before = {0};
	assert_true(wait_live(d, 200, 3000, &before));
	last_stat(d, 300, &before);
	assert_int_equal(before.live, 200); /* u1's objects were dropped by u2's reconcile */
	kill(u1->pid, SIGCONT);
	/* u1 keeps sending under e1: fenced, told why, and it gives up (--once) */
	assert_true(wait_line(u1, "DOWN ", 5000, line, sizeof(line)));
	assert_non_null(strstr(line, "refused"));
	assert_int_equal(reap(u1, 3000), 3);
	struct dstat s = {0};
	stop_down(d, &s);
	assert_true(s.rejected >= 1);
	assert_int_equal(s.applies, before.applies); /* nothing of e1 applied after e2 */
	assert_int_equal(s.stale, 0);
	assert_int_equal(s.live, 200);
	assert_int_equal(s.dup, 0);
}

static void downstream_restart_recovers_state(void **state)
{
	(void)state;
	char port[16];
	struct child *d1 = start_down("0", port, NULL, NULL);
	struct child *u = spawn("chan_up", "--port", port, "--count", "6000", "--batch", "10",
	                        "--interval-ms", "1", (const char *)NULL);
	assert_true(wait_line(u, "PROGRESS produced=2000", 8000, NULL, 0));
	kill(d1->pid, SIGKILL); /* loses every object it held */
	assert_int_equal(reap(d1, 3000), 128 + SIGKILL);
	kill_child(d1);
	char port2[16];
	struct child *d2 = start_down(port, port2, NULL, NULL);
	assert_string_equal(port, port2);
	char line[256];
	assert_true(wait_line(u, "DONE ", 9000, line, sizeof(line)));
	assert_int_equal(reap(u, 3000), 0);
	unsigned long long reconnects = 0;
	assert_non_null(strstr(line, "reconnects="));
	reconnects = strtoull(strstr(line, "reconnects=") + 11, NULL, 10);
	assert_true(reconnects >= 1);
	struct dstat s = {0};
	assert_true(wait_live(d2, 6000, 3000, &s));
	stop_down(d2, &s);
	assert_int_equal(s.live, 6000);
	assert_int_equal(s.dup, 0);
	assert_int_equal(s.stale, 0);
	assert_int_equal(s.applies, 6000);
}

static void reconnects_never_apply_twice(void **state)
{
	(void)state;
	char port[16];
	struct child *d = start_down("0", port, NULL, NULL);
	struct child *u = spawn("chan_up", "--port", port, "--count", "4000", "--batch", "10",
	                        "--kick-every", "25", "--interval-ms", "2", (const char *)NULL);
	char line[256];
	assert_true(wait_line(u, "DONE ", 9000, line, sizeof(line)));
	assert_int_equal(reap(u, 3000), 0);
	unsigned long long reconnects = strtoull(strstr(line, "reconnects=") + 11, NULL, 10);
	print_message("reconnects: %llu\n", reconnects);
	assert_true(reconnects >= 3);
	struct dstat s = {0};
	assert_true(wait_live(d, 4000, 3000, &s));
	stop_down(d, &s);
	assert_int_equal(s.live, 4000);
	assert_int_equal(s.dup, 0);
	assert_int_equal(s.stale, 0);
	assert_int_equal(s.applies, 4000);
}

static void garbage_and_oversize_peers_are_refused(void **state)
{
	(void)state;
	const char *modes[2][2] = {{"--garbage", NULL}, {"--oversize", "2000000"}};
	for (int m = 0; m < 2; m++) {
		char port[16];
		struct child *d = start_down("0", port, NULL, NULL);
		struct child *u = spawn("chan_up", "--port", port, "--count", "500", "--batch",
		                        "10", modes[m][0], modes[m][1], (const char *)NULL);
		char line[512];
		assert_true(wait_line(u, "DOWN ", 5000, line, sizeof(line)));
		assert_non_null(
		    strstr(line, m == 0 ? "not valid JSON" : "exceeds the 1048576-byte"));
		/* the downstream survives and serves the reconnect */
		assert_true(wait_line(u, "DONE ", 8000, NULL, 0));
		assert_int_equal(reap(u, 3000), 0);
		struct dstat s = {0};
		assert_true(wait_live(d, 500, 3000, &s));
		stop_down(d, &s);
		assert_int_equal(s.rejected, 1);
		assert_int_equal(s.dup, 0);
		assert_int_equal(s.stale, 0);
		assert_int_equal(s.live, 500);
		kill_child(u);
		kill_child(d);
	}
}

static void stuck_peer_backpressure_then_dead_peer(void **state)
{
	(void)state;
	char port[16];
	struct child *d = start_down("0", port, NULL, NULL);
	struct child *u = spawn("chan_up", "--port", port, "--count", "1000000", "--batch", "50",
	                        "--max-msgs", "16", "--ping-ms", "100", "--dead-ms", "600",
	                        "--exit-on-dead", (const char *)NULL);
	assert_true(wait_line(u, "READY ", 3000, NULL, 0));
	kill(d->pid, SIGSTOP); /* answers nothing, reads nothing */
	char line[256];
	uint64_t t0 = now_ms();
	assert_true(wait_line(u, "DEAD ", 5000, line, sizeof(line)));
	unsigned long long eagain = 0, dead = 0;
	assert_int_equal(sscanf(line, "DEAD eagain=%llu dead_peers=%llu", &eagain, &dead), 2);
	assert_true(eagain >= 1); /* the sender saw back-pressure first */
	assert_int_equal(dead, 1);
	/* not before the dead-peer timeout (600 ms after the last pong, itself <= ~100 ms before
	 * the SIGSTOP unless the box is very loaded) */
	assert_true(now_ms() - t0 >= 300);
	assert_int_equal(reap(u, 3000), 4);
}

/* A throwaway CA with a server and a client certificate (openssl CLI, EC P-256), made once
 * per run and removed by the group teardown. */
static char cert_dir[] = "/tmp/kd-chan-tls-XXXXXX";
static bool certs_made;

static const char *make_certs(void)
{
	if (certs_made)
		return cert_dir;
	if (!mkdtemp(cert_dir))
		return NULL;
	certs_made = true;
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
	         "(set -e; cd %s; "
	         "K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'; "
	         "openssl req -x509 $K -keyout ca.key -out ca.crt -days 1 -subj /CN=kd-test-ca; "
	         "printf 'subjectAltName=IP:127.0.0.1\\n' > srv.ext; "
	         "openssl req $K -keyout srv.key -out srv.csr -subj /CN=127.0.0.1; "
	         "openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 "
	         "-extfile srv.ext -out srv.crt; "
	         "openssl req $K -keyout cli.key -out cli.csr -subj /CN=kd-test-upstream; "
	         "openssl x509 -req -in cli.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 "
	         "-out cli.crt) >/dev/null 2>&1",
	         cert_dir);
	return system(cmd) == 0 ? cert_dir : NULL;
}

static int remove_certs(void **state)
{
	(void)state;
	if (!certs_made)
		return 0;
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cert_dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Waits for a line starting with `until`; false if one starting with `never` comes first. */
static bool line_before(struct child *c, const char *never, const char *until, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	char line[512];
	while (now_ms() < end) {
		if (!wait_line(c, "", (int)(end - now_ms()), line, sizeof(line)))
			return false;
		if (!strncmp(line, never, strlen(never)))
			return false;
		if (!strncmp(line, until, strlen(until)))
			return true;
	}
	return false;
}

/* Mutual TLS: an upstream with a client certificate from the channel CA gets through; one
 * without a client certificate, or speaking plain WebSocket, never reaches READY.
 * The TLS downstream is killed (SIGKILL) at the end rather than stopped: libwebsockets 4.1.6
 * leaks the server SSL_CTX when a context that served a TLS connection is destroyed, which
 * ASan would report at its exit; that leak is at shutdown only and outside kd_chan. */
static void mutual_tls_accepted_and_refused(void **state)
{
	(void)state;
	const char *dir = make_certs();
	assert_non_null(dir);
	char ca[128], scrt[128], skey[128], ccrt[128], ckey[128];
	snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
	snprintf(scrt, sizeof(scrt), "%s/srv.crt", dir);
	snprintf(skey, sizeof(skey), "%s/srv.key", dir);
	snprintf(ccrt, sizeof(ccrt), "%s/cli.crt", dir);
	snprintf(ckey, sizeof(ckey), "%s/cli.key", dir);
	struct child *d = spawn("chan_down", "--port", "0", "--tls-cert", scrt, "--tls-key", skey,
	                        "--tls-ca", ca, (const char *)NULL);
	char line[512];
	assert_true(wait_line(d, "PORT ", 3000, line, sizeof(line)));
	char port[16];
	snprintf(port, sizeof(port), "%d", atoi(line + 5));
	struct child *u = spawn("chan_up", "--port", port, "--count", "300", "--tls-ca", ca,
	                        "--tls-cert", ccrt, "--tls-key", ckey, (const char *)NULL);
	assert_true(wait_line(u, "READY ", 5000, NULL, 0));
	assert_true(wait_line(u, "DONE ", 8000, NULL, 0));
	assert_int_equal(reap(u, 3000), 0);
	struct dstat s = {0};
	assert_true(wait_live(d, 300, 3000, &s));
	/* no client certificate: refused during the TLS handshake */
	struct child *u2 = spawn("chan_up", "--port", port, "--count", "10", "--prefix", "x",
	                         "--tls-ca", ca, "--once", (const char *)NULL);
	assert_true(line_before(u2, "READY ", "DOWN ", 5000));
	assert_int_equal(reap(u2, 3000), 3);
	/* plain WebSocket on the TLS port */
	struct child *u3 = spawn("chan_up", "--port", port, "--count", "10", "--prefix", "y",
	                         "--once", (const char *)NULL);
	assert_true(line_before(u3, "READY ", "DOWN ", 5000));
	assert_int_equal(reap(u3, 3000), 3);
	/* nothing of theirs applied */
	last_stat(d, 200, &s);
	assert_int_equal(s.live, 300);
	assert_int_equal(s.applies, 300);
	assert_int_equal(s.conns, 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(duplicated_and_reordered_frames_apply_once, teardown),
	    cmocka_unit_test_teardown(upstream_kill9_restart_converges_without_duplicates,
	                              teardown),
	    cmocka_unit_test_teardown(stale_upstream_is_fenced_after_restart, teardown),
	    cmocka_unit_test_teardown(downstream_restart_recovers_state, teardown),
	    cmocka_unit_test_teardown(reconnects_never_apply_twice, teardown),
	    cmocka_unit_test_teardown(garbage_and_oversize_peers_are_refused, teardown),
	    cmocka_unit_test_teardown(stuck_peer_backpressure_then_dead_peer, teardown),
	    cmocka_unit_test_teardown(mutual_tls_accepted_and_refused, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, remove_certs);
}
