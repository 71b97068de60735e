/*
 * The store's shared writer: what a driver with I/O needs between the
 * master's puts and its own transactions. It owns the queue of records
 * (merged by execution id, job states by job id), the writer thread that
 * hands the queue to the driver as one batch per transaction, barrier
 * tickets and their acknowledgement through notify_fd, failure episodes
 * (retry with backoff, one line when an episode opens and one when it
 * closes, a bounded backlog whose drops are counted, chunked recovery,
 * the rescue of a file moved away, at close), the lines its threads queue
 * for the master's hg_log, and the maintenance thread that runs
 * hg_store_task.
 *
 * A driver gives it a backend (below): one call that writes a batch in
 * one transaction and classifies a failure, and the calls its threads
 * need. The driver's table then points put_execution, put_job_state,
 * barrier, committed, task and task_done at the hg_store_writer_* entries
 * here, and keeps only its SQL, its connections and its file checks: a
 * PostgreSQL driver adds SQL, not machinery.
 *
 * It never opens a database nor knows a query language, never calls
 * hg_log from its threads (lines wait for hg_store_ack), and never blocks
 * the caller's thread on I/O: the caller takes its mutex, which the
 * threads hold only to swap the queue, never across a backend call.
 */

#ifndef HG_STORE_WRITER_H
#define HG_STORE_WRITER_H

#include "hg_core.h"
#include "hg_map.h"
#include "hg_store.h"

typedef struct hg_store_item_s {
    struct hg_store_item_s *prev, *next;
    uint64_t seq;                   /* its ticket: the put that queued it,
                                       or a lower one when a barrier moved
                                       it ahead (hg_sw_hasten) */
    int64_t put_ms;                 /* monotonic ms of the first put */
    bool urgent;                    /* moved ahead: a start waits for it */
    hg_exec_row_t row;
} hg_store_item_t;

typedef struct hg_store_state_s {
    uint64_t seq;                   /* its ticket: it is committed with
                                       every record queued before it */
    int64_t last_fire;
    bool paused;
    bool pause;                     /* a put of it was a pause or resume
                                       (hg_store_put_pause) */
    char job_id[];
} hg_store_state_t;

/* What one transaction writes: executions oldest first (each id once: a
 * later put replaced the earlier in place) and job states by job id. A
 * backend reads it: for (item = b->head; item; item = item->next) and
 * hg_map_next(&b->states, ...) for hg_store_state_t values. */
typedef struct hg_store_batch_s {
    hg_store_item_t *head, *tail;
    size_t count;
    hg_map_t ids;                   /* id -> hg_store_item_t * */
    hg_map_t states;                /* job id -> hg_store_state_t * */
} hg_store_batch_t;

/* How a write went; every failure is retried (with backoff), the kind
 * only chooses the words and level of the episode's line. */
typedef enum {
    HG_STORE_WRITE_OK = 0,
    HG_STORE_WRITE_BUSY,            /* held by another process: a warning */
    HG_STORE_WRITE_FAILED,          /* full, read-only, I/O, memory */
    HG_STORE_WRITE_DAMAGED,         /* the file is corrupt */
    HG_STORE_WRITE_MOVED            /* the file left its path: keep the
                                       records for reopen, at close */
} hg_store_write_t;

typedef struct hg_store_writer_s hg_store_writer_t;

typedef struct hg_store_backend_s {
    /* Writer thread, on the driver's write connection: BATCH (never
     * empty) in one transaction, all or nothing; the reason in err. W is
     * for hg_store_writer_want_checkpoint. */
    hg_store_write_t (*commit)(void *be, hg_store_writer_t *w,
                               const hg_store_batch_t *batch, char *err,
                               size_t errlen);
    /* Writer thread, before the next commit: the test hook of
     * hg_store_set_max_page_count. NULL = not supported. */
    hg_store_write_t (*set_limit)(void *be, uint64_t limit, char *err,
                                  size_t errlen);
    /* Maintenance thread, on a connection of its own: runs TASK, filling
     * its results; a long task polls hg_store_writer_stopping. */
    void (*task)(void *be, hg_store_writer_t *w, hg_store_task_t *task);
    /* Caller's thread, at close: cut a running task short. NULL = none. */
    void (*interrupt)(void *be);
    /* Caller's thread, at close, the threads ended, after a MOVED fault:
     * close every connection and open a write connection to the file now
     * at the path (creating it). */
    int (*reopen)(void *be, char *err, size_t errlen);
    /* Maintenance thread, before its next task, once commit asked with
     * hg_store_writer_want_checkpoint: the work a commit leaves for later
     * (SQLite: copying the WAL into the database, with its fsyncs), done
     * off the writer thread so that no commit, and no barrier, waits for
     * it. NULL = none. */
    void (*checkpoint)(void *be, hg_store_writer_t *w);
    /* Writer thread, between transactions, once at start and then when
     * the milliseconds it returned have passed (also while idle): the
     * driver's periodic work on its write connection (a cluster's lease:
     * renewed, and the instances whose lease lapsed taken over). Returns
     * the wait before the next call. NULL = none. */
    int64_t (*tick)(void *be, hg_store_writer_t *w);
    /* Records per transaction (0: all that are queued). A burst's first
     * starts wait for the chunk that holds their records, not for the
     * whole burst; a driver whose commit costs an fsync keeps 0. */
    size_t chunk;
} hg_store_backend_t;

/* Starts the writer and maintenance threads for STORE (store->writer,
 * store->notify_fd). NAME (the path) is what the lines call the
 * database. */
int hg_store_writer_start(hg_store_t *store, const hg_store_backend_t *ops,
                          void *be, const char *name,
                          const hg_store_options_t *options, char *err,
                          size_t errlen);
/* Commits what is queued (one last try), stops the threads, writes a
 * moved file's records to the one now at its path, logs the threads'
 * last lines and frees the writer. The driver closes its connections
 * after. */
void hg_store_writer_close(hg_store_t *store);

/* The driver table's entries (see hg_store.h for their promises). */
int hg_store_writer_put_execution(hg_store_t *store,
                                  const hg_exec_record_t *rec);
int hg_store_writer_put_job_state(hg_store_t *store, const char *job_id,
                                  int64_t last_fire, bool paused);
int hg_store_writer_put_pause(hg_store_t *store, const char *job_id,
                              int64_t last_fire, bool paused);
void hg_store_writer_set_capacity(hg_store_t *store, size_t n);
void hg_store_writer_set_starting(hg_store_t *store, bool starting);
json_t *hg_store_writer_paused(hg_store_t *store);
json_t *hg_store_writer_jobs(hg_store_t *store);
int hg_store_writer_barrier(hg_store_t *store, uint64_t *ticket);
int hg_store_writer_barrier_for(hg_store_t *store, const char *exec_id,
                                uint64_t *ticket);
uint64_t hg_store_writer_peek(hg_store_t *store);
bool hg_store_writer_claim_lost(hg_store_t *store, const char *exec_id);
int hg_store_writer_taken(hg_store_t *store, hg_exec_row_t **rows,
                          size_t *n);
bool hg_store_writer_fenced(hg_store_t *store, char *why, size_t len);
json_t *hg_store_writer_view(hg_store_t *store);
void hg_store_writer_gather(hg_store_t *store);
void hg_store_writer_flush(hg_store_t *store);
uint64_t hg_store_writer_committed(hg_store_t *store);
int hg_store_writer_task(hg_store_t *store, hg_store_task_t *task);
hg_store_task_t *hg_store_writer_task_done(hg_store_t *store);
int hg_store_writer_set_limit(hg_store_t *store, uint64_t limit);

/* Adds queue_depth, written, write_errors, failing, last_error, dropped
 * and committed to REPORT (a driver's health object). */
int hg_store_writer_health(hg_store_t *store, json_t *report);

/* For the backend's threads: whether the store is closing, and a line
 * for hg_store_ack to log. */
bool hg_store_writer_stopping(hg_store_writer_t *w);
/* For the backend's commit (writer thread): the claim of record EXEC_ID
 * was lost, so the record was not written. Said to the master once the
 * transaction commits; forgotten if it fails. */
int hg_store_writer_lose(hg_store_writer_t *w, const char *exec_id);
/* For the backend's tick (writer thread), once its transaction committed:
 * ROWS (N of them; ownership passes, freed on failure) were another
 * instance's unfinished executions and are this one's now; the master
 * takes them with hg_store_taken. */
int hg_store_writer_take(hg_store_writer_t *w, hg_exec_row_t *rows,
                         size_t n);
/* For the backend's tick (writer thread): the master's last word on its
 * free capacity (hg_store_set_capacity), and what it took of it (N
 * executions handed to hg_store_writer_take), counted down until the
 * master says again. */
size_t hg_store_writer_capacity(hg_store_writer_t *w);
void hg_store_writer_used(hg_store_writer_t *w, size_t n);
/* For the backend's tick (writer thread): a peer paused (PAUSED true) or
 * resumed job JOB_ID; the master takes them with hg_store_paused. */
int hg_store_writer_peer_paused(hg_store_writer_t *w, const char *job_id,
                                bool paused);
/* For the backend's tick (writer thread): a peer changed API job JOB_ID;
 * RECORD (ownership passes, even on failure) is its row, {definition,
 * created_by, created_at, updated_at}, or json null when it was deleted.
 * The master takes them with hg_store_peer_jobs. */
int hg_store_writer_peer_job(hg_store_writer_t *w, const char *job_id,
                             json_t *record);
/* For the backend (writer thread): this instance no longer holds what it
 * wrote (another took its work over); WHY says so to the master, which
 * stops (hg_store_fenced). The first reason is kept. */
void hg_store_writer_fence(hg_store_writer_t *w, const char *why);
/* For the backend's tick (writer thread): VIEW (ownership passes; never
 * shared with anything else) replaces the driver's picture of the
 * cluster, which the master copies with hg_store_cluster. */
void hg_store_writer_set_view(hg_store_writer_t *w, json_t *view);
/* For the backend's tick (writer thread): the view's "leader" is believed
 * until UNTIL_MS (monotonic ms; 0: no deadline), and read as false after,
 * whatever the view says: a leader stopped or cut off past its lease
 * stops believing it before any peer can take the lead. */
void hg_store_writer_set_leader(hg_store_writer_t *w, int64_t until_ms);
/* The writer whose maintenance thread calls (a QUERY task's reads), or
 * NULL in any other thread: what a read has to say goes through
 * hg_store_writer_log there, as the log is the loop's. */
hg_store_writer_t *hg_store_writer_self(void);
/* For commit: have the maintenance thread run the backend's checkpoint
 * (once for any number of asks before it starts). */
void hg_store_writer_want_checkpoint(hg_store_writer_t *w);
void hg_store_writer_log(hg_store_writer_t *w, hg_log_level_t level,
                         const char *fmt, ...) HG_PRINTF(3, 4);
/* A driver's read has something to say: on the maintenance thread (a
 * QUERY task's read) the line waits for hg_store_ack, anywhere else (the
 * caller's thread: start-up) it is logged at once. */
void hg_store_writer_say(hg_log_level_t level, const char *fmt, ...)
    HG_PRINTF(2, 3);

#endif /* HG_STORE_WRITER_H */
