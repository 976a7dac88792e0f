/* plugins/runtime-process/rp_probe.c: readiness probes, with kubelet semantics, all from inside
 * the sandbox's namespace to the pod IP:
 *  - HTTP GET (headers from the probe's http_headers, the Pod's httpGet.httpHeaders, e.g.
 *    Knative's queue-proxy probe `K-Network-Probe: queue`, which is added for a container named
 *    queue-proxy when there is no Pod object; a header with CR, LF or a colon in its name, or CR
 *    or LF in its value, is left out; User-Agent kube-probe/1.35), 200..399 passes; TCP
 *    connect; exec (exit 0).
 *  - initialDelay, period (0: 10 s), timeout (0: 1 s), success/failure thresholds as Kubernetes.
 *    Deviation for cold starts: until a container first passes, it is probed every
 *    `startup-probe-period` (default 50ms) when that is shorter than its period (0 disables).
 *  - The sandbox is READY when every container runs and passes (rp_check_ready). A probe that
 *    never passes keeps it STARTED (not ready); container_status() shows the last failure as
 *    the message. A readiness probe failing failureThreshold times after READY is logged only
 *    (the kd_runtime ABI has no "not ready any more" event).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rp.h"

static uint32_t probe_period(const struct ctr *c)
{
	uint32_t p = c->probe.period_ms ? c->probe.period_ms : RP_DEFAULT_PERIOD;
	uint64_t fast = c->sb->rp->cfg->startup_probe_period_ms;
	if (!c->ever_ready && fast && fast < p)
		p = (uint32_t)fast;
	return p;
}

void rp_probe_cancel(struct ctr *c)
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
	rp_child_kill(rp, &c->probe_proc);
}

/* One probe finished: thresholds, next probe, then (last) the sandbox readiness. */
static void probe_result(struct ctr *c, bool ok, const char *why)
{
	struct sandbox *sb = c->sb;
	struct rp *rp = sb->rp;
	rp_probe_cancel(c);
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
	rp_probe_schedule(c, probe_period(c));
	rp_check_ready(sb);
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
		             ? rp_child_start(&c->probe_proc, c, exec_probe_done, NULL,
		                              c->exec_argv, c->envp, NULL)
		             : -EINVAL;
		if (rc < 0)
			probe_result(c, false, "could not run the exec probe");
		return;
	}
	/* HTTP and TCP: a socket made inside the sandbox's namespace, to the pod IP */
	int fd = -1;
	int e = rp_net_socket_in(rp, sb->ns_fd, &fd);
	char why[128];
	if (e < 0) {
		snprintf(why, sizeof(why), "socket in sandbox: %s", strerror(-e));
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

void rp_probe_schedule(struct ctr *c, uint64_t after_ms)
{
	struct rp *rp = c->sb->rp;
	if (!c->probe_timer)
		c->probe_timer = rp->host->timer_new(rp->host->loop, on_probe_timer, c);
	rp->host->timer_start(c->probe_timer, after_ms);
}

void rp_probe_fini(struct ctr *c)
{
	struct rp *rp = c->sb->rp;
	rp_probe_cancel(c);
	rp->host->timer_free(c->probe_timer);
	rp->host->timer_free(c->probe_timeout);
	rp_child_fini(rp, &c->probe_proc);
	c->probe_timer = c->probe_timeout = NULL;
	free(c->http_path);
	free(c->probe_headers);
	rp_strv_free(c->exec_argv);
	c->http_path = c->probe_headers = NULL;
	c->exec_argv = NULL;
}

int rp_probe_config(struct rp *rp, struct ctr *c, const struct kd_container_spec *cs, bool have_pod,
                    struct kd_error **err)
{
	c->probe = cs->readiness;
	c->probe.http_path = NULL;
	c->probe.exec_command = NULL;
	c->probe.http_headers = NULL;
	if (cs->readiness.http_path)
		c->http_path = kd_xstrdup(cs->readiness.http_path);
	if (cs->readiness.type == KD_PROBE_EXEC)
		c->exec_argv =
		    rp_strv_dup(cs->readiness.exec_command, cs->readiness.n_exec_command);
	if ((c->probe.type == KD_PROBE_HTTP || c->probe.type == KD_PROBE_TCP) && !c->probe.port)
		return rp_err(rp, err, EINVAL, "container %s: readiness probe without a port",
		              c->name);
	if (c->probe.type != KD_PROBE_HTTP)
		return 0;
	char *h = kd_xstrdup("");
	for (size_t j = 0; j < cs->readiness.n_http_headers; j++) {
		const char *hn = cs->readiness.http_headers[j].name;
		const char *hv = cs->readiness.http_headers[j].value;
		if (!hn || strpbrk(hn, "\r\n:") || (hv && strpbrk(hv, "\r\n")))
			continue;
		char *n2 = kd_xasprintf("%s%s: %s\r\n", h, hn, hv ? hv : "");
		free(h);
		h = n2;
	}
	if (!have_pod && strcmp(c->name, "queue-proxy") == 0) {
		free(h);
		h = kd_xstrdup("K-Network-Probe: queue\r\n");
	}
	c->probe_headers = h;
	return 0;
}
