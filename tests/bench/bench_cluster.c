/*
 * bench_cluster: executions claimed and recorded per second through
 * PostgreSQL by three instances of a cluster on one machine, the way their
 * masters do it: every instance fires every fire time (the same schedule
 * everywhere), so each fire time is put three times, by three stores, as a
 * `running` record carrying its claim, with a barrier; once the barrier is
 * acknowledged the instance whose claim won puts the final record (200
 * bytes of output) and the two others forget the fire. WINDOW fire times
 * are in flight per instance. The clock runs from the first put until the
 * last final record is committed; the figure is fire times (executions)
 * per second, each recorded once.
 *
 * Needs HG_BENCH_PG_URL (a postgresql:// url of an empty database;
 * `python3 tests/t/pg.py start` prints one), else it says so and exits 0.
 * Prints figures and whether the target is met; never fails on a miss.
 *
 *   objs/bench/bench_cluster [fire-times [window [instances]]]
 *
 * (instances 1 to 3, default 3: one instance shows the claims' own cost,
 * without another instance's transaction to wait for.)
 *
 * Then the shared queue: instance a puts QUEUED (default 30000) queued
 * records for any instance (hg_exec_record_t.shared), committed before the
 * clock starts; every instance says it has WINDOW free workers, its
 * store's tick takes that many at a time (FOR UPDATE SKIP LOCKED, polled
 * every 150 ms) and the bench puts each taken one's final record, as a
 * master would once it ran. The figure is executions taken and recorded
 * per second; each must be taken once.
 *
 *   objs/bench/bench_cluster [fire-times [window [instances [queued]]]]
 */

#include "hg_core.h"

#include <poll.h>

#include "hg_log.h"
#include "hg_store.h"

#include "bench_common.h"

#if HG_HAVE_POSTGRES

#define TARGET_PER_SEC  10000.0
#define INSTANCES       3             /* at most */
#define JOBS            1000

typedef struct instance_s {
    const char *name;
    hg_store_t *store;
    slot_t *slots;
    unsigned started, settled;
    uint64_t won, lost;
} instance_t;

/* The record bench_store puts, running with its claim (every instance
 * holds the same definition), or final. */
static void
fill_claimed(hg_exec_record_t *r, const slot_t *s, hg_exec_status_t status,
             const char *output, unsigned n)
{
    fill(r, s, status, output, n);
    if (status == HG_EXEC_RUNNING) {
        r->claim = true;
        r->def_hash = 0x686f7572676c6173ULL;
    }
}

/* Puts instance I's next fire times up to WINDOW in flight. */
static void
put_fires(instance_t *in, unsigned idx, unsigned n, unsigned window)
{
    hg_exec_record_t r;

    while (in->started < n && in->started - in->settled < window) {
        slot_t *s = &in->slots[in->started % window];

        snprintf(s->id, sizeof(s->id), "0190f0a1-%08x-7abc-8def-%012x",
                 in->started, idx);
        snprintf(s->job, sizeof(s->job), "job-%04u", in->started % JOBS);
        /* JOBS jobs firing every second */
        s->scheduled = 1767225600000LL
                       + (int64_t) (in->started / JOBS) * 1000;
        fill_claimed(&r, s, HG_EXEC_RUNNING, NULL, in->started);
        if (hg_store_put_execution(in->store, &r) != HG_OK
            || hg_store_barrier(in->store, &s->ticket) != HG_OK)
        {
            fprintf(stderr, "bench_cluster: put failed\n");
            exit(1);
        }
        in->started++;
    }
}

/* Settles instance I's committed fire times: the winner's final record. */
static void
settle(instance_t *in, unsigned window, const char *output)
{
    hg_exec_record_t r;
    uint64_t acked = hg_store_ack(in->store);

    while (in->settled < in->started
           && in->slots[in->settled % window].ticket <= acked)
    {
        slot_t *s = &in->slots[in->settled % window];

        if (hg_store_claim_lost(in->store, s->id)) {
            in->lost++;
        } else {
            in->won++;
            fill_claimed(&r, s, HG_EXEC_SUCCEEDED, output, in->settled);
            if (hg_store_put_execution(in->store, &r) != HG_OK) {
                fprintf(stderr, "bench_cluster: put failed\n");
                exit(1);
            }
        }
        in->settled++;
    }
}

static unsigned ninstances = INSTANCES;

static double
run(instance_t *ins, unsigned n, unsigned window)
{
    struct pollfd pfd[INSTANCES];
    char output[201];
    unsigned i, done;
    uint64_t last[INSTANCES];
    double t0;

    memset(output, 'x', 200);
    output[199] = '\n';
    output[200] = '\0';
    t0 = now_s();
    do {
        done = 0;
        for (i = 0; i < ninstances; i++) {
            put_fires(&ins[i], i, n, window);
            hg_store_flush(ins[i].store);
            pfd[i].fd = ins[i].store->notify_fd;
            pfd[i].events = POLLIN;
        }
        (void) poll(pfd, ninstances, 100);
        for (i = 0; i < ninstances; i++) {
            settle(&ins[i], window, output);
            done += ins[i].settled == n;
        }
    } while (done < ninstances);
    for (i = 0; i < ninstances; i++) {
        if (hg_store_barrier(ins[i].store, &last[i]) != HG_OK) {
            exit(1);
        }
    }
    for (i = 0; i < ninstances; i++) {
        while (hg_store_ack(ins[i].store) < last[i]) {
            pfd[0].fd = ins[i].store->notify_fd;
            pfd[0].events = POLLIN;
            (void) poll(pfd, 1, 100);
        }
    }
    return n / (now_s() - t0);
}

/* Waits until every instance's last put is committed. */
static void
drain(instance_t *ins)
{
    struct pollfd pfd;
    uint64_t last;
    unsigned i;

    for (i = 0; i < ninstances; i++) {
        if (hg_store_barrier(ins[i].store, &last) != HG_OK) {
            exit(1);
        }
        while (hg_store_ack(ins[i].store) < last) {
            pfd.fd = ins[i].store->notify_fd;
            pfd.events = POLLIN;
            (void) poll(&pfd, 1, 100);
        }
    }
}

/* Each taken execution's final record, by its taker; how many. */
static size_t
settle_taken(instance_t *in, const char *output)
{
    hg_exec_row_t *rows;
    hg_exec_record_t r;
    size_t n, k;

    (void) hg_store_ack(in->store);
    if (hg_store_taken(in->store, &rows, &n) != HG_OK) {
        exit(1);
    }
    for (k = 0; k < n; k++) {
        r = rows[k].r;
        r.shared = false;
        r.status = HG_EXEC_SUCCEEDED;
        r.started_at = r.scheduled_for + 3;
        r.duration_ms = 20;
        r.finished_at = r.started_at + 20;
        r.exit_code = 0;
        r.output = output;
        r.output_len = 200;
        if (hg_store_put_execution(in->store, &r) != HG_OK) {
            fprintf(stderr, "bench_cluster: put failed\n");
            exit(1);
        }
    }
    hg_store_flush(in->store);
    hg_exec_rows_free(rows, n);
    return n;
}

static double
run_queue(instance_t *ins, unsigned q, unsigned window, size_t *taken)
{
    struct pollfd pfd[INSTANCES];
    hg_exec_record_t r;
    slot_t s;
    char output[201];
    size_t total = 0;
    unsigned i, k;
    double t0;

    memset(output, 'x', 200);
    output[199] = '\n';
    output[200] = '\0';
    memset(&s, 0, sizeof(s));
    for (k = 0; k < q; k++) {
        snprintf(s.id, sizeof(s.id), "0190f0b2-%08x-7abc-8def-000000000000",
                 k);
        snprintf(s.job, sizeof(s.job), "job-%04u", k % JOBS);
        s.scheduled = 1767225600000LL;
        fill(&r, &s, HG_EXEC_QUEUED, NULL, k);
        r.started_at = r.finished_at = 0;     /* queued: not started */
        r.duration_ms = -1;
        r.exit_code = -1;
        r.output_len = 0;
        r.trigger = "api:bench";
        r.shared = true;
        if (hg_store_put_execution(ins[0].store, &r) != HG_OK) {
            fprintf(stderr, "bench_cluster: put failed\n");
            exit(1);
        }
    }
    hg_store_flush(ins[0].store);
    drain(ins);
    t0 = now_s();
    while (total < q) {
        for (i = 0; i < ninstances; i++) {
            hg_store_set_capacity(ins[i].store, window);
            pfd[i].fd = ins[i].store->notify_fd;
            pfd[i].events = POLLIN;
        }
        (void) poll(pfd, ninstances, 100);
        for (i = 0; i < ninstances; i++) {
            k = (unsigned) settle_taken(&ins[i], output);
            taken[i] += k;
            total += k;
        }
    }
    for (i = 0; i < ninstances; i++) {
        hg_store_set_capacity(ins[i].store, 0);
    }
    drain(ins);
    return q / (now_s() - t0);
}

int
main(int argc, char **argv)
{
    static const char *names[INSTANCES] = { "a", "b", "c" };
    instance_t ins[INSTANCES];
    hg_conf_t conf;
    unsigned n = 30000, window = 1000, queued = 30000, i;
    size_t taken[INSTANCES] = { 0 }, all = 0;
    uint64_t won = 0, lost = 0;
    const char *url = getenv("HG_BENCH_PG_URL");
    char err[512];
    double rate;

    if (url == NULL) {
        printf("bench_cluster: HG_BENCH_PG_URL is not set (python3 "
               "tests/t/pg.py start prints a url): nothing measured\n");
        return 0;
    }
    if (argc > 1) {
        n = (unsigned) strtoul(argv[1], NULL, 10);
    }
    if (argc > 2) {
        window = (unsigned) strtoul(argv[2], NULL, 10);
    }
    if (argc > 3) {
        ninstances = (unsigned) strtoul(argv[3], NULL, 10);
    }
    if (argc > 4) {
        queued = (unsigned) strtoul(argv[4], NULL, 10);
    }
    if (n == 0 || window == 0 || ninstances == 0 || ninstances > INSTANCES) {
        fprintf(stderr, "usage: bench_cluster [fire-times [window "
                "[instances: 1-3 [queued]]]]\n");
        return 2;
    }
    hg_log_open("/dev/null", HG_LOG_ERROR, HG_LOG_FORMAT_TEXT);
    memset(ins, 0, sizeof(ins));
    for (i = 0; i < ninstances; i++) {
        memset(&conf, 0, sizeof(conf));
        conf.store.driver = "postgres";
        conf.store.url = (char *) url;
        conf.cluster.enabled = true;
        conf.cluster.instance = (char *) names[i];
        conf.cluster.lease_ms = 10000;
        ins[i].name = names[i];
        ins[i].slots = calloc(window, sizeof(slot_t));
        ins[i].store = hg_store_open(&conf, err, sizeof(err));
        if (ins[i].store == NULL || ins[i].slots == NULL) {
            fprintf(stderr, "bench_cluster: %s\n", err);
            return 1;
        }
        hg_store_gather(ins[i].store);
    }
    rate = run(ins, n, window);
    for (i = 0; i < ninstances; i++) {
        won += ins[i].won;
        lost += ins[i].lost;
    }
    printf("cluster:      %.0f executions/s claimed and recorded (%u fire "
           "times of %d jobs, each fired by %d instances on one "
           "PostgreSQL, %u in flight per instance; 2 records per "
           "execution)\n", rate, n, JOBS, ninstances, window);
    printf("claims:       %" PRIu64 " won (a %" PRIu64 ", b %" PRIu64
           ", c %" PRIu64 "), %" PRIu64 " lost: %s\n", won, ins[0].won,
           ins[1].won, ins[2].won, lost,
           won == n && lost == (uint64_t) n * (ninstances - 1)
           ? "each fire time once" : "WRONG: a fire time not run once");
    printf("target:       >= %.0f executions/s: %s\n", TARGET_PER_SEC,
           rate >= TARGET_PER_SEC ? "met" : "NOT met");
    if (queued > 0) {
        rate = run_queue(ins, queued, window, taken);
        for (i = 0; i < ninstances; i++) {
            all += taken[i];
        }
        printf("shared queue: %.0f executions/s taken and recorded (%u "
               "queued on a, taken by %u instances with FOR UPDATE SKIP "
               "LOCKED, up to %u at a time each)\n", rate, queued,
               ninstances, window);
        printf("takes:        a %zu, b %zu, c %zu: %s\n", taken[0],
               taken[1], taken[2], all == queued ? "each taken once"
               : "WRONG: not each taken once");
    }
    for (i = 0; i < ninstances; i++) {
        hg_store_close(ins[i].store);
        free(ins[i].slots);
    }
    hg_log_close();
    return won == n && all == queued ? 0 : 1;
}

#else /* !HG_HAVE_POSTGRES */

int
main(void)
{
    printf("bench_cluster: built without libpq: nothing to measure\n");
    return 0;
}

#endif
