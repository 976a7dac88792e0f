/* autoscaler-shim/token.c: --chan-token-secret: the channels' bearer token kept in a Secret that
 * kd-autoscaler makes when it is missing (manifests/: kd-activator and kd-node read the same
 * Secret as $KD_CHAN_TOKEN and start once it exists).
 *
 * Decisions made here:
 *  - Read once at start, before any channel or server: the token a process runs with never
 *    changes under it (rotating it is a restart of all three, manifests/README.md).
 *  - Missing: 32 random bytes (getrandom), hex, created with our labels; a 409 means another
 *    incarnation made it first: read that one. A Secret without the key, or with a value the
 *    check of --chan-token refuses, is an error (exit 1): nothing overwrites a user's Secret.
 *  - The API Server not answering is retried every second for KD_AS_TOKEN_WAIT_S, then an
 *    error (the Deployment restarts us).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "autoscaler.h"
#include "kd/certs.h"
#include "kd/check.h"
#include "kd/json.h"
#include "kd/log.h"

#define KD_AS_TOKEN_WAIT_S 30
#define KD_AS_TOKEN_KEY    "token"

static const struct kd_k8s_resource secrets_res = {"", "v1", "secrets", true};

static json_object *token_secret(const char *ns, const char *name, const char *token)
{
	json_object *s = json_object_new_object();
	json_object_object_add(s, "apiVersion", json_object_new_string("v1"));
	json_object_object_add(s, "kind", json_object_new_string("Secret"));
	json_object *md = json_object_new_object();
	json_object_object_add(md, "name", json_object_new_string(name));
	json_object_object_add(md, "namespace", json_object_new_string(ns));
	json_object *labels = json_object_new_object();
	json_object_object_add(labels, "app.kubernetes.io/part-of",
	                       json_object_new_string("kubedirect"));
	json_object_object_add(md, "labels", labels);
	json_object_object_add(s, "metadata", md);
	json_object_object_add(s, "type", json_object_new_string("Opaque"));
	json_object *data = json_object_new_object();
	kd_autofree char *b64 = kd_base64_encode(token, strlen(token));
	json_object_object_add(data, KD_AS_TOKEN_KEY, json_object_new_string(b64 ? b64 : ""));
	json_object_object_add(s, "data", data);
	return s;
}

/* The token in secret (owned), or NULL with *err. */
static char *token_of(json_object *secret, const char *ref, struct kd_error **err)
{
	const char *b64 = kd_json_get_string(secret, "data." KD_AS_TOKEN_KEY);
	char *tok = NULL;
	size_t len = 0;
	if (!b64 || kd_base64_decode(b64, strlen(b64), &tok, &len) < 0) {
		kd_error_set(err, EINVAL, 0, "--chan-token-secret %s: no key \"%s\" holding base64",
		             ref, KD_AS_TOKEN_KEY);
		return NULL;
	}
	if (strlen(tok) != len || kd_check_chan_token(tok, false, false, err) < 0) {
		free(tok);
		kd_error_wrap(err, "--chan-token-secret %s, key \"%s\"", ref, KD_AS_TOKEN_KEY);
		return NULL;
	}
	return tok;
}

int kd_as_chan_token_from_secret(struct kd_as *as, struct kd_error **err)
{
	const char *ref = as->cfg.chan_token_secret;
	if (!ref || !*ref)
		return 0;
	if (as->cfg.chan_token && *as->cfg.chan_token) {
		kd_log_info("--chan-token set: Secret %s not read", ref);
		return 0;
	}
	const char *dot = strchr(ref, '.');
	kd_autofree char *name = kd_xstrndup(ref, (size_t)(dot - ref)); /* checked at start */
	const char *ns = dot + 1;
	for (int attempt = 0;; attempt++) {
		json_object *got = NULL;
		kd_autoerr struct kd_error *e = NULL;
		int rc = kd_k8s_get(as->k8s, &secrets_res, ns, name, &got, &e);
		if (rc == 0) {
			char *tok = token_of(got, ref, err);
			json_object_put(got);
			if (!tok)
				return -EINVAL;
			free(as->cfg.chan_token);
			as->cfg.chan_token = tok;
			kd_log_info("channels: bearer token from Secret %s/%s", ns, name);
			return 0;
		}
		if (e && e->http_status == 404) {
			unsigned char rnd[32];
			if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
				return kd_error_set(err, errno, 0, "getrandom: %s",
				                    strerror(errno));
			char hex[2 * sizeof(rnd) + 1];
			for (size_t i = 0; i < sizeof(rnd); i++)
				snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
			json_object *body = token_secret(ns, name, hex);
			struct kd_k8s_request req = {
			    .verb = KD_K8S_CREATE, .res = &secrets_res, .ns = ns, .body = body};
			kd_autoerr struct kd_error *ce = NULL;
			rc = kd_k8s_do(as->k8s, &req, NULL, &ce);
			json_object_put(body);
			if (rc == 0) {
				free(as->cfg.chan_token);
				as->cfg.chan_token = kd_xstrdup(hex);
				kd_log_info("channels: made the bearer token, Secret %s/%s", ns,
				            name);
				return 0;
			}
			if (ce && ce->http_status == 409)
				continue; /* made meanwhile: read it */
			if (ce && ce->http_status == 403)
				return kd_error_set(err, EACCES, 403, "--chan-token-secret %s: %s",
				                    ref, kd_error_msg(ce));
			kd_log_warn("channels: create Secret %s/%s: %s", ns, name,
			            kd_error_msg(ce));
		} else if (e && e->http_status == 403) {
			return kd_error_set(err, EACCES, 403, "--chan-token-secret %s: %s", ref,
			                    kd_error_msg(e));
		} else {
			kd_log_warn("channels: read Secret %s/%s: %s", ns, name, kd_error_msg(e));
		}
		if (attempt >= KD_AS_TOKEN_WAIT_S)
			return kd_error_set(err, ETIMEDOUT, 0,
			                    "--chan-token-secret %s: no answer in %d s", ref,
			                    KD_AS_TOKEN_WAIT_S);
		sleep(1);
	}
}
