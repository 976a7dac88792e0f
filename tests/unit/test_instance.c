/* Unit tests for kd_instance: the op wire form of an instance and of its status (through the real
 * delta codec), the Pod builder, reading a Pod back, the status-channel handshake convention
 * (through the real handshake state machines), and channel address parsing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "kd/handshake.h"
#include "kd/instance.h"
#include "kd/json.h"

/* A Deployment as Knative 1.23 creates it for revision hello-00001 (trimmed). */
static const char *deployment_json =
    "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"hello-00001-"
    "deployment\",\"namespace\":\"demo\",\"uid\":\"d-uid-1\",\"generation\":3,\"labels\":{"
    "\"serving.knative.dev/revision\":\"hello-00001\"}},\"spec\":{\"replicas\":0,\"selector\":{"
    "\"matchLabels\":{\"serving.knative.dev/revisionUID\":\"r-uid-1\"}},\"template\":{"
    "\"metadata\":{\"labels\":{\"app\":\"hello-00001\",\"pod-template-hash\":\"abc123\","
    "\"serving.knative.dev/revision\":\"hello-00001\",\"serving.knative.dev/revisionUID\":\"r-"
    "uid-1\",\"serving.knative.dev/service\":\"hello\"},\"annotations\":{\"autoscaling.knative."
    "dev/class\":\"kd.kubedirect.dev\"}},\"spec\":{\"containers\":[{\"name\":\"user-container\","
    "\"image\":\"dev.local/hello\",\"ports\":[{\"containerPort\":8080,\"name\":\"user-port\"}],"
    "\"resources\":{\"requests\":{\"cpu\":\"100m\"}}},{\"name\":\"queue-proxy\",\"image\":"
    "\"dev.local/queue\"}],\"enableServiceLinks\":false,\"terminationGracePeriodSeconds\":300}}}"
    "}";

static json_object *deployment(void)
{
	json_object *o = NULL;
	assert_int_equal(
	    kd_json_parse(deployment_json, strlen(deployment_json), 0, "fixture", &o, NULL), 0);
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
	d->node = kd_xstrdup("node-1");
	d->ctime_ms = 1763920000123;
}

static void template_hash_ignores_replicas_but_not_template(void **state)
{
	(void)state;
	kd_autojson json_object *a = deployment();
	kd_autojson json_object *b = deployment();
	char ha[KD_TEMPLATE_HASH_LEN + 1], hb[KD_TEMPLATE_HASH_LEN + 1];
	assert_int_equal(kd_instance_template_hash(a, ha), 0);
	assert_int_equal(strlen(ha), KD_TEMPLATE_HASH_LEN);
	json_object_object_add(kd_json_get_object(b, "spec"), "replicas", json_object_new_int(5));
	json_object_object_add(kd_json_get_object(b, "metadata"), "generation",
	                       json_object_new_int(4));
	assert_int_equal(kd_instance_template_hash(b, hb), 0);
	assert_string_equal(ha, hb);
	json_object_object_add(kd_json_get_object(b, "spec.template.spec.containers.0"), "image",
	                       json_object_new_string("dev.local/hello:v2"));
	assert_int_equal(kd_instance_template_hash(b, hb), 0);
	assert_string_not_equal(ha, hb);
	kd_autojson json_object *empty = json_object_new_object();
	assert_int_equal(kd_instance_template_hash(empty, hb), -EINVAL);
}

static void op_round_trips_through_the_codec(void **state)
{
	(void)state;
	kd_autojson json_object *dep = deployment();
	struct kd_instance_desc d, back;
	fill(&d, dep);
	d.cpu_millis = 250;
	struct kd_msg m;
	kd_msg_init(&m, KD_MSG_DELTA, 7, 1);
	assert_int_equal(kd_instance_to_op(&d, kd_op_list_push(&m.delta.ops), NULL), 0);
	const struct kd_op *op = &m.delta.ops.v[0];
	assert_string_equal(op->key, "demo/hello-00001-kd-7");
	assert_string_equal(op->tmpl.kind, "Deployment");
	assert_true(op->has & KD_OP_HAS_CPU);
	assert_false(op->has & KD_OP_HAS_MEM);

	char *buf = NULL;
	size_t len = 0;
	assert_int_equal(kd_msg_encode(&m, 0, NULL, &buf, &len, NULL), 0);
	assert_non_null(strstr(buf, "\"kubedirect.dev/owner\":\"hello-00001/pa-uid-1\""));
	struct kd_msg *dec = NULL;
	assert_int_equal(kd_msg_decode(buf, len, NULL, &dec, NULL), 0);
	free(buf);
	assert_true(kd_msg_equal(&m, dec));
	assert_int_equal(kd_instance_from_op(&dec->delta.ops.v[0], &back, NULL), 0);
	assert_string_equal(back.ns, "demo");
	assert_string_equal(back.name, "hello-00001-kd-7");
	assert_string_equal(back.tmpl_name, d.tmpl_name);
	assert_string_equal(back.tmpl_uid, "d-uid-1");
	assert_string_equal(back.tmpl_hash, d.tmpl_hash);
	assert_string_equal(back.owner_name, "hello-00001");
	assert_string_equal(back.owner_uid, "pa-uid-1");
	assert_string_equal(back.node, "node-1");
	assert_int_equal(back.ctime_ms, 1763920000123);
	assert_int_equal(back.cpu_millis, 250);
	assert_int_equal(back.mem_bytes, -1);
	kd_instance_fini(&back);
	kd_msg_free(dec);
	kd_msg_fini(&m);
	kd_instance_fini(&d);
}

static void op_rejects_incomplete_instances(void **state)
{
	(void)state;
	kd_autojson json_object *dep = deployment();
	struct kd_instance_desc d;
	fill(&d, dep);
	struct kd_op op;
	memset(&op, 0, sizeof(op));
	free(d.node);
	d.node = NULL;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_instance_to_op(&d, &op, &err), -EINVAL);
	assert_non_null(strstr(kd_error_msg(err), "node"));
	assert_null(op.key);
	d.node = kd_xstrdup("Not_A_Node!");
	kd_error_free(err);
	err = NULL;
	assert_int_equal(kd_instance_to_op(&d, &op, &err), -EINVAL); /* codec's node rule */
	free(d.node);
	d.node = kd_xstrdup("node-1");
	free(d.tmpl_hash);
	d.tmpl_hash = kd_xstrdup("xyz");
	assert_int_equal(kd_instance_to_op(&d, &op, NULL), -EINVAL);
	kd_instance_fini(&d);

	/* an op without the owner annotation is not an instance */
	struct kd_op bare;
	kd_op_init(&bare, KD_OP_UPSERT, "demo/x");
	kd_op_set_tmpl(&bare, "Deployment", "dep", "uid", "0123456789abcdef");
	kd_op_set_str(&bare.node, "node-1");
	bare.has |= KD_OP_HAS_CTIME;
	bare.ctime_ms = 5;
	struct kd_instance_desc out;
	kd_error_free(err);
	err = NULL;
	assert_int_equal(kd_instance_from_op(&bare, &out, &err), -EINVAL);
	assert_non_null(strstr(kd_error_msg(err), KD_ANNOT_OWNER));
	kd_op_fini(&bare);
}

static void build_pod_follows_the_object_model(void **state)
{
	(void)state;
	kd_autojson json_object *dep = deployment();
	struct kd_instance_desc d;
	fill(&d, dep);
	d.mem_bytes = 1048576;
	kd_autojson json_object *pod = NULL;
	assert_int_equal(kd_instance_build_pod(dep, &d, &pod, NULL), 0);
	assert_string_equal(kd_json_get_string(pod, "kind"), "Pod");
	assert_string_equal(kd_json_get_string(pod, "metadata.name"), "hello-00001-kd-7");
	assert_string_equal(kd_json_get_string(pod, "metadata.namespace"), "demo");
	json_object *labels = kd_json_get_object(pod, "metadata.labels");
	assert_string_equal(kd_json_get_string(labels, "kubedirect\\.dev/managed"), "true");
	assert_string_equal(kd_json_get_string(labels, "serving\\.knative\\.dev/revisionUID"),
	                    "r-uid-1");
	assert_string_equal(kd_json_get_string(labels, "app"), "hello-00001");
	assert_null(kd_json_get(labels, "pod-template-hash"));
	assert_string_equal(
	    kd_json_get_string(pod, "metadata.annotations.autoscaling\\.knative\\.dev/class"),
	    "kd.kubedirect.dev");
	assert_string_equal(kd_json_get_string(pod, "metadata.annotations.kubedirect\\.dev/ctime"),
	                    "1763920000123");
	json_object *refs = kd_json_get_array(pod, "metadata.ownerReferences");
	assert_int_equal(json_object_array_length(refs), 1);
	json_object *ref = json_object_array_get_idx(refs, 0);
	assert_string_equal(kd_json_get_string(ref, "apiVersion"),
	                    "autoscaling.internal.knative.dev/v1alpha1");
	assert_string_equal(kd_json_get_string(ref, "kind"), "PodAutoscaler");
	assert_string_equal(kd_json_get_string(ref, "name"), "hello-00001");
	assert_string_equal(kd_json_get_string(ref, "uid"), "pa-uid-1");
	bool b = false;
	assert_int_equal(kd_json_get_bool(ref, "controller", &b), 0);
	assert_true(b);
	assert_int_equal(kd_json_get_bool(ref, "blockOwnerDeletion", &b), 0);
	assert_true(b);
	assert_string_equal(kd_json_get_string(pod, "spec.nodeName"), "node-1");
	assert_string_equal(kd_json_get_string(pod, "spec.containers.1.name"), "queue-proxy");
	assert_string_equal(kd_json_get_string(pod, "spec.containers.0.resources.requests.cpu"),
	                    "100m");
	assert_string_equal(kd_json_get_string(pod, "spec.containers.0.resources.requests.memory"),
	                    "1048576");
	assert_null(kd_json_get(pod, "status"));
	/* the template was not modified */
	assert_non_null(kd_json_get(dep, "spec.template.metadata.labels.pod-template-hash"));
	assert_null(kd_json_get(dep, "spec.template.spec.nodeName"));
	assert_null(kd_json_get(dep, "spec.template.spec.containers.0.resources.requests.memory"));

	/* and the Pod reads back as the same instance */
	struct kd_instance_desc back;
	assert_int_equal(kd_instance_from_pod(pod, &back, NULL), 0);
	assert_true(kd_instance_pod_is_managed(pod));
	assert_string_equal(back.name, d.name);
	assert_string_equal(back.node, "node-1");
	assert_string_equal(back.tmpl_name, "hello-00001-deployment");
	assert_string_equal(back.tmpl_uid, "d-uid-1");
	assert_string_equal(back.tmpl_hash, d.tmpl_hash);
	assert_string_equal(back.owner_uid, "pa-uid-1");
	assert_int_equal(back.ctime_ms, 1763920000123);
	kd_instance_fini(&back);
	kd_instance_fini(&d);
}

static void build_pod_refuses_another_template(void **state)
{
	(void)state;
	kd_autojson json_object *dep = deployment();
	struct kd_instance_desc d;
	fill(&d, dep);
	/* the node's copy is newer: other template */
	json_object_object_add(kd_json_get_object(dep, "spec.template.spec.containers.0"), "image",
	                       json_object_new_string("dev.local/hello:v2"));
	json_object *pod = NULL;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_instance_build_pod(dep, &d, &pod, &err), -ESTALE);
	assert_null(pod);
	assert_non_null(strstr(kd_error_msg(err), "hello-00001-kd-7"));
	/* another uid (deployment recreated) */
	kd_autojson json_object *dep2 = deployment();
	json_object_object_add(kd_json_get_object(dep2, "metadata"), "uid",
	                       json_object_new_string("d-uid-2"));
	assert_int_equal(kd_instance_build_pod(dep2, &d, &pod, NULL), -ESTALE);
	kd_instance_fini(&d);
	/* a vanilla pod is not an instance */
	kd_autojson json_object *vanilla = json_object_new_object();
	json_object *meta = json_object_new_object();
	json_object_object_add(meta, "name", json_object_new_string("p"));
	json_object_object_add(meta, "namespace", json_object_new_string("demo"));
	json_object_object_add(vanilla, "metadata", meta);
	struct kd_instance_desc out;
	assert_false(kd_instance_pod_is_managed(vanilla));
	assert_int_equal(kd_instance_from_pod(vanilla, &out, NULL), -EINVAL);
}

static void status_ops_round_trip(void **state)
{
	(void)state;
	struct kd_instance_status st, back;
	kd_instance_status_init(&st);
	st.ns = kd_xstrdup("demo");
	st.name = kd_xstrdup("p1");
	st.node = kd_xstrdup("node-1");
	st.ready = true;
	st.ip = kd_xstrdup("10.244.1.5");
	struct kd_msg m;
	kd_msg_init(&m, KD_MSG_DELTA, 3, 1);
	assert_int_equal(kd_instance_status_to_op(&st, kd_op_list_push(&m.delta.ops), NULL), 0);
	st.gone = true;
	free(st.name);
	st.name = kd_xstrdup("p2");
	st.reason = kd_xstrdup("Stopped");
	assert_int_equal(kd_instance_status_to_op(&st, kd_op_list_push(&m.delta.ops), NULL), 0);
	char *buf = NULL;
	size_t len = 0;
	assert_int_equal(kd_msg_encode(&m, 0, NULL, &buf, &len, NULL), 0);
	struct kd_msg *dec = NULL;
	assert_int_equal(kd_msg_decode(buf, len, NULL, &dec, NULL), 0);
	free(buf);
	assert_int_equal(kd_instance_status_from_op(&dec->delta.ops.v[0], &back, NULL), 0);
	assert_false(back.gone);
	assert_true(back.ready);
	assert_string_equal(back.ip, "10.244.1.5");
	assert_string_equal(back.node, "node-1");
	assert_string_equal(back.name, "p1");
	kd_instance_status_fini(&back);
	assert_int_equal(kd_instance_status_from_op(&dec->delta.ops.v[1], &back, NULL), 0);
	assert_true(back.gone);
	assert_string_equal(back.reason, "Stopped");
	kd_instance_status_fini(&back);
	kd_msg_free(dec);
	kd_msg_fini(&m);

	/* a bad IP is refused before it reaches the wire; a bare upsert is not a status */
	st.gone = false;
	free(st.ip);
	st.ip = kd_xstrdup("10.244.1.500");
	struct kd_op op;
	memset(&op, 0, sizeof(op));
	assert_int_equal(kd_instance_status_to_op(&st, &op, NULL), -EINVAL);
	kd_instance_status_held_op("demo/p1", &op);
	assert_int_equal(kd_instance_status_from_op(&op, &back, NULL), -EINVAL);
	kd_op_fini(&op);
	kd_instance_status_fini(&st);
}

/* --- the status-channel convention through the real handshake ------------------------------ */

struct node_side {
	const char *live[4]; /* keys of live instances */
	size_t n;
};

static int node_wanted(void *ud, struct kd_op_list *out, struct kd_error **err)
{
	const struct node_side *n = ud;
	for (size_t i = 0; i < n->n; i++) {
		struct kd_instance_status st;
		kd_instance_status_init(&st);
		assert_int_equal(kd_instance_key_split(n->live[i], &st.ns, &st.name, NULL), 0);
		st.node = kd_xstrdup("node-1");
		st.ready = true;
		st.ip = kd_xstrdup("10.244.1.9");
		int rc = kd_instance_status_to_op(&st, kd_op_list_push(out), err);
		kd_instance_status_fini(&st);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static bool node_persisted(void *ud, const char *key)
{
	(void)ud;
	(void)key;
	return false;
}

static void status_handshake_resends_live_and_drops_gone(void **state)
{
	(void)state;
	/* the autoscaler held statuses for a, b, c; the node now has a (readiness changed) and d */
	struct node_side node = {.live = {"demo/a", "demo/d"}, .n = 2};
	struct kd_hs_up_cbs cbs = {.wanted = node_wanted, .persisted = node_persisted};
	struct kd_hs_up *up = kd_hs_up_new("kd-node:node-1", &cbs, &node);
	struct kd_msg_vec out = {0};
	assert_int_equal(kd_hs_up_connect(up, &out), 0);
	uint64_t epoch = kd_hs_up_epoch(up);
	kd_msg_vec_fini(&out);
	struct kd_msg st;
	kd_msg_init(&st, KD_MSG_STATE, epoch, 0);
	const char *held[] = {"demo/a", "demo/b", "demo/c"};
	for (size_t i = 0; i < 3; i++)
		kd_instance_status_held_op(held[i], kd_op_list_push(&st.state.held));
	assert_int_equal(kd_msg_validate(&st, NULL, NULL), 0); /* bare upserts are valid */
	assert_int_equal(kd_hs_up_on_msg(up, &st, &out, NULL), 0);
	assert_int_equal(out.n, 1);
	const struct kd_msg *r = out.v[0];
	assert_int_equal(r->type, KD_MSG_RECONCILE);
	assert_int_equal(r->reconcile.keep.n, 0);
	assert_int_equal(r->reconcile.drop.n, 2);
	assert_string_equal(r->reconcile.drop.v[0], "demo/b");
	assert_string_equal(r->reconcile.drop.v[1], "demo/c");
	assert_int_equal(r->reconcile.resend.n, 2);
	assert_string_equal(r->reconcile.resend.v[0].key, "demo/a");
	assert_true(r->reconcile.resend.v[0].ready);
	assert_string_equal(r->reconcile.resend.v[1].key, "demo/d");
	kd_msg_vec_fini(&out);
	kd_msg_fini(&st);
	kd_hs_up_free(up);
}

static void addresses_parse(void **state)
{
	(void)state;
	char *host = NULL;
	int port = 0;
	assert_int_equal(kd_instance_addr_parse("10.0.0.5:9470", &host, &port, NULL), 0);
	assert_string_equal(host, "10.0.0.5");
	assert_int_equal(port, 9470);
	free(host);
	assert_int_equal(kd_instance_addr_parse("[fd00::1]:80", &host, &port, NULL), 0);
	assert_string_equal(host, "fd00::1");
	assert_int_equal(port, 80);
	free(host);
	assert_int_equal(kd_instance_addr_parse("kd-node.kube-system:1", &host, &port, NULL), 0);
	free(host);
	host = NULL;
	const char *bad[] = {"",        "10.0.0.5", "10.0.0.5:",  ":80",         "10.0.0.5:0",
	                     "h:65536", "h:80x",    "fd00::1:80", "[fd00::1]80", "[zz]:80",
	                     "a b:80",  "h:-1"};
	for (size_t i = 0; i < KD_ARRAY_SIZE(bad); i++) {
		kd_autoerr struct kd_error *err = NULL;
		assert_int_equal(kd_instance_addr_parse(bad[i], &host, &port, &err), -EINVAL);
		assert_null(host);
		assert_non_null(err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(template_hash_ignores_replicas_but_not_template),
	    cmocka_unit_test(op_round_trips_through_the_codec),
	    cmocka_unit_test(op_rejects_incomplete_instances),
	    cmocka_unit_test(build_pod_follows_the_object_model),
	    cmocka_unit_test(build_pod_refuses_another_template),
	    cmocka_unit_test(status_ops_round_trip),
	    cmocka_unit_test(status_handshake_resends_live_and_drops_gone),
	    cmocka_unit_test(addresses_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
