/* lib/kd_ipam.c: IPv4 pod-address pools (see kd/ipam.h). */
#include "kd/ipam.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "kd/common.h"

struct kd_ipam_pool {
	struct kd_ipam_pool *next;
	char cidr[64];   /* canonical "a.b.c.d/n" */
	uint32_t base;   /* network address, host order */
	uint32_t size;   /* 2^(32-prefix) */
	unsigned prefix; /* 8..30 */
	uint32_t used;
	uint32_t cursor; /* next offset to try */
	uint8_t *bits;   /* one bit per offset */
};

struct kd_ipam {
	struct kd_ipam_options opts;
	struct kd_ipam_pool *pools;
};

int kd_ipam_parse_cidr(const char *cidr, unsigned min_prefix, uint32_t *base, unsigned *prefix)
{
	const char *slash = strchr(cidr, '/');
	if (!slash || slash - cidr >= 16)
		return -EINVAL;
	char addr[16];
	memcpy(addr, cidr, (size_t)(slash - cidr));
	addr[slash - cidr] = '\0';
	struct in_addr in;
	if (inet_pton(AF_INET, addr, &in) != 1)
		return -EINVAL;
	char *end;
	unsigned long p = strtoul(slash + 1, &end, 10);
	if (!slash[1] || *end || p < min_prefix || p > 30)
		return -EINVAL;
	uint32_t mask = p ? ~0u << (32 - p) : 0;
	*base = ntohl(in.s_addr) & mask;
	*prefix = (unsigned)p;
	return 0;
}

void kd_ipam_ip_text(uint32_t ip, char out[KD_IPAM_IP_STRLEN])
{
	struct in_addr in = {.s_addr = htonl(ip)};
	inet_ntop(AF_INET, &in, out, KD_IPAM_IP_STRLEN);
}

struct kd_ipam *kd_ipam_new(const struct kd_ipam_options *opts)
{
	struct kd_ipam *ipam = kd_xcalloc(1, sizeof(*ipam));
	if (opts)
		ipam->opts = *opts;
	return ipam;
}

static void pool_free(struct kd_ipam_pool *p)
{
	free(p->bits);
	free(p);
}

void kd_ipam_free(struct kd_ipam *ipam)
{
	if (!ipam)
		return;
	while (ipam->pools) {
		struct kd_ipam_pool *p = ipam->pools;
		ipam->pools = p->next;
		pool_free(p);
	}
	free(ipam);
}

static bool bit_get(const struct kd_ipam_pool *p, uint32_t off)
{
	return p->bits[off / 8] & (1u << (off % 8));
}

static void bit_set(struct kd_ipam_pool *p, uint32_t off, bool v)
{
	if (v)
		p->bits[off / 8] |= (uint8_t)(1u << (off % 8));
	else
		p->bits[off / 8] &= (uint8_t) ~(1u << (off % 8));
}

struct kd_ipam_pool *kd_ipam_pool_get(struct kd_ipam *ipam, const char *cidr, struct kd_error **err)
{
	uint32_t base;
	unsigned prefix;
	if (kd_ipam_parse_cidr(cidr, 8, &base, &prefix) < 0) {
		kd_error_set(
		    err, EINVAL, 0,
		    "pod CIDR \"%s\" is not an IPv4 CIDR with a prefix length between 8 and 30",
		    cidr);
		return NULL;
	}
	uint32_t size = 1u << (32 - prefix);
	for (struct kd_ipam_pool **pp = &ipam->pools; *pp;) {
		struct kd_ipam_pool *p = *pp;
		if (p->base == base && p->size == size)
			return p;
		/* compare last addresses: no overflow at 255.255.255.255 */
		uint32_t last = base + (size - 1), plast = p->base + (p->size - 1);
		bool overlap = base <= plast && p->base <= last;
		if (overlap && p->used) {
			kd_error_set(err, EINVAL, 0,
			             "pod CIDR %s overlaps %s, which still has %u addresses in use",
			             cidr, p->cidr, p->used);
			return NULL;
		}
		if (overlap) {
			*pp = p->next;
			pool_free(p);
			continue;
		}
		pp = &p->next;
	}
	struct kd_ipam_pool *p = kd_xcalloc(1, sizeof(*p));
	char ip[KD_IPAM_IP_STRLEN];
	kd_ipam_ip_text(base, ip);
	snprintf(p->cidr, sizeof(p->cidr), "%s/%u", ip, prefix);
	p->base = base;
	p->size = size;
	p->prefix = prefix;
	p->cursor = 2;
	if (ipam->opts.random_start) {
		uint32_t r = 0;
		if (getrandom(&r, sizeof(r), GRND_NONBLOCK) == sizeof(r))
			p->cursor = 2 + r % (size - 3);
	}
	p->bits = kd_xcalloc(size / 8 + 1, 1);
	p->next = ipam->pools;
	ipam->pools = p;
	return p;
}

const char *kd_ipam_pool_cidr(const struct kd_ipam_pool *pool)
{
	return pool->cidr;
}

unsigned kd_ipam_pool_prefix(const struct kd_ipam_pool *pool)
{
	return pool->prefix;
}

uint32_t kd_ipam_pool_used(const struct kd_ipam_pool *pool)
{
	return pool->used;
}

uint32_t kd_ipam_pool_usable(const struct kd_ipam_pool *pool)
{
	return pool->size - 3; /* network, gateway, broadcast */
}

int kd_ipam_alloc(struct kd_ipam_pool *p, uint32_t *ip, struct kd_error **err)
{
	if (p->used >= kd_ipam_pool_usable(p))
		return kd_error_set(err, EADDRNOTAVAIL, 0,
		                    "pod CIDR %s is exhausted (%u of %u addresses in use)", p->cidr,
		                    p->used, kd_ipam_pool_usable(p));
	uint32_t o = p->cursor;
	for (;;) {
		if (o < 2 || o > p->size - 2)
			o = 2;
		if (!bit_get(p, o))
			break;
		o++;
	}
	bit_set(p, o, true);
	p->used++;
	p->cursor = o + 1;
	*ip = p->base + o;
	return 0;
}

int kd_ipam_reserve(struct kd_ipam_pool *p, const char *ip_text, uint32_t *ip,
                    struct kd_error **err)
{
	struct in_addr in;
	if (inet_pton(AF_INET, ip_text, &in) != 1)
		return kd_error_set(err, EINVAL, 0, "pod IP \"%s\" is not an IPv4 address",
		                    ip_text);
	uint32_t a = ntohl(in.s_addr);
	uint32_t off = a - p->base;
	if (a < p->base || off < 2 || off > p->size - 2)
		return kd_error_set(err, EINVAL, 0,
		                    "pod IP %s is not a usable address of pod CIDR %s", ip_text,
		                    p->cidr);
	if (bit_get(p, off))
		return kd_error_set(err, EADDRINUSE, 0, "pod IP %s is already in use", ip_text);
	bit_set(p, off, true);
	p->used++;
	*ip = a;
	return 0;
}

void kd_ipam_release(struct kd_ipam_pool *p, uint32_t ip)
{
	uint32_t off = ip - p->base;
	if (ip < p->base || off >= p->size)
		return;
	if (bit_get(p, off)) {
		bit_set(p, off, false);
		p->used--;
	}
}
