/* bench/delta/jsonc_decode.h: the json-c baseline of the channel decoder, for bench/delta only.
 * Decodes a frame the way kd_msg_decode did before it had its own parser: json-c parses the
 * frame (strict mode, UTF-8 validated, depth 8) into a json_object tree, the tree is walked into
 * the same struct kd_msg (same fields, same type and range checks, the "tmpls" table resolved)
 * and the result goes through kd_msg_validate. Error texts are shorter than the library's. */
#ifndef BENCH_DELTA_JSONC_DECODE_H
#define BENCH_DELTA_JSONC_DECODE_H

#include <stddef.h>

#include "kd/delta.h"

/* As kd_msg_decode: 0 with *out owned (kd_msg_free), or -errno with *err set. */
int bench_jsonc_decode(const char *buf, size_t len, struct kd_msg **out, struct kd_error **err);

/* json-c parse and free only (no walk): 0, or -EINVAL when buf is not one valid JSON text. */
int bench_jsonc_parse_only(const char *buf, size_t len);

#endif /* BENCH_DELTA_JSONC_DECODE_H */
