/* kd_loop.c: epoll event loop with a timer heap and an eventfd for cross-thread posts. */
#include "kd/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct fd_entry {
	kd_loop_io_cb cb;
	void *arg;
	uint32_t gen; /* 0 = not watched */
};

struct kd_timer {
	struct kd_loop *loop;
	kd_timer_cb cb;
	void *arg;
	uint64_t due_ms;
	size_t heap_idx; /* SIZE_MAX when not armed */
};

struct post {
	kd_loop_post_cb fn;
	void *arg;
	struct post *next;
};

struct kd_loop {
	int epfd;
	int wakefd;
	struct fd_entry *fds;
	size_t nfds;
	uint32_t next_gen;
	struct kd_timer **heap;
	size_t heap_len, heap_cap;
	uint64_t now_ms;
	atomic_bool stop;
	pthread_mutex_t post_lock;
	struct post *posts, *posts_tail;
};

static uint64_t mono_ms(void)
{
	return kd_now_ns() / 1000000ull;
}

struct kd_loop *kd_loop_new(void)
{
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		return NULL;
	int wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (wakefd < 0) {
		int e = errno;
		close(epfd);
		errno = e;
		return NULL;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev) < 0) {
		int e = errno;
		close(wakefd);
		close(epfd);
		errno = e;
		return NULL;
	}
	struct kd_loop *loop = kd_xcalloc(1, sizeof(*loop));
	loop->epfd = epfd;
	loop->wakefd = wakefd;
	loop->now_ms = mono_ms();
	pthread_mutex_init(&loop->post_lock, NULL);
	return loop;
}

void kd_loop_free(struct kd_loop *loop)
{
	if (!loop)
		return;
	for (size_t i = 0; i < loop->heap_len; i++)
		loop->heap[i]->heap_idx = SIZE_MAX;
	free(loop->heap);
	free(loop->fds);
	for (struct post *p = loop->posts, *n; p; p = n) {
		n = p->next;
		free(p);
	}
	pthread_mutex_destroy(&loop->post_lock);
	close(loop->wakefd);
	close(loop->epfd);
	free(loop);
}

static uint32_t to_epoll(unsigned events)
{
	return ((events & KD_LOOP_IN) ? EPOLLIN : 0) | ((events & KD_LOOP_OUT) ? EPOLLOUT : 0);
}

int kd_loop_add_fd(struct kd_loop *loop, int fd, unsigned events, kd_loop_io_cb cb, void *arg)
{
	if (fd < 0 || !cb)
		return -EINVAL;
	if ((size_t)fd >= loop->nfds) {
		size_t n = KD_MAX((size_t)fd + 1, loop->nfds * 2);
		loop->fds = kd_xrealloc(loop->fds, n * sizeof(*loop->fds));
		memset(loop->fds + loop->nfds, 0, (n - loop->nfds) * sizeof(*loop->fds));
		loop->nfds = n;
	}
	struct fd_entry *e = &loop->fds[fd];
	if (e->gen)
		return -EEXIST;
	if (++loop->next_gen == 0)
		loop->next_gen = 1;
	struct epoll_event ev = {.events = to_epoll(events),
	                         .data.u64 = ((uint64_t)loop->next_gen << 32) | (uint32_t)fd};
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	e->cb = cb;
	e->arg = arg;
	e->gen = loop->next_gen;
	return 0;
}

int kd_loop_mod_fd(struct kd_loop *loop, int fd, unsigned events)
{
	if (fd < 0 || (size_t)fd >= loop->nfds || !loop->fds[fd].gen)
		return -ENOENT;
	struct epoll_event ev = {.events = to_epoll(events),
	                         .data.u64 = ((uint64_t)loop->fds[fd].gen << 32) | (uint32_t)fd};
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	return 0;
}

int kd_loop_del_fd(struct kd_loop *loop, int fd)
{
	if (fd < 0 || (size_t)fd >= loop->nfds || !loop->fds[fd].gen)
		return -ENOENT;
	loop->fds[fd].gen = 0;
	/* The fd may already be closed by its owner; EBADF/ENOENT are fine then. */
	if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != EBADF && errno != ENOENT)
		return -errno;
	return 0;
}

/* --- timer heap ------------------------------------------------------------------------------ */

static void heap_swap(struct kd_loop *loop, size_t a, size_t b)
{
	struct kd_timer *t = loop->heap[a];
	loop->heap[a] = loop->heap[b];
	loop->heap[b] = t;
	loop->heap[a]->heap_idx = a;
	loop->heap[b]->heap_idx = b;
}

static void heap_up(struct kd_loop *loop, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (loop->heap[p]->due_ms <= loop->heap[i]->due_ms)
			break;
		heap_swap(loop, p, i);
		i = p;
	}
}

static void heap_down(struct kd_loop *loop, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < loop->heap_len && loop->heap[l]->due_ms < loop->heap[m]->due_ms)
			m = l;
		if (r < loop->heap_len && loop->heap[r]->due_ms < loop->heap[m]->due_ms)
			m = r;
		if (m == i)
			return;
		heap_swap(loop, i, m);
		i = m;
	}
}

static void heap_remove(struct kd_loop *loop, struct kd_timer *t)
{
	size_t i = t->heap_idx;
	size_t last = --loop->heap_len;
	if (i != last) {
		heap_swap(loop, i, last);
		heap_down(loop, i);
		heap_up(loop, i);
	}
	t->heap_idx = SIZE_MAX;
}

struct kd_timer *kd_loop_timer_new(struct kd_loop *loop, kd_timer_cb cb, void *arg)
{
	struct kd_timer *t = kd_xcalloc(1, sizeof(*t));
	t->loop = loop;
	t->cb = cb;
	t->arg = arg;
	t->heap_idx = SIZE_MAX;
	return t;
}

void kd_loop_timer_start(struct kd_timer *t, uint64_t after_ms)
{
	struct kd_loop *loop = t->loop;
	if (t->heap_idx != SIZE_MAX)
		heap_remove(loop, t);
	t->due_ms = mono_ms() + after_ms;
	if (loop->heap_len == loop->heap_cap) {
		loop->heap_cap = loop->heap_cap ? loop->heap_cap * 2 : 16;
		loop->heap = kd_xrealloc(loop->heap, loop->heap_cap * sizeof(*loop->heap));
	}
	t->heap_idx = loop->heap_len++;
	loop->heap[t->heap_idx] = t;
	heap_up(loop, t->heap_idx);
}

void kd_loop_timer_stop(struct kd_timer *t)
{
	if (t && t->heap_idx != SIZE_MAX)
		heap_remove(t->loop, t);
}

bool kd_loop_timer_pending(const struct kd_timer *t)
{
	return t && t->heap_idx != SIZE_MAX;
}

void kd_loop_timer_free(struct kd_timer *t)
{
	if (!t)
		return;
	kd_loop_timer_stop(t);
	free(t);
}

/* --- posts ----------------------------------------------------------------------------------- */

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
	uint64_t one = 1;
	if (write(loop->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

static int run_posts(struct kd_loop *loop)
{
	uint64_t v;
	if (read(loop->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return 0;
	pthread_mutex_lock(&loop->post_lock);
	struct post *p = loop->posts;
	loop->posts = loop->posts_tail = NULL;
	pthread_mutex_unlock(&loop->post_lock);
	int n = 0;
	while (p) {
		struct post *next = p->next;
		p->fn(loop, p->arg);
		free(p);
		p = next;
		n++;
	}
	return n;
}

/* --- running --------------------------------------------------------------------------------- */

static int run_timers(struct kd_loop *loop)
{
	int n = 0;
	loop->now_ms = mono_ms();
	/* Fire only timers due now; a callback re-arming for 0 ms runs on the next iteration. */
	uint64_t now = loop->now_ms;
	while (loop->heap_len && loop->heap[0]->due_ms <= now) {
		struct kd_timer *t = loop->heap[0];
		heap_remove(loop, t);
		t->cb(loop, t, t->arg);
		n++;
	}
	return n;
}

int kd_loop_run_once(struct kd_loop *loop, int timeout_ms)
{
	int n = run_timers(loop);
	if (loop->heap_len) {
		uint64_t now = mono_ms();
		uint64_t due = loop->heap[0]->due_ms;
		int wait = due <= now ? 0 : (int)KD_MIN(due - now, (uint64_t)INT32_MAX);
		if (timeout_ms < 0 || wait < timeout_ms)
			timeout_ms = wait;
	}
	if (n > 0)
		timeout_ms = 0;
	struct epoll_event evs[64];
	int ne = epoll_wait(loop->epfd, evs, (int)KD_ARRAY_SIZE(evs), timeout_ms);
	if (ne < 0)
		return errno == EINTR ? n : -errno;
	loop->now_ms = mono_ms();
	for (int i = 0; i < ne; i++) {
		if (evs[i].data.u64 == UINT64_MAX) {
			n += run_posts(loop);
			continue;
		}
		int fd = (int)(uint32_t)evs[i].data.u64;
		uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
		if ((size_t)fd >= loop->nfds || loop->fds[fd].gen != gen)
			continue; /* removed (or replaced) by an earlier callback */
		uint32_t e = evs[i].events;
		unsigned kev = ((e & EPOLLIN) ? KD_LOOP_IN : 0) |
		               ((e & EPOLLOUT) ? KD_LOOP_OUT : 0) |
		               ((e & EPOLLERR) ? KD_LOOP_ERR : 0) |
		               ((e & (EPOLLHUP | EPOLLRDHUP)) ? KD_LOOP_HUP : 0);
		loop->fds[fd].cb(loop, fd, kev, loop->fds[fd].arg);
		n++;
	}
	return n + run_timers(loop);
}

int kd_loop_run(struct kd_loop *loop)
{
	while (!atomic_load(&loop->stop)) {
		int rc = kd_loop_run_once(loop, -1);
		if (rc < 0)
			return rc;
	}
	atomic_store(&loop->stop, false); /* consumed: the loop can be run again */
	return 0;
}

static void nop(struct kd_loop *loop, void *arg)
{
	(void)loop;
	(void)arg;
}

void kd_loop_stop(struct kd_loop *loop)
{
	atomic_store(&loop->stop, true);
	kd_loop_post(loop, nop, NULL);
}

uint64_t kd_loop_now_ms(struct kd_loop *loop)
{
	return loop->now_ms;
}
