/* node-agent/directops.c: the pure parts of kd-node's direct mode (direct.h): the decision table
 * for incoming ops, held[] and status ops, the published address. No I/O. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "direct.h"
#include "kd/common.h"
#include "kd/instance.h"

enum kd_direct_action kd_node_direct_decide(const struct kd_direct_facts *f)
{
	if (f->kind == KD_OP_DELETE) {
		if (!f->has_entry)
			return KD_DIRECT_NOOP; /* never had it, or already gone: idempotent */
		return f->entry_persisted ? KD_DIRECT_DELETE_PERSISTED : KD_DIRECT_CANCEL;
	}
	if (f->kind != KD_OP_UPSERT)
		return KD_DIRECT_NOOP;
	if (!f->node_ours)
		return KD_DIRECT_REFUSE_NODE;
	if (f->cancelled)
		return KD_DIRECT_REFUSE_BUSY;
	if (f->has_entry) {
		if (f->entry_stopping || !f->entry_same_node)
			return KD_DIRECT_REFUSE_BUSY;
		return KD_DIRECT_NOOP; /* one sandbox per key: duplicate op or API pod seen first */
	}
	if (!f->pods_synced)
		return KD_DIRECT_WAIT;
	switch (f->tmpl) {
	case KD_DIRECT_TMPL_OK:
		return KD_DIRECT_START;
	case KD_DIRECT_TMPL_STALE:
		return KD_DIRECT_WAIT;
	case KD_DIRECT_TMPL_MISSING:
		return f->tmpl_synced ? KD_DIRECT_REFUSE_TEMPLATE : KD_DIRECT_WAIT;
	}
	return KD_DIRECT_WAIT;
}

const char *kd_node_direct_action_name(enum kd_direct_action act)
{
	switch (act) {
	case KD_DIRECT_NOOP:
		return "noop";
	case KD_DIRECT_START:
		return "start";
	case KD_DIRECT_WAIT:
		return "wait";
	case KD_DIRECT_REFUSE_NODE:
		return "refuse-node";
	case KD_DIRECT_REFUSE_TEMPLATE:
		return "refuse-template";
	case KD_DIRECT_REFUSE_BUSY:
		return "refuse-busy";
	case KD_DIRECT_CANCEL:
		return "cancel";
	case KD_DIRECT_DELETE_PERSISTED:
		return "delete-persisted";
	}
	return "?";
}

int kd_node_direct_held_op(json_object *pod, struct kd_op *op, struct kd_error **err)
{
	struct kd_instance_desc d;
	int rc = kd_instance_from_pod(pod, &d, err);
	if (rc < 0)
		return rc;
	rc = kd_instance_to_op(&d, op, err);
	kd_instance_fini(&d);
	return rc;
}

int kd_node_direct_status_op(const char *key, const char *node, bool ready, const char *ip,
                             const char *reason, const char *revision, bool gone, struct kd_op *op,
                             struct kd_error **err)
{
	struct kd_instance_status st;
	kd_instance_status_init(&st);
	int rc = kd_instance_key_split(key, &st.ns, &st.name, err);
	if (rc == 0) {
		st.node = node && !gone ? kd_xstrdup(node) : NULL;
		st.ready = ready && !gone;
		st.ip = ip && *ip ? kd_xstrdup(ip) : NULL;
		st.reason = reason ? kd_xstrdup(reason) : NULL;
		st.revision = revision && *revision && !gone ? kd_xstrdup(revision) : NULL;
		st.gone = gone;
		rc = kd_instance_status_to_op(&st, op, err);
	}
	kd_instance_status_fini(&st);
	return rc;
}

char *kd_node_direct_addr(const char *advertise, const char *bind, int port)
{
	if (advertise && *advertise)
		return kd_xstrdup(advertise);
	if (!bind || !*bind || strcmp(bind, "0.0.0.0") == 0 || strcmp(bind, "::") == 0)
		bind = "127.0.0.1";
	if (strchr(bind, ':'))
		return kd_xasprintf("[%s]:%d", bind, port);
	return kd_xasprintf("%s:%d", bind, port);
}
