/*
 * hg_store_pg.c: the `postgres` store driver, one PostgreSQL database
 * named by store.url (libpq). This file holds its connections, schema,
 * open, close, check, maintenance and driver table; the writer thread's
 * transactions are in hg_store_pg_write.c, the cluster's lease and calls
 * in hg_store_pg_cluster.c, the reads in hg_store_pg_read.c, and what
 * they share in hg_store_pg.h. What follows holds for all four.
 *
 * It holds the SQL and the connections, and nothing else: the queue, the
 * writer and maintenance threads, barrier tickets and failure episodes
 * are the shared writer's (hg_store_writer.c), which calls the backend
 * below (hg_pg_backend) from its threads. It must never run a statement
 * on a connection from another thread than the one that uses it now, and
 * never from the master's loop: every blocking libpq call of a running
 * daemon is on the writer thread (commits) or the maintenance thread
 * (tasks, and the admin API's reads through QUERY tasks).
 *
 * Three connections, opened together by this process before the threads
 * start, as the sqlite driver opens its three (its open, too, reads and
 * writes synchronously at start: the schema). WCONN is the writer
 * thread's: hg_pg_commit (hg_store_pg_write.c) writes one batch in ONE
 * transaction (two in a cluster, below), its records, claims, job states
 * and statistics as statements of arrays (unnest), 128 to 256 rows a
 * statement: a one-row statement costs the executor's start, most of
 * what writing a row costs. RCONN serves the start-up reads in the
 * caller's thread, then the QUERY tasks on the maintenance thread (and
 * hg_store_claim_fire, a claim outside any record, which the master does
 * not use). MCONN is the maintenance thread's: cleanup and vacuum.
 *
 * Durability: a commit is acknowledged by PostgreSQL (synchronous_commit
 * as the server has it, on by default) before the writer publishes its
 * ticket, so kill -9 of the master loses nothing acknowledged.
 *
 * Connection loss. A statement that fails with the connection gone
 * fails the transaction; the shared writer keeps its records in the
 * bounded queue and retries with its backoff (doubling up to 1 s), and
 * says so once when the episode opens and once when a commit succeeds
 * again. Each try reconnects first (PQreset, on the writer thread) and
 * prepares the writer's statements again. A connection that died while
 * idle (PostgreSQL restarted between two batches) is reset and the
 * transaction's first statement sent once more, without an episode.
 * Reads do the same on their own connections.
 *
 * Cluster (a cluster section): every connection carries the instance's
 * name (libpq options, -c hourglass.instance=NAME). A record that claims
 * its fire time (hg_exec_record_t.claim) is written only if the claim
 * row (job, fire time) is its own: hg_pg_claim inserts the claims of a
 * batch first, in (job, fire time) order, in the transaction that then
 * writes the records; a lost one is skipped and said lost to the writer.
 * A claim already held costs an index read and locks nothing (INSERT ...
 * ON CONFLICT DO NOTHING, the holder read first). Every instance claims
 * every fire time, so each fire time has a preferred claimer, a hash of
 * job and fire time over the live instances the last lease read
 * (hg_store_preferred): a batch's claims that prefer another instance
 * are deferred to a second transaction, committed at once after the
 * first, when the preferred one has mostly committed its claim and the
 * others lose to a committed row instead of waiting for its transaction
 * (they used to take turns, each waiting for the one ahead). A deferred
 * claim that finds none is made: a dead or stopped preferred claimer
 * costs its fire times one transaction of the others, never more, and
 * never decides anything -- the unique row does. No thread sleeps for
 * it and no record waits for another's claim beyond its batch.
 * An execution row's instance is the connection's (the column's
 * default), and start-up recovery reads this instance's rows only. The
 * API's enqueues are recorded with no instance (one with a unique_key
 * left out, and said lost, when the key is pending already: a unique
 * index, hg_pg_put_keyed), and the writer thread's
 * tick takes them for this instance while its master has free workers
 * (hg_pg_take_shared); the admin API lists what waits unowned and takes
 * an unowned item out (hg_pg_list_shared, hg_pg_dequeue_shared: QUERY
 * tasks, on RCONN); the tick also reads the peers' pauses and resumes
 * (hg_pg_paused), takes or renews the cluster's lead (hg_pg_lead: the
 * leader alone raises dead-man alerts), reads each job's last start
 * and success on any instance for them (hg_pg_last_runs), and reads the
 * peers' changes to the API's jobs (hg_pg_peer_jobs: the jobs table's
 * versions, deletions kept as rows marked deleted).
 *
 * The schema (version 5, table schema_version), created and migrated by
 * hg_pg_migrations below in one transaction under an advisory lock (two
 * instances starting together do not both migrate): the tables and
 * meaning of the sqlite driver's schema version 4 (see hg_store_sqlite.c),
 * in PostgreSQL's types -- times in ms since the epoch as bigint, output
 * and payload as bytea, flags as boolean. A database already at the
 * current version is only read.
 *
 * The url may hold a password: it is never logged nor shown; lines and
 * /healthz name the database as postgresql://user@host:port/dbname.
 */

#include "hg_store_pg.h"

/* pg_advisory_xact_lock's key for migrations: "hourglas" in ASCII. */
#define HG_PG_SCHEMA_LOCK  "7526752392383291763"

/* --- the schema ---------------------------------------------------------- */

static const char hg_pg_schema_v1[] =
    "CREATE TABLE executions ("
    " id text PRIMARY KEY,"
    " run_id text,"
    " job_id text NOT NULL,"
    " status text NOT NULL,"
    " attempt integer NOT NULL DEFAULT 1,"
    " triggered_by text,"
    " scheduled_for bigint NOT NULL,"
    " started_at bigint NOT NULL DEFAULT 0,"
    " finished_at bigint NOT NULL DEFAULT 0,"
    " duration_ms bigint NOT NULL DEFAULT -1,"
    " exit_code integer NOT NULL DEFAULT -1,"
    " signal integer NOT NULL DEFAULT 0,"
    " output bytea,"
    " output_truncated boolean NOT NULL DEFAULT false,"
    " error text,"
    " worker_pid integer NOT NULL DEFAULT 0,"
    " max_rss_kb bigint NOT NULL DEFAULT -1,"
    " cpu_user_ms bigint NOT NULL DEFAULT 0,"
    " cpu_sys_ms bigint NOT NULL DEFAULT 0,"
    " payload bytea,"
    " priority integer NOT NULL DEFAULT 1,"
    " run_at bigint NOT NULL DEFAULT 0,"
    " unique_key text,"
    " retry_at bigint NOT NULL DEFAULT 0);"
    "CREATE INDEX executions_job ON executions (job_id, scheduled_for);"
    "CREATE INDEX executions_status ON executions (status, scheduled_for);"
    "CREATE INDEX executions_finished ON executions (finished_at)"
    " WHERE finished_at > 0;"
    "CREATE INDEX executions_unique_key ON executions (unique_key)"
    " WHERE unique_key IS NOT NULL;"
    "CREATE TABLE job_state ("
    " job_id text PRIMARY KEY,"
    " last_fire bigint NOT NULL,"
    " paused boolean NOT NULL);"
    "CREATE TABLE jobs ("
    " id text PRIMARY KEY,"
    " definition text NOT NULL,"
    " created_at bigint NOT NULL,"
    " updated_at bigint NOT NULL,"
    " created_by text);"
    "CREATE TABLE job_stats ("
    " job_id text PRIMARY KEY,"
    " runs bigint NOT NULL,"
    " successes bigint NOT NULL,"
    " failures bigint NOT NULL,"
    " durations bigint NOT NULL,"
    " duration_sum bigint NOT NULL,"
    " duration_max bigint NOT NULL,"
    " last_run bigint NOT NULL,"
    " last_status text);"
    "CREATE TABLE job_durations ("
    " job_id text NOT NULL,"
    " bucket integer NOT NULL,"
    " count bigint NOT NULL,"
    " PRIMARY KEY (job_id, bucket));"
    "CREATE TABLE fire_claims ("
    " token bigserial PRIMARY KEY,"
    " job_id text NOT NULL,"
    " fire_time bigint NOT NULL,"
    " claimed_at bigint NOT NULL,"
    " UNIQUE (job_id, fire_time));"
    "CREATE INDEX fire_claims_time ON fire_claims (fire_time);";

/* Version 2, the cluster: which instance wrote an execution (the one
 * that runs it: start-up recovery keeps to its own), and which execution
 * holds a fire time's claim. */
static const char hg_pg_schema_v2[] =
    "ALTER TABLE executions ADD COLUMN instance text"
    " DEFAULT current_setting('hourglass.instance', true);"
    "ALTER TABLE fire_claims ADD COLUMN exec_id text,"
    " ADD COLUMN instance text"
    " DEFAULT current_setting('hourglass.instance', true);";

/* Version 3, the cluster's leases: a row per instance, whose term is the
 * fencing token of everything it writes (it grows when the instance joins
 * and when another takes its work over), and whose lease_until, in the
 * database's clock, each commit and tick of the instance pushes ahead. */
static const char hg_pg_schema_v3[] =
    "CREATE TABLE instances ("
    " name text PRIMARY KEY,"
    " term bigint NOT NULL,"
    " lease_until bigint NOT NULL,"
    " joined_at bigint NOT NULL,"
    " renewed_at bigint NOT NULL,"
    " gone boolean NOT NULL DEFAULT false,"
    " taken_by text);"
    /* Each instance's digest of each job's definition, written as it
     * claims: a fire time goes only to an instance holding the definition
     * most live instances hold. */
    "CREATE TABLE job_definitions ("
    " job_id text NOT NULL,"
    " instance text NOT NULL,"
    " hash text NOT NULL,"
    " updated_at bigint NOT NULL,"
    " PRIMARY KEY (job_id, instance));";

/* Version 4, the cluster's shared queue and pause state. A queued
 * execution with no instance is any instance's to take (the index holds
 * just those, in the order they are taken); a job state's version grows
 * with each pause or resume (from one sequence), changed_by says whose,
 * so that each instance applies its peers' changes once. */
static const char hg_pg_schema_v4[] =
    "CREATE INDEX executions_shared ON executions"
    " (priority DESC, scheduled_for, id) WHERE instance IS NULL"
    " AND status = 'queued';"
    "CREATE SEQUENCE job_state_version;"
    "ALTER TABLE job_state ADD COLUMN version bigint NOT NULL DEFAULT 0,"
    " ADD COLUMN changed_by text;";

/* Version 5, the cluster's leader, unique keys and API jobs. The leader: one
 * row, the instance that leads (raises the dead-man alerts), its term
 * (grows with each new leader, or a leader's return after its lease
 * lapsed) and its lease_until in the database's clock, pushed ahead by
 * the leader's own lease ticks. */
static const char hg_pg_schema_v5[] =
    "CREATE TABLE cluster_leader ("
    " id integer PRIMARY KEY CHECK (id = 1),"
    " name text,"
    " term bigint NOT NULL,"
    " lease_until bigint NOT NULL);"
    "INSERT INTO cluster_leader VALUES (1, NULL, 0, 0);"
    /* A unique_key is the cluster's: one pending (queued or running)
     * execution per key, whichever instance enqueued it. Each instance
     * used to check its own memory only, so pending duplicates may be
     * there: all but the oldest of each key lose the key (they still
     * run). */
    "UPDATE executions e SET unique_key = NULL"
    " WHERE e.unique_key IS NOT NULL AND e.status IN ('queued', 'running')"
    " AND EXISTS (SELECT 1 FROM executions o WHERE o.unique_key ="
    " e.unique_key AND o.status IN ('queued', 'running') AND o.id < e.id);"
    "CREATE UNIQUE INDEX executions_pending_key ON executions (unique_key)"
    " WHERE unique_key IS NOT NULL AND status IN ('queued', 'running');"
    /* The API's jobs are the cluster's: each change gets a version (from
     * one sequence) and says whose it is, and a deletion in a cluster
     * leaves its row, deleted, so that the peers read it as they read
     * pauses. */
    "ALTER TABLE jobs ADD COLUMN version bigint NOT NULL DEFAULT 0,"
    " ADD COLUMN changed_by text,"
    " ADD COLUMN deleted boolean NOT NULL DEFAULT false;"
    "CREATE SEQUENCE jobs_version;";

/* Append only: entry i takes a database from version i to version i + 1. */
static const char *const hg_pg_migrations[] = {
    hg_pg_schema_v1,
    hg_pg_schema_v2,
    hg_pg_schema_v3,
    hg_pg_schema_v4,
    hg_pg_schema_v5,
};

#define HG_PG_SCHEMA_VERSION  ((int) HG_NELEMS(hg_pg_migrations))

void
hg_pg_text(hg_pg_params_t *p, const char *text)
{
    p->values[p->n] = text;
    p->lengths[p->n] = 0;
    p->formats[p->n] = 0;
    p->n++;
}

void
hg_pg_int(hg_pg_params_t *p, int64_t v)
{
    snprintf(p->nums[p->n], sizeof(p->nums[p->n]), "%" PRId64, v);
    hg_pg_text(p, p->nums[p->n]);
}

void
hg_pg_bytes(hg_pg_params_t *p, const void *bytes, size_t len)
{
    p->values[p->n] = bytes != NULL ? (len > 0 ? bytes : "") : NULL;
    p->lengths[p->n] = (int) len;
    p->formats[p->n] = 1;
    p->n++;
}

/* PQerrorMessage on one line, without its final newline. */
void
hg_pg_message(const char *msg, char *err, size_t errlen)
{
    size_t i, j, n;

    snprintf(err, errlen, "%s", msg != NULL && msg[0] != '\0'
             ? msg : "unknown error");
    n = strlen(err);
    while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' ')) {
        err[--n] = '\0';
    }
    /* "failed: No such file or directory\n\tIs the server running" */
    for (i = 0, j = 0; i < n; i++) {
        char c = err[i] == '\n' || err[i] == '\t' ? ' ' : err[i];

        if (c != ' ' || j == 0 || err[j - 1] != ' ') {
            err[j++] = c;
        }
    }
    err[j] = '\0';
}

/* libpq prints notices on stderr; a daemon's stderr is its log, and the
 * notices it could get (an index that exists) say nothing to its reader. */
void
hg_pg_notice(void *arg, const char *message)
{
    HG_UNUSED(arg);
    HG_UNUSED(message);
}

/* Connects to URL. connect_timeout bounds a connection attempt to a host
 * that does not answer (the url's own value wins). */
PGconn *
hg_pg_connect(const char *url, const char *options, char *err,
              size_t errlen)
{
    static const char *const keys[] = {
        "connect_timeout", "application_name", "dbname", "options", NULL
    };
    const char *values[] = { "5", "hourglass", url, options, NULL };
    PGconn *conn;

    conn = PQconnectdbParams(keys, values, 1);
    if (conn == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        hg_pg_message(PQerrorMessage(conn), err, errlen);
        PQfinish(conn);
        return NULL;
    }
    (void) PQsetNoticeProcessor(conn, hg_pg_notice, NULL);
    return conn;
}

/* Whether RES is the outcome WANT; if not, the reason in err. */
bool
hg_pg_ok(PGconn *conn, PGresult *res, ExecStatusType want, char *err,
         size_t errlen)
{
    if (res != NULL && PQresultStatus(res) == want) {
        return true;
    }
    hg_pg_message(res != NULL ? PQresultErrorMessage(res)
                              : PQerrorMessage(conn), err, errlen);
    return false;
}

/*
 * Runs SQL on *CONN. When it fails because the connection is gone (the
 * server restarted while the connection was idle), and RETRY, the
 * connection is reset and SQL sent once more: only for a statement that
 * opens a unit of work (a read, a BEGIN), which nothing was sent before.
 */
PGresult *
hg_pg_run(PGconn *conn, bool retry, const char *sql, const hg_pg_params_t *p,
          bool prepared)
{
    PGresult *res;
    int n = p != NULL ? p->n : 0;
    int attempt;

    for (attempt = 0; ; attempt++) {
        if (prepared) {
            res = PQexecPrepared(conn, sql, n, p->values, p->lengths,
                                 p->formats, 0);
        } else if (p != NULL) {
            res = PQexecParams(conn, sql, n, NULL, p->values, p->lengths,
                               p->formats, 0);
        } else {
            res = PQexec(conn, sql);
        }
        if (!retry || attempt > 0 || PQstatus(conn) != CONNECTION_BAD) {
            return res;
        }
        PQclear(res);
        PQreset(conn);
        if (PQstatus(conn) != CONNECTION_OK) {
            return NULL;
        }
        (void) PQsetNoticeProcessor(conn, hg_pg_notice, NULL);
    }
}

/* A statement without result rows, on a connection in a transaction. */
int
hg_pg_command(PGconn *conn, bool retry, const char *sql, char *err,
              size_t errlen)
{
    PGresult *res = hg_pg_run(conn, retry, sql, NULL, false);
    bool ok = hg_pg_ok(conn, res, PGRES_COMMAND_OK, err, errlen);

    PQclear(res);
    return ok ? HG_OK : HG_ERROR;
}

/* A statement that returns rows, which are not needed. */
/* A result's value at ROW, COL as a number (0 for NULL) or as text
 * (NULL for NULL). */
int64_t
hg_pg_int_at(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col)) {
        return 0;
    }
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

const char *
hg_pg_str(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static int
hg_pg_rows(PGconn *conn, const char *sql, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    bool ok = hg_pg_ok(conn, res, PGRES_TUPLES_OK, err, errlen);

    PQclear(res);
    return ok ? HG_OK : HG_ERROR;
}

/* "postgresql://user@host:port/dbname" of URL, its password left out. */
static char *
hg_pg_name(const char *url)
{
    PQconninfoOption *opts, *o;
    const char *user = NULL, *host = NULL, *port = NULL, *db = NULL;
    char *name = NULL;
    int rc;

    opts = PQconninfoParse(url, NULL);
    if (opts == NULL) {
        return NULL;
    }
    for (o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL || o->val[0] == '\0') {
            continue;
        }
        if (strcmp(o->keyword, "user") == 0) {
            user = o->val;
        } else if (strcmp(o->keyword, "host") == 0) {
            host = o->val;
        } else if (strcmp(o->keyword, "port") == 0) {
            port = o->val;
        } else if (strcmp(o->keyword, "dbname") == 0) {
            db = o->val;
        }
    }
    /* A socket directory is the url's host parameter, not its host. */
    if (host != NULL && host[0] == '/') {
        rc = asprintf(&name, "postgresql://%s%s/%s?host=%s", user ? user : "",
                      user ? "@" : "", db ? db : "", host);
    } else {
        rc = asprintf(&name, "postgresql://%s%s%s%s%s/%s", user ? user : "",
                      user ? "@" : "", host ? host : "", port ? ":" : "",
                      port ? port : "", db ? db : "");
    }
    if (rc < 0) {
        name = NULL;
    }
    PQconninfoFree(opts);
    return name;
}

/* --- open, close, check -------------------------------------------------- */

/* The schema version in the database (0: none yet), without writing. */
static int
hg_pg_version(PGconn *conn, int64_t *version, char *err, size_t errlen)
{
    PGresult *res;
    bool exists;

    res = PQexec(conn, "SELECT to_regclass('schema_version') IS NOT NULL");
    if (!hg_pg_ok(conn, res, PGRES_TUPLES_OK, err, errlen)) {
        PQclear(res);
        return HG_ERROR;
    }
    exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    *version = 0;
    if (!exists) {
        return HG_OK;
    }
    res = PQexec(conn, "SELECT coalesce(max(version), 0) FROM"
                 " schema_version");
    if (!hg_pg_ok(conn, res, PGRES_TUPLES_OK, err, errlen)) {
        PQclear(res);
        return HG_ERROR;
    }
    *version = hg_pg_int_at(res, 0, 0);
    PQclear(res);
    return HG_OK;
}

/* Brings the schema to HG_PG_SCHEMA_VERSION: one transaction, under an
 * advisory lock, the version read again inside it (another instance may
 * have migrated meanwhile). */
static int
hg_pg_migrate(hg_pg_t *d, char *err, size_t errlen)
{
    int64_t version;
    int v;
    char msg[384], sql[96];

    if (hg_pg_version(d->wconn, &version, msg, sizeof(msg)) != HG_OK) {
        snprintf(err, errlen, "store.url: %s: cannot read its schema "
                 "version: %s", d->name, msg);
        return HG_ERROR;
    }
    if (version == HG_PG_SCHEMA_VERSION) {
        return HG_OK;
    }
    if (hg_pg_command(d->wconn, false, "BEGIN", msg, sizeof(msg)) != HG_OK
        || hg_pg_rows(d->wconn, "SELECT pg_advisory_xact_lock("
                      HG_PG_SCHEMA_LOCK ")", msg, sizeof(msg)) != HG_OK)
    {
        snprintf(err, errlen, "store.url: %s: cannot lock it to migrate its "
                 "schema: %s", d->name, msg);
        goto failed;
    }
    if (hg_pg_command(d->wconn, false, "CREATE TABLE IF NOT EXISTS"
                      " schema_version (version integer NOT NULL)", msg,
                      sizeof(msg)) != HG_OK
        || hg_pg_version(d->wconn, &version, msg, sizeof(msg)) != HG_OK)
    {
        snprintf(err, errlen, "store.url: %s: cannot read its schema "
                 "version: %s", d->name, msg);
        goto failed;
    }
    if (version > HG_PG_SCHEMA_VERSION || version < 0) {
        snprintf(err, errlen, "store.url: %s has schema version %" PRId64
                 ", newer than this hourglass knows (%d): it was written "
                 "by a later version", d->name, version,
                 HG_PG_SCHEMA_VERSION);
        goto failed;
    }
    for (v = (int) version; v < HG_PG_SCHEMA_VERSION; v++) {
        if (hg_pg_command(d->wconn, false, hg_pg_migrations[v], msg,
                          sizeof(msg)) != HG_OK)
        {
            snprintf(err, errlen, "store.url: %s: migrating the schema to "
                     "version %d failed: %s", d->name, v + 1, msg);
            goto failed;
        }
    }
    snprintf(sql, sizeof(sql), "DELETE FROM schema_version; INSERT INTO"
             " schema_version VALUES (%d)", HG_PG_SCHEMA_VERSION);
    if (hg_pg_command(d->wconn, false, sql, msg, sizeof(msg)) != HG_OK
        || hg_pg_command(d->wconn, false, "COMMIT", msg, sizeof(msg))
           != HG_OK)
    {
        snprintf(err, errlen, "store.url: %s: cannot commit its schema: %s",
                 d->name, msg);
        goto failed;
    }
    if (version == 0) {
        hg_log(HG_LOG_INFO, "store: %s: schema version %d created", d->name,
               HG_PG_SCHEMA_VERSION);
    } else {
        hg_log(HG_LOG_INFO, "store: %s: schema migrated from version %"
               PRId64 " to %d", d->name, version, HG_PG_SCHEMA_VERSION);
    }
    return HG_OK;

failed:
    if (PQtransactionStatus(d->wconn) != PQTRANS_IDLE) {
        /* closing the connection next rolls back too */
        (void) hg_pg_command(d->wconn, false, "ROLLBACK", msg, sizeof(msg));
    }
    return HG_ERROR;
}

static void hg_pg_task_run(void *be, hg_store_writer_t *w,
                           hg_store_task_t *task);

/* Called after a MOVED fault only, which this driver never reports; a
 * reset of the write connection is what reopening means here. */
static int
hg_pg_reopen(void *be, char *err, size_t errlen)
{
    hg_pg_t *d = be;

    d->w_prepared = false;
    PQreset(d->wconn);
    return hg_pg_writer_ready(d, err, errlen);
}

static const hg_store_backend_t hg_pg_backend = {
    hg_pg_commit,
    NULL,                           /* no page limit to set */
    hg_pg_task_run,
    NULL,                           /* cleanup checks stopping per batch */
    hg_pg_reopen,
    NULL,                           /* the server checkpoints */
    hg_pg_tick,
    0                               /* a commit waits for the server's
                                       fsync: one per batch */
};

static void
hg_pg_free(hg_pg_t *d)
{
    PQfinish(d->wconn);
    PQfinish(d->rconn);
    PQfinish(d->mconn);
    free(d->url);
    free(d->name);
    free(d->options);
    free(d->instance);
    hg_map_free_values(&d->defined);
    hg_map_free_values(&d->odd);
    hg_map_free_values(&d->seen);
    hg_map_free_values(&d->jobs_seen);
    json_decref(d->runs);
    free(d);
}

static int hg_pg_check(const hg_conf_t *conf, char *err, size_t errlen);

/* One of the three connections, or the reason naming the database. */
static int
hg_pg_open_conn(hg_pg_t *d, PGconn **conn, char *err, size_t errlen)
{
    char msg[384];

    *conn = hg_pg_connect(d->url, d->options, msg, sizeof(msg));
    if (*conn == NULL) {
        snprintf(err, errlen, "store.url: cannot connect to %s: %s", d->name,
                 msg);
        return HG_ERROR;
    }
    return HG_OK;
}

static int
hg_pg_open(hg_store_t *store, const hg_conf_t *conf,
           const hg_store_options_t *options, char *err, size_t errlen)
{
    hg_pg_t *d;
    char msg[384];

    if (hg_pg_check(conf, err, errlen) != HG_OK) {
        return HG_ERROR;
    }
    if (!PQisthreadsafe()) {
        snprintf(err, errlen, "store: this libpq was built without thread "
                 "support; the writer thread needs it");
        return HG_ERROR;
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        snprintf(err, errlen, "store: out of memory");
        return HG_ERROR;
    }
    /* From here on hg_pg_free undoes everything. */
    d->url = strdup(conf->store.url);
    d->name = hg_pg_name(conf->store.url);
    if (conf->cluster.enabled) {
        /* Every connection knows its instance (checked as a name: no
         * space or quote to escape): a row's instance column defaults to
         * it, and the start-up reads keep to it. An instance paused or
         * cut off in the middle of a transaction holds its lease's row
         * and its claims' rows locked, and would hold up every peer's
         * claims and its own takeover: the server ends such a session
         * after half a lease. */
        size_t len = strlen(conf->cluster.instance) + 96;

        d->options = malloc(len);
        if (d->options != NULL) {
            snprintf(d->options, len, "-c hourglass.instance=%s"
                     " -c idle_in_transaction_session_timeout=%" PRId64,
                     conf->cluster.instance,
                     conf->cluster.lease_ms / 2 > 0
                     ? conf->cluster.lease_ms / 2 : 1);
        }
        d->instance = strdup(conf->cluster.instance);
        d->lease_ms = conf->cluster.lease_ms;
    }
    if (d->url == NULL || d->name == NULL
        || (conf->cluster.enabled
            && (d->options == NULL || d->instance == NULL)))
    {
        snprintf(err, errlen, "store: out of memory");
        goto failed;
    }
    if (hg_pg_open_conn(d, &d->wconn, err, errlen) != HG_OK
        || hg_pg_migrate(d, err, errlen) != HG_OK)
    {
        goto failed;
    }
    if (hg_pg_writer_ready(d, msg, sizeof(msg)) != HG_OK) {
        snprintf(err, errlen, "store.url: %s: %s", d->name, msg);
        goto failed;
    }
    if (d->instance != NULL && hg_pg_join(d, conf, err, errlen) != HG_OK) {
        goto failed;
    }
    if (hg_pg_open_conn(d, &d->rconn, err, errlen) != HG_OK
        || hg_pg_open_conn(d, &d->mconn, err, errlen) != HG_OK)
    {
        goto failed;
    }
    store->data = d;
    store->shared_queue = d->instance != NULL;
    if (hg_store_writer_start(store, &hg_pg_backend, d, d->name, options,
                              err, errlen) != HG_OK)
    {
        store->data = NULL;
        goto failed;
    }
    return HG_OK;

failed:
    hg_pg_free(d);
    return HG_ERROR;
}

static void
hg_pg_close(hg_store_t *store)
{
    hg_pg_t *d = store->data;

    if (d == NULL) {
        return;
    }
    hg_store_writer_close(store);
    if (d->leading && PQstatus(d->wconn) == CONNECTION_OK) {
        hg_pg_params_t p;
        PGresult *res;

        /* The threads are gone: wconn is the caller's now. The lead is
         * given back, so that a peer takes it at its next tick rather
         * than a lease later (a term that moved on is not ours to end). */
        p.n = 0;
        hg_pg_text(&p, d->instance);
        hg_pg_int(&p, d->lead_term);
        res = PQexecParams(d->wconn, "UPDATE cluster_leader SET lease_until"
                           " = 0 WHERE id = 1 AND name = $1 AND term = $2",
                           p.n, NULL, p.values, p.lengths, p.formats, 0);
        PQclear(res);
    }
    hg_pg_free(d);
    store->data = NULL;
}

/* `hourglass -t`: the url's syntax, as libpq reads it; nothing is
 * connected to (the server may be down while the file is checked). */
static int
hg_pg_check(const hg_conf_t *conf, char *err, size_t errlen)
{
    PQconninfoOption *opts;
    char *why = NULL, msg[256];

    if (conf->store.url == NULL || conf->store.url[0] == '\0') {
        snprintf(err, errlen, "store.url: not set (the postgres driver "
                 "needs one, e.g. url = \"postgresql://hourglass@localhost/"
                 "hourglass\";)");
        return HG_ERROR;
    }
    opts = PQconninfoParse(conf->store.url, &why);
    if (opts == NULL) {
        hg_pg_message(why != NULL ? why : "out of memory", msg, sizeof(msg));
        snprintf(err, errlen, "store.url: not a PostgreSQL connection url: "
                 "%s", msg);
        PQfreemem(why);
        return HG_ERROR;
    }
    PQconninfoFree(opts);
    return HG_OK;
}

/* --- maintenance (its own thread and connection) ------------------------ */

/* Runs the DELETE in SQL ($1 = older_than, $2 = rows per batch), each
 * batch its own transaction, until one deletes fewer rows than that. */
static int
hg_pg_delete_batches(hg_pg_t *d, hg_store_writer_t *w, hg_store_task_t *task,
                     const char *sql, const char *what, uint64_t *deleted)
{
    hg_pg_params_t p;
    PGresult *res;
    uint64_t changes;
    char msg[384];

    p.n = 0;
    hg_pg_int(&p, task->older_than);
    hg_pg_int(&p, (int64_t) (task->batch <= INT_MAX ? task->batch
                                                     : INT_MAX));
    for (;;) {
        if (hg_store_writer_stopping(w)) {
            snprintf(task->error, sizeof(task->error), "store: %s: cleanup "
                     "stopped after %" PRIu64 " %s: hourglass is stopping",
                     d->name, *deleted, what);
            return HG_ERROR;
        }
        res = hg_pg_run(d->mconn, true, sql, &p, false);
        if (!hg_pg_ok(d->mconn, res, PGRES_COMMAND_OK, msg, sizeof(msg))) {
            snprintf(task->error, sizeof(task->error), "store: %s: cleanup "
                     "stopped after %" PRIu64 " %s: %.160s", d->name,
                     *deleted, what, msg);
            PQclear(res);
            return HG_ERROR;
        }
        changes = strtoull(PQcmdTuples(res), NULL, 10);
        PQclear(res);
        *deleted += changes;
        if (changes < task->batch) {
            return HG_OK;
        }
    }
}

static void
hg_pg_task_run(void *be, hg_store_writer_t *w, hg_store_task_t *task)
{
    hg_pg_t *d = be;
    uint64_t claims = 0;
    PGresult *res;
    char msg[384];
    const char *sql;

    switch (task->kind) {
    case HG_STORE_TASK_CLEANUP:
        if (hg_pg_delete_batches(d, w, task, "DELETE FROM executions WHERE"
                                 " id IN (SELECT id FROM executions WHERE"
                                 " finished_at > 0 AND finished_at < $1 AND"
                                 " status NOT IN ('queued', 'running',"
                                 " 'dead') LIMIT $2)", "executions",
                                 &task->deleted) == HG_OK
            && hg_pg_delete_batches(d, w, task, "DELETE FROM fire_claims"
                                    " WHERE token IN (SELECT token FROM"
                                    " fire_claims WHERE fire_time < $1"
                                    " LIMIT $2)", "fire claims", &claims)
               == HG_OK)
        {
            task->rc = HG_OK;
        }
        return;
    case HG_STORE_TASK_VACUUM:
        sql = "VACUUM (ANALYZE) executions, job_state, jobs, job_stats,"
              " job_durations, fire_claims";
        break;
    case HG_STORE_TASK_HEALTH:
        sql = "SELECT 1";
        break;
    default:
        snprintf(task->error, sizeof(task->error), "store: task %d is not "
                 "a store task", (int) task->kind);
        return;
    }
    res = hg_pg_run(d->mconn, true, sql, NULL, false);
    if (res != NULL && (PQresultStatus(res) == PGRES_COMMAND_OK
                        || PQresultStatus(res) == PGRES_TUPLES_OK))
    {
        task->rc = HG_OK;
    } else {
        hg_pg_message(res != NULL ? PQresultErrorMessage(res)
                                  : PQerrorMessage(d->mconn), msg,
                      sizeof(msg));
        snprintf(task->error, sizeof(task->error), "store: %s: %s: %.160s",
                 d->name, task->kind == HG_STORE_TASK_VACUUM ? "vacuum"
                                                             : "health",
                 msg);
    }
    PQclear(res);
}

/* No I/O: the loop calls it (/healthz); the writer's figures say whether
 * the database is being written. */
static int
hg_pg_health(hg_store_t *store, json_t **report)
{
    hg_pg_t *d = store->data;

    *report = json_pack("{s:s, s:s}", "driver", "postgres", "url", d->name);
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
hg_pg_all_job_stats(hg_store_t *store, hg_job_stats_row_t **rows,
                    size_t *n)
{
    hg_store_stats_list_t list;
    hg_pg_params_t p;
    PGresult *res;
    int64_t totals[7];
    int i, r, nr;

    p.n = 0;
    res = hg_pg_read(store->data, "every job's statistics", "SELECT"
                     " s.job_id, s.runs, s.successes, s.failures,"
                     " s.durations, s.duration_sum, s.duration_max,"
                     " s.last_run, s.last_status, b.bucket, b.count"
                     " FROM job_stats s LEFT JOIN job_durations b"
                     " ON b.job_id = s.job_id AND b.count > 0"
                     " ORDER BY s.job_id, b.bucket", &p);
    if (res == NULL) {
        return HG_ERROR;
    }
    memset(&list, 0, sizeof(list));
    nr = PQntuples(res);
    for (r = 0; r < nr; r++) {
        for (i = 0; i < 7; i++) {
            totals[i] = hg_pg_int_at(res, r, i + 1);
        }
        if (hg_store_stats_list_add(&list, hg_pg_str(res, r, 0), totals,
                                    hg_pg_str(res, r, 8),
                                    !PQgetisnull(res, r, 9),
                                    (unsigned) hg_pg_int_at(res, r, 9),
                                    hg_pg_int_at(res, r, 10)) != HG_OK)
        {
            hg_store_writer_say(HG_LOG_ERROR, "store: out of memory reading "
                                "every job's statistics");
            hg_store_stats_list_free(&list);
            PQclear(res);
            return HG_ERROR;
        }
    }
    PQclear(res);
    hg_store_stats_list_end(&list, rows, n);
    return HG_OK;
}

const hg_store_driver_t hg_store_postgres_driver = {
    "postgres",
    hg_pg_open,
    hg_pg_close,
    hg_store_writer_put_execution,
    hg_store_writer_put_job_state,
    hg_store_writer_barrier,
    hg_store_writer_committed,
    hg_pg_load_unfinished,
    hg_pg_load_job_states,
    hg_pg_get_execution,
    hg_pg_list_executions,
    hg_pg_job_stats,
    hg_pg_unique_key_pending,
    hg_pg_purge_dead,
    hg_pg_count_executions,
    hg_pg_load_jobs,
    hg_pg_put_jobs,
    hg_store_writer_task,
    hg_store_writer_task_done,
    hg_pg_health,
    NULL,
    hg_pg_check,
    hg_pg_claim_fire,
    hg_pg_take_queued,
    hg_pg_renew,
    hg_pg_release,
    hg_pg_all_job_stats,
    hg_pg_list_shared,
    hg_pg_dequeue_shared
};
