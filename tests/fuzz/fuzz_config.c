/* libFuzzer target for kd_config: the bytes are parsed as a plugin config (JSON text), as a
 * newline-separated argv and as a newline-separated "key=value" list, against a table with every
 * option type. Nothing may crash or leak, every rejection carries a message, and the struct is
 * always freeable. Whatever parses as JSON must give the same durations when formatted and parsed
 * again. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd/config.h"

struct fz {
	char *s;
	int64_t i;
	uint64_t u;
	double d;
	bool b;
	uint64_t dur;
	int e;
	struct kd_strlist l;
};

static const char *const choices[] = {"a", "bb", "ccc", NULL};

static const struct kd_config_option opts[] = {
    KD_OPT_STRING("s", struct fz, s, .def = "x"),
    KD_OPT_INT("i", struct fz, i, .has_min = true, .min = -5, .has_max = true, .max = 1000),
    KD_OPT_UINT("u", struct fz, u),
    KD_OPT_DOUBLE("d", struct fz, d, .has_max = true, .max = 1e6),
    KD_OPT_BOOL("b", struct fz, b),
    KD_OPT_DURATION("dur", struct fz, dur, .def = "1s"),
    KD_OPT_ENUM("e", struct fz, e, .choices = choices, .def = "a"),
    KD_OPT_STRLIST("l", struct fz, l),
    KD_CONFIG_END,
};

static void check(int rc, struct kd_error *err)
{
	if (rc < 0 && (!err || !err->msg || !*err->msg))
		abort(); /* every rejection carries a reason */
	if (rc >= 0 && err)
		abort();
	kd_error_free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	struct fz c;
	struct kd_error *err = NULL;

	int rc = kd_config_parse_json_str(opts, &c, "plugin fuzz", text, 0, &err);
	check(rc, err);
	err = NULL;
	if (rc == 0) {
		char *f = kd_config_format_duration(c.dur);
		uint64_t back = 0;
		if (kd_config_parse_duration(f, &back) != 0 || back != c.dur)
			abort();
		free(f);
	}
	kd_config_free(opts, &c);

	/* newline-separated tokens as argv and as a kv list */
	char *argv[65];
	size_t n = 0;
	argv[n++] = (char *)"fuzz";
	for (char *p = text; n < 64;) {
		argv[n++] = p;
		char *nl = strchr(p, '\n');
		if (!nl)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	static FILE *sink;
	if (!sink)
		sink = fopen("/dev/null", "w");
	struct kd_config_cli cli = {.prog = "fuzz", .version = "0", .out = sink};
	int first = 0;
	rc = kd_config_parse_argv(opts, &c, &cli, (int)n, argv, 0, &first, &err);
	check(rc, err);
	err = NULL;
	kd_config_free(opts, &c);
	rc = kd_config_parse_kv(opts, &c, "fuzz", (const char *const *)argv + 1, n - 1, 0, &err);
	check(rc, err);
	kd_config_free(opts, &c);

	uint64_t ms;
	(void)kd_config_parse_duration(argv[1], &ms);
	free(text);
	return 0;
}
