/* Unit tests for lib/kd_statclient.c (kd/statclient.h): the client against a loopback WebSocket
 * server written here with libwebsockets (through kd_chan_lws, on the same loop), standing in for
 * an autoscaler's stats endpoint. Checked: frames arrive as binary messages that decode
 * (kd_wirestat_decode) to what was sent; a send before the connection opens is -ENOTCONN, one
 * past KD_STATCLIENT_MAX_QUEUED is -ENOBUFS, and every queued frame is then delivered; the bearer
 * token is in the upgrade's Authorization header, and there is no such header without a token;
 * after the server closes the connection the client reports it lost, reconnects and reports it
 * open again; a failing series of attempts is logged once, with the peer's name; freeing the
 * client from inside a loop callback closes the connection and never reconnects; a bad address
 * is an error naming it. */
#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "kd/chan.h"
#include "kd/loop.h"
#include "kd/statclient.h"
#include "kd/wirestat.h"
#include "kd_test_log.h"
#include "kd_test_loop.h"

/* ---- the stand-in server -------------------------------------------------------------------- */

struct srv {
	struct kd_chan_lws *lws;
	int port;
	struct lws *wsi;         /* the open connection, or NULL */
	unsigned upgrades;       /* upgrades seen (FILTER_PROTOCOL_CONNECTION) */
	unsigned conns, closes;  /* connections established and closed */
	bool had_auth;           /* the last upgrade had an Authorization header */
	char auth[256];          /* its value */
	unsigned frames, binary; /* messages received, of which binary */
	unsigned bad;            /* messages kd_wirestat_decode refused */
	struct kd_statmsg_list got;
	unsigned char *rx;
	size_t rx_len, rx_cap;
	bool kick; /* close the connection at the next writable */
};

static int srv_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	struct srv *s = ctx ? lws_context_user(ctx) : NULL;
	if (!s)
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		s->upgrades++;
		s->auth[0] = '\0';
		s->had_auth = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) > 0;
		if (s->had_auth)
			lws_hdr_copy(wsi, s->auth, sizeof(s->auth), WSI_TOKEN_HTTP_AUTHORIZATION);
		return 0;
	case LWS_CALLBACK_ESTABLISHED:
		s->wsi = wsi;
		s->conns++;
		return 0;
	case LWS_CALLBACK_RECEIVE:
		if (s->rx_len + len > s->rx_cap) {
			s->rx_cap = s->rx_len + len + 256;
			s->rx = kd_xrealloc(s->rx, s->rx_cap);
		}
		memcpy(s->rx + s->rx_len, in, len);
		s->rx_len += len;
		if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
			s->frames++;
			if (lws_frame_is_binary(wsi))
				s->binary++;
			struct kd_error *err = NULL;
			if (kd_wirestat_decode(s->rx, s->rx_len, &s->got, &err) < 0)
				s->bad++;
			kd_error_free(err);
			s->rx_len = 0;
		}
		return 0;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (s->kick) {
			s->kick = false;
			lws_close_reason(wsi, LWS_CLOSE_STATUS_GOINGAWAY, (unsigned char *)"bye",
			                 3);
			return -1;
		}
		return 0;
	case LWS_CALLBACK_CLOSED:
		if (wsi == s->wsi)
			s->wsi = NULL;
		s->closes++;
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static const struct lws_protocols srv_protocols[] = {
    {"stats", srv_cb, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- fixture --------------------------------------------------------------------------------- */

struct fx {
	struct kd_loop *loop;
	struct srv srv;
	char addr[64];
	struct kd_statclient *c;
	bool states[16]; /* on_state calls, in order */
	size_t n_states;
};

/* Runs the loop until cond holds or ms elapse; evaluates to cond. */
#define WAIT(f, cond, ms) KD_TEST_WAIT((f)->loop, cond, ms)

/* Runs the loop for ms milliseconds. */
static void spin(struct fx *f, uint64_t ms)
{
	kd_test_spin(f->loop, ms);
}

static void on_state(void *ud, bool connected)
{
	struct fx *f = ud;
	assert_true(f->n_states < KD_ARRAY_SIZE(f->states));
	f->states[f->n_states++] = connected;
}

static int setup(void **state)
{
	struct fx *f = kd_xcalloc(1, sizeof(*f));
	f->loop = kd_loop_new();
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = 0;
	info.iface = "127.0.0.1";
	info.protocols = srv_protocols;
	info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
	info.user = &f->srv;
	kd_autoerr struct kd_error *err = NULL;
	f->srv.lws = kd_chan_lws_new(f->loop, &info, &err);
	if (!f->srv.lws)
		fail_msg("test server: %s", kd_error_msg(err));
	struct lws_vhost *vh = lws_get_vhost_by_name(kd_chan_lws_context(f->srv.lws), "default");
	f->srv.port = vh ? lws_get_vhost_listen_port(vh) : -1;
	assert_true(f->srv.port > 0);
	snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", f->srv.port);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	kd_statclient_free(f->c);
	kd_chan_lws_free(f->srv.lws);
	kd_loop_free(f->loop);
	kd_statmsg_list_fini(&f->srv.got);
	free(f->srv.rx);
	free(f);
	return 0;
}

/* Starts the client on f's server (token may be NULL). */
static void start(struct fx *f, const char *token)
{
	struct kd_statclient_opts o = {.addr = f->addr,
	                               .token = token,
	                               .peer = "kd-autoscaler",
	                               .on_state = on_state,
	                               .ud = f};
	kd_autoerr struct kd_error *err = NULL;
	f->c = kd_statclient_new(f->loop, &o, &err);
	if (!f->c)
		fail_msg("kd_statclient_new: %s", kd_error_msg(err));
}

static void connect_client(struct fx *f, const char *token)
{
	start(f, token);
	assert_true(WAIT(f, kd_statclient_connected(f->c) && f->srv.wsi, 3000));
}

static struct kd_statmsg stat(const char *ns, const char *rev, const char *pod, double conc)
{
	struct kd_statmsg m;
	memset(&m, 0, sizeof(m));
	m.type = KD_STATMSG_STAT;
	m.ns = (char *)ns;
	m.revision = (char *)rev;
	m.has_stat = true;
	m.pod = (char *)pod;
	m.concurrency = conc;
	m.requests = 3;
	m.timestamp = 1763920000;
	return m;
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void frames_arrive_binary_and_decode_to_what_was_sent(void **state)
{
	struct fx *f = *state;
	connect_client(f, NULL);
	assert_int_equal(kd_statclient_frames_sent(f->c), 0);
	struct kd_statmsg one[2] = {stat("ns1", "rev-a", "kd-activator-0", 2.5),
	                            stat("ns2", "rev-b", "kd-activator-0", 0.25)};
	assert_int_equal(kd_statclient_send(f->c, one, 2), 0);
	struct kd_statmsg two = stat("ns1", "rev-a", "bench", 7);
	assert_int_equal(kd_statclient_send(f->c, &two, 1), 0);
	assert_true(WAIT(f, f->srv.frames == 2, 3000));
	assert_int_equal(f->srv.binary, 2);
	assert_int_equal(f->srv.bad, 0);
	assert_int_equal(kd_statclient_frames_sent(f->c), 2);
	assert_int_equal(f->srv.got.n, 3);
	const struct kd_statmsg *g = f->srv.got.v;
	assert_string_equal(g[0].ns, "ns1");
	assert_string_equal(g[0].revision, "rev-a");
	assert_string_equal(g[0].pod, "kd-activator-0");
	assert_true(g[0].has_stat);
	assert_true(g[0].concurrency == 2.5);
	assert_true(g[0].requests == 3);
	assert_int_equal(g[0].timestamp, 1763920000);
	assert_string_equal(g[1].ns, "ns2");
	assert_string_equal(g[1].revision, "rev-b");
	assert_true(g[1].concurrency == 0.25);
	assert_string_equal(g[2].pod, "bench");
	assert_true(g[2].concurrency == 7);
	/* one connection, no subprotocol asked for: the server's first protocol took it */
	assert_int_equal(f->srv.conns, 1);
	assert_int_equal(kd_statclient_send(f->c, one, 0), -EINVAL);
	/* the activator's single stat */
	assert_int_equal(kd_statclient_send_stat(f->c, "ns3", "rev-c", "scale-pods-bench", 50), 0);
	assert_true(WAIT(f, f->srv.frames == 3, 3000));
	assert_int_equal(f->srv.got.n, 4);
	g = f->srv.got.v;
	assert_string_equal(g[3].ns, "ns3");
	assert_string_equal(g[3].revision, "rev-c");
	assert_string_equal(g[3].pod, "scale-pods-bench");
	assert_true(g[3].has_stat);
	assert_true(g[3].concurrency == 50 && g[3].requests == 50);
	assert_true(g[3].timestamp > 1763920000);
}

static void send_before_connect_is_enotconn(void **state)
{
	struct fx *f = *state;
	start(f, NULL);
	assert_false(kd_statclient_connected(f->c));
	struct kd_statmsg m = stat("ns", "rev", "p", 1);
	assert_int_equal(kd_statclient_send(f->c, &m, 1), -ENOTCONN);
	assert_true(WAIT(f, kd_statclient_connected(f->c), 3000));
	assert_int_equal(f->n_states, 1);
	assert_true(f->states[0]);
	/* what was refused was not kept for later */
	spin(f, 50);
	assert_int_equal(f->srv.frames, 0);
	assert_int_equal(kd_statclient_frames_sent(f->c), 0);
}

static void full_queue_is_enobufs_and_the_queue_drains(void **state)
{
	struct fx *f = *state;
	connect_client(f, NULL);
	struct kd_statmsg m = stat("ns", "rev", "p", 1);
	/* the loop does not run in between: nothing is written yet */
	for (unsigned i = 0; i < KD_STATCLIENT_MAX_QUEUED; i++)
		assert_int_equal(kd_statclient_send(f->c, &m, 1), 0);
	assert_int_equal(kd_statclient_send(f->c, &m, 1), -ENOBUFS);
	assert_true(WAIT(f, f->srv.frames == KD_STATCLIENT_MAX_QUEUED, 5000));
	assert_int_equal(kd_statclient_frames_sent(f->c), KD_STATCLIENT_MAX_QUEUED);
	assert_int_equal(f->srv.binary, KD_STATCLIENT_MAX_QUEUED);
	assert_int_equal(f->srv.got.n, KD_STATCLIENT_MAX_QUEUED);
	/* room again */
	assert_int_equal(kd_statclient_send(f->c, &m, 1), 0);
	assert_true(WAIT(f, f->srv.frames == KD_STATCLIENT_MAX_QUEUED + 1, 3000));
}

static void token_is_sent_as_bearer(void **state)
{
	struct fx *f = *state;
	connect_client(f, "s3cret");
	assert_int_equal(f->srv.upgrades, 1);
	assert_true(f->srv.had_auth);
	assert_string_equal(f->srv.auth, "Bearer s3cret");
}

static void no_token_no_authorization(void **state)
{
	struct fx *f = *state;
	connect_client(f, NULL);
	assert_int_equal(f->srv.upgrades, 1);
	assert_false(f->srv.had_auth);
	kd_statclient_free(f->c);
	f->c = NULL;
	/* an empty token is no token either */
	connect_client(f, "");
	assert_int_equal(f->srv.upgrades, 2);
	assert_false(f->srv.had_auth);
}

static void reconnects_after_the_server_closes(void **state)
{
	struct fx *f = *state;
	kd_test_log_capture();
	connect_client(f, NULL);
	assert_int_equal(f->n_states, 1);
	f->srv.kick = true;
	lws_callback_on_writable(f->srv.wsi);
	assert_true(WAIT(f, f->n_states >= 2, 3000));
	assert_false(f->states[1]);
	assert_false(kd_statclient_connected(f->c));
	struct kd_statmsg m = stat("ns", "rev", "p", 1);
	assert_int_equal(kd_statclient_send(f->c, &m, 1), -ENOTCONN);
	assert_true(WAIT(f, f->n_states >= 3, 3000));
	assert_true(f->states[2]);
	assert_true(kd_statclient_connected(f->c));
	assert_true(WAIT(f, f->srv.conns == 2 && f->srv.wsi, 3000));
	/* the new connection carries frames */
	assert_int_equal(kd_statclient_send(f->c, &m, 1), 0);
	assert_true(WAIT(f, f->srv.frames == 1, 3000));
	assert_int_equal(f->n_states, 3);
	kd_autofree char *logs = kd_test_log_take();
	char want[128];
	snprintf(want, sizeof(want), "stats: connected to kd-autoscaler at %s", f->addr);
	assert_non_null(strstr(logs, want));
	assert_non_null(strstr(strstr(logs, want) + 1, want)); /* twice */
	snprintf(want, sizeof(want), "stats: connection to kd-autoscaler at %s closed", f->addr);
	assert_non_null(strstr(logs, want));
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* A port nothing listens on: bound, then closed. */
static int dead_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	socklen_t sl = sizeof(sa);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static void failing_attempts_are_logged_once_with_the_peer_name(void **state)
{
	struct fx *f = *state;
	snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", dead_port());
	kd_test_log_capture();
	struct kd_statclient_opts o = {.addr = f->addr, .on_state = on_state, .ud = f};
	f->c = kd_statclient_new(f->loop, &o, NULL);
	assert_non_null(f->c);
	/* backoff 100 ms doubling: a few attempts in 600 ms */
	spin(f, 600);
	assert_false(kd_statclient_connected(f->c));
	assert_int_equal(f->n_states, 0); /* never open, so never lost */
	kd_autofree char *logs = kd_test_log_take();
	char want[128];
	snprintf(want, sizeof(want), "stats: connection to autoscaler at %s failed", f->addr);
	assert_int_equal(count(logs ? logs : "", want), 1);
}

static void free_cb(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	struct fx *f = arg;
	(void)loop;
	kd_statclient_free(f->c);
	f->c = NULL;
	kd_loop_timer_free(t);
}

/* Freed from inside a loop callback (lws finishes on the loop): the server sees the connection
 * close, the client's callbacks are over and nothing reconnects. */
static void free_inside_a_loop_callback_closes_and_never_reconnects(void **state)
{
	struct fx *f = *state;
	connect_client(f, NULL);
	struct kd_statmsg m = stat("ns", "rev", "p", 1);
	assert_int_equal(kd_statclient_send(f->c, &m, 1), 0); /* queued, then dropped */
	kd_loop_timer_start(kd_loop_timer_new(f->loop, free_cb, f), 0);
	assert_true(WAIT(f, f->c == NULL, 1000));
	assert_true(WAIT(f, f->srv.closes == 1, 3000));
	spin(f, 300); /* longer than the first backoff */
	assert_int_equal(f->srv.conns, 1);
	assert_int_equal(f->srv.upgrades, 1);
	assert_int_equal(f->n_states, 1); /* no on_state from kd_statclient_free */
}

/* Freed outside the loop while open: no on_state, and the server sees the close. */
static void free_outside_the_loop_reports_nothing(void **state)
{
	struct fx *f = *state;
	connect_client(f, NULL);
	kd_statclient_free(f->c);
	f->c = NULL;
	assert_true(WAIT(f, f->srv.closes == 1, 3000));
	spin(f, 300);
	assert_int_equal(f->srv.conns, 1);
	assert_int_equal(f->n_states, 1);
}

static void bad_address_is_a_clear_error(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *addr, *msg;
	} cases[] = {
	    {"nope", "stats client: channel address \"nope\": expected host:port"},
	    {"127.0.0.1:0", "stats client: channel address \"127.0.0.1:0\": bad port (1-65535)"},
	    {"127.0.0.1:99999", "bad port (1-65535)"},
	    {"bad_host:80", "stats client: channel address \"bad_host:80\": bad host"},
	    {"", "stats client: channel address is empty"},
	    {NULL, "stats client: no address"},
	};
	for (size_t i = 0; i < KD_ARRAY_SIZE(cases); i++) {
		struct kd_statclient_opts o = {.addr = cases[i].addr};
		kd_autoerr struct kd_error *err = NULL;
		assert_null(kd_statclient_new(f->loop, &o, &err));
		assert_non_null(err);
		assert_int_equal(err->errnum, EINVAL);
		if (!strstr(kd_error_msg(err), cases[i].msg))
			fail_msg("%s: got \"%s\", want \"%s\"",
			         cases[i].addr ? cases[i].addr : "NULL", kd_error_msg(err),
			         cases[i].msg);
	}
	assert_null(kd_statclient_new(f->loop, NULL, NULL));
	kd_statclient_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(frames_arrive_binary_and_decode_to_what_was_sent, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(send_before_connect_is_enotconn, setup, teardown),
	    cmocka_unit_test_setup_teardown(full_queue_is_enobufs_and_the_queue_drains, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(token_is_sent_as_bearer, setup, teardown),
	    cmocka_unit_test_setup_teardown(no_token_no_authorization, setup, teardown),
	    cmocka_unit_test_setup_teardown(reconnects_after_the_server_closes, setup, teardown),
	    cmocka_unit_test_setup_teardown(failing_attempts_are_logged_once_with_the_peer_name,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(free_inside_a_loop_callback_closes_and_never_reconnects,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(free_outside_the_loop_reports_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(bad_address_is_a_clear_error, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
