/* kd_test_log.h: kd_log output captured in memory, for unit tests that assert on log lines.
 * One capture at a time per process (kd_log has one stream). */
#ifndef KD_TEST_LOG_H
#define KD_TEST_LOG_H

/* Sends kd_log output to a memory buffer from now on (aborts if none can be made). */
void kd_test_log_capture(void);
/* What was logged so far ("" if nothing); the capture goes on. Borrowed: valid until the next
 * kd_test_log_* call. */
const char *kd_test_log_peek(void);
/* Ends the capture (kd_log back to stderr); returns what was logged, owned by the caller (free),
 * or NULL if nothing was. */
char *kd_test_log_take(void);

#endif
