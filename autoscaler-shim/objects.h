/* autoscaler-shim/objects.h: pure builders for the Kubernetes objects kd-autoscaler writes for a
 * PodAutoscaler of its class: the revision's public Service and Endpoints and private Service
 * (shaped as Knative's SKS reconciler makes them: pkg/reconciler/serverlessservice/resources/
 * services.go), the PodAutoscaler status (conditions with the semantics of Knative's
 * pa_lifecycle.go and kpa.go computeActiveCondition) and Events. No I/O; wall-clock times are
 * passed in, so tests check exact output. */
#ifndef KD_AS_OBJECTS_H
#define KD_AS_OBJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "kd/common.h"
#include "kd/error.h"

#define KD_AS_LABEL_SKS          "networking.internal.knative.dev/serverlessservice"
#define KD_AS_LABEL_SERVICE_TYPE "networking.internal.knative.dev/serviceType"
#define KD_AS_ANNOT_METRIC       "autoscaling.knative.dev/metric"
#define KD_AS_TIME_LEN           sizeof("2006-01-02T15:04:05Z")

/* metav1.Time of wall_ns into buf (KD_AS_TIME_LEN bytes); returns buf. */
char *kd_as_format_time(uint64_t wall_ns, char *buf);

/* Controller owner reference to the PodAutoscaler pa (borrowed). Returns owned. */
json_object *kd_as_owner_ref(json_object *pa);

/* Public Service "<pa name>" (no selector): labels = PA labels + SKS label + serviceType Public,
 * annotations = the PA's metric annotation if any, ports http(2) 80 -> 8012 (h2c: 8013) and
 * https 443 -> 8112. Returns owned. */
json_object *kd_as_build_public_service(json_object *pa);
/* Private Service "<pa name>-private" selecting `selector` (borrowed object, e.g. the template
 * Deployment's spec.selector.matchLabels), serviceType Private, Knative's five ports.
 * Returns owned. */
json_object *kd_as_build_private_service(json_object *pa, json_object *selector);
/* Public Endpoints "<pa name>" (Serve mode): one subset with the given IPs (sorted, duplicates
 * removed; borrowed strings) and ports http(2) 8012/8013 and https 8112; no subsets when n is 0.
 * Returns owned. */
json_object *kd_as_build_endpoints(json_object *pa, const char *const *ips, size_t n);

/* One PodAutoscaler condition. Strings borrowed. */
struct kd_as_cond {
	const char *status;  /* "True", "False", "Unknown" */
	const char *reason;  /* or NULL */
	const char *message; /* or NULL */
};

struct kd_as_status {
	int64_t observed_generation;
	const char *service_name;
	const char *metrics_service_name;
	int32_t desired; /* < 0: omitted (unknown) */
	int32_t actual;  /* < 0: omitted */
	struct kd_as_cond active, initialized, sks_ready;
};

/* Merge patch {"status":{...}} for PATCH podautoscalers/NAME/status: observedGeneration,
 * serviceName, metricsServiceName, desiredScale, actualScale, and conditions Active,
 * ScaleTargetInitialized, SKSReady and Ready (Ready = all True -> True; else the first False
 * one's status/reason/message; else the first Unknown one's), each with lastTransitionTime kept
 * from prev_pa's condition of that type when its status did not change, else now. prev_pa
 * (borrowed) may be NULL. Returns owned. */
json_object *kd_as_build_status(const struct kd_as_status *st, json_object *prev_pa,
                                uint64_t now_wall_ns);

/* An Event about obj (borrowed: its apiVersion/kind/namespace/name/uid), type "Normal" or
 * "Warning", from component kd-autoscaler. Name "<obj name>.<hex of now>". Returns owned. */
json_object *kd_as_build_event(json_object *obj, const char *type, const char *reason,
                               const char *message, uint64_t now_wall_ns);

#endif /* KD_AS_OBJECTS_H */
