/* plugins/runtime-process/rp.h: the internal interface between the files of runtime-process
 * (the plugin is described in runtime_process.c). The data every part shares (configuration,
 * plugin state, sandboxes, containers), then one section per file with what it offers the
 * others. Nothing here is exported from the .so: the plugin is built with -fvisibility=hidden
 * and exports only kd_plugin_entry. Everything runs on the host's loop thread.
 *
 *   runtime_process.c  plugin entry, options, ops (start/stop/status), sandbox and container
 *                      lifecycle (setup, CrashLoopBackOff, end, finalize)
 *   rp_net.c           network namespaces, veths, pod address and routes, namespace pool
 *   rp_netlink.c       the rtnetlink requests rp_net.c makes (rp_netlink.h)
 *   rp_cgroup.c        resource limits from the Pod, sandbox cgroups
 *   rp_image.c         image name -> local executable
 *   rp_env.c           argv and environment of a container (downward API)
 *   rp_spawn.c         fork/exec into a sandbox, reaping
 *   rp_probe.c         readiness probes (HTTP, TCP, exec)
 */
#ifndef RP_H
#define RP_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "kd/common.h"
#include "kd/config.h"
#include "kd/error.h"
#include "kd/ipam.h"
#include "kd/plugin.h"
#include "kd/stage.h"
#include "kd/strmap.h"
#include "rp_netlink.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define RP_FAIL_GRACE_MS   2000u
#define RP_DEFAULT_PERIOD  10000u
#define RP_DEFAULT_TIMEOUT 1000u
#define RP_MAX_CONTAINERS  16
#define RP_POLL_MS         10

/* --- shared data ------------------------------------------------------------------------------ */
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

struct rp;
struct sandbox;

/* A process rp_child_start forked into a sandbox, watched until it exits: through its pidfd, or
 * without pidfd_open (kernel < 5.3, valgrind) by polling waitpid(WNOHANG) every RP_POLL_MS. */
struct rp_child {
	pid_t pid;             /* 0: none */
	int pidfd;             /* -1: none, or polled */
	struct kd_timer *poll; /* created on first use; freed by rp_child_fini */
	struct ctr *c;         /* what exited is called with */
	void (*exited)(struct ctr *c, int code);
};

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
	struct rp_child probe_proc; /* an exec probe's command */
	/* process */
	struct rp_child proc;
	bool running, ready;
	bool config_error; /* this container's spec caused sb->fail_reason (not its image) */
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

struct rp {
	const struct kd_host *host;
	const struct rp_config *cfg;
	int home_fd;
	struct rp_nl br_nl;
	uint32_t gateway_be;
	struct {
		uint32_t dst;
		unsigned prefix;
	} routes[16];
	size_t n_routes;
	struct kd_strmap images; /* image name -> struct rp_image (owned; rp_image.c) */
	struct kd_ipam *ipam;
	struct kd_strmap table; /* key (sb->key) -> live struct sandbox */
	struct sandbox *ending;
	struct pooled_ns *pool_ns;
	size_t n_pool;
	struct kd_timer *pool_timer;
	bool cgroups;
	uint32_t veth_seq;
};

/* --- runtime_process.c ------------------------------------------------------------------------ */
/* Sets *err through the host (message from fmt) and returns -errnum. */
int rp_err(const struct rp *rp, struct kd_error **err, int errnum, const char *fmt, ...)
    KD_PRINTF(4, 5);
uint64_t rp_now_ms(const struct rp *rp);
/* READY once every container runs and passes its probe (emits the event last). */
void rp_check_ready(struct sandbox *sb);

/* --- rp_net.c --------------------------------------------------------------------------------- */
/* Checks and parses the network options (routes, gateway, veth-prefix). */
int rp_net_init(struct rp *rp, struct kd_error **err);
/* Opens the plugin's own netns (rp->home_fd) and a netlink socket in the bridge's namespace
 * (rp->br_nl); a missing bridge is only logged. On failure the caller runs rp_net_fini. */
int rp_net_open(struct rp *rp, struct kd_error **err);
/* Starts filling the namespace pool (pool-size > 0), one namespace per loop iteration. */
void rp_net_pool_start(struct rp *rp);
/* Deletes the pooled namespaces, closes the netlink socket and the own netns fd. */
void rp_net_fini(struct rp *rp);
/* Gives sb a namespace with its veth (pooled or new; sb->ns_fd, sb->veth) and configures eth0
 * with sb's address, MAC and routes. On failure sb->ns_fd/veth may be set: rp_net_destroy
 * (through sandbox teardown) removes them. */
int rp_net_setup(struct rp *rp, struct sandbox *sb, struct kd_error **err);
/* Deletes the veth (both ends) and closes the namespace fd (if >= 0). */
void rp_net_destroy(struct rp *rp, int ns_fd, const char *veth);
/* A non-blocking, close-on-exec TCP socket made inside the namespace ns_fd into *fd; 0 or
 * -errno. The loop thread is back in the plugin's namespace afterwards. */
int rp_net_socket_in(const struct rp *rp, int ns_fd, int *fd);

/* --- rp_cgroup.c ------------------------------------------------------------------------------ */
/* Decides once whether sandboxes get cgroups (rp->cgroups); logs why not. Never fatal. */
void rp_cgroup_init(struct rp *rp);
/* Adds the cpu/memory limits of container ctr_name (kd_container_spec.limits, borrowed) to
 * sb->cpu_milli/mem_bytes. A negative limit, or a sum beyond int64: -ERANGE and *msg (owned;
 * free) names the container, the field and the value; sb is left unchanged. */
int rp_cgroup_add_limits(struct sandbox *sb, const char *ctr_name,
                         const struct kd_resources *limits, char **msg);
/* Creates sb's cgroup if it has limits and cgroups are usable; never fatal (logs). */
void rp_cgroup_create(struct rp *rp, struct sandbox *sb);
void rp_cgroup_destroy(struct rp *rp, struct sandbox *sb);

/* --- rp_image.c ------------------------------------------------------------------------------- */
/* Builds the image table: queue-image -> queue-bin, then the `images` JSON object (overrides). */
int rp_images_init(struct rp *rp, struct kd_error **err);
void rp_images_fini(struct rp *rp);
/* The executable for an image (as given, without @digest, without :tag), or NULL. Borrowed;
 * valid until rp_images_fini. */
const char *rp_image_lookup(const struct rp *rp, const char *image);

/* --- rp_env.c --------------------------------------------------------------------------------- */
/* argv: command[0] (or path) then the other command entries, then args. Owned, NULL-terminated;
 * free with rp_strv_free. */
char **rp_argv_build(const struct kd_container_spec *cs, const char *path);
/* envp for a container (spec env with the addresses filled in, then PATH, HOSTNAME, PORT when
 * absent); have_pod: the spec came with a Pod object. Owned; free with rp_strv_free. */
char **rp_env_build(const struct rp *rp, const struct sandbox *sb,
                    const struct kd_container_spec *cs, bool have_pod)
    __attribute__((nonnull(1, 2, 3)));
void rp_strv_free(char **v);
/* Owned NULL-terminated copy of n strings. */
char **rp_strv_dup(const char *const *v, size_t n);

/* --- rp_spawn.c ------------------------------------------------------------------------------- */
/* Forks into ch a child of container c that joins c's sandbox (netns, cgroup) and execs path (or
 * argv[0] through PATH when path is NULL), output appended to log_path (NULL: /dev/null), and
 * watches it: its exit is reported once, on the loop, as exited(c, code) with ch->pid already 0
 * (code: the exit status, 128+signal if killed, -1 if unknown). 0, or -errno: not started, or
 * started but its pidfd could not be watched (it stays until rp_child_kill). */
int rp_child_start(struct rp_child *ch, struct ctr *c, void (*exited)(struct ctr *c, int code),
                   const char *path, char *const argv[], char *const envp[], const char *log_path);
/* SIGKILLs and reaps ch's child, if any, without reporting it, and stops watching it. */
void rp_child_kill(struct rp *rp, struct rp_child *ch);
/* rp_child_kill, then frees the poll timer. */
void rp_child_fini(struct rp *rp, struct rp_child *ch);

/* --- rp_probe.c ------------------------------------------------------------------------------- */
/* Copies the readiness probe of cs (and its HTTP headers) into c; have_pod: the spec came with a
 * Pod object. A TCP or HTTP probe without a port: -EINVAL with *err. */
int rp_probe_config(struct rp *rp, struct ctr *c, const struct kd_container_spec *cs, bool have_pod,
                    struct kd_error **err);
/* Runs the probe after after_ms (then every period). */
void rp_probe_schedule(struct ctr *c, uint64_t after_ms);
/* Stops a probe in flight and the schedule. */
void rp_probe_cancel(struct ctr *c);
/* rp_probe_cancel, then frees the probe's timers and strings. */
void rp_probe_fini(struct ctr *c);

#endif /* RP_H */
