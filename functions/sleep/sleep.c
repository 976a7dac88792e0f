/* functions/sleep: waits for a requested duration, then answers (trace replay).
 * GET /?ms=N&busy=0|1: N milliseconds (0..600000, default 0), idle (busy=0, default: the worker
 * keeps serving other connections while a timer runs) or busy (busy=1: spins the CPU on a worker
 * thread for N ms of wall time). Answers "slept N ms (idle|busy) in <K_REVISION or hostname>\n".
 * A bad value is 400. HTTP/1.1 on $PORT (default 8080), keep-alive, clean SIGTERM shutdown
 * (see ../fn_httpd.h; $FN_THREADS workers bound the number of concurrent busy waits). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../fn_httpd.h"

#define SLEEP_MAX_MS 600000L

void fn_handle(const struct fn_request *req, struct fn_response *resp)
{
	char v[32];
	long ms = 0;
	bool busy = false;
	if (fn_query_get(req->query, "ms", v, sizeof(v))) {
		char *end;
		ms = strtol(v, &end, 10);
		if (!v[0] || *end || ms < 0 || ms > SLEEP_MAX_MS) {
			resp->status = 400;
			snprintf(resp->body, sizeof(resp->body), "ms must be 0..%ld\n",
			         SLEEP_MAX_MS);
			return;
		}
	}
	if (fn_query_get(req->query, "busy", v, sizeof(v))) {
		if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0) {
			resp->status = 400;
			snprintf(resp->body, sizeof(resp->body), "busy must be 0 or 1\n");
			return;
		}
		busy = v[0] == '1';
	}
	resp->status = 200;
	snprintf(resp->body, sizeof(resp->body), "slept %ld ms (%s) in %s\n", ms,
	         busy ? "busy" : "idle", fn_identity());
	if (busy) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t until = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec +
		                 (uint64_t)ms * 1000000u; /* ns: never shorter than asked */
		volatile uint64_t spin = 0;
		for (;;) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			if ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec >= until)
				break;
			for (int i = 0; i < 10000; i++)
				spin += (uint64_t)i;
		}
	} else {
		resp->delay_ms = (uint64_t)ms;
	}
}

int main(void)
{
	return fn_serve("sleep");
}
