/* kd_test_log.c: see kd_test_log.h. */
#include "kd_test_log.h"

#include <stdio.h>
#include <stdlib.h>

#include "kd/log.h"

static char *buf;
static size_t len;
static FILE *stream;

void kd_test_log_capture(void)
{
	stream = open_memstream(&buf, &len);
	if (!stream)
		abort();
	kd_log_set_stream(stream);
}

const char *kd_test_log_peek(void)
{
	if (stream)
		fflush(stream);
	return buf ? buf : "";
}

char *kd_test_log_take(void)
{
	kd_log_set_stream(NULL);
	if (stream)
		fclose(stream);
	stream = NULL;
	char *s = buf;
	buf = NULL;
	len = 0;
	return s;
}
