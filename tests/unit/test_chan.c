/* Unit tests for kd_chan: an in-process downstream (server) and upstream (client) on 127.0.0.1
 * ephemeral ports, both on one kd_loop. Every wait is bounded in time. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libwebsockets.h>

#include "chan_stage.h"
#include "kd/chan.h"
#include "kd/log.h"
#include "kd/loop.h"
#include "kd_test_loop.h"

struct fx {
	struct kd_loop *loop;
	struct ts_down ds;
	struct ts_up us;
	struct kd_chan_down *down;
	struct kd_chan_up *up;
	unsigned readies, downs, writables;
	char last_down[512];
	uint64_t last_acked_id;
};

/* Runs the loop until cond holds or ms elapse; evaluates to cond. */
#define WAIT(f, cond, ms) KD_TEST_WAIT((f)->loop, cond, ms)

/* Runs the loop for ms milliseconds. */
static void spin(struct fx *f, uint64_t ms)
{
	kd_test_spin(f->loop, ms);
}

static void on_ready(void *ud, uint64_t epoch)
{
	struct fx *f = (struct fx *)((char *)ud - offsetof(struct fx, us));
	(void)epoch;
	f->readies++;
}

static void on_down(void *ud, const char *reason)
{
	struct fx *f = (struct fx *)((char *)ud - offsetof(struct fx, us));
	f->downs++;
	snprintf(f->last_down, sizeof(f->last_down), "%s", reason);
}

static void on_writable(void *ud)
{
	struct fx *f = (struct fx *)((char *)ud - offsetof(struct fx, us));
	f->writables++;
}

static void on_acked(void *ud, uint64_t id)
{
	struct fx *f = (struct fx *)((char *)ud - offsetof(struct fx, us));
	f->last_acked_id = id;
}

static int setup(void **state)
{
	struct fx *f = kd_xcalloc(1, sizeof(*f));
	f->loop = kd_loop_new();
	assert_non_null(f->loop);
	kd_log_set_level(getenv("KD_TEST_DEBUG") ? KD_LOG_DEBUG : KD_LOG_ERROR);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	kd_chan_up_free(f->up);
	kd_chan_down_free(f->down);
	ts_down_fini(&f->ds);
	ts_up_fini(&f->us);
	kd_loop_free(f->loop);
	free(f);
	return 0;
}

static void start_down(struct fx *f, const struct kd_chan_down_opts *o)
{
	struct kd_chan_down_opts def = {0};
	kd_autoerr struct kd_error *err = NULL;
	f->down = kd_chan_down_new(f->loop, o ? o : &def, &ts_down_cbs, &f->ds, &err);
	assert_non_null(f->down);
	assert_true(kd_chan_down_port(f->down) > 0);
}

static void start_up(struct fx *f, struct kd_chan_up_opts *o)
{
	struct kd_chan_up_opts def = {0};
	if (!o)
		o = &def;
	o->host = "127.0.0.1";
	o->port = kd_chan_down_port(f->down);
	o->source = "test-up";
	if (!o->backoff_base_ms)
		o->backoff_base_ms = 20;
	if (!o->backoff_cap_ms)
		o->backoff_cap_ms = 100;
	struct kd_chan_up_cbs cbs = {
	    .hs = ts_up_cbs,
	    .ready = on_ready,
	    .down = on_down,
	    .writable = on_writable,
	    .acked = on_acked,
	};
	kd_autoerr struct kd_error *err = NULL;
	f->up = kd_chan_up_new(f->loop, o, &cbs, &f->us, &err);
	assert_non_null(f->up);
}

static void send_ops(struct fx *f, const char *prefix, uint64_t first, size_t n, bool wanted)
{
	struct kd_op_list ops = {0};
	ts_make_ops(wanted ? &f->us : NULL, &ops, prefix, first, n);
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_chan_up_send(f->up, &ops, NULL, &err), 0);
	assert_int_equal(ops.n, 0);
	kd_op_list_fini(&ops);
}

static void connect_handshake_delta_ack(void **state)
{
	struct fx *f = *state;
	start_down(f, NULL);
	start_up(f, NULL);
	assert_true(WAIT(f, kd_chan_up_ready(f->up), 3000));
	assert_int_equal(f->readies, 1);
	uint64_t epoch = kd_chan_up_epoch(f->up);
	assert_true(epoch > 0);
	assert_int_equal(kd_hs_down_epoch(kd_chan_down_hs(f->down), "test-up"), epoch);
	assert_int_equal(kd_hs_down_phase(kd_chan_down_hs(f->down), "test-up"), KD_HS_READY);

	send_ops(f, "a", 1, 10, true);
	assert_true(WAIT(f, kd_chan_up_pending_ops(f->up) == 0, 3000));
	assert_int_equal(f->ds.applies, 10);
	assert_int_equal(f->ds.dup_applies, 0);
	assert_int_equal(ts_down_live(&f->ds), 10);
	assert_non_null(ts_map_get(&f->ds.objs, "ns/a-7", false));
	assert_int_equal(f->last_acked_id, 10);
	const struct kd_chan_stats *us = kd_chan_up_stats(f->up);
	assert_int_equal(us->sent, 1);
	assert_int_equal(us->acked, 1);
	assert_int_equal(us->retransmitted, 0);
	assert_int_equal(kd_chan_down_stats(f->down)->acked, 1);
	assert_int_equal(kd_chan_down_stats(f->down)->applied_ops, 10);
	assert_int_equal(kd_hs_down_last_seq(kd_chan_down_hs(f->down), "test-up"), 1);

	/* a list larger than max_ops_per_frame is split into several deltas */
	send_ops(f, "b", 1, 2500, true);
	assert_true(WAIT(f, kd_chan_up_pending_ops(f->up) == 0, 5000));
	assert_int_equal(us->sent, 4);
	assert_int_equal(ts_down_live(&f->ds), 2510);
	assert_int_equal(kd_hs_down_last_seq(kd_chan_down_hs(f->down), "test-up"), 4);
}

static void send_validates_and_splits_to_the_frame_cap(void **state)
{
	struct fx *f = *state;
	struct kd_chan_down_opts d = {.t.max_frame = 4096};
	start_down(f, &d);
	struct kd_chan_up_opts u = {.t.max_frame = 4096};
	start_up(f, &u);
	assert_true(WAIT(f, kd_chan_up_ready(f->up), 3000));
	kd_autoerr struct kd_error *err = NULL;
	/* empty and invalid lists are refused, nothing queued, the list left to the caller */
	struct kd_op_list ops = {0};
	assert_int_equal(kd_chan_up_send(f->up, &ops, NULL, &err), -EINVAL);
	kd_error_free(err);
	err = NULL;
	kd_op_init(kd_op_list_push(&ops), KD_OP_UPSERT, "not-a-key");
	assert_int_equal(kd_chan_up_send(f->up, &ops, NULL, &err), -EINVAL);
	assert_non_null(err);
	assert_int_equal(ops.n, 1);
	kd_op_list_fini(&ops);
	kd_error_free(err);
	err = NULL;
	/* one op larger than the frame cap */
	struct kd_op *big = kd_op_list_push(&ops);
	kd_op_init(big, KD_OP_UPSERT, "ns/big");
	char val[4001];
	memset(val, 'a', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';
	kd_kv_list_push(&big->annotations, "note", val);
	assert_int_equal(kd_chan_up_send(f->up, &ops, NULL, &err), -EMSGSIZE);
	assert_non_null(strstr(kd_error_msg(err), "ns/big"));
	kd_op_list_fini(&ops);
	assert_int_equal(kd_chan_up_pending_ops(f->up), 0);
	/* 300 ops do not fit one 4 KiB frame: split into several deltas, all delivered */
	uint64_t id = 0;
	ts_make_ops(&f->us, &ops, "split", 1, 300);
	/* size of the 300 ops as one delta: the split needs at least size / 4096 frames */
	kd_automsg struct kd_msg *whole = kd_msg_new(KD_MSG_DELTA, 1, 1);
	for (size_t i = 0; i < ops.n; i++)
		kd_op_copy(kd_op_list_push(&whole->delta.ops), &ops.v[i]);
	struct kd_delta_limits big_lim = {.max_frame = 1 << 20};
	char *wbuf = NULL;
	size_t wlen = 0;
	assert_int_equal(kd_msg_encode(whole, 0, &big_lim, &wbuf, &wlen, NULL), 0);
	free(wbuf);
	assert_true(wlen > 2 * 4096);
	assert_int_equal(kd_chan_up_send(f->up, &ops, &id, NULL), 0);
	assert_int_equal(id, 300);
	assert_true(WAIT(f, kd_chan_up_pending_ops(f->up) == 0, 3000));
	assert_true(kd_chan_up_stats(f->up)->sent >= wlen / 4096);
	assert_int_equal(ts_down_live(&f->ds), 300);
	assert_int_equal(kd_chan_down_stats(f->down)->rejected, 0);
}

/* A handshake whose state{} and reconcile{} exceed the frame cap is sent in pages: 600 held
 * objects at a 4 KiB cap (tens of pages each way), every object kept, none applied twice. */
static void paged_handshake_over_small_frames(void **state)
{
	struct fx *f = *state;
	struct kd_chan_down_opts d = {.t.max_frame = 4096};
	start_down(f, &d);
	struct kd_chan_up_opts u = {.t.max_frame = 4096};
	start_up(f, &u);
	assert_true(WAIT(f, kd_chan_up_ready(f->up), 3000));
	send_ops(f, "pg", 1, 600, true);
	assert_true(WAIT(f, kd_chan_up_pending_ops(f->up) == 0, 5000));
	assert_int_equal(ts_down_live(&f->ds), 600);
	uint64_t frames_before = kd_chan_up_stats(f->up)->frames_in;
	uint64_t e1 = kd_chan_up_epoch(f->up);
	kd_chan_up_kick(f->up);
	assert_true(WAIT(f, kd_chan_up_ready(f->up) && kd_chan_up_epoch(f->up) > e1, 5000));
	assert_int_equal(f->ds.keeps, 600);
	assert_int_equal(f->ds.drops, 0);
	assert_int_equal(f->ds.dup_applies, 0);
	assert_int_equal(f->ds.applies, 600);
	/* the state came in several frames (each op is ~40 bytes: 600 need > 5 frames) */
	assert_true(kd_chan_up_stats(f->up)->frames_in - frames_before > 5);
	assert_int_equal(kd_chan_down_stats(f->down)->rejected, 0);
	assert_int_equal(kd_hs_down_phase(kd_chan_down_hs(f->down), "test-up"), KD_HS_READY);
	/* deltas flow in the new epoch */
	send_ops(f, "after", 1, 3, true);
	assert_true(WAIT(f, kd_chan_up_pending_ops(f->up) == 0, 3000));
	assert_int_equal(ts_down_live(&f->ds), 603);
}

static void bearer_token_accepted(void **state)
{
	struct fx *f = *state;
	struct kd_chan_down_opts d = {.t.token = "s3cret-token"};
	start_down(f, &d);
	struct kd_chan_up_opts u = {.t.token = "s3cret-token"};
	start_up(f, &u);
	assert_true(WAIT(f, kd_chan_up_ready(f->up), 3000));
	send_ops(f, "t", 1, 3, true);
	assert_true(WAIT(f, kd_chan_up_pending_ops(f->up) == 0, 3000));
	assert_int_equal(ts_down_live(&f->ds), 3);
	assert_int_equal(kd_chan_down_stats(f->down)->rejected, 0);
}

static void bearer_token_refused(void **state)
{
	struct fx *f = *state;
	struct kd_chan_down_opts d = {.t.token = "s3cret-token"};
	start_down(f, &d);
	struct kd_chan_up_opts u = {.t.token = "s3cret-tokeN"};
	start_up(f, &u);
	/* at least two refused attempts (it keeps retrying with backoff), never ready */
	assert_true(WAIT(f, kd_chan_down_stats(f->down)->rejected >= 2, 3000));
	assert_false(kd_chan_up_ready(f->up));
	assert_int_equal(f->readies, 0);
	assert_true(f->downs >= 1);
	assert_non_null(strstr(f->last_down, "connect failed"));
	assert_int_equal(kd_chan_down_conns(f->down), 0);
	assert_int_equal(kd_hs_down_epoch(kd_chan_down_hs(f->down), "test-up"), 0);
	kd_chan_up_free(f->up);
	f->up = NULL;
	/* no token at all is refused too */
	start_up(f, NULL);
	uint64_t before = kd_chan_down_stats(f->down)->rejected;
	assert_true(WAIT(f, kd_chan_down_stats(f->down)->rejected > before, 3000));
	assert_false(kd_chan_up_ready(f->up));
}

static void oversize_frame_closes_with_reason(void **state)
{
	struct fx *f = *state;
	struct kd_chan_down_opts d = {.t.max_frame = 4096};
	start_down(f, &d);
	start_up(f, NULL); /* upstream cap: the 1 MiB default */
	assert_true(WAIT(f, kd_chan_up_ready(f->up), 3000));
	size_t n = 10000;
	char *big = kd_xmalloc(n);
	memset(big, ' ', n);
	strcpy(big, "{\"type\":\"ready\"");
	big[15] = ' ';
	big[n - 1] = '}';
	assert_int_equal(kd_chan_up_send_raw(f->up, big, n), 0);
	free(big);
	assert_true(WAIT(f, f->downs >= 1, 3000));
	assert_non_null(strstr(f->last_down, "exceeds the 4096-byte cap"));
	assert_int_equal(kd_chan_down_stats(f->down)->rejected, 1);
	assert_int_equal(f->ds.applies, 0);
	/* the channel comes back by itself (new epoch) */
	assert_true(WAIT(f, kd_chan_up_ready(f->up), 3000));
	assert_int_equal(f->readies, 2);

	/* the other direction: the upstream refuses an oversize frame from the downstream */
	kd_chan_up_free(f->up);
	f->up = NULL;
	struct kd_chan_up_opts u = {.t.max_frame = 2048};
	start_up(f, &u);
	assert_true(WAIT(f, kd_chan_up_ready(f->up), 3000));
	big = kd_xmalloc(3000);
	memset(big, 'x', 3000);
	assert_int_equal(kd_chan_down_send_raw(f->down, big, 3000), 1);
	free(big);
	assert_true(WAIT(f, kd_chan_up_stats(f->up)->rejected == 1, 3000));
	assert_true(WAIT(f, f->downs >= 2, 3000));
	assert_non_null(strstr(f->last_down, "exceeds the 2048-byte cap"));
}

static void garbage_frame_closes(void **state)
{
	struct fx *f = *state;
	start_down(f, NULL);
	start_up(f, NULL);
	assert_true(WAIT(f, kd_chan_up_ready(f->up), 3000));
	uint64_t epoch = kd_chan_up_epoch(f->up);
	static const char garbage[] = "{\"type\":\"delta\",\"epoch\":\"1\",\"seq\":1,\"ops\":[{]}";
	assert_int_equal(kd_chan_up_send_raw(f->up, garbage, sizeof(garbage) - 1), 0);
	assert_true(WAIT(f, f->downs >= 1, 3000));
	/* the downstream's error{MALFORMED} carries the parser's reason */
	assert_non_null(strstr(f->last_down, "not valid JSON"));
	assert_int_equal(kd_chan_down_stats(f->down)->rejected, 1);
	assert_int_equal(f->ds.applies, 0);
	/* binary junk with a NUL byte, from the downstream side */
	assert_true(WAIT(f, kd_chan_up_ready(f->up), 3000));
	assert_true(kd_chan_up_epoch(f->up) > epoch);
	static const char junk[] = "\x00\xff\xfe not json";
	assert_int_equal(kd_chan_down_send_raw(f->down, junk, sizeof(junk) - 1), 1);
	assert_true(WAIT(f, kd_chan_up_stats(f->up)->rejected == 1, 3000));
	assert_true(WAIT(f, f->downs >= 2, 3000));
	assert_non_null(strstr(f->last_down, "malformed"));
	/* still works afterwards */
	assert_true(WAIT(f, kd_chan_up_ready(f->up), 3000));
	send_ops(f, "g", 1, 2, true);
	assert_true(WAIT(f, kd_chan_up_pending_ops(f->up) == 0, 3000));
	assert_int_equal(ts_down_live(&f->ds), 2);
}

static void fragmented_messages_are_reassembled_up_to_the_cap(void **state)
{
	struct fx *f = *state;
	struct kd_chan_down_opts d = {.t.max_frame = 64 * 1024};
	start_down(f, &d);
	struct kd_chan_up_opts u = {.fragment = 100}; /* every message in 100-byte fragments */
	start_up(f, &u);
	assert_true(WAIT(f, kd_chan_up_ready(f->up), 3000));
	send_ops(f, "frag", 1, 200, true); /* one ~25 KiB delta: ~250 fragments */
	assert_true(WAIT(f, kd_chan_up_pending_ops(f->up) == 0, 3000));
	assert_int_equal(ts_down_live(&f->ds), 200);
	assert_int_equal(kd_chan_down_stats(f->down)->rejected, 0);
	/* a fragmented message over the cap is refused as a whole, though no fragment is big */
	size_t n = 70 * 1024;
	char *big = kd_xmalloc(n);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	assert_int_equal(kd_chan_up_send_raw(f->up, big, n), 0);
	free(big);
	assert_true(WAIT(f, f->downs >= 1, 3000));
	assert_non_null(strstr(f->last_down, "exceeds the 65536-byte cap"));
	assert_int_equal(kd_chan_down_stats(f->down)->rejected, 1);
	assert_int_equal(f->ds.applies, 200);
}

static void backpressure_signals_and_resumes(void **state)
{
	struct fx *f = *state;
	start_down(f, NULL);
	struct kd_chan_up_opts u = {.max_msgs = 4};
	start_up(f, &u);
	assert_true(WAIT(f, kd_chan_up_ready(f->up), 3000));
	kd_chan_down_set_reading(f->down, false);
	int accepted = 0, rc = 0;
	for (int i = 0; i < 10; i++) {
		struct kd_op_list ops = {0};
		ts_make_ops(&f->us, &ops, "bp", (uint64_t)i, 1);
		rc = kd_chan_up_send(f->up, &ops, NULL, NULL);
		kd_op_list_fini(&ops);
		if (rc == -EAGAIN)
			break;
		assert_int_equal(rc, 0);
		accepted++;
		spin(f, 20); /* let it hit the wire */
	}
	assert_int_equal(rc, -EAGAIN);
	assert_int_equal(accepted, 4);
	assert_int_equal(kd_chan_up_stats(f->up)->eagain, 1);
	assert_int_equal(f->writables, 0);
	assert_int_equal(f->ds.applies, 0);
	kd_chan_down_set_reading(f->down, true);
	assert_true(WAIT(f, f->writables == 1, 3000));
	assert_true(WAIT(f, kd_chan_up_pending_ops(f->up) == 0, 3000));
	assert_int_equal(f->ds.applies, 4);
	struct kd_op_list ops = {0};
	ts_make_ops(&f->us, &ops, "bp", 100, 1);
	assert_int_equal(kd_chan_up_send(f->up, &ops, NULL, NULL), 0);
	kd_op_list_fini(&ops);
	assert_true(WAIT(f, kd_chan_up_pending_ops(f->up) == 0, 3000));
	assert_int_equal(ts_down_live(&f->ds), 5);
}

static void keepalive_detects_silent_peer(void **state)
{
	struct fx *f = *state;
	start_down(f, NULL);
	struct kd_chan_up_opts u = {
	    .t.ping_ms = 100, .t.dead_ms = 300, .backoff_base_ms = 5000, .backoff_cap_ms = 5000};
	start_up(f, &u);
	assert_true(WAIT(f, kd_chan_up_ready(f->up), 3000));
	/* pings are answered while the peer reads: no dead-peer verdict over 3x dead_ms */
	spin(f, 900);
	assert_int_equal(kd_chan_up_stats(f->up)->dead_peers, 0);
	assert_int_equal(f->downs, 0);
	kd_chan_down_set_reading(f->down, false);
	assert_true(WAIT(f, kd_chan_up_stats(f->up)->dead_peers == 1, 2000));
	assert_true(WAIT(f, f->downs == 1, 2000));
	assert_string_equal(f->last_down, "dead peer");
	assert_false(kd_chan_up_ready(f->up));
}

static void reconnect_after_server_restart_retransmits(void **state)
{
	struct fx *f = *state;
	struct kd_chan_totals up0, down0, up1, down1;
	kd_chan_get_totals(KD_CHAN_END_UP, &up0);
	kd_chan_get_totals(KD_CHAN_END_DOWN, &down0);
	start_down(f, NULL);
	int port = kd_chan_down_port(f->down);
	start_up(f, NULL);
	assert_true(WAIT(f, kd_chan_up_ready(f->up), 3000));
	uint64_t e1 = kd_chan_up_epoch(f->up);
	send_ops(f, "r", 1, 2, false);
	assert_true(WAIT(f, kd_chan_up_pending_ops(f->up) == 0, 3000));
	/* these never get acked: the server stops reading, then goes away */
	kd_chan_down_set_reading(f->down, false);
	send_ops(f, "r", 3, 3, false); /* not in the upstream's wanted set: only kd_chan has them */
	send_ops(f, "r", 6, 2, false);
	spin(f, 50);
	assert_int_equal(kd_chan_up_pending_ops(f->up), 5);
	kd_chan_down_free(f->down);
	f->down = NULL;
	ts_down_fini(&f->ds);
	memset(&f->ds, 0, sizeof(f->ds));
	assert_true(WAIT(f, f->downs >= 1, 3000));
	struct kd_chan_down_opts d = {.port = port};
	start_down(f, &d);
	assert_true(WAIT(f, kd_chan_up_ready(f->up) && kd_chan_up_pending_ops(f->up) == 0, 5000));
	assert_true(kd_chan_up_epoch(f->up) > e1);
	assert_int_equal(kd_chan_up_stats(f->up)->retransmitted, 2);
	assert_true(kd_chan_up_stats(f->up)->reconnects >= 1);
	assert_int_equal(kd_chan_up_stats(f->up)->connects,
	                 kd_chan_up_stats(f->up)->reconnects + 1);
	/* the process-wide totals by end count the same connections and frames, the freed
	 * downstream's included */
	kd_chan_get_totals(KD_CHAN_END_UP, &up1);
	kd_chan_get_totals(KD_CHAN_END_DOWN, &down1);
	assert_int_equal(up1.connects - up0.connects, kd_chan_up_stats(f->up)->connects);
	assert_int_equal(up1.reconnects - up0.reconnects, kd_chan_up_stats(f->up)->reconnects);
	assert_int_equal(up1.frames_out - up0.frames_out, kd_chan_up_stats(f->up)->frames_out);
	assert_int_equal(up1.frames_in - up0.frames_in, kd_chan_up_stats(f->up)->frames_in);
	assert_true(down1.connects - down0.connects >= 2); /* one per downstream */
	assert_int_equal(down1.reconnects, down0.reconnects);
	assert_true(down1.frames_in - down0.frames_in > kd_chan_down_stats(f->down)->frames_in);
	assert_int_equal(f->ds.applies, 5);
	assert_int_equal(f->ds.dup_applies, 0);
	for (int i = 3; i <= 7; i++) {
		char key[32];
		snprintf(key, sizeof(key), "ns/r-%d", i);
		struct ts_obj *o = ts_map_get(&f->ds.objs, key, false);
		assert_non_null(o);
		assert_int_equal(o->applies, 1);
	}
	assert_int_equal(f->last_acked_id, 7);
}

/* Downstream keep callback that, once, makes the upstream send while its reconcile is in
 * flight (the upstream is between state{} and ready{}). */
static struct fx *g_keep_fx;
static int keep_and_send(void *ud, const char *source, const char *key, struct kd_error **err)
{
	int rc = ts_down_cbs.keep(ud, source, key, err);
	struct fx *f = g_keep_fx;
	if (f && f->up) {
		g_keep_fx = NULL;
		assert_false(kd_chan_up_ready(f->up));
		send_ops(f, "late", 1, 2, true);
	}
	return rc;
}

static void send_while_reconciling_is_delivered(void **state)
{
	struct fx *f = *state;
	struct kd_hs_down_cbs cbs = ts_down_cbs;
	cbs.keep = keep_and_send;
	struct kd_chan_down_opts d = {0};
	kd_autoerr struct kd_error *err = NULL;
	f->down = kd_chan_down_new(f->loop, &d, &cbs, &f->ds, &err);
	assert_non_null(f->down);
	start_up(f, NULL);
	assert_true(WAIT(f, kd_chan_up_ready(f->up), 3000));
	send_ops(f, "early", 1, 3, true);
	assert_true(WAIT(f, kd_chan_up_pending_ops(f->up) == 0, 3000));
	g_keep_fx = f;
	kd_chan_up_kick(f->up); /* the next handshake keeps the 3 objects */
	assert_true(WAIT(f, f->readies == 2, 3000));
	assert_null(g_keep_fx); /* the hook ran */
	assert_true(WAIT(f, kd_chan_up_pending_ops(f->up) == 0, 3000));
	assert_int_equal(ts_down_live(&f->ds), 5);
	assert_int_equal(f->ds.dup_applies, 0);
}

static void reconnect_does_not_reapply_acked_or_reconciled(void **state)
{
	struct fx *f = *state;
	start_down(f, NULL);
	start_up(f, NULL);
	assert_true(WAIT(f, kd_chan_up_ready(f->up), 3000));
	send_ops(f, "k", 1, 4, true);
	assert_true(WAIT(f, kd_chan_up_pending_ops(f->up) == 0, 3000));
	/* unacked but wanted: the reconcile carries them, kd_chan must not send them again */
	kd_chan_down_set_reading(f->down, false);
	send_ops(f, "k", 5, 3, true);
	spin(f, 50);
	kd_chan_up_kick(f->up);
	assert_true(WAIT(f, f->downs == 1, 3000));
	kd_chan_down_set_reading(f->down, true);
	assert_true(WAIT(f, f->readies == 2 && kd_chan_up_pending_ops(f->up) == 0, 5000));
	assert_int_equal(ts_down_live(&f->ds), 7);
	assert_int_equal(f->ds.dup_applies, 0);
	assert_int_equal(f->ds.applies, 7);
	assert_true(f->ds.keeps >= 4); /* 7 when the old connection's deltas were applied */
	assert_int_equal(kd_chan_up_stats(f->up)->retransmitted, 0);
}

static void free_up_cb(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	struct fx *f = arg;
	kd_chan_up_free(f->up);
	f->up = NULL;
	f->readies = 0;
	f->downs = 0;
	kd_loop_timer_free(t);
}

/* Freeing an upstream from inside a loop callback (kd-autoscaler closes a node's channel from
 * its Node informer) cannot run the loop: lws finishes on the loop, no callback of the end runs
 * after the free, the downstream sees the connection closed, and kd_loop_free waits for the
 * rest (valgrind finds no leak). */
static void up_freed_inside_a_callback_finishes_on_the_loop(void **state)
{
	struct fx *f = *state;
	start_down(f, NULL);
	start_up(f, NULL);
	assert_true(WAIT(f, kd_chan_up_ready(f->up), 3000));
	assert_int_equal(kd_chan_down_conns(f->down), 1);
	kd_loop_timer_start(kd_loop_timer_new(f->loop, free_up_cb, f), 0);
	assert_true(WAIT(f, f->up == NULL, 1000));
	assert_true(WAIT(f, kd_chan_down_conns(f->down) == 0, 3000));
	spin(f, 50);
	assert_int_equal(f->readies, 0);
	assert_int_equal(f->downs, 0);
	/* the downstream still serves a new upstream on the same loop */
	start_up(f, NULL);
	assert_true(WAIT(f, kd_chan_up_ready(f->up), 3000));
}

/* A listening address that cannot be bound is an error naming it, never a crash (lws 4.1 on a
 * foreign loop would free the context under a live wsi); nothing is left on the loop. */
static void taken_or_bad_listen_address_is_a_clear_error(void **state)
{
	struct fx *f = *state;
	start_down(f, NULL);
	int port = kd_chan_down_port(f->down);
	struct kd_chan_down_opts o = {.port = port, .bind = "127.0.0.1"};
	kd_autoerr struct kd_error *err = NULL;
	assert_null(kd_chan_down_new(f->loop, &o, &ts_down_cbs, &f->ds, &err));
	char want[96];
	snprintf(want, sizeof(want), "listen 127.0.0.1:%d: Address already in use", port);
	assert_non_null(strstr(kd_error_msg(err), want));
	kd_error_free(err);
	err = NULL;
	o.bind = "not-an-address";
	o.port = 0;
	assert_null(kd_chan_down_new(f->loop, &o, &ts_down_cbs, &f->ds, &err));
	assert_non_null(strstr(kd_error_msg(err), "listen not-an-address:0: not an IPv4 address"));
	kd_error_free(err);
	err = NULL;
	struct lws_protocols protos[] = {{"x", lws_callback_http_dummy, 0, 0, 0, NULL, 0},
	                                 {NULL, NULL, 0, 0, 0, NULL, 0}};
	struct lws_context_creation_info info = {0};
	info.port = port;
	info.iface = "127.0.0.1";
	info.protocols = protos;
	assert_null(kd_chan_lws_new(f->loop, &info, &err));
	assert_non_null(strstr(kd_error_msg(err), want));
	/* the loop still works */
	start_up(f, NULL);
	assert_true(WAIT(f, kd_chan_up_ready(f->up), 3000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(connect_handshake_delta_ack, setup, teardown),
	    cmocka_unit_test_setup_teardown(up_freed_inside_a_callback_finishes_on_the_loop, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(taken_or_bad_listen_address_is_a_clear_error, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(paged_handshake_over_small_frames, setup, teardown),
	    cmocka_unit_test_setup_teardown(send_validates_and_splits_to_the_frame_cap, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(bearer_token_accepted, setup, teardown),
	    cmocka_unit_test_setup_teardown(bearer_token_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(oversize_frame_closes_with_reason, setup, teardown),
	    cmocka_unit_test_setup_teardown(garbage_frame_closes, setup, teardown),
	    cmocka_unit_test_setup_teardown(fragmented_messages_are_reassembled_up_to_the_cap,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(backpressure_signals_and_resumes, setup, teardown),
	    cmocka_unit_test_setup_teardown(keepalive_detects_silent_peer, setup, teardown),
	    cmocka_unit_test_setup_teardown(reconnect_after_server_restart_retransmits, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(reconnect_does_not_reapply_acked_or_reconciled, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(send_while_reconciling_is_delivered, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
