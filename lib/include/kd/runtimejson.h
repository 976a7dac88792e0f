/* kd/runtimejson.h: Kubernetes JSON -> runtime stage inputs (kd/stage.h): a Pod object as the
 * struct kd_sandbox_spec a runtime plugin's start() takes. Pure functions, no I/O. The same
 * objects as scheduler inputs: kd/schedjson.h.
 *
 * What is read: spec.restartPolicy, and from spec.containers[] in order (init containers are not
 * run): name, image, command, args, env (below), ports (name, containerPort, protocol), the
 * readiness probe (httpGet path, port and httpHeaders, tcpSocket port, exec command, the delays
 * in seconds and the thresholds) and resources.limits cpu and memory. A probe port is an integer
 * or the name of one of that container's ports. Limits are Kubernetes quantities
 * (kd_quantity_member, kd/quantity.h): one that is not, or a resources or resources.limits that
 * is not an object, refuses the Pod; it never reads as "no limit".
 *
 * Env: name and value, in order (the runtime lets a later duplicate win). The downward API's
 * valueFrom.fieldRef.fieldPath is resolved from the Pod for metadata.name, metadata.namespace,
 * metadata.uid, metadata.labels['<key>'], metadata.annotations['<key>'] (a missing key: ""),
 * spec.nodeName and spec.serviceAccountName; status.podIP(s) and status.hostIP(s) become
 * KD_ENV_POD_IP and KD_ENV_HOST_IP, which the runtime fills.
 *
 * Unsupported or unusable parts are skipped, not refused (the runtimes here do not need them):
 * volumes, requests, limits of other resources than cpu and memory, and everything else not
 * listed; an env entry or probe header without a name; other valueFrom sources (secrets, config
 * maps, resourceFieldRef, other field paths: the variable keeps its value, normally empty); a
 * non-string entry of command, args or an exec probe; a port outside 1..65535 or without
 * containerPort; a probe port that names no port of the container (port 0); probe delays outside
 * 1..86400 s and thresholds outside 1..999 (0: Kubernetes' default); a restartPolicy other than
 * Never and OnFailure (Always).
 */
#ifndef KD_RUNTIMEJSON_H
#define KD_RUNTIMEJSON_H

#include <stddef.h>

#include "kd/common.h"
#include "kd/error.h"
#include "kd/stage.h"

struct json_object;

/* A Pod as runtime input. spec is ready for kd_runtime_ops.start. Its strings are borrowed from
 * the Pod given to kd_sandbox_view_init (keep that alive while spec is used), from `node` and
 * `pod_cidr` as given, or from the view (key); every array behind spec (containers, command,
 * args, env, ports, exec command, probe headers) is owned by the view. The other members are the
 * view's own. A runtime copies what it keeps (kd/stage.h), so the view may be finished right
 * after start(). */
struct kd_sandbox_view {
	struct kd_sandbox_spec spec;
	char *key; /* "ns/name" */
	struct kd_container_spec *containers;
	void **allocs; /* the per-container arrays, freed together */
	size_t n_allocs;
};

/* Fills *v (caller storage) from a Pod object (borrowed; must outlive v), for a sandbox on
 * `node` with its pod CIDR (both borrowed, pod_cidr may be NULL: the runtime's default).
 * spec.key is "ns/name"; uid is metadata.uid (NULL if none); pod_ip is status.podIP when the
 * Pod already has one (adoption: a runtime re-registers that address), else NULL; spec.pod is
 * the Pod. 0, or on bad input -EINVAL (-ERANGE: a limit beyond int64) with *err: a Pod without
 * metadata.namespace/name ("pod without metadata.namespace/name"), without containers
 * ("pod ns/p: no containers"), with a limit that is not a quantity
 * ("pod ns/p: container c: resources.limits.memory \"12Q\": not a quantity"; a container
 * without a name is "containers[i]") or resources that are not an object; then *v is left empty
 * and needs no fini. */
KD_API int kd_sandbox_view_init(struct kd_sandbox_view *v, struct json_object *pod,
                                const char *node, const char *pod_cidr, struct kd_error **err);

/* Frees what the view owns and empties it (NULL or an empty view: nothing). */
KD_API void kd_sandbox_view_fini(struct kd_sandbox_view *v);

#endif /* KD_RUNTIMEJSON_H */
