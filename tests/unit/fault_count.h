/*
 * fault_count.h: the counter behind the fault injectors (fault_alloc.h,
 * fault_io.h): armed with N, the Nth call it is asked about is the one to
 * fail, once. Each injector keeps one per thread, so that only the arming
 * thread's calls count.
 */

#ifndef FAULT_COUNT_H
#define FAULT_COUNT_H

#include <stdbool.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif

typedef struct fault_count_s {
    bool armed;
    bool fired;
    unsigned long target;           /* 1-based */
    unsigned long seen;
} fault_count_t;

/* Whether this call is the one to fail. */
static inline bool
fault_count_hit(fault_count_t *c)
{
    if (!c->armed || c->fired) {
        return false;
    }
    if (++c->seen == c->target) {
        c->fired = true;
        return true;
    }
    return false;
}

static inline void
fault_count_arm(fault_count_t *c, unsigned long n)
{
    c->target = n;
    c->seen = 0;
    c->fired = false;
    c->armed = true;
}

/* Stop counting; whether a call was failed since the arming. */
static inline bool
fault_count_disarm(fault_count_t *c)
{
    c->armed = false;
    return c->fired;
}

/*
 * The step between two faults for the loops that are long (thousands of
 * attempts, each opening a database): 1, or under valgrind, which runs
 * them some twenty times slower, every 7th, so that the unit tests' pass
 * under valgrind stays within CI's budget. The plain and ASan passes run
 * every fault (ASan checks leaks on each path too).
 */
static inline unsigned long
fault_step(void)
{
#ifdef RUNNING_ON_VALGRIND
    if (RUNNING_ON_VALGRIND) {
        return 7;
    }
#endif
    return 1;
}

#endif /* FAULT_COUNT_H */
