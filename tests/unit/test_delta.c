/* Unit tests for kd_delta: every message type round-trips through encode/decode, and every
 * validation rule rejects with the expected reason. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kd/delta.h"

#define EPOCH 1763920000000065536ULL /* > 2^53 on purpose */

static void fill_upsert(struct kd_op *op, const char *key, bool full)
{
	kd_op_init(op, KD_OP_UPSERT, key);
	kd_op_set_tmpl(op, "PodAutoscaler", "hello-00001", "3f2a9c1e-0b7d-4c1e-9a43-1d2e3f4a5b6c",
	               "7f9c8d6b5a");
	kd_op_set_str(&op->node, "node-1");
	op->has |= KD_OP_HAS_CTIME;
	op->ctime_ms = 1763920000123;
	if (!full)
		return;
	op->has |= KD_OP_HAS_CPU | KD_OP_HAS_MEM | KD_OP_HAS_READY;
	op->cpu_millis = 250;
	op->mem_bytes = 268435456;
	op->ready = true;
	kd_kv_list_push(&op->labels, "serving.knative.dev/revision", "hello-00001");
	kd_kv_list_push(&op->labels, "kubedirect.dev/managed", "true");
	kd_kv_list_push(&op->annotations, "kubedirect.dev/note",
	                "caf\xc3\xa9 \"quoted\"\n\ttab\x01");
	kd_op_set_str(&op->ip, "10.1.2.3");
	kd_op_set_str(&op->reason, "Started \xe2\x9c\x93");
}

static struct kd_msg *sample(enum kd_msg_type t)
{
	struct kd_msg *m = kd_msg_new(t, EPOCH, 0);
	switch (t) {
	case KD_MSG_HELLO:
		m->hello.source = kd_xstrdup("autoscaler-0/scheduler");
		break;
	case KD_MSG_STATE:
		m->state.last_seq = 41;
		fill_upsert(kd_op_list_push(&m->state.held), "default/p-1", true);
		fill_upsert(kd_op_list_push(&m->state.held), "default/p-2", false);
		break;
	case KD_MSG_RECONCILE:
		kd_key_list_push(&m->reconcile.keep, "default/p-1");
		kd_key_list_push(&m->reconcile.drop, "default/p-2");
		fill_upsert(kd_op_list_push(&m->reconcile.resend), "default/p-3", true);
		break;
	case KD_MSG_DELTA:
		m->seq = 12;
		fill_upsert(kd_op_list_push(&m->delta.ops), "default/p-1", true);
		kd_op_init(kd_op_list_push(&m->delta.ops), KD_OP_DELETE, "kube-system/p.2");
		kd_op_set_str(&m->delta.ops.v[1].reason, "scale down");
		break;
	case KD_MSG_ACK:
		m->seq = 12;
		break;
	case KD_MSG_ERROR:
		m->error.code = KD_CODE_STALE_EPOCH;
		m->error.reason = kd_xstrdup("epoch 1 is stale");
		break;
	default:
		break;
	}
	return m;
}

static char *enc(const struct kd_msg *m, size_t *len)
{
	char *buf = NULL;
	struct kd_error *err = NULL;
	int rc = kd_msg_encode(m, 0, NULL, &buf, len, &err);
	if (rc < 0)
		fail_msg("encode: %s", kd_error_msg(err));
	return buf;
}

static void roundtrip_every_type(void **state)
{
	(void)state;
	for (int t = KD_MSG_HELLO; t <= KD_MSG_ERROR; t++) {
		kd_automsg struct kd_msg *m = sample((enum kd_msg_type)t);
		size_t len;
		kd_autofree char *buf = enc(m, &len);
		assert_int_equal(strlen(buf), len);
		kd_automsg struct kd_msg *back = NULL;
		kd_autoerr struct kd_error *err = NULL;
		if (kd_msg_decode(buf, len, NULL, &back, &err) < 0)
			fail_msg("decode %s: %s\n%s", kd_msg_type_name(m->type), kd_error_msg(err),
			         buf);
		assert_true(kd_msg_equal(m, back));
		/* and a deep copy is equal too, and a modified one is not */
		struct kd_msg cp;
		kd_msg_copy(&cp, back);
		assert_true(kd_msg_equal(&cp, m));
		cp.epoch++;
		assert_false(kd_msg_equal(&cp, m));
		kd_msg_fini(&cp);
	}
}

static void epoch_is_a_string_and_exact(void **state)
{
	(void)state;
	kd_automsg struct kd_msg *m = kd_msg_new(KD_MSG_READY, UINT64_MAX, 0);
	size_t len;
	kd_autofree char *buf = enc(m, &len);
	assert_string_equal(buf,
	                    "{\"type\":\"ready\",\"epoch\":\"18446744073709551615\",\"seq\":0}");
	kd_automsg struct kd_msg *back = NULL;
	assert_int_equal(kd_msg_decode(buf, len, NULL, &back, NULL), 0);
	assert_true(back->epoch == UINT64_MAX);
}

static void encode_is_compact(void **state)
{
	(void)state;
	kd_automsg struct kd_msg *m = kd_msg_new(KD_MSG_DELTA, 7, 3);
	kd_op_init(kd_op_list_push(&m->delta.ops), KD_OP_UPSERT, "ns/a");
	size_t len;
	kd_autofree char *buf = enc(m, &len);
	assert_string_equal(buf, "{\"type\":\"delta\",\"epoch\":\"7\",\"seq\":3,\"ops\":[{\"op\":"
	                         "\"upsert\",\"key\":\"ns/a\"}]}");
}

static void encode_headroom(void **state)
{
	(void)state;
	kd_automsg struct kd_msg *m = kd_msg_new(KD_MSG_ACK, 7, 3);
	char *buf = NULL;
	size_t len = 0;
	assert_int_equal(kd_msg_encode(m, 16, NULL, &buf, &len, NULL), 0);
	assert_string_equal(buf + 16, "{\"type\":\"ack\",\"epoch\":\"7\",\"seq\":3}");
	assert_int_equal(len, strlen(buf + 16));
	free(buf);
}

/* Decodes text and expects failure with errnum and a reason containing want. */
static void expect_reject_n(const char *text, size_t len, const struct kd_delta_limits *lim,
                            int errnum, const char *want)
{
	struct kd_msg *m = NULL;
	kd_autoerr struct kd_error *err = NULL;
	int rc = kd_msg_decode(text, len, lim, &m, &err);
	if (rc == 0) {
		kd_msg_free(m);
		fail_msg("accepted: %.200s", text);
	}
	assert_null(m);
	assert_non_null(err);
	assert_int_equal(rc, -errnum);
	if (!strstr(err->msg, want))
		fail_msg("reason \"%s\" lacks \"%s\"", err->msg, want);
}

static void expect_reject(const char *text, int errnum, const char *want)
{
	expect_reject_n(text, strlen(text), NULL, errnum, want);
}

#define D(ops)  "{\"type\":\"delta\",\"epoch\":\"5\",\"seq\":12,\"ops\":[" ops "]}"
#define UP(key) "{\"op\":\"upsert\",\"key\":\"" key "\"}"

static void rejects_frame_level(void **state)
{
	(void)state;
	struct kd_delta_limits small = {.max_frame = 64};
	static const char head[] = "{\"type\":\"ready\",\"epoch\":\"1\"}";
	char big[100];
	snprintf(big, sizeof(big), "%-99s", head); /* padded with spaces to 99 bytes */
	expect_reject_n(big, 99, &small, EMSGSIZE, "frame of 99 bytes exceeds the 64");
	/* the same frame under the default cap is fine (trailing whitespace allowed) */
	struct kd_msg *m = NULL;
	assert_int_equal(kd_msg_decode(big, 99, NULL, &m, NULL), 0);
	kd_msg_free(m);

	expect_reject("", EINVAL, "frame is empty");
	expect_reject("{\"type\":\"ready\",\"epoch\":\"1\"", EINVAL, "truncated");
	expect_reject("{\"type\":\"ready\",\"epoch\":\"1\"} x", EINVAL,
	              "trailing bytes at byte 29");
	expect_reject("{\"type\":\"ready\",\"epoch\":\"1\"}{}", EINVAL, "trailing bytes");
	expect_reject("[1,2]", EINVAL, "not an object");
	expect_reject("\"ready\"", EINVAL, "not an object");
	expect_reject("{'type':'ready'}", EINVAL, "not valid JSON");
	expect_reject("{\"type\":\"ready\",\"epoch\":\"1\",}", EINVAL, "not valid JSON");
	expect_reject("{\"type\":\"caf\xc3\x28\"}", EINVAL, "frame byte 12: invalid UTF-8");
	expect_reject("{\"type\":\"\xed\xa0\x80\"}", EINVAL, "invalid UTF-8"); /* surrogate */
	expect_reject("{\"type\":\"\xc0\xaf\"}", EINVAL, "invalid UTF-8");     /* overlong */
	expect_reject_n("{\"type\":\"ready\0\",\"epoch\":\"1\"}", 29, NULL, EINVAL,
	                "frame byte 14: NUL byte");
	expect_reject("{\"type\":\"ready\",\"epoch\":\"1\",\"x\\u0000\":1}", EINVAL, "escaped NUL");
	expect_reject("{\"a\":[[[[[[[[[[1]]]]]]]]]],\"type\":\"ready\",\"epoch\":\"1\"}", EINVAL,
	              "not valid JSON");
}

static void rejects_message_level(void **state)
{
	(void)state;
	expect_reject("{\"epoch\":\"1\"}", EINVAL, "no \"type\"");
	expect_reject("{\"type\":1}", EINVAL, "\"type\" must be a string");
	expect_reject("{\"type\":\"bogus\",\"epoch\":\"1\"}", EINVAL,
	              "unknown message type \"bogus\"");
	expect_reject("{\"type\":\"ready\"}", EINVAL, "ready: missing field \"epoch\"");
	expect_reject("{\"type\":\"ready\",\"epoch\":5}", EINVAL, "must be a decimal string");
	expect_reject("{\"type\":\"ready\",\"epoch\":\"05\"}", EINVAL, "not a canonical uint64");
	expect_reject("{\"type\":\"ready\",\"epoch\":\"-5\"}", EINVAL, "not a canonical uint64");
	expect_reject("{\"type\":\"ready\",\"epoch\":\"18446744073709551616\"}", EINVAL,
	              "exceeds 2^64-1");
	expect_reject("{\"type\":\"ready\",\"epoch\":\"0\"}", EINVAL, "epoch 0 is only valid");
	expect_reject("{\"type\":\"ready\",\"epoch\":\"1\",\"seq\":4}", EINVAL,
	              "seq must be 0 on a control message");
	expect_reject("{\"type\":\"ack\",\"epoch\":\"1\"}", EINVAL, "ack: missing field \"seq\"");
	expect_reject("{\"type\":\"ack\",\"epoch\":\"1\",\"seq\":0}", EINVAL,
	              "ack: seq 0 out of range");
	expect_reject("{\"type\":\"ack\",\"epoch\":\"1\",\"seq\":1.5}", EINVAL,
	              "\"seq\" must be an integer, not double");
	expect_reject("{\"type\":\"ack\",\"epoch\":\"1\",\"seq\":\"3\"}", EINVAL,
	              "\"seq\" must be an integer, not string");
	expect_reject("{\"type\":\"ack\",\"epoch\":\"1\",\"seq\":9007199254740992}", EINVAL,
	              "\"seq\" out of range");
	expect_reject("{\"type\":\"ack\",\"epoch\":\"1\",\"seq\":99999999999999999999999}", EINVAL,
	              "\"seq\"");
	expect_reject("{\"type\":\"ack\",\"epoch\":\"1\",\"seq\":-1}", EINVAL,
	              "\"seq\" out of range");
	expect_reject("{\"type\":\"hello\",\"epoch\":\"1\"}", EINVAL, "missing field \"source\"");
	expect_reject("{\"type\":\"hello\",\"epoch\":\"1\",\"source\":\"a b\"}", EINVAL,
	              "hello: source has a character outside");
	expect_reject("{\"type\":\"state\",\"epoch\":\"1\",\"held\":[]}", EINVAL,
	              "missing field \"last_seq\"");
	expect_reject("{\"type\":\"state\",\"epoch\":\"1\",\"last_seq\":0}", EINVAL,
	              "missing field \"held\"");
	expect_reject("{\"type\":\"state\",\"epoch\":\"1\",\"last_seq\":0,\"held\":{}}", EINVAL,
	              "\"held\" must be an array, not object");
	expect_reject("{\"type\":\"state\",\"epoch\":\"1\",\"last_seq\":0,\"held\":[{\"op\":"
	              "\"delete\",\"key\":\"a/b\"}]}",
	              EINVAL, "state held 0: must be an upsert");
	expect_reject("{\"type\":\"reconcile\",\"epoch\":\"1\",\"keep\":[],\"drop\":[\"a/b\"],"
	              "\"resend\":[" UP("a/b") "]}",
	              EINVAL, "reconcile resend 0: key \"a/b\" appears more than once");
	expect_reject("{\"type\":\"reconcile\",\"epoch\":\"1\",\"keep\":[3],\"drop\":[],"
	              "\"resend\":[]}",
	              EINVAL, "reconcile keep 0: must be a string");
	expect_reject("{\"type\":\"reconcile\",\"epoch\":\"1\",\"keep\":[\"a\"],\"drop\":[],"
	              "\"resend\":[]}",
	              EINVAL, "reconcile keep 0: key \"a\" has no '/'");
	expect_reject("{\"type\":\"error\",\"epoch\":\"0\"}", EINVAL, "missing field \"code\"");
	expect_reject("{\"type\":\"error\",\"epoch\":\"0\",\"code\":0}", EINVAL,
	              "code 0 out of range");
	expect_reject("{\"type\":\"error\",\"epoch\":\"0\",\"code\":65536}", EINVAL,
	              "\"code\" out of range");
	expect_reject("{\"type\":\"error\",\"epoch\":\"0\",\"code\":2,\"reason\":false}", EINVAL,
	              "\"reason\" must be a string");
	expect_reject(D(""), EINVAL, "delta seq 12: a delta needs at least one op");
	expect_reject("{\"type\":\"delta\",\"epoch\":\"5\",\"seq\":12}", EINVAL,
	              "delta seq 12: missing field \"ops\"");
}

static void rejects_bad_ops(void **state)
{
	(void)state;
	expect_reject(D(UP("a/b") "," UP("a/b/c")), EINVAL,
	              "delta seq 12 op 1: key \"a/b/c\" has more than one '/'");
	expect_reject(D(UP("ab")), EINVAL, "delta seq 12 op 0: key \"ab\" has no '/'");
	expect_reject(D(UP("/b")), EINVAL, "namespace is empty");
	expect_reject(D(UP("a/")), EINVAL, "name is empty");
	expect_reject(D(UP("A/b")), EINVAL, "namespace has a character outside [a-z0-9-]");
	expect_reject(D(UP("-a/b")), EINVAL, "namespace must start and end");
	expect_reject(D(UP("a/b..c")), EINVAL, "name has an empty DNS label");
	expect_reject(D(UP("a/b_c")), EINVAL, "name has a character outside");
	expect_reject(D(UP("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/b")),
	              EINVAL, "namespace is longer than 63");
	expect_reject(D(UP("a/b") "," UP("a/b")), EINVAL,
	              "delta seq 12 op 1: key \"a/b\" appears more than once");
	expect_reject(D("3"), EINVAL, "delta seq 12 op 0: must be an object, not int");
	expect_reject(D("{\"key\":\"a/b\"}"), EINVAL, "op 0: missing field \"op\"");
	expect_reject(D("{\"op\":\"patch\",\"key\":\"a/b\"}"), EINVAL,
	              "\"op\" must be \"upsert\" or \"delete\"");
	expect_reject(D("{\"op\":\"upsert\"}"), EINVAL, "op 0: missing field \"key\"");
	expect_reject(D("{\"op\":\"upsert\",\"key\":7}"), EINVAL, "\"key\" must be a string");
	expect_reject(D("{\"op\":\"delete\",\"key\":\"a/b\",\"node\":\"n\"}"), EINVAL,
	              "delete carries upsert field \"node\"");
	expect_reject(D("{\"op\":\"upsert\",\"key\":\"a/b\",\"tmpl\":{\"kind\":\"K\"}}"), EINVAL,
	              "missing field \"tmpl.name\"");
	expect_reject(
	    D("{\"op\":\"upsert\",\"key\":\"a/b\",\"tmpl\":{\"kind\":\"K!\",\"name\":\"n\","
	      "\"uid\":\"u\",\"hash\":\"h\"}}"),
	    EINVAL, "tmpl kind \"K!\"");
	expect_reject(D("{\"op\":\"upsert\",\"key\":\"a/b\",\"node\":\"Node_1\"}"), EINVAL,
	              "node \"Node_1\"");
	expect_reject(D("{\"op\":\"upsert\",\"key\":\"a/b\",\"ctime\":0}"), EINVAL,
	              "ctime 0 out of range");
	expect_reject(D("{\"op\":\"upsert\",\"key\":\"a/b\",\"ctime\":1e3}"), EINVAL,
	              "\"ctime\" must be an integer");
	expect_reject(D("{\"op\":\"upsert\",\"key\":\"a/b\",\"cpu\":1000000001}"), EINVAL,
	              "\"cpu\" out of range");
	expect_reject(D("{\"op\":\"upsert\",\"key\":\"a/b\",\"mem\":18446744073709551615}"), EINVAL,
	              "\"mem\" out of range");
	expect_reject(D("{\"op\":\"upsert\",\"key\":\"a/b\",\"ready\":1}"), EINVAL,
	              "\"ready\" must be a boolean");
	expect_reject(D("{\"op\":\"upsert\",\"key\":\"a/b\",\"ip\":\"10.0.0.256\"}"), EINVAL,
	              "ip \"10.0.0.256\" is not an IP address");
	expect_reject(D("{\"op\":\"upsert\",\"key\":\"a/b\",\"labels\":[]}"), EINVAL,
	              "\"labels\" must be an object");
	expect_reject(D("{\"op\":\"upsert\",\"key\":\"a/b\",\"labels\":{\"k\":1}}"), EINVAL,
	              "labels value of \"k\" must be a string");
	expect_reject(D("{\"op\":\"upsert\",\"key\":\"a/b\",\"labels\":{\"a/b/c\":\"v\"}}"), EINVAL,
	              "labels key \"a/b/c\" has more than one '/'");
	expect_reject(D("{\"op\":\"upsert\",\"key\":\"a/b\",\"labels\":{\"k\":\"v v\"}}"), EINVAL,
	              "labels \"k\": value has a character outside");
}

static void rejects_too_many_ops(void **state)
{
	(void)state;
	struct kd_delta_limits lim = {.max_ops = 3};
	const char *text = D(UP("a/b1") "," UP("a/b2") "," UP("a/b3") "," UP("a/b4"));
	expect_reject_n(text, strlen(text), &lim, E2BIG, "4 ops ops exceed the limit of 3");
	struct kd_msg *m = NULL;
	assert_int_equal(kd_msg_decode(text, strlen(text), NULL, &m, NULL), 0);
	assert_int_equal(m->delta.ops.n, 4);
	/* encode enforces the same limit */
	char *buf = NULL;
	size_t len;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_msg_encode(m, 0, &lim, &buf, &len, &err), -E2BIG);
	assert_null(buf);
	kd_msg_free(m);
}

static void rejects_too_many_keys_labels_and_long_text(void **state)
{
	(void)state;
	struct kd_delta_limits lim = {.max_keys = 2};
	const char *rec = "{\"type\":\"reconcile\",\"epoch\":\"1\",\"keep\":[\"a/b\",\"a/c\","
	                  "\"a/d\"],\"drop\":[],\"resend\":[]}";
	expect_reject_n(rec, strlen(rec), &lim, E2BIG, "3 keep keys exceed the limit of 2");

	/* 65 labels */
	char buf[4096];
	int o = snprintf(buf, sizeof(buf), "%s",
	                 "{\"type\":\"delta\",\"epoch\":\"5\",\"seq\":1,\"ops\":[{\"op\":"
	                 "\"upsert\",\"key\":\"a/b\",\"labels\":{");
	for (int i = 0; i < 65; i++)
		o += snprintf(buf + o, sizeof(buf) - (size_t)o, "%s\"k%d\":\"v\"", i ? "," : "", i);
	snprintf(buf + o, sizeof(buf) - (size_t)o, "}}]}");
	expect_reject(buf, E2BIG, "65 labels exceed the limit of 64");

	/* reason of KD_REASON_MAX + 1 bytes */
	static char big[KD_REASON_MAX + 200];
	o = snprintf(big, sizeof(big),
	             "{\"type\":\"error\",\"epoch\":\"0\",\"code\":1,\"reason\":\"");
	for (int i = 0; i <= KD_REASON_MAX; i++)
		big[o++] = 'r';
	snprintf(big + o, sizeof(big) - (size_t)o, "\"}");
	expect_reject(big, EINVAL, "error: reason is too long");
}

static void rejects_container_floods_before_parsing(void **state)
{
	(void)state;
	/* 1 MiB of "{}," would cost json-c ~270 MB: bounded at 4 objects per allowed op */
	struct kd_delta_limits lim = {.max_ops = 2}; /* 4 * 2 + 16 = 24 objects */
	char buf[512];
	int o = snprintf(buf, sizeof(buf), "{\"type\":\"ready\",\"epoch\":\"1\",\"x\":[");
	for (int i = 0; i < 24; i++)
		o += snprintf(buf + o, sizeof(buf) - (size_t)o, "%s{}", i ? "," : "");
	snprintf(buf + o, sizeof(buf) - (size_t)o, "]}");
	expect_reject_n(buf, strlen(buf), &lim, E2BIG, "frame has more than 24 JSON objects");
	/* braces inside strings do not count */
	const char *str =
	    "{\"type\":\"ready\",\"epoch\":\"1\",\"x\":\"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\\\"\"}";
	kd_automsg struct kd_msg *m = NULL;
	kd_autoerr struct kd_error *err = NULL;
	if (kd_msg_decode(str, strlen(str), &lim, &m, &err) < 0)
		fail_msg("%s", kd_error_msg(err));
	o = snprintf(buf, sizeof(buf), "{\"type\":\"ready\",\"epoch\":\"1\",\"x\":");
	for (int i = 0; i < 65; i++)
		buf[o++] = '[';
	buf[o] = '\0';
	expect_reject(buf, E2BIG, "frame has more than 64 JSON arrays");
}

static void encode_refuses_invalid_and_oversize(void **state)
{
	(void)state;
	kd_automsg struct kd_msg *m = kd_msg_new(KD_MSG_DELTA, 1, 1);
	kd_op_init(kd_op_list_push(&m->delta.ops), KD_OP_UPSERT, "a/b/c");
	char *buf = NULL;
	size_t len = 0;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_msg_encode(m, 0, NULL, &buf, &len, &err), -EINVAL);
	assert_string_equal(err->msg,
	                    "encode: delta seq 1 op 0: key \"a/b/c\" has more than one '/'");
	kd_error_free(err);
	err = NULL;

	free(m->delta.ops.v[0].key);
	m->delta.ops.v[0].key = kd_xstrdup("a/b");
	kd_op_set_str(&m->delta.ops.v[0].reason, "bad \xff utf8");
	assert_int_equal(kd_msg_encode(m, 0, NULL, &buf, &len, &err), -EINVAL);
	assert_non_null(strstr(err->msg, "reason is not valid UTF-8"));
	kd_error_free(err);
	err = NULL;

	kd_op_set_str(&m->delta.ops.v[0].reason, NULL);
	struct kd_delta_limits lim = {.max_frame = 40};
	assert_int_equal(kd_msg_encode(m, 0, &lim, &buf, &len, &err), -EMSGSIZE);
	assert_non_null(strstr(err->msg, "exceed the 40-byte frame cap"));
	assert_null(buf);
}

static void unknown_fields_are_ignored(void **state)
{
	(void)state;
	const char *text = "{\"type\":\"delta\",\"epoch\":\"5\",\"seq\":1,\"future\":{\"x\":[1]},"
	                   "\"ops\":[{\"op\":\"upsert\",\"key\":\"a/b\",\"zone\":\"z1\"}]}";
	kd_automsg struct kd_msg *m = NULL;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_msg_decode(text, strlen(text), NULL, &m, &err), 0);
	assert_string_equal(m->delta.ops.v[0].key, "a/b");
	assert_int_equal(m->delta.ops.v[0].has, 0);
}

static void lone_surrogate_escape_becomes_replacement_char(void **state)
{
	(void)state;
	const char *text = "{\"type\":\"error\",\"epoch\":\"0\",\"code\":2,\"reason\":\"\\ud800\"}";
	kd_automsg struct kd_msg *m = NULL;
	assert_int_equal(kd_msg_decode(text, strlen(text), NULL, &m, NULL), 0);
	assert_string_equal(m->error.reason, "\xef\xbf\xbd");
}

static void key_check_rules(void **state)
{
	(void)state;
	assert_int_equal(kd_key_check("default/hello-00001-abc.x", 25, NULL), 0);
	char name[254];
	memset(name, 'a', sizeof(name));
	char key[300];
	snprintf(key, sizeof(key), "ns/%.253s", name);
	assert_int_equal(kd_key_check(key, strlen(key), NULL), 0);
	snprintf(key, sizeof(key), "ns/%.254s", name);
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_key_check(key, strlen(key), &err), -EINVAL);
	assert_non_null(strstr(err->msg, "name is longer than 253"));
}

static void error_reason_is_truncated_on_utf8_boundary(void **state)
{
	(void)state;
	char longr[KD_REASON_MAX + 10];
	memset(longr, 'x', sizeof(longr));
	/* a 2-byte character straddling the cap */
	longr[KD_REASON_MAX - 1] = (char)0xc3;
	longr[KD_REASON_MAX] = (char)0xa9;
	longr[sizeof(longr) - 1] = '\0';
	kd_automsg struct kd_msg *m = kd_msg_new_error(3, KD_CODE_APPLY, "%s", longr);
	assert_int_equal(strlen(m->error.reason), KD_REASON_MAX - 1);
	size_t len;
	kd_autofree char *buf = enc(m, &len);
	assert_non_null(buf);
}

static struct kd_msg *at_page(const struct kd_msg_vec *v, size_t i)
{
	if (i >= v->n || !v->v[i])
		abort();
	return v->v[i];
}

/* Decodes every frame of fv (limits lim) into pages. */
static void decode_frames(const struct kd_frame_vec *fv, const struct kd_delta_limits *lim,
                          struct kd_msg_vec *pages)
{
	for (size_t i = 0; i < fv->n; i++) {
		struct kd_msg *p = NULL;
		kd_autoerr struct kd_error *err = NULL;
		if (kd_msg_decode(fv->v[i].buf, fv->v[i].len, lim, &p, &err) < 0)
			fail_msg("page %zu: %s", i, kd_error_msg(err));
		assert_true(fv->v[i].len <= lim->max_frame);
		assert_int_equal(p->part, i);
		assert_int_equal(p->more, i + 1 < fv->n);
		kd_msg_vec_push(pages, p);
	}
}

static void pages_split_state_and_reconcile_and_reassemble(void **state)
{
	(void)state;
	struct kd_delta_limits lim = {.max_frame = 2048, .max_ops = 25, .max_keys = 40};
	char key[48], hash[16];
	/* state: 300 held, 3 templates; the pages together carry exactly the held list */
	kd_automsg struct kd_msg *st = kd_msg_new(KD_MSG_STATE, EPOCH, 0);
	st->state.last_seq = 99;
	for (int i = 0; i < 300; i++) {
		snprintf(key, sizeof(key), "default/pod-%d", i);
		fill_upsert(kd_op_list_push(&st->state.held), key, i % 50 == 0);
		snprintf(hash, sizeof(hash), "h%d", i % 3);
		kd_op_set_str(&st->state.held.v[i].tmpl.hash, hash);
	}
	struct kd_frame_vec fv = {0};
	struct kd_msg_vec pages = {0};
	assert_int_equal(kd_msg_encode_pages(st, 8, &lim, &fv, NULL), 0);
	assert_true(fv.n >= 300 / 25);
	for (size_t i = 0; i < fv.n; i++) /* headroom kept in front of each frame */
		fv.v[i].buf += 8;
	decode_frames(&fv, &lim, &pages);
	for (size_t i = 0; i < fv.n; i++)
		fv.v[i].buf -= 8;
	kd_automsg struct kd_msg *back = kd_msg_new(KD_MSG_STATE, EPOCH, 0);
	back->state.last_seq = 99;
	for (size_t i = 0; i < pages.n; i++) {
		assert_int_equal(at_page(&pages, i)->state.last_seq, 99);
		assert_true(at_page(&pages, i)->state.held.n <= 25);
		for (size_t j = 0; j < at_page(&pages, i)->state.held.n; j++)
			kd_op_copy(kd_op_list_push(&back->state.held),
			           &at_page(&pages, i)->state.held.v[j]);
	}
	assert_true(kd_msg_equal(back, st));
	kd_frame_vec_fini(&fv);
	kd_msg_vec_fini(&pages);

	/* reconcile: keep, then drop, then resend, in order, across pages */
	kd_automsg struct kd_msg *rc = kd_msg_new(KD_MSG_RECONCILE, EPOCH, 0);
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "default/keep-%d", i);
		kd_key_list_push(&rc->reconcile.keep, key);
		snprintf(key, sizeof(key), "default/drop-%d", i);
		kd_key_list_push(&rc->reconcile.drop, key);
		snprintf(key, sizeof(key), "default/resend-%d", i);
		fill_upsert(kd_op_list_push(&rc->reconcile.resend), key, false);
	}
	assert_int_equal(kd_msg_encode_pages(rc, 0, &lim, &fv, NULL), 0);
	assert_true(fv.n > 3);
	decode_frames(&fv, &lim, &pages);
	kd_automsg struct kd_msg *rb = kd_msg_new(KD_MSG_RECONCILE, EPOCH, 0);
	for (size_t i = 0; i < pages.n; i++) {
		const struct kd_msg *p = at_page(&pages, i);
		for (size_t j = 0; j < p->reconcile.keep.n; j++)
			kd_key_list_push(&rb->reconcile.keep, p->reconcile.keep.v[j]);
		for (size_t j = 0; j < p->reconcile.drop.n; j++)
			kd_key_list_push(&rb->reconcile.drop, p->reconcile.drop.v[j]);
		for (size_t j = 0; j < p->reconcile.resend.n; j++)
			kd_op_copy(kd_op_list_push(&rb->reconcile.resend),
			           &p->reconcile.resend.v[j]);
	}
	assert_true(kd_msg_equal(rb, rc));
	kd_frame_vec_fini(&fv);
	kd_msg_vec_fini(&pages);

	/* a message that fits is one frame, byte-identical to kd_msg_encode */
	kd_automsg struct kd_msg *small = sample(KD_MSG_STATE);
	assert_int_equal(kd_msg_encode_pages(small, 4, NULL, &fv, NULL), 0);
	assert_int_equal(fv.n, 1);
	char *buf = NULL;
	size_t len = 0;
	assert_int_equal(kd_msg_encode(small, 4, NULL, &buf, &len, NULL), 0);
	assert_int_equal(fv.v[0].len, len);
	assert_memory_equal(fv.v[0].buf + 4, buf + 4, len);
	assert_null(strstr(buf + 4, "\"part\""));
	free(buf);
	kd_frame_vec_fini(&fv);
	/* other types pass through */
	kd_automsg struct kd_msg *ack = kd_msg_new(KD_MSG_ACK, 7, 3);
	assert_int_equal(kd_msg_encode_pages(ack, 0, NULL, &fv, NULL), 0);
	assert_int_equal(fv.n, 1);
	assert_string_equal(fv.v[0].buf, "{\"type\":\"ack\",\"epoch\":\"7\",\"seq\":3}");
	kd_frame_vec_fini(&fv);
}

static void pages_refuse_what_cannot_be_paged(void **state)
{
	(void)state;
	kd_autoerr struct kd_error *err = NULL;
	struct kd_frame_vec fv = {0};
	/* one entry larger than a frame */
	kd_automsg struct kd_msg *st = kd_msg_new(KD_MSG_STATE, EPOCH, 0);
	fill_upsert(kd_op_list_push(&st->state.held), "default/small", false);
	fill_upsert(kd_op_list_push(&st->state.held), "default/big", true);
	struct kd_delta_limits lim = {.max_frame = 400};
	assert_int_equal(kd_msg_encode_pages(st, 0, &lim, &fv, &err), -EMSGSIZE);
	assert_non_null(strstr(err->msg, "held entry default/big does not fit"));
	assert_int_equal(fv.n, 0);
	kd_error_free(err);
	err = NULL;
	/* already a page */
	st->more = true;
	assert_int_equal(kd_msg_encode_pages(st, 0, NULL, &fv, &err), -EINVAL);
	kd_error_free(err);
	err = NULL;
	st->more = false;
	/* a duplicate key across what would be two pages is caught before anything is encoded */
	kd_automsg struct kd_msg *rc = kd_msg_new(KD_MSG_RECONCILE, EPOCH, 0);
	kd_key_list_push(&rc->reconcile.keep, "default/a");
	kd_key_list_push(&rc->reconcile.drop, "default/a");
	assert_int_equal(kd_msg_encode_pages(rc, 0, NULL, &fv, &err), -EINVAL);
	assert_non_null(strstr(err->msg, "appears more than once"));
	kd_error_free(err);
	err = NULL;
	/* more entries in all than max_total */
	struct kd_delta_limits tot = {.max_total = 1};
	assert_int_equal(kd_msg_encode_pages(st, 0, &tot, &fv, &err), -E2BIG);
	assert_int_equal(fv.n, 0);
	/* part/more on other messages are refused by validation */
	kd_automsg struct kd_msg *dl = kd_msg_new(KD_MSG_DELTA, EPOCH, 1);
	fill_upsert(kd_op_list_push(&dl->delta.ops), "default/x", false);
	dl->part = 1;
	assert_int_equal(kd_msg_validate(dl, NULL, NULL), -EINVAL);
}

#define S(body) "{\"type\":\"state\",\"epoch\":\"5\",\"last_seq\":0," body "}"
#define T0      "{\"kind\":\"K\",\"name\":\"n\",\"uid\":\"u\",\"hash\":\"h\"}"

static void template_table_and_paging_fields_are_strict(void **state)
{
	(void)state;
	/* accepted: table, "op" omitted in held, part/more */
	const char *ok = S("\"held\":[{\"key\":\"a/b\",\"t\":0}],\"tmpls\":[" T0 "],\"part\":2,"
	                   "\"more\":true");
	kd_automsg struct kd_msg *m = NULL;
	kd_autoerr struct kd_error *err = NULL;
	if (kd_msg_decode(ok, strlen(ok), NULL, &m, &err) < 0)
		fail_msg("%s", kd_error_msg(err));
	assert_int_equal(m->part, 2);
	assert_true(m->more);
	assert_int_equal(m->state.held.v[0].kind, KD_OP_UPSERT);
	assert_string_equal(m->state.held.v[0].tmpl.hash, "h");
	/* the canonical encoding of an inline tmpl uses the table */
	const char *in = D("{\"op\":\"upsert\",\"key\":\"a/b\",\"tmpl\":" T0 "}");
	kd_automsg struct kd_msg *m2 = NULL;
	assert_int_equal(kd_msg_decode(in, strlen(in), NULL, &m2, NULL), 0);
	size_t len;
	kd_autofree char *buf = enc(m2, &len);
	assert_string_equal(buf, "{\"type\":\"delta\",\"epoch\":\"5\",\"seq\":12,\"ops\":[{\"op\":"
	                         "\"upsert\",\"key\":\"a/b\",\"t\":0}],\"tmpls\":[" T0 "]}");

	expect_reject(S("\"held\":[{\"key\":\"a/b\",\"t\":0}]"), EINVAL,
	              "\"t\" without a \"tmpls\" table");
	expect_reject(S("\"held\":[{\"key\":\"a/b\",\"t\":1}],\"tmpls\":[" T0 "]"), EINVAL,
	              "state held 0: field \"t\" out of range [0, 0]");
	expect_reject(S("\"held\":[{\"key\":\"a/b\",\"t\":0,\"tmpl\":" T0 "}],\"tmpls\":[" T0 "]"),
	              EINVAL, "both \"t\" and \"tmpl\"");
	expect_reject(S("\"held\":[{\"key\":\"a/b\"}],\"tmpls\":[" T0 "]"), EINVAL,
	              "tmpls 0 is not referenced");
	expect_reject(S("\"held\":[],\"tmpls\":[]"), EINVAL, "\"tmpls\" is empty");
	expect_reject(S("\"held\":[{\"key\":\"a/b\",\"t\":0}],\"tmpls\":[{\"kind\":\"K\"}]"),
	              EINVAL, "missing field \"tmpls 0.name\"");
	expect_reject(S("\"held\":[{\"key\":\"a/b\",\"t\":0}],\"tmpls\":{}"), EINVAL,
	              "\"tmpls\" must be an array");
	expect_reject(D("{\"key\":\"a/b\"}"), EINVAL, "op 0: missing field \"op\"");
	expect_reject(D("{\"op\":\"delete\",\"key\":\"a/b\",\"t\":0}"), EINVAL,
	              "delete carries upsert field \"t\"");
	expect_reject(S("\"held\":[],\"part\":1000001"), EINVAL, "\"part\" out of range");
	expect_reject(S("\"held\":[],\"more\":1"), EINVAL, "\"more\" must be a boolean");
	expect_reject("{\"type\":\"delta\",\"epoch\":\"5\",\"seq\":12,\"more\":false,\"ops\":[" UP(
	                  "a/b") "]}",
	              EINVAL, "part/more are only valid on state and reconcile");
}

/* The decoder's own JSON parser: escapes, numbers, literals, nesting and repeated members. */
static void json_parser_edge_cases(void **state)
{
	(void)state;
	kd_autoerr struct kd_error *err = NULL;
	/* escapes and a surrogate pair decode to UTF-8; "\/" is "/" */
	const char *esc = "{\"type\":\"error\",\"epoch\":\"0\",\"code\":2,\"reason\":"
	                  "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\u20ac\\ud83d\\ude00\\udc00x\"}";
	kd_automsg struct kd_msg *m = NULL;
	if (kd_msg_decode(esc, strlen(esc), NULL, &m, &err) < 0)
		fail_msg("%s", kd_error_msg(err));
	assert_string_equal(m->error.reason, "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xe2\x82\xac"
	                                     "\xf0\x9f\x98\x80\xef\xbf\xbdx");
	/* a high surrogate followed by a non-surrogate escape: U+FFFD, then the escape */
	const char *hi =
	    "{\"type\":\"error\",\"epoch\":\"0\",\"code\":2,\"reason\":\"\\ud800\\u0041\"}";
	kd_automsg struct kd_msg *m2 = NULL;
	assert_int_equal(kd_msg_decode(hi, strlen(hi), NULL, &m2, NULL), 0);
	assert_string_equal(m2->error.reason, "\xef\xbf\xbd"
	                                      "A");
	/* unknown fields of every JSON type are skipped; the last of a repeated member counts */
	const char *unk = "{\"type\":\"ack\",\"epoch\":\"1\",\"seq\":1,\"x\":[null,true,false,-0,"
	                  "-1.5e-3,2E+10,{\"y\":[]},\"\"],\"seq\":2}";
	kd_automsg struct kd_msg *m3 = NULL;
	if (kd_msg_decode(unk, strlen(unk), NULL, &m3, &err) < 0)
		fail_msg("%s", kd_error_msg(err));
	assert_int_equal(m3->seq, 2);
	/* 8 nested containers are fine, 9 are not */
	const char *d8 = "{\"type\":\"ready\",\"epoch\":\"1\",\"x\":[[[[[[[1]]]]]]]}";
	kd_automsg struct kd_msg *m4 = NULL;
	assert_int_equal(kd_msg_decode(d8, strlen(d8), NULL, &m4, NULL), 0);
	expect_reject("{\"type\":\"ready\",\"epoch\":\"1\",\"x\":[[[[[[[[1]]]]]]]]}", EINVAL,
	              "nesting too deep");
	/* RFC 8259: no leading zeros, no bare control characters, complete literals */
	expect_reject("{\"type\":\"ack\",\"epoch\":\"1\",\"seq\":01}", EINVAL, "leading zero");
	expect_reject("{\"type\":\"ack\",\"epoch\":\"1\",\"seq\":-}", EINVAL, "not valid JSON");
	expect_reject("{\"type\":\"ack\",\"epoch\":\"1\",\"seq\":1.}", EINVAL, "invalid number");
	expect_reject("{\"type\":\"ack\",\"epoch\":\"1\",\"seq\":1e}", EINVAL, "invalid number");
	expect_reject("{\"type\":\"ack\",\"epoch\":\"1\",\"seq\":+1}", EINVAL, "not valid JSON");
	expect_reject("{\"type\":\"ready\",\"epoch\":\"1\",\"x\":\"a\tb\"}", EINVAL,
	              "control character in string");
	expect_reject("{\"type\":\"ready\",\"epoch\":\"1\",\"x\":\"\\x\"}", EINVAL,
	              "invalid escape");
	expect_reject("{\"type\":\"ready\",\"epoch\":\"1\",\"x\":\"\\u12g4\"}", EINVAL,
	              "invalid \\u escape");
	expect_reject("{\"type\":\"ready\",\"epoch\":\"1\",\"x\":tru}", EINVAL, "invalid literal");
	expect_reject("{\"type\":\"ready\",\"epoch\":\"1\",\"x\":nul", EINVAL, "truncated");
	expect_reject("{\"type\":\"ready\",\"epoch\":\"1\",\"x\":\"abc", EINVAL, "truncated");
	expect_reject("{\"type\":\"ready\",\"epoch\":\"1\" \"x\":1}", EINVAL, "expected ','");
	expect_reject("{\"type\" \"ready\"}", EINVAL, "expected ':'");
	expect_reject("{1:2}", EINVAL, "expected a member name");
	expect_reject("  ", EINVAL, "truncated");
	/* integers beyond int64 saturate into the range checks */
	expect_reject("{\"type\":\"ack\",\"epoch\":\"1\",\"seq\":-99999999999999999999}", EINVAL,
	              "\"seq\" out of range");
	/* a label key given twice is refused (json-c silently kept the last) */
	expect_reject(D("{\"op\":\"upsert\",\"key\":\"a/b\",\"labels\":{\"k\":\"v\",\"k\":\"w\"}}"),
	              EINVAL, "labels key \"k\" appears twice");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(roundtrip_every_type),
	    cmocka_unit_test(epoch_is_a_string_and_exact),
	    cmocka_unit_test(encode_is_compact),
	    cmocka_unit_test(encode_headroom),
	    cmocka_unit_test(rejects_frame_level),
	    cmocka_unit_test(rejects_message_level),
	    cmocka_unit_test(rejects_bad_ops),
	    cmocka_unit_test(rejects_too_many_ops),
	    cmocka_unit_test(rejects_too_many_keys_labels_and_long_text),
	    cmocka_unit_test(rejects_container_floods_before_parsing),
	    cmocka_unit_test(encode_refuses_invalid_and_oversize),
	    cmocka_unit_test(unknown_fields_are_ignored),
	    cmocka_unit_test(lone_surrogate_escape_becomes_replacement_char),
	    cmocka_unit_test(key_check_rules),
	    cmocka_unit_test(error_reason_is_truncated_on_utf8_boundary),
	    cmocka_unit_test(pages_split_state_and_reconcile_and_reassemble),
	    cmocka_unit_test(pages_refuse_what_cannot_be_paged),
	    cmocka_unit_test(template_table_and_paging_fields_are_strict),
	    cmocka_unit_test(json_parser_edge_cases),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
