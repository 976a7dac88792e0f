/* Unit tests of kd-node's direct mode, pure parts (node-agent/directops.c): the op decision table
 * (one sandbox per key, refusal of unknown templates, waiting for informers, ephemeral vs
 * persisted deletes), held[] ops read back from a built instance Pod, status ops, the published
 * channel address, and the channel-addr annotation on the Node objects (objects.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "../../node-agent/directops.c" /* NOLINT(bugprone-suspicious-include) */
#include "../../node-agent/objects.c"   /* NOLINT(bugprone-suspicious-include) */
#include "kd/json.h"

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

static void fill(struct kd_instance_desc *d, json_object *dep)
{
	char hash[KD_TEMPLATE_HASH_LEN + 1];
	assert_int_equal(kd_instance_template_hash(dep, hash), 0);
	kd_instance_init(d);
	d->ns = kd_xstrdup("demo");
	d->name = kd_xstrdup("hello-00001-kd-7");
	d->tmpl_name = kd_xstrdup("hello-00001-deployment");
	d->tmpl_uid = kd_xstrdup("d-uid-1");
	d->tmpl_hash = kd_xstrdup(hash);
	d->owner_name = kd_xstrdup("hello-00001");
	d->owner_uid = kd_xstrdup("pa-uid-1");
	d->node = kd_xstrdup("kd-node-1");
	d->ctime_ms = 1763920000123;
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
	                                          false, &op, NULL),
	                 0);
	struct kd_instance_status st;
	assert_int_equal(kd_instance_status_from_op(&op, &st, NULL), 0);
	assert_true(st.ready);
	assert_false(st.gone);
	assert_string_equal(st.ip, "10.244.0.5");
	assert_string_equal(st.node, "kd-node-0");
	kd_instance_status_fini(&st);
	kd_op_fini(&op);

	assert_int_equal(kd_node_direct_status_op("demo/p1", "kd-node-0", false, NULL, "Error",
	                                          false, &op, NULL),
	                 0);
	assert_int_equal(kd_instance_status_from_op(&op, &st, NULL), 0);
	assert_false(st.ready);
	assert_null(st.ip);
	assert_string_equal(st.reason, "Error");
	kd_instance_status_fini(&st);
	kd_op_fini(&op);

	assert_int_equal(kd_node_direct_status_op("demo/p1", "kd-node-0", true, NULL, "Stopped",
	                                          true, &op, NULL),
	                 0);
	assert_int_equal(op.kind, KD_OP_DELETE);
	assert_string_equal(op.reason, "Stopped");
	kd_op_fini(&op);

	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(
	    kd_node_direct_status_op("no-slash", "n", true, NULL, NULL, false, &op, &err), -EINVAL);
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
