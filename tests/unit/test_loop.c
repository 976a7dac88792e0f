/* Unit tests for kd_loop: fd readiness, timers in due order, re-arming, removal inside
 * callbacks, cross-thread posts and stop, 0 ms timers, kd_loop_run_attached, holds. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kd/log.h"
#include "kd/loop.h"

struct io_state {
	int calls;
	unsigned last_events;
	char buf[16];
};

static void on_readable(struct kd_loop *loop, int fd, unsigned events, void *arg)
{
	(void)loop;
	struct io_state *s = arg;
	s->calls++;
	s->last_events = events;
	ssize_t n = read(fd, s->buf, sizeof(s->buf) - 1);
	if (n >= 0)
		s->buf[n] = '\0';
}

static void fd_readiness_is_reported(void **state)
{
	(void)state;
	struct kd_loop *loop = kd_loop_new();
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct io_state s = {0};
	assert_int_equal(kd_loop_add_fd(loop, p[0], KD_LOOP_IN, on_readable, &s), 0);
	assert_int_equal(kd_loop_add_fd(loop, p[0], KD_LOOP_IN, on_readable, &s), -EEXIST);
	assert_int_equal(kd_loop_run_once(loop, 0), 0);
	assert_int_equal(s.calls, 0);
	assert_int_equal(write(p[1], "hi", 2), 2);
	assert_int_equal(kd_loop_run_once(loop, 1000), 1);
	assert_int_equal(s.calls, 1);
	assert_true(s.last_events & KD_LOOP_IN);
	assert_string_equal(s.buf, "hi");
	assert_int_equal(kd_loop_del_fd(loop, p[0]), 0);
	assert_int_equal(kd_loop_del_fd(loop, p[0]), -ENOENT);
	assert_int_equal(kd_loop_mod_fd(loop, p[0], KD_LOOP_IN), -ENOENT);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(kd_loop_run_once(loop, 0), 0);
	assert_int_equal(s.calls, 1);
	close(p[0]);
	close(p[1]);
	kd_loop_free(loop);
}

struct order {
	int seq[8];
	int n;
};

static void record(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	struct order *o = arg;
	o->seq[o->n++] = -1;
}

struct tagged {
	struct order *o;
	int tag;
};

static void record_tag(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	struct tagged *tg = arg;
	tg->o->seq[tg->o->n++] = tg->tag;
}

static void timers_fire_in_due_order(void **state)
{
	(void)state;
	struct kd_loop *loop = kd_loop_new();
	struct order o = {0};
	struct tagged a = {&o, 1}, b = {&o, 2}, c = {&o, 3};
	struct kd_timer *ta = kd_loop_timer_new(loop, record_tag, &a);
	struct kd_timer *tb = kd_loop_timer_new(loop, record_tag, &b);
	struct kd_timer *tc = kd_loop_timer_new(loop, record_tag, &c);
	kd_loop_timer_start(ta, 30);
	kd_loop_timer_start(tb, 10);
	kd_loop_timer_start(tc, 20);
	kd_loop_timer_start(tc, 0); /* re-arm moves it to the front */
	assert_true(kd_loop_timer_pending(tc));
	uint64_t start = kd_now_ns();
	while (o.n < 3 && kd_now_ns() - start < 2000000000ull)
		assert_true(kd_loop_run_once(loop, 100) >= 0);
	assert_int_equal(o.n, 3);
	assert_int_equal(o.seq[0], 3);
	assert_int_equal(o.seq[1], 2);
	assert_int_equal(o.seq[2], 1);
	assert_false(kd_loop_timer_pending(ta));
	kd_loop_timer_free(ta);
	kd_loop_timer_free(tb);
	kd_loop_timer_free(tc);
	kd_loop_free(loop);
}

static void stopped_timer_never_fires(void **state)
{
	(void)state;
	struct kd_loop *loop = kd_loop_new();
	struct order o = {0};
	struct kd_timer *t = kd_loop_timer_new(loop, record, &o);
	kd_loop_timer_start(t, 0);
	kd_loop_timer_stop(t);
	assert_false(kd_loop_timer_pending(t));
	assert_int_equal(kd_loop_run_once(loop, 20), 0);
	assert_int_equal(o.n, 0);
	kd_loop_timer_start(t, 0);
	kd_loop_free(loop); /* frees the loop with the timer still armed */
	kd_loop_timer_free(t);
}

struct del_state {
	int p1[2], p2[2];
	int calls;
};

static void delete_other(struct kd_loop *loop, int fd, unsigned events, void *arg)
{
	(void)events;
	struct del_state *s = arg;
	s->calls++;
	char c;
	assert_int_equal(read(fd, &c, 1), 1);
	/* Whichever fires first removes the other; the other's pending event must be dropped. */
	kd_loop_del_fd(loop, fd == s->p1[0] ? s->p2[0] : s->p1[0]);
	kd_loop_del_fd(loop, fd);
}

static void removal_inside_callback_drops_pending_events(void **state)
{
	(void)state;
	struct kd_loop *loop = kd_loop_new();
	struct del_state s = {0};
	assert_int_equal(pipe(s.p1), 0);
	assert_int_equal(pipe(s.p2), 0);
	assert_int_equal(kd_loop_add_fd(loop, s.p1[0], KD_LOOP_IN, delete_other, &s), 0);
	assert_int_equal(kd_loop_add_fd(loop, s.p2[0], KD_LOOP_IN, delete_other, &s), 0);
	assert_int_equal(write(s.p1[1], "a", 1), 1);
	assert_int_equal(write(s.p2[1], "b", 1), 1);
	usleep(1000);
	assert_int_equal(kd_loop_run_once(loop, 100), 1);
	assert_int_equal(s.calls, 1);
	for (int i = 0; i < 2; i++) {
		close(s.p1[i]);
		close(s.p2[i]);
	}
	kd_loop_free(loop);
}

static void count_post(struct kd_loop *loop, void *arg)
{
	int *n = arg;
	if (++*n == 100)
		kd_loop_stop(loop);
}

static void *poster(void *arg)
{
	void **a = arg;
	for (int i = 0; i < 50; i++)
		kd_loop_post(a[0], count_post, a[1]);
	return NULL;
}

static void posts_from_threads_run_on_loop(void **state)
{
	(void)state;
	struct kd_loop *loop = kd_loop_new();
	int n = 0;
	void *args[2] = {loop, &n};
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, poster, args), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(kd_loop_run(loop), 0);
	assert_int_equal(n, 100);
	kd_loop_free(loop);
}

static void stop_before_run_returns_at_once(void **state)
{
	(void)state;
	struct kd_loop *loop = kd_loop_new();
	kd_loop_stop(loop);
	assert_int_equal(kd_loop_run(loop), 0);
	kd_loop_free(loop);
}

static void rearm_zero(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	int *n = arg;
	if (++*n < 1000)
		kd_loop_timer_start(t, 0);
}

/* A timer that re-arms itself for 0 ms runs once per iteration, not again inside the same one
 * (libuv's own 0 ms timers would spin in one pass). */
static void zero_timer_rearmed_in_its_callback_runs_next_iteration(void **state)
{
	(void)state;
	struct kd_loop *loop = kd_loop_new();
	int n = 0;
	struct kd_timer *t = kd_loop_timer_new(loop, rearm_zero, &n);
	kd_loop_timer_start(t, 0);
	assert_int_equal(kd_loop_run_once(loop, 0), 1);
	assert_int_equal(n, 1);
	assert_true(kd_loop_timer_pending(t));
	assert_int_equal(kd_loop_run_once(loop, 0), 1);
	assert_int_equal(n, 2);
	kd_loop_timer_free(t);
	kd_loop_free(loop);
}

static void free_self(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	int *n = arg;
	++*n;
	kd_loop_timer_free(t);
}

static void timer_freed_in_its_own_callback(void **state)
{
	(void)state;
	struct kd_loop *loop = kd_loop_new();
	int n = 0;
	kd_loop_timer_start(kd_loop_timer_new(loop, free_self, &n), 1);
	kd_loop_timer_start(kd_loop_timer_new(loop, free_self, &n), 0);
	uint64_t start = kd_now_ns();
	while (n < 2 && kd_now_ns() - start < 2000000000ull)
		kd_loop_run_once(loop, 50);
	assert_int_equal(n, 2);
	kd_loop_free(loop);
}

static void count_io(struct kd_loop *loop, int fd, unsigned events, void *arg)
{
	(void)loop;
	(void)events;
	int *n = arg;
	char c;
	if (read(fd, &c, 1) == 1)
		++*n;
}

/* kd_loop_run_attached runs only libraries' handles: our fd, timer and post callbacks wait,
 * and run (none lost) on the next ordinary iteration. */
static void run_attached_defers_our_callbacks(void **state)
{
	(void)state;
	struct kd_loop *loop = kd_loop_new();
	int p[2];
	assert_int_equal(pipe(p), 0);
	int io = 0, posts = 0;
	struct order o = {0};
	assert_int_equal(kd_loop_add_fd(loop, p[0], KD_LOOP_IN, count_io, &io), 0);
	struct kd_timer *t0 = kd_loop_timer_new(loop, record, &o);
	struct kd_timer *t1 = kd_loop_timer_new(loop, record, &o);
	kd_loop_timer_start(t0, 0);
	kd_loop_timer_start(t1, 1);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(kd_loop_post(loop, count_post, &posts), 0);
	usleep(3000);
	for (int i = 0; i < 5; i++)
		assert_int_equal(kd_loop_run_attached(loop), 0);
	assert_int_equal(io, 0);
	assert_int_equal(o.n, 0);
	assert_int_equal(posts, 0);
	uint64_t start = kd_now_ns();
	while ((io < 1 || o.n < 2 || posts < 1) && kd_now_ns() - start < 2000000000ull)
		kd_loop_run_once(loop, 20);
	assert_int_equal(io, 1);
	assert_int_equal(o.n, 2);
	assert_int_equal(posts, 1);
	kd_loop_del_fd(loop, p[0]);
	close(p[0]);
	close(p[1]);
	kd_loop_timer_free(t0);
	kd_loop_timer_free(t1);
	kd_loop_free(loop);
}

struct hold_state {
	struct kd_loop *loop;
	int ticks;
};

static void release_after_three(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	struct hold_state *h = arg;
	if (++h->ticks < 3) {
		kd_loop_timer_start(t, 1);
		return;
	}
	kd_loop_release(loop);
	kd_loop_timer_free(t);
}

/* kd_loop_free lets held asynchronous work finish first. */
static void free_waits_for_holds(void **state)
{
	(void)state;
	struct kd_loop *loop = kd_loop_new();
	struct hold_state h = {loop, 0};
	kd_loop_hold(loop);
	kd_loop_timer_start(kd_loop_timer_new(loop, release_after_three, &h), 1);
	kd_loop_free(loop);
	assert_int_equal(h.ticks, 3);
}

static void stop_inside(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)t;
	int *n = arg;
	++*n;
	kd_loop_stop(loop);
}

static void running_is_true_only_inside_callbacks(void **state)
{
	(void)state;
	struct kd_loop *loop = kd_loop_new();
	assert_false(kd_loop_running(loop));
	int n = 0;
	struct kd_timer *t = kd_loop_timer_new(loop, stop_inside, &n);
	kd_loop_timer_start(t, 1);
	assert_int_equal(kd_loop_run(loop), 0);
	assert_int_equal(n, 1);
	assert_false(kd_loop_running(loop));
	kd_loop_timer_free(t);
	kd_loop_free(loop);
}

static void run_main_inside(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)t;
	int *status = arg;
	*status = kd_loop_run_main(loop); /* from a callback: cannot run */
	kd_loop_stop(loop);
}

/* kd_loop_run_main: 0 after a stop; 1, with the reason logged, when the loop cannot run. */
static void run_main_returns_an_exit_status(void **state)
{
	(void)state;
	struct kd_loop *loop = kd_loop_new();
	kd_loop_stop(loop);
	assert_int_equal(kd_loop_run_main(loop), 0);

	char *logs = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&logs, &len);
	assert_non_null(f);
	kd_log_set_stream(f);
	int status = -1;
	struct kd_timer *t = kd_loop_timer_new(loop, run_main_inside, &status);
	kd_loop_timer_start(t, 0);
	assert_int_equal(kd_loop_run_main(loop), 0);
	kd_log_set_stream(NULL);
	fclose(f);
	assert_int_equal(status, 1);
	assert_non_null(strstr(logs, "event loop: Resource deadlock avoided"));
	free(logs);
	kd_loop_timer_free(t);
	kd_loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(fd_readiness_is_reported),
	    cmocka_unit_test(timers_fire_in_due_order),
	    cmocka_unit_test(stopped_timer_never_fires),
	    cmocka_unit_test(removal_inside_callback_drops_pending_events),
	    cmocka_unit_test(posts_from_threads_run_on_loop),
	    cmocka_unit_test(stop_before_run_returns_at_once),
	    cmocka_unit_test(zero_timer_rearmed_in_its_callback_runs_next_iteration),
	    cmocka_unit_test(timer_freed_in_its_own_callback),
	    cmocka_unit_test(run_attached_defers_our_callbacks),
	    cmocka_unit_test(free_waits_for_holds),
	    cmocka_unit_test(running_is_true_only_inside_callbacks),
	    cmocka_unit_test(run_main_returns_an_exit_status),
	};
	return cmocka_run_group_tests_name("kd_loop", tests, NULL, NULL);
}
