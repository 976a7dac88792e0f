/* kd/loop.h: the one event loop of a kubedirect process (epoll + timers + cross-thread posts).
 * Channels (libwebsockets, external-poll mode), watch streams (curl multi socket API) and timers
 * all run on it, so no component needs a thread per connection. Not thread-safe except
 * kd_loop_post and kd_loop_stop, which may be called from any thread. */
#ifndef KD_LOOP_H
#define KD_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "kd/common.h"

struct kd_loop;
struct kd_timer;

enum {
	KD_LOOP_IN = 1u << 0,
	KD_LOOP_OUT = 1u << 1,
	KD_LOOP_ERR = 1u << 2, /* reported, never requested */
	KD_LOOP_HUP = 1u << 3, /* reported, never requested */
};

typedef void (*kd_loop_io_cb)(struct kd_loop *loop, int fd, unsigned events, void *arg);
typedef void (*kd_timer_cb)(struct kd_loop *loop, struct kd_timer *timer, void *arg);
typedef void (*kd_loop_post_cb)(struct kd_loop *loop, void *arg);

/* Returns owned; free with kd_loop_free. Returns NULL with errno set if epoll/eventfd fail. */
struct kd_loop *kd_loop_new(void);
/* Frees the loop; fds are not closed, timers still registered are freed. */
void kd_loop_free(struct kd_loop *loop);

/* Watches fd for events (KD_LOOP_IN|KD_LOOP_OUT). 0, -EEXIST if already watched, or -errno. */
int kd_loop_add_fd(struct kd_loop *loop, int fd, unsigned events, kd_loop_io_cb cb, void *arg);
/* Changes the requested events of a watched fd. 0, -ENOENT, or -errno. */
int kd_loop_mod_fd(struct kd_loop *loop, int fd, unsigned events);
/* Stops watching fd; safe from inside any callback, pending events for it are dropped. */
int kd_loop_del_fd(struct kd_loop *loop, int fd);

/* One-shot timers. Returns owned; free with kd_loop_timer_free (which also stops it). */
struct kd_timer *kd_loop_timer_new(struct kd_loop *loop, kd_timer_cb cb, void *arg);
/* (Re)arms the timer to fire after `after_ms` milliseconds (0: on the next iteration). */
void kd_loop_timer_start(struct kd_timer *timer, uint64_t after_ms);
void kd_loop_timer_stop(struct kd_timer *timer);
bool kd_loop_timer_pending(const struct kd_timer *timer);
void kd_loop_timer_free(struct kd_timer *timer);

/* Thread-safe: runs fn(loop, arg) on the loop thread on its next iteration. 0 or -errno. */
int kd_loop_post(struct kd_loop *loop, kd_loop_post_cb fn, void *arg);

/* Runs one iteration, waiting at most timeout_ms (-1: until something happens).
 * Returns the number of callbacks run, or -errno. */
int kd_loop_run_once(struct kd_loop *loop, int timeout_ms);
/* Runs until kd_loop_stop is called. Returns 0 or -errno. */
int kd_loop_run(struct kd_loop *loop);
/* Thread-safe: makes kd_loop_run return after the current iteration. */
void kd_loop_stop(struct kd_loop *loop);

/* Monotonic milliseconds, cached once per iteration. */
uint64_t kd_loop_now_ms(struct kd_loop *loop);

#endif /* KD_LOOP_H */
