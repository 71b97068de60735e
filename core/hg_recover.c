/*
 * hg_recover.c: what a previous master left unfinished, at start, and
 * what a cluster peer left when this instance took its work over.
 *
 * It owns reading the store once at start: executions found running are
 * recorded crashed and retried per policy, queued ones queued again (a
 * retry waits for its backoff, a run_at for its time), and fire times
 * that passed while no master ran follow each job's misfire policy; jobs
 * without a state start counting from now; @reboot jobs run if this boot
 * has not run them yet. The same treatment applies, while the loop runs,
 * to the executions the store took over from a peer whose lease lapsed
 * (hg_recover_taken), and to those it took from the cluster's shared
 * queue (admitted at once). It never reads the store from the loop: taken
 * rows come with the store's notification.
 */

#include "hg_core.h"

#include "hg_dispatch.h"
#include "hg_execution.h"
#include "hg_fire.h"
#include "hg_job.h"
#include "hg_journal.h"
#include "hg_log.h"
#include "hg_outcome.h"
#include "hg_recover.h"

/* The execution of record R (of JOB) in memory again, the same one
 * under its own id, or NULL (out of memory: said). */
static hg_execution_t *
hg_recover_exec(hg_master_t *m, hg_job_t *job, const hg_exec_record_t *r,
                const char *trigger)
{
    hg_execution_t *exec;

    exec = hg_execution_new(m, job, r->scheduled_for, r->attempt,
                            r->trigger ? r->trigger : trigger);
    if (exec == NULL) {
        return NULL;
    }
    snprintf(exec->id, sizeof(exec->id), "%s", r->id);
    snprintf(exec->run_id, sizeof(exec->run_id), "%s",
             r->run_id ? r->run_id : r->id);
    exec->priority = (hg_priority_t) r->priority;
    exec->run_at_ms = r->run_at;
    (void) hg_execution_set_payload(exec, r->payload, r->payload_len);
    return exec;
}

/* Whether R is the execution of a fire time of its job's schedule. */
static bool
hg_recover_fired(const hg_exec_record_t *r)
{
    return r->trigger != NULL && (strcmp(r->trigger, "schedule") == 0
                                  || strcmp(r->trigger, "misfire") == 0);
}

/* ROWS, unfinished in the store: running ones crashed (WHY) and retried
 * per policy, queued ones queued again. The count of each in *CRASHED
 * and *REQUEUED. */
static void
hg_recover_rows(hg_master_t *m, const hg_exec_row_t *rows, size_t n,
                const char *why, size_t *crashed, size_t *requeued)
{
    size_t i;
    int64_t now_ms = hg_now_ms();

    *crashed = *requeued = 0;
    for (i = 0; i < n; i++) {
        const hg_exec_record_t *r = &rows[i].r;
        hg_job_t *job = hg_job_find(m, r->job_id);
        hg_execution_t *exec;

        if (r->shared) {
            continue;                   /* hg_recover_shared's */
        }
        if (job == NULL) {
            hg_exec_record_t gone = *r;
            gone.status = r->status == HG_EXEC_RUNNING ? HG_EXEC_CRASHED
                                                       : HG_EXEC_SKIPPED;
            gone.finished_at = now_ms;
            gone.error = "its job no longer exists";
            hg_store_put_execution(m->store, &gone);
            continue;
        }
        exec = hg_recover_exec(m, job, r, "schedule");
        if (exec == NULL) {
            continue;
        }
        if (hg_recover_fired(r) && r->scheduled_for > job->last_due_ms) {
            /* Its fire time is done, whatever the job's state says: the
             * store may commit a record that a start waits for ahead of
             * the state behind it (hg_store_writer.c). */
            job->last_due_ms = r->scheduled_for;
        }
        if (r->run_at > r->scheduled_for) {
            exec->due_ns = r->run_at * HG_NSEC_PER_MSEC;  /* a retry's */
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
            result.error = why;
            exec->dispatched_ms = r->started_at;
            hg_outcome_finish(m, exec, &result, HG_FAIL, -1);
            (*crashed)++;
            continue;
        }
        (*requeued)++;
        if (strcmp(exec->trigger, "retry") == 0) {
            /* A retry is the run's own next attempt, not a new run: as
             * when it was made, it waits for its backoff and is not
             * subject to the overlap policy. */
            int64_t wait_ms = exec->run_at_ms > now_ms
                              ? exec->run_at_ms - now_ms : 0;
            job->pending++;
            exec->timer.handler = hg_outcome_on_retry_timer;
            hg_timer_set(&m->mono, &exec->timer,
                         hg_clock_ns(CLOCK_MONOTONIC)
                         + wait_ms * HG_NSEC_PER_MSEC);
        } else if (exec->run_at_ms > now_ms) {
            exec->timer.handler = hg_fire_on_run_at;
            hg_timer_set(&m->wall, &exec->timer,
                         exec->run_at_ms * HG_NSEC_PER_MSEC);
        } else {
            hg_dispatch_admit(m, exec, false);
        }
    }
}

void
hg_recover_executions(hg_master_t *m)
{
    hg_exec_row_t *rows = NULL;
    size_t n = 0, crashed, requeued;

    if (hg_store_load_unfinished(m->store, &rows, &n) != HG_OK) {
        hg_log(HG_LOG_ERROR, "store: cannot read unfinished executions; "
               "nothing recovered");
        return;
    }
    /* Recorded running before its frame went out: whether it started is
     * not known, so it counts as crashed. */
    hg_recover_rows(m, rows, n, "found running at start: the master ended "
                    "while it ran or was about to start it", &crashed,
                    &requeued);
    hg_exec_rows_free(rows, n);
    if (crashed + requeued > 0) {
        hg_log(HG_LOG_WARN, "store: recovered %zu executions: %zu found "
               "running (recorded crashed, retried per policy), %zu queued "
               "again", crashed + requeued, crashed, requeued);
    }
}

/* ROWS taken from the cluster's shared queue (r.shared): due by the
 * database's clock, which decided it, so admitted now whatever this
 * instance's clock says of run_at. A job this instance does not have is
 * recorded skipped (its definition differs here: the same jobs
 * everywhere is the cluster's rule). How many were admitted. */
static size_t
hg_recover_shared(hg_master_t *m, const hg_exec_row_t *rows, size_t n)
{
    size_t i, admitted = 0;

    for (i = 0; i < n; i++) {
        const hg_exec_record_t *r = &rows[i].r;
        hg_job_t *job = hg_job_find(m, r->job_id);
        hg_execution_t *exec;

        if (!r->shared) {
            continue;
        }
        if (job == NULL) {
            hg_exec_record_t gone = *r;
            gone.status = HG_EXEC_SKIPPED;
            gone.finished_at = hg_now_ms();
            gone.error = "its job does not exist on the instance that took it";
            gone.shared = false;
            hg_store_put_execution(m->store, &gone);
            continue;
        }
        exec = hg_recover_exec(m, job, r, "queue");
        if (exec == NULL) {
            continue;                   /* start-up recovery's, then */
        }
        exec->recorded = true;          /* queued, and ours now */
        if (hg_dispatch_admit(m, exec, false) != NULL) {
            admitted++;
        }
    }
    return admitted;
}

void
hg_recover_taken(hg_master_t *m)
{
    hg_exec_row_t *rows;
    size_t n, crashed, requeued, shared;

    if (m->store == NULL || hg_store_taken(m->store, &rows, &n) != HG_OK
        || n == 0)
    {
        return;
    }
    shared = hg_recover_shared(m, rows, n);
    hg_recover_rows(m, rows, n, "its instance stopped renewing its cluster "
                    "lease while it ran: taken over by another instance",
                    &crashed, &requeued);
    hg_exec_rows_free(rows, n);
    if (shared > 0) {
        hg_log(HG_LOG_DEBUG, "cluster: took %zu executions from the shared "
               "queue", shared);
    }
    if (crashed + requeued == 0) {
        return;
    }
    hg_metric_add(m->metric.lease_expired, NULL, (double) (crashed
                                                           + requeued));
    hg_log(HG_LOG_WARN, "cluster: took over %zu executions: %zu found "
           "running (recorded crashed, retried per policy), %zu queued here",
           crashed + requeued, crashed, requeued);
}

/* Jobs the store has no state for yet (never fired: new in the file, or
 * from before states were kept) start counting their fire times now, so
 * that an `at` or a first cron time that passes while the daemon is down
 * is found missed at the next start. */
static void
hg_recover_baseline_states(hg_master_t *m, const json_t *states,
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

/*
 * @reboot: once per boot. The boot is told by the kernel's boot id (a
 * random UUID per boot); the store keeps the last boot a job ran in as a
 * job state under "@reboot/JOB", a name no job id can take (ids have no
 * "@" or "/"), its last_fire being the first 60 bits of the boot id. So a
 * daemon restarted in the same boot finds its own boot there and runs
 * nothing; the first start after a boot runs each @reboot job. A store
 * that forgets (memory) runs them at every start, as cron does.
 */
#define HG_RECOVER_BOOT_ID   "/proc/sys/kernel/random/boot_id"
#define HG_RECOVER_REBOOT    "@reboot/"

static int
hg_recover_boot_key(int64_t *key)
{
    char text[64];
    FILE *f = fopen(HG_RECOVER_BOOT_ID, "re");
    int64_t v = 0;
    size_t i, digits = 0;
    int c;

    if (f == NULL) {
        return HG_ERROR;
    }
    if (fgets(text, sizeof(text), f) == NULL) {
        fclose(f);
        return HG_ERROR;
    }
    fclose(f);
    for (i = 0; text[i] != '\0' && digits < 15; i++) {
        c = text[i];
        if (c == '-') {
            continue;
        }
        if (c >= '0' && c <= '9') {
            v = v * 16 + (c - '0');
        } else if (c >= 'a' && c <= 'f') {
            v = v * 16 + (c - 'a' + 10);
        } else {
            break;
        }
        digits++;
    }
    if (digits < 15) {
        return HG_ERROR;
    }
    *key = v;
    return HG_OK;
}

static void
hg_recover_reboot(hg_master_t *m, const json_t *states)
{
    const char *key;
    void *value;
    size_t it = 0;
    int64_t boot;
    char name[sizeof(HG_RECOVER_REBOOT) + 256];
    json_t *last;

    if (hg_recover_boot_key(&boot) != HG_OK) {
        boot = 0;                       /* no boot id: every start is one */
    }
    while (hg_map_next(&m->jobs, &it, &key, &value)) {
        hg_job_t *job = value;
        if (job->kind != HG_SCHEDULE_CRON || job->cron == NULL
            || !hg_cron_is_reboot(job->cron))
        {
            continue;
        }
        snprintf(name, sizeof(name), HG_RECOVER_REBOOT "%s", job->id);
        last = json_object_get(json_object_get(states, name), "last_fire");
        if (boot != 0 && json_is_integer(last)
            && json_integer_value(last) == boot)
        {
            hg_log_event(HG_LOG_INFO, "reboot", job->id, NULL, NULL, 0,
                         "@reboot: already ran in this boot");
            continue;
        }
        if (!job->enabled || job->paused) {
            continue;
        }
        if (hg_fire_enqueue(m, job->id, "reboot", NULL, 0, 0,
                            job->policy.priority, NULL) == NULL)
        {
            hg_log_event(HG_LOG_WARN, "reboot", job->id, NULL, NULL, 0,
                         "@reboot: could not run at start");
            continue;
        }
        hg_store_put_job_state(m->store, name, boot, false);
    }
}

void
hg_recover_misfires(hg_master_t *m)
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
        hg_job_t *job = hg_job_find(m, id);
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
        last = job->last_due_ms;        /* or a fire found unfinished */
        s = hg_job_sched(job);
        count = hg_schedule_missed(&s, last, now_ms, missed,
                                   HG_NELEMS(missed));
        if (count == 0) {
            continue;
        }
        hg_fire_misfire(m, job, missed, count,
                        "while the daemon was down");
        /* The regular schedule goes on from now, after what was missed. */
        if (hg_job_on_wall_clock(job)) {
            hg_fire_schedule(m, job, now_ms > job->last_due_ms
                                    ? now_ms : job->last_due_ms);
        }
    }
    hg_recover_baseline_states(m, states, now_ms);
    hg_recover_reboot(m, states);
    json_decref(states);
}
