/* libFuzzer target for the streaming watch-event decoder (kd_watch_decoder_feed/finish).
 * The first input byte chooses how the rest is split into feed() calls, so chunk boundaries
 * are fuzzed too; a small event cap exercises the size limit. */
#include <stddef.h>
#include <stdint.h>

#include "kd/watch.h"

static int on_event(const struct kd_watch_event *ev, void *arg)
{
	size_t *n = arg;
	/* Touch what consumers touch. */
	(void)kd_watch_event_type_name(ev->type);
	if (ev->resource_version)
		*n += ev->resource_version[0] != '\0';
	(*n)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (size_t)(data[0] % 64) + 1;
	data++;
	size--;
	struct kd_watch_decoder *d = kd_watch_decoder_new(4096);
	size_t n = 0;
	int rc = 0;
	for (size_t off = 0; off < size && rc == 0; off += step) {
		size_t len = size - off < step ? size - off : step;
		struct kd_error *err = NULL;
		rc = kd_watch_decoder_feed(d, (const char *)data + off, len, on_event, &n, &err);
		if (rc < 0 && !err)
			__builtin_trap(); /* an error must come with a message */
		kd_error_free(err);
	}
	if (rc == 0) {
		struct kd_error *err = NULL;
		(void)kd_watch_decoder_finish(d, &err);
		kd_error_free(err);
	}
	kd_watch_decoder_free(d);
	return 0;
}
