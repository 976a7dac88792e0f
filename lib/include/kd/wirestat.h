/* kd/wirestat.h: the metrics messages kd-autoscaler accepts on its stats WebSocket:
 *  - Knative's binary frames: protobuf metrics.WireStatMessages (knative.dev/serving
 *    pkg/autoscaler/metrics/stat.proto), as the stock activator sends them, hand-decoded
 *    (reference/knative.md 2.3):
 *      WireStatMessages { repeated WireStatMessage messages = 1; }
 *      WireStatMessage  { string namespace = 1; string name = 2; Stat stat = 3; }
 *      Stat { string pod_name = 1; double average_concurrent_requests = 2;
 *             double average_proxied_concurrent_requests = 3; double request_count = 4;
 *             double proxied_request_count = 5; double process_uptime = 6; int64 timestamp = 7; }
 *    Standard proto3 wire format: fields in any order, unknown fields skipped (varint, 64-bit,
 *    length-delimited, 32-bit), a repeated scalar field's last value wins; groups, truncated
 *    fields, over-long varints, strings that are not UTF-8 (checked loosely: no NUL) or longer than
 *    KD_WIRESTAT_MAX_STR are errors. At most KD_WIRESTAT_MAX_MSGS messages per frame.
 *  - our JSON text frames, one object or an array of objects:
 *      {"type":"stat","namespace":"ns","revision":"rev","pod":"p","concurrency":1.5,
 *       "requests":3,"timestamp":1763920000}         (pod, requests, timestamp optional)
 *      {"type":"scale","namespace":"ns","revision":"rev","desired":50}
 *    A "scale" message hands a scale decision straight to the chain (benchmarks, operators).
 * Both decoders read network bytes: they are fuzzed (tests/fuzz/fuzz_wirestat.c). */
#ifndef KD_WIRESTAT_H
#define KD_WIRESTAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kd/common.h"
#include "kd/error.h"

#define KD_WIRESTAT_MAX_MSGS    10000u
#define KD_WIRESTAT_MAX_STR     253u
#define KD_WIRESTAT_MAX_DESIRED 100000

enum kd_statmsg_type {
	KD_STATMSG_STAT = 1,  /* a metrics sample */
	KD_STATMSG_SCALE = 2, /* a direct scale decision (JSON only) */
};

/* One decoded message. Strings owned (kd_statmsg_list_fini frees them). */
struct kd_statmsg {
	enum kd_statmsg_type type;
	char *ns;       /* namespace; "" if absent on the wire */
	char *revision; /* revision (= PodAutoscaler) name; "" if absent */
	bool has_stat;  /* protobuf: the stat field was present (Knative skips entries without) */
	char *pod;      /* reporting pod (activator or queue-proxy), or NULL */
	double concurrency;         /* average_concurrent_requests */
	double proxied_concurrency; /* average_proxied_concurrent_requests */
	double requests; /* request_count over the report period (1 s for the activator) */
	double proxied_requests;
	double uptime_s;
	int64_t timestamp; /* unix seconds, 0 if absent */
	int32_t desired;   /* SCALE: 0..KD_WIRESTAT_MAX_DESIRED */
};

struct kd_statmsg_list {
	struct kd_statmsg *v;
	size_t n, cap;
};

KD_API void kd_statmsg_list_fini(struct kd_statmsg_list *l);

/* Decodes one binary frame of len bytes. Appends to *out (which may already hold messages; on
 * failure nothing is appended). 0 or -EINVAL/-E2BIG with *err saying where ("message 3: stat:
 * field 2: truncated"). */
KD_API int kd_wirestat_decode(const uint8_t *buf, size_t len, struct kd_statmsg_list *out,
                              struct kd_error **err);

/* Encodes n STAT messages as WireStatMessages (zero fields omitted, like proto3). Returns owned
 * bytes (free()) and *len. */
KD_API uint8_t *kd_wirestat_encode(const struct kd_statmsg *msgs, size_t n, size_t *len);

/* Decodes one JSON text frame (len bytes, need not be NUL-terminated; at most 1 MiB). Appends to
 * *out; on failure nothing is appended. 0 or -EINVAL/-E2BIG/-EMSGSIZE with *err. */
KD_API int kd_statmsg_decode_json(const char *buf, size_t len, struct kd_statmsg_list *out,
                                  struct kd_error **err);

#endif /* KD_WIRESTAT_H */
