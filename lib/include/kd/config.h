/* kd/config.h: declarative option tables that drive parsing (argv, "key=value" lists, JSON
 * objects, environment variables) and the generated --help text and Markdown docs.
 *
 * A table is an array of struct kd_config_option terminated by KD_CONFIG_END. Each option names a
 * field of a caller struct by offset; the field's C type is fixed by the option type:
 *
 *   KD_CONFIG_STRING    char *             owned by the struct; freed by kd_config_free
 *   KD_CONFIG_INT       int64_t
 *   KD_CONFIG_UINT      uint64_t
 *   KD_CONFIG_DOUBLE    double
 *   KD_CONFIG_BOOL      bool
 *   KD_CONFIG_DURATION  uint64_t           milliseconds; "250ms", "2s", "1m", "1h", "1m30s",
 * "1.5s", "0" KD_CONFIG_ENUM      int                index into `choices` (an enum type of int size
 * is fine) KD_CONFIG_STRLIST   struct kd_strlist  owned; "a,b,c" in argv/env/kv, a JSON array in
 * JSON
 *
 * The KD_OPT_* macros check the field type at compile time. Defaults are strings parsed by the
 * same code as user input (a bad default is reported as such). Precedence, lowest first:
 * default < environment variable (option.env) < explicit value (argv, kv list, JSON).
 *
 * Every parse function leaves `cfg` valid for kd_config_free, on success and on failure: the
 * caller always frees with kd_config_free. Strings set twice free the previous value.
 */
#ifndef KD_CONFIG_H
#define KD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kd/common.h"
#include "kd/error.h"

struct json_object;

enum kd_config_type {
	KD_CONFIG_STRING = 1,
	KD_CONFIG_INT,
	KD_CONFIG_UINT,
	KD_CONFIG_DOUBLE,
	KD_CONFIG_BOOL,
	KD_CONFIG_DURATION,
	KD_CONFIG_ENUM,
	KD_CONFIG_STRLIST,
};

/* A list of owned strings. Empty list: items == NULL, n == 0. */
struct kd_strlist {
	char **items;
	size_t n;
};

/* Fill with designated initializers (or the KD_OPT_* macros): the member order is not ABI-stable
 * source-wise, only binary-wise (build signature). */
struct kd_config_option {
	const char *key; /* "ready-delay": argv --ready-delay, JSON "ready-delay"; NULL ends */
	enum kd_config_type type; /* fixes the C type of the field, see above */
	bool required; /* must be given (default, env or explicit); strings must be non-empty */
	bool has_min, has_max; /* numeric range checks (durations in milliseconds) */
	size_t offset;         /* offsetof(struct ..., field) */
	const char *def;       /* default, parsed like user input; NULL: zero / NULL / empty */
	const char *help;      /* one sentence, no trailing period needed */
	const char *env;       /* environment variable consulted before explicit values, or NULL */
	const char *const *choices; /* KD_CONFIG_ENUM: NULL-terminated allowed values */
	double min, max;
	const char *metavar; /* placeholder in --help ("CIDR"); NULL: derived from the type */
};

/* Terminates a table. */
#define KD_CONFIG_END                                                                              \
	{                                                                                          \
		.key = NULL                                                                        \
	}

/* Compile-time check that T.field has C type `ctype`; evaluates to offsetof(T, field). */
#define KD__OPT_OFFSET(T, field, ctype)                                                            \
	(offsetof(T, field) +                                                                      \
	 0 * sizeof(                                                                               \
	         char[__builtin_types_compatible_p(__typeof__(((T *)0)->field), ctype) ? 1 : -1]))
/* An option of type t for T.field, whose C type must be ctype, then the extra initializers. */
#define KD__OPT(k, t, T, field, ctype, ...)                                                        \
	{                                                                                          \
		.key = (k), .type = (t), .offset = KD__OPT_OFFSET(T, field, ctype), __VA_ARGS__    \
	}

/* Table helpers. Extra designated initializers may follow: .def, .help, .env, .required,
 * .has_min/.min, .has_max/.max, .choices, .metavar. Example:
 *   KD_OPT_DURATION("ready-delay", struct sim_cfg, ready_delay_ms, .def = "0ms",
 *                   .help = "delay between started and ready"), */
#define KD_OPT_STRING(k, T, f, ...)   KD__OPT(k, KD_CONFIG_STRING, T, f, char *, __VA_ARGS__)
#define KD_OPT_INT(k, T, f, ...)      KD__OPT(k, KD_CONFIG_INT, T, f, int64_t, __VA_ARGS__)
#define KD_OPT_UINT(k, T, f, ...)     KD__OPT(k, KD_CONFIG_UINT, T, f, uint64_t, __VA_ARGS__)
#define KD_OPT_DOUBLE(k, T, f, ...)   KD__OPT(k, KD_CONFIG_DOUBLE, T, f, double, __VA_ARGS__)
#define KD_OPT_BOOL(k, T, f, ...)     KD__OPT(k, KD_CONFIG_BOOL, T, f, bool, __VA_ARGS__)
#define KD_OPT_DURATION(k, T, f, ...) KD__OPT(k, KD_CONFIG_DURATION, T, f, uint64_t, __VA_ARGS__)
#define KD_OPT_STRLIST(k, T, f, ...)                                                               \
	KD__OPT(k, KD_CONFIG_STRLIST, T, f, struct kd_strlist, __VA_ARGS__)
#define KD_OPT_ENUM(k, T, f, ...)                                                                  \
	{                                                                                          \
		.key = (k), .type = KD_CONFIG_ENUM,                                                \
		.offset = offsetof(T, f) +                                                         \
		          0 * sizeof(char[sizeof(((T *)0)->f) == sizeof(int) ? 1 : -1]),           \
		__VA_ARGS__                                                                        \
	}

/* Flags for the parse functions. */
enum {
	/* Do not apply defaults and environment first: layer onto a struct filled by an earlier
	 * parse (e.g. config file, then argv). */
	KD_CONFIG_F_NO_DEFAULTS = 1u << 0,
	/* Skip the required check (a later layer will do it). */
	KD_CONFIG_F_NO_REQUIRED = 1u << 1,
};

/* Positive returns of kd_config_parse_argv: the text was printed, the program should exit 0. */
#define KD_CONFIG_HELP_SHOWN    1
#define KD_CONFIG_VERSION_SHOWN 2

/* The git commit a program was built from: the Makefile passes -DKD_GIT_COMMIT="<short hash>"
 * to the mains ("unknown" outside a git checkout). */
#ifndef KD_GIT_COMMIT
#define KD_GIT_COMMIT "unknown"
#endif

/* Describes the program for argv parsing and --help. All borrowed. --help ends with the exit
 * status line (0 success, 1 runtime failure, 2 bad options) and wraps at 80 columns. */
struct kd_config_cli {
	const char *prog;    /* "kd-node" */
	const char *summary; /* a sentence under the usage line (wrapped), or NULL */
	/* "0.1.0": --version prints "<prog> <version> (<commit>)"; NULL: --version is an
	 * unknown option */
	const char *version;
	const char *args;   /* positional arguments in the usage line ("[FILE...]"), or NULL */
	FILE *out;          /* where --help/--version print; NULL: stdout */
	const char *commit; /* for --version, usually KD_GIT_COMMIT; NULL: "unknown" */
	/* kd_config_main only: checks the parsed cfg as a whole (names, quantities, addresses,
	 * values refused in combination). 0, or -errno with *err naming the option: the program
	 * exits 2 with "<prog>: <message> (see --help)". NULL: none. */
	int (*check)(void *cfg, struct kd_error **err);
	/* kd_config_main only: the cfg's KD_OPT_LOGGING fields (enum kd_log_level / kd_log_format
	 * values). When set, a successful kd_config_main starts logging as prog at that level and
	 * format (kd_log_init). NULL: the caller starts logging itself. */
	const int *log_level, *log_format;
	/* kd_config_main only: ignore SIGPIPE once the options are good (a network daemon reads
	 * EPIPE from the write instead of dying; children of the process inherit it). */
	bool ignore_sigpipe;
	/* kd_config_main only: accept --config-dir DIR (or $KD_CONFIG_DIR): one file per option,
	 * named by its key and holding its value, as a ConfigMap mounted as a volume is. Dotfiles
	 * and directories are skipped; any other name that is not an option is an error.
	 * Precedence: default < environment < DIR < command line. */
	bool config_dir;
};

/* The kd_config_cli fields every component sets alike, after its .prog/.summary/.version/.check:
 * --version's commit, logging from the cfg's KD_OPT_LOGGING fields, SIGPIPE ignored. */
#define KD_CONFIG_CLI_COMPONENT(cfg)                                                               \
	.commit = KD_GIT_COMMIT, .log_level = &(cfg).log_level, .log_format = &(cfg).log_format,   \
	.ignore_sigpipe = true, .config_dir = true

/* Checks a table against the struct it fills: keys unique and well-formed, types known, enum
 * choices present, fields inside cfg_size, defaults parse. The plugin loader runs it on every
 * plugin table. 0 or -EINVAL with *err. */
KD_API int kd_config_validate_table(const struct kd_config_option *opts, size_t cfg_size,
                                    struct kd_error **err);

/* Finds an option by key. Borrowed (points into opts) or NULL. */
KD_API const struct kd_config_option *kd_config_find(const struct kd_config_option *opts,
                                                     const char *key);

/* Zeroes every field named by the table (without freeing: fields are treated as uninitialised),
 * then applies defaults. 0 or -EINVAL (bad default). */
KD_API int kd_config_defaults(const struct kd_config_option *opts, void *cfg,
                              struct kd_error **err);

/* Applies the environment variable of every option that has one and that is set. */
KD_API int kd_config_apply_env(const struct kd_config_option *opts, void *cfg,
                               struct kd_error **err);

/* Sets one option from text, with the same parsing and range checks as every source. `what`
 * names the source for messages (e.g. "plugin runtime-sim"), may be NULL. -EINVAL for unknown
 * keys and bad values, -ERANGE for values outside the option's range. */
KD_API int kd_config_set(const struct kd_config_option *opts, void *cfg, const char *what,
                         const char *key, const char *value, struct kd_error **err);

/* Parses argv[1..]: --key=value, --key value, --flag / --no-flag (bools; --flag=false too),
 * -h/--help, --version (when cli->version is set), "--" ends options. Parsing stops at the first
 * non-option argument; its index goes to *first_arg (argc if none; may be NULL, then positional
 * arguments are an error). Unless flags say otherwise, defaults and environment are applied first
 * and required options checked last. Returns 0, KD_CONFIG_HELP_SHOWN, KD_CONFIG_VERSION_SHOWN, or
 * -errno with *err ("--delay: \"abc\" is not a duration (e.g. 250ms, 2s)"). */
KD_API int kd_config_parse_argv(const struct kd_config_option *opts, void *cfg,
                                const struct kd_config_cli *cli, int argc, char *const *argv,
                                unsigned flags, int *first_arg, struct kd_error **err);

/* The start of a component's main(): kd_config_parse_argv (no positional arguments), then
 * cli->check, then (cli->log_level) logging and (cli->ignore_sigpipe) SIGPIPE. Returns -1 to go
 * on, else the status the program exits with at once: 0 after
 * --help or --version, 2 on bad options (or a failed check), after printing "<prog>: <reason>
 * (see --help)" on stderr and freeing cfg. */
KD_API int kd_config_main(const struct kd_config_option *opts, void *cfg,
                          const struct kd_config_cli *cli, int argc, char *const *argv);

/* The options every component has, for its table: --kubeconfig and --context (char * fields),
 * --log-level and --log-format (int fields, enum kd_log_level / kd_log_format order). */
KD_API extern const char *const kd_config_log_levels[];  /* "error" ... "trace", NULL */
KD_API extern const char *const kd_config_log_formats[]; /* "text", "json", NULL */
#define KD_OPT_KUBECONFIG(T, kubeconfig_field, context_field)                                      \
	KD_OPT_STRING("kubeconfig", T, kubeconfig_field, .env = "KUBECONFIG", .metavar = "FILE",   \
	              .help =                                                                      \
	                  "kubeconfig to use (default: $KUBECONFIG, in-cluster, ~/.kube/config)"), \
	    KD_OPT_STRING("context", T, context_field, .metavar = "NAME",                          \
	                  .help = "kubeconfig context (default: current-context)")
#define KD_OPT_LOGGING(T, level_field, format_field)                                               \
	KD_OPT_ENUM("log-level", T, level_field, .def = "info", .choices = kd_config_log_levels,   \
	            .env = "KD_LOG_LEVEL", .help = "log verbosity"),                               \
	    KD_OPT_ENUM("log-format", T, format_field, .def = "text",                              \
	                .choices = kd_config_log_formats, .env = "KD_LOG_FORMAT",                  \
	                .help = "log line format")

/* Parses n "key=value" strings (borrowed). Unknown keys are errors naming `what` and the known
 * keys. Defaults/env/required as in kd_config_parse_argv. */
KD_API int kd_config_parse_kv(const struct kd_config_option *opts, void *cfg, const char *what,
                              const char *const *kv, size_t n, unsigned flags,
                              struct kd_error **err);

/* Parses a JSON object (borrowed): scalars may be JSON strings or the matching JSON type,
 * string lists a JSON array of strings (or one comma-separated string). Unknown keys are errors:
 * `unknown option "foo" for plugin runtime-sim (known: pod-cidr, ready-delay)`. obj NULL: only
 * defaults/env/required. */
KD_API int kd_config_parse_json(const struct kd_config_option *opts, void *cfg, const char *what,
                                struct json_object *obj, unsigned flags, struct kd_error **err);

/* Like kd_config_parse_json, from JSON text (must be an object; NULL or "" means {}). */
KD_API int kd_config_parse_json_str(const struct kd_config_option *opts, void *cfg,
                                    const char *what, const char *json, unsigned flags,
                                    struct kd_error **err);

/* Generated --help text. Returns owned; free(). */
KD_API char *kd_config_help(const struct kd_config_option *opts, const struct kd_config_cli *cli);

/* Generated Markdown: "## title" (if title non-NULL), then a table
 * | Option | Type | Default | Env | Description |. Returns owned; free(). */
KD_API char *kd_config_markdown(const struct kd_config_option *opts, const char *title);

/* Frees the owned strings and lists in cfg and resets those fields to NULL/empty. */
KD_API void kd_config_free(const struct kd_config_option *opts, void *cfg);

/* Parses a duration ("250ms", "2s", "1m30s", "1.5h", "0") into milliseconds. 0 or -EINVAL /
 * -ERANGE. Fractions of a millisecond are rounded down. */
KD_API int kd_config_parse_duration(const char *s, uint64_t *out_ms);

/* Formats milliseconds as the shortest duration text ("0ms", "250ms", "2s", "1m30s").
 * Returns owned; free(). */
KD_API char *kd_config_format_duration(uint64_t ms);

/* Frees the items of a list and empties it. */
KD_API void kd_strlist_clear(struct kd_strlist *l);

#endif /* KD_CONFIG_H */
