/* node-agent/admin.c: kd-node's admin server (--admin-bind/--admin-port; port 0 turns it off),
 * as kd-autoscaler's: /healthz (the loop runs: 200 as soon as it listens, also while kd-node
 * waits for the API Server), /readyz (the API Server reached, the pod informer and in direct
 * mode the Deployment informer listed, every --status-addr channel handshaken), /metrics
 * (Prometheus text, kd/prom.h: nodes up, pods by state, sandbox and status counters, direct
 * mode's ops, status ops sent, write-back queue, queue depth and latency histogram, channel
 * connects, reconnects and frames, API clients). On lib/http, the loop. */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "direct.h"
#include "kd/log.h"
#include "kd/prom.h"

const char *kd_node_not_ready_why(struct kd_node_agent *a)
{
	if (!a->api_ok)
		return "not ready: waiting for the API Server";
	if (!a->pods_inf || !kd_informer_synced(a->pods_inf))
		return "not ready: pod informer not listed yet";
	struct kd_node_direct_stats ds;
	if (kd_node_direct_get_stats(a, &ds)) {
		if (!ds.tmpl_synced)
			return "not ready: Deployment informer not listed yet";
		if (ds.status_chans_ready < ds.status_chans)
			return "not ready: status channels not all connected";
	}
	return NULL;
}

char *kd_node_metrics(struct kd_node_agent *a, size_t *len)
{
	struct kd_prom p = {0};
	uint64_t up = 0, n = a->nodes ? a->cfg->nodes : 0;
	for (uint64_t i = 0; i < n; i++)
		up += a->nodes[i].registered && a->nodes[i].lease_ok;
	kd_prom_add(&p, "kd_node_nodes", "gauge",
	            "Nodes served, by state (up: registered and Lease renewed).", "{state=\"up\"}",
	            up);
	kd_prom_sample(&p, "kd_node_nodes", "{state=\"down\"}", n - up);
	struct kd_node_pod_counts pc;
	kd_node_pods_count(a, &pc);
	kd_prom_add(&p, "kd_node_pods", "gauge", "Pods and instances on our nodes, by state.",
	            "{state=\"ready\"}", pc.ready);
	kd_prom_sample(&p, "kd_node_pods", "{state=\"starting\"}", pc.starting);
	kd_prom_sample(&p, "kd_node_pods", "{state=\"stopping\"}", pc.stopping);
	kd_prom_sample(&p, "kd_node_pods", "{state=\"waiting\"}", pc.waiting);
	kd_prom_add(&p, "kd_node_instances", "gauge",
	            "Kubedirect instances (managed pods) among kd_node_pods.", NULL, pc.managed);
	kd_prom_add(&p, "kd_node_sandboxes_started_total", "counter",
	            "Sandboxes started by the runtime plugin.", NULL, a->n_started);
	kd_prom_add(&p, "kd_node_pods_ready_patched_total", "counter",
	            "Pod status patches that made a pod Ready.", NULL, a->n_ready_patched);
	kd_prom_add(&p, "kd_node_pods_deleted_total", "counter", "Pods deleted by kd-node.", NULL,
	            a->n_deleted);
	kd_prom_add(&p, "kd_node_sandboxes_failed_total", "counter",
	            "Sandboxes the runtime reported failed.", NULL, a->n_failed);
	kd_prom_add(&p, "kd_node_patch_errors_total", "counter", "Pod status patches that failed.",
	            NULL, a->n_patch_errors);
	struct kd_node_direct_stats ds;
	if (kd_node_direct_get_stats(a, &ds)) {
		kd_prom_add(&p, "kd_node_direct_ops_total", "counter",
		            "Ops received on the instance channel.", NULL, ds.ops);
		kd_prom_add(&p, "kd_node_direct_started_total", "counter",
		            "Instances started from an op.", NULL, ds.started);
		kd_prom_add(&p, "kd_node_direct_refused_total", "counter",
		            "Ops refused (node, template or key).", NULL, ds.refused);
		kd_prom_add(&p, "kd_node_direct_template_timeouts_total", "counter",
		            "Ops whose template never arrived.", NULL, ds.timeouts);
		kd_prom_add(&p, "kd_node_status_ops_sent_total", "counter",
		            "Status ops sent upstream (all status channels).", NULL,
		            ds.status_sent);
		kd_prom_add(&p, "kd_node_status_channels", "gauge", "Status channels, by state.",
		            "{state=\"connected\"}", ds.status_chans_ready);
		kd_prom_sample(&p, "kd_node_status_channels", "{state=\"connecting\"}",
		               ds.status_chans - ds.status_chans_ready);
		kd_prom_add(&p, "kd_node_writeback_queue", "gauge",
		            "Instance Pods not yet persisted (queued, in flight, failed).", NULL,
		            ds.wb_queue);
		kd_prom_add(&p, "kd_node_writeback_creates_total", "counter",
		            "Pod creates issued by the write-back.", NULL, ds.wb_creates);
		kd_prom_add(&p, "kd_node_writeback_failed_total", "counter",
		            "Instance Pods whose create failed permanently.", NULL, ds.wb_failed);
		kd_prom_add(&p, "kd_node_writeback_queue_depth", "gauge",
		            "Write-back entries waiting for a batch or a write slot.", NULL,
		            ds.wb_queued);
		kd_prom_histogram(&p, "kd_node_writeback_latency_seconds",
		                  "Time from a write being queued to the API Server's answer.",
		                  NULL, &ds.wb_latency);
		kd_prom_chans(&p, "kd_node", "status", "instance");
	}
	struct kd_k8s *clients[] = {a->k8s, a->k8s_pods, kd_node_direct_client(a)};
	const char *const names[] = {"main", "pods", "write-back"};
	kd_prom_k8s_clients(&p, "kd_node", clients, names, KD_ARRAY_SIZE(clients));
	return kd_prom_take(&p, len);
}

static void on_admin(void *ud, struct kd_http_req *req)
{
	struct kd_node_agent *a = ud;
	const char *path = kd_http_req_target(req);
	size_t plen = strcspn(path, "?");
	if (plen == 8 && strncmp(path, "/healthz", 8) == 0) {
		kd_http_req_respond(req, 200, "text/plain", "ok\n", 3);
	} else if (plen == 7 && strncmp(path, "/readyz", 7) == 0) {
		const char *why = kd_node_not_ready_why(a);
		if (why) {
			kd_autofree char *m = kd_xasprintf("%s\n", why);
			kd_http_req_respond(req, 503, "text/plain", m, strlen(m));
		} else {
			kd_http_req_respond(req, 200, "text/plain", "ready\n", 6);
		}
	} else if (plen == 8 && strncmp(path, "/metrics", 8) == 0) {
		size_t len = 0;
		kd_autofree char *m = kd_node_metrics(a, &len);
		kd_http_req_respond(req, 200, KD_PROM_CONTENT_TYPE, m, len);
	} else {
		static const char m[] = "kd-node admin: /healthz, /readyz, /metrics\n";
		kd_http_req_respond(req, 404, "text/plain", m, sizeof(m) - 1);
	}
}

int kd_node_admin_start(struct kd_node_agent *a, struct kd_error **err)
{
	if (a->cfg->admin_port == 0)
		return 0;
	struct kd_http_server_opts o = {.bind_addr = a->cfg->admin_bind,
	                                .port = (int)a->cfg->admin_port};
	a->admin = kd_http_server_new(a->loop, &o, on_admin, a, err);
	if (!a->admin)
		return kd_error_wrap(err, "admin server");
	kd_log_info("admin (/healthz /readyz /metrics) on %s:%d", a->cfg->admin_bind,
	            kd_http_server_port(a->admin));
	return 0;
}

void kd_node_admin_stop(struct kd_node_agent *a)
{
	kd_http_server_free(a->admin);
	a->admin = NULL;
}
