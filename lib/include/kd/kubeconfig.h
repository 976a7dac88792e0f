/* kd/kubeconfig.h: Kubernetes connection settings for the REST client (kd/k8s.h): parsed from a
 * kubeconfig file (YAML via libyaml, or JSON), from the in-cluster service account, or chosen
 * automatically; and the bearer token, re-read from its file when the file changes. */
#ifndef KD_KUBECONFIG_H
#define KD_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "kd/common.h"
#include "kd/error.h"

/* Connection settings. Returned owned by the kd_k8s_config_* constructors; free with
 * kd_k8s_config_free. All strings and blobs are owned by the config; tests may build one with
 * kd_k8s_config_new and fill fields (kd_xstrdup) directly. */
struct kd_k8s_config {
	char *server;  /* "https://host:port" (no trailing slash) */
	char *ca_file; /* PEM CA bundle path, or NULL */
	char *ca_data; /* PEM CA bundle (decoded certificate-authority-data), or NULL */
	size_t ca_len;
	bool insecure_skip_tls_verify;
	char *cert_file; /* client certificate (PEM) path, or NULL */
	char *cert_data; /* client certificate (PEM) bytes, or NULL */
	size_t cert_len;
	char *key_file; /* client key (PEM) path, or NULL */
	char *key_data; /* client key (PEM) bytes, or NULL */
	size_t key_len;
	char *token;      /* bearer token, or NULL (ignored when token_file is set) */
	char *token_file; /* bearer token file, re-read when its mtime/size/inode change */
	char *namespace;  /* default namespace of the context / service account ("default") */
	char *source; /* where this came from, for messages: "kubeconfig /x/config", "in-cluster" */
};

/* Returns owned (free with kd_k8s_config_free); server copied; namespace "default". */
KD_API struct kd_k8s_config *kd_k8s_config_new(const char *server);
/* Deep copy. Returns owned. */
KD_API struct kd_k8s_config *kd_k8s_config_dup(const struct kd_k8s_config *cfg);
KD_API void kd_k8s_config_free(struct kd_k8s_config *cfg);

/* Parses the kubeconfig at path (YAML or JSON): `context` (or current-context when NULL), its
 * cluster (server, certificate-authority[-data], insecure-skip-tls-verify) and user
 * (client-certificate[-data], client-key[-data], token, tokenFile). Relative file paths resolve
 * against the kubeconfig's directory. Not supported (error naming the field): exec and
 * auth-provider plugins, username/password. Only the first file of a colon-separated list is read.
 * On success *out is owned. Errors name the file and the field: `kubeconfig /x/config: context
 * "dev": no such context` (ENOENT), bad YAML EINVAL with line/column, missing file ENOENT. */
KD_API int kd_k8s_config_from_kubeconfig(const char *path, const char *context,
                                         struct kd_k8s_config **out, struct kd_error **err);

/* Same on in-memory YAML/JSON text (for tests and fuzzing): name is used in messages (the file
 * name), dir resolves relative file paths (NULL: "."). Referenced files must still exist. */
KD_API int kd_k8s_config_from_kubeconfig_data(const char *text, size_t len, const char *name,
                                              const char *dir, const char *context,
                                              struct kd_k8s_config **out, struct kd_error **err);

/* Default service-account directory of a pod. */
#define KD_K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* In-cluster config: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, token file
 * <dir>/token (re-read on change), CA <dir>/ca.crt, namespace from <dir>/namespace ("default" if
 * absent). kd_k8s_config_in_cluster uses KD_K8S_SA_DIR; the _at variant takes the directory (for
 * tests). ENOENT when the env variables or the token file are missing. *out owned. */
KD_API int kd_k8s_config_in_cluster(struct kd_k8s_config **out, struct kd_error **err);
KD_API int kd_k8s_config_in_cluster_at(const char *sa_dir, struct kd_k8s_config **out,
                                       struct kd_error **err);

/* $KUBECONFIG (its first entry) if set, else in-cluster if KUBERNETES_SERVICE_HOST is set, else
 * ~/.kube/config. The error says what was tried. *out owned. */
KD_API int kd_k8s_config_auto(struct kd_k8s_config **out, struct kd_error **err);

/* What a component's --kubeconfig/--context options name: path (NULL or "": kd_k8s_config_auto)
 * and context (NULL or "": current-context). *out owned. */
KD_API int kd_k8s_config_load(const char *path, const char *context, struct kd_k8s_config **out,
                              struct kd_error **err);

/* The bearer token of a config, cached: caller storage, zeroed to start, kd_k8s_token_fini to
 * free. Not thread-safe (the client serialises its use under a lock). */
struct kd_k8s_token {
	char *token;    /* last good token read from the file (owned), or NULL */
	struct stat st; /* the file when it was read */
	bool st_valid;
};

/* The token to send: cfg->token when cfg has no token_file; else the content of token_file
 * (trailing whitespace cut), read again whenever its mtime, size or inode changed. While the file
 * cannot be read (being rotated), the last good token stays. NULL with *err "token file <path>:
 * <strerror>" when there is none. Borrowed; valid until the next call or kd_k8s_token_fini. */
KD_API const char *kd_k8s_token_current(struct kd_k8s_token *t, const struct kd_k8s_config *cfg,
                                        struct kd_error **err);
KD_API void kd_k8s_token_fini(struct kd_k8s_token *t);

#endif /* KD_KUBECONFIG_H */
