/* autoscaler-shim/admin.c: kd-autoscaler's admin server (--admin-bind/--admin-port; port 0 turns
 * it off): /healthz (the loop runs), /readyz (every informer listed, config-autoscaler read, and
 * decisions applied: the channels handshook once, see nodes.c), /metrics (Prometheus text:
 * decisions, pokes, instances by state, revisions, channels, channel connects, reconnects and
 * frames, write-back queue depth and latency, config-autoscaler changes, API client requests
 * and responses by status class; kd/prom.h). On lib/http, the process's loop. */
#include <stdio.h>
#include <string.h>

#include "autoscaler.h"
#include "kd/log.h"
#include "kd/prom.h"

bool kd_as_informers_synced(const struct kd_as *as)
{
	struct kd_informer *infs[] = {as->pa_inf, as->deploy_inf, as->pod_inf, as->node_inf};
	for (size_t i = 0; i < KD_ARRAY_SIZE(infs); i++)
		if (!infs[i] || !kd_informer_synced(infs[i]))
			return false;
	return true;
}

void kd_as_note_synced(struct kd_as *as)
{
	if (as->reconciling || !kd_as_informers_synced(as))
		return;
	as->reconciling = true;
	kd_log_info("reconciling PodAutoscalers of class %s in %s via %s (informers synced in %llu "
	            "ms)",
	            as->cfg.pa_class,
	            as->cfg.namespace && *as->cfg.namespace ? as->cfg.namespace : "all namespaces",
	            as->api_server ? as->api_server : "?",
	            (unsigned long long)(kd_loop_now_ms(as->loop) - as->start_ms));
}

static char *metrics(struct kd_as *as, size_t *len)
{
	struct kd_prom p = {0};
	kd_prom_add(&p, "kd_autoscaler_decisions_total", "counter", "Scale decisions applied.",
	            NULL, as->decisions);
	kd_prom_add(&p, "kd_autoscaler_pokes_total", "counter",
	            "Immediate decisions on a stat for a revision without instances.", NULL,
	            as->pokes);
	kd_prom_add(&p, "kd_autoscaler_instances_created_total", "counter",
	            "Instances sent to a kd-node for creation.", NULL, as->created);
	kd_prom_add(&p, "kd_autoscaler_instances_cancelled_total", "counter",
	            "Instances cancelled before they reached the API Server.", NULL, as->cancelled);
	kd_prom_add(&p, "kd_autoscaler_instances_deleted_total", "counter",
	            "Persisted instances deleted.", NULL, as->deleted);
	unsigned long long ready = 0, starting = 0, deleting = 0;
	size_t pos = 0;
	struct kd_as_inst *inst;
	while ((inst = kd_strmap_next(&as->insts, &pos))) {
		if (inst->deleting)
			deleting++;
		else if (inst->ready)
			ready++;
		else
			starting++;
	}
	kd_prom_add(&p, "kd_autoscaler_instances", "gauge", "Instances by state.",
	            "{state=\"ready\"}", ready);
	kd_prom_sample(&p, "kd_autoscaler_instances", "{state=\"starting\"}", starting);
	kd_prom_sample(&p, "kd_autoscaler_instances", "{state=\"deleting\"}", deleting);
	kd_prom_add(&p, "kd_autoscaler_revisions", "gauge", "PodAutoscalers of our class.", NULL,
	            (unsigned long long)as->revs.n);
	kd_prom_add(&p, "kd_autoscaler_channels", "gauge", "Instance channels to kd-nodes.", NULL,
	            (unsigned long long)as->chans.n);
	uint64_t applied, refused;
	kd_as_dcfg_counts(as, &applied, &refused);
	kd_prom_add(
	    &p, "kd_autoscaler_config_changes_total", "counter",
	    "config-autoscaler keys changed, by result (a refused value keeps the previous one).",
	    "{result=\"applied\"}", applied);
	kd_prom_sample(&p, "kd_autoscaler_config_changes_total", "{result=\"refused\"}", refused);
	if (as->wb) {
		struct kd_wb_counters c;
		kd_wb_get_counters(as->wb, &c);
		kd_prom_add(&p, "kd_autoscaler_writeback_queue_depth", "gauge",
		            "Write-back entries waiting for a batch or a write slot.", NULL,
		            c.queued);
		kd_prom_add(&p, "kd_autoscaler_writeback_in_flight", "gauge",
		            "Write-back writes sent and not answered.", NULL, c.in_flight);
		struct kd_prom_hist lat;
		kd_wb_get_latency(as->wb, &lat);
		kd_prom_histogram(&p, "kd_autoscaler_writeback_latency_seconds",
		                  "Time from a write being queued to the API Server's answer.",
		                  NULL, &lat);
	}
	kd_as_webhook_metrics(as, &p);
	kd_prom_chans(&p, "kd_autoscaler", "instance", "status");
	struct kd_k8s *clients[] = {as->k8s, as->k8s_w};
	const char *const names[] = {"main", "write-back"};
	kd_prom_k8s_clients(&p, "kd_autoscaler", clients, names, KD_ARRAY_SIZE(clients));
	return kd_prom_take(&p, len);
}

static void on_admin(void *ud, struct kd_http_req *req)
{
	struct kd_as *as = ud;
	const char *path = kd_http_req_target(req);
	size_t plen = strcspn(path, "?");
	if (plen == 8 && strncmp(path, "/healthz", 8) == 0) {
		kd_http_req_respond(req, 200, "text/plain", "ok\n", 3);
	} else if (plen == 7 && strncmp(path, "/readyz", 7) == 0) {
		const char *why =
		    !kd_as_informers_synced(as) ? "not ready: informers not listed yet\n"
		    : !kd_as_dcfg_ready(as)     ? "not ready: config-autoscaler not read yet\n"
		    : !as->warm ? "not ready: instance channels not handshaked yet\n"
		                : NULL;
		if (why)
			kd_http_req_respond(req, 503, "text/plain", why, strlen(why));
		else
			kd_http_req_respond(req, 200, "text/plain", "ready\n", 6);
	} else if (plen == 8 && strncmp(path, "/metrics", 8) == 0) {
		size_t len = 0;
		char *m = metrics(as, &len);
		kd_http_req_respond(req, 200, KD_PROM_CONTENT_TYPE, m, len);
		free(m);
	} else {
		static const char m[] = "kd-autoscaler admin: /healthz, /readyz, /metrics\n";
		kd_http_req_respond(req, 404, "text/plain", m, sizeof(m) - 1);
	}
}

int kd_as_admin_start(struct kd_as *as, struct kd_error **err)
{
	if (as->cfg.admin_port == 0)
		return 0;
	struct kd_http_server_opts o = {.bind_addr = as->cfg.admin_bind,
	                                .port = (int)as->cfg.admin_port};
	as->admin = kd_http_server_new(as->loop, &o, on_admin, as, err);
	if (!as->admin)
		return kd_error_wrap(err, "admin server");
	kd_log_info("admin (/healthz /readyz /metrics) on %s:%d", as->cfg.admin_bind,
	            kd_http_server_port(as->admin));
	return 0;
}

void kd_as_admin_stop(struct kd_as *as)
{
	kd_http_server_free(as->admin);
	as->admin = NULL;
}
