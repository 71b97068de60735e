/*
 * Notifications: an event of a job (failure, dead, recovered, missed,
 * overdue) turned into deliveries on the channels its `notify` names:
 * hg_notify.c.
 */

#ifndef HG_NOTIFY_H
#define HG_NOTIFY_H

#include "hg_scheduler.h"

/* The prefix of a channel's internal job id ("notify:NAME"): a character
 * no job id may hold, so it never meets a configured job. */
#define HG_NOTIFY_JOB_PREFIX  "notify:"

/* A new internal job (not in the table: its executions are made by its
 * owner) of definition DEF (its id and type, and the module's keys), with
 * the defaults' backoff and TIMEOUT_MS, RETRIES and PRIORITY of its own:
 * a channel's ("notify:NAME") or the OTLP exporter's. NULL: no memory. */
hg_job_t *hg_notify_internal_job(hg_master_t *m, const json_t *def,
                                 int64_t timeout_ms, int retries,
                                 hg_priority_t priority);
/* Let go of JOB (NULL is fine): freed now, or by its last execution. */
void hg_notify_internal_job_drop(hg_job_t *job);

/* An execution ended for good (no retry follows) with RESULT: the events
 * it raises (failure or dead, recovered), or, when it was a delivery, the
 * count of notifications_total. DEAD: it went to the dead-letter list. */
void hg_notify_finished(hg_master_t *m, const hg_execution_t *exec,
                        const hg_master_result_t *result, bool dead);
/* JOB's definition is new or changed (hg_job_update): its dead-man
 * `expect` watched, changed or no longer watched. */
void hg_notify_job_defined(hg_master_t *m, const hg_job_t *job);
/* An execution recorded as missed (it never ran). */
void hg_notify_missed(hg_master_t *m, const hg_execution_t *exec);
/* Free everything (at the master's end, once no execution is left). */
void hg_notify_free(hg_master_t *m);

#endif /* HG_NOTIFY_H */
