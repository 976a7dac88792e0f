/* node-agent/nodes.c: Node registration and heartbeats, all asynchronous on the loop.
 *
 * Per node: GET the Node; absent -> POST it; present -> merge-patch our labels/annotations (and
 * podCIDR only if it has none: podCIDR is immutable, an existing one wins and is used for pod
 * addresses). Then merge-patch its status (conditions Ready=True, capacity, ...; the create
 * also carries the status but the status subresource is authoritative), then keep it alive:
 * the Lease is renewed every --lease-interval (merge patch of spec.renewTime; created with an
 * owner reference to the Node when missing) and the Node status (Ready heartbeat) re-posted every
 * --status-interval. Failures are logged with what failed and retried with jittered backoff; a
 * Node deleted behind our back (404 on a status patch) is registered again.
 *
 * Attach mode (--attach-node, agent.h): the one Node is someone else's (its real kubelet registers
 * and heartbeats it). It is read once at start (it must exist), then only our annotation is
 * written: merge-patched in when direct mode starts (retried with backoff), removed on a clean
 * shutdown by a JSON patch that first tests that it still holds our address (a kd-node that
 * replaced us keeps its own). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "kd/check.h"
#include "kd/instance.h"
#include "kd/json.h"
#include "kd/log.h"

#define BACKOFF_BASE_MS 500
#define BACKOFF_CAP_MS  30000

static void register_step_get(struct kd_node *n);
static void lease_renew(struct kd_node *n);
static void status_post(struct kd_node *n);
static void on_register_timer(struct kd_loop *loop, struct kd_timer *t, void *arg);
static void remember_node(struct kd_node *n, struct json_object *obj);
static void attach_publish(struct kd_node *n);

int kd_node_nodes_check(const struct kd_node_cfg *cfg, struct kd_error **err)
{
	struct kd_node_cidr base = {0}, ipnet = {0}, sub = {0};
	if (kd_node_cidr_parse(cfg->pod_cidr, &base, err) < 0)
		return kd_error_wrap(err, "--pod-cidr");
	if (kd_node_cidr_parse(cfg->node_ip_cidr, &ipnet, err) < 0)
		return kd_error_wrap(err, "--node-ip-cidr");
	if (cfg->nodes == 0)
		return kd_error_set(err, EINVAL, 0, "--nodes must be at least 1");
	/* the last node has the highest index: the longest name, the last subnet and address */
	uint64_t last = cfg->node_index_base + cfg->nodes - 1;
	kd_autofree char *name = kd_xasprintf("%s-%" PRIu64, cfg->node_prefix, last);
	if (kd_check_dns_subdomain("--node-prefix (node name)", name, err) < 0)
		return -EINVAL;
	if (kd_node_cidr_subnet(&base, (unsigned)cfg->node_cidr_prefix, last, &sub, err) < 0)
		return kd_error_wrap(err, "--pod-cidr %s for node %s", cfg->pod_cidr, name);
	uint32_t ip;
	if (kd_node_cidr_host(&ipnet, last + 1, &ip) < 0)
		return kd_error_set(err, ERANGE, 0, "--node-ip-cidr %s: no address for node %s",
		                    cfg->node_ip_cidr, name);
	return 0;
}

static void on_attach_wait(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)t;
	(void)arg;
	kd_loop_stop(loop);
}

int kd_node_nodes_attach(struct kd_node_agent *a, struct kd_error **err)
{
	struct kd_node *n = &a->nodes[0];
	struct kd_timer *t = kd_loop_timer_new(a->loop, on_attach_wait, NULL);
	int rc = 0;
	for (unsigned attempt = 0;; attempt++) {
		kd_autoerr struct kd_error *e = NULL;
		kd_autojson struct json_object *obj = NULL;
		rc = kd_k8s_get(a->k8s, &kd_k8s_nodes, NULL, n->name, &obj, &e);
		if (rc == 0) {
			remember_node(n, obj);
			const char *ip = kd_node_internal_ip(obj);
			free(n->internal_ip);
			n->internal_ip = ip ? kd_xstrdup(ip) : NULL;
			break;
		}
		if (rc == -ENOENT) {
			rc = kd_error_set(
			    err, ENOENT, 0,
			    "--attach-node %s: there is no Node %s (it must exist: its "
			    "kubelet registers it)",
			    n->name, n->name);
			break;
		}
		uint64_t ms = kd_backoff_ms(attempt, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
		kd_log_warn("attach to node %s: get node: %s; retrying in %llu ms (attempt %u)",
		            n->name, kd_error_msg(e), (unsigned long long)ms, attempt + 1);
		kd_loop_timer_start(t, ms);
		if (!a->stopping)
			kd_loop_run(a->loop);
		if (a->stopping) {
			rc = -EINTR;
			break;
		}
	}
	kd_loop_timer_free(t);
	if (rc == 0) {
		/* Ready and registered are the kubelet's business: pods may start at once */
		n->registered = true;
		kd_log_info("attached to node %s (uid %s, podCIDR %s, InternalIP %s)", n->name,
		            n->uid ? n->uid : "?", n->pod_cidr ? n->pod_cidr : "none",
		            n->internal_ip ? n->internal_ip : "none");
	}
	return rc;
}

int kd_node_nodes_init(struct kd_node_agent *a, struct kd_error **err)
{
	struct kd_node_cfg *cfg = a->cfg;
	if (cfg->attach_node && *cfg->attach_node) {
		/* one Node, whose podCIDR and address kd_node_nodes_attach reads */
		a->nodes = kd_xcalloc(1, sizeof(*a->nodes));
		struct kd_node *n = &a->nodes[0];
		n->agent = a;
		n->name = kd_xstrdup(cfg->attach_node);
		n->register_timer = kd_loop_timer_new(a->loop, on_register_timer, n);
		kd_strmap_put(&a->by_name, n->name, n);
		return 0;
	}
	struct kd_node_cidr base = {0}, ipnet = {0};
	if (kd_node_cidr_parse(cfg->pod_cidr, &base, err) < 0)
		return kd_error_wrap(err, "--pod-cidr");
	if (kd_node_cidr_parse(cfg->node_ip_cidr, &ipnet, err) < 0)
		return kd_error_wrap(err, "--node-ip-cidr");
	if (cfg->nodes == 0)
		return kd_error_set(err, EINVAL, 0, "--nodes must be at least 1");
	a->nodes = kd_xcalloc(cfg->nodes, sizeof(*a->nodes));
	for (uint64_t i = 0; i < cfg->nodes; i++) {
		struct kd_node *n = &a->nodes[i];
		uint64_t idx = cfg->node_index_base + i;
		struct kd_node_cidr sub = {0};
		uint32_t ip;
		n->agent = a;
		n->index = (unsigned)idx;
		n->name = kd_xasprintf("%s-%" PRIu64, cfg->node_prefix, idx);
		if (kd_node_cidr_subnet(&base, (unsigned)cfg->node_cidr_prefix, idx, &sub, err) < 0)
			return kd_error_wrap(err, "--pod-cidr %s for node %s", cfg->pod_cidr,
			                     n->name);
		n->pod_cidr = kd_node_cidr_format(&sub);
		if (kd_node_cidr_host(&ipnet, idx + 1, &ip) < 0)
			return kd_error_set(err, ERANGE, 0,
			                    "--node-ip-cidr %s: no address for node %s",
			                    cfg->node_ip_cidr, n->name);
		char buf[16];
		n->internal_ip = kd_xstrdup(kd_node_ip_format(ip, buf));
		n->register_timer = kd_loop_timer_new(a->loop, on_register_timer, n);
		kd_strmap_put(&a->by_name, n->name, n);
	}
	return 0;
}

struct kd_node *kd_node_lookup(struct kd_node_agent *a, const char *name)
{
	return name ? kd_strmap_get(&a->by_name, name) : NULL;
}

void kd_node_params_for(const struct kd_node *n, struct kd_node_params *out)
{
	const struct kd_node_cfg *cfg = n->agent->cfg;
	memset(out, 0, sizeof(*out));
	out->name = n->name;
	out->pod_cidr = n->pod_cidr;
	out->internal_ip = n->internal_ip;
	out->cpu = cfg->cpu;
	out->memory = cfg->memory;
	out->max_pods = (unsigned)cfg->max_pods;
	out->kubelet_version = cfg->kubelet_version;
	out->runtime_version = n->agent->runtime_version;
	out->ready = true;
	out->channel_addr = n->agent->channel_addr;
}

/* ---- timers ------------------------------------------------------------------------------- */

static bool attached(const struct kd_node_agent *a)
{
	return a->cfg->attach_node && *a->cfg->attach_node;
}

static void on_register_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	struct kd_node *n = arg;
	if (attached(n->agent))
		attach_publish(n);
	else
		register_step_get(n);
}

static void on_lease_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	lease_renew(arg);
}

static void on_status_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	status_post(arg);
}

static void retry_register(struct kd_node *n, const char *what, const struct kd_error *err)
{
	uint64_t ms = kd_backoff_ms(n->attempt++, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
	bool refused = err && (err->errnum == ECONNREFUSED || err->errnum == ETIMEDOUT ||
	                       err->errnum == EHOSTUNREACH);
	kd_log_warn("register node %s: %s: %s%s; retrying in %llu ms", n->name, what,
	            kd_error_msg(err), refused ? " (API Server unreachable)" : "",
	            (unsigned long long)ms);
	kd_loop_timer_start(n->register_timer, ms);
}

/* ---- registration --------------------------------------------------------------------------- */

static void submit(struct kd_node *n, const struct kd_k8s_request *req, kd_k8s_done_cb cb,
                   const char *what)
{
	struct kd_error *err = NULL;
	if (kd_k8s_submit(n->agent->k8s, req, cb, n, &err) < 0) {
		retry_register(n, what, err);
		kd_error_free(err);
	}
}

/* Submits a heartbeat write of n (its status or its lease): *inflight is true while it runs; a
 * write that cannot be sent is logged ("node N: <what>: why") and tried again by timer after
 * retry_ms. */
static void submit_heartbeat(struct kd_node *n, const struct kd_k8s_request *req, kd_k8s_done_cb cb,
                             bool *inflight, struct kd_timer *timer, uint64_t retry_ms,
                             const char *what)
{
	struct kd_error *err = NULL;
	*inflight = true;
	if (kd_k8s_submit(n->agent->k8s, req, cb, n, &err) < 0) {
		*inflight = false;
		kd_log_warn("node %s: %s: %s", n->name, what, kd_error_msg(err));
		kd_error_free(err);
		kd_loop_timer_start(timer, retry_ms);
	}
}

static void start_heartbeats(struct kd_node *n)
{
	struct kd_node_agent *a = n->agent;
	if (!n->lease_timer) {
		n->lease_timer = kd_loop_timer_new(a->loop, on_lease_timer, n);
		n->status_timer = kd_loop_timer_new(a->loop, on_status_timer, n);
	}
	/* spread the nodes' status posts over the interval; the lease is renewed right away */
	uint64_t spread =
	    a->cfg->status_interval_ms * (n->index % a->cfg->nodes) / KD_MAX(1, a->cfg->nodes);
	if (!kd_loop_timer_pending(n->status_timer))
		kd_loop_timer_start(n->status_timer, a->cfg->status_interval_ms / 2 + spread / 2);
	if (!n->lease_inflight)
		lease_renew(n);
}

static void on_status_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg);

static void post_status_now(struct kd_node *n)
{
	struct kd_node_params p;
	kd_node_params_for(n, &p);
	uint64_t now = kd_wall_ns();
	if (!n->ready_since_ns)
		n->ready_since_ns = now;
	kd_autojson struct json_object *patch =
	    kd_node_build_status_patch(&p, now, n->ready_since_ns);
	struct kd_k8s_request req = {
	    .verb = KD_K8S_PATCH,
	    .res = &kd_k8s_nodes,
	    .name = n->name,
	    .subresource = "status",
	    .patch_type = KD_K8S_PATCH_MERGE,
	    .body = patch,
	};
	submit_heartbeat(n, &req, on_status_done, &n->status_inflight, n->status_timer,
	                 BACKOFF_CAP_MS, "status update");
}

static void on_status_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	(void)resp;
	struct kd_node *n = arg;
	n->status_inflight = false;
	if (n->agent->stopping)
		return;
	if (!n->registered) { /* the status post of a registration */
		if (err) {
			retry_register(n, "post status", err);
			return;
		}
	} else if (err) {
		if (err->errnum == ENOENT) {
			kd_log_warn("node %s: deleted from the API Server; registering it again",
			            n->name);
			n->registered = false;
			n->attempt = 0;
			kd_loop_timer_start(n->register_timer, 0);
			return;
		}
		kd_log_warn("node %s: status update: %s; retrying", n->name, kd_error_msg(err));
		kd_loop_timer_start(n->status_timer,
		                    kd_backoff_ms(n->attempt++, BACKOFF_BASE_MS, BACKOFF_CAP_MS));
		return;
	}
	n->attempt = 0;
	if (!n->registered) {
		n->registered = true;
		kd_log_info("node %s registered (podCIDR %s, InternalIP %s)", n->name, n->pod_cidr,
		            n->internal_ip);
		start_heartbeats(n);
		kd_node_pods_node_ready(n->agent, n);
		return;
	}
	kd_loop_timer_start(n->status_timer, n->agent->cfg->status_interval_ms);
}

static void status_post(struct kd_node *n)
{
	if (n->status_inflight || n->agent->stopping)
		return;
	if (!n->registered)
		return; /* registration will post it */
	post_status_now(n);
}

static void remember_node(struct kd_node *n, struct json_object *obj)
{
	const char *uid = kd_json_get_string(obj, "metadata.uid");
	if (uid) {
		free(n->uid);
		n->uid = kd_xstrdup(uid);
	}
	const char *cidr = kd_json_get_string(obj, "spec.podCIDR");
	if (cidr && *cidr && (!n->pod_cidr || strcmp(cidr, n->pod_cidr) != 0)) {
		if (n->pod_cidr) /* attach mode has none of its own */
			kd_log_warn("node %s: keeps its existing podCIDR %s (ours would be %s)",
			            n->name, cidr, n->pod_cidr);
		free(n->pod_cidr);
		n->pod_cidr = kd_xstrdup(cidr);
	}
	/* a node that was Ready keeps its Ready transition time across agent restarts */
	struct json_object *conds = kd_json_get_array(obj, "status.conditions");
	size_t nc = conds ? json_object_array_length(conds) : 0;
	for (size_t i = 0; i < nc && !n->ready_since_ns; i++) {
		struct json_object *c = json_object_array_get_idx(conds, i);
		const char *type = kd_json_get_string(c, "type");
		const char *st = kd_json_get_string(c, "status");
		uint64_t t;
		if (type && st && strcmp(type, "Ready") == 0 && strcmp(st, "True") == 0 &&
		    kd_node_parse_time(kd_json_get_string(c, "lastTransitionTime"), &t) == 0)
			n->ready_since_ns = t;
	}
}

/* A registration request of n completed: false when the agent is stopping (nothing follows). */
static bool register_step_done(struct kd_node *n)
{
	n->register_inflight = false;
	return !n->agent->stopping;
}

/* The Node object was written (created or patched): retried on an error, else the API's copy is
 * remembered and the status posted. */
static void node_written(struct kd_node *n, const struct kd_k8s_response *resp,
                         const struct kd_error *err, const char *what)
{
	if (err) {
		retry_register(n, what, err);
		return;
	}
	remember_node(n, resp->body);
	post_status_now(n);
}

static void on_meta_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	struct kd_node *n = arg;
	if (register_step_done(n))
		node_written(n, resp, err, "patch node");
}

static void on_create_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	struct kd_node *n = arg;
	if (!register_step_done(n))
		return;
	if (err && err->errnum == EEXIST) { /* raced with someone: start over */
		kd_loop_timer_start(n->register_timer, 0);
		return;
	}
	node_written(n, resp, err, "create node");
}

static void on_get_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	struct kd_node *n = arg;
	if (!register_step_done(n))
		return;
	struct kd_node_params p;
	if (err && err->errnum == ENOENT) {
		kd_node_params_for(n, &p);
		kd_autojson struct json_object *node = kd_node_build_node(&p, kd_wall_ns());
		struct kd_k8s_request req = {
		    .verb = KD_K8S_CREATE, .res = &kd_k8s_nodes, .body = node};
		n->register_inflight = true;
		submit(n, &req, on_create_done, "create node");
		return;
	}
	if (err) {
		retry_register(n, "get node", err);
		return;
	}
	remember_node(n, resp->body);
	kd_node_params_for(n, &p);
	kd_autojson struct json_object *patch = kd_node_build_meta_patch(&p, resp->body);
	struct kd_k8s_request req = {
	    .verb = KD_K8S_PATCH,
	    .res = &kd_k8s_nodes,
	    .name = n->name,
	    .patch_type = KD_K8S_PATCH_MERGE,
	    .body = patch,
	};
	n->register_inflight = true;
	submit(n, &req, on_meta_done, "patch node");
}

static void register_step_get(struct kd_node *n)
{
	if (n->register_inflight || n->agent->stopping)
		return;
	struct kd_k8s_request req = {.verb = KD_K8S_GET, .res = &kd_k8s_nodes, .name = n->name};
	n->register_inflight = true;
	submit(n, &req, on_get_done, "get node");
}

/* ---- lease ---------------------------------------------------------------------------------- */

static void on_lease_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg);

static void lease_create(struct kd_node *n)
{
	kd_autojson struct json_object *lease = kd_node_build_lease(n->name, n->uid, kd_wall_ns());
	struct kd_k8s_request req = {
	    .verb = KD_K8S_CREATE,
	    .res = &kd_k8s_leases,
	    .ns = KD_NODE_LEASE_NAMESPACE,
	    .body = lease,
	};
	submit_heartbeat(n, &req, on_lease_done, &n->lease_inflight, n->lease_timer,
	                 BACKOFF_BASE_MS, "create lease");
}

static void on_lease_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	(void)resp;
	struct kd_node *n = arg;
	n->lease_inflight = false;
	if (n->agent->stopping)
		return;
	uint64_t interval = n->agent->cfg->lease_interval_ms;
	if (err && err->errnum == ENOENT) { /* renewal of a missing lease */
		lease_create(n);
		return;
	}
	if (err && err->errnum == EEXIST) { /* created concurrently: renew it */
		kd_loop_timer_start(n->lease_timer, 0);
		return;
	}
	if (err) {
		/* retry well within the lease duration, never later than the interval */
		uint64_t ms = kd_backoff_ms(n->attempt++, 200, interval);
		ms = KD_MIN(interval, ms);
		kd_log_warn("node %s: renew lease %s/%s: %s; retrying in %llu ms", n->name,
		            KD_NODE_LEASE_NAMESPACE, n->name, kd_error_msg(err),
		            (unsigned long long)ms);
		n->lease_ok = false;
		kd_loop_timer_start(n->lease_timer, ms);
		return;
	}
	if (!n->lease_ok)
		kd_log_debug("node %s: lease renewed", n->name);
	n->lease_ok = true;
	kd_loop_timer_start(n->lease_timer, interval);
}

static void lease_renew(struct kd_node *n)
{
	if (n->lease_inflight || n->agent->stopping)
		return;
	kd_autojson struct json_object *patch = kd_node_build_lease_renew(n->name, kd_wall_ns());
	struct kd_k8s_request req = {
	    .verb = KD_K8S_PATCH,
	    .res = &kd_k8s_leases,
	    .ns = KD_NODE_LEASE_NAMESPACE,
	    .name = n->name,
	    .patch_type = KD_K8S_PATCH_MERGE,
	    .body = patch,
	};
	submit_heartbeat(n, &req, on_lease_done, &n->lease_inflight, n->lease_timer,
	                 BACKOFF_BASE_MS, "renew lease");
}

/* ---- attach mode ------------------------------------------------------------------------- */

static void on_publish_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	(void)resp;
	struct kd_node *n = arg;
	n->register_inflight = false;
	if (n->agent->stopping)
		return;
	if (err) {
		uint64_t ms = kd_backoff_ms(n->attempt++, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
		kd_log_warn("node %s: publish annotation %s: %s%s; retrying in %llu ms", n->name,
		            KD_ANNOT_CHANNEL_ADDR, kd_error_msg(err),
		            err->errnum == ENOENT
		                ? " (the Node was deleted; waiting for its kubelet "
		                  "to register it again)"
		                : "",
		            (unsigned long long)ms);
		n->lease_ok = false;
		kd_loop_timer_start(n->register_timer, ms);
		return;
	}
	n->attempt = 0;
	n->lease_ok = true; /* "up": the kubelet keeps it Ready, our address is on it */
	n->published = true;
	kd_log_info("node %s: attached, instance channel %s published (annotation %s)", n->name,
	            n->agent->channel_addr, KD_ANNOT_CHANNEL_ADDR);
}

/* Merge-patches our channel address onto the attached Node (asynchronous, retried). */
static void attach_publish(struct kd_node *n)
{
	struct kd_node_agent *a = n->agent;
	if (n->register_inflight || a->stopping || !a->channel_addr)
		return;
	kd_autojson struct json_object *patch = kd_node_build_channel_patch(a->channel_addr);
	struct kd_k8s_request req = {
	    .verb = KD_K8S_PATCH,
	    .res = &kd_k8s_nodes,
	    .name = n->name,
	    .patch_type = KD_K8S_PATCH_MERGE,
	    .body = patch,
	};
	struct kd_error *err = NULL;
	n->register_inflight = true;
	if (kd_k8s_submit(a->k8s, &req, on_publish_done, n, &err) < 0) {
		n->register_inflight = false;
		kd_log_warn("node %s: publish annotation %s: %s", n->name, KD_ANNOT_CHANNEL_ADDR,
		            kd_error_msg(err));
		kd_error_free(err);
		kd_loop_timer_start(n->register_timer, BACKOFF_CAP_MS);
	}
}

void kd_node_nodes_detach(struct kd_node_agent *a)
{
	if (!attached(a) || !a->nodes || !a->channel_addr)
		return;
	struct kd_node *n = &a->nodes[0];
	kd_autojson struct json_object *ops = kd_node_build_channel_unpatch(a->channel_addr);
	kd_autoerr struct kd_error *err = NULL;
	int rc = kd_k8s_patch(a->k8s, &kd_k8s_nodes, NULL, n->name, NULL, KD_K8S_PATCH_JSON, ops,
	                      NULL, &err);
	if (rc == 0)
		kd_log_info("node %s: detached, annotation %s removed", n->name,
		            KD_ANNOT_CHANNEL_ADDR);
	else if (err->http_status == 422 || rc == -ENOENT)
		kd_log_info("node %s: detached; annotation %s left as it is (not our address %s, "
		            "or the Node is gone): %s",
		            n->name, KD_ANNOT_CHANNEL_ADDR, a->channel_addr, kd_error_msg(err));
	else
		kd_log_warn("node %s: remove annotation %s: %s", n->name, KD_ANNOT_CHANNEL_ADDR,
		            kd_error_msg(err));
}

/* ---- start / stop
 * -------------------------------------------------------------------------------- */

void kd_node_nodes_start(struct kd_node_agent *a)
{
	if (attached(a)) {
		attach_publish(&a->nodes[0]);
		return;
	}
	for (uint64_t i = 0; i < a->cfg->nodes; i++) {
		register_step_get(&a->nodes[i]);
	}
}

void kd_node_nodes_fini(struct kd_node_agent *a)
{
	kd_strmap_fini(&a->by_name); /* its keys are the names freed below */
	if (!a->nodes)
		return;
	for (uint64_t i = 0; i < a->cfg->nodes; i++) {
		struct kd_node *n = &a->nodes[i];
		kd_loop_timer_free(n->register_timer);
		kd_loop_timer_free(n->lease_timer);
		kd_loop_timer_free(n->status_timer);
		free(n->name);
		free(n->pod_cidr);
		free(n->internal_ip);
		free(n->uid);
	}
	free(a->nodes);
	a->nodes = NULL;
}
