/* Unit tests for kd_wbk8s: the write-back writer over the real kd_k8s client against the loopback
 * test HTTP server (kd_test_httpd). The server answers according to the object name in the path
 * or body ("exists" -> 409 AlreadyExists, "conflict" -> 409 Conflict, "gone" -> 404, "boom" ->
 * 500, "bad" -> 422), so each case checks both the request the adapter made (verb, path, content
 * type, body) and the result it reported to the cache. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "kd/json.h"
#include "kd/k8s.h"
#include "kd/loop.h"
#include "kd/wbcache.h"
#include "kd/wbk8s.h"
#include "kd_test_httpd.h"

static void respond_status(struct kd_test_httpd_conn *conn, int code, const char *reason)
{
	char *b = kd_xasprintf("{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
	                       "\"message\":\"m\",\"reason\":\"%s\",\"code\":%d}",
	                       reason, code);
	kd_test_httpd_respond(conn, code, "application/json", b);
	free(b);
}

static void handler(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req, void *arg)
{
	(void)arg;
	const char *hay = strcmp(req->method, "POST") == 0 ? req->body : req->path;
	if (strstr(hay, "exists"))
		respond_status(conn, 409, "AlreadyExists");
	else if (strstr(hay, "conflict") ||
	         (strcmp(req->method, "DELETE") == 0 && strstr(req->body, "\"uid\":\"old-uid\"")))
		respond_status(conn, 409, "Conflict");
	else if (strstr(hay, "gone"))
		respond_status(conn, 404, "NotFound");
	else if (strstr(hay, "boom"))
		respond_status(conn, 500, "InternalError");
	else if (strstr(hay, "bad"))
		respond_status(conn, 422, "Invalid");
	else if (strcmp(req->method, "GET") == 0)
		kd_test_httpd_respond(
		    conn, 200, "application/json",
		    "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"namespace\":"
		    "\"demo\",\"resourceVersion\":\"77\"}}");
	else
		kd_test_httpd_respond(conn, strcmp(req->method, "POST") == 0 ? 201 : 200,
		                      "application/json", "{\"kind\":\"X\",\"metadata\":{}}");
}

struct fx {
	struct kd_test_httpd *srv;
	struct kd_loop *loop;
	struct kd_k8s *c;
	struct kd_wbk8s *a;
	struct kd_wb_writer w;
	json_object *grace0;
};

static const struct kd_k8s_resource *pa_res(void)
{
	return &kd_k8s_podautoscalers;
}

static int setup(void **state)
{
	struct fx *f = kd_xcalloc(1, sizeof(*f));
	f->srv = kd_test_httpd_start(handler, NULL, NULL, NULL);
	f->loop = kd_loop_new();
	struct kd_k8s_config *cfg = kd_k8s_config_new(kd_test_httpd_url(f->srv));
	assert_int_equal(kd_k8s_new(cfg, f->loop, NULL, &f->c, NULL), 0);
	kd_k8s_config_free(cfg);
	f->grace0 = json_tokener_parse("{\"gracePeriodSeconds\":0}");
	struct kd_wbk8s_route routes[] = {
	    {.prefix = "pa:",
	     .res = pa_res(),
	     .create = KD_WBK8S_CREATE_PATCH,
	     .update = KD_WBK8S_UPDATE_MERGE,
	     .subresource = "status"},
	    {.prefix = "endpoints:",
	     .res = &kd_k8s_endpoints,
	     .create = KD_WBK8S_CREATE_PUT,
	     .update = KD_WBK8S_UPDATE_PUT},
	    {.prefix = "node:", .res = &kd_k8s_nodes, .delete_options = f->grace0},
	    {.prefix = "",
	     .res = &kd_k8s_pods,
	     .create = KD_WBK8S_CREATE_POST,
	     .update = KD_WBK8S_UPDATE_PUT,
	     .update_rv = true,
	     .uid_precondition = true},
	};
	f->a = kd_wbk8s_new(f->c, routes, KD_ARRAY_SIZE(routes), NULL);
	assert_non_null(f->a);
	kd_wbk8s_writer(f->a, &f->w);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	kd_wbk8s_free(f->a);
	kd_k8s_free(f->c);
	kd_loop_free(f->loop);
	kd_test_httpd_stop(f->srv);
	json_object_put(f->grace0);
	free(f);
	return 0;
}

struct result {
	bool done;
	enum kd_wb_result res;
	long http;
	json_object *obj;
};

static void on_done(void *arg, enum kd_wb_result res, const struct kd_error *err)
{
	struct result *r = arg;
	r->done = true;
	r->res = res;
	r->http = err ? err->http_status : 200;
}

static void on_reread(void *arg, enum kd_wb_result res, json_object *obj,
                      const struct kd_error *err)
{
	struct result *r = arg;
	r->done = true;
	r->res = res;
	r->http = err ? err->http_status : 200;
	r->obj = obj ? json_object_get(obj) : NULL;
}

static void wait_done(struct fx *f, struct result *r)
{
	for (int i = 0; i < 500 && !r->done; i++)
		kd_loop_run_once(f->loop, 20);
	assert_true(r->done);
}

static json_object *obj_named(const char *name, const char *uid)
{
	char *s = kd_xasprintf("{\"metadata\":{\"name\":\"%s\",\"namespace\":\"demo\","
	                       "\"resourceVersion\":\"5\"%s%s%s},\"spec\":{}}",
	                       name, uid ? ",\"uid\":\"" : "", uid ? uid : "", uid ? "\"" : "");
	json_object *o = json_tokener_parse(s);
	free(s);
	return o;
}

/* Issues one write and returns the result and the request the server saw. */
static struct result do_write(struct fx *f, const char *key, enum kd_wb_op op, json_object *obj,
                              json_object *base, struct kd_test_httpd_req *req)
{
	struct result r = {0};
	size_t before = kd_test_httpd_count(f->srv);
	assert_int_equal(f->w.write(f->w.ctx, key, op, obj, base, on_done, &r), 0);
	wait_done(f, &r);
	assert_int_equal(kd_test_httpd_count(f->srv), before + 1);
	assert_true(kd_test_httpd_get(f->srv, before, req));
	return r;
}

static void create_posts_and_classifies(void **state)
{
	struct fx *f = *state;
	struct kd_test_httpd_req req;
	kd_autojson json_object *p = obj_named("p1", "u1");
	struct result r = do_write(f, "demo/p1", KD_WB_OP_CREATE, p, NULL, &req);
	assert_int_equal(r.res, KD_WB_OK);
	assert_string_equal(req.method, "POST");
	assert_string_equal(req.path, "/api/v1/namespaces/demo/pods");
	kd_autojson json_object *body = json_tokener_parse(req.body);
	assert_string_equal(kd_json_get_string(body, "metadata.name"), "p1");
	assert_null(kd_json_get(body, "metadata.resourceVersion")); /* server-owned */
	assert_null(kd_json_get(body, "metadata.uid"));
	assert_non_null(kd_json_get(p, "metadata.resourceVersion")); /* input untouched */
	kd_test_httpd_req_fini(&req);

	const struct {
		const char *name;
		enum kd_wb_result res;
	} cases[] = {{"exists", KD_WB_ALREADY_EXISTS},
	             {"conflict", KD_WB_CONFLICT},
	             {"boom", KD_WB_RETRY},
	             {"bad", KD_WB_PERMANENT}};
	for (size_t i = 0; i < KD_ARRAY_SIZE(cases); i++) {
		kd_autojson json_object *o = obj_named(cases[i].name, NULL);
		kd_autofree char *key = kd_xasprintf("demo/%s", cases[i].name);
		r = do_write(f, key, KD_WB_OP_CREATE, o, NULL, &req);
		assert_int_equal(r.res, cases[i].res);
		kd_test_httpd_req_fini(&req);
	}
	struct kd_wbk8s_stats st;
	kd_wbk8s_get_stats(f->a, &st);
	assert_int_equal(st.posts, 5);
	assert_int_equal(st.ok, 1);
	assert_int_equal(st.failed, 4);
}

static void update_put_carries_base_rv(void **state)
{
	struct fx *f = *state;
	struct kd_test_httpd_req req;
	kd_autojson json_object *p = obj_named("p1", "u1");
	kd_autojson json_object *base = obj_named("p1", "u1");
	json_object_object_add(kd_json_get_object(base, "metadata"), "resourceVersion",
	                       json_object_new_string("42"));
	struct result r = do_write(f, "demo/p1", KD_WB_OP_UPDATE, p, base, &req);
	assert_int_equal(r.res, KD_WB_OK);
	assert_string_equal(req.method, "PUT");
	assert_string_equal(req.path, "/api/v1/namespaces/demo/pods/p1");
	kd_autojson json_object *body = json_tokener_parse(req.body);
	assert_string_equal(kd_json_get_string(body, "metadata.resourceVersion"), "42");
	kd_test_httpd_req_fini(&req);
	/* endpoints: create is an unconditional PUT to the object */
	r = do_write(f, "endpoints:demo/rev1", KD_WB_OP_CREATE, p, NULL, &req);
	assert_int_equal(r.res, KD_WB_OK);
	assert_string_equal(req.method, "PUT");
	assert_string_equal(req.path, "/api/v1/namespaces/demo/endpoints/rev1");
	kd_autojson json_object *b2 = json_tokener_parse(req.body);
	assert_null(kd_json_get(b2, "metadata.resourceVersion"));
	kd_test_httpd_req_fini(&req);
}

static void status_patch_goes_to_subresource(void **state)
{
	struct fx *f = *state;
	struct kd_test_httpd_req req;
	kd_autojson json_object *st =
	    json_tokener_parse("{\"status\":{\"serviceName\":\"rev1\",\"desiredScale\":3}}");
	struct result r = do_write(f, "pa:demo/rev1", KD_WB_OP_CREATE, st, NULL, &req);
	assert_int_equal(r.res, KD_WB_OK);
	assert_string_equal(req.method, "PATCH");
	assert_string_equal(
	    req.path,
	    "/apis/autoscaling.internal.knative.dev/v1alpha1/namespaces/demo/podautoscalers/rev1/"
	    "status");
	assert_string_equal(req.content_type, "application/merge-patch+json");
	kd_autojson json_object *body = json_tokener_parse(req.body);
	assert_string_equal(kd_json_get_string(body, "status.serviceName"), "rev1");
	kd_test_httpd_req_fini(&req);
	r = do_write(f, "pa:demo/gone", KD_WB_OP_UPDATE, st, NULL, &req);
	assert_int_equal(r.res, KD_WB_NOT_FOUND);
	assert_string_equal(req.method, "PATCH");
	kd_test_httpd_req_fini(&req);
}

static void delete_uses_options_and_uid_precondition(void **state)
{
	struct fx *f = *state;
	struct kd_test_httpd_req req;
	kd_autojson json_object *p = obj_named("p1", "u1");
	struct result r = do_write(f, "demo/p1", KD_WB_OP_DELETE, p, NULL, &req);
	assert_int_equal(r.res, KD_WB_OK);
	assert_string_equal(req.method, "DELETE");
	assert_string_equal(req.path, "/api/v1/namespaces/demo/pods/p1");
	kd_autojson json_object *body = json_tokener_parse(req.body);
	assert_string_equal(kd_json_get_string(body, "preconditions.uid"), "u1");
	assert_null(kd_json_get(body, "gracePeriodSeconds")); /* graceful by default */
	kd_test_httpd_req_fini(&req);
	/* the uid precondition fails: the object we meant is gone */
	kd_autojson json_object *old = obj_named("p2", "old-uid");
	r = do_write(f, "demo/p2", KD_WB_OP_DELETE, old, NULL, &req);
	assert_int_equal(r.res, KD_WB_NOT_FOUND);
	assert_int_equal(r.http, 409);
	kd_test_httpd_req_fini(&req);
	r = do_write(f, "demo/gone", KD_WB_OP_DELETE, p, NULL, &req);
	assert_int_equal(r.res, KD_WB_NOT_FOUND);
	kd_test_httpd_req_fini(&req);
	/* cluster-scoped route with delete options, no uid precondition */
	r = do_write(f, "node:n1", KD_WB_OP_DELETE, p, NULL, &req);
	assert_int_equal(r.res, KD_WB_OK);
	assert_string_equal(req.path, "/api/v1/nodes/n1");
	kd_autojson json_object *b2 = json_tokener_parse(req.body);
	int64_t g = -1;
	assert_int_equal(kd_json_get_int64(b2, "gracePeriodSeconds", &g), 0);
	assert_int_equal(g, 0);
	assert_null(kd_json_get(b2, "preconditions"));
	kd_test_httpd_req_fini(&req);
}

static void reread_gets_the_object(void **state)
{
	struct fx *f = *state;
	struct result r = {0};
	assert_int_equal(f->w.reread(f->w.ctx, "demo/p1", on_reread, &r), 0);
	wait_done(f, &r);
	assert_int_equal(r.res, KD_WB_OK);
	assert_string_equal(kd_json_get_string(r.obj, "metadata.resourceVersion"), "77");
	json_object_put(r.obj);
	struct result r2 = {0};
	assert_int_equal(f->w.reread(f->w.ctx, "pa:demo/gone", on_reread, &r2), 0);
	wait_done(f, &r2);
	assert_int_equal(r2.res, KD_WB_NOT_FOUND);
	assert_null(r2.obj);
}

static void bad_keys_and_routes_are_refused(void **state)
{
	struct fx *f = *state;
	struct result r = {0};
	kd_autojson json_object *p = obj_named("p1", NULL);
	assert_int_equal(
	    f->w.write(f->w.ctx, "no-namespace", KD_WB_OP_CREATE, p, NULL, on_done, &r), -EINVAL);
	assert_int_equal(f->w.write(f->w.ctx, "node:a/b", KD_WB_OP_CREATE, p, NULL, on_done, &r),
	                 -EINVAL);
	assert_false(r.done);
	size_t ri = 9;
	char *ns = NULL, *name = NULL;
	assert_int_equal(kd_wbk8s_parse_key(f->a, "endpoints:demo/x", &ri, &ns, &name), 0);
	assert_int_equal(ri, 1);
	assert_string_equal(ns, "demo");
	assert_string_equal(name, "x");
	free(ns);
	free(name);
	struct kd_wbk8s_route dup[] = {{.prefix = "a:", .res = &kd_k8s_pods},
	                               {.prefix = "a:", .res = &kd_k8s_pods}};
	kd_autoerr struct kd_error *err = NULL;
	assert_null(kd_wbk8s_new(f->c, dup, 2, &err));
	assert_non_null(strstr(kd_error_msg(err), "prefix"));
}

static void refused_connection_is_retry(void **state)
{
	(void)state;
	/* a server that is gone: port of a stopped test server */
	struct kd_test_httpd *srv = kd_test_httpd_start(handler, NULL, NULL, NULL);
	struct kd_k8s_config *cfg = kd_k8s_config_new(kd_test_httpd_url(srv));
	kd_test_httpd_stop(srv);
	struct kd_loop *loop = kd_loop_new();
	struct kd_k8s *c = NULL;
	assert_int_equal(kd_k8s_new(cfg, loop, NULL, &c, NULL), 0);
	kd_k8s_config_free(cfg);
	struct kd_wbk8s_route rt = {.res = &kd_k8s_pods};
	struct kd_wbk8s *a = kd_wbk8s_new(c, &rt, 1, NULL);
	struct kd_wb_writer w;
	kd_wbk8s_writer(a, &w);
	struct result r = {0};
	kd_autojson json_object *p = obj_named("p1", NULL);
	assert_int_equal(w.write(w.ctx, "demo/p1", KD_WB_OP_CREATE, p, NULL, on_done, &r), 0);
	for (int i = 0; i < 500 && !r.done; i++)
		kd_loop_run_once(loop, 20);
	assert_true(r.done);
	assert_int_equal(r.res, KD_WB_RETRY);
	/* a write in flight when the adapter is freed still completes (with the client) */
	struct result r2 = {0};
	assert_int_equal(w.write(w.ctx, "demo/p2", KD_WB_OP_CREATE, p, NULL, on_done, &r2), 0);
	kd_wbk8s_free(a);
	kd_k8s_free(c);
	assert_true(r2.done);
	assert_int_equal(r2.res, KD_WB_RETRY); /* ECANCELED: transport */
	kd_loop_free(loop);
}

/* The cache and the adapter together: puts become POSTs, cancels DELETEs. */
static void drives_a_real_cache(void **state)
{
	struct fx *f = *state;
	struct kd_wb_config cfg = KD_WB_CONFIG_DEFAULT;
	cfg.batch_period_ms = 1;
	struct kd_wb *wb = kd_wb_new(f->loop, &cfg, &f->w, NULL, NULL);
	assert_non_null(wb);
	size_t before = kd_test_httpd_count(f->srv);
	for (int i = 0; i < 20; i++) {
		kd_autofree char *key = kd_xasprintf("demo/c%d", i);
		kd_autofree char *name = kd_xasprintf("c%d", i);
		kd_autojson json_object *o = obj_named(name, NULL);
		assert_int_equal(kd_wb_put(wb, key, o), 0);
	}
	struct kd_wb_counters c;
	for (int i = 0; i < 500; i++) {
		kd_loop_run_once(f->loop, 10);
		kd_wb_get_counters(wb, &c);
		if (c.writes_ok == 20)
			break;
	}
	assert_int_equal(c.writes_ok, 20);
	assert_int_equal(c.persisting, 20);
	assert_int_equal(kd_test_httpd_count(f->srv), before + 20);
	assert_int_equal(kd_wb_cancel(wb, "demo/c3"), 0);
	for (int i = 0; i < 500; i++) {
		kd_loop_run_once(f->loop, 10);
		kd_wb_get_counters(wb, &c);
		if (c.deleted == 1)
			break;
	}
	assert_int_equal(c.deleted, 1);
	struct kd_test_httpd_req req;
	assert_true(kd_test_httpd_get(f->srv, before + 20, &req));
	assert_string_equal(req.method, "DELETE");
	assert_string_equal(req.path, "/api/v1/namespaces/demo/pods/c3");
	kd_test_httpd_req_fini(&req);
	kd_wb_free(wb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(create_posts_and_classifies, setup, teardown),
	    cmocka_unit_test_setup_teardown(update_put_carries_base_rv, setup, teardown),
	    cmocka_unit_test_setup_teardown(status_patch_goes_to_subresource, setup, teardown),
	    cmocka_unit_test_setup_teardown(delete_uses_options_and_uid_precondition, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(reread_gets_the_object, setup, teardown),
	    cmocka_unit_test_setup_teardown(bad_keys_and_routes_are_refused, setup, teardown),
	    cmocka_unit_test(refused_connection_is_retry),
	    cmocka_unit_test_setup_teardown(drives_a_real_cache, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
