/* bench/trace: the `trace` scenario's replayer. Reads an Azure Functions invocation trace (the
 * 2019 per-minute counts with per-function durations, or the 2021 per-invocation trace), builds
 * a schedule (trace_sched.h), sends each invocation at its time as GET <URL>/?ms=<duration> to
 * its function's target of one arm (trace_replay.h), and reports scheduling latency and
 * per-function slowdown (trace_stats.h): samples.tsv and summary.json in --out, a table on
 * stdout, progress lines on stderr. --plan prints the schedule instead of sending it.
 * bench/trace/run.sh runs it on the rig, once per arm. */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>

#include "kd/config.h"
#include "kd/log.h"
#include "trace_parse.h"
#include "trace_replay.h"
#include "trace_sched.h"
#include "trace_stats.h"

#define PROG "trace"

struct cfg {
	char *invocations, *durations, *duration_column, *invocations2021;
	char *targets, *arm, *out;
	bool plan;
	uint64_t seed, minutes, functions, max_invocations, max_inflight;
	double compress;
	uint64_t warmup_ms, max_duration_ms, timeout_ms, deadline_ms, floor_ms, progress_ms;
	bool check_body;
};

#define C struct cfg
static const struct kd_config_option options[] = {
    KD_OPT_STRING("invocations", C, invocations, .metavar = "FILE",
                  .help = "Azure 2019 invocations CSV (HashOwner,HashApp,HashFunction,Trigger, "
                          "then one count per minute); needs --durations"),
    KD_OPT_STRING("durations", C, durations, .metavar = "FILE",
                  .help = "Azure 2019 durations CSV (per function, ms), joined on "
                          "HashOwner+HashApp+HashFunction"),
    KD_OPT_STRING("duration-column", C, duration_column, .def = "Average", .metavar = "NAME",
                  .help = "the durations column that is a function's execution time (ms)"),
    KD_OPT_STRING("invocations2021", C, invocations2021, .metavar = "FILE",
                  .help = "Azure 2021 trace CSV (app,func,end_timestamp,duration in s; start = "
                          "end_timestamp - duration), instead of --invocations"),
    KD_OPT_STRING("targets", C, targets, .metavar = "FILE",
                  .help = "TSV rows INDEX<TAB>ARM<TAB>URL<TAB>HOST: where function INDEX "
                          "(1-based, trace order) of ARM is sent (HOST '-': none); required "
                          "unless --plan"),
    KD_OPT_STRING("arm", C, arm, .metavar = "NAME",
                  .help = "the arm whose rows of --targets are used; required unless --plan"),
    KD_OPT_STRING("out", C, out, .metavar = "DIR",
                  .help = "write samples.tsv and summary.json there (created); required "
                          "unless --plan"),
    KD_OPT_BOOL("plan", C, plan, .def = "false",
                .help = "print the schedule as TSV on stdout and send nothing"),
    KD_OPT_UINT("seed", C, seed, .def = "20190101",
                .help = "seed of the 2019 arrival times (same seed, same schedule)"),
    KD_OPT_UINT("minutes", C, minutes, .def = "10", .has_max = true, .max = 100000,
                .help = "replay the first M minutes of trace time (0: the whole trace)"),
    KD_OPT_UINT("functions", C, functions, .def = "0", .has_max = true, .max = 1000000,
                .help = "keep the first F functions of the trace (0: all)"),
    KD_OPT_DOUBLE("compress", C, compress, .def = "1", .has_min = true, .min = 0.001,
                  .has_max = true, .max = 1000000,
                  .help = "time compression: wall time = trace time / X (durations are not "
                          "compressed)"),
    KD_OPT_DURATION("warmup", C, warmup_ms, .def = "0s",
                    .help = "invocations scheduled in this first wall time are sent but left "
                            "out of the figures"),
    KD_OPT_DURATION("max-duration", C, max_duration_ms, .def = "2000ms", .has_max = true,
                    .max = 600000,
                    .help = "cap of a requested duration (longer ones are capped and counted)"),
    KD_OPT_UINT("max-invocations", C, max_invocations, .def = "100000", .has_min = true, .min = 1,
                .has_max = true, .max = 10000000,
                .help = "hard bound: the schedule keeps the earliest N (the rest is counted as "
                        "truncated)"),
    KD_OPT_UINT("max-inflight", C, max_inflight, .def = "4096", .has_min = true, .min = 1,
                .has_max = true, .max = 100000,
                .help = "requests in flight at most (also bounded by RLIMIT_NOFILE); a due "
                        "invocation waits for a free slot and its send lag shows it"),
    KD_OPT_DURATION("timeout", C, timeout_ms, .def = "30s", .has_min = true, .min = 1,
                    .has_max = true, .max = 3600000,
                    .help = "per request: curl's total time allowed"),
    KD_OPT_DURATION("deadline", C, deadline_ms, .def = "0",
                    .help = "the whole replay; then the requests in flight are aborted (0: "
                            "the schedule's wall span + --timeout + 5s)"),
    KD_OPT_DURATION("slowdown-floor", C, floor_ms, .def = "1ms", .has_min = true, .min = 1,
                    .help = "slowdown divides by max(requested duration, this)"),
    KD_OPT_BOOL("check-body", C, check_body, .def = "true",
                .help = "a 200 counts as ok only with functions/sleep's body \"slept N ms\" "
                        "for the N requested"),
    KD_OPT_DURATION("progress", C, progress_ms, .def = "5s",
                    .help = "a progress line on stderr this often (0: none)"),
    KD_CONFIG_END,
};
#undef C

static const char epilog[] =
    "\n"
    "Input: exactly one trace, --invocations with --durations (2019) or\n"
    "--invocations2021. A malformed file is refused with FILE:LINE: what is wrong.\n"
    "\n"
    "Schedule (--plan prints it, TSV: seq fn minute trace_s sched_ms trace_ms\n"
    "requested_ms capped warmup): 2019: the count c of a function's minute becomes c\n"
    "arrivals uniform in that minute (a Poisson process conditional on its count:\n"
    "each minute keeps its count exactly), drawn from a stream seeded by --seed, the\n"
    "function and the minute; 2021: the recorded starts (end_timestamp - duration).\n"
    "Wall offset = trace time / --compress. Requested duration = the trace's duration\n"
    "rounded to ms (2019: the --duration-column of the function's durations row),\n"
    "capped at --max-duration.\n"
    "\n"
    "Request: GET <URL>/?ms=<requested ms> with 'Host: <HOST>', HTTP/1.1, kept alive.\n"
    "\n"
    "Measurements (ms): send lag = sent - scheduled; response time = curl's total\n"
    "time; execution time = the requested duration (functions/sleep answers \"slept N\n"
    "ms\" after at least N ms); scheduling latency = response time - execution time;\n"
    "slowdown = response time / max(requested duration, --slowdown-floor);\n"
    "per-function slowdown = the arithmetic mean of its invocations' slowdowns\n"
    "(KubeDirect's figure) and their geometric mean exp(mean(ln x)) (Dirigent's).\n"
    "Percentiles: nearest rank, the sorted sample at ceil(p/100 * n) - 1 (as\n"
    "bench/lib/kdstats.py). The figures count measured invocations: scheduled after\n"
    "the warm-up, and ok (HTTP 200, with --check-body also the body); p50/p99 of\n"
    "per-function slowdown are over the functions with an ok invocation. Send lag\n"
    "counts every invocation sent.\n"
    "\n"
    "Output: DIR/samples.tsv, a header line then one row per invocation: seq fn\n"
    "minute trace_s sched_ms sent_ms send_lag_ms trace_ms requested_ms capped warmup\n"
    "status http_code curl_code response_ms client_ms sched_latency_ms slowdown bytes\n"
    "error (status: ok, http, body, transport, aborted or unsent; '-' where there is\n"
    "no value); DIR/summary.json: the settings, counts, every figure and the\n"
    "per-function slowdowns.\n"
    "\n"
    "Exit: 0 when the replay ran to its end (failed requests are results, counted); 1\n"
    "when an input file is refused, an output cannot be written, or the deadline or a\n"
    "signal cut the run short (the outputs are written all the same); 2 on bad\n"
    "options.\n";

static int check_cfg(void *p, struct kd_error **err)
{
	struct cfg *c = p;
	bool y2019 = c->invocations || c->durations, y2021 = c->invocations2021 != NULL;
	if (y2019 && y2021)
		return kd_error_set(err, EINVAL, 0,
		                    "--invocations2021 and --invocations/--durations: one trace");
	if (!y2019 && !y2021)
		return kd_error_set(err, EINVAL, 0,
		                    "no trace: --invocations FILE --durations FILE, or "
		                    "--invocations2021 FILE");
	if (y2019 && (!c->invocations || !c->durations))
		return kd_error_set(err, EINVAL, 0, "--invocations needs --durations and back");
	if (!c->plan) {
		if (!c->targets || !*c->targets)
			return kd_error_set(err, EINVAL, 0,
			                    "--targets FILE is required (or --plan)");
		if (!c->arm || !*c->arm)
			return kd_error_set(err, EINVAL, 0, "--arm NAME is required (or --plan)");
		if (!c->out || !*c->out)
			return kd_error_set(err, EINVAL, 0, "--out DIR is required (or --plan)");
	}
	if (!c->duration_column || !*c->duration_column)
		return kd_error_set(err, EINVAL, 0, "--duration-column: empty");
	return 0;
}

/* ---- output --------------------------------------------------------------------------------- */

/* v with `decimals` decimals; null for NaN */
static struct json_object *jnum(double v, int decimals)
{
	if (isnan(v) || isinf(v))
		return NULL;
	char buf[64];
	snprintf(buf, sizeof(buf), "%.*f", decimals, v);
	return json_object_new_double_s(v, buf);
}

static struct json_object *jms(double v)
{
	return jnum(v, 3);
}

static struct json_object *jx(double v)
{
	return jnum(v, 4);
}

static struct json_object *jsz(size_t v)
{
	return json_object_new_int64((int64_t)v);
}

static struct json_object *jstr(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static struct json_object *pair(struct json_object *p50, struct json_object *p99)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "p50", p50);
	json_object_object_add(o, "p99", p99);
	return o;
}

static const char *format_name(enum kd_trace_format f)
{
	return f == KD_TRACE_AZURE2019 ? "azure2019" : "azure2021";
}

struct run {
	const struct cfg *c;
	const struct kd_trace *t;
	const struct kd_trace_sched *s;
	const struct kd_trace_result *r;
	const struct kd_trace_summary *sum;
	const struct kd_trace_replay_info *info;
	size_t max_inflight; /* effective */
};

static struct json_object *settings_json(const struct run *u)
{
	const struct cfg *c = u->c;
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "format", json_object_new_string(format_name(u->t->format)));
	json_object_object_add(o, "invocations", jstr(c->invocations));
	json_object_object_add(o, "durations", jstr(c->durations));
	json_object_object_add(o, "duration_column",
	                       u->t->format == KD_TRACE_AZURE2019 ? jstr(c->duration_column)
	                                                          : NULL);
	json_object_object_add(o, "invocations2021", jstr(c->invocations2021));
	json_object_object_add(o, "targets", jstr(c->targets));
	json_object_object_add(o, "arm", jstr(c->arm));
	json_object_object_add(o, "seed", json_object_new_int64((int64_t)c->seed));
	json_object_object_add(o, "minutes", jsz(u->s->minutes));
	json_object_object_add(o, "minutes_option", jsz(c->minutes));
	json_object_object_add(o, "functions", jsz(u->t->n_fns));
	json_object_object_add(o, "functions_option", jsz(c->functions));
	json_object_object_add(o, "compress", jx(c->compress));
	json_object_object_add(o, "warmup_ms", jsz(c->warmup_ms));
	json_object_object_add(o, "max_duration_ms", jsz(c->max_duration_ms));
	json_object_object_add(o, "max_invocations", jsz(c->max_invocations));
	json_object_object_add(o, "max_inflight", jsz(c->max_inflight));
	json_object_object_add(o, "max_inflight_effective", jsz(u->max_inflight));
	json_object_object_add(o, "timeout_ms", jsz(c->timeout_ms));
	json_object_object_add(o, "deadline_ms", jsz(c->deadline_ms));
	json_object_object_add(o, "deadline_ms_effective", jsz(u->info->deadline_ms));
	json_object_object_add(o, "slowdown_floor_ms", jsz(c->floor_ms));
	json_object_object_add(o, "check_body", json_object_new_boolean(c->check_body));
	return o;
}

static int write_summary(const struct run *u, const char *path, struct kd_error **err)
{
	const struct kd_trace_summary *m = u->sum;
	struct json_object *root = json_object_new_object();
	json_object_object_add(root, "scenario", json_object_new_string("trace"));
	json_object_object_add(root, "settings", settings_json(u));

	struct json_object *tr = json_object_new_object();
	json_object_object_add(tr, "functions_in_file", jsz(u->t->n_fns_file));
	json_object_object_add(tr, "minutes_in_file", jsz(u->t->n_minutes));
	json_object_object_add(tr, "invocations_in_window", jsz(u->s->in_window));
	json_object_object_add(tr, "span_wall_ms", jms((double)u->s->span_us / 1000.0));
	json_object_object_add(root, "trace", tr);

	struct json_object *n = json_object_new_object();
	json_object_object_add(n, "scheduled", jsz(m->scheduled));
	json_object_object_add(n, "sent", jsz(m->sent));
	json_object_object_add(n, "measured", jsz(m->measured));
	json_object_object_add(n, "ok", jsz(m->ok));
	json_object_object_add(n, "failed", jsz(m->failed));
	struct json_object *fb = json_object_new_object();
	json_object_object_add(fb, "http", jsz(m->f_http));
	json_object_object_add(fb, "body", jsz(m->f_body));
	json_object_object_add(fb, "transport", jsz(m->f_transport));
	json_object_object_add(fb, "aborted", jsz(m->f_aborted));
	json_object_object_add(fb, "unsent", jsz(m->f_unsent));
	json_object_object_add(n, "failed_by", fb);
	json_object_object_add(n, "discarded", jsz(m->discarded));
	json_object_object_add(n, "warmup_failed", jsz(m->warmup_failed));
	json_object_object_add(n, "capped", jsz(m->capped));
	json_object_object_add(n, "truncated", jsz(m->truncated));
	json_object_object_add(n, "floored", jsz(m->floored));
	json_object_object_add(root, "counts", n);

	struct json_object *lag = pair(jms(m->lag_p50), jms(m->lag_p99));
	json_object_object_add(lag, "max", jms(m->lag_max));
	json_object_object_add(root, "send_lag_ms", lag);
	json_object_object_add(root, "response_ms", pair(jms(m->resp_p50), jms(m->resp_p99)));
	json_object_object_add(root, "sched_latency_ms",
	                       pair(jms(m->sched_p50), jms(m->sched_p99)));

	struct json_object *sl = json_object_new_object();
	json_object_object_add(sl, "invocation", pair(jx(m->slow_p50), jx(m->slow_p99)));
	json_object_object_add(sl, "function_arith",
	                       pair(jx(m->fn_arith_p50), jx(m->fn_arith_p99)));
	json_object_object_add(sl, "function_geo", pair(jx(m->fn_geo_p50), jx(m->fn_geo_p99)));
	json_object_object_add(sl, "functions_measured", jsz(m->fns_measured));
	struct json_object *per = json_object_new_array();
	for (size_t f = 0; f < m->n_fns; f++) {
		const struct kd_trace_fn *fn = &u->t->fns[f];
		struct json_object *x = json_object_new_object();
		json_object_object_add(x, "fn", jsz(f + 1));
		json_object_object_add(x, "owner", jstr(fn->owner));
		json_object_object_add(x, "app", jstr(fn->app));
		json_object_object_add(x, "func", jstr(fn->func));
		json_object_object_add(x, "trigger", jstr(fn->trigger));
		json_object_object_add(x, "n", jsz(m->fns[f].n));
		json_object_object_add(x, "arith", jx(m->fns[f].arith));
		json_object_object_add(x, "geo", jx(m->fns[f].geo));
		json_object_array_add(per, x);
	}
	json_object_object_add(sl, "per_function", per);
	json_object_object_add(root, "slowdown", sl);

	struct json_object *run = json_object_new_object();
	char ts[32] = "";
	time_t sec = (time_t)(u->info->start_wall_ns / 1000000000u);
	struct tm tmv;
	if (gmtime_r(&sec, &tmv))
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tmv);
	json_object_object_add(run, "started_at", json_object_new_string(ts));
	json_object_object_add(run, "elapsed_ms", jsz(u->info->elapsed_ms));
	json_object_object_add(run, "peak_inflight", jsz(u->info->peak_inflight));
	json_object_object_add(run, "deadline_hit", json_object_new_boolean(u->info->deadline_hit));
	json_object_object_add(run, "interrupted", json_object_new_boolean(u->info->interrupted));
	json_object_object_add(run, "aborted", jsz(u->info->aborted));
	json_object_object_add(run, "unsent", jsz(u->info->unsent));
	json_object_object_add(root, "run", run);

	int rc = 0;
	if (json_object_to_file_ext(path, root,
	                            JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE) < 0)
		rc = kd_error_set(err, EIO, 0, "write %s: %s", path, json_util_get_last_err());
	json_object_put(root);
	return rc;
}

/* microseconds as milliseconds with three decimals */
static void ms3(FILE *f, int64_t us)
{
	uint64_t a = us < 0 ? (uint64_t)0 - (uint64_t)us : (uint64_t)us;
	fprintf(f, "%s%" PRIu64 ".%03" PRIu64, us < 0 ? "-" : "", a / 1000u, a % 1000u);
}

static int write_samples(const struct run *u, const char *path, struct kd_error **err)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return kd_error_set(err, errno, 0, "write %s: %s", path, strerror(errno));
	fputs("seq\tfn\tminute\ttrace_s\tsched_ms\tsent_ms\tsend_lag_ms\ttrace_ms\trequested_ms\t"
	      "capped\twarmup\tstatus\thttp_code\tcurl_code\tresponse_ms\tclient_ms\t"
	      "sched_latency_ms\tslowdown\tbytes\terror\n",
	      f);
	for (size_t i = 0; i < u->s->n; i++) {
		const struct kd_trace_call *c = &u->s->calls[i];
		const struct kd_trace_result *r = &u->r[i];
		bool sent = r->sent_us >= 0, answered = sent && r->status != KD_TRACE_UNSENT;
		fprintf(f, "%zu\t%" PRIu32 "\t%" PRIu32 "\t%.6f\t", i + 1, c->fn + 1, c->minute + 1,
		        c->trace_s);
		ms3(f, (int64_t)c->at_us);
		fputc('\t', f);
		if (sent) {
			ms3(f, r->sent_us);
			fputc('\t', f);
			ms3(f, r->sent_us - (int64_t)c->at_us);
		} else {
			fputs("-\t-", f);
		}
		fprintf(f, "\t%" PRIu32 "\t%" PRIu32 "\t%d\t%d\t%s\t%ld\t%d\t", c->trace_ms,
		        c->req_ms, c->capped, c->warmup, kd_trace_status_name(r->status),
		        r->http_code, r->curl_code);
		if (answered) {
			ms3(f, r->response_us);
			fputc('\t', f);
			ms3(f, r->client_us);
		} else {
			fputs("-\t-", f);
		}
		fputc('\t', f);
		if (r->status == KD_TRACE_OK) {
			double rms = (double)r->response_us / 1000.0;
			ms3(f, r->response_us - (int64_t)c->req_ms * 1000);
			fprintf(f, "\t%.4f",
			        kd_trace_slowdown(rms, c->req_ms, (double)u->c->floor_ms));
		} else {
			fputs("-\t-", f);
		}
		fprintf(f, "\t%" PRIu64 "\t%s\n", r->bytes,
		        r->curl_code ? curl_easy_strerror((CURLcode)r->curl_code) : "-");
	}
	int rc = 0;
	if (ferror(f))
		rc = kd_error_set(err, EIO, 0, "write %s: I/O error", path);
	if (fclose(f) != 0 && rc == 0)
		rc = kd_error_set(err, errno, 0, "write %s: %s", path, strerror(errno));
	return rc;
}

static void print_row(const char *name, double p50, double p99, double max, int decimals)
{
	printf("  %-26s", name);
	const double v[3] = {p50, p99, max};
	for (int i = 0; i < 3; i++) {
		if (isnan(v[i]))
			printf(" %10s", "-");
		else
			printf(" %10.*f", decimals, v[i]);
	}
	printf("\n");
}

static void print_table(const struct run *u)
{
	const struct kd_trace_summary *m = u->sum;
	printf("trace %s, arm %s: %zu invocations of %zu functions, %zu min of trace time / %g = "
	       "%.1f s, warm-up %.1f s\n",
	       format_name(u->t->format), u->c->arm, m->scheduled, u->t->n_fns, u->s->minutes,
	       u->c->compress, (double)u->s->span_us / 1e6, (double)u->c->warmup_ms / 1000.0);
	printf("  ok %zu, failed %zu (http %zu, body %zu, transport %zu, aborted %zu, unsent %zu), "
	       "discarded %zu (warm-up), capped %zu (> %" PRIu64 " ms), truncated %zu\n",
	       m->ok, m->failed, m->f_http, m->f_body, m->f_transport, m->f_aborted, m->f_unsent,
	       m->discarded, m->capped, u->c->max_duration_ms, m->truncated);
	printf("  %-26s %10s %10s %10s\n", "", "p50", "p99", "max");
	print_row("send lag ms (all sent)", m->lag_p50, m->lag_p99, m->lag_max, 1);
	print_row("response ms", m->resp_p50, m->resp_p99, NAN, 1);
	print_row("scheduling latency ms", m->sched_p50, m->sched_p99, NAN, 1);
	print_row("slowdown per invocation", m->slow_p50, m->slow_p99, NAN, 3);
	char l1[64], l2[64];
	snprintf(l1, sizeof(l1), "slowdown/fn arith (%zu fn)", m->fns_measured);
	snprintf(l2, sizeof(l2), "slowdown/fn geo (%zu fn)", m->fns_measured);
	print_row(l1, m->fn_arith_p50, m->fn_arith_p99, NAN, 3);
	print_row(l2, m->fn_geo_p50, m->fn_geo_p99, NAN, 3);
	if (u->info->deadline_hit || u->info->interrupted)
		printf("  cut short (%s): %zu aborted in flight, %zu unsent\n",
		       u->info->deadline_hit ? "deadline" : "signal", u->info->aborted,
		       u->info->unsent);
	fflush(stdout);
}

static void print_plan(const struct kd_trace_sched *s)
{
	printf("seq\tfn\tminute\ttrace_s\tsched_ms\ttrace_ms\trequested_ms\tcapped\twarmup\n");
	for (size_t i = 0; i < s->n; i++) {
		const struct kd_trace_call *c = &s->calls[i];
		printf("%zu\t%" PRIu32 "\t%" PRIu32 "\t%.6f\t", i + 1, c->fn + 1, c->minute + 1,
		       c->trace_s);
		ms3(stdout, (int64_t)c->at_us);
		printf("\t%" PRIu32 "\t%" PRIu32 "\t%d\t%d\n", c->trace_ms, c->req_ms, c->capped,
		       c->warmup);
	}
	fflush(stdout);
}

/* mkdir -p */
static int make_dir(const char *path, struct kd_error **err)
{
	kd_autofree char *p = kd_xstrdup(path);
	for (char *q = p + 1; *q; q++) {
		if (*q != '/')
			continue;
		*q = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return kd_error_set(err, errno, 0, "mkdir %s: %s", p, strerror(errno));
		*q = '/';
	}
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		return kd_error_set(err, errno, 0, "mkdir %s: %s", p, strerror(errno));
	struct stat st;
	if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode))
		return kd_error_set(err, ENOTDIR, 0, "--out %s: not a directory", p);
	return 0;
}

/* The requests in flight the open-file limit allows (raised to its hard limit first). */
static size_t inflight_limit(size_t want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return want;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl = up;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (rlim_t)want + 64)
		return want;
	size_t lim = rl.rlim_cur > 128 ? (size_t)rl.rlim_cur - 64 : 64;
	kd_log_warn("--max-inflight %zu: the open-file limit is %llu, using %zu", want,
	            (unsigned long long)rl.rlim_cur, lim);
	return lim;
}

/* Sends the schedule to the arm's targets and writes the outputs; the exit status. */
static int replay(const struct cfg *c, const struct kd_trace *t, const struct kd_trace_sched *s)
{
	kd_autoerr struct kd_error *err = NULL;
	struct kd_trace_target *tg = NULL;
	if (kd_trace_load_targets(c->targets, c->arm, t->n_fns, &tg, &err) < 0 ||
	    make_dir(c->out, &err) < 0) {
		fprintf(stderr, PROG ": %s\n", kd_error_msg(err));
		return 1;
	}
	struct kd_trace_replay_opts ro = {
	    .timeout_ms = c->timeout_ms,
	    .deadline_ms = c->deadline_ms,
	    .max_inflight = inflight_limit(c->max_inflight),
	    .progress_ms = c->progress_ms,
	    .progress = stderr,
	    .check_body = c->check_body,
	    .stop_on_signals = true,
	};
	fprintf(stderr, PROG ": arm %s: %zu invocations of %zu functions over %.1f s\n", c->arm,
	        s->n, s->n_fns, (double)s->span_us / 1e6);
	struct kd_trace_result *res = kd_xcalloc(s->n ? s->n : 1, sizeof(*res));
	struct kd_trace_replay_info info;
	int rc = kd_trace_replay(s, tg, &ro, res, &info, &err);
	int status = 1;
	if (rc < 0 && rc != -ETIMEDOUT && rc != -EINTR) {
		fprintf(stderr, PROG ": %s\n", kd_error_msg(err));
		goto out;
	}
	struct kd_trace_summary sum;
	kd_trace_summarize(s, res, (double)c->floor_ms, &sum);
	struct run u = {.c = c,
	                .t = t,
	                .s = s,
	                .r = res,
	                .sum = &sum,
	                .info = &info,
	                .max_inflight = ro.max_inflight};
	print_table(&u);
	char *samples = kd_xasprintf("%s/samples.tsv", c->out);
	char *summary = kd_xasprintf("%s/summary.json", c->out);
	if (write_samples(&u, samples, &err) < 0 || write_summary(&u, summary, &err) < 0)
		fprintf(stderr, PROG ": %s\n", kd_error_msg(err));
	else if (rc < 0)
		fprintf(stderr, PROG ": wrote %s and %s; the run was cut short (%s)\n", samples,
		        summary, rc == -ETIMEDOUT ? "deadline" : "signal");
	else
		status = 0;
	if (status == 0)
		fprintf(stderr, PROG ": wrote %s and %s\n", samples, summary);
	free(samples);
	free(summary);
	kd_trace_summary_fini(&sum);
out:
	free(res);
	kd_trace_targets_free(tg, t->n_fns);
	return status;
}

int main(int argc, char **argv)
{
	struct cfg c;
	memset(&c, 0, sizeof(c));
	struct kd_config_cli cli = {
	    .prog = PROG,
	    .summary = "Replays an Azure Functions invocation trace against one arm's HTTP targets "
	               "(functions/sleep behind each) and measures scheduling latency and "
	               "per-function slowdown.",
	    .check = check_cfg,
	    .ignore_sigpipe = true,
	};
	int rc = kd_config_main(options, &c, &cli, argc, argv);
	if (rc == 0) { /* --help was shown */
		fputs(epilog, stdout);
		return 0;
	}
	if (rc > 0)
		return rc;
	kd_log_init(PROG, KD_LOG_INFO, KD_LOG_TEXT);
	int status = 1;
	kd_autoerr struct kd_error *err = NULL;
	struct kd_trace *t = NULL;
	struct kd_trace_sched *s = NULL;
	if (c.invocations2021)
		rc = kd_trace_load_2021(c.invocations2021, c.functions, &t, &err);
	else
		rc = kd_trace_load_2019(c.invocations, c.durations, c.duration_column, c.functions,
		                        &t, &err);
	struct kd_trace_sched_opts so = {
	    .seed = c.seed,
	    .minutes = c.minutes,
	    .compress = c.compress,
	    .max_duration_ms = (uint32_t)c.max_duration_ms,
	    .max_invocations = c.max_invocations,
	    .warmup_ms = c.warmup_ms,
	};
	if (rc == 0 && (rc = kd_trace_sched_build(t, &so, &s, &err)) < 0)
		kd_error_wrap(&err, "schedule");
	if (rc < 0 || !t || !s) {
		fprintf(stderr, PROG ": %s\n", kd_error_msg(err));
	} else if (c.plan) {
		print_plan(s);
		fprintf(stderr,
		        PROG ": plan: %zu invocations of %zu functions over %.3f s (%zu truncated, "
		             "%zu capped, %zu warm-up)\n",
		        s->n, s->n_fns, (double)s->span_us / 1e6, s->truncated, s->capped,
		        s->warmup);
		status = 0;
	} else if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, PROG ": curl_global_init failed\n");
	} else {
		status = replay(&c, t, s);
		curl_global_cleanup();
	}
	kd_trace_sched_free(s);
	kd_trace_free(t);
	kd_config_free(options, &c);
	return status;
}
