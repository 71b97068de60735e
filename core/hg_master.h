/*
 * The master process, as the rest of the daemon sees it: its life (create,
 * run, reload, destroy) and its command and query surface, used by the
 * tests now and by the admin API next.
 *
 * The master is one event loop (epoll) over a signalfd, two timerfds
 * (wall clock for cron and `at`, monotonic for `every`, timeouts, retries,
 * jitter), the store's notifications and the worker pipes. It decides what
 * is due, queues executions by priority, hands each to a worker, enforces
 * timeouts by killing the worker's process group, records outcomes, and
 * reloads. It never runs job code and never blocks. Its state is private
 * (hg_scheduler.h); each policy has one owner among its files:
 *
 *   hg_master.c    its life: start, signals, workers, shutdown
 *   hg_reload.c    a new configuration put in force (SIGHUP, and the first)
 *   hg_job.c       a job's object and the job table
 *   hg_execution.c an execution's object and the master's lists of them
 *   hg_journal.c   every execution record written to the store, barriers
 *   hg_dispatch.c  the ready queue: overlap, jitter, priming, handing out
 *   hg_outcome.c   a result or a worker's death to a status; retries, dead
 *   hg_fire.c      job timers, fires, misfires, clock steps, triggers
 *   hg_recover.c   what a previous master left unfinished, at start
 *   hg_query.c     reads and commands through the store's thread
 *   hg_jobdef.c    jobs defined through the API: checked, kept, applied
 *   hg_meter.c     the metrics
 */

#ifndef HG_MASTER_H
#define HG_MASTER_H

#include "hg_core.h"
#include "hg_conf.h"
#include "hg_cycle.h"
#include "hg_event.h"
#include "hg_result.h"
#include "hg_store.h"

/* A master with its loop, signals and workers for CYCLE (taken over, and
 * freed on failure too); NULL when it cannot start (the log says why).
 * STORE (may be NULL, stays the caller's) is recovered from: executions
 * found running are recorded crashed and retried per policy, queued ones
 * are queued again, and fire times missed while the daemon was down
 * follow each job's misfire policy. */
hg_master_t *hg_master_create(hg_cycle_t *cycle, const char *conf_file,
                              const char *prefix, hg_store_t *store);
/* Run until stopped. Returns the process exit code. */
int hg_master_run(hg_master_t *master);
/* One turn of the loop (tests and benchmarks drive it themselves). */
int hg_master_turn(hg_master_t *master, int timeout_ms);
/* Kill the workers, drop what is left, free everything (NULL is fine). */
void hg_master_destroy(hg_master_t *master);
/* Every ending execution is reported to OBSERVER (NULL: none). */
void hg_master_observe(hg_master_t *master, hg_master_observer_pt observer,
                       void *data);
/* The master's event loop, for what serves from it beside the master
 * (the admin API): its handlers run in the loop's turns, never block. */
hg_event_loop_t *hg_master_loop(hg_master_t *master);
/* Every notice (an execution started or finished, a job changed, a
 * reload ended) to NOTICE (NULL: none): the admin API's /events. */
void hg_master_on_notice(hg_master_t *master, hg_master_notice_pt notice,
                         void *data);
/* The configuration in force (the last reload's, once applied). */
const hg_conf_t *hg_master_conf(const hg_master_t *master);
/* An execution's id (final once hg_master_trigger returned it). */
const char *hg_execution_id(const hg_execution_t *exec);

/*
 * Re-read the configuration (SIGHUP). The file is read and the modules'
 * validate run by a cycle reader process, the result built into a cycle
 * in a thread, and applied by the loop a slice of jobs at a time (the
 * cycle is m->cycle from the first slice on). HG_AGAIN: it has started,
 * and the log says how it ends (event=reload result=ok|failed); HG_ERROR:
 * it could not start and the old configuration stays. One reload at a
 * time: asked for meanwhile, another follows the current one.
 */
int hg_master_reload(hg_master_t *master);
/* Whether a reload is under way. */
bool hg_master_reloading(const hg_master_t *master);

/* Run a job now, outside its schedule (trigger "manual", "api:NAME",
 * "queue"), with an optional payload. Returns the execution (its id is
 * final), or NULL when the job does not exist or the overlap policy
 * refused it (errno EBUSY). */
hg_execution_t *hg_master_trigger(hg_master_t *master, const char *job_id,
                                  const char *trigger, const void *payload,
                                  size_t payload_len, hg_priority_t priority);

/* Enqueue a one-off execution of a job: PAYLOAD given to the module,
 * not before RUN_AT_MS (wall; 0 = now), with PRIORITY; a UNIQUE_KEY (may
 * be NULL) is refused while an execution with the same key is queued.
 * The execution is recorded `queued` in the store and survives restarts.
 * NULL with errno ENOENT (no such job), EEXIST (key pending), ESHUTDOWN,
 * EBUSY (overlap = skip and the job runs) or ENOMEM. In a cluster it is
 * shared, and its key is checked by the store as its record commits, not
 * here: hg_master_enqueued says how that went. */
hg_execution_t *hg_master_enqueue(hg_master_t *master, const char *job_id,
                                  const char *trigger, const void *payload,
                                  size_t payload_len, int64_t run_at_ms,
                                  hg_priority_t priority,
                                  const char *unique_key);

hg_job_t *hg_master_find_job(hg_master_t *master, const char *id);

/*
 * Commands and queries, for tests and the admin API. Each returns HG_OK,
 * or HG_AGAIN when no job has that id (HG_ERROR: the store refused the
 * change, which is not made).
 *
 * Pausing a job stops its schedule (fire times pass unrun, and are not
 * misfires when it resumes); its queued and running executions go on, and
 * it can still be triggered, as a suspended Kubernetes CronJob. The state
 * is kept in the store across restarts and reloads. Resuming schedules it
 * again from now.
 */
int hg_master_pause(hg_master_t *master, const char *job_id);
int hg_master_resume(hg_master_t *master, const char *job_id);
/* Kill the job's running executions (recorded `killed`, never retried:
 * someone asked); *KILLED says how many (may be NULL). */
int hg_master_stop_job(hg_master_t *master, const char *job_id,
                       size_t *killed);
/* The job's next fire times (wall ms), at most MAX, into OUT; *N how many
 * (none for a paused job or one without a schedule). */
int hg_master_next_fires(hg_master_t *master, const char *job_id,
                         int64_t *out, size_t max, size_t *n);
/*
 * Queries and commands that read the store. They never block: the reads
 * run on the store's side and REPLY is called from the loop later (at
 * once with the memory store), with a JSON answer (hg_master_reply_pt).
 * Each returns HG_OK when REPLY will be called, HG_AGAIN when there is no
 * such job (REPLY is not called), HG_ERROR without a store or memory.
 *
 * A job: {id, type, enabled, paused, definition, next_fires (the next
 * five, UTC), running, pending, stats {runs, successes, failures,
 * mean_duration_ms, p95_duration_ms, last_run, last_status}}.
 */
int hg_master_job(hg_master_t *master, const char *job_id,
                  hg_master_reply_pt reply, void *data);
/* A page of the job's executions, newest first, of STATUS (NULL: any;
 * HG_ERROR for a name that is none) scheduled in [SINCE, UNTIL) (ms; 0:
 * no bound), without output or payload: {executions: [...], total (in
 * the window), limit, offset}. */
int hg_master_executions(hg_master_t *master, const char *job_id,
                         const char *status, int64_t since, int64_t until,
                         size_t limit, size_t offset,
                         hg_master_reply_pt reply, void *data);
/* One execution, with its output: HG_AGAIN to REPLY when unknown. */
int hg_master_execution(hg_master_t *master, const char *exec_id,
                        hg_master_reply_pt reply, void *data);
/* hg_master_execution for an execution hg_master_enqueue just made: in a
 * cluster its unique key was checked by the store as it committed, and a
 * key pending there already answers HG_REPLY_EXISTS with {error}. */
int hg_master_enqueued(hg_master_t *master, const char *exec_id,
                       hg_master_reply_pt reply, void *data);
/* A page of the dead-letter list, newest first, of JOB_ID (NULL: every
 * job): {executions: [...], total, limit, offset}. */
int hg_master_dead(hg_master_t *master, const char *job_id, size_t limit,
                   size_t offset, hg_master_reply_pt reply, void *data);
/* Retry dead executions by hand: EXEC_ID, or (NULL) those of JOB_ID (NULL:
 * any) that finished before BEFORE (ms, 0: any), up to 1,000 a call. Each
 * gets its next attempt (the same run, payload and priority) under
 * TRIGGER (NULL: "manual"), and leaves the dead-letter list recorded as
 * the failed attempt it was: {retried: [{dead, execution}], skipped:
 * [{id, error}]} (skipped: its job is gone, or refuses it now). EXEC_ID
 * not dead: HG_AGAIN to REPLY. */
int hg_master_retry_dead(hg_master_t *master, const char *exec_id,
                         const char *job_id, int64_t before,
                         const char *trigger, hg_master_reply_pt reply,
                         void *data);
/* Delete dead executions, chosen as hg_master_retry_dead's: {purged}.
 * EXEC_ID not dead (or not yet in the file): HG_AGAIN to REPLY. */
int hg_master_purge_dead(hg_master_t *master, const char *exec_id,
                         const char *job_id, int64_t before,
                         hg_master_reply_pt reply, void *data);
/*
 * Jobs defined through the API, beside the file's (the admin API's POST,
 * PUT and DELETE /jobs). A job added or replaced from DEFINITION (a JSON
 * object with "id", as the file's keys) is checked as a reload would
 * check it, by a cycle reader against the configuration in force (the
 * file is not read again: an edit nobody reloaded stays out), then
 * written to the store, then put in force; ACTOR ("api:NAME") is kept
 * as its creator. Deleting one writes the store, then removes it (its
 * running executions finish). Jobs of the file are read only. A reload
 * reads these jobs with the file; while a command is in flight, a reload
 * waits for it, and commands wait for a reload; commands go one at a
 * time, in order.
 *
 * HG_OK: REPLY follows, from the loop, with one of: HG_OK and {id, type,
 * api, enabled, paused, definition, created_by, created_at, updated_at,
 * next_fires} (delete: {id, deleted}); HG_AGAIN (no such job),
 * HG_REPLY_EXISTS, HG_REPLY_READ_ONLY, HG_REPLY_INVALID (with "errors"),
 * or HG_ERROR (the store failed, out of memory, shutting down), each
 * with {"error": "..."}; a master destroyed first answers HG_ERROR
 * then. HG_ERROR (REPLY not called): out of memory.
 */
int hg_master_put_job(hg_master_t *master, const json_t *definition,
                      bool create, const char *actor,
                      hg_master_reply_pt reply, void *data);
/* Replace JOB_ID's definition by itself with PATCH merged in (a JSON merge
 * patch, RFC 7386: a key set to null goes), checked as a replace is. */
int hg_master_patch_job(hg_master_t *master, const char *job_id,
                        const json_t *patch, const char *actor,
                        hg_master_reply_pt reply, void *data);
int hg_master_delete_job(hg_master_t *master, const char *job_id,
                         const char *actor, hg_master_reply_pt reply,
                         void *data);
/* Create or replace the jobs DEFINITIONS (an array) all at once, or none:
 * each checked as a create is, and written to the store in one
 * transaction. REPLY gets {imported, created: [ids], replaced: [ids]},
 * or HG_REPLY_INVALID with "errors" naming every bad job ({job, index
 * when known, field, message}), or HG_ERROR as hg_master_put_job. */
int hg_master_import_jobs(hg_master_t *master, const json_t *definitions,
                          const char *actor, hg_master_reply_pt reply,
                          void *data);
/* The jobs defined through the API, as they were given: {jobs: [their
 * definitions, by id]}, what hg_master_import_jobs takes back; NULL: out
 * of memory. */
json_t *hg_master_export_jobs(hg_master_t *master);
/* Which jobs a listing shows; NULL fields match any job. */
typedef struct {
    const char *status;             /* active | paused | disabled | running */
    const char *type;
    const char *tag;                /* one of the job's tags */
} hg_job_filter_t;

/* A page of the job table, by id (what the loop holds), of the jobs
 * FILTER matches, with every job's statistics read from the store at
 * once (one read, not one per job), answered as hg_master_job is:
 * {jobs: [{id, type, tags, api, enabled, paused, next_fire, next_fires
 * (the next five, with the job's zone's offset), running, pending,
 * last_status, last_run, runs, successes, failures, success_rate,
 * p95_duration_ms}], total, limit, offset, page}. */
int hg_master_jobs(hg_master_t *master, const hg_job_filter_t *filter,
                   size_t limit, size_t offset, hg_master_reply_pt reply,
                   void *data);
/* Whether the schedule has work now or within WITHIN_NS: executions
 * waiting for a worker (or for their start's record), or a timer of the
 * schedule due that soon. The API's turns give way to it (hg_api.c). */
bool hg_master_busy(hg_master_t *master, int64_t within_ns);
/* The daemon at a glance: {version, pid, started_at_ms, uptime_s,
 * configuration, reloads {ok, failed}, workers_configured, workers {by
 * state}, jobs, queue_depth, executions_ended {by status}}; and whether
 * it is well: {status ok|unwell, problems [...], workers_ready}, *WELL
 * saying. The caller's; NULL when out of memory. */
json_t *hg_master_status(hg_master_t *master);
json_t *hg_master_health(hg_master_t *master, bool *well);
/* Counts since start: {executions_ended {by status}, jobs {scheduled,
 * paused, disabled, manual}, dispatched, finished, queue_depth,
 * handed_ahead}; the caller's, NULL when out of memory. */
json_t *hg_master_stats(hg_master_t *master);
/* The metrics in the Prometheus text format, the gauges read now. */
int hg_master_render_metrics(hg_master_t *master, FILE *out);

/*
 * The queue: every execution that waits to start, wherever it waits (the
 * ready queue, primed, a future run_at or a retry's backoff, a jitter
 * wait, behind its job's running execution for overlap = queue), of
 * JOB_ID (NULL: any), in the order they will run, read now (no store):
 * {executions: [{id, job, due, run_at, scheduled_for, priority,
 * triggered_by, attempt, unique_key, payload_bytes, waiting}], total,
 * limit, offset}; the caller's, NULL when out of memory.
 */
json_t *hg_master_queue(hg_master_t *master, const char *job_id,
                        size_t limit, size_t offset);
/* In a cluster, the same page with the executions that wait unowned in
 * the shared queue after this instance's own (each row with its
 * "instance", null for those): read on the store's side, REPLY follows
 * (HG_OK). HG_AGAIN: no cluster (hg_master_queue answers alone);
 * HG_ERROR: out of memory. */
int hg_master_queue_read(hg_master_t *master, const char *job_id,
                         size_t limit, size_t offset,
                         hg_master_reply_pt reply, void *data);
/* hg_master_dequeue: EXEC_ID has started (on a worker, or on its way to
 * one); its job's id is in JOB. */
#define HG_REPLY_STARTED    -10
/*
 * Take EXEC_ID, which waits to start, out of the queue: it never runs
 * (not after a restart either), is recorded `killed` with "removed from
 * the queue by ACTOR", and its unique key is free again. HG_OK: REPLY
 * follows once the store has the record: HG_OK with {id, job, status},
 * or HG_ERROR with {error} (the store did not keep it); for an id that
 * does not wait, HG_AGAIN with {error} saying whether it is unknown or
 * has ended. In a cluster, an id this instance does not hold is taken
 * out of the shared queue while no instance has taken it (atomically, in
 * the store); one taken meanwhile gets HG_REPLY_TAKEN with {error}
 * naming the instance. HG_REPLY_STARTED (REPLY not called): it has
 * started; HG_ERROR: no store, or out of memory (REPLY not called).
 */
int hg_master_dequeue(hg_master_t *master, const char *exec_id,
                      const char *actor, char *job, size_t joblen,
                      hg_master_reply_pt reply, void *data);

#endif /* HG_MASTER_H */
