/* autoscaler-shim/admission.h: the admission.k8s.io/v1 AdmissionReview of kd-autoscaler's
 * mutating webhook, without I/O: decoding a review of a Deployment, and the response that lets
 * it through unchanged or with replicas 0 (a kd-class revision's initial scale is made through
 * the chain instead, autoscaler-shim/pa.c). The HTTPS server, certificates and the Revision
 * lookup are webhook.c's. */
#ifndef KD_AS_ADMISSION_H
#define KD_AS_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kd/error.h"

/* Annotation on a Deployment the webhook created with replicas 0: the replicas asked for. */
#define KD_ANNOT_INITIAL_REPLICAS "kubedirect.dev/initial-replicas"
/* AdmissionReview bodies larger than this are refused (the API Server's own cap is 3 MiB). */
#define KD_ADM_BODY_MAX (3u * 1024u * 1024u)

/* A decoded review; every string owned (kd_adm_req_fini). */
struct kd_adm_req {
	char *api_version;    /* the review's, echoed in the response */
	char *uid;            /* request.uid */
	char *ns;             /* request.namespace */
	char *name;           /* the object's metadata.name (or request.name) */
	char *revision;       /* its serving.knative.dev/revision label, or NULL */
	char *class_ann;      /* its own autoscaling.knative.dev/class annotation, or NULL */
	int64_t replicas;     /* spec.replicas; absent: 1 (the API Server's default) */
	bool has_annotations; /* metadata.annotations is present (the patch adds into it) */
	/* CREATE of an apps/v1 Deployment with a revision label and replicas > 0: a candidate for
	 * replicas 0; anything else is let through unchanged */
	bool candidate;
};

/* Decodes an AdmissionReview (admission.k8s.io/v1 or v1beta1) from body[0..len). 0 with *out
 * set (fini it), or -EINVAL / -EMSGSIZE with *err naming what is wrong (the caller answers 400).
 * A review of another kind or operation decodes fine with candidate false. */
int kd_adm_decode(const char *body, size_t len, struct kd_adm_req *out, struct kd_error **err);
void kd_adm_req_fini(struct kd_adm_req *r);

/* The AdmissionReview response for r: allowed; with zero true a JSONPatch setting
 * spec.replicas to 0 and recording r->replicas under KD_ANNOT_INITIAL_REPLICAS. warning, if
 * not NULL, is returned in response.warnings. Returns owned JSON text; free(). */
char *kd_adm_response(const struct kd_adm_req *r, bool zero, const char *warning);

/* The base64 JSONPatch kd_adm_response embeds (exposed for tests): owned; free(). */
char *kd_adm_patch_json(const struct kd_adm_req *r);

#endif /* KD_AS_ADMISSION_H */
