/* plugins/runtime-process/rp_net.c: a network namespace and a veth pair per sandbox (eth0
 * inside, with the pod IP; the host end enslaved to a bridge), and the pool of namespaces made
 * in advance. What the host must provide (the rig's layout, rig/README.md "Network"):
 *  - A bridge (`bridge`, default kd-br0) in the network namespace named by `bridge-netns` (a path
 *    to a netns file; default /proc/1/ns/net, the root namespace, where rig/up creates kd-br0
 *    with 10.88.0.1/16). The runtime only enslaves veths to it; it never changes the bridge.
 *    The bridge needs a fixed MAC (`ip link set <bridge> address ...`, as rig/up sets it).
 *    Without one, Linux gives the bridge the lowest MAC among its ports. Each sandbox veth that
 *    joins or leaves can then change it, and frames the namespaces had already addressed to the
 *    old MAC are lost (issue [baseline]: replies from Knative's activator lost for 3-100 s).
 *    The file is opened once at init (a netlink socket is kept there), so any path valid at
 *    that moment works, e.g. /proc/<pid of a root-netns process>/ns/net where PID 1's
 *    namespace files are not readable (as on our build machines; kd-node itself runs inside
 *    the rig's kd-cp namespace, so "" would be wrong there).
 *  - Routes inside the sandbox: on-link routes for each CIDR in `routes` (default the rig's
 *    10.88.0.0/16 and 10.244.0.0/16: everything on kd-br0 is one L2 segment) and, only if
 *    `gateway` is set, a default route via that address (the rig has none on purpose: nothing
 *    leaves the machine). No per-node gateway address is needed on the bridge for the rig.
 *  - Host ends are named `veth-prefix` + 8 hex digits (default "kd-s", so rig/down's sweep of kd-*
 *    links removes leftovers); the sandbox end is eth0, lo is up. eth0's MAC is derived from
 *    the pod IP (0a:58:<4 IP bytes>, the CNI bridge plugin's old scheme). Pod IPs are reused,
 *    so a peer's ARP entry for a reused IP is still right for the new sandbox.
 *  - Namespaces are anonymous: held by an fd of this plugin and by the sandbox's processes
 *    (which get PR_SET_PDEATHSIG=SIGKILL, so they die with the host process; the namespace and
 *    both veth ends go with them). Creating them uses unshare(CLONE_NEWNET) on the loop thread,
 *    which then setns()es straight back to the namespace the plugin was loaded in.
 *  - `pool-size` > 0 keeps that many namespaces (lo up, veth attached) made in advance, refilled
 *    one per loop iteration, so a start only adds the address and routes and spawns.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rp.h"

static void setns_home(const struct rp *rp)
{
	if (setns(rp->home_fd, CLONE_NEWNET) < 0) {
		/* the loop thread would go on in the wrong namespace: nothing sane is left */
		rp->host->log(KD_LOG_ERROR, "runtime-process: setns back home: %s",
		              strerror(errno));
		abort();
	}
}

/* Opens a netlink socket inside the namespace of ns_fd. */
static int nl_in(const struct rp *rp, int ns_fd, struct rp_nl *nl)
{
	if (setns(ns_fd, CLONE_NEWNET) < 0)
		return -errno;
	int rc = rp_nl_open(nl);
	setns_home(rp);
	return rc;
}

int rp_net_socket_in(const struct rp *rp, int ns_fd, int *fd)
{
	if (setns(ns_fd, CLONE_NEWNET) < 0)
		return -errno;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int e = errno;
	setns_home(rp);
	if (s < 0)
		return -e;
	*fd = s;
	return 0;
}

/* Creates a namespace with lo up and a veth (eth0 inside, the host end on the bridge, both up).
 * On success *ns_fd and veth are set. */
static int net_create(struct rp *rp, int *ns_fd, char veth[IFNAMSIZ], struct kd_error **err)
{
	if (unshare(CLONE_NEWNET) < 0)
		return rp_err(rp, err, errno, "unshare(CLONE_NEWNET): %s", strerror(errno));
	int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	int e = errno;
	struct rp_nl nl = {.fd = -1};
	int rc = fd >= 0 ? rp_nl_open(&nl) : -e;
	setns_home(rp);
	if (fd < 0)
		return rp_err(rp, err, e, "open new netns: %s", strerror(e));
	if (rc < 0) {
		close(fd);
		return rp_err(rp, err, -rc, "netlink socket in new netns: %s", strerror(-rc));
	}
	int br = 0;
	rc = rp_nl_link_index(&rp->br_nl, rp->cfg->bridge, &br);
	if (rc < 0) {
		rp_nl_close(&nl);
		close(fd);
		return rp_err(rp, err, -rc, "bridge %s in %s: %s", rp->cfg->bridge,
		              *rp->cfg->bridge_netns ? rp->cfg->bridge_netns : "own netns",
		              strerror(-rc));
	}
	for (int attempt = 0; attempt < 8; attempt++) {
		uint32_t r = 0;
		if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
			r = (uint32_t)getpid() * 2654435761u + rp->veth_seq;
		r ^= ++rp->veth_seq;
		snprintf(veth, IFNAMSIZ, "%.7s%08x", rp->cfg->veth_prefix, r);
		rc = rp_nl_veth_add(&rp->br_nl, veth, br, "eth0", fd);
		if (rc != -EEXIST)
			break;
	}
	if (rc < 0) {
		rp_nl_close(&nl);
		close(fd);
		return rp_err(rp, err, -rc, "create veth %s on bridge %s: %s", veth,
		              rp->cfg->bridge, strerror(-rc));
	}
	/* inside: lo up (eth0 comes up with its address and MAC in net_configure) */
	const char *what = "lo";
	int idx = 0;
	rc = rp_nl_link_index(&nl, "lo", &idx);
	if (rc == 0)
		rc = rp_nl_link_up(&nl, idx);
	rp_nl_close(&nl);
	if (rc < 0) {
		rp_nl_link_del(&rp->br_nl, veth);
		close(fd);
		return rp_err(rp, err, -rc, "set %s up in new netns: %s", what, strerror(-rc));
	}
	*ns_fd = fd;
	return 0;
}

/* Adds the pod address and routes to eth0 of the namespace ns_fd. */
static int net_configure(struct rp *rp, struct sandbox *sb, struct kd_error **err)
{
	struct rp_nl nl = {.fd = -1};
	int rc = nl_in(rp, sb->ns_fd, &nl);
	if (rc < 0)
		return rp_err(rp, err, -rc, "netlink socket in sandbox netns: %s", strerror(-rc));
	int eth0 = 0;
	const char *what = "find eth0";
	rc = rp_nl_link_index(&nl, "eth0", &eth0);
	if (rc == 0) {
		/* MAC from the IP (0a:58:a.b.c.d, as the CNI bridge plugin did): a reused pod IP
		 * keeps its MAC, so neighbours' ARP caches of an earlier pod stay right */
		const uint8_t *ip = (const uint8_t *)&sb->ip_be;
		const uint8_t mac[6] = {0x0a, 0x58, ip[0], ip[1], ip[2], ip[3]};
		what = "set MAC and up";
		rc = rp_nl_link_mac_up(&nl, eth0, mac);
	}
	if (rc == 0) {
		what = "add address";
		rc = rp_nl_addr_add(&nl, eth0, sb->ip_be, sb->prefix);
	}
	for (size_t i = 0; rc == 0 && i < rp->n_routes; i++) {
		what = "add route";
		rc = rp_nl_route_add(&nl, eth0, rp->routes[i].dst, rp->routes[i].prefix, 0);
		if (rc == -EEXIST) /* the address's own prefix route */
			rc = 0;
	}
	if (rc == 0 && rp->gateway_be) {
		what = "add default route";
		rc = rp_nl_route_add(&nl, eth0, 0, 0, rp->gateway_be);
	}
	rp_nl_close(&nl);
	if (rc < 0)
		return rp_err(rp, err, -rc, "%s (%s/%u on eth0): %s", what, sb->ip, sb->prefix,
		              strerror(-rc));
	return 0;
}

int rp_net_setup(struct rp *rp, struct sandbox *sb, struct kd_error **err)
{
	int rc = 0;
	if (rp->n_pool > 0) {
		struct pooled_ns *p = &rp->pool_ns[--rp->n_pool];
		sb->ns_fd = p->ns_fd;
		memcpy(sb->veth, p->veth, sizeof(sb->veth));
		rp->host->timer_start(rp->pool_timer, 0); /* refill */
	} else {
		rc = net_create(rp, &sb->ns_fd, sb->veth, err);
	}
	if (rc == 0)
		rc = net_configure(rp, sb, err);
	return rc;
}

void rp_net_destroy(struct rp *rp, int ns_fd, const char *veth)
{
	if (veth && *veth) {
		int rc = rp_nl_link_del(&rp->br_nl, veth);
		if (rc < 0 && rc != -ENODEV)
			rp->host->log(KD_LOG_WARN, "runtime-process: delete veth %s: %s", veth,
			              strerror(-rc));
	}
	if (ns_fd >= 0)
		close(ns_fd);
}

static void on_pool_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	struct rp *rp = arg;
	if (rp->n_pool >= rp->cfg->pool_size)
		return;
	struct pooled_ns *p = &rp->pool_ns[rp->n_pool];
	struct kd_error *err = NULL;
	if (net_create(rp, &p->ns_fd, p->veth, &err) < 0) {
		rp->host->log(KD_LOG_WARN, "runtime-process: pool: %s; retrying in 1s",
		              kd_error_msg(err));
		kd_error_free(err);
		rp->host->timer_start(t, 1000);
		return;
	}
	rp->n_pool++;
	if (rp->n_pool < rp->cfg->pool_size)
		rp->host->timer_start(t, 0);
}

int rp_net_init(struct rp *rp, struct kd_error **err)
{
	const struct rp_config *cfg = rp->cfg;
	uint32_t base;
	unsigned prefix;
	if (cfg->routes.n > KD_ARRAY_SIZE(rp->routes))
		return rp_err(rp, err, EINVAL, "routes: at most %zu entries",
		              KD_ARRAY_SIZE(rp->routes));
	for (size_t i = 0; i < cfg->routes.n; i++) {
		if (kd_ipam_parse_cidr(cfg->routes.items[i], 0, &base, &prefix) < 0)
			return rp_err(rp, err, EINVAL, "routes: \"%s\" is not an IPv4 CIDR",
			              cfg->routes.items[i]);
		rp->routes[rp->n_routes].dst = htonl(base);
		rp->routes[rp->n_routes].prefix = prefix;
		rp->n_routes++;
	}
	if (cfg->gateway && *cfg->gateway) {
		struct in_addr in;
		if (inet_pton(AF_INET, cfg->gateway, &in) != 1)
			return rp_err(rp, err, EINVAL, "gateway: \"%s\" is not an IPv4 address",
			              cfg->gateway);
		rp->gateway_be = in.s_addr;
	}
	if (!*cfg->veth_prefix || strlen(cfg->veth_prefix) > 7)
		return rp_err(rp, err, EINVAL, "veth-prefix: \"%s\" must have 1..7 characters",
		              cfg->veth_prefix);
	return 0;
}

int rp_net_open(struct rp *rp, struct kd_error **err)
{
	const struct rp_config *cfg = rp->cfg;
	rp->home_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (rp->home_fd < 0)
		return rp_err(rp, err, errno, "open own netns: %s", strerror(errno));
	int rc;
	if (cfg->bridge_netns && *cfg->bridge_netns) {
		int bfd = open(cfg->bridge_netns, O_RDONLY | O_CLOEXEC);
		if (bfd < 0)
			return rp_err(rp, err, errno, "bridge-netns %s: %s", cfg->bridge_netns,
			              strerror(errno));
		rc = nl_in(rp, bfd, &rp->br_nl);
		close(bfd);
	} else {
		rc = rp_nl_open(&rp->br_nl);
	}
	if (rc < 0)
		return rp_err(rp, err, -rc, "netlink socket for bridge-netns %s: %s",
		              cfg->bridge_netns, strerror(-rc));
	int br = 0;
	rc = rp_nl_link_index(&rp->br_nl, cfg->bridge, &br);
	if (rc < 0)
		rp->host->log(KD_LOG_WARN,
		              "runtime-process: bridge %s not found in %s (%s); sandboxes fail "
		              "until it exists",
		              cfg->bridge,
		              cfg->bridge_netns && *cfg->bridge_netns ? cfg->bridge_netns
		                                                      : "own netns",
		              strerror(-rc));
	return 0;
}

void rp_net_pool_start(struct rp *rp)
{
	if (!rp->cfg->pool_size)
		return;
	rp->pool_ns = kd_xcalloc(rp->cfg->pool_size, sizeof(*rp->pool_ns));
	rp->pool_timer = rp->host->timer_new(rp->host->loop, on_pool_timer, rp);
	rp->host->timer_start(rp->pool_timer, 0);
}

void rp_net_fini(struct rp *rp)
{
	for (size_t i = 0; i < rp->n_pool; i++)
		rp_net_destroy(rp, rp->pool_ns[i].ns_fd, rp->pool_ns[i].veth);
	free(rp->pool_ns);
	rp->host->timer_free(rp->pool_timer);
	rp_nl_close(&rp->br_nl);
	if (rp->home_fd >= 0)
		close(rp->home_fd);
}
