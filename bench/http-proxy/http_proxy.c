/* bench/http-proxy: kd-activator's HTTP path alone (lib/http: libmicrohttpd server + curl multi
 * forwarder on one kd_loop), forwarding every request to one upstream. bench/http-proxy/run.sh
 * puts wrk in front of it and of the upstream directly, on loopback, to measure what the proxy
 * hop costs without the rig (`make bench-http-proxy`). Runs until SIGINT/SIGTERM or --duration. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kd/config.h"
#include "kd/http.h"
#include "kd/instance.h"
#include "kd/log.h"
#include "kd/loop.h"

struct cfg {
	char *bind;
	uint64_t port;
	char *upstream;
	uint64_t duration_ms;
};

#define C struct cfg
static const struct kd_config_option options[] = {
    KD_OPT_STRING("bind", C, bind, .def = "127.0.0.1", .metavar = "ADDR",
                  .help = "address to serve on"),
    KD_OPT_UINT("port", C, port, .def = "18182", .has_max = true, .max = 65535,
                .help = "port to serve on"),
    KD_OPT_STRING("upstream", C, upstream, .def = "127.0.0.1:18181", .metavar = "HOST:PORT",
                  .help = "where every request is forwarded"),
    KD_OPT_DURATION("duration", C, duration_ms, .def = "10m",
                    .help = "stop after this long (bounded run)"),
    KD_CONFIG_END,
};
#undef C

struct proxy {
	char *host;
	int port;
	unsigned long done, failed;
};

static void fwd_done(void *ud, struct kd_http_req *req, const struct kd_http_fwd_result *res)
{
	struct proxy *p = ud;
	if (!res->reached) {
		kd_http_req_respond(req, 502, "text/plain", "unreachable\n", 12);
		p->failed++;
		return;
	}
	p->done++;
}

static void on_request(void *ud, struct kd_http_req *req)
{
	struct proxy *p = ud;
	struct kd_http_fwd_opts o = {.timeout_ms = 10000};
	if (kd_http_req_forward(req, p->host, p->port, &o, fwd_done, p) < 0)
		kd_http_req_respond(req, 502, "text/plain", "forward failed\n", 15);
}

static void on_stop(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)t;
	(void)arg;
	kd_loop_stop(loop);
}

int main(int argc, char **argv)
{
	struct cfg cfg;
	memset(&cfg, 0, sizeof(cfg));
	struct kd_config_cli cli = {.prog = "http-proxy",
	                            .summary = "lib/http forwarding every request to one upstream"};
	kd_autoerr struct kd_error *err = NULL;
	int rc = kd_config_parse_argv(options, &cfg, &cli, argc, argv, 0, NULL, &err);
	if (rc != 0) {
		kd_config_free(options, &cfg);
		if (rc > 0)
			return 0;
		fprintf(stderr, "http-proxy: %s (see --help)\n", kd_error_msg(err));
		return 2;
	}
	kd_log_init("http-proxy", KD_LOG_WARN, KD_LOG_TEXT);
	struct proxy p = {0};
	if (kd_instance_addr_parse(cfg.upstream, &p.host, &p.port, &err) < 0) {
		fprintf(stderr, "http-proxy: --upstream: %s\n", kd_error_msg(err));
		kd_config_free(options, &cfg);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	struct kd_loop *loop = kd_loop_new();
	int sfd = kd_loop_stop_on_signals(loop);
	struct kd_timer *stop = kd_loop_timer_new(loop, on_stop, NULL);
	kd_loop_timer_start(stop, cfg.duration_ms);
	struct kd_http_server_opts o = {.bind_addr = cfg.bind, .port = (int)cfg.port};
	struct kd_http_server *s = kd_http_server_new(loop, &o, on_request, &p, &err);
	int status = 0;
	if (!s) {
		fprintf(stderr, "http-proxy: %s\n", kd_error_msg(err));
		status = 1;
	} else {
		kd_loop_run(loop);
		fprintf(stderr, "http-proxy: %lu forwarded, %lu unreachable\n", p.done, p.failed);
	}
	kd_http_server_free(s);
	kd_loop_timer_free(stop);
	kd_loop_signals_close(loop, sfd);
	kd_loop_free(loop);
	free(p.host);
	kd_config_free(options, &cfg);
	return status;
}
