/* kd/instance.h: the shared instance model of the direct chain (docs/ARCHITECTURE.md sections 3-4):
 * how a bound instance travels from kd-autoscaler (scheduler stage) to kd-node as a kd_op, how its
 * readiness travels back, and the builder that turns (template Deployment + instance) into the
 * Pod kd-node writes back. Pure functions, no I/O; both kd-autoscaler and kd-node use them.
 *
 * ---- Object model -----------------------------------------------------------------------------
 * - The template is the revision's Deployment (Knative's "<rev>-deployment", kept at replicas 0).
 *   An instance is a Pod named by the workload plugin, in the Deployment's namespace, made from
 *   the Deployment's spec.template, already bound (spec.nodeName), labelled with the template's
 *   labels (serving.knative.dev/revision, .../revisionUID, ...) plus KD_LABEL_MANAGED="true" and
 *   WITHOUT pod-template-hash (no ReplicaSet adopts it), and controller-owned by the
 *   PodAutoscaler (ownerReferences, blockOwnerDeletion) so garbage collection removes it with
 *   the revision.
 * - Template hash: 16 lower-case hex digits, FNV-1a 64 of the compact JSON text of the
 *   Deployment's spec.template as json-c serialises it (kd_instance_template_hash). It does not
 *   change when only replicas or annotations of the Deployment change (metadata.generation would).
 *   A receiver whose copy of the Deployment has another uid or hash must not build the Pod from
 *   it: it waits for its informer to catch up (kd_instance_build_pod returns -ESTALE).
 *
 * ---- Instance channel: kd-autoscaler (upstream) -> kd-node (downstream) ------------------------
 * - Address: each Node served by a kd-node carries the annotation KD_ANNOT_CHANNEL_ADDR =
 *   "host:port" (IPv4 literal, hostname, or "[IPv6]:port") of that kd-node's kd_chan_down server
 *   (path KD_CHAN_PATH_DEFAULT). kd-node publishes it when it registers the Node. kd-autoscaler
 *   opens ONE kd_chan_up per distinct address (a kd-node serving many nodes publishes the same
 *   address on all of them and gets one connection); a Node without the annotation gets no
 *   direct instances (the scheduler plugin is not told about it).
 * - hello.source on that channel = the autoscaler's id (default KD_INSTANCE_SOURCE_DEFAULT). Ops
 *   name their node, so kd-node routes them per node.
 * - upsert (kd_instance_to_op): key "namespace/podname";
 *     tmpl {kind "Deployment", name, uid, hash}   the template reference (all four required)
 *     node                                         the bound node (required)
 *     ctime                                        creation time, unix ms (required)
 *     annotations {KD_ANNOT_OWNER: "<pa name>/<pa uid>"}  the owner PodAutoscaler (required)
 *     cpu / mem                                    only when they differ from the template's
 *                                                  (applied to the first container's requests)
 *   delete: key (+ optional reason): stop the sandbox; if the Pod was written back, kd-node
 *   deletes it too (graceful) unless it was already deleted. Application is idempotent by key.
 * - kd-node's held[] (state message) lists its ephemeral instances of that source (upserts as
 *   above: the handshake compares tmpl uid/hash and node). kd-autoscaler's `persisted(key)` is
 *   true once its Pod informer has seen the Pod (API object wins).
 *
 * ---- Status channel: kd-node (upstream) -> kd-autoscaler (downstream) --------------------------
 * - kd-autoscaler serves a kd_chan_down (default port KD_INSTANCE_STATUS_PORT_DEFAULT); kd-node
 *   is configured with its "host:port" and connects as upstream, hello.source = a stable,
 *   unique name of the kd-node process (e.g. "kd-node:<first node name>").
 * - upsert (kd_instance_status_to_op): key "namespace/podname", node, ready (always present),
 *   ip (once assigned), reason (why not ready: "ContainerCreating", "Failed: ...", or absent),
 *   and the instance's revision as label KD_KNATIVE_LABEL_REVISION (so kd-activator, which
 *   takes the same status stream from kd-node, routes to it before its Pod is written back).
 *   delete: key (+ reason): the instance no longer exists on that node (stopped, failed for good,
 *   deleted).
 * - Handshake convention: kd-autoscaler's held[] for a status source lists every key it holds a
 *   status for from that source as a BARE upsert (key only; kd_instance_status_held_op); kd-node's
 *   wanted[] = a full status upsert of every live instance and its persisted() always returns
 *   false. Since a bare op never has the identity of a full one (node differs), every live status
 *   is resent with fresh values and every status kd-node no longer has is dropped: after each
 *   (re)connect kd-autoscaler holds exactly kd-node's current view.
 *
 * ---- The Pod kd-node writes back (kd_instance_build_pod) ---------------------------------------
 *   apiVersion v1, kind Pod,
 *   metadata: name, namespace; labels = template labels - pod-template-hash + KD_LABEL_MANAGED;
 *     annotations = template annotations + KD_ANNOT_TEMPLATE "<deployment name>/<uid>" +
 *     KD_ANNOT_TEMPLATE_HASH + KD_ANNOT_CTIME (unix ms, decimal) + KD_ANNOT_OWNER;
 *     ownerReferences = [{apiVersion KD_PA_API_VERSION, kind PodAutoscaler, name, uid,
 *     controller true, blockOwnerDeletion true}],
 *   spec = deep copy of spec.template.spec with nodeName = node (and cpu/mem requests of
 *     spec.containers[0] when the instance carries them). No status.
 *   kd_instance_from_pod reads the same fields back (adoption after a restart).
 */
#ifndef KD_INSTANCE_H
#define KD_INSTANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "kd/common.h"
#include "kd/delta.h"
#include "kd/error.h"

/* Knative autoscaler class handled by kd-autoscaler (annotation autoscaling.knative.dev/class). */
#define KD_PA_CLASS            "kd.kubedirect.dev"
#define KD_PA_CLASS_ANNOTATION "autoscaling.knative.dev/class"
#define KD_PA_API_VERSION      "autoscaling.internal.knative.dev/v1alpha1"
#define KD_PA_KIND             "PodAutoscaler"
#define KD_TEMPLATE_KIND       "Deployment"

/* Our labels and annotations. */
#define KD_LABEL_MANAGED           "kubedirect.dev/managed"       /* "true" on every instance Pod */
#define KD_ANNOT_CHANNEL_ADDR      "kubedirect.dev/channel-addr"  /* Node: "host:port" */
#define KD_ANNOT_OWNER             "kubedirect.dev/owner"         /* "<pa name>/<pa uid>" */
#define KD_ANNOT_TEMPLATE          "kubedirect.dev/template"      /* "<deployment>/<uid>" */
#define KD_ANNOT_TEMPLATE_HASH     "kubedirect.dev/template-hash" /* 16 hex digits */
#define KD_ANNOT_CTIME             "kubedirect.dev/ctime"         /* unix ms */
#define KD_ANNOT_REPLICAS          "kubedirect.dev/replicas"      /* Deployment: live count */
#define KD_LABEL_POD_TEMPLATE_HASH "pod-template-hash"

/* Knative labels instances inherit from the template. */
#define KD_KNATIVE_LABEL_REVISION     "serving.knative.dev/revision"
#define KD_KNATIVE_LABEL_REVISION_UID "serving.knative.dev/revisionUID"

/* Defaults of the channel ends. */
#define KD_INSTANCE_NODE_PORT_DEFAULT   9470 /* kd-node's instance channel server */
#define KD_INSTANCE_STATUS_PORT_DEFAULT 9471 /* kd-autoscaler's status channel server */
#define KD_INSTANCE_SOURCE_DEFAULT      "kd-autoscaler"

#define KD_TEMPLATE_HASH_LEN 16

/* One bound instance. All strings owned (kd_instance_fini frees them). */
struct kd_instance_desc {
	char *ns;           /* pod namespace (== template's and owner's namespace) */
	char *name;         /* pod name */
	char *tmpl_name;    /* template Deployment name */
	char *tmpl_uid;     /* template Deployment uid */
	char *tmpl_hash;    /* kd_instance_template_hash of that Deployment */
	char *owner_name;   /* PodAutoscaler name (== revision name) */
	char *owner_uid;    /* PodAutoscaler uid */
	char *node;         /* bound node */
	int64_t ctime_ms;   /* creation time, unix ms (>= 1) */
	int64_t cpu_millis; /* -1: the template's */
	int64_t mem_bytes;  /* -1: the template's */
};

/* Readiness of one instance as kd-node reports it. All strings owned. */
struct kd_instance_status {
	char *ns;
	char *name;
	char *node; /* NULL only in a deletion */
	bool ready;
	char *ip;       /* or NULL */
	char *reason;   /* or NULL */
	char *revision; /* Knative revision of the instance, or NULL (sent as a label) */
	bool gone;      /* a delete op: the instance no longer exists on the node */
};

/* Zeroes d with cpu/mem = -1 (caller storage). */
KD_API void kd_instance_init(struct kd_instance_desc *d);
/* Frees the strings of d and leaves it as kd_instance_init does. */
KD_API void kd_instance_fini(struct kd_instance_desc *d);
/* Deep copy into caller storage dst (overwritten, not freed). */
KD_API void kd_instance_copy(struct kd_instance_desc *dst, const struct kd_instance_desc *src);

/* Checks that every required field is set and valid (names, key, hash format). 0 or -EINVAL. */
KD_API int kd_instance_check(const struct kd_instance_desc *d, struct kd_error **err);

/* "ns/name" of d. Returns owned; free(). */
KD_API char *kd_instance_key(const struct kd_instance_desc *d);

/* Fills caller storage op (any previous content is NOT freed: pass a zeroed or fini'ed op) with
 * the upsert for d as specified above. 0, or -EINVAL (kd_instance_check) with op untouched. */
KD_API int kd_instance_to_op(const struct kd_instance_desc *d, struct kd_op *op,
                             struct kd_error **err);

/* Reads an upsert into caller storage out (initialised by this function). -EINVAL when op is not
 * an upsert or a required field is missing/malformed (message names the key and the field); out
 * is set only on success. */
KD_API int kd_instance_from_op(const struct kd_op *op, struct kd_instance_desc *out,
                               struct kd_error **err);

/* Reads a written-back Pod (borrowed) into out: key, node (spec.nodeName), template and owner
 * (annotations / ownerReferences), ctime (annotation, else 0), cpu/mem -1. -EINVAL when pod is not
 * a managed instance (message says why). out set only on success. */
KD_API int kd_instance_from_pod(json_object *pod, struct kd_instance_desc *out,
                                struct kd_error **err);

/* True if the object carries KD_LABEL_MANAGED="true". */
KD_API bool kd_instance_pod_is_managed(json_object *pod);

/* Template hash of a Deployment (borrowed) into buf (KD_TEMPLATE_HASH_LEN + 1 bytes).
 * 0, or -EINVAL if it has no spec.template object. */
KD_API int kd_instance_template_hash(json_object *deployment, char buf[KD_TEMPLATE_HASH_LEN + 1]);

/* Builds the Pod for d from the template Deployment (borrowed; not modified). *out owned
 * (json_object_put), set only on success. -ESTALE when the Deployment's uid or template hash is
 * not d's (the caller's copy is older or newer: wait for the informer), -EINVAL for an invalid d
 * or a Deployment without spec.template.spec. */
KD_API int kd_instance_build_pod(json_object *deployment, const struct kd_instance_desc *d,
                                 json_object **out, struct kd_error **err);

/* Zeroes st. */
KD_API void kd_instance_status_init(struct kd_instance_status *st);
KD_API void kd_instance_status_fini(struct kd_instance_status *st);

/* Fills caller storage op (zeroed or fini'ed) with the status op: an upsert {key, node, ready, ip,
 * reason} or, when st->gone, a delete {key, reason}. 0 or -EINVAL (bad key, upsert without node,
 * invalid ip) with op untouched. */
KD_API int kd_instance_status_to_op(const struct kd_instance_status *st, struct kd_op *op,
                                    struct kd_error **err);
/* Reads a status op into out (initialised here). Upserts need node and ready; a BARE upsert (the
 * held[] convention above) is -EINVAL. out set only on success. */
KD_API int kd_instance_status_from_op(const struct kd_op *op, struct kd_instance_status *out,
                                      struct kd_error **err);
/* Fills caller storage op (zeroed) with the bare upsert of the status-channel held[] convention. */
KD_API void kd_instance_status_held_op(const char *key, struct kd_op *op);

/* Parses a channel address "host:port" / "[v6]:port" (port 1..65535). 0 with *host owned (free)
 * and *port, or -EINVAL with *err quoting the input. Out-parameters set only on success. */
KD_API int kd_instance_addr_parse(const char *addr, char **host, int *port, struct kd_error **err);

/* Splits "ns/name" into owned *ns and *name (free both). 0 or -EINVAL (kd_key_check). */
KD_API int kd_instance_key_split(const char *key, char **ns, char **name, struct kd_error **err);

#endif /* KD_INSTANCE_H */
