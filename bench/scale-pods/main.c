/* bench/scale-pods: the kubedirect arm of the `scale-pods` benchmark on the rig (the
 * vanilla arm is bench/scale-pods-vanilla; bench/scale-pods/run.sh runs both from one command).
 *
 * For each N in --counts: make kd-autoscaler decide "revision R: N instances" and record, from
 * the moment the decision's input is written:
 *  (a) routable: when each instance is reported ready through the chain. This program serves a
 *      status channel (kd_chan downstream, --status-port) and the bench's kd-node reports to it
 *      as well as to kd-autoscaler (kd-node --status-addr AS,BENCH): the same status op, at the
 *      same moment, that kd-autoscaler (and through it the data plane) receives;
 *  (b) API Ready: when each instance Pod is first seen Ready=True through an API Server watch
 *      (informer on the revision's pods, started before the message) - the write-back lag;
 *  (c) with --activator-admin: routable in the data plane, the moment kd-activator holds each
 *      instance as ready in its routing table (its /debug/routes `routable_since_ms`, read once
 *      the run is complete: CLOCK_MONOTONIC ms, the clock this program times with). This is the
 *      "routable" the ratio uses: a request sent then is forwarded to the instance.
 * The input (--decision):
 *  - stat (default): the stat Knative's activator would send, concurrency N for the revision,
 *    as one WireStatMessages frame (kd/statclient.h) on kd-autoscaler's stats WebSocket, repeated
 *    every --stat-period during the run. kd's decider (plugins/decider-kpa, Knative's KPA
 *    arithmetic) decides N at once (a poke: the revision has no instance), given the Services'
 *    target 1 and target-utilization 100 %. bench/scale-pods-vanilla --knative-stats sends the
 *    same frame to Knative's autoscaler for the vanilla arm. One revision per N (--revisions),
 *    whose Knative Service (--services) is deleted after its run, so no run inherits a
 *    decider's window from the one before.
 *  - scale: the JSON "scale" message with the decision itself (the decider bypassed), one
 *    --revision scaled back to 0 between runs.
 * Then waits until every instance Pod is gone before the next N.
 *
 * Output: a table on stdout and JSON (--json FILE). Exit 0 if every run reached N on both
 * measures within --timeout, 1 otherwise. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "kd/chan.h"
#include "kd/config.h"
#include "kd/instance.h"
#include "kd/json.h"
#include "kd/k8s.h"
#include "kd/log.h"
#include "kd/loop.h"
#include "kd/statclient.h"
#include "kd/watch.h"

struct bench_cfg {
	char *kubeconfig;
	char *ns;
	char *revision;
	char *stats_addr;
	uint64_t status_port;
	struct kd_strlist counts;
	uint64_t timeout_ms;
	char *json_out;
	char *activator_admin;
	char *chan_token;
	char *decision;
	struct kd_strlist revisions, services;
	uint64_t stat_period_ms;
};

#define C struct bench_cfg
static const struct kd_config_option options[] = {
    KD_OPT_STRING("kubeconfig", C, kubeconfig, .env = "KUBECONFIG", .metavar = "FILE",
                  .help = "kubeconfig (default: $KUBECONFIG, in-cluster, ~/.kube/config)"),
    KD_OPT_STRING("namespace", C, ns, .required = true, .help = "namespace of the revision"),
    KD_OPT_STRING("decision", C, decision, .def = "stat", .metavar = "stat|scale",
                  .help = "stat: send the stat Knative's activator would (concurrency N), kd's "
                          "decider decides; scale: hand kd-autoscaler the decision itself"),
    KD_OPT_STRLIST("revisions", C, revisions,
                   .help = "--decision stat: one kd-class revision per --counts entry, at zero"),
    KD_OPT_STRLIST("services", C, services,
                   .help = "--decision stat: their Knative Services, deleted after their run"),
    KD_OPT_DURATION("stat-period", C, stat_period_ms, .def = "1s",
                    .help = "--decision stat: the stat is repeated this often during a run"),
    KD_OPT_STRING("revision", C, revision,
                  .help = "--decision scale: the kd-class revision (= PodAutoscaler) to scale"),
    KD_OPT_STRING("stats-addr", C, stats_addr, .def = "127.0.0.1:8080", .metavar = "HOST:PORT",
                  .help = "kd-autoscaler's stats WebSocket"),
    KD_OPT_UINT("status-port", C, status_port, .def = "19482", .has_max = true, .max = 65535,
                .help = "our status channel (127.0.0.1), listed in kd-node's --status-addr"),
    KD_OPT_STRLIST("counts", C, counts, .def = "50,200,500", .help = "scale targets N, in order"),
    KD_OPT_DURATION("timeout", C, timeout_ms, .def = "120s",
                    .help = "per run: time allowed to reach N (and back to 0)"),
    KD_OPT_STRING("json", C, json_out, .metavar = "FILE", .help = "write results as JSON"),
    KD_OPT_STRING("activator-admin", C, activator_admin, .metavar = "HOST:PORT",
                  .help = "kd-activator's admin server: time routable in its routing table too"),
    KD_OPT_STRING("chan-token", C, chan_token, .env = "KD_CHAN_TOKEN", .metavar = "TOKEN",
                  .help = "kd-autoscaler's --chan-token, sent as a bearer token with the scale "
                          "messages (empty: none; kd-autoscaler then takes them from loopback "
                          "only)"),
    KD_CONFIG_END,
};
#undef C

enum phase { PH_DRAIN, PH_SCALING };

struct bench {
	struct bench_cfg *cfg;
	struct kd_loop *loop;
	struct kd_k8s *k8s;
	struct kd_informer *inf;
	struct kd_chan_down *down;
	enum phase phase;
	size_t run;
	long target;
	uint64_t t0_ns;
	struct json_object *chain_seen; /* key -> true (this run) */
	struct json_object *api_seen;   /* key -> true (this run) */
	double *chain_ms, *api_ms;
	size_t n_chain, n_api;
	size_t chain_live; /* statuses held (any run): drained when 0 */
	bool hs_seen;      /* kd-node's status channel handshook with us */
	struct json_object *live;
	struct kd_timer *deadline, *poll, *act_poll;
	double *act_ms;
	size_t n_act;
	unsigned act_tries;
	struct json_object *results;
	int failures;
	struct kd_statclient *stats; /* --decision stat */
	struct kd_timer *stat_tick;
};

static bool stat_mode(const struct bench *b)
{
	return strcmp(b->cfg->decision, "stat") == 0;
}

/* The revision of the current run ("" after the last one). */
static char *cur_revision(const struct bench *b)
{
	static char none[1];
	if (!stat_mode(b))
		return b->cfg->revision;
	return b->run < b->cfg->revisions.n ? b->cfg->revisions.items[b->run] : none;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
	if (!n)
		return -1;
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	rank = rank < 1 ? 1 : rank > n ? n : rank;
	return v[rank - 1];
}

static double since_ms(const struct bench *b)
{
	return (double)(kd_now_ns() - b->t0_ns) / 1e6;
}

/* ---- the scale message: a minimal blocking WebSocket client (loopback, one frame) ---------- */

static int ws_send_text(const char *addr, const char *token, const char *text,
                        struct kd_error **err)
{
	char *host = NULL;
	int port = 0;
	if (kd_instance_addr_parse(addr, &host, &port, err) < 0)
		return -EINVAL;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int ok = inet_pton(AF_INET, host, &sa.sin_addr);
	free(host);
	if (ok != 1)
		return kd_error_set(err, EINVAL, 0, "stats address %s: IPv4 literal expected",
		                    addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kd_error_set(err, errno, 0, "socket: %s", strerror(errno));
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	int rc = 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = kd_error_set(err, errno, 0, "connect %s: %s", addr, strerror(errno));
		goto out;
	}
	bool auth = token && *token;
	char req[1024];
	int n = snprintf(req, sizeof(req),
	                 "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: "
	                 "Upgrade\r\nSec-WebSocket-Key: a2RiZW5jaHNjYWxlcG9kcw==\r\n"
	                 "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
	                 addr, auth ? "Authorization: Bearer " : "", auth ? token : "",
	                 auth ? "\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(req)) {
		rc = kd_error_set(err, EMSGSIZE, 0, "upgrade request too long (--chan-token)");
		goto out;
	}
	if (write(fd, req, (size_t)n) != n) {
		rc = kd_error_set(err, EIO, 0, "write upgrade: %s", strerror(errno));
		goto out;
	}
	char resp[1024];
	size_t got = 0;
	while (got < sizeof(resp) - 1) {
		ssize_t r = read(fd, resp + got, sizeof(resp) - 1 - got);
		if (r <= 0) {
			rc = kd_error_set(err, EIO, 0, "upgrade: connection closed");
			goto out;
		}
		got += (size_t)r;
		resp[got] = '\0';
		if (strstr(resp, "\r\n\r\n"))
			break;
	}
	if (!strstr(resp, " 101")) {
		rc = kd_error_set(err, EPROTO, 0, "upgrade refused: %.40s", resp);
		goto out;
	}
	size_t len = strlen(text);
	if (len > 65535) {
		rc = kd_error_set(err, EMSGSIZE, 0, "frame too large");
		goto out;
	}
	unsigned char *f = kd_xmalloc(len + 8);
	size_t h = 0;
	f[h++] = 0x81; /* FIN, text */
	if (len < 126) {
		f[h++] = (unsigned char)(0x80 | len);
	} else {
		f[h++] = 0x80 | 126;
		f[h++] = (unsigned char)(len >> 8);
		f[h++] = (unsigned char)len;
	}
	static const unsigned char mask[4] = {0x6b, 0x64, 0x62, 0x73};
	memcpy(f + h, mask, 4);
	h += 4;
	for (size_t i = 0; i < len; i++)
		f[h + i] = (unsigned char)text[i] ^ mask[i % 4];
	if (write(fd, f, h + len) != (ssize_t)(h + len))
		rc = kd_error_set(err, EIO, 0, "write frame: %s", strerror(errno));
	free(f);
	if (rc == 0) { /* close frame, so the server logs a clean close */
		const unsigned char cl[6] = {0x88, 0x80, 0, 0, 0, 0};
		if (write(fd, cl, sizeof(cl)) < 0)
			kd_log_debug("close frame: %s", strerror(errno));
	}
out:
	close(fd);
	return rc;
}

static int send_scale(struct bench *b, long n)
{
	char msg[512];
	snprintf(msg, sizeof(msg),
	         "{\"type\":\"scale\",\"namespace\":\"%s\",\"revision\":\"%s\",\"desired\":%ld}",
	         b->cfg->ns, cur_revision(b), n);
	kd_autoerr struct kd_error *err = NULL;
	if (ws_send_text(b->cfg->stats_addr, b->cfg->chan_token, msg, &err) < 0) {
		kd_log_error("scale message: %s", kd_error_msg(err));
		return -1;
	}
	return 0;
}

/* ---- the stat (--decision stat) ----------------------------------------------------------- */

static int send_stat(struct bench *b, double concurrency)
{
	int rc = kd_statclient_send_stat(b->stats, b->cfg->ns, cur_revision(b), "scale-pods-bench",
	                                 concurrency);
	if (rc < 0)
		kd_log_error("stat for %s/%s to kd-autoscaler at %s: %s", b->cfg->ns,
		             cur_revision(b), b->cfg->stats_addr, strerror(-rc));
	return rc;
}

static void on_stat_tick(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	struct bench *b = arg;
	if (b->phase != PH_SCALING)
		return;
	(void)send_stat(b, (double)b->target);
	kd_loop_timer_start(t, b->cfg->stat_period_ms);
}

static const struct kd_k8s_resource ksvc_res = {
    .group = "serving.knative.dev", .version = "v1", .resource = "services", .namespaced = true};

static void on_deleted(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	(void)resp;
	struct bench *b = arg;
	if (err && err->errnum != ENOENT) {
		kd_log_error("delete Knative Service in %s: %s", b->cfg->ns, kd_error_msg(err));
		b->failures++;
	}
}

/* The run's Service goes, its revision's instances with it (invariant 5). */
static void delete_service(struct bench *b, const char *name)
{
	kd_autojson struct json_object *opts = NULL;
	struct kd_error *err = NULL;
	const char *o = "{\"propagationPolicy\":\"Background\"}";
	if (kd_json_parse(o, strlen(o), 0, "delete options", &opts, &err) < 0 ||
	    kd_k8s_submit(b->k8s,
	                  &(struct kd_k8s_request){.verb = KD_K8S_DELETE,
	                                           .res = &ksvc_res,
	                                           .ns = b->cfg->ns,
	                                           .name = name,
	                                           .body = opts},
	                  on_deleted, b, &err) < 0) {
		kd_log_error("delete Knative Service %s/%s: %s", b->cfg->ns, name,
		             kd_error_msg(err));
		kd_error_free(err);
		b->failures++;
	}
}

/* ---- kd-activator's routing table -------------------------------------------------------- */

struct body {
	char *s;
	size_t len;
};

static size_t collect_cb(char *p, size_t sz, size_t n, void *arg)
{
	struct body *b = arg;
	b->s = kd_xrealloc(b->s, b->len + sz * n + 1);
	memcpy(b->s + b->len, p, sz * n);
	b->len += sz * n;
	b->s[b->len] = '\0';
	return sz * n;
}

/* Fills b->act_ms from kd-activator's /debug/routes: the instances of our revision that became
 * routable after this run's t0. Returns how many, or -1 if the table cannot be read. */
static long read_routes(struct bench *b)
{
	struct body body = {0};
	kd_autofree char *url = kd_xasprintf("http://%s/debug/routes", b->cfg->activator_admin);
	CURL *e = curl_easy_init();
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
	CURLcode rc = curl_easy_perform(e);
	curl_easy_cleanup(e);
	struct json_object *root = rc == CURLE_OK && body.s ? json_tokener_parse(body.s) : NULL;
	free(body.s);
	if (!root) {
		kd_log_warn("kd-activator routes at %s: %s", url,
		            rc == CURLE_OK ? "not JSON" : curl_easy_strerror(rc));
		return -1;
	}
	int64_t t0_ms = (int64_t)(b->t0_ns / 1000000u); /* kd-activator's clock: whole ms */
	b->n_act = 0;
	struct json_object *revs = kd_json_get_array(root, "revisions");
	for (size_t i = 0; revs && i < json_object_array_length(revs); i++) {
		struct json_object *r = json_object_array_get_idx(revs, i);
		const char *ns = kd_json_get_string(r, "namespace");
		const char *name = kd_json_get_string(r, "revision");
		if (!ns || !name || strcmp(ns, b->cfg->ns) || strcmp(name, cur_revision(b)))
			continue;
		struct json_object *insts = kd_json_get_array(r, "instances");
		for (size_t k = 0; insts && k < json_object_array_length(insts); k++) {
			struct json_object *in = json_object_array_get_idx(insts, k);
			int64_t since = 0;
			kd_json_get_int64(in, "routable_since_ms", &since);
			if (since <= 0 || since < t0_ms || (long)b->n_act >= b->target)
				continue;
			b->act_ms[b->n_act++] = (double)(since - t0_ms);
		}
	}
	json_object_put(root);
	return (long)b->n_act;
}

/* ---- runs ------------------------------------------------------------------------------------ */

static void next_run(struct bench *b);

static struct json_object *ms_array(const double *v, size_t n)
{
	struct json_object *a = json_object_new_array_ext((int)n);
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_double(v[i]));
	return a;
}

static void finish_run(struct bench *b, bool ok)
{
	kd_loop_timer_stop(b->deadline);
	kd_loop_timer_stop(b->act_poll);
	qsort(b->chain_ms, b->n_chain, sizeof(double), cmp_double);
	qsort(b->api_ms, b->n_api, sizeof(double), cmp_double);
	qsort(b->act_ms, b->n_act, sizeof(double), cmp_double);
	struct json_object *r = json_object_new_object();
	json_object_object_add(r, "n", json_object_new_int64(b->target));
	json_object_object_add(r, "ok", json_object_new_boolean(ok));
	json_object_object_add(r, "decision", json_object_new_string(b->cfg->decision));
	json_object_object_add(r, "revision", json_object_new_string(cur_revision(b)));
	json_object_object_add(r, "routable", json_object_new_int64((int64_t)b->n_chain));
	json_object_object_add(r, "api_ready", json_object_new_int64((int64_t)b->n_api));
	const double ps[] = {50, 90, 100};
	const char *names[] = {"50", "90", "100"};
	for (int i = 0; i < 3; i++) {
		char k[40];
		snprintf(k, sizeof(k), "routable_p%s_ms", names[i]);
		json_object_object_add(r, k,
		                       json_object_new_double(pct(b->chain_ms, b->n_chain, ps[i])));
		snprintf(k, sizeof(k), "ready_p%s_ms", names[i]);
		json_object_object_add(r, k,
		                       json_object_new_double(pct(b->api_ms, b->n_api, ps[i])));
		if (b->cfg->activator_admin) {
			snprintf(k, sizeof(k), "activator_p%s_ms", names[i]);
			json_object_object_add(
			    r, k, json_object_new_double(pct(b->act_ms, b->n_act, ps[i])));
		}
	}
	if (b->cfg->activator_admin)
		json_object_object_add(r, "activator_routable",
		                       json_object_new_int64((int64_t)b->n_act));
	/* every sample, sorted, for the report's timelines */
	struct json_object *smp = json_object_new_object();
	json_object_object_add(smp, "chain_ms", ms_array(b->chain_ms, b->n_chain));
	json_object_object_add(smp, "ready_ms", ms_array(b->api_ms, b->n_api));
	if (b->cfg->activator_admin)
		json_object_object_add(smp, "routable_ms", ms_array(b->act_ms, b->n_act));
	json_object_object_add(r, "samples", smp);
	double p100 = pct(b->chain_ms, b->n_chain, 100);
	json_object_object_add(
	    r, "chain_rate_per_s",
	    json_object_new_double(p100 > 0 ? (double)b->n_chain * 1000.0 / p100 : 0));
	json_object_array_add(b->results, r);
	printf("N=%-5ld %s  routable p50/p90/p100 %8.1f %8.1f %8.1f ms   API Ready p50/p90/p100 "
	       "%8.1f %8.1f %8.1f ms   chain %.0f inst/s\n",
	       b->target, ok ? "ok  " : "FAIL", pct(b->chain_ms, b->n_chain, 50),
	       pct(b->chain_ms, b->n_chain, 90), p100, pct(b->api_ms, b->n_api, 50),
	       pct(b->api_ms, b->n_api, 90), pct(b->api_ms, b->n_api, 100),
	       p100 > 0 ? (double)b->n_chain * 1000.0 / p100 : 0);
	if (b->cfg->activator_admin)
		printf("        kd-activator routable p50/p90/p100 %8.1f %8.1f %8.1f ms (%zu of "
		       "%ld)\n",
		       pct(b->act_ms, b->n_act, 50), pct(b->act_ms, b->n_act, 90),
		       pct(b->act_ms, b->n_act, 100), b->n_act, b->target);
	fflush(stdout);
	if (!ok)
		b->failures++;
	if (stat_mode(b)) {
		kd_loop_timer_stop(b->stat_tick);
		(void)send_stat(b, 0); /* the activator's last report after traffic */
		delete_service(b, b->cfg->services.items[b->run]);
	} else {
		send_scale(b, 0);
	}
	b->run++;
	b->phase = PH_DRAIN;
	kd_loop_timer_start(b->deadline, b->cfg->timeout_ms);
	kd_loop_timer_start(b->poll, 200);
}

static void check_done(struct bench *b)
{
	if (b->phase != PH_SCALING || (long)b->n_chain < b->target || (long)b->n_api < b->target)
		return;
	if (!b->cfg->activator_admin) {
		finish_run(b, true);
		return;
	}
	b->act_tries = 0;
	kd_loop_timer_start(b->act_poll, 0); /* kd-activator's table, then finish */
}

static void on_act_poll(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	struct bench *b = arg;
	if (b->phase != PH_SCALING)
		return;
	long n = read_routes(b);
	if (n >= b->target) {
		finish_run(b, true);
	} else if (++b->act_tries >= 100) { /* 5 s after the chain and the API had them all */
		kd_log_error("N=%ld: kd-activator holds %ld of them as routable", b->target, n);
		finish_run(b, false);
	} else {
		kd_loop_timer_start(t, 50);
	}
}

static void start_run(struct bench *b)
{
	b->target = strtol(b->cfg->counts.items[b->run], NULL, 10);
	json_object_put(b->chain_seen);
	json_object_put(b->api_seen);
	b->chain_seen = json_object_new_object();
	b->api_seen = json_object_new_object();
	free(b->chain_ms);
	free(b->api_ms);
	free(b->act_ms);
	b->act_ms = kd_xcalloc((size_t)b->target + 1, sizeof(double));
	b->n_act = 0;
	b->chain_ms = kd_xcalloc((size_t)b->target + 1, sizeof(double));
	b->api_ms = kd_xcalloc((size_t)b->target + 1, sizeof(double));
	b->n_chain = b->n_api = 0;
	b->phase = PH_SCALING;
	b->t0_ns = kd_now_ns();
	if ((stat_mode(b) ? send_stat(b, (double)b->target) : send_scale(b, b->target)) < 0) {
		b->failures++;
		kd_loop_stop(b->loop);
		return;
	}
	if (stat_mode(b))
		kd_loop_timer_start(b->stat_tick, b->cfg->stat_period_ms);
	kd_loop_timer_start(b->deadline, b->cfg->timeout_ms);
}

static void next_run(struct bench *b)
{
	if (b->run >= b->cfg->counts.n) {
		kd_loop_stop(b->loop);
		return;
	}
	start_run(b);
}

static void on_poll(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	struct bench *b = arg;
	if (b->phase != PH_DRAIN)
		return;
	/* drained, and kd-node reports to us (else the first run would see statuses late) */
	if (kd_informer_synced(b->inf) && kd_informer_count(b->inf) == 0 && b->chain_live == 0 &&
	    b->hs_seen && kd_chan_down_conns(b->down) > 0 &&
	    (!stat_mode(b) || kd_statclient_connected(b->stats))) {
		kd_loop_timer_stop(b->deadline);
		next_run(b);
		return;
	}
	kd_loop_timer_start(t, 200);
}

static void on_deadline(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	struct bench *b = arg;
	if (b->phase == PH_SCALING) {
		kd_log_error("N=%ld: timed out: %zu routable, %zu API Ready", b->target, b->n_chain,
		             b->n_api);
		finish_run(b, false);
	} else {
		kd_log_error("drain timed out: %zu pods, %zu statuses", kd_informer_count(b->inf),
		             b->chain_live);
		b->failures++;
		kd_loop_stop(b->loop);
	}
}

/* ---- observations --------------------------------------------------------------------------- */

static bool pod_ready(struct json_object *pod)
{
	struct json_object *conds = kd_json_get_array(pod, "status.conditions");
	size_t n = conds ? json_object_array_length(conds) : 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(conds, i);
		const char *t = kd_json_get_string(c, "type"), *s = kd_json_get_string(c, "status");
		if (t && s && strcmp(t, "Ready") == 0 && strcmp(s, "True") == 0)
			return true;
	}
	return false;
}

static void on_pod(struct kd_informer *inf, struct json_object *obj, void *arg)
{
	(void)inf;
	struct bench *b = arg;
	if (b->phase != PH_SCALING || !pod_ready(obj) ||
	    kd_json_get(obj, "metadata.deletionTimestamp"))
		return;
	const char *rev =
	    kd_json_get_string(obj, "metadata.labels.serving\\.knative\\.dev/revision");
	if (!rev || strcmp(rev, cur_revision(b)) != 0)
		return;
	kd_autofree char *key = kd_informer_key(obj);
	if (!key || json_object_object_get(b->api_seen, key) || (long)b->n_api >= b->target)
		return;
	json_object_object_add(b->api_seen, key, json_object_new_boolean(true));
	b->api_ms[b->n_api++] = since_ms(b);
	check_done(b);
}

static int st_held(void *ud, const char *source, struct kd_op_list *held, struct kd_error **err)
{
	(void)source;
	(void)err;
	struct bench *b = ud;
	b->hs_seen = true;
	json_object_object_foreach(b->live, k, v)
	{
		(void)v;
		kd_instance_status_held_op(k, kd_op_list_push(held));
	}
	return 0;
}

static void live_set(struct bench *b, const char *key, bool on)
{
	bool had = json_object_object_get(b->live, key) != NULL;
	if (on && !had) {
		json_object_object_add(b->live, key, json_object_new_boolean(true));
		b->chain_live++;
	} else if (!on && had) {
		json_object_object_del(b->live, key);
		b->chain_live--;
	}
}

static int st_apply(void *ud, const char *source, uint64_t epoch, const struct kd_op *op,
                    struct kd_error **err)
{
	(void)source;
	(void)epoch;
	struct bench *b = ud;
	struct kd_instance_status st;
	if (kd_instance_status_from_op(op, &st, err) < 0)
		return -EINVAL;
	if (strcmp(st.ns, b->cfg->ns) != 0) { /* another namespace's instance on our nodes */
		kd_instance_status_fini(&st);
		return 0;
	}
	live_set(b, op->key, !st.gone);
	if (!st.gone && st.ready && b->phase == PH_SCALING &&
	    !json_object_object_get(b->chain_seen, op->key) && (long)b->n_chain < b->target) {
		json_object_object_add(b->chain_seen, op->key, json_object_new_boolean(true));
		b->chain_ms[b->n_chain++] = since_ms(b);
		check_done(b);
	}
	kd_instance_status_fini(&st);
	return 0;
}

static int st_drop(void *ud, const char *source, const char *key, struct kd_error **err)
{
	(void)source;
	(void)err;
	live_set(ud, key, false);
	return 0;
}

int main(int argc, char **argv)
{
	struct bench_cfg cfg;
	memset(&cfg, 0, sizeof(cfg));
	struct kd_config_cli cli = {
	    .prog = "scale-pods",
	    .summary = "scale-pods benchmark, kubedirect arm: scale a kd-class revision 0 -> N "
	               "through kd-autoscaler and time routable (chain) and API Ready per instance",
	};
	kd_autoerr struct kd_error *err = NULL;
	int rc = kd_config_parse_argv(options, &cfg, &cli, argc, argv, 0, NULL, &err);
	if (rc != 0) {
		kd_config_free(options, &cfg);
		if (rc > 0)
			return 0;
		fprintf(stderr, "scale-pods: %s (see --help)\n", kd_error_msg(err));
		return 1;
	}
	kd_log_init("scale-pods", KD_LOG_INFO, KD_LOG_TEXT);
	if (strcmp(cfg.decision, "stat") != 0 && strcmp(cfg.decision, "scale") != 0) {
		fprintf(stderr, "scale-pods: --decision must be stat or scale, got '%s'\n",
		        cfg.decision);
		kd_config_free(options, &cfg);
		return 1;
	}
	int status = 1;
	struct bench b;
	memset(&b, 0, sizeof(b));
	b.cfg = &cfg;
	b.results = json_object_new_array();
	b.live = json_object_new_object();
	struct kd_k8s_config *kcfg = NULL;
	char *sel = NULL;
	b.loop = kd_loop_new();
	if (cfg.kubeconfig && *cfg.kubeconfig)
		rc = kd_k8s_config_from_kubeconfig(cfg.kubeconfig, NULL, &kcfg, &err);
	else
		rc = kd_k8s_config_auto(&kcfg, &err);
	if (rc < 0 || kd_k8s_new(kcfg, b.loop, NULL, &b.k8s, &err) < 0) {
		kd_log_error("%s", kd_error_msg(err));
		goto out;
	}
	if (stat_mode(&b)) {
		if (cfg.revisions.n != cfg.counts.n || cfg.services.n != cfg.counts.n) {
			kd_log_error(
			    "--decision stat: give one --revisions and one --services entry "
			    "per --counts entry (%zu counts, %zu revisions, %zu services)",
			    cfg.counts.n, cfg.revisions.n, cfg.services.n);
			goto out;
		}
		if (cfg.stat_period_ms == 0) {
			kd_log_error("--stat-period must be > 0");
			goto out;
		}
		size_t len = sizeof(KD_KNATIVE_LABEL_REVISION " in ()");
		for (size_t i = 0; i < cfg.revisions.n; i++)
			len += strlen(cfg.revisions.items[i]) + 1;
		sel = kd_xcalloc(1, len);
		strcat(sel, KD_KNATIVE_LABEL_REVISION " in (");
		for (size_t i = 0; i < cfg.revisions.n; i++) {
			if (i)
				strcat(sel, ",");
			strcat(sel, cfg.revisions.items[i]);
		}
		strcat(sel, ")");
		struct kd_statclient_opts so = {
		    .addr = cfg.stats_addr, .token = cfg.chan_token, .peer = "kd-autoscaler"};
		b.stats = kd_statclient_new(b.loop, &so, &err);
		if (!b.stats) {
			kd_log_error("%s", kd_error_msg(err));
			goto out;
		}
		b.stat_tick = kd_loop_timer_new(b.loop, on_stat_tick, &b);
	} else if (strcmp(cfg.decision, "scale") == 0 && cfg.revision && *cfg.revision) {
		sel = kd_xasprintf("%s=%s", KD_KNATIVE_LABEL_REVISION, cfg.revision);
	} else {
		kd_log_error("--decision must be stat (with --revisions and --services) or scale "
		             "(with --revision), got '%s'",
		             cfg.decision);
		goto out;
	}
	struct kd_informer_opts io = {.res = &kd_k8s_pods, .ns = cfg.ns, .label_selector = sel};
	struct kd_informer_handlers ih = {
	    .on_add = on_pod, .on_update = kd_informer_update_as_add, .arg = &b};
	if (kd_informer_new(b.k8s, &io, &ih, &b.inf, &err) < 0) {
		kd_log_error("%s", kd_error_msg(err));
		goto out;
	}
	struct kd_chan_down_opts dopts = {.bind = "127.0.0.1", .port = (int)cfg.status_port};
	struct kd_hs_down_cbs hcbs = {.held = st_held, .apply = st_apply, .drop = st_drop};
	b.down = kd_chan_down_new(b.loop, &dopts, &hcbs, &b, &err);
	if (!b.down) {
		kd_log_error("status channel: %s", kd_error_msg(err));
		goto out;
	}
	b.deadline = kd_loop_timer_new(b.loop, on_deadline, &b);
	b.poll = kd_loop_timer_new(b.loop, on_poll, &b);
	b.act_poll = kd_loop_timer_new(b.loop, on_act_poll, &b);
	kd_informer_start(b.inf);
	/* start drained: scale to 0 first, wait for no pod and no status */
	b.phase = PH_DRAIN;
	if (!stat_mode(&b) && send_scale(&b, 0) < 0)
		goto out;
	kd_loop_timer_start(b.deadline, cfg.timeout_ms);
	kd_loop_timer_start(b.poll, 1000); /* give kd-node's status channel time to connect */
	if (stat_mode(&b))
		printf(
		    "scale-pods (kd arm): %s, one revision per N, via kd-autoscaler %s; t0 = stat "
		    "(concurrency N) written\n",
		    cfg.ns, cfg.stats_addr);
	else
		printf(
		    "scale-pods (kd arm): %s/%s via kd-autoscaler %s; t0 = scale message written\n",
		    cfg.ns, cfg.revision, cfg.stats_addr);
	fflush(stdout);
	kd_loop_run(b.loop);
	status = b.failures ? 1 : 0;
	if (cfg.json_out) {
		if (json_object_to_file_ext(cfg.json_out, b.results, JSON_C_TO_STRING_PRETTY) < 0) {
			kd_log_error("cannot write %s", cfg.json_out);
			status = 1;
		}
	}
out:
	if (b.inf)
		kd_informer_free(b.inf);
	kd_chan_down_free(b.down);
	kd_loop_timer_free(b.deadline);
	kd_loop_timer_free(b.poll);
	kd_loop_timer_free(b.act_poll);
	kd_loop_timer_free(b.stat_tick);
	kd_statclient_free(b.stats);
	kd_k8s_free(b.k8s);
	kd_k8s_config_free(kcfg);
	json_object_put(b.results);
	json_object_put(b.live);
	json_object_put(b.chain_seen);
	json_object_put(b.api_seen);
	free(b.chain_ms);
	free(b.api_ms);
	free(b.act_ms);
	kd_loop_free(b.loop);
	free(sel);
	kd_config_free(options, &cfg);
	return status;
}
