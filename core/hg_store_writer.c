/*
 * hg_store_writer.c owns the machinery every store driver with I/O shares
 * (see hg_store_writer.h): the queue of records, the writer thread and
 * its batches, barrier tickets and notify_fd, failure episodes and the
 * bounded backlog, the rescue of a moved file at close, the lines its
 * threads queue, and the maintenance thread with its task lists.
 *
 * It must never open a database or hold SQL (that is the backend's), never
 * call hg_log from its threads, and never hold its mutex across a backend
 * call: the master's puts take that mutex.
 *
 * The writer takes everything queued and hands it to the backend as ONE
 * transaction, then publishes the highest barrier ticket issued before it
 * took the queue and writes to an eventfd (store->notify_fd) so the
 * master's epoll wakes; hg_store_ack drains it. While the backend
 * commits, new puts collect in the queue for the next transaction:
 * batching follows load by itself, with no timer. A caller that gathers
 * (the master's loop, hg_store_gather) does not wake the writer for each
 * put, only at its flush (once a loop turn, before it waits), at a
 * barrier or with a query: a burst of fires reaches the writer as one
 * batch, where a wake per put had it commit them one by one, contending
 * for the lock with the loop that put them. The last ticket committed
 * can be read without the lock (hg_store_writer_peek).
 *
 * Starts first. A barrier for one record (hg_store_writer_barrier_for:
 * an execution's start, or a fire's claim, waits for it) moves that
 * record ahead of the records nobody waits for -- finals, queued fires
 * -- under a ticket between the last moved record's and the next one's
 * (puts are HG_SW_GAP tickets apart), so the queue stays in ticket order
 * and a ticket still means "everything up to here is durable". With a
 * backend that commits in chunks (SQLite), a transaction then takes the
 * moved records alone, and the others are held back while starts keep
 * coming (hg_sw_hold_until): a burst of a thousand fires commits the
 * starts first, each fire's queued record is mostly overwritten in place
 * by its running one before it is ever written, and the finals follow
 * the burst. Held records are bounded: never past HG_SW_HOLD_MAX_MS,
 * never once a barrier or a query waits for them. A job's state goes in
 * the transaction that holds the records queued before it (a restart
 * that sees a fire time as done finds its execution); a moved running
 * record may go ahead of its job's state, which recovery allows for
 * (hg_recover.c takes a fire found unfinished as done).
 *
 * Faults. When a transaction fails, its records go back to the front of
 * the queue (a newer put of the same id wins); the writer retries with a
 * backoff that doubles up to retry_max_ms (1 s); one log line opens the
 * episode and one closes it when a commit succeeds again. No ticket is
 * acknowledged during an episode. Puts never block: the queue keeps up to
 * queue_limit records (100,000) -- later puts of an id replace the earlier
 * one in place, so a running record never waits beside its final one --
 * and beyond that the oldest records are dropped, counted (health:
 * dropped) and logged once. Recovering, the writer commits the backlog in
 * chunks of HG_SW_CHUNK records: a little room freed on a full disk lets
 * part of it through at once, where one transaction of everything would
 * fail for ever. Tickets are acknowledged when the backlog is drained.
 *
 * A file moved away (HG_STORE_WRITE_MOVED) is such a fault: records are
 * kept in memory and, at close, once the backend has reopened the path
 * with every connection to the old file closed, written there.
 *
 * The maintenance thread runs hg_store_task's tasks and, when a commit
 * asks (hg_store_writer_want_checkpoint), the backend's checkpoint: the
 * work a commit would otherwise leave to the one that crosses a mark,
 * fsyncs included, done where no barrier waits for it.
 *
 * Threads and signals: the writer and maintenance threads block every
 * signal, so that the master's signalfd sees them all. Both start in
 * hg_store_writer_start, which returns once they wait for work: a thread
 * started later, or still starting, could hold an allocator lock while
 * the master forks.
 */

#include "hg_core.h"

#include <pthread.h>
#include <sys/eventfd.h>

#include "hg_log.h"
#include "hg_store_writer.h"

#define HG_SW_QUEUE_LIMIT     100000
#define HG_SW_RETRY_MAX_MS    1000
#define HG_SW_CHUNK           1000  /* records per transaction in recovery */
/* Tickets of successive puts are this far apart, leaving room below each
 * queued record for those a barrier moves ahead of it (hg_sw_hasten). */
#define HG_SW_GAP             (UINT64_C(1) << 16)
/* While executions wait to start, the records nobody waits for (finals,
 * queued fires) are held back: behind every record a barrier moves
 * ahead, and not written at all while the master says executions wait
 * (hg_store_writer_set_starting) -- but never once the oldest of them
 * has waited HG_SW_HOLD_MAX_MS. See hg_sw_hasten and hg_sw_hold_until. */
#define HG_SW_HOLD_MAX_MS     100

struct hg_store_writer_s {
    const hg_store_backend_t *ops;
    void *be;
    char *name;
    size_t queue_limit;
    int64_t retry_max_ms;
    int notify_fd;

    pthread_t writer;
    bool writer_started;
    bool writer_parked;             /* reached its first wait */
    pthread_t maintainer;
    bool maintainer_started;
    bool maintainer_parked;         /* reached its first wait */
    pthread_mutex_t mu;
    pthread_cond_t cond;            /* the writer's; CLOCK_MONOTONIC */
    pthread_cond_t tasks_cond;      /* the maintenance thread's */
    bool query_waits;               /* it waits on tasks_cond for a commit */

    /* The writer thread's own: claims lost in the transaction it
     * commits now (hg_store_writer_lose). */
    char **losing;
    size_t nlosing, losing_cap;

    /* Everything below is under mu. */
    hg_store_batch_t q;
    size_t in_flight;               /* records in the writer's transaction */
    uint64_t seq;                   /* the last put's ticket: a put queues
                                       its record under seq + HG_SW_GAP (a
                                       record replaced in place keeps its
                                       own) */
    hg_store_item_t *urgent_tail;   /* the last record moved ahead, or
                                       NULL: the queue's head up to it is
                                       what starts wait for */
    bool starting;                  /* the master's: executions wait to
                                       start (atomic, outside mu) */
    bool holding;                   /* the writer holds records back */
    uint64_t wanted;                /* the highest ticket a barrier or a
                                       query waits for: never held */
    uint64_t batch_ticket;          /* the ticket of the last batch taken */
    uint64_t committed;             /* the last ticket made durable */
    hg_map_t lost;                  /* ids whose claim was lost; keys
                                       owned (value = key) */
    hg_exec_row_t *taken;           /* another instance's, now ours */
    size_t ntaken;
    char fenced[256];               /* why this instance was fenced, or "" */
    json_t *view;                   /* the tick's picture of the cluster */
    int64_t lead_until;             /* monotonic ms until which the view's
                                       "leader" holds (0: no deadline) */
    json_t *paused;                 /* peers' pauses: {job: bool}, or NULL */
    json_t *jobs;                   /* peers' API jobs: {job: record or
                                       null (deleted)}, or NULL */
    size_t capacity;                /* the master's free workers (atomic,
                                       outside mu) */
    int64_t next_tick;              /* monotonic ms of the backend's tick */
    bool stop;
    bool idle;                      /* the writer waits for work: a put
                                       reaches it only by waking it */
    bool gathering;                 /* puts wait for hg_store_flush */
    bool unflushed;                 /* put since the last wake */
    bool failing;                   /* an episode of failed writes */
    int64_t fail_since;             /* monotonic ms */
    uint64_t fail_attempts;
    struct timespec retry_at;
    uint64_t write_errors;
    uint64_t written;
    uint64_t dropped, episode_dropped;
    bool drop_logged;
    char last_error[256];
    bool error_changed;             /* last_error not yet seen by ack */
    hg_store_logline_t *lines;      /* for hg_store_ack to log */
    uint64_t limit;                 /* test hook; 0 = none */
    bool limit_changed;             /* a new limit: apply it now */
    bool limit_retry;               /* applying it failed: with the next try */
    size_t recovered;               /* committed in chunks this episode */
    bool moved;                     /* the file left its path (writer's) */
    bool checkpoint_wanted;         /* for the maintenance thread */
    hg_store_tasks_t tasks;         /* for the maintenance thread */
    hg_store_tasks_t done;          /* for hg_store_task_done */
};

/* The writer of the writer and maintenance threads
 * (hg_store_writer_self). */
static __thread hg_store_writer_t *hg_sw_self;

static int64_t
hg_sw_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
hg_sw_notify(hg_store_writer_t *w)
{
    uint64_t one = 1;

    /* EAGAIN means the counter is already non-zero: the master will wake
     * anyway. */
    while (write(w->notify_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
}

/* --- the queue ----------------------------------------------------------- */

static void
hg_sw_queue_init(hg_store_batch_t *q)
{
    q->head = q->tail = NULL;
    q->count = 0;
    hg_map_init(&q->ids);
    hg_map_init(&q->states);
}

static void
hg_sw_item_free(hg_store_item_t *item)
{
    hg_exec_row_free(&item->row);
    free(item);
}

static void
hg_sw_queue_free(hg_store_batch_t *q)
{
    hg_store_item_t *item, *next;

    for (item = q->head; item != NULL; item = next) {
        next = item->next;
        hg_sw_item_free(item);
    }
    hg_map_free(&q->ids);
    hg_map_free_values(&q->states);
    hg_sw_queue_init(q);
}

static void
hg_sw_unlink(hg_store_batch_t *q, hg_store_item_t *item)
{
    if (item->prev != NULL) {
        item->prev->next = item->next;
    } else {
        q->head = item->next;
    }
    if (item->next != NULL) {
        item->next->prev = item->prev;
    } else {
        q->tail = item->prev;
    }
    item->prev = item->next = NULL;
    q->count--;
}

/* Links ITEM at one end of Q's list (not its index). */
static void
hg_sw_link(hg_store_batch_t *q, hg_store_item_t *item, bool front)
{
    if (front) {
        item->prev = NULL;
        item->next = q->head;
        if (q->head != NULL) {
            q->head->prev = item;
        } else {
            q->tail = item;
        }
        q->head = item;
    } else {
        item->next = NULL;
        item->prev = q->tail;
        if (q->tail != NULL) {
            q->tail->next = item;
        } else {
            q->head = item;
        }
        q->tail = item;
    }
    q->count++;
}

static int
hg_sw_push(hg_store_batch_t *q, hg_store_item_t *item, bool front)
{
    if (hg_map_put(&q->ids, item->row.r.id, item) != HG_OK) {
        return HG_ERROR;
    }
    hg_sw_link(q, item, front);
    return HG_OK;
}

/* Under mu: drops the oldest records beyond queue_limit. Returns the id
 * and job of the first one dropped, for the caller's log line, in
 * what/whatlen (empty when nothing was dropped or the drop was already
 * logged in this episode). */
static void
hg_sw_trim(hg_store_writer_t *w, char *what, size_t whatlen)
{
    hg_store_item_t *oldest;

    what[0] = '\0';
    while (w->q.count > w->queue_limit && w->q.head != NULL) {
        oldest = w->q.head;
        if (!w->drop_logged) {
            w->drop_logged = true;
            snprintf(what, whatlen, "execution %s of job %s (%s)",
                     oldest->row.r.id, oldest->row.r.job_id,
                     hg_exec_status_name(oldest->row.r.status));
        }
        hg_map_remove(&w->q.ids, oldest->row.r.id);
        hg_sw_unlink(&w->q, oldest);
        if (oldest == w->urgent_tail) {
            w->urgent_tail = NULL;
        }
        hg_sw_item_free(oldest);
        w->dropped++;
        w->episode_dropped++;
    }
}

/* Under mu: puts a batch whose transaction failed back in front of what
 * was queued meanwhile; a record queued meanwhile for the same id is
 * newer and wins. */
static void
hg_sw_requeue(hg_store_writer_t *w, hg_store_batch_t *batch)
{
    hg_store_item_t *item, *prev;
    size_t i = 0;
    const char *key;
    void *value;
    char what[256];

    while (hg_map_next(&batch->states, &i, &key, &value)) {
        hg_store_state_t *st = value, *newer;
        newer = hg_map_get(&w->q.states, st->job_id);
        if (newer != NULL) {
            newer->pause |= st->pause;  /* a pause is not lost with it */
        }
        if (newer != NULL
            || hg_map_put(&w->q.states, st->job_id, st) != HG_OK)
        {
            free(st);
        }
    }
    for (item = batch->tail; item != NULL; item = prev) {
        prev = item->prev;
        if (hg_map_get(&w->q.ids, item->row.r.id) != NULL
            || hg_sw_push(&w->q, item, true) != HG_OK)
        {
            if (hg_map_get(&w->q.ids, item->row.r.id) == NULL) {
                w->dropped++;           /* out of memory for the index */
                w->episode_dropped++;
            }
            hg_sw_item_free(item);
        }
    }
    hg_map_free(&batch->ids);
    hg_map_free(&batch->states);
    hg_sw_queue_init(batch);
    w->urgent_tail = NULL;              /* the region is no longer ahead */
    hg_sw_trim(w, what, sizeof(what));
    if (what[0] != '\0') {
        hg_store_logline_add(&w->lines, HG_LOG_ERROR, "store: more than %zu "
                             "records wait for %s: dropping the oldest, "
                             "starting with %s", w->queue_limit, w->name,
                             what);
    }
}

/* Under mu (or with the writer stopped): moves the job states whose
 * tickets are at most TICKET into BATCH: each state goes with the
 * records queued before it (a restart that sees a fire time as done also
 * finds its execution). A state the batch cannot index stays queued. */
static void
hg_sw_take_states(hg_store_writer_t *w, hg_store_batch_t *batch,
                  uint64_t ticket)
{
    hg_store_state_t *st;
    const char *key;
    void *value;
    size_t i = 0;

    while (hg_map_next(&w->q.states, &i, &key, &value)) {
        st = value;
        if (st->seq > ticket
            || hg_map_put(&batch->states, st->job_id, st) != HG_OK)
        {
            continue;
        }
        hg_map_remove(&w->q.states, st->job_id);
    }
}

/* Whether ITEM has been held back as long as records may be
 * (HG_SW_HOLD_MAX_MS): hg_sw_hold_until holds the queue no longer, and
 * hg_sw_take mixes it into the chunk of the moved records. */
static bool
hg_sw_held_long(const hg_store_item_t *item)
{
    return hg_sw_mono_ms() - item->put_ms >= HG_SW_HOLD_MAX_MS;
}

/* Under mu (or with the writer stopped): moves the oldest records of the
 * queue into BATCH, at most LIMIT of them (0 = all), and the job states
 * they cover. Returns whether the queue is empty after. */
static bool
hg_sw_take(hg_store_writer_t *w, hg_store_batch_t *batch, size_t limit)
{
    hg_store_item_t *item;
    size_t n;

    if (limit == 0 || w->q.count <= limit) {
        *batch = w->q;
        hg_sw_queue_init(&w->q);
        w->urgent_tail = NULL;
        return true;
    }
    hg_sw_queue_init(batch);
    if (w->urgent_tail != NULL && w->urgent_tail->next != NULL
        && !hg_sw_held_long(w->urgent_tail->next))
    {
        /* Starts wait for the records moved ahead: this transaction is
         * theirs alone, the rest follows at once. Once the oldest of the
         * rest has waited HG_SW_HOLD_MAX_MS, a chunk is the moved ones
         * and then the oldest of the rest, so that none waits for ever
         * behind starts. */
        for (n = 1, item = w->q.head; item != w->urgent_tail && n < limit;
             item = item->next)
        {
            n++;
        }
        limit = n;
    }
    for (n = 0; n < limit; n++) {
        item = w->q.head;
        hg_map_remove(&w->q.ids, item->row.r.id);
        hg_sw_unlink(&w->q, item);
        if (item == w->urgent_tail) {
            w->urgent_tail = NULL;
        }
        /* The batch needs no index: nothing looks ids up in it. */
        hg_sw_link(batch, item, false);
    }
    hg_sw_take_states(w, batch, batch->tail->seq);
    return false;
}

/* Under mu, at a barrier for ITEM (queued): a start waits for it, so it
 * moves ahead of the records nobody waits for (finals, queued fires),
 * behind those moved before it, under a ticket between theirs and the
 * next record's: the queue stays in ticket order, and a ticket is still
 * committed when every record up to it is. It stays where it is when
 * the writer is failing (the queue holds older records again), or when
 * no ticket is left between the two. */
static void
hg_sw_hasten(hg_store_writer_t *w, hg_store_item_t *item)
{
    hg_store_item_t *first;
    uint64_t low;

    if (item->urgent || w->failing || w->ops->chunk == 0) {
        return;
    }
    first = w->urgent_tail != NULL ? w->urgent_tail->next : w->q.head;
    if (first == item) {
        item->urgent = true;
        w->urgent_tail = item;
        return;
    }
    low = w->urgent_tail != NULL ? w->urgent_tail->seq : w->batch_ticket;
    if (first == NULL || first->seq - low < 2) {
        return;
    }
    hg_sw_unlink(&w->q, item);
    item->seq = low + 1;
    item->urgent = true;
    item->prev = w->urgent_tail;
    item->next = first;
    first->prev = item;
    if (w->urgent_tail != NULL) {
        w->urgent_tail->next = item;
    } else {
        w->q.head = item;
    }
    w->q.count++;
    w->urgent_tail = item;
}

/* --- the writer ---------------------------------------------------------- */

static bool
hg_sw_empty(const hg_store_batch_t *batch)
{
    return batch->count == 0 && batch->states.count == 0;
}

/* Writer thread (or close): one transaction for BATCH, nothing if empty. */
static hg_store_write_t
hg_sw_commit(hg_store_writer_t *w, const hg_store_batch_t *batch, char *err,
             size_t errlen)
{
    hg_store_write_t rc;

    if (hg_sw_empty(batch)) {
        return HG_STORE_WRITE_OK;
    }
    rc = w->ops->commit(w->be, w, batch, err, errlen);
    w->moved = rc == HG_STORE_WRITE_MOVED;  /* or put back where it was */
    return rc;
}

/* Under mu: wakes the writer. It is no longer idle from now on, though
 * it has yet to take mu back: hg_store_figures must not call a writer
 * about to look at the queue again idle. */
static void
hg_sw_wake(hg_store_writer_t *w)
{
    w->idle = false;
    pthread_cond_signal(&w->cond);
}

/* Under mu, after a put: wakes the writer now, or at the gathering
 * caller's next hg_store_writer_flush. */
static void
hg_sw_wake_later(hg_store_writer_t *w)
{
    if (w->gathering) {
        w->unflushed = true;
        return;
    }
    hg_sw_wake(w);
}

/* Under mu, after a transaction: its lost claims become the master's to
 * read when it COMMITTED, and are forgotten when it failed (the records
 * go back to the queue and claim again). */
static void
hg_sw_publish_lost(hg_store_writer_t *w, bool committed)
{
    size_t i;

    for (i = 0; i < w->nlosing; i++) {
        if (committed && hg_map_get(&w->lost, w->losing[i]) == NULL
            && hg_map_put(&w->lost, w->losing[i], w->losing[i]) == HG_OK)
        {
            continue;                   /* the map owns it now */
        }
        free(w->losing[i]);
    }
    w->nlosing = 0;
}

int
hg_store_writer_lose(hg_store_writer_t *w, const char *exec_id)
{
    char **grown, *id;
    size_t cap;

    if (w->nlosing == w->losing_cap) {
        cap = w->losing_cap == 0 ? 16 : w->losing_cap * 2;
        grown = realloc(w->losing, cap * sizeof(*grown));
        if (grown == NULL) {
            return HG_ERROR;
        }
        w->losing = grown;
        w->losing_cap = cap;
    }
    id = strdup(exec_id);
    if (id == NULL) {
        return HG_ERROR;
    }
    w->losing[w->nlosing++] = id;
    return HG_OK;
}

bool
hg_store_writer_claim_lost(hg_store_t *store, const char *exec_id)
{
    hg_store_writer_t *w = store->writer;
    char *id;

    pthread_mutex_lock(&w->mu);
    id = hg_map_remove(&w->lost, exec_id);
    pthread_mutex_unlock(&w->mu);
    free(id);
    return id != NULL;
}

int
hg_store_writer_take(hg_store_writer_t *w, hg_exec_row_t *rows, size_t n)
{
    hg_exec_row_t *grown;

    if (n == 0) {
        free(rows);
        return HG_OK;
    }
    pthread_mutex_lock(&w->mu);
    grown = realloc(w->taken, (w->ntaken + n) * sizeof(*grown));
    if (grown == NULL) {
        pthread_mutex_unlock(&w->mu);
        hg_exec_rows_free(rows, n);
        return HG_ERROR;
    }
    memcpy(grown + w->ntaken, rows, n * sizeof(*rows));
    w->taken = grown;
    w->ntaken += n;
    hg_sw_notify(w);
    pthread_mutex_unlock(&w->mu);
    free(rows);                         /* the rows' contents moved */
    return HG_OK;
}

int
hg_store_writer_taken(hg_store_t *store, hg_exec_row_t **rows, size_t *n)
{
    hg_store_writer_t *w = store->writer;

    pthread_mutex_lock(&w->mu);
    *rows = w->taken;
    *n = w->ntaken;
    w->taken = NULL;
    w->ntaken = 0;
    pthread_mutex_unlock(&w->mu);
    return HG_OK;
}

void
hg_store_writer_fence(hg_store_writer_t *w, const char *why)
{
    pthread_mutex_lock(&w->mu);
    if (w->fenced[0] == '\0') {
        snprintf(w->fenced, sizeof(w->fenced), "%s", why);
        hg_sw_notify(w);
    }
    pthread_mutex_unlock(&w->mu);
}

void
hg_store_writer_set_view(hg_store_writer_t *w, json_t *view)
{
    json_t *old;

    pthread_mutex_lock(&w->mu);
    old = w->view;
    w->view = view;
    pthread_mutex_unlock(&w->mu);
    json_decref(old);                   /* nobody else holds it */
}

void
hg_store_writer_set_leader(hg_store_writer_t *w, int64_t until_ms)
{
    pthread_mutex_lock(&w->mu);
    w->lead_until = until_ms;
    pthread_mutex_unlock(&w->mu);
}

/* A deep copy, made under mu: the view's reference counts are never
 * touched by two threads. A leadership whose deadline passed is not
 * believed, whatever the last tick said: the tick may not have run since
 * (the process was stopped, or the database cannot be reached). */
json_t *
hg_store_writer_view(hg_store_t *store)
{
    hg_store_writer_t *w = store->writer;
    json_t *copy;
    int64_t until;

    pthread_mutex_lock(&w->mu);
    copy = w->view != NULL ? json_deep_copy(w->view) : NULL;
    until = w->lead_until;
    pthread_mutex_unlock(&w->mu);
    if (copy != NULL && until != 0
        && json_is_true(json_object_get(copy, "leader"))
        && hg_sw_mono_ms() >= until)
    {
        (void) json_object_set_new(copy, "leader", json_false());
    }
    return copy;
}

bool
hg_store_writer_fenced(hg_store_t *store, char *why, size_t len)
{
    hg_store_writer_t *w = store->writer;
    bool fenced;

    pthread_mutex_lock(&w->mu);
    fenced = w->fenced[0] != '\0';
    if (fenced) {
        snprintf(why, len, "%s", w->fenced);
    }
    pthread_mutex_unlock(&w->mu);
    return fenced;
}

/* Under mu: runs the backend's tick when it is due, without mu. */
static void
hg_sw_tick(hg_store_writer_t *w)
{
    int64_t wait_ms;

    if (w->ops->tick == NULL || w->stop || hg_sw_mono_ms() < w->next_tick) {
        return;
    }
    pthread_mutex_unlock(&w->mu);
    wait_ms = w->ops->tick(w->be, w);
    pthread_mutex_lock(&w->mu);
    w->next_tick = hg_sw_mono_ms() + (wait_ms > 0 ? wait_ms : 1);
}

/* Under mu: waits to be woken, at most until UNTIL_MS (monotonic; 0: no
 * limit) or the backend's next tick, whichever comes first. */
static void
hg_sw_wait(hg_store_writer_t *w, int64_t until_ms)
{
    struct timespec at;

    if (w->ops->tick != NULL && (until_ms == 0 || w->next_tick < until_ms)) {
        until_ms = w->next_tick > 0 ? w->next_tick : 1;   /* due now */
    }
    if (until_ms == 0) {
        pthread_cond_wait(&w->cond, &w->mu);
        return;
    }
    at.tv_sec = until_ms / 1000;
    at.tv_nsec = (until_ms % 1000) * 1000000;
    (void) pthread_cond_timedwait(&w->cond, &w->mu, &at);
}

static bool
hg_sw_has_work(const hg_store_writer_t *w)
{
    return !hg_sw_empty(&w->q) || w->seq > w->committed
           || w->limit_changed;
}

static void
hg_sw_format_ms(int64_t ms, char *buf, size_t len)
{
    if (ms % 1000 == 0) {
        snprintf(buf, len, "%" PRId64 "s", ms / 1000);
    } else {
        snprintf(buf, len, "%" PRId64 "ms", ms);
    }
}

/* Under mu: the writer's view of a failed transaction. */
static void
hg_sw_failed(hg_store_writer_t *w, hg_store_batch_t *batch,
             hg_store_write_t kind, const char *err, int64_t *backoff)
{
    int64_t now = hg_sw_mono_ms(), at;
    char every[32];

    w->write_errors++;
    snprintf(w->last_error, sizeof(w->last_error), "%s", err);
    w->error_changed = true;
    hg_sw_requeue(w, batch);

    *backoff = *backoff > 0 ? *backoff * 2 : w->retry_max_ms / 10;
    if (*backoff > w->retry_max_ms) {
        *backoff = w->retry_max_ms;
    }
    if (*backoff < 1) {
        *backoff = 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &w->retry_at);
    at = (int64_t) w->retry_at.tv_nsec + *backoff * HG_NSEC_PER_MSEC;
    w->retry_at.tv_sec += (time_t) (at / HG_NSEC_PER_SEC);
    w->retry_at.tv_nsec = (long) (at % HG_NSEC_PER_SEC);

    w->fail_attempts++;
    if (w->failing) {
        return;
    }
    w->failing = true;
    w->fail_since = now;
    w->fail_attempts = 1;
    hg_sw_format_ms(w->retry_max_ms, every, sizeof(every));
    hg_store_logline_add(&w->lines,
                         kind == HG_STORE_WRITE_BUSY
                         ? HG_LOG_WARN : HG_LOG_ERROR,
                         "store: cannot write %s: %s; keeping %zu record%s "
                         "in memory and retrying every %s%s", w->name, err,
                         w->q.count, w->q.count == 1 ? "" : "s", every,
                         kind == HG_STORE_WRITE_DAMAGED
                         ? " (the file is damaged: stop hourglass, then "
                           "restore it from a backup or move it aside)"
                         : kind == HG_STORE_WRITE_MOVED
                         ? " (hourglass writes nothing into a file that is "
                           "no longer at its path; when it stops, what it "
                           "keeps in memory is written to a new file at "
                           "that path: restart it to go on recording)"
                         : "");
}

/* Under mu: the writer's view of a successful transaction. DRAINED: it
 * took the whole queue (a recovery goes on chunk by chunk until then). */
static void
hg_sw_succeeded(hg_store_writer_t *w, size_t records, bool drained)
{
    int64_t lasted;
    char dropped[64];

    w->written += records;
    if (!w->failing) {
        w->drop_logged = false;
        return;
    }
    records += w->recovered;
    if (!drained) {
        /* Progress: the next chunk goes at once, without backoff. */
        w->recovered = records;
        clock_gettime(CLOCK_MONOTONIC, &w->retry_at);
        return;
    }
    w->recovered = 0;
    lasted = hg_sw_mono_ms() - w->fail_since;
    dropped[0] = '\0';
    if (w->episode_dropped > 0) {
        snprintf(dropped, sizeof(dropped), "; %" PRIu64 " older record%s "
                 "dropped", w->episode_dropped,
                 w->episode_dropped == 1 ? " was" : "s were");
    }
    hg_store_logline_add(&w->lines,
                         w->episode_dropped > 0 ? HG_LOG_WARN : HG_LOG_INFO,
                         "store: writing %s again after %" PRId64 ".%03"
                         PRId64 "s and %" PRIu64 " failed attempt%s: %zu "
                         "record%s kept in memory %s committed%s", w->name,
                         lasted / 1000, lasted % 1000, w->fail_attempts,
                         w->fail_attempts == 1 ? "" : "s", records,
                         records == 1 ? "" : "s", records == 1 ? "is" : "are",
                         dropped);
    w->failing = false;
    w->episode_dropped = 0;
    w->drop_logged = false;
}

/*
 * Under mu: until when (monotonic ms) the writer holds back the records
 * queued, or 0 to write them now. Only a backend whose transactions are
 * cheap (one that commits in chunks: SQLite's WAL, no sync each) holds
 * anything: while executions wait to start, each transaction is the
 * moved records' alone (hg_sw_take), and the records nobody waits for
 * stay queued -- where a fire's queued record is still overwritten in
 * place by its running one, and where writing them takes no time from
 * the starts. PostgreSQL's commit waits for an fsync: one transaction
 * takes everything. A record is never held once a barrier or a query
 * waits for it, while failing or stopping, nor longer than
 * HG_SW_HOLD_MAX_MS.
 */
static int64_t
hg_sw_hold_until(const hg_store_writer_t *w)
{
    const hg_store_item_t *head = w->q.head;

    if (w->ops->chunk == 0 || head == NULL || w->urgent_tail != NULL
        || w->failing || w->stop || w->limit_changed
        || head->seq <= w->wanted
        || !__atomic_load_n(&w->starting, __ATOMIC_RELAXED))
    {
        return 0;
    }
    return hg_sw_held_long(head) ? 0 : head->put_ms + HG_SW_HOLD_MAX_MS;
}

/* Under mu: waits for work, or until the records held back are due. */
static void
hg_sw_wait_for_work(hg_store_writer_t *w)
{
    int64_t hold;

    for (;;) {
        hg_sw_tick(w);
        if (w->stop) {
            return;
        }
        if (!hg_sw_has_work(w)) {
            w->idle = true;
            hg_sw_wait(w, 0);
            w->idle = false;
            continue;
        }
        hold = hg_sw_hold_until(w);
        if (hold == 0) {
            return;
        }
        w->holding = true;
        hg_sw_wait(w, hold);
        w->holding = false;
    }
}

static void *
hg_sw_writer(void *arg)
{
    hg_store_writer_t *w = arg;
    hg_store_batch_t batch;
    hg_store_write_t rc;
    uint64_t ticket, limit = 0;
    bool last_try, set_limit, limit_failed, drained;
    int64_t backoff = 0;
    char err[256];

    /* A name for top -H and perf; a failure changes nothing else. */
    (void) pthread_setname_np(pthread_self(), "hg-store-write");
    hg_sw_self = w;                     /* a tick's reads queue their lines */
    pthread_mutex_lock(&w->mu);
    w->writer_parked = true;
    pthread_cond_broadcast(&w->cond);
    for (;;) {
        hg_sw_wait_for_work(w);
        /* Back off while failing; stop or a new limit end the wait. */
        while (w->failing && !w->stop && !w->limit_changed
               && pthread_cond_timedwait(&w->cond, &w->mu, &w->retry_at)
                  != ETIMEDOUT)
        {
        }
        last_try = w->stop;
        /* Recovering, the backlog goes in bounded transactions: a little
         * room freed on a full disk lets some of it through, where one
         * transaction of everything would fail again and again. A ticket
         * is reached when the queue is drained. */
        drained = hg_sw_take(w, &batch, w->failing ? HG_SW_CHUNK
                                                   : w->ops->chunk);
        /* The queue is in ticket order: a chunk reaches its last
         * record's ticket, a drained queue the last put's. */
        ticket = drained ? w->seq : batch.tail->seq;
        w->batch_ticket = ticket;
        set_limit = w->limit_changed || w->limit_retry;
        limit = w->limit;
        w->limit_changed = false;
        w->limit_retry = false;
        w->in_flight = batch.count;
        pthread_mutex_unlock(&w->mu);

        err[0] = '\0';
        rc = HG_STORE_WRITE_OK;
        if (set_limit && w->ops->set_limit != NULL) {
            rc = w->ops->set_limit(w->be, limit, err, sizeof(err));
        }
        limit_failed = rc != HG_STORE_WRITE_OK;
        if (rc == HG_STORE_WRITE_OK) {
            rc = hg_sw_commit(w, &batch, err, sizeof(err));
        }

        pthread_mutex_lock(&w->mu);
        w->in_flight = 0;
        if (limit_failed) {
            w->limit_retry = true;      /* with the next attempt */
        }
        hg_sw_publish_lost(w, rc == HG_STORE_WRITE_OK);
        if (rc == HG_STORE_WRITE_OK) {
            if (ticket > w->committed) {
                /* Read without mu by hg_store_writer_peek. */
                __atomic_store_n(&w->committed, ticket, __ATOMIC_RELEASE);
                /* A query may wait for this ticket. Only then: a burst
                 * commits hundreds of times, and each broadcast woke the
                 * idle maintenance thread for nothing, onto one of the
                 * CPUs the starts need. */
                if (w->query_waits) {
                    pthread_cond_broadcast(&w->tasks_cond);
                }
            }
            hg_sw_succeeded(w, batch.count, drained);
            backoff = 0;
        } else {
            hg_sw_failed(w, &batch, rc, err, &backoff);
            /* a query waits no longer: it reads what the file has */
            if (w->query_waits) {
                pthread_cond_broadcast(&w->tasks_cond);
            }
            if (last_try && w->moved) {
                break;                  /* hg_sw_rescue writes them */
            }
            if (last_try) {
                hg_store_logline_add(&w->lines, HG_LOG_ERROR, "store: "
                                     "closing with %zu records not written "
                                     "to %s: %s", w->q.count, w->name, err);
                break;
            }
        }
        hg_sw_notify(w);
        if (rc == HG_STORE_WRITE_OK) {
            /* Freed outside mu: the master puts while a thousand records
             * of a burst are freed. */
            pthread_mutex_unlock(&w->mu);
            hg_sw_queue_free(&batch);
            pthread_mutex_lock(&w->mu);
        }
        if (w->stop && !hg_sw_has_work(w)) {
            break;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* --- start and close ----------------------------------------------------- */

static void
hg_sw_free(hg_store_writer_t *w)
{
    size_t i;

    hg_store_loglines_emit(w->lines);
    hg_sw_queue_free(&w->q);
    hg_map_free_values(&w->lost);
    hg_exec_rows_free(w->taken, w->ntaken);
    json_decref(w->view);
    json_decref(w->paused);
    json_decref(w->jobs);
    for (i = 0; i < w->nlosing; i++) {
        free(w->losing[i]);
    }
    free(w->losing);
    hg_store_tasks_free(&w->tasks);
    hg_store_tasks_free(&w->done);
    if (w->notify_fd >= 0) {
        close(w->notify_fd);
    }
    pthread_cond_destroy(&w->cond);
    pthread_cond_destroy(&w->tasks_cond);
    pthread_mutex_destroy(&w->mu);
    free(w->name);
    free(w);
}

/* Starts a thread running FN with every signal blocked: the master's
 * signalfd must get them all, and a signal a thread does not block may
 * land on that thread. */
static int
hg_sw_thread(pthread_t *thread, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(thread, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static void *hg_sw_maintainer(void *arg);

/* Stops the threads that started and waits for them to end; the writer
 * commits what is queued first (one last try). */
static void
hg_sw_join(hg_store_writer_t *w)
{
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    hg_sw_wake(w);
    pthread_cond_signal(&w->tasks_cond);
    pthread_mutex_unlock(&w->mu);
    if (w->maintainer_started) {
        /* A long cleanup or vacuum stops at its next step. */
        if (w->ops->interrupt != NULL) {
            w->ops->interrupt(w->be);
        }
        pthread_join(w->maintainer, NULL);
        w->maintainer_started = false;
    }
    if (w->writer_started) {
        pthread_join(w->writer, NULL);
        w->writer_started = false;
    }
}

int
hg_store_writer_start(hg_store_t *store, const hg_store_backend_t *ops,
                      void *be, const char *name,
                      const hg_store_options_t *options, char *err,
                      size_t errlen)
{
    hg_store_writer_t *w;
    pthread_condattr_t attr;
    int rc;

    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        snprintf(err, errlen, "store: out of memory");
        return HG_ERROR;
    }
    w->notify_fd = -1;
    hg_sw_queue_init(&w->q);
    hg_map_init(&w->lost);
    if (pthread_mutex_init(&w->mu, NULL) != 0) {
        snprintf(err, errlen, "store: cannot create a mutex");
        free(w);
        return HG_ERROR;
    }
    if (pthread_condattr_init(&attr) != 0) {
        snprintf(err, errlen, "store: cannot create a condition variable");
        pthread_mutex_destroy(&w->mu);
        free(w);
        return HG_ERROR;
    }
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0) {
        rc = pthread_cond_init(&w->cond, &attr);
    }
    pthread_condattr_destroy(&attr);
    if (rc == 0 && pthread_cond_init(&w->tasks_cond, NULL) != 0) {
        pthread_cond_destroy(&w->cond);
        rc = -1;
    }
    if (rc != 0) {
        snprintf(err, errlen, "store: cannot create a condition variable");
        pthread_mutex_destroy(&w->mu);
        free(w);
        return HG_ERROR;
    }
    /* From here on hg_sw_free undoes everything. */
    w->ops = ops;
    w->be = be;
    w->queue_limit = options->queue_limit > 0 ? options->queue_limit
                                              : HG_SW_QUEUE_LIMIT;
    w->retry_max_ms = options->retry_max_ms > 0 ? options->retry_max_ms
                                                : HG_SW_RETRY_MAX_MS;
    w->name = strdup(name);
    if (w->name == NULL) {
        snprintf(err, errlen, "store: out of memory");
        goto failed;
    }
    w->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->notify_fd < 0) {
        snprintf(err, errlen, "store: eventfd: %s", strerror(errno));
        goto failed;
    }
    /* Both threads now, from the caller's: the writer thread asks for
     * checkpoints while the master may fork, and must not start a thread
     * then. */
    rc = hg_sw_thread(&w->writer, hg_sw_writer, w);
    if (rc != 0) {
        snprintf(err, errlen, "store: cannot start the writer thread: %s",
                 strerror(rc));
        goto failed;
    }
    w->writer_started = true;
    rc = hg_sw_thread(&w->maintainer, hg_sw_maintainer, w);
    if (rc != 0) {
        snprintf(err, errlen, "store: cannot start the maintenance thread: "
                 "%s", strerror(rc));
        goto failed;
    }
    w->maintainer_started = true;
    /* Back only once the threads wait for work: the master forks its
     * workers next, and a thread still starting may hold a lock of the
     * allocator's that the child would wait for forever (as
     * AddressSanitizer's allocator does not guard fork). */
    pthread_mutex_lock(&w->mu);
    while (!w->writer_parked || !w->maintainer_parked) {
        pthread_cond_wait(&w->cond, &w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    store->writer = w;
    store->notify_fd = w->notify_fd;
    return HG_OK;

failed:
    hg_sw_join(w);
    hg_sw_free(w);
    return HG_ERROR;
}

/*
 * Closing a store whose file was moved away while it ran: the records
 * kept in memory since then go to a new file at the path (or to the file
 * now there). Only now, with every connection to the old file closed: a
 * connection to the new file beside them would share the -wal and -shm
 * names with the old one's and mix their frames.
 */
static void
hg_sw_rescue(hg_store_writer_t *w)
{
    hg_store_batch_t batch;
    size_t records = w->q.count, written = 0;
    hg_store_write_t rc = HG_STORE_WRITE_OK;
    char err[512];

    err[0] = '\0';
    if (w->ops->reopen(w->be, err, sizeof(err)) != HG_OK) {
        rc = HG_STORE_WRITE_FAILED;
    }
    while (rc == HG_STORE_WRITE_OK && !hg_sw_empty(&w->q)) {
        hg_sw_take(w, &batch, HG_SW_CHUNK);
        rc = hg_sw_commit(w, &batch, err, sizeof(err));
        if (rc == HG_STORE_WRITE_OK) {
            written += batch.count;
        }
        hg_sw_queue_free(&batch);   /* what failed is lost: we are closing */
    }
    if (rc == HG_STORE_WRITE_OK) {
        hg_log(HG_LOG_WARN, "store: %s was deleted or replaced while "
               "hourglass ran: the %zu record%s kept in memory since then "
               "%s written to the file now at that path", w->name, written,
               written == 1 ? "" : "s", written == 1 ? "is" : "are");
    } else {
        hg_log(HG_LOG_ERROR, "store: %s was deleted or replaced while "
               "hourglass ran, and the %zu record%s kept in memory since "
               "then cannot be written to a new file at that path (%s): "
               "%zu lost", w->name, records, records == 1 ? "" : "s", err,
               records - written);
    }
}

void
hg_store_writer_close(hg_store_t *store)
{
    hg_store_writer_t *w = store->writer;

    if (w == NULL) {
        return;
    }
    hg_sw_join(w);
    if (w->moved && !hg_sw_empty(&w->q)) {
        hg_store_loglines_emit(w->lines);
        w->lines = NULL;
        hg_sw_rescue(w);
    }
    hg_sw_free(w);
    store->writer = NULL;
    store->notify_fd = -1;
}

/* --- the caller's side --------------------------------------------------- */

int
hg_store_writer_put_execution(hg_store_t *store, const hg_exec_record_t *rec)
{
    hg_store_writer_t *w = store->writer;
    hg_store_item_t *item, *old;
    hg_exec_row_t swap;
    char what[256];
    int rc = HG_OK;

    item = calloc(1, sizeof(*item));
    if (item == NULL || hg_exec_row_copy(&item->row, rec) != HG_OK) {
        free(item);
        hg_log(HG_LOG_ERROR, "store: out of memory: execution %s not "
               "recorded", rec->id);
        return HG_ERROR;
    }
    what[0] = '\0';
    pthread_mutex_lock(&w->mu);
    old = hg_map_get(&w->q.ids, item->row.r.id);
    if (old != NULL) {
        /* Replace in place: the queue keeps the first put's position. */
        swap = old->row;
        old->row = item->row;
        item->row = swap;
        if (swap.r.claim && !old->row.r.claim) {
            /* The claim is not written yet: the record that replaces it
             * still makes it, or the fire would start unclaimed. */
            old->row.r.claim = true;
            old->row.r.def_hash = swap.r.def_hash;
        }
        rc = hg_map_put(&w->q.ids, old->row.r.id, old);     /* new key */
    } else {
        item->seq = w->seq + HG_SW_GAP;
        item->put_ms = hg_sw_mono_ms();
        rc = hg_sw_push(&w->q, item, false);
        if (rc == HG_OK) {
            w->seq += HG_SW_GAP;
            item = NULL;
            hg_sw_trim(w, what, sizeof(what));
        }
    }
    hg_sw_wake_later(w);
    pthread_mutex_unlock(&w->mu);
    if (item != NULL) {
        hg_sw_item_free(item);
    }
    if (what[0] != '\0') {
        hg_log(HG_LOG_ERROR, "store: more than %zu records wait for %s: "
               "dropping the oldest, starting with %s", w->queue_limit,
               w->name, what);
    }
    if (rc != HG_OK) {
        hg_log(HG_LOG_ERROR, "store: out of memory: execution %s not "
               "recorded", rec->id);
    }
    return rc;
}

static int hg_sw_put_state(hg_store_t *store, const char *job_id,
                           int64_t last_fire, bool paused, bool pause);

int
hg_store_writer_put_job_state(hg_store_t *store, const char *job_id,
                              int64_t last_fire, bool paused)
{
    return hg_sw_put_state(store, job_id, last_fire, paused, false);
}

int
hg_store_writer_put_pause(hg_store_t *store, const char *job_id,
                          int64_t last_fire, bool paused)
{
    return hg_sw_put_state(store, job_id, last_fire, paused, true);
}

void
hg_store_writer_set_capacity(hg_store_t *store, size_t n)
{
    __atomic_store_n(&store->writer->capacity, n, __ATOMIC_RELAXED);
}

void
hg_store_writer_set_starting(hg_store_t *store, bool starting)
{
    hg_store_writer_t *w = store->writer;

    if (__atomic_exchange_n(&w->starting, starting, __ATOMIC_RELAXED)
        && !starting)
    {
        /* What it held waits for nothing now. */
        pthread_mutex_lock(&w->mu);
        hg_sw_wake(w);
        pthread_mutex_unlock(&w->mu);
    }
}

size_t
hg_store_writer_capacity(hg_store_writer_t *w)
{
    return __atomic_load_n(&w->capacity, __ATOMIC_RELAXED);
}

/* A master saying its capacity meanwhile wins: it counted what it got. */
void
hg_store_writer_used(hg_store_writer_t *w, size_t n)
{
    size_t cap = __atomic_load_n(&w->capacity, __ATOMIC_RELAXED);

    (void) __atomic_compare_exchange_n(&w->capacity, &cap,
                                       cap > n ? cap - n : 0, false,
                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

/* A peer's change of job JOB_ID, VALUE (taken, or freed on failure), in
 * *SLOT ({job: value}; a later change of the job replaces one the master
 * has not taken yet), and the master woken. */
static int
hg_sw_peer_set(hg_store_writer_t *w, json_t **slot, const char *job_id,
               json_t *value)
{
    int rc = HG_ERROR;

    pthread_mutex_lock(&w->mu);
    if (*slot == NULL) {
        *slot = json_object();
    }
    if (*slot == NULL) {
        json_decref(value);
    } else if (json_object_set_new(*slot, job_id, value) == 0) {
        rc = HG_OK;
        hg_sw_notify(w);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* What *SLOT holds, now the caller's; NULL when none. */
static json_t *
hg_sw_peer_take(hg_store_writer_t *w, json_t **slot)
{
    json_t *taken;

    pthread_mutex_lock(&w->mu);
    taken = *slot;
    *slot = NULL;
    pthread_mutex_unlock(&w->mu);
    return taken;
}

int
hg_store_writer_peer_paused(hg_store_writer_t *w, const char *job_id,
                            bool paused)
{
    return hg_sw_peer_set(w, &w->paused, job_id, json_boolean(paused));
}

int
hg_store_writer_peer_job(hg_store_writer_t *w, const char *job_id,
                         json_t *record)
{
    return hg_sw_peer_set(w, &w->jobs, job_id, record);
}

json_t *
hg_store_writer_jobs(hg_store_t *store)
{
    return hg_sw_peer_take(store->writer, &store->writer->jobs);
}

json_t *
hg_store_writer_paused(hg_store_t *store)
{
    return hg_sw_peer_take(store->writer, &store->writer->paused);
}

static int
hg_sw_put_state(hg_store_t *store, const char *job_id, int64_t last_fire,
                bool paused, bool pause)
{
    hg_store_writer_t *w = store->writer;
    hg_store_state_t *st, *old;
    size_t len = strlen(job_id);
    int rc;

    st = malloc(sizeof(*st) + len + 1);
    if (st == NULL) {
        hg_log(HG_LOG_ERROR, "store: out of memory: state of job %s not "
               "recorded", job_id);
        return HG_ERROR;
    }
    st->last_fire = last_fire;
    st->paused = paused;
    st->pause = pause;
    memcpy(st->job_id, job_id, len + 1);
    pthread_mutex_lock(&w->mu);
    old = hg_map_get(&w->q.states, st->job_id);
    if (old != NULL) {
        st->pause |= old->pause;        /* merged, still a pause */
    }
    st->seq = w->seq + 1;               /* after the records before it */
    rc = hg_map_put(&w->q.states, st->job_id, st);
    if (rc == HG_OK) {
        w->seq++;
    }
    hg_sw_wake_later(w);
    pthread_mutex_unlock(&w->mu);
    if (rc != HG_OK) {
        free(st);
        hg_log(HG_LOG_ERROR, "store: out of memory: state of job %s not "
               "recorded", job_id);
        return HG_ERROR;
    }
    free(old);
    return HG_OK;
}

uint64_t
hg_store_writer_peek(hg_store_t *store)
{
    return __atomic_load_n(&store->writer->committed, __ATOMIC_ACQUIRE);
}

void
hg_store_writer_gather(hg_store_t *store)
{
    hg_store_writer_t *w = store->writer;

    pthread_mutex_lock(&w->mu);
    w->gathering = true;
    pthread_mutex_unlock(&w->mu);
}

void
hg_store_writer_flush(hg_store_t *store)
{
    hg_store_writer_t *w = store->writer;

    pthread_mutex_lock(&w->mu);
    if (w->unflushed) {
        w->unflushed = false;
        /* A writer holding records back wakes for a start's, not for
         * more of those it holds: a burst's loop turns would wake it
         * thousands of times for nothing. */
        if (!w->holding || w->urgent_tail != NULL) {
            hg_sw_wake(w);
        }
    }
    pthread_mutex_unlock(&w->mu);
}

int
hg_store_writer_barrier(hg_store_t *store, uint64_t *ticket)
{
    hg_store_writer_t *w = store->writer;

    pthread_mutex_lock(&w->mu);
    *ticket = w->seq;
    w->wanted = w->seq;
    w->unflushed = false;
    hg_sw_wake(w);
    pthread_mutex_unlock(&w->mu);
    return HG_OK;
}

int
hg_store_writer_barrier_for(hg_store_t *store, const char *exec_id,
                            uint64_t *ticket)
{
    hg_store_writer_t *w = store->writer;
    hg_store_item_t *item;

    pthread_mutex_lock(&w->mu);
    item = hg_map_get(&w->q.ids, exec_id);
    if (item != NULL) {
        hg_sw_hasten(w, item);
    }
    /* Not queued: its last put is in the batch taken last or before. */
    *ticket = item != NULL ? item->seq : w->batch_ticket;
    /* A writer that waits starts at once; one at work finds the record
     * moved ahead when it looks again. Either way a gathering caller's
     * later barriers of the same turn go together, as its puts do: a
     * turn that starts a hundred executions makes a transaction or two,
     * not a hundred. */
    if (w->idle || w->holding || !w->gathering) {
        w->unflushed = false;
        hg_sw_wake(w);
    } else {
        w->unflushed = true;
    }
    pthread_mutex_unlock(&w->mu);
    return HG_OK;
}

uint64_t
hg_store_writer_committed(hg_store_t *store)
{
    hg_store_writer_t *w = store->writer;
    hg_store_logline_t *lines;
    uint64_t value, committed;
    char *error = NULL;

    /* Drain first: a commit published after this read signals again. */
    while (read(w->notify_fd, &value, sizeof(value)) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&w->mu);
    committed = w->committed;
    lines = w->lines;
    w->lines = NULL;
    store->failing = w->failing;
    store->write_errors = w->write_errors;
    if (w->error_changed) {
        error = strdup(w->last_error);
        w->error_changed = error == NULL;
    }
    pthread_mutex_unlock(&w->mu);
    if (error != NULL) {
        free(store->last_error);
        store->last_error = error;
    }
    hg_store_loglines_emit(lines);
    return committed;
}

int
hg_store_writer_set_limit(hg_store_t *store, uint64_t limit)
{
    hg_store_writer_t *w = store->writer;

    if (w->ops->set_limit == NULL) {
        return HG_ERROR;
    }
    pthread_mutex_lock(&w->mu);
    w->limit = limit;
    w->limit_changed = true;
    hg_sw_wake(w);
    pthread_mutex_unlock(&w->mu);
    return HG_OK;
}

int
hg_store_writer_health(hg_store_t *store, json_t *report)
{
    hg_store_figures_t f;
    json_t *part;
    int rc;

    hg_store_figures(store, &f);
    part = json_pack("{s:I, s:I, s:I, s:b, s:s?, s:I, s:I}",
                     "queue_depth", (json_int_t) f.queue_depth,
                     "written", (json_int_t) f.written,
                     "write_errors", (json_int_t) f.write_errors,
                     "failing", f.failing,
                     "last_error", f.last_error[0] ? f.last_error : NULL,
                     "dropped", (json_int_t) f.dropped,
                     "committed", (json_int_t) f.committed);
    if (part == NULL) {
        return HG_ERROR;
    }
    rc = json_object_update(report, part) == 0 ? HG_OK : HG_ERROR;
    json_decref(part);
    return rc;
}

void
hg_store_figures(hg_store_t *store, hg_store_figures_t *figures)
{
    hg_store_writer_t *w = store->writer;

    memset(figures, 0, sizeof(*figures));
    if (w == NULL) {
        return;                     /* a store without a writer (memory) */
    }
    pthread_mutex_lock(&w->mu);
    figures->queue_depth = w->q.count + w->in_flight;
    figures->written = w->written;
    figures->write_errors = w->write_errors;
    figures->dropped = w->dropped;
    figures->committed = w->committed;
    figures->failing = w->failing;
    figures->idle = w->idle;
    snprintf(figures->last_error, sizeof(figures->last_error), "%s",
             w->last_error);
    pthread_mutex_unlock(&w->mu);
}

/* --- maintenance (its own thread) ---------------------------------------- */

bool
hg_store_writer_stopping(hg_store_writer_t *w)
{
    bool stop;

    pthread_mutex_lock(&w->mu);
    stop = w->stop;
    pthread_mutex_unlock(&w->mu);
    return stop;
}

void
hg_store_writer_log(hg_store_writer_t *w, hg_log_level_t level,
                    const char *fmt, ...)
{
    va_list ap;
    char text[1024];

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&w->mu);
    hg_store_logline_add(&w->lines, level, "%s", text);
    pthread_mutex_unlock(&w->mu);
}

void
hg_store_writer_say(hg_log_level_t level, const char *fmt, ...)
{
    hg_store_writer_t *w = hg_store_writer_self();
    char text[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (w != NULL) {
        hg_store_writer_log(w, level, "%s", text);
    } else {
        hg_log(level, "%s", text);
    }
}


hg_store_writer_t *
hg_store_writer_self(void)
{
    return hg_sw_self;
}

void
hg_store_writer_want_checkpoint(hg_store_writer_t *w)
{
    if (w->ops->checkpoint == NULL) {
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->checkpoint_wanted = true;
    pthread_cond_signal(&w->tasks_cond);
    pthread_mutex_unlock(&w->mu);
}

static void *
hg_sw_maintainer(void *arg)
{
    hg_store_writer_t *w = arg;
    hg_store_task_t *task;

    hg_sw_self = w;
    (void) pthread_setname_np(pthread_self(), "hg-store-maint");
    pthread_mutex_lock(&w->mu);
    w->maintainer_parked = true;
    w->idle = false;                    /* the broadcast wakes the writer */
    pthread_cond_broadcast(&w->cond);
    for (;;) {
        while (!w->stop && w->tasks.head == NULL && !w->checkpoint_wanted) {
            pthread_cond_wait(&w->tasks_cond, &w->mu);
        }
        if (w->stop) {
            break;
        }
        if (w->checkpoint_wanted) {
            w->checkpoint_wanted = false;
            pthread_mutex_unlock(&w->mu);
            w->ops->checkpoint(w->be, w);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        task = hg_store_tasks_pop(&w->tasks);
        while (task->kind == HG_STORE_TASK_QUERY && task->after > w->committed
               && !w->stop && !w->failing)
        {
            w->query_waits = true;
            pthread_cond_wait(&w->tasks_cond, &w->mu);
            w->query_waits = false;
        }
        pthread_mutex_unlock(&w->mu);

        if (task->kind == HG_STORE_TASK_QUERY) {
            task->rc = task->query(task->store, task);
        } else {
            w->ops->task(w->be, w, task);
        }

        pthread_mutex_lock(&w->mu);
        hg_store_tasks_push(&w->done, task);
        hg_sw_notify(w);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int
hg_store_writer_task(hg_store_t *store, hg_store_task_t *task)
{
    hg_store_writer_t *w = store->writer;

    pthread_mutex_lock(&w->mu);
    if (task->kind == HG_STORE_TASK_QUERY) {
        /* a barrier of its own: what was put before it, it reads */
        task->after = w->seq;
        w->wanted = w->seq;
        hg_sw_wake(w);
    }
    hg_store_tasks_push(&w->tasks, task);
    pthread_cond_signal(&w->tasks_cond);
    pthread_mutex_unlock(&w->mu);
    return HG_OK;
}

hg_store_task_t *
hg_store_writer_task_done(hg_store_t *store)
{
    hg_store_writer_t *w = store->writer;
    hg_store_task_t *task;

    pthread_mutex_lock(&w->mu);
    task = hg_store_tasks_pop(&w->done);
    pthread_mutex_unlock(&w->mu);
    return task;
}
