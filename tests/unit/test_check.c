/* tests/unit/test_check.c: checks of operator input (kd/check.h): DNS-1123 names, quantities,
 * host:port, IP literals, and the listen probe on a taken, a free and a bad address. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "kd/check.h"

/* perr: read after rc was computed (the call that fills it is an argument of this one) */
static void expect_err(int rc, int want_rc, struct kd_error **perr, const char *want_msg)
{
	assert_int_equal(rc, want_rc);
	assert_non_null(*perr);
	assert_string_equal(kd_error_msg(*perr), want_msg);
	kd_error_free(*perr);
	*perr = NULL;
}

static void dns_names(void **state)
{
	(void)state;
	const char *labels[] = {"a", "default", "kd-test-1", "0abc",
	                        "123456789012345678901234567890123456789012345678901234567890123"};
	for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
		assert_null(kd_dns_label_why(labels[i], strlen(labels[i])));
		assert_int_equal(kd_check_dns_label("--namespace", labels[i], NULL), 0);
	}
	struct kd_error *err = NULL;
	expect_err(kd_check_dns_label("--namespace", "Default", &err), -EINVAL, &err,
	           "--namespace: \"Default\" is not a DNS-1123 label: has a character outside "
	           "[a-z0-9-]");
	expect_err(kd_check_dns_label("--namespace", "-x", &err), -EINVAL, &err,
	           "--namespace: \"-x\" is not a DNS-1123 label: must start and end with [a-z0-9]");
	expect_err(kd_check_dns_label("--namespace", "a.b", &err), -EINVAL, &err,
	           "--namespace: \"a.b\" is not a DNS-1123 label: has a character outside "
	           "[a-z0-9-]");
	expect_err(kd_check_dns_label("--namespace", "", &err), -EINVAL, &err,
	           "--namespace: \"\" is not a DNS-1123 label: is empty");
	char long_label[65];
	memset(long_label, 'a', 64);
	long_label[64] = '\0';
	assert_string_equal(kd_dns_label_why(long_label, 64), "is longer than 63 characters");

	assert_int_equal(kd_check_dns_subdomain("--node-prefix", "kd-node.rack-1", NULL), 0);
	expect_err(kd_check_dns_subdomain("--node-prefix", "kd..node", &err), -EINVAL, &err,
	           "--node-prefix: \"kd..node\" is not a DNS-1123 subdomain: has an empty DNS "
	           "label");
	expect_err(kd_check_dns_subdomain("--node-prefix", "kd_node", &err), -EINVAL, &err,
	           "--node-prefix: \"kd_node\" is not a DNS-1123 subdomain: has a character "
	           "outside [a-z0-9.-]");
}

static void quantities(void **state)
{
	(void)state;
	int64_t v = 0;
	assert_int_equal(kd_check_quantity("--cpu", "500m", true, &v, NULL), 0);
	assert_int_equal(v, 500);
	assert_int_equal(kd_check_quantity("--cpu", "32", true, &v, NULL), 0);
	assert_int_equal(v, 32000);
	assert_int_equal(kd_check_quantity("--memory", "128Gi", false, &v, NULL), 0);
	assert_int_equal(v, 128LL << 30);
	assert_int_equal(kd_check_quantity("--memory", "1G", false, NULL, NULL), 0);
	struct kd_error *err = NULL;
	v = 7;
	expect_err(kd_check_quantity("--cpu", "lots", true, &v, &err), -EINVAL, &err,
	           "--cpu: \"lots\" is not a Kubernetes quantity (e.g. 500m, 2, 1.5)");
	assert_int_equal(v, 7); /* untouched on failure */
	expect_err(kd_check_quantity("--memory", "-1Gi", false, NULL, &err), -EINVAL, &err,
	           "--memory: \"-1Gi\" is not a Kubernetes quantity (e.g. 512Mi, 128Gi, 1G)");
	expect_err(kd_check_quantity("--memory", "128GB", false, NULL, &err), -EINVAL, &err,
	           "--memory: \"128GB\" is not a Kubernetes quantity (e.g. 512Mi, 128Gi, 1G)");
	expect_err(kd_check_quantity("--memory", "100Ei", false, NULL, &err), -ERANGE, &err,
	           "--memory: \"100Ei\" is too large a quantity");
}

static void hostports_and_ips(void **state)
{
	(void)state;
	char *host = NULL;
	int port = 0;
	assert_int_equal(kd_hostport_parse("--status-addr", "127.0.0.1:9471", &host, &port, NULL),
	                 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 9471);
	free(host);
	host = NULL;
	assert_int_equal(kd_hostport_parse("--autoscaler", "[fd00::1]:8080", &host, &port, NULL),
	                 0);
	assert_string_equal(host, "fd00::1");
	free(host);
	assert_int_equal(kd_hostport_parse("x", "kd-autoscaler.kube-system:8080", NULL, NULL, NULL),
	                 0);
	struct {
		const char *in, *msg;
	} bad[] = {
	    {"127.0.0.1", "--status-addr \"127.0.0.1\": expected host:port"},
	    {"127.0.0.1:0", "--status-addr \"127.0.0.1:0\": bad port (1-65535)"},
	    {"127.0.0.1:65536", "--status-addr \"127.0.0.1:65536\": bad port (1-65535)"},
	    {"127.0.0.1:http", "--status-addr \"127.0.0.1:http\": bad port (1-65535)"},
	    {"a b:1", "--status-addr \"a b:1\": bad host"},
	    {"fd00::1:80", "--status-addr \"fd00::1:80\": expected host:port"},
	    {"[fd00::zz]:80", "--status-addr \"[fd00::zz]:80\": bad IPv6 literal"},
	    {"", "--status-addr is empty"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct kd_error *err = NULL;
		host = (char *)"untouched";
		expect_err(kd_hostport_parse("--status-addr", bad[i].in, &host, &port, &err),
		           -EINVAL, &err, bad[i].msg);
		assert_string_equal(host, "untouched");
	}

	assert_int_equal(kd_check_ip("--bind", "0.0.0.0", true, NULL), 0);
	assert_int_equal(kd_check_ip("--bind", "::1", false, NULL), 0);
	struct kd_error *err = NULL;
	expect_err(kd_check_ip("--stats-bind", "::1", true, &err), -EINVAL, &err,
	           "--stats-bind: \"::1\" is not an IPv4 address");
	expect_err(kd_check_ip("--bind", "localhost", false, &err), -EINVAL, &err,
	           "--bind: \"localhost\" is not an IPv4 or IPv6 address");
}

/* A socket listening on 127.0.0.1:<ephemeral>; its port in *port. */
static int listener(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 1), 0);
	socklen_t sl = sizeof(sa);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static void chan_token_refused_unset_in_a_pod_short_or_with_spaces(void **state)
{
	(void)state;
	struct kd_error *err = NULL;
	/* unset: fine outside a Pod, refused inside one unless insecure */
	assert_int_equal(kd_check_chan_token(NULL, false, false, NULL), 0);
	assert_int_equal(kd_check_chan_token("", false, false, NULL), 0);
	assert_int_equal(kd_check_chan_token(NULL, true, false, &err), -EINVAL);
	assert_non_null(strstr(kd_error_msg(err), "--insecure-channels"));
	kd_error_free(err);
	err = NULL;
	assert_int_equal(kd_check_chan_token("", true, true, NULL), 0);
	/* set: long enough, no whitespace or control characters */
	assert_int_equal(kd_check_chan_token("0123456789abcdef", true, false, NULL), 0);
	assert_int_equal(kd_check_chan_token("short", false, false, &err), -EINVAL);
	assert_non_null(strstr(kd_error_msg(err), "at least 16"));
	kd_error_free(err);
	err = NULL;
	assert_int_equal(kd_check_chan_token("0123456789abcdef\n", false, false, &err), -EINVAL);
	assert_non_null(strstr(kd_error_msg(err), "control character at 16"));
	kd_error_free(err);
	err = NULL;
	assert_int_equal(kd_check_chan_token("01234567 89abcdef", false, false, &err), -EINVAL);
	kd_error_free(err);
	/* where it runs */
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	assert_true(kd_in_pod());
	unsetenv("KUBERNETES_SERVICE_HOST");
	assert_false(kd_in_pod());
}

static void listen_probe(void **state)
{
	(void)state;
	int port;
	int fd = listener(&port);
	struct kd_error *err = NULL;
	char want[96];
	snprintf(want, sizeof(want), "listen 127.0.0.1:%d: Address already in use", port);
	expect_err(kd_listen_probe("127.0.0.1", port, &err), -EADDRINUSE, &err, want);
	close(fd);
	/* free now: the probe leaves nothing bound behind (twice in a row) */
	assert_int_equal(kd_listen_probe("127.0.0.1", port, NULL), 0);
	assert_int_equal(kd_listen_probe("127.0.0.1", port, NULL), 0);
	assert_int_equal(kd_listen_probe(NULL, 0, NULL), 0);
	expect_err(kd_listen_probe("not-an-ip", 80, &err), -EINVAL, &err,
	           "listen not-an-ip:80: not an IPv4 or IPv6 address");
	expect_err(kd_listen_probe("127.0.0.1", 70000, &err), -EINVAL, &err,
	           "listen 127.0.0.1:70000: the port is not in 0-65535");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(dns_names),
	    cmocka_unit_test(quantities),
	    cmocka_unit_test(hostports_and_ips),
	    cmocka_unit_test(chan_token_refused_unset_in_a_pod_short_or_with_spaces),
	    cmocka_unit_test(listen_probe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
