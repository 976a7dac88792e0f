/* autoscaler-shim/objects.c: pure object builders (see objects.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kd/instance.h"
#include "kd/json.h"
#include "objects.h"

char *kd_as_format_time(uint64_t wall_ns, char *buf)
{
	time_t t = (time_t)(wall_ns / 1000000000ull);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, KD_AS_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static void add_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

json_object *kd_as_owner_ref(json_object *pa)
{
	json_object *r = json_object_new_object();
	add_str(r, "apiVersion", KD_PA_API_VERSION);
	add_str(r, "kind", KD_PA_KIND);
	const char *name = kd_json_get_string(pa, "metadata.name");
	const char *uid = kd_json_get_string(pa, "metadata.uid");
	add_str(r, "name", name ? name : "");
	add_str(r, "uid", uid ? uid : "");
	json_object_object_add(r, "controller", json_object_new_boolean(1));
	json_object_object_add(r, "blockOwnerDeletion", json_object_new_boolean(1));
	return r;
}

static bool is_h2c(json_object *pa)
{
	const char *p = kd_json_get_string(pa, "spec.protocolType");
	return p && strcmp(p, "h2c") == 0;
}

/* metadata of an SKS-like object: name, namespace, labels (PA's + ours), metric annotation,
 * owner. */
static json_object *meta_for(json_object *pa, const char *name, const char *svc_type)
{
	json_object *m = json_object_new_object();
	const char *pa_name = kd_json_get_string(pa, "metadata.name");
	const char *ns = kd_json_get_string(pa, "metadata.namespace");
	add_str(m, "name", name);
	add_str(m, "namespace", ns ? ns : "");
	json_object *labels = NULL;
	json_object *pl = kd_json_get_object(pa, "metadata.labels");
	if (!pl || json_object_deep_copy(pl, &labels, NULL) != 0 || !labels)
		labels = json_object_new_object();
	add_str(labels, KD_AS_LABEL_SKS, pa_name ? pa_name : "");
	add_str(labels, KD_AS_LABEL_SERVICE_TYPE, svc_type);
	json_object_object_add(m, "labels", labels);
	json_object *pann = kd_json_get_object(pa, "metadata.annotations");
	json_object *metric = NULL;
	if (pann && json_object_object_get_ex(pann, KD_AS_ANNOT_METRIC, &metric) &&
	    json_object_is_type(metric, json_type_string)) {
		json_object *ann = json_object_new_object();
		add_str(ann, KD_AS_ANNOT_METRIC, json_object_get_string(metric));
		json_object_object_add(m, "annotations", ann);
	}
	json_object *refs = json_object_new_array();
	json_object_array_add(refs, kd_as_owner_ref(pa));
	json_object_object_add(m, "ownerReferences", refs);
	return m;
}

static json_object *port(const char *name, int p, json_object *target, const char *app_proto)
{
	json_object *o = json_object_new_object();
	add_str(o, "name", name);
	add_str(o, "protocol", "TCP");
	if (app_proto)
		add_str(o, "appProtocol", app_proto);
	json_object_object_add(o, "port", json_object_new_int(p));
	if (target)
		json_object_object_add(o, "targetPort", target);
	return o;
}

static json_object *obj_head(const char *kind)
{
	json_object *o = json_object_new_object();
	add_str(o, "apiVersion", "v1");
	add_str(o, "kind", kind);
	return o;
}

json_object *kd_as_build_public_service(json_object *pa)
{
	bool h2c = is_h2c(pa);
	const char *name = kd_json_get_string(pa, "metadata.name");
	json_object *s = obj_head("Service");
	json_object_object_add(s, "metadata", meta_for(pa, name ? name : "", "Public"));
	json_object *spec = json_object_new_object();
	json_object *ports = json_object_new_array();
	json_object_array_add(ports, port(h2c ? "http2" : "http", 80,
	                                  json_object_new_int(h2c ? 8013 : 8012),
	                                  h2c ? "kubernetes.io/h2c" : NULL));
	json_object_array_add(ports, port("https", 443, json_object_new_int(8112), NULL));
	json_object_object_add(spec, "ports", ports);
	json_object_object_add(s, "spec", spec);
	return s;
}

json_object *kd_as_build_private_service(json_object *pa, json_object *selector)
{
	bool h2c = is_h2c(pa);
	int target = h2c ? 8013 : 8012;
	const char *name = kd_json_get_string(pa, "metadata.name");
	kd_autofree char *priv = kd_xasprintf("%s-private", name ? name : "");
	json_object *s = obj_head("Service");
	json_object_object_add(s, "metadata", meta_for(pa, priv, "Private"));
	json_object *spec = json_object_new_object();
	json_object *ports = json_object_new_array();
	const char *pn = h2c ? "http2" : "http";
	json_object_array_add(
	    ports, port(pn, 80, json_object_new_int(target), h2c ? "kubernetes.io/h2c" : NULL));
	json_object_array_add(ports, port("https", 443, json_object_new_int(8112), NULL));
	json_object_array_add(
	    ports, port("http-autometric", 9090, json_object_new_string("http-autometric"), NULL));
	json_object_array_add(
	    ports, port("http-usermetric", 9091, json_object_new_string("http-usermetric"), NULL));
	kd_autofree char *istio = kd_xasprintf("%s-istio", pn);
	json_object_array_add(ports, port(istio, target, json_object_new_int(target), NULL));
	json_object_object_add(spec, "ports", ports);
	json_object *sel = NULL;
	if (!selector || json_object_deep_copy(selector, &sel, NULL) != 0 || !sel)
		sel = json_object_new_object();
	json_object_object_add(spec, "selector", sel);
	json_object_object_add(s, "spec", spec);
	return s;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_object *kd_as_build_endpoints(json_object *pa, const char *const *ips, size_t n)
{
	bool h2c = is_h2c(pa);
	const char *name = kd_json_get_string(pa, "metadata.name");
	json_object *e = obj_head("Endpoints");
	json_object_object_add(e, "metadata", meta_for(pa, name ? name : "", "Public"));
	if (!n)
		return e;
	const char **sorted = kd_xcalloc(n, sizeof(*sorted));
	memcpy(sorted, ips, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_str);
	json_object *addrs = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		if (i && strcmp(sorted[i], sorted[i - 1]) == 0)
			continue;
		json_object *a = json_object_new_object();
		add_str(a, "ip", sorted[i]);
		json_object_array_add(addrs, a);
	}
	free(sorted);
	json_object *ports = json_object_new_array();
	json_object_array_add(ports, port(h2c ? "http2" : "http", h2c ? 8013 : 8012, NULL,
	                                  h2c ? "kubernetes.io/h2c" : NULL));
	json_object_array_add(ports, port("https", 8112, NULL, NULL));
	json_object *subset = json_object_new_object();
	json_object_object_add(subset, "addresses", addrs);
	json_object_object_add(subset, "ports", ports);
	json_object *subsets = json_object_new_array();
	json_object_array_add(subsets, subset);
	json_object_object_add(e, "subsets", subsets);
	return e;
}

static json_object *prev_cond(json_object *prev_pa, const char *type)
{
	json_object *conds = kd_json_get_array(prev_pa, "status.conditions");
	for (size_t i = 0; conds && i < json_object_array_length(conds); i++) {
		json_object *c = json_object_array_get_idx(conds, i);
		const char *t = kd_json_get_string(c, "type");
		if (t && strcmp(t, type) == 0)
			return c;
	}
	return NULL;
}

static json_object *cond(const char *type, const struct kd_as_cond *c, json_object *prev_pa,
                         const char *now)
{
	json_object *o = json_object_new_object();
	add_str(o, "type", type);
	add_str(o, "status", c->status);
	json_object *p = prev_cond(prev_pa, type);
	const char *ps = kd_json_get_string(p, "status");
	const char *pt = kd_json_get_string(p, "lastTransitionTime");
	add_str(o, "lastTransitionTime", ps && pt && strcmp(ps, c->status) == 0 ? pt : now);
	if (c->reason && *c->reason)
		add_str(o, "reason", c->reason);
	if (c->message && *c->message)
		add_str(o, "message", c->message);
	return o;
}

json_object *kd_as_build_status(const struct kd_as_status *st, json_object *prev_pa,
                                uint64_t now_wall_ns)
{
	char now[KD_AS_TIME_LEN];
	kd_as_format_time(now_wall_ns, now);
	json_object *s = json_object_new_object();
	json_object_object_add(s, "observedGeneration",
	                       json_object_new_int64(st->observed_generation));
	if (st->service_name)
		add_str(s, "serviceName", st->service_name);
	if (st->metrics_service_name)
		add_str(s, "metricsServiceName", st->metrics_service_name);
	if (st->desired >= 0)
		json_object_object_add(s, "desiredScale", json_object_new_int(st->desired));
	if (st->actual >= 0)
		json_object_object_add(s, "actualScale", json_object_new_int(st->actual));
	const struct kd_as_cond *deps[] = {&st->active, &st->initialized, &st->sks_ready};
	struct kd_as_cond ready = {.status = "True"};
	for (size_t i = 0; i < KD_ARRAY_SIZE(deps) && strcmp(ready.status, "False") != 0; i++) {
		if (strcmp(deps[i]->status, "False") == 0 ||
		    (strcmp(deps[i]->status, "Unknown") == 0 && strcmp(ready.status, "True") == 0))
			ready = *deps[i];
	}
	json_object *conds = json_object_new_array();
	json_object_array_add(conds, cond("Active", &st->active, prev_pa, now));
	json_object_array_add(conds, cond("Ready", &ready, prev_pa, now));
	json_object_array_add(conds, cond("SKSReady", &st->sks_ready, prev_pa, now));
	json_object_array_add(conds,
	                      cond("ScaleTargetInitialized", &st->initialized, prev_pa, now));
	json_object_object_add(s, "conditions", conds);
	json_object *patch = json_object_new_object();
	json_object_object_add(patch, "status", s);
	return patch;
}

json_object *kd_as_build_event(json_object *obj, const char *type, const char *reason,
                               const char *message, uint64_t now_wall_ns)
{
	char now[KD_AS_TIME_LEN];
	kd_as_format_time(now_wall_ns, now);
	const char *name = kd_json_get_string(obj, "metadata.name");
	const char *ns = kd_json_get_string(obj, "metadata.namespace");
	json_object *e = obj_head("Event");
	json_object *m = json_object_new_object();
	kd_autofree char *ename =
	    kd_xasprintf("%s.%llx", name ? name : "kd", (unsigned long long)now_wall_ns);
	add_str(m, "name", ename);
	add_str(m, "namespace", ns ? ns : "default");
	json_object_object_add(e, "metadata", m);
	json_object *io = json_object_new_object();
	const char *fields[] = {"apiVersion", "kind"};
	for (size_t i = 0; i < KD_ARRAY_SIZE(fields); i++) {
		const char *v = kd_json_get_string(obj, fields[i]);
		if (v)
			add_str(io, fields[i], v);
	}
	if (ns)
		add_str(io, "namespace", ns);
	if (name)
		add_str(io, "name", name);
	const char *uid = kd_json_get_string(obj, "metadata.uid");
	if (uid)
		add_str(io, "uid", uid);
	json_object_object_add(e, "involvedObject", io);
	add_str(e, "type", type);
	add_str(e, "reason", reason);
	add_str(e, "message", message);
	json_object *src = json_object_new_object();
	add_str(src, "component", "kd-autoscaler");
	json_object_object_add(e, "source", src);
	add_str(e, "firstTimestamp", now);
	add_str(e, "lastTimestamp", now);
	json_object_object_add(e, "count", json_object_new_int(1));
	return e;
}
