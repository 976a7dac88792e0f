/* autoscaler-shim/main.c: kd-autoscaler entry point: options (--help generated from the table),
 * logging, two Kubernetes clients (watches/events/scale patches unlimited; write-back rate
 * limited by --write-qps), the decider, workload and scheduler plugins, then status.c (status
 * channel), nodes.c (Node informer), stats.c (stats WebSocket) and pa.c (informers, decisions,
 * write-back) on one kd_loop until SIGINT or SIGTERM. Exit status: 0 after a signal (or --help,
 * --version), 2 on bad options, 1 on a runtime failure (unusable kubeconfig, a plugin the loader
 * refuses, a port that cannot be bound, the loop failing). */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "autoscaler.h"
#include "kd/check.h"
#include "kd/log.h"

#define KD_AS_VERSION "0.1.0"

#define C struct kd_as_cfg
static const struct kd_config_option options[] = {
    KD_OPT_KUBECONFIG(C, kubeconfig, context),
    KD_OPT_STRING("class", C, pa_class, .def = KD_PA_CLASS, .required = true,
                  .help = "PodAutoscaler class (annotation autoscaling.knative.dev/class) "
                          "this process reconciles; all others are never touched"),
    KD_OPT_STRING("namespace", C, namespace, .metavar = "NS",
                  .help = "reconcile PodAutoscalers of this namespace only (default: all; tests "
                          "sharing a cluster use it)"),
    KD_OPT_STRING("node-selector", C, node_selector, .metavar = "SELECTOR",
                  .help = "label selector of the Nodes instances may be placed on (default: "
                          "every Node publishing kubedirect.dev/channel-addr)"),
    KD_OPT_STRING("source", C, source, .def = KD_INSTANCE_SOURCE_DEFAULT, .required = true,
                  .help = "our name in the hello of every instance channel"),
    KD_OPT_STRING("decider", C, decider, .def = "decider-kpa", .metavar = "PLUGIN",
                  .help = "decider plugin (name or path)"),
    KD_OPT_STRING("decider-config", C, decider_config, .metavar = "JSON",
                  .help = "decider configuration overrides (config-autoscaler keys), a JSON "
                          "object; precedence: built-in defaults < the --config-autoscaler "
                          "ConfigMap < this < a revision's autoscaling.knative.dev/* "
                          "annotations"),
    KD_OPT_STRING("knative-namespace", C, knative_namespace, .def = "knative-serving",
                  .metavar = "NS", .help = "namespace of Knative's --config-autoscaler"),
    KD_OPT_STRING("config-autoscaler", C, config_autoscaler, .def = "config-autoscaler",
                  .metavar = "NAME",
                  .help = "Knative's autoscaler ConfigMap, read and watched: its keys (not "
                          "_example) configure the decider, changes apply without a restart, "
                          "invalid values are logged and the previous value kept (empty: not "
                          "read)"),
    KD_OPT_STRING("workload", C, workload, .def = "workload", .metavar = "PLUGIN",
                  .help = "workload plugin (name or path)"),
    KD_OPT_STRING("workload-config", C, workload_config, .metavar = "JSON",
                  .help = "workload plugin configuration, a JSON object"),
    KD_OPT_STRING("scheduler", C, scheduler, .def = "scheduler", .metavar = "PLUGIN",
                  .help = "scheduler plugin (name or path)"),
    KD_OPT_STRING("scheduler-config", C, scheduler_config, .metavar = "JSON",
                  .help = "scheduler plugin configuration, a JSON object"),
    KD_OPT_STRING("stats-bind", C, stats_bind, .def = "127.0.0.1", .metavar = "ADDR",
                  .help = "address of the stats WebSocket (Knative activator format and JSON); "
                          "0.0.0.0 to take stats from other hosts (then set --chan-token)"),
    KD_OPT_UINT("stats-port", C, stats_port, .def = "8080", .has_max = true, .max = 65535,
                .help = "port of the stats WebSocket (0: ephemeral)"),
    KD_OPT_STRING("activator-ips", C, activator_ips, .metavar = "IP[,IP...]",
                  .help = "kd-activator addresses: the revisions' public Endpoints point at them "
                          "(Knative's proxy mode); empty: at the ready instances (Serve mode)"),
    KD_OPT_STRING("status-bind", C, status_bind, .def = "0.0.0.0", .metavar = "ADDR",
                  .help = "address of the status channel kd-nodes report readiness to"),
    KD_OPT_UINT("status-port", C, status_port, .def = "9471", .has_max = true, .max = 65535,
                .help = "port of the status channel (0: ephemeral)"),
    KD_OPT_STRING("admin-bind", C, admin_bind, .def = "0.0.0.0", .metavar = "ADDR",
                  .help = "address of /healthz, /readyz and /metrics"),
    KD_OPT_UINT("admin-port", C, admin_port, .def = "0", .has_max = true, .max = 65535,
                .help = "port of /healthz, /readyz and /metrics (0: no admin server)"),
    KD_OPT_STRING("chan-token", C, chan_token, .env = "KD_CHAN_TOKEN", .metavar = "TOKEN",
                  .help = "bearer token of the direct channels and the stats WebSocket "
                          "(empty: none; scale messages then only from loopback peers)"),
    KD_OPT_STRING("chan-token-secret", C, chan_token_secret, .metavar = "NAME.NAMESPACE",
                  .help = "read --chan-token from key \"token\" of this Secret, made with a "
                          "random token when missing (kd-activator and kd-node read the same)"),
    KD_OPT_BOOL("insecure-channels", C, insecure_channels,
                .help = "run the channels without --chan-token inside a Kubernetes Pod "
                        "(refused by default there)"),
    KD_OPT_UINT("webhook-port", C, webhook_port, .def = "0", .has_max = true, .max = 65535,
                .help = "HTTPS port of the admission webhook that creates kd revisions' "
                        "Deployments with replicas 0 (0: no webhook)"),
    KD_OPT_STRING("webhook-bind", C, webhook_bind, .def = "0.0.0.0", .metavar = "ADDR",
                  .help = "address of the admission webhook"),
    KD_OPT_STRING("webhook-service", C, webhook_service, .def = "kd-webhook.kubedirect",
                  .metavar = "NAME.NAMESPACE",
                  .help = "the Service the API Server calls the webhook through (the "
                          "certificate's names)"),
    KD_OPT_STRING("webhook-secret", C, webhook_secret, .def = "kd-webhook-certs.kubedirect",
                  .metavar = "NAME.NAMESPACE",
                  .help = "the Secret holding the webhook's certificate (made when missing)"),
    KD_OPT_STRING("webhook-config", C, webhook_config, .def = "kubedirect.dev", .metavar = "NAME",
                  .help = "the MutatingWebhookConfiguration whose caBundle kd-autoscaler "
                          "writes"),
    KD_OPT_DURATION("tick", C, tick_ms, .def = "2s", .has_min = true, .min = 10,
                    .help = "decision period (Knative's is 2s); pokes decide at once"),
    KD_OPT_DURATION("scale-hold", C, scale_hold_ms, .def = "10m",
                    .help = "how long a direct scale message overrides the decider"),
    KD_OPT_STRING("initial-scale", C, initial_scale, .metavar = "N",
                  .help = "override of config-autoscaler initial-scale, the same as "
                          "\"initial-scale\" in --decider-config (not both); default: the "
                          "ConfigMap's, else 1"),
    KD_OPT_DOUBLE("write-qps", C, write_qps, .def = "100", .has_min = true, .min = 0,
                  .help = "client-side QPS of write-back (Services, Endpoints, status); 0: "
                          "unlimited"),
    KD_OPT_UINT("write-burst", C, write_burst, .def = "200", .help = "write-back burst"),
    KD_OPT_DURATION("sync-delay", C, sync_delay_ms, .def = "10ms",
                    .help = "coalescing delay between a change and its write-back"),
    KD_OPT_LOGGING(C, log_level, log_format),
    KD_CONFIG_END,
};
#undef C

static void on_signalfd(struct kd_loop *loop, int fd, unsigned events, void *arg)
{
	(void)events;
	struct kd_as *as = arg;
	struct signalfd_siginfo si;
	if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		kd_log_info("received signal %u, stopping", si.ssi_signo);
		as->stopping = true;
		kd_loop_stop(loop);
	}
}

/* --activator-ips into as->activator_ips: IP literals only (they go into Endpoints). */
static int parse_ips(struct kd_as *as, const char *list)
{
	if (!list || !*list)
		return 0;
	kd_autofree char *copy = kd_xstrdup(list);
	char *save = NULL;
	for (char *ip = strtok_r(copy, ",", &save); ip; ip = strtok_r(NULL, ",", &save)) {
		unsigned char buf[16];
		if (inet_pton(AF_INET, ip, buf) != 1 && inet_pton(AF_INET6, ip, buf) != 1) {
			kd_log_error("--activator-ips: \"%s\" is not an IP address", ip);
			return -EINVAL;
		}
		as->activator_ips =
		    kd_xrealloc(as->activator_ips, (as->n_activator_ips + 1) * sizeof(char *));
		as->activator_ips[as->n_activator_ips++] = kd_xstrdup(ip);
	}
	return 0;
}

/* --class values kd-autoscaler must never take: Knative's own autoscalers reconcile those PAs. */
static const char *const knative_classes[] = {"kpa.autoscaling.knative.dev",
                                              "hpa.autoscaling.knative.dev"};

/* Options checked as a whole before anything starts (kd_config_cli.check; a refusal exits 2). */
static int check_options(void *p, struct kd_error **err)
{
	const struct kd_as_cfg *c = p;
	for (size_t i = 0; i < KD_ARRAY_SIZE(knative_classes); i++)
		if (strcmp(c->pa_class, knative_classes[i]) == 0)
			return kd_error_set(
			    err, EINVAL, 0,
			    "--class: \"%s\" is Knative's own class (its autoscaler "
			    "reconciles those PodAutoscalers); use %s or another class "
			    "of ours",
			    c->pa_class, KD_PA_CLASS);
	if (c->namespace && *c->namespace &&
	    kd_check_dns_label("--namespace", c->namespace, err) < 0)
		return -EINVAL;
	/* the stats and status servers are libwebsockets (IPv4 here), the admin one lib/http */
	if (kd_check_ip("--stats-bind", c->stats_bind, true, err) < 0 ||
	    kd_check_ip("--status-bind", c->status_bind, true, err) < 0 ||
	    kd_check_ip("--admin-bind", c->admin_bind, false, err) < 0 ||
	    kd_check_ip("--webhook-bind", c->webhook_bind, false, err) < 0)
		return -EINVAL;
	bool from_secret = c->chan_token_secret && *c->chan_token_secret;
	if (from_secret && kd_as_check_ref("--chan-token-secret", c->chan_token_secret, err) < 0)
		return -EINVAL;
	if (kd_check_chan_token(c->chan_token, kd_in_pod() && !from_secret, c->insecure_channels,
	                        err) < 0)
		return -EINVAL;
	if (c->webhook_port && kd_as_webhook_check(c->webhook_service, c->webhook_secret, err) < 0)
		return -EINVAL;
	if (c->activator_ips && *c->activator_ips) {
		kd_autofree char *copy = kd_xstrdup(c->activator_ips);
		char *save = NULL;
		for (char *ip = strtok_r(copy, ",", &save); ip; ip = strtok_r(NULL, ",", &save))
			if (kd_check_ip("--activator-ips", ip, false, err) < 0)
				return -EINVAL;
	}
	return 0;
}

static int load(struct kd_as *as, const char *ref, enum kd_plugin_kind kind, const char *cfg,
                struct kd_plugin_handle **h, struct kd_error **err)
{
	int rc = kd_plugin_load(ref, kind, cfg, &as->host, h, err);
	if (rc < 0)
		return kd_error_wrap(err, "%s plugin", kd_plugin_kind_name(kind));
	kd_log_info("%s plugin %s loaded from %s", kd_plugin_kind_name(kind), kd_plugin_name(*h),
	            kd_plugin_path(*h));
	return 0;
}

int main(int argc, char **argv)
{
	struct kd_as as;
	memset(&as, 0, sizeof(as));
	struct kd_config_cli cli = {
	    .prog = "kd-autoscaler",
	    .summary = "kubedirect autoscaler: reconciles PodAutoscalers of its class and scales "
	               "their revisions through direct channels to kd-node",
	    .version = KD_AS_VERSION,
	    .check = check_options,
	    KD_CONFIG_CLI_COMPONENT(as.cfg),
	};
	int rc = kd_config_main(options, &as.cfg, &cli, argc, argv);
	if (rc >= 0)
		return rc;
	kd_autoerr struct kd_error *err = NULL;

	int status = 1;
	int sfd = -1;
	struct kd_k8s_config *kcfg = NULL;
	as.loop = kd_loop_new();
	if (!as.loop) {
		kd_log_error("cannot create the event loop: %s", strerror(errno));
		goto out;
	}
	if (parse_ips(&as, as.cfg.activator_ips) < 0)
		goto out;
	if (kd_as_dcfg_new(&as, &err) < 0) { /* --decider-config, --initial-scale */
		kd_log_error("%s", kd_error_msg(err));
		status = 2;
		goto out;
	}
	if (as.cfg.kubeconfig && *as.cfg.kubeconfig)
		rc = kd_k8s_config_from_kubeconfig(as.cfg.kubeconfig, as.cfg.context, &kcfg, &err);
	else
		rc = kd_k8s_config_auto(&kcfg, &err);
	if (rc < 0) {
		kd_log_error("Kubernetes configuration: %s", kd_error_msg(err));
		goto out;
	}
	struct kd_k8s_opts opts = {.user_agent = "kd-autoscaler/" KD_AS_VERSION};
	struct kd_k8s_opts wopts = {.user_agent = "kd-autoscaler/" KD_AS_VERSION " (write-back)",
	                            .qps = as.cfg.write_qps,
	                            .burst = (unsigned)as.cfg.write_burst};
	if (kd_k8s_new(kcfg, as.loop, &opts, &as.k8s, &err) < 0 ||
	    kd_k8s_new(kcfg, as.loop, &wopts, &as.k8s_w, &err) < 0 ||
	    kd_k8s_warm(as.k8s_w, 4, &err) < 0) { /* connections open before the first burst */
		kd_log_error("Kubernetes client: %s", kd_error_msg(err));
		goto out;
	}
	if (kd_as_chan_token_from_secret(&as, &err) < 0) {
		kd_log_error("%s", kd_error_msg(err));
		goto out;
	}
	kd_host_init(&as.host, as.loop, "kd-autoscaler");
	as.host.k8s = as.k8s;
	char *dcfg_json = kd_as_dcfg_loader_json(&as);
	rc = load(&as, as.cfg.decider, KD_PLUGIN_DECIDER, dcfg_json, &as.decider_h, &err);
	free(dcfg_json);
	if (rc < 0 ||
	    load(&as, as.cfg.workload, KD_PLUGIN_WORKLOAD, as.cfg.workload_config, &as.workload_h,
	         &err) < 0 ||
	    load(&as, as.cfg.scheduler, KD_PLUGIN_SCHEDULER, as.cfg.scheduler_config,
	         &as.scheduler_h, &err) < 0) {
		kd_log_error("%s", kd_error_msg(err));
		goto out;
	}
	as.decider = kd_plugin_ops(as.decider_h);
	as.workload = kd_plugin_ops(as.workload_h);
	as.scheduler = kd_plugin_ops(as.scheduler_h);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0 || kd_loop_add_fd(as.loop, sfd, KD_LOOP_IN, on_signalfd, &as) < 0) {
		kd_log_error("signalfd: %s", strerror(errno));
		goto out;
	}
	as.api_server = kcfg->server;
	as.start_ms = kd_loop_now_ms(as.loop);
	if (kd_as_dcfg_start(&as, &err) < 0 || kd_as_admin_start(&as, &err) < 0 ||
	    kd_as_status_start(&as, &err) < 0 || kd_as_nodes_init(&as, &err) < 0 ||
	    kd_as_stats_start(&as, &err) < 0 || kd_as_pa_start(&as, &err) < 0 ||
	    kd_as_webhook_start(&as, &err) < 0) {
		kd_log_error("%s", kd_error_msg(err));
		goto out;
	}
	/* "reconciling ..." is logged once every informer has listed (kd_as_note_synced) */
	status = kd_loop_run_main(as.loop);
	kd_log_info("decisions %llu, pokes %llu, instances created %llu, cancelled %llu, deleted "
	            "%llu",
	            (unsigned long long)as.decisions, (unsigned long long)as.pokes,
	            (unsigned long long)as.created, (unsigned long long)as.cancelled,
	            (unsigned long long)as.deleted);

out:
	as.stopping = true;
	kd_as_webhook_stop(&as);
	kd_as_admin_stop(&as);
	kd_as_stats_stop(&as);
	kd_as_pa_stop(&as);
	kd_as_status_stop(&as);
	kd_as_insts_clear(&as);
	kd_as_nodes_stop(&as);
	kd_as_dcfg_stop(&as);
	kd_k8s_free(as.k8s_w);
	kd_k8s_free(as.k8s);
	kd_plugin_unload(as.scheduler_h);
	kd_plugin_unload(as.workload_h);
	kd_plugin_unload(as.decider_h);
	if (sfd >= 0) {
		kd_loop_del_fd(as.loop, sfd);
		close(sfd);
	}
	kd_k8s_config_free(kcfg);
	kd_loop_free(as.loop);
	for (size_t i = 0; i < as.n_activator_ips; i++)
		free(as.activator_ips[i]);
	free(as.activator_ips);
	kd_config_free(options, &as.cfg);
	return status;
}
