/* plugins/runtime-process/rp_cgroup.c: resource limits. If the spec sets limits (cpu/memory of
 * kd_container_spec.limits, summed over containers) and cgroup v2 is mounted and writable at the
 * parent of `cgroup-root`, the sandbox gets its own cgroup (cpu.max, memory.max) that its
 * processes join before exec. Otherwise one log line at init says sandboxes are not
 * cgroup-limited. The host reads the Pod's quantities (kd/runtimejson.h refuses one that is not);
 * a negative limit or a sum beyond int64 fails the sandbox at start (CreateContainerConfigError
 * naming the container, field and value), never "no limit".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "rp.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

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

void rp_cgroup_init(struct rp *rp)
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

static int add_limit(int64_t v, const char *ctr_name, const char *res, int64_t *acc, char **msg)
{
	if (v >= 0 && *acc <= INT64_MAX - v) {
		*acc += v;
		return 0;
	}
	*msg =
	    kd_xasprintf("container %s: resources.limits.%s %lld: %s", ctr_name, res, (long long)v,
	                 v < 0 ? "negative" : "sum over the containers out of range");
	return -ERANGE;
}

int rp_cgroup_add_limits(struct sandbox *sb, const char *ctr_name,
                         const struct kd_resources *limits, char **msg)
{
	int64_t cpu = sb->cpu_milli, mem = sb->mem_bytes;
	int rc = add_limit(limits->cpu_milli, ctr_name, "cpu", &cpu, msg);
	if (rc == 0)
		rc = add_limit(limits->memory_bytes, ctr_name, "memory", &mem, msg);
	if (rc == 0) {
		sb->cpu_milli = cpu;
		sb->mem_bytes = mem;
	}
	return rc;
}

void rp_cgroup_create(struct rp *rp, struct sandbox *sb)
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
		int rc = write_file(f, buf);
		if (rc < 0)
			rp->host->log(KD_LOG_WARN, "runtime-process: %s: write %s: %s", sb->key, f,
			              strerror(-rc));
		free(f);
		f = NULL;
	}
	if (sb->mem_bytes > 0) {
		f = kd_xasprintf("%s/memory.max", path);
		snprintf(buf, sizeof(buf), "%lld", (long long)sb->mem_bytes);
		int rc = write_file(f, buf);
		if (rc < 0)
			rp->host->log(KD_LOG_WARN, "runtime-process: %s: write %s: %s", sb->key, f,
			              strerror(-rc));
		free(f);
		f = NULL;
	}
	f = kd_xasprintf("%s/cgroup.procs", path);
	sb->cg_procs_fd = open(f, O_WRONLY | O_CLOEXEC);
	sb->cg_path = path;
}

void rp_cgroup_destroy(struct rp *rp, struct sandbox *sb)
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
