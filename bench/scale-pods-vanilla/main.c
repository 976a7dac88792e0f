/* bench/scale-pods-vanilla: the vanilla arm of the `scale-pods` benchmark (docs/ARCHITECTURE.md
 * section 8) on the rig.
 *
 * For each N in --counts: scale a Deployment from 0 to N through its scale subresource and
 * record, through a pod watch (informer) started before the scale request, when each pod is
 * first seen (created), first seen bound to a node (spec.nodeName) and first seen Ready=True.
 * Reports the time from the scale request until the 50th/90th/100th percentile pod was Ready
 * (KubeDirect's metric), and the same for binding and creation, then scales back to 0 and waits
 * until every pod is gone before the next N.
 *
 * "Routable" (--service, on by default): the bench also creates a Service of the same name that
 * selects the pods with Knative's private Service's port (http 80 -> 8012, queue-proxy), and
 * watches its Endpoints: a pod is routable when its IP is first seen among the ready addresses.
 * This is what Knative's activator routes on (the revision's private Endpoints, written by the
 * same Endpoints controller), so it is the vanilla counterpart of kd-activator's routing table.
 *
 * Pods run wherever the scheduler puts them; on the rig that is kd-node with runtime-sim
 * (--node-selector defaults to kd-node's nodes), so the numbers measure the control plane:
 * deployment and replicaset controllers, scheduler, node agent status writes and the watch.
 *
 * Knative mode (--knative-stats HOST:PORT): the pods are those of Knative Services (class
 * kpa.autoscaling.knative.dev) that bench/scale-pods/run.sh created at zero, one per N
 * (--revisions, --services, in the order of --counts), identical to the kd arm's except the
 * class annotation. The decision is made by Knative's own autoscaler from the stat its activator
 * would send: one WireStatMessages frame (kd/statclient.h) to the autoscaler's stat server with
 * the revision's concurrency N, repeated every --stat-period while the run lasts. A stat for a
 * revision at zero pokes the KPA into deciding at once (knative.dev/serving MultiScaler.Poke);
 * with target 1 and target-utilization 100 % (the Services' annotations) it decides N, writes
 * the PodAutoscaler and scales the revision's Deployment, and the ReplicaSet controller,
 * kube-scheduler and the node agent follow. Routable is the pod's address in the ready
 * addresses of the revision's private Endpoints (<revision>-private, which Knative's activator
 * routes on). After a run the Service is deleted and the next N waits until its pods are gone.
 *
 * Output: a table on stdout, and JSON (--json FILE). Exit 0 if every run reached N Ready pods
 * within --timeout, 1 otherwise. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd/config.h"
#include "kd/json.h"
#include "kd/k8s.h"
#include "kd/log.h"
#include "kd/loop.h"
#include "kd/statclient.h"
#include "kd/watch.h"

struct bench_cfg {
	char *kubeconfig;
	char *ns;
	char *name;
	char *image;
	char *node_selector;
	char *pod_spec;
	struct kd_strlist counts;
	uint64_t timeout_ms;
	char *json_out;
	bool keep;
	bool service;
	char *knative_stats;
	struct kd_strlist revisions, services;
	uint64_t stat_period_ms;
};

#define C struct bench_cfg
static const struct kd_config_option options[] = {
    KD_OPT_STRING("kubeconfig", C, kubeconfig, .env = "KUBECONFIG", .metavar = "FILE",
                  .help = "kubeconfig (default: $KUBECONFIG, in-cluster, ~/.kube/config)"),
    KD_OPT_STRING("namespace", C, ns, .def = "kd-bench", .help = "namespace (created if absent)"),
    KD_OPT_STRING("name", C, name, .def = "scale-bench", .help = "Deployment name"),
    KD_OPT_STRING("image", C, image, .def = "dev.local/hello", .help = "container image"),
    KD_OPT_STRING("pod-spec", C, pod_spec, .metavar = "FILE",
                  .help = "pod spec (JSON) to use instead of one container of --image, e.g. a "
                          "Knative revision's spec.template.spec (--node-selector still "
                          "applies)"),
    KD_OPT_STRING("node-selector", C, node_selector, .def = "kubedirect.dev/node-agent=kd-node",
                  .metavar = "KEY=VALUE", .help = "pod nodeSelector (empty: none)"),
    KD_OPT_STRLIST("counts", C, counts, .def = "50,100,200", .help = "scale targets N, in order"),
    KD_OPT_DURATION("timeout", C, timeout_ms, .def = "300s",
                    .help = "per run: time allowed to reach N Ready pods (and back to 0)"),
    KD_OPT_STRING("json", C, json_out, .metavar = "FILE", .help = "write results as JSON"),
    KD_OPT_BOOL("keep", C, keep, .def = "false", .help = "keep the Deployment afterwards"),
    KD_OPT_BOOL("service", C, service, .def = "true",
                .help = "also time \"routable\": each pod's IP first in the ready addresses of "
                        "a Service's Endpoints (as a Knative revision's private Service)"),
    KD_OPT_STRING("knative-stats", C, knative_stats, .metavar = "HOST:PORT",
                  .help = "Knative mode: scale the --revisions of Knative Services through "
                          "Knative's autoscaler, by sending its stat server the stat its "
                          "activator would (concurrency N); e.g. 10.88.0.12:8080 on the rig"),
    KD_OPT_STRLIST("revisions", C, revisions,
                   .help = "Knative mode: one KPA-class revision per --counts entry, at zero"),
    KD_OPT_STRLIST("services", C, services,
                   .help = "Knative mode: their Knative Services, deleted after their run"),
    KD_OPT_DURATION("stat-period", C, stat_period_ms, .def = "1s",
                    .help = "Knative mode: the stat is repeated this often during a run (the "
                            "activator's reporting period)"),
    KD_CONFIG_END,
};
#undef C

enum phase { PH_DRAIN, PH_SCALING, PH_DONE };

struct bench {
	struct bench_cfg *cfg;
	struct kd_loop *loop;
	struct kd_k8s *k8s;
	struct kd_informer *inf;
	struct kd_informer *ep_inf; /* the Service's Endpoints (--service) */
	struct json_object *seen;   /* uid -> bits: 1 created, 2 bound, 4 Ready, 8 routable */
	enum phase phase;
	size_t run;  /* index into counts */
	long target; /* N of the current run */
	uint64_t t0_ns;
	double *created_ms, *bound_ms, *ready_ms, *routable_ms; /* target entries each */
	size_t n_created, n_bound, n_ready, n_routable;
	struct kd_timer *deadline;
	struct json_object *results; /* array */
	int failures;
	struct kd_statclient *stats; /* Knative mode */
	struct kd_timer *stat_tick;  /* Knative mode: repeats the stat during a run */
	unsigned deletes;            /* Knative mode: Service deletions not answered yet */
};

/* "a,b,c" (owned) */
static char *join(const struct kd_strlist *l)
{
	size_t len = 1;
	for (size_t i = 0; i < l->n; i++)
		len += strlen(l->items[i]) + 1;
	char *s = kd_xcalloc(1, len);
	for (size_t i = 0; i < l->n; i++) {
		if (i)
			strcat(s, ",");
		strcat(s, l->items[i]);
	}
	return s;
}

static const struct kd_k8s_resource ksvc_res = {
    .group = "serving.knative.dev", .version = "v1", .resource = "services", .namespaced = true};

static bool knative_mode(const struct bench *b)
{
	return b->cfg->knative_stats && *b->cfg->knative_stats;
}

/* The revision of the current run (Knative mode), else NULL. */
static char *cur_revision(const struct bench *b)
{
	return knative_mode(b) && b->run < b->cfg->revisions.n ? b->cfg->revisions.items[b->run]
	                                                       : NULL;
}

/* Knative mode: the stat Knative's activator sends for a revision with n requests in flight. */
static int send_stat(struct bench *b, double concurrency)
{
	int rc = kd_statclient_send_stat(b->stats, b->cfg->ns, cur_revision(b), "scale-pods-bench",
	                                 concurrency);
	if (rc < 0)
		kd_log_error("stat for %s/%s to Knative's autoscaler at %s: %s", b->cfg->ns,
		             cur_revision(b), b->cfg->knative_stats, strerror(-rc));
	return rc;
}

static void on_stat_tick(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	struct bench *b = arg;
	if (b->phase != PH_SCALING)
		return;
	(void)send_stat(b, (double)b->target);
	kd_loop_timer_start(t, b->cfg->stat_period_ms);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, size_t n, double p)
{
	if (!n)
		return -1;
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

static bool pod_ready(struct json_object *pod)
{
	struct json_object *conds = kd_json_get_array(pod, "status.conditions");
	size_t n = conds ? json_object_array_length(conds) : 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(conds, i);
		const char *t = kd_json_get_string(c, "type"), *s = kd_json_get_string(c, "status");
		if (t && s && strcmp(t, "Ready") == 0 && strcmp(s, "True") == 0)
			return true;
	}
	return false;
}

static void next_run(struct bench *b);
static void delete_service(struct bench *b, const char *name);

static struct json_object *ms_array(const double *v, size_t n)
{
	struct json_object *a = json_object_new_array_ext((int)n);
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_double(v[i]));
	return a;
}

static void finish_run(struct bench *b, bool ok)
{
	kd_loop_timer_stop(b->deadline);
	qsort(b->created_ms, b->n_created, sizeof(double), cmp_double);
	qsort(b->bound_ms, b->n_bound, sizeof(double), cmp_double);
	qsort(b->ready_ms, b->n_ready, sizeof(double), cmp_double);
	qsort(b->routable_ms, b->n_routable, sizeof(double), cmp_double);
	double e50 = pct(b->routable_ms, b->n_routable, 50),
	       e90 = pct(b->routable_ms, b->n_routable, 90),
	       e100 = pct(b->routable_ms, b->n_routable, 100);
	double r50 = pct(b->ready_ms, b->n_ready, 50), r90 = pct(b->ready_ms, b->n_ready, 90),
	       r100 = pct(b->ready_ms, b->n_ready, 100);
	double c50 = pct(b->created_ms, b->n_created, 50),
	       c90 = pct(b->created_ms, b->n_created, 90),
	       c100 = pct(b->created_ms, b->n_created, 100);
	double b50 = pct(b->bound_ms, b->n_bound, 50), b90 = pct(b->bound_ms, b->n_bound, 90),
	       b100 = pct(b->bound_ms, b->n_bound, 100);
	printf("%6ld  %9.0f %9.0f %9.0f   %9.0f %9.0f %9.0f   %9.0f %9.0f %9.0f   %9.0f %9.0f "
	       "%9.0f   %5zu%s\n",
	       b->target, e50, e90, e100, r50, r90, r100, b50, b90, b100, c50, c90, c100,
	       b->n_ready, ok ? "" : "  TIMEOUT");
	fflush(stdout);
	struct json_object *r = json_object_new_object();
	json_object_object_add(r, "n", json_object_new_int64(b->target));
	json_object_object_add(r, "ready", json_object_new_int64((int64_t)b->n_ready));
	json_object_object_add(r, "ok", json_object_new_boolean(ok));
	if (b->cfg->service) {
		json_object_object_add(r, "routable",
		                       json_object_new_int64((int64_t)b->n_routable));
		json_object_object_add(r, "routable_p50_ms", json_object_new_double(e50));
		json_object_object_add(r, "routable_p90_ms", json_object_new_double(e90));
		json_object_object_add(r, "routable_p100_ms", json_object_new_double(e100));
	}
	struct json_object *smp = json_object_new_object(); /* every sample, sorted */
	json_object_object_add(smp, "ready_ms", ms_array(b->ready_ms, b->n_ready));
	if (b->cfg->service)
		json_object_object_add(smp, "routable_ms", ms_array(b->routable_ms, b->n_routable));
	json_object_object_add(r, "samples", smp);
	json_object_object_add(r, "ready_p50_ms", json_object_new_double(r50));
	json_object_object_add(r, "ready_p90_ms", json_object_new_double(r90));
	json_object_object_add(r, "ready_p100_ms", json_object_new_double(r100));
	json_object_object_add(r, "bound_p50_ms", json_object_new_double(b50));
	json_object_object_add(r, "bound_p90_ms", json_object_new_double(b90));
	json_object_object_add(r, "bound_p100_ms", json_object_new_double(b100));
	json_object_object_add(r, "created_p50_ms", json_object_new_double(c50));
	json_object_object_add(r, "created_p90_ms", json_object_new_double(c90));
	json_object_object_add(r, "created_p100_ms", json_object_new_double(c100));
	json_object_object_add(r, "decision",
	                       json_object_new_string(knative_mode(b) ? "knative-autoscaler-stat"
	                                                              : "deployment-scale"));
	if (cur_revision(b))
		json_object_object_add(r, "revision", json_object_new_string(cur_revision(b)));
	json_object_array_add(b->results, r);
	if (!ok)
		b->failures++;
	if (knative_mode(b)) {
		kd_loop_timer_stop(b->stat_tick);
		(void)send_stat(b, 0); /* the activator's last report after traffic */
		delete_service(b, b->cfg->services.items[b->run]);
	}
	b->run++;
	next_run(b);
}

static void on_scale_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	(void)resp;
	struct bench *b = arg;
	if (err) {
		kd_log_error("scale deployment %s/%s: %s", b->cfg->ns, b->cfg->name,
		             kd_error_msg(err));
		kd_loop_stop(b->loop);
		b->failures++;
	}
}

static void on_deleted(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	(void)resp;
	struct bench *b = arg;
	if (err && err->errnum != ENOENT) {
		kd_log_error("delete Knative Service in %s: %s", b->cfg->ns, kd_error_msg(err));
		b->failures++;
	}
	if (--b->deletes == 0 && b->phase == PH_DONE)
		kd_loop_stop(b->loop); /* the last run's Service is gone too */
}

/* Knative mode: the run's Service goes (its revision's Deployment and pods with it, by garbage
 * collection), so the next N starts from no pod. */
static void delete_service(struct bench *b, const char *name)
{
	kd_autojson struct json_object *opts = NULL;
	struct kd_error *err = NULL;
	const char *o = "{\"propagationPolicy\":\"Background\"}";
	if (kd_json_parse(o, strlen(o), 0, "delete options", &opts, &err) == 0 &&
	    kd_k8s_submit(b->k8s,
	                  &(struct kd_k8s_request){.verb = KD_K8S_DELETE,
	                                           .res = &ksvc_res,
	                                           .ns = b->cfg->ns,
	                                           .name = name,
	                                           .body = opts},
	                  on_deleted, b, &err) == 0) {
		b->deletes++;
		return;
	}
	kd_log_error("delete Knative Service %s/%s: %s", b->cfg->ns, name, kd_error_msg(err));
	kd_error_free(err);
	b->failures++;
}

static void scale_to(struct bench *b, long n)
{
	kd_autojson struct json_object *patch = json_object_new_object();
	struct json_object *spec = json_object_new_object();
	json_object_object_add(spec, "replicas", json_object_new_int64(n));
	json_object_object_add(patch, "spec", spec);
	struct kd_k8s_request req = {
	    .verb = KD_K8S_PATCH,
	    .res = &kd_k8s_deployments,
	    .ns = b->cfg->ns,
	    .name = b->cfg->name,
	    .subresource = "scale",
	    .patch_type = KD_K8S_PATCH_MERGE,
	    .body = patch,
	};
	struct kd_error *err = NULL;
	if (kd_k8s_submit(b->k8s, &req, on_scale_done, b, &err) < 0) {
		kd_log_error("scale: %s", kd_error_msg(err));
		kd_error_free(err);
		kd_loop_stop(b->loop);
	}
}

static void start_scaling(struct bench *b)
{
	b->phase = PH_SCALING;
	b->n_created = b->n_bound = b->n_ready = 0;
	free(b->created_ms);
	free(b->bound_ms);
	b->bound_ms = kd_xcalloc((size_t)b->target, sizeof(double));
	free(b->ready_ms);
	free(b->routable_ms);
	b->n_routable = 0;
	b->created_ms = kd_xcalloc((size_t)b->target, sizeof(double));
	b->ready_ms = kd_xcalloc((size_t)b->target, sizeof(double));
	b->routable_ms = kd_xcalloc((size_t)b->target, sizeof(double));
	json_object_put(b->seen);
	b->seen = json_object_new_object();
	b->t0_ns = kd_now_ns();
	if (knative_mode(b)) {
		if (send_stat(b, (double)b->target) < 0) {
			b->failures++;
			kd_loop_stop(b->loop);
			return;
		}
		kd_loop_timer_start(b->stat_tick, b->cfg->stat_period_ms);
	} else {
		scale_to(b, b->target);
	}
	kd_loop_timer_start(b->deadline, b->cfg->timeout_ms);
}

/* A run ends when every pod is Ready and (--service) routable. */
static void maybe_finish(struct bench *b)
{
	if (b->phase == PH_SCALING && b->n_ready == (size_t)b->target &&
	    (!b->cfg->service || b->n_routable == (size_t)b->target))
		finish_run(b, true);
}

static void observe(struct bench *b, struct json_object *pod)
{
	if (b->phase != PH_SCALING)
		return;
	const char *uid = kd_json_get_string(pod, "metadata.uid");
	if (!uid || kd_json_get(pod, "metadata.deletionTimestamp"))
		return;
	const char *rev =
	    kd_json_get_string(pod, "metadata.labels.serving\\.knative\\.dev/revision");
	if (cur_revision(b) && (!rev || strcmp(rev, cur_revision(b)) != 0))
		return;
	double ms = (double)(kd_now_ns() - b->t0_ns) / 1e6;
	struct json_object *v = NULL;
	/* bits: 1 created, 2 bound (spec.nodeName set), 4 Ready */
	int state = json_object_object_get_ex(b->seen, uid, &v) ? json_object_get_int(v) : 0;
	int was = state;
	if (!(state & 1)) {
		if (b->n_created < (size_t)b->target)
			b->created_ms[b->n_created++] = ms;
		state |= 1;
	}
	const char *node = kd_json_get_string(pod, "spec.nodeName");
	if (!(state & 2) && node && *node) {
		if (b->n_bound < (size_t)b->target)
			b->bound_ms[b->n_bound++] = ms;
		state |= 2;
	}
	bool now_ready = !(state & 4) && pod_ready(pod);
	if (now_ready)
		state |= 4;
	if (state != was)
		json_object_object_add(b->seen, uid, json_object_new_int(state));
	if (now_ready && b->n_ready < (size_t)b->target)
		b->ready_ms[b->n_ready++] = ms;
	if (now_ready)
		maybe_finish(b);
}

/* Ready addresses of the Service's Endpoints: each pod of this run (by targetRef uid, so an
 * address left from the previous run is not counted) is routable the first time it is there. */
static void observe_endpoints(struct bench *b, struct json_object *ep)
{
	if (b->phase != PH_SCALING)
		return;
	const char *rev =
	    kd_json_get_string(ep, "metadata.labels.serving\\.knative\\.dev/revision");
	if (cur_revision(b) && (!rev || strcmp(rev, cur_revision(b)) != 0))
		return;
	double ms = (double)(kd_now_ns() - b->t0_ns) / 1e6;
	struct json_object *subsets = kd_json_get_array(ep, "subsets");
	size_t ns = subsets ? json_object_array_length(subsets) : 0;
	bool added = false;
	for (size_t i = 0; i < ns; i++) {
		struct json_object *addrs =
		    kd_json_get_array(json_object_array_get_idx(subsets, i), "addresses");
		size_t na = addrs ? json_object_array_length(addrs) : 0;
		for (size_t j = 0; j < na; j++) {
			const char *uid = kd_json_get_string(json_object_array_get_idx(addrs, j),
			                                     "targetRef.uid");
			struct json_object *v = NULL;
			if (!uid || !json_object_object_get_ex(b->seen, uid, &v))
				continue; /* not a pod of this run (or not seen yet: next update) */
			int state = json_object_get_int(v);
			if (state & 8)
				continue;
			json_object_object_add(b->seen, uid, json_object_new_int(state | 8));
			if (b->n_routable < (size_t)b->target)
				b->routable_ms[b->n_routable++] = ms;
			added = true;
		}
	}
	if (added)
		maybe_finish(b);
}

static void on_ep(struct kd_informer *inf, struct json_object *obj, void *arg)
{
	(void)inf;
	observe_endpoints(arg, obj);
}

static void on_ep_update(struct kd_informer *inf, struct json_object *old, struct json_object *obj,
                         void *arg)
{
	(void)inf;
	(void)old;
	observe_endpoints(arg, obj);
}

static void check_drained(struct bench *b)
{
	if (b->phase == PH_DRAIN && kd_informer_synced(b->inf) && kd_informer_count(b->inf) == 0 &&
	    (!knative_mode(b) || kd_statclient_connected(b->stats)))
		start_scaling(b);
}

static void on_stats_state(void *ud, bool connected)
{
	struct bench *b = ud;
	if (connected)
		check_drained(b);
	else if (b->phase == PH_SCALING)
		kd_log_warn("connection to Knative's autoscaler lost during N=%ld (reconnecting)",
		            b->target);
}

static void on_add(struct kd_informer *inf, struct json_object *obj, void *arg)
{
	(void)inf;
	observe(arg, obj);
}

static void on_delete(struct kd_informer *inf, struct json_object *obj, void *arg)
{
	(void)inf;
	(void)obj;
	check_drained(arg);
}

static void on_synced(struct kd_informer *inf, void *arg)
{
	(void)inf;
	check_drained(arg);
}

static void on_deadline(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	struct bench *b = arg;
	if (b->phase == PH_SCALING) {
		kd_log_error("N=%ld: only %zu of %ld pods Ready (%zu routable) after %llu ms",
		             b->target, b->n_ready, b->target, b->n_routable,
		             (unsigned long long)b->cfg->timeout_ms);
		finish_run(b, false);
	} else {
		kd_log_error("pods of %s/%s did not drain to 0 within %llu ms", b->cfg->ns,
		             b->cfg->name, (unsigned long long)b->cfg->timeout_ms);
		b->failures++;
		kd_loop_stop(b->loop);
	}
}

static void next_run(struct bench *b)
{
	if (b->run >= b->cfg->counts.n) {
		b->phase = PH_DONE;
		if (b->deletes == 0)
			kd_loop_stop(b->loop);
		return;
	}
	b->phase = PH_DRAIN;
	if (!knative_mode(b))
		scale_to(b, 0);
	b->target = strtol(b->cfg->counts.items[b->run], NULL, 10);
	kd_loop_timer_start(b->deadline, b->cfg->timeout_ms);
	check_drained(b);
}

static const struct kd_k8s_resource namespaces_res = {
    .group = "", .version = "v1", .resource = "namespaces", .namespaced = false};

static int setup(struct bench *b, struct kd_error **err)
{
	struct bench_cfg *cfg = b->cfg;
	kd_autojson struct json_object *ns = NULL;
	char *s =
	    kd_xasprintf("{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":"
	                 "\"%s\"}}",
	                 cfg->ns);
	int rc = kd_json_parse(s, strlen(s), 0, "namespace", &ns, err);
	free(s);
	if (rc < 0)
		return rc;
	kd_autoerr struct kd_error *e = NULL;
	if (kd_k8s_create(b->k8s, &namespaces_res, NULL, ns, NULL, &e) < 0 && e->errnum != EEXIST) {
		*err = e;
		e = NULL;
		return -EIO;
	}
	if (knative_mode(b))
		return 0; /* the Knative Services' Deployments and private Services are Knative's */
	kd_autofree char *sel = NULL;
	if (cfg->node_selector && *cfg->node_selector) {
		const char *eq = strchr(cfg->node_selector, '=');
		if (!eq)
			return kd_error_set(err, EINVAL, 0, "--node-selector: want KEY=VALUE");
		sel = kd_xasprintf(",\"nodeSelector\":{\"%.*s\":\"%s\"}",
		                   (int)(eq - cfg->node_selector), cfg->node_selector, eq + 1);
	}
	char *dep = kd_xasprintf(
	    "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"%s\"},"
	    "\"spec\":{\"replicas\":0,\"selector\":{\"matchLabels\":{\"app\":\"%s\"}},\"template\":"
	    "{"
	    "\"metadata\":{\"labels\":{\"app\":\"%s\"}},\"spec\":{"
	    "\"terminationGracePeriodSeconds\":"
	    "1%s,\"containers\":[{\"name\":\"app\",\"image\":\"%s\"}]}}}}",
	    cfg->name, cfg->name, cfg->name, sel ? sel : "", cfg->image);
	kd_autojson struct json_object *d = NULL;
	rc = kd_json_parse(dep, strlen(dep), 0, "deployment", &d, err);
	free(dep);
	if (rc < 0)
		return rc;
	if (cfg->pod_spec && *cfg->pod_spec) { /* added by nd for bench/scale-pods */
		struct json_object *spec = json_object_from_file(cfg->pod_spec);
		if (!spec || !json_object_is_type(spec, json_type_object)) {
			json_object_put(spec);
			return kd_error_set(err, EINVAL, 0, "--pod-spec %s: not a JSON object",
			                    cfg->pod_spec);
		}
		struct json_object *old = kd_json_get_object(d, "spec.template.spec");
		struct json_object *ns_sel =
		    old ? json_object_object_get(old, "nodeSelector") : NULL;
		if (ns_sel)
			json_object_object_add(spec, "nodeSelector", json_object_get(ns_sel));
		json_object_object_add(kd_json_get_object(d, "spec.template"), "spec", spec);
	}
	kd_autoerr struct kd_error *e2 = NULL;
	if (kd_k8s_create(b->k8s, &kd_k8s_deployments, cfg->ns, d, NULL, &e2) < 0 &&
	    e2->errnum != EEXIST) {
		*err = e2;
		e2 = NULL;
		return -EIO;
	}
	if (!cfg->service)
		return 0;
	/* as Knative's private Service of a revision: port http 80 -> queue-proxy's 8012 */
	char *svc = kd_xasprintf(
	    "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"%s\"},"
	    "\"spec\":{\"selector\":{\"app\":\"%s\"},\"ports\":[{\"name\":\"http\",\"port\":80,"
	    "\"targetPort\":8012}]}}",
	    cfg->name, cfg->name);
	kd_autojson struct json_object *sv = NULL;
	rc = kd_json_parse(svc, strlen(svc), 0, "service", &sv, err);
	free(svc);
	if (rc < 0)
		return rc;
	kd_autoerr struct kd_error *e3 = NULL;
	if (kd_k8s_create(b->k8s, &kd_k8s_services, cfg->ns, sv, NULL, &e3) < 0 &&
	    e3->errnum != EEXIST) {
		*err = e3;
		e3 = NULL;
		return -EIO;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct bench_cfg cfg;
	memset(&cfg, 0, sizeof(cfg));
	struct kd_config_cli cli = {
	    .prog = "scale-pods-vanilla",
	    .summary = "time until the 50/90/100th percentile pod is Ready when a Deployment "
	               "scales 0 -> N (observed through a watch)",
	};
	kd_autoerr struct kd_error *err = NULL;
	int rc = kd_config_parse_argv(options, &cfg, &cli, argc, argv, 0, NULL, &err);
	if (rc != 0) {
		kd_config_free(options, &cfg);
		if (rc > 0)
			return 0;
		fprintf(stderr, "scale-pods-vanilla: %s\n", kd_error_msg(err));
		return 1;
	}
	kd_log_init("scale-pods-vanilla", KD_LOG_INFO, KD_LOG_TEXT);
	for (size_t i = 0; i < cfg.counts.n; i++) {
		char *end = NULL;
		long n = strtol(cfg.counts.items[i], &end, 10);
		if (!end || *end || n <= 0 || n > 100000) {
			fprintf(stderr, "scale-pods-vanilla: --counts: \"%s\" is not a count\n",
			        cfg.counts.items[i]);
			kd_config_free(options, &cfg);
			return 1;
		}
	}
	int status = 1;
	kd_autofree char *label = NULL;
	kd_autofree char *ep_field = NULL;
	kd_autofree char *ep_label = NULL;
	kd_autojson struct json_object *zero = NULL;
	kd_autoerr struct kd_error *ez = NULL;
	struct bench b;
	memset(&b, 0, sizeof(b));
	b.cfg = &cfg;
	b.results = json_object_new_array();
	struct kd_k8s_config *kc = NULL;
	b.loop = kd_loop_new();
	if (cfg.kubeconfig && *cfg.kubeconfig)
		rc = kd_k8s_config_from_kubeconfig(cfg.kubeconfig, NULL, &kc, &err);
	else
		rc = kd_k8s_config_auto(&kc, &err);
	struct kd_k8s_opts opts = {.user_agent = "scale-pods-vanilla"};
	if (rc < 0 || kd_k8s_new(kc, b.loop, &opts, &b.k8s, &err) < 0 || setup(&b, &err) < 0) {
		kd_log_error("%s", kd_error_msg(err));
		goto out;
	}
	if (knative_mode(&b)) {
		if (cfg.revisions.n != cfg.counts.n || cfg.services.n != cfg.counts.n) {
			kd_log_error(
			    "--knative-stats: give one --revisions and one --services entry "
			    "per --counts entry (%zu counts, %zu revisions, %zu services)",
			    cfg.counts.n, cfg.revisions.n, cfg.services.n);
			goto out;
		}
		if (cfg.stat_period_ms == 0) {
			kd_log_error("--stat-period must be > 0");
			goto out;
		}
		kd_autofree char *joined = join(&cfg.revisions);
		label = kd_xasprintf("serving.knative.dev/revision in (%s)", joined);
		ep_label = kd_xasprintf("serving.knative.dev/revision in "
		                        "(%s),networking.internal.knative.dev/serviceType=Private",
		                        joined);
		struct kd_statclient_opts so = {.addr = cfg.knative_stats,
		                                .peer = "Knative's autoscaler",
		                                .on_state = on_stats_state,
		                                .ud = &b};
		b.stats = kd_statclient_new(b.loop, &so, &err);
		if (!b.stats) {
			kd_log_error("%s", kd_error_msg(err));
			goto out;
		}
		b.stat_tick = kd_loop_timer_new(b.loop, on_stat_tick, &b);
	} else {
		label = kd_xasprintf("app=%s", cfg.name);
	}
	struct kd_informer_opts iopts = {
	    .res = &kd_k8s_pods, .ns = cfg.ns, .label_selector = label};
	struct kd_informer_handlers h = {.on_add = on_add,
	                                 .on_update = kd_informer_update_as_add,
	                                 .on_delete = on_delete,
	                                 .on_synced = on_synced,
	                                 .arg = &b};
	if (kd_informer_new(b.k8s, &iopts, &h, &b.inf, &err) < 0) {
		kd_log_error("%s", kd_error_msg(err));
		goto out;
	}
	ep_field = kd_xasprintf("metadata.name=%s", cfg.name);
	if (cfg.service) {
		struct kd_informer_opts eopts = {.res = &kd_k8s_endpoints,
		                                 .ns = cfg.ns,
		                                 .field_selector = ep_label ? NULL : ep_field,
		                                 .label_selector = ep_label};
		struct kd_informer_handlers eh = {
		    .on_add = on_ep, .on_update = on_ep_update, .arg = &b};
		if (kd_informer_new(b.k8s, &eopts, &eh, &b.ep_inf, &err) < 0) {
			kd_log_error("%s", kd_error_msg(err));
			goto out;
		}
	}
	b.deadline = kd_loop_timer_new(b.loop, on_deadline, &b);
	b.seen = json_object_new_object();
	if (knative_mode(&b))
		printf("Knative Services in %s scaled by Knative's autoscaler; times in ms from "
		       "the stat "
		       "(concurrency N) sent to %s (watch-observed)\n",
		       cfg.ns, cfg.knative_stats);
	else
		printf("deployment %s/%s, times in ms from the scale request (watch-observed)\n",
		       cfg.ns, cfg.name);
	printf("%6s  %9s %9s %9s   %9s %9s %9s   %9s %9s %9s   %9s %9s %9s   %5s\n", "N",
	       "route-p50", "route-p90", "route-max", "ready-p50", "ready-p90", "ready-max",
	       "bound-p50", "bound-p90", "bound-max", "creat-p50", "creat-p90", "creat-max",
	       "ready");
	next_run(&b);
	kd_informer_start(b.inf);
	if (b.ep_inf)
		kd_informer_start(b.ep_inf);
	kd_loop_run(b.loop);
	status = b.failures ? 1 : 0;
	if (cfg.json_out) {
		if (json_object_to_file_ext(cfg.json_out, b.results, JSON_C_TO_STRING_PRETTY) < 0) {
			kd_log_error("write %s: %s", cfg.json_out, strerror(errno));
			status = 1;
		}
	}
	if (knative_mode(&b))
		goto out; /* the Services were deleted after their runs */
	zero = json_object_new_object();
	json_object_object_add(zero, "spec", json_object_new_object());
	json_object_object_add(kd_json_get(zero, "spec"), "replicas", json_object_new_int(0));
	if (kd_k8s_patch(b.k8s, &kd_k8s_deployments, cfg.ns, cfg.name, "scale", KD_K8S_PATCH_MERGE,
	                 zero, NULL, &ez) < 0)
		kd_log_warn("scale to 0: %s", kd_error_msg(ez));
	if (!cfg.keep) {
		kd_autoerr struct kd_error *e = NULL;
		if (kd_k8s_delete(b.k8s, &kd_k8s_deployments, cfg.ns, cfg.name, NULL, NULL, &e) < 0)
			kd_log_warn("delete deployment: %s", kd_error_msg(e));
		kd_autoerr struct kd_error *es = NULL;
		if (cfg.service &&
		    kd_k8s_delete(b.k8s, &kd_k8s_services, cfg.ns, cfg.name, NULL, NULL, &es) < 0)
			kd_log_warn("delete service: %s", kd_error_msg(es));
	}
out:
	if (b.inf)
		kd_informer_free(b.inf);
	if (b.ep_inf)
		kd_informer_free(b.ep_inf);
	kd_k8s_free(b.k8s);
	kd_loop_timer_free(b.deadline);
	kd_loop_timer_free(b.stat_tick);
	kd_statclient_free(b.stats);
	json_object_put(b.seen);
	free(b.created_ms);
	free(b.bound_ms);
	free(b.ready_ms);
	free(b.routable_ms);
	json_object_put(b.results);
	kd_k8s_config_free(kc);
	kd_loop_free(b.loop);
	kd_config_free(options, &cfg);
	return status;
}
