/* Unit tests for plugins/workload, loaded through the real loader (by name, via KD_PLUGIN_DIR):
 * unique DNS-1123 names carrying owner and template hash, idempotent re-plans, victim order
 * (not ready, then newest), no collision with live names, name length limits, config options. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kd/config.h"
#include "kd/error.h"
#include "kd/loop.h"
#include "kd/plugin.h"
#include "kd/stage.h"

#define ALPHABET "bcdfghjklmnpqrstvwxz2456789"

static struct kd_loop *loop;
static struct kd_host host;

struct wl {
	struct kd_plugin_handle *h;
	const struct kd_workload_ops *ops;
	void *st;
};

static int wl_load(struct wl *w, const char *config_json, struct kd_error **err)
{
	memset(w, 0, sizeof(*w));
	int rc = kd_plugin_load("workload", KD_PLUGIN_WORKLOAD, config_json, &host, &w->h, err);
	if (rc == 0) {
		w->ops = kd_plugin_ops(w->h);
		w->st = kd_plugin_state(w->h);
	}
	return rc;
}

static struct wl load_ok(const char *config_json)
{
	struct wl w;
	struct kd_error *err = NULL;
	int rc = wl_load(&w, config_json, &err);
	if (rc != 0)
		fail_msg("load workload: %s", err ? err->msg : "?");
	return w;
}

/* A live set the test owns: instances with owned names. */
struct live {
	struct kd_instance v[256];
	char names[256][64];
	size_t n;
};

static struct kd_instance *live_add(struct live *l, const char *name, bool ready, const char *node,
                                    enum kd_instance_state st, uint64_t created_ms)
{
	assert_true(l->n < KD_ARRAY_SIZE(l->v));
	snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
	struct kd_instance *i = &l->v[l->n];
	*i = (struct kd_instance){.name = l->names[l->n],
	                          .node = node,
	                          .state = st,
	                          .ready = ready,
	                          .created_ms = created_ms};
	l->n++;
	return i;
}

static bool live_has(const struct live *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->names[i], name) == 0)
			return true;
	return false;
}

static struct kd_workload_input input(const char *base, int32_t desired, const struct live *l)
{
	return (struct kd_workload_input){
	    .revision = "default/hello-00001",
	    .ns = "default",
	    .base_name = base,
	    .desired = desired,
	    .current = l ? l->v : NULL,
	    .n_current = l ? l->n : 0,
	    .owner = {.api_version = "autoscaling.internal.knative.dev/v1alpha1",
	              .kind = "PodAutoscaler",
	              .name = "hello-00001",
	              .uid = "6f1c1e2a-0000-4000-8000-000000000001"},
	    .template_hash = "7d9f8c6b5",
	};
}

static void plan_ok(struct wl *w, const struct kd_workload_input *in, struct kd_workload_plan *out)
{
	struct kd_error *err = NULL;
	memset(out, 0, sizeof(*out));
	int rc = w->ops->plan(w->st, in, out, &err);
	if (rc != 0)
		fail_msg("plan: %d %s", rc, err ? err->msg : "?");
	assert_null(err);
}

/* A DNS-1123 label: [a-z0-9-], starts and ends alphanumeric, 1..63 characters. */
static bool dns1123_label(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

/* name == prefix "-" suffix of `len` characters of the generateName alphabet. */
static void assert_name_shape(const char *name, const char *prefix, size_t len)
{
	size_t pl = strlen(prefix);
	assert_true(dns1123_label(name));
	assert_int_equal(strncmp(name, prefix, pl), 0);
	assert_int_equal(name[pl], '-');
	assert_int_equal(strlen(name + pl + 1), len);
	assert_int_equal(strspn(name + pl + 1, ALPHABET), len);
}

static void scale_0_to_50_yields_50_unique_valid_names(void **state)
{
	(void)state;
	struct wl w = load_ok(NULL);
	struct kd_workload_input in = input("hello-00001-deployment", 50, NULL);
	struct kd_workload_plan plan;
	plan_ok(&w, &in, &plan);
	assert_int_equal(plan.create.n, 50);
	assert_int_equal(plan.victims.n, 0);
	assert_non_null(plan.created);
	for (size_t i = 0; i < plan.create.n; i++) {
		const char *name = plan.create.items[i];
		assert_name_shape(name, "hello-00001-deployment", 5);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(name, plan.create.items[j]);
		const struct kd_instance_spec *s = &plan.created[i];
		assert_string_equal(s->name, name);
		char key[128];
		snprintf(key, sizeof(key), "default/%s", name);
		assert_string_equal(s->key, key);
		assert_string_equal(s->owner_api_version,
		                    "autoscaling.internal.knative.dev/v1alpha1");
		assert_string_equal(s->owner_kind, "PodAutoscaler");
		assert_string_equal(s->owner_name, "hello-00001");
		assert_string_equal(s->owner_uid, "6f1c1e2a-0000-4000-8000-000000000001");
		assert_string_equal(s->template_hash, "7d9f8c6b5");
	}
	kd_workload_plan_clear(&plan);
	assert_null(plan.created);
	assert_int_equal(plan.create.n, 0);
	kd_plugin_unload(w.h);
}

static void replan_with_the_same_live_set_yields_nothing(void **state)
{
	(void)state;
	struct wl w = load_ok(NULL);
	static struct live l;
	memset(&l, 0, sizeof(l));
	struct kd_workload_input in = input("hello-00001-deployment", 50, &l);
	struct kd_workload_plan plan;
	plan_ok(&w, &in, &plan);
	assert_int_equal(plan.create.n, 50);
	for (size_t i = 0; i < plan.create.n; i++)
		live_add(&l, plan.create.items[i], false, NULL, KD_INSTANCE_EPHEMERAL, 1000 + i);
	kd_workload_plan_clear(&plan);

	/* the same input again, now that the instances are live: nothing to do, several times */
	in = input("hello-00001-deployment", 50, &l);
	for (int k = 0; k < 3; k++) {
		plan_ok(&w, &in, &plan);
		assert_int_equal(plan.create.n, 0);
		assert_int_equal(plan.victims.n, 0);
		kd_workload_plan_clear(&plan);
	}
	/* two more: exactly two new names, none of them live */
	in.desired = 52;
	plan_ok(&w, &in, &plan);
	assert_int_equal(plan.create.n, 2);
	assert_int_equal(plan.victims.n, 0);
	assert_false(live_has(&l, plan.create.items[0]));
	assert_false(live_has(&l, plan.create.items[1]));
	assert_string_not_equal(plan.create.items[0], plan.create.items[1]);
	kd_workload_plan_clear(&plan);
	/* a live set listing the same name twice counts it once */
	live_add(&l, l.names[0], false, NULL, KD_INSTANCE_EPHEMERAL, 1000);
	in = input("hello-00001-deployment", 50, &l);
	plan_ok(&w, &in, &plan);
	assert_int_equal(plan.create.n, 0);
	assert_int_equal(plan.victims.n, 0);
	kd_workload_plan_clear(&plan);
	kd_plugin_unload(w.h);
}

static void scale_down_picks_not_ready_first_then_newest(void **state)
{
	(void)state;
	struct wl w = load_ok(NULL);
	static struct live l;
	memset(&l, 0, sizeof(l));
	/* ready ones, of all states and ages */
	live_add(&l, "r-old-persisted", true, "n1", KD_INSTANCE_PERSISTED, 100);
	live_add(&l, "r-mid-persisted", true, "n1", KD_INSTANCE_PERSISTED, 500);
	live_add(&l, "r-new-ephemeral", true, "n2", KD_INSTANCE_EPHEMERAL, 900);
	live_add(&l, "r-newest-persisting", true, "n2", KD_INSTANCE_PERSISTING, 950);
	live_add(&l, "r-tie-persisted", true, "n3", KD_INSTANCE_PERSISTED, 700);
	live_add(&l, "r-tie-ephemeral", true, "n3", KD_INSTANCE_EPHEMERAL, 700);
	/* not ready ones, older than every ready one */
	live_add(&l, "nr-old-scheduled", false, "n1", KD_INSTANCE_PERSISTED, 10);
	live_add(&l, "nr-new-scheduled", false, "n2", KD_INSTANCE_EPHEMERAL, 50);
	live_add(&l, "nr-unscheduled", false, NULL, KD_INSTANCE_EPHEMERAL, 5);

	struct kd_workload_plan plan;
	/* 9 live -> 6: the three not-ready ones, unscheduled first, then newest */
	struct kd_workload_input in = input("h", 6, &l);
	plan_ok(&w, &in, &plan);
	assert_int_equal(plan.create.n, 0);
	assert_int_equal(plan.victims.n, 3);
	assert_string_equal(plan.victims.items[0], "nr-unscheduled");
	assert_string_equal(plan.victims.items[1], "nr-new-scheduled");
	assert_string_equal(plan.victims.items[2], "nr-old-scheduled");
	kd_workload_plan_clear(&plan);

	/* 9 -> 3: then the ready ones, newest first; an age tie goes to the ephemeral one */
	in.desired = 3;
	plan_ok(&w, &in, &plan);
	assert_int_equal(plan.victims.n, 6);
	const char *want[] = {"nr-unscheduled",      "nr-new-scheduled", "nr-old-scheduled",
	                      "r-newest-persisting", "r-new-ephemeral",  "r-tie-ephemeral"};
	for (size_t i = 0; i < KD_ARRAY_SIZE(want); i++)
		assert_string_equal(plan.victims.items[i], want[i]);
	kd_workload_plan_clear(&plan);

	/* 9 -> 0: everything, each once */
	in.desired = 0;
	plan_ok(&w, &in, &plan);
	assert_int_equal(plan.victims.n, 9);
	assert_string_equal(plan.victims.items[6], "r-tie-persisted");
	assert_string_equal(plan.victims.items[7], "r-mid-persisted");
	assert_string_equal(plan.victims.items[8], "r-old-persisted");
	kd_workload_plan_clear(&plan);
	kd_plugin_unload(w.h);
}

static void names_never_collide_with_live_ones(void **state)
{
	(void)state;
	/* Two instances with the same seed produce the same sequence: what A hands out first is
	 * exactly what B would try first. Passing A's names to B as live forces B to skip them. */
	struct wl a = load_ok("{\"name-seed\": 42}");
	struct wl b = load_ok("{\"name-seed\": 42}");
	static struct live l;
	memset(&l, 0, sizeof(l));
	struct kd_workload_input in = input("svc", 20, NULL);
	struct kd_workload_plan pa, pb;
	plan_ok(&a, &in, &pa);
	assert_int_equal(pa.create.n, 20);
	for (size_t i = 0; i < pa.create.n; i++)
		live_add(&l, pa.create.items[i], true, "n1", KD_INSTANCE_PERSISTED, i);

	in = input("svc", 40, &l);
	plan_ok(&b, &in, &pb);
	assert_int_equal(pb.create.n, 20);
	for (size_t i = 0; i < pb.create.n; i++) {
		assert_false(live_has(&l, pb.create.items[i]));
		assert_name_shape(pb.create.items[i], "svc", 5);
	}
	/* B skipped exactly the 20 live names and went on with the sequence: its names are the
	 * ones A hands out next */
	in = input("svc", 20, NULL);
	struct kd_workload_plan pa2;
	plan_ok(&a, &in, &pa2);
	for (size_t i = 0; i < 20; i++)
		assert_string_equal(pa2.create.items[i], pb.create.items[i]);
	kd_workload_plan_clear(&pa);
	kd_workload_plan_clear(&pa2);
	kd_workload_plan_clear(&pb);

	/* different seeds (and the default random one) start at unrelated points */
	struct wl c = load_ok(NULL);
	in = input("svc", 1, NULL);
	plan_ok(&a, &in, &pa);
	plan_ok(&c, &in, &pb);
	assert_string_not_equal(pa.create.items[0], pb.create.items[0]);
	kd_workload_plan_clear(&pa);
	kd_workload_plan_clear(&pb);
	kd_plugin_unload(a.h);
	kd_plugin_unload(b.h);
	kd_plugin_unload(c.h);
}

static void reserved_names_are_skipped_but_not_counted(void **state)
{
	(void)state;
	struct wl a = load_ok("{\"name-seed\": 7}");
	struct wl b = load_ok("{\"name-seed\": 7}");
	struct kd_workload_input in = input("svc", 5, NULL);
	struct kd_workload_plan pa, pb, pa2;
	plan_ok(&a, &in, &pa); /* the five names B would try first */
	const char *reserved[6];
	for (size_t i = 0; i < 5; i++)
		reserved[i] = pa.create.items[i];
	reserved[5] = pa.create.items[0]; /* listed twice: harmless */

	/* terminating instances hold their names: 3 wanted, 3 created, none of the 5 */
	static struct live l;
	memset(&l, 0, sizeof(l));
	in = input("svc", 3, &l);
	in.reserved = reserved;
	in.n_reserved = 6;
	plan_ok(&b, &in, &pb);
	assert_int_equal(pb.create.n, 3);
	assert_int_equal(pb.victims.n, 0);
	/* they are the names after the reserved ones in the sequence */
	in = input("svc", 3, NULL);
	plan_ok(&a, &in, &pa2);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(pb.create.items[i], pa2.create.items[i]);
	kd_workload_plan_clear(&pb);

	/* a reserved name that is also live counts as live (once) */
	live_add(&l, pa.create.items[0], true, "n1", KD_INSTANCE_PERSISTED, 1);
	in = input("svc", 1, &l);
	in.reserved = reserved;
	in.n_reserved = 6;
	plan_ok(&b, &in, &pb);
	assert_int_equal(pb.create.n, 0);
	assert_int_equal(pb.victims.n, 0);
	kd_workload_plan_clear(&pb);

	struct kd_error *err = NULL;
	in.reserved = NULL;
	memset(&pb, 0, sizeof(pb));
	assert_int_equal(b.ops->plan(b.st, &in, &pb, &err), -EINVAL);
	assert_string_equal(err->msg, "workload plan default/hello-00001: reserved names missing");
	kd_error_free(err);
	kd_workload_plan_clear(&pa);
	kd_workload_plan_clear(&pa2);
	kd_plugin_unload(a.h);
	kd_plugin_unload(b.h);
}

static void long_and_dotted_base_names_stay_dns1123_labels(void **state)
{
	(void)state;
	struct wl w = load_ok("{\"name-suffix-length\": 8}");
	char base[100];
	memset(base, 'a', 80);
	memcpy(base + 50, "----------", 10); /* truncation lands inside a run of '-' */
	base[80] = '\0';
	struct kd_workload_input in = input(base, 3, NULL);
	struct kd_workload_plan plan;
	plan_ok(&w, &in, &plan);
	assert_int_equal(plan.create.n, 3);
	for (size_t i = 0; i < plan.create.n; i++) {
		assert_true(dns1123_label(plan.create.items[i]));
		assert_true(strlen(plan.create.items[i]) <= 63);
		assert_name_shape(plan.create.items[i],
		                  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 8);
	}
	kd_workload_plan_clear(&plan);

	in = input("hello.world", 1, NULL);
	plan_ok(&w, &in, &plan);
	assert_name_shape(plan.create.items[0], "hello-world", 8);
	kd_workload_plan_clear(&plan);

	/* no base name: the revision's name */
	in = input(NULL, 1, NULL);
	plan_ok(&w, &in, &plan);
	assert_name_shape(plan.create.items[0], "hello-00001", 8);
	kd_workload_plan_clear(&plan);

	struct kd_error *err = NULL;
	in = input("Hello_World", 1, NULL);
	memset(&plan, 0, sizeof(plan));
	assert_int_equal(w.ops->plan(w.st, &in, &plan, &err), -EINVAL);
	assert_non_null(err);
	assert_string_equal(err->msg, "workload plan default/hello-00001: base name "
	                              "\"Hello_World\" is not a DNS-1123 name");
	assert_int_equal(plan.create.n, 0);
	kd_error_free(err);
	kd_plugin_unload(w.h);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void max_create_per_plan_caps_each_call(void **state)
{
	(void)state;
	struct wl w = load_ok("{\"max-create-per-plan\": 10}");
	static struct live l;
	memset(&l, 0, sizeof(l));
	struct kd_workload_plan plan;
	for (int round = 0; round < 5; round++) {
		struct kd_workload_input in = input("x", 45, &l);
		plan_ok(&w, &in, &plan);
		assert_int_equal(plan.create.n, round < 4 ? 10 : 5);
		for (size_t i = 0; i < plan.create.n; i++) {
			assert_false(live_has(&l, plan.create.items[i]));
			live_add(&l, plan.create.items[i], false, NULL, KD_INSTANCE_EPHEMERAL, 0);
		}
		kd_workload_plan_clear(&plan);
	}
	assert_int_equal(l.n, 45);
	/* the cap does not apply to victims */
	struct kd_workload_input in = input("x", 0, &l);
	plan_ok(&w, &in, &plan);
	assert_int_equal(plan.victims.n, 45);
	kd_workload_plan_clear(&plan);
	kd_plugin_unload(w.h);

	/* without a cap, one plan creates at most 10000 (a bogus desired cannot exhaust memory),
	 * all distinct */
	w = load_ok(NULL);
	in = input("x", INT32_MAX, NULL);
	plan_ok(&w, &in, &plan);
	assert_int_equal(plan.create.n, 10000);
	char **sorted = malloc(plan.create.n * sizeof(char *));
	assert_non_null(sorted);
	memcpy(sorted, plan.create.items, plan.create.n * sizeof(char *));
	qsort(sorted, plan.create.n, sizeof(char *), cmp_str);
	for (size_t i = 1; i < plan.create.n; i++)
		assert_string_not_equal(sorted[i - 1], sorted[i]);
	free(sorted);
	kd_workload_plan_clear(&plan);
	kd_plugin_unload(w.h);
	struct kd_error *err = NULL;
	assert_int_equal(wl_load(&w, "{\"max-create-per-plan\": 10001}", &err), -ERANGE);
	kd_error_free(err);
}

static void bad_input_is_refused_with_a_clear_error(void **state)
{
	(void)state;
	struct wl w = load_ok(NULL);
	struct kd_error *err = NULL;
	struct kd_workload_plan plan = {0};

	struct kd_workload_input in = input("x", 3, NULL);
	in.owner.uid = NULL;
	assert_int_equal(w.ops->plan(w.st, &in, &plan, &err), -EINVAL);
	assert_string_equal(err->msg, "workload plan default/hello-00001: owner kind, name and uid "
	                              "required to create instances");
	kd_error_free(err);
	err = NULL;
	assert_null(plan.create.items);
	assert_null(plan.created);

	/* no owner needed when nothing is created */
	in.desired = 0;
	assert_int_equal(w.ops->plan(w.st, &in, &plan, &err), 0);
	assert_int_equal(plan.create.n, 0);

	in = input("x", -1, NULL);
	assert_int_equal(w.ops->plan(w.st, &in, &plan, &err), -EINVAL);
	assert_string_equal(err->msg, "workload plan default/hello-00001: desired scale -1 < 0");
	kd_error_free(err);
	err = NULL;

	static struct live l;
	memset(&l, 0, sizeof(l));
	live_add(&l, "a", true, "n", KD_INSTANCE_PERSISTED, 0);
	l.v[0].name = NULL;
	in = input("x", 1, &l);
	assert_int_equal(w.ops->plan(w.st, &in, &plan, &err), -EINVAL);
	assert_string_equal(err->msg,
	                    "workload plan default/hello-00001: live instance 0 has no name");
	kd_error_free(err);
	kd_plugin_unload(w.h);
}

static void bad_config_is_refused_and_docs_come_from_the_table(void **state)
{
	(void)state;
	struct wl w;
	struct kd_error *err = NULL;
	assert_int_equal(wl_load(&w, "{\"name-suffix-length\": 2}", &err), -ERANGE);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "name-suffix-length"));
	kd_error_free(err);
	err = NULL;
	assert_int_equal(wl_load(&w, "{\"suffix\": 5}", &err), -EINVAL);
	assert_non_null(strstr(err->msg, "unknown option \"suffix\""));
	kd_error_free(err);

	w = load_ok(NULL);
	const struct kd_plugin *d = kd_plugin_desc(w.h);
	assert_string_equal(d->name, "workload");
	assert_int_equal(d->kind, KD_PLUGIN_WORKLOAD);
	kd_autofree char *md = kd_config_markdown(d->options, d->name);
	assert_non_null(strstr(md, "| `name-suffix-length` | unsigned integer | `5` |"));
	assert_non_null(strstr(md, "| `max-create-per-plan` | unsigned integer | `0` |"));
	kd_plugin_unload(w.h);
}

static int setup_all(void **state)
{
	(void)state;
	setenv("KD_PLUGIN_DIR", KD_BUILD_DIR "/plugins", 1);
	loop = kd_loop_new();
	if (!loop)
		return -1;
	kd_host_init(&host, loop, "test-workload");
	return 0;
}

static int teardown_all(void **state)
{
	(void)state;
	kd_loop_free(loop);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(scale_0_to_50_yields_50_unique_valid_names),
	    cmocka_unit_test(replan_with_the_same_live_set_yields_nothing),
	    cmocka_unit_test(scale_down_picks_not_ready_first_then_newest),
	    cmocka_unit_test(names_never_collide_with_live_ones),
	    cmocka_unit_test(reserved_names_are_skipped_but_not_counted),
	    cmocka_unit_test(long_and_dotted_base_names_stay_dns1123_labels),
	    cmocka_unit_test(max_create_per_plan_caps_each_call),
	    cmocka_unit_test(bad_input_is_refused_with_a_clear_error),
	    cmocka_unit_test(bad_config_is_refused_and_docs_come_from_the_table),
	};
	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
