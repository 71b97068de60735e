/*
 * hg_fire.c: when a job fires, and what a fire creates.
 *
 * It owns each job's timer (wall clock for cron and `at`, monotonic for a
 * fixed rate), the last fire time kept in the store, misfires (fire times
 * passed unrun, by the job's policy), the wall clock's steps, triggers and
 * enqueues (with run_at and unique keys), pausing, and in a cluster the
 * claim of each scheduled fire time, made with its record (a fire waits on
 * m->claiming until the store says whose it is). It never computes a
 * fire time itself (hg_schedule.c does) and hands what it creates to
 * hg_dispatch.c, never to a worker.
 */

#include "hg_core.h"

#include "hg_dispatch.h"
#include "hg_execution.h"
#include "hg_fire.h"
#include "hg_job.h"
#include "hg_journal.h"
#include "hg_log.h"
#include "hg_notice.h"

/* Whether a fire at this time is the cluster's to share: its instances
 * fire the same schedules, and each fire time runs once among them. */
static bool
hg_fire_shared(const hg_master_t *m, const char *trigger)
{
    return m->store != NULL && m->cycle->conf->cluster.enabled
           && (strcmp(trigger, "schedule") == 0
               || strcmp(trigger, "misfire") == 0);
}

/* EXEC waits for its claim, committed with its record (the barrier
 * covers both), before it is admitted. */
static void
hg_fire_claim(hg_master_t *m, hg_execution_t *exec)
{
    if (hg_store_barrier_for(m->store, exec->id, &exec->ticket) != HG_OK) {
        hg_log_event(HG_LOG_ERROR, "store", exec->job->id, exec->id, NULL, 0,
                     "cannot claim the fire time: not run here");
        hg_execution_free(m, exec);
        return;
    }
    exec->claim_ns = hg_clock_ns(CLOCK_MONOTONIC);
    hg_exec_start_join(&m->claiming, exec);
}

void
hg_fire_claimed(hg_master_t *m)
{
    hg_execution_t *exec, *next;
    const char *won[] = { "won" }, *lost[] = { "lost" };

    for (exec = m->claiming.head; exec != NULL; exec = next) {
        next = exec->start.next;
        if (exec->ticket > m->acked) {
            continue;                   /* not committed yet: no failing
                                           store lets a claim through */
        }
        hg_exec_start_leave(exec);
        exec->ticket = 0;
        exec->claim = false;
        hg_metric_observe(m->metric.claim_seconds, NULL,
                          (double) (hg_clock_ns(CLOCK_MONOTONIC)
                                    - exec->claim_ns) / 1e9);
        if (hg_store_claim_lost(m->store, exec->id)) {
            hg_metric_add(m->metric.claims, lost, 1);
            hg_log_event(HG_LOG_DEBUG, "claim", exec->job->id, exec->id,
                         NULL, 0, "fire time held by another instance");
            hg_execution_free(m, exec);
            continue;
        }
        hg_metric_add(m->metric.claims, won, 1);
        hg_dispatch_admit(m, exec, true);
    }
}

static void
hg_fire_exact(hg_master_t *m, hg_job_t *job, int64_t due_ms,
              int64_t due_ns, const char *trigger)
{
    hg_execution_t *exec;

    if (due_ms > job->last_due_ms) {
        job->last_due_ms = due_ms;
    }
    exec = hg_execution_new(m, job, due_ms, 1, trigger);
    if (exec != NULL) {
        exec->claim = hg_fire_shared(m, trigger);
        hg_journal_put(m, exec, HG_EXEC_QUEUED, NULL);
        /* After the execution's record: a restart that sees this fire
         * time as done also finds its execution. */
        if (m->store != NULL) {
            hg_store_put_job_state(m->store, job->id, job->last_due_ms,
                                   job->paused);
        }
        if (due_ns != 0) {
            exec->due_ns = due_ns;
        }
        if (exec->claim) {
            hg_fire_claim(m, exec);
            return;
        }
        hg_dispatch_admit(m, exec, true);
    }
}

static void
hg_fire(hg_master_t *m, hg_job_t *job, int64_t due_ms,
        const char *trigger)
{
    hg_fire_exact(m, job, due_ms, 0, trigger);
}

void
hg_fire_on_run_at(hg_timer_t *timer)
{
    hg_execution_t *exec = timer->data;

    exec->timer.handler = NULL;
    hg_dispatch_admit(exec->job->master, exec, false);
}

/* A new execution of JOB_ID, queued until RUN_AT_MS (0: now), or NULL
 * with errno: ENOENT (no such job), ESHUTDOWN, ENOMEM. */
static hg_execution_t *
hg_fire_new(hg_master_t *m, const char *job_id, const char *trigger,
            const void *payload, size_t payload_len, int64_t run_at_ms,
            hg_priority_t priority)
{
    hg_job_t *job = hg_job_find(m, job_id);
    hg_execution_t *exec;
    int64_t now_ms = hg_now_ms();

    if (job == NULL || m->quitting || m->stopping) {
        errno = job == NULL ? ENOENT : ESHUTDOWN;
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
    if (hg_execution_set_payload(exec, payload, payload_len) != HG_OK) {
        hg_execution_free(m, exec);
        errno = ENOMEM;
        return NULL;
    }
    return exec;
}

hg_execution_t *
hg_fire_enqueue(hg_master_t *m, const char *job_id, const char *trigger,
                const void *payload, size_t payload_len, int64_t run_at_ms,
                hg_priority_t priority, const char *unique_key)
{
    hg_execution_t *exec;

    exec = hg_fire_new(m, job_id, trigger, payload, payload_len, run_at_ms,
                       priority);
    if (exec == NULL) {
        return NULL;
    }
    if (unique_key != NULL && hg_map_get(&m->unique_keys, unique_key)) {
        hg_execution_free(m, exec);
        errno = EEXIST;
        return NULL;
    }
    if (unique_key != NULL) {
        exec->unique_key = strdup(unique_key);
        if (exec->unique_key == NULL
            || hg_map_put(&m->unique_keys, exec->unique_key, exec) != HG_OK)
        {
            hg_execution_free(m, exec);
            errno = ENOMEM;
            return NULL;
        }
    }
    if (run_at_ms > hg_now_ms()) {
        hg_journal_put(m, exec, HG_EXEC_QUEUED, NULL);
        exec->timer.handler = hg_fire_on_run_at;
        hg_timer_set(&m->wall, &exec->timer, run_at_ms * HG_NSEC_PER_MSEC);
        return exec;
    }
    return hg_dispatch_admit(m, exec, false);
}

hg_execution_t *
hg_fire_share(hg_master_t *m, const char *job_id, const char *trigger,
              const void *payload, size_t payload_len, int64_t run_at_ms,
              hg_priority_t priority, const char *unique_key)
{
    /* The loop is one thread: the caller reads the id before any other
     * call can change it. */
    static hg_execution_t handle;
    hg_execution_t *exec;
    bool recorded;

    exec = hg_fire_new(m, job_id, trigger, payload, payload_len, run_at_ms,
                       priority);
    if (exec == NULL) {
        return NULL;
    }
    exec->shared = true;
    /* The key is the cluster's: the store's unique index on pending keys
     * decides, not this instance's memory (the record is then lost, and
     * the enqueue refused, once its transaction commits). */
    if (unique_key != NULL
        && (exec->unique_key = strdup(unique_key)) == NULL)
    {
        hg_execution_free(m, exec);
        errno = ENOMEM;
        return NULL;
    }
    hg_journal_put(m, exec, HG_EXEC_QUEUED, NULL);
    recorded = exec->recorded;
    memcpy(handle.id, exec->id, sizeof(handle.id));
    hg_execution_free(m, exec);
    if (!recorded) {
        errno = ENOMEM;
        return NULL;
    }
    return &handle;
}

hg_execution_t *
hg_fire_retry_dead(hg_master_t *m, const hg_exec_record_t *dead,
                   const char *trigger)
{
    hg_job_t *job = hg_job_find(m, dead->job_id);
    hg_execution_t *exec;

    if (job == NULL || m->quitting || m->stopping) {
        errno = job == NULL ? ENOENT : ESHUTDOWN;
        return NULL;
    }
    exec = hg_execution_new(m, job, hg_now_ms(), dead->attempt + 1,
                            trigger);
    if (exec == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    snprintf(exec->run_id, sizeof(exec->run_id), "%s",
             dead->run_id != NULL ? dead->run_id : dead->id);
    exec->priority = (hg_priority_t) dead->priority;
    if (hg_execution_set_payload(exec, dead->payload, dead->payload_len)
        != HG_OK)
    {
        hg_execution_free(m, exec);
        errno = ENOMEM;
        return NULL;
    }
    return hg_dispatch_admit(m, exec, false);
}

void
hg_fire_on_timer(hg_timer_t *timer)
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
    hg_fire_exact(m, job, due_ms, due_ns, "schedule");
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
    hg_fire_schedule(m, job, due_ms > now_ms ? due_ms : now_ms);
}

void
hg_fire_schedule(hg_master_t *m, hg_job_t *job, int64_t after_ms)
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

void
hg_fire_misfire(hg_master_t *m, hg_job_t *job, const int64_t *missed,
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
        hg_fire(m, job, missed[shown - 1], "misfire");
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
            hg_fire(m, job, missed[i], "misfire");
        }
        break;
    }
}

void
hg_fire_clock_changed(hg_timers_t *set)
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
            hg_fire_misfire(m, job, missed, count,
                            "when the wall clock was stepped forward");
        }
        hg_fire_schedule(m, job, now_ms > job->last_due_ms
                                ? now_ms : job->last_due_ms);
    }
}


/* PEER: a cluster peer's change, which the store holds already. */
static int
hg_fire_pause(hg_master_t *m, const char *job_id, bool paused, bool peer)
{
    hg_job_t *job = hg_job_find(m, job_id);

    if (job == NULL) {
        return HG_AGAIN;
    }
    if (job->paused == paused) {
        return HG_OK;
    }
    if (m->store != NULL && !peer
        && hg_store_put_pause(m->store, job->id, job->last_due_ms, paused)
           != HG_OK)
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
        hg_fire_schedule(m, job, hg_now_ms());
    }
    hg_log_event(HG_LOG_INFO, paused ? "job_paused" : "job_resumed",
                 job->id, NULL, NULL, 0, peer ? "by another instance of the "
                 "cluster" : NULL);
    hg_notice_job(m, job->id, paused ? "paused" : "resumed", NULL);
    return HG_OK;
}

int
hg_fire_set_paused(hg_master_t *m, const char *job_id, bool paused)
{
    return hg_fire_pause(m, job_id, paused, false);
}

void
hg_fire_peer_paused(hg_master_t *m)
{
    json_t *changes, *paused;
    const char *job_id;

    if (m->store == NULL || (changes = hg_store_paused(m->store)) == NULL) {
        return;
    }
    json_object_foreach(changes, job_id, paused) {
        (void) hg_fire_pause(m, job_id, json_is_true(paused), true);
    }
    json_decref(changes);
}



int
hg_fire_next_fires(hg_master_t *m, const char *job_id, int64_t *out,
                   size_t max, size_t *n)
{
    hg_job_t *job = hg_job_find(m, job_id);
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
