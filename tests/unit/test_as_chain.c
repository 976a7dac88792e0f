/* Unit tests for kd-autoscaler's chain decisions and their application (autoscaler-shim/plan.c,
 * apply.c, with insts.c and nodes.c), without a cluster: the real workload and scheduler plugins
 * through the loader, Nodes fed through the Node informer's handler from Node JSON, instance
 * channels without a connection (their pending ops are what would be sent), and a loopback HTTP
 * fake standing in for the API Server's DELETE. pa.c is replaced by the doubles below.
 *
 * Asserted: which instances are created, on which node, with which upserts queued on which
 * channel; which victims are cancelled (unpersisted) or deleted (persisted: delete op, then the
 * API delete when the channel is down); that placement never over-commits a node's allocatable
 * for templates whose requests come from limits only or from an init container (invariant 7);
 * that adopted Pods count with their own spec; placement failures named for the revision. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../autoscaler-shim/apply.c" /* NOLINT(bugprone-suspicious-include) */
#include "../../autoscaler-shim/insts.c" /* NOLINT(bugprone-suspicious-include) */
#include "../../autoscaler-shim/nodes.c" /* NOLINT(bugprone-suspicious-include) */
#include "../../autoscaler-shim/plan.c"  /* NOLINT(bugprone-suspicious-include) */
#include "kd_test_httpd.h"

/* ---- doubles of pa.c ------------------------------------------------------------------------ */

static unsigned n_dirty, n_decide, n_events;
static char last_event[512];

void kd_as_rev_dirty(struct kd_as *as, struct kd_as_rev *rev)
{
	(void)as;
	if (rev)
		n_dirty++;
}

void kd_as_event(struct kd_as *as, json_object *obj, const char *type, const char *reason,
                 const char *fmt, ...)
{
	(void)as;
	(void)obj;
	va_list ap;
	va_start(ap, fmt);
	kd_autofree char *msg = kd_xvasprintf(fmt, ap);
	va_end(ap);
	snprintf(last_event, sizeof(last_event), "%s %s: %s", type, reason, msg);
	n_events++;
}

void kd_as_note_synced(struct kd_as *as)
{
	(void)as;
}

void kd_as_decide(struct kd_as *as, struct kd_as_rev *rev, const char *why)
{
	(void)as;
	(void)rev;
	(void)why;
	n_decide++;
}

struct kd_as_rev *kd_as_rev_find(struct kd_as *as, const char *ns, const char *name)
{
	if (!ns || !name)
		return NULL;
	kd_autofree char *key = kd_xasprintf("%s/%s", ns, name);
	return kd_strmap_get(&as->revs, key);
}

/* ---- fixture -------------------------------------------------------------------------------- */

static void api_handler(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req,
                        void *arg)
{
	(void)req;
	(void)arg;
	kd_test_httpd_respond(conn, 200, "application/json", "{\"kind\":\"Status\"}");
}

struct fx {
	struct kd_as as;
	struct kd_test_httpd *api;
	struct kd_as_rev rev;
	json_object *deploy;
};

static json_object *parse(const char *text)
{
	json_object *o = json_tokener_parse(text);
	assert_non_null(o);
	return o;
}

/* Templates ('' for "): Knative's user container with limits only (requests default to them)
 * next to queue-proxy; and one whose init container dominates. */
static const char *const limits_only_spec =
    "{'containers':[{'name':'user-container','resources':{'limits':{'cpu':'1','memory':'1Gi'}}},"
    "{'name':'queue-proxy','resources':{'requests':{'cpu':'25m','memory':'64Mi'}}}]}";
static const char *const init_spec =
    "{'initContainers':[{'name':'warm','resources':{'requests':{'cpu':'1500m'}}}],"
    "'containers':[{'name':'user-container','resources':{'requests':{'cpu':'100m'}}}]}";

static json_object *parse_quoted(const char *text)
{
	kd_autofree char *s = kd_xstrdup(text);
	for (char *c = s; *c; c++)
		if (*c == '\'')
			*c = '"';
	return parse(s);
}

static void set_template(struct fx *f, const char *spec)
{
	kd_pod_view_fini(&f->rev.tmpl);
	if (f->deploy)
		json_object_put(f->deploy);
	f->deploy = parse("{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{"
	                  "\"name\":\"hello-00001-deployment\",\"namespace\":\"demo\",\"uid\":"
	                  "\"dep-uid\"},\"spec\":{\"template\":{\"metadata\":{\"labels\":{"
	                  "\"app\":\"hello\"}},\"spec\":{}}}}");
	json_object *tspec = json_object_object_get(
	    json_object_object_get(json_object_object_get(f->deploy, "spec"), "template"), "spec");
	json_object *parsed = parse_quoted(spec);
	json_object_object_foreach(parsed, k, v)
	{
		json_object_object_add(tspec, k, json_object_get(v));
	}
	json_object_put(parsed);
	f->rev.deploy = f->deploy;
	assert_int_equal(kd_instance_template_hash(f->deploy, f->rev.tmpl_hash), 0);
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_pod_view_init(&f->rev.tmpl, tspec, &err), 0);
}

/* A channel without a connection: ops stay pending, where the test reads them. */
static struct kd_as_chan *fake_chan(struct fx *f, const char *addr)
{
	struct kd_as_chan *ch = kd_xcalloc(1, sizeof(*ch));
	ch->as = &f->as;
	ch->addr = kd_xstrdup(addr);
	kd_strmap_put(&f->as.chans, ch->addr, ch);
	return ch;
}

/* A Node through the informer's handler (kd_node_view -> the scheduler). addr NULL: none. */
static void node(struct fx *f, const char *name, const char *addr, const char *cpu, bool ready)
{
	char json[1024];
	snprintf(json, sizeof(json),
	         "{\"metadata\":{\"name\":\"%s\"%s%s%s},\"status\":{\"allocatable\":{\"cpu\":"
	         "\"%s\",\"memory\":\"8Gi\",\"pods\":\"110\"},\"conditions\":[{\"type\":"
	         "\"Ready\",\"status\":\"%s\"}]}}",
	         name, addr ? ",\"annotations\":{\"kubedirect.dev/channel-addr\":\"" : "",
	         addr ? addr : "", addr ? "\"}" : "", cpu, ready ? "True" : "False");
	kd_autojson json_object *n = parse(json);
	on_node(NULL, n, &f->as);
}

static int setup(void **state)
{
	setenv("KD_PLUGIN_DIR", KD_BUILD_DIR "/plugins", 1);
	struct fx *f = kd_xcalloc(1, sizeof(*f));
	struct kd_as *as = &f->as;
	as->loop = kd_loop_new();
	assert_non_null(as->loop);
	kd_host_init(&as->host, as->loop, "test-as-chain");
	kd_autoerr struct kd_error *err = NULL;
	if (kd_plugin_load("workload", KD_PLUGIN_WORKLOAD, "{\"name-seed\": 11}", &as->host,
	                   &as->workload_h, &err) < 0 ||
	    kd_plugin_load("scheduler", KD_PLUGIN_SCHEDULER, NULL, &as->host, &as->scheduler_h,
	                   &err) < 0)
		fail_msg("load plugins: %s", kd_error_msg(err));
	as->workload = kd_plugin_ops(as->workload_h);
	as->scheduler = kd_plugin_ops(as->scheduler_h);
	f->api = kd_test_httpd_start(api_handler, NULL, NULL, NULL);
	struct kd_k8s_config *cfg = kd_k8s_config_new(kd_test_httpd_url(f->api));
	assert_int_equal(kd_k8s_new(cfg, as->loop, NULL, &as->k8s, NULL), 0);
	kd_k8s_config_free(cfg);
	as->k8s_w = as->k8s;
	struct kd_informer_opts io = {.res = &kd_k8s_pods};
	struct kd_informer_handlers h = {.arg = as};
	assert_int_equal(kd_informer_new(as->k8s, &io, &h, &as->pod_inf, NULL), 0); /* not run */
	as->warm = true;

	f->rev.key = kd_xstrdup("demo/hello-00001");
	f->rev.ns = kd_xstrdup("demo");
	f->rev.name = kd_xstrdup("hello-00001");
	f->rev.pa_uid = kd_xstrdup("pa-uid");
	f->rev.desired = -1;
	kd_strmap_put(&as->revs, f->rev.key, &f->rev);
	set_template(f, limits_only_spec);
	n_dirty = n_decide = n_events = 0;
	last_event[0] = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct kd_as *as = &f->as;
	as->stopping = true;
	kd_as_insts_clear(as);
	kd_as_nodes_stop(as);
	kd_informer_free(as->pod_inf);
	kd_k8s_free(as->k8s);
	kd_test_httpd_stop(f->api);
	kd_plugin_unload(as->scheduler_h);
	kd_plugin_unload(as->workload_h);
	kd_loop_free(as->loop);
	kd_strmap_fini(&as->revs);
	kd_pod_view_fini(&f->rev.tmpl);
	json_object_put(f->deploy);
	free(f->rev.insts);
	free(f->rev.key);
	free(f->rev.ns);
	free(f->rev.name);
	free(f->rev.pa_uid);
	free(f->rev.sched_error);
	free(f);
	return 0;
}

/* ---- helpers -------------------------------------------------------------------------------- */

/* Milli-cpu placed on node by the revision's instances (live ones), per the template. */
static int64_t cpu_on(struct fx *f, const char *node_name)
{
	int64_t sum = 0;
	for (size_t i = 0; i < f->rev.n_insts; i++) {
		struct kd_as_inst *inst = f->rev.insts[i];
		if (!inst->deleting && inst->d.node && strcmp(inst->d.node, node_name) == 0)
			sum += f->rev.tmpl.requests.cpu_milli;
	}
	return sum;
}

/* Live (not victim) instances of the revision. */
static size_t live(struct fx *f)
{
	size_t n = 0;
	for (size_t i = 0; i < f->rev.n_insts; i++)
		n += !f->rev.insts[i]->deleting;
	return n;
}

static size_t pending_of(struct kd_as_chan *ch, enum kd_op_kind kind)
{
	size_t n = 0;
	for (size_t i = 0; i < ch->pending.n; i++)
		n += ch->pending.v[i].kind == kind;
	return n;
}

/* The pending op of key on ch, or NULL. */
static const struct kd_op *pending_op(struct kd_as_chan *ch, const char *key)
{
	for (size_t i = 0; i < ch->pending.n; i++)
		if (strcmp(ch->pending.v[i].key, key) == 0)
			return &ch->pending.v[i];
	return NULL;
}

/* The revision's instance on node (exactly one expected). */
static struct kd_as_inst *inst_on(struct fx *f, const char *node_name)
{
	for (size_t i = 0; i < f->rev.n_insts; i++)
		if (strcmp(f->rev.insts[i]->d.node, node_name) == 0)
			return f->rev.insts[i];
	fail_msg("no instance on %s", node_name);
	abort(); /* not reached: fail_msg does not return */
}

/* Makes inst persisted and Ready with an IP, as the Pod informer would after write-back. */
static void persist(struct fx *f, struct kd_as_inst *inst, bool ready)
{
	json_object *pod = NULL;
	kd_autoerr struct kd_error *err = NULL;
	if (kd_instance_build_pod(f->deploy, &inst->d, &pod, &err) < 0)
		fail_msg("build pod: %s", kd_error_msg(err));
	json_object *status = json_object_new_object();
	json_object_object_add(status, "podIP", json_object_new_string("10.244.0.9"));
	kd_autojson json_object *conds =
	    parse(ready ? "[{\"type\":\"Ready\",\"status\":\"True\"}]"
	                : "[{\"type\":\"Ready\",\"status\":\"False\"}]");
	json_object_object_add(status, "conditions", json_object_get(conds));
	json_object_object_add(pod, "status", status);
	assert_ptr_equal(kd_as_inst_observe(&f->as, pod), inst);
	json_object_put(pod);
	assert_true(inst->observed);
}

static void clear_pending(struct kd_as_chan *ch)
{
	kd_op_list_fini(&ch->pending);
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* A limits-only template requests 1025m per instance (limits as requests, plus queue-proxy): on
 * two 2-cpu nodes only one instance fits each; the third is refused with the revision named,
 * not placed over the allocatable. (Summing requests alone counted 25m and put all three, and
 * more, on one node.) */
static void limits_only_template_never_overcommits(void **state)
{
	struct fx *f = *state;
	struct kd_as_chan *c1 = fake_chan(f, "10.0.0.1:9470");
	struct kd_as_chan *c2 = fake_chan(f, "10.0.0.2:9470");
	node(f, "n1", "10.0.0.1:9470", "2", true);
	node(f, "n2", "10.0.0.2:9470", "2", true);
	node(f, "n3", NULL, "64", true); /* no channel address: never given to the scheduler */
	assert_int_equal(f->rev.tmpl.requests.cpu_milli, 1025);
	assert_int_equal(f->rev.tmpl.requests.memory_bytes,
	                 1024ll * 1024 * 1024 + 64ll * 1024 * 1024);

	kd_as_chain_apply(&f->as, &f->rev, 3);
	assert_int_equal(f->rev.n_insts, 2);
	assert_int_equal(f->as.created, 2);
	assert_true(cpu_on(f, "n1") <= 2000 && cpu_on(f, "n2") <= 2000);
	assert_int_equal(cpu_on(f, "n1"), 1025);
	assert_int_equal(cpu_on(f, "n2"), 1025);
	assert_int_equal(cpu_on(f, "n3"), 0);
	/* each instance's upsert is queued on its own node's channel */
	for (size_t i = 0; i < f->rev.n_insts; i++) {
		struct kd_as_inst *inst = f->rev.insts[i];
		struct kd_as_chan *want = strcmp(inst->d.node, "n1") == 0 ? c1 : c2;
		assert_ptr_equal(inst->chan, want);
		const struct kd_op *op = pending_op(want, inst->key);
		assert_non_null(op);
		assert_int_equal(op->kind, KD_OP_UPSERT);
		assert_false(inst->observed);
	}
	assert_int_equal(pending_of(c1, KD_OP_UPSERT), 1);
	assert_int_equal(pending_of(c2, KD_OP_UPSERT), 1);
	assert_non_null(f->rev.sched_error);
	assert_non_null(
	    strstr(f->rev.sched_error, "no node fits an instance of demo/hello-00001: "));
	assert_int_equal(n_events, 1);
	assert_non_null(strstr(last_event, "Warning FailedScheduling: no node fits an instance"));

	/* the same decision again: nothing more fits, nothing is created twice */
	kd_as_chain_apply(&f->as, &f->rev, 3);
	assert_int_equal(f->rev.n_insts, 2);
	assert_int_equal(f->as.created, 2);
	assert_int_equal(n_events, 2); /* the double does not dedup; pa.c's kd_as_event does */

	/* a third node makes room for exactly the missing one; the error clears */
	fake_chan(f, "10.0.0.3:9470");
	node(f, "n4", "10.0.0.3:9470", "2", true);
	kd_as_chain_apply(&f->as, &f->rev, 3);
	assert_int_equal(f->rev.n_insts, 3);
	assert_int_equal(cpu_on(f, "n4"), 1025);
	assert_null(f->rev.sched_error);
}

/* An init container (1500m) outweighs the app container (100m): one instance per 2-cpu node. */
static void init_container_template_never_overcommits(void **state)
{
	struct fx *f = *state;
	set_template(f, init_spec);
	assert_int_equal(f->rev.tmpl.requests.cpu_milli, 1500);
	fake_chan(f, "10.0.0.1:9470");
	fake_chan(f, "10.0.0.2:9470");
	node(f, "n1", "10.0.0.1:9470", "2", true);
	node(f, "n2", "10.0.0.2:9470", "3500m", true);
	kd_as_chain_apply(&f->as, &f->rev, 5);
	assert_int_equal(f->rev.n_insts, 3); /* n1: 1 (1500 <= 2000), n2: 2 (3000 <= 3500) */
	assert_int_equal(cpu_on(f, "n1"), 1500);
	assert_int_equal(cpu_on(f, "n2"), 3000);
	assert_non_null(f->rev.sched_error);
}

/* Adopted Pods count with their own spec: a Pod of the limits-only template already on n1 takes
 * 1025m there, so a new instance goes to n2. */
static void adopted_pods_count_their_own_requests(void **state)
{
	struct fx *f = *state;
	fake_chan(f, "10.0.0.1:9470");
	fake_chan(f, "10.0.0.2:9470");
	node(f, "n1", "10.0.0.1:9470", "2", true);
	node(f, "n2", "10.0.0.2:9470", "2", true);
	struct kd_instance_desc d;
	kd_instance_init(&d);
	d.ns = kd_xstrdup("demo");
	d.name = kd_xstrdup("hello-00001-deployment-adopt");
	d.tmpl_name = kd_xstrdup("hello-00001-deployment");
	d.tmpl_uid = kd_xstrdup("dep-uid");
	d.tmpl_hash = kd_xstrdup(f->rev.tmpl_hash);
	d.owner_name = kd_xstrdup("hello-00001");
	d.owner_uid = kd_xstrdup("pa-uid");
	d.node = kd_xstrdup("n1");
	d.ctime_ms = 1000;
	json_object *pod = NULL;
	assert_int_equal(kd_instance_build_pod(f->deploy, &d, &pod, NULL), 0);
	kd_instance_fini(&d);
	struct kd_as_inst *adopted = kd_as_inst_observe(&f->as, pod);
	json_object_put(pod);
	assert_non_null(adopted);
	assert_true(adopted->observed);
	assert_string_equal(adopted->d.node, "n1");
	kd_as_chain_apply(&f->as, &f->rev, 2);
	assert_int_equal(f->rev.n_insts, 2);
	struct kd_as_inst *made = f->rev.insts[0] == adopted ? f->rev.insts[1] : f->rev.insts[0];
	assert_string_equal(made->d.node, "n2");
	/* and nothing else fits anywhere */
	kd_as_chain_apply(&f->as, &f->rev, 3);
	assert_int_equal(f->rev.n_insts, 2);
}

/* Scale-down: not-ready instances go first; the unpersisted one is cancelled (delete op, gone
 * from the table, reservation released), the persisted one gets a delete op and, its channel
 * being down, a DELETE through the API Server; it stops counting but stays until the Pod
 * informer reports it gone. The ready persisted instance stays. */
static void victims_are_cancelled_or_deleted(void **state)
{
	struct fx *f = *state;
	set_template(f, init_spec); /* 1500m: one per node */
	struct kd_as_chan *ch[3] = {fake_chan(f, "10.0.0.1:9470"), fake_chan(f, "10.0.0.2:9470"),
	                            fake_chan(f, "10.0.0.3:9470")};
	node(f, "n1", "10.0.0.1:9470", "2", true);
	node(f, "n2", "10.0.0.2:9470", "2", true);
	node(f, "n3", "10.0.0.3:9470", "2", true);
	kd_as_chain_apply(&f->as, &f->rev, 3);
	assert_int_equal(f->rev.n_insts, 3);
	for (size_t i = 0; i < 3; i++)
		clear_pending(ch[i]);
	struct kd_as_inst *eph = inst_on(f, "n1"); /* stays ephemeral, not ready */
	struct kd_as_inst *ready = inst_on(f, "n2");
	struct kd_as_inst *unready = inst_on(f, "n3");
	persist(f, ready, true);
	persist(f, unready, false);
	assert_true(kd_as_inst_routable(&f->as, ready));
	assert_false(kd_as_inst_routable(&f->as, unready));

	/* the plan alone: who is cancelled, who is deleted; nothing else changes */
	struct kd_as_plan plan;
	memset(&plan, 0, sizeof(plan));
	assert_int_equal(kd_as_plan_make(&f->as, &f->rev, 1, &plan, NULL), 0);
	assert_int_equal(plan.n_create, 0);
	assert_int_equal(plan.n_cancel, 1);
	assert_ptr_equal(plan.cancel[0], eph);
	assert_int_equal(plan.n_del, 1);
	assert_ptr_equal(plan.del[0], unready);
	kd_as_plan_fini(&plan);
	assert_int_equal(f->rev.n_insts, 3);

	kd_autofree char *eph_key = kd_xstrdup(eph->key);
	kd_autofree char *gone_name = kd_xstrdup(unready->d.name);
	kd_as_chain_apply(&f->as, &f->rev, 1);
	assert_int_equal(f->as.cancelled, 1);
	assert_int_equal(f->as.deleted, 1);
	assert_null(kd_as_inst_find(&f->as, eph_key)); /* forgotten at once */
	const struct kd_op *op = pending_op(ch[0], eph_key);
	assert_non_null(op);
	assert_int_equal(op->kind, KD_OP_DELETE);
	op = pending_op(ch[2], unready->key);
	assert_non_null(op);
	assert_int_equal(op->kind, KD_OP_DELETE);
	assert_true(unready->deleting);
	assert_int_equal(unready->delete_at, 0); /* channel down: deleted through the API now */
	assert_false(ready->deleting);
	assert_null(pending_op(ch[1], ready->key));
	assert_int_equal(live(f), 1);

	/* the API Server got the DELETE of exactly that Pod */
	for (int i = 0; i < 200 && kd_test_httpd_count(f->api) < 1; i++)
		kd_loop_run_once(f->as.loop, 10);
	assert_int_equal(kd_test_httpd_count(f->api), 1);
	struct kd_test_httpd_req req;
	assert_true(kd_test_httpd_get(f->api, 0, &req));
	assert_string_equal(req.method, "DELETE");
	kd_autofree char *path = kd_xasprintf("/api/v1/namespaces/demo/pods/%s", gone_name);
	assert_string_equal(req.path, path);
	kd_test_httpd_req_fini(&req);

	/* the cancelled instance's reservation is free again: a new one fits on n1; the deleted
	 * one's name stays reserved and its node still counts it until the Pod is gone */
	kd_as_chain_apply(&f->as, &f->rev, 2);
	assert_int_equal(live(f), 2);
	struct kd_as_inst *fresh = inst_on(f, "n1");
	assert_true(fresh != ready && fresh != unready);
	assert_string_not_equal(fresh->d.name, gone_name);
}

/* A node the scheduler knows but that has no instance channel is never used: the placement is
 * released and the failure says why; a template that cannot be read fails placement with the
 * template named. */
static void placement_needs_a_channel_and_a_readable_template(void **state)
{
	struct fx *f = *state;
	struct kd_node_info info = {
	    .name = "lonely",
	    .ready = true,
	    .schedulable = true,
	    .allocatable = {.cpu_milli = 1100, .memory_bytes = 4ll << 30, .pods = 10}};
	assert_int_equal(
	    f->as.scheduler->node_update(kd_plugin_state(f->as.scheduler_h), &info, NULL), 0);
	kd_as_chain_apply(&f->as, &f->rev, 1);
	assert_int_equal(f->rev.n_insts, 0);
	assert_string_equal(f->rev.sched_error, "node lonely has no instance channel");
	/* released: a pod taking the whole node still fits there */
	struct kd_pod_request big = {.key = "demo/big", .requests = {.cpu_milli = 1100, .pods = 1}};
	char where[KD_NODE_NAME_MAX];
	assert_int_equal(
	    f->as.scheduler->place(kd_plugin_state(f->as.scheduler_h), &big, where, NULL), 0);
	assert_string_equal(where, "lonely");

	f->rev.tmpl_error = kd_xstrdup("containers[0].resources.requests.cpu \"fast\": not a "
	                               "quantity");
	kd_as_chain_apply(&f->as, &f->rev, 1);
	assert_int_equal(f->rev.n_insts, 0);
	assert_string_equal(
	    f->rev.sched_error,
	    "template demo/hello-00001-deployment: containers[0].resources.requests."
	    "cpu \"fast\": not a quantity");
	free(f->rev.tmpl_error);
	f->rev.tmpl_error = NULL;
}

/* Not warm (channels not yet handshaked after a restart), no template or no PA uid: nothing is
 * planned or placed. */
static void nothing_applies_before_warm_or_without_template(void **state)
{
	struct fx *f = *state;
	fake_chan(f, "10.0.0.1:9470");
	node(f, "n1", "10.0.0.1:9470", "8", true);
	f->as.warm = false;
	kd_as_chain_apply(&f->as, &f->rev, 2);
	assert_int_equal(f->rev.n_insts, 0);
	f->as.warm = true;
	f->rev.deploy = NULL;
	kd_as_chain_apply(&f->as, &f->rev, 2);
	assert_int_equal(f->rev.n_insts, 0);
	f->rev.deploy = f->deploy;
	kd_as_chain_apply(&f->as, &f->rev, 2);
	assert_int_equal(f->rev.n_insts, 2);
}

/* A NotReady node's instances are not routable, and the scheduler places nothing new there. */
static void notready_nodes_are_not_routable_nor_used(void **state)
{
	struct fx *f = *state;
	fake_chan(f, "10.0.0.1:9470");
	fake_chan(f, "10.0.0.2:9470");
	node(f, "n1", "10.0.0.1:9470", "2", true);
	kd_as_chain_apply(&f->as, &f->rev, 1);
	assert_int_equal(f->rev.n_insts, 1);
	struct kd_as_inst *inst = f->rev.insts[0];
	persist(f, inst, true);
	assert_true(kd_as_inst_routable(&f->as, inst));
	node(f, "n1", "10.0.0.1:9470", "2", false);
	assert_false(kd_as_inst_routable(&f->as, inst));
	node(f, "n2", "10.0.0.2:9470", "2", false);
	kd_as_chain_apply(&f->as, &f->rev, 2);
	assert_int_equal(f->rev.n_insts, 1);
	assert_non_null(strstr(f->rev.sched_error, "no node fits an instance of demo/hello-00001"));
	node(f, "n2", "10.0.0.2:9470", "2", true);
	kd_as_chain_apply(&f->as, &f->rev, 2);
	assert_int_equal(f->rev.n_insts, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(limits_only_template_never_overcommits, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(init_container_template_never_overcommits, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(adopted_pods_count_their_own_requests, setup, teardown),
	    cmocka_unit_test_setup_teardown(victims_are_cancelled_or_deleted, setup, teardown),
	    cmocka_unit_test_setup_teardown(placement_needs_a_channel_and_a_readable_template,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(nothing_applies_before_warm_or_without_template, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(notready_nodes_are_not_routable_nor_used, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
