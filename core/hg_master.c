/*
 * hg_master.c: the master's life, and its public surface (hg_master.h).
 *
 * It owns start (the loop, signals, the first cycle applied, workers
 * forked, then recovery), the signals (SIGCHLD, SIGHUP, SIGTERM, SIGINT,
 * SIGQUIT, SIGUSR1), the worker pool's size and respawns, the store's
 * notifications and the store tasks workers ask for, reload (a cycle
 * reader process, a builder thread, then the new cycle applied a slice
 * of jobs at a time) and shutdown, fast or graceful.
 *
 * It never runs job code and never blocks: every wait is the event
 * loop's; every child is reaped with WNOHANG from SIGCHLD. It decides
 * nothing about a single execution: that is the other files' (see
 * hg_master.h for who owns what), which never call back up here.
 *
 * Life of an execution: a job's timer fires or a trigger arrives
 * (hg_fire.c) -> overlap policy, jitter, the ready queue, a worker
 * (hg_dispatch.c, once hg_journal.c has its `running` record durable) ->
 * RESULT, or the worker's death -> status, retry after backoff or dead
 * (hg_outcome.c).
 */

#include "hg_core.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#include "hg_cgroup.h"
#include "hg_cycle_reader.h"
#include "hg_dispatch.h"
#include "hg_execution.h"
#include "hg_fire.h"
#include "hg_ipc.h"
#include "hg_job.h"
#include "hg_journal.h"
#include "hg_log.h"
#include "hg_maintenance.h"
#include "hg_master.h"
#include "hg_outcome.h"
#include "hg_query.h"
#include "hg_recover.h"
#include "hg_meter.h"
#include "hg_worker.h"

static void hg_master_check_done(hg_master_t *m);

#define HG_RESPAWN_MAX_DELAY_MS  5000
#define HG_WORKER_YOUNG_NS       (1000LL * HG_NSEC_PER_MSEC)


/* Store tasks that ended: a query's goes to hg_query.c; a maintenance
 * task's answer goes to the worker that asked if it still runs the same
 * execution (one killed meanwhile, by a timeout or a stop, is gone or runs
 * another, and the answer is dropped). */
static void
hg_master_store_tasks(hg_master_t *m)
{
    hg_maintenance_request_t *req;
    hg_store_task_t *task;
    hg_worker_t *w;
    hg_execution_t *exec;

    while ((task = hg_store_task_done(m->store)) != NULL) {
        if (task->kind == HG_STORE_TASK_QUERY) {
            hg_query_done(m, task);
            continue;
        }
        req = hg_maintenance_of(task);
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

    HG_UNUSED(events);
    hg_journal_ack(m);
    hg_dispatch_committed(m);
    hg_master_store_tasks(m);
}


static void
hg_job_remove(hg_master_t *m, hg_job_t *job)
{
    hg_execution_t *exec;

    hg_timer_cancel(&job->timer);
    job->removed = true;
    job->next_due_ms = 0;
    while ((exec = job->waiting_head) != NULL) {
        job->waiting_head = exec->next_waiting;
        hg_journal_unrun(m, exec, HG_EXEC_SKIPPED,
                         "job removed from the configuration");
    }
    job->waiting_tail = NULL;
    hg_map_remove(&m->jobs, job->id);
    hg_log_event(HG_LOG_INFO, "job_removed", job->id, NULL, NULL, 0, NULL);
    if (job->refs == 0) {
        hg_job_free(job);
    }
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
        job = hg_job_new(m, cj->conf->id, hg_fire_on_timer);
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
        hg_fire_schedule(m, job, hg_now_ms());
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
            hg_fire_schedule(m, job, hg_now_ms() > job->last_due_ms
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
        hg_dispatch_run(m);
    }
}

/* A worker ended: what it ran ends as its death says (hg_outcome.c),
 * and the pool is made whole again, slowly if workers die young. */
static void
hg_master_worker_gone(hg_worker_t *w, void *current, int status,
                      const struct rusage *usage)
{
    hg_master_t *m = w->pool->data;
    hg_execution_t *exec = current;
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
        hg_outcome_worker_gone(m, w, exec, status, usage);
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
    hg_dispatch_run(m);
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
        hg_dispatch_drop_primed(m, exec, why);
    }
    while ((node = hg_heap_pop(&m->ready)) != NULL) {
        exec = hg_heap_entry(node, hg_execution_t, ready);
        exec->job->pending--;
        hg_dispatch_drop(m, exec, why);
    }
    while (hg_map_next(&m->jobs, &it, &key, &value)) {
        hg_job_t *job = value;
        hg_timer_cancel(&job->timer);
        job->next_due_ms = 0;
        while ((exec = job->waiting_head) != NULL) {
            job->waiting_head = exec->next_waiting;
            hg_dispatch_drop(m, exec, why);
        }
        job->waiting_tail = NULL;
    }
    /* Waiting on a timer (jitter, retry, run_at) or on the store. */
    for (exec = m->executions.head; exec != NULL; exec = next) {
        next = exec->all.next;
        if (exec->worker == NULL) {
            if (exec->timer.handler != NULL && exec->job->pending > 0
                && exec->timer.handler != hg_fire_on_run_at)
            {
                exec->job->pending--;
            }
            hg_dispatch_drop(m, exec, why);
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
    hg_dispatch_take_back_all(m);
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

static int
hg_master_init(hg_master_t *m, hg_cycle_t *cycle, const char *conf_file,
               const char *prefix, hg_store_t *store)
{
    sigset_t set;
    struct sigaction sa;

    memset(m, 0, sizeof(*m));
    m->ahead_turn_ms = HG_AHEAD_TURN_MS;
    if (hg_meter_init(m) != HG_OK) {
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
    m->wall.clock_changed = hg_fire_clock_changed;
    m->wall.data = m;
    {
        hg_pool_callbacks_t cb = {
            .ready = hg_master_worker_ready,
            .result = hg_outcome_result,
            .gone = hg_master_worker_gone,
            .returned = hg_dispatch_returned,
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
        hg_recover_executions(m);
        hg_recover_misfires(m);
    }
    return HG_OK;
}

int
hg_master_turn(hg_master_t *m, int timeout_ms)
{
    int rc = hg_event_loop_turn(m->loop, timeout_ms);

    hg_master_check_done(m);
    return rc;
}

int
hg_master_run(hg_master_t *m)
{
    while (!m->done) {
        if (hg_master_turn(m, -1) < 0) {
            hg_log(HG_LOG_ERROR, "event loop: %s", strerror(errno));
            m->exit_code = 1;
            break;
        }
    }
    return m->exit_code;
}

static void
hg_master_cleanup(hg_master_t *m)
{
    const char *key;
    void *value;
    size_t it = 0;
    hg_job_t **jobs;
    size_t n = 0, i;

    /* No worker is replaced from here on. */
    m->stopping = true;
    hg_query_orphan_all(m);
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

/* --- the public surface ------------------------------------------------ */

hg_master_t *
hg_master_create(hg_cycle_t *cycle, const char *conf_file,
                 const char *prefix, hg_store_t *store)
{
    hg_master_t *m = calloc(1, sizeof(*m));

    if (m == NULL) {
        hg_log(HG_LOG_ERROR, "out of memory starting the master");
        hg_cycle_destroy(cycle);
        return NULL;
    }
    if (hg_master_init(m, cycle, conf_file, prefix, store) != HG_OK) {
        hg_master_destroy(m);
        return NULL;
    }
    return m;
}

void
hg_master_destroy(hg_master_t *m)
{
    if (m == NULL) {
        return;
    }
    hg_master_cleanup(m);
    free(m);
}

void
hg_master_observe(hg_master_t *m, hg_master_observer_pt observer, void *data)
{
    m->observer = observer;
    m->observer_data = data;
}

const hg_conf_t *
hg_master_conf(const hg_master_t *m)
{
    return m->cycle->conf;
}

const char *
hg_execution_id(const hg_execution_t *exec)
{
    return exec->id;
}

hg_job_t *
hg_master_find_job(hg_master_t *m, const char *id)
{
    return hg_job_find(m, id);
}

hg_execution_t *
hg_master_enqueue(hg_master_t *m, const char *job_id, const char *trigger,
                  const void *payload, size_t payload_len, int64_t run_at_ms,
                  hg_priority_t priority, const char *unique_key)
{
    return hg_fire_enqueue(m, job_id, trigger, payload, payload_len,
                           run_at_ms, priority, unique_key);
}

hg_execution_t *
hg_master_trigger(hg_master_t *m, const char *job_id, const char *trigger,
                  const void *payload, size_t payload_len,
                  hg_priority_t priority)
{
    return hg_fire_enqueue(m, job_id, trigger, payload, payload_len, 0,
                           priority, NULL);
}

int
hg_master_pause(hg_master_t *m, const char *job_id)
{
    return hg_fire_set_paused(m, job_id, true);
}

int
hg_master_resume(hg_master_t *m, const char *job_id)
{
    return hg_fire_set_paused(m, job_id, false);
}

int
hg_master_stop_job(hg_master_t *m, const char *job_id, size_t *killed)
{
    return hg_dispatch_stop_job(m, job_id, killed);
}

int
hg_master_next_fires(hg_master_t *m, const char *job_id, int64_t *out,
                     size_t max, size_t *n)
{
    return hg_fire_next_fires(m, job_id, out, max, n);
}

int
hg_master_render_metrics(hg_master_t *m, FILE *out)
{
    return hg_meter_render(m, out);
}

/* A query handed to the store; a store without a thread has answered it
 * already, and its answer is given now. */
static int
hg_master_query(hg_master_t *m, hg_query_kind_t kind,
                const hg_query_args_t *args, hg_master_reply_pt reply,
                void *data)
{
    int rc = hg_query_start(m, kind, args, reply, data);

    if (rc == HG_OK && m->store->notify_fd < 0) {
        hg_master_store_tasks(m);
    }
    return rc;
}

int
hg_master_job(hg_master_t *m, const char *job_id, hg_master_reply_pt reply,
              void *data)
{
    hg_query_args_t args = { .job_id = job_id };

    return hg_master_query(m, HG_QUERY_JOB, &args, reply, data);
}

int
hg_master_execution(hg_master_t *m, const char *exec_id,
                    hg_master_reply_pt reply, void *data)
{
    hg_query_args_t args = { .exec_id = exec_id };

    return hg_master_query(m, HG_QUERY_EXECUTION, &args, reply, data);
}

int
hg_master_dead(hg_master_t *m, const char *job_id, size_t limit,
               size_t offset, hg_master_reply_pt reply, void *data)
{
    hg_query_args_t args = { .job_id = job_id, .limit = limit,
                             .offset = offset };

    return hg_master_query(m, HG_QUERY_DEAD, &args, reply, data);
}

int
hg_master_retry_dead(hg_master_t *m, const char *exec_id,
                     const char *job_id, int64_t before,
                     const char *trigger, hg_master_reply_pt reply,
                     void *data)
{
    hg_query_args_t args = { .exec_id = exec_id, .job_id = job_id,
                             .before = before, .trigger = trigger };

    return hg_master_query(m, HG_QUERY_RETRY, &args, reply, data);
}

int
hg_master_purge_dead(hg_master_t *m, const char *exec_id,
                     const char *job_id, int64_t before,
                     hg_master_reply_pt reply, void *data)
{
    hg_query_args_t args = { .exec_id = exec_id, .job_id = job_id,
                             .before = before };

    return hg_master_query(m, HG_QUERY_PURGE, &args, reply, data);
}
