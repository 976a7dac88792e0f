/* Unit tests for plugins/scheduler, loaded through the real loader (by name, via KD_PLUGIN_DIR):
 * filters (resources, readiness, cordon, taints/tolerations, node selector) each refuse with the
 * reason in the message; no over-commit under a burst of ephemeral placements (invariant 7);
 * release and API-bound pods in the accounting; least-allocated and spread scores; node removal;
 * place_batch; a throughput figure (printed, not asserted). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kd/common.h"
#include "kd/config.h"
#include "kd/error.h"
#include "kd/loop.h"
#include "kd/plugin.h"
#include "kd/stage.h"

#define MI (1024ll * 1024ll)

static struct kd_loop *loop;
static struct kd_host host;
static struct kd_plugin_handle *plugin;
static const struct kd_scheduler_ops *ops;
static void *sch;

static int sch_load(const char *config_json, struct kd_error **err)
{
	int rc = kd_plugin_load("scheduler", KD_PLUGIN_SCHEDULER, config_json, &host, &plugin, err);
	if (rc == 0) {
		ops = kd_plugin_ops(plugin);
		sch = kd_plugin_state(plugin);
	}
	return rc;
}

static void load_ok(const char *config_json)
{
	struct kd_error *err = NULL;
	if (sch_load(config_json, &err) != 0)
		fail_msg("load scheduler: %s", err ? err->msg : "?");
}

static int teardown(void **state)
{
	(void)state;
	kd_plugin_unload(plugin);
	plugin = NULL;
	return 0;
}

/* --- helpers ------------------------------------------------------------------------- */

static void node_full(const char *name, int64_t cpu, int64_t mem_mi, int64_t pods, bool ready,
                      bool schedulable, const struct kd_label *labels, size_t n_labels,
                      const struct kd_taint *taints, size_t n_taints)
{
	struct kd_node_info n = {
	    .name = name,
	    .ready = ready,
	    .schedulable = schedulable,
	    .allocatable = {.cpu_milli = cpu, .memory_bytes = mem_mi * MI, .pods = pods},
	    .labels = labels,
	    .n_labels = n_labels,
	    .taints = taints,
	    .n_taints = n_taints,
	};
	struct kd_error *err = NULL;
	int rc = ops->node_update(sch, &n, &err);
	if (rc != 0)
		fail_msg("node_update %s: %s", name, err ? err->msg : "?");
}

static void node(const char *name, int64_t cpu, int64_t mem_mi, int64_t pods)
{
	node_full(name, cpu, mem_mi, pods, true, true, NULL, 0, NULL, 0);
}

static struct kd_pod_request pod(const char *key, int64_t cpu, int64_t mem_mi)
{
	return (struct kd_pod_request){
	    .key = key,
	    .revision = "default/hello-00001",
	    .requests = {.cpu_milli = cpu, .memory_bytes = mem_mi * MI, .pods = 1},
	};
}

/* place(); returns rc, node name to out (may be NULL), error text to msg (may be NULL). */
static int place(const struct kd_pod_request *p, char *out, char *msg, size_t msg_len)
{
	char node_out[KD_NODE_NAME_MAX] = "";
	struct kd_error *err = NULL;
	int rc = ops->place(sch, p, node_out, &err);
	if (rc == 0) {
		assert_null(err);
		if (out)
			snprintf(out, KD_NODE_NAME_MAX, "%s", node_out);
	} else {
		assert_non_null(err);
		assert_int_equal(err->errnum, -rc);
		if (msg)
			snprintf(msg, msg_len, "%s", err->msg);
		kd_error_free(err);
	}
	return rc;
}

static void place_on(const char *key, int64_t cpu, int64_t mem_mi, const char *want)
{
	struct kd_pod_request p = pod(key, cpu, mem_mi);
	char got[KD_NODE_NAME_MAX], msg[1024] = "";
	if (place(&p, got, msg, sizeof(msg)) != 0)
		fail_msg("place %s: %s", key, msg);
	assert_string_equal(got, want);
}

static void place_fails(const struct kd_pod_request *p, const char *want_msg)
{
	char msg[1024];
	assert_int_equal(place(p, NULL, msg, sizeof(msg)), -ENOSPC);
	assert_string_equal(msg, want_msg);
}

/* --- filters ------------------------------------------------------------------------- */

static void resource_fit_refuses_with_one_reason_per_node(void **state)
{
	(void)state;
	load_ok(NULL);
	static const struct kd_taint gpu[] = {
	    {.key = "dedicated", .value = "gpu", .effect = KD_TAINT_NO_SCHEDULE}};
	node("a", 500, 1024, 110);
	node("b", 300, 1024, 110);
	node_full("c", 4000, 8192, 110, true, true, NULL, 0, gpu, 1);
	struct kd_pod_request p = pod("default/p", 1000, 64);
	place_fails(&p, "no node fits pod default/p: 3 nodes: 2 insufficient cpu, "
	                "1 taint {dedicated=gpu:NoSchedule} not tolerated");
	/* memory and pod count */
	p = pod("default/m", 100, 2048);
	place_fails(&p, "no node fits pod default/m: 3 nodes: 2 insufficient memory, "
	                "1 taint {dedicated=gpu:NoSchedule} not tolerated");
	node("d", 1000, 1024, 1);
	place_on("default/d1", 600, 0, "d"); /* only d has the cpu */
	p = pod("default/d3", 600, 0);
	place_fails(&p, "no node fits pod default/d3: 4 nodes: 2 insufficient cpu, "
	                "1 taint {dedicated=gpu:NoSchedule} not tolerated, 1 too many pods");
	/* an exact fit fits */
	place_on("default/exact", 500, 1024, "a");
	kd_plugin_unload(plugin);
	plugin = NULL;

	/* no nodes at all */
	load_ok(NULL);
	p = pod("default/none", 1, 1);
	place_fails(&p, "no node fits pod default/none: 0 nodes");
}

static void not_ready_and_cordoned_nodes_are_skipped(void **state)
{
	(void)state;
	load_ok(NULL);
	node_full("down", 4000, 4096, 110, false, true, NULL, 0, NULL, 0);
	node_full("cordoned", 4000, 4096, 110, true, false, NULL, 0, NULL, 0);
	struct kd_pod_request p = pod("default/p", 100, 64);
	place_fails(&p, "no node fits pod default/p: 2 nodes: 1 node not ready, "
	                "1 node unschedulable");
	/* a pod tolerating the unschedulable taint may go to a cordoned node (Kubernetes' rule) */
	static const struct kd_toleration tol[] = {{.key = "node.kubernetes.io/unschedulable",
	                                            .op = KD_TOLERATION_EXISTS,
	                                            .effect = KD_TAINT_NO_SCHEDULE}};
	struct kd_pod_request pt = pod("default/tolerant", 100, 64);
	pt.tolerations = tol;
	pt.n_tolerations = 1;
	char got[KD_NODE_NAME_MAX];
	assert_int_equal(place(&pt, got, NULL, 0), 0);
	assert_string_equal(got, "cordoned");
	/* the node becomes ready: pods go there */
	node_full("down", 4000, 4096, 110, true, true, NULL, 0, NULL, 0);
	place_on("default/p", 100, 64, "down");
}

static void taints_need_matching_tolerations(void **state)
{
	(void)state;
	load_ok(NULL);
	static const struct kd_taint t_ns[] = {
	    {.key = "dedicated", .value = "gpu", .effect = KD_TAINT_NO_SCHEDULE}};
	static const struct kd_taint t_ne[] = {
	    {.key = "maintenance", .value = "", .effect = KD_TAINT_NO_EXECUTE}};
	static const struct kd_taint t_pref[] = {
	    {.key = "spot", .value = "true", .effect = KD_TAINT_PREFER_NO_SCHEDULE}};
	node_full("gpu", 4000, 4096, 110, true, true, NULL, 0, t_ns, 1);
	node_full("maint", 4000, 4096, 110, true, true, NULL, 0, t_ne, 1);
	struct kd_pod_request p = pod("default/p", 100, 64);
	place_fails(&p, "no node fits pod default/p: 2 nodes: "
	                "1 taint {dedicated=gpu:NoSchedule} not tolerated, "
	                "1 taint {maintenance:NoExecute} not tolerated");

	/* wrong value, wrong effect: still not tolerated */
	static const struct kd_toleration wrong[] = {
	    {.key = "dedicated", .op = KD_TOLERATION_EQUAL, .value = "cpu"},
	    {.key = "maintenance", .op = KD_TOLERATION_EXISTS, .effect = KD_TAINT_NO_SCHEDULE}};
	p.tolerations = wrong;
	p.n_tolerations = 2;
	place_fails(&p, "no node fits pod default/p: 2 nodes: "
	                "1 taint {dedicated=gpu:NoSchedule} not tolerated, "
	                "1 taint {maintenance:NoExecute} not tolerated");

	/* Equal with the value (any effect) tolerates gpu only */
	static const struct kd_toleration eq[] = {
	    {.key = "dedicated", .op = KD_TOLERATION_EQUAL, .value = "gpu"}};
	p.key = "default/eq";
	p.tolerations = eq;
	p.n_tolerations = 1;
	char got[KD_NODE_NAME_MAX];
	assert_int_equal(place(&p, got, NULL, 0), 0);
	assert_string_equal(got, "gpu");

	/* Exists on the key with the matching effect tolerates maint only */
	static const struct kd_toleration ex[] = {
	    {.key = "maintenance", .op = KD_TOLERATION_EXISTS, .effect = KD_TAINT_NO_EXECUTE}};
	p.key = "default/ex";
	p.tolerations = ex;
	assert_int_equal(place(&p, got, NULL, 0), 0);
	assert_string_equal(got, "maint");

	/* an empty key with Exists tolerates everything */
	static const struct kd_toleration all[] = {{.key = "", .op = KD_TOLERATION_EXISTS}};
	p.tolerations = all;
	for (int i = 0; i < 4; i++) {
		char key[32];
		snprintf(key, sizeof(key), "default/all-%d", i);
		p.key = key;
		assert_int_equal(place(&p, got, NULL, 0), 0);
	}

	/* PreferNoSchedule does not filter */
	node_full("spot", 4000, 4096, 110, true, true, NULL, 0, t_pref, 1);
	place_on("default/plain", 100, 64, "spot");
}

static void prefer_no_schedule_nodes_are_used_last(void **state)
{
	(void)state;
	load_ok(NULL);
	static const struct kd_taint t_pref[] = {
	    {.key = "spot", .value = "true", .effect = KD_TAINT_PREFER_NO_SCHEDULE}};
	node_full("spot", 8000, 8192, 110, true, true, NULL, 0, t_pref, 1);
	node("plain", 300, 8192, 110);
	/* the emptier spot node loses to plain until plain is full */
	for (int i = 0; i < 5; i++) {
		char key[32];
		snprintf(key, sizeof(key), "default/p%d", i);
		place_on(key, 100, 64, i < 3 ? "plain" : "spot");
	}
	/* a pod that tolerates it sees only least-allocated */
	static const struct kd_toleration tol[] = {
	    {.key = "spot", .op = KD_TOLERATION_EQUAL, .value = "true"}};
	node("plain2", 300, 8192, 110);
	struct kd_pod_request p = pod("default/t", 100, 64);
	p.tolerations = tol;
	p.n_tolerations = 1;
	char got[KD_NODE_NAME_MAX];
	assert_int_equal(place(&p, got, NULL, 0), 0);
	assert_string_equal(got, "spot");
	place_on("default/u", 100, 64, "plain2");
}

static void node_selector_must_match_every_entry(void **state)
{
	(void)state;
	load_ok(NULL);
	static const struct kd_label la[] = {{"zone", "a"}, {"disk", "ssd"}};
	static const struct kd_label lb[] = {{"zone", "b"}, {"disk", "ssd"}};
	static const struct kd_label lc[] = {{"zone", "a"}};
	node_full("a-ssd", 4000, 4096, 110, true, true, la, 2, NULL, 0);
	node_full("b-ssd", 4000, 4096, 110, true, true, lb, 2, NULL, 0);
	node_full("a-hdd", 4000, 4096, 110, true, true, lc, 1, NULL, 0);
	static const struct kd_label sel[] = {{"zone", "a"}, {"disk", "ssd"}};
	struct kd_pod_request p = pod("default/p", 100, 64);
	p.node_selector = sel;
	p.n_node_selector = 2;
	char got[KD_NODE_NAME_MAX];
	for (int i = 0; i < 5; i++) {
		char key[32];
		snprintf(key, sizeof(key), "default/p%d", i);
		p.key = key;
		assert_int_equal(place(&p, got, NULL, 0), 0);
		assert_string_equal(got, "a-ssd");
	}
	static const struct kd_label sel2[] = {{"zone", "c"}};
	p.key = "default/q";
	p.node_selector = sel2;
	p.n_node_selector = 1;
	place_fails(&p,
	            "no node fits pod default/q: 3 nodes: 3 node selector {zone=c} not matched");
	static const struct kd_label sel3[] = {{"zone", "b"}, {"disk", "hdd"}};
	p.node_selector = sel3;
	p.n_node_selector = 2;
	place_fails(&p, "no node fits pod default/q: 3 nodes: 2 node selector {zone=b} not "
	                "matched, 1 node selector {disk=hdd} not matched");
}

/* --- accounting ---------------------------------------------------------------------- */

/* Per node counts of successful placements out of 1000 on three small nodes whose capacities are
 * bounded by cpu (a: 10), memory (b: 8) and pod count (c: 5): exactly 23 fit. */
static void burst_of_1000_ephemeral_placements_never_over_commits(void **state)
{
	(void)state;
	for (int batch = 0; batch < 2; batch++) {
		load_ok(NULL);
		node("a", 1000, 4096, 110); /* 10 x 100m */
		node("b", 8000, 512, 110);  /* 8 x 64Mi */
		node("c", 8000, 4096, 5);   /* 5 pods */
		static struct kd_pod_request reqs[1000];
		static struct kd_placement out[1000];
		static char keys[1000][32];
		for (int i = 0; i < 1000; i++) {
			snprintf(keys[i], sizeof(keys[i]), "default/burst-%04d", i);
			reqs[i] = pod(keys[i], 100, 64);
		}
		int placed = 0, on_a = 0, on_b = 0, on_c = 0;
		if (batch) {
			struct kd_error *err = NULL;
			assert_int_equal(ops->place_batch(sch, reqs, 1000, out, &err), -ENOSPC);
			assert_non_null(err);
			assert_string_equal(err->msg,
			                    "no node fits pod default/burst-0023: 3 nodes: 1 "
			                    "insufficient cpu, 1 insufficient memory, 1 too "
			                    "many pods (and 976 more of 1000 pods not placed)");
			kd_error_free(err);
		} else {
			for (int i = 0; i < 1000; i++) {
				struct kd_error *err = NULL;
				out[i].rc = ops->place(sch, &reqs[i], out[i].node, &err);
				assert_int_equal(out[i].rc != 0, err != NULL);
				kd_error_free(err);
			}
		}
		for (int i = 0; i < 1000; i++) {
			if (out[i].rc != 0) {
				assert_int_equal(out[i].rc, -ENOSPC);
				continue;
			}
			placed++;
			on_a += strcmp(out[i].node, "a") == 0;
			on_b += strcmp(out[i].node, "b") == 0;
			on_c += strcmp(out[i].node, "c") == 0;
		}
		assert_int_equal(placed, 23);
		assert_int_equal(on_a, 10);
		assert_int_equal(on_b, 8);
		assert_int_equal(on_c, 5);
		/* all 23 first, then nothing: the capacity was reached, never exceeded */
		for (int i = 0; i < 1000; i++)
			assert_int_equal(out[i].rc == 0, i < 23);
		kd_plugin_unload(plugin);
		plugin = NULL;
	}
}

static void release_frees_capacity(void **state)
{
	(void)state;
	load_ok(NULL);
	node("a", 300, 1024, 110);
	place_on("default/p1", 100, 64, "a");
	place_on("default/p2", 100, 64, "a");
	place_on("default/p3", 100, 64, "a");
	struct kd_pod_request p4 = pod("default/p4", 100, 64);
	place_fails(&p4, "no node fits pod default/p4: 1 node: 1 insufficient cpu");
	ops->release(sch, "default/p2");
	ops->release(sch, "default/p2");      /* twice: no-op */
	ops->release(sch, "default/unknown"); /* unknown: no-op */
	place_on("default/p4", 100, 64, "a");
	place_fails(&(struct kd_pod_request){.key = "default/p5",
	                                     .requests = {.cpu_milli = 100, .pods = 1}},
	            "no node fits pod default/p5: 1 node: 1 insufficient cpu");
	/* idempotent by key: placing p4 again returns its node and takes nothing more */
	place_on("default/p4", 100, 64, "a");
	ops->release(sch, "default/p4");
	place_on("default/p5", 100, 64, "a");
}

static void api_bound_pods_count(void **state)
{
	(void)state;
	load_ok(NULL);
	node("a", 1000, 4096, 110);
	node("b", 1000, 4096, 110);
	/* kube-scheduler's pods fill b; bound twice (relist) they count once */
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 9; i++) {
			char key[32];
			snprintf(key, sizeof(key), "other/api-%d", i);
			struct kd_pod_request p = pod(key, 100, 64);
			assert_int_equal(ops->pod_bound(sch, &p, "b"), 0);
		}
	/* a: 10 free slots, b: 1; least-allocated fills a until it is as full as b */
	int on_a = 0;
	for (int i = 0; i < 11; i++) {
		char key[32], got[KD_NODE_NAME_MAX];
		snprintf(key, sizeof(key), "default/e-%d", i);
		struct kd_pod_request p = pod(key, 100, 64);
		assert_int_equal(place(&p, got, NULL, 0), 0);
		if (i < 9)
			assert_string_equal(got, "a");
		on_a += strcmp(got, "a") == 0;
	}
	assert_int_equal(on_a, 10);
	struct kd_pod_request p = pod("default/full", 100, 64);
	place_fails(&p, "no node fits pod default/full: 2 nodes: 2 insufficient cpu");

	/* an ephemeral instance written back and observed through the API: still counted once */
	struct kd_pod_request e0 = pod("default/e-0", 100, 64);
	assert_int_equal(ops->pod_bound(sch, &e0, "a"), 0);
	place_fails(&p, "no node fits pod default/full: 2 nodes: 2 insufficient cpu");
	/* the API shows an API pod on another node: moved, not duplicated */
	struct kd_pod_request api0 = pod("other/api-0", 100, 64);
	assert_int_equal(ops->pod_bound(sch, &api0, "elsewhere"), 0);
	place_on("default/full", 100, 64, "b");
	/* a pod bound to a node not yet known counts once the node appears */
	struct kd_pod_request early = pod("other/early", 500, 64);
	assert_int_equal(ops->pod_bound(sch, &early, "c"), 0);
	node("c", 600, 4096, 110);
	p = pod("default/big", 200, 64);
	place_fails(&p, "no node fits pod default/big: 3 nodes: 3 insufficient cpu");
	/* releasing an API pod (deleted) frees its share */
	ops->release(sch, "other/early");
	place_on("default/big", 200, 64, "c");

	/* bad input */
	assert_int_equal(ops->pod_bound(sch, &p, NULL), -EINVAL);
	struct kd_pod_request nokey = pod(NULL, 1, 1);
	assert_int_equal(ops->pod_bound(sch, &nokey, "a"), -EINVAL);
}

/* A model of the accounting, checked against the plugin over random operations: every
 * successful place() fits the node per the model (invariant 7), every refusal is right (no node
 * fits per the model), re-placing a key returns its node. */
#define M_NODES 5
#define M_KEYS  100

struct m_pod {
	bool live;
	int node; /* index into m_names */
	int64_t cpu, mem;
};

static const char *const m_names[M_NODES] = {"m0", "m1", "m2", "m3", "m4"};

static uint64_t m_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void m_sum(const struct m_pod *pods, int node, int64_t *cpu, int64_t *mem, int64_t *n)
{
	*cpu = *mem = *n = 0;
	for (int k = 0; k < M_KEYS; k++)
		if (pods[k].live && pods[k].node == node) {
			*cpu += pods[k].cpu;
			*mem += pods[k].mem;
			(*n)++;
		}
}

static bool m_fits(const struct m_pod *pods, const struct kd_resources *alloc, int node,
                   int64_t cpu, int64_t mem)
{
	int64_t c, m, n;
	m_sum(pods, node, &c, &m, &n);
	return n + 1 <= alloc->pods && (cpu == 0 || c + cpu <= alloc->cpu_milli) &&
	       (mem == 0 || m + mem <= alloc->memory_bytes);
}

static void random_operations_never_over_commit_nor_refuse_a_fit(void **state)
{
	(void)state;
	load_ok(NULL);
	static struct m_pod pods[M_KEYS];
	memset(pods, 0, sizeof(pods));
	struct kd_resources alloc[M_NODES];
	bool present[M_NODES];
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < M_NODES; i++) {
		alloc[i] =
		    (struct kd_resources){.cpu_milli = 1000 + (int64_t)(m_rand(&x) % 3000),
		                          .memory_bytes = (int64_t)(1 + m_rand(&x) % 8) * 256 * MI,
		                          .pods = 5 + (int64_t)(m_rand(&x) % 20)};
		node(m_names[i], alloc[i].cpu_milli, alloc[i].memory_bytes / MI, alloc[i].pods);
		present[i] = true;
	}
	int placed = 0, refused = 0;
	for (int step = 0; step < 4000; step++) {
		int k = (int)(m_rand(&x) % M_KEYS);
		char key[32];
		snprintf(key, sizeof(key), "default/k%d", k);
		uint64_t op = m_rand(&x) % 100;
		if (op < 55) { /* place */
			int64_t cpu = (int64_t)(m_rand(&x) % 4) * 100;
			int64_t mem = (int64_t)(m_rand(&x) % 3) * 64 * MI;
			struct kd_pod_request p = {
			    .key = key,
			    .revision = "default/r",
			    .requests = {.cpu_milli = cpu, .memory_bytes = mem, .pods = 1}};
			char got[KD_NODE_NAME_MAX];
			int rc = place(&p, got, NULL, 0);
			if (pods[k].live) { /* idempotent */
				assert_int_equal(rc, 0);
				assert_string_equal(got, m_names[pods[k].node]);
				continue;
			}
			if (rc == 0) {
				int n = got[1] - '0';
				assert_true(present[n]);
				assert_true(m_fits(pods, &alloc[n], n, cpu, mem));
				pods[k] =
				    (struct m_pod){.live = true, .node = n, .cpu = cpu, .mem = mem};
				placed++;
			} else {
				assert_int_equal(rc, -ENOSPC);
				for (int n = 0; n < M_NODES; n++)
					assert_false(present[n] &&
					             m_fits(pods, &alloc[n], n, cpu, mem));
				refused++;
			}
		} else if (op < 80) { /* release */
			ops->release(sch, key);
			pods[k].live = false;
		} else if (op < 88) { /* an API pod appears or moves (may over-commit) */
			int n = (int)(m_rand(&x) % M_NODES);
			int64_t cpu = (int64_t)(m_rand(&x) % 3) * 100;
			struct kd_pod_request p = {.key = key,
			                           .requests = {.cpu_milli = cpu, .pods = 1}};
			if (pods[k].live && pods[k].node == n)
				continue; /* same node: idempotent, the first requests stay */
			assert_int_equal(ops->pod_bound(sch, &p, m_names[n]), 0);
			pods[k] = (struct m_pod){.live = true, .node = n, .cpu = cpu, .mem = 0};
		} else if (op < 95) { /* allocatable changes */
			int n = (int)(m_rand(&x) % M_NODES);
			alloc[n].cpu_milli = 500 + (int64_t)(m_rand(&x) % 3500);
			alloc[n].pods = 3 + (int64_t)(m_rand(&x) % 25);
			node(m_names[n], alloc[n].cpu_milli, alloc[n].memory_bytes / MI,
			     alloc[n].pods);
			present[n] = true;
		} else { /* node goes away or comes back */
			int n = (int)(m_rand(&x) % M_NODES);
			if (present[n]) {
				ops->node_remove(sch, m_names[n]);
				present[n] = false;
			} else {
				node(m_names[n], alloc[n].cpu_milli, alloc[n].memory_bytes / MI,
				     alloc[n].pods);
				present[n] = true;
			}
		}
	}
	/* both outcomes were exercised */
	printf("model: %d placed, %d refused\n", placed, refused);
	assert_true(placed > 100);
	assert_true(refused > 100);
}

/* --- scores -------------------------------------------------------------------------- */

static void least_allocated_spreads_a_burst_evenly(void **state)
{
	(void)state;
	load_ok(NULL);
	const char *names[] = {"n0", "n1", "n2", "n3"};
	for (int i = 0; i < 4; i++)
		node(names[i], 4000, 8192, 110);
	int count[4] = {0};
	for (int i = 0; i < 40; i++) {
		char key[32], got[KD_NODE_NAME_MAX];
		snprintf(key, sizeof(key), "default/s-%d", i);
		struct kd_pod_request p = pod(key, 100, 128);
		assert_int_equal(place(&p, got, NULL, 0), 0);
		for (int j = 0; j < 4; j++)
			count[j] += strcmp(got, names[j]) == 0;
		/* after every round of 4, each node has the same number */
		if (i % 4 == 3)
			for (int j = 0; j < 4; j++)
				assert_int_equal(count[j], (i + 1) / 4);
	}
	/* a bigger node takes proportionally more: 8 cores vs 4 gets the next ones */
	node("big", 8000, 16384, 220);
	for (int i = 0; i < 10; i++) {
		char key[32];
		snprintf(key, sizeof(key), "default/t-%d", i);
		place_on(key, 100, 128, "big");
	}
}

static void spread_score_balances_each_revision(void **state)
{
	(void)state;
	load_ok("{\"score\": \"spread\"}");
	node("small", 1000, 2048, 110);
	node("large", 16000, 32768, 110);
	/* least-allocated alone would put everything on "large"; spread alternates per revision */
	char got[KD_NODE_NAME_MAX];
	int on_small = 0;
	for (int i = 0; i < 6; i++) {
		char key[32];
		snprintf(key, sizeof(key), "default/r1-%d", i);
		struct kd_pod_request p = pod(key, 100, 64);
		p.revision = "default/r1";
		assert_int_equal(place(&p, got, NULL, 0), 0);
		on_small += strcmp(got, "small") == 0;
	}
	assert_int_equal(on_small, 3);
	/* another revision starts from zero on both: first goes to the less allocated one */
	struct kd_pod_request q = pod("default/r2-0", 100, 64);
	q.revision = "default/r2";
	assert_int_equal(place(&q, got, NULL, 0), 0);
	assert_string_equal(got, "large");
	q.key = "default/r2-1";
	assert_int_equal(place(&q, got, NULL, 0), 0);
	assert_string_equal(got, "small");
	/* released instances no longer count for spreading */
	for (int i = 0; i < 6; i++) {
		char key[32];
		snprintf(key, sizeof(key), "default/r1-%d", i);
		ops->release(sch, key);
	}
	struct kd_pod_request r = pod("default/r2-2", 100, 64);
	r.revision = "default/r2";
	assert_int_equal(place(&r, got, NULL, 0), 0);
	assert_string_equal(got, "large");
}

static void removed_nodes_take_nothing_and_come_back_with_their_pods(void **state)
{
	(void)state;
	load_ok(NULL);
	node("a", 200, 4096, 110);
	node("b", 200, 4096, 110);
	place_on("default/p1", 100, 64, "a");
	place_on("default/p2", 100, 64, "b");
	place_on("default/p3", 100, 64, "a");
	ops->node_remove(sch, "a");
	ops->node_remove(sch, "a");       /* twice: no-op */
	ops->node_remove(sch, "missing"); /* unknown: no-op */
	place_on("default/p4", 100, 64, "b");
	struct kd_pod_request p5 = pod("default/p5", 100, 64);
	place_fails(&p5, "no node fits pod default/p5: 1 node: 1 insufficient cpu");
	/* a node of the same name comes back: its pods, never released, are still there */
	node("a", 200, 4096, 110);
	place_fails(&p5, "no node fits pod default/p5: 2 nodes: 2 insufficient cpu");
	ops->release(sch, "default/p1");
	place_on("default/p5", 100, 64, "a");
	/* a node update with new allocatable keeps the accounting */
	node("b", 300, 4096, 110);
	place_on("default/p6", 100, 64, "b");
	place_fails(&(struct kd_pod_request){.key = "default/p7",
	                                     .requests = {.cpu_milli = 100, .pods = 1}},
	            "no node fits pod default/p7: 2 nodes: 2 insufficient cpu");
}

static void bad_input_and_config_are_refused(void **state)
{
	(void)state;
	struct kd_error *err = NULL;
	assert_int_equal(sch_load("{\"score\": \"most-allocated\"}", &err), -EINVAL);
	assert_non_null(strstr(err->msg, "most-allocated"));
	kd_error_free(err);
	err = NULL;

	load_ok(NULL);
	const struct kd_plugin *d = kd_plugin_desc(plugin);
	assert_string_equal(d->name, "scheduler");
	assert_true(KD_HAS_MEMBER(ops, struct kd_scheduler_ops, place_batch));
	assert_non_null(ops->place_batch);

	struct kd_node_info n = {.name = "", .ready = true, .schedulable = true};
	assert_int_equal(ops->node_update(sch, &n, &err), -EINVAL);
	assert_string_equal(err->msg, "scheduler: node without a valid name");
	kd_error_free(err);
	err = NULL;
	n = (struct kd_node_info){.name = "x", .allocatable = {.cpu_milli = -1}};
	assert_int_equal(ops->node_update(sch, &n, &err), -EINVAL);
	assert_string_equal(err->msg, "scheduler: node x: negative allocatable");
	kd_error_free(err);
	err = NULL;

	node("a", 1000, 1024, 10);
	struct kd_pod_request p = pod("default/neg", -5, 1);
	char out[KD_NODE_NAME_MAX];
	assert_int_equal(ops->place(sch, &p, out, &err), -EINVAL);
	assert_string_equal(err->msg, "scheduler: pod default/neg: negative resource request");
	kd_error_free(err);
	err = NULL;

	/* absurd API pods neither overflow the accounting nor make room */
	node("huge", INT64_MAX, INT64_MAX / MI, INT64_MAX);
	for (int i = 0; i < 3; i++) {
		char key[32];
		snprintf(key, sizeof(key), "other/huge-%d", i);
		struct kd_pod_request hp = {.key = key,
		                            .requests = {.cpu_milli = INT64_MAX,
		                                         .memory_bytes = INT64_MAX,
		                                         .pods = INT64_MAX}};
		assert_int_equal(ops->pod_bound(sch, &hp, "huge"), 0);
	}
	struct kd_pod_request small = pod("default/small", 1, 0);
	char msg[512];
	assert_int_equal(place(&small, out, msg, sizeof(msg)), 0);
	assert_string_equal(out, "a");
	ops->node_remove(sch, "huge");

	/* a batch with a bad entry: the others are placed, the result says which one failed */
	struct kd_pod_request reqs[3] = {pod("default/b0", 1, 1), pod(NULL, 1, 1),
	                                 pod("default/b2", 1, 1)};
	struct kd_placement res[3];
	assert_int_equal(ops->place_batch(sch, reqs, 3, res, &err), -EINVAL);
	assert_string_equal(err->msg, "scheduler: pod request without a key");
	kd_error_free(err);
	assert_int_equal(res[0].rc, 0);
	assert_string_equal(res[0].node, "a");
	assert_int_equal(res[1].rc, -EINVAL);
	assert_string_equal(res[1].node, "");
	assert_int_equal(res[2].rc, 0);
}

/* --- throughput (printed, not asserted) ---------------------------------------------- */

static void throughput_500_placements_on_20_nodes(void **state)
{
	(void)state;
	load_ok(NULL);
	static const struct kd_label lab[] = {{"kubernetes.io/os", "linux"}, {"zone", "a"}};
	static const struct kd_taint tnt[] = {
	    {.key = "kubedirect.dev/pool", .value = "fast", .effect = KD_TAINT_NO_SCHEDULE}};
	for (int i = 0; i < 20; i++) {
		char name[32];
		snprintf(name, sizeof(name), "node-%02d", i);
		node_full(name, 16000, 65536, 110, true, true, lab, 2, tnt, 1);
	}
	static const struct kd_label sel[] = {{"kubernetes.io/os", "linux"}};
	static const struct kd_toleration tol[] = {
	    {.key = "kubedirect.dev/pool", .op = KD_TOLERATION_EXISTS}};
	static struct kd_pod_request reqs[500];
	static struct kd_placement out[500];
	static char keys[500][64];
	for (int i = 0; i < 500; i++) {
		snprintf(keys[i], sizeof(keys[i]), "default/hello-00001-deployment-%05d", i);
		reqs[i] = pod(keys[i], 25, 32);
		reqs[i].node_selector = sel;
		reqs[i].n_node_selector = 1;
		reqs[i].tolerations = tol;
		reqs[i].n_tolerations = 1;
	}
	/* one by one */
	uint64_t t0 = kd_now_ns();
	for (int i = 0; i < 500; i++) {
		struct kd_error *err = NULL;
		assert_int_equal(ops->place(sch, &reqs[i], out[i].node, &err), 0);
	}
	uint64_t t1 = kd_now_ns();
	for (int i = 0; i < 500; i++)
		ops->release(sch, keys[i]);
	/* batched */
	uint64_t t2 = kd_now_ns();
	struct kd_error *err = NULL;
	assert_int_equal(ops->place_batch(sch, reqs, 500, out, &err), 0);
	uint64_t t3 = kd_now_ns();
	int per_node[20] = {0};
	for (int i = 0; i < 500; i++)
		per_node[atoi(out[i].node + 5)]++;
	for (int i = 0; i < 20; i++)
		assert_int_equal(per_node[i], 25); /* 500 on 20 equal nodes: 25 each */
	printf(
	    "scheduler: 500 placements on 20 nodes: place %.2f us/pod, place_batch %.2f us/pod\n",
	    (double)(t1 - t0) / 500 / 1000.0, (double)(t3 - t2) / 500 / 1000.0);
}

static int setup_all(void **state)
{
	(void)state;
	setenv("KD_PLUGIN_DIR", KD_BUILD_DIR "/plugins", 1);
	loop = kd_loop_new();
	if (!loop)
		return -1;
	kd_host_init(&host, loop, "test-scheduler");
	return 0;
}

static int teardown_all(void **state)
{
	(void)state;
	kd_loop_free(loop);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(resource_fit_refuses_with_one_reason_per_node, teardown),
	    cmocka_unit_test_teardown(not_ready_and_cordoned_nodes_are_skipped, teardown),
	    cmocka_unit_test_teardown(taints_need_matching_tolerations, teardown),
	    cmocka_unit_test_teardown(prefer_no_schedule_nodes_are_used_last, teardown),
	    cmocka_unit_test_teardown(node_selector_must_match_every_entry, teardown),
	    cmocka_unit_test_teardown(burst_of_1000_ephemeral_placements_never_over_commits,
	                              teardown),
	    cmocka_unit_test_teardown(release_frees_capacity, teardown),
	    cmocka_unit_test_teardown(random_operations_never_over_commit_nor_refuse_a_fit,
	                              teardown),
	    cmocka_unit_test_teardown(api_bound_pods_count, teardown),
	    cmocka_unit_test_teardown(least_allocated_spreads_a_burst_evenly, teardown),
	    cmocka_unit_test_teardown(spread_score_balances_each_revision, teardown),
	    cmocka_unit_test_teardown(removed_nodes_take_nothing_and_come_back_with_their_pods,
	                              teardown),
	    cmocka_unit_test_teardown(bad_input_and_config_are_refused, teardown),
	    cmocka_unit_test_teardown(throughput_500_placements_on_20_nodes, teardown),
	};
	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
