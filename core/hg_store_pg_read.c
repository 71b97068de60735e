/*
 * hg_store_pg_read.c: the postgres driver's reads, on RCONN: start-up
 * recovery's (the caller's thread, before the threads start), then the
 * admin API's through QUERY tasks on the maintenance thread; and the
 * writes of the API's jobs, which the API waits for as for a read.
 *
 * It must never run in the master's loop, nor use WCONN or MCONN.
 */

#include "hg_store_pg.h"

/* --- reads (start-up: the caller's thread; then QUERY tasks) ----------- */

/* The rows of a read on RCONN, or NULL with the failure logged. */
PGresult *
hg_pg_read(hg_pg_t *d, const char *what, const char *sql,
           const hg_pg_params_t *p)
{
    PGresult *res = hg_pg_run(d->rconn, true, sql, p, false);
    char msg[384];

    if (hg_pg_ok(d->rconn, res, PGRES_TUPLES_OK, msg, sizeof(msg))) {
        return res;
    }
    hg_store_writer_say(HG_LOG_ERROR, "store: %s: reading %s: %s", d->name,
                        what, msg);
    PQclear(res);
    return NULL;
}

/* A bytea column (hex text) as bytes; *mem is libpq's, for PQfreemem. */
static const void *
hg_pg_blob(const PGresult *res, int row, int col, size_t *len,
           unsigned char **mem)
{
    *mem = NULL;
    *len = 0;
    if (PQgetisnull(res, row, col)) {
        return NULL;
    }
    *mem = PQunescapeBytea((const unsigned char *) PQgetvalue(res, row, col),
                           len);
    return *mem != NULL ? (const void *) *mem : NULL;
}

/* Row I of RES, columns in HG_PG_COLS_* order. HG_AGAIN: skipped. */
int
hg_pg_read_row(hg_pg_t *d, const PGresult *res, int i, hg_exec_row_t *row)
{
    hg_exec_record_t r;
    unsigned char *output = NULL, *payload = NULL;
    const char *status;
    int rc = HG_OK;

    memset(&r, 0, sizeof(r));
    r.id = hg_pg_str(res, i, 0);
    r.run_id = hg_pg_str(res, i, 1);
    r.job_id = hg_pg_str(res, i, 2);
    status = hg_pg_str(res, i, 3);
    if (hg_exec_status_parse(status, &r.status) != HG_OK) {
        hg_store_writer_say(HG_LOG_ERROR, "store: %s: execution %s has no "
                            "known status (\"%s\"): skipped", d->name, r.id,
                            status ? status : "");
        return HG_AGAIN;
    }
    r.attempt = (unsigned) hg_pg_int_at(res, i, 4);
    r.trigger = hg_pg_str(res, i, 5);
    r.scheduled_for = hg_pg_int_at(res, i, 6);
    r.started_at = hg_pg_int_at(res, i, 7);
    r.finished_at = hg_pg_int_at(res, i, 8);
    r.duration_ms = hg_pg_int_at(res, i, 9);
    r.exit_code = (int) hg_pg_int_at(res, i, 10);
    r.signo = (int) hg_pg_int_at(res, i, 11);
    r.output = hg_pg_blob(res, i, 12, &r.output_len, &output);
    r.output_truncated = strcmp(PQgetvalue(res, i, 13), "t") == 0;
    r.error = hg_pg_str(res, i, 14);
    r.worker_pid = (int) hg_pg_int_at(res, i, 15);
    r.max_rss_kb = hg_pg_int_at(res, i, 16);
    r.cpu_user_ms = hg_pg_int_at(res, i, 17);
    r.cpu_sys_ms = hg_pg_int_at(res, i, 18);
    r.payload = hg_pg_blob(res, i, 19, &r.payload_len, &payload);
    r.priority = (int) hg_pg_int_at(res, i, 20);
    r.run_at = hg_pg_int_at(res, i, 21);
    r.unique_key = hg_pg_str(res, i, 22);
    r.retry_at = hg_pg_int_at(res, i, 23);
    if ((!PQgetisnull(res, i, 12) && output == NULL)
        || (!PQgetisnull(res, i, 19) && payload == NULL)
        || hg_exec_row_copy(row, &r) != HG_OK)
    {
        hg_store_writer_say(HG_LOG_ERROR, "store: out of memory reading "
                            "execution %s", r.id);
        rc = HG_ERROR;
    }
    PQfreemem(output);
    PQfreemem(payload);
    return rc;
}

/* Every row of a read of executions. */
int
hg_pg_read_rows(hg_pg_t *d, const char *what, const char *sql,
                const hg_pg_params_t *p, hg_exec_row_t **rows_out,
                size_t *n_out)
{
    PGresult *res = hg_pg_read(d, what, sql, p);
    hg_exec_row_t *rows = NULL;
    size_t n = 0;
    int i, rc;

    if (res == NULL) {
        return HG_ERROR;
    }
    if (PQntuples(res) > 0) {
        rows = calloc((size_t) PQntuples(res), sizeof(*rows));
        if (rows == NULL) {
            hg_store_writer_say(HG_LOG_ERROR, "store: out of memory reading "
                                "%s", what);
            PQclear(res);
            return HG_ERROR;
        }
    }
    for (i = 0; i < PQntuples(res); i++) {
        rc = hg_pg_read_row(d, res, i, &rows[n]);
        if (rc == HG_ERROR) {
            hg_exec_rows_free(rows, n);
            PQclear(res);
            return HG_ERROR;
        }
        if (rc == HG_OK) {
            n++;
        }
    }
    PQclear(res);
    *rows_out = rows;
    *n_out = n;
    return HG_OK;
}

int
hg_pg_load_unfinished(hg_store_t *store, hg_exec_row_t **rows, size_t *n)
{
    return hg_pg_read_rows(store->data, "unfinished executions",
                           "SELECT " HG_PG_COLS_FULL " FROM executions"
                           " WHERE status IN ('queued', 'running')"
                           /* in a cluster, this instance's own: one
                            * with no instance is the shared queue's, for
                            * whoever takes it (hg_pg_take_shared) */
                           " AND (current_setting('hourglass.instance',"
                           " true) IS NULL OR instance"
                           " = current_setting('hourglass.instance', true))"
                           " ORDER BY scheduled_for, id", NULL, rows, n);
}

int
hg_pg_load_job_states(hg_store_t *store, json_t **states)
{
    hg_pg_t *d = store->data;
    PGresult *res;
    json_t *all, *one;
    int i;

    res = hg_pg_read(d, "job states", "SELECT job_id, last_fire, paused"
                     " FROM job_state", NULL);
    if (res == NULL) {
        return HG_ERROR;
    }
    all = json_object();
    for (i = 0; all != NULL && i < PQntuples(res); i++) {
        one = json_pack("{s:I, s:b}", "last_fire",
                        (json_int_t) hg_pg_int_at(res, i, 1), "paused",
                        strcmp(PQgetvalue(res, i, 2), "t") == 0);
        if (one == NULL
            || json_object_set_new(all, PQgetvalue(res, i, 0), one) != 0)
        {
            json_decref(all);
            all = NULL;
        }
    }
    PQclear(res);
    if (all == NULL) {
        hg_store_writer_say(HG_LOG_ERROR, "store: out of memory reading job "
                            "states");
        return HG_ERROR;
    }
    *states = all;
    return HG_OK;
}

int
hg_pg_get_execution(hg_store_t *store, const char *id, hg_exec_row_t *row)
{
    hg_exec_row_t *rows = NULL;
    hg_pg_params_t p;
    size_t n = 0;

    p.n = 0;
    hg_pg_text(&p, id);
    if (hg_pg_read_rows(store->data, "an execution", "SELECT "
                        HG_PG_COLS_FULL " FROM executions WHERE id = $1", &p,
                        &rows, &n) != HG_OK)
    {
        return HG_ERROR;
    }
    if (n == 0) {
        free(rows);
        return HG_AGAIN;
    }
    *row = rows[0];
    free(rows);
    return HG_OK;
}

/* " WHERE job_id = $A AND status = $B" for the filters given, with their
 * values added to P. */
static void
hg_pg_filter(hg_pg_params_t *p, const char *job_id, const char *status,
             char *sql, size_t len)
{
    size_t used = 0;

    sql[0] = '\0';
    if (job_id != NULL) {
        hg_pg_text(p, job_id);
        used += (size_t) snprintf(sql, len, " WHERE job_id = $%d", p->n);
    }
    if (status != NULL) {
        hg_pg_text(p, status);
        snprintf(sql + used, len - used, "%s status = $%d",
                 job_id != NULL ? " AND" : " WHERE", p->n);
    }
}

int
hg_pg_list_executions(hg_store_t *store, const char *job_id,
                      const char *status, size_t limit, size_t offset,
                      hg_exec_row_t **rows, size_t *n)
{
    hg_pg_params_t p;
    char where[64], sql[768];

    p.n = 0;
    /* LIMIT NULL is no limit */
    hg_pg_text(&p, NULL);
    if (limit > 0 && limit <= (size_t) INT64_MAX) {
        p.n--;
        hg_pg_int(&p, (int64_t) limit);
    }
    hg_pg_int(&p, offset <= (size_t) INT64_MAX ? (int64_t) offset
                                               : INT64_MAX);
    hg_pg_filter(&p, job_id, status, where, sizeof(where));
    snprintf(sql, sizeof(sql), "SELECT " HG_PG_COLS_LIST " FROM executions"
             "%s ORDER BY scheduled_for DESC, id DESC LIMIT $1 OFFSET $2",
             where);
    return hg_pg_read_rows(store->data, "executions", sql, &p, rows, n);
}

int
hg_pg_count_executions(hg_store_t *store, const char *job_id,
                       const char *status, uint64_t *n)
{
    hg_pg_params_t p;
    PGresult *res;
    char where[64], sql[128];

    p.n = 0;
    hg_pg_filter(&p, job_id, status, where, sizeof(where));
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM executions%s", where);
    res = hg_pg_read(store->data, "the count of executions", sql, &p);
    if (res == NULL) {
        return HG_ERROR;
    }
    *n = (uint64_t) hg_pg_int_at(res, 0, 0);
    PQclear(res);
    return HG_OK;
}

int
hg_pg_job_stats(hg_store_t *store, const char *job_id, hg_job_stats_t *stats)
{
    hg_pg_t *d = store->data;
    hg_store_bucket_t *b = NULL;
    hg_pg_params_t p;
    PGresult *res;
    int64_t durations, sum, max;
    int i, nb;

    p.n = 0;
    hg_pg_text(&p, job_id);
    res = hg_pg_read(d, "job statistics", "SELECT runs, successes, failures,"
                     " durations, duration_sum, duration_max, last_run,"
                     " last_status FROM job_stats WHERE job_id = $1", &p);
    if (res == NULL) {
        return HG_ERROR;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        return HG_OK;
    }
    stats->runs = (uint64_t) hg_pg_int_at(res, 0, 0);
    stats->successes = (uint64_t) hg_pg_int_at(res, 0, 1);
    stats->failures = (uint64_t) hg_pg_int_at(res, 0, 2);
    durations = hg_pg_int_at(res, 0, 3);
    sum = hg_pg_int_at(res, 0, 4);
    max = hg_pg_int_at(res, 0, 5);
    stats->last_run = hg_pg_int_at(res, 0, 6);
    if (hg_exec_status_parse(hg_pg_str(res, 0, 7), &stats->last_status)
        != HG_OK)
    {
        stats->last_status = HG_EXEC_QUEUED;
    }
    PQclear(res);
    if (durations <= 0) {
        return HG_OK;
    }
    stats->mean_duration_ms = (double) sum / (double) durations;

    res = hg_pg_read(d, "job durations", "SELECT bucket, count FROM"
                     " job_durations WHERE job_id = $1 AND count > 0"
                     " ORDER BY bucket", &p);
    if (res == NULL) {
        return HG_ERROR;
    }
    nb = PQntuples(res);
    if (nb > 0) {
        b = calloc((size_t) nb, sizeof(*b));
        if (b == NULL) {
            hg_store_writer_say(HG_LOG_ERROR, "store: out of memory reading "
                                "job durations");
            PQclear(res);
            return HG_ERROR;
        }
    }
    for (i = 0; i < nb; i++) {
        b[i].bucket = (unsigned) hg_pg_int_at(res, i, 0);
        b[i].count = hg_pg_int_at(res, i, 1);
    }
    PQclear(res);
    stats->p95_duration_ms = hg_store_p95(b, (size_t) nb, max);
    free(b);
    return HG_OK;
}

int
hg_pg_unique_key_pending(hg_store_t *store, const char *unique_key,
                         bool *pending)
{
    hg_pg_params_t p;
    PGresult *res;

    p.n = 0;
    hg_pg_text(&p, unique_key);
    res = hg_pg_read(store->data, "unique keys", "SELECT 1 FROM executions"
                     " WHERE unique_key = $1 AND status = 'queued' LIMIT 1",
                     &p);
    if (res == NULL) {
        return HG_ERROR;
    }
    *pending = PQntuples(res) > 0;
    PQclear(res);
    return HG_OK;
}

/* A statement that changes rows on RCONN (a QUERY task's): how many.
 * RETRY: it is a unit of work of its own (not in a transaction). */
static int
hg_pg_change(hg_pg_t *d, bool retry, const char *what, const char *sql,
             const hg_pg_params_t *p, uint64_t *changed)
{
    PGresult *res = hg_pg_run(d->rconn, retry, sql, p, false);
    char msg[384];

    if (!hg_pg_ok(d->rconn, res, PGRES_COMMAND_OK, msg, sizeof(msg))) {
        hg_store_writer_say(HG_LOG_ERROR, "store: %s: %s: %s", d->name, what,
                            msg);
        PQclear(res);
        return HG_ERROR;
    }
    if (changed != NULL) {
        *changed = strtoull(PQcmdTuples(res), NULL, 10);
    }
    PQclear(res);
    return HG_OK;
}

/* A dead record is final: the writer never touches it again, so the two
 * connections do not race over a row. */
int
hg_pg_purge_dead(hg_store_t *store, const char *id, const char *job_id,
                 int64_t before, uint64_t *deleted)
{
    hg_pg_params_t p;

    p.n = 0;
    hg_pg_text(&p, id);
    hg_pg_text(&p, job_id);
    hg_pg_int(&p, before);
    return hg_pg_change(store->data, true, "purging dead executions",
                        "DELETE FROM executions WHERE status = 'dead'"
                        " AND ($1::text IS NULL OR id = $1)"
                        " AND ($2::text IS NULL OR job_id = $2)"
                        " AND ($3::bigint <= 0 OR finished_at < $3)", &p,
                        deleted);
}

int
hg_pg_load_jobs(hg_store_t *store, json_t **jobs)
{
    hg_pg_t *d = store->data;
    json_error_t jerr;
    json_t *all, *definition, *one;
    PGresult *res;
    int i;

    res = hg_pg_read(d, "jobs", "SELECT id, definition, created_by,"
                     " created_at, updated_at FROM jobs WHERE NOT deleted"
                     " ORDER BY id", NULL);
    if (res == NULL) {
        return HG_ERROR;
    }
    all = json_object();
    for (i = 0; all != NULL && i < PQntuples(res); i++) {
        const char *id = PQgetvalue(res, i, 0);

        definition = json_loads(PQgetvalue(res, i, 1), 0, &jerr);
        if (!json_is_object(definition)) {
            hg_store_writer_say(HG_LOG_ERROR, "store: %s: job %s has a "
                                "definition that is not a JSON object: "
                                "skipped", d->name, id);
            json_decref(definition);
            continue;
        }
        one = json_pack("{s:o, s:s?, s:I, s:I}", "definition", definition,
                        "created_by", hg_pg_str(res, i, 2),
                        "created_at", (json_int_t) hg_pg_int_at(res, i, 3),
                        "updated_at", (json_int_t) hg_pg_int_at(res, i, 4));
        if (one == NULL || json_object_set_new(all, id, one) != 0) {
            json_decref(all);
            all = NULL;
        }
    }
    PQclear(res);
    if (all == NULL) {
        hg_store_writer_say(HG_LOG_ERROR, "store: out of memory reading "
                            "jobs");
        return HG_ERROR;
    }
    *jobs = all;
    return HG_OK;
}

/* One job's row written (RECORD NULL: deleted), in put_jobs' transaction. */
static int
hg_pg_put_job(hg_pg_t *d, const char *id, const json_t *record)
{
    hg_pg_params_t p;
    char *text;
    int rc;

    p.n = 0;
    hg_pg_text(&p, id);
    if (record == NULL && d->instance != NULL) {
        /* Kept, deleted, for the peers to read (hg_pg_peer_jobs). */
        return hg_pg_change(d, false, "deleting a job", "UPDATE jobs SET"
                            " deleted = true, version ="
                            " nextval('jobs_version'), changed_by ="
                            " current_setting('hourglass.instance', true)"
                            " WHERE id = $1", &p, NULL);
    }
    if (record == NULL) {
        return hg_pg_change(d, false, "deleting a job", "DELETE FROM jobs"
                            " WHERE id = $1", &p, NULL);
    }
    text = hg_json_dumps(json_object_get(record, "definition"),
                      JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL) {
        return HG_ERROR;
    }
    hg_pg_text(&p, text);
    hg_pg_text(&p, json_string_value(json_object_get(record, "created_by")));
    hg_pg_int(&p, json_integer_value(json_object_get(record, "created_at")));
    hg_pg_int(&p, json_integer_value(json_object_get(record, "updated_at")));
    /* A version (and whose) in a cluster only: the peers read those. */
    rc = hg_pg_change(d, false, "writing a job", "INSERT INTO jobs (id,"
                      " definition, created_by, created_at, updated_at,"
                      " version, changed_by) VALUES ($1, $2, $3, $4, $5,"
                      " CASE WHEN current_setting('hourglass.instance',"
                      " true) IS NULL THEN 0 ELSE nextval('jobs_version')"
                      " END, current_setting('hourglass.instance', true))"
                      " ON CONFLICT (id) DO UPDATE SET"
                      " definition = excluded.definition,"
                      " updated_at = excluded.updated_at,"
                      " created_by = CASE WHEN jobs.deleted"
                      "   THEN excluded.created_by ELSE jobs.created_by END,"
                      " created_at = CASE WHEN jobs.deleted"
                      "   THEN excluded.created_at ELSE jobs.created_at END,"
                      " deleted = false, version = excluded.version,"
                      " changed_by = excluded.changed_by", &p, NULL);
    free(text);
    return rc;
}

/* One transaction, committed (acknowledged by the server) when it
 * returns; a change that fails takes the others back with it. */
int
hg_pg_put_jobs(hg_store_t *store, const json_t *changes)
{
    hg_pg_t *d = store->data;
    const char *id;
    json_t *record;
    char msg[384];

    if (hg_pg_command(d->rconn, true, "BEGIN", msg, sizeof(msg)) != HG_OK) {
        hg_store_writer_say(HG_LOG_ERROR, "store: %s: writing jobs: %s",
                            d->name, msg);
        return HG_ERROR;
    }
    json_object_foreach((json_t *) changes, id, record) {
        if (hg_pg_put_job(d, id, json_is_null(record) ? NULL : record)
            != HG_OK)
        {
            goto failed;
        }
    }
    if (hg_pg_command(d->rconn, false, "COMMIT", msg, sizeof(msg))
        != HG_OK)
    {
        hg_store_writer_say(HG_LOG_ERROR, "store: %s: writing jobs: %s",
                            d->name, msg);
        goto failed;
    }
    return HG_OK;

failed:
    if (PQstatus(d->rconn) == CONNECTION_OK
        && PQtransactionStatus(d->rconn) != PQTRANS_IDLE)
    {
        (void) hg_pg_command(d->rconn, false, "ROLLBACK", msg, sizeof(msg));
    }
    return HG_ERROR;
}
