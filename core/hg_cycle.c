/*
 * hg_cycle.c: turning a configuration into a checked, ready cycle. Every
 * problem is collected with its file and line (not only the first), so
 * `hourglass -t` shows them all at once.
 *
 * Two ways in: hg_cycle_create reads the file and runs module code (init,
 * validate): only the cycle reader process calls it, and tests; the master
 * builds its cycles with hg_cycle_build from what a reader checked, and
 * that path must never call into a module.
 */

#include "hg_core.h"

#ifdef __GLIBC__
#include <malloc.h>
/* glibc's default M_MXFAST (mallopt(3)): 128 bytes on 64-bit systems. */
#define HG_CYCLE_MXFAST_DEFAULT  ((int) (64 * sizeof(size_t) / 4))
#endif

#include "hg_cycle.h"
#include "hg_hint.h"
#include "hg_log.h"
#include "hg_map.h"

/* In a cycle reader process: the shared page that says what it is doing
 * (hg_cycle_stage), which its parent reads if it crashes or hangs. */
static char *hg_cycle_stage_text;
static size_t hg_cycle_stage_size;

void
hg_cycle_stage_page(char *page, size_t size)
{
    hg_cycle_stage_text = page;
    hg_cycle_stage_size = size;
}

void
hg_cycle_stage(const char *fmt, ...)
{
    va_list ap;

    if (hg_cycle_stage_text == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(hg_cycle_stage_text, hg_cycle_stage_size, fmt, ap);
    va_end(ap);
}

static void
hg_cycle_job_error(const hg_job_conf_t *job, const char *key,
                   hg_conf_errors_t *errors, const char *message)
{
    hg_conf_error_add(errors, job->file,
                      key ? hg_conf_job_key_line(job, key) : job->line,
                      "job \"%s\": %s", job->id, message);
}

/* A module's message names the key it is about ("command: ..."): report
 * the line of that key when the job has it. */
static const char *
hg_cycle_message_key(const char *message, char *key, size_t len)
{
    const char *colon = strchr(message, ':');
    size_t n;

    if (colon == NULL) {
        return NULL;
    }
    n = (size_t) (colon - message);
    if (n == 0 || n >= len || strcspn(message, " \t\"") < n) {
        return NULL;
    }
    memcpy(key, message, n);
    key[n] = '\0';
    return key;
}

static int
hg_cycle_check_module(hg_cycle_t *cycle, hg_cycle_job_t *cj,
                      hg_conf_errors_t *errors)
{
    const hg_job_conf_t *job = cj->conf;
    char err[1024], names[512], key[128], message[1200];
    const char *hint;
    const char **candidates;
    size_t i;
    size_t before = errors->count;

    cj->module = hg_modules_find(&cycle->modules, job->type);
    if (cj->module == NULL) {
        candidates = calloc(cycle->modules.count + 1, sizeof(*candidates));
        if (candidates == NULL) {
            hg_cycle_job_error(job, "type", errors, "out of memory");
            return HG_ERROR;
        }
        for (i = 0; i < cycle->modules.count; i++) {
            candidates[i] = cycle->modules.items[i].module->name;
        }
        hint = hg_conf_did_you_mean(job->type, candidates);
        hg_modules_names(&cycle->modules, names, sizeof(names));
        if (hint != NULL) {
            snprintf(message, sizeof(message), "type: unknown module type "
                     "\"%s\" (did you mean \"%s\"?)", job->type, hint);
        } else {
            snprintf(message, sizeof(message), "type: unknown module type "
                     "\"%s\" (loaded modules: %s)", job->type,
                     names[0] ? names : "none; see modules.load");
        }
        free(candidates);
        hg_cycle_job_error(job, "type", errors, message);
        return HG_ERROR;
    }
    hg_conf_check_job_keys(job, hg_module_ref_keys(cj->module), errors);
    if (errors->count > before) {
        return HG_ERROR;
    }
    if (cj->module->module->validate == NULL) {
        return HG_OK;
    }
    hg_cycle_stage("validating job \"%s\"", job->id);
    err[0] = '\0';
    if (cj->module->module->validate(job->definition, err, sizeof(err))
        != 0)
    {
        if (err[0] == '\0') {
            snprintf(err, sizeof(err), "rejected by module \"%s\"",
                     job->type);
        }
        hg_cycle_job_error(job, hg_cycle_message_key(err, key, sizeof(key)),
                           errors, err);
        return HG_ERROR;
    }
    return HG_OK;
}

/* The settings outside the jobs that run as executions of a module's type
 * (hg_conf_t.served_by: webhook and command channels, tracing.otlp): the
 * module must be loaded, as a job's type must, or every delivery would
 * fail with "no module serves type ...". */
static void
hg_cycle_check_served(const hg_cycle_t *cycle, hg_conf_errors_t *errors)
{
    const json_t *s;
    size_t i;

    json_array_foreach(cycle->conf->served_by, i, s) {
        const char *type = json_string_value(json_object_get(s, "type"));
        const char *file = json_string_value(json_object_get(s, "file"));

        if (type == NULL || hg_modules_find(&cycle->modules, type) != NULL) {
            continue;
        }
        hg_conf_error_add(errors, file != NULL && file[0] != '\0' ? file
                                  : cycle->conf->file,
                          (int) json_integer_value(json_object_get(s, "line")),
                          "%s: %s needs a module of type \"%s\", and none "
                          "is loaded (add \"%s\" to modules.load)",
                          json_string_value(json_object_get(s, "setting")),
                          json_string_value(json_object_get(s, "use")),
                          type, type);
    }
}

/* The parsed expression for TEXT: one per distinct text in a cycle
 * (CRONS: text -> expression), shared by every job that writes it. */
static hg_cron_t *
hg_cycle_cron(hg_map_t *crons, const char *text, char *err, size_t errlen)
{
    hg_cron_t *cron = hg_map_get(crons, text);

    if (cron != NULL) {
        return hg_cron_ref(cron);
    }
    cron = hg_cron_parse(text, err, errlen);
    if (cron != NULL && hg_map_put(crons, text, cron) != HG_OK) {
        hg_cron_free(cron);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    return cron;
}

/* A "CRON_TZ=Zone ..." schedule is read in that zone; with a different
 * `timezone` beside it the job would say two things. */
static int
hg_cycle_cron_zone(hg_cycle_job_t *cj, hg_conf_errors_t *errors)
{
    const hg_job_conf_t *job = cj->conf;
    const char *zone = hg_cron_zone(cj->cron);
    char err[512], message[1024];
    const hg_tz_t *tz;

    if (zone == NULL) {
        return HG_OK;
    }
    if (job->timezone != NULL && strcmp(job->timezone, zone) != 0) {
        snprintf(message, sizeof(message), "schedule: the prefix says time "
                 "zone \"%s\" and timezone says \"%s\" (keep one)", zone,
                 job->timezone);
        hg_cycle_job_error(job, "schedule", errors, message);
        return HG_ERROR;
    }
    tz = hg_tz_get(zone, err, sizeof(err));
    if (tz == NULL) {
        snprintf(message, sizeof(message), "schedule: %s", err);
        hg_cycle_job_error(job, "schedule", errors, message);
        return HG_ERROR;
    }
    cj->tz = tz;
    return HG_OK;
}

static int
hg_cycle_check_schedule(hg_cycle_t *cycle, hg_cycle_job_t *cj,
                        hg_map_t *crons, hg_conf_errors_t *errors)
{
    const hg_job_conf_t *job = cj->conf;
    char err[512], message[1536];
    int rc = HG_OK;

    if (job->timezone != NULL) {
        cj->tz = hg_tz_get(job->timezone, err, sizeof(err));
        if (cj->tz == NULL) {
            snprintf(message, sizeof(message), "timezone: %s", err);
            hg_cycle_job_error(job, "timezone", errors, message);
            rc = HG_ERROR;
            cj->tz = hg_tz_utc();       /* to go on checking the schedule */
        }
    } else {
        cj->tz = cycle->tz;
    }

    switch (job->schedule_kind) {
    case HG_SCHEDULE_CRON:
        cj->cron = hg_cycle_cron(crons, job->schedule, err, sizeof(err));
        if (cj->cron == NULL) {
            char hint[512];
            hg_hint_crontab_line(job->schedule, hint, sizeof(hint));
            snprintf(message, sizeof(message), "schedule: invalid schedule "
                     "\"%s\": %s%s", job->schedule, err, hint);
            hg_cycle_job_error(job, "schedule", errors, message);
            return HG_ERROR;
        }
        cj->every_ms = hg_cron_every_seconds(cj->cron) * HG_MSEC_PER_SEC;
        if (hg_cycle_cron_zone(cj, errors) != HG_OK) {
            rc = HG_ERROR;
        }
        break;
    case HG_SCHEDULE_EVERY:
        cj->every_ms = job->every_ms;
        if (job->start_at != NULL) {
            if (hg_tz_parse_time(cj->tz, job->start_at, &cj->start_at, err,
                                 sizeof(err)) != HG_OK)
            {
                snprintf(message, sizeof(message), "start_at: %s", err);
                hg_cycle_job_error(job, "start_at", errors, message);
                rc = HG_ERROR;
            }
            cj->has_start_at = true;
        }
        break;
    case HG_SCHEDULE_AT:
        if (hg_tz_parse_time(cj->tz, job->at, &cj->at, err, sizeof(err))
            != HG_OK)
        {
            snprintf(message, sizeof(message), "at: %s", err);
            hg_cycle_job_error(job, "at", errors, message);
            rc = HG_ERROR;
        }
        break;
    case HG_SCHEDULE_NONE:
        break;
    }
    return rc;
}

static void
hg_cycle_free_jobs(hg_cycle_t *cycle)
{
    size_t i;

    for (i = 0; i < cycle->njobs; i++) {
        hg_cron_free(cycle->jobs[i].cron);
    }
    free(cycle->jobs);
    cycle->jobs = NULL;
    cycle->njobs = 0;
}

static void
hg_cycle_free(hg_cycle_t *cycle)
{
    hg_cycle_free_jobs(cycle);
    hg_modules_fini(&cycle->modules);
    hg_modules_close(&cycle->modules);
    hg_conf_free(cycle->conf);
    free(cycle->prefix);
    free(cycle);
}

/*
 * The checks of every job, CONF taken over. RUN_MODULES: load and
 * initialise the modules in this process and check each job against its
 * module, validate included (the cycle reader, tests); otherwise leave the
 * modules alone (the master: see hg_cycle_build).
 */
static hg_cycle_t *
hg_cycle_check(hg_conf_t *conf, const char *prefix, bool run_modules,
               hg_conf_errors_t *errors)
{
    hg_cycle_t *cycle;
    hg_map_t crons;
    char err[512];
    size_t i;

    hg_map_init(&crons);
    cycle = calloc(1, sizeof(*cycle));
    if (cycle == NULL) {
        hg_conf_error_add(errors, conf->file, 0, "out of memory");
        hg_conf_free(conf);
        return NULL;
    }
    cycle->conf = conf;
    cycle->prefix = strdup(prefix);
    if (cycle->prefix == NULL) {
        hg_conf_error_add(errors, conf->file, 0, "out of memory");
        goto failed;
    }
    /* Go on after errors in the file: -t should show every problem at
     * once, the modules' and the schedules' included. Nothing of a cycle
     * with errors is ever used. */
    cycle->tz = hg_tz_get(cycle->conf->timezone, err, sizeof(err));
    if (cycle->tz == NULL) {
        hg_conf_error_add(errors, cycle->conf->timezone_file != NULL
                                  ? cycle->conf->timezone_file
                                  : cycle->conf->file,
                          cycle->conf->timezone_line, "timezone: %s", err);
        cycle->tz = hg_tz_utc();
    }
    if (run_modules
        && hg_modules_open(&cycle->modules, cycle->conf, errors) == HG_OK)
    {
        hg_cycle_stage("initialising the modules");
        hg_modules_init(&cycle->modules, HG_PROCESS_MASTER, prefix,
                        errors);
        hg_cycle_check_served(cycle, errors);
    }
    if (cycle->conf->njobs > 0) {
        cycle->jobs = calloc(cycle->conf->njobs, sizeof(*cycle->jobs));
        if (cycle->jobs == NULL) {
            hg_conf_error_add(errors, conf->file, 0, "out of memory");
            goto failed;
        }
    }
    for (i = 0; i < cycle->conf->njobs; i++) {
        hg_cycle_job_t *cj = &cycle->jobs[i];
        cj->conf = &cycle->conf->jobs[i];
        cycle->njobs++;
        if (cj->conf->type == NULL) {
            continue;                   /* reported by hg_conf */
        }
        if (run_modules) {
            hg_cycle_check_module(cycle, cj, errors);
        }
        hg_cycle_check_schedule(cycle, cj, &crons, errors);
    }
    if (errors->count > 0) {
        goto failed;
    }
    hg_map_free(&crons);
    return cycle;

failed:
    hg_map_free(&crons);
    hg_cycle_free(cycle);
    return NULL;
}

hg_cycle_t *
hg_cycle_create(const char *file, const char *prefix,
                hg_conf_errors_t *errors)
{
    return hg_cycle_create_with(file, prefix, NULL, errors);
}

hg_cycle_t *
hg_cycle_create_with(const char *file, const char *prefix,
                     const json_t *api_jobs, hg_conf_errors_t *errors)
{
    hg_conf_t *conf;

    hg_cycle_stage("reading %s", file);
    conf = hg_conf_load(file, prefix, errors);
    if (conf == NULL) {
        return NULL;
    }
    hg_cycle_stage("reading the jobs defined through the API");
    (void) hg_conf_add_api_jobs(conf, api_jobs, errors);
    return hg_cycle_check(conf, prefix, true, errors);
}

hg_cycle_t *
hg_cycle_create_from_conf(hg_conf_t *conf, const char *prefix,
                          hg_conf_errors_t *errors)
{
    return hg_cycle_check(conf, prefix, true, errors);
}

hg_cycle_t *
hg_cycle_build(hg_conf_t *conf, const char *prefix, hg_conf_errors_t *errors)
{
    return hg_cycle_check(conf, prefix, false, errors);
}

int
hg_cycle_open_modules(hg_cycle_t *cycle, hg_conf_errors_t *errors)
{
    return hg_modules_open(&cycle->modules, cycle->conf, errors);
}

/*
 * What reading the configuration left in malloc's heap goes, and its pages
 * back to the system: glibc returns memory by itself only from the top of
 * the heap, and what stays above (modules, the store, anything allocated
 * since) would keep the rest resident. malloc_trim releases the free pages
 * in between, but it first merges every chunk still in a fastbin (small
 * chunks are not merged when freed): the jobs of a large configuration are
 * millions of them, 200 ms for 100k jobs. With fastbins off while the jobs
 * are freed, each free merges at once and the trim finds a few large free
 * chunks (~20 ms). The setting goes back to glibc's default after (a
 * glibc.malloc.mxfast tunable is not kept).
 */
void
hg_cycle_compact(hg_cycle_t *cycle)
{
#ifdef __GLIBC__
    mallopt(M_MXFAST, 0);
#endif
    hg_cycle_free_jobs(cycle);
    hg_conf_jobs_free(cycle->conf);
#ifdef __GLIBC__
    malloc_trim(0);
    mallopt(M_MXFAST, HG_CYCLE_MXFAST_DEFAULT);
#endif
}

void
hg_cycle_release_jobs(hg_cycle_t *cycle, hg_job_conf_t **jobs, size_t *njobs)
{
    hg_cycle_free_jobs(cycle);
    *jobs = cycle->conf->jobs;
    *njobs = cycle->conf->njobs;
    cycle->conf->jobs = NULL;
    cycle->conf->njobs = 0;
}

void
hg_cycle_free_conf_jobs(hg_job_conf_t *jobs, size_t njobs)
{
    hg_conf_t held;

    memset(&held, 0, sizeof(held));
    held.jobs = jobs;
    held.njobs = njobs;
    hg_conf_jobs_free(&held);
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

void
hg_cycle_destroy(hg_cycle_t *cycle)
{
    if (cycle != NULL) {
        hg_cycle_free(cycle);
    }
}
