/* plugins/workload: the workload stage. Desired scale -> names of new instances and scale-down
 * victims, from the live instances the host passes on every call (no per-revision state: forget
 * is a no-op, a restarted host loses nothing).
 *
 * Decisions:
 *  - Names are `<base>-<suffix>`: base is the input's base_name (the template Deployment's name;
 *    the revision's name if NULL), '.' mapped to '-', truncated so the whole name is a DNS-1123
 *    label of at most 63 characters (trailing '-' of a truncated base dropped). The suffix has
 *    `name-suffix-length` characters from Kubernetes' generateName alphabet (no vowels, no 0/1/3:
 *    "bcdfghjklmnpqrstvwxz2456789").
 *  - Suffixes come from a per-plugin-instance counter mapped through a bijection of the suffix
 *    space (v = offset + counter * step mod 27^len, step not a multiple of 3), offset and step
 *    drawn from getrandom (or from `name-seed`). So one process never hands out the same suffix
 *    twice before it has handed out all 27^len of them (14.3 million for length 5), names look
 *    random, and two processes (a restarted host) start at unrelated points. Every candidate is
 *    also checked against the live set and the reserved names of the call and skipped if taken.
 *    The host passes instances that are gone from the count but may still exist (terminating,
 *    cancelled but not yet confirmed) as reserved names, so no name is reused while an instance
 *    of that name may exist; they do not count toward desired. The counter is shared by all
 *    revisions, so two bases that truncate to the same prefix still get distinct names.
 *  - create = desired - live, victims = live - desired (live counts distinct names): calling
 *    plan again with a live set that already matches yields an empty plan. `max-create-per-plan`
 *    caps the creations of one call (0: 10000, also the largest value allowed, so a bogus desired
 *    scale cannot make one call allocate without bound); the host plans again later.
 *  - Victims, never more than needed: not-ready instances first (unscheduled before scheduled,
 *    then newest first), then ready ones, newest first; ties: ephemeral before persisting before
 *    persisted (cancelling an unwritten instance is the cheapest removal), then name, descending.
 *    Newest first matches Kubernetes' ReplicaSet victim order and keeps long-warmed instances.
 *    Ready instances are never chosen while a not-ready one is available, even if the ready one
 *    is ephemeral: it is serving.
 *  - Creating requires the owner (kind, name and uid of the PodAutoscaler; api_version optional):
 *    every created instance carries it and the template hash in plan->created.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "kd/common.h"
#include "kd/config.h"
#include "kd/error.h"
#include "kd/plugin.h"
#include "kd/stage.h"
#include "kd/strmap.h"

#define NAME_MAX_LEN 63
#define ALPHABET     "bcdfghjklmnpqrstvwxz2456789"
#define ALPHABET_LEN 27u
#define SUFFIX_MAX   12    /* 27^12 < 2^63 */
#define CREATE_LIMIT 10000 /* creations per plan when max-create-per-plan is 0 */

struct wl_config {
	uint64_t suffix_len;
	uint64_t max_create;
	uint64_t seed;
};

static const struct kd_config_option wl_options[] = {
    KD_OPT_UINT("name-suffix-length", struct wl_config, suffix_len, .def = "5", .has_min = true,
                .min = 3, .has_max = true, .max = SUFFIX_MAX,
                .help = "characters of the random suffix of new instance names"),
    KD_OPT_UINT("max-create-per-plan", struct wl_config, max_create, .def = "0", .has_max = true,
                .max = CREATE_LIMIT,
                .help = "most new instances one plan creates; 0 means the built-in limit (10000)"),
    KD_OPT_UINT("name-seed", struct wl_config, seed, .def = "0",
                .help = "seed of the name sequence (for tests); 0 means random per process"),
    KD_CONFIG_END,
};

struct wl_plugin {
	const struct kd_host *host;
	unsigned suffix_len;
	uint64_t max_create;
	uint64_t space;   /* 27^suffix_len */
	uint64_t offset;  /* < space */
	uint64_t step;    /* < space, not a multiple of 3: coprime with space */
	uint64_t counter; /* names handed out */
};

/* --- names ------------------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Writes the base part of new names (at most max characters) to out: base_name, '.' as '-',
 * truncated, no trailing '-'. -EINVAL if it is not made of [a-z0-9.-] or does not start with an
 * alphanumeric character. */
static int make_base(const char *base, size_t max, char *out)
{
	size_t n = 0;
	if (!base || !*base ||
	    !((base[0] >= 'a' && base[0] <= 'z') || (base[0] >= '0' && base[0] <= '9')))
		return -EINVAL;
	for (const char *p = base; *p; p++) {
		char c = *p;
		if (c == '.')
			c = '-';
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return -EINVAL;
		if (n < max)
			out[n++] = c;
	}
	while (n > 0 && out[n - 1] == '-')
		n--;
	out[n] = '\0';
	return n ? 0 : -EINVAL;
}

/* The next suffix of the sequence into out (suffix_len + 1 bytes). */
static void next_suffix(struct wl_plugin *p, char *out)
{
	uint64_t c = p->counter++ % p->space;
	uint64_t v = (uint64_t)(((unsigned __int128)c * p->step + p->offset) % p->space);
	for (unsigned i = 0; i < p->suffix_len; i++) {
		out[p->suffix_len - 1 - i] = ALPHABET[v % ALPHABET_LEN];
		v /= ALPHABET_LEN;
	}
	out[p->suffix_len] = '\0';
}

/* --- victims ---------------------------------------------------------------------------------- */

static int victim_cmp(const void *a, const void *b)
{
	const struct kd_instance *x = *(const struct kd_instance *const *)a;
	const struct kd_instance *y = *(const struct kd_instance *const *)b;
	if (x->ready != y->ready)
		return x->ready ? 1 : -1; /* not ready first */
	if (!x->ready && (!x->node) != (!y->node))
		return !x->node ? -1 : 1; /* unscheduled first */
	if (x->created_ms != y->created_ms)
		return x->created_ms > y->created_ms ? -1 : 1; /* newest first */
	if (x->state != y->state)
		return x->state < y->state ? -1 : 1; /* ephemeral first */
	return -strcmp(x->name, y->name);
}

/* --- ops -------------------------------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
	return s ? kd_xstrdup(s) : NULL;
}

static int wl_plan(void *state, const struct kd_workload_input *in, struct kd_workload_plan *out,
                   struct kd_error **err)
{
	struct wl_plugin *p = state;
	if (!in || !out || !in->revision || !in->ns || (in->n_current && !in->current))
		return kd_error_set(err, EINVAL, 0,
		                    "workload plan: revision, namespace and live set required");
	if (in->desired < 0)
		return kd_error_set(err, EINVAL, 0, "workload plan %s: desired scale %d < 0",
		                    in->revision, (int)in->desired);
	for (size_t i = 0; i < in->n_current; i++)
		if (!in->current[i].name || !*in->current[i].name)
			return kd_error_set(err, EINVAL, 0,
			                    "workload plan %s: live instance %zu has no name",
			                    in->revision, i);
	if (in->n_reserved && !in->reserved)
		return kd_error_set(err, EINVAL, 0, "workload plan %s: reserved names missing",
		                    in->revision);

	/* taken: live names (counted once each) and reserved names (not counted) */
	struct kd_strmap taken = {0}; /* a set: each name maps to itself */
	kd_strmap_reserve(&taken, in->n_current + in->n_reserved);
	const struct kd_instance **uniq = kd_xmalloc((in->n_current + 1) * sizeof(*uniq));
	size_t n_live = 0;
	for (size_t i = 0; i < in->n_current; i++)
		if (!kd_strmap_add(&taken, in->current[i].name, (void *)in->current[i].name))
			uniq[n_live++] = &in->current[i];
	size_t n_taken = n_live;
	for (size_t i = 0; i < in->n_reserved; i++)
		if (in->reserved[i] &&
		    !kd_strmap_add(&taken, in->reserved[i], (void *)in->reserved[i]))
			n_taken++;

	int rc = 0;
	size_t desired = (size_t)in->desired;
	struct kd_workload_plan plan = {0};
	if (desired > n_live) {
		size_t want = desired - n_live;
		uint64_t cap = p->max_create ? p->max_create : CREATE_LIMIT;
		if (want > cap)
			want = (size_t)cap;
		const struct kd_owner_ref *o = &in->owner;
		if (!o->kind || !*o->kind || !o->name || !*o->name || !o->uid || !*o->uid) {
			rc = kd_error_set(
			    err, EINVAL, 0,
			    "workload plan %s: owner kind, name and uid required to create "
			    "instances",
			    in->revision);
			goto out;
		}
		const char *base = in->base_name;
		if (!base) {
			const char *slash = strchr(in->revision, '/');
			base = slash ? slash + 1 : in->revision;
		}
		char prefix[NAME_MAX_LEN + 1];
		if (make_base(base, NAME_MAX_LEN - 1 - p->suffix_len, prefix) < 0) {
			rc = kd_error_set(
			    err, EINVAL, 0,
			    "workload plan %s: base name \"%s\" is not a DNS-1123 name",
			    in->revision, base);
			goto out;
		}
		plan.create.items = kd_xcalloc(want, sizeof(char *));
		plan.created = kd_xcalloc(want, sizeof(*plan.created));
		/* Each skipped candidate is a distinct taken name, so want + n_taken tries bound
		 * the loop (unless the sequence wrapped around). */
		uint64_t tries = 0, max_tries = (uint64_t)want + n_taken + 1;
		/* name = "<prefix>-" then the suffix: at most NAME_MAX_LEN characters */
		char name[NAME_MAX_LEN + 2];
		size_t plen = strlen(prefix) + 1;
		snprintf(name, sizeof(name), "%s-", prefix);
		while (plan.create.n < want) {
			if (tries++ >= max_tries || tries > p->space) {
				rc = kd_error_set(
				    err, EAGAIN, 0,
				    "workload plan %s: no free instance name after %llu "
				    "tries",
				    in->revision, (unsigned long long)tries - 1);
				goto out;
			}
			next_suffix(p, name + plen);
			if (kd_strmap_get(&taken, name))
				continue;
			struct kd_instance_spec *s = &plan.created[plan.create.n];
			plan.create.items[plan.create.n++] = kd_xstrdup(name);
			s->name = kd_xstrdup(name);
			s->key = kd_xasprintf("%s/%s", in->ns, name);
			s->owner_api_version = dup_or_null(o->api_version);
			s->owner_kind = kd_xstrdup(o->kind);
			s->owner_name = kd_xstrdup(o->name);
			s->owner_uid = kd_xstrdup(o->uid);
			s->template_hash = dup_or_null(in->template_hash);
		}
	} else if (n_live > desired) {
		size_t n = n_live - desired;
		qsort(uniq, n_live, sizeof(*uniq), victim_cmp);
		plan.victims.items = kd_xcalloc(n, sizeof(char *));
		for (size_t i = 0; i < n; i++)
			plan.victims.items[plan.victims.n++] = kd_xstrdup(uniq[i]->name);
	}
	*out = plan;
	memset(&plan, 0, sizeof(plan));
out:
	kd_workload_plan_clear(&plan);
	free(uniq);
	kd_strmap_fini(&taken);
	return rc;
}

static void wl_forget(void *state, const char *revision)
{
	(void)state; /* nothing is kept per revision */
	(void)revision;
}

/* --- lifecycle -------------------------------------------------------------------------------- */

static int wl_init(const struct kd_host *host, const void *config, void **state,
                   struct kd_error **err)
{
	const struct wl_config *cfg = config;
	struct wl_plugin *p = kd_xcalloc(1, sizeof(*p));
	p->host = host;
	p->suffix_len = (unsigned)cfg->suffix_len;
	p->max_create = cfg->max_create;
	p->space = 1;
	for (unsigned i = 0; i < p->suffix_len; i++)
		p->space *= ALPHABET_LEN;
	uint64_t seed = cfg->seed;
	if (!seed && getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
		int e = errno;
		free(p);
		return kd_error_set(err, e ? e : EIO, 0, "plugin workload: getrandom: %s",
		                    strerror(e ? e : EIO));
	}
	p->offset = splitmix64(&seed) % p->space;
	p->step = splitmix64(&seed) % p->space;
	if (p->step % 3 == 0)
		p->step++; /* space is a power of 3: now coprime, and still < space */
	*state = p;
	return 0;
}

static void wl_fini(void *state)
{
	free(state);
}

static const struct kd_workload_ops wl_ops = {
    .struct_size = sizeof(struct kd_workload_ops),
    .plan = wl_plan,
    .forget = wl_forget,
};

KD_PLUGIN_EXPORT(
    "workload", KD_PLUGIN_WORKLOAD,
    .description = "desired scale -> unique instance names (owner, template hash) and victims",
    .options = wl_options, .config_size = sizeof(struct wl_config), .init = wl_init,
    .fini = wl_fini, .ops = &wl_ops)
