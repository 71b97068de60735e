/*
 * hg_schedule.c: next fire times and missed fire times of a schedule (see
 * hg_schedule.h).
 */

#include "hg_core.h"

#include "hg_schedule.h"

/* @reboot is on no clock: it has no fire time (so nothing is ever found
 * missed), and the master runs it once per boot (hg_recover.c). */
bool
hg_schedule_on_wall_clock(const hg_schedule_t *s)
{
    return (s->kind == HG_SCHEDULE_CRON && s->every_ms == 0
            && !hg_cron_is_reboot(s->cron))
           || s->kind == HG_SCHEDULE_AT;
}

static bool
hg_schedule_fixed_rate(const hg_schedule_t *s)
{
    return s->every_ms > 0
           && (s->kind == HG_SCHEDULE_EVERY || s->kind == HG_SCHEDULE_CRON);
}

/* Cron's resolution is the second: the next second strictly after the
 * instant, which may itself fall within a second. */
static int
hg_schedule_cron_next(const hg_schedule_t *s, int64_t after_ms,
                      int64_t *next_ms)
{
    int64_t next;

    if (hg_cron_next(s->cron, s->tz, hg_floor_div(after_ms, 1000), &next)
        != HG_OK)
    {
        return HG_ERROR;
    }
    *next_ms = next * HG_MSEC_PER_SEC;
    return HG_OK;
}

int
hg_schedule_next(const hg_schedule_t *s, int64_t after_ms, int64_t *next_ms)
{
    int64_t start_ms;

    if (hg_schedule_fixed_rate(s)) {
        if (!s->has_start_at) {
            *next_ms = after_ms + s->every_ms;
            return HG_OK;
        }
        start_ms = s->start_at * HG_MSEC_PER_SEC;
        *next_ms = start_ms > after_ms
                   ? start_ms
                   : start_ms + ((after_ms - start_ms) / s->every_ms + 1)
                                * s->every_ms;
        return HG_OK;
    }
    switch (s->kind) {
    case HG_SCHEDULE_CRON:
        return hg_schedule_cron_next(s, after_ms, next_ms);
    case HG_SCHEDULE_AT:
        if (s->at * HG_MSEC_PER_SEC > after_ms) {
            *next_ms = s->at * HG_MSEC_PER_SEC;
            return HG_OK;
        }
        return HG_ERROR;
    default:
        return HG_ERROR;
    }
}

size_t
hg_schedule_missed(const hg_schedule_t *s, int64_t after_ms,
                   int64_t until_ms, int64_t *out, size_t cap)
{
    int64_t t = after_ms, next;
    size_t count = 0;

    if (s->kind == HG_SCHEDULE_NONE) {
        return 0;
    }
    /* Each kind's next one after the last, as the running schedule would
     * have found them (a fixed rate steps from the last fire itself). */
    while (count <= cap) {
        if (hg_schedule_fixed_rate(s)) {
            next = t + s->every_ms;
        } else if (hg_schedule_next(s, t, &next) != HG_OK) {
            break;
        }
        if (next > until_ms) {
            break;
        }
        if (count < cap) {
            out[count] = next;
        }
        count++;
        t = next;
    }
    return count;
}
