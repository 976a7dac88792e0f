/* kd_test_proc.c: child processes for unit tests (see kd_test_proc.h). */
#include "kd_test_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "kd_test_proc: %s: %s\n", what, strerror(errno));
	abort();
}

uint16_t kd_test_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
		die("bind 127.0.0.1:0");
	close(fd);
	return ntohs(sa.sin_port);
}

static int try_connect(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons(port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return rc;
}

pid_t kd_test_fn_start(const char *name, const char *threads, uint16_t *port)
{
	uint16_t p = kd_test_free_port();
	char path[512], ps[16];
	snprintf(path, sizeof(path), "%s/functions/%s", KD_BUILD_DIR, name);
	snprintf(ps, sizeof(ps), "%u", p);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		setenv("PORT", ps, 1);
		setenv("FN_LISTEN", "127.0.0.1", 1);
		setenv("FN_THREADS", threads, 1);
		execl(path, name, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		if (try_connect(p) == 0) {
			*port = p;
			return pid;
		}
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			fprintf(stderr, "kd_test_proc: %s exited at start (status 0x%x)\n", path,
			        (unsigned)st);
			abort();
		}
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	fprintf(stderr, "kd_test_proc: %s does not accept on 127.0.0.1:%u\n", path, p);
	abort();
}

void kd_test_fn_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 200; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* A temporary file, already unlinked: only the fd names it. */
static int anon_file(void)
{
	char tmpl[] = "/tmp/kd-test-proc-XXXXXX";
	int fd = mkstemp(tmpl);
	if (fd < 0)
		die("mkstemp");
	unlink(tmpl);
	return fd;
}

static char *slurp(int fd)
{
	off_t end = lseek(fd, 0, SEEK_END);
	if (end < 0 || lseek(fd, 0, SEEK_SET) < 0)
		die("lseek");
	char *s = malloc((size_t)end + 1);
	if (!s)
		abort();
	size_t n = 0;
	while (n < (size_t)end) {
		ssize_t r = read(fd, s + n, (size_t)end - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	s[n] = '\0';
	return s;
}

int kd_test_run(char *const argv[], unsigned timeout_ms, char **out, char **err)
{
	int fo = anon_file(), fe = anon_file();
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	int st = 0, rc = -1;
	for (unsigned waited = 0;; waited += 10) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			break;
		}
		if (waited >= timeout_ms) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			break;
		}
		usleep(10000);
	}
	if (out)
		*out = slurp(fo);
	if (err)
		*err = slurp(fe);
	close(fo);
	close(fe);
	return rc;
}
