/* Unit tests for plugins/runtime-process, loaded through the real loader and driven by a real
 * kd_loop. Needs root (network namespaces): the test creates its own namespace kdtp-<pid> with
 * a private bridge kdtbr0 (10.77.0.1/24) and points the plugin at it (bridge-netns), so it does
 * not depend on the rig; every address used lives only inside namespaces the test creates, and
 * the namespace is deleted at the end (also when a test fails: atexit). Without root or netns
 * support every test is skipped with a message.
 *
 * Covered: a sandbox running functions/hello answers on its pod IP over the veth from the
 * bridge's namespace, its spec made from a Pod by kd_sandbox_view (kd/runtimejson.h) with the
 * downward API resolved (metadata.name, a label, status.podIP by the runtime); teardown leaves
 * no process, namespace, veth or fd; unknown image -> FAILED ErrImagePull naming the image; a
 * binary that exits at once -> CrashLoopBackOff restarts with increasing restart count and
 * growing delays; restartPolicy Never (read from a Pod) ends the sandbox at the first exit; a
 * readiness probe that never passes (refused, HTTP 400) -> never READY, message says why; exec
 * probes run inside the sandbox (see its eth0 and pod IP); a stop then start of the same key
 * delivers EXITED before STARTED; a pooled namespace serves a sandbox too; a negative limit, or
 * limits whose sum over the containers is beyond int64, fail the sandbox
 * (CreateContainerConfigError naming the container, field and value) while valid ones start; a
 * probe without a port in the first of two containers is refused at start. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kd/config.h"
#include "kd/loop.h"
#include "kd/plugin.h"
#include "kd/runtimejson.h"
#include "kd/stage.h"

#define BR_NS_FMT "kdtp-%d"

struct rec {
	enum kd_runtime_event_type type;
	char key[64];
	char ip[KD_IP_STRLEN];
	char reason[64];
	char message[256];
};

static struct {
	struct rec v[256];
	size_t n;
} events;

static struct kd_loop *loop;
static struct kd_host host;
static struct kd_plugin_handle *plugin;
static const struct kd_runtime_ops *ops;
static void *rt;
static bool usable;
static char skip_why[256];
static char br_ns[32], br_ns_path[64];
static int home_fd = -1, br_fd = -1;

static void on_event(const struct kd_runtime_event *ev, void *arg)
{
	assert_ptr_equal(arg, &events);
	assert_true(events.n < KD_ARRAY_SIZE(events.v));
	struct rec *r = &events.v[events.n++];
	memset(r, 0, sizeof(*r));
	r->type = ev->type;
	snprintf(r->key, sizeof(r->key), "%s", ev->key);
	snprintf(r->ip, sizeof(r->ip), "%s", ev->pod_ip ? ev->pod_ip : "");
	snprintf(r->reason, sizeof(r->reason), "%s", ev->reason ? ev->reason : "");
	snprintf(r->message, sizeof(r->message), "%s", ev->message ? ev->message : "");
}

static const struct rec *find_event(enum kd_runtime_event_type type, const char *key)
{
	for (size_t i = 0; i < events.n; i++)
		if (events.v[i].type == type && strcmp(events.v[i].key, key) == 0)
			return &events.v[i];
	return NULL;
}

static long find_index(enum kd_runtime_event_type type, const char *key)
{
	const struct rec *r = find_event(type, key);
	return r ? r - events.v : -1;
}

/* Runs the loop until an event of `type` for key is recorded, at most max_ms. */
static const struct rec *run_until(enum kd_runtime_event_type type, const char *key, int max_ms)
{
	uint64_t deadline = kd_now_ns() + (uint64_t)max_ms * 1000000ull;
	for (int i = 0; i < 100000 && !find_event(type, key) && kd_now_ns() < deadline; i++)
		assert_true(kd_loop_run_once(loop, 10) >= 0);
	return find_event(type, key);
}

static void run_for(int ms)
{
	uint64_t deadline = kd_now_ns() + (uint64_t)ms * 1000000ull;
	for (int i = 0; i < 100000 && kd_now_ns() < deadline; i++)
		kd_loop_run_once(loop, 5);
}

static void delete_bridge_ns(void)
{
	if (br_ns[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", br_ns);
		if (system(cmd) != 0)
			br_ns[0] = '\0';
	}
}

/* --- in the bridge namespace ------------------------------------------------------------------ */
static int socket_in_br(void)
{
	assert_int_equal(setns(br_fd, CLONE_NEWNET), 0);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(setns(home_fd, CLONE_NEWNET), 0);
	return fd;
}

/* GET http://ip:port/path from the bridge namespace (blocking, 2 s timeouts). Returns the status
 * (body into body) or -errno. */
static int http_get(const char *ip, uint16_t port, const char *path, char *body, size_t body_size)
{
	int fd = socket_in_br();
	assert_true(fd >= 0);
	struct timeval tv = {.tv_sec = 2};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	assert_int_equal(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	char req[256];
	int n = snprintf(req, sizeof(req),
	                 "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, ip);
	assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
	char buf[2048];
	size_t len = 0;
	for (int i = 0; i < 100 && len < sizeof(buf) - 1; i++) {
		ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	int status = 0;
	if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
		return -EPROTO;
	const char *b = strstr(buf, "\r\n\r\n");
	snprintf(body, body_size, "%s", b ? b + 4 : "");
	return status;
}

/* Number of links in the bridge namespace whose name starts with "kdtv" (sandbox veths). */
static int veths_in_br(void)
{
	assert_int_equal(setns(br_fd, CLONE_NEWNET), 0);
	struct if_nameindex *ifs = if_nameindex();
	assert_int_equal(setns(home_fd, CLONE_NEWNET), 0);
	assert_non_null(ifs);
	int n = 0;
	for (struct if_nameindex *i = ifs; i->if_index; i++)
		if (strncmp(i->if_name, "kdtv", 4) == 0)
			n++;
	if_freenameindex(ifs);
	return n;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Number of processes (other than us) whose netns inode is `ino`. */
static int procs_in_netns(ino_t ino)
{
	DIR *d = opendir("/proc");
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		char p[300];
		snprintf(p, sizeof(p), "/proc/%s/ns/net", de->d_name);
		struct stat st;
		if (stat(p, &st) == 0 && st.st_ino == ino)
			n++;
	}
	closedir(d);
	return n;
}

/* --- setup ------------------------------------------------------------------------------------ */
static int load(const char *extra_json)
{
	events.n = 0;
	char cfg[2048];
	snprintf(cfg, sizeof(cfg),
	         "{\"bridge\":\"kdtbr0\",\"bridge-netns\":\"%s\",\"pod-cidr\":\"10.77.0.0/24\","
	         "\"routes\":[],\"veth-prefix\":\"kdtv\",\"random-ip-start\":false,\"restart-"
	         "backoff\":\"100ms\","
	         "\"restart-backoff-max\":\"400ms\",\"startup-probe-period\":\"20ms\","
	         "\"images\":\"{\\\"test.local/hello\\\":\\\"%s/functions/hello\\\","
	         "\\\"test.local/sleep\\\":\\\"%s/functions/sleep\\\","
	         "\\\"test.local/false\\\":\\\"/bin/false\\\"}\""
	         "%s%s}",
	         br_ns_path, KD_BUILD_DIR, KD_BUILD_DIR, extra_json ? "," : "",
	         extra_json ? extra_json : "");
	struct kd_error *err = NULL;
	int rc = kd_plugin_load("runtime-process", KD_PLUGIN_RUNTIME, cfg, &host, &plugin, &err);
	if (rc < 0) {
		print_error("load: %s\n", kd_error_msg(err));
		kd_error_free(err);
		return rc;
	}
	ops = kd_plugin_ops(plugin);
	rt = kd_plugin_state(plugin);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	if (!usable)
		return 0;
	return load(NULL);
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
	kd_host_init(&host, loop, "test-runtime-process");
	if (geteuid() != 0) {
		snprintf(skip_why, sizeof(skip_why), "not root: network namespaces need root");
		return 0;
	}
	snprintf(br_ns, sizeof(br_ns), BR_NS_FMT, (int)getpid());
	snprintf(br_ns_path, sizeof(br_ns_path), "/run/netns/%s", br_ns);
	atexit(delete_bridge_ns);
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
	         "ip netns add %s && ip -n %s link set lo up && ip -n %s link add kdtbr0 type "
	         "bridge && ip -n %s addr add 10.77.0.1/24 dev kdtbr0 && ip -n %s link set kdtbr0 "
	         "up",
	         br_ns, br_ns, br_ns, br_ns, br_ns);
	if (system(cmd) != 0) {
		snprintf(skip_why, sizeof(skip_why), "cannot create a test network namespace");
		delete_bridge_ns();
		return 0;
	}
	home_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	br_fd = open(br_ns_path, O_RDONLY | O_CLOEXEC);
	if (home_fd < 0 || br_fd < 0) {
		snprintf(skip_why, sizeof(skip_why), "cannot open netns files");
		return 0;
	}
	usable = true;
	return 0;
}

static int teardown_all(void **state)
{
	(void)state;
	if (br_fd >= 0)
		close(br_fd);
	if (home_fd >= 0)
		close(home_fd);
	delete_bridge_ns();
	br_ns[0] = '\0';
	kd_loop_free(loop);
	return 0;
}

#define SKIP_UNLESS_USABLE()                                                                       \
	do {                                                                                       \
		if (!usable) {                                                                     \
			print_message("skipped: %s\n", skip_why);                                  \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

/* A one-container sandbox spec. */
struct one {
	struct kd_container_spec c;
	struct kd_container_port port;
	struct kd_env_var env[2];
	struct kd_sandbox_spec spec;
	char ns[32], name[64];
};

static void one_init(struct one *o, const char *key, const char *image, const char *uid)
{
	memset(o, 0, sizeof(*o));
	const char *slash = strchr(key, '/');
	snprintf(o->ns, sizeof(o->ns), "%.*s", (int)(slash - key), key);
	snprintf(o->name, sizeof(o->name), "%s", slash + 1);
	o->port = (struct kd_container_port){.name = "http", .container_port = 8080};
	o->c = (struct kd_container_spec){
	    .name = "user-container", .image = image, .ports = &o->port, .n_ports = 1};
	o->spec = (struct kd_sandbox_spec){.key = key,
	                                   .ns = o->ns,
	                                   .name = o->name,
	                                   .uid = uid,
	                                   .node = "node-1",
	                                   .containers = &o->c,
	                                   .n_containers = 1};
}

static int cstatus(const char *key, struct kd_container_status *cs)
{
	memset(cs, 0, sizeof(*cs));
	cs->struct_size = sizeof(*cs);
	return ops->container_status(rt, key, 0, cs);
}

/* --- tests ------------------------------------------------------------------------------------ */
static void hello_answers_on_pod_ip_and_teardown_leaves_nothing(void **state)
{
	(void)state;
	SKIP_UNLESS_USABLE();
	int fds_before = count_fds();
	assert_int_equal(veths_in_br(), 0);
	/* the spec as kd-node makes it from the Pod; the downward API: K_REVISION (metadata.name)
	 * and APP (a label) resolved from the Pod, MY_IP (status.podIP) by the runtime */
	struct json_object *pod = json_tokener_parse(
	    "{\"metadata\":{\"name\":\"hello-1\",\"namespace\":\"default\",\"uid\":\"uid-1\","
	    "\"labels\":{\"app\":\"hello\"}},\"spec\":{\"containers\":[{\"name\":"
	    "\"user-container\",\"image\":\"test.local/hello\",\"ports\":[{\"name\":\"http\","
	    "\"containerPort\":8080}],\"readinessProbe\":{\"httpGet\":{\"path\":\"/\","
	    "\"port\":\"http\"}},\"env\":[{\"name\":\"K_REVISION\",\"valueFrom\":{\"fieldRef\":"
	    "{\"fieldPath\":\"metadata.name\"}}},{\"name\":\"MY_IP\",\"valueFrom\":{\"fieldRef\":"
	    "{\"fieldPath\":\"status.podIP\"}}},{\"name\":\"APP\",\"valueFrom\":{\"fieldRef\":"
	    "{\"fieldPath\":\"metadata.labels['app']\"}}}]}]}}");
	assert_non_null(pod);
	struct kd_sandbox_view view;
	assert_int_equal(kd_sandbox_view_init(&view, pod, "node-1", NULL, NULL), 0);
	assert_int_equal(ops->start(rt, &view.spec, on_event, &events, NULL), 0);
	kd_sandbox_view_fini(&view); /* the runtime copied what it keeps */
	json_object_put(pod);
	assert_int_equal(events.n, 0); /* nothing from inside start */
	const struct rec *st = run_until(KD_RUNTIME_STARTED, "default/hello-1", 5000);
	assert_non_null(st);
	char ip[KD_IP_STRLEN];
	snprintf(ip, sizeof(ip), "%s", st->ip);
	assert_string_equal(ip, "10.77.0.2"); /* first usable: .0 network, .1 gateway */
	assert_non_null(run_until(KD_RUNTIME_READY, "default/hello-1", 5000));
	assert_true(find_index(KD_RUNTIME_STARTED, "default/hello-1") <
	            find_index(KD_RUNTIME_READY, "default/hello-1"));
	struct kd_sandbox_status ss;
	assert_int_equal(ops->status(rt, "default/hello-1", &ss), 0);
	assert_int_equal(ss.phase, KD_SANDBOX_READY);
	assert_string_equal(ss.pod_ip, ip);
	struct kd_container_status cs;
	assert_int_equal(cstatus("default/hello-1", &cs), 0);
	assert_true(cs.running && cs.ready);
	assert_true(cs.pid > 0);
	assert_int_equal(cs.restart_count, 0);
	pid_t pid = (pid_t)cs.pid;
	char envf[64], envs[4096];
	snprintf(envf, sizeof(envf), "/proc/%d/environ", (int)pid);
	int efd = open(envf, O_RDONLY | O_CLOEXEC);
	assert_true(efd >= 0);
	ssize_t en = read(efd, envs, sizeof(envs) - 1);
	close(efd);
	assert_true(en > 0);
	envs[en] = '\0';
	bool have_rev = false, have_ip = false, have_app = false;
	for (const char *e = envs; e < envs + en; e += strlen(e) + 1) {
		have_rev |= strcmp(e, "K_REVISION=hello-1") == 0;
		have_ip |= strcmp(e, "MY_IP=10.77.0.2") == 0;
		have_app |= strcmp(e, "APP=hello") == 0;
	}
	assert_true(have_rev && have_ip && have_app);
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/ns/net", (int)pid);
	struct stat nst, own;
	assert_int_equal(stat(p, &nst), 0);
	assert_int_equal(stat("/proc/self/ns/net", &own), 0);
	assert_true(nst.st_ino != own.st_ino); /* its own namespace */
	/* eth0 inside: MAC derived from the pod IP 10.77.0.2 */
	int pfd = open(p, O_RDONLY | O_CLOEXEC);
	assert_true(pfd >= 0);
	assert_int_equal(setns(pfd, CLONE_NEWNET), 0);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "eth0");
	int irc = ioctl(s, SIOCGIFHWADDR, &ifr);
	close(s);
	assert_int_equal(setns(home_fd, CLONE_NEWNET), 0);
	close(pfd);
	assert_int_equal(irc, 0);
	const unsigned char want_mac[6] = {0x0a, 0x58, 10, 77, 0, 2};
	assert_memory_equal(ifr.ifr_hwaddr.sa_data, want_mac, 6);
	assert_int_equal(veths_in_br(), 1);

	/* over the veth and the bridge, from the bridge's namespace */
	char body[256];
	assert_int_equal(http_get(ip, 8080, "/", body, sizeof(body)), 200);
	assert_string_equal(body, "Hello from hello-1\n");

	assert_int_equal(ops->stop(rt, "default/hello-1", 2000, NULL), 0);
	assert_int_equal(ops->status(rt, "default/hello-1", &ss), -ENOENT);
	const struct rec *ex = run_until(KD_RUNTIME_EXITED, "default/hello-1", 5000);
	assert_non_null(ex);
	assert_string_equal(ex->reason, "Stopped");
	assert_string_equal(ex->ip, ip);
	/* nothing left: process, namespace (no process in it, our fd closed), veth, fds */
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	assert_int_equal(procs_in_netns(nst.st_ino), 0);
	assert_int_equal(veths_in_br(), 0);
	assert_int_equal(count_fds(), fds_before);
	assert_true(http_get(ip, 8080, "/", body, sizeof(body)) < 0);
}

static void unknown_image_fails_with_err_image_pull(void **state)
{
	(void)state;
	SKIP_UNLESS_USABLE();
	struct one o;
	one_init(&o, "default/nope-1", "test.local/nope:v1", NULL);
	assert_int_equal(ops->start(rt, &o.spec, on_event, &events, NULL), 0);
	const struct rec *f = run_until(KD_RUNTIME_FAILED, "default/nope-1", 3000);
	assert_non_null(f);
	assert_string_equal(f->reason, "ErrImagePull");
	assert_non_null(strstr(f->message, "test.local/nope:v1"));
	assert_null(find_event(KD_RUNTIME_STARTED, "default/nope-1"));
	struct kd_sandbox_status ss;
	assert_int_equal(ops->status(rt, "default/nope-1", &ss), -ENOENT);
	assert_int_equal(veths_in_br(), 0);
}

static void exiting_binary_restarts_with_growing_backoff(void **state)
{
	(void)state;
	SKIP_UNLESS_USABLE();
	struct one o;
	one_init(&o, "default/crash-1", "test.local/false", NULL);
	/* with a probe, as Knative pods have: it never passes, so the pod is never READY */
	o.c.readiness = (struct kd_probe){.type = KD_PROBE_TCP, .port = 8080};
	assert_int_equal(ops->start(rt, &o.spec, on_event, &events, NULL), 0);
	assert_non_null(run_until(KD_RUNTIME_STARTED, "default/crash-1", 3000));
	/* watch the restart count: 100, 200, 400, 400 ms backoff (config) */
	uint64_t at[8] = {0};
	uint32_t last = 0;
	uint64_t deadline = kd_now_ns() + 4000ull * 1000000ull;
	for (int i = 0; i < 100000 && last < 4 && kd_now_ns() < deadline; i++) {
		kd_loop_run_once(loop, 5);
		struct kd_container_status cs;
		assert_int_equal(cstatus("default/crash-1", &cs), 0);
		if (cs.restart_count != last) {
			assert_int_equal(cs.restart_count, last + 1); /* one at a time */
			last = cs.restart_count;
			at[last] = kd_now_ns() / 1000000ull;
			assert_string_equal(cs.reason, "CrashLoopBackOff");
			assert_non_null(strstr(cs.message, "exit code 1"));
			assert_int_equal(cs.last_exit_code, 1);
			assert_false(cs.ready);
		}
	}
	assert_int_equal(last, 4);
	/* restarts come further apart: the first gap follows a 100 ms backoff, the next 200 ms */
	assert_true(at[3] - at[2] > at[2] - at[1]);
	assert_null(find_event(KD_RUNTIME_READY, "default/crash-1"));
	assert_null(find_event(KD_RUNTIME_FAILED, "default/crash-1")); /* the pod stays */
	assert_int_equal(ops->stop(rt, "default/crash-1", 1000, NULL), 0);
	assert_non_null(run_until(KD_RUNTIME_EXITED, "default/crash-1", 3000));
	assert_int_equal(veths_in_br(), 0);
}

/* restartPolicy Never, as kd_sandbox_view reads it from the Pod: the first exit ends the sandbox
 * (no CrashLoopBackOff restart). */
static void restart_policy_never_ends_the_sandbox_at_the_first_exit(void **state)
{
	(void)state;
	SKIP_UNLESS_USABLE();
	struct json_object *pod = json_tokener_parse(
	    "{\"metadata\":{\"name\":\"once-1\",\"namespace\":\"default\"},\"spec\":{"
	    "\"restartPolicy\":\"Never\",\"containers\":[{\"name\":\"user-container\","
	    "\"image\":\"test.local/false\"}]}}");
	assert_non_null(pod);
	struct kd_sandbox_view view;
	assert_int_equal(kd_sandbox_view_init(&view, pod, "node-1", NULL, NULL), 0);
	assert_int_equal(view.spec.restart_policy, KD_RESTART_NEVER);
	assert_int_equal(ops->start(rt, &view.spec, on_event, &events, NULL), 0);
	kd_sandbox_view_fini(&view);
	json_object_put(pod);
	const struct rec *f = run_until(KD_RUNTIME_FAILED, "default/once-1", 3000);
	assert_non_null(f);
	assert_string_equal(f->reason, "Error");
	assert_non_null(strstr(f->message, "exited with code 1"));
	struct kd_sandbox_status ss;
	assert_int_equal(ops->status(rt, "default/once-1", &ss), -ENOENT);
	assert_int_equal(veths_in_br(), 0);
}

static void failing_probe_keeps_sandbox_not_ready(void **state)
{
	(void)state;
	SKIP_UNLESS_USABLE();
	struct one a, b;
	one_init(&a, "default/refused-1", "test.local/hello", NULL);
	a.c.readiness = (struct kd_probe){.type = KD_PROBE_TCP, .port = 9999};
	one_init(&b, "default/bad-status-1", "test.local/sleep", NULL);
	b.c.readiness =
	    (struct kd_probe){.type = KD_PROBE_HTTP, .http_path = "/?ms=bad", .port = 8080};
	assert_int_equal(ops->start(rt, &a.spec, on_event, &events, NULL), 0);
	assert_int_equal(ops->start(rt, &b.spec, on_event, &events, NULL), 0);
	assert_non_null(run_until(KD_RUNTIME_STARTED, "default/refused-1", 3000));
	assert_non_null(run_until(KD_RUNTIME_STARTED, "default/bad-status-1", 3000));
	run_for(800); /* ~40 probes each at the 20 ms startup period */
	assert_null(find_event(KD_RUNTIME_READY, "default/refused-1"));
	assert_null(find_event(KD_RUNTIME_READY, "default/bad-status-1"));
	struct kd_container_status cs;
	assert_int_equal(cstatus("default/refused-1", &cs), 0);
	assert_true(cs.running);
	assert_false(cs.ready);
	assert_non_null(strstr(cs.message, "Readiness probe failed"));
	assert_non_null(strstr(cs.message, "refused"));
	assert_int_equal(cstatus("default/bad-status-1", &cs), 0);
	assert_true(cs.running);
	assert_false(cs.ready);
	assert_non_null(strstr(cs.message, "statuscode: 400"));
	struct kd_sandbox_status ss;
	assert_int_equal(ops->status(rt, "default/refused-1", &ss), 0);
	assert_int_equal(ss.phase, KD_SANDBOX_STARTED);
	assert_int_equal(ops->stop(rt, "default/refused-1", 1000, NULL), 0);
	assert_int_equal(ops->stop(rt, "default/bad-status-1", 1000, NULL), 0);
	assert_non_null(run_until(KD_RUNTIME_EXITED, "default/refused-1", 3000));
	assert_non_null(run_until(KD_RUNTIME_EXITED, "default/bad-status-1", 3000));
	assert_int_equal(veths_in_br(), 0);
}

static void exec_probe_runs_in_the_sandbox(void **state)
{
	(void)state;
	SKIP_UNLESS_USABLE();
	struct one a, b;
	/* passes only inside the sandbox: the pod IP is local there */
	static const char *const ok_cmd[] = {"/bin/sh", "-c",
	                                     "ip -o -4 addr show dev eth0 | grep -q 10.77.0.2/24"};
	static const char *const bad_cmd[] = {"/bin/false"};
	one_init(&a, "default/exec-ok", "test.local/hello", NULL);
	a.c.readiness =
	    (struct kd_probe){.type = KD_PROBE_EXEC, .exec_command = ok_cmd, .n_exec_command = 3};
	one_init(&b, "default/exec-bad", "test.local/hello", NULL);
	b.c.readiness =
	    (struct kd_probe){.type = KD_PROBE_EXEC, .exec_command = bad_cmd, .n_exec_command = 1};
	assert_int_equal(ops->start(rt, &a.spec, on_event, &events, NULL), 0);
	assert_int_equal(ops->start(rt, &b.spec, on_event, &events, NULL), 0);
	assert_non_null(run_until(KD_RUNTIME_READY, "default/exec-ok", 3000));
	assert_non_null(run_until(KD_RUNTIME_STARTED, "default/exec-bad", 3000));
	run_for(300);
	assert_null(find_event(KD_RUNTIME_READY, "default/exec-bad"));
	struct kd_container_status cs;
	assert_int_equal(cstatus("default/exec-bad", &cs), 0);
	assert_true(cs.running);
	assert_false(cs.ready);
	assert_non_null(strstr(cs.message, "command exited with code 1"));
	assert_int_equal(ops->stop(rt, "default/exec-ok", 1000, NULL), 0);
	assert_int_equal(ops->stop(rt, "default/exec-bad", 1000, NULL), 0);
	assert_non_null(run_until(KD_RUNTIME_EXITED, "default/exec-ok", 3000));
	assert_non_null(run_until(KD_RUNTIME_EXITED, "default/exec-bad", 3000));
	assert_int_equal(veths_in_br(), 0);
}

static void restart_of_same_key_reports_exit_before_start(void **state)
{
	(void)state;
	SKIP_UNLESS_USABLE();
	struct one o;
	one_init(&o, "default/again-1", "test.local/hello", "uid-a");
	assert_int_equal(ops->start(rt, &o.spec, on_event, &events, NULL), 0);
	assert_non_null(run_until(KD_RUNTIME_READY, "default/again-1", 3000));
	assert_int_equal(ops->stop(rt, "default/again-1", 2000, NULL), 0);
	o.spec.uid = "uid-b";
	assert_int_equal(ops->start(rt, &o.spec, on_event, &events, NULL), 0);
	/* a different uid for a live key is refused */
	o.spec.uid = "uid-c";
	struct kd_error *err = NULL;
	assert_int_equal(ops->start(rt, &o.spec, on_event, &events, &err), -EBUSY);
	kd_error_free(err);
	assert_non_null(run_until(KD_RUNTIME_EXITED, "default/again-1", 3000));
	/* the second READY */
	uint64_t deadline = kd_now_ns() + 3000ull * 1000000ull;
	size_t readies = 0;
	for (int i = 0; i < 100000 && readies < 2 && kd_now_ns() < deadline; i++) {
		kd_loop_run_once(loop, 5);
		readies = 0;
		for (size_t k = 0; k < events.n; k++)
			readies += events.v[k].type == KD_RUNTIME_READY;
	}
	assert_int_equal(readies, 2);
	long exited = find_index(KD_RUNTIME_EXITED, "default/again-1");
	long second_start = -1;
	for (size_t k = 0; k < events.n; k++)
		if (events.v[k].type == KD_RUNTIME_STARTED)
			second_start = (long)k;
	assert_true(exited < second_start);
	assert_int_equal(veths_in_br(), 1);
	assert_int_equal(ops->stop(rt, "default/again-1", 2000, NULL), 0);
	events.n = 0;
	assert_non_null(run_until(KD_RUNTIME_EXITED, "default/again-1", 3000));
	assert_int_equal(veths_in_br(), 0);
}

static void pooled_namespace_serves_a_sandbox(void **state)
{
	(void)state;
	SKIP_UNLESS_USABLE();
	kd_plugin_unload(plugin);
	plugin = NULL;
	assert_int_equal(load("\"pool-size\":2"), 0);
	run_for(200);
	assert_int_equal(veths_in_br(), 2); /* made in advance */
	struct one o;
	one_init(&o, "default/pooled-1", "test.local/hello", NULL);
	o.c.readiness = (struct kd_probe){.type = KD_PROBE_TCP, .port = 8080};
	assert_int_equal(ops->start(rt, &o.spec, on_event, &events, NULL), 0);
	const struct rec *st = run_until(KD_RUNTIME_STARTED, "default/pooled-1", 3000);
	assert_non_null(st);
	char ip[KD_IP_STRLEN];
	snprintf(ip, sizeof(ip), "%s", st->ip);
	assert_non_null(run_until(KD_RUNTIME_READY, "default/pooled-1", 3000));
	char body[256];
	assert_int_equal(http_get(ip, 8080, "/", body, sizeof(body)), 200);
	run_for(200);
	assert_int_equal(veths_in_br(), 3); /* the pool was refilled */
	assert_int_equal(ops->stop(rt, "default/pooled-1", 2000, NULL), 0);
	assert_non_null(run_until(KD_RUNTIME_EXITED, "default/pooled-1", 3000));
	assert_int_equal(veths_in_br(), 2);
	kd_plugin_unload(plugin); /* fini removes the pooled namespaces */
	plugin = NULL;
	assert_int_equal(veths_in_br(), 0);
}

static void bad_config_is_refused(void **state)
{
	(void)state;
	SKIP_UNLESS_USABLE();
	kd_plugin_unload(plugin);
	plugin = NULL;
	assert_true(load("\"veth-prefix\":\"much-too-long\"") < 0);
	assert_true(load("\"gateway\":\"not-an-ip\"") < 0);
	assert_int_equal(load(NULL), 0);
	kd_plugin_unload(plugin);
	plugin = NULL;
	/* images must be an object of strings */
	char cfg[256];
	snprintf(cfg, sizeof(cfg), "{\"bridge-netns\":\"%s\",\"images\":\"[1]\"}", br_ns_path);
	struct kd_error *err = NULL;
	assert_true(
	    kd_plugin_load("runtime-process", KD_PLUGIN_RUNTIME, cfg, &host, &plugin, &err) < 0);
	assert_non_null(strstr(kd_error_msg(err), "images"));
	kd_error_free(err);
	plugin = NULL;
}

static void limits_out_of_range_fail_the_sandbox_naming_field_and_value(void **state)
{
	(void)state;
	SKIP_UNLESS_USABLE();
	static const struct {
		const char *key;
		int64_t cpu, memory;
		size_t n_ctrs; /* the limits are those of each container */
		const char *ctr, *field, *value, *why;
	} bad[] = {
	    {"default/negcpu-1", -1, 128, 1, "user-container", "resources.limits.cpu", "-1",
	     "negative"},
	    {"default/negmem-1", 500, -5, 1, "user-container", "resources.limits.memory", "-5",
	     "negative"},
	    {"default/sumcpu-1", INT64_MAX, 0, 2, "second", "resources.limits.cpu",
	     "9223372036854775807", "out of range"},
	};
	struct one o[KD_ARRAY_SIZE(bad) + 1];
	struct kd_container_spec cs[KD_ARRAY_SIZE(bad) + 1][2];
	for (size_t i = 0; i <= KD_ARRAY_SIZE(bad); i++) {
		bool good = i == KD_ARRAY_SIZE(bad);
		one_init(&o[i], good ? "default/goodlim-1" : bad[i].key, "test.local/hello", NULL);
		o[i].c.limits =
		    good ? (struct kd_resources){.cpu_milli = 500, .memory_bytes = 128ll << 20}
		         : (struct kd_resources){.cpu_milli = bad[i].cpu,
		                                 .memory_bytes = bad[i].memory};
		cs[i][0] = cs[i][1] = o[i].c;
		cs[i][1].name = "second";
		o[i].spec.containers = cs[i];
		o[i].spec.n_containers = good ? 1 : bad[i].n_ctrs;
		assert_int_equal(ops->start(rt, &o[i].spec, on_event, &events, NULL), 0);
	}
	for (size_t i = 0; i < KD_ARRAY_SIZE(bad); i++) {
		const struct rec *f = run_until(KD_RUNTIME_FAILED, bad[i].key, 3000);
		assert_non_null(f);
		assert_string_equal(f->reason, "CreateContainerConfigError");
		char want[160];
		snprintf(want, sizeof(want), "container %s: %s %s: ", bad[i].ctr, bad[i].field,
		         bad[i].value);
		if (!strstr(f->message, want) || !strstr(f->message, bad[i].why))
			fail_msg("%s: \"%s\" does not say \"%s...%s\"", bad[i].key, f->message,
			         want, bad[i].why);
		assert_null(find_event(KD_RUNTIME_STARTED, bad[i].key));
		struct kd_sandbox_status ss;
		assert_int_equal(ops->status(rt, bad[i].key, &ss), -ENOENT);
	}
	/* valid limits start (no writable cgroup v2 here: not limited, but not refused) */
	assert_non_null(run_until(KD_RUNTIME_READY, "default/goodlim-1", 3000));
	assert_null(find_event(KD_RUNTIME_FAILED, "default/goodlim-1"));
	assert_int_equal(veths_in_br(), 1);
	assert_int_equal(ops->stop(rt, "default/goodlim-1", 1000, NULL), 0);
	assert_non_null(run_until(KD_RUNTIME_EXITED, "default/goodlim-1", 3000));
	assert_int_equal(veths_in_br(), 0);
}

static void probe_without_port_in_first_container_is_refused(void **state)
{
	(void)state;
	SKIP_UNLESS_USABLE();
	struct one o;
	one_init(&o, "default/noport-1", "test.local/hello", NULL);
	struct kd_container_spec cs[2] = {o.c, o.c};
	cs[0].readiness = (struct kd_probe){.type = KD_PROBE_TCP}; /* no port */
	cs[1].name = "second";
	o.spec.containers = cs;
	o.spec.n_containers = 2;
	struct kd_error *err = NULL;
	assert_int_equal(ops->start(rt, &o.spec, on_event, &events, &err), -EINVAL);
	assert_non_null(strstr(kd_error_msg(err), "readiness probe without a port"));
	kd_error_free(err);
	struct kd_sandbox_status ss;
	assert_int_equal(ops->status(rt, "default/noport-1", &ss), -ENOENT);
	run_for(50);
	assert_int_equal(events.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(hello_answers_on_pod_ip_and_teardown_leaves_nothing,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(unknown_image_fails_with_err_image_pull, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(exiting_binary_restarts_with_growing_backoff, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(restart_policy_never_ends_the_sandbox_at_the_first_exit,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(failing_probe_keeps_sandbox_not_ready, setup, teardown),
	    cmocka_unit_test_setup_teardown(exec_probe_runs_in_the_sandbox, setup, teardown),
	    cmocka_unit_test_setup_teardown(restart_of_same_key_reports_exit_before_start, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(pooled_namespace_serves_a_sandbox, setup, teardown),
	    cmocka_unit_test_setup_teardown(bad_config_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        limits_out_of_range_fail_the_sandbox_naming_field_and_value, setup, teardown),
	    cmocka_unit_test_setup_teardown(probe_without_port_in_first_container_is_refused, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
