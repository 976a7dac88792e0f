/* Unit tests for lib/kd_kubeconfig: kubeconfig files (contexts, inline data, relative paths,
 * JSON, numeric-looking names, exact error texts), in-cluster config, the automatic choice, and the
 * bearer token cache (re-read on change, last good token kept while the file is missing). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kd/kubeconfig.h"
#include "kd_test_httpd.h"

static const char *kubeconfig_yaml = "apiVersion: v1\n"
                                     "kind: Config\n"
                                     "current-context: dev\n"
                                     "clusters:\n"
                                     "- name: c1\n"
                                     "  cluster:\n"
                                     "    server: https://127.0.0.1:6443/\n"
                                     "    certificate-authority: certs/ca.crt\n"
                                     "- name: c2\n"
                                     "  cluster:\n"
                                     "    server: https://10.0.0.1:443\n"
                                     "    certificate-authority-data: SGVsbG8gQ0E=\n"
                                     "    insecure-skip-tls-verify: true\n"
                                     "contexts:\n"
                                     "- name: dev\n"
                                     "  context:\n"
                                     "    cluster: c1\n"
                                     "    user: u1\n"
                                     "    namespace: team-a\n"
                                     "- name: prod\n"
                                     "  context:\n"
                                     "    cluster: c2\n"
                                     "    user: u2\n"
                                     "- name: tf\n"
                                     "  context: {cluster: c1, user: u3}\n"
                                     "users:\n"
                                     "- name: u1\n"
                                     "  user:\n"
                                     "    token: abc.def\n"
                                     "- name: u2\n"
                                     "  user:\n"
                                     "    client-certificate-data: Q0VSVA==\n"
                                     "    client-key-data: S0VZ\n"
                                     "- name: u3\n"
                                     "  user:\n"
                                     "    tokenFile: tok\n";

static char *write_kubeconfig(const char *dir, const char *content)
{
	char *certs = kd_xasprintf("%s/certs", dir);
	assert_int_equal(mkdir(certs, 0700), 0);
	char *ca = kd_xasprintf("%s/ca.crt", certs);
	kd_test_httpd_write_file(ca, "PEM");
	char *tok = kd_xasprintf("%s/tok", dir);
	kd_test_httpd_write_file(tok, "file-token\n");
	char *p = kd_xasprintf("%s/config", dir);
	kd_test_httpd_write_file(p, content);
	free(certs);
	free(ca);
	free(tok);
	return p;
}

static void kubeconfig_current_context_token_and_relative_ca(void **state)
{
	(void)state;
	kd_autofree char *dir = kd_test_httpd_mkdtemp();
	kd_autofree char *p = write_kubeconfig(dir, kubeconfig_yaml);
	struct kd_k8s_config *cfg = NULL;
	struct kd_error *err = NULL;
	assert_int_equal(kd_k8s_config_from_kubeconfig(p, NULL, &cfg, &err), 0);
	assert_null(err);
	assert_string_equal(cfg->server, "https://127.0.0.1:6443");
	kd_autofree char *ca = kd_xasprintf("%s/certs/ca.crt", dir);
	assert_string_equal(cfg->ca_file, ca);
	assert_string_equal(cfg->token, "abc.def");
	assert_string_equal(cfg->namespace, "team-a");
	assert_false(cfg->insecure_skip_tls_verify);
	assert_non_null(strstr(cfg->source, p));
	kd_k8s_config_free(cfg);
	kd_test_httpd_rmrf(dir);
}

static void kubeconfig_inline_data_and_context_override(void **state)
{
	(void)state;
	kd_autofree char *dir = kd_test_httpd_mkdtemp();
	kd_autofree char *p = write_kubeconfig(dir, kubeconfig_yaml);
	struct kd_k8s_config *cfg = NULL;
	assert_int_equal(kd_k8s_config_from_kubeconfig(p, "prod", &cfg, NULL), 0);
	assert_string_equal(cfg->server, "https://10.0.0.1:443");
	assert_int_equal(cfg->ca_len, 8);
	assert_memory_equal(cfg->ca_data, "Hello CA", 8);
	assert_true(cfg->insecure_skip_tls_verify);
	assert_int_equal(cfg->cert_len, 4);
	assert_memory_equal(cfg->cert_data, "CERT", 4);
	assert_int_equal(cfg->key_len, 3);
	assert_memory_equal(cfg->key_data, "KEY", 3);
	assert_null(cfg->token);
	assert_string_equal(cfg->namespace, "default");
	kd_k8s_config_free(cfg);
	/* tokenFile resolves against the kubeconfig's directory. */
	assert_int_equal(kd_k8s_config_from_kubeconfig(p, "tf", &cfg, NULL), 0);
	kd_autofree char *tok = kd_xasprintf("%s/tok", dir);
	assert_string_equal(cfg->token_file, tok);
	kd_k8s_config_free(cfg);
	kd_test_httpd_rmrf(dir);
}

static void kubeconfig_numeric_looking_names_stay_strings(void **state)
{
	(void)state;
	kd_autofree char *dir = kd_test_httpd_mkdtemp();
	kd_autofree char *p = kd_xasprintf("%s/kc", dir);
	kd_test_httpd_write_file(
	    p, "current-context: 1\ncontexts:\n- name: 1\n  context: {cluster: 2, "
	       "user: 3}\nclusters:\n- name: 2\n  cluster: {server: "
	       "'https://h:6443', insecure-skip-tls-verify: True}\nusers:\n"
	       "- name: 3\n  user: {token: 12345}\n");
	struct kd_k8s_config *cfg = NULL;
	struct kd_error *err = NULL;
	if (kd_k8s_config_from_kubeconfig(p, NULL, &cfg, &err))
		fail_msg("%s", kd_error_msg(err));
	assert_string_equal(cfg->token, "12345");
	assert_true(cfg->insecure_skip_tls_verify);
	kd_k8s_config_free(cfg);
	kd_test_httpd_rmrf(dir);
}

static void kubeconfig_accepts_json(void **state)
{
	(void)state;
	kd_autofree char *dir = kd_test_httpd_mkdtemp();
	kd_autofree char *p = kd_xasprintf("%s/kc.json", dir);
	kd_test_httpd_write_file(
	    p, "{\"current-context\":\"x\",\"clusters\":[{\"name\":\"c\",\"cluster\":{\"server\":"
	       "\"http://127.0.0.1:1\"}}],\"contexts\":[{\"name\":\"x\",\"context\":{\"cluster\":"
	       "\"c\"}}]}");
	struct kd_k8s_config *cfg = NULL;
	assert_int_equal(kd_k8s_config_from_kubeconfig(p, NULL, &cfg, NULL), 0);
	assert_string_equal(cfg->server, "http://127.0.0.1:1");
	assert_null(cfg->token);
	kd_k8s_config_free(cfg);
	kd_test_httpd_rmrf(dir);
}

static void expect_config_error(const char *path, const char *context, int errnum,
                                const char *needle1, const char *needle2)
{
	struct kd_k8s_config *cfg = NULL;
	struct kd_error *err = NULL;
	assert_int_equal(kd_k8s_config_from_kubeconfig(path, context, &cfg, &err), -errnum);
	assert_null(cfg);
	assert_non_null(err);
	if (!strstr(err->msg, needle1) || (needle2 && !strstr(err->msg, needle2)))
		fail_msg("unexpected message: %s", err->msg);
	kd_error_free(err);
}

static void kubeconfig_errors_name_file_and_field(void **state)
{
	(void)state;
	kd_autofree char *dir = kd_test_httpd_mkdtemp();
	kd_autofree char *p = write_kubeconfig(dir, kubeconfig_yaml);
	expect_config_error(p, "nope", ENOENT, p, "context \"nope\": no such context");
	kd_autofree char *missing = kd_xasprintf("%s/does-not-exist", dir);
	expect_config_error(missing, NULL, ENOENT, missing, "No such file");
	kd_autofree char *bad = kd_xasprintf("%s/bad", dir);
	kd_test_httpd_write_file(bad, "clusters:\n  - name: [unclosed\n  x: : :\n");
	expect_config_error(bad, NULL, EINVAL, bad, "invalid YAML at line");
	kd_autofree char *noserver = kd_xasprintf("%s/noserver", dir);
	kd_test_httpd_write_file(noserver, "current-context: a\ncontexts:\n- name: a\n  context:\n"
	                                   "    cluster: c\nclusters:\n- name: c\n  cluster: {}\n");
	expect_config_error(noserver, NULL, EINVAL, noserver, "cluster \"c\": missing server");
	kd_autofree char *badca = kd_xasprintf("%s/badca", dir);
	kd_test_httpd_write_file(badca,
	                         "current-context: a\ncontexts:\n- name: a\n  context:\n"
	                         "    cluster: c\nclusters:\n- name: c\n  cluster:\n"
	                         "    server: https://h\n    certificate-authority: nope.crt\n");
	expect_config_error(badca, NULL, ENOENT, "certificate-authority", "nope.crt");
	kd_autofree char *b64 = kd_xasprintf("%s/b64", dir);
	kd_test_httpd_write_file(b64,
	                         "current-context: a\ncontexts:\n- name: a\n  context:\n"
	                         "    cluster: c\nclusters:\n- name: c\n  cluster:\n"
	                         "    server: https://h\n    certificate-authority-data: '#!'\n");
	expect_config_error(b64, NULL, EINVAL, "certificate-authority-data", "invalid base64");
	kd_autofree char *exec = kd_xasprintf("%s/exec", dir);
	kd_test_httpd_write_file(exec, "current-context: a\ncontexts:\n- name: a\n  context:\n"
	                               "    cluster: c\n    user: e\nclusters:\n- name: c\n"
	                               "  cluster:\n    server: https://h\nusers:\n- name: e\n"
	                               "  user:\n    exec: {command: aws}\n");
	expect_config_error(exec, NULL, ENOTSUP, "user \"e\"", "exec");
	kd_autofree char *nocur = kd_xasprintf("%s/nocur", dir);
	kd_test_httpd_write_file(nocur, "clusters: []\n");
	expect_config_error(nocur, NULL, EINVAL, nocur, "current-context");
	kd_test_httpd_rmrf(dir);
}

static void auto_config_prefers_kubeconfig_env(void **state)
{
	(void)state;
	kd_autofree char *dir = kd_test_httpd_mkdtemp();
	kd_autofree char *p = write_kubeconfig(dir, kubeconfig_yaml);
	kd_autofree char *list = kd_xasprintf("%s:/nonexistent/second", p);
	setenv("KUBECONFIG", list, 1);
	struct kd_k8s_config *cfg = NULL;
	assert_int_equal(kd_k8s_config_auto(&cfg, NULL), 0);
	assert_string_equal(cfg->token, "abc.def");
	kd_k8s_config_free(cfg);
	unsetenv("KUBECONFIG");
	kd_test_httpd_rmrf(dir);
}

static void in_cluster_missing_env_is_enoent(void **state)
{
	(void)state;
	unsetenv("KUBERNETES_SERVICE_HOST");
	struct kd_k8s_config *cfg = NULL;
	struct kd_error *err = NULL;
	assert_int_equal(kd_k8s_config_in_cluster_at("/nonexistent", &cfg, &err), -ENOENT);
	assert_non_null(strstr(err->msg, "KUBERNETES_SERVICE_HOST"));
	kd_error_free(err);
}

static void auto_config_falls_back_to_in_cluster_then_home(void **state)
{
	(void)state;
	kd_autofree char *dir = kd_test_httpd_mkdtemp();
	unsetenv("KUBECONFIG");
	const char *old_home = getenv("HOME");
	kd_autofree char *saved_home = old_home ? kd_xstrdup(old_home) : NULL;
	setenv("HOME", dir, 1);
	unsetenv("KUBERNETES_SERVICE_HOST");
	struct kd_k8s_config *cfg = NULL;
	struct kd_error *err = NULL;
	/* Nothing there: the error says what was tried. */
	assert_int_equal(kd_k8s_config_auto(&cfg, &err), -ENOENT);
	kd_autofree char *want = kd_xasprintf("%s/.kube/config", dir);
	assert_non_null(strstr(err->msg, want));
	assert_non_null(strstr(err->msg, "no KUBECONFIG, not in a cluster"));
	kd_error_free(err);
	/* ~/.kube/config. */
	kd_autofree char *kube = kd_xasprintf("%s/.kube", dir);
	assert_int_equal(mkdir(kube, 0700), 0);
	kd_autofree char *p = write_kubeconfig(kube, kubeconfig_yaml);
	assert_int_equal(kd_k8s_config_auto(&cfg, NULL), 0);
	assert_string_equal(cfg->token, "abc.def");
	kd_k8s_config_free(cfg);
	/* In-cluster env wins over ~/.kube/config (and fails here: no service-account token). */
	setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "1", 1);
	err = NULL;
	int rc = kd_k8s_config_auto(&cfg, &err);
	if (rc == 0) {
		kd_k8s_config_free(cfg); /* running inside a real pod */
	} else {
		assert_non_null(strstr(err->msg, "in-cluster config"));
		kd_error_free(err);
	}
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	if (saved_home)
		setenv("HOME", saved_home, 1);
	kd_test_httpd_rmrf(dir);
}

static void token_is_reread_when_the_file_changes(void **state)
{
	(void)state;
	kd_autofree char *dir = kd_test_httpd_mkdtemp();
	kd_autofree char *p = kd_xasprintf("%s/token", dir);
	struct kd_k8s_config *cfg = kd_k8s_config_new("https://h");
	cfg->token = kd_xstrdup("inline");
	struct kd_k8s_token t = {0};
	struct kd_error *err = NULL;
	assert_string_equal(kd_k8s_token_current(&t, cfg, &err), "inline"); /* no token file */
	cfg->token_file = kd_xstrdup(p);
	assert_null(kd_k8s_token_current(&t, cfg, &err)); /* file missing, nothing read yet */
	kd_autofree char *want = kd_xasprintf("token file %s: No such file or directory", p);
	assert_string_equal(err->msg, want);
	kd_error_free(err);
	err = NULL;
	kd_test_httpd_write_file(p, "first\r\n");
	assert_string_equal(kd_k8s_token_current(&t, cfg, &err), "first"); /* trailing ws cut */
	kd_test_httpd_write_file(p, "second-token\n"); /* another size: read again */
	assert_string_equal(kd_k8s_token_current(&t, cfg, &err), "second-token");
	assert_int_equal(unlink(p), 0); /* being rotated: the last good token stays */
	assert_string_equal(kd_k8s_token_current(&t, cfg, &err), "second-token");
	assert_null(err);
	kd_k8s_token_fini(&t);
	assert_null(t.token);
	kd_k8s_config_free(cfg);
	kd_test_httpd_rmrf(dir);
}

/* kd_k8s_config_dup copies every buffer (PEM data by length, with a NUL after it) and every
 * scalar; the copy and the original are freed independently (ASan and valgrind see the rest). */
static void config_dup_is_deep(void **state)
{
	(void)state;
	struct kd_k8s_config *s = kd_k8s_config_new("https://10.0.0.1:443");
	s->ca_file = strdup("/ca.crt");
	s->ca_data = malloc(8);
	memcpy(s->ca_data, "CA\0tail", 8); /* binary: a NUL inside */
	s->ca_len = 7;
	s->insecure_skip_tls_verify = true;
	s->cert_file = strdup("/c.crt");
	s->cert_data = strdup("CERT");
	s->cert_len = 4;
	s->key_file = strdup("/c.key");
	s->key_data = strdup("KEY");
	s->key_len = 3;
	s->token = strdup("tok");
	s->token_file = strdup("/token");
	free(s->namespace);
	s->namespace = strdup("team-a");
	s->source = strdup("kubeconfig /x");
	struct kd_k8s_config *d = kd_k8s_config_dup(s);
	char **sv[] = {&s->server, &s->ca_file,    &s->cert_file, &s->key_file,
	               &s->token,  &s->token_file, &s->namespace, &s->source};
	char **dv[] = {&d->server, &d->ca_file,    &d->cert_file, &d->key_file,
	               &d->token,  &d->token_file, &d->namespace, &d->source};
	for (size_t i = 0; i < sizeof(sv) / sizeof(sv[0]); i++) {
		assert_ptr_not_equal(*sv[i], *dv[i]);
		assert_string_equal(*sv[i], *dv[i]);
	}
	assert_ptr_not_equal(d->ca_data, s->ca_data);
	assert_int_equal(d->ca_len, 7);
	assert_memory_equal(d->ca_data, "CA\0tail", 8); /* 7 bytes and the NUL */
	assert_int_equal(d->cert_len, 4);
	assert_string_equal(d->cert_data, "CERT");
	assert_int_equal(d->key_len, 3);
	assert_string_equal(d->key_data, "KEY");
	assert_true(d->insecure_skip_tls_verify);
	kd_k8s_config_free(s);
	assert_string_equal(d->token, "tok"); /* still there after the original is gone */
	kd_k8s_config_free(d);

	/* NULL members stay NULL */
	struct kd_k8s_config *e = kd_k8s_config_new(NULL);
	struct kd_k8s_config *f = kd_k8s_config_dup(e);
	assert_string_equal(f->server, "");
	assert_null(f->ca_file);
	assert_null(f->ca_data);
	assert_null(f->token);
	assert_null(f->source);
	kd_k8s_config_free(e);
	kd_k8s_config_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(kubeconfig_current_context_token_and_relative_ca),
	    cmocka_unit_test(kubeconfig_inline_data_and_context_override),
	    cmocka_unit_test(kubeconfig_accepts_json),
	    cmocka_unit_test(kubeconfig_numeric_looking_names_stay_strings),
	    cmocka_unit_test(kubeconfig_errors_name_file_and_field),
	    cmocka_unit_test(auto_config_prefers_kubeconfig_env),
	    cmocka_unit_test(in_cluster_missing_env_is_enoent),
	    cmocka_unit_test(auto_config_falls_back_to_in_cluster_then_home),
	    cmocka_unit_test(token_is_reread_when_the_file_changes),
	    cmocka_unit_test(config_dup_is_deep),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
