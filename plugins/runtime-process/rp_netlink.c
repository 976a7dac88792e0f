/* plugins/runtime-process/rp_netlink.c: see rp_netlink.h. */
#include "rp_netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RP_NL_BUF 4096

struct req {
	struct nlmsghdr *h;
	char buf[RP_NL_BUF] __attribute__((aligned(NLMSG_ALIGNTO)));
};

static void *req_init(struct req *r, uint16_t type, uint16_t flags, size_t hdr_len)
{
	memset(r->buf, 0, sizeof(r->buf));
	r->h = (struct nlmsghdr *)r->buf;
	r->h->nlmsg_len = NLMSG_LENGTH(hdr_len);
	r->h->nlmsg_type = type;
	r->h->nlmsg_flags = (uint16_t)(NLM_F_REQUEST | NLM_F_ACK | flags);
	return NLMSG_DATA(r->h);
}

static struct rtattr *attr_put(struct req *r, uint16_t type, const void *data, size_t len)
{
	size_t off = NLMSG_ALIGN(r->h->nlmsg_len);
	if (off + RTA_SPACE(len) > sizeof(r->buf))
		return NULL;
	struct rtattr *a = (struct rtattr *)(r->buf + off);
	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	r->h->nlmsg_len = (uint32_t)(off + RTA_SPACE(len));
	return a;
}

static struct rtattr *nest_begin(struct req *r, uint16_t type)
{
	return attr_put(r, type, NULL, 0);
}

static void nest_end(struct req *r, struct rtattr *nest)
{
	nest->rta_len = (unsigned short)(r->buf + r->h->nlmsg_len - (char *)nest);
}

int rp_nl_open(struct rp_nl *nl)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	int one = 1;
	setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	nl->fd = fd;
	nl->seq = 1;
	return 0;
}

void rp_nl_close(struct rp_nl *nl)
{
	if (nl->fd >= 0)
		close(nl->fd);
	nl->fd = -1;
}

/* Sends r and reads until the ack (or error) of its sequence number. A RTM_NEWLINK answer (for
 * RTM_GETLINK) stores the link index in *index if index is non-NULL. */
static int talk(struct rp_nl *nl, struct req *r, int *index)
{
	r->h->nlmsg_seq = ++nl->seq;
	struct sockaddr_nl to = {.nl_family = AF_NETLINK};
	ssize_t n;
	do {
		n = sendto(nl->fd, r->buf, r->h->nlmsg_len, 0, (struct sockaddr *)&to, sizeof(to));
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
	for (int rounds = 0; rounds < 64; rounds++) {
		do {
			n = recv(nl->fd, buf, sizeof(buf), 0);
		} while (n < 0 && errno == EINTR);
		if (n < 0)
			return -errno;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
		     h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_seq != nl->seq)
				continue;
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);
				return e->error; /* 0 is the ack */
			}
			if (h->nlmsg_type == RTM_NEWLINK && index) {
				const struct ifinfomsg *ifi = NLMSG_DATA(h);
				*index = ifi->ifi_index;
			}
		}
	}
	return -EIO;
}

int rp_nl_link_index(struct rp_nl *nl, const char *name, int *index)
{
	struct req r;
	struct ifinfomsg *ifi = req_init(&r, RTM_GETLINK, 0, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	attr_put(&r, IFLA_IFNAME, name, strlen(name) + 1);
	int idx = 0;
	int rc = talk(nl, &r, &idx);
	if (rc == 0 && idx <= 0)
		rc = -ENODEV;
	if (rc == 0)
		*index = idx;
	return rc;
}

int rp_nl_link_up(struct rp_nl *nl, int index)
{
	struct req r;
	struct ifinfomsg *ifi = req_init(&r, RTM_NEWLINK, 0, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = index;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	return talk(nl, &r, NULL);
}

int rp_nl_link_mac_up(struct rp_nl *nl, int index, const uint8_t mac[6])
{
	struct req r;
	struct ifinfomsg *ifi = req_init(&r, RTM_NEWLINK, 0, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = index;
	attr_put(&r, IFLA_ADDRESS, mac, 6);
	int rc = talk(nl, &r, NULL);
	return rc < 0 ? rc : rp_nl_link_up(nl, index);
}

int rp_nl_link_del(struct rp_nl *nl, const char *name)
{
	struct req r;
	struct ifinfomsg *ifi = req_init(&r, RTM_DELLINK, 0, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	attr_put(&r, IFLA_IFNAME, name, strlen(name) + 1);
	return talk(nl, &r, NULL);
}

int rp_nl_veth_add(struct rp_nl *nl, const char *name, int master_index, const char *peer_name,
                   int peer_netns_fd)
{
	struct req r;
	struct ifinfomsg *ifi = req_init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	attr_put(&r, IFLA_IFNAME, name, strlen(name) + 1);
	if (master_index > 0) {
		uint32_t m = (uint32_t)master_index;
		attr_put(&r, IFLA_MASTER, &m, sizeof(m));
	}
	struct rtattr *linkinfo = nest_begin(&r, IFLA_LINKINFO);
	attr_put(&r, IFLA_INFO_KIND, "veth", 4);
	struct rtattr *data = nest_begin(&r, IFLA_INFO_DATA);
	struct rtattr *peer = nest_begin(&r, VETH_INFO_PEER);
	/* the peer's struct ifinfomsg comes first in VETH_INFO_PEER */
	size_t off = NLMSG_ALIGN(r.h->nlmsg_len);
	struct ifinfomsg *pifi = (struct ifinfomsg *)(r.buf + off);
	memset(pifi, 0, sizeof(*pifi));
	pifi->ifi_family = AF_UNSPEC; /* created down: IFF_UP here fails with ENOTCONN */
	r.h->nlmsg_len = (uint32_t)(off + NLMSG_ALIGN(sizeof(*pifi)));
	attr_put(&r, IFLA_IFNAME, peer_name, strlen(peer_name) + 1);
	uint32_t nsfd = (uint32_t)peer_netns_fd;
	if (!attr_put(&r, IFLA_NET_NS_FD, &nsfd, sizeof(nsfd)))
		return -E2BIG;
	nest_end(&r, peer);
	nest_end(&r, data);
	nest_end(&r, linkinfo);
	return talk(nl, &r, NULL);
}

int rp_nl_addr_add(struct rp_nl *nl, int index, uint32_t addr, unsigned prefix)
{
	struct req r;
	struct ifaddrmsg *ifa = req_init(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = (unsigned char)prefix;
	ifa->ifa_index = (unsigned)index;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	attr_put(&r, IFA_LOCAL, &addr, sizeof(addr));
	attr_put(&r, IFA_ADDRESS, &addr, sizeof(addr));
	if (prefix < 31) {
		uint32_t mask = prefix ? htonl(~0u << (32 - prefix)) : 0;
		uint32_t brd = addr | ~mask;
		attr_put(&r, IFA_BROADCAST, &brd, sizeof(brd));
	}
	return talk(nl, &r, NULL);
}

int rp_nl_route_add(struct rp_nl *nl, int index, uint32_t dst, unsigned prefix, uint32_t gw)
{
	struct req r;
	struct rtmsg *rt = req_init(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, sizeof(*rt));
	rt->rtm_family = AF_INET;
	rt->rtm_dst_len = (unsigned char)prefix;
	rt->rtm_table = RT_TABLE_MAIN;
	rt->rtm_protocol = RTPROT_BOOT;
	rt->rtm_scope = gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
	rt->rtm_type = RTN_UNICAST;
	if (prefix)
		attr_put(&r, RTA_DST, &dst, sizeof(dst));
	if (gw)
		attr_put(&r, RTA_GATEWAY, &gw, sizeof(gw));
	uint32_t oif = (uint32_t)index;
	attr_put(&r, RTA_OIF, &oif, sizeof(oif));
	return talk(nl, &r, NULL);
}
