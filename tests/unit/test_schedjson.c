/* Unit tests for lib/kd_schedjson.c: Node objects and pod specs as scheduler inputs (pod
 * requests checked against cases ported from Kubernetes), and one round through the real
 * scheduler plugin with them. Quantities: test_quantity.c. */
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

/* Pod requests against Kubernetes' own cases, ported from
 * kubernetes/kubernetes staging/src/k8s.io/component-helpers/resource/helpers_test.go:
 *  - TestPodRequestsAndLimits: "just-limit-no-overhead", "just-overhead", "req-and-overhead",
 *    "all-req-lim-and-overhead", "req-some-lim-and-overhead" (getPod puts the same resources on
 *    one container and one init container);
 *  - TestPodRequestsAndLimitsWithoutOverhead: "two container no overhead - should just be sum of
 *    containers", "two container with overhead - shouldn't consider overhead", "two container
 *    with overhead, massive init - should just be the largest init" (those run with
 *    ExcludeOverhead; kube-scheduler counts overhead, so the overhead is added here);
 *  - TestPodResourceRequests: "nil options, larger init container", "nil options, larger
 *    containers", "pod overhead included", "restartable init container", "multiple restartable
 *    init containers", "multiple restartable and regular init containers", "restartable-init,
 *    init and regular";
 *  plus one case of ours, "pod level requests replace the container sum" (PodRequests'
 *  applyPodLevelResources: spec.resources.requests wins per resource, overhead still added).
 * Kubernetes' helpers see Pods the API Server has defaulted (requests from limits); templates are
 * not defaulted, so "just-limit-no-overhead" expects the limit as the request here. Memory
 * quantities without a suffix are bytes, as in the Go cases. */
static void pod_requests_match_kubernetes_resource_helpers(void **state)
{
	(void)state;
	/* specs in JSON with ' for " (readability); one container per line */
	static const struct {
		const char *name;
		const char *spec;
		int64_t cpu_milli, mem;
	} cases[] = {
	    {"just-limit-no-overhead",
	     "{'containers':[{'resources':{'limits':{'cpu':'9'}}}],"
	     " 'initContainers':[{'resources':{'limits':{'cpu':'9'}}}]}",
	     9000, 0},
	    {"just-overhead",
	     "{'containers':[{}],'initContainers':[{}],'overhead':{'cpu':'5','memory':'5'}}", 5000,
	     5},
	    {"req-and-overhead",
	     "{'containers':[{'resources':{'requests':{'cpu':'1','memory':'10'}}}],"
	     " 'initContainers':[{'resources':{'requests':{'cpu':'1','memory':'10'}}}],"
	     " 'overhead':{'cpu':'5','memory':'5'}}",
	     6000, 15},
	    {"all-req-lim-and-overhead",
	     "{'containers':[{'resources':{'requests':{'cpu':'1','memory':'10'},"
	     "                             'limits':{'cpu':'2','memory':'12'}}}],"
	     " 'initContainers':[{'resources':{'requests':{'cpu':'1','memory':'10'},"
	     "                                 'limits':{'cpu':'2','memory':'12'}}}],"
	     " 'overhead':{'cpu':'5','memory':'5'}}",
	     6000, 15},
	    {"req-some-lim-and-overhead",
	     "{'containers':[{'resources':{'requests':{'cpu':'1','memory':'10'},"
	     "                             'limits':{'cpu':'2'}}}],"
	     " 'initContainers':[{'resources':{'requests':{'cpu':'1','memory':'10'},"
	     "                                 'limits':{'cpu':'2'}}}],"
	     " 'overhead':{'cpu':'5','memory':'5'}}",
	     6000, 15},
	    {"two container no overhead - should just be sum of containers",
	     "{'containers':["
	     "  {'resources':{'requests':{'cpu':'1','memory':'5'},"
	     "                'limits':{'cpu':'2','memory':'10'}}},"
	     "  {'resources':{'requests':{'cpu':'4','memory':'12'},"
	     "                'limits':{'cpu':'8','memory':'24'}}}]}",
	     5000, 17},
	    {"two container with overhead (counted here)",
	     "{'overhead':{'cpu':'3','memory':'8'},'containers':["
	     "  {'resources':{'requests':{'cpu':'1','memory':'5'},"
	     "                'limits':{'cpu':'2','memory':'10'}}},"
	     "  {'resources':{'requests':{'cpu':'4','memory':'12'},"
	     "                'limits':{'cpu':'8','memory':'24'}}}]}",
	     8000, 25},
	    {"two container with overhead, massive init (overhead counted here)",
	     "{'overhead':{'cpu':'3','memory':'8'},'containers':["
	     "  {'resources':{'requests':{'cpu':'1','memory':'5'},"
	     "                'limits':{'cpu':'2','memory':'10'}}},"
	     "  {'resources':{'requests':{'cpu':'4','memory':'12'},"
	     "                'limits':{'cpu':'8','memory':'24'}}}"
	     " ],'initContainers':["
	     "  {'resources':{'requests':{'cpu':'1','memory':'5'},"
	     "                'limits':{'cpu':'1','memory':'5'}}},"
	     "  {'resources':{'requests':{'cpu':'40','memory':'120'},"
	     "                'limits':{'cpu':'80','memory':'240'}}}]}",
	     43000, 128},
	    {"nil options, larger init container",
	     "{'initContainers':[{'resources':{'requests':{'cpu':'4'}}}],"
	     " 'containers':[{'resources':{'requests':{'cpu':'1'}}}]}",
	     4000, 0},
	    {"nil options, larger containers",
	     "{'initContainers':[{'resources':{'requests':{'cpu':'2'}}}],"
	     " 'containers':[{'resources':{'requests':{'cpu':'2'}}},"
	     "               {'resources':{'requests':{'cpu':'3'}}}]}",
	     5000, 0},
	    {"pod overhead included",
	     "{'overhead':{'cpu':'1','memory':'1Gi'},"
	     " 'initContainers':[{'resources':{'requests':{'cpu':'2'},'limits':{'cpu':'2'}}}],"
	     " 'containers':[{'resources':{'requests':{'cpu':'2'}}},"
	     "               {'resources':{'requests':{'cpu':'3'}}}]}",
	     6000, 1024ll * 1024 * 1024},
	    {"restartable init container",
	     "{'initContainers':[{'restartPolicy':'Always','resources':{'requests':{'cpu':'1'}}}],"
	     " 'containers':[{'resources':{'requests':{'cpu':'1'}}}]}",
	     2000, 0},
	    {"multiple restartable init containers",
	     "{'initContainers':["
	     "  {'resources':{'requests':{'cpu':'5'}}},"
	     "  {'restartPolicy':'Always','resources':{'requests':{'cpu':'1'}}},"
	     "  {'restartPolicy':'Always','resources':{'requests':{'cpu':'2'}}},"
	     "  {'restartPolicy':'Always','resources':{'requests':{'cpu':'3'}}}],"
	     " 'containers':[{'resources':{'requests':{'cpu':'1'}}}]}",
	     7000, 0},
	    {"multiple restartable and regular init containers",
	     "{'initContainers':["
	     "  {'resources':{'requests':{'cpu':'5'}}},"
	     "  {'restartPolicy':'Always','resources':{'requests':{'cpu':'1'}}},"
	     "  {'restartPolicy':'Always','resources':{'requests':{'cpu':'2'}}},"
	     "  {'resources':{'requests':{'cpu':'5'}}},"
	     "  {'restartPolicy':'Always','resources':{'requests':{'cpu':'3'}}}],"
	     " 'containers':[{'resources':{'requests':{'cpu':'1'}}}]}",
	     8000, 0},
	    {"restartable-init, init and regular",
	     "{'initContainers':["
	     "  {'restartPolicy':'Always','resources':{'requests':{'cpu':'10'}}},"
	     "  {'resources':{'requests':{'cpu':'200'}}}],"
	     " 'containers':[{'resources':{'requests':{'cpu':'100'}}}]}",
	     210000, 0},
	    {"pod level requests replace the container sum",
	     "{'resources':{'requests':{'cpu':'3'}},'overhead':{'cpu':'1'},"
	     " 'containers':[{'resources':{'requests':{'cpu':'1','memory':'10'}}}]}",
	     4000, 10},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char json[1024];
		snprintf(json, sizeof(json), "%s", cases[i].spec);
		for (char *c = json; *c; c++)
			if (*c == '\'')
				*c = '"';
		kd_autojson struct json_object *spec = parse(json);
		struct kd_pod_view v;
		struct kd_error *err = NULL;
		if (kd_pod_view_init(&v, spec, &err) < 0)
			fail_msg("%s: %s", cases[i].name, err->msg);
		if (v.requests.cpu_milli != cases[i].cpu_milli ||
		    v.requests.memory_bytes != cases[i].mem || v.requests.pods != 1)
			fail_msg("%s: cpu %lldm memory %lld pods %lld, want %lldm %lld 1",
			         cases[i].name, (long long)v.requests.cpu_milli,
			         (long long)v.requests.memory_bytes, (long long)v.requests.pods,
			         (long long)cases[i].cpu_milli, (long long)cases[i].mem);
		kd_pod_view_fini(&v);
	}
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
	    cmocka_unit_test(node_objects_become_node_info),
	    cmocka_unit_test(bad_node_objects_are_refused_with_the_field),
	    cmocka_unit_test(pod_specs_become_requests_selectors_and_tolerations),
	    cmocka_unit_test(pod_requests_match_kubernetes_resource_helpers),
	    cmocka_unit_test(bad_pod_specs_are_refused_with_the_field),
	    cmocka_unit_test(views_drive_the_scheduler_plugin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
