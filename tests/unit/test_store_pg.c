/*
 * Unit tests for the postgres store driver (core/hg_store_pg.c) against a
 * real PostgreSQL server that the test starts itself (tests/t/pg.py:
 * initdb into a temporary directory, a Unix socket there, no TCP): every
 * field round trips (bytes with NULs included), statistics move as a
 * record's status does, the reads the admin API and recovery use, the
 * API's jobs, retention cleanup, text that is not UTF-8, the schema
 * created once and a newer one refused, the claim of a fire time and
 * its preferred claimer in a cluster,
 * `hourglass -t`'s check without a server, and the server stopped under
 * the store: one line says so, the records wait, and arrive when it is
 * back.
 *
 * Without PostgreSQL (or libpq at build time) the tests skip, or fail
 * when the environment has CI set: CI installs both.
 */

#include "hg_core.h"

#include <setjmp.h>
#include <cmocka.h>

#include "hg_log.h"
#include "hg_store.h"

#include "store_helpers.h"
#if HG_HAVE_POSTGRES
#include "fault_pg.h"
#endif

#define PG_HELPER "tests/t/pg.py"

typedef struct server_s {
    bool up;
    char dir[256];
} server_t;

typedef struct fixture_s {
    server_t *server;
    char url[512];
    char log[64];
    char logdir[32];
    hg_conf_t conf;
} fixture_t;

/* --- helpers ------------------------------------------------------------- */

/* Runs the helper with ARGS; its first line of output in OUT. */
static int
helper(const char *args, char *out, size_t outlen)
{
    char cmd[2048];
    FILE *fp;
    int status;

    snprintf(cmd, sizeof(cmd), "python3 " PG_HELPER " %s", args);
    fp = popen(cmd, "r");
    if (fp == NULL) {
        return -1;
    }
    if (out != NULL) {
        out[0] = '\0';
        if (fgets(out, (int) outlen, fp) != NULL) {
            out[strcspn(out, "\n")] = '\0';
        }
    }
    while (fgetc(fp) != EOF) {
    }
    status = pclose(fp);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
server_command(fixture_t *f, const char *verb)
{
    char args[320];

    snprintf(args, sizeof(args), "%s %s", verb, f->server->dir);
    if (helper(args, NULL, 0) != 0) {
        fail_msg("%s " PG_HELPER " %s failed", verb, f->server->dir);
    }
}

/* The run's server (main starts it, group_teardown stops it). */
static server_t the_server;

static int
group_teardown(void **state)
{
    char args[320];

    HG_UNUSED(state);
    if (the_server.up) {
        snprintf(args, sizeof(args), "stop %s", the_server.dir);
        (void) helper(args, NULL, 0);
        the_server.up = false;
    }
    return 0;
}

/* A fresh database per test, on the run's server. */
static int
setup(void **state)
{
    server_t *s = &the_server;
    fixture_t *f;
    char args[320];

    f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->server = s;
    snprintf(args, sizeof(args), "createdb %s", s->dir);
    assert_int_equal(helper(args, f->url, sizeof(f->url)), 0);
    snprintf(f->logdir, sizeof(f->logdir), "/tmp/hg_test_pg.XXXXXX");
    assert_non_null(mkdtemp(f->logdir));
    snprintf(f->log, sizeof(f->log), "%s/store.log", f->logdir);
    f->conf.store.driver = "postgres";
    f->conf.store.url = f->url;
    f->conf.store.retention_ms = 30LL * 86400000;
    assert_int_equal(hg_log_open(f->log, HG_LOG_DEBUG, HG_LOG_FORMAT_TEXT),
                     HG_OK);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture_t *f = *state;

    hg_log_close();
    unlink(f->log);
    rmdir(f->logdir);
    *state = NULL;
    free(f);
    return 0;
}

/* How many times NEEDLE is in the test's log so far. */
static size_t
log_count(fixture_t *f, const char *needle)
{
    return log_lines_with(f->log, needle);
}

static hg_store_t *
open_store(fixture_t *f)
{
    return open_server_store(&f->conf, f->url);
}

/* A barrier committed within TIMEOUT_MS. */
static bool
committed_within(hg_store_t *store, int timeout_ms)
{
    uint64_t ticket;

    assert_int_equal(hg_store_barrier(store, &ticket), HG_OK);
    return wait_ticket(store, ticket, timeout_ms);
}

/* A final (or not) record of JOB numbered I, in B's buffers. */
typedef struct rec_s {
    char id[48];
    char out[64];
    hg_exec_record_t r;
} rec_t;

static const hg_exec_record_t *
rec(rec_t *b, const char *job, int i, hg_exec_status_t status,
    int64_t duration)
{
    memset(b, 0, sizeof(*b));
    snprintf(b->id, sizeof(b->id), "%s-%06d", job, i);
    b->r.id = b->id;
    b->r.run_id = b->id;
    b->r.job_id = job;
    b->r.status = status;
    b->r.attempt = 1;
    b->r.trigger = "schedule";
    b->r.scheduled_for = 1800000000000LL + (int64_t) i * 1000;
    b->r.duration_ms = -1;
    b->r.exit_code = -1;
    b->r.max_rss_kb = -1;
    if (hg_exec_status_final(status)) {
        b->r.started_at = b->r.scheduled_for + 1;
        b->r.duration_ms = duration;
        b->r.finished_at = b->r.started_at + (duration > 0 ? duration : 0);
        b->r.exit_code = status == HG_EXEC_SUCCEEDED ? 0 : 1;
        snprintf(b->out, sizeof(b->out), "out %d", i);
        b->r.output = b->out;
        b->r.output_len = strlen(b->out);
    }
    return &b->r;
}

/* --- tests --------------------------------------------------------------- */

static void
test_roundtrip(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f);
    const hg_exec_record_t full = store_full_record();
    const hg_exec_record_t sparse = {
        .id = "sparse-1", .job_id = "j", .status = HG_EXEC_QUEUED,
        .duration_ms = -1, .exit_code = -1, .max_rss_kb = -1,
        .output = "", .output_len = 0,     /* empty but present */
    };
    hg_exec_row_t row;

    put(store, &full);
    put(store, &sparse);
    sync_store(store);

    assert_int_equal(hg_store_get_execution(store, full.id, &row), HG_OK);
    assert_same_record(&full, &row.r);
    hg_exec_row_free(&row);

    assert_int_equal(hg_store_get_execution(store, "sparse-1", &row), HG_OK);
    assert_same_record(&sparse, &row.r);
    assert_non_null(row.r.output);          /* empty, not NULL */
    hg_exec_row_free(&row);

    assert_int_equal(hg_store_get_execution(store, "no-such-id", &row),
                     HG_AGAIN);
    hg_store_close(store);
}

static void
test_stats_and_reads(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f);
    hg_exec_row_t *rows;
    hg_job_stats_t st;
    json_t *states;
    uint64_t n;
    size_t count;
    bool pending;
    rec_t b;
    int i;

    /* 100 final records of "a" in one batch: 90 succeeded, 10 failed */
    for (i = 1; i <= 100; i++) {
        put(store, rec(&b, "a", i, i % 10 == 0 ? HG_EXEC_FAILED
                                               : HG_EXEC_SUCCEEDED, i));
    }
    put(store, rec(&b, "a", 500, HG_EXEC_RUNNING, 0));
    b.r.unique_key = "k1";
    b.r.status = HG_EXEC_QUEUED;
    b.r.id = "queued-1";
    put(store, &b.r);
    assert_int_equal(hg_store_put_job_state(store, "a", 1800000100000LL,
                                            true), HG_OK);
    sync_store(store);

    assert_int_equal(hg_store_job_stats(store, "a", &st), HG_OK);
    assert_int_equal(st.runs, 100);
    assert_int_equal(st.successes, 90);
    assert_int_equal(st.failures, 10);
    assert_true(st.mean_duration_ms > 50.49 && st.mean_duration_ms < 50.51);
    assert_int_equal(st.p95_duration_ms, 95);
    assert_int_equal(st.last_status, HG_EXEC_FAILED);

    /* the running one ends (put twice: counted once); the last failure
     * becomes dead (it moves within failures) */
    put(store, rec(&b, "a", 500, HG_EXEC_SUCCEEDED, 200));
    sync_store(store);
    put(store, rec(&b, "a", 500, HG_EXEC_SUCCEEDED, 200));
    put(store, rec(&b, "a", 100, HG_EXEC_DEAD, 100));
    sync_store(store);
    assert_int_equal(hg_store_job_stats(store, "a", &st), HG_OK);
    assert_int_equal(st.runs, 101);
    assert_int_equal(st.successes, 91);
    assert_int_equal(st.failures, 10);
    assert_int_equal(st.last_status, HG_EXEC_SUCCEEDED);

    /* recovery's reads */
    assert_int_equal(hg_store_load_unfinished(store, &rows, &count), HG_OK);
    assert_int_equal(count, 1);
    assert_string_equal(rows[0].r.id, "queued-1");
    hg_exec_rows_free(rows, count);
    assert_int_equal(hg_store_load_job_states(store, &states), HG_OK);
    assert_int_equal(json_integer_value(json_object_get(
        json_object_get(states, "a"), "last_fire")), 1800000100000LL);
    assert_true(json_is_true(json_object_get(json_object_get(states, "a"),
                                             "paused")));
    json_decref(states);
    assert_int_equal(hg_store_unique_key_pending(store, "k1", &pending),
                     HG_OK);
    assert_true(pending);
    assert_int_equal(hg_store_unique_key_pending(store, "k2", &pending),
                     HG_OK);
    assert_false(pending);

    /* the admin API's: newest first, filtered, counted */
    assert_int_equal(hg_store_list_executions(store, "a", "failed", 3, 1,
                                              &rows, &count), HG_OK);
    assert_int_equal(count, 3);
    assert_string_equal(rows[0].r.id, "a-000080");
    assert_null(rows[0].r.output);          /* lists leave output out */
    hg_exec_rows_free(rows, count);
    assert_int_equal(hg_store_count_executions(store, "a", "failed", &n),
                     HG_OK);
    assert_int_equal(n, 9);
    assert_int_equal(hg_store_count_executions(store, NULL, NULL, &n),
                     HG_OK);
    assert_int_equal(n, 102);
    assert_int_equal(hg_store_list_executions(store, NULL, NULL, 0, 0,
                                              &rows, &count), HG_OK);
    assert_int_equal(count, 102);
    hg_exec_rows_free(rows, count);

    /* the dead list's purge, then retention: statistics stay */
    assert_int_equal(hg_store_purge_dead(store, NULL, "a", 0, &n), HG_OK);
    assert_int_equal(n, 1);
    assert_int_equal(hg_store_cleanup(store, INT64_MAX, 7, &n), HG_OK);
    assert_int_equal(n, 100);
    assert_int_equal(hg_store_count_executions(store, NULL, NULL, &n),
                     HG_OK);
    assert_int_equal(n, 1);                 /* the queued one */
    assert_int_equal(hg_store_job_stats(store, "a", &st), HG_OK);
    assert_int_equal(st.runs, 101);
    assert_int_equal(hg_store_vacuum(store), HG_OK);
    hg_store_close(store);
}

static void
test_api_jobs(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f);
    json_t *record, *jobs;

    record = json_pack("{s:{s:s, s:s}, s:s, s:I, s:I}", "definition", "id",
                       "x", "every", "1s", "created_by", "ops",
                       "created_at", (json_int_t) 1000, "updated_at",
                       (json_int_t) 2000);
    assert_int_equal(hg_store_put_job(store, "x", record), HG_OK);
    assert_int_equal(hg_store_put_job(store, "y", record), HG_OK);
    assert_int_equal(hg_store_put_job(store, "y", NULL), HG_OK);
    json_decref(record);
    hg_store_close(store);

    store = open_store(f);
    assert_int_equal(hg_store_load_jobs(store, &jobs), HG_OK);
    assert_int_equal(json_object_size(jobs), 1);
    record = json_object_get(jobs, "x");
    assert_string_equal(json_string_value(json_object_get(
        json_object_get(record, "definition"), "every")), "1s");
    assert_string_equal(json_string_value(json_object_get(record,
                                                          "created_by")),
                        "ops");
    assert_int_equal(json_integer_value(json_object_get(record,
                                                        "updated_at")), 2000);
    json_decref(jobs);
    hg_store_close(store);
}

/* A byte that is not UTF-8 in a text field would make the database refuse
 * the whole batch, again and again: it is written as '?' instead. */
static void
test_not_utf8(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f);
    hg_exec_row_t row;
    rec_t b;

    rec(&b, "u", 1, HG_EXEC_FAILED, 5);
    b.r.error = "exit \xff\xfe, \xc3( and \xc3\xa9t\xc3\xa9";
    b.r.trigger = "api:\xed\xa0\x80";            /* a surrogate */
    put(store, &b.r);
    sync_store(store);
    assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
    assert_string_equal(row.r.error, "exit ??, ?( and \xc3\xa9t\xc3\xa9");
    assert_string_equal(row.r.trigger, "api:???");
    hg_exec_row_free(&row);
    hg_store_close(store);
}

/* Created once (one line), then only read; a newer schema is refused. */
static void
test_schema(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store;
    char err[512] = "", args[1024];

    store = open_store(f);
    hg_store_close(store);
    store = open_store(f);
    hg_store_close(store);
    assert_int_equal(log_count(f, "schema version 5 created"), 1);
    assert_int_equal(log_count(f, "schema migrated"), 0);

    /* A database of version 1 (before the cluster's columns, leases,
     * shared queue and pause versions, leader, unique keys and API job
     * versions) migrates. */
    snprintf(args, sizeof(args), "sql '%s' 'DROP INDEX executions_shared;"
             " DROP TABLE cluster_leader; DROP INDEX executions_pending_key;"
             " ALTER TABLE jobs DROP COLUMN version, DROP COLUMN changed_by,"
             " DROP COLUMN deleted; DROP SEQUENCE jobs_version;"
             " DROP SEQUENCE job_state_version; ALTER TABLE job_state DROP"
             " COLUMN version, DROP COLUMN changed_by;"
             " ALTER TABLE executions DROP COLUMN instance; ALTER TABLE fire_claims DROP COLUMN exec_id,"
             " DROP COLUMN instance; DROP TABLE instances, job_definitions;"
             " UPDATE schema_version SET version = 1'", f->url);
    assert_int_equal(helper(args, NULL, 0), 0);
    store = open_store(f);
    hg_store_close(store);
    assert_int_equal(log_count(f, "schema migrated from version 1"), 1);

    snprintf(args, sizeof(args), "sql '%s' 'UPDATE schema_version SET"
             " version = 99'", f->url);
    assert_int_equal(helper(args, NULL, 0), 0);
    assert_null(hg_store_open(&f->conf, err, sizeof(err)));
    assert_non_null(strstr(err, "schema version 99, newer than this "
                                "hourglass knows (5)"));
    /* the message names the database, never the password */
    assert_non_null(strstr(err, "store.url: postgresql://hourglass@/"));
}

/* A store of instance NAME of a cluster with a LEASE_MS lease. */
static hg_store_t *
open_instance(fixture_t *f, const char *name, int64_t lease_ms)
{
    hg_conf_t saved = f->conf;
    hg_store_t *store;

    f->conf.cluster.enabled = true;
    f->conf.cluster.instance = (char *) name;
    f->conf.cluster.lease_ms = lease_ms;
    store = open_store(f);
    f->conf = saved;
    return store;
}

/*
 * Leases: b's running execution is taken over by a once b's lease lapses
 * (b closed: it stops renewing); a sees the peers in its picture of the
 * cluster; an instance whose term was taken is fenced and writes nothing.
 * A claim under a definition most live instances do not hold is lost.
 */
static void
test_cluster_leases(void **state)
{
    fixture_t *f = *state;
    hg_store_t *a, *b;
    rec_t buf;
    hg_exec_record_t r;
    hg_exec_row_t *rows = NULL;
    size_t n = 0;
    json_t *view;
    char why[256] = "", args[1024];
    int64_t deadline;

    b = open_instance(f, "b", 300);
    r = *rec(&buf, "job", 1, HG_EXEC_RUNNING, -1);
    r.claim = true;
    r.def_hash = 7;
    put(b, &r);
    assert_true(committed_within(b, 5000));
    assert_false(hg_store_claim_lost(b, r.id));
    hg_store_close(b);                  /* stops renewing: b "dies" */

    a = open_instance(f, "a", 300);
    deadline = mono_ms() + 5000;
    while (n == 0 && mono_ms() < deadline) {
        settle(a, 100);
        assert_int_equal(hg_store_taken(a, &rows, &n), HG_OK);
    }
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].r.id, "job-000001");
    assert_int_equal(rows[0].r.status, HG_EXEC_RUNNING);
    hg_exec_rows_free(rows, n);
    assert_int_equal(log_count(f, "instance \"b\" stopped renewing its "
                                  "lease"), 1);

    view = hg_store_cluster(a);
    assert_non_null(view);
    assert_int_equal(json_array_size(json_object_get(view, "instances")), 2);
    assert_true(json_is_true(json_object_get(json_array_get(
        json_object_get(view, "instances"), 0), "live")));     /* a */
    json_decref(view);

    /* a claims under its definition of job, written with the claim: a
     * alone is live (b is gone), so its definition is the cluster's and
     * the claim is won. */
    r = *rec(&buf, "job", 2, HG_EXEC_RUNNING, -1);
    r.claim = true;
    r.def_hash = 7;
    put(a, &r);
    assert_true(committed_within(a, 5000));
    settle(a, 10);
    assert_false(hg_store_claim_lost(a, r.id));

    /* a's term taken (as a peer's takeover does): fenced at the next
     * commit, which writes nothing. */
    snprintf(args, sizeof(args), "sql '%s' 'UPDATE instances SET term ="
             " term + 1 WHERE name = $$a$$'", f->url);
    assert_int_equal(helper(args, NULL, 0), 0);
    r = *rec(&buf, "job", 3, HG_EXEC_RUNNING, -1);
    put(a, &r);
    deadline = mono_ms() + 5000;
    while (!hg_store_fenced(a, why, sizeof(why)) && mono_ms() < deadline) {
        settle(a, 100);
    }
    assert_non_null(strstr(why, "instance \"a\" no longer holds its "
                                "lease"));
    hg_store_close(a);
    assert_true(log_count(f, "records not written") >= 1);
}

/* SQL (no single quote in it) on the fixture's database; the first row
 * in OUT. */
static int
helper_sql(fixture_t *f, const char *sql, char *out, size_t outlen)
{
    char args[1800];

    snprintf(args, sizeof(args), "sql '%s' '%s'", f->url, sql);
    return helper(args, out, outlen);
}

/* Waits up to 5 s for STORE to take at least one execution. */
static void
taken_within(hg_store_t *store, hg_exec_row_t **rows, size_t *n)
{
    int64_t deadline = mono_ms() + 5000;

    *rows = NULL;
    *n = 0;
    while (*n == 0 && mono_ms() < deadline) {
        settle(store, 100);
        assert_int_equal(hg_store_taken(store, rows, n), HG_OK);
    }
}

/*
 * The shared queue: queued records put as shared have no instance; an
 * instance takes only while it says it has room, at most that many,
 * highest priority first (then the longest due), and never one whose
 * run_at the database's clock has not reached; what it took is its own.
 * A pause put by one instance reaches the other; a fire's state put does
 * not undo it.
 */
static void
test_cluster_shared(void **state)
{
    static const int prio[] = { HG_PRIORITY_LOW, HG_PRIORITY_CRITICAL,
                                HG_PRIORITY_NORMAL, HG_PRIORITY_HIGH,
                                HG_PRIORITY_CRITICAL };
    fixture_t *f = *state;
    hg_store_t *a, *b;
    rec_t buf;
    hg_exec_record_t r;
    hg_exec_row_t *rows;
    json_t *paused = NULL;
    char got[128] = "", out[256];
    size_t n, i;
    int64_t deadline;

    a = open_instance(f, "a", 600);
    b = open_instance(f, "b", 600);
    assert_true(a->shared_queue && b->shared_queue);
    for (i = 0; i < HG_NELEMS(prio); i++) {
        r = *rec(&buf, "q", (int) i + 1, HG_EXEC_QUEUED, -1);
        r.priority = prio[i];
        r.shared = true;
        put(a, &r);
    }
    r = *rec(&buf, "q", 9, HG_EXEC_QUEUED, -1);
    r.run_at = 4000000000000LL;         /* 2096: not due */
    r.shared = true;
    r.priority = HG_PRIORITY_CRITICAL;
    put(a, &r);
    assert_true(committed_within(a, 5000));
    assert_int_equal(helper_sql(f, "SELECT count(*) FROM executions WHERE"
                                " instance IS NULL", out, sizeof(out)), 0);
    assert_string_equal(out, "6");

    settle(b, 400);                     /* no room said: nothing taken */
    assert_int_equal(hg_store_taken(b, &rows, &n), HG_OK);
    assert_int_equal(n, 0);

    hg_store_set_capacity(b, 3);
    taken_within(b, &rows, &n);
    assert_int_equal(n, 3);
    for (i = 0; i < n; i++) {
        assert_true(rows[i].r.shared);
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s ",
                 rows[i].r.id);
    }
    assert_string_equal(got, "q-000002 q-000005 q-000004 ");
    hg_exec_rows_free(rows, n);
    hg_store_set_capacity(a, 10);
    taken_within(a, &rows, &n);
    assert_int_equal(n, 2);             /* not q-000009: not due yet */
    hg_exec_rows_free(rows, n);
    assert_int_equal(helper_sql(f, "SELECT string_agg(id || instance, $$,$$"
                                " ORDER BY id) FROM executions WHERE"
                                " instance IS NOT NULL", out,
                                sizeof(out)), 0);
    assert_string_equal(out, "q-000001a,q-000002b,q-000003a,q-000004b,"
                             "q-000005b");

    /* a pauses "job"; b records a fire of it, not paused as far as b
     * knows, and then hears of the pause */
    assert_int_equal(hg_store_put_pause(a, "job", 1000, true), HG_OK);
    assert_true(committed_within(a, 5000));
    assert_int_equal(hg_store_put_job_state(b, "job", 2000, false), HG_OK);
    assert_true(committed_within(b, 5000));
    deadline = mono_ms() + 5000;
    while (paused == NULL && mono_ms() < deadline) {
        settle(b, 100);
        paused = hg_store_paused(b);
    }
    assert_non_null(paused);
    assert_true(json_is_true(json_object_get(paused, "job")));
    json_decref(paused);
    assert_null(hg_store_paused(a));    /* its own: not said back */
    assert_int_equal(helper_sql(f, "SELECT last_fire || paused::text ||"
                                " changed_by FROM job_state WHERE job_id ="
                                " $$job$$", out, sizeof(out)), 0);
    assert_string_equal(out, "2000truea");
    hg_store_close(a);
    hg_store_close(b);
}

/*
 * The preferred claimer: a shares the cluster with b and c, live by their
 * leases but never claiming (killed, or stopped, before their leases
 * lapse). a claims, in one batch, fire times that prefer it and fire
 * times that prefer b or c: the first in a transaction of their own,
 * committed before the others' (left to their preferred claimers first);
 * a wins every one, each once, as the preferred ones are dead.
 */
static void
test_cluster_prefer(void **state)
{
    fixture_t *f = *state;
    hg_store_t *a;
    rec_t buf[30];
    hg_exec_record_t r;
    char sql[900], mine[400] = "", out[256];
    size_t i, nmine = 0;

    a = open_instance(f, "a", 60000);
    assert_int_equal(helper_sql(f, "INSERT INTO instances (name, term,"
                                " lease_until, joined_at, renewed_at)"
                                " SELECT n, 1, (extract(epoch FROM"
                                " clock_timestamp()) * 1000)::bigint"
                                " + 600000, 0, 0 FROM unnest(ARRAY[$$b$$,"
                                " $$c$$]) n", NULL, 0), 0);
    /* A commit of a reads the live instances with its lease. */
    assert_int_equal(hg_store_put_job_state(a, "other", 1000, false), HG_OK);
    assert_true(committed_within(a, 5000));

    hg_store_gather(a);                 /* the claims in one batch */
    for (i = 0; i < HG_NELEMS(buf); i++) {
        r = *rec(&buf[i], "job", (int) i + 1, HG_EXEC_RUNNING, -1);
        buf[i].r.claim = true;
        buf[i].r.def_hash = 7;
        put(a, &buf[i].r);
        if (hg_store_preferred("job", r.scheduled_for, 3) == 0) {
            snprintf(mine + strlen(mine), sizeof(mine) - strlen(mine),
                     "%s%" PRId64, nmine++ > 0 ? "," : "", r.scheduled_for);
        }
    }
    assert_true(committed_within(a, 5000));
    settle(a, 10);
    /* a prefers some of them, not all (b and c the rest) */
    assert_true(nmine > 0 && nmine < HG_NELEMS(buf));
    for (i = 0; i < HG_NELEMS(buf); i++) {
        assert_false(hg_store_claim_lost(a, buf[i].r.id));
    }
    assert_int_equal(helper_sql(f, "SELECT count(*), count(DISTINCT"
                                " (job_id, fire_time)) FROM fire_claims"
                                " WHERE instance = $$a$$", out,
                                sizeof(out)), 0);
    assert_string_equal(out, "30|30");
    /* No transaction holds both a claim a prefers and one it deferred,
     * and the ones it prefers were committed first. */
    snprintf(sql, sizeof(sql), "WITH c AS (SELECT xmin::text::bigint x,"
             " fire_time IN (%s) p FROM fire_claims), t AS (SELECT x,"
             " count(*) FILTER (WHERE p) m, count(*) FILTER (WHERE NOT p) o"
             " FROM c GROUP BY x) SELECT count(*) FILTER (WHERE m > 0 AND"
             " o > 0), count(*) FILTER (WHERE m = 0), bool_and(m = 0 OR x <"
             " (SELECT min(x) FROM c WHERE NOT p)) FROM t", mine);
    assert_int_equal(helper_sql(f, sql, out, sizeof(out)), 0);
    assert_string_equal(out, "0|1|t");
    hg_store_close(a);
}

static void
test_claim_fire(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f);
    hg_exec_row_t *rows;
    uint64_t t1 = 0, t2 = 0, t3 = 0;
    size_t n;

    assert_int_equal(hg_store_claim_fire(store, "a", 1000, &t1), HG_OK);
    assert_int_equal(hg_store_claim_fire(store, "a", 1000, &t2), HG_AGAIN);
    assert_int_equal(hg_store_claim_fire(store, "a", 2000, &t3), HG_OK);
    assert_true(t3 > t1);
    hg_store_close(store);
    store = open_store(f);
    assert_int_equal(hg_store_claim_fire(store, "a", 1000, &t2), HG_AGAIN);
    /* leases are not built yet: said, not pretended */
    errno = 0;
    assert_int_equal(hg_store_take_queued(store, 0, 1000, 0, &rows, &n),
                     HG_ERROR);
    assert_int_equal(errno, ENOSYS);
    hg_store_close(store);
}

/* `hourglass -t`: the url's syntax only; no server is asked. */
static void
test_check(void **state)
{
    fixture_t *f = *state;
    hg_conf_t conf = f->conf;
    char err[512];

    conf.store.url = "postgresql://nobody@192.0.2.1:5432/x";
    assert_int_equal(hg_store_check(&conf, err, sizeof(err)), HG_OK);
    conf.store.url = "postgresql://h/db?nosuchparam=1";
    assert_int_equal(hg_store_check(&conf, err, sizeof(err)), HG_ERROR);
    assert_non_null(strstr(err, "store.url: "));
    assert_non_null(strstr(err, "nosuchparam"));
    conf.store.url = NULL;
    assert_int_equal(hg_store_check(&conf, err, sizeof(err)), HG_ERROR);
    assert_non_null(strstr(err, "store.url: not set"));
}

/* The server stops under the store: writes fail (one line), records wait
 * in memory, and arrive once it is back (one line). */
static void
test_outage(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f);
    hg_exec_row_t row;
    rec_t b;
    int i;

    put(store, rec(&b, "o", 0, HG_EXEC_SUCCEEDED, 5));
    sync_store(store);

    server_command(f, "pause");
    for (i = 1; i <= 50; i++) {
        put(store, rec(&b, "o", i, HG_EXEC_SUCCEEDED, 5));
    }
    /* several retries fail meanwhile: none is acknowledged */
    assert_false(committed_within(store, 1500));
    assert_true(store->failing);
    server_command(f, "resume");
    sync_store(store);
    assert_false(store->failing);

    assert_int_equal(hg_store_get_execution(store, "o-000050", &row), HG_OK);
    assert_int_equal(row.r.status, HG_EXEC_SUCCEEDED);
    hg_exec_row_free(&row);
    hg_store_close(store);
    assert_int_equal(log_count(f, "store: cannot write postgresql://"), 1);
    assert_int_equal(log_count(f, "again after"), 1);
    assert_int_equal(log_count(f, "50 records kept in memory are "
                                  "committed"), 1);
}

#if HG_HAVE_POSTGRES
/* The reads of the admin API and of recovery, their answer as text. */
static int
pg_reads(hg_store_t *store, char *out, size_t len)
{
    hg_exec_row_t row, *rows = NULL;
    hg_job_stats_t st;
    json_t *states = NULL, *jobs = NULL;
    size_t count = 0, unfinished = 0;
    uint64_t n = 0;
    bool pending = false;
    char *s1 = NULL, *s2 = NULL;
    int rc;

    memset(&row, 0, sizeof(row));
    rc = hg_store_get_execution(store, "pgf-000001", &row);
    if (rc == HG_OK) {
        rc = hg_store_job_stats(store, "pgf", &st);
    }
    if (rc == HG_OK) {
        rc = hg_store_list_executions(store, "pgf", NULL, 5, 0, &rows,
                                      &count);
    }
    if (rc == HG_OK) {
        hg_exec_rows_free(rows, count);
        rc = hg_store_count_executions(store, "pgf", "succeeded", &n);
    }
    if (rc == HG_OK) {
        rc = hg_store_load_unfinished(store, &rows, &unfinished);
    }
    if (rc == HG_OK) {
        hg_exec_rows_free(rows, unfinished);
        rc = hg_store_load_job_states(store, &states);
    }
    if (rc == HG_OK) {
        rc = hg_store_unique_key_pending(store, "pgf-key", &pending);
    }
    if (rc == HG_OK) {
        rc = hg_store_load_jobs(store, &jobs);
    }
    if (rc == HG_OK) {
        s1 = json_dumps(states, JSON_COMPACT | JSON_SORT_KEYS);
        s2 = json_dumps(jobs, JSON_COMPACT | JSON_SORT_KEYS);
        snprintf(out, len, "%s %d %" PRId64 " %" PRIu64 " %" PRIu64 " %zu "
                 "%zu %d %s %s", row.r.id, (int) row.r.status,
                 row.r.duration_ms, st.runs, n, count, unfinished,
                 (int) pending, s1 ? s1 : "-", s2 ? s2 : "-");
    }
    free(s1);
    free(s2);
    json_decref(states);
    json_decref(jobs);
    if (row.r.id != NULL) {
        hg_exec_row_free(&row);
    }
    return rc;
}

/*
 * Each libpq call that sends a statement refused in turn, once, by the
 * server as fault_pg.h makes it (every thread's calls counted): writes
 * of records and a job state are retried until they commit, none lost
 * and none counted twice; an API job's write (the caller's to retry) and
 * the reads fail with HG_ERROR or do as they would without the fault.
 */
/* The write side of test_call_faults on STORE, for runs of JOB (their
 * records, the job's state, an API job); *FAILED_JOBS counts the API
 * job's refused writes. Returns how many rounds it took. */
static unsigned long
pg_write_faults(hg_store_t *store, const char *job,
                unsigned long *failed_jobs)
{
    unsigned long n, writes = 0;
    hg_job_stats_t st;
    hg_exec_row_t row;
    json_t *record;
    char id[48];
    rec_t b;
    bool fired;
    int rc;

    record = json_pack("{s:{s:s, s:s}, s:s, s:I, s:I}", "definition", "id",
                       "pj", "every", "1m", "created_by", "ops",
                       "created_at", (json_int_t) 1000, "updated_at",
                       (json_int_t) 2000);
    assert_non_null(record);
    for (n = 1; n < 10000; n += fault_step()) {
        fault_pg_arm(n);
        put(store, rec(&b, job, (int) n, HG_EXEC_RUNNING, 0));
        put(store, rec(&b, job, (int) n, HG_EXEC_SUCCEEDED, 7));
        assert_int_equal(hg_store_put_job_state(store, job,
                                                1800000000000LL
                                                + (int64_t) n, false),
                         HG_OK);
        sync_store(store);
        /* an API job's write is the caller's to retry: refused or done */
        rc = hg_store_put_job(store, "pj", record);
        fired = fault_pg_disarm();
        assert_true(rc == HG_OK || (rc == HG_ERROR && fired));
        *failed_jobs += rc != HG_OK;
        writes++;
        snprintf(id, sizeof(id), "%s-%06lu", job, n);
        assert_int_equal(hg_store_get_execution(store, id, &row), HG_OK);
        assert_int_equal(row.r.status, HG_EXEC_SUCCEEDED);
        assert_int_equal(row.r.duration_ms, 7);
        hg_exec_row_free(&row);
        if (!fired) {
            break;
        }
    }
    json_decref(record);
    /* every run counted once, however often its batch was retried */
    assert_int_equal(hg_store_job_stats(store, job, &st), HG_OK);
    assert_int_equal(st.runs, writes);
    assert_int_equal(st.successes, writes);
    return writes;
}

/*
 * Each libpq call that sends a statement refused in turn, once, by the
 * server as fault_pg.h makes it (every thread's calls counted), alone and
 * as an instance of a cluster (claims, leases): writes of records and a
 * job state are retried until they commit, none lost and none counted
 * twice; an API job's write (the caller's to retry) and the reads fail
 * with HG_ERROR or do as they would without the fault.
 */
static void
test_call_faults(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f);
    unsigned long n, writes, cluster_writes, failed_reads = 0;
    unsigned long failed_jobs = 0;
    char want[4096], got[4096];
    bool fired;
    int rc;

    writes = pg_write_faults(store, "pgf", &failed_jobs);
    assert_int_equal(pg_reads(store, want, sizeof(want)), HG_OK);
    for (n = 1; n < 10000; n += fault_step()) {
        fault_pg_arm(n);
        rc = pg_reads(store, got, sizeof(got));
        fired = fault_pg_disarm();
        if (rc != HG_OK) {
            assert_int_equal(rc, HG_ERROR);
            assert_true(fired);
            failed_reads++;
        } else if (strcmp(got, want) != 0) {
            fail_msg("reads, call %lu failed: another answer:\n%s\n%s", n,
                     got, want);
        }
        if (!fired) {
            break;
        }
    }
    hg_store_close(store);

    store = open_instance(f, "c1", 600);
    cluster_writes = pg_write_faults(store, "pgc", &failed_jobs);
    hg_store_close(store);
    print_message("writes retried through %lu refusals alone, %lu in a "
                  "cluster (an API job's refused %lu times); reads failed "
                  "by %lu\n", writes - 1, cluster_writes - 1, failed_jobs,
                  failed_reads);
    assert_true(writes > 1 && cluster_writes > 1 && failed_jobs > 0
                && failed_reads > 0);
}
#endif

/* The server for the whole run, or why there is none. */
static bool
server_start(server_t *s, const char **why)
{
    char line[512], *space;

    *why = "built without libpq";
    if (!HG_HAVE_POSTGRES) {
        return false;
    }
    *why = "python3 " PG_HELPER " start failed (run from the source tree)";
    if (access(PG_HELPER, R_OK) != 0
        || helper("start", line, sizeof(line)) != 0
        || (space = strchr(line, ' ')) == NULL)
    {
        return false;
    }
    snprintf(s->dir, sizeof(s->dir), "%s", space + 1);
    s->up = true;
    return true;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_and_reads, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_api_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_fire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_leases, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cluster_shared, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cluster_prefer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outage, setup, teardown),
#if HG_HAVE_POSTGRES
        cmocka_unit_test_setup_teardown(test_call_faults, setup, teardown),
#endif
    };
    const char *why;

    if (!server_start(&the_server, &why)) {
        /* CI installs libpq-dev and postgresql: missing there is a
         * failure, not a skip. */
        fprintf(stderr, "test_store_pg: no PostgreSQL (%s; apt-get install "
                "libpq-dev postgresql): %s\n", why,
                getenv("CI") != NULL ? "FAILED (CI must run these tests)"
                                     : "skipped");
        return getenv("CI") != NULL ? 1 : 0;
    }
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
