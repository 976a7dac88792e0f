/* tests/unit/test_cli.c: the four components as an operator starts them (KD_BUILD_DIR/bin),
 * without a cluster: the kubeconfig points at 127.0.0.1:1, where nothing listens.
 *  - every listening socket of every component, taken beforehand: exit status 1 at once, with
 *    one ERROR line naming the address ("listen 127.0.0.1:N: Address already in use");
 *  - bad options (quantities, names, addresses, Knative's own class): exit 2 with one line
 *    "<prog>: ... (see --help)" and nothing started;
 *  - --version is "<prog> <version> (<commit>)" once; --help fits 80 columns and ends with the
 *    exit status line;
 *  - kd-node's admin server answers while kd-node waits for the API Server, and SIGTERM then
 *    exits 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kd/common.h"

#define RUN_TIMEOUT_MS 30000 /* generous: sanitizer builds start slower */

static char kubeconfig[64];

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int setup(void **state)
{
	(void)state;
	snprintf(kubeconfig, sizeof(kubeconfig), "/tmp/kd-test-cli-XXXXXX");
	int fd = mkstemp(kubeconfig);
	assert_true(fd >= 0);
	static const char kc[] = "apiVersion: v1\nkind: Config\n"
	                         "clusters:\n- name: c\n  cluster:\n"
	                         "    server: https://127.0.0.1:1\n"
	                         "    insecure-skip-tls-verify: true\n"
	                         "users:\n- name: u\n  user:\n    token: t\n"
	                         "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
	                         "current-context: x\n";
	assert_int_equal(write(fd, kc, sizeof(kc) - 1), (ssize_t)(sizeof(kc) - 1));
	close(fd);
	setenv("KD_PLUGIN_DIR", KD_BUILD_DIR "/plugins", 1);
	unsetenv("KUBECONFIG");
	unsetenv("KD_CHAN_TOKEN");
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(kubeconfig);
	return 0;
}

/* A started component: stdout and stderr on one pipe. */
struct proc {
	pid_t pid;
	int out_fd;
	char out[65536];
	size_t len;
};

/* Starts KD_BUILD_DIR/bin/<bin> with the NULL-terminated args (after argv[0]). */
static void start(struct proc *p, const char *bin, const char *const *args)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/bin/%s", KD_BUILD_DIR, bin);
	const char *argv[32] = {bin};
	size_t n = 1;
	for (; args[n - 1]; n++) {
		assert_true(n < KD_ARRAY_SIZE(argv) - 1);
		argv[n] = args[n - 1];
	}
	argv[n] = NULL;
	int pfd[2];
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	memset(p, 0, sizeof(*p));
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	p->out_fd = pfd[0];
}

/* Reads output for up to ms (until EOF when ms < 0, bounded by RUN_TIMEOUT_MS). */
static void drain(struct proc *p, int ms)
{
	uint64_t end = now_ms() + (uint64_t)(ms < 0 ? RUN_TIMEOUT_MS : ms);
	while (p->out_fd >= 0) {
		uint64_t now = now_ms();
		if (now >= end)
			return;
		struct pollfd pf = {.fd = p->out_fd, .events = POLLIN};
		if (poll(&pf, 1, (int)(end - now)) <= 0)
			continue;
		ssize_t r = read(p->out_fd, p->out + p->len, sizeof(p->out) - 1 - p->len);
		if (r <= 0) {
			close(p->out_fd);
			p->out_fd = -1;
			break;
		}
		p->len += (size_t)r;
		p->out[p->len] = '\0';
	}
}

/* Waits for the exit (killing it after RUN_TIMEOUT_MS: a failure); returns the exit status, or
 * 128 + signal. */
static int finish(struct proc *p)
{
	drain(p, -1);
	int st = 0;
	uint64_t end = now_ms() + RUN_TIMEOUT_MS;
	pid_t w;
	while ((w = waitpid(p->pid, &st, WNOHANG)) == 0 && now_ms() < end)
		usleep(10000);
	if (w == 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, &st, 0);
		fail_msg("still running after %d ms; output:\n%s", RUN_TIMEOUT_MS, p->out);
	}
	if (p->out_fd >= 0)
		close(p->out_fd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int run(struct proc *p, const char *bin, const char *const *args)
{
	start(p, bin, args);
	return finish(p);
}

/* Lines of s that contain needle. */
static unsigned count_lines_with(const char *s, const char *needle)
{
	unsigned n = 0;
	for (const char *l = s; *l;) {
		const char *nl = strchr(l, '\n');
		size_t len = nl ? (size_t)(nl - l) : strlen(l);
		const char *hit = strstr(l, needle);
		n += hit && (size_t)(hit - l) < len;
		if (!nl)
			break;
		l = nl + 1;
	}
	return n;
}

/* A socket listening on 127.0.0.1:<ephemeral> (held by the test), its port in *port. */
static int hold_port(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 1), 0);
	socklen_t sl = sizeof(sa);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* One listening socket of one component. "%d" in args is the taken port. */

/* arg with its "%d" (if any) replaced by port, into buf. */
static const char *with_port(char *buf, size_t cap, const char *arg, int port)
{
	const char *pct = strstr(arg, "%d");
	if (!pct)
		snprintf(buf, cap, "%s", arg);
	else
		snprintf(buf, cap, "%.*s%d%s", (int)(pct - arg), arg, port, pct + 2);
	return buf;
}
struct taken {
	const char *bin;
	const char *what;
	const char *args[8];
};

static const struct taken taken_cases[] = {
    {"kd-autoscaler",
     "stats port",
     {"--stats-bind=127.0.0.1", "--stats-port=%d", "--status-port=0", NULL}},
    {"kd-autoscaler",
     "status port",
     {"--status-bind=127.0.0.1", "--status-port=%d", "--stats-port=0", NULL}},
    {"kd-autoscaler",
     "admin port",
     {"--admin-bind=127.0.0.1", "--admin-port=%d", "--stats-port=0", "--status-port=0", NULL}},
    {"kd-node", "direct port", {"--direct", "--direct-bind=127.0.0.1", "--direct-port=%d", NULL}},
    {"kd-node", "admin port", {"--admin-bind=127.0.0.1", "--admin-port=%d", NULL}},
    {"kd-node",
     "admin port (direct mode)",
     {"--direct", "--direct-port=0", "--admin-bind=127.0.0.1", "--admin-port=%d", NULL}},
    {"kd-activator",
     "data port",
     {"--bind=127.0.0.1", "--port=%d", "--admin-port=0", "--status-port=0", NULL}},
    {"kd-activator",
     "admin port",
     {"--admin-bind=127.0.0.1", "--admin-port=%d", "--port=0", "--status-port=0", NULL}},
    {"kd-activator",
     "status port",
     {"--status-bind=127.0.0.1", "--status-port=%d", "--port=0", "--admin-port=0", NULL}},
    {"kd-gateway",
     "data port",
     {"--public-ip=127.0.0.1", "--bind=127.0.0.1", "--port=%d", "--admin-port=0", NULL}},
    {"kd-gateway",
     "admin port",
     {"--public-ip=127.0.0.1", "--port=0", "--admin-bind=127.0.0.1", "--admin-port=%d", NULL}},
};

static void taken_port_exits_1_naming_the_address(void **state)
{
	(void)state;
	for (size_t i = 0; i < KD_ARRAY_SIZE(taken_cases); i++) {
		const struct taken *c = &taken_cases[i];
		int port;
		int fd = hold_port(&port);
		char kc[128], bufs[8][64];
		snprintf(kc, sizeof(kc), "--kubeconfig=%s", kubeconfig);
		const char *args[12] = {kc};
		size_t n = 1;
		for (size_t k = 0; c->args[k]; k++, n++) {
			args[n] = with_port(bufs[k], sizeof(bufs[k]), c->args[k], port);
		}
		args[n] = NULL;
		struct proc p;
		uint64_t t0 = now_ms();
		int rc = run(&p, c->bin, args);
		uint64_t took = now_ms() - t0;
		close(fd);
		char want[96];
		snprintf(want, sizeof(want), "listen 127.0.0.1:%d: Address already in use", port);
		if (rc != 1 || count_lines_with(p.out, want) != 1 ||
		    count_lines_with(p.out, " ERROR ") != 1)
			fail_msg("%s %s taken: exit %d (want 1), want one ERROR line with \"%s\"; "
			         "output:\n%s",
			         c->bin, c->what, rc, want, p.out);
		/* at once: no wait for the API Server first */
		if (took > 10000)
			fail_msg("%s %s taken: exit after %llu ms", c->bin, c->what,
			         (unsigned long long)took);
	}
}

struct bad {
	const char *bin;
	const char *arg;
	const char *msg;     /* the whole stderr line after "<bin>: " */
	const char *more[2]; /* further arguments, or NULL */
};

static const struct bad bad_cases[] = {
    {"kd-node", "--cpu=lots", "--cpu: \"lots\" is not a Kubernetes quantity (e.g. 500m, 2, 1.5)"},
    {"kd-node", "--memory=12XB",
     "--memory: \"12XB\" is not a Kubernetes quantity (e.g. 512Mi, 128Gi, 1G)"},
    {"kd-node", "--memory=-1Gi",
     "--memory: \"-1Gi\" is not a Kubernetes quantity (e.g. 512Mi, 128Gi, 1G)"},
    {"kd-node", "--status-addr=127.0.0.1", "--status-addr \"127.0.0.1\": expected host:port"},
    {"kd-node", "--status-addr=127.0.0.1:9471,kd-as:0",
     "--status-addr \"kd-as:0\": bad port (1-65535)"},
    {"kd-node", "--direct-addr=10.0.0.1:99999",
     "--direct-addr \"10.0.0.1:99999\": bad port (1-65535)"},
    {"kd-node", "--direct-bind=localhost", "--direct-bind: \"localhost\" is not an IPv4 address"},
    {"kd-node", "--node-prefix=KD",
     "--node-prefix (node name): \"KD-0\" is not a DNS-1123 subdomain: has a character outside "
     "[a-z0-9.-]"},
    {"kd-node", "--direct-port=65536", "--direct-port: 65536 is above the maximum 65535"},
    {"kd-node", "--attach-node=kd-n1",
     "--attach-node kd-n1: kd-node serves only kubedirect instances on an attached Node (its "
     "kubelet runs every other Pod): add --direct"},
    {"kd-node", "--attach-node=KD",
     "--attach-node: \"KD\" is not a DNS-1123 subdomain: has a "
     "character outside [a-z0-9.-]"},
    {"kd-node",
     "--attach-node=kd-n1",
     "--max-pods describes Nodes kd-node registers itself; it cannot be combined with "
     "--attach-node kd-n1 (that Node is its kubelet's)",
     {"--direct", "--max-pods=10"}},
    {"kd-node",
     "--attach-node=kd-n1",
     "--lease-interval describes Nodes kd-node registers itself; it cannot be combined with "
     "--attach-node kd-n1 (that Node is its kubelet's)",
     {"--direct", "--lease-interval=5s"}},
    {"kd-autoscaler", "--class=kpa.autoscaling.knative.dev",
     "--class: \"kpa.autoscaling.knative.dev\" is Knative's own class (its autoscaler "
     "reconciles those PodAutoscalers); use kd.kubedirect.dev or another class of ours"},
    {"kd-autoscaler", "--class=hpa.autoscaling.knative.dev",
     "--class: \"hpa.autoscaling.knative.dev\" is Knative's own class (its autoscaler "
     "reconciles those PodAutoscalers); use kd.kubedirect.dev or another class of ours"},
    {"kd-autoscaler", "--namespace=Default",
     "--namespace: \"Default\" is not a DNS-1123 label: has a character outside [a-z0-9-]"},
    {"kd-autoscaler", "--stats-bind=::1", "--stats-bind: \"::1\" is not an IPv4 address"},
    {"kd-autoscaler", "--activator-ips=10.0.0.1,gw",
     "--activator-ips: \"gw\" is not an IPv4 or IPv6 address"},
    {"kd-activator", "--namespace=a.b",
     "--namespace: \"a.b\" is not a DNS-1123 label: has a character outside [a-z0-9-]"},
    {"kd-activator", "--autoscaler=kd-autoscaler",
     "--autoscaler \"kd-autoscaler\": expected host:port"},
    {"kd-activator", "--status-port=70000", "--status-port: 70000 is above the maximum 65535"},
    {"kd-gateway", "--public-ip=gateway",
     "--public-ip: \"gateway\" is not an IPv4 or IPv6 address"},
};

static void bad_option_exits_2_with_one_line(void **state)
{
	(void)state;
	for (size_t i = 0; i < KD_ARRAY_SIZE(bad_cases); i++) {
		const struct bad *c = &bad_cases[i];
		char kc[128];
		snprintf(kc, sizeof(kc), "--kubeconfig=%s", kubeconfig);
		bool gw = strcmp(c->bin, "kd-gateway") == 0 && strncmp(c->arg, "--public-ip", 11);
		const char *args[] = {kc, c->arg, gw ? "--public-ip=127.0.0.1" : c->more[0],
		                      gw ? NULL : c->more[1], NULL};
		struct proc p;
		int rc = run(&p, c->bin, args);
		char want[512];
		snprintf(want, sizeof(want), "%s: %s (see --help)\n", c->bin, c->msg);
		if (rc != 2 || strcmp(p.out, want) != 0)
			fail_msg("%s %s: exit %d (want 2), output:\n%s\nwant:\n%s", c->bin, c->arg,
			         rc, p.out, want);
	}
}

static const char *const bins[] = {"kd-autoscaler", "kd-node", "kd-activator", "kd-gateway"};

static void version_once_and_help_in_80_columns(void **state)
{
	(void)state;
	for (size_t i = 0; i < KD_ARRAY_SIZE(bins); i++) {
		struct proc p;
		const char *vargs[] = {"--version", NULL};
		assert_int_equal(run(&p, bins[i], vargs), 0);
		char prog[64], ver[64], commit[64], extra[8];
		int n = sscanf(p.out, "%63s %63s (%63[^)])%7s", prog, ver, commit, extra);
		if (n != 3 || strcmp(prog, bins[i]) != 0 || count_lines_with(p.out, "") != 1)
			fail_msg("%s --version: \"%s\"", bins[i], p.out);
		assert_string_equal(ver, "0.1.0");
		assert_null(strstr(p.out + strlen(prog), bins[i])); /* the name once */
		bool hex = strlen(commit) >= 4;
		for (const char *c = commit; *c; c++)
			hex = hex && ((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'));
		if (!hex && strcmp(commit, "unknown") != 0)
			fail_msg("%s --version: commit \"%s\"", bins[i], commit);

		const char *hargs[] = {"--help", NULL};
		assert_int_equal(run(&p, bins[i], hargs), 0);
		for (const char *l = p.out; *l;) {
			const char *nl = strchr(l, '\n');
			assert_non_null(nl);
			if (nl - l > 80)
				fail_msg("%s --help: a line of %d columns: %.*s", bins[i],
				         (int)(nl - l), (int)(nl - l), l);
			l = nl + 1;
		}
		static const char footer[] = "\nExit status: 0 on success, 1 on a runtime failure, "
		                             "2 on bad options (usage).\n";
		assert_true(p.len > sizeof(footer));
		assert_string_equal(p.out + p.len - (sizeof(footer) - 1), footer);
	}
}

/* Status code of GET path on 127.0.0.1:port (0 when nothing answers); the body into body. */
static int http_get(int port, const char *path, char *body, size_t cap)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return 0;
	}
	char req[256];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	assert_int_equal(write(fd, req, (size_t)n), n);
	char buf[65536];
	size_t len = 0;
	ssize_t r;
	while (len < sizeof(buf) - 1 && (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)r;
	buf[len] = '\0';
	close(fd);
	int code = 0;
	if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1)
		return 0;
	const char *b = strstr(buf, "\r\n\r\n");
	snprintf(body, cap, "%s", b ? b + 4 : "");
	return code;
}

static void node_admin_answers_while_waiting_for_the_api_server(void **state)
{
	(void)state;
	int port;
	int fd = hold_port(&port);
	close(fd); /* free again: kd-node takes it (a race with another process is unlikely) */
	char kc[128], ap[64];
	snprintf(kc, sizeof(kc), "--kubeconfig=%s", kubeconfig);
	snprintf(ap, sizeof(ap), "--admin-port=%d", port);
	const char *args[] = {kc, "--direct", "--direct-port=0", "--admin-bind=127.0.0.1",
	                      ap, NULL};
	struct proc p;
	start(&p, "kd-node", args);
	char body[65536];
	int code = 0;
	for (uint64_t end = now_ms() + RUN_TIMEOUT_MS; code == 0 && now_ms() < end;) {
		drain(&p, 50);
		code = http_get(port, "/healthz", body, sizeof(body));
	}
	assert_int_equal(code, 200);
	assert_string_equal(body, "ok\n");
	assert_int_equal(http_get(port, "/readyz", body, sizeof(body)), 503);
	assert_string_equal(body, "not ready: waiting for the API Server\n");
	assert_int_equal(http_get(port, "/metrics", body, sizeof(body)), 200);
	assert_non_null(strstr(body, "\nkd_node_nodes{state=\"down\"} 1\n"));
	assert_non_null(
	    strstr(body, "kd_node_api_responses_total{client=\"main\",code=\"error\"} "));
	assert_int_equal(http_get(port, "/nope", body, sizeof(body)), 404);
	drain(&p, 100);
	assert_non_null(strstr(p.out, "waiting for API Server https://127.0.0.1:1"));
	kill(p.pid, SIGTERM);
	int rc = finish(&p);
	if (rc != 0)
		fail_msg("kd-node after SIGTERM while waiting: exit %d; output:\n%s", rc, p.out);
	assert_non_null(strstr(p.out, "stopped by a signal before the API Server was reachable"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(taken_port_exits_1_naming_the_address),
	    cmocka_unit_test(bad_option_exits_2_with_one_line),
	    cmocka_unit_test(version_once_and_help_in_80_columns),
	    cmocka_unit_test(node_admin_answers_while_waiting_for_the_api_server),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
