/* Unit tests for kd-autoscaler's stats WebSocket (autoscaler-shim/stats.c on kd_chan_lws): a raw
 * RFC 6455 client on loopback sends what Knative's activator and our tools send; the revision
 * table (pa.c) is replaced by recording doubles of kd_as_record / kd_as_manual_scale. Checked:
 * binary WireStatMessages (also fragmented) become samples, JSON scale messages become direct
 * decisions, entries without a stat are skipped, undecodable frames are dropped without closing
 * the connection, and pings are answered with pongs carrying the same payload. Authentication:
 * without --chan-token, scale messages are applied from loopback peers only (stats from anyone);
 * with it, scale messages need the bearer token, a wrong token or a network peer without one is
 * refused at the upgrade (401), and a loopback peer without it may still send stats. A network
 * peer is this host's first non-loopback IPv4 address (the test is skipped without one). */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../autoscaler-shim/stats.c" /* NOLINT(bugprone-suspicious-include) */
#include "kd_test_log.h"

/* ---- doubles of pa.c ------------------------------------------------------------------------- */

struct sample_rec {
	char ns[64], name[64], source[64];
	double concurrency, rps;
};
static struct sample_rec samples[16];
static size_t n_samples;
static struct {
	char ns[64], name[64];
	int32_t desired;
} scales[8];
static size_t n_scales;

void kd_as_record(struct kd_as *as, const char *ns, const char *name,
                  const struct kd_metric_sample *s)
{
	(void)as;
	if (n_samples == KD_ARRAY_SIZE(samples))
		return;
	struct sample_rec *r = &samples[n_samples++];
	snprintf(r->ns, sizeof(r->ns), "%s", ns);
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->source, sizeof(r->source), "%s", s->source ? s->source : "");
	r->concurrency = s->concurrency;
	r->rps = s->rps;
}

void kd_as_manual_scale(struct kd_as *as, const char *ns, const char *name, int32_t desired)
{
	(void)as;
	if (n_scales == KD_ARRAY_SIZE(scales))
		return;
	snprintf(scales[n_scales].ns, sizeof(scales[0].ns), "%s", ns);
	snprintf(scales[n_scales].name, sizeof(scales[0].name), "%s", name);
	scales[n_scales++].desired = desired;
}

/* ---- a raw WebSocket client ------------------------------------------------------------------ */

struct fx {
	struct kd_as as;
	int fd;
};

static void pump(struct fx *f, int ms)
{
	uint64_t end = kd_now_ns() + (uint64_t)ms * 1000000u;
	while (kd_now_ns() < end)
		kd_loop_run_once(f->as.loop, 5);
}

/* Pumps the loop until n bytes arrived on the client socket (bounded: 3 s). */
static void client_read(struct fx *f, uint8_t *buf, size_t n)
{
	size_t got = 0;
	uint64_t end = kd_now_ns() + 3000000000ull;
	while (got < n && kd_now_ns() < end) {
		kd_loop_run_once(f->as.loop, 5);
		ssize_t r = recv(f->fd, buf + got, n - got, MSG_DONTWAIT);
		if (r > 0)
			got += (size_t)r;
		else if (r == 0)
			fail_msg("server closed the connection");
	}
	assert_int_equal(got, n);
}

static void client_send(struct fx *f, const void *buf, size_t n)
{
	assert_int_equal(send(f->fd, buf, n, 0), (ssize_t)n);
}

/* One masked client frame: fin/opcode, payload. */
static void send_frame(struct fx *f, bool fin, unsigned opcode, const void *payload, size_t n)
{
	uint8_t hdr[8 + 4];
	size_t h = 0;
	hdr[h++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
	assert_true(n < 65536);
	if (n < 126) {
		hdr[h++] = (uint8_t)(0x80 | n);
	} else {
		hdr[h++] = 0x80 | 126;
		hdr[h++] = (uint8_t)(n >> 8);
		hdr[h++] = (uint8_t)n;
	}
	const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
	memcpy(hdr + h, mask, 4);
	h += 4;
	uint8_t *body = kd_xmalloc(n ? n : 1);
	for (size_t i = 0; i < n; i++)
		body[i] = ((const uint8_t *)payload)[i] ^ mask[i % 4];
	client_send(f, hdr, h);
	if (n)
		client_send(f, body, n);
	free(body);
}

/* Starts the stats server (bind address, --chan-token or NULL). */
static struct fx *fx_new(const char *bind, const char *token)
{
	struct fx *f = kd_xcalloc(1, sizeof(*f));
	f->fd = -1;
	f->as.loop = kd_loop_new();
	f->as.cfg.stats_bind = kd_xstrdup(bind);
	f->as.cfg.stats_port = 0;
	f->as.cfg.chan_token = token ? kd_xstrdup(token) : NULL;
	kd_autoerr struct kd_error *err = NULL;
	if (kd_as_stats_start(&f->as, &err) < 0)
		fail_msg("stats start: %s", kd_error_msg(err));
	assert_true(kd_as_stats_port(&f->as) > 0);
	n_samples = n_scales = 0;
	return f;
}

/* Connects (a new connection replaces the previous one) from/to ip and sends the upgrade, with
 * `Authorization: <auth>` when auth is not NULL. Returns the HTTP status of the answer. */
static int fx_upgrade(struct fx *f, const char *ip, const char *auth)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)kd_as_stats_port(&f->as))};
	assert_int_equal(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
	assert_int_equal(connect(f->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	kd_autofree char *up = kd_xasprintf(
	    "GET / HTTP/1.1\r\nHost: autoscaler.knative-serving.svc.cluster.local:8080\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
	    auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
	client_send(f, up, strlen(up));
	char resp[1024];
	size_t got = 0;
	uint64_t end = kd_now_ns() + 3000000000ull;
	while (!memmem(resp, got, "\r\n\r\n", 4) && kd_now_ns() < end && got < sizeof(resp)) {
		kd_loop_run_once(f->as.loop, 5);
		ssize_t r = recv(f->fd, resp + got, sizeof(resp) - got, MSG_DONTWAIT);
		if (r > 0)
			got += (size_t)r;
	}
	assert_true(got > 12);
	assert_memory_equal(resp, "HTTP/1.", 7); /* lws answers a refusal in HTTP/1.0 */
	int status = atoi(resp + 9);
	if (status == 101) /* RFC 6455's own example key/accept pair */
		assert_non_null(memmem(resp, got, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28));
	return status;
}

static void fx_free(struct fx *f)
{
	if (f->fd >= 0)
		close(f->fd);
	kd_as_stats_stop(&f->as);
	free(f->as.cfg.stats_bind);
	free(f->as.cfg.chan_token);
	kd_loop_free(f->as.loop);
	free(f);
}

static int setup(void **state)
{
	struct fx *f = fx_new("127.0.0.1", NULL);
	assert_int_equal(fx_upgrade(f, "127.0.0.1", NULL), 101);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx_free(*state);
	return 0;
}

static uint8_t *poke_frame(const char *ns, const char *rev, double conc, size_t *len)
{
	struct kd_statmsg m = {.type = KD_STATMSG_STAT,
	                       .ns = (char *)ns,
	                       .revision = (char *)rev,
	                       .has_stat = true,
	                       .pod = (char *)"activator-0",
	                       .concurrency = conc,
	                       .requests = 1};
	return kd_wirestat_encode(&m, 1, len);
}

static void binary_stats_become_samples(void **state)
{
	struct fx *f = *state;
	size_t n = 0;
	uint8_t *b = poke_frame("demo", "hello-00001", 1.0, &n);
	send_frame(f, true, 2, b, n);
	free(b);
	for (int i = 0; i < 200 && n_samples < 1; i++)
		kd_loop_run_once(f->as.loop, 5);
	assert_int_equal(n_samples, 1);
	assert_string_equal(samples[0].ns, "demo");
	assert_string_equal(samples[0].name, "hello-00001");
	assert_string_equal(samples[0].source, "activator-0");
	assert_true(samples[0].concurrency == 1.0);
	assert_true(samples[0].rps == 1.0);
	/* an entry without stat is skipped, as by Knative's server */
	const uint8_t nostat[] = {0x0a, 0x06, 0x0a, 0x01, 'd', 0x12, 0x01, 'r'};
	send_frame(f, true, 2, nostat, sizeof(nostat));
	pump(f, 100);
	assert_int_equal(n_samples, 1);
}

static void fragmented_message_is_reassembled(void **state)
{
	struct fx *f = *state;
	size_t n = 0;
	uint8_t *b = poke_frame("demo", "frag-00001", 2.5, &n);
	send_frame(f, false, 2, b, 10);
	pump(f, 50);
	assert_int_equal(n_samples, 0); /* nothing before the last fragment */
	send_frame(f, true, 0, b + 10, n - 10);
	free(b);
	for (int i = 0; i < 200 && n_samples < 1; i++)
		kd_loop_run_once(f->as.loop, 5);
	assert_int_equal(n_samples, 1);
	assert_string_equal(samples[0].name, "frag-00001");
	assert_true(samples[0].concurrency == 2.5);
}

static void json_scale_and_bad_frames(void **state)
{
	struct fx *f = *state;
	const char *bad = "{\"type\":\"scale\",\"namespace\":\"demo\"";
	send_frame(f, true, 1, bad, strlen(bad));
	const uint8_t badbin[] = {0x0a, 0x7f, 0x00};
	send_frame(f, true, 2, badbin, sizeof(badbin));
	const char *ok = "{\"type\":\"scale\",\"namespace\":\"demo\",\"revision\":\"hello-00001\","
	                 "\"desired\":7}";
	send_frame(f, true, 1, ok, strlen(ok));
	for (int i = 0; i < 200 && n_scales < 1; i++)
		kd_loop_run_once(f->as.loop, 5);
	assert_int_equal(n_scales, 1); /* the connection survived the bad frames */
	assert_string_equal(scales[0].name, "hello-00001");
	assert_int_equal(scales[0].desired, 7);
	assert_int_equal(f->as.stats->bad_frames, 2);
	assert_int_equal(f->as.stats->scales, 1);
	assert_int_equal(n_samples, 0);
}

static void ping_gets_pong(void **state)
{
	struct fx *f = *state;
	send_frame(f, true, 9, "kd-ping", 7);
	uint8_t hdr[2] = {0};
	client_read(f, hdr, 2);
	assert_int_equal(hdr[0], 0x8a); /* FIN + pong */
	assert_int_equal(hdr[1], 7);    /* unmasked, 7 bytes */
	uint8_t payload[7] = {0};
	client_read(f, payload, 7);
	assert_memory_equal(payload, "kd-ping", 7);
}

/* This host's first non-loopback IPv4 address, or false. */
static bool network_ip(char *buf, size_t len)
{
	struct ifaddrs *ifs = NULL;
	bool found = false;
	if (getifaddrs(&ifs) < 0)
		return false;
	for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP) ||
		    (i->ifa_flags & IFF_LOOPBACK))
			continue;
		const struct sockaddr_in *a = (const struct sockaddr_in *)i->ifa_addr;
		found = inet_ntop(AF_INET, &a->sin_addr, buf, (socklen_t)len) != NULL;
	}
	freeifaddrs(ifs);
	return found;
}

static const char scale_msg[] =
    "{\"type\":\"scale\",\"namespace\":\"demo\",\"revision\":\"hello-00001\",\"desired\":3}";

/* Sends one stat and one scale message; pumps until the stat arrived. */
static void send_stat_and_scale(struct fx *f)
{
	size_t n = 0;
	uint8_t *b = poke_frame("demo", "hello-00001", 1.0, &n);
	send_frame(f, true, 1, scale_msg, strlen(scale_msg));
	send_frame(f, true, 2, b, n);
	free(b);
	size_t want = n_samples + 1;
	for (int i = 0; i < 200 && n_samples < want; i++)
		kd_loop_run_once(f->as.loop, 5);
	assert_int_equal(n_samples, want);
}

static void no_token_scale_only_from_loopback(void **state)
{
	(void)state;
	char ip[INET_ADDRSTRLEN];
	if (!network_ip(ip, sizeof(ip)))
		skip();
	struct fx *f = fx_new("0.0.0.0", NULL);
	/* a network peer: stats are taken (Knative's activator sends no token), scale is not */
	assert_int_equal(fx_upgrade(f, ip, NULL), 101);
	kd_test_log_capture();
	send_stat_and_scale(f);
	kd_autofree char *logs = kd_test_log_take();
	assert_int_equal(n_scales, 0);
	assert_int_equal(f->as.stats->refused, 1);
	kd_autofree char *line =
	    kd_xasprintf("stats: scale demo/hello-00001 to 3 from %s refused: not "
	                 "a loopback peer",
	                 ip);
	assert_non_null(strstr(logs, line));
	/* the same from loopback: applied */
	assert_int_equal(fx_upgrade(f, "127.0.0.1", NULL), 101);
	send_stat_and_scale(f);
	assert_int_equal(n_scales, 1);
	assert_int_equal(scales[0].desired, 3);
	assert_int_equal(f->as.stats->refused, 1);
	fx_free(f);
}

static void token_scale_needs_the_token(void **state)
{
	(void)state;
	struct fx *f = fx_new("127.0.0.1", "s3cret");
	/* loopback without the token: stats yes, scale refused */
	assert_int_equal(fx_upgrade(f, "127.0.0.1", NULL), 101);
	kd_test_log_capture();
	send_stat_and_scale(f);
	kd_autofree char *logs = kd_test_log_take();
	assert_int_equal(n_scales, 0);
	assert_int_equal(f->as.stats->refused, 1);
	assert_non_null(strstr(logs, "from 127.0.0.1 refused: the peer sent no bearer token"));
	/* a wrong token is refused at the upgrade, even from loopback */
	assert_int_equal(fx_upgrade(f, "127.0.0.1", "Bearer s3creT"), 401);
	assert_int_equal(fx_upgrade(f, "127.0.0.1", "Basic s3cret"), 401);
	assert_int_equal(f->as.stats->refused_upgrades, 2);
	/* the token: scale applied */
	assert_int_equal(fx_upgrade(f, "127.0.0.1", "Bearer s3cret"), 101);
	send_stat_and_scale(f);
	assert_int_equal(n_scales, 1);
	assert_string_equal(scales[0].name, "hello-00001");
	assert_int_equal(scales[0].desired, 3);
	assert_int_equal(n_samples, 2);
	fx_free(f);
}

static void token_network_peer_needs_the_token(void **state)
{
	(void)state;
	char ip[INET_ADDRSTRLEN];
	if (!network_ip(ip, sizeof(ip)))
		skip();
	struct fx *f = fx_new("0.0.0.0", "s3cret");
	/* no token from the network: refused before any frame (stats too) */
	assert_int_equal(fx_upgrade(f, ip, NULL), 401);
	assert_int_equal(f->as.stats->refused_upgrades, 1);
	assert_int_equal(n_samples, 0);
	/* with it: stats and scale */
	assert_int_equal(fx_upgrade(f, ip, "bearer s3cret"), 101);
	send_stat_and_scale(f);
	assert_int_equal(n_scales, 1);
	assert_int_equal(f->as.stats->refused, 0);
	fx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(binary_stats_become_samples, setup, teardown),
	    cmocka_unit_test_setup_teardown(fragmented_message_is_reassembled, setup, teardown),
	    cmocka_unit_test_setup_teardown(json_scale_and_bad_frames, setup, teardown),
	    cmocka_unit_test_setup_teardown(ping_gets_pong, setup, teardown),
	    cmocka_unit_test(no_token_scale_only_from_loopback),
	    cmocka_unit_test(token_scale_needs_the_token),
	    cmocka_unit_test(token_network_peer_needs_the_token),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
