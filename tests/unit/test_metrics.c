/*
 * The metrics registry (core/hg_metrics.c): counters, gauges and
 * histograms by label values, and their rendering in the Prometheus text
 * format, compared whole: HELP and TYPE lines, label escaping, cumulative
 * buckets with +Inf, _sum and _count, families and series in the order
 * they were made.
 */

#include "hg_core.h"

#include <math.h>
#include <setjmp.h>
#include <cmocka.h>

#include "hg_metrics.h"

static char *
render(const hg_metrics_t *r)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);

    assert_non_null(out);
    assert_int_equal(hg_metrics_render(r, out), HG_OK);
    assert_int_equal(fclose(out), 0);
    return text;
}

static void
test_render(void **state)
{
    static const char *const job_status[] = { "job", "status", NULL };
    static const double bounds[] = { 0.1, 1 };
    hg_metrics_t *r = hg_metrics_new();
    hg_metric_t *runs, *depth, *lag;
    const char *a[] = { "backup", "succeeded" };
    const char *b[] = { "odd \"job\"\\\n", "failed" };
    char *text;

    HG_UNUSED(state);
    assert_non_null(r);
    runs = hg_metrics_family(r, "t_runs_total", "Runs\nby job",
                             HG_METRIC_COUNTER, job_status, NULL, 0);
    depth = hg_metrics_family(r, "t_depth", "Depth", HG_METRIC_GAUGE, NULL,
                              NULL, 0);
    lag = hg_metrics_family(r, "t_lag_seconds", "Lag", HG_METRIC_HISTOGRAM,
                            NULL, bounds, HG_NELEMS(bounds));
    hg_metric_add(runs, a, 1);
    hg_metric_add(runs, b, 1);
    hg_metric_add(runs, a, 2);
    hg_metric_set(depth, NULL, 7);
    hg_metric_set(depth, NULL, 3);
    hg_metric_observe(lag, NULL, 0.05);
    hg_metric_observe(lag, NULL, 0.1);      /* le is inclusive */
    hg_metric_observe(lag, NULL, 0.5);
    hg_metric_observe(lag, NULL, 30);
    assert_true(hg_metric_value(runs, a) == 3);
    assert_true(hg_metric_value(lag, NULL) == 4);
    text = render(r);
    assert_string_equal(text,
        "# HELP t_runs_total Runs\\nby job\n"
        "# TYPE t_runs_total counter\n"
        "t_runs_total{job=\"backup\",status=\"succeeded\"} 3\n"
        "t_runs_total{job=\"odd \\\"job\\\"\\\\\\n\",status=\"failed\"} 1\n"
        "# HELP t_depth Depth\n"
        "# TYPE t_depth gauge\n"
        "t_depth 3\n"
        "# HELP t_lag_seconds Lag\n"
        "# TYPE t_lag_seconds histogram\n"
        "t_lag_seconds_bucket{le=\"0.1\"} 2\n"
        "t_lag_seconds_bucket{le=\"1\"} 3\n"
        "t_lag_seconds_bucket{le=\"+Inf\"} 4\n"
        "t_lag_seconds_sum 30.65\n"
        "t_lag_seconds_count 4\n");
    free(text);
    hg_metrics_free(r);
}

/* Values as Prometheus reads them: NaN, +Inf and -Inf by those names, a
 * finite value in the fewest digits that read back as itself; a call on
 * a NULL family (out of memory) does nothing. */
static void
test_values(void **state)
{
    static const char *const labels[] = { "v", NULL };
    static const struct {
        const char *label;
        double value;
        const char *text;
    } cases[] = {
        { "nan", NAN, "NaN" },
        { "inf", INFINITY, "+Inf" },
        { "neg_inf", -INFINITY, "-Inf" },
        { "tenth", 0.1, "0.1" },
        { "sum", 0.1 + 0.2, "0.30000000000000004" },
        { "third", 1.0 / 3, "0.3333333333333333" },
        { "big", 1e300, "1e+300" },
        { "neg", -2.5, "-2.5" },
        { "whole", 42, "42" },
        { "neg_whole", -7, "-7" },
        { "zero", 0, "0" },
        { "neg_zero", -0.0, "-0" },
        { "below_1e15", 999999999999999.0, "999999999999999" },
        { "1e15", 1e15, "1e+15" },
        { "2e17", 2e17, "2e+17" },
    };
    hg_metrics_t *r = hg_metrics_new();
    hg_metric_t *g;
    char *text, want[128];
    const char *v[1];
    size_t i;

    HG_UNUSED(state);
    g = hg_metrics_family(r, "t_g", "G", HG_METRIC_GAUGE, labels, NULL, 0);
    for (i = 0; i < HG_NELEMS(cases); i++) {
        v[0] = cases[i].label;
        hg_metric_set(g, v, cases[i].value);
    }
    hg_metric_add(NULL, v, 1);
    hg_metric_set(NULL, v, 1);
    hg_metric_observe(NULL, v, 1);
    text = render(r);
    for (i = 0; i < HG_NELEMS(cases); i++) {
        snprintf(want, sizeof(want), "\nt_g{v=\"%s\"} %s\n", cases[i].label,
                 cases[i].text);
        if (strstr(text, want) == NULL) {
            fail_msg("no line %s in:\n%s", want, text);
        }
    }
    free(text);
    hg_metrics_free(r);
}

/* Many series of one family, long label values among them: each keeps
 * its own count. */
static void
test_many_series(void **state)
{
    static const char *const labels[] = { "job", NULL };
    hg_metrics_t *r = hg_metrics_new();
    hg_metric_t *f;
    char name[600];
    const char *v[1] = { name };
    int i, round;

    HG_UNUSED(state);
    f = hg_metrics_family(r, "t_total", "T", HG_METRIC_COUNTER, labels,
                          NULL, 0);
    for (round = 1; round <= 3; round++) {
        for (i = 0; i < 500; i++) {
            snprintf(name, sizeof(name), "%0*d", i % 2 ? 3 : 550, i);
            hg_metric_add(f, v, 1);
        }
    }
    for (i = 0; i < 500; i++) {
        snprintf(name, sizeof(name), "%0*d", i % 2 ? 3 : 550, i);
        assert_true(hg_metric_value(f, v) == 3);
    }
    snprintf(name, sizeof(name), "never");
    assert_true(hg_metric_value(f, v) == 0);
    hg_metrics_free(r);
}

/* A label value longer than the renderer's buffer, beside short ones,
 * comes out whole and in its place. */
static void
test_long_label(void **state)
{
    static const char *const labels[] = { "job", NULL };
    hg_metrics_t *r = hg_metrics_new();
    hg_metric_t *f;
    char *name, *want, *text;
    const char *v[1];
    size_t n = 40000;

    HG_UNUSED(state);
    name = malloc(n + 1);
    want = malloc(n + 256);
    assert_non_null(name);
    assert_non_null(want);
    memset(name, 'x', n);
    name[n] = '\0';
    f = hg_metrics_family(r, "t_total", "T", HG_METRIC_COUNTER, labels,
                          NULL, 0);
    v[0] = "a";
    hg_metric_add(f, v, 1);
    v[0] = name;
    hg_metric_add(f, v, 2);
    v[0] = "b";
    hg_metric_add(f, v, 3);
    text = render(r);
    snprintf(want, n + 256, "# HELP t_total T\n# TYPE t_total counter\n"
             "t_total{job=\"a\"} 1\nt_total{job=\"%s\"} 2\n"
             "t_total{job=\"b\"} 3\n", name);
    assert_string_equal(text, want);
    free(text);
    free(want);
    free(name);
    hg_metrics_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_many_series),
        cmocka_unit_test(test_long_label),
    };

    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
