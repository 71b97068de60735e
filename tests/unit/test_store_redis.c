/*
 * Unit tests for the redis store driver (core/hg_store_redis.c beside
 * core/hg_store_sqlite.c) against a real redis-server that the test
 * starts itself (a Unix socket in a temporary directory, no TCP): a fire
 * time claimed by one instance is lost by another and its record is not
 * written; a fire claimed again by its own instance (a restart) is won;
 * the leader is elected, handed over at a clean stop, and shown in the
 * picture of the cluster; a second process under the same name fences
 * the first; while Redis is away nothing is claimed, one line says so,
 * and the records arrive when it is back; -t's check names bad URLs.
 *
 * Without redis-server (or hiredis at build time) the tests skip, or fail
 * when the environment has CI set: CI installs both.
 */

#include "hg_core.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "hg_log.h"
#include "hg_store.h"

#include "store_helpers.h"
#if HG_HAVE_REDIS
#include "fault_redis.h"
#endif

typedef struct server_s {
    pid_t pid;
    char dir[64];
    char sock[512];
    char url[600];
} server_t;

typedef struct fixture_s {
    char dir[64];
    char log[128];
    char db[2][128];
    hg_conf_t conf;
} fixture_t;

static server_t the_server;

/* --- the server ---------------------------------------------------------- */

static bool
server_answers(const server_t *s)
{
    char cmd[700];

    snprintf(cmd, sizeof(cmd), "redis-cli -s %s PING 2>/dev/null | "
             "grep -q PONG", s->sock);
    return system(cmd) == 0;
}

static bool
server_start(server_t *s)
{
    int64_t deadline;

    s->pid = fork();
    if (s->pid < 0) {
        return false;
    }
    if (s->pid == 0) {
        int fd = open("/dev/null", O_WRONLY);

        if (fd >= 0) {
            (void) dup2(fd, STDOUT_FILENO);
            (void) dup2(fd, STDERR_FILENO);
        }
        execlp("redis-server", "redis-server", "--port", "0",
               "--unixsocket", s->sock, "--dir", s->dir, "--save", "",
               "--appendonly", "no", (char *) NULL);
        _exit(127);
    }
    deadline = mono_ms() + 20000;
    while (!server_answers(s)) {
        int status;

        if (waitpid(s->pid, &status, WNOHANG) == s->pid
            || mono_ms() > deadline)
        {
            s->pid = 0;
            return false;
        }
        usleep(20000);
    }
    return true;
}

static void
server_stop(server_t *s)
{
    if (s->pid > 0) {
        (void) kill(s->pid, SIGTERM);
        (void) waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

static int
group_teardown(void **state)
{
    char cmd[128];

    HG_UNUSED(state);
    server_stop(&the_server);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", the_server.dir);
    return system(cmd) == 0 ? 0 : 1;
}

/* --- fixture ------------------------------------------------------------- */

static int
setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char cmd[700];

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/hg_test_redis.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->log, sizeof(f->log), "%s/store.log", f->dir);
    snprintf(f->db[0], sizeof(f->db[0]), "%s/a.db", f->dir);
    snprintf(f->db[1], sizeof(f->db[1]), "%s/b.db", f->dir);
    f->conf.store.driver = "redis";
    f->conf.store.url = the_server.url;
    f->conf.store.retention_ms = 30LL * 86400000;
    f->conf.store.claim_ttl_ms = 600 * 1000;
    f->conf.cluster.enabled = true;
    f->conf.cluster.lease_ms = 900;     /* a tick every 300 ms */
    assert_int_equal(hg_log_open(f->log, HG_LOG_DEBUG, HG_LOG_FORMAT_TEXT),
                     HG_OK);
    /* every test starts from an empty Redis */
    snprintf(cmd, sizeof(cmd), "redis-cli -s %s FLUSHALL >/dev/null",
             the_server.sock);
    assert_int_equal(system(cmd), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];

    hg_log_close();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static size_t
log_count(fixture_t *f, const char *needle)
{
    return log_lines_with(f->log, needle);
}

/* Instance NAME with its own file DB. */
static hg_store_t *
open_instance(fixture_t *f, const char *name, const char *db)
{
    char what[160];

    f->conf.cluster.instance = (char *) name;
    f->conf.store.path = (char *) db;
    snprintf(what, sizeof(what), "instance %s", name);
    return open_server_store(&f->conf, what);
}

/* A queued record of job "job" at FIRE claiming its fire time. */
static hg_exec_record_t
claiming(char *id, size_t len, int i, int64_t fire)
{
    hg_exec_record_t r;

    memset(&r, 0, sizeof(r));
    snprintf(id, len, "exec-%06d", i);
    r.id = id;
    r.run_id = id;
    r.job_id = "job";
    r.status = HG_EXEC_QUEUED;
    r.attempt = 1;
    r.trigger = "schedule";
    r.scheduled_for = fire;
    r.duration_ms = -1;
    r.exit_code = -1;
    r.max_rss_kb = -1;
    r.claim = true;
    return r;
}

/* Puts R and waits for its commit. */
static void
put_committed(hg_store_t *store, const hg_exec_record_t *r)
{
    uint64_t ticket;

    put(store, r);
    assert_int_equal(hg_store_barrier(store, &ticket), HG_OK);
    assert_true(wait_ticket(store, ticket, 10000));
}

static bool
recorded(hg_store_t *store, const char *id)
{
    hg_exec_row_t row;

    if (hg_store_get_execution(store, id, &row) != HG_OK) {
        return false;
    }
    hg_exec_row_free(&row);
    return true;
}

/* --- tests --------------------------------------------------------------- */

/* The history is the SQLite driver's: every field round trips. */
static void
test_roundtrip(void **state)
{
    fixture_t *f = *state;
    hg_store_t *a = open_instance(f, "a", f->db[0]);
    hg_exec_record_t r = store_full_record();
    hg_exec_row_t row;

    put(a, &r);
    sync_store(a);
    assert_int_equal(hg_store_get_execution(a, r.id, &row), HG_OK);
    assert_same_record(&r, &row.r);
    hg_exec_row_free(&row);
    hg_store_close(a);
}

static void
test_claims(void **state)
{
    fixture_t *f = *state;
    hg_store_t *a, *b;
    hg_exec_record_t r;
    char id[32];

    a = open_instance(f, "a", f->db[0]);
    b = open_instance(f, "b", f->db[1]);
    r = claiming(id, sizeof(id), 1, 1000);
    put_committed(a, &r);
    assert_false(hg_store_claim_lost(a, id));
    assert_true(recorded(a, id));

    /* b fires the same time: lost, and nothing written in b's file */
    r = claiming(id, sizeof(id), 2, 1000);
    put_committed(b, &r);
    assert_true(hg_store_claim_lost(b, id));
    assert_false(recorded(b, id));
    /* another fire time is b's */
    r = claiming(id, sizeof(id), 3, 2000);
    put_committed(b, &r);
    assert_false(hg_store_claim_lost(b, id));
    assert_true(recorded(b, id));
    hg_store_close(a);

    /* a restarted fires 1000 again (its record was not written before
     * the crash, say): its own claim, under an earlier term, is won */
    a = open_instance(f, "a", f->db[0]);
    r = claiming(id, sizeof(id), 4, 1000);
    put_committed(a, &r);
    assert_false(hg_store_claim_lost(a, id));
    hg_store_close(a);
    hg_store_close(b);
}

/* Each job's last start and success on any instance reach every
 * instance's picture (the leader's dead-man windows), highest kept. */
static void
test_last_times(void **state)
{
    fixture_t *f = *state;
    hg_store_t *a, *b;
    hg_exec_record_t r;
    json_t *view = NULL, *last;
    int64_t deadline;
    char id[32];

    a = open_instance(f, "a", f->db[0]);
    b = open_instance(f, "b", f->db[1]);
    r = claiming(id, sizeof(id), 1, 1000);
    r.claim = false;
    r.status = HG_EXEC_SUCCEEDED;
    r.started_at = 5000;
    r.finished_at = 6000;
    put_committed(a, &r);
    r = claiming(id, sizeof(id), 2, 2000);
    r.claim = false;
    r.status = HG_EXEC_FAILED;
    r.started_at = 7000;
    r.finished_at = 8000;
    put_committed(a, &r);
    r = claiming(id, sizeof(id), 3, 500);
    r.claim = false;
    r.status = HG_EXEC_SUCCEEDED;          /* older: changes nothing */
    r.started_at = 1000;
    r.finished_at = 2000;
    put_committed(a, &r);
    deadline = mono_ms() + 5000;
    for (;;) {
        settle(b, 50);
        json_decref(view);
        view = hg_store_cluster(b);
        last = json_object_get(json_object_get(view, "jobs"), "job");
        if ((last != NULL && json_integer_value(json_object_get(
                 last, "run_ms")) == 7000) || mono_ms() > deadline)
        {
            break;                  /* a tick after the last commit */
        }
    }
    assert_non_null(last);
    assert_int_equal(json_integer_value(json_object_get(last, "run_ms")),
                     7000);
    assert_int_equal(json_integer_value(json_object_get(last,
                                                        "success_ms")),
                     6000);
    json_decref(view);
    hg_store_close(a);
    hg_store_close(b);
}

static bool
leads(hg_store_t *store)
{
    json_t *view = hg_store_cluster(store);
    bool yes = view != NULL && json_is_true(json_object_get(view, "leader"));

    json_decref(view);
    return yes;
}

static void
test_leader(void **state)
{
    fixture_t *f = *state;
    hg_store_t *a, *b;
    json_t *view, *one;
    int64_t deadline;
    size_t i, live = 0;

    a = open_instance(f, "a", f->db[0]);
    b = open_instance(f, "b", f->db[1]);
    deadline = mono_ms() + 5000;
    while (!leads(a) && mono_ms() < deadline) {
        settle(a, 50);
    }
    assert_true(leads(a));
    settle(b, 200);
    assert_false(leads(b));
    view = hg_store_cluster(b);
    assert_string_equal(json_string_value(json_object_get(view,
                                                          "coordinator")),
                        "redis");
    json_array_foreach(json_object_get(view, "instances"), i, one) {
        live += json_is_true(json_object_get(one, "live"));
    }
    assert_int_equal(live, 2);
    json_decref(view);

    /* a stops cleanly: it gives the leadership back, b takes it at its
     * next tick (a third of the lease), not a lease later */
    hg_store_close(a);
    deadline = mono_ms() + 5000;
    while (!leads(b) && mono_ms() < deadline) {
        settle(b, 50);
    }
    assert_true(leads(b));
    settle(b, 50);                  /* the writer's line, logged at ack */
    assert_true(log_count(f, "instance \"b\" is the leader now") >= 1);
    hg_store_close(b);
}

static void
test_fencing(void **state)
{
    fixture_t *f = *state;
    hg_store_t *first, *second;
    char why[256] = "";
    int64_t deadline;

    first = open_instance(f, "a", f->db[0]);
    second = open_instance(f, "a", f->db[1]);
    deadline = mono_ms() + 5000;
    while (!hg_store_fenced(first, why, sizeof(why))
           && mono_ms() < deadline)
    {
        settle(first, 50);
    }
    assert_non_null(strstr(why, "another process joined as instance \"a\""));
    assert_false(hg_store_fenced(second, why, sizeof(why)));
    hg_store_close(first);
    hg_store_close(second);
}

static void
test_outage(void **state)
{
    fixture_t *f = *state;
    hg_store_t *a;
    hg_exec_record_t r;
    uint64_t ticket;
    char id[32];

    a = open_instance(f, "a", f->db[0]);
    server_stop(&the_server);
    r = claiming(id, sizeof(id), 1, 5000);
    put(a, &r);
    assert_int_equal(hg_store_barrier(a, &ticket), HG_OK);
    assert_false(wait_ticket(a, ticket, 800));     /* not claimed, waits */
    assert_false(recorded(a, id));
    assert_true(server_start(&the_server));
    assert_true(wait_ticket(a, ticket, 10000));
    assert_false(hg_store_claim_lost(a, id));
    assert_true(recorded(a, id));
    hg_store_close(a);
    assert_int_equal(log_count(f, "cannot write"), 1);
}

static void
test_check(void **state)
{
    fixture_t *f = *state;
    static const struct {
        const char *url, *says;
    } bad[] = {
        { "http://127.0.0.1:6379", "is not a Redis URL" },
        { "redis://:6379", "names no host" },
        { "redis://127.0.0.1:99999", "the port is not a number" },
        { "redis://127.0.0.1:6379/x", "the database is not a number" },
        { "unix://relative.sock", "needs an absolute path" },
        { "unix:///nonexistent/redis.sock", "cannot reach Redis" },
    };
    char err[512];
    size_t i;

    f->conf.store.path = f->db[0];
    for (i = 0; i < HG_NELEMS(bad); i++) {
        f->conf.store.url = (char *) bad[i].url;
        err[0] = '\0';
        assert_int_equal(hg_store_check(&f->conf, err, sizeof(err)),
                         HG_ERROR);
        if (strstr(err, bad[i].says) == NULL
            || strncmp(err, "store.url: ", 11) != 0)
        {
            fail_msg("%s: \"%s\" does not say \"%s\"", bad[i].url, err,
                     bad[i].says);
        }
    }
    f->conf.store.url = the_server.url;
    assert_int_equal(hg_store_check(&f->conf, err, sizeof(err)), HG_OK);
}

#if HG_HAVE_REDIS
/*
 * Each reply the store reads from Redis failed in turn, once (fault_redis.h:
 * a broken connection or an error reply, every thread's counted): a fire
 * claimed under it is still this instance's once the store is through
 * (never lost to a fault: no other instance claimed it), its record
 * written once; the records and the leader's picture carry on.
 */
static void
test_reply_faults(void **state)
{
    fixture_t *f = *state;
    hg_store_t *a = open_instance(f, "a", f->db[0]);
    unsigned long n, rounds = 0;
    hg_exec_record_t r;
    hg_job_stats_t st;
    char id[32];
    bool fired;

    for (n = 1; n < 10000; n += fault_step()) {
        int k;

        fault_redis_arm(n);
        /* three fires claimed, each run to its end */
        for (k = 0; k < 3; k++) {
            int i = (int) (3 * rounds) + k + 1;

            r = claiming(id, sizeof(id), i, 1000 * (int64_t) i);
            put_committed(a, &r);
            if (hg_store_claim_lost(a, id)) {
                fail_msg("reply %lu failed: the fire of %s lost", n, id);
            }
            r.status = HG_EXEC_SUCCEEDED;
            r.claim = false;
            r.started_at = r.scheduled_for + 1;
            r.finished_at = r.started_at + 5;
            r.duration_ms = 5;
            r.exit_code = 0;
            put_committed(a, &r);
            assert_true(recorded(a, id));
        }
        fired = fault_redis_disarm();
        rounds++;
        if (!fired) {
            break;
        }
    }
    assert_int_equal(hg_store_job_stats(a, "job", &st), HG_OK);
    assert_int_equal(st.runs, 3 * rounds);
    print_message("claims made through %lu failed replies\n", rounds - 1);
    assert_true(rounds > 1);
    hg_store_close(a);
}
#endif

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_times, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fencing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check, setup, teardown),
#if HG_HAVE_REDIS
        cmocka_unit_test_setup_teardown(test_reply_faults, setup, teardown),
#endif
    };
    server_t *s = &the_server;

#if !HG_HAVE_REDIS
    fprintf(stderr, "test_store_redis: built without hiredis: %s\n",
            getenv("CI") != NULL ? "FAILED (CI must run these tests)"
                                 : "skipped");
    return getenv("CI") != NULL ? 1 : 0;
#endif
    snprintf(s->dir, sizeof(s->dir), "/tmp/hg_test_redisd.XXXXXX");
    if (mkdtemp(s->dir) == NULL) {
        return 1;
    }
    snprintf(s->sock, sizeof(s->sock), "%.63s/redis.sock", s->dir);
    snprintf(s->url, sizeof(s->url), "unix://%.511s", s->sock);
    if (!server_start(s)) {
        fprintf(stderr, "test_store_redis: no redis-server (apt-get install "
                "redis-server): %s\n", getenv("CI") != NULL
                ? "FAILED (CI must run these tests)" : "skipped");
        (void) rmdir(s->dir);
        return getenv("CI") != NULL ? 1 : 0;
    }
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
