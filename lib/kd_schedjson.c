/* lib/kd_schedjson.c: Kubernetes JSON -> scheduler stage inputs. See kd/schedjson.h. */
#include "kd/schedjson.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "kd/common.h"
#include "kd/json.h"

/* --- helpers ------------------------------------------------------------------------- */

static const char *str_of(struct json_object *o)
{
	return o && json_object_is_type(o, json_type_string) ? json_object_get_string(o) : NULL;
}

static int taint_effect(const char *s, bool allow_any, enum kd_taint_effect *out)
{
	if (!s || !*s) {
		if (!allow_any)
			return -EINVAL;
		*out = KD_TAINT_ANY;
	} else if (strcmp(s, "NoSchedule") == 0) {
		*out = KD_TAINT_NO_SCHEDULE;
	} else if (strcmp(s, "PreferNoSchedule") == 0) {
		*out = KD_TAINT_PREFER_NO_SCHEDULE;
	} else if (strcmp(s, "NoExecute") == 0) {
		*out = KD_TAINT_NO_EXECUTE;
	} else {
		return -EINVAL;
	}
	return 0;
}

/* Labels of a string map (metadata.labels, spec.nodeSelector); non-string values are refused. */
static int string_map(struct json_object *map, const char *what, struct kd_label **out,
                      size_t *n_out, struct kd_error **err)
{
	*out = NULL;
	*n_out = 0;
	if (!map)
		return 0;
	if (!json_object_is_type(map, json_type_object))
		return kd_error_set(err, EINVAL, 0, "%s: not an object", what);
	size_t n = (size_t)json_object_object_length(map);
	if (!n)
		return 0;
	struct kd_label *l = kd_xcalloc(n, sizeof(*l));
	size_t i = 0;
	json_object_object_foreach(map, key, val)
	{
		const char *v = str_of(val);
		if (!v) {
			free(l);
			return kd_error_set(err, EINVAL, 0, "%s[%s]: not a string", what, key);
		}
		l[i].key = key;
		l[i].value = v;
		i++;
	}
	*out = l;
	*n_out = i;
	return 0;
}

/* --- nodes --------------------------------------------------------------------------- */

static int node_quantity(struct json_object *alloc, const char *node, const char *res, bool milli,
                         int64_t *out, struct kd_error **err)
{
	char what[320];
	snprintf(what, sizeof(what), "node %s: status.allocatable", node);
	return kd_quantity_member(alloc, res, milli, what, out, err);
}

int kd_node_view_init(struct kd_node_view *v, struct json_object *node, struct kd_error **err)
{
	memset(v, 0, sizeof(*v));
	const char *name = kd_json_get_string(node, "metadata.name");
	if (!name || !*name)
		return kd_error_set(err, EINVAL, 0, "node without metadata.name");
	struct kd_node_view nv = {0};
	nv.info.name = name;
	struct json_object *conds = kd_json_get_array(node, "status.conditions");
	size_t nc = conds ? json_object_array_length(conds) : 0;
	for (size_t i = 0; i < nc; i++) {
		struct json_object *c = json_object_array_get_idx(conds, i);
		const char *type = kd_json_get_string(c, "type");
		const char *status = kd_json_get_string(c, "status");
		if (type && strcmp(type, "Ready") == 0)
			nv.info.ready = status && strcmp(status, "True") == 0;
	}
	bool unsched = false;
	if (kd_json_get_bool(node, "spec.unschedulable", &unsched) == -EINVAL)
		return kd_error_set(err, EINVAL, 0, "node %s: spec.unschedulable: not a boolean",
		                    name);
	nv.info.schedulable = !unsched;
	nv.info.pod_cidr = kd_json_get_string(node, "spec.podCIDR");
	struct json_object *alloc = kd_json_get_object(node, "status.allocatable");
	int rc;
	if ((rc = node_quantity(alloc, name, "cpu", true, &nv.info.allocatable.cpu_milli, err)) <
	        0 ||
	    (rc = node_quantity(alloc, name, "memory", false, &nv.info.allocatable.memory_bytes,
	                        err)) < 0 ||
	    (rc = node_quantity(alloc, name, "pods", false, &nv.info.allocatable.pods, err)) < 0)
		return rc;

	char what[320];
	snprintf(what, sizeof(what), "node %s: metadata.labels", name);
	rc = string_map(kd_json_get(node, "metadata.labels"), what, &nv.labels, &nv.info.n_labels,
	                err);
	if (rc < 0)
		return rc;
	nv.info.labels = nv.labels;

	struct json_object *taints = kd_json_get(node, "spec.taints");
	if (taints && !json_object_is_type(taints, json_type_array)) {
		free(nv.labels);
		return kd_error_set(err, EINVAL, 0, "node %s: spec.taints: not an array", name);
	}
	size_t nt = taints ? json_object_array_length(taints) : 0;
	if (nt)
		nv.taints = kd_xcalloc(nt, sizeof(*nv.taints));
	for (size_t i = 0; i < nt; i++) {
		struct json_object *t = json_object_array_get_idx(taints, i);
		struct kd_taint *kt = &nv.taints[i];
		kt->key = kd_json_get_string(t, "key");
		kt->value = kd_json_get_string(t, "value");
		const char *effect = kd_json_get_string(t, "effect");
		if (!kt->key || !*kt->key || taint_effect(effect, false, &kt->effect) < 0) {
			const char *key = kt->key ? kt->key : "";
			rc = kd_error_set(
			    err, EINVAL, 0,
			    "node %s: spec.taints[%zu]: needs a key and an effect "
			    "(NoSchedule, PreferNoSchedule, NoExecute), got key \"%s\" "
			    "effect \"%s\"",
			    name, i, key, effect ? effect : "");
			free(nv.labels);
			free(nv.taints);
			return rc;
		}
	}
	nv.info.taints = nv.taints;
	nv.info.n_taints = nt;
	*v = nv;
	return 0;
}

void kd_node_view_fini(struct kd_node_view *v)
{
	if (!v)
		return;
	free(v->labels);
	free(v->taints);
	memset(v, 0, sizeof(*v));
}

/* --- pods ---------------------------------------------------------------------------- */

struct req2 {
	int64_t cpu, mem;
};

static int add_sat(int64_t *acc, int64_t v)
{
	if (*acc > INT64_MAX - v)
		return -ERANGE;
	*acc += v;
	return 0;
}

/* One resource from a map of quantities (requests, limits, overhead); what names the map for
 * messages. *found says whether it was there. */
static int map_res(struct json_object *map, const char *res, bool milli, const char *what,
                   bool *found, int64_t *out, struct kd_error **err)
{
	struct json_object *v = NULL;
	*found = false;
	if (!map || !json_object_is_type(map, json_type_object) ||
	    !json_object_object_get_ex(map, res, &v) || !v)
		return 0;
	const char *s = str_of(v);
	int64_t q = 0;
	int rc = s ? kd_quantity_parse(s, milli, &q) : -EINVAL;
	if (rc < 0)
		return kd_error_set(err, -rc, 0, "%s.%s \"%s\": %s", what, res,
		                    s ? s : json_object_to_json_string(v),
		                    rc == -ERANGE ? "out of range" : "not a quantity");
	*found = true;
	*out = q;
	return 0;
}

/* One resource of a container: requests, else limits (the API Server's defaulting). */
static int container_res(struct json_object *c, const char *res, bool milli, const char *what,
                         int64_t *out, struct kd_error **err)
{
	static const char *const where[] = {"requests", "limits"};
	*out = 0;
	struct json_object *r = kd_json_get_object(c, "resources");
	for (size_t k = 0; r && k < KD_ARRAY_SIZE(where); k++) {
		char w[96];
		snprintf(w, sizeof(w), "%s.resources.%s", what, where[k]);
		bool found;
		int rc = map_res(kd_json_get(r, where[k]), res, milli, w, &found, out, err);
		if (rc < 0 || found)
			return rc;
	}
	return 0;
}

static int container_req(struct json_object *c, const char *what, struct req2 *out,
                         struct kd_error **err)
{
	int rc = container_res(c, "cpu", true, what, &out->cpu, err);
	if (rc == 0)
		rc = container_res(c, "memory", false, what, &out->mem, err);
	return rc;
}

static int pod_requests(struct json_object *spec, struct kd_resources *out, struct kd_error **err)
{
	struct req2 sum = {0, 0}, sidecars = {0, 0}, init_max = {0, 0};
	char what[64];
	int rc;
	struct json_object *cs = kd_json_get_array(spec, "containers");
	size_t n = cs ? json_object_array_length(cs) : 0;
	for (size_t i = 0; i < n; i++) {
		struct req2 r = {0, 0};
		snprintf(what, sizeof(what), "containers[%zu]", i);
		if ((rc = container_req(json_object_array_get_idx(cs, i), what, &r, err)) < 0)
			return rc;
		if (add_sat(&sum.cpu, r.cpu) < 0 || add_sat(&sum.mem, r.mem) < 0)
			return kd_error_set(err, ERANGE, 0, "containers: requests out of range");
	}
	struct json_object *ics = kd_json_get_array(spec, "initContainers");
	n = ics ? json_object_array_length(ics) : 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(ics, i);
		struct req2 r = {0, 0};
		snprintf(what, sizeof(what), "initContainers[%zu]", i);
		if ((rc = container_req(c, what, &r, err)) < 0)
			return rc;
		const char *policy = kd_json_get_string(c, "restartPolicy");
		if (policy && strcmp(policy, "Always") == 0) {
			if (add_sat(&sidecars.cpu, r.cpu) < 0 || add_sat(&sidecars.mem, r.mem) < 0)
				return kd_error_set(err, ERANGE, 0,
				                    "initContainers: requests out of range");
			continue;
		}
		/* a regular init container runs alongside the sidecars started before it */
		if (add_sat(&r.cpu, sidecars.cpu) < 0 || add_sat(&r.mem, sidecars.mem) < 0)
			return kd_error_set(err, ERANGE, 0,
			                    "initContainers: requests out of range");
		init_max.cpu = KD_MAX(init_max.cpu, r.cpu);
		init_max.mem = KD_MAX(init_max.mem, r.mem);
	}
	if (add_sat(&sum.cpu, sidecars.cpu) < 0 || add_sat(&sum.mem, sidecars.mem) < 0)
		return kd_error_set(err, ERANGE, 0, "containers: requests out of range");
	sum.cpu = KD_MAX(sum.cpu, init_max.cpu);
	sum.mem = KD_MAX(sum.mem, init_max.mem);
	/* pod-level requests (spec.resources, PodLevelResources) replace the containers' sum */
	struct json_object *plr = kd_json_get_object(spec, "resources.requests");
	if (plr) {
		bool found;
		int64_t q = 0;
		if ((rc = map_res(plr, "cpu", true, "resources.requests", &found, &q, err)) < 0)
			return rc;
		if (found)
			sum.cpu = q;
		if ((rc = map_res(plr, "memory", false, "resources.requests", &found, &q, err)) < 0)
			return rc;
		if (found)
			sum.mem = q;
	}
	struct json_object *ovh = kd_json_get_object(spec, "overhead");
	if (ovh) {
		struct req2 r = {0, 0};
		bool found;
		if ((rc = map_res(ovh, "cpu", true, "overhead", &found, &r.cpu, err)) < 0 ||
		    (rc = map_res(ovh, "memory", false, "overhead", &found, &r.mem, err)) < 0)
			return rc;
		if (add_sat(&sum.cpu, r.cpu) < 0 || add_sat(&sum.mem, r.mem) < 0)
			return kd_error_set(err, ERANGE, 0, "overhead: out of range");
	}
	out->cpu_milli = sum.cpu;
	out->memory_bytes = sum.mem;
	out->pods = 1;
	return 0;
}

int kd_pod_view_init(struct kd_pod_view *v, struct json_object *spec, struct kd_error **err)
{
	memset(v, 0, sizeof(*v));
	if (!spec || !json_object_is_type(spec, json_type_object))
		return kd_error_set(err, EINVAL, 0, "pod spec: not an object");
	struct kd_pod_view pv = {0};
	int rc = pod_requests(spec, &pv.requests, err);
	if (rc < 0)
		return rc;
	rc = string_map(kd_json_get(spec, "nodeSelector"), "nodeSelector", &pv.node_selector,
	                &pv.n_node_selector, err);
	if (rc < 0)
		return rc;
	struct json_object *tols = kd_json_get(spec, "tolerations");
	if (tols && !json_object_is_type(tols, json_type_array)) {
		free(pv.node_selector);
		return kd_error_set(err, EINVAL, 0, "tolerations: not an array");
	}
	size_t nt = tols ? json_object_array_length(tols) : 0;
	if (nt)
		pv.tolerations = kd_xcalloc(nt, sizeof(*pv.tolerations));
	for (size_t i = 0; i < nt; i++) {
		struct json_object *t = json_object_array_get_idx(tols, i);
		struct kd_toleration *kt = &pv.tolerations[i];
		kt->key = kd_json_get_string(t, "key");
		kt->value = kd_json_get_string(t, "value");
		const char *op = kd_json_get_string(t, "operator");
		const char *effect = kd_json_get_string(t, "effect");
		bool bad = false;
		if (!op || !*op || strcmp(op, "Equal") == 0)
			kt->op = KD_TOLERATION_EQUAL;
		else if (strcmp(op, "Exists") == 0)
			kt->op = KD_TOLERATION_EXISTS;
		else
			bad = true;
		/* an empty key needs Exists (Kubernetes' validation) */
		if ((!kt->key || !*kt->key) && kt->op != KD_TOLERATION_EXISTS)
			bad = true;
		if (bad || taint_effect(effect, true, &kt->effect) < 0) {
			rc = kd_error_set(err, EINVAL, 0,
			                  "tolerations[%zu]: bad toleration (key \"%s\", operator "
			                  "\"%s\", effect \"%s\")",
			                  i, kt->key ? kt->key : "", op ? op : "",
			                  effect ? effect : "");
			free(pv.node_selector);
			free(pv.tolerations);
			return rc;
		}
	}
	pv.n_tolerations = nt;
	*v = pv;
	return 0;
}

void kd_pod_view_apply(const struct kd_pod_view *v, struct kd_pod_request *req)
{
	req->requests = v->requests;
	req->node_selector = v->node_selector;
	req->n_node_selector = v->n_node_selector;
	req->tolerations = v->tolerations;
	req->n_tolerations = v->n_tolerations;
}

void kd_pod_view_fini(struct kd_pod_view *v)
{
	if (!v)
		return;
	free(v->node_selector);
	free(v->tolerations);
	memset(v, 0, sizeof(*v));
}
