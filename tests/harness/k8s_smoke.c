/* k8s_smoke: exercises kd_k8s and kd_informer against a real kube-apiserver (the rig's), for
 * tests/integration/test_k8s_client.sh. Usage: k8s_smoke KUBECONFIG NAMESPACE [--http2]
 * In NAMESPACE (which must exist and be empty): informer on labelled ConfigMaps (paginated
 * initial list), 200 async creates, AlreadyExists vs Conflict, NotFound, the three patch types,
 * deletes with DeleteOptions, a watch reconnect after the server-side timeout. Prints measured
 * numbers; exits 0 only if every check held. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd/json.h"
#include "kd/k8s.h"
#include "kd/log.h"
#include "kd/loop.h"
#include "kd/watch.h"

static const struct kd_k8s_resource configmaps = {"", "v1", "configmaps", true};

static struct {
	int adds, updates, deletes, synced;
	int done, ok, failed;
} st;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "k8s_smoke: FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			exit(1);                                                                   \
		}                                                                                  \
		printf("  ok: %s\n", #cond);                                                       \
	} while (0)

static void on_add(struct kd_informer *inf, struct json_object *obj, void *arg)
{
	(void)inf;
	(void)obj;
	(void)arg;
	st.adds++;
}

static void on_update(struct kd_informer *inf, struct json_object *old, struct json_object *obj,
                      void *arg)
{
	(void)inf;
	(void)arg;
	const char *a = kd_json_get_string(old, "metadata.resourceVersion");
	const char *b = kd_json_get_string(obj, "metadata.resourceVersion");
	if (a && b && strcmp(a, b))
		st.updates++;
}

static void on_delete(struct kd_informer *inf, struct json_object *obj, void *arg)
{
	(void)inf;
	(void)obj;
	(void)arg;
	st.deletes++;
}

static void on_synced(struct kd_informer *inf, void *arg)
{
	(void)inf;
	(void)arg;
	st.synced++;
}

static void on_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	(void)resp;
	(void)arg;
	st.done++;
	if (err) {
		st.failed++;
		fprintf(stderr, "k8s_smoke: async: %s\n", err->msg);
	} else {
		st.ok++;
	}
}

static void run_until(struct kd_loop *loop, const int *v, int target, unsigned max_s)
{
	uint64_t deadline = kd_now_ns() + (uint64_t)max_s * 1000000000ull;
	while (*v < target && kd_now_ns() < deadline)
		kd_loop_run_once(loop, 50);
}

static struct json_object *configmap(const char *name)
{
	char *s = kd_xasprintf("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{"
	                       "\"name\":\"%s\",\"labels\":{\"kd-smoke\":\"yes\"}},"
	                       "\"data\":{\"a\":\"1\"}}",
	                       name);
	struct json_object *o = json_tokener_parse(s);
	free(s);
	return o;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: k8s_smoke KUBECONFIG NAMESPACE [--http2]\n");
		return 2;
	}
	const char *ns = argv[2];
	bool http2 = argc > 3 && !strcmp(argv[3], "--http2");
	struct kd_error *err = NULL;
	struct kd_k8s_config *cfg = NULL;
	if (kd_k8s_config_from_kubeconfig(argv[1], NULL, &cfg, &err) < 0) {
		fprintf(stderr, "k8s_smoke: %s\n", err->msg);
		return 1;
	}
	struct kd_loop *loop = kd_loop_new();
	struct kd_k8s_opts opts = {.http2 = http2, .max_connections = 16};
	struct kd_k8s *c = NULL;
	CHECK(kd_k8s_new(cfg, loop, &opts, &c, &err) == 0);

	/* Five objects before the informer starts: its first list is paginated (limit 2). */
	for (int i = 0; i < 5; i++) {
		char name[32];
		snprintf(name, sizeof(name), "pre-%d", i);
		kd_autojson struct json_object *o = configmap(name);
		CHECK(kd_k8s_create(c, &configmaps, ns, o, NULL, &err) == 0);
	}
	struct kd_informer_opts io = {.res = &configmaps,
	                              .ns = ns,
	                              .label_selector = "kd-smoke=yes",
	                              .watch_timeout_s = 3,
	                              .list_limit = 2};
	struct kd_informer_handlers h = {on_add, on_update, on_delete, on_synced, NULL};
	struct kd_informer *inf = NULL;
	CHECK(kd_informer_new(c, &io, &h, &inf, &err) == 0);
	CHECK(kd_informer_start(inf) == 0);
	run_until(loop, &st.synced, 1, 20);
	CHECK(st.synced == 1 && st.adds == 5 && kd_informer_count(inf) == 5);

	enum { N = 200 };
	uint64_t t0 = kd_now_ns();
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof(name), "cm-%d", i);
		kd_autojson struct json_object *o = configmap(name);
		struct kd_k8s_request r = {
		    .verb = KD_K8S_CREATE, .res = &configmaps, .ns = ns, .body = o};
		CHECK(kd_k8s_submit(c, &r, on_done, NULL, &err) == 0);
	}
	run_until(loop, &st.done, N, 30);
	double secs = (double)(kd_now_ns() - t0) / 1e9;
	CHECK(st.ok == N);
	printf("measured: %d async creates in %.3f s (%.0f/s, %s)\n", N, secs, N / secs,
	       http2 ? "http2 requested" : "HTTP/1.1 pool of 16");
	run_until(loop, &st.adds, N + 5, 20);
	printf("measured: informer saw all %d adds %.3f s after the first submit\n", N + 5,
	       (double)(kd_now_ns() - t0) / 1e9);
	CHECK(st.adds == N + 5 && kd_informer_count(inf) == N + 5);

	/* AlreadyExists vs Conflict vs NotFound, as the real server reports them. */
	kd_autojson struct json_object *dup = configmap("cm-1");
	CHECK(kd_k8s_create(c, &configmaps, ns, dup, NULL, &err) == -EEXIST);
	CHECK(err->http_status == 409 && !strcmp(err->reason, "AlreadyExists"));
	printf("  %s\n", err->msg);
	kd_error_free(err);
	err = NULL;
	json_object_object_add(kd_json_get_object(dup, "metadata"), "resourceVersion",
	                       json_object_new_string("1"));
	CHECK(kd_k8s_update(c, &configmaps, ns, "cm-1", NULL, dup, NULL, &err) == -EBUSY);
	CHECK(err->http_status == 409 && !strcmp(err->reason, "Conflict"));
	printf("  %s\n", err->msg);
	kd_error_free(err);
	err = NULL;
	CHECK(kd_k8s_get(c, &configmaps, ns, "missing", NULL, &err) == -ENOENT);
	kd_error_free(err);
	err = NULL;

	/* The three patch types. */
	kd_autojson struct json_object *mp = json_tokener_parse("{\"data\":{\"b\":\"2\"}}");
	kd_autojson struct json_object *jp =
	    json_tokener_parse("[{\"op\":\"add\",\"path\":\"/data/c\",\"value\":\"3\"}]");
	struct json_object *out = NULL;
	CHECK(kd_k8s_patch(c, &configmaps, ns, "cm-2", NULL, KD_K8S_PATCH_MERGE, mp, &out, &err) ==
	      0);
	CHECK(!strcmp(kd_json_get_string(out, "data.b"), "2"));
	json_object_put(out);
	CHECK(kd_k8s_patch(c, &configmaps, ns, "cm-3", NULL, KD_K8S_PATCH_STRATEGIC, mp, NULL,
	                   &err) == 0);
	CHECK(kd_k8s_patch(c, &configmaps, ns, "cm-4", NULL, KD_K8S_PATCH_JSON, jp, &out, &err) ==
	      0);
	CHECK(!strcmp(kd_json_get_string(out, "data.c"), "3"));
	json_object_put(out);
	run_until(loop, &st.updates, 3, 20);
	CHECK(st.updates == 3);

	/* Deletes with options reach the informer. */
	kd_autojson struct json_object *dopt =
	    json_tokener_parse("{\"gracePeriodSeconds\":0,\"propagationPolicy\":\"Background\"}");
	for (int i = 0; i < 10; i++) {
		char name[32];
		snprintf(name, sizeof(name), "cm-%d", i);
		CHECK(kd_k8s_delete(c, &configmaps, ns, name, dopt, NULL, &err) == 0);
	}
	run_until(loop, &st.deletes, 10, 20);
	CHECK(st.deletes == 10 && kd_informer_count(inf) == N + 5 - 10);

	/* Past the 3 s server-side watch timeout: reconnected from the last resourceVersion. */
	int never = 0;
	run_until(loop, &never, 1, 5);
	struct kd_informer_stats ist;
	kd_informer_get_stats(inf, &ist);
	printf("measured: informer lists %llu relists %llu watches %llu events %llu bookmarks %llu "
	       "errors %llu\n",
	       (unsigned long long)ist.lists, (unsigned long long)ist.relists,
	       (unsigned long long)ist.watches, (unsigned long long)ist.events,
	       (unsigned long long)ist.bookmarks, (unsigned long long)ist.errors);
	CHECK(ist.watches >= 2 && ist.relists == 0 && ist.lists == 1);

	kd_informer_free(inf);
	kd_k8s_free(c);
	kd_loop_free(loop);
	kd_k8s_config_free(cfg);
	printf("k8s_smoke: all checks passed\n");
	return 0;
}
