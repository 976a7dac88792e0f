/* kd/certs.h: the self-issued TLS identity of a component's HTTPS server (kd-autoscaler's
 * admission webhook): a CA and a serving certificate it signed for a set of DNS names, made and
 * checked with GnuTLS, as Knative's webhook makes its own (knative.dev/pkg/webhook/certificates).
 * ECDSA P-256 keys, SHA-256 signatures. Also base64 (Secret data, caBundle) through GnuTLS. */
#ifndef KD_CERTS_H
#define KD_CERTS_H

#include <stddef.h>
#include <time.h>

#include "kd/common.h"
#include "kd/error.h"

/* Caller storage; every member owned (kd_certs_fini), NUL-terminated PEM. */
struct kd_certs {
	char *ca_pem;   /* the CA certificate (what a client trusts: the caBundle) */
	char *cert_pem; /* the serving certificate, signed by the CA */
	char *key_pem;  /* the serving certificate's private key (PKCS#8) */
};

/* Makes a new CA and a serving certificate for names[0..n) (DNS names; names[0] also the
 * subject CN), both valid from now - 5 min to now + valid_s. *out set only on success (fini
 * it). -EINVAL for no name, an empty one or valid_s <= 0; -EIO when GnuTLS fails. */
KD_API int kd_certs_make(const char *const *names, size_t n, time_t now, long valid_s,
                         struct kd_certs *out, struct kd_error **err);

/* 0 when c can be served for names[0..n) until at least now + min_left_s: each PEM parses, the
 * key is the serving certificate's, the CA signed it, every name is in it, and neither
 * certificate expires before then. Else -EINVAL (or -EKEYEXPIRED for expiry) with *err saying
 * which check failed. *not_after (may be NULL) gets the earlier expiry when the PEMs parse. */
KD_API int kd_certs_check(const struct kd_certs *c, const char *const *names, size_t n, time_t now,
                          long min_left_s, time_t *not_after, struct kd_error **err);

/* Frees the members of c (NULL members and a zeroed c are fine); c is zeroed. */
KD_API void kd_certs_fini(struct kd_certs *c);

/* Standard base64 (RFC 4648, padded) of data[0..len): returns owned, NUL-terminated (NULL only
 * if GnuTLS fails). */
KD_API char *kd_base64_encode(const void *data, size_t len);
/* Decodes standard base64 text[0..len) into *out (owned, NUL-terminated; *out_len its length).
 * 0, or -EINVAL for text that is not base64 (*out untouched). */
KD_API int kd_base64_decode(const char *text, size_t len, char **out, size_t *out_len);

#endif /* KD_CERTS_H */
