/*
 * Next and missed fire times of each kind of schedule (core/hg_schedule.c):
 * cron (in UTC and across a DST change), every with and without start_at,
 * at; the missed ones in (after, until], counted one past the cap when
 * there are more.
 */

#include "hg_core.h"

#include <setjmp.h>
#include <cmocka.h>

#include "hg_cron.h"
#include "hg_schedule.h"
#include "hg_tz.h"

#define S   1000LL                  /* ms */
#define T0  1798761600000LL         /* 2027-01-01T00:00:00Z, ms */

static hg_cron_t *
cron(const char *expr)
{
    char err[256];
    hg_cron_t *c = hg_cron_parse(expr, err, sizeof(err));

    if (c == NULL) {
        fail_msg("%s: %s", expr, err);
    }
    return c;
}

static hg_schedule_t
cron_sched(hg_cron_t *c, const hg_tz_t *tz)
{
    hg_schedule_t s;

    memset(&s, 0, sizeof(s));
    s.kind = HG_SCHEDULE_CRON;
    s.cron = c;
    s.tz = tz;
    return s;
}

static void
test_cron_next(void **state)
{
    hg_cron_t *c = cron("0 */15 * * * *");
    hg_schedule_t s = cron_sched(c, hg_tz_utc());
    int64_t next;

    HG_UNUSED(state);
    assert_true(hg_schedule_on_wall_clock(&s));
    /* strictly after, at the second's resolution */
    assert_int_equal(hg_schedule_next(&s, T0, &next), HG_OK);
    assert_int_equal(next, T0 + 15 * 60 * S);
    assert_int_equal(hg_schedule_next(&s, T0 - 1, &next), HG_OK);
    assert_int_equal(next, T0);
    assert_int_equal(hg_schedule_next(&s, T0 + 15 * 60 * S - 500, &next),
                     HG_OK);
    assert_int_equal(next, T0 + 15 * 60 * S);
    hg_cron_free(c);
}

/* 02:30 every day in Berlin: on 2027-03-28 (spring forward) 02:30 does
 * not exist and the job runs at 03:00 local, 01:00Z. */
static void
test_cron_next_in_a_zone(void **state)
{
    char err[128];
    const hg_tz_t *berlin = hg_tz_get("Europe/Berlin", err, sizeof(err));
    hg_cron_t *c = cron("30 2 * * *");
    hg_schedule_t s;
    int64_t next, after = 1806112800000LL;  /* 2027-03-27T02:00:00Z */

    HG_UNUSED(state);
    assert_non_null(berlin);
    s = cron_sched(c, berlin);
    assert_int_equal(hg_schedule_next(&s, after, &next), HG_OK);
    assert_int_equal(next, 1806195600000LL);  /* 2027-03-28T01:00:00Z */
    hg_cron_free(c);
}

static void
test_every_and_start_at(void **state)
{
    hg_schedule_t s;
    int64_t next;

    HG_UNUSED(state);
    memset(&s, 0, sizeof(s));
    s.kind = HG_SCHEDULE_EVERY;
    s.every_ms = 90 * S;
    assert_false(hg_schedule_on_wall_clock(&s));
    assert_int_equal(hg_schedule_next(&s, T0 + 7, &next), HG_OK);
    assert_int_equal(next, T0 + 7 + 90 * S);
    /* on the grid start_at + k * every: the start itself while ahead,
     * then the first grid point strictly after */
    s.has_start_at = true;
    s.start_at = T0 / S + 3600;
    assert_int_equal(hg_schedule_next(&s, T0, &next), HG_OK);
    assert_int_equal(next, T0 + 3600 * S);
    assert_int_equal(hg_schedule_next(&s, T0 + 3600 * S, &next), HG_OK);
    assert_int_equal(next, T0 + 3600 * S + 90 * S);
    assert_int_equal(hg_schedule_next(&s, T0 + 3600 * S + 100 * S, &next),
                     HG_OK);
    assert_int_equal(next, T0 + 3600 * S + 180 * S);
    /* @every is a cron-kind job at a fixed rate */
    s.kind = HG_SCHEDULE_CRON;
    s.has_start_at = false;
    assert_false(hg_schedule_on_wall_clock(&s));
    assert_int_equal(hg_schedule_next(&s, T0, &next), HG_OK);
    assert_int_equal(next, T0 + 90 * S);
}

static void
test_at(void **state)
{
    hg_schedule_t s;
    int64_t next, out[4];

    HG_UNUSED(state);
    memset(&s, 0, sizeof(s));
    s.kind = HG_SCHEDULE_AT;
    s.at = T0 / S;
    assert_true(hg_schedule_on_wall_clock(&s));
    assert_int_equal(hg_schedule_next(&s, T0 - 1, &next), HG_OK);
    assert_int_equal(next, T0);
    assert_int_equal(hg_schedule_next(&s, T0, &next), HG_ERROR);
    /* missed: only when in (after, until] */
    assert_int_equal(hg_schedule_missed(&s, T0 - 1, T0, out, 4), 1);
    assert_int_equal(out[0], T0);
    assert_int_equal(hg_schedule_missed(&s, T0, T0 + 60 * S, out, 4), 0);
    assert_int_equal(hg_schedule_missed(&s, T0 - 60 * S, T0 - 1, out, 4), 0);
    /* no schedule: nothing, ever */
    s.kind = HG_SCHEDULE_NONE;
    assert_int_equal(hg_schedule_next(&s, T0, &next), HG_ERROR);
    assert_int_equal(hg_schedule_missed(&s, T0, T0 + 60 * S, out, 4), 0);
}

static void
test_missed(void **state)
{
    hg_cron_t *c = cron("* * * * *");
    hg_schedule_t s = cron_sched(c, hg_tz_utc());
    int64_t out[5];
    size_t i;

    HG_UNUSED(state);
    /* (T0, T0 + 3 min]: three minutes, the last one included */
    assert_int_equal(hg_schedule_missed(&s, T0, T0 + 180 * S, out, 5), 3);
    for (i = 0; i < 3; i++) {
        assert_int_equal(out[i], T0 + (int64_t) (i + 1) * 60 * S);
    }
    /* more than the cap: the first CAP, counted CAP + 1 */
    assert_int_equal(hg_schedule_missed(&s, T0, T0 + 3600 * S, out, 5), 6);
    assert_int_equal(out[4], T0 + 300 * S);
    assert_int_equal(hg_schedule_missed(&s, T0, T0 + 300 * S, out, 5), 5);
    /* a fixed rate steps from the last fire itself */
    memset(&s, 0, sizeof(s));
    s.kind = HG_SCHEDULE_EVERY;
    s.every_ms = 7 * S;
    assert_int_equal(hg_schedule_missed(&s, T0 + 1, T0 + 21 * S, out, 5), 2);
    assert_int_equal(out[0], T0 + 1 + 7 * S);
    assert_int_equal(out[1], T0 + 1 + 14 * S);
    hg_cron_free(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cron_next),
        cmocka_unit_test(test_cron_next_in_a_zone),
        cmocka_unit_test(test_every_and_start_at),
        cmocka_unit_test(test_at),
        cmocka_unit_test(test_missed),
    };

    return cmocka_run_group_tests_name("schedule", tests, NULL, NULL);
}
