/* kd/schedjson.h: Kubernetes JSON -> scheduler stage inputs (kd/stage.h): a Node object as struct
 * kd_node_info, a pod spec's effective requests, nodeSelector and tolerations as the fields of
 * struct kd_pod_request. Pure functions, no I/O.
 *
 * Semantics follow Kubernetes:
 *  - Quantities are parsed by kd_quantity_parse (kd/quantity.h).
 *  - A node is ready when its Ready condition has status "True"; schedulable when
 *    spec.unschedulable is not true. Allocatable comes from status.allocatable (a missing
 *    resource is 0: nothing that requests it fits).
 *  - A pod's effective request (what kube-scheduler's NodeResourcesFit counts): per resource,
 *    requests, else limits (the API Server defaults requests from limits); the sum over
 *    containers plus restartable ("sidecar") init containers, or the largest regular init
 *    container plus the sidecars declared before it, whichever is larger; a pod-level request
 *    (spec.resources.requests, PodLevelResources) replaces that per resource; plus
 *    spec.overhead. pods is 1. (k8s.io/component-helpers/resource PodRequests; pod-level
 *    limits without pod-level requests are not defaulted into requests here.)
 */
#ifndef KD_SCHEDJSON_H
#define KD_SCHEDJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kd/common.h"
#include "kd/error.h"
#include "kd/quantity.h" /* kd_quantity_parse, for callers of this header */
#include "kd/stage.h"

struct json_object;

/* A Node as scheduler input. info is ready for kd_scheduler_ops.node_update; its strings are
 * borrowed from the JSON object given to kd_node_view_init (keep that alive), its label and
 * taint arrays are owned by the view. */
struct kd_node_view {
	struct kd_node_info info;
	struct kd_label *labels;
	struct kd_taint *taints;
};

/* Fills *v (caller storage) from a Node object (borrowed; must outlive v). On failure (-EINVAL
 * with *err naming the node and field: no metadata.name, a bad quantity, a taint without key or
 * with an unknown effect) *v is left empty and needs no fini. */
KD_API int kd_node_view_init(struct kd_node_view *v, struct json_object *node,
                             struct kd_error **err);
KD_API void kd_node_view_fini(struct kd_node_view *v);

/* A pod spec as scheduler input. Strings borrowed from the JSON object given to
 * kd_pod_view_init; arrays owned by the view. */
struct kd_pod_view {
	struct kd_resources requests;
	struct kd_label *node_selector;
	size_t n_node_selector;
	struct kd_toleration *tolerations;
	size_t n_tolerations;
};

/* Fills *v (caller storage) from a pod spec (a Pod's or a pod template's `spec`; borrowed, must
 * outlive v). -EINVAL with *err naming the field on bad input (what is the pod's name is up to
 * the caller: wrap the error); then *v is left empty and needs no fini. */
KD_API int kd_pod_view_init(struct kd_pod_view *v, struct json_object *pod_spec,
                            struct kd_error **err);

/* Copies the view into a request (requests, node selector, tolerations; key and revision are
 * the caller's). The request borrows the view's arrays. */
KD_API void kd_pod_view_apply(const struct kd_pod_view *v, struct kd_pod_request *req);

KD_API void kd_pod_view_fini(struct kd_pod_view *v);

#endif /* KD_SCHEDJSON_H */
