/*
 * scheduler.conf: reading the file into typed structures.
 *
 * hg_conf owns syntax and types: every key of the file is described once in
 * a table (name, type, default, bounds) from which parsing, defaults, error
 * messages, did-you-mean hints and the -T dump are derived. It knows nothing
 * of modules, cron or processes: semantic checks that need them (a module's
 * validate, a cron expression, a time zone) are made by hg_cycle, which adds
 * its errors to the same hg_conf_errors_t with the lines kept here.
 *
 * Paths in the file (pid, log.file, modules.path, store.path) are resolved
 * against the prefix; strings have ${VAR} and ${VAR:-default} expanded from
 * the environment ("$$" is a literal "$").
 */

#ifndef HG_CONF_H
#define HG_CONF_H

#include "hg_core.h"

typedef struct hg_conf_error_s {
    char *file;
    int line;                       /* 0 when no line applies */
    char *message;
} hg_conf_error_t;

typedef struct hg_conf_errors_s {
    hg_conf_error_t *items;
    size_t count;
    size_t capacity;
} hg_conf_errors_t;

void hg_conf_error_add(hg_conf_errors_t *errors, const char *file, int line,
                       const char *fmt, ...) HG_PRINTF(4, 5);
/* "F:LINE: message" per error (or "F: message" when line is 0). */
void hg_conf_errors_print(const hg_conf_errors_t *errors, FILE *out);
void hg_conf_errors_free(hg_conf_errors_t *errors);

typedef enum {
    HG_OVERLAP_SKIP = 0,
    HG_OVERLAP_QUEUE,
    HG_OVERLAP_REPLACE,
    HG_OVERLAP_ALLOW
} hg_overlap_t;

typedef enum {
    HG_MISFIRE_SKIP = 0,
    HG_MISFIRE_RUN_ONCE,
    HG_MISFIRE_RUN_ALL
} hg_misfire_t;

typedef enum {
    HG_PRIORITY_LOW = 0,
    HG_PRIORITY_NORMAL,
    HG_PRIORITY_HIGH,
    HG_PRIORITY_CRITICAL
} hg_priority_t;

typedef enum {
    HG_SCHEDULE_NONE = 0,           /* only triggered or enqueued */
    HG_SCHEDULE_CRON,               /* schedule = "..." */
    HG_SCHEDULE_EVERY,              /* every = "5m" */
    HG_SCHEDULE_AT                  /* at = "2026-12-01T09:00:00+01:00" */
} hg_schedule_kind_t;

typedef enum {
    HG_LOG_FORMAT_TEXT = 0,
    HG_LOG_FORMAT_JSON
} hg_log_format_t;

typedef struct hg_backoff_s {
    int64_t initial_ms;             /* default 1s */
    int64_t max_ms;                 /* default 1h */
    double multiplier;              /* default 2.0, >= 1.0 */
    double jitter;                  /* default 0.1, 0.0 .. 1.0 */
} hg_backoff_t;

/* Per-execution resource limits (`limits = { memory = "512MiB"; cpu =
 * 0.5; tasks = 64; }`), enforced through the execution's cgroup
 * (hg_cgroup.c). Zero: no limit. */
typedef struct hg_limits_s {
    uint64_t memory;                /* bytes */
    double cpu;                     /* cores */
    int tasks;                      /* processes (and threads) */
} hg_limits_t;

/* Job settings that `defaults` can give and a job can override. Every
 * job the master runs has a copy: the 4-byte fields are kept together so
 * that none is padded to 8. */
typedef struct hg_job_policy_s {
    int64_t timeout_ms;             /* 0 = none; default 5m */
    hg_backoff_t backoff;
    hg_limits_t limits;
    int64_t starting_deadline_ms;   /* 0 = none */
    int64_t jitter_ms;              /* 0 = none */
    int max_retries;                /* default 3, 0 .. 1000 */
    hg_overlap_t overlap;           /* default skip */
    hg_misfire_t misfire;           /* default run_once */
    hg_priority_t priority;         /* default normal */
} hg_job_policy_t;

typedef struct hg_job_conf_s {
    char *id;                       /* [A-Za-z0-9._-]{1,128}, unique */
    char *name;                     /* NULL when not given */
    char *description;              /* NULL when not given */
    char *type;                     /* module name; required */

    hg_schedule_kind_t schedule_kind;
    char *schedule;                 /* cron text, ${VAR} expanded (CRON) */
    int64_t every_ms;               /* > 0 (EVERY) */
    char *at;                       /* the `at` text as written (AT) */
    char *start_at;                 /* NULL, or `start_at` text (EVERY) */
    char *timezone;                 /* NULL: the global timezone */
    bool enabled;                   /* default true */

    hg_job_policy_t policy;         /* defaults merged with the job's keys */
    json_t *tags;                   /* array of strings, never NULL */

    /* Every key the job has (the module's own keys too), values as written
     * after ${VAR} expansion: what modules receive. */
    json_t *definition;
    /* json_dumps(definition, JSON_COMPACT | JSON_SORT_KEYS): what is sent
     * to workers and compared on reload. */
    char *definition_text;

    char *file;                     /* where the job is defined;
                                       HG_CONF_API_FILE for an API job */
    int line;
    bool api;                       /* defined through the master's
                                       surface (the admin API), kept in
                                       the store, not in the file */
    json_t *key_lines;              /* key -> line (integer) of each key */
} hg_job_conf_t;

typedef struct hg_api_token_s {
    char *name;
    char *token;
    char *role;                     /* read | execute | write | admin */
} hg_api_token_t;

/* A channel as the file describes it (read into this, then kept as JSON
 * in hg_conf_t.channels). */
typedef struct hg_channel_conf_s {
    char *name;
    char *type;                     /* webhook | command */
    char *url;                      /* webhook */
    char *command;                  /* command: run by /bin/sh -c */
    int64_t timeout_ms;
    int retries;
    int rate_limit;                 /* notifications per job and window */
    int64_t rate_window_ms;
} hg_channel_conf_t;

/* The events a job's notify may name, NULL-terminated. */
extern const char *const hg_conf_notify_events[];

typedef struct hg_conf_s {
    char *file;                     /* the main file, as given */
    char *prefix;

    bool daemon;                    /* default false */
    char *pid;                      /* absolute; default PREFIX/var/hourglass.pid */
    int workers;                    /* >= 1; "auto" = online CPUs; default 4 */
    char *timezone;                 /* NULL = local zone (TZ) */
    char *timezone_file;            /* where it is set, for its errors */
    int timezone_line;
    int64_t shutdown_timeout_ms;    /* default 30s */
    int64_t reload_timeout_ms;      /* default 60s: the cycle reader's bound */

    struct {
        char *file;                 /* "-" = stderr; else absolute path */
        hg_log_level_t level;       /* default info */
        hg_log_format_t format;     /* default text */
        char *where;                /* the file that sets log.file, and */
        int line;                   /* its line, for its errors */
    } log;

    struct {
        char *path;                 /* absolute; default PREFIX/modules */
        char **load;                /* names or paths, in order */
        size_t nload;
        json_t *sections;           /* object: NAME -> object (modules.NAME) */
        json_t *section_lines;      /* object: NAME -> line */
    } modules;

    struct {
        char *driver;               /* sqlite | memory | postgres | redis; default sqlite */
        char *path;                 /* absolute; default PREFIX/var/hourglass.db */
        char *url;                  /* postgres/redis */
        int64_t retention_ms;       /* default 30d; 0 = keep forever */
        int64_t claim_ttl_ms;       /* redis: how long a claim is kept */
    } store;

    struct {
        bool enabled;               /* a cluster section is present */
        char *instance;             /* this instance's name; default the
                                       host name */
        int64_t lease_ms;           /* default 10s */
    } cluster;

    struct {
        bool enabled;               /* an api section is present */
        char *listen;               /* default 127.0.0.1:8080 */
        char **allow;               /* CIDR strings */
        size_t nallow;
        hg_api_token_t *tokens;
        size_t ntokens;
        uint64_t body_limit;        /* default 1MiB */
        int64_t timeout_ms;         /* a request's bound, idle or slow;
                                       default 30s */
        bool tls;                   /* a tls section is present */
        char *tls_cert;             /* absolute: PEM certificate (chain) */
        char *tls_key;              /* absolute: PEM private key */
    } api;

    /* `tracing`: each execution a span exported over OTLP/HTTP JSON
     * (hg_otlp.c); a reload may change it. */
    struct {
        bool enabled;               /* a tracing section is present */
        char *otlp;                 /* the collector's base URL: spans go
                                       to OTLP/v1/traces */
        char *service_name;         /* default "hourglass" */
        int batch;                  /* spans per export; default 512 */
        int queue;                  /* spans held at most; default 2048 */
        int64_t interval_ms;        /* a batch's longest wait; default 1s */
        int retries;                /* of an export; default 3 */
        int64_t timeout_ms;         /* of an export's try; default 10s */
    } tracing;

    hg_job_policy_t defaults;
    /* `defaults.notify` as written ({ "on": [...], "via": [...] }), or
     * NULL: merged into each job's definition that has no notify of its
     * own, so the master finds a job's notify in its definition alone. */
    json_t *notify;
    /* `channels`, each a JSON object as hg_notify.c takes it: name, type
     * ("webhook" | "command"), url or command, timeout_ms, retries,
     * rate_limit, rate_window_ms. NULL when the file has none. */
    json_t *channels;
    /* The settings outside the jobs that run as executions of a module's
     * type, as a job's `type` names its module: a webhook channel and
     * tracing.otlp are delivered by internal jobs of type "http", a
     * command channel by one of type "shell". Each {"type", "setting",
     * "use", "file", "line"}: the cycle checks that a loaded module serves
     * each (hg_cycle.c), so that -t, the start and a reload refuse what
     * would fail at every delivery. NULL when there are none, and in a
     * conf rebuilt from JSON (checked when it was read). */
    json_t *served_by;

    hg_job_conf_t *jobs;
    size_t njobs;
} hg_conf_t;

/*
 * Whether the log file can be opened where log.file says: its directory
 * exists or can be made, and the file is one hourglass may append to
 * (-t). With CREATE (the start), only the directory: made if missing, the
 * file left to hg_log_open. HG_ERROR with an error added at log.file's
 * line.
 */
int hg_conf_log_place(const hg_conf_t *conf, bool create,
                      hg_conf_errors_t *errors);

/*
 * Read FILE (relative to the current directory), resolving paths in it
 * against PREFIX. Returns a conf (NULL only when out of memory or when the
 * file cannot be read or parsed at all) and adds one error per problem
 * found; the caller must treat errors->count > 0 as failure. With errors
 * NULL, any problem makes the result NULL.
 */
hg_conf_t *hg_conf_load(const char *file, const char *prefix,
                        hg_conf_errors_t *errors);
void hg_conf_free(hg_conf_t *conf);

/* The job with this id, or NULL. */
const hg_job_conf_t *hg_conf_find_job(const hg_conf_t *conf, const char *id);

/*
 * A module's key table, for hg_conf_check_job_keys: every key of a job must
 * be a common job key or one of the module's keys, else it is reported with
 * its line and a did-you-mean hint drawn from both sets. `module_keys` is a
 * NULL-terminated array, or NULL when the module does not declare its keys
 * (then only common keys are checked for type, and the module's validate
 * must reject unknown keys itself).
 */
void hg_conf_check_job_keys(const hg_job_conf_t *job,
                            const char *const *module_keys,
                            hg_conf_errors_t *errors);

/* The line of KEY in JOB, or the job's own line when KEY is not there. */
int hg_conf_job_key_line(const hg_job_conf_t *job, const char *key);

/* Print the effective configuration (defaults filled, ${VAR} expanded) in
 * scheduler.conf syntax. Tokens are printed masked. */
int hg_conf_dump(const hg_conf_t *conf, FILE *out);
/* The settings read once at start whose values differ from WAS to NOW (a
 * reload cannot apply them): CB with the dotted name and both values as
 * -T writes them, in the order of the key table. */
typedef void (*hg_conf_change_pt)(const char *name, const char *was,
                                  const char *now, void *data);
void hg_conf_restart_changes(const hg_conf_t *was, const hg_conf_t *now,
                             hg_conf_change_pt cb, void *data);

/* The closest candidate to WORD by edit distance, or NULL when none is
 * close enough to be a useful hint. */
const char *hg_conf_did_you_mean(const char *word,
                                 const char *const *candidates);

/* Whether KEY is a common job key (id, type, schedule, timeout, backoff,
 * ...), as opposed to a key of the job's module. */
bool hg_conf_is_job_key(const char *key);

/*
 * TEXT with ${VAR} and ${VAR:-default} replaced from the environment and
 * "$$" by "$" (a "$" before anything else is kept, so "$HOME" in a shell
 * command passes through). As in sh, the default also replaces a variable
 * set to "". HG_OK with a malloc'd *out, or HG_ERROR with the reason in
 * err ("environment variable "FOO" is not set (use ${FOO:-default})").
 */
int hg_conf_expand_env(const char *text, char **out, char *err,
                       size_t errlen);

/*
 * A job from a JSON definition, as the admin API receives one: the same
 * keys, types, checks and messages as a job of the file, starting from
 * conf's `defaults`, but with strings taken as they are (no ${VAR}: the
 * daemon's environment is not an API client's to read) and no file or
 * lines (job->file is NULL, errors have no file). Whether the id is taken
 * already, and the module's own keys, are the caller's to check (with
 * hg_conf_check_job_keys and validate, as for the file). HG_OK with *job
 * filled, to be freed with hg_conf_job_free; or HG_ERROR with every
 * problem added to errors and *job empty.
 */
int hg_conf_job_from_json(const hg_conf_t *conf, const json_t *definition,
                          hg_job_conf_t *job, hg_conf_errors_t *errors);
/* The same for a definition the cycle reader already checked (its
 * strings expanded, its shell commands' variables named in `pass_env`,
 * which is taken here as the reader wrote it). */
int hg_conf_job_from_reader(const hg_conf_t *conf, const json_t *definition,
                            hg_job_conf_t *job, hg_conf_errors_t *errors);

/* "low" "normal" "high" "critical" as a priority; HG_ERROR otherwise. */
int hg_conf_priority_parse(const char *name, hg_priority_t *priority);
/* The name of PRIORITY ("normal" for one out of range). */
const char *hg_conf_priority_name(hg_priority_t priority);

/* Whether ID is a job id: 1-128 of A-Z a-z 0-9 . _ - */
bool hg_conf_id_ok(const char *id);

/* What an API job's errors name instead of a file. */
#define HG_CONF_API_FILE  "api"

/*
 * Add the jobs defined through the admin API to CONF: DEFINITIONS is an
 * array of job definitions (hg_conf_job_from_json each), appended after
 * the file's jobs with api set and HG_CONF_API_FILE as their file. An id
 * the file already defines, or one given twice, is an error naming both:
 * neither source silently wins. HG_OK, or HG_ERROR with every problem in
 * ERRORS (the jobs that were fine are added all the same; a conf with
 * errors is never used).
 */
int hg_conf_add_api_jobs(hg_conf_t *conf, const json_t *definitions,
                         hg_conf_errors_t *errors);

/* Free what a job owns (not the job itself) and zero it. */
void hg_conf_job_free(hg_job_conf_t *job);
/* Free every job of CONF, which is left with none (njobs 0). */
void hg_conf_jobs_free(hg_conf_t *conf);

#endif /* HG_CONF_H */
