/* Unit tests for kd-gateway's routing decisions (ingress-gateway/match.c) on KIngress, Service and
 * Endpoints JSON shaped as Knative and Kubernetes write them: path prefix and header matches,
 * split percentages, service port by number or name mapped to the Endpoints port, round robin
 * over ready addresses, and the reasons given when nothing matches. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "../../ingress-gateway/match.c" /* NOLINT(bugprone-suspicious-include) */

static json_object *parse(const char *s)
{
	json_object *o = json_tokener_parse(s);
	assert_non_null(o);
	return o;
}

struct hdrs {
	const char *name, *value;
};

static const char *hdr(void *ud, const char *name)
{
	for (const struct hdrs *h = ud; h->name; h++)
		if (strcasecmp(h->name, name) == 0)
			return h->value;
	return NULL;
}

static const char *const RULE =
    "{\"hosts\":[\"hello.ns.svc.cluster.local\"],\"http\":{\"paths\":["
    "{\"path\":\"/.well-known/acme\",\"splits\":[{\"serviceName\":\"acme\"}]},"
    "{\"headers\":{\"Knative-Serving-Tag\":{\"exact\":\"canary\"}},"
    " \"splits\":[{\"serviceName\":\"tagged\"}]},"
    "{\"splits\":[{\"serviceName\":\"a\",\"percent\":30},{\"serviceName\":\"b\",\"percent\":70}]}"
    "]}}";

static const char *split_name(json_object *split)
{
	return split ? kd_json_get_string(split, "serviceName") : "(none)";
}

static void paths_match_by_prefix_then_headers_then_catch_all(void **state)
{
	(void)state;
	json_object *rule = parse(RULE);
	struct hdrs none[] = {{NULL, NULL}};
	struct hdrs canary[] = {{"knative-serving-tag", "canary"}, {NULL, NULL}};
	struct hdrs other[] = {{"Knative-Serving-Tag", "stable"}, {NULL, NULL}};
	json_object *p = kd_gw_match_path(rule, "/.well-known/acme/x?y=1", hdr, none);
	assert_string_equal(split_name(kd_gw_pick_split(p, 0)), "acme");
	p = kd_gw_match_path(rule, "/", hdr, canary);
	assert_string_equal(split_name(kd_gw_pick_split(p, 0)), "tagged");
	p = kd_gw_match_path(rule, "/", hdr, other);
	assert_string_equal(split_name(kd_gw_pick_split(p, 0)), "a");
	/* a prefix longer than the path does not match; the query is not part of the path */
	p = kd_gw_match_path(rule, "/.well-known?acme", hdr, none);
	assert_string_equal(split_name(kd_gw_pick_split(p, 0)), "a");
	json_object *only = parse("{\"http\":{\"paths\":[{\"path\":\"/api\",\"splits\":[]}]}}");
	assert_null(kd_gw_match_path(only, "/web", hdr, none));
	assert_null(kd_gw_pick_split(kd_gw_match_path(only, "/api/v1", hdr, none), 0));
	json_object_put(only);
	json_object_put(rule);
}

static void splits_follow_their_percentages(void **state)
{
	(void)state;
	json_object *path = parse("{\"splits\":[{\"serviceName\":\"a\",\"percent\":30},"
	                          "{\"serviceName\":\"b\",\"percent\":70}]}");
	int a = 0, b = 0;
	for (uint64_t roll = 0; roll < 100; roll++) {
		const char *n = split_name(kd_gw_pick_split(path, roll));
		a += strcmp(n, "a") == 0;
		b += strcmp(n, "b") == 0;
	}
	assert_int_equal(a, 30);
	assert_int_equal(b, 70);
	json_object_put(path);
	/* weights not summing to 100 are scaled; no positive weight: the first split */
	path = parse("{\"splits\":[{\"serviceName\":\"a\",\"percent\":1},"
	             "{\"serviceName\":\"b\",\"percent\":1}]}");
	assert_string_equal(split_name(kd_gw_pick_split(path, 10)), "a");
	assert_string_equal(split_name(kd_gw_pick_split(path, 90)), "b");
	json_object_put(path);
	path = parse("{\"splits\":[{\"serviceName\":\"only\"},{\"serviceName\":\"zero\"}]}");
	assert_string_equal(split_name(kd_gw_pick_split(path, 99)), "only");
	json_object_put(path);
}

/* A Knative revision's public Service and Endpoints (kd-autoscaler or Knative's SKS). */
static const char *const SVC =
    "{\"spec\":{\"ports\":[{\"name\":\"http\",\"port\":80,\"targetPort\":8012},"
    "{\"name\":\"https\",\"port\":443,\"targetPort\":8112}]}}";
static const char *const EP =
    "{\"subsets\":[{\"addresses\":[{\"ip\":\"10.244.1.5\"},{\"ip\":\"10.244.1.6\"}],"
    "\"notReadyAddresses\":[{\"ip\":\"10.244.1.9\"}],"
    "\"ports\":[{\"name\":\"http\",\"port\":8012},{\"name\":\"https\",\"port\":8112}]}]}";

static void service_port_maps_to_the_endpoints_port_round_robin(void **state)
{
	(void)state;
	json_object *svc = parse(SVC), *ep = parse(EP);
	json_object *p80 = json_object_new_int(80), *phttps = json_object_new_string("https");
	char ip[64];
	int port = 0;
	const char *why = NULL;
	assert_int_equal(kd_gw_endpoint(svc, ep, p80, 0, ip, sizeof(ip), &port, &why), 0);
	assert_string_equal(ip, "10.244.1.5");
	assert_int_equal(port, 8012);
	assert_int_equal(kd_gw_endpoint(svc, ep, p80, 1, ip, sizeof(ip), &port, &why), 0);
	assert_string_equal(ip, "10.244.1.6"); /* never the not-ready address */
	assert_int_equal(kd_gw_endpoint(svc, ep, p80, 2, ip, sizeof(ip), &port, &why), 0);
	assert_string_equal(ip, "10.244.1.5");
	assert_int_equal(kd_gw_endpoint(svc, ep, phttps, 0, ip, sizeof(ip), &port, &why), 0);
	assert_int_equal(port, 8112);
	json_object_put(p80);
	json_object_put(phttps);
	json_object_put(svc);
	json_object_put(ep);
}

static void missing_pieces_are_named(void **state)
{
	(void)state;
	json_object *svc = parse(SVC);
	json_object *empty = parse("{\"subsets\":[]}");
	json_object *p81 = json_object_new_int(81);
	char ip[64];
	int port = 0;
	const char *why = NULL;
	assert_int_equal(kd_gw_endpoint(svc, empty, NULL, 0, ip, sizeof(ip), &port, &why), -ENOENT);
	assert_string_equal(why, "no ready endpoint");
	assert_int_equal(kd_gw_endpoint(svc, NULL, NULL, 0, ip, sizeof(ip), &port, &why), -ENOENT);
	assert_string_equal(why, "no ready endpoint");
	assert_int_equal(kd_gw_endpoint(svc, empty, p81, 0, ip, sizeof(ip), &port, &why), -ENOENT);
	assert_string_equal(why, "the Service has no such port");
	json_object *bad = parse("{\"subsets\":[{\"addresses\":[{\"ip\":\"10.0.0.1\"}],"
	                         "\"ports\":[{\"name\":\"http\",\"port\":0}]}]}");
	assert_int_equal(kd_gw_endpoint(svc, bad, NULL, 0, ip, sizeof(ip), &port, &why), -ENOENT);
	assert_string_equal(why, "malformed Endpoints");
	json_object_put(bad);
	json_object_put(p81);
	json_object_put(empty);
	json_object_put(svc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(paths_match_by_prefix_then_headers_then_catch_all),
	    cmocka_unit_test(splits_follow_their_percentages),
	    cmocka_unit_test(service_port_maps_to_the_endpoints_port_round_robin),
	    cmocka_unit_test(missing_pieces_are_named),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
