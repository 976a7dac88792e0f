/* libFuzzer target for the bytes kd_http reads itself (lib/kd_http_priv.h): upstream response
 * header lines as curl hands them over, Content-Length values, and Connection header tokens
 * naming hop-by-hop headers. Invariants: no crash, no read outside the input; a parsed line's
 * name and value lie inside it, the name has no colon, the value has no surrounding blanks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/kd_http_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	struct kd_http_hline h;
	int kind = kd_http_hline_parse(line, size, &h);
	if (kind == 1) {
		if (h.name < line || h.name + h.name_len > line + size || h.value < line ||
		    h.value + h.value_len > line + size || h.name_len == 0 ||
		    memchr(h.name, ':', h.name_len))
			abort();
		if (h.value_len && (h.value[0] == ' ' || h.value[h.value_len - 1] == ' '))
			abort();
		long long cl;
		if (kd_http_content_length(h.value, h.value_len, &cl) == 0 && cl < 0)
			abort();
		/* the line itself as a Connection header value, NUL-terminated */
		char *conn = malloc(size + 1);
		memcpy(conn, data, size);
		conn[size] = '\0';
		(void)kd_http_hop_by_hop(h.name, h.name_len, conn);
		free(conn);
	}
	return 0;
}
