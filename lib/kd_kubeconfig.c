/* lib/kd_kubeconfig.c: Kubernetes connection settings (see kd/kubeconfig.h): kubeconfig files
 * (YAML via libyaml, or JSON), the in-cluster service account, and the bearer token re-read from
 * its file when it changes. */
#include "kd/kubeconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "kd/json.h"
#include "kd/log.h"

#define MAX_CONFIG_FILE (16u * 1024u * 1024u)

/* ------------------------------------------------------------------------------------------ */
/* Files, base64                                                                               */

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* Decodes standard or URL-safe base64, ignoring whitespace. Returns owned or NULL if invalid. */
static char *b64_decode(const char *s, size_t *out_len)
{
	size_t n = strlen(s);
	char *out = kd_xmalloc(n / 4 * 3 + 4);
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0;
	bool pad = false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t')
			continue;
		if (ch == '=') {
			pad = true;
			continue;
		}
		int v = b64val(ch);
		if (v < 0 || pad) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	if (bits >= 6) {
		free(out);
		return NULL;
	}
	out[o] = '\0';
	*out_len = o;
	return out;
}

/* ------------------------------------------------------------------------------------------ */
/* Config                                                                                      */

struct kd_k8s_config *kd_k8s_config_new(const char *server)
{
	struct kd_k8s_config *cfg = kd_xcalloc(1, sizeof(*cfg));
	cfg->server = kd_xstrdup(server ? server : "");
	cfg->namespace = kd_xstrdup("default");
	return cfg;
}

static char *dupn(const char *s)
{
	return s ? kd_xstrdup(s) : NULL;
}

static char *dupmem(const char *p, size_t n)
{
	if (!p)
		return NULL;
	char *d = kd_xmalloc(n + 1);
	memcpy(d, p, n);
	d[n] = '\0';
	return d;
}

/* The strings a kd_k8s_config owns; its PEM data (ca_data, cert_data, key_data, sized by their
 * _len members) are the other buffers it owns. kd_k8s_config_dup copies and kd_k8s_config_free
 * frees exactly these. */
#define CFG_STRINGS(c)                                                                             \
	{                                                                                          \
		&(c)->server, &(c)->ca_file, &(c)->cert_file, &(c)->key_file, &(c)->token,         \
		    &(c)->token_file, &(c)->namespace, &(c)->source                                \
	}

struct kd_k8s_config *kd_k8s_config_dup(const struct kd_k8s_config *s)
{
	struct kd_k8s_config *d = kd_xmalloc(sizeof(*d));
	*d = *s; /* the lengths and flags; every buffer is replaced by its copy below */
	char **strings[] = CFG_STRINGS(d);
	for (size_t i = 0; i < KD_ARRAY_SIZE(strings); i++)
		*strings[i] = dupn(*strings[i]);
	d->ca_data = dupmem(s->ca_data, s->ca_len);
	d->cert_data = dupmem(s->cert_data, s->cert_len);
	d->key_data = dupmem(s->key_data, s->key_len);
	return d;
}

void kd_k8s_config_free(struct kd_k8s_config *cfg)
{
	if (!cfg)
		return;
	char **strings[] = CFG_STRINGS(cfg);
	for (size_t i = 0; i < KD_ARRAY_SIZE(strings); i++)
		free(*strings[i]);
	free(cfg->ca_data);
	free(cfg->cert_data);
	free(cfg->key_data);
	free(cfg);
}

static void cfg_freep(struct kd_k8s_config **c)
{
	kd_k8s_config_free(*c);
}
#define autocfg __attribute__((cleanup(cfg_freep)))

/* YAML document -> json-c. Plain scalars true/false/null become typed values, every other scalar
 * a string. Depth and node budget stop alias bombs. */
static struct json_object *yaml_to_json(yaml_document_t *doc, yaml_node_t *node, int depth,
                                        size_t *budget)
{
	if (!node || depth > 64 || *budget == 0)
		return NULL;
	(*budget)--;
	switch (node->type) {
	case YAML_SCALAR_NODE: {
		const char *v = (const char *)node->data.scalar.value;
		size_t len = node->data.scalar.length;
		if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
			if (!strcmp(v, "true") || !strcmp(v, "True"))
				return json_object_new_boolean(1);
			if (!strcmp(v, "false") || !strcmp(v, "False"))
				return json_object_new_boolean(0);
			if (!strcmp(v, "null") || !strcmp(v, "~") || len == 0)
				return NULL;
			/* Numbers stay strings: a cluster named 1 or a numeric token must still
			 * read as a string (kd_json_get_int64 accepts digit strings). */
		}
		return json_object_new_string_len(v, (int)len);
	}
	case YAML_SEQUENCE_NODE: {
		struct json_object *arr = json_object_new_array();
		for (yaml_node_item_t *it = node->data.sequence.items.start;
		     it < node->data.sequence.items.top; it++)
			json_object_array_add(
			    arr,
			    yaml_to_json(doc, yaml_document_get_node(doc, *it), depth + 1, budget));
		return arr;
	}
	case YAML_MAPPING_NODE: {
		struct json_object *obj = json_object_new_object();
		for (yaml_node_pair_t *pr = node->data.mapping.pairs.start;
		     pr < node->data.mapping.pairs.top; pr++) {
			yaml_node_t *k = yaml_document_get_node(doc, pr->key);
			if (!k || k->type != YAML_SCALAR_NODE)
				continue;
			json_object_object_add(obj, (const char *)k->data.scalar.value,
			                       yaml_to_json(doc,
			                                    yaml_document_get_node(doc, pr->value),
			                                    depth + 1, budget));
		}
		return obj;
	}
	default:
		return NULL;
	}
}

/* Parses YAML (or JSON) text into json-c. 0 or -EINVAL with *err naming `what`. */
static int parse_yaml(const char *text, size_t len, const char *what, struct json_object **out,
                      struct kd_error **err)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&parser))
		abort();
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		int rc =
		    kd_error_set(err, EINVAL, 0, "%s: invalid YAML at line %zu column %zu: %s",
		                 what, parser.problem_mark.line + 1, parser.problem_mark.column + 1,
		                 parser.problem ? parser.problem : "parse error");
		yaml_parser_delete(&parser);
		return rc;
	}
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	size_t budget = 200000;
	struct json_object *obj = root ? yaml_to_json(&doc, root, 0, &budget) : NULL;
	bool exhausted = budget == 0;
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (exhausted) {
		json_object_put(obj);
		return kd_error_set(err, EINVAL, 0, "%s: document too large or too deep", what);
	}
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return kd_error_set(err, EINVAL, 0, "%s: not a YAML mapping", what);
	}
	*out = obj;
	return 0;
}

/* Finds the entry named `name` in the array at key of root; returns its `field` member (an
 * owned reference; an empty object if the entry has no such member), or NULL. */
static struct json_object *find_named(struct json_object *root, const char *key, const char *name,
                                      const char *field)
{
	struct json_object *arr = kd_json_get_array(root, key);
	size_t n = arr ? json_object_array_length(arr) : 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);
		const char *en = kd_json_get_string(e, "name");
		if (en && !strcmp(en, name)) {
			struct json_object *v = kd_json_get_object(e, field);
			return v ? json_object_get(v) : json_object_new_object();
		}
	}
	return NULL;
}

static char *resolve_path(const char *dir, const char *p)
{
	if (p[0] == '/' || !dir)
		return kd_xstrdup(p);
	return kd_xasprintf("%s/%s", dir, p);
}

/* Reads "<field>" (a path, checked for readability) and "<field>-data" (base64) of obj. */
static int file_or_data(struct json_object *obj, const char *field, const char *dir,
                        const char *what, char **file_out, char **data_out, size_t *len_out,
                        struct kd_error **err)
{
	kd_autofree char *data_key = kd_xasprintf("%s-data", field);
	const char *data = kd_json_get_string(obj, data_key);
	if (data && *data) {
		size_t n = 0;
		char *dec = b64_decode(data, &n);
		if (!dec)
			return kd_error_set(err, EINVAL, 0, "%s: %s: invalid base64", what,
			                    data_key);
		*data_out = dec;
		*len_out = n;
		return 0;
	}
	const char *file = kd_json_get_string(obj, field);
	if (file && *file) {
		char *p = resolve_path(dir, file);
		if (access(p, R_OK) < 0) {
			int e = errno;
			kd_error_set(err, e, 0, "%s: %s %s: %s", what, field, p, strerror(e));
			free(p);
			return -e;
		}
		*file_out = p;
	}
	return 0;
}

int kd_k8s_config_from_kubeconfig(const char *path, const char *context, struct kd_k8s_config **out,
                                  struct kd_error **err)
{
	if (!path || !*path)
		return kd_error_set(err, EINVAL, 0, "kubeconfig: no path given");
	/* Only the first entry of a KUBECONFIG-style list. */
	kd_autofree char *first = kd_xstrndup(path, strcspn(path, ":"));
	kd_autofree char *text = NULL;
	size_t len = 0;
	int rc = kd_read_file(first, MAX_CONFIG_FILE, &text, &len);
	if (rc < 0)
		return kd_error_set(err, -rc, 0, "kubeconfig %s: %s", first, strerror(-rc));
	const char *slash = strrchr(first, '/');
	kd_autofree char *dir =
	    slash ? kd_xstrndup(first, (size_t)(slash - first)) : kd_xstrdup(".");
	if (!*dir) {
		free(dir);
		dir = kd_xstrdup("/");
	}
	return kd_k8s_config_from_kubeconfig_data(text, len, first, dir, context, out, err);
}

int kd_k8s_config_from_kubeconfig_data(const char *text, size_t len, const char *name,
                                       const char *dir, const char *context,
                                       struct kd_k8s_config **out, struct kd_error **err)
{
	kd_autofree char *what = kd_xasprintf("kubeconfig %s", name ? name : "(memory)");
	if (!dir)
		dir = ".";
	if (len > MAX_CONFIG_FILE)
		return kd_error_set(err, EFBIG, 0, "%s: larger than %u bytes", what,
		                    MAX_CONFIG_FILE);
	kd_autojson struct json_object *root = NULL;
	int rc = parse_yaml(text, len, what, &root, err);
	if (rc < 0)
		return rc;

	const char *ctx_name = context;
	if (!ctx_name || !*ctx_name)
		ctx_name = kd_json_get_string(root, "current-context");
	if (!ctx_name || !*ctx_name)
		return kd_error_set(err, EINVAL, 0,
		                    "%s: current-context is not set and no context given", what);
	kd_autojson struct json_object *ctx = find_named(root, "contexts", ctx_name, "context");
	if (!ctx)
		return kd_error_set(err, ENOENT, 0, "%s: context \"%s\": no such context", what,
		                    ctx_name);
	const char *cluster_name = kd_json_get_string(ctx, "cluster");
	if (!cluster_name)
		return kd_error_set(err, EINVAL, 0, "%s: context \"%s\": missing cluster", what,
		                    ctx_name);
	kd_autojson struct json_object *cluster =
	    find_named(root, "clusters", cluster_name, "cluster");
	if (!cluster)
		return kd_error_set(err, ENOENT, 0, "%s: cluster \"%s\": no such cluster", what,
		                    cluster_name);
	kd_autofree char *cwhat = kd_xasprintf("%s: cluster \"%s\"", what, cluster_name);
	const char *server = kd_json_get_string(cluster, "server");
	if (!server || !*server)
		return kd_error_set(err, EINVAL, 0, "%s: missing server", cwhat);
	if (strncmp(server, "https://", 8) && strncmp(server, "http://", 7))
		return kd_error_set(err, EINVAL, 0, "%s: server \"%s\": not an http(s) URL", cwhat,
		                    server);

	autocfg struct kd_k8s_config *cfg = kd_k8s_config_new(NULL);
	free(cfg->server);
	size_t sl = strlen(server);
	while (sl > 0 && server[sl - 1] == '/')
		sl--;
	cfg->server = kd_xstrndup(server, sl);
	cfg->source = kd_xstrdup(what);
	bool b = false;
	if (kd_json_get_bool(cluster, "insecure-skip-tls-verify", &b) == 0)
		cfg->insecure_skip_tls_verify = b;
	rc = file_or_data(cluster, "certificate-authority", dir, cwhat, &cfg->ca_file,
	                  &cfg->ca_data, &cfg->ca_len, err);
	if (rc < 0)
		return rc;
	const char *ns = kd_json_get_string(ctx, "namespace");
	if (ns && *ns) {
		free(cfg->namespace);
		cfg->namespace = kd_xstrdup(ns);
	}

	const char *user_name = kd_json_get_string(ctx, "user");
	if (user_name && *user_name) {
		kd_autojson struct json_object *user = find_named(root, "users", user_name, "user");
		if (!user)
			return kd_error_set(err, ENOENT, 0, "%s: user \"%s\": no such user", what,
			                    user_name);
		kd_autofree char *uwhat = kd_xasprintf("%s: user \"%s\"", what, user_name);
		rc = file_or_data(user, "client-certificate", dir, uwhat, &cfg->cert_file,
		                  &cfg->cert_data, &cfg->cert_len, err);
		if (rc < 0)
			return rc;
		rc = file_or_data(user, "client-key", dir, uwhat, &cfg->key_file, &cfg->key_data,
		                  &cfg->key_len, err);
		if (rc < 0)
			return rc;
		bool has_cert = cfg->cert_file || cfg->cert_data;
		bool has_key = cfg->key_file || cfg->key_data;
		if (has_cert != has_key)
			return kd_error_set(
			    err, EINVAL, 0,
			    "%s: client-certificate and client-key must be given together", uwhat);
		const char *token = kd_json_get_string(user, "token");
		const char *token_file = kd_json_get_string(user, "tokenFile");
		if (token && *token) {
			cfg->token = kd_xstrdup(token);
		} else if (token_file && *token_file) {
			cfg->token_file = resolve_path(dir, token_file);
			if (access(cfg->token_file, R_OK) < 0) {
				int e = errno;
				return kd_error_set(err, e, 0, "%s: tokenFile %s: %s", uwhat,
				                    cfg->token_file, strerror(e));
			}
		}
		if (!cfg->token && !cfg->token_file && !has_cert) {
			if (kd_json_get(user, "exec"))
				return kd_error_set(
				    err, ENOTSUP, 0,
				    "%s: exec: credential plugins are not supported", uwhat);
			if (kd_json_get(user, "auth-provider"))
				return kd_error_set(err, ENOTSUP, 0,
				                    "%s: auth-provider: not supported", uwhat);
			if (kd_json_get(user, "username"))
				return kd_error_set(
				    err, ENOTSUP, 0,
				    "%s: username/password: basic auth is not supported", uwhat);
		}
	}
	*out = cfg;
	cfg = NULL;
	return 0;
}

int kd_k8s_config_in_cluster_at(const char *sa_dir, struct kd_k8s_config **out,
                                struct kd_error **err)
{
	if (!sa_dir)
		sa_dir = KD_K8S_SA_DIR;
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	if (!host || !*host || !port || !*port)
		return kd_error_set(err, ENOENT, 0,
		                    "in-cluster config: KUBERNETES_SERVICE_HOST/PORT are not set");
	autocfg struct kd_k8s_config *cfg = kd_k8s_config_new(NULL);
	free(cfg->server);
	if (strchr(host, ':'))
		cfg->server = kd_xasprintf("https://[%s]:%s", host, port);
	else
		cfg->server = kd_xasprintf("https://%s:%s", host, port);
	cfg->source = kd_xasprintf("in-cluster (%s)", sa_dir);
	cfg->token_file = kd_xasprintf("%s/token", sa_dir);
	if (access(cfg->token_file, R_OK) < 0) {
		int e = errno;
		return kd_error_set(err, e, 0, "in-cluster config: %s: %s", cfg->token_file,
		                    strerror(e));
	}
	kd_autofree char *ca = kd_xasprintf("%s/ca.crt", sa_dir);
	if (access(ca, R_OK) == 0) {
		cfg->ca_file = ca;
		ca = NULL;
	}
	kd_autofree char *ns_path = kd_xasprintf("%s/namespace", sa_dir);
	kd_autofree char *ns = NULL;
	if (kd_read_file(ns_path, 4096, &ns, NULL) == 0) {
		size_t n = strlen(ns);
		while (n > 0 && (ns[n - 1] == '\n' || ns[n - 1] == ' ' || ns[n - 1] == '\r'))
			ns[--n] = '\0';
		if (n) {
			free(cfg->namespace);
			cfg->namespace = kd_xstrdup(ns);
		}
	}
	*out = cfg;
	cfg = NULL;
	return 0;
}

int kd_k8s_config_in_cluster(struct kd_k8s_config **out, struct kd_error **err)
{
	return kd_k8s_config_in_cluster_at(KD_K8S_SA_DIR, out, err);
}

int kd_k8s_config_load(const char *path, const char *context, struct kd_k8s_config **out,
                       struct kd_error **err)
{
	if (path && *path)
		return kd_k8s_config_from_kubeconfig(path, context && *context ? context : NULL,
		                                     out, err);
	return kd_k8s_config_auto(out, err);
}

int kd_k8s_config_auto(struct kd_k8s_config **out, struct kd_error **err)
{
	const char *kc = getenv("KUBECONFIG");
	if (kc && *kc)
		return kd_k8s_config_from_kubeconfig(kc, NULL, out, err);
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	if (host && *host)
		return kd_k8s_config_in_cluster(out, err);
	const char *home = getenv("HOME");
	if (!home || !*home)
		return kd_error_set(
		    err, ENOENT, 0,
		    "no Kubernetes config: KUBECONFIG, in-cluster env and HOME unset");
	kd_autofree char *p = kd_xasprintf("%s/.kube/config", home);
	int rc = kd_k8s_config_from_kubeconfig(p, NULL, out, err);
	if (rc < 0)
		kd_error_wrap(err, "no KUBECONFIG, not in a cluster");
	return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Token                                                                                       */

/* Re-reads the token file if it changed. Returns the current token. */
const char *kd_k8s_token_current(struct kd_k8s_token *t, const struct kd_k8s_config *cfg,
                                 struct kd_error **err)
{
	if (!cfg->token_file)
		return cfg->token;
	struct stat st;
	if (stat(cfg->token_file, &st) < 0) {
		int e = errno;
		if (t->token)
			return t->token; /* keep the last good token (file being rotated) */
		kd_error_set(err, e, 0, "token file %s: %s", cfg->token_file, strerror(e));
		return NULL;
	}
	if (t->token && t->st_valid && st.st_mtim.tv_sec == t->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == t->st.st_mtim.tv_nsec && st.st_size == t->st.st_size &&
	    st.st_ino == t->st.st_ino)
		return t->token;
	char *text = NULL;
	int rc = kd_read_file(cfg->token_file, 1u << 20, &text, NULL);
	if (rc < 0) {
		if (t->token)
			return t->token;
		kd_error_set(err, -rc, 0, "token file %s: %s", cfg->token_file, strerror(-rc));
		return NULL;
	}
	size_t n = text ? strlen(text) : 0;
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
		text[--n] = '\0';
	free(t->token);
	t->token = text;
	t->st = st;
	t->st_valid = true;
	kd_log_debug("k8s: loaded token from %s", cfg->token_file);
	return t->token;
}

void kd_k8s_token_fini(struct kd_k8s_token *t)
{
	free(t->token);
	memset(t, 0, sizeof(*t));
}
