/* autoscaler-shim/cfgmap.c: the decider's configuration, in layers (lowest first):
 *   1. the decider's built-in defaults (decider-kpa: Knative's config-autoscaler defaults);
 *   2. Knative's ConfigMap --config-autoscaler (config-autoscaler) in --knative-namespace
 *      (knative-serving), read by an informer and watched: `_example` is ignored, as Knative
 *      ignores it, and so are keys the decider has no option for (logged once);
 *   3. --decider-config, and --initial-scale (the same as its "initial-scale"): fixed for the
 *      life of the process;
 *   4. per revision, the PodAutoscaler's autoscaling.knative.dev/<key> annotations (the decider
 *      applies them in decide).
 * A ConfigMap change is applied without a restart through the decider's reconfigure op
 * (kd/stage.h): the changed keys are parsed with the decider's option table, layers 1-3 are
 * composed into a new config struct, and the decider validates it. A value that does not parse
 * or that the decider refuses is logged with its key and value, and the key keeps its previous
 * value (all changed keys are tried together first, then one by one, so one bad key does not
 * hold back the others); a key removed from the ConfigMap (or the ConfigMap deleted) goes back
 * to its default. Revisions pick a change up at their next decision (tick or poke).
 * Decisions by the decider wait until the ConfigMap was listed once (or for KD_AS_DCFG_WAIT_MS,
 * e.g. when RBAC forbids reading it: then with layers 1 and 3 until it can be read).
 * initial-scale and allow-zero-initial-scale are read from the composed config (the decider's
 * option table says where), so PA status (ScaleTargetInitialized) and the decider share them.
 * A decider without reconfigure keeps the configuration it was loaded with (logged). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autoscaler.h"
#include "kd/json.h"
#include "kd/log.h"

static const struct kd_k8s_resource configmaps_res = {"", "v1", "configmaps", true};

struct kd_as_dcfg {
	struct kd_as *as;
	const struct kd_plugin *desc; /* the decider's descriptor (options, config_size) */
	json_object *over;            /* layer 3 (owned) */
	json_object *cm;              /* layer 2 as in force: key -> string (owned) */
	json_object *ignored; /* keys ignored last time -> their value, logged once (owned) */
	void *cur;            /* the composed config in force (owned), NULL: the loader's */
	char *what;           /* "config-autoscaler <ns>/<name>" */
	bool live;            /* the decider has reconfigure */
	bool ready;           /* listed once, or gave up waiting */
	struct kd_informer *inf;
	struct kd_timer *wait;
	uint64_t applied, refused;
};

/* ---- layers ---------------------------------------------------------------------------------- */

int kd_as_dcfg_new(struct kd_as *as, struct kd_error **err)
{
	struct kd_as_dcfg *d = kd_xcalloc(1, sizeof(*d));
	d->as = as;
	as->dcfg = d;
	d->cm = json_object_new_object();
	d->ignored = json_object_new_object();
	const char *json = as->cfg.decider_config;
	if (json && *json) {
		if (kd_json_parse(json, strlen(json), 0, "--decider-config", &d->over, err) < 0)
			return -EINVAL;
		if (!json_object_is_type(d->over, json_type_object))
			return kd_error_set(err, EINVAL, 0, "--decider-config: not a JSON object");
	} else {
		d->over = json_object_new_object();
	}
	const char *init = as->cfg.initial_scale;
	if (init && *init) {
		if (json_object_object_get_ex(d->over, "initial-scale", NULL))
			return kd_error_set(
			    err, EINVAL, 0,
			    "--initial-scale and --decider-config \"initial-scale\" "
			    "both given");
		json_object_object_add(d->over, "initial-scale", json_object_new_string(init));
	}
	return 0;
}

char *kd_as_dcfg_loader_json(const struct kd_as *as)
{
	return kd_json_dumps(as->dcfg->over);
}

static const void *current(const struct kd_as_dcfg *d)
{
	return d->cur ? d->cur : kd_plugin_config(d->as->decider_h);
}

static void config_free(const struct kd_as_dcfg *d, void *c)
{
	if (!c)
		return;
	kd_config_free(d->desc->options, c);
	free(c);
}

/* Sets one ConfigMap value as Knative parses it: booleans with Go's strconv.ParseBool (1, t, T,
 * TRUE, true, True and their false forms; kd's "yes"/"on" would be refused by Knative), everything
 * else with the option's own parser. 0 or -errno with *err. */
static int set_key(const struct kd_as_dcfg *d, void *c, const char *key, const char *value,
                   struct kd_error **err)
{
	const struct kd_config_option *o = d->desc->options;
	const struct kd_config_option *opt = kd_config_find(o, key);
	if (opt && opt->type == KD_CONFIG_BOOL) {
		static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
		static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
		for (size_t i = 0; i < KD_ARRAY_SIZE(yes); i++) {
			if (strcmp(value, yes[i]) == 0)
				return kd_config_set(o, c, NULL, key, "true", err);
			if (strcmp(value, no[i]) == 0)
				return kd_config_set(o, c, NULL, key, "false", err);
		}
		return kd_error_set(
		    err, EINVAL, 0,
		    "option \"%s\": \"%s\" is not a boolean (Knative reads it with "
		    "Go's strconv.ParseBool: true, false, True, False, TRUE, FALSE, t, "
		    "f, T, F, 1, 0)",
		    key, value);
	}
	return kd_config_set(o, c, NULL, key, value, err);
}

/* Layers 1 + layer (key -> string, borrowed) + 3 into a new struct (owned), or NULL with *err
 * (a value of layer that does not parse). */
static void *compose(const struct kd_as_dcfg *d, json_object *layer, struct kd_error **err)
{
	const struct kd_config_option *o = d->desc->options;
	void *c = kd_xcalloc(1, d->desc->config_size ? d->desc->config_size : 1);
	int rc = kd_config_defaults(o, c, err);
	json_object_object_foreach(layer, key, val)
	{
		if (rc < 0)
			break;
		rc = set_key(d, c, key, json_object_get_string(val), err);
	}
	if (rc == 0)
		rc = kd_config_parse_json(o, c, "--decider-config", d->over,
		                          KD_CONFIG_F_NO_DEFAULTS | KD_CONFIG_F_NO_REQUIRED, err);
	if (rc < 0) {
		config_free(d, c);
		return NULL;
	}
	return c;
}

/* Hands layer (borrowed) to the decider; on success it is the one in force. */
static int try_layer(struct kd_as_dcfg *d, json_object *layer, struct kd_error **err)
{
	void *c = compose(d, layer, err);
	if (!c)
		return -EINVAL;
	const struct kd_decider_ops *ops = d->as->decider;
	int rc = ops->reconfigure(kd_plugin_state(d->as->decider_h), c, err);
	if (rc < 0) {
		config_free(d, c);
		return rc;
	}
	config_free(d, d->cur);
	d->cur = c;
	json_object_put(d->cm);
	d->cm = json_object_get(layer);
	return 0;
}

static const char *str_of(json_object *layer, const char *key)
{
	json_object *v = NULL;
	return json_object_object_get_ex(layer, key, &v) ? json_object_get_string(v) : NULL;
}

static char *quoted_or_default(const char *v)
{
	return v ? kd_xasprintf("\"%s\"", v) : kd_xstrdup("the default");
}

static void log_applied(struct kd_as_dcfg *d, const char *key, const char *was, const char *now)
{
	kd_autofree char *w = quoted_or_default(was);
	bool over = json_object_object_get_ex(d->over, key, NULL);
	if (now)
		kd_log_info("%s: %s=\"%s\" applied (was %s)%s", d->what, key, now, w,
		            over ? "; overridden by --decider-config" : "");
	else
		kd_log_info("%s: %s removed: back to the default (was %s)%s", d->what, key, w,
		            over ? "; overridden by --decider-config" : "");
	d->applied++;
}

static void log_refused(struct kd_as_dcfg *d, const char *key, const char *value, const char *why,
                        const char *kept)
{
	kd_autofree char *k = quoted_or_default(kept);
	if (value)
		kd_log_warn("%s: %s=\"%s\" refused: %s; keeping %s", d->what, key, value, why, k);
	else
		kd_log_warn("%s: removing %s refused: %s; keeping %s", d->what, key, why, k);
	d->refused++;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Hands the changed keys (sorted, n > 0) of layer `all` to the decider: together, else one by
 * one on top of what is in force. */
static void commit(struct kd_as_dcfg *d, json_object *all, const char **changed, size_t n)
{
	kd_autojson json_object *old = json_object_get(d->cm); /* for the log: d->cm changes */
	kd_autoerr struct kd_error *err = NULL;
	if (try_layer(d, all, &err) == 0) {
		for (size_t i = 0; i < n; i++)
			log_applied(d, changed[i], str_of(old, changed[i]),
			            str_of(all, changed[i]));
		return;
	}
	kd_log_debug("%s: the changes together refused (%s), trying them one by one", d->what,
	             kd_error_msg(err));
	for (size_t i = 0; i < n; i++) {
		const char *key = changed[i], *v = str_of(all, key), *was = str_of(d->cm, key);
		kd_autojson json_object *trial = NULL;
		json_object_deep_copy(d->cm, &trial, NULL);
		if (v)
			json_object_object_add(trial, key, json_object_new_string(v));
		else
			json_object_object_del(trial, key);
		kd_autoerr struct kd_error *kerr = NULL;
		if (try_layer(d, trial, &kerr) == 0)
			log_applied(d, key, str_of(old, key), v);
		else
			log_refused(d, key, v, kd_error_msg(kerr), was);
	}
}

/* The ConfigMap's data (borrowed; NULL: no ConfigMap) applied as described at the top. */
static void apply(struct kd_as_dcfg *d, json_object *data)
{
	const struct kd_config_option *o = d->desc->options;
	kd_autojson json_object *want = json_object_new_object();
	kd_autojson json_object *ignored = json_object_new_object();
	if (data && json_object_is_type(data, json_type_object)) {
		json_object_object_foreach(data, key, val)
		{
			const char *v = json_object_get_string(val);
			if (strcmp(key, "_example") == 0 || !v)
				continue;
			if (!kd_config_find(o, key)) {
				const char *before = str_of(d->ignored, key);
				if (!before || strcmp(before, v) != 0)
					kd_log_info("%s: %s=\"%s\" ignored: decider %s has no such "
					            "option",
					            d->what, key, v, d->desc->name);
				json_object_object_add(ignored, key, json_object_new_string(v));
				continue;
			}
			json_object_object_add(want, key, json_object_new_string(v));
		}
	}
	json_object_put(d->ignored);
	d->ignored = json_object_get(ignored);

	/* the keys that change; a value that does not parse keeps the previous one */
	size_t n = 0, cap = (size_t)json_object_object_length(want) +
	                    (size_t)json_object_object_length(d->cm) + 1;
	const char **changed = kd_xcalloc(cap, sizeof(*changed));
	void *scratch = kd_xcalloc(1, d->desc->config_size ? d->desc->config_size : 1);
	(void)kd_config_defaults(o, scratch, NULL);
	json_object_object_foreach(want, wkey, wval)
	{
		const char *v = json_object_get_string(wval), *was = str_of(d->cm, wkey);
		if (was && strcmp(was, v) == 0)
			continue;
		kd_autoerr struct kd_error *perr = NULL;
		if (set_key(d, scratch, wkey, v, &perr) < 0) {
			log_refused(d, wkey, v, kd_error_msg(perr), was);
			continue;
		}
		changed[n++] = wkey;
	}
	json_object_object_foreach(d->cm, ckey, cval)
	{
		(void)cval;
		if (!json_object_object_get_ex(want, ckey, NULL))
			changed[n++] = ckey; /* removed */
	}
	config_free(d, scratch);
	/* what is in force, with the changed keys (only those) changed */
	kd_autojson json_object *all = NULL;
	json_object_deep_copy(d->cm, &all, NULL);
	for (size_t i = 0; i < n; i++) {
		const char *v = str_of(want, changed[i]);
		if (v)
			json_object_object_add(all, changed[i], json_object_new_string(v));
		else
			json_object_object_del(all, changed[i]);
	}
	if (n) {
		qsort(changed, n, sizeof(*changed), cmp_str);
		commit(d, all, changed, n);
	}
	free(changed);
}

/* ---- the informer ---------------------------------------------------------------------------- */

static void on_cm(struct kd_informer *inf, json_object *obj, void *arg)
{
	(void)inf;
	struct kd_as_dcfg *d = arg;
	json_object *data = kd_json_get_object(obj, "data");
	apply(d, data);
}

static void on_cm_update(struct kd_informer *inf, json_object *old, json_object *obj, void *arg)
{
	(void)old;
	on_cm(inf, obj, arg);
}

static void on_cm_delete(struct kd_informer *inf, json_object *obj, void *arg)
{
	(void)inf;
	(void)obj;
	struct kd_as_dcfg *d = arg;
	kd_log_info("%s deleted: built-in defaults and --decider-config", d->what);
	apply(d, NULL);
}

static void on_cm_synced(struct kd_informer *inf, void *arg)
{
	struct kd_as_dcfg *d = arg;
	if (kd_informer_count(inf) == 0)
		kd_log_info("%s not found: built-in defaults and --decider-config", d->what);
	if (!d->ready)
		kd_log_info("%s read: decisions start", d->what);
	d->ready = true;
	kd_loop_timer_stop(d->wait);
}

static void on_wait(struct kd_loop *loop, struct kd_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	struct kd_as_dcfg *d = arg;
	if (d->ready)
		return;
	d->ready = true;
	kd_log_warn("%s not read after %d s (see the watch errors above): deciding with built-in "
	            "defaults and --decider-config until it can be read",
	            d->what, KD_AS_DCFG_WAIT_MS / 1000);
}

int kd_as_dcfg_start(struct kd_as *as, struct kd_error **err)
{
	struct kd_as_dcfg *d = as->dcfg;
	d->desc = kd_plugin_desc(as->decider_h);
	const struct kd_decider_ops *ops = as->decider;
	d->live = KD_HAS_MEMBER(ops, struct kd_decider_ops, reconfigure) && ops->reconfigure &&
	          d->desc->options;
	const char *name = as->cfg.config_autoscaler;
	const char *ns = as->cfg.knative_namespace;
	if (!name || !*name) {
		kd_log_info(
		    "--config-autoscaler empty: decider configuration from --decider-config "
		    "and built-in defaults only");
		d->ready = true;
		return 0;
	}
	if (!ns || !*ns)
		return kd_error_set(err, EINVAL, 0, "--knative-namespace: empty");
	d->what = kd_xasprintf("config-autoscaler %s/%s", ns, name);
	if (!d->live) {
		kd_log_warn(
		    "decider %s cannot be reconfigured (no reconfigure op): %s is not read; "
		    "use --decider-config",
		    d->desc->name, d->what);
		d->ready = true;
		return 0;
	}
	kd_autofree char *fs = kd_xasprintf("metadata.name=%s", name);
	struct kd_informer_opts o = {.res = &configmaps_res, .ns = ns, .field_selector = fs};
	struct kd_informer_handlers h = {.on_add = on_cm,
	                                 .on_update = on_cm_update,
	                                 .on_delete = on_cm_delete,
	                                 .on_synced = on_cm_synced,
	                                 .arg = d};
	int rc = kd_informer_new(as->k8s, &o, &h, &d->inf, err);
	if (rc < 0)
		return kd_error_wrap(err, "%s", d->what);
	d->wait = kd_loop_timer_new(as->loop, on_wait, d);
	kd_loop_timer_start(d->wait, KD_AS_DCFG_WAIT_MS);
	return kd_informer_start(d->inf);
}

void kd_as_dcfg_stop(struct kd_as *as)
{
	struct kd_as_dcfg *d = as->dcfg;
	if (!d)
		return;
	kd_informer_free(d->inf);
	kd_loop_timer_free(d->wait);
	if (d->desc)
		config_free(d, d->cur);
	json_object_put(d->over);
	json_object_put(d->cm);
	json_object_put(d->ignored);
	free(d->what);
	free(d);
	as->dcfg = NULL;
}

/* ---- readers --------------------------------------------------------------------------------- */

bool kd_as_dcfg_ready(const struct kd_as *as)
{
	return !as->dcfg || as->dcfg->ready;
}

const void *kd_as_dcfg_current(const struct kd_as *as)
{
	return as->dcfg && as->decider_h ? current(as->dcfg) : NULL;
}

void kd_as_dcfg_counts(const struct kd_as *as, uint64_t *applied, uint64_t *refused)
{
	*applied = as->dcfg ? as->dcfg->applied : 0;
	*refused = as->dcfg ? as->dcfg->refused : 0;
}

/* The value of integer/boolean option key in the config in force, or def. */
static int64_t int_opt(const struct kd_as *as, const char *key, int64_t def)
{
	const void *c = kd_as_dcfg_current(as);
	const struct kd_config_option *opts = c ? kd_plugin_desc(as->decider_h)->options : NULL;
	const struct kd_config_option *o = opts ? kd_config_find(opts, key) : NULL;
	if (!o)
		return def;
	const char *p = (const char *)c + o->offset;
	switch (o->type) {
	case KD_CONFIG_INT: {
		int64_t v;
		memcpy(&v, p, sizeof(v));
		return v;
	}
	case KD_CONFIG_UINT: {
		uint64_t v;
		memcpy(&v, p, sizeof(v));
		return v > INT64_MAX ? INT64_MAX : (int64_t)v;
	}
	case KD_CONFIG_BOOL: {
		bool v;
		memcpy(&v, p, sizeof(v));
		return v;
	}
	default:
		return def;
	}
}

int32_t kd_as_initial_scale(const struct kd_as *as, int32_t annotated)
{
	int64_t cluster = int_opt(as, "initial-scale", 1);
	bool allow_zero = int_opt(as, "allow-zero-initial-scale", 0) != 0;
	if (annotated > 0 || (annotated == 0 && allow_zero))
		return annotated;
	return cluster < 0 ? 0 : cluster > INT32_MAX ? INT32_MAX : (int32_t)cluster;
}
