/*
 * A cycle is everything one reading of scheduler.conf produced: the typed
 * configuration, the loaded and initialised modules, and every job checked
 * and compiled (module, key table, the module's validate, time zone,
 * schedule). As in nginx, a reload builds a whole new cycle beside the
 * running one; only a complete, valid cycle is committed, and a failed one
 * is destroyed without touching the running state.
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
 * Read FILE and build a cycle. PREVIOUS (may be NULL) is the running cycle:
 * modules it has initialised with the same section are not initialised
 * again. On any problem, returns NULL with the problems in ERRORS, having
 * undone whatever it did.
 */
hg_cycle_t *hg_cycle_create(const char *file, const char *prefix,
                            hg_cycle_t *previous, hg_conf_errors_t *errors);
/* NEW replaces OLD (may be NULL): module init/fini hand-over. */
void hg_cycle_commit(hg_cycle_t *cycle, hg_cycle_t *old);
/*
 * Drop the jobs (the cycle's and its configuration's: njobs becomes 0) and
 * give the heap's free pages back to the system. The master calls it once
 * it has applied the cycle: its own jobs then hold all that runs them,
 * off the heap (hg_slab), so what reading the configuration left in the
 * heap can go, instead of costing the RSS of every idle job twice over.
 */
void hg_cycle_compact(hg_cycle_t *cycle);
/* Finalise the modules this cycle initialised and did not hand on, unload
 * them and free everything. */
void hg_cycle_destroy(hg_cycle_t *cycle);

#endif /* HG_CYCLE_H */
