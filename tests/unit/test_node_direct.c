/* Unit tests of kd-node's direct mode. Pure parts (node-agent/directops.c): the op decision table
 * (one sandbox per key, refusal of unknown templates, waiting for informers, ephemeral vs
 * persisted deletes; exhaustively checked against invariant 1), held[] ops read back from a built
 * instance Pod, status ops, the published channel address, and the channel-addr annotation on the
 * Node objects (objects.c). Flows (direct.c with pods.c, on the loopback harness of
 * test_node_harness.h): an instance op arriving as upsert or delete, duplicated, before the pod
 * informer synced (restart adoption), with an unknown or stale template, its written-back Pod
 * seen through the watch, a cancelled create landing (tombstone), a failed write-back; each
 * asserts what kd-node decided (start, ignore, report, write back, delete) and that exactly one
 * sandbox ever ran per instance name. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "test_node_harness.h"

static const char *deployment_json =
    "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"hello-00001-"
    "deployment\",\"namespace\":\"demo\",\"uid\":\"d-uid-1\",\"labels\":{"
    "\"serving.knative.dev/revision\":\"hello-00001\"}},\"spec\":{\"replicas\":0,\"template\":{"
    "\"metadata\":{\"labels\":{\"app\":\"hello-00001\",\"pod-template-hash\":\"abc123\","
    "\"serving.knative.dev/revision\":\"hello-00001\"}},\"spec\":{\"containers\":[{\"name\":"
    "\"user-container\",\"image\":\"dev.local/hello\"}]}}}}";

static json_object *parse(const char *s)
{
	json_object *o = NULL;
	assert_int_equal(kd_json_parse(s, strlen(s), 0, "fixture", &o, NULL), 0);
	return o;
}

/* An instance of the fixture's revision: name on node, from template tmpl_name with uid
 * tmpl_uid (the fixture's: "hello-00001-deployment", "d-uid-1"). */
static void fill_for(struct kd_instance_desc *d, json_object *dep, const char *name,
                     const char *node, const char *tmpl_name, const char *tmpl_uid)
{
	char hash[KD_TEMPLATE_HASH_LEN + 1];
	assert_int_equal(kd_instance_template_hash(dep, hash), 0);
	kd_instance_init(d);
	d->ns = kd_xstrdup("demo");
	d->name = kd_xstrdup(name);
	d->tmpl_name = kd_xstrdup(tmpl_name);
	d->tmpl_uid = kd_xstrdup(tmpl_uid);
	d->tmpl_hash = kd_xstrdup(hash);
	d->owner_name = kd_xstrdup("hello-00001");
	d->owner_uid = kd_xstrdup("pa-uid-1");
	d->node = kd_xstrdup(node);
	d->ctime_ms = 1763920000123;
}

static void fill(struct kd_instance_desc *d, json_object *dep)
{
	fill_for(d, dep, "hello-00001-kd-7", "kd-node-1", "hello-00001-deployment", "d-uid-1");
}

static struct kd_direct_facts upsert_ready(void)
{
	struct kd_direct_facts f;
	memset(&f, 0, sizeof(f));
	f.kind = KD_OP_UPSERT;
	f.node_ours = true;
	f.pods_synced = true;
	f.tmpl_synced = true;
	f.tmpl = KD_DIRECT_TMPL_OK;
	return f;
}

static void upsert_with_template_starts(void **state)
{
	(void)state;
	struct kd_direct_facts f = upsert_ready();
	assert_int_equal(kd_node_direct_decide(&f), KD_DIRECT_START);
	assert_string_equal(kd_node_direct_action_name(KD_DIRECT_START), "start");
}

static void duplicate_or_api_pod_first_never_starts_twice(void **state)
{
	(void)state;
	struct kd_direct_facts f = upsert_ready();
	f.has_entry = true;
	f.entry_same_node = true;
	assert_int_equal(kd_node_direct_decide(&f), KD_DIRECT_NOOP);
	f.entry_persisted = true; /* the written-back Pod came through the informer first */
	assert_int_equal(kd_node_direct_decide(&f), KD_DIRECT_NOOP);
	/* same name elsewhere or still stopping: refused, not started */
	f.entry_same_node = false;
	assert_int_equal(kd_node_direct_decide(&f), KD_DIRECT_REFUSE_BUSY);
	f.entry_same_node = true;
	f.entry_stopping = true;
	assert_int_equal(kd_node_direct_decide(&f), KD_DIRECT_REFUSE_BUSY);
	/* a key we cancelled whose delete is pending */
	f = upsert_ready();
	f.cancelled = true;
	assert_int_equal(kd_node_direct_decide(&f), KD_DIRECT_REFUSE_BUSY);
}

static void unknown_template_refused_only_when_synced(void **state)
{
	(void)state;
	struct kd_direct_facts f = upsert_ready();
	f.tmpl = KD_DIRECT_TMPL_MISSING;
	assert_int_equal(kd_node_direct_decide(&f), KD_DIRECT_REFUSE_TEMPLATE);
	f.tmpl_synced = false;
	assert_int_equal(kd_node_direct_decide(&f), KD_DIRECT_WAIT);
	f = upsert_ready();
	f.tmpl = KD_DIRECT_TMPL_STALE; /* our copy is older/newer: wait for the informer */
	assert_int_equal(kd_node_direct_decide(&f), KD_DIRECT_WAIT);
	f = upsert_ready();
	f.pods_synced = false; /* restart: adoption first */
	assert_int_equal(kd_node_direct_decide(&f), KD_DIRECT_WAIT);
}

static void foreign_node_refused(void **state)
{
	(void)state;
	struct kd_direct_facts f = upsert_ready();
	f.node_ours = false;
	assert_int_equal(kd_node_direct_decide(&f), KD_DIRECT_REFUSE_NODE);
}

static void delete_ephemeral_cancels_persisted_deletes(void **state)
{
	(void)state;
	struct kd_direct_facts f;
	memset(&f, 0, sizeof(f));
	f.kind = KD_OP_DELETE;
	assert_int_equal(kd_node_direct_decide(&f), KD_DIRECT_NOOP);
	f.has_entry = true;
	assert_int_equal(kd_node_direct_decide(&f), KD_DIRECT_CANCEL);
	f.entry_persisted = true;
	assert_int_equal(kd_node_direct_decide(&f), KD_DIRECT_DELETE_PERSISTED);
}

static void held_op_round_trips_identity_of_built_pod(void **state)
{
	(void)state;
	kd_autojson json_object *dep = parse(deployment_json);
	struct kd_instance_desc d;
	fill(&d, dep);
	kd_autojson json_object *pod = NULL;
	assert_int_equal(kd_instance_build_pod(dep, &d, &pod, NULL), 0);
	struct kd_op op;
	memset(&op, 0, sizeof(op));
	assert_int_equal(kd_node_direct_held_op(pod, &op, NULL), 0);
	struct kd_op want;
	memset(&want, 0, sizeof(want));
	assert_int_equal(kd_instance_to_op(&d, &want, NULL), 0);
	assert_true(kd_op_equal(&op, &want)); /* the upstream keeps it: same tmpl hash and node */
	assert_string_equal(op.key, "demo/hello-00001-kd-7");
	assert_string_equal(op.node, "kd-node-1");
	assert_string_equal(op.tmpl.hash, d.tmpl_hash);
	kd_op_fini(&op);
	kd_op_fini(&want);
	/* a pod that is not a managed instance is refused */
	kd_autojson json_object *plain =
	    parse("{\"metadata\":{\"name\":\"x\",\"namespace\":\"demo\"},\"spec\":{}}");
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_node_direct_held_op(plain, &op, &err), -EINVAL);
	kd_instance_fini(&d);
}

static void status_ops_carry_ready_ip_and_gone(void **state)
{
	(void)state;
	struct kd_op op;
	memset(&op, 0, sizeof(op));
	assert_int_equal(kd_node_direct_status_op("demo/p1", "kd-node-0", true, "10.244.0.5", NULL,
	                                          "hello-00001", false, &op, NULL),
	                 0);
	struct kd_instance_status st;
	assert_int_equal(kd_instance_status_from_op(&op, &st, NULL), 0);
	assert_true(st.ready);
	assert_false(st.gone);
	assert_string_equal(st.ip, "10.244.0.5");
	assert_string_equal(st.node, "kd-node-0");
	assert_string_equal(st.revision, "hello-00001"); /* what kd-activator routes by */
	kd_instance_status_fini(&st);
	kd_op_fini(&op);
	/* encoded on the wire and decoded again, the revision survives */
	{
		struct kd_msg m;
		kd_msg_init(&m, KD_MSG_DELTA, 7, 1);
		assert_int_equal(kd_node_direct_status_op("demo/p1", "kd-node-0", true,
		                                          "10.244.0.5", NULL, "hello-00001", false,
		                                          kd_op_list_push(&m.delta.ops), NULL),
		                 0);
		char *buf = NULL;
		size_t len = 0;
		struct kd_delta_limits lim = {0};
		assert_int_equal(kd_msg_encode(&m, 0, &lim, &buf, &len, NULL), 0);
		struct kd_msg *back = NULL;
		assert_int_equal(kd_msg_decode(buf, len, &lim, &back, NULL), 0);
		assert_int_equal(kd_instance_status_from_op(&back->delta.ops.v[0], &st, NULL), 0);
		assert_string_equal(st.revision, "hello-00001");
		kd_instance_status_fini(&st);
		kd_msg_free(back);
		free(buf);
		kd_msg_fini(&m);
	}

	assert_int_equal(kd_node_direct_status_op("demo/p1", "kd-node-0", false, NULL, "Error",
	                                          NULL, false, &op, NULL),
	                 0);
	assert_int_equal(kd_instance_status_from_op(&op, &st, NULL), 0);
	assert_false(st.ready);
	assert_null(st.ip);
	assert_string_equal(st.reason, "Error");
	kd_instance_status_fini(&st);
	kd_op_fini(&op);

	assert_int_equal(kd_node_direct_status_op("demo/p1", "kd-node-0", true, NULL, "Stopped",
	                                          NULL, true, &op, NULL),
	                 0);
	assert_int_equal(op.kind, KD_OP_DELETE);
	assert_string_equal(op.reason, "Stopped");
	kd_op_fini(&op);

	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(
	    kd_node_direct_status_op("no-slash", "n", true, NULL, NULL, NULL, false, &op, &err),
	    -EINVAL);
}

static void published_address(void **state)
{
	(void)state;
	char *s = kd_node_direct_addr(NULL, "127.0.0.1", 9470);
	assert_string_equal(s, "127.0.0.1:9470");
	free(s);
	s = kd_node_direct_addr("", "0.0.0.0", 1234);
	assert_string_equal(s, "127.0.0.1:1234");
	free(s);
	s = kd_node_direct_addr(NULL, "fd00::1", 9470);
	assert_string_equal(s, "[fd00::1]:9470");
	free(s);
	s = kd_node_direct_addr("node.example:9000", "127.0.0.1", 9470);
	assert_string_equal(s, "node.example:9000");
	free(s);
	/* every form parses back with the contract's parser */
	char *host = NULL;
	int port = 0;
	s = kd_node_direct_addr(NULL, "fd00::1", 9470);
	assert_int_equal(kd_instance_addr_parse(s, &host, &port, NULL), 0);
	assert_string_equal(host, "fd00::1");
	assert_int_equal(port, 9470);
	free(host);
	free(s);
}

static void node_objects_publish_channel_addr_only_in_direct_mode(void **state)
{
	(void)state;
	struct kd_node_params p = {
	    .name = "kd-node-0", .internal_ip = "172.31.0.1", .max_pods = 10};
	kd_autojson json_object *n = kd_node_build_node(&p, 1700000000ull * 1000000000ull);
	json_object *ann = kd_json_get_object(n, "metadata.annotations");
	assert_non_null(ann);
	assert_null(json_object_object_get(ann, KD_ANNOT_CHANNEL_ADDR));
	p.channel_addr = "127.0.0.1:9470";
	kd_autojson json_object *n2 = kd_node_build_node(&p, 1700000000ull * 1000000000ull);
	ann = kd_json_get_object(n2, "metadata.annotations");
	assert_string_equal(
	    json_object_get_string(json_object_object_get(ann, KD_ANNOT_CHANNEL_ADDR)),
	    "127.0.0.1:9470");
	kd_autojson json_object *patch = kd_node_build_meta_patch(&p, NULL);
	ann = kd_json_get_object(patch, "metadata.annotations");
	assert_string_equal(
	    json_object_get_string(json_object_object_get(ann, KD_ANNOT_CHANNEL_ADDR)),
	    "127.0.0.1:9470");
}

/* ---- invariant 1 over the whole decision table ------------------------------------------------
 */

static void decision_table_starts_only_a_key_without_entry(void **state)
{
	(void)state;
	unsigned starts = 0;
	for (unsigned bits = 0; bits < (1u << 8); bits++) {
		for (int t = KD_DIRECT_TMPL_OK; t <= KD_DIRECT_TMPL_MISSING; t++) {
			for (int k = 0; k < 2; k++) {
				struct kd_direct_facts f = {
				    .kind = k ? KD_OP_DELETE : KD_OP_UPSERT,
				    .node_ours = bits & 1,
				    .has_entry = bits & 2,
				    .entry_persisted = bits & 4,
				    .entry_stopping = bits & 8,
				    .entry_same_node = bits & 16,
				    .cancelled = bits & 32,
				    .pods_synced = bits & 64,
				    .tmpl_synced = bits & 128,
				    .tmpl = (enum kd_direct_tmpl)t,
				};
				enum kd_direct_action act = kd_node_direct_decide(&f);
				bool want_start = f.kind == KD_OP_UPSERT && f.node_ours &&
				                  !f.cancelled && !f.has_entry && f.pods_synced &&
				                  f.tmpl == KD_DIRECT_TMPL_OK;
				if ((act == KD_DIRECT_START) != want_start)
					fail_msg("facts 0x%x tmpl %d kind %d: %s", bits, t, k,
					         kd_node_direct_action_name(act));
				starts += act == KD_DIRECT_START;
				if (f.kind == KD_OP_DELETE)
					assert_true(act == KD_DIRECT_NOOP ||
					            act == KD_DIRECT_CANCEL ||
					            act == KD_DIRECT_DELETE_PERSISTED);
				else
					assert_true(act != KD_DIRECT_CANCEL &&
					            act != KD_DIRECT_DELETE_PERSISTED);
			}
		}
	}
	/* one combination of the deciding facts; the entry_* and tmpl_synced bits (2^4) are free */
	assert_int_equal(starts, 16);
}

/* ---- flows: direct.c + pods.c on the loopback harness ---------------------------------------- */

#define SRC     "kd-autoscaler"
#define INST    "hello-00001-kd-7"
#define KEY     "demo/" INST
#define PODS    "/api/v1/namespaces/demo/pods"
#define PODPATH PODS "/" INST

static void flow_start(const char *pod_items)
{
	h_init(2, pod_items, true, deployment_json);
	h_sync_templates();
}

/* Upsert op of instance name on node (template uid tmpl_uid) into caller storage. */
static void upsert_op(const char *name, const char *node, const char *tmpl_name,
                      const char *tmpl_uid, struct kd_op *op)
{
	kd_autojson json_object *dep = parse(deployment_json);
	struct kd_instance_desc d;
	fill_for(&d, dep, name, node, tmpl_name, tmpl_uid);
	memset(op, 0, sizeof(*op));
	assert_int_equal(kd_instance_to_op(&d, op, NULL), 0);
	kd_instance_fini(&d);
}

/* The op refers to another version of the template (a hash our informer's copy does not have).
 * (Stale by hash, not by uid: see the report of this branch about kd_instance_build_pod.) */
static void other_hash(struct kd_op *op)
{
	free(op->tmpl.hash);
	op->tmpl.hash = kd_xstrdup("0123456789abcdef");
}

static void delete_op(const char *key, struct kd_op *op)
{
	memset(op, 0, sizeof(*op));
	op->kind = KD_OP_DELETE;
	op->key = kd_xstrdup(key);
	op->reason = kd_xstrdup("ScaleDown");
}

/* ch_apply as the instance channel calls it; returns its rc, the error message in msg (if any). */
static int apply(const struct kd_op *op, char *msg, size_t len)
{
	kd_autoerr struct kd_error *err = NULL;
	int rc = ch_apply(H.a.direct, SRC, 1, op, &err);
	if (msg)
		snprintf(msg, len, "%s", err ? kd_error_msg(err) : "");
	return rc;
}

/* The last status op queued upstream for key, or NULL. */
static const struct kd_op *last_status(const char *key)
{
	const struct kd_op_list *l = &H.a.direct->stups[0].pending;
	for (size_t i = l->n; i-- > 0;)
		if (strcmp(l->v[i].key, key) == 0)
			return &l->v[i];
	return NULL;
}

/* The API's copy of a POSTed Pod (the nth POST) with a uid, as the watch would deliver it. */
static json_object *written_back(size_t nth, const char *uid)
{
	json_object *o = api_body("POST", PODS, nth);
	assert_non_null(o);
	json_object_object_add(kd_json_get_object(o, "metadata"), "uid",
	                       json_object_new_string(uid));
	return o;
}

static void direct_upsert_runs_one_sandbox_whatever_is_duplicated_or_written_back(void **state)
{
	(void)state;
	flow_start(NULL);
	h_sync_pods();
	struct kd_op op;
	upsert_op(INST, "kd-node-1", "hello-00001-deployment", "d-uid-1", &op);

	/* started at once, not yet in the API */
	assert_int_equal(apply(&op, NULL, 0), 0);
	assert_int_equal(rt_created(&H.rt, KEY), 1);
	struct rt_sandbox *sb = rt_live(&H.rt, KEY);
	assert_null(sb->uid);
	assert_int_equal(kd_node_pods_state(&H.a, KEY, "kd-node-1"),
	                 KD_NODE_POD_EXISTS | KD_NODE_POD_SAME_NODE);
	/* the upstream retries: nothing more */
	assert_int_equal(apply(&op, NULL, 0), 0);
	assert_int_equal(apply(&op, NULL, 0), 0);
	assert_int_equal(rt_created(&H.rt, KEY), 1);
	assert_int_equal(H.rt.start_calls, 1);
	assert_int_equal(H.a.direct->n_dups, 2);

	/* written back once: the Pod of the template, bound, managed */
	RUN_UNTIL(api_count("POST", PODS) == 1);
	kd_autojson json_object *posted = api_body("POST", PODS, 0);
	assert_string_equal(kd_json_get_string(posted, "metadata.name"), INST);
	assert_string_equal(kd_json_get_string(posted, "spec.nodeName"), "kd-node-1");
	assert_true(kd_instance_pod_is_managed(posted));

	/* ready: reported upstream at once; no status patch while the Pod has no uid */
	rt_emit(&H.rt, KEY, KD_RUNTIME_READY, NULL, NULL, 0);
	const struct kd_op *st = last_status(KEY);
	assert_non_null(st);
	assert_int_equal(st->kind, KD_OP_UPSERT);
	assert_true(st->ready);
	assert_string_equal(st->ip, sb->ip);
	assert_string_equal(st->node, "kd-node-1");
	assert_false(h_pod(KEY)->patch_inflight);

	/* the written-back Pod through the watch: same sandbox, now persisted and patched Ready */
	kd_autojson json_object *api_pod = written_back(0, "u-wb-1");
	on_add(NULL, api_pod, &H.a);
	h_pod_update(api_pod, api_pod, &H.a);
	assert_int_equal(rt_created(&H.rt, KEY), 1);
	assert_int_equal(H.rt.start_calls, 1);
	assert_int_equal(kd_node_pods_state(&H.a, KEY, "kd-node-1"),
	                 KD_NODE_POD_EXISTS | KD_NODE_POD_PERSISTED | KD_NODE_POD_SAME_NODE);
	RUN_UNTIL(h_pod(KEY)->patched);
	kd_autojson json_object *patch = api_body("PATCH", PODPATH "/status", 0);
	assert_string_equal(kd_json_get_string(patch, "metadata.uid"), "u-wb-1");
	assert_string_equal(kd_json_get_string(patch, "status.phase"), "Running");
	enum kd_wb_state ws;
	assert_int_equal(kd_wb_state(H.a.direct->wb, KEY, &ws), 0);
	assert_int_equal(ws, KD_WB_PERSISTED);
	/* a late duplicate of the op, after persistence */
	assert_int_equal(apply(&op, NULL, 0), 0);
	assert_int_equal(rt_created(&H.rt, KEY), 1);
	assert_int_equal(api_count("POST", PODS), 1);

	/* delete of a persisted instance: stop now, then DELETE grace 0 with the uid */
	struct kd_op del;
	delete_op(KEY, &del);
	assert_int_equal(apply(&del, NULL, 0), 0);
	assert_true(sb->stop_called);
	assert_int_equal(sb->grace_ms, 0);
	rt_emit(&H.rt, KEY, KD_RUNTIME_EXITED, "Stopped", NULL, 0);
	st = last_status(KEY);
	assert_int_equal(st->kind, KD_OP_DELETE); /* gone upstream */
	RUN_UNTIL(api_count("DELETE", PODPATH) == 1);
	kd_autojson json_object *opts = api_body("DELETE", PODPATH, 0);
	assert_string_equal(kd_json_get_string(opts, "preconditions.uid"), "u-wb-1");
	RUN_UNTIL(h_pod(KEY) == NULL || h_pod(KEY)->deleted);
	on_delete(NULL, api_pod, &H.a);
	assert_null(h_pod(KEY));
	assert_int_equal(rt_created(&H.rt, KEY), 1);
	/* the delete is idempotent */
	assert_int_equal(apply(&del, NULL, 0), 0);
	kd_op_fini(&del);
	kd_op_fini(&op);
	h_fini();
}

static void direct_refuses_foreign_node_and_unknown_template_and_waits_for_stale(void **state)
{
	(void)state;
	flow_start(NULL);
	h_sync_pods();
	char msg[256];
	struct kd_op op;
	upsert_op("i-foreign", "kd-node-9", "hello-00001-deployment", "d-uid-1", &op);
	assert_int_equal(apply(&op, msg, sizeof(msg)), -ENOENT);
	assert_string_equal(msg, "node kd-node-9 is not served by this kd-node");
	kd_op_fini(&op);
	upsert_op("i-unknown", "kd-node-0", "nope-deployment", "d-uid-1", &op);
	assert_int_equal(apply(&op, msg, sizeof(msg)), -ENOENT);
	assert_string_equal(msg, "unknown template Deployment demo/nope-deployment");
	kd_op_fini(&op);
	assert_int_equal(H.rt.start_calls, 0);
	assert_int_equal(H.a.direct->n_refused, 2);

	/* our copy of the template has another hash (the op was built from a newer one): wait,
	 * held for its source only */
	upsert_op("i-stale", "kd-node-0", "hello-00001-deployment", "d-uid-1", &op);
	other_hash(&op);
	assert_int_equal(apply(&op, NULL, 0), 0);
	assert_non_null(kd_strmap_get(&H.a.direct->pending, "demo/i-stale"));
	struct kd_op_list held;
	memset(&held, 0, sizeof(held));
	assert_int_equal(ch_held(H.a.direct, SRC, &held, NULL), 0);
	assert_int_equal(held.n, 1);
	assert_string_equal(held.v[0].key, "demo/i-stale");
	kd_op_list_fini(&held);
	assert_int_equal(ch_held(H.a.direct, "another-upstream", &held, NULL), 0);
	assert_int_equal(held.n, 0);
	kd_op_list_fini(&held);
	/* the wait times out: reported gone, never started */
	struct dpending *p = kd_strmap_get(&H.a.direct->pending, "demo/i-stale");
	p->deadline_ms = 0;
	RUN_UNTIL(H.a.direct->pending.n == 0);
	const struct kd_op *st = last_status("demo/i-stale");
	assert_non_null(st);
	assert_int_equal(st->kind, KD_OP_DELETE);
	assert_string_equal(st->reason, "TemplateUnavailable");
	assert_int_equal(H.rt.start_calls, 0);
	kd_op_fini(&op);

	/* a delete for a waiting op cancels it */
	upsert_op("i-stale2", "kd-node-0", "hello-00001-deployment", "d-uid-1", &op);
	other_hash(&op);
	assert_int_equal(apply(&op, NULL, 0), 0);
	struct kd_op del;
	delete_op("demo/i-stale2", &del);
	assert_int_equal(apply(&del, NULL, 0), 0);
	assert_null(kd_strmap_get(&H.a.direct->pending, "demo/i-stale2"));
	assert_int_equal(H.rt.start_calls, 0);
	kd_op_fini(&del);
	kd_op_fini(&op);
	h_fini();
}

static void direct_op_before_pod_sync_waits_and_adopted_instance_is_not_started_twice(void **state)
{
	(void)state;
	/* a restarted kd-node: the API has the persisted instance, Running at 10.244.1.50 */
	kd_autojson json_object *dep = parse(deployment_json);
	struct kd_instance_desc d;
	fill(&d, dep);
	kd_autojson json_object *pod = NULL;
	assert_int_equal(kd_instance_build_pod(dep, &d, &pod, NULL), 0);
	kd_instance_fini(&d);
	json_object_object_add(kd_json_get_object(pod, "metadata"), "uid",
	                       json_object_new_string("u-adopted"));
	kd_autojson json_object *st = parse(
	    "{\"phase\":\"Running\",\"podIP\":\"10.244.1.50\",\"conditions\":[{\"type\":\"Ready\","
	    "\"status\":\"True\"}],\"containerStatuses\":[{\"name\":\"user-container\","
	    "\"ready\":true}]}");
	json_object_object_add(pod, "status", json_object_get(st));
	flow_start(json_object_to_json_string_ext(pod, JSON_C_TO_STRING_PLAIN));

	/* the upstream's reconcile resends it before the pod informer synced: wait */
	struct kd_op op;
	upsert_op(INST, "kd-node-1", "hello-00001-deployment", "d-uid-1", &op);
	assert_int_equal(apply(&op, NULL, 0), 0);
	assert_int_equal(H.rt.start_calls, 0);
	assert_int_equal(H.a.direct->n_waits, 1);

	/* sync: adopted with its address; the waiting op then finds it and starts nothing */
	h_sync_pods();
	assert_int_equal(rt_created(&H.rt, KEY), 1);
	assert_string_equal(rt_live(&H.rt, KEY)->ip, "10.244.1.50");
	assert_string_equal(rt_live(&H.rt, KEY)->uid, "u-adopted");
	RUN_UNTIL(H.a.direct->pending.n == 0);
	assert_int_equal(rt_created(&H.rt, KEY), 1);
	assert_int_equal(H.rt.start_calls, 1);
	assert_int_equal(H.a.direct->n_dups, 1);
	assert_int_equal(api_count("POST", PODS), 0); /* nothing to write back */
	/* ready: reported upstream (managed), no patch (the API already says so) */
	rt_emit(&H.rt, KEY, KD_RUNTIME_READY, NULL, NULL, 0);
	const struct kd_op *s = last_status(KEY);
	assert_non_null(s);
	assert_true(s->ready);
	assert_string_equal(s->ip, "10.244.1.50");
	assert_true(h_pod(KEY)->patched);
	assert_int_equal(api_count("PATCH", PODPATH "/status"), 0);
	kd_op_fini(&op);
	h_fini();
}

static void direct_cancelled_create_that_lands_is_deleted_and_never_started(void **state)
{
	(void)state;
	flow_start(NULL);
	h_sync_pods();
	api_hold_post(true); /* the create is in flight while the delete arrives */
	struct kd_op op;
	upsert_op(INST, "kd-node-1", "hello-00001-deployment", "d-uid-1", &op);
	assert_int_equal(apply(&op, NULL, 0), 0);
	struct rt_sandbox *sb = rt_live(&H.rt, KEY);
	RUN_UNTIL(api_count("POST", PODS) == 1);
	enum kd_wb_state ws;
	assert_int_equal(kd_wb_state(H.a.direct->wb, KEY, &ws), 0);
	assert_int_equal(ws, KD_WB_PERSISTING);

	/* ephemeral delete: stop now, tombstone the key */
	struct kd_op del;
	delete_op(KEY, &del);
	assert_int_equal(apply(&del, NULL, 0), 0);
	assert_true(sb->stop_called);
	assert_true(kd_node_direct_ignore(&H.a, KEY));
	rt_emit(&H.rt, KEY, KD_RUNTIME_EXITED, "Stopped", NULL, 0);
	assert_null(h_pod(KEY));
	/* a new upsert of that name is refused while its create may still land */
	char msg[256];
	assert_int_equal(apply(&op, msg, sizeof(msg)), -EBUSY);

	/* the create lands: kd-node deletes it, and its Pod through the watch starts nothing */
	api_hold_post(false);
	RUN_UNTIL(api_count("DELETE", PODPATH) == 1);
	RUN_UNTIL(kd_wb_state(H.a.direct->wb, KEY, &ws) < 0); /* deleted: the cache forgot it */
	/* only the tombstone now says the watch's late ADDED is a cancelled instance */
	kd_autojson json_object *landed = written_back(0, "u-landed");
	on_add(NULL, landed, &H.a);
	assert_null(h_pod(KEY));
	assert_int_equal(rt_created(&H.rt, KEY), 1);
	assert_int_equal(H.rt.start_calls, 1);
	kd_op_fini(&del);
	kd_op_fini(&op);
	h_fini();
}

static void direct_failed_write_back_stops_the_sandbox_and_reports_gone(void **state)
{
	(void)state;
	flow_start(NULL);
	h_sync_pods();
	api_set(&api.post_code, 422);
	struct kd_op op;
	upsert_op(INST, "kd-node-1", "hello-00001-deployment", "d-uid-1", &op);
	assert_int_equal(apply(&op, NULL, 0), 0);
	struct rt_sandbox *sb = rt_live(&H.rt, KEY);
	rt_emit(&H.rt, KEY, KD_RUNTIME_READY, NULL, NULL, 0);
	RUN_UNTIL(sb->stop_called);
	assert_int_equal(H.a.direct->n_wb_failed, 1);
	const struct kd_op *st = last_status(KEY);
	assert_int_equal(st->kind, KD_OP_DELETE);
	assert_non_null(st->reason);
	assert_int_equal(strncmp(st->reason, "WriteBackFailed: ", 17), 0);
	rt_emit(&H.rt, KEY, KD_RUNTIME_EXITED, "Stopped", NULL, 0);
	assert_null(h_pod(KEY));
	assert_int_equal(api_count("POST", PODS), 1); /* permanent: not retried */
	assert_int_equal(rt_created(&H.rt, KEY), 1);
	kd_op_fini(&op);
	h_fini();
}

/* Runs the agent's loop for about ms milliseconds (bounded): what was going to be sent is. */
static void spin(unsigned ms)
{
	uint64_t end = kd_now_ns() + (uint64_t)ms * 1000000ull;
	for (int i = 0; i < 10000 && kd_now_ns() < end; i++)
		kd_loop_run_once(H.a.loop, 5);
}

/* A runtime owning the Pod (KD_RUNTIME_CAP_OWNS_POD, runtime-kubelet): it gets the built Pod and
 * creates it itself; kd-node's write-back creates nothing, deletes nothing on a cancel, patches
 * no status (the kubelet writes it), still reports readiness upstream and tracks the Pod through
 * the watch; a Pod bound to the node that is not a kubedirect instance is not served. */
static void direct_runtime_owning_the_pod_gets_no_write_back(void **state)
{
	(void)state;
	flow_start(NULL);
	H.a.rt_owns_pod = true;
	h_sync_pods();
	struct kd_op op;
	upsert_op(INST, "kd-node-1", "hello-00001-deployment", "d-uid-1", &op);
	assert_int_equal(apply(&op, NULL, 0), 0);
	assert_int_equal(rt_created(&H.rt, KEY), 1);
	enum kd_wb_state ws;
	RUN_UNTIL(kd_wb_state(H.a.direct->wb, KEY, &ws) == 0 && ws == KD_WB_PERSISTING);
	spin(50);
	assert_int_equal(api_count("POST", PODS), 0); /* the runtime creates it */

	/* ready: upstream at once, no status patch, also once the Pod is seen with its uid */
	rt_emit(&H.rt, KEY, KD_RUNTIME_READY, NULL, NULL, 0);
	const struct kd_op *st = last_status(KEY);
	assert_non_null(st);
	assert_true(st->ready);
	json_object *api_pod = NULL;
	assert_int_equal(json_object_deep_copy(h_pod(KEY)->obj, &api_pod, NULL), 0);
	json_object_object_add(kd_json_get_object(api_pod, "metadata"), "uid",
	                       json_object_new_string("u-rt-1"));
	on_add(NULL, api_pod, &H.a);
	h_pod_update(api_pod, api_pod, &H.a);
	assert_int_equal(kd_wb_state(H.a.direct->wb, KEY, &ws), 0);
	assert_int_equal(ws, KD_WB_PERSISTED);
	assert_int_equal(kd_node_pods_state(&H.a, KEY, "kd-node-1"),
	                 KD_NODE_POD_EXISTS | KD_NODE_POD_PERSISTED | KD_NODE_POD_SAME_NODE);
	spin(50);
	assert_int_equal(api_count("PATCH", "*"), 0);
	assert_int_equal(H.rt.start_calls, 1);

	/* someone else's Pod on the node: the kubelet's, not ours */
	kd_autojson json_object *plain = parse(
	    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"plain\","
	    "\"namespace\":\"demo\",\"uid\":\"u-plain\"},\"spec\":{\"nodeName\":\"kd-node-1\","
	    "\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]}}");
	on_add(NULL, plain, &H.a);
	assert_null(h_pod("demo/plain"));
	assert_int_equal(H.rt.start_calls, 1);

	/* an ephemeral instance cancelled: stopped, tombstoned (the runtime may have made its
	 * Pod), and no delete from the write-back (the runtime's stop deletes it) */
	struct kd_op op2, del;
	upsert_op("hello-00001-kd-8", "kd-node-1", "hello-00001-deployment", "d-uid-1", &op2);
	assert_int_equal(apply(&op2, NULL, 0), 0);
	RUN_UNTIL(kd_wb_state(H.a.direct->wb, "demo/hello-00001-kd-8", &ws) == 0 &&
	          ws == KD_WB_PERSISTING);
	delete_op("demo/hello-00001-kd-8", &del);
	assert_int_equal(apply(&del, NULL, 0), 0);
	assert_true(rt_live(&H.rt, "demo/hello-00001-kd-8")->stop_called);
	assert_true(kd_node_direct_ignore(&H.a, "demo/hello-00001-kd-8"));
	rt_emit(&H.rt, "demo/hello-00001-kd-8", KD_RUNTIME_EXITED, "Stopped", NULL, 0);
	RUN_UNTIL(kd_wb_state(H.a.direct->wb, "demo/hello-00001-kd-8", &ws) < 0);
	spin(50);
	assert_int_equal(api_count("DELETE", "*"), 0);
	assert_int_equal(api_count("POST", PODS), 0);
	json_object_put(api_pod);
	kd_op_fini(&del);
	kd_op_fini(&op2);
	kd_op_fini(&op);
	h_fini();
}

/* Attach mode's Node writes (objects.c): the InternalIP read from a Node, the merge patch that
 * publishes the channel address and the JSON patch that removes it only while it is ours. */
static void attach_mode_node_patches(void **state)
{
	(void)state;
	kd_autojson json_object *node = parse(
	    "{\"metadata\":{\"name\":\"n\"},\"status\":{\"addresses\":[{\"type\":\"Hostname\","
	    "\"address\":\"n\"},{\"type\":\"InternalIP\",\"address\":\"10.0.0.7\"},{\"type\":"
	    "\"InternalIP\",\"address\":\"10.0.0.8\"}]}}");
	assert_string_equal(kd_node_internal_ip(node), "10.0.0.7");
	kd_autojson json_object *bare = parse("{\"metadata\":{\"name\":\"n\"}}");
	assert_null(kd_node_internal_ip(bare));
	kd_autojson json_object *patch = kd_node_build_channel_patch("127.0.0.1:9470");
	kd_autofree char *t = kd_json_dumps(patch);
	assert_string_equal(t, "{\"metadata\":{\"annotations\":{\"kubedirect.dev/"
	                       "channel-addr\":\"127.0.0.1:9470\"}}}");
	kd_autojson json_object *unpatch = kd_node_build_channel_unpatch("127.0.0.1:9470");
	kd_autofree char *u = kd_json_dumps(unpatch);
	assert_string_equal(u,
	                    "[{\"op\":\"test\",\"path\":\"/metadata/annotations/"
	                    "kubedirect.dev~1channel-addr\",\"value\":\"127.0.0.1:9470\"},{\"op\":"
	                    "\"remove\",\"path\":\"/metadata/annotations/"
	                    "kubedirect.dev~1channel-addr\"}]");
}

/* The admin server's /readyz reason and /metrics text follow the agent: not ready until the API
 * Server answered, the informers listed and every status channel is up; instances by state,
 * direct ops and the write-back queue counted. */
static void admin_readiness_and_metrics_follow_the_agent(void **state)
{
	(void)state;
	h_init(2, NULL, true, deployment_json);
	assert_string_equal(kd_node_not_ready_why(&H.a), "not ready: waiting for the API Server");
	H.a.api_ok = true;
	assert_string_equal(kd_node_not_ready_why(&H.a), "not ready: pod informer not listed yet");
	h_sync_pods();
	assert_string_equal(kd_node_not_ready_why(&H.a),
	                    "not ready: Deployment informer not listed yet");
	h_sync_templates();
	/* the harness's status channel never connects */
	assert_string_equal(kd_node_not_ready_why(&H.a),
	                    "not ready: status channels not all connected");

	struct kd_op op;
	upsert_op(INST, "kd-node-1", "hello-00001-deployment", "d-uid-1", &op);
	api_hold_post(true); /* the write-back stays in flight: queue depth 1 */
	assert_int_equal(apply(&op, NULL, 0), 0);
	size_t len = 0;
	kd_autofree char *m = kd_node_metrics(&H.a, &len);
	assert_int_equal(len, strlen(m));
	assert_non_null(strstr(m, "\nkd_node_nodes{state=\"up\"} 0\n")); /* no Lease yet */
	assert_non_null(strstr(m, "\nkd_node_nodes{state=\"down\"} 2\n"));
	assert_non_null(strstr(m, "\nkd_node_pods{state=\"starting\"} 1\n"));
	assert_non_null(strstr(m, "\nkd_node_pods{state=\"ready\"} 0\n"));
	assert_non_null(strstr(m, "\nkd_node_instances 1\n"));
	assert_non_null(strstr(m, "\nkd_node_sandboxes_started_total 1\n"));
	assert_non_null(strstr(m, "\nkd_node_direct_ops_total 1\n"));
	assert_non_null(strstr(m, "\nkd_node_direct_started_total 1\n"));
	assert_non_null(strstr(m, "\nkd_node_writeback_queue 1\n"));
	/* the loop has not run since the op: the create waits for its batch, unanswered */
	assert_non_null(strstr(m, "\nkd_node_writeback_queue_depth 1\n"));
	assert_non_null(strstr(m, "\n# TYPE kd_node_writeback_latency_seconds histogram\n"));
	assert_non_null(strstr(m, "\nkd_node_writeback_latency_seconds_bucket{le=\"+Inf\"} 0\n"));
	assert_non_null(strstr(m, "\nkd_node_writeback_latency_seconds_count 0\n"));
	assert_non_null(strstr(m, "\n# TYPE kd_node_chan_connects_total counter\n"));
	assert_non_null(strstr(m, "\nkd_node_chan_connects_total{channel=\"status\",end=\"up\"} "));
	assert_non_null(strstr(
	    m, "\nkd_node_chan_frames_total{channel=\"instance\",end=\"down\",direction=\"in\"} "));
	assert_non_null(
	    strstr(m, "\nkd_node_chan_reconnects_total{channel=\"status\",end=\"up\"} "));
	assert_non_null(strstr(m, "\nkd_node_status_channels{state=\"connecting\"} 1\n"));
	assert_non_null(strstr(m, "\nkd_node_api_requests_total{client=\"write-back\"} "));
	assert_non_null(strstr(m, "kd_node_api_responses_total{client=\"main\",code=\"2xx\"} "));
	rt_emit(&H.rt, KEY, KD_RUNTIME_READY, NULL, NULL, 0);
	kd_autofree char *m2 = kd_node_metrics(&H.a, NULL);
	assert_non_null(strstr(m2, "\nkd_node_pods{state=\"ready\"} 1\n"));
	assert_non_null(strstr(m2, "\nkd_node_status_ops_sent_total 0\n")); /* queued only */

	/* without status channels (no --status-addr) the informers are enough */
	H.a.direct->n_stups = 0;
	assert_null(kd_node_not_ready_why(&H.a));
	H.a.direct->n_stups = 1;
	api_hold_post(false);
	kd_op_fini(&op);
	h_fini();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(upsert_with_template_starts),
	    cmocka_unit_test(duplicate_or_api_pod_first_never_starts_twice),
	    cmocka_unit_test(unknown_template_refused_only_when_synced),
	    cmocka_unit_test(foreign_node_refused),
	    cmocka_unit_test(delete_ephemeral_cancels_persisted_deletes),
	    cmocka_unit_test(held_op_round_trips_identity_of_built_pod),
	    cmocka_unit_test(status_ops_carry_ready_ip_and_gone),
	    cmocka_unit_test(published_address),
	    cmocka_unit_test(node_objects_publish_channel_addr_only_in_direct_mode),
	    cmocka_unit_test(decision_table_starts_only_a_key_without_entry),
	    cmocka_unit_test(direct_upsert_runs_one_sandbox_whatever_is_duplicated_or_written_back),
	    cmocka_unit_test(direct_refuses_foreign_node_and_unknown_template_and_waits_for_stale),
	    cmocka_unit_test(
	        direct_op_before_pod_sync_waits_and_adopted_instance_is_not_started_twice),
	    cmocka_unit_test(direct_cancelled_create_that_lands_is_deleted_and_never_started),
	    cmocka_unit_test(direct_failed_write_back_stops_the_sandbox_and_reports_gone),
	    cmocka_unit_test(direct_runtime_owning_the_pod_gets_no_write_back),
	    cmocka_unit_test(attach_mode_node_patches),
	    cmocka_unit_test(admin_readiness_and_metrics_follow_the_agent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
