/*
 * hg_store_pg_cluster.c: the postgres driver's cluster: the instance's
 * lease and its term (the fencing token), the takeover of peers whose
 * lease lapsed, the leader's row, the peers' pauses and API jobs, the
 * jobs' last runs for the leader's dead-man alerts (the writer thread's
 * tick, on WCONN), the shared queue's take, and the cluster's calls of
 * the driver table (QUERY tasks, on RCONN).
 *
 * Time is the database's, never the instance's (HG_PG_NOW). It must
 * never start or record an execution itself: what it takes over goes to
 * the master through the shared writer.
 */

#include "hg_store_pg.h"

/* --- the cluster's lease ------------------------------------------------- */

/*
 * An instance holds one lease (its row in instances), not one per
 * execution: every transaction it commits first pushes the lease ahead
 * under its term, and so holds the row locked until COMMIT; a tick does
 * the same while nothing is committed, every third of the lease. A peer
 * whose lease lapsed is fenced (its term grows, under the row lock, so a
 * commit of the peer either went before, and its executions are taken
 * with the rest, or finds the term changed and writes nothing) and its
 * unfinished executions become ours: the master records the running ones
 * crashed and retries them per policy, as after its own restart.
 *
 * What this cannot promise (Kleppmann's fencing argument): a worker of a
 * paused or cut-off instance may still be running a job when its
 * execution is taken over and retried here; the job's own side effects
 * see no token. Fire times still run once: their claims are rows.
 */

/* A transaction left open on wconn (the connection is up) is rolled back;
 * a lost connection took it with it. */
static void
hg_pg_writer_rollback(hg_pg_t *d)
{
    char rb[128];

    if (PQstatus(d->wconn) == CONNECTION_OK
        && PQtransactionStatus(d->wconn) != PQTRANS_IDLE)
    {
        (void) hg_pg_command(d->wconn, false, "ROLLBACK", rb, sizeof(rb));
    }
}

/* The live instances' names as the lease read them ("a,b,c", in order,
 * us among them): how many, and our place. */
static void
hg_pg_live(hg_pg_t *d, const char *names)
{
    size_t len = strlen(d->instance), n = 0;
    const char *p = names, *end;

    d->self = 0;
    for (;;) {
        end = strchr(p, ',');
        if (end == NULL) {
            end = p + strlen(p);
        }
        if ((size_t) (end - p) == len && memcmp(p, d->instance, len) == 0) {
            d->self = n;
        }
        n++;
        if (*end == '\0') {
            break;
        }
        p = end + 1;
    }
    d->nlive = n;
}

/* In the transaction open on wconn: the lease pushed ahead, or HG_ERROR
 * (fenced: said to the writer; or the statement failed). */
int
hg_pg_lease(hg_pg_t *d, hg_store_writer_t *w, char *err, size_t errlen,
            char *state, size_t statelen)
{
    hg_pg_params_t p;
    PGresult *res;
    bool held;

    if (d->instance == NULL) {
        return HG_OK;
    }
    p.n = 0;
    hg_pg_text(&p, d->instance);
    hg_pg_int(&p, d->term);
    hg_pg_int(&p, d->lease_ms);
    res = hg_pg_exec_prepared(d, "hg_lease", &p, PGRES_TUPLES_OK, err,
                              errlen, state, statelen);
    if (res == NULL) {
        return HG_ERROR;
    }
    held = PQntuples(res) == 1;
    if (held) {
        hg_pg_live(d, PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    if (!held) {
        snprintf(err, errlen, "cluster: instance \"%s\" no longer holds "
                 "its lease (term %" PRId64 "): another instance took its "
                 "work over after the lease lapsed, or another process "
                 "joined under the same name", d->instance, d->term);
        hg_store_writer_fence(w, err);
        return HG_ERROR;
    }
    return HG_OK;
}

/* In the tick's transaction: fence the peer NAME and take its unfinished
 * executions (appended to *ROWS). */
static int
hg_pg_take_peer(hg_pg_t *d, const char *name, hg_exec_row_t **rows,
                size_t *n, char *err, size_t errlen)
{
    hg_pg_params_t p;
    PGresult *res;
    hg_exec_row_t *grown;
    char state[8];
    int i, rc;

    p.n = 0;
    hg_pg_text(&p, d->instance);
    hg_pg_text(&p, name);
    res = hg_pg_exec_prepared(d, "hg_fence", &p, PGRES_COMMAND_OK, err,
                              errlen, state, sizeof(state));
    if (res == NULL) {
        return HG_ERROR;
    }
    PQclear(res);
    res = hg_pg_exec_prepared(d, "hg_take", &p, PGRES_TUPLES_OK, err,
                              errlen, state, sizeof(state));
    if (res == NULL) {
        return HG_ERROR;
    }
    if (PQntuples(res) > 0) {
        grown = realloc(*rows, (*n + (size_t) PQntuples(res))
                               * sizeof(*grown));
        if (grown == NULL) {
            PQclear(res);
            snprintf(err, errlen, "out of memory");
            return HG_ERROR;
        }
        *rows = grown;
    }
    for (i = 0; i < PQntuples(res); i++) {
        rc = hg_pg_read_row(d, res, i, &(*rows)[*n]);
        if (rc == HG_ERROR) {
            PQclear(res);
            snprintf(err, errlen, "out of memory");
            return HG_ERROR;
        }
        *n += rc == HG_OK;
    }
    PQclear(res);
    return HG_OK;
}

/* The peers whose lease lapsed, fenced and their executions taken, in
 * the tick's transaction; a line per peer for the master's log. */
static int
hg_pg_take_lapsed(hg_pg_t *d, hg_store_writer_t *w, hg_exec_row_t **rows,
                  size_t *n, char *err, size_t errlen)
{
    hg_pg_params_t p;
    PGresult *res;
    size_t before;
    char state[8];
    int i;

    p.n = 0;
    hg_pg_text(&p, d->instance);
    res = hg_pg_exec_prepared(d, "hg_lapsed", &p, PGRES_TUPLES_OK, err,
                              errlen, state, sizeof(state));
    if (res == NULL) {
        return HG_ERROR;
    }
    for (i = 0; i < PQntuples(res); i++) {
        before = *n;
        if (hg_pg_take_peer(d, PQgetvalue(res, i, 0), rows, n, err, errlen)
            != HG_OK)
        {
            PQclear(res);
            return HG_ERROR;
        }
        /* Said once the transaction commits: lines wait for the ack. */
        hg_store_writer_log(w, HG_LOG_WARN, "cluster: instance \"%s\" "
                            "stopped renewing its lease (lapsed %s ms ago): "
                            "fenced, and its %zu unfinished executions "
                            "taken over by \"%s\"", PQgetvalue(res, i, 0),
                            PQgetvalue(res, i, 1), *n - before,
                            d->instance);
    }
    PQclear(res);
    return HG_OK;
}

/* The tick's picture of the cluster for the master (status, metrics): every
 * instance's row, in the database's clock. A failed read keeps the last. */
static void
hg_pg_view(hg_pg_t *d, hg_store_writer_t *w)
{
    PGresult *res;
    json_t *view, *list, *one;
    int i;

    res = PQexec(d->wconn, "SELECT i.name, i.term, i.lease_until - "
                 HG_PG_NOW ", " HG_PG_NOW " - i.renewed_at, i.gone,"
                 " i.taken_by, l.name IS NOT NULL AND l.lease_until > "
                 HG_PG_NOW " FROM instances i LEFT JOIN cluster_leader l"
                 " ON l.name = i.name ORDER BY i.name");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return;
    }
    list = json_array();
    /* "leader" is this instance's belief (its last tick's, until its
     * deadline: hg_store_writer_view); each instance's "leader", the
     * row's as this read found it. */
    view = json_pack("{s:s, s:I, s:b, s:I, s:o, s:o*}",
                     "coordinator", "postgres", "term", (json_int_t) d->term,
                     "leader", d->leading, "leader_term",
                     (json_int_t) d->lead_term, "instances", list, "jobs",
                     d->runs != NULL ? json_deep_copy(d->runs) : NULL);
    for (i = 0; view != NULL && i < PQntuples(res); i++) {
        one = json_pack("{s:s, s:I, s:b, s:I, s:I, s:s?, s:b}",
                        "name", PQgetvalue(res, i, 0),
                        "term", (json_int_t) hg_pg_int_at(res, i, 1),
                        "live", strcmp(PQgetvalue(res, i, 4), "f") == 0
                                && hg_pg_int_at(res, i, 2) > 0,
                        "lease_left_ms", (json_int_t) hg_pg_int_at(res, i, 2),
                        "renewed_ms_ago", (json_int_t) hg_pg_int_at(res, i, 3),
                        "taken_by", PQgetisnull(res, i, 5)
                                    ? NULL : PQgetvalue(res, i, 5),
                        "leader", strcmp(PQgetvalue(res, i, 6), "t") == 0);
        if (one == NULL || json_array_append_new(list, one) != 0) {
            json_decref(view);
            view = NULL;
        }
    }
    PQclear(res);
    if (view != NULL) {
        hg_store_writer_set_view(w, view);
    }
}

/*
 * The shared queue. A queued execution recorded with no instance (the
 * API's enqueues: hg_exec_record_t.shared) is taken by whichever instance
 * has free workers first: each polls every HG_PG_POLL_MS while its master
 * says it has room (hg_store_writer_capacity), with one indexed read that
 * locks nothing; when something is due, one transaction pushes the lease
 * ahead (so a fenced instance takes nothing: its term no longer matches)
 * and takes up to its room with FOR UPDATE SKIP LOCKED, instances taking
 * together skipping each other's rows instead of waiting. Due is by the
 * database's clock. Polling rather than LISTEN/NOTIFY: a run_at in the
 * future becomes due with no statement to notify it, and one read per
 * poll is what NOTIFY would save (Solid Queue polls at 0.1 s too).
 */
#define HG_PG_POLL_MS  150

static int
hg_pg_take_shared(hg_pg_t *d, hg_store_writer_t *w, size_t room)
{
    hg_exec_row_t *rows = NULL;
    hg_pg_params_t p;
    PGresult *res;
    size_t n = 0;
    char err[512], state[8] = "";
    int i, rc;

    if (d->w_stale || !d->w_prepared || PQstatus(d->wconn) != CONNECTION_OK)
    {
        return HG_OK;                   /* the lease tick reconnects */
    }
    p.n = 0;
    res = hg_pg_exec_prepared(d, "hg_shared_due", &p, PGRES_TUPLES_OK, err,
                              sizeof(err), state, sizeof(state));
    if (res == NULL || PQntuples(res) == 0) {
        PQclear(res);
        return HG_OK;                   /* a failure: the lease tick says */
    }
    PQclear(res);
    hg_pg_text(&p, d->instance);
    hg_pg_int(&p, (int64_t) room);
    if (hg_pg_writer_begin(d, err, sizeof(err)) != HG_OK
        || hg_pg_lease(d, w, err, sizeof(err), state, sizeof(state))
           != HG_OK
        || (res = hg_pg_exec_prepared(d, "hg_take_shared", &p,
                                      PGRES_TUPLES_OK, err, sizeof(err),
                                      state, sizeof(state))) == NULL)
    {
        hg_pg_writer_rollback(d);
        return HG_ERROR;
    }
    rows = PQntuples(res) > 0 ? calloc((size_t) PQntuples(res),
                                       sizeof(*rows)) : NULL;
    for (i = 0; rows != NULL && i < PQntuples(res); i++) {
        rc = hg_pg_read_row(d, res, i, &rows[n]);
        if (rc == HG_ERROR) {
            break;
        }
        if (rc == HG_OK) {
            rows[n++].r.shared = true;
        }
    }
    /* Out of memory, nothing is taken: the rows stay for another. */
    if ((PQntuples(res) > 0 && i < PQntuples(res))
        || hg_pg_command(d->wconn, false, "COMMIT", err, sizeof(err))
           != HG_OK)
    {
        PQclear(res);
        hg_exec_rows_free(rows, n);
        hg_pg_writer_rollback(d);
        return HG_ERROR;
    }
    PQclear(res);
    hg_store_writer_used(w, n);
    if (hg_store_writer_take(w, rows, n) != HG_OK) {
        hg_store_writer_log(w, HG_LOG_ERROR, "cluster: out of memory: "
                            "shared executions taken are left to start-up "
                            "recovery");
    }
    return HG_OK;
}

/* Peers' pauses and resumes since the last read (writer thread, after
 * the lease tick): a job whose version changed is handed to the master,
 * which applies it as it applies the API's, without writing it back. */
static void
hg_pg_paused(hg_pg_t *d, hg_store_writer_t *w, bool first)
{
    hg_pg_params_t p;
    PGresult *res;
    char err[256], state[8];
    const char *job;
    int i;

    p.n = 0;
    hg_pg_text(&p, d->instance);
    res = hg_pg_exec_prepared(d, "hg_paused", &p, PGRES_TUPLES_OK, err,
                              sizeof(err), state, sizeof(state));
    if (res == NULL) {
        return;
    }
    for (i = 0; i < PQntuples(res); i++) {
        job = PQgetvalue(res, i, 0);
        if (hg_pg_mark(&d->seen, job, (uint64_t) hg_pg_int_at(res, i, 2))
            && !first
            && hg_store_writer_peer_paused(w, job, strcmp(PQgetvalue(res,
                                           i, 1), "t") == 0) != HG_OK)
        {
            free(hg_map_remove(&d->seen, job));   /* said next time */
        }
    }
    PQclear(res);
}

/*
 * The leader. One instance of the cluster leads: it alone raises the
 * dead-man alerts (expect), once for the cluster. Its lease is a row
 * (cluster_leader) rather than a session's advisory lock: a lock would
 * move at once when its holder is killed, but never while the holder is
 * stopped (SIGSTOP, a long pause) or cut off behind a connection the
 * server still thinks open, and such a leader would keep the lead for
 * ever. The row holds a name, a term and a lease_until in the database's
 * clock; each lease tick, in the transaction that first renewed the
 * instance's own lease (so a fenced instance never leads), takes it when
 * it is free or lapsed and renews it when it is ours.
 *
 * Believing it. The tick notes the monotonic time before its BEGIN; once
 * its transaction commits with the lead, this instance believes it leads
 * until that time plus the lease (hg_store_writer_set_leader), an
 * instant no later than the database's lease_until, so the lead is never
 * believed by two instances at once (clocks that run at one rate). A
 * leader stopped or cut off stops believing it when that time passes,
 * whether or not a tick ran since; a peer takes the lead at its first
 * tick after lease_until: within a lease and a third of it. A clean
 * stop gives it back at once (hg_pg_close).
 */
static int
hg_pg_lead(hg_pg_t *d, bool *led, int64_t *term, char *err, size_t errlen)
{
    hg_pg_params_t p;
    PGresult *res;
    char state[8];

    p.n = 0;
    hg_pg_text(&p, d->instance);
    hg_pg_int(&p, d->lease_ms);
    res = hg_pg_exec_prepared(d, "hg_lead", &p, PGRES_TUPLES_OK, err, errlen,
                              state, sizeof(state));
    if (res == NULL) {
        return HG_ERROR;
    }
    *led = PQntuples(res) == 1;
    *term = *led ? hg_pg_int_at(res, 0, 0) : 0;
    PQclear(res);
    return HG_OK;
}

/* The lead as the tick's committed transaction found it (T0: monotonic
 * ms before its BEGIN), said to the writer and, when it changed, to the
 * log. */
static void
hg_pg_leader_is(hg_pg_t *d, hg_store_writer_t *w, bool led, int64_t term,
                int64_t t0)
{
    /* 1, long past: a view that still says "leader" is not believed. */
    hg_store_writer_set_leader(w, led ? t0 + d->lease_ms : 1);
    if (led != d->leading || (led && term != d->lead_term)) {
        hg_store_writer_log(w, HG_LOG_INFO, "cluster: instance \"%s\" %s "
                            "(leader term %" PRId64 ")", d->instance,
                            led ? "is the leader now"
                                : "is no longer the leader",
                            led ? term : d->lead_term);
    }
    d->leading = led;
    if (led) {
        d->lead_term = term;
    }
}

/* Each job's last start and success on any instance, from the executions
 * that ended since the last read (writer thread, after the lease tick):
 * kept in d->runs for the view. A read starts a lease before the newest
 * end it saw, so that a row committed a little after a later one (or
 * ended by a clock a little behind) is still read; the maxima make a row
 * read twice harmless. */
static void
hg_pg_last_runs(hg_pg_t *d)
{
    hg_pg_params_t p;
    PGresult *res;
    json_t *one;
    char err[256], state[8];
    const char *job;
    int64_t run, success, newest = 0;
    int i;

    if (d->runs == NULL && (d->runs = json_object()) == NULL) {
        return;
    }
    p.n = 0;
    if (d->runs_since > 0) {
        hg_pg_int(&p, d->runs_since);
    } else {
        hg_pg_text(&p, NULL);
    }
    hg_pg_int(&p, d->lease_ms);
    res = hg_pg_exec_prepared(d, "hg_last_runs", &p, PGRES_TUPLES_OK, err,
                              sizeof(err), state, sizeof(state));
    if (res == NULL) {
        return;                         /* read again at the next tick */
    }
    for (i = 0; i < PQntuples(res); i++) {
        job = PQgetvalue(res, i, 0);
        run = PQgetisnull(res, i, 1) ? 0 : hg_pg_int_at(res, i, 1);
        success = PQgetisnull(res, i, 2) ? 0 : hg_pg_int_at(res, i, 2);
        if (hg_pg_int_at(res, i, 3) > newest) {
            newest = hg_pg_int_at(res, i, 3);
        }
        one = json_object_get(d->runs, job);
        if (one == NULL) {
            one = json_pack("{s:I, s:I}", "run_ms", (json_int_t) 0,
                            "success_ms", (json_int_t) 0);
            if (one == NULL || json_object_set_new(d->runs, job, one) != 0) {
                break;
            }
        }
        if (run > json_integer_value(json_object_get(one, "run_ms"))) {
            (void) json_object_set_new(one, "run_ms", json_integer(run));
        }
        if (success > json_integer_value(json_object_get(one,
                                                         "success_ms")))
        {
            (void) json_object_set_new(one, "success_ms",
                                       json_integer(success));
        }
    }
    PQclear(res);
    if (newest - d->lease_ms > d->runs_since) {
        d->runs_since = newest - d->lease_ms;
    }
}

/* A job's row as the peers changed it: {definition, created_by,
 * created_at, updated_at}, json null when deleted, or NULL when it cannot
 * be read. */
static json_t *
hg_pg_job_row(hg_pg_t *d, const char *id)
{
    hg_pg_params_t p;
    PGresult *res;
    json_t *definition, *record;
    json_error_t jerr;
    char err[256], state[8];

    p.n = 0;
    hg_pg_text(&p, id);
    res = hg_pg_exec_prepared(d, "hg_job_row", &p, PGRES_TUPLES_OK, err,
                              sizeof(err), state, sizeof(state));
    if (res == NULL) {
        return NULL;
    }
    if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 4), "t") == 0) {
        PQclear(res);
        return json_null();
    }
    definition = json_loads(PQgetvalue(res, 0, 0), 0, &jerr);
    record = json_is_object(definition)
             ? json_pack("{s:O, s:s?, s:I, s:I}", "definition", definition,
                         "created_by", hg_pg_str(res, 0, 1),
                         "created_at", (json_int_t) hg_pg_int_at(res, 0, 2),
                         "updated_at", (json_int_t) hg_pg_int_at(res, 0, 3))
             : json_null();             /* not a job: as if deleted */
    json_decref(definition);
    PQclear(res);
    return record;
}

/* Peers' changes to the API's jobs since the last read (writer thread,
 * after the lease tick), as hg_pg_paused reads pauses: each job whose
 * row's version changed is read and handed to the master, which checks
 * and applies it as the API's own change, without writing it back.
 * FIRST (at join) only notes the versions: the master loads the jobs. */
static void
hg_pg_peer_jobs(hg_pg_t *d, hg_store_writer_t *w, bool first)
{
    hg_pg_params_t p;
    PGresult *res;
    json_t *record;
    char err[256], state[8];
    const char *job;
    int i;

    p.n = 0;
    hg_pg_text(&p, d->instance);
    res = hg_pg_exec_prepared(d, "hg_jobs_changed", &p, PGRES_TUPLES_OK, err,
                              sizeof(err), state, sizeof(state));
    if (res == NULL) {
        return;
    }
    for (i = 0; i < PQntuples(res); i++) {
        job = PQgetvalue(res, i, 0);
        if (!hg_pg_mark(&d->jobs_seen, job,
                        (uint64_t) hg_pg_int_at(res, i, 1)) || first)
        {
            continue;
        }
        record = hg_pg_job_row(d, job);
        if (record != NULL && !json_is_null(record)) {
            /* A job new here may have been paused by a peer before this
             * instance knew it: its pause is read again next tick. */
            free(hg_map_remove(&d->seen, job));
        }
        if (record == NULL
            || hg_store_writer_peer_job(w, job, record) != HG_OK)
        {
            free(hg_map_remove(&d->jobs_seen, job));  /* read next time */
        }
    }
    PQclear(res);
}

/* The lease pushed ahead while nothing is committed, lapsed peers taken
 * over, and the lead taken or renewed: every third of the lease; a second
 * while the database cannot be reached (the commits' own episode says so;
 * a lease that lapses meanwhile is taken over by a peer, and the next
 * tick finds this instance fenced). Then the peers' pauses and the jobs'
 * last runs. The wait before the next. */
static int64_t
hg_pg_lease_tick(hg_pg_t *d, hg_store_writer_t *w)
{
    hg_exec_row_t *rows = NULL;
    size_t n = 0;
    char err[512], state[8] = "";
    int64_t every, t0, term = 0;
    bool led = false;

    every = d->lease_ms / 3 > 0 ? d->lease_ms / 3 : 1;
    err[0] = '\0';
    t0 = hg_clock_ns(CLOCK_MONOTONIC) / HG_NSEC_PER_MSEC;
    if (hg_pg_writer_begin(d, err, sizeof(err)) != HG_OK
        || hg_pg_lease(d, w, err, sizeof(err), state, sizeof(state))
           != HG_OK
        || hg_pg_take_lapsed(d, w, &rows, &n, err, sizeof(err)) != HG_OK
        || hg_pg_lead(d, &led, &term, err, sizeof(err)) != HG_OK
        || hg_pg_command(d->wconn, false, "COMMIT", err, sizeof(err))
           != HG_OK)
    {
        hg_exec_rows_free(rows, n);
        hg_pg_writer_rollback(d);
        if (!d->lease_failing) {
            d->lease_failing = true;
            hg_store_writer_log(w, HG_LOG_WARN, "cluster: cannot renew the "
                                "lease of instance \"%s\": %s", d->instance,
                                err);
        }
        return every < 1000 ? every : 1000;
    }
    if (d->lease_failing) {
        d->lease_failing = false;
        hg_store_writer_log(w, HG_LOG_INFO, "cluster: the lease of instance "
                            "\"%s\" is renewed again", d->instance);
    }
    if (hg_store_writer_take(w, rows, n) != HG_OK) {
        hg_store_writer_log(w, HG_LOG_ERROR, "cluster: out of memory: "
                            "executions taken over are left to start-up "
                            "recovery");
    }
    hg_pg_leader_is(d, w, led, term, t0);
    hg_pg_last_runs(d);
    hg_pg_view(d, w);
    hg_pg_paused(d, w, false);
    hg_pg_peer_jobs(d, w, false);
    return every;
}

/* The backend's tick (writer thread): the lease's when due, and the
 * shared queue's poll while the master has room. */
int64_t
hg_pg_tick(void *be, hg_store_writer_t *w)
{
    hg_pg_t *d = be;
    size_t room;
    int64_t now;

    if (d->instance == NULL) {
        return 3600 * 1000;             /* alone: nothing to renew */
    }
    now = hg_clock_ns(CLOCK_MONOTONIC) / HG_NSEC_PER_MSEC;
    if (now >= d->lease_due) {
        d->lease_due = now + hg_pg_lease_tick(d, w);
    }
    room = hg_store_writer_capacity(w);
    if (room > 0 && !d->lease_failing) {
        (void) hg_pg_take_shared(d, w, room);
    }
    now = hg_clock_ns(CLOCK_MONOTONIC) / HG_NSEC_PER_MSEC;
    return d->lease_due - now < HG_PG_POLL_MS
           ? (d->lease_due > now ? d->lease_due - now : 1) : HG_PG_POLL_MS;
}

/* At open, on wconn: our digests of the file's jobs, so that a peer
 * claiming before our first claim counts our definitions (a job defined
 * through the API, or changed by a reload, is written with its first
 * claim). */
static int
hg_pg_define_all(hg_pg_t *d, const hg_conf_t *conf, char *err,
                 size_t errlen)
{
    hg_exec_record_t r;
    char hash[24], msg[384], state[8];
    size_t i;

    if (hg_pg_writer_begin(d, msg, sizeof(msg)) != HG_OK) {
        goto failed;
    }
    memset(&r, 0, sizeof(r));
    for (i = 0; i < conf->njobs; i++) {
        if (conf->jobs[i].definition_text == NULL) {
            continue;
        }
        r.job_id = conf->jobs[i].id;
        r.def_hash = hg_map_hash(conf->jobs[i].definition_text);
        snprintf(hash, sizeof(hash), "%016" PRIx64, r.def_hash);
        if (hg_pg_define(d, &r, hash, msg, sizeof(msg), state,
                         sizeof(state)) != HG_OK)
        {
            goto failed;
        }
    }
    if (hg_pg_command(d->wconn, false, "COMMIT", msg, sizeof(msg))
        == HG_OK)
    {
        return HG_OK;
    }

failed:
    hg_pg_writer_rollback(d);
    hg_map_free_values(&d->defined);
    hg_map_init(&d->defined);
    snprintf(err, errlen, "store.url: %s: cluster: cannot write the job "
             "definitions of instance \"%s\": %s", d->name, d->instance,
             msg);
    return HG_ERROR;
}

/* At open, on wconn: this instance's row, a new term (fencing whatever
 * ran under the name before: ourselves before a restart, or a second
 * process given the same name by mistake). */
int
hg_pg_join(hg_pg_t *d, const hg_conf_t *conf, char *err, size_t errlen)
{
    hg_pg_params_t p;
    PGresult *res;
    char msg[384];

    p.n = 0;
    hg_pg_text(&p, d->instance);
    hg_pg_int(&p, d->lease_ms);
    res = PQexecParams(d->wconn, "INSERT INTO instances (name, term,"
                       " lease_until, joined_at, renewed_at) VALUES ($1, 1, "
                       HG_PG_NOW " + $2, " HG_PG_NOW ", " HG_PG_NOW ")"
                       " ON CONFLICT (name) DO UPDATE SET"
                       " term = instances.term + 1,"
                       " lease_until = excluded.lease_until,"
                       " joined_at = excluded.joined_at,"
                       " renewed_at = excluded.renewed_at, gone = false,"
                       " taken_by = NULL RETURNING term", p.n, NULL,
                       p.values, p.lengths, p.formats, 0);
    if (!hg_pg_ok(d->wconn, res, PGRES_TUPLES_OK, msg, sizeof(msg))) {
        PQclear(res);
        snprintf(err, errlen, "store.url: %s: cluster: cannot join as "
                 "instance \"%s\": %s", d->name, d->instance, msg);
        return HG_ERROR;
    }
    d->term = hg_pg_int_at(res, 0, 0);
    PQclear(res);
    if (hg_pg_define_all(d, conf, err, errlen) != HG_OK) {
        return HG_ERROR;
    }
    /* The pauses as they stand: the master reads them at start. */
    hg_pg_paused(d, NULL, true);
    hg_pg_peer_jobs(d, NULL, true);
    hg_log(HG_LOG_INFO, "cluster: joined as instance \"%s\" (term %" PRId64
           ", lease %" PRId64 " ms)", d->instance, d->term, d->lease_ms);
    return HG_OK;
}

/* --- the cluster's calls ------------------------------------------------ */

/* The unique row per (job, fire time), its token from the table's
 * sequence: HG_AGAIN when the row is there already, whoever wrote it.
 * Synchronous on RCONN, like the sqlite driver's: the master does not
 * call it yet, and when it does, it must call it where RCONN is used
 * (the maintenance thread), not from its loop. */
int
hg_pg_claim_fire(hg_store_t *store, const char *job_id, int64_t fire_time,
                 uint64_t *token)
{
    hg_pg_t *d = store->data;
    hg_pg_params_t p;
    PGresult *res;
    int rc;

    p.n = 0;
    hg_pg_text(&p, job_id);
    hg_pg_int(&p, fire_time);
    res = hg_pg_read(d, "a fire claim", "INSERT INTO fire_claims (job_id,"
                     " fire_time, claimed_at) VALUES ($1, $2,"
                     " (extract(epoch FROM clock_timestamp()) * 1000)::bigint)"
                     " ON CONFLICT (job_id, fire_time) DO NOTHING"
                     " RETURNING token", &p);
    if (res == NULL) {
        return HG_ERROR;
    }
    rc = PQntuples(res) == 1 ? HG_OK : HG_AGAIN;
    if (rc == HG_OK) {
        *token = (uint64_t) hg_pg_int_at(res, 0, 0);
    }
    PQclear(res);
    return rc;
}

/* Leases of a cluster are not built yet (issue 13, point 2): these say
 * so rather than serve one instance as if it were alone. */
int
hg_pg_take_queued(hg_store_t *store, int64_t now, int64_t lease_ms,
                  size_t limit, hg_exec_row_t **rows, size_t *n)
{
    HG_UNUSED(store);
    HG_UNUSED(now);
    HG_UNUSED(lease_ms);
    HG_UNUSED(limit);
    HG_UNUSED(rows);
    HG_UNUSED(n);
    errno = ENOSYS;
    return HG_ERROR;
}

int
hg_pg_renew(hg_store_t *store, const char *id, int64_t now, int64_t lease_ms)
{
    HG_UNUSED(store);
    HG_UNUSED(id);
    HG_UNUSED(now);
    HG_UNUSED(lease_ms);
    errno = ENOSYS;
    return HG_ERROR;
}

int
hg_pg_release(hg_store_t *store, const char *id)
{
    HG_UNUSED(store);
    HG_UNUSED(id);
    errno = ENOSYS;
    return HG_ERROR;
}

/* The shared queue's unowned items (QUERY tasks, on RCONN). */
#define HG_PG_UNOWNED \
    " FROM executions WHERE instance IS NULL AND status = 'queued'" \
    " AND ($1::text IS NULL OR job_id = $1)"

int
hg_pg_list_shared(hg_store_t *store, const char *job_id, size_t limit,
                  size_t offset, hg_exec_row_t **rows, size_t *n,
                  uint64_t *total)
{
    hg_pg_t *d = store->data;
    hg_pg_params_t p;
    PGresult *res;

    p.n = 0;
    hg_pg_text(&p, job_id);
    res = hg_pg_read(d, "the shared queue", "SELECT count(*)" HG_PG_UNOWNED,
                     &p);
    if (res == NULL) {
        return HG_ERROR;
    }
    *total = (uint64_t) hg_pg_int_at(res, 0, 0);
    PQclear(res);
    if (limit == 0 || offset >= *total) {
        return HG_OK;
    }
    hg_pg_int(&p, (int64_t) limit);
    hg_pg_int(&p, (int64_t) offset);
    /* With the payload: the list says its size. */
    return hg_pg_read_rows(d, "the shared queue", "SELECT " HG_PG_COLS_FULL
                           HG_PG_UNOWNED " ORDER BY priority DESC,"
                           " scheduled_for, id LIMIT $2 OFFSET $3", &p, rows,
                           n);
}

/*
 * One transaction on RCONN: the item is recorded killed only while it is
 * unowned and queued. An instance taking it at the same moment holds its
 * row locked (FOR UPDATE SKIP LOCKED, then UPDATE): this UPDATE waits for
 * that commit and then finds it owned; or this UPDATE locks it first and
 * the take skips it, and finds it killed after. Its statistics move in
 * the same transaction, as a dequeue's killed record moves them.
 */
int
hg_pg_dequeue_shared(hg_store_t *store, const char *id, int64_t finished_at,
                     const char *error, hg_store_dequeued_t *out)
{
    hg_pg_t *d = store->data;
    hg_pg_params_t p;
    PGresult *res = NULL;
    char msg[384];

    if (hg_pg_command(d->rconn, true, "BEGIN", msg, sizeof(msg)) != HG_OK) {
        goto failed;
    }
    p.n = 0;
    hg_pg_text(&p, id);
    hg_pg_int(&p, finished_at);
    hg_pg_text(&p, error);
    res = PQexecParams(d->rconn, "UPDATE executions SET status = 'killed',"
                       " finished_at = $2, error = $3 WHERE id = $1"
                       " AND instance IS NULL AND status = 'queued'"
                       " RETURNING job_id", p.n, NULL, p.values, p.lengths,
                       p.formats, 0);
    if (!hg_pg_ok(d->rconn, res, PGRES_TUPLES_OK, msg, sizeof(msg))) {
        goto failed;
    }
    if (PQntuples(res) == 1) {
        out->found = out->removed = true;
        snprintf(out->job_id, sizeof(out->job_id), "%s",
                 PQgetvalue(res, 0, 0));
        snprintf(out->status, sizeof(out->status), "killed");
        PQclear(res);
        p.n = 0;
        hg_pg_text(&p, out->job_id);
        hg_pg_int(&p, 1);               /* a run, failed, never started */
        hg_pg_int(&p, 0);
        hg_pg_int(&p, 1);
        hg_pg_int(&p, 0);
        hg_pg_int(&p, 0);
        hg_pg_int(&p, 0);
        hg_pg_int(&p, finished_at);
        hg_pg_text(&p, "killed");
        res = PQexecParams(d->rconn, HG_PG_STATS_UPSERT, p.n, NULL,
                           p.values, p.lengths, p.formats, 0);
        if (!hg_pg_ok(d->rconn, res, PGRES_COMMAND_OK, msg, sizeof(msg))) {
            goto failed;
        }
    } else {
        PQclear(res);
        p.n = 1;
        res = PQexecParams(d->rconn, "SELECT job_id, status, instance FROM"
                           " executions WHERE id = $1", p.n, NULL, p.values,
                           p.lengths, p.formats, 0);
        if (!hg_pg_ok(d->rconn, res, PGRES_TUPLES_OK, msg, sizeof(msg))) {
            goto failed;
        }
        if (PQntuples(res) == 1) {
            out->found = true;
            snprintf(out->job_id, sizeof(out->job_id), "%s",
                     PQgetvalue(res, 0, 0));
            snprintf(out->status, sizeof(out->status), "%s",
                     PQgetvalue(res, 0, 1));
            snprintf(out->instance, sizeof(out->instance), "%s",
                     PQgetvalue(res, 0, 2));
        }
    }
    PQclear(res);
    res = NULL;
    if (hg_pg_command(d->rconn, false, "COMMIT", msg, sizeof(msg)) == HG_OK) {
        return HG_OK;
    }

failed:
    PQclear(res);
    if (PQstatus(d->rconn) == CONNECTION_OK
        && PQtransactionStatus(d->rconn) != PQTRANS_IDLE)
    {
        char rb[128];

        (void) hg_pg_command(d->rconn, false, "ROLLBACK", rb, sizeof(rb));
    }
    memset(out, 0, sizeof(*out));
    hg_store_writer_say(HG_LOG_ERROR, "store: %s: taking %s out of the "
                        "shared queue: %s", d->name, id, msg);
    return HG_ERROR;
}
