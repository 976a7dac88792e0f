/* tests/unit/test_prom.c: Prometheus text exposition (kd/prom.h): family headers, samples with
 * and without labels, and the API client families read from real kd_k8s clients. */
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
	    cmocka_unit_test(api_client_families),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
