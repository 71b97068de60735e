/*
 * Unit tests of what every store driver shares in hg_store.c, without a
 * driver: the check a record passes before any driver sees it (each way
 * a record can be malformed refused with its reason), and the p95 of a
 * job's duration buckets (no runs, empty and negative counts skipped, the
 * nearest rank, the cap by the longest duration seen, buckets past the
 * 64-bit range).
 */

#include "hg_core.h"

#include <setjmp.h>
#include <cmocka.h>

#include "hg_store.h"

static void
test_record_check(void **state)
{
    static const char out[] = "out";
    hg_exec_record_t good = { .id = "e1", .job_id = "j",
                              .status = HG_EXEC_SUCCEEDED,
                              .output = out, .output_len = 3 };
    struct {
        hg_exec_record_t r;
        const char *err;
    } bad[] = {
        { { .id = "", .job_id = "j" }, "execution without an id" },
        { { .id = "e1", .job_id = NULL }, "execution e1: no job_id" },
        { { .id = "e1", .job_id = "j", .status = (hg_exec_status_t) 42 },
          "execution e1: status 42 is not a status" },
        { { .id = "e1", .job_id = "j", .output_len = 1 },
          "execution e1: output_len 1 without output" },
        { { .id = "e1", .job_id = "j", .payload_len = 2 },
          "execution e1: payload_len 2 without payload" },
        { { .id = "e1", .job_id = "j", .output = out,
            .output_len = (size_t) INT_MAX / 2 + 1 },
          "execution e1: output or payload over 1GiB" },
        { { .id = "e1", .job_id = "j", .payload = out,
            .payload_len = (size_t) INT_MAX / 2 + 1 },
          "execution e1: output or payload over 1GiB" },
    };
    char err[256];
    size_t i;

    HG_UNUSED(state);
    err[0] = '\0';
    assert_int_equal(hg_exec_record_check(&good, err, sizeof(err)), HG_OK);
    assert_string_equal(err, "");
    assert_int_equal(hg_exec_record_check(NULL, err, sizeof(err)), HG_ERROR);
    assert_string_equal(err, "no record");
    for (i = 0; i < HG_NELEMS(bad); i++) {
        err[0] = '\0';
        if (hg_exec_record_check(&bad[i].r, err, sizeof(err)) != HG_ERROR
            || strcmp(err, bad[i].err) != 0)
        {
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, bad[i].err);
        }
    }
}

static void
test_p95(void **state)
{
    hg_store_bucket_t none[] = { { 5, 0 }, { 9, -2 } };
    /* 19 runs of 10 ms, 1 of 100: the 19th of 20 is 10 ms */
    hg_store_bucket_t mostly_fast[] = { { 3, -4 }, { 10, 19 }, { 100, 1 } };
    /* 1 of 10 ms, 19 of 100: the 19th is 100 ms */
    hg_store_bucket_t mostly_slow[] = { { 10, 1 }, { 100, 19 } };
    hg_store_bucket_t huge[] = { { 100000, 1 } };
    unsigned b;

    HG_UNUSED(state);
    assert_int_equal(hg_store_p95(NULL, 0, 7), 0);
    assert_int_equal(hg_store_p95(none, HG_NELEMS(none), 7), 0);
    assert_int_equal(hg_store_p95(mostly_fast, HG_NELEMS(mostly_fast), 100),
                     10);
    assert_int_equal(hg_store_p95(mostly_slow, HG_NELEMS(mostly_slow), 100),
                     100);
    /* capped by the longest duration seen */
    assert_int_equal(hg_store_p95(mostly_slow, HG_NELEMS(mostly_slow), 60),
                     60);
    /* a bucket holding values a 64-bit count cannot reach */
    assert_int_equal(hg_store_bucket_high(100000), INT64_MAX);
    assert_int_equal(hg_store_p95(huge, 1, 12345), 12345);
    /* past 128 ms a bucket's high end is within 1/64 of its values */
    b = hg_store_duration_bucket(1000);
    assert_true(hg_store_p95((hg_store_bucket_t[]) { { b, 1 } }, 1,
                             INT64_MAX) >= 1000);
    assert_true(hg_store_p95((hg_store_bucket_t[]) { { b, 1 } }, 1,
                             INT64_MAX) <= 1000 + 1000 / 64);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_check),
        cmocka_unit_test(test_p95),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
