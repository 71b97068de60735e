/*
 * hg_master.c: scheduling, dispatch, outcomes, signals and reload.
 *
 * hg_master.c never runs job code and never blocks. Every wait is the
 * event loop's; every child is reaped with WNOHANG from SIGCHLD.
 *
 * Life of an execution: a job's timer fires (or a trigger arrives) ->
 * overlap policy -> optional jitter wait -> the ready queue (a heap ordered
 * by priority, then due time) -> an idle worker (DISPATCH) -> RESULT, or the
 * worker's death (timeout kill, crash) -> logged -> retried after backoff,
 * or final (dead when it failed for good).
 */

#include "hg_core.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#include "hg_cgroup.h"
#include "hg_cycle_reader.h"
#include "hg_exec.h"
#include "hg_ipc.h"
#include "hg_log.h"
#include "hg_maintenance.h"
#include "hg_master.h"
#include "hg_metrics.h"
#include "hg_msg.h"
#include "hg_schedule.h"
#include "hg_uuid.h"
#include "hg_worker.h"

#define HG_RESPAWN_MAX_DELAY_MS  5000
#define HG_WORKER_YOUNG_NS       (1000LL * HG_NSEC_PER_MSEC)
#define HG_RUN_ALL_CAP           100
#define HG_PRIME_MAX             256
/* How long an execution handed ahead may wait for its worker's current one
 * to end before it is taken back for another worker; a job whose last run
 * took under half of it counts as quick. */
#define HG_AHEAD_TURN_MS         10

static int64_t
hg_now_ms(void)
{
    return hg_clock_ns(CLOCK_REALTIME) / HG_NSEC_PER_MSEC;
}

static void hg_master_dispatch(hg_master_t *m);
static void hg_master_ready_push(hg_master_t *m, hg_execution_t *exec);
static void hg_master_check_done(hg_master_t *m);
static void hg_master_note_finish(hg_master_t *m);
static int hg_master_metrics_init(hg_master_t *m);
static void hg_master_count_end(hg_master_t *m, const hg_execution_t *exec,
                                hg_exec_status_t status,
                                const hg_master_result_t *r);
static void hg_master_count_module(hg_master_t *m,
                                   const hg_execution_t *exec,
                                   const json_t *metrics);
static void hg_master_drop_primed(hg_master_t *m, hg_execution_t *exec,
                                  const char *why);
static void hg_job_schedule(hg_master_t *m, hg_job_t *job, int64_t after_ms);

/* --- jobs ------------------------------------------------------------ */

static void
hg_job_free(hg_job_t *job)
{
    hg_master_t *m = job->master;

    hg_slab_strfree(&m->job_strings, job->id);
    hg_slab_strfree(&m->job_strings, job->definition_text);
    hg_cron_free(job->cron);
    hg_slab_free(&m->job_slab, job);
}

static void
hg_job_release(hg_job_t *job)
{
    if (--job->refs == 0 && job->removed) {
        hg_job_free(job);
    }
}

/* Whether CJ's schedule is the one JOB runs (never for a new job). The
 * parsed values are compared, so a text that says the same thing another
 * way (blanks around a cron expression, `at` with another UTC offset for
 * the same instant) is the same schedule; the zone is compared by name. */
static bool
hg_job_same_schedule(const hg_job_t *job, const hg_cycle_job_t *cj)
{
    if (job->tz == NULL
        || job->kind != cj->conf->schedule_kind
        || job->every_ms != cj->every_ms
        || job->at != cj->at
        || job->has_start_at != cj->has_start_at
        || job->start_at != cj->start_at
        || strcmp(hg_tz_name(job->tz), hg_tz_name(cj->tz)) != 0)
    {
        return false;
    }
    return job->cron == cj->cron
           || (job->cron != NULL && cj->cron != NULL
               && strcmp(hg_cron_text(job->cron), hg_cron_text(cj->cron))
                  == 0);
}

/* Copy what the master needs of a checked job into JOB: the cycle's copy
 * is dropped once applied (hg_cycle_compact). Says whether the definition
 * and the schedule changed; a new job's schedule always has. */
static int
hg_job_update(hg_job_t *job, hg_cycle_job_t *cj, bool *changed,
              bool *schedule_changed)
{
    hg_master_t *m = job->master;
    const hg_job_conf_t *conf = cj->conf;
    const char *type = hg_slab_intern(&m->job_strings, conf->type);
    char *def;

    if (type == NULL) {
        return HG_ERROR;
    }
    *changed = job->definition_text == NULL
               || strcmp(job->definition_text, conf->definition_text) != 0;
    if (*changed) {
        def = hg_slab_strdup(&m->job_strings, conf->definition_text);
        if (def == NULL) {
            return HG_ERROR;
        }
        hg_slab_strfree(&m->job_strings, job->definition_text);
        job->definition_text = def;
    }
    job->type = type;
    job->policy = conf->policy;
    job->enabled = conf->enabled;
    job->output_limit = hg_exec_limit_from_job(conf->definition);

    *schedule_changed = !hg_job_same_schedule(job, cj);
    /* The cycle's expression is taken either way (it says the same when
     * the schedule is unchanged): the previous cycle's can go with it. */
    {
        hg_cron_t *old = job->cron;

        job->cron = hg_cron_ref(cj->cron);
        hg_cron_free(old);
    }
    job->kind = conf->schedule_kind;
    job->tz = cj->tz;
    job->every_ms = cj->every_ms;
    job->at = cj->at;
    job->has_start_at = cj->has_start_at;
    job->start_at = cj->start_at;
    return HG_OK;
}

/* The job's schedule, for hg_schedule.c. */
static hg_schedule_t
hg_job_sched(const hg_job_t *job)
{
    hg_schedule_t s;

    s.kind = job->kind;
    s.cron = job->cron;
    s.tz = job->tz;
    s.every_ms = job->every_ms;
    s.at = job->at;
    s.has_start_at = job->has_start_at;
    s.start_at = job->start_at;
    return s;
}

static bool
hg_job_on_wall_clock(const hg_job_t *job)
{
    hg_schedule_t s = hg_job_sched(job);

    return hg_schedule_on_wall_clock(&s);
}

/* --- executions ------------------------------------------------------ */

static hg_exec_link_t *
hg_exec_link(const hg_exec_list_t *list, hg_execution_t *exec)
{
    return (hg_exec_link_t *) ((char *) exec + list->link);
}

static void
hg_exec_list_init(hg_exec_list_t *list, size_t link)
{
    list->head = list->tail = NULL;
    list->count = 0;
    list->link = link;
}

static void
hg_exec_list_append(hg_exec_list_t *list, hg_execution_t *exec)
{
    hg_exec_link_t *link = hg_exec_link(list, exec);

    link->prev = list->tail;
    link->next = NULL;
    if (list->tail != NULL) {
        hg_exec_link(list, list->tail)->next = exec;
    } else {
        list->head = exec;
    }
    list->tail = exec;
    list->count++;
}

static void
hg_exec_list_remove(hg_exec_list_t *list, hg_execution_t *exec)
{
    hg_exec_link_t *link = hg_exec_link(list, exec);

    if (link->prev != NULL) {
        hg_exec_link(list, link->prev)->next = link->next;
    } else {
        list->head = link->next;
    }
    if (link->next != NULL) {
        hg_exec_link(list, link->next)->prev = link->prev;
    } else {
        list->tail = link->prev;
    }
    list->count--;
    link->prev = link->next = NULL;
}

/* Put EXEC on the primed or committing list. */
static void
hg_exec_start_join(hg_exec_list_t *list, hg_execution_t *exec)
{
    exec->start_list = list;
    hg_exec_list_append(list, exec);
}

/* Put EXEC first on the primed list: it was taken before those there. */
static void
hg_exec_start_push(hg_exec_list_t *list, hg_execution_t *exec)
{
    hg_exec_link_t *link = hg_exec_link(list, exec);

    exec->start_list = list;
    link->prev = NULL;
    link->next = list->head;
    if (list->head != NULL) {
        hg_exec_link(list, list->head)->prev = exec;
    } else {
        list->tail = exec;
    }
    list->head = exec;
    list->count++;
}

/* Take EXEC off the primed or committing list, if it is on one. */
static void
hg_exec_start_leave(hg_execution_t *exec)
{
    if (exec->start_list != NULL) {
        hg_exec_list_remove(exec->start_list, exec);
        exec->start_list = NULL;
    }
}

static hg_execution_t *
hg_execution_new(hg_master_t *m, hg_job_t *job, int64_t scheduled_for_ms,
                 unsigned attempt, const char *trigger)
{
    hg_execution_t *exec = calloc(1, sizeof(*exec));

    if (exec == NULL) {
        hg_log_event(HG_LOG_ERROR, "error", job->id, NULL, NULL, 0,
                     "out of memory: execution not created");
        return NULL;
    }
    hg_uuid_v7(exec->id);
    memcpy(exec->run_id, exec->id, sizeof(exec->id));
    exec->job = job;
    job->refs++;
    exec->scheduled_for_ms = scheduled_for_ms;
    exec->due_ns = scheduled_for_ms * HG_NSEC_PER_MSEC;
    exec->attempt = attempt;
    snprintf(exec->trigger, sizeof(exec->trigger), "%s", trigger);
    exec->priority = job->policy.priority;
    exec->status = HG_EXEC_QUEUED;
    hg_heap_node_init(&exec->ready);
    hg_timer_init(&exec->timer, NULL, exec);
    hg_exec_list_append(&m->executions, exec);
    return exec;
}

/* A queued execution's unique key is free again once it leaves the
 * queue (it starts, or ends without running). */
static void
hg_master_release_key(hg_master_t *m, hg_execution_t *exec)
{
    if (exec->unique_key != NULL
        && hg_map_get(&m->unique_keys, exec->unique_key) == exec)
    {
        hg_map_remove(&m->unique_keys, exec->unique_key);
    }
}

static void
hg_execution_free(hg_master_t *m, hg_execution_t *exec)
{
    hg_timer_cancel(&exec->timer);
    if (hg_heap_node_queued(&exec->ready)) {
        hg_heap_remove(&m->ready, &exec->ready);
    }
    hg_exec_start_leave(exec);
    hg_master_release_key(m, exec);
    hg_exec_list_remove(&m->executions, exec);
    free(exec->unique_key);
    free(exec->payload);
    hg_job_release(exec->job);
    free(exec);
}

/*
 * Write the execution's current state to the store (queued, running, or
 * final with RESULT). The store copies what it keeps and batches the
 * writes; nothing here waits.
 */
static void
hg_master_store_put(hg_master_t *m, hg_execution_t *exec,
                    hg_exec_status_t status, const hg_master_result_t *res)
{
    hg_exec_record_t rec;

    if (m->store == NULL) {
        return;
    }
    memset(&rec, 0, sizeof(rec));
    rec.id = exec->id;
    rec.run_id = exec->run_id;
    rec.job_id = exec->job->id;
    rec.status = status;
    rec.attempt = exec->attempt;
    rec.trigger = exec->trigger;
    rec.scheduled_for = exec->scheduled_for_ms;
    rec.started_at = exec->dispatched_ms;
    rec.duration_ms = -1;
    rec.exit_code = -1;
    rec.worker_pid = exec->worker != NULL ? (int) exec->worker->pid : 0;
    rec.max_rss_kb = -1;
    rec.payload = exec->payload;
    rec.payload_len = exec->payload_len;
    rec.priority = (int) exec->priority;
    rec.run_at = exec->run_at_ms;
    rec.unique_key = exec->unique_key;
    if (res != NULL) {
        rec.started_at = res->started_ms;
        rec.finished_at = res->finished_ms;
        if (res->started_ms > 0 && res->finished_ms >= res->started_ms) {
            rec.duration_ms = res->finished_ms - res->started_ms;
        }
        rec.exit_code = res->exit_code;
        rec.signo = res->signo;
        rec.output = res->output;
        rec.output_len = res->output != NULL ? res->output_len : 0;
        rec.output_truncated = res->truncated;
        rec.error = res->error;
        rec.max_rss_kb = res->max_rss_kb;
        rec.cpu_user_ms = res->cpu_user_ms;
        rec.cpu_sys_ms = res->cpu_sys_ms;
    }
    if (hg_store_put_execution(m->store, &rec) != HG_OK) {
        hg_log_event(HG_LOG_ERROR, "store", exec->job->id, exec->id, NULL, 0,
                     "cannot queue the execution's record for the store");
        return;
    }
    exec->recorded = true;
}

/* An execution that ends without running (skipped, missed). */
static void
hg_master_record_unrun(hg_master_t *m, hg_execution_t *exec,
                       hg_exec_status_t status, const char *why)
{
    hg_master_result_t result;
    char due[40];
    hg_log_field_t fields[] = {
        HG_LOG_STR("status", hg_exec_status_name(status)),
        HG_LOG_STR("scheduled_for", due),
        HG_LOG_STR("trigger", exec->trigger),
    };

    hg_format_utc_ms(exec->scheduled_for_ms, due, sizeof(due));
    hg_log_event(HG_LOG_WARN, "finish", exec->job->id, exec->id, fields,
                 HG_NELEMS(fields), "%s", why);
    memset(&result, 0, sizeof(result));
    result.exec = exec;
    result.status = status;
    result.exit_code = -1;
    result.error = why;
    result.max_rss_kb = -1;
    result.finished_ms = hg_now_ms();
    hg_master_store_put(m, exec, status, &result);
    hg_master_count_end(m, exec, status, NULL);
    if (m->observer != NULL) {
        m->observer(m, &result, m->observer_data);
    }
    hg_execution_free(m, exec);
}

static int64_t
hg_backoff_ms(const hg_backoff_t *b, unsigned attempt)
{
    double delay = (double) b->initial_ms;
    unsigned i;

    for (i = 1; i < attempt && delay < (double) b->max_ms; i++) {
        delay *= b->multiplier;
    }
    if (b->jitter > 0) {
        double r = (double) (hg_random() >> 11) / (double) (1ULL << 53);
        delay *= 1.0 + b->jitter * (2.0 * r - 1.0);
    }
    /* The cap after the jitter: max is a promise, never exceeded. */
    if (delay > (double) b->max_ms) {
        delay = (double) b->max_ms;
    }
    return delay < 0 ? 0 : (int64_t) delay;
}

static void
hg_execution_on_retry_timer(hg_timer_t *timer)
{
    hg_execution_t *exec = timer->data;

    hg_master_ready_push(exec->job->master, exec);
}

static void
hg_master_retry(hg_master_t *m, hg_execution_t *failed, int64_t delay_ms)
{
    hg_execution_t *exec;
    hg_log_field_t fields[2];
    bool later = m->quitting || m->stopping;

    exec = hg_execution_new(m, failed->job, failed->scheduled_for_ms,
                            failed->attempt + 1, "retry");
    if (exec == NULL) {
        return;
    }
    memcpy(exec->run_id, failed->run_id, sizeof(exec->run_id));
    exec->priority = failed->priority;
    if (failed->payload_len > 0) {
        exec->payload = malloc(failed->payload_len);
        if (exec->payload != NULL) {
            memcpy(exec->payload, failed->payload, failed->payload_len);
            exec->payload_len = failed->payload_len;
        }
    }
    fields[0] = (hg_log_field_t) HG_LOG_INT("attempt", exec->attempt);
    fields[1] = (hg_log_field_t) HG_LOG_INT("delay_ms", delay_ms);
    hg_log_event(HG_LOG_INFO, "retry", exec->job->id, exec->id, fields, 2,
                 "retrying run %s%s", exec->run_id,
                 later ? " after the daemon restarts" : "");
    exec->run_at_ms = hg_now_ms() + delay_ms;
    hg_master_store_put(m, exec, HG_EXEC_QUEUED, NULL);
    if (later) {
        /* Shutting down: the queued record is the retry; the next start
         * picks it up. */
        hg_execution_free(m, exec);
        return;
    }
    exec->job->pending++;
    exec->timer.handler = hg_execution_on_retry_timer;
    hg_timer_set(&m->mono, &exec->timer,
                 hg_clock_ns(CLOCK_MONOTONIC) + delay_ms * HG_NSEC_PER_MSEC);
}

/* Overlap = queue: the next waiting execution goes once the job is free. */
static void
hg_job_release_waiting(hg_master_t *m, hg_job_t *job)
{
    hg_execution_t *exec;

    if (job->running > 0 || job->pending > 0 || job->waiting_head == NULL) {
        return;
    }
    exec = job->waiting_head;
    job->waiting_head = exec->next_waiting;
    if (job->waiting_head == NULL) {
        job->waiting_tail = NULL;
    }
    exec->next_waiting = NULL;
    hg_master_ready_push(m, exec);
}

static void
hg_master_finish(hg_master_t *m, hg_execution_t *exec,
                 hg_master_result_t *result, hg_result_t rc,
                 int64_t retry_after_ms)
{
    size_t output_len = result->output_len;
    bool truncated = result->truncated;
    hg_job_t *job = exec->job;
    hg_log_level_t level;
    char due[40];
    bool retryable, retry;
    hg_log_field_t fields[12];
    size_t n = 0;

    result->exec = exec;
    exec->status = result->status;
    level = result->status == HG_EXEC_SUCCEEDED ? HG_LOG_INFO
                                                  : HG_LOG_WARN;
    if (!hg_log_enabled(level)) {
        goto logged;
    }
    hg_format_utc_ms(exec->scheduled_for_ms, due, sizeof(due));
    fields[n++] = (hg_log_field_t) HG_LOG_STR("status",
                                              hg_exec_status_name(result->status));
    fields[n++] = (hg_log_field_t) HG_LOG_INT("duration_ms",
                                     result->finished_ms - result->started_ms);
    fields[n++] = (hg_log_field_t) HG_LOG_INT("attempt", exec->attempt);
    fields[n++] = (hg_log_field_t) HG_LOG_STR("trigger", exec->trigger);
    fields[n++] = (hg_log_field_t) HG_LOG_STR("scheduled_for", due);
    if (result->exit_code >= 0) {
        fields[n++] = (hg_log_field_t) HG_LOG_INT("exit_code",
                                                  result->exit_code);
    }
    if (result->signo > 0) {
        fields[n++] = (hg_log_field_t) HG_LOG_INT("signal", result->signo);
        fields[n++] = (hg_log_field_t) HG_LOG_STR("signal_name",
                                                  sigabbrev_np(result->signo));
    }
    fields[n++] = (hg_log_field_t) HG_LOG_INT("output_bytes", output_len);
    if (truncated) {
        fields[n++] = (hg_log_field_t) HG_LOG_STR("output", "truncated");
    }
    if (exec->worker != NULL) {
        fields[n++] = (hg_log_field_t) HG_LOG_INT("worker", exec->worker->pid);
    }
    if (exec->attempt > 1) {
        fields[n++] = (hg_log_field_t) HG_LOG_STR("run", exec->run_id);
    }
    if (result->error != NULL && result->error[0] != '\0') {
        fields[n++] = (hg_log_field_t) HG_LOG_STR("error", result->error);
    }
    hg_log_event(level, "finish", job->id, exec->id, fields, n, NULL);

logged:
    m->finished_total++;
    hg_master_note_finish(m);
    if (m->observer != NULL) {
        m->observer(m, result, m->observer_data);
    }

    retryable = result->status == HG_EXEC_FAILED
                || result->status == HG_EXEC_TIMED_OUT
                || result->status == HG_EXEC_CRASHED;
    retry = retryable && rc != HG_FATAL && !job->removed
            && exec->attempt <= (unsigned) job->policy.max_retries;
    hg_master_count_end(m, exec, retryable && !retry ? HG_EXEC_DEAD
                                                     : result->status,
                        result);
    if (retry) {
        hg_master_store_put(m, exec, result->status, result);
        hg_master_retry(m, exec, retry_after_ms >= 0
                                 ? retry_after_ms
                                 : hg_backoff_ms(&job->policy.backoff,
                                                 exec->attempt));
    } else if (!retryable) {
        hg_master_store_put(m, exec, result->status, result);
    } else {
        /* The last attempt failed: the record goes to the dead-letter
         * list; its error still says how it failed. */
        hg_master_store_put(m, exec, HG_EXEC_DEAD, result);
        hg_log_field_t dead[] = {
            HG_LOG_STR("status", "dead"),
            HG_LOG_INT("attempts", exec->attempt),
            HG_LOG_STR("run", exec->run_id),
        };
        hg_log_event(HG_LOG_ERROR, "dead", job->id, exec->id, dead,
                     HG_NELEMS(dead), "%s", rc == HG_FATAL
                     ? "fatal failure: no retries"
                     : "failed after its last attempt");
    }
    hg_job_release_waiting(m, job);
    hg_execution_free(m, exec);
}

/* --- dispatch -------------------------------------------------------- */

static int64_t
hg_ready_key(const hg_execution_t *exec)
{
    int64_t due = exec->scheduled_for_ms;

    if (due < 0) {
        due = 0;
    }
    if (due > (1LL << 48) - 1) {
        due = (1LL << 48) - 1;
    }
    return ((int64_t) (HG_PRIORITY_CRITICAL - exec->priority) << 48) + due;
}

static void
hg_master_ready_push(hg_master_t *m, hg_execution_t *exec)
{
    /* Executions coming out of a jitter or retry wait were counted as
     * pending when the wait began (their timer handler is still set). */
    if (exec->timer.handler == NULL) {
        exec->job->pending++;
    }
    exec->timer.handler = NULL;
    if (hg_heap_push(&m->ready, &exec->ready, hg_ready_key(exec)) != HG_OK) {
        exec->job->pending--;
        hg_master_record_unrun(m, exec, HG_EXEC_SKIPPED,
                               "out of memory: ready queue full");
        return;
    }
    hg_master_dispatch(m);
}

static void
hg_execution_on_timeout(hg_timer_t *timer)
{
    hg_execution_t *exec = timer->data;
    hg_log_field_t fields[] = {
        HG_LOG_INT("timeout_ms", exec->job->policy.timeout_ms),
        HG_LOG_INT("worker", exec->worker ? exec->worker->pid : 0),
    };

    hg_log_event(HG_LOG_WARN, "timeout", exec->job->id, exec->id, fields,
                 HG_NELEMS(fields), "killing the worker's process group");
    if (exec->worker != NULL) {
        hg_pool_kill(exec->worker, HG_KILL_TIMEOUT, SIGKILL);
    }
}

static void hg_execution_on_turn_passed(hg_timer_t *timer);
static void hg_master_hand_ahead(hg_master_t *m);

static hg_worker_t *
hg_master_idle_worker(hg_master_t *m)
{
    hg_worker_t *w;

    for (w = m->pool.head; w != NULL; w = w->next) {
        if (w->state == HG_WORKER_IDLE && !w->retiring && w->to_fd >= 0) {
            return w;
        }
    }
    return NULL;
}

/* The worker has the execution's frame and runs it now: arm its timeout
 * and log its start. One handed ahead gets here when the execution
 * before it on its worker ends. */
static void
hg_master_begin(hg_master_t *m, hg_execution_t *exec)
{
    hg_job_t *job = exec->job;
    int64_t now_ms = hg_now_ms();

    exec->deadline_ms = job->policy.timeout_ms > 0
                        ? now_ms + job->policy.timeout_ms : 0;
    exec->dispatched_ms = now_ms;   /* a primed one was recorded earlier */
    exec->dispatched_ns = hg_clock_ns(CLOCK_REALTIME);
    m->dispatched_total++;
    hg_metric_observe(m->metric.lag, NULL,
                      (double) (exec->dispatched_ns - exec->due_ns) / 1e9);
    if (job->policy.timeout_ms > 0) {
        exec->timer.handler = hg_execution_on_timeout;
        hg_timer_set(&m->mono, &exec->timer,
                     hg_clock_ns(CLOCK_MONOTONIC)
                     + job->policy.timeout_ms * HG_NSEC_PER_MSEC);
    }
    if (hg_log_enabled(HG_LOG_INFO)) {
        char due[40];
        hg_log_field_t fields[] = {
            HG_LOG_INT("attempt", exec->attempt),
            HG_LOG_STR("trigger", exec->trigger),
            HG_LOG_STR("scheduled_for", due),
            HG_LOG_INT("lag_ms", now_ms - exec->scheduled_for_ms),
            HG_LOG_INT("worker", exec->worker->pid),
        };
        hg_format_utc_ms(exec->scheduled_for_ms, due, sizeof(due));
        hg_log_event(HG_LOG_INFO, "start", job->id, exec->id, fields,
                     HG_NELEMS(fields), NULL);
    }
}

/* The execution's DISPATCH frame into its worker's output buffer. */
static int
hg_master_frame(hg_worker_t *w, const hg_execution_t *exec)
{
    const hg_job_t *job = exec->job;
    hg_msg_dispatch_t d;

    memset(&d, 0, sizeof(d));
    d.exec_id = exec->id;
    d.job_id = job->id;
    d.type = job->type;
    d.trigger = exec->trigger;
    d.job_def = (const uint8_t *) job->definition_text;
    d.job_def_len = strlen(job->definition_text);
    if (exec->payload_len > 0) {
        d.payload = exec->payload;
        d.payload_len = exec->payload_len;
    }
    d.attempt = exec->attempt;
    d.scheduled_for_ms = exec->scheduled_for_ms;
    d.timeout_ms = job->policy.timeout_ms;
    d.output_limit = (int64_t) job->output_limit;
    d.limits = job->policy.limits;
    return hg_msg_put_dispatch(&w->out, &d);
}

static void hg_master_hand_back(hg_master_t *m, hg_execution_t *exec);

/* Send a handed execution's frame: the worker starts it when its current
 * execution ends; if that takes longer than its turn, the timer takes it
 * back (if the worker has not read it yet). A frame too large to be
 * taken back whole is not handed: it waits for a worker free. */
static void
hg_master_send_ahead(hg_master_t *m, hg_execution_t *exec)
{
    hg_worker_t *w = exec->worker;

    if (hg_master_frame(w, exec) != HG_OK
        || hg_pool_send_ahead(w, exec) != HG_OK)
    {
        hg_master_hand_back(m, exec);
        return;
    }
    exec->ahead = HG_AHEAD_SENT;
    m->handed_total++;
    exec->timer.handler = hg_execution_on_turn_passed;
    hg_timer_set(&m->mono, &exec->timer, hg_clock_ns(CLOCK_MONOTONIC)
                 + m->ahead_turn_ms * HG_NSEC_PER_MSEC);
}

/* Send the execution's frame to the worker held for it (or handed it
 * ahead), then begin it. */
static void
hg_master_start(hg_master_t *m, hg_execution_t *exec)
{
    hg_worker_t *w = exec->worker;
    hg_job_t *job = exec->job;

    if (exec->ahead == HG_AHEAD_WAITING) {
        hg_master_send_ahead(m, exec);
        return;
    }
    if (hg_master_frame(w, exec) != HG_OK
        || hg_pool_send(w, exec) != HG_OK)
    {
        hg_log_event(HG_LOG_ERROR, "error", job->id, exec->id, NULL, 0,
                     "cannot send the execution to worker %d; the worker "
                     "is replaced and the execution queued again",
                     (int) w->pid);
        w->current = NULL;
        hg_pool_kill(w, HG_KILL_PROTOCOL, SIGKILL);
        job->running--;
        exec->worker = NULL;
        exec->status = HG_EXEC_QUEUED;
        exec->dispatched_ms = 0;
        job->pending++;
        if (hg_heap_push(&m->ready, &exec->ready, hg_ready_key(exec))
            != HG_OK)
        {
            job->pending--;
            hg_master_record_unrun(m, exec, HG_EXEC_SKIPPED,
                                   "out of memory: ready queue full");
        }
        return;
    }
    hg_master_begin(m, exec);
}

/* Whether EXEC's `running` record is durable, so its frame may go. */
static bool
hg_master_committed(const hg_master_t *m, const hg_execution_t *exec)
{
    return exec->ticket == 0 || exec->ticket <= m->acked
           || m->store_degraded;
}

/* --- store tasks asked by workers (the system module's) ----------------- */

/* Store tasks that ended: each answer goes to the worker that asked if it
 * still runs the same execution; one killed meanwhile (timeout, stop) is
 * gone or runs another, and the answer is dropped. */
static void
hg_master_store_tasks(hg_master_t *m)
{
    hg_maintenance_request_t *req;
    hg_worker_t *w;
    hg_execution_t *exec;

    while ((req = hg_maintenance_done(m->store)) != NULL) {
        w = hg_pool_find(&m->pool, req->worker);
        exec = w != NULL && w->state == HG_WORKER_BUSY ? w->current : NULL;
        if (exec != NULL && strcmp(exec->id, req->exec_id) == 0) {
            if (hg_maintenance_reply(&w->out, m->store, req) == HG_OK) {
                hg_pool_reply(w);
            }
        } else {
            hg_log(HG_LOG_DEBUG, "store: %s for execution %s ended after "
                   "its worker %d stopped running it: answer dropped",
                   req->name, req->exec_id, (int) req->worker);
        }
        free(req);
    }
}

/* A worker asks for a store task: the store runs it on its own side
 * (never here, in the loop) and hg_master_store_tasks answers. */
static void
hg_master_worker_request(hg_worker_t *w, void *current,
                         const hg_ipc_frame_t *frame)
{
    hg_master_t *m = w->pool->data;
    hg_execution_t *exec = current;
    char *task, *exec_id, err[256];

    task = hg_ipc_get_strdup(frame, HG_IPC_F_STORE_TASK);
    exec_id = hg_ipc_get_strdup(frame, HG_IPC_F_EXEC_ID);
    if (task == NULL || exec_id == NULL || exec == NULL
        || strcmp(exec->id, exec_id) != 0)
    {
        hg_log(HG_LOG_ERROR, "worker %d asked for a store task without a "
               "task name or for another execution than it runs; "
               "replacing it", (int) w->pid);
        hg_pool_kill(w, HG_KILL_PROTOCOL, SIGKILL);
        goto done;
    }
    if (m->store == NULL) {
        snprintf(err, sizeof(err), "%s: this hourglass runs without a "
                 "store", task);
    } else if (hg_maintenance_start(m->store, m->cycle->conf, task, w->pid,
                                    exec_id, err, sizeof(err)) != NULL)
    {
        hg_log_event(HG_LOG_DEBUG, "store_task", exec->job->id, exec->id,
                     NULL, 0, "%s handed to the store", task);
        hg_master_store_tasks(m);       /* a store without a thread is done */
        goto done;
    }
    if (hg_maintenance_refuse(&w->out, exec_id, err) == HG_OK) {
        hg_pool_reply(w);
    }

done:
    free(task);
    free(exec_id);
}

/* The store committed up to some ticket (or writes are failing): start
 * the executions whose `running` record is durable. */
static void
hg_master_on_store(hg_event_t *ev, uint32_t events)
{
    hg_master_t *m = ev->data;
    hg_execution_t *exec, *next;
    uint64_t acked;

    HG_UNUSED(events);
    acked = hg_store_ack(m->store);
    if (acked > m->acked) {
        m->acked = acked;
    }
    if (m->probe_ticket != 0 && m->acked >= m->probe_ticket) {
        double sample = (double) (hg_clock_ns(CLOCK_MONOTONIC)
                                  - m->probe_ns);
        m->commit_ns = m->commit_ns == 0 ? sample
                       : (7.0 * m->commit_ns + sample) / 8.0;
        m->probe_ticket = 0;
    }
    if (m->store->failing && !m->store_degraded) {
        hg_log(HG_LOG_ERROR, "store: writes are failing; executions start "
               "without waiting for their records (kept in memory and "
               "written when the store recovers)");
    } else if (!m->store->failing && m->store_degraded) {
        hg_log(HG_LOG_INFO, "store: writes succeed again; executions wait "
               "for their records once more");
    }
    m->store_degraded = m->store->failing;
    if (m->store_degraded) {
        m->probe_ticket = 0;        /* a failing store's delay is no sample */
    }
    /* At most one per worker, walked whole: a primed execution joins it
     * when a worker takes it, its ticket older than those before it. */
    for (exec = m->committing.head; exec != NULL; exec = next) {
        next = exec->start.next;
        if (hg_master_committed(m, exec)) {
            hg_exec_start_leave(exec);
            hg_master_start(m, exec);
        }
    }
    hg_master_hand_ahead(m);            /* behind those just started */
    hg_master_store_tasks(m);
}

/* Leaving the queue for a worker: the execution is recorded `running`,
 * and when the store is durable a barrier is asked for, which its frame
 * waits for (a master killed after sending it must find it running at
 * restart, and record it crashed rather than lose or repeat it). */
static void
hg_master_mark_running(hg_master_t *m, hg_execution_t *exec)
{
    uint64_t ticket;

    hg_master_release_key(m, exec);
    exec->status = HG_EXEC_RUNNING;
    exec->dispatched_ms = hg_now_ms();
    exec->job->running++;
    exec->ticket = 0;
    hg_master_store_put(m, exec, HG_EXEC_RUNNING, NULL);
    if (m->store != NULL && m->store->notify_fd >= 0
        && !m->store_degraded
        && hg_store_barrier(m->store, &ticket) == HG_OK)
    {
        exec->ticket = ticket;
        if (m->probe_ticket == 0) {
            m->probe_ticket = ticket;
            m->probe_ns = hg_clock_ns(CLOCK_MONOTONIC);
        }
    }
}

/* A primed execution goes back to the queued state it was recorded in
 * before (shutdown), or is about to end without running. */
static void
hg_master_unprime(hg_execution_t *exec)
{
    hg_exec_start_leave(exec);
    exec->job->running--;
    exec->status = HG_EXEC_QUEUED;
    exec->dispatched_ms = 0;
    exec->ticket = 0;
}

/* Whether EXEC (the next to start, ready or primed) is past its
 * starting_deadline; if so it is taken off its queue and recorded
 * missed. */
static bool
hg_master_start_missed(hg_master_t *m, hg_execution_t *exec)
{
    int64_t limit = exec->job->policy.starting_deadline_ms;

    if (limit <= 0 || hg_now_ms() - exec->scheduled_for_ms <= limit) {
        return false;
    }
    if (exec->start_list != NULL) {
        hg_master_unprime(exec);
    } else {
        hg_heap_remove(&m->ready, &exec->ready);
        exec->job->pending--;
    }
    hg_master_record_unrun(m, exec, HG_EXEC_MISSED,
                           "could not start within its starting_deadline");
    return true;
}

/* The execution an idle worker takes next: the first primed one, unless
 * the ready queue has one that comes before it (a higher priority, or an
 * earlier due time, that arrived after the priming). */
static hg_execution_t *
hg_master_next_to_start(hg_master_t *m)
{
    hg_heap_node_t *node = hg_heap_min(&m->ready);
    hg_execution_t *primed = m->primed.head, *ready;

    if (node == NULL) {
        return primed;
    }
    ready = hg_heap_entry(node, hg_execution_t, ready);
    if (primed != NULL && hg_ready_key(primed) <= hg_ready_key(ready)) {
        return primed;
    }
    return ready;
}

/* An execution ended: the gap since the one before feeds the moving
 * average that sizes the primed pipeline, so that a burst of short
 * executions is seen within a few finishes, not a window later. */
static void
hg_master_note_finish(hg_master_t *m)
{
    int64_t now = hg_clock_ns(CLOCK_MONOTONIC);
    double gap;

    if (m->last_finish_ns != 0) {
        gap = (double) (now - m->last_finish_ns);
        m->finish_gap_ns = m->finish_gap_ns == 0.0 || gap > 1e9
                           ? gap : (7.0 * m->finish_gap_ns + gap) / 8.0;
    }
    m->last_finish_ns = now;
}

/*
 * How many executions to record running ahead of a worker: as many as the
 * workers finish while a barrier waits for its commit, times four (a
 * barrier may wait for the commit in progress, then its own; the rest is
 * margin). The finish rate is that of the last few finishes, unless the
 * pool has been quiet longer than that says: long executions finish
 * rarely, so they are not primed and do not show as running while they
 * wait.
 */
static size_t
hg_master_prime_depth(hg_master_t *m)
{
    double gap = m->finish_gap_ns, quiet, depth;

    if (m->last_finish_ns == 0 || gap <= 0.0) {
        return 0;
    }
    quiet = (double) (hg_clock_ns(CLOCK_MONOTONIC) - m->last_finish_ns);
    if (quiet > gap) {
        gap = quiet;
    }
    depth = 4.0 * m->commit_ns / gap;
    if (depth >= HG_PRIME_MAX) {
        return HG_PRIME_MAX;
    }
    return (size_t) depth;
}

/* Every worker is busy: record the next executions running now, so that
 * their commits overlap the executions in progress. */
static void
hg_master_prime(hg_master_t *m)
{
    hg_heap_node_t *node;
    hg_execution_t *exec;
    size_t depth;

    if (m->store == NULL || m->store->notify_fd < 0 || m->store_degraded
        || m->stopping || m->quitting || hg_heap_min(&m->ready) == NULL)
    {
        return;
    }
    depth = hg_master_prime_depth(m);
    while (m->primed.count < depth
           && (node = hg_heap_min(&m->ready)) != NULL)
    {
        exec = hg_heap_entry(node, hg_execution_t, ready);
        if (hg_master_start_missed(m, exec)) {
            continue;
        }
        hg_heap_remove(&m->ready, node);
        exec->job->pending--;
        hg_master_mark_running(m, exec);
        hg_exec_start_join(&m->primed, exec);
    }
}

/* EXEC (primed or ready) goes to worker W, held for it: its frame goes
 * now if its `running` record is durable, else once it is. */
static void
hg_master_take(hg_master_t *m, hg_execution_t *exec, hg_worker_t *w)
{
    exec->worker = w;
    if (exec->start_list != NULL) {
        hg_exec_start_leave(exec);
    } else {
        hg_heap_remove(&m->ready, &exec->ready);
        exec->job->pending--;
        hg_master_mark_running(m, exec);
    }
    if (hg_master_committed(m, exec)) {
        hg_master_start(m, exec);
    } else {
        hg_exec_start_join(&m->committing, exec);
    }
}

/* The next execution to start that is still in time, or NULL. */
static hg_execution_t *
hg_master_next_in_time(hg_master_t *m)
{
    hg_execution_t *exec;

    while ((exec = hg_master_next_to_start(m)) != NULL
           && hg_master_start_missed(m, exec))
    {
        continue;
    }
    return exec;
}

/*
 * Whether busy worker W may be handed its next execution now. Handing
 * ahead saves the round trip through the master between two executions
 * (the worker starts the next as soon as it has reported the last), which
 * is most of the cost of a short one. It is done only behind an
 * execution expected to end soon (its job's last run was quick, and it
 * began just now) whose frame is out: an execution is never held behind a
 * long one, and one held behind an execution that runs long after all is
 * taken back when its turn passes (HG_AHEAD_TURN_MS).
 */
static bool
hg_master_can_hand(const hg_master_t *m, const hg_worker_t *w)
{
    const hg_execution_t *cur = w->current;

    return w->state == HG_WORKER_BUSY && w->handed == NULL && !w->retiring
           && cur != NULL && cur->start_list == NULL
           && cur->ahead == HG_AHEAD_NONE && cur->job->quick
           && hg_now_ms() - cur->dispatched_ms < m->ahead_turn_ms / 2;
}

/* No worker is idle and executions wait: hand each busy worker that may
 * take one its next. */
static void
hg_master_hand_ahead(hg_master_t *m)
{
    hg_execution_t *exec;
    hg_worker_t *w;

    if (m->stopping || m->quitting) {
        return;
    }
    for (w = m->pool.head; w != NULL; w = w->next) {
        if (!hg_master_can_hand(m, w)) {
            continue;
        }
        exec = hg_master_next_in_time(m);
        if (exec == NULL) {
            return;
        }
        if (hg_pool_hand(w, exec) != HG_OK) {
            continue;
        }
        exec->ahead = HG_AHEAD_WAITING;
        hg_master_take(m, exec, w);
    }
}

static void
hg_master_dispatch(hg_master_t *m)
{
    hg_execution_t *exec;
    hg_worker_t *w;

    while (!m->stopping && (w = hg_master_idle_worker(m)) != NULL
           && (exec = hg_master_next_in_time(m)) != NULL)
    {
        if (hg_pool_reserve(w, exec) != HG_OK) {
            return;
        }
        hg_master_take(m, exec, w);
    }
    hg_master_hand_ahead(m);
    hg_master_prime(m);
}

/* A handed execution that never started: first among the primed ones
 * (it is recorded running), for the next worker free; shutting down, it
 * is left queued for the next start, as the primed ones are. */
static void
hg_master_hand_back(hg_master_t *m, hg_execution_t *exec)
{
    hg_timer_cancel(&exec->timer);
    exec->timer.handler = NULL;
    hg_exec_start_leave(exec);          /* waiting for its commit */
    exec->worker = NULL;
    exec->ahead = HG_AHEAD_NONE;
    hg_exec_start_push(&m->primed, exec);
    if (m->stopping || m->quitting) {
        hg_master_drop_primed(m, exec, "daemon shutting down");
    }
}

/* Its turn passed and its worker still runs the execution before it:
 * taken back for another worker, unless the worker has read it. */
static void
hg_execution_on_turn_passed(hg_timer_t *timer)
{
    hg_execution_t *exec = timer->data;
    hg_master_t *m = exec->job->master;
    hg_worker_t *w = exec->worker;

    exec->timer.handler = NULL;
    if (!hg_pool_take_back(w, exec)) {
        return;             /* the worker has read it: it runs it next */
    }
    m->taken_back_total++;
    hg_log_event(HG_LOG_DEBUG, "handed_back", exec->job->id, exec->id, NULL,
                 0, "worker %d still runs the execution before it after "
                 "%" PRId64 " ms: given to the next worker free",
                 (int) w->pid, m->ahead_turn_ms);
    hg_master_hand_back(m, exec);
    hg_master_dispatch(m);
}

/* The worker reported the execution before EXEC, which was handed ahead:
 * EXEC runs now, if its frame was out; else it is an execution held for
 * its worker like any other, its frame sent once its record commits. */
static void
hg_master_promote(hg_master_t *m, hg_execution_t *exec)
{
    hg_ahead_t ahead = exec->ahead;

    exec->ahead = HG_AHEAD_NONE;
    if (ahead == HG_AHEAD_SENT) {
        hg_timer_cancel(&exec->timer);
        exec->timer.handler = NULL;
        hg_master_begin(m, exec);
    }
}

static void
hg_execution_on_jitter(hg_timer_t *timer)
{
    hg_execution_t *exec = timer->data;

    hg_master_ready_push(exec->job->master, exec);
}

/* Overlap policy, then jitter, then the ready queue. */
static hg_execution_t *
hg_master_admit(hg_master_t *m, hg_execution_t *exec, bool scheduled)
{
    hg_job_t *job = exec->job;
    hg_execution_t *cur, *next;
    hg_worker_t *w;

    if (job->running + job->pending > 0 || job->waiting_head != NULL) {
        hg_overlap_t overlap = job->policy.overlap;
        /* Runs owed by misfire = run_all wait their turn rather than skip
         * each other: the policy asked for every one of them. */
        if (overlap == HG_OVERLAP_SKIP
            && strcmp(exec->trigger, "misfire") == 0)
        {
            overlap = HG_OVERLAP_QUEUE;
        }
        switch (overlap) {
        case HG_OVERLAP_SKIP:
            hg_master_record_unrun(m, exec, HG_EXEC_SKIPPED,
                                   "the previous run is still going "
                                   "(overlap = skip)");
            errno = EBUSY;
            return NULL;
        case HG_OVERLAP_QUEUE:
            if (!exec->recorded) {
                hg_master_store_put(m, exec, HG_EXEC_QUEUED, NULL);
            }
            if (job->waiting_tail != NULL) {
                job->waiting_tail->next_waiting = exec;
            } else {
                job->waiting_head = exec;
            }
            job->waiting_tail = exec;
            return exec;
        case HG_OVERLAP_REPLACE:
            for (cur = m->primed.head; cur != NULL; cur = next) {
                next = cur->start.next;
                if (cur->job == job) {
                    hg_master_unprime(cur);
                    hg_master_record_unrun(m, cur, HG_EXEC_SKIPPED,
                                           "replaced before it started "
                                           "(overlap = replace)");
                }
            }
            for (w = m->pool.head; w != NULL; w = w->next) {
                cur = w->current;
                if (cur != NULL && cur->job == job
                    && w->state == HG_WORKER_BUSY)
                {
                    hg_log_event(HG_LOG_WARN, "replace", job->id, cur->id,
                                 NULL, 0, "killed to make way for %s "
                                 "(overlap = replace)", exec->id);
                    hg_pool_kill(w, HG_KILL_STOP, SIGKILL);
                }
            }
            break;
        case HG_OVERLAP_ALLOW:
            break;
        }
    }
    /* Recorded before it waits: a master killed now finds it queued (a
     * fire or a future run_at was recorded so already: once is enough). */
    if (!exec->recorded) {
        hg_master_store_put(m, exec, HG_EXEC_QUEUED, NULL);
    }
    if (scheduled && job->policy.jitter_ms > 0) {
        int64_t delay = (int64_t) (hg_random()
                                   % (uint64_t) (job->policy.jitter_ms + 1));
        job->pending++;
        exec->timer.handler = hg_execution_on_jitter;
        hg_timer_set(&m->mono, &exec->timer,
                     hg_clock_ns(CLOCK_MONOTONIC) + delay * HG_NSEC_PER_MSEC);
        return exec;
    }
    hg_master_ready_push(m, exec);
    return exec;
}

static void
hg_master_fire_exact(hg_master_t *m, hg_job_t *job, int64_t due_ms,
                     int64_t due_ns, const char *trigger)
{
    hg_execution_t *exec;

    if (due_ms > job->last_due_ms) {
        job->last_due_ms = due_ms;
    }
    exec = hg_execution_new(m, job, due_ms, 1, trigger);
    if (exec != NULL) {
        hg_master_store_put(m, exec, HG_EXEC_QUEUED, NULL);
        /* After the execution's record: a restart that sees this fire
         * time as done also finds its execution. */
        if (m->store != NULL) {
            hg_store_put_job_state(m->store, job->id, job->last_due_ms,
                                   job->paused);
        }
        if (due_ns != 0) {
            exec->due_ns = due_ns;
        }
        hg_master_admit(m, exec, true);
    }
}

static void
hg_master_fire(hg_master_t *m, hg_job_t *job, int64_t due_ms,
               const char *trigger)
{
    hg_master_fire_exact(m, job, due_ms, 0, trigger);
}

static void
hg_execution_on_run_at(hg_timer_t *timer)
{
    hg_execution_t *exec = timer->data;

    exec->timer.handler = NULL;
    hg_master_admit(exec->job->master, exec, false);
}

hg_execution_t *
hg_master_enqueue(hg_master_t *m, const char *job_id, const char *trigger,
                  const void *payload, size_t payload_len, int64_t run_at_ms,
                  hg_priority_t priority, const char *unique_key)
{
    hg_job_t *job = hg_master_find_job(m, job_id);
    hg_execution_t *exec;
    int64_t now_ms = hg_now_ms();

    if (job == NULL || m->quitting || m->stopping) {
        errno = job == NULL ? ENOENT : ESHUTDOWN;
        return NULL;
    }
    if (unique_key != NULL && hg_map_get(&m->unique_keys, unique_key)) {
        errno = EEXIST;
        return NULL;
    }
    exec = hg_execution_new(m, job, run_at_ms > now_ms ? run_at_ms : now_ms,
                            1, trigger);
    if (exec == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    exec->priority = priority;
    exec->run_at_ms = run_at_ms;
    if (payload_len > 0) {
        exec->payload = malloc(payload_len);
        if (exec->payload == NULL) {
            goto nomem;
        }
        memcpy(exec->payload, payload, payload_len);
        exec->payload_len = payload_len;
    }
    if (unique_key != NULL) {
        exec->unique_key = strdup(unique_key);
        if (exec->unique_key == NULL
            || hg_map_put(&m->unique_keys, exec->unique_key, exec) != HG_OK)
        {
            goto nomem;
        }
    }
    if (run_at_ms > now_ms) {
        hg_master_store_put(m, exec, HG_EXEC_QUEUED, NULL);
        exec->timer.handler = hg_execution_on_run_at;
        hg_timer_set(&m->wall, &exec->timer, run_at_ms * HG_NSEC_PER_MSEC);
        return exec;
    }
    return hg_master_admit(m, exec, false);

nomem:
    hg_execution_free(m, exec);
    errno = ENOMEM;
    return NULL;
}

hg_execution_t *
hg_master_trigger(hg_master_t *m, const char *job_id, const char *trigger,
                  const void *payload, size_t payload_len,
                  hg_priority_t priority)
{
    return hg_master_enqueue(m, job_id, trigger, payload, payload_len, 0,
                             priority, NULL);
}

/* --- schedules ------------------------------------------------------- */

static void
hg_job_on_timer(hg_timer_t *timer)
{
    hg_job_t *job = timer->data;
    hg_master_t *m = job->master;
    int64_t due_ms, due_ns, now_ms = hg_now_ms();

    if (timer->set == &m->wall) {
        due_ns = timer->node.key;
    } else {
        /* A monotonic deadline, told as the wall time it stood for. */
        due_ns = hg_clock_ns(CLOCK_REALTIME)
                 - (hg_clock_ns(CLOCK_MONOTONIC) - timer->node.key);
    }
    due_ms = due_ns / HG_NSEC_PER_MSEC;
    job->next_due_ms = 0;
    hg_master_fire_exact(m, job, due_ms, due_ns, "schedule");
    if (job->every_ms > 0) {
        /* Fixed rate: the next run is one interval after this one was due,
         * not after it started; a daemon that fell more than an interval
         * behind runs once and goes on from now. */
        int64_t next = timer->node.key + job->every_ms * HG_NSEC_PER_MSEC;
        int64_t now = hg_clock_ns(CLOCK_MONOTONIC);
        if (next <= now) {
            next = now + job->every_ms * HG_NSEC_PER_MSEC;
        }
        job->next_due_ms = now_ms + (next - now) / HG_NSEC_PER_MSEC;
        hg_timer_set(&m->mono, &job->timer, next);
        return;
    }
    hg_job_schedule(m, job, due_ms > now_ms ? due_ms : now_ms);
}

/* Set the job's timer for its next fire time strictly after AFTER_MS (wall
 * clock); a fixed rate is kept on the monotonic clock, its first run one
 * interval from now (or on the grid of start_at). */
static void
hg_job_schedule(hg_master_t *m, hg_job_t *job, int64_t after_ms)
{
    hg_schedule_t s = hg_job_sched(job);
    int64_t next, now_ms;

    hg_timer_cancel(&job->timer);
    job->next_due_ms = 0;
    if (!job->enabled || job->paused || job->removed || m->quitting
        || m->stopping || job->kind == HG_SCHEDULE_NONE)
    {
        return;
    }
    if (hg_schedule_on_wall_clock(&s)) {
        if (hg_schedule_next(&s, after_ms, &next) != HG_OK) {
            if (job->kind == HG_SCHEDULE_CRON) {
                hg_log_event(HG_LOG_WARN, "schedule", job->id, NULL, NULL,
                             0, "no fire time found: the job will not run");
            }
            return;
        }
        job->next_due_ms = next;
        hg_timer_set(&m->wall, &job->timer, next * HG_NSEC_PER_MSEC);
        return;
    }
    now_ms = hg_now_ms();
    if (hg_schedule_next(&s, now_ms, &next) != HG_OK) {
        return;
    }
    job->next_due_ms = next;
    hg_timer_set(&m->mono, &job->timer, hg_clock_ns(CLOCK_MONOTONIC)
                 + (next - now_ms) * HG_NSEC_PER_MSEC);
}

/*
 * Fire times that passed unrun (COUNT of them in MISSED, one more than
 * HG_RUN_ALL_CAP when there were more), per the job's misfire policy:
 * skipped, the latest run once, or each run up to the cap. CAUSE ends
 * the log line ("while the daemon was down").
 */
static void
hg_master_misfire(hg_master_t *m, hg_job_t *job, const int64_t *missed,
                  size_t count, const char *cause)
{
    size_t shown = count > HG_RUN_ALL_CAP ? (size_t) HG_RUN_ALL_CAP : count;
    const char *over = count > HG_RUN_ALL_CAP ? "over " : "";
    size_t i;

    if (count == 0) {
        return;
    }
    switch (job->policy.misfire) {
    case HG_MISFIRE_SKIP:
        hg_log_event(HG_LOG_WARN, "misfire", job->id, NULL, NULL, 0,
                     "%s%zu fire times passed %s: skipped (misfire = skip)",
                     over, shown, cause);
        break;
    case HG_MISFIRE_RUN_ONCE:
        hg_log_event(HG_LOG_WARN, "misfire", job->id, NULL, NULL, 0,
                     "%s%zu fire times passed %s: running once (misfire = "
                     "run_once)", over, shown, cause);
        hg_master_fire(m, job, missed[shown - 1], "misfire");
        break;
    case HG_MISFIRE_RUN_ALL:
        if (count > HG_RUN_ALL_CAP) {
            hg_log_event(HG_LOG_WARN, "misfire", job->id, NULL, NULL, 0,
                         "more than %d fire times passed %s: running the "
                         "first %d (misfire = run_all is capped)",
                         HG_RUN_ALL_CAP, cause, HG_RUN_ALL_CAP);
        } else {
            hg_log_event(HG_LOG_WARN, "misfire", job->id, NULL, NULL, 0,
                         "%zu fire times passed %s: running each (misfire "
                         "= run_all)", count, cause);
        }
        for (i = 0; i < shown; i++) {
            hg_master_fire(m, job, missed[i], "misfire");
        }
        break;
    }
}

/* The wall clock was stepped (NTP, date -s). Wall-clock schedules are
 * recomputed; a fire time is never repeated because the clock went back
 * (nothing before the last fire is considered again), and fire times the
 * clock jumped over follow the job's misfire policy. */
static void
hg_master_clock_changed(hg_timers_t *set)
{
    hg_master_t *m = set->data;
    int64_t now_ms = hg_now_ms(), missed[HG_RUN_ALL_CAP];
    const char *key;
    void *value;
    size_t it = 0, count;

    hg_log(HG_LOG_WARN, "the wall clock was stepped; recomputing "
           "wall-clock schedules");
    while (hg_map_next(&m->jobs, &it, &key, &value)) {
        hg_job_t *job = value;
        hg_schedule_t s = hg_job_sched(job);

        if (!hg_schedule_on_wall_clock(&s) || !job->enabled
            || job->paused)
        {
            continue;
        }
        /* A forward step over the next fire time, and perhaps more: those
         * from it up to now. */
        if (job->next_due_ms > 0 && job->next_due_ms <= now_ms) {
            count = hg_schedule_missed(&s, job->next_due_ms - 1, now_ms,
                                       missed, HG_NELEMS(missed));
            hg_master_misfire(m, job, missed, count,
                              "when the wall clock was stepped forward");
        }
        hg_job_schedule(m, job, now_ms > job->last_due_ms
                                ? now_ms : job->last_due_ms);
    }
}

/* --- reload and jobs -------------------------------------------------- */

static void
hg_job_remove(hg_master_t *m, hg_job_t *job)
{
    hg_execution_t *exec;

    hg_timer_cancel(&job->timer);
    job->removed = true;
    job->next_due_ms = 0;
    while ((exec = job->waiting_head) != NULL) {
        job->waiting_head = exec->next_waiting;
        hg_master_record_unrun(m, exec, HG_EXEC_SKIPPED,
                               "job removed from the configuration");
    }
    job->waiting_tail = NULL;
    hg_map_remove(&m->jobs, job->id);
    hg_log_event(HG_LOG_INFO, "job_removed", job->id, NULL, NULL, 0, NULL);
    if (job->refs == 0) {
        hg_job_free(job);
    }
}

static hg_job_t *
hg_job_new(hg_master_t *m, const char *id)
{
    hg_job_t *job = hg_slab_alloc(&m->job_slab);

    if (job == NULL) {
        return NULL;
    }
    job->master = m;
    job->id = hg_slab_strdup(&m->job_strings, id);
    if (job->id == NULL) {
        hg_slab_free(&m->job_slab, job);
        return NULL;
    }
    hg_timer_init(&job->timer, hg_job_on_timer, job);
    return job;
}

/*
 * Applying a cycle, a slice at a time: a reload of 100,000 jobs would hold
 * the loop for a quarter of a second in one go (adding or removing them),
 * so the reload applies HG_APPLY_SLICE jobs per turn of the loop, and
 * timers and workers are served in between. Meanwhile a job not yet
 * reached runs as before the reload; stale jobs are found once every job
 * of the cycle has been applied, then removed a slice at a time too.
 */
#define HG_APPLY_SLICE  2000

typedef struct hg_master_apply_s {
    hg_cycle_t *cycle;
    size_t next;                    /* the cycle's next job */
    hg_job_t **stale;               /* listed once the cycle is applied */
    size_t nstale;
    size_t next_stale;
    bool stale_listed;
    unsigned added, changed, removed;
} hg_master_apply_t;

static void
hg_master_apply_start(hg_master_t *m, hg_master_apply_t *a,
                      hg_cycle_t *cycle)
{
    memset(a, 0, sizeof(*a));
    a->cycle = cycle;
    m->applies++;
}

static void
hg_master_apply_job(hg_master_t *m, hg_master_apply_t *a,
                    hg_cycle_job_t *cj)
{
    hg_job_t *job = hg_map_get(&m->jobs, cj->conf->id);
    bool def_changed, schedule_changed, was_enabled;
    bool is_new = (job == NULL);

    if (is_new) {
        job = hg_job_new(m, cj->conf->id);
    }
    if (job == NULL) {
        hg_log(HG_LOG_ERROR, "out of memory adding job \"%s\"",
               cj->conf->id);
        return;
    }
    was_enabled = job->enabled;
    if (hg_job_update(job, cj, &def_changed, &schedule_changed) != HG_OK) {
        hg_log(HG_LOG_ERROR, "out of memory applying job \"%s\"",
               cj->conf->id);
        if (is_new) {
            hg_job_free(job);
        }
        return;
    }
    if (is_new) {
        if (hg_map_put(&m->jobs, job->id, job) != HG_OK) {
            hg_job_free(job);
            return;
        }
        a->added++;
        hg_job_schedule(m, job, hg_now_ms());
        /* Added by a reload: its fire times count from now, so that a
         * restart before its first fire finds the ones it missed. */
        if (m->store != NULL && m->applies > 1) {
            hg_store_put_job_state(m->store, job->id, hg_now_ms(), false);
        }
    } else {
        if (def_changed) {
            a->changed++;
        }
        /* An unchanged schedule keeps its timer as it is: the next
         * fire time neither moves nor repeats across a reload. */
        if (schedule_changed || was_enabled != job->enabled
            || !hg_timer_pending(&job->timer))
        {
            hg_job_schedule(m, job, hg_now_ms() > job->last_due_ms
                                    ? hg_now_ms() : job->last_due_ms);
        }
    }
    job->removed = false;
    job->applied = m->applies;
}

/* A job this configuration did not mention is stale: one pass, so an
 * apply costs O(n), not a search of the cycle per job. */
static int
hg_master_apply_list_stale(hg_master_t *m, hg_master_apply_t *a)
{
    size_t it = 0;
    const char *key;
    void *value;

    a->stale = calloc(m->jobs.count + 1, sizeof(*a->stale));
    if (a->stale == NULL) {
        return HG_ERROR;
    }
    while (hg_map_next(&m->jobs, &it, &key, &value)) {
        if (((hg_job_t *) value)->applied != m->applies) {
            a->stale[a->nstale++] = value;
        }
    }
    a->stale_listed = true;
    return HG_OK;
}

/* Apply about LIMIT jobs more: HG_AGAIN while some are left, HG_OK once
 * the configuration is in force, HG_ERROR when out of memory. */
static int
hg_master_apply_step(hg_master_t *m, hg_master_apply_t *a, size_t limit)
{
    size_t end;

    end = a->cycle->njobs - a->next > limit ? a->next + limit
                                            : a->cycle->njobs;
    for (; a->next < end; a->next++) {
        hg_master_apply_job(m, a, &a->cycle->jobs[a->next]);
        limit--;
    }
    if (a->next < a->cycle->njobs) {
        return HG_AGAIN;
    }
    if (!a->stale_listed && hg_master_apply_list_stale(m, a) != HG_OK) {
        return HG_ERROR;
    }
    for (; a->next_stale < a->nstale && limit > 0; a->next_stale++) {
        hg_job_remove(m, a->stale[a->next_stale]);
        a->removed++;
        limit--;
    }
    if (a->next_stale < a->nstale) {
        return HG_AGAIN;
    }
    if (a->added + a->changed + a->removed > 0) {
        hg_log(HG_LOG_INFO, "jobs: %u added, %u changed, %u removed, %zu "
               "defined", a->added, a->changed, a->removed, m->jobs.count);
    }
    return HG_OK;
}

static void
hg_master_apply_free(hg_master_apply_t *a)
{
    free(a->stale);
    a->stale = NULL;
}

/* The whole cycle at once: at start, before the loop runs. */
static int
hg_master_apply(hg_master_t *m, hg_cycle_t *cycle)
{
    hg_master_apply_t a;
    int rc;

    hg_master_apply_start(m, &a, cycle);
    while ((rc = hg_master_apply_step(m, &a, SIZE_MAX)) == HG_AGAIN) {
    }
    hg_master_apply_free(&a);
    return rc;
}

/* --- workers --------------------------------------------------------- */

static size_t
hg_master_active_workers(hg_master_t *m)
{
    hg_worker_t *w;
    size_t n = 0;

    for (w = m->pool.head; w != NULL; w = w->next) {
        if (!w->retiring && w->state != HG_WORKER_GONE
            && w->generation == m->pool.generation)
        {
            n++;
        }
    }
    return n;
}

static void
hg_master_spawn_workers(hg_master_t *m)
{
    size_t active;

    if (m->stopping || m->quitting || hg_timer_pending(&m->respawn_timer)) {
        return;
    }
    for (active = hg_master_active_workers(m);
         active < (size_t) m->workers; active++)
    {
        hg_worker_t *w = hg_pool_spawn(&m->pool, &m->cycle->modules,
                                       m->prefix);
        if (w == NULL) {
            break;
        }
        hg_log(HG_LOG_DEBUG, "worker %d started", (int) w->pid);
    }
}

static void
hg_master_on_respawn(hg_timer_t *timer)
{
    hg_master_spawn_workers(timer->data);
}

static void
hg_master_worker_ready(hg_worker_t *w)
{
    hg_master_t *m = w->pool->data;

    if (w->state == HG_WORKER_IDLE) {
        m->quick_deaths = 0;
        hg_master_dispatch(m);
    }
}

static hg_exec_status_t
hg_master_result_status(uint32_t rc)
{
    return rc == HG_OK ? HG_EXEC_SUCCEEDED : HG_EXEC_FAILED;
}

/* A module's custom metrics (hg_exec_metric), as the worker sent them: a
 * JSON object of numbers, or NULL (none, or not that: logged). */
static json_t *
hg_master_metrics(const hg_worker_t *w, const hg_execution_t *exec,
                  const char *text)
{
    json_error_t jerr;
    json_t *metrics;

    if (text == NULL) {
        return NULL;
    }
    metrics = json_loads(text, 0, &jerr);
    if (!json_is_object(metrics)) {
        hg_log_event(HG_LOG_WARN, "error", exec->job->id, exec->id, NULL, 0,
                     "worker %d sent metrics that are not a JSON object "
                     "(%s): ignored", (int) w->pid,
                     metrics == NULL ? jerr.text : "another JSON value");
        json_decref(metrics);
        return NULL;
    }
    return metrics;
}

static void
hg_master_worker_result(hg_worker_t *w, void *current,
                        const hg_ipc_frame_t *frame)
{
    hg_master_t *m = w->pool->data;
    hg_execution_t *exec = current;
    hg_master_result_t result;
    hg_msg_result_t r;
    json_t *metrics = NULL;
    char err[256], *why = NULL;

    if (hg_msg_get_result(frame, &r, err, sizeof(err)) != HG_OK) {
        /* err says what */
    } else if (exec == NULL) {
        snprintf(err, sizeof(err), "it runs none");
    } else if (strcmp(r.exec_id, exec->id) != 0) {
        snprintf(err, sizeof(err), "another execution's id");
    } else if (r.result > HG_FATAL) {
        snprintf(err, sizeof(err), "unknown result code %u", r.result);
    } else {
        err[0] = '\0';
    }
    if (err[0] != '\0') {
        hg_log(HG_LOG_ERROR, "worker %d sent a result that does not match "
               "its execution (%s); replacing it", (int) w->pid, err);
        /* Keep the execution with the worker: its death records it, and
         * gives back the one handed ahead, which never started. */
        w->handed = w->current;
        w->handed_sent = w->handed != NULL
                         && ((hg_execution_t *) w->handed)->ahead
                            == HG_AHEAD_SENT;
        w->current = exec;
        hg_pool_kill(w, HG_KILL_PROTOCOL, SIGKILL);
        hg_msg_result_free(&r);
        return;
    }
    if (w->current != NULL) {
        hg_master_promote(m, w->current);
    }
    hg_timer_cancel(&exec->timer);
    exec->timer.handler = NULL;
    memset(&result, 0, sizeof(result));
    result.status = hg_master_result_status(r.result);
    if (r.result != HG_OK && exec->deadline_ms > 0
        && hg_now_ms() >= exec->deadline_ms)
    {
        /* The module saw the deadline first (hg_exec_cancelled) and gave
         * up on its own, just before the master would have killed it. */
        result.status = HG_EXEC_TIMED_OUT;
    }
    result.started_ms = r.has_times ? r.started_ms : exec->dispatched_ms;
    result.finished_ms = r.has_times ? r.finished_ms : hg_now_ms();
    result.exit_code = r.has_exit_code ? r.exit_code : -1;
    result.signo = r.signo;
    result.error = r.error;
    if (result.status == HG_EXEC_TIMED_OUT
        && asprintf(&why, "timed out after %" PRId64 " ms (the module "
                    "stopped at its deadline%s%s)",
                    exec->job->policy.timeout_ms, r.error ? ": " : "",
                    r.error ? r.error : "") >= 0)
    {
        result.error = why;
    }
    result.output = (const char *) r.output;
    result.output_len = r.output_len;
    result.truncated = r.truncated;
    result.max_rss_kb = r.max_rss_kb;
    result.cpu_user_ms = r.cpu_user_ms;
    result.cpu_sys_ms = r.cpu_sys_ms;
    metrics = hg_master_metrics(w, exec, r.metrics);
    result.metrics = metrics;
    if (metrics != NULL) {
        hg_master_count_module(m, exec, metrics);
    }
    exec->job->running--;
    exec->job->quick = result.finished_ms - result.started_ms
                       < m->ahead_turn_ms / 2;
    hg_master_finish(m, exec, &result, (hg_result_t) r.result,
                     r.result == HG_RETRY ? r.retry_after_ms : -1);
    json_decref(metrics);
    free(why);
    hg_msg_result_free(&r);
    hg_master_dispatch(m);
    hg_master_check_done(m);
}

/* A dying worker never started EXEC (handed ahead, or its frame unread):
 * it goes to the next worker free, not counted as an attempt. */
static void
hg_master_worker_returned(hg_worker_t *w, void *exec)
{
    hg_execution_t *e = exec;

    hg_log_event(HG_LOG_DEBUG, "returned", e->job->id, e->id, NULL, 0,
                 "worker %d ended before starting it: given to another",
                 (int) w->pid);
    hg_master_hand_back(w->pool->data, e);
}

static void
hg_master_worker_gone(hg_worker_t *w, void *current, int status,
                      const struct rusage *usage)
{
    hg_master_t *m = w->pool->data;
    hg_execution_t *exec = current;
    hg_master_result_t result;
    char error[256];
    int64_t now_ms = hg_now_ms();
    bool young = hg_clock_ns(CLOCK_MONOTONIC) - w->spawned_ns
                 < HG_WORKER_YOUNG_NS;
    const char *reason = "exit";

    switch (w->kill_reason) {
    case HG_KILL_TIMEOUT: reason = "timeout"; break;
    case HG_KILL_STOP: reason = "stop"; break;
    case HG_KILL_PROTOCOL: reason = "protocol"; break;
    case HG_KILL_RETIRE: reason = "retire"; break;
    case HG_KILL_STOPPED: reason = "stopped"; break;
    case HG_KILL_NONE:
        reason = WIFSIGNALED(status) ? "crash"
                 : (w->retiring ? "retire" : "exit");
        break;
    }
    if (exec != NULL) {
        memset(&result, 0, sizeof(result));
        result.started_ms = exec->dispatched_ms;
        result.finished_ms = now_ms;
        result.exit_code = -1;
        result.error = error;
        /* The worker's whole life, not just this execution: the closest
         * figures there are for one that did not report. */
        result.max_rss_kb = usage->ru_maxrss;
        result.cpu_user_ms = (int64_t) usage->ru_utime.tv_sec * 1000
                             + usage->ru_utime.tv_usec / 1000;
        result.cpu_sys_ms = (int64_t) usage->ru_stime.tv_sec * 1000
                            + usage->ru_stime.tv_usec / 1000;
        hg_timer_cancel(&exec->timer);
        exec->timer.handler = NULL;
        switch (w->kill_reason) {
        case HG_KILL_TIMEOUT:
            result.status = HG_EXEC_TIMED_OUT;
            snprintf(error, sizeof(error), "timed out after %" PRId64 " ms; "
                     "worker %d and its process group killed",
                     exec->job->policy.timeout_ms, (int) w->pid);
            break;
        case HG_KILL_STOP:
            result.status = HG_EXEC_KILLED;
            snprintf(error, sizeof(error), "killed on request");
            break;
        case HG_KILL_PROTOCOL:
            result.status = HG_EXEC_CRASHED;
            snprintf(error, sizeof(error), "worker %d broke the protocol "
                     "and was replaced", (int) w->pid);
            break;
        case HG_KILL_STOPPED:
            result.status = HG_EXEC_CRASHED;
            snprintf(error, sizeof(error), "worker %d was stopped (SIGSTOP)"
                     " and was killed and replaced", (int) w->pid);
            break;
        default:
            result.status = HG_EXEC_CRASHED;
            if (WIFSIGNALED(status)) {
                result.signo = WTERMSIG(status);
                snprintf(error, sizeof(error), "worker %d killed by signal "
                         "%d (SIG%s)", (int) w->pid, result.signo,
                         sigabbrev_np(result.signo) ? sigabbrev_np(result.signo)
                                                    : "?");
            } else {
                snprintf(error, sizeof(error), "worker %d exited with "
                         "status %d during the execution", (int) w->pid,
                         WEXITSTATUS(status));
            }
            break;
        }
        exec->job->running--;
        hg_master_finish(m, exec, &result, HG_FAIL, -1);
    }
    if (strcmp(reason, "retire") != 0) {
        const char *labels[] = { reason };
        hg_metric_add(m->metric.restarts, labels, 1);
    }
    if (strcmp(reason, "retire") != 0 || hg_log_enabled(HG_LOG_DEBUG)) {
        hg_log_field_t fields[] = {
            HG_LOG_INT("worker", w->pid),
            HG_LOG_STR("reason", reason),
            HG_LOG_INT("status", WIFEXITED(status) ? WEXITSTATUS(status)
                                                   : -WTERMSIG(status)),
        };
        hg_log_event(strcmp(reason, "retire") == 0 ? HG_LOG_DEBUG
                     : HG_LOG_WARN, "worker_exit", NULL, NULL, fields,
                     HG_NELEMS(fields), NULL);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == HG_WORKER_EXIT_INIT) {
        hg_log(HG_LOG_ERROR, "worker %d could not initialise its modules",
               (int) w->pid);
    }
    if (young && exec == NULL && w->kill_reason == HG_KILL_NONE
        && !w->retiring)
    {
        /* Workers dying as soon as they start would otherwise be forked
         * in a tight loop. */
        int64_t delay = 100LL << (m->quick_deaths < 6 ? m->quick_deaths : 6);
        if (delay > HG_RESPAWN_MAX_DELAY_MS) {
            delay = HG_RESPAWN_MAX_DELAY_MS;
        }
        m->quick_deaths++;
        if (!hg_timer_pending(&m->respawn_timer)) {
            hg_timer_set(&m->mono, &m->respawn_timer,
                         hg_clock_ns(CLOCK_MONOTONIC)
                         + delay * HG_NSEC_PER_MSEC);
        }
    }
    hg_master_spawn_workers(m);
    hg_master_dispatch(m);
    hg_master_check_done(m);
}

/* --- shutdown -------------------------------------------------------- */

/* Shutting down: executions not yet started. With a store they stay
 * recorded `queued` and the next start runs them; without one they end
 * here, recorded skipped. */
static void
hg_master_drop_one(hg_master_t *m, hg_execution_t *exec, const char *why)
{
    if (m->store != NULL && exec->recorded) {
        hg_log_event(HG_LOG_INFO, "queued", exec->job->id, exec->id, NULL, 0,
                     "left queued for the next start");
        hg_execution_free(m, exec);
        return;
    }
    hg_master_record_unrun(m, exec, HG_EXEC_SKIPPED, why);
}

/* A primed execution, recorded running ahead of a worker, is queued
 * again (shutting down). */
static void
hg_master_drop_primed(hg_master_t *m, hg_execution_t *exec, const char *why)
{
    hg_master_unprime(exec);
    hg_master_store_put(m, exec, HG_EXEC_QUEUED, NULL);
    hg_master_drop_one(m, exec, why);
}

static void
hg_master_drop_queued(hg_master_t *m, const char *why)
{
    hg_heap_node_t *node;
    hg_execution_t *exec, *next;
    const char *key;
    void *value;
    size_t it = 0;

    while ((exec = m->primed.head) != NULL) {
        hg_master_drop_primed(m, exec, why);
    }
    while ((node = hg_heap_pop(&m->ready)) != NULL) {
        exec = hg_heap_entry(node, hg_execution_t, ready);
        exec->job->pending--;
        hg_master_drop_one(m, exec, why);
    }
    while (hg_map_next(&m->jobs, &it, &key, &value)) {
        hg_job_t *job = value;
        hg_timer_cancel(&job->timer);
        job->next_due_ms = 0;
        while ((exec = job->waiting_head) != NULL) {
            job->waiting_head = exec->next_waiting;
            hg_master_drop_one(m, exec, why);
        }
        job->waiting_tail = NULL;
    }
    /* Waiting on a timer (jitter, retry, run_at) or on the store. */
    for (exec = m->executions.head; exec != NULL; exec = next) {
        next = exec->all.next;
        if (exec->worker == NULL) {
            if (exec->timer.handler != NULL && exec->job->pending > 0
                && exec->timer.handler != hg_execution_on_run_at)
            {
                exec->job->pending--;
            }
            hg_master_drop_one(m, exec, why);
        }
    }
}

static void
hg_master_check_done(hg_master_t *m)
{
    hg_worker_t *w;
    bool busy = false;

    if (!m->quitting || m->done) {
        return;
    }
    for (w = m->pool.head; w != NULL; w = w->next) {
        if (w->state == HG_WORKER_BUSY || w->current != NULL) {
            busy = true;
        } else if (w->state != HG_WORKER_GONE) {
            hg_pool_retire(w);
        }
    }
    if (!busy && m->pool.head == NULL) {
        m->done = true;
    }
}

static void
hg_master_on_quit_timeout(hg_timer_t *timer)
{
    hg_master_t *m = timer->data;

    hg_log(HG_LOG_WARN, "shutdown_timeout reached: killing the executions "
           "still running");
    hg_pool_kill_all(&m->pool, SIGKILL);
    m->done = true;
}

/* Shutting down: executions handed ahead that their workers have not
 * read are not started (those read run, as running ones do). */
static void
hg_master_take_back_all(hg_master_t *m)
{
    hg_execution_t *exec;
    hg_worker_t *w;

    for (w = m->pool.head; w != NULL; w = w->next) {
        exec = w->handed;
        if (exec != NULL && hg_pool_take_back(w, exec)) {
            m->taken_back_total++;
            hg_master_hand_back(m, exec);
        }
    }
}

static void
hg_master_quit(hg_master_t *m)
{
    if (m->quitting || m->stopping) {
        return;
    }
    hg_log(HG_LOG_INFO, "graceful shutdown: no new executions; waiting up "
           "to %" PRId64 " ms for running ones",
           m->cycle->conf->shutdown_timeout_ms);
    m->quitting = true;
    hg_timer_cancel(&m->respawn_timer);
    hg_master_take_back_all(m);
    hg_master_drop_queued(m, "daemon shutting down");
    hg_timer_set(&m->mono, &m->quit_timer, hg_clock_ns(CLOCK_MONOTONIC)
                 + m->cycle->conf->shutdown_timeout_ms * HG_NSEC_PER_MSEC);
    hg_master_check_done(m);
}

static void
hg_master_stop(hg_master_t *m)
{
    if (m->stopping) {
        return;
    }
    hg_log(HG_LOG_INFO, "fast shutdown: killing workers");
    m->stopping = true;
    hg_master_drop_queued(m, "daemon stopping");
    hg_pool_kill_all(&m->pool, SIGKILL);
    m->done = true;
}

/* --- reload ---------------------------------------------------------- */

/*
 * A reload in three steps, none of which holds the loop for long: a cycle
 * reader process reads the file and runs the modules' validate (its pipe
 * and exit are watched here, under reload_timeout); a thread turns its
 * result into a cycle (JSON parsing and 100k jobs are hundreds of ms, and
 * touch nothing of the master's); the loop applies it.
 */
typedef struct hg_master_reload_s {
    hg_cycle_reader_t reader;
    hg_event_t reader_ev;
    hg_timer_t timer;               /* the deadline, then polling the exit */
    int64_t deadline_ns;
    int64_t started_ns;
    char *file;                     /* thread's copy of what it needs */
    char *prefix;
    char *text;                     /* the reader's result */
    size_t len;
    pthread_t thread;
    bool thread_running;
    int done_fd;                    /* eventfd: the thread is done */
    hg_event_t done_ev;
    hg_cycle_t *cycle;              /* the thread's result */
    hg_conf_errors_t errors;
    hg_master_apply_t apply;        /* the new cycle, a slice a turn */
    hg_timer_t apply_timer;
    int64_t apply_ns;               /* the slices' total */
    int64_t hold_ns;                /* the longest slice */
    hg_job_conf_t *old_jobs;        /* applied: the thread frees them */
    size_t nold_jobs;
    bool sweeping;                  /* the thread frees old_jobs */
} hg_master_reload_t;

static void
hg_master_reload_free(hg_master_t *m)
{
    hg_master_reload_t *r = m->reload;

    if (r == NULL) {
        return;
    }
    if (r->reader_ev.active) {
        hg_event_del(&r->reader_ev);
    }
    hg_timer_cancel(&r->timer);
    hg_timer_cancel(&r->apply_timer);
    hg_master_apply_free(&r->apply);
    hg_cycle_reader_cleanup(&r->reader);
    if (r->thread_running) {
        pthread_join(r->thread, NULL);
    }
    if (r->done_ev.active) {
        hg_event_del(&r->done_ev);
    }
    if (r->done_fd >= 0) {
        close(r->done_fd);
    }
    hg_cycle_destroy(r->cycle);
    hg_cycle_free_conf_jobs(r->old_jobs, r->nold_jobs);
    hg_conf_errors_free(&r->errors);
    free(r->file);
    free(r->prefix);
    free(r->text);
    free(r);
    m->reload = NULL;
}

static void
hg_master_reload_failed(hg_master_t *m, const hg_conf_errors_t *errors)
{
    size_t i;

    for (i = 0; i < errors->count; i++) {
        hg_log_field_t field = HG_LOG_STR("result", "failed");
        if (errors->items[i].line > 0) {
            hg_log_event(HG_LOG_ERROR, "reload", NULL, NULL, &field, 1,
                         "%s:%d: %s", errors->items[i].file,
                         errors->items[i].line, errors->items[i].message);
        } else {
            hg_log_event(HG_LOG_ERROR, "reload", NULL, NULL, &field, 1,
                         "%s: %s", errors->items[i].file
                         ? errors->items[i].file : m->conf_file,
                         errors->items[i].message);
        }
    }
    hg_log(HG_LOG_ERROR, "reload failed: the running configuration "
           "stays in force");
    {
        const char *labels[] = { "failed" };
        hg_metric_add(m->metric.reloads, labels, 1);
    }
}

static void hg_master_reload_over(hg_master_t *m);
static void *hg_master_reload_sweep(void *data);

/* The new cycle is in force: what is left of its jobs goes to a thread to
 * be freed, and the reload is done. */
static void
hg_master_applied(hg_master_t *m, hg_master_reload_t *r)
{
    hg_log_field_t fields[] = {
        HG_LOG_STR("result", "ok"),
        HG_LOG_INT("apply_ms", r->apply_ns / HG_NSEC_PER_MSEC),
        HG_LOG_INT("hold_ms", r->hold_ns / HG_NSEC_PER_MSEC),
        HG_LOG_INT("duration_ms", (hg_clock_ns(CLOCK_MONOTONIC)
                                   - r->started_ns) / HG_NSEC_PER_MSEC),
    };

    const char *labels[] = { "ok" };

    hg_metric_add(m->metric.reloads, labels, 1);
    hg_log_event(HG_LOG_INFO, "reload", NULL, NULL, fields,
                 HG_NELEMS(fields), "configuration reloaded: %zu jobs, "
                 "%d workers", m->jobs.count, m->workers);
    hg_cycle_release_jobs(m->cycle, &r->old_jobs, &r->nold_jobs);
    if (r->old_jobs != NULL
        && pthread_create(&r->thread, NULL, hg_master_reload_sweep, r) == 0)
    {
        r->thread_running = true;
        r->sweeping = true;
        return;
    }
    hg_master_reload_over(m);
}

/* One slice of the apply (HG_APPLY_SLICE jobs), then the loop's turn. */
static void
hg_master_apply_slice(hg_master_t *m)
{
    hg_master_reload_t *r = m->reload;
    int64_t start = hg_clock_ns(CLOCK_MONOTONIC), took;
    int rc;

    if (m->stopping || m->quitting) {
        hg_master_reload_over(m);       /* nothing new is scheduled now */
        return;
    }
    rc = hg_master_apply_step(m, &r->apply, HG_APPLY_SLICE);
    took = hg_clock_ns(CLOCK_MONOTONIC) - start;
    r->apply_ns += took;
    r->hold_ns = took > r->hold_ns ? took : r->hold_ns;
    if (rc == HG_AGAIN) {
        hg_timer_set(&m->mono, &r->apply_timer, start + took);
        return;
    }
    hg_master_apply_free(&r->apply);
    if (rc != HG_OK) {
        hg_log(HG_LOG_ERROR, "reload: out of memory removing the jobs the "
               "new configuration dropped; they stay defined");
    }
    hg_master_applied(m, r);
}

static void
hg_master_on_apply_timer(hg_timer_t *timer)
{
    hg_master_apply_slice(timer->data);
}

/* The new cycle replaces the running one; its jobs are applied a slice
 * at a time from here. */
/* A reload changed a setting read once at start: said, never ignored
 * silently (PostgreSQL's "cannot be changed without restarting"). */
static void
hg_master_restart_only(const char *name, const char *was, const char *now,
                       void *data)
{
    HG_UNUSED(data);
    hg_log(HG_LOG_WARN, "reload: %s changed from %s to %s, which takes "
           "effect at the next start only (until then the daemon keeps the "
           "first)", name, was, now);
}

static void
hg_master_commit(hg_master_t *m, hg_master_reload_t *r, hg_cycle_t *cycle)
{
    hg_cycle_t *old = m->cycle;
    hg_conf_t *conf = cycle->conf;
    hg_worker_t *w;

    if (strcmp(conf->log.file, old->conf->log.file) != 0
        || conf->log.level != old->conf->log.level
        || conf->log.format != old->conf->log.format)
    {
        if (hg_log_open(conf->log.file, conf->log.level, conf->log.format)
            != HG_OK)
        {
            hg_log(HG_LOG_ERROR, "cannot open log file %s: %s; logging "
                   "stays where it was", conf->log.file, strerror(errno));
        }
    }
    hg_conf_restart_changes(old->conf, conf, hg_master_restart_only, NULL);
    m->cycle = cycle;
    m->workers = conf->workers;

    /* New workers carry the new modules; the old ones leave as soon as
     * they are idle (a running execution finishes where it is). Nothing
     * the jobs hold belongs to the old cycle (hg_job_update copies). */
    m->pool.generation++;
    for (w = m->pool.head; w != NULL; w = w->next) {
        if (w->generation != m->pool.generation) {
            hg_pool_retire(w);
        }
    }
    hg_cycle_destroy(old);
    hg_master_spawn_workers(m);

    hg_master_apply_start(m, &r->apply, cycle);
    hg_master_apply_slice(m);
}

/* The reload is over, one way or the other: the next may start. */
static void
hg_master_reload_over(hg_master_t *m)
{
    hg_master_reload_free(m);
    if (m->reload_again && !m->stopping && !m->quitting) {
        m->reload_again = false;
        hg_master_reload(m);
    }
}

static void
hg_master_reload_signal(hg_master_reload_t *r)
{
    uint64_t one = 1;

    while (write(r->done_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
}

static void *
hg_master_reload_build(void *data)
{
    hg_master_reload_t *r = data;

    r->cycle = hg_cycle_reader_cycle(r->text, r->len, r->file, r->prefix,
                                     &r->errors);
    free(r->text);
    r->text = NULL;
    hg_master_reload_signal(r);
    return NULL;
}

static void *
hg_master_reload_sweep(void *data)
{
    hg_master_reload_t *r = data;

    hg_cycle_free_conf_jobs(r->old_jobs, r->nold_jobs);
    r->old_jobs = NULL;
    r->nold_jobs = 0;
    hg_master_reload_signal(r);
    return NULL;
}

/* The thread is done: it built the new cycle (applied here), or it freed
 * what the apply left (the reload is over). */
static void
hg_master_on_reload_thread(hg_event_t *ev, uint32_t events)
{
    hg_master_t *m = ev->data;
    hg_master_reload_t *r = m->reload;
    hg_cycle_t *cycle;
    uint64_t count;

    HG_UNUSED(events);
    if (read(r->done_fd, &count, sizeof(count)) != sizeof(count)) {
        return;
    }
    pthread_join(r->thread, NULL);
    r->thread_running = false;
    if (r->sweeping) {
        hg_master_reload_over(m);
        return;
    }
    cycle = r->cycle;
    r->cycle = NULL;
    if (cycle != NULL && hg_cycle_open_modules(cycle, &r->errors) != HG_OK) {
        hg_cycle_destroy(cycle);
        cycle = NULL;
    }
    if (cycle == NULL) {
        hg_master_reload_failed(m, &r->errors);
    } else if (m->stopping || m->quitting) {
        hg_cycle_destroy(cycle);
    } else {
        hg_master_commit(m, r, cycle);
        return;
    }
    hg_master_reload_over(m);
}

/* The reader has ended: a failure, or its result to the builder. */
static void
hg_master_reader_done(hg_master_t *m)
{
    hg_master_reload_t *r = m->reload;
    int rc;

    if (r->reader_ev.active) {
        hg_event_del(&r->reader_ev);
    }
    hg_timer_cancel(&r->timer);
    if (!r->reader.killed) {
        hg_cycle_reader_read(&r->reader);
    }
    if (hg_cycle_reader_end(&r->reader, &r->errors) != HG_OK) {
        hg_master_reload_failed(m, &r->errors);
        hg_master_reload_over(m);
        return;
    }
    r->text = r->reader.buf;
    r->len = r->reader.len;
    r->reader.buf = NULL;
    hg_cycle_reader_cleanup(&r->reader);
    r->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    rc = r->done_fd < 0 ? errno : 0;
    if (rc == 0 && hg_event_add(m->loop, &r->done_ev, r->done_fd, EPOLLIN,
                                hg_master_on_reload_thread, m) != HG_OK)
    {
        rc = errno;
    }
    if (rc == 0) {
        rc = pthread_create(&r->thread, NULL, hg_master_reload_build, r);
    }
    if (rc != 0) {
        hg_conf_error_add(&r->errors, m->conf_file, 0, "cannot build the "
                          "new configuration: %s", strerror(rc));
        hg_master_reload_failed(m, &r->errors);
        hg_master_reload_over(m);
        return;
    }
    r->thread_running = true;
}

/* The reader's pipe or the timer: read what came, reap it once it is
 * done, kill it when its time is up. */
static void
hg_master_reader_poll(hg_master_t *m)
{
    hg_master_reload_t *r = m->reload;
    int64_t now = hg_clock_ns(CLOCK_MONOTONIC);

    if (!r->reader.eof && !r->reader.killed
        && hg_cycle_reader_read(&r->reader) == HG_ERROR)
    {
        hg_cycle_reader_kill(&r->reader);
    }
    if (r->reader.eof && r->reader_ev.active) {
        hg_event_del(&r->reader_ev);
    }
    if (hg_cycle_reader_reap(&r->reader)) {
        hg_master_reader_done(m);
        return;
    }
    if (now >= r->deadline_ns) {
        hg_cycle_reader_kill(&r->reader);
    }
    /* Ended or ending, its exit is a moment away; else the deadline. */
    hg_timer_set(&m->mono, &r->timer,
                 r->reader.eof || r->reader.killed
                 ? now + 5 * HG_NSEC_PER_MSEC : r->deadline_ns);
}

static void
hg_master_on_reader(hg_event_t *ev, uint32_t events)
{
    HG_UNUSED(events);
    hg_master_reader_poll(ev->data);
}

static void
hg_master_on_reader_timer(hg_timer_t *timer)
{
    hg_master_reader_poll(timer->data);
}

/* The pool reaped a child of ours that is no worker. */
static void
hg_master_child_reaped(hg_pool_t *pool, pid_t pid, int status)
{
    hg_master_t *m = pool->data;

    if (m->reload != NULL
        && hg_cycle_reader_reaped(&m->reload->reader, pid, status))
    {
        hg_master_reader_poll(m);
    }
}

bool
hg_master_reloading(const hg_master_t *m)
{
    return m->reload != NULL;
}

int
hg_master_reload(hg_master_t *m)
{
    hg_master_reload_t *r;
    char err[512];

    if (m->reload != NULL) {
        hg_log(HG_LOG_INFO, "reload requested while one is under way: "
               "another follows it");
        m->reload_again = true;
        return HG_AGAIN;
    }
    hg_log(HG_LOG_INFO, "reloading %s", m->conf_file);
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        hg_log(HG_LOG_ERROR, "reload failed: out of memory");
        return HG_ERROR;
    }
    m->reload = r;
    r->done_fd = -1;
    r->reader.fd = -1;
    r->started_ns = hg_clock_ns(CLOCK_MONOTONIC);
    r->deadline_ns = r->started_ns
                     + m->cycle->conf->reload_timeout_ms * HG_NSEC_PER_MSEC;
    hg_timer_init(&r->timer, hg_master_on_reader_timer, m);
    hg_timer_init(&r->apply_timer, hg_master_on_apply_timer, m);
    r->file = strdup(m->conf_file);
    r->prefix = strdup(m->prefix);
    err[0] = '\0';
    if (r->file == NULL || r->prefix == NULL
        || hg_cycle_reader_start(&r->reader, m->conf_file, m->prefix,
                                 m->cycle->conf->reload_timeout_ms, err,
                                 sizeof(err)) != HG_OK
        || hg_event_add(m->loop, &r->reader_ev, r->reader.fd, EPOLLIN,
                        hg_master_on_reader, m) != HG_OK
        || hg_timer_set(&m->mono, &r->timer, r->deadline_ns) != HG_OK)
    {
        hg_conf_error_add(&r->errors, m->conf_file, 0, "%s",
                          err[0] ? err : strerror(errno));
        hg_master_reload_failed(m, &r->errors);
        hg_master_reload_free(m);
        return HG_ERROR;
    }
    return HG_AGAIN;
}

/* --- signals and the loop -------------------------------------------- */

static void
hg_master_on_signal(hg_event_t *ev, uint32_t events)
{
    hg_master_t *m = ev->data;
    struct signalfd_siginfo info;
    ssize_t n;

    HG_UNUSED(events);
    for (;;) {
        n = read(m->signal_fd, &info, sizeof(info));
        if (n != (ssize_t) sizeof(info)) {
            return;
        }
        switch (info.ssi_signo) {
        case SIGCHLD:
            hg_pool_reap(&m->pool);
            break;
        case SIGHUP:
            if (!m->quitting && !m->stopping) {
                hg_master_reload(m);
            }
            break;
        case SIGTERM:
        case SIGINT:
            hg_master_stop(m);
            break;
        case SIGQUIT:
            hg_master_quit(m);
            break;
        case SIGUSR1:
            if (hg_log_reopen() != HG_OK) {
                hg_log(HG_LOG_ERROR, "cannot reopen the log file: %s",
                       strerror(errno));
            } else {
                hg_worker_t *w;
                hg_log(HG_LOG_INFO, "log file reopened");
                /* The workers hold their own descriptor: tell each (the
                 * worker, not its group, where job processes live). */
                for (w = m->pool.head; w != NULL; w = w->next) {
                    if (w->state != HG_WORKER_GONE) {
                        kill(w->pid, SIGUSR1);
                    }
                }
            }
            break;
        default:
            break;
        }
    }
}

static void
hg_master_before_wait(void *data)
{
    hg_master_t *m = data;

    hg_pool_collect(&m->pool);
    hg_log_flush();
}

/* --- recovery at start ------------------------------------------------ */

/* Executions the store holds as queued or running: the previous master
 * ended (kill -9, crash, power) before they did. */
static void
hg_master_recover_executions(hg_master_t *m)
{
    hg_exec_row_t *rows = NULL;
    size_t n = 0, i, crashed = 0, requeued = 0;
    int64_t now_ms = hg_now_ms();

    if (hg_store_load_unfinished(m->store, &rows, &n) != HG_OK) {
        hg_log(HG_LOG_ERROR, "store: cannot read unfinished executions; "
               "nothing recovered");
        return;
    }
    for (i = 0; i < n; i++) {
        const hg_exec_record_t *r = &rows[i].r;
        hg_job_t *job = hg_master_find_job(m, r->job_id);
        hg_execution_t *exec;

        if (job == NULL) {
            hg_exec_record_t gone = *r;
            gone.status = r->status == HG_EXEC_RUNNING ? HG_EXEC_CRASHED
                                                       : HG_EXEC_SKIPPED;
            gone.finished_at = now_ms;
            gone.error = "its job no longer exists";
            hg_store_put_execution(m->store, &gone);
            continue;
        }
        exec = hg_execution_new(m, job, r->scheduled_for, r->attempt,
                                r->trigger ? r->trigger : "schedule");
        if (exec == NULL) {
            continue;
        }
        /* The same execution, under its own id. */
        snprintf(exec->id, sizeof(exec->id), "%s", r->id);
        snprintf(exec->run_id, sizeof(exec->run_id), "%s",
                 r->run_id ? r->run_id : r->id);
        exec->priority = (hg_priority_t) r->priority;
        exec->run_at_ms = r->run_at;
        if (r->payload_len > 0 && (exec->payload = malloc(r->payload_len))) {
            memcpy(exec->payload, r->payload, r->payload_len);
            exec->payload_len = r->payload_len;
        }
        if (r->unique_key != NULL) {
            exec->unique_key = strdup(r->unique_key);
            if (exec->unique_key != NULL) {
                hg_map_put(&m->unique_keys, exec->unique_key, exec);
            }
        }
        if (r->status == HG_EXEC_RUNNING) {
            hg_master_result_t result;
            memset(&result, 0, sizeof(result));
            result.status = HG_EXEC_CRASHED;
            result.started_ms = r->started_at;
            result.finished_ms = now_ms;
            result.exit_code = -1;
            result.max_rss_kb = -1;
            /* Recorded running before its frame went out: whether it
             * started is not known, so it counts as crashed. */
            result.error = "found running at start: the master ended while "
                           "it ran or was about to start it";
            exec->dispatched_ms = r->started_at;
            hg_master_finish(m, exec, &result, HG_FAIL, -1);
            crashed++;
            continue;
        }
        requeued++;
        if (strcmp(exec->trigger, "retry") == 0) {
            /* A retry is the run's own next attempt, not a new run: as
             * when it was made, it waits for its backoff and is not
             * subject to the overlap policy. */
            int64_t wait_ms = exec->run_at_ms > now_ms
                              ? exec->run_at_ms - now_ms : 0;
            job->pending++;
            exec->timer.handler = hg_execution_on_retry_timer;
            hg_timer_set(&m->mono, &exec->timer,
                         hg_clock_ns(CLOCK_MONOTONIC)
                         + wait_ms * HG_NSEC_PER_MSEC);
        } else if (exec->run_at_ms > now_ms) {
            exec->timer.handler = hg_execution_on_run_at;
            hg_timer_set(&m->wall, &exec->timer,
                         exec->run_at_ms * HG_NSEC_PER_MSEC);
        } else {
            hg_master_admit(m, exec, false);
        }
    }
    hg_exec_rows_free(rows, n);
    if (crashed + requeued > 0) {
        hg_log(HG_LOG_WARN, "store: recovered %zu executions: %zu found "
               "running (recorded crashed, retried per policy), %zu queued "
               "again", crashed + requeued, crashed, requeued);
    }
}

/* Jobs the store has no state for yet (never fired: new in the file, or
 * from before states were kept) start counting their fire times now, so
 * that an `at` or a first cron time that passes while the daemon is down
 * is found missed at the next start. */
static void
hg_master_baseline_states(hg_master_t *m, const json_t *states,
                          int64_t now_ms)
{
    const char *key;
    void *value;
    size_t it = 0;

    while (hg_map_next(&m->jobs, &it, &key, &value)) {
        hg_job_t *job = value;
        if (json_object_get(states, job->id) == NULL) {
            hg_store_put_job_state(m->store, job->id, now_ms, job->paused);
        }
    }
}

/* Fire times that passed while no master ran, per the job's misfire
 * policy. The store knows each job's last fire time. */
static void
hg_master_recover_misfires(hg_master_t *m)
{
    json_t *states = NULL, *state;
    const char *id;
    int64_t now_ms = hg_now_ms();

    if (hg_store_load_job_states(m->store, &states) != HG_OK) {
        hg_log(HG_LOG_ERROR, "store: cannot read job states; missed fire "
               "times are not recovered");
        return;
    }
    json_object_foreach(states, id, state) {
        hg_job_t *job = hg_master_find_job(m, id);
        json_t *lf = json_object_get(state, "last_fire");
        int64_t last, missed[HG_RUN_ALL_CAP];
        hg_schedule_t s;
        size_t count;

        if (job != NULL && json_is_true(json_object_get(state, "paused"))) {
            job->paused = true;
            hg_timer_cancel(&job->timer);
            job->next_due_ms = 0;
            hg_log_event(HG_LOG_INFO, "job_paused", job->id, NULL, NULL, 0,
                         "paused before the restart: stays paused");
        }
        if (job == NULL || !job->enabled || job->paused
            || !json_is_integer(lf))
        {
            continue;
        }
        last = json_integer_value(lf);
        if (last > job->last_due_ms) {
            job->last_due_ms = last;
        }
        s = hg_job_sched(job);
        count = hg_schedule_missed(&s, last, now_ms, missed,
                                   HG_NELEMS(missed));
        if (count == 0) {
            continue;
        }
        hg_master_misfire(m, job, missed, count,
                          "while the daemon was down");
        /* The regular schedule goes on from now, after what was missed. */
        if (hg_job_on_wall_clock(job)) {
            hg_job_schedule(m, job, now_ms > job->last_due_ms
                                    ? now_ms : job->last_due_ms);
        }
    }
    hg_master_baseline_states(m, states, now_ms);
    json_decref(states);
}

/* --- metrics --------------------------------------------------------- */

static const double hg_duration_bounds[] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
    900, 3600
};
static const double hg_lag_bounds[] = {
    0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60
};

static const char *const hg_l_job_status[] = { "job", "status", NULL };
static const char *const hg_l_job[] = { "job", NULL };
static const char *const hg_l_state[] = { "state", NULL };
static const char *const hg_l_reason[] = { "reason", NULL };
static const char *const hg_l_result[] = { "result", NULL };
static const char *const hg_l_module[] = { "module", "name", NULL };

/* The master's metrics: where each goes in m->metric, and what it is. */
static const struct {
    size_t offset;
    const char *name;
    const char *help;
    hg_metric_type_t type;
    const char *const *labels;
    const double *bounds;
    size_t nbounds;
} hg_master_families[] = {
#define HG_MF(field) offsetof(hg_master_t, metric.field)
    { HG_MF(executions), "hourglass_executions_total",
      "Executions that ended, by job and the status recorded",
      HG_METRIC_COUNTER, hg_l_job_status, NULL, 0 },
    { HG_MF(duration), "hourglass_execution_duration_seconds",
      "How long executions ran", HG_METRIC_HISTOGRAM, hg_l_job,
      hg_duration_bounds, HG_NELEMS(hg_duration_bounds) },
    { HG_MF(lag), "hourglass_schedule_lag_seconds",
      "Start time minus due time", HG_METRIC_HISTOGRAM, NULL,
      hg_lag_bounds, HG_NELEMS(hg_lag_bounds) },
    { HG_MF(queue_depth), "hourglass_queue_depth",
      "Executions waiting for a worker", HG_METRIC_GAUGE, NULL, NULL, 0 },
    { HG_MF(workers), "hourglass_workers", "Worker processes by state",
      HG_METRIC_GAUGE, hg_l_state, NULL, 0 },
    { HG_MF(restarts), "hourglass_worker_restarts_total",
      "Workers that ended other than by being retired, by reason",
      HG_METRIC_COUNTER, hg_l_reason, NULL, 0 },
    { HG_MF(reloads), "hourglass_reloads_total", "Reloads by result",
      HG_METRIC_COUNTER, hg_l_result, NULL, 0 },
    { HG_MF(jobs), "hourglass_jobs", "Jobs by state", HG_METRIC_GAUGE,
      hg_l_state, NULL, 0 },
    { HG_MF(module), "hourglass_module_metric_total",
      "Modules' own metrics (hg_exec_metric), summed", HG_METRIC_COUNTER,
      hg_l_module, NULL, 0 },
    { HG_MF(handed), "hourglass_dispatch_handed_ahead_total",
      "Executions handed to a busy worker ahead of their turn",
      HG_METRIC_COUNTER, NULL, NULL, 0 },
#undef HG_MF
};

static int
hg_master_metrics_init(hg_master_t *m)
{
    hg_metric_t **family;
    size_t i;

    m->metrics = hg_metrics_new();
    if (m->metrics == NULL) {
        return HG_ERROR;
    }
    for (i = 0; i < HG_NELEMS(hg_master_families); i++) {
        family = (hg_metric_t **) ((char *) m
                                   + hg_master_families[i].offset);
        *family = hg_metrics_family(m->metrics, hg_master_families[i].name,
                                    hg_master_families[i].help,
                                    hg_master_families[i].type,
                                    hg_master_families[i].labels,
                                    hg_master_families[i].bounds,
                                    hg_master_families[i].nbounds);
        if (*family == NULL) {
            return HG_ERROR;
        }
    }
    return HG_OK;
}

/* An execution ended with STATUS recorded (final or before a retry). */
static void
hg_master_count_end(hg_master_t *m, const hg_execution_t *exec,
                    hg_exec_status_t status, const hg_master_result_t *r)
{
    const char *labels[] = { exec->job->id, hg_exec_status_name(status) };

    hg_metric_add(m->metric.executions, labels, 1);
    if (r != NULL && r->finished_ms >= r->started_ms && r->started_ms > 0) {
        hg_metric_observe(m->metric.duration, labels,
                          (double) (r->finished_ms - r->started_ms) / 1e3);
    }
}

/* A module's own metrics, summed by module and name. */
static void
hg_master_count_module(hg_master_t *m, const hg_execution_t *exec,
                       const json_t *metrics)
{
    const char *name;
    json_t *value;

    json_object_foreach((json_t *) metrics, name, value) {
        const char *labels[] = { exec->job->type, name };
        if (json_is_number(value)) {
            hg_metric_add(m->metric.module, labels, json_number_value(value));
        }
    }
}

int
hg_master_render_metrics(hg_master_t *m, FILE *out)
{
    static const char *const jstates[] = {
        "scheduled", "paused", "disabled", "manual"
    };
    double jobs[HG_NELEMS(jstates)] = { 0 }, workers[4] = { 0 };
    const char *key;
    void *value;
    size_t it = 0, i;
    hg_worker_t *w;

    hg_metric_set(m->metric.queue_depth, NULL,
                  (double) (m->ready.count + m->primed.count));
    for (w = m->pool.head; w != NULL; w = w->next) {
        workers[w->state]++;
    }
    for (i = 0; i < HG_NELEMS(workers); i++) {
        const char *labels[] = {
            hg_worker_state_name((hg_worker_state_t) i)
        };
        hg_metric_set(m->metric.workers, labels, workers[i]);
    }
    while (hg_map_next(&m->jobs, &it, &key, &value)) {
        const hg_job_t *job = value;
        jobs[!job->enabled ? 2 : job->paused ? 1
             : job->kind == HG_SCHEDULE_NONE ? 3 : 0]++;
    }
    for (i = 0; i < HG_NELEMS(jstates); i++) {
        const char *labels[] = { jstates[i] };
        hg_metric_set(m->metric.jobs, labels, jobs[i]);
    }
    hg_metric_set(m->metric.handed, NULL, (double) m->handed_total);
    return hg_metrics_render(m->metrics, out);
}

/* --- commands and queries ------------------------------------------- */

/* The job's paused state into the store, and its schedule after it. */
static int
hg_master_set_paused(hg_master_t *m, const char *job_id, bool paused)
{
    hg_job_t *job = hg_master_find_job(m, job_id);

    if (job == NULL) {
        return HG_AGAIN;
    }
    if (job->paused == paused) {
        return HG_OK;
    }
    if (m->store != NULL
        && hg_store_put_job_state(m->store, job->id, job->last_due_ms,
                                  paused) != HG_OK)
    {
        hg_log_event(HG_LOG_ERROR, "error", job->id, NULL, NULL, 0,
                     "the store refused the %s state: the job stays %s",
                     paused ? "paused" : "resumed",
                     job->paused ? "paused" : "scheduled");
        return HG_ERROR;
    }
    job->paused = paused;
    if (paused) {
        hg_timer_cancel(&job->timer);
        job->next_due_ms = 0;
    } else {
        /* From now: what passed while it was paused is not owed. */
        hg_job_schedule(m, job, hg_now_ms());
    }
    hg_log_event(HG_LOG_INFO, paused ? "job_paused" : "job_resumed",
                 job->id, NULL, NULL, 0, NULL);
    return HG_OK;
}

int
hg_master_pause(hg_master_t *m, const char *job_id)
{
    return hg_master_set_paused(m, job_id, true);
}

int
hg_master_resume(hg_master_t *m, const char *job_id)
{
    return hg_master_set_paused(m, job_id, false);
}

int
hg_master_stop_job(hg_master_t *m, const char *job_id, size_t *killed)
{
    hg_job_t *job = hg_master_find_job(m, job_id);
    hg_execution_t *exec;
    hg_worker_t *w;
    size_t n = 0;

    if (killed != NULL) {
        *killed = 0;
    }
    if (job == NULL) {
        return HG_AGAIN;
    }
    for (w = m->pool.head; w != NULL; w = w->next) {
        exec = w->current;
        if (w->state == HG_WORKER_BUSY && exec != NULL && exec->job == job
            && exec->start_list == NULL)
        {
            hg_log_event(HG_LOG_INFO, "stop", job->id, exec->id, NULL, 0,
                         "killing worker %d's process group on request",
                         (int) w->pid);
            hg_pool_kill(w, HG_KILL_STOP, SIGKILL);
            n++;
        }
    }
    if (killed != NULL) {
        *killed = n;
    }
    return HG_OK;
}

int
hg_master_next_fires(hg_master_t *m, const char *job_id, int64_t *out,
                     size_t max, size_t *n)
{
    hg_job_t *job = hg_master_find_job(m, job_id);
    hg_schedule_t s;
    int64_t t;

    *n = 0;
    if (job == NULL) {
        return HG_AGAIN;
    }
    if (!job->enabled || job->paused || job->next_due_ms == 0) {
        return HG_OK;
    }
    s = hg_job_sched(job);
    t = job->next_due_ms;
    while (*n < max) {
        out[(*n)++] = t;
        if (s.every_ms > 0) {
            t += s.every_ms;         /* a fixed rate from its next due */
        } else if (hg_schedule_next(&s, t, &t) != HG_OK) {
            break;
        }
    }
    return HG_OK;
}

int
hg_master_init(hg_master_t *m, hg_cycle_t *cycle, const char *conf_file,
               const char *prefix, hg_store_t *store)
{
    sigset_t set;
    struct sigaction sa;

    memset(m, 0, sizeof(*m));
    m->ahead_turn_ms = HG_AHEAD_TURN_MS;
    if (hg_master_metrics_init(m) != HG_OK) {
        hg_log(HG_LOG_ERROR, "out of memory for the metrics");
        return HG_ERROR;
    }
    hg_exec_list_init(&m->executions, offsetof(hg_execution_t, all));
    hg_exec_list_init(&m->committing, offsetof(hg_execution_t, start));
    hg_exec_list_init(&m->primed, offsetof(hg_execution_t, start));
    m->cycle = cycle;
    m->conf_file = conf_file;
    m->prefix = prefix;
    m->workers = cycle->conf->workers;
    m->signal_fd = -1;
    m->store = store;
    hg_map_init(&m->jobs);
    hg_slab_init(&m->job_slab, sizeof(hg_job_t));
    hg_slab_strings_init(&m->job_strings);
    hg_map_init(&m->unique_keys);
    hg_heap_init(&m->ready);
    hg_timer_init(&m->respawn_timer, hg_master_on_respawn, m);
    hg_timer_init(&m->quit_timer, hg_master_on_quit_timeout, m);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGUSR1);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
        hg_log(HG_LOG_ERROR, "sigprocmask: %s", strerror(errno));
        return HG_ERROR;
    }
    m->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    m->loop = hg_event_loop_create();
    if (m->signal_fd < 0 || m->loop == NULL) {
        hg_log(HG_LOG_ERROR, "cannot create the event loop: %s",
               strerror(errno));
        return HG_ERROR;
    }
    if (hg_event_add(m->loop, &m->signal_ev, m->signal_fd, EPOLLIN,
                     hg_master_on_signal, m) != HG_OK
        || hg_timers_init(&m->wall, m->loop, CLOCK_REALTIME) != HG_OK
        || hg_timers_init(&m->mono, m->loop, CLOCK_MONOTONIC) != HG_OK
        || hg_event_loop_before_wait(m->loop, hg_master_before_wait, m)
           != HG_OK)
    {
        hg_log(HG_LOG_ERROR, "cannot set up the event loop: %s",
               strerror(errno));
        return HG_ERROR;
    }
    m->wall.clock_changed = hg_master_clock_changed;
    m->wall.data = m;
    {
        hg_pool_callbacks_t cb = {
            .ready = hg_master_worker_ready,
            .result = hg_master_worker_result,
            .gone = hg_master_worker_gone,
            .returned = hg_master_worker_returned,
            .request = hg_master_worker_request,
            .other = hg_master_child_reaped
        };
        hg_pool_init(&m->pool, m->loop, &cb, m);
    }
    if (m->store != NULL && m->store->notify_fd >= 0
        && hg_event_add(m->loop, &m->store_ev, m->store->notify_fd, EPOLLIN,
                        hg_master_on_store, m) != HG_OK)
    {
        hg_log(HG_LOG_ERROR, "cannot watch the store: %s", strerror(errno));
        return HG_ERROR;
    }
    hg_log_set_buffered(true);
    hg_cgroup_setup();
    hg_cgroup_warn_limits(cycle->conf, false);
    if (hg_master_apply(m, cycle) != HG_OK) {
        return HG_ERROR;
    }
    hg_cycle_compact(cycle);
    /* Workers first, while the store's threads are idle: recovery sets
     * them writing, and a fork while another thread allocates is a risk
     * with allocators that do not guard fork (AddressSanitizer's). What
     * recovery queues waits for the workers' READY like anything else. */
    hg_master_spawn_workers(m);
    if (hg_master_active_workers(m) == 0) {
        hg_log(HG_LOG_ERROR, "no worker could be started");
        return HG_ERROR;
    }
    if (m->store != NULL) {
        hg_master_recover_executions(m);
        hg_master_recover_misfires(m);
    }
    return HG_OK;
}

int
hg_master_turn(hg_master_t *m, int timeout_ms)
{
    return hg_event_loop_turn(m->loop, timeout_ms);
}

int
hg_master_run(hg_master_t *m)
{
    while (!m->done) {
        if (hg_event_loop_turn(m->loop, -1) < 0) {
            hg_log(HG_LOG_ERROR, "event loop: %s", strerror(errno));
            m->exit_code = 1;
            break;
        }
    }
    return m->exit_code;
}

void
hg_master_cleanup(hg_master_t *m)
{
    const char *key;
    void *value;
    size_t it = 0;
    hg_job_t **jobs;
    size_t n = 0, i;

    /* No worker is replaced from here on. */
    m->stopping = true;
    hg_master_reload_free(m);
    if (m->pool.head != NULL) {
        hg_pool_kill_all(&m->pool, SIGKILL);
    }
    hg_pool_collect(&m->pool);
    hg_cgroup_teardown();
    if (m->loop != NULL) {
        hg_master_drop_queued(m, "daemon exiting");
    }
    while (m->executions.head != NULL) {
        hg_execution_free(m, m->executions.head);
    }
    hg_map_free(&m->unique_keys);
    if (m->store != NULL && m->store_ev.active) {
        hg_event_del(&m->store_ev);
    }
    jobs = calloc(m->jobs.count + 1, sizeof(*jobs));
    while (jobs != NULL && hg_map_next(&m->jobs, &it, &key, &value)) {
        jobs[n++] = value;
    }
    for (i = 0; i < n; i++) {
        hg_timer_cancel(&jobs[i]->timer);
        hg_map_remove(&m->jobs, jobs[i]->id);
        jobs[i]->removed = true;
        if (jobs[i]->refs == 0) {
            hg_job_free(jobs[i]);
        }
    }
    free(jobs);
    hg_map_free(&m->jobs);
    hg_slab_strings_destroy(&m->job_strings);
    hg_slab_destroy(&m->job_slab);
    hg_heap_free(&m->ready);
    if (m->loop != NULL) {
        hg_timers_close(&m->wall);
        hg_timers_close(&m->mono);
        hg_event_loop_destroy(m->loop);
    }
    if (m->signal_fd >= 0) {
        close(m->signal_fd);
    }
    hg_cycle_destroy(m->cycle);
    m->cycle = NULL;
    hg_metrics_free(m->metrics);
    m->metrics = NULL;
    hg_log_flush();
}

hg_job_t *
hg_master_find_job(hg_master_t *m, const char *id)
{
    return hg_map_get(&m->jobs, id);
}
