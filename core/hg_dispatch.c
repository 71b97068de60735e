/*
 * hg_dispatch.c: the way from admitted to running.
 *
 * It owns the overlap policy, the jitter wait, the ready queue (a heap
 * ordered by priority, then due time), the starting deadline, priming
 * (executions recorded running ahead of a worker while every worker is
 * busy), handing ahead (the next execution's frame sent to a busy worker
 * behind a quick one, taken back when its turn passes), each DISPATCH
 * frame, the timeout timer, the pending and running counts of a job, and
 * taking an execution that waits out of the way to a worker on request.
 * It never decides how an execution ended (hg_outcome.c does) and never
 * sends a frame before the execution's `running` record is durable
 * (hg_journal.c says when).
 */

#include "hg_core.h"

#include "hg_dispatch.h"
#include "hg_execution.h"
#include "hg_fire.h"
#include "hg_job.h"
#include "hg_journal.h"
#include "hg_log.h"
#include "hg_notice.h"
#include "hg_msg.h"
#include "hg_trace.h"
#include "hg_outcome.h"
#include "hg_uuid.h"

/* Executions primed at most (see hg_dispatch_prime_depth). */
#define HG_PRIME_MAX  1024
/* A pool whose executions end closer together than this runs quick
 * ones: a burst of them is primed whole (up to HG_PRIME_MAX). */
#define HG_PRIME_QUICK_NS  1000000.0

static void hg_dispatch_on_turn_passed(hg_timer_t *timer);
static void hg_dispatch_hand_ahead(hg_master_t *m);
static void hg_dispatch_start(hg_master_t *m, hg_execution_t *exec);

static int64_t
hg_dispatch_key(const hg_execution_t *exec)
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

void
hg_dispatch_ready(hg_master_t *m, hg_execution_t *exec)
{
    /* Executions coming out of a jitter or retry wait were counted as
     * pending when the wait began (their timer handler is still set). */
    if (exec->timer.handler == NULL) {
        exec->job->pending++;
    }
    exec->timer.handler = NULL;
    if (hg_heap_push(&m->ready, &exec->ready, hg_dispatch_key(exec))
        != HG_OK)
    {
        exec->job->pending--;
        hg_journal_unrun(m, exec, HG_EXEC_SKIPPED,
                         "out of memory: ready queue full");
        return;
    }
    hg_dispatch_run(m);
}

static void
hg_dispatch_on_timeout(hg_timer_t *timer)
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

static hg_worker_t *
hg_dispatch_idle_worker(hg_master_t *m)
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
hg_dispatch_begin(hg_master_t *m, hg_execution_t *exec)
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
        exec->timer.handler = hg_dispatch_on_timeout;
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
    hg_notice_started(m, exec);
}

/* The execution's DISPATCH frame into its worker's output buffer. */
static int
hg_dispatch_frame(hg_worker_t *w, const hg_execution_t *exec)
{
    const hg_job_t *job = exec->job;
    hg_msg_dispatch_t d;
    char traceparent[HG_TRACEPARENT_LEN];

    memset(&d, 0, sizeof(d));
    d.exec_id = exec->id;
    d.job_id = job->id;
    d.type = job->type;
    d.trigger = exec->trigger;
    if (hg_trace_context(exec->run_id, exec->id, traceparent,
                         sizeof(traceparent)) == HG_OK)
    {
        d.traceparent = traceparent;
    }
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

/* Send a handed execution's frame: the worker starts it when its current
 * execution ends; if that takes longer than its turn, the timer takes it
 * back (if the worker has not read it yet). A frame too large to be
 * taken back whole is not handed: it waits for a worker free. */
static void
hg_dispatch_send_ahead(hg_master_t *m, hg_execution_t *exec)
{
    hg_worker_t *w = exec->worker;

    if (hg_dispatch_frame(w, exec) != HG_OK
        || hg_pool_send_ahead(w, exec) != HG_OK)
    {
        hg_dispatch_hand_back(m, exec);
        return;
    }
    exec->ahead = HG_AHEAD_SENT;
    m->handed_total++;
    exec->timer.handler = hg_dispatch_on_turn_passed;
    hg_timer_set(&m->mono, &exec->timer, hg_clock_ns(CLOCK_MONOTONIC)
                 + m->ahead_turn_ms * HG_NSEC_PER_MSEC);
}

/* Send the execution's frame to the worker held for it (or handed it
 * ahead), then begin it. */
static void
hg_dispatch_start(hg_master_t *m, hg_execution_t *exec)
{
    hg_worker_t *w = exec->worker;
    hg_job_t *job = exec->job;

    if (exec->ahead == HG_AHEAD_WAITING) {
        hg_dispatch_send_ahead(m, exec);
        return;
    }
    if (hg_dispatch_frame(w, exec) != HG_OK
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
        if (hg_heap_push(&m->ready, &exec->ready, hg_dispatch_key(exec))
            != HG_OK)
        {
            job->pending--;
            hg_journal_unrun(m, exec, HG_EXEC_SKIPPED,
                             "out of memory: ready queue full");
        }
        return;
    }
    hg_dispatch_begin(m, exec);
}

/* A primed execution goes back to the queued state it was recorded in
 * before (shutdown), or is about to end without running. */
static void
hg_dispatch_unprime(hg_execution_t *exec)
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
hg_dispatch_start_missed(hg_master_t *m, hg_execution_t *exec)
{
    int64_t limit = exec->job->policy.starting_deadline_ms;

    if (limit <= 0 || hg_now_ms() - exec->scheduled_for_ms <= limit) {
        return false;
    }
    if (exec->start_list != NULL) {
        hg_dispatch_unprime(exec);
    } else {
        hg_heap_remove(&m->ready, &exec->ready);
        exec->job->pending--;
    }
    hg_journal_unrun(m, exec, HG_EXEC_MISSED,
                     "could not start within its starting_deadline");
    return true;
}

/* The execution an idle worker takes next: the first primed one, unless
 * the ready queue has one that comes before it (a higher priority, or an
 * earlier due time, that arrived after the priming). */
static hg_execution_t *
hg_dispatch_next_to_start(hg_master_t *m)
{
    hg_heap_node_t *node = hg_heap_min(&m->ready);
    hg_execution_t *primed = m->primed.head, *ready;

    if (node == NULL) {
        return primed;
    }
    ready = hg_heap_entry(node, hg_execution_t, ready);
    if (primed != NULL && hg_dispatch_key(primed) <= hg_dispatch_key(ready)) {
        return primed;
    }
    return ready;
}

void
hg_dispatch_note_finish(hg_master_t *m)
{
    int64_t now = hg_clock_ns(CLOCK_MONOTONIC);
    double gap;

    if (m->last_finish_ns != 0) {
        gap = (double) (now - m->last_finish_ns);
        /* After a second without a finish the rate before says nothing
         * of the spell that starts (a burst after a quiet night): it is
         * measured again from its own finishes. */
        m->finish_gap_ns = gap > 1e9 ? 0.0
                           : m->finish_gap_ns == 0.0 ? gap
                           : (7.0 * m->finish_gap_ns + gap) / 8.0;
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
 * wait. Quick ones (finishes under HG_PRIME_QUICK_NS apart) are primed
 * up to HG_PRIME_MAX: a burst of them then costs a few commits of a
 * chunk each, written while the workers run the chunk before; sized from
 * the commit delay instead, it went in as many small commits as loop
 * turns, and the pool waited for each.
 */
static size_t
hg_dispatch_prime_depth(hg_master_t *m)
{
    double gap = m->finish_gap_ns, quiet, depth;

    if (m->last_finish_ns == 0 || gap <= 0.0) {
        return 0;
    }
    quiet = (double) (hg_clock_ns(CLOCK_MONOTONIC) - m->last_finish_ns);
    if (quiet > gap) {
        gap = quiet;
    }
    if (gap < HG_PRIME_QUICK_NS) {
        /* Quick executions, many waiting (a burst): record them running
         * all at once, in a few large commits, rather than a few at a
         * time in as many commits as there are loop turns. */
        return HG_PRIME_MAX;
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
hg_dispatch_prime(hg_master_t *m)
{
    hg_heap_node_t *node;
    hg_execution_t *exec;
    size_t depth;

    if (m->store == NULL || m->store->notify_fd < 0 || m->store_degraded
        || m->stopping || m->quitting || hg_heap_min(&m->ready) == NULL)
    {
        return;
    }
    depth = hg_dispatch_prime_depth(m);
    while (m->primed.count < depth
           && (node = hg_heap_min(&m->ready)) != NULL)
    {
        exec = hg_heap_entry(node, hg_execution_t, ready);
        if (hg_dispatch_start_missed(m, exec)) {
            continue;
        }
        hg_heap_remove(&m->ready, node);
        exec->job->pending--;
        hg_journal_mark_running(m, exec);
        hg_exec_start_join(&m->primed, exec);
    }
}

/* EXEC (primed or ready) goes to worker W, held for it: its frame goes
 * now if its `running` record is durable, else once it is. */
static void
hg_dispatch_take(hg_master_t *m, hg_execution_t *exec, hg_worker_t *w)
{
    exec->worker = w;
    if (exec->start_list != NULL) {
        hg_exec_start_leave(exec);
    } else {
        hg_heap_remove(&m->ready, &exec->ready);
        exec->job->pending--;
        hg_journal_mark_running(m, exec);
    }
    if (hg_journal_committed(m, exec)) {
        hg_dispatch_start(m, exec);
    } else {
        hg_exec_start_join(&m->committing, exec);
    }
}

/* The next execution to start that is still in time, or NULL. */
static hg_execution_t *
hg_dispatch_next_in_time(hg_master_t *m)
{
    hg_execution_t *exec;

    while ((exec = hg_dispatch_next_to_start(m)) != NULL
           && hg_dispatch_start_missed(m, exec))
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
hg_dispatch_can_hand(const hg_master_t *m, const hg_worker_t *w)
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
hg_dispatch_hand_ahead(hg_master_t *m)
{
    hg_execution_t *exec;
    hg_worker_t *w;

    if (m->stopping || m->quitting) {
        return;
    }
    for (w = m->pool.head; w != NULL; w = w->next) {
        if (!hg_dispatch_can_hand(m, w)) {
            continue;
        }
        exec = hg_dispatch_next_in_time(m);
        if (exec == NULL) {
            return;
        }
        if (hg_pool_hand(w, exec) != HG_OK) {
            continue;
        }
        exec->ahead = HG_AHEAD_WAITING;
        hg_dispatch_take(m, exec, w);
    }
}

/* Cluster: how many of the shared queue's executions this instance could
 * start now -- its idle workers less what already waits for one -- for
 * the store, which takes that many at most (hg_store_set_capacity).
 * Said whenever the pool or the ready queue moved. */
static void
hg_dispatch_share_room(hg_master_t *m)
{
    hg_worker_t *w;
    size_t idle = 0, waiting;

    if (m->store == NULL || !m->store->shared_queue) {
        return;
    }
    for (w = m->pool.head; w != NULL; w = w->next) {
        idle += w->state == HG_WORKER_IDLE && !w->retiring && w->to_fd >= 0;
    }
    waiting = m->ready.count + m->primed.count + m->claiming.count;
    hg_store_set_capacity(m->store, m->stopping || m->quitting
                                    || idle <= waiting ? 0 : idle - waiting);
}

void
hg_dispatch_run(hg_master_t *m)
{
    hg_execution_t *exec;
    hg_worker_t *w;

    if (hg_journal_peek(m)) {
        hg_dispatch_committed(m);
    }
    while (!m->stopping && (w = hg_dispatch_idle_worker(m)) != NULL
           && (exec = hg_dispatch_next_in_time(m)) != NULL)
    {
        if (hg_pool_reserve(w, exec) != HG_OK) {
            return;
        }
        hg_dispatch_take(m, exec, w);
    }
    hg_dispatch_hand_ahead(m);
    hg_dispatch_prime(m);
    hg_dispatch_share_room(m);
    if (m->store != NULL) {
        hg_store_set_starting(m->store, m->ready.count + m->primed.count
                                        + m->committing.count > 0);
    }
}

void
hg_dispatch_hand_back(hg_master_t *m, hg_execution_t *exec)
{
    hg_timer_cancel(&exec->timer);
    exec->timer.handler = NULL;
    hg_exec_start_leave(exec);          /* waiting for its commit */
    exec->worker = NULL;
    exec->ahead = HG_AHEAD_NONE;
    hg_exec_start_push(&m->primed, exec);
    if (m->stopping || m->quitting) {
        hg_dispatch_drop_primed(m, exec, "daemon shutting down");
    }
}

/* Its turn passed and its worker still runs the execution before it:
 * taken back for another worker, unless the worker has read it. */
static void
hg_dispatch_on_turn_passed(hg_timer_t *timer)
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
    hg_dispatch_hand_back(m, exec);
    hg_dispatch_run(m);
}

void
hg_dispatch_promote(hg_master_t *m, hg_execution_t *exec)
{
    hg_ahead_t ahead = exec->ahead;

    exec->ahead = HG_AHEAD_NONE;
    if (ahead == HG_AHEAD_SENT) {
        hg_timer_cancel(&exec->timer);
        exec->timer.handler = NULL;
        hg_dispatch_begin(m, exec);
    }
}

static void
hg_dispatch_on_jitter(hg_timer_t *timer)
{
    hg_execution_t *exec = timer->data;

    hg_dispatch_ready(exec->job->master, exec);
}

hg_execution_t *
hg_dispatch_admit(hg_master_t *m, hg_execution_t *exec, bool scheduled)
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
            hg_journal_unrun(m, exec, HG_EXEC_SKIPPED,
                             "the previous run is still going "
                             "(overlap = skip)");
            errno = EBUSY;
            return NULL;
        case HG_OVERLAP_QUEUE:
            if (!exec->recorded) {
                hg_journal_put(m, exec, HG_EXEC_QUEUED, NULL);
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
                    hg_dispatch_unprime(cur);
                    hg_journal_unrun(m, cur, HG_EXEC_SKIPPED,
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
        hg_journal_put(m, exec, HG_EXEC_QUEUED, NULL);
    }
    if (scheduled && job->policy.jitter_ms > 0) {
        int64_t delay = (int64_t) (hg_random()
                                   % (uint64_t) (job->policy.jitter_ms + 1));
        job->pending++;
        exec->timer.handler = hg_dispatch_on_jitter;
        hg_timer_set(&m->mono, &exec->timer,
                     hg_clock_ns(CLOCK_MONOTONIC) + delay * HG_NSEC_PER_MSEC);
        return exec;
    }
    hg_dispatch_ready(m, exec);
    return exec;
}

void
hg_dispatch_returned(hg_worker_t *w, void *exec)
{
    hg_execution_t *e = exec;

    hg_log_event(HG_LOG_DEBUG, "returned", e->job->id, e->id, NULL, 0,
                 "worker %d ended before starting it: given to another",
                 (int) w->pid);
    hg_dispatch_hand_back(w->pool->data, e);
}


void
hg_dispatch_drop(hg_master_t *m, hg_execution_t *exec, const char *why)
{
    if (m->store != NULL && exec->recorded) {
        hg_log_event(HG_LOG_INFO, "queued", exec->job->id, exec->id, NULL, 0,
                     "left queued for the next start");
        hg_execution_free(m, exec);
        return;
    }
    hg_journal_unrun(m, exec, HG_EXEC_SKIPPED, why);
}

void
hg_dispatch_drop_primed(hg_master_t *m, hg_execution_t *exec, const char *why)
{
    hg_dispatch_unprime(exec);
    hg_journal_put(m, exec, HG_EXEC_QUEUED, NULL);
    hg_dispatch_drop(m, exec, why);
}

void
hg_dispatch_take_back_all(hg_master_t *m)
{
    hg_execution_t *exec;
    hg_worker_t *w;

    for (w = m->pool.head; w != NULL; w = w->next) {
        exec = w->handed;
        if (exec != NULL && hg_pool_take_back(w, exec)) {
            m->taken_back_total++;
            hg_dispatch_hand_back(m, exec);
        }
    }
}

int
hg_dispatch_stop_job(hg_master_t *m, const char *job_id, size_t *killed)
{
    hg_job_t *job = hg_job_find(m, job_id);
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

void
hg_dispatch_committed(hg_master_t *m)
{
    hg_execution_t *exec, *next;

    /* At most one per worker, walked whole: a primed execution joins it
     * when a worker takes it, its ticket older than those before it. */
    for (exec = m->committing.head; exec != NULL; exec = next) {
        next = exec->start.next;
        if (hg_journal_committed(m, exec)) {
            hg_exec_start_leave(exec);
            hg_dispatch_start(m, exec);
        }
    }
    hg_dispatch_hand_ahead(m);          /* behind those just started */
}

/* --- executions that wait, as the admin API sees them -------------------- */

/* Whether EXEC waits in its job's overlap = queue list: each one there
 * has one after it but the last (asked for each row of a listing, so
 * not by walking the list). */
static bool
hg_dispatch_in_overlap(const hg_execution_t *exec)
{
    return exec->next_waiting != NULL || exec->job->waiting_tail == exec;
}

const char *
hg_dispatch_waiting(const hg_execution_t *exec)
{
    hg_timer_handler_pt h = exec->timer.handler;

    if (exec->worker != NULL) {
        return NULL;                /* on a worker, or on its way to one */
    }
    if (exec->start_list == &exec->job->master->primed) {
        return "primed";
    }
    if (hg_heap_node_queued(&exec->ready)) {
        return "ready";
    }
    if (h == hg_fire_on_run_at || h == hg_outcome_on_retry_timer) {
        return "scheduled";
    }
    if (h == hg_dispatch_on_jitter) {
        return "jitter";
    }
    if (exec->status == HG_EXEC_QUEUED && hg_dispatch_in_overlap(exec)) {
        return "overlap";
    }
    return NULL;
}

/* EXEC leaves its job's overlap = queue list. */
static void
hg_dispatch_unwait(hg_job_t *job, hg_execution_t *exec)
{
    hg_execution_t **p, *prev = NULL;

    for (p = &job->waiting_head; *p != NULL; p = &(*p)->next_waiting) {
        if (*p == exec) {
            *p = exec->next_waiting;
            if (job->waiting_tail == exec) {
                job->waiting_tail = prev;
            }
            exec->next_waiting = NULL;
            return;
        }
        prev = *p;
    }
}

int
hg_dispatch_remove(hg_master_t *m, hg_execution_t *exec, const char *why)
{
    hg_job_t *job = exec->job;
    hg_timer_handler_pt h = exec->timer.handler;
    hg_execution_t *next = NULL;

    if (hg_dispatch_waiting(exec) == NULL) {
        return HG_AGAIN;
    }
    /* Each place keeps its own count: the ready queue and the jitter and
     * backoff waits are the job's pending ones, a primed execution is
     * counted running, a run_at wait and the overlap list in neither. */
    if (exec->start_list != NULL) {
        hg_dispatch_unprime(exec);
    } else if (hg_heap_node_queued(&exec->ready)) {
        hg_heap_remove(&m->ready, &exec->ready);
        job->pending--;
    } else if (h == hg_dispatch_on_jitter || h == hg_outcome_on_retry_timer) {
        job->pending--;
    } else if (h == NULL) {
        hg_dispatch_unwait(job, exec);
    }
    /* What waited behind it for the job to be free goes now, as after a
     * run (hg_outcome.c): taken before the record ends EXEC, which may
     * hold the last reference to a job removed meanwhile. */
    if (job->running == 0 && job->pending == 0 && job->waiting_head != NULL) {
        next = job->waiting_head;
        hg_dispatch_unwait(job, next);
    }
    hg_journal_unrun(m, exec, HG_EXEC_KILLED, why);
    if (next != NULL) {
        hg_dispatch_ready(m, next);
    }
    return HG_OK;
}
