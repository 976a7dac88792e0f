/* Unit tests for lib/kd_schedjson.c: Kubernetes quantities, Node objects and pod specs as
 * scheduler inputs, and one round through the real scheduler plugin with them. */
#include <errno.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kd/error.h"
#include "kd/json.h"
#include "kd/loop.h"
#include "kd/plugin.h"
#include "kd/schedjson.h"
#include "kd/stage.h"

static struct json_object *parse(const char *text)
{
	struct json_object *o = NULL;
	struct kd_error *err = NULL;
	if (kd_json_parse(text, strlen(text), 0, "test", &o, &err) < 0)
		fail_msg("bad test JSON: %s", err->msg);
	return o;
}

static void quantities_round_up_like_kubernetes(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		bool milli;
		int64_t want;
	} ok[] = {
	    {"0", false, 0},
	    {"1", false, 1},
	    {"1", true, 1000},
	    {"100m", true, 100},
	    {"100m", false, 1}, /* rounds up */
	    {"1.5", true, 1500},
	    {"0.1", true, 100},
	    {".5", true, 500},
	    {"2.", false, 2},
	    {"+3", false, 3},
	    {"1k", false, 1000},
	    {"1Ki", false, 1024},
	    {"128974848", false, 128974848},
	    {"129e6", false, 129000000},
	    {"129M", false, 129000000},
	    {"123Mi", false, 128974848},
	    {"1.5Gi", false, 1610612736},
	    {"8Ei", false, INT64_MAX}, /* 2^63 does not fit */
	    {"1E", false, 1000000000000000000},
	    {"1E3", false, 1000},
	    {"1e-3", true, 1},
	    {"250u", true, 1}, /* 0.25m rounds up to 1m */
	    {"1n", false, 1},
	    {"3900m", true, 3900},
	    {"0.000", true, 0},
	    {"0000000000000000000000000001", false, 1},
	    {"1.000000000000000000000000001", false, 2}, /* a dropped digit still rounds up */
	    {"9223372036854775807", false, INT64_MAX},
	    {"110", false, 110},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int64_t v = -7;
		int rc = kd_quantity_parse(ok[i].s, ok[i].milli, &v);
		if (ok[i].want == INT64_MAX && strcmp(ok[i].s, "8Ei") == 0) {
			assert_int_equal(rc, -ERANGE);
			assert_int_equal(v, -7);
			continue;
		}
		if (rc != 0 || v != ok[i].want)
			fail_msg("%s (milli %d): rc %d value %lld, want %lld", ok[i].s, ok[i].milli,
			         rc, (long long)v, (long long)ok[i].want);
	}
	static const char *const bad[] = {"",  "-1",   "abc", "1x", "1KiB", "1ki", "1e",  "e3",
	                                  ".", "1..2", "1 ",  " 1", "1m5",  "++1", "1e+", "Mi"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t v = -7;
		if (kd_quantity_parse(bad[i], false, &v) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_int_equal(v, -7);
	}
	int64_t v;
	assert_int_equal(kd_quantity_parse("9223372036854775808", false, &v), -ERANGE);
	assert_int_equal(kd_quantity_parse("9223372036854775807", true, &v), -ERANGE);
	assert_int_equal(kd_quantity_parse("1e400", false, &v), -ERANGE);
	assert_int_equal(kd_quantity_parse("1e-400", false, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(kd_quantity_parse(NULL, false, &v), -EINVAL);
}

static const char *node_json =
    "{\"metadata\":{\"name\":\"worker-1\",\"labels\":{\"kubernetes.io/os\":\"linux\","
    "\"zone\":\"a\"}},"
    "\"spec\":{\"podCIDR\":\"10.244.1.0/24\",\"taints\":[{\"key\":\"dedicated\","
    "\"value\":\"gpu\",\"effect\":\"NoSchedule\"},{\"key\":\"spot\",\"effect\":"
    "\"PreferNoSchedule\"}]},"
    "\"status\":{\"allocatable\":{\"cpu\":\"3900m\",\"memory\":\"7Gi\",\"pods\":\"110\","
    "\"ephemeral-storage\":\"10Gi\"},\"conditions\":[{\"type\":\"MemoryPressure\",\"status\":"
    "\"False\"},{\"type\":\"Ready\",\"status\":\"True\"}]}}";

static void node_objects_become_node_info(void **state)
{
	(void)state;
	kd_autojson struct json_object *n = parse(node_json);
	struct kd_node_view v;
	struct kd_error *err = NULL;
	assert_int_equal(kd_node_view_init(&v, n, &err), 0);
	assert_string_equal(v.info.name, "worker-1");
	assert_true(v.info.ready);
	assert_true(v.info.schedulable);
	assert_string_equal(v.info.pod_cidr, "10.244.1.0/24");
	assert_int_equal(v.info.allocatable.cpu_milli, 3900);
	assert_int_equal(v.info.allocatable.memory_bytes, 7ll * 1024 * 1024 * 1024);
	assert_int_equal(v.info.allocatable.pods, 110);
	assert_int_equal(v.info.n_labels, 2);
	assert_string_equal(v.info.labels[0].key, "kubernetes.io/os");
	assert_string_equal(v.info.labels[0].value, "linux");
	assert_int_equal(v.info.n_taints, 2);
	assert_string_equal(v.info.taints[0].key, "dedicated");
	assert_string_equal(v.info.taints[0].value, "gpu");
	assert_int_equal(v.info.taints[0].effect, KD_TAINT_NO_SCHEDULE);
	assert_null(v.info.taints[1].value);
	assert_int_equal(v.info.taints[1].effect, KD_TAINT_PREFER_NO_SCHEDULE);
	kd_node_view_fini(&v);

	/* cordoned, not ready (Unknown), no labels or taints, integer pods */
	kd_autojson struct json_object *n2 =
	    parse("{\"metadata\":{\"name\":\"w2\"},\"spec\":{\"unschedulable\":true},"
	          "\"status\":{\"allocatable\":{\"cpu\":\"2\",\"memory\":\"1G\",\"pods\":5},"
	          "\"conditions\":[{\"type\":\"Ready\",\"status\":\"Unknown\"}]}}");
	assert_int_equal(kd_node_view_init(&v, n2, &err), 0);
	assert_false(v.info.ready);
	assert_false(v.info.schedulable);
	assert_int_equal(v.info.allocatable.cpu_milli, 2000);
	assert_int_equal(v.info.allocatable.memory_bytes, 1000000000);
	assert_int_equal(v.info.allocatable.pods, 5);
	assert_int_equal(v.info.n_labels, 0);
	assert_int_equal(v.info.n_taints, 0);
	kd_node_view_fini(&v);

	/* no conditions at all: not ready */
	kd_autojson struct json_object *n3 = parse("{\"metadata\":{\"name\":\"w3\"}}");
	assert_int_equal(kd_node_view_init(&v, n3, &err), 0);
	assert_false(v.info.ready);
	assert_int_equal(v.info.allocatable.cpu_milli, 0);
	kd_node_view_fini(&v);
}

static void bad_node_objects_are_refused_with_the_field(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		const char *msg;
	} cases[] = {
	    {"{\"metadata\":{}}", "node without metadata.name"},
	    {"{\"metadata\":{\"name\":\"x\"},\"status\":{\"allocatable\":{\"cpu\":\"lots\"}}}",
	     "node x: status.allocatable.cpu \"lots\": not a quantity"},
	    {"{\"metadata\":{\"name\":\"x\"},\"status\":{\"allocatable\":{\"memory\":\"-1Gi\"}}}",
	     "node x: status.allocatable.memory \"-1Gi\": not a quantity"},
	    {"{\"metadata\":{\"name\":\"x\"},\"status\":{\"allocatable\":{\"pods\":\"1e30\"}}}",
	     "node x: status.allocatable.pods \"1e30\": out of range"},
	    {"{\"metadata\":{\"name\":\"x\"},\"spec\":{\"taints\":[{\"key\":\"k\",\"effect\":"
	     "\"Sometimes\"}]}}",
	     "node x: spec.taints[0]: needs a key and an effect (NoSchedule, PreferNoSchedule, "
	     "NoExecute), got key \"k\" effect \"Sometimes\""},
	    {"{\"metadata\":{\"name\":\"x\"},\"spec\":{\"taints\":{}}}",
	     "node x: spec.taints: not an array"},
	    {"{\"metadata\":{\"name\":\"x\",\"labels\":{\"a\":1}}}",
	     "node x: metadata.labels[a]: not a string"},
	    {"{\"metadata\":{\"name\":\"x\"},\"spec\":{\"unschedulable\":\"maybe\"}}",
	     "node x: spec.unschedulable: not a boolean"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kd_autojson struct json_object *n = parse(cases[i].json);
		struct kd_node_view v;
		struct kd_error *err = NULL;
		assert_true(kd_node_view_init(&v, n, &err) < 0);
		assert_non_null(err);
		assert_string_equal(err->msg, cases[i].msg);
		assert_null(v.labels);
		assert_null(v.taints);
		kd_error_free(err);
	}
}

static void pod_specs_become_requests_selectors_and_tolerations(void **state)
{
	(void)state;
	/* Knative's two containers; the user's has only limits (requests default to them) */
	kd_autojson struct json_object *spec = parse(
	    "{\"containers\":[{\"name\":\"user-container\",\"resources\":{\"limits\":{\"cpu\":"
	    "\"1\",\"memory\":\"256Mi\"}}},{\"name\":\"queue-proxy\",\"resources\":{\"requests\":"
	    "{\"cpu\":\"25m\"},\"limits\":{\"cpu\":\"1\"}}}],"
	    "\"nodeSelector\":{\"zone\":\"a\"},"
	    "\"tolerations\":[{\"key\":\"dedicated\",\"operator\":\"Equal\",\"value\":\"gpu\","
	    "\"effect\":\"NoSchedule\"},{\"operator\":\"Exists\"},{\"key\":\"spot\"}]}");
	struct kd_pod_view v;
	struct kd_error *err = NULL;
	assert_int_equal(kd_pod_view_init(&v, spec, &err), 0);
	assert_int_equal(v.requests.cpu_milli, 1025);
	assert_int_equal(v.requests.memory_bytes, 256ll * 1024 * 1024);
	assert_int_equal(v.requests.pods, 1);
	assert_int_equal(v.n_node_selector, 1);
	assert_string_equal(v.node_selector[0].key, "zone");
	assert_string_equal(v.node_selector[0].value, "a");
	assert_int_equal(v.n_tolerations, 3);
	assert_int_equal(v.tolerations[0].op, KD_TOLERATION_EQUAL);
	assert_string_equal(v.tolerations[0].value, "gpu");
	assert_int_equal(v.tolerations[0].effect, KD_TAINT_NO_SCHEDULE);
	assert_null(v.tolerations[1].key);
	assert_int_equal(v.tolerations[1].op, KD_TOLERATION_EXISTS);
	assert_int_equal(v.tolerations[1].effect, KD_TAINT_ANY);
	assert_int_equal(v.tolerations[2].op, KD_TOLERATION_EQUAL); /* default operator */
	struct kd_pod_request req = {.key = "default/p"};
	kd_pod_view_apply(&v, &req);
	assert_int_equal(req.requests.cpu_milli, 1025);
	assert_ptr_equal(req.tolerations, v.tolerations);
	assert_int_equal(req.n_node_selector, 1);
	kd_pod_view_fini(&v);

	/* init containers: the largest regular one (plus sidecars before it) vs the sum; overhead
	 */
	kd_autojson struct json_object *spec2 = parse(
	    "{\"initContainers\":["
	    "{\"name\":\"side\",\"restartPolicy\":\"Always\",\"resources\":{\"requests\":{\"cpu\":"
	    "\"100m\",\"memory\":\"10Mi\"}}},"
	    "{\"name\":\"big-init\",\"resources\":{\"requests\":{\"cpu\":\"2\",\"memory\":\"1Mi\"}}"
	    "}"
	    "],\"containers\":[{\"name\":\"c\",\"resources\":{\"requests\":{\"cpu\":\"500m\","
	    "\"memory\":\"100Mi\"}}}],\"overhead\":{\"cpu\":\"10m\",\"memory\":\"1Mi\"}}");
	assert_int_equal(kd_pod_view_init(&v, spec2, &err), 0);
	assert_int_equal(v.requests.cpu_milli, 2100 + 10);                    /* init + side */
	assert_int_equal(v.requests.memory_bytes, (110ll + 1) * 1024 * 1024); /* c + side */
	assert_int_equal(v.n_tolerations, 0);
	assert_null(v.tolerations);
	kd_pod_view_fini(&v);

	/* no containers, no resources: zero requests, one pod */
	kd_autojson struct json_object *spec3 = parse("{}");
	assert_int_equal(kd_pod_view_init(&v, spec3, &err), 0);
	assert_int_equal(v.requests.cpu_milli, 0);
	assert_int_equal(v.requests.pods, 1);
	kd_pod_view_fini(&v);
}

static void bad_pod_specs_are_refused_with_the_field(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		const char *msg;
	} cases[] = {
	    {"[]", "pod spec: not an object"},
	    {"{\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"fast\"}}}]}",
	     "containers[0].resources.requests.cpu \"fast\": not a quantity"},
	    {"{\"containers\":[{\"resources\":{\"limits\":{\"memory\":5}}}]}",
	     "containers[0].resources.limits.memory \"5\": not a quantity"},
	    {"{\"initContainers\":[{\"resources\":{\"requests\":{\"memory\":\"1e99\"}}}]}",
	     "initContainers[0].resources.requests.memory \"1e99\": out of range"},
	    {"{\"tolerations\":[{\"key\":\"k\",\"operator\":\"Maybe\"}]}",
	     "tolerations[0]: bad toleration (key \"k\", operator \"Maybe\", effect \"\")"},
	    {"{\"tolerations\":[{\"operator\":\"Equal\",\"value\":\"v\"}]}",
	     "tolerations[0]: bad toleration (key \"\", operator \"Equal\", effect \"\")"},
	    {"{\"tolerations\":[{\"key\":\"k\",\"effect\":\"Never\"}]}",
	     "tolerations[0]: bad toleration (key \"k\", operator \"\", effect \"Never\")"},
	    {"{\"nodeSelector\":[\"zone\"]}", "nodeSelector: not an object"},
	    {"{\"overhead\":{\"cpu\":\"x\"}}", "overhead.cpu \"x\": not a quantity"},
	    {"{\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"9000000000000000\"}}},"
	     "{\"resources\":{\"requests\":{\"cpu\":\"9000000000000000\"}}}]}",
	     "containers: requests out of range"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kd_autojson struct json_object *s = parse(cases[i].json);
		struct kd_pod_view v;
		struct kd_error *err = NULL;
		assert_true(kd_pod_view_init(&v, s, &err) < 0);
		assert_non_null(err);
		if (strcmp(err->msg, cases[i].msg) != 0)
			fail_msg("case %zu: \"%s\", want \"%s\"", i, err->msg, cases[i].msg);
		assert_null(v.tolerations);
		assert_null(v.node_selector);
		kd_error_free(err);
	}
}

/* The host's path: Node and template JSON through these views into the real scheduler plugin. */
static void views_drive_the_scheduler_plugin(void **state)
{
	(void)state;
	setenv("KD_PLUGIN_DIR", KD_BUILD_DIR "/plugins", 1);
	struct kd_loop *loop = kd_loop_new();
	assert_non_null(loop);
	struct kd_host host;
	kd_host_init(&host, loop, "test-schedjson");
	struct kd_plugin_handle *h = NULL;
	struct kd_error *err = NULL;
	assert_int_equal(kd_plugin_load("scheduler", KD_PLUGIN_SCHEDULER, NULL, &host, &h, &err),
	                 0);
	const struct kd_scheduler_ops *ops = kd_plugin_ops(h);
	void *st = kd_plugin_state(h);

	kd_autojson struct json_object *n = parse(node_json);
	struct kd_node_view nv;
	assert_int_equal(kd_node_view_init(&nv, n, &err), 0);
	assert_int_equal(ops->node_update(st, &nv.info, &err), 0);
	kd_node_view_fini(&nv);

	kd_autojson struct json_object *plain =
	    parse("{\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"1\"}}}]}");
	kd_autojson struct json_object *tolerant =
	    parse("{\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"1\"}}}],"
	          "\"nodeSelector\":{\"zone\":\"a\"},"
	          "\"tolerations\":[{\"key\":\"dedicated\",\"operator\":\"Exists\"}]}");
	struct kd_pod_view pv;
	char node[KD_NODE_NAME_MAX];
	assert_int_equal(kd_pod_view_init(&pv, plain, &err), 0);
	struct kd_pod_request req = {.key = "default/plain", .revision = "default/r"};
	kd_pod_view_apply(&pv, &req);
	assert_int_equal(ops->place(st, &req, node, &err), -ENOSPC);
	assert_string_equal(err->msg, "no node fits pod default/plain: 1 node: 1 taint "
	                              "{dedicated=gpu:NoSchedule} not tolerated");
	kd_error_free(err);
	err = NULL;
	kd_pod_view_fini(&pv);

	assert_int_equal(kd_pod_view_init(&pv, tolerant, &err), 0);
	int placed = 0;
	for (int i = 0; i < 10; i++) {
		char key[32];
		snprintf(key, sizeof(key), "default/t%d", i);
		req = (struct kd_pod_request){.key = key, .revision = "default/r"};
		kd_pod_view_apply(&pv, &req);
		if (ops->place(st, &req, node, &err) == 0) {
			assert_string_equal(node, "worker-1");
			placed++;
		} else {
			kd_error_free(err);
			err = NULL;
		}
	}
	assert_int_equal(placed, 3); /* 3900m allocatable, 1 cpu each */
	kd_pod_view_fini(&pv);
	kd_plugin_unload(h);
	kd_loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(quantities_round_up_like_kubernetes),
	    cmocka_unit_test(node_objects_become_node_info),
	    cmocka_unit_test(bad_node_objects_are_refused_with_the_field),
	    cmocka_unit_test(pod_specs_become_requests_selectors_and_tolerations),
	    cmocka_unit_test(bad_pod_specs_are_refused_with_the_field),
	    cmocka_unit_test(views_drive_the_scheduler_plugin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
