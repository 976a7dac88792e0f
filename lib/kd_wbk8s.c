/* kd_wbk8s.c: write-back cache writer over the asynchronous Kubernetes client (kd/wbk8s.h). */
#include <errno.h>
#include <string.h>

#include "kd/json.h"
#include "kd/wbk8s.h"

struct route {
	char *prefix;
	size_t prefix_len;
	const struct kd_k8s_resource *res;
	enum kd_wbk8s_create create;
	enum kd_wbk8s_update update;
	char *subresource;
	bool put_subresource;
	bool update_rv;
	json_object *delete_options; /* owned reference */
	bool uid_precondition;
	kd_wbk8s_body_cb body;
	void *body_arg;
};

struct kd_wbk8s {
	struct kd_k8s *c;
	struct route *routes;
	size_t n;
	struct kd_wbk8s_stats *stats; /* heap, shared with tickets (refcounted) */
	unsigned *stats_refs;
};

/* One in-flight call. Does not point at the adapter (it may be freed first); the counters are
 * shared through a refcount. */
struct ticket {
	kd_wb_done_cb done;
	kd_wb_reread_cb reread;
	void *arg;
	bool is_delete_with_uid;
	struct kd_wbk8s_stats *stats;
	unsigned *refs;
};

static void stats_unref(struct kd_wbk8s_stats *stats, unsigned *refs)
{
	if (--*refs == 0) {
		free(stats);
		free(refs);
	}
}

struct kd_wbk8s *kd_wbk8s_new(struct kd_k8s *c, const struct kd_wbk8s_route *routes, size_t n,
                              struct kd_error **err)
{
	if (!c || !routes || !n) {
		kd_error_set(err, EINVAL, 0, "wbk8s: client and at least one route required");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!routes[i].res || !routes[i].res->resource) {
			kd_error_set(err, EINVAL, 0, "wbk8s: route %zu has no resource", i);
			return NULL;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(routes[i].prefix ? routes[i].prefix : "",
			           routes[j].prefix ? routes[j].prefix : "") == 0) {
				kd_error_set(err, EINVAL, 0,
				             "wbk8s: routes %zu and %zu share prefix", j, i);
				return NULL;
			}
	}
	struct kd_wbk8s *a = kd_xcalloc(1, sizeof(*a));
	a->c = c;
	a->n = n;
	a->routes = kd_xcalloc(n, sizeof(*a->routes));
	for (size_t i = 0; i < n; i++) {
		struct route *r = &a->routes[i];
		const struct kd_wbk8s_route *s = &routes[i];
		r->prefix = kd_xstrdup(s->prefix ? s->prefix : "");
		r->prefix_len = strlen(r->prefix);
		r->res = s->res;
		r->create = s->create;
		r->update = s->update;
		r->subresource = s->subresource ? kd_xstrdup(s->subresource) : NULL;
		r->put_subresource = s->put_subresource;
		r->update_rv = s->update_rv;
		r->delete_options = s->delete_options ? json_object_get(s->delete_options) : NULL;
		r->uid_precondition = s->uid_precondition;
		r->body = s->body;
		r->body_arg = s->body_arg;
	}
	a->stats = kd_xcalloc(1, sizeof(*a->stats));
	a->stats_refs = kd_xcalloc(1, sizeof(*a->stats_refs));
	*a->stats_refs = 1;
	return a;
}

void kd_wbk8s_free(struct kd_wbk8s *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++) {
		free(a->routes[i].prefix);
		free(a->routes[i].subresource);
		if (a->routes[i].delete_options)
			json_object_put(a->routes[i].delete_options);
	}
	free(a->routes);
	stats_unref(a->stats, a->stats_refs);
	free(a);
}

void kd_wbk8s_get_stats(const struct kd_wbk8s *a, struct kd_wbk8s_stats *out)
{
	*out = *a->stats;
}

int kd_wbk8s_parse_key(const struct kd_wbk8s *a, const char *key, size_t *route_index, char **ns,
                       char **name)
{
	if (!key)
		return -EINVAL;
	for (size_t i = 0; i < a->n; i++) {
		const struct route *r = &a->routes[i];
		if (strncmp(key, r->prefix, r->prefix_len) != 0)
			continue;
		const char *rest = key + r->prefix_len;
		const char *slash = strchr(rest, '/');
		if (r->res->namespaced) {
			if (!slash || slash == rest || !slash[1] || strchr(slash + 1, '/'))
				return -EINVAL;
			*ns = kd_xstrndup(rest, (size_t)(slash - rest));
			*name = kd_xstrdup(slash + 1);
		} else {
			if (!*rest || slash)
				return -EINVAL;
			*ns = NULL;
			*name = kd_xstrdup(rest);
		}
		*route_index = i;
		return 0;
	}
	return -EINVAL;
}

static struct ticket *ticket_new(struct kd_wbk8s *a)
{
	struct ticket *t = kd_xcalloc(1, sizeof(*t));
	t->stats = a->stats;
	t->refs = a->stats_refs;
	++*t->refs;
	return t;
}

static void ticket_free(struct ticket *t)
{
	stats_unref(t->stats, t->refs);
	free(t);
}

static void write_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	(void)resp;
	struct ticket *t = arg;
	enum kd_wb_result res = kd_wb_classify_error(err);
	/* a failed uid precondition on DELETE: the object of that uid is gone */
	if (t->is_delete_with_uid && res == KD_WB_CONFLICT)
		res = KD_WB_NOT_FOUND;
	if (res == KD_WB_OK)
		t->stats->ok++;
	else
		t->stats->failed++;
	t->done(t->arg, res, err);
	ticket_free(t);
}

/* Default body: a deep copy of obj without the fields the server owns or that would make an
 * update conditional. keep_rv: take the resourceVersion from base. */
static json_object *default_body(json_object *obj, json_object *base, bool keep_rv)
{
	json_object *b = NULL;
	if (json_object_deep_copy(obj, &b, NULL) != 0 || !b)
		return json_object_get(obj);
	json_object *meta = kd_json_get_object(b, "metadata");
	if (meta) {
		json_object_object_del(meta, "resourceVersion");
		json_object_object_del(meta, "uid");
		json_object_object_del(meta, "creationTimestamp");
		json_object_object_del(meta, "managedFields");
		const char *rv =
		    keep_rv ? kd_json_get_string(base, "metadata.resourceVersion") : NULL;
		if (rv)
			json_object_object_add(meta, "resourceVersion", json_object_new_string(rv));
	}
	return b;
}

static enum kd_k8s_patch_type patch_type(enum kd_wbk8s_update u)
{
	return u == KD_WBK8S_UPDATE_STRATEGIC ? KD_K8S_PATCH_STRATEGIC : KD_K8S_PATCH_MERGE;
}

static int wb_write(void *ctx, const char *key, enum kd_wb_op op, json_object *obj,
                    json_object *base, kd_wb_done_cb done, void *done_arg)
{
	struct kd_wbk8s *a = ctx;
	size_t ri = 0;
	kd_autofree char *ns = NULL;
	kd_autofree char *name = NULL;
	if (kd_wbk8s_parse_key(a, key, &ri, &ns, &name) < 0)
		return -EINVAL;
	const struct route *r = &a->routes[ri];
	struct kd_k8s_request req = {.res = r->res, .ns = ns, .name = name};
	kd_autojson json_object *body = NULL;
	struct ticket *t = ticket_new(a);
	t->done = done;
	t->arg = done_arg;

	if (op == KD_WB_OP_DELETE) {
		req.verb = KD_K8S_DELETE;
		const char *uid = kd_json_get_string(obj, "metadata.uid");
		bool want_uid = r->uid_precondition && uid;
		if (r->delete_options || want_uid) {
			if (!r->delete_options ||
			    json_object_deep_copy(r->delete_options, &body, NULL) != 0 || !body)
				body = json_object_new_object();
			if (want_uid) {
				json_object *pre = json_object_new_object();
				json_object_object_add(pre, "uid", json_object_new_string(uid));
				json_object_object_add(body, "preconditions", pre);
				t->is_delete_with_uid = true;
			}
			req.body = body;
		}
		a->stats->deletes++;
	} else {
		if (r->body)
			body = r->body(r->body_arg, op, obj, base);
		bool put_rv =
		    op == KD_WB_OP_UPDATE && r->update == KD_WBK8S_UPDATE_PUT && r->update_rv;
		if (!body)
			body = default_body(obj, base, put_rv);
		req.body = body;
		if (op == KD_WB_OP_CREATE && r->create == KD_WBK8S_CREATE_POST) {
			req.verb = KD_K8S_CREATE;
			req.name = NULL;
			a->stats->posts++;
		} else if ((op == KD_WB_OP_CREATE && r->create == KD_WBK8S_CREATE_PUT) ||
		           (op == KD_WB_OP_UPDATE && r->update == KD_WBK8S_UPDATE_PUT)) {
			req.verb = KD_K8S_UPDATE;
			req.subresource = r->put_subresource ? r->subresource : NULL;
			a->stats->puts++;
		} else {
			req.verb = KD_K8S_PATCH;
			req.subresource = r->subresource;
			req.patch_type = patch_type(r->update);
			a->stats->patches++;
		}
	}
	kd_autoerr struct kd_error *err = NULL;
	int rc = kd_k8s_submit(a->c, &req, write_done, t, &err);
	if (rc < 0) {
		ticket_free(t);
		return rc;
	}
	return 0;
}

static void reread_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	struct ticket *t = arg;
	enum kd_wb_result res = kd_wb_classify_error(err);
	if (res == KD_WB_OK)
		t->stats->ok++;
	else
		t->stats->failed++;
	t->reread(t->arg, res, res == KD_WB_OK && resp ? resp->body : NULL, err);
	ticket_free(t);
}

static int wb_reread(void *ctx, const char *key, kd_wb_reread_cb cb, void *cb_arg)
{
	struct kd_wbk8s *a = ctx;
	size_t ri = 0;
	kd_autofree char *ns = NULL;
	kd_autofree char *name = NULL;
	if (kd_wbk8s_parse_key(a, key, &ri, &ns, &name) < 0)
		return -EINVAL;
	struct kd_k8s_request req = {
	    .verb = KD_K8S_GET, .res = a->routes[ri].res, .ns = ns, .name = name};
	struct ticket *t = ticket_new(a);
	t->reread = cb;
	t->arg = cb_arg;
	a->stats->gets++;
	kd_autoerr struct kd_error *err = NULL;
	int rc = kd_k8s_submit(a->c, &req, reread_done, t, &err);
	if (rc < 0) {
		ticket_free(t);
		return rc;
	}
	return 0;
}

void kd_wbk8s_writer(struct kd_wbk8s *a, struct kd_wb_writer *w)
{
	memset(w, 0, sizeof(*w));
	w->write = wb_write;
	w->reread = wb_reread;
	w->ctx = a;
}
