/* plugins/scheduler: the scheduler stage. Binds instances to nodes from an in-memory inventory
 * (node_update/node_remove) and an accounting of every pod on them: pods bound through the API
 * Server (pod_bound) and our own instances, assumed from place() until release() (DESIGN
 * invariant 7: a node's allocatable is never over-committed, counting ephemeral instances).
 *
 * Filters, in this order; a node that fails one counts under that reason only:
 *  1. "node not ready": not Ready nodes are skipped whatever the pod tolerates (a kd-node that is
 *     not ready cannot start anything).
 *  2. "node unschedulable": cordoned nodes, unless the pod tolerates
 *     node.kubernetes.io/unschedulable:NoSchedule (as Kubernetes' NodeUnschedulable plugin).
 *  3. "taint {key=value:Effect} not tolerated": every NoSchedule and NoExecute taint must be
 *     tolerated (Kubernetes' matching: effect empty = any, key empty + Exists = any key, Equal
 *     compares values); PreferNoSchedule does not filter (see scores).
 *  4. "node selector {key=value} not matched": every nodeSelector entry must equal a node label.
 *  5. Resource fit: "too many pods", "insufficient cpu", "insufficient memory": used + request
 *     <= allocatable, for cpu and memory only when the request is non-zero (as Kubernetes). A
 *     request's pods value <= 0 counts as 1.
 * When nothing fits, place() fails with -ENOSPC and
 *   `no node fits pod ns/name: 3 nodes: 2 insufficient cpu, 1 taint {k=v:NoSchedule} not tolerated`
 * (reasons by count, descending, then by text).
 *
 * Scores (option `score`):
 *  - least-allocated (default): mean over cpu, memory and pods (each with allocatable > 0) of the
 *    free fraction of the node after placing the pod. Pods is included so that pods requesting
 *    no cpu or memory still spread.
 *  - spread: fewest pods of the same revision on the node, then least-allocated.
 * Within either, before least-allocated: fewer PreferNoSchedule taints the pod does not
 * tolerate (such nodes are used only when no other node fits).
 * Ties go round-robin: nodes are scanned from a cursor just past the last chosen node (in the
 * order nodes were added) and the first best node wins, so equal nodes take turns in a burst and
 * the outcome is a deterministic function of the call sequence.
 *
 * Accounting: pods are kept by key with the node name they are on. A pod on a node the scheduler
 * does not know (pod_bound before node_update, or its node removed) counts as soon as a node of
 * that name is added (again). place() and pod_bound() are idempotent by key: place returns the
 * node already recorded for the key (whatever that node's state now); pod_bound moves the pod if
 * the API Server shows it on another node (the API wins) and never counts it twice, so an
 * ephemeral instance that gets written back and then observed is still counted once.
 * Limits: pods bound by another scheduler that the host has not yet reported are not counted
 * (the node's own admission refuses them if the node is full).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd/common.h"
#include "kd/config.h"
#include "kd/error.h"
#include "kd/plugin.h"
#include "kd/stage.h"
#include "kd/strmap.h"

enum sch_score { SCORE_LEAST_ALLOCATED = 0, SCORE_SPREAD = 1 };

static const char *const score_choices[] = {"least-allocated", "spread", NULL};

struct sch_config {
	int score; /* enum sch_score */
};

static const struct kd_config_option sch_options[] = {
    KD_OPT_ENUM("score", struct sch_config, score, .def = "least-allocated",
                .choices = score_choices,
                .help = "node score: least-allocated (most free resources) or spread (fewest "
                        "pods of the same revision, then least-allocated)"),
    KD_CONFIG_END,
};

struct usage {
	__int128 cpu_milli, memory_bytes, pods;
};

struct rev_count {
	char *rev; /* owned; key in node->revs */
	int64_t n;
};

struct sch_node {
	char *name; /* owned; key in sched->node_map */
	bool ready, schedulable;
	struct kd_resources alloc;
	struct usage used;                 /* 128 bits: sums of int64 requests cannot overflow */
	char **label_keys, **label_values; /* owned */
	size_t n_labels;
	struct kd_taint *taints; /* key/value owned */
	size_t n_taints;
	struct kd_strmap revs; /* revision -> struct rev_count */
};

struct sch_pod {
	char *key;      /* owned; key in sched->pods */
	char *node;     /* owned */
	char *revision; /* owned, or NULL */
	uint64_t rev_hash;
	struct kd_resources req;
	struct sch_node *on; /* counted on this node, or NULL (node not known) */
};

struct sched {
	const struct kd_host *host;
	enum sch_score score;
	struct sch_node **nodes; /* in the order added */
	size_t n_nodes, cap_nodes;
	size_t cursor;             /* round-robin start */
	struct kd_strmap node_map; /* name -> struct sch_node */
	struct kd_strmap pods;     /* key -> struct sch_pod */
};

/* --- accounting ---------------------------------------------------------------------- */

static void attach(struct sch_node *n, struct sch_pod *p)
{
	p->on = n;
	n->used.cpu_milli += p->req.cpu_milli;
	n->used.memory_bytes += p->req.memory_bytes;
	n->used.pods += p->req.pods;
	if (!p->revision)
		return;
	struct rev_count *rc = kd_strmap_get_h(&n->revs, p->revision, p->rev_hash);
	if (!rc) {
		rc = kd_xcalloc(1, sizeof(*rc));
		rc->rev = kd_xstrdup(p->revision);
		kd_strmap_put(&n->revs, rc->rev, rc);
	}
	rc->n++;
}

static void detach(struct sch_pod *p)
{
	struct sch_node *n = p->on;
	if (!n)
		return;
	p->on = NULL;
	n->used.cpu_milli -= p->req.cpu_milli;
	n->used.memory_bytes -= p->req.memory_bytes;
	n->used.pods -= p->req.pods;
	if (!p->revision)
		return;
	struct rev_count *rc = kd_strmap_get_h(&n->revs, p->revision, p->rev_hash);
	if (rc && --rc->n == 0) {
		kd_strmap_del(&n->revs, rc->rev);
		free(rc->rev);
		free(rc);
	}
}

static void pod_free(struct sch_pod *p)
{
	free(p->key);
	free(p->node);
	free(p->revision);
	free(p);
}

static int check_request(const struct kd_pod_request *pod, struct kd_error **err)
{
	if (!pod || !pod->key || !*pod->key)
		return kd_error_set(err, EINVAL, 0, "scheduler: pod request without a key");
	if (pod->requests.cpu_milli < 0 || pod->requests.memory_bytes < 0 || pod->requests.pods < 0)
		return kd_error_set(err, EINVAL, 0, "scheduler: pod %s: negative resource request",
		                    pod->key);
	if ((pod->n_node_selector && !pod->node_selector) ||
	    (pod->n_tolerations && !pod->tolerations))
		return kd_error_set(err, EINVAL, 0,
		                    "scheduler: pod %s: selector or tolerations "
		                    "missing",
		                    pod->key);
	for (size_t i = 0; i < pod->n_node_selector; i++)
		if (!pod->node_selector[i].key)
			return kd_error_set(err, EINVAL, 0,
			                    "scheduler: pod %s: node selector entry without a key",
			                    pod->key);
	return 0;
}

/* A new pod record (not attached). */
static struct sch_pod *pod_new(const struct kd_pod_request *req, const char *node)
{
	struct sch_pod *p = kd_xcalloc(1, sizeof(*p));
	p->key = kd_xstrdup(req->key);
	p->node = kd_xstrdup(node);
	if (req->revision) {
		p->revision = kd_xstrdup(req->revision);
		p->rev_hash = kd_strmap_hash(p->revision);
	}
	p->req = req->requests;
	if (p->req.pods <= 0)
		p->req.pods = 1;
	return p;
}

/* --- nodes --------------------------------------------------------------------------- */

static void node_clear_meta(struct sch_node *n)
{
	for (size_t i = 0; i < n->n_labels; i++) {
		free(n->label_keys[i]);
		free(n->label_values[i]);
	}
	free(n->label_keys);
	free(n->label_values);
	for (size_t i = 0; i < n->n_taints; i++) {
		free((char *)n->taints[i].key);
		free((char *)n->taints[i].value);
	}
	free(n->taints);
	n->label_keys = n->label_values = NULL;
	n->taints = NULL;
	n->n_labels = n->n_taints = 0;
}

static void node_free(struct sch_node *n)
{
	node_clear_meta(n);
	for (size_t i = 0; i < n->revs.cap; i++) {
		struct rev_count *rc = n->revs.slots[i].value;
		if (n->revs.slots[i].key) {
			free(rc->rev);
			free(rc);
		}
	}
	kd_strmap_fini(&n->revs);
	free(n->name);
	free(n);
}

static int sch_node_update(void *state, const struct kd_node_info *info, struct kd_error **err)
{
	struct sched *s = state;
	if (!info || !info->name || !*info->name || strlen(info->name) >= KD_NODE_NAME_MAX)
		return kd_error_set(err, EINVAL, 0, "scheduler: node without a valid name");
	if (info->allocatable.cpu_milli < 0 || info->allocatable.memory_bytes < 0 ||
	    info->allocatable.pods < 0)
		return kd_error_set(err, EINVAL, 0, "scheduler: node %s: negative allocatable",
		                    info->name);
	if ((info->n_labels && !info->labels) || (info->n_taints && !info->taints))
		return kd_error_set(err, EINVAL, 0, "scheduler: node %s: labels or taints missing",
		                    info->name);
	for (size_t i = 0; i < info->n_labels; i++)
		if (!info->labels[i].key)
			return kd_error_set(err, EINVAL, 0,
			                    "scheduler: node %s: label without a key", info->name);
	for (size_t i = 0; i < info->n_taints; i++)
		if (!info->taints[i].key || info->taints[i].effect < KD_TAINT_NO_SCHEDULE ||
		    info->taints[i].effect > KD_TAINT_NO_EXECUTE)
			return kd_error_set(err, EINVAL, 0,
			                    "scheduler: node %s: taint without a key or effect",
			                    info->name);

	struct sch_node *n = kd_strmap_get(&s->node_map, info->name);
	bool added = !n;
	if (added) {
		n = kd_xcalloc(1, sizeof(*n));
		n->name = kd_xstrdup(info->name);
		kd_strmap_put(&s->node_map, n->name, n);
		if (s->n_nodes == s->cap_nodes) {
			s->cap_nodes = s->cap_nodes ? s->cap_nodes * 2 : 16;
			s->nodes = kd_xrealloc(s->nodes, s->cap_nodes * sizeof(*s->nodes));
		}
		s->nodes[s->n_nodes++] = n;
	} else {
		node_clear_meta(n);
	}
	n->ready = info->ready;
	n->schedulable = info->schedulable;
	n->alloc = info->allocatable;
	if (info->n_labels) {
		n->label_keys = kd_xcalloc(info->n_labels, sizeof(char *));
		n->label_values = kd_xcalloc(info->n_labels, sizeof(char *));
		for (size_t i = 0; i < info->n_labels; i++) {
			n->label_keys[i] = kd_xstrdup(info->labels[i].key);
			n->label_values[i] =
			    kd_xstrdup(info->labels[i].value ? info->labels[i].value : "");
		}
		n->n_labels = info->n_labels;
	}
	if (info->n_taints) {
		n->taints = kd_xcalloc(info->n_taints, sizeof(*n->taints));
		for (size_t i = 0; i < info->n_taints; i++) {
			n->taints[i].key = kd_xstrdup(info->taints[i].key);
			n->taints[i].value =
			    kd_xstrdup(info->taints[i].value ? info->taints[i].value : "");
			n->taints[i].effect = info->taints[i].effect;
		}
		n->n_taints = info->n_taints;
	}
	if (added) /* pods recorded on this name before it was (re)added count again */
		for (size_t i = 0; i < s->pods.cap; i++) {
			struct sch_pod *p = s->pods.slots[i].value;
			if (s->pods.slots[i].key && !p->on && strcmp(p->node, n->name) == 0)
				attach(n, p);
		}
	return 0;
}

static void sch_node_remove(void *state, const char *name)
{
	struct sched *s = state;
	struct sch_node *n = name ? kd_strmap_del(&s->node_map, name) : NULL;
	if (!n)
		return;
	for (size_t i = 0; i < s->pods.cap; i++) {
		struct sch_pod *p = s->pods.slots[i].value;
		if (s->pods.slots[i].key && p->on == n)
			detach(p);
	}
	for (size_t i = 0; i < s->n_nodes; i++) {
		if (s->nodes[i] != n)
			continue;
		memmove(&s->nodes[i], &s->nodes[i + 1], (s->n_nodes - i - 1) * sizeof(*s->nodes));
		s->n_nodes--;
		if (s->cursor > i)
			s->cursor--;
		break;
	}
	if (s->cursor >= s->n_nodes)
		s->cursor = 0;
	node_free(n);
}

/* --- filters and scores -------------------------------------------------------------- */

static const char *effect_name(enum kd_taint_effect e)
{
	switch (e) {
	case KD_TAINT_NO_SCHEDULE:
		return "NoSchedule";
	case KD_TAINT_PREFER_NO_SCHEDULE:
		return "PreferNoSchedule";
	case KD_TAINT_NO_EXECUTE:
		return "NoExecute";
	default:
		return "";
	}
}

static bool str_eq0(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static bool tolerates(const struct kd_pod_request *pod, const char *key, const char *value,
                      enum kd_taint_effect effect)
{
	for (size_t i = 0; i < pod->n_tolerations; i++) {
		const struct kd_toleration *t = &pod->tolerations[i];
		if (t->effect != KD_TAINT_ANY && t->effect != effect)
			continue;
		if (!t->key || !*t->key) {
			if (t->op == KD_TOLERATION_EXISTS)
				return true;
			continue;
		}
		if (strcmp(t->key, key) != 0)
			continue;
		if (t->op == KD_TOLERATION_EXISTS || str_eq0(t->value, value))
			return true;
	}
	return false;
}

#define REASON_MAX 512

/* NULL if pod fits on n, else why not (a static string or text written to buf). */
static const char *filter(const struct sch_node *n, const struct kd_pod_request *pod,
                          const struct kd_resources *req, char buf[REASON_MAX])
{
	if (!n->ready)
		return "node not ready";
	if (!n->schedulable &&
	    !tolerates(pod, "node.kubernetes.io/unschedulable", "", KD_TAINT_NO_SCHEDULE))
		return "node unschedulable";
	for (size_t i = 0; i < n->n_taints; i++) {
		const struct kd_taint *t = &n->taints[i];
		if (t->effect == KD_TAINT_PREFER_NO_SCHEDULE ||
		    tolerates(pod, t->key, t->value, t->effect))
			continue;
		if (*t->value)
			snprintf(buf, REASON_MAX, "taint {%s=%s:%s} not tolerated", t->key,
			         t->value, effect_name(t->effect));
		else
			snprintf(buf, REASON_MAX, "taint {%s:%s} not tolerated", t->key,
			         effect_name(t->effect));
		return buf;
	}
	for (size_t i = 0; i < pod->n_node_selector; i++) {
		const struct kd_label *sel = &pod->node_selector[i];
		bool ok = false;
		for (size_t j = 0; j < n->n_labels && !ok; j++)
			ok = strcmp(n->label_keys[j], sel->key) == 0 &&
			     str_eq0(n->label_values[j], sel->value);
		if (!ok) {
			snprintf(buf, REASON_MAX, "node selector {%s=%s} not matched", sel->key,
			         sel->value ? sel->value : "");
			return buf;
		}
	}
	if (n->used.pods + req->pods > (__int128)n->alloc.pods)
		return "too many pods";
	if (req->cpu_milli > 0 && n->used.cpu_milli + req->cpu_milli > (__int128)n->alloc.cpu_milli)
		return "insufficient cpu";
	if (req->memory_bytes > 0 &&
	    n->used.memory_bytes + req->memory_bytes > (__int128)n->alloc.memory_bytes)
		return "insufficient memory";
	return NULL;
}

#define FRAC_ONE 1000000

static int64_t free_frac(int64_t alloc, __int128 used, int64_t req)
{
	__int128 left = (__int128)alloc - used - req;
	if (left <= 0)
		return 0;
	return (int64_t)(left * FRAC_ONE / alloc);
}

/* Higher is better. */
static int64_t least_allocated(const struct sch_node *n, const struct kd_resources *req)
{
	int64_t sum = 0, k = 0;
	if (n->alloc.cpu_milli > 0) {
		sum += free_frac(n->alloc.cpu_milli, n->used.cpu_milli, req->cpu_milli);
		k++;
	}
	if (n->alloc.memory_bytes > 0) {
		sum += free_frac(n->alloc.memory_bytes, n->used.memory_bytes, req->memory_bytes);
		k++;
	}
	if (n->alloc.pods > 0) {
		sum += free_frac(n->alloc.pods, n->used.pods, req->pods);
		k++;
	}
	return k ? sum / k : 0;
}

/* --- placing ------------------------------------------------------------------------- */

struct reason {
	char text[REASON_MAX];
	size_t count;
};

static int reason_cmp(const void *a, const void *b)
{
	const struct reason *x = a, *y = b;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->text, y->text);
}

/* The -ENOSPC error for pod: every node's first failing filter, grouped. */
static int no_fit(const struct sched *s, const struct kd_pod_request *pod,
                  const struct kd_resources *req, struct kd_error **err)
{
	if (!err)
		return -ENOSPC;
	struct reason *r = kd_xcalloc(s->n_nodes + 1, sizeof(*r));
	size_t nr = 0;
	char buf[REASON_MAX];
	for (size_t i = 0; i < s->n_nodes; i++) {
		const char *why = filter(s->nodes[i], pod, req, buf);
		if (!why)
			why = "fits"; /* not reached: place() tried this node */
		size_t j = 0;
		while (j < nr && strcmp(r[j].text, why) != 0)
			j++;
		if (j == nr)
			snprintf(r[nr++].text, REASON_MAX, "%s", why);
		r[j].count++;
	}
	qsort(r, nr, sizeof(*r), reason_cmp);
	size_t len = 0, cap = 256;
	char *msg = kd_xmalloc(cap);
	len += (size_t)snprintf(msg, cap, "%zu node%s", s->n_nodes, s->n_nodes == 1 ? "" : "s");
	for (size_t j = 0; j < nr; j++) {
		size_t need = strlen(r[j].text) + 32;
		if (len + need >= cap) {
			cap = (len + need) * 2;
			msg = kd_xrealloc(msg, cap);
		}
		len += (size_t)snprintf(msg + len, cap - len, "%s %zu %s", j ? "," : ":",
		                        r[j].count, r[j].text);
	}
	kd_error_set(err, ENOSPC, 0, "no node fits pod %s: %s", pod->key, msg);
	free(msg);
	free(r);
	return -ENOSPC;
}

static int place_one(struct sched *s, const struct kd_pod_request *pod,
                     char node_out[KD_NODE_NAME_MAX], struct kd_error **err)
{
	int rc = check_request(pod, err);
	if (rc < 0)
		return rc;
	struct sch_pod *have = kd_strmap_get(&s->pods, pod->key);
	if (have) {
		snprintf(node_out, KD_NODE_NAME_MAX, "%s", have->node);
		return 0;
	}
	struct kd_resources req = pod->requests;
	if (req.pods <= 0)
		req.pods = 1;
	uint64_t rev_hash = pod->revision ? kd_strmap_hash(pod->revision) : 0;
	char buf[REASON_MAX];
	struct sch_node *best = NULL;
	size_t best_i = 0;
	int64_t best_spread = 0, best_prefer = 0, best_la = 0;
	for (size_t k = 0; k < s->n_nodes; k++) {
		size_t i = (s->cursor + k) % s->n_nodes;
		struct sch_node *n = s->nodes[i];
		if (filter(n, pod, &req, buf))
			continue;
		int64_t spread = 0;
		if (s->score == SCORE_SPREAD && pod->revision) {
			const struct rev_count *c =
			    kd_strmap_get_h(&n->revs, pod->revision, rev_hash);
			spread = c ? -c->n : 0;
		}
		int64_t prefer = 0;
		for (size_t t = 0; t < n->n_taints; t++)
			if (n->taints[t].effect == KD_TAINT_PREFER_NO_SCHEDULE &&
			    !tolerates(pod, n->taints[t].key, n->taints[t].value,
			               KD_TAINT_PREFER_NO_SCHEDULE))
				prefer--;
		int64_t la = least_allocated(n, &req);
		if (!best || spread > best_spread ||
		    (spread == best_spread &&
		     (prefer > best_prefer || (prefer == best_prefer && la > best_la)))) {
			best = n;
			best_i = i;
			best_spread = spread;
			best_prefer = prefer;
			best_la = la;
		}
	}
	if (!best)
		return no_fit(s, pod, &req, err);
	struct sch_pod *p = pod_new(pod, best->name);
	kd_strmap_put(&s->pods, p->key, p);
	attach(best, p);
	s->cursor = (best_i + 1) % s->n_nodes;
	snprintf(node_out, KD_NODE_NAME_MAX, "%s", best->name);
	return 0;
}

static int sch_place(void *state, const struct kd_pod_request *pod, char node_out[KD_NODE_NAME_MAX],
                     struct kd_error **err)
{
	char node[KD_NODE_NAME_MAX];
	int rc = place_one(state, pod, node, err);
	if (rc == 0)
		memcpy(node_out, node, sizeof(node));
	return rc;
}

static int sch_place_batch(void *state, const struct kd_pod_request *pods, size_t n,
                           struct kd_placement *out, struct kd_error **err)
{
	if (n && (!pods || !out))
		return kd_error_set(err, EINVAL, 0,
		                    "scheduler: place_batch without pods or output");
	struct kd_error *first = NULL;
	int first_rc = 0;
	size_t failed = 0;
	for (size_t i = 0; i < n; i++) {
		out[i].node[0] = '\0';
		out[i].rc = place_one(state, &pods[i], out[i].node, first_rc ? NULL : &first);
		if (out[i].rc < 0) {
			if (!failed++)
				first_rc = out[i].rc;
		}
	}
	if (!failed)
		return 0;
	if (failed > 1)
		kd_error_set(err, -first_rc, 0, "%s (and %zu more of %zu pods not placed)",
		             first ? first->msg : "", failed - 1, n);
	else
		kd_error_set(err, -first_rc, 0, "%s", first ? first->msg : "");
	kd_error_free(first);
	return first_rc;
}

static int sch_pod_bound(void *state, const struct kd_pod_request *pod, const char *node)
{
	struct sched *s = state;
	if (check_request(pod, NULL) < 0 || !node || !*node || strlen(node) >= KD_NODE_NAME_MAX)
		return -EINVAL;
	struct sch_pod *p = kd_strmap_get(&s->pods, pod->key);
	if (p) {
		if (strcmp(p->node, node) == 0)
			return 0;
		/* the API Server shows it elsewhere: the API wins */
		detach(p);
		kd_strmap_del(&s->pods, p->key);
		pod_free(p);
	}
	p = pod_new(pod, node);
	kd_strmap_put(&s->pods, p->key, p);
	struct sch_node *n = kd_strmap_get(&s->node_map, node);
	if (n)
		attach(n, p);
	return 0;
}

static void sch_release(void *state, const char *key)
{
	struct sched *s = state;
	struct sch_pod *p = key ? kd_strmap_del(&s->pods, key) : NULL;
	if (!p)
		return;
	detach(p);
	pod_free(p);
}

/* --- lifecycle ----------------------------------------------------------------------- */

static int sch_init(const struct kd_host *host, const void *config, void **state,
                    struct kd_error **err)
{
	(void)err;
	const struct sch_config *cfg = config;
	struct sched *s = kd_xcalloc(1, sizeof(*s));
	s->host = host;
	s->score = (enum sch_score)cfg->score;
	*state = s;
	return 0;
}

static void sch_fini(void *state)
{
	struct sched *s = state;
	if (!s)
		return;
	for (size_t i = 0; i < s->pods.cap; i++)
		if (s->pods.slots[i].key)
			pod_free(s->pods.slots[i].value);
	kd_strmap_fini(&s->pods);
	for (size_t i = 0; i < s->n_nodes; i++)
		node_free(s->nodes[i]);
	free(s->nodes);
	kd_strmap_fini(&s->node_map);
	free(s);
}

static const struct kd_scheduler_ops sch_ops = {
    .struct_size = sizeof(struct kd_scheduler_ops),
    .node_update = sch_node_update,
    .node_remove = sch_node_remove,
    .pod_bound = sch_pod_bound,
    .place = sch_place,
    .release = sch_release,
    .place_batch = sch_place_batch,
};

KD_PLUGIN_EXPORT("scheduler", KD_PLUGIN_SCHEDULER,
                 .description =
                     "binds instances to nodes: resource fit (counting ephemeral instances), "
                     "selectors, taints; least-allocated or spread",
                 .options = sch_options, .config_size = sizeof(struct sch_config), .init = sch_init,
                 .fini = sch_fini, .ops = &sch_ops)
