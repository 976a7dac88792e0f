/* Unit tests for the kd-node object builders (node-agent/objects.c, compiled into this binary
 * directly): Kubernetes time formats, IPv4 CIDR splitting, Node, Lease and Pod status objects.
 * The runtime's sandbox spec from a Pod: test_runtimejson.c. */
#include <errno.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "../../node-agent/objects.c" /* NOLINT(bugprone-suspicious-include) */

/* 2023-11-14T22:13:20.123456789Z */
#define T0 (1700000000ull * 1000000000ull + 123456789ull)
#define S  1000000000ull

static bool matches(const char *s, const char *re)
{
	regex_t r;
	assert_int_equal(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
	int rc = regexec(&r, s, 0, NULL, 0);
	regfree(&r);
	return rc == 0;
}

static struct json_object *parse(const char *s)
{
	struct json_object *o = NULL;
	assert_int_equal(kd_json_parse(s, strlen(s), 0, "test", &o, NULL), 0);
	return o;
}

static const char *cond_field(struct json_object *conds, const char *type, const char *field)
{
	size_t n = json_object_array_length(conds);
	for (size_t i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(conds, i);
		if (strcmp(kd_json_get_string(c, "type"), type) == 0)
			return kd_json_get_string(c, field);
	}
	return NULL;
}

/* ---- time ---- */

static void time_formats_are_rfc3339_and_micro(void **state)
{
	(void)state;
	char t[KD_NODE_TIME_LEN], m[KD_NODE_MICROTIME_LEN];
	assert_string_equal(kd_node_format_time(T0, t), "2023-11-14T22:13:20Z");
	assert_string_equal(kd_node_format_microtime(T0, m), "2023-11-14T22:13:20.123456Z");
	assert_string_equal(kd_node_format_microtime(1700000000ull * S, m),
	                    "2023-11-14T22:13:20.000000Z");
	uint64_t ns = 0;
	assert_int_equal(kd_node_parse_time("2023-11-14T22:13:20.123456Z", &ns), 0);
	assert_int_equal(ns, T0 - 789);
	assert_int_equal(kd_node_parse_time("2023-11-14T22:13:20Z", &ns), 0);
	assert_int_equal(ns, 1700000000ull * S);
	assert_int_equal(kd_node_parse_time("2023-11-14T22:13:20+01:00", &ns), -EINVAL);
	assert_int_equal(kd_node_parse_time("2023-11-14T22:13:20.Z", &ns), -EINVAL);
	assert_int_equal(kd_node_parse_time("garbage", &ns), -EINVAL);
	assert_int_equal(kd_node_parse_time(NULL, &ns), -EINVAL);
}

/* ---- CIDRs ---- */

static void cidr_parse_accepts_networks_and_rejects_bad_input(void **state)
{
	(void)state;
	struct kd_node_cidr c = {0};
	assert_int_equal(kd_node_cidr_parse("10.244.0.0/16", &c, NULL), 0);
	assert_int_equal(c.addr, 0x0af40000u);
	assert_int_equal(c.prefix, 16);
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_node_cidr_parse("10.244.1.0/16", &c, &err), -EINVAL);
	assert_non_null(strstr(kd_error_msg(err), "host bits set (network is 10.244.0.0)"));
	assert_int_equal(kd_node_cidr_parse("10.244.0.0", &c, NULL), -EINVAL);
	assert_int_equal(kd_node_cidr_parse("10.244.0.0/33", &c, NULL), -EINVAL);
	assert_int_equal(kd_node_cidr_parse("10.244.0.0/x", &c, NULL), -EINVAL);
	assert_int_equal(kd_node_cidr_parse("10.256.0.0/16", &c, NULL), -EINVAL);
	assert_int_equal(kd_node_cidr_parse("10.2.0/16", &c, NULL), -EINVAL);
	assert_int_equal(kd_node_cidr_parse("10.2.0.0.0/16", &c, NULL), -EINVAL);
	assert_int_equal(kd_node_cidr_parse("fd00::/64", &c, NULL), -EINVAL);
}

static void cidr_subnets_split_per_node(void **state)
{
	(void)state;
	struct kd_node_cidr base = {0}, sub = {0};
	assert_int_equal(kd_node_cidr_parse("10.244.0.0/16", &base, NULL), 0);
	assert_int_equal(kd_node_cidr_subnet(&base, 24, 3, &sub, NULL), 0);
	kd_autofree char *s3 = kd_node_cidr_format(&sub);
	assert_string_equal(s3, "10.244.3.0/24");
	assert_int_equal(kd_node_cidr_subnet(&base, 24, 255, &sub, NULL), 0);
	kd_autofree char *s255 = kd_node_cidr_format(&sub);
	assert_string_equal(s255, "10.244.255.0/24");
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_node_cidr_subnet(&base, 24, 256, &sub, &err), -ERANGE);
	assert_non_null(strstr(kd_error_msg(err), "only 256 subnets"));
	assert_int_equal(kd_node_cidr_subnet(&base, 8, 0, &sub, NULL), -EINVAL);
	assert_int_equal(kd_node_cidr_subnet(&base, 31, 0, &sub, NULL), -EINVAL);

	uint32_t ip;
	char buf[16];
	assert_int_equal(kd_node_cidr_subnet(&base, 24, 3, &sub, NULL), 0);
	assert_int_equal(kd_node_cidr_host(&sub, 1, &ip), 0);
	assert_string_equal(kd_node_ip_format(ip, buf), "10.244.3.1");
	assert_int_equal(kd_node_cidr_host(&sub, 254, &ip), 0);
	assert_string_equal(kd_node_ip_format(ip, buf), "10.244.3.254");
	assert_int_equal(kd_node_cidr_host(&sub, 255, &ip), -ERANGE); /* broadcast */
	assert_int_equal(kd_node_cidr_host(&sub, 0, &ip), -ERANGE);   /* network */
}

/* ---- Node ---- */

static struct kd_node_params node_params(void)
{
	struct kd_node_params p = {
	    .name = "kd-node-3",
	    .pod_cidr = "10.244.3.0/24",
	    .internal_ip = "172.31.0.4",
	    .cpu = "64",
	    .memory = "256Gi",
	    .max_pods = 250,
	    .kubelet_version = "v1.35.4",
	    .runtime_version = "kd-sim://0.1.0",
	    .ready = true,
	};
	return p;
}

static void node_has_labels_capacity_cidr_and_ready_conditions(void **state)
{
	(void)state;
	struct kd_node_params p = node_params();
	kd_autojson struct json_object *n = kd_node_build_node(&p, T0);
	assert_string_equal(kd_json_get_string(n, "apiVersion"), "v1");
	assert_string_equal(kd_json_get_string(n, "kind"), "Node");
	assert_string_equal(kd_json_get_string(n, "metadata.name"), "kd-node-3");
	assert_string_equal(kd_json_get_string(n, "metadata.labels.kubernetes\\.io/hostname"),
	                    "kd-node-3");
	assert_string_equal(kd_json_get_string(n, "metadata.labels.kubernetes\\.io/os"), "linux");
	assert_string_equal(kd_json_get_string(n, "metadata.labels.kubernetes\\.io/arch"), "amd64");
	assert_non_null(
	    kd_json_get_string(n, "metadata.labels.node\\.kubernetes\\.io/instance-type"));
	assert_string_equal(kd_json_get_string(n, "metadata.labels.kubedirect\\.dev/node-agent"),
	                    "kd-node");
	assert_string_equal(kd_json_get_string(n, "spec.podCIDR"), "10.244.3.0/24");
	assert_string_equal(kd_json_get_string(n, "spec.podCIDRs.0"), "10.244.3.0/24");
	assert_null(kd_json_get(n, "spec.taints"));

	assert_string_equal(kd_json_get_string(n, "status.capacity.cpu"), "64");
	assert_string_equal(kd_json_get_string(n, "status.capacity.memory"), "256Gi");
	assert_string_equal(kd_json_get_string(n, "status.capacity.pods"), "250");
	assert_string_equal(kd_json_get_string(n, "status.allocatable.pods"), "250");
	assert_string_equal(kd_json_get_string(n, "status.allocatable.cpu"), "64");
	assert_non_null(kd_json_get_string(n, "status.allocatable.ephemeral-storage"));

	struct json_object *conds = kd_json_get_array(n, "status.conditions");
	assert_non_null(conds);
	assert_int_equal(json_object_array_length(conds), 4);
	assert_string_equal(cond_field(conds, "Ready", "status"), "True");
	assert_string_equal(cond_field(conds, "Ready", "reason"), "KubeletReady");
	assert_string_equal(cond_field(conds, "Ready", "lastHeartbeatTime"),
	                    "2023-11-14T22:13:20Z");
	assert_string_equal(cond_field(conds, "MemoryPressure", "status"), "False");
	assert_string_equal(cond_field(conds, "MemoryPressure", "reason"),
	                    "KubeletHasSufficientMemory");
	assert_string_equal(cond_field(conds, "DiskPressure", "status"), "False");
	assert_string_equal(cond_field(conds, "PIDPressure", "status"), "False");

	assert_string_equal(kd_json_get_string(n, "status.addresses.0.type"), "InternalIP");
	assert_string_equal(kd_json_get_string(n, "status.addresses.0.address"), "172.31.0.4");
	assert_string_equal(kd_json_get_string(n, "status.addresses.1.type"), "Hostname");
	assert_string_equal(kd_json_get_string(n, "status.addresses.1.address"), "kd-node-3");
	int64_t port = 0;
	assert_int_equal(kd_json_get_int64(n, "status.daemonEndpoints.kubeletEndpoint.Port", &port),
	                 0);
	assert_int_equal(port, 10250);
	assert_string_equal(kd_json_get_string(n, "status.nodeInfo.kubeletVersion"), "v1.35.4");
	assert_string_equal(kd_json_get_string(n, "status.nodeInfo.operatingSystem"), "linux");
	assert_string_equal(kd_json_get_string(n, "status.nodeInfo.containerRuntimeVersion"),
	                    "kd-sim://0.1.0");
	assert_true(matches(kd_json_get_string(n, "status.nodeInfo.systemUUID"),
	                    "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"));
}

static void node_status_patch_keeps_transition_and_can_be_not_ready(void **state)
{
	(void)state;
	struct kd_node_params p = node_params();
	p.ready = false;
	p.kubelet_version = NULL;
	kd_autojson struct json_object *st = kd_node_build_status_patch(&p, T0 + 60 * S, T0);
	struct json_object *conds = kd_json_get_array(st, "status.conditions");
	assert_string_equal(cond_field(conds, "Ready", "status"), "False");
	assert_string_equal(cond_field(conds, "Ready", "reason"), "KubeletNotReady");
	assert_string_equal(cond_field(conds, "Ready", "lastHeartbeatTime"),
	                    "2023-11-14T22:14:20Z");
	assert_string_equal(cond_field(conds, "Ready", "lastTransitionTime"),
	                    "2023-11-14T22:13:20Z");
	assert_string_equal(kd_json_get_string(st, "status.nodeInfo.kubeletVersion"),
	                    KD_NODE_DEFAULT_KUBELET_VER);
	assert_null(kd_json_get(st, "metadata"));
	assert_null(kd_json_get(st, "spec"));
}

static void node_meta_patch_sets_pod_cidr_only_when_unset(void **state)
{
	(void)state;
	struct kd_node_params p = node_params();
	kd_autojson struct json_object *fresh = kd_node_build_meta_patch(&p, NULL);
	assert_string_equal(kd_json_get_string(fresh, "spec.podCIDR"), "10.244.3.0/24");
	assert_string_equal(kd_json_get_string(fresh, "metadata.labels.kubernetes\\.io/hostname"),
	                    "kd-node-3");
	kd_autojson struct json_object *existing = parse(
	    "{\"metadata\":{\"name\":\"kd-node-3\"},\"spec\":{\"podCIDR\":\"10.244.9.0/24\"}}");
	kd_autojson struct json_object *again = kd_node_build_meta_patch(&p, existing);
	assert_null(kd_json_get(again, "spec"));
	assert_string_equal(
	    kd_json_get_string(again, "metadata.annotations.node\\.alpha\\.kubernetes\\.io/ttl"),
	    "0");
}

/* ---- Lease ---- */

static void lease_has_holder_duration_microtime_and_owner(void **state)
{
	(void)state;
	kd_autojson struct json_object *l = kd_node_build_lease("kd-node-3", "uid-1", T0);
	assert_string_equal(kd_json_get_string(l, "apiVersion"), "coordination.k8s.io/v1");
	assert_string_equal(kd_json_get_string(l, "kind"), "Lease");
	assert_string_equal(kd_json_get_string(l, "metadata.namespace"), "kube-node-lease");
	assert_string_equal(kd_json_get_string(l, "metadata.name"), "kd-node-3");
	assert_string_equal(kd_json_get_string(l, "spec.holderIdentity"), "kd-node-3");
	int64_t d = 0;
	assert_int_equal(kd_json_get_int64(l, "spec.leaseDurationSeconds", &d), 0);
	assert_int_equal(d, 40);
	assert_string_equal(kd_json_get_string(l, "spec.renewTime"), "2023-11-14T22:13:20.123456Z");
	assert_string_equal(kd_json_get_string(l, "metadata.ownerReferences.0.kind"), "Node");
	assert_string_equal(kd_json_get_string(l, "metadata.ownerReferences.0.uid"), "uid-1");

	kd_autojson struct json_object *no_owner = kd_node_build_lease("n", NULL, T0);
	assert_null(kd_json_get(no_owner, "metadata.ownerReferences"));

	kd_autojson struct json_object *renew = kd_node_build_lease_renew("kd-node-3", T0 + S);
	assert_string_equal(kd_json_get_string(renew, "spec.renewTime"),
	                    "2023-11-14T22:13:21.123456Z");
	assert_string_equal(kd_json_get_string(renew, "spec.holderIdentity"), "kd-node-3");
	assert_null(kd_json_get(renew, "metadata"));
}

/* ---- Pod status ---- */

/* A Knative revision pod as the scheduler leaves it: user container + queue-proxy, PodScheduled
 * set, qosClass Burstable. */
static const char *knative_pod =
    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"hello-00001-deployment-abc\","
    "\"namespace\":\"default\",\"uid\":\"11111111-2222-3333-4444-555555555555\"},"
    "\"spec\":{\"nodeName\":\"kd-node-3\",\"restartPolicy\":\"Always\",\"containers\":["
    "{\"name\":\"user-container\",\"image\":\"dev.local/hello\"},"
    "{\"name\":\"queue-proxy\",\"image\":\"dev.local/queue@sha256:"
    "0000000000000000000000000000000000000000000000000000000000000001\"}]},"
    "\"status\":{\"phase\":\"Pending\",\"qosClass\":\"Burstable\",\"conditions\":["
    "{\"type\":\"PodScheduled\",\"status\":\"True\",\"lastProbeTime\":null,"
    "\"lastTransitionTime\":\"2023-11-14T22:13:00Z\"}]}}";

static struct kd_node_pod_info pod_info(void)
{
	struct kd_node_pod_info i = {
	    .host_ip = "172.31.0.4",
	    .pod_ip = "10.244.3.7",
	    .runtime = "kd-sim",
	    .start_wall_ns = T0,
	    .ready_wall_ns = T0 + 2 * S,
	};
	return i;
}

static struct json_object *find_status(struct json_object *arr, const char *name)
{
	size_t n = arr ? json_object_array_length(arr) : 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *s = json_object_array_get_idx(arr, i);
		if (strcmp(kd_json_get_string(s, "name"), name) == 0)
			return s;
	}
	return NULL;
}

static void running_status_covers_every_container_and_condition(void **state)
{
	(void)state;
	kd_autojson struct json_object *pod = parse(knative_pod);
	struct kd_node_pod_info info = pod_info();
	kd_autojson struct json_object *p = kd_node_pod_status_running(pod, &info, T0 + 3 * S);
	assert_non_null(p);
	assert_string_equal(kd_json_get_string(p, "metadata.uid"),
	                    "11111111-2222-3333-4444-555555555555");
	struct json_object *st = kd_json_get_object(p, "status");
	assert_string_equal(kd_json_get_string(st, "phase"), "Running");
	assert_null(kd_json_get(st, "qosClass"));
	assert_string_equal(kd_json_get_string(st, "podIP"), "10.244.3.7");
	assert_string_equal(kd_json_get_string(st, "podIPs.0.ip"), "10.244.3.7");
	assert_string_equal(kd_json_get_string(st, "hostIP"), "172.31.0.4");
	assert_string_equal(kd_json_get_string(st, "hostIPs.0.ip"), "172.31.0.4");
	assert_string_equal(kd_json_get_string(st, "startTime"), "2023-11-14T22:13:20Z");

	struct json_object *conds = kd_json_get_array(st, "conditions");
	assert_int_equal(json_object_array_length(conds), 5);
	const char *types[] = {"PodReadyToStartContainers", "Initialized", "Ready",
	                       "ContainersReady", "PodScheduled"};
	for (size_t i = 0; i < KD_ARRAY_SIZE(types); i++) {
		assert_string_equal(cond_field(conds, types[i], "status"), "True");
		assert_non_null(cond_field(conds, types[i], "lastTransitionTime"));
	}
	assert_string_equal(cond_field(conds, "Ready", "lastTransitionTime"),
	                    "2023-11-14T22:13:22Z");
	/* the scheduler's transition time is kept */
	assert_string_equal(cond_field(conds, "PodScheduled", "lastTransitionTime"),
	                    "2023-11-14T22:13:00Z");

	struct json_object *cs = kd_json_get_array(st, "containerStatuses");
	assert_int_equal(json_object_array_length(cs), 2);
	const char *names[] = {"user-container", "queue-proxy"};
	for (size_t i = 0; i < 2; i++) {
		struct json_object *s = find_status(cs, names[i]);
		assert_non_null(s);
		bool b = false;
		assert_int_equal(kd_json_get_bool(s, "ready", &b), 0);
		assert_true(b);
		assert_int_equal(kd_json_get_bool(s, "started", &b), 0);
		assert_true(b);
		int64_t rc = -1;
		assert_int_equal(kd_json_get_int64(s, "restartCount", &rc), 0);
		assert_int_equal(rc, 0);
		assert_string_equal(kd_json_get_string(s, "state.running.startedAt"),
		                    "2023-11-14T22:13:20Z");
		assert_true(
		    matches(kd_json_get_string(s, "containerID"), "^kd-sim://[0-9a-f]{64}$"));
		assert_true(matches(kd_json_get_string(s, "imageID"), "@sha256:[0-9a-f]{64}$"));
	}
	assert_string_equal(kd_json_get_string(find_status(cs, "user-container"), "image"),
	                    "dev.local/hello");
	/* an image pinned by digest is its own image id */
	assert_string_equal(kd_json_get_string(find_status(cs, "queue-proxy"), "imageID"),
	                    kd_json_get_string(find_status(cs, "queue-proxy"), "image"));
	assert_string_not_equal(
	    kd_json_get_string(find_status(cs, "user-container"), "containerID"),
	    kd_json_get_string(find_status(cs, "queue-proxy"), "containerID"));
	assert_null(kd_json_get(st, "initContainerStatuses"));
}

static void running_status_needs_ip_and_uid_and_keeps_start_time(void **state)
{
	(void)state;
	kd_autojson struct json_object *pod = parse(knative_pod);
	struct kd_node_pod_info info = pod_info();
	info.pod_ip = NULL;
	assert_null(kd_node_pod_status_running(pod, &info, T0));
	info = pod_info();
	kd_autojson struct json_object *nouid =
	    parse("{\"metadata\":{\"name\":\"x\"},\"spec\":{\"containers\":[{\"name\":\"c\"}]}}");
	assert_null(kd_node_pod_status_running(nouid, &info, T0));

	/* a restarted agent re-patching a running pod keeps its startTime and Ready time */
	kd_autojson struct json_object *running = parse(
	    "{\"metadata\":{\"name\":\"x\",\"uid\":\"u\"},\"spec\":{\"containers\":[{\"name\":"
	    "\"c\","
	    "\"image\":\"i\"}],\"initContainers\":[{\"name\":\"init\",\"image\":\"i\"},{\"name\":"
	    "\"side\",\"image\":\"i\",\"restartPolicy\":\"Always\"}]},\"status\":{\"phase\":"
	    "\"Running\",\"startTime\":\"2023-11-14T20:00:00Z\",\"conditions\":[{\"type\":"
	    "\"Ready\","
	    "\"status\":\"True\",\"lastTransitionTime\":\"2023-11-14T20:00:01Z\"}]}}");
	kd_autojson struct json_object *p = kd_node_pod_status_running(running, &info, T0);
	assert_string_equal(kd_json_get_string(p, "status.startTime"), "2023-11-14T20:00:00Z");
	struct json_object *conds = kd_json_get_array(p, "status.conditions");
	assert_string_equal(cond_field(conds, "Ready", "lastTransitionTime"),
	                    "2023-11-14T20:00:01Z");
	struct json_object *ics = kd_json_get_array(p, "status.initContainerStatuses");
	assert_int_equal(json_object_array_length(ics), 2);
	assert_string_equal(kd_json_get_string(find_status(ics, "init"), "state.terminated.reason"),
	                    "Completed");
	assert_non_null(kd_json_get(find_status(ics, "side"), "state.running"));
}

static void waiting_status_reports_reason_message_and_restarts(void **state)
{
	(void)state;
	kd_autojson struct json_object *pod = parse(knative_pod);
	struct kd_node_pod_info info = pod_info();
	info.pod_ip = NULL;
	info.reason = "CreateContainerError";
	info.message = "runtime-sim: injected failure";
	info.restart_count = 3;
	kd_autojson struct json_object *p = kd_node_pod_status_waiting(pod, &info, T0 + S);
	assert_non_null(p);
	struct json_object *st = kd_json_get_object(p, "status");
	assert_string_equal(kd_json_get_string(st, "phase"), "Pending");
	assert_null(kd_json_get(st, "podIP"));
	assert_null(kd_json_get(st, "qosClass"));
	assert_string_equal(kd_json_get_string(st, "hostIP"), "172.31.0.4");
	struct json_object *conds = kd_json_get_array(st, "conditions");
	assert_string_equal(cond_field(conds, "Ready", "status"), "False");
	assert_string_equal(cond_field(conds, "Ready", "reason"), "ContainersNotReady");
	assert_string_equal(cond_field(conds, "Ready", "message"),
	                    "containers with unready status: [user-container queue-proxy]");
	assert_string_equal(cond_field(conds, "PodReadyToStartContainers", "status"), "False");
	assert_string_equal(cond_field(conds, "PodScheduled", "status"), "True");
	struct json_object *cs = kd_json_get_array(st, "containerStatuses");
	assert_int_equal(json_object_array_length(cs), 2);
	struct json_object *qp = find_status(cs, "queue-proxy");
	assert_string_equal(kd_json_get_string(qp, "state.waiting.reason"), "CreateContainerError");
	assert_string_equal(kd_json_get_string(qp, "state.waiting.message"),
	                    "runtime-sim: injected failure");
	int64_t rc = 0;
	assert_int_equal(kd_json_get_int64(qp, "restartCount", &rc), 0);
	assert_int_equal(rc, 3);
	bool b = true;
	assert_int_equal(kd_json_get_bool(qp, "ready", &b), 0);
	assert_false(b);

	/* default reason; a pod that was Running stays Running while it restarts */
	kd_autojson struct json_object *running =
	    parse("{\"metadata\":{\"name\":\"x\",\"uid\":\"u\"},\"spec\":{\"containers\":[{"
	          "\"name\":\"c\","
	          "\"image\":\"i\"}]},\"status\":{\"phase\":\"Running\"}}");
	info = pod_info();
	kd_autojson struct json_object *p2 = kd_node_pod_status_waiting(running, &info, T0);
	assert_string_equal(kd_json_get_string(p2, "status.phase"), "Running");
	assert_string_equal(
	    kd_json_get_string(p2, "status.containerStatuses.0.state.waiting.reason"),
	    "ContainerCreating");
}

static void failed_status_terminates_containers(void **state)
{
	(void)state;
	kd_autojson struct json_object *pod = parse(knative_pod);
	struct kd_node_pod_info info = pod_info();
	info.reason = "RunContainerError";
	info.message = "sandbox exited";
	kd_autojson struct json_object *p = kd_node_pod_status_failed(pod, &info, T0 + S);
	struct json_object *st = kd_json_get_object(p, "status");
	assert_string_equal(kd_json_get_string(st, "phase"), "Failed");
	assert_string_equal(kd_json_get_string(st, "reason"), "RunContainerError");
	assert_string_equal(kd_json_get_string(st, "message"), "sandbox exited");
	assert_null(kd_json_get(st, "qosClass"));
	struct json_object *cs = kd_json_get_array(st, "containerStatuses");
	assert_int_equal(json_object_array_length(cs), 2);
	struct json_object *uc = find_status(cs, "user-container");
	int64_t code = 0;
	assert_int_equal(kd_json_get_int64(uc, "state.terminated.exitCode", &code), 0);
	assert_int_equal(code, 1);
	assert_string_equal(kd_json_get_string(uc, "state.terminated.reason"), "RunContainerError");
	struct json_object *conds = kd_json_get_array(st, "conditions");
	assert_string_equal(cond_field(conds, "Ready", "status"), "False");
	assert_string_equal(cond_field(conds, "Ready", "reason"), "PodCompleted");
}

static void running_ready_detection(void **state)
{
	(void)state;
	kd_autojson struct json_object *pod = parse(knative_pod);
	assert_false(kd_node_pod_is_running_ready(pod, NULL));
	struct kd_node_pod_info info = pod_info();
	kd_autojson struct json_object *p = kd_node_pod_status_running(pod, &info, T0);
	/* apply the patch's status to the pod */
	json_object_object_add(pod, "status", json_object_get(kd_json_get(p, "status")));
	assert_true(kd_node_pod_is_running_ready(pod, "10.244.3.7"));
	assert_true(kd_node_pod_is_running_ready(pod, NULL));
	assert_false(kd_node_pod_is_running_ready(pod, "10.244.3.8"));
	/* a spec container without a ready status is not ready */
	json_object_array_del_idx(kd_json_get_array(pod, "status.containerStatuses"), 1, 1);
	assert_false(kd_node_pod_is_running_ready(pod, "10.244.3.7"));
	assert_false(kd_node_pod_restart_never(pod));
}

static void synthetic_ids_are_stable_and_distinct(void **state)
{
	(void)state;
	kd_autofree char *a = kd_node_container_id("kd-sim", "u1", "c");
	kd_autofree char *b = kd_node_container_id("kd-sim", "u1", "c");
	kd_autofree char *c = kd_node_container_id("kd-sim", "u2", "c");
	kd_autofree char *d = kd_node_container_id("kd-sim", "u1", "d");
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_string_not_equal(a, d);
	kd_autofree char *i1 = kd_node_image_id("dev.local/hello");
	kd_autofree char *i2 = kd_node_image_id("dev.local/other");
	assert_true(matches(i1, "^dev\\.local/hello@sha256:[0-9a-f]{64}$"));
	assert_string_not_equal(i1, i2);
}

/* containerID and imageID are written into Pod statuses (persisted in the API Server) and must
 * stay the same across kd-node versions and restarts: these values were computed by the
 * original hash (four seeded FNV-1a 64 passes). */
static void synthetic_ids_are_pinned(void **state)
{
	(void)state;
	kd_autofree char *a = kd_node_container_id("kd-sim", "0b9a7c2e-1111-4e5f-9a3b-5d2f0c6e7a81",
	                                           "user-container");
	assert_string_equal(
	    a, "kd-sim://5f01fa37c73b2878d8e3bb9310ea77e12254842dcb9d9526c9d4215ac43cb8d7");
	kd_autofree char *b = kd_node_container_id(NULL, NULL, NULL);
	assert_string_equal(
	    b, "kd://27a3edb23259bcdd75acacb284b63c3070addd80c97add7f857fbe80af1843ea");
	kd_autofree char *c = kd_node_image_id("dev.local/hello");
	assert_string_equal(c, "dev.local/hello@sha256:"
	                       "db1b33c12d4720b7358b85f65beba32a97f915d5225c7aa57cf24b9322078650");
	kd_autofree char *d = kd_node_image_id(NULL);
	assert_string_equal(
	    d, "@sha256:5cfddfd6ab4ccf16bbfd458b3cf652f13b86f63c8b8afbd01326794f3dbbf25b");
	kd_autofree char *e = kd_node_image_id("dev.local/hello@sha256:abc");
	assert_string_equal(e, "dev.local/hello@sha256:abc"); /* already pinned by digest */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(time_formats_are_rfc3339_and_micro),
	    cmocka_unit_test(cidr_parse_accepts_networks_and_rejects_bad_input),
	    cmocka_unit_test(cidr_subnets_split_per_node),
	    cmocka_unit_test(node_has_labels_capacity_cidr_and_ready_conditions),
	    cmocka_unit_test(node_status_patch_keeps_transition_and_can_be_not_ready),
	    cmocka_unit_test(node_meta_patch_sets_pod_cidr_only_when_unset),
	    cmocka_unit_test(lease_has_holder_duration_microtime_and_owner),
	    cmocka_unit_test(running_status_covers_every_container_and_condition),
	    cmocka_unit_test(running_status_needs_ip_and_uid_and_keeps_start_time),
	    cmocka_unit_test(waiting_status_reports_reason_message_and_restarts),
	    cmocka_unit_test(failed_status_terminates_containers),
	    cmocka_unit_test(running_ready_detection),
	    cmocka_unit_test(synthetic_ids_are_stable_and_distinct),
	    cmocka_unit_test(synthetic_ids_are_pinned),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
