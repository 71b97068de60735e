/*
 * hg_metrics.c: the metrics registry and its Prometheus text rendering
 * (see hg_metrics.h).
 */

#include "hg_core.h"

#include <math.h>

#include "hg_map.h"
#include "hg_metrics.h"

/* Label values are joined with this into a series' key. */
#define HG_METRIC_SEP  '\x1f'

/* Room for a number as rendered: %.17g of a double is at most 24. */
#define HG_METRIC_NUMBER_MAX  32

typedef struct hg_series_s {
    struct hg_series_s *next;       /* in first-use order */
    /* The values joined (the map's key), then a copy split into the
     * values: one allocation. */
    char *key;
    const char *values[HG_METRIC_LABELS_MAX];   /* into key's copy */
    /* The labels as rendered (l1="v1",... escaped), made once: a scrape
     * repeats them on every bucket line. */
    char *labels;
    size_t labels_len;
    double value;                   /* counter, gauge; histogram: sum */
    uint64_t count;                 /* histogram: samples */
    uint64_t *buckets;              /* histogram: samples per bound */
} hg_series_t;

struct hg_metric_s {
    struct hg_metric_s *next;
    const char *name;
    const char *help;
    hg_metric_type_t type;
    const char *labels[HG_METRIC_LABELS_MAX];
    size_t nlabels;
    double *bounds;
    /* Each bound as rendered in le="...", then "+Inf": made once. */
    char (*le)[HG_METRIC_NUMBER_MAX];
    size_t nbounds;
    hg_map_t series;                /* key -> hg_series_t */
    hg_series_t *head, *tail;
};

struct hg_metrics_s {
    hg_metric_t *head, *tail;
};

static const char *hg_metrics_format(double v, char *buf, size_t size);
static char *hg_metrics_labels_text(const hg_metric_t *f,
                                    const hg_series_t *s, size_t *len);

hg_metrics_t *
hg_metrics_new(void)
{
    return calloc(1, sizeof(hg_metrics_t));
}

static void
hg_metric_free(hg_metric_t *f)
{
    hg_series_t *s, *next;

    for (s = f->head; s != NULL; s = next) {
        next = s->next;
        free(s->key);
        free(s->labels);
        free(s->buckets);
        free(s);
    }
    hg_map_free(&f->series);
    free(f->bounds);
    free(f->le);
    free(f);
}

void
hg_metrics_free(hg_metrics_t *metrics)
{
    hg_metric_t *f, *next;

    if (metrics == NULL) {
        return;
    }
    for (f = metrics->head; f != NULL; f = next) {
        next = f->next;
        hg_metric_free(f);
    }
    free(metrics);
}

hg_metric_t *
hg_metrics_family(hg_metrics_t *metrics, const char *name, const char *help,
                  hg_metric_type_t type, const char *const *labels,
                  const double *bounds, size_t nbounds)
{
    char buf[HG_METRIC_NUMBER_MAX];
    hg_metric_t *f;
    size_t i;

    if (metrics == NULL) {
        return NULL;
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return NULL;
    }
    f->name = name;
    f->help = help;
    f->type = type;
    while (labels != NULL && labels[f->nlabels] != NULL
           && f->nlabels < HG_METRIC_LABELS_MAX)
    {
        f->labels[f->nlabels] = labels[f->nlabels];
        f->nlabels++;
    }
    if (type == HG_METRIC_HISTOGRAM) {
        f->bounds = malloc((nbounds + 1) * sizeof(double));
        f->le = malloc((nbounds + 1) * sizeof(*f->le));
        if (f->bounds == NULL || f->le == NULL) {
            free(f->bounds);
            free(f->le);
            free(f);
            return NULL;
        }
        for (i = 0; i < nbounds; i++) {
            f->bounds[i] = bounds[i];
            snprintf(f->le[i], sizeof(f->le[i]), "%s",
                     hg_metrics_format(bounds[i], buf, sizeof(buf)));
        }
        memcpy(f->le[nbounds], "+Inf", sizeof("+Inf"));
        f->nbounds = nbounds;
    }
    hg_map_init(&f->series);
    if (metrics->tail != NULL) {
        metrics->tail->next = f;
    } else {
        metrics->head = f;
    }
    metrics->tail = f;
    return f;
}

/* VALUES joined into BUF (or a new allocation when longer; *HEAP then). */
static char *
hg_metric_key(const hg_metric_t *f, const char *const *values, char *buf,
              size_t size, char **heap)
{
    size_t i, len = 0, need = 1;
    char *key = buf;

    *heap = NULL;
    for (i = 0; i < f->nlabels; i++) {
        need += strlen(values[i] != NULL ? values[i] : "") + 1;
    }
    if (need > size) {
        key = *heap = malloc(need);
        if (key == NULL) {
            return NULL;
        }
    }
    for (i = 0; i < f->nlabels; i++) {
        const char *v = values[i] != NULL ? values[i] : "";
        size_t n = strlen(v);
        if (i > 0) {
            key[len++] = HG_METRIC_SEP;
        }
        memcpy(key + len, v, n);
        len += n;
    }
    key[len] = '\0';
    return key;
}

static hg_series_t *
hg_metric_series(hg_metric_t *f, const char *const *values, bool create)
{
    char buf[256], *heap, *key, *p;
    hg_series_t *s = NULL;
    size_t i, len;

    if (f == NULL) {
        return NULL;
    }
    if (f->nlabels == 0 && f->head != NULL) {
        return f->head;
    }
    key = hg_metric_key(f, values, buf, sizeof(buf), &heap);
    if (key == NULL) {
        return NULL;
    }
    s = hg_map_get(&f->series, key);
    if (s != NULL || !create) {
        free(heap);
        return s;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        goto failed;
    }
    len = strlen(key);
    s->key = malloc(2 * len + 2);
    if (s->key == NULL) {
        goto failed;
    }
    memcpy(s->key, key, len + 1);
    memcpy(s->key + len + 1, key, len + 1);
    free(heap);
    heap = NULL;
    if (f->type == HG_METRIC_HISTOGRAM) {
        s->buckets = calloc(f->nbounds + 1, sizeof(uint64_t));
        if (s->buckets == NULL) {
            goto failed;
        }
    }
    /* The values, split out of the second copy. */
    for (i = 0, p = s->key + len + 1; i < f->nlabels; i++) {
        char *sep = strchr(p, HG_METRIC_SEP);
        s->values[i] = p;
        if (sep != NULL) {
            *sep = '\0';
            p = sep + 1;
        } else {
            p += strlen(p);
        }
    }
    s->labels = hg_metrics_labels_text(f, s, &s->labels_len);
    if (s->labels == NULL || hg_map_put(&f->series, s->key, s) != HG_OK) {
        goto failed;
    }
    if (f->tail != NULL) {
        f->tail->next = s;
    } else {
        f->head = s;
    }
    f->tail = s;
    return s;

failed:
    free(heap);
    if (s != NULL) {
        free(s->key);
        free(s->labels);
        free(s->buckets);
        free(s);
    }
    return NULL;
}

void
hg_metric_add(hg_metric_t *family, const char *const *values, double v)
{
    hg_series_t *s = hg_metric_series(family, values, true);

    if (s != NULL) {
        s->value += v;
    }
}

void
hg_metric_set(hg_metric_t *family, const char *const *values, double v)
{
    hg_series_t *s = hg_metric_series(family, values, true);

    if (s != NULL) {
        s->value = v;
    }
}

void
hg_metric_observe(hg_metric_t *family, const char *const *values, double v)
{
    hg_series_t *s = hg_metric_series(family, values, true);
    size_t i;

    if (s == NULL || s->buckets == NULL) {
        return;
    }
    for (i = 0; i < family->nbounds && v > family->bounds[i]; i++) {
        continue;
    }
    s->buckets[i]++;
    s->count++;
    s->value += v;
}

double
hg_metric_value(const hg_metric_t *family, const char *const *values)
{
    hg_series_t *s = hg_metric_series((hg_metric_t *) family, values, false);

    if (s == NULL) {
        return 0.0;
    }
    return family->type == HG_METRIC_HISTOGRAM ? (double) s->count
                                               : s->value;
}

/* --- rendering ------------------------------------------------------- */

/*
 * A scrape is built in memory and handed to OUT in large pieces: one stdio
 * call per character or per number was what a scrape cost (with 1,000
 * jobs, 1.3 MB and 20,000 lines, fputc and vfprintf took 80% of the
 * master's time under a stream of scrapes, in the loop that fires the
 * jobs). Labels and bounds are rendered once, when a series or a family
 * is made; counts are written by hand.
 */
typedef struct {
    FILE *out;
    size_t len;
    bool failed;
    char buf[16384];
} hg_metrics_out_t;

static void
hg_metrics_flush(hg_metrics_out_t *o)
{
    if (o->len > 0 && fwrite(o->buf, 1, o->len, o->out) != o->len) {
        o->failed = true;
    }
    o->len = 0;
}

static void
hg_metrics_put(hg_metrics_out_t *o, const char *s, size_t n)
{
    if (n > sizeof(o->buf) - o->len) {
        hg_metrics_flush(o);
        if (n > sizeof(o->buf)) {
            if (fwrite(s, 1, n, o->out) != n) {
                o->failed = true;
            }
            return;
        }
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void
hg_metrics_puts(hg_metrics_out_t *o, const char *s)
{
    hg_metrics_put(o, s, strlen(s));
}

static void
hg_metrics_uint(hg_metrics_out_t *o, uint64_t v)
{
    char digits[20];
    size_t n = sizeof(digits);

    do {
        digits[--n] = (char) ('0' + v % 10);
        v /= 10;
    } while (v > 0);
    hg_metrics_put(o, digits + n, sizeof(digits) - n);
}

/* The shortest of %.15g, %.16g, %.17g that reads back as V: 0.1, not
 * 0.10000000000000001. */
static const char *
hg_metrics_format(double v, char *buf, size_t size)
{
    int digits;

    if (isnan(v)) {
        return "NaN";
    }
    if (isinf(v)) {
        return v > 0 ? "+Inf" : "-Inf";
    }
    for (digits = 15; digits < 17; digits++) {
        snprintf(buf, size, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) {
            return buf;
        }
    }
    snprintf(buf, size, "%.17g", v);
    return buf;
}

/* Most values are whole (counts, states): those below 1e15 are written as
 * %.15g would write them, without it. */
static void
hg_metrics_number(hg_metrics_out_t *o, double v)
{
    char buf[HG_METRIC_NUMBER_MAX];

    if (v == floor(v) && fabs(v) < 1e15 && !(v == 0 && signbit(v))) {
        if (v < 0) {
            hg_metrics_put(o, "-", 1);
        }
        hg_metrics_uint(o, (uint64_t) fabs(v));
        return;
    }
    hg_metrics_puts(o, hg_metrics_format(v, buf, sizeof(buf)));
}

/* S escaped as the format asks (backslash and newline; double quotes too
 * in label values), into O or, when O is NULL, only measured. */
static size_t
hg_metrics_escape(char *o, const char *s, bool quotes)
{
    size_t n = 0;

    for (; *s != '\0'; s++) {
        bool esc = *s == '\\' || *s == '\n' || (quotes && *s == '"');
        if (o != NULL) {
            if (esc) {
                o[n] = '\\';
                o[n + 1] = *s == '\n' ? 'n' : *s;
            } else {
                o[n] = *s;
            }
        }
        n += esc ? 2 : 1;
    }
    return n;
}

/* l1="v1",... for a series (empty when its family has no labels). */
static char *
hg_metrics_labels_text(const hg_metric_t *f, const hg_series_t *s,
                       size_t *len)
{
    size_t i, n = 0;
    char *text;

    for (i = 0; i < f->nlabels; i++) {
        n += (i > 0) + strlen(f->labels[i]) + 3
             + hg_metrics_escape(NULL, s->values[i], true);
    }
    text = malloc(n + 1);
    if (text == NULL) {
        return NULL;
    }
    for (i = 0, n = 0; i < f->nlabels; i++) {
        size_t l = strlen(f->labels[i]);
        if (i > 0) {
            text[n++] = ',';
        }
        memcpy(text + n, f->labels[i], l);
        n += l;
        text[n++] = '=';
        text[n++] = '"';
        n += hg_metrics_escape(text + n, s->values[i], true);
        text[n++] = '"';
    }
    text[n] = '\0';
    *len = n;
    return text;
}

/* NAME SUFFIX{labels,le="LE"} with the braces only when there is a label. */
static void
hg_metrics_sample(hg_metrics_out_t *o, const hg_metric_t *f,
                  const hg_series_t *s, const char *suffix, const char *le)
{
    hg_metrics_puts(o, f->name);
    hg_metrics_puts(o, suffix);
    if (s->labels_len == 0 && le == NULL) {
        hg_metrics_put(o, " ", 1);
        return;
    }
    hg_metrics_put(o, "{", 1);
    hg_metrics_put(o, s->labels, s->labels_len);
    if (le != NULL) {
        hg_metrics_puts(o, s->labels_len > 0 ? ",le=\"" : "le=\"");
        hg_metrics_puts(o, le);
        hg_metrics_put(o, "\"", 1);
    }
    hg_metrics_put(o, "} ", 2);
}

static void
hg_metrics_histogram(hg_metrics_out_t *o, const hg_metric_t *f,
                     const hg_series_t *s)
{
    uint64_t cumulative = 0;
    size_t i;

    for (i = 0; i <= f->nbounds; i++) {
        cumulative += s->buckets[i];
        hg_metrics_sample(o, f, s, "_bucket", f->le[i]);
        hg_metrics_uint(o, cumulative);
        hg_metrics_put(o, "\n", 1);
    }
    hg_metrics_sample(o, f, s, "_sum", NULL);
    hg_metrics_number(o, s->value);
    hg_metrics_put(o, "\n", 1);
    hg_metrics_sample(o, f, s, "_count", NULL);
    hg_metrics_uint(o, s->count);
    hg_metrics_put(o, "\n", 1);
}

int
hg_metrics_render(const hg_metrics_t *metrics, FILE *out)
{
    static const char *const types[] = { "counter", "gauge", "histogram" };
    hg_metrics_out_t *o;
    const hg_metric_t *f;
    const hg_series_t *s;
    char *help;
    size_t n;
    int rc;

    o = malloc(sizeof(*o));
    if (o == NULL) {
        return HG_ERROR;
    }
    o->out = out;
    o->len = 0;
    o->failed = false;
    for (f = metrics->head; f != NULL && !o->failed; f = f->next) {
        hg_metrics_puts(o, "# HELP ");
        hg_metrics_puts(o, f->name);
        hg_metrics_put(o, " ", 1);
        n = hg_metrics_escape(NULL, f->help, false);
        help = malloc(n);
        if (help == NULL) {
            o->failed = true;
            break;
        }
        hg_metrics_escape(help, f->help, false);
        hg_metrics_put(o, help, n);
        free(help);
        hg_metrics_puts(o, "\n# TYPE ");
        hg_metrics_puts(o, f->name);
        hg_metrics_put(o, " ", 1);
        hg_metrics_puts(o, types[f->type]);
        hg_metrics_put(o, "\n", 1);
        for (s = f->head; s != NULL; s = s->next) {
            if (f->type == HG_METRIC_HISTOGRAM) {
                hg_metrics_histogram(o, f, s);
                continue;
            }
            hg_metrics_sample(o, f, s, "", NULL);
            hg_metrics_number(o, s->value);
            hg_metrics_put(o, "\n", 1);
        }
    }
    hg_metrics_flush(o);
    rc = o->failed || ferror(out) ? HG_ERROR : HG_OK;
    free(o);
    return rc;
}
