/*
 * When a schedule fires: the one "next fire time after t" and the one
 * enumeration of the fire times that passed unrun (misfires), for every
 * kind of schedule (cron, every with or without start_at, at).
 *
 * hg_schedule.c owns these computations only. It never sets a timer, never
 * fires anything and never decides what a misfire policy does with what it
 * enumerates (the master does); it reads no clock: every instant is given.
 */

#ifndef HG_SCHEDULE_H
#define HG_SCHEDULE_H

#include "hg_core.h"
#include "hg_conf.h"
#include "hg_cron.h"
#include "hg_tz.h"

/* A job's schedule, as these computations need it. */
typedef struct hg_schedule_s {
    hg_schedule_kind_t kind;
    const hg_cron_t *cron;          /* CRON, unless every_ms (@every) */
    const hg_tz_t *tz;
    int64_t every_ms;               /* EVERY, or CRON written @every */
    int64_t at;                     /* AT: s */
    bool has_start_at;
    int64_t start_at;               /* s */
} hg_schedule_t;

/* Whether it runs on the wall clock (cron and at) rather than at a fixed
 * rate (every, which the master keeps on the monotonic clock). */
bool hg_schedule_on_wall_clock(const hg_schedule_t *s);

/*
 * The first fire time strictly after AFTER_MS (wall ms) into *NEXT_MS:
 * HG_OK, or HG_ERROR when there is none (an `at` in the past, a job with
 * no schedule, a cron expression with no time within its search bound). A fixed rate fires one interval after AFTER_MS, or on the grid
 * start_at + k * every.
 */
int hg_schedule_next(const hg_schedule_t *s, int64_t after_ms,
                     int64_t *next_ms);

/*
 * The fire times in (AFTER_MS, UNTIL_MS] in order, into OUT (room for CAP,
 * CAP > 0): returns how many there are, counting one more than CAP when
 * there are more (the caller says "over CAP").
 */
size_t hg_schedule_missed(const hg_schedule_t *s, int64_t after_ms,
                          int64_t until_ms, int64_t *out, size_t cap);

#endif /* HG_SCHEDULE_H */
