/* plugins/runtime-process/rp_netlink.h: the few rtnetlink requests a sandbox needs, on raw
 * NETLINK_ROUTE sockets (no libmnl, no `ip`): veth pair creation with the peer moved into a
 * network namespace and the host end enslaved to a bridge, link up/delete/lookup, IPv4 address
 * and route add. Each request waits for the kernel's ack (microseconds; no network I/O).
 * A netlink socket acts on the network namespace it was created in.
 * All functions return 0 or -errno (the kernel's error for the request). */
#ifndef RP_NETLINK_H
#define RP_NETLINK_H

#include <stdint.h>

struct rp_nl {
	int fd;
	uint32_t seq;
};

/* Opens a NETLINK_ROUTE socket in the caller thread's current network namespace. */
int rp_nl_open(struct rp_nl *nl);
void rp_nl_close(struct rp_nl *nl);

/* Index of the link called `name` into *index. -ENODEV if there is none. */
int rp_nl_link_index(struct rp_nl *nl, const char *name, int *index);
/* Sets a link up. */
int rp_nl_link_up(struct rp_nl *nl, int index);
/* Sets a link's MAC address (6 bytes) and then sets it up. */
int rp_nl_link_mac_up(struct rp_nl *nl, int index, const uint8_t mac[6]);
/* Deletes the link called `name` (a veth: both ends). -ENODEV if gone. */
int rp_nl_link_del(struct rp_nl *nl, const char *name);
/* Creates veth `name` (up, enslaved to master_index if > 0) in nl's namespace with its peer
 * `peer_name` (down: set it up from inside) in the namespace of peer_netns_fd. -EEXIST if
 * `name` exists. */
int rp_nl_veth_add(struct rp_nl *nl, const char *name, int master_index, const char *peer_name,
                   int peer_netns_fd);
/* Adds IPv4 address addr/prefix (network byte order) to a link. */
int rp_nl_addr_add(struct rp_nl *nl, int index, uint32_t addr, unsigned prefix);
/* Adds an IPv4 route dst/prefix (network byte order) through link `index`, via gateway gw (0:
 * on-link, scope link). */
int rp_nl_route_add(struct rp_nl *nl, int index, uint32_t dst, unsigned prefix, uint32_t gw);

#endif /* RP_NETLINK_H */
