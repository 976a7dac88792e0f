/* kd/json.h: small json-c helpers shared by every libkd module: a cleanup attribute, dotted-path
 * getters ("metadata.name", "items.0.spec") returning borrowed values, and a strict parser with a
 * size cap for bytes that come from the network or from files. */
#ifndef KD_JSON_H
#define KD_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "kd/common.h"
#include "kd/error.h"

/* Default cap for kd_json_parse when max_bytes is 0 (matches the k8s client's response cap). */
#define KD_JSON_DEFAULT_MAX_BYTES (64u * 1024u * 1024u)
/* Nesting depth accepted by kd_json_parse (json-c's default of 32 is too low for some CRDs). */
#define KD_JSON_MAX_DEPTH 128

static inline void kd__json_putp(struct json_object **o)
{
	if (*o)
		json_object_put(*o);
}
/* `kd_autojson struct json_object *o = ...;` drops the reference to o when it leaves scope.
 * Only for references you own (never for borrowed values from the getters below). */
#define kd_autojson __attribute__((cleanup(kd__json_putp)))

/* Path syntax: keys separated by '.', "\." is a literal dot inside a key (for label keys such as
 * "metadata.labels.app\.kubernetes\.io/name"), and a segment made only of digits indexes an array
 * ("items.0.metadata.name"). An empty path returns obj itself.
 *
 * All getters take a borrowed obj (NULL is fine: treated as missing) and return values borrowed
 * from obj: valid while obj is alive and that member is not replaced. json_object_get() to keep. */

/* The value at path of any type, or NULL if missing (a JSON null also reads as NULL). */
KD_API struct json_object *kd_json_get(struct json_object *obj, const char *path);
/* The string at path, or NULL if missing or not a string. Borrowed. */
KD_API const char *kd_json_get_string(struct json_object *obj, const char *path);
/* The object / array at path, or NULL if missing or of another type. Borrowed. */
KD_API struct json_object *kd_json_get_object(struct json_object *obj, const char *path);
KD_API struct json_object *kd_json_get_array(struct json_object *obj, const char *path);
/* Integer at path into *out: 0, -ENOENT if missing, -EINVAL if not an integer (a JSON string of
 * decimal digits is accepted, since Kubernetes quotes some int64 fields). *out set only on 0. */
KD_API int kd_json_get_int64(struct json_object *obj, const char *path, int64_t *out);
/* Boolean at path into *out: 0, -ENOENT, -EINVAL (the strings "true"/"false" are accepted). */
KD_API int kd_json_get_bool(struct json_object *obj, const char *path, bool *out);

/* Parses exactly one JSON value from buf[0..len) (need not be NUL-terminated). Leading and
 * trailing whitespace is allowed; anything else after the value is an error ("trailing garbage
 * at offset N"), as is len > max_bytes (0: KD_JSON_DEFAULT_MAX_BYTES) or nesting deeper than
 * KD_JSON_MAX_DEPTH. `what` names the source for messages ("kubeconfig /x/config", "response").
 * On success *out is set to an owned value (json_object_put); returns 0 or -EINVAL / -EMSGSIZE
 * with *err set. */
KD_API int kd_json_parse(const char *buf, size_t len, size_t max_bytes, const char *what,
                         struct json_object **out, struct kd_error **err);

/* Compact serialisation of obj (borrowed). Returns owned; free(). */
KD_API char *kd_json_dumps(struct json_object *obj);

#endif /* KD_JSON_H */
