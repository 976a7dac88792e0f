/* kd/loop.h: the one event loop of a kubedirect process: a thin layer over one libuv loop
 * (uv_loop_t). fd watches, timers and cross-thread posts of libkd and the plugins go through
 * this API; libraries with libuv support (libwebsockets' foreign-loop mode) attach to the same
 * uv_loop_t (kd_loop_uv), while curl multi (lib/curlm) and libmicrohttpd (lib/http: its epoll fd)
 * run on the fd and timer calls below, so every component is one thread on one loop.
 * Not thread-safe except kd_loop_post and kd_loop_stop, which may be called from any thread.
 *
 * Ownership: the loop never frees what it is given. Every `arg` is borrowed: stored and passed
 * back to its callback, and it must stay valid until the registration ends (kd_loop_del_fd,
 * kd_loop_timer_free, or the posted function has run). fds stay the caller's (never closed by
 * the loop, not even by kd_loop_free). A struct kd_loop * argument is borrowed. */
#ifndef KD_LOOP_H
#define KD_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "kd/common.h"

struct kd_loop;
struct kd_timer;
struct uv_loop_s; /* uv_loop_t */

enum {
	KD_LOOP_IN = 1u << 0,
	KD_LOOP_OUT = 1u << 1,
	KD_LOOP_ERR = 1u << 2, /* reported, never requested */
	KD_LOOP_HUP = 1u << 3, /* reported, never requested: the peer closed its side */
};

typedef void (*kd_loop_io_cb)(struct kd_loop *loop, int fd, unsigned events, void *arg);
typedef void (*kd_timer_cb)(struct kd_loop *loop, struct kd_timer *timer, void *arg);
typedef void (*kd_loop_post_cb)(struct kd_loop *loop, void *arg);

/* Returns owned; free with kd_loop_free. Returns NULL with errno set if libuv cannot start. */
KD_API struct kd_loop *kd_loop_new(void);
/* Frees the loop. First runs it (bounded, 2 s) until every kd_loop_hold is released, then closes
 * every handle still open on it (ours and those of libraries attached through kd_loop_uv).
 * fds are not closed; timers still allocated stay owned by their callers, valid only to
 * kd_loop_timer_free (they never fire); posts not yet run are dropped (their arg is not freed).
 * NULL is a no-op. */
KD_API void kd_loop_free(struct kd_loop *loop);

/* The libuv loop; borrowed, valid until kd_loop_free. For libraries that run on libuv. Its
 * callbacks run only inside kd_loop_run / kd_loop_run_once: never call uv_run on it directly. */
KD_API struct uv_loop_s *kd_loop_uv(struct kd_loop *loop);

/* Watches fd (borrowed, stays the caller's to close) for events (KD_LOOP_IN|KD_LOOP_OUT); the fd
 * is made non-blocking. arg is borrowed until kd_loop_del_fd. 0, -EEXIST if already watched, or
 * -errno. A peer's close is reported as KD_LOOP_HUP with KD_LOOP_IN. */
KD_API int kd_loop_add_fd(struct kd_loop *loop, int fd, unsigned events, kd_loop_io_cb cb,
                          void *arg);
/* Changes the requested events of a watched fd (0: none for now). 0, -ENOENT, or -errno. */
KD_API int kd_loop_mod_fd(struct kd_loop *loop, int fd, unsigned events);
/* Stops watching fd; safe from inside any callback, pending events for it are dropped. Call it
 * before closing fd. 0 or -ENOENT. */
KD_API int kd_loop_del_fd(struct kd_loop *loop, int fd);

/* One-shot timers. Returns owned; free with kd_loop_timer_free (which also stops it), also when
 * the loop was freed first. arg is borrowed until kd_loop_timer_free. */
KD_API struct kd_timer *kd_loop_timer_new(struct kd_loop *loop, kd_timer_cb cb, void *arg);
/* (Re)arms the timer to fire after `after_ms` milliseconds from now (0: on the next iteration,
 * never inside the current callback). */
KD_API void kd_loop_timer_start(struct kd_timer *timer, uint64_t after_ms);
KD_API void kd_loop_timer_stop(struct kd_timer *timer);
KD_API bool kd_loop_timer_pending(const struct kd_timer *timer);
/* Stops and frees; safe from inside its own callback and after kd_loop_free. NULL is a no-op. */
KD_API void kd_loop_timer_free(struct kd_timer *timer);

/* Thread-safe: runs fn(loop, arg) on the loop thread on its next iteration. arg is borrowed (the
 * loop never frees it); if fn frees it, note that kd_loop_free drops posts not yet run. 0 or
 * -errno. */
KD_API int kd_loop_post(struct kd_loop *loop, kd_loop_post_cb fn, void *arg);

/* Runs one iteration, waiting at most timeout_ms (-1: until something happens).
 * Returns the number of kd_loop callbacks run (fd, timer, post; not those of libraries attached
 * through kd_loop_uv), or -errno. Not from inside a callback (libuv is not reentrant). */
KD_API int kd_loop_run_once(struct kd_loop *loop, int timeout_ms);
/* Runs until kd_loop_stop is called. Returns 0 or -errno. Not from inside a callback. */
KD_API int kd_loop_run(struct kd_loop *loop);
/* kd_loop_run for a component's main(): returns its exit status, 0 when the loop was stopped, or
 * 1 after logging why it could not run ("event loop: ..."). */
KD_API int kd_loop_run_main(struct kd_loop *loop);
/* Thread-safe: makes kd_loop_run return after the current iteration. */
KD_API void kd_loop_stop(struct kd_loop *loop);
/* One non-blocking iteration in which only the libraries attached through kd_loop_uv run their
 * callbacks; kd_loop's own fd, timer and post callbacks wait for a later iteration. For the
 * synchronous teardown of such a library outside kd_loop_run (at exit, in tests), so that no
 * other component runs half torn down. 0, or -EDEADLK from inside a callback. */
KD_API int kd_loop_run_attached(struct kd_loop *loop);
/* True while kd_loop_run or kd_loop_run_once is running callbacks: code that would have to run
 * the loop itself (a synchronous teardown) must then finish asynchronously instead. */
KD_API bool kd_loop_running(const struct kd_loop *loop);

/* Outstanding asynchronous work that kd_loop_free must let finish (e.g. a library's close that
 * completes in later iterations). Each hold is released exactly once. */
KD_API void kd_loop_hold(struct kd_loop *loop);
KD_API void kd_loop_release(struct kd_loop *loop);

/* Monotonic milliseconds (CLOCK_MONOTONIC, the clock of kd_now_ns), cached once per iteration. */
KD_API uint64_t kd_loop_now_ms(struct kd_loop *loop);

/* Blocks SIGINT and SIGTERM for the process and makes the first one that arrives stop the loop
 * (logged with its number). Returns the signalfd it watches (>= 0; give it back to
 * kd_loop_signals_close before kd_loop_free), or -errno. */
KD_API int kd_loop_stop_on_signals(struct kd_loop *loop);
KD_API void kd_loop_signals_close(struct kd_loop *loop, int fd);

#endif /* KD_LOOP_H */
