/*
 * test_tz.c: time zones (core/hg_tz.c) against the system tzdata. The
 * expected offsets and abbreviations come from Python's zoneinfo, which
 * reads the same files with its own TZif and POSIX TZ code; a wider
 * comparison (89,850 instants, every zone, 1900-2400) agreed completely
 * when this was written.
 */

#include "hg_core.h"

#include <setjmp.h>

#include <cmocka.h>

#include "hg_tz.h"

#include "fault_alloc.h"

static const hg_tz_t *
test_zone(const char *name)
{
    char err[256];
    const hg_tz_t *tz = hg_tz_get(name, err, sizeof(err));

    if (tz == NULL) {
        fail_msg("%s", err);
    }
    return tz;
}

static int64_t
test_utc(const char *text)
{
    char err[256];
    int64_t t = 0;

    if (hg_tz_parse_time(hg_tz_utc(), text, &t, err, sizeof(err)) != HG_OK) {
        fail_msg("%s", err);
    }
    return t;
}

static const struct {
    const char *zone;
    const char *at;
    int offset;
    const char *abbr;
    int isdst;                  /* -1: the file's choice (Dublin) */
} test_offsets[] = {
    { "Asia/Kolkata", "2026-06-01T00:00:00Z", 19800, "IST", 0 },
    { "Asia/Kolkata", "1942-09-01T00:00:00Z", 23400, "+0630", 1 },
    { "Asia/Kathmandu", "2026-06-01T00:00:00Z", 20700, "+0545", 0 },
    { "Asia/Kathmandu", "1985-06-01T00:00:00Z", 19800, "+0530", 0 },
    { "Australia/Eucla", "2026-06-01T00:00:00Z", 31500, "+0845", 0 },
    { "Australia/Eucla", "2009-01-01T00:00:00Z", 35100, "+0945", 1 },
    { "Australia/Lord_Howe", "2026-07-01T00:00:00Z", 37800, "+1030", 0 },
    { "Australia/Lord_Howe", "2026-01-01T00:00:00Z", 39600, "+11", 1 },
    { "Australia/Lord_Howe", "2090-01-01T00:00:00Z", 39600, "+11", 1 },
    { "Pacific/Chatham", "2026-07-01T00:00:00Z", 45900, "+1245", 0 },
    { "Pacific/Chatham", "2026-01-01T00:00:00Z", 49500, "+1345", 1 },
    /* past 2037: the footer's POSIX rule */
    { "Europe/Berlin", "2040-07-01T00:00:00Z", 7200, "CEST", 1 },
    { "Europe/Berlin", "2100-07-01T00:00:00Z", 7200, "CEST", 1 },
    { "Europe/Berlin", "2400-01-15T00:00:00Z", 3600, "CET", 0 },
    { "Europe/Berlin", "2400-07-15T00:00:00Z", 7200, "CEST", 1 },
    { "America/New_York", "2100-07-04T00:00:00Z", -14400, "EDT", 1 },
    { "America/New_York", "2100-12-25T00:00:00Z", -18000, "EST", 0 },
    { "America/Sao_Paulo", "2018-12-01T00:00:00Z", -7200, "-02", 1 },
    { "America/Sao_Paulo", "2026-12-01T00:00:00Z", -10800, "-03", 0 },
    { "Europe/Dublin", "2026-01-15T00:00:00Z", 0, "GMT", -1 },
    { "Europe/Dublin", "2026-07-15T00:00:00Z", 3600, "IST", -1 },
    { "Africa/Casablanca", "2026-06-01T00:00:00Z", 3600, "+01", 0 },
    { "UTC", "2026-06-01T00:00:00Z", 0, "UTC", 0 },
    { "Europe/Berlin", "1890-01-01T00:00:00Z", 3208, "LMT", 0 },
    { "America/St_Johns", "2026-07-01T00:00:00Z", -9000, "NDT", 1 },
    { "Asia/Tehran", "2026-07-01T00:00:00Z", 12600, "+0330", 0 },
    { "Antarctica/Troll", "2026-07-01T00:00:00Z", 7200, "+02", 1 },
    { "Pacific/Kiritimati", "2026-07-01T00:00:00Z", 50400, "+14", 0 },
    { "Pacific/Apia", "2011-12-31T12:00:00Z", 50400, "+14", 1 },
};

static void
test_offset_table(void **state)
{
    const hg_tz_t *tz;
    struct tm tm;
    int64_t t;
    size_t i;

    HG_UNUSED(state);
    for (i = 0; i < HG_NELEMS(test_offsets); i++) {
        tz = test_zone(test_offsets[i].zone);
        t = test_utc(test_offsets[i].at);
        hg_tz_localtime(tz, t, &tm);
        if (hg_tz_offset(tz, t) != test_offsets[i].offset
            || tm.tm_gmtoff != test_offsets[i].offset
            || strcmp(tm.tm_zone, test_offsets[i].abbr) != 0
            || (test_offsets[i].isdst >= 0
                && tm.tm_isdst != test_offsets[i].isdst))
        {
            fail_msg("%s at %s: %d %s dst=%d, want %d %s dst=%d",
                     test_offsets[i].zone, test_offsets[i].at,
                     hg_tz_offset(tz, t), tm.tm_zone, tm.tm_isdst,
                     test_offsets[i].offset, test_offsets[i].abbr,
                     test_offsets[i].isdst);
        }
    }
}

/* A zone's POSIX rule alone gives the same offsets as its TZif file. */
static void
test_posix_rules(void **state)
{
    static const struct {
        const char *zone;
        const char *posix;
    } cases[] = {
        { "Europe/Berlin", "CET-1CEST,M3.5.0,M10.5.0/3" },
        { "America/New_York", "EST5EDT,M3.2.0,M11.1.0" },
        { "Australia/Lord_Howe", "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0" },
        { "Pacific/Chatham", "<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45" },
        { "Asia/Kolkata", "IST-5:30" },
    };
    const hg_tz_t *file, *rule;
    int64_t t, end;
    size_t i;

    HG_UNUSED(state);
    end = test_utc("2040-01-01T00:00:00Z");
    for (i = 0; i < HG_NELEMS(cases); i++) {
        file = test_zone(cases[i].zone);
        rule = test_zone(cases[i].posix);
        assert_string_equal(hg_tz_name(rule), cases[i].posix);
        for (t = test_utc("2030-01-01T00:00:00Z"); t < end; t += 900) {
            if (hg_tz_offset(file, t) != hg_tz_offset(rule, t)) {
                fail_msg("%s at %lld: file %d, rule %d", cases[i].zone,
                         (long long) t, hg_tz_offset(file, t),
                         hg_tz_offset(rule, t));
            }
        }
    }
}

static void
test_posix_strings(void **state)
{
    static const char *const bad[] = {
        "", "CET", "C-1", "CET-1CEST,M3.5.0", "CET-1CEST,M13.5.0,M10.5.0",
        "CET-1CEST,M3.6.0,M10.5.0", "CET-1CEST,M3.5.7,M10.5.0", "<+1", "CET-25",
        "CET-1CEST,J0,J10", "CET-1CEST,M3.5.0,M10.5.0/168", "CET-1x",
        /* offsets: too many digits, minutes or seconds past 59, a sign
         * with nothing after it */
        "EST1000", "EST5EDT4:60", "EST5EDT4:00:60", "EST5EDT+", "EST-",
        /* abbreviations: too short, too long, quoted too short */
        "ES5", "ESTABCDEFGHIJKLMNOPQRSTUVWXYZ5", "<A1>5", "<>5",
        /* rules: a field missing or not a number, text after them */
        "EST5EDT,M3.2", "EST5EDT,M3x2.0,M11.1.0", "EST5EDT,Mx.2.0,M11.1.0",
        "EST5EDT,M3.x.0,M11.1.0", "EST5EDT,M3.2.0/x,M11.1.0",
        "EST5EDT,M3.2.0,M11.1.0x", "EST5EDT,M3.2.0;M11.1.0", "EST5EDT,x,y",
        "EST5EDT,M3.2.0", "EST5EDT,Jx,J300",
    };
    char err[256], want[256];
    hg_tz_t *tz;
    size_t i;
    int64_t t;

    HG_UNUSED(state);
    for (i = 0; i < HG_NELEMS(bad); i++) {
        err[0] = '\0';
        tz = hg_tz_from_posix(bad[i], err, sizeof(err));
        if (tz != NULL) {
            fail_msg("\"%s\" parsed", bad[i]);
        }
        snprintf(want, sizeof(want), "\"%s\" is not a POSIX TZ string",
                 bad[i]);
        if (strcmp(err, want) != 0) {
            fail_msg("\"%s\": got \"%s\", want \"%s\"", bad[i], err, want);
        }
    }

    /* an explicit "+" is west of Greenwich, as no sign; a quoted
     * abbreviation may hold digits and signs; an explicit DST offset */
    tz = hg_tz_from_posix("EST+5", err, sizeof(err));
    assert_non_null(tz);
    assert_int_equal(hg_tz_offset(tz, 0), -5 * 3600);
    hg_tz_free(tz);
    tz = hg_tz_from_posix("<-03>3", err, sizeof(err));
    assert_non_null(tz);
    assert_int_equal(hg_tz_offset(tz, 0), -3 * 3600);
    hg_tz_free(tz);
    tz = hg_tz_from_posix("AAA3BBB1:30,M3.2.0,M11.1.0", err, sizeof(err));
    assert_non_null(tz);
    assert_int_equal(hg_tz_offset(tz, test_utc("2030-07-01T00:00:00Z")),
                     -90 * 60);
    assert_int_equal(hg_tz_offset(tz, test_utc("2030-12-01T00:00:00Z")),
                     -3 * 3600);
    hg_tz_free(tz);

    /* no rule: the US one, as glibc */
    tz = hg_tz_from_posix("EST5EDT", err, sizeof(err));
    assert_non_null(tz);
    assert_int_equal(hg_tz_offset(tz, test_utc("2030-07-01T00:00:00Z")), -14400);
    assert_int_equal(hg_tz_offset(tz, test_utc("2030-12-01T00:00:00Z")), -18000);
    hg_tz_free(tz);

    /* DST all year, RFC 8536 style */
    tz = hg_tz_from_posix("EST5EDT,0/0,J365/25", err, sizeof(err));
    assert_non_null(tz);
    for (t = test_utc("2030-01-01T00:00:00Z");
         t < test_utc("2032-01-01T00:00:00Z"); t += 3600)
    {
        assert_int_equal(hg_tz_offset(tz, t), -14400);
    }
    hg_tz_free(tz);

    /* Jn skips February 29, n counts it; negative and v3 times */
    tz = hg_tz_from_posix("XXX0YYY,J60/-1,300/30", err, sizeof(err));
    assert_non_null(tz);
    /* J60 is March 1 even in a leap year; DST from Feb 29 23:00 */
    assert_int_equal(hg_tz_offset(tz, test_utc("2028-02-29T22:59:59Z")), 0);
    assert_int_equal(hg_tz_offset(tz, test_utc("2028-02-29T23:00:00Z")), 3600);
    /* day 300 of 2028 (0-based) is Oct 27; 30:00 DST is Oct 28 05:00 UTC */
    assert_int_equal(hg_tz_offset(tz, test_utc("2028-10-28T04:59:59Z")), 3600);
    assert_int_equal(hg_tz_offset(tz, test_utc("2028-10-28T05:00:00Z")), 0);
    hg_tz_free(tz);
}

static void
test_from_local(void **state)
{
    const hg_tz_t *berlin = test_zone("Europe/Berlin");
    const hg_tz_t *lhi = test_zone("Australia/Lord_Howe");
    const hg_tz_t *ny = test_zone("America/New_York");
    int64_t out[2];

    HG_UNUSED(state);
    /* spring forward: 02:00-03:00 does not exist */
    assert_int_equal(hg_tz_from_local(berlin, 2026, 3, 29, 2, 30, 0, out), 0);
    assert_int_equal(hg_tz_from_local(berlin, 2026, 3, 29, 1, 59, 59, out), 1);
    assert_int_equal(out[0], test_utc("2026-03-29T00:59:59Z"));
    assert_int_equal(hg_tz_from_local(berlin, 2026, 3, 29, 3, 0, 0, out), 1);
    assert_int_equal(out[0], test_utc("2026-03-29T01:00:00Z"));
    /* fall back: 02:00-03:00 twice, earliest first */
    assert_int_equal(hg_tz_from_local(berlin, 2026, 10, 25, 2, 30, 0, out), 2);
    assert_int_equal(out[0], test_utc("2026-10-25T00:30:00Z"));
    assert_int_equal(out[1], test_utc("2026-10-25T01:30:00Z"));
    assert_int_equal(hg_tz_from_local(berlin, 2026, 7, 1, 12, 0, 0, out), 1);
    assert_int_equal(out[0], test_utc("2026-07-01T10:00:00Z"));
    /* Lord Howe: 30-minute changes */
    assert_int_equal(hg_tz_from_local(lhi, 2026, 10, 4, 2, 15, 0, out), 0);
    assert_int_equal(hg_tz_from_local(lhi, 2026, 10, 4, 2, 30, 0, out), 1);
    assert_int_equal(hg_tz_from_local(lhi, 2026, 4, 5, 1, 45, 0, out), 2);
    assert_int_equal(out[1] - out[0], 1800);
    assert_int_equal(hg_tz_from_local(lhi, 2026, 4, 5, 2, 0, 0, out), 1);
    /* normalised like timegm: Feb 30 2026 is Mar 2 */
    assert_int_equal(hg_tz_from_local(ny, 2026, 2, 30, 0, 0, 0, out), 1);
    assert_int_equal(out[0], test_utc("2026-03-02T05:00:00Z"));
    assert_int_equal(hg_tz_from_local(ny, 2026, 13, 1, 0, 0, 0, out), 1);
    assert_int_equal(out[0], test_utc("2027-01-01T05:00:00Z"));

    /* the fixed-time rule */
    assert_int_equal(hg_tz_resolve_wall(berlin, hg_days_from_civil(2026, 3, 29)
                                        * 86400 + 2 * 3600 + 1800),
                     test_utc("2026-03-29T01:00:00Z"));
    assert_int_equal(hg_tz_resolve_wall(berlin, hg_days_from_civil(2026, 10, 25)
                                        * 86400 + 2 * 3600 + 1800),
                     test_utc("2026-10-25T00:30:00Z"));
}

static void
test_spans(void **state)
{
    const hg_tz_t *berlin = test_zone("Europe/Berlin");
    hg_tz_span_t sp;

    HG_UNUSED(state);
    hg_tz_span(berlin, test_utc("2026-06-01T00:00:00Z"), &sp);
    assert_int_equal(sp.start, test_utc("2026-03-29T01:00:00Z"));
    assert_int_equal(sp.end, test_utc("2026-10-25T01:00:00Z"));
    assert_int_equal(sp.offset, 7200);
    assert_int_equal(sp.prev_offset, 3600);
    /* from the footer rule */
    hg_tz_span(berlin, test_utc("2400-06-01T00:00:00Z"), &sp);
    assert_int_equal(sp.start, test_utc("2400-03-26T01:00:00Z"));
    assert_int_equal(sp.end, test_utc("2400-10-29T01:00:00Z"));
    hg_tz_span(berlin, test_utc("2400-12-01T00:00:00Z"), &sp);
    assert_int_equal(sp.start, test_utc("2400-10-29T01:00:00Z"));
    assert_int_equal(sp.end, test_utc("2401-03-25T01:00:00Z"));
    assert_int_equal(sp.offset, 3600);
    assert_int_equal(sp.prev_offset, 7200);
    hg_tz_span(hg_tz_utc(), 0, &sp);
    assert_true(sp.start == INT64_MIN && sp.end == INT64_MAX);
}

static bool
same_span(const hg_tz_span_t *a, const hg_tz_span_t *b)
{
    return a->start == b->start && a->end == b->end
           && a->offset == b->offset && a->prev_offset == b->prev_offset
           && a->isdst == b->isdst && strcmp(a->abbr, b->abbr) == 0;
}

/* The span a thread keeps from its last lookup answers exactly as a fresh
 * lookup does: instants in and out of it, in order and at random, in the
 * table and past it (the footer rule); and a zone freed and another made
 * (perhaps at its address) is never answered from the first one's span. */
static void
test_span_cache(void **state)
{
    const hg_tz_t *berlin = test_zone("Europe/Berlin");
    hg_tz_span_t cached, fresh;
    hg_tz_t *a, *b;
    uint64_t x = 88172645463325252ULL;
    int64_t t = 0, from = test_utc("2020-01-01T00:00:00Z");
    int64_t span = test_utc("2060-01-01T00:00:00Z") - from;
    char err[128];
    int i;

    HG_UNUSED(state);
    for (i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        /* half the time the next instant is near the last one */
        t = i % 2 ? t + (int64_t) (x % 86400) - 43200
                  : from + (int64_t) (x % (uint64_t) span);
        hg_tz_span(berlin, t, &cached);
        hg_tz_span(hg_tz_utc(), t, &fresh);     /* forget Berlin's span */
        hg_tz_span(berlin, t, &fresh);
        assert_true(same_span(&cached, &fresh));
        assert_true(cached.start <= t && t < cached.end);
    }
    a = hg_tz_from_posix("AAA-1BBB,M3.5.0,M10.5.0/3", err, sizeof(err));
    assert_non_null(a);
    t = test_utc("2026-06-01T00:00:00Z");
    hg_tz_span(a, t, &cached);
    assert_int_equal(cached.offset, 7200);
    hg_tz_free(a);
    b = hg_tz_from_posix("CCC5DDD,M3.2.0,M11.1.0", err, sizeof(err));
    assert_non_null(b);
    hg_tz_span(b, t, &cached);
    assert_int_equal(cached.offset, -4 * 3600);
    assert_string_equal(cached.abbr, "DDD");
    hg_tz_free(b);
}

static void
test_format(void **state)
{
    static const struct {
        const char *zone;
        const char *at;
        const char *text;
    } cases[] = {
        { "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-29T03:00:00+02:00" },
        { "America/New_York", "2026-11-01T06:30:00Z",
          "2026-11-01T01:30:00-05:00" },
        { "Asia/Kathmandu", "2026-01-01T00:00:00Z", "2026-01-01T05:45:00+05:45" },
        { "America/St_Johns", "2026-01-01T00:00:00Z",
          "2025-12-31T20:30:00-03:30" },
        { "UTC", "1970-01-01T00:00:00Z", "1970-01-01T00:00:00+00:00" },
        { "UTC", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+00:00" },
        { "UTC", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59+00:00" },
        { "Europe/Berlin", "1890-01-01T00:00:00Z", "1890-01-01T00:53:28+00:53:28" },
    };
    char buf[64];
    size_t i;

    HG_UNUSED(state);
    for (i = 0; i < HG_NELEMS(cases); i++) {
        assert_int_equal(hg_tz_format_rfc3339(test_zone(cases[i].zone),
                                              test_utc(cases[i].at), buf,
                                              sizeof(buf)), HG_OK);
        assert_string_equal(buf, cases[i].text);
    }
    assert_int_equal(hg_tz_format_rfc3339(hg_tz_utc(), 0, buf, 25), HG_ERROR);
    assert_int_equal(hg_tz_format_rfc3339(hg_tz_utc(), 0, buf, 26), HG_OK);
    assert_int_equal(hg_tz_format_rfc3339(hg_tz_utc(), HG_TZ_MAX_TIME + 1, buf,
                                          sizeof(buf)), HG_ERROR);
}

static void
test_parse_time(void **state)
{
    static const struct {
        const char *text;
        const char *want;       /* in Berlin */
    } ok[] = {
        { "2026-12-01T09:00:00+01:00", "2026-12-01T09:00:00+01:00" },
        { "2026-12-01T08:00:00Z", "2026-12-01T09:00:00+01:00" },
        { "2026-12-01t08:00:00z", "2026-12-01T09:00:00+01:00" },
        { "2026-12-01T03:00:00-05:00", "2026-12-01T09:00:00+01:00" },
        { "2026-12-01T09:00:00+0100", "2026-12-01T09:00:00+01:00" },
        { "2026-12-01T09:00:00.999+01:00", "2026-12-01T09:00:00+01:00" },
        { "2026-12-01T09:00", "2026-12-01T09:00:00+01:00" },
        { "2026-12-01 09:00:00", "2026-12-01T09:00:00+01:00" },
        { "2026-12-01", "2026-12-01T00:00:00+01:00" },
        { "@1796112000", "2026-12-01T09:00:00+01:00" },
        /* local, in the gap: the first instant after it */
        { "2026-03-29T02:30:00", "2026-03-29T03:00:00+02:00" },
        /* local, repeated: the first occurrence */
        { "2026-10-25T02:30:00", "2026-10-25T02:30:00+02:00" },
        { "2026-06-30T23:59:60Z", "2026-07-01T02:00:00+02:00" },
    };
    static const struct {
        const char *text;
        const char *message;
    } bad[] = {
        { "yesterday", "\"yesterday\" is not a time (expected e.g. "
                       "2026-12-01T09:00:00+01:00)" },
        { "2026-13-01T00:00:00Z", "\"2026-13-01T00:00:00Z\" is not a time: "
                                  "month 13 is out of range 1-12" },
        { "2026-02-29T00:00:00Z", "\"2026-02-29T00:00:00Z\" is not a time: "
                                  "day 29 is out of range 1-28" },
        { "2026-01-01T24:00:00Z", "\"2026-01-01T24:00:00Z\" is not a time: "
                                  "hour, minute, second or offset out of "
                                  "range" },
        { "2026-01-01T00:00:00+01:00x", "\"2026-01-01T00:00:00+01:00x\" is "
                                        "not a time (expected e.g. "
                                        "2026-12-01T09:00:00+01:00)" },
        { "2026-1-1", "\"2026-1-1\" is not a time (expected e.g. "
                      "2026-12-01T09:00:00+01:00)" },
        { "0000-01-01T00:00:00Z", "\"0000-01-01T00:00:00Z\" is not a time: "
                                  "year 0 is out of range 1-9999" },
        { "@x", "\"@x\" is not a time: @ needs seconds since the epoch "
                "within years 1-9999" },
        { "", "\"\" is not a time (expected e.g. 2026-12-01T09:00:00+01:00)" },
        { "2026-12-01T9:00", "\"2026-12-01T9:00\" is not a time (expected "
                             "e.g. 2026-12-01T09:00:00+01:00)" },
        { "2026-12-01T09:00:0", "\"2026-12-01T09:00:0\" is not a time "
                                "(expected e.g. 2026-12-01T09:00:00+01:00)" },
        { "2026-12-01T09:00:00.Z", "\"2026-12-01T09:00:00.Z\" is not a time "
                                   "(expected e.g. "
                                   "2026-12-01T09:00:00+01:00)" },
        { "2026-12-01T09:00:00+1", "\"2026-12-01T09:00:00+1\" is not a time "
                                   "(expected e.g. "
                                   "2026-12-01T09:00:00+01:00)" },
        { "2026-12-01T09:00:00+01:5", "\"2026-12-01T09:00:00+01:5\" is not a "
                                      "time (expected e.g. "
                                      "2026-12-01T09:00:00+01:00)" },
        { "9999-12-31T23:00:00-05:00", "\"9999-12-31T23:00:00-05:00\" is not "
                                       "a time: outside years 1-9999" },
        { "@99999999999999", "\"@99999999999999\" is not a time: @ needs "
                             "seconds since the epoch within years 1-9999" },
        { "@12x", "\"@12x\" is not a time: @ needs seconds since the epoch "
                  "within years 1-9999" },
        { "2026-12-01T09:60:00Z", "\"2026-12-01T09:60:00Z\" is not a time: "
                                  "hour, minute, second or offset out of "
                                  "range" },
        { "2026-12-01T09:00:61Z", "\"2026-12-01T09:00:61Z\" is not a time: "
                                  "hour, minute, second or offset out of "
                                  "range" },
        { "2026-12-01T09:00:00+24:00", "\"2026-12-01T09:00:00+24:00\" is not "
                                       "a time: hour, minute, second or "
                                       "offset out of range" },
        { "2026-12-01T09:00:00-01:60", "\"2026-12-01T09:00:00-01:60\" is not "
                                       "a time: hour, minute, second or "
                                       "offset out of range" },
        { "2026-12-01 ", "\"2026-12-01 \" is not a time (expected e.g. "
                         "2026-12-01T09:00:00+01:00)" },
        { "2026-12-01T", "\"2026-12-01T\" is not a time (expected e.g. "
                         "2026-12-01T09:00:00+01:00)" },
        { "2026-12-01T09-00", "\"2026-12-01T09-00\" is not a time (expected "
                              "e.g. 2026-12-01T09:00:00+01:00)" },
        { "2026/12/01", "\"2026/12/01\" is not a time (expected e.g. "
                        "2026-12-01T09:00:00+01:00)" },
        { "2026-12/01", "\"2026-12/01\" is not a time (expected e.g. "
                        "2026-12-01T09:00:00+01:00)" },
    };
    const hg_tz_t *berlin = test_zone("Europe/Berlin");
    char err[256], buf[64];
    int64_t t;
    size_t i;

    HG_UNUSED(state);
    for (i = 0; i < HG_NELEMS(ok); i++) {
        if (hg_tz_parse_time(berlin, ok[i].text, &t, err, sizeof(err))
            != HG_OK)
        {
            fail_msg("\"%s\": %s", ok[i].text, err);
        }
        hg_tz_format_rfc3339(berlin, t, buf, sizeof(buf));
        if (strcmp(buf, ok[i].want) != 0) {
            fail_msg("\"%s\": got %s, want %s", ok[i].text, buf, ok[i].want);
        }
    }
    for (i = 0; i < HG_NELEMS(bad); i++) {
        err[0] = '\0';
        if (hg_tz_parse_time(berlin, bad[i].text, &t, err, sizeof(err))
            != HG_ERROR || strcmp(err, bad[i].message) != 0)
        {
            fail_msg("\"%s\": got \"%s\", want \"%s\"", bad[i].text, err,
                     bad[i].message);
        }
    }
}

static void
test_get(void **state)
{
    static const char *const unknown[] = {
        "Foo/Bar", "../../etc/passwd", "/etc/localtime", "Europe//Berlin",
        "Europe/./Berlin", "Europe/Berlin/", "Europe/Berlin\n", ".",
    };
    char err[256], name[400];
    const hg_tz_t *a, *b;
    size_t i;

    HG_UNUSED(state);
    a = test_zone("Europe/Berlin");
    b = test_zone("Europe/Berlin");
    assert_ptr_equal(a, b);                 /* cached */
    assert_string_equal(hg_tz_name(a), "Europe/Berlin");

    assert_null(hg_tz_get("Foo/Bar", err, sizeof(err)));
    assert_string_equal(err, "unknown time zone \"Foo/Bar\"");
    for (i = 0; i < HG_NELEMS(unknown); i++) {
        if (hg_tz_get(unknown[i], err, sizeof(err)) != NULL) {
            fail_msg("\"%s\" loaded", unknown[i]);
        }
    }
    memset(name, 'A', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    assert_null(hg_tz_get(name, err, sizeof(err)));

    /* a directory of zones is no zone */
    assert_null(hg_tz_get("Europe", err, sizeof(err)));
    assert_string_equal(err, "unknown time zone \"Europe\"");

    /* a file that is not a zone */
    assert_null(hg_tz_get("zone.tab", err, sizeof(err)));
    assert_string_equal(err, "time zone \"zone.tab\": not a TZif file");

    /* UTC works without tzdata */
    setenv("TZDIR", "/nonexistent", 1);
    a = test_zone("Etc/Zulu");
    assert_int_equal(hg_tz_offset(a, 0), 0);
    assert_string_equal(hg_tz_name(a), "Etc/Zulu");
    assert_null(hg_tz_get("Asia/Tokyo", err, sizeof(err)));
    unsetenv("TZDIR");
    assert_non_null(test_zone("Asia/Tokyo"));
}

static void
test_local_zone(void **state)
{
    const hg_tz_t *tz;
    char err[256];

    HG_UNUSED(state);
    setenv("TZ", ":Asia/Kolkata", 1);
    tz = test_zone(NULL);
    assert_string_equal(hg_tz_name(tz), "Asia/Kolkata");
    assert_int_equal(hg_tz_offset(tz, 0), 19800);

    setenv("TZ", "Asia/Kathmandu", 1);
    tz = test_zone("");
    assert_int_equal(hg_tz_offset(tz, test_utc("2026-01-01T00:00:00Z")), 20700);

    setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
    tz = test_zone(NULL);
    assert_int_equal(hg_tz_offset(tz, test_utc("2026-07-01T00:00:00Z")), 7200);

    setenv("TZ", "/usr/share/zoneinfo/America/New_York", 1);
    tz = test_zone(NULL);
    assert_int_equal(hg_tz_offset(tz, test_utc("2026-07-01T00:00:00Z")), -14400);

    setenv("TZ", "", 1);
    tz = test_zone(NULL);
    assert_int_equal(hg_tz_offset(tz, test_utc("2026-07-01T00:00:00Z")), 0);

    setenv("TZ", "Foo/Bar", 1);
    assert_null(hg_tz_get(NULL, err, sizeof(err)));
    assert_string_equal(err, "unknown time zone \"Foo/Bar\" (from TZ)");

    unsetenv("TZ");
    assert_non_null(test_zone(NULL));       /* /etc/localtime, or UTC */
}

/* ---- TZif files made here, for the paths tzdata does not take ---------- */

typedef struct {
    unsigned char data[1024];
    size_t len;
} test_buf_t;

static void
put(test_buf_t *b, const void *p, size_t n)
{
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void
put32(test_buf_t *b, uint32_t v)
{
    unsigned char x[4] = { (unsigned char) (v >> 24), (unsigned char) (v >> 16),
                           (unsigned char) (v >> 8), (unsigned char) v };

    put(b, x, 4);
}

static void
put64(test_buf_t *b, int64_t v)
{
    put32(b, (uint32_t) ((uint64_t) v >> 32));
    put32(b, (uint32_t) v);
}

static void
put_header(test_buf_t *b, char version, uint32_t timecnt, uint32_t typecnt,
           uint32_t charcnt, uint32_t leapcnt)
{
    unsigned char zero[15] = { 0 };

    put(b, "TZif", 4);
    put(b, &version, 1);
    put(b, zero, 15);
    put32(b, 0);
    put32(b, 0);
    put32(b, leapcnt);
    put32(b, timecnt);
    put32(b, typecnt);
    put32(b, charcnt);
}

static void
put_type(test_buf_t *b, int32_t off, unsigned char isdst, unsigned char abbr)
{
    put32(b, (uint32_t) off);
    put(b, &isdst, 1);
    put(b, &abbr, 1);
}

static void
test_tzif_files(void **state)
{
    test_buf_t b;
    char err[256];
    hg_tz_t *tz;
    struct tm tm;

    HG_UNUSED(state);

    /* v1: 32-bit data, no footer; +01 "AAA" until 2000, then +02 "BBB" */
    memset(&b, 0, sizeof(b));
    put_header(&b, 0, 1, 2, 8, 0);
    put32(&b, 946684800);
    put(&b, "\001", 1);
    put_type(&b, 3600, 0, 0);
    put_type(&b, 7200, 1, 4);
    put(&b, "AAA\0BBB\0", 8);
    tz = hg_tz_from_tzif("v1", b.data, b.len, err, sizeof(err));
    assert_non_null(tz);
    hg_tz_localtime(tz, 946684799, &tm);
    assert_int_equal(tm.tm_gmtoff, 3600);
    assert_string_equal(tm.tm_zone, "AAA");
    hg_tz_localtime(tz, 946684800, &tm);
    assert_int_equal(tm.tm_gmtoff, 7200);
    assert_string_equal(tm.tm_zone, "BBB");
    assert_int_equal(tm.tm_isdst, 1);
    hg_tz_free(tz);

    /* truncated */
    tz = hg_tz_from_tzif("cut", b.data, b.len - 1, err, sizeof(err));
    assert_null(tz);
    assert_string_equal(err, "time zone \"cut\": truncated");

    /* v3 with no transitions: the footer alone, with a v3 time (25:00) */
    memset(&b, 0, sizeof(b));
    put_header(&b, '3', 0, 1, 4, 0);
    put_type(&b, 0, 0, 0);
    put(&b, "XXX\0", 4);
    put_header(&b, '3', 0, 1, 4, 0);
    put_type(&b, -3600, 0, 0);
    put(&b, "AAA\0", 4);
    put(&b, "\n<-01>1<+00>0,M3.5.0/-1,M10.5.0/25\n", 35);
    tz = hg_tz_from_tzif("v3", b.data, b.len, err, sizeof(err));
    assert_non_null(tz);
    /* into DST on Saturday 2026-03-28 at 23:00 local -01 */
    assert_int_equal(hg_tz_offset(tz, test_utc("2026-03-28T23:59:59Z")), -3600);
    assert_int_equal(hg_tz_offset(tz, test_utc("2026-03-29T00:00:00Z")), 0);
    /* out of DST on Monday 2026-10-26 at 01:00 local +00 */
    assert_int_equal(hg_tz_offset(tz, test_utc("2026-10-26T00:59:59Z")), 0);
    assert_int_equal(hg_tz_offset(tz, test_utc("2026-10-26T01:00:00Z")), -3600);
    hg_tz_free(tz);

    /* v2 with 64-bit transitions after the footer's reach is tested */
    memset(&b, 0, sizeof(b));
    put_header(&b, '2', 0, 1, 4, 0);
    put_type(&b, 0, 0, 0);
    put(&b, "XXX\0", 4);
    put_header(&b, '2', 2, 2, 8, 0);
    put64(&b, -(1LL << 40));
    put64(&b, 4102444800LL);                /* 2100-01-01 */
    put(&b, "\001\000", 2);
    put_type(&b, 0, 0, 0);
    put_type(&b, 3600, 0, 4);
    put(&b, "AAA\0BBB\0", 8);
    put(&b, "\nAAA0\n", 6);
    tz = hg_tz_from_tzif("v2", b.data, b.len, err, sizeof(err));
    assert_non_null(tz);
    assert_int_equal(hg_tz_offset(tz, -(1LL << 41)), 0);
    assert_int_equal(hg_tz_offset(tz, 0), 3600);
    assert_int_equal(hg_tz_offset(tz, 4102444800LL), 0);
    hg_tz_free(tz);

    /* leap seconds: refused */
    memset(&b, 0, sizeof(b));
    put_header(&b, 0, 0, 1, 4, 1);
    put_type(&b, 0, 0, 0);
    put(&b, "UTC\0", 4);
    put32(&b, 78796800);
    put32(&b, 1);
    tz = hg_tz_from_tzif("right/UTC", b.data, b.len, err, sizeof(err));
    assert_null(tz);
    assert_string_equal(err, "time zone \"right/UTC\": the file counts leap "
                        "seconds (a right/ zone), which hourglass does not "
                        "support");

    tz = hg_tz_from_tzif("junk", (const unsigned char *) "TZxf", 4, err,
                         sizeof(err));
    assert_null(tz);
    assert_string_equal(err, "time zone \"junk\": not a TZif file");
}

/* Each way a TZif file can be wrong is refused with what is wrong: a
 * valid v2 file (a transition to +01 at 0 after +00), then one field
 * broken at a time. */
static void
tzif_v2(test_buf_t *b, char version, uint32_t typecnt, int64_t t2,
        unsigned char type2, int32_t off2, unsigned char isdst2,
        const char *footer)
{
    memset(b, 0, sizeof(*b));
    put_header(b, '2', 0, 1, 4, 0);
    put_type(b, 0, 0, 0);
    put(b, "XXX\0", 4);
    put_header(b, version, 2, typecnt, 8, 0);
    put64(b, -86400);
    put64(b, t2);
    put(b, "\000", 1);
    put(b, &type2, 1);
    put_type(b, 0, 0, 0);
    if (typecnt > 1) {
        put_type(b, off2, isdst2, 4);
    }
    put(b, "AAA\0BBB\0", 8);
    put(b, footer, strlen(footer));
}

static void
test_tzif_bad(void **state)
{
    static const struct {
        const char *what;
        char version;
        uint32_t typecnt;
        int64_t t2;
        unsigned char type2;
        int32_t off2;
        unsigned char isdst2;
        const char *footer;
        size_t cut;                 /* bytes taken off the end */
        const char *err;            /* NULL: loads */
    } cases[] = {
        { "valid", '2', 2, 0, 1, 3600, 0, "\nBBB-1\n", 0, NULL },
        { "version", 'x', 2, 0, 1, 3600, 0, "\nBBB-1\n", 0,
          "unknown TZif version" },
        { "no types", '2', 0, 0, 1, 3600, 0, "\nBBB-1\n", 0,
          "bad counts in TZif header" },
        { "second block cut", '2', 2, 0, 1, 3600, 0, "", 3, "truncated" },
        { "times not ascending", '2', 2, -86400, 1, 3600, 0, "\nBBB-1\n", 0,
          "transition times are not ascending" },
        { "type index", '2', 2, 0, 2, 3600, 0, "\nBBB-1\n", 0,
          "transition type out of range" },
        { "offset", '2', 2, 0, 1, 200000, 0, "\nBBB-1\n", 0,
          "UTC offset out of range" },
        { "isdst", '2', 2, 0, 1, 3600, 2, "\nBBB-1\n", 0,
          "bad local time type" },
        { "no footer", '2', 2, 0, 1, 3600, 0, "", 0, "missing footer" },
        { "footer unterminated", '2', 2, 0, 1, 3600, 0, "\nBBB-1", 0,
          "bad footer" },
        { "footer not a rule", '2', 2, 0, 1, 3600, 0, "\nB-1\n", 0,
          "bad TZ string in footer" },
    };
    static const struct {
        const char *what;
        size_t offset;              /* of the count in the first header */
        uint32_t value;
    } counts[] = {
        { "isutcnt not one per type", 20, 2 },
        { "isstdcnt not one per type", 24, 2 },
        { "leapcnt", 28, 100001 },
        { "timecnt", 32, 100001 },
        { "typecnt", 36, 257 },
        { "no abbreviation bytes", 40, 0 },
        { "charcnt", 40, 65536 },
    };
    test_buf_t b;
    char err[256], want[256];
    hg_tz_t *tz;
    size_t i;

    HG_UNUSED(state);
    for (i = 0; i < HG_NELEMS(cases); i++) {
        tzif_v2(&b, cases[i].version, cases[i].typecnt, cases[i].t2,
                cases[i].type2, cases[i].off2, cases[i].isdst2,
                cases[i].footer);
        err[0] = '\0';
        tz = hg_tz_from_tzif("T/Z", b.data, b.len - cases[i].cut, err,
                             sizeof(err));
        if (cases[i].err == NULL) {
            if (tz == NULL) {
                fail_msg("%s: %s", cases[i].what, err);
            }
            assert_int_equal(hg_tz_offset(tz, -1), 0);
            assert_int_equal(hg_tz_offset(tz, 0), 3600);
            hg_tz_free(tz);
            continue;
        }
        snprintf(want, sizeof(want), "time zone \"T/Z\": %s", cases[i].err);
        if (tz != NULL || strcmp(err, want) != 0) {
            fail_msg("%s: got \"%s\", want \"%s\"", cases[i].what, err, want);
        }
    }
    /* each count of the header out of bounds, or the per-type flags not
     * one per type: refused before anything is read past the header */
    for (i = 0; i < HG_NELEMS(counts); i++) {
        tzif_v2(&b, '2', 2, 0, 1, 3600, 0, "\nBBB-1\n");
        b.data[counts[i].offset] = (unsigned char) (counts[i].value >> 24);
        b.data[counts[i].offset + 1] = (unsigned char) (counts[i].value >> 16);
        b.data[counts[i].offset + 2] = (unsigned char) (counts[i].value >> 8);
        b.data[counts[i].offset + 3] = (unsigned char) counts[i].value;
        err[0] = '\0';
        tz = hg_tz_from_tzif("T/Z", b.data, b.len, err, sizeof(err));
        if (tz != NULL || strcmp(err, "time zone \"T/Z\": bad counts in "
                                      "TZif header") != 0)
        {
            fail_msg("%s: got \"%s\"", counts[i].what, err);
        }
    }
}

static void
test_civil(void **state)
{
    int64_t days, y;
    int m, d;
    struct tm tm;

    HG_UNUSED(state);
    for (days = -800000; days <= 3000000; days += 13) {
        hg_civil_from_days(days, &y, &m, &d);
        assert_int_equal(hg_days_from_civil(y, m, d), days);
    }
    assert_int_equal(hg_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(hg_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(hg_weekday(0), 4);                 /* Thursday */
    assert_int_equal(hg_weekday(hg_days_from_civil(2026, 3, 29)), 0);
    assert_int_equal(hg_weekday(-1), 3);
    assert_int_equal(hg_days_in_month(2028, 2), 29);
    assert_int_equal(hg_days_in_month(2100, 2), 28);
    assert_int_equal(hg_days_in_month(2400, 2), 29);
    assert_int_equal(hg_days_in_month(2026, 4), 30);

    hg_tz_localtime(test_zone("Asia/Tokyo"), test_utc("2028-12-31T15:00:00Z"),
                    &tm);
    assert_int_equal(tm.tm_year, 129);
    assert_int_equal(tm.tm_mon, 0);
    assert_int_equal(tm.tm_mday, 1);
    assert_int_equal(tm.tm_yday, 0);
    assert_int_equal(tm.tm_wday, 1);
    hg_tz_localtime(hg_tz_utc(), test_utc("2028-12-31T12:00:00Z"), &tm);
    assert_int_equal(tm.tm_yday, 365);
    hg_tz_localtime(hg_tz_utc(), -1, &tm);
    assert_int_equal(tm.tm_year, 69);
    assert_int_equal(tm.tm_hour, 23);
    assert_int_equal(tm.tm_sec, 59);
}

/* TZ's offsets from 2000 to 2040, every 9 days and 7 hours, are REF's. */
static void
assert_same_zone(const hg_tz_t *tz, const hg_tz_t *ref)
{
    int64_t t;

    for (t = 946684800; t < 2208988800; t += 9 * 86400 + 7 * 3600) {
        if (hg_tz_offset(tz, t) != hg_tz_offset(ref, t)) {
            fail_msg("%s at %" PRId64 ": offset %d, want %d",
                     hg_tz_name(tz), t, hg_tz_offset(tz, t),
                     hg_tz_offset(ref, t));
        }
    }
}

/* A zone read (from its TZif file, through the cache, or from a POSIX
 * string) with each allocation refused in turn: NULL and "out of memory",
 * or the very zone read without faults; a refusal leaves nothing in the
 * cache that a later read would take (the zone read at last is whole). */
static void
test_out_of_memory(void **state)
{
    static const char name[] = "America/Havana";
    static const char posix[] = "CST5CDT,M3.2.0/0,M11.1.0/1";
    unsigned long failures[3] = { 0, 0, 0 };
    const hg_tz_t *cached = NULL;
    hg_tz_t *ref, *rule, *tz;
    unsigned char *data;
    char err[256], path[64];
    size_t len;
    FILE *fp;
    int way;

    HG_UNUSED(state);
    snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", name);
    fp = fopen(path, "rb");
    if (fp == NULL) {
        skip();
    }
    data = malloc(1 << 16);
    assert_non_null(data);
    len = fread(data, 1, 1 << 16, fp);
    fclose(fp);
    ref = hg_tz_from_tzif(name, data, len, err, sizeof(err));
    assert_non_null(ref);
    rule = hg_tz_from_posix(posix, err, sizeof(err));
    assert_non_null(rule);

    for (way = 0; way < 3; way++) {
        for (FAULT_ALLOC_LOOP(n)) {
            bool fired;

            err[0] = '\0';
            tz = NULL;
            fault_alloc_arm(n);
            switch (way) {
            case 0:
                tz = hg_tz_from_tzif(name, data, len, err, sizeof(err));
                break;
            case 1:
                cached = hg_tz_get(name, err, sizeof(err));
                break;
            case 2:
                tz = hg_tz_from_posix(posix, err, sizeof(err));
                break;
            }
            fired = fault_alloc_disarm();
            if ((way == 1 ? (const hg_tz_t *) cached : tz) == NULL) {
                assert_true(fired);
                if (strstr(err, "out of memory") == NULL) {
                    fail_msg("way %d, allocation %lu refused: \"%s\"", way,
                             n, err);
                }
                failures[way]++;
                continue;
            }
            if (way == 1) {
                assert_same_zone(cached, ref);
            } else {
                assert_same_zone(tz, way == 0 ? ref : rule);
                hg_tz_free(tz);
            }
            if (!fired) {
                break;
            }
        }
    }
    print_message("refusals that failed it: TZif %lu, cache %lu, POSIX "
                  "%lu\n", failures[0], failures[1], failures[2]);
    assert_true(failures[0] > 0 && failures[1] > 0 && failures[2] > 0);
    assert_ptr_equal(hg_tz_get(name, err, sizeof(err)), cached);
    hg_tz_free(ref);
    hg_tz_free(rule);
    free(data);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offset_table),
        cmocka_unit_test(test_posix_rules),
        cmocka_unit_test(test_posix_strings),
        cmocka_unit_test(test_from_local),
        cmocka_unit_test(test_spans),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_local_zone),
        cmocka_unit_test(test_tzif_files),
        cmocka_unit_test(test_tzif_bad),
        cmocka_unit_test(test_civil),
        cmocka_unit_test(test_span_cache),
        cmocka_unit_test(test_out_of_memory),
    };

    fault_alloc_setup();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
