/* lib/kd_strmap.c: string-keyed map of pointers (see kd/strmap.h). */
#include "kd/strmap.h"

#include <stdlib.h>
#include <string.h>

#include "kd/common.h"
#include "kd/hash.h"

uint64_t kd_strmap_hash(const char *s)
{
	return kd_hash_str(KD_HASH_INIT, s);
}

static size_t find(const struct kd_strmap *m, const char *key, uint64_t hash)
{
	size_t mask = m->cap - 1;
	for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
		const struct kd_strmap_slot *s = &m->slots[i];
		if (!s->key || (s->hash == hash && strcmp(s->key, key) == 0))
			return i;
	}
}

void *kd_strmap_get_h(const struct kd_strmap *m, const char *key, uint64_t hash)
{
	if (!m->cap)
		return NULL;
	const struct kd_strmap_slot *s = &m->slots[find(m, key, hash)];
	return s->key ? s->value : NULL;
}

void *kd_strmap_get(const struct kd_strmap *m, const char *key)
{
	return kd_strmap_get_h(m, key, kd_strmap_hash(key));
}

static void resize(struct kd_strmap *m, size_t cap)
{
	struct kd_strmap old = *m;
	m->cap = cap;
	m->slots = kd_xcalloc(m->cap, sizeof(*m->slots));
	for (size_t i = 0; i < old.cap; i++)
		if (old.slots[i].key)
			m->slots[find(m, old.slots[i].key, old.slots[i].hash)] = old.slots[i];
	free(old.slots);
}

/* Smallest capacity (a power of two, >= 16) holding n entries at load factor <= 3/4. */
static size_t cap_for(size_t n)
{
	size_t cap = 16;
	while (n * 4 > cap * 3)
		cap *= 2;
	return cap;
}

void kd_strmap_reserve(struct kd_strmap *m, size_t n)
{
	if (n * 4 > m->cap * 3)
		resize(m, cap_for(n));
}

void kd_strmap_put(struct kd_strmap *m, const char *key, void *value)
{
	kd_strmap_reserve(m, m->n + 1);
	uint64_t hash = kd_strmap_hash(key);
	struct kd_strmap_slot *s = &m->slots[find(m, key, hash)];
	if (!s->key)
		m->n++;
	s->key = key;
	s->hash = hash;
	s->value = value;
}

void *kd_strmap_add(struct kd_strmap *m, const char *key, void *value)
{
	kd_strmap_reserve(m, m->n + 1);
	uint64_t hash = kd_strmap_hash(key);
	struct kd_strmap_slot *s = &m->slots[find(m, key, hash)];
	if (s->key)
		return s->value;
	*s = (struct kd_strmap_slot){.key = key, .hash = hash, .value = value};
	m->n++;
	return NULL;
}

void *kd_strmap_del(struct kd_strmap *m, const char *key)
{
	if (!m->cap)
		return NULL;
	size_t mask = m->cap - 1;
	size_t i = find(m, key, kd_strmap_hash(key));
	if (!m->slots[i].key)
		return NULL;
	void *value = m->slots[i].value;
	/* backward-shift: move later members of the probe run into the hole */
	for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
		size_t home = (size_t)m->slots[j].hash & mask;
		/* j may move to i if home is not cyclically in (i, j] */
		if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i] = (struct kd_strmap_slot){0};
	m->n--;
	return value;
}

void *kd_strmap_next(const struct kd_strmap *m, size_t *pos)
{
	for (size_t i = *pos; i < m->cap; i++) {
		if (m->slots[i].key) {
			*pos = i + 1;
			return m->slots[i].value;
		}
	}
	*pos = m->cap;
	return NULL;
}

void kd_strmap_fini(struct kd_strmap *m)
{
	free(m->slots);
	*m = (struct kd_strmap){0};
}
