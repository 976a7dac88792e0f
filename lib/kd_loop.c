/* kd_loop.c: the process's event loop as a thin layer over one libuv loop (see kd/loop.h).
 * fd watches are uv_poll_t, timers uv_timer_t (0 ms timers go to a list run from a uv_idle_t,
 * because libuv 1.44 would run a timer re-armed for 0 ms from its own callback again in the same
 * pass, forever), posts a mutex-guarded queue behind one uv_async_t. */
#include "kd/loop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <uv.h>

#include "kd/log.h"

#define FREE_DRAIN_MS 2000u /* kd_loop_free: how long holds may take to be released */

struct fdw {
	uv_poll_t h;
	struct kd_loop *loop;
	int fd;
	kd_loop_io_cb cb;
	void *arg;
};

enum { ZNONE, ZPENDING, ZRUNNING }; /* which 0 ms list a timer is on */

struct kd_timer {
	struct kd_loop *loop;
	kd_timer_cb cb;
	void *arg;
	uv_timer_t *h; /* NULL once kd_loop_free closed it */
	int zlist;
	struct kd_timer *zprev, *znext;
	struct kd_timer *tprev, *tnext; /* every timer of the loop */
};

struct post {
	kd_loop_post_cb fn;
	void *arg;
	struct post *next;
};

struct kd_loop {
	uv_loop_t uv;
	uv_async_t async; /* posts and stop */
	uv_idle_t idle;   /* runs the 0 ms timers */
	uv_timer_t wake;  /* kd_loop_run_once's timeout */
	struct fdw **fds; /* by fd */
	size_t nfds;
	struct kd_timer *zhead[3];
	struct kd_timer *timers; /* every allocated timer */
	unsigned long ncb;       /* callbacks run */
	atomic_int running;      /* depth of kd_loop_run / kd_loop_run_once */
	bool quiesced;           /* kd_loop_run_attached: our callbacks wait */
	unsigned holds;
	pthread_t thread; /* the loop thread (set by the run calls) */
	atomic_bool stop;
	pthread_mutex_t post_lock;
	struct post *posts, *posts_tail;
};

/* --- posts and stop -------------------------------------------------------------------------- */

static void on_async(uv_async_t *a)
{
	struct kd_loop *loop = a->data;
	if (loop->quiesced)
		return; /* kd_loop_run_attached sends it again */
	pthread_mutex_lock(&loop->post_lock);
	struct post *p = loop->posts;
	loop->posts = loop->posts_tail = NULL;
	pthread_mutex_unlock(&loop->post_lock);
	while (p) {
		struct post *next = p->next;
		loop->ncb++;
		p->fn(loop, p->arg);
		free(p);
		p = next;
	}
	if (atomic_load(&loop->stop))
		uv_stop(&loop->uv);
}

int kd_loop_post(struct kd_loop *loop, kd_loop_post_cb fn, void *arg)
{
	struct post *p = kd_xmalloc(sizeof(*p));
	p->fn = fn;
	p->arg = arg;
	p->next = NULL;
	pthread_mutex_lock(&loop->post_lock);
	if (loop->posts_tail)
		loop->posts_tail->next = p;
	else
		loop->posts = p;
	loop->posts_tail = p;
	pthread_mutex_unlock(&loop->post_lock);
	int rc = uv_async_send(&loop->async);
	return rc < 0 ? rc : 0;
}

void kd_loop_stop(struct kd_loop *loop)
{
	atomic_store(&loop->stop, true);
	/* From another thread (or before the loop runs) only the async handle may be touched. */
	if (atomic_load(&loop->running) && pthread_equal(pthread_self(), loop->thread))
		uv_stop(&loop->uv);
	else
		uv_async_send(&loop->async);
}

/* --- 0 ms timers ----------------------------------------------------------------------------- */

static void zlink(struct kd_timer *t, int list)
{
	struct kd_loop *loop = t->loop;
	t->zlist = list;
	t->zprev = NULL;
	t->znext = loop->zhead[list];
	if (t->znext)
		t->znext->zprev = t;
	loop->zhead[list] = t;
}

static void zunlink(struct kd_timer *t)
{
	struct kd_loop *loop = t->loop;
	if (t->zprev)
		t->zprev->znext = t->znext;
	else
		loop->zhead[t->zlist] = t->znext;
	if (t->znext)
		t->znext->zprev = t->zprev;
	t->zprev = t->znext = NULL;
	t->zlist = ZNONE;
}

static void on_idle(uv_idle_t *h)
{
	struct kd_loop *loop = h->data;
	if (loop->quiesced)
		return;
	/* Run what was armed before this pass; what the callbacks arm waits for the next one. */
	while (loop->zhead[ZPENDING]) {
		struct kd_timer *t = loop->zhead[ZPENDING];
		zunlink(t);
		zlink(t, ZRUNNING);
	}
	while (loop->zhead[ZRUNNING]) {
		struct kd_timer *t = loop->zhead[ZRUNNING];
		zunlink(t);
		loop->ncb++;
		t->cb(loop, t, t->arg);
	}
	if (!loop->zhead[ZPENDING])
		uv_idle_stop(&loop->idle);
}

/* --- timers ---------------------------------------------------------------------------------- */

static void on_timer(uv_timer_t *h)
{
	struct kd_timer *t = h->data;
	if (t->loop->quiesced) {
		uv_timer_start(h, on_timer, 1, 0); /* due: runs once kd_loop_run_attached is over */
		return;
	}
	t->loop->ncb++;
	t->cb(t->loop, t, t->arg);
}

static void handle_free(uv_handle_t *h)
{
	free(h);
}

struct kd_timer *kd_loop_timer_new(struct kd_loop *loop, kd_timer_cb cb, void *arg)
{
	struct kd_timer *t = kd_xcalloc(1, sizeof(*t));
	t->loop = loop;
	t->cb = cb;
	t->arg = arg;
	t->h = kd_xcalloc(1, sizeof(*t->h));
	uv_timer_init(&loop->uv, t->h); /* cannot fail on Linux */
	t->h->data = t;
	t->tnext = loop->timers;
	if (t->tnext)
		t->tnext->tprev = t;
	loop->timers = t;
	return t;
}

void kd_loop_timer_start(struct kd_timer *t, uint64_t after_ms)
{
	kd_loop_timer_stop(t);
	if (!t->h)
		return; /* the loop is gone */
	if (after_ms == 0) {
		zlink(t, ZPENDING);
		uv_idle_start(&t->loop->idle, on_idle);
		return;
	}
	/* The loop's clock is cached per iteration; arming from outside a callback (set-up code)
	 * must not count time spent since then. */
	uv_update_time(&t->loop->uv);
	uv_timer_start(t->h, on_timer, after_ms, 0);
}

void kd_loop_timer_stop(struct kd_timer *t)
{
	if (!t)
		return;
	if (t->zlist != ZNONE)
		zunlink(t);
	if (t->h)
		uv_timer_stop(t->h);
}

bool kd_loop_timer_pending(const struct kd_timer *t)
{
	return t && (t->zlist != ZNONE || (t->h && uv_is_active((const uv_handle_t *)t->h)));
}

void kd_loop_timer_free(struct kd_timer *t)
{
	if (!t)
		return;
	kd_loop_timer_stop(t);
	if (t->h) {
		uv_close((uv_handle_t *)t->h, handle_free);
		if (t->tprev)
			t->tprev->tnext = t->tnext;
		else
			t->loop->timers = t->tnext;
		if (t->tnext)
			t->tnext->tprev = t->tprev;
	}
	free(t);
}

/* --- fds ------------------------------------------------------------------------------------- */

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct fdw *w = h->data;
	if (w->loop->quiesced)
		return; /* level-triggered: reported again later */
	unsigned ev = ((events & UV_READABLE) ? KD_LOOP_IN : 0) |
	              ((events & UV_WRITABLE) ? KD_LOOP_OUT : 0) |
	              ((events & UV_DISCONNECT) ? (KD_LOOP_HUP | KD_LOOP_IN) : 0) |
	              (status < 0 ? KD_LOOP_ERR : 0);
	w->loop->ncb++;
	w->cb(w->loop, w->fd, ev, w->arg);
}

static int to_uv(unsigned events)
{
	int e = 0;
	if (events & KD_LOOP_IN)
		e |= UV_READABLE | UV_DISCONNECT;
	if (events & KD_LOOP_OUT)
		e |= UV_WRITABLE;
	return e;
}

static struct fdw *fd_get(const struct kd_loop *loop, int fd)
{
	return fd >= 0 && (size_t)fd < loop->nfds ? loop->fds[fd] : NULL;
}

static void fdw_closed(uv_handle_t *h)
{
	free(h->data);
}

int kd_loop_add_fd(struct kd_loop *loop, int fd, unsigned events, kd_loop_io_cb cb, void *arg)
{
	if (fd < 0 || !cb)
		return -EINVAL;
	if (fd_get(loop, fd))
		return -EEXIST;
	if ((size_t)fd >= loop->nfds) {
		size_t n = KD_MAX((size_t)fd + 1, loop->nfds * 2);
		loop->fds = kd_xrealloc(loop->fds, n * sizeof(*loop->fds));
		memset(loop->fds + loop->nfds, 0, (n - loop->nfds) * sizeof(*loop->fds));
		loop->nfds = n;
	}
	struct fdw *w = kd_xcalloc(1, sizeof(*w));
	int rc = uv_poll_init(&loop->uv, &w->h, fd);
	if (rc < 0) {
		free(w);
		return rc;
	}
	w->h.data = w;
	w->loop = loop;
	w->fd = fd;
	w->cb = cb;
	w->arg = arg;
	rc = uv_poll_start(&w->h, to_uv(events), on_poll);
	if (rc < 0) {
		uv_close((uv_handle_t *)&w->h, fdw_closed);
		return rc;
	}
	loop->fds[fd] = w;
	return 0;
}

int kd_loop_mod_fd(struct kd_loop *loop, int fd, unsigned events)
{
	struct fdw *w = fd_get(loop, fd);
	if (!w)
		return -ENOENT;
	int e = to_uv(events);
	int rc = e ? uv_poll_start(&w->h, e, on_poll) : uv_poll_stop(&w->h);
	return rc < 0 ? rc : 0;
}

int kd_loop_del_fd(struct kd_loop *loop, int fd)
{
	struct fdw *w = fd_get(loop, fd);
	if (!w)
		return -ENOENT;
	loop->fds[fd] = NULL;
	/* uv_close stops the watch at once (and drops its pending events); the memory goes in the
	 * close callback. */
	uv_close((uv_handle_t *)&w->h, fdw_closed);
	return 0;
}

/* --- running --------------------------------------------------------------------------------- */

static void on_wake(uv_timer_t *h)
{
	(void)h; /* only ends kd_loop_run_once's wait */
}

static void run(struct kd_loop *loop, uv_run_mode mode)
{
	loop->thread = pthread_self();
	atomic_fetch_add(&loop->running, 1);
	uv_run(&loop->uv, mode);
	atomic_fetch_sub(&loop->running, 1);
}

int kd_loop_run_once(struct kd_loop *loop, int timeout_ms)
{
	if (loop->running)
		return -EDEADLK;
	unsigned long before = loop->ncb;
	if (timeout_ms == 0) {
		run(loop, UV_RUN_NOWAIT);
	} else {
		if (timeout_ms > 0) {
			uv_update_time(&loop->uv);
			uv_timer_start(&loop->wake, on_wake, (uint64_t)timeout_ms, 0);
		}
		run(loop, UV_RUN_ONCE);
		uv_timer_stop(&loop->wake);
	}
	return (int)KD_MIN(loop->ncb - before, (unsigned long)INT32_MAX);
}

int kd_loop_run(struct kd_loop *loop)
{
	if (loop->running)
		return -EDEADLK;
	while (!atomic_load(&loop->stop))
		run(loop, UV_RUN_DEFAULT);
	atomic_store(&loop->stop, false); /* consumed: the loop can be run again */
	return 0;
}

int kd_loop_run_main(struct kd_loop *loop)
{
	int rc = kd_loop_run(loop);
	if (rc < 0) {
		kd_log_error("event loop: %s", strerror(-rc));
		return 1;
	}
	return 0;
}

int kd_loop_run_attached(struct kd_loop *loop)
{
	if (loop->running)
		return -EDEADLK;
	loop->quiesced = true;
	run(loop, UV_RUN_NOWAIT);
	loop->quiesced = false;
	pthread_mutex_lock(&loop->post_lock);
	bool posts = loop->posts != NULL;
	pthread_mutex_unlock(&loop->post_lock);
	if (posts || atomic_load(&loop->stop))
		uv_async_send(&loop->async);
	return 0;
}

bool kd_loop_running(const struct kd_loop *loop)
{
	return atomic_load(&loop->running) > 0;
}

uint64_t kd_loop_now_ms(struct kd_loop *loop)
{
	(void)loop;
	return kd_now_ns() / 1000000ull;
}

struct uv_loop_s *kd_loop_uv(struct kd_loop *loop)
{
	return &loop->uv;
}

void kd_loop_hold(struct kd_loop *loop)
{
	loop->holds++;
}

void kd_loop_release(struct kd_loop *loop)
{
	if (loop->holds)
		loop->holds--;
}

/* --- life cycle ------------------------------------------------------------------------------ */

struct kd_loop *kd_loop_new(void)
{
	struct kd_loop *loop = kd_xcalloc(1, sizeof(*loop));
	int rc = uv_loop_init(&loop->uv);
	if (rc < 0) {
		free(loop);
		errno = -rc;
		return NULL;
	}
	rc = uv_async_init(&loop->uv, &loop->async, on_async);
	if (rc < 0) {
		uv_loop_close(&loop->uv);
		free(loop);
		errno = -rc;
		return NULL;
	}
	loop->uv.data = loop;
	loop->async.data = loop;
	uv_idle_init(&loop->uv, &loop->idle);
	loop->idle.data = loop;
	uv_timer_init(&loop->uv, &loop->wake);
	uv_unref((uv_handle_t *)&loop->wake);
	loop->thread = pthread_self();
	pthread_mutex_init(&loop->post_lock, NULL);
	return loop;
}

static void close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	/* Handles embedded in the loop, and those of attached libraries (their memory is not
	 * ours); fd watches and kd_timers were closed before. */
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

void kd_loop_free(struct kd_loop *loop)
{
	if (!loop)
		return;
	uint64_t deadline = kd_now_ns() + FREE_DRAIN_MS * 1000000ull;
	while (loop->holds && kd_now_ns() < deadline)
		kd_loop_run_once(loop, 1);
	if (loop->holds)
		kd_log_warn("loop: freed with %u asynchronous close(s) unfinished", loop->holds);
	for (size_t i = 0; i < loop->nfds; i++)
		if (loop->fds[i])
			kd_loop_del_fd(loop, (int)i);
	/* kd_timers stay allocated (their owners free them later) but lose their handles. */
	for (struct kd_timer *t = loop->timers, *n; t; t = n) {
		n = t->tnext;
		kd_loop_timer_stop(t);
		uv_close((uv_handle_t *)t->h, handle_free);
		t->h = NULL;
		t->tprev = t->tnext = NULL;
	}
	loop->timers = NULL;
	uv_walk(&loop->uv, close_walk, NULL);
	for (int i = 0; i < 100 && uv_loop_alive(&loop->uv); i++)
		uv_run(&loop->uv, UV_RUN_NOWAIT);
	if (uv_loop_close(&loop->uv) == UV_EBUSY)
		kd_log_warn("loop: libuv loop still busy at close");
	free(loop->fds);
	for (struct post *p = loop->posts, *n; p; p = n) {
		n = p->next;
		free(p);
	}
	pthread_mutex_destroy(&loop->post_lock);
	free(loop);
}

static void on_stop_signal(struct kd_loop *loop, int fd, unsigned events, void *arg)
{
	(void)events;
	(void)arg;
	struct signalfd_siginfo si;
	if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		kd_log_info("received signal %u, stopping", si.ssi_signo);
		kd_loop_stop(loop);
	}
}

int kd_loop_stop_on_signals(struct kd_loop *loop)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	int rc = kd_loop_add_fd(loop, fd, KD_LOOP_IN, on_stop_signal, NULL);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

void kd_loop_signals_close(struct kd_loop *loop, int fd)
{
	if (fd < 0)
		return;
	kd_loop_del_fd(loop, fd);
	close(fd);
}
