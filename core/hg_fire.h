/*
 * When a job fires, and what a fire creates: hg_fire.c.
 */

#ifndef HG_FIRE_H
#define HG_FIRE_H

#include "hg_scheduler.h"

void hg_fire_on_run_at(hg_timer_t *timer);
hg_execution_t *hg_fire_enqueue(hg_master_t *m, const char *job_id,
                                const char *trigger, const void *payload,
                                size_t payload_len, int64_t run_at_ms,
                                hg_priority_t priority,
                                const char *unique_key);
/* The next attempt of the run whose last attempt is DEAD (a dead record
 * read back from the store): attempt + 1, the same run id, payload and
 * priority, admitted now under TRIGGER. NULL with errno as
 * hg_fire_enqueue's (ENOENT: its job is gone). */
hg_execution_t *hg_fire_retry_dead(hg_master_t *m,
                                   const hg_exec_record_t *dead,
                                   const char *trigger);
/*
 * Cluster (store->shared_queue): an enqueue of the API's, recorded queued
 * for whichever instance has a free worker first (the store takes it:
 * hg_recover_taken), not kept here. Its UNIQUE_KEY (or NULL) is checked
 * by the store, across the cluster, as its record commits: a key pending
 * there already loses the record (hg_store_claim_lost says so after).
 * What is returned only names it (hg_execution_id), until the next call;
 * NULL and errno as hg_fire_enqueue's.
 */
hg_execution_t *hg_fire_share(hg_master_t *m, const char *job_id,
                              const char *trigger, const void *payload,
                              size_t payload_len, int64_t run_at_ms,
                              hg_priority_t priority,
                              const char *unique_key);
/* Cluster: the pauses and resumes of peers the store read, applied as
 * the API's are, without writing them back. */
void hg_fire_peer_paused(hg_master_t *m);
void hg_fire_on_timer(hg_timer_t *timer);
/* Cluster: the store committed more; each fire whose claim it committed
 * is admitted, or forgotten when another instance holds its fire time. */
void hg_fire_claimed(hg_master_t *m);
/* Set the job's timer for its next fire time strictly after AFTER_MS (wall
 * clock); a fixed rate is kept on the monotonic clock, its first run one
 * interval from now (or on the grid of start_at). */
void hg_fire_schedule(hg_master_t *m, hg_job_t *job, int64_t after_ms);
/*
 * Fire times that passed unrun (COUNT of them in MISSED, one more than
 * HG_RUN_ALL_CAP when there were more), per the job's misfire policy:
 * skipped, the latest run once, or each run up to the cap. CAUSE ends
 * the log line ("while the daemon was down").
 */
void hg_fire_misfire(hg_master_t *m, hg_job_t *job, const int64_t *missed,
                     size_t count, const char *cause);
/* The wall clock was stepped (NTP, date -s). Wall-clock schedules are
 * recomputed; a fire time is never repeated because the clock went back
 * (nothing before the last fire is considered again), and fire times the
 * clock jumped over follow the job's misfire policy. */
void hg_fire_clock_changed(hg_timers_t *set);
/* The job's paused state into the store, and its schedule after it. */
int hg_fire_set_paused(hg_master_t *m, const char *job_id, bool paused);
int hg_fire_next_fires(hg_master_t *m, const char *job_id, int64_t *out,
                       size_t max, size_t *n);

#endif /* HG_FIRE_H */
