/* plugins/scheduler/strmap.h: a string-keyed hash map (open addressing, linear probing,
 * backward-shift deletion) for the scheduler plugin. Keys are borrowed: each must stay valid
 * while its entry is in the map (the scheduler points them into the value they map to). */
#ifndef KD_SCHED_STRMAP_H
#define KD_SCHED_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap_slot {
	const char *key; /* NULL: empty */
	uint64_t hash;
	void *value;
};

struct strmap {
	struct strmap_slot *slots;
	size_t cap; /* 0 or a power of two */
	size_t n;
};

/* FNV-1a of s. */
uint64_t strmap_hash(const char *s);

/* The value for key (hash: strmap_hash(key)), or NULL. */
void *strmap_get_h(const struct strmap *m, const char *key, uint64_t hash);
void *strmap_get(const struct strmap *m, const char *key);

/* Inserts or replaces key -> value (value non-NULL). */
void strmap_put(struct strmap *m, const char *key, void *value);

/* Removes key; returns its value or NULL. */
void *strmap_del(struct strmap *m, const char *key);

/* Frees the table (not keys or values); the map is empty and reusable afterwards. */
void strmap_fini(struct strmap *m);

#endif /* KD_SCHED_STRMAP_H */
