/* libFuzzer target for kd-autoscaler's AdmissionReview decoder (autoscaler-shim/admission.c,
 * linked in): the bytes are the HTTP body the API Server (or anyone reaching the webhook port)
 * sends. Invariants: no crash, no leak; a failure leaves the output untouched and says why; a
 * success has a uid, and a candidate has a revision and replicas > 0; every success gets a
 * response that parses as JSON and echoes the uid. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "../../autoscaler-shim/admission.h"
#include "kd/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kd_adm_req r;
	memset(&r, 0x5a, sizeof(r));
	struct kd_error *err = NULL;
	if (kd_adm_decode((const char *)data, size, &r, &err) < 0) {
		if (!err || !kd_error_msg(err)[0])
			abort();
		kd_error_free(err);
		const unsigned char *b = (const unsigned char *)&r;
		for (size_t i = 0; i < sizeof(r); i++)
			if (b[i] != 0x5a)
				abort(); /* touched on failure */
		return 0;
	}
	if (!r.uid || !*r.uid || !r.api_version)
		abort();
	if (r.candidate && (!r.revision || r.replicas <= 0))
		abort();
	char *resp = kd_adm_response(&r, r.candidate, r.candidate ? "w" : NULL);
	json_object *o = NULL;
	if (kd_json_parse(resp, strlen(resp), 0, "response", &o, NULL) < 0)
		abort();
	const char *uid = kd_json_get_string(o, "response.uid");
	if (!uid || strcmp(uid, r.uid) != 0)
		abort();
	json_object_put(o);
	free(resp);
	kd_adm_req_fini(&r);
	return 0;
}
