/* lib/kd_stage.c: helpers for the data the stage vtables exchange (see kd/stage.h). */
#include "kd/stage.h"

#include <stdio.h>
#include <string.h>

void kd_sandbox_status_set(struct kd_sandbox_status *out, enum kd_sandbox_phase phase,
                           const char *pod_ip, const char *uid, uint64_t created_ms,
                           uint64_t ready_ms)
{
	memset(out, 0, sizeof(*out));
	out->phase = phase;
	if (pod_ip)
		snprintf(out->pod_ip, sizeof(out->pod_ip), "%s", pod_ip);
	if (uid)
		snprintf(out->uid, sizeof(out->uid), "%s", uid);
	out->created_ms = created_ms;
	out->ready_ms = ready_ms;
}
