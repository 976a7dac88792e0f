/* libFuzzer target for the kubeconfig parser (libyaml -> json-c -> kd_k8s_config), on
 * in-memory text. Relative file references resolve against a directory that does not exist, so
 * no file is read besides what the input names absolutely (access(2) checks only). */
#include <stddef.h>
#include <stdint.h>

#include "kd/kubeconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kd_k8s_config *cfg = NULL;
	struct kd_error *err = NULL;
	int rc = kd_k8s_config_from_kubeconfig_data((const char *)data, size, "fuzz",
	                                            "/nonexistent-kd-fuzz", NULL, &cfg, &err);
	if (rc == 0) {
		if (!cfg || !cfg->server || !cfg->namespace)
			__builtin_trap();
		kd_k8s_config_free(cfg);
	} else if (!err || !err->msg) {
		__builtin_trap(); /* every failure explains itself */
	}
	kd_error_free(err);
	return 0;
}
