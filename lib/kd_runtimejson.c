/* lib/kd_runtimejson.c: Kubernetes JSON -> runtime stage inputs. See kd/runtimejson.h. */
#include "kd/runtimejson.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kd/common.h"
#include "kd/json.h"
#include "kd/quantity.h"

static void *buf_alloc(struct kd_sandbox_view *view, size_t n, size_t size)
{
	void *p = kd_xcalloc(n ? n : 1, size);
	view->allocs = kd_xrealloc(view->allocs, (view->n_allocs + 1) * sizeof(*view->allocs));
	view->allocs[view->n_allocs++] = p;
	return p;
}

static const char *const *string_array(struct kd_sandbox_view *view, struct json_object *arr,
                                       size_t *n_out)
{
	size_t n = arr ? json_object_array_length(arr) : 0;
	*n_out = 0;
	if (!n)
		return NULL;
	const char **out = buf_alloc(view, n, sizeof(*out));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *s = json_object_array_get_idx(arr, i);
		if (json_object_is_type(s, json_type_string))
			out[k++] = json_object_get_string(s);
	}
	*n_out = k;
	return out;
}

/* name and value of a {name, value} object (env entries, HTTP headers): false without a string
 * name; a missing value is "". */
static bool name_value(struct json_object *o, const char **name, const char **value)
{
	*name = kd_json_get_string(o, "name");
	const char *v = kd_json_get_string(o, "value");
	*value = v ? v : "";
	return *name != NULL;
}

/* The HTTP headers of an array of {name, value} objects, those with a name. NULL (and 0) if
 * none. */
static const struct kd_http_header *http_headers(struct kd_sandbox_view *view,
                                                 struct json_object *arr, size_t *n_out)
{
	size_t n = arr ? json_object_array_length(arr) : 0;
	*n_out = 0;
	if (!n)
		return NULL;
	struct kd_http_header *out = buf_alloc(view, n, sizeof(*out));
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (name_value(json_object_array_get_idx(arr, i), &out[k].name, &out[k].value))
			k++;
	*n_out = k;
	return out;
}

static uint32_t seconds_ms(struct json_object *o, const char *key)
{
	int64_t v = 0;
	if (kd_json_get_int64(o, key, &v) < 0 || v <= 0 || v > 86400)
		return 0;
	return (uint32_t)(v * 1000);
}

/* A probe port: an integer, or the name of one of the container's ports. 0 if unresolvable. */
static uint16_t probe_port(struct json_object *port, struct json_object *ctr)
{
	if (json_object_is_type(port, json_type_int)) {
		int64_t v = json_object_get_int64(port);
		return v > 0 && v < 65536 ? (uint16_t)v : 0;
	}
	const char *name = json_object_get_string(port);
	struct json_object *ports = kd_json_get_array(ctr, "ports");
	size_t n = ports ? json_object_array_length(ports) : 0;
	for (size_t i = 0; name && i < n; i++) {
		struct json_object *p = json_object_array_get_idx(ports, i);
		const char *pn = kd_json_get_string(p, "name");
		int64_t v = 0;
		if (pn && strcmp(pn, name) == 0 && kd_json_get_int64(p, "containerPort", &v) == 0 &&
		    v > 0 && v < 65536)
			return (uint16_t)v;
	}
	return 0;
}

static void fill_probe(struct kd_sandbox_view *view, struct json_object *ctr, struct kd_probe *out)
{
	struct json_object *p = kd_json_get_object(ctr, "readinessProbe");
	memset(out, 0, sizeof(*out));
	if (!p)
		return;
	struct json_object *h;
	if ((h = kd_json_get_object(p, "httpGet"))) {
		out->type = KD_PROBE_HTTP;
		out->http_path = kd_json_get_string(h, "path");
		out->port = probe_port(kd_json_get(h, "port"), ctr);
		out->http_headers =
		    http_headers(view, kd_json_get_array(h, "httpHeaders"), &out->n_http_headers);
	} else if ((h = kd_json_get_object(p, "tcpSocket"))) {
		out->type = KD_PROBE_TCP;
		out->port = probe_port(kd_json_get(h, "port"), ctr);
	} else if ((h = kd_json_get_object(p, "exec"))) {
		out->type = KD_PROBE_EXEC;
		out->exec_command =
		    string_array(view, kd_json_get_array(h, "command"), &out->n_exec_command);
	}
	out->initial_delay_ms = seconds_ms(p, "initialDelaySeconds");
	out->period_ms = seconds_ms(p, "periodSeconds");
	out->timeout_ms = seconds_ms(p, "timeoutSeconds");
	int64_t v = 0;
	if (kd_json_get_int64(p, "successThreshold", &v) == 0 && v > 0 && v < 1000)
		out->success_threshold = (uint32_t)v;
	if (kd_json_get_int64(p, "failureThreshold", &v) == 0 && v > 0 && v < 1000)
		out->failure_threshold = (uint32_t)v;
}

/* The downward API (env valueFrom.fieldRef.fieldPath) into ev: the Pod's own fields resolved
 * now, the addresses as a source for the runtime. A path not supported, or a field the Pod does
 * not have, leaves ev as it is; a missing label or annotation is "". */
static void field_ref(struct json_object *pod, const char *path, struct kd_env_var *ev)
{
	static const char *const fields[] = {"metadata.name", "metadata.namespace", "metadata.uid",
	                                     "spec.nodeName", "spec.serviceAccountName"};
	static const struct {
		const char *path;
		enum kd_env_source source;
	} sources[] = {
	    {"status.podIP", KD_ENV_POD_IP},
	    {"status.podIPs", KD_ENV_POD_IP},
	    {"status.hostIP", KD_ENV_HOST_IP},
	    {"status.hostIPs", KD_ENV_HOST_IP},
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(fields); i++) {
		if (strcmp(path, fields[i]) == 0) {
			const char *v = kd_json_get_string(pod, fields[i]);
			if (v)
				ev->value = v;
			return;
		}
	}
	for (size_t i = 0; i < KD_ARRAY_SIZE(sources); i++) {
		if (strcmp(path, sources[i].path) == 0) {
			ev->value = "";
			ev->source = sources[i].source;
			return;
		}
	}
	static const struct {
		const char *prefix, *map;
	} maps[] = {
	    {"metadata.labels['", "labels"},
	    {"metadata.annotations['", "annotations"},
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(maps); i++) {
		size_t pl = strlen(maps[i].prefix);
		if (strncmp(path, maps[i].prefix, pl) != 0)
			continue;
		const char *q = strchr(path + pl, '\'');
		if (!q)
			return;
		kd_autofree char *key = kd_xstrndup(path + pl, (size_t)(q - (path + pl)));
		struct json_object *map =
		    kd_json_get_object(kd_json_get_object(pod, "metadata"), maps[i].map);
		struct json_object *v = NULL;
		const char *s = NULL;
		if (map && json_object_object_get_ex(map, key, &v))
			s = json_object_get_string(v);
		ev->value = s ? s : "";
		return;
	}
}

/* resources.limits of a container: a value that is not a quantity is an error, never "no
 * limit". */
static int fill_limits(struct json_object *ctr, struct kd_resources *out, struct kd_error **err)
{
	struct json_object *res = kd_json_get(ctr, "resources");
	if (res && !json_object_is_type(res, json_type_object))
		return kd_error_set(err, EINVAL, 0, "resources: not an object");
	struct json_object *limits = kd_json_get(res, "limits");
	if (limits && !json_object_is_type(limits, json_type_object))
		return kd_error_set(err, EINVAL, 0, "resources.limits: not an object");
	int rc = kd_quantity_member(limits, "cpu", true, "resources.limits", &out->cpu_milli, err);
	if (rc == 0)
		rc = kd_quantity_member(limits, "memory", false, "resources.limits",
		                        &out->memory_bytes, err);
	return rc;
}

/* Fills *out from spec.containers[index] of pod; an error names the container. */
static int fill_container(struct kd_sandbox_view *view, struct json_object *pod,
                          struct json_object *ctr, size_t index, struct kd_container_spec *out,
                          struct kd_error **err)
{
	out->name = kd_json_get_string(ctr, "name");
	out->image = kd_json_get_string(ctr, "image");
	out->command = string_array(view, kd_json_get_array(ctr, "command"), &out->n_command);
	out->args = string_array(view, kd_json_get_array(ctr, "args"), &out->n_args);

	struct json_object *env = kd_json_get_array(ctr, "env");
	size_t ne = env ? json_object_array_length(env) : 0;
	if (ne) {
		struct kd_env_var *ev = buf_alloc(view, ne, sizeof(*ev));
		size_t k = 0;
		for (size_t i = 0; i < ne; i++) {
			struct json_object *e = json_object_array_get_idx(env, i);
			if (!name_value(e, &ev[k].name, &ev[k].value))
				continue;
			const char *fp = kd_json_get_string(e, "valueFrom.fieldRef.fieldPath");
			if (fp)
				field_ref(pod, fp, &ev[k]);
			k++;
		}
		out->env = ev;
		out->n_env = k;
	}

	struct json_object *ports = kd_json_get_array(ctr, "ports");
	size_t np = ports ? json_object_array_length(ports) : 0;
	if (np) {
		struct kd_container_port *cp = buf_alloc(view, np, sizeof(*cp));
		size_t k = 0;
		for (size_t i = 0; i < np; i++) {
			struct json_object *p = json_object_array_get_idx(ports, i);
			int64_t v = 0;
			if (kd_json_get_int64(p, "containerPort", &v) < 0 || v <= 0 || v > 65535)
				continue;
			cp[k].name = kd_json_get_string(p, "name");
			cp[k].container_port = (uint16_t)v;
			cp[k].protocol = kd_json_get_string(p, "protocol");
			k++;
		}
		out->ports = cp;
		out->n_ports = k;
	}
	fill_probe(view, ctr, &out->readiness);
	int rc = fill_limits(ctr, &out->limits, err);
	if (rc < 0) {
		if (out->name)
			kd_error_wrap(err, "container %s", out->name);
		else
			kd_error_wrap(err, "containers[%zu]", index);
	}
	return rc;
}

int kd_sandbox_view_init(struct kd_sandbox_view *v, struct json_object *pod, const char *node,
                         const char *pod_cidr, struct kd_error **err)
{
	memset(v, 0, sizeof(*v));
	const char *ns = kd_json_get_string(pod, "metadata.namespace");
	const char *name = kd_json_get_string(pod, "metadata.name");
	if (!ns || !name)
		return kd_error_set(err, EINVAL, 0, "pod without metadata.namespace/name");
	struct json_object *ctrs = kd_json_get_array(pod, "spec.containers");
	size_t nc = ctrs ? json_object_array_length(ctrs) : 0;
	if (!nc)
		return kd_error_set(err, EINVAL, 0, "pod %s/%s: no containers", ns, name);

	struct kd_sandbox_view nv = {0};
	nv.containers = kd_xcalloc(nc, sizeof(*nv.containers));
	for (size_t i = 0; i < nc; i++) {
		int rc = fill_container(&nv, pod, json_object_array_get_idx(ctrs, i), i,
		                        &nv.containers[i], err);
		if (rc < 0) {
			kd_error_wrap(err, "pod %s/%s", ns, name);
			kd_sandbox_view_fini(&nv);
			return rc;
		}
	}

	nv.key = kd_xasprintf("%s/%s", ns, name);
	struct kd_sandbox_spec *spec = &nv.spec;
	spec->key = nv.key;
	spec->ns = ns;
	spec->name = name;
	spec->uid = kd_json_get_string(pod, "metadata.uid");
	spec->node = node;
	/* adoption: a pod that already has an address keeps it (the runtime re-registers it) */
	const char *ip = kd_json_get_string(pod, "status.podIP");
	spec->pod_ip = ip && *ip ? ip : NULL;
	spec->pod_cidr = pod_cidr;
	spec->containers = nv.containers;
	spec->n_containers = nc;
	spec->pod = pod;
	const char *policy = kd_json_get_string(pod, "spec.restartPolicy");
	if (policy && strcmp(policy, "Never") == 0)
		spec->restart_policy = KD_RESTART_NEVER;
	else if (policy && strcmp(policy, "OnFailure") == 0)
		spec->restart_policy = KD_RESTART_ON_FAILURE;
	*v = nv;
	return 0;
}

void kd_sandbox_view_fini(struct kd_sandbox_view *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n_allocs; i++)
		free(v->allocs[i]);
	free(v->allocs);
	free(v->containers);
	free(v->key);
	memset(v, 0, sizeof(*v));
}
