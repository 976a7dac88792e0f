/* bench/apiserver-ceiling: the API Server's write ceiling for the write-back's pattern (issue
 * [write-back-speed]). For each N in --counts: N Pod creates (the same shape kd-node writes back:
 * the Pod already bound with spec.nodeName, from --pod-spec or one container), as fast as the API
 * Server accepts them, then N status patches of the shape kd-node sends once a Pod is Ready
 * (strategic merge on pods/NAME/status with the uid precondition: phase Running, pod and host IPs,
 * the five pod conditions, one Ready containerStatus per container). Nothing else is written:
 * no controller, no scheduler, no watch. The client has no rate limit, and keeps at most
 * --in-flight calls outstanding, over HTTP/2 unless --http1. Pods are bound to a Node object this
 * benchmark creates (no kubelet: nothing runs) and all are deleted (grace 0) after each N.
 *
 * The create and patch phases are measured separately (first call issued to last answer) and
 * end to end. Output: a table, and for scripts one line per N:
 *   N=<n> ceiling: <ms> creates/s: <x> patches/s: <x>
 * (ceiling = creates + patches, in sequence). Exit 0 when every call succeeded, 1 otherwise. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kd/config.h"
#include "kd/json.h"
#include "kd/k8s.h"
#include "kd/kubeconfig.h"
#include "kd/log.h"
#include "kd/loop.h"

struct bench_cfg {
	char *kubeconfig;
	char *context;
	char *ns;
	char *node;
	char *pod_spec;
	struct kd_strlist counts;
	uint64_t in_flight;
	bool http1;
	uint64_t timeout_ms;
};

#define C struct bench_cfg
static const struct kd_config_option options[] = {
    KD_OPT_KUBECONFIG(C, kubeconfig, context),
    KD_OPT_STRING("namespace", C, ns, .def = "kd-ceiling",
                  .help = "namespace (created if absent, deleted at the end)"),
    KD_OPT_STRING("node", C, node, .def = "kd-ceiling-0",
                  .help = "Node the Pods are bound to (created if absent, deleted at the end)"),
    KD_OPT_STRING("pod-spec", C, pod_spec, .metavar = "FILE",
                  .help = "pod spec (JSON object) of every Pod, e.g. a Knative revision's "
                          "spec.template.spec; default one container of dev.local/hello"),
    KD_OPT_STRLIST("counts", C, counts, .def = "500,1000", .help = "N of each run, in order"),
    KD_OPT_UINT("in-flight", C, in_flight, .def = "256", .has_min = true, .min = 1, .has_max = true,
                .max = 4096, .help = "calls outstanding at most"),
    KD_OPT_BOOL("http1", C, http1, .def = "false",
                .help = "HTTP/1.1 keep-alive connections instead of HTTP/2 streams"),
    KD_OPT_DURATION("timeout", C, timeout_ms, .def = "300s",
                    .help = "per run: time allowed for all of its calls"),
    KD_CONFIG_END,
};
#undef C

enum phase { PH_CREATE, PH_PATCH, PH_DELETE };

struct bench {
	const struct bench_cfg *cfg;
	struct kd_loop *loop;
	struct kd_k8s *k8s;
	struct json_object *spec; /* pod spec template (owned) */
	enum phase phase;
	size_t n;          /* this run's N */
	size_t next;       /* next index to issue */
	size_t done;       /* calls answered in this phase */
	size_t in_flight;  /* calls outstanding */
	size_t failures;   /* calls that failed, whole run */
	char **uids;       /* n entries: uid of each created Pod */
	uint64_t t_phase0; /* first call of the phase */
	uint64_t ms_create, ms_patch;
	struct kd_timer *deadline;
	bool timed_out;
};

/* One call in flight: the bench and the Pod's index. */
struct call {
	struct bench *b;
	size_t i;
};

static char *pod_name(size_t i)
{
	return kd_xasprintf("ceiling-%05zu", i);
}

static struct json_object *build_pod(const struct bench *b, size_t i)
{
	kd_autofree char *name = pod_name(i);
	struct json_object *pod = json_object_new_object();
	json_object_object_add(pod, "apiVersion", json_object_new_string("v1"));
	json_object_object_add(pod, "kind", json_object_new_string("Pod"));
	struct json_object *md = json_object_new_object();
	json_object_object_add(md, "name", json_object_new_string(name));
	struct json_object *labels = json_object_new_object();
	json_object_object_add(labels, "app", json_object_new_string("kd-ceiling"));
	json_object_object_add(md, "labels", labels);
	json_object_object_add(pod, "metadata", md);
	struct json_object *spec = NULL;
	json_object_deep_copy(b->spec, &spec, NULL);
	json_object_object_add(spec, "nodeName", json_object_new_string(b->cfg->node));
	json_object_object_add(pod, "spec", spec);
	return pod;
}

static struct json_object *condition(const char *type, const char *now)
{
	struct json_object *c = json_object_new_object();
	json_object_object_add(c, "type", json_object_new_string(type));
	json_object_object_add(c, "status", json_object_new_string("True"));
	json_object_object_add(c, "lastProbeTime", NULL);
	json_object_object_add(c, "lastTransitionTime", json_object_new_string(now));
	return c;
}

static struct json_object *ip_list(const char *ip)
{
	struct json_object *a = json_object_new_array();
	struct json_object *e = json_object_new_object();
	json_object_object_add(e, "ip", json_object_new_string(ip));
	json_object_array_add(a, e);
	return a;
}

/* The status patch of a Ready pod, shaped as kd-node's (node-agent/objects.c pod_status). */
static struct json_object *build_patch(const struct bench *b, size_t i)
{
	char now[32], ip[32];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(ip, sizeof(ip), "10.244.%u.%u", (unsigned)((100 + i / 250) % 256),
	         (unsigned)(2 + i % 250));
	struct json_object *patch = json_object_new_object();
	struct json_object *md = json_object_new_object();
	json_object_object_add(md, "uid", json_object_new_string(b->uids[i]));
	json_object_object_add(patch, "metadata", md);
	struct json_object *st = json_object_new_object();
	json_object_object_add(st, "phase", json_object_new_string("Running"));
	json_object_object_add(st, "hostIP", json_object_new_string("172.31.0.1"));
	json_object_object_add(st, "hostIPs", ip_list("172.31.0.1"));
	json_object_object_add(st, "podIP", json_object_new_string(ip));
	json_object_object_add(st, "podIPs", ip_list(ip));
	json_object_object_add(st, "startTime", json_object_new_string(now));
	struct json_object *conds = json_object_new_array();
	static const char *const types[] = {"PodReadyToStartContainers", "Initialized", "Ready",
	                                    "ContainersReady", "PodScheduled"};
	for (size_t k = 0; k < KD_ARRAY_SIZE(types); k++)
		json_object_array_add(conds, condition(types[k], now));
	json_object_object_add(st, "conditions", conds);
	struct json_object *cs = json_object_new_array();
	struct json_object *ctrs = kd_json_get_array(b->spec, "containers");
	for (size_t k = 0; ctrs && k < json_object_array_length(ctrs); k++) {
		struct json_object *ctr = json_object_array_get_idx(ctrs, k);
		const char *name = kd_json_get_string(ctr, "name");
		const char *image = kd_json_get_string(ctr, "image");
		struct json_object *s = json_object_new_object();
		json_object_object_add(s, "name", json_object_new_string(name ? name : "app"));
		json_object_object_add(s, "image", json_object_new_string(image ? image : ""));
		json_object_object_add(s, "imageID", json_object_new_string(image ? image : ""));
		kd_autofree char *cid = kd_xasprintf("kd://%s-%zu-%zu", b->uids[i], i, k);
		json_object_object_add(s, "containerID", json_object_new_string(cid));
		json_object_object_add(s, "ready", json_object_new_boolean(1));
		json_object_object_add(s, "started", json_object_new_boolean(1));
		json_object_object_add(s, "restartCount", json_object_new_int(0));
		struct json_object *state = json_object_new_object();
		struct json_object *running = json_object_new_object();
		json_object_object_add(running, "startedAt", json_object_new_string(now));
		json_object_object_add(state, "running", running);
		json_object_object_add(s, "state", state);
		json_object_array_add(cs, s);
	}
	json_object_object_add(st, "containerStatuses", cs);
	json_object_object_add(patch, "status", st);
	return patch;
}

static void pump(struct bench *b);

static void next_phase(struct bench *b)
{
	uint64_t ms = (kd_now_ns() - b->t_phase0) / 1000000u;
	if (b->phase == PH_CREATE) {
		b->ms_create = ms;
		b->phase = PH_PATCH;
	} else if (b->phase == PH_PATCH) {
		b->ms_patch = ms;
		b->phase = PH_DELETE;
	} else {
		kd_loop_stop(b->loop);
		return;
	}
	b->next = b->done = 0;
	b->t_phase0 = kd_now_ns();
	pump(b);
}

static void on_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	struct call *c = arg;
	struct bench *b = c->b;
	b->in_flight--;
	b->done++;
	if (err && !(b->phase == PH_DELETE && err->errnum == ENOENT)) {
		if (b->failures++ < 5) {
			kd_autofree char *name = pod_name(c->i);
			kd_log_error("%s %s: %s",
			             b->phase == PH_CREATE  ? "create"
			             : b->phase == PH_PATCH ? "patch status of"
			                                    : "delete",
			             name, kd_error_msg(err));
		}
	} else if (b->phase == PH_CREATE) {
		const char *uid = resp ? kd_json_get_string(resp->body, "metadata.uid") : NULL;
		b->uids[c->i] = kd_xstrdup(uid ? uid : "");
	}
	free(c);
	if (b->done == b->n)
		next_phase(b);
	else
		pump(b);
}

/* Issues calls of the current phase up to --in-flight. */
static void pump(struct bench *b)
{
	while (b->next < b->n && b->in_flight < b->cfg->in_flight) {
		size_t i = b->next++;
		kd_autofree char *name = pod_name(i);
		kd_autojson struct json_object *body = NULL;
		struct kd_k8s_request req = {.res = &kd_k8s_pods, .ns = b->cfg->ns};
		if (b->phase == PH_CREATE) {
			body = build_pod(b, i);
			req.verb = KD_K8S_CREATE;
		} else if (b->phase == PH_PATCH) {
			if (!b->uids[i] || !*b->uids[i]) { /* its create failed: counted there */
				b->done++;
				continue;
			}
			body = build_patch(b, i);
			req.verb = KD_K8S_PATCH;
			req.name = name;
			req.subresource = "status";
			req.patch_type = KD_K8S_PATCH_STRATEGIC;
		} else {
			body = json_object_new_object();
			json_object_object_add(body, "gracePeriodSeconds", json_object_new_int(0));
			req.verb = KD_K8S_DELETE;
			req.name = name;
		}
		req.body = body;
		struct call *c = kd_xcalloc(1, sizeof(*c));
		c->b = b;
		c->i = i;
		kd_autoerr struct kd_error *err = NULL;
		if (kd_k8s_submit(b->k8s, &req, on_done, c, &err) < 0) {
			kd_log_error("submit: %s", kd_error_msg(err));
			free(c);
			b->failures++;
			b->done++;
			continue;
		}
		b->in_flight++;
	}
	if (b->done == b->n && b->in_flight == 0)
		next_phase(b);
}

static void on_deadline(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)t;
	struct bench *b = arg;
	kd_log_error("N=%zu: not done after %" PRIu64 " ms (phase %d, %zu of %zu answered)", b->n,
	             b->cfg->timeout_ms, (int)b->phase, b->done, b->n);
	b->timed_out = true;
	kd_loop_stop(loop);
}

static int ensure(struct kd_k8s *c, const struct kd_k8s_resource *res, const char *json,
                  struct kd_error **err)
{
	kd_autojson struct json_object *o = NULL;
	int rc = kd_json_parse(json, strlen(json), 0, res->resource, &o, err);
	if (rc < 0)
		return rc;
	kd_autoerr struct kd_error *e = NULL;
	if (kd_k8s_create(c, res, NULL, o, NULL, &e) < 0 && e->errnum != EEXIST) {
		*err = e;
		e = NULL;
		return -EIO;
	}
	return 0;
}

static const struct kd_k8s_resource namespaces_res = {
    .group = "", .version = "v1", .resource = "namespaces", .namespaced = false};
static const struct kd_k8s_resource nodes_res = {
    .group = "", .version = "v1", .resource = "nodes", .namespaced = false};

static int setup(struct bench *b, struct kd_error **err)
{
	const struct bench_cfg *cfg = b->cfg;
	if (cfg->pod_spec && *cfg->pod_spec) {
		b->spec = json_object_from_file(cfg->pod_spec);
		if (!b->spec || !json_object_is_type(b->spec, json_type_object) ||
		    !kd_json_get_array(b->spec, "containers"))
			return kd_error_set(err, EINVAL, 0,
			                    "--pod-spec %s: not a JSON object with containers",
			                    cfg->pod_spec);
	} else {
		const char *def = "{\"terminationGracePeriodSeconds\":1,\"containers\":[{\"name\":"
		                  "\"app\",\"image\":\"dev.local/hello\"}]}";
		int rc = kd_json_parse(def, strlen(def), 0, "pod spec", &b->spec, err);
		if (rc < 0)
			return rc;
	}
	json_object_object_del(b->spec, "nodeSelector"); /* bound by nodeName */
	kd_autofree char *ns = kd_xasprintf(
	    "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"%s\"}}",
	    cfg->ns);
	/* NoSchedule/NoExecute-free, unschedulable: nothing else lands there; no kubelet */
	kd_autofree char *node = kd_xasprintf(
	    "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"%s\",\"labels\":{"
	    "\"kubedirect.dev/bench\":\"apiserver-ceiling\"}},\"spec\":{\"unschedulable\":true}}",
	    cfg->node);
	int rc = ensure(b->k8s, &namespaces_res, ns, err);
	if (rc == 0)
		rc = ensure(b->k8s, &nodes_res, node, err);
	return rc;
}

static void run_one(struct bench *b, size_t n)
{
	b->n = n;
	b->next = b->done = b->in_flight = 0;
	b->uids = kd_xcalloc(n, sizeof(*b->uids));
	b->phase = PH_CREATE;
	b->timed_out = false;
	size_t failed_before = b->failures;
	uint64_t t0 = kd_now_ns();
	b->t_phase0 = t0;
	kd_loop_timer_start(b->deadline, b->cfg->timeout_ms);
	pump(b);
	kd_loop_run(b->loop);
	kd_loop_timer_stop(b->deadline);
	uint64_t total = b->ms_create + b->ms_patch;
	double cps = b->ms_create ? (double)n * 1000.0 / (double)b->ms_create : 0;
	double pps = b->ms_patch ? (double)n * 1000.0 / (double)b->ms_patch : 0;
	bool ok = !b->timed_out && b->failures == failed_before;
	printf("%6zu  %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %11.0f %11.0f%s\n", n, b->ms_create,
	       b->ms_patch, total, cps, pps, ok ? "" : "  FAILED");
	if (ok)
		printf("N=%zu ceiling: %" PRIu64 " creates/s: %.0f patches/s: %.0f\n", n, total,
		       cps, pps);
	fflush(stdout);
	for (size_t i = 0; i < n; i++)
		free(b->uids[i]);
	free(b->uids);
	b->uids = NULL;
}

int main(int argc, char **argv)
{
	struct bench_cfg cfg;
	memset(&cfg, 0, sizeof(cfg));
	struct kd_config_cli cli = {
	    .prog = "apiserver-ceiling",
	    .summary = "the API Server's ceiling for the write-back's writes: N Pod creates, then "
	               "N status patches, as fast as it accepts them",
	};
	int rc = kd_config_main(options, &cfg, &cli, argc, argv);
	if (rc >= 0)
		return rc;
	kd_log_init("apiserver-ceiling", KD_LOG_INFO, KD_LOG_TEXT);
	for (size_t i = 0; i < cfg.counts.n; i++) {
		char *end = NULL;
		long n = strtol(cfg.counts.items[i], &end, 10);
		if (!end || *end || n <= 0 || n > 20000) {
			fprintf(stderr,
			        "apiserver-ceiling: --counts: \"%s\" is not a count (1-20000)\n",
			        cfg.counts.items[i]);
			kd_config_free(options, &cfg);
			return 2;
		}
	}
	int status = 1;
	kd_autoerr struct kd_error *err = NULL;
	struct bench b;
	memset(&b, 0, sizeof(b));
	b.cfg = &cfg;
	b.loop = kd_loop_new();
	struct kd_k8s_config *kc = NULL;
	struct kd_k8s_opts opts = {.user_agent = "apiserver-ceiling",
	                           .http2 = !cfg.http1,
	                           .max_connections = cfg.http1 ? (unsigned)cfg.in_flight : 0};
	if (kd_k8s_config_load(cfg.kubeconfig, cfg.context, &kc, &err) < 0 ||
	    kd_k8s_new(kc, b.loop, &opts, &b.k8s, &err) < 0 || setup(&b, &err) < 0) {
		kd_log_error("%s", kd_error_msg(err));
		goto out;
	}
	b.deadline = kd_loop_timer_new(b.loop, on_deadline, &b);
	printf("namespace %s, node %s, %s, at most %" PRIu64 " in flight; times in ms\n", cfg.ns,
	       cfg.node, cfg.http1 ? "HTTP/1.1" : "HTTP/2", cfg.in_flight);
	printf("%6s  %10s %10s %10s %11s %11s\n", "N", "creates", "patches", "total", "creates/s",
	       "patches/s");
	bool timed_out = false;
	for (size_t i = 0; i < cfg.counts.n && !timed_out; i++) {
		run_one(&b, (size_t)strtol(cfg.counts.items[i], NULL, 10));
		timed_out = b.timed_out;
	}
	status = b.failures || timed_out ? 1 : 0;
out:
	if (b.k8s) {
		kd_autoerr struct kd_error *e1 = NULL, *e2 = NULL;
		if (kd_k8s_delete(b.k8s, &namespaces_res, NULL, cfg.ns, NULL, NULL, &e1) < 0 &&
		    e1->errnum != ENOENT)
			kd_log_warn("delete namespace %s: %s", cfg.ns, kd_error_msg(e1));
		if (kd_k8s_delete(b.k8s, &nodes_res, NULL, cfg.node, NULL, NULL, &e2) < 0 &&
		    e2->errnum != ENOENT)
			kd_log_warn("delete node %s: %s", cfg.node, kd_error_msg(e2));
	}
	kd_k8s_free(b.k8s);
	kd_loop_timer_free(b.deadline);
	json_object_put(b.spec);
	kd_k8s_config_free(kc);
	kd_loop_free(b.loop);
	kd_config_free(options, &cfg);
	return status;
}
