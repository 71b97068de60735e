/*
 * fuzz_cron.c: libFuzzer target for the cron parser and the next-fire
 * search (tests/fuzz/run.sh builds and runs it).
 *
 * Every input is parsed; an error must come with a message. An expression
 * that parses is searched from a few start instants in UTC and
 * Europe/Berlin (two of them on DST days), chaining several fire times,
 * and each one must be strictly after its input and lawful: its wall time
 * matches the fields, or it is the end of a spring-forward gap and the
 * schedule is fixed-time. Where the gap between two fire times is short
 * enough, every instant in between is checked not to be a fire time that
 * the search skipped (the DST rules applied instant by instant).
 */
// fuzz-sources: core/hg_cron.c core/hg_tz.c core/hg_hint.c
// fuzz-max-len: 160
// fuzz-seed: */5 * * * *
// fuzz-seed: 0 0 2 * * *
// fuzz-seed: 0 30 9 * * 1-5
// fuzz-seed: 0 0 12 L * *
// fuzz-seed: 30 2 * * *
// fuzz-seed: 0,30 2 * * *
// fuzz-seed: */10 2 * * *
// fuzz-seed: 0 0 15W,LW * MON#2,5L
// fuzz-seed: 0 0 29 2 *
// fuzz-seed: */20 30 2 ? JAN-DEC/2 SUN-SAT
// fuzz-seed: @every 1h30m
// fuzz-seed: @hourly
// fuzz-seed: 7/15 10-50/10 */3 1W 1,6,12 ?
// fuzz-seed: 0 0 29-L * FRI-0
// fuzz-seed: 0 0 1-L/8 2 MON-SUN/2

#include "hg_core.h"

#include "hg_cron.h"
#include "hg_tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHAIN  6

/* One wall time (local seconds) of the gap [from, to) that matches. */
static int
gap_has_match(const hg_cron_t *c, int64_t from, int64_t to)
{
    int64_t w, days, sod, y;
    int m, d;

    for (w = from; w < to; w++) {
        days = hg_floor_div(w, 86400);
        sod = w - days * 86400;
        hg_civil_from_days(days, &y, &m, &d);
        if (hg_cron_matches(c, y, m, d, (int) (sod / 3600),
                            (int) (sod / 60 % 60), (int) (sod % 60)))
        {
            return 1;
        }
    }
    return 0;
}

/* Whether t is a fire time, by the DST rules of hg_cron.c, one instant at
 * a time: the reference the search must agree with. */
static int
fires_at(const hg_cron_t *c, const hg_tz_t *tz, int64_t t)
{
    struct tm tm;
    hg_tz_span_t sp;
    int64_t occ[2];
    int matches;

    hg_tz_localtime(tz, t, &tm);
    matches = hg_cron_matches(c, tm.tm_year + 1900, tm.tm_mon + 1,
                              tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (hg_cron_is_interval_like(c)) {
        return matches;
    }
    if (matches && !(hg_tz_from_wall(tz, t + tm.tm_gmtoff, occ) == 2
                     && occ[1] == t))
    {
        return 1;
    }
    hg_tz_span(tz, t, &sp);
    return sp.start == t && sp.prev_offset < sp.offset
           && gap_has_match(c, t + sp.prev_offset, t + sp.offset);
}

static int
field_count(const char *text)
{
    int n = 0, in = 0;

    for (; *text != '\0'; text++) {
        if (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r'
            || *text == '\v' || *text == '\f')
        {
            in = 0;
        } else if (!in) {
            in = 1;
            n++;
        }
    }
    return n;
}

static void
check_chain(const hg_cron_t *c, const hg_tz_t *tz, int64_t t)
{
    int64_t next, s, step;
    int i;

    for (i = 0; i < FUZZ_CHAIN; i++) {
        if (hg_cron_next(c, tz, t, &next) != HG_OK) {
            return;
        }
        if (next <= t) {
            abort();
        }
        if (hg_cron_every_seconds(c)) {
            if (next != t + hg_cron_every_seconds(c)) {
                abort();
            }
            t = next;
            continue;
        }
        if (!fires_at(c, tz, next)) {
            abort();
        }
        /* nothing skipped: per second over 2 hours, per minute over two
         * days (5-field schedules fire on whole minutes, and so do these
         * zones' transitions) */
        step = field_count(hg_cron_text(c)) == 6 ? 1 : 60;
        if (next - t <= (step == 1 ? 7200 : 2 * 86400)) {
            for (s = (t / step + 1) * step; s < next; s += step) {
                if (fires_at(c, tz, s)) {
                    abort();
                }
            }
        }
        t = next;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const hg_tz_t *zones[2];
    static const int64_t starts[] = {
        1774738800,         /* 2026-03-28T23:00:00Z, Berlin springs forward */
        1792884600,         /* 2026-10-24T23:30:00Z, Berlin falls back */
        946684799,          /* 1999-12-31T23:59:59Z */
        4107456000,         /* 2100-02-28T00:00:00Z */
    };
    char expr[HG_CRON_MAX_TEXT + 8], err[512];
    hg_cron_t *c;
    size_t i, z;
    uint64_t h = 1469598103934665603ULL;

    if (zones[0] == NULL) {
        zones[0] = hg_tz_utc();
        zones[1] = hg_tz_get("Europe/Berlin", err, sizeof(err));
        if (zones[1] == NULL) {
            zones[1] = zones[0];
        }
    }
    if (size >= sizeof(expr)) {
        return 0;
    }
    memcpy(expr, data, size);
    expr[size] = '\0';

    err[0] = '\0';
    c = hg_cron_parse(expr, err, sizeof(err));
    if (c == NULL) {
        if (err[0] == '\0') {
            abort();
        }
        return 0;
    }

    for (i = 0; i < size; i++) {
        h = (h ^ data[i]) * 1099511628211ULL;
    }
    for (z = 0; z < HG_NELEMS(zones); z++) {
        for (i = 0; i < HG_NELEMS(starts); i++) {
            check_chain(c, zones[z], starts[i]);
        }
        /* and one start of the input's own, 1970-2400 */
        check_chain(c, zones[z], (int64_t) (h % 13569465600ULL));
    }
    hg_cron_free(c);
    return 0;
}
