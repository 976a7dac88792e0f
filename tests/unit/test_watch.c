/* Unit tests for kd_watch: the streaming event decoder (chunk splits, caps, malformed input) and
 * the informer against a scripted loopback API server (list-then-watch, bookmarks, 410 relist
 * with deletes, reconnect from the last resourceVersion, malformed/oversize events). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kd/json.h"
#include "kd/k8s.h"
#include "kd/log.h"
#include "kd/loop.h"
#include "kd/watch.h"
#include "kd_test_httpd.h"
#include "kd_test_log.h"

/* ------------------------------------------------------------------------------------------ */
/* decoder                                                                                     */

struct seen {
	int n;
	enum kd_watch_event_type types[16];
	char names[16][32];
	char rvs[16][16];
	int stop_at; /* return 1 from the callback at this event (1-based), 0: never */
};

static int record(const struct kd_watch_event *ev, void *arg)
{
	struct seen *s = arg;
	if (s->n < 16) {
		s->types[s->n] = ev->type;
		const char *name = kd_json_get_string(ev->object, "metadata.name");
		snprintf(s->names[s->n], sizeof(s->names[0]), "%s", name ? name : "");
		snprintf(s->rvs[s->n], sizeof(s->rvs[0]), "%s",
		         ev->resource_version ? ev->resource_version : "");
	}
	s->n++;
	return (s->stop_at && s->n == s->stop_at) ? 1 : 0;
}

static const char *stream3 =
    "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\","
    "\"namespace\":\"ns\",\"resourceVersion\":\"5\"},\"spec\":{\"s\":\"x\\n{}\\\"\"}}}\n"
    "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"b\",\"resourceVersion\":\"6\"}}}"
    "\n\n"
    "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"resourceVersion\":\"9\"}}}"
    "\n";

static void check_stream3(const struct seen *s)
{
	assert_int_equal(s->n, 3);
	assert_int_equal(s->types[0], KD_WATCH_ADDED);
	assert_string_equal(s->names[0], "a");
	assert_string_equal(s->rvs[0], "5");
	assert_int_equal(s->types[1], KD_WATCH_MODIFIED);
	assert_string_equal(s->names[1], "b");
	assert_int_equal(s->types[2], KD_WATCH_BOOKMARK);
	assert_string_equal(s->rvs[2], "9");
}

static void decoder_splits_events_at_any_chunk_boundary(void **state)
{
	(void)state;
	size_t len = strlen(stream3);
	/* One byte at a time. */
	struct kd_watch_decoder *d = kd_watch_decoder_new(0);
	struct seen s = {0};
	for (size_t i = 0; i < len; i++)
		assert_int_equal(kd_watch_decoder_feed(d, stream3 + i, 1, record, &s, NULL), 0);
	assert_int_equal(kd_watch_decoder_finish(d, NULL), 0);
	check_stream3(&s);
	/* Every two-piece split (mid-string, mid-escape, mid-number, between events). */
	for (size_t cut = 0; cut <= len; cut++) {
		kd_watch_decoder_reset(d);
		struct seen t = {0};
		assert_int_equal(kd_watch_decoder_feed(d, stream3, cut, record, &t, NULL), 0);
		assert_int_equal(
		    kd_watch_decoder_feed(d, stream3 + cut, len - cut, record, &t, NULL), 0);
		assert_int_equal(kd_watch_decoder_finish(d, NULL), 0);
		check_stream3(&t);
	}
	/* All at once. */
	kd_watch_decoder_reset(d);
	struct seen u = {0};
	assert_int_equal(kd_watch_decoder_feed(d, stream3, len, record, &u, NULL), 0);
	check_stream3(&u);
	kd_watch_decoder_free(d);
}

static void decoder_callback_can_stop(void **state)
{
	(void)state;
	struct kd_watch_decoder *d = kd_watch_decoder_new(0);
	struct seen s = {.stop_at = 2};
	assert_int_equal(kd_watch_decoder_feed(d, stream3, strlen(stream3), record, &s, NULL), -1);
	assert_int_equal(s.n, 2);
	kd_watch_decoder_free(d);
}

static void expect_decode_error(const char *input, size_t max, int errnum, const char *needle,
                                int events_before)
{
	struct kd_watch_decoder *d = kd_watch_decoder_new(max);
	struct seen s = {0};
	struct kd_error *err = NULL;
	assert_int_equal(kd_watch_decoder_feed(d, input, strlen(input), record, &s, &err), -errnum);
	assert_int_equal(s.n, events_before);
	assert_non_null(err);
	if (!strstr(err->msg, needle))
		fail_msg("'%s' not in '%s'", needle, err->msg);
	kd_error_free(err);
	/* Refuses input after an error until reset. */
	err = NULL;
	assert_int_equal(kd_watch_decoder_feed(d, "\n", 1, record, &s, &err), -EBADMSG);
	kd_error_free(err);
	kd_watch_decoder_reset(d);
	assert_int_equal(kd_watch_decoder_feed(d, stream3, strlen(stream3), record, &s, NULL), 0);
	assert_int_equal(s.n, events_before + 3);
	kd_watch_decoder_free(d);
}

static void decoder_rejects_malformed_and_invalid_events(void **state)
{
	(void)state;
	const char *ok = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"z\"}}}\n";
	kd_autofree char *garbage = kd_xasprintf("%s{\"type\":}\n", ok);
	expect_decode_error(garbage, 0, EBADMSG, "watch event 2: malformed JSON", 1);
	expect_decode_error("[1,2]\n", 0, EBADMSG, "watch event 1: not a JSON object", 0);
	expect_decode_error("{\"object\":{}}\n", 0, EBADMSG, "missing \"type\"", 0);
	expect_decode_error("{\"type\":\"EXPLODED\",\"object\":{\"metadata\":{}}}", 0, EBADMSG,
	                    "unknown type \"EXPLODED\"", 0);
	expect_decode_error("{\"type\":\"ADDED\"}", 0, EBADMSG, "missing \"object\"", 0);
	expect_decode_error("{\"type\":\"ADDED\",\"object\":{}}", 0, EBADMSG,
	                    "object without metadata", 0);
	expect_decode_error("\xff\xfe", 0, EBADMSG, "malformed JSON", 0);
}

static void decoder_enforces_event_size_cap(void **state)
{
	(void)state;
	char big[2048];
	int n =
	    snprintf(big, sizeof(big),
	             "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"x\"},\"pad\":\"");
	memset(big + n, 'p', 1500);
	snprintf(big + n + 1500, sizeof(big) - (size_t)n - 1500, "\"}}\n");
	kd_autofree char *two = kd_xasprintf("%s%s", stream3, big);
	expect_decode_error(two, 512, EMSGSIZE, "watch event 4: exceeds the 512 byte limit", 3);
	/* Fed in small pieces the cap still holds (the partial event never grows past it). */
	struct kd_watch_decoder *d = kd_watch_decoder_new(512);
	struct seen s = {0};
	int rc = 0;
	for (size_t off = 0; off < strlen(big) && rc == 0; off += 100)
		rc = kd_watch_decoder_feed(d, big + off, KD_MIN((size_t)100, strlen(big) - off),
		                           record, &s, NULL);
	assert_int_equal(rc, -EMSGSIZE);
	kd_watch_decoder_free(d);
	/* Exactly at the cap is fine. */
	const char *ev = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"x\"}}}";
	d = kd_watch_decoder_new(strlen(ev));
	struct seen t = {0};
	assert_int_equal(kd_watch_decoder_feed(d, ev, strlen(ev), record, &t, NULL), 0);
	assert_int_equal(t.n, 1);
	kd_watch_decoder_free(d);
}

static void decoder_finish_reports_truncated_event(void **state)
{
	(void)state;
	struct kd_watch_decoder *d = kd_watch_decoder_new(0);
	struct seen s = {0};
	const char *in =
	    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}\n{\"type\":";
	assert_int_equal(kd_watch_decoder_feed(d, in, strlen(in), record, &s, NULL), 0);
	assert_int_equal(s.n, 1);
	struct kd_error *err = NULL;
	assert_int_equal(kd_watch_decoder_finish(d, &err), -EBADMSG);
	assert_non_null(strstr(err->msg, "watch event 2: truncated after 8 bytes"));
	kd_error_free(err);
	kd_watch_decoder_reset(d);
	assert_int_equal(kd_watch_decoder_finish(d, NULL), 0);
	kd_watch_decoder_free(d);
	assert_string_equal(kd_watch_event_type_name(KD_WATCH_BOOKMARK), "BOOKMARK");
}

/* ------------------------------------------------------------------------------------------ */
/* fake API server                                                                             */

typedef void (*phase_fn)(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req,
                         int n);

static struct {
	pthread_mutex_t lock;
	int lists, watches;
	phase_fn list, watch;
} fake = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void fake_handler(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req,
                         void *arg)
{
	(void)arg;
	bool is_watch = strstr(req->query, "watch=1") != NULL;
	pthread_mutex_lock(&fake.lock);
	int n = is_watch ? ++fake.watches : ++fake.lists;
	phase_fn fn = is_watch ? fake.watch : fake.list;
	pthread_mutex_unlock(&fake.lock);
	fn(conn, req, n);
}

static void hold(struct kd_test_httpd_conn *conn)
{
	/* Keep a watch open (until the client goes away or the server stops). */
	for (int i = 0; i < 1000 && kd_test_httpd_sleep(conn, 10); i++)
		if (kd_test_httpd_chunk(conn, "\n", 1) < 0)
			break;
}

static char *podj(const char *name, const char *rv)
{
	return kd_xasprintf("{\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"ns\","
	                    "\"resourceVersion\":\"%s\",\"labels\":{\"app\":\"web\"}}}",
	                    name, rv);
}

static char *event(const char *type, const char *name, const char *rv)
{
	kd_autofree char *o = podj(name, rv);
	return kd_xasprintf("{\"type\":\"%s\",\"object\":%s}\n", type, o);
}

static void send_list(struct kd_test_httpd_conn *conn, const char *rv, const char *const *names,
                      const char *const *rvs, size_t n)
{
	char *items = kd_xstrdup("");
	for (size_t i = 0; i < n; i++) {
		kd_autofree char *p = podj(names[i], rvs[i]);
		char *next = kd_xasprintf("%s%s%s", items, i ? "," : "", p);
		free(items);
		items = next;
	}
	kd_autofree char *body =
	    kd_xasprintf("{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{"
	                 "\"resourceVersion\":\"%s\"},\"items\":[%s]}",
	                 rv, items);
	free(items);
	kd_test_httpd_respond(conn, 200, "application/json", body);
}

/* Informer observer. */
struct obs {
	int adds, updates, deletes, synced, events;
	int synced_at_events; /* events seen when synced fired */
	char log[2048];
	struct kd_informer *free_in_cb;
};

#define logf_(o, ...)                                                                              \
	snprintf((o)->log + strlen((o)->log), sizeof((o)->log) - strlen((o)->log), __VA_ARGS__)

static void on_add(struct kd_informer *inf, struct json_object *obj, void *arg)
{
	(void)inf;
	struct obs *o = arg;
	o->adds++;
	o->events++;
	logf_(o, "+%s@%s ", kd_json_get_string(obj, "metadata.name"),
	      kd_json_get_string(obj, "metadata.resourceVersion"));
	if (o->free_in_cb) {
		kd_informer_free(o->free_in_cb);
		o->free_in_cb = NULL;
	}
}

static void on_update(struct kd_informer *inf, struct json_object *old, struct json_object *obj,
                      void *arg)
{
	(void)inf;
	struct obs *o = arg;
	o->updates++;
	o->events++;
	logf_(o, "~%s@%s>%s ", kd_json_get_string(obj, "metadata.name"),
	      kd_json_get_string(old, "metadata.resourceVersion"),
	      kd_json_get_string(obj, "metadata.resourceVersion"));
}

static void on_delete(struct kd_informer *inf, struct json_object *obj, void *arg)
{
	(void)inf;
	struct obs *o = arg;
	o->deletes++;
	o->events++;
	logf_(o, "-%s ", kd_json_get_string(obj, "metadata.name"));
}

static void on_synced(struct kd_informer *inf, void *arg)
{
	struct obs *o = arg;
	o->synced++;
	o->synced_at_events = o->events;
	assert_true(kd_informer_synced(inf));
	logf_(o, "synced ");
}

struct rig {
	struct kd_test_httpd *srv;
	struct kd_loop *loop;
	struct kd_k8s *c;
	struct kd_informer *inf;
	struct obs obs;
};

static void rig_start_ex(struct rig *r, phase_fn list, phase_fn watch, size_t max_event,
                         unsigned idle_s);

static void rig_start(struct rig *r, phase_fn list, phase_fn watch, size_t max_event)
{
	rig_start_ex(r, list, watch, max_event, 0);
}

static void rig_start_idle(struct rig *r, phase_fn list, phase_fn watch, unsigned idle_s)
{
	rig_start_ex(r, list, watch, 0, idle_s);
}

/* The next rig's informer has kd_informer_update_as_add as its on_update (reset by each start). */
static bool rig_update_as_add;

static void rig_start_ex(struct rig *r, phase_fn list, phase_fn watch, size_t max_event,
                         unsigned idle_s)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_lock(&fake.lock);
	fake.lists = fake.watches = 0;
	fake.list = list;
	fake.watch = watch;
	pthread_mutex_unlock(&fake.lock);
	r->srv = kd_test_httpd_start(fake_handler, NULL, NULL, NULL);
	r->loop = kd_loop_new();
	struct kd_k8s_config *cfg = kd_k8s_config_new(kd_test_httpd_url(r->srv));
	assert_int_equal(kd_k8s_new(cfg, r->loop, NULL, &r->c, NULL), 0);
	kd_k8s_config_free(cfg);
	struct kd_informer_opts opts = {.res = &kd_k8s_pods,
	                                .ns = "ns",
	                                .label_selector = "app=web",
	                                .field_selector = "spec.nodeName=n1",
	                                .watch_timeout_s = 60,
	                                .max_event_bytes = max_event,
	                                .idle_timeout_s = idle_s,
	                                .backoff_base_ms = 10,
	                                .backoff_cap_ms = 40};
	struct kd_informer_handlers h = {on_add,
	                                 rig_update_as_add ? kd_informer_update_as_add : on_update,
	                                 on_delete, on_synced, &r->obs};
	rig_update_as_add = false;
	assert_int_equal(kd_informer_new(r->c, &opts, &h, &r->inf, NULL), 0);
	assert_int_equal(kd_informer_start(r->inf), 0);
	assert_int_equal(kd_informer_start(r->inf), -EALREADY);
}

static int fake_count(const int *p)
{
	pthread_mutex_lock(&fake.lock);
	int v = *p;
	pthread_mutex_unlock(&fake.lock);
	return v;
}

/* Runs the loop until cond(r) or ~5 s. */
static void rig_run(struct rig *r, bool (*cond)(struct rig *r))
{
	uint64_t deadline = kd_now_ns() + 5000000000ull;
	while (!cond(r) && kd_now_ns() < deadline)
		kd_loop_run_once(r->loop, 20);
	if (!cond(r))
		fail_msg("condition not reached; log: %s (lists %d watches %d)", r->obs.log,
		         fake_count(&fake.lists), fake_count(&fake.watches));
}

static void rig_stop(struct rig *r)
{
	kd_informer_free(r->inf);
	kd_k8s_free(r->c);
	kd_test_httpd_stop(r->srv);
	kd_loop_free(r->loop);
}

static char *watch_query(struct rig *r, int nth)
{
	size_t n = kd_test_httpd_count(r->srv);
	int seen = 0;
	for (size_t i = 0; i < n; i++) {
		struct kd_test_httpd_req q = {0};
		kd_test_httpd_get(r->srv, i, &q);
		if (strstr(q.query, "watch=1") && ++seen == nth) {
			char *s = kd_xstrdup(q.query);
			kd_test_httpd_req_fini(&q);
			return s;
		}
		kd_test_httpd_req_fini(&q);
	}
	return NULL;
}

/* --- scenario 1: list, watch with split chunks, bookmark ------------------------------------ */

static void list_ab(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req, int n)
{
	(void)req;
	(void)n;
	const char *names[] = {"a", "b"}, *rvs[] = {"10", "10"};
	send_list(conn, "10", names, rvs, 2);
}

static void watch_split(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req, int n)
{
	(void)req;
	if (n > 1) {
		kd_test_httpd_begin_chunked(conn, 200, "application/json");
		hold(conn);
		return;
	}
	kd_autofree char *e1 = event("ADDED", "c", "11");
	kd_autofree char *e2 = event("MODIFIED", "a", "12");
	kd_autofree char *e3 = event("DELETED", "b", "13");
	kd_autofree char *all =
	    kd_xasprintf("%s%s%s{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":{"
	                 "\"resourceVersion\":\"20\"}}}\n",
	                 e1, e2, e3);
	kd_test_httpd_begin_chunked(conn, 200, "application/json");
	/* Pieces of 7 bytes with small delays: every event is split mid-JSON. */
	size_t len = strlen(all);
	for (size_t off = 0; off < len; off += 7) {
		kd_test_httpd_chunk(conn, all + off, KD_MIN((size_t)7, len - off));
		if (off % 70 == 0)
			kd_test_httpd_sleep(conn, 2);
	}
	hold(conn);
}

static bool rv_is_20(struct rig *r)
{
	const char *rv = kd_informer_resource_version(r->inf);
	return rv && !strcmp(rv, "20");
}

static int count_fn(struct json_object *obj, void *arg)
{
	(void)obj;
	(*(int *)arg)++;
	return 0;
}

static void informer_lists_watches_and_applies_split_events(void **state)
{
	(void)state;
	struct rig r;
	rig_start(&r, list_ab, watch_split, 0);
	rig_run(&r, rv_is_20);
	assert_string_equal(r.obs.log, "+a@10 +b@10 synced +c@11 ~a@10>12 -b ");
	assert_int_equal(r.obs.synced, 1);
	assert_int_equal(r.obs.synced_at_events, 2);
	assert_int_equal(kd_informer_count(r.inf), 2);
	assert_string_equal(
	    kd_json_get_string(kd_informer_get(r.inf, "ns", "a"), "metadata.resourceVersion"),
	    "12");
	assert_null(kd_informer_get(r.inf, "ns", "b"));
	assert_non_null(kd_informer_get(r.inf, "ns", "c"));
	int cnt = 0;
	assert_int_equal(kd_informer_foreach(r.inf, count_fn, &cnt), 0);
	assert_int_equal(cnt, 2);
	struct kd_informer_stats st;
	kd_informer_get_stats(r.inf, &st);
	assert_int_equal(st.lists, 1);
	assert_int_equal(st.relists, 0);
	assert_int_equal(st.bookmarks, 1);
	assert_int_equal(st.events, 4);
	/* The list and watch requests carried the selectors; the watch resumed from the list. */
	struct kd_test_httpd_req q0 = {0};
	kd_test_httpd_get(r.srv, 0, &q0);
	assert_string_equal(q0.path, "/api/v1/namespaces/ns/pods");
	assert_non_null(strstr(q0.query, "labelSelector=app%3Dweb"));
	assert_non_null(strstr(q0.query, "fieldSelector=spec.nodeName%3Dn1"));
	kd_test_httpd_req_fini(&q0);
	kd_autofree char *wq = watch_query(&r, 1);
	assert_non_null(strstr(wq, "watch=1"));
	assert_non_null(strstr(wq, "allowWatchBookmarks=true"));
	assert_non_null(strstr(wq, "resourceVersion=10"));
	assert_non_null(strstr(wq, "labelSelector=app%3Dweb"));
	assert_non_null(strstr(wq, "fieldSelector=spec.nodeName%3Dn1"));
	assert_non_null(strstr(wq, "timeoutSeconds="));
	rig_stop(&r);
}

/* The same events with kd_informer_update_as_add: the MODIFIED a reaches on_add, as a@12. */
static void informer_update_as_add_passes_the_new_version_to_on_add(void **state)
{
	(void)state;
	struct rig r;
	rig_update_as_add = true;
	rig_start(&r, list_ab, watch_split, 0);
	rig_run(&r, rv_is_20);
	assert_string_equal(r.obs.log, "+a@10 +b@10 synced +c@11 +a@12 -b ");
	assert_int_equal(r.obs.adds, 4);
	assert_int_equal(r.obs.updates, 0);
	assert_int_equal(r.obs.deletes, 1);
	rig_stop(&r);
}

/* --- scenario 2: 410 relist (ERROR event, then HTTP 410), deletes after relist -------------- */

static void list_relist(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req, int n)
{
	(void)req;
	if (n == 1) {
		const char *names[] = {"a", "b"}, *rvs[] = {"10", "10"};
		send_list(conn, "10", names, rvs, 2);
	} else if (n == 2) {
		/* b was deleted while the watch was down; a changed. */
		const char *names[] = {"a"}, *rvs[] = {"30"};
		send_list(conn, "30", names, rvs, 1);
	} else {
		const char *names[] = {"a", "d"}, *rvs[] = {"30", "40"};
		send_list(conn, "40", names, rvs, 2);
	}
}

static void watch_gone(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req, int n)
{
	(void)req;
	if (n == 1) {
		kd_test_httpd_begin_chunked(conn, 200, "application/json");
		const char *e =
		    "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":"
		    "\"v1\",\"status\":\"Failure\",\"message\":\"too old resource version: "
		    "10 (25)\",\"reason\":\"Expired\",\"code\":410}}\n";
		kd_test_httpd_chunk(conn, e, strlen(e));
		hold(conn);
	} else if (n == 2) {
		kd_test_httpd_respond(conn, 410, "application/json",
		                      "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":"
		                      "\"too old\",\"reason\":\"Expired\",\"code\":410}");
	} else {
		kd_test_httpd_begin_chunked(conn, 200, "application/json");
		hold(conn);
	}
}

static bool three_watches(struct rig *r)
{
	(void)r;
	return fake_count(&fake.watches) >= 3;
}

static void informer_relists_on_410_and_deletes_vanished_objects(void **state)
{
	(void)state;
	struct rig r;
	kd_test_log_capture();
	rig_start(&r, list_relist, watch_gone, 0);
	rig_run(&r, three_watches);
	kd_autofree char *logs = kd_test_log_take();
	assert_non_null(
	    strstr(logs, "watch pods in ns: 410 Gone (resourceVersion too old), relisting"));
	assert_string_equal(r.obs.log, "+a@10 +b@10 synced -b ~a@10>30 +d@40 ");
	assert_int_equal(r.obs.synced, 1);
	struct kd_informer_stats st;
	kd_informer_get_stats(r.inf, &st);
	assert_int_equal(st.lists, 3);
	assert_int_equal(st.relists, 2);
	assert_int_equal(kd_informer_count(r.inf), 2);
	kd_autofree char *w2 = watch_query(&r, 2);
	assert_non_null(strstr(w2, "resourceVersion=30"));
	kd_autofree char *w3 = watch_query(&r, 3);
	assert_non_null(strstr(w3, "resourceVersion=40"));
	assert_string_equal(kd_informer_resource_version(r.inf), "40");
	rig_stop(&r);
}

/* --- scenario 3: server closes mid-stream, then ends cleanly -> reconnect, no relist -------- */

static void list_one(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req, int n)
{
	(void)req;
	(void)n;
	const char *names[] = {"a"}, *rvs[] = {"10"};
	send_list(conn, "10", names, rvs, 1);
}

static void watch_drop(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req, int n)
{
	(void)req;
	kd_test_httpd_begin_chunked(conn, 200, "application/json");
	if (n == 1) {
		kd_autofree char *e = event("ADDED", "c", "11");
		kd_test_httpd_chunk(conn, e, strlen(e));
		const char *bm = "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{"
		                 "\"resourceVersion\":\"15\"}}}\n{\"type\":\"MODI";
		kd_test_httpd_chunk(conn, bm, strlen(bm));
		kd_test_httpd_sleep(conn, 20);
		kd_test_httpd_close(conn); /* mid-stream: no terminating chunk */
	} else if (n == 2) {
		kd_autofree char *e = event("MODIFIED", "c", "16");
		kd_test_httpd_chunk(conn, e, strlen(e));
		kd_test_httpd_end_chunked(conn); /* clean end, like timeoutSeconds */
	} else {
		hold(conn);
	}
}

static void informer_reconnects_from_last_resource_version(void **state)
{
	(void)state;
	struct rig r;
	kd_test_log_capture();
	rig_start(&r, list_one, watch_drop, 0);
	rig_run(&r, three_watches);
	kd_autofree char *logs = kd_test_log_take();
	assert_non_null(strstr(logs, "reconnecting from resourceVersion 15 in"));
	assert_string_equal(r.obs.log, "+a@10 synced +c@11 ~c@11>16 ");
	struct kd_informer_stats st;
	kd_informer_get_stats(r.inf, &st);
	assert_int_equal(st.lists, 1);
	assert_int_equal(st.relists, 0);
	assert_true(st.errors >= 1);
	assert_int_equal(fake_count(&fake.lists), 1);
	kd_autofree char *w2 = watch_query(&r, 2);
	assert_non_null(strstr(w2, "resourceVersion=15"));
	kd_autofree char *w3 = watch_query(&r, 3);
	assert_non_null(strstr(w3, "resourceVersion=16"));
	rig_stop(&r);
}

/* --- scenario 4: malformed and oversize events -> relist -------------------------------------- */

static void watch_malformed(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req,
                            int n)
{
	(void)req;
	kd_test_httpd_begin_chunked(conn, 200, "application/json");
	if (n == 1) {
		kd_autofree char *e = event("ADDED", "c", "11");
		kd_test_httpd_chunk(conn, e, strlen(e));
		const char *bad = "{\"type\":\"ADDED\",\"object\":{\"metadata\":]}\n";
		kd_test_httpd_chunk(conn, bad, strlen(bad));
	} else if (n == 2) {
		char big[1200];
		int k = snprintf(big, sizeof(big),
		                 "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"e\"},"
		                 "\"pad\":\"");
		memset(big + k, 'x', 1000);
		snprintf(big + k + 1000, sizeof(big) - (size_t)k - 1000, "\"}}\n");
		kd_test_httpd_chunk(conn, big, strlen(big));
	}
	hold(conn);
}

static bool three_lists(struct rig *r)
{
	(void)r;
	return fake_count(&fake.lists) >= 3 && kd_informer_count(r->inf) == 2;
}

static void informer_relists_after_malformed_or_oversize_event(void **state)
{
	(void)state;
	struct rig r;
	kd_test_log_capture();
	rig_start(&r, list_relist, watch_malformed, 512);
	rig_run(&r, three_lists);
	kd_autofree char *logs = kd_test_log_take();
	assert_non_null(strstr(logs, "watch pods in ns: watch event 2: malformed JSON"));
	assert_non_null(strstr(logs, "watch event 1: exceeds the 512 byte limit; relisting in"));
	/* c from the first watch disappears in the relist (list 2 only has a). */
	assert_string_equal(r.obs.log, "+a@10 +b@10 synced +c@11 -b -c ~a@10>30 +d@40 ");
	struct kd_informer_stats st;
	kd_informer_get_stats(r.inf, &st);
	assert_int_equal(st.relists, 2);
	assert_true(st.errors >= 2);
	rig_stop(&r);
}

/* --- scenario 6: a silent watch hits the idle timeout and reconnects ------------------------- */

static void watch_silent(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req,
                         int n)
{
	(void)req;
	kd_test_httpd_begin_chunked(conn, 200, "application/json");
	if (n == 1) {
		kd_autofree char *e = event("ADDED", "c", "11");
		kd_test_httpd_chunk(conn, e, strlen(e));
		kd_test_httpd_sleep(conn, 4000); /* silence, connection kept open */
		return;
	}
	hold(conn);
}

static bool two_watches(struct rig *r)
{
	(void)r;
	return fake_count(&fake.watches) >= 2;
}

static void informer_reconnects_after_idle_timeout(void **state)
{
	(void)state;
	struct rig r;
	kd_test_log_capture();
	rig_start_idle(&r, list_one, watch_silent, 1);
	rig_run(&r, two_watches);
	kd_autofree char *logs = kd_test_log_take();
	assert_non_null(strstr(logs, "reconnecting from resourceVersion 11 in"));
	struct kd_informer_stats st;
	kd_informer_get_stats(r.inf, &st);
	assert_int_equal(st.lists, 1);
	assert_int_equal(st.errors, 1);
	kd_autofree char *w2 = watch_query(&r, 2);
	assert_non_null(strstr(w2, "resourceVersion=11"));
	rig_stop(&r);
}

/* --- scenario 5: free from inside a callback ------------------------------------------------ */

static bool synced_or_freed(struct rig *r)
{
	return r->obs.adds >= 1;
}

static void informer_free_from_callback_is_safe(void **state)
{
	(void)state;
	struct rig r;
	rig_start(&r, list_ab, watch_split, 0);
	r.obs.free_in_cb = r.inf;
	rig_run(&r, synced_or_freed);
	r.inf = NULL;
	/* Keep the loop turning: nothing else may be delivered. */
	for (int i = 0; i < 10; i++)
		kd_loop_run_once(r.loop, 5);
	assert_int_equal(r.obs.adds, 1);
	assert_int_equal(r.obs.synced, 0);
	rig_stop(&r);
}

static void informer_key_and_bad_options(void **state)
{
	(void)state;
	kd_autojson struct json_object *o =
	    json_tokener_parse("{\"metadata\":{\"name\":\"n\",\"namespace\":\"s\"}}");
	kd_autofree char *k = kd_informer_key(o);
	assert_string_equal(k, "s/n");
	kd_autojson struct json_object *node =
	    json_tokener_parse("{\"metadata\":{\"name\":\"n1\"}}");
	kd_autofree char *k2 = kd_informer_key(node);
	assert_string_equal(k2, "n1");
	kd_autojson struct json_object *none = json_tokener_parse("{}");
	assert_null(kd_informer_key(none));
	struct kd_k8s_config *cfg = kd_k8s_config_new("http://127.0.0.1:1");
	struct kd_k8s *c = NULL;
	assert_int_equal(kd_k8s_new(cfg, NULL, NULL, &c, NULL), 0);
	struct kd_informer *inf = NULL;
	struct kd_error *err = NULL;
	struct kd_informer_opts opts = {.res = &kd_k8s_pods};
	assert_int_equal(kd_informer_new(c, &opts, NULL, &inf, &err), -EINVAL);
	assert_non_null(strstr(err->msg, "no event loop"));
	kd_error_free(err);
	kd_k8s_free(c);
	kd_k8s_config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(decoder_splits_events_at_any_chunk_boundary),
	    cmocka_unit_test(decoder_callback_can_stop),
	    cmocka_unit_test(decoder_rejects_malformed_and_invalid_events),
	    cmocka_unit_test(decoder_enforces_event_size_cap),
	    cmocka_unit_test(decoder_finish_reports_truncated_event),
	    cmocka_unit_test(informer_lists_watches_and_applies_split_events),
	    cmocka_unit_test(informer_update_as_add_passes_the_new_version_to_on_add),
	    cmocka_unit_test(informer_relists_on_410_and_deletes_vanished_objects),
	    cmocka_unit_test(informer_reconnects_from_last_resource_version),
	    cmocka_unit_test(informer_relists_after_malformed_or_oversize_event),
	    cmocka_unit_test(informer_reconnects_after_idle_timeout),
	    cmocka_unit_test(informer_free_from_callback_is_safe),
	    cmocka_unit_test(informer_key_and_bad_options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
