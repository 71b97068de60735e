/*
 * The master in-process: the C-level queue API (hg_master_enqueue) with
 * payloads, run_at, priorities and unique keys, through real workers
 * running the `echo` test module, and queued executions surviving a
 * restart through a real SQLite store. Then the pipelined start under
 * load (executions recorded `running` ahead of a worker, "primed"):
 * every execution recorded once, primed ones queued again by a graceful
 * shutdown, and recorded crashed and retried after a kill -9.
 *
 * Run from the repository root (make unit): modules are loaded from
 * modules/ and tests/modules/.
 */

#include "hg_core.h"

#include <setjmp.h>
#include <cmocka.h>
#include <limits.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "hg_cycle.h"
#include "hg_cycle_reader.h"
#include "hg_log.h"
#include "hg_master.h"
#include "hg_scheduler.h"
#include "hg_store.h"

#include <sqlite3.h>

#include "fault_alloc.h"

#define MAX_SEEN 64

typedef struct {
    char id[40];
    char job[64];
    char trigger[64];
    hg_exec_status_t status;
    char output[256];
    int64_t started_ms;
    char metrics[128];              /* the module's metrics, as JSON */
    int64_t scheduled_for_ms;
} seen_t;

typedef struct {
    char dir[PATH_MAX];
    char conf[PATH_MAX + 32];
    hg_master_t *master;
    hg_store_t *store;
    seen_t seen[MAX_SEEN];
    size_t nseen;
    uint64_t finished;              /* every execution observed */
    uint64_t succeeded;
    hg_store_options_t store_options;   /* zero: the defaults */
} fixture_t;

static void
observe(hg_master_t *m, const hg_master_result_t *r, void *data)
{
    fixture_t *f = data;
    seen_t *s;
    size_t len;

    HG_UNUSED(m);
    f->finished++;
    if (r->status == HG_EXEC_SUCCEEDED) {
        f->succeeded++;
    }
    if (f->nseen == MAX_SEEN) {
        return;
    }
    s = &f->seen[f->nseen++];
    snprintf(s->id, sizeof(s->id), "%s", r->exec->id);
    snprintf(s->job, sizeof(s->job), "%s", r->exec->job->id);
    snprintf(s->trigger, sizeof(s->trigger), "%s", r->exec->trigger);
    s->status = r->status;
    s->started_ms = r->started_ms;
    s->scheduled_for_ms = r->exec->scheduled_for_ms;
    len = r->output_len < sizeof(s->output) - 1 ? r->output_len
                                                : sizeof(s->output) - 1;
    if (r->output != NULL) {
        memcpy(s->output, r->output, len);
    }
    s->output[len] = '\0';
    if (r->metrics != NULL) {
        char *text = json_dumps(r->metrics, JSON_COMPACT | JSON_SORT_KEYS);
        assert_non_null(text);
        snprintf(s->metrics, sizeof(s->metrics), "%s", text);
        free(text);
    }
}

/* The configuration with JOBS (the inside of `jobs = ( ... );`). */
static void
write_conf_jobs(fixture_t *f, const char *driver, int workers,
                const char *jobs)
{
    char cwd[PATH_MAX];
    FILE *fp;

    assert_non_null(getcwd(cwd, sizeof(cwd)));
    snprintf(f->conf, sizeof(f->conf), "%s/scheduler.conf", f->dir);
    fp = fopen(f->conf, "w");
    assert_non_null(fp);
    fprintf(fp,
        "pid = \"%s/hg.pid\";\n"
        "workers = %d;\n"
        "log = { file = \"%s/hg.log\"; level = \"info\"; };\n"
        "modules = { path = \"%s/modules\"; load = [ \"system\", "
        "\"%s/tests/modules/echo.so\" ]; };\n"
        "store = { driver = \"%s\"; path = \"%s/hg.db\"; };\n"
        "jobs = (\n%s\n);\n", f->dir, workers, f->dir, cwd, cwd, driver,
        f->dir, jobs);
    assert_int_equal(fclose(fp), 0);
}

static void
write_conf(fixture_t *f, const char *driver, int workers)
{
    char jobs[PATH_MAX + 512];

    snprintf(jobs, sizeof(jobs),
        "  { id = \"echo\"; type = \"echo\"; overlap = \"allow\"; "
        "max_retries = 0; },\n"
        "  { id = \"busy\"; type = \"echo\"; sleep_ms = 400; "
        "overlap = \"allow\"; max_retries = 0; },\n"
        "  { id = \"started\"; type = \"echo\"; append = "
        "\"%s/started\"; overlap = \"allow\"; max_retries = 1; "
        "backoff = { initial = \"10ms\"; jitter = 0.0; }; }", f->dir);
    write_conf_jobs(f, driver, workers, jobs);
}

static void
start_master(fixture_t *f)
{
    hg_conf_errors_t errors;
    hg_cycle_t *cycle;
    json_t *api;
    char err[512];
    int i;

    memset(&errors, 0, sizeof(errors));
    cycle = hg_cycle_create(f->conf, f->dir, &errors);
    if (cycle == NULL) {
        hg_conf_errors_print(&errors, stderr);
    }
    assert_non_null(cycle);
    hg_conf_errors_free(&errors);
    assert_int_equal(hg_log_open(cycle->conf->log.file, HG_LOG_INFO,
                                 HG_LOG_FORMAT_TEXT), HG_OK);
    f->store = hg_store_open_with(cycle->conf, &f->store_options, err,
                                  sizeof(err));
    assert_non_null(f->store);
    /* as the daemon's start: the jobs defined through the API are read
     * with the file */
    assert_int_equal(hg_store_load_jobs(f->store, &api), HG_OK);
    if (json_object_size(api) > 0) {
        json_t *list = hg_store_job_definitions(api);

        hg_cycle_destroy(cycle);
        cycle = hg_cycle_create_with(f->conf, f->dir, list, &errors);
        if (cycle == NULL) {
            hg_conf_errors_print(&errors, stderr);
        }
        assert_non_null(cycle);
        json_decref(list);
    }
    json_decref(api);
    f->master = hg_master_create(cycle, f->conf, f->dir, f->store);
    assert_non_null(f->master);
    hg_master_observe(f->master, observe, f);
    /* Let the workers say they are ready. */
    for (i = 0; i < 50; i++) {
        hg_master_turn(f->master, 20);
    }
}

static void
stop_master(fixture_t *f)
{
    hg_master_destroy(f->master);
    f->master = NULL;
    hg_store_close(f->store);
    f->store = NULL;
    hg_log_close();
}

/* A test that gave up waiting shows what the daemon said, so that a
 * failure seen once (on a CI machine) explains itself. */
static void
dump_log(const fixture_t *f, size_t n)
{
    char path[PATH_MAX + 16], line[1024];
    FILE *fp;

    fprintf(stderr, "saw %zu of %zu executions in 10 s; the log:\n",
            f->nseen, n);
    snprintf(path, sizeof(path), "%s/hg.log", f->dir);
    fp = fopen(path, "r");
    if (fp == NULL) {
        return;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        fputs(line, stderr);
    }
    fclose(fp);
}

/* Whether the daemon's log says TEXT (what it buffered included). */
static bool
log_has(const fixture_t *f, const char *text)
{
    char path[PATH_MAX + 16], line[2048];
    bool found = false;
    FILE *fp;

    hg_log_flush();
    snprintf(path, sizeof(path), "%s/hg.log", f->dir);
    fp = fopen(path, "r");
    while (fp != NULL && !found && fgets(line, sizeof(line), fp) != NULL) {
        found = strstr(line, text) != NULL;
    }
    if (fp != NULL) {
        fclose(fp);
    }
    return found;
}

/* Turn the loop until N executions were seen, or 10 s passed. */
static void
run_until(fixture_t *f, size_t n)
{
    int64_t deadline = hg_clock_ns(CLOCK_MONOTONIC) + 10 * HG_NSEC_PER_SEC;

    while (f->nseen < n && hg_clock_ns(CLOCK_MONOTONIC) < deadline) {
        hg_master_turn(f->master, 50);
    }
    if (f->nseen < n) {
        dump_log(f, n);
    }
    assert_true(f->nseen >= n);
}

static int
setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/hg_test_master.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[PATH_MAX + 16];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", f->dir);
    }
    free(f);
    return 0;
}

static void
test_payload_reaches_the_module(void **state)
{
    fixture_t *f = *state;
    hg_execution_t *e;
    char id[40];

    write_conf(f, "memory", 2);
    start_master(f);
    e = hg_master_enqueue(f->master, "echo", "queue", "hello payload", 13,
                          0, HG_PRIORITY_NORMAL, NULL);
    assert_non_null(e);
    snprintf(id, sizeof(id), "%s", e->id);
    run_until(f, 1);
    assert_string_equal(f->seen[0].id, id);
    assert_int_equal(f->seen[0].status, HG_EXEC_SUCCEEDED);
    assert_string_equal(f->seen[0].output, "hello payload");
    assert_string_equal(f->seen[0].trigger, "queue");
    stop_master(f);
}

static void
test_unknown_job(void **state)
{
    fixture_t *f = *state;

    write_conf(f, "memory", 1);
    start_master(f);
    errno = 0;
    assert_null(hg_master_enqueue(f->master, "nope", "queue", NULL, 0, 0,
                                  HG_PRIORITY_NORMAL, NULL));
    assert_int_equal(errno, ENOENT);
    stop_master(f);
}

static void
test_unique_key_refused_while_queued(void **state)
{
    fixture_t *f = *state;
    int64_t soon;

    write_conf(f, "memory", 1);
    start_master(f);
    soon = hg_clock_ns(CLOCK_REALTIME) / HG_NSEC_PER_MSEC + 300;
    assert_non_null(hg_master_enqueue(f->master, "echo", "queue", "a", 1,
                                      soon, HG_PRIORITY_NORMAL, "k1"));
    errno = 0;
    assert_null(hg_master_enqueue(f->master, "echo", "queue", "b", 1, 0,
                                  HG_PRIORITY_NORMAL, "k1"));
    assert_int_equal(errno, EEXIST);
    /* Another key is fine. */
    assert_non_null(hg_master_enqueue(f->master, "echo", "queue", "c", 1,
                                      0, HG_PRIORITY_NORMAL, "k2"));
    run_until(f, 2);
    /* Once k1's execution has run, the key is free again. */
    assert_non_null(hg_master_enqueue(f->master, "echo", "queue", "d", 1,
                                      0, HG_PRIORITY_NORMAL, "k1"));
    run_until(f, 3);
    stop_master(f);
}

static void
test_run_at_is_respected(void **state)
{
    fixture_t *f = *state;
    int64_t now;

    write_conf(f, "memory", 1);
    start_master(f);
    now = hg_clock_ns(CLOCK_REALTIME) / HG_NSEC_PER_MSEC;
    assert_non_null(hg_master_enqueue(f->master, "echo", "queue", "x", 1,
                                      now + 400, HG_PRIORITY_NORMAL, NULL));
    run_until(f, 1);
    assert_true(f->seen[0].started_ms >= now + 400);
    stop_master(f);
}

static void
test_priority_orders_the_queue(void **state)
{
    fixture_t *f = *state;

    write_conf(f, "memory", 1);
    start_master(f);
    /* The only worker is busy for 400 ms; three wait meanwhile. */
    assert_non_null(hg_master_enqueue(f->master, "busy", "queue", NULL, 0,
                                      0, HG_PRIORITY_NORMAL, NULL));
    hg_master_turn(f->master, 10);
    assert_non_null(hg_master_enqueue(f->master, "echo", "queue", "low", 3,
                                      0, HG_PRIORITY_LOW, NULL));
    assert_non_null(hg_master_enqueue(f->master, "echo", "queue", "crit",
                                      4, 0, HG_PRIORITY_CRITICAL, NULL));
    assert_non_null(hg_master_enqueue(f->master, "echo", "queue", "norm",
                                      4, 0, HG_PRIORITY_NORMAL, NULL));
    run_until(f, 4);
    assert_string_equal(f->seen[0].job, "busy");
    assert_string_equal(f->seen[1].output, "crit");
    assert_string_equal(f->seen[2].output, "norm");
    assert_string_equal(f->seen[3].output, "low");
    stop_master(f);
}

static void
test_queued_survives_restart(void **state)
{
    fixture_t *f = *state;
    int64_t later;
    hg_execution_t *e;
    char id[40];

    write_conf(f, "sqlite", 1);
    start_master(f);
    /* Far enough ahead that the restart (about 1 s) happens before. */
    later = hg_clock_ns(CLOCK_REALTIME) / HG_NSEC_PER_MSEC + 4000;
    e = hg_master_enqueue(f->master, "echo", "queue", "kept", 4, later,
                          HG_PRIORITY_HIGH, "once");
    assert_non_null(e);
    snprintf(id, sizeof(id), "%s", e->id);
    /* Let the store commit, then stop before run_at. */
    hg_master_turn(f->master, 100);
    stop_master(f);
    assert_int_equal(f->nseen, 0);

    start_master(f);
    /* Recovered with its key: a second enqueue is refused. */
    errno = 0;
    assert_null(hg_master_enqueue(f->master, "echo", "queue", "dup", 3, 0,
                                  HG_PRIORITY_NORMAL, "once"));
    assert_int_equal(errno, EEXIST);
    run_until(f, 1);
    assert_string_equal(f->seen[0].id, id);
    assert_string_equal(f->seen[0].output, "kept");
    assert_true(f->seen[0].started_ms >= later);
    stop_master(f);
}

/* --- pipelined starts ---------------------------------------------------- */

#define PUMP_WINDOW  500
#define HG_PRIME_MAX_TEST  1024     /* hg_dispatch.c's HG_PRIME_MAX */

/* Trigger executions of JOB, keeping up to PUMP_WINDOW waiting, until
 * TOTAL have finished (or, with until_primed, until some are primed and
 * COMMITTED of them are committed). Returns the most executions seen
 * primed at once. */
static size_t
pump(fixture_t *f, const char *job, uint64_t total, bool until_primed)
{
    hg_master_t *m = f->master;
    uint64_t triggered = 0, base = f->finished;
    int64_t deadline = hg_clock_ns(CLOCK_MONOTONIC) + 120 * HG_NSEC_PER_SEC;
    size_t most = 0;

    while (f->finished - base < total
           && hg_clock_ns(CLOCK_MONOTONIC) < deadline)
    {
        while (triggered < total
               && triggered - (f->finished - base) < PUMP_WINDOW)
        {
            assert_non_null(hg_master_trigger(m, job, "manual", NULL, 0,
                                              HG_PRIORITY_NORMAL));
            triggered++;
        }
        hg_master_turn(m, 100);
        if (m->primed.count > most) {
            most = m->primed.count;
        }
        if (until_primed && m->primed.head != NULL
            && m->primed.head->ticket <= m->acked)
        {
            break;
        }
    }
    return most;
}

/* Turn the loop until the store has committed everything put so far. */
static void
settle(fixture_t *f)
{
    int64_t deadline = hg_clock_ns(CLOCK_MONOTONIC) + 10 * HG_NSEC_PER_SEC;
    uint64_t ticket;

    assert_int_equal(hg_store_barrier(f->store, &ticket), HG_OK);
    while (f->master->acked < ticket
           && hg_clock_ns(CLOCK_MONOTONIC) < deadline)
    {
        hg_master_turn(f->master, 50);
    }
    assert_true(f->master->acked >= ticket);
}

/* Turn the loop until no execution is left (recovered ones, retries),
 * then until the store has committed their records. */
static void
drain(fixture_t *f)
{
    int64_t deadline = hg_clock_ns(CLOCK_MONOTONIC) + 60 * HG_NSEC_PER_SEC;

    while (f->master->executions.count > 0
           && hg_clock_ns(CLOCK_MONOTONIC) < deadline)
    {
        hg_master_turn(f->master, 50);
    }
    assert_int_equal(f->master->executions.count, 0);
    settle(f);
}

static void
assert_nothing_unfinished(hg_store_t *store)
{
    hg_exec_row_t *rows = NULL;
    size_t n = 0, i;

    assert_int_equal(hg_store_load_unfinished(store, &rows, &n), HG_OK);
    for (i = 0; i < n; i++) {
        fprintf(stderr, "unfinished: %s %s attempt %u\n", rows[i].r.id,
                hg_exec_status_name(rows[i].r.status), rows[i].r.attempt);
    }
    hg_exec_rows_free(rows, n);
    assert_int_equal(n, 0);
}

/* A fire whose running record the store committed ahead of its job's
 * state (a start's record goes before the records nobody waits for):
 * after a crash, the run is retried by policy, and its fire time is not
 * taken for missed and run a second time. */
static void
test_recovered_fire_is_not_missed(void **state)
{
    fixture_t *f = *state;
    int64_t period = 3600 * 1000, due;
    hg_exec_record_t r;
    char err[256];
    size_t i, succeeded = 0;

    write_conf_jobs(f, "sqlite", 1,
                    "  { id = \"hourly\"; type = \"echo\"; every = \"1h\"; "
                    "misfire = \"run_once\"; max_retries = 1; "
                    "backoff = { initial = \"10ms\"; jitter = 0.0; }; }");
    start_master(f);
    stop_master(f);
    due = hg_clock_ns(CLOCK_REALTIME) / HG_NSEC_PER_MSEC - 10000;
    {
        hg_conf_errors_t errors;
        hg_cycle_t *cycle;

        memset(&errors, 0, sizeof(errors));
        cycle = hg_cycle_create(f->conf, f->dir, &errors);
        assert_non_null(cycle);
        f->store = hg_store_open(cycle->conf, err, sizeof(err));
        assert_non_null(f->store);
        memset(&r, 0, sizeof(r));
        r.id = "01a24f8b-0000-7000-8000-000000000001";
        r.run_id = r.id;
        r.job_id = "hourly";
        r.status = HG_EXEC_RUNNING;
        r.attempt = 1;
        r.trigger = "schedule";
        r.scheduled_for = due;
        r.started_at = due + 1;
        r.duration_ms = -1;
        r.exit_code = -1;
        r.max_rss_kb = -1;
        r.priority = HG_PRIORITY_NORMAL;
        assert_int_equal(hg_store_put_execution(f->store, &r), HG_OK);
        /* the state behind it, not committed: the fire before */
        assert_int_equal(hg_store_put_job_state(f->store, "hourly",
                                                due - period, false), HG_OK);
        hg_store_close(f->store);
        f->store = NULL;
        hg_cycle_destroy(cycle);
    }

    start_master(f);
    drain(f);
    for (i = 0; i < f->nseen; i++) {
        assert_string_not_equal(f->seen[i].trigger, "misfire");
        succeeded += f->seen[i].status == HG_EXEC_SUCCEEDED;
    }
    assert_int_equal(succeeded, 1);     /* the retry, once */
    stop_master(f);
}

static void
test_pipelined_starts_recorded_once(void **state)
{
    fixture_t *f = *state;
    hg_job_stats_t stats;
    size_t most;

    write_conf(f, "sqlite", 2);
    start_master(f);
    most = pump(f, "echo", 4000, false);
    settle(f);
    /* Short executions through a durable store: the master recorded some
     * running ahead of a worker. */
    assert_true(most > 0);
    assert_int_equal(f->finished, 4000);
    assert_int_equal(f->succeeded, 4000);
    assert_int_equal(hg_store_job_stats(f->store, "echo", &stats), HG_OK);
    assert_int_equal(stats.runs, 4000);
    assert_int_equal(stats.successes, 4000);
    assert_nothing_unfinished(f->store);
    assert_int_equal(f->master->primed.count, 0);
    assert_int_equal(f->master->committing.count, 0);
    stop_master(f);
}

/* A graceful shutdown puts primed executions back to queued: the next
 * start runs each of them once, as its first attempt. */
static void
test_quit_requeues_primed(void **state)
{
    fixture_t *f = *state;
    char ids[HG_PRIME_MAX_TEST][40];
    hg_exec_row_t row;
    hg_job_stats_t stats;
    hg_execution_t *e;
    size_t nids = 0, i, left;
    uint64_t first;
    int64_t deadline;

    write_conf(f, "sqlite", 2);
    start_master(f);
    assert_true(pump(f, "echo", 1000000, true) > 0);
    for (e = f->master->primed.head; e != NULL && nids < HG_PRIME_MAX_TEST;
         e = e->start.next)
    {
        snprintf(ids[nids++], sizeof(ids[0]), "%s", e->id);
    }
    assert_true(nids > 0);
    assert_int_equal(raise(SIGQUIT), 0);
    deadline = hg_clock_ns(CLOCK_MONOTONIC) + 10 * HG_NSEC_PER_SEC;
    while (!f->master->done && hg_clock_ns(CLOCK_MONOTONIC) < deadline) {
        hg_master_turn(f->master, 50);
    }
    assert_true(f->master->done);
    first = f->finished;
    stop_master(f);

    /* The next start runs what was left queued, primed ones included.
     * How many of the primed ones were still queued at the quit depends
     * on how fast their records committed and the workers took them. */
    f->nseen = 0;
    start_master(f);
    for (i = 0, left = 0; i < nids; i++) {
        memset(&row, 0, sizeof(row));
        assert_int_equal(hg_store_get_execution(f->store, ids[i], &row),
                         HG_OK);
        left += row.r.status != HG_EXEC_SUCCEEDED;
        hg_exec_row_free(&row);
    }
    drain(f);
    assert_true(f->finished >= first + left);
    for (i = 0; i < nids; i++) {
        memset(&row, 0, sizeof(row));
        assert_int_equal(hg_store_get_execution(f->store, ids[i], &row),
                         HG_OK);
        assert_int_equal(row.r.status, HG_EXEC_SUCCEEDED);
        assert_int_equal(row.r.attempt, 1);
        hg_exec_row_free(&row);
    }
    assert_int_equal(hg_store_job_stats(f->store, "echo", &stats), HG_OK);
    assert_int_equal(stats.runs, f->finished);
    assert_int_equal(stats.failures, 0);
    assert_nothing_unfinished(f->store);
    stop_master(f);
}

/* --- handing ahead ---------------------------------------------------- */

/* The jobs of the handing-ahead tests: echo (quick), two that sleep, and
 * the store's health check. */
static void
write_conf_ahead_busy(fixture_t *f, const char *driver, int workers,
                      int busy_ms)
{
    char jobs[1024];

    snprintf(jobs, sizeof(jobs),
        "  { id = \"echo\"; type = \"echo\"; overlap = \"allow\"; "
        "max_retries = 0; },\n"
        "  { id = \"busy\"; type = \"echo\"; sleep_ms = %d; "
        "overlap = \"allow\"; max_retries = 0; },\n"
        "  { id = \"health\"; type = \"system\"; task = \"health_check\"; "
        "overlap = \"allow\"; max_retries = 0; }", busy_ms);
    write_conf_jobs(f, driver, workers, jobs);
}

static void
write_conf_ahead(fixture_t *f, const char *driver, int workers)
{
    write_conf_ahead_busy(f, driver, workers, 400);
}

/* The job's last run counts as quick: the next one may be handed ahead
 * behind it (as after a short run). */
static void
pretend_quick(fixture_t *f, const char *job)
{
    hg_job_t *j = hg_map_get(&f->master->jobs, job);

    assert_non_null(j);
    j->quick = true;
}

static hg_execution_t *
trigger(fixture_t *f, const char *job)
{
    hg_execution_t *e = hg_master_trigger(f->master, job, "manual", NULL,
                                          0, HG_PRIORITY_NORMAL);

    assert_non_null(e);
    return e;
}

/* The worker that holds an execution handed ahead, or NULL. */
static hg_worker_t *
holder(fixture_t *f)
{
    hg_worker_t *w;

    for (w = f->master->pool.head; w != NULL; w = w->next) {
        if (w->handed != NULL) {
            return w;
        }
    }
    return NULL;
}

/* How many times execution ID was seen ending; *INDEX the last. */
static size_t
count_seen(fixture_t *f, const char *id, size_t *index)
{
    size_t i, found = 0;

    for (i = 0; i < f->nseen; i++) {
        if (strcmp(f->seen[i].id, id) == 0) {
            *index = i;
            found++;
        }
    }
    return found;
}

static const seen_t *
seen_of(fixture_t *f, const char *id)
{
    size_t i = 0;

    assert_int_equal(count_seen(f, id, &i), 1);  /* never run twice */
    return &f->seen[i];
}

/* Short executions with every worker busy: each next one is handed to a
 * worker ahead, and each is still recorded once, with no store and with
 * the durable one (where a handed frame waits for its record's commit). */
static void
test_handed_ahead_recorded_once(void **state)
{
    const char *drivers[] = { "memory", "sqlite" };
    fixture_t *f = *state;
    hg_job_stats_t stats;
    size_t i;

    for (i = 0; i < HG_NELEMS(drivers); i++) {
        f->finished = f->succeeded = 0;
        f->nseen = 0;
        write_conf_ahead(f, drivers[i], 2);
        start_master(f);
        pump(f, "echo", 3000, false);
        if (f->store->notify_fd >= 0) {
            settle(f);
        }
        assert_true(f->master->handed_total > 0);
        assert_int_equal(f->finished, 3000);
        assert_int_equal(f->succeeded, 3000);
        assert_int_equal(f->master->dispatched_total, 3000);
        assert_int_equal(hg_store_job_stats(f->store, "echo", &stats),
                         HG_OK);
        assert_int_equal(stats.runs, 3000);
        assert_int_equal(stats.successes, 3000);
        assert_nothing_unfinished(f->store);
        stop_master(f);
    }
}

/* Until every busy worker has read its frame out of its pipe. A worker
 * slow to get the CPU (two test binaries run at once) would otherwise
 * read the frame handed next in the same read as its own, and run it in
 * turn: nothing is left in the pipe to take back (a best effort, by
 * design), and the tests of taking back would fail for the scheduler's
 * sake. */
static void
wait_frames_read(fixture_t *f)
{
    int64_t deadline = hg_clock_ns(CLOCK_MONOTONIC) + 5 * HG_NSEC_PER_SEC;
    hg_worker_t *w;
    int unread, n;

    for (;;) {
        unread = 0;
        for (w = f->master->pool.head; w != NULL; w = w->next) {
            if (w->state == HG_WORKER_BUSY && w->back_fd >= 0) {
                assert_int_equal(ioctl(w->back_fd, FIONREAD, &n), 0);
                unread += n;
            }
        }
        if (unread == 0) {
            return;
        }
        assert_true(hg_clock_ns(CLOCK_MONOTONIC) < deadline);
        usleep(100);
    }
}

/* Both workers busy with BUSY_MS runs of a job that counts as quick, each
 * frame read, and an echo triggered behind them, handed ahead to one: its
 * id in ID. A handed execution goes only behind one that began less than
 * half a turn (TURN_MS) ago. */
static void
hand_echo_behind_busy(fixture_t *f, int64_t turn_ms, int busy_ms,
                      char id[40])
{
    write_conf_ahead_busy(f, "memory", 2, busy_ms);
    start_master(f);
    f->master->ahead_turn_ms = turn_ms;
    pretend_quick(f, "busy");
    trigger(f, "busy");
    trigger(f, "busy");
    wait_frames_read(f);
    snprintf(id, 40, "%s", trigger(f, "echo")->id);
    assert_non_null(holder(f));
    assert_int_equal(f->master->handed_total, 1);
}

/* Handed ahead behind an execution that runs long after all, an
 * execution is taken back and runs once, on the next worker free. */
static void
test_handed_ahead_taken_back(void **state)
{
    fixture_t *f = *state;
    char id[40];

    /* Ten turns before the busy runs end: the window in which it may be
     * handed (half a turn) holds the wait for the workers' reads. */
    hand_echo_behind_busy(f, 40, 400, id);
    run_until(f, 3);
    assert_int_equal(f->master->taken_back_total, 1);
    assert_int_equal(seen_of(f, id)->status, HG_EXEC_SUCCEEDED);
    assert_int_equal(f->finished, 3);
    assert_int_equal(f->master->dispatched_total, 3);
    stop_master(f);
}

/* A worker that dies while an execution is handed to it: that one never
 * started, and runs once elsewhere, as its first attempt. */
static void
test_worker_death_gives_back_handed(void **state)
{
    fixture_t *f = *state;
    char id[40];
    size_t i;

    /* A turn longer than the test: no take back, the death tells. */
    hand_echo_behind_busy(f, 60000, 400, id);
    assert_int_equal(kill(holder(f)->pid, SIGKILL), 0);
    run_until(f, 3);
    assert_int_equal(seen_of(f, id)->status, HG_EXEC_SUCCEEDED);
    assert_int_equal(f->master->taken_back_total, 0);
    for (i = 0; i < f->nseen; i++) {
        if (strcmp(f->seen[i].job, "busy") == 0
            && f->seen[i].status != HG_EXEC_SUCCEEDED)
        {
            break;
        }
    }
    assert_true(i < f->nseen);          /* the killed worker's own run */
    assert_int_equal(f->seen[i].status, HG_EXEC_CRASHED);
    stop_master(f);
}

/* A graceful shutdown does not start an execution handed ahead that its
 * worker has not read: it ends as the queued ones do. */
static void
test_quit_takes_back_handed(void **state)
{
    fixture_t *f = *state;
    char id[40];
    size_t i;
    int64_t deadline;

    /* Runs that outlast a slow start (a loaded machine under ASan): the
     * quit comes while the echo is still handed, not yet started. */
    hand_echo_behind_busy(f, 60000, 3000, id);
    assert_int_equal(raise(SIGQUIT), 0);
    deadline = hg_clock_ns(CLOCK_MONOTONIC) + 10 * HG_NSEC_PER_SEC;
    while (!f->master->done && hg_clock_ns(CLOCK_MONOTONIC) < deadline) {
        hg_master_turn(f->master, 50);
    }
    assert_true(f->master->done);
    assert_int_equal(f->master->taken_back_total, 1);
    assert_int_equal(f->master->dispatched_total, 2);
    /* Left queued in the store for the next start, not run. */
    assert_int_equal(count_seen(f, id, &i), 0);
    assert_int_equal(f->finished, 2);
    stop_master(f);
}

/* An execution handed ahead has its timeout from its own start: one that
 * hangs behind a quick one is killed at its timeout like any other. */
static void
test_handed_ahead_times_out(void **state)
{
    fixture_t *f = *state;
    char id[40];

    write_conf_jobs(f, "memory", 1,
        "  { id = \"echo\"; type = \"echo\"; sleep_ms = 100; "
        "max_retries = 0; },\n"
        "  { id = \"hang\"; type = \"echo\"; sleep_ms = 60000; "
        "timeout = \"300ms\"; max_retries = 0; }");
    start_master(f);
    f->master->ahead_turn_ms = 60000;    /* wait behind echo, however long */
    pretend_quick(f, "echo");
    trigger(f, "echo");
    snprintf(id, sizeof(id), "%s", trigger(f, "hang")->id);
    assert_int_equal(f->master->handed_total, 1);
    run_until(f, 2);
    assert_int_equal(seen_of(f, id)->status, HG_EXEC_TIMED_OUT);
    assert_string_equal(f->seen[0].job, "echo");
    stop_master(f);
}

/* A store task's answer and the next execution's frame on the same pipe:
 * the worker keeps the frame while it waits for the answer, then runs
 * it. */
static void
test_handed_ahead_during_store_task(void **state)
{
    fixture_t *f = *state;
    char ids[10][40];
    size_t i;

    write_conf_ahead(f, "sqlite", 1);
    start_master(f);
    pretend_quick(f, "health");
    for (i = 0; i < HG_NELEMS(ids); i++) {
        hg_execution_t *e = trigger(f, i % 2 == 0 ? "health" : "echo");
        snprintf(ids[i], sizeof(ids[i]), "%s", e->id);
        if (i % 2 == 0) {
            pretend_quick(f, "health");
        }
    }
    run_until(f, HG_NELEMS(ids));
    assert_true(f->master->handed_total > 0);
    for (i = 0; i < HG_NELEMS(ids); i++) {
        assert_int_equal(seen_of(f, ids[i])->status,
                         HG_EXEC_SUCCEEDED);
    }
    stop_master(f);
}

/* What a query's reply was given (hg_master_reply_pt). */
typedef struct reply_s {
    bool called;
    bool fired;                     /* an allocation was refused */
    int rc;
    json_t *answer;                 /* a copy */
} reply_t;

static void
on_reply(void *data, int rc, const json_t *answer)
{
    reply_t *r = data;

    r->called = true;
    r->rc = rc;
    r->answer = answer != NULL ? json_deep_copy(answer) : NULL;
}

/* Turn the loop until the reply came (a store with a thread answers
 * later, the memory store at once). */
static void
await_reply(fixture_t *f, reply_t *r)
{
    int64_t deadline = hg_clock_ns(CLOCK_MONOTONIC) + 10 * HG_NSEC_PER_SEC;

    while (!r->called && hg_clock_ns(CLOCK_MONOTONIC) < deadline) {
        hg_master_turn(f->master, 50);
    }
    assert_true(r->called);
}

static void
reply_reset(reply_t *r)
{
    json_decref(r->answer);
    memset(r, 0, sizeof(*r));
}

/* OBJ's KEY is the string WANT (cmocka names the line that fails). */
#define assert_json_str(obj, key, want) \
    assert_string_equal(json_string_value(json_object_get((obj), (key))), \
                        (want))

/* The dead-letter list through the master's commands, on both drivers:
 * listed, retried by hand (the next attempt of the same run, with its
 * payload; the dead record leaves the list as the failed attempt it
 * was), and purged one by one; unknown ids answer HG_AGAIN. */
static void
test_dead_retry_and_purge(void **state)
{
    static const char *const drivers[] = { "memory", "sqlite" };
    fixture_t *f = *state;
    reply_t r;
    hg_execution_t *e;
    char dead[40], next[40], run[40];
    json_t *list, *row;
    size_t i;

    memset(&r, 0, sizeof(r));
    for (i = 0; i < HG_NELEMS(drivers); i++) {
        f->nseen = 0;
        write_conf_jobs(f, drivers[i], 1,
            "  { id = \"bad\"; type = \"echo\"; exit = 1; max_retries = 0; }");
        start_master(f);
        e = hg_master_trigger(f->master, "bad", "manual", "pay", 3,
                              HG_PRIORITY_HIGH);
        assert_non_null(e);
        snprintf(dead, sizeof(dead), "%s", hg_execution_id(e));
        run_until(f, 1);
        assert_int_equal(seen_of(f, dead)->status, HG_EXEC_FAILED);
        if (f->store->notify_fd >= 0) {
            settle(f);
        }

        assert_int_equal(hg_master_dead(f->master, NULL, 10, 0, on_reply,
                                        &r), HG_OK);
        await_reply(f, &r);
        assert_int_equal(r.rc, HG_OK);
        list = json_object_get(r.answer, "executions");
        assert_int_equal(json_array_size(list), 1);
        row = json_array_get(list, 0);
        assert_json_str(row, "id", dead);
        assert_json_str(row, "status", "dead");
        snprintf(run, sizeof(run), "%s",
                 json_string_value(json_object_get(row, "run_id")));
        reply_reset(&r);

        assert_int_equal(hg_master_retry_dead(f->master, dead, NULL, 0,
                                              "api:ops", on_reply, &r),
                         HG_OK);
        await_reply(f, &r);
        assert_int_equal(r.rc, HG_OK);
        list = json_object_get(r.answer, "retried");
        assert_int_equal(json_array_size(list), 1);
        snprintf(next, sizeof(next), "%s", json_string_value(
                     json_object_get(json_array_get(list, 0), "execution")));
        reply_reset(&r);
        run_until(f, 2);
        assert_string_equal(f->seen[1].id, next);
        if (f->store->notify_fd >= 0) {
            settle(f);
        }

        /* The next attempt: same run, attempt 2, its payload; dead now. */
        assert_int_equal(hg_master_execution(f->master, next, on_reply, &r),
                         HG_OK);
        await_reply(f, &r);
        assert_int_equal(r.rc, HG_OK);
        assert_json_str(r.answer, "run_id", run);
        assert_int_equal(json_integer_value(json_object_get(r.answer,
                                                            "attempt")), 2);
        assert_json_str(r.answer, "triggered_by", "api:ops");
        assert_json_str(r.answer, "status", "dead");
        reply_reset(&r);
        /* The first attempt left the list as the failure it was. */
        assert_int_equal(hg_master_execution(f->master, dead, on_reply, &r),
                         HG_OK);
        await_reply(f, &r);
        assert_json_str(r.answer, "status", "failed");
        reply_reset(&r);
        /* Retrying it again: it is not dead. */
        assert_int_equal(hg_master_retry_dead(f->master, dead, NULL, 0,
                                              NULL, on_reply, &r), HG_OK);
        await_reply(f, &r);
        assert_int_equal(r.rc, HG_AGAIN);
        reply_reset(&r);

        assert_int_equal(hg_master_purge_dead(f->master, next, NULL, 0,
                                              on_reply, &r), HG_OK);
        await_reply(f, &r);
        assert_int_equal(r.rc, HG_OK);
        assert_int_equal(json_integer_value(json_object_get(r.answer,
                                                            "purged")), 1);
        reply_reset(&r);
        assert_int_equal(hg_master_purge_dead(f->master, next, NULL, 0,
                                              on_reply, &r), HG_OK);
        await_reply(f, &r);
        assert_int_equal(r.rc, HG_AGAIN);
        reply_reset(&r);
        assert_int_equal(hg_master_dead(f->master, "bad", 10, 0, on_reply,
                                        &r), HG_OK);
        await_reply(f, &r);
        assert_int_equal(json_array_size(json_object_get(r.answer,
                                                         "executions")), 0);
        reply_reset(&r);
        assert_int_equal(hg_master_execution(f->master, "no-such-id",
                                             on_reply, &r), HG_OK);
        await_reply(f, &r);
        assert_int_equal(r.rc, HG_AGAIN);
        reply_reset(&r);
        stop_master(f);
    }
}

/* Dead executions over a filter, on both drivers: a bulk retry takes
 * only the job named, a bulk purge only the job named; a job removed
 * from the configuration cannot be retried (it is said, and the record
 * stays dead). */
static void
test_dead_in_bulk(void **state)
{
    static const char *const drivers[] = { "memory", "sqlite" };
    fixture_t *f = *state;
    reply_t r;
    size_t i;

    memset(&r, 0, sizeof(r));
    for (i = 0; i < HG_NELEMS(drivers); i++) {
        f->nseen = 0;
        write_conf_jobs(f, drivers[i], 1,
            "  { id = \"a\"; type = \"echo\"; exit = 1; max_retries = 0; "
            "overlap = \"allow\"; },\n"
            "  { id = \"b\"; type = \"echo\"; exit = 1; max_retries = 0; }");
        start_master(f);
        trigger(f, "a");
        trigger(f, "a");
        trigger(f, "b");
        run_until(f, 3);
        if (f->store->notify_fd >= 0) {
            settle(f);
        }

        assert_int_equal(hg_master_retry_dead(f->master, NULL, "b", 0, NULL,
                                              on_reply, &r), HG_OK);
        await_reply(f, &r);
        assert_int_equal(r.rc, HG_OK);
        assert_int_equal(json_array_size(json_object_get(r.answer,
                                                         "retried")), 1);
        reply_reset(&r);
        run_until(f, 4);
        if (f->store->notify_fd >= 0) {
            settle(f);
        }
        assert_int_equal(hg_master_purge_dead(f->master, NULL, "a", 0,
                                              on_reply, &r), HG_OK);
        await_reply(f, &r);
        assert_int_equal(r.rc, HG_OK);
        assert_int_equal(json_integer_value(json_object_get(r.answer,
                                                            "purged")), 2);
        reply_reset(&r);
        /* b's second attempt is the one dead letter left. */
        assert_int_equal(hg_master_dead(f->master, NULL, 10, 0, on_reply,
                                        &r), HG_OK);
        await_reply(f, &r);
        assert_int_equal(json_array_size(json_object_get(r.answer,
                                                         "executions")), 1);
        assert_json_str(json_array_get(json_object_get(r.answer,
                                                       "executions"), 0),
                        "job_id", "b");
        reply_reset(&r);
        stop_master(f);

        /* b removed: its dead letter cannot be retried, and stays. */
        write_conf_jobs(f, drivers[i], 1,
            "  { id = \"a\"; type = \"echo\"; exit = 1; max_retries = 0; }");
        start_master(f);
        assert_int_equal(hg_master_retry_dead(f->master, NULL, NULL, 0, NULL,
                                              on_reply, &r), HG_OK);
        await_reply(f, &r);
        if (strcmp(drivers[i], "sqlite") == 0) {
            assert_int_equal(json_array_size(json_object_get(r.answer,
                                                             "retried")), 0);
            assert_json_str(json_array_get(json_object_get(r.answer,
                                                           "skipped"), 0),
                            "error", "its job no longer exists");
        }
        reply_reset(&r);
        stop_master(f);
    }
}

/* A job read through the master: its next five fire times and the
 * statistics the store keeps; an unknown job is HG_AGAIN at once. */
static void
test_job_query(void **state)
{
    fixture_t *f = *state;
    reply_t r;
    json_t *next, *stats;

    memset(&r, 0, sizeof(r));
    write_conf_jobs(f, "sqlite", 1,
        "  { id = \"nightly\"; type = \"echo\"; schedule = \"30 2 * * *\"; "
        "timezone = \"UTC\"; max_retries = 0; }");
    start_master(f);
    trigger(f, "nightly");
    run_until(f, 1);
    trigger(f, "nightly");
    run_until(f, 2);
    settle(f);
    assert_int_equal(hg_master_job(f->master, "nope", on_reply, &r),
                     HG_AGAIN);
    assert_false(r.called);
    assert_int_equal(hg_master_job(f->master, "nightly", on_reply, &r),
                     HG_OK);
    await_reply(f, &r);
    assert_int_equal(r.rc, HG_OK);
    assert_json_str(r.answer, "id", "nightly");
    next = json_object_get(r.answer, "next_fires");
    assert_int_equal(json_array_size(next), 5);
    assert_non_null(strstr(json_string_value(json_array_get(next, 0)),
                           "T02:30:00"));
    stats = json_object_get(r.answer, "stats");
    assert_int_equal(json_integer_value(json_object_get(stats, "runs")), 2);
    assert_int_equal(json_integer_value(json_object_get(stats,
                                                        "successes")), 2);
    assert_json_str(stats, "last_status", "succeeded");
    reply_reset(&r);
    stop_master(f);
}

/* --- out of memory ------------------------------------------------------ */

/* on_reply, counting stops first: the reply's copy is the test's. */
static void
on_reply_faulty(void *data, int rc, const json_t *answer)
{
    reply_t *r = data;

    r->fired = fault_alloc_disarm();
    on_reply(data, rc, answer);
}

/* Query Q (0 execution ID, 1 job ID, 2 dead list of ID, 3 purge of the
 * dead execution ID, 4 the job listing, 5 the executions of job ID),
 * with the Nth allocation of the master's thread refused from the call
 * to the reply (0: none). */
static int
query(fixture_t *f, int q, const char *id, unsigned long n, reply_t *r)
{
    int rc = HG_ERROR;

    reply_reset(r);
    if (n > 0) {
        fault_alloc_arm(n);
    }
    switch (q) {
    case 0:
        rc = hg_master_execution(f->master, id, on_reply_faulty, r);
        break;
    case 1:
        rc = hg_master_job(f->master, id, on_reply_faulty, r);
        break;
    case 2:
        rc = hg_master_dead(f->master, id, 10, 0, on_reply_faulty, r);
        break;
    case 3:
        rc = hg_master_purge_dead(f->master, id, NULL, 0, on_reply_faulty,
                                  r);
        break;
    case 4: {
        hg_job_filter_t filter = { NULL, NULL, NULL };

        rc = hg_master_jobs(f->master, &filter, 10, 0, on_reply_faulty, r);
        break;
    }
    case 5:
        rc = hg_master_executions(f->master, id, NULL, 0, 0, 10, 0,
                                  on_reply_faulty, r);
        break;
    }
    if (rc != HG_OK) {
        r->fired = fault_alloc_disarm();
        return rc;
    }
    await_reply(f, r);
    return rc;
}

/* The master's queries (memory store: the reads answer at once, so what
 * is refused is the master's side) with each allocation refused in turn,
 * from the call to the reply: the call refused (HG_ERROR, and no reply
 * ever comes), or the reply HG_ERROR without an answer, or the very
 * answer given without faults; one reply per query accepted, never
 * another answer; a purge refused before the store's side purged
 * nothing (one refused in its answer has purged). The execution's
 * output is not UTF-8: the answer keeps its characters and reads each
 * other byte as U+FFFD, with the byte count apart (hg_query_text). */
static void
test_queries_out_of_memory(void **state)
{
    static const char payload[] = "ok\x01 \xff\xfe\xc3\xa9 \0end";
    static const char shown[] = "ok\x01 \xef\xbf\xbd\xef\xbf\xbd\xc3\xa9 "
                                "\xef\xbf\xbd" "end";
    static const char *const names[] = {
        "execution", "job", "dead list", "purge", "jobs", "executions"
    };
    fixture_t *f = *state;
    hg_execution_t *e;
    char id[40], dead[40];
    json_t *want, *list;
    reply_t r;
    int q;

    memset(&r, 0, sizeof(r));
    write_conf_jobs(f, "memory", 1,
        "  { id = \"echo\"; type = \"echo\"; max_retries = 0; },\n"
        "  { id = \"bad\"; type = \"echo\"; exit = 1; max_retries = 0; }");
    start_master(f);
    e = hg_master_trigger(f->master, "echo", "manual", payload,
                          sizeof(payload) - 1, HG_PRIORITY_NORMAL);
    assert_non_null(e);
    snprintf(id, sizeof(id), "%s", hg_execution_id(e));
    e = trigger(f, "bad");
    snprintf(dead, sizeof(dead), "%s", hg_execution_id(e));
    run_until(f, 2);

    assert_int_equal(query(f, 0, id, 0, &r), HG_OK);
    assert_int_equal(r.rc, HG_OK);
    assert_json_str(r.answer, "output", shown);
    assert_int_equal(json_integer_value(json_object_get(r.answer,
                                                        "output_bytes")),
                     sizeof(payload) - 1);

    for (q = 0; q < 6; q++) {
        const char *arg = q == 0 ? id : q == 1 || q == 5 ? "echo"
                          : q == 2 ? "bad" : q == 3 ? dead : NULL;
        unsigned long failures = 0;

        want = NULL;
        if (q != 3) {
            assert_int_equal(query(f, q, arg, 0, &r), HG_OK);
            assert_int_equal(r.rc, HG_OK);
            want = r.answer;
            r.answer = NULL;
        }
        for (FAULT_ALLOC_LOOP(n)) {
            int rc = query(f, q, arg, n, &r);

            if (rc != HG_OK) {
                assert_int_equal(rc, HG_ERROR);
                assert_true(r.fired);
                hg_master_turn(f->master, 0);
                assert_false(r.called);         /* no reply comes */
                failures++;
                continue;
            }
            if (r.rc == HG_ERROR) {
                assert_true(r.fired);
                assert_null(r.answer);
                failures++;
                if (q == 3) {
                    /* refused before the store's side (nothing purged)
                     * or after, in the answer (purged: done) */
                    assert_int_equal(query(f, 2, "bad", 0, &r), HG_OK);
                    list = json_object_get(r.answer, "executions");
                    assert_in_range(json_array_size(list), 0, 1);
                    if (json_array_size(list) == 0) {
                        break;
                    }
                }
                continue;
            }
            assert_int_equal(r.rc, HG_OK);
            if (q == 3) {
                assert_int_equal(json_integer_value(
                    json_object_get(r.answer, "purged")), 1);
                break;
            }
            if (!json_equal(r.answer, want)) {
                char *got = json_dumps(r.answer, JSON_SORT_KEYS);

                fail_msg("%s, allocation %lu refused: another answer: %s",
                         names[q], n, got);
            }
            if (!r.fired) {
                break;
            }
        }
        print_message("%s: %lu refusals failed it\n", names[q], failures);
        assert_true(failures > 0);
        json_decref(want);
    }
    reply_reset(&r);
    assert_int_equal(query(f, 2, "bad", 0, &r), HG_OK);
    assert_int_equal(json_array_size(json_object_get(r.answer,
                                                     "executions")), 0);
    reply_reset(&r);
    stop_master(f);
}

/*
 * The master's start with each allocation refused in turn: NULL, with the
 * cycle freed and the reason logged, or a master that runs a job as
 * without the refusal; never a crash, a leak or a half-built master.
 */
static void
test_start_out_of_memory(void **state)
{
    fixture_t *f = *state;
    unsigned long failures = 0;
    hg_conf_errors_t errors;
    hg_cycle_t *cycle;
    char err[512];
    bool fired;

    write_conf_jobs(f, "memory", 1,
        "  { id = \"echo\"; type = \"echo\"; max_retries = 0; }");
    for (unsigned long n = 1; n < FAULT_ALLOC_MAX; n += fault_step()) {
        memset(&errors, 0, sizeof(errors));
        cycle = hg_cycle_create(f->conf, f->dir, &errors);
        assert_non_null(cycle);
        assert_int_equal(hg_log_open(cycle->conf->log.file, HG_LOG_INFO,
                                     HG_LOG_FORMAT_TEXT), HG_OK);
        f->store = hg_store_open_with(cycle->conf, &f->store_options, err,
                                      sizeof(err));
        assert_non_null(f->store);
        fault_alloc_arm(n);
        f->master = hg_master_create(cycle, f->conf, f->dir, f->store);
        fired = fault_alloc_disarm();
        if (f->master == NULL) {
            assert_true(fired);
            failures++;
        } else {
            /* it runs */
            f->nseen = 0;
            hg_master_observe(f->master, observe, f);
            if (hg_master_find_job(f->master, "echo") == NULL) {
                fail_msg("allocation %lu %s: a master without its job", n,
                         fired ? "refused" : "(none refused)");
            }
            trigger(f, "echo");
            run_until(f, 1);
            assert_int_equal(f->seen[0].status, HG_EXEC_SUCCEEDED);
        }
        stop_master(f);
        if (!fired) {
            break;
        }
    }
    print_message("refusals that failed the start: %lu\n", failures);
    assert_true(failures > 0);
}

/* --- job commands out of memory ----------------------------------------- */

enum { JOBDEF_CREATE, JOBDEF_REPLACE, JOBDEF_PATCH, JOBDEF_IMPORT,
       JOBDEF_DELETE };

/* Job command OP (on n1, or n2 and n3 for the import) with the Nth
 * allocation of the master's thread refused from the call to the reply
 * (0: none). HG_OK once the reply came, or the call's own HG_ERROR. */
static int
jobdef_op(fixture_t *f, int op, unsigned long n, reply_t *r)
{
    static const char *const defs[] = {
        "{\"id\": \"n1\", \"type\": \"echo\", \"every\": \"1h\", "
        "\"tags\": [\"a\"]}",
        "{\"id\": \"n1\", \"type\": \"echo\", \"every\": \"2h\"}",
        "{\"every\": \"3h\", \"tags\": null}",
        "[{\"id\": \"n2\", \"type\": \"echo\", \"schedule\": \"0 3 * * *\"}, "
        "{\"id\": \"n3\", \"type\": \"echo\", \"at\": "
        "\"2099-01-01T00:00:00Z\"}]",
    };
    json_t *def = op < JOBDEF_DELETE ? json_loads(defs[op], 0, NULL) : NULL;
    int rc = HG_ERROR;

    assert_true(op == JOBDEF_DELETE || def != NULL);
    reply_reset(r);
    if (n > 0) {
        fault_alloc_arm(n);
    }
    switch (op) {
    case JOBDEF_CREATE:
    case JOBDEF_REPLACE:
        rc = hg_master_put_job(f->master, def, op == JOBDEF_CREATE, "api:ops",
                               on_reply_faulty, r);
        break;
    case JOBDEF_PATCH:
        rc = hg_master_patch_job(f->master, "n1", def, "api:ops",
                                 on_reply_faulty, r);
        break;
    case JOBDEF_IMPORT:
        rc = hg_master_import_jobs(f->master, def, "api:ops",
                                   on_reply_faulty, r);
        break;
    case JOBDEF_DELETE:
        rc = hg_master_delete_job(f->master, "n1", "api:ops",
                                  on_reply_faulty, r);
        break;
    }
    json_decref(def);
    if (rc != HG_OK) {
        r->fired = fault_alloc_disarm();
        return rc;
    }
    await_reply(f, r);
    return HG_OK;
}

static void
jobdef_delete(fixture_t *f, const char *id)
{
    reply_t r;

    memset(&r, 0, sizeof(r));
    reply_reset(&r);
    assert_int_equal(hg_master_delete_job(f->master, id, "api:ops", on_reply,
                                          &r), HG_OK);
    await_reply(f, &r);
    assert_int_equal(r.rc, HG_OK);
    reply_reset(&r);
}

/* The schedule of JOB_ID in force ("-": not in force). */
static const char *
jobdef_every(fixture_t *f, const char *id)
{
    hg_job_t *job = hg_master_find_job(f->master, id);
    json_t *def;

    if (job == NULL) {
        return "-";
    }
    def = json_object_get(f->master->api_jobs, id);
    def = json_object_get(json_object_get(def, "definition"), "every");
    return json_is_string(def) ? json_string_value(def)
                               : "? (in force, not in the set)";
}

/*
 * The job commands (create, replace, patch, import, delete) with each
 * allocation of the master's thread refused in turn, from the call to the
 * reply: the call refused, or an error reply, and then the job table is
 * as before; or the reply HG_OK and the change in force. Never a reply
 * HG_OK with the change missing, or a change made under an error (but
 * the two the error names: the answer alone refused, or the change stored
 * and a reload to put it in force). The cycle reader (a child) starts
 * unarmed: its faults are not the master's.
 */
static void
test_job_commands_out_of_memory(void **state)
{
    static const char *const names[] = {
        "create", "replace", "patch", "import", "delete"
    };
    fixture_t *f = *state;
    unsigned long failures = 0;
    reply_t r;
    int op;

    memset(&r, 0, sizeof(r));
    write_conf_jobs(f, "memory", 1,
                    "  { id = \"file\"; type = \"echo\"; every = \"1h\"; }");
    start_master(f);

    for (op = JOBDEF_CREATE; op <= JOBDEF_DELETE; op++) {
        /* the state before: n1 as created, except for the create */
        if (op != JOBDEF_CREATE) {
            assert_int_equal(jobdef_op(f, JOBDEF_CREATE, 0, &r), HG_OK);
            assert_int_equal(r.rc, HG_OK);
        }
        /* each refusal costs a configuration reader (a process, some
         * 40 ms), so this samples: every allocation of a delete (no
         * reader), every third of a create and an import, every ninth of
         * a replace and a patch (the create's path), each from another
         * start */
        static const unsigned long steps[] = { 3, 9, 9, 3, 1 };
        static const unsigned long starts[] = { 1, 3, 6, 2, 1 };
        unsigned long step = fault_step() * steps[op];

        for (unsigned long n = starts[op]; n < FAULT_ALLOC_MAX; n += step) {
            const char *want_ok, *want_err;
            bool done;

            want_err = op == JOBDEF_CREATE ? "-" : "1h";
            want_ok = op == JOBDEF_REPLACE ? "2h" : op == JOBDEF_PATCH ? "3h"
                      : op == JOBDEF_DELETE ? "-" : "1h";
            if (op == JOBDEF_IMPORT) {
                want_ok = want_err = "1h";          /* n1 untouched */
            }
            done = jobdef_op(f, op, n, &r) == HG_OK && r.rc == HG_OK;
            if (!done) {
                const char *why = json_string_value(json_object_get(r.answer,
                                                                    "error"));
                int64_t deadline = hg_clock_ns(CLOCK_MONOTONIC)
                                   + 10 * HG_NSEC_PER_SEC;

                if (!r.fired) {
                    fail_msg("%s, allocation %lu: rc %d without a refusal",
                             names[op], n, r.rc);
                }
                failures++;
                /* refused once the store had it: a reload puts it all in
                 * force, as if done */
                if (why != NULL && strstr(why, "the change is made") != NULL) {
                    done = true;        /* only its answer was refused */
                } else if (why != NULL
                           && strstr(why, "a reload follows") != NULL)
                {
                    while (hg_master_reloading(f->master)
                           && hg_clock_ns(CLOCK_MONOTONIC) < deadline)
                    {
                        hg_master_turn(f->master, 50);
                    }
                    assert_false(hg_master_reloading(f->master));
                    done = true;
                }
            }
            if (strcmp(jobdef_every(f, "n1"), done ? want_ok : want_err)
                != 0)
            {
                dump_log(f, 30);
                fail_msg("%s, allocation %lu: %s, and n1 every %s", names[op],
                         n, done ? "done" : "refused", jobdef_every(f, "n1"));
            }
            if (op == JOBDEF_IMPORT
                && (hg_master_find_job(f->master, "n2") != NULL) != done)
            {
                fail_msg("import, allocation %lu: %s, n2 %s", n,
                         done ? "done" : "refused",
                         done ? "missing" : "in force");
            }
            if (!r.fired) {
                break;
            }
            /* back to the state before */
            if (done && op == JOBDEF_IMPORT) {
                jobdef_delete(f, "n2");
                jobdef_delete(f, "n3");
            } else if (done && op == JOBDEF_CREATE) {
                jobdef_delete(f, "n1");
            } else if (done && op == JOBDEF_DELETE) {
                assert_int_equal(jobdef_op(f, JOBDEF_CREATE, 0, &r), HG_OK);
                assert_int_equal(r.rc, HG_OK);
            } else if (done) {
                jobdef_delete(f, "n1");
                assert_int_equal(jobdef_op(f, JOBDEF_CREATE, 0, &r), HG_OK);
                assert_int_equal(r.rc, HG_OK);
            }
        }
        if (op != JOBDEF_DELETE && op != JOBDEF_IMPORT) {
            jobdef_delete(f, "n1");
        } else if (op == JOBDEF_IMPORT) {
            jobdef_delete(f, "n1");
            jobdef_delete(f, "n2");
            jobdef_delete(f, "n3");
        }
    }
    print_message("refusals that failed a command: %lu\n", failures);
    assert_true(failures > 0);
    reply_reset(&r);
    stop_master(f);

}

/* An execution handed ahead starts on its worker as soon as the one
 * before it ends, before the master hears of that: its deadline is the
 * worker's. A module that gives up there (hg_exec_cancelled) has timed
 * out, even when the master's own clock for it started later (here: the
 * loop does not turn while the worker goes on). */
static void
test_handed_ahead_deadline_is_the_workers(void **state)
{
    fixture_t *f = *state;
    hg_execution_t *e;
    char slow[40];

    write_conf_jobs(f, "memory", 1,
        "  { id = \"echo\"; type = \"echo\"; overlap = \"allow\"; "
        "max_retries = 0; },\n"
        "  { id = \"slow\"; type = \"echo\"; sleep_ms = 10000; "
        "timeout = \"200ms\"; max_retries = 0; }");
    start_master(f);
    pretend_quick(f, "echo");
    trigger(f, "echo");
    e = trigger(f, "slow");
    snprintf(slow, sizeof(slow), "%s", hg_execution_id(e));
    assert_int_equal(f->master->handed_total, 1);
    usleep(700 * 1000);             /* echo ends, slow gives up at 200 ms */
    run_until(f, 2);
    assert_int_equal(seen_of(f, slow)->status, HG_EXEC_TIMED_OUT);
    stop_master(f);
}

/* A module's custom metrics reach the master with the execution's
 * result (hg_exec_metric, through the worker's RESULT message). */
static void
test_module_metrics_reach_the_master(void **state)
{
    fixture_t *f = *state;

    write_conf_jobs(f, "memory", 1,
        "  { id = \"counted\"; type = \"echo\"; metric = \"rows\"; "
        "max_retries = 0; },\n"
        "  { id = \"plain\"; type = \"echo\"; max_retries = 0; }");
    start_master(f);
    trigger(f, "counted");
    run_until(f, 1);
    trigger(f, "plain");
    run_until(f, 2);
    assert_string_equal(f->seen[0].job, "counted");
    assert_string_equal(f->seen[0].metrics, "{\"rows\":1.0}");
    assert_string_equal(f->seen[1].metrics, "");
    stop_master(f);
}

static char *
metrics_text(fixture_t *f)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);

    assert_non_null(out);
    assert_int_equal(hg_master_render_metrics(f->master, out), HG_OK);
    assert_int_equal(fclose(out), 0);
    return text;
}

/* The store's write side shows in the metrics: records written (each
 * execution's queued, running and final records), the queue, whether it
 * fails, and the commit delay the starts wait for. */
static void
test_store_metrics(void **state)
{
    fixture_t *f = *state;
    char *text, *at;
    double written = 0;

    write_conf(f, "sqlite", 1);
    start_master(f);
    trigger(f, "echo");
    run_until(f, 1);
    trigger(f, "echo");
    run_until(f, 2);
    settle(f);
    text = metrics_text(f);
    assert_non_null(strstr(text, "# TYPE hourglass_store_records_written_total"
                                 " counter\n"));
    at = strstr(text, "\nhourglass_store_records_written_total ");
    assert_non_null(at);
    assert_int_equal(sscanf(at, "\nhourglass_store_records_written_total %lf",
                            &written), 1);
    assert_true(written >= 4);      /* running and final, twice at least */
    assert_non_null(strstr(text, "\nhourglass_store_queue_depth 0\n"));
    assert_non_null(strstr(text, "\nhourglass_store_failing 0\n"));
    assert_non_null(strstr(text, "\nhourglass_store_write_errors_total 0\n"));
    assert_non_null(strstr(text, "\nhourglass_store_commit_seconds "));
    free(text);
    stop_master(f);
}

/* The metrics count what ran, by job and status, the modules' own
 * metrics, the workers by state and the jobs by state. */
static void
test_metrics(void **state)
{
    fixture_t *f = *state;
    char *text;

    write_conf_jobs(f, "memory", 2,
        "  { id = \"counted\"; type = \"echo\"; metric = \"rows\"; "
        "overlap = \"allow\"; max_retries = 0; },\n"
        "  { id = \"bad\"; type = \"echo\"; exit = 1; max_retries = 1; "
        "backoff = { initial = \"10ms\"; }; },\n"
        "  { id = \"idle\"; type = \"echo\"; schedule = \"0 0 1 1 *\"; }");
    start_master(f);
    trigger(f, "counted");
    trigger(f, "counted");
    trigger(f, "bad");
    run_until(f, 4);
    assert_int_equal(hg_master_pause(f->master, "idle"), HG_OK);
    text = metrics_text(f);
    assert_non_null(strstr(text, "# TYPE hourglass_executions_total "
                                 "counter\n"));
    assert_non_null(strstr(text, "hourglass_executions_total{job=\"counted\","
                                 "status=\"succeeded\"} 2\n"));
    assert_non_null(strstr(text, "hourglass_executions_total{job=\"bad\","
                                 "status=\"failed\"} 1\n"));
    assert_non_null(strstr(text, "hourglass_executions_total{job=\"bad\","
                                 "status=\"dead\"} 1\n"));
    assert_non_null(strstr(text, "hourglass_execution_duration_seconds_count"
                                 "{job=\"counted\"} 2\n"));
    assert_non_null(strstr(text, "hourglass_module_metric_total{module="
                                 "\"echo\",name=\"rows\"} 2\n"));
    assert_non_null(strstr(text, "hourglass_workers{state=\"idle\"} 2\n"));
    assert_non_null(strstr(text, "hourglass_jobs{state=\"paused\"} 1\n"));
    assert_non_null(strstr(text, "hourglass_jobs{state=\"manual\"} 2\n"));
    assert_non_null(strstr(text, "hourglass_schedule_lag_seconds_count 4\n"));
    assert_non_null(strstr(text, "hourglass_queue_depth 0\n"));
    assert_non_null(strstr(text, "\nhourglass_leader 1\n"));
    free(text);
    stop_master(f);
}

/* Every family DESIGN.md names is declared (HELP and TYPE) before any
 * execution, those of features not built yet with no series at all. */
static void
test_metrics_families(void **state)
{
    static const char *const declared[][2] = {
        { "hourglass_jobs", "gauge" },
        { "hourglass_executions_total", "counter" },
        { "hourglass_execution_duration_seconds", "histogram" },
        { "hourglass_schedule_lag_seconds", "histogram" },
        { "hourglass_queue_depth", "gauge" },
        { "hourglass_workers", "gauge" },
        { "hourglass_worker_restarts_total", "counter" },
        { "hourglass_reloads_total", "counter" },
        { "hourglass_leader", "gauge" },
        { "hourglass_job_overdue", "gauge" },
        { "hourglass_notifications_total", "counter" },
        { "hourglass_claims_total", "counter" },
        { "hourglass_lease_expirations_total", "counter" },
        { "hourglass_module_metric_total", "counter" },
    };
    static const char *const unfed[] = {
        "hourglass_job_overdue", "hourglass_notifications_total",
        "hourglass_claims_total", "hourglass_lease_expirations_total"
    };
    fixture_t *f = *state;
    char line[128], *text;
    size_t i;

    write_conf(f, "memory", 1);
    start_master(f);
    trigger(f, "echo");
    run_until(f, 1);
    text = metrics_text(f);
    for (i = 0; i < HG_NELEMS(declared); i++) {
        snprintf(line, sizeof(line), "\n# TYPE %s %s\n", declared[i][0],
                 declared[i][1]);
        assert_non_null(strstr(text, line));
        snprintf(line, sizeof(line), "# HELP %s ", declared[i][0]);
        assert_non_null(strstr(text, line));
    }
    for (i = 0; i < HG_NELEMS(unfed); i++) {
        snprintf(line, sizeof(line), "\n%s", unfed[i]);  /* a sample */
        assert_null(strstr(text, line));
    }
    free(text);
    stop_master(f);
}

/* Turn the loop for MS milliseconds. */
static void
turn_for(fixture_t *f, int64_t ms)
{
    int64_t until = hg_clock_ns(CLOCK_MONOTONIC) + ms * HG_NSEC_PER_MSEC;

    while (hg_clock_ns(CLOCK_MONOTONIC) < until) {
        hg_master_turn(f->master, 20);
    }
}

static size_t
count_job(fixture_t *f, const char *job, const char *trigger)
{
    size_t i, n = 0;

    for (i = 0; i < f->nseen; i++) {
        if (strcmp(f->seen[i].job, job) == 0
            && (trigger == NULL || strcmp(f->seen[i].trigger, trigger) == 0))
        {
            n++;
        }
    }
    return n;
}

/* Pausing stops the schedule, not the triggers; the paused state outlives
 * a restart (kept in the store); resuming schedules again from now, with
 * no misfire for what passed meanwhile. */
static void
test_pause_and_resume(void **state)
{
    fixture_t *f = *state;
    int64_t next[5];
    size_t n, i, before;

    write_conf_jobs(f, "sqlite", 2,
        "  { id = \"tick\"; type = \"echo\"; schedule = \"* * * * * *\"; "
        "misfire = \"run_all\"; max_retries = 0; }");
    start_master(f);
    assert_int_equal(hg_master_pause(f->master, "nope"), HG_AGAIN);
    run_until(f, 1);
    assert_int_equal(hg_master_pause(f->master, "tick"), HG_OK);
    assert_int_equal(hg_master_next_fires(f->master, "tick", next, 5, &n),
                     HG_OK);
    assert_int_equal(n, 0);
    turn_for(f, 300);               /* one that was already queued ends */
    before = count_job(f, "tick", "schedule");
    turn_for(f, 2500);
    assert_int_equal(count_job(f, "tick", "schedule"), before);
    /* a paused job can still be triggered */
    trigger(f, "tick");
    run_until(f, f->nseen + 1);
    assert_int_equal(count_job(f, "tick", "manual"), 1);
    stop_master(f);

    /* Still paused after a restart: nothing scheduled, no misfires. */
    f->nseen = 0;
    start_master(f);
    assert_true(hg_master_find_job(f->master, "tick")->paused);
    turn_for(f, 2500);
    assert_int_equal(f->nseen, 0);
    assert_int_equal(hg_master_resume(f->master, "tick"), HG_OK);
    assert_int_equal(hg_master_next_fires(f->master, "tick", next, 5, &n),
                     HG_OK);
    assert_int_equal(n, 5);
    for (i = 1; i < n; i++) {
        assert_int_equal(next[i] - next[i - 1], 1000);
    }
    run_until(f, 1);
    assert_int_equal(count_job(f, "tick", "misfire"), 0);
    assert_int_equal(count_job(f, "tick", "schedule"), f->nseen);
    stop_master(f);
}

/* Stopping a job kills its running execution, recorded killed and not
 * retried although the job has retries left. */
static void
test_stop_job(void **state)
{
    fixture_t *f = *state;
    hg_execution_t *e;
    size_t killed = 9;
    char id[40];

    write_conf_jobs(f, "memory", 2,
        "  { id = \"long\"; type = \"echo\"; sleep_ms = 30000; "
        "max_retries = 3; backoff = { initial = \"10ms\"; }; }");
    start_master(f);
    assert_int_equal(hg_master_stop_job(f->master, "long", &killed), HG_OK);
    assert_int_equal(killed, 0);
    e = trigger(f, "long");
    snprintf(id, sizeof(id), "%s", e->id);
    while (e->dispatched_ns == 0) {
        hg_master_turn(f->master, 20);
    }
    assert_int_equal(hg_master_stop_job(f->master, "long", &killed), HG_OK);
    assert_int_equal(killed, 1);
    run_until(f, 1);
    assert_int_equal(seen_of(f, id)->status, HG_EXEC_KILLED);
    turn_for(f, 300);
    assert_int_equal(f->nseen, 1);      /* no retry */
    assert_int_equal(hg_master_stop_job(f->master, "none", NULL),
                     HG_AGAIN);
    stop_master(f);
}

/* The store's puts of `queued` records, counted under the driver. */
static hg_store_driver_t counting_driver;
static int (*counted_put)(hg_store_t *, const hg_exec_record_t *);
static size_t queued_puts;

static int
counting_put(hg_store_t *store, const hg_exec_record_t *rec)
{
    if (rec->status == HG_EXEC_QUEUED) {
        queued_puts++;
    }
    return counted_put(store, rec);
}

/* A scheduled fire, a trigger and an enqueue for later are each recorded
 * `queued` once (a fire was recorded twice: when it fired and again when
 * it was admitted). */
static void
test_queued_recorded_once(void **state)
{
    fixture_t *f = *state;
    const hg_store_driver_t *original;
    size_t before;

    write_conf_jobs(f, "memory", 1,
        "  { id = \"tick\"; type = \"echo\"; every = \"200ms\"; },\n"
        "  { id = \"echo\"; type = \"echo\"; overlap = \"queue\"; "
        "sleep_ms = 50; }");
    start_master(f);
    original = f->store->driver;
    counting_driver = *f->store->driver;
    counted_put = counting_driver.put_execution;
    counting_driver.put_execution = counting_put;
    f->store->driver = &counting_driver;
    queued_puts = 0;
    before = f->nseen;
    run_until(f, before + 3);
    /* every fire since was put queued once (one may be waiting now) */
    assert_true(queued_puts >= f->nseen - before);
    assert_true(queued_puts <= f->nseen - before + 1);
    assert_int_equal(hg_master_pause(f->master, "tick"), HG_OK);
    turn_for(f, 300);
    before = queued_puts;
    trigger(f, "echo");
    trigger(f, "echo");                 /* waits its turn (overlap queue) */
    assert_int_equal(queued_puts - before, 2);
    before = queued_puts;
    assert_non_null(hg_master_enqueue(f->master, "echo", "queue", NULL, 0,
                                      hg_clock_ns(CLOCK_REALTIME) / HG_NSEC_PER_MSEC + 200,
                                      HG_PRIORITY_NORMAL, NULL));
    assert_int_equal(queued_puts - before, 1);
    turn_for(f, 600);
    assert_int_equal(queued_puts - before, 1);
    f->store->driver = original;
    stop_master(f);
}

/* "ID ATTEMPT" lines of FILE; *n of them, in a malloc'd array. */
typedef struct {
    char id[40];
    unsigned attempt;
} started_t;

static started_t *
read_started(const char *file, size_t *n)
{
    started_t *list = NULL, line;
    size_t cap = 0;
    FILE *fp = fopen(file, "r");

    *n = 0;
    assert_non_null(fp);
    while (fscanf(fp, "%39s %u", line.id, &line.attempt) == 2) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 1024;
            list = realloc(list, cap * sizeof(*list));
            assert_non_null(list);
        }
        list[(*n)++] = line;
    }
    assert_int_equal(fclose(fp), 0);
    return list;
}

static int
cmp_started(const void *a, const void *b)
{
    return strcmp(((const started_t *) a)->id, ((const started_t *) b)->id);
}

static const hg_exec_row_t *
find_row(const hg_exec_row_t *rows, size_t n, const char *id)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(rows[i].r.id, id) == 0) {
            return &rows[i];
        }
    }
    return NULL;
}

/* The retry of the crashed row CRASHED: same run, next attempt. */
static const hg_exec_row_t *
find_retry(const hg_exec_row_t *rows, size_t n, const hg_exec_row_t *crashed)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(rows[i].r.run_id, crashed->r.run_id) == 0
            && rows[i].r.attempt == crashed->r.attempt + 1)
        {
            return &rows[i];
        }
    }
    return NULL;
}

/* The master is killed (SIGKILL, in a child process) while executions
 * are primed: recorded running (or about to be), never sent. The next
 * start records those whose `running` record was committed crashed and
 * retries them, and runs the others from their `queued` record; either
 * way each runs once. Nothing ran twice, and every execution that
 * started has one final record. */
static void
test_kill9_with_primed(void **state)
{
    fixture_t *f = *state;
    char started_file[PATH_MAX + 16], before_file[PATH_MAX + 16];
    char primed_file[PATH_MAX + 16];
    char primed[HG_PRIME_MAX_TEST][40];
    int committed[HG_PRIME_MAX_TEST];
    hg_exec_row_t *rows = NULL;
    const hg_exec_row_t *row, *retry, *ran;
    started_t *started, *before, *all, key;
    size_t nstarted, nbefore, nall, nrows = 0, nprimed = 0, ncommitted = 0;
    size_t i;
    FILE *fp;
    pid_t pid;
    int status;

    write_conf(f, "sqlite", 2);
    snprintf(started_file, sizeof(started_file), "%s/started", f->dir);
    snprintf(before_file, sizeof(before_file), "%s/started.before", f->dir);
    snprintf(primed_file, sizeof(primed_file), "%s/primed", f->dir);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        hg_execution_t *e;

        start_master(f);
        pump(f, "started", 1000000, true);
        fp = fopen(primed_file, "w");
        for (e = f->master->primed.head; fp != NULL && e != NULL;
             e = e->start.next)
        {
            fprintf(fp, "%s %d\n", e->id, e->ticket <= f->master->acked);
        }
        if (fp == NULL || fclose(fp) != 0) {
            _exit(2);
        }
        kill(getpid(), SIGKILL);
        _exit(3);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    fp = fopen(primed_file, "r");
    assert_non_null(fp);
    while (nprimed < HG_PRIME_MAX_TEST
           && fscanf(fp, "%39s %d", primed[nprimed], &committed[nprimed])
              == 2)
    {
        ncommitted += committed[nprimed] != 0;
        nprimed++;
    }
    assert_int_equal(fclose(fp), 0);
    assert_true(ncommitted > 0);
    /* The killed master's workers die with it (PR_SET_PDEATHSIG); one
     * may still start a frame it had read. */
    usleep(200 * 1000);
    assert_int_equal(rename(started_file, before_file), 0);

    /* Restart on the same store; let every recovered execution end. */
    start_master(f);
    drain(f);
    assert_nothing_unfinished(f->store);
    assert_int_equal(hg_store_list_executions(f->store, "started", NULL, 0,
                                              0, &rows, &nrows), HG_OK);
    stop_master(f);

    /* Nothing started twice; whatever started has its one final row. */
    before = read_started(before_file, &nbefore);
    started = read_started(started_file, &nstarted);
    assert_true(nbefore > 0 && nstarted > 0);
    nall = nbefore + nstarted;
    all = malloc(nall * sizeof(*all));
    assert_non_null(all);
    memcpy(all, before, nbefore * sizeof(*all));
    memcpy(all + nbefore, started, nstarted * sizeof(*all));
    qsort(before, nbefore, sizeof(*before), cmp_started);
    qsort(started, nstarted, sizeof(*started), cmp_started);
    qsort(all, nall, sizeof(*all), cmp_started);
    for (i = 0; i < nall; i++) {
        if (i > 0 && strcmp(all[i].id, all[i - 1].id) == 0) {
            fail_msg("execution %s started twice", all[i].id);
        }
        row = find_row(rows, nrows, all[i].id);
        assert_non_null(row);
        assert_int_equal(row->r.attempt, all[i].attempt);
        assert_true(row->r.status == HG_EXEC_SUCCEEDED
                    || row->r.status == HG_EXEC_CRASHED);
    }
    /* Every crashed row (found running at restart) has its retry. */
    for (i = 0; i < nrows; i++) {
        if (rows[i].r.status == HG_EXEC_CRASHED) {
            retry = find_retry(rows, nrows, &rows[i]);
            assert_non_null(retry);
            assert_int_equal(retry->r.status, HG_EXEC_SUCCEEDED);
        }
    }
    /* Primed ones never reached a worker of the killed master; each ran
     * once after the restart: retried when found running, else as it
     * was queued, unless nothing of it was written. */
    for (i = 0; i < nprimed; i++) {
        snprintf(key.id, sizeof(key.id), "%.39s", primed[i]);
        if (bsearch(&key, before, nbefore, sizeof(*before), cmp_started)
            != NULL)
        {
            fail_msg("primed execution %s started before the kill",
                     primed[i]);
        }
        row = find_row(rows, nrows, primed[i]);
        if (row == NULL && !committed[i]) {
            /* Neither its queued nor its running record was written: a
             * record nobody waits for is held while starts go first, and
             * these triggers, unlike the API's, did not wait for it. */
            continue;
        }
        assert_non_null(row);
        if (committed[i]) {
            assert_int_equal(row->r.status, HG_EXEC_CRASHED);
        }
        ran = row->r.status == HG_EXEC_CRASHED
              ? find_retry(rows, nrows, row) : row;
        assert_non_null(ran);
        assert_int_equal(ran->r.status, HG_EXEC_SUCCEEDED);
        snprintf(key.id, sizeof(key.id), "%.39s", ran->r.id);
        assert_non_null(bsearch(&key, started, nstarted, sizeof(*started),
                                cmp_started));
    }
    free(all);
    free(before);
    free(started);
    hg_exec_rows_free(rows, nrows);
}

/* A reload keeps every job whose id stays (the same object, definition
 * updated in place), keeps the next fire time of each unchanged schedule
 * (one written another way included), moves the changed ones, and keeps a
 * removed job alive until its running execution ends. Jobs share the
 * parsed expression of a cron text, and their type. */
static void
test_reload_keeps_jobs(void **state)
{
    fixture_t *f = *state;
    hg_job_t *a, *b, *c, *busy;
    int64_t a_due, b_when, c_due;
    char *a_def;
    int i;

    write_conf_jobs(f, "memory", 1,
        "  { id = \"a\"; type = \"echo\"; schedule = \"0 0 1 1 *\"; },\n"
        "  { id = \"b\"; type = \"echo\"; every = \"1h\"; },\n"
        "  { id = \"c\"; type = \"echo\"; schedule = \"0 0 1 1 *\"; },\n"
        "  { id = \"busy\"; type = \"echo\"; sleep_ms = 400; "
        "max_retries = 0; }");
    start_master(f);
    a = hg_master_find_job(f->master, "a");
    b = hg_master_find_job(f->master, "b");
    c = hg_master_find_job(f->master, "c");
    busy = hg_master_find_job(f->master, "busy");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(busy);
    assert_ptr_equal(a->cron, c->cron);
    assert_ptr_equal(a->type, b->type);
    a_due = a->next_due_ms;
    a_def = strdup(a->definition_text);
    assert_non_null(a_def);
    b_when = hg_timer_when(&b->timer);
    c_due = c->next_due_ms;
    assert_true(a_due > 0);
    assert_true(hg_timer_pending(&b->timer));

    assert_non_null(hg_master_enqueue(f->master, "busy", "queue", "slow",
                                      4, 0, HG_PRIORITY_NORMAL, NULL));
    for (i = 0; i < 5 && busy->running == 0; i++) {
        hg_master_turn(f->master, 20);
    }
    assert_int_equal(busy->running, 1);

    write_conf_jobs(f, "memory", 1,
        "  { id = \"a\"; type = \"echo\"; schedule = \"  0 0 1 1 *  \"; "
        "timeout = \"1m\"; },\n"
        "  { id = \"b\"; type = \"echo\"; every = \"1h\"; },\n"
        "  { id = \"c\"; type = \"echo\"; schedule = \"0 0 2 1 *\"; },\n"
        "  { id = \"new\"; type = \"echo\"; every = \"1h\"; }");
    /* The reload reads the file in a cycle reader and applies from the
     * loop. */
    assert_int_equal(hg_master_reload(f->master), HG_AGAIN);
    for (i = 0; i < 500 && hg_master_reloading(f->master); i++) {
        hg_master_turn(f->master, 20);
    }
    assert_false(hg_master_reloading(f->master));

    assert_ptr_equal(hg_master_find_job(f->master, "a"), a);
    assert_ptr_equal(hg_master_find_job(f->master, "b"), b);
    assert_ptr_equal(hg_master_find_job(f->master, "c"), c);
    assert_null(hg_master_find_job(f->master, "busy"));
    assert_non_null(hg_master_find_job(f->master, "new"));
    /* a: a new definition, the same schedule written with blanks */
    assert_string_not_equal(a->definition_text, a_def);
    assert_int_equal(a->policy.timeout_ms, 60000);
    assert_int_equal(a->next_due_ms, a_due);
    /* b: untouched, its timer as it was */
    assert_true(hg_timer_pending(&b->timer));
    assert_int_equal(hg_timer_when(&b->timer), b_when);
    /* c: a new day, a new fire time and its own expression */
    assert_true(c->next_due_ms > c_due);
    assert_true(c->cron != a->cron);
    assert_string_equal(hg_cron_text(a->cron), "0 0 1 1 *");

    /* busy: gone from the configuration, alive until its run ends */
    run_until(f, 1);
    assert_string_equal(f->seen[0].job, "busy");
    assert_int_equal(f->seen[0].status, HG_EXEC_SUCCEEDED);
    assert_string_equal(f->seen[0].output, "slow");
    free(a_def);
    stop_master(f);
}

/* --- wall-clock steps -------------------------------------------------
 *
 * A step of the wall clock reaches the master as the realtime timerfd's
 * ECANCELED, on which hg_timers_expire calls the set's clock_changed hook.
 * The tests call that hook as the timerfd path does, without stepping the
 * system clock: a step forward is a job whose next fire time is now in
 * the past (the clock jumped over it), a step back one whose last fire
 * time is now in the future (it fired before the clock went back). */

static void
clock_step(fixture_t *f)
{
    assert_non_null(f->master->wall.clock_changed);
    f->master->wall.clock_changed(&f->master->wall);
}

/* The misfire runs of JOB: their due times into DUE (room for MAX). */
static size_t
misfires_of(fixture_t *f, const char *job, int64_t *due, size_t max)
{
    size_t i, n = 0;

    for (i = 0; i < f->nseen; i++) {
        if (strcmp(f->seen[i].job, job) == 0) {
            assert_string_equal(f->seen[i].trigger, "misfire");
            assert_int_equal(f->seen[i].status, HG_EXEC_SUCCEEDED);
            if (n < max) {
                due[n] = f->seen[i].scheduled_for_ms;
            }
            n++;
        }
    }
    return n;
}

/* Three fire times, the seconds B, B+1 and B+2 of one minute in the past,
 * are the only ones of the year; a step forward over them follows each
 * job's misfire policy, then each job waits for next year. An `every` job
 * (monotonic) is not touched. */
static void
test_clock_step_forward_follows_misfire(void **state)
{
    fixture_t *f = *state;
    static const char *const ids[] = { "skip", "once", "all" };
    char jobs[1024], expr[64];
    struct tm tm;
    time_t now, base;
    int64_t now_ms, due[4], ev_due, ev_when;
    hg_job_t *job, *ev;
    size_t i;

    /* the three seconds must share a minute: not in its first 5 s */
    now = time(NULL);
    if (now % 60 < 5) {
        sleep((unsigned) (6 - now % 60));
        now = time(NULL);
    }
    base = now - 4;
    assert_non_null(gmtime_r(&base, &tm));
    snprintf(expr, sizeof(expr), "%d-%d %d %d %d %d *", tm.tm_sec,
             tm.tm_sec + 2, tm.tm_min, tm.tm_hour, tm.tm_mday,
             tm.tm_mon + 1);
    snprintf(jobs, sizeof(jobs),
        "  { id = \"skip\"; type = \"echo\"; schedule = \"%s\"; "
        "timezone = \"UTC\"; misfire = \"skip\"; overlap = \"allow\"; },\n"
        "  { id = \"once\"; type = \"echo\"; schedule = \"%s\"; "
        "timezone = \"UTC\"; misfire = \"run_once\"; overlap = \"allow\"; },\n"
        "  { id = \"all\"; type = \"echo\"; schedule = \"%s\"; "
        "timezone = \"UTC\"; misfire = \"run_all\"; overlap = \"allow\"; },\n"
        "  { id = \"ev\"; type = \"echo\"; every = \"1h\"; }",
        expr, expr, expr);
    write_conf_jobs(f, "memory", 2, jobs);
    start_master(f);
    ev = hg_master_find_job(f->master, "ev");
    assert_non_null(ev);
    ev_due = ev->next_due_ms;
    ev_when = hg_timer_when(&ev->timer);
    now_ms = hg_clock_ns(CLOCK_REALTIME) / HG_NSEC_PER_MSEC;
    for (i = 0; i < HG_NELEMS(ids); i++) {
        job = hg_master_find_job(f->master, ids[i]);
        assert_non_null(job);
        /* next year's, as the clock reads now */
        assert_true(job->next_due_ms > now_ms + 300LL * 86400 * 1000);
        /* as it read before the step */
        job->next_due_ms = (int64_t) base * HG_MSEC_PER_SEC;
    }

    clock_step(f);
    run_until(f, 4);
    turn_for(f, 300);
    assert_int_equal(f->nseen, 4);

    assert_int_equal(misfires_of(f, "skip", due, 4), 0);
    assert_int_equal(misfires_of(f, "once", due, 4), 1);
    assert_true(due[0] >= (int64_t) base * HG_MSEC_PER_SEC
                && due[0] <= (int64_t) (base + 2) * HG_MSEC_PER_SEC);
    assert_int_equal(misfires_of(f, "all", due, 4), 3);
    for (i = 0; i < 3; i++) {
        int64_t want = (int64_t) (base + (time_t) i) * HG_MSEC_PER_SEC;
        assert_true(due[0] == want || due[1] == want || due[2] == want);
    }
    for (i = 0; i < HG_NELEMS(ids); i++) {
        job = hg_master_find_job(f->master, ids[i]);
        assert_true(job->next_due_ms > now_ms + 300LL * 86400 * 1000);
        assert_true(hg_timer_pending(&job->timer));
        assert_int_equal(hg_timer_when(&job->timer),
                         job->next_due_ms * HG_NSEC_PER_MSEC);
    }
    assert_int_equal(ev->next_due_ms, ev_due);
    assert_int_equal(hg_timer_when(&ev->timer), ev_when);
    stop_master(f);
}

/* A job that fires every second fired at L; the clock then goes back 3 s
 * (L is 3 s ahead of it): nothing at or before L fires again. */
static void
test_clock_step_back_never_repeats_a_fire(void **state)
{
    fixture_t *f = *state;
    hg_job_t *job;
    int64_t last;
    size_t before, i;

    write_conf_jobs(f, "memory", 1,
        "  { id = \"tick\"; type = \"echo\"; schedule = \"* * * * * *\"; "
        "misfire = \"run_all\"; overlap = \"allow\"; }");
    start_master(f);
    run_until(f, 1);
    job = hg_master_find_job(f->master, "tick");
    assert_non_null(job);
    last = (hg_clock_ns(CLOCK_REALTIME) / HG_NSEC_PER_SEC + 3)
           * HG_MSEC_PER_SEC;
    job->last_due_ms = last;
    job->next_due_ms = last + HG_MSEC_PER_SEC;
    before = f->nseen;

    clock_step(f);
    assert_true(job->next_due_ms > last);
    assert_int_equal(hg_timer_when(&job->timer),
                     job->next_due_ms * HG_NSEC_PER_MSEC);
    /* without the guard it would fire within a second, for now + 1 s */
    turn_for(f, 1500);
    for (i = before; i < f->nseen; i++) {
        assert_true(f->seen[i].scheduled_for_ms > last);
    }
    assert_int_equal(f->nseen, before);
    stop_master(f);
}

/* A job command through the master's surface, its reply awaited. */
static void
put_job(fixture_t *f, reply_t *r, const char *definition, bool create)
{
    json_error_t jerr;
    json_t *def = json_loads(definition, 0, &jerr);

    assert_non_null(def);
    reply_reset(r);
    assert_int_equal(hg_master_put_job(f->master, def, create, "api:ops",
                                       on_reply, r), HG_OK);
    json_decref(def);
    await_reply(f, r);
}

static void
delete_job(fixture_t *f, reply_t *r, const char *id)
{
    reply_reset(r);
    assert_int_equal(hg_master_delete_job(f->master, id, "api:ops", on_reply,
                                          r), HG_OK);
    await_reply(f, r);
}

/* Jobs added, replaced and deleted through the master's surface, on both
 * drivers: each put in force (a trigger runs it; its schedule gives next
 * fires), kept by the store across a restart with its creator (sqlite),
 * and gone once deleted, across a restart too. */
static void
test_api_jobs(void **state)
{
    static const char *const drivers[] = { "memory", "sqlite" };
    fixture_t *f = *state;
    json_t *created_at;
    hg_execution_t *e;
    hg_job_t *job;
    reply_t r;
    size_t i;

    memset(&r, 0, sizeof(r));
    for (i = 0; i < HG_NELEMS(drivers); i++) {
        f->nseen = 0;
        write_conf_jobs(f, drivers[i], 1,
            "  { id = \"file\"; type = \"echo\"; every = \"1h\"; }");
        start_master(f);

        put_job(f, &r, "{\"id\": \"web\", \"type\": \"echo\", \"message\": "
                "\"one\", \"schedule\": \"0 3 * * *\"}", true);
        assert_int_equal(r.rc, HG_OK);
        assert_json_str(r.answer, "id", "web");
        assert_json_str(r.answer, "created_by", "api:ops");
        assert_true(json_is_true(json_object_get(r.answer, "api")));
        assert_int_equal(json_array_size(json_object_get(r.answer,
                                                         "next_fires")), 5);
        created_at = json_incref(json_object_get(r.answer, "created_at"));
        assert_true(json_is_string(created_at));
        job = hg_master_find_job(f->master, "web");
        assert_non_null(job);
        e = hg_master_trigger(f->master, "web", "manual", NULL, 0,
                              HG_PRIORITY_NORMAL);
        assert_non_null(e);
        run_until(f, 1);
        assert_string_equal(f->seen[0].output, "one");

        put_job(f, &r, "{\"id\": \"web\", \"type\": \"echo\", \"message\": "
                "\"two\", \"every\": \"1h\"}", false);
        assert_int_equal(r.rc, HG_OK);
        assert_json_str(r.answer, "created_by", "api:ops");
        assert_true(json_equal(json_object_get(r.answer, "created_at"),
                               created_at));
        json_decref(created_at);
        e = hg_master_trigger(f->master, "web", "manual", NULL, 0,
                              HG_PRIORITY_NORMAL);
        assert_non_null(e);
        run_until(f, 2);
        assert_string_equal(f->seen[1].output, "two");

        if (strcmp(drivers[i], "sqlite") == 0) {
            /* kept: the restart reads it with the file, replaced */
            stop_master(f);
            f->nseen = 0;
            start_master(f);
            assert_non_null(hg_master_find_job(f->master, "web"));
            e = hg_master_trigger(f->master, "web", "manual", NULL, 0,
                                  HG_PRIORITY_NORMAL);
            assert_non_null(e);
            run_until(f, 1);
            assert_string_equal(f->seen[0].output, "two");
        }

        delete_job(f, &r, "web");
        assert_int_equal(r.rc, HG_OK);
        assert_null(hg_master_find_job(f->master, "web"));
        assert_non_null(hg_master_find_job(f->master, "file"));
        if (strcmp(drivers[i], "sqlite") == 0) {
            stop_master(f);
            start_master(f);
            assert_null(hg_master_find_job(f->master, "web"));
            assert_non_null(hg_master_find_job(f->master, "file"));
        }
        reply_reset(&r);
        stop_master(f);
    }
}

/* The error (first of "errors") names FIELD. */
static void
assert_refused_on(const reply_t *r, const char *field)
{
    const json_t *first = json_array_get(json_object_get(r->answer,
                                                         "errors"), 0);

    if (json_object_get(first, "field") == NULL
        || !json_is_string(json_object_get(first, "field"))
        || strcmp(json_string_value(json_object_get(first, "field")), field))
    {
        char *text = json_dumps(r->answer, JSON_INDENT(1));
        fprintf(stderr, "refused, but not on %s: %s\n", field, text);
        free(text);
    }
    assert_int_equal(r->rc, HG_REPLY_INVALID);
    assert_non_null(first);
    assert_json_str(first, "field", field);
    assert_true(json_is_string(json_object_get(r->answer, "error")));
}

/* What a job command refuses, changing nothing: a taken id, a job of the
 * file (read only), an unknown one, and definitions a reload would
 * refuse (a schedule, a module's validate, an unknown type or key), each
 * naming the field. */
static void
test_api_jobs_refused(void **state)
{
    fixture_t *f = *state;
    reply_t r;

    memset(&r, 0, sizeof(r));
    write_conf_jobs(f, "sqlite", 1,
        "  { id = \"file\"; type = \"echo\"; every = \"1h\"; }");
    start_master(f);
    put_job(f, &r, "{\"id\": \"web\", \"type\": \"echo\"}", true);
    assert_int_equal(r.rc, HG_OK);

    put_job(f, &r, "{\"id\": \"web\", \"type\": \"echo\"}", true);
    assert_int_equal(r.rc, HG_REPLY_EXISTS);
    put_job(f, &r, "{\"id\": \"file\", \"type\": \"echo\"}", true);
    assert_int_equal(r.rc, HG_REPLY_EXISTS);
    put_job(f, &r, "{\"id\": \"file\", \"type\": \"echo\"}", false);
    assert_int_equal(r.rc, HG_REPLY_READ_ONLY);
    delete_job(f, &r, "file");
    assert_int_equal(r.rc, HG_REPLY_READ_ONLY);
    assert_non_null(hg_master_find_job(f->master, "file"));
    delete_job(f, &r, "nope");
    assert_int_equal(r.rc, HG_AGAIN);
    put_job(f, &r, "{\"id\": \"nope\", \"type\": \"echo\"}", false);
    assert_int_equal(r.rc, HG_AGAIN);

    put_job(f, &r, "{\"id\": \"bad\", \"type\": \"echo\", \"schedule\": "
            "\"61 * * * *\"}", true);
    assert_refused_on(&r, "schedule");
    put_job(f, &r, "{\"id\": \"bad\", \"type\": \"echo\", \"exit\": 9}",
            true);
    assert_refused_on(&r, "exit");
    put_job(f, &r, "{\"id\": \"bad\", \"type\": \"nosuch\"}", true);
    assert_refused_on(&r, "type");
    put_job(f, &r, "{\"id\": \"bad\", \"type\": \"echo\", \"colour\": 1}",
            true);
    assert_refused_on(&r, "colour");
    put_job(f, &r, "{\"id\": \"bad\", \"type\": \"echo\", \"timezone\": "
            "\"Mars/Olympus\", \"schedule\": \"0 3 * * *\"}", true);
    assert_refused_on(&r, "timezone");
    put_job(f, &r, "{\"id\": \"b d\", \"type\": \"echo\"}", true);
    assert_refused_on(&r, "id");
    put_job(f, &r, "{\"type\": \"echo\"}", true);
    assert_refused_on(&r, "id");
    assert_null(hg_master_find_job(f->master, "bad"));

    /* a replace refused leaves the job as it was */
    put_job(f, &r, "{\"id\": \"web\", \"type\": \"echo\", \"every\": "
            "\"-1s\"}", false);
    assert_refused_on(&r, "every");
    assert_non_null(hg_master_find_job(f->master, "web"));
    reply_reset(&r);
    stop_master(f);

    /* nothing refused was kept */
    start_master(f);
    assert_null(hg_master_find_job(f->master, "bad"));
    assert_non_null(hg_master_find_job(f->master, "web"));
    stop_master(f);
}

/* A reload keeps the jobs defined through the API (the reader reads them
 * with the file), including one whose command was in flight when the
 * reload was asked for: the reload waits for it, and does not undo it. A
 * file that takes an API job's id fails the reload, naming both. */
static void
test_api_job_and_reload(void **state)
{
    fixture_t *f = *state;
    json_t *def;
    reply_t r;
    int i;

    memset(&r, 0, sizeof(r));
    write_conf_jobs(f, "memory", 1,
        "  { id = \"file\"; type = \"echo\"; every = \"1h\"; }");
    start_master(f);
    def = json_pack("{s:s, s:s, s:s}", "id", "web", "type", "echo",
                    "every", "1h");
    assert_int_equal(hg_master_put_job(f->master, def, true, "api:ops",
                                       on_reply, &r), HG_OK);
    json_decref(def);
    write_conf_jobs(f, "memory", 1,
        "  { id = \"file2\"; type = \"echo\"; every = \"1h\"; }");
    /* the command goes first (the next turn); the reload follows it */
    hg_master_turn(f->master, 0);
    assert_int_equal(hg_master_reload(f->master), HG_AGAIN);
    await_reply(f, &r);
    assert_int_equal(r.rc, HG_OK);
    for (i = 0; i < 500 && (hg_master_reloading(f->master)
                            || hg_master_find_job(f->master, "file2")
                               == NULL); i++)
    {
        hg_master_turn(f->master, 20);
    }
    assert_non_null(hg_master_find_job(f->master, "file2"));
    assert_null(hg_master_find_job(f->master, "file"));
    assert_non_null(hg_master_find_job(f->master, "web"));

    /* the file takes the id: the reload fails, both stay */
    write_conf_jobs(f, "memory", 1,
        "  { id = \"web\"; type = \"echo\"; every = \"2h\"; }");
    assert_int_equal(hg_master_reload(f->master), HG_AGAIN);
    for (i = 0; i < 500 && hg_master_reloading(f->master); i++) {
        hg_master_turn(f->master, 20);
    }
    assert_non_null(hg_master_find_job(f->master, "file2"));
    assert_true(hg_master_find_job(f->master, "web")->api);
    assert_true(log_has(f, "also defined in"));
    reply_reset(&r);
    stop_master(f);
}

/* A reload asked for while a job's write waits for the store (another
 * process holds the database) starts only once the job is in force, and
 * keeps it. */
static void
test_reload_waits_for_a_job_write(void **state)
{
    fixture_t *f = *state;
    char path[PATH_MAX + 16];
    sqlite3 *db;
    json_t *def;
    reply_t r;
    int i;

    memset(&r, 0, sizeof(r));
    f->store_options.busy_timeout_ms = 60 * 1000;
    write_conf_jobs(f, "sqlite", 1,
        "  { id = \"file\"; type = \"echo\"; every = \"1h\"; }");
    start_master(f);
    snprintf(path, sizeof(path), "%s/hg.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                     SQLITE_OK);
    def = json_pack("{s:s, s:s, s:s}", "id", "web", "type", "echo",
                    "every", "1h");
    assert_int_equal(hg_master_put_job(f->master, def, true, "api:ops",
                                       on_reply, &r), HG_OK);
    json_decref(def);
    /* checked, now waiting for the write */
    hg_master_turn(f->master, 0);
    for (i = 0; i < 1000 && f->master->reload != NULL; i++) {
        hg_master_turn(f->master, 20);
    }
    assert_null(f->master->reload);
    assert_false(r.called);
    assert_non_null(f->master->jobdef_current);

    write_conf_jobs(f, "sqlite", 1,
        "  { id = \"file2\"; type = \"echo\"; every = \"1h\"; }");
    assert_int_equal(hg_master_reload(f->master), HG_AGAIN);
    hg_master_turn(f->master, 0);
    assert_false(hg_master_reloading(f->master));
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    await_reply(f, &r);
    assert_int_equal(r.rc, HG_OK);
    for (i = 0; i < 500 && hg_master_find_job(f->master, "file2") == NULL;
         i++)
    {
        hg_master_turn(f->master, 20);
    }
    assert_non_null(hg_master_find_job(f->master, "file2"));
    assert_non_null(hg_master_find_job(f->master, "web"));
    reply_reset(&r);
    stop_master(f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_payload_reaches_the_module,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unique_key_refused_while_queued,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_at_is_respected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_priority_orders_the_queue,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovered_fire_is_not_missed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_queued_survives_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_starts_recorded_once,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_quit_requeues_primed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_kill9_with_primed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reload_keeps_jobs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_handed_ahead_recorded_once,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_handed_ahead_taken_back,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_death_gives_back_handed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_quit_takes_back_handed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_handed_ahead_during_store_task,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_handed_ahead_times_out, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_handed_ahead_deadline_is_the_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_module_metrics_reach_the_master,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_and_resume, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_families, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_retry_and_purge, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dead_in_bulk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_commands_out_of_memory,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_out_of_memory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_queries_out_of_memory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_queued_recorded_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stop_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_jobs_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_api_job_and_reload, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reload_waits_for_a_job_write,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_clock_step_forward_follows_misfire, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_clock_step_back_never_repeats_a_fire, setup, teardown),
    };

    /* The cycle reader is the daemon itself (the tests run from the top
     * of the tree, as `make unit` does). */
    hg_cycle_reader_set_exe("objs/hourglass");
    /* HG_TEST_FILTER=NAME runs the tests whose names match (cmocka's
     * pattern), to chase one alone. */
    if (getenv("HG_TEST_FILTER") != NULL) {
        cmocka_set_test_filter(getenv("HG_TEST_FILTER"));
    }

    fault_alloc_setup();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
