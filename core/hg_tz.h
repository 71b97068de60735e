/*
 * Time zones and civil-date arithmetic, without the C library's time zone
 * state: a TZif reader (system tzdata, v1/v2/v3/v4 files, 64-bit data and
 * the POSIX TZ footer for instants past the last transition) and a POSIX TZ
 * string parser. Zones are loaded once, cached by name, immutable and never
 * freed, so any thread may use a zone it got. This file never calls
 * setenv("TZ"), tzset(), localtime_r() or mktime(): a job's zone must not
 * depend on the process's.
 *
 * Times are int64 seconds since the Unix epoch (UTC), ignoring leap seconds
 * as POSIX does, within HG_TZ_MIN_TIME..HG_TZ_MAX_TIME (years 1 to 9999).
 */

#ifndef HG_TZ_H
#define HG_TZ_H

#include "hg_core.h"

#define HG_TZ_MIN_TIME  (-62135596800LL)   /* 0001-01-01T00:00:00Z */
#define HG_TZ_MAX_TIME  (253402300799LL)   /* 9999-12-31T23:59:59Z */

/* No UTC offset in tzdata reaches 26 hours either way (LMT of the
 * Philippines, -15:56, is the widest); broken-down searches use this bound. */
#define HG_TZ_MAX_OFFSET  (26 * 3600)

typedef struct hg_tz_s hg_tz_t;

/*
 * The span of instants [start, end) over which a zone's UTC offset is
 * constant, with the offsets on either side: a spring-forward transition at
 * start has prev_offset < offset (the wall times in between never occur), a
 * fall-back one prev_offset > offset (they occur twice). start is INT64_MIN
 * and end INT64_MAX where the zone has no transition.
 */
typedef struct {
    int64_t start;
    int64_t end;
    int32_t offset;
    int32_t prev_offset;
    int isdst;
    const char *abbr;
} hg_tz_span_t;

/*
 * The zone NAME ("Europe/Berlin") from the system tzdata (TZDIR, default
 * /usr/share/zoneinfo), or a POSIX TZ string ("CET-1CEST,M3.5.0,M10.5.0/3").
 * NULL or "" is the local zone: TZ if set (":Zone", "Zone", a path, or a
 * POSIX string; TZ="" is UTC), else /etc/localtime, else UTC. UTC needs no
 * tzdata. On error NULL and, in err, e.g. unknown time zone "Foo/Bar".
 */
const hg_tz_t *hg_tz_get(const char *name, char *err, size_t errlen);
const hg_tz_t *hg_tz_utc(void);
const char *hg_tz_name(const hg_tz_t *tz);

int hg_tz_offset(const hg_tz_t *tz, int64_t t);
void hg_tz_span(const hg_tz_t *tz, int64_t t, hg_tz_span_t *span);

/* Broken-down local time of t (tm_gmtoff, tm_isdst, tm_zone set). */
void hg_tz_localtime(const hg_tz_t *tz, int64_t t, struct tm *out);

/*
 * Local civil time -> the instants that show it: 0 (in a spring-forward
 * gap), 1, or 2 (in a fall-back overlap), earliest first. Fields out of
 * range are normalised as timegm() does (Feb 30 is Mar 2).
 */
int hg_tz_from_local(const hg_tz_t *tz, int year, int mon, int mday,
                     int hour, int min, int sec, int64_t out[2]);
/* The same for a wall time given as seconds since 1970-01-01T00:00:00 local. */
int hg_tz_from_wall(const hg_tz_t *tz, int64_t wall, int64_t out[2]);
/*
 * Wall time -> one instant by the fixed-time rule: the first occurrence in
 * an overlap, the first instant after the gap (the transition) in a gap.
 */
int64_t hg_tz_resolve_wall(const hg_tz_t *tz, int64_t wall);

/* RFC 3339 with a numeric offset: 2026-03-29T03:00:00+02:00 (+00:00, never
 * Z). An offset with seconds (local mean time before ~1900) is written
 * +hh:mm:ss, which RFC 3339 cannot express. HG_ERROR if buf is too small or
 * the year is outside 0-9999. */
int hg_tz_format_rfc3339(const hg_tz_t *tz, int64_t t, char *buf, size_t len);

/*
 * Parse "2026-12-01T09:00:00+01:00", "...Z", "2026-12-01 09:00", a date
 * alone (midnight), with optional fractional seconds (dropped), or
 * "@SECONDS". Without an offset the time is local in tz, by the fixed-time
 * rule (hg_tz_resolve_wall).
 */
int hg_tz_parse_time(const hg_tz_t *tz, const char *text, int64_t *t,
                     char *err, size_t errlen);

/* Uncached zones for tests and fuzzers; free them with hg_tz_free. */
hg_tz_t *hg_tz_from_tzif(const char *name, const unsigned char *data,
                         size_t len, char *err, size_t errlen);
hg_tz_t *hg_tz_from_posix(const char *spec, char *err, size_t errlen);
void hg_tz_free(hg_tz_t *tz);

/* Proleptic Gregorian calendar (H. Hinnant's algorithms), valid far beyond
 * HG_TZ_MIN_TIME..HG_TZ_MAX_TIME. mon is 1-12, wday 0 = Sunday. */
int64_t hg_days_from_civil(int64_t year, int mon, int mday);
void hg_civil_from_days(int64_t days, int64_t *year, int *mon, int *mday);
int hg_days_in_month(int64_t year, int mon);
int hg_weekday(int64_t days);
int hg_is_leap(int64_t year);

static inline int64_t
hg_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

#endif /* HG_TZ_H */
