/* kd/strmap.h: a string-keyed map of pointers (open addressing, linear probing, backward-shift
 * deletion): the one hash map of libkd and the plugins (scheduler nodes/pods, runtime sandboxes,
 * the write-back cache's entries, the codec's duplicate and template checks, the handshake). Keys
 * and values are borrowed: each key must stay valid while its entry is in the map (callers point it
 * into the value it maps to). A zeroed struct kd_strmap is an empty map. Not thread-safe. */
#ifndef KD_STRMAP_H
#define KD_STRMAP_H

#include <stddef.h>
#include <stdint.h>

#include "kd/common.h"

struct kd_strmap_slot {
	const char *key; /* NULL: empty */
	uint64_t hash;
	void *value;
};

struct kd_strmap {
	struct kd_strmap_slot *slots;
	size_t cap; /* 0 or a power of two */
	size_t n;
};

/* kd_hash_str(KD_HASH_INIT, s) (kd/hash.h). */
KD_API uint64_t kd_strmap_hash(const char *s);

/* The value for key (hash: kd_strmap_hash(key)), or NULL. */
KD_API void *kd_strmap_get_h(const struct kd_strmap *m, const char *key, uint64_t hash);
KD_API void *kd_strmap_get(const struct kd_strmap *m, const char *key);

/* Inserts or replaces key -> value (value non-NULL). key and value borrowed (see above). */
KD_API void kd_strmap_put(struct kd_strmap *m, const char *key, void *value);

/* Set use, or get-or-insert: inserts key -> value (value non-NULL) when key is absent and returns
 * NULL; when key is present, leaves the map unchanged and returns the value it has (borrowed).
 * One probe, so a duplicate check costs one hash of key. key and value borrowed (see above). */
KD_API void *kd_strmap_add(struct kd_strmap *m, const char *key, void *value);

/* Makes room for n entries in all, so that the next puts/adds up to n do not rehash. */
KD_API void kd_strmap_reserve(struct kd_strmap *m, size_t n);

/* Removes key; returns its value (borrowed, as put) or NULL. */
KD_API void *kd_strmap_del(struct kd_strmap *m, const char *key);

/* Iteration: the value of the first entry at or after slot *pos, or NULL at the end; sets *pos
 * past it. Start with *pos = 0. Entries must not be added or removed during an iteration (the
 * values may be freed, if the map is then only finalised). */
KD_API void *kd_strmap_next(const struct kd_strmap *m, size_t *pos);

/* Frees the table (not keys or values); the map is empty and reusable afterwards. */
KD_API void kd_strmap_fini(struct kd_strmap *m);

#endif /* KD_STRMAP_H */
