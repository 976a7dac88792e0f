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

/* Only async-signal-safe calls in the child. */
int rp_spawn(const struct sandbox *sb, const char *path, char *const argv[], char *const envp[],
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

int rp_reap(int pidfd, pid_t pid)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG) < 0) {
		int st = 0;
		if (waitpid(pid, &st, WNOHANG) <= 0)
			return -1;
		return rp_wait_code(st);
	}
	if (si.si_code == CLD_EXITED)
		return si.si_status;
	return 128 + si.si_status;
}

int rp_wait_code(int st)
{
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void rp_kill_reap(pid_t pid, int pidfd)
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
