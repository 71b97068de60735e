/*
 * hg_store_pg_write.c: the postgres driver's writer thread (WCONN): one
 * batch of the shared writer in one transaction (two in a cluster of
 * several live instances: the claims another instance is preferred for
 * go second), its records, fire claims, job states and statistics as
 * statements of arrays, and the statements the writer prepares after
 * each (re)connection.
 *
 * It owns nothing but the transaction it has open; it must never be
 * called but from the writer thread, nor touch RCONN or MCONN. How the
 * claims decide a fire time: hg_store_pg.c's opening comment.
 */

#include "hg_store_pg.h"

/* The writer's statements, prepared on WCONN after each (re)connection.
 * put_fast is the put of nearly every record, as in the sqlite driver: a
 * new execution, or a queued or running one that keeps its job, due time
 * and unique key, counts for nothing in the statistics, so no read is
 * needed first; any other row is left alone (0 rows) for put, after its
 * old row was taken out of the statistics. */
static const struct {
    const char *name;
    const char *sql;
} hg_pg_writer_sql[] = {
    /* The fast puts of many records (arrays, one element a record, in
     * the columns' order: one statement costs the executor's start once):
     * the ids written come back; one not written takes the slow way. */
    { "hg_put_many", "INSERT INTO executions (" HG_PG_COLS_FULL ")"
      " SELECT * FROM unnest($1::text[], $2::text[], $3::text[],"
      " $4::text[], $5::integer[], $6::text[], $7::bigint[], $8::bigint[],"
      " $9::bigint[], $10::bigint[], $11::integer[], $12::integer[],"
      " $13::bytea[], $14::boolean[], $15::text[], $16::integer[],"
      " $17::bigint[], $18::bigint[], $19::bigint[], $20::bytea[],"
      " $21::integer[], $22::bigint[], $23::text[], $24::bigint[])"
      " ON CONFLICT (id) DO UPDATE SET" HG_PG_SET_MUTABLE HG_PG_FAST_WHERE
      " RETURNING id" },
    { "hg_put", HG_PG_INSERT HG_PG_SET_MUTABLE ", job_id = excluded.job_id,"
      " scheduled_for = excluded.scheduled_for,"
      " unique_key = excluded.unique_key" },
    /* A shared queued execution (hg_exec_record_t.shared): no instance,
     * for any to take. Its id is new; once taken it is the taker's. Left
     * out when its id is there (a batch written again) or its unique_key
     * is pending already (executions_pending_key; an insert of the same
     * key by a transaction not yet committed waits for it). */
    { "hg_put_shared", "INSERT INTO executions (" HG_PG_COLS_FULL
      ", instance) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
      " $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24,"
      " NULL) ON CONFLICT DO NOTHING" },
    { "hg_exists", "SELECT 1 FROM executions WHERE id = $1" },
    /* The claims of fire times ($1 jobs, $2 fire times, $3 executions, $4
     * our digests of the jobs' definitions: arrays, one element a claim),
     * a row each in the arrays' order: the holder committed before the
     * statement began (held: another execution, or ours after a COMMIT
     * whose answer was lost), or else our claim (won), made when our
     * digest is the one most live instances hold (ok; ties: the one held
     * longest, so that a newcomer with another definition does not take
     * the job over). A claim committed while the statement waited for its
     * transaction is neither: lost. Made in the arrays' order, so that two
     * instances lock rows in the same order. A held claim costs an index
     * read (its job's definitions are not read for it), and DO NOTHING,
     * not DO UPDATE: a loser locks and rewrites no row, so the next loser
     * does not wait for it too. */
    { "hg_claim", "WITH r AS (SELECT * FROM unnest($1::text[],"
      " $2::bigint[], $3::text[], $4::text[]) WITH ORDINALITY"
      " AS r (job_id, fire_time, exec_id, hash, n)),"
      " held AS (SELECT r.*, (SELECT c.exec_id FROM fire_claims c"
      " WHERE c.job_id = r.job_id AND c.fire_time = r.fire_time) AS holder"
      " FROM r),"
      " free AS (SELECT * FROM held WHERE holder IS NULL),"
      " maj AS (SELECT j.job_id, m.hash FROM (SELECT DISTINCT job_id"
      " FROM free) j, LATERAL (SELECT d.hash FROM job_definitions d"
      " JOIN instances i ON i.name = d.instance WHERE d.job_id = j.job_id"
      " AND NOT i.gone AND i.lease_until > " HG_PG_NOW " GROUP BY d.hash"
      " ORDER BY count(*) DESC, min(d.updated_at), d.hash LIMIT 1) m),"
      " ins AS (INSERT INTO fire_claims (job_id, fire_time, claimed_at,"
      " exec_id) SELECT f.job_id, f.fire_time, " HG_PG_NOW ", f.exec_id"
      " FROM free f JOIN maj m ON m.job_id = f.job_id AND m.hash = f.hash"
      " ORDER BY f.n ON CONFLICT (job_id, fire_time) DO NOTHING"
      " RETURNING job_id, fire_time, exec_id)"
      " SELECT r.n, r.holder, m.hash IS NOT DISTINCT FROM r.hash,"
      " i.exec_id FROM held r LEFT JOIN maj m ON m.job_id = r.job_id"
      " LEFT JOIN ins i ON i.job_id = r.job_id AND i.fire_time = r.fire_time"
      " AND i.exec_id = r.exec_id ORDER BY r.n" },
    /* Our digest of job $1's definition ($3; $2 is us). */
    { "hg_define", "INSERT INTO job_definitions (job_id, instance, hash,"
      " updated_at) VALUES ($1, $2, $3, " HG_PG_NOW ") ON CONFLICT (job_id,"
      " instance) DO UPDATE SET hash = excluded.hash, updated_at ="
      " excluded.updated_at WHERE job_definitions.hash <> excluded.hash" },
    /* The cluster's lease ($1 instance, $2 term, $3 lease ms): pushed
     * ahead, and so locked until COMMIT, only while the term is ours; with
     * the names of the live instances, us included, in order, for the
     * preferred claimer of each fire time (hg_pg_prefer). */
    { "hg_lease", "UPDATE instances SET lease_until = " HG_PG_NOW " + $3,"
      " renewed_at = " HG_PG_NOW " WHERE name = $1 AND term = $2"
      " RETURNING term, (SELECT string_agg(l.name, ',' ORDER BY l.name)"
      " FROM instances l WHERE l.name = $1 OR (NOT l.gone"
      " AND l.lease_until > " HG_PG_NOW "))" },
    /* Peers whose lease lapsed; one another instance is taking over (or
     * renewing now) is skipped. A lease that lapsed while the server was
     * down says nothing of its holder: each peer has one lease of its own
     * length from the server's start to renew, so a restart of
     * PostgreSQL longer than a lease fences no live instance. */
    { "hg_lapsed", "SELECT name, " HG_PG_NOW " - lease_until FROM instances"
      " WHERE name <> $1 AND NOT gone AND lease_until < " HG_PG_NOW
      " AND (extract(epoch FROM pg_postmaster_start_time()) * 1000)::bigint"
      " + (lease_until - renewed_at) < " HG_PG_NOW
      " ORDER BY name FOR UPDATE SKIP LOCKED" },
    /* $2's term grows (what it writes next is refused) and its unfinished
     * executions become $1's, returned in start-up recovery's order. */
    { "hg_fence", "UPDATE instances SET term = term + 1, gone = true,"
      " taken_by = $1 WHERE name = $2" },
    { "hg_take", "WITH taken AS (UPDATE executions SET instance = $1"
      " WHERE instance = $2 AND status IN ('queued', 'running')"
      " RETURNING *) SELECT " HG_PG_COLS_FULL " FROM taken"
      " ORDER BY scheduled_for, id" },
    { "hg_old", "SELECT job_id, status, scheduled_for, started_at,"
      " finished_at, duration_ms FROM executions WHERE id = $1 FOR UPDATE" },
    /* Job states (arrays: $1 jobs, $2 last fires, $3 paused flags, $4
     * whether the put was a pause or resume): each its last fire; the
     * paused flag only when the row is new. A pause or resume sets the
     * flag too, under a new version, as ours ($5) -- so a fire recorded
     * here is never taken for a resume of a peer's pause this instance has
     * not read yet. Alone ($5 NULL), every put sets the flag, as before;
     * no version. In job order: instances writing the same jobs lock
     * their rows in the same order. */
    { "hg_state", "INSERT INTO job_state (job_id, last_fire, paused,"
      " version, changed_by) SELECT s.job_id, s.last_fire, s.paused,"
      " CASE WHEN s.pause AND $5::text IS NOT NULL"
      " THEN nextval('job_state_version') ELSE 0 END, $5"
      " FROM unnest($1::text[], $2::bigint[], $3::boolean[],"
      " $4::boolean[]) AS s (job_id, last_fire, paused, pause)"
      " ORDER BY s.job_id"
      " ON CONFLICT (job_id) DO UPDATE SET last_fire = excluded.last_fire,"
      " paused = CASE WHEN excluded.version > 0 OR $5 IS NULL"
      "   THEN excluded.paused ELSE job_state.paused END,"
      " version = CASE WHEN excluded.version > 0 OR $5 IS NULL"
      "   THEN excluded.version ELSE job_state.version END,"
      " changed_by = CASE WHEN excluded.version > 0 OR $5 IS NULL"
      "   THEN excluded.changed_by ELSE job_state.changed_by END" },
    /* Shared queued executions due by the database's clock, up to $2,
     * highest priority first, then the longest due (scheduled_for: its
     * run_at, or when it was enqueued), become ours ($1);
     * rows another instance is taking now are skipped, not waited for. */
    { "hg_take_shared", "WITH taken AS (UPDATE executions SET instance = $1"
      " WHERE id IN (SELECT id FROM executions WHERE instance IS NULL"
      " AND status = 'queued' AND run_at <= " HG_PG_NOW
      " ORDER BY priority DESC, scheduled_for, id LIMIT $2"
      " FOR UPDATE SKIP LOCKED)"
      " RETURNING *) SELECT " HG_PG_COLS_FULL " FROM taken"
      " ORDER BY priority DESC, scheduled_for, id" },
    /* Whether there is any to take: a read, no lock, no lease. */
    { "hg_shared_due", "SELECT 1 FROM executions WHERE instance IS NULL"
      " AND status = 'queued' AND run_at <= " HG_PG_NOW " LIMIT 1" },
    /* The leadership ($1 us, $2 lease ms): taken when free (no leader, or
     * its lease lapsed in the database's clock) or renewed when ours; no
     * row back when another instance holds it. A new holder, or one back
     * after a gap, is a new term. */
    { "hg_lead", "UPDATE cluster_leader SET term = CASE WHEN name = $1"
      " AND lease_until >= " HG_PG_NOW " THEN term ELSE term + 1 END,"
      " name = $1, lease_until = " HG_PG_NOW " + $2 WHERE id = 1"
      " AND (name = $1 OR name IS NULL OR lease_until < " HG_PG_NOW ")"
      " RETURNING term" },
    /* Each job's last start and last success among the executions that
     * ended after $1 (NULL: a lease ($2) ago), on any instance: the
     * leader's dead-man windows count every instance's runs. */
    { "hg_last_runs", "SELECT job_id, max(started_at) FILTER (WHERE"
      " started_at > 0), max(finished_at) FILTER (WHERE status ="
      " 'succeeded'), max(finished_at) FROM executions WHERE finished_at >"
      " COALESCE($1::bigint, " HG_PG_NOW " - $2::bigint) GROUP BY job_id" },
    /* The API's jobs as peers changed them: versions, then a job's row. */
    { "hg_jobs_changed", "SELECT id, version FROM jobs WHERE version > 0"
      " AND changed_by IS DISTINCT FROM $1" },
    { "hg_job_row", "SELECT definition, created_by, created_at, updated_at,"
      " deleted FROM jobs WHERE id = $1" },
    /* The pauses and resumes of jobs, with their versions (0: never). */
    { "hg_paused", "SELECT job_id, paused, version FROM job_state"
      " WHERE version > 0 AND changed_by IS DISTINCT FROM $1" },
    /* The statistics' deltas (arrays, one element a job), added in job
     * order: instances writing the same jobs lock their rows in the same
     * order. */
    { "hg_stats", "INSERT INTO job_stats (job_id, runs, successes,"
      " failures, durations, duration_sum, duration_max, last_run,"
      " last_status) SELECT * FROM unnest($1::text[], $2::bigint[],"
      " $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],"
      " $7::bigint[], $8::bigint[], $9::text[]) AS s ORDER BY 1"
      " ON CONFLICT (job_id) DO UPDATE SET"
      " runs = job_stats.runs + excluded.runs,"
      " successes = job_stats.successes + excluded.successes,"
      " failures = job_stats.failures + excluded.failures,"
      " durations = job_stats.durations + excluded.durations,"
      " duration_sum = job_stats.duration_sum + excluded.duration_sum,"
      " duration_max = GREATEST(job_stats.duration_max,"
      "   excluded.duration_max),"
      " last_status = CASE WHEN excluded.last_status IS NOT NULL"
      "   AND excluded.last_run >= job_stats.last_run"
      "   THEN excluded.last_status ELSE job_stats.last_status END,"
      " last_run = GREATEST(job_stats.last_run, excluded.last_run)" },
    { "hg_bucket", "INSERT INTO job_durations (job_id, bucket, count)"
      " SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[])"
      " AS b ORDER BY 1, 2 ON CONFLICT (job_id, bucket) DO UPDATE SET"
      " count = job_durations.count + excluded.count" },
};

/* --- the writer (its thread, WCONN) -------------------------------------- */

/* The shared writer's word for a failure: SQLSTATE's class 40
 * (serialization, deadlock) and a lock not available wait for another
 * session; data corrupted is damage; everything else, the connection's
 * loss included, is a failure to retry. */
static hg_store_write_t
hg_pg_kind(PGconn *conn, const char *state)
{
    if (PQstatus(conn) != CONNECTION_OK || state == NULL) {
        return HG_STORE_WRITE_FAILED;
    }
    if (strncmp(state, "40", 2) == 0 || strcmp(state, "55P03") == 0) {
        return HG_STORE_WRITE_BUSY;
    }
    if (strcmp(state, "XX001") == 0 || strcmp(state, "XX002") == 0) {
        return HG_STORE_WRITE_DAMAGED;
    }
    return HG_STORE_WRITE_FAILED;
}

/* The writer's connection, connected and with its statements prepared. */
int
hg_pg_writer_ready(hg_pg_t *d, char *err, size_t errlen)
{
    PGresult *res;
    size_t i;
    char msg[384];

    if (d->w_stale) {
        /* A new connection: no state of the old one's pipeline is left
         * (the old one is kept until the new one is up). */
        PGconn *fresh = hg_pg_connect(d->url, d->options, msg,
                                      sizeof(msg));

        if (fresh == NULL) {
            snprintf(err, errlen, "cannot connect: %s", msg);
            return HG_ERROR;
        }
        PQfinish(d->wconn);
        d->wconn = fresh;
        d->w_stale = false;
        d->w_prepared = false;
    }
    if (PQstatus(d->wconn) != CONNECTION_OK) {
        PQreset(d->wconn);
        d->w_prepared = false;
        if (PQstatus(d->wconn) != CONNECTION_OK) {
            hg_pg_message(PQerrorMessage(d->wconn), msg, sizeof(msg));
            snprintf(err, errlen, "cannot connect: %s", msg);
            return HG_ERROR;
        }
        (void) PQsetNoticeProcessor(d->wconn, hg_pg_notice, NULL);
    }
    if (!d->w_prepared) {
        /* The writer's statements take arrays of any length: a plan made
         * for each execution (a custom plan, which PostgreSQL keeps
         * choosing for one-element arrays) cost more than the statement
         * (1.5 ms for the claims'). Their generic plans read by index
         * whatever the arrays hold. A server before 12 keeps its way. */
        PQclear(PQexec(d->wconn, "SET plan_cache_mode ="
                       " force_generic_plan"));
    }
    for (i = 0; !d->w_prepared && i < HG_NELEMS(hg_pg_writer_sql); i++) {
        res = PQprepare(d->wconn, hg_pg_writer_sql[i].name,
                        hg_pg_writer_sql[i].sql, 0, NULL);
        if (!hg_pg_ok(d->wconn, res, PGRES_COMMAND_OK, msg, sizeof(msg))) {
            PQclear(res);
            snprintf(err, errlen, "preparing %s: %s",
                     hg_pg_writer_sql[i].name, msg);
            return HG_ERROR;
        }
        PQclear(res);
    }
    d->w_prepared = true;
    return HG_OK;
}

/* BEGIN on the writer's connection; a connection that died idle is reset
 * (its statements prepared again) and BEGIN sent once more. */
int
hg_pg_writer_begin(hg_pg_t *d, char *err, size_t errlen)
{
    if (hg_pg_writer_ready(d, err, errlen) != HG_OK) {
        return HG_ERROR;
    }
    if (hg_pg_command(d->wconn, false, "BEGIN", err, errlen) == HG_OK) {
        return HG_OK;
    }
    if (PQstatus(d->wconn) != CONNECTION_BAD) {
        return HG_ERROR;
    }
    if (hg_pg_writer_ready(d, err, errlen) != HG_OK) {
        return HG_ERROR;
    }
    return hg_pg_command(d->wconn, false, "BEGIN", err, errlen);
}

/* Runs the prepared statement NAME; the result, or NULL with err set. */
PGresult *
hg_pg_exec_prepared(hg_pg_t *d, const char *name, const hg_pg_params_t *p,
                    ExecStatusType want, char *err, size_t errlen,
                    char *state, size_t statelen)
{
    PGresult *res = PQexecPrepared(d->wconn, name, p->n, p->values,
                                   p->lengths, p->formats, 0);
    const char *code;

    if (hg_pg_ok(d->wconn, res, want, err, errlen)) {
        return res;
    }
    code = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(state, statelen, "%s", code != NULL ? code : "");
    PQclear(res);
    return NULL;
}

/*
 * TEXT as a parameter of P, a byte that is not UTF-8 replaced by '?'. A
 * database in UTF-8 refuses the whole transaction for one such byte, and
 * the writer would retry it for ever; an error message from a module (or
 * a command) may hold one. HG_ERROR: out of memory.
 */
static int
hg_pg_clean(hg_pg_params_t *p, const char *text)
{
    const unsigned char *u = (const unsigned char *) text;
    size_t i, n, len = text != NULL ? strlen(text) : 0;
    char *copy;

    for (i = 0; i < len; i += n) {
        n = hg_json_utf8_len(u + i, len - i);
        if (n == 0) {
            break;
        }
    }
    if (i == len) {
        hg_pg_text(p, text);
        return HG_OK;
    }
    copy = malloc(len + 1);
    if (copy == NULL) {
        return HG_ERROR;
    }
    for (i = 0; i < len; i += n) {
        n = hg_json_utf8_len(u + i, len - i);
        if (n == 0) {
            copy[i] = '?';
            n = 1;
        } else {
            memcpy(copy + i, text + i, n);
        }
    }
    copy[len] = '\0';
    p->owned[p->nowned++] = copy;
    hg_pg_text(p, copy);
    return HG_OK;
}

static void
hg_pg_params_free(hg_pg_params_t *p)
{
    while (p->nowned > 0) {
        free(p->owned[--p->nowned]);
    }
}

/* A put's parameters; hg_pg_params_free after. HG_ERROR: out of memory. */
static int
hg_pg_put_params(hg_pg_params_t *p, const hg_exec_record_t *r)
{
    int rc = HG_OK;

    p->n = 0;
    p->nowned = 0;
    hg_pg_text(p, r->id);
    hg_pg_text(p, r->run_id);
    hg_pg_text(p, r->job_id);
    hg_pg_text(p, hg_exec_status_name(r->status));
    hg_pg_int(p, r->attempt);
    rc |= hg_pg_clean(p, r->trigger);
    hg_pg_int(p, r->scheduled_for);
    hg_pg_int(p, r->started_at);
    hg_pg_int(p, r->finished_at);
    hg_pg_int(p, r->duration_ms);
    hg_pg_int(p, r->exit_code);
    hg_pg_int(p, r->signo);
    hg_pg_bytes(p, r->output, r->output_len);
    hg_pg_text(p, r->output_truncated ? "t" : "f");
    rc |= hg_pg_clean(p, r->error);
    hg_pg_int(p, r->worker_pid);
    hg_pg_int(p, r->max_rss_kb);
    hg_pg_int(p, r->cpu_user_ms);
    hg_pg_int(p, r->cpu_sys_ms);
    hg_pg_bytes(p, r->payload, r->payload_len);
    hg_pg_int(p, r->priority);
    hg_pg_int(p, r->run_at);
    hg_pg_text(p, r->unique_key);
    hg_pg_int(p, r->retry_at);
    if (rc != HG_OK) {
        hg_pg_params_free(p);
        return HG_ERROR;
    }
    return HG_OK;
}

/* Takes the row that REC replaces out of the statistics (locked). */
static int
hg_pg_unstat_old(hg_pg_t *d, hg_map_t *deltas, const char *id, char *err,
                 size_t errlen, char *state, size_t statelen)
{
    hg_pg_params_t p;
    hg_exec_record_t old;
    PGresult *res;
    int rc = HG_OK;

    p.n = 0;
    hg_pg_text(&p, id);
    res = hg_pg_exec_prepared(d, "hg_old", &p, PGRES_TUPLES_OK, err, errlen,
                              state, statelen);
    if (res == NULL) {
        return HG_ERROR;
    }
    if (PQntuples(res) == 1) {
        memset(&old, 0, sizeof(old));
        old.job_id = PQgetvalue(res, 0, 0);
        if (hg_exec_status_parse(PQgetvalue(res, 0, 1), &old.status)
            != HG_OK)
        {
            old.status = HG_EXEC_QUEUED;        /* counts for nothing */
        }
        old.scheduled_for = hg_pg_int_at(res, 0, 2);
        old.started_at = hg_pg_int_at(res, 0, 3);
        old.finished_at = hg_pg_int_at(res, 0, 4);
        old.duration_ms = hg_pg_int_at(res, 0, 5);
        if (hg_store_delta_apply(deltas, &old, -1) != HG_OK) {
            snprintf(err, errlen, "out of memory");
            rc = HG_ERROR;
        }
    }
    PQclear(res);
    return rc;
}

/*
 * A PostgreSQL array literal, built element by element: a statement that
 * takes arrays (unnest) writes many rows for the executor's start of one,
 * which is most of what a one-row statement costs.
 */
typedef struct hg_pg_array_s {
    char *buf;
    size_t len, cap;
    bool failed;                            /* out of memory */
} hg_pg_array_t;

static void
hg_pg_array_put(hg_pg_array_t *a, const char *bytes, size_t len)
{
    char *grown;
    size_t cap;

    if (a->failed) {
        return;
    }
    if (a->len + len + 1 > a->cap) {
        cap = a->cap > 0 ? a->cap : 1024;
        while (a->len + len + 1 > cap) {
            cap *= 2;
        }
        grown = realloc(a->buf, cap);
        if (grown == NULL) {
            a->failed = true;
            return;
        }
        a->buf = grown;
        a->cap = cap;
    }
    memcpy(a->buf + a->len, bytes, len);
    a->len += len;
    a->buf[a->len] = '\0';
}

/* Opens the next element: "{" before the first, "," before the others. */
static void
hg_pg_array_next(hg_pg_array_t *a)
{
    hg_pg_array_put(a, a->len == 0 ? "{" : ",", 1);
}

/* TEXT (NULL: a NULL) as the next element, quoted, its quotes and
 * backslashes escaped and a byte that is not UTF-8 replaced by '?' (see
 * hg_pg_clean). */
static void
hg_pg_array_text(hg_pg_array_t *a, const char *text)
{
    const unsigned char *u = (const unsigned char *) text;
    size_t i, n, run = 0, len;

    hg_pg_array_next(a);
    if (text == NULL) {
        hg_pg_array_put(a, "NULL", 4);
        return;
    }
    len = strlen(text);
    hg_pg_array_put(a, "\"", 1);
    for (i = 0; i < len; i += n) {
        n = hg_json_utf8_len(u + i, len - i);
        if (n > 0 && u[i] != '"' && u[i] != '\\') {
            continue;
        }
        hg_pg_array_put(a, text + run, i - run);
        hg_pg_array_put(a, n == 0 ? "?" : u[i] == '"' ? "\\\"" : "\\\\",
                        n == 0 ? 1 : 2);
        n = 1;
        run = i + 1;
    }
    hg_pg_array_put(a, text + run, i - run);
    hg_pg_array_put(a, "\"", 1);
}

static void
hg_pg_array_int(hg_pg_array_t *a, int64_t v)
{
    char num[24];

    hg_pg_array_next(a);
    hg_pg_array_put(a, num, (size_t) snprintf(num, sizeof(num), "%" PRId64,
                                              v));
}

static void
hg_pg_array_bool(hg_pg_array_t *a, bool v)
{
    hg_pg_array_next(a);
    hg_pg_array_put(a, v ? "t" : "f", 1);
}

/* BYTES (NULL: a NULL) as the next element, bytea's hex form. */
static void
hg_pg_array_bytes(hg_pg_array_t *a, const void *bytes, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *b = bytes;
    char pair[128];
    size_t i, k = 0;

    hg_pg_array_next(a);
    if (bytes == NULL) {
        hg_pg_array_put(a, "NULL", 4);
        return;
    }
    hg_pg_array_put(a, "\"\\\\x", 4);
    for (i = 0; i < len; i++) {
        pair[k++] = hex[b[i] >> 4];
        pair[k++] = hex[b[i] & 0xf];
        if (k == sizeof(pair)) {
            hg_pg_array_put(a, pair, k);
            k = 0;
        }
    }
    hg_pg_array_put(a, pair, k);
    hg_pg_array_put(a, "\"", 1);
}

/* Closes the literal ("{}" when empty); whether it could be built. */
static bool
hg_pg_array_end(hg_pg_array_t *a)
{
    if (a->len == 0) {
        hg_pg_array_put(a, "{}", 2);
    } else {
        hg_pg_array_put(a, "}", 1);
    }
    return !a->failed;
}

static void
hg_pg_arrays_free(hg_pg_array_t *a, size_t n)
{
    while (n > 0) {
        free(a[--n].buf);
    }
}

/*
 * A pipeline of the writer's statements (libpq's pipeline mode): a batch
 * costs a few round trips instead of one per statement. Results are read
 * every HG_PG_PIPE statements, so that the server never waits for us to
 * read while we wait for it to read (results of puts are a few bytes).
 */
#define HG_PG_PIPE  256
#define HG_PG_CLAIM_CHUNK  128      /* claims (and definitions) a trip */

typedef struct hg_pg_pipe_s {
    PGconn *conn;
    int n;                                  /* sent, not yet read */
    hg_store_item_t **slow;                 /* fast puts that wrote nothing */
    size_t nslow, capslow;
    bool failed;
    char *err;
    size_t errlen;
    char state[8];
    const char *instance;                   /* ours, or NULL */
} hg_pg_pipe_t;

/* The first failure of the pipeline, kept. */
static void
hg_pg_pipe_fail(hg_pg_pipe_t *pp, const PGresult *res)
{
    const char *code;

    if (pp->failed) {
        return;
    }
    pp->failed = true;
    hg_pg_message(res != NULL ? PQresultErrorMessage(res)
                              : PQerrorMessage(pp->conn), pp->err,
                  pp->errlen);
    code = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(pp->state, sizeof(pp->state), "%s", code != NULL ? code : "");
}

/* ITEM, a fast put that wrote nothing, goes to the slow list. */
static void
hg_pg_pipe_slow(hg_pg_pipe_t *pp, hg_store_item_t *item)
{
    hg_store_item_t **grown;

    if (pp->nslow == pp->capslow) {
        pp->capslow = pp->capslow ? pp->capslow * 2 : 16;
        grown = realloc(pp->slow, pp->capslow * sizeof(*grown));
        if (grown == NULL) {
            snprintf(pp->err, pp->errlen, "out of memory");
            pp->failed = true;
            return;
        }
        pp->slow = grown;
    }
    pp->slow[pp->nslow++] = item;
}

/* Syncs and reads every result sent. HG_ERROR once anything failed (the
 * first reason in err); the connection is then left as the failure left
 * it. */
static int
hg_pg_pipe_read(hg_pg_pipe_t *pp)
{
    PGresult *res;
    int i;

    if (pp->n == 0) {
        return pp->failed ? HG_ERROR : HG_OK;
    }
    if (PQpipelineSync(pp->conn) != 1) {
        hg_pg_pipe_fail(pp, NULL);
        return HG_ERROR;
    }
    for (i = 0; i < pp->n; i++) {
        res = PQgetResult(pp->conn);
        if (res == NULL) {                  /* the connection is gone */
            hg_pg_pipe_fail(pp, NULL);
            return HG_ERROR;
        }
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            hg_pg_pipe_fail(pp, res);
        }
        PQclear(res);
        while ((res = PQgetResult(pp->conn)) != NULL) {   /* its end */
            PQclear(res);
        }
    }
    pp->n = 0;
    res = PQgetResult(pp->conn);
    if (res == NULL || PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
        hg_pg_pipe_fail(pp, res);
        PQclear(res);
        return HG_ERROR;
    }
    PQclear(res);
    return pp->failed ? HG_ERROR : HG_OK;
}

/* Sends the prepared statement NAME. */
static int
hg_pg_pipe_send(hg_pg_pipe_t *pp, const char *name, const hg_pg_params_t *p)
{
    if (pp->n == HG_PG_PIPE && hg_pg_pipe_read(pp) != HG_OK) {
        return HG_ERROR;
    }
    if (PQsendQueryPrepared(pp->conn, name, p->n, p->values, p->lengths,
                            p->formats, 0) != 1)
    {
        hg_pg_pipe_fail(pp, NULL);
        return HG_ERROR;
    }
    pp->n++;
    return HG_OK;
}

/* Sends NAME with the N arrays of A (and EXTRA, a last text parameter,
 * when WITH_EXTRA), unless the first is empty; frees them. */
static int
hg_pg_pipe_arrays(hg_pg_pipe_t *pp, const char *name, hg_pg_array_t *a,
                  size_t n, bool with_extra, const char *extra)
{
    hg_pg_params_t p;
    size_t k;
    int rc = HG_OK;

    p.n = 0;
    for (k = 0; k < n; k++) {
        if (!hg_pg_array_end(&a[k])) {
            snprintf(pp->err, pp->errlen, "out of memory");
            pp->failed = true;
            rc = HG_ERROR;
        }
        hg_pg_text(&p, a[k].buf);
    }
    if (with_extra) {
        hg_pg_text(&p, extra);
    }
    if (rc == HG_OK && strcmp(a[0].buf, "{}") != 0) {
        rc = hg_pg_pipe_send(pp, name, &p);
    }
    hg_pg_arrays_free(a, n);
    return rc;
}

/* The job states (STATES, or none) and the statistics' deltas of a
 * transaction, pipelined: a statement each, of arrays. */
static int
hg_pg_pipe_rest(hg_pg_pipe_t *pp, const hg_map_t *states, hg_map_t *deltas)
{
    hg_pg_array_t st[4], sa[9], ba[3];
    size_t i = 0, b;
    const char *key;
    void *value;

    memset(st, 0, sizeof(st));
    memset(sa, 0, sizeof(sa));
    memset(ba, 0, sizeof(ba));
    while (states != NULL && hg_map_next(states, &i, &key, &value)) {
        hg_store_state_t *state = value;

        hg_pg_array_text(&st[0], state->job_id);
        hg_pg_array_int(&st[1], state->last_fire);
        hg_pg_array_bool(&st[2], state->paused);
        /* Alone, every put is the instance's word on the flag. */
        hg_pg_array_bool(&st[3], state->pause || pp->instance == NULL);
    }
    i = 0;
    while (hg_map_next(deltas, &i, &key, &value)) {
        hg_store_delta_t *delta = value;

        hg_pg_array_text(&sa[0], delta->job_id);
        hg_pg_array_int(&sa[1], delta->runs);
        hg_pg_array_int(&sa[2], delta->successes);
        hg_pg_array_int(&sa[3], delta->failures);
        hg_pg_array_int(&sa[4], delta->durations);
        hg_pg_array_int(&sa[5], delta->duration_sum);
        hg_pg_array_int(&sa[6], delta->duration_max);
        hg_pg_array_int(&sa[7], delta->last_run);
        hg_pg_array_text(&sa[8], delta->has_last
                         ? hg_exec_status_name(delta->last_status) : NULL);
        for (b = 0; b < delta->nbuckets; b++) {
            if (delta->buckets[b].count == 0) {
                continue;
            }
            hg_pg_array_text(&ba[0], delta->job_id);
            hg_pg_array_int(&ba[1], delta->buckets[b].bucket);
            hg_pg_array_int(&ba[2], delta->buckets[b].count);
        }
    }
    /* Each frees its arrays, sent or not. */
    if (hg_pg_pipe_arrays(pp, "hg_state", st, 4, true, pp->instance)
        != HG_OK)
    {
        hg_pg_arrays_free(sa, 9);
        hg_pg_arrays_free(ba, 3);
        return HG_ERROR;
    }
    if (hg_pg_pipe_arrays(pp, "hg_stats", sa, 9, false, NULL) != HG_OK) {
        hg_pg_arrays_free(ba, 3);
        return HG_ERROR;
    }
    if (hg_pg_pipe_arrays(pp, "hg_bucket", ba, 3, false, NULL) != HG_OK) {
        return HG_ERROR;
    }
    return hg_pg_pipe_read(pp);
}

/* Leaves pipeline mode when it can (everything read); a connection left
 * in it by a failure is reset before its next use. */
static void
hg_pg_pipe_end(hg_pg_t *d, hg_pg_pipe_t *pp)
{
    if (PQpipelineStatus(d->wconn) != PQ_PIPELINE_OFF
        && PQexitPipelineMode(d->wconn) != 1)
    {
        d->w_stale = true;
    }
    free(pp->slow);
    pp->slow = NULL;
}

/* Claims in (job, fire time) order: two instances claiming the same fire
 * times lock their rows in the same order, and never wait for each other
 * in a circle. */
static int
hg_pg_claim_order(const void *a, const void *b)
{
    const hg_exec_record_t *x = &(*(hg_store_item_t *const *) a)->row.r;
    const hg_exec_record_t *y = &(*(hg_store_item_t *const *) b)->row.r;
    int c = strcmp(x->job_id, y->job_id);

    if (c != 0) {
        return c;
    }
    return x->scheduled_for < y->scheduled_for ? -1
           : x->scheduled_for > y->scheduled_for;
}

/* MAP's value for JOB_ID becomes VALUE: whether it was another (or
 * none; out of memory it stays unknown, so it is new next time too). */
bool
hg_pg_mark(hg_map_t *map, const char *job_id, uint64_t value)
{
    hg_pg_def_t *def = hg_map_get(map, job_id);
    size_t len;

    if (def != NULL && def->hash == value) {
        return false;
    }
    if (def == NULL) {
        len = strlen(job_id) + 1;
        def = malloc(sizeof(*def) + len);
        if (def == NULL) {
            return true;                /* written again next time */
        }
        memcpy(def->job_id, job_id, len);
        if (hg_map_put(map, def->job_id, def) != HG_OK) {
            free(def);
            return true;
        }
    }
    def->hash = value;
    return true;
}

/* Whether R's job's definition is to be written (it is then taken as
 * written: a transaction that fails empties d->defined). */
static bool
hg_pg_define_due(hg_pg_t *d, const hg_exec_record_t *r)
{
    return hg_pg_mark(&d->defined, r->job_id, r->def_hash);
}

static void
hg_pg_define_params(hg_pg_params_t *p, hg_pg_t *d,
                    const hg_exec_record_t *r, const char *hash)
{
    p->n = 0;
    hg_pg_text(p, r->job_id);
    hg_pg_text(p, d->instance);
    hg_pg_text(p, hash);
}

/* In the transaction open on wconn: our digest of R's job's definition,
 * unless written before under the same digest. */
int
hg_pg_define(hg_pg_t *d, const hg_exec_record_t *r, const char *hash,
             char *err, size_t errlen, char *state, size_t statelen)
{
    hg_pg_params_t p;
    PGresult *res;

    if (!hg_pg_define_due(d, r)) {
        return HG_OK;
    }
    hg_pg_define_params(&p, d, r, hash);
    res = hg_pg_exec_prepared(d, "hg_define", &p, PGRES_COMMAND_OK, err,
                              errlen, state, statelen);
    if (res == NULL) {
        return HG_ERROR;
    }
    PQclear(res);
    return HG_OK;
}

/* Whether the claim of R went to the definition of most live instances
 * (ODD false) or not: said once each time it changes, per job. */
static void
hg_pg_odd(hg_pg_t *d, hg_store_writer_t *w, const hg_exec_record_t *r,
          const char *hash, bool odd)
{
    char *key = hg_map_get(&d->odd, r->job_id);

    if (odd && key == NULL) {
        key = strdup(r->job_id);
        if (key != NULL && hg_map_put(&d->odd, key, key) != HG_OK) {
            free(key);
        }
        hg_store_writer_log(w, HG_LOG_WARN, "cluster: job \"%s\": the "
                            "definition of instance \"%s\" (digest %s) is "
                            "not the one most live instances hold: its fire "
                            "times are left to them (the same %s in every "
                            "instance's scheduler.conf ends this)", r->job_id,
                            d->instance, hash, r->job_id);
    } else if (!odd && key != NULL) {
        free(hg_map_remove(&d->odd, r->job_id));
        hg_store_writer_log(w, HG_LOG_INFO, "cluster: job \"%s\": instance "
                            "\"%s\" holds the cluster's definition again",
                            r->job_id, d->instance);
    }
}

/* The next result of the pipeline, of status WANT, or NULL (the failure
 * kept in CP; the result is then read and freed, the rest of the
 * statement's results drained). */
static PGresult *
hg_pg_claim_result(hg_pg_pipe_t *cp, ExecStatusType want, bool *gone)
{
    PGresult *res = PQgetResult(cp->conn), *end;

    if (res == NULL) {
        *gone = true;                   /* the connection is gone */
        hg_pg_pipe_fail(cp, NULL);
        return NULL;
    }
    while ((end = PQgetResult(cp->conn)) != NULL) {
        PQclear(end);
    }
    if (PQresultStatus(res) != want) {
        hg_pg_pipe_fail(cp, res);
        PQclear(res);
        return NULL;
    }
    return res;
}

/*
 * Up to HG_PG_CLAIM_CHUNK claims down the pipeline, in one round trip and
 * ONE statement (arrays, in the chunk's (job, fire time) order: the
 * statement's per-row cost is the executor's start, not the row): each
 * job's definition first when not written yet; those lost (another
 * execution holds the fire time, or our definition is not the cluster's)
 * go into LOST and are said lost to the writer.
 */
static int
hg_pg_claim_chunk(hg_pg_t *d, hg_store_writer_t *w, hg_store_item_t **claims,
                  size_t n, hg_map_t *lost, hg_pg_pipe_t *cp)
{
    bool define[HG_PG_CLAIM_CHUNK], gone = false;
    char hash[HG_PG_CLAIM_CHUNK][24];
    hg_pg_array_t arr[4];
    const hg_exec_record_t *r;
    const char *holder;
    hg_pg_params_t p;
    PGresult *res = NULL;
    size_t i, k;
    int row;

    memset(arr, 0, sizeof(arr));
    for (i = 0; i < n; i++) {
        r = &claims[i]->row.r;
        snprintf(hash[i], sizeof(hash[i]), "%016" PRIx64, r->def_hash);
        hg_pg_array_text(&arr[0], r->job_id);
        hg_pg_array_int(&arr[1], r->scheduled_for);
        hg_pg_array_text(&arr[2], r->id);
        hg_pg_array_text(&arr[3], hash[i]);
    }
    p.n = 0;
    for (k = 0; k < 4; k++) {
        if (!hg_pg_array_end(&arr[k])) {
            snprintf(cp->err, cp->errlen, "out of memory");
            cp->failed = true;
            goto done;
        }
        hg_pg_text(&p, arr[k].buf);
    }
    if (PQenterPipelineMode(d->wconn) != 1) {
        hg_pg_pipe_fail(cp, NULL);
        goto done;
    }
    for (i = 0; i < n; i++) {
        hg_pg_params_t dp;

        r = &claims[i]->row.r;
        define[i] = hg_pg_define_due(d, r);
        if (define[i]) {
            hg_pg_define_params(&dp, d, r, hash[i]);
            if (PQsendQueryPrepared(d->wconn, "hg_define", dp.n, dp.values,
                                    dp.lengths, dp.formats, 0) != 1)
            {
                hg_pg_pipe_fail(cp, NULL);
                goto done;
            }
        }
    }
    if (PQsendQueryPrepared(d->wconn, "hg_claim", p.n, p.values, p.lengths,
                            p.formats, 0) != 1
        || PQpipelineSync(d->wconn) != 1)
    {
        hg_pg_pipe_fail(cp, NULL);
        goto done;
    }
    for (i = 0; i < n && !gone; i++) {
        if (define[i]) {
            PQclear(hg_pg_claim_result(cp, PGRES_COMMAND_OK, &gone));
        }
    }
    if (!gone) {
        res = hg_pg_claim_result(cp, PGRES_TUPLES_OK, &gone);
    }
    if (res != NULL && (size_t) PQntuples(res) != n) {
        snprintf(cp->err, cp->errlen, "%zu claims read %d rows", n,
                 PQntuples(res));
        cp->failed = true;
    }
    /* Row i: claims[i] (the rows come in the arrays' order). Ours if made
     * now, or made by this execution before; else lost (a NULL reads as
     * ""). Whether our definition is the cluster's is known only when the
     * claim was tried (none was held). */
    for (row = 0; res != NULL && !cp->failed && row < PQntuples(res); row++) {
        r = &claims[row]->row.r;
        if (PQgetisnull(res, row, 1)) {
            hg_pg_odd(d, w, r, hash[row],
                      strcmp(PQgetvalue(res, row, 2), "t") != 0);
        }
        holder = !PQgetisnull(res, row, 3) ? PQgetvalue(res, row, 3)
                                           : PQgetvalue(res, row, 1);
        if (strcmp(holder, r->id) != 0
            && (hg_map_put(lost, r->id, claims[row]) != HG_OK
                || hg_store_writer_lose(w, r->id) != HG_OK))
        {
            snprintf(cp->err, cp->errlen, "out of memory");
            cp->failed = true;
        }
    }
    PQclear(res);
    if (gone) {
        goto done;                      /* the failure is kept in CP */
    }
    res = PQgetResult(d->wconn);
    if (res == NULL || PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
        hg_pg_pipe_fail(cp, res);
        PQclear(res);
        goto done;
    }
    PQclear(res);
    if (PQexitPipelineMode(d->wconn) != 1) {
        hg_pg_pipe_fail(cp, NULL);
    }

done:
    hg_pg_arrays_free(arr, 4);
    return cp->failed ? HG_ERROR : HG_OK;
}

/* Whether ITEM goes in the later transaction of its batch (a claim left
 * to its fire time's preferred claimer first). */
static bool
hg_pg_later(const hg_map_t *deferred, const hg_store_item_t *item)
{
    return deferred->count > 0
           && hg_map_get(deferred, item->row.r.id) != NULL;
}

/* In the transaction open on wconn: the claim of every claiming record of
 * BATCH in this transaction (LATER: the deferred ones, else the others);
 * those whose fire time another execution holds, or whose job's
 * definition here is not the cluster's, go into LOST (and are said lost
 * to the writer). */
static int
hg_pg_claim(hg_pg_t *d, hg_store_writer_t *w, const hg_store_batch_t *batch,
            const hg_map_t *deferred, bool later, hg_map_t *lost, char *err,
            size_t errlen, char *state, size_t statelen)
{
    hg_store_item_t *item, **claims = NULL;
    hg_pg_pipe_t cp;
    size_t n = 0, i;
    int rc = HG_OK;

    for (item = batch->head; item != NULL; item = item->next) {
        n += item->row.r.claim && hg_pg_later(deferred, item) == later;
    }
    if (n == 0) {
        return HG_OK;
    }
    claims = malloc(n * sizeof(*claims));
    if (claims == NULL) {
        snprintf(err, errlen, "out of memory");
        return HG_ERROR;
    }
    n = 0;
    for (item = batch->head; item != NULL; item = item->next) {
        if (item->row.r.claim && hg_pg_later(deferred, item) == later) {
            claims[n++] = item;
        }
    }
    qsort(claims, n, sizeof(*claims), hg_pg_claim_order);
    memset(&cp, 0, sizeof(cp));
    cp.conn = d->wconn;
    cp.err = err;
    cp.errlen = errlen;
    for (i = 0; i < n && rc == HG_OK; i += HG_PG_CLAIM_CHUNK) {
        rc = hg_pg_claim_chunk(d, w, claims + i,
                               n - i < HG_PG_CLAIM_CHUNK
                               ? n - i : HG_PG_CLAIM_CHUNK, lost, &cp);
    }
    if (PQpipelineStatus(d->wconn) != PQ_PIPELINE_OFF
        && PQexitPipelineMode(d->wconn) != 1)
    {
        d->w_stale = true;              /* left mid-pipeline */
    }
    snprintf(state, statelen, "%s", cp.state);
    free(claims);
    return rc;
}


#define HG_PG_PUT_CHUNK  256        /* fast puts a statement */

/* The fast puts of ITEMS (N of them) in one statement (hg_put_many);
 * those that wrote nothing go to the pipe's slow list. */
static int
hg_pg_put_many(hg_pg_t *d, hg_pg_pipe_t *pp, hg_store_item_t **items,
               size_t n)
{
    hg_pg_array_t a[HG_PG_NCOLS];
    const hg_exec_record_t *r;
    hg_pg_params_t p;
    hg_map_t written;
    PGresult *res = NULL;
    size_t i, k;
    int row;

    memset(a, 0, sizeof(a));
    hg_map_init(&written);
    for (i = 0; i < n; i++) {
        r = &items[i]->row.r;
        hg_pg_array_text(&a[0], r->id);
        hg_pg_array_text(&a[1], r->run_id);
        hg_pg_array_text(&a[2], r->job_id);
        hg_pg_array_text(&a[3], hg_exec_status_name(r->status));
        hg_pg_array_int(&a[4], r->attempt);
        hg_pg_array_text(&a[5], r->trigger);
        hg_pg_array_int(&a[6], r->scheduled_for);
        hg_pg_array_int(&a[7], r->started_at);
        hg_pg_array_int(&a[8], r->finished_at);
        hg_pg_array_int(&a[9], r->duration_ms);
        hg_pg_array_int(&a[10], r->exit_code);
        hg_pg_array_int(&a[11], r->signo);
        hg_pg_array_bytes(&a[12], r->output, r->output_len);
        hg_pg_array_bool(&a[13], r->output_truncated);
        hg_pg_array_text(&a[14], r->error);
        hg_pg_array_int(&a[15], r->worker_pid);
        hg_pg_array_int(&a[16], r->max_rss_kb);
        hg_pg_array_int(&a[17], r->cpu_user_ms);
        hg_pg_array_int(&a[18], r->cpu_sys_ms);
        hg_pg_array_bytes(&a[19], r->payload, r->payload_len);
        hg_pg_array_int(&a[20], r->priority);
        hg_pg_array_int(&a[21], r->run_at);
        hg_pg_array_text(&a[22], r->unique_key);
        hg_pg_array_int(&a[23], r->retry_at);
    }
    p.n = 0;
    for (k = 0; k < HG_PG_NCOLS; k++) {
        if (!hg_pg_array_end(&a[k])) {
            snprintf(pp->err, pp->errlen, "out of memory");
            goto done;
        }
        hg_pg_text(&p, a[k].buf);
    }
    res = hg_pg_exec_prepared(d, "hg_put_many", &p, PGRES_TUPLES_OK,
                              pp->err, pp->errlen, pp->state,
                              sizeof(pp->state));
    if (res == NULL) {
        goto done;
    }
    for (row = 0; row < PQntuples(res); row++) {
        if (hg_map_put(&written, PQgetvalue(res, row, 0), res) != HG_OK) {
            snprintf(pp->err, pp->errlen, "out of memory");
            PQclear(res);
            res = NULL;
            goto done;
        }
    }
    for (i = 0; i < n; i++) {
        if (hg_map_get(&written, items[i]->row.r.id) == NULL) {
            hg_pg_pipe_slow(pp, items[i]);
        }
    }
    if (pp->failed) {
        PQclear(res);
        res = NULL;
    }

done:
    hg_map_free(&written);
    hg_pg_arrays_free(a, HG_PG_NCOLS);
    if (res == NULL) {
        return HG_ERROR;
    }
    PQclear(res);
    return HG_OK;
}

/*
 * One transaction of the backend's commit: the records of BATCH in it
 * (LATER: the claims DEFERRED to their preferred claimers, else all the
 * others), and the job states with the last. The fast puts go down a
 * pipeline; those that wrote nothing (a final row overwritten, a key
 * changed) take the slow way one by one: the old row out of the
 * statistics, then the put. Every record then counts in its job's
 * statistics, in batch order, and the states and statistics follow down
 * the pipeline.
 */
/* A shared record with a unique_key: its insert may be left out for its
 * key, which only its own statement can tell (not the pipeline's). */
static bool
hg_pg_keyed(const hg_pg_t *d, const hg_exec_record_t *r)
{
    return r->shared && r->unique_key != NULL && d->instance != NULL;
}

/* In the commit's transaction: R inserted, or, when its key is pending
 * already, lost (said to the master once the transaction commits, as a
 * lost claim is: the API answers 409) and marked in LOST. */
static int
hg_pg_put_keyed(hg_pg_t *d, hg_store_writer_t *w, const hg_exec_record_t *r,
                hg_map_t *lost, char *err, size_t errlen, char *state,
                size_t statelen)
{
    hg_pg_params_t p;
    PGresult *res;
    bool written;

    if (hg_pg_put_params(&p, r) != HG_OK) {
        snprintf(err, errlen, "out of memory");
        return HG_ERROR;
    }
    res = hg_pg_exec_prepared(d, "hg_put_shared", &p, PGRES_COMMAND_OK, err,
                              errlen, state, statelen);
    hg_pg_params_free(&p);
    if (res == NULL) {
        return HG_ERROR;
    }
    written = strcmp(PQcmdTuples(res), "0") != 0;
    PQclear(res);
    if (written) {
        return HG_OK;
    }
    p.n = 0;
    hg_pg_text(&p, r->id);
    res = hg_pg_exec_prepared(d, "hg_exists", &p, PGRES_TUPLES_OK, err,
                              errlen, state, statelen);
    if (res == NULL) {
        return HG_ERROR;
    }
    written = PQntuples(res) > 0;       /* an earlier try's, committed */
    PQclear(res);
    if (written) {
        return HG_OK;
    }
    if (hg_store_writer_lose(w, r->id) != HG_OK
        || hg_map_put(lost, r->id, (void *) r->id) != HG_OK)
    {
        snprintf(err, errlen, "out of memory");
        return HG_ERROR;
    }
    return HG_OK;
}

static int
hg_pg_by_key(const void *a, const void *b)
{
    const hg_store_item_t *x = *(hg_store_item_t *const *) a;
    const hg_store_item_t *y = *(hg_store_item_t *const *) b;

    return strcmp(x->row.r.unique_key, y->row.r.unique_key);
}

/* The batch's keyed shared records, in unique_key order: an insert of a
 * key another transaction has just inserted waits for that one, so two
 * instances inserting the same keys in two orders would deadlock (and
 * fail a batch); in one order, the second waits, then finds them. */
static int
hg_pg_put_all_keyed(hg_pg_t *d, hg_store_writer_t *w,
                    const hg_store_batch_t *batch, hg_map_t *lost, char *err,
                    size_t errlen, char *state, size_t statelen)
{
    hg_store_item_t *item, **keyed;
    size_t n = 0, i;
    int rc = HG_OK;

    for (item = batch->head; item != NULL; item = item->next) {
        n += hg_pg_keyed(d, &item->row.r);
    }
    if (n == 0) {
        return HG_OK;
    }
    keyed = malloc(n * sizeof(*keyed));
    if (keyed == NULL) {
        snprintf(err, errlen, "out of memory");
        return HG_ERROR;
    }
    for (n = 0, item = batch->head; item != NULL; item = item->next) {
        if (hg_pg_keyed(d, &item->row.r)) {
            keyed[n++] = item;
        }
    }
    qsort(keyed, n, sizeof(*keyed), hg_pg_by_key);
    for (i = 0; i < n && rc == HG_OK; i++) {
        rc = hg_pg_put_keyed(d, w, &keyed[i]->row.r, lost, err, errlen,
                             state, statelen);
    }
    free(keyed);
    return rc;
}

static hg_store_write_t
hg_pg_pass(hg_pg_t *d, hg_store_writer_t *w, const hg_store_batch_t *batch,
           const hg_map_t *deferred, bool later, hg_map_t *lost, char *err,
           size_t errlen)
{
    hg_pg_pipe_t pp;
    hg_map_t deltas;
    hg_store_item_t *item, **fast = NULL;
    hg_pg_params_t p;
    PGresult *res;
    size_t i, nfast = 0;
    int rc;
    char *state = pp.state;

    memset(&pp, 0, sizeof(pp));
    pp.err = err;
    pp.errlen = errlen;
    pp.instance = d->instance;
    hg_map_init(&deltas);
    if (hg_pg_writer_begin(d, err, errlen) != HG_OK
        || hg_pg_lease(d, w, err, errlen, state, sizeof(pp.state)) != HG_OK
        || hg_pg_claim(d, w, batch, deferred, later, lost, err, errlen,
                       state, sizeof(pp.state)) != HG_OK)
    {
        goto failed;
    }
    pp.conn = d->wconn;                 /* begin may have replaced it */
    fast = malloc((batch->count > 0 ? batch->count : 1) * sizeof(*fast));
    if (fast == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }
    if (PQenterPipelineMode(d->wconn) != 1) {
        hg_pg_pipe_fail(&pp, NULL);
        goto failed;
    }
    for (item = batch->head; item != NULL; item = item->next) {
        if (hg_pg_later(deferred, item) != later
            || hg_map_get(lost, item->row.r.id) != NULL)
        {
            continue;                   /* the other transaction's, or
                                           another execution's fire time */
        }
        if (hg_pg_keyed(d, &item->row.r)) {
            continue;                   /* after the pipeline */
        }
        if (!item->row.r.shared || d->instance == NULL) {
            fast[nfast++] = item;
            continue;
        }
        /* A shared one is new: it is inserted or left, never slow. */
        if (hg_pg_put_params(&p, &item->row.r) != HG_OK) {
            snprintf(err, errlen, "out of memory");
            goto failed;
        }
        rc = hg_pg_pipe_send(&pp, "hg_put_shared", &p);
        hg_pg_params_free(&p);              /* libpq copied them */
        if (rc != HG_OK) {
            goto failed;
        }
    }
    if (hg_pg_pipe_read(&pp) != HG_OK
        || PQexitPipelineMode(d->wconn) != 1)
    {
        hg_pg_pipe_fail(&pp, NULL);
        goto failed;
    }
    for (i = 0; i < nfast; i += HG_PG_PUT_CHUNK) {
        if (hg_pg_put_many(d, &pp, fast + i, nfast - i < HG_PG_PUT_CHUNK
                                             ? nfast - i : HG_PG_PUT_CHUNK)
            != HG_OK)
        {
            goto failed;
        }
    }
    for (i = 0; i < pp.nslow; i++) {
        if (hg_pg_unstat_old(d, &deltas, pp.slow[i]->row.r.id, err, errlen,
                             state, sizeof(pp.state)) != HG_OK)
        {
            goto failed;
        }
        if (hg_pg_put_params(&p, &pp.slow[i]->row.r) != HG_OK) {
            snprintf(err, errlen, "out of memory");
            goto failed;
        }
        res = hg_pg_exec_prepared(d, "hg_put", &p, PGRES_COMMAND_OK, err,
                                  errlen, state, sizeof(pp.state));
        hg_pg_params_free(&p);
        if (res == NULL) {
            goto failed;
        }
        PQclear(res);
    }
    /* Keyed ones are never claims: the first transaction's. */
    if (!later && hg_pg_put_all_keyed(d, w, batch, lost, err, errlen, state,
                                      sizeof(pp.state)) != HG_OK)
    {
        goto failed;
    }
    for (item = batch->head; item != NULL; item = item->next) {
        if (hg_pg_later(deferred, item) != later
            || hg_map_get(lost, item->row.r.id) != NULL)
        {
            continue;
        }
        if (hg_store_delta_apply(&deltas, &item->row.r, 1) != HG_OK) {
            snprintf(err, errlen, "out of memory");
            goto failed;
        }
    }
    if (PQenterPipelineMode(d->wconn) != 1) {
        hg_pg_pipe_fail(&pp, NULL);
        goto failed;
    }
    /* The job states with the last transaction: a restart that finds a
     * fire time done finds its claim decided too. */
    if (hg_pg_pipe_rest(&pp, later || deferred->count == 0
                             ? &batch->states : NULL, &deltas) != HG_OK)
    {
        goto failed;
    }
    hg_pg_pipe_end(d, &pp);
    if (hg_pg_command(d->wconn, false, "COMMIT", err, errlen) != HG_OK) {
        goto failed;
    }
    free(fast);
    hg_store_deltas_free(&deltas);
    return HG_STORE_WRITE_OK;

failed:
    free(fast);
    hg_pg_pipe_end(d, &pp);
    hg_store_deltas_free(&deltas);
    /* What this transaction wrote of our definitions is gone with it. */
    hg_map_free_values(&d->defined);
    hg_map_init(&d->defined);
    /* A transaction left open (the connection is up) is rolled back; a
     * lost connection took it with it. */
    if (!d->w_stale && PQstatus(d->wconn) == CONNECTION_OK
        && PQtransactionStatus(d->wconn) != PQTRANS_IDLE)
    {
        char rb[128];

        if (hg_pg_command(d->wconn, false, "ROLLBACK", rb, sizeof(rb))
            != HG_OK)
        {
            snprintf(err + strlen(err), errlen - strlen(err),
                     " (rollback: %s)", rb);
        }
    }
    return hg_pg_kind(d->wconn, state[0] != '\0' ? state : NULL);
}

/* Whether this instance is the preferred claimer of R's fire time: one of
 * the live instances (as the last lease read them), the same one in each,
 * by a hash of the job and the fire time. Alone, or before the first
 * lease, every fire time is ours to claim at once. */
static bool
hg_pg_prefer(const hg_pg_t *d, const hg_exec_record_t *r)
{
    return d->nlive <= 1
           || hg_store_preferred(r->job_id, r->scheduled_for, d->nlive)
              == d->self;
}

/*
 * The backend's commit (writer thread): everything in BATCH, or nothing
 * and the reason in err. In a cluster of several live instances, the
 * claims whose fire time prefers another instance (hg_pg_prefer) are
 * deferred: a first transaction writes everything else, a second one,
 * at once after it, the deferred claims and their records (those won)
 * and the job states. By then the preferred claimer has usually
 * committed its claim, and a deferred one loses to a committed row
 * without waiting; each fire time's claim is still decided by its row
 * alone. A failure of either is the batch's: it is retried whole, and
 * what the first committed is written again to the same effect (its
 * claims are found ours).
 */
hg_store_write_t
hg_pg_commit(void *be, hg_store_writer_t *w, const hg_store_batch_t *batch,
             char *err, size_t errlen)
{
    hg_pg_t *d = be;
    hg_map_t deferred, lost;
    hg_store_item_t *item;
    hg_store_write_t rc = HG_STORE_WRITE_OK;
    size_t first = 0;

    hg_map_init(&deferred);
    hg_map_init(&lost);
    for (item = batch->head; item != NULL; item = item->next) {
        if (item->row.r.claim && !hg_pg_prefer(d, &item->row.r)) {
            if (hg_map_put(&deferred, item->row.r.id, item) != HG_OK) {
                snprintf(err, errlen, "out of memory");
                rc = HG_STORE_WRITE_FAILED;
                goto done;
            }
        } else {
            first++;
        }
    }
    if (first > 0 || deferred.count == 0) {
        rc = hg_pg_pass(d, w, batch, &deferred, false, &lost, err, errlen);
    }
    if (rc == HG_STORE_WRITE_OK && deferred.count > 0) {
        rc = hg_pg_pass(d, w, batch, &deferred, true, &lost, err, errlen);
    }

done:
    hg_map_free(&deferred);
    hg_map_free(&lost);
    return rc;
}
