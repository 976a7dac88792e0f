/* libFuzzer target for the Kubernetes JSON entry points: kd_json_parse (strict, capped) on API
 * responses, then the path getters and the informer cache key on whatever parsed. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "kd/json.h"
#include "kd/watch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *o = NULL;
	struct kd_error *err = NULL;
	if (kd_json_parse((const char *)data, size, 1u << 20, "fuzz", &o, &err) < 0) {
		if (!err)
			__builtin_trap();
		kd_error_free(err);
		return 0;
	}
	static const char *paths[] = {"metadata.name",
	                              "metadata.resourceVersion",
	                              "items.0.metadata.name",
	                              "metadata.labels.a\\.b/c",
	                              "status.conditions.1.type",
	                              "code",
	                              ""};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		(void)kd_json_get_string(o, paths[i]);
		int64_t v;
		(void)kd_json_get_int64(o, paths[i], &v);
		bool b;
		(void)kd_json_get_bool(o, paths[i], &b);
		(void)kd_json_get_array(o, paths[i]);
	}
	free(kd_informer_key(o));
	free(kd_json_dumps(o));
	json_object_put(o);
	return 0;
}
