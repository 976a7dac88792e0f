/* lib/kd_hash.c: 64-bit FNV-1a (see kd/hash.h). */
#include "kd/hash.h"

#define FNV_PRIME 1099511628211ull

uint64_t kd_hash_bytes(uint64_t h, const void *p, size_t len)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * FNV_PRIME;
	return h;
}

uint64_t kd_hash_str(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * FNV_PRIME;
	return h;
}
