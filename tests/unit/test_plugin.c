/* Unit tests for the plugin loader, through real .so fixtures (tests/fixtures/plugins): every
 * refusal names the file and the reason, and a refused or failed plugin is fully undone (no init /
 * no fini as appropriate, and dlclose really unloaded it: its destructor ran and RTLD_NOLOAD no
 * longer finds it). The fixtures log "<name> load|init|fini|unload" to $KD_TEST_PLUGIN_TRACE. */
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../fixtures/plugins/fx_config.h"
#include "kd/loop.h"
#include "kd/plugin.h"

#define FX_DIR KD_BUILD_DIR "/tests/fixtures"

static char trace_path[] = "/tmp/kd-test-plugin-trace-XXXXXX";
static struct kd_loop *loop;
static struct kd_host host;

static int setup_all(void **state)
{
	(void)state;
	int fd = mkstemp(trace_path);
	if (fd < 0)
		return -1;
	close(fd);
	setenv("KD_TEST_PLUGIN_TRACE", trace_path, 1);
	loop = kd_loop_new();
	if (!loop)
		return -1;
	kd_host_init(&host, loop, "test-plugin");
	return 0;
}

static int teardown_all(void **state)
{
	(void)state;
	unlink(trace_path);
	kd_loop_free(loop);
	return 0;
}

/* Empties the trace before each test. */
static int reset_trace(void **state)
{
	(void)state;
	return truncate(trace_path, 0);
}

/* Returns the trace so far (static buffer). */
static const char *trace(void)
{
	static char buf[4096];
	FILE *f = fopen(trace_path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void assert_not_loaded(const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	if (h)
		dlclose(h);
	assert_null(h);
}

/* Loads a fixture expected to be refused; returns the owned error. */
static struct kd_error *load_refused(const char *path, enum kd_plugin_kind kind, const char *cfg,
                                     int expect_rc)
{
	struct kd_plugin_handle *h = NULL;
	struct kd_error *err = NULL;
	int rc = kd_plugin_load(path, kind, cfg, &host, &h, &err);
	assert_int_equal(rc, expect_rc);
	assert_null(h);
	assert_non_null(err);
	assert_not_loaded(path);
	return err;
}

static void good_plugin_loads_inits_and_unloads(void **state)
{
	(void)state;
	const char *path = FX_DIR "/kd-fx-good.so";
	struct kd_plugin_handle *h = NULL;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_plugin_load(path, KD_PLUGIN_RUNTIME, NULL, &host, &h, &err), 0);
	assert_null(err);
	assert_non_null(h);
	assert_string_equal(kd_plugin_name(h), "fx-good");
	assert_string_equal(kd_plugin_path(h), path);
	assert_string_equal(kd_plugin_desc(h)->description, "good fixture");
	assert_non_null(kd_plugin_state(h));
	assert_null(kd_plugin_config(h)); /* no options table */
	const struct kd_runtime_ops *ops = kd_plugin_ops(h);
	assert_int_equal(ops->struct_size, sizeof(struct kd_runtime_ops));
	assert_int_equal(ops->start(kd_plugin_state(h), NULL, NULL, NULL, NULL), 0);
	assert_string_equal(trace(), "fx-good load\nfx-good init\nfx-good start\n");
	/* still loaded while the handle lives */
	void *dl = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	assert_non_null(dl);
	/* exactly one exported symbol: fixture internals stay hidden */
	assert_non_null(dlsym(dl, "kd_plugin_entry"));
	assert_null(dlsym(dl, "fx_init"));
	dlclose(dl);
	kd_plugin_unload(h);
	assert_string_equal(
	    trace(), "fx-good load\nfx-good init\nfx-good start\nfx-good fini\nfx-good unload\n");
	assert_not_loaded(path);
}

static void same_plugin_loads_twice_with_separate_state(void **state)
{
	(void)state;
	const char *path = FX_DIR "/kd-fx-good.so";
	struct kd_plugin_handle *a = NULL, *b = NULL;
	assert_int_equal(kd_plugin_load(path, KD_PLUGIN_RUNTIME, "{}", &host, &a, NULL), 0);
	assert_int_equal(kd_plugin_load(path, KD_PLUGIN_RUNTIME, "", &host, &b, NULL), 0);
	assert_ptr_not_equal(kd_plugin_state(a), kd_plugin_state(b));
	kd_plugin_unload(a);
	/* b keeps the object mapped */
	void *dl = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	assert_non_null(dl);
	dlclose(dl);
	kd_plugin_unload(b);
	assert_string_equal(trace(), "fx-good load\nfx-good init\nfx-good init\nfx-good fini\n"
	                             "fx-good fini\nfx-good unload\n");
	assert_not_loaded(path);
}

static void wrong_abi_major_is_refused(void **state)
{
	(void)state;
	const char *path = FX_DIR "/fx_abi2.so";
	kd_autoerr struct kd_error *err = load_refused(path, KD_PLUGIN_RUNTIME, NULL, -ENOEXEC);
	assert_string_equal(err->msg, "plugin " FX_DIR "/fx_abi2.so: ABI major 2, host supports 1");
	assert_string_equal(trace(), "fx-abi2 load\nfx-abi2 unload\n");
}

static void too_small_descriptor_is_refused(void **state)
{
	(void)state;
	const char *path = FX_DIR "/fx_small.so";
	kd_autoerr struct kd_error *err = load_refused(path, KD_PLUGIN_RUNTIME, NULL, -ENOEXEC);
	char want[512];
	snprintf(want, sizeof(want),
	         "plugin %s: descriptor struct_size 16 is smaller than the minimum %zu", path,
	         (size_t)KD_PLUGIN_MIN_SIZE);
	assert_string_equal(err->msg, want);
	assert_string_equal(trace(), "fx-small load\nfx-small unload\n");
}

static void missing_entry_symbol_is_refused(void **state)
{
	(void)state;
	const char *path = FX_DIR "/fx_nosym.so";
	kd_autoerr struct kd_error *err = load_refused(path, KD_PLUGIN_RUNTIME, NULL, -ENOEXEC);
	assert_non_null(strstr(
	    err->msg, "plugin " FX_DIR "/fx_nosym.so: no kd_plugin_entry symbol, not a kubedirect "
	              "plugin ("));
	/* dlerror's text is carried along */
	assert_non_null(strstr(err->msg, "undefined symbol: kd_plugin_entry"));
	assert_string_equal(trace(), "fx-nosym load\nfx-nosym unload\n");
}

static void wrong_build_signature_is_refused_naming_both(void **state)
{
	(void)state;
	const char *path = FX_DIR "/fx_badsig.so";
	kd_autoerr struct kd_error *err = load_refused(path, KD_PLUGIN_RUNTIME, NULL, -ENOEXEC);
	char want[512];
	snprintf(want, sizeof(want),
	         "plugin %s: build signature \"kd1-g0c-p4l4-bogus\" does not match the host's "
	         "\"%s\" (rebuild the plugin against this libkd)",
	         path, kd_plugin_host_build_sig());
	assert_string_equal(err->msg, want);
	assert_string_equal(trace(), "fx-badsig load\nfx-badsig unload\n");
}

static void host_signature_matches_the_header_macro(void **state)
{
	(void)state;
	/* this test is compiled by the same compiler as libkd: the signatures must agree, and carry
	 * the ABI major and pointer size */
	assert_string_equal(kd_plugin_host_build_sig(), KD_PLUGIN_BUILD_SIG);
	assert_memory_equal(kd_plugin_host_build_sig(), "kd1-", 4);
	assert_non_null(strstr(kd_plugin_host_build_sig(), sizeof(void *) == 8 ? "-p8" : "-p4"));
}

static void wrong_kind_is_refused(void **state)
{
	(void)state;
	const char *path = FX_DIR "/fx_kind.so";
	kd_autoerr struct kd_error *err = load_refused(path, KD_PLUGIN_RUNTIME, NULL, -ENOEXEC);
	assert_string_equal(err->msg,
	                    "plugin " FX_DIR "/fx_kind.so: kind is decider (1), expected runtime");
	assert_string_equal(trace(), "fx-kind load\nfx-kind unload\n");
}

static void empty_name_is_refused(void **state)
{
	(void)state;
	const char *path = FX_DIR "/fx_noname.so";
	kd_autoerr struct kd_error *err = load_refused(path, KD_PLUGIN_RUNTIME, NULL, -ENOEXEC);
	assert_string_equal(err->msg,
	                    "plugin " FX_DIR "/fx_noname.so: descriptor has an empty name");
}

static void failing_init_is_fully_undone(void **state)
{
	(void)state;
	const char *path = FX_DIR "/fx_initfail.so";
	kd_autoerr struct kd_error *err = load_refused(path, KD_PLUGIN_RUNTIME, NULL, -EIO);
	assert_string_equal(err->msg,
	                    "plugin " FX_DIR
	                    "/fx_initfail.so: init: fixture refuses to start: disk on fire");
	assert_int_equal(err->errnum, EIO);
	/* init ran, fini did not, and the object was unloaded */
	assert_string_equal(trace(), "fx-initfail load\nfx-initfail init\nfx-initfail unload\n");
}

static void unresolved_symbol_is_refused_by_rtld_now(void **state)
{
	(void)state;
	const char *path = FX_DIR "/fx_unresolved.so";
	kd_autoerr struct kd_error *err = load_refused(path, KD_PLUGIN_RUNTIME, NULL, -ENOEXEC);
	assert_non_null(strstr(err->msg, "plugin " FX_DIR "/fx_unresolved.so: cannot load: "));
	assert_non_null(
	    strstr(err->msg, "undefined symbol: kd_fixture_symbol_that_does_not_exist"));
	/* the constructor never ran: RTLD_NOW failed before relocation finished */
	assert_string_equal(trace(), "");
}

static void config_is_parsed_into_the_plugin_struct(void **state)
{
	(void)state;
	const char *path = FX_DIR "/fx_config.so";
	struct kd_plugin_handle *h = NULL;
	kd_autoerr struct kd_error *err = NULL;
	int rc = kd_plugin_load(path, KD_PLUGIN_RUNTIME,
	                        "{\"label\":\"x\",\"count\":7,\"delay\":\"1m30s\",\"verbose\":true,"
	                        "\"mode\":\"safe\",\"tags\":[\"a\",\"b\"]}",
	                        &host, &h, &err);
	assert_int_equal(rc, 0);
	const struct fx_config *c = kd_plugin_config(h);
	assert_non_null(c);
	assert_string_equal(c->label, "x");
	assert_int_equal(c->count, 7);
	assert_int_equal(c->delay_ms, 90000);
	assert_true(c->verbose);
	assert_int_equal(c->mode, FX_MODE_SAFE);
	assert_int_equal(c->tags.n, 2);
	assert_string_equal(c->tags.items[1], "b");
	kd_plugin_unload(h);

	/* NULL config: defaults */
	assert_int_equal(kd_plugin_load(path, KD_PLUGIN_RUNTIME, NULL, &host, &h, &err), 0);
	c = kd_plugin_config(h);
	assert_string_equal(c->label, "none");
	assert_int_equal(c->count, 3);
	assert_int_equal(c->delay_ms, 500);
	assert_false(c->verbose);
	assert_int_equal(c->mode, FX_MODE_FAST);
	assert_int_equal(c->tags.n, 0);
	kd_plugin_unload(h);
	assert_not_loaded(path);
}

static void unknown_config_key_is_refused_before_init(void **state)
{
	(void)state;
	const char *path = FX_DIR "/fx_config.so";
	kd_autoerr struct kd_error *err =
	    load_refused(path, KD_PLUGIN_RUNTIME, "{\"count\":2,\"foo\":1}", -EINVAL);
	assert_string_equal(err->msg, "plugin " FX_DIR "/fx_config.so: config: unknown option "
	                              "\"foo\" for plugin fx-config (known: label, count, delay, "
	                              "verbose, mode, tags)");
	assert_string_equal(trace(), "fx-config load\nfx-config unload\n");
}

static void bad_config_values_are_refused_naming_option_and_value(void **state)
{
	(void)state;
	const char *path = FX_DIR "/fx_config.so";
	struct kd_error *err =
	    load_refused(path, KD_PLUGIN_RUNTIME, "{\"delay\":\"abc\"}", -EINVAL);
	assert_string_equal(err->msg,
	                    "plugin " FX_DIR "/fx_config.so: config: option \"delay\" for "
	                    "plugin fx-config: \"abc\" is not a duration (e.g. 250ms, 2s)");
	kd_error_free(err);
	err = load_refused(path, KD_PLUGIN_RUNTIME, "{\"count\":500}", -ERANGE);
	assert_string_equal(err->msg,
	                    "plugin " FX_DIR "/fx_config.so: config: option \"count\" for "
	                    "plugin fx-config: 500 is above the maximum 100");
	kd_error_free(err);
	err = load_refused(path, KD_PLUGIN_RUNTIME, "{\"mode\":\"turbo\"}", -EINVAL);
	assert_non_null(strstr(err->msg, "\"turbo\" is not one of: fast, safe"));
	kd_error_free(err);
	err = load_refused(path, KD_PLUGIN_RUNTIME, "{\"count\":", -EINVAL);
	assert_non_null(strstr(err->msg, "fx_config.so: config: config for plugin fx-config: "
	                                 "invalid JSON at offset"));
	kd_error_free(err);
	err = load_refused(path, KD_PLUGIN_RUNTIME, "[1]", -EINVAL);
	assert_non_null(strstr(err->msg, "expected a JSON object, got array"));
	kd_error_free(err);
	/* no instance was ever initialised */
	assert_null(strstr(trace(), "init"));
}

static void plugin_without_options_refuses_any_key(void **state)
{
	(void)state;
	kd_autoerr struct kd_error *err =
	    load_refused(FX_DIR "/kd-fx-good.so", KD_PLUGIN_RUNTIME, "{\"x\":1}", -EINVAL);
	assert_non_null(strstr(err->msg, "unknown option \"x\" for plugin fx-good (known: none)"));
}

static void bare_name_is_found_through_kd_plugin_dir(void **state)
{
	(void)state;
	setenv("KD_PLUGIN_DIR", "/nonexistent-kd-dir::" FX_DIR, 1);
	struct kd_plugin_handle *h = NULL;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_plugin_load("fx-good", KD_PLUGIN_RUNTIME, NULL, &host, &h, &err), 0);
	assert_string_equal(kd_plugin_path(h), FX_DIR "/kd-fx-good.so");
	kd_plugin_unload(h);

	char *path = NULL;
	assert_int_equal(kd_plugin_find("no-such", &path, &err), -ENOENT);
	assert_null(path);
	assert_string_equal(err->msg, "plugin \"no-such\" not found (tried "
	                              "/nonexistent-kd-dir/kd-no-such.so, " FX_DIR
	                              "/kd-no-such.so, " KD_PLUGIN_DEFAULT_DIR
	                              "/kd-no-such.so; set KD_PLUGIN_DIR)");
	unsetenv("KD_PLUGIN_DIR");
}

static void bare_name_must_match_the_descriptor_name(void **state)
{
	(void)state;
	char dir[] = "/tmp/kd-test-plugin-dir-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char link[256];
	snprintf(link, sizeof(link), "%s/kd-other.so", dir);
	assert_int_equal(symlink(FX_DIR "/kd-fx-good.so", link), 0);
	setenv("KD_PLUGIN_DIR", dir, 1);
	struct kd_plugin_handle *h = NULL;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(kd_plugin_load("other", KD_PLUGIN_RUNTIME, NULL, &host, &h, &err),
	                 -ENOEXEC);
	assert_null(h);
	char want[512];
	snprintf(want, sizeof(want),
	         "plugin %s: descriptor is named \"fx-good\", expected \"other\"", link);
	assert_string_equal(err->msg, want);
	unsetenv("KD_PLUGIN_DIR");
	unlink(link);
	rmdir(dir);
}

static void missing_file_error_names_the_file(void **state)
{
	(void)state;
	struct kd_plugin_handle *h = NULL;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(
	    kd_plugin_load("/nonexistent/kd-x.so", KD_PLUGIN_RUNTIME, NULL, &host, &h, &err),
	    -ENOEXEC);
	assert_non_null(strstr(err->msg, "plugin /nonexistent/kd-x.so: cannot load: "));
	assert_non_null(strstr(err->msg, "No such file or directory"));
}

static void invalid_host_table_is_refused(void **state)
{
	(void)state;
	struct kd_host bad = host;
	bad.abi_major = 7;
	struct kd_plugin_handle *h = NULL;
	kd_autoerr struct kd_error *err = NULL;
	assert_int_equal(
	    kd_plugin_load(FX_DIR "/kd-fx-good.so", KD_PLUGIN_RUNTIME, NULL, &bad, &h, &err),
	    -EINVAL);
	assert_string_equal(err->msg, "plugin " FX_DIR "/kd-fx-good.so: invalid host table");
	/* a host table older than version 1 (no post) is refused too */
	bad = host;
	bad.struct_size = (uint32_t)offsetof(struct kd_host, post);
	kd_autoerr struct kd_error *err2 = NULL;
	assert_int_equal(
	    kd_plugin_load(FX_DIR "/kd-fx-good.so", KD_PLUGIN_RUNTIME, NULL, &bad, &h, &err2),
	    -EINVAL);
	assert_null(h);
	assert_string_equal(trace(), "");
}

struct host_v0 { /* an imaginary smaller host table, to exercise KD_HAS_MEMBER */
	uint32_t abi_major;
	uint32_t struct_size;
	const char *component;
};

static void has_member_respects_struct_size(void **state)
{
	(void)state;
	assert_true(KD_HAS_MEMBER(&host, struct kd_host, host_arg));
	assert_true(KD_HAS_MEMBER(&host, struct kd_host, log));
	struct kd_host small = host;
	small.struct_size = (uint32_t)sizeof(struct host_v0);
	assert_true(KD_HAS_MEMBER(&small, struct kd_host, component));
	assert_false(KD_HAS_MEMBER(&small, struct kd_host, log));
	assert_false(KD_HAS_MEMBER(&small, struct kd_host, host_arg));
	/* the host table is filled with libkd's services */
	assert_ptr_equal(host.loop, loop);
	assert_int_equal(host.struct_size, sizeof(struct kd_host));
	assert_non_null(host.log);
	assert_non_null(host.error_set);
	assert_non_null(host.timer_new);
	assert_non_null(host.timer_start);
	assert_non_null(host.timer_stop);
	assert_non_null(host.timer_free);
	assert_non_null(host.now_ms);
	assert_non_null(host.post);
	assert_string_equal(kd_plugin_kind_name(KD_PLUGIN_RUNTIME), "runtime");
	assert_string_equal(kd_plugin_kind_name((enum kd_plugin_kind)99), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(good_plugin_loads_inits_and_unloads, reset_trace),
	    cmocka_unit_test_setup(same_plugin_loads_twice_with_separate_state, reset_trace),
	    cmocka_unit_test_setup(wrong_abi_major_is_refused, reset_trace),
	    cmocka_unit_test_setup(too_small_descriptor_is_refused, reset_trace),
	    cmocka_unit_test_setup(missing_entry_symbol_is_refused, reset_trace),
	    cmocka_unit_test_setup(wrong_build_signature_is_refused_naming_both, reset_trace),
	    cmocka_unit_test(host_signature_matches_the_header_macro),
	    cmocka_unit_test_setup(wrong_kind_is_refused, reset_trace),
	    cmocka_unit_test_setup(empty_name_is_refused, reset_trace),
	    cmocka_unit_test_setup(failing_init_is_fully_undone, reset_trace),
	    cmocka_unit_test_setup(unresolved_symbol_is_refused_by_rtld_now, reset_trace),
	    cmocka_unit_test_setup(config_is_parsed_into_the_plugin_struct, reset_trace),
	    cmocka_unit_test_setup(unknown_config_key_is_refused_before_init, reset_trace),
	    cmocka_unit_test_setup(bad_config_values_are_refused_naming_option_and_value,
	                           reset_trace),
	    cmocka_unit_test_setup(plugin_without_options_refuses_any_key, reset_trace),
	    cmocka_unit_test_setup(bare_name_is_found_through_kd_plugin_dir, reset_trace),
	    cmocka_unit_test_setup(bare_name_must_match_the_descriptor_name, reset_trace),
	    cmocka_unit_test_setup(missing_file_error_names_the_file, reset_trace),
	    cmocka_unit_test_setup(invalid_host_table_is_refused, reset_trace),
	    cmocka_unit_test(has_member_respects_struct_size),
	};
	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
