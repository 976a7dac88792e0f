/* kd/ipam.h: IPv4 pod-address management: pools carved from pod CIDRs, next-fit allocation of
 * the usable addresses (as the host-local IPAM plugin), shared by the runtime plugins.
 *
 * Rules (the runtimes' behaviour, kept exactly):
 *  - Pool CIDRs have prefix lengths 8..30. A pool's usable addresses skip the network address,
 *    the first host (the node's bridge/gateway, as kubenet's cbr0) and the broadcast address:
 *    a /24 has 253.
 *  - Allocation is next-fit from a cursor, so a released address is reused only once the cursor
 *    wraps around. The cursor starts at the first usable address, or at a random one with
 *    kd_ipam_options.random_start.
 *  - A set holds pools created on first use. Asking for a CIDR that overlaps a pool (other than
 *    the same CIDR) fails with EINVAL while that pool has addresses in use; an idle overlapping
 *    pool is dropped (e.g. a default CIDR used before the node's own one was known).
 * Addresses are host-order uint32_t. Not thread-safe: one owner (a plugin's loop thread).
 * Ownership: string arguments are borrowed for the call (a pool keeps its own canonical CIDR);
 * a set owns its pools; *err, when set on failure, is owned by the caller (kd_error_free) and
 * err may be NULL. Out-parameters are set only on success. */
#ifndef KD_IPAM_H
#define KD_IPAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kd/common.h"
#include "kd/error.h"

/* Bytes for a dotted IPv4 address and its NUL (INET_ADDRSTRLEN). */
#define KD_IPAM_IP_STRLEN 16

struct kd_ipam;      /* a set of pools; opaque */
struct kd_ipam_pool; /* one pool; opaque */

struct kd_ipam_options {
	/* Start each new pool's cursor at a random usable address (getrandom; the first one if no
	 * randomness is available) instead of the first, so a restarted host does not hand out
	 * the previous run's addresses first. */
	bool random_start;
};

/* Parses "a.b.c.d/n" with min_prefix <= n <= 30 into the network address (host bits cleared,
 * host order) and n. Returns 0, or -EINVAL (outputs untouched). */
KD_API int kd_ipam_parse_cidr(const char *cidr, unsigned min_prefix, uint32_t *base,
                              unsigned *prefix);

/* Writes ip (host order) as dotted, NUL-terminated text to out (caller storage). */
KD_API void kd_ipam_ip_text(uint32_t ip, char out[KD_IPAM_IP_STRLEN]);

/* A new empty set. opts may be NULL (defaults: all false); copied. Returns owned; free with
 * kd_ipam_free. */
KD_API struct kd_ipam *kd_ipam_new(const struct kd_ipam_options *opts);

/* Frees the set and all its pools (every pool pointer becomes invalid). NULL is fine. */
KD_API void kd_ipam_free(struct kd_ipam *ipam);

/* Finds the pool of cidr (any spelling of the same network) or creates it, dropping idle
 * overlapping pools. Returns borrowed (owned by ipam; valid until kd_ipam_free, or until the
 * pool is idle and a kd_ipam_pool_get of an overlapping CIDR drops it), or NULL with *err:
 * EINVAL `pod CIDR "x" is not an IPv4 CIDR with a prefix length between 8 and 30` or
 * EINVAL `pod CIDR x overlaps y, which still has N addresses in use`. */
KD_API struct kd_ipam_pool *kd_ipam_pool_get(struct kd_ipam *ipam, const char *cidr,
                                             struct kd_error **err);

/* Canonical "a.b.c.d/n" of the pool. Borrowed; valid while the pool is. */
KD_API const char *kd_ipam_pool_cidr(const struct kd_ipam_pool *pool);
/* Prefix length of the pool's CIDR. */
KD_API unsigned kd_ipam_pool_prefix(const struct kd_ipam_pool *pool);
/* Addresses in use / usable addresses of the pool. */
KD_API uint32_t kd_ipam_pool_used(const struct kd_ipam_pool *pool);
KD_API uint32_t kd_ipam_pool_usable(const struct kd_ipam_pool *pool);

/* Allocates the next free usable address after the cursor into *ip. Returns 0, or
 * -EADDRNOTAVAIL with *err `pod CIDR x is exhausted (N of M addresses in use)`. */
KD_API int kd_ipam_alloc(struct kd_ipam_pool *pool, uint32_t *ip, struct kd_error **err);

/* Takes the given address (dotted text; the cursor does not move) and sets *ip to it. Returns 0,
 * or -EINVAL with *err `pod IP "x" is not an IPv4 address` or `pod IP x is not a usable address
 * of pod CIDR y`, or -EADDRINUSE with `pod IP x is already in use`. */
KD_API int kd_ipam_reserve(struct kd_ipam_pool *pool, const char *ip_text, uint32_t *ip,
                           struct kd_error **err);

/* Returns ip to the pool (the pool is borrowed); an address not in use (or not of the pool) is
 * ignored. */
KD_API void kd_ipam_release(struct kd_ipam_pool *pool, uint32_t ip);

#endif /* KD_IPAM_H */
