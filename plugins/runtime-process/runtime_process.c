/* plugins/runtime-process: real pod sandboxes on this machine. Each sandbox is its own network
 * namespace with a veth pair (eth0 inside, with the pod IP; the host end enslaved to a bridge),
 * and the pod's containers run as processes inside it (for a Knative pod: Knative's real
 * queue-proxy and the user's program). Everything runs on the host's kd_loop: children are
 * watched through pidfds (or, without pidfd_open, a 10 ms waitpid(WNOHANG) timer), probes are
 * non-blocking sockets, backoffs and grace periods are loop timers; nothing blocks the loop except
 * short netlink requests to the kernel.
 *
 * Network (what the host must provide; the rig's layout, rig/README.md "Network"):
 *  - A bridge (`bridge`, default kd-br0) in the network namespace named by `bridge-netns` (a path
 *    to a netns file; default /proc/1/ns/net, the root namespace, where rig/up creates kd-br0
 *    with 10.88.0.1/16). The runtime only enslaves veths to it; it never changes the bridge.
 *    The file is opened once at init (a netlink socket is kept there), so any path valid at
 *    that moment works, e.g. /proc/<pid of a root-netns process>/ns/net where PID 1's
 *    namespace files are not readable (as on our build machines; kd-node itself runs inside
 *    the rig's kd-cp namespace, so "" would be wrong there).
 *  - Pod IPs come from the sandbox spec's per-node pod CIDR (kd-node passes the node's
 *    spec.podCIDR, e.g. 10.244.3.0/24), else `pod-cidr`. Through kd/ipam.h, as runtime-sim:
 *    the network address, the first host (reserved for a per-node gateway, never assigned) and
 *    the broadcast address are skipped; allocation is next-fit from a random start
 *    (`random-ip-start`, so a restarted kd-node does not reuse the last run's addresses first:
 *    peers keep idle keep-alive connections and ARP entries to them). The address gets the
 *    CIDR's prefix length on eth0.
 *  - Routes inside the sandbox: on-link routes for each CIDR in `routes` (default the rig's
 *    10.88.0.0/16 and 10.244.0.0/16: everything on kd-br0 is one L2 segment) and, only if
 *    `gateway` is set, a default route via that address (the rig has none on purpose: nothing
 *    leaves the machine). No per-node gateway address is needed on the bridge for the rig.
 *  - Host ends are named `veth-prefix` + 8 hex digits (default "kd-s", so rig/down's sweep of kd-*
 *    links removes leftovers); the sandbox end is eth0, lo is up. eth0's MAC is derived from
 *    the pod IP (0a:58:<4 IP bytes>, the CNI bridge plugin's old scheme): pod IPs are reused,
 *    and with a new random MAC per sandbox the peers' ARP caches (e.g. Knative's activator)
 *    kept the previous pod's MAC for tens of seconds (seen: cold requests stuck 30-50 s).
 *  - Namespaces are anonymous: held by an fd of this plugin and by the sandbox's processes
 *    (which get PR_SET_PDEATHSIG=SIGKILL, so they die with the host process; the namespace and
 *    both veth ends go with them). Creating them uses unshare(CLONE_NEWNET) on the loop thread,
 *    which then setns()es straight back to the namespace the plugin was loaded in.
 *  - `pool-size` > 0 keeps that many namespaces (lo up, veth attached) made in advance, refilled
 *    one per loop iteration, so a start only adds the address and routes and spawns.
 *
 * Containers:
 *  - Image mapping: an image resolves to a local executable through `images` (a JSON object
 *    {"dev.local/hello": "/path/to/hello", ...}); the image is tried as given, without its
 *    @digest, and without its :tag. Built in (overridable by `images`): `queue-image` ->
 *    `queue-bin` (Knative's queue-proxy image name in the rig's config-deployment -> the binary
 *    rig/build caches). An image mapping to nothing or to a non-executable file fails the
 *    sandbox with reason ErrImagePull and a message naming the image.
 *  - argv: the mapped executable is always what runs; argv[0] is command[0] if the spec has a
 *    command (its other entries follow), else the executable's path; then args. Env: the spec's
 *    env (later duplicates win), with valueFrom.fieldRef resolved from the Pod object as the
 *    downward API would (metadata.name/namespace/uid/labels/annotations, spec.nodeName,
 *    spec.serviceAccountName, status.podIP(s), status.hostIP = `host-ip`); without a Pod object,
 *    empty SERVING_POD/SERVING_POD_IP/POD_NAME/POD_IP are filled. Added when absent: PATH,
 *    HOSTNAME (pod name), PORT (the container's first port, for the sample functions).
 *  - Processes: setns into the sandbox, own session, PR_SET_PDEATHSIG, default signal state,
 *    stdin /dev/null, stdout+stderr appended to <log-dir>/<ns>_<pod>_<container>.log (or
 *    /dev/null when log-dir is empty), every other fd closed.
 *  - Resources: if the Pod sets limits (cpu/memory, summed over containers) and cgroup v2 is
 *    mounted and writable at the parent of `cgroup-root`, the sandbox gets its own cgroup
 *    (cpu.max, memory.max) that its processes join before exec. Otherwise one log line at init
 *    says sandboxes are not cgroup-limited.
 *
 * Readiness (kubelet semantics, all probes from inside the sandbox's namespace to the pod IP):
 *  - HTTP GET (headers from the Pod's httpGet.httpHeaders, e.g. Knative's queue-proxy probe
 *    `K-Network-Probe: queue`, added for a container named queue-proxy when there is no Pod
 *    object; User-Agent kube-probe/1.35), 200..399 passes; TCP connect; exec (exit 0).
 *  - initialDelay, period (0: 10 s), timeout (0: 1 s), success/failure thresholds as Kubernetes.
 *    Deviation for cold starts: until a container first passes, it is probed every
 *    `startup-probe-period` (default 50ms) when that is shorter than its period (0 disables).
 *  - The sandbox is READY when every container runs and passes. A probe that never passes keeps
 *    it STARTED (not ready); container_status() shows the last failure as the message.
 *
 * Failures, as a kubelet would report them:
 *  - A container that exits before the sandbox was ever READY is restarted in place after a
 *    CrashLoopBackOff delay (`restart-backoff` doubling to `restart-backoff-max`), its restart
 *    count and reason ("CrashLoopBackOff", message with exit code) in container_status().
 *  - After READY, the kd_runtime ABI has no "not ready any more" event: a container exit then
 *    fails the whole sandbox (the others get SIGTERM, 2 s grace, SIGKILL; FAILED reason Error,
 *    or Completed for exit code 0) and the host restarts the pod (kd-node: its own backoff).
 *    A readiness probe failing failureThreshold times after READY is logged only.
 *  - restartPolicy Never (from the Pod): any container exit ends the sandbox.
 *
 * Stop: SIGTERM to every container, SIGKILL after grace_ms, then the veth is deleted, the
 * namespace fd closed, the cgroup removed, the address released and EXITED (reason Stopped)
 * delivered. A start for the same key meanwhile waits for that EXITED (see kd/stage.h).
 * fini: SIGKILL and reap everything, delete every veth and pooled namespace; no events.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kd/common.h"
#include "kd/config.h"
#include "kd/ipam.h"
#include "kd/json.h"
#include "kd/plugin.h"
#include "kd/stage.h"
#include "kd/strmap.h"
#include "rp_netlink.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define RP_FAIL_GRACE_MS   2000u
#define RP_DEFAULT_PERIOD  10000u
#define RP_DEFAULT_TIMEOUT 1000u
#define RP_MAX_CONTAINERS  16
#define RP_POLL_MS         10

struct rp_config {
	char *images;
	char *queue_image;
	char *queue_bin;
	char *bridge;
	char *bridge_netns;
	char *pod_cidr;
	struct kd_strlist routes;
	char *gateway;
	char *veth_prefix;
	uint64_t pool_size;
	uint64_t restart_backoff_ms;
	uint64_t restart_backoff_max_ms;
	uint64_t startup_probe_period_ms;
	char *log_dir;
	char *cgroup_root;
	char *host_ip;
	bool random_ip_start;
};

static const struct kd_config_option rp_options[] = {
    KD_OPT_STRING("images", struct rp_config, images, .def = "{}", .metavar = "JSON",
                  .help = "image -> executable table, a JSON object such as "
                          "{\"dev.local/hello\": \"/path/to/functions/hello\"}"),
    KD_OPT_STRING("queue-image", struct rp_config, queue_image,
                  .def = "dev.local/knative-serving/queue",
                  .help = "Knative queue-proxy image name (tag ignored) mapped to queue-bin"),
    KD_OPT_STRING("queue-bin", struct rp_config, queue_bin,
                  .def = "/var/cache/kubedirect/bin/knative-serving-v0.50.0/queue",
                  .metavar = "PATH", .help = "Knative queue-proxy binary (built by rig/build)"),
    KD_OPT_STRING("bridge", struct rp_config, bridge, .def = "kd-br0", .required = true,
                  .help = "bridge the host ends of the sandbox veths are attached to"),
    KD_OPT_STRING("bridge-netns", struct rp_config, bridge_netns, .def = "/proc/1/ns/net",
                  .metavar = "PATH",
                  .help = "network namespace file of the bridge (\"\": the plugin's own)"),
    KD_OPT_STRING("pod-cidr", struct rp_config, pod_cidr, .def = "10.244.0.0/24", .metavar = "CIDR",
                  .required = true,
                  .help = "IPv4 CIDR pod IPs come from when the spec has no per-node CIDR"),
    KD_OPT_STRLIST("routes", struct rp_config, routes, .def = "10.88.0.0/16,10.244.0.0/16",
                   .help = "CIDRs routed on-link through eth0 inside each sandbox"),
    KD_OPT_STRING("gateway", struct rp_config, gateway, .def = "", .metavar = "IP",
                  .help = "default route inside sandboxes via this address (\"\": none)"),
    KD_OPT_STRING("veth-prefix", struct rp_config, veth_prefix, .def = "kd-s",
                  .help = "name prefix of the host ends of sandbox veths (at most 7 chars)"),
    KD_OPT_UINT("pool-size", struct rp_config, pool_size, .def = "0", .has_max = true,
                .max = 1024.0, .help = "network namespaces kept ready in advance"),
    KD_OPT_DURATION("restart-backoff", struct rp_config, restart_backoff_ms, .def = "10s",
                    .has_max = true, .max = 3600000.0,
                    .help = "first CrashLoopBackOff delay (doubles per restart)"),
    KD_OPT_DURATION("restart-backoff-max", struct rp_config, restart_backoff_max_ms, .def = "5m",
                    .has_max = true, .max = 3600000.0, .help = "largest CrashLoopBackOff delay"),
    KD_OPT_DURATION("startup-probe-period", struct rp_config, startup_probe_period_ms,
                    .def = "50ms", .has_max = true, .max = 60000.0,
                    .help = "readiness probe period until a container first passes, if "
                            "shorter than its own (0: the probe's period only)"),
    KD_OPT_STRING("log-dir", struct rp_config, log_dir, .def = "", .metavar = "DIR",
                  .help = "directory for container stdout/stderr logs (\"\": discarded)"),
    KD_OPT_STRING("cgroup-root", struct rp_config, cgroup_root, .def = "/sys/fs/cgroup/kubedirect",
                  .metavar = "DIR",
                  .help = "cgroup v2 directory sandbox cgroups are created under"),
    KD_OPT_STRING("host-ip", struct rp_config, host_ip, .def = "", .metavar = "IP",
                  .help = "value of status.hostIP for the downward API"),
    KD_OPT_BOOL("random-ip-start", struct rp_config, random_ip_start, .def = "true",
                .help = "start each CIDR's next-fit allocation at a random address (as "
                        "host-local IPAM resumes after its last one) instead of the first"),
    KD_CONFIG_END,
};

/* --- data ------------------------------------------------------------------------------------- */
struct rp;
struct sandbox;

struct ctr {
	struct sandbox *sb;
	size_t idx;
	char *name, *image, *path;
	char **argv, **envp;
	char *log_path;
	/* readiness */
	struct kd_probe probe; /* http_path and exec_command owned copies */
	char *http_path;
	char **exec_argv;
	char *probe_headers; /* "Name: value\r\n"... */
	unsigned succ, fail;
	bool ever_ready;
	struct kd_timer *probe_timer, *probe_timeout, *restart_timer;
	int probe_fd;
	bool probe_sent;
	char probe_buf[128];
	size_t probe_len;
	pid_t probe_pid;
	int probe_pidfd; /* -1 while polled (no pidfd_open) */
	struct kd_timer *probe_poll;
	/* process */
	pid_t pid;
	int pidfd;             /* -1 while polled (no pidfd_open) */
	struct kd_timer *poll; /* waitpid(WNOHANG) every RP_POLL_MS without pidfd_open */
	bool running, ready;
	uint32_t restarts;
	int last_exit;
	char reason[64], message[256];
};

enum sb_state { SB_PENDING = 0, SB_RUNNING, SB_ENDING };

struct sandbox {
	struct sandbox *dnext; /* ending list */
	struct rp *rp;
	char *key, *uid, *ns, *name;
	char ip[KD_IP_STRLEN];
	uint32_t ip_be;
	unsigned prefix;
	struct kd_ipam_pool *pool; /* NULL or the pool ip_be was taken from */
	enum kd_sandbox_phase phase;
	enum sb_state st;
	uint64_t created_ms, ready_ms;
	kd_runtime_event_cb cb;
	void *cb_arg;
	struct kd_timer *timer; /* setup, then grace / finalize */
	int ns_fd;
	char veth[IFNAMSIZ];
	char *cg_path;
	int cg_procs_fd;
	int64_t cpu_milli, mem_bytes;
	struct ctr *ctrs;
	size_t n;
	bool restart_never;
	bool in_table;
	struct sandbox *waiting_on, *successor;
	/* pre-setup failure (e.g. ErrImagePull), reported from the setup timer */
	char *fail_reason, *fail_msg;
	/* end of life */
	enum kd_runtime_event_type end_type;
	char end_reason[64], end_msg[256];
	int end_code;
	bool killed;
};

struct pooled_ns {
	int ns_fd;
	char veth[IFNAMSIZ];
};

struct image_map {
	char *image, *path;
};

struct rp {
	const struct kd_host *host;
	const struct rp_config *cfg;
	int home_fd, br_fd;
	struct rp_nl br_nl;
	uint32_t gateway_be;
	struct {
		uint32_t dst;
		unsigned prefix;
	} routes[16];
	size_t n_routes;
	struct image_map *images;
	size_t n_images;
	struct kd_ipam *ipam;
	struct kd_strmap table; /* key (sb->key) -> live struct sandbox */
	struct sandbox *ending;
	struct pooled_ns *pool_ns;
	size_t n_pool;
	struct kd_timer *pool_timer;
	bool cgroups;
	uint32_t veth_seq;
};

static int rp_err(const struct rp *rp, struct kd_error **err, int errnum, const char *fmt, ...)
    KD_PRINTF(4, 5);
static int rp_err(const struct rp *rp, struct kd_error **err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = kd_xvasprintf(fmt, ap);
	va_end(ap);
	rp->host->error_set(err, errnum, 0, "%s", msg);
	free(msg);
	return -errnum;
}

static uint64_t now_ms(const struct rp *rp)
{
	return rp->host->now_ms(rp->host->loop);
}

/* --- table ------------------------------------------------------------------------------------ */
static void table_remove(struct rp *rp, struct sandbox *sb)
{
	if (!sb->in_table)
		return;
	if (kd_strmap_get(&rp->table, sb->key) == sb)
		kd_strmap_del(&rp->table, sb->key);
	sb->in_table = false;
	sb->dnext = rp->ending;
	rp->ending = sb;
}

static void ending_unlink(struct rp *rp, struct sandbox *sb)
{
	for (struct sandbox **pp = &rp->ending; *pp; pp = &(*pp)->dnext) {
		if (*pp == sb) {
			*pp = sb->dnext;
			break;
		}
	}
	sb->dnext = NULL;
}

/* --- namespaces and links --------------------------------------------------------------------- */
static void setns_home(const struct rp *rp)
{
	if (setns(rp->home_fd, CLONE_NEWNET) < 0) {
		/* the loop thread would go on in the wrong namespace: nothing sane is left */
		rp->host->log(KD_LOG_ERROR, "runtime-process: setns back home: %s",
		              strerror(errno));
		abort();
	}
}

/* Opens a netlink socket inside the namespace of ns_fd. */
static int nl_in(const struct rp *rp, int ns_fd, struct rp_nl *nl)
{
	if (setns(ns_fd, CLONE_NEWNET) < 0)
		return -errno;
	int rc = rp_nl_open(nl);
	setns_home(rp);
	return rc;
}

/* Creates a namespace with lo up and a veth (eth0 inside, the host end on the bridge, both up).
 * On success *ns_fd and veth are set. */
static int net_create(struct rp *rp, int *ns_fd, char veth[IFNAMSIZ], struct kd_error **err)
{
	if (unshare(CLONE_NEWNET) < 0)
		return rp_err(rp, err, errno, "unshare(CLONE_NEWNET): %s", strerror(errno));
	int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	int e = errno;
	struct rp_nl nl = {.fd = -1};
	int rc = fd >= 0 ? rp_nl_open(&nl) : -e;
	setns_home(rp);
	if (fd < 0)
		return rp_err(rp, err, e, "open new netns: %s", strerror(e));
	if (rc < 0) {
		close(fd);
		return rp_err(rp, err, -rc, "netlink socket in new netns: %s", strerror(-rc));
	}
	int br = 0;
	rc = rp_nl_link_index(&rp->br_nl, rp->cfg->bridge, &br);
	if (rc < 0) {
		rp_nl_close(&nl);
		close(fd);
		return rp_err(rp, err, -rc, "bridge %s in %s: %s", rp->cfg->bridge,
		              *rp->cfg->bridge_netns ? rp->cfg->bridge_netns : "own netns",
		              strerror(-rc));
	}
	for (int attempt = 0; attempt < 8; attempt++) {
		uint32_t r = 0;
		if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
			r = (uint32_t)getpid() * 2654435761u + rp->veth_seq;
		r ^= ++rp->veth_seq;
		snprintf(veth, IFNAMSIZ, "%.7s%08x", rp->cfg->veth_prefix, r);
		rc = rp_nl_veth_add(&rp->br_nl, veth, br, "eth0", fd);
		if (rc != -EEXIST)
			break;
	}
	if (rc < 0) {
		rp_nl_close(&nl);
		close(fd);
		return rp_err(rp, err, -rc, "create veth %s on bridge %s: %s", veth,
		              rp->cfg->bridge, strerror(-rc));
	}
	/* inside: lo up (eth0 comes up with its address and MAC in net_configure) */
	const char *what = "lo";
	int idx = 0;
	rc = rp_nl_link_index(&nl, "lo", &idx);
	if (rc == 0)
		rc = rp_nl_link_up(&nl, idx);
	rp_nl_close(&nl);
	if (rc < 0) {
		rp_nl_link_del(&rp->br_nl, veth);
		close(fd);
		return rp_err(rp, err, -rc, "set %s up in new netns: %s", what, strerror(-rc));
	}
	*ns_fd = fd;
	return 0;
}

/* Adds the pod address and routes to eth0 of the namespace ns_fd. */
static int net_configure(struct rp *rp, struct sandbox *sb, struct kd_error **err)
{
	struct rp_nl nl = {.fd = -1};
	int rc = nl_in(rp, sb->ns_fd, &nl);
	if (rc < 0)
		return rp_err(rp, err, -rc, "netlink socket in sandbox netns: %s", strerror(-rc));
	int eth0 = 0;
	const char *what = "find eth0";
	rc = rp_nl_link_index(&nl, "eth0", &eth0);
	if (rc == 0) {
		/* MAC from the IP (0a:58:a.b.c.d, as the CNI bridge plugin did): a reused pod IP
		 * keeps its MAC, so neighbours' ARP caches of an earlier pod stay right */
		const uint8_t *ip = (const uint8_t *)&sb->ip_be;
		const uint8_t mac[6] = {0x0a, 0x58, ip[0], ip[1], ip[2], ip[3]};
		what = "set MAC and up";
		rc = rp_nl_link_mac_up(&nl, eth0, mac);
	}
	if (rc == 0) {
		what = "add address";
		rc = rp_nl_addr_add(&nl, eth0, sb->ip_be, sb->prefix);
	}
	for (size_t i = 0; rc == 0 && i < rp->n_routes; i++) {
		what = "add route";
		rc = rp_nl_route_add(&nl, eth0, rp->routes[i].dst, rp->routes[i].prefix, 0);
		if (rc == -EEXIST) /* the address's own prefix route */
			rc = 0;
	}
	if (rc == 0 && rp->gateway_be) {
		what = "add default route";
		rc = rp_nl_route_add(&nl, eth0, 0, 0, rp->gateway_be);
	}
	rp_nl_close(&nl);
	if (rc < 0)
		return rp_err(rp, err, -rc, "%s (%s/%u on eth0): %s", what, sb->ip, sb->prefix,
		              strerror(-rc));
	return 0;
}

/* Deletes the veth (both ends) and closes the namespace fd (if >= 0). */
static void net_destroy(struct rp *rp, int ns_fd, const char *veth)
{
	if (veth && *veth) {
		int rc = rp_nl_link_del(&rp->br_nl, veth);
		if (rc < 0 && rc != -ENODEV)
			rp->host->log(KD_LOG_WARN, "runtime-process: delete veth %s: %s", veth,
			              strerror(-rc));
	}
	if (ns_fd >= 0)
		close(ns_fd);
}

static void on_pool_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	struct rp *rp = arg;
	if (rp->n_pool >= rp->cfg->pool_size)
		return;
	struct pooled_ns *p = &rp->pool_ns[rp->n_pool];
	struct kd_error *err = NULL;
	if (net_create(rp, &p->ns_fd, p->veth, &err) < 0) {
		rp->host->log(KD_LOG_WARN, "runtime-process: pool: %s; retrying in 1s",
		              kd_error_msg(err));
		kd_error_free(err);
		rp->host->timer_start(t, 1000);
		return;
	}
	rp->n_pool++;
	if (rp->n_pool < rp->cfg->pool_size)
		rp->host->timer_start(t, 0);
}

/* --- cgroups ---------------------------------------------------------------------------------- */
static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, text, strlen(text));
	int e = n < 0 ? errno : 0;
	close(fd);
	return n < 0 ? -e : 0;
}

static void cgroup_init(struct rp *rp)
{
	const char *root = rp->cfg->cgroup_root;
	if (!root || !*root) {
		rp->host->log(KD_LOG_INFO, "runtime-process: cgroup-root empty: sandboxes are not "
		                           "cgroup-limited");
		return;
	}
	kd_autofree char *parent = kd_xstrdup(root);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = '\0';
	struct statfs sf;
	if (statfs(parent, &sf) < 0 || (unsigned long)sf.f_type != CGROUP2_SUPER_MAGIC ||
	    access(parent, W_OK) < 0) {
		rp->host->log(KD_LOG_INFO,
		              "runtime-process: no writable cgroup v2 at %s: sandboxes are not "
		              "cgroup-limited",
		              parent);
		return;
	}
	if (mkdir(root, 0755) < 0 && errno != EEXIST) {
		rp->host->log(KD_LOG_INFO,
		              "runtime-process: mkdir %s: %s: sandboxes are not cgroup-limited",
		              root, strerror(errno));
		return;
	}
	kd_autofree char *pctl = kd_xasprintf("%s/cgroup.subtree_control", parent);
	kd_autofree char *rctl = kd_xasprintf("%s/cgroup.subtree_control", root);
	write_file(pctl, "+cpu +memory +pids");
	write_file(rctl, "+cpu +memory +pids");
	rp->cgroups = true;
	rp->host->log(KD_LOG_INFO, "runtime-process: sandbox cgroups under %s", root);
}

/* Creates the sandbox's cgroup if it has limits and cgroups are usable; never fatal. */
static void cgroup_create(struct rp *rp, struct sandbox *sb)
{
	if (!rp->cgroups || (sb->cpu_milli <= 0 && sb->mem_bytes <= 0))
		return;
	char *path = kd_xasprintf("%s/%s", rp->cfg->cgroup_root, sb->veth);
	if (mkdir(path, 0755) < 0) {
		rp->host->log(KD_LOG_WARN, "runtime-process: %s: mkdir %s: %s", sb->key, path,
		              strerror(errno));
		free(path);
		return;
	}
	char buf[64];
	kd_autofree char *f = NULL;
	if (sb->cpu_milli > 0) {
		f = kd_xasprintf("%s/cpu.max", path);
		snprintf(buf, sizeof(buf), "%lld 100000", (long long)sb->cpu_milli * 100);
		if (write_file(f, buf) < 0)
			rp->host->log(KD_LOG_WARN, "runtime-process: %s: write %s: %s", sb->key, f,
			              strerror(errno));
		free(f);
		f = NULL;
	}
	if (sb->mem_bytes > 0) {
		f = kd_xasprintf("%s/memory.max", path);
		snprintf(buf, sizeof(buf), "%lld", (long long)sb->mem_bytes);
		if (write_file(f, buf) < 0)
			rp->host->log(KD_LOG_WARN, "runtime-process: %s: write %s: %s", sb->key, f,
			              strerror(errno));
		free(f);
		f = NULL;
	}
	f = kd_xasprintf("%s/cgroup.procs", path);
	sb->cg_procs_fd = open(f, O_WRONLY | O_CLOEXEC);
	sb->cg_path = path;
}

static void cgroup_destroy(struct rp *rp, struct sandbox *sb)
{
	if (sb->cg_procs_fd >= 0)
		close(sb->cg_procs_fd);
	sb->cg_procs_fd = -1;
	if (sb->cg_path && rmdir(sb->cg_path) < 0)
		rp->host->log(KD_LOG_WARN, "runtime-process: rmdir %s: %s", sb->cg_path,
		              strerror(errno));
	free(sb->cg_path);
	sb->cg_path = NULL;
}

/* Kubernetes quantities: cpu ("500m", "2", "0.5") in millicores, memory ("128Mi", "1G", "1e6"). */
static int64_t quantity(const char *s, bool cpu)
{
	if (!s || !*s)
		return 0;
	char *end;
	double v = strtod(s, &end);
	static const struct {
		const char *suf;
		double mul;
	} sufs[] = {
	    {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
	    {"k", 1e3},     {"M", 1e6},        {"G", 1e9},           {"T", 1e12},
	    {"m", 1e-3},    {"", 1.0}};
	for (size_t i = 0; i < KD_ARRAY_SIZE(sufs); i++) {
		if (strcmp(end, sufs[i].suf) == 0) {
			v *= sufs[i].mul;
			return (int64_t)(cpu ? v * 1000.0 + 0.5 : v);
		}
	}
	return 0;
}

/* --- image mapping ---------------------------------------------------------------------------- */
static const char *image_lookup(const struct rp *rp, const char *image)
{
	char cand[3][512];
	snprintf(cand[0], sizeof(cand[0]), "%s", image);
	snprintf(cand[1], sizeof(cand[1]), "%s", image);
	char *at = strchr(cand[1], '@');
	if (at)
		*at = '\0';
	snprintf(cand[2], sizeof(cand[2]), "%s", cand[1]);
	char *colon = strrchr(cand[2], ':');
	char *slash = strrchr(cand[2], '/');
	if (colon && (!slash || colon > slash))
		*colon = '\0';
	for (int c = 0; c < 3; c++)
		for (size_t i = 0; i < rp->n_images; i++)
			if (strcmp(rp->images[i].image, cand[c]) == 0)
				return rp->images[i].path;
	return NULL;
}

/* --- env -------------------------------------------------------------------------------------- */
struct envb {
	char **v;
	size_t n;
};

static void env_set(struct envb *e, const char *name, const char *value, bool overwrite)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < e->n; i++) {
		if (strncmp(e->v[i], name, nl) == 0 && e->v[i][nl] == '=') {
			if (overwrite) {
				free(e->v[i]);
				e->v[i] = kd_xasprintf("%s=%s", name, value);
			}
			return;
		}
	}
	e->v = kd_xrealloc(e->v, (e->n + 2) * sizeof(*e->v));
	e->v[e->n++] = kd_xasprintf("%s=%s", name, value);
	e->v[e->n] = NULL;
}

/* Value of a downward-API fieldPath for this pod, or NULL if unsupported. Borrowed/static. */
static const char *field_ref(const struct rp *rp, const struct sandbox *sb, struct json_object *pod,
                             const char *path, char *buf, size_t buf_size)
{
	if (strcmp(path, "metadata.name") == 0)
		return sb->name;
	if (strcmp(path, "metadata.namespace") == 0)
		return sb->ns;
	if (strcmp(path, "metadata.uid") == 0)
		return sb->uid ? sb->uid : kd_json_get_string(pod, "metadata.uid");
	if (strcmp(path, "status.podIP") == 0 || strcmp(path, "status.podIPs") == 0)
		return sb->ip;
	if (strcmp(path, "status.hostIP") == 0 || strcmp(path, "status.hostIPs") == 0)
		return rp->cfg->host_ip;
	if (strcmp(path, "spec.nodeName") == 0)
		return kd_json_get_string(pod, "spec.nodeName");
	if (strcmp(path, "spec.serviceAccountName") == 0)
		return kd_json_get_string(pod, "spec.serviceAccountName");
	const char *m = NULL;
	const char *obj = NULL;
	if (strncmp(path, "metadata.labels['", 17) == 0) {
		m = path + 17;
		obj = "labels";
	} else if (strncmp(path, "metadata.annotations['", 22) == 0) {
		m = path + 22;
		obj = "annotations";
	}
	if (m) {
		const char *q = strchr(m, '\'');
		if (!q)
			return NULL;
		snprintf(buf, buf_size, "%.*s", (int)(q - m), m);
		struct json_object *meta = kd_json_get_object(pod, "metadata");
		struct json_object *o = meta ? kd_json_get_object(meta, obj) : NULL;
		struct json_object *v = NULL;
		if (o && json_object_object_get_ex(o, buf, &v))
			return json_object_get_string(v);
		return "";
	}
	return NULL;
}

static struct json_object *pod_container(struct json_object *pod, const char *name)
{
	struct json_object *ctrs = pod ? kd_json_get_array(pod, "spec.containers") : NULL;
	size_t n = ctrs ? json_object_array_length(ctrs) : 0;
	for (size_t i = 0; name && i < n; i++) {
		struct json_object *c = json_object_array_get_idx(ctrs, i);
		const char *cn = kd_json_get_string(c, "name");
		if (cn && strcmp(cn, name) == 0)
			return c;
	}
	return NULL;
}

static char **build_env(const struct rp *rp, const struct sandbox *sb,
                        const struct kd_container_spec *cs, struct json_object *pc,
                        struct json_object *pod)
{
	struct envb e = {0};
	e.v = kd_xcalloc(1, sizeof(*e.v));
	struct json_object *penv = pc ? kd_json_get_array(pc, "env") : NULL;
	for (size_t i = 0; i < cs->n_env; i++) {
		const char *name = cs->env[i].name;
		const char *value = cs->env[i].value ? cs->env[i].value : "";
		char buf[256];
		size_t pn = penv ? json_object_array_length(penv) : 0;
		for (size_t j = 0; j < pn; j++) {
			struct json_object *pe = json_object_array_get_idx(penv, j);
			const char *n = kd_json_get_string(pe, "name");
			const char *fp = kd_json_get_string(pe, "valueFrom.fieldRef.fieldPath");
			if (n && fp && strcmp(n, name) == 0) {
				const char *v = field_ref(rp, sb, pod, fp, buf, sizeof(buf));
				if (v)
					value = v;
			}
		}
		if (!pod && !*value) {
			if (strcmp(name, "SERVING_POD") == 0 || strcmp(name, "POD_NAME") == 0)
				value = sb->name;
			else if (strcmp(name, "SERVING_POD_IP") == 0 || strcmp(name, "POD_IP") == 0)
				value = sb->ip;
		}
		env_set(&e, name, value, true);
	}
	env_set(&e, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", false);
	env_set(&e, "HOSTNAME", sb->name, false);
	if (cs->n_ports) {
		char port[16];
		snprintf(port, sizeof(port), "%u", cs->ports[0].container_port);
		env_set(&e, "PORT", port, false);
	}
	return e.v;
}

static void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static char **strv_dup(const char *const *v, size_t n)
{
	char **out = kd_xcalloc(n + 1, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		out[i] = kd_xstrdup(v[i]);
	return out;
}

/* --- processes -------------------------------------------------------------------------------- */
/* Forks a child that joins the sandbox (netns, cgroup) and execs path (or argv[0] through PATH
 * when path is NULL). Only async-signal-safe calls in the child. */
static int spawn(struct rp *rp, struct sandbox *sb, const char *path, char *const argv[],
                 char *const envp[], const char *log_path, pid_t *pid_out, int *pidfd_out)
{
	int out = log_path ? open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : -1;
	if (out < 0)
		out = open("/dev/null", O_WRONLY | O_CLOEXEC);
	int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (out < 0 || in < 0) {
		int e = errno;
		if (out >= 0)
			close(out);
		if (in >= 0)
			close(in);
		return -e;
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(out);
		close(in);
		return -e;
	}
	if (pid == 0) {
		if (setns(sb->ns_fd, CLONE_NEWNET) < 0)
			_exit(126);
		if (sb->cg_procs_fd >= 0 && write(sb->cg_procs_fd, "0", 1) < 0)
			_exit(126);
		setsid();
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(126);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		struct sigaction dfl = {.sa_handler = SIG_DFL};
		for (int s = 1; s < NSIG; s++)
			sigaction(s, &dfl, NULL);
		if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
			_exit(126);
		syscall(SYS_close_range, 3u, ~0u, 0u);
		if (path)
			execve(path, argv, envp);
		else
			execvpe(argv[0], argv, envp);
		_exit(127);
	}
	close(out);
	close(in);
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0 && errno == ENOSYS) {
		/* kernel < 5.3 or valgrind: the caller polls waitpid(WNOHANG) on a timer */
		*pid_out = pid;
		*pidfd_out = -1;
		return 0;
	}
	if (pidfd < 0) {
		int e = errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0); /* a child just killed: immediate */
		return -e;
	}
	fcntl(pidfd, F_SETFD, FD_CLOEXEC);
	(void)rp;
	*pid_out = pid;
	*pidfd_out = pidfd;
	return 0;
}

/* Reaps a child whose pidfd is readable: exit code (128+signal if killed). */
static int reap(int pidfd, pid_t pid)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG) < 0) {
		int st = 0;
		if (waitpid(pid, &st, WNOHANG) <= 0)
			return -1;
		return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	}
	if (si.si_code == CLD_EXITED)
		return si.si_status;
	return 128 + si.si_status;
}

static void emit(struct sandbox *sb, enum kd_runtime_event_type t, const char *reason,
                 const char *msg, int code)
{
	if (!sb->cb)
		return;
	struct kd_runtime_event ev = {
	    .type = t,
	    .key = sb->key,
	    .uid = sb->uid,
	    .pod_ip = sb->ip[0] ? sb->ip : NULL,
	    .reason = reason,
	    .message = msg,
	    .exit_code = code,
	    .at_ms = now_ms(sb->rp),
	};
	sb->cb(&ev, sb->cb_arg);
}

static void ctr_start(struct ctr *c);
static void probe_schedule(struct ctr *c, uint64_t after_ms);
static void probe_cancel(struct ctr *c);
static void sandbox_end(struct sandbox *sb, enum kd_runtime_event_type t, const char *reason,
                        const char *msg, int code, uint32_t grace_ms);
static void check_ready(struct sandbox *sb);
static void maybe_finalize(struct sandbox *sb);

static void on_restart_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop, (void)t;
	struct ctr *c = arg;
	if (c->sb->st != SB_RUNNING)
		return;
	ctr_start(c);
}

static int wait_code(int st)
{
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void ctr_exited(struct ctr *c, int code);

static void on_ctr_exit(struct kd_loop *loop, int fd, unsigned events, void *arg)
{
	(void)events;
	struct ctr *c = arg;
	int code = reap(fd, c->pid);
	c->sb->rp->host->del_fd(loop, fd);
	close(fd);
	c->pidfd = -1;
	ctr_exited(c, code);
}

static void on_ctr_poll(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	struct ctr *c = arg;
	int st = 0;
	pid_t r = c->pid > 0 ? waitpid(c->pid, &st, WNOHANG) : -1;
	if (r == 0) {
		c->sb->rp->host->timer_start(t, RP_POLL_MS);
		return;
	}
	ctr_exited(c, r > 0 ? wait_code(st) : -1);
}

static void ctr_exited(struct ctr *c, int code)
{
	struct sandbox *sb = c->sb;
	struct rp *rp = sb->rp;
	c->pid = 0;
	c->running = false;
	c->ready = false;
	c->succ = c->fail = 0;
	c->last_exit = code;
	probe_cancel(c);
	if (sb->st == SB_ENDING) {
		maybe_finalize(sb);
		return;
	}
	char msg[256];
	snprintf(msg, sizeof(msg), "container %s exited with code %d", c->name, code);
	rp->host->log(KD_LOG_INFO, "runtime-process: %s: %s", sb->key, msg);
	if (sb->restart_never) {
		sandbox_end(sb, code == 0 ? KD_RUNTIME_EXITED : KD_RUNTIME_FAILED,
		            code == 0 ? "Completed" : "Error", msg, code, RP_FAIL_GRACE_MS);
		return;
	}
	if (sb->phase == KD_SANDBOX_READY) {
		sandbox_end(sb, KD_RUNTIME_FAILED, code == 0 ? "Completed" : "Error", msg, code,
		            RP_FAIL_GRACE_MS);
		return;
	}
	/* CrashLoopBackOff: restart in place after base * 2^restarts, capped */
	uint64_t delay = rp->cfg->restart_backoff_ms;
	for (uint32_t i = 0; i < c->restarts && delay < rp->cfg->restart_backoff_max_ms; i++)
		delay *= 2;
	if (delay > rp->cfg->restart_backoff_max_ms)
		delay = rp->cfg->restart_backoff_max_ms;
	c->restarts++;
	snprintf(c->reason, sizeof(c->reason), "CrashLoopBackOff");
	kd_autofree char *d = kd_config_format_duration(delay);
	snprintf(c->message, sizeof(c->message),
	         "back-off %s restarting failed container=%s pod=%s: exit code %d", d, c->name,
	         sb->name, code);
	rp->host->log(KD_LOG_WARN, "runtime-process: %s: %s (restart %u)", sb->key, c->message,
	              c->restarts);
	if (!c->restart_timer)
		c->restart_timer = rp->host->timer_new(rp->host->loop, on_restart_timer, c);
	rp->host->timer_start(c->restart_timer, delay);
}

static void ctr_start(struct ctr *c)
{
	struct sandbox *sb = c->sb;
	struct rp *rp = sb->rp;
	int rc = spawn(rp, sb, c->path, c->argv, c->envp, c->log_path, &c->pid, &c->pidfd);
	if (rc == 0 && c->pidfd >= 0) {
		rc = rp->host->add_fd(rp->host->loop, c->pidfd, KD_LOOP_IN, on_ctr_exit, c);
	} else if (rc == 0) {
		if (!c->poll)
			c->poll = rp->host->timer_new(rp->host->loop, on_ctr_poll, c);
		rp->host->timer_start(c->poll, RP_POLL_MS);
	}
	if (rc < 0) {
		char msg[256];
		snprintf(msg, sizeof(msg), "start container %s (%s): %s", c->name, c->path,
		         strerror(-rc));
		sandbox_end(sb, KD_RUNTIME_FAILED, "RunContainerError", msg, -1, 0);
		return;
	}
	c->running = true;
	c->reason[0] = '\0';
	if (c->probe.type == KD_PROBE_NONE) {
		c->ready = true;
		c->ever_ready = true;
		c->message[0] = '\0';
	} else {
		probe_schedule(c, c->probe.initial_delay_ms);
	}
}

/* --- probes ----------------------------------------------------------------------------------- */
static uint32_t probe_period(const struct ctr *c)
{
	uint32_t p = c->probe.period_ms ? c->probe.period_ms : RP_DEFAULT_PERIOD;
	uint64_t fast = c->sb->rp->cfg->startup_probe_period_ms;
	if (!c->ever_ready && fast && fast < p)
		p = (uint32_t)fast;
	return p;
}

static void probe_cancel(struct ctr *c)
{
	struct rp *rp = c->sb->rp;
	if (c->probe_timer)
		rp->host->timer_stop(c->probe_timer);
	if (c->probe_timeout)
		rp->host->timer_stop(c->probe_timeout);
	if (c->probe_fd >= 0) {
		rp->host->del_fd(rp->host->loop, c->probe_fd);
		close(c->probe_fd);
		c->probe_fd = -1;
	}
	if (c->probe_poll)
		rp->host->timer_stop(c->probe_poll);
	if (c->probe_pidfd >= 0) {
		rp->host->del_fd(rp->host->loop, c->probe_pidfd);
		kill(c->probe_pid, SIGKILL);
		waitid((idtype_t)P_PIDFD, (id_t)c->probe_pidfd, &(siginfo_t){0}, WEXITED);
		close(c->probe_pidfd);
		c->probe_pidfd = -1;
		c->probe_pid = 0;
	} else if (c->probe_pid > 0) {
		kill(c->probe_pid, SIGKILL);
		waitpid(c->probe_pid, NULL, 0); /* just killed: immediate */
		c->probe_pid = 0;
	}
}

/* One probe finished: thresholds, next probe, then (last) the sandbox readiness. */
static void probe_result(struct ctr *c, bool ok, const char *why)
{
	struct sandbox *sb = c->sb;
	struct rp *rp = sb->rp;
	probe_cancel(c);
	uint32_t sth = c->probe.success_threshold ? c->probe.success_threshold : 1;
	uint32_t fth = c->probe.failure_threshold ? c->probe.failure_threshold : 3;
	if (ok) {
		c->fail = 0;
		c->succ++;
		if (!c->ready && c->succ >= sth) {
			c->ready = true;
			c->ever_ready = true;
			c->message[0] = '\0';
		}
	} else {
		c->succ = 0;
		c->fail++;
		snprintf(c->message, sizeof(c->message), "Readiness probe failed: %s", why);
		if (c->ready && c->fail >= fth) {
			c->ready = false;
			rp->host->log(KD_LOG_WARN,
			              "runtime-process: %s: container %s not ready any more (%s); "
			              "the sandbox stays reported ready",
			              sb->key, c->name, c->message);
		}
	}
	probe_schedule(c, probe_period(c));
	check_ready(sb);
}

static void on_probe_timeout(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop, (void)t;
	struct ctr *c = arg;
	char why[96];
	snprintf(why, sizeof(why), "timeout after %u ms",
	         c->probe.timeout_ms ? c->probe.timeout_ms : RP_DEFAULT_TIMEOUT);
	probe_result(c, false, why);
}

static void on_probe_io(struct kd_loop *loop, int fd, unsigned events, void *arg)
{
	struct ctr *c = arg;
	char why[160];
	if (!c->probe_sent) {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr || (events & KD_LOOP_ERR)) {
			snprintf(why, sizeof(why), "dial tcp %s:%u: connect: %s", c->sb->ip,
			         c->probe.port, strerror(soerr ? soerr : ECONNREFUSED));
			probe_result(c, false, why);
			return;
		}
		if (c->probe.type == KD_PROBE_TCP) {
			probe_result(c, true, NULL);
			return;
		}
		char req[1024];
		int n = snprintf(req, sizeof(req),
		                 "GET %s HTTP/1.1\r\nHost: %s:%u\r\nUser-Agent: kube-probe/1.35\r\n"
		                 "Accept: */*\r\n%sConnection: close\r\n\r\n",
		                 c->http_path && *c->http_path ? c->http_path : "/", c->sb->ip,
		                 c->probe.port, c->probe_headers ? c->probe_headers : "");
		if (n < 0 || (size_t)n >= sizeof(req) ||
		    send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
			probe_result(c, false, "could not send the request");
			return;
		}
		c->probe_sent = true;
		c->sb->rp->host->mod_fd(loop, fd, KD_LOOP_IN);
		return;
	}
	ssize_t n =
	    recv(fd, c->probe_buf + c->probe_len, sizeof(c->probe_buf) - 1 - c->probe_len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0)
		c->probe_len += (size_t)n;
	c->probe_buf[c->probe_len] = '\0';
	char *eol = strstr(c->probe_buf, "\r\n");
	if (!eol && n > 0 && c->probe_len < sizeof(c->probe_buf) - 1)
		return;
	int status = 0;
	if (sscanf(c->probe_buf, "HTTP/1.%*d %d", &status) != 1) {
		probe_result(c, false, "no HTTP status line in the response");
		return;
	}
	if (status >= 200 && status < 400) {
		probe_result(c, true, NULL);
		return;
	}
	snprintf(why, sizeof(why), "HTTP probe failed with statuscode: %d", status);
	probe_result(c, false, why);
}

static void exec_probe_done(struct ctr *c, int code)
{
	c->probe_pid = 0;
	char why[96];
	snprintf(why, sizeof(why), "command exited with code %d", code);
	probe_result(c, code == 0, why);
}

static void on_exec_probe_poll(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	struct ctr *c = arg;
	int st = 0;
	pid_t r = c->probe_pid > 0 ? waitpid(c->probe_pid, &st, WNOHANG) : -1;
	if (r == 0) {
		c->sb->rp->host->timer_start(t, RP_POLL_MS);
		return;
	}
	exec_probe_done(c, r > 0 ? wait_code(st) : -1);
}

static void on_exec_probe_exit(struct kd_loop *loop, int fd, unsigned events, void *arg)
{
	(void)events;
	struct ctr *c = arg;
	int code = reap(fd, c->probe_pid);
	c->sb->rp->host->del_fd(loop, fd);
	close(fd);
	c->probe_pidfd = -1;
	c->probe_pid = 0;
	char why[96];
	snprintf(why, sizeof(why), "command exited with code %d", code);
	probe_result(c, code == 0, why);
}

static void on_probe_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)t;
	struct ctr *c = arg;
	struct sandbox *sb = c->sb;
	struct rp *rp = sb->rp;
	if (!c->running || sb->st != SB_RUNNING)
		return;
	if (!c->probe_timeout)
		c->probe_timeout = rp->host->timer_new(loop, on_probe_timeout, c);
	rp->host->timer_start(c->probe_timeout,
	                      c->probe.timeout_ms ? c->probe.timeout_ms : RP_DEFAULT_TIMEOUT);
	if (c->probe.type == KD_PROBE_EXEC) {
		int rc = c->exec_argv && c->exec_argv[0]
		             ? spawn(rp, sb, NULL, c->exec_argv, c->envp, NULL, &c->probe_pid,
		                     &c->probe_pidfd)
		             : -EINVAL;
		if (rc == 0 && c->probe_pidfd >= 0 &&
		    rp->host->add_fd(loop, c->probe_pidfd, KD_LOOP_IN, on_exec_probe_exit, c) < 0)
			rc = -EIO;
		if (rc == 0 && c->probe_pidfd < 0) {
			if (!c->probe_poll)
				c->probe_poll = rp->host->timer_new(loop, on_exec_probe_poll, c);
			rp->host->timer_start(c->probe_poll, RP_POLL_MS);
		}
		if (rc < 0)
			probe_result(c, false, "could not run the exec probe");
		return;
	}
	/* HTTP and TCP: a socket made inside the sandbox's namespace, to the pod IP */
	int fd = -1, e = 0;
	if (setns(sb->ns_fd, CLONE_NEWNET) == 0) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		e = errno;
		setns_home(rp);
	} else {
		e = errno;
	}
	char why[128];
	if (fd < 0) {
		snprintf(why, sizeof(why), "socket in sandbox: %s", strerror(e));
		probe_result(c, false, why);
		return;
	}
	struct sockaddr_in sa = {
	    .sin_family = AF_INET, .sin_port = htons(c->probe.port), .sin_addr.s_addr = sb->ip_be};
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		snprintf(why, sizeof(why), "dial tcp %s:%u: connect: %s", sb->ip, c->probe.port,
		         strerror(errno));
		close(fd);
		probe_result(c, false, why);
		return;
	}
	c->probe_fd = fd;
	c->probe_sent = false;
	c->probe_len = 0;
	if (c->sb->rp->host->add_fd(loop, fd, KD_LOOP_OUT, on_probe_io, c) < 0)
		probe_result(c, false, "could not watch the probe socket");
}

static void probe_schedule(struct ctr *c, uint64_t after_ms)
{
	struct rp *rp = c->sb->rp;
	if (!c->probe_timer)
		c->probe_timer = rp->host->timer_new(rp->host->loop, on_probe_timer, c);
	rp->host->timer_start(c->probe_timer, after_ms);
}

/* --- sandbox lifecycle ------------------------------------------------------------------------ */
static void ctr_fini(struct rp *rp, struct ctr *c)
{
	probe_cancel(c);
	rp->host->timer_free(c->probe_timer);
	rp->host->timer_free(c->probe_timeout);
	rp->host->timer_free(c->restart_timer);
	rp->host->timer_free(c->probe_poll);
	rp->host->timer_free(c->poll);
	if (c->pidfd >= 0) {
		rp->host->del_fd(rp->host->loop, c->pidfd);
		kill(c->pid, SIGKILL);
		waitid((idtype_t)P_PIDFD, (id_t)c->pidfd, &(siginfo_t){0}, WEXITED);
		close(c->pidfd);
	} else if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0); /* just killed: immediate */
	}
	free(c->name);
	free(c->image);
	free(c->path);
	free(c->log_path);
	free(c->http_path);
	free(c->probe_headers);
	strv_free(c->argv);
	strv_free(c->envp);
	strv_free(c->exec_argv);
}

static void sandbox_free(struct sandbox *sb)
{
	struct rp *rp = sb->rp;
	for (size_t i = 0; i < sb->n; i++)
		ctr_fini(rp, &sb->ctrs[i]);
	free(sb->ctrs);
	net_destroy(rp, sb->ns_fd, sb->veth);
	sb->ns_fd = -1;
	cgroup_destroy(rp, sb);
	if (sb->pool)
		kd_ipam_release(sb->pool, ntohl(sb->ip_be));
	if (sb->waiting_on)
		sb->waiting_on->successor = NULL;
	if (sb->successor)
		sb->successor->waiting_on = NULL;
	rp->host->timer_free(sb->timer);
	free(sb->key);
	free(sb->uid);
	free(sb->ns);
	free(sb->name);
	free(sb->fail_reason);
	free(sb->fail_msg);
	free(sb);
}

static void check_ready(struct sandbox *sb)
{
	if (sb->st != SB_RUNNING || sb->phase != KD_SANDBOX_STARTED)
		return;
	for (size_t i = 0; i < sb->n; i++)
		if (!sb->ctrs[i].running || !sb->ctrs[i].ready)
			return;
	sb->phase = KD_SANDBOX_READY;
	sb->ready_ms = now_ms(sb->rp);
	emit(sb, KD_RUNTIME_READY, NULL, NULL, 0); /* last: the callback may stop sb */
}

/* All containers gone (or never started): tear down and deliver the end event. */
static void finalize(struct sandbox *sb)
{
	struct rp *rp = sb->rp;
	ending_unlink(rp, sb);
	kd_runtime_event_cb cb = sb->cb;
	sb->cb = NULL;
	struct sandbox *succ = sb->successor;
	if (succ) {
		succ->waiting_on = NULL;
		sb->successor = NULL;
		rp->host->timer_start(succ->timer, 0);
	}
	/* copy what the event needs, free everything (the address is released), then report */
	char reason[64], msg[256], ip[KD_IP_STRLEN];
	memcpy(reason, sb->end_reason, sizeof(reason));
	memcpy(msg, sb->end_msg, sizeof(msg));
	memcpy(ip, sb->ip, sizeof(ip));
	char *key = sb->key, *uid = sb->uid;
	void *cb_arg = sb->cb_arg;
	struct kd_runtime_event ev = {
	    .type = sb->end_type,
	    .key = key,
	    .uid = uid,
	    .pod_ip = ip[0] ? ip : NULL,
	    .reason = reason,
	    .message = msg[0] ? msg : NULL,
	    .exit_code = sb->end_code,
	    .at_ms = now_ms(rp),
	};
	sb->key = sb->uid = NULL;
	sandbox_free(sb);
	if (cb)
		cb(&ev, cb_arg);
	free(key);
	free(uid);
}

static void on_end_timer(struct kd_loop *loop, struct kd_timer *t, void *arg);

static void maybe_finalize(struct sandbox *sb)
{
	for (size_t i = 0; i < sb->n; i++)
		if (sb->ctrs[i].running)
			return;
	/* not from inside a pidfd callback chain that may still touch sb: next iteration */
	sb->rp->host->timer_stop(sb->timer);
	sb->killed = true;
	sb->rp->host->timer_start(sb->timer, 0);
}

static void kill_all(struct sandbox *sb, int sig)
{
	for (size_t i = 0; i < sb->n; i++)
		if (sb->ctrs[i].running && sb->ctrs[i].pid > 0)
			kill(sb->ctrs[i].pid, sig);
}

static void on_end_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop, (void)t;
	struct sandbox *sb = arg;
	bool any = false;
	for (size_t i = 0; i < sb->n; i++)
		any = any || sb->ctrs[i].running;
	if (any && !sb->killed) { /* grace period over */
		sb->killed = true;
		kill_all(sb, SIGKILL);
		return; /* the pidfds report the exits */
	}
	if (!any)
		finalize(sb);
}

/* Ends a sandbox that is running or being set up: out of the table, SIGTERM, SIGKILL after
 * grace_ms, finalize once every process is reaped (never synchronously). */
static void sandbox_end(struct sandbox *sb, enum kd_runtime_event_type t, const char *reason,
                        const char *msg, int code, uint32_t grace_ms)
{
	struct rp *rp = sb->rp;
	if (sb->st == SB_ENDING)
		return;
	bool was_pending = sb->st == SB_PENDING;
	sb->st = SB_ENDING;
	sb->end_type = t;
	snprintf(sb->end_reason, sizeof(sb->end_reason), "%s", reason ? reason : "");
	snprintf(sb->end_msg, sizeof(sb->end_msg), "%s", msg ? msg : "");
	sb->end_code = code;
	table_remove(rp, sb);
	if (was_pending && sb->waiting_on) {
		/* never set up: no predecessor wait needed any more */
		sb->waiting_on->successor = NULL;
		sb->waiting_on = NULL;
	}
	for (size_t i = 0; i < sb->n; i++) {
		struct ctr *c = &sb->ctrs[i];
		probe_cancel(c);
		if (c->restart_timer)
			rp->host->timer_stop(c->restart_timer);
	}
	rp->host->timer_free(sb->timer);
	sb->timer = rp->host->timer_new(rp->host->loop, on_end_timer, sb);
	bool any = false;
	for (size_t i = 0; i < sb->n; i++)
		any = any || sb->ctrs[i].running;
	if (!any) {
		sb->killed = true;
		rp->host->timer_start(sb->timer, 0);
		return;
	}
	if (grace_ms == 0) {
		sb->killed = true;
		kill_all(sb, SIGKILL);
	} else {
		kill_all(sb, SIGTERM);
		rp->host->timer_start(sb->timer, grace_ms);
	}
}

static void on_ready_check_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop, (void)t;
	check_ready(arg);
}

/* Setup timer: network, cgroup, processes; then STARTED (or FAILED). */
static void on_setup_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop, (void)t;
	struct sandbox *sb = arg;
	struct rp *rp = sb->rp;
	if (sb->st != SB_PENDING || sb->waiting_on)
		return;
	if (sb->fail_reason) {
		sandbox_end(sb, KD_RUNTIME_FAILED, sb->fail_reason, sb->fail_msg, -1, 0);
		return;
	}
	struct kd_error *err = NULL;
	int rc = 0;
	if (rp->n_pool > 0) {
		struct pooled_ns *p = &rp->pool_ns[--rp->n_pool];
		sb->ns_fd = p->ns_fd;
		memcpy(sb->veth, p->veth, sizeof(sb->veth));
		rp->host->timer_start(rp->pool_timer, 0); /* refill */
	} else {
		rc = net_create(rp, &sb->ns_fd, sb->veth, &err);
	}
	if (rc == 0)
		rc = net_configure(rp, sb, &err);
	if (rc < 0) {
		rp->host->log(KD_LOG_WARN, "runtime-process: %s: %s", sb->key, kd_error_msg(err));
		sandbox_end(sb, KD_RUNTIME_FAILED, "CreatePodSandboxError", kd_error_msg(err), -1,
		            0);
		kd_error_free(err);
		return;
	}
	cgroup_create(rp, sb);
	sb->st = SB_RUNNING;
	for (size_t i = 0; i < sb->n && sb->st == SB_RUNNING; i++)
		ctr_start(&sb->ctrs[i]);
	if (sb->st != SB_RUNNING)
		return; /* a spawn failed: ending */
	sb->phase = KD_SANDBOX_STARTED;
	/* containers without probes are ready at once: READY follows STARTED on the next
	 * iteration (sandbox_end replaces this timer) */
	rp->host->timer_free(sb->timer);
	sb->timer = rp->host->timer_new(rp->host->loop, on_ready_check_timer, sb);
	rp->host->timer_start(sb->timer, 0);
	emit(sb, KD_RUNTIME_STARTED, NULL, NULL, 0);
}

/* --- ops -------------------------------------------------------------------------------------- */
static int build_sandbox(struct rp *rp, const struct kd_sandbox_spec *spec, struct sandbox *sb,
                         struct kd_error **err)
{
	struct json_object *pod = spec->pod;
	const char *rpol = pod ? kd_json_get_string(pod, "spec.restartPolicy") : NULL;
	sb->restart_never = rpol && strcmp(rpol, "Never") == 0;
	sb->ctrs = kd_xcalloc(spec->n_containers, sizeof(*sb->ctrs));
	sb->n = spec->n_containers;
	for (size_t i = 0; i < spec->n_containers; i++) {
		const struct kd_container_spec *cs = &spec->containers[i];
		struct ctr *c = &sb->ctrs[i];
		c->sb = sb;
		c->idx = i;
		c->pidfd = c->probe_fd = c->probe_pidfd = -1;
		c->last_exit = -1;
		c->name = kd_xstrdup(cs->name ? cs->name : "container");
		c->image = kd_xstrdup(cs->image ? cs->image : "");
		snprintf(c->reason, sizeof(c->reason), "ContainerCreating");
		const char *path = image_lookup(rp, c->image);
		if (!path || access(path, X_OK) < 0) {
			if (!sb->fail_reason) {
				sb->fail_reason = kd_xstrdup("ErrImagePull");
				sb->fail_msg =
				    path ? kd_xasprintf("image \"%s\" of container %s maps to %s, "
				                        "which is not executable: %s",
				                        c->image, c->name, path, strerror(errno))
				         : kd_xasprintf("image \"%s\" of container %s maps to no "
				                        "executable (runtime-process images table)",
				                        c->image, c->name);
			}
			snprintf(c->reason, sizeof(c->reason), "ErrImagePull");
			continue;
		}
		c->path = kd_xstrdup(path);
		size_t nc = cs->command ? cs->n_command : 0;
		c->argv = kd_xcalloc(KD_MAX(nc, 1) + cs->n_args + 1, sizeof(char *));
		size_t k = 0;
		c->argv[k++] = kd_xstrdup(nc ? cs->command[0] : path);
		for (size_t j = 1; j < nc; j++)
			c->argv[k++] = kd_xstrdup(cs->command[j]);
		for (size_t j = 0; j < cs->n_args; j++)
			c->argv[k++] = kd_xstrdup(cs->args[j]);
		struct json_object *pc = pod_container(pod, cs->name);
		c->envp = build_env(rp, sb, cs, pc, pod);
		if (rp->cfg->log_dir && *rp->cfg->log_dir)
			c->log_path = kd_xasprintf("%s/%s_%s_%s.log", rp->cfg->log_dir, sb->ns,
			                           sb->name, c->name);
		c->probe = cs->readiness;
		c->probe.http_path = NULL;
		c->probe.exec_command = NULL;
		if (cs->readiness.http_path)
			c->http_path = kd_xstrdup(cs->readiness.http_path);
		if (cs->readiness.type == KD_PROBE_EXEC)
			c->exec_argv =
			    strv_dup(cs->readiness.exec_command, cs->readiness.n_exec_command);
		if ((c->probe.type == KD_PROBE_HTTP || c->probe.type == KD_PROBE_TCP) &&
		    !c->probe.port)
			return rp_err(rp, err, EINVAL,
			              "container %s: readiness probe without a port", c->name);
		if (c->probe.type == KD_PROBE_HTTP) {
			struct json_object *hh =
			    pc ? kd_json_get_array(pc, "readinessProbe.httpGet.httpHeaders") : NULL;
			size_t nh = hh ? json_object_array_length(hh) : 0;
			char *h = kd_xstrdup("");
			for (size_t j = 0; j < nh; j++) {
				struct json_object *o = json_object_array_get_idx(hh, j);
				const char *hn = kd_json_get_string(o, "name");
				const char *hv = kd_json_get_string(o, "value");
				if (!hn || strpbrk(hn, "\r\n:") || (hv && strpbrk(hv, "\r\n")))
					continue;
				char *n2 = kd_xasprintf("%s%s: %s\r\n", h, hn, hv ? hv : "");
				free(h);
				h = n2;
			}
			if (!pod && strcmp(c->name, "queue-proxy") == 0) {
				free(h);
				h = kd_xstrdup("K-Network-Probe: queue\r\n");
			}
			c->probe_headers = h;
		}
		if (pc) {
			sb->cpu_milli +=
			    quantity(kd_json_get_string(pc, "resources.limits.cpu"), true);
			sb->mem_bytes +=
			    quantity(kd_json_get_string(pc, "resources.limits.memory"), false);
		}
	}
	return 0;
}

static int rp_start(void *state, const struct kd_sandbox_spec *spec, kd_runtime_event_cb cb,
                    void *cb_arg, struct kd_error **err)
{
	struct rp *rp = state;
	if (!spec || !spec->key || !*spec->key || !strchr(spec->key, '/'))
		return rp_err(rp, err, EINVAL,
		              "runtime-process: start: spec without an ns/name key");
	if (!spec->n_containers || spec->n_containers > RP_MAX_CONTAINERS)
		return rp_err(rp, err, EINVAL, "runtime-process: start %s: %zu containers (1..%d)",
		              spec->key, spec->n_containers, RP_MAX_CONTAINERS);
	struct sandbox *old = kd_strmap_get(&rp->table, spec->key);
	if (old) {
		if (old->uid && spec->uid && strcmp(old->uid, spec->uid) != 0)
			return rp_err(
			    rp, err, EBUSY,
			    "runtime-process: start %s: a sandbox with uid %s exists (asked "
			    "for uid %s)",
			    spec->key, old->uid, spec->uid);
		if (!old->uid && spec->uid)
			old->uid = kd_xstrdup(spec->uid);
		return 0;
	}
	const char *cidr = spec->pod_cidr && *spec->pod_cidr ? spec->pod_cidr : rp->cfg->pod_cidr;
	struct kd_error *e = NULL;
	struct kd_ipam_pool *pool = kd_ipam_pool_get(rp->ipam, cidr, &e);
	if (!pool) {
		rp_err(rp, err, EINVAL, "runtime-process: start %s: %s", spec->key,
		       kd_error_msg(e));
		kd_error_free(e);
		return -EINVAL;
	}
	uint32_t addr = 0;
	int rc = spec->pod_ip && *spec->pod_ip ? kd_ipam_reserve(pool, spec->pod_ip, &addr, &e)
	                                       : kd_ipam_alloc(pool, &addr, &e);
	if (rc < 0) {
		rp_err(rp, err, -rc, "runtime-process: start %s: %s", spec->key, kd_error_msg(e));
		kd_error_free(e);
		return rc;
	}
	struct sandbox *sb = kd_xcalloc(1, sizeof(*sb));
	sb->rp = rp;
	sb->ns_fd = -1;
	sb->cg_procs_fd = -1;
	sb->key = kd_xstrdup(spec->key);
	sb->uid = spec->uid ? kd_xstrdup(spec->uid) : NULL;
	const char *slash = strchr(spec->key, '/');
	sb->ns =
	    spec->ns ? kd_xstrdup(spec->ns) : kd_xstrndup(spec->key, (size_t)(slash - spec->key));
	sb->name = spec->name ? kd_xstrdup(spec->name) : kd_xstrdup(slash + 1);
	sb->pool = pool;
	sb->prefix = kd_ipam_pool_prefix(pool);
	kd_ipam_ip_text(addr, sb->ip);
	sb->ip_be = htonl(addr);
	sb->created_ms = now_ms(rp);
	sb->cb = cb;
	sb->cb_arg = cb_arg;
	if (build_sandbox(rp, spec, sb, err) < 0) {
		sb->cb = NULL;
		sandbox_free(sb);
		return -EINVAL;
	}
	sb->timer = rp->host->timer_new(rp->host->loop, on_setup_timer, sb);
	for (struct sandbox *d = rp->ending; d; d = d->dnext) {
		if (!d->successor && strcmp(d->key, sb->key) == 0) {
			d->successor = sb;
			sb->waiting_on = d;
			break;
		}
	}
	if (!sb->waiting_on)
		rp->host->timer_start(sb->timer, 0);
	sb->in_table = true;
	kd_strmap_put(&rp->table, sb->key, sb);
	return 0;
}

static int rp_stop(void *state, const char *key, uint32_t grace_ms, struct kd_error **err)
{
	struct rp *rp = state;
	if (!key)
		return rp_err(rp, err, EINVAL, "runtime-process: stop: no key");
	struct sandbox *sb = kd_strmap_get(&rp->table, key);
	if (!sb)
		return rp_err(rp, err, ENOENT, "runtime-process: stop %s: no such sandbox", key);
	sandbox_end(sb, KD_RUNTIME_EXITED, "Stopped", "sandbox stopped", 0, grace_ms);
	return 0;
}

static int rp_status(void *state, const char *key, struct kd_sandbox_status *out)
{
	struct rp *rp = state;
	if (!key)
		return -EINVAL;
	struct sandbox *sb = kd_strmap_get(&rp->table, key);
	if (!sb)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	out->phase = sb->phase;
	memcpy(out->pod_ip, sb->ip, sizeof(out->pod_ip));
	if (sb->uid)
		snprintf(out->uid, sizeof(out->uid), "%s", sb->uid);
	out->created_ms = sb->created_ms;
	out->ready_ms = sb->ready_ms;
	return 0;
}

static int rp_container_status(void *state, const char *key, size_t index,
                               struct kd_container_status *out)
{
	struct rp *rp = state;
	if (!key || !out || out->struct_size < sizeof(*out))
		return -EINVAL;
	struct sandbox *sb = kd_strmap_get(&rp->table, key);
	if (!sb)
		return -ENOENT;
	if (index >= sb->n)
		return -ERANGE;
	const struct ctr *c = &sb->ctrs[index];
	uint32_t size = out->struct_size;
	memset(out, 0, sizeof(*out));
	out->struct_size = size;
	snprintf(out->name, sizeof(out->name), "%s", c->name);
	out->running = c->running;
	out->ready = c->ready;
	out->restart_count = c->restarts;
	out->last_exit_code = c->last_exit;
	if (!c->running)
		snprintf(out->reason, sizeof(out->reason), "%s",
		         sb->fail_reason ? sb->fail_reason : c->reason);
	snprintf(out->message, sizeof(out->message), "%s",
	         sb->fail_msg && !c->path ? sb->fail_msg : c->message);
	out->pid = c->running ? c->pid : 0;
	return 0;
}

static const struct kd_runtime_ops rp_ops = {
    .struct_size = sizeof(struct kd_runtime_ops),
    .start = rp_start,
    .stop = rp_stop,
    .status = rp_status,
    .container_status = rp_container_status,
};

/* --- lifecycle -------------------------------------------------------------------------------- */
static void rp_fini(void *state)
{
	struct rp *rp = state;
	if (!rp)
		return;
	size_t pos = 0;
	for (struct sandbox *sb; (sb = kd_strmap_next(&rp->table, &pos));) {
		sb->waiting_on = sb->successor = NULL;
		sandbox_free(sb); /* the map is only finalised afterwards */
	}
	for (struct sandbox *sb = rp->ending, *next; sb; sb = next) {
		next = sb->dnext;
		sb->waiting_on = sb->successor = NULL;
		sandbox_free(sb);
	}
	for (size_t i = 0; i < rp->n_pool; i++)
		net_destroy(rp, rp->pool_ns[i].ns_fd, rp->pool_ns[i].veth);
	free(rp->pool_ns);
	rp->host->timer_free(rp->pool_timer);
	kd_ipam_free(rp->ipam);
	for (size_t i = 0; i < rp->n_images; i++) {
		free(rp->images[i].image);
		free(rp->images[i].path);
	}
	free(rp->images);
	rp_nl_close(&rp->br_nl);
	if (rp->home_fd >= 0)
		close(rp->home_fd);
	kd_strmap_fini(&rp->table);
	free(rp);
}

static void add_image(struct rp *rp, const char *image, const char *path)
{
	for (size_t i = 0; i < rp->n_images; i++) {
		if (strcmp(rp->images[i].image, image) == 0) {
			free(rp->images[i].path);
			rp->images[i].path = kd_xstrdup(path);
			return;
		}
	}
	rp->images = kd_xrealloc(rp->images, (rp->n_images + 1) * sizeof(*rp->images));
	rp->images[rp->n_images].image = kd_xstrdup(image);
	rp->images[rp->n_images].path = kd_xstrdup(path);
	rp->n_images++;
}

static int rp_init_inner(struct rp *rp, struct kd_error **err)
{
	const struct rp_config *cfg = rp->cfg;
	if (!KD_HAS_MEMBER(rp->host, struct kd_host, del_fd) || !rp->host->add_fd ||
	    !rp->host->mod_fd || !rp->host->del_fd)
		return rp_err(
		    rp, err, ENOTSUP,
		    "the host table has no fd watches (add_fd/mod_fd/del_fd): host too old "
		    "for runtime-process");
	uint32_t base;
	unsigned prefix;
	if (kd_ipam_parse_cidr(cfg->pod_cidr, 8, &base, &prefix) < 0)
		return rp_err(rp, err, EINVAL, "pod-cidr: \"%s\" is not an IPv4 CIDR (/8../30)",
		              cfg->pod_cidr);
	if (cfg->routes.n > KD_ARRAY_SIZE(rp->routes))
		return rp_err(rp, err, EINVAL, "routes: at most %zu entries",
		              KD_ARRAY_SIZE(rp->routes));
	for (size_t i = 0; i < cfg->routes.n; i++) {
		if (kd_ipam_parse_cidr(cfg->routes.items[i], 0, &base, &prefix) < 0)
			return rp_err(rp, err, EINVAL, "routes: \"%s\" is not an IPv4 CIDR",
			              cfg->routes.items[i]);
		rp->routes[rp->n_routes].dst = htonl(base);
		rp->routes[rp->n_routes].prefix = prefix;
		rp->n_routes++;
	}
	if (cfg->gateway && *cfg->gateway) {
		struct in_addr in;
		if (inet_pton(AF_INET, cfg->gateway, &in) != 1)
			return rp_err(rp, err, EINVAL, "gateway: \"%s\" is not an IPv4 address",
			              cfg->gateway);
		rp->gateway_be = in.s_addr;
	}
	if (!*cfg->veth_prefix || strlen(cfg->veth_prefix) > 7)
		return rp_err(rp, err, EINVAL, "veth-prefix: \"%s\" must have 1..7 characters",
		              cfg->veth_prefix);
	/* images: built-in queue-proxy first, the table overrides */
	add_image(rp, cfg->queue_image, cfg->queue_bin);
	struct json_object *tab = json_tokener_parse(cfg->images ? cfg->images : "{}");
	if (!tab || !json_object_is_type(tab, json_type_object)) {
		json_object_put(tab);
		return rp_err(rp, err, EINVAL, "images: not a JSON object of image -> path");
	}
	json_object_object_foreach(tab, k, v)
	{
		if (!json_object_is_type(v, json_type_string)) {
			json_object_put(tab);
			return rp_err(rp, err, EINVAL, "images: value of \"%s\" is not a string",
			              k);
		}
		add_image(rp, k, json_object_get_string(v));
	}
	json_object_put(tab);

	rp->home_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (rp->home_fd < 0)
		return rp_err(rp, err, errno, "open own netns: %s", strerror(errno));
	int rc;
	if (cfg->bridge_netns && *cfg->bridge_netns) {
		int bfd = open(cfg->bridge_netns, O_RDONLY | O_CLOEXEC);
		if (bfd < 0)
			return rp_err(rp, err, errno, "bridge-netns %s: %s", cfg->bridge_netns,
			              strerror(errno));
		rc = nl_in(rp, bfd, &rp->br_nl);
		close(bfd);
	} else {
		rc = rp_nl_open(&rp->br_nl);
	}
	if (rc < 0)
		return rp_err(rp, err, -rc, "netlink socket for bridge-netns %s: %s",
		              cfg->bridge_netns, strerror(-rc));
	int br = 0;
	rc = rp_nl_link_index(&rp->br_nl, cfg->bridge, &br);
	if (rc < 0)
		rp->host->log(KD_LOG_WARN,
		              "runtime-process: bridge %s not found in %s (%s); sandboxes fail "
		              "until it exists",
		              cfg->bridge, *cfg->bridge_netns ? cfg->bridge_netns : "own netns",
		              strerror(-rc));
	cgroup_init(rp);
	if (cfg->pool_size) {
		rp->pool_ns = kd_xcalloc(cfg->pool_size, sizeof(*rp->pool_ns));
		rp->pool_timer = rp->host->timer_new(rp->host->loop, on_pool_timer, rp);
		rp->host->timer_start(rp->pool_timer, 0);
	}
	rp->host->log(KD_LOG_INFO,
	              "runtime-process: bridge %s, pod CIDR %s, %zu images, pool %llu, backoff "
	              "%llu..%llu ms",
	              cfg->bridge, cfg->pod_cidr, rp->n_images, (unsigned long long)cfg->pool_size,
	              (unsigned long long)cfg->restart_backoff_ms,
	              (unsigned long long)cfg->restart_backoff_max_ms);
	return 0;
}

static int rp_init(const struct kd_host *host, const void *config, void **state,
                   struct kd_error **err)
{
	struct rp *rp = kd_xcalloc(1, sizeof(*rp));
	rp->host = host;
	rp->cfg = config;
	rp->home_fd = -1;
	rp->br_nl.fd = -1;
	rp->ipam = kd_ipam_new(&(struct kd_ipam_options){.random_start = rp->cfg->random_ip_start});
	int rc = rp_init_inner(rp, err);
	if (rc < 0) {
		rp_fini(rp);
		return rc;
	}
	*state = rp;
	return 0;
}

static const struct kd_plugin rp_plugin = {
    .abi_major = KD_PLUGIN_ABI_MAJOR,
    .struct_size = sizeof(struct kd_plugin),
    .name = "runtime-process",
    .build_sig = KD_PLUGIN_BUILD_SIG,
    .kind = KD_PLUGIN_RUNTIME,
    .description = "real sandboxes: a network namespace + veth per pod, containers as local "
                   "processes (Knative queue-proxy + user program)",
    .options = rp_options,
    .config_size = sizeof(struct rp_config),
    .init = rp_init,
    .fini = rp_fini,
    .ops = &rp_ops,
};

KD_PLUGIN_DEFINE(rp_plugin)
