/* kd_instance.c: the shared instance model (kd/instance.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kd/check.h"
#include "kd/hash.h"
#include "kd/instance.h"
#include "kd/json.h"

void kd_instance_init(struct kd_instance_desc *d)
{
	memset(d, 0, sizeof(*d));
	d->cpu_millis = -1;
	d->mem_bytes = -1;
}

void kd_instance_fini(struct kd_instance_desc *d)
{
	if (!d)
		return;
	free(d->ns);
	free(d->name);
	free(d->tmpl_name);
	free(d->tmpl_uid);
	free(d->tmpl_hash);
	free(d->owner_name);
	free(d->owner_uid);
	free(d->node);
	kd_instance_init(d);
}

static char *dupn(const char *s)
{
	return s ? kd_xstrdup(s) : NULL;
}

void kd_instance_copy(struct kd_instance_desc *dst, const struct kd_instance_desc *src)
{
	*dst = *src;
	dst->ns = dupn(src->ns);
	dst->name = dupn(src->name);
	dst->tmpl_name = dupn(src->tmpl_name);
	dst->tmpl_uid = dupn(src->tmpl_uid);
	dst->tmpl_hash = dupn(src->tmpl_hash);
	dst->owner_name = dupn(src->owner_name);
	dst->owner_uid = dupn(src->owner_uid);
	dst->node = dupn(src->node);
}

char *kd_instance_key(const struct kd_instance_desc *d)
{
	return kd_xasprintf("%s/%s", d->ns ? d->ns : "", d->name ? d->name : "");
}

static bool empty(const char *s)
{
	return !s || !*s;
}

static bool hash_ok(const char *h)
{
	if (!h || strlen(h) != KD_TEMPLATE_HASH_LEN)
		return false;
	for (const char *p = h; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

/* Owner annotation value "<name>/<uid>". */
static char *owner_value(const struct kd_instance_desc *d)
{
	return kd_xasprintf("%s/%s", d->owner_name, d->owner_uid);
}

/* Validates op as the only op of a delta, with the codec's own rules. */
static int op_validate(const struct kd_op *op, struct kd_error **err)
{
	struct kd_msg m;
	kd_msg_init(&m, KD_MSG_DELTA, 1, 1);
	*kd_op_list_push(&m.delta.ops) = *op; /* shallow: detached before fini */
	int rc = kd_msg_validate(&m, NULL, err);
	memset(&m.delta.ops.v[0], 0, sizeof(m.delta.ops.v[0]));
	kd_msg_fini(&m);
	return rc;
}

int kd_instance_check(const struct kd_instance_desc *d, struct kd_error **err)
{
	const char *what = NULL;
	if (empty(d->ns))
		what = "namespace";
	else if (empty(d->name))
		what = "name";
	else if (empty(d->tmpl_name))
		what = "template name";
	else if (empty(d->tmpl_uid))
		what = "template uid";
	else if (!hash_ok(d->tmpl_hash))
		what = "template hash (16 hex digits)";
	else if (empty(d->owner_name) || strchr(d->owner_name, '/'))
		what = "owner name";
	else if (empty(d->owner_uid))
		what = "owner uid";
	else if (empty(d->node))
		what = "node";
	else if (d->ctime_ms < 1 || d->ctime_ms > KD_INT_MAX)
		what = "creation time";
	else if (d->cpu_millis < -1 || d->cpu_millis > KD_CPU_MAX)
		what = "cpu request";
	else if (d->mem_bytes < -1 || d->mem_bytes > KD_INT_MAX)
		what = "memory request";
	if (what)
		return kd_error_set(err, EINVAL, 0, "instance %s/%s: missing or invalid %s",
		                    d->ns ? d->ns : "?", d->name ? d->name : "?", what);
	kd_autofree char *key = kd_instance_key(d);
	int rc = kd_key_check(key, strlen(key), err);
	if (rc < 0)
		kd_error_wrap(err, "instance");
	return rc;
}

int kd_instance_to_op(const struct kd_instance_desc *d, struct kd_op *op, struct kd_error **err)
{
	int rc = kd_instance_check(d, err);
	if (rc < 0)
		return rc;
	struct kd_op o;
	kd_autofree char *key = kd_instance_key(d);
	kd_op_init(&o, KD_OP_UPSERT, key);
	kd_op_set_tmpl(&o, KD_TEMPLATE_KIND, d->tmpl_name, d->tmpl_uid, d->tmpl_hash);
	kd_op_set_str(&o.node, d->node);
	o.ctime_ms = d->ctime_ms;
	o.has |= KD_OP_HAS_CTIME;
	if (d->cpu_millis >= 0) {
		o.cpu_millis = d->cpu_millis;
		o.has |= KD_OP_HAS_CPU;
	}
	if (d->mem_bytes >= 0) {
		o.mem_bytes = d->mem_bytes;
		o.has |= KD_OP_HAS_MEM;
	}
	kd_autofree char *owner = owner_value(d);
	kd_kv_list_push(&o.annotations, KD_ANNOT_OWNER, owner);
	rc = op_validate(&o, err);
	if (rc < 0) {
		kd_op_fini(&o);
		kd_error_wrap(err, "instance %s", key);
		return rc;
	}
	*op = o;
	return 0;
}

static const char *kv_find(const struct kd_kv_list *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].key, key) == 0)
			return l->v[i].value;
	return NULL;
}

/* Splits "a/b" (exactly one '/', both non-empty) into owned strings. */
static int split2(const char *s, char **a, char **b)
{
	const char *slash = s ? strchr(s, '/') : NULL;
	if (!slash || slash == s || !slash[1] || strchr(slash + 1, '/'))
		return -EINVAL;
	*a = kd_xstrndup(s, (size_t)(slash - s));
	*b = kd_xstrdup(slash + 1);
	return 0;
}

int kd_instance_key_split(const char *key, char **ns, char **name, struct kd_error **err)
{
	if (!key || kd_key_check(key, strlen(key), err) < 0)
		return kd_error_set(err, EINVAL, 0, "key is not namespace/name");
	return split2(key, ns, name);
}

int kd_instance_from_op(const struct kd_op *op, struct kd_instance_desc *out, struct kd_error **err)
{
	const char *key = op->key ? op->key : "?";
	if (op->kind != KD_OP_UPSERT)
		return kd_error_set(err, EINVAL, 0, "instance %s: not an upsert", key);
	const char *what = NULL;
	if (!(op->has & KD_OP_HAS_TMPL) || !op->tmpl.kind ||
	    strcmp(op->tmpl.kind, KD_TEMPLATE_KIND) != 0)
		what = "tmpl (kind Deployment)";
	else if (!op->node)
		what = "node";
	else if (!(op->has & KD_OP_HAS_CTIME))
		what = "ctime";
	else if (!kv_find(&op->annotations, KD_ANNOT_OWNER))
		what = "annotation " KD_ANNOT_OWNER;
	if (what)
		return kd_error_set(err, EINVAL, 0, "instance %s: missing %s", key, what);
	struct kd_instance_desc d;
	kd_instance_init(&d);
	if (split2(op->key, &d.ns, &d.name) < 0 ||
	    split2(kv_find(&op->annotations, KD_ANNOT_OWNER), &d.owner_name, &d.owner_uid) < 0) {
		kd_instance_fini(&d);
		return kd_error_set(err, EINVAL, 0, "instance %s: malformed key or owner", key);
	}
	d.tmpl_name = kd_xstrdup(op->tmpl.name);
	d.tmpl_uid = kd_xstrdup(op->tmpl.uid);
	d.tmpl_hash = kd_xstrdup(op->tmpl.hash);
	d.node = kd_xstrdup(op->node);
	d.ctime_ms = op->ctime_ms;
	if (op->has & KD_OP_HAS_CPU)
		d.cpu_millis = op->cpu_millis;
	if (op->has & KD_OP_HAS_MEM)
		d.mem_bytes = op->mem_bytes;
	int rc = kd_instance_check(&d, err);
	if (rc < 0) {
		kd_instance_fini(&d);
		return rc;
	}
	*out = d;
	return 0;
}

bool kd_instance_pod_is_managed(json_object *pod)
{
	json_object *labels = kd_json_get_object(pod, "metadata.labels");
	json_object *v = NULL;
	return labels && json_object_object_get_ex(labels, KD_LABEL_MANAGED, &v) &&
	       json_object_is_type(v, json_type_string) &&
	       strcmp(json_object_get_string(v), "true") == 0;
}

static const char *annotation(json_object *obj, const char *key)
{
	json_object *a = kd_json_get_object(obj, "metadata.annotations");
	json_object *v = NULL;
	if (!a || !json_object_object_get_ex(a, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int kd_instance_from_pod(json_object *pod, struct kd_instance_desc *out, struct kd_error **err)
{
	const char *ns = kd_json_get_string(pod, "metadata.namespace");
	const char *name = kd_json_get_string(pod, "metadata.name");
	if (!ns || !name)
		return kd_error_set(err, EINVAL, 0, "pod without namespace or name");
	if (!kd_instance_pod_is_managed(pod))
		return kd_error_set(err, EINVAL, 0, "pod %s/%s: not labelled %s=true", ns, name,
		                    KD_LABEL_MANAGED);
	struct kd_instance_desc d;
	kd_instance_init(&d);
	d.ns = kd_xstrdup(ns);
	d.name = kd_xstrdup(name);
	d.node = dupn(kd_json_get_string(pod, "spec.nodeName"));
	d.tmpl_hash = dupn(annotation(pod, KD_ANNOT_TEMPLATE_HASH));
	const char *tmpl = annotation(pod, KD_ANNOT_TEMPLATE);
	if (tmpl)
		(void)split2(tmpl, &d.tmpl_name, &d.tmpl_uid);
	json_object *refs = kd_json_get_array(pod, "metadata.ownerReferences");
	for (size_t i = 0; refs && i < json_object_array_length(refs); i++) {
		json_object *r = json_object_array_get_idx(refs, i);
		bool ctl = false;
		const char *kind = kd_json_get_string(r, "kind");
		if (kind && strcmp(kind, KD_PA_KIND) == 0 &&
		    kd_json_get_bool(r, "controller", &ctl) == 0 && ctl) {
			d.owner_name = dupn(kd_json_get_string(r, "name"));
			d.owner_uid = dupn(kd_json_get_string(r, "uid"));
			break;
		}
	}
	const char *ct = annotation(pod, KD_ANNOT_CTIME);
	if (ct) {
		char *end = NULL;
		errno = 0;
		long long v = strtoll(ct, &end, 10);
		if (!errno && end && !*end && v > 0)
			d.ctime_ms = v;
	}
	if (d.ctime_ms <= 0)
		d.ctime_ms = 1; /* unknown: "long ago" */
	int rc = kd_instance_check(&d, err);
	if (rc < 0) {
		kd_instance_fini(&d);
		kd_error_wrap(err, "pod %s/%s", ns, name);
		return rc;
	}
	*out = d;
	return 0;
}

/* The template hash starts from the value every build so far used, 1469598103934665603 (the FNV
 * offset basis with its last digit lost), not KD_HASH_INIT: the hash is persisted in the
 * template-hash annotation of every Pod kd-node created and compared with a freshly computed one,
 * so Pods created by an earlier build would otherwise stop matching their Deployment. */
#define TEMPLATE_HASH_INIT 1469598103934665603ull

int kd_instance_template_hash(json_object *deployment, char buf[KD_TEMPLATE_HASH_LEN + 1])
{
	json_object *t = kd_json_get_object(deployment, "spec.template");
	if (!t)
		return -EINVAL;
	const char *s = json_object_to_json_string_ext(t, JSON_C_TO_STRING_PLAIN);
	uint64_t h = kd_hash_str(TEMPLATE_HASH_INIT, s);
	snprintf(buf, KD_TEMPLATE_HASH_LEN + 1, "%016" PRIx64, h);
	return 0;
}

static json_object *copy_or_new(json_object *o)
{
	json_object *c = NULL;
	if (o && json_object_is_type(o, json_type_object) &&
	    json_object_deep_copy(o, &c, NULL) == 0)
		return c;
	return json_object_new_object();
}

static void set_requests(json_object *spec, const struct kd_instance_desc *d)
{
	if (d->cpu_millis < 0 && d->mem_bytes < 0)
		return;
	json_object *c0 = json_object_array_get_idx(kd_json_get_array(spec, "containers"), 0);
	if (!c0)
		return;
	json_object *res = kd_json_get_object(c0, "resources");
	if (!res) {
		res = json_object_new_object();
		json_object_object_add(c0, "resources", res);
	}
	json_object *req = kd_json_get_object(res, "requests");
	if (!req) {
		req = json_object_new_object();
		json_object_object_add(res, "requests", req);
	}
	char buf[32];
	if (d->cpu_millis >= 0) {
		snprintf(buf, sizeof(buf), "%" PRId64 "m", d->cpu_millis);
		json_object_object_add(req, "cpu", json_object_new_string(buf));
	}
	if (d->mem_bytes >= 0) {
		snprintf(buf, sizeof(buf), "%" PRId64, d->mem_bytes);
		json_object_object_add(req, "memory", json_object_new_string(buf));
	}
}

int kd_instance_build_pod(json_object *deployment, const struct kd_instance_desc *d,
                          json_object **out, struct kd_error **err)
{
	int rc = kd_instance_check(d, err);
	if (rc < 0)
		return rc;
	const char *uid = kd_json_get_string(deployment, "metadata.uid");
	const char *dname = kd_json_get_string(deployment, "metadata.name");
	json_object *tspec = kd_json_get_object(deployment, "spec.template.spec");
	if (!tspec)
		return kd_error_set(err, EINVAL, 0,
		                    "instance %s/%s: deployment %s has no pod template", d->ns,
		                    d->name, dname ? dname : "?");
	char hash[KD_TEMPLATE_HASH_LEN + 1] = "?"; /* printed below even when not computed */
	if (!uid || strcmp(uid, d->tmpl_uid) != 0 || !dname || strcmp(dname, d->tmpl_name) != 0 ||
	    kd_instance_template_hash(deployment, hash) < 0 || strcmp(hash, d->tmpl_hash) != 0)
		return kd_error_set(err, ESTALE, 0,
		                    "instance %s/%s: template %s (uid %s, hash %s) is not the "
		                    "deployment at hand (%s, uid %s, hash %s)",
		                    d->ns, d->name, d->tmpl_name, d->tmpl_uid, d->tmpl_hash,
		                    dname ? dname : "?", uid ? uid : "?", hash);

	json_object *pod = json_object_new_object();
	json_object_object_add(pod, "apiVersion", json_object_new_string("v1"));
	json_object_object_add(pod, "kind", json_object_new_string("Pod"));
	json_object *meta = json_object_new_object();
	json_object_object_add(pod, "metadata", meta);
	json_object_object_add(meta, "name", json_object_new_string(d->name));
	json_object_object_add(meta, "namespace", json_object_new_string(d->ns));

	json_object *labels = copy_or_new(kd_json_get(deployment, "spec.template.metadata.labels"));
	json_object_object_del(labels, KD_LABEL_POD_TEMPLATE_HASH);
	json_object_object_add(labels, KD_LABEL_MANAGED, json_object_new_string("true"));
	json_object_object_add(meta, "labels", labels);

	json_object *ann =
	    copy_or_new(kd_json_get(deployment, "spec.template.metadata.annotations"));
	kd_autofree char *tmpl = kd_xasprintf("%s/%s", d->tmpl_name, d->tmpl_uid);
	kd_autofree char *owner = owner_value(d);
	char ct[32];
	snprintf(ct, sizeof(ct), "%" PRId64, d->ctime_ms);
	json_object_object_add(ann, KD_ANNOT_TEMPLATE, json_object_new_string(tmpl));
	json_object_object_add(ann, KD_ANNOT_TEMPLATE_HASH, json_object_new_string(d->tmpl_hash));
	json_object_object_add(ann, KD_ANNOT_CTIME, json_object_new_string(ct));
	json_object_object_add(ann, KD_ANNOT_OWNER, json_object_new_string(owner));
	json_object_object_add(meta, "annotations", ann);

	json_object *ref = json_object_new_object();
	json_object_object_add(ref, "apiVersion", json_object_new_string(KD_PA_API_VERSION));
	json_object_object_add(ref, "kind", json_object_new_string(KD_PA_KIND));
	json_object_object_add(ref, "name", json_object_new_string(d->owner_name));
	json_object_object_add(ref, "uid", json_object_new_string(d->owner_uid));
	json_object_object_add(ref, "controller", json_object_new_boolean(1));
	json_object_object_add(ref, "blockOwnerDeletion", json_object_new_boolean(1));
	json_object *refs = json_object_new_array();
	json_object_array_add(refs, ref);
	json_object_object_add(meta, "ownerReferences", refs);

	json_object *spec = copy_or_new(tspec);
	json_object_object_add(spec, "nodeName", json_object_new_string(d->node));
	set_requests(spec, d);
	json_object_object_add(pod, "spec", spec);
	*out = pod;
	return 0;
}

/* ---- status ------------------------------------------------------------------------------- */

void kd_instance_status_init(struct kd_instance_status *st)
{
	memset(st, 0, sizeof(*st));
}

void kd_instance_status_fini(struct kd_instance_status *st)
{
	if (!st)
		return;
	free(st->ns);
	free(st->name);
	free(st->node);
	free(st->ip);
	free(st->reason);
	free(st->revision);
	memset(st, 0, sizeof(*st));
}

int kd_instance_status_to_op(const struct kd_instance_status *st, struct kd_op *op,
                             struct kd_error **err)
{
	kd_autofree char *key =
	    kd_xasprintf("%s/%s", st->ns ? st->ns : "", st->name ? st->name : "");
	if (!st->gone && empty(st->node))
		return kd_error_set(err, EINVAL, 0, "status %s: no node", key);
	struct kd_op o;
	kd_op_init(&o, st->gone ? KD_OP_DELETE : KD_OP_UPSERT, key);
	if (!st->gone) {
		kd_op_set_str(&o.node, st->node);
		o.ready = st->ready;
		o.has |= KD_OP_HAS_READY;
		if (st->ip)
			kd_op_set_str(&o.ip, st->ip);
		if (st->revision)
			kd_kv_list_push(&o.labels, KD_KNATIVE_LABEL_REVISION, st->revision);
	}
	if (st->reason)
		kd_op_set_str(&o.reason, st->reason);
	int rc = op_validate(&o, err);
	if (rc < 0) {
		kd_op_fini(&o);
		kd_error_wrap(err, "status %s", key);
		return rc;
	}
	*op = o;
	return 0;
}

int kd_instance_status_from_op(const struct kd_op *op, struct kd_instance_status *out,
                               struct kd_error **err)
{
	const char *key = op->key ? op->key : "?";
	struct kd_instance_status st;
	kd_instance_status_init(&st);
	if (op->kind == KD_OP_UPSERT && (!op->node || !(op->has & KD_OP_HAS_READY)))
		return kd_error_set(err, EINVAL, 0, "status %s: upsert without node or ready", key);
	if (op->kind != KD_OP_UPSERT && op->kind != KD_OP_DELETE)
		return kd_error_set(err, EINVAL, 0, "status %s: unknown op", key);
	if (split2(op->key, &st.ns, &st.name) < 0)
		return kd_error_set(err, EINVAL, 0, "status %s: key is not namespace/name", key);
	st.gone = op->kind == KD_OP_DELETE;
	st.node = dupn(op->node);
	st.ready = op->ready;
	st.ip = dupn(op->ip);
	st.reason = dupn(op->reason);
	for (size_t i = 0; i < op->labels.n; i++)
		if (strcmp(op->labels.v[i].key, KD_KNATIVE_LABEL_REVISION) == 0 && !st.revision)
			st.revision = kd_xstrdup(op->labels.v[i].value);
	*out = st;
	return 0;
}

void kd_instance_status_held_op(const char *key, struct kd_op *op)
{
	kd_op_init(op, KD_OP_UPSERT, key);
}

int kd_instance_addr_parse(const char *addr, char **host, int *port, struct kd_error **err)
{
	char *h = NULL;
	int p = 0;
	int rc = kd_hostport_parse("channel address", addr, &h, &p, err);
	if (rc < 0)
		return rc;
	*host = h;
	*port = p;
	return 0;
}
