/* ingress-gateway/proxy.c: kd-gateway's HTTP side (see gateway.h): the gateway (--port) and the
 * admin server (--admin-port: /healthz, /readyz, /metrics, /debug/hosts). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"
#include "kd/json.h"
#include "kd/log.h"
#include "match.h"

#define MAX_SET_HEADERS 32

static void count(struct kd_gw *g, int status)
{
	if (status >= 200 && status < 300)
		g->ok_2xx++;
	else if (status >= 400 && status < 500)
		g->resp_4xx++;
	else if (status >= 500)
		g->resp_5xx++;
}

static void reply(struct kd_gw *g, struct kd_http_req *req, int status, const char *msg)
{
	count(g, status);
	char *body = kd_xasprintf("kd-gateway: %s\n", msg);
	kd_http_req_respond(req, status, "text/plain; charset=utf-8", body, strlen(body));
	free(body);
}

static void fwd_done(void *ud, struct kd_http_req *req, const struct kd_http_fwd_result *res)
{
	struct kd_gw *g = ud;
	if (!res->reached) {
		kd_log_warn("request %s: backend refused the connection (%s)",
		            kd_http_req_target(req), res->error ? res->error : "?");
		reply(g, req, 502, "the backend refused the connection");
		return;
	}
	count(g, res->status);
}

/* Lower-case host without port into buf; false if there is none. */
static bool req_host(struct kd_http_req *req, char *buf, size_t len)
{
	const char *h = kd_http_req_header(req, "Host");
	if (!h || !*h)
		return false;
	size_t n = strcspn(h, ":");
	if (n == 0 || n >= len)
		return false;
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)(h[i] >= 'A' && h[i] <= 'Z' ? h[i] - 'A' + 'a' : h[i]);
	buf[n] = '\0';
	return true;
}

static const char *req_header(void *ud, const char *name)
{
	return kd_http_req_header(ud, name);
}

static size_t add_headers(json_object *obj, char **out, size_t n)
{
	json_object *ah = kd_json_get_object(obj, "appendHeaders");
	if (!ah)
		return n;
	json_object_object_foreach(ah, name, v)
	{
		if (n < MAX_SET_HEADERS)
			out[n++] = kd_xasprintf("%s: %s", name, json_object_get_string(v));
	}
	return n;
}

static void on_request(void *ud, struct kd_http_req *req)
{
	struct kd_gw *g = ud;
	g->requests++;
	char host[256];
	if (!req_host(req, host, sizeof(host))) {
		reply(g, req, 400, "no Host header");
		return;
	}
	json_object *ing = NULL, *rule = NULL;
	const struct kd_gw_host *route = kd_gw_route(g, host, &ing, &rule);
	const char *probe = kd_http_req_header(req, "K-Network-Probe");
	if (probe && strcmp(probe, "probe") == 0) {
		/* Knative's ingress probe: 200 and our hash only for the configuration we serve. */
		g->probes++;
		const char *want = kd_http_req_header(req, "K-Network-Hash");
		if (route && (!want || strcmp(want, route->hash) == 0)) {
			char hdr[96];
			snprintf(hdr, sizeof(hdr), "K-Network-Hash: %s", route->hash);
			const char *hdrs[] = {hdr};
			count(g, 200);
			kd_http_req_respond_with(req, 200, NULL, hdrs, 1, NULL, 0);
		} else {
			reply(g, req, 404,
			      route ? "probe for another configuration" : "unknown host");
		}
		return;
	}
	if (!route) {
		g->no_route++;
		char msg[400];
		snprintf(msg, sizeof(msg), "no Ingress of class %s serves host %s",
		         g->cfg.ingress_class, host);
		reply(g, req, 404, msg);
		return;
	}
	json_object *path = kd_gw_match_path(rule, kd_http_req_target(req), req_header, req);
	json_object *split = path ? kd_gw_pick_split(path, (uint64_t)random() % 100u) : NULL;
	if (!split) {
		g->no_route++;
		reply(g, req, 404, "no path of the Ingress rule matches the request");
		return;
	}
	const char *sns = kd_json_get_string(split, "serviceNamespace");
	const char *sname = kd_json_get_string(split, "serviceName");
	char ip[64];
	int port = 0;
	const char *why = "no backend";
	if (!sns || !sname ||
	    kd_gw_backend(g, sns, sname, kd_json_get(split, "servicePort"), ip, sizeof(ip), &port,
	                  &why) < 0) {
		g->no_endpoints++;
		char msg[400];
		snprintf(msg, sizeof(msg), "backend %s/%s: %s", sns ? sns : "?",
		         sname ? sname : "?", why);
		kd_log_warn("host %s: %s", host, msg);
		reply(g, req, 503, msg);
		return;
	}
	char *set[MAX_SET_HEADERS];
	size_t nset = add_headers(path, set, 0);
	nset = add_headers(split, set, nset);
	struct kd_http_fwd_opts o = {.timeout_ms = (unsigned)KD_MIN(g->cfg.timeout_ms, UINT32_MAX),
	                             .set_headers = (const char *const *)set,
	                             .n_set_headers = nset,
	                             .host = kd_json_get_string(path, "rewriteHost")};
	int rc = kd_http_req_forward(req, ip, port, &o, fwd_done, g);
	for (size_t i = 0; i < nset; i++)
		free(set[i]);
	if (rc < 0) {
		char msg[200];
		snprintf(msg, sizeof(msg), "cannot forward to %s:%d: %s", ip, port, strerror(-rc));
		reply(g, req, 502, msg);
	}
}

/* ---- admin ---------------------------------------------------------------------------------- */

static void on_admin(void *ud, struct kd_http_req *req)
{
	struct kd_gw *g = ud;
	const char *path = kd_http_req_target(req);
	size_t plen = strcspn(path, "?");
	if (plen == 8 && strncmp(path, "/healthz", 8) == 0) {
		kd_http_req_respond(req, 200, "text/plain", "ok\n", 3);
	} else if (plen == 7 && strncmp(path, "/readyz", 7) == 0) {
		bool ok = kd_gw_routes_synced(g);
		const char *m = ok ? "ready\n" : "not ready: informers not listed yet\n";
		kd_http_req_respond(req, ok ? 200 : 503, "text/plain", m, strlen(m));
	} else if (plen == 8 && strncmp(path, "/metrics", 8) == 0) {
		struct {
			const char *name, *help;
			uint64_t v;
		} m[] = {
		    {"kd_gateway_requests_total", "Requests received.", g->requests},
		    {"kd_gateway_no_route_total", "Requests for no host or path of ours (404).",
		     g->no_route},
		    {"kd_gateway_no_endpoints_total",
		     "Requests whose backend had no endpoint (503).", g->no_endpoints},
		    {"kd_gateway_probes_total", "Knative ingress probes answered.", g->probes},
		    {"kd_gateway_status_writes_total", "Ingress status writes.", g->status_writes},
		    {"kd_gateway_responses_2xx_total", "2xx responses.", g->ok_2xx},
		    {"kd_gateway_responses_4xx_total", "4xx responses.", g->resp_4xx},
		    {"kd_gateway_responses_5xx_total", "5xx responses.", g->resp_5xx},
		};
		char *out = kd_xstrdup("");
		for (size_t i = 0; i < KD_ARRAY_SIZE(m); i++) {
			char *n = kd_xasprintf("%s# HELP %s %s\n# TYPE %s counter\n%s %llu\n", out,
			                       m[i].name, m[i].help, m[i].name, m[i].name,
			                       (unsigned long long)m[i].v);
			free(out);
			out = n;
		}
		char *n =
		    kd_xasprintf("%s# HELP kd_gateway_hosts Hosts served.\n# TYPE kd_gateway_hosts "
		                 "gauge\nkd_gateway_hosts %zu\n",
		                 out, g->hosts.n);
		free(out);
		kd_http_req_respond(req, 200, "text/plain; version=0.0.4", n, strlen(n));
		free(n);
	} else if (plen == 12 && strncmp(path, "/debug/hosts", 12) == 0) {
		json_object *arr = json_object_new_array();
		size_t pos = 0;
		struct kd_gw_host *h;
		while ((h = kd_strmap_next(&g->hosts, &pos))) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "host", json_object_new_string(h->host));
			json_object_object_add(o, "ingress", json_object_new_string(h->ingress));
			json_object_object_add(o, "hash", json_object_new_string(h->hash));
			json_object_array_add(arr, o);
		}
		const char *s = json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN);
		kd_http_req_respond(req, 200, "application/json", s, strlen(s));
		json_object_put(arr);
	} else {
		static const char m[] =
		    "kd-gateway admin: /healthz, /readyz, /metrics, /debug/hosts\n";
		kd_http_req_respond(req, 404, "text/plain", m, sizeof(m) - 1);
	}
}

int kd_gw_proxy_start(struct kd_gw *g, struct kd_error **err)
{
	struct kd_http_server_opts o = {.bind_addr = g->cfg.bind, .port = (int)g->cfg.port};
	g->http = kd_http_server_new(g->loop, &o, on_request, g, err);
	if (!g->http)
		return kd_error_wrap(err, "gateway server");
	struct kd_http_server_opts ao = {.bind_addr = g->cfg.admin_bind,
	                                 .port = (int)g->cfg.admin_port};
	g->admin = kd_http_server_new(g->loop, &ao, on_admin, g, err);
	if (!g->admin)
		return kd_error_wrap(err, "admin server");
	kd_log_info("gateway on %s:%d, admin on %s:%d", g->cfg.bind, kd_http_server_port(g->http),
	            g->cfg.admin_bind, kd_http_server_port(g->admin));
	return 0;
}

void kd_gw_proxy_stop(struct kd_gw *g)
{
	kd_http_server_free(g->http);
	g->http = NULL;
	kd_http_server_free(g->admin);
	g->admin = NULL;
}
