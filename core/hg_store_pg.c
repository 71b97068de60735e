/*
 * hg_store_pg.c: the `postgres` store driver, one PostgreSQL database
 * named by store.url (libpq).
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
 * thread's: hg_pg_commit writes one batch in ONE transaction (two in a
 * cluster, below), its records, claims, job states and statistics as
 * statements of arrays (unnest), 128 to 256 rows a statement: a one-row
 * statement costs the executor's start, most of what writing a row
 * costs. RCONN
 * serves the start-up reads in the caller's thread, then the QUERY tasks
 * on the maintenance thread (and hg_store_claim_fire, a claim outside
 * any record, which the master does not use). MCONN is the maintenance
 * thread's: cleanup and vacuum.
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

#include "hg_core.h"

#include <libpq-fe.h>

#include "hg_json.h"
#include "hg_log.h"
#include "hg_map.h"
#include "hg_store.h"
#include "hg_store_writer.h"
#include "hg_timer.h"

/* pg_advisory_xact_lock's key for migrations: "hourglas" in ASCII. */
#define HG_PG_SCHEMA_LOCK  "7526752392383291763"
/* The database's clock, ms since the epoch: leases never read an
 * instance's own clock, so instances need not agree on the time. */
#define HG_PG_NOW  "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
#define HG_PG_NCOLS        24

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

/* --- state --------------------------------------------------------------- */

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

static void
hg_pg_text(hg_pg_params_t *p, const char *text)
{
    p->values[p->n] = text;
    p->lengths[p->n] = 0;
    p->formats[p->n] = 0;
    p->n++;
}

static void
hg_pg_int(hg_pg_params_t *p, int64_t v)
{
    snprintf(p->nums[p->n], sizeof(p->nums[p->n]), "%" PRId64, v);
    hg_pg_text(p, p->nums[p->n]);
}

static void
hg_pg_bytes(hg_pg_params_t *p, const void *bytes, size_t len)
{
    p->values[p->n] = bytes != NULL ? (len > 0 ? bytes : "") : NULL;
    p->lengths[p->n] = (int) len;
    p->formats[p->n] = 1;
    p->n++;
}

/* PQerrorMessage on one line, without its final newline. */
static void
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
static void
hg_pg_notice(void *arg, const char *message)
{
    HG_UNUSED(arg);
    HG_UNUSED(message);
}

/* Connects to URL. connect_timeout bounds a connection attempt to a host
 * that does not answer (the url's own value wins). */
static PGconn *
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
static bool
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
static PGresult *
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
static int
hg_pg_command(PGconn *conn, bool retry, const char *sql, char *err,
              size_t errlen)
{
    PGresult *res = hg_pg_run(conn, retry, sql, NULL, false);
    bool ok = hg_pg_ok(conn, res, PGRES_COMMAND_OK, err, errlen);

    PQclear(res);
    return ok ? HG_OK : HG_ERROR;
}

/* A statement that returns rows, which are not needed. */
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
static int
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
static int
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
static PGresult *
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

static int64_t
hg_pg_int_at(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col)) {
        return 0;
    }
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
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
static bool
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
static int
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

static int hg_pg_lease(hg_pg_t *d, hg_store_writer_t *w, char *err,
                       size_t errlen, char *state, size_t statelen);
static const char *hg_pg_str(const PGresult *res, int row, int col);
static int hg_pg_read_row(hg_pg_t *d, const PGresult *res, int i,
                          hg_exec_row_t *row);

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
static hg_store_write_t
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
static int
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
static int64_t
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
static int
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

/* --- reads (start-up: the caller's thread; then QUERY tasks) ----------- */

/* The rows of a read on RCONN, or NULL with the failure logged. */
static PGresult *
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

static const char *
hg_pg_str(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* Row I of RES, columns in HG_PG_COLS_* order. HG_AGAIN: skipped. */
static int
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
static int
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

static int
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

static int
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

static int
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

static int
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

static int
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

static int
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

static int
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
static int
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

static int
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
static int
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

/* --- the cluster's calls ------------------------------------------------ */

/* The unique row per (job, fire time), its token from the table's
 * sequence: HG_AGAIN when the row is there already, whoever wrote it.
 * Synchronous on RCONN, like the sqlite driver's: the master does not
 * call it yet, and when it does, it must call it where RCONN is used
 * (the maintenance thread), not from its loop. */
static int
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
static int
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

static int
hg_pg_renew(hg_store_t *store, const char *id, int64_t now, int64_t lease_ms)
{
    HG_UNUSED(store);
    HG_UNUSED(id);
    HG_UNUSED(now);
    HG_UNUSED(lease_ms);
    errno = ENOSYS;
    return HG_ERROR;
}

static int
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

static int
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
static int
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
