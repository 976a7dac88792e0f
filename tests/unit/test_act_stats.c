/* Unit tests for kd-activator's stats (activator-hook/stats.c, on lib/kd_statclient.c, whose
 * transport test_statclient covers): the WebSocket upgrade it sends to --autoscaler, read by a raw
 * loopback listener standing in for kd-autoscaler's stats endpoint. Checked: with --chan-token the
 * upgrade carries "Authorization: Bearer <token>" (what kd-autoscaler requires from non-loopback
 * peers when it has a token); without one it carries no Authorization header; until the
 * WebSocket opens kd_act_stats_connected is false, and without --autoscaler it is true. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../activator-hook/stats.c" /* NOLINT(bugprone-suspicious-include) */

/* Starts the client against a fresh listener; returns the upgrade request it sent (owned). */
static char *upgrade_sent(const char *token)
{
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	socklen_t sl = sizeof(sa);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);

	struct kd_act a;
	memset(&a, 0, sizeof(a));
	a.loop = kd_loop_new();
	a.cfg.autoscaler = kd_xasprintf("127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
	a.cfg.chan_token = token ? kd_xstrdup(token) : NULL;
	a.cfg.stats_period_ms = 60000;
	a.cfg.pod_name = kd_xstrdup("kd-activator-test");
	kd_autoerr struct kd_error *err = NULL;
	if (kd_act_stats_start(&a, &err) < 0)
		fail_msg("stats start: %s", kd_error_msg(err));
	assert_false(kd_act_stats_connected(&a));

	char buf[4096];
	size_t got = 0;
	int cfd = -1;
	uint64_t end = kd_now_ns() + 3000000000ull;
	while (kd_now_ns() < end && !memmem(buf, got, "\r\n\r\n", 4) && got < sizeof(buf) - 1) {
		kd_loop_run_once(a.loop, 5);
		if (cfd < 0)
			cfd = accept(lfd, NULL, NULL);
		if (cfd >= 0) {
			ssize_t r = recv(cfd, buf + got, sizeof(buf) - 1 - got, MSG_DONTWAIT);
			if (r > 0)
				got += (size_t)r;
		}
	}
	buf[got] = '\0';
	if (cfd >= 0)
		close(cfd);
	close(lfd);
	a.stopping = true;
	kd_act_stats_stop(&a);
	kd_loop_free(a.loop);
	free(a.cfg.autoscaler);
	free(a.cfg.chan_token);
	free(a.cfg.pod_name);
	assert_non_null(memmem(buf, got, "\r\n\r\n", 4));
	return kd_xstrdup(buf);
}

static void token_is_sent_as_bearer(void **state)
{
	(void)state;
	kd_autofree char *req = upgrade_sent("s3cret");
	assert_non_null(strstr(req, "GET / HTTP/1.1\r\n"));
	assert_non_null(strstr(req, "Upgrade: websocket"));
	assert_non_null(strcasestr(req, "\r\nAuthorization: Bearer s3cret\r\n"));
}

static void no_token_no_authorization(void **state)
{
	(void)state;
	kd_autofree char *req = upgrade_sent(NULL);
	assert_non_null(strstr(req, "Upgrade: websocket"));
	assert_null(strcasestr(req, "Authorization:"));
}

static void no_autoscaler_counts_as_connected(void **state)
{
	(void)state;
	struct kd_act a;
	memset(&a, 0, sizeof(a));
	a.loop = kd_loop_new();
	assert_int_equal(kd_act_stats_start(&a, NULL), 0);
	assert_null(a.stats);
	assert_true(kd_act_stats_connected(&a));
	kd_act_stats_stop(&a);
	kd_loop_free(a.loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(token_is_sent_as_bearer),
	    cmocka_unit_test(no_token_no_authorization),
	    cmocka_unit_test(no_autoscaler_counts_as_connected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
