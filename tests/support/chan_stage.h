/* chan_stage.h (tests): tiny in-memory stages for kd_chan tests, the harness and bench/chan.
 * A downstream stage keeps the objects applied per key and counts how often each key was
 * applied; an upstream stage keeps every op it produced as "wanted" (nothing is persisted). */
#ifndef KD_TEST_CHAN_STAGE_H
#define KD_TEST_CHAN_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kd/delta.h"
#include "kd/handshake.h"

/* String-keyed hash map of ops (copies), with a per-key apply counter. */
struct ts_obj {
	struct kd_op op; /* key NULL = empty slot */
	unsigned applies;
	bool dropped;
};

struct ts_map {
	struct ts_obj *v;
	size_t cap, n;
};

void ts_map_fini(struct ts_map *m);
/* Returns the entry for key (borrowed), creating an empty one (op.key NULL) when create. */
struct ts_obj *ts_map_get(struct ts_map *m, const char *key, bool create);

struct ts_down {
	struct ts_map objs;
	uint64_t applies;     /* total apply calls */
	uint64_t dup_applies; /* apply calls for a key already applied (same life) */
	uint64_t drops;
	uint64_t keeps;
	uint64_t max_epoch;     /* highest epoch an op was applied under */
	uint64_t stale_applies; /* ops applied under an epoch older than max_epoch (fencing bug) */
	int fail_held;          /* if non-zero, held fails with this errno */
};

/* kd_hs_down_cbs for a struct ts_down (ud). */
extern const struct kd_hs_down_cbs ts_down_cbs;
void ts_down_fini(struct ts_down *d);
/* Number of live (applied, not deleted or dropped) objects. */
size_t ts_down_live(const struct ts_down *d);

struct ts_up {
	struct ts_map wanted;
};

/* kd_hs_up_cbs for a struct ts_up (ud). */
extern const struct kd_hs_up_cbs ts_up_cbs;
void ts_up_fini(struct ts_up *u);
/* Builds n upserts "ns/<prefix>-<i>" for i in [first, first+n) into ops, and records them as
 * wanted in u (if u is non-NULL). */
void ts_make_ops(struct ts_up *u, struct kd_op_list *ops, const char *prefix, uint64_t first,
                 size_t n);

#endif /* KD_TEST_CHAN_STAGE_H */
