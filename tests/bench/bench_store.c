/*
 * bench_store: executions recorded per second by the sqlite store, the way
 * the master records them: each execution is put `running` with a barrier
 * (the master dispatches only once that is committed), and put again with
 * its final state (200 bytes of output) once the barrier is acknowledged,
 * so every execution costs two committed writes. WINDOW executions are in
 * flight at a time (the master's concurrent runs). The clock runs from the
 * first put until the last final record is committed.
 *
 * Then the reads the admin API makes on the resulting file: job_stats for
 * each of 10,000 jobs, a job's history page, one execution.
 *
 * Prints figures and whether the target is met; never fails on a miss.
 *
 *   objs/bench/bench_store [executions [window]]
 *
 * With HG_BENCH_PG_URL set (a postgresql:// url; tests/t/pg.py start
 * gives one), the same on the postgres driver instead.
 */

#include "hg_core.h"

#include <poll.h>

#include "hg_log.h"
#include "hg_store.h"

#include "bench_common.h"

#if HG_HAVE_SQLITE

#include <sqlite3.h>

#define TARGET_PER_SEC  10000.0
#define JOBS            10000

static void
wait_notify(hg_store_t *store, int ms)
{
    struct pollfd pfd = { store->notify_fd, POLLIN, 0 };

    if (store->notify_fd >= 0) {
        (void) poll(&pfd, 1, ms);
    }
}

/* Records N executions with WINDOW in flight; executions per second. */
static double
record(hg_store_t *store, unsigned n, unsigned window, unsigned job_offset)
{
    slot_t *slots = calloc(window, sizeof(*slots));
    char output[201];
    hg_exec_record_t r;
    unsigned started = 0, finished = 0, i;
    uint64_t acked = 0, last;
    double t0, t1;

    if (slots == NULL) {
        fprintf(stderr, "bench_store: out of memory\n");
        exit(1);
    }
    for (i = 0; i < 200; i++) {
        output[i] = (char) ('a' + i % 26);
    }
    output[199] = '\n';
    output[200] = '\0';

    t0 = now_s();
    while (finished < n) {
        /* dispatch: running, then a barrier before the frame would go */
        while (started < n && started - finished < window) {
            slot_t *s = &slots[started % window];
            snprintf(s->id, sizeof(s->id), "0190f0a1-%08x-7abc-8def-%012x",
                     started + job_offset, started);
            snprintf(s->job, sizeof(s->job), "job-%05u",
                     (started + job_offset) % JOBS);
            s->scheduled = 1767225600000LL + (int64_t) started * 10;
            fill(&r, s, HG_EXEC_RUNNING, NULL, started);
            if (hg_store_put_execution(store, &r) != HG_OK
                || hg_store_barrier(store, &s->ticket) != HG_OK)
            {
                fprintf(stderr, "bench_store: put failed\n");
                exit(1);
            }
            started++;
        }
        /* the event loop's turn: wait for commits */
        wait_notify(store, 100);
        acked = hg_store_ack(store);
        /* executions whose running record is durable "run" and end at
         * once (the worker's time is not what is measured) */
        while (finished < started
               && slots[finished % window].ticket <= acked)
        {
            fill(&r, &slots[finished % window],
                 finished % 20 == 0 ? HG_EXEC_FAILED : HG_EXEC_SUCCEEDED,
                 output, finished);
            if (hg_store_put_execution(store, &r) != HG_OK) {
                fprintf(stderr, "bench_store: put failed\n");
                exit(1);
            }
            finished++;
        }
    }
    /* until the last final record is committed */
    if (hg_store_barrier(store, &last) != HG_OK) {
        exit(1);
    }
    while (hg_store_ack(store) < last) {
        wait_notify(store, 100);
    }
    t1 = now_s();
    free(slots);
    return n / (t1 - t0);
}

static void
reads(hg_store_t *store)
{
    hg_job_stats_t st;
    hg_exec_row_t *rows, row;
    size_t n;
    char job[32];
    double t0, t1;
    unsigned i;
    uint64_t runs = 0;

    t0 = now_s();
    for (i = 0; i < JOBS; i++) {
        snprintf(job, sizeof(job), "job-%05u", i);
        if (hg_store_job_stats(store, job, &st) != HG_OK) {
            fprintf(stderr, "bench_store: job_stats failed\n");
            exit(1);
        }
        runs += st.runs;
    }
    t1 = now_s();
    printf("job_stats:    %u jobs in %.1f ms (%.1f us per job; %" PRIu64
           " runs counted)\n", JOBS, (t1 - t0) * 1e3,
           (t1 - t0) * 1e6 / JOBS, runs);

    t0 = now_s();
    for (i = 0; i < 1000; i++) {
        snprintf(job, sizeof(job), "job-%05u", (i * 7919) % JOBS);
        if (hg_store_list_executions(store, job, NULL, 50, 0, &rows, &n)
            != HG_OK)
        {
            exit(1);
        }
        hg_exec_rows_free(rows, n);
    }
    t1 = now_s();
    printf("history page: %.1f us (a job's newest 50, 1000 jobs)\n",
           (t1 - t0) * 1e6 / 1000);

    t0 = now_s();
    for (i = 0; i < 1000; i++) {
        char id[48];
        unsigned k = (i * 7919) % 1000;
        snprintf(id, sizeof(id), "0190f0a1-%08x-7abc-8def-%012x", k, k);
        if (hg_store_get_execution(store, id, &row) != HG_OK) {
            fprintf(stderr, "bench_store: %s missing\n", id);
            exit(1);
        }
        hg_exec_row_free(&row);
    }
    t1 = now_s();
    printf("execution:    %.1f us (get with output)\n",
           (t1 - t0) * 1e6 / 1000);
}

int
main(int argc, char **argv)
{
    char dir[] = "/tmp/hg_bench_store.XXXXXX", path[128], err[512];
    char cmd[160];
    hg_conf_t conf;
    hg_store_t *store;
    unsigned n = 100000, window = 1000;
    double rate, small;
    json_t *health;
    char *text;

    if (argc > 1) {
        n = (unsigned) strtoul(argv[1], NULL, 10);
    }
    if (argc > 2) {
        window = (unsigned) strtoul(argv[2], NULL, 10);
    }
    if (n == 0 || window == 0) {
        fprintf(stderr, "usage: bench_store [executions [window]]\n");
        return 2;
    }
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    hg_log_open("/dev/null", HG_LOG_ERROR, HG_LOG_FORMAT_TEXT);
    snprintf(path, sizeof(path), "%s/hourglass.db", dir);
    memset(&conf, 0, sizeof(conf));
    conf.store.driver = "sqlite";
    conf.store.path = path;
    if (getenv("HG_BENCH_PG_URL") != NULL) {
        conf.store.driver = "postgres";
        conf.store.url = getenv("HG_BENCH_PG_URL");
    }

    store = hg_store_open(&conf, err, sizeof(err));
    if (store == NULL) {
        fprintf(stderr, "bench_store: %s\n", err);
        return 1;
    }
    if (conf.store.url != NULL) {
        printf("postgres store (HG_BENCH_PG_URL)\n");
    } else {
        printf("sqlite store in %s (WAL, synchronous=NORMAL), SQLite %s\n",
               dir, sqlite3_libversion());
    }
    rate = record(store, n, window, 0);
    small = record(store, n / 10, 16, n);
    printf("recorded:     %.0f executions/s (%u executions, 2 committed "
           "puts each, 200-byte output, %u in flight, %d jobs)\n", rate, n,
           window, JOBS);
    printf("recorded:     %.0f executions/s with 16 in flight (%u "
           "executions; smaller batches)\n", small, n / 10);
    printf("target:       >= %.0f executions/s: %s\n", TARGET_PER_SEC,
           rate >= TARGET_PER_SEC ? "met" : "NOT met");
    reads(store);
    if (hg_store_health(store, &health) == HG_OK) {
        text = json_dumps(health, JSON_COMPACT);
        printf("health:       %s\n", text ? text : "");
        free(text);
        json_decref(health);
    }
    hg_store_close(store);
    hg_log_close();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_store: could not remove %s\n", dir);
    }
    return 0;
}
#else /* !HG_HAVE_SQLITE */

int
main(void)
{
    printf("bench_store: built without SQLite (./configure found no "
           "sqlite3): nothing to measure\n");
    return 0;
}

#endif
