/*
 * hg_store_pg.h: what the files of the `postgres` store driver share,
 * and nothing outside them may include: its state (hg_pg_t), a
 * statement's parameters, the SQL every part builds on, and the calls
 * one part makes of another.
 *
 *   hg_store_pg.c          connections, the schema and its migrations,
 *                          open, close, check, maintenance, the driver
 *   hg_store_pg_write.c    the writer thread: records, claims, states
 *   hg_store_pg_cluster.c  the cluster: lease, takeover, leader, peers,
 *                          the shared queue
 *   hg_store_pg_read.c     reads (start-up, then QUERY tasks)
 *
 * The rules of hg_store_pg.c's opening comment hold for every part.
 */

#ifndef HG_STORE_PG_H
#define HG_STORE_PG_H

#include "hg_core.h"

#include <libpq-fe.h>

#include "hg_json.h"
#include "hg_log.h"
#include "hg_map.h"
#include "hg_store.h"
#include "hg_store_writer.h"
#include "hg_timer.h"

/* The database's clock, ms since the epoch: leases never read an
 * instance's own clock, so instances need not agree on the time. */
#define HG_PG_NOW  "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
#define HG_PG_NCOLS        24

/* The column order every read of executions follows (hg_pg_read_row). */
#define HG_PG_COLS_HEAD \
    "id, run_id, job_id, status, attempt, triggered_by, scheduled_for," \
    " started_at, finished_at, duration_ms, exit_code, signal, "
#define HG_PG_COLS_MID \
    ", output_truncated, error, worker_pid, max_rss_kb, cpu_user_ms," \
    " cpu_sys_ms, "
#define HG_PG_COLS_TAIL ", priority, run_at, unique_key, retry_at"
#define HG_PG_COLS_FULL \
    HG_PG_COLS_HEAD "output" HG_PG_COLS_MID "payload" HG_PG_COLS_TAIL
#define HG_PG_COLS_LIST \
    HG_PG_COLS_HEAD "NULL::bytea" HG_PG_COLS_MID "NULL::bytea" \
    HG_PG_COLS_TAIL

#define HG_PG_SET_MUTABLE \
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

/* What a fast put overwrites: a queued or running row that keeps its job,
 * due time and unique key (so counts for nothing in the statistics). */
#define HG_PG_FAST_WHERE \
    " WHERE executions.status IN ('queued', 'running')" \
    " AND executions.job_id = excluded.job_id" \
    " AND executions.scheduled_for = excluded.scheduled_for" \
    " AND executions.unique_key IS NOT DISTINCT FROM excluded.unique_key"

#define HG_PG_INSERT \
    "INSERT INTO executions (" HG_PG_COLS_FULL ") VALUES ($1, $2, $3, $4," \
    " $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19," \
    " $20, $21, $22, $23, $24) ON CONFLICT (id) DO UPDATE SET"

/* A job's statistics, added to (a delta: $1 job, $2 runs, $3 successes,
 * $4 failures, $5 durations, $6 their sum, $7 the longest, $8 the last
 * run's time, $9 its status or NULL). */
#define HG_PG_STATS_UPSERT \
    "INSERT INTO job_stats (job_id, runs, successes," \
    " failures, durations, duration_sum, duration_max, last_run," \
    " last_status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)" \
    " ON CONFLICT (job_id) DO UPDATE SET" \
    " runs = job_stats.runs + excluded.runs," \
    " successes = job_stats.successes + excluded.successes," \
    " failures = job_stats.failures + excluded.failures," \
    " durations = job_stats.durations + excluded.durations," \
    " duration_sum = job_stats.duration_sum + excluded.duration_sum," \
    " duration_max = GREATEST(job_stats.duration_max," \
    "   excluded.duration_max)," \
    " last_status = CASE WHEN excluded.last_status IS NOT NULL" \
    "   AND excluded.last_run >= job_stats.last_run" \
    "   THEN excluded.last_status ELSE job_stats.last_status END," \
    " last_run = GREATEST(job_stats.last_run, excluded.last_run)"

/* The driver's state, shared by its threads: each field says whose it
 * is; the three connections are one thread's each (hg_store_pg.c). */
typedef struct hg_pg_s {
    char *url;                      /* as configured: never shown */
    char *name;                     /* the url without its password */
    PGconn *wconn;                  /* the writer thread's */
    PGconn *rconn;                  /* reads (start-up, then QUERY tasks) */
    PGconn *mconn;                  /* the maintenance thread's */
    bool w_prepared;                /* hg_pg_writer_sql on wconn */
    bool w_stale;                   /* wconn left mid-pipeline: reset it */
    char *options;                  /* libpq options: the cluster's instance
                                       name as hourglass.instance; or NULL */
    char *instance;                 /* the cluster's name for us, or NULL */
    int64_t lease_ms;
    int64_t term;                   /* our fencing token (instances.term) */
    bool lease_failing;             /* the tick's line was said */
    /* The writer thread's: job id -> hg_pg_def_t, our digests written to
     * job_definitions (emptied when a commit fails: written again); and
     * the jobs whose fire times we left to the others' definition. */
    hg_map_t defined;
    hg_map_t odd;
    /* The writer thread's: job id -> hg_pg_def_t whose hash is the last
     * version of its job state's paused flag read (hg_pg_paused). */
    hg_map_t seen;
    hg_map_t jobs_seen;             /* the writer thread's: job id ->
                                       hg_pg_def_t, the last version of its
                                       API job's row read (hg_pg_peer_jobs) */
    int64_t lease_due;              /* monotonic ms of the next lease tick */
    /* The writer thread's: whether the last tick that committed found us
     * the leader, under which term, and, for the dead-man windows, each
     * job's last start and success anywhere ({job: {run_ms, success_ms}})
     * and the finished_at the next read of them starts from (0: none
     * read yet). */
    bool leading;
    int64_t lead_term;
    json_t *runs;
    int64_t runs_since;
    /* The writer thread's, from each lease (hg_pg_lease): how many
     * instances are live, us included, and where we stand among their
     * names in order (hg_pg_prefer); 0 live: not known yet. */
    size_t nlive;
    size_t self;
} hg_pg_t;

typedef struct hg_pg_def_s {
    uint64_t hash;
    char job_id[];
} hg_pg_def_t;

/* A statement's parameters, text but for the bytea ones. */
typedef struct hg_pg_params_s {
    int n;
    const char *values[HG_PG_NCOLS];
    int lengths[HG_PG_NCOLS];
    int formats[HG_PG_NCOLS];
    char nums[HG_PG_NCOLS][24];
    char *owned[2];                 /* cleaned copies (hg_pg_clean) */
    int nowned;
} hg_pg_params_t;

/* hg_store_pg.c: connections and statements */
void hg_pg_text(hg_pg_params_t *p, const char *text);
void hg_pg_int(hg_pg_params_t *p, int64_t v);
void hg_pg_bytes(hg_pg_params_t *p, const void *bytes, size_t len);
void hg_pg_message(const char *msg, char *err, size_t errlen);
void hg_pg_notice(void *arg, const char *message);
PGconn *hg_pg_connect(const char *url, const char *options, char *err,
                      size_t errlen);
bool hg_pg_ok(PGconn *conn, PGresult *res, ExecStatusType want, char *err,
              size_t errlen);
PGresult *hg_pg_run(PGconn *conn, bool retry, const char *sql,
                    const hg_pg_params_t *p, bool prepared);
int hg_pg_command(PGconn *conn, bool retry, const char *sql, char *err,
                  size_t errlen);
int64_t hg_pg_int_at(const PGresult *res, int row, int col);
const char *hg_pg_str(const PGresult *res, int row, int col);

/* hg_store_pg_write.c: the writer thread */
int hg_pg_writer_ready(hg_pg_t *d, char *err, size_t errlen);
int hg_pg_writer_begin(hg_pg_t *d, char *err, size_t errlen);
PGresult *hg_pg_exec_prepared(hg_pg_t *d, const char *name,
                              const hg_pg_params_t *p, ExecStatusType want,
                              char *err, size_t errlen, char *state,
                              size_t statelen);
bool hg_pg_mark(hg_map_t *map, const char *job_id, uint64_t value);
int hg_pg_define(hg_pg_t *d, const hg_exec_record_t *r, const char *hash,
                 char *err, size_t errlen, char *state, size_t statelen);
hg_store_write_t hg_pg_commit(void *be, hg_store_writer_t *w,
                              const hg_store_batch_t *batch, char *err,
                              size_t errlen);

/* hg_store_pg_cluster.c: the cluster's lease and calls */
int hg_pg_lease(hg_pg_t *d, hg_store_writer_t *w, char *err, size_t errlen,
                char *state, size_t statelen);
int64_t hg_pg_tick(void *be, hg_store_writer_t *w);
int hg_pg_join(hg_pg_t *d, const hg_conf_t *conf, char *err, size_t errlen);
int hg_pg_claim_fire(hg_store_t *store, const char *job_id, int64_t fire_time,
                     uint64_t *token);
int hg_pg_take_queued(hg_store_t *store, int64_t now, int64_t lease_ms,
                      size_t limit, hg_exec_row_t **rows, size_t *n);
int hg_pg_renew(hg_store_t *store, const char *id, int64_t now,
                int64_t lease_ms);
int hg_pg_release(hg_store_t *store, const char *id);
int hg_pg_list_shared(hg_store_t *store, const char *job_id, size_t limit,
                      size_t offset, hg_exec_row_t **rows, size_t *n,
                      uint64_t *total);
int hg_pg_dequeue_shared(hg_store_t *store, const char *id,
                         int64_t finished_at, const char *error,
                         hg_store_dequeued_t *out);

/* hg_store_pg_read.c: reads */
PGresult *hg_pg_read(hg_pg_t *d, const char *what, const char *sql,
                     const hg_pg_params_t *p);
int hg_pg_read_row(hg_pg_t *d, const PGresult *res, int i, hg_exec_row_t *row);
int hg_pg_read_rows(hg_pg_t *d, const char *what, const char *sql,
                    const hg_pg_params_t *p, hg_exec_row_t **rows_out,
                    size_t *n_out);
int hg_pg_load_unfinished(hg_store_t *store, hg_exec_row_t **rows, size_t *n);
int hg_pg_load_job_states(hg_store_t *store, json_t **states);
int hg_pg_get_execution(hg_store_t *store, const char *id, hg_exec_row_t *row);
int hg_pg_list_executions(hg_store_t *store, const char *job_id,
                          const char *status, size_t limit, size_t offset,
                          hg_exec_row_t **rows, size_t *n);
int hg_pg_count_executions(hg_store_t *store, const char *job_id,
                           const char *status, uint64_t *n);
int hg_pg_job_stats(hg_store_t *store, const char *job_id,
                    hg_job_stats_t *stats);
int hg_pg_unique_key_pending(hg_store_t *store, const char *unique_key,
                             bool *pending);
int hg_pg_purge_dead(hg_store_t *store, const char *id, const char *job_id,
                     int64_t before, uint64_t *deleted);
int hg_pg_load_jobs(hg_store_t *store, json_t **jobs);
int hg_pg_put_jobs(hg_store_t *store, const json_t *changes);

#endif /* HG_STORE_PG_H */
