/* Unit tests for kd_certs (lib/kd_certs.c): a made pair checks as usable for its names, and each
 * check fails for the reason it names: another name, a key of another certificate, a CA that
 * did not sign it, garbage PEM, an expiry inside the wanted margin; bad arguments are refused;
 * base64 round-trips binary data and refuses what is not base64. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "kd/certs.h"

static const char *const names[] = {"kd-webhook.kubedirect.svc",
                                    "kd-webhook.kubedirect.svc.cluster.local"};

static void check_fails(const struct kd_certs *c, const char *const *n, size_t k, time_t now,
                        long left, int want, const char *msg)
{
	struct kd_error *err = NULL;
	assert_int_equal(kd_certs_check(c, n, k, now, left, NULL, &err), -want);
	assert_non_null(err);
	if (!strstr(kd_error_msg(err), msg))
		fail_msg("error \"%s\" does not say \"%s\"", kd_error_msg(err), msg);
	kd_error_free(err);
}

static void made_pair_is_usable_for_its_names_and_until_its_expiry(void **state)
{
	(void)state;
	time_t now = time(NULL);
	struct kd_certs c;
	struct kd_error *err = NULL;
	assert_int_equal(kd_certs_make(names, 2, now, 86400, &c, &err), 0);
	assert_null(err);
	assert_non_null(strstr(c.ca_pem, "-----BEGIN CERTIFICATE-----"));
	assert_non_null(strstr(c.cert_pem, "-----BEGIN CERTIFICATE-----"));
	assert_non_null(strstr(c.key_pem, "-----BEGIN PRIVATE KEY-----"));
	time_t exp = 0;
	assert_int_equal(kd_certs_check(&c, names, 2, now, 3600, &exp, &err), 0);
	assert_null(err);
	assert_true(exp >= now + 86400 - 1 && exp <= now + 86400 + 1);
	/* the margin: usable for 23 h more, not for 25 h */
	assert_int_equal(kd_certs_check(&c, names, 2, now, 23 * 3600, NULL, NULL), 0);
	check_fails(&c, names, 2, now, 25 * 3600, EKEYEXPIRED, "expires in");
	/* a day later it is expired */
	check_fails(&c, names, 2, now + 2 * 86400, 0, EKEYEXPIRED, "expires in");
	kd_certs_fini(&c);
	kd_certs_fini(&c); /* zeroed: a second fini is harmless */
}

static void each_check_names_what_is_wrong(void **state)
{
	(void)state;
	time_t now = time(NULL);
	struct kd_certs a, b;
	assert_int_equal(kd_certs_make(names, 1, now, 86400, &a, NULL), 0);
	assert_int_equal(kd_certs_make(names, 1, now, 86400, &b, NULL), 0);
	static const char *const other[] = {"evil.example"};
	check_fails(&a, other, 1, now, 0, EINVAL, "not issued for evil.example");
	check_fails(&a, names + 1, 1, now, 0, EINVAL, "not issued for");

	struct kd_certs mixed = {a.ca_pem, a.cert_pem, b.key_pem};
	check_fails(&mixed, names, 1, now, 0, EINVAL, "not the serving certificate's");
	struct kd_certs foreign = {b.ca_pem, a.cert_pem, a.key_pem};
	check_fails(&foreign, names, 1, now, 0, EINVAL, "not signed by the CA");
	struct kd_certs junk = {a.ca_pem, "-----BEGIN CERTIFICATE-----\nAAAA\n", a.key_pem};
	check_fails(&junk, names, 1, now, 0, EINVAL, "serving certificate does not parse");
	struct kd_certs nokey = {a.ca_pem, a.cert_pem, NULL};
	check_fails(&nokey, names, 1, now, 0, EINVAL, "no private key");
	struct kd_certs badkey = {a.ca_pem, a.cert_pem, "not a key"};
	check_fails(&badkey, names, 1, now, 0, EINVAL, "private key does not parse");
	struct kd_certs noca = {NULL, a.cert_pem, a.key_pem};
	check_fails(&noca, names, 1, now, 0, EINVAL, "no CA certificate");
	/* before its activation (5 min backdated) */
	check_fails(&a, names, 1, now - 3600, 0, EINVAL, "not valid yet");
	kd_certs_fini(&a);
	kd_certs_fini(&b);
}

static void bad_arguments_are_refused(void **state)
{
	(void)state;
	struct kd_certs c = {0};
	struct kd_error *err = NULL;
	assert_int_equal(kd_certs_make(names, 0, time(NULL), 60, &c, &err), -EINVAL);
	assert_non_null(strstr(kd_error_msg(err), "no DNS name"));
	kd_error_free(err);
	err = NULL;
	static const char *const empty[] = {"ok", ""};
	assert_int_equal(kd_certs_make(empty, 2, time(NULL), 60, &c, &err), -EINVAL);
	assert_non_null(strstr(kd_error_msg(err), "empty"));
	kd_error_free(err);
	err = NULL;
	assert_int_equal(kd_certs_make(names, 1, time(NULL), 0, &c, &err), -EINVAL);
	kd_error_free(err);
	assert_null(c.ca_pem); /* out untouched on failure */
}

static void base64_round_trips_binary_and_refuses_garbage(void **state)
{
	(void)state;
	const char bin[] = {'a', '\0', 'b', (char)0xff, '\n'};
	char *enc = kd_base64_encode(bin, sizeof(bin));
	assert_string_equal(enc, "YQBi/wo=");
	char *dec = NULL;
	size_t len = 0;
	assert_int_equal(kd_base64_decode(enc, strlen(enc), &dec, &len), 0);
	assert_int_equal(len, sizeof(bin));
	assert_memory_equal(dec, bin, sizeof(bin));
	assert_int_equal(dec[len], '\0');
	free(dec);
	free(enc);
	enc = kd_base64_encode("", 0);
	assert_string_equal(enc, "");
	free(enc);
	dec = NULL;
	assert_int_equal(kd_base64_decode("!!!not base64", 13, &dec, &len), -EINVAL);
	assert_null(dec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(made_pair_is_usable_for_its_names_and_until_its_expiry),
	    cmocka_unit_test(each_check_names_what_is_wrong),
	    cmocka_unit_test(bad_arguments_are_refused),
	    cmocka_unit_test(base64_round_trips_binary_and_refuses_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
