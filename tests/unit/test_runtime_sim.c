/* Unit tests for plugins/runtime-sim, loaded through the real loader (by name, via
 * KD_PLUGIN_DIR) and driven by a real kd_loop: unique pod IPs, ready delay through loop timers,
 * idempotent duplicate starts (one sandbox per key), IP reuse after stop, CIDR exhaustion. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kd/config.h"
#include "kd/loop.h"
#include "kd/plugin.h"
#include "kd/stage.h"

struct rec {
	enum kd_runtime_event_type type;
	char key[64];
	char ip[KD_IP_STRLEN];
	char reason[32];
	uint64_t at_ms;
	uint64_t wall_ns;
};

static struct {
	struct rec *v;
	size_t n, cap;
} events;

static struct kd_loop *loop;
static struct kd_host host;
static struct kd_plugin_handle *plugin;
static const struct kd_runtime_ops *ops;
static void *rt;

static void on_event(const struct kd_runtime_event *ev, void *arg)
{
	assert_ptr_equal(arg, &events);
	if (events.n == events.cap) {
		events.cap = events.cap ? events.cap * 2 : 256;
		events.v = realloc(events.v, events.cap * sizeof(*events.v));
		assert_non_null(events.v);
	}
	struct rec *r = &events.v[events.n++];
	memset(r, 0, sizeof(*r));
	r->type = ev->type;
	snprintf(r->key, sizeof(r->key), "%s", ev->key);
	snprintf(r->ip, sizeof(r->ip), "%s", ev->pod_ip ? ev->pod_ip : "");
	snprintf(r->reason, sizeof(r->reason), "%s", ev->reason ? ev->reason : "");
	r->at_ms = ev->at_ms;
	r->wall_ns = kd_now_ns();
}

static size_t count_events(enum kd_runtime_event_type type, const char *key)
{
	size_t n = 0;
	for (size_t i = 0; i < events.n; i++)
		if (events.v[i].type == type && (!key || strcmp(events.v[i].key, key) == 0))
			n++;
	return n;
}

static const struct rec *find_event(enum kd_runtime_event_type type, const char *key)
{
	for (size_t i = 0; i < events.n; i++)
		if (events.v[i].type == type && strcmp(events.v[i].key, key) == 0)
			return &events.v[i];
	return NULL;
}

/* Runs the loop until `want` events of `type` have been recorded, at most max_ms (bounded). */
static void run_until(enum kd_runtime_event_type type, size_t want, int max_ms)
{
	uint64_t deadline = kd_now_ns() + (uint64_t)max_ms * 1000000ull;
	for (int i = 0; i < 100000 && count_events(type, NULL) < want; i++) {
		if (kd_now_ns() > deadline)
			break;
		assert_true(kd_loop_run_once(loop, 20) >= 0);
	}
	assert_int_equal(count_events(type, NULL), want);
}

/* Drains whatever is due now (a few iterations without waiting). */
static void run_briefly(void)
{
	for (int i = 0; i < 5; i++)
		kd_loop_run_once(loop, 0);
}

static int load(const char *config_json, struct kd_error **err)
{
	events.n = 0;
	int rc = kd_plugin_load("runtime-sim", KD_PLUGIN_RUNTIME, config_json, &host, &plugin, err);
	if (rc == 0) {
		ops = kd_plugin_ops(plugin);
		rt = kd_plugin_state(plugin);
	}
	return rc;
}

static int teardown(void **state)
{
	(void)state;
	kd_plugin_unload(plugin);
	plugin = NULL;
	return 0;
}

static int setup_all(void **state)
{
	(void)state;
	setenv("KD_PLUGIN_DIR", KD_BUILD_DIR "/plugins", 1);
	loop = kd_loop_new();
	if (!loop)
		return -1;
	kd_host_init(&host, loop, "test-runtime-sim");
	return 0;
}

static int teardown_all(void **state)
{
	(void)state;
	free(events.v);
	kd_loop_free(loop);
	return 0;
}

static int start(const char *key, const char *uid, const char *cidr, const char *ip,
                 struct kd_error **err)
{
	char ns[64], name[64];
	const char *slash = strchr(key, '/');
	snprintf(ns, sizeof(ns), "%.*s", (int)(slash - key), key);
	snprintf(name, sizeof(name), "%s", slash + 1);
	struct kd_container_spec c = {.name = "user-container", .image = "sim"};
	struct kd_sandbox_spec spec = {
	    .key = key,
	    .ns = ns,
	    .name = name,
	    .uid = uid,
	    .node = "node-1",
	    .pod_ip = ip,
	    .pod_cidr = cidr,
	    .containers = &c,
	    .n_containers = 1,
	};
	return ops->start(rt, &spec, on_event, &events, err);
}

static uint32_t ip_u32(const char *s)
{
	struct in_addr in;
	assert_int_equal(inet_pton(AF_INET, s, &in), 1);
	return ntohl(in.s_addr);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static void thousand_sandboxes_get_unique_ips(void **state)
{
	(void)state;
	assert_int_equal(load("{\"pod-cidr\":\"10.8.0.0/16\"}", NULL), 0);
	char key[64];
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "default/p-%d", i);
		assert_int_equal(start(key, NULL, NULL, NULL, NULL), 0);
	}
	/* nothing is reported from inside start() */
	assert_int_equal(events.n, 0);
	run_until(KD_RUNTIME_READY, 1000, 10000);
	assert_int_equal(count_events(KD_RUNTIME_STARTED, NULL), 1000);
	static uint32_t ips[1000];
	size_t n = 0;
	for (size_t i = 0; i < events.n; i++) {
		const struct rec *r = &events.v[i];
		if (r->type != KD_RUNTIME_READY)
			continue;
		/* STARTED came first, with the same address */
		const struct rec *st = find_event(KD_RUNTIME_STARTED, r->key);
		assert_non_null(st);
		assert_true(st < r);
		assert_string_equal(st->ip, r->ip);
		uint32_t ip = ip_u32(r->ip);
		assert_int_equal(ip & 0xffff0000u, ip_u32("10.8.0.0"));
		assert_true(ip > ip_u32("10.8.0.1"));     /* not network, not gateway */
		assert_true(ip < ip_u32("10.8.255.255")); /* not broadcast */
		ips[n++] = ip;
		struct kd_sandbox_status st_out;
		assert_int_equal(ops->status(rt, r->key, &st_out), 0);
		assert_int_equal(st_out.phase, KD_SANDBOX_READY);
		assert_string_equal(st_out.pod_ip, r->ip);
	}
	assert_int_equal(n, 1000);
	qsort(ips, n, sizeof(ips[0]), cmp_u32);
	for (size_t i = 1; i < n; i++)
		assert_true(ips[i - 1] != ips[i]);
}

static void ready_waits_for_the_configured_delay(void **state)
{
	(void)state;
	assert_int_equal(load("{\"ready-delay\":\"300ms\"}", NULL), 0);
	uint64_t t0 = kd_now_ns();
	assert_int_equal(start("default/slow", "uid-1", NULL, NULL, NULL), 0);
	struct kd_sandbox_status st;
	assert_int_equal(ops->status(rt, "default/slow", &st), 0);
	assert_int_equal(st.phase, KD_SANDBOX_PENDING);
	run_until(KD_RUNTIME_STARTED, 1, 2000);
	assert_int_equal(count_events(KD_RUNTIME_READY, NULL), 0);
	assert_int_equal(ops->status(rt, "default/slow", &st), 0);
	assert_int_equal(st.phase, KD_SANDBOX_STARTED);
	assert_string_equal(st.uid, "uid-1");
	assert_int_equal(st.ready_ms, 0);
	run_until(KD_RUNTIME_READY, 1, 5000);
	const struct rec *ready = find_event(KD_RUNTIME_READY, "default/slow");
	/* lower bounds only: the loop must not fire early; how late it fires is not asserted.
	 * The loop's clock has millisecond granularity, so allow 1 ms of truncation. */
	assert_true(ready->wall_ns - t0 >= 299ull * 1000000ull);
	assert_int_equal(ops->status(rt, "default/slow", &st), 0);
	assert_int_equal(st.phase, KD_SANDBOX_READY);
	assert_true(st.ready_ms >= st.created_ms + 300);
	assert_int_equal(ready->at_ms, st.ready_ms);
}

static void duplicate_start_is_idempotent(void **state)
{
	(void)state;
	assert_int_equal(load(NULL, NULL), 0);
	assert_int_equal(start("default/dup", "uid-a", NULL, NULL, NULL), 0);
	assert_int_equal(start("default/dup", "uid-a", NULL, NULL, NULL), 0);
	assert_int_equal(start("default/dup", NULL, NULL, NULL, NULL), 0);
	run_until(KD_RUNTIME_READY, 1, 2000);
	struct kd_sandbox_status st;
	assert_int_equal(ops->status(rt, "default/dup", &st), 0);
	char ip[KD_IP_STRLEN];
	memcpy(ip, st.pod_ip, sizeof(ip));
	/* default CIDR: 10.244.0.0/16, first usable is .0.2 */
	assert_string_equal(ip, "10.244.0.2");
	/* a retry after ready changes nothing either */
	assert_int_equal(start("default/dup", "uid-a", NULL, NULL, NULL), 0);
	run_briefly();
	assert_int_equal(count_events(KD_RUNTIME_STARTED, "default/dup"), 1);
	assert_int_equal(count_events(KD_RUNTIME_READY, "default/dup"), 1);
	assert_int_equal(ops->status(rt, "default/dup", &st), 0);
	assert_string_equal(st.pod_ip, ip);
	/* a different pod (uid) under a live name is refused */
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(start("default/dup", "uid-b", NULL, NULL, &err), -EBUSY);
	assert_string_equal(err->msg, "runtime-sim: start default/dup: a sandbox with uid uid-a "
	                              "already exists (asked for uid uid-b)");
	/* the next sandbox gets the next address */
	assert_int_equal(start("default/other", NULL, NULL, NULL, NULL), 0);
	assert_int_equal(ops->status(rt, "default/other", &st), 0);
	assert_string_equal(st.pod_ip, "10.244.0.3");
}

static void stop_reports_exited_and_ip_is_reused_after_exhaustion(void **state)
{
	(void)state;
	/* a /29 has 8 addresses: network, gateway and broadcast leave 5 for pods */
	assert_int_equal(load("{\"pod-cidr\":\"10.9.0.0/29\"}", NULL), 0);
	char key[64];
	for (int i = 0; i < 5; i++) {
		snprintf(key, sizeof(key), "ns/p-%d", i);
		assert_int_equal(start(key, NULL, NULL, NULL, NULL), 0);
	}
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(start("ns/p-5", NULL, NULL, NULL, &err), -EADDRNOTAVAIL);
	assert_string_equal(err->msg, "runtime-sim: start ns/p-5: pod CIDR 10.9.0.0/29 is "
	                              "exhausted (5 of 5 addresses in use)");
	struct kd_sandbox_status st;
	assert_int_equal(ops->status(rt, "ns/p-5", &st), -ENOENT);
	run_until(KD_RUNTIME_READY, 5, 2000);

	assert_int_equal(ops->status(rt, "ns/p-2", &st), 0);
	char freed[KD_IP_STRLEN];
	memcpy(freed, st.pod_ip, sizeof(freed));
	assert_string_equal(freed, "10.9.0.4");
	assert_int_equal(ops->stop(rt, "ns/p-2", 1000, NULL), 0);
	/* gone at once; EXITED follows on the loop, not from inside stop() */
	assert_int_equal(ops->status(rt, "ns/p-2", &st), -ENOENT);
	assert_int_equal(count_events(KD_RUNTIME_EXITED, NULL), 0);
	run_until(KD_RUNTIME_EXITED, 1, 2000);
	const struct rec *ex = find_event(KD_RUNTIME_EXITED, "ns/p-2");
	assert_non_null(ex);
	assert_string_equal(ex->ip, freed);
	assert_string_equal(ex->reason, "Stopped");

	/* the released address is the only free one: the next start gets it */
	assert_int_equal(start("ns/p-5", NULL, NULL, NULL, NULL), 0);
	assert_int_equal(ops->status(rt, "ns/p-5", &st), 0);
	assert_string_equal(st.pod_ip, freed);
	run_until(KD_RUNTIME_READY, 6, 2000);

	kd_autoerr struct kd_error *err2 = NULL;
	assert_int_equal(ops->stop(rt, "ns/p-2", 0, &err2), -ENOENT);
	assert_string_equal(err2->msg, "runtime-sim: stop ns/p-2: no such sandbox");
}

static void spec_cidr_and_explicit_ip_are_honoured(void **state)
{
	(void)state;
	assert_int_equal(load(NULL, NULL), 0);
	struct kd_sandbox_status st;
	assert_int_equal(start("ns/a", NULL, "10.50.1.0/24", NULL, NULL), 0);
	assert_int_equal(ops->status(rt, "ns/a", &st), 0);
	assert_string_equal(st.pod_ip, "10.50.1.2");
	assert_int_equal(start("ns/b", NULL, "10.50.1.0/24", "10.50.1.77", NULL), 0);
	assert_int_equal(ops->status(rt, "ns/b", &st), 0);
	assert_string_equal(st.pod_ip, "10.50.1.77");
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(start("ns/c", NULL, "10.50.1.0/24", "10.50.1.77", &err), -EADDRINUSE);
	assert_string_equal(err->msg,
	                    "runtime-sim: start ns/c: pod IP 10.50.1.77 is already in use");
	kd_error_free(err);
	err = NULL;
	assert_int_equal(start("ns/d", NULL, "10.50.1.0/24", "10.60.0.5", &err), -EINVAL);
	assert_string_equal(err->msg, "runtime-sim: start ns/d: pod IP 10.60.0.5 is not a usable "
	                              "address of pod CIDR 10.50.1.0/24");
	kd_error_free(err);
	err = NULL;
	/* an overlapping CIDR cannot be used while addresses of the first are in use */
	assert_int_equal(start("ns/e", NULL, "10.50.0.0/16", NULL, &err), -EINVAL);
	assert_string_equal(err->msg, "runtime-sim: start ns/e: pod CIDR 10.50.0.0/16 overlaps "
	                              "10.50.1.0/24, which still has 2 addresses in use");
	kd_error_free(err);
	err = NULL;
	assert_int_equal(start("ns/f", NULL, "banana", NULL, &err), -EINVAL);
	assert_non_null(strstr(err->msg, "pod CIDR \"banana\" is not an IPv4 CIDR"));
	run_until(KD_RUNTIME_READY, 2, 2000);
}

static void restart_of_a_key_reports_exited_before_the_new_started(void **state)
{
	(void)state;
	assert_int_equal(load(NULL, NULL), 0);
	char key[64];
	/* many keys at once, so that timer order alone would interleave events */
	for (int i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "ns/r-%d", i);
		assert_int_equal(start(key, "old", NULL, NULL, NULL), 0);
	}
	run_until(KD_RUNTIME_READY, 50, 2000);
	for (int i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "ns/r-%d", i);
		assert_int_equal(ops->stop(rt, key, 0, NULL), 0);
		assert_int_equal(start(key, "new", NULL, NULL, NULL), 0);
	}
	/* stop + start again before the first EXITED went out; the second sandbox is stopped
	 * before it ever started and must still report EXITED exactly once */
	assert_int_equal(ops->stop(rt, "ns/r-0", 0, NULL), 0);
	assert_int_equal(start("ns/r-0", "newer", NULL, NULL, NULL), 0);
	run_until(KD_RUNTIME_READY, 100, 2000);
	assert_int_equal(count_events(KD_RUNTIME_EXITED, NULL), 51);
	for (int i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "ns/r-%d", i);
		size_t exited = SIZE_MAX, started = 0, n_started = 0;
		for (size_t j = 0; j < events.n; j++) {
			if (strcmp(events.v[j].key, key) != 0)
				continue;
			if (events.v[j].type == KD_RUNTIME_EXITED && exited == SIZE_MAX)
				exited = j;
			if (events.v[j].type == KD_RUNTIME_STARTED) {
				started = j;
				n_started++;
			}
		}
		assert_int_equal(n_started, 2); /* the never-started "new" r-0 reports no STARTED */
		assert_true(exited < started);
	}
	struct kd_sandbox_status st;
	assert_int_equal(ops->status(rt, "ns/r-0", &st), 0);
	assert_string_equal(st.uid, "newer");
}

static void fini_cancels_pending_events(void **state)
{
	(void)state;
	assert_int_equal(load("{\"ready-delay\":\"1h\"}", NULL), 0);
	char key[64];
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "ns/q-%d", i);
		assert_int_equal(start(key, NULL, NULL, NULL, NULL), 0);
	}
	run_until(KD_RUNTIME_STARTED, 10, 2000);
	assert_int_equal(ops->stop(rt, "ns/q-0", 0, NULL), 0); /* EXITED pending */
	kd_plugin_unload(plugin);
	plugin = NULL;
	size_t before = events.n;
	/* no timer of the plugin is left on the loop: nothing runs, nothing is reported */
	assert_int_equal(kd_loop_run_once(loop, 0), 0);
	assert_int_equal(events.n, before);
}

static void bad_config_is_refused_with_a_clear_error(void **state)
{
	(void)state;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(load("{\"pod-cidr\":\"banana\"}", &err), -EINVAL);
	assert_null(plugin);
	assert_string_equal(err->msg,
	                    "plugin " KD_BUILD_DIR "/plugins/kd-runtime-sim.so: init: "
	                    "pod-cidr: \"banana\" is not an IPv4 CIDR with a prefix length "
	                    "between 8 and 30");
	kd_error_free(err);
	err = NULL;
	assert_int_equal(load("{\"ready-delay\":\"soon\"}", &err), -EINVAL);
	assert_string_equal(err->msg, "plugin " KD_BUILD_DIR "/plugins/kd-runtime-sim.so: config: "
	                              "option \"ready-delay\" for plugin runtime-sim: \"soon\" is "
	                              "not a duration (e.g. 250ms, 2s)");
	kd_error_free(err);
	err = NULL;
	assert_int_equal(load("{\"ready-delay\":\"2h\"}", &err), -ERANGE);
	assert_non_null(strstr(err->msg, "\"ready-delay\" for plugin runtime-sim: 2h is above the "
	                                 "maximum 1h"));
}

static void plugin_docs_are_generated_from_its_table(void **state)
{
	(void)state;
	assert_int_equal(load(NULL, NULL), 0);
	const struct kd_plugin *d = kd_plugin_desc(plugin);
	kd_autofree char *md = kd_config_markdown(d->options, d->name);
	assert_non_null(strstr(md, "## runtime-sim\n"));
	assert_non_null(strstr(md, "| `pod-cidr` | string | `10.244.0.0/16` | - | **Required.** "));
	assert_non_null(strstr(md, "| `ready-delay` | duration | `0ms` | - | time from start until "
	                           "the sandbox reports ready (at most 1h) |"));
	/* the loaded library exports only the entry point (libkd is linked privately) */
	void *dl = dlopen(KD_BUILD_DIR "/plugins/kd-runtime-sim.so", RTLD_NOW | RTLD_NOLOAD);
	assert_non_null(dl);
	assert_non_null(dlsym(dl, "kd_plugin_entry"));
	assert_null(dlsym(dl, "kd_xmalloc"));
	assert_null(dlsym(dl, "kd_config_parse_json"));
	assert_null(dlsym(dl, "sim_start"));
	dlclose(dl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(thousand_sandboxes_get_unique_ips, teardown),
	    cmocka_unit_test_teardown(ready_waits_for_the_configured_delay, teardown),
	    cmocka_unit_test_teardown(duplicate_start_is_idempotent, teardown),
	    cmocka_unit_test_teardown(stop_reports_exited_and_ip_is_reused_after_exhaustion,
	                              teardown),
	    cmocka_unit_test_teardown(spec_cidr_and_explicit_ip_are_honoured, teardown),
	    cmocka_unit_test_teardown(restart_of_a_key_reports_exited_before_the_new_started,
	                              teardown),
	    cmocka_unit_test_teardown(fini_cancels_pending_events, teardown),
	    cmocka_unit_test_teardown(bad_config_is_refused_with_a_clear_error, teardown),
	    cmocka_unit_test_teardown(plugin_docs_are_generated_from_its_table, teardown),
	};
	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
