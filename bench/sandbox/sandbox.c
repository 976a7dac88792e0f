/* bench/sandbox: per-sandbox start-up cost of plugins/runtime-process, with and without its pool
 * of pre-made network namespaces.
 *
 * Creates its own network namespace kdbp-<pid> with a bridge kdbbr0 (10.78.0.1/24; addresses only
 * inside namespaces this program creates, deleted at exit), loads kd-runtime-process.so through
 * the real loader (pointed at that bridge) and, for pool sizes 0 and --n, starts --n sandboxes
 * one after another, each running functions/hello with a TCP readiness probe on :8080. Per
 * sandbox it records the time from start() to STARTED (namespace + veth + address/routes +
 * fork/exec of the process: what the pool takes off the critical path) and to READY (the
 * process listens; probed every 5 ms), then stops them all. Prints p50/p99/mean/max per mode.
 * Needs root. Binary: <build>/bench/sandbox/sandbox; finds <build>/plugins and
 * <build>/functions/hello next to it unless --build-dir is given. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kd/config.h"
#include "kd/log.h"
#include "kd/loop.h"
#include "kd/plugin.h"
#include "kd/stage.h"

struct bench_cfg {
	uint64_t n;
	char *build_dir;
	uint64_t timeout_ms;
};

static const struct kd_config_option opts[] = {
    KD_OPT_UINT("n", struct bench_cfg, n, .def = "50", .has_min = true, .min = 1.0, .has_max = true,
                .max = 250.0, .help = "sandboxes per mode (at most 250)"),
    KD_OPT_STRING("build-dir", struct bench_cfg, build_dir, .metavar = "DIR",
                  .help = "build directory (default: two levels above this binary)"),
    KD_OPT_DURATION("timeout", struct bench_cfg, timeout_ms, .def = "10s",
                    .help = "longest wait for one sandbox event"),
    KD_CONFIG_END,
};

#define MAX_N 250

/* Event times per sandbox index (key "bench/sb-<i>"), recorded in the callback itself. */
static struct {
	uint64_t started_ns[MAX_N], ready_ns[MAX_N];
	bool failed[MAX_N];
	size_t n_exited;
} seen;

static void on_event(const struct kd_runtime_event *ev, void *arg)
{
	(void)arg;
	unsigned long i = strtoul(ev->key + strlen("bench/sb-"), NULL, 10);
	if (i >= MAX_N)
		return;
	uint64_t now = kd_now_ns();
	switch (ev->type) {
	case KD_RUNTIME_STARTED:
		seen.started_ns[i] = now;
		break;
	case KD_RUNTIME_READY:
		seen.ready_ns[i] = now;
		break;
	case KD_RUNTIME_FAILED:
		seen.failed[i] = true;
		fprintf(stderr, "sandbox %s failed: %s: %s\n", ev->key, ev->reason,
		        ev->message ? ev->message : "");
		seen.n_exited++;
		break;
	case KD_RUNTIME_EXITED:
		seen.n_exited++;
		break;
	}
}

static char ns_name[32];

static void delete_ns(void)
{
	if (!ns_name[0])
		return;
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", ns_name);
	if (system(cmd) != 0)
		fprintf(stderr, "could not delete netns %s\n", ns_name);
	ns_name[0] = '\0';
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *us, size_t n)
{
	qsort(us, n, sizeof(*us), cmp_u64);
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += us[i];
	size_t p50 = (n - 1) / 2, p99 = (n * 99 + 99) / 100 - 1;
	printf("  %-30s p50 %7.2f ms  p99 %7.2f ms  mean %7.2f ms  max %7.2f ms  (n=%zu)\n", what,
	       (double)us[p50] / 1000.0, (double)us[p99 < n ? p99 : n - 1] / 1000.0,
	       (double)sum / (double)n / 1000.0, (double)us[n - 1] / 1000.0, n);
}

/* Runs the loop until sandbox i is ready (or failed), at most timeout_ms. 0 or -errno. */
static int wait_ready(struct kd_loop *loop, size_t i, uint64_t timeout_ms)
{
	uint64_t deadline = kd_now_ns() + timeout_ms * 1000000ull;
	for (int k = 0; k < 1000000 && kd_now_ns() < deadline; k++) {
		if (seen.ready_ns[i])
			return 0;
		if (seen.failed[i])
			return -EIO;
		kd_loop_run_once(loop, 5);
	}
	return -ETIMEDOUT;
}

static int run_mode(struct kd_loop *loop, const struct kd_host *host, const struct bench_cfg *cfg,
                    uint64_t pool)
{
	char config[1024];
	snprintf(config, sizeof(config),
	         "{\"bridge\":\"kdbbr0\",\"bridge-netns\":\"/run/netns/%s\",\"pod-cidr\":"
	         "\"10.78.0.0/24\",\"routes\":[],\"veth-prefix\":\"kdbv\",\"pool-size\":\"%llu\","
	         "\"startup-probe-period\":\"5ms\",\"images\":\"{\\\"bench.local/hello\\\":"
	         "\\\"%s/functions/hello\\\"}\"}",
	         ns_name, (unsigned long long)pool, cfg->build_dir);
	struct kd_plugin_handle *h = NULL;
	struct kd_error *err = NULL;
	if (kd_plugin_load("runtime-process", KD_PLUGIN_RUNTIME, config, host, &h, &err) < 0) {
		fprintf(stderr, "load runtime-process: %s\n", kd_error_msg(err));
		kd_error_free(err);
		return -1;
	}
	const struct kd_runtime_ops *ops = kd_plugin_ops(h);
	memset(&seen, 0, sizeof(seen));
	void *rt = kd_plugin_state(h);
	if (pool) { /* let the pool fill (one namespace per iteration) until the loop is idle */
		uint64_t t0 = kd_now_ns();
		for (int i = 0; i < 100000 && kd_now_ns() - t0 < 30000000000ull; i++)
			if (kd_loop_run_once(loop, 50) == 0)
				break;
		printf("pool of %llu namespaces filled in %.1f ms\n", (unsigned long long)pool,
		       (double)(kd_now_ns() - t0) / 1e6 - 50.0);
	}
	size_t n = (size_t)cfg->n;
	uint64_t *started = kd_xcalloc(n, sizeof(*started));
	uint64_t *ready = kd_xcalloc(n, sizeof(*ready));
	int rc = 0;
	struct kd_env_var env = {.name = "FN_THREADS", .value = "1"};
	struct kd_container_port port = {.container_port = 8080};
	struct kd_container_spec c = {.name = "user-container",
	                              .image = "bench.local/hello",
	                              .env = &env,
	                              .n_env = 1,
	                              .ports = &port,
	                              .n_ports = 1,
	                              .readiness = {.type = KD_PROBE_TCP, .port = 8080}};
	char key[64];
	size_t done = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		snprintf(key, sizeof(key), "bench/sb-%zu", i);
		struct kd_sandbox_spec spec = {.key = key,
		                               .ns = "bench",
		                               .name = key + 6,
		                               .node = "bench",
		                               .containers = &c,
		                               .n_containers = 1};
		uint64_t t0 = kd_now_ns();
		if (ops->start(rt, &spec, on_event, NULL, &err) < 0) {
			fprintf(stderr, "start %s: %s\n", key, kd_error_msg(err));
			kd_error_free(err);
			rc = -1;
			break;
		}
		if (wait_ready(loop, i, cfg->timeout_ms) < 0 || !seen.started_ns[i]) {
			fprintf(stderr, "%s: not ready within the timeout\n", key);
			rc = -1;
			break;
		}
		started[i] = (seen.started_ns[i] - t0) / 1000;
		ready[i] = (seen.ready_ns[i] - t0) / 1000;
		done++;
	}
	printf("pool-size %llu:\n", (unsigned long long)pool);
	if (done) {
		report("start -> STARTED", started, done);
		report("start -> READY (TCP probe)", ready, done);
	}
	size_t stopping = 0;
	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "bench/sb-%zu", i);
		if (ops->stop(rt, key, 2000, NULL) == 0)
			stopping++;
	}
	uint64_t deadline = kd_now_ns() + 20000000000ull;
	for (int i = 0; i < 1000000 && seen.n_exited < stopping && kd_now_ns() < deadline; i++)
		kd_loop_run_once(loop, 5);
	if (seen.n_exited < stopping) {
		fprintf(stderr, "only %zu of %zu sandboxes exited\n", seen.n_exited, stopping);
		rc = -1;
	}
	kd_plugin_unload(h);
	free(started);
	free(ready);
	return rc;
}

int main(int argc, char **argv)
{
	struct bench_cfg cfg;
	struct kd_error *err = NULL;
	struct kd_config_cli cli = {.prog = "bench-sandbox",
	                            .summary =
	                                "runtime-process sandbox start-up cost, pool off/on"};
	int rc = kd_config_parse_argv(opts, &cfg, &cli, argc, argv, 0, NULL, &err);
	if (rc != 0) {
		if (rc < 0)
			fprintf(stderr, "%s\n", kd_error_msg(err));
		kd_error_free(err);
		kd_config_free(opts, &cfg);
		return rc < 0 ? 2 : 0;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "bench-sandbox: needs root (network namespaces)\n");
		kd_config_free(opts, &cfg);
		return 2;
	}
	if (!cfg.build_dir || !*cfg.build_dir) {
		char self[PATH_MAX];
		ssize_t l = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (l <= 0) {
			kd_config_free(opts, &cfg);
			return 2;
		}
		self[l] = '\0';
		free(cfg.build_dir);
		cfg.build_dir = kd_xstrdup(dirname(dirname(dirname(self))));
	}
	char plugdir[PATH_MAX];
	snprintf(plugdir, sizeof(plugdir), "%s/plugins", cfg.build_dir);
	setenv("KD_PLUGIN_DIR", plugdir, 1);
	kd_log_set_level(KD_LOG_WARN);

	snprintf(ns_name, sizeof(ns_name), "kdbp-%d", (int)getpid());
	atexit(delete_ns);
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
	         "ip netns add %s && ip -n %s link set lo up && ip -n %s link add kdbbr0 type "
	         "bridge && ip -n %s addr add 10.78.0.1/24 dev kdbbr0 && ip -n %s link set kdbbr0 "
	         "up",
	         ns_name, ns_name, ns_name, ns_name, ns_name);
	if (system(cmd) != 0) {
		fprintf(stderr, "bench-sandbox: cannot create netns %s\n", ns_name);
		kd_config_free(opts, &cfg);
		return 2;
	}
	struct kd_loop *loop = kd_loop_new();
	struct kd_host host;
	kd_host_init(&host, loop, "bench-sandbox");
	printf("runtime-process sandbox start-up, %llu sandboxes per mode, sequential, "
	       "functions/hello\n",
	       (unsigned long long)cfg.n);
	rc = run_mode(loop, &host, &cfg, 0);
	if (rc == 0)
		rc = run_mode(loop, &host, &cfg, cfg.n);
	kd_loop_free(loop);
	kd_config_free(opts, &cfg);
	delete_ns();
	return rc == 0 ? 0 : 1;
}
