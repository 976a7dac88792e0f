/* Unit tests for kd-autoscaler's start line and readiness of its informers (autoscaler-shim/
 * admin.c: kd_as_informers_synced, kd_as_note_synced), with the four informers of kd-autoscaler
 * (PodAutoscalers, Deployments, Pods, Nodes) listing from a loopback fake API Server (one thread
 * per connection: empty lists, watches held open). Asserted: while any informer has not listed,
 * kd_as_informers_synced is false and the "reconciling" line is not logged; once the last one
 * (Nodes, started after the others as in pa.c) has listed, exactly one line "reconciling
 * PodAutoscalers of class X in <namespace> via <server> (informers synced in N ms)" is logged,
 * and further sync notifications do not log it again. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../autoscaler-shim/admin.c" /* NOLINT(bugprone-suspicious-include) */
#include "kd_test_httpd.h"
#include "kd_test_log.h"

/* ---- doubles of cfgmap.c -------------------------------------------------------------------- */

bool kd_as_dcfg_ready(const struct kd_as *as)
{
	(void)as;
	return true;
}

void kd_as_dcfg_counts(const struct kd_as *as, uint64_t *applied, uint64_t *refused)
{
	(void)as;
	*applied = *refused = 0;
}

/* ---- double of webhook.c (off: nothing to report) -------------------------------------------- */

void kd_as_webhook_metrics(const struct kd_as *as, struct kd_prom *p)
{
	(void)as;
	(void)p;
}

/* ---- the fake API Server: empty lists, watches held open ----------------------------------- */

static void handler(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req, void *arg)
{
	(void)arg;
	(void)req;
	if (!strstr(req->query, "watch=1")) {
		kd_test_httpd_respond(conn, 200, "application/json",
		                      "{\"kind\":\"List\",\"apiVersion\":\"v1\",\"metadata\":{"
		                      "\"resourceVersion\":\"7\"},\"items\":[]}");
		return;
	}
	kd_test_httpd_begin_chunked(conn, 200, "application/json");
	while (kd_test_httpd_sleep(conn, 5))
		;
	kd_test_httpd_end_chunked(conn);
}

static void on_synced(struct kd_informer *inf, void *arg)
{
	(void)inf;
	kd_as_note_synced(arg);
}

static void new_informer(struct kd_as *as, const struct kd_k8s_resource *res,
                         struct kd_informer **out)
{
	struct kd_informer_opts o = {.res = res, .ns = as->cfg.namespace};
	struct kd_informer_handlers h = {.on_synced = on_synced, .arg = as};
	assert_int_equal(kd_informer_new(as->k8s, &o, &h, out, NULL), 0);
}

static void run_until_synced(struct kd_as *as, struct kd_informer *const *infs, size_t n)
{
	uint64_t end = kd_now_ns() + 5000000000ull;
	for (;;) {
		size_t done = 0;
		for (size_t i = 0; i < n; i++)
			done += kd_informer_synced(infs[i]);
		if (done == n)
			return;
		if (kd_now_ns() > end)
			fail_msg("timed out waiting for %zu informer(s) to list", n - done);
		kd_loop_run_once(as->loop, 10);
	}
}

static unsigned count(const char *hay, const char *needle)
{
	unsigned n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void test_reconciling_after_first_sync(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(handler, NULL, NULL, NULL);
	struct kd_as as = {0};
	as.loop = kd_loop_new();
	struct kd_k8s_config *kc = kd_k8s_config_new(kd_test_httpd_url(srv));
	assert_int_equal(kd_k8s_new(kc, as.loop, NULL, &as.k8s, NULL), 0);
	as.cfg.pa_class = "kd.kubedirect.dev";
	as.cfg.namespace = "team-a";
	as.api_server = kd_test_httpd_url(srv);
	as.start_ms = kd_loop_now_ms(as.loop);
	kd_test_log_capture();

	new_informer(&as, &kd_k8s_podautoscalers, &as.pa_inf);
	new_informer(&as, &kd_k8s_deployments, &as.deploy_inf);
	new_informer(&as, &kd_k8s_pods, &as.pod_inf);
	new_informer(&as, &kd_k8s_nodes, &as.node_inf);
	struct kd_informer *first[] = {as.pa_inf, as.deploy_inf, as.pod_inf};
	for (size_t i = 0; i < KD_ARRAY_SIZE(first); i++)
		assert_int_equal(kd_informer_start(first[i]), 0);
	run_until_synced(&as, first, KD_ARRAY_SIZE(first));
	for (int i = 0; i < 5; i++)
		kd_loop_run_once(as.loop, 10);
	assert_false(kd_as_informers_synced(&as)); /* Nodes not listed */
	assert_false(as.reconciling);
	assert_int_equal(count(kd_test_log_peek(), "reconciling"), 0);

	assert_int_equal(kd_informer_start(as.node_inf), 0);
	run_until_synced(&as, &as.node_inf, 1);
	assert_true(kd_as_informers_synced(&as));
	assert_true(as.reconciling);
	kd_as_note_synced(&as); /* a later notification: no second line */
	kd_autofree char *logbuf = kd_test_log_take();
	assert_non_null(logbuf);
	assert_int_equal(count(logbuf, "reconciling"), 1);
	kd_autofree char *want =
	    kd_xasprintf("reconciling PodAutoscalers of class kd.kubedirect.dev in team-a via %s "
	                 "(informers synced in ",
	                 kd_test_httpd_url(srv));
	if (!strstr(logbuf, want))
		fail_msg("no start line %s in:\n%s", want, logbuf);
	assert_non_null(strstr(logbuf, " ms)\n"));

	kd_informer_free(as.pa_inf);
	kd_informer_free(as.deploy_inf);
	kd_informer_free(as.pod_inf);
	kd_informer_free(as.node_inf);
	kd_k8s_free(as.k8s);
	kd_k8s_config_free(kc);
	kd_test_httpd_stop(srv);
	kd_loop_free(as.loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reconciling_after_first_sync),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
