/* lib/kd_certs.c: a CA and a serving certificate made and checked with GnuTLS (kd/certs.h).
 *
 * Decisions made here:
 *  - One CA per serving certificate, made together (as Knative's webhook does): rotation makes
 *    both, and the old CA stays in the caBundle beside the new one until it expires.
 *  - Random 128-bit serial numbers (top bit clear: a positive INTEGER); the CA has
 *    basicConstraints CA:TRUE pathlen 0 and keyCertSign; the serving certificate CA:FALSE,
 *    digitalSignature + keyEncipherment, extKeyUsage serverAuth, a SAN per name.
 */
#include <errno.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "kd/certs.h"

#define BACKDATE_S 300

static int gt_fail(struct kd_error **err, const char *what, int rc)
{
	return kd_error_set(err, EIO, 0, "certificate: %s: %s", what, gnutls_strerror(rc));
}

/* An owned, NUL-terminated copy of d (which may hold NUL bytes itself). */
static char *datum_str(const gnutls_datum_t *d)
{
	char *s = kd_xmalloc((size_t)d->size + 1);
	if (d->size)
		memcpy(s, d->data, d->size);
	s[d->size] = '\0';
	return s;
}

static int new_key(gnutls_x509_privkey_t *key, struct kd_error **err)
{
	int rc = gnutls_x509_privkey_init(key);
	if (rc < 0)
		return gt_fail(err, "key", rc);
	rc = gnutls_x509_privkey_generate(*key, GNUTLS_PK_ECDSA,
	                                  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
	if (rc < 0) {
		gnutls_x509_privkey_deinit(*key);
		return gt_fail(err, "generate an ECDSA P-256 key", rc);
	}
	return 0;
}

/* The common part of both certificates: version, serial, validity, subject CN, key. */
static int crt_base(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, const char *cn, time_t now,
                    long valid_s)
{
	unsigned char serial[16];
	int rc = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
	serial[0] &= 0x7f;
	serial[0] |= 0x01; /* never a leading zero byte */
	if (rc >= 0)
		rc = gnutls_x509_crt_set_version(crt, 3);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
	if (rc >= 0)
		rc = gnutls_x509_crt_set_activation_time(crt, now - BACKDATE_S);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_expiration_time(crt, now + valid_s);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
		                                   (unsigned)strlen(cn));
	if (rc >= 0)
		rc = gnutls_x509_crt_set_key(crt, key);
	if (rc >= 0) {
		unsigned char id[64];
		size_t id_len = sizeof(id);
		rc = gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, id, &id_len);
		if (rc >= 0)
			rc = gnutls_x509_crt_set_subject_key_id(crt, id, id_len);
	}
	return rc;
}

static int export_crt(gnutls_x509_crt_t crt, char **out)
{
	gnutls_datum_t d = {NULL, 0};
	int rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d);
	if (rc >= 0)
		*out = datum_str(&d);
	gnutls_free(d.data);
	return rc;
}

int kd_certs_make(const char *const *names, size_t n, time_t now, long valid_s,
                  struct kd_certs *out, struct kd_error **err)
{
	if (n == 0 || !names)
		return kd_error_set(err, EINVAL, 0, "certificate: no DNS name to issue it for");
	for (size_t i = 0; i < n; i++)
		if (!names[i] || !*names[i])
			return kd_error_set(err, EINVAL, 0, "certificate: DNS name %zu is empty",
			                    i);
	if (valid_s <= 0)
		return kd_error_set(err, EINVAL, 0, "certificate: validity must be positive");
	gnutls_x509_privkey_t ca_key = NULL, key = NULL;
	gnutls_x509_crt_t ca = NULL, crt = NULL;
	struct kd_certs c = {0};
	kd_autofree char *ca_cn = kd_xasprintf("kubedirect CA for %s", names[0]);
	int ret = -EIO;
	int rc;
	if (new_key(&ca_key, err) < 0)
		goto out;
	if (new_key(&key, err) < 0)
		goto out;
	if ((rc = gnutls_x509_crt_init(&ca)) < 0 || (rc = gnutls_x509_crt_init(&crt)) < 0) {
		gt_fail(err, "init", rc);
		goto out;
	}
	/* the CA */
	rc = crt_base(ca, ca_key, ca_cn, now, valid_s);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_basic_constraints(ca, 1, 0);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_key_usage(ca, GNUTLS_KEY_KEY_CERT_SIGN |
		                                           GNUTLS_KEY_CRL_SIGN |
		                                           GNUTLS_KEY_DIGITAL_SIGNATURE);
	if (rc >= 0)
		rc = gnutls_x509_crt_sign2(ca, ca, ca_key, GNUTLS_DIG_SHA256, 0);
	if (rc < 0) {
		gt_fail(err, "make the CA", rc);
		goto out;
	}
	/* the serving certificate */
	rc = crt_base(crt, key, names[0], now, valid_s);
	for (size_t i = 0; rc >= 0 && i < n; i++)
		rc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, names[i],
		                                          (unsigned)strlen(names[i]),
		                                          GNUTLS_FSAN_APPEND);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE |
		                                            GNUTLS_KEY_KEY_ENCIPHERMENT);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
	if (rc >= 0) {
		unsigned char id[64];
		size_t id_len = sizeof(id);
		rc = gnutls_x509_crt_get_subject_key_id(ca, id, &id_len, NULL);
		if (rc >= 0)
			rc = gnutls_x509_crt_set_authority_key_id(crt, id, id_len);
	}
	if (rc >= 0)
		rc = gnutls_x509_crt_sign2(crt, ca, ca_key, GNUTLS_DIG_SHA256, 0);
	if (rc < 0) {
		gt_fail(err, "make the serving certificate", rc);
		goto out;
	}
	gnutls_datum_t kd = {NULL, 0};
	if ((rc = export_crt(ca, &c.ca_pem)) < 0 || (rc = export_crt(crt, &c.cert_pem)) < 0 ||
	    (rc = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL,
	                                            GNUTLS_PKCS_PLAIN, &kd)) < 0) {
		gnutls_free(kd.data);
		gt_fail(err, "export", rc);
		goto out;
	}
	c.key_pem = datum_str(&kd);
	gnutls_free(kd.data);
	*out = c;
	memset(&c, 0, sizeof(c));
	ret = 0;
out:
	kd_certs_fini(&c);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (ca)
		gnutls_x509_crt_deinit(ca);
	if (key)
		gnutls_x509_privkey_deinit(key);
	if (ca_key)
		gnutls_x509_privkey_deinit(ca_key);
	return ret;
}

static int import_crt(gnutls_x509_crt_t *crt, const char *pem, const char *what,
                      struct kd_error **err)
{
	if (!pem || !*pem)
		return kd_error_set(err, EINVAL, 0, "certificate: no %s", what);
	int rc = gnutls_x509_crt_init(crt);
	if (rc < 0)
		return gt_fail(err, "init", rc);
	gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
	rc = gnutls_x509_crt_import(*crt, &d, GNUTLS_X509_FMT_PEM);
	if (rc < 0)
		return kd_error_set(err, EINVAL, 0, "certificate: %s does not parse: %s", what,
		                    gnutls_strerror(rc));
	return 0;
}

int kd_certs_check(const struct kd_certs *c, const char *const *names, size_t n, time_t now,
                   long min_left_s, time_t *not_after, struct kd_error **err)
{
	gnutls_x509_crt_t ca = NULL, crt = NULL;
	gnutls_x509_privkey_t key = NULL;
	int ret = -EINVAL;
	int rc;
	if (import_crt(&ca, c->ca_pem, "CA certificate", err) < 0 ||
	    import_crt(&crt, c->cert_pem, "serving certificate", err) < 0)
		goto out;
	if (!c->key_pem || !*c->key_pem) {
		kd_error_set(err, EINVAL, 0, "certificate: no private key");
		goto out;
	}
	if ((rc = gnutls_x509_privkey_init(&key)) < 0) {
		gt_fail(err, "init", rc);
		goto out;
	}
	gnutls_datum_t kd = {(unsigned char *)c->key_pem, (unsigned)strlen(c->key_pem)};
	if ((rc = gnutls_x509_privkey_import2(key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
		kd_error_set(err, EINVAL, 0, "certificate: private key does not parse: %s",
		             gnutls_strerror(rc));
		goto out;
	}
	unsigned char id1[64], id2[64];
	size_t l1 = sizeof(id1), l2 = sizeof(id2);
	if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, id1, &l1) < 0 ||
	    gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, id2, &l2) < 0 ||
	    l1 != l2 || memcmp(id1, id2, l1) != 0) {
		kd_error_set(err, EINVAL, 0,
		             "certificate: the private key is not the serving certificate's");
		goto out;
	}
	unsigned status = 0;
	rc = gnutls_x509_crt_verify(
	    crt, &ca, 1,
	    GNUTLS_VERIFY_DISABLE_TIME_CHECKS | GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS, &status);
	if (rc < 0 || status != 0) {
		kd_error_set(err, EINVAL, 0,
		             "certificate: the serving certificate is not signed by the CA (status "
		             "0x%x)",
		             status);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (!gnutls_x509_crt_check_hostname2(crt, names[i], 0)) {
			kd_error_set(err, EINVAL, 0, "certificate: not issued for %s", names[i]);
			goto out;
		}
	}
	time_t exp = gnutls_x509_crt_get_expiration_time(crt);
	time_t ca_exp = gnutls_x509_crt_get_expiration_time(ca);
	if (ca_exp < exp)
		exp = ca_exp;
	if (not_after)
		*not_after = exp;
	if (exp == (time_t)-1 || exp < now + min_left_s) {
		ret = kd_error_set(err, EKEYEXPIRED, 0,
		                   "certificate: expires in %lld s (at least %ld s wanted)",
		                   (long long)(exp - now), min_left_s);
		goto out;
	}
	if (gnutls_x509_crt_get_activation_time(crt) > now) {
		kd_error_set(err, EINVAL, 0, "certificate: not valid yet");
		goto out;
	}
	ret = 0;
out:
	if (key)
		gnutls_x509_privkey_deinit(key);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (ca)
		gnutls_x509_crt_deinit(ca);
	return ret;
}

void kd_certs_fini(struct kd_certs *c)
{
	if (!c)
		return;
	free(c->ca_pem);
	free(c->cert_pem);
	free(c->key_pem);
	memset(c, 0, sizeof(*c));
}

char *kd_base64_encode(const void *data, size_t len)
{
	gnutls_datum_t in = {(unsigned char *)data, (unsigned)len};
	gnutls_datum_t out = {NULL, 0};
	if (len == 0)
		return kd_xstrdup("");
	if (gnutls_base64_encode2(&in, &out) < 0) {
		gnutls_free(out.data);
		return NULL;
	}
	char *s = datum_str(&out);
	gnutls_free(out.data);
	return s;
}

int kd_base64_decode(const char *text, size_t len, char **out, size_t *out_len)
{
	if (len == 0) {
		*out = kd_xstrdup("");
		if (out_len)
			*out_len = 0;
		return 0;
	}
	gnutls_datum_t in = {(unsigned char *)text, (unsigned)len};
	gnutls_datum_t d = {NULL, 0};
	if (len > UINT32_MAX || gnutls_base64_decode2(&in, &d) < 0) {
		gnutls_free(d.data);
		return -EINVAL;
	}
	*out = datum_str(&d);
	if (out_len)
		*out_len = d.size;
	gnutls_free(d.data);
	return 0;
}
