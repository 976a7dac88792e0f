/* kd_test_proc.h: child processes for unit tests: a sample function (functions/<name> of the
 * build) serving on 127.0.0.1 at a free port, and a program run to its end with its output
 * captured. Failures to fork or exec abort the test process with a message. */
#ifndef KD_TEST_PROC_H
#define KD_TEST_PROC_H

#include <stdint.h>
#include <sys/types.h>

/* A TCP port of 127.0.0.1 that was free a moment ago (bound, then closed). */
uint16_t kd_test_free_port(void);

/* Starts KD_BUILD_DIR/functions/<name> on 127.0.0.1 (FN_LISTEN) at a free port (*port) with
 * FN_THREADS=threads; returns its pid once it accepts connections (aborts if it does not within
 * 5 s). */
pid_t kd_test_fn_start(const char *name, const char *threads, uint16_t *port);
/* SIGTERM, then SIGKILL after 2 s; reaps it. pid <= 0 is a no-op. */
void kd_test_fn_stop(pid_t pid);

/* Runs argv[0] (a path) with argv (NULL-terminated), stdin /dev/null, stdout and stderr captured
 * into *out and *err (owned strings, free(); either may be NULL to discard it). After timeout_ms
 * the child is killed (SIGKILL). Returns its exit status 0..255, 128 + the signal that ended it,
 * or -1 when it was killed at the timeout. */
int kd_test_run(char *const argv[], unsigned timeout_ms, char **out, char **err);

#endif /* KD_TEST_PROC_H */
