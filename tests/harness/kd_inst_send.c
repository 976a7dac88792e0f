/* kd_inst_send (test harness): plays kd-autoscaler on ONE instance channel: connects a kd_chan
 * upstream to a kd-node (127.0.0.1:--port), sends one instance upsert built with
 * kd_instance_to_op, and reports on stdout:
 *   ACKED                       the delta carrying the op was acknowledged
 *   REFUSED <code> <reason>     kd-node answered error{APPLY} for it
 * then exits 0 (after a short grace period so a refusal that follows the ack is seen: the
 * handshake acks a delta and appends error{APPLY} after it). Exit 1 on bad options, 2 on
 * timeout (5 s).
 *
 * The template reference comes from --deployment FILE (a Deployment as `kubectl get -o json`
 * prints it: name, uid and kd_instance_template_hash), or, for a template kd-node cannot know,
 * from --tmpl-name NAME (uid "no-such-uid", hash "0000000000000000").
 * Options: --port P --source NAME --ns NS --name POD --node NODE --owner PA_NAME/PA_UID
 *          (--deployment FILE | --tmpl-name NAME) [--dup: every delta frame written twice] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd/chan.h"
#include "kd/instance.h"
#include "kd/json.h"
#include "kd/log.h"
#include "kd/loop.h"

struct st {
	struct kd_loop *loop;
	struct kd_op op;
	bool acked, refused;
	uint64_t id;
	struct kd_timer *grace;
};

static int wanted(void *ud, struct kd_op_list *out, struct kd_error **err)
{
	(void)ud;
	(void)out;
	(void)err;
	return 0; /* the op goes as a delta, not through the reconcile */
}

static bool persisted(void *ud, const char *key)
{
	(void)ud;
	(void)key;
	return false;
}

static void remote_error(void *ud, int code, const char *reason)
{
	struct st *s = ud;
	if (!s->refused)
		printf("REFUSED %d %s\n", code, reason ? reason : "");
	fflush(stdout);
	s->refused = true;
}

static void on_acked(void *ud, uint64_t id)
{
	struct st *s = ud;
	if (id >= s->id && !s->acked) {
		s->acked = true;
		printf("ACKED\n");
		fflush(stdout);
		kd_loop_timer_start(s->grace, 500);
	}
}

static void on_stop(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)t;
	(void)arg;
	kd_loop_stop(loop);
}

int main(int argc, char **argv)
{
	const char *port = NULL, *source = "kd-inst-send", *ns = NULL, *name = NULL, *node = NULL,
	           *owner = NULL, *dep_file = NULL, *tmpl_name = NULL;
	bool dup = false;
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(argv[i], "--dup") == 0) {
			dup = true;
			continue;
		}
		if (!v) {
			fprintf(stderr, "kd_inst_send: %s needs a value\n", argv[i]);
			return 1;
		}
		if (strcmp(argv[i], "--port") == 0)
			port = v;
		else if (strcmp(argv[i], "--source") == 0)
			source = v;
		else if (strcmp(argv[i], "--ns") == 0)
			ns = v;
		else if (strcmp(argv[i], "--name") == 0)
			name = v;
		else if (strcmp(argv[i], "--node") == 0)
			node = v;
		else if (strcmp(argv[i], "--owner") == 0)
			owner = v;
		else if (strcmp(argv[i], "--deployment") == 0)
			dep_file = v;
		else if (strcmp(argv[i], "--tmpl-name") == 0)
			tmpl_name = v;
		else {
			fprintf(stderr, "kd_inst_send: unknown option %s\n", argv[i]);
			return 1;
		}
		i++;
	}
	const char *slash = owner ? strchr(owner, '/') : NULL;
	if (!port || !ns || !name || !node || !slash || (!dep_file == !tmpl_name)) {
		fprintf(stderr,
		        "kd_inst_send: --port --ns --name --node --owner NAME/UID and one of "
		        "--deployment/--tmpl-name are required\n");
		return 1;
	}
	kd_log_init("kd_inst_send", KD_LOG_WARN, KD_LOG_TEXT);
	struct kd_instance_desc d;
	kd_instance_init(&d);
	d.ns = kd_xstrdup(ns);
	d.name = kd_xstrdup(name);
	d.node = kd_xstrdup(node);
	d.owner_name = kd_xstrndup(owner, (size_t)(slash - owner));
	d.owner_uid = kd_xstrdup(slash + 1);
	d.ctime_ms = 1;
	if (dep_file) {
		json_object *dep = json_object_from_file(dep_file);
		char hash[KD_TEMPLATE_HASH_LEN + 1];
		if (!dep || kd_instance_template_hash(dep, hash) < 0) {
			fprintf(stderr, "kd_inst_send: %s: not a Deployment\n", dep_file);
			return 1;
		}
		d.tmpl_name = kd_xstrdup(kd_json_get_string(dep, "metadata.name"));
		d.tmpl_uid = kd_xstrdup(kd_json_get_string(dep, "metadata.uid"));
		d.tmpl_hash = kd_xstrdup(hash);
		json_object_put(dep);
	} else {
		d.tmpl_name = kd_xstrdup(tmpl_name);
		d.tmpl_uid = kd_xstrdup("no-such-uid");
		d.tmpl_hash = kd_xstrdup("0000000000000000");
	}
	struct st s;
	memset(&s, 0, sizeof(s));
	kd_autoerr struct kd_error *err = NULL;
	if (kd_instance_to_op(&d, &s.op, &err) < 0) {
		fprintf(stderr, "kd_inst_send: %s\n", kd_error_msg(err));
		return 1;
	}
	kd_instance_fini(&d);
	s.loop = kd_loop_new();
	s.grace = kd_loop_timer_new(s.loop, on_stop, &s);
	struct kd_timer *timeout = kd_loop_timer_new(s.loop, on_stop, &s);
	kd_loop_timer_start(timeout, 5000);
	struct kd_chan_up_opts o = {
	    .host = "127.0.0.1", .port = atoi(port), .source = source, .fault_dup = dup};
	struct kd_chan_up_cbs cbs = {
	    .hs = {.wanted = wanted, .persisted = persisted, .remote_error = remote_error},
	    .acked = on_acked};
	struct kd_chan_up *up = kd_chan_up_new(s.loop, &o, &cbs, &s, &err);
	if (!up) {
		fprintf(stderr, "kd_inst_send: %s\n", kd_error_msg(err));
		return 1;
	}
	struct kd_op_list ops = {0};
	*kd_op_list_push(&ops) = s.op; /* moved */
	memset(&s.op, 0, sizeof(s.op));
	if (kd_chan_up_send(up, &ops, &s.id, &err) < 0) {
		fprintf(stderr, "kd_inst_send: %s\n", kd_error_msg(err));
		return 1;
	}
	kd_loop_run(s.loop);
	kd_chan_up_free(up);
	kd_op_list_fini(&ops);
	kd_loop_timer_free(s.grace);
	kd_loop_timer_free(timeout);
	kd_loop_free(s.loop);
	return s.acked ? 0 : 2;
}
