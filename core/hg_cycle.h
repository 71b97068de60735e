/*
 * A cycle is everything one reading of scheduler.conf produced: the typed
 * configuration, the loaded modules, and every job checked and compiled
 * (module, key table, the module's validate, time zone, schedule). As in
 * nginx, a reload builds a whole new cycle beside the running one; only a
 * complete, valid cycle is committed, and a failed one is destroyed
 * without touching the running state.
 *
 * Unlike nginx, the master never reads the file nor runs module code to
 * build a cycle: a cycle reader process does (hg_cycle_reader.h), so that
 * a module's crash or hang, or a file that cannot be read in time, is a
 * failed reload and not the master's end.
 */

#ifndef HG_CYCLE_H
#define HG_CYCLE_H

#include "hg_core.h"
#include "hg_conf.h"
#include "hg_cron.h"
#include "hg_module.h"
#include "hg_tz.h"

typedef struct hg_cycle_job_s {
    const hg_job_conf_t *conf;
    const hg_module_ref_t *module;
    const hg_tz_t *tz;
    hg_cron_t *cron;                /* CRON; one per text (hg_cron_ref) */
    int64_t every_ms;               /* EVERY, or CRON with @every */
    int64_t at;                     /* AT: seconds since the epoch */
    bool has_start_at;
    int64_t start_at;               /* EVERY: seconds since the epoch */
} hg_cycle_job_t;

typedef struct hg_cycle_s {
    hg_conf_t *conf;
    char *prefix;
    hg_modules_t modules;
    const hg_tz_t *tz;              /* the global time zone */
    hg_cycle_job_t *jobs;
    size_t njobs;
} hg_cycle_t;

/*
 * Read FILE and build a cycle in this process: modules loaded and
 * initialised, every job's validate run. Module code runs here, so only
 * the cycle reader (hg_cycle_reader.c), tests and benchmarks call it; the
 * master and `hourglass -t` go through hg_cycle_load. On any problem,
 * returns NULL with the problems in ERRORS, having undone whatever it did.
 */
hg_cycle_t *hg_cycle_create(const char *file, const char *prefix,
                            hg_conf_errors_t *errors);
/* The same with the jobs defined through the admin API (API_JOBS: an
 * array of definitions, NULL for none) added to the file's: a reload. */
hg_cycle_t *hg_cycle_create_with(const char *file, const char *prefix,
                                 const json_t *api_jobs,
                                 hg_conf_errors_t *errors);
/* The same from a configuration already read (CONF taken over): the
 * cycle reader's check of a job defined through the API, against the
 * configuration in force rather than the file. */
hg_cycle_t *hg_cycle_create_from_conf(hg_conf_t *conf, const char *prefix,
                                      hg_conf_errors_t *errors);
/*
 * A cycle from a configuration the cycle reader has checked (CONF taken
 * over): schedules and time zones parsed, modules not yet opened. Runs no
 * module code and touches no state but the tz cache (locked): the master
 * calls it in a thread.
 */
hg_cycle_t *hg_cycle_build(hg_conf_t *conf, const char *prefix,
                           hg_conf_errors_t *errors);
/*
 * Then load its modules (workers are forked with them), calling nothing of
 * them. In the thread that forks the workers, never beside it: dlopen
 * holds the loader's lock, which a fork meanwhile would leave held forever
 * in the child.
 */
int hg_cycle_open_modules(hg_cycle_t *cycle, hg_conf_errors_t *errors);

/* The cycle as the reader hands it to the master (hg_cycle_json.c), and
 * back (through hg_cycle_build). */
json_t *hg_cycle_to_json(const hg_cycle_t *cycle, char *err, size_t errlen);
hg_cycle_t *hg_cycle_from_json(const json_t *doc, const char *prefix,
                               hg_conf_errors_t *errors);
/* The configuration part of such a document (its jobs included). */
hg_conf_t *hg_cycle_conf_from_json(const json_t *doc, const char *prefix,
                                   hg_conf_errors_t *errors);

/*
 * Read FILE in a cycle reader, a process of its own (hg_cycle_reader.c),
 * waiting for it at most TIMEOUT_MS, and build the cycle from its result.
 * For `hourglass -t` and the start: it blocks. A reader that crashes or
 * hangs is an error in ERRORS ("configuration reader killed by signal 11
 * (SIGSEGV) while validating job \"x\""), not the caller's end.
 */
hg_cycle_t *hg_cycle_load(const char *file, const char *prefix,
                          int64_t timeout_ms, hg_conf_errors_t *errors);
/* The same with an input for the reader (hg_cycle_reader_start): the
 * start, when the store holds jobs defined through the API. */
hg_cycle_t *hg_cycle_load_with(const char *file, const char *prefix,
                               const json_t *input, int64_t timeout_ms,
                               hg_conf_errors_t *errors);

/* What the cycle reader is doing now (printf-like), for the message that
 * names where it crashed or hung. A no-op outside a reader. */
void hg_cycle_stage(const char *fmt, ...) HG_PRINTF(1, 2);
/* The cycle reader process gives hg_cycle_stage its page (SIZE bytes,
 * shared with its parent). */
void hg_cycle_stage_page(char *page, size_t size);

/*
 * Drop the jobs (the cycle's and its configuration's: njobs becomes 0) and
 * give the heap's free pages back to the system. The master calls it once
 * it has applied the cycle: its own jobs then hold all that runs them,
 * off the heap (hg_slab), so what reading the configuration left in the
 * heap can go, instead of costing the RSS of every idle job twice over.
 */
void hg_cycle_compact(hg_cycle_t *cycle);
/*
 * hg_cycle_compact for a caller that frees the bulk elsewhere: the cycle's
 * own job table goes here (its parsed expressions are shared with the jobs
 * the master runs), the configuration's jobs are handed over in *JOBS (the
 * cycle keeps none), to be freed with hg_cycle_free_conf_jobs, in any
 * thread: nothing else refers to them. For 100k jobs that freeing is
 * most of what a reload would cost the master's loop.
 */
void hg_cycle_release_jobs(hg_cycle_t *cycle, hg_job_conf_t **jobs,
                           size_t *njobs);
void hg_cycle_free_conf_jobs(hg_job_conf_t *jobs, size_t njobs);
/* Finalise the modules this cycle initialised (in the cycle reader only),
 * unload them and free everything. */
void hg_cycle_destroy(hg_cycle_t *cycle);

#endif /* HG_CYCLE_H */
