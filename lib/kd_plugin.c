/* kd_plugin.c: plugin loader (dlopen, descriptor checks, config, init) and the default host table.
 */
#include "kd/plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct kd_plugin_handle {
	char *path;
	void *dl;
	const struct kd_plugin *desc;
	void *config; /* config_size bytes (at least 1), filled from desc->options */
	void *state;
};

static const char host_sig[] = {KD__BUILD_SIG_CHARS};

const char *kd_plugin_host_build_sig(void)
{
	return host_sig;
}

const char *kd_plugin_kind_name(enum kd_plugin_kind kind)
{
	switch (kind) {
	case KD_PLUGIN_DECIDER:
		return "decider";
	case KD_PLUGIN_WORKLOAD:
		return "workload";
	case KD_PLUGIN_SCHEDULER:
		return "scheduler";
	case KD_PLUGIN_RUNTIME:
		return "runtime";
	}
	return "unknown";
}

void kd_host_init(struct kd_host *host, struct kd_loop *loop, const char *component)
{
	memset(host, 0, sizeof(*host));
	host->abi_major = KD_PLUGIN_ABI_MAJOR;
	host->struct_size = sizeof(*host);
	host->component = component;
	host->log = kd_log_write;
	host->error_set = kd_error_set;
	host->loop = loop;
	host->timer_new = kd_loop_timer_new;
	host->timer_start = kd_loop_timer_start;
	host->timer_stop = kd_loop_timer_stop;
	host->timer_free = kd_loop_timer_free;
	host->now_ms = kd_loop_now_ms;
	host->post = kd_loop_post;
	host->add_fd = kd_loop_add_fd;
	host->mod_fd = kd_loop_mod_fd;
	host->del_fd = kd_loop_del_fd;
	host->k8s_new = kd_k8s_new;
	host->k8s_free = kd_k8s_free;
	host->k8s_config = kd_k8s_get_config;
	host->k8s_submit = kd_k8s_submit;
	host->informer_new = kd_informer_new;
	host->informer_start = kd_informer_start;
	host->informer_free = kd_informer_free;
	host->informer_get = kd_informer_get;
	host->informer_synced = kd_informer_synced;
	host->informer_count = kd_informer_count;
}

/* --- search path ------------------------------------------------------------------------------ */
static bool try_dir(const char *dir, size_t dirlen, const char *name, char **path, char **tried)
{
	if (dirlen == 0)
		return false;
	char *cand = kd_xasprintf("%.*s/kd-%s.so", (int)dirlen, dir, name);
	if (access(cand, F_OK) == 0) {
		*path = cand;
		return true;
	}
	char *t = kd_xasprintf("%s%s%s", *tried ? *tried : "", *tried ? ", " : "", cand);
	free(*tried);
	*tried = t;
	free(cand);
	return false;
}

int kd_plugin_find(const char *ref, char **path, struct kd_error **err)
{
	if (!ref || !*ref)
		return kd_error_set(err, EINVAL, 0, "plugin: empty name");
	if (strchr(ref, '/')) {
		*path = kd_xstrdup(ref);
		return 0;
	}
	kd_autofree char *tried = NULL;
	const char *env = getenv("KD_PLUGIN_DIR");
	while (env && *env) {
		const char *colon = strchr(env, ':');
		size_t len = colon ? (size_t)(colon - env) : strlen(env);
		if (try_dir(env, len, ref, path, &tried))
			return 0;
		env = colon ? colon + 1 : NULL;
	}
	if (try_dir(KD_PLUGIN_DEFAULT_DIR, strlen(KD_PLUGIN_DEFAULT_DIR), ref, path, &tried))
		return 0;
	return kd_error_set(err, ENOENT, 0, "plugin \"%s\" not found (tried %s; set KD_PLUGIN_DIR)",
	                    ref, tried ? tried : "nothing");
}

/* --- descriptor checks ------------------------------------------------------------------------ */
static int check_ops(const struct kd_plugin *d, const char *path, struct kd_error **err)
{
	if (!d->ops)
		return kd_error_set(err, ENOEXEC, 0, "plugin %s: descriptor has no ops", path);
	uint32_t size = *(const uint32_t *)d->ops;
	size_t min = 0;
	bool complete = true;
	switch (d->kind) {
	case KD_PLUGIN_RUNTIME: {
		const struct kd_runtime_ops *o = d->ops;
		min = offsetof(struct kd_runtime_ops, status) + sizeof(o->status);
		complete = size < min || (o->start && o->stop && o->status);
		break;
	}
	case KD_PLUGIN_DECIDER: {
		const struct kd_decider_ops *o = d->ops;
		min = offsetof(struct kd_decider_ops, forget) + sizeof(o->forget);
		complete = size < min || (o->record && o->decide && o->forget);
		break;
	}
	case KD_PLUGIN_WORKLOAD: {
		const struct kd_workload_ops *o = d->ops;
		min = offsetof(struct kd_workload_ops, forget) + sizeof(o->forget);
		complete = size < min || (o->plan && o->forget);
		break;
	}
	case KD_PLUGIN_SCHEDULER: {
		const struct kd_scheduler_ops *o = d->ops;
		min = offsetof(struct kd_scheduler_ops, release) + sizeof(o->release);
		complete = size < min || (o->node_update && o->node_remove && o->pod_bound &&
		                          o->place && o->release);
		break;
	}
	}
	if (size < min)
		return kd_error_set(err, ENOEXEC, 0,
		                    "plugin %s: %s ops are %u bytes, smaller than the minimum %zu",
		                    path, kd_plugin_kind_name(d->kind), size, min);
	if (!complete)
		return kd_error_set(err, ENOEXEC, 0, "plugin %s: %s ops lack a mandatory function",
		                    path, kd_plugin_kind_name(d->kind));
	return 0;
}

static int check_desc(const struct kd_plugin *d, const char *ref, const char *path,
                      enum kd_plugin_kind expected_kind, struct kd_error **err)
{
	if (!d)
		return kd_error_set(err, ENOEXEC, 0, "plugin %s: kd_plugin_entry returned NULL",
		                    path);
	if (d->abi_major != KD_PLUGIN_ABI_MAJOR)
		return kd_error_set(err, ENOEXEC, 0, "plugin %s: ABI major %u, host supports %u",
		                    path, d->abi_major, KD_PLUGIN_ABI_MAJOR);
	if (d->struct_size < KD_PLUGIN_MIN_SIZE)
		return kd_error_set(err, ENOEXEC, 0,
		                    "plugin %s: descriptor struct_size %u is smaller than the "
		                    "minimum %zu",
		                    path, d->struct_size, (size_t)KD_PLUGIN_MIN_SIZE);
	if (!d->name || !*d->name)
		return kd_error_set(err, ENOEXEC, 0, "plugin %s: descriptor has an empty name",
		                    path);
	if (!strchr(ref, '/') && strcmp(d->name, ref) != 0)
		return kd_error_set(err, ENOEXEC, 0,
		                    "plugin %s: descriptor is named \"%s\", expected \"%s\"", path,
		                    d->name, ref);
	if (d->kind != expected_kind)
		return kd_error_set(err, ENOEXEC, 0, "plugin %s: kind is %s (%d), expected %s",
		                    path, kd_plugin_kind_name(d->kind), (int)d->kind,
		                    kd_plugin_kind_name(expected_kind));
	if (!d->build_sig || strcmp(d->build_sig, host_sig) != 0)
		return kd_error_set(err, ENOEXEC, 0,
		                    "plugin %s: build signature \"%s\" does not match the host's "
		                    "\"%s\" (rebuild the plugin against this libkd)",
		                    path, d->build_sig ? d->build_sig : "(null)", host_sig);
	if (!d->init || !d->fini)
		return kd_error_set(err, ENOEXEC, 0, "plugin %s: descriptor lacks init or fini",
		                    path);
	int rc = check_ops(d, path, err);
	if (rc)
		return rc;
	rc = kd_config_validate_table(d->options, d->config_size, err);
	if (rc)
		return kd_error_wrap(err, "plugin %s: config table", path);
	return 0;
}

/* --- load / unload ---------------------------------------------------------------------------- */
static void handle_free(struct kd_plugin_handle *h)
{
	if (h->config) {
		kd_config_free(h->desc ? h->desc->options : NULL, h->config);
		free(h->config);
	}
	if (h->dl)
		dlclose(h->dl);
	free(h->path);
	free(h);
}

int kd_plugin_load(const char *ref, enum kd_plugin_kind expected_kind, const char *config_json,
                   const struct kd_host *host, struct kd_plugin_handle **handle,
                   struct kd_error **err)
{
	char *path = NULL;
	kd_autofree char *what = NULL; /* "plugin <name>" for config messages */
	int rc = kd_plugin_find(ref, &path, err);
	if (rc)
		return rc;
	struct kd_plugin_handle *h = kd_xcalloc(1, sizeof(*h));
	h->path = path;
	if (!host || host->abi_major != KD_PLUGIN_ABI_MAJOR ||
	    host->struct_size < KD_HOST_MIN_SIZE) {
		rc = kd_error_set(err, EINVAL, 0, "plugin %s: invalid host table", path);
		goto fail;
	}

	dlerror();
	h->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h->dl) {
		const char *why = dlerror();
		rc = kd_error_set(err, ENOEXEC, 0, "plugin %s: cannot load: %s", path,
		                  why ? why : "unknown dlopen error");
		goto fail;
	}
	dlerror();
	void *sym = dlsym(h->dl, KD_PLUGIN_ENTRY_SYMBOL);
	if (!sym) {
		const char *why = dlerror();
		rc = kd_error_set(err, ENOEXEC, 0,
		                  "plugin %s: no " KD_PLUGIN_ENTRY_SYMBOL
		                  " symbol, not a kubedirect plugin (%s)",
		                  path, why ? why : "symbol is NULL");
		goto fail;
	}
	const struct kd_plugin *(*entry)(void);
	memcpy(&entry, &sym, sizeof(entry)); /* object pointer -> function pointer, POSIX style */
	const struct kd_plugin *d = entry();
	rc = check_desc(d, ref, path, expected_kind, err);
	if (rc)
		goto fail;
	h->desc = d;

	h->config = kd_xcalloc(1, d->config_size ? d->config_size : 1);
	what = kd_xasprintf("plugin %s", d->name);
	rc = kd_config_parse_json_str(d->options, h->config, what, config_json, 0, err);
	if (rc) {
		kd_error_wrap(err, "plugin %s: config", path);
		goto fail;
	}

	struct kd_error *ierr = NULL;
	rc = d->init(host, h->config, &h->state, &ierr);
	if (rc != 0) {
		if (rc > 0)
			rc = -EIO;
		if (ierr) {
			rc = kd_error_set(err, ierr->errnum, ierr->http_status,
			                  "plugin %s: init: %s", path, ierr->msg);
			kd_error_free(ierr);
		} else {
			rc = kd_error_set(err, -rc, 0, "plugin %s: init failed: %s", path,
			                  strerror(-rc));
		}
		goto fail;
	}
	kd_error_free(ierr); /* a plugin that set an error but returned 0: ignore the error */
	kd_log_debug("loaded %s plugin %s from %s", kd_plugin_kind_name(d->kind), d->name, path);
	*handle = h;
	return 0;
fail:
	handle_free(h);
	return rc;
}

void kd_plugin_unload(struct kd_plugin_handle *h)
{
	if (!h)
		return;
	h->desc->fini(h->state);
	h->state = NULL;
	handle_free(h);
}

const struct kd_plugin *kd_plugin_desc(const struct kd_plugin_handle *h)
{
	return h->desc;
}

const void *kd_plugin_ops(const struct kd_plugin_handle *h)
{
	return h->desc->ops;
}

void *kd_plugin_state(const struct kd_plugin_handle *h)
{
	return h->state;
}

const void *kd_plugin_config(const struct kd_plugin_handle *h)
{
	return h->desc->config_size ? h->config : NULL;
}

const char *kd_plugin_path(const struct kd_plugin_handle *h)
{
	return h->path;
}

const char *kd_plugin_name(const struct kd_plugin_handle *h)
{
	return h->desc->name;
}
