/*
 * hg_master.c: the master's life, and its public surface (hg_master.h).
 *
 * It owns start (the loop, signals, the first cycle applied, workers
 * forked, then recovery), the signals (SIGCHLD, SIGHUP, SIGTERM, SIGINT,
 * SIGQUIT, SIGUSR1), the worker pool's size and respawns (made whole
 * after every turn of the loop), the store's notifications and the store
 * tasks workers ask for, and shutdown, fast or graceful; a reload it
 * starts, and hg_reload.c carries out.
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
#include "hg_jobdef.h"
#include "hg_master.h"
#include "hg_outcome.h"
#include "hg_query.h"
#include "hg_recover.h"
#include "hg_reload.h"
#include "hg_service.h"
#include "hg_meter.h"
#include "hg_notify.h"
#include "hg_otlp.h"
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

static void hg_master_stop(hg_master_t *m);

/* Cluster: another instance took this one's work over (its lease lapsed
 * while it was paused or cut off, or a second process joined under its
 * name). Nothing more may start here, and what runs is another's now:
 * a fast stop with status 1, for the service manager to start a fresh
 * instance that joins under a new term -- as Kubernetes' controllers exit
 * when they lose their leader lease. */
static void
hg_master_fenced(hg_master_t *m)
{
    char why[256];

    if (m->stopping || !hg_store_fenced(m->store, why, sizeof(why))) {
        return;
    }
    hg_log(HG_LOG_ERROR, "%s; stopping (exit status 1)", why);
    m->exit_code = 1;
    hg_master_stop(m);
}

/* The store committed up to some ticket (or writes are failing): start
 * the executions whose `running` record is durable. */
static void
hg_master_on_store(hg_event_t *ev, uint32_t events)
{
    hg_master_t *m = ev->data;

    HG_UNUSED(events);
    hg_journal_ack(m);
    hg_master_fenced(m);
    hg_fire_claimed(m);
    hg_fire_peer_paused(m);
    hg_jobdef_peer(m);
    hg_recover_taken(m);
    hg_dispatch_committed(m);
    hg_master_store_tasks(m);
}


/* Workers of this generation that are not leaving. One that is gone but
 * not reaped yet still counts: its replacement is forked once its death
 * is known (hg_master_worker_gone), which decides whether it died young
 * and the replacement waits (the growing respawn delay). */
static size_t
hg_master_active_workers(hg_master_t *m)
{
    hg_worker_t *w;
    size_t n = 0;

    for (w = m->pool.head; w != NULL; w = w->next) {
        if (!w->retiring && w->generation == m->pool.generation)
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
    bool quiet;

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
    /* A worker retired, or leaving because the daemon stops, is no news:
     * a normal shutdown writes no warning per worker. */
    quiet = strcmp(reason, "retire") == 0
            || ((m->stopping || m->quitting)
                && (strcmp(reason, "stop") == 0
                    || strcmp(reason, "exit") == 0));
    if (!quiet || hg_log_enabled(HG_LOG_DEBUG)) {
        hg_log_field_t fields[] = {
            HG_LOG_INT("worker", w->pid),
            HG_LOG_STR("reason", reason),
            HG_LOG_INT("status", WIFEXITED(status) ? WEXITSTATUS(status)
                                                   : -WTERMSIG(status)),
        };
        hg_log_event(quiet ? HG_LOG_DEBUG : HG_LOG_WARN, "worker_exit",
                     NULL, NULL, fields,
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
    hg_service_stopping();
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
    hg_service_stopping();
    hg_master_drop_queued(m, "daemon stopping");
    hg_pool_kill_all(&m->pool, SIGKILL);
    m->done = true;
}


/* The pool reaped a child of ours that is no worker. */
static void
hg_master_child_reaped(hg_pool_t *pool, pid_t pid, int status)
{
    (void) hg_reload_reaped(pool->data, pid, status);
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
    if (m->store != NULL) {
        hg_store_flush(m->store);
    }
    hg_log_flush();
}

static int
hg_master_init(hg_master_t *m, hg_cycle_t *cycle, const char *conf_file,
               const char *prefix, hg_store_t *store)
{
    sigset_t set;
    struct sigaction sa;

    memset(m, 0, sizeof(*m));
    m->cycle = cycle;               /* the master's from here: freed with it */
    m->ahead_turn_ms = HG_AHEAD_TURN_MS;
    m->started_ms = hg_now_ms();
    if (hg_meter_init(m) != HG_OK) {
        hg_log(HG_LOG_ERROR, "out of memory for the metrics");
        return HG_ERROR;
    }
    hg_exec_list_init(&m->executions, offsetof(hg_execution_t, all));
    hg_exec_list_init(&m->committing, offsetof(hg_execution_t, start));
    hg_exec_list_init(&m->primed, offsetof(hg_execution_t, start));
    hg_exec_list_init(&m->claiming, offsetof(hg_execution_t, start));
    m->conf_file = conf_file;
    m->prefix = prefix;
    m->workers = cycle->conf->workers;
    m->signal_fd = -1;
    m->store = store;
    if (store != NULL) {
        hg_store_gather(store);     /* flushed before each wait */
    }
    /* The jobs defined through the API: the cycle has them already (the
     * start read them from the store too); these are what a reload hands
     * the reader. */
    if (store != NULL ? hg_store_load_jobs(store, &m->api_jobs) != HG_OK
                      : (m->api_jobs = json_object()) == NULL)
    {
        hg_log(HG_LOG_ERROR, "cannot read the jobs defined through the API "
               "from the store");
        return HG_ERROR;
    }
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
    if (hg_reload_apply_all(m, cycle) != HG_OK) {
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

/* A reload asked for while the reader was busy, the peers' changes
 * refused before a reload that applied (checked again), then the next
 * job command: one at a time, as each needs the reader and the job set. A
 * store without a thread answers a command's write at once, and the next
 * command may go then. */
static void
hg_master_next_change(hg_master_t *m)
{
    do {
        if (m->store != NULL && m->store->notify_fd < 0) {
            hg_master_store_tasks(m);
        }
        if (m->reload_again && m->reload == NULL && !hg_jobdef_busy(m)
            && !m->stopping && !m->quitting)
        {
            m->reload_again = false;
            hg_reload_start(m);
        }
        if (m->peer_retry_due && m->reload == NULL) {
            m->peer_retry_due = false;
            hg_jobdef_peer_retry(m);
        }
    } while (hg_jobdef_pump(m));
}

int
hg_master_turn(hg_master_t *m, int timeout_ms)
{
    int rc = hg_event_loop_turn(m->loop, timeout_ms);

    /* Level-triggered, as nginx's master: whatever the turn did (a
     * worker gone, a reload's new generation, a reader done), the pool
     * is made whole, what waited for the reader goes, and a graceful
     * stop that has nothing left is done. */
    hg_master_spawn_workers(m);
    hg_master_next_change(m);
    hg_master_check_done(m);
    return rc;
}

int
hg_master_run(hg_master_t *m)
{
    /* The caller has the API listening by now (hg_api_open). */
    if (hg_service_ready(&m->mono, m->jobs.count) != HG_OK) {
        hg_log(HG_LOG_WARN, "cannot arm the watchdog: out of memory");
    }
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
    hg_reload_free(m);
    hg_jobdef_free_all(m);
    json_decref(m->api_jobs);
    m->api_jobs = NULL;
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
    hg_notify_free(m);
    hg_otlp_free(m);
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
        hg_job_remove(m, jobs[i]);
        jobs[i]->removed = true;
        if (jobs[i]->refs == 0) {
            hg_job_free(jobs[i]);
        }
    }
    free(jobs);
    hg_job_order_free(m);
    hg_map_free(&m->jobs);
    hg_slab_strings_destroy(&m->job_strings);
    hg_slab_destroy(&m->job_slab);
    hg_heap_free(&m->ready);
    if (m->loop != NULL) {
        hg_service_close();
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

int
hg_master_reload(hg_master_t *m)
{
    /* A job command in flight would be undone by a cycle read without
     * it: the reload follows it. */
    if (hg_jobdef_busy(m)) {
        hg_log(HG_LOG_INFO, "reload requested while a job change is under "
               "way: it follows");
        m->reload_again = true;
        return HG_AGAIN;
    }
    return hg_reload_start(m);
}

int
hg_master_put_job(hg_master_t *m, const json_t *definition, bool create,
                  const char *actor, hg_master_reply_pt reply, void *data)
{
    return hg_jobdef_submit(m, create ? HG_JOBDEF_CREATE : HG_JOBDEF_REPLACE,
                            NULL, definition, actor, reply, data);
}

int
hg_master_patch_job(hg_master_t *m, const char *job_id, const json_t *patch,
                    const char *actor, hg_master_reply_pt reply, void *data)
{
    if (job_id == NULL) {
        return HG_ERROR;
    }
    return hg_jobdef_submit(m, HG_JOBDEF_PATCH, job_id, patch, actor, reply,
                            data);
}

int
hg_master_delete_job(hg_master_t *m, const char *job_id, const char *actor,
                     hg_master_reply_pt reply, void *data)
{
    if (job_id == NULL) {
        return HG_ERROR;
    }
    return hg_jobdef_submit(m, HG_JOBDEF_DELETE, job_id, NULL, actor, reply,
                            data);
}

int
hg_master_import_jobs(hg_master_t *m, const json_t *definitions,
                      const char *actor, hg_master_reply_pt reply, void *data)
{
    return hg_jobdef_submit(m, HG_JOBDEF_IMPORT, NULL, definitions, actor,
                            reply, data);
}

json_t *
hg_master_export_jobs(hg_master_t *m)
{
    return hg_jobdef_export(m);
}

static bool
hg_master_due_within(const hg_timers_t *set, int64_t within_ns)
{
    const hg_heap_node_t *top = hg_heap_min(&set->heap);

    return top != NULL && top->key - hg_clock_ns(set->clock) < within_ns;
}

bool
hg_master_busy(hg_master_t *m, int64_t within_ns)
{
    return m->ready.count + m->primed.count > 0
           || hg_master_due_within(&m->wall, within_ns)
           || hg_master_due_within(&m->mono, within_ns);
}

json_t *
hg_master_status(hg_master_t *m)
{
    return hg_meter_status(m);
}

json_t *
hg_master_stats(hg_master_t *m)
{
    return hg_meter_stats(m);
}

json_t *
hg_master_health(hg_master_t *m, bool *well)
{
    return hg_meter_health(m, well);
}

void
hg_master_on_notice(hg_master_t *m, hg_master_notice_pt notice, void *data)
{
    m->notice = notice;
    m->notice_data = data;
}

hg_event_loop_t *
hg_master_loop(hg_master_t *m)
{
    return m->loop;
}

bool
hg_master_reloading(const hg_master_t *m)
{
    return hg_reload_running(m);
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
    if (m->store != NULL && m->store->shared_queue) {
        return hg_fire_share(m, job_id, trigger, payload, payload_len,
                             run_at_ms, priority, unique_key);
    }
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
hg_master_executions(hg_master_t *m, const char *job_id, const char *status,
                     int64_t since, int64_t until, size_t limit,
                     size_t offset, hg_master_reply_pt reply, void *data)
{
    hg_query_args_t args;
    hg_exec_status_t st;

    if (status != NULL && hg_exec_status_parse(status, &st) != HG_OK) {
        return HG_ERROR;
    }
    memset(&args, 0, sizeof(args));
    args.job_id = job_id;
    args.status = status;
    args.since = since;
    args.until = until;
    args.limit = limit;
    args.offset = offset;
    return hg_master_query(m, HG_QUERY_EXECUTIONS, &args, reply, data);
}

int
hg_master_job(hg_master_t *m, const char *job_id, hg_master_reply_pt reply,
              void *data)
{
    hg_query_args_t args = { .job_id = job_id };

    return hg_master_query(m, HG_QUERY_JOB, &args, reply, data);
}

int
hg_master_jobs(hg_master_t *m, const hg_job_filter_t *filter, size_t limit,
               size_t offset, hg_master_reply_pt reply, void *data)
{
    hg_query_args_t args = { .filter = filter, .limit = limit,
                             .offset = offset };

    return hg_master_query(m, HG_QUERY_JOBS, &args, reply, data);
}

int
hg_master_execution(hg_master_t *m, const char *exec_id,
                    hg_master_reply_pt reply, void *data)
{
    hg_query_args_t args = { .exec_id = exec_id };

    return hg_master_query(m, HG_QUERY_EXECUTION, &args, reply, data);
}

int
hg_master_enqueued(hg_master_t *m, const char *exec_id,
                   hg_master_reply_pt reply, void *data)
{
    hg_query_args_t args = { .exec_id = exec_id, .keyed = true };

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

json_t *
hg_master_queue(hg_master_t *m, const char *job_id, size_t limit,
                size_t offset)
{
    return hg_query_queue(m, job_id, limit, offset);
}

int
hg_master_queue_read(hg_master_t *m, const char *job_id, size_t limit,
                     size_t offset, hg_master_reply_pt reply, void *data)
{
    hg_query_args_t args;
    json_t *mine;

    if (m->store == NULL || !m->store->shared_queue) {
        return HG_AGAIN;
    }
    mine = hg_query_queue(m, job_id, 0, 0);
    if (mine == NULL) {
        return HG_ERROR;
    }
    memset(&args, 0, sizeof(args));
    args.job_id = job_id;
    args.limit = limit;
    args.offset = offset;
    args.local = (size_t) json_integer_value(json_object_get(mine, "total"));
    json_decref(mine);
    return hg_master_query(m, HG_QUERY_QUEUE, &args, reply, data);
}

int
hg_master_dequeue(hg_master_t *m, const char *exec_id, const char *actor,
                  char *job, size_t joblen, hg_master_reply_pt reply,
                  void *data)
{
    hg_query_args_t args;
    hg_execution_t *exec;
    char why[256];

    if (m->store == NULL) {
        return HG_ERROR;
    }
    memset(&args, 0, sizeof(args));
    args.exec_id = exec_id;
    for (exec = m->executions.head; exec != NULL; exec = exec->all.next) {
        if (strcmp(exec->id, exec_id) == 0) {
            break;
        }
    }
    if (exec != NULL) {
        snprintf(job, joblen, "%s", exec->job->id);
        snprintf(why, sizeof(why), "removed from the queue by %s", actor);
        if (hg_dispatch_remove(m, exec, why) != HG_OK) {
            return HG_REPLY_STARTED;
        }
        args.removed = true;
    } else if (m->store->shared_queue) {
        /* Not here: in a cluster it may wait unowned in the database, for
         * the store to take out while no instance has taken it. */
        args.shared = true;
        args.trigger = actor;
        args.before = hg_now_ms();
    }
    /* Answered once the store has committed what was put before: the
     * record that ends it (a kill -9 after the answer must not run it),
     * or what became of one that was not in the queue. */
    return hg_master_query(m, HG_QUERY_DEQUEUED, &args, reply, data);
}
