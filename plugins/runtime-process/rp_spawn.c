/* plugins/runtime-process/rp_spawn.c: container and exec-probe processes. A child joins the
 * sandbox (setns into its network namespace, its cgroup if any), gets its own session,
 * PR_SET_PDEATHSIG=SIGKILL (it dies with the host process), the default signal state, stdin
 * /dev/null and stdout+stderr appended to <log-dir>/<ns>_<pod>_<container>.log (or /dev/null
 * when log-dir is empty); every other fd is closed. The parent watches it through a pidfd
 * (pidfd_open), or, without one (kernel < 5.3, valgrind), by polling waitpid(WNOHANG).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rp.h"

/* Only async-signal-safe calls in the child. *pidfd_out is -1 when pidfd_open is missing (poll
 * waitpid instead). 0 or -errno. */
static int spawn(const struct sandbox *sb, const char *path, char *const argv[], char *const envp[],
                 const char *log_path, pid_t *pid_out, int *pidfd_out)
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
	*pid_out = pid;
	*pidfd_out = pidfd;
	return 0;
}

static int wait_code(int st)
{
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Reaps a child whose pidfd is readable: exit code (128+signal if killed), -1 if unknown. */
static int reap(int pidfd, pid_t pid)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG) < 0) {
		int st = 0;
		if (waitpid(pid, &st, WNOHANG) <= 0)
			return -1;
		return wait_code(st);
	}
	if (si.si_code == CLD_EXITED)
		return si.si_status;
	return 128 + si.si_status;
}

/* SIGKILLs and reaps a child (pidfd >= 0: through it, then closes it; else pid > 0). The caller
 * has removed the pidfd from the loop. */
static void kill_reap(pid_t pid, int pidfd)
{
	if (pidfd >= 0) {
		kill(pid, SIGKILL);
		waitid((idtype_t)P_PIDFD, (id_t)pidfd, &(siginfo_t){0}, WEXITED);
		close(pidfd);
	} else if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0); /* just killed: immediate */
	}
}

static void child_exited(struct rp_child *ch, int code)
{
	ch->pid = 0;
	ch->exited(ch->c, code);
}

static void on_child_exit(struct kd_loop *loop, int fd, unsigned events, void *arg)
{
	(void)events;
	struct rp_child *ch = arg;
	int code = reap(fd, ch->pid);
	ch->c->sb->rp->host->del_fd(loop, fd);
	close(fd);
	ch->pidfd = -1;
	child_exited(ch, code);
}

static void on_child_poll(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	struct rp_child *ch = arg;
	int st = 0;
	pid_t r = ch->pid > 0 ? waitpid(ch->pid, &st, WNOHANG) : -1;
	if (r == 0) {
		ch->c->sb->rp->host->timer_start(t, RP_POLL_MS);
		return;
	}
	child_exited(ch, r > 0 ? wait_code(st) : -1);
}

int rp_child_start(struct rp_child *ch, struct ctr *c, void (*exited)(struct ctr *c, int code),
                   const char *path, char *const argv[], char *const envp[], const char *log_path)
{
	const struct kd_host *host = c->sb->rp->host;
	ch->c = c;
	ch->exited = exited;
	int rc = spawn(c->sb, path, argv, envp, log_path, &ch->pid, &ch->pidfd);
	if (rc < 0)
		return rc;
	if (ch->pidfd >= 0)
		return host->add_fd(host->loop, ch->pidfd, KD_LOOP_IN, on_child_exit, ch);
	if (!ch->poll)
		ch->poll = host->timer_new(host->loop, on_child_poll, ch);
	host->timer_start(ch->poll, RP_POLL_MS);
	return 0;
}

void rp_child_kill(struct rp *rp, struct rp_child *ch)
{
	if (ch->poll)
		rp->host->timer_stop(ch->poll);
	if (ch->pidfd >= 0)
		rp->host->del_fd(rp->host->loop, ch->pidfd);
	kill_reap(ch->pid, ch->pidfd);
	ch->pidfd = -1;
	ch->pid = 0;
}

void rp_child_fini(struct rp *rp, struct rp_child *ch)
{
	rp_child_kill(rp, ch);
	rp->host->timer_free(ch->poll);
	ch->poll = NULL;
}
