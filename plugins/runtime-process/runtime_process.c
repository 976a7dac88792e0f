/* plugins/runtime-process: real pod sandboxes on this machine. Each sandbox is its own network
 * namespace with a veth pair (eth0 inside, with the pod IP; the host end enslaved to a bridge),
 * and the pod's containers run as processes inside it (for a Knative pod: Knative's real
 * queue-proxy and the user's program). Everything runs on the host's kd_loop: children are
 * watched through pidfds (or, without pidfd_open, a 10 ms waitpid(WNOHANG) timer), probes are
 * non-blocking sockets, backoffs and grace periods are loop timers; nothing blocks the loop except
 * short netlink requests to the kernel.
 *
 * This file: the plugin entry, its options, the kd_runtime ops and the lifecycle of sandboxes
 * and their containers. The parts (rp.h lists them): network (rp_net.c, rp_netlink.c), resource
 * limits and cgroups (rp_cgroup.c), image mapping (rp_image.c), argv and env (rp_env.c),
 * processes (rp_spawn.c), readiness probes (rp_probe.c); each file's head comment says what it
 * does.
 *
 * Addresses: pod IPs come from the sandbox spec's per-node pod CIDR (kd-node passes the node's
 * spec.podCIDR, e.g. 10.244.3.0/24), else `pod-cidr`. Through kd/ipam.h, as runtime-sim: the
 * network address, the first host (reserved for a per-node gateway, never assigned) and the
 * broadcast address are skipped; allocation is next-fit from a random start (`random-ip-start`,
 * so a restarted kd-node does not reuse the last run's addresses first: peers keep idle
 * keep-alive connections and ARP entries to them). The address gets the CIDR's prefix length on
 * eth0.
 *
 * Start: the spec is checked at once (image mapping: ErrImagePull; limits that are negative or
 * sum beyond int64: CreateContainerConfigError; both reported as FAILED from the setup timer,
 * with a message naming the image or the container, field and value); then, on the next loop
 * iteration, network, cgroup, processes; STARTED; READY once every container runs and passes.
 *
 * Failures, as a kubelet would report them:
 *  - A container that exits before the sandbox was ever READY is restarted in place after a
 *    CrashLoopBackOff delay (`restart-backoff` doubling to `restart-backoff-max`), its restart
 *    count and reason ("CrashLoopBackOff", message with exit code) in container_status().
 *  - After READY, the kd_runtime ABI has no "not ready any more" event: a container exit then
 *    fails the whole sandbox (the others get SIGTERM, 2 s grace, SIGKILL; FAILED reason Error,
 *    or Completed for exit code 0) and the host restarts the pod (kd-node: its own backoff).
 *  - restartPolicy Never (kd_sandbox_spec.restart_policy): any container exit ends the sandbox.
 *
 * Stop: SIGTERM to every container, SIGKILL after grace_ms, then the veth is deleted, the
 * namespace fd closed, the cgroup removed, the address released and EXITED (reason Stopped)
 * delivered. A start for the same key meanwhile waits for that EXITED (see kd/stage.h).
 * fini: SIGKILL and reap everything, delete every veth and pooled namespace; no events.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kd/common.h"
#include "kd/config.h"
#include "kd/ipam.h"
#include "kd/plugin.h"
#include "kd/stage.h"
#include "kd/strmap.h"
#include "rp.h"

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

int rp_err(const struct rp *rp, struct kd_error **err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = kd_xvasprintf(fmt, ap);
	va_end(ap);
	rp->host->error_set(err, errnum, 0, "%s", msg);
	free(msg);
	return -errnum;
}

uint64_t rp_now_ms(const struct rp *rp)
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

/* --- containers ------------------------------------------------------------------------------ */
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
	    .at_ms = rp_now_ms(sb->rp),
	};
	sb->cb(&ev, sb->cb_arg);
}

static void ctr_start(struct ctr *c);
static void sandbox_end(struct sandbox *sb, enum kd_runtime_event_type t, const char *reason,
                        const char *msg, int code, uint32_t grace_ms);
static void maybe_finalize(struct sandbox *sb);

static void on_restart_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop, (void)t;
	struct ctr *c = arg;
	if (c->sb->st != SB_RUNNING)
		return;
	ctr_start(c);
}

/* The container's process exited (rp_child: reported once, on the loop). */
static void ctr_exited(struct ctr *c, int code)
{
	struct sandbox *sb = c->sb;
	struct rp *rp = sb->rp;
	c->running = false;
	c->ready = false;
	c->succ = c->fail = 0;
	c->last_exit = code;
	rp_probe_cancel(c);
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
	int rc = rp_child_start(&c->proc, c, ctr_exited, c->path, c->argv, c->envp, c->log_path);
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
		rp_probe_schedule(c, c->probe.initial_delay_ms);
	}
}

/* --- sandbox lifecycle ------------------------------------------------------------------------ */
static void ctr_fini(struct rp *rp, struct ctr *c)
{
	rp_probe_fini(c);
	rp->host->timer_free(c->restart_timer);
	rp_child_fini(rp, &c->proc);
	free(c->name);
	free(c->image);
	free(c->path);
	free(c->log_path);
	rp_strv_free(c->argv);
	rp_strv_free(c->envp);
}

static void sandbox_free(struct sandbox *sb)
{
	struct rp *rp = sb->rp;
	for (size_t i = 0; i < sb->n; i++)
		ctr_fini(rp, &sb->ctrs[i]);
	free(sb->ctrs);
	rp_net_destroy(rp, sb->ns_fd, sb->veth);
	sb->ns_fd = -1;
	rp_cgroup_destroy(rp, sb);
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

void rp_check_ready(struct sandbox *sb)
{
	if (sb->st != SB_RUNNING || sb->phase != KD_SANDBOX_STARTED)
		return;
	for (size_t i = 0; i < sb->n; i++)
		if (!sb->ctrs[i].running || !sb->ctrs[i].ready)
			return;
	sb->phase = KD_SANDBOX_READY;
	sb->ready_ms = rp_now_ms(sb->rp);
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
	    .at_ms = rp_now_ms(rp),
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
		if (sb->ctrs[i].running && sb->ctrs[i].proc.pid > 0)
			kill(sb->ctrs[i].proc.pid, sig);
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
		rp_probe_cancel(c);
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
	rp_check_ready(arg);
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
	if (rp_net_setup(rp, sb, &err) < 0) {
		rp->host->log(KD_LOG_WARN, "runtime-process: %s: %s", sb->key, kd_error_msg(err));
		sandbox_end(sb, KD_RUNTIME_FAILED, "CreatePodSandboxError", kd_error_msg(err), -1,
		            0);
		kd_error_free(err);
		return;
	}
	rp_cgroup_create(rp, sb);
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
/* Fills sb's containers from spec. A spec the runtime cannot run as asked (an image that maps to
 * no executable, limits out of range) is not an error here: sb->fail_reason/fail_msg
 * are set and the setup timer reports FAILED (the pod shows why, as from a kubelet). */
static int build_sandbox(struct rp *rp, const struct kd_sandbox_spec *spec, struct sandbox *sb,
                         struct kd_error **err)
{
	bool have_pod = spec->pod != NULL;
	sb->restart_never = spec->restart_policy == KD_RESTART_NEVER;
	sb->ctrs = kd_xcalloc(spec->n_containers, sizeof(*sb->ctrs));
	sb->n = spec->n_containers;
	for (size_t i = 0; i < sb->n; i++) { /* all of them: sandbox_free may follow any error */
		struct ctr *c = &sb->ctrs[i];
		c->sb = sb;
		c->idx = i;
		c->proc.pidfd = c->probe_proc.pidfd = c->probe_fd = -1;
		c->last_exit = -1;
	}
	for (size_t i = 0; i < spec->n_containers; i++) {
		const struct kd_container_spec *cs = &spec->containers[i];
		struct ctr *c = &sb->ctrs[i];
		c->name = kd_xstrdup(cs->name ? cs->name : "container");
		c->image = kd_xstrdup(cs->image ? cs->image : "");
		snprintf(c->reason, sizeof(c->reason), "ContainerCreating");
		const char *path = rp_image_lookup(rp, c->image);
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
		c->argv = rp_argv_build(cs, path);
		c->envp = rp_env_build(rp, sb, cs, have_pod);
		if (rp->cfg->log_dir && *rp->cfg->log_dir)
			c->log_path = kd_xasprintf("%s/%s_%s_%s.log", rp->cfg->log_dir, sb->ns,
			                           sb->name, c->name);
		int rc = rp_probe_config(rp, c, cs, have_pod, err);
		if (rc < 0)
			return rc;
		char *msg = NULL;
		if (rp_cgroup_add_limits(sb, c->name, &cs->limits, &msg) < 0) {
			if (!sb->fail_reason) {
				sb->fail_reason = kd_xstrdup("CreateContainerConfigError");
				sb->fail_msg = msg;
				c->config_error = true;
				msg = NULL;
			}
			free(msg);
			snprintf(c->reason, sizeof(c->reason), "CreateContainerConfigError");
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
	sb->created_ms = rp_now_ms(rp);
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
	kd_sandbox_status_set(out, sb->phase, sb->ip, sb->uid, sb->created_ms, sb->ready_ms);
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
	         sb->fail_msg && (!c->path || c->config_error) ? sb->fail_msg : c->message);
	out->pid = c->running ? c->proc.pid : 0;
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
	rp_net_fini(rp);
	kd_ipam_free(rp->ipam);
	rp_images_fini(rp);
	kd_strmap_fini(&rp->table);
	free(rp);
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
	int rc = rp_net_init(rp, err);
	if (rc == 0)
		rc = rp_images_init(rp, err);
	if (rc == 0)
		rc = rp_net_open(rp, err);
	if (rc < 0)
		return rc;
	rp_cgroup_init(rp);
	rp_net_pool_start(rp);
	rp->host->log(KD_LOG_INFO,
	              "runtime-process: bridge %s, pod CIDR %s, %zu images, pool %llu, backoff "
	              "%llu..%llu ms",
	              cfg->bridge, cfg->pod_cidr, rp->images.n, (unsigned long long)cfg->pool_size,
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

KD_PLUGIN_EXPORT("runtime-process", KD_PLUGIN_RUNTIME,
                 .description =
                     "real sandboxes: a network namespace + veth per pod, containers as local "
                     "processes (Knative queue-proxy + user program)",
                 .options = rp_options, .config_size = sizeof(struct rp_config), .init = rp_init,
                 .fini = rp_fini, .ops = &rp_ops)
