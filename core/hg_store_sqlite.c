/*
 * hg_store_sqlite.c: the `sqlite` store driver (the default), one SQLite
 * file in WAL mode.
 *
 * Three connections, each used by one thread. The WRITE connection
 * belongs to a writer thread: hg_store_put_* copy the record into a queue
 * (mutex + condvar) and return; the writer takes everything queued and
 * commits it in ONE transaction, then publishes the highest barrier
 * ticket issued before it took the queue and writes to an eventfd
 * (store->notify_fd) so the master's epoll wakes; hg_store_ack drains it.
 * While the writer commits, new puts collect in the queue for the next
 * transaction: batching follows load by itself, with no timer. The READ
 * connection serves the synchronous reads in the caller's thread; WAL
 * lets them run beside the writer, each seeing the last commit. The
 * MAINTENANCE connection belongs to a maintenance thread (started by the
 * first hg_store_task) that runs cleanup and vacuum in short transactions
 * of their own and reports through the same eventfd. All three are opened
 * together, by this process, before any thread starts; none is ever used
 * in a forked process (see hg_store.h).
 *
 * The master's event loop never waits on a transaction: puts take the
 * queue's mutex, which the writer holds only to swap the queue out, never
 * across I/O. The writer never calls hg_log (it is not thread-safe); its
 * lines wait in d->lines and are written by hg_store_ack.
 *
 * Durability: journal_mode = WAL with synchronous = NORMAL. A commit is in
 * the WAL file (the operating system's page cache) when the writer
 * publishes its ticket, so a process crash -- kill -9 of the master --
 * loses nothing committed: the next open replays the WAL. A power loss or
 * kernel crash may lose the last transactions (not corrupt the file):
 * NORMAL syncs at checkpoints, not at each commit, which is what makes a
 * commit cheap enough to batch thousands of executions a second.
 *
 * Faults. When a transaction fails (disk full, database locked by another
 * process past busy_timeout, read-only file, corrupt file, I/O error), it
 * is rolled back and its records go back to the front of the queue (a
 * newer put of the same id wins); the writer retries with a backoff that
 * doubles up to retry_max_ms (1 s); one log line opens the episode and one
 * closes it when a commit succeeds again. No ticket is acknowledged during
 * an episode. Puts never block: the queue keeps up to queue_limit records
 * (100,000) -- later puts of an id replace the earlier one in place, so a
 * running record never waits beside its final one -- and beyond that the
 * oldest records are dropped, counted (health: dropped) and logged once.
 * Recovering, the writer commits the backlog in chunks of HG_SQ_CHUNK
 * records: a little room freed on a full disk lets part of it through at
 * once, where one transaction of everything would fail for ever. Tickets
 * are acknowledged when the backlog is drained.
 *
 * A file deleted or replaced under the running daemon (another inode at
 * the path: SQLITE_FCNTL_HAS_MOVED, checked before each transaction) is
 * such a fault, with its own line: nothing is written into a file that is
 * no longer at its path, records are kept in memory, and at close, once
 * every connection to the old file is closed, they are written to a new
 * file at the path (or the one moved there). Not while running: a
 * connection to the new file beside those to the old one would share the
 * -wal and -shm names with them and mix their frames.
 *
 * Files: the database is opened without following a symbolic link at its
 * last component (SQLITE_OPEN_NOFOLLOW), and created 0600 (SQLite gives
 * the -wal and -shm files the database's mode): it holds job output.
 *
 * Threads and signals: the writer and maintenance threads block every
 * signal, so that the master's signalfd sees them all.
 *
 * The schema (version 1, PRAGMA user_version), created and migrated by
 * hg_sq_migrations below, one SQL string per version, applied in order in
 * one transaction at open:
 *
 *   executions     one row per execution (attempt), every field of
 *                  hg_exec_record_t; times are ms since the epoch; status
 *                  is the name ("queued" ... "dead"); later puts of an id
 *                  overwrite the row (INSERT ... ON CONFLICT(id) DO UPDATE).
 *                  Indexes: (job_id, scheduled_for) for a job's history
 *                  and statistics, (status, scheduled_for) for recovery
 *                  and the dead list newest first, (finished_at) for
 *                  retention, (unique_key) partial, for enqueue refusals.
 *   job_state      job_id, last_fire, paused: what the scheduler needs
 *                  back after a restart.
 *   jobs           id, definition (JSON text), created_at, updated_at:
 *                  dynamic jobs (created now, used by a later issue).
 *   job_stats      per job: runs, successes, failures, durations (how
 *                  many runs had a duration), duration_sum, duration_max,
 *                  last_run, last_status; updated by the writer in the
 *                  same transaction as the executions.
 *   job_durations  (job_id, bucket) -> count: the duration histogram
 *                  behind p95 (log-linear buckets, see hg_store.h).
 *
 * auto_vacuum = INCREMENTAL and WAL mode are set when the file is created
 * (user_version 0), so that a vacuum can give free pages back without
 * rewriting the file; a file already at the current version is only read
 * when the store opens it, and migrations write only when the version
 * changes.
 */

#include "hg_core.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "hg_log.h"
#include "hg_map.h"
#include "hg_store.h"

#define HG_SQ_QUEUE_LIMIT     100000
#define HG_SQ_RETRY_MAX_MS    1000
#define HG_SQ_BUSY_TIMEOUT_MS 1000
#define HG_SQ_NO_PAGE_LIMIT   UINT64_C(4294967294)  /* SQLite's own maximum */
#define HG_SQ_CHUNK           1000  /* records per transaction in recovery */

/* --- the schema ---------------------------------------------------------- */

static const char hg_sq_schema_v1[] =
    "CREATE TABLE executions ("
    " id TEXT PRIMARY KEY,"
    " run_id TEXT,"
    " job_id TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " attempt INTEGER NOT NULL DEFAULT 1,"
    " triggered_by TEXT,"
    " scheduled_for INTEGER NOT NULL,"
    " started_at INTEGER NOT NULL DEFAULT 0,"
    " finished_at INTEGER NOT NULL DEFAULT 0,"
    " duration_ms INTEGER NOT NULL DEFAULT -1,"
    " exit_code INTEGER NOT NULL DEFAULT -1,"
    " signal INTEGER NOT NULL DEFAULT 0,"
    " output BLOB,"
    " output_truncated INTEGER NOT NULL DEFAULT 0,"
    " error TEXT,"
    " worker_pid INTEGER NOT NULL DEFAULT 0,"
    " max_rss_kb INTEGER NOT NULL DEFAULT -1,"
    " cpu_user_ms INTEGER NOT NULL DEFAULT 0,"
    " cpu_sys_ms INTEGER NOT NULL DEFAULT 0,"
    " payload BLOB,"
    " priority INTEGER NOT NULL DEFAULT 1,"
    " run_at INTEGER NOT NULL DEFAULT 0,"
    " unique_key TEXT,"
    " retry_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX executions_job ON executions (job_id, scheduled_for);"
    "CREATE INDEX executions_status ON executions (status, scheduled_for);"
    "CREATE INDEX executions_finished ON executions (finished_at);"
    "CREATE INDEX executions_unique_key ON executions (unique_key)"
    " WHERE unique_key IS NOT NULL;"
    "CREATE TABLE job_state ("
    " job_id TEXT PRIMARY KEY,"
    " last_fire INTEGER NOT NULL,"
    " paused INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE jobs ("
    " id TEXT PRIMARY KEY,"
    " definition TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL);"
    "CREATE TABLE job_stats ("
    " job_id TEXT PRIMARY KEY,"
    " runs INTEGER NOT NULL,"
    " successes INTEGER NOT NULL,"
    " failures INTEGER NOT NULL,"
    " durations INTEGER NOT NULL,"
    " duration_sum INTEGER NOT NULL,"
    " duration_max INTEGER NOT NULL,"
    " last_run INTEGER NOT NULL,"
    " last_status TEXT) WITHOUT ROWID;"
    "CREATE TABLE job_durations ("
    " job_id TEXT NOT NULL,"
    " bucket INTEGER NOT NULL,"
    " count INTEGER NOT NULL,"
    " PRIMARY KEY (job_id, bucket)) WITHOUT ROWID;";

/* Append only: entry i takes a file from version i to version i + 1. */
static const char *const hg_sq_migrations[] = {
    hg_sq_schema_v1,
};

#define HG_SQ_SCHEMA_VERSION  ((int) HG_NELEMS(hg_sq_migrations))

/* The column order every read of executions follows (hg_sq_read_row). */
#define HG_SQ_COLS_HEAD \
    "id, run_id, job_id, status, attempt, triggered_by, scheduled_for," \
    " started_at, finished_at, duration_ms, exit_code, signal, "
#define HG_SQ_COLS_MID \
    ", output_truncated, error, worker_pid, max_rss_kb, cpu_user_ms," \
    " cpu_sys_ms, "
#define HG_SQ_COLS_TAIL ", priority, run_at, unique_key, retry_at"
#define HG_SQ_COLS_FULL \
    HG_SQ_COLS_HEAD "output" HG_SQ_COLS_MID "payload" HG_SQ_COLS_TAIL
#define HG_SQ_COLS_LIST \
    HG_SQ_COLS_HEAD "NULL" HG_SQ_COLS_MID "NULL" HG_SQ_COLS_TAIL

static const char hg_sq_sql_put[] =
    "INSERT INTO executions (" HG_SQ_COLS_FULL ") VALUES (?1, ?2, ?3, ?4,"
    " ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,"
    " ?20, ?21, ?22, ?23, ?24)"
    " ON CONFLICT(id) DO UPDATE SET run_id = excluded.run_id,"
    " job_id = excluded.job_id, status = excluded.status,"
    " attempt = excluded.attempt, triggered_by = excluded.triggered_by,"
    " scheduled_for = excluded.scheduled_for,"
    " started_at = excluded.started_at, finished_at = excluded.finished_at,"
    " duration_ms = excluded.duration_ms, exit_code = excluded.exit_code,"
    " signal = excluded.signal, output = excluded.output,"
    " output_truncated = excluded.output_truncated, error = excluded.error,"
    " worker_pid = excluded.worker_pid, max_rss_kb = excluded.max_rss_kb,"
    " cpu_user_ms = excluded.cpu_user_ms, cpu_sys_ms = excluded.cpu_sys_ms,"
    " payload = excluded.payload, priority = excluded.priority,"
    " run_at = excluded.run_at, unique_key = excluded.unique_key,"
    " retry_at = excluded.retry_at";

static const char hg_sq_sql_old[] =
    "SELECT job_id, status, scheduled_for, started_at, finished_at,"
    " duration_ms FROM executions WHERE id = ?1";

static const char hg_sq_sql_state[] =
    "INSERT INTO job_state (job_id, last_fire, paused) VALUES (?1, ?2, ?3)"
    " ON CONFLICT(job_id) DO UPDATE SET last_fire = excluded.last_fire,"
    " paused = excluded.paused";

/* In an UPDATE every expression sees the row as it was. */
static const char hg_sq_sql_stats[] =
    "INSERT INTO job_stats (job_id, runs, successes, failures, durations,"
    " duration_sum, duration_max, last_run, last_status)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    " ON CONFLICT(job_id) DO UPDATE SET runs = runs + excluded.runs,"
    " successes = successes + excluded.successes,"
    " failures = failures + excluded.failures,"
    " durations = durations + excluded.durations,"
    " duration_sum = duration_sum + excluded.duration_sum,"
    " duration_max = max(duration_max, excluded.duration_max),"
    " last_status = CASE WHEN excluded.last_status IS NOT NULL"
    "   AND excluded.last_run >= last_run THEN excluded.last_status"
    "   ELSE last_status END,"
    " last_run = max(last_run, excluded.last_run)";

static const char hg_sq_sql_bucket[] =
    "INSERT INTO job_durations (job_id, bucket, count) VALUES (?1, ?2, ?3)"
    " ON CONFLICT(job_id, bucket) DO UPDATE SET count = count"
    " + excluded.count";

/* --- state --------------------------------------------------------------- */

typedef struct hg_sq_item_s {
    struct hg_sq_item_s *prev, *next;
    hg_exec_row_t row;
} hg_sq_item_t;

typedef struct hg_sq_state_s {
    int64_t last_fire;
    bool paused;
    char job_id[];
} hg_sq_state_t;

/* What waits to be written: executions oldest first, with an index by id
 * (a later put of an id replaces the record in place), and job states by
 * job id (the last one wins). */
typedef struct hg_sq_queue_s {
    hg_sq_item_t *head, *tail;
    size_t count;
    hg_map_t ids;                   /* id -> hg_sq_item_t * */
    hg_map_t states;                /* job id -> hg_sq_state_t * */
} hg_sq_queue_t;

typedef struct hg_sq_s {
    char *path;
    sqlite3 *wdb;                   /* the writer thread's */
    sqlite3 *rdb;                   /* the caller's: reads */
    sqlite3 *mdb;                   /* the maintenance thread's */
    sqlite3_stmt *w_put, *w_old, *w_state, *w_stats, *w_bucket;
    sqlite3_stmt *r_get, *r_stats, *r_buckets, *r_unique;

    size_t queue_limit;
    int64_t retry_max_ms;
    int busy_timeout_ms;
    int notify_fd;

    pthread_t writer;
    bool writer_started;
    pthread_t maintainer;
    bool maintainer_started;
    pthread_mutex_t mu;
    pthread_cond_t cond;            /* the writer's; CLOCK_MONOTONIC */
    pthread_cond_t tasks_cond;      /* the maintenance thread's */

    /* Everything below is under mu. */
    hg_sq_queue_t q;
    size_t in_flight;               /* records in the writer's transaction */
    uint64_t issued;                /* the last barrier ticket given out */
    uint64_t committed;             /* the last ticket made durable */
    bool stop;
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
    uint64_t max_pages;             /* test hook; 0 = no limit */
    bool pages_changed;             /* a new max_pages: apply it now */
    bool pages_retry;               /* applying it failed: with the next try */
    size_t recovered;               /* committed in chunks this episode */
    bool moved;                     /* the file left its path (writer's) */
    hg_store_tasks_t tasks;         /* for the maintenance thread */
    hg_store_tasks_t done;          /* for hg_store_task_done */
} hg_sq_t;

static int64_t
hg_sq_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
hg_sq_notify(hg_sq_t *d)
{
    uint64_t one = 1;

    /* EAGAIN means the counter is already non-zero: the master will wake
     * anyway. */
    while (write(d->notify_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
}

static void
hg_sq_finalize(sqlite3_stmt **stmt)
{
    /* finalize repeats the last step's error, already handled there. */
    (void) sqlite3_finalize(*stmt);
    *stmt = NULL;
}

/* --- the queue ----------------------------------------------------------- */

static void
hg_sq_queue_init(hg_sq_queue_t *q)
{
    q->head = q->tail = NULL;
    q->count = 0;
    hg_map_init(&q->ids);
    hg_map_init(&q->states);
}

static void
hg_sq_item_free(hg_sq_item_t *item)
{
    hg_exec_row_free(&item->row);
    free(item);
}

static void
hg_sq_queue_free(hg_sq_queue_t *q)
{
    hg_sq_item_t *item, *next;
    size_t i = 0;
    const char *key;
    void *value;

    for (item = q->head; item != NULL; item = next) {
        next = item->next;
        hg_sq_item_free(item);
    }
    while (hg_map_next(&q->states, &i, &key, &value)) {
        free(value);
    }
    hg_map_free(&q->ids);
    hg_map_free(&q->states);
    hg_sq_queue_init(q);
}

static void
hg_sq_unlink(hg_sq_queue_t *q, hg_sq_item_t *item)
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
hg_sq_link(hg_sq_queue_t *q, hg_sq_item_t *item, bool front)
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
hg_sq_push(hg_sq_queue_t *q, hg_sq_item_t *item, bool front)
{
    if (hg_map_put(&q->ids, item->row.r.id, item) != HG_OK) {
        return HG_ERROR;
    }
    hg_sq_link(q, item, front);
    return HG_OK;
}

/* Under mu: drops the oldest records beyond queue_limit. Returns the id
 * and job of the first one dropped, for the caller's log line, in
 * what/whatlen (empty when nothing was dropped or the drop was already
 * logged in this episode). */
static void
hg_sq_trim(hg_sq_t *d, char *what, size_t whatlen)
{
    hg_sq_item_t *oldest;

    what[0] = '\0';
    while (d->q.count > d->queue_limit && d->q.head != NULL) {
        oldest = d->q.head;
        if (!d->drop_logged) {
            d->drop_logged = true;
            snprintf(what, whatlen, "execution %s of job %s (%s)",
                     oldest->row.r.id, oldest->row.r.job_id,
                     hg_exec_status_name(oldest->row.r.status));
        }
        hg_map_remove(&d->q.ids, oldest->row.r.id);
        hg_sq_unlink(&d->q, oldest);
        hg_sq_item_free(oldest);
        d->dropped++;
        d->episode_dropped++;
    }
}

/* Under mu: puts a batch whose transaction failed back in front of what
 * was queued meanwhile; a record queued meanwhile for the same id is
 * newer and wins. */
static void
hg_sq_requeue(hg_sq_t *d, hg_sq_queue_t *batch)
{
    hg_sq_item_t *item, *prev;
    size_t i = 0;
    const char *key;
    void *value;
    char what[256];

    while (hg_map_next(&batch->states, &i, &key, &value)) {
        hg_sq_state_t *st = value;
        if (hg_map_get(&d->q.states, st->job_id) != NULL
            || hg_map_put(&d->q.states, st->job_id, st) != HG_OK)
        {
            free(st);
        }
    }
    for (item = batch->tail; item != NULL; item = prev) {
        prev = item->prev;
        if (hg_map_get(&d->q.ids, item->row.r.id) != NULL
            || hg_sq_push(&d->q, item, true) != HG_OK)
        {
            if (hg_map_get(&d->q.ids, item->row.r.id) == NULL) {
                d->dropped++;           /* out of memory for the index */
                d->episode_dropped++;
            }
            hg_sq_item_free(item);
        }
    }
    hg_map_free(&batch->ids);
    hg_map_free(&batch->states);
    hg_sq_queue_init(batch);
    hg_sq_trim(d, what, sizeof(what));
    if (what[0] != '\0') {
        hg_store_logline_add(&d->lines, HG_LOG_ERROR, "store: more than %zu "
                             "records wait for %s: dropping the oldest, "
                             "starting with %s", d->queue_limit, d->path,
                             what);
    }
}

/* --- the writer ---------------------------------------------------------- */

typedef struct hg_sq_delta_s {
    int64_t runs, successes, failures, durations, duration_sum;
    int64_t duration_max, last_run;
    bool has_last;
    hg_exec_status_t last_status;
    hg_store_bucket_t *buckets;
    size_t nbuckets, cap;
    char job_id[];
} hg_sq_delta_t;

static void
hg_sq_deltas_free(hg_map_t *deltas)
{
    size_t i = 0;
    const char *key;
    void *value;

    while (hg_map_next(deltas, &i, &key, &value)) {
        hg_sq_delta_t *delta = value;
        free(delta->buckets);
        free(delta);
    }
    hg_map_free(deltas);
}

/* Adds (sign 1) or takes away (sign -1) REC's part of its job's stats. */
static int
hg_sq_delta_apply(hg_map_t *deltas, const hg_exec_record_t *rec, int sign)
{
    hg_stats_entry_t e;
    hg_sq_delta_t *delta;
    size_t i, len;

    hg_stats_entry(rec, &e);
    if (e.runs == 0) {
        return HG_OK;
    }
    delta = hg_map_get(deltas, rec->job_id);
    if (delta == NULL) {
        len = strlen(rec->job_id);
        delta = calloc(1, sizeof(*delta) + len + 1);
        if (delta == NULL) {
            return HG_ERROR;
        }
        memcpy(delta->job_id, rec->job_id, len + 1);
        if (hg_map_put(deltas, delta->job_id, delta) != HG_OK) {
            free(delta);
            return HG_ERROR;
        }
    }
    delta->runs += sign * e.runs;
    delta->successes += sign * e.successes;
    delta->failures += sign * e.failures;
    if (e.durations) {
        delta->durations += sign;
        delta->duration_sum += sign * e.duration_ms;
        if (sign > 0 && e.duration_ms > delta->duration_max) {
            delta->duration_max = e.duration_ms;
        }
        for (i = 0; i < delta->nbuckets; i++) {
            if (delta->buckets[i].bucket == e.bucket) {
                break;
            }
        }
        if (i == delta->nbuckets) {
            if (delta->nbuckets == delta->cap) {
                size_t cap = delta->cap ? delta->cap * 2 : 8;
                hg_store_bucket_t *b = realloc(delta->buckets,
                                               cap * sizeof(*b));
                if (b == NULL) {
                    return HG_ERROR;
                }
                delta->buckets = b;
                delta->cap = cap;
            }
            delta->buckets[i].bucket = e.bucket;
            delta->buckets[i].count = 0;
            delta->nbuckets++;
        }
        delta->buckets[i].count += sign;
    }
    if (sign > 0 && (!delta->has_last || e.time >= delta->last_run)) {
        delta->has_last = true;
        delta->last_run = e.time;
        delta->last_status = rec->status;
    }
    return HG_OK;
}

/* The code and message of a failed call on DB, for the fault report. */
static int
hg_sq_fail(sqlite3 *db, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s", sqlite3_errmsg(db));
    return sqlite3_extended_errcode(db);
}

static int
hg_sq_step_done(sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);

    if (rc != SQLITE_DONE) {
        (void) sqlite3_reset(stmt);     /* returns rc again */
        return rc == SQLITE_ROW ? SQLITE_MISUSE : rc;
    }
    return sqlite3_reset(stmt);
}

static int
hg_sq_text(sqlite3_stmt *s, int i, const char *text)
{
    return sqlite3_bind_text(s, i, text, -1, SQLITE_STATIC);
}

static int
hg_sq_blob(sqlite3_stmt *s, int i, const void *blob, size_t len)
{
    return sqlite3_bind_blob(s, i, blob, (int) len, SQLITE_STATIC);
}

/* The first failure of the binds in RC (they are independent). */
static int
hg_sq_binds(const int *rc, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (rc[i] != SQLITE_OK) {
            return rc[i];
        }
    }
    return SQLITE_OK;
}

static int
hg_sq_bind_put(sqlite3_stmt *s, const hg_exec_record_t *r)
{
    const int rc[] = {
        hg_sq_text(s, 1, r->id),
        hg_sq_text(s, 2, r->run_id),
        hg_sq_text(s, 3, r->job_id),
        hg_sq_text(s, 4, hg_exec_status_name(r->status)),
        sqlite3_bind_int64(s, 5, r->attempt),
        hg_sq_text(s, 6, r->trigger),
        sqlite3_bind_int64(s, 7, r->scheduled_for),
        sqlite3_bind_int64(s, 8, r->started_at),
        sqlite3_bind_int64(s, 9, r->finished_at),
        sqlite3_bind_int64(s, 10, r->duration_ms),
        sqlite3_bind_int(s, 11, r->exit_code),
        sqlite3_bind_int(s, 12, r->signo),
        hg_sq_blob(s, 13, r->output, r->output_len),
        sqlite3_bind_int(s, 14, r->output_truncated),
        hg_sq_text(s, 15, r->error),
        sqlite3_bind_int(s, 16, r->worker_pid),
        sqlite3_bind_int64(s, 17, r->max_rss_kb),
        sqlite3_bind_int64(s, 18, r->cpu_user_ms),
        sqlite3_bind_int64(s, 19, r->cpu_sys_ms),
        hg_sq_blob(s, 20, r->payload, r->payload_len),
        sqlite3_bind_int(s, 21, r->priority),
        sqlite3_bind_int64(s, 22, r->run_at),
        hg_sq_text(s, 23, r->unique_key),
        sqlite3_bind_int64(s, 24, r->retry_at),
    };

    return hg_sq_binds(rc, HG_NELEMS(rc));
}

/* Takes REC's old row (if any) out of the stats and writes REC. */
static int
hg_sq_write_exec(hg_sq_t *d, hg_map_t *deltas, const hg_exec_record_t *rec)
{
    sqlite3_stmt *s = d->w_old;
    hg_exec_record_t old;
    int rc;

    rc = sqlite3_bind_text(s, 1, rec->id, -1, SQLITE_STATIC);
    if (rc != SQLITE_OK) {
        return rc;
    }
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        memset(&old, 0, sizeof(old));
        old.job_id = (const char *) sqlite3_column_text(s, 0);
        if (old.job_id == NULL
            || hg_exec_status_parse((const char *) sqlite3_column_text(s, 1),
                                    &old.status) != HG_OK)
        {
            old.status = HG_EXEC_QUEUED;        /* counts for nothing */
        }
        old.scheduled_for = sqlite3_column_int64(s, 2);
        old.started_at = sqlite3_column_int64(s, 3);
        old.finished_at = sqlite3_column_int64(s, 4);
        old.duration_ms = sqlite3_column_int64(s, 5);
        if (hg_sq_delta_apply(deltas, &old, -1) != HG_OK) {
            (void) sqlite3_reset(s);
            return SQLITE_NOMEM;
        }
        rc = sqlite3_step(s);
    }
    if (rc != SQLITE_DONE) {
        (void) sqlite3_reset(s);
        return rc;
    }
    rc = sqlite3_reset(s);
    if (rc != SQLITE_OK) {
        return rc;
    }
    rc = hg_sq_bind_put(d->w_put, rec);
    if (rc == SQLITE_OK) {
        rc = hg_sq_step_done(d->w_put);
    }
    if (rc != SQLITE_OK) {
        return rc;
    }
    return hg_sq_delta_apply(deltas, rec, 1) == HG_OK ? SQLITE_OK
                                                       : SQLITE_NOMEM;
}

static int
hg_sq_write_delta(hg_sq_t *d, const hg_sq_delta_t *delta)
{
    sqlite3_stmt *s = d->w_stats;
    size_t i;
    int rc;

    {
        const int brc[] = {
            hg_sq_text(s, 1, delta->job_id),
            sqlite3_bind_int64(s, 2, delta->runs),
            sqlite3_bind_int64(s, 3, delta->successes),
            sqlite3_bind_int64(s, 4, delta->failures),
            sqlite3_bind_int64(s, 5, delta->durations),
            sqlite3_bind_int64(s, 6, delta->duration_sum),
            sqlite3_bind_int64(s, 7, delta->duration_max),
            sqlite3_bind_int64(s, 8, delta->last_run),
            delta->has_last
                ? hg_sq_text(s, 9, hg_exec_status_name(delta->last_status))
                : sqlite3_bind_null(s, 9),
        };
        rc = hg_sq_binds(brc, HG_NELEMS(brc));
    }
    if (rc == SQLITE_OK) {
        rc = hg_sq_step_done(s);
    }
    for (i = 0; rc == SQLITE_OK && i < delta->nbuckets; i++) {
        if (delta->buckets[i].count == 0) {
            continue;
        }
        s = d->w_bucket;
        {
            const int brc[] = {
                hg_sq_text(s, 1, delta->job_id),
                sqlite3_bind_int(s, 2, (int) delta->buckets[i].bucket),
                sqlite3_bind_int64(s, 3, delta->buckets[i].count),
            };
            rc = hg_sq_binds(brc, HG_NELEMS(brc));
        }
        if (rc == SQLITE_OK) {
            rc = hg_sq_step_done(s);
        }
    }
    return rc;
}

static int
hg_sq_set_pages(sqlite3 *db, uint64_t pages, char *err, size_t errlen)
{
    char sql[64];

    snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %" PRIu64,
             pages > 0 ? pages : HG_SQ_NO_PAGE_LIMIT);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        return hg_sq_fail(db, err, errlen);
    }
    return SQLITE_OK;
}

/* Whether the file DB has open is no longer the one at its path (deleted,
 * or another file moved there): writing on would go into the void, or
 * beside a file that another connection may open by its name. */
static bool
hg_sq_moved(sqlite3 *db)
{
    int moved = 0;

    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_HAS_MOVED, &moved)
        != SQLITE_OK)
    {
        return false;
    }
    return moved != 0;
}

/* Under mu (or with the writer stopped): moves the oldest records of the
 * queue into BATCH, at most LIMIT of them (0 = all), and every job state.
 * Returns whether the queue is empty after. */
static bool
hg_sq_take(hg_sq_t *d, hg_sq_queue_t *batch, size_t limit)
{
    hg_sq_item_t *item;
    size_t n;

    if (limit == 0 || d->q.count <= limit) {
        *batch = d->q;
        hg_sq_queue_init(&d->q);
        return true;
    }
    hg_sq_queue_init(batch);
    batch->states = d->q.states;
    hg_map_init(&d->q.states);
    for (n = 0; n < limit; n++) {
        item = d->q.head;
        hg_map_remove(&d->q.ids, item->row.r.id);
        hg_sq_unlink(&d->q, item);
        /* The batch needs no index: nothing looks ids up in it. */
        hg_sq_link(batch, item, false);
    }
    return false;
}

/* One transaction for everything in BATCH. SQLITE_OK, or the failing
 * code with its message in err (and everything rolled back). */
static int
hg_sq_commit(hg_sq_t *d, hg_sq_queue_t *batch, char *err, size_t errlen)
{
    hg_map_t deltas;
    hg_sq_item_t *item;
    size_t i = 0;
    const char *key;
    void *value;
    int rc;

    if (batch->count == 0 && batch->states.count == 0) {
        return SQLITE_OK;
    }
    if (hg_sq_moved(d->wdb)) {
        d->moved = true;
        snprintf(err, errlen, "the file was deleted or replaced while "
                 "hourglass runs (the one it has open is no longer at that "
                 "path)");
        return SQLITE_READONLY_DBMOVED;
    }
    d->moved = false;               /* put back where it was */
    hg_map_init(&deltas);
    rc = sqlite3_exec(d->wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        goto failed;
    }
    for (item = batch->head; item != NULL; item = item->next) {
        rc = hg_sq_write_exec(d, &deltas, &item->row.r);
        if (rc != SQLITE_OK) {
            goto failed;
        }
    }
    while (hg_map_next(&batch->states, &i, &key, &value)) {
        hg_sq_state_t *st = value;
        sqlite3_stmt *s = d->w_state;
        const int brc[] = {
            hg_sq_text(s, 1, st->job_id),
            sqlite3_bind_int64(s, 2, st->last_fire),
            sqlite3_bind_int(s, 3, st->paused),
        };
        rc = hg_sq_binds(brc, HG_NELEMS(brc));
        if (rc == SQLITE_OK) {
            rc = hg_sq_step_done(s);
        }
        if (rc != SQLITE_OK) {
            goto failed;
        }
    }
    i = 0;
    while (hg_map_next(&deltas, &i, &key, &value)) {
        rc = hg_sq_write_delta(d, value);
        if (rc != SQLITE_OK) {
            goto failed;
        }
    }
    rc = sqlite3_exec(d->wdb, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        goto failed;
    }
    hg_sq_deltas_free(&deltas);
    return SQLITE_OK;

failed:
    if (rc == SQLITE_NOMEM) {
        snprintf(err, errlen, "out of memory");
    } else {
        rc = hg_sq_fail(d->wdb, err, errlen);
    }
    /* SQLite may have rolled back already (SQLITE_FULL can); otherwise a
     * failing ROLLBACK leaves the transaction open, and the next BEGIN
     * reports it. */
    if (!sqlite3_get_autocommit(d->wdb)
        && sqlite3_exec(d->wdb, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
    {
        snprintf(err + strlen(err), errlen - strlen(err), " (rollback: %s)",
                 sqlite3_errmsg(d->wdb));
    }
    hg_sq_deltas_free(&deltas);
    return rc;
}

static bool
hg_sq_has_work(const hg_sq_t *d)
{
    return d->q.count > 0 || d->q.states.count > 0
           || d->issued > d->committed || d->pages_changed;
}

static void
hg_sq_format_ms(int64_t ms, char *buf, size_t len)
{
    if (ms % 1000 == 0) {
        snprintf(buf, len, "%" PRId64 "s", ms / 1000);
    } else {
        snprintf(buf, len, "%" PRId64 "ms", ms);
    }
}

/* Under mu: the writer's view of a failed transaction. */
static void
hg_sq_failed(hg_sq_t *d, hg_sq_queue_t *batch, int code, const char *err,
             int64_t *backoff)
{
    int64_t now = hg_sq_mono_ms(), at;
    int primary = code & 0xff;
    char every[32];

    d->write_errors++;
    snprintf(d->last_error, sizeof(d->last_error), "%s", err);
    d->error_changed = true;
    hg_sq_requeue(d, batch);

    *backoff = *backoff > 0 ? *backoff * 2 : d->retry_max_ms / 10;
    if (*backoff > d->retry_max_ms) {
        *backoff = d->retry_max_ms;
    }
    if (*backoff < 1) {
        *backoff = 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &d->retry_at);
    at = (int64_t) d->retry_at.tv_nsec + *backoff * HG_NSEC_PER_MSEC;
    d->retry_at.tv_sec += (time_t) (at / HG_NSEC_PER_SEC);
    d->retry_at.tv_nsec = (long) (at % HG_NSEC_PER_SEC);

    d->fail_attempts++;
    if (d->failing) {
        return;
    }
    d->failing = true;
    d->fail_since = now;
    d->fail_attempts = 1;
    hg_sq_format_ms(d->retry_max_ms, every, sizeof(every));
    hg_store_logline_add(&d->lines,
                         primary == SQLITE_BUSY || primary == SQLITE_LOCKED
                         ? HG_LOG_WARN : HG_LOG_ERROR,
                         "store: cannot write %s: %s; keeping %zu record%s "
                         "in memory and retrying every %s%s", d->path, err,
                         d->q.count, d->q.count == 1 ? "" : "s", every,
                         primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB
                         ? " (the file is damaged: stop hourglass, then "
                           "restore it from a backup or move it aside)"
                         : code == SQLITE_READONLY_DBMOVED
                         ? " (hourglass writes nothing into a file that is "
                           "no longer at its path; when it stops, what it "
                           "keeps in memory is written to a new file at "
                           "that path: restart it to go on recording)"
                         : "");
}

/* Under mu: the writer's view of a successful transaction. DRAINED: it
 * took the whole queue (a recovery goes on chunk by chunk until then). */
static void
hg_sq_succeeded(hg_sq_t *d, size_t records, bool drained)
{
    int64_t lasted;
    char dropped[64];

    d->written += records;
    if (!d->failing) {
        d->drop_logged = false;
        return;
    }
    records += d->recovered;
    if (!drained) {
        /* Progress: the next chunk goes at once, without backoff. */
        d->recovered = records;
        clock_gettime(CLOCK_MONOTONIC, &d->retry_at);
        return;
    }
    d->recovered = 0;
    lasted = hg_sq_mono_ms() - d->fail_since;
    dropped[0] = '\0';
    if (d->episode_dropped > 0) {
        snprintf(dropped, sizeof(dropped), "; %" PRIu64 " older record%s "
                 "dropped", d->episode_dropped,
                 d->episode_dropped == 1 ? " was" : "s were");
    }
    hg_store_logline_add(&d->lines,
                         d->episode_dropped > 0 ? HG_LOG_WARN : HG_LOG_INFO,
                         "store: writing %s again after %" PRId64 ".%03"
                         PRId64 "s and %" PRIu64 " failed attempt%s: %zu "
                         "record%s kept in memory %s committed%s", d->path,
                         lasted / 1000, lasted % 1000, d->fail_attempts,
                         d->fail_attempts == 1 ? "" : "s", records,
                         records == 1 ? "" : "s", records == 1 ? "is" : "are",
                         dropped);
    d->failing = false;
    d->episode_dropped = 0;
    d->drop_logged = false;
}

static void *
hg_sq_writer(void *arg)
{
    hg_sq_t *d = arg;
    hg_sq_queue_t batch;
    uint64_t ticket, pages = 0;
    bool last_try, set_pages, pages_failed, drained;
    int64_t backoff = 0;
    char err[256];
    int rc;

    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->stop && !hg_sq_has_work(d)) {
            pthread_cond_wait(&d->cond, &d->mu);
        }
        /* Back off while failing; stop or a new page limit end the wait. */
        while (d->failing && !d->stop && !d->pages_changed
               && pthread_cond_timedwait(&d->cond, &d->mu, &d->retry_at)
                  != ETIMEDOUT)
        {
        }
        last_try = d->stop;
        /* Recovering, the backlog goes in bounded transactions: a little
         * room freed on a full disk lets some of it through, where one
         * transaction of everything would fail again and again. A ticket
         * is reached when the queue is drained. */
        drained = hg_sq_take(d, &batch, d->failing ? HG_SQ_CHUNK : 0);
        ticket = drained ? d->issued : d->committed;
        set_pages = d->pages_changed || d->pages_retry;
        pages = d->max_pages;
        d->pages_changed = false;
        d->pages_retry = false;
        d->in_flight = batch.count;
        pthread_mutex_unlock(&d->mu);

        err[0] = '\0';
        rc = SQLITE_OK;
        if (set_pages) {
            rc = hg_sq_set_pages(d->wdb, pages, err, sizeof(err));
        }
        pages_failed = rc != SQLITE_OK;
        if (rc == SQLITE_OK) {
            rc = hg_sq_commit(d, &batch, err, sizeof(err));
        }

        pthread_mutex_lock(&d->mu);
        d->in_flight = 0;
        if (pages_failed) {
            d->pages_retry = true;      /* with the next attempt */
        }
        if (rc == SQLITE_OK) {
            if (ticket > d->committed) {
                d->committed = ticket;
            }
            hg_sq_succeeded(d, batch.count, drained);
            hg_sq_queue_free(&batch);
            backoff = 0;
        } else {
            hg_sq_failed(d, &batch, rc, err, &backoff);
            if (last_try && d->moved) {
                break;                  /* hg_sq_close rescues them */
            }
            if (last_try) {
                hg_store_logline_add(&d->lines, HG_LOG_ERROR, "store: "
                                     "closing with %zu records not written "
                                     "to %s: %s", d->q.count, d->path, err);
                break;
            }
        }
        hg_sq_notify(d);
        if (d->stop && !hg_sq_has_work(d)) {
            break;
        }
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* --- open, close, check -------------------------------------------------- */

/* mkdir -p of the directory part of PATH. */
static int
hg_sq_mkdirs(const char *path, char *err, size_t errlen)
{
    char *dir, *p;
    int rc = HG_OK;

    dir = strdup(path);
    if (dir == NULL) {
        snprintf(err, errlen, "store: out of memory");
        return HG_ERROR;
    }
    p = strrchr(dir, '/');
    if (p == NULL || p == dir) {
        goto done;
    }
    *p = '\0';
    for (p = dir + 1; ; p++) {
        if (*p != '/' && *p != '\0') {
            continue;
        }
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "store.path: cannot create directory %s "
                     "for %s: %s", dir, path, strerror(errno));
            rc = HG_ERROR;
            goto done;
        }
        *p = c;
        if (c == '\0') {
            break;
        }
    }
done:
    free(dir);
    return rc;
}

static int
hg_sq_pragma_int(sqlite3 *db, const char *sql, int64_t *value)
{
    sqlite3_stmt *s = NULL;
    int rc;

    rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK) {
        return rc;
    }
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *value = sqlite3_column_int64(s, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        *value = 0;
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK) {
        (void) sqlite3_finalize(s);
        return rc;
    }
    return sqlite3_finalize(s);
}

/* A message for an error met while opening PATH: what SQLite says, and
 * the system's reason when there is one. */
static void
hg_sq_open_error(sqlite3 *db, const char *path, const char *doing,
                 char *err, size_t errlen)
{
    int code = db != NULL ? sqlite3_errcode(db) : SQLITE_NOMEM;
    int sys = db != NULL ? sqlite3_system_errno(db) : 0;
    const char *msg = db != NULL ? sqlite3_errmsg(db) : "out of memory";

    if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT) {
        snprintf(err, errlen, "store.path: %s is not a usable SQLite "
                 "database (%s); move it aside or restore it from a backup",
                 path, msg);
    } else if (code == SQLITE_READONLY || code == SQLITE_CANTOPEN) {
        snprintf(err, errlen, "store.path: cannot write %s: %s%s%s", path,
                 msg, sys != 0 ? ": " : "", sys != 0 ? strerror(sys) : "");
    } else {
        snprintf(err, errlen, "store.path: %s: %s: %s%s%s", path, doing, msg,
                 sys != 0 ? ": " : "", sys != 0 ? strerror(sys) : "");
    }
}

/* Brings the schema to HG_SQ_SCHEMA_VERSION. A file already there is
 * only read: the write lock is taken when there is something to write. */
static int
hg_sq_migrate(sqlite3 *db, const char *path, int64_t seen, char *err,
              size_t errlen)
{
    int64_t version;
    int v;
    char sql[64];

    if (seen == HG_SQ_SCHEMA_VERSION) {
        return HG_OK;
    }
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        hg_sq_open_error(db, path, "cannot lock it to check its schema",
                         err, errlen);
        return HG_ERROR;
    }
    if (hg_sq_pragma_int(db, "PRAGMA user_version", &version) != SQLITE_OK) {
        hg_sq_open_error(db, path, "cannot read its schema version", err,
                         errlen);
        goto failed;
    }
    if (version > HG_SQ_SCHEMA_VERSION || version < 0) {
        snprintf(err, errlen, "store.path: %s has schema version %" PRId64
                 ", newer than this hourglass knows (%d): it was written "
                 "by a later version", path, version, HG_SQ_SCHEMA_VERSION);
        goto failed;
    }
    for (v = (int) version; v < HG_SQ_SCHEMA_VERSION; v++) {
        if (sqlite3_exec(db, hg_sq_migrations[v], NULL, NULL, NULL)
            != SQLITE_OK)
        {
            snprintf(err, errlen, "store.path: %s: migrating the schema to "
                     "version %d failed: %s", path, v + 1,
                     sqlite3_errmsg(db));
            goto failed;
        }
    }
    if (version < HG_SQ_SCHEMA_VERSION) {
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
                 HG_SQ_SCHEMA_VERSION);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            hg_sq_open_error(db, path, "cannot set its schema version", err,
                             errlen);
            goto failed;
        }
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        hg_sq_open_error(db, path, "cannot commit its schema", err, errlen);
        goto failed;
    }
    if (version == 0) {
        hg_log(HG_LOG_INFO, "store: %s: schema version %d created", path,
               HG_SQ_SCHEMA_VERSION);
    } else if (version < HG_SQ_SCHEMA_VERSION) {
        hg_log(HG_LOG_INFO, "store: %s: schema migrated from version %"
               PRId64 " to %d", path, version, HG_SQ_SCHEMA_VERSION);
    }
    return HG_OK;

failed:
    if (!sqlite3_get_autocommit(db)) {
        /* Nothing more to say if even the rollback fails: the file is
         * closed next, which rolls back too. */
        (void) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    return HG_ERROR;
}

/* Opens PATH without following a symbolic link at its last component
 * (a link planted there must not make hourglass write its target). A
 * missing file is created 0600 first: it holds job output, and SQLite
 * gives the -wal and -shm files the database's permissions. */
static int
hg_sq_connect(const char *path, sqlite3 **out, int busy_ms, char *err,
              size_t errlen)
{
    sqlite3 *db = NULL;
    int rc, fd;

    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0600);
    if (fd >= 0) {
        close(fd);
    } else if (errno != EEXIST) {
        snprintf(err, errlen, "store.path: cannot create %s: %s", path,
                 strerror(errno));
        return HG_ERROR;
    }
    rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE
                         | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
    if (rc != SQLITE_OK) {
        hg_sq_open_error(db, path, "cannot open it", err, errlen);
        goto failed;
    }
    if (sqlite3_extended_result_codes(db, 1) != SQLITE_OK
        || sqlite3_busy_timeout(db, busy_ms) != SQLITE_OK)
    {
        hg_sq_open_error(db, path, "cannot set it up", err, errlen);
        goto failed;
    }
    if (sqlite3_db_readonly(db, "main") == 1) {
        errno = 0;
        snprintf(err, errlen, "store.path: cannot write %s: %s", path,
                 access(path, W_OK) != 0 ? strerror(errno)
                 : "SQLite opened it read-only");
        goto failed;
    }
    *out = db;
    return HG_OK;

failed:
    /* close of a handle that never ran a statement cannot fail usefully */
    (void) sqlite3_close(db);
    return HG_ERROR;
}

static int
hg_sq_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **stmt,
              const char *path, char *err, size_t errlen)
{
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt,
                           NULL) != SQLITE_OK)
    {
        hg_sq_open_error(db, path, "cannot prepare a statement", err,
                         errlen);
        return HG_ERROR;
    }
    return HG_OK;
}

static int
hg_sq_exec_open(sqlite3 *db, const char *sql, const char *path, char *err,
                size_t errlen)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        hg_sq_open_error(db, path, sql, err, errlen);
        return HG_ERROR;
    }
    return HG_OK;
}

static void hg_sq_free(hg_sq_t *d);
static int hg_sq_check(const hg_conf_t *conf, char *err, size_t errlen);

/* The write connection and its statements. Writes to the file only when
 * it is new (auto_vacuum, WAL mode, the schema) or its schema version
 * changes: opening a store that is up to date changes nothing in it. */
static int
hg_sq_open_writer(hg_sq_t *d, char *err, size_t errlen)
{
    sqlite3_stmt *s = NULL;
    const char *mode;
    int64_t version = 0;
    bool wal;
    int rc;

    if (hg_sq_connect(d->path, &d->wdb, d->busy_timeout_ms, err, errlen)
        != HG_OK)
    {
        return HG_ERROR;
    }
    if (hg_sq_pragma_int(d->wdb, "PRAGMA user_version", &version)
        != SQLITE_OK)
    {
        hg_sq_open_error(d->wdb, d->path, "cannot read it", err, errlen);
        return HG_ERROR;
    }
    /* auto_vacuum takes effect only before the first table is created,
     * i.e. on a new file; on an existing one it would rewrite page 1. */
    if (version == 0
        && hg_sq_exec_open(d->wdb, "PRAGMA auto_vacuum = INCREMENTAL",
                           d->path, err, errlen) != HG_OK)
    {
        return HG_ERROR;
    }
    rc = sqlite3_prepare_v2(d->wdb, "PRAGMA journal_mode", -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
    }
    mode = rc == SQLITE_ROW ? (const char *) sqlite3_column_text(s, 0)
                            : NULL;
    wal = mode != NULL && strcmp(mode, "wal") == 0;
    hg_sq_finalize(&s);
    if (rc != SQLITE_ROW) {
        hg_sq_open_error(d->wdb, d->path, "cannot read its journal mode",
                         err, errlen);
        return HG_ERROR;
    }
    if (!wal) {
        rc = sqlite3_prepare_v2(d->wdb, "PRAGMA journal_mode = WAL", -1, &s,
                                NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(s);
        }
        wal = rc == SQLITE_ROW && sqlite3_column_text(s, 0) != NULL
              && strcmp((const char *) sqlite3_column_text(s, 0), "wal")
                 == 0;
        hg_sq_finalize(&s);
        if (rc != SQLITE_ROW) {
            hg_sq_open_error(d->wdb, d->path, "cannot use WAL mode", err,
                             errlen);
            return HG_ERROR;
        }
        if (!wal) {
            snprintf(err, errlen, "store.path: %s: cannot use WAL mode (the "
                     "file system may not support shared memory)", d->path);
            return HG_ERROR;
        }
    }
    if (hg_sq_exec_open(d->wdb, "PRAGMA synchronous = NORMAL;"
                        "PRAGMA cache_size = -32768", d->path, err, errlen)
        != HG_OK
        || hg_sq_migrate(d->wdb, d->path, version, err, errlen) != HG_OK)
    {
        return HG_ERROR;
    }
    if (d->max_pages > 0
        && hg_sq_set_pages(d->wdb, d->max_pages, err, errlen) != SQLITE_OK)
    {
        hg_sq_open_error(d->wdb, d->path, "cannot limit its size", err,
                         errlen);
        return HG_ERROR;
    }
    if (hg_sq_prepare(d->wdb, hg_sq_sql_put, &d->w_put, d->path, err, errlen)
        || hg_sq_prepare(d->wdb, hg_sq_sql_old, &d->w_old, d->path, err,
                         errlen)
        || hg_sq_prepare(d->wdb, hg_sq_sql_state, &d->w_state, d->path, err,
                         errlen)
        || hg_sq_prepare(d->wdb, hg_sq_sql_stats, &d->w_stats, d->path, err,
                         errlen)
        || hg_sq_prepare(d->wdb, hg_sq_sql_bucket, &d->w_bucket, d->path,
                         err, errlen))
    {
        return HG_ERROR;
    }
    return HG_OK;
}


static int
hg_sq_open(hg_store_t *store, const hg_conf_t *conf,
           const hg_store_options_t *options, char *err, size_t errlen)
{
    hg_sq_t *d;
    pthread_condattr_t attr;
    sigset_t all, old;
    int rc;

    if (conf->store.path == NULL || conf->store.path[0] == '\0') {
        snprintf(err, errlen, "store.path: not set (the sqlite driver needs "
                 "a file)");
        return HG_ERROR;
    }
    if (sqlite3_threadsafe() == 0) {
        snprintf(err, errlen, "store: this SQLite library was built without "
                 "thread support (SQLITE_THREADSAFE=0); the writer thread "
                 "needs it");
        return HG_ERROR;
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        snprintf(err, errlen, "store: out of memory");
        return HG_ERROR;
    }
    d->notify_fd = -1;
    hg_sq_queue_init(&d->q);
    if (pthread_mutex_init(&d->mu, NULL) != 0) {
        snprintf(err, errlen, "store: cannot create a mutex");
        free(d);
        return HG_ERROR;
    }
    if (pthread_condattr_init(&attr) != 0) {
        snprintf(err, errlen, "store: cannot create a condition variable");
        pthread_mutex_destroy(&d->mu);
        free(d);
        return HG_ERROR;
    }
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0) {
        rc = pthread_cond_init(&d->cond, &attr);
    }
    pthread_condattr_destroy(&attr);
    if (rc == 0 && pthread_cond_init(&d->tasks_cond, NULL) != 0) {
        pthread_cond_destroy(&d->cond);
        rc = -1;
    }
    if (rc != 0) {
        snprintf(err, errlen, "store: cannot create a condition variable");
        pthread_mutex_destroy(&d->mu);
        free(d);
        return HG_ERROR;
    }
    /* From here on hg_sq_free undoes everything. */
    d->queue_limit = options->queue_limit > 0 ? options->queue_limit
                                              : HG_SQ_QUEUE_LIMIT;
    d->retry_max_ms = options->retry_max_ms > 0 ? options->retry_max_ms
                                                : HG_SQ_RETRY_MAX_MS;
    d->busy_timeout_ms = options->busy_timeout_ms > 0
        ? (int) (options->busy_timeout_ms < INT_MAX
                 ? options->busy_timeout_ms : INT_MAX)
        : HG_SQ_BUSY_TIMEOUT_MS;
    d->max_pages = options->max_page_count;
    d->path = strdup(conf->store.path);
    if (d->path == NULL) {
        snprintf(err, errlen, "store: out of memory");
        goto failed;
    }

    /* hg_sq_check first: the reasons it gives (read-only file system,
     * not a database, newer schema) are clearer than SQLite's. */
    if (hg_sq_mkdirs(d->path, err, errlen) != HG_OK
        || hg_sq_check(conf, err, errlen) != HG_OK
        || hg_sq_open_writer(d, err, errlen) != HG_OK)
    {
        goto failed;
    }
    if (hg_sq_connect(d->path, &d->rdb, d->busy_timeout_ms, err, errlen)
        != HG_OK
        || hg_sq_exec_open(d->rdb, "PRAGMA cache_size = -8192", d->path,
                           err, errlen) != HG_OK
        || hg_sq_prepare(d->rdb, "SELECT " HG_SQ_COLS_FULL " FROM executions"
                         " WHERE id = ?1", &d->r_get, d->path, err, errlen)
        || hg_sq_prepare(d->rdb, "SELECT runs, successes, failures,"
                         " durations, duration_sum, duration_max, last_run,"
                         " last_status FROM job_stats WHERE job_id = ?1",
                         &d->r_stats, d->path, err, errlen)
        || hg_sq_prepare(d->rdb, "SELECT bucket, count FROM job_durations"
                         " WHERE job_id = ?1 AND count > 0 ORDER BY bucket",
                         &d->r_buckets, d->path, err, errlen)
        || hg_sq_prepare(d->rdb, "SELECT 1 FROM executions WHERE"
                         " unique_key = ?1 AND status = 'queued' LIMIT 1",
                         &d->r_unique, d->path, err, errlen))
    {
        goto failed;
    }
    /* The maintenance connection is opened now, beside the others, while
     * the path is known to name the file they have open; the maintenance
     * thread starts with the first task. */
    if (hg_sq_connect(d->path, &d->mdb, d->busy_timeout_ms, err, errlen)
        != HG_OK
        || hg_sq_exec_open(d->mdb, "PRAGMA cache_size = -2048", d->path,
                           err, errlen) != HG_OK)
    {
        goto failed;
    }

    d->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (d->notify_fd < 0) {
        snprintf(err, errlen, "store: eventfd: %s", strerror(errno));
        goto failed;
    }
    /* The writer blocks every signal: the master's signalfd must get them
     * all, and a signal a thread does not block may land on that thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&d->writer, NULL, hg_sq_writer, d);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "store: cannot start the writer thread: %s",
                 strerror(rc));
        goto failed;
    }
    d->writer_started = true;
    store->data = d;
    store->notify_fd = d->notify_fd;
    return HG_OK;

failed:
    hg_sq_free(d);
    return HG_ERROR;
}

/* Closes every connection (the threads have ended). */
static void
hg_sq_disconnect(hg_sq_t *d)
{
    int rc;

    hg_sq_finalize(&d->w_put);
    hg_sq_finalize(&d->w_old);
    hg_sq_finalize(&d->w_state);
    hg_sq_finalize(&d->w_stats);
    hg_sq_finalize(&d->w_bucket);
    hg_sq_finalize(&d->r_get);
    hg_sq_finalize(&d->r_stats);
    hg_sq_finalize(&d->r_buckets);
    hg_sq_finalize(&d->r_unique);
    if (d->mdb != NULL && (rc = sqlite3_close(d->mdb)) != SQLITE_OK) {
        hg_log(HG_LOG_ERROR, "store: closing the maintenance connection of "
               "%s: %s", d->path, sqlite3_errstr(rc));
    }
    if (d->rdb != NULL && (rc = sqlite3_close(d->rdb)) != SQLITE_OK) {
        hg_log(HG_LOG_ERROR, "store: closing the reader of %s: %s", d->path,
               sqlite3_errstr(rc));
    }
    /* The last connection to close checkpoints the WAL into the file. */
    if (d->wdb != NULL && (rc = sqlite3_close(d->wdb)) != SQLITE_OK) {
        hg_log(HG_LOG_ERROR, "store: closing %s: %s", d->path,
               sqlite3_errstr(rc));
    }
    d->mdb = d->rdb = d->wdb = NULL;
}

/* Frees D; the writer and maintenance threads, if any, have ended. */
static void
hg_sq_free(hg_sq_t *d)
{
    hg_sq_disconnect(d);
    hg_store_loglines_emit(d->lines);
    hg_sq_queue_free(&d->q);
    hg_store_tasks_free(&d->tasks);
    hg_store_tasks_free(&d->done);
    if (d->notify_fd >= 0) {
        close(d->notify_fd);
    }
    pthread_cond_destroy(&d->cond);
    pthread_cond_destroy(&d->tasks_cond);
    pthread_mutex_destroy(&d->mu);
    free(d->path);
    free(d);
}

/*
 * Closing a store whose file was deleted or replaced while it ran: the
 * records kept in memory since then go to a new file at the path (or to
 * the file now there). Only now, with every connection to the old file
 * closed: a connection to the new file beside them would share the -wal
 * and -shm names with the old one's and mix their frames.
 */
static void
hg_sq_rescue(hg_sq_t *d)
{
    hg_sq_queue_t batch;
    size_t records = d->q.count, written = 0;
    char err[512];
    int rc = SQLITE_OK;

    hg_sq_disconnect(d);
    err[0] = '\0';
    if (hg_sq_mkdirs(d->path, err, sizeof(err)) != HG_OK
        || hg_sq_open_writer(d, err, sizeof(err)) != HG_OK)
    {
        rc = SQLITE_CANTOPEN;
    }
    while (rc == SQLITE_OK && (d->q.count > 0 || d->q.states.count > 0)) {
        hg_sq_take(d, &batch, HG_SQ_CHUNK);
        rc = hg_sq_commit(d, &batch, err, sizeof(err));
        if (rc == SQLITE_OK) {
            written += batch.count;
        }
        hg_sq_queue_free(&batch);   /* what failed is lost: we are closing */
    }
    if (rc == SQLITE_OK) {
        hg_log(HG_LOG_WARN, "store: %s was deleted or replaced while "
               "hourglass ran: the %zu record%s kept in memory since then "
               "%s written to the file now at that path", d->path, written,
               written == 1 ? "" : "s", written == 1 ? "is" : "are");
    } else {
        hg_log(HG_LOG_ERROR, "store: %s was deleted or replaced while "
               "hourglass ran, and the %zu record%s kept in memory since "
               "then cannot be written to a new file at that path (%s): "
               "%zu lost", d->path, records, records == 1 ? "" : "s", err,
               records - written);
    }
}

static void
hg_sq_close(hg_store_t *store)
{
    hg_sq_t *d = store->data;

    if (d == NULL) {
        return;
    }
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_cond_signal(&d->cond);
    pthread_cond_signal(&d->tasks_cond);
    pthread_mutex_unlock(&d->mu);
    if (d->maintainer_started) {
        /* A long cleanup or vacuum stops at its next step. */
        sqlite3_interrupt(d->mdb);
        pthread_join(d->maintainer, NULL);
    }
    if (d->writer_started) {
        pthread_join(d->writer, NULL);
    }
    if (d->moved && (d->q.count > 0 || d->q.states.count > 0)) {
        hg_store_loglines_emit(d->lines);
        d->lines = NULL;
        hg_sq_rescue(d);
    }
    hg_sq_free(d);
    store->data = NULL;
    store->notify_fd = -1;
}

/* "file:PATH?immutable=1": read PATH without creating -wal or -shm. */
static char *
hg_sq_immutable_uri(const char *path)
{
    size_t len = strlen(path), i, j = 0;
    char *uri = malloc(len * 3 + 32);

    if (uri == NULL) {
        return NULL;
    }
    memcpy(uri, "file:", 5);
    j = 5;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char) path[i];
        if (c == '%' || c == '?' || c == '#') {
            j += (size_t) snprintf(uri + j, 4, "%%%02x", c);
        } else {
            uri[j++] = (char) c;
        }
    }
    memcpy(uri + j, "?immutable=1", sizeof("?immutable=1"));
    return uri;
}

/* An existing file: a SQLite database of a schema this build knows. */
static int
hg_sq_check_file(const char *path, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    char *uri;
    int64_t version = 0, tables = 0;
    int rc = HG_ERROR;

    uri = hg_sq_immutable_uri(path);
    if (uri == NULL) {
        snprintf(err, errlen, "store: out of memory");
        return HG_ERROR;
    }
    if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI,
                        NULL) != SQLITE_OK
        || hg_sq_pragma_int(db, "PRAGMA user_version", &version) != SQLITE_OK
        || hg_sq_pragma_int(db, "SELECT count(*) FROM sqlite_schema",
                            &tables) != SQLITE_OK)
    {
        hg_sq_open_error(db, path, "cannot read it", err, errlen);
        goto done;
    }
    if (version > HG_SQ_SCHEMA_VERSION) {
        snprintf(err, errlen, "store.path: %s has schema version %" PRId64
                 ", newer than this hourglass knows (%d): it was written "
                 "by a later version", path, version, HG_SQ_SCHEMA_VERSION);
        goto done;
    }
    rc = HG_OK;
done:
    /* A read-only handle has nothing to flush. */
    (void) sqlite3_close(db);
    free(uri);
    return rc;
}

static int
hg_sq_probe_dir(const char *dir)
{
    char probe[PATH_MAX];
    int fd, n;

    /* access(2) says yes to root everywhere (even in /proc or on a
     * read-only mount): create a file for real, and remove it. */
    n = snprintf(probe, sizeof(probe), "%s/.hourglass-probe-XXXXXX", dir);
    if (n < 0 || (size_t) n >= sizeof(probe)) {
        errno = ENAMETOOLONG;
        return HG_ERROR;
    }
    fd = mkstemp(probe);
    if (fd < 0) {
        return HG_ERROR;
    }
    close(fd);
    unlink(probe);
    return HG_OK;
}

static int
hg_sq_check(const hg_conf_t *conf, char *err, size_t errlen)
{
    const char *path = conf->store.path;
    struct stat st;
    char *dir = NULL, *slash;
    int rc = HG_ERROR;

    if (path == NULL || path[0] == '\0') {
        snprintf(err, errlen, "store.path: not set (the sqlite driver needs "
                 "a file)");
        return HG_ERROR;
    }
    dir = strdup(path);
    if (dir == NULL) {
        snprintf(err, errlen, "store: out of memory");
        return HG_ERROR;
    }
    slash = strrchr(dir, '/');
    if (slash == dir) {
        slash[1] = '\0';
    } else if (slash != NULL) {
        *slash = '\0';
    } else {
        dir[0] = '.';
        dir[1] = '\0';
    }
    if (lstat(path, &st) == 0) {
        if (S_ISLNK(st.st_mode)) {
            snprintf(err, errlen, "store.path: %s is a symbolic link; "
                     "hourglass does not follow links to its store (name "
                     "the file itself)", path);
            goto done;
        }
        if (!S_ISREG(st.st_mode)) {
            snprintf(err, errlen, "store.path: %s is not a regular file",
                     path);
            goto done;
        }
        if (access(path, R_OK | W_OK) != 0) {
            snprintf(err, errlen, "store.path: cannot write %s: %s", path,
                     strerror(errno));
            goto done;
        }
        /* WAL needs PATH-wal and PATH-shm beside it. */
        if (hg_sq_probe_dir(dir) != HG_OK) {
            snprintf(err, errlen, "store.path: cannot create %s-wal: %s",
                     path, strerror(errno));
            goto done;
        }
        rc = hg_sq_check_file(path, err, errlen);
        goto done;
    }
    if (errno != ENOENT) {
        snprintf(err, errlen, "store.path: cannot use %s: %s", path,
                 strerror(errno));
        goto done;
    }
    /* Not there yet: the nearest existing directory must let us create
     * the rest. */
    for (;;) {
        if (stat(dir, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) {
                snprintf(err, errlen, "store.path: cannot create %s: %s is "
                         "not a directory", path, dir);
                goto done;
            }
            if (hg_sq_probe_dir(dir) != HG_OK) {
                snprintf(err, errlen, "store.path: cannot create %s: %s",
                         path, strerror(errno));
                goto done;
            }
            break;
        }
        if (errno != ENOENT) {
            snprintf(err, errlen, "store.path: cannot create %s: %s", path,
                     strerror(errno));
            goto done;
        }
        slash = strrchr(dir, '/');
        if (slash == NULL || slash == dir) {
            snprintf(err, errlen, "store.path: cannot create %s: no "
                     "existing directory above it", path);
            goto done;
        }
        *slash = '\0';
    }
    rc = HG_OK;
done:
    free(dir);
    return rc;
}

/* --- writes (caller's thread) -------------------------------------------- */

static int
hg_sq_put_execution(hg_store_t *store, const hg_exec_record_t *rec)
{
    hg_sq_t *d = store->data;
    hg_sq_item_t *item, *old;
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
    pthread_mutex_lock(&d->mu);
    old = hg_map_get(&d->q.ids, item->row.r.id);
    if (old != NULL) {
        /* Replace in place: the queue keeps the first put's position. */
        swap = old->row;
        old->row = item->row;
        item->row = swap;
        rc = hg_map_put(&d->q.ids, old->row.r.id, old);     /* new key */
    } else {
        rc = hg_sq_push(&d->q, item, false);
        if (rc == HG_OK) {
            item = NULL;
            hg_sq_trim(d, what, sizeof(what));
        }
    }
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->mu);
    if (item != NULL) {
        hg_sq_item_free(item);
    }
    if (what[0] != '\0') {
        hg_log(HG_LOG_ERROR, "store: more than %zu records wait for %s: "
               "dropping the oldest, starting with %s", d->queue_limit,
               d->path, what);
    }
    if (rc != HG_OK) {
        hg_log(HG_LOG_ERROR, "store: out of memory: execution %s not "
               "recorded", rec->id);
    }
    return rc;
}

static int
hg_sq_put_job_state(hg_store_t *store, const char *job_id,
                    int64_t last_fire, bool paused)
{
    hg_sq_t *d = store->data;
    hg_sq_state_t *st, *old;
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
    memcpy(st->job_id, job_id, len + 1);
    pthread_mutex_lock(&d->mu);
    old = hg_map_get(&d->q.states, st->job_id);
    rc = hg_map_put(&d->q.states, st->job_id, st);
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->mu);
    if (rc != HG_OK) {
        free(st);
        hg_log(HG_LOG_ERROR, "store: out of memory: state of job %s not "
               "recorded", job_id);
        return HG_ERROR;
    }
    free(old);
    return HG_OK;
}

static int
hg_sq_barrier(hg_store_t *store, uint64_t *ticket)
{
    hg_sq_t *d = store->data;

    pthread_mutex_lock(&d->mu);
    *ticket = ++d->issued;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->mu);
    return HG_OK;
}

static uint64_t
hg_sq_committed(hg_store_t *store)
{
    hg_sq_t *d = store->data;
    hg_store_logline_t *lines;
    uint64_t value, committed;
    char *error = NULL;
    bool error_changed;

    /* Drain first: a commit published after this read signals again. */
    while (read(d->notify_fd, &value, sizeof(value)) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&d->mu);
    committed = d->committed;
    lines = d->lines;
    d->lines = NULL;
    store->failing = d->failing;
    store->write_errors = d->write_errors;
    error_changed = d->error_changed;
    if (error_changed) {
        error = strdup(d->last_error);
        d->error_changed = error == NULL;
    }
    pthread_mutex_unlock(&d->mu);
    if (error != NULL) {
        free(store->last_error);
        store->last_error = error;
    }
    hg_store_loglines_emit(lines);
    return committed;
}

static int
hg_sq_set_max_page_count(hg_store_t *store, uint64_t pages)
{
    hg_sq_t *d = store->data;

    pthread_mutex_lock(&d->mu);
    d->max_pages = pages;
    d->pages_changed = true;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->mu);
    return HG_OK;
}

/* --- reads (caller's thread) --------------------------------------------- */

static void
hg_sq_read_error(hg_sq_t *d, const char *what)
{
    int code = sqlite3_extended_errcode(d->rdb) & 0xff;

    hg_log(HG_LOG_ERROR, "store: %s: reading %s: %s%s", d->path, what,
           sqlite3_errmsg(d->rdb),
           code == SQLITE_CORRUPT || code == SQLITE_NOTADB
           ? " (the file is damaged: stop hourglass, then restore it from a "
             "backup or move it aside)" : "");
}

/* The row at S's current step, columns in HG_SQ_COLS_* order. */
static int
hg_sq_read_row(hg_sq_t *d, sqlite3_stmt *s, hg_exec_row_t *row)
{
    hg_exec_record_t r;
    const char *status;

    memset(&r, 0, sizeof(r));
    r.id = (const char *) sqlite3_column_text(s, 0);
    r.run_id = (const char *) sqlite3_column_text(s, 1);
    r.job_id = (const char *) sqlite3_column_text(s, 2);
    status = (const char *) sqlite3_column_text(s, 3);
    if (r.id == NULL || hg_exec_status_parse(status, &r.status) != HG_OK) {
        hg_log(HG_LOG_ERROR, "store: %s: execution %s has no known status "
               "(\"%s\"): skipped", d->path, r.id ? r.id : "(no id)",
               status ? status : "");
        return HG_AGAIN;
    }
    r.attempt = (unsigned) sqlite3_column_int64(s, 4);
    r.trigger = (const char *) sqlite3_column_text(s, 5);
    r.scheduled_for = sqlite3_column_int64(s, 6);
    r.started_at = sqlite3_column_int64(s, 7);
    r.finished_at = sqlite3_column_int64(s, 8);
    r.duration_ms = sqlite3_column_int64(s, 9);
    r.exit_code = sqlite3_column_int(s, 10);
    r.signo = sqlite3_column_int(s, 11);
    if (sqlite3_column_type(s, 12) != SQLITE_NULL) {
        r.output = sqlite3_column_blob(s, 12);
        r.output_len = (size_t) sqlite3_column_bytes(s, 12);
        if (r.output == NULL) {
            r.output = "";                      /* zero-length blob */
        }
    }
    r.output_truncated = sqlite3_column_int(s, 13) != 0;
    r.error = (const char *) sqlite3_column_text(s, 14);
    r.worker_pid = sqlite3_column_int(s, 15);
    r.max_rss_kb = sqlite3_column_int64(s, 16);
    r.cpu_user_ms = sqlite3_column_int64(s, 17);
    r.cpu_sys_ms = sqlite3_column_int64(s, 18);
    if (sqlite3_column_type(s, 19) != SQLITE_NULL) {
        r.payload = sqlite3_column_blob(s, 19);
        r.payload_len = (size_t) sqlite3_column_bytes(s, 19);
        if (r.payload == NULL) {
            r.payload = "";
        }
    }
    r.priority = sqlite3_column_int(s, 20);
    r.run_at = sqlite3_column_int64(s, 21);
    r.unique_key = (const char *) sqlite3_column_text(s, 22);
    r.retry_at = sqlite3_column_int64(s, 23);
    if (hg_exec_row_copy(row, &r) != HG_OK) {
        hg_log(HG_LOG_ERROR, "store: out of memory reading execution %s",
               r.id);
        return HG_ERROR;
    }
    return HG_OK;
}

/* Every row of S (bound, not yet stepped), finalized or reset after. */
static int
hg_sq_read_rows(hg_sq_t *d, sqlite3_stmt *s, const char *what,
                hg_exec_row_t **rows_out, size_t *n_out)
{
    hg_exec_row_t *rows = NULL, *grown;
    size_t n = 0, cap = 0;
    int rc;

    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            grown = realloc(rows, cap * sizeof(*rows));
            if (grown == NULL) {
                hg_log(HG_LOG_ERROR, "store: out of memory reading %s", what);
                goto failed;
            }
            rows = grown;
        }
        rc = hg_sq_read_row(d, s, &rows[n]);
        if (rc == HG_ERROR) {
            goto failed;
        }
        if (rc == HG_OK) {
            n++;
        }
    }
    if (rc != SQLITE_DONE) {
        hg_sq_read_error(d, what);
        goto failed;
    }
    *rows_out = rows;
    *n_out = n;
    return HG_OK;

failed:
    hg_exec_rows_free(rows, n);
    return HG_ERROR;
}

static int
hg_sq_load_unfinished(hg_store_t *store, hg_exec_row_t **rows, size_t *n)
{
    hg_sq_t *d = store->data;
    sqlite3_stmt *s = NULL;
    int rc;

    if (sqlite3_prepare_v2(d->rdb, "SELECT " HG_SQ_COLS_FULL " FROM"
                           " executions WHERE status IN ('queued',"
                           " 'running') ORDER BY scheduled_for, id", -1, &s,
                           NULL) != SQLITE_OK)
    {
        hg_sq_read_error(d, "unfinished executions");
        return HG_ERROR;
    }
    rc = hg_sq_read_rows(d, s, "unfinished executions", rows, n);
    hg_sq_finalize(&s);
    return rc;
}

static int
hg_sq_load_job_states(hg_store_t *store, json_t **states)
{
    hg_sq_t *d = store->data;
    sqlite3_stmt *s = NULL;
    json_t *all, *one;
    int rc;

    all = json_object();
    if (all == NULL) {
        return HG_ERROR;
    }
    if (sqlite3_prepare_v2(d->rdb, "SELECT job_id, last_fire, paused FROM"
                           " job_state", -1, &s, NULL) != SQLITE_OK)
    {
        goto failed;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *job = (const char *) sqlite3_column_text(s, 0);
        if (job == NULL) {
            continue;
        }
        one = json_pack("{s:I, s:b}", "last_fire",
                        (json_int_t) sqlite3_column_int64(s, 1), "paused",
                        sqlite3_column_int(s, 2) != 0);
        if (one == NULL || json_object_set_new(all, job, one) != 0) {
            hg_log(HG_LOG_ERROR, "store: out of memory reading job states");
            hg_sq_finalize(&s);
            json_decref(all);
            return HG_ERROR;
        }
    }
    if (rc != SQLITE_DONE) {
        goto failed;
    }
    hg_sq_finalize(&s);
    *states = all;
    return HG_OK;

failed:
    hg_sq_read_error(d, "job states");
    hg_sq_finalize(&s);
    json_decref(all);
    return HG_ERROR;
}

static int
hg_sq_get_execution(hg_store_t *store, const char *id, hg_exec_row_t *row)
{
    hg_sq_t *d = store->data;
    sqlite3_stmt *s = d->r_get;
    int rc;

    if (sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC) != SQLITE_OK) {
        hg_sq_read_error(d, "an execution");
        return HG_ERROR;
    }
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        rc = hg_sq_read_row(d, s, row);
        if (rc == HG_AGAIN) {
            rc = HG_ERROR;
        }
    } else if (rc == SQLITE_DONE) {
        rc = HG_AGAIN;
    } else {
        hg_sq_read_error(d, "an execution");
        rc = HG_ERROR;
    }
    if (sqlite3_reset(s) != SQLITE_OK && rc == HG_OK) {
        hg_sq_read_error(d, "an execution");
        hg_exec_row_free(row);
        rc = HG_ERROR;
    }
    return rc;
}

static int
hg_sq_list_executions(hg_store_t *store, const char *job_id,
                      const char *status, size_t limit, size_t offset,
                      hg_exec_row_t **rows, size_t *n)
{
    hg_sq_t *d = store->data;
    sqlite3_stmt *s = NULL;
    char sql[768];
    int rc;

    snprintf(sql, sizeof(sql), "SELECT " HG_SQ_COLS_LIST " FROM executions"
             "%s%s%s ORDER BY scheduled_for DESC, id DESC LIMIT ?1 OFFSET ?2",
             job_id != NULL || status != NULL ? " WHERE" : "",
             job_id != NULL ? " job_id = ?3" : "",
             status != NULL ? (job_id != NULL ? " AND status = ?4"
                                              : " status = ?4") : "");
    rc = sqlite3_prepare_v2(d->rdb, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 1, limit > 0 && limit <= (size_t) INT64_MAX
                                      ? (sqlite3_int64) limit : -1);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 2, offset <= (size_t) INT64_MAX
                                      ? (sqlite3_int64) offset : INT64_MAX);
    }
    if (rc == SQLITE_OK && job_id != NULL) {
        rc = sqlite3_bind_text(s, 3, job_id, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK && status != NULL) {
        rc = sqlite3_bind_text(s, 4, status, -1, SQLITE_STATIC);
    }
    if (rc != SQLITE_OK) {
        hg_sq_read_error(d, "executions");
        hg_sq_finalize(&s);
        return HG_ERROR;
    }
    rc = hg_sq_read_rows(d, s, "executions", rows, n);
    hg_sq_finalize(&s);
    return rc;
}

static int
hg_sq_job_stats(hg_store_t *store, const char *job_id, hg_job_stats_t *stats)
{
    hg_sq_t *d = store->data;
    sqlite3_stmt *s = d->r_stats;
    hg_store_bucket_t buckets[64], *b = buckets, *grown;
    size_t nb = 0, cap = HG_NELEMS(buckets);
    int64_t durations = 0, sum = 0, max = 0;
    int rc;

    rc = sqlite3_bind_text(s, 1, job_id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
    }
    if (rc == SQLITE_ROW) {
        stats->runs = (uint64_t) sqlite3_column_int64(s, 0);
        stats->successes = (uint64_t) sqlite3_column_int64(s, 1);
        stats->failures = (uint64_t) sqlite3_column_int64(s, 2);
        durations = sqlite3_column_int64(s, 3);
        sum = sqlite3_column_int64(s, 4);
        max = sqlite3_column_int64(s, 5);
        stats->last_run = sqlite3_column_int64(s, 6);
        if (hg_exec_status_parse((const char *) sqlite3_column_text(s, 7),
                                 &stats->last_status) != HG_OK)
        {
            stats->last_status = HG_EXEC_QUEUED;
        }
        rc = SQLITE_DONE;
    }
    if (rc != SQLITE_DONE) {
        hg_sq_read_error(d, "job statistics");
        (void) sqlite3_reset(s);
        return HG_ERROR;
    }
    if (sqlite3_reset(s) != SQLITE_OK) {
        hg_sq_read_error(d, "job statistics");
        return HG_ERROR;
    }
    if (durations <= 0) {
        return HG_OK;
    }
    stats->mean_duration_ms = (double) sum / (double) durations;

    s = d->r_buckets;
    rc = sqlite3_bind_text(s, 1, job_id, -1, SQLITE_STATIC);
    while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (nb == cap) {
            grown = malloc(cap * 2 * sizeof(*grown));
            if (grown == NULL) {
                rc = SQLITE_NOMEM;
                break;
            }
            memcpy(grown, b, nb * sizeof(*b));
            if (b != buckets) {
                free(b);
            }
            b = grown;
            cap *= 2;
        }
        b[nb].bucket = (unsigned) sqlite3_column_int(s, 0);
        b[nb].count = sqlite3_column_int64(s, 1);
        nb++;
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE) {
        hg_sq_read_error(d, "job durations");
        (void) sqlite3_reset(s);
        rc = HG_ERROR;
    } else if (sqlite3_reset(s) != SQLITE_OK) {
        hg_sq_read_error(d, "job durations");
        rc = HG_ERROR;
    } else {
        stats->p95_duration_ms = hg_store_p95(b, nb, max);
        rc = HG_OK;
    }
    if (b != buckets) {
        free(b);
    }
    return rc;
}

static int
hg_sq_unique_key_pending(hg_store_t *store, const char *unique_key,
                         bool *pending)
{
    hg_sq_t *d = store->data;
    sqlite3_stmt *s = d->r_unique;
    int rc;

    rc = sqlite3_bind_text(s, 1, unique_key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
    }
    if (rc == SQLITE_ROW) {
        *pending = true;
        rc = SQLITE_DONE;
    }
    if (rc != SQLITE_DONE) {
        hg_sq_read_error(d, "unique keys");
        (void) sqlite3_reset(s);
        return HG_ERROR;
    }
    if (sqlite3_reset(s) != SQLITE_OK) {
        hg_sq_read_error(d, "unique keys");
        return HG_ERROR;
    }
    return HG_OK;
}

/* --- maintenance (its own thread and connection) ------------------------ */

static bool
hg_sq_stopping(hg_sq_t *d)
{
    bool stop;

    pthread_mutex_lock(&d->mu);
    stop = d->stop;
    pthread_mutex_unlock(&d->mu);
    return stop;
}

/* The maintenance thread's message for a failed call on mdb. */
static void
hg_sq_task_error(hg_sq_t *d, hg_store_task_t *task, const char *doing)
{
    int code = sqlite3_extended_errcode(d->mdb) & 0xff;

    snprintf(task->error, sizeof(task->error), "store: %s: %s: %s%s",
             d->path, doing, sqlite3_errmsg(d->mdb),
             code == SQLITE_CORRUPT || code == SQLITE_NOTADB
             ? " (the file is damaged)" : "");
}

static void
hg_sq_task_cleanup(hg_sq_t *d, hg_store_task_t *task)
{
    sqlite3_stmt *s = NULL;
    int rc, changes;
    char doing[96];

    rc = sqlite3_prepare_v2(d->mdb, "DELETE FROM executions WHERE rowid IN"
                            " (SELECT rowid FROM executions WHERE"
                            " finished_at > 0 AND finished_at < ?1 AND"
                            " status NOT IN ('queued', 'running', 'dead')"
                            " LIMIT ?2)", -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 1, task->older_than);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 2, task->batch <= INT_MAX
                                      ? (int64_t) task->batch : INT_MAX);
    }
    /* One transaction per batch: the writer waits at most one batch. */
    while (rc == SQLITE_OK) {
        if (hg_sq_stopping(d)) {
            snprintf(task->error, sizeof(task->error), "store: %s: "
                     "cleanup stopped after %" PRIu64 " executions: "
                     "hourglass is stopping", d->path, task->deleted);
            hg_sq_finalize(&s);
            return;
        }
        rc = sqlite3_exec(d->mdb, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            break;
        }
        rc = hg_sq_step_done(s);
        if (rc != SQLITE_OK) {
            break;
        }
        changes = sqlite3_changes(d->mdb);
        rc = sqlite3_exec(d->mdb, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            break;
        }
        task->deleted += (uint64_t) changes;
        if ((size_t) changes < task->batch) {
            hg_sq_finalize(&s);
            task->rc = HG_OK;
            return;
        }
    }
    snprintf(doing, sizeof(doing), "cleanup stopped after %" PRIu64
             " executions", task->deleted);
    hg_sq_task_error(d, task, doing);
    if (!sqlite3_get_autocommit(d->mdb)) {
        /* closing the connection would roll back too */
        (void) sqlite3_exec(d->mdb, "ROLLBACK", NULL, NULL, NULL);
    }
    hg_sq_finalize(&s);
}

static void
hg_sq_task_vacuum(hg_sq_t *d, hg_store_task_t *task)
{
    if (sqlite3_exec(d->mdb, "PRAGMA incremental_vacuum", NULL, NULL, NULL)
        != SQLITE_OK)
    {
        hg_sq_task_error(d, task, "vacuum");
        return;
    }
    /* TRUNCATE waits for the writer (busy_timeout) and then empties the
     * WAL; readers that hold old snapshots make it do less, not fail. */
    if (sqlite3_exec(d->mdb, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL,
                     NULL) != SQLITE_OK)
    {
        pthread_mutex_lock(&d->mu);
        hg_store_logline_add(&d->lines, HG_LOG_WARN, "store: %s: vacuum: "
                             "checkpoint: %s", d->path,
                             sqlite3_errmsg(d->mdb));
        pthread_mutex_unlock(&d->mu);
    }
    task->rc = HG_OK;
}

static void
hg_sq_task_run(hg_sq_t *d, hg_store_task_t *task)
{
    if (hg_sq_moved(d->mdb)) {
        snprintf(task->error, sizeof(task->error), "store: %s was deleted "
                 "or replaced while hourglass runs: nothing done (restart "
                 "hourglass to use the file at that path)", d->path);
        return;
    }
    switch (task->kind) {
    case HG_STORE_TASK_CLEANUP:
        hg_sq_task_cleanup(d, task);
        break;
    case HG_STORE_TASK_VACUUM:
        hg_sq_task_vacuum(d, task);
        break;
    case HG_STORE_TASK_HEALTH:
        task->rc = HG_OK;
        break;
    default:
        snprintf(task->error, sizeof(task->error), "store: task %d is not "
                 "a store task", (int) task->kind);
        break;
    }
}

static void *
hg_sq_maintainer(void *arg)
{
    hg_sq_t *d = arg;
    hg_store_task_t *task;

    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->stop && d->tasks.head == NULL) {
            pthread_cond_wait(&d->tasks_cond, &d->mu);
        }
        if (d->stop) {
            break;
        }
        task = hg_store_tasks_pop(&d->tasks);
        pthread_mutex_unlock(&d->mu);

        hg_sq_task_run(d, task);

        pthread_mutex_lock(&d->mu);
        hg_store_tasks_push(&d->done, task);
        hg_sq_notify(d);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static int
hg_sq_task(hg_store_t *store, hg_store_task_t *task)
{
    hg_sq_t *d = store->data;
    sigset_t all, old;
    int rc;

    if (!d->maintainer_started) {
        /* Like the writer, it blocks every signal (the master's signalfd
         * must get them all). */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        rc = pthread_create(&d->maintainer, NULL, hg_sq_maintainer, d);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0) {
            snprintf(task->error, sizeof(task->error), "store: cannot start "
                     "the maintenance thread: %s", strerror(rc));
            return HG_ERROR;
        }
        d->maintainer_started = true;
    }
    pthread_mutex_lock(&d->mu);
    hg_store_tasks_push(&d->tasks, task);
    pthread_cond_signal(&d->tasks_cond);
    pthread_mutex_unlock(&d->mu);
    return HG_OK;
}

static hg_store_task_t *
hg_sq_task_done(hg_store_t *store)
{
    hg_sq_t *d = store->data;
    hg_store_task_t *task;

    pthread_mutex_lock(&d->mu);
    task = hg_store_tasks_pop(&d->done);
    pthread_mutex_unlock(&d->mu);
    return task;
}

static json_int_t
hg_sq_file_size(const char *path, const char *suffix)
{
    char name[PATH_MAX + 8];
    struct stat st;

    snprintf(name, sizeof(name), "%s%s", path, suffix);
    return stat(name, &st) == 0 ? (json_int_t) st.st_size : 0;
}

static int
hg_sq_health(hg_store_t *store, json_t **report)
{
    hg_sq_t *d = store->data;
    size_t depth;
    uint64_t written, errors, dropped, committed;
    bool failing;
    char last_error[sizeof(d->last_error)];

    pthread_mutex_lock(&d->mu);
    depth = d->q.count + d->in_flight;
    written = d->written;
    errors = d->write_errors;
    dropped = d->dropped;
    committed = d->committed;
    failing = d->failing;
    memcpy(last_error, d->last_error, sizeof(last_error));
    pthread_mutex_unlock(&d->mu);

    *report = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:b, s:s?, "
                        "s:I, s:I}",
                        "driver", "sqlite",
                        "path", d->path,
                        "size_bytes", hg_sq_file_size(d->path, ""),
                        "wal_bytes", hg_sq_file_size(d->path, "-wal"),
                        "queue_depth", (json_int_t) depth,
                        "written", (json_int_t) written,
                        "write_errors", (json_int_t) errors,
                        "failing", failing,
                        "last_error", last_error[0] ? last_error : NULL,
                        "dropped", (json_int_t) dropped,
                        "committed", (json_int_t) committed);
    return *report != NULL ? HG_OK : HG_ERROR;
}

const hg_store_driver_t hg_store_sqlite_driver = {
    "sqlite",
    hg_sq_open,
    hg_sq_close,
    hg_sq_put_execution,
    hg_sq_put_job_state,
    hg_sq_barrier,
    hg_sq_committed,
    hg_sq_load_unfinished,
    hg_sq_load_job_states,
    hg_sq_get_execution,
    hg_sq_list_executions,
    hg_sq_job_stats,
    hg_sq_unique_key_pending,
    hg_sq_task,
    hg_sq_task_done,
    hg_sq_health,
    hg_sq_set_max_page_count,
    hg_sq_check
};
