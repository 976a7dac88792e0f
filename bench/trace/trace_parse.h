/* bench/trace/trace_parse.h: the trace replayer's input files, parsed strictly: the Azure
 * Functions 2019 traces (per-minute invocation counts joined with per-function durations), the
 * Azure Functions 2021 per-invocation trace, and the targets TSV (function -> arm, URL, Host).
 *
 * Every parser reads a whole buffer (the load functions read a file first, at most
 * KD_TRACE_FILE_MAX bytes). A refusal is -EINVAL with *err "FILE:LINE: what is wrong" (the
 * column is named when there is one); nothing is ever read as a silent zero. The files are plain
 * comma-separated text without quoting: a '"' is refused, a '\r' before the '\n' is dropped, the
 * last line may lack its '\n', an empty line is refused. */
#ifndef KD_TRACE_PARSE_H
#define KD_TRACE_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kd/error.h"

#define KD_TRACE_FILE_MAX  (512u * 1024u * 1024u) /* bytes per input file */
#define KD_TRACE_LINE_MAX  (1024u * 1024u)        /* bytes per line */
#define KD_TRACE_ID_MAX    256u                   /* bytes per owner/app/function id */
#define KD_TRACE_COUNT_MAX 100000000u             /* invocations of one function in one minute */
#define KD_TRACE_MS_MAX    86400000.0             /* a duration, ms (one day) */

enum kd_trace_format {
	KD_TRACE_AZURE2019 = 1, /* invocations-per-minute + durations */
	KD_TRACE_AZURE2021,     /* one row per invocation */
};

/* One function of a trace, in file order (2019: its invocations row; 2021: its first row). */
struct kd_trace_fn {
	char *owner;   /* 2019 HashOwner; 2021: NULL */
	char *app;     /* HashApp / app */
	char *func;    /* HashFunction / func */
	char *trigger; /* 2019 Trigger; 2021: NULL */
	size_t line;   /* its (first) line in the invocations file */
	/* 2019: the durations file's chosen column (ms, as written) and its line there */
	double duration_ms;
	size_t duration_line;
	/* 2019: n_minutes counts, minute m (0-based) = the file's column "m+1"; 2021: NULL */
	uint32_t *counts;
};

/* One invocation of the 2021 trace. */
struct kd_trace_inv {
	size_t fn;          /* index into fns */
	double start_s;     /* end_timestamp - duration (s from the trace start) */
	double duration_ms; /* duration * 1000 */
	size_t line;
};

struct kd_trace {
	enum kd_trace_format format;
	struct kd_trace_fn *fns; /* the functions kept (see max_fns below) */
	size_t n_fns;
	size_t n_fns_file; /* functions in the file (>= n_fns) */
	/* 2019: the minute columns; 2021: minutes covered by the starts (last start's minute + 1)
	 */
	size_t n_minutes;
	struct kd_trace_inv *invs; /* 2021: the kept functions' invocations, in file order */
	size_t n_invs;
};

/* The 2019 format. inv: header "HashOwner,HashApp,HashFunction,Trigger,1,2,...,N" (the minute
 * columns numbered from 1, in order, at least one), then one row per function (ids of
 * [A-Za-z0-9._:-], a trigger of [A-Za-z0-9_-], N counts: non-negative integers); a function
 * (owner, app, function) appears once. dur: header "HashOwner,HashApp,HashFunction,..." with a
 * column named `column` (e.g. "Average"; every column after the ids is a finite non-negative
 * decimal number in each row), one row per function at most; every kept function must have one
 * (rows of other functions are checked, then ignored). max_fns > 0 keeps the first max_fns
 * functions of inv (the others are checked, not stored). Names (borrowed) prefix the messages;
 * buffers borrowed, need no NUL. 0 with *out owned (kd_trace_free), or -EINVAL with *err. */
int kd_trace_parse_2019(const char *inv_name, const char *inv, size_t inv_len, const char *dur_name,
                        const char *dur, size_t dur_len, const char *column, size_t max_fns,
                        struct kd_trace **out, struct kd_error **err);

/* The 2021 format: header "app,func,end_timestamp,duration", rows of two ids and two finite
 * non-negative decimal numbers (seconds); start = end_timestamp - duration must not be before
 * the trace start by more than 1 ms (a start within 1 ms before 0 is 0: the trace rounds
 * durations to 1 ms). A function is an (app, func) pair, numbered by its first row. max_fns as
 * above. 0 with *out owned, or -EINVAL with *err. */
int kd_trace_parse_2021(const char *name, const char *buf, size_t len, size_t max_fns,
                        struct kd_trace **out, struct kd_error **err);

/* The same from files (paths borrowed; the path names the file in messages). Also -errno with
 * *err when a file cannot be read or is larger than KD_TRACE_FILE_MAX. */
int kd_trace_load_2019(const char *inv_path, const char *dur_path, const char *column,
                       size_t max_fns, struct kd_trace **out, struct kd_error **err);
int kd_trace_load_2021(const char *path, size_t max_fns, struct kd_trace **out,
                       struct kd_error **err);

void kd_trace_free(struct kd_trace *t);

/* Where the invocations of one function go: a row of the targets file. */
struct kd_trace_target {
	char *url;  /* "http://10.88.0.2" (no trailing '/'); owned */
	char *host; /* Host header value, or NULL for curl's own; owned */
	size_t line;
};

/* The targets TSV: rows "INDEX<TAB>ARM<TAB>URL<TAB>HOST" (INDEX: 1-based function index, ARM:
 * [A-Za-z0-9_-]+, URL: http:// or https:// then at least one character, none of them a space or
 * control character, HOST: a Host header value, "-" for none); lines starting with '#' are
 * comments. Rows of other arms are checked and ignored; the rows of `arm` name each function at
 * most once, and each of the first n_fns functions exactly once (rows past n_fns are ignored).
 * 0 with *out an owned array of n_fns targets (kd_trace_targets_free), or -EINVAL with *err. */
int kd_trace_parse_targets(const char *name, const char *buf, size_t len, const char *arm,
                           size_t n_fns, struct kd_trace_target **out, struct kd_error **err);
int kd_trace_load_targets(const char *path, const char *arm, size_t n_fns,
                          struct kd_trace_target **out, struct kd_error **err);
void kd_trace_targets_free(struct kd_trace_target *t, size_t n);

/* Reads a whole file into *buf (owned, NUL-terminated; *len without the NUL), at most max bytes.
 * 0, or -errno with *err ("read FILE: why"). */
int kd_trace_read_file(const char *path, size_t max, char **buf, size_t *len,
                       struct kd_error **err);

#endif /* KD_TRACE_PARSE_H */
