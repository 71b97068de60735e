/*
 * Unit tests for the store (hg_store.h): the memory and sqlite drivers on
 * the same cases where they share semantics (round trip of every field,
 * updates, recovery reads, listing, statistics, unique keys, cleanup,
 * job states), then what only a file has: barrier ordering under load,
 * reopening, migrations, kill -9 durability, and faults (disk full, locked
 * database, queue bound, read-only directory, corrupt file, a disk that
 * stays nearly full, the file deleted under the store); maintenance tasks
 * handed to the store and coming back; opening writes nothing; the file
 * is private and no link is followed. Real SQLite files in a mkdtemp
 * directory per test.
 */

#include "hg_core.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <setjmp.h>
#include <cmocka.h>

#if HG_HAVE_SQLITE
#include <sqlite3.h>
#endif

#include "hg_log.h"
#include "hg_store.h"

#include "fault_alloc.h"
#include "store_helpers.h"
#if HG_HAVE_SQLITE
#include "fault_io.h"
#endif

typedef struct fixture_s {
    char dir[64];
    char path[128];
    char log[128];
    hg_conf_t conf;
    const char *driver;
} fixture_t;

static const char *const memory_driver = "memory";
static const char *const sqlite_driver = "sqlite";

/* --- helpers ------------------------------------------------------------- */

static int
setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->driver = *state != NULL ? *state : sqlite_driver;
    snprintf(f->dir, sizeof(f->dir), "/tmp/hg_test_store.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/var/hourglass.db", f->dir);
    snprintf(f->log, sizeof(f->log), "%s/store.log", f->dir);
    f->conf.store.driver = (char *) f->driver;
    f->conf.store.path = f->path;
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
    char cmd[160];

    hg_log_close();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", f->dir);
    }
    free(f);
    return 0;
}

static char *
slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    char *buf;
    long len;

    if (fp == NULL) {
        return strdup("");
    }
    fseek(fp, 0, SEEK_END);
    len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = calloc(1, (size_t) len + 1);
    assert_non_null(buf);
    if (len > 0 && fread(buf, 1, (size_t) len, fp) != (size_t) len) {
        fail_msg("short read of %s", path);
    }
    fclose(fp);
    return buf;
}

static size_t
count_in(const char *text, const char *needle)
{
    size_t n = 0;

    while ((text = strstr(text, needle)) != NULL) {
        n++;
        text += strlen(needle);
    }
    return n;
}

static size_t
log_count(fixture_t *f, const char *needle)
{
    char *text = slurp(f->log);
    size_t n = count_in(text, needle);

    free(text);
    return n;
}

static hg_store_t *
open_store(fixture_t *f, const hg_store_options_t *options)
{
    char err[512] = "";
    hg_store_t *store = hg_store_open_with(&f->conf, options, err,
                                           sizeof(err));

    if (store == NULL) {
        fail_msg("open %s: %s", f->path, err);
    }
    return store;
}

typedef struct rec_buf_s {
    char id[40];
    char run_id[40];
    char job_id[40];
    char error[64];
    char key[40];
    char output[256];
    hg_exec_record_t r;
} rec_buf_t;

static void
make_rec(rec_buf_t *b, const char *job, int i, hg_exec_status_t status)
{
    memset(b, 0, sizeof(*b));
    snprintf(b->id, sizeof(b->id), "exec-%s-%08d", job, i);
    snprintf(b->run_id, sizeof(b->run_id), "run-%08d", i);
    snprintf(b->job_id, sizeof(b->job_id), "%s", job);
    b->r.id = b->id;
    b->r.run_id = b->run_id;
    b->r.job_id = b->job_id;
    b->r.status = status;
    b->r.attempt = 1;
    b->r.trigger = "schedule";
    b->r.scheduled_for = 1700000000000LL + (int64_t) i * 1000;
    b->r.duration_ms = -1;
    b->r.exit_code = -1;
    b->r.max_rss_kb = -1;
    b->r.priority = HG_PRIORITY_NORMAL;
    if (hg_exec_status_final(status)) {
        b->r.started_at = b->r.scheduled_for + 5;
        b->r.duration_ms = i % 1000;
        b->r.finished_at = b->r.started_at + b->r.duration_ms;
        b->r.exit_code = status == HG_EXEC_SUCCEEDED ? 0 : 1;
        snprintf(b->output, sizeof(b->output), "output of %s\n", b->id);
        b->r.output = b->output;
        b->r.output_len = strlen(b->output);
    } else if (status == HG_EXEC_RUNNING) {
        b->r.started_at = b->r.scheduled_for + 5;
        b->r.worker_pid = 4242;
    }
}

/* Whether a queued execution holds KEY. */
static bool
key_pending(hg_store_t *store, const char *key)
{
    bool pending = false;

    assert_int_equal(hg_store_unique_key_pending(store, key, &pending),
                     HG_OK);
    return pending;
}

/* --- both drivers ------------------------------------------------------- */

static void
test_roundtrip(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    hg_exec_record_t full = store_full_record();
    hg_exec_record_t sparse = {
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
    assert_int_equal(((const char *) row.r.output)[row.r.output_len], '\0');
    hg_exec_row_free(&row);

    assert_int_equal(hg_store_get_execution(store, "sparse-1", &row), HG_OK);
    assert_same_record(&sparse, &row.r);
    assert_null(row.r.run_id);
    assert_null(row.r.trigger);
    assert_null(row.r.payload);
    assert_non_null(row.r.output);
    hg_exec_row_free(&row);

    assert_int_equal(hg_store_get_execution(store, "no-such-id", &row),
                     HG_AGAIN);
    hg_store_close(store);
}

static void
test_invalid_records(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    hg_exec_record_t r = { .id = "x", .job_id = "j" };

    r.id = NULL;
    assert_int_equal(hg_store_put_execution(store, &r), HG_ERROR);
    r.id = "x";
    r.job_id = "";
    assert_int_equal(hg_store_put_execution(store, &r), HG_ERROR);
    r.job_id = "j";
    r.output_len = 5;
    assert_int_equal(hg_store_put_execution(store, &r), HG_ERROR);
    r.output_len = 0;
    r.status = (hg_exec_status_t) 42;
    assert_int_equal(hg_store_put_execution(store, &r), HG_ERROR);
    assert_int_equal(hg_store_put_job_state(store, "", 0, false), HG_ERROR);
    assert_true(log_count(f, "not recorded") >= 4);
    hg_store_close(store);
}

static void
test_update_same_id(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    rec_buf_t b;
    hg_exec_row_t row, *rows;
    size_t n;

    /* queued, then running (separate commits), then two later states put
     * back to back (they meet in the queue) */
    make_rec(&b, "job", 1, HG_EXEC_QUEUED);
    put(store, &b.r);
    sync_store(store);
    make_rec(&b, "job", 1, HG_EXEC_RUNNING);
    put(store, &b.r);
    sync_store(store);
    assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
    assert_int_equal(row.r.status, HG_EXEC_RUNNING);
    assert_int_equal(row.r.worker_pid, 4242);
    hg_exec_row_free(&row);

    make_rec(&b, "job", 1, HG_EXEC_FAILED);
    b.r.error = "exit 1";
    put(store, &b.r);
    make_rec(&b, "job", 1, HG_EXEC_SUCCEEDED);
    b.r.attempt = 2;
    put(store, &b.r);
    sync_store(store);

    assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
    assert_same_record(&b.r, &row.r);
    hg_exec_row_free(&row);
    assert_int_equal(hg_store_list_executions(store, "job", NULL, 0, 0,
                                              &rows, &n), HG_OK);
    assert_int_equal(n, 1);
    hg_exec_rows_free(rows, n);

    /* a queued execution put again with another due time, unique key
     * and job: every field is the new one, and so are the lists that
     * read those fields through their indexes */
    make_rec(&b, "job", 2, HG_EXEC_QUEUED);
    b.r.unique_key = "key-1";
    put(store, &b.r);
    sync_store(store);
    make_rec(&b, "other", 2, HG_EXEC_QUEUED);
    snprintf(b.id, sizeof(b.id), "exec-job-%08d", 2);
    b.r.scheduled_for += 500;
    b.r.unique_key = "key-2";
    put(store, &b.r);
    sync_store(store);
    assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
    assert_same_record(&b.r, &row.r);
    hg_exec_row_free(&row);
    assert_int_equal(hg_store_list_executions(store, "other", "queued", 0,
                                              0, &rows, &n), HG_OK);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].r.scheduled_for, b.r.scheduled_for);
    hg_exec_rows_free(rows, n);
    assert_int_equal(hg_store_list_executions(store, "job", "queued", 0, 0,
                                              &rows, &n), HG_OK);
    assert_int_equal(n, 0);
    assert_null(rows);
    assert_false(key_pending(store, "key-1"));
    assert_true(key_pending(store, "key-2"));
    hg_store_close(store);
}

static void
test_load_unfinished(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    static const hg_exec_status_t statuses[] = {
        HG_EXEC_SUCCEEDED, HG_EXEC_QUEUED, HG_EXEC_RUNNING, HG_EXEC_DEAD,
        HG_EXEC_FAILED, HG_EXEC_QUEUED, HG_EXEC_SKIPPED, HG_EXEC_RUNNING,
        HG_EXEC_CRASHED, HG_EXEC_MISSED,
    };
    rec_buf_t b;
    hg_exec_row_t *rows;
    size_t n, i;
    int i_rec;

    for (i_rec = 0; i_rec < 10; i_rec++) {
        /* put in reverse order: the result is sorted by scheduled_for */
        int k = 9 - i_rec;
        make_rec(&b, "job", k, statuses[k]);
        if (statuses[k] == HG_EXEC_QUEUED) {
            b.r.payload = "payload\0x";
            b.r.payload_len = 9;
        }
        put(store, &b.r);
    }
    sync_store(store);
    assert_int_equal(hg_store_load_unfinished(store, &rows, &n), HG_OK);
    assert_int_equal(n, 4);
    assert_string_equal(rows[0].r.id, "exec-job-00000001");
    assert_int_equal(rows[0].r.status, HG_EXEC_QUEUED);
    assert_int_equal(rows[0].r.payload_len, 9);
    assert_memory_equal(rows[0].r.payload, "payload\0x", 9);
    assert_string_equal(rows[1].r.id, "exec-job-00000002");
    assert_int_equal(rows[1].r.status, HG_EXEC_RUNNING);
    assert_string_equal(rows[2].r.id, "exec-job-00000005");
    assert_string_equal(rows[3].r.id, "exec-job-00000007");
    for (i = 1; i < n; i++) {
        assert_true(rows[i - 1].r.scheduled_for <= rows[i].r.scheduled_for);
    }
    hg_exec_rows_free(rows, n);
    hg_store_close(store);
}

static void
test_list(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    rec_buf_t b;
    hg_exec_row_t *rows;
    size_t n, i;
    int k;

    /* 30 executions of "a" (every 5th dead), 10 of "b"; "b" 100 is the
     * newest of all */
    for (k = 0; k < 30; k++) {
        make_rec(&b, "a", k, k % 5 == 0 ? HG_EXEC_DEAD : HG_EXEC_SUCCEEDED);
        put(store, &b.r);
    }
    for (k = 91; k <= 100; k++) {
        make_rec(&b, "b", k, k == 95 ? HG_EXEC_DEAD : HG_EXEC_FAILED);
        put(store, &b.r);
    }
    sync_store(store);

    assert_int_equal(hg_store_list_executions(store, NULL, NULL, 0, 0,
                                              &rows, &n), HG_OK);
    assert_int_equal(n, 40);
    assert_string_equal(rows[0].r.id, "exec-b-00000100");
    for (i = 1; i < n; i++) {
        assert_true(rows[i - 1].r.scheduled_for > rows[i].r.scheduled_for);
    }
    assert_null(rows[0].r.output);      /* lists leave output out */
    assert_int_equal(rows[0].r.output_len, 0);
    hg_exec_rows_free(rows, n);

    /* a job's page: newest first, limit and offset */
    assert_int_equal(hg_store_list_executions(store, "a", NULL, 10, 5,
                                              &rows, &n), HG_OK);
    assert_int_equal(n, 10);
    assert_string_equal(rows[0].r.id, "exec-a-00000024");
    assert_string_equal(rows[9].r.id, "exec-a-00000015");
    hg_exec_rows_free(rows, n);
    assert_int_equal(hg_store_list_executions(store, "a", NULL, 10, 25,
                                              &rows, &n), HG_OK);
    assert_int_equal(n, 5);
    assert_string_equal(rows[4].r.id, "exec-a-00000000");
    hg_exec_rows_free(rows, n);
    assert_int_equal(hg_store_list_executions(store, "a", NULL, 10, 30,
                                              &rows, &n), HG_OK);
    assert_int_equal(n, 0);
    assert_null(rows);

    /* a page's total: what the list holds without limit or offset */
    {
        uint64_t total;

        assert_int_equal(hg_store_count_executions(store, NULL, NULL,
                                                   &total), HG_OK);
        assert_int_equal(total, 40);
        assert_int_equal(hg_store_count_executions(store, "a", NULL,
                                                   &total), HG_OK);
        assert_int_equal(total, 30);
        assert_int_equal(hg_store_count_executions(store, "a", "dead",
                                                   &total), HG_OK);
        assert_int_equal(total, 6);
        assert_int_equal(hg_store_count_executions(store, NULL, "dead",
                                                   &total), HG_OK);
        assert_int_equal(total, 7);
        assert_int_equal(hg_store_count_executions(store, "c", NULL,
                                                   &total), HG_OK);
        assert_int_equal(total, 0);
        assert_int_equal(hg_store_count_executions(store, NULL, "fine",
                                                   &total), HG_ERROR);
    }

    /* the dead-letter list, all jobs, then one */
    assert_int_equal(hg_store_list_executions(store, NULL, "dead", 0, 0,
                                              &rows, &n), HG_OK);
    assert_int_equal(n, 7);
    assert_string_equal(rows[0].r.id, "exec-b-00000095");
    assert_string_equal(rows[1].r.id, "exec-a-00000025");
    for (i = 0; i < n; i++) {
        assert_int_equal(rows[i].r.status, HG_EXEC_DEAD);
    }
    hg_exec_rows_free(rows, n);
    assert_int_equal(hg_store_list_executions(store, "a", "dead", 2, 1,
                                              &rows, &n), HG_OK);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].r.id, "exec-a-00000020");
    assert_string_equal(rows[1].r.id, "exec-a-00000015");
    hg_exec_rows_free(rows, n);

    assert_int_equal(hg_store_list_executions(store, NULL, "deadd", 0, 0,
                                              &rows, &n), HG_ERROR);
    assert_int_equal(hg_store_list_executions(store, "nope", NULL, 0, 0,
                                              &rows, &n), HG_OK);
    assert_int_equal(n, 0);
    hg_store_close(store);
}

/* Executions due at the same time list by id, newest first (both drivers
 * alike); the job states read back are those of jobs that have one, not
 * of every job with history. */
static void
test_list_ties_and_states(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    rec_buf_t b[3];
    hg_exec_row_t *rows;
    json_t *states;
    size_t n;
    int k;

    for (k = 0; k < 3; k++) {
        make_rec(&b[k], "tie", k, HG_EXEC_SUCCEEDED);
        b[k].r.scheduled_for = 1700000000000LL;
    }
    put(store, &b[1].r);
    put(store, &b[0].r);
    put(store, &b[2].r);
    assert_int_equal(hg_store_put_job_state(store, "paused-one", 42, true),
                     HG_OK);
    sync_store(store);

    assert_int_equal(hg_store_list_executions(store, "tie", NULL, 0, 0,
                                              &rows, &n), HG_OK);
    assert_int_equal(n, 3);
    assert_string_equal(rows[0].r.id, "exec-tie-00000002");
    assert_string_equal(rows[1].r.id, "exec-tie-00000001");
    assert_string_equal(rows[2].r.id, "exec-tie-00000000");
    hg_exec_rows_free(rows, n);

    assert_int_equal(hg_store_load_job_states(store, &states), HG_OK);
    assert_int_equal(json_object_size(states), 1);
    assert_null(json_object_get(states, "tie"));
    assert_int_equal(json_integer_value(json_object_get(
        json_object_get(states, "paused-one"), "last_fire")), 42);
    assert_true(json_is_true(json_object_get(
        json_object_get(states, "paused-one"), "paused")));
    json_decref(states);
    hg_store_close(store);
}

static void
put_final(hg_store_t *store, const char *job, int i, hg_exec_status_t status,
          int64_t duration)
{
    rec_buf_t b;

    make_rec(&b, job, i, status);
    b.r.duration_ms = duration;
    b.r.finished_at = b.r.started_at + (duration > 0 ? duration : 0);
    put(store, &b.r);
}

static void
test_job_stats(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    hg_job_stats_t st;
    rec_buf_t b;
    int i;

    /* "a": durations 1..100 ms; 90 succeeded, 10 failed (every 10th) */
    for (i = 1; i <= 100; i++) {
        put_final(store, "a", i, i % 10 == 0 ? HG_EXEC_FAILED
                                             : HG_EXEC_SUCCEEDED, i);
    }
    /* not final: no count */
    make_rec(&b, "a", 500, HG_EXEC_RUNNING);
    put(store, &b.r);
    make_rec(&b, "a", 501, HG_EXEC_QUEUED);
    put(store, &b.r);
    sync_store(store);

    assert_int_equal(hg_store_job_stats(store, "a", &st), HG_OK);
    assert_int_equal(st.runs, 100);
    assert_int_equal(st.successes, 90);
    assert_int_equal(st.failures, 10);
    assert_true(st.mean_duration_ms > 50.49 && st.mean_duration_ms < 50.51);
    assert_int_equal(st.p95_duration_ms, 95);
    assert_int_equal(st.last_run, 1700000000000LL + 100 * 1000 + 5 + 100);
    assert_int_equal(st.last_status, HG_EXEC_FAILED);

    /* the running one ends (counted once, even when put twice), the last
     * failure becomes dead (moves within failures), one is skipped
     * (a run, neither success nor failure, no duration) */
    put_final(store, "a", 500, HG_EXEC_SUCCEEDED, 200);
    sync_store(store);
    put_final(store, "a", 500, HG_EXEC_SUCCEEDED, 200);
    put_final(store, "a", 100, HG_EXEC_DEAD, 100);
    make_rec(&b, "a", 502, HG_EXEC_SKIPPED);
    b.r.duration_ms = -1;
    put(store, &b.r);
    sync_store(store);
    assert_int_equal(hg_store_job_stats(store, "a", &st), HG_OK);
    assert_int_equal(st.runs, 102);
    assert_int_equal(st.successes, 91);
    assert_int_equal(st.failures, 10);
    assert_true(st.mean_duration_ms > (5050.0 + 200) / 101 - 0.01
                && st.mean_duration_ms < (5050.0 + 200) / 101 + 0.01);
    assert_int_equal(st.p95_duration_ms, 96);
    assert_int_equal(st.last_status, HG_EXEC_SKIPPED);

    /* a dead execution retried under its id stops counting */
    make_rec(&b, "a", 100, HG_EXEC_QUEUED);
    put(store, &b.r);
    sync_store(store);
    assert_int_equal(hg_store_job_stats(store, "a", &st), HG_OK);
    assert_int_equal(st.runs, 101);
    assert_int_equal(st.failures, 9);

    /* "b": long durations, p95 within a bucket (1/64) */
    for (i = 1; i <= 1000; i++) {
        put_final(store, "b", i, HG_EXEC_SUCCEEDED, (int64_t) i * 1000);
    }
    sync_store(store);
    assert_int_equal(hg_store_job_stats(store, "b", &st), HG_OK);
    assert_int_equal(st.runs, 1000);
    assert_true(st.p95_duration_ms >= 950000);
    assert_true(st.p95_duration_ms <= 950000 + 950000 / 64);
    assert_true(st.mean_duration_ms > 500499 && st.mean_duration_ms < 500501);

    /* no such job: zeros */
    assert_int_equal(hg_store_job_stats(store, "nope", &st), HG_OK);
    assert_int_equal(st.runs, 0);
    assert_int_equal(st.last_run, 0);

    /* retention cleanup leaves statistics alone */
    {
        uint64_t deleted;
        assert_int_equal(hg_store_cleanup(store, INT64_MAX, 100, &deleted),
                         HG_OK);
        assert_true(deleted > 1000);
        assert_int_equal(hg_store_job_stats(store, "b", &st), HG_OK);
        assert_int_equal(st.runs, 1000);
    }
    hg_store_close(store);
}

static void
test_buckets(void **state)
{
    int64_t v;
    unsigned prev = 0, bk;

    HG_UNUSED(state);
    for (v = 0; v < 128; v++) {
        assert_int_equal(hg_store_duration_bucket(v), (unsigned) v);
        assert_int_equal(hg_store_bucket_high((unsigned) v), v);
    }
    for (v = 1; v < INT64_MAX / 3; v = v * 3 + 1) {
        bk = hg_store_duration_bucket(v);
        assert_true(bk >= prev);
        prev = bk;
        assert_true(hg_store_bucket_high(bk) >= v);
        assert_true(hg_store_bucket_high(bk) - v <= v / 64);
        if (bk > 0) {
            assert_true(hg_store_bucket_high(bk - 1) < v);
        }
    }
    assert_int_equal(hg_store_bucket_high(hg_store_duration_bucket(INT64_MAX)),
                     INT64_MAX);
}

static void
test_unique_key(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    rec_buf_t b;
    bool pending;

    make_rec(&b, "q", 1, HG_EXEC_QUEUED);
    b.r.unique_key = "invoice-42";
    put(store, &b.r);
    make_rec(&b, "q", 2, HG_EXEC_SUCCEEDED);
    b.r.unique_key = "invoice-41";
    put(store, &b.r);
    sync_store(store);

    assert_true(key_pending(store, "invoice-42"));
    assert_false(key_pending(store, "invoice-41"));
    assert_int_equal(hg_store_unique_key_pending(store, "other", &pending),
                     HG_OK);
    assert_false(pending);
    assert_int_equal(hg_store_unique_key_pending(store, NULL, &pending),
                     HG_OK);
    assert_false(pending);

    make_rec(&b, "q", 1, HG_EXEC_RUNNING);
    b.r.unique_key = "invoice-42";
    put(store, &b.r);
    sync_store(store);
    assert_int_equal(hg_store_unique_key_pending(store, "invoice-42",
                                                 &pending), HG_OK);
    assert_false(pending);
    hg_store_close(store);
}

static void
test_cleanup(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    rec_buf_t b;
    hg_exec_row_t *rows, row;
    size_t n;
    uint64_t deleted;
    int i;
    int64_t cut = 1700000000000LL + 2600 * 1000;

    /* 2500 old finished, 5 old dead, 3 queued with a finished_at (retry
     * waiting), 10 recent ones */
    for (i = 0; i < 2500; i++) {
        make_rec(&b, "c", i, i % 2 ? HG_EXEC_SUCCEEDED : HG_EXEC_FAILED);
        put(store, &b.r);
    }
    for (i = 2500; i < 2505; i++) {
        make_rec(&b, "c", i, HG_EXEC_DEAD);
        put(store, &b.r);
    }
    for (i = 2505; i < 2508; i++) {
        make_rec(&b, "c", i, HG_EXEC_FAILED);
        b.r.status = HG_EXEC_QUEUED;
        put(store, &b.r);
    }
    for (i = 3000; i < 3010; i++) {
        make_rec(&b, "c", i, HG_EXEC_SUCCEEDED);
        put(store, &b.r);
    }
    sync_store(store);

    assert_int_equal(hg_store_cleanup(store, cut, 1000, &deleted), HG_OK);
    assert_int_equal(deleted, 2500);
    assert_int_equal(hg_store_list_executions(store, "c", NULL, 0, 0,
                                              &rows, &n), HG_OK);
    assert_int_equal(n, 18);
    hg_exec_rows_free(rows, n);
    assert_int_equal(hg_store_get_execution(store, "exec-c-00002500", &row),
                     HG_OK);
    hg_exec_row_free(&row);
    assert_int_equal(hg_store_get_execution(store, "exec-c-00000001", &row),
                     HG_AGAIN);

    /* a batch size that does not divide the count; nothing left after */
    for (i = 4000; i < 4023; i++) {
        make_rec(&b, "d", i, HG_EXEC_SUCCEEDED);
        put(store, &b.r);
    }
    sync_store(store);
    assert_int_equal(hg_store_cleanup(store, INT64_MAX, 7, &deleted), HG_OK);
    assert_int_equal(deleted, 23 + 10);
    assert_int_equal(hg_store_cleanup(store, INT64_MAX, 7, &deleted), HG_OK);
    assert_int_equal(deleted, 0);
    assert_int_equal(hg_store_vacuum(store), HG_OK);
    hg_store_close(store);
}

/* The jobs defined through the API: written, read back whole, replaced
 * (keeping their creator and birth), deleted; the store's reopen (the
 * restart) finds what was written (sqlite). */
static void
test_api_jobs_kept(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    json_t *jobs, *rec, *one;

    rec = json_pack("{s:{s:s, s:s, s:s}, s:s, s:I, s:I}", "definition",
                    "id", "web", "type", "echo", "every", "1h",
                    "created_by", "api:ops", "created_at", (json_int_t) 1000,
                    "updated_at", (json_int_t) 1000);
    assert_int_equal(hg_store_put_job(store, "web", rec), HG_OK);
    json_object_set_new(rec, "created_by", json_string("api:other"));
    json_object_set_new(rec, "created_at", json_integer(5000));
    json_object_set_new(rec, "updated_at", json_integer(5000));
    json_object_set_new(json_object_get(rec, "definition"), "every",
                        json_string("2h"));
    assert_int_equal(hg_store_put_job(store, "web", rec), HG_OK);
    assert_int_equal(hg_store_put_job(store, "gone", rec), HG_OK);
    assert_int_equal(hg_store_put_job(store, "gone", NULL), HG_OK);
    json_decref(rec);
    rec = json_object();                /* no definition */
    assert_int_equal(hg_store_put_job(store, "bad", rec), HG_ERROR);
    json_decref(rec);
    if (strcmp(f->driver, sqlite_driver) == 0) {
        hg_store_close(store);
        store = open_store(f, NULL);
    }
    assert_int_equal(hg_store_load_jobs(store, &jobs), HG_OK);
    assert_int_equal(json_object_size(jobs), 1);
    one = json_object_get(jobs, "web");
    assert_string_equal(json_string_value(json_object_get(
        json_object_get(one, "definition"), "every")), "2h");
    assert_string_equal(json_string_value(json_object_get(one,
                                                          "created_by")),
                        "api:ops");
    assert_int_equal(json_integer_value(json_object_get(one, "created_at")),
                     1000);
    assert_int_equal(json_integer_value(json_object_get(one, "updated_at")),
                     5000);
    json_decref(jobs);
    hg_store_close(store);
}

static void
test_job_states(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    json_t *states, *one;

    assert_int_equal(hg_store_put_job_state(store, "a", 1000, false), HG_OK);
    assert_int_equal(hg_store_put_job_state(store, "b", 2000, true), HG_OK);
    sync_store(store);
    assert_int_equal(hg_store_put_job_state(store, "a", 3000, true), HG_OK);
    assert_int_equal(hg_store_put_job_state(store, "a", 4000, false), HG_OK);
    sync_store(store);

    assert_int_equal(hg_store_load_job_states(store, &states), HG_OK);
    assert_int_equal(json_object_size(states), 2);
    one = json_object_get(states, "a");
    assert_int_equal(json_integer_value(json_object_get(one, "last_fire")),
                     4000);
    assert_true(json_is_false(json_object_get(one, "paused")));
    one = json_object_get(states, "b");
    assert_int_equal(json_integer_value(json_object_get(one, "last_fire")),
                     2000);
    assert_true(json_is_true(json_object_get(one, "paused")));
    json_decref(states);
    hg_store_close(store);
}

static void
test_health(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    json_t *report;
    rec_buf_t b;
    static const char *const keys[] = {
        "driver", "path", "queue_depth", "written", "write_errors",
        "failing", "last_error", "dropped", "committed",
    };
    size_t i;

    make_rec(&b, "h", 1, HG_EXEC_SUCCEEDED);
    put(store, &b.r);
    sync_store(store);
    assert_int_equal(hg_store_health(store, &report), HG_OK);
    for (i = 0; i < HG_NELEMS(keys); i++) {
        if (json_object_get(report, keys[i]) == NULL) {
            fail_msg("health has no %s", keys[i]);
        }
    }
    assert_string_equal(json_string_value(json_object_get(report, "driver")),
                        f->driver);
    assert_int_equal(json_integer_value(json_object_get(report, "written")),
                     1);
    assert_true(json_is_false(json_object_get(report, "failing")));
    if (f->driver == sqlite_driver) {
        assert_true(json_integer_value(json_object_get(report, "size_bytes"))
                    > 0);
        assert_true(json_is_integer(json_object_get(report, "wal_bytes")));
        assert_string_equal(json_string_value(json_object_get(report,
                                                              "path")),
                            f->path);
        assert_true(store->notify_fd >= 0);
    } else {
        assert_int_equal(store->notify_fd, -1);
    }
    json_decref(report);
    hg_store_close(store);
}

/* --- sqlite only --------------------------------------------------------- */

/* --- maintenance tasks (hg_store_task) ---------------------------------- */

static int released;

static void
count_release(void *cookie)
{
    HG_UNUSED(cookie);
    released++;
}

/* Waits (poll on notify_fd, as the master does) for a finished task. */
static hg_store_task_t *
wait_task(hg_store_t *store, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    hg_store_task_t *done;
    struct pollfd pfd;

    for (;;) {
        (void) hg_store_ack(store);
        done = hg_store_task_done(store);
        if (done != NULL || store->notify_fd < 0 || mono_ms() > end) {
            return done;
        }
        pfd.fd = store->notify_fd;
        pfd.events = POLLIN;
        (void) poll(&pfd, 1, 100);
    }
}

static hg_store_task_t *
new_task(hg_store_task_kind_t kind, void *cookie)
{
    hg_store_task_t *task = calloc(1, sizeof(*task));

    assert_non_null(task);
    task->kind = kind;
    task->cookie = cookie;
    task->release = count_release;
    return task;
}

/* A task is handed over and comes back through the completion
 * descriptor (sqlite: from the maintenance thread; memory: at once),
 * with its cookie and its outcome; one still in the store's hands at
 * close is freed and its cookie released. */
static void
test_task_async(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    hg_store_task_t *task, *done;
    hg_exec_row_t row;
    rec_buf_t b;
    int i, cookie = 42;

    for (i = 0; i < 10; i++) {
        put_final(store, "old", i, HG_EXEC_SUCCEEDED, 5);
    }
    put_final(store, "old", 10, HG_EXEC_DEAD, 5);
    make_rec(&b, "old", 11, HG_EXEC_QUEUED);
    put(store, &b.r);
    sync_store(store);

    task = new_task(HG_STORE_TASK_CLEANUP, &cookie);
    task->older_than = 1700000000000LL + 100 * 1000;
    task->batch = 3;
    assert_int_equal(hg_store_task(store, task), HG_OK);
    done = wait_task(store, 20000);
    assert_ptr_equal(done, task);
    assert_ptr_equal(done->cookie, &cookie);
    assert_int_equal(done->rc, HG_OK);
    assert_int_equal(done->deleted, 10);
    assert_null(hg_store_task_done(store));
    free(done);
    /* dead and queued stay */
    assert_int_equal(hg_store_get_execution(store, "exec-old-00000010", &row),
                     HG_OK);
    hg_exec_row_free(&row);
    assert_int_equal(hg_store_get_execution(store, "exec-old-00000011", &row),
                     HG_OK);
    hg_exec_row_free(&row);
    assert_int_equal(hg_store_get_execution(store, "exec-old-00000001", &row),
                     HG_AGAIN);

    task = new_task(HG_STORE_TASK_HEALTH, NULL);
    assert_int_equal(hg_store_task(store, task), HG_OK);
    done = wait_task(store, 20000);
    assert_ptr_equal(done, task);
    assert_int_equal(done->rc, HG_OK);
    free(done);

    released = 0;
    assert_int_equal(hg_store_task(store, new_task(HG_STORE_TASK_VACUUM,
                                                   NULL)), HG_OK);
    hg_store_close(store);
    assert_int_equal(released, 1);
}

#if HG_HAVE_SQLITE

/* QUERY task: whether execution "exec-q-00000001" reads back, in
 * task->deleted (1 found, 0 not). */
static int
read_q1(hg_store_t *store, hg_store_task_t *task)
{
    hg_exec_row_t row;
    int rc = hg_store_get_execution(store, "exec-q-00000001", &row);

    if (rc == HG_OK) {
        hg_exec_row_free(&row);
    }
    task->deleted = rc == HG_OK;
    return HG_OK;
}

/* A query reads what was put before it was handed over: while another
 * process holds the database, the record waits in the queue and so does
 * the query; once the writer commits, the query finds the record. */
static void
test_query_reads_what_was_put(void **state)
{
    fixture_t *f = *state;
    hg_store_options_t opt = { .busy_timeout_ms = 60 * 1000 };
    hg_store_t *store = open_store(f, &opt);
    hg_store_task_t *task, *done;
    sqlite3 *db;
    rec_buf_t b;
    int i;

    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                     SQLITE_OK);
    make_rec(&b, "q", 1, HG_EXEC_SUCCEEDED);
    put(store, &b.r);
    task = new_task(HG_STORE_TASK_QUERY, NULL);
    task->query = read_q1;
    assert_int_equal(hg_store_task(store, task), HG_OK);
    /* the writer cannot commit: the query has not read */
    for (i = 0; i < 30; i++) {
        poll(NULL, 0, 10);
        assert_null(hg_store_task_done(store));
    }
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    done = wait_task(store, 20000);
    assert_ptr_equal(done, task);
    assert_int_equal(done->rc, HG_OK);
    assert_int_equal(done->deleted, 1);     /* found */
    free(done);
    hg_store_close(store);
}

/* Prints the store's fault lines of the log, for the reader of the run. */
static void
show_fault_lines(fixture_t *f)
{
    char *text = slurp(f->log), *line, *save = NULL;

    for (line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save))
    {
        if (strstr(line, "store:") != NULL
            && strstr(line, "schema version") == NULL)
        {
            print_message("  log: %s\n", line);
        }
    }
    free(text);
}

/* Waits until the writer reports failing (or not), acking as it goes. */
static bool
wait_failing(hg_store_t *store, bool failing, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;

    for (;;) {
        (void) hg_store_ack(store);
        if (store->failing == failing) {
            return true;
        }
        if (mono_ms() > end) {
            return false;
        }
        usleep(2000);
    }
}


/* Puts flow while the writer commits (in chunks); barriers are issued
 * every 97 puts and acknowledged out of step. Tickets grow with the puts;
 * whenever a barrier's ticket is acknowledged, everything put before it
 * must be readable, with its latest state. */
static void
test_barrier_ordering(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    enum { N = 20000, EVERY = 97 };
    uint64_t *tickets, ticket, acked = 0, seen = 0, last_checked = 0;
    int *before, nb = 0, i, j, k, last_barrier = 0;
    rec_buf_t b;
    hg_exec_row_t row;

    tickets = calloc(N / EVERY + 2, sizeof(*tickets));
    before = calloc(N / EVERY + 2, sizeof(*before));
    assert_non_null(tickets);
    assert_non_null(before);
    for (i = 0; i < N; i++) {
        make_rec(&b, "o", i, HG_EXEC_RUNNING);
        put(store, &b.r);
        if (i >= 3) {
            /* an earlier one ends: the same id again */
            make_rec(&b, "o", i - 3, HG_EXEC_SUCCEEDED);
            put(store, &b.r);
        }
        if (i % EVERY == EVERY - 1) {
            assert_int_equal(hg_store_barrier(store, &ticket), HG_OK);
            assert_true(nb == 0 || ticket > tickets[nb - 1]);
            tickets[nb] = ticket;
            before[nb++] = i;
        }
        if (i % 500 == 0) {
            /* let the writer catch up now and then, as an event loop's
             * turn would */
            struct pollfd pfd = { store->notify_fd, POLLIN, 0 };
            (void) poll(&pfd, 1, 5);
        }
        if (i % 31 == 0) {
            acked = hg_store_ack(store);
            assert_true(acked >= seen);          /* never goes back */
            seen = acked;
            /* check the newest acknowledged barrier */
            for (j = nb; j > 0 && tickets[j - 1] > acked; j--) {
            }
            if (j > last_barrier) {
                last_barrier = j;
                k = before[j - 1];
                make_rec(&b, "o", k, HG_EXEC_RUNNING);
                assert_int_equal(hg_store_get_execution(store, b.id, &row),
                                 HG_OK);
                hg_exec_row_free(&row);
                make_rec(&b, "o", k - 3, HG_EXEC_SUCCEEDED);
                assert_int_equal(hg_store_get_execution(store, b.id, &row),
                                 HG_OK);
                assert_int_equal(row.r.status, HG_EXEC_SUCCEEDED);
                hg_exec_row_free(&row);
                last_checked = acked;
            }
        }
    }
    sync_store(store);
    assert_true(last_checked > 0);
    for (i = 0; i < N; i++) {
        make_rec(&b, "o", i, HG_EXEC_RUNNING);
        assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
        assert_int_equal(row.r.status, i < N - 3 ? HG_EXEC_SUCCEEDED
                                                 : HG_EXEC_RUNNING);
        hg_exec_row_free(&row);
    }
    free(tickets);
    free(before);
    hg_store_close(store);
}

/* Records written by the writer so far. */
static uint64_t
written(hg_store_t *store)
{
    hg_store_figures_t fig;

    hg_store_figures(store, &fig);
    return fig.written;
}

/* Waits until the writer waits for work, as it does once what it was
 * given is committed: a gathered put then stays queued until a flush or
 * a barrier wakes it. False after TIMEOUT_MS. */
static bool
wait_writer_idle(hg_store_t *store, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    hg_store_figures_t fig;

    for (;;) {
        hg_store_figures(store, &fig);
        if (fig.idle) {
            return true;
        }
        if (mono_ms() > end) {
            return false;
        }
        usleep(2000);
    }
}

/* Waits until the writer wrote N records; false after TIMEOUT_MS. */
static bool
wait_written(hg_store_t *store, uint64_t n, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;

    while (written(store) < n) {
        if (mono_ms() > end) {
            return false;
        }
        usleep(2000);
    }
    return true;
}

/* A burst is committed in chunks: the barrier for a record put first
 * has a ticket below the barrier for everything (its start waits for its
 * chunk only), and once that ticket is acknowledged the record is there;
 * a record replaced in place keeps its ticket, one put after its first
 * record was taken gets a new one. */
static void
test_barrier_for_a_record(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    enum { N = 1000 };
    uint64_t before, first, again, all;
    rec_buf_t b;
    hg_exec_row_t row;
    int i;

    /* The writer parked, as in test_gathered_puts_wait_for_flush. */
    sync_store(store);
    assert_int_equal(hg_store_barrier(store, &before), HG_OK);
    assert_true(wait_ticket(store, before, 10000));
    assert_true(wait_writer_idle(store, 10000));
    hg_store_gather(store);
    for (i = 0; i < N; i++) {
        make_rec(&b, "burst", i, HG_EXEC_QUEUED);
        put(store, &b.r);
    }
    make_rec(&b, "burst", 0, HG_EXEC_RUNNING);      /* the first starts */
    put(store, &b.r);
    assert_int_equal(hg_store_barrier_for(store, b.id, &first), HG_OK);
    assert_int_equal(hg_store_barrier(store, &all), HG_OK);
    assert_true(before < first && first < all);
    /* replaced in place: the first put's ticket, the first of N */
    assert_true(first - before <= (all - before) / N);
    assert_true(wait_ticket(store, first, 10000));
    assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
    assert_int_equal(row.r.status, HG_EXEC_RUNNING);
    hg_exec_row_free(&row);
    assert_true(wait_ticket(store, all, 10000));
    /* put again once taken: a new ticket, after everything before */
    make_rec(&b, "burst", 0, HG_EXEC_SUCCEEDED);
    put(store, &b.r);
    assert_int_equal(hg_store_barrier_for(store, b.id, &again), HG_OK);
    assert_true(again > all);
    hg_store_flush(store);
    assert_true(wait_ticket(store, again, 10000));
    assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
    assert_int_equal(row.r.status, HG_EXEC_SUCCEEDED);
    hg_exec_row_free(&row);
    hg_store_close(store);
}

/* A start behind a burst of queued fires: its barrier moves its record
 * ahead of theirs, right behind the record moved before it, so it waits
 * for a transaction of its own and not for the burst; the fires follow,
 * in their order. */
static void
test_barrier_moves_a_start_ahead(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    enum { N = 1000 };
    uint64_t head, late, all;
    rec_buf_t b;
    hg_exec_row_t row;
    int i;

    sync_store(store);
    assert_true(wait_writer_idle(store, 10000));
    hg_store_gather(store);
    hg_store_set_starting(store, true); /* as the master in a burst */
    for (i = 0; i < N; i++) {
        make_rec(&b, "burst", i, HG_EXEC_QUEUED);
        put(store, &b.r);
    }
    make_rec(&b, "burst", 0, HG_EXEC_RUNNING);
    put(store, &b.r);
    assert_int_equal(hg_store_barrier_for(store, b.id, &head), HG_OK);
    make_rec(&b, "burst", N - 1, HG_EXEC_RUNNING);  /* the last fire */
    put(store, &b.r);
    assert_int_equal(hg_store_barrier_for(store, b.id, &late), HG_OK);
    assert_int_equal(late, head + 1);   /* ahead of the 998 between */
    assert_true(wait_ticket(store, late, 10000));
    assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
    assert_int_equal(row.r.status, HG_EXEC_RUNNING);
    hg_exec_row_free(&row);
    assert_int_equal(hg_store_barrier(store, &all), HG_OK);
    assert_true(late < all);
    hg_store_set_starting(store, false);
    hg_store_flush(store);
    assert_true(wait_ticket(store, all, 10000));
    make_rec(&b, "burst", N / 2, HG_EXEC_QUEUED);
    assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
    assert_int_equal(row.r.status, HG_EXEC_QUEUED);
    hg_exec_row_free(&row);
    hg_store_close(store);
}

/* A gathering caller's puts wait for its flush (or a barrier); the last
 * ticket committed can be read without acking. */
static void
test_gathered_puts_wait_for_flush(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    uint64_t ticket;
    rec_buf_t b;

    /* The writer parked: one that is awake anyway (finishing a commit)
     * takes what is queued, gathered or not. */
    sync_store(store);
    assert_true(wait_writer_idle(store, 10000));
    hg_store_gather(store);
    make_rec(&b, "g", 1, HG_EXEC_QUEUED);
    put(store, &b.r);
    hg_store_put_job_state(store, "g", 1700000001000LL, false);
    /* Nothing wakes the writer: after 200 ms the record still waits. */
    usleep(200 * 1000);
    assert_int_equal(written(store), 0);
    hg_store_flush(store);
    assert_true(wait_written(store, 1, 10000));

    /* A barrier takes what was gathered with it (the writer parked
     * again: awake, it would take the record without one). */
    assert_true(wait_writer_idle(store, 10000));
    make_rec(&b, "g", 2, HG_EXEC_RUNNING);
    put(store, &b.r);
    usleep(100 * 1000);
    assert_int_equal(written(store), 1);
    assert_int_equal(hg_store_barrier(store, &ticket), HG_OK);
    assert_true(wait_written(store, 2, 10000));
    /* Published before the notification: peek sees it, no ack needed. */
    {
        int64_t end = mono_ms() + 10000;

        while (hg_store_peek(store) < ticket && mono_ms() < end) {
            usleep(1000);
        }
    }
    assert_true(hg_store_peek(store) >= ticket);
    hg_store_close(store);
}

static void
test_reopen(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    hg_exec_row_t row;
    hg_job_stats_t st;
    json_t *states;
    rec_buf_t b;
    int i;

    for (i = 0; i < 100; i++) {
        put_final(store, "r", i, HG_EXEC_SUCCEEDED, i);
    }
    sync_store(store);
    /* these wait in the queue at close: close commits them */
    for (i = 100; i < 150; i++) {
        put_final(store, "r", i, HG_EXEC_SUCCEEDED, i);
    }
    assert_int_equal(hg_store_put_job_state(store, "r", 77, true), HG_OK);
    hg_store_close(store);

    store = open_store(f, NULL);
    for (i = 0; i < 150; i++) {
        make_rec(&b, "r", i, HG_EXEC_SUCCEEDED);
        assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
        hg_exec_row_free(&row);
    }
    assert_int_equal(hg_store_job_stats(store, "r", &st), HG_OK);
    assert_int_equal(st.runs, 150);
    assert_int_equal(hg_store_load_job_states(store, &states), HG_OK);
    assert_int_equal(json_integer_value(json_object_get(
        json_object_get(states, "r"), "last_fire")), 77);
    json_decref(states);
    hg_store_close(store);
    /* the schema was created once */
    assert_int_equal(log_count(f, "schema version 4 created"), 1);
}

/* Version 3 back to version 2's index on finished_at (every row). */
#define HG_TEST_SCHEMA_BACK_TO_V3 \
    "ALTER TABLE jobs DROP COLUMN created_by;"
#define HG_TEST_SCHEMA_BACK_TO_V2 \
    HG_TEST_SCHEMA_BACK_TO_V3 \
    "DROP INDEX executions_finished;" \
    "CREATE INDEX executions_finished ON executions (finished_at);"

/* The first column of the first row SQL gives (with ?1 bound to ARG when
 * not NULL), as text the caller frees; NULL when there is no row. */
static char *
sql_value(const char *path, const char *sql, const char *arg)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    char *value = NULL;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    if (arg != NULL) {
        assert_int_equal(sqlite3_bind_text(s, 1, arg, -1, SQLITE_STATIC),
                         SQLITE_OK);
    }
    if (sqlite3_step(s) == SQLITE_ROW) {
        value = strdup((const char *) sqlite3_column_text(s, 0));
        assert_non_null(value);
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return value;
}

static int64_t
sql_int(const char *path, const char *sql)
{
    char *text = sql_value(path, sql, NULL);
    int64_t v;

    assert_non_null(text);
    v = strtoll(text, NULL, 10);
    free(text);
    return v;
}

static int64_t
user_version(const char *path)
{
    return sql_int(path, "PRAGMA user_version");
}

static void
exec_sql(const char *path, const char *sql)
{
    sqlite3 *db;
    char *msg = NULL;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fail_msg("%s: %s", sql, msg);
    }
    sqlite3_close(db);
}

static void
make_var_dir(fixture_t *f)
{
    char dir[160];

    snprintf(dir, sizeof(dir), "%s/var", f->dir);
    assert_int_equal(mkdir(dir, 0755), 0);
}

static void
test_migration_v0(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store;
    hg_exec_row_t row;
    rec_buf_t b;

    /* a version-0 file: a database that someone made, with a table of
     * its own, and no schema of ours */
    make_var_dir(f);
    exec_sql(f->path, "CREATE TABLE notes (x TEXT);"
                      "INSERT INTO notes VALUES ('kept');");
    assert_int_equal(user_version(f->path), 0);

    store = open_store(f, NULL);
    make_rec(&b, "m", 1, HG_EXEC_SUCCEEDED);
    put(store, &b.r);
    sync_store(store);
    assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
    hg_exec_row_free(&row);
    hg_store_close(store);
    assert_int_equal(user_version(f->path), 4);
    assert_int_equal(log_count(f, "schema version 4 created"), 1);

    /* opening a current file again migrates nothing */
    store = open_store(f, NULL);
    hg_store_close(store);
    assert_int_equal(log_count(f, "schema version 4 created"), 1);
    assert_int_equal(log_count(f, "migrated"), 0);
    exec_sql(f->path, "SELECT x FROM notes");   /* their table is kept */
}

/* --- the cluster's calls -------------------------------------------------- */

static void
test_claim_fire(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    uint64_t t1 = 0, t2 = 0, t3 = 0, t4 = 0, again = 0;

    assert_int_equal(hg_store_claim_fire(store, "a", 1000, &t1), HG_OK);
    assert_true(t1 > 0);
    /* the same fire time twice: refused, the token left alone */
    assert_int_equal(hg_store_claim_fire(store, "a", 1000, &again),
                     HG_AGAIN);
    assert_int_equal(again, 0);
    /* another fire time, another job: each once, tokens growing */
    assert_int_equal(hg_store_claim_fire(store, "a", 2000, &t2), HG_OK);
    assert_int_equal(hg_store_claim_fire(store, "b", 1000, &t3), HG_OK);
    assert_true(t2 > t1);
    assert_true(t3 > t2);
    assert_int_equal(hg_store_claim_fire(store, "b", 1000, &again),
                     HG_AGAIN);
    assert_int_equal(hg_store_claim_fire(store, "", 1000, &again),
                     HG_ERROR);
    hg_store_close(store);

    if (strcmp(f->driver, "sqlite") != 0) {
        return;                     /* memory keeps nothing */
    }
    /* a claim outlives the process: a restarted instance does not start
     * a fire time twice, and never gives a token out again */
    store = open_store(f, NULL);
    assert_int_equal(hg_store_claim_fire(store, "a", 1000, &again),
                     HG_AGAIN);
    assert_int_equal(hg_store_claim_fire(store, "a", 3000, &t4), HG_OK);
    assert_true(t4 > t3);
    hg_store_close(store);
}

static void
test_claims_cleanup(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    uint64_t t1 = 0, t2 = 0, t3 = 0, again = 0, deleted = 99;

    assert_int_equal(hg_store_claim_fire(store, "a", 1000, &t1), HG_OK);
    assert_int_equal(hg_store_claim_fire(store, "a", 5000, &t2), HG_OK);
    /* retention forgets the claims of fire times before its cut-off (they
     * are not executions: not counted) and keeps the later ones */
    assert_int_equal(hg_store_cleanup(store, 2000, 0, &deleted), HG_OK);
    assert_int_equal(deleted, 0);
    assert_int_equal(hg_store_claim_fire(store, "a", 5000, &again),
                     HG_AGAIN);
    assert_int_equal(hg_store_claim_fire(store, "a", 1000, &t3), HG_OK);
    assert_true(t3 > t2);
    /* a token is never given out twice, even once every claim that had
     * the highest ones is gone */
    assert_int_equal(hg_store_cleanup(store, 6000, 0, &deleted), HG_OK);
    assert_int_equal(hg_store_claim_fire(store, "a", 5000, &t1), HG_OK);
    assert_true(t1 > t3);
    hg_store_close(store);
}

/* Queued execution I of job "q", due at RUN_AT with PRIORITY. */
static void
put_queued(hg_store_t *store, int i, int64_t run_at, int priority)
{
    rec_buf_t b;

    make_rec(&b, "q", i, HG_EXEC_QUEUED);
    b.r.run_at = run_at;
    b.r.priority = priority;
    b.r.payload = "p";
    b.r.payload_len = 1;
    put(store, &b.r);
}

static void
assert_taken(hg_exec_row_t *rows, size_t n, const int *want, size_t nwant)
{
    rec_buf_t b;
    size_t i;

    assert_int_equal(n, nwant);
    for (i = 0; i < n; i++) {
        make_rec(&b, "q", want[i], HG_EXEC_QUEUED);
        assert_string_equal(rows[i].r.id, b.id);
        assert_int_equal(rows[i].r.payload_len, 1);  /* rows are complete */
    }
    hg_exec_rows_free(rows, n);
}

static void
test_take_queued(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    hg_exec_row_t *rows;
    rec_buf_t b;
    size_t n;
    static const int first[] = { 3, 1 }, rest[] = { 0, 2 }, back[] = { 1 };
    static const int expired[] = { 0, 2 };

    put_queued(store, 0, 100, HG_PRIORITY_NORMAL);
    put_queued(store, 1, 200, HG_PRIORITY_HIGH);
    put_queued(store, 2, 100, HG_PRIORITY_LOW);
    put_queued(store, 3, 300, HG_PRIORITY_CRITICAL);
    put_queued(store, 4, 5000, HG_PRIORITY_CRITICAL);   /* not yet due */
    make_rec(&b, "q", 5, HG_EXEC_RUNNING);              /* not queued */
    put(store, &b.r);
    sync_store(store);

    /* highest priority first, at most the limit, leased for 1 s */
    assert_int_equal(hg_store_take_queued(store, 1000, 1000, 2, &rows, &n),
                     HG_OK);
    assert_taken(rows, n, first, HG_NELEMS(first));
    /* what is leased is not taken again */
    assert_int_equal(hg_store_take_queued(store, 1000, 1000, 0, &rows, &n),
                     HG_OK);
    assert_taken(rows, n, rest, HG_NELEMS(rest));
    assert_int_equal(hg_store_take_queued(store, 1000, 1000, 0, &rows, &n),
                     HG_OK);
    assert_taken(rows, n, NULL, 0);

    /* renew and release: only what this instance holds */
    make_rec(&b, "q", 3, HG_EXEC_QUEUED);
    assert_int_equal(hg_store_renew(store, b.id, 1500, 10000), HG_OK);
    make_rec(&b, "q", 4, HG_EXEC_QUEUED);
    assert_int_equal(hg_store_renew(store, b.id, 1500, 10000), HG_AGAIN);
    assert_int_equal(hg_store_release(store, b.id), HG_AGAIN);
    make_rec(&b, "q", 1, HG_EXEC_QUEUED);
    assert_int_equal(hg_store_release(store, b.id), HG_OK);
    assert_int_equal(hg_store_release(store, b.id), HG_AGAIN);
    assert_int_equal(hg_store_renew(store, b.id, 1500, 10000), HG_AGAIN);
    /* a released execution can be taken again */
    assert_int_equal(hg_store_take_queued(store, 1500, 1000, 0, &rows, &n),
                     HG_OK);
    assert_taken(rows, n, back, HG_NELEMS(back));

    /* at 2 s the leases of 0 and 2 have run out (1 was taken again until
     * 2.5 s, 3 renewed until 11.5 s): they go to the next taker */
    assert_int_equal(hg_store_take_queued(store, 2000, 1000, 0, &rows, &n),
                     HG_OK);
    assert_taken(rows, n, expired, HG_NELEMS(expired));
    hg_store_close(store);
}

/* Within one priority, the oldest run_at first; within one run_at too,
 * the smaller id: the same order from every driver. */
static void
test_take_queued_ties(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    hg_exec_row_t *rows;
    size_t n, i;
    /* put in this order: execution i, due at run_at */
    static const struct { int i; int64_t run_at; } put[] = {
        { 3, 200 }, { 0, 300 }, { 1, 200 }, { 2, 100 },
    };
    static const int order[] = { 4, 2, 1, 3, 0 };

    for (i = 0; i < HG_NELEMS(put); i++) {
        put_queued(store, put[i].i, put[i].run_at, HG_PRIORITY_NORMAL);
    }
    /* due last, but a higher priority goes first all the same */
    put_queued(store, 4, 400, HG_PRIORITY_HIGH);
    sync_store(store);
    assert_int_equal(hg_store_take_queued(store, 1000, 1000, 0, &rows, &n),
                     HG_OK);
    assert_taken(rows, n, order, HG_NELEMS(order));
    hg_store_close(store);
}

static void
test_migration_v1(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store;
    uint64_t token = 0;

    /* a version-1 file: before fire_claims */
    store = open_store(f, NULL);
    hg_store_close(store);
    exec_sql(f->path, HG_TEST_SCHEMA_BACK_TO_V2
                      "DROP TABLE fire_claims; PRAGMA user_version = 1;");

    store = open_store(f, NULL);
    assert_int_equal(log_count(f, "schema migrated from version 1 to 4"), 1);
    assert_int_equal(hg_store_claim_fire(store, "a", 1000, &token), HG_OK);
    assert_int_equal(hg_store_claim_fire(store, "a", 1000, &token),
                     HG_AGAIN);
    hg_store_close(store);
    assert_int_equal(user_version(f->path), 4);
}

/* The SQL of index NAME as the file holds it (freed by the caller). */
static char *
index_sql(const char *path, const char *name)
{
    return sql_value(path, "SELECT sql FROM sqlite_schema WHERE type ="
                     " 'index' AND name = ?1", name);
}

/*
 * A version-2 file (the index on finished_at holds every row) with
 * history in it: opened, it is migrated to 3 (the index holds finished
 * rows only) and keeps every row, statistic, job state and claim; the
 * records that follow go on from there, and retention still finds the
 * old rows through the new index.
 */
static void
test_migration_v2(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store;
    hg_job_stats_t st;
    hg_exec_row_t row;
    rec_buf_t b;
    json_t *states;
    uint64_t token = 0, deleted = 0;
    char *sql;
    int i;

    store = open_store(f, NULL);
    for (i = 1; i <= 20; i++) {
        put_final(store, "v2", i, i % 5 ? HG_EXEC_SUCCEEDED : HG_EXEC_FAILED,
                  i);
    }
    make_rec(&b, "v2", 21, HG_EXEC_RUNNING);
    put(store, &b.r);
    make_rec(&b, "v2", 22, HG_EXEC_QUEUED);
    b.r.unique_key = "v2-key";
    put(store, &b.r);
    assert_int_equal(hg_store_put_job_state(store, "v2", 4242, true), HG_OK);
    assert_int_equal(hg_store_claim_fire(store, "v2", 4242, &token), HG_OK);
    sync_store(store);
    hg_store_close(store);
    exec_sql(f->path, HG_TEST_SCHEMA_BACK_TO_V2 "PRAGMA user_version = 2;");
    sql = index_sql(f->path, "executions_finished");
    assert_non_null(sql);
    assert_null(strstr(sql, "WHERE"));
    free(sql);

    store = open_store(f, NULL);
    assert_int_equal(log_count(f, "schema migrated from version 2 to 4"), 1);
    assert_int_equal(user_version(f->path), 4);
    sql = index_sql(f->path, "executions_finished");
    assert_non_null(sql);
    assert_non_null(strstr(sql, "WHERE finished_at > 0"));
    free(sql);

    for (i = 1; i <= 22; i++) {
        make_rec(&b, "v2", i, i <= 20 ? (i % 5 ? HG_EXEC_SUCCEEDED
                                                : HG_EXEC_FAILED)
                                      : i == 21 ? HG_EXEC_RUNNING
                                                : HG_EXEC_QUEUED);
        assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
        assert_int_equal(row.r.status, b.r.status);
        assert_int_equal(row.r.scheduled_for, b.r.scheduled_for);
        hg_exec_row_free(&row);
    }
    assert_int_equal(hg_store_job_stats(store, "v2", &st), HG_OK);
    assert_int_equal(st.runs, 20);
    assert_int_equal(st.failures, 4);
    assert_int_equal(hg_store_load_job_states(store, &states), HG_OK);
    assert_int_equal(json_integer_value(json_object_get(
        json_object_get(states, "v2"), "last_fire")), 4242);
    json_decref(states);
    assert_int_equal(hg_store_claim_fire(store, "v2", 4242, &token),
                     HG_AGAIN);
    assert_true(key_pending(store, "v2-key"));

    /* the running one ends on the migrated file: counted once */
    put_final(store, "v2", 21, HG_EXEC_SUCCEEDED, 21);
    sync_store(store);
    assert_int_equal(hg_store_job_stats(store, "v2", &st), HG_OK);
    assert_int_equal(st.runs, 21);

    /* retention: the 21 finished rows, not the queued one */
    assert_int_equal(hg_store_cleanup(store, INT64_MAX, 8, &deleted), HG_OK);
    assert_int_equal(deleted, 21);
    make_rec(&b, "v2", 22, HG_EXEC_QUEUED);
    assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
    hg_exec_row_free(&row);
    hg_store_close(store);
}

/* A version-3 file whose jobs table has a row (no creator then) is
 * migrated to 4, and the row reads back with no creator. */
static void
test_migration_v3(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    json_t *jobs, *one;

    hg_store_close(store);
    exec_sql(f->path, HG_TEST_SCHEMA_BACK_TO_V3
                      "INSERT INTO jobs VALUES ('old', '{\"id\": \"old\"}',"
                      " 7, 8); PRAGMA user_version = 3;");
    store = open_store(f, NULL);
    assert_int_equal(log_count(f, "schema migrated from version 3 to 4"), 1);
    assert_int_equal(user_version(f->path), 4);
    assert_int_equal(hg_store_load_jobs(store, &jobs), HG_OK);
    one = json_object_get(jobs, "old");
    assert_non_null(one);
    assert_true(json_is_null(json_object_get(one, "created_by")));
    assert_int_equal(json_integer_value(json_object_get(one, "updated_at")),
                     8);
    json_decref(jobs);
    hg_store_close(store);
}

static void
test_migration_newer(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";

    make_var_dir(f);
    exec_sql(f->path, "CREATE TABLE t (x); PRAGMA user_version = 99;");
    assert_null(hg_store_open(&f->conf, err, sizeof(err)));
    assert_non_null(strstr(err, f->path));
    assert_non_null(strstr(err, "schema version 99"));
    assert_int_equal(user_version(f->path), 99);     /* untouched */
    err[0] = '\0';
    assert_int_equal(hg_store_check(&f->conf, err, sizeof(err)), HG_ERROR);
    assert_non_null(strstr(err, "schema version 99"));
}

static void
write_all(int fd, const char *s)
{
    size_t len = strlen(s);
    ssize_t n;

    while (len > 0) {
        n = write(fd, s, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            _exit(3);
        }
        s += n;
        len -= (size_t) n;
    }
}

/* The child: puts records without end, a barrier every 25, and reports
 * "acked K" when the records 0..K-1 are committed. */
static void
kill9_child(fixture_t *f, int out)
{
    char err[512], line[64];
    hg_store_t *store;
    rec_buf_t b;
    uint64_t tickets[4096];
    int covers[4096], head = 0, tail = 0, i;
    uint64_t acked;

    store = hg_store_open(&f->conf, err, sizeof(err));
    if (store == NULL) {
        write_all(out, "open failed\n");
        _exit(2);
    }
    for (i = 0;; i++) {
        make_rec(&b, "k", i, HG_EXEC_RUNNING);
        if (hg_store_put_execution(store, &b.r) != HG_OK) {
            _exit(4);
        }
        make_rec(&b, "k", i, HG_EXEC_SUCCEEDED);
        if (hg_store_put_execution(store, &b.r) != HG_OK) {
            _exit(4);
        }
        if (i % 25 == 24 && tail - head < 4096) {
            hg_store_barrier(store, &tickets[tail % 4096]);
            covers[tail % 4096] = i + 1;
            tail++;
        }
        acked = hg_store_ack(store);
        while (head < tail && tickets[head % 4096] <= acked) {
            snprintf(line, sizeof(line), "acked %d\n", covers[head % 4096]);
            write_all(out, line);
            head++;
        }
    }
}

static void
test_kill9(void **state)
{
    fixture_t *f = *state;
    int pipefd[2], status, acked = 0, lines = 0, i, extra = 0;
    char buf[4096], *p, *nl;
    size_t used = 0;
    ssize_t n;
    pid_t pid;
    hg_store_t *store;
    hg_exec_row_t row;
    rec_buf_t b;

    assert_int_equal(pipe(pipefd), 0);
    hg_log_flush();
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        kill9_child(f, pipefd[1]);
        _exit(0);
    }
    close(pipefd[1]);
    /* let it run until 40 acknowledgements have come, then kill it in
     * the middle of its stream of puts and commits */
    while (lines < 40) {
        n = read(pipefd[0], buf + used, sizeof(buf) - used - 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        used += (size_t) n;
        buf[used] = '\0';
        for (p = buf; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
            *nl = '\0';
            if (sscanf(p, "acked %d", &i) == 1) {
                assert_true(i > acked);
                acked = i;
                lines++;
            } else {
                fail_msg("child: %s", p);
            }
        }
        used -= (size_t) (p - buf);
        memmove(buf, p, used);
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* acks that were on their way when it died count too */
    while ((n = read(pipefd[0], buf + used, sizeof(buf) - used - 1)) > 0) {
        used += (size_t) n;
        buf[used] = '\0';
        for (p = buf; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
            *nl = '\0';
            if (sscanf(p, "acked %d", &i) == 1 && i > acked) {
                acked = i;
            }
        }
        used -= (size_t) (p - buf);
        memmove(buf, p, used);
    }
    close(pipefd[0]);
    assert_true(acked >= 40 * 25);

    store = open_store(f, NULL);
    for (i = 0; i < acked; i++) {
        make_rec(&b, "k", i, HG_EXEC_SUCCEEDED);
        if (hg_store_get_execution(store, b.id, &row) != HG_OK) {
            fail_msg("acknowledged record %d of %d lost", i, acked);
        }
        assert_int_equal(row.r.status, HG_EXEC_SUCCEEDED);
        hg_exec_row_free(&row);
    }
    for (i = acked;; i++) {
        make_rec(&b, "k", i, HG_EXEC_SUCCEEDED);
        if (hg_store_get_execution(store, b.id, &row) != HG_OK) {
            break;
        }
        hg_exec_row_free(&row);
        extra++;
    }
    print_message("kill -9: %d records acknowledged, all present; %d more "
                  "committed but not yet acknowledged\n", acked, extra);
    hg_store_close(store);
}

static const hg_store_options_t fast_retry = {
    .retry_max_ms = 100, .busy_timeout_ms = 100,
};

static void
test_fault_disk_full(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, &fast_retry);
    static char big[3000];
    char want[256];
    hg_exec_row_t row;
    uint64_t ticket;
    json_t *report;
    rec_buf_t b;
    int i;

    memset(big, 'x', sizeof(big));
    put_final(store, "full", 0, HG_EXEC_SUCCEEDED, 1);
    sync_store(store);

    /* no room to grow: the next transactions fail with SQLITE_FULL */
    assert_int_equal(hg_store_set_max_page_count(store, 1), HG_OK);
    for (i = 1; i <= 200; i++) {
        make_rec(&b, "full", i, HG_EXEC_SUCCEEDED);
        b.r.output = big;
        b.r.output_len = sizeof(big);
        put(store, &b.r);
    }
    assert_int_equal(hg_store_barrier(store, &ticket), HG_OK);
    assert_true(wait_failing(store, true, 10000));
    /* several retries fail, and none is acknowledged */
    usleep(400 * 1000);
    assert_false(wait_ticket(store, ticket, 100));
    assert_true(store->failing);
    assert_true(store->write_errors >= 2);
    assert_non_null(store->last_error);
    assert_non_null(strstr(store->last_error, "full"));
    assert_int_equal(hg_store_health(store, &report), HG_OK);
    /* (the first records may still fit in the last pages' free space) */
    assert_true(json_integer_value(json_object_get(report, "queue_depth"))
                >= 190);
    assert_true(json_is_true(json_object_get(report, "failing")));
    json_decref(report);
    /* reads go on */
    assert_int_equal(hg_store_get_execution(store, "exec-full-00000000",
                                            &row), HG_OK);
    hg_exec_row_free(&row);
    /* puts go on, and do not block */
    make_rec(&b, "full", 201, HG_EXEC_QUEUED);
    put(store, &b.r);

    /* one line for the whole episode, naming the file and the cause */
    assert_int_equal(log_count(f, "store: cannot write"), 1);
    /* (how many were kept when it began depends on how the writer's first
     * batch met the puts) */
    assert_int_equal(log_count(f, " records in memory and retrying every "
                                  "100ms"), 1);
    snprintf(want, sizeof(want), "cannot write %s: database or disk is "
             "full; keeping ", f->path);
    assert_int_equal(log_count(f, want), 1);

    /* room again: everything kept is written, one line says so */
    assert_int_equal(hg_store_set_max_page_count(store, 0), HG_OK);
    assert_true(wait_ticket(store, ticket, 10000));
    sync_store(store);
    assert_false(store->failing);
    for (i = 1; i <= 201; i++) {
        make_rec(&b, "full", i, HG_EXEC_SUCCEEDED);
        assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
        if (i <= 200) {
            assert_int_equal(row.r.output_len, sizeof(big));
        }
        hg_exec_row_free(&row);
    }
    assert_int_equal(log_count(f, "again after"), 1);
    assert_int_equal(log_count(f, "store: cannot write"), 1);
    hg_store_close(store);
    show_fault_lines(f);
}

static void
test_fault_locked(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, &fast_retry);
    hg_exec_row_t row;
    sqlite3 *other;
    uint64_t ticket;
    rec_buf_t b;
    int i;

    put_final(store, "lock", 0, HG_EXEC_SUCCEEDED, 1);
    sync_store(store);

    assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL),
                     SQLITE_OK);
    for (i = 1; i <= 50; i++) {
        put_final(store, "lock", i, HG_EXEC_SUCCEEDED, i);
    }
    assert_int_equal(hg_store_barrier(store, &ticket), HG_OK);
    assert_true(wait_failing(store, true, 10000));
    assert_false(wait_ticket(store, ticket, 300));
    /* WAL: reads are not blocked by the other connection's lock */
    assert_int_equal(hg_store_get_execution(store, "exec-lock-00000000",
                                            &row), HG_OK);
    hg_exec_row_free(&row);
    assert_int_equal(log_count(f, "database is locked; keeping 50 records"),
                     1);

    assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_close(other), SQLITE_OK);
    assert_true(wait_ticket(store, ticket, 10000));
    assert_false(store->failing);
    for (i = 1; i <= 50; i++) {
        make_rec(&b, "lock", i, HG_EXEC_SUCCEEDED);
        assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
        hg_exec_row_free(&row);
    }
    assert_int_equal(log_count(f, "again after"), 1);
    hg_store_close(store);
    show_fault_lines(f);
}

/* A row whose status this hourglass does not know (written by hand, or
 * by a later version) is no unfinished execution, and the reads that meet
 * it skip it, each time with a line naming the file, the execution and
 * the status; the other rows are read as usual. */
static void
test_unknown_status_row(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    hg_exec_row_t *rows, row;
    rec_buf_t b;
    char want[512];
    size_t n;

    put_final(store, "u", 0, HG_EXEC_SUCCEEDED, 10);
    put_final(store, "u", 1, HG_EXEC_SUCCEEDED, 20);
    make_rec(&b, "u", 2, HG_EXEC_RUNNING);
    put(store, &b.r);
    make_rec(&b, "u", 3, HG_EXEC_RUNNING);
    put(store, &b.r);
    sync_store(store);
    exec_sql(f->path, "UPDATE executions SET status = 'paused'"
                      " WHERE id IN ('exec-u-00000001', 'exec-u-00000003')");
    snprintf(want, sizeof(want), "store: %s: execution exec-u-00000003 has "
             "no known status (\"paused\"): skipped", f->path);

    assert_int_equal(hg_store_load_unfinished(store, &rows, &n), HG_OK);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].r.id, "exec-u-00000002");
    hg_exec_rows_free(rows, n);

    assert_int_equal(hg_store_list_executions(store, "u", NULL, 0, 0, &rows,
                                              &n), HG_OK);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].r.id, "exec-u-00000002");
    assert_string_equal(rows[1].r.id, "exec-u-00000000");
    hg_exec_rows_free(rows, n);
    hg_log_flush();
    assert_int_equal(log_count(f, want), 1);

    assert_int_equal(hg_store_get_execution(store, "exec-u-00000003", &row),
                     HG_ERROR);
    hg_log_flush();
    assert_int_equal(log_count(f, want), 2);
    assert_int_equal(hg_store_get_execution(store, "exec-u-00000000", &row),
                     HG_OK);
    hg_exec_row_free(&row);
    hg_store_close(store);
}

/* A cleanup that cannot take the file's lock fails with the store's
 * reason and what it did before, deletes nothing, and leaves the store
 * usable: the same cleanup succeeds once the lock is gone. */
static void
test_fault_locked_cleanup(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, &fast_retry);
    char want[512];
    sqlite3 *other;
    uint64_t deleted = 99;
    int i;

    for (i = 0; i < 5; i++) {
        put_final(store, "old", i, HG_EXEC_SUCCEEDED, i);
    }
    sync_store(store);
    assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(hg_store_cleanup(store, INT64_MAX, 100, &deleted),
                     HG_ERROR);
    assert_int_equal(deleted, 0);
    snprintf(want, sizeof(want), "store: %s: cleanup stopped after 0 "
             "executions: database is locked", f->path);
    assert_int_equal(log_count(f, want), 1);
    assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_close(other), SQLITE_OK);
    assert_int_equal(hg_store_cleanup(store, INT64_MAX, 100, &deleted),
                     HG_OK);
    assert_int_equal(deleted, 5);
    hg_store_close(store);
}

/* Past queue_limit the oldest records go, counted and logged once; a
 * later put of a waiting id replaces it and costs no room. The records of
 * a transaction being tried come back to the queue when it fails, and the
 * oldest go then: the health figures are read once the writer holds none,
 * and the log names whichever went first. */
static void
test_fault_queue_bound(void **state)
{
    fixture_t *f = *state;
    hg_store_options_t options = fast_retry;
    hg_store_t *store;
    hg_exec_row_t row;
    sqlite3 *other;
    json_t *report;
    uint64_t ticket;
    json_int_t dropped = 0, depth = 0;
    int64_t end;
    rec_buf_t b;
    char *text, *named;
    int i;
    bool named_absent = false;

    options.queue_limit = 100;
    store = open_store(f, &options);
    sync_store(store);
    assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL),
                     SQLITE_OK);
    for (i = 0; i < 150; i++) {
        make_rec(&b, "bound", i, HG_EXEC_RUNNING);
        put(store, &b.r);
        if (i == 0) {
            assert_true(wait_failing(store, true, 10000));
        }
    }
    /* 149 put again (final): replaces, does not count */
    make_rec(&b, "bound", 149, HG_EXEC_SUCCEEDED);
    put(store, &b.r);
    assert_int_equal(hg_store_barrier(store, &ticket), HG_OK);
    for (end = mono_ms() + 10000; mono_ms() < end; usleep(2000)) {
        assert_int_equal(hg_store_health(store, &report), HG_OK);
        dropped = json_integer_value(json_object_get(report, "dropped"));
        depth = json_integer_value(json_object_get(report, "queue_depth"));
        json_decref(report);
        if (dropped == 50 && depth == 100) {
            break;
        }
    }
    assert_int_equal(dropped, 50);
    assert_int_equal(depth, 100);
    (void) hg_store_ack(store);
    assert_int_equal(log_count(f, "dropping the oldest"), 1);
    text = slurp(f->log);
    named = strstr(text, "starting with execution exec-bound-");
    assert_non_null(named);
    named += strlen("starting with execution ");

    assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_close(other), SQLITE_OK);
    assert_true(wait_ticket(store, ticket, 10000));
    for (i = 0; i < 150; i++) {
        make_rec(&b, "bound", i, HG_EXEC_RUNNING);
        assert_int_equal(hg_store_get_execution(store, b.id, &row),
                         i < 50 ? HG_AGAIN : HG_OK);
        named_absent |= i < 50 && strncmp(named, b.id, strlen(b.id)) == 0;
        if (i == 149) {
            assert_int_equal(row.r.status, HG_EXEC_SUCCEEDED);
        }
        if (i >= 50) {
            hg_exec_row_free(&row);
        }
    }
    assert_true(named_absent);
    free(text);
    assert_int_equal(log_count(f, "; 50 older records were dropped"), 1);
    hg_store_close(store);
    show_fault_lines(f);
}

static void
corrupt_file(const char *path, off_t from)
{
    int fd = open(path, O_WRONLY);
    char garbage[4096];
    struct stat st;
    size_t i;
    off_t at;

    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    for (i = 0; i < sizeof(garbage); i++) {
        garbage[i] = (char) (i * 7 + 13);
    }
    for (at = from; at < st.st_size || at == from; at += sizeof(garbage)) {
        assert_int_equal(pwrite(fd, garbage, sizeof(garbage), at),
                         (ssize_t) sizeof(garbage));
    }
    close(fd);
}

static void
test_corrupt_open(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    char err[512] = "";

    put_final(store, "c", 1, HG_EXEC_SUCCEEDED, 1);
    hg_store_close(store);
    corrupt_file(f->path, 0);

    assert_null(hg_store_open(&f->conf, err, sizeof(err)));
    print_message("open: %s\n", err);
    assert_non_null(strstr(err, "store.path: "));
    assert_non_null(strstr(err, f->path));
    assert_non_null(strstr(err, "not a usable SQLite database"));
    err[0] = '\0';
    assert_int_equal(hg_store_check(&f->conf, err, sizeof(err)), HG_ERROR);
    print_message("check: %s\n", err);
    assert_non_null(strstr(err, f->path));
    assert_non_null(strstr(err, "not a usable SQLite database"));
}

/* Interior pages damaged: opening works (header and schema are fine),
 * the writer meets SQLITE_CORRUPT and says so once, keeping the records. */
static void
test_corrupt_runtime(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, &fast_retry);
    rec_buf_t b;
    int i;

    for (i = 0; i < 300; i++) {
        put_final(store, "c", i, HG_EXEC_SUCCEEDED, i);
    }
    hg_store_close(store);
    corrupt_file(f->path, 4096 * 2);

    store = open_store(f, &fast_retry);
    for (i = 300; i < 310; i++) {
        make_rec(&b, "c", i, HG_EXEC_SUCCEEDED);
        put(store, &b.r);
    }
    assert_true(wait_failing(store, true, 10000));
    usleep(300 * 1000);
    (void) hg_store_ack(store);
    assert_int_equal(log_count(f, "store: cannot write"), 1);
    assert_int_equal(log_count(f, "the file is damaged"), 1);
    hg_store_close(store);
    /* closing gave up on what it kept, and said so */
    assert_int_equal(log_count(f, "closing with 10 records not written"), 1);
    show_fault_lines(f);
}

/* In a child with a mount namespace of its own: a read-only file system
 * at DIR/ro. Writes "ok" or the messages to OUT. */
static void
readonly_child(fixture_t *f, int out)
{
    char ro[160], path[192], err[512], line[1200];
    hg_conf_t conf = f->conf;
    hg_store_t *store;

    snprintf(ro, sizeof(ro), "%s/ro", f->dir);
    if (unshare(CLONE_NEWNS) != 0
        || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0
        || mount("tmpfs", ro, "tmpfs", 0, "size=1m") != 0)
    {
        write_all(out, "skip: cannot mount a file system here\n");
        _exit(0);
    }
    /* an existing database, then the file system made read-only */
    snprintf(path, sizeof(path), "%s/existing.db", ro);
    conf.store.path = path;
    store = hg_store_open(&conf, err, sizeof(err));
    if (store == NULL) {
        write_all(out, "setup: ");
        write_all(out, err);
        write_all(out, "\n");
        _exit(1);
    }
    hg_store_close(store);
    if (mount(NULL, ro, NULL, MS_REMOUNT | MS_RDONLY, NULL) != 0) {
        write_all(out, "skip: cannot remount read-only\n");
        _exit(0);
    }
    snprintf(path, sizeof(path), "%s/hourglass.db", ro);
    err[0] = '\0';
    (void) hg_store_check(&conf, err, sizeof(err));
    snprintf(line, sizeof(line), "check-new: %s\n", err);
    write_all(out, line);
    err[0] = '\0';
    store = hg_store_open(&conf, err, sizeof(err));
    snprintf(line, sizeof(line), "open-new: %s\n", store ? "opened" : err);
    write_all(out, line);

    snprintf(path, sizeof(path), "%s/existing.db", ro);
    err[0] = '\0';
    (void) hg_store_check(&conf, err, sizeof(err));
    snprintf(line, sizeof(line), "check-old: %s\n", err);
    write_all(out, line);
    err[0] = '\0';
    store = hg_store_open(&conf, err, sizeof(err));
    snprintf(line, sizeof(line), "open-old: %s\n", store ? "opened" : err);
    write_all(out, line);
    _exit(0);
}

static void
test_readonly(void **state)
{
    fixture_t *f = *state;
    char ro[160], *text, want[400];
    int pipefd[2], status;
    pid_t pid;
    FILE *in;
    size_t len = 0;
    ssize_t n;

    snprintf(ro, sizeof(ro), "%s/ro", f->dir);
    assert_int_equal(mkdir(ro, 0755), 0);
    assert_int_equal(pipe(pipefd), 0);
    hg_log_flush();
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        readonly_child(f, pipefd[1]);
        _exit(0);
    }
    close(pipefd[1]);
    in = fdopen(pipefd[0], "r");
    assert_non_null(in);
    text = NULL;
    n = getdelim(&text, &len, '\0', in);
    fclose(in);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(n > 0);
    print_message("%s", text);
    if (strncmp(text, "skip:", 5) == 0) {
        free(text);
        skip();
    }
    /* (the exit code is not checked: under valgrind a child that _exits
     * with the parent's memory still allocated exits with its error code;
     * the child's lines say what happened) */
    assert_true(WIFEXITED(status));
    snprintf(want, sizeof(want), "check-new: store.path: cannot create "
             "%s/hourglass.db: Read-only file system\n", ro);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof(want), "open-new: store.path: cannot create "
             "%s/hourglass.db: Read-only file system\n", ro);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof(want), "check-old: store.path: cannot write "
             "%s/existing.db: Read-only file system\n", ro);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof(want), "open-old: store.path: cannot write "
             "%s/existing.db: Read-only file system\n", ro);
    assert_non_null(strstr(text, want));
    free(text);
}

static void
test_check(void **state)
{
    fixture_t *f = *state;
    char err[512] = "", path[192];
    hg_conf_t conf = f->conf;
    hg_store_t *store;

    /* missing directories that can be created: fine, and nothing made */
    snprintf(path, sizeof(path), "%s/a/b/c/hourglass.db", f->dir);
    conf.store.path = path;
    assert_int_equal(hg_store_check(&conf, err, sizeof(err)), HG_OK);
    snprintf(path, sizeof(path), "%s/a", f->dir);
    assert_int_equal(access(path, F_OK), -1);

    /* an existing database: fine */
    store = open_store(f, NULL);
    hg_store_close(store);
    assert_int_equal(hg_store_check(&f->conf, err, sizeof(err)), HG_OK);

    /* a path under a regular file */
    snprintf(path, sizeof(path), "%s/hourglass.db/x.db", f->path);
    conf.store.path = path;
    assert_int_equal(hg_store_check(&conf, err, sizeof(err)), HG_ERROR);
    assert_non_null(strstr(err, "Not a directory"));

    /* a directory where the file should be */
    snprintf(path, sizeof(path), "%s/var", f->dir);
    conf.store.path = path;
    assert_int_equal(hg_store_check(&conf, err, sizeof(err)), HG_ERROR);
    assert_non_null(strstr(err, "is not a regular file"));

    /* memory: nothing to check; unknown driver: named */
    conf.store.driver = "memory";
    assert_int_equal(hg_store_check(&conf, err, sizeof(err)), HG_OK);
    conf.store.driver = "mongodb";
    assert_int_equal(hg_store_check(&conf, err, sizeof(err)), HG_ERROR);
    assert_non_null(strstr(err, "store.driver: \"mongodb\""));
    assert_null(hg_store_open(&conf, err, sizeof(err)));
    assert_non_null(strstr(err, "store.driver: \"mongodb\""));
}

/* N succeeded executions of JOB with 2,000 bytes of output each,
 * committed EVERY at a time. */
static void
put_big(hg_store_t *store, const char *job, int n, int every)
{
    static char big[2000];
    rec_buf_t b;
    int i;

    memset(big, 'b', sizeof(big));
    for (i = 0; i < n; i++) {
        make_rec(&b, job, i, HG_EXEC_SUCCEEDED);
        b.r.output = big;
        b.r.output_len = sizeof(big);
        put(store, &b.r);
        if (i % every == every - 1) {
            sync_store(store);
        }
    }
}

static void
test_vacuum(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    json_t *report;
    json_int_t before, after;
    uint64_t deleted;

    put_big(store, "v", 2000, 2000);
    assert_int_equal(hg_store_vacuum(store), HG_OK);    /* checkpoint */
    assert_int_equal(hg_store_health(store, &report), HG_OK);
    before = json_integer_value(json_object_get(report, "size_bytes"));
    json_decref(report);
    assert_int_equal(hg_store_cleanup(store, INT64_MAX, 500, &deleted),
                     HG_OK);
    assert_int_equal(deleted, 2000);
    assert_int_equal(hg_store_vacuum(store), HG_OK);
    assert_int_equal(hg_store_vacuum(store), HG_OK);
    assert_int_equal(hg_store_health(store, &report), HG_OK);
    after = json_integer_value(json_object_get(report, "size_bytes"));
    assert_int_equal(json_integer_value(json_object_get(report, "wal_bytes")),
                     0);
    json_decref(report);
    print_message("vacuum: %lld -> %lld bytes\n", (long long) before,
                  (long long) after);
    assert_true(after < before / 4);
    hg_store_close(store);
}

/* Reads the whole of PATH into *data; its size, or -1 if missing. */
static ssize_t
read_all(const char *path, char **data)
{
    struct stat st;
    ssize_t n;
    int fd;

    *data = NULL;
    fd = open(path, O_RDONLY);
    if (fd < 0) {
        return -1;
    }
    assert_int_equal(fstat(fd, &st), 0);
    *data = malloc((size_t) st.st_size + 1);
    assert_non_null(*data);
    n = read(fd, *data, (size_t) st.st_size);
    assert_int_equal(n, st.st_size);
    close(fd);
    return n;
}

static off_t
file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Opening a store that is up to date writes nothing: no WAL frame while
 * it is open, the same bytes and mtime after it is closed. (auto_vacuum
 * set on every open rewrote page 1.) */
static void
test_open_writes_nothing(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    char wal[160], *before, *after;
    ssize_t n0, n1;
    struct stat st0, st1;

    put_final(store, "quiet", 1, HG_EXEC_SUCCEEDED, 3);
    sync_store(store);
    hg_store_close(store);
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    assert_int_equal(stat(f->path, &st0), 0);
    n0 = read_all(f->path, &before);
    assert_true(n0 > 0);
    usleep(20 * 1000);              /* an mtime change would show */

    store = open_store(f, NULL);
    /* open, read, but write nothing: the WAL holds no frame */
    assert_true(file_size(wal) <= 0);
    hg_store_close(store);

    assert_int_equal(stat(f->path, &st1), 0);
    n1 = read_all(f->path, &after);
    assert_int_equal(n1, n0);
    assert_memory_equal(before, after, (size_t) n0);
    assert_int_equal(st1.st_mtim.tv_sec, st0.st_mtim.tv_sec);
    assert_int_equal(st1.st_mtim.tv_nsec, st0.st_mtim.tv_nsec);
    free(before);
    free(after);
}

/* The file holds job output: created 0600 (its -wal and -shm alike), and
 * never reached through a symbolic link. */
static void
test_private_no_symlink(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store;
    char path[160], link[160], err[512];
    struct stat st;
    hg_conf_t conf;

    umask(022);
    store = open_store(f, NULL);
    put_final(store, "p", 1, HG_EXEC_SUCCEEDED, 3);
    sync_store(store);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s-wal", f->path);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s-shm", f->path);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    hg_store_close(store);

    /* a link planted at the path, to the store or anywhere else */
    snprintf(link, sizeof(link), "%s/link.db", f->dir);
    assert_int_equal(symlink(f->path, link), 0);
    conf = f->conf;
    conf.store.path = link;
    assert_int_equal(hg_store_check(&conf, err, sizeof(err)), HG_ERROR);
    assert_non_null(strstr(err, "symbolic link"));
    assert_null(hg_store_open(&conf, err, sizeof(err)));
    assert_non_null(strstr(err, "symbolic link"));
    assert_non_null(strstr(err, link));
    snprintf(link, sizeof(link), "%s/dangling.db", f->dir);
    snprintf(path, sizeof(path), "%s/target.db", f->dir);
    assert_int_equal(symlink(path, link), 0);
    conf.store.path = link;
    assert_null(hg_store_open(&conf, err, sizeof(err)));
    assert_int_equal(lstat(path, &st), -1);         /* nothing created */
}

static uint64_t
health_int(hg_store_t *store, const char *key)
{
    json_t *report;
    uint64_t v;

    assert_int_equal(hg_store_health(store, &report), HG_OK);
    v = (uint64_t) json_integer_value(json_object_get(report, key));
    json_decref(report);
    return v;
}

static int64_t
page_count(const char *path)
{
    return sql_int(path, "PRAGMA page_count");
}

/* Past SQLite's mark of 1,000 WAL pages, the maintenance thread copies
 * the WAL into the database (the commit that crossed the mark does not):
 * the file grows while the store is open, with no vacuum asked, and the
 * WAL stays bounded. */
static void
test_checkpoint(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    struct stat st;
    int64_t end;

    put_big(store, "c", 3000, 100);
    /* about 1,500 pages in the WAL; the writer checkpoints only past
     * 4,000 */
    end = mono_ms() + 20000;
    while (stat(f->path, &st) == 0 && st.st_size < 2 * 1024 * 1024
           && mono_ms() < end)
    {
        usleep(10000);
    }
    assert_true(st.st_size >= 2 * 1024 * 1024);
    assert_true(health_int(store, "wal_bytes") < 5000 * (4096 + 24));
    hg_store_close(store);
}

/* A disk that stays nearly full: the backlog goes in chunks, so a little
 * room lets part of it through (one transaction of everything would fail
 * for ever); the tickets wait until all of it is in. */
static void
test_fault_recovery_in_chunks(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, &fast_retry);
    static char big[1500];
    hg_exec_row_t row;
    uint64_t ticket, written0;
    int64_t end, pages;
    rec_buf_t b;
    int i, n = 4000;

    memset(big, 'c', sizeof(big));
    put_final(store, "chunk", 0, HG_EXEC_SUCCEEDED, 1);
    sync_store(store);
    written0 = health_int(store, "written");

    assert_int_equal(hg_store_set_max_page_count(store, 1), HG_OK);
    for (i = 1; i <= n; i++) {
        make_rec(&b, "chunk", i, HG_EXEC_SUCCEEDED);
        b.r.output = big;
        b.r.output_len = sizeof(big);
        put(store, &b.r);
    }
    assert_int_equal(hg_store_barrier(store, &ticket), HG_OK);
    assert_true(wait_failing(store, true, 10000));

    /* room for about a third of the backlog (6 MB): 1000 pages of 4 KiB */
    pages = page_count(f->path);
    assert_int_equal(hg_store_set_max_page_count(store,
                                                 (uint64_t) pages + 1000),
                     HG_OK);
    end = mono_ms() + 20000;
    while (health_int(store, "written") < written0 + 1000
           && mono_ms() < end)
    {
        (void) hg_store_ack(store);
        usleep(10 * 1000);
    }
    print_message("with 1000 pages more: %" PRIu64 " of %d records "
                  "written\n", health_int(store, "written") - written0, n);
    assert_true(health_int(store, "written") >= written0 + 1000);
    /* the oldest went first; the rest still waits, unacknowledged */
    assert_int_equal(hg_store_get_execution(store, "exec-chunk-00000001",
                                            &row), HG_OK);
    hg_exec_row_free(&row);
    assert_true(health_int(store, "written") < written0 + (uint64_t) n);
    assert_false(wait_ticket(store, ticket, 100));
    assert_true(store->failing);

    assert_int_equal(hg_store_set_max_page_count(store, 0), HG_OK);
    assert_true(wait_ticket(store, ticket, 20000));
    assert_false(store->failing);
    for (i = 1; i <= n; i += 333) {
        make_rec(&b, "chunk", i, HG_EXEC_SUCCEEDED);
        assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
        assert_int_equal(row.r.output_len, sizeof(big));
        hg_exec_row_free(&row);
    }
    assert_int_equal(log_count(f, "store: cannot write"), 1);
    assert_int_equal(log_count(f, "again after"), 1);
    hg_store_close(store);
    show_fault_lines(f);
}

/* The file deleted under a running store: noticed at the next commit,
 * said once, nothing written into the deleted file; what is kept goes to
 * a new file at the path at close. Maintenance refuses meanwhile. */
static void
test_file_deleted(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, &fast_retry);
    hg_store_task_t *task;
    hg_exec_row_t row;
    rec_buf_t b;
    int i;

    for (i = 0; i < 5; i++) {
        put_final(store, "gone", i, HG_EXEC_SUCCEEDED, 1);
    }
    sync_store(store);
    assert_int_equal(unlink(f->path), 0);
    for (i = 5; i < 10; i++) {
        put_final(store, "gone", i, HG_EXEC_SUCCEEDED, 1);
    }
    make_rec(&b, "gone", 10, HG_EXEC_QUEUED);
    put(store, &b.r);
    assert_true(wait_failing(store, true, 10000));
    assert_int_equal(log_count(f, "was deleted or replaced while hourglass "
                                  "runs"), 1);
    assert_int_equal(log_count(f, "restart it to go on recording"), 1);
    assert_int_equal(access(f->path, F_OK), -1);    /* nothing recreated */

    task = new_task(HG_STORE_TASK_HEALTH, NULL);
    assert_int_equal(hg_store_task(store, task), HG_OK);
    task = wait_task(store, 20000);
    assert_non_null(task);
    assert_int_equal(task->rc, HG_ERROR);
    assert_non_null(strstr(task->error, "deleted or replaced"));
    free(task);

    hg_store_close(store);
    assert_int_equal(log_count(f, "written to the file now at that path"),
                     1);
    store = open_store(f, NULL);
    for (i = 5; i <= 10; i++) {
        make_rec(&b, "gone", i, i < 10 ? HG_EXEC_SUCCEEDED : HG_EXEC_QUEUED);
        assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
        assert_int_equal(row.r.status, b.r.status);
        hg_exec_row_free(&row);
    }
    /* what the deleted file held is gone with it */
    assert_int_equal(hg_store_get_execution(store, "exec-gone-00000000",
                                            &row), HG_AGAIN);
    hg_store_close(store);
    show_fault_lines(f);
}

#endif /* HG_HAVE_SQLITE */


/* --- out of memory, I/O errors ------------------------------------------ */

/* A fault injector: memory (fault_alloc.h) or SQLite's I/O (fault_io.h).
 * The same loops run under either. */
typedef struct injector_s {
    const char *what;               /* "allocation" */
    void (*arm)(unsigned long n);
    bool (*disarm)(void);
} injector_t;

static const injector_t alloc_faults = {
    "allocation", fault_alloc_arm, fault_alloc_disarm
};
#if HG_HAVE_SQLITE
static const injector_t io_faults = {
    "I/O operation", fault_io_arm, fault_io_disarm
};
#endif

/* Each read (and the two writes of the read side: purge, claim) by number,
 * its result written out as text, so that a run under faults is compared
 * with the run without. */
enum {
    READ_UNFINISHED = 0, READ_STATES, READ_GET, READ_MISSING, READ_LIST,
    READ_STATS, READ_UNIQUE, READ_TAKE, READ_HEALTH, READ_CLAIM, READ_PURGE,
    READ_COUNT
};

static const char *const read_names[READ_COUNT] = {
    "load_unfinished", "load_job_states", "get_execution",
    "get_execution (missing)", "list_executions", "job_stats",
    "unique_key_pending", "take_queued", "health", "claim_fire", "purge_dead"
};

static void
rows_text(char *out, size_t len, int rc, const hg_exec_row_t *rows, size_t n)
{
    size_t used, i;

    used = (size_t) snprintf(out, len, "rc %d, %zu rows:", rc, n);
    for (i = 0; i < n && used < len; i++) {
        used += (size_t) snprintf(out + used, len - used, " %s/%s",
                                  rows[i].r.id,
                                  hg_exec_status_name(rows[i].r.status));
    }
}

/* Read OP, with INJ's FAULTth fault (0: none) during the store's call only,
 * not while its answer is written out; *FIRED: whether it came. */
static int
read_op(hg_store_t *store, int op, const injector_t *inj,
        unsigned long fault, bool *fired, char *out, size_t len)
{
    hg_exec_row_t *rows = NULL, row;
    hg_job_stats_t st;
    json_t *json = NULL;
    char *text;
    size_t n = 0;
    bool pending = false;
    uint64_t count = 0;
    int rc = HG_ERROR;

#define FAULTY(call) \
    do { \
        if (fault > 0) { \
            inj->arm(fault); \
        } \
        rc = (call); \
        *fired = fault > 0 && inj->disarm(); \
    } while (0)

    out[0] = '\0';
    switch (op) {
    case READ_UNFINISHED:
        FAULTY(hg_store_load_unfinished(store, &rows, &n));
        break;
    case READ_LIST:
        FAULTY(hg_store_list_executions(store, "oom", NULL, 0, 0, &rows,
                                        &n));
        break;
    case READ_TAKE:
        FAULTY(hg_store_take_queued(store, 1800000000000LL, 1000, 0, &rows,
                                    &n));
        if (rc == HG_OK) {
            size_t i;
            for (i = 0; i < n; i++) {   /* the next attempt takes them again */
                assert_int_equal(hg_store_release(store, rows[i].r.id),
                                 HG_OK);
            }
        }
        break;
    case READ_GET:
    case READ_MISSING:
        memset(&row, 0, sizeof(row));
        FAULTY(hg_store_get_execution(store, op == READ_GET
                                    ? "exec-oom-00000002" : "no-such-id",
                                    &row));
        if (rc == HG_OK) {
            rows_text(out, len, rc, &row, 1);
            snprintf(out + strlen(out), len - strlen(out), " out %zu %s",
                     row.r.output_len, row.r.output);
            hg_exec_row_free(&row);
            return rc;
        }
        snprintf(out, len, "rc %d", rc);
        return rc;
    case READ_STATES:
    case READ_HEALTH:
        FAULTY(op == READ_STATES ? hg_store_load_job_states(store, &json)
                               : hg_store_health(store, &json));
        if (rc == HG_OK && op == READ_HEALTH) {
            /* sizes and figures move; which fields there are does not */
            const char *key;
            json_t *value;
            size_t used = (size_t) snprintf(out, len, "rc %d:", rc);
            json_object_foreach(json, key, value) {
                used += (size_t) snprintf(out + used, len - used, " %s",
                                          key);
                (void) value;
            }
            json_decref(json);
            return rc;
        }
        text = rc == HG_OK ? json_dumps(json, JSON_SORT_KEYS) : NULL;
        snprintf(out, len, "rc %d %s", rc, text ? text : "");
        free(text);
        json_decref(json);
        return rc;
    case READ_STATS:
        memset(&st, 0, sizeof(st));
        FAULTY(hg_store_job_stats(store, "oom", &st));
        snprintf(out, len, "rc %d runs %" PRIu64 " ok %" PRIu64 " bad %"
                 PRIu64 " mean %.1f p95 %" PRId64 " last %" PRId64 " %s", rc,
                 st.runs, st.successes, st.failures, st.mean_duration_ms,
                 st.p95_duration_ms, st.last_run,
                 hg_exec_status_name(st.last_status));
        return rc;
    case READ_UNIQUE:
        FAULTY(hg_store_unique_key_pending(store, "oom-key", &pending));
        snprintf(out, len, "rc %d pending %d", rc, pending);
        return rc;
    case READ_CLAIM:
        FAULTY(hg_store_claim_fire(store, "oom", 1700000999000LL, &count));
        snprintf(out, len, "rc %d", rc);
        return rc;
    case READ_PURGE:
        FAULTY(hg_store_purge_dead(store, "exec-oom-00000003", NULL, 0,
                                   &count));
        snprintf(out, len, "rc %d deleted %" PRIu64, rc, count);
        return rc;
    default:
        fail_msg("no read %d", op);
    }
#undef FAULTY
    rows_text(out, len, rc, rows, n);
    if (rc == HG_OK) {
        hg_exec_rows_free(rows, n);
    }
    return rc;
}

/* Every read with each allocation (each I/O operation) failed in turn,
 * on both drivers (on sqlite): HG_ERROR, or, where the library survives
 * the fault (SQLite retries some), the same answer as without faults;
 * never a wrong answer, and what the store holds is the same after each
 * failure (a failed purge deleted nothing, a failed claim claimed
 * nothing). What could not be read is said by the callers
 * (hg_recover.c, hg_query.c) when memory runs out, by the store itself,
 * naming the file, when the file fails. */
static void
reads_under(fixture_t *f, const injector_t *inj)
{
    hg_store_t *store = open_store(f, NULL);
    char want[1024], got[1024], before[1024], after[1024];
    static const hg_exec_status_t statuses[] = {
        HG_EXEC_QUEUED, HG_EXEC_RUNNING, HG_EXEC_SUCCEEDED, HG_EXEC_DEAD
    };
    rec_buf_t b;
    size_t i;
    bool fired;
    int op, rc;

    for (i = 0; i < HG_NELEMS(statuses); i++) {
        make_rec(&b, "oom", (int) i, statuses[i]);
        if (statuses[i] == HG_EXEC_QUEUED) {
            b.r.unique_key = "oom-key";
        }
        put(store, &b.r);
    }
    assert_int_equal(hg_store_put_job_state(store, "oom", 1700000000000LL,
                                            true), HG_OK);
    sync_store(store);
    assert_int_equal(read_op(store, READ_UNFINISHED, NULL, 0, &fired,
                             before, sizeof(before)), HG_OK);

    for (op = 0; op < READ_COUNT; op++) {
        unsigned long failures = 0;

        /* claim and purge change the store: their answer without faults
         * is the one of a first call; compared below on a fresh key */
        if (op == READ_CLAIM || op == READ_PURGE) {
            want[0] = '\0';
        } else {
            rc = read_op(store, op, NULL, 0, &fired, want, sizeof(want));
            assert_int_equal(rc, op == READ_MISSING ? HG_AGAIN : HG_OK);
        }
        for (FAULT_ALLOC_LOOP(n)) {
            size_t said = log_count(f, f->path);

            if (inj != &alloc_faults) {
                /* a commit of another job's record: the read connection's
                 * pages are stale, and the read goes to the file */
                make_rec(&b, "other", 0, HG_EXEC_SUCCEEDED);
                b.r.duration_ms = (int64_t) n;
                put(store, &b.r);
                sync_store(store);
            }
            rc = read_op(store, op, inj, n, &fired, got, sizeof(got));
            if (rc == HG_ERROR) {
                assert_true(fired);
                failures++;
                if (inj != &alloc_faults && log_count(f, f->path) <= said) {
                    fail_msg("%s, %s %lu failed: HG_ERROR and not a word "
                             "about %s", read_names[op], inj->what, n,
                             f->path);
                }
                /* nothing changed, nothing was half done */
                assert_int_equal(read_op(store, READ_UNFINISHED, NULL, 0,
                                         &fired, after, sizeof(after)),
                                 HG_OK);
                assert_string_equal(after, before);
                continue;
            }
            if (op == READ_CLAIM) {
                assert_string_equal(got, "rc 0");          /* claimed */
            } else if (op == READ_PURGE) {
                assert_string_equal(got, "rc 0 deleted 1");
            } else if (strcmp(got, want) != 0) {
                fail_msg("%s driver, %s, %s %lu failed: \"%s\", want "
                         "\"%s\"", f->driver, read_names[op], inj->what, n,
                         got, want);
            }
            if (!fired) {
                break;
            }
            if (op == READ_CLAIM || op == READ_PURGE) {
                break;              /* done, and cannot be done twice */
            }
        }
        print_message("%s driver: %s: %lu of its %ss failed it\n",
                      f->driver, read_names[op], failures, inj->what);
    }
    /* the claim and the purge happened once */
    assert_int_equal(read_op(store, READ_CLAIM, NULL, 0, &fired, got,
                             sizeof(got)), HG_AGAIN);
    assert_int_equal(read_op(store, READ_PURGE, NULL, 0, &fired, got,
                             sizeof(got)), HG_OK);
    assert_string_equal(got, "rc 0 deleted 0");
    hg_store_close(store);
}
/* Many API jobs written at once are written all or none: an allocation
 * refused anywhere in the write leaves the set as it was (both drivers). */
static void
test_alloc_put_jobs(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    unsigned long failures = 0;
    json_t *changes, *jobs;
    bool fired;
    int rc;

    changes = json_pack("{s:{s:{s:s}, s:s, s:I, s:I}}", "old", "definition",
                        "id", "old", "created_by", "api:ops", "created_at",
                        (json_int_t) 1, "updated_at", (json_int_t) 1);
    assert_int_equal(hg_store_put_jobs(store, changes), HG_OK);
    json_decref(changes);
    changes = json_pack("{s:{s:{s:s}, s:s, s:I, s:I}, s:{s:{s:s}, s:s, s:I,"
                        " s:I}, s:n}",
                        "a", "definition", "id", "a", "created_by", "api:ops",
                        "created_at", (json_int_t) 2, "updated_at",
                        (json_int_t) 2,
                        "b", "definition", "id", "b", "created_by", "api:ops",
                        "created_at", (json_int_t) 2, "updated_at",
                        (json_int_t) 2,
                        "old");
    assert_non_null(changes);
    for (FAULT_ALLOC_LOOP(n)) {
        fault_alloc_arm(n);
        rc = hg_store_put_jobs(store, changes);
        fired = fault_alloc_disarm();
        assert_int_equal(hg_store_load_jobs(store, &jobs), HG_OK);
        if (rc != HG_OK) {
            assert_true(fired);
            /* nothing of it: "old" still there, "a" and "b" not */
            assert_int_equal(json_object_size(jobs), 1);
            assert_non_null(json_object_get(jobs, "old"));
            json_decref(jobs);
            failures++;
            continue;
        }
        assert_int_equal(json_object_size(jobs), 2);
        assert_non_null(json_object_get(jobs, "a"));
        assert_non_null(json_object_get(jobs, "b"));
        json_decref(jobs);
        break;
    }
    assert_true(failures > 0);
    json_decref(changes);
    hg_store_close(store);
}


/* Puts and barriers with each allocation refused in turn, on both
 * drivers: a put refused is HG_ERROR and leaves nothing (the record is
 * not there after the next commit, the execution it replaces stays as
 * it was); one accepted is committed whole. A barrier refused is
 * HG_ERROR and the next one is acknowledged. */
static void
test_alloc_puts(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, NULL);
    unsigned long failures[3] = { 0, 0, 0 };
    hg_exec_row_t row;
    json_t *states;
    uint64_t ticket;
    rec_buf_t b, first;
    bool fired;
    int rc;

    make_rec(&first, "put", 0, HG_EXEC_QUEUED);
    first.r.payload = "payload";
    first.r.payload_len = 7;
    first.r.unique_key = "put-key";
    put(store, &first.r);
    sync_store(store);
    for (FAULT_ALLOC_LOOP(n)) {
        /* the same execution, now running: replaces the queued one */
        make_rec(&b, "put", 0, HG_EXEC_RUNNING);
        b.r.error = "running now";
        fault_alloc_arm(n);
        rc = hg_store_put_execution(store, &b.r);
        fired = fault_alloc_disarm();
        sync_store(store);
        assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
        if (rc != HG_OK) {
            assert_int_equal(rc, HG_ERROR);
            assert_true(fired);
            assert_same_record(&row.r, &first.r);
            hg_exec_row_free(&row);
            failures[0]++;
            continue;
        }
        assert_same_record(&row.r, &b.r);
        hg_exec_row_free(&row);
        if (!fired) {
            break;
        }
        put(store, &first.r);           /* back, for the next refusal */
        sync_store(store);
    }

    for (FAULT_ALLOC_LOOP(n)) {
        fault_alloc_arm(n);
        rc = hg_store_put_job_state(store, "put", (int64_t) n, true);
        fired = fault_alloc_disarm();
        sync_store(store);
        assert_int_equal(hg_store_load_job_states(store, &states), HG_OK);
        if (rc != HG_OK) {
            assert_int_equal(rc, HG_ERROR);
            assert_true(fired);
            /* nothing, or the last one accepted */
            assert_true(json_object_get(states, "put") == NULL
                        || json_integer_value(json_object_get(
                               json_object_get(states, "put"), "last_fire"))
                           < (json_int_t) n);
            json_decref(states);
            failures[1]++;
            continue;
        }
        assert_int_equal(json_integer_value(json_object_get(
            json_object_get(states, "put"), "last_fire")), (json_int_t) n);
        json_decref(states);
        if (!fired) {
            break;
        }
    }

    for (FAULT_ALLOC_LOOP(n)) {
        fault_alloc_arm(n);
        rc = hg_store_barrier(store, &ticket);
        fired = fault_alloc_disarm();
        if (rc != HG_OK) {
            assert_int_equal(rc, HG_ERROR);
            assert_true(fired);
            failures[2]++;
            continue;
        }
        assert_true(wait_ticket(store, ticket, 20000));
        if (!fired) {
            break;
        }
    }
    print_message("%s driver: refusals that failed a put %lu, a job state "
                  "%lu, a barrier %lu\n", f->driver, failures[0],
                  failures[1], failures[2]);
    assert_true(failures[0] > 0 && failures[1] > 0);
    sync_store(store);
    hg_store_close(store);
}

static void
test_alloc_reads(void **state)
{
    reads_under(*state, &alloc_faults);
}

#if HG_HAVE_SQLITE

/* The database file and its -wal and -shm removed. */
static void
remove_db(fixture_t *f)
{
    static const char *const suffixes[] = { "", "-wal", "-shm" };
    char path[160];
    size_t i;

    for (i = 0; i < HG_NELEMS(suffixes); i++) {
        snprintf(path, sizeof(path), "%s%s", f->path, suffixes[i]);
        if (unlink(path) != 0 && errno != ENOENT) {
            fail_msg("cannot remove %s: %s", path, strerror(errno));
        }
    }
}

/* Opening with each allocation (each I/O operation) failed in turn: a
 * new file (made anew for each attempt) until an attempt fails past the
 * commit of its schema, then that file, with a record, taken back to
 * schema version 2 before each attempt that finds it migrated, so that
 * each reaches the migration (under valgrind, every 7th: fault_step).
 * NULL and a message every time; a failed creation leaves no table, a
 * failed migration version 2; the store that opens at last holds what
 * the file held, at the current version (4). */
static void
open_under(fixture_t *f, const injector_t *inj)
{
    static const char *const files[] = { "new", "version 2" };
    hg_store_t *store = NULL;
    hg_exec_row_t row;
    rec_buf_t b;
    char err[512];
    size_t migrated = 0, created = 0;
    bool past = false;
    unsigned long step = fault_step();
    int pass;

    make_rec(&b, "oom", 7, HG_EXEC_SUCCEEDED);
    for (pass = 0; pass < 2; pass++) {
        unsigned long failures = 0;

        if (pass == 1) {
            exec_sql(f->path, HG_TEST_SCHEMA_BACK_TO_V2
                     "PRAGMA user_version = 2;");
            migrated = log_count(f, "schema migrated");
        }

        for (unsigned long n = 1; n < FAULT_ALLOC_MAX; n += step) {
            bool fired;

            if (pass == 0) {
                remove_db(f);           /* each attempt makes the schema */
            }
            if (pass == 1 && !past
                && log_count(f, "schema migrated") > migrated)
            {
                exec_sql(f->path, HG_TEST_SCHEMA_BACK_TO_V2
                         "PRAGMA user_version = 2;");
                migrated = log_count(f, "schema migrated");
            }
            err[0] = '\0';
            inj->arm(n);
            store = hg_store_open_with(&f->conf, NULL, err, sizeof(err));
            fired = inj->disarm();
            if (store == NULL) {
                assert_true(fired);
                failures++;
                /* failing past a committed migration: what follows is
                 * the new file's path again, on a migrated file */
                past = past || log_count(f, "schema migrated") > migrated;
                if (strstr(err, "store") == NULL
                    || (strstr(err, f->path) == NULL
                        && strstr(err, "out of memory") == NULL))
                {
                    fail_msg("%s %lu failed: \"%s\" names neither the "
                             "file nor the cause", inj->what, n, err);
                }
                if (pass == 0 && strstr(err, "schema") != NULL
                    && log_count(f, "created") == created)
                {
                    /* a failed creation: no table, nothing half done */
                    assert_int_equal(sql_int(f->path, "SELECT count(*) "
                                             "FROM sqlite_master"), 0);
                }
                if (pass == 1 && strstr(err, "schema") != NULL) {
                    /* a failed migration: still version 2, not half
                     * done */
                    assert_int_equal(user_version(f->path), 2);
                }
                if (pass == 0 && log_count(f, "created") > created) {
                    /* failed past the schema's commit: what follows is
                     * the second pass's once its file is migrated (and
                     * costs minutes under valgrind) */
                    break;
                }
                created = log_count(f, "created");
                continue;
            }
            if (!fired) {
                break;
            }
            hg_store_close(store);      /* survived it: again, further on */
            store = NULL;
            created = log_count(f, "created");
        }
        if (store == NULL) {
            store = open_store(f, NULL);
        }
        assert_true(failures > 0);
        print_message("open (%s file): %lu of its %ss failed it\n",
                      files[pass], failures, inj->what);
        if (pass == 0) {
            put(store, &b.r);
            sync_store(store);
        } else {
            assert_int_equal(hg_store_get_execution(store, b.id, &row),
                             HG_OK);
            assert_same_record(&row.r, &b.r);
            hg_exec_row_free(&row);
        }
        hg_store_close(store);
        assert_int_equal(user_version(f->path), 4);
    }
}

/* Cleanup of what finished before 2000 ms (or a vacuum) with each I/O
 * operation of any thread failed in turn, until one runs without a
 * fault: each failure HG_ERROR with a line naming the file. How many
 * failed. */
static unsigned long
task_under_io_faults(fixture_t *f, hg_store_t *store, bool vacuum)
{
    unsigned long n, failures = 0;
    uint64_t deleted;
    bool fired = true;
    int rc;

    for (n = 1; fired && n < 2000; n++) {
        size_t said = log_count(f, f->path);

        fault_io_arm_any(n);
        rc = vacuum ? hg_store_vacuum(store)
                    : hg_store_cleanup(store, 2000, 100, &deleted);
        fired = fault_io_disarm_any();
        if (rc != HG_OK) {
            assert_int_equal(rc, HG_ERROR);
            assert_true(fired);
            assert_true(log_count(f, f->path) > said);
            failures++;
        }
    }
    assert_false(fired);
    return failures;
}

/* The writer's commits and the maintenance tasks with each I/O operation
 * of any thread failed in turn (the writer's, the maintenance thread's,
 * a checkpoint's): nothing lost, ever. A record put while its commit
 * fails is committed by a later attempt (the barrier's ticket comes, the
 * record reads back whole); a failed cleanup or vacuum says so with the
 * file's name, deletes only what it was asked to, and leaves the store
 * writing. */
static void
test_io_writes(void **state)
{
    fixture_t *f = *state;
    hg_store_t *store = open_store(f, &fast_retry);
    unsigned long failures[3] = { 0, 0, 0 }, n;
    static char big[3000];
    hg_exec_row_t row, *rows;
    rec_buf_t b;
    bool fired = true;
    size_t i;

    for (n = 1; fired && n < 2000; n++) {
        make_rec(&b, "w", (int) n, HG_EXEC_SUCCEEDED);
        fault_io_arm_any(n);
        put(store, &b.r);
        assert_int_equal(hg_store_put_job_state(store, "w", (int64_t) n,
                                                false), HG_OK);
        sync_store(store);
        fired = fault_io_disarm_any();
        failures[0] += fired;
        assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
        assert_same_record(&row.r, &b.r);
        hg_exec_row_free(&row);
    }
    assert_false(fired);
    print_message("commits: %lu I/O operations failed\n", failures[0]);

    /* old records for cleanup to delete (pages for vacuum to give
     * back), the others kept */
    for (i = 0; i < 150; i++) {
        make_rec(&b, "old", (int) i, HG_EXEC_SUCCEEDED);
        b.r.finished_at = 1000;
        b.r.output = big;
        b.r.output_len = sizeof(big);
        put(store, &b.r);
    }
    sync_store(store);
    failures[1] = task_under_io_faults(f, store, false);
    assert_int_equal(hg_store_list_executions(store, "old", NULL, 0, 0,
                                              &rows, &i), HG_OK);
    assert_int_equal(i, 0);
    hg_exec_rows_free(rows, i);

    failures[2] = task_under_io_faults(f, store, true);
    print_message("cleanup: %lu, vacuum: %lu I/O operations failed them\n",
                  failures[1], failures[2]);

    /* everything the commits wrote, still there, and writing goes on */
    for (n = 1; n <= failures[0] + 1; n++) {
        make_rec(&b, "w", (int) n, HG_EXEC_SUCCEEDED);
        assert_int_equal(hg_store_get_execution(store, b.id, &row), HG_OK);
        hg_exec_row_free(&row);
    }
    make_rec(&b, "w", 0, HG_EXEC_SUCCEEDED);
    put(store, &b.r);
    sync_store(store);
    hg_store_close(store);
}

static void
test_alloc_open(void **state)
{
    open_under(*state, &alloc_faults);
}

static void
test_io_open(void **state)
{
    open_under(*state, &io_faults);
}

static void
test_io_reads(void **state)
{
    reads_under(*state, &io_faults);
}

#endif /* HG_HAVE_SQLITE */

#define MEMORY(t) \
    cmocka_unit_test_prestate_setup_teardown(t, setup, teardown, \
                                             (void *) memory_driver)
#define SQLITE(t) \
    cmocka_unit_test_prestate_setup_teardown(t, setup, teardown, \
                                             (void *) sqlite_driver)
#if HG_HAVE_SQLITE
#define BOTH(t) MEMORY(t), SQLITE(t)
#else
#define BOTH(t) MEMORY(t)
#endif

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets),
        BOTH(test_roundtrip),
        BOTH(test_invalid_records),
        BOTH(test_update_same_id),
        BOTH(test_load_unfinished),
        BOTH(test_list),
        BOTH(test_list_ties_and_states),
        BOTH(test_job_stats),
        BOTH(test_unique_key),
        BOTH(test_cleanup),
        BOTH(test_job_states),
        BOTH(test_api_jobs_kept),
        BOTH(test_health),
        BOTH(test_task_async),
        BOTH(test_claim_fire),
        BOTH(test_take_queued),
        BOTH(test_take_queued_ties),
        BOTH(test_claims_cleanup),
        BOTH(test_alloc_reads),
        BOTH(test_alloc_puts),
        BOTH(test_alloc_put_jobs),
#if HG_HAVE_SQLITE
        SQLITE(test_barrier_ordering),
        SQLITE(test_gathered_puts_wait_for_flush),
        SQLITE(test_barrier_for_a_record),
        SQLITE(test_barrier_moves_a_start_ahead),
        SQLITE(test_reopen),
        SQLITE(test_migration_v0),
        SQLITE(test_migration_v1),
        SQLITE(test_migration_v2),
        SQLITE(test_migration_v3),
        SQLITE(test_query_reads_what_was_put),
        SQLITE(test_migration_newer),
        SQLITE(test_kill9),
        SQLITE(test_fault_disk_full),
        SQLITE(test_fault_locked),
        SQLITE(test_fault_locked_cleanup),
        SQLITE(test_unknown_status_row),
        SQLITE(test_fault_queue_bound),
        SQLITE(test_corrupt_open),
        SQLITE(test_corrupt_runtime),
        SQLITE(test_readonly),
        SQLITE(test_check),
        SQLITE(test_vacuum),
        SQLITE(test_checkpoint),
        SQLITE(test_open_writes_nothing),
        SQLITE(test_private_no_symlink),
        SQLITE(test_fault_recovery_in_chunks),
        SQLITE(test_file_deleted),
        SQLITE(test_alloc_open),
        SQLITE(test_io_open),
        SQLITE(test_io_reads),
        SQLITE(test_io_writes),
#endif
    };

    fault_alloc_setup();
#if HG_HAVE_SQLITE
    fault_io_setup();
#endif
    /* HG_TEST_FILTER=NAME runs the tests whose names match. */
    if (getenv("HG_TEST_FILTER") != NULL) {
        cmocka_set_test_filter(getenv("HG_TEST_FILTER"));
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
