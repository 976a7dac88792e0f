/* Unit tests for kd_k8s against the loopback test server (tests/support/kd_test_httpd): the
 * rotated service-account token reaching requests, request paths/verbs/content types, pagination,
 * error mapping, TLS, caps, timeouts, async calls on kd_loop, rate limiting. Config loading itself
 * is tested in test_kubeconfig.c. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kd/json.h"
#include "kd/k8s.h"
#include "kd/loop.h"
#include "kd_test_httpd.h"

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                     */

static struct kd_k8s *client_for(struct kd_test_httpd *srv, struct kd_loop *loop,
                                 const struct kd_k8s_opts *opts)
{
	struct kd_k8s_config *cfg = kd_k8s_config_new(kd_test_httpd_url(srv));
	cfg->token = kd_xstrdup("t0k3n");
	struct kd_k8s *c = NULL;
	struct kd_error *err = NULL;
	int rc = kd_k8s_new(cfg, loop, opts, &c, &err);
	if (rc)
		fail_msg("kd_k8s_new: %s", kd_error_msg(err));
	kd_k8s_config_free(cfg);
	return c;
}

static char *status_body(int code, const char *reason, const char *msg)
{
	return kd_xasprintf("{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
	                    "\"message\":\"%s\",\"reason\":\"%s\",\"code\":%d}",
	                    msg, reason, code);
}

static struct json_object *pod(const char *ns, const char *name)
{
	char *s =
	    kd_xasprintf("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\","
	                 "\"namespace\":\"%s\"},\"spec\":{\"containers\":[]}}",
	                 name, ns);
	struct json_object *o = json_tokener_parse(s);
	free(s);
	return o;
}

static struct kd_test_httpd_req last_req(struct kd_test_httpd *srv)
{
	struct kd_test_httpd_req r = {0};
	size_t n = kd_test_httpd_count(srv);
	assert_true(n > 0);
	assert_true(kd_test_httpd_get(srv, n - 1, &r));
	return r;
}

/* Echo handler: answers 200 (201 for POST) with the request body, or a small object. */
static void echo_handler(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req,
                         void *arg)
{
	(void)arg;
	if (req->body_len) {
		kd_test_httpd_respond(conn, strcmp(req->method, "POST") ? 200 : 201,
		                      "application/json", req->body);
		return;
	}
	char *b = kd_xasprintf("{\"kind\":\"Pod\",\"metadata\":{\"name\":\"x\","
	                       "\"resourceVersion\":\"42\"},\"method\":\"%s\"}",
	                       req->method);
	kd_test_httpd_respond(conn, 200, "application/json", b);
	free(b);
}

/* ------------------------------------------------------------------------------------------ */
/* paths                                                                                       */

static void path_builds_core_group_and_subresources(void **state)
{
	(void)state;
	kd_autofree char *a = kd_k8s_path(&kd_k8s_pods, "default", "p1", "status");
	assert_string_equal(a, "/api/v1/namespaces/default/pods/p1/status");
	kd_autofree char *b = kd_k8s_path(&kd_k8s_pods, NULL, NULL, NULL);
	assert_string_equal(b, "/api/v1/pods");
	kd_autofree char *c = kd_k8s_path(&kd_k8s_nodes, "ignored", "n1", NULL);
	assert_string_equal(c, "/api/v1/nodes/n1");
	kd_autofree char *d = kd_k8s_path(&kd_k8s_deployments, "ns", "web", "scale");
	assert_string_equal(d, "/apis/apps/v1/namespaces/ns/deployments/web/scale");
	kd_autofree char *e = kd_k8s_path(&kd_k8s_podautoscalers, "ns", NULL, NULL);
	assert_string_equal(e, "/apis/autoscaling.internal.knative.dev/v1alpha1/namespaces/ns/"
	                       "podautoscalers");
	kd_autofree char *f = kd_k8s_path(&kd_k8s_pods, "a b", "x/y", NULL);
	assert_string_equal(f, "/api/v1/namespaces/a%20b/pods/x%2Fy");
}

static void errno_mapping_distinguishes_conflicts(void **state)
{
	(void)state;
	assert_int_equal(kd_k8s_errno_for(409, "AlreadyExists"), EEXIST);
	assert_int_equal(kd_k8s_errno_for(409, "Conflict"), EBUSY);
	assert_int_equal(kd_k8s_errno_for(409, NULL), EBUSY);
	assert_int_equal(kd_k8s_errno_for(404, "NotFound"), ENOENT);
	assert_int_equal(kd_k8s_errno_for(410, "Expired"), ESTALE);
	assert_int_equal(kd_k8s_errno_for(401, NULL), EACCES);
	assert_int_equal(kd_k8s_errno_for(403, NULL), EPERM);
	assert_int_equal(kd_k8s_errno_for(422, "Invalid"), EINVAL);
	assert_int_equal(kd_k8s_errno_for(429, NULL), EAGAIN);
	assert_int_equal(kd_k8s_errno_for(500, NULL), EIO);
}

/* ------------------------------------------------------------------------------------------ */
/* configuration                                                                               */

static void auth_handler(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req,
                         void *arg)
{
	(void)arg;
	char *b = kd_xasprintf("{\"auth\":\"%s\"}", req->auth ? req->auth : "");
	kd_test_httpd_respond(conn, 200, "application/json", b);
	free(b);
}

static void in_cluster_config_rereads_rotated_token(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(auth_handler, NULL, NULL, NULL);
	kd_autofree char *dir = kd_test_httpd_mkdtemp();
	kd_autofree char *tok = kd_xasprintf("%s/token", dir);
	kd_autofree char *nsf = kd_xasprintf("%s/namespace", dir);
	kd_test_httpd_write_file(tok, "first-token\n");
	kd_test_httpd_write_file(nsf, "kd-system\n");
	char port[16];
	snprintf(port, sizeof(port), "%d", kd_test_httpd_port(srv));
	setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", port, 1);
	struct kd_k8s_config *cfg = NULL;
	struct kd_error *err = NULL;
	assert_int_equal(kd_k8s_config_in_cluster_at(dir, &cfg, &err), 0);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	kd_autofree char *expect_server = kd_xasprintf("https://127.0.0.1:%s", port);
	assert_string_equal(cfg->server, expect_server);
	assert_string_equal(cfg->namespace, "kd-system");
	assert_string_equal(cfg->token_file, tok);
	assert_null(cfg->ca_file); /* no ca.crt in dir */
	/* Talk plain HTTP to the test server with the same token file. */
	free(cfg->server);
	cfg->server = kd_xstrdup(kd_test_httpd_url(srv));
	struct kd_k8s *c = NULL;
	assert_int_equal(kd_k8s_new(cfg, NULL, NULL, &c, NULL), 0);
	struct json_object *out = NULL;
	assert_int_equal(kd_k8s_get(c, &kd_k8s_pods, "ns", "a", &out, NULL), 0);
	assert_string_equal(kd_json_get_string(out, "auth"), "Bearer first-token");
	json_object_put(out);
	kd_test_httpd_write_file(tok, "second-token-rotated\n");
	assert_int_equal(kd_k8s_get(c, &kd_k8s_pods, "ns", "a", &out, NULL), 0);
	assert_string_equal(kd_json_get_string(out, "auth"), "Bearer second-token-rotated");
	json_object_put(out);
	/* A vanished token file keeps the last good token. */
	unlink(tok);
	assert_int_equal(kd_k8s_get(c, &kd_k8s_pods, "ns", "a", &out, NULL), 0);
	assert_string_equal(kd_json_get_string(out, "auth"), "Bearer second-token-rotated");
	json_object_put(out);
	kd_k8s_free(c);
	kd_k8s_config_free(cfg);
	kd_test_httpd_stop(srv);
	kd_test_httpd_rmrf(dir);
}

/* ------------------------------------------------------------------------------------------ */
/* sync calls                                                                                  */

static void get_sends_path_auth_and_user_agent_on_one_connection(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(echo_handler, NULL, NULL, NULL);
	struct kd_k8s_opts opts = {.user_agent = "kd-test/1"};
	struct kd_k8s *c = client_for(srv, NULL, &opts);
	for (int i = 0; i < 5; i++) {
		struct json_object *out = NULL;
		assert_int_equal(kd_k8s_get(c, &kd_k8s_pods, "default", "p1", &out, NULL), 0);
		assert_string_equal(kd_json_get_string(out, "method"), "GET");
		json_object_put(out);
	}
	struct kd_test_httpd_req r = last_req(srv);
	assert_string_equal(r.method, "GET");
	assert_string_equal(r.target, "/api/v1/namespaces/default/pods/p1");
	assert_string_equal(r.auth, "Bearer t0k3n");
	assert_string_equal(r.user_agent, "kd-test/1");
	kd_test_httpd_req_fini(&r);
	assert_int_equal(kd_test_httpd_connections(srv), 1); /* keep-alive */
	kd_k8s_free(c);
	kd_test_httpd_stop(srv);
}

static void list_handler(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req,
                         void *arg)
{
	(void)arg;
	if (strstr(req->query, "continue=tok%2B1")) {
		kd_test_httpd_respond(conn, 200, "application/json",
		                      "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":"
		                      "{\"resourceVersion\":\"101\"},\"items\":[{\"metadata\":{"
		                      "\"name\":\"c\",\"namespace\":\"ns\"}}]}");
		return;
	}
	kd_test_httpd_respond(conn, 200, "application/json",
	                      "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{"
	                      "\"resourceVersion\":\"100\",\"continue\":\"tok+1\"},\"items\":["
	                      "{\"metadata\":{\"name\":\"a\",\"namespace\":\"ns\"}},"
	                      "{\"metadata\":{\"name\":\"b\",\"namespace\":\"ns\"}}]}");
}

static void check_merged_list(struct json_object *list)
{
	assert_string_equal(kd_json_get_string(list, "kind"), "PodList");
	assert_string_equal(kd_json_get_string(list, "metadata.resourceVersion"), "101");
	assert_null(kd_json_get(list, "metadata.continue"));
	struct json_object *items = kd_json_get_array(list, "items");
	assert_non_null(items);
	assert_int_equal(json_object_array_length(items), 3);
	assert_string_equal(kd_json_get_string(list, "items.0.metadata.name"), "a");
	assert_string_equal(kd_json_get_string(list, "items.2.metadata.name"), "c");
}

static void check_list_requests(struct kd_test_httpd *srv)
{
	assert_int_equal(kd_test_httpd_count(srv), 2);
	struct kd_test_httpd_req r0 = {0}, r1 = {0};
	assert_true(kd_test_httpd_get(srv, 0, &r0));
	assert_true(kd_test_httpd_get(srv, 1, &r1));
	assert_string_equal(r0.path, "/api/v1/namespaces/ns/pods");
	assert_string_equal(r0.query, "limit=500&labelSelector=app%3Dweb%2Ctier%21%3Ddb&"
	                              "fieldSelector=spec.nodeName%3Dn1");
	assert_string_equal(r1.query, "limit=500&labelSelector=app%3Dweb%2Ctier%21%3Ddb&"
	                              "fieldSelector=spec.nodeName%3Dn1&continue=tok%2B1");
	kd_test_httpd_req_fini(&r0);
	kd_test_httpd_req_fini(&r1);
}

static void list_follows_continue_and_encodes_selectors(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(list_handler, NULL, NULL, NULL);
	struct kd_k8s *c = client_for(srv, NULL, NULL);
	struct json_object *list = NULL;
	struct kd_error *err = NULL;
	assert_int_equal(
	    kd_k8s_list(c, &kd_k8s_pods, "ns", "app=web,tier!=db", "spec.nodeName=n1", &list, &err),
	    0);
	check_merged_list(list);
	json_object_put(list);
	check_list_requests(srv);
	kd_k8s_free(c);
	kd_test_httpd_stop(srv);
}

static void create_update_delete_use_right_verbs_paths_and_bodies(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(echo_handler, NULL, NULL, NULL);
	struct kd_k8s *c = client_for(srv, NULL, NULL);
	kd_autojson struct json_object *p = pod("ns1", "web-1");
	struct json_object *out = NULL;
	assert_int_equal(kd_k8s_create(c, &kd_k8s_pods, "ns1", p, &out, NULL), 0);
	assert_string_equal(kd_json_get_string(out, "metadata.name"), "web-1");
	json_object_put(out);
	struct kd_test_httpd_req r = last_req(srv);
	assert_string_equal(r.method, "POST");
	assert_string_equal(r.target, "/api/v1/namespaces/ns1/pods");
	assert_string_equal(r.content_type, "application/json");
	assert_non_null(strstr(r.body, "\"name\":\"web-1\""));
	kd_test_httpd_req_fini(&r);

	/* Namespace taken from the object when not given. */
	assert_int_equal(kd_k8s_create(c, &kd_k8s_pods, NULL, p, NULL, NULL), 0);
	r = last_req(srv);
	assert_string_equal(r.target, "/api/v1/namespaces/ns1/pods");
	kd_test_httpd_req_fini(&r);

	assert_int_equal(kd_k8s_update(c, &kd_k8s_pods, "ns1", "web-1", NULL, p, NULL, NULL), 0);
	r = last_req(srv);
	assert_string_equal(r.method, "PUT");
	assert_string_equal(r.target, "/api/v1/namespaces/ns1/pods/web-1");
	assert_string_equal(r.content_type, "application/json");
	kd_test_httpd_req_fini(&r);

	assert_int_equal(kd_k8s_update(c, &kd_k8s_pods, "ns1", "web-1", "status", p, NULL, NULL),
	                 0);
	r = last_req(srv);
	assert_string_equal(r.target, "/api/v1/namespaces/ns1/pods/web-1/status");
	kd_test_httpd_req_fini(&r);

	kd_autojson struct json_object *opts =
	    json_tokener_parse("{\"kind\":\"DeleteOptions\",\"gracePeriodSeconds\":0,"
	                       "\"propagationPolicy\":\"Background\"}");
	assert_int_equal(kd_k8s_delete(c, &kd_k8s_pods, "ns1", "web-1", opts, NULL, NULL), 0);
	r = last_req(srv);
	assert_string_equal(r.method, "DELETE");
	assert_string_equal(r.target, "/api/v1/namespaces/ns1/pods/web-1");
	assert_non_null(strstr(r.body, "\"gracePeriodSeconds\":0"));
	assert_non_null(strstr(r.body, "\"propagationPolicy\":\"Background\""));
	kd_test_httpd_req_fini(&r);

	assert_int_equal(kd_k8s_delete(c, &kd_k8s_nodes, NULL, "n1", NULL, NULL, NULL), 0);
	r = last_req(srv);
	assert_string_equal(r.method, "DELETE");
	assert_string_equal(r.target, "/api/v1/nodes/n1");
	assert_int_equal(r.body_len, 0);
	assert_null(r.content_type);
	kd_test_httpd_req_fini(&r);

	/* Missing name / body are rejected before any I/O. */
	struct kd_error *err = NULL;
	size_t before = kd_test_httpd_count(srv);
	assert_int_equal(kd_k8s_get(c, &kd_k8s_pods, "ns1", NULL, NULL, &err), -EINVAL);
	assert_non_null(strstr(err->msg, "missing name"));
	kd_error_free(err);
	err = NULL;
	assert_int_equal(kd_k8s_get(c, &kd_k8s_pods, NULL, "x", NULL, &err), -EINVAL);
	assert_non_null(strstr(err->msg, "missing namespace"));
	kd_error_free(err);
	assert_int_equal(kd_test_httpd_count(srv), before);
	kd_k8s_free(c);
	kd_test_httpd_stop(srv);
}

static void patch_content_types_and_subresources(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(echo_handler, NULL, NULL, NULL);
	struct kd_k8s *c = client_for(srv, NULL, NULL);
	kd_autojson struct json_object *merge =
	    json_tokener_parse("{\"status\":{\"phase\":\"Running\"}}");
	kd_autojson struct json_object *jp =
	    json_tokener_parse("[{\"op\":\"replace\",\"path\":\"/spec/replicas\",\"value\":3}]");
	struct {
		enum kd_k8s_patch_type type;
		const struct kd_k8s_resource *res;
		const char *sub;
		struct json_object *body;
		const char *ctype, *target;
	} cases[] = {
	    {KD_K8S_PATCH_MERGE, &kd_k8s_pods, "status", merge, "application/merge-patch+json",
	     "/api/v1/namespaces/ns/pods/p/status"},
	    {KD_K8S_PATCH_JSON, &kd_k8s_deployments, "scale", jp, "application/json-patch+json",
	     "/apis/apps/v1/namespaces/ns/deployments/p/scale"},
	    {KD_K8S_PATCH_STRATEGIC, &kd_k8s_pods, NULL, merge,
	     "application/strategic-merge-patch+json", "/api/v1/namespaces/ns/pods/p"},
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(cases); i++) {
		struct json_object *out = NULL;
		assert_int_equal(kd_k8s_patch(c, cases[i].res, "ns", "p", cases[i].sub,
		                              cases[i].type, cases[i].body, &out, NULL),
		                 0);
		json_object_put(out);
		struct kd_test_httpd_req r = last_req(srv);
		assert_string_equal(r.method, "PATCH");
		assert_string_equal(r.content_type, cases[i].ctype);
		assert_string_equal(r.target, cases[i].target);
		kd_autofree char *want = kd_json_dumps(cases[i].body);
		assert_string_equal(r.body, want);
		kd_test_httpd_req_fini(&r);
	}
	/* GET /scale through the generic request. */
	struct kd_k8s_request req = {.verb = KD_K8S_GET,
	                             .res = &kd_k8s_deployments,
	                             .ns = "ns",
	                             .name = "web",
	                             .subresource = "scale"};
	assert_int_equal(kd_k8s_do(c, &req, NULL, NULL), 0);
	struct kd_test_httpd_req r = last_req(srv);
	assert_string_equal(r.target, "/apis/apps/v1/namespaces/ns/deployments/web/scale");
	kd_test_httpd_req_fini(&r);
	kd_k8s_free(c);
	kd_test_httpd_stop(srv);
}

/* Answers with the status encoded in the object name: /pods/s409-AlreadyExists. */
static void status_handler(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req,
                           void *arg)
{
	(void)arg;
	const char *s = strrchr(req->path, '/');
	char post_name[80];
	const char *n = strstr(req->body, "\"name\":\"");
	if (!strcmp(req->method, "POST") && n && sscanf(n + 8, "%78[^\"]", post_name + 1) == 1) {
		post_name[0] = '/';
		s = post_name;
	}
	int code = 500;
	char reason[64] = "InternalError";
	if (s && sscanf(s, "/s%d-%63s", &code, reason) >= 1) {
		if (!strcmp(reason, "plain")) {
			kd_test_httpd_respond(conn, code, "text/plain", "upstream exploded\nmore");
			return;
		}
	}
	char *msg = kd_xasprintf("pods \\\"%s\\\" says %s", s ? s + 1 : "", reason);
	char *b = status_body(code, reason, msg);
	kd_test_httpd_respond(conn, code, "application/json", b);
	free(b);
	free(msg);
}

static void non_2xx_map_to_errno_reason_and_message(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(status_handler, NULL, NULL, NULL);
	struct kd_k8s *c = client_for(srv, NULL, NULL);
	struct {
		const char *name;
		int errnum;
		long status;
		const char *reason;
	} cases[] = {
	    {"s401-Unauthorized", EACCES, 401, "Unauthorized"},
	    {"s403-Forbidden", EPERM, 403, "Forbidden"},
	    {"s404-NotFound", ENOENT, 404, "NotFound"},
	    {"s409-AlreadyExists", EEXIST, 409, "AlreadyExists"},
	    {"s409-Conflict", EBUSY, 409, "Conflict"},
	    {"s410-Expired", ESTALE, 410, "Expired"},
	    {"s500-InternalError", EIO, 500, "InternalError"},
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(cases); i++) {
		struct kd_error *err = NULL;
		struct json_object *out = NULL;
		assert_int_equal(kd_k8s_get(c, &kd_k8s_pods, "default", cases[i].name, &out, &err),
		                 -cases[i].errnum);
		assert_null(out);
		assert_int_equal(err->errnum, cases[i].errnum);
		assert_int_equal(err->http_status, cases[i].status);
		assert_string_equal(err->reason, cases[i].reason);
		kd_autofree char *want =
		    kd_xasprintf("get pods default/%s: %ld %s: pods \"%s\" says %s", cases[i].name,
		                 cases[i].status, cases[i].reason, cases[i].name, cases[i].reason);
		assert_string_equal(err->msg, want);
		kd_error_free(err);
	}
	/* The create message format of the brief. */
	kd_autojson struct json_object *p = pod("default", "s409-AlreadyExists");
	struct kd_error *err = NULL;
	assert_int_equal(kd_k8s_create(c, &kd_k8s_pods, "default", p, NULL, &err), -EEXIST);
	assert_true(strncmp(err->msg, "create pods default/s409-AlreadyExists: 409 AlreadyExists: ",
	                    58) == 0);
	kd_error_free(err);
	/* A non-Status body shows its first line. */
	err = NULL;
	assert_int_equal(kd_k8s_get(c, &kd_k8s_pods, "default", "s502-plain", NULL, &err), -EIO);
	assert_string_equal(err->msg, "get pods default/s502-plain: HTTP 502: upstream exploded");
	assert_null(err->reason);
	kd_error_free(err);
	/* every answer counted by class: 6 + 1 (the create) 4xx, 2 5xx, nothing else */
	uint64_t by_class[KD_K8S_RESPONSE_CLASSES];
	kd_k8s_get_responses(c, by_class);
	assert_int_equal(by_class[4], 7);
	assert_int_equal(by_class[5], 2);
	assert_int_equal(by_class[0] + by_class[1] + by_class[2] + by_class[3], 0);
	kd_k8s_free(c);
	kd_test_httpd_stop(srv);
}

static void big_handler(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req,
                        void *arg)
{
	(void)arg;
	char *big = kd_xmalloc(5001);
	memset(big, ' ', 5000);
	big[0] = '{';
	big[4999] = '}';
	big[5000] = '\0';
	if (strstr(req->path, "chunked")) {
		kd_test_httpd_begin_chunked(conn, 200, "application/json");
		for (int i = 0; i < 5; i++)
			kd_test_httpd_chunk(conn, big + i * 1000, 1000);
		kd_test_httpd_end_chunked(conn);
	} else {
		kd_test_httpd_respond(conn, 200, "application/json", big);
	}
	free(big);
}

static void response_over_cap_fails_loudly(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(big_handler, NULL, NULL, NULL);
	struct kd_k8s_opts opts = {.max_response_bytes = 1000};
	struct kd_k8s *c = client_for(srv, NULL, &opts);
	const char *names[] = {"sized", "chunked"};
	for (size_t i = 0; i < 2; i++) {
		struct kd_error *err = NULL;
		assert_int_equal(kd_k8s_get(c, &kd_k8s_pods, "ns", names[i], NULL, &err),
		                 -EMSGSIZE);
		kd_autofree char *want =
		    kd_xasprintf("get pods ns/%s: response exceeds 1000 bytes", names[i]);
		assert_string_equal(err->msg, want);
		kd_error_free(err);
	}
	kd_k8s_free(c);
	/* Under a larger cap the same response is fine. */
	c = client_for(srv, NULL, NULL);
	assert_int_equal(kd_k8s_get(c, &kd_k8s_pods, "ns", "chunked", NULL, NULL), 0);
	kd_k8s_free(c);
	kd_test_httpd_stop(srv);
}

static void slow_handler(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req,
                         void *arg)
{
	(void)arg;
	(void)req;
	if (kd_test_httpd_sleep(conn, 3000))
		kd_test_httpd_respond(conn, 200, "application/json", "{}");
}

static void request_timeout_is_etimedout(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(slow_handler, NULL, NULL, NULL);
	struct kd_k8s_opts opts = {.timeout_ms = 200};
	struct kd_k8s *c = client_for(srv, NULL, &opts);
	struct kd_error *err = NULL;
	uint64_t t0 = kd_now_ns();
	assert_int_equal(kd_k8s_get(c, &kd_k8s_pods, "ns", "slow", NULL, &err), -ETIMEDOUT);
	assert_true(kd_now_ns() - t0 < 2500000000ull);
	assert_non_null(strstr(err->msg, "get pods ns/slow: http://127.0.0.1:"));
	kd_error_free(err);
	kd_k8s_free(c);
	kd_test_httpd_stop(srv);
}

static void connection_refused_names_server(void **state)
{
	(void)state;
	/* Grab a free port, then close it. */
	struct kd_test_httpd *srv = kd_test_httpd_start(echo_handler, NULL, NULL, NULL);
	kd_autofree char *url = kd_xstrdup(kd_test_httpd_url(srv));
	kd_test_httpd_stop(srv);
	struct kd_k8s_config *cfg = kd_k8s_config_new(url);
	struct kd_k8s *c = NULL;
	assert_int_equal(kd_k8s_new(cfg, NULL, NULL, &c, NULL), 0);
	struct kd_error *err = NULL;
	assert_int_equal(kd_k8s_get(c, &kd_k8s_nodes, NULL, "n1", NULL, &err), -ECONNREFUSED);
	assert_non_null(strstr(err->msg, "get nodes n1: "));
	assert_non_null(strstr(err->msg, url));
	kd_error_free(err);
	uint64_t by_class[KD_K8S_RESPONSE_CLASSES];
	kd_k8s_get_responses(c, by_class);
	assert_int_equal(by_class[0], 1); /* no HTTP status: counted apart */
	assert_int_equal(by_class[2] + by_class[4] + by_class[5], 0);
	kd_k8s_free(c);
	kd_k8s_config_free(cfg);
}

static void bad_json_body_is_ebadmsg(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(status_handler, NULL, NULL, NULL);
	struct kd_k8s *c = client_for(srv, NULL, NULL);
	struct kd_error *err = NULL;
	/* 200 with a text body. */
	assert_int_equal(kd_k8s_get(c, &kd_k8s_pods, "ns", "s200-plain", NULL, &err), -EBADMSG);
	assert_non_null(strstr(err->msg, "get pods ns/s200-plain: response: invalid JSON"));
	kd_error_free(err);
	kd_k8s_free(c);
	kd_test_httpd_stop(srv);
}

/* ------------------------------------------------------------------------------------------ */
/* TLS                                                                                         */

static char *g_tls_dir;

static int tls_setup(void **state)
{
	(void)state;
	g_tls_dir = kd_test_httpd_mkdtemp();
	return kd_test_httpd_tls_gen(g_tls_dir);
}

static int tls_teardown(void **state)
{
	(void)state;
	kd_test_httpd_rmrf(g_tls_dir);
	free(g_tls_dir);
	return 0;
}

static struct kd_test_httpd *tls_server(void)
{
	kd_autofree char *cert = kd_xasprintf("%s/server.pem", g_tls_dir);
	kd_autofree char *key = kd_xasprintf("%s/server.key", g_tls_dir);
	return kd_test_httpd_start(echo_handler, NULL, cert, key);
}

static void tls_untrusted_ca_fails_with_clear_message(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = tls_server();
	struct kd_k8s_config *cfg = kd_k8s_config_new(kd_test_httpd_url(srv));
	/* Trust the client certificate (not a CA) instead of the real CA. */
	cfg->ca_file = kd_xasprintf("%s/client.pem", g_tls_dir);
	struct kd_k8s *c = NULL;
	assert_int_equal(kd_k8s_new(cfg, NULL, NULL, &c, NULL), 0);
	struct kd_error *err = NULL;
	assert_int_equal(kd_k8s_get(c, &kd_k8s_pods, "ns", "x", NULL, &err), -EPROTO);
	kd_autofree char *want =
	    kd_xasprintf("get pods ns/x: TLS with %s failed: ", kd_test_httpd_url(srv));
	if (strncmp(err->msg, want, strlen(want)))
		fail_msg("unexpected: %s", err->msg);
	assert_non_null(strstr(err->msg, "certificate"));
	kd_error_free(err);
	kd_k8s_free(c);
	kd_k8s_config_free(cfg);
	kd_test_httpd_stop(srv);
}

static void tls_trusted_ca_file_blob_and_client_cert(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = tls_server();
	struct kd_k8s_config *cfg = kd_k8s_config_new(kd_test_httpd_url(srv));
	cfg->ca_file = kd_xasprintf("%s/ca.pem", g_tls_dir);
	cfg->cert_file = kd_xasprintf("%s/client.pem", g_tls_dir);
	cfg->key_file = kd_xasprintf("%s/client.key", g_tls_dir);
	struct kd_k8s *c = NULL;
	assert_int_equal(kd_k8s_new(cfg, NULL, NULL, &c, NULL), 0);
	struct kd_error *err = NULL;
	struct json_object *out = NULL;
	if (kd_k8s_get(c, &kd_k8s_pods, "ns", "x", &out, &err))
		fail_msg("%s", kd_error_msg(err));
	assert_string_equal(kd_json_get_string(out, "method"), "GET");
	json_object_put(out);
	kd_k8s_free(c);

	/* Inline PEM (certificate-authority-data, client-*-data) through curl blobs. */
	struct kd_k8s_config *cfg2 = kd_k8s_config_new(kd_test_httpd_url(srv));
	assert_int_equal(kd_k8s_config_from_kubeconfig(cfg->ca_file, NULL,
	                                               &(struct kd_k8s_config *){NULL}, NULL),
	                 -EINVAL); /* a PEM file is not a kubeconfig */
	FILE *f = fopen(cfg->ca_file, "r");
	assert_non_null(f);
	char pem[8192];
	size_t n = fread(pem, 1, sizeof(pem), f);
	fclose(f);
	cfg2->ca_data = kd_xstrndup(pem, n);
	cfg2->ca_len = n;
	assert_int_equal(kd_k8s_new(cfg2, NULL, NULL, &c, NULL), 0);
	err = NULL;
	if (kd_k8s_get(c, &kd_k8s_pods, "ns", "x", NULL, &err))
		fail_msg("%s", kd_error_msg(err));
	kd_k8s_free(c);
	/* http2 negotiates over ALPN and falls back to HTTP/1.1 with this server. */
	struct kd_k8s_opts h2 = {.http2 = true};
	assert_int_equal(kd_k8s_new(cfg2, NULL, &h2, &c, NULL), 0);
	assert_int_equal(kd_k8s_get(c, &kd_k8s_pods, "ns", "x", NULL, NULL), 0);
	kd_k8s_free(c);
	/* insecure-skip-tls-verify ignores the CA. */
	struct kd_k8s_config *cfg3 = kd_k8s_config_new(kd_test_httpd_url(srv));
	cfg3->insecure_skip_tls_verify = true;
	assert_int_equal(kd_k8s_new(cfg3, NULL, NULL, &c, NULL), 0);
	assert_int_equal(kd_k8s_get(c, &kd_k8s_pods, "ns", "x", NULL, NULL), 0);
	kd_k8s_free(c);
	kd_k8s_config_free(cfg);
	kd_k8s_config_free(cfg2);
	kd_k8s_config_free(cfg3);
	kd_test_httpd_stop(srv);
}

/* ------------------------------------------------------------------------------------------ */
/* async                                                                                       */

struct async_ctx {
	int done, ok, failed;
	int last_errnum;
	char *last_reason;
	int in_submit;
	struct kd_k8s *c;
	int resubmit; /* callbacks submit this many follow-ups */
	struct json_object *last_body;
};

static void async_cb(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	struct async_ctx *ctx = arg;
	assert_int_equal(ctx->in_submit, 0); /* never from inside kd_k8s_submit */
	ctx->done++;
	if (err) {
		ctx->failed++;
		ctx->last_errnum = err->errnum;
		free(ctx->last_reason);
		ctx->last_reason = err->reason ? kd_xstrdup(err->reason) : NULL;
	} else {
		ctx->ok++;
		assert_non_null(resp);
	}
	if (resp && resp->body) {
		if (ctx->last_body)
			json_object_put(ctx->last_body);
		ctx->last_body = resp->body; /* steal */
		resp->body = NULL;
	}
	if (ctx->resubmit > 0) {
		ctx->resubmit--;
		struct kd_k8s_request r = {
		    .verb = KD_K8S_GET, .res = &kd_k8s_pods, .ns = "ns", .name = "again"};
		assert_int_equal(kd_k8s_submit(ctx->c, &r, async_cb, ctx, NULL), 0);
	}
}

static void run_until(struct kd_loop *loop, const int *counter, int target, unsigned max_ms)
{
	uint64_t deadline = kd_now_ns() + (uint64_t)max_ms * 1000000ull;
	while (*counter < target && kd_now_ns() < deadline)
		kd_loop_run_once(loop, 50);
}

static void async_creates_scale_on_a_bounded_pool(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(echo_handler, NULL, NULL, NULL);
	struct kd_loop *loop = kd_loop_new();
	struct kd_k8s_opts opts = {.max_connections = 8};
	struct kd_k8s *c = client_for(srv, loop, &opts);
	struct async_ctx ctx = {.c = c};
	enum { N = 300 };
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof(name), "pod-%d", i);
		kd_autojson struct json_object *p = pod("ns", name);
		struct kd_k8s_request r = {
		    .verb = KD_K8S_CREATE, .res = &kd_k8s_pods, .ns = "ns", .body = p};
		ctx.in_submit = 1;
		assert_int_equal(kd_k8s_submit(c, &r, async_cb, &ctx, NULL), 0);
		ctx.in_submit = 0;
	}
	struct kd_k8s_stats st;
	kd_k8s_get_stats(c, &st);
	assert_int_equal(st.pending, N);
	run_until(loop, &ctx.done, N, 15000);
	assert_int_equal(ctx.done, N);
	assert_int_equal(ctx.ok, N);
	assert_true(kd_test_httpd_count(srv) == N);
	assert_true(kd_test_httpd_peak_connections(srv) <= 8);
	assert_true(kd_test_httpd_connections(srv) <= 8); /* kept alive and reused */
	kd_k8s_get_stats(c, &st);
	assert_int_equal(st.pending, 0);
	json_object_put(ctx.last_body);
	kd_k8s_free(c);
	kd_loop_free(loop);
	kd_test_httpd_stop(srv);
}

static void slow_version_handler(struct kd_test_httpd_conn *conn,
                                 const struct kd_test_httpd_req *req, void *arg)
{
	int *versions = arg;
	if (strcmp(req->path, "/version") == 0)
		__atomic_add_fetch(versions, 1, __ATOMIC_RELAXED);
	kd_test_httpd_sleep(conn, 100); /* the warm-up calls overlap: one connection each */
	kd_test_httpd_respond(conn, 200, "application/json", "{\"major\":\"1\"}");
}

static void warm_opens_the_pool_before_the_first_calls(void **state)
{
	(void)state;
	int versions = 0;
	struct kd_test_httpd *srv =
	    kd_test_httpd_start(slow_version_handler, &versions, NULL, NULL);
	struct kd_loop *loop = kd_loop_new();
	struct kd_k8s_opts opts = {.max_connections = 3};
	struct kd_k8s *c = client_for(srv, loop, &opts);
	assert_int_equal(kd_k8s_warm(c, 5, NULL), 0); /* capped at the pool size */
	uint64_t deadline = kd_now_ns() + 5000000000ull;
	while (__atomic_load_n(&versions, __ATOMIC_RELAXED) < 3 && kd_now_ns() < deadline)
		kd_loop_run_once(loop, 50);
	struct kd_k8s_stats st;
	for (int i = 0; i < 100; i++) { /* the warm-up calls end */
		kd_k8s_get_stats(c, &st);
		if (st.pending == 0)
			break;
		kd_loop_run_once(loop, 50);
	}
	assert_int_equal(st.pending, 0);
	assert_int_equal(__atomic_load_n(&versions, __ATOMIC_RELAXED), 3);
	assert_int_equal(kd_test_httpd_connections(srv), 3);
	/* the calls that follow find those connections open */
	struct async_ctx ctx = {.c = c};
	for (int i = 0; i < 3; i++) {
		struct kd_k8s_request r = {
		    .verb = KD_K8S_GET, .res = &kd_k8s_pods, .ns = "ns", .name = "p"};
		assert_int_equal(kd_k8s_submit(c, &r, async_cb, &ctx, NULL), 0);
	}
	run_until(loop, &ctx.done, 3, 5000);
	assert_int_equal(ctx.ok, 3);
	assert_int_equal(kd_test_httpd_connections(srv), 3);
	json_object_put(ctx.last_body);
	kd_k8s_free(c);
	/* a client without a loop cannot warm */
	struct kd_k8s *sync_c = client_for(srv, NULL, NULL);
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_k8s_warm(sync_c, 1, &err), -EINVAL);
	assert_non_null(strstr(kd_error_msg(err), "without loop"));
	kd_k8s_free(sync_c);
	kd_loop_free(loop);
	kd_test_httpd_stop(srv);
}

static void async_errors_list_pagination_and_resubmit(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(status_handler, NULL, NULL, NULL);
	struct kd_loop *loop = kd_loop_new();
	struct kd_k8s *c = client_for(srv, loop, NULL);
	struct async_ctx ctx = {.c = c};
	kd_autojson struct json_object *p = pod("ns", "s409-AlreadyExists");
	struct kd_k8s_request r = {.verb = KD_K8S_CREATE, .res = &kd_k8s_pods, .body = p};
	assert_int_equal(kd_k8s_submit(c, &r, async_cb, &ctx, NULL), 0);
	run_until(loop, &ctx.done, 1, 5000);
	assert_int_equal(ctx.failed, 1);
	assert_int_equal(ctx.last_errnum, EEXIST);
	assert_string_equal(ctx.last_reason, "AlreadyExists");
	/* The Status body is available to the callback. */
	assert_string_equal(kd_json_get_string(ctx.last_body, "kind"), "Status");
	/* A callback may submit follow-up calls. */
	ctx.resubmit = 2;
	struct kd_k8s_request g = {
	    .verb = KD_K8S_GET, .res = &kd_k8s_pods, .ns = "ns", .name = "s404-NotFound"};
	assert_int_equal(kd_k8s_submit(c, &g, async_cb, &ctx, NULL), 0);
	run_until(loop, &ctx.done, 4, 5000);
	assert_int_equal(ctx.done, 4);
	kd_k8s_free(c);
	kd_test_httpd_stop(srv);

	/* LIST pagination on the loop. */
	srv = kd_test_httpd_start(list_handler, NULL, NULL, NULL);
	c = client_for(srv, loop, NULL);
	struct async_ctx lc = {.c = c};
	struct kd_k8s_request l = {.verb = KD_K8S_LIST,
	                           .res = &kd_k8s_pods,
	                           .ns = "ns",
	                           .label_selector = "app=web,tier!=db",
	                           .field_selector = "spec.nodeName=n1"};
	assert_int_equal(kd_k8s_submit(c, &l, async_cb, &lc, NULL), 0);
	run_until(loop, &lc.done, 1, 5000);
	assert_int_equal(lc.ok, 1);
	check_merged_list(lc.last_body);
	check_list_requests(srv);
	json_object_put(lc.last_body);
	json_object_put(ctx.last_body);
	free(ctx.last_reason);
	kd_k8s_free(c);
	kd_loop_free(loop);
	kd_test_httpd_stop(srv);
}

static void free_cancels_pending_calls(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(slow_handler, NULL, NULL, NULL);
	struct kd_loop *loop = kd_loop_new();
	struct kd_k8s *c = client_for(srv, loop, NULL);
	struct async_ctx ctx = {.c = c};
	for (int i = 0; i < 5; i++) {
		struct kd_k8s_request g = {
		    .verb = KD_K8S_GET, .res = &kd_k8s_pods, .ns = "ns", .name = "slow"};
		assert_int_equal(kd_k8s_submit(c, &g, async_cb, &ctx, NULL), 0);
	}
	/* Let some requests reach the server, then free. */
	for (int i = 0; i < 10; i++)
		kd_loop_run_once(loop, 10);
	assert_int_equal(ctx.done, 0);
	kd_k8s_free(c);
	assert_int_equal(ctx.done, 5);
	assert_int_equal(ctx.failed, 5);
	assert_int_equal(ctx.last_errnum, ECANCELED);
	free(ctx.last_reason);
	kd_loop_free(loop);
	kd_test_httpd_stop(srv);
}

static void async_requires_loop(void **state)
{
	(void)state;
	struct kd_k8s_config *cfg = kd_k8s_config_new("http://127.0.0.1:1");
	struct kd_k8s *c = NULL;
	assert_int_equal(kd_k8s_new(cfg, NULL, NULL, &c, NULL), 0);
	struct kd_error *err = NULL;
	struct kd_k8s_request g = {.verb = KD_K8S_GET, .res = &kd_k8s_pods, .ns = "a", .name = "b"};
	assert_int_equal(kd_k8s_submit(c, &g, async_cb, NULL, &err), -EINVAL);
	kd_error_free(err);
	kd_k8s_free(c);
	kd_k8s_config_free(cfg);
	/* A bad config is refused. */
	cfg = kd_k8s_config_new("not-a-url");
	err = NULL;
	assert_int_equal(kd_k8s_new(cfg, NULL, NULL, &c, &err), -EINVAL);
	kd_error_free(err);
	kd_k8s_config_free(cfg);
}

static void qps_limiter_spaces_requests(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(echo_handler, NULL, NULL, NULL);
	struct kd_k8s_opts opts = {.qps = 20, .burst = 1};
	struct kd_loop *loop = kd_loop_new();
	struct kd_k8s *c = client_for(srv, loop, &opts);
	uint64_t t0 = kd_now_ns();
	for (int i = 0; i < 4; i++)
		assert_int_equal(kd_k8s_get(c, &kd_k8s_pods, "ns", "q", NULL, NULL), 0);
	/* burst 1 at 20 qps: requests 2..4 each wait ~50 ms. */
	assert_true(kd_now_ns() - t0 >= 140000000ull);
	struct kd_k8s_stats st;
	kd_k8s_get_stats(c, &st);
	assert_true(st.throttled >= 3);
	/* Async calls are throttled too, and still all complete. */
	struct async_ctx ctx = {.c = c};
	for (int i = 0; i < 4; i++) {
		struct kd_k8s_request g = {
		    .verb = KD_K8S_GET, .res = &kd_k8s_pods, .ns = "ns", .name = "q"};
		assert_int_equal(kd_k8s_submit(c, &g, async_cb, &ctx, NULL), 0);
	}
	t0 = kd_now_ns();
	run_until(loop, &ctx.done, 4, 5000);
	assert_int_equal(ctx.ok, 4);
	assert_true(kd_now_ns() - t0 >= 140000000ull);
	json_object_put(ctx.last_body);
	kd_k8s_free(c);
	kd_loop_free(loop);
	kd_test_httpd_stop(srv);
}

/* ------------------------------------------------------------------------------------------ */
/* streams                                                                                     */

static void stream_handler(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req,
                           void *arg)
{
	(void)arg;
	if (strstr(req->path, "forbidden")) {
		char *b = status_body(403, "Forbidden", "nope");
		kd_test_httpd_respond(conn, 403, "application/json", b);
		free(b);
		return;
	}
	kd_test_httpd_begin_chunked(conn, 200, "application/json");
	kd_test_httpd_chunk(conn, "hello", 5);
	if (strstr(req->path, "short")) {
		kd_test_httpd_chunk(conn, " world", 6);
		kd_test_httpd_end_chunked(conn);
		return;
	}
	for (int i = 0; i < 500 && kd_test_httpd_sleep(conn, 10); i++)
		if (kd_test_httpd_chunk(conn, ".", 1) < 0)
			break;
}

struct stream_ctx {
	struct kd_k8s_stream *s;
	int data_calls, done_calls;
	size_t bytes;
	int mode; /* 0 collect, 1 close on first data, 2 abort on first data */
	int done_errnum;
	long done_status;
};

static int sdata(const char *data, size_t len, void *arg)
{
	(void)data;
	struct stream_ctx *x = arg;
	x->data_calls++;
	x->bytes += len;
	if (x->mode == 1) {
		kd_k8s_stream_close(x->s);
		return 0;
	}
	return x->mode == 2 ? 1 : 0;
}

static void sdone(struct kd_error *err, void *arg)
{
	struct stream_ctx *x = arg;
	x->done_calls++;
	x->done_errnum = err ? err->errnum : 0;
	x->done_status = err ? err->http_status : 0;
}

static void streams_deliver_close_abort_and_fail(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(stream_handler, NULL, NULL, NULL);
	struct kd_loop *loop = kd_loop_new();
	struct kd_k8s *c = client_for(srv, loop, NULL);
	/* A complete short stream: all bytes, clean end. */
	struct stream_ctx a = {0};
	assert_int_equal(kd_k8s_stream_open(c, "/short", 0, sdata, sdone, &a, &a.s, NULL), 0);
	run_until(loop, &a.done_calls, 1, 5000);
	assert_int_equal(a.bytes, 11);
	assert_int_equal(a.done_errnum, 0);
	/* Closed from inside on_data: no further callbacks, ever. */
	struct stream_ctx b = {.mode = 1};
	assert_int_equal(kd_k8s_stream_open(c, "/long", 0, sdata, sdone, &b, &b.s, NULL), 0);
	run_until(loop, &b.data_calls, 1, 5000);
	for (int i = 0; i < 10; i++)
		kd_loop_run_once(loop, 10);
	assert_int_equal(b.data_calls, 1);
	assert_int_equal(b.done_calls, 0);
	/* Aborted by on_data's return value: on_done with ECANCELED. */
	struct stream_ctx d = {.mode = 2};
	assert_int_equal(kd_k8s_stream_open(c, "/long", 0, sdata, sdone, &d, &d.s, NULL), 0);
	run_until(loop, &d.done_calls, 1, 5000);
	assert_int_equal(d.done_errnum, ECANCELED);
	/* Non-2xx: Status decoded into the error, no data delivered. */
	struct stream_ctx e = {0};
	assert_int_equal(kd_k8s_stream_open(c, "/forbidden", 0, sdata, sdone, &e, &e.s, NULL), 0);
	run_until(loop, &e.done_calls, 1, 5000);
	assert_int_equal(e.data_calls, 0);
	assert_int_equal(e.done_errnum, EPERM);
	assert_int_equal(e.done_status, 403);
	/* Closed before it started: nothing happens. */
	struct stream_ctx f = {0};
	assert_int_equal(kd_k8s_stream_open(c, "/long", 0, sdata, sdone, &f, &f.s, NULL), 0);
	kd_k8s_stream_close(f.s);
	/* Left open at kd_k8s_free: freed without callbacks. */
	struct stream_ctx g = {0};
	assert_int_equal(kd_k8s_stream_open(c, "/long", 0, sdata, sdone, &g, &g.s, NULL), 0);
	run_until(loop, &g.data_calls, 1, 5000);
	for (int i = 0; i < 5; i++)
		kd_loop_run_once(loop, 10);
	assert_int_equal(f.data_calls + f.done_calls, 0);
	kd_k8s_free(c);
	assert_int_equal(g.done_calls, 0);
	kd_loop_free(loop);
	kd_test_httpd_stop(srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(path_builds_core_group_and_subresources),
	    cmocka_unit_test(errno_mapping_distinguishes_conflicts),
	    cmocka_unit_test(in_cluster_config_rereads_rotated_token),
	    cmocka_unit_test(get_sends_path_auth_and_user_agent_on_one_connection),
	    cmocka_unit_test(list_follows_continue_and_encodes_selectors),
	    cmocka_unit_test(create_update_delete_use_right_verbs_paths_and_bodies),
	    cmocka_unit_test(patch_content_types_and_subresources),
	    cmocka_unit_test(non_2xx_map_to_errno_reason_and_message),
	    cmocka_unit_test(response_over_cap_fails_loudly),
	    cmocka_unit_test(request_timeout_is_etimedout),
	    cmocka_unit_test(connection_refused_names_server),
	    cmocka_unit_test(bad_json_body_is_ebadmsg),
	    cmocka_unit_test(async_creates_scale_on_a_bounded_pool),
	    cmocka_unit_test(async_errors_list_pagination_and_resubmit),
	    cmocka_unit_test(free_cancels_pending_calls),
	    cmocka_unit_test(async_requires_loop),
	    cmocka_unit_test(warm_opens_the_pool_before_the_first_calls),
	    cmocka_unit_test(qps_limiter_spaces_requests),
	    cmocka_unit_test(streams_deliver_close_abort_and_fail),
	    cmocka_unit_test(tls_untrusted_ca_fails_with_clear_message),
	    cmocka_unit_test(tls_trusted_ca_file_blob_and_client_cert),
	};
	/* The group setup generates the TLS certificates once (openssl CLI). */
	return cmocka_run_group_tests(tests, tls_setup, tls_teardown);
}
