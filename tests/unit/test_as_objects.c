/* Unit tests for kd-autoscaler's pure object builders (autoscaler-shim/objects.c): the SKS-like
 * Services and Endpoints as Knative shapes them, the PodAutoscaler status patch (Ready derived
 * from Active/ScaleTargetInitialized/SKSReady, lastTransitionTime kept across unchanged
 * statuses) and Events. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "../../autoscaler-shim/objects.c" /* NOLINT(bugprone-suspicious-include) */

static const char *pa_json =
    "{\"apiVersion\":\"autoscaling.internal.knative.dev/v1alpha1\",\"kind\":\"PodAutoscaler\","
    "\"metadata\":{\"name\":\"hello-00001\",\"namespace\":\"demo\",\"uid\":\"pa-uid\","
    "\"generation\":2,\"labels\":{\"serving.knative.dev/revision\":\"hello-00001\",\"app\":"
    "\"hello-00001\"},\"annotations\":{\"autoscaling.knative.dev/class\":\"kd.kubedirect.dev\","
    "\"autoscaling.knative.dev/metric\":\"concurrency\"}},\"spec\":{\"protocolType\":\"http1\"},"
    "\"status\":{\"conditions\":[{\"type\":\"Active\",\"status\":\"False\",\"reason\":"
    "\"NoTraffic\",\"lastTransitionTime\":\"2026-01-01T00:00:00Z\"},{\"type\":\"SKSReady\","
    "\"status\":\"Unknown\",\"lastTransitionTime\":\"2026-01-01T00:00:01Z\"}]}}";

static json_object *pa(void)
{
	json_object *o = json_tokener_parse(pa_json);
	assert_non_null(o);
	return o;
}

static void public_service_and_endpoints_are_shaped_like_knative(void **state)
{
	(void)state;
	kd_autojson json_object *p = pa();
	kd_autojson json_object *s = kd_as_build_public_service(p);
	assert_string_equal(kd_json_get_string(s, "metadata.name"), "hello-00001");
	assert_string_equal(
	    kd_json_get_string(s,
	                       "metadata.labels.networking\\.internal\\.knative\\.dev/serviceType"),
	    "Public");
	assert_string_equal(
	    kd_json_get_string(s, "metadata.labels.networking\\.internal\\.knative\\.dev/"
	                          "serverlessservice"),
	    "hello-00001");
	assert_string_equal(kd_json_get_string(s, "metadata.labels.app"), "hello-00001");
	assert_string_equal(
	    kd_json_get_string(s, "metadata.annotations.autoscaling\\.knative\\.dev/metric"),
	    "concurrency");
	assert_null(kd_json_get(s, "metadata.annotations.autoscaling\\.knative\\.dev/class"));
	assert_string_equal(kd_json_get_string(s, "metadata.ownerReferences.0.kind"),
	                    "PodAutoscaler");
	assert_string_equal(kd_json_get_string(s, "metadata.ownerReferences.0.uid"), "pa-uid");
	assert_null(kd_json_get(s, "spec.selector"));
	int64_t v = 0;
	assert_string_equal(kd_json_get_string(s, "spec.ports.0.name"), "http");
	assert_int_equal(kd_json_get_int64(s, "spec.ports.0.port", &v), 0);
	assert_int_equal(v, 80);
	assert_int_equal(kd_json_get_int64(s, "spec.ports.0.targetPort", &v), 0);
	assert_int_equal(v, 8012);
	assert_string_equal(kd_json_get_string(s, "spec.ports.1.name"), "https");
	assert_null(kd_json_get(s, "spec.ports.0.appProtocol"));
	/* the PA's labels were copied, not moved */
	assert_null(
	    kd_json_get(p, "metadata.labels.networking\\.internal\\.knative\\.dev/serviceType"));

	const char *ips[] = {"10.244.1.9", "10.244.0.3", "10.244.1.9"};
	kd_autojson json_object *e = kd_as_build_endpoints(p, ips, 3);
	assert_string_equal(kd_json_get_string(e, "kind"), "Endpoints");
	json_object *addrs = kd_json_get_array(e, "subsets.0.addresses");
	assert_int_equal(json_object_array_length(addrs), 2); /* sorted, deduplicated */
	assert_string_equal(kd_json_get_string(e, "subsets.0.addresses.0.ip"), "10.244.0.3");
	assert_string_equal(kd_json_get_string(e, "subsets.0.addresses.1.ip"), "10.244.1.9");
	assert_string_equal(kd_json_get_string(e, "subsets.0.ports.0.name"), "http");
	assert_int_equal(kd_json_get_int64(e, "subsets.0.ports.0.port", &v), 0);
	assert_int_equal(v, 8012);
	kd_autojson json_object *none = kd_as_build_endpoints(p, NULL, 0);
	assert_null(kd_json_get(none, "subsets"));
	/* same input in another order: same object (no-op puts in the write-back cache) */
	const char *ips2[] = {"10.244.0.3", "10.244.1.9"};
	kd_autojson json_object *e2 = kd_as_build_endpoints(p, ips2, 2);
	assert_true(json_object_equal(e, e2));
}

static void h2c_uses_8013(void **state)
{
	(void)state;
	kd_autojson json_object *p = pa();
	json_object_object_add(kd_json_get_object(p, "spec"), "protocolType",
	                       json_object_new_string("h2c"));
	kd_autojson json_object *s = kd_as_build_public_service(p);
	assert_string_equal(kd_json_get_string(s, "spec.ports.0.name"), "http2");
	assert_string_equal(kd_json_get_string(s, "spec.ports.0.appProtocol"), "kubernetes.io/h2c");
	int64_t v = 0;
	assert_int_equal(kd_json_get_int64(s, "spec.ports.0.targetPort", &v), 0);
	assert_int_equal(v, 8013);
}

static void private_service_selects_and_has_knative_ports(void **state)
{
	(void)state;
	kd_autojson json_object *p = pa();
	kd_autojson json_object *sel =
	    json_tokener_parse("{\"serving.knative.dev/revisionUID\":\"r-uid\"}");
	kd_autojson json_object *s = kd_as_build_private_service(p, sel);
	assert_string_equal(kd_json_get_string(s, "metadata.name"), "hello-00001-private");
	assert_string_equal(
	    kd_json_get_string(s,
	                       "metadata.labels.networking\\.internal\\.knative\\.dev/serviceType"),
	    "Private");
	assert_string_equal(
	    kd_json_get_string(s, "spec.selector.serving\\.knative\\.dev/revisionUID"), "r-uid");
	const char *names[] = {"http", "https", "http-autometric", "http-usermetric", "http-istio"};
	const int ports[] = {80, 443, 9090, 9091, 8012};
	json_object *arr = kd_json_get_array(s, "spec.ports");
	assert_int_equal(json_object_array_length(arr), 5);
	for (size_t i = 0; i < 5; i++) {
		json_object *port = json_object_array_get_idx(arr, i);
		int64_t v = 0;
		assert_string_equal(kd_json_get_string(port, "name"), names[i]);
		assert_int_equal(kd_json_get_int64(port, "port", &v), 0);
		assert_int_equal(v, ports[i]);
	}
	assert_string_equal(kd_json_get_string(s, "spec.ports.2.targetPort"), "http-autometric");
}

static json_object *find_cond(json_object *patch, const char *type)
{
	json_object *conds = kd_json_get_array(patch, "status.conditions");
	for (size_t i = 0; conds && i < json_object_array_length(conds); i++) {
		json_object *c = json_object_array_get_idx(conds, i);
		if (strcmp(kd_json_get_string(c, "type"), type) == 0)
			return c;
	}
	fail_msg("no condition %s", type);
	return NULL;
}

static void status_derives_ready_and_keeps_transition_times(void **state)
{
	(void)state;
	kd_autojson json_object *p = pa();
	const uint64_t now = 1800000000ull * 1000000000ull; /* 2027-01-15T08:00:00Z */
	struct kd_as_status st = {
	    .observed_generation = 2,
	    .service_name = "hello-00001",
	    .metrics_service_name = "hello-00001-private",
	    .desired = 0,
	    .actual = 0,
	    .active = {"False", "NoTraffic", "The target is not receiving traffic."},
	    .initialized = {.status = "True"},
	    .sks_ready = {.status = "True"},
	};
	kd_autojson json_object *s = kd_as_build_status(&st, p, now);
	int64_t v = -1;
	assert_int_equal(kd_json_get_int64(s, "status.observedGeneration", &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(kd_json_get_int64(s, "status.desiredScale", &v), 0);
	assert_int_equal(v, 0);
	assert_string_equal(kd_json_get_string(s, "status.serviceName"), "hello-00001");
	json_object *active = find_cond(s, "Active");
	/* unchanged status keeps its transition time; changed ones get now */
	assert_string_equal(kd_json_get_string(active, "lastTransitionTime"),
	                    "2026-01-01T00:00:00Z");
	assert_string_equal(kd_json_get_string(find_cond(s, "SKSReady"), "lastTransitionTime"),
	                    "2027-01-15T08:00:00Z");
	json_object *ready = find_cond(s, "Ready");
	assert_string_equal(kd_json_get_string(ready, "status"), "False");
	assert_string_equal(kd_json_get_string(ready, "reason"), "NoTraffic");
	assert_null(kd_json_get(find_cond(s, "SKSReady"), "reason"));

	/* first False wins over an earlier Unknown; all True -> True; Unknown otherwise */
	st.active = (struct kd_as_cond){"Unknown", "Queued", "buffered"};
	st.sks_ready = (struct kd_as_cond){"False", "WriteFailed", "403"};
	kd_autojson json_object *s2 = kd_as_build_status(&st, NULL, now);
	assert_string_equal(kd_json_get_string(find_cond(s2, "Ready"), "reason"), "WriteFailed");
	st.sks_ready = (struct kd_as_cond){.status = "True"};
	kd_autojson json_object *s3 = kd_as_build_status(&st, NULL, now);
	assert_string_equal(kd_json_get_string(find_cond(s3, "Ready"), "status"), "Unknown");
	assert_string_equal(kd_json_get_string(find_cond(s3, "Ready"), "reason"), "Queued");
	st.active = (struct kd_as_cond){.status = "True"};
	st.desired = -1;
	st.actual = 3;
	kd_autojson json_object *s4 = kd_as_build_status(&st, NULL, now);
	assert_string_equal(kd_json_get_string(find_cond(s4, "Ready"), "status"), "True");
	assert_null(kd_json_get(s4, "status.desiredScale")); /* unknown: omitted */
	assert_int_equal(kd_json_get_int64(s4, "status.actualScale", &v), 0);
	assert_int_equal(v, 3);
}

static void event_names_the_object(void **state)
{
	(void)state;
	kd_autojson json_object *p = pa();
	kd_autojson json_object *e =
	    kd_as_build_event(p, "Warning", "FailedScheduling", "no node fits", 1000000000ull);
	assert_string_equal(kd_json_get_string(e, "involvedObject.kind"), "PodAutoscaler");
	assert_string_equal(kd_json_get_string(e, "involvedObject.uid"), "pa-uid");
	assert_string_equal(kd_json_get_string(e, "involvedObject.namespace"), "demo");
	assert_string_equal(kd_json_get_string(e, "metadata.namespace"), "demo");
	assert_string_equal(kd_json_get_string(e, "metadata.name"), "hello-00001.3b9aca00");
	assert_string_equal(kd_json_get_string(e, "type"), "Warning");
	assert_string_equal(kd_json_get_string(e, "source.component"), "kd-autoscaler");
	assert_string_equal(kd_json_get_string(e, "firstTimestamp"), "1970-01-01T00:00:01Z");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(public_service_and_endpoints_are_shaped_like_knative),
	    cmocka_unit_test(h2c_uses_8013),
	    cmocka_unit_test(private_service_selects_and_has_knative_ports),
	    cmocka_unit_test(status_derives_ready_and_keeps_transition_times),
	    cmocka_unit_test(event_names_the_object),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
