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

typedef struct hg_series_s {
    struct hg_series_s *next;       /* in first-use order */
    /* The values joined (the map's key), then a copy split into the
     * values: one allocation. */
    char *key;
    const char *values[HG_METRIC_LABELS_MAX];   /* into key's copy */
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
    size_t nbounds;
    hg_map_t series;                /* key -> hg_series_t */
    hg_series_t *head, *tail;
};

struct hg_metrics_s {
    hg_metric_t *head, *tail;
};

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
        free(s->buckets);
        free(s);
    }
    hg_map_free(&f->series);
    free(f->bounds);
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
    hg_metric_t *f;

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
    if (type == HG_METRIC_HISTOGRAM && nbounds > 0) {
        f->bounds = malloc(nbounds * sizeof(double));
        if (f->bounds == NULL) {
            free(f);
            return NULL;
        }
        memcpy(f->bounds, bounds, nbounds * sizeof(double));
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
    if (hg_map_put(&f->series, s->key, s) != HG_OK) {
        goto failed;
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

static void
hg_metrics_number(FILE *out, double v)
{
    char buf[40];

    fputs(hg_metrics_format(v, buf, sizeof(buf)), out);
}

/* A label value or help text, escaped as the format asks (backslash and
 * newline; double quotes too in label values). */
static void
hg_metrics_escaped(FILE *out, const char *s, bool quotes)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\') {
            fputs("\\\\", out);
        } else if (*s == '\n') {
            fputs("\\n", out);
        } else if (quotes && *s == '"') {
            fputs("\\\"", out);
        } else {
            fputc(*s, out);
        }
    }
}

/* {l1="v1",...} with an extra le="BOUND" for a histogram's bucket. */
static void
hg_metrics_labels(FILE *out, const hg_metric_t *f, const hg_series_t *s,
                  const char *le)
{
    size_t i;

    if (f->nlabels == 0 && le == NULL) {
        return;
    }
    fputc('{', out);
    for (i = 0; i < f->nlabels; i++) {
        fprintf(out, "%s%s=\"", i > 0 ? "," : "", f->labels[i]);
        hg_metrics_escaped(out, s->values[i], true);
        fputc('"', out);
    }
    if (le != NULL) {
        fprintf(out, "%sle=\"%s\"", f->nlabels > 0 ? "," : "", le);
    }
    fputc('}', out);
}

static void
hg_metrics_histogram(FILE *out, const hg_metric_t *f, const hg_series_t *s)
{
    char le[64];
    uint64_t cumulative = 0;
    size_t i;

    for (i = 0; i <= f->nbounds; i++) {
        cumulative += s->buckets[i];
        fprintf(out, "%s_bucket", f->name);
        hg_metrics_labels(out, f, s, i < f->nbounds
                                     ? hg_metrics_format(f->bounds[i], le,
                                                         sizeof(le))
                                     : "+Inf");
        fprintf(out, " %" PRIu64 "\n", cumulative);
    }
    fprintf(out, "%s_sum", f->name);
    hg_metrics_labels(out, f, s, NULL);
    fputc(' ', out);
    hg_metrics_number(out, s->value);
    fprintf(out, "\n%s_count", f->name);
    hg_metrics_labels(out, f, s, NULL);
    fprintf(out, " %" PRIu64 "\n", s->count);
}

int
hg_metrics_render(const hg_metrics_t *metrics, FILE *out)
{
    static const char *const types[] = { "counter", "gauge", "histogram" };
    const hg_metric_t *f;
    const hg_series_t *s;

    for (f = metrics->head; f != NULL; f = f->next) {
        fprintf(out, "# HELP %s ", f->name);
        hg_metrics_escaped(out, f->help, false);
        fprintf(out, "\n# TYPE %s %s\n", f->name, types[f->type]);
        for (s = f->head; s != NULL; s = s->next) {
            if (f->type == HG_METRIC_HISTOGRAM) {
                hg_metrics_histogram(out, f, s);
                continue;
            }
            fputs(f->name, out);
            hg_metrics_labels(out, f, s, NULL);
            fputc(' ', out);
            hg_metrics_number(out, s->value);
            fputc('\n', out);
        }
    }
    return ferror(out) ? HG_ERROR : HG_OK;
}
