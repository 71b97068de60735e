/*
 * test_trace: an execution's W3C trace context (hg_trace.c).
 */

#include "hg_core.h"

#include <setjmp.h>
#include <cmocka.h>

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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_context),
        cmocka_unit_test(test_trace_context_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
