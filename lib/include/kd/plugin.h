/* kd/plugin.h: the plugin ABI (descriptor, host table, build signature) and the loader.
 *
 * A plugin is a shared object exporting exactly one symbol, `kd_plugin_entry`, which returns a
 * const descriptor (struct kd_plugin). Plugins are built with -fvisibility=hidden,
 * -Wl,--no-undefined and libkd.a linked in privately (--exclude-libs,ALL): they have their own copy
 * of libkd's stateless helpers, and reach everything stateful (log, loop, timers, k8s client)
 * through the host table (struct kd_host) handed to init.
 *
 * Versioning (Redis module / nginx style):
 *  - abi_major must equal KD_PLUGIN_ABI_MAJOR; it changes only on incompatible changes.
 *  - struct kd_plugin, struct kd_host and the ops vtables (kd/stage.h) start with struct_size and
 *    only grow at the end; a reader touches a member only if KD_HAS_MEMBER says struct_size covers
 *    it.
 *  - build_sig must equal the host's KD_PLUGIN_BUILD_SIG: ABI major, compiler family and major
 *    version, pointer/long size, and the sizes of the data structures that cross the boundary
 *    without a struct_size of their own (config option, error, the kd/stage.h data structs, the
 *    kd/k8s.h and kd/watch.h ones of the host's Kubernetes services; a few spelled out, all of
 *    them in a layout hash). A plugin built against another layout of
 *    those is refused. (The versioned structs are deliberately left out: they may grow.)
 *
 * Threading: load/unload and every plugin call happen on the host's loop thread.
 * A given .so may be loaded more than once (e.g. one runtime per node); dlopen shares its globals,
 * so plugins keep all state in the `state` returned by init.
 */
#ifndef KD_PLUGIN_H
#define KD_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kd/common.h"
#include "kd/config.h"
#include "kd/error.h"
#include "kd/k8s.h"
#include "kd/log.h"
#include "kd/loop.h"
#include "kd/stage.h"
#include "kd/watch.h"

#define KD_PLUGIN_ABI_MAJOR 1u

/* Default directory searched after $KD_PLUGIN_DIR; override at build time with -D. */
#ifndef KD_PLUGIN_DEFAULT_DIR
#define KD_PLUGIN_DEFAULT_DIR "/usr/lib/kubedirect/plugins"
#endif

/* True if the struct behind p (whose first members are abi_major/struct_size or struct_size) is
 * large enough to contain `member`. Use it before reading any member added after version 1. */
#define KD_HAS_MEMBER(p, type, member)                                                             \
	((size_t)(p)->struct_size >= offsetof(type, member) + sizeof(((type *)0)->member))

enum kd_plugin_kind {
	KD_PLUGIN_DECIDER = 1,   /* metrics -> desired scale (struct kd_decider_ops) */
	KD_PLUGIN_WORKLOAD = 2,  /* desired scale -> instance identities and victims */
	KD_PLUGIN_SCHEDULER = 3, /* instances -> nodes */
	KD_PLUGIN_RUNTIME = 4,   /* bound instance -> running sandbox -> ready address */
};

/* "decider", "workload", "scheduler", "runtime", or "unknown". Static string. */
KD_API const char *kd_plugin_kind_name(enum kd_plugin_kind kind);

/* The host table: the only way a plugin reaches host services. Filled by the host (see
 * kd_host_init), borrowed by the plugin from init until fini returns. */
struct kd_host {
	uint32_t abi_major;    /* KD_PLUGIN_ABI_MAJOR of the host */
	uint32_t struct_size;  /* sizeof(struct kd_host) of the host */
	const char *component; /* "kd-node", for log lines; borrowed */
	/* Logs one line through the host's logger. */
	void (*log)(enum kd_log_level level, const char *fmt, ...) KD_PRINTF(2, 3);
	/* Sets *err like kd_error_set (plugins without libkd, e.g. test fixtures, use this). */
	int (*error_set)(struct kd_error **err, int errnum, long http_status, const char *fmt, ...)
	    KD_PRINTF(4, 5);
	struct kd_loop *loop; /* the process's loop; borrowed */
	/* Timers on `loop` (semantics of kd_loop_timer_*; callbacks run on the loop thread). */
	struct kd_timer *(*timer_new)(struct kd_loop *loop, kd_timer_cb cb, void *arg);
	void (*timer_start)(struct kd_timer *timer, uint64_t after_ms);
	void (*timer_stop)(struct kd_timer *timer);
	void (*timer_free)(struct kd_timer *timer);
	uint64_t (*now_ms)(struct kd_loop *loop); /* monotonic ms, cached per loop iteration */
	void *k8s;      /* opaque Kubernetes client of the host (struct kd_k8s *), or NULL */
	void *host_arg; /* for the host's own use (e.g. test hooks); plugins must ignore it */
	/* Thread-safe: runs fn(loop, arg) on the loop thread (kd_loop_post), e.g. to hand results
	 * of a plugin's helper thread back to the loop. 0 or -errno. */
	int (*post)(struct kd_loop *loop, kd_loop_post_cb fn, void *arg);

	/* New members only below this line. */
	/* fd watches on `loop` (semantics of kd_loop_add_fd/mod_fd/del_fd), e.g. a runtime's
	 * child-process pidfds and probe sockets. Check KD_HAS_MEMBER(host, struct kd_host,
	 * del_fd) before use. */
	int (*add_fd)(struct kd_loop *loop, int fd, unsigned events, kd_loop_io_cb cb, void *arg);
	int (*mod_fd)(struct kd_loop *loop, int fd, unsigned events);
	int (*del_fd)(struct kd_loop *loop, int fd);
	/* Kubernetes clients and informers (semantics of kd_k8s_new, kd_k8s_free,
	 * kd_k8s_get_config, kd_k8s_submit, kd_informer_*; kd/k8s.h, kd/watch.h), run by the
	 * host's libkd: a plugin's own copy of those would leave its code in the loop's sockets,
	 * timers and close callbacks, which outlive the plugin's fini. A plugin that talks to the
	 * API Server makes its own client with k8s_new (on `loop`; settings: k8s_config(k8s) of the
	 * host's client, or its own, e.g. from a kubeconfig) and frees its informers and then the
	 * client in fini (calls in flight complete there, with ECANCELED). Check
	 * KD_HAS_MEMBER(host, struct kd_host, informer_count) before use. */
	int (*k8s_new)(const struct kd_k8s_config *cfg, struct kd_loop *loop,
	               const struct kd_k8s_opts *opts, struct kd_k8s **out, struct kd_error **err);
	void (*k8s_free)(struct kd_k8s *c);
	const struct kd_k8s_config *(*k8s_config)(const struct kd_k8s *c);
	int (*k8s_submit)(struct kd_k8s *c, const struct kd_k8s_request *req, kd_k8s_done_cb cb,
	                  void *arg, struct kd_error **err);
	int (*informer_new)(struct kd_k8s *c, const struct kd_informer_opts *opts,
	                    const struct kd_informer_handlers *handlers, struct kd_informer **out,
	                    struct kd_error **err);
	int (*informer_start)(struct kd_informer *inf);
	void (*informer_free)(struct kd_informer *inf);
	struct json_object *(*informer_get)(struct kd_informer *inf, const char *ns,
	                                    const char *name);
	bool (*informer_synced)(const struct kd_informer *inf);
	size_t (*informer_count)(const struct kd_informer *inf);
};

/* Smallest host table the loader hands to plugins: the version 1 layout, ending with post.
 * Plugins may use every version 1 member without a KD_HAS_MEMBER check. */
#define KD_HOST_MIN_SIZE (offsetof(struct kd_host, post) + sizeof(void (*)(void)))

/* Fills *host with libkd's own services (kd_log_write, kd_error_set, kd_loop_timer_*,
 * kd_loop_now_ms, kd_loop_post, kd_loop_*_fd, kd_k8s_*, kd_informer_*) for `loop` (borrowed)
 * and `component` (borrowed). k8s and host_arg are NULL. */
KD_API void kd_host_init(struct kd_host *host, struct kd_loop *loop, const char *component);

/* The plugin descriptor. Returned by kd_plugin_entry; static and const, lives as long as the .so
 * is loaded. */
struct kd_plugin {
	uint32_t abi_major;    /* KD_PLUGIN_ABI_MAJOR */
	uint32_t struct_size;  /* sizeof(struct kd_plugin) */
	const char *name;      /* "runtime-sim": non-empty, the file is kd-<name>.so */
	const char *build_sig; /* KD_PLUGIN_BUILD_SIG */
	enum kd_plugin_kind kind;
	const char *description; /* one line, for docs and --help */
	/* Config table (KD_CONFIG_END-terminated) for a struct of config_size bytes, or NULL (then
	 * any non-empty config object is refused). The host parses and frees the struct. */
	const struct kd_config_option *options;
	size_t config_size;
	/* Creates the plugin instance. host and config are borrowed until fini returns. On success
	 * sets *state (owned by the plugin, freed by fini) and returns 0; on failure returns
	 * -errno, sets *err (host->error_set), and has released everything it allocated (fini is
	 * not called). */
	int (*init)(const struct kd_host *host, const void *config, void **state,
	            struct kd_error **err);
	/* Destroys the instance; no callback into the host afterwards (timers freed). */
	void (*fini)(void *state);
	/* Kind-specific vtable (kd/stage.h), static; starts with uint32_t struct_size. */
	const void *ops;
	/* New members only below this line; the host reads them only if KD_HAS_MEMBER says so. */
};

/* Smallest descriptor the loader accepts: the version 1 layout, ending with ops. */
#define KD_PLUGIN_MIN_SIZE (offsetof(struct kd_plugin, ops) + sizeof(const void *))

/* The one exported symbol. Define it with KD_PLUGIN_DEFINE(desc). */
KD_EXPORT const struct kd_plugin *kd_plugin_entry(void);
#define KD_PLUGIN_ENTRY_SYMBOL "kd_plugin_entry"
#define KD_PLUGIN_DEFINE(desc)                                                                     \
	const struct kd_plugin *kd_plugin_entry(void)                                              \
	{                                                                                          \
		return &(desc);                                                                    \
	}
/* A plugin's descriptor and its kd_plugin_entry in one: the members every plugin sets alike
 * (abi_major, struct_size, build_sig) are filled in, then name and kind, then the designated
 * initializers given (description, options, config_size, init, fini, ops):
 *   KD_PLUGIN_EXPORT("runtime-sim", KD_PLUGIN_RUNTIME, .description = "...", .init = sim_init,
 *                    .fini = sim_fini, .ops = &sim_ops)
 * At file scope, once per plugin, without a trailing semicolon. */
#define KD_PLUGIN_EXPORT(name_, kind_, ...)                                                        \
	static const struct kd_plugin kd__plugin_desc = {.abi_major = KD_PLUGIN_ABI_MAJOR,         \
	                                                 .struct_size = sizeof(struct kd_plugin),  \
	                                                 .name = (name_),                          \
	                                                 .build_sig = KD_PLUGIN_BUILD_SIG,         \
	                                                 .kind = (kind_),                          \
	                                                 __VA_ARGS__};                             \
	KD_PLUGIN_DEFINE(kd__plugin_desc)

/* --- build signature ------------------------------------------------------------------------- */
#if defined(__clang__)
#define KD__CC_CHAR  'c'
#define KD__CC_MAJOR __clang_major__
#elif defined(__GNUC__)
#define KD__CC_CHAR  'g'
#define KD__CC_MAJOR __GNUC__
#else
#define KD__CC_CHAR  '?'
#define KD__CC_MAJOR 0
#endif
#define KD__HEXC(v, s)                                                                             \
	(char)(((((size_t)(v)) >> (s)) & 0xf) < 10 ? '0' + ((((size_t)(v)) >> (s)) & 0xf)          \
	                                           : 'a' - 10 + ((((size_t)(v)) >> (s)) & 0xf))
#define KD__HEX2(v) KD__HEXC(v, 4), KD__HEXC(v, 0)
#define KD__HEX4(v) KD__HEXC(v, 12), KD__HEXC(v, 8), KD__HEXC(v, 4), KD__HEXC(v, 0)
/* Weighted sum of the sizes of every struct that crosses the boundary without a struct_size. */
#define KD__LAYOUT_HASH                                                                            \
	((sizeof(struct kd_config_option) * 1 + sizeof(struct kd_error) * 3 +                      \
	  sizeof(struct kd_strlist) * 5 + sizeof(struct kd_sandbox_spec) * 7 +                     \
	  sizeof(struct kd_container_spec) * 11 + sizeof(struct kd_runtime_event) * 13 +           \
	  sizeof(struct kd_sandbox_status) * 17 + sizeof(struct kd_probe) * 19 +                   \
	  sizeof(struct kd_env_var) * 23 + sizeof(struct kd_container_port) * 29 +                 \
	  sizeof(struct kd_metric_sample) * 31 + sizeof(struct kd_scale_input) * 37 +              \
	  sizeof(struct kd_scale_decision) * 41 + sizeof(struct kd_instance) * 43 +                \
	  sizeof(struct kd_workload_input) * 47 + sizeof(struct kd_workload_plan) * 53 +           \
	  sizeof(struct kd_resources) * 59 + sizeof(struct kd_node_info) * 61 +                    \
	  sizeof(struct kd_pod_request) * 67 + sizeof(struct kd_owner_ref) * 71 +                  \
	  sizeof(struct kd_instance_spec) * 73 + sizeof(struct kd_label) * 79 +                    \
	  sizeof(struct kd_taint) * 83 + sizeof(struct kd_toleration) * 89 +                       \
	  sizeof(struct kd_placement) * 97 + sizeof(struct kd_k8s_config) * 101 +                  \
	  sizeof(struct kd_k8s_opts) * 103 + sizeof(struct kd_k8s_request) * 107 +                 \
	  sizeof(struct kd_k8s_response) * 109 + sizeof(struct kd_k8s_resource) * 113 +            \
	  sizeof(struct kd_informer_opts) * 127 + sizeof(struct kd_informer_handlers) * 131) &     \
	 0xffff)
/* Characters of the signature: "kd1-g0c-p8l8-o0068e0020x0060-h1234" = ABI major, compiler
 * family/major (hex), pointer and long size, sizes of kd_config_option, kd_error and
 * kd_sandbox_spec, layout hash. */
#define KD__BUILD_SIG_CHARS                                                                        \
	'k', 'd', KD__HEXC(KD_PLUGIN_ABI_MAJOR, 0), '-', KD__CC_CHAR, KD__HEX2(KD__CC_MAJOR), '-', \
	    'p', KD__HEXC(sizeof(void *), 0), 'l', KD__HEXC(sizeof(long), 0), '-', 'o',            \
	    KD__HEX4(sizeof(struct kd_config_option)), 'e', KD__HEX4(sizeof(struct kd_error)),     \
	    'x', KD__HEX4(sizeof(struct kd_sandbox_spec)), '-', 'h', KD__HEX4(KD__LAYOUT_HASH),    \
	    '\0'
/* A constant `const char *` for the descriptor's build_sig (a static compound literal). */
#define KD_PLUGIN_BUILD_SIG ((const char[]){KD__BUILD_SIG_CHARS})

/* The host's signature. Static string. */
KD_API const char *kd_plugin_host_build_sig(void);

/* --- loader ---------------------------------------------------------------------------------- */
struct kd_plugin_handle;

/* Resolves a plugin reference to a file: a reference containing '/' is used as is; a bare name
 * ("runtime-sim") is looked up as kd-<name>.so in each directory of $KD_PLUGIN_DIR (':'-separated)
 * then in KD_PLUGIN_DEFAULT_DIR. Returns 0 and *path (owned; free()) or -ENOENT with *err listing
 * the places tried. */
KD_API int kd_plugin_find(const char *ref, char **path, struct kd_error **err);

/* Loads and initialises a plugin: resolve (kd_plugin_find), dlopen(RTLD_NOW|RTLD_LOCAL), dlsym
 * kd_plugin_entry, check abi_major, struct_size >= KD_PLUGIN_MIN_SIZE, name non-empty (and equal
 * to a bare-name ref), kind == expected_kind, build_sig, ops and its mandatory members, the config
 * table (kd_config_validate_table); then parse config_json (borrowed; NULL or "" means defaults)
 * into a config struct of config_size bytes, then init(host, config, &state).
 * host is borrowed and must outlive the handle. On success *handle is owned (kd_plugin_unload).
 * On failure everything is undone (config freed, dlclose) and *err says which file and why:
 *   `plugin /x/kd-y.so: ABI major 2, host supports 1`. Returns 0 or -errno. */
KD_API int kd_plugin_load(const char *ref, enum kd_plugin_kind expected_kind,
                          const char *config_json, const struct kd_host *host,
                          struct kd_plugin_handle **handle, struct kd_error **err);

/* Calls fini, frees the config, dlcloses, frees the handle. NULL is fine. */
KD_API void kd_plugin_unload(struct kd_plugin_handle *handle);

/* Accessors; all borrowed, valid until kd_plugin_unload. */
KD_API const struct kd_plugin *kd_plugin_desc(const struct kd_plugin_handle *handle);
KD_API const void *
kd_plugin_ops(const struct kd_plugin_handle *handle); /* cast to the kind's ops */
KD_API void *
kd_plugin_state(const struct kd_plugin_handle *handle); /* first argument of every op */
KD_API const void *
kd_plugin_config(const struct kd_plugin_handle *handle); /* parsed config or NULL */
KD_API const char *kd_plugin_path(const struct kd_plugin_handle *handle);
KD_API const char *kd_plugin_name(const struct kd_plugin_handle *handle);

#endif /* KD_PLUGIN_H */
