#include "hg_core.h"

/*
 * hg_units: durations ("1h30m", "500ms", "7d") and sizes ("64KiB", "10MB",
 * "512") to numbers and back.
 *
 * The grammar is deliberately strict, because a lenient parser turns typos
 * into valid values: a duration is one or more <digits><unit> with units
 * from largest to smallest, each at most once ("1m30m" is rejected, not
 * read as 31 minutes); no spaces, signs or fractions. "0" alone is zero
 * (zero needs no unit). A size is <digits> with an optional unit. Every
 * multiplication and addition is checked, so no text can overflow into a
 * small or negative value. The suggest functions are the lenient side: they
 * only ever feed hints in error messages.
 */

#include <ctype.h>
#include <math.h>
#include <strings.h>

#include "hg_units.h"

typedef struct {
    const char *name;
    int64_t ms;
} hg_duration_unit_t;

/* Largest first: the order hg_format_duration writes and the order the
 * parser requires. */
static const hg_duration_unit_t hg_duration_units[] = {
    { "d", 86400000LL },
    { "h", 3600000LL },
    { "m", 60000LL },
    { "s", 1000LL },
    { "ms", 1LL },
};

typedef struct {
    const char *name;               /* lower case; compared ignoring case */
    uint64_t bytes;
} hg_size_unit_t;

static const hg_size_unit_t hg_size_units[] = {
    { "", 1ULL }, { "b", 1ULL },
    { "k", 1ULL << 10 }, { "kib", 1ULL << 10 }, { "kb", 1000ULL },
    { "m", 1ULL << 20 }, { "mib", 1ULL << 20 }, { "mb", 1000000ULL },
    { "g", 1ULL << 30 }, { "gib", 1ULL << 30 }, { "gb", 1000000000ULL },
    { "t", 1ULL << 40 }, { "tib", 1ULL << 40 }, { "tb", 1000000000000ULL },
};

/* Reads a run of decimal digits into *value; NULL on no digit or overflow. */
static const char *
hg_units_digits(const char *p, uint64_t max, uint64_t *value)
{
    uint64_t v = 0;

    if (!isdigit((unsigned char) *p)) {
        return NULL;
    }
    while (isdigit((unsigned char) *p)) {
        uint64_t d = (uint64_t) (*p - '0');
        if (v > (max - d) / 10) {
            return NULL;
        }
        v = v * 10 + d;
        p++;
    }
    *value = v;
    return p;
}

HG_EXPORT int
hg_parse_duration(const char *text, int64_t *ms)
{
    const char *p;
    int64_t total = 0;
    size_t last = HG_NELEMS(hg_duration_units);   /* no unit seen yet */

    if (text == NULL || *text == '\0') {
        return HG_ERROR;
    }
    if (strcmp(text, "0") == 0) {
        *ms = 0;
        return HG_OK;
    }

    p = text;
    while (*p != '\0') {
        uint64_t n;
        size_t len, i;
        const char *unit;

        p = hg_units_digits(p, (uint64_t) INT64_MAX, &n);
        if (p == NULL) {
            return HG_ERROR;
        }
        unit = p;
        while (isalpha((unsigned char) *p)) {
            p++;
        }
        len = (size_t) (p - unit);
        for (i = 0; i < HG_NELEMS(hg_duration_units); i++) {
            if (strlen(hg_duration_units[i].name) == len
                && memcmp(hg_duration_units[i].name, unit, len) == 0)
            {
                break;
            }
        }
        /* unknown or missing unit, or units not strictly decreasing */
        if (i == HG_NELEMS(hg_duration_units)
            || (last != HG_NELEMS(hg_duration_units) && i <= last))
        {
            return HG_ERROR;
        }
        last = i;

        if (n > (uint64_t) (INT64_MAX / hg_duration_units[i].ms)) {
            return HG_ERROR;
        }
        if ((int64_t) n * hg_duration_units[i].ms > INT64_MAX - total) {
            return HG_ERROR;
        }
        total += (int64_t) n * hg_duration_units[i].ms;
    }

    *ms = total;
    return HG_OK;
}

HG_EXPORT int
hg_parse_size(const char *text, uint64_t *bytes)
{
    const char *p, *unit;
    uint64_t n;
    size_t i;

    if (text == NULL) {
        return HG_ERROR;
    }
    p = hg_units_digits(text, UINT64_MAX, &n);
    if (p == NULL) {
        return HG_ERROR;
    }
    unit = p;
    for (i = 0; i < HG_NELEMS(hg_size_units); i++) {
        if (strcasecmp(hg_size_units[i].name, unit) == 0) {
            break;
        }
    }
    if (i == HG_NELEMS(hg_size_units)) {
        return HG_ERROR;
    }
    if (n > UINT64_MAX / hg_size_units[i].bytes) {
        return HG_ERROR;
    }
    *bytes = n * hg_size_units[i].bytes;
    return HG_OK;
}

char *
hg_format_duration(int64_t ms, char *buf, size_t len)
{
    uint64_t rest;
    size_t i, off = 0;

    if (len == 0) {
        return buf;
    }
    buf[0] = '\0';
    if (ms == 0) {
        snprintf(buf, len, "0s");
        return buf;
    }
    if (ms < 0) {
        snprintf(buf, len, "-");
        off = 1;
        /* negate in unsigned arithmetic: INT64_MIN has no positive twin */
        rest = (uint64_t) 0 - (uint64_t) ms;
    } else {
        rest = (uint64_t) ms;
    }

    for (i = 0; i < HG_NELEMS(hg_duration_units) && rest > 0; i++) {
        uint64_t unit = (uint64_t) hg_duration_units[i].ms;
        uint64_t n = rest / unit;
        int w;

        if (n == 0) {
            continue;
        }
        rest -= n * unit;
        if (off >= len) {
            break;
        }
        w = snprintf(buf + off, len - off, "%" PRIu64 "%s", n,
                     hg_duration_units[i].name);
        if (w < 0) {
            break;
        }
        off += (size_t) w;
    }
    return buf;
}

char *
hg_format_size(uint64_t bytes, char *buf, size_t len)
{
    /* binary before decimal at each magnitude, largest magnitude first */
    static const hg_size_unit_t units[] = {
        { "TiB", 1ULL << 40 }, { "TB", 1000000000000ULL },
        { "GiB", 1ULL << 30 }, { "GB", 1000000000ULL },
        { "MiB", 1ULL << 20 }, { "MB", 1000000ULL },
        { "KiB", 1ULL << 10 }, { "KB", 1000ULL },
    };
    size_t i;

    if (len == 0) {
        return buf;
    }
    for (i = 0; bytes != 0 && i < HG_NELEMS(units); i++) {
        if (bytes % units[i].bytes == 0) {
            snprintf(buf, len, "%" PRIu64 "%s", bytes / units[i].bytes,
                     units[i].name);
            return buf;
        }
    }
    snprintf(buf, len, "%" PRIu64, bytes);
    return buf;
}

/* --- suggestions ------------------------------------------------------ */

typedef struct {
    const char *word;
    double factor;
} hg_units_word_t;

static const hg_units_word_t hg_duration_words[] = {
    { "ms", 1 }, { "msec", 1 }, { "msecs", 1 }, { "milli", 1 },
    { "millis", 1 }, { "millisecond", 1 }, { "milliseconds", 1 },
    { "s", 1e3 }, { "sec", 1e3 }, { "secs", 1e3 }, { "second", 1e3 },
    { "seconds", 1e3 },
    { "m", 6e4 }, { "min", 6e4 }, { "mins", 6e4 }, { "minute", 6e4 },
    { "minutes", 6e4 },
    { "h", 3.6e6 }, { "hr", 3.6e6 }, { "hrs", 3.6e6 }, { "hour", 3.6e6 },
    { "hours", 3.6e6 },
    { "d", 8.64e7 }, { "day", 8.64e7 }, { "days", 8.64e7 },
    { "w", 6.048e8 }, { "week", 6.048e8 }, { "weeks", 6.048e8 },
};

static const hg_units_word_t hg_size_words[] = {
    { "b", 1 }, { "byte", 1 }, { "bytes", 1 },
    { "k", 1024.0 }, { "kib", 1024.0 }, { "kibibyte", 1024.0 },
    { "kibibytes", 1024.0 }, { "kb", 1e3 }, { "kilobyte", 1e3 },
    { "kilobytes", 1e3 },
    { "m", 1048576.0 }, { "mib", 1048576.0 }, { "mebibyte", 1048576.0 },
    { "mebibytes", 1048576.0 }, { "mb", 1e6 }, { "megabyte", 1e6 },
    { "megabytes", 1e6 },
    { "g", 1073741824.0 }, { "gib", 1073741824.0 },
    { "gibibyte", 1073741824.0 }, { "gibibytes", 1073741824.0 },
    { "gb", 1e9 }, { "gigabyte", 1e9 }, { "gigabytes", 1e9 },
};

/*
 * Reads "<number> <word>" pairs leniently (spaces, commas, "and",
 * fractions), multiplying each number by its word's factor. An unknown or
 * missing word uses dflt_unknown / dflt_missing (0: give up). Returns the
 * total, or -1 when the text holds nothing usable.
 */
static double
hg_units_lenient(const char *text, const hg_units_word_t *words,
                 size_t nwords, double dflt_unknown, double dflt_missing,
                 bool *tidy)
{
    const char *p = text;
    double total = 0;
    int pairs = 0;

    /* tidy: written as the strict grammar would want it, bar the order of
     * the units (so a sum would only guess at what was meant) */
    *tidy = true;

    while (*p != '\0') {
        char word[16];
        size_t wlen = 0, i;
        double n, factor;
        char *end;

        while (*p == ' ' || *p == ',' || *p == '\t') {
            *tidy = false;
            p++;
        }
        if (strncasecmp(p, "and ", 4) == 0) {
            *tidy = false;
            p += 4;
            continue;
        }
        if (*p == '\0') {
            break;
        }
        if (!isdigit((unsigned char) *p) && *p != '.') {
            return -1;
        }
        errno = 0;
        n = strtod(p, &end);
        if (end == p || errno != 0 || !isfinite(n) || n < 0) {
            return -1;
        }
        if (memchr(p, '.', (size_t) (end - p)) != NULL
            || memchr(p, 'e', (size_t) (end - p)) != NULL)
        {
            *tidy = false;
        }
        p = end;
        while (*p == ' ') {
            *tidy = false;
            p++;
        }
        while (isalpha((unsigned char) *p)) {
            if (isupper((unsigned char) *p)) {
                *tidy = false;
            }
            if (wlen + 1 < sizeof(word)) {
                word[wlen++] = (char) tolower((unsigned char) *p);
            }
            p++;
        }
        word[wlen] = '\0';

        if (wlen == 0) {
            factor = dflt_missing;
            *tidy = false;
        } else {
            factor = dflt_unknown;
            for (i = 0; i < nwords; i++) {
                if (strcmp(words[i].word, word) == 0) {
                    factor = words[i].factor;
                    break;
                }
            }
            if (i == nwords || (strcmp(word, "ms") != 0
                                && strpbrk(word, "smhd") != word)
                || strlen(word) > 2 || (strlen(word) == 2
                                        && strcmp(word, "ms") != 0))
            {
                *tidy = false;
            }
        }
        if (factor <= 0) {
            return -1;
        }
        total += n * factor;
        pairs++;
    }
    return pairs > 0 ? total : -1;
}

int
hg_suggest_duration(const char *text, char *buf, size_t len)
{
    double ms;
    bool tidy;

    if (text == NULL) {
        return HG_ERROR;
    }
    /* unknown unit: minutes; no unit at all: seconds */
    ms = hg_units_lenient(text, hg_duration_words,
                          HG_NELEMS(hg_duration_words), 6e4, 1e3, &tidy);
    /* "1m30m" or "30s1m": units out of order; summing them would only
     * guess at what was meant */
    if (tidy || ms < 0 || ms > 9e15 || ms != (double) (int64_t) ms) {
        return HG_ERROR;
    }
    hg_format_duration((int64_t) ms, buf, len);
    return HG_OK;
}

int
hg_suggest_size(const char *text, char *buf, size_t len)
{
    double bytes;
    bool tidy;

    if (text == NULL) {
        return HG_ERROR;
    }
    bytes = hg_units_lenient(text, hg_size_words, HG_NELEMS(hg_size_words),
                             0, 1, &tidy);
    if (bytes < 0 || bytes > 9e15 || bytes != (double) (int64_t) bytes) {
        return HG_ERROR;
    }
    hg_format_size((uint64_t) bytes, buf, len);
    return HG_OK;
}
