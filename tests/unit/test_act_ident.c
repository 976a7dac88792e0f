/* Unit tests for activator-hook/ident.c: Knative's headers win when both are set, else the Host's
 * first two labels ("-private" stripped once, port and deeper labels ignored); every way of
 * naming no revision is -ENOENT with the outputs untouched. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "../../activator-hook/ident.h"

static void expect_rev(const char *hn, const char *hr, const char *host, const char *want_ns,
                       const char *want_name)
{
	char *ns = NULL, *name = NULL;
	assert_int_equal(kd_act_identify(hn, hr, host, &ns, &name), 0);
	assert_string_equal(ns, want_ns);
	assert_string_equal(name, want_name);
	free(ns);
	free(name);
}

static void expect_none(const char *hn, const char *hr, const char *host)
{
	char *ns = (char *)"unset", *name = (char *)"unset";
	assert_int_equal(kd_act_identify(hn, hr, host, &ns, &name), -ENOENT);
	assert_string_equal(ns, "unset");
	assert_string_equal(name, "unset");
}

static void headers_win(void **state)
{
	(void)state;
	expect_rev("team-a", "hello-00001", "other-00002.team-b.example.com", "team-a",
	           "hello-00001");
	expect_rev("team-a", "hello-00001", NULL, "team-a", "hello-00001");
	/* the header value is taken as it is: no label parsing */
	expect_rev("a.b", "x-private", NULL, "a.b", "x-private");
}

static void host_labels_when_a_header_is_missing_or_empty(void **state)
{
	(void)state;
	expect_rev(NULL, NULL, "hello-00001.team-a.svc.cluster.local", "team-a", "hello-00001");
	expect_rev("team-a", NULL, "hello-00001.team-b", "team-b", "hello-00001");
	expect_rev(NULL, "hello-00001", "hello-00002.team-b", "team-b", "hello-00002");
	expect_rev("", "", "hello-00001.team-a", "team-a", "hello-00001");
	expect_rev(NULL, NULL, "hello-00001.team-a:8012", "team-a", "hello-00001");
	expect_rev(NULL, NULL, "hello-00001.team-a.:80", "team-a", "hello-00001");
}

static void private_suffix_is_stripped_once(void **state)
{
	(void)state;
	expect_rev(NULL, NULL, "hello-00001-private.team-a.svc", "team-a", "hello-00001");
	expect_rev(NULL, NULL, "a-private-private.ns", "ns", "a-private");
	expect_rev(NULL, NULL, "x-private.ns", "ns", "x");
	/* a label that is only the suffix names the revision "-private" */
	expect_rev(NULL, NULL, "-private.ns", "ns", "-private");
	/* only a suffix of the first label counts */
	expect_rev(NULL, NULL, "hello.ns-private", "ns-private", "hello");
}

static void no_revision_named(void **state)
{
	(void)state;
	expect_none(NULL, NULL, NULL);
	expect_none(NULL, NULL, "");
	expect_none(NULL, NULL, "localhost");
	expect_none(NULL, NULL, "localhost:8012");
	expect_none(NULL, NULL, ".team-a");  /* no revision label */
	expect_none(NULL, NULL, "hello.");   /* no namespace label */
	expect_none(NULL, NULL, "hello..x"); /* empty namespace label */
	expect_none(NULL, NULL, "hello.:80");
	expect_none("team-a", "", "localhost");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(headers_win),
	    cmocka_unit_test(host_labels_when_a_header_is_missing_or_empty),
	    cmocka_unit_test(private_suffix_is_stripped_once),
	    cmocka_unit_test(no_revision_named),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
