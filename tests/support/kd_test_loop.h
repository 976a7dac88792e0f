/* kd_test_loop.h: running a kd_loop in unit tests until a condition holds or for a while, for
 * tests whose peers (servers, clients) live on the same loop. */
#ifndef KD_TEST_LOOP_H
#define KD_TEST_LOOP_H

#include <stdint.h>

#include "kd/common.h"
#include "kd/loop.h"

static inline uint64_t kd_test_now_ms(void)
{
	return kd_now_ns() / 1000000u;
}

/* Runs loop until cond holds or ms elapse; evaluates to cond. */
#define KD_TEST_WAIT(loop, cond, ms)                                                               \
	({                                                                                         \
		uint64_t end_ = kd_test_now_ms() + (ms);                                           \
		while (!(cond) && kd_test_now_ms() < end_)                                         \
			kd_loop_run_once((loop), 10);                                              \
		(cond);                                                                            \
	})

/* Runs loop for ms milliseconds. */
static inline void kd_test_spin(struct kd_loop *loop, uint64_t ms)
{
	uint64_t end = kd_test_now_ms() + ms;
	while (kd_test_now_ms() < end)
		kd_loop_run_once(loop, 10);
}

#endif /* KD_TEST_LOOP_H */
