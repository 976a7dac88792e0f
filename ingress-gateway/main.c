/* ingress-gateway/main.c: kd-gateway entry point: options (--help generated from the table),
 * logging, the Kubernetes client, then routes.c (the KIngress controller) and proxy.c (the
 * gateway and admin servers) on one kd_loop until SIGINT or SIGTERM.
 * Exit status: 0 after a signal, 1 on a runtime failure at start (unusable kubeconfig, an address
 * that cannot be bound), 2 on bad options. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gateway.h"
#include "kd/check.h"
#include "kd/config.h"
#include "kd/log.h"

#define KD_GW_VERSION "0.1.0"

#define C struct kd_gw_cfg
static const struct kd_config_option options[] = {
    KD_OPT_KUBECONFIG(C, kubeconfig, context),
    KD_OPT_STRING("ingress-class", C, ingress_class, .def = KD_GW_CLASS_DEFAULT, .required = true,
                  .help = "Knative ingress class served (config-network's ingress-class; the "
                          "Ingress annotation networking.knative.dev/ingress.class)"),
    KD_OPT_STRING("bind", C, bind, .def = "0.0.0.0", .metavar = "ADDR",
                  .help = "address of the gateway"),
    KD_OPT_UINT("port", C, port, .def = "80", .has_max = true, .max = 65535,
                .help = "port of the gateway (Knative's Route Services point at port 80 of the "
                        "load balancer; 0: ephemeral)"),
    KD_OPT_STRING("admin-bind", C, admin_bind, .def = "0.0.0.0", .metavar = "ADDR",
                  .help = "address of /healthz, /readyz, /metrics and /debug/hosts"),
    KD_OPT_UINT("admin-port", C, admin_port, .def = "9474", .has_max = true, .max = 65535,
                .help = "port of the admin server (0: ephemeral)"),
    KD_OPT_STRING("public-ip", C, public_ip, .required = true, .metavar = "IP",
                  .help = "this gateway's address, written as the Ingresses' public and private "
                          "load balancer (Routes point their Services at it)"),
    KD_OPT_DURATION("timeout", C, timeout_ms, .def = "600s", .has_min = true, .min = 1,
                    .help = "longest exchange with a backend"),
    KD_OPT_LOGGING(C, log_level, log_format),
    KD_CONFIG_END,
};
#undef C

/* Options checked as a whole before anything starts (kd_config_cli.check; a refusal exits 2). */
static int check_options(void *p, struct kd_error **err)
{
	const struct kd_gw_cfg *c = p;
	if (kd_check_ip("--public-ip", c->public_ip, false, err) < 0 ||
	    kd_check_ip("--bind", c->bind, false, err) < 0 ||
	    kd_check_ip("--admin-bind", c->admin_bind, false, err) < 0)
		return -EINVAL;
	return 0;
}

int main(int argc, char **argv)
{
	struct kd_gw g;
	memset(&g, 0, sizeof(g));
	struct kd_config_cli cli = {
	    .prog = "kd-gateway",
	    .summary =
	        "kubedirect gateway: a Knative ingress class; routes requests by Host and path "
	        "to the Services the Ingresses split traffic between, and makes Routes Ready",
	    .version = KD_GW_VERSION,
	    .check = check_options,
	    KD_CONFIG_CLI_COMPONENT(g.cfg),
	};
	int rc = kd_config_main(options, &g.cfg, &cli, argc, argv);
	if (rc >= 0)
		return rc;
	kd_autoerr struct kd_error *err = NULL;
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());

	int status = 1;
	int sfd = -1;
	struct kd_k8s_config *kcfg = NULL;
	g.loop = kd_loop_new();
	if (!g.loop) {
		kd_log_error("cannot create the event loop: %s", strerror(errno));
		goto out;
	}
	if (kd_k8s_open(g.cfg.kubeconfig, g.cfg.context, g.loop, "kd-gateway/" KD_GW_VERSION, &kcfg,
	                &g.k8s, &err) < 0) {
		kd_log_error("%s", kd_error_msg(err));
		goto out;
	}
	sfd = kd_loop_stop_on_signals(g.loop);
	if (sfd < 0) {
		kd_log_error("signals: %s", strerror(-sfd));
		goto out;
	}
	if (kd_gw_proxy_start(&g, &err) < 0 || kd_gw_routes_start(&g, &err) < 0) {
		kd_log_error("%s", kd_error_msg(err));
		goto out;
	}
	kd_log_info("serving Ingresses of class %s as %s via %s", g.cfg.ingress_class,
	            g.cfg.public_ip, kcfg->server);
	status = kd_loop_run_main(g.loop);

out:
	kd_gw_proxy_stop(&g);
	kd_gw_routes_stop(&g);
	kd_loop_signals_close(g.loop, sfd);
	kd_k8s_free(g.k8s);
	kd_k8s_config_free(kcfg);
	kd_loop_free(g.loop);
	kd_config_free(options, &g.cfg);
	return status;
}
