/* lib/kd_curlm.c: curl multi on kd_loop (see kd/curlm.h). */
#include "kd/curlm.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "kd/common.h"
#include "kd/log.h"

struct kd_curlm {
	struct kd_loop *loop;
	const char *name;
	CURLM *multi;
	struct kd_timer *timer;
	kd_curlm_done_cb done;
	kd_curlm_after_cb after;
	void *ud;
	int depth; /* > 0 while curl_multi_socket_action runs */
};

static void reap(struct kd_curlm *m)
{
	CURLMsg *msg;
	int left = 0;
	while ((msg = curl_multi_info_read(m->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		CURL *e = msg->easy_handle;
		CURLcode rc = msg->data.result;
		curl_multi_remove_handle(m->multi, e);
		m->done(m->ud, e, rc);
	}
	if (m->after)
		m->after(m->ud);
}

static void drive(struct kd_curlm *m, curl_socket_t fd, int flags)
{
	int running = 0;
	m->depth++;
	curl_multi_socket_action(m->multi, fd, flags, &running);
	m->depth--;
	if (m->depth == 0)
		reap(m);
}

static void fd_cb(struct kd_loop *loop, int fd, unsigned events, void *arg)
{
	(void)loop;
	int flags = 0;
	if (events & (KD_LOOP_IN | KD_LOOP_HUP))
		flags |= CURL_CSELECT_IN;
	if (events & KD_LOOP_OUT)
		flags |= CURL_CSELECT_OUT;
	if (events & KD_LOOP_ERR)
		flags |= CURL_CSELECT_ERR;
	drive(arg, fd, flags);
}

static void timer_cb(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	drive(arg, CURL_SOCKET_TIMEOUT, 0);
}

static int socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	(void)e;
	struct kd_curlm *m = userp;
	if (what == CURL_POLL_REMOVE) {
		/* An idle kept-alive connection: stop watching, keep the watch (no epoll_ctl
		 * and handle churn per request); close_cb drops it when curl closes the socket. */
		if (socketp) {
			kd_loop_mod_fd(m->loop, s, 0);
			curl_multi_assign(m->multi, s, NULL);
		}
		return 0;
	}
	unsigned ev =
	    ((what & CURL_POLL_IN) ? KD_LOOP_IN : 0) | ((what & CURL_POLL_OUT) ? KD_LOOP_OUT : 0);
	if (socketp)
		return kd_loop_mod_fd(m->loop, s, ev) < 0 ? -1 : 0;
	int rc = kd_loop_add_fd(m->loop, s, ev, fd_cb, m);
	if (rc == -EEXIST)
		rc = kd_loop_mod_fd(m->loop, s, ev);
	if (rc < 0) {
		kd_log_error("%s: cannot watch socket %d: %s", m->name, (int)s, strerror(-rc));
		return -1;
	}
	curl_multi_assign(m->multi, s, m);
	return 0;
}

static int close_cb(void *clientp, curl_socket_t fd)
{
	struct kd_curlm *m = clientp;
	kd_loop_del_fd(m->loop, fd); /* -ENOENT when it was never watched */
	return close(fd);
}

static int timerfn_cb(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	struct kd_curlm *m = userp;
	if (timeout_ms < 0)
		kd_loop_timer_stop(m->timer);
	else
		kd_loop_timer_start(m->timer, (uint64_t)timeout_ms);
	return 0;
}

struct kd_curlm *kd_curlm_new(struct kd_loop *loop, const char *name, kd_curlm_done_cb done,
                              kd_curlm_after_cb after, void *ud)
{
	struct kd_curlm *m = kd_xcalloc(1, sizeof(*m));
	m->loop = loop;
	m->name = name ? name : "curl";
	m->done = done;
	m->after = after;
	m->ud = ud;
	m->multi = curl_multi_init();
	if (!m->multi)
		abort();
	m->timer = kd_loop_timer_new(loop, timer_cb, m);
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, timerfn_cb);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
	return m;
}

void kd_curlm_free(struct kd_curlm *m)
{
	if (!m)
		return;
	curl_multi_cleanup(m->multi);
	kd_loop_timer_free(m->timer);
	free(m);
}

CURLM *kd_curlm_multi(struct kd_curlm *m)
{
	return m->multi;
}

int kd_curlm_add(struct kd_curlm *m, CURL *easy)
{
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, close_cb);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, m);
	return curl_multi_add_handle(m->multi, easy) == CURLM_OK ? 0 : -EINVAL;
}

void kd_curlm_remove(struct kd_curlm *m, CURL *easy)
{
	curl_multi_remove_handle(m->multi, easy);
}

bool kd_curlm_inside(const struct kd_curlm *m)
{
	return m->depth > 0;
}
