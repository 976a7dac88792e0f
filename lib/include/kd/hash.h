/* kd/hash.h: the one non-cryptographic hash of libkd (64-bit FNV-1a), for hash tables and
 * stable short identifiers. Not for anything an adversary could exploit by choosing inputs
 * (keys from the network go into kd_strmap, whose probing stays linear in the worst case). */
#ifndef KD_HASH_H
#define KD_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "kd/common.h"

/* The FNV-1a 64 offset basis: the starting value of a hash. */
#define KD_HASH_INIT 14695981039346656037ull

/* Continues hash h over len bytes at p (p may be NULL when len is 0). */
KD_API uint64_t kd_hash_bytes(uint64_t h, const void *p, size_t len);
/* Continues hash h over the NUL-terminated string s (without the NUL). */
KD_API uint64_t kd_hash_str(uint64_t h, const char *s);

#endif /* KD_HASH_H */
