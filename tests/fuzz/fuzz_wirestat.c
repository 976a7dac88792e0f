/* libFuzzer target for kd_wirestat: Knative WireStatMessages (binary) and our JSON stat frames,
 * the bytes kd-autoscaler's stats WebSocket reads from the network. Invariants: no crash or leak;
 * a binary frame that decodes re-encodes to bytes that decode to the same values. The first byte
 * selects the decoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kd/wirestat.h"

static int same(const struct kd_statmsg *a, const struct kd_statmsg *b)
{
	return strcmp(a->ns, b->ns) == 0 && strcmp(a->revision, b->revision) == 0 &&
	       ((!a->pod || !*a->pod) ? (!b->pod || !*b->pod)
	                              : (b->pod && strcmp(a->pod, b->pod) == 0)) &&
	       a->concurrency == b->concurrency && a->requests == b->requests &&
	       a->proxied_concurrency == b->proxied_concurrency &&
	       a->proxied_requests == b->proxied_requests && a->uptime_s == b->uptime_s &&
	       a->timestamp == b->timestamp;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct kd_statmsg_list l = {0};
	struct kd_error *err = NULL;
	if (data[0] & 1) {
		(void)kd_statmsg_decode_json((const char *)data + 1, size - 1, &l, &err);
	} else if (kd_wirestat_decode(data + 1, size - 1, &l, &err) == 0) {
		size_t len = 0;
		uint8_t *enc = kd_wirestat_encode(l.v, l.n, &len);
		struct kd_statmsg_list again = {0};
		if (kd_wirestat_decode(enc, len, &again, NULL) != 0 || again.n != l.n)
			abort();
		for (size_t i = 0; i < l.n; i++)
			if (!same(&l.v[i], &again.v[i]))
				abort();
		kd_statmsg_list_fini(&again);
		free(enc);
	}
	kd_error_free(err);
	kd_statmsg_list_fini(&l);
	return 0;
}
