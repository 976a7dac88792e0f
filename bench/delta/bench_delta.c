/* bench/delta: throughput of the channel codec, and the strict parser against json-c. For each
 * frame size (ops per delta) it builds a delta of upserts shaped like the node stage's bound-pod
 * ops (template reference, name, node, creation time; every 10th with a resource override and a
 * label), encodes it once, then times, on that same frame:
 *   encode          kd_msg_encode
 *   decode kd       kd_msg_decode (own strict parser + walk + kd_msg_validate)
 *   decode json-c   json-c tokener + the same walk + kd_msg_validate (jsonc_decode.c)
 *   parse kd        kd_jsonstrict_parse + kd_jsonstrict_free only
 *   parse json-c    json_tokener_parse_ex + json_object_put only
 * Both decoders must give back the encoded message (checked once per size).
 * Usage: delta [sizes (1,100,1000)] [ops per sample (200000)] [samples (5)].
 * Prints ops/s and ns/frame per CPU second of the benchmark thread (median of the samples) and
 * the ratio json-c / kd per frame. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonc_decode.h"
#include "kd/delta.h"
#include "kd/jsonstrict.h"

/* Thread CPU time: the machine running the benchmarks is shared, so wall-clock time would
 * mostly measure the other tenants. */
static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct kd_msg *build_delta(long nops)
{
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
	return m;
}

enum which { ENCODE, DEC_KD, DEC_JSONC, PARSE_KD, PARSE_JSONC, NWHICH };
static const char *const which_name[NWHICH] = {"encode", "decode kd", "decode json-c", "parse kd",
                                               "parse json-c"};

static int run_one(enum which w, const struct kd_msg *m, const char *frame, size_t len)
{
	struct kd_error *err = NULL;
	struct kd_msg *back = NULL;
	int rc = 0;
	switch (w) {
	case ENCODE: {
		char *buf = NULL;
		size_t n = 0;
		rc = kd_msg_encode(m, 16, NULL, &buf, &n, &err);
		free(buf);
		break;
	}
	case DEC_KD:
		rc = kd_msg_decode(frame, len, NULL, &back, &err);
		break;
	case DEC_JSONC:
		rc = bench_jsonc_decode(frame, len, &back, &err);
		break;
	case PARSE_KD: {
		struct kd_jsonstrict *doc = NULL;
		rc = kd_jsonstrict_parse(frame, len, 8, "frame", &doc, &err);
		kd_jsonstrict_free(doc);
		break;
	}
	case PARSE_JSONC:
		rc = bench_jsonc_parse_only(frame, len);
		break;
	default:
		break;
	}
	if (rc < 0)
		fprintf(stderr, "%s: %s\n", which_name[w], err ? kd_error_msg(err) : "failed");
	kd_error_free(err);
	kd_msg_free(back);
	return rc;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median seconds per frame of `samples` samples of `iters` frames each. */
static double time_per_frame(enum which w, const struct kd_msg *m, const char *frame, size_t len,
                             long iters, int samples)
{
	double t[32] = {0};
	for (int s = 0; s < samples; s++) {
		double t0 = now_s();
		for (long i = 0; i < iters; i++)
			if (run_one(w, m, frame, len) < 0)
				exit(1);
		t[s] = (now_s() - t0) / (double)iters;
	}
	qsort(t, (size_t)samples, sizeof(t[0]), cmp_double);
	return t[samples / 2];
}

static int check_round_trip(const struct kd_msg *m, const char *frame, size_t len)
{
	struct kd_error *err = NULL;
	struct kd_msg *a = NULL, *b = NULL;
	int ok = kd_msg_decode(frame, len, NULL, &a, &err) == 0 &&
	         bench_jsonc_decode(frame, len, &b, &err) == 0 && kd_msg_equal(m, a) &&
	         kd_msg_equal(m, b);
	if (!ok)
		fprintf(stderr, "round trip mismatch: %s\n", err ? kd_error_msg(err) : "differs");
	kd_error_free(err);
	kd_msg_free(a);
	kd_msg_free(b);
	return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *sizes = argc > 1 ? argv[1] : "1,100,1000";
	long per_sample = argc > 2 ? strtol(argv[2], NULL, 10) : 200000;
	int samples = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 5;
	if (per_sample < 1 || samples < 1 || samples > 32) {
		fprintf(stderr, "usage: %s [sizes 1,100,1000] [ops per sample] [samples 1..32]\n",
		        argv[0]);
		return 2;
	}
	printf("delta codec, thread CPU time, median of %d samples of ~%ld ops each\n\n", samples,
	       per_sample);
	printf("| ops/frame | bytes/frame | path | ns/frame | ops/s | json-c / kd |\n");
	printf("|---:|---:|---|---:|---:|---:|\n");
	kd_autofree char *list = kd_xstrdup(sizes);
	for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		long nops = strtol(tok, NULL, 10);
		if (nops < 1 || nops > 10000) {
			fprintf(stderr, "frame size %s not in 1..10000\n", tok);
			return 2;
		}
		struct kd_msg *m = build_delta(nops);
		struct kd_error *err = NULL;
		char *buf = NULL;
		size_t len = 0;
		if (kd_msg_encode(m, 0, NULL, &buf, &len, &err) < 0) {
			fprintf(stderr, "encode: %s\n", kd_error_msg(err));
			return 1;
		}
		if (check_round_trip(m, buf, len) < 0)
			return 1;
		long iters = per_sample / nops > 0 ? per_sample / nops : 1;
		double t[NWHICH];
		for (int w = 0; w < NWHICH; w++)
			t[w] = time_per_frame((enum which)w, m, buf, len, iters, samples);
		for (int w = 0; w < NWHICH; w++) {
			char ratio[32] = "";
			if (w == DEC_JSONC)
				snprintf(ratio, sizeof(ratio), "%.2f", t[DEC_JSONC] / t[DEC_KD]);
			else if (w == PARSE_JSONC)
				snprintf(ratio, sizeof(ratio), "%.2f",
				         t[PARSE_JSONC] / t[PARSE_KD]);
			printf("| %ld | %zu | %s | %.0f | %.0f | %s |\n", nops, len, which_name[w],
			       t[w] * 1e9, (double)nops / t[w], ratio);
		}
		free(buf);
		kd_msg_free(m);
	}
	return 0;
}
