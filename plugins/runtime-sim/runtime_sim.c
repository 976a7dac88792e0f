/* plugins/runtime-sim: a runtime that runs nothing. start() assigns a unique pod IP from the pod
 * CIDR (the spec's per-node CIDR, else the `pod-cidr` option), reports STARTED on the next loop
 * iteration and READY `ready-delay` later, all on the host's loop timers; stop() releases the IP
 * and reports EXITED. For scale tests of thousands of instances.
 *
 * Decisions:
 *  - Addresses come from kd/ipam.h (shared with runtime-process; its rules, summarised here).
 *    IPv4 only. Usable addresses of a CIDR skip the network address, the first host (the node's
 *    bridge/gateway, as kubenet's cbr0) and the broadcast address: a /24 has 253 pod IPs. Prefix
 *    lengths 8..30 are accepted.
 *  - Allocation is next-fit from a cursor (O(1) amortised, like the host-local IPAM plugin), so a
 *    released address is reused once the cursor wraps around.
 *  - Pools are created on first use; a CIDR overlapping a pool that still has addresses in use is
 *    refused (-EINVAL), an empty overlapping pool is dropped (e.g. the default CIDR before the
 *    node agent learnt the node's own one). An explicit spec->pod_ip must lie in the CIDR.
 *  - One sandbox per key (DESIGN invariant 1): duplicate starts are idempotent.
 *  - grace_ms is ignored: a simulated sandbox exits at once, code 0, reason "Stopped".
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd/common.h"
#include "kd/config.h"
#include "kd/ipam.h"
#include "kd/plugin.h"
#include "kd/stage.h"
#include "kd/strmap.h"

struct sim_config {
	char *pod_cidr;
	uint64_t ready_delay_ms;
};

static const struct kd_config_option sim_options[] = {
    KD_OPT_STRING("pod-cidr", struct sim_config, pod_cidr, .def = "10.244.0.0/16",
                  .metavar = "CIDR", .required = true,
                  .help = "IPv4 CIDR pod IPs are assigned from when the sandbox spec has no "
                          "per-node CIDR"),
    KD_OPT_DURATION("ready-delay", struct sim_config, ready_delay_ms, .def = "0ms", .has_max = true,
                    .max = 3600000.0, .help = "time from start until the sandbox reports ready"),
    KD_CONFIG_END,
};

struct sim;

struct sandbox {
	struct sim *sim;
	char *key;
	char *uid;
	char ip[KD_IP_STRLEN];
	struct kd_ipam_pool *pool; /* NULL or the pool addr was taken from */
	uint32_t addr;             /* host order */
	enum kd_sandbox_phase phase;
	uint64_t created_ms, ready_ms;
	kd_runtime_event_cb cb;
	void *cb_arg;
	struct kd_timer *timer;
	struct exit_note *waiting_on; /* EXITED of the previous sandbox of this key, not yet sent */
};

/* An EXITED event waiting for the next loop iteration after stop(). */
struct exit_note {
	struct exit_note *next, *prev;
	struct sim *sim;
	char *key, *uid;
	char ip[KD_IP_STRLEN];
	kd_runtime_event_cb cb;
	void *cb_arg;
	struct kd_timer *timer;
	struct sandbox *successor; /* a new sandbox of the same key, started after this EXITED */
};

struct sim {
	const struct kd_host *host;
	const struct sim_config *cfg;
	struct kd_ipam *ipam;
	struct kd_strmap sandboxes; /* key (sb->key) -> struct sandbox */
	struct exit_note *exits;
};

/* Sets *err through the host table and returns -errnum (whatever error_set returns). */
static int sim_err(const struct sim *s, struct kd_error **err, int errnum, const char *fmt, ...)
    KD_PRINTF(4, 5);
static int sim_err(const struct sim *s, struct kd_error **err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = kd_xvasprintf(fmt, ap);
	va_end(ap);
	s->host->error_set(err, errnum, 0, "%s", msg);
	free(msg);
	return -errnum;
}

/* --- sandboxes ------------------------------------------------------------------------------- */
static void sandbox_free(struct sandbox *sb)
{
	if (sb->waiting_on)
		sb->waiting_on->successor = NULL;
	sb->sim->host->timer_free(sb->timer);
	if (sb->pool)
		kd_ipam_release(sb->pool, sb->addr);
	free(sb->key);
	free(sb->uid);
	free(sb);
}

/* at_ms 0: now. The READY event passes the time it recorded as ready_ms, so the event and the
 * status agree (two clock reads can differ by a millisecond on a slow machine). */
static void emit_at(struct sim *s, kd_runtime_event_cb cb, void *arg, enum kd_runtime_event_type t,
                    const char *key, const char *uid, const char *ip, const char *reason,
                    const char *msg, uint64_t at_ms)
{
	if (!cb)
		return;
	struct kd_runtime_event ev = {
	    .type = t,
	    .key = key,
	    .uid = uid,
	    .pod_ip = ip,
	    .reason = reason,
	    .message = msg,
	    .exit_code = 0,
	    .at_ms = at_ms ? at_ms : s->host->now_ms(s->host->loop),
	};
	cb(&ev, arg);
}

static void emit(struct sim *s, kd_runtime_event_cb cb, void *arg, enum kd_runtime_event_type t,
                 const char *key, const char *uid, const char *ip, const char *reason,
                 const char *msg)
{
	emit_at(s, cb, arg, t, key, uid, ip, reason, msg, 0);
}

/* The sandbox timer: PENDING -> STARTED (arming READY), STARTED -> READY. One event per firing,
 * and nothing touches sb after the callback (which may stop it). */
static void on_sandbox_timer(struct kd_loop *loop, struct kd_timer *timer, void *arg)
{
	(void)loop, (void)timer;
	struct sandbox *sb = arg;
	struct sim *s = sb->sim;
	if (sb->phase == KD_SANDBOX_PENDING) {
		sb->phase = KD_SANDBOX_STARTED;
		s->host->timer_start(sb->timer, s->cfg->ready_delay_ms);
		emit(s, sb->cb, sb->cb_arg, KD_RUNTIME_STARTED, sb->key, sb->uid, sb->ip, NULL,
		     NULL);
	} else if (sb->phase == KD_SANDBOX_STARTED) {
		sb->phase = KD_SANDBOX_READY;
		sb->ready_ms = s->host->now_ms(s->host->loop);
		emit_at(s, sb->cb, sb->cb_arg, KD_RUNTIME_READY, sb->key, sb->uid, sb->ip, NULL,
		        NULL, sb->ready_ms);
	}
}

static void exit_note_free(struct exit_note *n)
{
	struct sim *s = n->sim;
	if (n->prev)
		n->prev->next = n->next;
	else
		s->exits = n->next;
	if (n->next)
		n->next->prev = n->prev;
	s->host->timer_free(n->timer);
	free(n->key);
	free(n->uid);
	free(n);
}

static void on_exit_timer(struct kd_loop *loop, struct kd_timer *timer, void *arg)
{
	(void)loop, (void)timer;
	struct exit_note *n = arg;
	struct sim *s = n->sim;
	/* unlink first: the callback may start the same key again */
	kd_runtime_event_cb cb = n->cb;
	void *cb_arg = n->cb_arg;
	char *key = n->key, *uid = n->uid;
	char ip[KD_IP_STRLEN];
	memcpy(ip, n->ip, sizeof(ip));
	n->key = n->uid = NULL;
	/* a successor's STARTED is armed now, so it follows this EXITED */
	if (n->successor) {
		n->successor->waiting_on = NULL;
		s->host->timer_start(n->successor->timer, 0);
	}
	exit_note_free(n);
	emit(s, cb, cb_arg, KD_RUNTIME_EXITED, key, uid, ip[0] ? ip : NULL, "Stopped",
	     "sandbox stopped");
	free(key);
	free(uid);
}

/* --- ops -------------------------------------------------------------------------------------- */
static int start_sandbox(struct sim *s, const struct kd_sandbox_spec *spec, kd_runtime_event_cb cb,
                         void *cb_arg, struct kd_error **err);

static int sim_start(void *state, const struct kd_sandbox_spec *spec, kd_runtime_event_cb cb,
                     void *cb_arg, struct kd_error **err)
{
	struct sim *s = state;
	if (!spec || !spec->key || !*spec->key)
		return sim_err(s, err, EINVAL, "runtime-sim: start: spec without a key");
	struct kd_error *e = NULL;
	int rc = start_sandbox(s, spec, cb, cb_arg, &e);
	if (rc) {
		sim_err(s, err, -rc, "runtime-sim: start %s: %s", spec->key, kd_error_msg(e));
		kd_error_free(e);
	}
	return rc;
}

static int start_sandbox(struct sim *s, const struct kd_sandbox_spec *spec, kd_runtime_event_cb cb,
                         void *cb_arg, struct kd_error **err)
{
	struct sandbox *old = kd_strmap_get(&s->sandboxes, spec->key);
	if (old) {
		if (old->uid && spec->uid && strcmp(old->uid, spec->uid) != 0)
			return sim_err(s, err, EBUSY,
			               "a sandbox with uid %s already exists (asked for uid "
			               "%s)",
			               old->uid, spec->uid);
		if (!old->uid && spec->uid)
			old->uid = kd_xstrdup(spec->uid);
		return 0; /* idempotent */
	}
	const char *cidr = spec->pod_cidr && *spec->pod_cidr ? spec->pod_cidr : s->cfg->pod_cidr;
	struct kd_error *e = NULL;
	struct kd_ipam_pool *pool = kd_ipam_pool_get(s->ipam, cidr, &e);
	if (!pool) {
		sim_err(s, err, EINVAL, "%s", kd_error_msg(e));
		kd_error_free(e);
		return -EINVAL;
	}
	uint32_t addr = 0;
	int rc = spec->pod_ip && *spec->pod_ip ? kd_ipam_reserve(pool, spec->pod_ip, &addr, &e)
	                                       : kd_ipam_alloc(pool, &addr, &e);
	if (rc) {
		sim_err(s, err, -rc, "%s", kd_error_msg(e));
		kd_error_free(e);
		return rc;
	}

	struct sandbox *sb = kd_xcalloc(1, sizeof(*sb));
	sb->sim = s;
	sb->key = kd_xstrdup(spec->key);
	sb->uid = spec->uid ? kd_xstrdup(spec->uid) : NULL;
	sb->pool = pool;
	sb->addr = addr;
	kd_ipam_ip_text(addr, sb->ip);
	sb->phase = KD_SANDBOX_PENDING;
	sb->created_ms = s->host->now_ms(s->host->loop);
	sb->cb = cb;
	sb->cb_arg = cb_arg;
	sb->timer = s->host->timer_new(s->host->loop, on_sandbox_timer, sb);
	/* If the key's previous sandbox has its EXITED pending, STARTED waits for it: a consumer
	 * never sees the new STARTED before the old EXITED. */
	for (struct exit_note *n = s->exits; n; n = n->next) {
		if (!n->successor && strcmp(n->key, sb->key) == 0) {
			n->successor = sb;
			sb->waiting_on = n;
			break;
		}
	}
	if (!sb->waiting_on)
		s->host->timer_start(sb->timer, 0);
	kd_strmap_put(&s->sandboxes, sb->key, sb);
	return 0;
}

static int sim_stop(void *state, const char *key, uint32_t grace_ms, struct kd_error **err)
{
	(void)grace_ms;
	struct sim *s = state;
	if (!key)
		return sim_err(s, err, EINVAL, "runtime-sim: stop: no key");
	struct sandbox *sb = kd_strmap_del(&s->sandboxes, key);
	if (!sb)
		return sim_err(s, err, ENOENT, "runtime-sim: stop %s: no such sandbox", key);
	struct exit_note *n = kd_xcalloc(1, sizeof(*n));
	n->sim = s;
	n->key = sb->key;
	n->uid = sb->uid;
	memcpy(n->ip, sb->ip, sizeof(n->ip));
	n->cb = sb->cb;
	n->cb_arg = sb->cb_arg;
	n->timer = s->host->timer_new(s->host->loop, on_exit_timer, n);
	n->next = s->exits;
	if (s->exits)
		s->exits->prev = n;
	s->exits = n;
	s->host->timer_start(n->timer, 0);
	sb->key = sb->uid = NULL; /* moved to the note */
	sandbox_free(sb);         /* releases the address now */
	return 0;
}

static int sim_status(void *state, const char *key, struct kd_sandbox_status *out)
{
	struct sim *s = state;
	if (!key)
		return -EINVAL;
	struct sandbox *sb = kd_strmap_get(&s->sandboxes, key);
	if (!sb)
		return -ENOENT;
	kd_sandbox_status_set(out, sb->phase, sb->ip, sb->uid, sb->created_ms, sb->ready_ms);
	return 0;
}

static const struct kd_runtime_ops sim_ops = {
    .struct_size = sizeof(struct kd_runtime_ops),
    .start = sim_start,
    .stop = sim_stop,
    .status = sim_status,
};

/* --- lifecycle -------------------------------------------------------------------------------- */
static void sim_fini(void *state)
{
	struct sim *s = state;
	if (!s)
		return;
	size_t pos = 0;
	for (struct sandbox *sb; (sb = kd_strmap_next(&s->sandboxes, &pos));)
		sandbox_free(sb); /* the map is only finalised afterwards */
	for (struct exit_note *n = s->exits, *next; n; n = next) {
		next = n->next;
		s->host->timer_free(n->timer);
		free(n->key);
		free(n->uid);
		free(n);
	}
	s->exits = NULL;
	kd_ipam_free(s->ipam);
	kd_strmap_fini(&s->sandboxes);
	free(s);
}

static int sim_init(const struct kd_host *host, const void *config, void **state,
                    struct kd_error **err)
{
	const struct sim_config *cfg = config;
	uint32_t base;
	unsigned prefix;
	if (kd_ipam_parse_cidr(cfg->pod_cidr, 8, &base, &prefix) < 0) {
		host->error_set(
		    err, EINVAL, 0,
		    "pod-cidr: \"%s\" is not an IPv4 CIDR with a prefix length between 8 "
		    "and 30",
		    cfg->pod_cidr);
		return -EINVAL;
	}
	struct sim *s = kd_xcalloc(1, sizeof(*s));
	s->host = host;
	s->cfg = cfg;
	s->ipam = kd_ipam_new(NULL);
	host->log(KD_LOG_DEBUG, "runtime-sim: pod CIDR %s, ready delay %llu ms", cfg->pod_cidr,
	          (unsigned long long)cfg->ready_delay_ms);
	*state = s;
	return 0;
}

KD_PLUGIN_EXPORT("runtime-sim", KD_PLUGIN_RUNTIME,
                 .description =
                     "simulated sandboxes: unique pod IPs, ready after a configurable delay, "
                     "no processes",
                 .options = sim_options, .config_size = sizeof(struct sim_config), .init = sim_init,
                 .fini = sim_fini, .ops = &sim_ops)
