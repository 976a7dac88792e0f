/* kd/quantity.h: Kubernetes resource quantities (resource.Quantity's text form) as integers,
 * exactly: the one quantity parser of kubedirect (scheduler and runtime inputs, operator input).
 *
 * "100m", "1.5", "2Gi", "1e3", "128974848", "500M" round up to the unit asked for, as
 * resource.Quantity's Value()/MilliValue() do. Negative quantities are refused (no request,
 * limit or allocatable may be negative); so are values beyond int64, unknown suffixes, and more
 * than 20 significant digits before an exponent makes them small. Pure: no I/O, and no
 * allocation but kd_quantity_member's error.
 */
#ifndef KD_QUANTITY_H
#define KD_QUANTITY_H

#include <stdbool.h>
#include <stdint.h>

#include "kd/common.h"
#include "kd/error.h"

struct json_object;

/* Parses a Kubernetes quantity into *out: whole units (bytes, pods) or, with milli, thousandths
 * (cpu millicores), rounded up. 0, -EINVAL (not a quantity, negative, unknown suffix) or
 * -ERANGE (beyond int64). *out is set only on success. */
KD_API int kd_quantity_parse(const char *s, bool milli, int64_t *out);

/* A quantity held in a JSON value (borrowed; e.g. status.allocatable.cpu, a container's
 * resources.limits.memory): a string, parsed as kd_quantity_parse, or a non-negative JSON
 * integer of whole units (times 1000 with milli). 0, -EINVAL (NULL, another JSON type, a
 * negative integer, not a quantity) or -ERANGE (beyond int64). *out is set only on success. */
KD_API int kd_quantity_parse_json(struct json_object *v, bool milli, int64_t *out);

/* The quantity member `res` of map (borrowed: a JSON object of quantities such as
 * status.allocatable or a container's resources.limits; NULL or another JSON type reads as
 * empty), parsed as kd_quantity_parse_json does, into *out. 0 with *out = 0 when the member is
 * absent or null; -EINVAL or -ERANGE with *err naming what, res and the value
 * ("<what>.<res> \"<value>\": not a quantity" or "... out of range"), *out untouched. */
KD_API int kd_quantity_member(struct json_object *map, const char *res, bool milli,
                              const char *what, int64_t *out, struct kd_error **err);

#endif /* KD_QUANTITY_H */
