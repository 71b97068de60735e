/*
 * hg_cron.c owns cron expressions: the parser, the bitmask form (cronie's:
 * one bit per allowed second, minute, hour and month), and the search for
 * the next fire time in a job's zone under cronie's daylight-saving rules.
 * It keeps no global state and never touches the process's time zone.
 *
 * Syntax (DESIGN.md, "Schedules"): 5 fields "min hour dom mon dow" or 6
 * with seconds first; lists, ranges, steps ("*" "/n", "a-b/n", "a/n" = a to
 * the field's maximum by n), JAN-DEC and SUN-SAT in any case, 0 and 7 both
 * Sunday, "?" as "*" in dom/dow; a dow range may end at Sunday written 0 or
 * SUN ("MON-SUN", "FRI-0", as cronie's get_range reads a high end of 0
 * after a higher low end: as 7); in dom "a-L" runs to the last day of each
 * month ("29-L", "1-L/8"); in dom "L" (last day), "nW" (the weekday
 * nearest day n, never crossing into another month: a Saturday 1st moves to
 * Monday the 3rd, a Sunday last day to Friday), "LW" (last weekday); in dow
 * "d#n" (n-th such weekday, 1-5) and "dL" (last such weekday); the macros
 * @yearly @annually @monthly @weekly @daily @midnight @hourly,
 * "@every DURATION" (s, m, h, d units: "90s", "1h30m", "7d") and @reboot
 * (no fire time: the master runs it once per boot, hg_recover.c). Any of
 * them may follow a "CRON_TZ=Zone " or "TZ=Zone " prefix (cronie's): the
 * zone the expression is read in (hg_cron_zone; the caller resolves it).
 *
 * Day matching (Vixie cron): when dom and dow are both restricted (neither
 * field begins with "*" or "?") a day matches if either matches, otherwise
 * if both do. All the day logic -- dom, dow, the OR rule, L, W, LW, #, dL --
 * depends only on the month's length and the weekday of its 1st, so the
 * parser precomputes one 31-bit mask of matching days for each of those 28
 * month shapes. Matching a day is then one table lookup, skipping to the
 * next matching day one count-trailing-zeros, and "can this ever fire?" an
 * exact question over the shapes the month field allows (every shape occurs
 * in the Gregorian calendar, February 29 on each weekday included).
 */

#include "hg_core.h"

#include "hg_cron.h"
#include "hg_tz.h"

enum { F_SEC = 0, F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, F_COUNT };

struct hg_cron_s {
    uint64_t sec;               /* bit n: second n */
    uint64_t min;
    uint32_t hour;
    uint16_t mon;               /* bits 1-12 */
    int interval_like;
    unsigned refs;              /* holders: hg_cron_ref, hg_cron_free */
    int64_t every;              /* @every, seconds; 0 otherwise */
    int reboot;                 /* @reboot: no fire time, once per boot */
    const char *zone;           /* CRON_TZ=/TZ= prefix, or NULL */
    /* [days in month - 28][weekday of the 1st]: bit d set if day d fires */
    uint32_t days[4][7];
    char text[];
};

typedef struct {
    const char *name;
    int min;
    int max;
} field_def_t;

static const field_def_t field_defs[F_COUNT] = {
    { "second", 0, 59 },
    { "minute", 0, 59 },
    { "hour", 0, 23 },
    { "day of month", 1, 31 },
    { "month", 1, 12 },
    { "day of week", 0, 7 },
};

static const char *const month_names[13] = {
    "", "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT",
    "NOV", "DEC"
};
static const char *const month_long[13] = {
    "", "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December"
};
static const char *const day_names[7] = {
    "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"
};

/* One field as parsed, before the day fields are folded into masks. */
typedef struct {
    uint64_t bits;
    int star;                   /* the field begins with "*" or "?" */
    int last;                   /* dom L */
    int last_wday;              /* dom LW */
    uint32_t near_wday;         /* dom nW: bit n */
    uint8_t nth[7];             /* dow d#n: bit n of nth[d] */
    uint8_t last_dow;           /* dow dL: bit d */
} field_t;

typedef struct {
    int index;                  /* F_* */
    int number;                 /* as the user counts: 1 = first field */
    const char *text;           /* the field, NUL-terminated */
    const char *item;           /* the list item being parsed */
    size_t item_len;
    char *err;
    size_t errlen;
} parse_ctx_t;


/* ---- errors ------------------------------------------------------------ */

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int
field_error(parse_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;
    int n;

    n = snprintf(ctx->err, ctx->errlen, "field %d (%s): ", ctx->number,
                 field_defs[ctx->index].name);
    if (n >= 0 && (size_t) n < ctx->errlen) {
        va_start(ap, fmt);
        vsnprintf(ctx->err + n, ctx->errlen - (size_t) n, fmt, ap);
        va_end(ap);
    }
    return HG_ERROR;
}

static int
is_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v'
           || c == '\f';
}

static int
is_alpha(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int
is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int
upper(int c)
{
    return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c;
}


/* ---- fields ------------------------------------------------------------ */

static int
is_day_field(const parse_ctx_t *ctx)
{
    return ctx->index == F_DOM || ctx->index == F_DOW;
}

static int
lookup_name(const char *const *names, int first, int count, const char *p)
{
    int i;

    for (i = first; i < first + count; i++) {
        if (upper(p[0]) == names[i][0] && upper(p[1]) == names[i][1]
            && upper(p[2]) == names[i][2])
        {
            return i;
        }
    }
    return -1;
}

/*
 * A number or (month, dow) a name at *pp. In dow a name may carry an "L"
 * suffix ("FRIL"), which is left for the caller.
 */
static int
parse_value(parse_ctx_t *ctx, const char **pp, const char *end, int *out)
{
    const field_def_t *def = &field_defs[ctx->index];
    const char *p = *pp, *start = p;
    int64_t v = 0;
    int n, len;

    if (p < end && is_digit(*p)) {
        while (p < end && is_digit(*p)) {
            if (v < 1000000) {
                v = v * 10 + (*p - '0');
            }
            p++;
        }
        len = (int) (p - start);
        if (v < def->min || v > def->max) {
            if (v >= 1000000) {
                return field_error(ctx, "%.*s is out of range %d-%d", len,
                                   start, def->min, def->max);
            }
            return field_error(ctx, "%d is out of range %d-%d", (int) v,
                               def->min, def->max);
        }
        *out = (int) v;
        *pp = p;
        return HG_OK;
    }

    while (p < end && is_alpha(*p)) {
        p++;
    }
    len = (int) (p - start);
    if (len == 0) {
        if (p < end && *p == '#' && ctx->index != F_DOW) {
            return field_error(ctx, "\"#\" is only allowed in the day of "
                               "week field");
        }
        if (p < end) {
            return field_error(ctx, "unexpected \"%c\" in \"%.*s\"", *p,
                               (int) ctx->item_len, ctx->item);
        }
        return field_error(ctx, "\"%.*s\" ends too early",
                           (int) ctx->item_len, ctx->item);
    }
    n = -1;
    if (ctx->index == F_MON && len == 3) {
        n = lookup_name(month_names, 1, 12, start);
    } else if (ctx->index == F_DOW
               && (len == 3 || (len == 4 && upper(start[3]) == 'L')))
    {
        n = lookup_name(day_names, 0, 7, start);
        if (n >= 0) {
            p = start + 3;
        }
    }
    if (n < 0) {
        if (ctx->index == F_MON) {
            return field_error(ctx, "\"%.*s\" is not a month name", len, start);
        }
        if (ctx->index == F_DOW) {
            return field_error(ctx, "\"%.*s\" is not a day name", len, start);
        }
        if (len == 1 && upper(*start) == 'W' && ctx->index == F_DOM) {
            return field_error(ctx, "\"W\" needs a day before it (e.g. 15W, "
                               "the weekday nearest the 15th)");
        }
        if (len == 1 && (upper(*start) == 'L' || upper(*start) == 'W')) {
            return field_error(ctx, "\"%c\" is only allowed in the day of "
                               "month %s", *start,
                               upper(*start) == 'L'
                               ? "and day of week fields" : "field");
        }
        return field_error(ctx, "\"%.*s\" is not a number", len, start);
    }
    *out = n;
    *pp = p;
    return HG_OK;
}

static int
parse_step(parse_ctx_t *ctx, const char **pp, const char *end, int *out)
{
    const field_def_t *def = &field_defs[ctx->index];
    const char *p = *pp + 1, *start = p;
    int64_t v = 0;
    int span = ctx->index == F_DOW ? 7 : def->max - def->min + 1;

    while (p < end && is_digit(*p)) {
        if (v < 1000000) {
            v = v * 10 + (*p - '0');
        }
        p++;
    }
    if (p == start || p != end) {
        return field_error(ctx, "step \"%.*s\" is not a number",
                           (int) (end - start), start);
    }
    if (v == 0) {
        return field_error(ctx, "step 0 is not allowed");
    }
    if (v > span) {
        if (v >= 1000000) {
            return field_error(ctx, "step %.*s is out of range 1-%d",
                               (int) (end - start), start, span);
        }
        return field_error(ctx, "step %d is out of range 1-%d", (int) v, span);
    }
    *out = (int) v;
    *pp = p;
    return HG_OK;
}

static int
parse_item(parse_ctx_t *ctx, field_t *f, const char *p, const char *end)
{
    const field_def_t *def = &field_defs[ctx->index];
    int lo, hi, step = 1, n, v;

    ctx->item = p;
    ctx->item_len = (size_t) (end - p);
    if (p == end) {
        return field_error(ctx, "empty item in list \"%s\"", ctx->text);
    }

    if (*p == '*' || *p == '?') {
        if (*p == '?' && !is_day_field(ctx)) {
            return field_error(ctx, "\"?\" is only allowed in the day of "
                               "month and day of week fields");
        }
        p++;
        lo = def->min;
        hi = ctx->index == F_DOW ? 6 : def->max;
        if (p < end && *p == '/') {
            if (parse_step(ctx, &p, end, &step) != HG_OK) {
                return HG_ERROR;
            }
        }
        if (p != end) {
            return field_error(ctx, "unexpected \"%c\" in \"%.*s\"", *p,
                               (int) ctx->item_len, ctx->item);
        }
        goto set_range;
    }

    /* "LW" followed by more is a malformed LW, not a name */
    if (upper(*p) == 'L' && (end - p == 1 || !is_alpha(p[1])
                             || upper(p[1]) == 'W'))
    {
        if (ctx->index == F_DOM) {
            if (end - p == 1) {
                f->last = 1;
                return HG_OK;
            }
            if (end - p == 2 && upper(p[1]) == 'W') {
                f->last_wday = 1;
                return HG_OK;
            }
            return field_error(ctx, "\"%.*s\" is not valid (L is the last "
                               "day of the month, LW its last weekday)",
                               (int) ctx->item_len, ctx->item);
        }
        if (ctx->index == F_DOW) {
            return field_error(ctx, "\"L\" needs a day before it (e.g. 5L, "
                               "the last Friday of the month)");
        }
        return field_error(ctx, "\"L\" is only allowed in the day of month "
                           "and day of week fields");
    }

    if (parse_value(ctx, &p, end, &lo) != HG_OK) {
        return HG_ERROR;
    }
    hi = lo;

    if (p == end) {
        goto set_range;
    }
    switch (*p) {
    case '-':
        p++;
        if (ctx->index == F_DOM && p < end && upper(*p) == 'L'
            && (p + 1 == end || p[1] == '/'))
        {
            /* "29-L": to the last day of each month. Days past a month's
             * end never match (build_day_masks), so that is "29-31". */
            hi = def->max;
            p++;
        } else if (parse_value(ctx, &p, end, &hi) != HG_OK) {
            return HG_ERROR;
        }
        if (ctx->index == F_DOW && hi == 0 && lo > 0) {
            hi = 7;                     /* "FRI-SUN", "5-0": cronie's */
        }
        if (p < end && upper(*p) == 'W' && ctx->index == F_DOM) {
            return field_error(ctx, "\"%.*s\" is not valid (nW takes one "
                               "day, e.g. 15W)", (int) ctx->item_len,
                               ctx->item);
        }
        if (hi < lo) {
            return field_error(ctx, "range \"%.*s\" goes backwards",
                               (int) ctx->item_len, ctx->item);
        }
        if (p < end && *p == '/') {
            if (parse_step(ctx, &p, end, &step) != HG_OK) {
                return HG_ERROR;
            }
        }
        break;
    case '/':
        hi = ctx->index == F_DOW ? 6 : def->max;
        if (hi < lo) {
            hi = lo;                    /* "7/2" in dow: Sunday */
        }
        if (parse_step(ctx, &p, end, &step) != HG_OK) {
            return HG_ERROR;
        }
        break;
    case 'W':
    case 'w':
        if (ctx->index != F_DOM) {
            return field_error(ctx, "\"W\" is only allowed in the day of "
                               "month field");
        }
        if (p + 1 != end) {
            return field_error(ctx, "\"%.*s\" is not valid (nW takes one "
                               "day, e.g. 15W)", (int) ctx->item_len,
                               ctx->item);
        }
        f->near_wday |= 1u << lo;
        return HG_OK;
    case 'L':
    case 'l':
        if (ctx->index != F_DOW) {
            return field_error(ctx, "\"%.*s\" is not valid (L alone is the "
                               "last day of the month)", (int) ctx->item_len,
                               ctx->item);
        }
        if (p + 1 != end) {
            return field_error(ctx, "unexpected \"%c\" in \"%.*s\"", p[1],
                               (int) ctx->item_len, ctx->item);
        }
        f->last_dow |= (uint8_t) (1u << (lo % 7));
        return HG_OK;
    case '#':
        if (ctx->index != F_DOW) {
            return field_error(ctx, "\"#\" is only allowed in the day of "
                               "week field");
        }
        p++;
        for (n = 0, v = 0; p < end && is_digit(*p) && n < 6; p++, n++) {
            v = v * 10 + (*p - '0');
        }
        if (n == 0 || p != end) {
            return field_error(ctx, "\"%.*s\" is not valid (d#n takes a "
                               "week number 1-5, e.g. MON#2)",
                               (int) ctx->item_len, ctx->item);
        }
        if (v < 1 || v > 5) {
            return field_error(ctx, "week %d in \"%.*s\" is out of range 1-5",
                               v, (int) ctx->item_len, ctx->item);
        }
        f->nth[lo % 7] |= (uint8_t) (1u << v);
        return HG_OK;
    default:
        return field_error(ctx, "unexpected \"%c\" in \"%.*s\"", *p,
                           (int) ctx->item_len, ctx->item);
    }
    if (p != end) {
        return field_error(ctx, "unexpected \"%c\" in \"%.*s\"", *p,
                           (int) ctx->item_len, ctx->item);
    }

set_range:
    for (v = lo; v <= hi; v += step) {
        f->bits |= 1ull << v;
    }
    return HG_OK;
}

static int
parse_field(parse_ctx_t *ctx, field_t *f)
{
    const char *p = ctx->text, *comma;

    memset(f, 0, sizeof(*f));
    f->star = ctx->text[0] == '*' || ctx->text[0] == '?';
    for (;;) {
        comma = strchr(p, ',');
        if (parse_item(ctx, f, p, comma ? comma : p + strlen(p)) != HG_OK) {
            return HG_ERROR;
        }
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    if (ctx->index == F_DOW && (f->bits & (1u << 7))) {
        f->bits = (f->bits & ~(1ull << 7)) | 1;        /* 7 is Sunday */
    }
    return HG_OK;
}


/* ---- days -------------------------------------------------------------- */

static void
build_day_masks(hg_cron_t *c, const field_t *dom, const field_t *dow)
{
    int dim, wd1, d, n, wd, target, lastwd, dm, wm;
    uint32_t mask, near;

    for (dim = 28; dim <= 31; dim++) {
        for (wd1 = 0; wd1 < 7; wd1++) {
            wd = (wd1 + dim - 1) % 7;
            lastwd = wd == 6 ? dim - 1 : wd == 0 ? dim - 2 : dim;

            /* nW: a Saturday moves back to Friday, a Sunday on to Monday,
             * unless that leaves the month: then the other way (Quartz) */
            near = 0;
            for (n = 1; n <= dim; n++) {
                if (!(dom->near_wday & (1u << n))) {
                    continue;
                }
                wd = (wd1 + n - 1) % 7;
                target = n;
                if (wd == 6) {
                    target = n == 1 ? 3 : n - 1;
                } else if (wd == 0) {
                    target = n == dim ? n - 2 : n + 1;
                }
                near |= 1u << target;
            }

            mask = 0;
            for (d = 1; d <= dim; d++) {
                wd = (wd1 + d - 1) % 7;
                dm = (dom->bits >> d & 1) || (dom->last && d == dim)
                     || (dom->last_wday && d == lastwd) || (near >> d & 1);
                wm = (dow->bits >> wd & 1)
                     || (dow->nth[wd] >> ((d - 1) / 7 + 1) & 1)
                     || ((dow->last_dow >> wd & 1) && d + 7 > dim);
                if ((dom->star || dow->star) ? (dm && wm) : (dm || wm)) {
                    mask |= 1u << d;
                }
            }
            c->days[dim - 28][wd1] = mask;
        }
    }
}

static int
month_can_fire(const hg_cron_t *c, int m)
{
    int wd1;

    for (wd1 = 0; wd1 < 7; wd1++) {
        if (c->days[hg_days_in_month(2001, m) - 28][wd1]
            || (m == 2 && c->days[29 - 28][wd1]))
        {
            return 1;
        }
    }
    return 0;
}

static void
append(char *buf, size_t len, size_t *pos, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static void
append(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*pos >= len) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
    va_end(ap);
    if (n > 0) {
        *pos += (size_t) n;
    }
}

/* "February", "April or June", "February, April or June" */
static void
append_months(char *buf, size_t len, size_t *pos, unsigned months)
{
    int m, count = 0, total = 0;

    for (m = 1; m <= 12; m++) {
        total += months >> m & 1;
    }
    for (m = 1; m <= 12; m++) {
        if (months >> m & 1) {
            count++;
            append(buf, len, pos, "%s%s",
                   count == 1 ? "" : count == total ? " or " : ", ",
                   month_long[m]);
        }
    }
}

static void
never_fires_message(const hg_cron_t *c, const field_t *dom,
                    const char *dom_text, char *err, size_t errlen)
{
    size_t pos = 0;
    int d, count = 0, total = 0;

    append(err, errlen, &pos, "never fires: ");
    if (dom->last || dom->last_wday || dom->near_wday) {
        append(err, errlen, &pos, "day of month \"%s\" matches no day in ",
               dom_text);
        append_months(err, errlen, &pos, c->mon);
        return;
    }
    for (d = 1; d <= 31; d++) {
        total += (int) (dom->bits >> d & 1);
    }
    append(err, errlen, &pos, "day%s ", total > 1 ? "s" : "");
    for (d = 1; d <= 31; d++) {
        if (dom->bits >> d & 1) {
            count++;
            append(err, errlen, &pos, "%s%d",
                   count == 1 ? "" : count == total ? " and " : ", ", d);
        }
    }
    append(err, errlen, &pos, " %s not occur in ", total > 1 ? "do" : "does");
    append_months(err, errlen, &pos, c->mon);
}


/* ---- DST class --------------------------------------------------------- */

/*
 * cronie's daylight-saving classes, decided once per expression:
 *
 * - interval-like: the minute or the hour field begins with "*" ("*" "/15",
 *   "0 * * * *", @hourly; for 6 fields the same two fields), and @every.
 *   These follow real time: a wall time that does not exist (spring
 *   forward) does not fire; one that occurs twice (fall back) fires twice,
 *   once per occurrence.
 * - fixed-time: everything else ("30 2 * * *", "0,30 2 * * *", @daily). A
 *   matching wall time that occurs twice fires once, at its first
 *   occurrence; matching wall times inside a spring-forward gap fire once,
 *   at the first instant after the gap (the transition itself), however
 *   many of them the gap holds.
 *
 * Only the first character counts, as in cronie: "*" "/10 2 * * *" is
 * interval-like (its minute field begins with "*") although its hour is
 * fixed; "0 0-23/2 * * *" is fixed-time.
 */
static int
cron_is_interval_like(const char *minute, const char *hour)
{
    return minute[0] == '*' || hour[0] == '*';
}


/* ---- parsing ----------------------------------------------------------- */

/* The text, then the zone of a CRON_TZ= prefix (ZONE_LEN bytes of it at
 * ZONE_AT), each NUL-terminated, in one block with the expression. */
static hg_cron_t *
cron_alloc(const char *text, size_t len, size_t zone_at, size_t zone_len)
{
    hg_cron_t *c = calloc(1, sizeof(*c) + len + 1 + zone_len + 1);
    char *zone;

    if (c != NULL) {
        c->refs = 1;
        memcpy(c->text, text, len);
        c->text[len] = '\0';
        if (zone_len > 0) {
            zone = c->text + len + 1;
            memcpy(zone, text + zone_at, zone_len);
            zone[zone_len] = '\0';
            c->zone = zone;
        }
    }
    return c;
}

/*
 * "CRON_TZ=Zone rest" or "TZ=Zone rest" (cronie's CRON_TZ, and the TZ=
 * that other crons read the same way): the offset of "rest" in *REST_AT
 * and the zone's place in the text. HG_OK with *ZONE_LEN 0 when there is
 * no prefix. The zone is only a name here: hg_tz resolves it (the caller),
 * so the parser stays free of the zone database.
 */
static int
cron_prefix(const char *text, size_t len, size_t *zone_at, size_t *zone_len,
            size_t *rest_at, char *err, size_t errlen)
{
    static const char *const prefixes[] = { "CRON_TZ=", "TZ=" };
    size_t i, n, p, plen;

    *zone_len = 0;
    *rest_at = 0;
    for (i = 0; i < HG_NELEMS(prefixes); i++) {
        plen = strlen(prefixes[i]);
        if (len >= plen && memcmp(text, prefixes[i], plen) == 0) {
            break;
        }
    }
    if (i == HG_NELEMS(prefixes)) {
        return HG_OK;
    }
    for (n = plen; n < len && !is_blank(text[n]); n++) {
    }
    if (n == plen) {
        snprintf(err, errlen, "%.*s needs a time zone (e.g. \"%sEurope/"
                 "Berlin 0 2 * * *\")", (int) plen, text, prefixes[i]);
        return HG_ERROR;
    }
    for (p = n; p < len && is_blank(text[p]); p++) {
    }
    if (p == len) {
        snprintf(err, errlen, "%.*s needs a schedule after it", (int) n,
                 text);
        return HG_ERROR;
    }
    /* within the text: a short rest ("@daily") must not be read past */
    if ((len - p >= 8 && memcmp(text + p, "CRON_TZ=", 8) == 0)
        || (len - p >= 3 && memcmp(text + p, "TZ=", 3) == 0))
    {
        snprintf(err, errlen, "more than one time zone prefix");
        return HG_ERROR;
    }
    *zone_at = plen;
    *zone_len = n - plen;
    *rest_at = p;
    return HG_OK;
}

/* "1h30m", "90s", "7d": whole seconds only. */
static int
parse_every(const char *p, int64_t *out, char *err, size_t errlen)
{
    const char *start = p;
    int64_t total = 0, v, unit;
    int any = 0;

    if (*p == '\0') {
        snprintf(err, errlen, "@every needs a duration, e.g. \"@every 1h30m\"");
        return HG_ERROR;
    }
    while (*p != '\0') {
        if (!is_digit(*p)) {
            goto bad;
        }
        for (v = 0; is_digit(*p); p++) {
            if (v > 100000000) {
                goto too_long;
            }
            v = v * 10 + (*p - '0');
        }
        switch (*p) {
        case 's':
            unit = 1;
            break;
        case 'm':
            if (p[1] == 's') {
                goto sub_second;
            }
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        case 'u':
        case 'n':
            goto sub_second;
        default:
            if ((unsigned char) p[0] == 0xc2 && (unsigned char) p[1] == 0xb5) {
                goto sub_second;        /* µs */
            }
            goto bad;
        }
        p++;
        total += v * unit;
        if (total > 100LL * 366 * 86400) {
            goto too_long;
        }
        any = 1;
    }
    if (!any) {
        goto bad;
    }
    if (total == 0) {
        snprintf(err, errlen, "@every: \"%s\" is zero; the interval must be "
                 "at least 1s", start);
        return HG_ERROR;
    }
    *out = total;
    return HG_OK;

bad:
    snprintf(err, errlen, "@every: \"%s\" is not a duration (use s, m, h, "
             "d, e.g. 90s, 1h30m, 7d)", start);
    return HG_ERROR;
sub_second:
    snprintf(err, errlen, "@every: \"%s\": sub-second durations are not "
             "allowed (cron fires on whole seconds)", start);
    return HG_ERROR;
too_long:
    snprintf(err, errlen, "@every: \"%s\" is too long (at most 100 years)",
             start);
    return HG_ERROR;
}

static const struct {
    const char *name;
    const char *fields;
} macros[] = {
    { "@yearly", "0 0 1 1 *" },
    { "@annually", "0 0 1 1 *" },
    { "@monthly", "0 0 1 * *" },
    { "@weekly", "0 0 * * 0" },
    { "@daily", "0 0 * * *" },
    { "@midnight", "0 0 * * *" },
    { "@hourly", "0 * * * *" },
};

static int
word_eq(const char *a, size_t alen, const char *b)
{
    size_t i;

    if (strlen(b) != alen) {
        return 0;
    }
    for (i = 0; i < alen; i++) {
        if (upper(a[i]) != upper(b[i])) {
            return 0;
        }
    }
    return 1;
}

static int
parse_fields(hg_cron_t *c, const char *expr, char *err, size_t errlen)
{
    char buf[HG_CRON_MAX_TEXT + 1], *fields[7], *p;
    field_t f[F_COUNT];
    parse_ctx_t ctx;
    int nfields = 0, first, i, m;

    snprintf(buf, sizeof(buf), "%s", expr);
    for (p = buf; *p != '\0';) {
        while (is_blank(*p)) {
            *p++ = '\0';
        }
        if (*p == '\0') {
            break;
        }
        if (nfields < 7) {
            fields[nfields] = p;
        }
        nfields++;
        while (*p != '\0' && !is_blank(*p)) {
            p++;
        }
    }
    if (nfields != 5 && nfields != 6) {
        snprintf(err, errlen, "expected 5 or 6 fields, got %d", nfields);
        return HG_ERROR;
    }

    first = nfields == 6 ? F_SEC : F_MIN;
    memset(f, 0, sizeof(f));
    f[F_SEC].bits = 1;                  /* 5 fields: at second 0 */
    for (i = first; i < F_COUNT; i++) {
        ctx.index = i;
        ctx.number = i - first + 1;
        ctx.text = fields[i - first];
        ctx.err = err;
        ctx.errlen = errlen;
        if (parse_field(&ctx, &f[i]) != HG_OK) {
            return HG_ERROR;
        }
    }

    c->sec = f[F_SEC].bits;
    c->min = f[F_MIN].bits;
    c->hour = (uint32_t) f[F_HOUR].bits;
    c->mon = (uint16_t) f[F_MON].bits;
    c->interval_like = cron_is_interval_like(fields[F_MIN - first],
                                             fields[F_HOUR - first]);
    build_day_masks(c, &f[F_DOM], &f[F_DOW]);

    for (m = 1; m <= 12; m++) {
        if ((c->mon >> m & 1) && month_can_fire(c, m)) {
            return HG_OK;
        }
    }
    never_fires_message(c, &f[F_DOM], fields[F_DOM - first], err, errlen);
    return HG_ERROR;
}

hg_cron_t *
hg_cron_parse(const char *expr, char *err, size_t errlen)
{
    const char *start = expr, *end, *word_end, *arg, *body;
    hg_cron_t *c;
    size_t len, i, zone_at = 0, zone_len, rest_at;

    if (expr == NULL) {
        snprintf(err, errlen, "empty schedule");
        return NULL;
    }
    while (is_blank(*start)) {
        start++;
    }
    end = start + strlen(start);
    while (end > start && is_blank(end[-1])) {
        end--;
    }
    len = (size_t) (end - start);
    if (len == 0) {
        snprintf(err, errlen, "empty schedule");
        return NULL;
    }
    if (len > HG_CRON_MAX_TEXT) {
        snprintf(err, errlen, "schedule is too long (%zu characters, at most "
                 "%d)", len, HG_CRON_MAX_TEXT);
        return NULL;
    }

    if (cron_prefix(start, len, &zone_at, &zone_len, &rest_at, err, errlen)
        != HG_OK)
    {
        return NULL;
    }
    c = cron_alloc(start, len, zone_at, zone_len);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        errno = ENOMEM;
        return NULL;
    }
    body = c->text + rest_at;

    if (body[0] != '@') {
        if (parse_fields(c, body, err, errlen) != HG_OK) {
            goto failed;
        }
        return c;
    }

    for (word_end = body; *word_end != '\0' && !is_blank(*word_end);) {
        word_end++;
    }
    arg = word_end;
    while (is_blank(*arg)) {
        arg++;
    }
    if (word_eq(body, (size_t) (word_end - body), "@reboot")) {
        if (*arg != '\0') {
            snprintf(err, errlen, "@reboot takes no argument (got \"%s\")",
                     arg);
            goto failed;
        }
        c->reboot = 1;
        return c;
    }
    if (word_eq(body, (size_t) (word_end - body), "@every")) {
        if (parse_every(arg, &c->every, err, errlen) != HG_OK) {
            goto failed;
        }
        c->interval_like = 1;
        return c;
    }
    for (i = 0; i < HG_NELEMS(macros); i++) {
        if (word_eq(body, (size_t) (word_end - body), macros[i].name)) {
            if (*arg != '\0') {
                snprintf(err, errlen, "%s takes no argument (got \"%s\")",
                         macros[i].name, arg);
                goto failed;
            }
            if (parse_fields(c, macros[i].fields, err, errlen) != HG_OK) {
                goto failed;
            }
            return c;
        }
    }
    snprintf(err, errlen, "\"%.*s\" is not a macro (@yearly, @annually, "
             "@monthly, @weekly, @daily, @midnight, @hourly, @reboot, "
             "@every DURATION)", (int) (word_end - body), body);

failed:
    free(c);
    return NULL;
}

void
hg_cron_free(hg_cron_t *cron)
{
    if (cron != NULL && --cron->refs == 0) {
        free(cron);
    }
}

hg_cron_t *
hg_cron_ref(hg_cron_t *cron)
{
    if (cron != NULL) {
        cron->refs++;
    }
    return cron;
}

int64_t
hg_cron_every_seconds(const hg_cron_t *cron)
{
    return cron->every;
}

int
hg_cron_is_interval_like(const hg_cron_t *cron)
{
    return cron->interval_like;
}

const char *
hg_cron_text(const hg_cron_t *cron)
{
    return cron->text;
}

int
hg_cron_is_reboot(const hg_cron_t *cron)
{
    return cron->reboot;
}

const char *
hg_cron_zone(const hg_cron_t *cron)
{
    return cron->zone;
}


/* ---- matching and searching -------------------------------------------- */

static int
ctz32(uint32_t x)
{
    return __builtin_ctz(x);
}

static int
ctz64(uint64_t x)
{
    return __builtin_ctzll(x);
}

int
hg_cron_matches(const hg_cron_t *c, int64_t year, int mon, int mday,
                int hour, int min, int sec)
{
    int dim;

    if (c->every || c->reboot || mon < 1 || mon > 12 || hour < 0 || hour > 23 || min < 0
        || min > 59 || sec < 0 || sec > 59)
    {
        return 0;
    }
    dim = hg_days_in_month(year, mon);
    if (mday < 1 || mday > dim) {
        return 0;
    }
    return (c->mon >> mon & 1) && (c->hour >> hour & 1)
           && (c->min >> min & 1) && (c->sec >> sec & 1)
           && (c->days[dim - 28][hg_weekday(hg_days_from_civil(year, mon, 1))]
               >> mday & 1);
}

/*
 * The first matching wall time at or after w and before wend, wall times
 * being seconds since 1970-01-01T00:00:00 local. Whole months, days, hours
 * and minutes that cannot match are skipped with one mask test each, so
 * the cost is a handful of steps whatever the expression.
 */
static int
cron_wall_next(const hg_cron_t *c, int64_t w, int64_t wend, int64_t *out)
{
    int64_t days, sod, y, r;
    int m, d, hh, mm, ss, dim = 31;
    uint32_t mask;
    uint64_t bits;

    if (w >= wend) {
        return 0;
    }
    days = hg_floor_div(w, 86400);
    sod = w - days * 86400;
    hh = (int) (sod / 3600);
    mm = (int) (sod / 60 % 60);
    ss = (int) (sod % 60);
    hg_civil_from_days(days, &y, &m, &d);

    for (;;) {
        if (!(c->mon >> m & 1)) {
            goto next_month;
        }
        dim = hg_days_in_month(y, m);
        mask = c->days[dim - 28][hg_weekday(days - d + 1)]
               & ~((1u << d) - 1);
        if (mask == 0) {
            goto next_month;
        }
        if (ctz32(mask) != d) {
            days += ctz32(mask) - d;
            d = ctz32(mask);
            hh = mm = ss = 0;
            if (days * 86400 >= wend) {
                return 0;
            }
        }

        mask = c->hour & ~((1u << hh) - 1);
        if (mask == 0) {
            goto next_day;
        }
        if (ctz32(mask) != hh) {
            hh = ctz32(mask);
            mm = ss = 0;
        }
        bits = c->min & ~((1ull << mm) - 1);
        if (bits == 0) {
            goto next_hour;
        }
        if (ctz64(bits) != mm) {
            mm = ctz64(bits);
            ss = 0;
        }
        bits = c->sec & ~((1ull << ss) - 1);
        if (bits == 0) {
            goto next_minute;
        }
        ss = ctz64(bits);

        r = days * 86400 + hh * 3600 + mm * 60 + ss;
        if (r >= wend) {
            return 0;
        }
        *out = r;
        return 1;

    next_minute:
        ss = 0;
        if (++mm < 60) {
            continue;
        }
    next_hour:
        mm = ss = 0;
        if (++hh < 24) {
            continue;
        }
    next_day:
        hh = mm = ss = 0;
        days++;
        if (days * 86400 >= wend) {
            return 0;
        }
        if (++d <= dim) {
            continue;
        }
    next_month:
        mask = c->mon & ~((2u << m) - 1);
        if (mask != 0) {
            m = ctz32(mask);
        } else {
            y++;
            m = ctz32(c->mon);
        }
        d = 1;
        hh = mm = ss = 0;
        days = hg_days_from_civil(y, m, 1);
        if (days * 86400 >= wend) {
            return 0;
        }
    }
}

/*
 * The search walks the zone's spans of constant UTC offset from `after`
 * on. Within a span wall time is instant + offset, so the next match there
 * is one cron_wall_next; between spans the DST rules above apply:
 * - a span entered by springing forward (prev_offset < offset) skipped the
 *   wall times [start + prev_offset, start + offset): a fixed-time schedule
 *   that matches any of them fires once at `start`;
 * - a span entered by falling back (prev_offset > offset) shows again the
 *   wall times [start + offset, start + prev_offset): a fixed-time schedule
 *   skips them there, having fired at their first occurrence.
 * Interval-like schedules need neither: the gap is simply never searched
 * and the repeated hour is searched twice, once in each span.
 */
int
hg_cron_next(const hg_cron_t *c, const hg_tz_t *tz, int64_t after,
             int64_t *next)
{
    hg_tz_span_t sp;
    int64_t t, end, limit, w, occ[2];
    int fixed = !c->interval_like;

    if (c->every) {
        if (after < HG_TZ_MIN_TIME - 1 || after > HG_TZ_MAX_TIME - c->every) {
            return HG_ERROR;
        }
        *next = after + c->every;
        return HG_OK;
    }
    if (c->reboot || after < HG_TZ_MIN_TIME - 1 || after >= HG_TZ_MAX_TIME) {
        return HG_ERROR;
    }
    if (tz == NULL) {
        tz = hg_tz_utc();
    }

    t = after + 1;
    limit = t + HG_CRON_SEARCH_YEARS * 366LL * 86400;
    if (limit > HG_TZ_MAX_TIME + 1) {
        limit = HG_TZ_MAX_TIME + 1;
    }

    for (;;) {
        hg_tz_span(tz, t, &sp);

        if (fixed && sp.prev_offset < sp.offset && sp.start > after
            && sp.start != INT64_MIN
            && cron_wall_next(c, sp.start + sp.prev_offset,
                              sp.start + sp.offset, &w))
        {
            *next = sp.start;
            return HG_OK;
        }

        end = sp.end < limit ? sp.end : limit;
        w = t + sp.offset;
        while (cron_wall_next(c, w, end + sp.offset, &w)) {
            if (fixed && sp.prev_offset > sp.offset
                && w < sp.start + sp.prev_offset
                && hg_tz_from_wall(tz, w, occ) == 2 && occ[0] < w - sp.offset)
            {
                /* a second occurrence; so are all the walls after it up to
                 * the end of the repeated stretch */
                w = sp.start + sp.prev_offset;
                continue;
            }
            *next = w - sp.offset;
            return HG_OK;
        }
        if (end >= limit) {
            return HG_ERROR;
        }
        t = end;
    }
}
