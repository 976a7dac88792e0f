/* kd_watch.c: streaming watch-event decoder and list-then-watch informer on kd_loop. */
#include "kd/watch.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kd/json.h"
#include "kd/log.h"
#include "kd/strmap.h"

/* ------------------------------------------------------------------------------------------ */
/* Decoder                                                                                     */

struct kd_watch_decoder {
	struct json_tokener *tok;
	size_t max;
	size_t cur; /* bytes of the current (partial) event */
	bool in_event;
	bool failed;
	uint64_t events; /* complete events decoded, for messages */
};

struct kd_watch_decoder *kd_watch_decoder_new(size_t max_event_bytes)
{
	struct kd_watch_decoder *d = kd_xcalloc(1, sizeof(*d));
	d->max = max_event_bytes ? max_event_bytes : KD_WATCH_DEFAULT_MAX_EVENT_BYTES;
	d->tok = json_tokener_new_ex(KD_JSON_MAX_DEPTH);
	if (!d->tok)
		abort();
	json_tokener_set_flags(d->tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
	                                   JSON_TOKENER_VALIDATE_UTF8);
	return d;
}

void kd_watch_decoder_free(struct kd_watch_decoder *d)
{
	if (!d)
		return;
	json_tokener_free(d->tok);
	free(d);
}

void kd_watch_decoder_reset(struct kd_watch_decoder *d)
{
	json_tokener_reset(d->tok);
	d->cur = 0;
	d->in_event = false;
	d->failed = false;
	d->events = 0;
}

const char *kd_watch_event_type_name(enum kd_watch_event_type t)
{
	switch (t) {
	case KD_WATCH_ADDED:
		return "ADDED";
	case KD_WATCH_MODIFIED:
		return "MODIFIED";
	case KD_WATCH_DELETED:
		return "DELETED";
	case KD_WATCH_BOOKMARK:
		return "BOOKMARK";
	case KD_WATCH_ERROR:
		return "ERROR";
	}
	return "?";
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int fail(struct kd_watch_decoder *d, struct kd_error **err, int errnum, const char *fmt, ...)
    KD_PRINTF(4, 5);
static int fail(struct kd_watch_decoder *d, struct kd_error **err, int errnum, const char *fmt, ...)
{
	d->failed = true;
	va_list ap;
	va_start(ap, fmt);
	kd_autofree char *m = kd_xvasprintf(fmt, ap);
	va_end(ap);
	return kd_error_set(err, errnum, 0, "watch event %llu: %s",
	                    (unsigned long long)d->events + 1, m);
}

/* Validates a decoded value and delivers it. Returns 0, the callback's stop value or -errno. */
static int deliver(struct kd_watch_decoder *d, struct json_object *v, kd_watch_event_cb cb,
                   void *arg, struct kd_error **err)
{
	if (!json_object_is_type(v, json_type_object))
		return fail(d, err, EBADMSG, "not a JSON object");
	const char *type = kd_json_get_string(v, "type");
	if (!type)
		return fail(d, err, EBADMSG, "missing \"type\"");
	struct kd_watch_event ev = {0};
	if (!strcmp(type, "ADDED"))
		ev.type = KD_WATCH_ADDED;
	else if (!strcmp(type, "MODIFIED"))
		ev.type = KD_WATCH_MODIFIED;
	else if (!strcmp(type, "DELETED"))
		ev.type = KD_WATCH_DELETED;
	else if (!strcmp(type, "BOOKMARK"))
		ev.type = KD_WATCH_BOOKMARK;
	else if (!strcmp(type, "ERROR"))
		ev.type = KD_WATCH_ERROR;
	else
		return fail(d, err, EBADMSG, "unknown type \"%s\"", type);
	ev.object = kd_json_get_object(v, "object");
	if (!ev.object)
		return fail(d, err, EBADMSG, "missing \"object\"");
	ev.resource_version = kd_json_get_string(ev.object, "metadata.resourceVersion");
	if (ev.type != KD_WATCH_ERROR && !kd_json_get_object(ev.object, "metadata"))
		return fail(d, err, EBADMSG, "object without metadata");
	d->events++;
	int rc = cb ? cb(&ev, arg) : 0;
	return rc > 0 ? -rc : rc;
}

int kd_watch_decoder_feed(struct kd_watch_decoder *d, const char *data, size_t len,
                          kd_watch_event_cb cb, void *arg, struct kd_error **err)
{
	if (d->failed)
		return kd_error_set(err, EBADMSG, 0, "watch decoder: input after an error");
	size_t off = 0;
	while (off < len) {
		if (!d->in_event) {
			while (off < len && is_ws(data[off]))
				off++;
			if (off == len)
				break;
			d->in_event = true;
			d->cur = 0;
		}
		/* Feed at most one byte past the cap so json-c never buffers more than that. */
		size_t slice = len - off;
		size_t room = d->max - d->cur + 1;
		if (slice > room)
			slice = room;
		if (slice > (size_t)INT_MAX)
			slice = (size_t)INT_MAX;
		struct json_object *v = json_tokener_parse_ex(d->tok, data + off, (int)slice);
		enum json_tokener_error jerr = json_tokener_get_error(d->tok);
		size_t used = json_tokener_get_parse_end(d->tok);
		if (jerr == json_tokener_continue) {
			d->cur += used;
			off += used;
			if (d->cur > d->max) {
				return fail(d, err, EMSGSIZE, "exceeds the %zu byte limit", d->max);
			}
			if (used == 0)
				break; /* defensive: no progress */
			continue;
		}
		if (jerr != json_tokener_success) {
			json_object_put(v);
			return fail(d, err, EBADMSG, "malformed JSON: %s",
			            json_tokener_error_desc(jerr));
		}
		d->cur += used;
		off += used;
		json_tokener_reset(d->tok);
		d->in_event = false;
		if (d->cur > d->max) {
			json_object_put(v);
			return fail(d, err, EMSGSIZE, "exceeds the %zu byte limit", d->max);
		}
		int rc = deliver(d, v, cb, arg, err);
		json_object_put(v);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int kd_watch_decoder_finish(struct kd_watch_decoder *d, struct kd_error **err)
{
	if (d->failed)
		return kd_error_set(err, EBADMSG, 0, "watch decoder: stream ended after an error");
	if (d->in_event) {
		return fail(d, err, EBADMSG, "truncated after %zu bytes", d->cur);
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Informer                                                                                    */

enum inf_state {
	ST_IDLE = 0,
	ST_LISTING,
	ST_WATCHING,
	ST_WAIT_LIST,
	ST_WAIT_WATCH,
};

/* Outlives the informer while a LIST call is in flight (calls cannot be cancelled). */
struct list_ticket {
	struct kd_informer *inf; /* NULL once the informer is gone */
};

/* One cached object. The cache is a kd_strmap keyed by the entry's own key, plus a list of the
 * entries in insertion order (a replaced object keeps its place): callbacks and
 * kd_informer_foreach follow that order, so they do not depend on the hash layout. */
struct centry {
	char *key;               /* "ns/name" or "name" */
	struct json_object *obj; /* owned reference */
	struct centry *prev, *next;
};

struct cache {
	struct kd_strmap map; /* key -> struct centry (owned) */
	struct centry *head, *tail;
};

static void centry_free(struct centry *e)
{
	json_object_put(e->obj);
	free(e->key);
	free(e);
}

static void cache_fini(struct cache *c)
{
	struct centry *e = c->head;
	while (e) {
		struct centry *next = e->next;
		centry_free(e);
		e = next;
	}
	kd_strmap_fini(&c->map);
	*c = (struct cache){0};
}

static struct centry *cache_entry(const struct cache *c, const char *key)
{
	return kd_strmap_get(&c->map, key);
}

static struct json_object *cache_obj(const struct cache *c, const char *key)
{
	const struct centry *e = cache_entry(c, key);
	return e ? e->obj : NULL;
}

/* Appends key -> obj (a reference is taken) to a cache without key. */
static void cache_append(struct cache *c, const char *key, struct json_object *obj)
{
	struct centry *e = kd_xcalloc(1, sizeof(*e));
	e->key = kd_xstrdup(key);
	e->obj = json_object_get(obj);
	e->prev = c->tail;
	if (c->tail)
		c->tail->next = e;
	else
		c->head = e;
	c->tail = e;
	kd_strmap_put(&c->map, e->key, e);
}

/* Removes key; returns its entry (owned by the caller) or NULL. */
static struct centry *cache_remove(struct cache *c, const char *key)
{
	struct centry *e = kd_strmap_del(&c->map, key);
	if (!e)
		return NULL;
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
	return e;
}

struct kd_informer {
	struct kd_k8s *c;
	struct kd_loop *loop;
	const struct kd_k8s_resource *res;
	char *ns, *lsel, *fsel, *what;
	long limit;
	unsigned watch_timeout_s, idle_timeout_s;
	uint64_t bo_base, bo_cap;
	unsigned attempt;
	struct kd_informer_handlers h;

	struct cache cache;
	char *rv;
	bool started, synced;
	enum inf_state state;
	struct kd_k8s_stream *stream;
	struct kd_watch_decoder *dec;
	struct list_ticket *ticket;
	struct kd_timer *retry;
	struct kd_timer *idle; /* watch idle check */
	uint64_t last_data_ms; /* loop time of the last watch byte */
	/* Set by event handling inside on_data: what to do once the stream is dropped. */
	int after_stream; /* 0 none, 1 relist, 2 reconnect */
	uint64_t after_delay_ms;
	int in_cb;
	bool dead;
	struct kd_informer_stats stats;
};

char *kd_informer_key(struct json_object *obj)
{
	const char *name = kd_json_get_string(obj, "metadata.name");
	if (!name || !*name)
		return NULL;
	const char *ns = kd_json_get_string(obj, "metadata.namespace");
	if (ns && *ns)
		return kd_xasprintf("%s/%s", ns, name);
	return kd_xstrdup(name);
}

static void set_rv(struct kd_informer *inf, const char *rv)
{
	if (!rv || !*rv)
		return;
	if (inf->rv && !strcmp(inf->rv, rv))
		return;
	free(inf->rv);
	inf->rv = kd_xstrdup(rv);
}

static void destroy(struct kd_informer *inf)
{
	kd_k8s_stream_close(inf->stream);
	if (inf->ticket)
		inf->ticket->inf = NULL;
	kd_loop_timer_free(inf->retry);
	kd_loop_timer_free(inf->idle);
	kd_watch_decoder_free(inf->dec);
	cache_fini(&inf->cache);
	free(inf->ns);
	free(inf->lsel);
	free(inf->fsel);
	free(inf->what);
	free(inf->rv);
	free(inf);
}

/* Call after a section that ran user callbacks: finishes a deferred free. Returns true if the
 * informer is gone. */
static bool reap(struct kd_informer *inf)
{
	if (inf->dead && inf->in_cb == 0) {
		destroy(inf);
		return true;
	}
	return inf->dead;
}

static void cb_add(struct kd_informer *inf, struct json_object *obj)
{
	if (inf->h.on_add && !inf->dead) {
		inf->in_cb++;
		inf->h.on_add(inf, obj, inf->h.arg);
		inf->in_cb--;
	}
}

static void cb_update(struct kd_informer *inf, struct json_object *old, struct json_object *obj)
{
	if (inf->h.on_update && !inf->dead) {
		inf->in_cb++;
		inf->h.on_update(inf, old, obj, inf->h.arg);
		inf->in_cb--;
	}
}

void kd_informer_update_as_add(struct kd_informer *inf, struct json_object *old,
                               struct json_object *obj, void *arg)
{
	(void)old;
	if (inf->h.on_add)
		inf->h.on_add(inf, obj, arg);
}

static void cb_delete(struct kd_informer *inf, struct json_object *obj)
{
	if (inf->h.on_delete && !inf->dead) {
		inf->in_cb++;
		inf->h.on_delete(inf, obj, inf->h.arg);
		inf->in_cb--;
	}
}

static void start_list(struct kd_informer *inf);
static void start_watch(struct kd_informer *inf);

static void schedule(struct kd_informer *inf, enum inf_state st, uint64_t delay_ms)
{
	inf->state = st;
	kd_loop_timer_start(inf->retry, delay_ms);
}

static uint64_t next_backoff(struct kd_informer *inf)
{
	uint64_t ms = kd_backoff_ms(inf->attempt, inf->bo_base, inf->bo_cap);
	if (inf->attempt < 30)
		inf->attempt++;
	return ms;
}

static void retry_cb(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	struct kd_informer *inf = arg;
	if (inf->state == ST_WAIT_LIST)
		start_list(inf);
	else if (inf->state == ST_WAIT_WATCH)
		start_watch(inf);
}

/* Replaces the cache with the listed items (in the list's order): deletes for vanished keys (in
 * their cache order), then adds for new ones and updates for changed resourceVersions (in the
 * list's order). */
static void apply_list(struct kd_informer *inf, struct json_object *list)
{
	struct cache fresh = {0};
	struct json_object *items = kd_json_get_array(list, "items");
	size_t n = items ? json_object_array_length(items) : 0;
	kd_strmap_reserve(&fresh.map, n);
	for (size_t i = 0; i < n; i++) {
		struct json_object *it = json_object_array_get_idx(items, i);
		kd_autofree char *key = kd_informer_key(it);
		if (!key)
			continue;
		struct centry *dup = cache_entry(&fresh, key);
		if (dup) { /* a list never repeats a key; if it did, the later item wins */
			json_object_put(dup->obj);
			dup->obj = json_object_get(it);
		} else {
			cache_append(&fresh, key, it);
		}
	}
	struct cache old = inf->cache;
	inf->cache = fresh;
	set_rv(inf, kd_json_get_string(list, "metadata.resourceVersion"));
	/* Callbacks may read the cache (kd_informer_get, kd_informer_foreach) but never change it,
	 * and a kd_informer_free from one is deferred (the caller holds in_cb): walking both lists
	 * is safe. */
	for (const struct centry *e = old.head; e && !inf->dead; e = e->next)
		if (!cache_entry(&inf->cache, e->key))
			cb_delete(inf, e->obj);
	for (const struct centry *e = inf->cache.head; e && !inf->dead; e = e->next) {
		struct json_object *prev = cache_obj(&old, e->key);
		if (prev) {
			const char *a = kd_json_get_string(prev, "metadata.resourceVersion");
			const char *b = kd_json_get_string(e->obj, "metadata.resourceVersion");
			if (!a || !b || strcmp(a, b))
				cb_update(inf, prev, e->obj);
		} else {
			cb_add(inf, e->obj);
		}
	}
	cache_fini(&old);
}

static void list_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	struct list_ticket *t = arg;
	struct kd_informer *inf = t->inf;
	free(t);
	if (!inf)
		return;
	inf->ticket = NULL;
	if (err) {
		inf->stats.errors++;
		uint64_t ms = next_backoff(inf);
		kd_log_warn("list %s: %s; retrying in %llu ms", inf->what, kd_error_msg(err),
		            (unsigned long long)ms);
		schedule(inf, ST_WAIT_LIST, ms);
		return;
	}
	inf->stats.lists++;
	inf->attempt = 0;
	inf->in_cb++; /* keep inf alive across the callbacks below */
	apply_list(inf, resp->body);
	if (!inf->synced && !inf->dead) {
		inf->synced = true;
		if (inf->h.on_synced)
			inf->h.on_synced(inf, inf->h.arg);
	}
	inf->in_cb--;
	if (reap(inf))
		return;
	start_watch(inf);
}

static void start_list(struct kd_informer *inf)
{
	if (inf->stats.lists > 0)
		inf->stats.relists++;
	inf->state = ST_LISTING;
	struct kd_k8s_request req = {.verb = KD_K8S_LIST,
	                             .res = inf->res,
	                             .ns = inf->ns,
	                             .label_selector = inf->lsel,
	                             .field_selector = inf->fsel,
	                             .limit = inf->limit};
	struct list_ticket *t = kd_xcalloc(1, sizeof(*t));
	t->inf = inf;
	struct kd_error *err = NULL;
	if (kd_k8s_submit(inf->c, &req, list_done, t, &err) < 0) {
		free(t);
		inf->stats.errors++;
		uint64_t ms = next_backoff(inf);
		kd_log_warn("list %s: %s; retrying in %llu ms", inf->what, kd_error_msg(err),
		            (unsigned long long)ms);
		kd_error_free(err);
		schedule(inf, ST_WAIT_LIST, ms);
		return;
	}
	inf->ticket = t;
}

/* Appends prefix and the percent-encoded s to the owned string *dst. */
static void escape_into(char **dst, const char *prefix, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *esc = kd_xmalloc(3 * strlen(s) + 1);
	char *o = esc;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	char *out = kd_xasprintf("%s%s%s", *dst ? *dst : "", prefix, esc);
	free(esc);
	free(*dst);
	*dst = out;
}

/* Handles one decoded watch event. Returns non-zero to stop decoding (error event, or the
 * informer was freed by a callback). */
static int on_event(const struct kd_watch_event *ev, void *arg)
{
	struct kd_informer *inf = arg;
	if (inf->dead)
		return 1;
	switch (ev->type) {
	case KD_WATCH_ADDED:
	case KD_WATCH_MODIFIED: {
		kd_autofree char *key = kd_informer_key(ev->object);
		if (!key)
			break;
		struct centry *e = cache_entry(&inf->cache, key);
		if (e) {
			/* the entry keeps its place; the old object is released after the callback
			 */
			struct json_object *prev = e->obj;
			e->obj = json_object_get(ev->object);
			cb_update(inf, prev, ev->object);
			json_object_put(prev);
		} else {
			cache_append(&inf->cache, key, ev->object);
			cb_add(inf, ev->object);
		}
		break;
	}
	case KD_WATCH_DELETED: {
		kd_autofree char *key = kd_informer_key(ev->object);
		if (!key)
			break;
		struct centry *e = cache_remove(&inf->cache, key);
		if (e) {
			centry_free(e);
			cb_delete(inf, ev->object);
		}
		break;
	}
	case KD_WATCH_BOOKMARK:
		inf->stats.bookmarks++;
		break;
	case KD_WATCH_ERROR: {
		int64_t code = 0;
		kd_json_get_int64(ev->object, "code", &code);
		const char *msg = kd_json_get_string(ev->object, "message");
		if (code == 410) {
			kd_log_info("watch %s: 410 Gone (resourceVersion too old), relisting",
			            inf->what);
			inf->after_stream = 1;
			inf->after_delay_ms = 0;
		} else {
			inf->stats.errors++;
			inf->after_delay_ms = next_backoff(inf);
			kd_log_warn("watch %s: ERROR event %lld: %s; reconnecting in %llu ms",
			            inf->what, (long long)code, msg ? msg : "(no message)",
			            (unsigned long long)inf->after_delay_ms);
			inf->after_stream = 2;
		}
		return 1;
	}
	}
	if (!inf->dead) {
		set_rv(inf, ev->resource_version);
		inf->stats.events++;
		inf->attempt = 0;
	}
	return inf->dead ? 1 : 0;
}

static int on_data(const char *data, size_t len, void *arg)
{
	struct kd_informer *inf = arg;
	struct kd_error *err = NULL;
	inf->last_data_ms = kd_loop_now_ms(inf->loop);
	inf->in_cb++;
	int rc = kd_watch_decoder_feed(inf->dec, data, len, on_event, inf, &err);
	inf->in_cb--;
	if (reap(inf)) {
		kd_error_free(err);
		return 1;
	}
	if (rc < 0 && err) {
		inf->stats.errors++;
		inf->after_stream = 1;
		inf->after_delay_ms = next_backoff(inf);
		kd_log_warn("watch %s: %s; relisting in %llu ms", inf->what, kd_error_msg(err),
		            (unsigned long long)inf->after_delay_ms);
	}
	kd_error_free(err);
	if (inf->after_stream) {
		kd_k8s_stream_close(inf->stream);
		inf->stream = NULL;
		kd_loop_timer_stop(inf->idle);
		schedule(inf, inf->after_stream == 1 ? ST_WAIT_LIST : ST_WAIT_WATCH,
		         inf->after_delay_ms);
		inf->after_stream = 0;
		return 1;
	}
	return 0;
}

static void on_done(struct kd_error *err, void *arg)
{
	struct kd_informer *inf = arg;
	inf->stream = NULL;
	kd_loop_timer_stop(inf->idle);
	if (err && err->http_status == 410) {
		kd_log_info("watch %s: 410 Gone (resourceVersion too old), relisting", inf->what);
		schedule(inf, ST_WAIT_LIST, 0);
		return;
	}
	if (err) {
		inf->stats.errors++;
		uint64_t ms = next_backoff(inf);
		kd_log_warn("%s; reconnecting from resourceVersion %s in %llu ms",
		            kd_error_msg(err), inf->rv ? inf->rv : "(none)",
		            (unsigned long long)ms);
		schedule(inf, ST_WAIT_WATCH, ms);
		return;
	}
	struct kd_error *derr = NULL;
	if (kd_watch_decoder_finish(inf->dec, &derr) < 0) {
		inf->stats.errors++;
		uint64_t ms = next_backoff(inf);
		kd_log_warn("watch %s: %s; reconnecting in %llu ms", inf->what, kd_error_msg(derr),
		            (unsigned long long)ms);
		kd_error_free(derr);
		schedule(inf, ST_WAIT_WATCH, ms);
		return;
	}
	/* Clean end (server-side timeout): reconnect right away. */
	kd_log_debug("watch %s: stream ended, reconnecting from %s", inf->what,
	             inf->rv ? inf->rv : "(none)");
	schedule(inf, ST_WAIT_WATCH, 0);
}

static void start_watch(struct kd_informer *inf)
{
	kd_autofree char *base = kd_k8s_path(inf->res, inf->ns, NULL, NULL);
	unsigned t = inf->watch_timeout_s;
	unsigned jitter = t / 10;
	if (jitter)
		t = t - jitter + (unsigned)((kd_now_ns() / 1000u) % (2u * jitter + 1u));
	kd_autofree char *q =
	    kd_xasprintf("%s?watch=1&allowWatchBookmarks=true&timeoutSeconds=%u", base, t);
	if (inf->rv)
		escape_into(&q, "&resourceVersion=", inf->rv);
	if (inf->lsel && *inf->lsel)
		escape_into(&q, "&labelSelector=", inf->lsel);
	if (inf->fsel && *inf->fsel)
		escape_into(&q, "&fieldSelector=", inf->fsel);
	kd_watch_decoder_reset(inf->dec);
	inf->after_stream = 0;
	struct kd_error *err = NULL;
	inf->state = ST_WATCHING;
	inf->stats.watches++;
	inf->last_data_ms = kd_loop_now_ms(inf->loop);
	kd_loop_timer_start(inf->idle, (uint64_t)inf->idle_timeout_s * 1000u);
	if (kd_k8s_stream_open(inf->c, q, 0, on_data, on_done, inf, &inf->stream, &err) < 0) {
		inf->stats.errors++;
		uint64_t ms = next_backoff(inf);
		kd_log_warn("watch %s: %s; retrying in %llu ms", inf->what, kd_error_msg(err),
		            (unsigned long long)ms);
		kd_error_free(err);
		schedule(inf, ST_WAIT_WATCH, ms);
	}
}

/* No byte (not even a bookmark or keep-alive) for idle_timeout_s: the connection is presumed
 * dead (e.g. a silently dropped NAT entry); reconnect from the last resourceVersion. */
static void idle_cb(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	struct kd_informer *inf = arg;
	uint64_t idle_ms = (uint64_t)inf->idle_timeout_s * 1000u;
	uint64_t quiet = kd_loop_now_ms(loop) - inf->last_data_ms;
	if (!inf->stream)
		return;
	if (quiet < idle_ms) {
		kd_loop_timer_start(t, idle_ms - quiet);
		return;
	}
	inf->stats.errors++;
	uint64_t ms = next_backoff(inf);
	kd_log_warn("watch %s: no data for %u s; reconnecting from resourceVersion %s in %llu ms",
	            inf->what, inf->idle_timeout_s, inf->rv ? inf->rv : "(none)",
	            (unsigned long long)ms);
	kd_k8s_stream_close(inf->stream);
	inf->stream = NULL;
	schedule(inf, ST_WAIT_WATCH, ms);
}

int kd_informer_new(struct kd_k8s *c, const struct kd_informer_opts *opts,
                    const struct kd_informer_handlers *handlers, struct kd_informer **out,
                    struct kd_error **err)
{
	if (!c || !kd_k8s_get_loop(c))
		return kd_error_set(err, EINVAL, 0, "informer: client has no event loop");
	if (!opts || !opts->res || !opts->res->resource)
		return kd_error_set(err, EINVAL, 0, "informer: no resource given");
	struct kd_informer *inf = kd_xcalloc(1, sizeof(*inf));
	inf->c = c;
	inf->loop = kd_k8s_get_loop(c);
	inf->res = opts->res;
	inf->ns = opts->ns && *opts->ns ? kd_xstrdup(opts->ns) : NULL;
	inf->lsel = opts->label_selector ? kd_xstrdup(opts->label_selector) : NULL;
	inf->fsel = opts->field_selector ? kd_xstrdup(opts->field_selector) : NULL;
	inf->what = inf->ns && inf->res->namespaced
	                ? kd_xasprintf("%s in %s", inf->res->resource, inf->ns)
	                : kd_xstrdup(inf->res->resource);
	inf->limit = opts->list_limit;
	inf->watch_timeout_s = opts->watch_timeout_s ? opts->watch_timeout_s : 300;
	inf->idle_timeout_s =
	    opts->idle_timeout_s ? opts->idle_timeout_s : 2 * inf->watch_timeout_s + 60;
	inf->bo_base = opts->backoff_base_ms ? opts->backoff_base_ms : 200;
	inf->bo_cap = opts->backoff_cap_ms ? opts->backoff_cap_ms : 30000;
	if (handlers)
		inf->h = *handlers;
	inf->dec = kd_watch_decoder_new(opts->max_event_bytes);
	inf->retry = kd_loop_timer_new(inf->loop, retry_cb, inf);
	inf->idle = kd_loop_timer_new(inf->loop, idle_cb, inf);
	*out = inf;
	return 0;
}

int kd_informer_start(struct kd_informer *inf)
{
	if (inf->started)
		return -EALREADY;
	inf->started = true;
	start_list(inf);
	return 0;
}

void kd_informer_free(struct kd_informer *inf)
{
	if (!inf || inf->dead)
		return;
	inf->dead = true;
	kd_k8s_stream_close(inf->stream);
	inf->stream = NULL;
	kd_loop_timer_stop(inf->retry);
	kd_loop_timer_stop(inf->idle);
	if (inf->in_cb == 0)
		destroy(inf);
}

bool kd_informer_synced(const struct kd_informer *inf)
{
	return inf->synced;
}

struct json_object *kd_informer_get(struct kd_informer *inf, const char *ns, const char *name)
{
	if (!name)
		return NULL;
	kd_autofree char *key = ns && *ns ? kd_xasprintf("%s/%s", ns, name) : kd_xstrdup(name);
	return cache_obj(&inf->cache, key);
}

size_t kd_informer_count(const struct kd_informer *inf)
{
	return inf->cache.map.n;
}

int kd_informer_foreach(struct kd_informer *inf, int (*fn)(struct json_object *obj, void *arg),
                        void *arg)
{
	for (const struct centry *e = inf->cache.head; e; e = e->next) {
		int rc = fn(e->obj, arg);
		if (rc)
			return rc;
	}
	return 0;
}

const char *kd_informer_resource_version(const struct kd_informer *inf)
{
	return inf->rv;
}

void kd_informer_get_stats(const struct kd_informer *inf, struct kd_informer_stats *out)
{
	*out = inf->stats;
}
