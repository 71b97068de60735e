/*
 * test_trace: an execution's W3C trace context (hg_trace.c) and the span
 * exported for it over OTLP (hg_otlp.c's JSON).
 */

#include "hg_core.h"

#include <setjmp.h>
#include <cmocka.h>

#include "hg_otlp.h"
#include "hg_trace.h"

static void
test_trace_context(void **state)
{
    char out[HG_TRACEPARENT_LEN];

    HG_UNUSED(state);
    assert_int_equal(hg_trace_context("01A24EC8-D0DC-7000-9154-9F26697BD53D",
                                      "01a24ec8-d0e5-7000-ac78-cd8d2ad5f74c",
                                      out, sizeof(out)), HG_OK);
    /* the run's 128 bits, lower case; the attempt's last 64 bits */
    assert_string_equal(out, "00-01a24ec8d0dc700091549f26697bd53d-"
                             "ac78cd8d2ad5f74c-01");
    assert_int_equal(strlen(out) + 1, HG_TRACEPARENT_LEN);
}

static void
test_trace_context_refused(void **state)
{
    static const char *const bad[] = {
        "", "01a24ec8", "01a24ec8-d0dc-7000-9154-9f26697bd53", /* short */
        "01a24ec8-d0dc-7000-9154-9f26697bd53dd",                /* long */
        "01a24ec8d0dc-7000-9154-9f26697bd53d0",                 /* dashes */
        "01a24ec8-d0dc-7000-9154-9f26697bd5zz",                 /* hex */
        "00000000-0000-0000-0000-000000000000",                 /* zero */
    };
    char out[HG_TRACEPARENT_LEN];
    size_t i;

    HG_UNUSED(state);
    for (i = 0; i < HG_NELEMS(bad); i++) {
        assert_int_equal(hg_trace_context(bad[i],
                         "01a24ec8-d0e5-7000-ac78-cd8d2ad5f74c", out,
                         sizeof(out)), HG_ERROR);
    }
    /* a span of zeros is no span */
    assert_int_equal(hg_trace_context("01a24ec8-d0e5-7000-ac78-cd8d2ad5f74c",
                                      "01a24ec8-d0e5-7000-0000-000000000000",
                                      out, sizeof(out)), HG_ERROR);
    assert_int_equal(hg_trace_context("01a24ec8-d0e5-7000-ac78-cd8d2ad5f74c",
                                      "01a24ec8-d0e5-7000-ac78-cd8d2ad5f74c",
                                      out, 10), HG_ERROR);
    assert_int_equal(hg_trace_context(NULL, "x", out, sizeof(out)),
                     HG_ERROR);
}

#define RUN   "01a24ec8-d0dc-7000-9154-9f26697bd53d"
#define EXEC  "01a24ec8-d0e5-7000-ac78-cd8d2ad5f74c"

/* The value of attribute KEY of SPAN as text (string or integer), or
 * NULL when SPAN has no such attribute. */
static const char *
attr(const json_t *span, const char *key)
{
    const json_t *a, *v;
    size_t i;

    json_array_foreach(json_object_get(span, "attributes"), i, a) {
        if (strcmp(json_string_value(json_object_get(a, "key")), key) == 0) {
            v = json_object_get(a, "value");
            return json_string_value(json_object_get(v, "stringValue"))
                   ? json_string_value(json_object_get(v, "stringValue"))
                   : json_string_value(json_object_get(v, "intValue"));
        }
    }
    return NULL;
}

static hg_otlp_span_t
span_of(unsigned attempt, const char *exec_id, const char *status)
{
    hg_otlp_span_t s;

    memset(&s, 0, sizeof(s));
    s.job_id = "backup";
    s.exec_id = exec_id;
    s.run_id = RUN;
    s.status = status;
    s.trigger = "schedule";
    s.instance = "host-1";
    s.attempt = attempt;
    s.exit_code = -1;
    s.start_ms = 1765000000123;
    s.end_ms = 1765000001456;
    s.lag_ms = 7;
    return s;
}

static void
test_otlp_span_first_attempt(void **state)
{
    hg_otlp_span_t s = span_of(1, RUN, "succeeded");
    json_t *span;

    HG_UNUSED(state);
    s.exit_code = 0;
    span = hg_otlp_span_json(&s);
    assert_non_null(span);
    /* the ids of the traceparent the job saw */
    assert_string_equal(json_string_value(json_object_get(span, "traceId")),
                        "01a24ec8d0dc700091549f26697bd53d");
    assert_string_equal(json_string_value(json_object_get(span, "spanId")),
                        "91549f26697bd53d");
    /* the first attempt is the run's root */
    assert_null(json_object_get(span, "parentSpanId"));
    assert_string_equal(json_string_value(json_object_get(span, "name")),
                        "backup");
    assert_int_equal(json_integer_value(json_object_get(span, "kind")), 1);
    /* 64-bit integers as strings, in nanoseconds */
    assert_string_equal(json_string_value(json_object_get(span,
                        "startTimeUnixNano")), "1765000000123000000");
    assert_string_equal(json_string_value(json_object_get(span,
                        "endTimeUnixNano")), "1765000001456000000");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(
                     span, "status"), "code")), 1);
    assert_string_equal(attr(span, "hourglass.job"), "backup");
    assert_string_equal(attr(span, "hourglass.attempt"), "1");
    assert_string_equal(attr(span, "hourglass.status"), "succeeded");
    assert_string_equal(attr(span, "hourglass.lag_ms"), "7");
    assert_string_equal(attr(span, "hourglass.instance"), "host-1");
    assert_string_equal(attr(span, "hourglass.run"), RUN);
    assert_string_equal(attr(span, "hourglass.exit_code"), "0");
    assert_null(attr(span, "hourglass.signal"));
    json_decref(span);
}

static void
test_otlp_span_retry_failed(void **state)
{
    hg_otlp_span_t s = span_of(2, EXEC, "timed_out");
    const json_t *status;
    json_t *span;

    HG_UNUSED(state);
    s.signo = SIGKILL;
    s.error = "timed out after 100 ms";
    span = hg_otlp_span_json(&s);
    assert_non_null(span);
    assert_string_equal(json_string_value(json_object_get(span, "traceId")),
                        "01a24ec8d0dc700091549f26697bd53d");
    assert_string_equal(json_string_value(json_object_get(span, "spanId")),
                        "ac78cd8d2ad5f74c");
    /* a retry's parent is the run's first attempt */
    assert_string_equal(json_string_value(json_object_get(span,
                        "parentSpanId")), "91549f26697bd53d");
    status = json_object_get(span, "status");
    assert_int_equal(json_integer_value(json_object_get(status, "code")), 2);
    assert_string_equal(json_string_value(json_object_get(status,
                        "message")), "timed out after 100 ms");
    assert_string_equal(attr(span, "hourglass.signal"), "SIGKILL");
    assert_null(attr(span, "hourglass.exit_code"));
    json_decref(span);
    /* no error text: the status says it */
    s.error = NULL;
    s.status = "failed";
    span = hg_otlp_span_json(&s);
    assert_string_equal(json_string_value(json_object_get(json_object_get(
                        span, "status"), "message")), "failed");
    json_decref(span);
    /* an error that is not UTF-8: the status's name says it */
    s.error = "exit \xff";
    span = hg_otlp_span_json(&s);
    assert_non_null(span);
    assert_string_equal(json_string_value(json_object_get(json_object_get(
                        span, "status"), "message")), "failed");
    json_decref(span);
    /* ids that are no UUIDs make no span */
    s.run_id = "not-a-uuid";
    assert_null(hg_otlp_span_json(&s));
}

static void
test_otlp_request(void **state)
{
    hg_otlp_span_t s = span_of(1, RUN, "succeeded");
    json_t *spans = json_array(), *body;
    const json_t *rs, *ss, *a;
    size_t i;
    int seen = 0;

    HG_UNUSED(state);
    json_array_append_new(spans, hg_otlp_span_json(&s));
    body = hg_otlp_request_json(spans, "nightly", "host-1");
    assert_non_null(body);
    rs = json_array_get(json_object_get(body, "resourceSpans"), 0);
    json_array_foreach(json_object_get(json_object_get(rs, "resource"),
                                       "attributes"), i, a) {
        const char *key = json_string_value(json_object_get(a, "key"));
        const char *v = json_string_value(json_object_get(json_object_get(
                                          a, "value"), "stringValue"));

        if (strcmp(key, "service.name") == 0) {
            assert_string_equal(v, "nightly");
            seen++;
        } else if (strcmp(key, "service.instance.id") == 0) {
            assert_string_equal(v, "host-1");
            seen++;
        }
    }
    assert_int_equal(seen, 2);
    ss = json_array_get(json_object_get(rs, "scopeSpans"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(
                        ss, "scope"), "name")), "hourglass");
    assert_int_equal(json_array_size(json_object_get(ss, "spans")), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(
                        json_object_get(ss, "spans"), 0), "name")), "backup");
    json_decref(body);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_context),
        cmocka_unit_test(test_trace_context_refused),
        cmocka_unit_test(test_otlp_span_first_attempt),
        cmocka_unit_test(test_otlp_span_retry_failed),
        cmocka_unit_test(test_otlp_request),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
