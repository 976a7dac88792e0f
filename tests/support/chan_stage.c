/* chan_stage.c (tests): in-memory stages for kd_chan tests; see chan_stage.h. */
#include "chan_stage.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kd/common.h"
#include "kd/error.h"
#include "kd/hash.h"

static uint64_t hash_str(const char *s)
{
	return kd_hash_str(KD_HASH_INIT, s);
}

void ts_map_fini(struct ts_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->v[i].op.key)
			kd_op_fini(&m->v[i].op);
	free(m->v);
	m->v = NULL;
	m->cap = m->n = 0;
}

static void map_grow(struct ts_map *m)
{
	struct ts_map nm = {.cap = m->cap ? m->cap * 2 : 64};
	nm.v = kd_xcalloc(nm.cap, sizeof(*nm.v));
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->v[i].op.key)
			continue;
		size_t j = hash_str(m->v[i].op.key) & (nm.cap - 1);
		while (nm.v[j].op.key)
			j = (j + 1) & (nm.cap - 1);
		nm.v[j] = m->v[i];
		nm.n++;
	}
	free(m->v);
	*m = nm;
}

struct ts_obj *ts_map_get(struct ts_map *m, const char *key, bool create)
{
	if (create && (m->n + 1) * 2 > m->cap)
		map_grow(m);
	if (!m->cap)
		return NULL;
	size_t j = hash_str(key) & (m->cap - 1);
	while (m->v[j].op.key) {
		if (strcmp(m->v[j].op.key, key) == 0)
			return &m->v[j];
		j = (j + 1) & (m->cap - 1);
	}
	if (!create)
		return NULL;
	kd_op_init(&m->v[j].op, KD_OP_NONE, key);
	m->v[j].applies = 0;
	m->v[j].dropped = false;
	m->n++;
	return &m->v[j];
}

static int down_held(void *ud, const char *source KD_UNUSED, struct kd_op_list *held,
                     struct kd_error **err)
{
	struct ts_down *d = ud;
	if (d->fail_held)
		return kd_error_set(err, d->fail_held, 0, "held: injected failure");
	for (size_t i = 0; i < d->objs.cap; i++) {
		struct ts_obj *o = &d->objs.v[i];
		if (!o->op.key || o->op.kind != KD_OP_UPSERT || o->dropped)
			continue;
		kd_op_copy(kd_op_list_push(held), &o->op);
	}
	return 0;
}

static int down_apply(void *ud, const char *source KD_UNUSED, uint64_t epoch,
                      const struct kd_op *op, struct kd_error **err KD_UNUSED)
{
	struct ts_down *d = ud;
	if (epoch < d->max_epoch)
		d->stale_applies++;
	d->max_epoch = KD_MAX(d->max_epoch, epoch);
	struct ts_obj *o = ts_map_get(&d->objs, op->key, true);
	d->applies++;
	if (o->applies)
		d->dup_applies++;
	o->applies++;
	o->dropped = false;
	kd_op_fini(&o->op);
	kd_op_copy(&o->op, op);
	return 0;
}

static int down_drop(void *ud, const char *source KD_UNUSED, const char *key,
                     struct kd_error **err KD_UNUSED)
{
	struct ts_down *d = ud;
	struct ts_obj *o = ts_map_get(&d->objs, key, false);
	d->drops++;
	if (o)
		o->dropped = true;
	return 0;
}

static int down_keep(void *ud, const char *source KD_UNUSED, const char *key KD_UNUSED,
                     struct kd_error **err KD_UNUSED)
{
	struct ts_down *d = ud;
	d->keeps++;
	return 0;
}

const struct kd_hs_down_cbs ts_down_cbs = {
    .held = down_held,
    .apply = down_apply,
    .drop = down_drop,
    .keep = down_keep,
};

void ts_down_fini(struct ts_down *d)
{
	ts_map_fini(&d->objs);
}

size_t ts_down_live(const struct ts_down *d)
{
	size_t n = 0;
	for (size_t i = 0; i < d->objs.cap; i++) {
		const struct ts_obj *o = &d->objs.v[i];
		if (o->op.key && o->op.kind == KD_OP_UPSERT && !o->dropped)
			n++;
	}
	return n;
}

static int up_wanted(void *ud, struct kd_op_list *out, struct kd_error **err KD_UNUSED)
{
	struct ts_up *u = ud;
	for (size_t i = 0; i < u->wanted.cap; i++) {
		struct ts_obj *o = &u->wanted.v[i];
		if (o->op.key && o->op.kind == KD_OP_UPSERT)
			kd_op_copy(kd_op_list_push(out), &o->op);
	}
	return 0;
}

static bool up_persisted(void *ud KD_UNUSED, const char *key KD_UNUSED)
{
	return false;
}

const struct kd_hs_up_cbs ts_up_cbs = {
    .wanted = up_wanted,
    .persisted = up_persisted,
};

void ts_up_fini(struct ts_up *u)
{
	ts_map_fini(&u->wanted);
}

void ts_make_ops(struct ts_up *u, struct kd_op_list *ops, const char *prefix, uint64_t first,
                 size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char key[128];
		uint64_t k = first + i;
		snprintf(key, sizeof(key), "ns/%s-%llu", prefix, (unsigned long long)k);
		struct kd_op *op = kd_op_list_push(ops);
		kd_op_init(op, KD_OP_UPSERT, key);
		kd_op_set_str(&op->node, "node-1");
		kd_op_set_tmpl(op, "PodAutoscaler", "hello-00001", "uid-1", "h1");
		if (u) {
			struct ts_obj *o = ts_map_get(&u->wanted, key, true);
			kd_op_fini(&o->op);
			kd_op_copy(&o->op, op);
		}
	}
}
