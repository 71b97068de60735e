#include "hg_core.h"

/*
 * hg_conf: reads scheduler.conf (libconfig) into a hg_conf_t.
 *
 * The file is described once, by the tables below: one line per key with
 * its type, default, bounds and the offset where its value is stored.
 * Everything else is derived from them by walking: defaults (each default
 * is the text a user would write, run through the same code as the file's
 * values, so a default can never be something the file could not say),
 * type checks and messages, did-you-mean hints, freeing, and the -T dump
 * (hg_conf_dump.c).
 *
 * Reading goes in two steps for every leaf value: the libconfig setting is
 * turned into JSON with ${VAR} expanded (that JSON is also what a job's
 * definition holds, so modules see exactly the values the core checked),
 * then the JSON is checked against the key's type and stored. Errors are
 * collected, never fatal: one run of `hourglass -t` lists every problem,
 * each with the file and line of the setting at fault.
 *
 * hg_conf knows nothing of modules, cron or time zones: the cycle checks
 * those and adds its errors to the same list. In particular a job key that
 * is not a common job key is not an error here: it may belong to the
 * job's module (hg_conf_check_job_keys decides, once modules are loaded).
 */

#include <ctype.h>
#include <math.h>
#include <sys/stat.h>
#include <arpa/inet.h>

#include <libconfig.h>

#include "hg_conf.h"
#include "hg_conf_table.h"
#include "hg_hint.h"
#include "hg_map.h"
#include "hg_units.h"
#include "hg_json.h"

#define HG_CONF_DAY_MS        86400000LL
/* A century: longer durations are typos, and keeping them this small
 * means now + duration can never overflow anywhere downstream. */
#define HG_CONF_DURATION_MAX  (36500 * HG_CONF_DAY_MS)
#define HG_CONF_LOC_MAX       512
#define HG_CONF_ID_MAX        128
#define HG_CONF_VAR_MAX       255
/* values quoted in messages are cut to this many bytes */
#define HG_CONF_QUOTE_MAX     64
/* hg_conf_expand's out-of-memory result, distinct from a user error */
#define HG_CONF_NOMEM         (-3)

struct hg_conf_loader_s {
    hg_conf_t *conf;
    hg_conf_errors_t *errors;
    config_t cf;
    char *incdir;                   /* directory of the main file, or NULL */
    json_t *ids;                    /* job id -> "file:line" where first seen */
    bool literal;                   /* strings as they are: no ${VAR} */
    bool from_api;                  /* a client's definition: no pass_env */
    json_t *pass_env;               /* names a shell command referenced */
    bool oom;
};

/* --- the tables ------------------------------------------------------- */

static const char *const hg_conf_log_levels[] = {
    "error", "warn", "info", "debug", NULL          /* hg_log_level_t */
};
static const char *const hg_conf_log_formats[] = {
    "text", "json", NULL                            /* hg_log_format_t */
};
static const char *const hg_conf_drivers[] = {
    "sqlite", "memory", "postgres", "redis", NULL
};
static const char *const hg_conf_roles[] = {
    "read", "execute", "write", "admin", NULL
};
static const char *const hg_conf_overlaps[] = {
    "skip", "queue", "replace", "allow", NULL       /* hg_overlap_t */
};
static const char *const hg_conf_misfires[] = {
    "skip", "run_once", "run_all", NULL             /* hg_misfire_t */
};
static const char *const hg_conf_priorities[] = {
    "low", "normal", "high", "critical", NULL       /* hg_priority_t */
};

static int hg_conf_check_listen(const char *value, char *err, size_t errlen);
static int hg_conf_check_cidr(const char *value, char *err, size_t errlen);
static int hg_conf_check_name(const char *value, char *err, size_t errlen);
static int hg_conf_check_url(const char *value, char *err, size_t errlen);

static void hg_conf_read_jobs(hg_conf_loader_t *ld, const hg_conf_key_t *key,
                              char *base, const config_setting_t *s,
                              const hg_conf_where_t *w);
static void hg_conf_free_jobs(const hg_conf_key_t *key, char *base);
static void hg_conf_read_tokens(hg_conf_loader_t *ld,
                                const hg_conf_key_t *key, char *base,
                                const config_setting_t *s,
                                const hg_conf_where_t *w);
static void hg_conf_free_tokens(const hg_conf_key_t *key, char *base);
static void hg_conf_job_module_key(hg_conf_loader_t *ld,
                                   const hg_conf_section_t *sec, char *base,
                                   const config_setting_t *m,
                                   const hg_conf_where_t *w, json_t *out);
static void hg_conf_module_section(hg_conf_loader_t *ld,
                                   const hg_conf_section_t *sec, char *base,
                                   const config_setting_t *m,
                                   const hg_conf_where_t *w, json_t *out);

static const hg_conf_handler_t hg_conf_jobs_handler = {
    hg_conf_read_jobs, hg_conf_dump_jobs, hg_conf_free_jobs
};
static const hg_conf_handler_t hg_conf_tokens_handler = {
    hg_conf_read_tokens, hg_conf_dump_tokens, hg_conf_free_tokens
};
static void hg_conf_read_channels(hg_conf_loader_t *ld,
                                  const hg_conf_key_t *key, char *base,
                                  const config_setting_t *s,
                                  const hg_conf_where_t *w);
static void hg_conf_free_channels(const hg_conf_key_t *key, char *base);
static const hg_conf_handler_t hg_conf_channels_handler = {
    hg_conf_read_channels, hg_conf_dump_channels, hg_conf_free_channels
};
static void hg_conf_defaults_notify(hg_conf_loader_t *ld,
                                    const hg_conf_section_t *sec, char *base,
                                    const config_setting_t *m,
                                    const hg_conf_where_t *w, json_t *out);

/* HG_CONF_ENUM stores through an int: every enum the table names must be
 * one (it is, for enums of small non-negative values, on every ABI we
 * build for; this says so at compile time). */
_Static_assert(sizeof(hg_log_level_t) == sizeof(int), "enum size");
_Static_assert(sizeof(hg_log_format_t) == sizeof(int), "enum size");
_Static_assert(sizeof(hg_overlap_t) == sizeof(int), "enum size");
_Static_assert(sizeof(hg_misfire_t) == sizeof(int), "enum size");
_Static_assert(sizeof(hg_priority_t) == sizeof(int), "enum size");

#define HG_C(field)  offsetof(hg_conf_t, field)
#define HG_P(field)  offsetof(hg_job_policy_t, field)
#define HG_B(field)  offsetof(hg_backoff_t, field)
#define HG_J(field)  offsetof(hg_job_conf_t, field)
#define HG_T(field)  offsetof(hg_api_token_t, field)

/* log, modules, store and api store straight into hg_conf_t (their group
 * offset is 0); defaults, backoff, jobs and tokens have structs of their
 * own and their offsets are relative to those. */

static const hg_conf_key_t hg_conf_log_keys[] = {
    { .name = "file", .type = HG_CONF_PATH,
      .flags = HG_CONF_NONEMPTY | HG_CONF_DASH,
      .offset = HG_C(log.file), .dflt = "-",
      .help = "\"-\" = standard error" },
    { .name = "level", .type = HG_CONF_ENUM, .offset = HG_C(log.level),
      .dflt = "info", .values = hg_conf_log_levels },
    { .name = "format", .type = HG_CONF_ENUM, .offset = HG_C(log.format),
      .dflt = "text", .values = hg_conf_log_formats },
};

static const hg_conf_section_t hg_conf_log_section = {
    "log", hg_conf_log_keys, HG_NELEMS(hg_conf_log_keys),
    NULL, 0, NULL, NULL
};

static const hg_conf_key_t hg_conf_modules_keys[] = {
    { .name = "path", .type = HG_CONF_PATH, .flags = HG_CONF_NONEMPTY,
      .offset = HG_C(modules.path), .dflt = "modules",
      .help = "where NAME.so is looked for" },
    { .name = "load", .type = HG_CONF_STRING_LIST,
      .flags = HG_CONF_NONEMPTY | HG_CONF_UNIQUE,
      .offset = HG_C(modules.load), .offset2 = HG_C(modules.nload),
      .dflt = "", .help = "NAME (NAME.so in path) or a path to a .so" },
};

static const hg_conf_section_t hg_conf_modules_section = {
    "modules", hg_conf_modules_keys, HG_NELEMS(hg_conf_modules_keys),
    NULL, 0, hg_conf_module_section, hg_conf_dump_modules
};

static const hg_conf_key_t hg_conf_store_keys[] = {
    { .name = "driver", .type = HG_CONF_ENUM_STRING, .flags = HG_CONF_RESTART,
      .offset = HG_C(store.driver), .dflt = "sqlite",
      .values = hg_conf_drivers },
    { .name = "path", .type = HG_CONF_PATH,
      .flags = HG_CONF_NONEMPTY | HG_CONF_RESTART,
      .offset = HG_C(store.path), .dflt = "var/hourglass.db",
      .help = "the database file of drivers sqlite and redis" },
    { .name = "url", .type = HG_CONF_STRING,
      .flags = HG_CONF_NONEMPTY | HG_CONF_RESTART,
      .offset = HG_C(store.url), .help = "for driver postgres or redis" },
    { .name = "retention", .type = HG_CONF_DURATION,
      .offset = HG_C(store.retention_ms), .dflt = "30d",
      .min = 0, .max = HG_CONF_DURATION_MAX,
      .help = "how long finished executions are kept; 0s = forever" },
    { .name = "claim_ttl", .type = HG_CONF_DURATION, .flags = HG_CONF_RESTART,
      .offset = HG_C(store.claim_ttl_ms), .dflt = "1d",
      .min = 60 * 1000, .max = HG_CONF_DURATION_MAX,
      .help = "driver redis: how long the claim of a fire time is kept" },
};

static const hg_conf_section_t hg_conf_store_section = {
    "store", hg_conf_store_keys, HG_NELEMS(hg_conf_store_keys),
    NULL, 0, NULL, NULL
};

static const hg_conf_key_t hg_conf_cluster_keys[] = {
    { .name = "instance", .type = HG_CONF_STRING,
      .flags = HG_CONF_NONEMPTY | HG_CONF_RESTART,
      .offset = HG_C(cluster.instance), .check = hg_conf_check_name,
      .help = "this instance's name in the cluster; default the host name" },
    { .name = "lease", .type = HG_CONF_DURATION, .flags = HG_CONF_RESTART,
      .offset = HG_C(cluster.lease_ms), .dflt = "10s",
      .min = 1000, .max = 3600 * 1000,
      .help = "how long an instance that stopped answering keeps its work" },
};

static const hg_conf_section_t hg_conf_cluster_section = {
    "cluster", hg_conf_cluster_keys, HG_NELEMS(hg_conf_cluster_keys),
    NULL, 0, NULL, NULL
};

static const hg_conf_key_t hg_conf_tracing_keys[] = {
    { .name = "otlp", .type = HG_CONF_STRING,
      .flags = HG_CONF_REQUIRED | HG_CONF_NONEMPTY,
      .offset = HG_C(tracing.otlp), .check = hg_conf_check_url,
      .help = "the collector's OTLP/HTTP base URL (POST .../v1/traces)" },
    { .name = "service_name", .type = HG_CONF_STRING,
      .flags = HG_CONF_NONEMPTY, .offset = HG_C(tracing.service_name),
      .dflt = "hourglass" },
    { .name = "batch", .type = HG_CONF_INT, .offset = HG_C(tracing.batch),
      .dflt = "512", .min = 1, .max = 8192, .help = "spans per export" },
    { .name = "queue", .type = HG_CONF_INT, .offset = HG_C(tracing.queue),
      .dflt = "2048", .min = 1, .max = 1000000,
      .help = "spans held at most; beyond, dropped and counted" },
    { .name = "interval", .type = HG_CONF_DURATION,
      .offset = HG_C(tracing.interval_ms), .dflt = "1s",
      .min = 10, .max = 3600 * 1000,
      .help = "how long a span waits for its batch to fill" },
    { .name = "retries", .type = HG_CONF_INT, .offset = HG_C(tracing.retries),
      .dflt = "3", .min = 0, .max = 100,
      .help = "of an export, with the defaults' backoff" },
    { .name = "timeout", .type = HG_CONF_DURATION,
      .offset = HG_C(tracing.timeout_ms), .dflt = "10s",
      .min = 100, .max = 3600 * 1000, .help = "of an export's try" },
};

static const hg_conf_section_t hg_conf_tracing_section = {
    "tracing", hg_conf_tracing_keys, HG_NELEMS(hg_conf_tracing_keys),
    NULL, 0, NULL, NULL
};

static const hg_conf_key_t hg_conf_token_keys[] = {
    { .name = "name", .type = HG_CONF_STRING, .flags = HG_CONF_REQUIRED,
      .offset = HG_T(name), .check = hg_conf_check_name },
    { .name = "token", .type = HG_CONF_STRING,
      .flags = HG_CONF_REQUIRED | HG_CONF_NONEMPTY | HG_CONF_SECRET,
      .offset = HG_T(token) },
    { .name = "role", .type = HG_CONF_ENUM_STRING, .flags = HG_CONF_REQUIRED,
      .offset = HG_T(role), .values = hg_conf_roles },
};

const hg_conf_section_t hg_conf_token_section = {
    "tokens", hg_conf_token_keys, HG_NELEMS(hg_conf_token_keys),
    NULL, 0, NULL, NULL
};

static const hg_conf_key_t hg_conf_tls_keys[] = {
    { .name = "cert", .type = HG_CONF_PATH,
      .flags = HG_CONF_REQUIRED | HG_CONF_NONEMPTY | HG_CONF_RESTART,
      .offset = HG_C(api.tls_cert),
      .help = "PEM certificate (with its chain) served over HTTPS" },
    { .name = "key", .type = HG_CONF_PATH,
      .flags = HG_CONF_REQUIRED | HG_CONF_NONEMPTY | HG_CONF_RESTART,
      .offset = HG_C(api.tls_key), .help = "its PEM private key" },
};

static const hg_conf_section_t hg_conf_tls_section = {
    "tls", hg_conf_tls_keys, HG_NELEMS(hg_conf_tls_keys),
    NULL, 0, NULL, NULL
};

static const hg_conf_key_t hg_conf_api_keys[] = {
    { .name = "listen", .type = HG_CONF_STRING,
      .flags = HG_CONF_NONEMPTY | HG_CONF_RESTART,
      .offset = HG_C(api.listen), .dflt = "127.0.0.1:8080",
      .check = hg_conf_check_listen },
    { .name = "allow", .type = HG_CONF_STRING_LIST,
      .flags = HG_CONF_NONEMPTY,
      .offset = HG_C(api.allow), .offset2 = HG_C(api.nallow),
      .dflt = "127.0.0.0/8 ::1/128", .check = hg_conf_check_cidr,
      .help = "clients outside these get 403" },
    { .name = "tokens", .type = HG_CONF_HANDLER,
      .handler = &hg_conf_tokens_handler },
    { .name = "body_limit", .type = HG_CONF_SIZE,
      .offset = HG_C(api.body_limit), .dflt = "1MiB",
      .min = 1024, .max = 1LL << 30 },
    { .name = "timeout", .type = HG_CONF_DURATION,
      .flags = HG_CONF_RESTART,
      .offset = HG_C(api.timeout_ms), .dflt = "30s",
      .min = 1000, .max = 3600 * 1000,
      .help = "a client that sends its request slower is cut off" },
    { .name = "tls", .type = HG_CONF_GROUP,
      .flags = HG_CONF_PRESENCE | HG_CONF_RESTART,
      .offset2 = HG_C(api.tls), .section = &hg_conf_tls_section },
};

static const hg_conf_section_t hg_conf_api_section = {
    "api", hg_conf_api_keys, HG_NELEMS(hg_conf_api_keys),
    NULL, 0, NULL, NULL
};

static const hg_conf_key_t hg_conf_backoff_keys[] = {
    { .name = "initial", .type = HG_CONF_DURATION, .offset = HG_B(initial_ms),
      .dflt = "1s", .min = 0, .max = HG_CONF_DURATION_MAX,
      .help = "delay before the first retry" },
    { .name = "max", .type = HG_CONF_DURATION, .offset = HG_B(max_ms),
      .dflt = "1h", .min = 0, .max = HG_CONF_DURATION_MAX },
    { .name = "multiplier", .type = HG_CONF_REAL, .offset = HG_B(multiplier),
      .dflt = "2.0", .rmin = 1.0, .rmax = 1000.0 },
    { .name = "jitter", .type = HG_CONF_REAL, .offset = HG_B(jitter),
      .dflt = "0.1", .rmin = 0.0, .rmax = 1.0,
      .help = "fraction of the delay added at random" },
};

static const hg_conf_section_t hg_conf_backoff_section = {
    "backoff", hg_conf_backoff_keys, HG_NELEMS(hg_conf_backoff_keys),
    NULL, 0, NULL, NULL
};

#define HG_L(field)  offsetof(hg_limits_t, field)

static const hg_conf_key_t hg_conf_limits_keys[] = {
    { .name = "memory", .type = HG_CONF_SIZE, .offset = HG_L(memory),
      .min = 1024 * 1024, .max = INT64_MAX,
      .help = "memory of the execution's processes; killed beyond it" },
    { .name = "cpu", .type = HG_CONF_REAL, .offset = HG_L(cpu),
      .rmin = 0.01, .rmax = 4096.0, .help = "cores (0.5 = half of one)" },
    { .name = "tasks", .type = HG_CONF_INT, .offset = HG_L(tasks),
      .min = 1, .max = 4194304, .help = "processes and threads at once" },
};

static const hg_conf_section_t hg_conf_limits_section = {
    "limits", hg_conf_limits_keys, HG_NELEMS(hg_conf_limits_keys),
    NULL, 0, NULL, NULL
};

static const hg_conf_key_t hg_conf_policy_keys[] = {
    { .name = "timeout", .type = HG_CONF_DURATION, .offset = HG_P(timeout_ms),
      .dflt = "5m", .min = 0, .max = HG_CONF_DURATION_MAX,
      .help = "0s = none" },
    { .name = "max_retries", .type = HG_CONF_INT, .offset = HG_P(max_retries),
      .dflt = "3", .min = 0, .max = 1000 },
    { .name = "backoff", .type = HG_CONF_GROUP, .offset = HG_P(backoff),
      .section = &hg_conf_backoff_section },
    { .name = "limits", .type = HG_CONF_GROUP, .offset = HG_P(limits),
      .section = &hg_conf_limits_section,
      .help = "per execution, through its cgroup; none by default" },
    { .name = "overlap", .type = HG_CONF_ENUM, .offset = HG_P(overlap),
      .dflt = "skip", .values = hg_conf_overlaps,
      .help = "when the previous run is still going" },
    { .name = "misfire", .type = HG_CONF_ENUM, .offset = HG_P(misfire),
      .dflt = "run_once", .values = hg_conf_misfires,
      .help = "fire times missed while the daemon was down" },
    { .name = "starting_deadline", .type = HG_CONF_DURATION,
      .offset = HG_P(starting_deadline_ms), .dflt = "0s",
      .min = 0, .max = HG_CONF_DURATION_MAX, .help = "0s = none" },
    { .name = "priority", .type = HG_CONF_ENUM, .offset = HG_P(priority),
      .dflt = "normal", .values = hg_conf_priorities },
    { .name = "jitter", .type = HG_CONF_DURATION, .offset = HG_P(jitter_ms),
      .dflt = "0s", .min = 0, .max = HG_CONF_DURATION_MAX,
      .help = "random start delay up to this; 0s = none" },
};

const hg_conf_section_t hg_conf_policy_section = {
    "defaults", hg_conf_policy_keys, HG_NELEMS(hg_conf_policy_keys),
    NULL, 0, hg_conf_defaults_notify, NULL
};

/* The common job keys; the policy keys come with them through `also`. */
static const hg_conf_key_t hg_conf_job_keys[] = {
    { .name = "id", .type = HG_CONF_STRING, .flags = HG_CONF_REQUIRED,
      .offset = HG_J(id) },
    { .name = "name", .type = HG_CONF_STRING, .offset = HG_J(name) },
    { .name = "description", .type = HG_CONF_STRING,
      .offset = HG_J(description) },
    { .name = "type", .type = HG_CONF_STRING,
      .flags = HG_CONF_REQUIRED | HG_CONF_NONEMPTY, .offset = HG_J(type) },
    { .name = "schedule", .type = HG_CONF_STRING, .flags = HG_CONF_NONEMPTY,
      .offset = HG_J(schedule) },
    { .name = "every", .type = HG_CONF_DURATION, .offset = HG_J(every_ms),
      .min = 1, .max = HG_CONF_DURATION_MAX },
    { .name = "at", .type = HG_CONF_STRING, .flags = HG_CONF_NONEMPTY,
      .offset = HG_J(at) },
    { .name = "start_at", .type = HG_CONF_STRING, .flags = HG_CONF_NONEMPTY,
      .offset = HG_J(start_at) },
    { .name = "timezone", .type = HG_CONF_STRING, .flags = HG_CONF_NONEMPTY,
      .offset = HG_J(timezone) },
    { .name = "enabled", .type = HG_CONF_BOOL, .offset = HG_J(enabled),
      .dflt = "true" },
    { .name = "tags", .type = HG_CONF_STRING_ARRAY,
      .flags = HG_CONF_NONEMPTY, .offset = HG_J(tags) },
};

const hg_conf_section_t hg_conf_job_section = {
    "job", hg_conf_job_keys, HG_NELEMS(hg_conf_job_keys),
    &hg_conf_policy_section, HG_J(policy), hg_conf_job_module_key, NULL
};

static const hg_conf_key_t hg_conf_root_keys[] = {
    { .name = "daemon", .type = HG_CONF_BOOL, .flags = HG_CONF_RESTART,
      .offset = HG_C(daemon), .dflt = "false",
      .help = "detach from the terminal" },
    { .name = "pid", .type = HG_CONF_PATH,
      .flags = HG_CONF_NONEMPTY | HG_CONF_RESTART,
      .offset = HG_C(pid), .dflt = "var/hourglass.pid" },
    { .name = "workers", .type = HG_CONF_INT_AUTO, .offset = HG_C(workers),
      .dflt = "auto", .min = 1, .max = 1024,
      .help = "worker processes; \"auto\" = one per CPU" },
    { .name = "timezone", .type = HG_CONF_STRING, .flags = HG_CONF_NONEMPTY,
      .offset = HG_C(timezone),
      .help = "of schedules; not set: the local zone (TZ)" },
    { .name = "shutdown_timeout", .type = HG_CONF_DURATION,
      .offset = HG_C(shutdown_timeout_ms), .dflt = "30s",
      .min = 0, .max = HG_CONF_DAY_MS,
      .help = "graceful stop: how long running jobs may finish" },
    { .name = "reload_timeout", .type = HG_CONF_DURATION,
      .offset = HG_C(reload_timeout_ms), .dflt = "60s",
      .min = 100, .max = HG_CONF_DAY_MS,
      .help = "a reload that takes longer to read the file fails" },
    { .name = "log", .type = HG_CONF_GROUP, .section = &hg_conf_log_section },
    { .name = "modules", .type = HG_CONF_GROUP,
      .section = &hg_conf_modules_section },
    { .name = "store", .type = HG_CONF_GROUP,
      .section = &hg_conf_store_section },
    { .name = "api", .type = HG_CONF_GROUP,
      .flags = HG_CONF_PRESENCE | HG_CONF_RESTART,
      .offset2 = HG_C(api.enabled), .section = &hg_conf_api_section },
    { .name = "cluster", .type = HG_CONF_GROUP,
      .flags = HG_CONF_PRESENCE | HG_CONF_RESTART,
      .offset2 = HG_C(cluster.enabled), .section = &hg_conf_cluster_section },
    { .name = "tracing", .type = HG_CONF_GROUP, .flags = HG_CONF_PRESENCE,
      .offset2 = HG_C(tracing.enabled), .section = &hg_conf_tracing_section },
    { .name = "defaults", .type = HG_CONF_GROUP, .offset = HG_C(defaults),
      .section = &hg_conf_policy_section },
    { .name = "channels", .type = HG_CONF_HANDLER,
      .handler = &hg_conf_channels_handler },
    /* late: a job starts from `defaults`, wherever the file puts them */
    { .name = "jobs", .type = HG_CONF_HANDLER, .flags = HG_CONF_LATE,
      .handler = &hg_conf_jobs_handler },
};

const hg_conf_section_t hg_conf_root_section = {
    "", hg_conf_root_keys, HG_NELEMS(hg_conf_root_keys),
    NULL, 0, NULL, NULL
};

const hg_conf_key_t *
hg_conf_section_find(const hg_conf_section_t *sec, const char *name,
                     size_t *offset)
{
    size_t i, sub;
    const hg_conf_key_t *key;

    for (i = 0; i < sec->nkeys; i++) {
        if (strcmp(sec->keys[i].name, name) == 0) {
            *offset = 0;
            return &sec->keys[i];
        }
    }
    if (sec->also != NULL) {
        key = hg_conf_section_find(sec->also, name, &sub);
        if (key != NULL) {
            *offset = sec->also_offset + sub;
            return key;
        }
    }
    return NULL;
}

/* The key names of SEC (and its `also`), NULL-terminated, into names. */
static void
hg_conf_section_names(const hg_conf_section_t *sec, const char **names,
                      size_t max)
{
    size_t n = 0, i;
    const hg_conf_section_t *s;

    for (s = sec; s != NULL; s = s->also) {
        for (i = 0; i < s->nkeys && n + 1 < max; i++) {
            names[n++] = s->keys[i].name;
        }
    }
    names[n] = NULL;
}

/* --- errors ----------------------------------------------------------- */

static void hg_conf_error_addv(hg_conf_errors_t *errors, const char *file,
                               int line, const char *fmt, va_list ap)
    HG_PRINTF(4, 0);

/*
 * The record of an error that could not be recorded for want of memory:
 * static, so that saying so needs none. The list keeps a free slot after
 * every addition for it; a list that could not be allocated at all
 * becomes the static one-item list (never written, never freed), and
 * takes nothing more.
 */
static char hg_conf_nomem_text[] = "out of memory";
static hg_conf_error_t hg_conf_nomem_list[1] = {
    { NULL, 0, hg_conf_nomem_text }
};

static void
hg_conf_error_nomem(hg_conf_errors_t *errors)
{
    hg_conf_error_t *e;

    if (errors->capacity == 0) {
        errors->items = hg_conf_nomem_list;
        errors->count = 1;
        return;
    }
    if (errors->count > 0
        && errors->items[errors->count - 1].message == hg_conf_nomem_text)
    {
        return;                     /* said once */
    }
    e = &errors->items[errors->count++];
    e->file = NULL;
    e->line = 0;
    e->message = hg_conf_nomem_text;
}

static void
hg_conf_error_addv(hg_conf_errors_t *errors, const char *file, int line,
                   const char *fmt, va_list ap)
{
    hg_conf_error_t *e;
    char *msg = NULL, *f = NULL;

    if (errors == NULL || errors->items == hg_conf_nomem_list) {
        return;
    }
    if (errors->count + 1 >= errors->capacity) {
        size_t cap = errors->capacity ? errors->capacity * 2 : 8;
        hg_conf_error_t *items = realloc(errors->items, cap * sizeof(*items));
        if (items == NULL) {
            hg_conf_error_nomem(errors);
            return;
        }
        errors->items = items;
        errors->capacity = cap;
    }
    if (vasprintf(&msg, fmt, ap) < 0) {
        hg_conf_error_nomem(errors);
        return;
    }
    if (file != NULL && (f = strdup(file)) == NULL) {
        free(msg);
        hg_conf_error_nomem(errors);
        return;
    }
    e = &errors->items[errors->count++];
    e->file = f;
    e->line = line;
    e->message = msg;
}

void
hg_conf_error_add(hg_conf_errors_t *errors, const char *file, int line,
                  const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    hg_conf_error_addv(errors, file, line, fmt, ap);
    va_end(ap);
}

void
hg_conf_errors_print(const hg_conf_errors_t *errors, FILE *out)
{
    size_t i;

    for (i = 0; errors != NULL && i < errors->count; i++) {
        const hg_conf_error_t *e = &errors->items[i];
        if (e->file != NULL && e->line > 0) {
            fprintf(out, "%s:%d: %s\n", e->file, e->line, e->message);
        } else if (e->file != NULL) {
            fprintf(out, "%s: %s\n", e->file, e->message);
        } else {
            fprintf(out, "%s\n", e->message);
        }
    }
}

void
hg_conf_errors_free(hg_conf_errors_t *errors)
{
    size_t i;

    if (errors == NULL) {
        return;
    }
    for (i = 0; errors->items != hg_conf_nomem_list && i < errors->count;
         i++)
    {
        free(errors->items[i].file);
        if (errors->items[i].message != hg_conf_nomem_text) {
            free(errors->items[i].message);
        }
    }
    if (errors->items != hg_conf_nomem_list) {
        free(errors->items);
    }
    errors->items = NULL;
    errors->count = 0;
    errors->capacity = 0;
}

/*
 * The file a setting comes from, as a path the user can open. libconfig
 * (1.5) records an @included file by the name written in the @include,
 * which is relative to the include directory, not to the current one.
 */
static const char *
hg_conf_setting_file(hg_conf_loader_t *ld, const config_setting_t *s,
                     char *buf, size_t len)
{
    const char *f = s != NULL ? config_setting_source_file(s) : NULL;
    size_t dl;

    if (f == NULL || ld->conf->file == NULL
        || strcmp(f, ld->conf->file) == 0)
    {
        return ld->conf->file;
    }
    if (ld->incdir == NULL || f[0] == '/') {
        return f;
    }
    dl = strlen(ld->incdir);
    if (strncmp(f, ld->incdir, dl) == 0 && f[dl] == '/') {
        return f;               /* a libconfig that already joined them */
    }
    snprintf(buf, len, "%s/%s", ld->incdir, f);
    return buf;
}

static int
hg_conf_setting_line(const config_setting_t *s)
{
    return s != NULL ? (int) config_setting_source_line(s) : 0;
}

static void hg_conf_err(hg_conf_loader_t *ld, const config_setting_t *s,
                        const char *fmt, ...) HG_PRINTF(3, 4);

/* An error at the file and line of s (or the main file, line 0). */
static void
hg_conf_err(hg_conf_loader_t *ld, const config_setting_t *s,
            const char *fmt, ...)
{
    char file[PATH_MAX];
    size_t before = ld->errors->count;
    va_list ap;

    va_start(ap, fmt);
    hg_conf_error_addv(ld->errors,
                       hg_conf_setting_file(ld, s, file, sizeof(file)),
                       hg_conf_setting_line(s), fmt, ap);
    va_end(ap);
    if (ld->errors->count == before) {
        ld->oom = true;         /* an error we could not record must fail */
    }
}

/* SETTING (at S), for USE, runs as executions of module type TYPE (the
 * type hg_notify.c and hg_otlp.c give their internal jobs): kept in
 * conf->served_by for the cycle, which knows the modules, to check (see
 * hg_conf.h). */
static void
hg_conf_served_by(hg_conf_loader_t *ld, const config_setting_t *s,
                  const char *type, const char *setting, const char *use)
{
    hg_conf_t *conf = ld->conf;
    char file[PATH_MAX];
    const char *where = hg_conf_setting_file(ld, s, file, sizeof(file));

    if (conf->served_by == NULL
        && (conf->served_by = json_array()) == NULL)
    {
        ld->oom = true;
        return;
    }
    if (json_array_append_new(conf->served_by,
                              json_pack("{sssssssssi}", "type", type,
                                        "setting", setting, "use", use,
                                        "file", where != NULL ? where : "",
                                        "line", hg_conf_setting_line(s)))
        != 0)
    {
        ld->oom = true;
    }
}

/* `"value"` for a message, cut short and with control bytes shown as '?'. */
static const char *
hg_conf_quote(const char *s, char *buf, size_t len)
{
    size_t i, o = 0;

    if (len < HG_CONF_QUOTE_MAX + 8) {
        return "";
    }
    buf[o++] = '"';
    for (i = 0; s[i] != '\0' && i < HG_CONF_QUOTE_MAX; i++) {
        buf[o++] = iscntrl((unsigned char) s[i]) ? '?' : s[i];
    }
    if (s[i] != '\0') {
        buf[o++] = '.';
        buf[o++] = '.';
        buf[o++] = '.';
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* What a setting is, for "expected X, got Y": `a string "many"`. */
static const char *
hg_conf_describe(const config_setting_t *s, char *buf, size_t len)
{
    char q[HG_CONF_QUOTE_MAX + 8];

    if (s == NULL) {
        return "the built-in default";
    }
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        snprintf(buf, len, "an integer %lld", config_setting_get_int64(s));
        break;
    case CONFIG_TYPE_FLOAT:
        snprintf(buf, len, "a number %g", config_setting_get_float(s));
        break;
    case CONFIG_TYPE_BOOL:
        snprintf(buf, len, "%s", config_setting_get_bool(s) ? "true" : "false");
        break;
    case CONFIG_TYPE_STRING:
        snprintf(buf, len, "a string %s",
                 hg_conf_quote(config_setting_get_string(s), q, sizeof(q)));
        break;
    case CONFIG_TYPE_ARRAY:
    case CONFIG_TYPE_LIST:
        snprintf(buf, len, "a list");
        break;
    case CONFIG_TYPE_GROUP:
        snprintf(buf, len, "a group");
        break;
    default:
        snprintf(buf, len, "nothing");
        break;
    }
    return buf;
}

/* "a, b, c" from a NULL-terminated list. */
static const char *
hg_conf_join(const char *const *values, const char *sep, char *buf,
             size_t len)
{
    size_t i, o = 0;

    buf[0] = '\0';
    for (i = 0; values[i] != NULL && o < len; i++) {
        int w = snprintf(buf + o, len - o, "%s%s", i ? sep : "", values[i]);
        if (w < 0) {
            break;
        }
        o += (size_t) w;
    }
    return buf;
}

/* `job "x": backoff.initial`, `log.level`, `workers`: what a message about
 * a value starts with. */
static const char *
hg_conf_loc(const hg_conf_where_t *w, const char *name, char *buf,
            size_t len)
{
    bool group = w->group != NULL && w->group[0] != '\0';

    snprintf(buf, len, "%s%s%s%s%s", w->job ? w->job : "", w->job ? ": " : "",
             group ? w->group : "", group ? "." : "", name);
    return buf;
}

/* ` in log`, ` in job "x"`, ` in backoff of job "x"`: where an unknown
 * key was found. */
static const char *
hg_conf_where(const hg_conf_where_t *w, char *buf, size_t len)
{
    bool group = w->group != NULL && w->group[0] != '\0';

    if (w->job != NULL && group) {
        snprintf(buf, len, " in %s of %s", w->group, w->job);
    } else if (w->job != NULL) {
        snprintf(buf, len, " in %s", w->job);
    } else if (group) {
        snprintf(buf, len, " in %s", w->group);
    } else {
        buf[0] = '\0';
    }
    return buf;
}

static void
hg_conf_unknown(hg_conf_loader_t *ld, const hg_conf_section_t *sec,
                const config_setting_t *m, const hg_conf_where_t *w)
{
    const char *names[64], *hint;
    char where[HG_CONF_LOC_MAX], list[HG_CONF_LOC_MAX];
    const char *name = config_setting_name(m);

    hg_conf_section_names(sec, names, HG_NELEMS(names));
    hint = hg_hint_closest(name, names);
    hg_conf_where(w, where, sizeof(where));
    if (hint != NULL) {
        hg_conf_err(ld, m, "unknown key \"%s\"%s (did you mean \"%s\"?)",
                    name, where, hint);
    } else {
        hg_conf_err(ld, m, "unknown key \"%s\"%s (known keys: %s)", name,
                    where, hg_conf_join(names, ", ", list, sizeof(list)));
    }
}

/* --- ${VAR} expansion ------------------------------------------------- */

typedef struct {
    char *p;
    size_t len;
    size_t cap;
} hg_conf_buf_t;

static int
hg_conf_buf_add(hg_conf_buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        char *p;

        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        p = realloc(b->p, cap);
        if (p == NULL) {
            return HG_ERROR;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return HG_OK;
}

static bool
hg_conf_var_name_ok(const char *name, size_t len)
{
    size_t i;

    if (len == 0 || len > HG_CONF_VAR_MAX || isdigit((unsigned char) name[0])) {
        return false;
    }
    for (i = 0; i < len; i++) {
        if (!isalnum((unsigned char) name[i]) && name[i] != '_') {
            return false;
        }
    }
    return true;
}

/* Appends NAME to the array LIST unless it is there already. */
static int
hg_conf_name_add(json_t *list, const char *name)
{
    size_t i;

    for (i = 0; i < json_array_size(list); i++) {
        const char *have = json_string_value(json_array_get(list, i));
        if (have != NULL && strcmp(have, name) == 0) {
            return HG_OK;
        }
    }
    return json_array_append_new(list, json_string(name)) == 0
           ? HG_OK : HG_ERROR;
}

/* Appends every string of the array FROM to LIST, skipping names LIST
 * has. HG_ERROR when out of memory. */
static int
hg_conf_names_merge(json_t *list, const json_t *from)
{
    const char *name;
    size_t i;

    for (i = 0; i < json_array_size(from); i++) {
        name = json_string_value(json_array_get(from, i));
        if (name != NULL && hg_conf_name_add(list, name) != HG_OK) {
            return HG_ERROR;
        }
    }
    return HG_OK;
}

/* HG_OK, HG_ERROR (err says why) or HG_CONF_NOMEM. With REFS (a JSON
 * array), a reference is checked as usual but kept as written, for sh to
 * expand, and its name, when set, appended to REFS. */
static int
hg_conf_expand(const char *in, char **out, json_t *refs, char *err,
               size_t errlen)
{
    hg_conf_buf_t b = { NULL, 0, 0 };
    const char *p = in;
    int rc = HG_CONF_NOMEM;

    *out = NULL;
    if (hg_conf_buf_add(&b, "", 0) != HG_OK) {
        goto failed;
    }
    while (*p != '\0') {
        const char *dollar = strchr(p, '$'), *body, *end, *dflt;
        char name[HG_CONF_VAR_MAX + 1];
        size_t nlen;
        const char *value;

        if (dollar == NULL) {
            if (hg_conf_buf_add(&b, p, strlen(p)) != HG_OK) {
                goto failed;
            }
            break;
        }
        if (hg_conf_buf_add(&b, p, (size_t) (dollar - p)) != HG_OK) {
            goto failed;
        }
        if (dollar[1] != '{') {
            /* "$$" is one "$"; a "$" before anything else is itself, so
             * that shell text like "$HOME" passes through untouched */
            if (hg_conf_buf_add(&b, "$", 1) != HG_OK) {
                goto failed;
            }
            p = dollar + (dollar[1] == '$' ? 2 : 1);
            continue;
        }

        body = dollar + 2;
        end = strchr(body, '}');
        if (end == NULL) {
            snprintf(err, errlen, "unterminated \"${\" (end it with \"}\", "
                     "or write \"$$\" for a literal \"$\")");
            rc = HG_ERROR;
            goto failed;
        }
        dflt = NULL;
        for (nlen = 0; body + nlen < end; nlen++) {
            if (body[nlen] == ':' && body[nlen + 1] == '-') {
                dflt = body + nlen + 2;
                break;
            }
        }
        if (!hg_conf_var_name_ok(body, nlen)) {
            snprintf(err, errlen, "\"${%.*s}\" is not a valid reference: a "
                     "variable name is letters, digits and _, not starting "
                     "with a digit (write \"$$\" for a literal \"$\")",
                     (int) (end - body < 64 ? end - body : 64), body);
            rc = HG_ERROR;
            goto failed;
        }
        memcpy(name, body, nlen);
        name[nlen] = '\0';
        /* the default is plain text: "${A:-${B}}" would otherwise end at
         * the first "}" and quietly leave "}" behind */
        if (dflt != NULL
            && memmem(dflt, (size_t) (end - dflt), "${", 2) != NULL)
        {
            snprintf(err, errlen, "\"${%s:-...}\": the default cannot hold "
                     "another \"${\" (a default is plain text)", name);
            rc = HG_ERROR;
            goto failed;
        }

        /* as in sh, ${VAR:-default} also replaces a variable set to "" */
        value = getenv(name);
        if (refs != NULL && (value != NULL || dflt != NULL)) {
            if (hg_conf_buf_add(&b, dollar, (size_t) (end + 1 - dollar))
                    != HG_OK
                || (value != NULL && hg_conf_name_add(refs, name) != HG_OK))
            {
                goto failed;
            }
        } else if (dflt != NULL && (value == NULL || value[0] == '\0')) {
            if (hg_conf_buf_add(&b, dflt, (size_t) (end - dflt)) != HG_OK) {
                goto failed;
            }
        } else if (value == NULL) {
            snprintf(err, errlen, "environment variable \"%s\" is not set "
                     "(use ${%s:-default})", name, name);
            rc = HG_ERROR;
            goto failed;
        } else if (hg_conf_buf_add(&b, value, strlen(value)) != HG_OK) {
            goto failed;
        }
        p = end + 1;
    }

    *out = b.p;
    return HG_OK;

failed:
    free(b.p);
    return rc;
}

/* A string value as the loader takes it: expanded, or as it is for
 * definitions from the API. */
static int
hg_conf_value(hg_conf_loader_t *ld, const char *in, char **out, char *err,
              size_t errlen)
{
    if (ld->literal) {
        *out = strdup(in);
        return *out != NULL ? HG_OK : HG_CONF_NOMEM;
    }
    return hg_conf_expand(in, out, NULL, err, errlen);
}

/*
 * The `command` of a shell job is text that /bin/sh parses: a value
 * pasted into it could inject shell syntax (a `;`) and would show in `ps`
 * to every user. So there a ${VAR} is left for sh to expand from the
 * command's environment, and VAR is added to the job's `pass_env`, which
 * hands hourglass's value of VAR to the command (hg_conf_pass_env). A
 * value then reaches the command as one word of data and only through an
 * environment that only its user can read. The check is the same as
 * elsewhere: a VAR neither set nor given a default is an error at load.
 */
static bool
hg_conf_is_shell_command(const config_setting_t *s)
{
    const config_setting_t *group = config_setting_parent(s), *list, *type;

    if (group == NULL || config_setting_name(s) == NULL
        || strcmp(config_setting_name(s), "command") != 0
        || (list = config_setting_parent(group)) == NULL
        || config_setting_name(list) == NULL
        || strcmp(config_setting_name(list), "jobs") != 0
        || !config_setting_is_root(config_setting_parent(list)))
    {
        return false;
    }
    type = config_setting_get_member(group, "type");
    return type != NULL && config_setting_type(type) == CONFIG_TYPE_STRING
           && strcmp(config_setting_get_string(type), "shell") == 0;
}

static int
hg_conf_string_value(hg_conf_loader_t *ld, const config_setting_t *s,
                     char **out, char *err, size_t errlen)
{
    if (ld->literal || !hg_conf_is_shell_command(s)) {
        return hg_conf_value(ld, config_setting_get_string(s), out, err,
                             errlen);
    }
    if (ld->pass_env == NULL && (ld->pass_env = json_array()) == NULL) {
        return HG_CONF_NOMEM;
    }
    json_array_clear(ld->pass_env);
    return hg_conf_expand(config_setting_get_string(s), out, ld->pass_env,
                          err, errlen);
}

/*
 * A job's module key V (already in JSON) on its way into the definition
 * OUT: the names its shell command referenced join `pass_env`, and a
 * `pass_env` written by hand joins them. From the API (literal) a
 * `pass_env` is refused: hourglass's environment is not a client's to
 * read. V is always taken (set in OUT, merged, or freed).
 */
static void
hg_conf_pass_env(hg_conf_loader_t *ld, const config_setting_t *m,
                 const char *loc, json_t *v, json_t *out)
{
    const char *name = config_setting_name(m);
    json_t *have = json_object_get(out, "pass_env");

    if (strcmp(name, "pass_env") == 0 && ld->from_api) {
        hg_conf_err(ld, m, "%s: not accepted from the API (it names "
                    "variables of hourglass's own environment)", loc);
        json_decref(v);
        return;
    }
    if (strcmp(name, "pass_env") == 0 && json_is_array(have)
        && json_is_array(v))
    {
        if (hg_conf_names_merge(have, v) != HG_OK) {
            ld->oom = true;
        }
        json_decref(v);
        return;
    }
    if (json_object_set_new(out, name, v) != 0) {
        ld->oom = true;
    }
    if (ld->pass_env == NULL || json_array_size(ld->pass_env) == 0
        || !hg_conf_is_shell_command(m))
    {
        return;
    }
    have = json_object_get(out, "pass_env");
    if (have == NULL) {
        if (json_object_set_new(out, "pass_env", ld->pass_env) != 0) {
            ld->oom = true;
        }
        ld->pass_env = NULL;        /* the definition has it now */
        return;
    }
    if (json_is_array(have) && hg_conf_names_merge(have, ld->pass_env)
                               != HG_OK)
    {
        ld->oom = true;
    }
    json_array_clear(ld->pass_env);
}

int
hg_conf_expand_env(const char *text, char **out, char *err, size_t errlen)
{
    int rc = hg_conf_expand(text, out, NULL, err, errlen);

    if (rc == HG_CONF_NOMEM) {
        snprintf(err, errlen, "out of memory");
        return HG_ERROR;
    }
    return rc;
}

static bool
hg_conf_utf8_ok(const char *text)
{
    const unsigned char *s = (const unsigned char *) text;
    size_t len = strlen(text), i, n;

    for (i = 0; i < len; i += n) {
        n = hg_json_utf8_len(s + i, len - i);
        if (n == 0) {
            return false;
        }
    }
    return true;
}

/*
 * A setting as JSON, every string ${VAR}-expanded: what modules and the
 * type checks see. NULL after reporting an error (or on out of memory,
 * with ld->oom set). A group or list is converted in full even after an
 * error in one member, so that every bad member is reported.
 */
static json_t *
hg_conf_to_json(hg_conf_loader_t *ld, const config_setting_t *s,
                const char *loc)
{
    json_t *v = NULL;
    int i, n;
    bool bad = false;

    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        v = json_integer(config_setting_get_int64(s));
        break;

    case CONFIG_TYPE_FLOAT: {
        double d = config_setting_get_float(s);
        if (!isfinite(d)) {
            hg_conf_err(ld, s, "%s: the number is too large", loc);
            return NULL;
        }
        v = json_real(d);
        break;
    }

    case CONFIG_TYPE_BOOL:
        v = json_boolean(config_setting_get_bool(s));
        break;

    case CONFIG_TYPE_STRING: {
        char *x, err[HG_CONF_LOC_MAX];
        int rc = hg_conf_string_value(ld, s, &x, err, sizeof(err));
        if (rc == HG_CONF_NOMEM) {
            ld->oom = true;
            return NULL;
        }
        if (rc != HG_OK) {
            hg_conf_err(ld, s, "%s: %s", loc, err);
            return NULL;
        }
        if (!hg_conf_utf8_ok(x)) {
            hg_conf_err(ld, s, "%s: the text is not valid UTF-8", loc);
            free(x);
            return NULL;
        }
        v = json_string_nocheck(x);
        free(x);
        break;
    }

    case CONFIG_TYPE_ARRAY:
    case CONFIG_TYPE_LIST:
        v = json_array();
        n = config_setting_length(s);
        for (i = 0; v != NULL && i < n; i++) {
            char sub[HG_CONF_LOC_MAX];
            json_t *e;

            snprintf(sub, sizeof(sub), "%s[%d]", loc, i);
            e = hg_conf_to_json(ld, config_setting_get_elem(s, (unsigned) i),
                                sub);
            if (e == NULL) {
                bad = true;
            } else if (json_array_append_new(v, e) != 0) {
                ld->oom = true;
                bad = true;
            }
        }
        break;

    case CONFIG_TYPE_GROUP:
        v = json_object();
        n = config_setting_length(s);
        for (i = 0; v != NULL && i < n; i++) {
            config_setting_t *m = config_setting_get_elem(s, (unsigned) i);
            char sub[HG_CONF_LOC_MAX];
            json_t *e;

            snprintf(sub, sizeof(sub), "%s.%s", loc, config_setting_name(m));
            e = hg_conf_to_json(ld, m, sub);
            if (e == NULL) {
                bad = true;
            } else if (json_object_set_new_nocheck(v, config_setting_name(m),
                                                   e) != 0)
            {
                ld->oom = true;
                bad = true;
            }
        }
        break;

    default:
        hg_conf_err(ld, s, "%s: a value of unknown type", loc);
        return NULL;
    }

    if (v == NULL) {
        ld->oom = true;
    }
    if (bad) {
        json_decref(v);
        return NULL;
    }
    return v;
}

/* --- storing values --------------------------------------------------- */

/*
 * PATH made absolute against the prefix, with "." components and doubled
 * slashes dropped ("..", which may cross a symbolic link, is kept).
 */
static char *
hg_conf_path_join(const char *prefix, const char *path)
{
    char *joined, *r, *w;

    if (path[0] == '/' || prefix == NULL) {
        joined = strdup(path);
    } else if (asprintf(&joined, "%s/%s", prefix, path) < 0) {
        joined = NULL;
    }
    if (joined == NULL) {
        return NULL;
    }

    r = w = joined;
    while (*r != '\0') {
        if (r[0] == '/' && r[1] == '/') {
            r++;                                /* "//" -> "/" */
        } else if (r[0] == '/' && r[1] == '.'
                   && (r[2] == '/' || r[2] == '\0'))
        {
            r += 2;                             /* "/./" -> "/" */
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    /* no trailing slash, but "/" stays "/" */
    while (w > joined + 1 && w[-1] == '/') {
        *--w = '\0';
    }
    if (joined[0] == '\0') {
        joined[0] = '/';
        joined[1] = '\0';
    }
    return joined;
}

static const char *
hg_conf_expected(const hg_conf_key_t *key, char *buf, size_t len)
{
    char list[HG_CONF_LOC_MAX];

    switch (key->type) {
    case HG_CONF_BOOL:
        return "true or false";
    case HG_CONF_INT:
        return "an integer";
    case HG_CONF_INT_AUTO:
        return "an integer or \"auto\"";
    case HG_CONF_REAL:
        return "a number";
    case HG_CONF_STRING:
    case HG_CONF_PATH:
        return "a string";
    case HG_CONF_DURATION:
        return "a duration such as \"5m\"";
    case HG_CONF_SIZE:
        return "a size such as \"64KiB\"";
    case HG_CONF_ENUM:
    case HG_CONF_ENUM_STRING:
        snprintf(buf, len, "one of %s",
                 hg_conf_join(key->values, ", ", list, sizeof(list)));
        return buf;
    case HG_CONF_STRING_LIST:
    case HG_CONF_STRING_ARRAY:
        return "a list of strings such as [ \"a\", \"b\" ]";
    case HG_CONF_GROUP:
        return "a group { ... }";
    default:
        return "something else";
    }
}

/* Index of value in the key's values, or -1 after an error. */
static int
hg_conf_enum(hg_conf_loader_t *ld, const hg_conf_key_t *key,
             const config_setting_t *s, const char *value, const char *loc)
{
    char list[HG_CONF_LOC_MAX], q[HG_CONF_QUOTE_MAX + 8];
    const char *hint;
    int i;

    for (i = 0; key->values[i] != NULL; i++) {
        if (strcmp(key->values[i], value) == 0) {
            return i;
        }
    }
    hint = hg_hint_closest(value, key->values);
    hg_conf_join(key->values, ", ", list, sizeof(list));
    if (hint != NULL) {
        hg_conf_err(ld, s, "%s: %s is not one of %s (did you mean \"%s\"?)",
                    loc, hg_conf_quote(value, q, sizeof(q)), list, hint);
    } else {
        hg_conf_err(ld, s, "%s: %s is not one of %s", loc,
                    hg_conf_quote(value, q, sizeof(q)), list);
    }
    return -1;
}

/* The string checks shared by scalars and list elements. */
static int
hg_conf_string_ok(hg_conf_loader_t *ld, const hg_conf_key_t *key,
                  const config_setting_t *s, const char *value,
                  const char *loc)
{
    char err[HG_CONF_LOC_MAX];

    if ((key->flags & HG_CONF_NONEMPTY) && value[0] == '\0') {
        hg_conf_err(ld, s, "%s: must not be empty", loc);
        return HG_ERROR;
    }
    if (key->type == HG_CONF_ENUM_STRING
        && hg_conf_enum(ld, key, s, value, loc) < 0)
    {
        return HG_ERROR;
    }
    if (key->check != NULL && key->check(value, err, sizeof(err)) != HG_OK) {
        hg_conf_err(ld, s, "%s: %s", loc, err);
        return HG_ERROR;
    }
    return HG_OK;
}

static void
hg_conf_free_strings(char **list, size_t n)
{
    size_t i;

    for (i = 0; list != NULL && i < n; i++) {
        free(list[i]);
    }
    free(list);
}

static void
hg_conf_set_list(hg_conf_loader_t *ld, const hg_conf_key_t *key, char *base,
                 const config_setting_t *s, const json_t *v, const char *loc)
{
    size_t i, j, n = json_array_size(v);
    bool bad = false;
    char **list;

    for (i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        const config_setting_t *es = s != NULL
            ? config_setting_get_elem(s, (unsigned) i) : NULL;
        char sub[HG_CONF_LOC_MAX], got[HG_CONF_LOC_MAX];

        snprintf(sub, sizeof(sub), "%s[%zu]", loc, i);
        if (!json_is_string(e)) {
            hg_conf_err(ld, es, "%s: expected a string, got %s", sub,
                        hg_conf_describe(es, got, sizeof(got)));
            bad = true;
            continue;
        }
        if (hg_conf_string_ok(ld, key, es, json_string_value(e), sub)
            != HG_OK)
        {
            bad = true;
            continue;
        }
        for (j = 0; (key->flags & HG_CONF_UNIQUE) && j < i; j++) {
            if (json_equal(e, json_array_get(v, j))) {
                char q[HG_CONF_QUOTE_MAX + 8];
                hg_conf_err(ld, es, "%s: %s is already listed at %s[%zu]",
                            sub, hg_conf_quote(json_string_value(e), q,
                                               sizeof(q)), loc, j);
                bad = true;
                break;
            }
        }
    }
    if (bad) {
        return;
    }

    if (key->type == HG_CONF_STRING_ARRAY) {
        json_t *copy = json_deep_copy(v);
        if (copy == NULL) {
            ld->oom = true;
            return;
        }
        json_decref(*(json_t **) (base + key->offset));
        *(json_t **) (base + key->offset) = copy;
        return;
    }

    /* NULL-terminated as well as counted, and never NULL itself */
    list = calloc(n + 1, sizeof(*list));
    if (list == NULL) {
        ld->oom = true;
        return;
    }
    for (i = 0; i < n; i++) {
        list[i] = strdup(json_string_value(json_array_get(v, i)));
        if (list[i] == NULL) {
            hg_conf_free_strings(list, i);
            ld->oom = true;
            return;
        }
    }
    hg_conf_free_strings(*(char ***) (base + key->offset),
                         *(size_t *) (base + key->offset2));
    *(char ***) (base + key->offset) = list;
    *(size_t *) (base + key->offset2) = n;
}

/*
 * Check v (the JSON of setting s, or of a default when s is NULL) against
 * key and store it at base + key->offset.
 */
static void
hg_conf_set(hg_conf_loader_t *ld, const hg_conf_key_t *key, char *base,
            const config_setting_t *s, const json_t *v, const char *loc)
{
    char *field = base + key->offset;
    char a[HG_UNITS_TEXT_MAX], b[HG_UNITS_TEXT_MAX], c[HG_UNITS_TEXT_MAX];
    char q[HG_CONF_QUOTE_MAX + 8], expect[HG_CONF_LOC_MAX];
    char got[HG_CONF_LOC_MAX];

    switch (key->type) {
    case HG_CONF_BOOL:
        if (!json_is_boolean(v)) {
            break;
        }
        *(bool *) field = json_is_true(v);
        return;

    case HG_CONF_INT:
    case HG_CONF_INT_AUTO: {
        json_int_t n;

        if (key->type == HG_CONF_INT_AUTO && json_is_string(v)
            && strcmp(json_string_value(v), "auto") == 0)
        {
            long cpus = sysconf(_SC_NPROCESSORS_ONLN);
            n = cpus < key->min ? key->min : cpus > key->max ? key->max : cpus;
            *(int *) field = (int) n;
            return;
        }
        if (!json_is_integer(v)) {
            break;
        }
        n = json_integer_value(v);
        if (n < key->min || n > key->max) {
            hg_conf_err(ld, s, "%s: %" JSON_INTEGER_FORMAT " is out of range "
                        "%" PRId64 "-%" PRId64, loc, n, key->min, key->max);
            return;
        }
        *(int *) field = (int) n;
        return;
    }

    case HG_CONF_REAL: {
        double d;

        if (!json_is_number(v)) {
            break;
        }
        d = json_number_value(v);
        if (d < key->rmin || d > key->rmax) {
            hg_conf_err(ld, s, "%s: %g is out of range %g-%g", loc, d,
                        key->rmin, key->rmax);
            return;
        }
        *(double *) field = d;
        return;
    }

    case HG_CONF_STRING:
    case HG_CONF_PATH:
    case HG_CONF_ENUM_STRING: {
        const char *str;
        char *copy;

        if (!json_is_string(v)) {
            break;
        }
        str = json_string_value(v);
        if (hg_conf_string_ok(ld, key, s, str, loc) != HG_OK) {
            return;
        }
        if (key->type == HG_CONF_PATH
            && !((key->flags & HG_CONF_DASH) && strcmp(str, "-") == 0))
        {
            copy = hg_conf_path_join(ld->conf->prefix, str);
        } else {
            copy = strdup(str);
        }
        if (copy == NULL) {
            ld->oom = true;
            return;
        }
        free(*(char **) field);
        *(char **) field = copy;
        return;
    }

    case HG_CONF_DURATION: {
        int64_t ms;
        const char *str;

        if (json_is_integer(v)) {
            hg_conf_err(ld, s, "%s: %" JSON_INTEGER_FORMAT " is not a "
                        "duration: give units, e.g. \"%" JSON_INTEGER_FORMAT
                        "s\"", loc, json_integer_value(v),
                        json_integer_value(v));
            return;
        }
        if (!json_is_string(v)) {
            break;
        }
        str = json_string_value(v);
        if (hg_parse_duration(str, &ms) != HG_OK) {
            if (hg_suggest_duration(str, a, sizeof(a)) == HG_OK) {
                hg_conf_err(ld, s, "%s: %s is not a duration (try \"%s\")",
                            loc, hg_conf_quote(str, q, sizeof(q)), a);
            } else {
                hg_conf_err(ld, s, "%s: %s is not a duration (write a number "
                            "and a unit, ms, s, m, h or d, largest first: "
                            "\"90s\", \"1h30m\")", loc,
                            hg_conf_quote(str, q, sizeof(q)));
            }
            return;
        }
        if (ms < key->min || ms > key->max) {
            hg_conf_err(ld, s, "%s: %s is out of range %s-%s", loc,
                        hg_conf_quote(str, q, sizeof(q)),
                        hg_format_duration(key->min, b, sizeof(b)),
                        hg_format_duration(key->max, c, sizeof(c)));
            return;
        }
        *(int64_t *) field = ms;
        return;
    }

    case HG_CONF_SIZE: {
        uint64_t bytes;
        const char *str = NULL;

        if (json_is_integer(v)) {
            if (json_integer_value(v) < 0) {
                hg_conf_err(ld, s, "%s: %" JSON_INTEGER_FORMAT " is not a "
                            "size", loc, json_integer_value(v));
                return;
            }
            bytes = (uint64_t) json_integer_value(v);
        } else if (json_is_string(v)) {
            str = json_string_value(v);
            if (hg_parse_size(str, &bytes) != HG_OK) {
                if (hg_suggest_size(str, a, sizeof(a)) == HG_OK) {
                    hg_conf_err(ld, s, "%s: %s is not a size (try \"%s\")",
                                loc, hg_conf_quote(str, q, sizeof(q)), a);
                } else {
                    hg_conf_err(ld, s, "%s: %s is not a size (write a number "
                                "and a unit, KiB, MiB, GiB or KB, MB, GB: "
                                "\"64KiB\", \"10MB\")", loc,
                                hg_conf_quote(str, q, sizeof(q)));
                }
                return;
            }
        } else {
            break;
        }
        if (bytes < (uint64_t) key->min || bytes > (uint64_t) key->max) {
            if (str != NULL) {
                hg_conf_quote(str, q, sizeof(q));
            } else {
                snprintf(q, sizeof(q), "%" PRIu64, bytes);
            }
            hg_conf_err(ld, s, "%s: %s is out of range %s-%s", loc, q,
                        hg_format_size((uint64_t) key->min, b, sizeof(b)),
                        hg_format_size((uint64_t) key->max, c, sizeof(c)));
            return;
        }
        *(uint64_t *) field = bytes;
        return;
    }

    case HG_CONF_ENUM: {
        int i;

        if (!json_is_string(v)) {
            break;
        }
        i = hg_conf_enum(ld, key, s, json_string_value(v), loc);
        if (i >= 0) {
            *(int *) field = i;
        }
        return;
    }

    case HG_CONF_STRING_LIST:
    case HG_CONF_STRING_ARRAY:
        if (!json_is_array(v)) {
            break;
        }
        hg_conf_set_list(ld, key, base, s, v, loc);
        return;

    case HG_CONF_GROUP:
    case HG_CONF_HANDLER:
        return;
    }

    hg_conf_err(ld, s, "%s: expected %s, got %s", loc,
                hg_conf_expected(key, expect, sizeof(expect)),
                hg_conf_describe(s, got, sizeof(got)));
}

/* A key's default as the JSON value the file would give. */
static json_t *
hg_conf_default_json(const hg_conf_key_t *key)
{
    json_t *list;
    const char *p;

    switch (key->type) {
    case HG_CONF_BOOL:
        return json_boolean(strcmp(key->dflt, "true") == 0);
    case HG_CONF_INT:
    case HG_CONF_INT_AUTO:
        if (strcmp(key->dflt, "auto") == 0) {
            return json_string(key->dflt);
        }
        return json_integer(strtoll(key->dflt, NULL, 10));
    case HG_CONF_REAL:
        return json_real(strtod(key->dflt, NULL));
    case HG_CONF_STRING_LIST:
    case HG_CONF_STRING_ARRAY:
        /* a default list is written space-separated */
        list = json_array();
        for (p = key->dflt; list != NULL && *p != '\0'; ) {
            size_t n = strcspn(p, " ");
            if (n > 0 && json_array_append_new(list, json_stringn(p, n)) != 0) {
                json_decref(list);
                return NULL;
            }
            p += n;
            p += strspn(p, " ");
        }
        return list;
    default:
        return json_string(key->dflt);
    }
}

static void
hg_conf_defaults(hg_conf_loader_t *ld, const hg_conf_section_t *sec,
                 char *base, bool with_also)
{
    size_t i;

    for (i = 0; i < sec->nkeys; i++) {
        const hg_conf_key_t *key = &sec->keys[i];
        json_t *v;

        if (key->type == HG_CONF_GROUP) {
            if (!(key->flags & HG_CONF_PRESENCE)) {
                hg_conf_defaults(ld, key->section, base + key->offset, true);
            }
            continue;
        }
        if (key->type == HG_CONF_HANDLER || key->dflt == NULL) {
            continue;
        }
        v = hg_conf_default_json(key);
        if (v == NULL) {
            ld->oom = true;
            continue;
        }
        hg_conf_set(ld, key, base, NULL, v, key->name);
        json_decref(v);
    }
    if (with_also && sec->also != NULL) {
        hg_conf_defaults(ld, sec->also, base + sec->also_offset, true);
    }
}

/* --- walking groups --------------------------------------------------- */

static void hg_conf_section_read(hg_conf_loader_t *ld,
                                 const hg_conf_section_t *sec, char *base,
                                 const config_setting_t *group,
                                 const hg_conf_where_t *w, json_t *out);

static void
hg_conf_key_read(hg_conf_loader_t *ld, const hg_conf_key_t *key, char *base,
                 const config_setting_t *m, const hg_conf_where_t *w,
                 json_t *out)
{
    char loc[HG_CONF_LOC_MAX], path[HG_CONF_LOC_MAX], got[HG_CONF_LOC_MAX];
    hg_conf_where_t sw;
    json_t *v;

    hg_conf_loc(w, key->name, loc, sizeof(loc));

    switch (key->type) {
    case HG_CONF_GROUP:
        if (!config_setting_is_group(m)) {
            hg_conf_err(ld, m, "%s: expected a group { ... }, got %s", loc,
                        hg_conf_describe(m, got, sizeof(got)));
            return;
        }
        if (key->flags & HG_CONF_PRESENCE) {
            *(bool *) (base + key->offset2) = true;
            hg_conf_defaults(ld, key->section, base + key->offset, true);
        }
        snprintf(path, sizeof(path), "%s%s%s", w->group ? w->group : "",
                 w->group && w->group[0] ? "." : "", key->name);
        sw.job = w->job;
        sw.group = path;
        v = NULL;
        if (out != NULL && (v = json_object()) == NULL) {
            ld->oom = true;
            return;
        }
        hg_conf_section_read(ld, key->section, base + key->offset, m, &sw, v);
        if (v != NULL && json_object_set_new(out, key->name, v) != 0) {
            ld->oom = true;
        }
        return;

    case HG_CONF_HANDLER:
        key->handler->read(ld, key, base, m, w);
        return;

    default:
        v = hg_conf_to_json(ld, m, loc);
        if (v == NULL) {
            return;
        }
        hg_conf_set(ld, key, base, m, v, loc);
        if (out == NULL) {
            json_decref(v);
        } else if (json_object_set_new(out, key->name, v) != 0) {
            ld->oom = true;
        }
        return;
    }
}

static void
hg_conf_required(hg_conf_loader_t *ld, const hg_conf_section_t *sec,
                 const config_setting_t *group, const hg_conf_where_t *w)
{
    char loc[HG_CONF_LOC_MAX], list[HG_CONF_LOC_MAX];
    size_t i;

    for (; sec != NULL; sec = sec->also) {
        for (i = 0; i < sec->nkeys; i++) {
            const hg_conf_key_t *key = &sec->keys[i];

            if (!(key->flags & HG_CONF_REQUIRED)
                || config_setting_get_member(group, key->name) != NULL)
            {
                continue;
            }
            hg_conf_loc(w, key->name, loc, sizeof(loc));
            if (key->values != NULL) {
                hg_conf_err(ld, group, "%s is required (one of %s)", loc,
                            hg_conf_join(key->values, ", ", list,
                                         sizeof(list)));
            } else {
                hg_conf_err(ld, group, "%s is required", loc);
            }
        }
    }
}

/*
 * Read the members of group into base by sec. When out is not NULL every
 * member's JSON is put there too (a job's definition). Keys marked LATE
 * are read after all others, wherever they are written.
 */
static void
hg_conf_section_read(hg_conf_loader_t *ld, const hg_conf_section_t *sec,
                     char *base, const config_setting_t *group,
                     const hg_conf_where_t *w, json_t *out)
{
    int pass, i, n = config_setting_length(group);

    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < n; i++) {
            config_setting_t *m = config_setting_get_elem(group, (unsigned) i);
            size_t off = 0;
            const hg_conf_key_t *key;
            bool late;

            key = hg_conf_section_find(sec, config_setting_name(m), &off);
            late = key != NULL && (key->flags & HG_CONF_LATE);
            if (late != (pass == 1)) {
                continue;
            }
            if (key != NULL) {
                hg_conf_key_read(ld, key, base + off, m, w, out);
            } else if (sec->unknown != NULL) {
                sec->unknown(ld, sec, base, m, w, out);
            } else {
                hg_conf_unknown(ld, sec, m, w);
            }
        }
    }
    hg_conf_required(ld, sec, group, w);
}

/* --- modules.NAME ----------------------------------------------------- */

/*
 * A member of `modules` that is neither path nor load is a module's own
 * section, kept as JSON for the module's init. Only a group can be one;
 * anything else is most likely a misspelt path or load.
 */
static void
hg_conf_module_section(hg_conf_loader_t *ld, const hg_conf_section_t *sec,
                       char *base, const config_setting_t *m,
                       const hg_conf_where_t *w, json_t *out)
{
    const char *name = config_setting_name(m), *names[8];
    char loc[HG_CONF_LOC_MAX], got[HG_CONF_LOC_MAX];
    hg_conf_t *conf = ld->conf;
    json_t *v;

    HG_UNUSED(base);
    HG_UNUSED(out);

    if (!config_setting_is_group(m)) {
        hg_conf_section_names(sec, names, HG_NELEMS(names));
        if (hg_hint_closest(name, names) != NULL) {
            hg_conf_unknown(ld, sec, m, w);
        } else {
            hg_conf_err(ld, m, "modules.%s: expected a group { ... } (the "
                        "\"%s\" module's own section), got %s", name, name,
                        hg_conf_describe(m, got, sizeof(got)));
        }
        return;
    }
    snprintf(loc, sizeof(loc), "modules.%s", name);
    v = hg_conf_to_json(ld, m, loc);
    if (v == NULL) {
        return;
    }
    /* the line is made only once the section is in: a refused section
     * would leave it to nobody */
    if (json_object_set_new(conf->modules.sections, name, v) != 0
        || json_object_set_new(conf->modules.section_lines, name,
                               json_integer(hg_conf_setting_line(m))) != 0)
    {
        ld->oom = true;
    }
}

/* --- api.tokens ------------------------------------------------------- */

static bool
hg_conf_is_list(const config_setting_t *s)
{
    /* libconfig reads an empty "[ ]" as an array; take it as an empty list */
    return config_setting_is_list(s)
        || (config_setting_is_array(s) && config_setting_length(s) == 0);
}

static void
hg_conf_read_tokens(hg_conf_loader_t *ld, const hg_conf_key_t *key,
                    char *base, const config_setting_t *s,
                    const hg_conf_where_t *w)
{
    hg_conf_t *conf = ld->conf;
    char got[HG_CONF_LOC_MAX], path[64];
    unsigned i, j, n;

    HG_UNUSED(key);
    HG_UNUSED(base);
    HG_UNUSED(w);

    if (!hg_conf_is_list(s)) {
        hg_conf_err(ld, s, "api.tokens: expected a list of tokens, ( { name "
                    "= \"...\"; token = \"...\"; role = \"...\"; }, ... ), "
                    "got %s", hg_conf_describe(s, got, sizeof(got)));
        return;
    }
    n = (unsigned) config_setting_length(s);
    if (n == 0) {
        return;
    }
    conf->api.tokens = calloc(n, sizeof(hg_api_token_t));
    if (conf->api.tokens == NULL) {
        ld->oom = true;
        return;
    }

    for (i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, i);
        hg_api_token_t *t = &conf->api.tokens[conf->api.ntokens];
        hg_conf_where_t tw;

        if (!config_setting_is_group(e)) {
            hg_conf_err(ld, e, "api.tokens[%u]: expected a group { name = "
                        "\"...\"; token = \"...\"; role = \"...\"; }, got %s",
                        i, hg_conf_describe(e, got, sizeof(got)));
            continue;
        }
        snprintf(path, sizeof(path), "api.tokens[%u]", i);
        tw.job = NULL;
        tw.group = path;
        hg_conf_section_read(ld, &hg_conf_token_section, (char *) t, e, &tw,
                             NULL);
        conf->api.ntokens++;

        /* the name is what executions record (api:NAME), and a token must
         * say who is calling: neither may be shared */
        for (j = 0; j + 1 < conf->api.ntokens; j++) {
            const hg_api_token_t *o = &conf->api.tokens[j];
            if (t->name != NULL && o->name != NULL
                && strcmp(t->name, o->name) == 0)
            {
                hg_conf_err(ld, config_setting_get_member(e, "name"),
                            "%s.name: \"%s\" is already the name of "
                            "api.tokens[%u]", path, t->name, j);
            }
            /* (the dump masks every token alike: it must read back) */
            if (t->token != NULL && o->token != NULL
                && strcmp(t->token, o->token) == 0
                && strcmp(t->token, HG_CONF_MASK) != 0)
            {
                hg_conf_err(ld, config_setting_get_member(e, "token"),
                            "%s.token: the same token as api.tokens[%u]: "
                            "every token must be different", path, j);
            }
        }
    }
}

static void hg_conf_free_section(const hg_conf_section_t *sec, char *base);

static void
hg_conf_free_tokens(const hg_conf_key_t *key, char *base)
{
    hg_conf_t *conf = (hg_conf_t *) base;
    size_t i;

    HG_UNUSED(key);
    for (i = 0; i < conf->api.ntokens; i++) {
        hg_conf_free_section(&hg_conf_token_section,
                             (char *) &conf->api.tokens[i]);
    }
    free(conf->api.tokens);
    conf->api.tokens = NULL;
    conf->api.ntokens = 0;
}

/* --- channels and notify ------------------------------------------------ */

const char *const hg_conf_notify_events[] = {
    "failure", "dead", "recovered", "missed", "overdue", NULL
};

static const char *const hg_conf_channel_types[] = {
    "webhook", "command", NULL
};

#define HG_CH(field)  offsetof(hg_channel_conf_t, field)

static const hg_conf_key_t hg_conf_channel_keys[] = {
    { .name = "name", .type = HG_CONF_STRING, .flags = HG_CONF_REQUIRED,
      .offset = HG_CH(name), .check = hg_conf_check_name },
    { .name = "type", .type = HG_CONF_ENUM_STRING, .flags = HG_CONF_REQUIRED,
      .offset = HG_CH(type), .values = hg_conf_channel_types },
    { .name = "url", .type = HG_CONF_STRING, .flags = HG_CONF_NONEMPTY,
      .offset = HG_CH(url), .help = "webhook: POSTed the event as JSON" },
    { .name = "command", .type = HG_CONF_STRING, .flags = HG_CONF_NONEMPTY,
      .offset = HG_CH(command),
      .help = "command: run by /bin/sh -c, the event as JSON on stdin" },
    { .name = "timeout", .type = HG_CONF_DURATION, .offset = HG_CH(timeout_ms),
      .dflt = "10s", .min = 100, .max = 3600 * 1000 },
    { .name = "retries", .type = HG_CONF_INT, .offset = HG_CH(retries),
      .dflt = "3", .min = 0, .max = 100,
      .help = "a delivery that fails is tried again, with defaults.backoff" },
    { .name = "rate_limit", .type = HG_CONF_INT, .offset = HG_CH(rate_limit),
      .dflt = "5", .min = 1, .max = 100000,
      .help = "notifications per job in rate_window; then one summary" },
    { .name = "rate_window", .type = HG_CONF_DURATION,
      .offset = HG_CH(rate_window_ms), .dflt = "1h",
      .min = 1000, .max = HG_CONF_DAY_MS },
};

static const hg_conf_section_t hg_conf_channel_section = {
    "channels", hg_conf_channel_keys, HG_NELEMS(hg_conf_channel_keys),
    NULL, 0, NULL, NULL
};

/* One channel read: its type's own key present, the other's absent. */
static void
hg_conf_channel_check(hg_conf_loader_t *ld, const hg_channel_conf_t *c,
                      const config_setting_t *e, const char *path)
{
    bool webhook;

    if (c->type == NULL) {
        return;                     /* reported as required */
    }
    webhook = strcmp(c->type, "webhook") == 0;
    if (webhook && c->url == NULL) {
        hg_conf_err(ld, e, "%s: a webhook channel needs url", path);
    } else if (webhook && strncmp(c->url, "http://", 7) != 0
               && strncmp(c->url, "https://", 8) != 0)
    {
        hg_conf_err(ld, config_setting_get_member(e, "url"), "%s.url: \"%.64s"
                    "\" is not an http:// or https:// URL", path, c->url);
    }
    if (!webhook && c->command == NULL) {
        hg_conf_err(ld, e, "%s: a command channel needs command", path);
    }
    if (webhook && c->command != NULL) {
        hg_conf_err(ld, config_setting_get_member(e, "command"), "%s.command:"
                    " only for type = \"command\"", path);
    }
    if (!webhook && c->url != NULL) {
        hg_conf_err(ld, config_setting_get_member(e, "url"), "%s.url: only "
                    "for type = \"webhook\"", path);
    }
}

static json_t *
hg_conf_channel_json(const hg_channel_conf_t *c)
{
    return json_pack("{sssssssIsisisI}", "name", c->name, "type", c->type,
                     c->url != NULL ? "url" : "command",
                     c->url != NULL ? c->url : c->command,
                     "timeout_ms", (json_int_t) c->timeout_ms,
                     "retries", c->retries, "rate_limit", c->rate_limit,
                     "rate_window_ms", (json_int_t) c->rate_window_ms);
}

static void
hg_conf_read_channels(hg_conf_loader_t *ld, const hg_conf_key_t *key,
                      char *base, const config_setting_t *s,
                      const hg_conf_where_t *w)
{
    hg_conf_t *conf = ld->conf;
    char got[HG_CONF_LOC_MAX], path[64];
    hg_channel_conf_t c;
    unsigned i, n;
    size_t j;
    json_t *prev;

    HG_UNUSED(key);
    HG_UNUSED(base);
    HG_UNUSED(w);

    if (!hg_conf_is_list(s)) {
        hg_conf_err(ld, s, "channels: expected a list of channels, ( { name "
                    "= \"...\"; type = \"webhook\"; url = \"...\"; }, ... ), "
                    "got %s", hg_conf_describe(s, got, sizeof(got)));
        return;
    }
    if (conf->channels == NULL && (conf->channels = json_array()) == NULL) {
        ld->oom = true;
        return;
    }
    n = (unsigned) config_setting_length(s);
    for (i = 0; i < n && !ld->oom; i++) {
        const config_setting_t *e = config_setting_get_elem(s, i);
        hg_conf_where_t cw;

        if (!config_setting_is_group(e)) {
            hg_conf_err(ld, e, "channels[%u]: expected a group { name = "
                        "\"...\"; type = \"...\"; ... }, got %s", i,
                        hg_conf_describe(e, got, sizeof(got)));
            continue;
        }
        snprintf(path, sizeof(path), "channels[%u]", i);
        cw.job = NULL;
        cw.group = path;
        memset(&c, 0, sizeof(c));
        hg_conf_defaults(ld, &hg_conf_channel_section, (char *) &c, false);
        hg_conf_section_read(ld, &hg_conf_channel_section, (char *) &c, e,
                             &cw, NULL);
        hg_conf_channel_check(ld, &c, e, path);
        if (c.name != NULL && c.type != NULL) {
            bool webhook = strcmp(c.type, "webhook") == 0;
            char use[160];

            snprintf(use, sizeof(use), "%s channel \"%s\"", c.type, c.name);
            hg_conf_served_by(ld, config_setting_get_member(e, "type"),
                              webhook ? "http" : "shell", path, use);
        }
        json_array_foreach(conf->channels, j, prev) {
            if (c.name != NULL && strcmp(c.name, json_string_value(
                                  json_object_get(prev, "name"))) == 0)
            {
                hg_conf_err(ld, config_setting_get_member(e, "name"),
                            "%s.name: \"%s\" is already the name of "
                            "channels[%zu]", path, c.name, j);
            }
        }
        if (c.name != NULL && c.type != NULL
            && (c.url != NULL || c.command != NULL)
            && json_array_append_new(conf->channels, hg_conf_channel_json(&c))
               != 0)
        {
            ld->oom = true;
        }
        hg_conf_free_section(&hg_conf_channel_section, (char *) &c);
    }
}

static void
hg_conf_free_channels(const hg_conf_key_t *key, char *base)
{
    hg_conf_t *conf = (hg_conf_t *) base;

    HG_UNUSED(key);
    json_decref(conf->channels);
    conf->channels = NULL;
    json_decref(conf->notify);
    conf->notify = NULL;
}

static bool
hg_conf_one_of(const char *name, const char *const *values)
{
    for (; *values != NULL; values++) {
        if (strcmp(*values, name) == 0) {
            return true;
        }
    }
    return false;
}

static bool
hg_conf_channel_known(const hg_conf_t *conf, const char *name)
{
    const json_t *c;
    size_t i;

    json_array_foreach(conf->channels, i, c) {
        if (strcmp(json_string_value(json_object_get(c, "name")), name) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * A notify group (a job's or defaults'), as JSON V read from setting S:
 * only `on` and `via`, each a non-empty list of strings, the events known
 * and the channels defined (when CHECK_CHANNELS: the channels are read by
 * then). LOC names it in messages.
 */
static void
hg_conf_notify_check(hg_conf_loader_t *ld, const config_setting_t *s,
                     const json_t *v, const char *loc, bool check_channels)
{
    static const char *const members[] = { "on", "via", NULL };
    const char *key, *hint, *name;
    const config_setting_t *ms;
    const json_t *list, *item;
    char known[HG_CONF_LOC_MAX];
    size_t i;

    if (!json_is_object(v)) {
        hg_conf_err(ld, s, "%s: expected a group { on = [ \"failure\" ]; "
                    "via = [ \"CHANNEL\" ]; }", loc);
        return;
    }
    json_object_foreach((json_t *) v, key, list) {
        ms = config_setting_get_member(s, key);
        if (strcmp(key, "on") != 0 && strcmp(key, "via") != 0) {
            hint = hg_hint_closest(key, members);
            hg_conf_err(ld, ms, "%s: unknown key \"%s\" (%s%s%s)", loc, key,
                        hint ? "did you mean \"" : "known keys: on, via",
                        hint ? hint : "", hint ? "\"?" : "");
            continue;
        }
        if (!json_is_array(list) || json_array_size(list) == 0) {
            hg_conf_err(ld, ms, "%s.%s: expected a non-empty list of strings"
                        ", [ \"...\", ... ]", loc, key);
            continue;
        }
        json_array_foreach(list, i, item) {
            name = json_string_value(item);
            if (name == NULL) {
                hg_conf_err(ld, ms, "%s.%s[%zu]: expected a string", loc, key,
                            i);
            } else if (key[0] == 'o') {
                if (!hg_conf_one_of(name, hg_conf_notify_events)) {
                    hint = hg_hint_closest(name, hg_conf_notify_events);
                    hg_conf_err(ld, ms, "%s.on: unknown event \"%.64s\" (%s%s"
                                "%s)", loc, name,
                                hint ? "did you mean \"" : "one of ",
                                hint ? hint
                                     : hg_conf_join(hg_conf_notify_events,
                                                    ", ", known,
                                                    sizeof(known)),
                                hint ? "\"?" : "");
                }
            } else if (check_channels
                       && (ld->conf->channels == NULL
                           || !hg_conf_channel_known(ld->conf, name)))
            {
                hg_conf_err(ld, ms, "%s.via: unknown channel \"%.64s\" (not "
                            "in channels)", loc, name);
            }
        }
    }
    if (json_object_get(v, "on") == NULL || json_object_get(v, "via") == NULL)
    {
        hg_conf_err(ld, s, "%s: needs both on (the events) and via (the "
                    "channels)", loc);
    }
}

/*
 * A job's dead-man `expect` group (V read from setting S): success_within
 * and/or run_within, durations. A value of another type is not this key's:
 * the http module's own `expect` (status codes) judges it.
 */
static void
hg_conf_expect_check(hg_conf_loader_t *ld, const config_setting_t *s,
                     const json_t *v, const char *loc)
{
    static const char *const members[] = {
        "success_within", "run_within", NULL
    };
    const char *key, *hint;
    const json_t *value;
    int64_t ms;

    if (!json_is_object(v)) {
        return;
    }
    json_object_foreach((json_t *) v, key, value) {
        const config_setting_t *ms_set = config_setting_get_member(s, key);

        if (!hg_conf_one_of(key, members)) {
            hint = hg_hint_closest(key, members);
            hg_conf_err(ld, ms_set, "%s: unknown key \"%s\" (%s%s%s)", loc,
                        key, hint ? "did you mean \"" : "known keys: "
                        "success_within, run_within", hint ? hint : "",
                        hint ? "\"?" : "");
        } else if (!json_is_string(value)
                   || hg_parse_duration(json_string_value(value), &ms) != 0
                   || ms < 1000 || ms > HG_CONF_DURATION_MAX)
        {
            hg_conf_err(ld, ms_set, "%s.%s: expected a duration of 1s or "
                        "more (\"26h\")", loc, key);
        }
    }
    if (json_object_size(v) == 0) {
        hg_conf_err(ld, s, "%s: give success_within or run_within (e.g. "
                    "expect = { success_within = \"26h\"; })", loc);
    }
}

/* `notify` in `defaults`: kept whole for the jobs (no field of the policy:
 * the policy is copied by value into every job). Any other member that is
 * no policy key is the usual unknown key. */
static void
hg_conf_defaults_notify(hg_conf_loader_t *ld, const hg_conf_section_t *sec,
                        char *base, const config_setting_t *m,
                        const hg_conf_where_t *w, json_t *out)
{
    char loc[HG_CONF_LOC_MAX];
    json_t *v;

    HG_UNUSED(base);
    HG_UNUSED(out);
    if (w->job != NULL || strcmp(config_setting_name(m), "notify") != 0) {
        hg_conf_unknown(ld, sec, m, w);
        return;
    }
    hg_conf_loc(w, "notify", loc, sizeof(loc));
    v = hg_conf_to_json(ld, m, loc);
    if (v == NULL) {
        return;
    }
    json_decref(ld->conf->notify);
    ld->conf->notify = v;
}

/* --- jobs ------------------------------------------------------------- */

bool
hg_conf_id_ok(const char *id)
{
    size_t i;

    for (i = 0; id[i] != '\0'; i++) {
        if (!isalnum((unsigned char) id[i]) && id[i] != '.' && id[i] != '_'
            && id[i] != '-')
        {
            return false;
        }
    }
    return i >= 1 && i <= HG_CONF_ID_MAX;
}

/*
 * A job key that is not a common one belongs to the job's module: kept in
 * the definition (expanded), and judged later, once modules are loaded, by
 * hg_conf_check_job_keys and the module's validate.
 */
static void
hg_conf_job_module_key(hg_conf_loader_t *ld, const hg_conf_section_t *sec,
                       char *base, const config_setting_t *m,
                       const hg_conf_where_t *w, json_t *out)
{
    char loc[HG_CONF_LOC_MAX];
    json_t *v;

    HG_UNUSED(sec);
    HG_UNUSED(base);

    v = hg_conf_to_json(ld, m, hg_conf_loc(w, config_setting_name(m), loc,
                                           sizeof(loc)));
    if (v == NULL) {
        return;
    }
    if (out == NULL) {
        json_decref(v);
    } else {
        hg_conf_pass_env(ld, m, loc, v, out);
    }
}

void
hg_conf_job_free(hg_job_conf_t *job)
{
    if (job == NULL) {
        return;
    }
    hg_conf_free_section(&hg_conf_job_section, (char *) job);
    json_decref(job->definition);
    json_decref(job->key_lines);
    free(job->definition_text);
    free(job->file);
    memset(job, 0, sizeof(*job));
}

/* schedule | every | at, and start_at only with every */
static void
hg_conf_job_schedule(hg_conf_loader_t *ld, hg_job_conf_t *job,
                     const config_setting_t *e, const char *label)
{
    static const char *const kinds[] = { "schedule", "every", "at" };
    const config_setting_t *found[3], *last = NULL, *start_at;
    const char *names[4];
    char list[64];
    size_t k, n = 0;

    for (k = 0; k < 3; k++) {
        found[k] = config_setting_get_member(e, kinds[k]);
        if (found[k] != NULL) {
            names[n++] = kinds[k];
            if (last == NULL || config_setting_source_line(found[k])
                                >= config_setting_source_line(last))
            {
                last = found[k];
            }
        }
    }
    names[n] = NULL;

    if (n > 1) {
        if (n == 2) {
            snprintf(list, sizeof(list), "%s and %s", names[0], names[1]);
        } else {
            snprintf(list, sizeof(list), "%s, %s and %s", names[0], names[1],
                     names[2]);
        }
        hg_conf_err(ld, last, "%s: schedule, every and at are exclusive "
                    "(found %s)", label, list);
    } else if (found[0] != NULL && job->schedule != NULL) {
        job->schedule_kind = HG_SCHEDULE_CRON;
    } else if (found[1] != NULL && job->every_ms > 0) {
        job->schedule_kind = HG_SCHEDULE_EVERY;
    } else if (found[2] != NULL && job->at != NULL) {
        job->schedule_kind = HG_SCHEDULE_AT;
    }

    start_at = config_setting_get_member(e, "start_at");
    if (start_at != NULL && found[1] == NULL) {
        hg_conf_err(ld, start_at, "%s: start_at is only allowed with every "
                    "(it is when a fixed-rate job runs first)", label);
    }
}

static void
hg_conf_backoff_check(hg_conf_loader_t *ld, const hg_backoff_t *b,
                      const config_setting_t *s, const char *loc)
{
    char x[HG_UNITS_TEXT_MAX], y[HG_UNITS_TEXT_MAX];

    if (b->initial_ms > b->max_ms) {
        hg_conf_err(ld, s, "%s: initial (%s) is greater than max (%s)", loc,
                    hg_format_duration(b->initial_ms, x, sizeof(x)),
                    hg_format_duration(b->max_ms, y, sizeof(y)));
    }
}

/*
 * Read the job group e into job (zeroed by the caller); ordinal is its
 * place in `jobs` for messages (0: none). true when the job is to be
 * kept: its id is valid and new. Its errors are reported either way.
 */
static bool
hg_conf_read_job(hg_conf_loader_t *ld, const config_setting_t *e,
                 unsigned ordinal, hg_job_conf_t *job)
{
    hg_conf_t *conf = ld->conf;
    const char *where;
    const config_setting_t *ids, *bs;
    char label[HG_CONF_ID_MAX + 16], file[PATH_MAX], at[PATH_MAX + 16];
    char loc[HG_CONF_LOC_MAX], err[HG_CONF_LOC_MAX];
    hg_conf_where_t w;
    bool keep = false;
    char *id = NULL;
    json_t *prev;
    int i, n, rc;

    /* The label for messages is the id when it is usable, else the job's
     * position: read the id quietly first; its errors come from the walk
     * below, once. */
    ids = config_setting_get_member(e, "id");
    rc = ids != NULL && config_setting_type(ids) == CONFIG_TYPE_STRING
         ? hg_conf_value(ld, config_setting_get_string(ids), &id, err,
                         sizeof(err))
         : HG_ERROR;
    if (rc == HG_CONF_NOMEM) {
        ld->oom = true;             /* not "job #N": the id is fine */
        return false;
    }
    if (rc == HG_OK && hg_conf_id_ok(id)) {
        snprintf(label, sizeof(label), "job \"%s\"", id);
    } else if (ordinal > 0) {
        snprintf(label, sizeof(label), "job #%u", ordinal);
    } else {
        snprintf(label, sizeof(label), "job");
    }
    free(id);

    hg_conf_defaults(ld, &hg_conf_job_section, (char *) job, false);
    job->policy = conf->defaults;
    job->definition = json_object();
    job->key_lines = json_object();
    where = hg_conf_setting_file(ld, e, file, sizeof(file));
    job->file = where != NULL ? strdup(where) : NULL;
    job->line = hg_conf_setting_line(e);
    if (job->definition == NULL || job->key_lines == NULL
        || (where != NULL && job->file == NULL))
    {
        ld->oom = true;
        return false;
    }

    w.job = label;
    w.group = "";
    hg_conf_section_read(ld, &hg_conf_job_section, (char *) job, e, &w,
                         job->definition);

    n = config_setting_length(e);
    for (i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(e, (unsigned) i);
        if (json_object_set_new(job->key_lines, config_setting_name(m),
                                json_integer(hg_conf_setting_line(m))) != 0)
        {
            ld->oom = true;
        }
    }
    /* notify: the job's own, checked, or the defaults' */
    bs = config_setting_get_member(e, "notify");
    if (bs != NULL) {
        hg_conf_notify_check(ld, bs, json_object_get(job->definition,
                                                     "notify"),
                             hg_conf_loc(&w, "notify", loc, sizeof(loc)),
                             true);
    } else if (conf->notify != NULL
               && json_object_set_new(job->definition, "notify",
                                      json_deep_copy(conf->notify)) != 0)
    {
        ld->oom = true;
    }
    bs = config_setting_get_member(e, "expect");
    if (bs != NULL && config_setting_is_group(bs)) {
        hg_conf_expect_check(ld, bs, json_object_get(job->definition,
                                                     "expect"),
                             hg_conf_loc(&w, "expect", loc, sizeof(loc)));
    }
    /* a pass_env that a shell command's ${VAR} made is on its line */
    if (json_object_get(job->key_lines, "pass_env") == NULL
        && json_object_get(job->definition, "pass_env") != NULL)
    {
        (void) json_object_set(job->key_lines, "pass_env",
                               json_object_get(job->key_lines, "command"));
    }

    if (job->id != NULL) {
        char q[HG_CONF_QUOTE_MAX + 8];

        prev = json_object_get(ld->ids, job->id);
        if (!hg_conf_id_ok(job->id)) {
            hg_conf_err(ld, ids, "job id %s is invalid: use 1-128 of A-Z "
                        "a-z 0-9 . _ -", hg_conf_quote(job->id, q, sizeof(q)));
        } else if (prev != NULL) {
            hg_conf_err(ld, ids, "duplicate job id \"%s\" (first defined at "
                        "%s)", job->id, json_string_value(prev));
        } else {
            where = hg_conf_setting_file(ld, ids, file, sizeof(file));
            snprintf(at, sizeof(at), "%s:%d", where ? where : "?",
                     hg_conf_setting_line(ids));
            if (json_object_set_new(ld->ids, job->id, json_string(at)) != 0) {
                ld->oom = true;
            }
            keep = true;
        }
    }

    hg_conf_job_schedule(ld, job, e, label);
    bs = config_setting_get_member(e, "backoff");
    if (bs != NULL) {
        hg_conf_backoff_check(ld, &job->policy.backoff, bs,
                              hg_conf_loc(&w, "backoff", loc, sizeof(loc)));
    }

    if (job->tags == NULL && (job->tags = json_array()) == NULL) {
        ld->oom = true;
    }
    job->definition_text = hg_json_dumps(job->definition,
                                      JSON_COMPACT | JSON_SORT_KEYS);
    if (job->definition_text == NULL) {
        ld->oom = true;
    }
    return keep && !ld->oom;
}

static void
hg_conf_read_jobs(hg_conf_loader_t *ld, const hg_conf_key_t *key,
                  char *base, const config_setting_t *s,
                  const hg_conf_where_t *w)
{
    hg_conf_t *conf = ld->conf;
    char got[HG_CONF_LOC_MAX];
    unsigned i, n;

    HG_UNUSED(key);
    HG_UNUSED(base);
    HG_UNUSED(w);

    if (!hg_conf_is_list(s)) {
        hg_conf_err(ld, s, "jobs: expected a list of jobs, ( { id = \"...\"; "
                    "type = \"...\"; ... }, ... ), got %s",
                    hg_conf_describe(s, got, sizeof(got)));
        return;
    }
    n = (unsigned) config_setting_length(s);
    if (n == 0) {
        return;
    }
    conf->jobs = calloc(n, sizeof(hg_job_conf_t));
    if (conf->jobs == NULL) {
        ld->oom = true;
        return;
    }
    for (i = 0; i < n && !ld->oom; i++) {
        const config_setting_t *e = config_setting_get_elem(s, i);

        if (!config_setting_is_group(e)) {
            hg_conf_err(ld, e, "jobs: job #%u is not a group: write each job "
                        "as { id = \"...\"; type = \"...\"; ... }, got %s",
                        i + 1, hg_conf_describe(e, got, sizeof(got)));
            continue;
        }
        /* a job without a usable id cannot be told apart from others:
         * its errors are reported, and the conf is not usable anyway */
        if (hg_conf_read_job(ld, e, i + 1, &conf->jobs[conf->njobs])) {
            conf->njobs++;
        } else {
            hg_conf_job_free(&conf->jobs[conf->njobs]);
        }
    }
}

static void
hg_conf_free_jobs(const hg_conf_key_t *key, char *base)
{
    HG_UNUSED(key);
    hg_conf_jobs_free((hg_conf_t *) base);
}

void
hg_conf_jobs_free(hg_conf_t *conf)
{
    size_t i;

    for (i = 0; i < conf->njobs; i++) {
        hg_conf_job_free(&conf->jobs[i]);
    }
    free(conf->jobs);
    conf->jobs = NULL;
    conf->njobs = 0;
}

/* --- value checks ----------------------------------------------------- */

static int
hg_conf_check_listen(const char *value, char *err, size_t errlen)
{
    const char *colon = strrchr(value, ':');
    char *end;
    long port;

    if (colon == NULL || colon == value) {
        goto bad;
    }
    if (value[0] == '[' && colon[-1] != ']') {
        goto bad;
    }
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 1
        || port > 65535)
    {
        goto bad;
    }
    return HG_OK;

bad:
    snprintf(err, errlen, "\"%.64s\" is not HOST:PORT (e.g. "
             "\"127.0.0.1:8080\" or \"[::1]:8080\")", value);
    return HG_ERROR;
}

static int
hg_conf_check_cidr(const char *value, char *err, size_t errlen)
{
    char addr[INET6_ADDRSTRLEN + 8];
    unsigned char bin[sizeof(struct in6_addr)];
    const char *slash = strchr(value, '/');
    size_t alen = slash ? (size_t) (slash - value) : strlen(value);
    long bits, max;
    char *end;

    if (alen == 0 || alen >= sizeof(addr)) {
        goto bad;
    }
    memcpy(addr, value, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET, addr, bin) == 1) {
        max = 32;
    } else if (inet_pton(AF_INET6, addr, bin) == 1) {
        max = 128;
    } else {
        goto bad;
    }
    if (slash != NULL) {
        errno = 0;
        bits = strtol(slash + 1, &end, 10);
        if (!isdigit((unsigned char) slash[1]) || *end != '\0' || errno != 0
            || bits < 0 || bits > max)
        {
            goto bad;
        }
    }
    return HG_OK;

bad:
    snprintf(err, errlen, "\"%.64s\" is not an address or CIDR block (e.g. "
             "\"10.0.0.0/8\", \"::1/128\", \"192.0.2.7\")", value);
    return HG_ERROR;
}

/* An http:// or https:// URL with a host. */
static int
hg_conf_check_url(const char *value, char *err, size_t errlen)
{
    const char *host = strncmp(value, "http://", 7) == 0 ? value + 7
                       : strncmp(value, "https://", 8) == 0 ? value + 8
                       : NULL;

    if (host == NULL || host[0] == '\0' || host[0] == '/'
        || strpbrk(value, " \t\r\n?#") != NULL)
    {
        snprintf(err, errlen, "\"%.64s\" is not an http:// or https:// URL "
                 "without query (e.g. \"http://127.0.0.1:4318\")", value);
        return HG_ERROR;
    }
    return HG_OK;
}

static int
hg_conf_check_name(const char *value, char *err, size_t errlen)
{
    if (!hg_conf_id_ok(value)) {
        snprintf(err, errlen, "\"%.64s\" is not a valid name: use 1-128 of "
                 "A-Z a-z 0-9 . _ -", value);
        return HG_ERROR;
    }
    return HG_OK;
}

/* --- load and free ---------------------------------------------------- */

static void
hg_conf_cross_checks(hg_conf_loader_t *ld)
{
    hg_conf_t *conf = ld->conf;
    const config_setting_t *s;

    s = config_lookup(&ld->cf, "defaults.backoff");
    if (s == NULL) {
        s = config_lookup(&ld->cf, "defaults");
    }
    if (s != NULL) {
        hg_conf_backoff_check(ld, &conf->defaults.backoff, s,
                              "defaults.backoff");
    }

    if (conf->tracing.enabled && conf->tracing.queue < conf->tracing.batch) {
        hg_conf_err(ld, config_lookup(&ld->cf, "tracing.queue"),
                    "tracing.queue: %d is smaller than tracing.batch (%d): "
                    "a batch could never fill", conf->tracing.queue,
                    conf->tracing.batch);
    }

    s = config_lookup(&ld->cf, "defaults.notify");
    if (s != NULL && conf->notify != NULL) {
        hg_conf_notify_check(ld, s, conf->notify, "defaults.notify", true);
    }

    if (conf->cluster.enabled && conf->store.driver != NULL
        && strcmp(conf->store.driver, "postgres") != 0
        && strcmp(conf->store.driver, "redis") != 0)
    {
        hg_conf_err(ld, config_lookup(&ld->cf, "cluster"), "cluster: needs "
                    "store.driver = \"postgres\" or \"redis\" (instances "
                    "share their jobs' fire times there), not \"%s\"",
                    conf->store.driver);
    }
    if (conf->store.driver != NULL
        && strcmp(conf->store.driver, "redis") == 0 && !conf->cluster.enabled)
    {
        /* Redis is there to coordinate: its instances are a cluster with
         * the cluster section's defaults. */
        conf->cluster.enabled = true;
        conf->cluster.lease_ms = 10000;
    }
    if (conf->cluster.enabled && conf->cluster.instance == NULL) {
        char host[256];

        if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0') {
            snprintf(host, sizeof(host), "hourglass");
        }
        host[sizeof(host) - 1] = '\0';
        conf->cluster.instance = strdup(host);
        if (conf->cluster.instance == NULL) {
            hg_conf_err(ld, NULL, "out of memory");
        }
    }
    if (conf->store.driver != NULL && conf->store.url == NULL
        && (strcmp(conf->store.driver, "postgres") == 0
            || strcmp(conf->store.driver, "redis") == 0))
    {
        hg_conf_err(ld, config_lookup(&ld->cf, "store"), "store: driver "
                    "\"%s\" needs url (e.g. url = \"%s\";)",
                    conf->store.driver,
                    conf->store.driver[0] == 'p'
                        ? "postgresql://hourglass@localhost/hourglass"
                        : "redis://127.0.0.1:6379");
    }
}

/* The prefix, absolute and without "." components or a trailing slash. */
static char *
hg_conf_prefix(const char *prefix)
{
    char *cwd, *abs;

    if (prefix[0] == '/') {
        return hg_conf_path_join(NULL, prefix);
    }
    cwd = getcwd(NULL, 0);
    if (cwd == NULL) {
        return NULL;
    }
    abs = hg_conf_path_join(cwd, prefix);
    free(cwd);
    return abs;
}

hg_conf_t *
hg_conf_load(const char *file, const char *prefix, hg_conf_errors_t *errors)
{
    hg_conf_errors_t local = { NULL, 0, 0 };
    hg_conf_loader_t ld;
    hg_conf_where_t top = { NULL, "" };
    hg_conf_t *conf = NULL;
    bool cf_ready = false;
    const char *slash;
    struct stat st;

    memset(&ld, 0, sizeof(ld));
    if (errors == NULL) {
        errors = &local;
    }
    if (file == NULL) {
        hg_conf_error_add(errors, NULL, 0, "no configuration file given");
        goto done;
    }

    conf = calloc(1, sizeof(*conf));
    if (conf == NULL) {
        goto nomem;
    }
    ld.conf = conf;
    ld.errors = errors;
    conf->file = strdup(file);
    conf->prefix = hg_conf_prefix(prefix != NULL ? prefix : HG_PREFIX);
    conf->modules.sections = json_object();
    conf->modules.section_lines = json_object();
    ld.ids = json_object();
    if (conf->file == NULL || conf->prefix == NULL
        || conf->modules.sections == NULL
        || conf->modules.section_lines == NULL || ld.ids == NULL)
    {
        goto nomem;
    }

    hg_conf_defaults(&ld, &hg_conf_root_section, (char *) conf, true);
    if (ld.oom) {
        goto nomem;
    }

    /* libconfig would happily "read" a directory as an empty file */
    if (stat(file, &st) != 0) {
        hg_conf_error_add(errors, file, 0, "cannot read the configuration "
                          "file: %s", strerror(errno));
        goto failed;
    }
    if (S_ISDIR(st.st_mode)) {
        hg_conf_error_add(errors, file, 0, "is a directory, not a "
                          "configuration file");
        goto failed;
    }

    config_init(&ld.cf);
    cf_ready = true;
    /* "@include" paths are relative to the main file, not to the current
     * directory (which a daemon does not choose) */
    slash = strrchr(file, '/');
    if (slash != NULL) {
        ld.incdir = strndup(file, slash == file ? 1 : (size_t) (slash - file));
        if (ld.incdir == NULL) {
            goto nomem;
        }
        config_set_include_dir(&ld.cf, ld.incdir);
    }

    errno = 0;
    if (config_read_file(&ld.cf, file) != CONFIG_TRUE) {
        if (config_error_type(&ld.cf) == CONFIG_ERR_FILE_IO) {
            hg_conf_error_add(errors, file, 0, "cannot read the configuration "
                              "file: %s",
                              errno ? strerror(errno) : "I/O error");
        } else {
            const char *ef = config_error_file(&ld.cf);
            const char *text = config_error_text(&ld.cf);
            char buf[PATH_MAX];

            if (ef != NULL && strcmp(ef, file) != 0 && ld.incdir != NULL
                && ef[0] != '/')
            {
                snprintf(buf, sizeof(buf), "%s/%s", ld.incdir, ef);
                ef = buf;
            }
            if (text != NULL && strstr(text, "include") != NULL) {
                hg_conf_error_add(errors, ef ? ef : file,
                                  config_error_line(&ld.cf), "%s (@include "
                                  "paths are relative to %s)", text,
                                  ld.incdir ? ld.incdir
                                            : "the current directory");
            } else {
                hg_conf_error_add(errors, ef ? ef : file,
                                  config_error_line(&ld.cf), "%s",
                                  text ? text : "syntax error");
            }
        }
        goto failed;
    }

    hg_conf_section_read(&ld, &hg_conf_root_section, (char *) conf,
                         config_root_setting(&ld.cf), &top, NULL);
    {
        /* The zone is checked with the cycle: its errors name this line. */
        const config_setting_t *tz = config_lookup(&ld.cf, "timezone");
        char buf[PATH_MAX];
        const char *where = tz != NULL
                            ? hg_conf_setting_file(&ld, tz, buf, sizeof(buf))
                            : NULL;

        conf->timezone_line = hg_conf_setting_line(tz);
        if (where != NULL && (conf->timezone_file = strdup(where)) == NULL) {
            ld.oom = true;
        }
    }
    if (conf->tracing.enabled && conf->tracing.otlp != NULL) {
        hg_conf_served_by(&ld, config_lookup(&ld.cf, "tracing.otlp"), "http",
                          "tracing.otlp", "the export of spans");
    }
    {
        const config_setting_t *lf = config_lookup(&ld.cf, "log.file");
        char buf[PATH_MAX];
        const char *where = lf != NULL
                            ? hg_conf_setting_file(&ld, lf, buf, sizeof(buf))
                            : NULL;

        conf->log.line = hg_conf_setting_line(lf);
        if (where != NULL && (conf->log.where = strdup(where)) == NULL) {
            ld.oom = true;
        }
    }
    hg_conf_cross_checks(&ld);
    if (ld.oom) {
        goto nomem;
    }
    goto done;

nomem:
    hg_conf_error_add(errors, file, 0, "out of memory while reading the "
                      "configuration");
failed:
    hg_conf_free(conf);
    conf = NULL;
done:
    if (cf_ready) {
        config_destroy(&ld.cf);
    }
    free(ld.incdir);
    json_decref(ld.ids);
    json_decref(ld.pass_env);
    if (errors == &local) {
        if (local.count > 0) {
            hg_conf_free(conf);
            conf = NULL;
        }
        hg_conf_errors_free(&local);
    }
    return conf;
}

/* Free what the table says base owns. */
static void
hg_conf_free_section(const hg_conf_section_t *sec, char *base)
{
    size_t i;

    for (i = 0; i < sec->nkeys; i++) {
        const hg_conf_key_t *key = &sec->keys[i];
        char *field = base + key->offset;

        switch (key->type) {
        case HG_CONF_STRING:
        case HG_CONF_PATH:
        case HG_CONF_ENUM_STRING:
            free(*(char **) field);
            *(char **) field = NULL;
            break;
        case HG_CONF_STRING_LIST:
            hg_conf_free_strings(*(char ***) field,
                                 *(size_t *) (base + key->offset2));
            *(char ***) field = NULL;
            *(size_t *) (base + key->offset2) = 0;
            break;
        case HG_CONF_STRING_ARRAY:
            json_decref(*(json_t **) field);
            *(json_t **) field = NULL;
            break;
        case HG_CONF_GROUP:
            hg_conf_free_section(key->section, field);
            break;
        case HG_CONF_HANDLER:
            key->handler->free(key, base);
            break;
        default:
            break;
        }
    }
    if (sec->also != NULL) {
        hg_conf_free_section(sec->also, base + sec->also_offset);
    }
}

void
hg_conf_free(hg_conf_t *conf)
{
    if (conf == NULL) {
        return;
    }
    hg_conf_free_section(&hg_conf_root_section, (char *) conf);
    json_decref(conf->modules.sections);
    json_decref(conf->modules.section_lines);
    json_decref(conf->served_by);
    free(conf->timezone_file);
    free(conf->log.where);
    free(conf->file);
    free(conf->prefix);
    free(conf);
}

/* --- a job from JSON (the admin API) ---------------------------------- */

/*
 * A JSON value as a libconfig setting under parent, so that a definition
 * from the API goes through the same reader as a job of the file. Arrays
 * become lists: a libconfig array holds scalars of one type only.
 */
static void
hg_conf_json_setting(hg_conf_loader_t *ld, config_setting_t *parent,
                     const char *name, const json_t *v, const char *loc)
{
    config_setting_t *s;
    char sub[HG_CONF_LOC_MAX];
    const char *key;
    json_t *member;
    int type, rc = CONFIG_TRUE;
    size_t i;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        type = CONFIG_TYPE_GROUP;
        break;
    case JSON_ARRAY:
        type = CONFIG_TYPE_LIST;
        break;
    case JSON_STRING:
        if (strlen(json_string_value(v)) != json_string_length(v)) {
            hg_conf_err(ld, NULL, "%s: the text holds a NUL character", loc);
            return;
        }
        type = CONFIG_TYPE_STRING;
        break;
    case JSON_INTEGER:
        type = json_integer_value(v) < INT32_MIN
               || json_integer_value(v) > INT32_MAX
               ? CONFIG_TYPE_INT64 : CONFIG_TYPE_INT;
        break;
    case JSON_REAL:
        type = CONFIG_TYPE_FLOAT;
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        type = CONFIG_TYPE_BOOL;
        break;
    default:
        hg_conf_err(ld, NULL, "%s: null is not a value (leave the key out)",
                    loc);
        return;
    }

    s = config_setting_add(parent, name, type);
    if (s == NULL) {
        /* libconfig refuses a name its own syntax could not write */
        hg_conf_err(ld, NULL, "%s: not a valid key name (a letter, then "
                    "letters, digits, _ and -)", loc);
        return;
    }

    switch (type) {
    case CONFIG_TYPE_GROUP:
        json_object_foreach((json_t *) v, key, member) {
            snprintf(sub, sizeof(sub), "%s.%s", loc, key);
            hg_conf_json_setting(ld, s, key, member, sub);
        }
        break;
    case CONFIG_TYPE_LIST:
        for (i = 0; i < json_array_size(v); i++) {
            snprintf(sub, sizeof(sub), "%s[%zu]", loc, i);
            hg_conf_json_setting(ld, s, NULL, json_array_get(v, i), sub);
        }
        break;
    case CONFIG_TYPE_STRING:
        rc = config_setting_set_string(s, json_string_value(v));
        break;
    case CONFIG_TYPE_INT:
        rc = config_setting_set_int(s, (int) json_integer_value(v));
        break;
    case CONFIG_TYPE_INT64:
        rc = config_setting_set_int64(s, json_integer_value(v));
        break;
    case CONFIG_TYPE_FLOAT:
        rc = config_setting_set_float(s, json_real_value(v));
        break;
    default:
        rc = config_setting_set_bool(s, json_is_true(v));
        break;
    }
    if (rc != CONFIG_TRUE) {
        ld->oom = true;
    }
}

static int hg_conf_job_from_definition(const hg_conf_t *conf,
                                       const json_t *definition,
                                       bool from_api, hg_job_conf_t *job,
                                       hg_conf_errors_t *errors);

int
hg_conf_job_from_json(const hg_conf_t *conf, const json_t *definition,
                      hg_job_conf_t *job, hg_conf_errors_t *errors)
{
    return hg_conf_job_from_definition(conf, definition, true, job, errors);
}

int
hg_conf_job_from_reader(const hg_conf_t *conf, const json_t *definition,
                        hg_job_conf_t *job, hg_conf_errors_t *errors)
{
    return hg_conf_job_from_definition(conf, definition, false, job, errors);
}

static int
hg_conf_job_from_definition(const hg_conf_t *conf, const json_t *definition,
                            bool from_api, hg_job_conf_t *job,
                            hg_conf_errors_t *errors)
{
    hg_conf_loader_t ld;
    hg_conf_t scratch;
    config_setting_t *group;
    const json_t *id;
    char label[HG_CONF_ID_MAX + 16], loc[HG_CONF_LOC_MAX];
    const char *key;
    json_t *value;
    size_t before;
    bool keep = false;

    memset(job, 0, sizeof(*job));
    if (conf == NULL || errors == NULL) {
        return HG_ERROR;
    }
    before = errors->count;
    if (!json_is_object(definition)) {
        hg_conf_error_add(errors, NULL, 0, "a job definition is a JSON "
                          "object: { \"id\": \"...\", \"type\": \"...\", "
                          "... }");
        return HG_ERROR;
    }

    /* the job's view of the configuration: its defaults and prefix, no
     * file (the job has no lines) and nothing to free */
    memset(&scratch, 0, sizeof(scratch));
    scratch.prefix = conf->prefix;
    scratch.defaults = conf->defaults;
    scratch.notify = conf->notify;
    scratch.channels = conf->channels;
    memset(&ld, 0, sizeof(ld));
    ld.conf = &scratch;
    ld.errors = errors;
    ld.literal = true;
    ld.from_api = from_api;
    ld.ids = json_object();
    config_init(&ld.cf);
    group = config_setting_add(config_root_setting(&ld.cf), "job",
                               CONFIG_TYPE_GROUP);
    if (group == NULL || ld.ids == NULL) {
        ld.oom = true;
        goto done;
    }

    id = json_object_get(definition, "id");
    if (json_is_string(id) && hg_conf_id_ok(json_string_value(id))) {
        snprintf(label, sizeof(label), "job \"%s\"", json_string_value(id));
    } else {
        snprintf(label, sizeof(label), "job");
    }
    json_object_foreach((json_t *) definition, key, value) {
        snprintf(loc, sizeof(loc), "%s: %s", label, key);
        hg_conf_json_setting(&ld, group, key, value, loc);
    }
    if (!ld.oom) {
        keep = hg_conf_read_job(&ld, group, 0, job);
    }

done:
    if (ld.oom) {
        hg_conf_error_add(errors, NULL, 0, "out of memory");
    }
    config_destroy(&ld.cf);
    json_decref(ld.ids);
    json_decref(ld.pass_env);
    if (!keep || errors->count != before) {
        hg_conf_job_free(job);
        return HG_ERROR;
    }
    return HG_OK;
}

int
hg_conf_add_api_jobs(hg_conf_t *conf, const json_t *definitions,
                     hg_conf_errors_t *errors)
{
    hg_job_conf_t *jobs, job;
    const hg_job_conf_t *other;
    hg_map_t ids;
    size_t i, n = json_array_size(definitions), before = errors->count;

    if (n == 0) {
        return json_is_array(definitions) || definitions == NULL
               ? HG_OK : HG_ERROR;
    }
    jobs = realloc(conf->jobs, (conf->njobs + n) * sizeof(*jobs));
    if (jobs == NULL) {
        hg_conf_error_add(errors, HG_CONF_API_FILE, 0, "out of memory");
        return HG_ERROR;
    }
    conf->jobs = jobs;
    /* the file's ids, once: a search of the file per API job would cost
     * O(n * m) for large files */
    hg_map_init(&ids);
    for (i = 0; i < conf->njobs; i++) {
        if (conf->jobs[i].id != NULL
            && hg_map_put(&ids, conf->jobs[i].id, &conf->jobs[i]) != HG_OK)
        {
            hg_conf_error_add(errors, HG_CONF_API_FILE, 0, "out of memory");
            hg_map_free(&ids);
            return HG_ERROR;
        }
    }
    for (i = 0; i < n; i++) {
        size_t first = errors->count;

        if (hg_conf_job_from_json(conf, json_array_get(definitions, i), &job,
                                  errors) != HG_OK)
        {
            for (; first < errors->count; first++) {
                if (errors->items[first].file == NULL) {
                    errors->items[first].file = strdup(HG_CONF_API_FILE);
                }
            }
            continue;
        }
        other = hg_map_get(&ids, job.id);
        if (other != NULL) {
            if (other->api) {
                hg_conf_error_add(errors, HG_CONF_API_FILE, 0, "job \"%s\": "
                                  "defined twice through the API", job.id);
            } else {
                hg_conf_error_add(errors, HG_CONF_API_FILE, 0, "job \"%s\": "
                                  "also defined in %s:%d; an id names one "
                                  "job (remove one of the two)", job.id,
                                  other->file != NULL ? other->file
                                                      : conf->file,
                                  other->line);
            }
            hg_conf_job_free(&job);
            continue;
        }
        job.api = true;
        job.file = strdup(HG_CONF_API_FILE);
        if (job.file == NULL) {
            hg_conf_error_add(errors, HG_CONF_API_FILE, 0, "out of memory");
            hg_conf_job_free(&job);
            continue;
        }
        conf->jobs[conf->njobs] = job;
        /* the map's key lives in conf->jobs, which does not move now */
        if (hg_map_put(&ids, conf->jobs[conf->njobs].id,
                       &conf->jobs[conf->njobs]) != HG_OK)
        {
            hg_conf_error_add(errors, HG_CONF_API_FILE, 0, "out of memory");
        }
        conf->njobs++;
    }
    hg_map_free(&ids);
    return errors->count == before ? HG_OK : HG_ERROR;
}

int
hg_conf_priority_parse(const char *name, hg_priority_t *priority)
{
    int i;

    for (i = 0; name != NULL && hg_conf_priorities[i] != NULL; i++) {
        if (strcmp(hg_conf_priorities[i], name) == 0) {
            *priority = (hg_priority_t) i;
            return HG_OK;
        }
    }
    return HG_ERROR;
}

const char *
hg_conf_priority_name(hg_priority_t priority)
{
    return (size_t) priority < HG_NELEMS(hg_conf_priorities) - 1
           ? hg_conf_priorities[priority] : "normal";
}

/* --- queries ---------------------------------------------------------- */

const hg_job_conf_t *
hg_conf_find_job(const hg_conf_t *conf, const char *id)
{
    size_t i;

    for (i = 0; conf != NULL && id != NULL && i < conf->njobs; i++) {
        if (strcmp(conf->jobs[i].id, id) == 0) {
            return &conf->jobs[i];
        }
    }
    return NULL;
}

int
hg_conf_job_key_line(const hg_job_conf_t *job, const char *key)
{
    char top[HG_CONF_LOC_MAX];
    size_t n;
    json_t *line;

    if (key == NULL) {
        return job->line;
    }
    /* "backoff.initial" and "argv[2]" are on the line of their key */
    n = strcspn(key, ".[");
    if (n >= sizeof(top)) {
        return job->line;
    }
    memcpy(top, key, n);
    top[n] = '\0';
    line = json_object_get(job->key_lines, top);
    return json_is_integer(line) ? (int) json_integer_value(line) : job->line;
}

bool
hg_conf_is_job_key(const char *key)
{
    size_t off;

    /* notify and expect are read apart (hg_conf_read_job): groups kept
     * whole (expect of another type is the http module's) */
    return key != NULL
        && (strcmp(key, "notify") == 0 || strcmp(key, "expect") == 0
            || hg_conf_section_find(&hg_conf_job_section, key, &off) != NULL);
}

void
hg_conf_check_job_keys(const hg_job_conf_t *job,
                       const char *const *module_keys,
                       hg_conf_errors_t *errors)
{
    const char *common[64], **names = NULL;
    size_t nc, nm = 0, i;
    const char *key;
    json_t *value;

    if (module_keys == NULL || job->definition == NULL) {
        return;         /* the module's validate judges its own keys */
    }
    hg_conf_section_names(&hg_conf_job_section, common, HG_NELEMS(common));
    for (nc = 0; common[nc] != NULL; nc++) {
    }
    while (module_keys[nm] != NULL) {
        nm++;
    }
    /* hint candidates: common keys and the module's; without memory for
     * the list the errors still go out, only without hints */
    names = calloc(nc + nm + 1, sizeof(*names));
    if (names != NULL) {
        memcpy(names, common, nc * sizeof(*names));
        memcpy(names + nc, module_keys, nm * sizeof(*names));
    }

    json_object_foreach(job->definition, key, value) {
        const char *hint;
        bool module_expect = strcmp(key, "expect") == 0
                             && !json_is_object(value);

        if (hg_conf_is_job_key(key) && !module_expect) {
            continue;
        }
        for (i = 0; i < nm && strcmp(module_keys[i], key) != 0; i++) {
        }
        if (i < nm) {
            continue;
        }
        if (module_expect) {
            /* not the dead-man group, and the type has no expect of its
             * own: ignored, it would check nothing the user meant */
            hg_conf_error_add(errors, job->file,
                              hg_conf_job_key_line(job, key),
                              "job \"%s\": expect: expected a group { "
                              "success_within = \"26h\"; } (a job of type "
                              "\"%s\" has no expect of its own)", job->id,
                              job->type ? job->type : "?");
            continue;
        }
        hint = names != NULL ? hg_hint_closest(key, names) : NULL;
        if (hint != NULL) {
            hg_conf_error_add(errors, job->file,
                              hg_conf_job_key_line(job, key),
                              "unknown key \"%s\" in job \"%s\" (did you mean "
                              "\"%s\"?)", key, job->id, hint);
        } else {
            hg_conf_error_add(errors, job->file,
                              hg_conf_job_key_line(job, key),
                              "unknown key \"%s\" in job \"%s\" (neither a "
                              "common job key nor a key of type \"%s\")",
                              key, job->id, job->type ? job->type : "?");
        }
    }
    free(names);
}

/* --- the log's place ------------------------------------------------- */

static void
hg_conf_log_error(const hg_conf_t *conf, hg_conf_errors_t *errors,
                  const char *fmt, ...) HG_PRINTF(3, 4);

static void
hg_conf_log_error(const hg_conf_t *conf, hg_conf_errors_t *errors,
                  const char *fmt, ...)
{
    char message[2 * PATH_MAX + 256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    hg_conf_error_add(errors, conf->log.where != NULL ? conf->log.where
                                                       : conf->file,
                      conf->log.line, "log.file: %s", message);
}

/* The directory part of DIR's last component: "/a/b" -> "/a", "/a" -> "/". */
static void
hg_conf_parent(const char *dir, char *out, size_t len)
{
    const char *slash = strrchr(dir, '/');
    size_t n = slash == NULL || slash == dir ? 1 : (size_t) (slash - dir);

    snprintf(out, len, "%.*s", (int) n, slash == NULL ? "." : dir);
}

int
hg_conf_log_place(const hg_conf_t *conf, bool create,
                  hg_conf_errors_t *errors)
{
    char dir[PATH_MAX], parent[PATH_MAX];
    struct stat st;
    char *slash, *p;
    bool missing = false;
    size_t len;

    if (strcmp(conf->log.file, "-") == 0) {
        return HG_OK;
    }
    len = strlen(conf->log.file);
    if (len >= sizeof(dir)) {
        hg_conf_log_error(conf, errors, "%.64s...: path too long",
                          conf->log.file);
        return HG_ERROR;
    }
    memcpy(dir, conf->log.file, len + 1);
    slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir) {
        *slash = '\0';
        /* level by level, as mkdir -p: the first one that is in the way
         * or cannot be made is the one named */
        for (p = strchr(dir + 1, '/'); !missing; p = strchr(p + 1, '/')) {
            if (p != NULL) {
                *p = '\0';
            }
            if (stat(dir, &st) == 0) {
                if (!S_ISDIR(st.st_mode)) {
                    hg_conf_log_error(conf, errors, "cannot create the log "
                                      "directory of %s: %s is not a "
                                      "directory", conf->log.file, dir);
                    return HG_ERROR;
                }
            } else if (errno != ENOENT
                       || (create && mkdir(dir, 0755) != 0))
            {
                hg_conf_log_error(conf, errors, "cannot create the log "
                                  "directory %s: %s", dir, strerror(errno));
                return HG_ERROR;
            } else if (!create) {
                /* the start would make it, and every level below it */
                hg_conf_parent(dir, parent, sizeof(parent));
                if (access(parent, W_OK | X_OK) != 0) {
                    hg_conf_log_error(conf, errors, "cannot create the log "
                                      "directory %s: %s", dir,
                                      strerror(errno));
                    return HG_ERROR;
                }
                missing = true;
            }
            if (p == NULL) {
                break;
            }
            *p = '/';
        }
        *slash = '/';
    }
    /* the start leaves the file to hg_log_open, which says the same */
    if (missing || create) {
        return HG_OK;
    }
    if (lstat(conf->log.file, &st) == 0) {
        if (S_ISLNK(st.st_mode)) {
            hg_conf_log_error(conf, errors, "cannot open %s: a symbolic "
                              "link (hourglass does not follow links there)",
                              conf->log.file);
            return HG_ERROR;
        }
        if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
            hg_conf_log_error(conf, errors, "cannot open %s: not a regular "
                              "file", conf->log.file);
            return HG_ERROR;
        }
        if (access(conf->log.file, W_OK) != 0) {
            hg_conf_log_error(conf, errors, "cannot open %s: %s",
                              conf->log.file, strerror(errno));
            return HG_ERROR;
        }
        return HG_OK;
    }
    hg_conf_parent(conf->log.file, parent, sizeof(parent));
    if (errno != ENOENT || access(parent, W_OK | X_OK) != 0) {
        hg_conf_log_error(conf, errors, "cannot create %s: %s",
                          conf->log.file, strerror(errno));
        return HG_ERROR;
    }
    return HG_OK;
}
