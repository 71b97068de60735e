/*
 * hg_client_print.c owns the client's text for people: local times,
 * relative times ("in 3m"), durations with units, and aligned tables.
 * Pure functions of their arguments and the local zone: no I/O but the
 * FILE a table is printed to, never the process's TZ changed, and never
 * JSON built or parsed by hand (an API time is read with hg_tz).
 */

#include "hg_core.h"

#include <ctype.h>

#include "hg_client.h"
#include "hg_tz.h"

/* The two largest units of MS, "3m 12s", "2h", "3d 4h"; below a minute,
 * seconds alone. */
static char *
hg_client_two_units(int64_t ms, char *buf, size_t len)
{
    static const struct { const char *name; int64_t ms; } units[] = {
        { "d", 86400000LL }, { "h", 3600000LL }, { "m", 60000LL },
        { "s", 1000LL },
    };
    int64_t first, second;
    size_t i;

    for (i = 0; i + 1 < HG_NELEMS(units) && ms < units[i].ms; i++) {
    }
    first = ms / units[i].ms;
    if (i + 1 == HG_NELEMS(units)) {
        snprintf(buf, len, "%" PRId64 "s", first);
        return buf;
    }
    second = (ms % units[i].ms) / units[i + 1].ms;
    if (second == 0) {
        snprintf(buf, len, "%" PRId64 "%s", first, units[i].name);
    } else {
        snprintf(buf, len, "%" PRId64 "%s %" PRId64 "%s", first,
                 units[i].name, second, units[i + 1].name);
    }
    return buf;
}

char *
hg_client_relative(int64_t then_ms, int64_t now_ms, char *buf, size_t len)
{
    char span[HG_CLIENT_TEXT_MAX];
    int64_t d = then_ms - now_ms;

    /* A second either way is "now": the clocks of the client and of the
     * daemon's answer are not the same instant anyway. */
    if (d > -1000 && d < 1000) {
        snprintf(buf, len, "now");
    } else if (d > 0) {
        snprintf(buf, len, "in %s", hg_client_two_units(d, span,
                                                        sizeof(span)));
    } else {
        snprintf(buf, len, "%s ago", hg_client_two_units(-d, span,
                                                         sizeof(span)));
    }
    return buf;
}

char *
hg_client_duration(int64_t ms, char *buf, size_t len)
{
    if (ms < 0) {
        snprintf(buf, len, "-");
    } else if (ms < 1000) {
        snprintf(buf, len, "%" PRId64 "ms", ms);
    } else if (ms < 60000) {
        /* tenths, rounded down: 59.96 s must not print as "60.0s" */
        snprintf(buf, len, "%" PRId64 ".%" PRId64 "s", ms / 1000,
                 ms % 1000 / 100);
    } else {
        hg_client_two_units(ms, buf, len);
    }
    return buf;
}

char *
hg_client_local_time(int64_t t_s, char *buf, size_t len)
{
    const hg_tz_t *tz;
    struct tm tm;
    char err[128];

    tz = hg_tz_get(NULL, err, sizeof(err));
    if (t_s < 0 || tz == NULL
        || (hg_tz_localtime(tz, t_s, &tm),
            strftime(buf, len, "%a %Y-%m-%d %H:%M:%S %Z", &tm) == 0))
    {
        snprintf(buf, len, "-");
    }
    return buf;
}

int64_t
hg_client_api_time(const json_t *value)
{
    const char *text = json_string_value(value), *dot, *p;
    char err[128];
    int64_t t, ms = 0;
    int digits = 0;

    if (text == NULL
        || hg_tz_parse_time(hg_tz_utc(), text, &t, err, sizeof(err))
           != HG_OK)
    {
        return -1;
    }
    /* hg_tz drops the fraction; durations between two API times keep it */
    dot = strchr(text, '.');
    if (dot != NULL) {
        for (p = dot + 1; isdigit((unsigned char) *p) && digits < 3; p++) {
            ms = ms * 10 + (*p - '0');
            digits++;
        }
        for (; digits < 3; digits++) {
            ms *= 10;
        }
    }
    return t * 1000 + ms;
}

/* --- tables ------------------------------------------------------------ */

int
hg_client_table_init(hg_client_table_t *t, size_t ncols,
                     const char *const *header)
{
    memset(t, 0, sizeof(*t));
    t->ncols = ncols;
    return hg_client_table_add(t, header);
}

int
hg_client_table_add(hg_client_table_t *t, const char *const *cells)
{
    char **grown;
    size_t i, cap;

    if (t->failed) {
        return HG_ERROR;
    }
    if (t->nrows == t->cap) {
        cap = t->cap == 0 ? 16 : t->cap * 2;
        grown = realloc(t->cells, cap * t->ncols * sizeof(char *));
        if (grown == NULL) {
            t->failed = true;
            return HG_ERROR;
        }
        t->cells = grown;
        t->cap = cap;
    }
    for (i = 0; i < t->ncols; i++) {
        t->cells[t->nrows * t->ncols + i] =
            strdup(cells[i] != NULL && cells[i][0] != '\0' ? cells[i] : "-");
        if (t->cells[t->nrows * t->ncols + i] == NULL) {
            t->failed = true;
        }
    }
    t->nrows++;
    return t->failed ? HG_ERROR : HG_OK;
}

int
hg_client_table_print(const hg_client_table_t *t, FILE *out)
{
    size_t *width, r, c, w;

    if (t->failed) {
        return HG_ERROR;
    }
    width = calloc(t->ncols, sizeof(size_t));
    if (width == NULL) {
        return HG_ERROR;
    }
    for (r = 0; r < t->nrows; r++) {
        for (c = 0; c < t->ncols; c++) {
            w = strlen(t->cells[r * t->ncols + c]);
            width[c] = w > width[c] ? w : width[c];
        }
    }
    for (r = 0; r < t->nrows; r++) {
        for (c = 0; c < t->ncols; c++) {
            /* the last column is not padded: no trailing blanks */
            if (c + 1 < t->ncols) {
                fprintf(out, "%-*s  ", (int) width[c],
                        t->cells[r * t->ncols + c]);
            } else {
                fprintf(out, "%s\n", t->cells[r * t->ncols + c]);
            }
        }
    }
    free(width);
    return HG_OK;
}

void
hg_client_table_free(hg_client_table_t *t)
{
    size_t i;

    for (i = 0; t->cells != NULL && i < t->nrows * t->ncols; i++) {
        free(t->cells[i]);
    }
    free(t->cells);
    memset(t, 0, sizeof(*t));
}
