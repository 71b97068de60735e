/*
 * What the store benchmarks share: a monotonic clock in seconds, an
 * execution in flight (its id, job, barrier ticket, due time), and the
 * record of one (the Nth), running or final with 200 bytes of output.
 */

#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include "hg_core.h"

#include "hg_store.h"

static inline double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

typedef struct slot_s {
    char id[48];
    char job[32];
    uint64_t ticket;
    int64_t scheduled;
} slot_t;

static inline void
fill(hg_exec_record_t *r, const slot_t *s, hg_exec_status_t status,
     const char *output, unsigned n)
{
    memset(r, 0, sizeof(*r));
    r->id = s->id;
    r->run_id = s->id;
    r->job_id = s->job;
    r->status = status;
    r->attempt = 1;
    r->trigger = "schedule";
    r->scheduled_for = s->scheduled;
    r->started_at = s->scheduled + 3;
    r->duration_ms = -1;
    r->exit_code = -1;
    r->max_rss_kb = -1;
    r->priority = HG_PRIORITY_NORMAL;
    r->worker_pid = 1000 + (int) (n % 64);
    if (status != HG_EXEC_RUNNING) {
        r->duration_ms = 20 + n % 500;
        r->finished_at = r->started_at + r->duration_ms;
        r->exit_code = status == HG_EXEC_SUCCEEDED ? 0 : 1;
        r->output = output;
        r->output_len = 200;
        r->max_rss_kb = 4096 + n % 1000;
        r->cpu_user_ms = n % 30;
        r->cpu_sys_ms = n % 7;
    }
}

#endif /* BENCH_COMMON_H */
