/* activator-hook/main.c: kd-activator entry point: options (--help generated from the table),
 * logging, the Kubernetes client, then revs.c (routing table: Revision and Endpoints informers,
 * kd-node's status channel), stats.c (the stats WebSocket to kd-autoscaler) and proxy.c (the
 * data-plane and admin HTTP servers), all on one kd_loop until SIGINT or SIGTERM.
 * Exit status: 0 after a signal, 1 on a runtime failure at start (unusable kubeconfig, an address
 * that cannot be bound), 2 on bad options. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "activator.h"
#include "kd/check.h"
#include "kd/log.h"

#define KD_ACT_VERSION "0.1.0"

#define C struct kd_act_cfg
static const struct kd_config_option options[] = {
    KD_OPT_KUBECONFIG(C, kubeconfig, context),
    KD_OPT_STRING("class", C, pa_class, .def = KD_ACT_CLASS_DEFAULT, .required = true,
                  .help = "autoscaling class (Revision annotation autoscaling.knative.dev/class) "
                          "whose revisions this process serves"),
    KD_OPT_STRING("namespace", C, namespace, .metavar = "NS",
                  .help = "serve revisions of this namespace only (default: all)"),
    KD_OPT_STRING("bind", C, bind, .def = "0.0.0.0", .metavar = "ADDR",
                  .help = "address of the data-plane HTTP server (what the revisions' public "
                          "Endpoints point at)"),
    KD_OPT_UINT("port", C, port, .def = "8012", .has_max = true, .max = 65535,
                .help = "port of the data-plane HTTP server (Knative's activator port; 0: "
                        "ephemeral)"),
    KD_OPT_STRING("admin-bind", C, admin_bind, .def = "0.0.0.0", .metavar = "ADDR",
                  .help = "address of /healthz, /readyz, /metrics and /debug/routes"),
    KD_OPT_UINT("admin-port", C, admin_port, .def = "9473", .has_max = true, .max = 65535,
                .help = "port of the admin server (0: ephemeral)"),
    KD_OPT_STRING("status-bind", C, status_bind, .def = "0.0.0.0", .metavar = "ADDR",
                  .help = "address of the status channel kd-nodes report readiness to"),
    KD_OPT_UINT("status-port", C, status_port, .def = "9472", .has_max = true, .max = 65535,
                .help = "port of the status channel (0: ephemeral); give it to kd-node as a "
                        "second --status-addr"),
    KD_OPT_STRING("chan-token", C, chan_token, .env = "KD_CHAN_TOKEN", .metavar = "TOKEN",
                  .help = "bearer token of the status channel, also sent to kd-autoscaler's "
                          "stats WebSocket (empty: no authentication)"),
    KD_OPT_BOOL("insecure-channels", C, insecure_channels,
                .help = "run the channels without --chan-token inside a Kubernetes Pod "
                        "(refused by default there)"),
    KD_OPT_STRING("autoscaler", C, autoscaler, .metavar = "HOST:PORT",
                  .help = "kd-autoscaler's stats WebSocket (its --stats-port): pokes and "
                          "concurrency go there (empty: none, revisions at zero stay there)"),
    KD_OPT_UINT("instance-port", C, instance_port, .def = "8012", .has_min = true, .min = 1,
                .has_max = true, .max = 65535,
                .help = "port requests are forwarded to on an instance (queue-proxy's http)"),
    KD_OPT_UINT("queue-depth", C, queue_depth, .def = "1000", .has_min = true, .min = 1,
                .help = "requests held per revision at most; more get 503"),
    KD_OPT_DURATION("default-timeout", C, default_timeout_ms, .def = "300s", .has_min = true,
                    .min = 1,
                    .help = "how long a request waits for an instance when its Revision sets no "
                            "timeoutSeconds (Knative's default)"),
    KD_OPT_DURATION("stats-period", C, stats_period_ms, .def = "1s", .has_min = true, .min = 10,
                    .help = "concurrency report period (Knative's activator: 1s)"),
    KD_OPT_UINT("retries", C, retries, .def = "2", .has_max = true, .max = 10,
                .help = "times a request that never reached an instance is sent to another"),
    KD_OPT_STRING("pod-name", C, pod_name, .env = "POD_NAME", .metavar = "NAME",
                  .help = "our name in the stats we send (default: kd-activator-<hostname>)"),
    KD_OPT_LOGGING(C, log_level, log_format),
    KD_CONFIG_END,
};
#undef C

/* Options checked as a whole before anything starts (kd_config_cli.check; a refusal exits 2). */
static int check_options(void *p, struct kd_error **err)
{
	const struct kd_act_cfg *c = p;
	if (c->namespace && *c->namespace &&
	    kd_check_dns_label("--namespace", c->namespace, err) < 0)
		return -EINVAL;
	/* data and admin servers are lib/http (IPv4 or IPv6), the status channel libwebsockets */
	if (kd_check_chan_token(c->chan_token, kd_in_pod(), c->insecure_channels, err) < 0)
		return -EINVAL;
	if (kd_check_ip("--bind", c->bind, false, err) < 0 ||
	    kd_check_ip("--admin-bind", c->admin_bind, false, err) < 0 ||
	    kd_check_ip("--status-bind", c->status_bind, true, err) < 0)
		return -EINVAL;
	if (c->autoscaler && *c->autoscaler &&
	    kd_hostport_parse("--autoscaler", c->autoscaler, NULL, NULL, err) < 0)
		return -EINVAL;
	if (c->pod_name && *c->pod_name &&
	    kd_check_dns_subdomain("--pod-name", c->pod_name, err) < 0)
		return -EINVAL;
	return 0;
}

int main(int argc, char **argv)
{
	struct kd_act a;
	memset(&a, 0, sizeof(a));
	struct kd_config_cli cli = {
	    .prog = "kd-activator",
	    .summary =
	        "kubedirect activator: the data plane of kubedirect-class revisions; holds "
	        "requests for a revision at zero, wakes it through kd-autoscaler, and forwards "
	        "to its instances the moment kd-node reports them ready",
	    .version = KD_ACT_VERSION,
	    .check = check_options,
	    KD_CONFIG_CLI_COMPONENT(a.cfg),
	};
	int rc = kd_config_main(options, &a.cfg, &cli, argc, argv);
	if (rc >= 0)
		return rc;
	kd_autoerr struct kd_error *err = NULL;
	if (!a.cfg.pod_name || !*a.cfg.pod_name) {
		char host[256] = "";
		gethostname(host, sizeof(host) - 1);
		free(a.cfg.pod_name);
		a.cfg.pod_name = kd_xasprintf("kd-activator-%s", *host ? host : "local");
	}

	int status = 1;
	int sfd = -1;
	struct kd_k8s_config *kcfg = NULL;
	a.loop = kd_loop_new();
	if (!a.loop) {
		kd_log_error("cannot create the event loop: %s", strerror(errno));
		goto out;
	}
	if (kd_k8s_open(a.cfg.kubeconfig, a.cfg.context, a.loop, "kd-activator/" KD_ACT_VERSION,
	                &kcfg, &a.k8s, &err) < 0) {
		kd_log_error("%s", kd_error_msg(err));
		goto out;
	}
	sfd = kd_loop_stop_on_signals(a.loop);
	if (sfd < 0) {
		kd_log_error("signals: %s", strerror(-sfd));
		goto out;
	}
	a.api_server = kcfg->server;
	if (kd_act_proxy_start(&a, &err) < 0 || kd_act_revs_start(&a, &err) < 0 ||
	    kd_act_stats_start(&a, &err) < 0) {
		kd_log_error("%s", kd_error_msg(err));
		goto out;
	}
	/* "serving revisions ..." is logged once both informers have listed (revs.c) */
	status = kd_loop_run_main(a.loop);

out:
	a.stopping = true;
	kd_act_proxy_stop(&a);
	kd_act_stats_stop(&a);
	kd_act_revs_stop(&a);
	kd_loop_signals_close(a.loop, sfd);
	kd_k8s_free(a.k8s);
	kd_k8s_config_free(kcfg);
	kd_loop_free(a.loop);
	kd_config_free(options, &a.cfg);
	return status;
}
