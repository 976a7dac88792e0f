/* Unit tests for kd-autoscaler's AdmissionReview handling (autoscaler-shim/admission.c): which
 * reviews are candidates for replicas 0 (a CREATE of an apps/v1 Deployment with the revision
 * label and replicas > 0, nothing else), what is refused as malformed, and the response: the
 * review's apiVersion and uid echoed, allowed, and a JSONPatch that, applied, gives replicas 0
 * and the initial-replicas annotation whether or not the object had annotations. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "../../autoscaler-shim/admission.h"
#include "kd/certs.h"
#include "kd/common.h"
#include "kd/json.h"

/* A review of a Deployment; extra_md goes into metadata, spec_replicas (NULL: absent). */
static char *review(const char *av, const char *op, const char *kind, const char *labels,
                    const char *annotations, const char *replicas)
{
	return kd_xasprintf(
	    "{\"apiVersion\":\"%s\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"u-1\","
	    "\"kind\":{\"group\":\"apps\",\"version\":\"v1\",\"kind\":\"%s\"},"
	    "\"namespace\":\"default\",\"operation\":\"%s\",\"object\":{\"metadata\":{"
	    "\"name\":\"hello-00001-deployment\"%s%s%s%s}%s%s%s}}}",
	    av, kind, op, labels ? ",\"labels\":" : "", labels ? labels : "",
	    annotations ? ",\"annotations\":" : "", annotations ? annotations : "",
	    replicas ? ",\"spec\":{\"replicas\":" : "", replicas ? replicas : "",
	    replicas ? "}" : "");
}

static const char *rev_label = "{\"serving.knative.dev/revision\":\"hello-00001\"}";

static void decode_ok(const char *text, struct kd_adm_req *r)
{
	struct kd_error *err = NULL;
	int rc = kd_adm_decode(text, strlen(text), r, &err);
	if (rc < 0)
		fail_msg("decode failed: %s", kd_error_msg(err));
}

static void candidate_is_a_created_revision_deployment_with_replicas(void **state)
{
	(void)state;
	struct kd_adm_req r;
	char *t = review("admission.k8s.io/v1", "CREATE", "Deployment", rev_label,
	                 "{\"autoscaling.knative.dev/class\":\"kubedirect.dev\"}", "3");
	decode_ok(t, &r);
	assert_true(r.candidate);
	assert_string_equal(r.uid, "u-1");
	assert_string_equal(r.ns, "default");
	assert_string_equal(r.name, "hello-00001-deployment");
	assert_string_equal(r.revision, "hello-00001");
	assert_string_equal(r.class_ann, "kubedirect.dev");
	assert_int_equal(r.replicas, 3);
	assert_true(r.has_annotations);
	kd_adm_req_fini(&r);
	free(t);
	/* replicas absent: the API Server's default 1, a candidate; no annotations at all */
	t = review("admission.k8s.io/v1", "CREATE", "Deployment", rev_label, NULL, NULL);
	decode_ok(t, &r);
	assert_true(r.candidate);
	assert_int_equal(r.replicas, 1);
	assert_false(r.has_annotations);
	assert_null(r.class_ann);
	kd_adm_req_fini(&r);
	free(t);
}

static void other_reviews_are_not_candidates(void **state)
{
	(void)state;
	struct {
		const char *op, *kind, *labels, *replicas;
	} cases[] = {
	    {"UPDATE", "Deployment", rev_label, "1"}, /* Knative preserves replicas after create */
	    {"CREATE", "StatefulSet", rev_label, "1"},
	    {"CREATE", "Deployment", NULL, "1"},              /* not a revision's */
	    {"CREATE", "Deployment", "{\"app\":\"x\"}", "1"}, /* ditto */
	    {"CREATE", "Deployment", rev_label, "0"},         /* already 0 */
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(cases); i++) {
		struct kd_adm_req r;
		char *t = review("admission.k8s.io/v1", cases[i].op, cases[i].kind, cases[i].labels,
		                 NULL, cases[i].replicas);
		decode_ok(t, &r);
		if (r.candidate)
			fail_msg("case %zu is a candidate", i);
		kd_adm_req_fini(&r);
		free(t);
	}
}

static void malformed_reviews_are_refused_with_a_reason(void **state)
{
	(void)state;
	struct {
		const char *text, *msg;
	} cases[] = {
	    {"not json", "AdmissionReview"},
	    {"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"v2\",\"request\":{\"uid\":\"x\"}}",
	     "not an admission.k8s.io/v1"},
	    {"{\"kind\":\"Pod\",\"apiVersion\":\"admission.k8s.io/v1\"}", "kind Pod"},
	    {"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\"}",
	     "without request.uid"},
	    {"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{"
	     "\"uid\":\"x\",\"object\":{\"spec\":{\"replicas\":\"3\"}}}}",
	     "not a count"},
	    {"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{"
	     "\"uid\":\"x\",\"object\":{\"spec\":{\"replicas\":-1}}}}",
	     "not a count"},
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(cases); i++) {
		struct kd_adm_req r = {0};
		struct kd_error *err = NULL;
		assert_true(kd_adm_decode(cases[i].text, strlen(cases[i].text), &r, &err) < 0);
		assert_non_null(err);
		if (!strstr(kd_error_msg(err), cases[i].msg))
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, kd_error_msg(err),
			         cases[i].msg);
		kd_error_free(err);
		assert_null(r.uid); /* out untouched */
	}
}

/* Applies a JSONPatch of "add" ops (the only op kd_adm_patch_json emits) to obj. */
static void apply_patch(json_object *obj, json_object *ops)
{
	for (size_t i = 0; i < json_object_array_length(ops); i++) {
		json_object *op = json_object_array_get_idx(ops, i);
		assert_string_equal(kd_json_get_string(op, "op"), "add");
		kd_autofree char *path = kd_xstrdup(kd_json_get_string(op, "path"));
		json_object *v = NULL;
		assert_true(json_object_object_get_ex(op, "value", &v));
		json_object *cur = obj;
		char *save = NULL;
		char *seg = strtok_r(path + 1, "/", &save);
		while (seg) {
			char *next = strtok_r(NULL, "/", &save);
			/* JSON Pointer unescaping: ~1 is '/', ~0 is '~' */
			char key[128];
			size_t k = 0;
			for (char *c = seg; *c && k + 1 < sizeof(key); c++) {
				if (c[0] == '~' && c[1] == '1') {
					key[k++] = '/';
					c++;
				} else if (c[0] == '~' && c[1] == '0') {
					key[k++] = '~';
					c++;
				} else {
					key[k++] = *c;
				}
			}
			key[k] = '\0';
			if (!next) {
				json_object_object_add(cur, key, json_object_get(v));
			} else {
				json_object *child = NULL;
				assert_true(json_object_object_get_ex(cur, key, &child));
				cur = child;
			}
			seg = next;
		}
	}
}

static void response_echoes_the_review_and_its_patch_gives_replicas_0(void **state)
{
	(void)state;
	const char *anns[] = {"{\"a\":\"b\"}", NULL};
	for (size_t i = 0; i < 2; i++) {
		struct kd_adm_req r;
		char *t =
		    review("admission.k8s.io/v1", "CREATE", "Deployment", rev_label, anns[i], "5");
		decode_ok(t, &r);
		char *resp = kd_adm_response(&r, true, "a warning");
		json_object *o = NULL;
		assert_int_equal(kd_json_parse(resp, strlen(resp), 0, "response", &o, NULL), 0);
		assert_string_equal(kd_json_get_string(o, "apiVersion"), "admission.k8s.io/v1");
		assert_string_equal(kd_json_get_string(o, "kind"), "AdmissionReview");
		assert_string_equal(kd_json_get_string(o, "response.uid"), "u-1");
		bool allowed = false;
		assert_int_equal(kd_json_get_bool(o, "response.allowed", &allowed), 0);
		assert_true(allowed);
		assert_string_equal(kd_json_get_string(o, "response.patchType"), "JSONPatch");
		json_object *w = kd_json_get_array(o, "response.warnings");
		assert_non_null(w);
		assert_string_equal(json_object_get_string(json_object_array_get_idx(w, 0)),
		                    "a warning");
		const char *b64 = kd_json_get_string(o, "response.patch");
		char *patch = NULL;
		assert_int_equal(kd_base64_decode(b64, strlen(b64), &patch, NULL), 0);
		json_object *ops = NULL;
		assert_int_equal(kd_json_parse(patch, strlen(patch), 0, "patch", &ops, NULL), 0);
		/* apply it to the object as sent */
		json_object *rv = NULL;
		assert_int_equal(kd_json_parse(t, strlen(t), 0, "review", &rv, NULL), 0);
		json_object *obj = kd_json_get_object(rv, "request.object");
		apply_patch(obj, ops);
		int64_t reps = -1;
		assert_int_equal(kd_json_get_int64(obj, "spec.replicas", &reps), 0);
		assert_int_equal(reps, 0);
		assert_string_equal(
		    kd_json_get_string(obj,
		                       "metadata.annotations.kubedirect\\.dev/initial-replicas"),
		    "5");
		if (anns[i]) /* the existing annotations are kept */
			assert_string_equal(kd_json_get_string(obj, "metadata.annotations.a"), "b");
		json_object_put(rv);
		json_object_put(ops);
		free(patch);
		json_object_put(o);
		free(resp);
		kd_adm_req_fini(&r);
		free(t);
	}
	/* unchanged: no patch; v1beta1 echoed */
	struct kd_adm_req r;
	char *t = review("admission.k8s.io/v1beta1", "CREATE", "Deployment", rev_label, NULL, "1");
	decode_ok(t, &r);
	char *resp = kd_adm_response(&r, false, NULL);
	assert_non_null(strstr(resp, "\"apiVersion\":\"admission.k8s.io/v1beta1\""));
	assert_null(strstr(resp, "patch"));
	assert_null(strstr(resp, "warnings"));
	assert_non_null(strstr(resp, "\"allowed\":true"));
	free(resp);
	kd_adm_req_fini(&r);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(candidate_is_a_created_revision_deployment_with_replicas),
	    cmocka_unit_test(other_reviews_are_not_candidates),
	    cmocka_unit_test(malformed_reviews_are_refused_with_a_reason),
	    cmocka_unit_test(response_echoes_the_review_and_its_patch_gives_replicas_0),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
