/* lib/kd_quantity.c: Kubernetes resource quantities, exactly. See kd/quantity.h. */
#include "kd/quantity.h"

#include <errno.h>
#include <json-c/json.h>
#include <string.h>

#define SIG_DIGITS 20 /* < 1e20; times 2^60 (Ei) still fits in 128 bits */

typedef unsigned __int128 u128;

int kd_quantity_parse(const char *s, bool milli, int64_t *out)
{
	if (!s || !*s)
		return -EINVAL;
	const char *p = s;
	if (*p == '+')
		p++;
	else if (*p == '-')
		return -EINVAL;
	u128 m = 0;
	int sig = 0, exp10 = 0, digits = 0;
	bool sticky = false, dot = false; /* sticky: dropped non-zero digits */
	for (;; p++) {
		if (*p == '.' && !dot) {
			dot = true;
			continue;
		}
		if (*p < '0' || *p > '9')
			break;
		digits++;
		int d = *p - '0';
		if (m == 0 && d == 0) {
			if (dot)
				exp10--;
			continue;
		}
		if (sig < SIG_DIGITS) {
			m = m * 10 + (u128)d;
			sig++;
			if (dot)
				exp10--;
		} else if (!dot) {
			exp10++; /* an integer digit beyond the precision: magnitude only */
			sticky = sticky || d;
		} else {
			sticky = sticky || d;
		}
	}
	if (!digits)
		return -EINVAL;
	/* suffix */
	int bin = 0; /* powers of 1024 */
	if (*p && p[1] == 'i' && p[2] == '\0') {
		const char *units = "KMGTPE";
		const char *u = strchr(units, *p);
		if (!u)
			return -EINVAL;
		bin = (int)(u - units) + 1;
		p += 2;
	} else if (*p == 'e' || *p == 'E') {
		if (p[1] == '\0' && *p == 'E') {
			exp10 += 18; /* exa */
			p++;
		} else {
			p++;
			int sign = 1;
			if (*p == '+' || *p == '-')
				sign = *p++ == '-' ? -1 : 1;
			if (*p < '0' || *p > '9')
				return -EINVAL;
			int e = 0;
			for (; *p >= '0' && *p <= '9'; p++) {
				e = e * 10 + (*p - '0');
				if (e > 1000)
					return -ERANGE;
			}
			exp10 += sign * e;
		}
	} else if (*p && p[1] == '\0') {
		switch (*p) {
		case 'n':
			exp10 -= 9;
			break;
		case 'u':
			exp10 -= 6;
			break;
		case 'm':
			exp10 -= 3;
			break;
		case 'k':
			exp10 += 3;
			break;
		case 'M':
			exp10 += 6;
			break;
		case 'G':
			exp10 += 9;
			break;
		case 'T':
			exp10 += 12;
			break;
		case 'P':
			exp10 += 15;
			break;
		default:
			return -EINVAL;
		}
		p++;
	}
	if (*p)
		return -EINVAL;
	if (milli)
		exp10 += 3;
	for (int i = 0; i < bin; i++)
		m *= 1024; /* m < 1e20, times at most 2^60: < 2^127 */
	if (m == 0) {
		*out = sticky ? 1 : 0;
		return 0;
	}
	if (exp10 >= 0) {
		for (int i = 0; i < exp10; i++) {
			m *= 10;
			if (m > (u128)INT64_MAX)
				return -ERANGE;
		}
		if (sticky)
			m++;
	} else {
		bool rem = sticky;
		for (int i = 0; i < -exp10 && m; i++) {
			rem = rem || m % 10;
			m /= 10;
		}
		if (rem)
			m++; /* round up, as Kubernetes does */
	}
	if (m > (u128)INT64_MAX)
		return -ERANGE;
	*out = (int64_t)m;
	return 0;
}

int kd_quantity_parse_json(struct json_object *v, bool milli, int64_t *out)
{
	if (json_object_is_type(v, json_type_string))
		return kd_quantity_parse(json_object_get_string(v), milli, out);
	if (!v || !json_object_is_type(v, json_type_int))
		return -EINVAL;
	int64_t q = json_object_get_int64(v);
	if (q < 0)
		return -EINVAL;
	if (milli) {
		if (q > INT64_MAX / 1000)
			return -ERANGE;
		q *= 1000;
	}
	*out = q;
	return 0;
}

int kd_quantity_member(struct json_object *map, const char *res, bool milli, const char *what,
                       int64_t *out, struct kd_error **err)
{
	struct json_object *v = NULL;
	if (!map || !json_object_is_type(map, json_type_object) ||
	    !json_object_object_get_ex(map, res, &v) || !v) {
		*out = 0;
		return 0;
	}
	int rc = kd_quantity_parse_json(v, milli, out);
	if (rc < 0) {
		const char *s =
		    json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
		return kd_error_set(err, -rc, 0, "%s.%s \"%s\": %s", what, res,
		                    s ? s : json_object_to_json_string(v),
		                    rc == -ERANGE ? "out of range" : "not a quantity");
	}
	return 0;
}
