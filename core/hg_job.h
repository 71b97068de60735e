/*
 * A job as the master runs it (struct hg_job_s in hg_scheduler.h) and the
 * master's table of jobs: hg_job.c.
 */

#ifndef HG_JOB_H
#define HG_JOB_H

#include "hg_scheduler.h"

hg_job_t *hg_job_new(hg_master_t *m, const char *id,
                     hg_timer_handler_pt on_fire);
void hg_job_free(hg_job_t *job);
void hg_job_release(hg_job_t *job);
/* Copy what the master needs of a checked job into JOB: the cycle's copy
 * is dropped once applied (hg_cycle_compact). Says whether the definition
 * and the schedule changed; a new job's schedule always has. */
int hg_job_update(hg_job_t *job, hg_cycle_job_t *cj, bool *changed,
                  bool *schedule_changed);
/* The job's schedule, for hg_schedule.c. */
hg_schedule_t hg_job_sched(const hg_job_t *job);
bool hg_job_on_wall_clock(const hg_job_t *job);
/* The job with that id, or NULL. */
hg_job_t *hg_job_find(hg_master_t *m, const char *id);
/* JOB into the table, or out of it. */
int hg_job_add(hg_master_t *m, hg_job_t *job);
void hg_job_remove(hg_master_t *m, hg_job_t *job);
/* Every job in the table by id (*N of them), valid until the table
 * changes; NULL when out of memory. */
hg_job_t *const *hg_job_order(hg_master_t *m, size_t *n);
void hg_job_order_free(hg_master_t *m);

#endif /* HG_JOB_H */
