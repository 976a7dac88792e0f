/* autoscaler-shim/webhook.c: kd-autoscaler's mutating admission webhook (--webhook-port; 0 turns
 * it off): Deployments of kd-class revisions are created with replicas 0, so no ReplicaSet Pod
 * is ever made for them; pa.c makes the revision's initial scale through the chain instead.
 * The review itself is admission.c's; here are the HTTPS server (lib/http), its certificate
 * and the Revision lookup.
 *
 * Decisions made here:
 *  - The certificate is self-issued, as Knative's webhook does: a CA and a serving certificate
 *    for the Service's DNS names (--webhook-service NAME.NS: NAME, NAME.NS, NAME.NS.svc,
 *    NAME.NS.svc.cluster.local), kept in the Secret --webhook-secret (keys ca-cert.pem,
 *    server-cert.pem, server-key.pem, Knative's names) so restarts and replicas share it.
 *    A Secret that is missing, unusable for those names, or expiring within KD_WH_ROTATE_S is
 *    replaced by a new pair (a 409 on create: another replica won, its pair is read and used).
 *  - The caBundle of every webhook of the MutatingWebhookConfiguration --webhook-config whose
 *    clientConfig.service is ours holds the current CA and, after a rotation, the previous one
 *    (open connections finish on the old certificate). It is checked at start, after each
 *    rotation and every KD_WH_SYNC_MS; a JSON patch with a "test" on the webhook's name writes
 *    it (a reordered list is never patched at the wrong index).
 *  - The class: the Revision named by the Deployment's serving.knative.dev/revision label, read
 *    with a KD_WH_LOOKUP_MS budget (Knative filters autoscaling annotations out of the
 *    Deployment, resources/meta.go deploymentAnnotations); a class annotation on the
 *    Deployment itself, if any, is taken without the lookup. Whatever cannot be
 *    decided (the Revision unreadable, the budget spent) is allowed unchanged with a warning:
 *    failurePolicy Ignore semantics, the webhook never blocks Knative; pa.c scales such a
 *    template to 0 afterwards, as before the webhook.
 *  - --namespace limits the webhook as it limits the reconciler: other namespaces are allowed
 *    unchanged.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "admission.h"
#include "autoscaler.h"
#include "kd/certs.h"
#include "kd/json.h"
#include "kd/log.h"
#include "kd/prom.h"

#define KD_WH_VALID_S   (365L * 86400L) /* a new pair's validity */
#define KD_WH_ROTATE_S  (30L * 86400L)  /* replaced when it has less left */
#define KD_WH_SYNC_MS   60000u          /* caBundle and expiry check period */
#define KD_WH_RETRY_MS  5000u           /* after a failed Secret or configuration call */
#define KD_WH_LOOKUP_MS 3000u           /* a Revision lookup's budget */
#define KD_WH_PATH      "/mutate"

static const struct kd_k8s_resource secrets_res = {"", "v1", "secrets", true};
static const struct kd_k8s_resource mwc_res = {"admissionregistration.k8s.io", "v1",
                                               "mutatingwebhookconfigurations", false};
static const struct kd_k8s_resource revisions_res = {"serving.knative.dev", "v1", "revisions",
                                                     true};

enum wh_result { WH_ZEROED, WH_UNCHANGED, WH_UNDECIDED, WH_BAD, WH_RESULTS };
static const char *const result_names[WH_RESULTS] = {"zeroed", "unchanged", "undecided",
                                                     "bad_request"};

struct kd_as_webhook {
	struct kd_as *as;
	char *svc_ns, *svc_name, *sec_ns, *sec_name;
	char *names[4];
	struct kd_certs certs;
	char *prev_ca; /* the CA before the last rotation, or NULL */
	char *secret_rv;
	struct kd_http_server *srv;
	struct kd_timer *timer;
	bool busy; /* a Secret or configuration call is in flight */
	bool bundle_ok;
	bool warned_no_config;
	uint64_t results[WH_RESULTS];
	uint64_t rotations;
	struct wh_lookup *lookups; /* Revision lookups in flight */
};

/* ---- reviews -------------------------------------------------------------------------------- */

/* A review waiting for its Revision; outlives its request (the client may go away) and the
 * webhook (kd_k8s calls cannot be cancelled): wh NULL once the webhook stopped. */
struct wh_lookup {
	struct wh_lookup *next;
	struct kd_as_webhook *wh;
	struct kd_http_req *req; /* NULL once answered or gone */
	struct kd_adm_req r;
	struct kd_timer *timer;
	bool k8s_done;
};

static void respond(struct kd_as_webhook *wh, struct kd_http_req *req, const struct kd_adm_req *r,
                    enum wh_result res, const char *warning)
{
	wh->results[res]++;
	kd_autofree char *body = kd_adm_response(r, res == WH_ZEROED, warning);
	kd_http_req_respond(req, 200, "application/json", body, strlen(body));
}

static void decide(struct kd_as_webhook *wh, struct kd_http_req *req, const struct kd_adm_req *r,
                   const char *cls)
{
	bool ours = cls && strcmp(cls, wh->as->cfg.pa_class) == 0;
	if (ours)
		kd_log_info(
		    "webhook: Deployment %s/%s (revision %s) created with replicas 0 instead "
		    "of %lld: its initial scale is made through the chain",
		    r->ns ? r->ns : "", r->name ? r->name : "?", r->revision,
		    (long long)r->replicas);
	respond(wh, req, r, ours ? WH_ZEROED : WH_UNCHANGED, NULL);
}

static void lookup_free(struct wh_lookup *l)
{
	if (l->wh) {
		struct wh_lookup **pp = &l->wh->lookups;
		while (*pp && *pp != l)
			pp = &(*pp)->next;
		if (*pp)
			*pp = l->next;
	}
	kd_loop_timer_free(l->timer);
	kd_adm_req_fini(&l->r);
	free(l);
}

static void lookup_undecided(struct wh_lookup *l, const char *why)
{
	kd_log_warn("webhook: Deployment %s/%s: class of Revision %s unknown (%s); allowed "
	            "unchanged",
	            l->r.ns ? l->r.ns : "", l->r.name ? l->r.name : "?", l->r.revision, why);
	kd_autofree char *w =
	    kd_xasprintf("kubedirect: could not read Revision %s (%s); Deployment created as asked",
	                 l->r.revision, why);
	respond(l->wh, l->req, &l->r, WH_UNDECIDED, w);
	l->req = NULL;
}

static void lookup_done(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	struct wh_lookup *l = arg;
	l->k8s_done = true;
	if (l->req && l->wh) {
		kd_loop_timer_stop(l->timer);
		if (err) {
			lookup_undecided(l, kd_error_msg(err));
		} else {
			const char *cls = kd_json_get_string(
			    resp->body, "metadata.annotations.autoscaling\\.knative\\.dev/class");
			decide(l->wh, l->req, &l->r, cls);
			l->req = NULL;
		}
	}
	lookup_free(l);
}

static void lookup_timeout(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	struct wh_lookup *l = arg;
	if (l->req)
		lookup_undecided(l, "no answer within 3 s");
}

static void lookup_abort(void *ud, struct kd_http_req *req)
{
	(void)req;
	struct wh_lookup *l = ud;
	l->req = NULL; /* the API Server went away: nothing to answer */
	kd_loop_timer_stop(l->timer);
}

static void on_review(void *ud, struct kd_http_req *req)
{
	struct kd_as_webhook *wh = ud;
	const char *target = kd_http_req_target(req);
	size_t plen = strcspn(target, "?");
	if (plen != strlen(KD_WH_PATH) || strncmp(target, KD_WH_PATH, plen) != 0) {
		static const char m[] = "kd-autoscaler webhook: POST " KD_WH_PATH "\n";
		kd_http_req_respond(req, 404, "text/plain", m, sizeof(m) - 1);
		return;
	}
	if (strcmp(kd_http_req_method(req), "POST") != 0) {
		static const char m[] = "POST an AdmissionReview\n";
		kd_http_req_respond(req, 405, "text/plain", m, sizeof(m) - 1);
		return;
	}
	size_t len = 0;
	const char *body = kd_http_req_body(req, &len);
	struct kd_adm_req r;
	kd_autoerr struct kd_error *err = NULL;
	if (kd_adm_decode(body, len, &r, &err) < 0) {
		wh->results[WH_BAD]++;
		kd_log_warn("webhook: bad review from %s: %s", kd_http_req_peer(req),
		            kd_error_msg(err));
		kd_autofree char *m = kd_xasprintf("%s\n", kd_error_msg(err));
		kd_http_req_respond(req, 400, "text/plain", m, strlen(m));
		return;
	}
	const char *only = wh->as->cfg.namespace;
	if (!r.candidate || (only && *only && (!r.ns || strcmp(r.ns, only) != 0))) {
		respond(wh, req, &r, WH_UNCHANGED, NULL);
	} else if (r.class_ann) {
		decide(wh, req, &r, r.class_ann);
	} else {
		struct wh_lookup *l = kd_xcalloc(1, sizeof(*l));
		l->wh = wh;
		l->req = req;
		l->r = r;
		memset(&r, 0, sizeof(r));
		struct kd_k8s_request kr = {.verb = KD_K8S_GET,
		                            .res = &revisions_res,
		                            .ns = l->r.ns,
		                            .name = l->r.revision};
		if (kd_k8s_submit(wh->as->k8s, &kr, lookup_done, l, &err) < 0) {
			lookup_undecided(l, kd_error_msg(err));
			lookup_free(l);
			return;
		}
		l->timer = kd_loop_timer_new(wh->as->loop, lookup_timeout, l);
		kd_loop_timer_start(l->timer, KD_WH_LOOKUP_MS);
		kd_http_req_on_abort(req, lookup_abort, l);
		l->next = wh->lookups;
		wh->lookups = l;
		return;
	}
	kd_adm_req_fini(&r);
}

/* ---- the serving certificate ---------------------------------------------------------------- */

static void sync_soon(struct kd_as_webhook *wh, uint64_t ms)
{
	kd_loop_timer_start(wh->timer, ms);
}

static const char *const cert_keys[] = {"ca-cert.pem", "server-cert.pem", "server-key.pem"};

/* The pair in a Secret, or -EINVAL when a key is missing or not base64. */
static int secret_certs(json_object *secret, struct kd_certs *out)
{
	char *v[3] = {NULL, NULL, NULL};
	for (size_t i = 0; i < 3; i++) {
		json_object *data = kd_json_get_object(secret, "data");
		json_object *b = NULL;
		const char *s = data && json_object_object_get_ex(data, cert_keys[i], &b) &&
		                        json_object_is_type(b, json_type_string)
		                    ? json_object_get_string(b)
		                    : NULL;
		if (!s || kd_base64_decode(s, strlen(s), &v[i], NULL) < 0) {
			for (size_t j = 0; j < i; j++)
				free(v[j]);
			return -EINVAL;
		}
	}
	*out = (struct kd_certs){v[0], v[1], v[2]};
	return 0;
}

static json_object *secret_body(struct kd_as_webhook *wh, const struct kd_certs *c)
{
	json_object *s = json_object_new_object();
	json_object_object_add(s, "apiVersion", json_object_new_string("v1"));
	json_object_object_add(s, "kind", json_object_new_string("Secret"));
	json_object *md = json_object_new_object();
	json_object_object_add(md, "name", json_object_new_string(wh->sec_name));
	json_object_object_add(md, "namespace", json_object_new_string(wh->sec_ns));
	json_object *labels = json_object_new_object();
	json_object_object_add(labels, "app.kubernetes.io/part-of",
	                       json_object_new_string("kubedirect"));
	json_object_object_add(labels, "app.kubernetes.io/component",
	                       json_object_new_string("kd-autoscaler"));
	json_object_object_add(md, "labels", labels);
	if (wh->secret_rv)
		json_object_object_add(md, "resourceVersion",
		                       json_object_new_string(wh->secret_rv));
	json_object_object_add(s, "metadata", md);
	json_object_object_add(s, "type", json_object_new_string("Opaque"));
	json_object *data = json_object_new_object();
	const char *v[3] = {c->ca_pem, c->cert_pem, c->key_pem};
	for (size_t i = 0; i < 3; i++) {
		kd_autofree char *b = kd_base64_encode(v[i], strlen(v[i]));
		json_object_object_add(data, cert_keys[i], json_object_new_string(b ? b : ""));
	}
	json_object_object_add(s, "data", data);
	return s;
}

static void bundle_sync(struct kd_as_webhook *wh);

/* Serves c (taking it): starts the HTTPS server, or swaps its certificate. */
static void serve(struct kd_as_webhook *wh, struct kd_certs *c)
{
	kd_autoerr struct kd_error *err = NULL;
	if (!wh->srv) {
		struct kd_http_server_opts o = {.bind_addr = wh->as->cfg.webhook_bind,
		                                .port = (int)wh->as->cfg.webhook_port,
		                                .body_max = KD_ADM_BODY_MAX,
		                                .tls_cert_pem = c->cert_pem,
		                                .tls_key_pem = c->key_pem};
		wh->srv = kd_http_server_new(wh->as->loop, &o, on_review, wh, &err);
		if (!wh->srv) {
			kd_log_error("webhook: %s; retrying", kd_error_msg(err));
			kd_certs_fini(c);
			sync_soon(wh, KD_WH_RETRY_MS);
			return;
		}
		kd_log_info(
		    "webhook: serving https://%s:%d%s for %s (certificate from Secret %s/%s)",
		    wh->as->cfg.webhook_bind, kd_http_server_port(wh->srv), KD_WH_PATH,
		    wh->names[2], wh->sec_ns, wh->sec_name);
	} else if (strcmp(c->cert_pem, wh->certs.cert_pem) != 0) {
		if (kd_http_server_set_tls(wh->srv, c->cert_pem, c->key_pem, &err) < 0) {
			kd_log_error("webhook: %s", kd_error_msg(err));
			kd_certs_fini(c);
			return;
		}
		free(wh->prev_ca);
		wh->prev_ca = wh->certs.ca_pem;
		wh->certs.ca_pem = NULL;
		wh->rotations++;
		kd_log_info("webhook: serving a new certificate");
	}
	bool changed = !wh->certs.cert_pem || strcmp(wh->certs.cert_pem, c->cert_pem) != 0;
	kd_certs_fini(&wh->certs);
	wh->certs = *c;
	memset(c, 0, sizeof(*c));
	if (changed)
		wh->bundle_ok = false;
	bundle_sync(wh);
}

static void secret_written(struct kd_k8s_response *resp, struct kd_error *err, void *arg);

/* A new pair, written to the Secret (created when create, else replaced at secret_rv). */
static void issue(struct kd_as_webhook *wh, bool create)
{
	struct kd_certs c;
	kd_autoerr struct kd_error *err = NULL;
	const char *const *names = (const char *const *)wh->names;
	if (kd_certs_make(names, KD_ARRAY_SIZE(wh->names), time(NULL), KD_WH_VALID_S, &c, &err) <
	    0) {
		kd_log_error("webhook: %s; retrying", kd_error_msg(err));
		sync_soon(wh, KD_WH_RETRY_MS);
		return;
	}
	json_object *body = secret_body(wh, &c);
	kd_certs_fini(&c);
	struct kd_k8s_request kr = {.verb = create ? KD_K8S_CREATE : KD_K8S_UPDATE,
	                            .res = &secrets_res,
	                            .ns = wh->sec_ns,
	                            .name = create ? NULL : wh->sec_name,
	                            .body = body};
	if (kd_k8s_submit(wh->as->k8s, &kr, secret_written, wh, &err) < 0) {
		kd_log_error("webhook: write Secret %s/%s: %s", wh->sec_ns, wh->sec_name,
		             kd_error_msg(err));
		sync_soon(wh, KD_WH_RETRY_MS);
	} else {
		wh->busy = true;
	}
	json_object_put(body);
}

static void secret_read(struct kd_k8s_response *resp, struct kd_error *err, void *arg);

static void secret_get(struct kd_as_webhook *wh)
{
	struct kd_k8s_request kr = {
	    .verb = KD_K8S_GET, .res = &secrets_res, .ns = wh->sec_ns, .name = wh->sec_name};
	kd_autoerr struct kd_error *err = NULL;
	if (kd_k8s_submit(wh->as->k8s, &kr, secret_read, wh, &err) < 0) {
		kd_log_error("webhook: read Secret %s/%s: %s", wh->sec_ns, wh->sec_name,
		             kd_error_msg(err));
		sync_soon(wh, KD_WH_RETRY_MS);
		return;
	}
	wh->busy = true;
}

static void secret_read(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	struct kd_as_webhook *wh = arg;
	wh->busy = false;
	if (wh->as->stopping)
		return;
	if (err && err->http_status == 404) {
		kd_log_info("webhook: Secret %s/%s not found; issuing a certificate", wh->sec_ns,
		            wh->sec_name);
		free(wh->secret_rv);
		wh->secret_rv = NULL;
		issue(wh, true);
		return;
	}
	if (err) {
		kd_log_warn("webhook: read Secret %s/%s: %s; retrying", wh->sec_ns, wh->sec_name,
		            kd_error_msg(err));
		sync_soon(wh, KD_WH_RETRY_MS);
		return;
	}
	free(wh->secret_rv);
	wh->secret_rv = resp->resource_version ? kd_xstrdup(resp->resource_version) : NULL;
	struct kd_certs c;
	kd_autoerr struct kd_error *why = NULL;
	const char *const *names = (const char *const *)wh->names;
	if (secret_certs(resp->body, &c) < 0) {
		kd_log_info("webhook: Secret %s/%s holds no certificate; issuing one", wh->sec_ns,
		            wh->sec_name);
		issue(wh, false);
		return;
	}
	if (kd_certs_check(&c, names, KD_ARRAY_SIZE(wh->names), time(NULL), KD_WH_ROTATE_S, NULL,
	                   &why) < 0) {
		kd_log_info("webhook: Secret %s/%s: %s; issuing a new one", wh->sec_ns,
		            wh->sec_name, kd_error_msg(why));
		kd_certs_fini(&c);
		issue(wh, false);
		return;
	}
	serve(wh, &c);
	sync_soon(wh, KD_WH_SYNC_MS);
}

static void secret_written(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	(void)resp;
	struct kd_as_webhook *wh = arg;
	wh->busy = false;
	if (wh->as->stopping)
		return;
	if (err && err->http_status == 409) {
		/* another writer (a replica, a restart) won: use what it wrote */
		kd_log_info("webhook: Secret %s/%s changed meanwhile; reading it again", wh->sec_ns,
		            wh->sec_name);
		secret_get(wh);
		return;
	}
	if (err) {
		kd_log_error("webhook: write Secret %s/%s: %s; retrying", wh->sec_ns, wh->sec_name,
		             kd_error_msg(err));
		sync_soon(wh, KD_WH_RETRY_MS);
		return;
	}
	kd_log_info("webhook: certificate for %s written to Secret %s/%s", wh->names[2], wh->sec_ns,
	            wh->sec_name);
	secret_get(wh); /* serve exactly what is stored */
}

/* ---- caBundle ------------------------------------------------------------------------------- */

static char *bundle_b64(struct kd_as_webhook *wh)
{
	kd_autofree char *pem =
	    kd_xasprintf("%s%s", wh->certs.ca_pem, wh->prev_ca ? wh->prev_ca : "");
	return kd_base64_encode(pem, strlen(pem));
}

static void bundle_patched(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	(void)resp;
	struct kd_as_webhook *wh = arg;
	wh->busy = false;
	if (wh->as->stopping)
		return;
	if (err) {
		kd_log_warn("webhook: caBundle of %s: %s; retrying", wh->as->cfg.webhook_config,
		            kd_error_msg(err));
		sync_soon(wh, KD_WH_RETRY_MS);
		return;
	}
	wh->bundle_ok = true;
	kd_log_info("webhook: caBundle of MutatingWebhookConfiguration %s written",
	            wh->as->cfg.webhook_config);
}

static void config_read(struct kd_k8s_response *resp, struct kd_error *err, void *arg)
{
	struct kd_as_webhook *wh = arg;
	wh->busy = false;
	if (wh->as->stopping)
		return;
	if (err) {
		if (err->http_status != 404 || !wh->warned_no_config)
			kd_log_warn(
			    "webhook: MutatingWebhookConfiguration %s: %s%s",
			    wh->as->cfg.webhook_config, kd_error_msg(err),
			    err->http_status == 404
			        ? " (apply manifests/; Deployments are created as asked meanwhile)"
			        : "");
		wh->warned_no_config = err->http_status == 404;
		sync_soon(wh, err->http_status == 404 ? KD_WH_SYNC_MS : KD_WH_RETRY_MS);
		return;
	}
	wh->warned_no_config = false;
	kd_autofree char *b64 = bundle_b64(wh);
	json_object *hooks = kd_json_get_array(resp->body, "webhooks");
	json_object *ops = json_object_new_array();
	size_t ours = 0;
	for (size_t i = 0; hooks && i < json_object_array_length(hooks); i++) {
		json_object *h = json_object_array_get_idx(hooks, i);
		const char *ns = kd_json_get_string(h, "clientConfig.service.namespace");
		const char *name = kd_json_get_string(h, "clientConfig.service.name");
		const char *hname = kd_json_get_string(h, "name");
		if (!ns || !name || !hname || strcmp(ns, wh->svc_ns) != 0 ||
		    strcmp(name, wh->svc_name) != 0)
			continue;
		ours++;
		const char *have = kd_json_get_string(h, "clientConfig.caBundle");
		if (have && strcmp(have, b64) == 0)
			continue;
		char path[64];
		json_object *t = json_object_new_object();
		snprintf(path, sizeof(path), "/webhooks/%zu/name", i);
		json_object_object_add(t, "op", json_object_new_string("test"));
		json_object_object_add(t, "path", json_object_new_string(path));
		json_object_object_add(t, "value", json_object_new_string(hname));
		json_object_array_add(ops, t);
		json_object *a = json_object_new_object();
		snprintf(path, sizeof(path), "/webhooks/%zu/clientConfig/caBundle", i);
		json_object_object_add(a, "op", json_object_new_string("add"));
		json_object_object_add(a, "path", json_object_new_string(path));
		json_object_object_add(a, "value", json_object_new_string(b64));
		json_object_array_add(ops, a);
	}
	if (ours == 0 && !wh->warned_no_config) {
		kd_log_warn("webhook: no webhook of MutatingWebhookConfiguration %s calls Service "
		            "%s/%s",
		            wh->as->cfg.webhook_config, wh->svc_ns, wh->svc_name);
	}
	if (json_object_array_length(ops) == 0) {
		wh->bundle_ok = ours > 0;
		json_object_put(ops);
		sync_soon(wh, KD_WH_SYNC_MS);
		return;
	}
	struct kd_k8s_request kr = {.verb = KD_K8S_PATCH,
	                            .res = &mwc_res,
	                            .name = wh->as->cfg.webhook_config,
	                            .patch_type = KD_K8S_PATCH_JSON,
	                            .body = ops};
	kd_autoerr struct kd_error *e2 = NULL;
	if (kd_k8s_submit(wh->as->k8s, &kr, bundle_patched, wh, &e2) < 0) {
		kd_log_warn("webhook: caBundle of %s: %s", wh->as->cfg.webhook_config,
		            kd_error_msg(e2));
		sync_soon(wh, KD_WH_RETRY_MS);
	} else {
		wh->busy = true;
		sync_soon(wh, KD_WH_SYNC_MS);
	}
	json_object_put(ops);
}

static void bundle_sync(struct kd_as_webhook *wh)
{
	if (wh->busy || !wh->certs.ca_pem)
		return;
	struct kd_k8s_request kr = {
	    .verb = KD_K8S_GET, .res = &mwc_res, .name = wh->as->cfg.webhook_config};
	kd_autoerr struct kd_error *err = NULL;
	if (kd_k8s_submit(wh->as->k8s, &kr, config_read, wh, &err) < 0) {
		kd_log_warn("webhook: read %s: %s", wh->as->cfg.webhook_config, kd_error_msg(err));
		sync_soon(wh, KD_WH_RETRY_MS);
		return;
	}
	wh->busy = true;
}

/* Every KD_WH_SYNC_MS (sooner after a failure): the Secret first (rotation, another writer),
 * then the caBundle. */
static void on_timer(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	struct kd_as_webhook *wh = arg;
	if (wh->busy) {
		sync_soon(wh, KD_WH_RETRY_MS);
		return;
	}
	secret_get(wh);
}

/* ---- start / stop --------------------------------------------------------------------------- */

static int split_ref(const char *opt, const char *v, char **ns, char **name, struct kd_error **err)
{
	const char *dot = v ? strchr(v, '.') : NULL;
	if (!dot || dot == v || !dot[1] || strchr(dot + 1, '.'))
		return kd_error_set(err, EINVAL, 0, "%s: \"%s\" is not NAME.NAMESPACE", opt,
		                    v ? v : "");
	*name = kd_xstrndup(v, (size_t)(dot - v));
	*ns = kd_xstrdup(dot + 1);
	return 0;
}

int kd_as_check_ref(const char *opt, const char *value, struct kd_error **err)
{
	char *a = NULL, *b = NULL;
	int rc = split_ref(opt, value, &a, &b, err);
	free(a);
	free(b);
	return rc;
}

int kd_as_webhook_check(const char *service, const char *secret, struct kd_error **err)
{
	int rc = kd_as_check_ref("--webhook-service", service, err);
	return rc < 0 ? rc : kd_as_check_ref("--webhook-secret", secret, err);
}

int kd_as_webhook_start(struct kd_as *as, struct kd_error **err)
{
	if (as->cfg.webhook_port == 0)
		return 0;
	struct kd_as_webhook *wh = kd_xcalloc(1, sizeof(*wh));
	wh->as = as;
	if (split_ref("--webhook-service", as->cfg.webhook_service, &wh->svc_ns, &wh->svc_name,
	              err) < 0 ||
	    split_ref("--webhook-secret", as->cfg.webhook_secret, &wh->sec_ns, &wh->sec_name, err) <
	        0) {
		as->webhook = wh;
		kd_as_webhook_stop(as);
		return -EINVAL;
	}
	/* the names the API Server may dial the Service by; names[2] is what it uses */
	wh->names[0] = kd_xasprintf("%s", wh->svc_name);
	wh->names[1] = kd_xasprintf("%s.%s", wh->svc_name, wh->svc_ns);
	wh->names[2] = kd_xasprintf("%s.%s.svc", wh->svc_name, wh->svc_ns);
	wh->names[3] = kd_xasprintf("%s.%s.svc.cluster.local", wh->svc_name, wh->svc_ns);
	wh->timer = kd_loop_timer_new(as->loop, on_timer, wh);
	as->webhook = wh;
	secret_get(wh);
	return 0;
}

void kd_as_webhook_stop(struct kd_as *as)
{
	struct kd_as_webhook *wh = as->webhook;
	if (!wh)
		return;
	as->webhook = NULL;
	kd_http_server_free(wh->srv); /* held reviews: lookup_abort */
	for (struct wh_lookup *l = wh->lookups, *next; l; l = next) {
		next = l->next;
		l->wh = NULL;
		if (!l->k8s_done)
			continue; /* lookup_done frees it when kd_k8s reports */
		lookup_free(l);
	}
	kd_loop_timer_free(wh->timer);
	for (size_t i = 0; i < KD_ARRAY_SIZE(wh->names); i++)
		free(wh->names[i]);
	kd_certs_fini(&wh->certs);
	free(wh->prev_ca);
	free(wh->secret_rv);
	free(wh->svc_ns);
	free(wh->svc_name);
	free(wh->sec_ns);
	free(wh->sec_name);
	free(wh);
}

void kd_as_webhook_metrics(const struct kd_as *as, struct kd_prom *p)
{
	const struct kd_as_webhook *wh = as->webhook;
	if (!wh)
		return;
	for (size_t i = 0; i < WH_RESULTS; i++) {
		char labels[48];
		snprintf(labels, sizeof(labels), "{result=\"%s\"}", result_names[i]);
		if (i == 0)
			kd_prom_add(p, "kd_autoscaler_webhook_reviews_total", "counter",
			            "Admission reviews of the webhook, by result (zeroed: a kd "
			            "revision's Deployment created with replicas 0).",
			            labels, wh->results[i]);
		else
			kd_prom_sample(p, "kd_autoscaler_webhook_reviews_total", labels,
			               wh->results[i]);
	}
	kd_prom_add(p, "kd_autoscaler_webhook_rotations_total", "counter",
	            "Serving certificates replaced while running.", NULL, wh->rotations);
	kd_prom_add(p, "kd_autoscaler_webhook_ca_bundle_ok", "gauge",
	            "1 when the webhook configuration trusts the served certificate.", NULL,
	            wh->bundle_ok ? 1 : 0);
}
