/* node-agent/objects.c: pure builders for Node, Lease and Pod status objects (see objects.h). */
#include "objects.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kd/hash.h"
#include "kd/json.h"

/* ---- small json helpers ------------------------------------------------------------------- */

static void add_str(struct json_object *o, const char *key, const char *val)
{
	json_object_object_add(o, key, json_object_new_string(val ? val : ""));
}

static void add_int(struct json_object *o, const char *key, int64_t val)
{
	json_object_object_add(o, key, json_object_new_int64(val));
}

static void add_bool(struct json_object *o, const char *key, bool val)
{
	json_object_object_add(o, key, json_object_new_boolean(val));
}

static void add_time(struct json_object *o, const char *key, uint64_t wall_ns)
{
	char buf[KD_NODE_TIME_LEN];
	add_str(o, key, kd_node_format_time(wall_ns, buf));
}

static struct json_object *add_obj(struct json_object *o, const char *key)
{
	struct json_object *c = json_object_new_object();
	json_object_object_add(o, key, c);
	return c;
}

static struct json_object *add_arr(struct json_object *o, const char *key)
{
	struct json_object *c = json_object_new_array();
	json_object_object_add(o, key, c);
	return c;
}

/* ---- time --------------------------------------------------------------------------------- */

static void split_time(uint64_t wall_ns, struct tm *tm, unsigned *usec)
{
	time_t secs = (time_t)(wall_ns / 1000000000ull);
	*usec = (unsigned)((wall_ns % 1000000000ull) / 1000ull);
	gmtime_r(&secs, tm);
}

char *kd_node_format_time(uint64_t wall_ns, char *buf)
{
	struct tm tm;
	unsigned usec;
	split_time(wall_ns, &tm, &usec);
	strftime(buf, KD_NODE_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

char *kd_node_format_microtime(uint64_t wall_ns, char *buf)
{
	struct tm tm;
	unsigned usec;
	char base[KD_NODE_TIME_LEN];
	split_time(wall_ns, &tm, &usec);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, KD_NODE_MICROTIME_LEN, "%.19s.%06uZ", base, usec);
	return buf;
}

int kd_node_parse_time(const char *s, uint64_t *out_ns)
{
	struct tm tm = {0};
	if (!s)
		return -EINVAL;
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -EINVAL;
	uint64_t frac_ns = 0;
	if (*p == '.') {
		p++;
		unsigned digits = 0;
		uint64_t scale = 100000000ull;
		while (*p >= '0' && *p <= '9') {
			if (digits < 9) {
				frac_ns += (uint64_t)(*p - '0') * scale;
				scale /= 10;
			}
			digits++;
			p++;
		}
		if (digits == 0)
			return -EINVAL;
	}
	if (strcmp(p, "Z") != 0)
		return -EINVAL;
	time_t secs = timegm(&tm);
	if (secs < 0)
		return -EINVAL;
	*out_ns = (uint64_t)secs * 1000000000ull + frac_ns;
	return 0;
}

/* ---- CIDRs -------------------------------------------------------------------------------- */

static int parse_ipv4(const char *s, size_t len, uint32_t *out)
{
	uint32_t addr = 0;
	unsigned octets = 0;
	size_t i = 0;
	while (octets < 4) {
		unsigned v = 0, nd = 0;
		while (i < len && s[i] >= '0' && s[i] <= '9' && nd < 4) {
			v = v * 10 + (unsigned)(s[i] - '0');
			i++;
			nd++;
		}
		if (nd == 0 || nd > 3 || v > 255)
			return -EINVAL;
		addr = (addr << 8) | v;
		octets++;
		if (octets < 4) {
			if (i >= len || s[i] != '.')
				return -EINVAL;
			i++;
		}
	}
	if (i != len)
		return -EINVAL;
	*out = addr;
	return 0;
}

static uint32_t prefix_mask(unsigned prefix)
{
	return prefix == 0 ? 0 : (uint32_t)(0xffffffffu << (32 - prefix));
}

int kd_node_cidr_parse(const char *s, struct kd_node_cidr *out, struct kd_error **err)
{
	if (!s)
		return kd_error_set(err, EINVAL, 0, "CIDR: missing");
	const char *slash = strchr(s, '/');
	if (!slash)
		return kd_error_set(err, EINVAL, 0, "CIDR \"%s\": missing /prefix", s);
	uint32_t addr;
	if (parse_ipv4(s, (size_t)(slash - s), &addr) < 0)
		return kd_error_set(err, EINVAL, 0, "CIDR \"%s\": not an IPv4 address", s);
	char *end = NULL;
	errno = 0;
	unsigned long prefix = strtoul(slash + 1, &end, 10);
	if (errno || end == slash + 1 || *end || prefix > 32)
		return kd_error_set(err, EINVAL, 0, "CIDR \"%s\": prefix must be 0..32", s);
	if (addr & ~prefix_mask((unsigned)prefix))
		return kd_error_set(err, EINVAL, 0,
		                    "CIDR \"%s\": host bits set (network is %u.%u.%u.%u)", s,
		                    (addr & prefix_mask((unsigned)prefix)) >> 24,
		                    ((addr & prefix_mask((unsigned)prefix)) >> 16) & 0xff,
		                    ((addr & prefix_mask((unsigned)prefix)) >> 8) & 0xff,
		                    addr & prefix_mask((unsigned)prefix) & 0xff);
	out->addr = addr;
	out->prefix = (unsigned)prefix;
	return 0;
}

int kd_node_cidr_subnet(const struct kd_node_cidr *base, unsigned sub_prefix, uint64_t index,
                        struct kd_node_cidr *out, struct kd_error **err)
{
	if (sub_prefix < base->prefix || sub_prefix > 30)
		return kd_error_set(err, EINVAL, 0,
		                    "cannot split a /%u into /%u subnets (need /%u..30)",
		                    base->prefix, sub_prefix, base->prefix);
	uint64_t count = 1ull << (sub_prefix - base->prefix);
	if (index >= count)
		return kd_error_set(err, ERANGE, 0,
		                    "subnet %" PRIu64 " of a /%u split into /%u: only %" PRIu64
		                    " subnets",
		                    index, base->prefix, sub_prefix, count);
	out->addr = base->addr + (uint32_t)(index << (32 - sub_prefix));
	out->prefix = sub_prefix;
	return 0;
}

int kd_node_cidr_host(const struct kd_node_cidr *c, uint64_t index, uint32_t *out)
{
	uint64_t size = 1ull << (32 - c->prefix);
	if (index == 0 || index + 1 >= size)
		return -ERANGE;
	*out = c->addr + (uint32_t)index;
	return 0;
}

char *kd_node_ip_format(uint32_t addr, char *buf)
{
	snprintf(buf, 16, "%u.%u.%u.%u", addr >> 24, (addr >> 16) & 0xff, (addr >> 8) & 0xff,
	         addr & 0xff);
	return buf;
}

char *kd_node_cidr_format(const struct kd_node_cidr *c)
{
	char ip[16];
	return kd_xasprintf("%s/%u", kd_node_ip_format(c->addr, ip), c->prefix);
}

/* ---- synthetic ids -------------------------------------------------------------------------- */

/* kd_hash_str, treating NULL as "" (the ids of a pod without uid or image stay defined). */
static uint64_t hash_str(uint64_t h, const char *s)
{
	return s ? kd_hash_str(h, s) : h;
}

/* 64 hex digits from four seeded FNV-1a passes over a and b. Not cryptographic: only needs to
 * be stable and distinct. The values are persisted (containerID/imageID of Pod statuses), so the
 * seeds and the separator must never change (tests/unit/test_node_objects.c pins them). out holds
 * 65 bytes. */
static void hex64(const char *a, const char *b, char *out)
{
	for (unsigned i = 0; i < 4; i++) {
		uint64_t h = KD_HASH_INIT ^ (0x9e3779b97f4a7c15ull * (i + 1));
		h = hash_str(h, a);
		h = hash_str(h, "\x1f");
		h = hash_str(h, b);
		snprintf(out + 16 * i, 17, "%016" PRIx64, h);
	}
}

char *kd_node_container_id(const char *runtime, const char *pod_uid, const char *container)
{
	char hex[65];
	hex64(pod_uid, container, hex);
	return kd_xasprintf("%s://%s", runtime ? runtime : "kd", hex);
}

char *kd_node_image_id(const char *image)
{
	char hex[65];
	hex64("image", image, hex);
	const char *at = image ? strchr(image, '@') : NULL;
	if (at) /* already pinned by digest */
		return kd_xstrdup(image);
	return kd_xasprintf("%s@sha256:%s", image ? image : "", hex);
}

/* ---- Node --------------------------------------------------------------------------------- */

static const char *or_default(const char *s, const char *def)
{
	return s && *s ? s : def;
}

static void add_node_labels(struct json_object *labels, const struct kd_node_params *p)
{
	add_str(labels, "kubernetes.io/hostname", p->name);
	add_str(labels, "kubernetes.io/os", "linux");
	add_str(labels, "kubernetes.io/arch", "amd64");
	add_str(labels, "beta.kubernetes.io/os", "linux");
	add_str(labels, "beta.kubernetes.io/arch", "amd64");
	add_str(labels, "node.kubernetes.io/instance-type", "kd-node");
	add_str(labels, KD_NODE_AGENT_LABEL, "kd-node");
}

static void add_node_annotations(struct json_object *ann, const struct kd_node_params *p)
{
	add_str(ann, "node.alpha.kubernetes.io/ttl", "0");
	add_str(ann, "volumes.kubernetes.io/controller-managed-attach-detach", "true");
	if (p->channel_addr) /* kd/instance.h: KD_ANNOT_CHANNEL_ADDR */
		add_str(ann, "kubedirect.dev/channel-addr", p->channel_addr);
}

static void add_resources(struct json_object *o, const struct kd_node_params *p)
{
	char pods[24];
	snprintf(pods, sizeof(pods), "%u", p->max_pods);
	add_str(o, "cpu", or_default(p->cpu, "32"));
	add_str(o, "memory", or_default(p->memory, "128Gi"));
	add_str(o, "ephemeral-storage", or_default(p->ephemeral_storage, "100Gi"));
	add_str(o, "pods", pods);
}

static void add_condition(struct json_object *arr, const char *type, const char *status,
                          const char *reason, const char *message, uint64_t heartbeat_ns,
                          uint64_t transition_ns)
{
	struct json_object *c = json_object_new_object();
	add_str(c, "type", type);
	add_str(c, "status", status);
	add_time(c, "lastHeartbeatTime", heartbeat_ns);
	add_time(c, "lastTransitionTime", transition_ns);
	add_str(c, "reason", reason);
	add_str(c, "message", message);
	json_object_array_add(arr, c);
}

struct json_object *kd_node_build_status(const struct kd_node_params *p, uint64_t now_wall_ns,
                                         uint64_t transition_wall_ns)
{
	uint64_t tt = transition_wall_ns ? transition_wall_ns : now_wall_ns;
	struct json_object *st = json_object_new_object();
	add_resources(add_obj(st, "capacity"), p);
	add_resources(add_obj(st, "allocatable"), p);

	struct json_object *conds = add_arr(st, "conditions");
	add_condition(conds, "MemoryPressure", "False", "KubeletHasSufficientMemory",
	              "kubelet has sufficient memory available", now_wall_ns, tt);
	add_condition(conds, "DiskPressure", "False", "KubeletHasNoDiskPressure",
	              "kubelet has no disk pressure", now_wall_ns, tt);
	add_condition(conds, "PIDPressure", "False", "KubeletHasSufficientPID",
	              "kubelet has sufficient PID available", now_wall_ns, tt);
	if (p->ready)
		add_condition(conds, "Ready", "True", "KubeletReady",
		              "kubelet is posting ready status", now_wall_ns, tt);
	else
		add_condition(conds, "Ready", "False", "KubeletNotReady",
		              "container runtime is not ready", now_wall_ns, tt);

	struct json_object *addrs = add_arr(st, "addresses");
	struct json_object *a = json_object_new_object();
	add_str(a, "type", "InternalIP");
	add_str(a, "address", p->internal_ip);
	json_object_array_add(addrs, a);
	a = json_object_new_object();
	add_str(a, "type", "Hostname");
	add_str(a, "address", p->name);
	json_object_array_add(addrs, a);

	struct json_object *de = add_obj(add_obj(st, "daemonEndpoints"), "kubeletEndpoint");
	add_int(de, "Port", p->kubelet_port ? p->kubelet_port : KD_NODE_KUBELET_PORT);

	char id[65];
	hex64("node", p->name, id);
	struct json_object *ni = add_obj(st, "nodeInfo");
	char machine[33];
	snprintf(machine, sizeof(machine), "%.32s", id);
	add_str(ni, "machineID", machine);
	char uuid[37];
	snprintf(uuid, sizeof(uuid), "%.8s-%.4s-%.4s-%.4s-%.12s", id + 32, id + 40, id + 44,
	         id + 48, id + 52);
	add_str(ni, "systemUUID", uuid);
	add_str(ni, "bootID", uuid);
	add_str(ni, "kernelVersion", "kd-node");
	add_str(ni, "osImage", "kubedirect kd-node");
	add_str(ni, "containerRuntimeVersion", or_default(p->runtime_version, "kd-sim://0.1.0"));
	add_str(ni, "kubeletVersion", or_default(p->kubelet_version, KD_NODE_DEFAULT_KUBELET_VER));
	add_str(ni, "operatingSystem", "linux");
	add_str(ni, "architecture", "amd64");
	return st;
}

static void add_pod_cidrs(struct json_object *spec, const char *cidr)
{
	add_str(spec, "podCIDR", cidr);
	json_object_array_add(add_arr(spec, "podCIDRs"), json_object_new_string(cidr));
}

struct json_object *kd_node_build_node(const struct kd_node_params *p, uint64_t now_wall_ns)
{
	struct json_object *n = json_object_new_object();
	add_str(n, "apiVersion", "v1");
	add_str(n, "kind", "Node");
	struct json_object *md = add_obj(n, "metadata");
	add_str(md, "name", p->name);
	add_node_labels(add_obj(md, "labels"), p);
	add_node_annotations(add_obj(md, "annotations"), p);
	struct json_object *spec = add_obj(n, "spec");
	if (p->pod_cidr)
		add_pod_cidrs(spec, p->pod_cidr);
	json_object_object_add(n, "status", kd_node_build_status(p, now_wall_ns, 0));
	return n;
}

struct json_object *kd_node_build_status_patch(const struct kd_node_params *p, uint64_t now_wall_ns,
                                               uint64_t transition_wall_ns)
{
	struct json_object *patch = json_object_new_object();
	json_object_object_add(patch, "status",
	                       kd_node_build_status(p, now_wall_ns, transition_wall_ns));
	return patch;
}

struct json_object *kd_node_build_meta_patch(const struct kd_node_params *p,
                                             struct json_object *existing)
{
	struct json_object *patch = json_object_new_object();
	struct json_object *md = add_obj(patch, "metadata");
	add_node_labels(add_obj(md, "labels"), p);
	add_node_annotations(add_obj(md, "annotations"), p);
	const char *have = kd_json_get_string(existing, "spec.podCIDR");
	if (p->pod_cidr && !(have && *have))
		add_pod_cidrs(add_obj(patch, "spec"), p->pod_cidr);
	return patch;
}

const char *kd_node_internal_ip(struct json_object *node)
{
	struct json_object *addrs = kd_json_get_array(node, "status.addresses");
	size_t n = addrs ? json_object_array_length(addrs) : 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *a = json_object_array_get_idx(addrs, i);
		const char *type = kd_json_get_string(a, "type");
		const char *addr = kd_json_get_string(a, "address");
		if (type && addr && *addr && strcmp(type, "InternalIP") == 0)
			return addr;
	}
	return NULL;
}

/* KD_ANNOT_CHANNEL_ADDR (kd/instance.h), and its JSON pointer ("/" escaped as "~1") */
#define CHANNEL_ANNOT     "kubedirect.dev/channel-addr"
#define CHANNEL_ANNOT_PTR "/metadata/annotations/kubedirect.dev~1channel-addr"

struct json_object *kd_node_build_channel_patch(const char *addr)
{
	struct json_object *patch = json_object_new_object();
	add_str(add_obj(add_obj(patch, "metadata"), "annotations"), CHANNEL_ANNOT, addr);
	return patch;
}

static struct json_object *json_patch_op(const char *op, const char *path, const char *value)
{
	struct json_object *o = json_object_new_object();
	add_str(o, "op", op);
	add_str(o, "path", path);
	if (value)
		add_str(o, "value", value);
	return o;
}

struct json_object *kd_node_build_channel_unpatch(const char *addr)
{
	struct json_object *ops = json_object_new_array();
	json_object_array_add(ops, json_patch_op("test", CHANNEL_ANNOT_PTR, addr));
	json_object_array_add(ops, json_patch_op("remove", CHANNEL_ANNOT_PTR, NULL));
	return ops;
}

/* ---- Lease -------------------------------------------------------------------------------- */

static void add_lease_spec(struct json_object *spec, const char *node, uint64_t now_wall_ns)
{
	char buf[KD_NODE_MICROTIME_LEN];
	add_str(spec, "holderIdentity", node);
	add_int(spec, "leaseDurationSeconds", KD_NODE_LEASE_DURATION_S);
	add_str(spec, "renewTime", kd_node_format_microtime(now_wall_ns, buf));
}

struct json_object *kd_node_build_lease(const char *node, const char *node_uid,
                                        uint64_t now_wall_ns)
{
	struct json_object *l = json_object_new_object();
	add_str(l, "apiVersion", "coordination.k8s.io/v1");
	add_str(l, "kind", "Lease");
	struct json_object *md = add_obj(l, "metadata");
	add_str(md, "name", node);
	add_str(md, "namespace", KD_NODE_LEASE_NAMESPACE);
	if (node_uid && *node_uid) {
		struct json_object *ref = json_object_new_object();
		add_str(ref, "apiVersion", "v1");
		add_str(ref, "kind", "Node");
		add_str(ref, "name", node);
		add_str(ref, "uid", node_uid);
		json_object_array_add(add_arr(md, "ownerReferences"), ref);
	}
	add_lease_spec(add_obj(l, "spec"), node, now_wall_ns);
	return l;
}

struct json_object *kd_node_build_lease_renew(const char *node, uint64_t now_wall_ns)
{
	struct json_object *patch = json_object_new_object();
	add_lease_spec(add_obj(patch, "spec"), node, now_wall_ns);
	return patch;
}

/* ---- Pod status --------------------------------------------------------------------------- */

bool kd_node_pod_restart_never(struct json_object *pod)
{
	const char *rp = kd_json_get_string(pod, "spec.restartPolicy");
	return rp && strcmp(rp, "Never") == 0;
}

static struct json_object *find_condition(struct json_object *pod, const char *type)
{
	struct json_object *conds = kd_json_get_array(pod, "status.conditions");
	size_t n = conds ? json_object_array_length(conds) : 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(conds, i);
		const char *t = kd_json_get_string(c, "type");
		if (t && strcmp(t, type) == 0)
			return c;
	}
	return NULL;
}

bool kd_node_pod_is_running_ready(struct json_object *pod, const char *pod_ip)
{
	const char *phase = kd_json_get_string(pod, "status.phase");
	const char *ip = kd_json_get_string(pod, "status.podIP");
	const char *ready = kd_json_get_string(find_condition(pod, "Ready"), "status");
	if (!phase || strcmp(phase, "Running") != 0 || !ready || strcmp(ready, "True") != 0)
		return false;
	if (pod_ip && (!ip || strcmp(ip, pod_ip) != 0))
		return false;
	/* every spec container must have a ready status */
	struct json_object *ctrs = kd_json_get_array(pod, "spec.containers");
	struct json_object *sts = kd_json_get_array(pod, "status.containerStatuses");
	size_t nc = ctrs ? json_object_array_length(ctrs) : 0;
	size_t ns = sts ? json_object_array_length(sts) : 0;
	for (size_t i = 0; i < nc; i++) {
		const char *name = kd_json_get_string(json_object_array_get_idx(ctrs, i), "name");
		bool found = false;
		for (size_t j = 0; j < ns && !found; j++) {
			struct json_object *s = json_object_array_get_idx(sts, j);
			const char *sn = kd_json_get_string(s, "name");
			bool r = false;
			if (sn && name && strcmp(sn, name) == 0 &&
			    kd_json_get_bool(s, "ready", &r) == 0 && r)
				found = true;
		}
		if (!found)
			return false;
	}
	return true;
}

/* Adds a pod condition; lastProbeTime null as the kubelet writes it. */
static void add_pod_condition(struct json_object *arr, const char *type, bool status,
                              const char *reason, const char *message, uint64_t transition_ns)
{
	struct json_object *c = json_object_new_object();
	add_str(c, "type", type);
	add_str(c, "status", status ? "True" : "False");
	json_object_object_add(c, "lastProbeTime", NULL);
	add_time(c, "lastTransitionTime", transition_ns);
	if (reason)
		add_str(c, "reason", reason);
	if (message)
		add_str(c, "message", message);
	json_object_array_add(arr, c);
}

/* Keeps an existing condition's transition time when its status is unchanged (as the kubelet
 * does), else uses fallback. */
static uint64_t transition_of(struct json_object *pod, const char *type, bool status,
                              uint64_t fallback)
{
	struct json_object *c = find_condition(pod, type);
	const char *st = kd_json_get_string(c, "status");
	uint64_t t;
	if (st && strcmp(st, status ? "True" : "False") == 0 &&
	    kd_node_parse_time(kd_json_get_string(c, "lastTransitionTime"), &t) == 0)
		return t;
	return fallback;
}

static void add_ip_list(struct json_object *st, const char *key, const char *list_key,
                        const char *ip)
{
	if (!ip || !*ip)
		return;
	add_str(st, key, ip);
	struct json_object *e = json_object_new_object();
	add_str(e, "ip", ip);
	json_object_array_add(add_arr(st, list_key), e);
}

/* The "status" skeleton shared by all builders, inside a patch {"metadata":{"uid"},"status"}. */
static struct json_object *new_status_patch(struct json_object *pod,
                                            const struct kd_node_pod_info *info,
                                            struct json_object **status_out)
{
	const char *uid = kd_json_get_string(pod, "metadata.uid");
	if (!uid || !*uid)
		return NULL;
	struct json_object *patch = json_object_new_object();
	add_str(add_obj(patch, "metadata"), "uid", uid);
	struct json_object *st = add_obj(patch, "status");
	add_ip_list(st, "hostIP", "hostIPs", info->host_ip);
	add_ip_list(st, "podIP", "podIPs", info->pod_ip);
	/* startTime never moves once set */
	uint64_t start = info->start_wall_ns;
	uint64_t have;
	if (kd_node_parse_time(kd_json_get_string(pod, "status.startTime"), &have) == 0)
		start = have;
	add_time(st, "startTime", start);
	*status_out = st;
	return patch;
}

enum ctr_state { CTR_RUNNING, CTR_WAITING, CTR_TERMINATED, CTR_COMPLETED };

static void add_container_status(struct json_object *arr, struct json_object *ctr,
                                 const char *pod_uid, const struct kd_node_pod_info *info,
                                 enum ctr_state state, bool is_init, uint64_t now_ns)
{
	const char *name = kd_json_get_string(ctr, "name");
	const char *image = kd_json_get_string(ctr, "image");
	struct json_object *s = json_object_new_object();
	add_str(s, "name", name);
	struct json_object *stobj = add_obj(s, "state");
	kd_autofree char *cid = kd_node_container_id(info->runtime, pod_uid, name);
	kd_autofree char *iid = kd_node_image_id(image);
	uint64_t started = info->start_wall_ns ? info->start_wall_ns : now_ns;
	bool ready = false, started_flag = false;
	switch (state) {
	case CTR_RUNNING: {
		struct json_object *r = add_obj(stobj, "running");
		add_time(r, "startedAt", started);
		ready = true;
		started_flag = true;
		break;
	}
	case CTR_WAITING: {
		struct json_object *w = add_obj(stobj, "waiting");
		add_str(w, "reason", or_default(info->reason, "ContainerCreating"));
		if (info->message)
			add_str(w, "message", info->message);
		break;
	}
	case CTR_TERMINATED:
	case CTR_COMPLETED: {
		struct json_object *t = add_obj(stobj, "terminated");
		bool ok = state == CTR_COMPLETED;
		add_int(t, "exitCode", ok ? 0 : 1);
		add_str(t, "reason", ok ? "Completed" : or_default(info->reason, "Error"));
		if (!ok && info->message)
			add_str(t, "message", info->message);
		add_time(t, "startedAt", started);
		add_time(t, "finishedAt", ok ? started : now_ns);
		add_str(t, "containerID", cid);
		ready = ok && is_init;
		break;
	}
	}
	json_object_object_add(s, "lastState", json_object_new_object());
	add_bool(s, "ready", ready);
	add_int(s, "restartCount", is_init ? 0 : info->restart_count);
	add_str(s, "image", image);
	add_str(s, "imageID", state == CTR_WAITING ? "" : iid);
	if (state != CTR_WAITING)
		add_str(s, "containerID", cid);
	add_bool(s, "started", started_flag);
	json_object_array_add(arr, s);
}

/* containerStatuses (and initContainerStatuses when the spec has init containers). */
static void add_all_container_statuses(struct json_object *st, struct json_object *pod,
                                       const struct kd_node_pod_info *info, enum ctr_state state,
                                       uint64_t now_ns)
{
	const char *uid = kd_json_get_string(pod, "metadata.uid");
	struct json_object *inits = kd_json_get_array(pod, "spec.initContainers");
	size_t ni = inits ? json_object_array_length(inits) : 0;
	if (ni) {
		struct json_object *arr = add_arr(st, "initContainerStatuses");
		for (size_t i = 0; i < ni; i++) {
			struct json_object *c = json_object_array_get_idx(inits, i);
			const char *rp = kd_json_get_string(c, "restartPolicy");
			bool sidecar = rp && strcmp(rp, "Always") == 0;
			enum ctr_state s = state;
			if (state == CTR_RUNNING)
				s = sidecar ? CTR_RUNNING : CTR_COMPLETED;
			else if (state == CTR_WAITING)
				s = CTR_WAITING;
			add_container_status(arr, c, uid, info, s, !sidecar, now_ns);
		}
	}
	struct json_object *arr = add_arr(st, "containerStatuses");
	struct json_object *ctrs = kd_json_get_array(pod, "spec.containers");
	size_t nc = ctrs ? json_object_array_length(ctrs) : 0;
	for (size_t i = 0; i < nc; i++)
		add_container_status(arr, json_object_array_get_idx(ctrs, i), uid, info, state,
		                     false, now_ns);
}

/* "containers with unready status: [a b]" listing every spec container. Returns owned. */
static char *unready_message(struct json_object *pod)
{
	struct json_object *ctrs = kd_json_get_array(pod, "spec.containers");
	size_t nc = ctrs ? json_object_array_length(ctrs) : 0;
	char *names = kd_xstrdup("");
	for (size_t i = 0; i < nc; i++) {
		const char *n = kd_json_get_string(json_object_array_get_idx(ctrs, i), "name");
		char *next = kd_xasprintf("%s%s%s", names, i ? " " : "", n ? n : "");
		free(names);
		names = next;
	}
	char *msg = kd_xasprintf("containers with unready status: [%s]", names);
	free(names);
	return msg;
}

static void add_scheduled(struct json_object *conds, struct json_object *pod, uint64_t fallback)
{
	add_pod_condition(conds, "PodScheduled", true, NULL, NULL,
	                  transition_of(pod, "PodScheduled", true, fallback));
}

/* The kubelet's pod conditions: the sandbox's, Initialized (since start), Ready and
 * ContainersReady (with reason and message when not ready), PodScheduled. Each keeps its
 * lastTransitionTime while its status does not change (transition_of); sandbox_t 0: the
 * sandbox condition's time is now. */
struct lifecycle {
	bool sandbox;
	uint64_t sandbox_t;
	uint64_t start;
	bool ready;
	const char *reason, *msg;
	uint64_t ready_t;
};

static void add_lifecycle_conditions(struct json_object *conds, struct json_object *pod,
                                     const struct lifecycle *lc, uint64_t now)
{
	uint64_t sandbox_t = lc->sandbox_t ? transition_of(pod, "PodReadyToStartContainers",
	                                                   lc->sandbox, lc->sandbox_t)
	                                   : now;
	add_pod_condition(conds, "PodReadyToStartContainers", lc->sandbox, NULL, NULL, sandbox_t);
	add_pod_condition(conds, "Initialized", true, NULL, NULL,
	                  transition_of(pod, "Initialized", true, lc->start));
	add_pod_condition(conds, "Ready", lc->ready, lc->reason, lc->msg,
	                  transition_of(pod, "Ready", lc->ready, lc->ready_t));
	add_pod_condition(conds, "ContainersReady", lc->ready, lc->reason, lc->msg,
	                  transition_of(pod, "ContainersReady", lc->ready, lc->ready_t));
	add_scheduled(conds, pod, lc->start);
}

enum pod_kind { POD_RUNNING, POD_WAITING, POD_FAILED };

/* The status patch of each pod state (kd_node_pod_status_running/_waiting/_failed). */
static struct json_object *pod_status(struct json_object *pod, const struct kd_node_pod_info *info,
                                      uint64_t now, enum pod_kind kind)
{
	bool sandbox = info->pod_ip && *info->pod_ip;
	if (kind == POD_RUNNING && !sandbox)
		return NULL;
	struct json_object *st = NULL;
	struct json_object *patch = new_status_patch(pod, info, &st);
	if (!patch)
		return NULL;
	uint64_t start = info->start_wall_ns ? info->start_wall_ns : now;
	struct lifecycle lc = {
	    .sandbox = sandbox, .sandbox_t = now, .start = start, .ready_t = now};
	kd_autofree char *msg = NULL;
	enum ctr_state cs = CTR_RUNNING;
	switch (kind) {
	case POD_RUNNING:
		add_str(st, "phase", "Running");
		lc.sandbox_t = start;
		lc.ready = true;
		lc.ready_t = info->ready_wall_ns ? info->ready_wall_ns : now;
		break;
	case POD_WAITING: {
		const char *phase = kd_json_get_string(pod, "status.phase");
		add_str(st, "phase",
		        phase && strcmp(phase, "Running") == 0 ? "Running" : "Pending");
		msg = unready_message(pod);
		lc.reason = "ContainersNotReady";
		lc.msg = msg;
		cs = CTR_WAITING;
		break;
	}
	case POD_FAILED:
		add_str(st, "phase", "Failed");
		add_str(st, "reason", or_default(info->reason, "Error"));
		if (info->message)
			add_str(st, "message", info->message);
		lc.sandbox = false;
		lc.sandbox_t = 0; /* now, not kept: the sandbox is gone */
		lc.reason = "PodCompleted";
		cs = CTR_TERMINATED;
		break;
	}
	add_lifecycle_conditions(add_arr(st, "conditions"), pod, &lc, now);
	add_all_container_statuses(st, pod, info, cs, now);
	return patch;
}

struct json_object *kd_node_pod_status_running(struct json_object *pod,
                                               const struct kd_node_pod_info *info,
                                               uint64_t now_wall_ns)
{
	return pod_status(pod, info, now_wall_ns, POD_RUNNING);
}

struct json_object *kd_node_pod_status_waiting(struct json_object *pod,
                                               const struct kd_node_pod_info *info,
                                               uint64_t now_wall_ns)
{
	return pod_status(pod, info, now_wall_ns, POD_WAITING);
}

struct json_object *kd_node_pod_status_failed(struct json_object *pod,
                                              const struct kd_node_pod_info *info,
                                              uint64_t now_wall_ns)
{
	return pod_status(pod, info, now_wall_ns, POD_FAILED);
}
