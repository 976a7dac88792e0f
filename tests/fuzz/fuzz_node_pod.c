/* libFuzzer target for kd-node's handling of Pod objects read from the API Server
 * (kd_sandbox_view of lib/kd_runtimejson.c, and node-agent/objects.c compiled in): the bytes are
 * parsed as JSON and, if that works, turned into a runtime sandbox spec and into the
 * running/waiting/failed status patches, and checked for "already running". The bytes are also
 * fed to the time and CIDR parsers. Nothing may crash or leak; a running patch is only built for
 * an object with a uid; a built spec has exactly the pod's number of containers, a key
 * "ns/name", non-negative limits and complete env and header entries; a refused one says why. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../node-agent/objects.c" /* NOLINT(bugprone-suspicious-include) */
#include "kd/runtimejson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a runtime may rely on in an accepted container: strings where there are entries, limits
 * never negative, a runtime-filled env value empty. */
static void check_container(const struct kd_container_spec *c)
{
	if (c->limits.cpu_milli < 0 || c->limits.memory_bytes < 0)
		abort();
	for (size_t j = 0; j < c->n_env; j++)
		if (!c->env[j].name || !c->env[j].value ||
		    (c->env[j].source != KD_ENV_VALUE && *c->env[j].value))
			abort();
	for (size_t j = 0; j < c->n_args; j++)
		if (!c->args[j])
			abort();
	for (size_t j = 0; j < c->readiness.n_http_headers; j++)
		if (!c->readiness.http_headers[j].name || !c->readiness.http_headers[j].value)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the raw bytes as a string for the small parsers */
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	uint64_t ns = 0;
	(void)kd_node_parse_time(s, &ns);
	struct kd_node_cidr c = {0}, sub = {0};
	struct kd_error *err = NULL;
	if (kd_node_cidr_parse(s, &c, &err) == 0) {
		if (kd_node_cidr_subnet(&c, c.prefix < 24 ? 24 : c.prefix, 1, &sub, NULL) == 0) {
			char *f = kd_node_cidr_format(&sub);
			free(f);
		}
	} else if (!err || !err->msg) {
		abort(); /* a rejection must say why */
	}
	kd_error_free(err);
	free(s);

	struct json_object *pod = NULL;
	if (kd_json_parse((const char *)data, size, 1u << 20, "fuzz", &pod, NULL) < 0)
		return 0;
	struct kd_sandbox_view view;
	struct kd_error *verr = NULL;
	if (kd_sandbox_view_init(&view, pod, "n", "10.244.0.0/24", &verr) == 0) {
		struct json_object *ctrs = kd_json_get_array(pod, "spec.containers");
		if (!ctrs || view.spec.n_containers != json_object_array_length(ctrs) ||
		    !view.spec.key || !strchr(view.spec.key, '/'))
			abort();
		for (size_t i = 0; i < view.spec.n_containers; i++)
			check_container(&view.spec.containers[i]);
		kd_sandbox_view_fini(&view);
	} else if (!verr || !verr->msg || !*verr->msg) {
		abort(); /* a refusal must say why */
	}
	kd_error_free(verr);
	struct kd_node_pod_info info = {
	    .host_ip = "172.31.0.1",
	    .pod_ip = "10.244.0.2",
	    .runtime = "kd-sim",
	    .start_wall_ns = 1700000000ull * 1000000000ull,
	    .ready_wall_ns = 1700000001ull * 1000000000ull,
	    .restart_count = 1,
	    .reason = "Error",
	    .message = "fuzz",
	};
	uint64_t now = 1700000002ull * 1000000000ull;
	struct json_object *p = kd_node_pod_status_running(pod, &info, now);
	const char *uid = kd_json_get_string(pod, "metadata.uid");
	if (p && !(uid && *uid))
		abort();
	json_object_put(p);
	json_object_put(kd_node_pod_status_waiting(pod, &info, now));
	json_object_put(kd_node_pod_status_failed(pod, &info, now));
	(void)kd_node_pod_is_running_ready(pod, "10.244.0.2");
	(void)kd_node_pod_restart_never(pod);
	json_object_put(pod);
	return 0;
}
