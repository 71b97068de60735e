/*
 * hg_tz.c owns time zones: reading TZif files (RFC 8536) and POSIX TZ
 * strings, the zone cache, and conversions between instants and local civil
 * time. It must never touch the process's time zone state (no setenv("TZ"),
 * tzset(), localtime_r(), mktime()): each job has its own zone, and the
 * master converts times for many zones in one loop.
 *
 * A zone is a sorted table of transitions (from the file's 64-bit section,
 * or the 32-bit one in a v1 file) and, for instants after the last
 * transition, the POSIX TZ rule of the file's footer (which is what makes
 * 2038 and later right in "slim" files, and 2100 and 2400 right in all).
 * Lookups are a binary search in the table, or a computation of the rule's
 * two transitions in the instant's year: no per-call allocation, no locks.
 * Each thread keeps the span it found last: a schedule asks about instants
 * close together, mostly within one span (half a year), and the span's
 * bounds say whether the answer still holds, so a zone costs about what
 * UTC does.
 *
 * Leap seconds: files that count them (right/...) are refused, since the
 * scheduler's clock (CLOCK_REALTIME) does not.
 */

#include "hg_core.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

#include "hg_hint.h"
#include "hg_tz.h"

#define TZ_FILE_MAX     (1024 * 1024)
#define TZ_ABBR_MAX     16
#define TZ_NAME_MAX     255
#define TZ_MAX_TIMES    100000
#define TZ_DEFAULT_DIR  "/usr/share/zoneinfo"

/* Instants are clamped to this before any arithmetic, so that no input,
 * however absurd, overflows; the answers past it mean nothing. */
#define TZ_CLAMP  (1LL << 50)

typedef struct {
    int32_t offset;
    uint8_t isdst;
    uint16_t abbr;              /* index into hg_tz_s.abbrs */
} tz_type_t;

/* A POSIX TZ rule date: Jn (1-365, February 29 never counted), n (0-365,
 * counted), or Mm.w.d (day d of week w of month m, w = 5 the last). */
typedef struct {
    char kind;                  /* 'J', 'N' or 'M' */
    int month, week, day;       /* J/N use day */
    int32_t time;               /* local time of day, -167h..167h (v3) */
} tz_date_t;

typedef struct {
    int32_t std_offset;
    int32_t dst_offset;
    int has_dst;
    int std_isdst;              /* DST all year, written as a rule */
    tz_date_t start;            /* into DST, at local standard time */
    tz_date_t end;              /* out of DST, at local daylight time */
    char std_abbr[TZ_ABBR_MAX];
    char dst_abbr[TZ_ABBR_MAX];
} tz_rule_t;

struct hg_tz_s {
    struct hg_tz_s *next;       /* the cache's list */
    char *key;
    char *name;
    size_t ntrans;
    int64_t *trans;             /* strictly ascending */
    uint8_t *trans_type;
    size_t ntypes;
    tz_type_t *types;           /* types[0] applies before trans[0] */
    char *abbrs;                /* NUL-terminated strings */
    size_t nabbrs;
    int has_rule;
    tz_rule_t rule;
    uint64_t serial;            /* unique: a freed zone's address may return */
};

static uint64_t tz_serials;

/* The span this thread looked up last, and the zone's serial (0: none). */
static __thread struct {
    uint64_t serial;
    hg_tz_span_t span;
} tz_last;

static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;
static hg_tz_t *tz_cache;


/* ---- civil calendar ---------------------------------------------------- */

int
hg_is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int
hg_days_in_month(int64_t y, int m)
{
    static const int dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

    if (m == 2) {
        return 28 + hg_is_leap(y);
    }
    return dim[(m - 1) % 12];
}

int64_t
hg_days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = hg_floor_div(y, 400);
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void
hg_civil_from_days(int64_t z, int64_t *year, int *mon, int *mday)
{
    int64_t era, doe, yoe, y, doy, mp, d, m;

    z += 719468;
    era = hg_floor_div(z, 146097);
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    *year = y + (m <= 2);
    *mon = (int) m;
    *mday = (int) d;
}

int
hg_weekday(int64_t days)
{
    /* 1970-01-01 was a Thursday */
    int64_t w = (days + 4) % 7;

    return (int) (w < 0 ? w + 7 : w);
}

static int64_t
tz_clamp(int64_t t)
{
    return t < -TZ_CLAMP ? -TZ_CLAMP : t > TZ_CLAMP ? TZ_CLAMP : t;
}


/* ---- POSIX TZ rules ---------------------------------------------------- */

static int64_t
rule_day(const tz_date_t *d, int64_t year)
{
    int64_t jan1 = hg_days_from_civil(year, 1, 1), first;
    int day, dim;

    switch (d->kind) {
    case 'J':
        return jan1 + d->day - 1 + (hg_is_leap(year) && d->day >= 60);
    case 'N':
        return jan1 + d->day;
    default:
        first = hg_days_from_civil(year, d->month, 1);
        day = 1 + (d->day - hg_weekday(first) + 7) % 7 + 7 * (d->week - 1);
        dim = hg_days_in_month(year, d->month);
        while (day > dim) {
            day -= 7;
        }
        return first + day - 1;
    }
}

/* The instant of the rule's transition into (start) or out of DST in year. */
static int64_t
rule_transition(const tz_rule_t *r, int64_t year, int start)
{
    const tz_date_t *d = start ? &r->start : &r->end;

    return rule_day(d, year) * 86400 + d->time
           - (start ? r->std_offset : r->dst_offset);
}

/*
 * The span of a rule-based zone around t. The rule's two transitions of
 * the years around t (taken from t's local standard time) are scanned for
 * the last one at or before t and the first one after it. Five years, not
 * three: a transition time may be up to 167 hours off its day (RFC 8536
 * v3), so a year's transitions can fall a week into the next or previous
 * year, and the scan must not depend on their order within a year.
 */
static void
rule_span(const hg_tz_t *tz, int64_t t, hg_tz_span_t *sp)
{
    const tz_rule_t *r = &tz->rule;
    int64_t y, k, tr, last = INT64_MIN, before = INT64_MIN, next = INT64_MAX;
    int m, d, start, dst = 0, prev_dst = 0;

    if (!r->has_dst) {
        sp->start = INT64_MIN;
        sp->end = INT64_MAX;
        sp->offset = sp->prev_offset = r->std_offset;
        sp->isdst = r->std_isdst;
        sp->abbr = r->std_abbr;
        return;
    }

    /* the last two transitions at or before t (the later of equal ones
     * counts, in year order, start before end), and the first after it */
    hg_civil_from_days(hg_floor_div(t + r->std_offset, 86400), &y, &m, &d);
    for (k = y - 2; k <= y + 2; k++) {
        for (start = 1; start >= 0; start--) {
            tr = rule_transition(r, k, start);
            if (tr <= t) {
                if (tr >= last) {
                    before = last;
                    prev_dst = dst;
                    last = tr;
                    dst = start;
                } else if (tr >= before) {
                    before = tr;
                    prev_dst = start;
                }
            } else if (tr < next) {
                next = tr;
            }
        }
    }

    sp->start = last;
    sp->end = next;
    sp->offset = dst ? r->dst_offset : r->std_offset;
    sp->prev_offset = prev_dst ? r->dst_offset : r->std_offset;
    sp->isdst = dst;
    sp->abbr = dst ? r->dst_abbr : r->std_abbr;
}

static const char *
posix_abbr(const char *p, char *out)
{
    const char *start;
    size_t len;

    if (*p == '<') {
        start = ++p;
        while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')
               || (*p >= '0' && *p <= '9') || *p == '+' || *p == '-')
        {
            p++;
        }
        if (*p != '>') {
            return NULL;
        }
        len = (size_t) (p - start);
        p++;
    } else {
        start = p;
        while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')) {
            p++;
        }
        len = (size_t) (p - start);
    }
    if (len < 3 || len >= TZ_ABBR_MAX) {
        return NULL;
    }
    memcpy(out, start, len);
    out[len] = '\0';
    return p;
}

/* [+-]hh[:mm[:ss]] with hh <= maxh; seconds east or west as written. */
static const char *
posix_hms(const char *p, int maxh, int32_t *out)
{
    int sign = 1, part[3] = { 0, 0, 0 }, i, n;

    if (*p == '+' || *p == '-') {
        sign = *p++ == '-' ? -1 : 1;
    }
    for (i = 0; i < 3; i++) {
        if (i > 0) {
            if (*p != ':') {
                break;
            }
            p++;
        }
        if (*p < '0' || *p > '9') {
            return NULL;
        }
        for (n = 0; *p >= '0' && *p <= '9'; p++) {
            n = n * 10 + (*p - '0');
            if (n > 999) {
                return NULL;
            }
        }
        part[i] = n;
    }
    if (part[0] > maxh || part[1] > 59 || part[2] > 59) {
        return NULL;
    }
    *out = sign * (part[0] * 3600 + part[1] * 60 + part[2]);
    return p;
}

static const char *
posix_num(const char *p, int min, int max, int *out)
{
    int n = 0;

    if (*p < '0' || *p > '9') {
        return NULL;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (*p - '0');
        if (n > max) {
            return NULL;
        }
    }
    if (n < min) {
        return NULL;
    }
    *out = n;
    return p;
}

static const char *
posix_date(const char *p, tz_date_t *d)
{
    d->time = 2 * 3600;
    if (*p == 'J') {
        d->kind = 'J';
        p = posix_num(p + 1, 1, 365, &d->day);
    } else if (*p == 'M') {
        d->kind = 'M';
        p = posix_num(p + 1, 1, 12, &d->month);
        if (p == NULL || *p++ != '.') {
            return NULL;
        }
        p = posix_num(p, 1, 5, &d->week);
        if (p == NULL || *p++ != '.') {
            return NULL;
        }
        p = posix_num(p, 0, 6, &d->day);
    } else {
        d->kind = 'N';
        p = posix_num(p, 0, 365, &d->day);
    }
    if (p != NULL && *p == '/') {
        p = posix_hms(p + 1, 167, &d->time);
    }
    return p;
}

/*
 * "STDoffset[DST[offset][,start[/time],end[/time]]]", e.g.
 * "CET-1CEST,M3.5.0,M10.5.0/3" or "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0".
 * The offsets are hours west of Greenwich, as POSIX writes them.
 */
static int
posix_parse(const char *spec, tz_rule_t *r)
{
    const char *p = spec;
    int32_t off;
    int64_t y;

    memset(r, 0, sizeof(*r));
    p = posix_abbr(p, r->std_abbr);
    if (p == NULL || (p = posix_hms(p, 24, &off)) == NULL) {
        return HG_ERROR;
    }
    r->std_offset = -off;
    if (*p == '\0') {
        return HG_OK;
    }

    p = posix_abbr(p, r->dst_abbr);
    if (p == NULL) {
        return HG_ERROR;
    }
    r->has_dst = 1;
    r->dst_offset = r->std_offset + 3600;
    if (*p != ',' && *p != '\0') {
        if ((p = posix_hms(p, 24, &off)) == NULL) {
            return HG_ERROR;
        }
        r->dst_offset = -off;
    }
    if (*p == '\0') {
        /* no rule: POSIX leaves it to the implementation; glibc and the
         * tz code use the US rules */
        r->start = (tz_date_t) { 'M', 3, 2, 0, 2 * 3600 };
        r->end = (tz_date_t) { 'M', 11, 1, 0, 2 * 3600 };
    } else {
        if (*p++ != ',' || (p = posix_date(p, &r->start)) == NULL
            || *p++ != ',' || (p = posix_date(p, &r->end)) == NULL
            || *p != '\0')
        {
            return HG_ERROR;
        }
    }

    /* RFC 8536 writes "DST all year" as a rule whose end meets the next
     * year's start (e.g. "EST5EDT,0/0,J365/25"): make it a plain offset so
     * that no zero-length standard-time span appears between years. */
    for (y = 2001; y <= 2004; y += 3) {
        if (rule_transition(r, y, 0) >= rule_transition(r, y + 1, 1)
            && rule_transition(r, y, 1) < rule_transition(r, y, 0))
        {
            r->has_dst = 0;
            r->std_isdst = 1;
            r->std_offset = r->dst_offset;
            memcpy(r->std_abbr, r->dst_abbr, sizeof(r->std_abbr));
            break;
        }
    }
    return HG_OK;
}


/* ---- zone objects ------------------------------------------------------ */

void
hg_tz_free(hg_tz_t *tz)
{
    if (tz == NULL) {
        return;
    }
    free(tz->key);
    free(tz->name);
    free(tz->trans);
    free(tz->trans_type);
    free(tz->types);
    free(tz->abbrs);
    free(tz);
}

static hg_tz_t *
tz_new(const char *name)
{
    hg_tz_t *tz = calloc(1, sizeof(*tz));

    if (tz == NULL) {
        return NULL;
    }
    tz->name = strdup(name);
    if (tz->name == NULL) {
        free(tz);
        return NULL;
    }
    tz->serial = __atomic_add_fetch(&tz_serials, 1, __ATOMIC_RELAXED);
    return tz;
}

static int
tz_set_rule_types(hg_tz_t *tz)
{
    /* A zone made of a rule alone still needs types[0] for the span code. */
    tz->types = calloc(1, sizeof(tz_type_t));
    tz->abbrs = calloc(1, 1);
    if (tz->types == NULL || tz->abbrs == NULL) {
        return HG_ERROR;
    }
    tz->ntypes = 1;
    tz->nabbrs = 1;
    tz->types[0].offset = tz->rule.std_offset;
    tz->types[0].isdst = (uint8_t) tz->rule.std_isdst;
    return HG_OK;
}

hg_tz_t *
hg_tz_from_posix(const char *spec, char *err, size_t errlen)
{
    hg_tz_t *tz;
    tz_rule_t rule;

    if (posix_parse(spec, &rule) != HG_OK) {
        snprintf(err, errlen, "\"%s\" is not a POSIX TZ string", spec);
        return NULL;
    }
    tz = tz_new(spec);
    if (tz == NULL) {
        goto nomem;
    }
    tz->has_rule = 1;
    tz->rule = rule;
    if (tz_set_rule_types(tz) != HG_OK) {
        goto nomem;
    }
    return tz;

nomem:
    hg_tz_free(tz);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

static uint32_t
be32(const unsigned char *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16
           | (uint32_t) p[2] << 8 | p[3];
}

static int64_t
be64(const unsigned char *p)
{
    return (int64_t) ((uint64_t) be32(p) << 32 | be32(p + 4));
}

typedef struct {
    int version;
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} tzif_header_t;

static const char *
tzif_header(const unsigned char *p, size_t len, tzif_header_t *h)
{
    if (len < 44 || memcmp(p, "TZif", 4) != 0) {
        return "not a TZif file";
    }
    h->version = p[4] == 0 ? 1 : p[4] - '0';
    if (h->version < 1 || h->version > 9) {
        return "unknown TZif version";
    }
    h->isutcnt = be32(p + 20);
    h->isstdcnt = be32(p + 24);
    h->leapcnt = be32(p + 28);
    h->timecnt = be32(p + 32);
    h->typecnt = be32(p + 36);
    h->charcnt = be32(p + 40);
    if (h->typecnt == 0 || h->typecnt > 256 || h->charcnt == 0
        || h->charcnt > 65535 || h->timecnt > TZ_MAX_TIMES
        || h->leapcnt > TZ_MAX_TIMES
        || (h->isutcnt != 0 && h->isutcnt != h->typecnt)
        || (h->isstdcnt != 0 && h->isstdcnt != h->typecnt))
    {
        return "bad counts in TZif header";
    }
    return NULL;
}

static size_t
tzif_block_size(const tzif_header_t *h, size_t timesize)
{
    return h->timecnt * timesize + h->timecnt + h->typecnt * 6
           + h->charcnt + h->leapcnt * (timesize + 4) + h->isstdcnt
           + h->isutcnt;
}

static const char *
tzif_block(hg_tz_t *tz, const tzif_header_t *h, const unsigned char *p,
           size_t timesize)
{
    size_t i;
    int64_t t;
    const unsigned char *types, *chars;

    if (h->leapcnt != 0) {
        return "the file counts leap seconds (a right/ zone), which "
               "hourglass does not support";
    }

    tz->ntrans = h->timecnt;
    tz->ntypes = h->typecnt;
    tz->nabbrs = h->charcnt + 1;
    tz->trans = malloc((h->timecnt + 1) * sizeof(int64_t));
    tz->trans_type = malloc(h->timecnt + 1);
    tz->types = calloc(h->typecnt, sizeof(tz_type_t));
    tz->abbrs = calloc(1, tz->nabbrs);
    if (tz->trans == NULL || tz->trans_type == NULL || tz->types == NULL
        || tz->abbrs == NULL)
    {
        return "out of memory";
    }

    for (i = 0; i < h->timecnt; i++) {
        t = timesize == 8 ? be64(p + i * 8) : (int32_t) be32(p + i * 4);
        if (i > 0 && t <= tz->trans[i - 1]) {
            return "transition times are not ascending";
        }
        tz->trans[i] = t;
    }
    p += h->timecnt * timesize;
    for (i = 0; i < h->timecnt; i++) {
        if (p[i] >= h->typecnt) {
            return "transition type out of range";
        }
        tz->trans_type[i] = p[i];
    }
    p += h->timecnt;

    types = p;
    chars = p + h->typecnt * 6;
    for (i = 0; i < h->typecnt; i++) {
        int32_t off = (int32_t) be32(types + i * 6);

        if (off <= -HG_TZ_MAX_OFFSET || off >= HG_TZ_MAX_OFFSET) {
            return "UTC offset out of range";
        }
        if (types[i * 6 + 4] > 1 || types[i * 6 + 5] >= h->charcnt) {
            return "bad local time type";
        }
        tz->types[i].offset = off;
        tz->types[i].isdst = types[i * 6 + 4];
        tz->types[i].abbr = types[i * 6 + 5];
    }
    memcpy(tz->abbrs, chars, h->charcnt);
    return NULL;
}

hg_tz_t *
hg_tz_from_tzif(const char *name, const unsigned char *data, size_t len,
                char *err, size_t errlen)
{
    tzif_header_t h1, h2;
    const tzif_header_t *h;
    const unsigned char *p = data, *end = data + len, *nl;
    const char *why;
    hg_tz_t *tz;
    size_t size1, size2, flen;
    char footer[256];

    tz = tz_new(name);
    if (tz == NULL) {
        why = "out of memory";
        goto failed;
    }

    if ((why = tzif_header(p, len, &h1)) != NULL) {
        goto failed;
    }
    size1 = tzif_block_size(&h1, 4);
    if (size1 > len - 44) {
        why = "truncated";
        goto failed;
    }
    h = &h1;
    p += 44;
    if (h1.version >= 2) {
        p += size1;
        if ((why = tzif_header(p, (size_t) (end - p), &h2)) != NULL) {
            goto failed;
        }
        p += 44;
        size2 = tzif_block_size(&h2, 8);
        if (size2 > (size_t) (end - p)) {
            why = "truncated";
            goto failed;
        }
        h = &h2;
    }
    if ((why = tzif_block(tz, h, p, h1.version >= 2 ? 8 : 4)) != NULL) {
        goto failed;
    }

    if (h1.version >= 2) {
        p += tzif_block_size(h, 8);
        if (p >= end || *p != '\n') {
            why = "missing footer";
            goto failed;
        }
        p++;
        nl = memchr(p, '\n', (size_t) (end - p));
        if (nl == NULL || (flen = (size_t) (nl - p)) >= sizeof(footer)) {
            why = "bad footer";
            goto failed;
        }
        if (flen > 0) {
            memcpy(footer, p, flen);
            footer[flen] = '\0';
            if (memchr(footer, '\0', flen) != NULL
                || posix_parse(footer, &tz->rule) != HG_OK)
            {
                why = "bad TZ string in footer";
                goto failed;
            }
            tz->has_rule = 1;
        }
    }
    return tz;

failed:
    snprintf(err, errlen, "time zone \"%s\": %s", name, why);
    hg_tz_free(tz);
    return NULL;
}


/* ---- lookups ----------------------------------------------------------- */

static void
type_span(const hg_tz_t *tz, size_t type, hg_tz_span_t *sp)
{
    sp->offset = tz->types[type].offset;
    sp->isdst = tz->types[type].isdst;
    sp->abbr = tz->abbrs + tz->types[type].abbr;
}

static void
tz_span_lookup(const hg_tz_t *tz, int64_t t, hg_tz_span_t *sp)
{
    size_t n = tz->ntrans, lo, hi, mid;
    int32_t prev;

    if (n == 0 || t < tz->trans[0]) {
        if (n == 0 && tz->has_rule) {
            rule_span(tz, t, sp);
            return;
        }
        type_span(tz, 0, sp);
        sp->start = INT64_MIN;
        sp->end = n ? tz->trans[0] : INT64_MAX;
        sp->prev_offset = sp->offset;
        return;
    }

    /* the last transition at or before t */
    lo = 0;
    hi = n;
    while (hi - lo > 1) {
        mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= t) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    prev = tz->types[lo ? tz->trans_type[lo - 1] : 0].offset;

    if (lo == n - 1 && tz->has_rule) {
        rule_span(tz, t, sp);
        if (sp->start < tz->trans[lo]) {
            sp->start = tz->trans[lo];
            sp->prev_offset = prev;
        }
        return;
    }
    type_span(tz, tz->trans_type[lo], sp);
    sp->start = tz->trans[lo];
    sp->end = lo + 1 < n ? tz->trans[lo + 1] : INT64_MAX;
    sp->prev_offset = prev;
}

void
hg_tz_span(const hg_tz_t *tz, int64_t t, hg_tz_span_t *sp)
{
    t = tz_clamp(t);
    if (tz_last.serial == tz->serial && t >= tz_last.span.start
        && t < tz_last.span.end)
    {
        *sp = tz_last.span;
        return;
    }
    tz_span_lookup(tz, t, sp);
    tz_last.serial = tz->serial;
    tz_last.span = *sp;
}

int
hg_tz_offset(const hg_tz_t *tz, int64_t t)
{
    hg_tz_span_t sp;

    hg_tz_span(tz, t, &sp);
    return sp.offset;
}

void
hg_tz_localtime(const hg_tz_t *tz, int64_t t, struct tm *out)
{
    hg_tz_span_t sp;
    int64_t w, days, sod, y;
    int m, d;

    t = tz_clamp(t);
    hg_tz_span(tz, t, &sp);
    w = t + sp.offset;
    days = hg_floor_div(w, 86400);
    sod = w - days * 86400;
    hg_civil_from_days(days, &y, &m, &d);

    memset(out, 0, sizeof(*out));
    out->tm_year = (int) (y - 1900);
    out->tm_mon = m - 1;
    out->tm_mday = d;
    out->tm_hour = (int) (sod / 3600);
    out->tm_min = (int) (sod / 60 % 60);
    out->tm_sec = (int) (sod % 60);
    out->tm_wday = hg_weekday(days);
    out->tm_yday = (int) (days - hg_days_from_civil(y, 1, 1));
    out->tm_isdst = sp.isdst;
    out->tm_gmtoff = sp.offset;
    out->tm_zone = sp.abbr;
}

int
hg_tz_from_wall(const hg_tz_t *tz, int64_t wall, int64_t out[2])
{
    hg_tz_span_t sp;
    int64_t t, c;
    int n = 0, i;

    /* Every instant showing this wall time lies within HG_TZ_MAX_OFFSET of
     * it: walk the spans of that window (one or two in practice). */
    wall = tz_clamp(wall);
    t = wall - HG_TZ_MAX_OFFSET;
    for (i = 0; i < 64; i++) {
        hg_tz_span(tz, t, &sp);
        c = wall - sp.offset;
        if (c >= sp.start && c < sp.end && (n == 0 || c > out[n - 1])) {
            out[n++] = c;
            if (n == 2) {
                break;
            }
        }
        if (sp.end > wall + HG_TZ_MAX_OFFSET) {
            break;
        }
        t = sp.end;
    }
    return n;
}

int
hg_tz_from_local(const hg_tz_t *tz, int year, int mon, int mday, int hour,
                 int min, int sec, int64_t out[2])
{
    int64_t y = year, m = mon - 1, days, wall;

    y += hg_floor_div(m, 12);
    m -= hg_floor_div(m, 12) * 12;
    days = hg_days_from_civil(y, (int) m + 1, 1) + mday - 1;
    wall = days * 86400 + (int64_t) hour * 3600 + (int64_t) min * 60 + sec;
    return hg_tz_from_wall(tz, wall, out);
}

int64_t
hg_tz_resolve_wall(const hg_tz_t *tz, int64_t wall)
{
    hg_tz_span_t sp;
    int64_t out[2], t;
    int i;

    if (hg_tz_from_wall(tz, wall, out) > 0) {
        return out[0];
    }
    /* in a gap: the transition that jumped over the wall time */
    wall = tz_clamp(wall);
    t = wall - HG_TZ_MAX_OFFSET;
    for (i = 0; i < 64; i++) {
        hg_tz_span(tz, t, &sp);
        if (sp.prev_offset < sp.offset && sp.start != INT64_MIN
            && wall >= sp.start + sp.prev_offset
            && wall < sp.start + sp.offset)
        {
            return sp.start;
        }
        if (sp.end > wall + HG_TZ_MAX_OFFSET) {
            break;
        }
        t = sp.end;
    }
    return wall - hg_tz_offset(tz, wall);
}


/* ---- formatting and parsing -------------------------------------------- */

int
hg_tz_format_rfc3339(const hg_tz_t *tz, int64_t t, char *buf, size_t len)
{
    struct tm tm;
    long off;
    int n, year;
    char sign;

    hg_tz_localtime(tz, t, &tm);
    year = tm.tm_year + 1900;
    if (year < 0 || year > 9999) {
        return HG_ERROR;
    }
    off = tm.tm_gmtoff;
    sign = off < 0 ? '-' : '+';
    off = off < 0 ? -off : off;
    if (off % 60 != 0) {
        n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d%c%02ld:%02ld:%02ld",
                     year, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, sign, off / 3600, off / 60 % 60, off % 60);
    } else {
        n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d%c%02ld:%02ld",
                     year, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, sign, off / 3600, off / 60 % 60);
    }
    return n < 0 || (size_t) n >= len ? HG_ERROR : HG_OK;
}

/* exactly n digits */
static const char *
scan_digits(const char *p, int n, int *out)
{
    int v = 0;

    for (; n > 0; n--, p++) {
        if (*p < '0' || *p > '9') {
            return NULL;
        }
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return p;
}

#define TIME_EXAMPLE  "(expected e.g. 2026-12-01T09:00:00+01:00)"

int
hg_tz_parse_time(const hg_tz_t *tz, const char *text, int64_t *t,
                 char *err, size_t errlen)
{
    const char *p = text;
    int year, mon, mday, hour = 0, min = 0, sec = 0, oh = 0, om = 0;
    int has_offset = 0, sign = 1;
    int64_t wall, r;
    char *end;
    long long secs;

    if (*p == '@') {
        errno = 0;
        secs = strtoll(p + 1, &end, 10);
        if (end == p + 1 || *end != '\0' || errno != 0
            || secs < HG_TZ_MIN_TIME || secs > HG_TZ_MAX_TIME)
        {
            snprintf(err, errlen, "\"%s\" is not a time: @ needs seconds "
                     "since the epoch within years 1-9999", text);
            return HG_ERROR;
        }
        *t = secs;
        return HG_OK;
    }

    if ((p = scan_digits(p, 4, &year)) == NULL || *p++ != '-'
        || (p = scan_digits(p, 2, &mon)) == NULL || *p++ != '-'
        || (p = scan_digits(p, 2, &mday)) == NULL)
    {
        goto syntax;
    }
    if (*p == 'T' || *p == 't' || (*p == ' ' && p[1] != '\0')) {
        p++;
        if ((p = scan_digits(p, 2, &hour)) == NULL || *p++ != ':'
            || (p = scan_digits(p, 2, &min)) == NULL)
        {
            goto syntax;
        }
        if (*p == ':') {
            if ((p = scan_digits(p + 1, 2, &sec)) == NULL) {
                goto syntax;
            }
            if (*p == '.' || *p == ',') {
                /* fire times are whole seconds: "strictly after x.5" is
                 * "strictly after x", so the fraction can go */
                p++;
                if (*p < '0' || *p > '9') {
                    goto syntax;
                }
                while (*p >= '0' && *p <= '9') {
                    p++;
                }
            }
        }
        if (*p == 'Z' || *p == 'z') {
            has_offset = 1;
            p++;
        } else if (*p == '+' || *p == '-') {
            has_offset = 1;
            sign = *p++ == '-' ? -1 : 1;
            if ((p = scan_digits(p, 2, &oh)) == NULL) {
                goto syntax;
            }
            if (*p == ':') {
                p++;
            }
            if (*p >= '0' && *p <= '9' && (p = scan_digits(p, 2, &om)) == NULL) {
                goto syntax;
            }
        }
    }
    if (*p != '\0') {
        goto syntax;
    }

    if (mon < 1 || mon > 12) {
        snprintf(err, errlen, "\"%s\" is not a time: month %d is out of "
                 "range 1-12", text, mon);
        return HG_ERROR;
    }
    if (year < 1) {
        snprintf(err, errlen, "\"%s\" is not a time: year 0 is out of "
                 "range 1-9999", text);
        return HG_ERROR;
    }
    if (mday < 1 || mday > hg_days_in_month(year, mon)) {
        snprintf(err, errlen, "\"%s\" is not a time: day %d is out of "
                 "range 1-%d", text, mday, hg_days_in_month(year, mon));
        return HG_ERROR;
    }
    if (hour > 23 || min > 59 || sec > 60 || oh > 23 || om > 59) {
        snprintf(err, errlen, "\"%s\" is not a time: hour, minute, second "
                 "or offset out of range", text);
        return HG_ERROR;
    }

    /* a leap second (:60) is the next minute's first second, as POSIX
     * time has no room for it */
    wall = hg_days_from_civil(year, mon, mday) * 86400 + hour * 3600
           + min * 60 + sec;
    if (has_offset) {
        r = wall - sign * (oh * 3600 + om * 60);
    } else {
        r = hg_tz_resolve_wall(tz, wall);
    }
    if (r < HG_TZ_MIN_TIME || r > HG_TZ_MAX_TIME) {
        snprintf(err, errlen, "\"%s\" is not a time: outside years "
                 "1-9999", text);
        return HG_ERROR;
    }
    *t = r;
    return HG_OK;

syntax:
    snprintf(err, errlen, "\"%s\" is not a time " TIME_EXAMPLE, text);
    return HG_ERROR;
}


/* ---- loading and the cache --------------------------------------------- */

static int
read_file(const char *path, unsigned char **data, size_t *len)
{
    struct stat st;
    unsigned char *buf = NULL;
    size_t got = 0;
    ssize_t n;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return HG_ERROR;
    }
    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)
        || st.st_size > TZ_FILE_MAX)
    {
        goto failed;
    }
    buf = malloc((size_t) st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        errno = ENOMEM;                 /* load_file tells it apart */
        return HG_ERROR;
    }
    while (got < (size_t) st.st_size) {
        n = read(fd, buf + got, (size_t) st.st_size - got);
        if (n == -1 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            goto failed;
        }
        got += (size_t) n;
    }
    close(fd);
    *data = buf;
    *len = got;
    return HG_OK;

failed:
    free(buf);
    close(fd);
    return HG_ERROR;
}

/* A name that may be looked up under TZDIR: relative, no "." or ".."
 * component, only the characters tzdata uses. */
static int
zone_name_ok(const char *name)
{
    const char *p, *comp = name;
    size_t len = strlen(name);

    if (len == 0 || len > TZ_NAME_MAX) {
        return 0;
    }
    for (p = name;; p++) {
        if (*p == '/' || *p == '\0') {
            if (p == comp || (p - comp == 1 && comp[0] == '.')
                || (p - comp == 2 && comp[0] == '.' && comp[1] == '.'))
            {
                return 0;
            }
            if (*p == '\0') {
                return 1;
            }
            comp = p + 1;
            continue;
        }
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')
              || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'
              || *p == '+' || *p == '.'))
        {
            return 0;
        }
    }
}

/* 1 loaded, 0 no such file, -1 a file that is not a zone or no memory
 * to read it (err set): a zone that exists is never "unknown" */
static int
load_file(const char *path, const char *name, hg_tz_t **out, char *err,
          size_t errlen)
{
    unsigned char *data;
    size_t len;

    errno = 0;
    if (read_file(path, &data, &len) != HG_OK) {
        if (errno != ENOMEM) {
            return 0;
        }
        snprintf(err, errlen, "time zone \"%s\": out of memory reading %s",
                 name, path);
        return -1;
    }
    *out = hg_tz_from_tzif(name, data, len, err, errlen);
    free(data);
    return *out != NULL ? 1 : -1;
}

/* Where zone files are looked up (and did-you-mean names found). */
static const char *
tz_dir(void)
{
    const char *dir = getenv("TZDIR");

    return dir != NULL && dir[0] != '\0' ? dir : TZ_DEFAULT_DIR;
}

static int
load_zone(const char *name, hg_tz_t **out, char *err, size_t errlen)
{
    const char *dir = tz_dir();
    char path[PATH_MAX];
    int n;

    if (!zone_name_ok(name)) {
        return 0;
    }
    n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (n < 0 || (size_t) n >= sizeof(path)) {
        return 0;
    }
    return load_file(path, name, out, err, errlen);
}

static int
is_utc_name(const char *name)
{
    static const char *const names[] = {
        "UTC", "Etc/UTC", "GMT", "Etc/GMT", "UCT", "Etc/UCT", "Zulu",
        "Etc/Zulu", "Universal", "Etc/Universal", "Z"
    };
    size_t i;

    for (i = 0; i < HG_NELEMS(names); i++) {
        if (strcmp(name, names[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* A zone by name (tzdata file, else POSIX TZ string, else built-in UTC). */
static hg_tz_t *
tz_load_named(const char *name, int allow_path, char *err, size_t errlen)
{
    hg_tz_t *tz = NULL;
    char why[256];
    int rc;

    why[0] = '\0';
    if (allow_path && name[0] == '/') {
        rc = load_file(name, name, &tz, why, sizeof(why));
    } else {
        rc = load_zone(name, &tz, why, sizeof(why));
    }
    if (rc == 1) {
        return tz;
    }
    if (rc == -1) {
        snprintf(err, errlen, "%s", why);
        return NULL;
    }
    if (is_utc_name(name)) {
        tz = hg_tz_from_posix("UTC0", why, sizeof(why));
        if (tz != NULL) {
            free(tz->name);
            tz->name = strdup(name);
            if (tz->name == NULL) {
                hg_tz_free(tz);
                tz = NULL;
            }
        }
        if (tz == NULL) {
            snprintf(err, errlen, "out of memory");
        }
        return tz;
    }
    /* a POSIX string has an offset, hence a digit; "Foo/Bar" has none */
    if (strpbrk(name, "0123456789") != NULL) {
        tz = hg_tz_from_posix(name, why, sizeof(why));
        if (tz != NULL) {
            return tz;
        }
    }
    if (hg_hint_zone(tz_dir(), name, why, sizeof(why)) != NULL) {
        snprintf(err, errlen, "unknown time zone \"%s\" (did you mean "
                 "\"%s\"?)", name, why);
    } else {
        snprintf(err, errlen, "unknown time zone \"%s\"", name);
    }
    return NULL;
}

static hg_tz_t *
tz_load_local(const char *tzenv, char *err, size_t errlen)
{
    char link[PATH_MAX], why[256];
    const char *p, *name = "localtime";
    hg_tz_t *tz = NULL;
    ssize_t n;
    int rc;

    if (tzenv != NULL) {
        if (tzenv[0] == ':') {
            tzenv++;
        }
        if (tzenv[0] == '\0') {
            return tz_load_named("UTC", 0, err, errlen);
        }
        tz = tz_load_named(tzenv, 1, why, sizeof(why));
        if (tz == NULL) {
            snprintf(err, errlen, "%s (from TZ)", why);
        }
        return tz;
    }

    /* /etc/localtime is usually a link into the zoneinfo tree, which
     * gives the zone its name */
    n = readlink("/etc/localtime", link, sizeof(link) - 1);
    if (n > 0) {
        link[n] = '\0';
        p = strstr(link, "zoneinfo/");
        if (p != NULL && zone_name_ok(p + 9)) {
            name = p + 9;
        }
    }
    rc = load_file("/etc/localtime", name, &tz, why, sizeof(why));
    if (rc == 1) {
        return tz;
    }
    return tz_load_named("UTC", 0, err, errlen);
}

const hg_tz_t *
hg_tz_get(const char *name, char *err, size_t errlen)
{
    const char *tzenv = NULL;
    hg_tz_t *tz;
    char key[TZ_NAME_MAX + 8];
    int local = name == NULL || name[0] == '\0';

    if (local) {
        tzenv = getenv("TZ");
        snprintf(key, sizeof(key), "\001%s%s", tzenv ? "TZ=" : "localtime",
                 tzenv ? tzenv : "");
    } else {
        snprintf(key, sizeof(key), "%s", name);
    }
    if (strlen(local ? (tzenv ? tzenv : "") : name) > TZ_NAME_MAX) {
        snprintf(err, errlen, "unknown time zone \"%.40s...\" (name too "
                 "long)", local ? tzenv : name);
        return NULL;
    }

    pthread_mutex_lock(&tz_lock);
    for (tz = tz_cache; tz != NULL; tz = tz->next) {
        if (strcmp(tz->key, key) == 0) {
            goto done;
        }
    }
    tz = local ? tz_load_local(tzenv, err, errlen)
               : tz_load_named(name, 0, err, errlen);
    if (tz == NULL) {
        goto done;
    }
    tz->key = strdup(key);
    if (tz->key == NULL) {
        hg_tz_free(tz);
        tz = NULL;
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    tz->next = tz_cache;
    tz_cache = tz;

done:
    pthread_mutex_unlock(&tz_lock);
    return tz;
}

const hg_tz_t *
hg_tz_utc(void)
{
    /* static, so that UTC is there even without tzdata or memory */
    static tz_type_t utc_type = { 0, 0, 0 };
    static char utc_abbr[] = "UTC";
    static char utc_name[] = "UTC";
    static hg_tz_t utc = {
        .name = utc_name, .types = &utc_type, .ntypes = 1,
        .abbrs = utc_abbr, .nabbrs = sizeof(utc_abbr)
    };

    return &utc;
}

const char *
hg_tz_name(const hg_tz_t *tz)
{
    return tz->name;
}
