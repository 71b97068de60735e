/*
 * The store: durable history, queued and dead executions, per-job state.
 *
 * The master talks to the store through this interface only; a driver
 * (memory, sqlite, postgres) implements it. Writes are asynchronous
 * and batched: hg_store_put_* only queue a copy of the record and return at
 * once; the driver commits batches in the background (sqlite and postgres
 * in the shared writer's thread, hg_store_writer.c) so the event loop never
 * waits on a transaction. hg_store_barrier() asks to be told, through the completion
 * descriptor, when everything queued before it is committed: the master
 * uses it so that an execution is durably recorded `running` before its
 * dispatch frame goes to a worker (nothing acknowledged is lost on kill -9).
 *
 * Reads (recovery at start, history, statistics, dead list) are synchronous
 * and meant for start-up and for the admin API, not for the hot path.
 *
 * Maintenance (the `system` module's history_cleanup, store_vacuum and
 * health_check) runs on the store's side too: hg_store_task hands a task
 * to the driver and returns; the sqlite driver runs it on a maintenance
 * thread with a connection of its own, and says it is done through the
 * same completion descriptor; hg_store_task_done hands finished tasks
 * back. A worker that runs such a job only asks the master over its pipe
 * and waits for the answer.
 *
 * THE RULE: no SQLite call (and no store call at all) in a process forked
 * from one that has the store open. SQLite's per-process state (the
 * inode list behind its POSIX locks, the -shm mapping) is copied by fork
 * while the locks are not: a connection opened in a worker takes its WAL
 * locks on the wrong descriptor and writes WAL frames into the slots the
 * master's writer uses, and the file is corrupted. Workers ask; the
 * master's store side does.
 *
 * Threads: every hg_store_* call is made from one thread (the master's).
 * The shared writer's threads (hg_store_writer.h: the queue, batches,
 * tickets, failure episodes, maintenance; used by every driver with I/O)
 * are the only other threads; they never call hg_log (which is not
 * thread-safe once the master buffers it): the lines they have to say are
 * queued and written by hg_store_ack, so the master sees them in its own
 * loop turn. A driver adds its SQL and connections below that writer.
 *
 * A cluster driver (PostgreSQL) fits behind the same calls: claim_fire
 * turns a fire time into a unique claim (one row per job and fire time),
 * and take_queued into SELECT ... FOR UPDATE SKIP LOCKED (see "The calls
 * a cluster needs" below).
 */

#ifndef HG_STORE_H
#define HG_STORE_H

#include "hg_core.h"
#include "hg_conf.h"
#include "hg_map.h"

typedef enum {
    HG_EXEC_QUEUED = 0,
    HG_EXEC_RUNNING,
    HG_EXEC_SUCCEEDED,
    HG_EXEC_FAILED,
    HG_EXEC_TIMED_OUT,
    HG_EXEC_CRASHED,
    HG_EXEC_KILLED,
    HG_EXEC_SKIPPED,
    HG_EXEC_MISSED,
    HG_EXEC_DEAD
} hg_exec_status_t;

#define HG_EXEC_NSTATUS  (HG_EXEC_DEAD + 1)

const char *hg_exec_status_name(hg_exec_status_t status);
int hg_exec_status_parse(const char *name, hg_exec_status_t *status);
/* Every status but queued and running. */
bool hg_exec_status_final(hg_exec_status_t status);

/* One execution (one attempt). Strings are owned by whoever filled the
 * record; hg_store_put_execution copies what it keeps. id and job_id are
 * required; every other string may be NULL and reads back as NULL. */
typedef struct hg_exec_record_s {
    const char *id;                 /* UUIDv7 text */
    const char *run_id;             /* first attempt's id: links attempts */
    const char *job_id;
    hg_exec_status_t status;
    unsigned attempt;
    const char *trigger;            /* schedule manual api:NAME retry queue misfire */
    int64_t scheduled_for;          /* ms since the epoch */
    int64_t started_at;             /* ms, 0 = not started */
    int64_t finished_at;            /* ms, 0 = not finished */
    int64_t duration_ms;            /* -1 = none */
    int exit_code;                  /* -1 = none */
    int signo;                      /* 0 = none */
    const char *output;             /* may hold NULs; output_len bytes */
    size_t output_len;
    bool output_truncated;
    const char *error;              /* NULL = none */
    int worker_pid;                 /* 0 = none */
    int64_t max_rss_kb;             /* -1 = unknown */
    int64_t cpu_user_ms;
    int64_t cpu_sys_ms;
    /* queue fields */
    const void *payload;
    size_t payload_len;
    int priority;                   /* hg_priority_t */
    int64_t run_at;                 /* ms; when a queued one may start */
    const char *unique_key;         /* NULL = none */
    int64_t retry_at;               /* ms; dead/failed retry scheduling, 0 = none */
    /* Cluster: claim the fire time (job_id, scheduled_for) for this
     * execution in the transaction that writes the record. Held by
     * another execution, the record is not written and its id is said
     * lost (hg_store_claim_lost). Drivers of one instance always win. */
    bool claim;
    /* With claim: the digest of the job's definition (hg_map_hash of its
     * canonical JSON). A cluster claims only when it is the definition
     * most live instances hold; an odd instance leaves the fire time to
     * them. */
    uint64_t def_hash;
    /* Cluster (store->shared_queue): a queued record for whichever
     * instance has a free worker first, written with no instance (the
     * API's enqueues); on a row of hg_store_taken, one so taken. */
    bool shared;
} hg_exec_record_t;

/* A record read back from the store; free with hg_exec_row_free. Every
 * string and blob of r points into one block, mem, owned by the row.
 * output and payload, when present, are followed by a NUL byte that
 * output_len/payload_len do not count (so text output prints as is). */
typedef struct hg_exec_row_s {
    hg_exec_record_t r;
    void *mem;
} hg_exec_row_t;

void hg_exec_row_free(hg_exec_row_t *row);
void hg_exec_rows_free(hg_exec_row_t *rows, size_t n);

/*
 * Job statistics, kept by the store as executions become final (so a
 * request costs the same for a job with ten runs or a million, and
 * retention cleanup does not change them: they count every run the store
 * has recorded). A record counts once, when it first reaches a final
 * status; a later final status of the same id (failed -> dead) moves it
 * from one count to the other, and a final record put back to queued (a
 * dead execution retried under the same id) stops counting.
 */
typedef struct hg_job_stats_s {
    uint64_t runs;                  /* final records */
    uint64_t successes;             /* succeeded */
    uint64_t failures;              /* failed timed_out crashed killed dead */
    double mean_duration_ms;        /* over final records with a duration */
    int64_t p95_duration_ms;        /* exact below 128 ms, else within 1.6% */
    int64_t last_run;               /* ms, 0 = never */
    hg_exec_status_t last_status;   /* of the final record finished last */
} hg_job_stats_t;

typedef struct hg_store_s hg_store_t;
typedef struct hg_store_writer_s hg_store_writer_t;

/* One job's statistics in hg_store_all_job_stats' list. */
typedef struct hg_job_stats_row_s {
    char *job_id;
    hg_job_stats_t stats;
} hg_job_stats_row_t;

/* The leases one instance holds on executions it took (take_queued):
 * id -> until, for the drivers that serve one instance. */
typedef struct hg_store_leases_s {
    hg_map_t held;                  /* id -> hg_store_lease_t * */
} hg_store_leases_t;


typedef enum {
    HG_STORE_TASK_CLEANUP = 0,      /* delete history past older_than */
    HG_STORE_TASK_VACUUM,           /* give free pages back, empty the WAL */
    HG_STORE_TASK_HEALTH,           /* check the file is still in place */
    HG_STORE_TASK_QUERY             /* the caller's reads: task->query */
} hg_store_task_kind_t;

/* One maintenance task. The caller fills the first part, allocates the
 * task with malloc and gives it to hg_store_task; the store owns it until
 * hg_store_task_done hands it back with the second part filled. A store
 * closed with tasks in hand frees them, calling release on their cookie
 * first (when set). */
typedef struct hg_store_task_s hg_store_task_t;
struct hg_store_task_s {
    hg_store_task_t *next;          /* the driver's lists */
    hg_store_task_kind_t kind;
    int64_t older_than;             /* CLEANUP: ms since the epoch */
    size_t batch;                   /* CLEANUP: rows per transaction */
    void *cookie;                   /* the caller's */
    void (*release)(void *cookie);
    /* QUERY: run on the store's side (its maintenance thread, or at once
     * for a store without one), where it may call the reads below
     * (hg_store_get_execution, _list_executions, _job_stats,
     * _purge_dead) and keep what they return in its own memory; RC is
     * what it returns. */
    int (*query)(hg_store_t *store, hg_store_task_t *task);
    hg_store_t *store;              /* set by hg_store_task */
    /* Set by a store with a writer: the ticket of everything put before
     * the task, which a QUERY waits for (it reads what was put before
     * it: an execution the loop has finished reads back finished), unless
     * writes fail meanwhile (then it reads what the file has). */
    uint64_t after;
    /* results */
    int rc;                         /* HG_OK or HG_ERROR */
    uint64_t deleted;               /* CLEANUP: rows deleted */
    char error[256];                /* when rc is HG_ERROR */
};

/* Tuning and test hooks for hg_store_open_with; zero means the default. */
typedef struct hg_store_options_s {
    size_t queue_limit;             /* records kept in memory while writes
                                       fail or lag; default 100000 */
    int64_t retry_max_ms;           /* the writer's backoff doubles from
                                       retry_max_ms / 10 up to this;
                                       default 1000 */
    int64_t busy_timeout_ms;        /* wait on a locked database;
                                       default 1000 */
    uint64_t max_page_count;        /* test hook: PRAGMA max_page_count of
                                       the write connection, 0 = none */
} hg_store_options_t;

/* What hg_store_dequeue_shared did. */
typedef struct hg_store_dequeued_s {
    bool found;                     /* the id is an execution's */
    bool removed;                   /* recorded killed by this call */
    char job_id[160];
    char status[16];                /* its status now */
    char instance[160];             /* who holds it ("": nobody) */
} hg_store_dequeued_t;

typedef struct hg_store_driver_s {
    const char *name;
    int (*open)(hg_store_t *store, const hg_conf_t *conf,
                const hg_store_options_t *options, char *err, size_t errlen);
    void (*close)(hg_store_t *store);
    int (*put_execution)(hg_store_t *store, const hg_exec_record_t *rec);
    int (*put_job_state)(hg_store_t *store, const char *job_id,
                         int64_t last_fire, bool paused);
    int (*barrier)(hg_store_t *store, uint64_t *ticket);
    uint64_t (*committed)(hg_store_t *store);
    int (*load_unfinished)(hg_store_t *store, hg_exec_row_t **rows,
                           size_t *n);
    int (*load_job_states)(hg_store_t *store, json_t **states);
    int (*get_execution)(hg_store_t *store, const char *id,
                         hg_exec_row_t *row);
    int (*list_executions)(hg_store_t *store, const char *job_id,
                           const char *status, size_t limit, size_t offset,
                           hg_exec_row_t **rows, size_t *n);
    int (*job_stats)(hg_store_t *store, const char *job_id,
                     hg_job_stats_t *stats);
    int (*unique_key_pending)(hg_store_t *store, const char *unique_key,
                              bool *pending);
    int (*purge_dead)(hg_store_t *store, const char *id, const char *job_id,
                      int64_t before, uint64_t *deleted);
    int (*count_executions)(hg_store_t *store, const char *job_id,
                            const char *status, uint64_t *n);
    int (*load_jobs)(hg_store_t *store, json_t **jobs);
    int (*put_jobs)(hg_store_t *store, const json_t *changes);
    int (*task)(hg_store_t *store, hg_store_task_t *task);
    hg_store_task_t *(*task_done)(hg_store_t *store);
    int (*health)(hg_store_t *store, json_t **report);
    /* NULL when the driver has no pages to limit. */
    int (*set_max_page_count)(hg_store_t *store, uint64_t pages);
    /* hg_store_check's part for this driver; NULL = nothing to check. */
    int (*check)(const hg_conf_t *conf, char *err, size_t errlen);
    /* The cluster's calls (see hg_store_claim_fire and after). */
    int (*claim_fire)(hg_store_t *store, const char *job_id,
                      int64_t fire_time, uint64_t *token);
    int (*take_queued)(hg_store_t *store, int64_t now, int64_t lease_ms,
                       size_t limit, hg_exec_row_t **rows, size_t *n);
    /* NULL: the leases are store->leases, this instance's own. */
    int (*renew)(hg_store_t *store, const char *id, int64_t now,
                 int64_t lease_ms);
    int (*release)(hg_store_t *store, const char *id);
    /* hg_store_all_job_stats: every job's, in one read. */
    int (*all_job_stats)(hg_store_t *store, hg_job_stats_row_t **rows,
                         size_t *n);
    /* hg_store_list_shared, hg_store_dequeue_shared; NULL: no shared
     * queue. */
    int (*list_shared)(hg_store_t *store, const char *job_id, size_t limit,
                       size_t offset, hg_exec_row_t **rows, size_t *n,
                       uint64_t *total);
    int (*dequeue_shared)(hg_store_t *store, const char *id,
                          int64_t finished_at, const char *error,
                          hg_store_dequeued_t *out);
} hg_store_driver_t;

struct hg_store_s {
    const hg_store_driver_t *driver;
    void *data;                     /* the driver's state */
    /* The shared writer (hg_store_writer.c) of a driver with I/O; NULL
     * for one that commits in the caller's thread (memory). */
    hg_store_writer_t *writer;
    /* The leases this instance holds (take_queued), for drivers that
     * serve one instance (renew and release NULL). */
    hg_store_leases_t leases;
    /* Readable when commits complete (barrier tickets reached) or when the
     * writer has a line to log. The master watches it and then calls
     * hg_store_ack. -1 for drivers that commit synchronously. */
    int notify_fd;
    /* Copied from the driver by hg_store_ack, in the caller's thread. */
    char *last_error;               /* the last write error, for health */
    uint64_t write_errors;          /* failed write transactions */
    bool failing;                   /* writes fail now: tickets wait */
    /* Set by a cluster driver at open: queued records may be shared
     * (hg_exec_record_t.shared) and job states' paused flags are the
     * cluster's (hg_store_put_pause, hg_store_paused). */
    bool shared_queue;
};

/*
 * Open the driver named in conf->store.driver ("memory", "sqlite",
 * "postgres"). Creates the file (0600, never through a symbolic link) or
 * connects to the database, and creates its schema or migrates it (by
 * version number); a store already up to date is only read. NULL with a
 * message naming the path (or the url, without its password) and the
 * cause.
 */
hg_store_t *hg_store_open(const hg_conf_t *conf, char *err, size_t errlen);
/* The same with tuning or test hooks (options may be NULL). */
hg_store_t *hg_store_open_with(const hg_conf_t *conf,
                               const hg_store_options_t *options,
                               char *err, size_t errlen);
/* Commits what is queued (one last attempt if writes fail: what cannot be
 * written is logged as lost), stops the writer, frees everything. */
void hg_store_close(hg_store_t *store);

/* Queue writes (copies are taken; never blocks on I/O). HG_ERROR only when
 * the record is invalid or memory is exhausted. A later put of the same id
 * replaces the earlier one (while both wait in the queue, only the later
 * is written). When the database cannot be written (disk full, locked,
 * read-only, corrupt), records are kept in memory up to a bound and
 * retried; a log line says so once per episode, and another when writes
 * succeed again. Beyond the bound the oldest records are dropped, counted
 * and logged. */
int hg_store_put_execution(hg_store_t *store, const hg_exec_record_t *rec);
int hg_store_put_job_state(hg_store_t *store, const char *job_id,
                           int64_t last_fire, bool paused);

/*
 * A ticket committed once everything queued so far is durable (tickets
 * grow with the puts; one equal to the last acknowledged is already
 * durable). While writes fail no ticket is acknowledged: the master sees
 * store->failing and decides whether to dispatch without waiting. After
 * an episode in which records had to be dropped, the first commit
 * acknowledges the tickets anyway (what was kept is durable; the drops are
 * counted in health and were logged).
 */
int hg_store_barrier(hg_store_t *store, uint64_t *ticket);
/* A ticket committed once EXEC_ID's last put is durable, which may be
 * before what was put ahead of it: a store that commits a burst in
 * chunks starts the burst's first executions with its first chunk. */
int hg_store_barrier_for(hg_store_t *store, const char *exec_id,
                         uint64_t *ticket);
/*
 * From hg_store_gather on, puts no longer wake the writer each: they
 * gather until hg_store_flush (or a barrier, or a query). An event loop
 * gathers and flushes once a turn, before it waits: a burst of fires in
 * one turn reaches the writer as one batch, instead of waking it a
 * thousand times to commit records one by one while the loop still puts.
 * Both do nothing for a store without a writer.
 */
void hg_store_gather(hg_store_t *store);
/* The highest ticket committed, read without a system call and without
 * the writer's lock: a loop busy with a long turn starts what is durable
 * without waiting for the turn's end. hg_store_ack must still be called
 * (it drains notify_fd, logs, reports failures). */
uint64_t hg_store_peek(hg_store_t *store);
/* Once the ticket of a claiming record's barrier is committed: whether
 * its claim was lost (the fire time is another execution's; the record
 * was not written), said once per id. False while not known, and always
 * for a store without a writer. */
bool hg_store_claim_lost(hg_store_t *store, const char *exec_id);
/* Cluster: the unfinished executions of instances whose lease lapsed,
 * taken over by this one since the last call (*rows NULL and *n 0 when
 * none; free with hg_exec_rows_free). Every store answers: a store of one
 * instance never takes any. */
int hg_store_taken(hg_store_t *store, hg_exec_row_t **rows, size_t *n);
/* Cluster: whether this instance was fenced (another took its work over:
 * it stopped renewing its lease for longer than the lease, paused or cut
 * off, or a second process runs under its name); WHY says how. A fenced
 * instance must start nothing more. */
bool hg_store_fenced(hg_store_t *store, char *why, size_t len);
/* Cluster: the store's latest picture of it, a new object the caller
 * owns, or NULL (no cluster, or not read yet): {"term", "instances": [{
 * "name", "term", "live", "lease_left_ms", "renewed_ms_ago", "taken_by"}
 * ...]}, read by the driver every third of the lease. */
json_t *hg_store_cluster(hg_store_t *store);
void hg_store_flush(hg_store_t *store);
/* The highest ticket committed (0 before any); drains notify_fd and writes
 * the writer's pending log lines. */
uint64_t hg_store_ack(hg_store_t *store);

/* Reads. Rows of load_unfinished and get_execution are complete; rows of
 * list_executions leave out output and payload (NULL, length 0). */
int hg_store_load_unfinished(hg_store_t *store, hg_exec_row_t **rows,
                             size_t *n);     /* queued and running */
int hg_store_load_job_states(hg_store_t *store, json_t **states);
                                             /* {job: {last_fire, paused}} */
int hg_store_get_execution(hg_store_t *store, const char *id,
                           hg_exec_row_t *row);   /* HG_AGAIN: not found */
/* Newest first (scheduled_for, then id), filtered by job and/or status
 * (NULL = any; an unknown status name is HG_ERROR); limit 0 = no limit. */
int hg_store_list_executions(hg_store_t *store, const char *job_id,
                             const char *status, size_t limit,
                             size_t offset, hg_exec_row_t **rows,
                             size_t *n);
/* How many hg_store_list_executions would list without limit or offset:
 * a page's total. */
int hg_store_count_executions(hg_store_t *store, const char *job_id,
                              const char *status, uint64_t *n);
/* All zero (last_status queued) for a job without final records. */
int hg_store_job_stats(hg_store_t *store, const char *job_id,
                       hg_job_stats_t *stats);
/* Delete dead executions (the dead-letter list's purge): the one with ID,
 * or, ID NULL, those of JOB_ID (NULL: any job) that finished before
 * BEFORE (0: any time); *DELETED says how many. Only from a QUERY task
 * (the store's side), as the reads above once the loop runs: a dead
 * execution's record may still be on its way to the file, so purging
 * one that was just recorded may find nothing (deleted 0). */
int hg_store_purge_dead(hg_store_t *store, const char *id,
                        const char *job_id, int64_t before,
                        uint64_t *deleted);
/*
 * The jobs defined through the admin API (the file's are the file's):
 * load_jobs gives {id: {definition, created_by, created_at, updated_at}}
 * (times in ms), at start or from a QUERY task; put_jobs writes CHANGES
 * ({id: record in that shape, or null to delete the job}) all or none,
 * at once and durably, and only from a QUERY task (the store's side):
 * the answer to the API client waits for it, as a job the client was
 * told exists must survive a kill -9. put_job is one change.
 */
int hg_store_load_jobs(hg_store_t *store, json_t **jobs);
int hg_store_put_jobs(hg_store_t *store, const json_t *changes);
int hg_store_put_job(hg_store_t *store, const char *id,
                     const json_t *record);
/* The definitions of JOBS (load_jobs' shape), as an array: what a cycle
 * reader takes ({"api_jobs": ...}); NULL when out of memory. */
json_t *hg_store_job_definitions(const json_t *jobs);

/* Whether an execution with this key is queued. */
int hg_store_unique_key_pending(hg_store_t *store, const char *unique_key,
                                bool *pending);
/*
 * Maintenance, asynchronous: TASK (see hg_store_task_t) runs on the
 * store's side, never in the caller's thread (the sqlite driver: on its
 * maintenance thread and connection; the memory driver at once, as it has
 * no I/O). HG_ERROR (and the task is still the caller's) only when it
 * cannot be queued. Completion is signalled on notify_fd; after
 * hg_store_ack, hg_store_task_done returns finished tasks, oldest first,
 * NULL when none is (a driver without notify_fd finishes each task before
 * hg_store_task returns).
 *
 * A QUERY reads every record put before it was handed over (its reads
 * wait for their commit, or for a write failure).
 *
 * CLEANUP deletes final executions that finished before older_than,
 * dead ones excepted (they stay in the dead-letter list until retried or
 * purged), in transactions of at most batch rows (0 = 1000) so the
 * writer is never held off for long; then the claims of fire times
 * before older_than (not counted in deleted). VACUUM returns free pages to the
 * file system and truncates the WAL. HEALTH checks that the file is still
 * the one the store opened; the figures come from hg_store_health.
 */
int hg_store_task(hg_store_t *store, hg_store_task_t *task);
hg_store_task_t *hg_store_task_done(hg_store_t *store);

/* The same tasks, waiting for them: for start-up, tools and tests, never
 * the event loop; not while asynchronous tasks are outstanding. */
int hg_store_cleanup(hg_store_t *store, int64_t older_than, size_t batch,
                     uint64_t *deleted);
int hg_store_vacuum(hg_store_t *store);
/* {driver, path, size_bytes, wal_bytes, queue_depth, written, write_errors,
 *  failing, last_error, dropped, committed}; memory: the fields that apply
 *  and executions. */
int hg_store_health(hg_store_t *store, json_t **report);

/* The write side's figures, cheap enough for every metrics scrape (no
 * query, one lock): all zero for a store without a writer (memory). */
typedef struct hg_store_figures_s {
    uint64_t queue_depth;           /* records waiting or being written */
    uint64_t written;               /* records committed */
    uint64_t write_errors;          /* transactions that failed */
    uint64_t dropped;               /* records given up (queue full) */
    uint64_t committed;             /* the last barrier ticket committed */
    bool failing;                   /* in a failure episode now */
    bool idle;                      /* the writer waits for work (tests:
                                       a gathered put then stays queued
                                       until hg_store_flush) */
    char last_error[256];           /* "" when none */
} hg_store_figures_t;

void hg_store_figures(hg_store_t *store, hg_store_figures_t *figures);

/* Test hook (sqlite): limit the database to PAGES pages (0 = no limit),
 * applied by the writer before its next transaction; a limit below the
 * current size means "no room to grow". HG_ERROR for the memory driver. */
int hg_store_set_max_page_count(hg_store_t *store, uint64_t pages);

/*
 * The calls a cluster needs. Several instances share one database; each
 * fire time of a job must start once, and each queued execution must run
 * on one instance at a time. These are synchronous (a cluster driver
 * makes one round trip each) and are not yet called by the master.
 *
 * claim_fire: JOB_ID's fire at FIRE_TIME (ms) is this instance's to start.
 * HG_OK: claimed, with a fencing token in *token, greater than every token
 * given out before by this store (a worker's writes can carry it, so that
 * a claim that was lost and taken over is refused downstream). HG_AGAIN:
 * the fire time is already claimed (by anyone, this instance included):
 * do not start it. HG_ERROR: the store cannot say; nothing is claimed.
 * A PostgreSQL driver: INSERT ... ON CONFLICT DO NOTHING RETURNING on a
 * unique (job_id, fire_time) row, the token from a sequence.
 *
 * take_queued: up to LIMIT (0 = no limit) queued executions whose run_at
 * is due at NOW, highest priority first, then oldest run_at, then id,
 * leased to this instance until NOW + LEASE_MS. An execution leased and
 * not expired is not taken again; one whose lease expired is (its taker
 * died or stopped renewing). *rows as for hg_store_load_unfinished.
 * A PostgreSQL driver: UPDATE ... WHERE id IN (SELECT ... FOR UPDATE
 * SKIP LOCKED) RETURNING.
 *
 * renew: the lease on execution ID runs until NOW + LEASE_MS. HG_OK, or
 * HG_AGAIN when this instance does not hold it (never taken, released,
 * or expired and taken again): stop the execution.
 *
 * release: give execution ID's lease back (after its final record is
 * put, or to let another instance take it). HG_OK, or HG_AGAIN when not
 * held.
 *
 * memory and sqlite serve one instance, which always wins: a claim
 * succeeds once per (job, fire time) -- sqlite keeps one row per claim
 * (table fire_claims, unique on both), so a fire time recorded twice is
 * refused even across restarts; memory a hash set -- and leases are
 * this instance's, kept in memory (a restarted instance takes up every
 * queued execution anyway).
 */
int hg_store_claim_fire(hg_store_t *store, const char *job_id,
                        int64_t fire_time, uint64_t *token);
int hg_store_take_queued(hg_store_t *store, int64_t now, int64_t lease_ms,
                         size_t limit, hg_exec_row_t **rows, size_t *n);
int hg_store_renew(hg_store_t *store, const char *id, int64_t now,
                   int64_t lease_ms);
int hg_store_release(hg_store_t *store, const char *id);

/*
 * The cluster's shared queue and pause state (store->shared_queue; for
 * any other store these change nothing: capacity is ignored, a pause is
 * a job state as any, and no change ever comes back).
 *
 * set_capacity: how many more executions this instance could start now
 * (its free workers less what waits for them); the store takes up to
 * that many shared queued executions at a time, which come back through
 * hg_store_taken with r.shared set. Lock-free: any call is cheap.
 *
 * put_pause: hg_store_put_job_state for a pause or a resume, the one put
 * that changes a cluster's shared paused flag (the others carry the
 * instance's last_fire only, so a peer's pause is never undone by a
 * fire recorded here before this instance heard of it).
 *
 * paused: the peers' pauses and resumes read since the last call,
 * {job: true (paused) | false}, or NULL when none; the caller owns it.
 */
void hg_store_set_capacity(hg_store_t *store, size_t free_workers);
/* The master, at the end of each dispatch turn: whether executions wait
 * to start (ready, primed, or waiting for their records). While they do,
 * a store that commits in chunks holds back the records nobody waits for
 * (finals, queued fires), for at most 100 ms: the starts' records, and
 * the starts, get the machine (hg_store_writer.c). */
void hg_store_set_starting(hg_store_t *store, bool starting);
int hg_store_put_pause(hg_store_t *store, const char *job_id,
                       int64_t last_fire, bool paused);
json_t *hg_store_paused(hg_store_t *store);
/* The peers' changes to the API's jobs read since the last call, {job:
 * {definition, created_by, created_at, updated_at} or null (deleted)},
 * or NULL when none; the caller owns it. */
json_t *hg_store_peer_jobs(hg_store_t *store);

/*
 * The shared queue's items that no instance has taken yet, for the
 * admin API; only from a QUERY task (the store's side). A store without
 * a shared queue has none.
 *
 * list_shared: a page of them (LIMIT from OFFSET), of JOB_ID (NULL: any),
 * in the order they are taken (priority, then the longest due), and how
 * many there are in all (*TOTAL).
 *
 * dequeue_shared: take ID out of the queue, atomically: only while no
 * instance has taken it, it is recorded killed at FINISHED_AT (ms) with
 * ERROR and counted in its job's statistics, as a dequeue of the
 * instance's own. OUT says what became of it: removed (with its job), or
 * not, with the status and instance (empty: none) it has now; found
 * false for an unknown id. HG_ERROR when the store failed.
 */
int hg_store_list_shared(hg_store_t *store, const char *job_id, size_t limit,
                         size_t offset, hg_exec_row_t **rows, size_t *n,
                         uint64_t *total);
int hg_store_dequeue_shared(hg_store_t *store, const char *id,
                            int64_t finished_at, const char *error,
                            hg_store_dequeued_t *out);

/* `hourglass -t`: can the store in CONF be opened and written? Creates
 * nothing. The message names the key and the path:
 * store.path: cannot create /ro/hourglass.db: Read-only file system */
int hg_store_check(const hg_conf_t *conf, char *err, size_t errlen);

extern const hg_store_driver_t hg_store_memory_driver;
#if HG_HAVE_SQLITE
extern const hg_store_driver_t hg_store_sqlite_driver;
#endif
#if HG_HAVE_POSTGRES
extern const hg_store_driver_t hg_store_postgres_driver;
#endif

/* A cluster's preferred claimer of JOB_ID's FIRE_TIME among NLIVE live
 * instances (the postgres driver's; see hg_store_pg.c): its place among
 * their names in order. Every instance, and the tests, compute the same
 * from the same names. */
size_t hg_store_preferred(const char *job_id, int64_t fire_time,
                          size_t nlive);


/* --- for drivers -------------------------------------------------------- */

/* HG_OK when REC can be stored (ids present, status known, lengths
 * matching their pointers), else HG_ERROR with the reason in err. */
int hg_exec_record_check(const hg_exec_record_t *rec, char *err,
                         size_t errlen);
/* Deep copy of SRC into ROW (one allocation). */
int hg_exec_row_copy(hg_exec_row_t *row, const hg_exec_record_t *src);

/*
 * Durations are counted per job in log-linear buckets: one per millisecond
 * below 128 ms, then 64 per power of two (so a bucket is at most 1/64 of
 * its value wide). p95 is the nearest-rank 95th percentile: the highest
 * value of the bucket holding it, capped by the longest duration seen.
 */
typedef struct hg_store_bucket_s {
    unsigned bucket;
    int64_t count;
} hg_store_bucket_t;

unsigned hg_store_duration_bucket(int64_t ms);
int64_t hg_store_bucket_high(unsigned bucket);
/* BUCKETS sorted by bucket; counts <= 0 are skipped. */
int64_t hg_store_p95(const hg_store_bucket_t *buckets, size_t n,
                     int64_t max_ms);

/* How one record counts in its job's statistics (all zero if not final). */
typedef struct hg_stats_entry_s {
    int runs;                       /* 1 if final */
    int successes;
    int failures;
    int durations;                  /* 1 if final with a duration */
    int64_t duration_ms;
    unsigned bucket;
    int64_t time;                   /* when it finished (last-run order) */
} hg_stats_entry_t;

void hg_stats_entry(const hg_exec_record_t *rec, hg_stats_entry_t *e);

/* A batch's change to its jobs' statistics (job_stats, job_durations),
 * by job id: a driver adds each record it writes (sign 1) and takes out
 * each final row it overwrites (sign -1), then writes one row per job. */
typedef struct hg_store_delta_s {
    int64_t runs, successes, failures, durations, duration_sum;
    int64_t duration_max, last_run;
    bool has_last;
    hg_exec_status_t last_status;
    hg_store_bucket_t *buckets;
    size_t nbuckets, cap;
    char job_id[];
} hg_store_delta_t;

/* Adds (sign 1) or takes away (sign -1) REC's part of its job's entry in
 * DELTAS (job id -> hg_store_delta_t *). HG_ERROR: out of memory. */
int hg_store_delta_apply(hg_map_t *deltas, const hg_exec_record_t *rec,
                         int sign);
/* Frees every entry and the map's own memory. */
void hg_store_deltas_free(hg_map_t *deltas);

void hg_store_leases_init(hg_store_leases_t *leases);
void hg_store_leases_free(hg_store_leases_t *leases);
/* Whether ID may be taken at NOW (not held, or its lease expired). */
bool hg_store_leases_free_at(const hg_store_leases_t *leases,
                             const char *id, int64_t now);
/* Take or renew ID's lease until UNTIL. HG_ERROR: out of memory. */
int hg_store_leases_hold(hg_store_leases_t *leases, const char *id,
                         int64_t until);
/* Leases every row of *ROWS until UNTIL; out of memory, none is held,
 * the rows are freed (*n = 0) and HG_ERROR returned. */
int hg_store_leases_take(hg_store_leases_t *leases, hg_exec_row_t **rows,
                         size_t *n, int64_t until);
/* HG_OK, or HG_AGAIN when ID is not held. */
int hg_store_leases_renew(hg_store_leases_t *leases, const char *id,
                          int64_t until);
int hg_store_leases_release(hg_store_leases_t *leases, const char *id);

/* A FIFO of tasks, linked through their next. */
typedef struct hg_store_tasks_s {
    hg_store_task_t *head, *tail;
} hg_store_tasks_t;

void hg_store_tasks_push(hg_store_tasks_t *list, hg_store_task_t *task);
hg_store_task_t *hg_store_tasks_pop(hg_store_tasks_t *list);  /* or NULL */
/* Frees tasks the caller never got back, releasing their cookies. */
void hg_store_tasks_free(hg_store_tasks_t *list);

/* Queued lines of a writer thread, written later by the caller's thread. */
typedef struct hg_store_logline_s {
    struct hg_store_logline_s *next;
    hg_log_level_t level;
    char text[];
} hg_store_logline_t;

/* Appends a formatted line to *list (tail order); drops it when out of
 * memory. Then hg_store_loglines_emit writes and frees them. */
void hg_store_logline_add(hg_store_logline_t **list, hg_log_level_t level,
                          const char *fmt, ...) HG_PRINTF(3, 4);
void hg_store_loglines_emit(hg_store_logline_t *list);

/*
 * Every job's statistics the store keeps, sorted by job id (strcmp), in
 * one read: what a list of jobs shows, instead of one read per job. A job
 * without final records may be missing (read it as all zero). Only from
 * a QUERY task (the store's side), as the reads above once the loop runs.
 * Free with hg_job_stats_rows_free.
 */
int hg_store_all_job_stats(hg_store_t *store, hg_job_stats_row_t **rows,
                           size_t *n);
void hg_job_stats_rows_free(hg_job_stats_row_t *rows, size_t n);
/* The row of JOB_ID in such a list, or NULL. */
const hg_job_stats_row_t *hg_job_stats_find(const hg_job_stats_row_t *rows,
                                            size_t n, const char *job_id);

/* That list built from a driver's rows: one per job and duration bucket
 * (a job's totals repeated, its buckets in order; a job without buckets
 * once, with has_bucket false), a job's rows together. TOTALS: runs,
 * successes, failures, durations, duration_sum, duration_max, last_run.
 * Start zeroed; _end hands the list over, _free drops it (after an
 * error too). */
typedef struct hg_store_stats_list_s {
    hg_job_stats_row_t *rows;
    size_t n, cap;
    hg_store_bucket_t *buckets;     /* the current job's */
    size_t nbuckets, bcap;
    int64_t max;                    /* the current job's longest duration */
} hg_store_stats_list_t;

int hg_store_stats_list_add(hg_store_stats_list_t *list, const char *job_id,
                            const int64_t totals[7], const char *last_status,
                            bool has_bucket, unsigned bucket, int64_t count);
void hg_store_stats_list_end(hg_store_stats_list_t *list,
                             hg_job_stats_row_t **rows, size_t *n);
void hg_store_stats_list_free(hg_store_stats_list_t *list);

#endif /* HG_STORE_H */
