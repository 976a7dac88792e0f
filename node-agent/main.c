/* node-agent/main.c: kd-node entry point: options (--help generated from the table), logging,
 * Kubernetes clients, the runtime plugin, then nodes.c and pods.c on one kd_loop until SIGINT or
 * SIGTERM. Exit status: 0 after a signal (or --help, --version), 2 on bad options (checked
 * before anything starts: quantities, CIDRs, node names, addresses), 1 on a runtime failure
 * (unusable kubeconfig, a runtime plugin the loader refuses, a listening port taken: its
 * message is printed, the loop failing).
 *
 * An unreachable API Server at start is not fatal: kd-node waits, retrying with jittered
 * backoff and saying so on every attempt, until the namespace kube-node-lease can be read. The
 * listening ports are checked before that wait, and the admin server answers during it. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "agent.h"
#include "direct.h"
#include "kd/check.h"
#include "kd/json.h"
#include "kd/log.h"

#define KD_NODE_VERSION "0.1.0"

#define C struct kd_node_cfg
static const struct kd_config_option options[] = {
    KD_OPT_KUBECONFIG(C, kubeconfig, context),
    KD_OPT_STRING("attach-node", C, attach_node, .env = "KD_NODE_NAME", .metavar = "NAME",
                  .help = "attach to the existing Node NAME, whose real kubelet runs its Pods "
                          "(a DaemonSet pod per node: --attach-node $(NODE_NAME)): register, "
                          "heartbeat and create no Node, only publish the instance channel on "
                          "NAME; needs --direct and a runtime that hands Pods to the kubelet "
                          "(runtime-kubelet); the Node options (--nodes to --status-interval) do "
                          "not apply"),
    KD_OPT_UINT("nodes", C, nodes, .def = "1", .has_min = true, .min = 1, .has_max = true,
                .max = 65536, .help = "number of Nodes this process registers and serves"),
    KD_OPT_STRING("node-prefix", C, node_prefix, .def = "kd-node", .required = true,
                  .help = "node names are <prefix>-<index>"),
    KD_OPT_UINT("node-index-base", C, node_index_base, .def = "0",
                .help = "index of the first node (names, pod CIDR slot and node IP); lets "
                        "several kd-node processes share one --pod-cidr"),
    KD_OPT_STRING("pod-cidr", C, pod_cidr, .def = "10.244.0.0/16", .metavar = "CIDR",
                  .help = "IPv4 range split into one podCIDR per node"),
    KD_OPT_UINT("node-cidr-prefix", C, node_cidr_prefix, .def = "24", .has_min = true, .min = 8,
                .has_max = true, .max = 30, .help = "prefix length of each node's podCIDR"),
    KD_OPT_STRING("node-ip-cidr", C, node_ip_cidr, .def = "172.31.0.0/16", .metavar = "CIDR",
                  .help = "IPv4 range of node InternalIPs (node i gets host address i+1)"),
    KD_OPT_STRING("cpu", C, cpu, .def = "32", .metavar = "QUANTITY",
                  .help = "capacity and allocatable cpu of each node"),
    KD_OPT_STRING("memory", C, memory, .def = "128Gi", .metavar = "QUANTITY",
                  .help = "capacity and allocatable memory of each node"),
    KD_OPT_UINT("max-pods", C, max_pods, .def = "110", .has_min = true, .min = 1, .has_max = true,
                .max = 100000, .help = "pods capacity of each node"),
    KD_OPT_STRING("kubelet-version", C, kubelet_version, .def = KD_NODE_DEFAULT_KUBELET_VER,
                  .help = "nodeInfo.kubeletVersion (match the cluster's version)"),
    KD_OPT_STRING("runtime", C, runtime, .def = "runtime-sim", .metavar = "PLUGIN",
                  .help = "runtime plugin: a name (kd-<name>.so in $KD_PLUGIN_DIR) or a path"),
    KD_OPT_STRING("runtime-config", C, runtime_config, .metavar = "JSON",
                  .help = "runtime plugin configuration, a JSON object"),
    KD_OPT_DURATION("lease-interval", C, lease_interval_ms, .def = "10s", .has_min = true,
                    .min = 100, .has_max = true, .max = 30000,
                    .help = "node Lease renewal period (lease duration is 40s)"),
    KD_OPT_DURATION("status-interval", C, status_interval_ms, .def = "60s", .has_min = true,
                    .min = 1000, .has_max = true, .max = 300000,
                    .help = "period of Node status updates (Ready heartbeat)"),
    KD_OPT_DOUBLE("status-qps", C, status_qps, .def = "50", .has_min = true, .min = 0,
                  .help = "client-side QPS of pod status writes and deletes per node, as each "
                          "kubelet has (kubelet default 50); the process limit is this times "
                          "--nodes (0: unlimited)"),
    KD_OPT_UINT("status-burst", C, status_burst, .def = "100",
                .help = "burst of pod status writes and deletes per node (times --nodes)"),
    KD_OPT_DURATION("restart-backoff", C, restart_backoff_ms, .def = "1s", .has_min = true,
                    .min = 10,
                    .help = "first delay before restarting a failed sandbox "
                            "(doubles, capped at 5m)"),
    KD_OPT_BOOL("direct", C, direct,
                .help = "direct mode: also accept instances bound by kd-autoscaler over the "
                        "instance channel (kd/instance.h), start them at once and write them "
                        "back"),
    KD_OPT_STRING("direct-bind", C, direct_bind, .def = "127.0.0.1", .metavar = "ADDR",
                  .help = "listen address of the instance channel (direct mode)"),
    KD_OPT_UINT("direct-port", C, direct_port, .def = "9470", .has_max = true, .max = 65535,
                .help = "port of the instance channel (0: any free port)"),
    KD_OPT_STRING("direct-addr", C, direct_addr, .metavar = "HOST:PORT",
                  .help = "instance channel address published on the Nodes (annotation "
                          "kubedirect.dev/channel-addr; default: bind:port)"),
    KD_OPT_STRING("status-addr", C, status_addr, .def = "127.0.0.1:9471", .metavar = "HOST:PORT",
                  .help = "kd-autoscaler's status channel, where readiness is reported (a "
                          "comma-separated list reports to each, e.g. a benchmark) "
                          "(direct mode)"),
    KD_OPT_STRING("chan-token", C, chan_token, .env = "KD_CHAN_TOKEN", .metavar = "TOKEN",
                  .help = "bearer token of the instance and status channels (default: none)"),
    KD_OPT_BOOL("insecure-channels", C, insecure_channels,
                .help = "run the channels without --chan-token inside a Kubernetes Pod "
                        "(refused by default there)"),
    KD_OPT_DOUBLE("direct-write-qps", C, direct_write_qps, .def = "0", .has_min = true, .min = 0,
                  .help = "client-side QPS of the write-back of instance Pods: creates and their "
                          "status patches (0: unlimited)"),
    KD_OPT_UINT("direct-write-burst", C, direct_write_burst, .def = "1000",
                .help = "burst of the write-back of instance Pods"),
    KD_OPT_STRING("admin-bind", C, admin_bind, .def = "0.0.0.0", .metavar = "ADDR",
                  .help = "address of /healthz, /readyz and /metrics"),
    KD_OPT_UINT("admin-port", C, admin_port, .def = "0", .has_max = true, .max = 65535,
                .help = "port of /healthz, /readyz and /metrics (0: no admin server)"),
    KD_OPT_LOGGING(C, log_level, log_format),
    KD_CONFIG_END,
};
#undef C

static const struct kd_k8s_resource namespaces_res = {
    .group = "", .version = "v1", .resource = "namespaces", .namespaced = false};

/* Options checked as a whole before anything starts (kd_config_cli.check; a refusal exits 2):
 * what would otherwise fail only after the API Server answered, or never (a quantity the API
 * Server refuses in every Node status). */
/* The options that describe Nodes kd-node registers itself: refused with --attach-node when
 * set to anything but their defaults. */
static const char *const own_node_options[] = {
    "nodes",
    "node-prefix",
    "node-index-base",
    "pod-cidr",
    "node-cidr-prefix",
    "node-ip-cidr",
    "cpu",
    "memory",
    "max-pods",
    "kubelet-version",
    "lease-interval",
    "status-interval",
};

/* The first option of own_node_options whose value in c is not its default, or NULL. */
static const char *own_node_option_set(const struct kd_node_cfg *c)
{
	struct kd_node_cfg def;
	memset(&def, 0, sizeof(def));
	const char *found = NULL;
	if (kd_config_defaults(options, &def, NULL) < 0)
		return NULL;
	for (size_t i = 0; i < KD_ARRAY_SIZE(own_node_options) && !found; i++) {
		const struct kd_config_option *o = kd_config_find(options, own_node_options[i]);
		const void *x = (const char *)c + o->offset, *y = (const char *)&def + o->offset;
		if (o->type == KD_CONFIG_STRING) {
			const char *sx = *(char *const *)x, *sy = *(char *const *)y;
			if (strcmp(sx ? sx : "", sy ? sy : "") != 0)
				found = o->key;
		} else if (memcmp(x, y, sizeof(uint64_t)) != 0) { /* uint and duration fields */
			found = o->key;
		}
	}
	kd_config_free(options, &def);
	return found;
}

/* --attach-node: a DNS-1123 name, direct mode, none of the own-Node options. */
static int check_attach(const struct kd_node_cfg *c, struct kd_error **err)
{
	if (kd_check_dns_subdomain("--attach-node", c->attach_node, err) < 0)
		return -EINVAL;
	if (!c->direct)
		return kd_error_set(
		    err, EINVAL, 0,
		    "--attach-node %s: kd-node serves only kubedirect instances on an "
		    "attached Node (its kubelet runs every other Pod): add --direct",
		    c->attach_node);
	const char *own = own_node_option_set(c);
	if (own)
		return kd_error_set(err, EINVAL, 0,
		                    "--%s describes Nodes kd-node registers itself; it cannot be "
		                    "combined with --attach-node %s (that Node is its kubelet's)",
		                    own, c->attach_node);
	return 0;
}

static int check_options(void *p, struct kd_error **err)
{
	const struct kd_node_cfg *c = p;
	int rc;
	if (c->attach_node && *c->attach_node) {
		if ((rc = check_attach(c, err)) < 0)
			return rc;
	} else if ((rc = kd_check_quantity("--cpu", c->cpu, true, NULL, err)) < 0 ||
	           (rc = kd_check_quantity("--memory", c->memory, false, NULL, err)) < 0 ||
	           (rc = kd_node_nodes_check(c, err)) < 0)
		return rc;
	/* the instance channel is libwebsockets (IPv4 here), the admin server lib/http */
	if (kd_check_ip("--direct-bind", c->direct_bind, true, err) < 0 ||
	    kd_check_ip("--admin-bind", c->admin_bind, false, err) < 0)
		return -EINVAL;
	if (c->direct &&
	    kd_check_chan_token(c->chan_token, kd_in_pod(), c->insecure_channels, err) < 0)
		return -EINVAL;
	if (c->direct_addr && *c->direct_addr &&
	    kd_hostport_parse("--direct-addr", c->direct_addr, NULL, NULL, err) < 0)
		return -EINVAL;
	if (c->status_addr && *c->status_addr) {
		kd_autofree char *copy = kd_xstrdup(c->status_addr);
		char *save = NULL;
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
			if (kd_hostport_parse("--status-addr", t, NULL, NULL, err) < 0)
				return -EINVAL;
	}
	return 0;
}

static void on_wait_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)t;
	(void)arg;
	kd_loop_stop(loop);
}

/* Waits until the API Server answers GET namespaces/kube-node-lease, running the loop between
 * attempts (the admin server answers, a signal stops the wait). 0, or -EINTR on a signal. */
static int wait_for_api_server(struct kd_node_agent *a)
{
	struct kd_timer *t = kd_loop_timer_new(a->loop, on_wait_timer, NULL);
	int rc = 0;
	for (unsigned attempt = 0;; attempt++) {
		kd_autoerr struct kd_error *err = NULL;
		if (kd_k8s_get(a->k8s, &namespaces_res, NULL, KD_NODE_LEASE_NAMESPACE, NULL,
		               &err) == 0) {
			if (attempt)
				kd_log_info("API Server %s is up (after %u retries)", a->server,
				            attempt);
			break;
		}
		uint64_t ms = kd_backoff_ms(attempt, 500, 10000);
		const char *why = err->errnum == ENOENT
		                      ? "namespace kube-node-lease does not exist yet"
		                  : err->http_status ? "API Server answered with an error"
		                                     : "API Server unreachable";
		kd_log_warn("waiting for API Server %s: %s: %s; retrying in %llu ms (attempt %u)",
		            a->server, why, kd_error_msg(err), (unsigned long long)ms, attempt + 1);
		kd_loop_timer_start(t, ms);
		if (!a->stopping)
			kd_loop_run(a->loop);
		if (a->stopping) {
			rc = -EINTR;
			break;
		}
	}
	kd_loop_timer_free(t);
	return rc;
}

static void on_signalfd(struct kd_loop *loop, int fd, unsigned events, void *arg)
{
	(void)events;
	struct kd_node_agent *a = arg;
	struct signalfd_siginfo si;
	if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		kd_log_info("received signal %u, stopping", si.ssi_signo);
		a->stopping = true; /* nothing new is started in the loop's last iteration */
		kd_loop_stop(loop);
	}
}

static void on_stats_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	struct kd_node_agent *a = arg;
	static uint64_t last;
	uint64_t sum = a->n_started + a->n_ready_patched + a->n_deleted + a->n_failed;
	if (sum != last) {
		unsigned up = 0;
		for (uint64_t i = 0; i < a->cfg->nodes; i++)
			up += a->nodes[i].registered && a->nodes[i].lease_ok;
		kd_log_info("nodes %u/%" PRIu64 " up; pods: %zu tracked, %" PRIu64
		            " sandboxes started, %" PRIu64 " ready, %" PRIu64 " deleted, %" PRIu64
		            " failed, %" PRIu64 " patch errors",
		            up, a->cfg->nodes, a->pods.n, a->n_started, a->n_ready_patched,
		            a->n_deleted, a->n_failed, a->n_patch_errors);
		last = sum;
		kd_node_direct_log_stats(a);
	}
	kd_loop_timer_start(t, 10000);
}

int main(int argc, char **argv)
{
	struct kd_node_cfg cfg;
	memset(&cfg, 0, sizeof(cfg));
	struct kd_config_cli cli = {
	    .prog = "kd-node",
	    .summary = "kubedirect node agent: registers Nodes, keeps them Ready and runs the pods "
	               "bound to them through a runtime plugin (kubelet-compatible mode)",
	    .version = KD_NODE_VERSION,
	    .commit = KD_GIT_COMMIT,
	    .check = check_options,
	    .log_level = &cfg.log_level,
	    .log_format = &cfg.log_format,
	    .ignore_sigpipe = false,
	    .config_dir = true,
	};
	int rc = kd_config_main(options, &cfg, &cli, argc, argv);
	if (rc >= 0)
		return rc;
	kd_autoerr struct kd_error *err = NULL;

	int status = 1;
	struct kd_node_agent a;
	memset(&a, 0, sizeof(a));
	a.cfg = &cfg;
	struct kd_k8s_config *kcfg = NULL;
	int sfd = -1;
	struct kd_timer *stats = NULL;

	a.loop = kd_loop_new();
	if (!a.loop) {
		kd_log_error("cannot create the event loop: %s", strerror(errno));
		goto out;
	}
	if (kd_node_nodes_init(&a, &err) < 0) {
		kd_log_error("%s", kd_error_msg(err));
		goto out;
	}
	if (cfg.kubeconfig && *cfg.kubeconfig)
		rc = kd_k8s_config_from_kubeconfig(cfg.kubeconfig, cfg.context, &kcfg, &err);
	else
		rc = kd_k8s_config_auto(&kcfg, &err);
	if (rc < 0) {
		kd_log_error("Kubernetes configuration: %s", kd_error_msg(err));
		goto out;
	}
	a.server = kcfg->server;
	struct kd_k8s_opts opts = {.user_agent = "kd-node/" KD_NODE_VERSION};
	if (kd_k8s_new(kcfg, a.loop, &opts, &a.k8s, &err) < 0) {
		kd_log_error("Kubernetes client: %s", kd_error_msg(err));
		goto out;
	}
	struct kd_k8s_opts popts = {
	    .user_agent = "kd-node/" KD_NODE_VERSION " (pods)",
	    .qps = cfg.status_qps * (double)cfg.nodes,
	    .burst = (unsigned)KD_MIN(cfg.status_burst * cfg.nodes, 1000000u),
	};
	if (kd_k8s_new(kcfg, a.loop, &popts, &a.k8s_pods, &err) < 0) {
		kd_log_error("Kubernetes client: %s", kd_error_msg(err));
		goto out;
	}
	/* open the write-back's connections now, not in the first burst (kd/k8s.h) */
	if (kd_k8s_warm(a.k8s, 8, &err) < 0 || kd_k8s_warm(a.k8s_pods, 4, &err) < 0) {
		kd_log_error("Kubernetes client: %s", kd_error_msg(err));
		goto out;
	}

	kd_host_init(&a.host, a.loop, "kd-node");
	a.host.k8s = a.k8s;
	if (kd_plugin_load(cfg.runtime, KD_PLUGIN_RUNTIME, cfg.runtime_config, &a.host, &a.runtime,
	                   &err) < 0) {
		kd_log_error("runtime plugin: %s", kd_error_msg(err));
		goto out;
	}
	a.rt = kd_plugin_ops(a.runtime);
	a.rt_state = kd_plugin_state(a.runtime);
	a.runtime_name = kd_plugin_name(a.runtime);
	a.runtime_version = kd_xasprintf("%s://%s", a.runtime_name, KD_NODE_VERSION);
	kd_log_info("runtime plugin %s loaded from %s", a.runtime_name, kd_plugin_path(a.runtime));
	a.rt_owns_pod = KD_HAS_MEMBER(a.rt, struct kd_runtime_ops, caps) &&
	                (a.rt->caps & KD_RUNTIME_CAP_OWNS_POD);
	bool attach = cfg.attach_node && *cfg.attach_node;
	if (attach != a.rt_owns_pod) {
		/* an option combination, refused as kd_config_main refuses one (exit 2) */
		if (attach)
			fprintf(
			    stderr,
			    "kd-node: --attach-node %s: runtime plugin %s runs sandboxes itself, "
			    "so the Node's kubelet would run every instance a second time; use a "
			    "runtime that hands Pods to the kubelet (runtime-kubelet) (see "
			    "--help)\n",
			    cfg.attach_node, a.runtime_name);
		else
			fprintf(
			    stderr,
			    "kd-node: --runtime %s hands Pods to a Node's real kubelet: it needs "
			    "--attach-node NAME (see --help)\n",
			    a.runtime_name);
		status = 2;
		goto out;
	}

	/* signals: a signalfd on the loop from here on, the wait for the API Server included */
	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0 || kd_loop_add_fd(a.loop, sfd, KD_LOOP_IN, on_signalfd, &a) < 0) {
		kd_log_error("signalfd: %s", strerror(errno));
		goto out;
	}
	/* The listening addresses before the wait: a taken port is a permanent error that must
	 * fail now, not after the API Server answered. The instance channel is probed (bound
	 * when direct mode starts), the admin server listens from here on. */
	if (cfg.direct && kd_listen_probe(cfg.direct_bind, (int)cfg.direct_port, &err) < 0) {
		kd_log_error("instance channel: %s", kd_error_msg(err));
		goto out;
	}
	if (kd_node_admin_start(&a, &err) < 0) {
		kd_log_error("%s", kd_error_msg(err));
		goto out;
	}
	if (wait_for_api_server(&a) < 0) {
		kd_log_info("stopped by a signal before the API Server was reachable");
		status = 0;
		goto out;
	}
	a.api_ok = true;
	if (attach && (rc = kd_node_nodes_attach(&a, &err)) < 0) {
		if (rc == -EINTR) {
			kd_log_info("stopped by a signal before the Node was read");
			status = 0;
		} else {
			kd_log_error("%s", kd_error_msg(err));
		}
		goto out;
	}

	if (kd_node_pods_init(&a, &err) < 0) {
		kd_log_error("%s", kd_error_msg(err));
		goto out;
	}
	if (cfg.direct && kd_node_direct_new(&a, kcfg, &err) < 0) {
		kd_log_error("direct mode: %s", kd_error_msg(err));
		goto out;
	}
	if (attach)
		kd_log_info("serving the kubedirect instances of node %s through its kubelet "
		            "(runtime %s) via %s",
		            cfg.attach_node, a.runtime_name, a.server);
	else
		kd_log_info("serving %" PRIu64 " nodes %s-%" PRIu64 "..%s-%" PRIu64
		            " (pods %s, /%" PRIu64 " per node, max %" PRIu64 " pods each) via %s",
		            cfg.nodes, cfg.node_prefix, cfg.node_index_base, cfg.node_prefix,
		            cfg.node_index_base + cfg.nodes - 1, cfg.pod_cidr, cfg.node_cidr_prefix,
		            cfg.max_pods, a.server);
	kd_node_nodes_start(&a);
	kd_node_pods_start(&a);
	kd_node_direct_start(&a);
	stats = kd_loop_timer_new(a.loop, on_stats_timer, &a);
	kd_loop_timer_start(stats, 10000);

	status = kd_loop_run_main(a.loop);
	if (status == 0)
		kd_node_nodes_detach(&a); /* a clean stop: the Node no longer leads to us */

out:
	a.stopping = true;
	kd_node_admin_stop(&a);
	if (a.pods_inf) {
		kd_informer_free(a.pods_inf);
		a.pods_inf = NULL;
	}
	kd_node_direct_free(&a);
	/* pending calls complete with ECANCELED inside kd_k8s_free; entries are still alive */
	kd_k8s_free(a.k8s_pods);
	kd_k8s_free(a.k8s);
	kd_plugin_unload(a.runtime);
	kd_node_pods_fini(&a);
	kd_node_nodes_fini(&a);
	kd_loop_timer_free(stats);
	if (sfd >= 0) {
		kd_loop_del_fd(a.loop, sfd);
		close(sfd);
	}
	free(a.runtime_version);
	kd_k8s_config_free(kcfg);
	kd_loop_free(a.loop);
	kd_config_free(options, &cfg);
	return status;
}
