/* tests/unit/test_prom.c: Prometheus text exposition (kd/prom.h): family headers, samples with
 * and without labels, histograms (bucket edges inclusive, cumulative buckets, +Inf, sum and
 * count, with and without labels), and the API client families read from real kd_k8s clients. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kd/k8s.h"
#include "kd/prom.h"
#include "kd_test_httpd.h"

static void families_and_samples(void **state)
{
	(void)state;
	struct kd_prom p = {0};
	size_t len = 99;
	char *empty = kd_prom_take(&p, &len);
	assert_string_equal(empty, "");
	assert_int_equal(len, 0);
	free(empty);
	kd_prom_add(&p, "kd_x_total", "counter", "Things done.", NULL, 3);
	kd_prom_add(&p, "kd_y", "gauge", "Things by state.", "{state=\"a\"}", 1);
	kd_prom_sample(&p, "kd_y", "{state=\"b\"}", 18446744073709551615ull);
	char *s = kd_prom_take(&p, &len);
	assert_string_equal(s, "# HELP kd_x_total Things done.\n# TYPE kd_x_total counter\n"
	                       "kd_x_total 3\n"
	                       "# HELP kd_y Things by state.\n# TYPE kd_y gauge\n"
	                       "kd_y{state=\"a\"} 1\nkd_y{state=\"b\"} 18446744073709551615\n");
	assert_int_equal(len, strlen(s));
	assert_null(p.buf); /* taken: empty again */
	free(s);
	kd_prom_family(&p, "kd_z", "gauge", "z");
	kd_prom_fini(&p);
	assert_null(p.buf);
}

static void histogram(void **state)
{
	(void)state;
	static const double le[] = {0.01, 0.1, 1};
	struct kd_prom_hist h;
	kd_prom_hist_init(&h, le, KD_ARRAY_SIZE(le));
	kd_prom_hist_observe(&h, 0.005);
	kd_prom_hist_observe(&h, 0.01); /* on the edge: counts in le="0.01" */
	kd_prom_hist_observe(&h, 0.5);
	kd_prom_hist_observe(&h, 7);
	assert_int_equal(h.count, 4);
	struct kd_prom p = {0};
	kd_prom_histogram(&p, "kd_x_seconds", "Time.", NULL, &h);
	kd_prom_histogram(&p, "kd_y_seconds", "Time.", "end=\"up\"", &h);
	kd_autofree char *s = kd_prom_take(&p, NULL);
	assert_string_equal(s, "# HELP kd_x_seconds Time.\n"
	                       "# TYPE kd_x_seconds histogram\n"
	                       "kd_x_seconds_bucket{le=\"0.01\"} 2\n"
	                       "kd_x_seconds_bucket{le=\"0.1\"} 2\n"
	                       "kd_x_seconds_bucket{le=\"1\"} 3\n"
	                       "kd_x_seconds_bucket{le=\"+Inf\"} 4\n"
	                       "kd_x_seconds_sum 7.515\n"
	                       "kd_x_seconds_count 4\n"
	                       "# HELP kd_y_seconds Time.\n"
	                       "# TYPE kd_y_seconds histogram\n"
	                       "kd_y_seconds_bucket{end=\"up\",le=\"0.01\"} 2\n"
	                       "kd_y_seconds_bucket{end=\"up\",le=\"0.1\"} 2\n"
	                       "kd_y_seconds_bucket{end=\"up\",le=\"1\"} 3\n"
	                       "kd_y_seconds_bucket{end=\"up\",le=\"+Inf\"} 4\n"
	                       "kd_y_seconds_sum{end=\"up\"} 7.515\n"
	                       "kd_y_seconds_count{end=\"up\"} 4\n");
	/* the shared latency bounds are increasing */
	for (size_t i = 1; i < KD_PROM_LATENCY_BUCKETS; i++)
		assert_true(kd_prom_latency_le[i] > kd_prom_latency_le[i - 1]);
}

static void handler(struct kd_test_httpd_conn *conn, const struct kd_test_httpd_req *req, void *arg)
{
	(void)arg;
	if (strstr(req->path, "/missing"))
		kd_test_httpd_respond(conn, 404, "application/json",
		                      "{\"kind\":\"Status\",\"status\":\"Failure\",\"reason\":"
		                      "\"NotFound\",\"code\":404}");
	else
		kd_test_httpd_respond(conn, 200, "application/json", "{\"kind\":\"Pod\"}");
}

static void api_client_families(void **state)
{
	(void)state;
	struct kd_test_httpd *srv = kd_test_httpd_start(handler, NULL, NULL, NULL);
	struct kd_k8s_config *cfg = kd_k8s_config_new(kd_test_httpd_url(srv));
	struct kd_k8s *c = NULL;
	assert_int_equal(kd_k8s_new(cfg, NULL, NULL, &c, NULL), 0);
	assert_int_equal(kd_k8s_get(c, &kd_k8s_pods, "default", "p", NULL, NULL), 0);
	assert_int_equal(kd_k8s_get(c, &kd_k8s_pods, "default", "p", NULL, NULL), 0);
	assert_int_equal(kd_k8s_get(c, &kd_k8s_pods, "default", "missing", NULL, NULL), -ENOENT);
	struct kd_prom p = {0};
	struct kd_k8s *clients[] = {c, NULL};
	const char *const names[] = {"main", "absent"};
	kd_prom_k8s_clients(&p, "kd_t", clients, names, 2);
	char *s = kd_prom_take(&p, NULL);
	assert_non_null(strstr(s, "# TYPE kd_t_api_requests_total counter\n"
	                          "kd_t_api_requests_total{client=\"main\"} 3\n"));
	assert_non_null(strstr(s, "kd_t_api_throttled_total{client=\"main\"} 0\n"));
	assert_non_null(
	    strstr(s, "# TYPE kd_t_api_pending gauge\nkd_t_api_pending{client=\"main\"} 0\n"));
	assert_non_null(strstr(s, "kd_t_api_responses_total{client=\"main\",code=\"2xx\"} 2\n"));
	assert_non_null(strstr(s, "kd_t_api_responses_total{client=\"main\",code=\"4xx\"} 1\n"));
	assert_non_null(strstr(s, "kd_t_api_responses_total{client=\"main\",code=\"error\"} 0\n"));
	assert_null(strstr(s, "absent")); /* a NULL client has no samples */
	free(s);
	kd_k8s_free(c);
	kd_k8s_config_free(cfg);
	kd_test_httpd_stop(srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(families_and_samples),
	    cmocka_unit_test(histogram),
	    cmocka_unit_test(api_client_families),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
