/* ingress-gateway/routes.c: the KIngress controller and backend lookup (see gateway.h).
 * Contract followed: knative.dev/networking pkg/apis/networking/v1alpha1 (ingress_types.go,
 * ingress_lifecycle.go: the living condition set NetworkConfigured + LoadBalancerReady -> Ready,
 * IsReady = observedGeneration == generation && Ready True) and serving's route reconciler
 * (resources/service.go: one load balancer entry, IP preferred, for the placeholder Service). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "gateway.h"
#include "kd/hash.h"
#include "kd/json.h"
#include "kd/log.h"
#include "match.h"

static const struct kd_k8s_resource ingresses = {"networking.internal.knative.dev", "v1alpha1",
                                                 "ingresses", true};

#define ANNOT_CLASS "networking.knative.dev/ingress.class"

static bool ours(const struct kd_gw *g, json_object *ing)
{
	json_object *ann = kd_json_get_object(ing, "metadata.annotations"), *v;
	return ann && json_object_object_get_ex(ann, ANNOT_CLASS, &v) &&
	       strcmp(json_object_get_string(v), g->cfg.ingress_class) == 0;
}

static void host_free(struct kd_gw_host *h)
{
	free(h->host);
	free(h->ingress);
	free(h->hash);
	free(h);
}

static void hosts_clear(struct kd_gw *g)
{
	size_t pos = 0;
	struct kd_gw_host *h;
	while ((pos = 0, h = kd_strmap_next(&g->hosts, &pos))) {
		kd_strmap_del(&g->hosts, h->host);
		host_free(h);
	}
}

/* The configuration hash of an Ingress: its generation and spec (what K-Network-Hash names). */
static char *config_hash(json_object *ing)
{
	int64_t gen = 0;
	kd_json_get_int64(ing, "metadata.generation", &gen);
	json_object *spec = kd_json_get_object(ing, "spec");
	const char *js = spec ? json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PLAIN) : "";
	uint64_t h = kd_hash_str(kd_hash_bytes(KD_HASH_INIT, &gen, sizeof(gen)), js);
	return kd_xasprintf("%016llx", (unsigned long long)h);
}

struct index_ctx {
	struct kd_gw *g;
	size_t n;
};

static int index_one(json_object *ing, void *arg)
{
	struct index_ctx *c = arg;
	struct kd_gw *g = c->g;
	if (!ours(g, ing) || kd_json_get(ing, "metadata.deletionTimestamp"))
		return 0;
	kd_autofree char *key = kd_informer_key(ing);
	kd_autofree char *hash = config_hash(ing);
	json_object *rules = kd_json_get_array(ing, "spec.rules");
	for (size_t r = 0; rules && r < json_object_array_length(rules); r++) {
		json_object *hosts =
		    kd_json_get_array(json_object_array_get_idx(rules, r), "hosts");
		for (size_t i = 0; hosts && i < json_object_array_length(hosts); i++) {
			const char *hn =
			    json_object_get_string(json_object_array_get_idx(hosts, i));
			if (!hn || !*hn)
				continue;
			kd_autofree char *lower = kd_xstrdup(hn);
			for (char *p = lower; *p; p++)
				*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
			struct kd_gw_host *prev = kd_strmap_get(&g->hosts, lower);
			if (prev) {
				if (strcmp(prev->ingress, key) != 0)
					kd_log_warn("host %s: claimed by %s and %s; %s keeps it",
					            lower, prev->ingress, key, prev->ingress);
				continue;
			}
			struct kd_gw_host *h = kd_xcalloc(1, sizeof(*h));
			h->host = kd_xstrdup(lower);
			h->ingress = kd_xstrdup(key);
			h->rule = r;
			h->hash = kd_xstrdup(hash);
			kd_strmap_put(&g->hosts, h->host, h);
			c->n++;
		}
	}
	return 0;
}

static void reindex(struct kd_gw *g)
{
	hosts_clear(g);
	struct index_ctx c = {.g = g};
	kd_informer_foreach(g->ing_inf, index_one, &c);
	kd_log_debug("routes: %zu host(s)", c.n);
}

static void status_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	(void)resp;
	char *key = arg;
	if (err)
		kd_log_warn("ingress %s: status write: %s", key, kd_error_msg(err));
	free(key);
}

static bool cond_true(json_object *ing, const char *type)
{
	json_object *conds = kd_json_get_array(ing, "status.conditions");
	for (size_t i = 0; conds && i < json_object_array_length(conds); i++) {
		json_object *c = json_object_array_get_idx(conds, i);
		const char *t = kd_json_get_string(c, "type"), *s = kd_json_get_string(c, "status");
		if (t && s && strcmp(t, type) == 0)
			return strcmp(s, "True") == 0;
	}
	return false;
}

/* Writes Ready status (the configuration is in the host table, served from now on) unless the
 * Ingress already says so for its generation and our address. */
static void write_status(struct kd_gw *g, json_object *ing)
{
	int64_t gen = 0, observed = -1;
	kd_json_get_int64(ing, "metadata.generation", &gen);
	kd_json_get_int64(ing, "status.observedGeneration", &observed);
	json_object *lbs = kd_json_get_array(ing, "status.publicLoadBalancer.ingress");
	const char *ip = lbs && json_object_array_length(lbs) == 1
	                     ? kd_json_get_string(json_object_array_get_idx(lbs, 0), "ip")
	                     : NULL;
	if (observed == gen && cond_true(ing, "Ready") && ip && strcmp(ip, g->cfg.public_ip) == 0)
		return;
	const char *ns = kd_json_get_string(ing, "metadata.namespace");
	const char *name = kd_json_get_string(ing, "metadata.name");
	if (!ns || !name)
		return;
	char now[32];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object *conds = json_object_new_array();
	const char *types[] = {"LoadBalancerReady", "NetworkConfigured", "Ready"};
	for (size_t i = 0; i < KD_ARRAY_SIZE(types); i++) {
		json_object *c = json_object_new_object();
		json_object_object_add(c, "type", json_object_new_string(types[i]));
		json_object_object_add(c, "status", json_object_new_string("True"));
		json_object_object_add(c, "lastTransitionTime", json_object_new_string(now));
		json_object_array_add(conds, c);
	}
	json_object *lb = json_object_new_object(), *lbi = json_object_new_array(),
	            *e = json_object_new_object();
	json_object_object_add(e, "ip", json_object_new_string(g->cfg.public_ip));
	json_object_array_add(lbi, e);
	json_object_object_add(lb, "ingress", lbi);
	json_object *status = json_object_new_object();
	json_object_object_add(status, "observedGeneration", json_object_new_int64(gen));
	json_object_object_add(status, "conditions", conds);
	json_object_object_add(status, "publicLoadBalancer", json_object_get(lb));
	json_object_object_add(status, "privateLoadBalancer", lb);
	kd_autojson json_object *patch = json_object_new_object();
	json_object_object_add(patch, "status", status);
	struct kd_k8s_request req = {.verb = KD_K8S_PATCH,
	                             .res = &ingresses,
	                             .ns = ns,
	                             .name = name,
	                             .subresource = "status",
	                             .patch_type = KD_K8S_PATCH_MERGE,
	                             .body = patch};
	kd_autoerr struct kd_error *err = NULL;
	char *key = kd_xasprintf("%s/%s", ns, name);
	g->status_writes++;
	if (kd_k8s_submit(g->k8s, &req, status_done, key, &err) < 0) {
		g->status_errors++;
		kd_log_warn("ingress %s: status write: %s", key, kd_error_msg(err));
		free(key);
		return;
	}
	kd_log_info("ingress %s: generation %lld served at %s: Ready", key, (long long)gen,
	            g->cfg.public_ip);
}

static void ing_add(struct kd_informer *inf, json_object *obj, void *arg)
{
	(void)inf;
	struct kd_gw *g = arg;
	if (!ours(g, obj))
		return;
	reindex(g); /* the table first: status says Ready only for what is served */
	if (!kd_json_get(obj, "metadata.deletionTimestamp"))
		write_status(g, obj);
}

static void ing_delete(struct kd_informer *inf, json_object *obj, void *arg)
{
	(void)inf;
	(void)obj;
	reindex(arg);
}

const struct kd_gw_host *kd_gw_route(struct kd_gw *g, const char *host, json_object **ingress,
                                     json_object **rule)
{
	struct kd_gw_host *h = kd_strmap_get(&g->hosts, host);
	if (!h)
		return NULL;
	const char *slash = strchr(h->ingress, '/');
	kd_autofree char *ns = kd_xstrndup(h->ingress, (size_t)(slash - h->ingress));
	json_object *ing = kd_informer_get(g->ing_inf, ns, slash + 1);
	json_object *rules = ing ? kd_json_get_array(ing, "spec.rules") : NULL;
	if (!rules || h->rule >= json_object_array_length(rules))
		return NULL;
	*ingress = ing;
	*rule = json_object_array_get_idx(rules, h->rule);
	return h;
}

int kd_gw_backend(struct kd_gw *g, const char *ns, const char *name, json_object *port, char *ip,
                  size_t iplen, int *out_port, const char **why)
{
	json_object *svc = kd_informer_get(g->svc_inf, ns, name);
	if (!svc) {
		*why = "no such Service";
		return -ENOENT;
	}
	return kd_gw_endpoint(svc, kd_informer_get(g->ep_inf, ns, name), port, g->rr++, ip, iplen,
	                      out_port, why);
}

bool kd_gw_routes_synced(const struct kd_gw *g)
{
	return g->ing_inf && kd_informer_synced(g->ing_inf) && kd_informer_synced(g->svc_inf) &&
	       kd_informer_synced(g->ep_inf);
}

int kd_gw_routes_start(struct kd_gw *g, struct kd_error **err)
{
	struct kd_informer_opts io = {.res = &ingresses};
	struct kd_informer_handlers ih = {.on_add = ing_add,
	                                  .on_update = kd_informer_update_as_add,
	                                  .on_delete = ing_delete,
	                                  .arg = g};
	struct kd_informer_opts so = {.res = &kd_k8s_services};
	struct kd_informer_opts eo = {.res = &kd_k8s_endpoints};
	struct kd_informer_handlers none = {.arg = g};
	if (kd_informer_new(g->k8s, &so, &none, &g->svc_inf, err) < 0 ||
	    kd_informer_new(g->k8s, &eo, &none, &g->ep_inf, err) < 0 ||
	    kd_informer_new(g->k8s, &io, &ih, &g->ing_inf, err) < 0)
		return kd_error_wrap(err, "informers");
	kd_informer_start(g->svc_inf);
	kd_informer_start(g->ep_inf);
	kd_informer_start(g->ing_inf);
	return 0;
}

void kd_gw_routes_stop(struct kd_gw *g)
{
	kd_informer_free(g->ing_inf);
	g->ing_inf = NULL;
	kd_informer_free(g->svc_inf);
	g->svc_inf = NULL;
	kd_informer_free(g->ep_inf);
	g->ep_inf = NULL;
	hosts_clear(g);
	kd_strmap_fini(&g->hosts);
}
