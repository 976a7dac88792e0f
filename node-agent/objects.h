/* node-agent/objects.h: pure builders for the Kubernetes objects kd-node writes as a
 * kubelet-compatible node agent: the Node object and its status, the node Lease in
 * kube-node-lease, and Pod status patches (running, waiting, failed), plus the small helpers they
 * need (Kubernetes time formats, IPv4 CIDR arithmetic, synthetic image/container ids).
 *
 * Everything here is a pure function of its arguments (wall-clock times are passed in), so the
 * unit tests (tests/unit/test_node_objects.c) check exact output. Nothing here talks to the API
 * Server. IPv4 only: pod and node addresses are carved out of IPv4 CIDRs (documented limit). */
#ifndef KD_NODE_OBJECTS_H
#define KD_NODE_OBJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "kd/common.h"
#include "kd/error.h"

/* Namespace of node Leases and their duration (kubelet defaults). */
#define KD_NODE_LEASE_NAMESPACE     "kube-node-lease"
#define KD_NODE_LEASE_DURATION_S    40
#define KD_NODE_KUBELET_PORT        10250
#define KD_NODE_DEFAULT_KUBELET_VER "v1.35.4"
/* Label put on every Node and on nothing else, so tests and humans can select our nodes. */
#define KD_NODE_AGENT_LABEL "kubedirect.dev/node-agent"

/* ---- time -------------------------------------------------------------------------------- */

/* Buffer sizes including the NUL. */
#define KD_NODE_TIME_LEN      sizeof("2006-01-02T15:04:05Z")
#define KD_NODE_MICROTIME_LEN sizeof("2006-01-02T15:04:05.000000Z")

/* metav1.Time (RFC 3339, seconds, UTC): "2006-01-02T15:04:05Z". Writes into buf (at least
 * KD_NODE_TIME_LEN bytes) and returns buf. */
char *kd_node_format_time(uint64_t wall_ns, char *buf);
/* metav1.MicroTime (Lease renewTime): "2006-01-02T15:04:05.000000Z". buf at least
 * KD_NODE_MICROTIME_LEN bytes; returns buf. */
char *kd_node_format_microtime(uint64_t wall_ns, char *buf);
/* Parses either format (fraction of any length or none, "Z" only). 0 and *out_ns, or -EINVAL. */
int kd_node_parse_time(const char *s, uint64_t *out_ns);

/* ---- IPv4 CIDRs ---------------------------------------------------------------------------- */

struct kd_node_cidr {
	uint32_t addr; /* network address, host byte order (host bits cleared) */
	unsigned prefix;
};

/* Parses "10.244.0.0/16". Host bits set in the address are an error (like Kubernetes). 0 or
 * -EINVAL with *err naming the input. */
int kd_node_cidr_parse(const char *s, struct kd_node_cidr *out, struct kd_error **err);
/* The index-th subnet of length sub_prefix inside base ("10.244.0.0/16", 24, 3 -> 10.244.3.0/24).
 * 0, -EINVAL (sub_prefix shorter than base or > 30) or -ERANGE (index beyond the last subnet). */
int kd_node_cidr_subnet(const struct kd_node_cidr *base, unsigned sub_prefix, uint64_t index,
                        struct kd_node_cidr *out, struct kd_error **err);
/* The index-th address of c counting from its network address (index 1 = first host).
 * 0 or -ERANGE when index is the broadcast address or beyond. */
int kd_node_cidr_host(const struct kd_node_cidr *c, uint64_t index, uint32_t *out);
/* "a.b.c.d" into buf (at least 16 bytes); returns buf. */
char *kd_node_ip_format(uint32_t addr, char *buf);
/* "a.b.c.d/p". Returns owned; free(). */
char *kd_node_cidr_format(const struct kd_node_cidr *c);

/* ---- Node -------------------------------------------------------------------------------- */

struct kd_node_params {
	const char *name;              /* required; also kubernetes.io/hostname and Lease holder */
	const char *pod_cidr;          /* "10.244.3.0/24" or NULL (no spec.podCIDR) */
	const char *internal_ip;       /* required: status.addresses InternalIP, pods' hostIP */
	const char *cpu;               /* quantity, e.g. "32" */
	const char *memory;            /* quantity, e.g. "128Gi" */
	const char *ephemeral_storage; /* quantity or NULL ("100Gi") */
	unsigned max_pods;             /* capacity/allocatable "pods" */
	const char *kubelet_version;   /* NULL: KD_NODE_DEFAULT_KUBELET_VER */
	const char *runtime_version;   /* nodeInfo.containerRuntimeVersion, e.g. "kd-sim://0.1" */
	int kubelet_port;              /* daemonEndpoints; 0: KD_NODE_KUBELET_PORT */
	bool ready;                    /* Ready=True/KubeletReady, or False/KubeletNotReady */
	const char *channel_addr; /* direct mode: annotation kubedirect.dev/channel-addr, or NULL */
};

/* A complete v1 Node for POST: metadata (name, labels kubernetes.io/hostname, kubernetes.io/os,
 * kubernetes.io/arch, beta.* equivalents, node.kubernetes.io/instance-type,
 * KD_NODE_AGENT_LABEL=kd-node; the kubelet's two registration annotations), spec (podCIDR,
 * podCIDRs), and the status of kd_node_build_status. Returns owned (json_object_put). */
struct json_object *kd_node_build_node(const struct kd_node_params *p, uint64_t now_wall_ns);
/* Node status: capacity and allocatable (cpu, memory, pods, ephemeral-storage), conditions
 * Ready and MemoryPressure/DiskPressure/PIDPressure=False with kubelet's reasons and messages
 * (lastHeartbeatTime = now, lastTransitionTime = transition_wall_ns or now when 0), addresses
 * InternalIP + Hostname, daemonEndpoints, nodeInfo (kubeletVersion, linux/amd64, ...).
 * Returns owned. */
struct json_object *kd_node_build_status(const struct kd_node_params *p, uint64_t now_wall_ns,
                                         uint64_t transition_wall_ns);
/* Merge patch for PATCH nodes/NAME/status: {"status": kd_node_build_status(...)}.
 * Returns owned. */
struct json_object *kd_node_build_status_patch(const struct kd_node_params *p, uint64_t now_wall_ns,
                                               uint64_t transition_wall_ns);
/* Merge patch for PATCH nodes/NAME (idempotent re-registration): our labels and annotations,
 * and spec.podCIDR(s) only when the existing Node has none (existing may be NULL; a set podCIDR
 * is immutable). Returns owned. */
struct json_object *kd_node_build_meta_patch(const struct kd_node_params *p,
                                             struct json_object *existing);

/* The Node's (borrowed) first status.addresses[] entry of type InternalIP (borrowed), or NULL. */
const char *kd_node_internal_ip(struct json_object *node);
/* Merge patch setting annotation KD_ANNOT_CHANNEL_ADDR to addr on a Node someone else registers
 * (attach mode): {"metadata":{"annotations":{"kubedirect.dev/channel-addr":addr}}}. Owned. */
struct json_object *kd_node_build_channel_patch(const char *addr);
/* JSON patch removing that annotation only while it is still addr: [{"op":"test",...},
 * {"op":"remove",...}] (a failed test is 422: someone else's address, or none). Owned. */
struct json_object *kd_node_build_channel_unpatch(const char *addr);

/* ---- Lease ------------------------------------------------------------------------------- */

/* coordination.k8s.io/v1 Lease "<node>" in kube-node-lease: holderIdentity = node, duration
 * KD_NODE_LEASE_DURATION_S, renewTime = now (MicroTime). node_uid non-NULL adds the owner
 * reference to the Node (as the kubelet does, so deleting the Node deletes its Lease).
 * Returns owned. */
struct json_object *kd_node_build_lease(const char *node, const char *node_uid,
                                        uint64_t now_wall_ns);
/* Merge patch renewing a Lease: {"spec":{"holderIdentity","leaseDurationSeconds","renewTime"}}.
 * Returns owned. */
struct json_object *kd_node_build_lease_renew(const char *node, uint64_t now_wall_ns);

/* ---- Pod status -------------------------------------------------------------------------- */

/* What the agent knows about a pod's sandbox. Strings borrowed. */
struct kd_node_pod_info {
	const char *host_ip;    /* node InternalIP (hostIP, hostIPs) */
	const char *pod_ip;     /* NULL while none is assigned */
	const char *runtime;    /* containerID scheme: "kd-sim" gives "kd-sim://<64 hex>" */
	uint64_t start_wall_ns; /* status.startTime: when the agent accepted the pod */
	uint64_t ready_wall_ns; /* when the sandbox became ready (Ready transition time) */
	unsigned restart_count; /* restartCount of every container */
	const char *reason;     /* waiting/failed: e.g. "ContainerCreating", "RunContainerError" */
	const char *message;    /* waiting/failed: human message, may be NULL */
};

/* Strategic merge patch for PATCH pods/NAME/status making `pod` (borrowed; its spec,
 * metadata.uid and existing status are read) Running and Ready: {"metadata":{"uid"} (a
 * precondition, as the kubelet sends), "status":{phase Running, conditions
 * PodReadyToStartContainers, Initialized, Ready, ContainersReady, PodScheduled all True (the
 * existing PodScheduled transition time kept), hostIP(s), podIP(s), startTime,
 * containerStatuses for every spec container (ready, started, restartCount, state.running,
 * image, imageID, containerID), initContainerStatuses (terminated, Completed) if any}}.
 * status.qosClass is never included (it is immutable). NULL if info has no pod_ip or the pod
 * has no uid. Returns owned. */
struct json_object *kd_node_pod_status_running(struct json_object *pod,
                                               const struct kd_node_pod_info *info,
                                               uint64_t now_wall_ns);
/* Pod accepted, sandbox not ready (or failed and will be retried, per restartPolicy Always /
 * OnFailure): phase Pending (or Running if it already was), Ready/ContainersReady False with
 * reason ContainersNotReady, every container waiting with info->reason (default
 * "ContainerCreating") and info->message, restartCount. Returns owned. */
struct json_object *kd_node_pod_status_waiting(struct json_object *pod,
                                               const struct kd_node_pod_info *info,
                                               uint64_t now_wall_ns);
/* Sandbox failed for good (restartPolicy Never): phase Failed, reason/message at pod level and
 * every container terminated (exitCode 1, reason info->reason or "Error"). Returns owned. */
struct json_object *kd_node_pod_status_failed(struct json_object *pod,
                                              const struct kd_node_pod_info *info,
                                              uint64_t now_wall_ns);

/* True if the pod's restartPolicy is Never. */
bool kd_node_pod_restart_never(struct json_object *pod);
/* True if pod status already says Running + Ready=True with this podIP (nothing to patch). */
bool kd_node_pod_is_running_ready(struct json_object *pod, const char *pod_ip);

/* Synthetic ids: "<runtime>://" + 64 hex digits derived from (pod uid, container name), and
 * "<image>@sha256:" + 64 hex digits derived from the image name (runtime-sim pulls nothing;
 * stable across restarts). Return owned; free(). */
char *kd_node_container_id(const char *runtime, const char *pod_uid, const char *container);
char *kd_node_image_id(const char *image);

#endif /* KD_NODE_OBJECTS_H */
