/* libFuzzer target for kd_msg_decode: arbitrary bytes must never crash or leak, and whatever
 * decodes must survive a round trip: decode -> encode -> decode gives an equal message, and
 * encoding that again gives the identical text (the encoding is canonical). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kd/delta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* small caps so the fuzzer also reaches the limit checks */
	static const struct kd_delta_limits lim = {
	    .max_frame = 64 * 1024, .max_ops = 64, .max_keys = 64};
	struct kd_msg *m = NULL;
	struct kd_error *err = NULL;
	if (kd_msg_decode((const char *)data, size, &lim, &m, &err) < 0) {
		if (!err || !err->msg || !*err->msg)
			abort(); /* every rejection carries a reason */
		kd_error_free(err);
		return 0;
	}
	char *buf = NULL, *buf2 = NULL;
	size_t len = 0, len2 = 0;
	if (kd_msg_encode(m, 0, &lim, &buf, &len, &err) < 0)
		abort(); /* a decoded message is valid, so it must encode */
	struct kd_msg *m2 = NULL;
	if (kd_msg_decode(buf, len, &lim, &m2, &err) < 0)
		abort();
	if (!kd_msg_equal(m, m2))
		abort();
	if (kd_msg_encode(m2, 0, &lim, &buf2, &len2, &err) < 0)
		abort();
	if (len != len2 || memcmp(buf, buf2, len) != 0)
		abort();
	struct kd_msg cp;
	kd_msg_copy(&cp, m2);
	if (!kd_msg_equal(&cp, m))
		abort();
	kd_msg_fini(&cp);
	free(buf);
	free(buf2);
	kd_msg_free(m);
	kd_msg_free(m2);
	return 0;
}
