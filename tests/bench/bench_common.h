/*
 * What the store benchmarks share: a monotonic clock in seconds, and an
 * execution in flight (its id, job, barrier ticket, due time).
 */

#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include "hg_core.h"

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

#endif /* BENCH_COMMON_H */
