/*
 * hg_store_sqlite.c: the `sqlite` store driver (the default), one SQLite
 * file in WAL mode.
 *
 * It holds the SQL, the connections and the file checks, and nothing
 * else: the queue, the writer and maintenance threads, barrier tickets,
 * failure episodes and the rescue of a moved file are the shared writer's
 * (hg_store_writer.c), which calls the backend below (hg_sq_backend) from
 * its threads. It must never run a statement on a connection from another
 * thread than the one that owns it, nor open one in a forked process
 * (see hg_store.h).
 *
 * Three connections, each used by one thread, opened together, by this
 * process, before any thread starts. The WRITE connection is the writer
 * thread's: hg_sq_commit writes one batch of records in ONE transaction
 * and says how a failure should be told (busy, damaged, moved, other).
 * The READ connection serves the synchronous reads (and the cluster's
 * calls) in the caller's thread; WAL lets them run beside the writer, each
 * seeing the last commit. The MAINTENANCE connection is the maintenance
 * thread's: cleanup and vacuum in short transactions of their own, and
 * the WAL checkpoints.
 *
 * Durability: journal_mode = WAL with synchronous = NORMAL. A commit is in
 * the WAL file (the operating system's page cache) when the writer
 * publishes its ticket, so a process crash -- kill -9 of the master --
 * loses nothing committed: the next open replays the WAL. A power loss or
 * kernel crash may lose the last transactions (not corrupt the file):
 * NORMAL syncs at checkpoints, not at each commit, which is what makes a
 * commit cheap enough to batch thousands of executions a second.
 * Checkpoints run on the maintenance connection (hg_sq_after_commit), not
 * in the commit that crosses SQLite's mark of 1,000 WAL pages: no barrier
 * waits for their fsyncs. Where they run changes nothing of what a commit
 * promises.
 *
 * Faults. A failed transaction (disk full, database locked by another
 * process past busy_timeout, read-only file, corrupt file, I/O error) is
 * rolled back; the shared writer keeps its records and retries. A file
 * deleted or replaced under the running daemon (another inode at the
 * path: SQLITE_FCNTL_HAS_MOVED, checked before each transaction) is such
 * a fault: nothing is written into a file that is no longer at its path,
 * and at close, once every connection to the old file is closed,
 * hg_sq_reopen opens the file now at the path for what was kept. Not
 * while running: a connection to the new file beside those to the old one
 * would share the -wal and -shm names with them and mix their frames.
 *
 * Files: the database is opened without following a symbolic link at its
 * last component (SQLITE_OPEN_NOFOLLOW), and created 0600 (SQLite gives
 * the -wal and -shm files the database's mode): it holds job output.
 *
 * Threads and signals: the writer and maintenance threads block every
 * signal, so that the master's signalfd sees them all.
 *
 * Driver "redis" is this driver with a coordinator (hg_store_redis.c):
 * the history stays in this instance's file, and before each transaction
 * the writer claims in Redis the fire times its records ask for; the
 * records of fire times a peer holds are left out (said lost). Its tick
 * is the coordinator's heartbeat.
 *
 * The schema (version 4, PRAGMA user_version), created and migrated by
 * hg_sq_migrations below, one SQL string per version, applied in order in
 * one transaction at open:
 *
 *   executions     one row per execution (attempt), every field of
 *                  hg_exec_record_t; times are ms since the epoch; status
 *                  is the name ("queued" ... "dead"); later puts of an id
 *                  overwrite the row (INSERT ... ON CONFLICT(id) DO UPDATE,
 *                  without a read first: see hg_sq_write_exec). A rowid
 *                  table: rows sit in insertion order under an integer
 *                  key, by which every index entry finds its row (8 bytes);
 *                  the text id is a unique index beside it, not the key
 *                  of the rows (WITHOUT ROWID would make each index entry
 *                  carry the 36-byte id, and the rows, output included,
 *                  move with it). Indexes: (job_id, scheduled_for) for a
 *                  job's history and statistics, (status, scheduled_for)
 *                  for recovery and the dead list newest first,
 *                  (finished_at) of finished rows (version 3: partial),
 *                  for retention, (unique_key) partial, for enqueue
 *                  refusals.
 *   job_state      job_id, last_fire, paused: what the scheduler needs
 *                  back after a restart.
 *   jobs           id, definition (JSON text), created_at, updated_at,
 *                  created_by (version 4): the jobs defined through the
 *                  admin API (hg_store_put_job), read back at start.
 *   job_stats      per job: runs, successes, failures, durations (how
 *                  many runs had a duration), duration_sum, duration_max,
 *                  last_run, last_status; updated by the writer in the
 *                  same transaction as the executions.
 *   job_durations  (job_id, bucket) -> count: the duration histogram
 *                  behind p95 (log-linear buckets, see hg_store.h).
 *   fire_claims    (version 2) token (the fencing token, AUTOINCREMENT:
 *                  never given twice), job_id, fire_time, claimed_at;
 *                  unique on (job_id, fire_time): a fire time claimed
 *                  twice is refused (hg_store_claim_fire). Index:
 *                  (fire_time), for retention.
 *
 * auto_vacuum = INCREMENTAL and WAL mode are set when the file is created
 * (user_version 0), so that a vacuum can give free pages back without
 * rewriting the file; a file already at the current version is only read
 * when the store opens it, and migrations write only when the version
 * changes.
 */

#include "hg_core.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "hg_json.h"
#include "hg_log.h"
#include "hg_map.h"
#include "hg_store.h"
#include "hg_store_writer.h"
#if HG_HAVE_REDIS
#include "hg_store_redis.h"
#endif

#define HG_SQ_BUSY_TIMEOUT_MS 1000
/* WAL frames (pages) after which the maintenance thread checkpoints:
 * SQLite's own default. Past HG_SQ_WAL_HARD times that (the maintenance
 * thread busy with a long cleanup), the writer checkpoints itself, as
 * SQLite would: the WAL stays bounded. */
#define HG_SQ_WAL_FRAMES      1000
#define HG_SQ_WAL_HARD        4
#define HG_SQ_NO_PAGE_LIMIT   UINT64_C(4294967294)  /* SQLite's own maximum */
/* Records per transaction: a commit in WAL mode without a sync costs
 * little, so a burst goes in chunks and its first starts wait for one. */
#define HG_SQ_CHUNK           128

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

/* Version 2: one row per fire time claimed (hg_store_claim_fire); the
 * token is the claim's fencing token, never given out twice. */
static const char hg_sq_schema_v2[] =
    "CREATE TABLE fire_claims ("
    " token INTEGER PRIMARY KEY AUTOINCREMENT,"
    " job_id TEXT NOT NULL,"
    " fire_time INTEGER NOT NULL,"
    " claimed_at INTEGER NOT NULL,"
    " UNIQUE (job_id, fire_time));"
    "CREATE INDEX fire_claims_time ON fire_claims (fire_time);";

/* Version 3: executions_finished holds finished rows only. Queued and
 * running rows (finished_at 0) were all in it, so each put of such a row
 * rewrote an entry that retention never reads; now their puts leave the
 * index alone, and a final put adds one entry. Retention's query names
 * finished_at > 0, which lets it use the partial index. */
static const char hg_sq_schema_v3[] =
    "DROP INDEX executions_finished;"
    "CREATE INDEX executions_finished ON executions (finished_at)"
    " WHERE finished_at > 0;";

/* Version 4: the jobs defined through the admin API say who made them
 * (the table itself came with version 1, unused until then). */
static const char hg_sq_schema_v4[] =
    "ALTER TABLE jobs ADD COLUMN created_by TEXT;";

/* Append only: entry i takes a file from version i to version i + 1. */
static const char *const hg_sq_migrations[] = {
    hg_sq_schema_v1,
    hg_sq_schema_v2,
    hg_sq_schema_v3,
    hg_sq_schema_v4,
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

/* The columns every put sets, but those the fast put keeps (see
 * hg_sq_write_exec). */
#define HG_SQ_SET_MUTABLE \
    " run_id = excluded.run_id, status = excluded.status," \
    " attempt = excluded.attempt, triggered_by = excluded.triggered_by," \
    " started_at = excluded.started_at, finished_at = excluded.finished_at," \
    " duration_ms = excluded.duration_ms, exit_code = excluded.exit_code," \
    " signal = excluded.signal, output = excluded.output," \
    " output_truncated = excluded.output_truncated, error = excluded.error," \
    " worker_pid = excluded.worker_pid, max_rss_kb = excluded.max_rss_kb," \
    " cpu_user_ms = excluded.cpu_user_ms, cpu_sys_ms = excluded.cpu_sys_ms," \
    " payload = excluded.payload, priority = excluded.priority," \
    " run_at = excluded.run_at, retry_at = excluded.retry_at"

#define HG_SQ_INSERT \
    "INSERT INTO executions (" HG_SQ_COLS_FULL ") VALUES (?1, ?2, ?3, ?4," \
    " ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19," \
    " ?20, ?21, ?22, ?23, ?24) ON CONFLICT(id) DO UPDATE SET"

/*
 * The put of nearly every record: a new execution, or one whose row is
 * queued or running and keeps its job, due time and unique key (the
 * master's queued -> running -> final). Such a row counts for nothing in
 * the statistics, so no SELECT is needed to take it out of them; and
 * leaving job_id, scheduled_for and unique_key out of the SET spares the
 * rewrite of the indexes made of them. Any other row is left untouched
 * (sqlite3_changes() = 0) for hg_sq_sql_put.
 */
static const char hg_sq_sql_put_fast[] =
    HG_SQ_INSERT HG_SQ_SET_MUTABLE
    " WHERE executions.status IN ('queued', 'running')"
    " AND executions.job_id = excluded.job_id"
    " AND executions.scheduled_for = excluded.scheduled_for"
    " AND executions.unique_key IS excluded.unique_key";

/* Every other put, after its old row was taken out of the statistics. */
static const char hg_sq_sql_put[] =
    HG_SQ_INSERT HG_SQ_SET_MUTABLE ", job_id = excluded.job_id,"
    " scheduled_for = excluded.scheduled_for,"
    " unique_key = excluded.unique_key";

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

typedef struct hg_sq_s {
    char *path;
    sqlite3 *wdb;                   /* the writer thread's */
    sqlite3 *rdb;                   /* the caller's: reads */
    sqlite3 *mdb;                   /* the maintenance thread's */
    sqlite3_stmt *w_put_fast, *w_put, *w_old, *w_state, *w_stats, *w_bucket;
    sqlite3_stmt *r_get, *r_stats, *r_buckets, *r_unique;
    sqlite3_stmt *r_claim;
    int busy_timeout_ms;
    uint64_t max_pages;             /* test hook at open; 0 = no limit */
    int wal_frames;                 /* in the WAL after the last commit */
    int wal_ask_at;                 /* frames at which to ask next */
    hg_store_backend_t backend;     /* hg_sq_backend, or with a tick */
#if HG_HAVE_REDIS
    hg_redis_t *redis;              /* driver "redis": claims there */
#endif
} hg_sq_t;

static void
hg_sq_finalize(sqlite3_stmt **stmt)
{
    /* finalize repeats the last step's error, already handled there. */
    (void) sqlite3_finalize(*stmt);
    *stmt = NULL;
}

/* --- the writer ---------------------------------------------------------- */

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

/* Takes the row REC replaces out of the stats (the slow put's part). */
static int
hg_sq_unstat_old(hg_sq_t *d, hg_map_t *deltas, const char *id)
{
    sqlite3_stmt *s = d->w_old;
    hg_exec_record_t old;
    int rc;

    rc = sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
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
        if (hg_store_delta_apply(deltas, &old, -1) != HG_OK) {
            (void) sqlite3_reset(s);
            return SQLITE_NOMEM;
        }
        rc = sqlite3_step(s);
    }
    if (rc != SQLITE_DONE) {
        (void) sqlite3_reset(s);
        return rc;
    }
    return sqlite3_reset(s);
}

/*
 * Writes REC and adds it to the stats. The fast put first: it writes a
 * new execution or a queued or running one, whose row counts for nothing,
 * in one statement. When it writes nothing, the row there is final (or
 * changes an indexed key): read it, take it out of the stats, overwrite.
 */
static int
hg_sq_write_exec(hg_sq_t *d, hg_map_t *deltas, const hg_exec_record_t *rec)
{
    int rc;

    rc = hg_sq_bind_put(d->w_put_fast, rec);
    if (rc == SQLITE_OK) {
        rc = hg_sq_step_done(d->w_put_fast);
    }
    if (rc != SQLITE_OK) {
        return rc;
    }
    if (sqlite3_changes(d->wdb) == 0) {
        rc = hg_sq_unstat_old(d, deltas, rec->id);
        if (rc == SQLITE_OK) {
            rc = hg_sq_bind_put(d->w_put, rec);
        }
        if (rc == SQLITE_OK) {
            rc = hg_sq_step_done(d->w_put);
        }
        if (rc != SQLITE_OK) {
            return rc;
        }
    }
    return hg_store_delta_apply(deltas, rec, 1) == HG_OK ? SQLITE_OK
                                                       : SQLITE_NOMEM;
}

static int
hg_sq_write_delta(hg_sq_t *d, const hg_store_delta_t *delta)
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

/* The shared writer's word for a failure with CODE. */
static hg_store_write_t
hg_sq_kind(int code)
{
    int primary = code & 0xff;

    if (code == SQLITE_OK) {
        return HG_STORE_WRITE_OK;
    }
    if (code == SQLITE_READONLY_DBMOVED) {
        return HG_STORE_WRITE_MOVED;
    }
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
        return HG_STORE_WRITE_BUSY;
    }
    if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
        return HG_STORE_WRITE_DAMAGED;
    }
    return HG_STORE_WRITE_FAILED;
}

/* Writer thread, in each COMMIT: how big the WAL is. Registering a hook
 * turns SQLite's automatic checkpoint off: hg_sq_after_commit decides. */
static int
hg_sq_wal_hook(void *be, sqlite3 *db, const char *name, int frames)
{
    hg_sq_t *d = be;

    HG_UNUSED(db);
    HG_UNUSED(name);
    d->wal_frames = frames;
    return SQLITE_OK;
}

/*
 * Writer thread, after a commit: once HG_SQ_WAL_FRAMES more frames are in
 * the WAL, the maintenance thread copies them into the database
 * (hg_sq_checkpoint). A checkpoint syncs the WAL and the database file:
 * run by the writer, as SQLite does by default, it held up the commit
 * that crossed the mark, and every barrier waiting behind it, for as long
 * as those fsyncs took. Commits are as durable as before (synchronous =
 * NORMAL: in the WAL, which survives the process); only who copies them
 * on changes.
 */
static void
hg_sq_after_commit(hg_sq_t *d, hg_store_writer_t *w)
{
    if (d->wal_frames < d->wal_ask_at - HG_SQ_WAL_FRAMES) {
        d->wal_ask_at = HG_SQ_WAL_FRAMES;       /* the WAL started over */
    }
    if (d->wal_frames >= HG_SQ_WAL_FRAMES * HG_SQ_WAL_HARD) {
        /* Errors as SQLite's own checkpoint: the next one retries. */
        (void) sqlite3_wal_checkpoint_v2(d->wdb, "main",
                                         SQLITE_CHECKPOINT_PASSIVE, NULL,
                                         NULL);
        return;
    }
    if (d->wal_frames >= d->wal_ask_at) {
        d->wal_ask_at = d->wal_frames + HG_SQ_WAL_FRAMES;
        hg_store_writer_want_checkpoint(w);
    }
}

/* The backend's checkpoint (maintenance thread, its connection). PASSIVE
 * never waits: frames a reader still needs, or a checkpoint already under
 * way (a vacuum's), are left for the next one. */
static void
hg_sq_checkpoint(void *be, hg_store_writer_t *w)
{
    hg_sq_t *d = be;
    int rc;

    if (hg_sq_moved(d->mdb)) {
        return;                     /* the writer reports it */
    }
    rc = sqlite3_wal_checkpoint_v2(d->mdb, "main", SQLITE_CHECKPOINT_PASSIVE,
                                   NULL, NULL);
    if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY
        && (rc & 0xff) != SQLITE_INTERRUPT)
    {
        hg_store_writer_log(w, HG_LOG_WARN, "store: %s: checkpoint: %s",
                            d->path, sqlite3_errmsg(d->mdb));
    }
}

/* The backend's commit (writer thread): everything in BATCH in one
 * transaction, or nothing and the reason in err. */
static hg_store_write_t
hg_sq_commit(void *be, hg_store_writer_t *w, const hg_store_batch_t *batch,
             char *err, size_t errlen)
{
    hg_sq_t *d = be;
    hg_map_t deltas, lost;
    hg_store_item_t *item;
    size_t i = 0;
    const char *key;
    void *value;
    int rc;

    if (hg_sq_moved(d->wdb)) {
        snprintf(err, errlen, "the file was deleted or replaced while "
                 "hourglass runs (the one it has open is no longer at that "
                 "path)");
        return HG_STORE_WRITE_MOVED;
    }
    hg_map_init(&deltas);
    hg_map_init(&lost);
#if HG_HAVE_REDIS
    if (d->redis != NULL
        && hg_redis_prepare(d->redis, batch, &lost, err, errlen) != HG_OK)
    {
        hg_map_free(&lost);
        return HG_STORE_WRITE_FAILED;
    }
#endif
    rc = sqlite3_exec(d->wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        goto failed;
    }
    for (item = batch->head; item != NULL; item = item->next) {
        if (lost.count > 0 && hg_map_get(&lost, item->row.r.id) != NULL) {
            if (hg_store_writer_lose(w, item->row.r.id) != HG_OK) {
                rc = SQLITE_NOMEM;
                goto failed;
            }
            continue;
        }
        rc = hg_sq_write_exec(d, &deltas, &item->row.r);
        if (rc != SQLITE_OK) {
            goto failed;
        }
    }
    while (hg_map_next(&batch->states, &i, &key, &value)) {
        hg_store_state_t *st = value;
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
    hg_store_deltas_free(&deltas);
    hg_map_free(&lost);
    hg_sq_after_commit(d, w);
    return HG_STORE_WRITE_OK;

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
    hg_store_deltas_free(&deltas);
    hg_map_free(&lost);
    return hg_sq_kind(rc);
}

static hg_store_write_t
hg_sq_set_limit(void *be, uint64_t pages, char *err, size_t errlen)
{
    hg_sq_t *d = be;

    return hg_sq_kind(hg_sq_set_pages(d->wdb, pages, err, errlen));
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
    d->wal_frames = 0;
    d->wal_ask_at = HG_SQ_WAL_FRAMES;
    /* Instead of SQLite's automatic checkpoint. */
    (void) sqlite3_wal_hook(d->wdb, hg_sq_wal_hook, d);
    if (d->max_pages > 0
        && hg_sq_set_pages(d->wdb, d->max_pages, err, errlen) != SQLITE_OK)
    {
        hg_sq_open_error(d->wdb, d->path, "cannot limit its size", err,
                         errlen);
        return HG_ERROR;
    }
    if (hg_sq_prepare(d->wdb, hg_sq_sql_put_fast, &d->w_put_fast, d->path,
                      err, errlen)
        || hg_sq_prepare(d->wdb, hg_sq_sql_put, &d->w_put, d->path, err,
                         errlen)
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


static void hg_sq_task_run(void *be, hg_store_writer_t *w,
                           hg_store_task_t *task);
static int hg_sq_reopen(void *be, char *err, size_t errlen);

static void
hg_sq_interrupt(void *be)
{
    hg_sq_t *d = be;

    sqlite3_interrupt(d->mdb);
}

static const hg_store_backend_t hg_sq_backend = {
    hg_sq_commit,
    hg_sq_set_limit,
    hg_sq_task_run,
    hg_sq_interrupt,
    hg_sq_reopen,
    hg_sq_checkpoint,
    NULL,                           /* one instance: no lease */
    HG_SQ_CHUNK
};

#if HG_HAVE_REDIS
/* Driver "redis": this driver, its fire times claimed in Redis. */
static bool
hg_sq_coordinated(const hg_conf_t *conf)
{
    return conf->store.driver != NULL
           && strcmp(conf->store.driver, "redis") == 0;
}

static int64_t
hg_sq_redis_tick(void *be, hg_store_writer_t *w)
{
    hg_sq_t *d = be;

    return hg_redis_tick(d->redis, w);
}

#endif

/*
 * Before SQLite's first use in this process: no memory statistics (no
 * call reads them). With them, each of SQLite's allocations takes one
 * process-wide mutex, a tenth of the writer thread's time at thousands
 * of records a second. Later calls change nothing (SQLite refuses a
 * configuration once it is initialized).
 */
static void
hg_sq_library_setup(void)
{
    (void) sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int
hg_sq_open(hg_store_t *store, const hg_conf_t *conf,
           const hg_store_options_t *options, char *err, size_t errlen)
{
    hg_sq_t *d;

    hg_sq_library_setup();

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
    /* From here on hg_sq_free undoes everything. */
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
                         &d->r_unique, d->path, err, errlen)
        || hg_sq_prepare(d->rdb, "INSERT OR IGNORE INTO fire_claims"
                         " (job_id, fire_time, claimed_at) VALUES"
                         " (?1, ?2, ?3)", &d->r_claim, d->path, err, errlen))
    {
        goto failed;
    }
    /* The maintenance connection is opened now, beside the others, while
     * the path is known to name the file they have open. */
    if (hg_sq_connect(d->path, &d->mdb, d->busy_timeout_ms, err, errlen)
        != HG_OK
        || hg_sq_exec_open(d->mdb, "PRAGMA cache_size = -2048", d->path,
                           err, errlen) != HG_OK)
    {
        goto failed;
    }
    d->backend = hg_sq_backend;
#if HG_HAVE_REDIS
    if (hg_sq_coordinated(conf)) {
        d->redis = hg_redis_open(conf, err, errlen);
        if (d->redis == NULL) {
            goto failed;
        }
        d->backend.tick = hg_sq_redis_tick;     /* the heartbeat */
    }
#endif
    store->data = d;
    if (hg_store_writer_start(store, &d->backend, d, d->path, options,
                              err, errlen) != HG_OK)
    {
        store->data = NULL;
        goto failed;
    }
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

    hg_sq_finalize(&d->w_put_fast);
    hg_sq_finalize(&d->w_put);
    hg_sq_finalize(&d->w_old);
    hg_sq_finalize(&d->w_state);
    hg_sq_finalize(&d->w_stats);
    hg_sq_finalize(&d->w_bucket);
    hg_sq_finalize(&d->r_get);
    hg_sq_finalize(&d->r_stats);
    hg_sq_finalize(&d->r_buckets);
    hg_sq_finalize(&d->r_unique);
    hg_sq_finalize(&d->r_claim);
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

/* Frees D; the shared writer, if any, has stopped. */
static void
hg_sq_free(hg_sq_t *d)
{
#if HG_HAVE_REDIS
    hg_redis_close(d->redis);
#endif
    hg_sq_disconnect(d);
    free(d->path);
    free(d);
}

/* The file was moved away while the store ran; the threads have ended:
 * a write connection to the file now at the path (or a new one), with
 * every connection to the old one closed first (see hg_store_writer.c). */
static int
hg_sq_reopen(void *be, char *err, size_t errlen)
{
    hg_sq_t *d = be;

    hg_sq_disconnect(d);
    if (hg_sq_mkdirs(d->path, err, errlen) != HG_OK
        || hg_sq_open_writer(d, err, errlen) != HG_OK)
    {
        return HG_ERROR;
    }
    return HG_OK;
}

static void
hg_sq_close(hg_store_t *store)
{
    hg_sq_t *d = store->data;

    if (d == NULL) {
        return;
    }
    hg_store_writer_close(store);
    hg_sq_free(d);
    store->data = NULL;
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

    hg_sq_library_setup();
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

/* --- reads (caller's thread) --------------------------------------------- */

static void
hg_sq_read_error(hg_sq_t *d, const char *what)
{
    int code = sqlite3_extended_errcode(d->rdb) & 0xff;

    hg_store_writer_say(HG_LOG_ERROR, "store: %s: reading %s: %s%s",
                        d->path, what, sqlite3_errmsg(d->rdb),
                        code == SQLITE_CORRUPT || code == SQLITE_NOTADB
                        ? " (the file is damaged: stop hourglass, then "
                          "restore it from a backup or move it aside)"
                        : "");
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
        hg_store_writer_say(HG_LOG_ERROR, "store: %s: execution %s has no "
                            "known status (\"%s\"): skipped", d->path,
                            r.id ? r.id : "(no id)", status ? status : "");
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
        hg_store_writer_say(HG_LOG_ERROR, "store: out of memory reading "
                            "execution %s", r.id);
        return HG_ERROR;
    }
    return HG_OK;
}

/* What take_queued skips and how many it takes. */
typedef struct hg_sq_take_s {
    const hg_store_leases_t *leases;
    int64_t now;
    size_t limit;                   /* 0 = no limit */
} hg_sq_take_t;

/* Every row of S (bound, not yet stepped), finalized or reset after;
 * with TAKE, the ones not leased, up to its limit. */
static int
hg_sq_read_rows(hg_sq_t *d, sqlite3_stmt *s, const char *what,
                const hg_sq_take_t *take, hg_exec_row_t **rows_out,
                size_t *n_out)
{
    hg_exec_row_t *rows = NULL, *grown;
    size_t n = 0, cap = 0;
    const char *id;
    int rc;

    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (take != NULL) {
            if (take->limit > 0 && n == take->limit) {
                rc = SQLITE_DONE;
                break;
            }
            id = (const char *) sqlite3_column_text(s, 0);
            if (id != NULL
                && !hg_store_leases_free_at(take->leases, id, take->now))
            {
                continue;
            }
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            grown = realloc(rows, cap * sizeof(*rows));
            if (grown == NULL) {
                hg_store_writer_say(HG_LOG_ERROR, "store: out of memory "
                                    "reading %s", what);
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
    rc = hg_sq_read_rows(d, s, "unfinished executions", NULL, rows, n);
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
    rc = hg_sq_read_rows(d, s, "executions", NULL, rows, n);
    hg_sq_finalize(&s);
    return rc;
}

static int
hg_sq_count_executions(hg_store_t *store, const char *job_id,
                       const char *status, uint64_t *n)
{
    hg_sq_t *d = store->data;
    sqlite3_stmt *s = NULL;
    char sql[256];
    int rc;

    /* the filters written in, as hg_sq_list_executions does, so that the
     * planner sees which index serves them */
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM executions%s%s%s",
             job_id != NULL || status != NULL ? " WHERE" : "",
             job_id != NULL ? " job_id = ?1" : "",
             status != NULL ? (job_id != NULL ? " AND status = ?2"
                                              : " status = ?2") : "");
    rc = sqlite3_prepare_v2(d->rdb, sql, -1, &s, NULL);
    if (rc == SQLITE_OK && job_id != NULL) {
        rc = hg_sq_text(s, 1, job_id);
    }
    if (rc == SQLITE_OK && status != NULL) {
        rc = hg_sq_text(s, 2, status);
    }
    if (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
        *n = (uint64_t) sqlite3_column_int64(s, 0);
    } else {
        rc = SQLITE_ERROR;
    }
    if (rc != SQLITE_OK) {
        hg_sq_read_error(d, "the count of executions");
    }
    sqlite3_finalize(s);
    return rc == SQLITE_OK ? HG_OK : HG_ERROR;
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

/* The dead-letter list's purge, on the read connection: called from a
 * QUERY task, on the maintenance thread, which owns that connection once
 * the loop runs. A dead record is final: the writer never touches it
 * again, so the two connections do not race over a row. */
static int
hg_sq_purge_dead(hg_store_t *store, const char *id, const char *job_id,
                 int64_t before, uint64_t *deleted)
{
    hg_sq_t *d = store->data;
    sqlite3_stmt *s = NULL;
    int rc;

    rc = sqlite3_prepare_v2(d->rdb, "DELETE FROM executions WHERE"
                            " status = 'dead' AND (?1 IS NULL OR id = ?1)"
                            " AND (?2 IS NULL OR job_id = ?2)"
                            " AND (?3 <= 0 OR finished_at < ?3)", -1, &s,
                            NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_text(s, 2, job_id, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 3, before);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
    }
    if (rc != SQLITE_DONE) {
        hg_sq_read_error(d, "dead executions to purge");
        sqlite3_finalize(s);
        return HG_ERROR;
    }
    *deleted = (uint64_t) sqlite3_changes(d->rdb);
    sqlite3_finalize(s);
    return HG_OK;
}

/* The API's jobs, on the read connection (at start, or from a QUERY
 * task on the maintenance thread). */
static int
hg_sq_load_jobs(hg_store_t *store, json_t **jobs)
{
    hg_sq_t *d = store->data;
    sqlite3_stmt *s = NULL;
    json_error_t jerr;
    json_t *all, *definition, *one;
    int rc;

    all = json_object();
    if (all == NULL) {
        return HG_ERROR;
    }
    if (sqlite3_prepare_v2(d->rdb, "SELECT id, definition, created_by,"
                           " created_at, updated_at FROM jobs ORDER BY id",
                           -1, &s, NULL) != SQLITE_OK)
    {
        goto failed;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *id = (const char *) sqlite3_column_text(s, 0);
        const char *text = (const char *) sqlite3_column_text(s, 1);

        definition = text != NULL ? json_loads(text, 0, &jerr) : NULL;
        if (id == NULL || !json_is_object(definition)) {
            hg_store_writer_say(HG_LOG_ERROR, "store: %s: job %s has a "
                                "definition that is not a JSON object: "
                                "skipped", d->path,
                                id != NULL ? id : "(no id)");
            json_decref(definition);
            continue;
        }
        one = json_pack("{s:o, s:s?, s:I, s:I}", "definition", definition,
                        "created_by",
                        (const char *) sqlite3_column_text(s, 2),
                        "created_at",
                        (json_int_t) sqlite3_column_int64(s, 3),
                        "updated_at",
                        (json_int_t) sqlite3_column_int64(s, 4));
        if (one == NULL || json_object_set_new(all, id, one) != 0) {
            hg_store_writer_say(HG_LOG_ERROR, "store: out of memory "
                                "reading jobs");
            hg_sq_finalize(&s);
            json_decref(all);
            return HG_ERROR;
        }
    }
    if (rc != SQLITE_DONE) {
        goto failed;
    }
    hg_sq_finalize(&s);
    *jobs = all;
    return HG_OK;

failed:
    hg_sq_read_error(d, "jobs");
    hg_sq_finalize(&s);
    json_decref(all);
    return HG_ERROR;
}

/* One job's row written (RECORD NULL: deleted), inside put_jobs'
 * transaction. */
static int
hg_sq_put_job(hg_sq_t *d, const char *id, const json_t *record)
{
    sqlite3_stmt *s = NULL;
    char *text = NULL;
    int rc;

    if (record != NULL) {
        text = hg_json_dumps(json_object_get(record, "definition"),
                          JSON_COMPACT | JSON_SORT_KEYS);
        if (text == NULL) {
            return HG_ERROR;
        }
        rc = sqlite3_prepare_v2(d->rdb, "INSERT INTO jobs (id, definition,"
                                " created_by, created_at, updated_at) VALUES"
                                " (?1, ?2, ?3, ?4, ?5) ON CONFLICT(id) DO"
                                " UPDATE SET definition = excluded.definition,"
                                " updated_at = excluded.updated_at", -1, &s,
                                NULL);
        if (rc == SQLITE_OK) {
            const int brc[] = {
                sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC),
                sqlite3_bind_text(s, 2, text, -1, SQLITE_STATIC),
                sqlite3_bind_text(s, 3, json_string_value(
                    json_object_get(record, "created_by")), -1,
                    SQLITE_STATIC),
                sqlite3_bind_int64(s, 4, json_integer_value(
                    json_object_get(record, "created_at"))),
                sqlite3_bind_int64(s, 5, json_integer_value(
                    json_object_get(record, "updated_at"))),
            };
            rc = hg_sq_binds(brc, HG_NELEMS(brc));
        }
    } else {
        rc = sqlite3_prepare_v2(d->rdb, "DELETE FROM jobs WHERE id = ?1", -1,
                                &s, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
        }
    }
    if (rc == SQLITE_OK) {
        rc = hg_sq_step_done(s);
    }
    if (rc != SQLITE_OK) {
        hg_sq_read_error(d, record != NULL ? "the job to write"
                                           : "the job to delete");
    }
    sqlite3_finalize(s);
    free(text);
    return rc == SQLITE_OK ? HG_OK : HG_ERROR;
}

/* One transaction, committed when it returns: in the WAL, which a kill -9
 * of the process does not lose (the store's durability, see the top of
 * this file); a change that fails takes the others back with it. */
static int
hg_sq_put_jobs(hg_store_t *store, const json_t *changes)
{
    hg_sq_t *d = store->data;
    const char *id;
    json_t *record;
    int rc = HG_ERROR;

    if (sqlite3_exec(d->rdb, "BEGIN IMMEDIATE", NULL, NULL, NULL)
        != SQLITE_OK)
    {
        hg_sq_read_error(d, "the jobs to write");
        return HG_ERROR;
    }
    json_object_foreach((json_t *) changes, id, record) {
        if (hg_sq_put_job(d, id, json_is_null(record) ? NULL : record)
            != HG_OK)
        {
            goto done;
        }
    }
    if (sqlite3_exec(d->rdb, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        hg_sq_read_error(d, "the jobs to write");
        goto done;
    }
    rc = HG_OK;

done:
    if (rc != HG_OK && !sqlite3_get_autocommit(d->rdb)) {
        (void) sqlite3_exec(d->rdb, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

/* --- the cluster's calls: one instance, which always wins -------------- */

/* Synchronous, on the read connection: a claim waits for the writer's
 * transaction at most busy_timeout (a single instance has no one else to
 * wait for). The row makes a fire time claimed twice refused, across
 * restarts too. */
static int
hg_sq_claim_fire(hg_store_t *store, const char *job_id, int64_t fire_time,
                 uint64_t *token)
{
    hg_sq_t *d = store->data;
    sqlite3_stmt *s = d->r_claim;
    struct timespec now;
    int rc;

    clock_gettime(CLOCK_REALTIME, &now);
    {
        const int brc[] = {
            hg_sq_text(s, 1, job_id),
            sqlite3_bind_int64(s, 2, fire_time),
            sqlite3_bind_int64(s, 3, (int64_t) now.tv_sec * 1000
                                     + now.tv_nsec / 1000000),
        };
        rc = hg_sq_binds(brc, HG_NELEMS(brc));
    }
    if (rc == SQLITE_OK) {
        rc = hg_sq_step_done(s);
    }
    if (rc != SQLITE_OK) {
        hg_log(HG_LOG_ERROR, "store: %s: claiming the fire of job %s at %"
               PRId64 ": %s", d->path, job_id, fire_time,
               sqlite3_errmsg(d->rdb));
        return HG_ERROR;
    }
    if (sqlite3_changes(d->rdb) == 0) {
        return HG_AGAIN;
    }
    *token = (uint64_t) sqlite3_last_insert_rowid(d->rdb);
    return HG_OK;
}

static int
hg_sq_take_queued(hg_store_t *store, int64_t now, int64_t lease_ms,
                  size_t limit, hg_exec_row_t **rows, size_t *n)
{
    hg_sq_t *d = store->data;
    hg_sq_take_t take = { &store->leases, now, limit };
    sqlite3_stmt *s = NULL;
    int rc;

    if (sqlite3_prepare_v2(d->rdb, "SELECT " HG_SQ_COLS_FULL " FROM"
                           " executions WHERE status = 'queued' AND"
                           " run_at <= ?1 ORDER BY priority DESC, run_at,"
                           " id", -1, &s, NULL) != SQLITE_OK
        || sqlite3_bind_int64(s, 1, now) != SQLITE_OK)
    {
        hg_sq_read_error(d, "queued executions");
        hg_sq_finalize(&s);
        return HG_ERROR;
    }
    rc = hg_sq_read_rows(d, s, "queued executions", &take, rows, n);
    hg_sq_finalize(&s);
    if (rc != HG_OK) {
        return rc;
    }
    return hg_store_leases_take(&store->leases, rows, n, now + lease_ms);
}

/* --- maintenance (its own thread and connection) ------------------------ */

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

/* Runs the DELETE in SQL (?1 = older_than, ?2 = rows per batch) until
 * a batch deletes fewer rows than that, adding the rows to *deleted. One
 * transaction per batch: the writer waits at most one batch. HG_ERROR
 * with task->error filled. */
static int
hg_sq_delete_batches(hg_sq_t *d, hg_store_writer_t *w, hg_store_task_t *task,
                     const char *sql, const char *what, uint64_t *deleted)
{
    sqlite3_stmt *s = NULL;
    int rc, changes;
    char doing[96];

    rc = sqlite3_prepare_v2(d->mdb, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 1, task->older_than);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 2, task->batch <= INT_MAX
                                      ? (int64_t) task->batch : INT_MAX);
    }
    while (rc == SQLITE_OK) {
        if (hg_store_writer_stopping(w)) {
            snprintf(task->error, sizeof(task->error), "store: %s: "
                     "cleanup stopped after %" PRIu64 " %s: hourglass is "
                     "stopping", d->path, *deleted, what);
            hg_sq_finalize(&s);
            return HG_ERROR;
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
        *deleted += (uint64_t) changes;
        if ((size_t) changes < task->batch) {
            hg_sq_finalize(&s);
            return HG_OK;
        }
    }
    snprintf(doing, sizeof(doing), "cleanup stopped after %" PRIu64 " %s",
             *deleted, what);
    hg_sq_task_error(d, task, doing);
    if (!sqlite3_get_autocommit(d->mdb)) {
        /* closing the connection would roll back too */
        (void) sqlite3_exec(d->mdb, "ROLLBACK", NULL, NULL, NULL);
    }
    hg_sq_finalize(&s);
    return HG_ERROR;
}

/* Executions past retention (task->deleted counts them), then the claims
 * of fire times as old: nothing will fire at those again. The claims'
 * tokens stay unique (AUTOINCREMENT never reuses one). */
static void
hg_sq_task_cleanup(hg_sq_t *d, hg_store_writer_t *w, hg_store_task_t *task)
{
    uint64_t claims = 0;

    if (hg_sq_delete_batches(d, w, task, "DELETE FROM executions WHERE rowid"
                             " IN (SELECT rowid FROM executions WHERE"
                             " finished_at > 0 AND finished_at < ?1 AND"
                             " status NOT IN ('queued', 'running', 'dead')"
                             " LIMIT ?2)", "executions", &task->deleted)
        != HG_OK
        || hg_sq_delete_batches(d, w, task, "DELETE FROM fire_claims WHERE"
                                " token IN (SELECT token FROM fire_claims"
                                " WHERE fire_time < ?1 LIMIT ?2)",
                                "fire claims", &claims) != HG_OK)
    {
        return;
    }
    task->rc = HG_OK;
}

static void
hg_sq_task_vacuum(hg_sq_t *d, hg_store_writer_t *w, hg_store_task_t *task)
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
        hg_store_writer_log(w, HG_LOG_WARN, "store: %s: vacuum: "
                            "checkpoint: %s", d->path,
                            sqlite3_errmsg(d->mdb));
    }
    task->rc = HG_OK;
}

/* The backend's task (maintenance thread). */
static void
hg_sq_task_run(void *be, hg_store_writer_t *w, hg_store_task_t *task)
{
    hg_sq_t *d = be;

    if (hg_sq_moved(d->mdb)) {
        snprintf(task->error, sizeof(task->error), "store: %s was deleted "
                 "or replaced while hourglass runs: nothing done (restart "
                 "hourglass to use the file at that path)", d->path);
        return;
    }
    switch (task->kind) {
    case HG_STORE_TASK_CLEANUP:
        hg_sq_task_cleanup(d, w, task);
        break;
    case HG_STORE_TASK_VACUUM:
        hg_sq_task_vacuum(d, w, task);
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

    *report = json_pack("{s:s, s:s, s:I, s:I}",
                        "driver", "sqlite",
                        "path", d->path,
                        "size_bytes", hg_sq_file_size(d->path, ""),
                        "wal_bytes", hg_sq_file_size(d->path, "-wal"));
    if (*report == NULL) {
        return HG_ERROR;
    }
    if (hg_store_writer_health(store, *report) != HG_OK) {
        json_decref(*report);
        *report = NULL;
        return HG_ERROR;
    }
    return HG_OK;
}

/* Every job's statistics and duration buckets, in one statement: a
 * job's totals repeat on each of its buckets' rows. */
static int
hg_sq_all_job_stats(hg_store_t *store, hg_job_stats_row_t **rows,
                    size_t *n)
{
    hg_sq_t *d = store->data;
    hg_store_stats_list_t list;
    sqlite3_stmt *s = NULL;
    int64_t totals[7];
    int rc, i;

    memset(&list, 0, sizeof(list));
    rc = sqlite3_prepare_v2(d->rdb, "SELECT s.job_id, s.runs, s.successes,"
                            " s.failures, s.durations, s.duration_sum,"
                            " s.duration_max, s.last_run, s.last_status,"
                            " b.bucket, b.count FROM job_stats s"
                            " LEFT JOIN job_durations b ON b.job_id ="
                            " s.job_id AND b.count > 0"
                            " ORDER BY s.job_id, b.bucket", -1, &s, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        for (i = 0; i < 7; i++) {
            totals[i] = sqlite3_column_int64(s, i + 1);
        }
        rc = hg_store_stats_list_add(&list,
                 (const char *) sqlite3_column_text(s, 0), totals,
                 (const char *) sqlite3_column_text(s, 8),
                 sqlite3_column_type(s, 9) != SQLITE_NULL,
                 (unsigned) sqlite3_column_int(s, 9),
                 sqlite3_column_int64(s, 10)) == HG_OK
             ? SQLITE_OK : SQLITE_NOMEM;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        hg_sq_read_error(d, "every job's statistics");
        hg_store_stats_list_free(&list);
        return HG_ERROR;
    }
    hg_store_stats_list_end(&list, rows, n);
    return HG_OK;
}

/* `hourglass -t`: the file, and with driver "redis" the server too. */
static int
hg_sq_check_driver(const hg_conf_t *conf, char *err, size_t errlen)
{
    if (hg_sq_check(conf, err, errlen) != HG_OK) {
        return HG_ERROR;
    }
#if HG_HAVE_REDIS
    if (hg_sq_coordinated(conf)) {
        return hg_redis_check(conf, err, errlen);
    }
#endif
    return HG_OK;
}

/* Also driver "redis" (hg_store.c's table): hg_sq_coordinated says. */
const hg_store_driver_t hg_store_sqlite_driver = {
    "sqlite",
    hg_sq_open,
    hg_sq_close,
    hg_store_writer_put_execution,
    hg_store_writer_put_job_state,
    hg_store_writer_barrier,
    hg_store_writer_committed,
    hg_sq_load_unfinished,
    hg_sq_load_job_states,
    hg_sq_get_execution,
    hg_sq_list_executions,
    hg_sq_job_stats,
    hg_sq_unique_key_pending,
    hg_sq_purge_dead,
    hg_sq_count_executions,
    hg_sq_load_jobs,
    hg_sq_put_jobs,
    hg_store_writer_task,
    hg_store_writer_task_done,
    hg_sq_health,
    hg_store_writer_set_limit,
    hg_sq_check_driver,
    hg_sq_claim_fire,
    hg_sq_take_queued,
    NULL,
    NULL,
    hg_sq_all_job_stats,
    NULL,                           /* no shared queue */
    NULL
};

