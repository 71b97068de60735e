/*
 * Unit tests for hg_client_print: the client's relative times ("in 3m",
 * "2h ago"), durations with units, local times, the API's times read back
 * with their milliseconds, and aligned tables.
 */

#include "hg_core.h"

#include <setjmp.h>
#include <cmocka.h>

#include "hg_client.h"

static void
expect_relative(int64_t then_ms, int64_t now_ms, const char *want)
{
    char buf[HG_CLIENT_TEXT_MAX];

    hg_client_relative(then_ms, now_ms, buf, sizeof(buf));
    if (strcmp(buf, want) != 0) {
        fail_msg("%" PRId64 " ms from now: \"%s\" != \"%s\"",
                 then_ms - now_ms, buf, want);
    }
}

static void
expect_duration(int64_t ms, const char *want)
{
    char buf[HG_CLIENT_TEXT_MAX];

    hg_client_duration(ms, buf, sizeof(buf));
    if (strcmp(buf, want) != 0) {
        fail_msg("%" PRId64 " ms: \"%s\" != \"%s\"", ms, buf, want);
    }
}

static void
test_relative(void **state)
{
    const int64_t now = 1796601852901LL;

    (void) state;
    expect_relative(now, now, "now");
    expect_relative(now + 999, now, "now");
    expect_relative(now - 999, now, "now");
    expect_relative(now + 1000, now, "in 1s");
    expect_relative(now + 45000, now, "in 45s");
    expect_relative(now + 180000, now, "in 3m");
    expect_relative(now + 192500, now, "in 3m 12s");
    expect_relative(now - 7200000, now, "2h ago");
    expect_relative(now - 7500000, now, "2h 5m ago");
    expect_relative(now - 59999, now, "59s ago");
    expect_relative(now + 86400000LL * 17 + 3600000LL * 17 + 59000, now,
                    "in 17d 17h");
    expect_relative(now - 86400000LL * 400, now, "400d ago");
}

static void
test_duration(void **state)
{
    (void) state;
    expect_duration(0, "0ms");
    expect_duration(950, "950ms");
    expect_duration(1000, "1.0s");
    expect_duration(1500, "1.5s");
    expect_duration(59999, "59.9s");    /* never "60.0s" */
    expect_duration(60000, "1m");
    expect_duration(192000, "3m 12s");
    expect_duration(7500000, "2h 5m");
    expect_duration(273600000, "3d 4h");
    expect_duration(-1, "-");
}

static void
test_api_time(void **state)
{
    json_t *v;

    (void) state;
    v = json_string("2026-12-07T00:05:00.123Z");
    assert_int_equal(hg_client_api_time(v), 1796601900123LL);
    json_decref(v);
    v = json_string("2026-12-07T00:05:00.5Z");
    assert_int_equal(hg_client_api_time(v), 1796601900500LL);
    json_decref(v);
    v = json_string("2026-12-07T01:05:00+01:00");
    assert_int_equal(hg_client_api_time(v), 1796601900000LL);
    json_decref(v);
    v = json_string("soon");
    assert_int_equal(hg_client_api_time(v), -1);
    json_decref(v);
    assert_int_equal(hg_client_api_time(json_null()), -1);
    assert_int_equal(hg_client_api_time(NULL), -1);
}

static void
test_local_time(void **state)
{
    char buf[HG_CLIENT_TEXT_MAX];

    (void) state;
    /* TZ was set before the local zone was first looked up (main) */
    assert_string_equal(hg_client_local_time(1796601900, buf, sizeof(buf)),
                        "Mon 2026-12-07 01:05:00 CET");
    assert_string_equal(hg_client_local_time(1782864000, buf, sizeof(buf)),
                        "Wed 2026-07-01 02:00:00 CEST");
    assert_string_equal(hg_client_local_time(-1, buf, sizeof(buf)), "-");
}

static void
test_table(void **state)
{
    static const char *const header[] = { "ID", "STATE", "TAGS" };
    static const char *const row1[] = { "backup", "active", "nightly" };
    static const char *const row2[] = { "x", NULL, "" };
    hg_client_table_t t;
    char *text = NULL;
    size_t len = 0;
    FILE *out;
    int i;

    (void) state;
    assert_int_equal(hg_client_table_init(&t, 3, header), HG_OK);
    assert_int_equal(hg_client_table_add(&t, row1), HG_OK);
    /* past the first growth of the rows */
    for (i = 0; i < 40; i++) {
        assert_int_equal(hg_client_table_add(&t, row2), HG_OK);
    }
    out = open_memstream(&text, &len);
    assert_non_null(out);
    assert_int_equal(hg_client_table_print(&t, out), HG_OK);
    fclose(out);
    /* columns as wide as their widest cell, two blanks apart; none
     * trailing; an empty or missing cell is "-" */
    assert_memory_equal(text,
                        "ID      STATE   TAGS\n"
                        "backup  active  nightly\n"
                        "x       -       -\n", 63);
    assert_int_equal(len, 21 + 24 + 40 * 18);
    free(text);
    hg_client_table_free(&t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relative),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_api_time),
        cmocka_unit_test(test_local_time),
        cmocka_unit_test(test_table),
    };

    setenv("TZ", "Europe/Berlin", 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
