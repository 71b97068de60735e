/*
 * The metrics registry: counters, gauges and histograms in one place, each
 * a family (name, help, label names) of series (one per set of label
 * values), rendered in the Prometheus text format (version 0.0.4) for
 * `GET /metrics`.
 *
 * hg_metrics.c owns the families, their series and the rendering. It never
 * decides what is counted (the master, the pool's callbacks, reloads and
 * the store's figures feed it) and is not thread-safe: it belongs to the
 * master's loop. Series are created on first use and kept (a job removed
 * by a reload keeps its counters, as Prometheus clients do).
 */

#ifndef HG_METRICS_H
#define HG_METRICS_H

#include "hg_core.h"

typedef enum {
    HG_METRIC_COUNTER,
    HG_METRIC_GAUGE,
    HG_METRIC_HISTOGRAM
} hg_metric_type_t;

typedef struct hg_metrics_s hg_metrics_t;
typedef struct hg_metric_s hg_metric_t;

/* The most labels a family has. */
#define HG_METRIC_LABELS_MAX  4

hg_metrics_t *hg_metrics_new(void);
void hg_metrics_free(hg_metrics_t *metrics);

/*
 * A family: NAME (with its prefix, e.g. "hourglass_executions_total"),
 * HELP, TYPE, LABELS (NULL-terminated, at most HG_METRIC_LABELS_MAX; NULL
 * for none) and, for a histogram, its upper bounds (ascending; +Inf is
 * added). The strings are borrowed and must outlive the registry. NULL when
 * out of memory (and every call on a NULL family does nothing).
 */
hg_metric_t *hg_metrics_family(hg_metrics_t *metrics, const char *name,
                               const char *help, hg_metric_type_t type,
                               const char *const *labels,
                               const double *bounds, size_t nbounds);

/* VALUES: one per label of the family, in order (NULL when it has none).
 * add: a counter's increase (or a gauge's change); set: a gauge's value;
 * observe: a histogram's sample. */
void hg_metric_add(hg_metric_t *family, const char *const *values, double v);
void hg_metric_set(hg_metric_t *family, const char *const *values, double v);
void hg_metric_observe(hg_metric_t *family, const char *const *values,
                       double v);

/* A series' value (a histogram's count): for tests. 0 when absent. */
double hg_metric_value(const hg_metric_t *family, const char *const *values);

/* Every family with its series, in the order the families were made and
 * the series first used. HG_ERROR when OUT fails. */
int hg_metrics_render(const hg_metrics_t *metrics, FILE *out);

#endif /* HG_METRICS_H */
