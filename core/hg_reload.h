/*
 * A new configuration put in force: hg_reload.c.
 */

#ifndef HG_RELOAD_H
#define HG_RELOAD_H

#include "hg_scheduler.h"

/* The whole cycle at once: at start, before the loop runs. */
int hg_reload_apply_all(hg_master_t *m, hg_cycle_t *cycle);
void hg_reload_free(hg_master_t *m);
bool hg_reload_running(const hg_master_t *m);
int hg_reload_start(hg_master_t *m);
/* Whether a reload or a job check holds the reader now, or a reload was
 * asked for meanwhile (hg_master_turn starts it). */
bool hg_reload_busy(const hg_master_t *m);

/*
 * A job check: DEFINITIONS (an array of jobs defined through the API)
 * read by a cycle reader against the configuration in force (not the
 * file: an edit no one reloaded stays out), each module's validate and
 * schedule checked as a reload would. Nothing is committed: CHECKED gets
 * the cycle of those jobs (its own to apply with hg_reload_apply_jobs and
 * destroy), or NULL with what is wrong in ERRORS (borrowed for the call).
 * HG_ERROR (the reason in err) when it cannot start; one at a time, and
 * not while a reload runs.
 */
typedef void (*hg_reload_checked_pt)(hg_master_t *m, hg_cycle_t *cycle,
                                     const hg_conf_errors_t *errors,
                                     void *data);
int hg_reload_check(hg_master_t *m, const json_t *definitions,
                    hg_reload_checked_pt checked, void *data, char *err,
                    size_t errlen);
/* Add or update the jobs of CYCLE, leaving every other job alone. */
int hg_reload_apply_jobs(hg_master_t *m, hg_cycle_t *cycle);
/* A job out of the table: its timer stops, its waiting executions are
 * skipped; it is freed once no execution refers to it. */
void hg_reload_remove_job(hg_master_t *m, hg_job_t *job);
/* The pool reaped a child that is no worker: the reader, perhaps
 * (then true). */
bool hg_reload_reaped(hg_master_t *m, pid_t pid, int status);

#endif /* HG_RELOAD_H */
