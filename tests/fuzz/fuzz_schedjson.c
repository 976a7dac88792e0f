/* libFuzzer target for kd_schedjson: the bytes are a Kubernetes quantity (both units) and, when
 * they parse as JSON, a Node object and a pod spec (the document itself and its "spec"). Nothing
 * may crash or leak; every rejection carries a message; accepted values are never negative, and a
 * quantity's milli value agrees with its plain value (ceil(1000 x) vs ceil(x)). */
#include <errno.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd/error.h"
#include "kd/json.h"
#include "kd/schedjson.h"

static void check_err(int rc, struct kd_error *err)
{
	if (rc < 0 && (!err || !err->msg || !*err->msg))
		abort();
	if (rc == 0 && err)
		abort();
	kd_error_free(err);
}

static void check_res(const struct kd_resources *r)
{
	if (r->cpu_milli < 0 || r->memory_bytes < 0 || r->pods < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	int64_t plain = -1, milli = -1;
	int rp = kd_quantity_parse(s, false, &plain);
	int rm = kd_quantity_parse(s, true, &milli);
	if ((rp == 0 && plain < 0) || (rm == 0 && milli < 0))
		abort();
	if (rp < 0 && rp != -EINVAL && rp != -ERANGE)
		abort();
	/* a valid quantity is valid in both units (only the range may differ) */
	if ((rp == -EINVAL) != (rm == -EINVAL))
		abort();
	if (rp == 0 && rm == 0 && plain < INT64_MAX / 1000 &&
	    (milli > plain * 1000 || (plain > 0 && milli <= (plain - 1) * 1000)))
		abort();

	struct json_object *o = NULL;
	struct kd_error *err = NULL;
	if (kd_json_parse(s, size, 0, "fuzz", &o, &err) == 0) {
		struct kd_node_view nv;
		int rc = kd_node_view_init(&nv, o, &err);
		check_err(rc, err);
		err = NULL;
		if (rc == 0) {
			check_res(&nv.info.allocatable);
			if (!nv.info.name || (nv.info.n_taints && !nv.info.taints))
				abort();
			kd_node_view_fini(&nv);
		}
		struct json_object *specs[2] = {o, kd_json_get(o, "spec")};
		for (int i = 0; i < 2; i++) {
			struct kd_pod_view pv;
			rc = kd_pod_view_init(&pv, specs[i], &err);
			check_err(rc, err);
			err = NULL;
			if (rc == 0) {
				check_res(&pv.requests);
				if (pv.requests.pods != 1)
					abort();
				kd_pod_view_fini(&pv);
			}
		}
		json_object_put(o);
	} else {
		kd_error_free(err);
	}
	free(s);
	return 0;
}
