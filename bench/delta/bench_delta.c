/* bench/delta: throughput of the channel codec. Builds a delta of N upserts shaped like the
 * node stage's bound-pod ops (template reference, name, node, creation time; every 10th with a
 * resource override and a label), then times encode, decode and encode+decode.
 * Usage: delta [ops_per_delta (1000)] [iterations (300)]. Prints ops/s (per CPU second of the
 * benchmark thread) and bytes per op. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kd/delta.h"

/* Thread CPU time: the machine running the benchmarks is shared, so wall-clock time would
 * mostly measure the other tenants. */
static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	long nops = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
	long iters = argc > 2 ? strtol(argv[2], NULL, 10) : 300;
	if (nops < 1 || nops > 10000 || iters < 1 || iters > 100000) {
		fprintf(stderr, "usage: %s [ops 1..10000] [iterations 1..100000]\n", argv[0]);
		return 2;
	}
	struct kd_msg *m = kd_msg_new(KD_MSG_DELTA, 1763920000000065536ULL, 42);
	for (long i = 0; i < nops; i++) {
		char key[64], node[32];
		snprintf(key, sizeof(key), "default/hello-00001-kd-%06ld", i);
		snprintf(node, sizeof(node), "node-%ld", i % 50);
		struct kd_op *op = kd_op_list_push(&m->delta.ops);
		kd_op_init(op, KD_OP_UPSERT, key);
		kd_op_set_tmpl(op, "PodAutoscaler", "hello-00001",
		               "3f2a9c1e-0b7d-4c1e-9a43-1d2e3f4a5b6c", "7f9c8d6b5a");
		kd_op_set_str(&op->node, node);
		op->has |= KD_OP_HAS_CTIME;
		op->ctime_ms = 1763920000123 + i;
		if (i % 10 == 0) {
			op->has |= KD_OP_HAS_CPU | KD_OP_HAS_MEM;
			op->cpu_millis = 500;
			op->mem_bytes = 536870912;
			kd_kv_list_push(&op->labels, "kubedirect.dev/batch", "b1");
		}
	}
	struct kd_error *err = NULL;
	char *buf = NULL;
	size_t len = 0;
	double t_enc = 0, t_dec = 0;
	for (long it = 0; it < iters; it++) {
		double t0 = now_s();
		if (kd_msg_encode(m, 16, NULL, &buf, &len, &err) < 0) {
			fprintf(stderr, "encode: %s\n", kd_error_msg(err));
			return 1;
		}
		double t1 = now_s();
		struct kd_msg *back = NULL;
		if (kd_msg_decode(buf + 16, len, NULL, &back, &err) < 0) {
			fprintf(stderr, "decode: %s\n", kd_error_msg(err));
			return 1;
		}
		double t2 = now_s();
		t_enc += t1 - t0;
		t_dec += t2 - t1;
		if (it == 0 && !kd_msg_equal(m, back)) {
			fprintf(stderr, "round trip mismatch\n");
			return 1;
		}
		kd_msg_free(back);
		free(buf);
	}
	double total = (double)nops * (double)iters;
	printf("delta codec (thread CPU time): %ld ops/delta, %ld deltas, %zu bytes/frame (%.1f "
	       "bytes/op)\n",
	       nops, iters, len, (double)len / (double)nops);
	printf("encode:        %10.0f ops/s  (%.3f ms/delta)\n", total / t_enc,
	       1e3 * t_enc / (double)iters);
	printf("decode:        %10.0f ops/s  (%.3f ms/delta)\n", total / t_dec,
	       1e3 * t_dec / (double)iters);
	printf("encode+decode: %10.0f ops/s  (%.3f ms/delta)\n", total / (t_enc + t_dec),
	       1e3 * (t_enc + t_dec) / (double)iters);
	kd_msg_free(m);
	return 0;
}
