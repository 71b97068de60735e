/*
 * bench_cron.c: the cost of one next-fire computation (hg_cron_next), for
 * a few expressions in UTC and in Europe/Berlin, each run from many
 * successive start points (spread over a year, 7919 s apart) for about
 * 0.4 s. Prints next/s and the mean in ns; never fails on timing.
 *
 * The figures also go to objs/bench/bench_cron.tsv, where
 * tests/bench/bench_croner.sh finds them to print the ratio to croner.
 */

#include "hg_core.h"

#include "hg_cron.h"
#include "hg_tz.h"

#define BENCH_SECONDS  0.4
#define BENCH_BATCH    4096
#define BENCH_START    1767225600LL         /* 2026-01-01T00:00:00Z */
#define BENCH_SPREAD   (366LL * 86400)
#define BENCH_STEP     7919LL

static const char *const bench_exprs[] = {
    "*/5 * * * *", "0 0 2 * * *", "0 30 9 * * 1-5", "0 0 12 L * *",
};
static const char *const bench_zones[] = { "UTC", "Europe/Berlin" };

static double
bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int
main(void)
{
    char err[256];
    const hg_tz_t *tz;
    hg_cron_t *c;
    int64_t next, sink = 0, i, j;
    double t0, elapsed, per;
    size_t e, z;
    FILE *tsv;

    tsv = fopen("objs/bench/bench_cron.tsv", "w");
    printf("hg_cron_next, %.1f s per line, start points 2026-2027:\n",
           BENCH_SECONDS);
    for (z = 0; z < HG_NELEMS(bench_zones); z++) {
        tz = hg_tz_get(bench_zones[z], err, sizeof(err));
        if (tz == NULL) {
            fprintf(stderr, "bench_cron: %s\n", err);
            return 1;
        }
        for (e = 0; e < HG_NELEMS(bench_exprs); e++) {
            c = hg_cron_parse(bench_exprs[e], err, sizeof(err));
            if (c == NULL) {
                fprintf(stderr, "bench_cron: %s\n", err);
                return 1;
            }
            for (i = 0; i < BENCH_BATCH; i++) {         /* warm up */
                hg_cron_next(c, tz, BENCH_START + i, &next);
                sink += next;
            }
            i = 0;
            t0 = bench_now();
            do {
                for (j = 0; j < BENCH_BATCH; j++, i++) {
                    hg_cron_next(c, tz, BENCH_START
                                 + (i * BENCH_STEP) % BENCH_SPREAD, &next);
                    sink += next;
                }
                elapsed = bench_now() - t0;
            } while (elapsed < BENCH_SECONDS);
            per = elapsed * 1e9 / (double) i;
            printf("  %-18s %-14s %12.0f next/s %9.1f ns/next\n",
                   bench_exprs[e], bench_zones[z], 1e9 / per, per);
            if (tsv != NULL) {
                fprintf(tsv, "%s\t%s\t%.1f\n", bench_exprs[e], bench_zones[z],
                        per);
            }
            hg_cron_free(c);
        }
    }
    if (tsv != NULL) {
        fclose(tsv);
    }
    /* keeps the loop from being optimised away */
    if (sink == 42) {
        printf("\n");
    }
    return 0;
}
