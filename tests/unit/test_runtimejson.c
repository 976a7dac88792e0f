/* Unit tests for lib/kd_runtimejson.c: Pod objects as the runtime's struct kd_sandbox_spec.
 * Identity, address adoption and every container field; tables for what is refused (no name, no
 * containers), env entries (without a value, the downward API, other valueFrom, without a name),
 * ports, readiness probes (named ports, delays and thresholds out of range, HTTP headers),
 * restart policies, limits (quantities, and bad ones refused naming pod, container, field and
 * value), init containers (not run) and odd or huge input (non-object containers, mixed arrays,
 * thousands of entries, a megabyte string). */
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

#include "kd/common.h"
#include "kd/error.h"
#include "kd/json.h"
#include "kd/runtimejson.h"
#include "kd/stage.h"

static struct json_object *parse(const char *text)
{
	struct json_object *o = NULL;
	struct kd_error *err = NULL;
	if (kd_json_parse(text, strlen(text), 0, "test", &o, &err) < 0)
		fail_msg("bad test JSON: %s", err->msg);
	return o;
}

/* A Pod ns/p whose spec.containers is the JSON text ctrs. Owned. */
static struct json_object *pod_with(const char *ctrs)
{
	kd_autofree char *s = kd_xasprintf("{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\","
	                                   "\"uid\":\"u1\"},\"spec\":{\"containers\":%s}}",
	                                   ctrs);
	return parse(s);
}

/* The view of a Pod that must be accepted. */
static void view_ok(struct kd_sandbox_view *v, struct json_object *pod)
{
	kd_autoerr struct kd_error *err = NULL;
	int rc = kd_sandbox_view_init(v, pod, "n1", NULL, &err);
	if (rc != 0)
		fail_msg("refused: %s", kd_error_msg(err));
	assert_non_null(v->spec.containers);
}

/* Nothing owned, nothing to use: what a failed init and fini leave. */
static bool is_empty(const struct kd_sandbox_view *v)
{
	const struct kd_sandbox_spec *s = &v->spec;
	return !v->key && !v->containers && !v->allocs && !v->n_allocs && !s->key && !s->ns &&
	       !s->name && !s->uid && !s->node && !s->pod_ip && !s->pod_cidr && !s->containers &&
	       !s->n_containers && !s->pod && s->restart_policy == KD_RESTART_ALWAYS;
}

static void pod_becomes_sandbox_spec(void **state)
{
	(void)state;
	kd_autojson struct json_object *pod = parse(
	    "{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\",\"uid\":\"u1\"},\"spec\":{"
	    "\"containers\":[{\"name\":\"user-container\",\"image\":\"dev.local/hello\","
	    "\"command\":[\"/hello\"],\"args\":[\"-v\",\"2\"],\"env\":[{\"name\":\"PORT\","
	    "\"value\":\"8080\"},{\"name\":\"POD_IP\",\"valueFrom\":{}}],\"ports\":[{\"name\":"
	    "\"user-port\",\"containerPort\":8080,\"protocol\":\"TCP\"}]},{\"name\":"
	    "\"queue-proxy\",\"image\":\"dev.local/queue\",\"ports\":[{\"name\":\"http-queueadm\","
	    "\"containerPort\":8022}],\"readinessProbe\":{\"httpGet\":{\"path\":\"/\",\"port\":"
	    "\"http-queueadm\"},\"periodSeconds\":1,\"failureThreshold\":3}}]},"
	    "\"status\":{\"podIP\":\"10.244.3.9\"}}");
	struct kd_sandbox_view v;
	assert_int_equal(kd_sandbox_view_init(&v, pod, "kd-node-3", "10.244.3.0/24", NULL), 0);
	const struct kd_sandbox_spec *spec = &v.spec;
	assert_int_equal(spec->n_containers, 2);
	if (spec->n_containers != 2 || !spec->containers)
		return; /* not reached (the asserts fail first); keeps the analyzer informed */
	assert_string_equal(spec->key, "ns/p");
	assert_string_equal(spec->ns, "ns");
	assert_string_equal(spec->name, "p");
	assert_string_equal(spec->uid, "u1");
	assert_string_equal(spec->node, "kd-node-3");
	assert_string_equal(spec->pod_cidr, "10.244.3.0/24");
	assert_string_equal(spec->pod_ip, "10.244.3.9");
	assert_ptr_equal(spec->pod, pod);
	const struct kd_container_spec *uc = &spec->containers[0];
	assert_string_equal(uc->name, "user-container");
	assert_string_equal(uc->image, "dev.local/hello");
	assert_int_equal(uc->n_command, 1);
	assert_string_equal(uc->command[0], "/hello");
	assert_int_equal(uc->n_args, 2);
	assert_string_equal(uc->args[0], "-v");
	assert_string_equal(uc->args[1], "2");
	assert_int_equal(uc->n_env, 2);
	assert_string_equal(uc->env[0].name, "PORT");
	assert_string_equal(uc->env[0].value, "8080");
	assert_string_equal(uc->env[1].value, "");
	assert_int_equal(uc->n_ports, 1);
	assert_string_equal(uc->ports[0].name, "user-port");
	assert_int_equal(uc->ports[0].container_port, 8080);
	assert_string_equal(uc->ports[0].protocol, "TCP");
	assert_int_equal(uc->readiness.type, KD_PROBE_NONE);
	const struct kd_container_spec *qp = &spec->containers[1];
	assert_null(qp->command);
	assert_int_equal(qp->n_args, 0);
	assert_int_equal(qp->n_env, 0);
	assert_null(qp->ports[0].protocol);
	assert_int_equal(qp->readiness.type, KD_PROBE_HTTP);
	assert_string_equal(qp->readiness.http_path, "/");
	assert_int_equal(qp->readiness.port, 8022); /* named port resolved */
	assert_int_equal(qp->readiness.period_ms, 1000);
	assert_int_equal(qp->readiness.failure_threshold, 3);
	assert_int_equal(qp->readiness.success_threshold, 0);
	kd_sandbox_view_fini(&v);
	assert_true(is_empty(&v));
	kd_sandbox_view_fini(&v); /* twice, and NULL: nothing */
	kd_sandbox_view_fini(NULL);

	/* no uid yet, an empty podIP: both NULL */
	kd_autojson struct json_object *fresh =
	    parse("{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\"},\"spec\":{\"containers\":"
	          "[{\"name\":\"c\"}]},\"status\":{\"podIP\":\"\"}}");
	view_ok(&v, fresh);
	assert_null(v.spec.uid);
	assert_null(v.spec.pod_ip);
	assert_null(v.spec.pod_cidr);
	assert_null(v.spec.containers[0].image);
	kd_sandbox_view_fini(&v);
}

static void refused_pods_say_why(void **state)
{
	(void)state;
	static const struct {
		const char *pod, *msg;
	} bad[] = {
	    {"{}", "pod without metadata.namespace/name"},
	    {"{\"metadata\":{\"name\":\"p\"}}", "pod without metadata.namespace/name"},
	    {"{\"metadata\":{\"namespace\":\"ns\"}}", "pod without metadata.namespace/name"},
	    {"{\"metadata\":{\"name\":7,\"namespace\":\"ns\"}}",
	     "pod without metadata.namespace/name"},
	    {"\"a string\"", "pod without metadata.namespace/name"},
	    {"[1,2]", "pod without metadata.namespace/name"},
	    /* missing containers, in every shape */
	    {"{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\"}}", "pod ns/p: no containers"},
	    {"{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\"},\"spec\":{}}",
	     "pod ns/p: no containers"},
	    {"{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\"},\"spec\":{\"containers\":[]}}",
	     "pod ns/p: no containers"},
	    {"{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\"},\"spec\":{\"containers\":"
	     "{\"name\":\"c\"}}}",
	     "pod ns/p: no containers"},
	    {"{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\"},\"spec\":{\"containers\":null}}",
	     "pod ns/p: no containers"},
	    /* init containers alone are not enough: they are not run */
	    {"{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\"},\"spec\":{\"initContainers\":"
	     "[{\"name\":\"init\"}]}}",
	     "pod ns/p: no containers"},
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(bad); i++) {
		kd_autojson struct json_object *pod = parse(bad[i].pod);
		struct kd_sandbox_view v;
		memset(&v, 0x5a, sizeof(v));
		kd_autoerr struct kd_error *err = NULL;
		int rc = kd_sandbox_view_init(&v, pod, "n", NULL, &err);
		if (rc != -EINVAL || !err || strcmp(kd_error_msg(err), bad[i].msg) != 0)
			fail_msg("case %zu (%s): rc %d, %s", i, bad[i].pod, rc, kd_error_msg(err));
		assert_true(is_empty(&v)); /* left empty: nothing to fini */
	}
	struct kd_sandbox_view v;
	assert_int_equal(kd_sandbox_view_init(&v, NULL, "n", NULL, NULL), -EINVAL);
	assert_true(is_empty(&v));
}

/* "NAME=value;..." of a container's env, "NAME=<pod-ip>;" and "NAME=<host-ip>;" for what the
 * runtime fills (its value must be ""). Owned. */
static char *env_text(const struct kd_container_spec *c)
{
	char *s = kd_xstrdup("");
	for (size_t i = 0; i < c->n_env; i++) {
		const struct kd_env_var *e = &c->env[i];
		const char *v = e->value;
		if (e->source != KD_ENV_VALUE && *v)
			v = "<runtime's with a value>";
		else if (e->source == KD_ENV_POD_IP)
			v = "<pod-ip>";
		else if (e->source == KD_ENV_HOST_IP)
			v = "<host-ip>";
		char *n = kd_xasprintf("%s%s=%s;", s, e->name, v);
		free(s);
		s = n;
	}
	return s;
}

/* An env array with one fieldRef entry. */
#define FR(name, path)                                                                             \
	"[{\"name\":\"" name "\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"" path "\"}}}]"

static void env_entries_table(void **state)
{
	(void)state;
	static const struct {
		const char *env, *want;
	} cases[] = {
	    {"[{\"name\":\"A\",\"value\":\"1\"}]", "A=1;"},
	    {"[{\"name\":\"A\"}]", "A=;"}, /* env without value: empty */
	    {"[{\"name\":\"A\",\"value\":\"\"}]", "A=;"},
	    {"[{\"name\":\"A\",\"value\":null}]", "A=;"},
	    {"[{\"name\":\"A\",\"value\":5}]", "A=;"}, /* not a string: no value */
	    /* other valueFrom sources are not resolved: empty */
	    {"[{\"name\":\"S\",\"valueFrom\":{\"secretKeyRef\":{\"name\":\"s\",\"key\":\"k\"}}}]",
	     "S=;"},
	    {"[{\"name\":\"C\",\"valueFrom\":{\"configMapKeyRef\":{\"name\":\"c\",\"key\":\"k\"}}}"
	     "]",
	     "C=;"},
	    {"[{\"name\":\"R\",\"valueFrom\":{\"resourceFieldRef\":{\"resource\":\"limits.cpu\"}}}"
	     "]",
	     "R=;"},
	    {"[{\"name\":\"V\",\"valueFrom\":{}}]", "V=;"},
	    /* the downward API: the Pod's fields now, the addresses by the runtime */
	    {FR("N", "metadata.name"), "N=p;"},
	    {FR("NS", "metadata.namespace"), "NS=ns;"},
	    {FR("U", "metadata.uid"), "U=u1;"},
	    {FR("NODE", "spec.nodeName"), "NODE=kd-node-3;"},
	    {FR("SA", "spec.serviceAccountName"), "SA=;"}, /* the Pod has none */
	    {FR("L", "metadata.labels['app.kubernetes.io/name']"), "L=hello;"},
	    {FR("L", "metadata.labels['serving.knative.dev/revision']"), "L=hello-00001;"},
	    {FR("L", "metadata.labels['missing']"), "L=;"},
	    {FR("L", "metadata.labels['app"), "L=;"}, /* no closing quote: not resolved */
	    {FR("A", "metadata.annotations['note']"), "A=a 'quoted' note;"},
	    {FR("IP", "status.podIP"), "IP=<pod-ip>;"},
	    {FR("IPS", "status.podIPs"), "IPS=<pod-ip>;"},
	    {FR("H", "status.hostIP"), "H=<host-ip>;"},
	    {FR("HS", "status.hostIPs"), "HS=<host-ip>;"},
	    {FR("X", "metadata.generateName"), "X=;"}, /* not supported */
	    {FR("X", "metadata.labels"), "X=;"},
	    {FR("X", ""), "X=;"},
	    {"[{\"name\":\"X\",\"value\":\"kept\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":"
	     "\"spec.schedulerName\"}}}]",
	     "X=kept;"},
	    {"[{\"name\":\"X\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":7}}}]", "X=;"},
	    /* entries without a (string) name are skipped, the rest keep their order */
	    {"[{\"value\":\"x\"},{\"name\":7,\"value\":\"y\"},{\"name\":\"B\",\"value\":\"2\"}]",
	     "B=2;"},
	    {"[1,\"x\",null,[],{\"name\":\"B\",\"value\":\"\"}]", "B=;"},
	    /* duplicates are kept as given (the runtime lets the later one win) */
	    {"[{\"name\":\"D\",\"value\":\"1\"},{\"name\":\"D\",\"value\":\"2\"}]", "D=1;D=2;"},
	    /* values are taken as they are */
	    {"[{\"name\":\"E\",\"value\":\"a=b; c\\u00e9\"}]", "E=a=b; c\xc3\xa9;"},
	    {"[]", ""},
	    {"{\"name\":\"A\",\"value\":\"1\"}", ""}, /* not an array */
	    {"\"A=1\"", ""},
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(cases); i++) {
		kd_autofree char *text = kd_xasprintf(
		    "{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\",\"uid\":\"u1\",\"labels\":"
		    "{\"app.kubernetes.io/name\":\"hello\",\"serving.knative.dev/revision\":"
		    "\"hello-00001\"},\"annotations\":{\"note\":\"a 'quoted' note\"}},\"spec\":"
		    "{\"nodeName\":\"kd-node-3\",\"containers\":[{\"name\":\"c\",\"env\":%s}]}}",
		    cases[i].env);
		kd_autojson struct json_object *pod = parse(text);
		struct kd_sandbox_view v;
		view_ok(&v, pod);
		kd_autofree char *got = env_text(&v.spec.containers[0]);
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("case %zu (%s): got \"%s\", want \"%s\"", i, cases[i].env, got,
			         cases[i].want);
		kd_sandbox_view_fini(&v);
	}
}

static void ports_table(void **state)
{
	(void)state;
	static const struct {
		const char *ports;
		size_t n;
		uint16_t first;
		const char *name, *protocol;
	} cases[] = {
	    {"[{\"name\":\"http\",\"containerPort\":8080,\"protocol\":\"TCP\"}]", 1, 8080, "http",
	     "TCP"},
	    {"[{\"containerPort\":53,\"protocol\":\"UDP\"}]", 1, 53, NULL, "UDP"},
	    {"[{\"containerPort\":\"9090\"}]", 1, 9090, NULL, NULL}, /* quoted int64 */
	    {"[{\"containerPort\":1},{\"containerPort\":65535}]", 2, 1, NULL, NULL},
	    /* out of range or missing: skipped */
	    {"[{\"containerPort\":0},{\"containerPort\":65536},{\"containerPort\":-1},"
	     "{\"name\":\"x\"},{\"containerPort\":\"http\"},{\"containerPort\":8.5},"
	     "{\"containerPort\":7}]",
	     1, 7, NULL, NULL},
	    {"[]", 0, 0, NULL, NULL},
	    {"{\"containerPort\":80}", 0, 0, NULL, NULL},
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(cases); i++) {
		kd_autofree char *ctrs =
		    kd_xasprintf("[{\"name\":\"c\",\"ports\":%s}]", cases[i].ports);
		kd_autojson struct json_object *pod = pod_with(ctrs);
		struct kd_sandbox_view v;
		view_ok(&v, pod);
		const struct kd_container_spec *c = &v.spec.containers[0];
		if (c->n_ports != cases[i].n)
			fail_msg("case %zu (%s): %zu ports, want %zu", i, cases[i].ports,
			         c->n_ports, cases[i].n);
		if (cases[i].n) {
			assert_int_equal(c->ports[0].container_port, cases[i].first);
			if (cases[i].name)
				assert_string_equal(c->ports[0].name, cases[i].name);
			else
				assert_null(c->ports[0].name);
			if (cases[i].protocol)
				assert_string_equal(c->ports[0].protocol, cases[i].protocol);
			else
				assert_null(c->ports[0].protocol);
		} else {
			assert_null(c->ports);
		}
		kd_sandbox_view_fini(&v);
	}
}

static void readiness_probes_table(void **state)
{
	(void)state;
	static const char *const ports =
	    "\"ports\":[{\"name\":\"http\",\"containerPort\":8080},{\"name\":\"big\","
	    "\"containerPort\":70000},{\"name\":\"admin\",\"containerPort\":8022}]";
	static const struct {
		const char *probe;
		enum kd_probe_type type;
		uint16_t port;
		const char *path;
		size_t n_exec;
		uint32_t delay_ms, period_ms, timeout_ms, success, failure;
	} cases[] = {
	    {"{\"httpGet\":{\"path\":\"/healthz\",\"port\":8080}}", KD_PROBE_HTTP, 8080, "/healthz",
	     0, 0, 0, 0, 0, 0},
	    /* a named probe port resolves through the container's ports */
	    {"{\"httpGet\":{\"port\":\"admin\"}}", KD_PROBE_HTTP, 8022, NULL, 0, 0, 0, 0, 0, 0},
	    {"{\"tcpSocket\":{\"port\":\"http\"}}", KD_PROBE_TCP, 8080, NULL, 0, 0, 0, 0, 0, 0},
	    /* a name the container does not declare, or declares with a bad port: 0 */
	    {"{\"httpGet\":{\"path\":\"/\",\"port\":\"nope\"}}", KD_PROBE_HTTP, 0, "/", 0, 0, 0, 0,
	     0, 0},
	    {"{\"tcpSocket\":{\"port\":\"big\"}}", KD_PROBE_TCP, 0, NULL, 0, 0, 0, 0, 0, 0},
	    {"{\"tcpSocket\":{\"port\":\"8080\"}}", KD_PROBE_TCP, 0, NULL, 0, 0, 0, 0, 0, 0},
	    {"{\"tcpSocket\":{\"port\":0}}", KD_PROBE_TCP, 0, NULL, 0, 0, 0, 0, 0, 0},
	    {"{\"tcpSocket\":{\"port\":65536}}", KD_PROBE_TCP, 0, NULL, 0, 0, 0, 0, 0, 0},
	    {"{\"tcpSocket\":{}}", KD_PROBE_TCP, 0, NULL, 0, 0, 0, 0, 0, 0},
	    {"{\"exec\":{\"command\":[\"cat\",1,\"/tmp/ready\"]}}", KD_PROBE_EXEC, 0, NULL, 2, 0, 0,
	     0, 0, 0},
	    {"{\"exec\":{}}", KD_PROBE_EXEC, 0, NULL, 0, 0, 0, 0, 0, 0},
	    /* httpGet wins over the others when several are given */
	    {"{\"tcpSocket\":{\"port\":1},\"httpGet\":{\"port\":2}}", KD_PROBE_HTTP, 2, NULL, 0, 0,
	     0, 0, 0, 0},
	    /* delays and thresholds, in range and out of it (0: Kubernetes' default) */
	    {"{\"tcpSocket\":{\"port\":1},\"initialDelaySeconds\":2,\"periodSeconds\":86400,"
	     "\"timeoutSeconds\":1,\"successThreshold\":1,\"failureThreshold\":999}",
	     KD_PROBE_TCP, 1, NULL, 0, 2000, 86400000, 1000, 1, 999},
	    {"{\"tcpSocket\":{\"port\":1},\"initialDelaySeconds\":0,\"periodSeconds\":86401,"
	     "\"timeoutSeconds\":-1,\"successThreshold\":0,\"failureThreshold\":1000}",
	     KD_PROBE_TCP, 1, NULL, 0, 0, 0, 0, 0, 0},
	    {"{\"tcpSocket\":{\"port\":1},\"periodSeconds\":\"5\",\"timeoutSeconds\":\"x\"}",
	     KD_PROBE_TCP, 1, NULL, 0, 0, 5000, 0, 0, 0},
	    /* no handler: no probe, the numbers are still read */
	    {"{\"periodSeconds\":3}", KD_PROBE_NONE, 0, NULL, 0, 0, 3000, 0, 0, 0},
	    {"{\"grpc\":{\"port\":9000}}", KD_PROBE_NONE, 0, NULL, 0, 0, 0, 0, 0, 0},
	    {"[]", KD_PROBE_NONE, 0, NULL, 0, 0, 0, 0, 0, 0},
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(cases); i++) {
		kd_autofree char *ctrs = kd_xasprintf("[{\"name\":\"c\",%s,\"readinessProbe\":%s}]",
		                                      ports, cases[i].probe);
		kd_autojson struct json_object *pod = pod_with(ctrs);
		struct kd_sandbox_view v;
		view_ok(&v, pod);
		const struct kd_probe *p = &v.spec.containers[0].readiness;
		if (p->type != cases[i].type || p->port != cases[i].port)
			fail_msg("case %zu (%s): type %d port %u, want %d %u", i, cases[i].probe,
			         p->type, p->port, cases[i].type, cases[i].port);
		if (cases[i].path)
			assert_string_equal(p->http_path, cases[i].path);
		else
			assert_null(p->http_path);
		assert_int_equal(p->n_exec_command, cases[i].n_exec);
		if (cases[i].n_exec == 2) {
			assert_string_equal(p->exec_command[0], "cat");
			assert_string_equal(p->exec_command[1], "/tmp/ready");
		}
		assert_int_equal(p->initial_delay_ms, cases[i].delay_ms);
		assert_int_equal(p->period_ms, cases[i].period_ms);
		assert_int_equal(p->timeout_ms, cases[i].timeout_ms);
		assert_int_equal(p->success_threshold, cases[i].success);
		assert_int_equal(p->failure_threshold, cases[i].failure);
		kd_sandbox_view_fini(&v);
	}

	/* only the readiness probe is read; liveness and startup probes are not run */
	kd_autojson struct json_object *pod =
	    pod_with("[{\"name\":\"c\",\"livenessProbe\":{\"tcpSocket\":{\"port\":1}},"
	             "\"startupProbe\":{\"exec\":{\"command\":[\"true\"]}}}]");
	struct kd_sandbox_view v;
	view_ok(&v, pod);
	assert_int_equal(v.spec.containers[0].readiness.type, KD_PROBE_NONE);
	kd_sandbox_view_fini(&v);
}

static void limits_table(void **state)
{
	(void)state;
	static const struct {
		const char *resources;
		int64_t cpu, memory;
	} ok[] = {
	    {"{\"limits\":{\"cpu\":\"500m\",\"memory\":\"128Mi\"}}", 500, 128ll << 20},
	    {"{\"limits\":{\"cpu\":2,\"memory\":1024}}", 2000, 1024}, /* JSON integers */
	    {"{\"limits\":{\"cpu\":\"1.5\"}}", 1500, 0},
	    {"{\"limits\":{\"memory\":\"1e3\",\"cpu\":null}}", 0, 1000},
	    {"{\"limits\":{\"memory\":\"0\",\"nvidia.com/gpu\":\"lots\"}}", 0, 0},
	    {"{\"limits\":{}}", 0, 0},
	    {"{\"limits\":null}", 0, 0},
	    {"{\"requests\":{\"cpu\":\"1\",\"memory\":\"1Gi\"}}", 0, 0}, /* not limits */
	    {"{}", 0, 0},
	    {"null", 0, 0},
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(ok); i++) {
		kd_autofree char *ctrs =
		    kd_xasprintf("[{\"name\":\"c\",\"resources\":%s}]", ok[i].resources);
		kd_autojson struct json_object *pod = pod_with(ctrs);
		struct kd_sandbox_view v;
		view_ok(&v, pod);
		const struct kd_resources *l = &v.spec.containers[0].limits;
		if (l->cpu_milli != ok[i].cpu || l->memory_bytes != ok[i].memory || l->pods != 0)
			fail_msg("case %zu (%s): cpu %lld memory %lld", i, ok[i].resources,
			         (long long)l->cpu_milli, (long long)l->memory_bytes);
		kd_sandbox_view_fini(&v);
	}

	/* a bad quantity is a clear error naming pod, container, field and value, never "no
	 * limit" */
	static const struct {
		const char *ctrs;
		int rc;
		const char *msg;
	} bad[] = {
	    {"[{\"name\":\"c\",\"resources\":{\"limits\":{\"memory\":\"12Q\"}}}]", -EINVAL,
	     "pod ns/p: container c: resources.limits.memory \"12Q\": not a quantity"},
	    {"[{\"name\":\"c\",\"resources\":{\"limits\":{\"cpu\":\"-1\"}}}]", -EINVAL,
	     "pod ns/p: container c: resources.limits.cpu \"-1\": not a quantity"},
	    {"[{\"name\":\"c\",\"resources\":{\"limits\":{\"cpu\":\"1.5 cores\"}}}]", -EINVAL,
	     "pod ns/p: container c: resources.limits.cpu \"1.5 cores\": not a quantity"},
	    {"[{\"name\":\"c\",\"resources\":{\"limits\":{\"cpu\":\"\"}}}]", -EINVAL,
	     "pod ns/p: container c: resources.limits.cpu \"\": not a quantity"},
	    {"[{\"name\":\"c\",\"resources\":{\"limits\":{\"cpu\":-2}}}]", -EINVAL,
	     "pod ns/p: container c: resources.limits.cpu \"-2\": not a quantity"},
	    {"[{\"name\":\"c\",\"resources\":{\"limits\":{\"memory\":1.5}}}]", -EINVAL,
	     "pod ns/p: container c: resources.limits.memory \"1.5\": not a quantity"},
	    {"[{\"name\":\"c\",\"resources\":{\"limits\":{\"memory\":true}}}]", -EINVAL,
	     "pod ns/p: container c: resources.limits.memory \"true\": not a quantity"},
	    {"[{\"name\":\"c\",\"resources\":{\"limits\":{\"memory\":[\"1Gi\"]}}}]", -EINVAL,
	     "pod ns/p: container c: resources.limits.memory \"[ \"1Gi\" ]\": not a quantity"},
	    {"[{\"name\":\"c\",\"resources\":{\"limits\":{\"memory\":\"10Ei\"}}}]", -ERANGE,
	     "pod ns/p: container c: resources.limits.memory \"10Ei\": out of range"},
	    {"[{\"name\":\"c\",\"resources\":{\"limits\":{\"cpu\":9223372036854775807}}}]", -ERANGE,
	     "pod ns/p: container c: resources.limits.cpu \"9223372036854775807\": out of range"},
	    /* limits or resources that are not objects are refused too */
	    {"[{\"name\":\"c\",\"resources\":{\"limits\":\"1Gi\"}}]", -EINVAL,
	     "pod ns/p: container c: resources.limits: not an object"},
	    {"[{\"name\":\"c\",\"resources\":[]}]", -EINVAL,
	     "pod ns/p: container c: resources: not an object"},
	    /* the failing container is named, or numbered when it has no name */
	    {"[{\"name\":\"a\"},{\"name\":\"queue-proxy\",\"resources\":{\"limits\":"
	     "{\"cpu\":\"x\"}}}]",
	     -EINVAL,
	     "pod ns/p: container queue-proxy: resources.limits.cpu \"x\": not a quantity"},
	    {"[{\"name\":\"a\"},{\"resources\":{\"limits\":{\"cpu\":\"x\"}}}]", -EINVAL,
	     "pod ns/p: containers[1]: resources.limits.cpu \"x\": not a quantity"},
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(bad); i++) {
		kd_autojson struct json_object *pod = pod_with(bad[i].ctrs);
		struct kd_sandbox_view v;
		kd_autoerr struct kd_error *err = NULL;
		int rc = kd_sandbox_view_init(&v, pod, "n", NULL, &err);
		if (rc != bad[i].rc || strcmp(kd_error_msg(err), bad[i].msg) != 0)
			fail_msg("case %zu (%s): rc %d, %s", i, bad[i].ctrs, rc, kd_error_msg(err));
		assert_true(is_empty(&v));
		/* without an error to fill the return code is the same */
		assert_int_equal(kd_sandbox_view_init(&v, pod, "n", NULL, NULL), bad[i].rc);
	}
}

/* "Name: value;..." of a probe's HTTP headers. Owned. */
static char *headers_text(const struct kd_probe *p)
{
	char *s = kd_xstrdup("");
	for (size_t i = 0; i < p->n_http_headers; i++) {
		char *n =
		    kd_xasprintf("%s%s: %s;", s, p->http_headers[i].name, p->http_headers[i].value);
		free(s);
		s = n;
	}
	return s;
}

static void probe_headers_table(void **state)
{
	(void)state;
	static const struct {
		const char *headers, *want;
	} cases[] = {
	    {"[{\"name\":\"K-Network-Probe\",\"value\":\"queue\"}]", "K-Network-Probe: queue;"},
	    {"[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"A\",\"value\":\"2\"}]", "A: 1;A: 2;"},
	    {"[{\"name\":\"A\"},{\"name\":\"B\",\"value\":null},{\"name\":\"C\",\"value\":3}]",
	     "A: ;B: ;C: ;"}, /* no (string) value: "" */
	    {"[{\"value\":\"x\"},{\"name\":1,\"value\":\"y\"},2,null,{\"name\":\"D\",\"value\":"
	     "\"d\"}]",
	     "D: d;"}, /* entries without a (string) name are skipped */
	    /* taken as they are: the runtime decides what it can send */
	    {"[{\"name\":\"Bad\\r\\nName\",\"value\":\"v\\n\"}]", "Bad\r\nName: v\n;"},
	    {"[]", ""},
	    {"{\"name\":\"A\",\"value\":\"1\"}", ""},
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(cases); i++) {
		kd_autofree char *ctrs =
		    kd_xasprintf("[{\"name\":\"c\",\"readinessProbe\":{\"httpGet\":{\"port\":80,"
		                 "\"httpHeaders\":%s}}}]",
		                 cases[i].headers);
		kd_autojson struct json_object *pod = pod_with(ctrs);
		struct kd_sandbox_view v;
		view_ok(&v, pod);
		const struct kd_probe *p = &v.spec.containers[0].readiness;
		kd_autofree char *got = headers_text(p);
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("case %zu (%s): got \"%s\", want \"%s\"", i, cases[i].headers, got,
			         cases[i].want);
		if (!p->n_http_headers)
			assert_null(p->http_headers);
		kd_sandbox_view_fini(&v);
	}
	/* headers of another probe kind are not read */
	kd_autojson struct json_object *pod =
	    pod_with("[{\"name\":\"c\",\"readinessProbe\":{\"tcpSocket\":{\"port\":80,"
	             "\"httpHeaders\":[{\"name\":\"A\",\"value\":\"1\"}]}}}]");
	struct kd_sandbox_view v;
	view_ok(&v, pod);
	assert_int_equal(v.spec.containers[0].readiness.n_http_headers, 0);
	kd_sandbox_view_fini(&v);
}

static void restart_policy_table(void **state)
{
	(void)state;
	static const struct {
		const char *policy;
		enum kd_restart_policy want;
	} cases[] = {
	    {"\"Always\"", KD_RESTART_ALWAYS}, {"\"OnFailure\"", KD_RESTART_ON_FAILURE},
	    {"\"Never\"", KD_RESTART_NEVER},   {"null", KD_RESTART_ALWAYS},
	    {"\"never\"", KD_RESTART_ALWAYS},  {"\"\"", KD_RESTART_ALWAYS},
	    {"2", KD_RESTART_ALWAYS},          {"[\"Never\"]", KD_RESTART_ALWAYS},
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(cases); i++) {
		kd_autofree char *text = kd_xasprintf("{\"metadata\":{\"name\":\"p\",\"namespace\":"
		                                      "\"ns\"},\"spec\":{\"restartPolicy\":"
		                                      "%s,\"containers\":[{\"name\":\"c\"}]}}",
		                                      cases[i].policy);
		kd_autojson struct json_object *pod = parse(text);
		struct kd_sandbox_view v;
		view_ok(&v, pod);
		if (v.spec.restart_policy != cases[i].want)
			fail_msg("case %zu (%s): %d, want %d", i, cases[i].policy,
			         v.spec.restart_policy, cases[i].want);
		kd_sandbox_view_fini(&v);
	}
}

static void init_containers_are_not_run(void **state)
{
	(void)state;
	kd_autojson struct json_object *pod = parse(
	    "{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\"},\"spec\":{\"initContainers\":["
	    "{\"name\":\"setup\",\"image\":\"busybox\",\"command\":[\"true\"]},{\"name\":"
	    "\"sidecar\",\"image\":\"envoy\",\"restartPolicy\":\"Always\"}],\"containers\":["
	    "{\"name\":\"user-container\",\"image\":\"dev.local/hello\"},{\"name\":\"queue-proxy\","
	    "\"image\":\"dev.local/queue\"}]}}");
	struct kd_sandbox_view v;
	view_ok(&v, pod);
	assert_int_equal(v.spec.n_containers, 2);
	assert_string_equal(v.spec.containers[0].name, "user-container");
	assert_string_equal(v.spec.containers[1].name, "queue-proxy");
	kd_sandbox_view_fini(&v);
}

static void odd_and_huge_input(void **state)
{
	(void)state;
	/* containers that are not objects stay in place, empty: indexes match spec.containers */
	kd_autojson struct json_object *odd =
	    pod_with("[1,\"x\",null,[],{\"name\":\"c\",\"image\":7,\"command\":\"/bin/sh\","
	             "\"args\":[\"a\",null,2,{},\"b\"],\"env\":{\"A\":\"1\"},\"ports\":\"80\","
	             "\"readinessProbe\":\"yes\"}]");
	struct kd_sandbox_view v;
	view_ok(&v, odd);
	assert_int_equal(v.spec.n_containers, 5);
	for (size_t i = 0; i < 4; i++) {
		const struct kd_container_spec *c = &v.spec.containers[i];
		assert_null(c->name);
		assert_null(c->image);
		assert_int_equal(c->n_command + c->n_args + c->n_env + c->n_ports, 0);
		assert_int_equal(c->readiness.type, KD_PROBE_NONE);
	}
	const struct kd_container_spec *c = &v.spec.containers[4];
	assert_string_equal(c->name, "c");
	assert_null(c->image); /* not a string */
	assert_null(c->command);
	assert_int_equal(c->n_args, 2); /* the strings of a mixed array, in order */
	assert_string_equal(c->args[0], "a");
	assert_string_equal(c->args[1], "b");
	assert_int_equal(c->n_env, 0);
	assert_int_equal(c->n_ports, 0);
	assert_int_equal(c->readiness.type, KD_PROBE_NONE);
	kd_sandbox_view_fini(&v);

	/* thousands of containers with hundreds of env entries each, and a 1 MiB image name */
	enum { NC = 1000, NE = 20, BIG = 1 << 20 };
	struct json_object *ctrs = json_object_new_array();
	for (int i = 0; i < NC; i++) {
		struct json_object *ct = json_object_new_object();
		char name[32];
		snprintf(name, sizeof(name), "c%d", i);
		json_object_object_add(ct, "name", json_object_new_string(name));
		struct json_object *env = json_object_new_array();
		for (int j = 0; j < NE; j++) {
			struct json_object *e = json_object_new_object();
			char en[32];
			snprintf(en, sizeof(en), "E%d_%d", i, j);
			json_object_object_add(e, "name", json_object_new_string(en));
			json_object_object_add(e, "value", json_object_new_string(name));
			json_object_array_add(env, e);
		}
		json_object_object_add(ct, "env", env);
		json_object_array_add(ctrs, ct);
	}
	char *big = kd_xmalloc(BIG + 1);
	memset(big, 'i', BIG);
	big[BIG] = '\0';
	json_object_object_add(json_object_array_get_idx(ctrs, NC - 1), "image",
	                       json_object_new_string(big));
	free(big);
	kd_autojson struct json_object *huge = pod_with("[]");
	json_object_object_add(json_object_object_get(huge, "spec"), "containers", ctrs);
	view_ok(&v, huge);
	assert_int_equal(v.spec.n_containers, NC);
	const struct kd_container_spec *last = &v.spec.containers[NC - 1];
	assert_string_equal(last->name, "c999");
	assert_int_equal(strlen(last->image), BIG);
	assert_int_equal(last->n_env, NE);
	assert_string_equal(last->env[NE - 1].name, "E999_19");
	assert_string_equal(last->env[NE - 1].value, "c999");
	kd_sandbox_view_fini(&v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(pod_becomes_sandbox_spec),    cmocka_unit_test(refused_pods_say_why),
	    cmocka_unit_test(env_entries_table),           cmocka_unit_test(ports_table),
	    cmocka_unit_test(readiness_probes_table),      cmocka_unit_test(probe_headers_table),
	    cmocka_unit_test(restart_policy_table),        cmocka_unit_test(limits_table),
	    cmocka_unit_test(init_containers_are_not_run), cmocka_unit_test(odd_and_huge_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
