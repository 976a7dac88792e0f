/* autoscaler-shim/admission.c: AdmissionReview decoding and responses (see admission.h).
 *
 * Decisions made here:
 *  - Only request.operation CREATE of group apps, version v1, kind Deployment is a candidate
 *    (Knative's revision reconciler creates its Deployment once and afterwards preserves the
 *    replicas it finds, reference/knative.md), and only with the revision label: every other
 *    review is allowed unchanged, so a too-wide webhook rule never changes what it should not.
 *  - The patch is a JSONPatch (the only patchType admission/v1 has): "add" /spec/replicas 0
 *    (add replaces an existing member) and the annotation, with /metadata/annotations created
 *    when the object has none.
 *  - The response echoes the review's apiVersion and uid, as the API Server requires.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "admission.h"
#include "kd/certs.h"
#include "kd/common.h"
#include "kd/json.h"

static char *dup_or_null(const char *s)
{
	return s && *s ? kd_xstrdup(s) : NULL;
}

int kd_adm_decode(const char *body, size_t len, struct kd_adm_req *out, struct kd_error **err)
{
	json_object *root = NULL;
	int rc = kd_json_parse(body, len, KD_ADM_BODY_MAX, "AdmissionReview", &root, err);
	if (rc < 0)
		return rc;
	struct kd_adm_req r = {.replicas = 1};
	const char *kind = kd_json_get_string(root, "kind");
	const char *av = kd_json_get_string(root, "apiVersion");
	json_object *req = kd_json_get_object(root, "request");
	const char *uid = kd_json_get_string(req, "uid");
	if (!kind || strcmp(kind, "AdmissionReview") != 0 || !av ||
	    (strcmp(av, "admission.k8s.io/v1") != 0 &&
	     strcmp(av, "admission.k8s.io/v1beta1") != 0)) {
		kd_error_set(err, EINVAL, 400,
		             "not an admission.k8s.io/v1 AdmissionReview (kind %s, apiVersion %s)",
		             kind ? kind : "missing", av ? av : "missing");
		json_object_put(root); /* kind and av point into it */
		return -EINVAL;
	}
	if (!req || !uid || !*uid) {
		json_object_put(root);
		return kd_error_set(err, EINVAL, 400, "AdmissionReview without request.uid");
	}
	r.api_version = kd_xstrdup(av);
	r.uid = kd_xstrdup(uid);
	r.ns = dup_or_null(kd_json_get_string(req, "namespace"));
	json_object *obj = kd_json_get_object(req, "object");
	const char *name = kd_json_get_string(obj, "metadata.name");
	r.name = dup_or_null(name ? name : kd_json_get_string(req, "name"));
	const char *op = kd_json_get_string(req, "operation");
	const char *group = kd_json_get_string(req, "kind.group");
	const char *version = kd_json_get_string(req, "kind.version");
	const char *k = kd_json_get_string(req, "kind.kind");
	json_object *labels = kd_json_get_object(obj, "metadata.labels");
	json_object *ann = kd_json_get_object(obj, "metadata.annotations");
	json_object *v = NULL;
	if (labels && json_object_object_get_ex(labels, "serving.knative.dev/revision", &v) &&
	    json_object_is_type(v, json_type_string))
		r.revision = dup_or_null(json_object_get_string(v));
	if (ann && json_object_object_get_ex(ann, "autoscaling.knative.dev/class", &v) &&
	    json_object_is_type(v, json_type_string))
		r.class_ann = dup_or_null(json_object_get_string(v));
	r.has_annotations = ann != NULL;
	json_object *rep = NULL;
	if (json_object_object_get_ex(kd_json_get_object(obj, "spec"), "replicas", &rep) && rep) {
		if (!json_object_is_type(rep, json_type_int) || json_object_get_int64(rep) < 0) {
			kd_adm_req_fini(&r);
			json_object_put(root);
			return kd_error_set(err, EINVAL, 400,
			                    "AdmissionReview: spec.replicas is not a count");
		}
		r.replicas = json_object_get_int64(rep);
	}
	r.candidate = op && strcmp(op, "CREATE") == 0 && group && strcmp(group, "apps") == 0 &&
	              version && strcmp(version, "v1") == 0 && k && strcmp(k, "Deployment") == 0 &&
	              obj && r.revision && r.replicas > 0;
	json_object_put(root);
	*out = r;
	return 0;
}

void kd_adm_req_fini(struct kd_adm_req *r)
{
	free(r->api_version);
	free(r->uid);
	free(r->ns);
	free(r->name);
	free(r->revision);
	free(r->class_ann);
	memset(r, 0, sizeof(*r));
}

static json_object *op_add(const char *path, json_object *value)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "op", json_object_new_string("add"));
	json_object_object_add(o, "path", json_object_new_string(path));
	json_object_object_add(o, "value", value);
	return o;
}

char *kd_adm_patch_json(const struct kd_adm_req *r)
{
	json_object *p = json_object_new_array();
	json_object_array_add(p, op_add("/spec/replicas", json_object_new_int(0)));
	char n[24];
	snprintf(n, sizeof(n), "%lld", (long long)r->replicas);
	if (r->has_annotations) {
		/* JSON Pointer: "/" in the key is "~1" */
		json_object_array_add(
		    p, op_add("/metadata/annotations/kubedirect.dev~1initial-replicas",
		              json_object_new_string(n)));
	} else {
		json_object *a = json_object_new_object();
		json_object_object_add(a, KD_ANNOT_INITIAL_REPLICAS, json_object_new_string(n));
		json_object_array_add(p, op_add("/metadata/annotations", a));
	}
	char *s = kd_json_dumps(p);
	json_object_put(p);
	return s;
}

char *kd_adm_response(const struct kd_adm_req *r, bool zero, const char *warning)
{
	json_object *root = json_object_new_object();
	json_object_object_add(
	    root, "apiVersion",
	    json_object_new_string(r->api_version ? r->api_version : "admission.k8s.io/v1"));
	json_object_object_add(root, "kind", json_object_new_string("AdmissionReview"));
	json_object *resp = json_object_new_object();
	json_object_object_add(resp, "uid", json_object_new_string(r->uid ? r->uid : ""));
	json_object_object_add(resp, "allowed", json_object_new_boolean(1));
	if (zero) {
		kd_autofree char *patch = kd_adm_patch_json(r);
		kd_autofree char *b64 = kd_base64_encode(patch, strlen(patch));
		json_object_object_add(resp, "patchType", json_object_new_string("JSONPatch"));
		json_object_object_add(resp, "patch", json_object_new_string(b64 ? b64 : ""));
	}
	if (warning) {
		json_object *w = json_object_new_array();
		json_object_array_add(w, json_object_new_string(warning));
		json_object_object_add(resp, "warnings", w);
	}
	json_object_object_add(root, "response", resp);
	char *s = kd_json_dumps(root);
	json_object_put(root);
	return s;
}
