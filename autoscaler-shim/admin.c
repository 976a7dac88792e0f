/* autoscaler-shim/admin.c: kd-autoscaler's admin server (--admin-bind/--admin-port; port 0 turns
 * it off): /healthz (the loop runs), /readyz (every informer listed, config-autoscaler read, and
 * decisions applied: the channels handshook once, see nodes.c), /metrics (Prometheus text:
 * decisions, pokes, instances by state, revisions, channels, config-autoscaler changes, API
 * client requests). On lib/http, the process's loop. */
#include <stdio.h>
#include <string.h>

#include "autoscaler.h"
#include "kd/log.h"

static bool synced(const struct kd_as *as)
{
	struct kd_informer *infs[] = {as->pa_inf, as->deploy_inf, as->pod_inf, as->node_inf};
	for (size_t i = 0; i < KD_ARRAY_SIZE(infs); i++)
		if (!infs[i] || !kd_informer_synced(infs[i]))
			return false;
	return true;
}

struct out {
	char *s;
};

static void add(struct out *o, const char *name, const char *type, const char *help,
                const char *labels, unsigned long long v)
{
	char *n = kd_xasprintf("%s# HELP %s %s\n# TYPE %s %s\n%s%s %llu\n", o->s ? o->s : "", name,
	                       help, name, type, name, labels ? labels : "", v);
	free(o->s);
	o->s = n;
}

static void add_sample(struct out *o, const char *name, const char *labels, unsigned long long v)
{
	char *n = kd_xasprintf("%s%s%s %llu\n", o->s, name, labels, v);
	free(o->s);
	o->s = n;
}

static char *metrics(struct kd_as *as)
{
	struct out o = {0};
	add(&o, "kd_autoscaler_decisions_total", "counter", "Scale decisions applied.", NULL,
	    as->decisions);
	add(&o, "kd_autoscaler_pokes_total", "counter",
	    "Immediate decisions on a stat for a revision without instances.", NULL, as->pokes);
	add(&o, "kd_autoscaler_instances_created_total", "counter",
	    "Instances sent to a kd-node for creation.", NULL, as->created);
	add(&o, "kd_autoscaler_instances_cancelled_total", "counter",
	    "Instances cancelled before they reached the API Server.", NULL, as->cancelled);
	add(&o, "kd_autoscaler_instances_deleted_total", "counter", "Persisted instances deleted.",
	    NULL, as->deleted);
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
	add(&o, "kd_autoscaler_instances", "gauge", "Instances by state.", "{state=\"ready\"}",
	    ready);
	add_sample(&o, "kd_autoscaler_instances", "{state=\"starting\"}", starting);
	add_sample(&o, "kd_autoscaler_instances", "{state=\"deleting\"}", deleting);
	add(&o, "kd_autoscaler_revisions", "gauge", "PodAutoscalers of our class.", NULL,
	    (unsigned long long)as->revs.n);
	add(&o, "kd_autoscaler_channels", "gauge", "Instance channels to kd-nodes.", NULL,
	    (unsigned long long)as->chans.n);
	uint64_t applied, refused;
	kd_as_dcfg_counts(as, &applied, &refused);
	add(&o, "kd_autoscaler_config_changes_total", "counter",
	    "config-autoscaler keys changed, by result (a refused value keeps the previous one).",
	    "{result=\"applied\"}", applied);
	add_sample(&o, "kd_autoscaler_config_changes_total", "{result=\"refused\"}", refused);
	struct kd_k8s_stats st, wst;
	kd_k8s_get_stats(as->k8s, &st);
	kd_k8s_get_stats(as->k8s_w, &wst);
	add(&o, "kd_autoscaler_api_requests_total", "counter", "HTTP requests to the API Server.",
	    "{client=\"main\"}", st.requests);
	add_sample(&o, "kd_autoscaler_api_requests_total", "{client=\"write-back\"}", wst.requests);
	add(&o, "kd_autoscaler_api_throttled_total", "counter",
	    "Requests delayed by the client's rate limit.", "{client=\"main\"}", st.throttled);
	add_sample(&o, "kd_autoscaler_api_throttled_total", "{client=\"write-back\"}",
	           wst.throttled);
	add(&o, "kd_autoscaler_api_pending", "gauge", "API calls in flight.", "{client=\"main\"}",
	    st.pending);
	add_sample(&o, "kd_autoscaler_api_pending", "{client=\"write-back\"}", wst.pending);
	return o.s;
}

static void on_admin(void *ud, struct kd_http_req *req)
{
	struct kd_as *as = ud;
	const char *path = kd_http_req_target(req);
	size_t plen = strcspn(path, "?");
	if (plen == 8 && strncmp(path, "/healthz", 8) == 0) {
		kd_http_req_respond(req, 200, "text/plain", "ok\n", 3);
	} else if (plen == 7 && strncmp(path, "/readyz", 7) == 0) {
		const char *why = !synced(as) ? "not ready: informers not listed yet\n"
		                  : !kd_as_dcfg_ready(as)
		                      ? "not ready: config-autoscaler not read yet\n"
		                  : !as->warm ? "not ready: instance channels not handshaked yet\n"
		                              : NULL;
		if (why)
			kd_http_req_respond(req, 503, "text/plain", why, strlen(why));
		else
			kd_http_req_respond(req, 200, "text/plain", "ready\n", 6);
	} else if (plen == 8 && strncmp(path, "/metrics", 8) == 0) {
		char *m = metrics(as);
		kd_http_req_respond(req, 200, "text/plain; version=0.0.4", m, strlen(m));
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
