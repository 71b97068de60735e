/*
 * Unit tests for hg_units: durations and sizes, parsed, formatted and
 * suggested; good text, bad text and overflow.
 */

#include "hg_core.h"

#include <setjmp.h>
#include <cmocka.h>

#include "hg_units.h"

static void
expect_duration(const char *text, int64_t want)
{
    int64_t ms = -42;

    if (hg_parse_duration(text, &ms) != HG_OK) {
        fail_msg("\"%s\" should parse", text);
    }
    if (ms != want) {
        fail_msg("\"%s\": %" PRId64 " != %" PRId64, text, ms, want);
    }
}

static void
expect_bad_duration(const char *text)
{
    int64_t ms = -42;

    if (hg_parse_duration(text, &ms) != HG_ERROR) {
        fail_msg("\"%s\" should not parse (got %" PRId64 ")",
                 text ? text : "(null)", ms);
    }
    assert_int_equal(ms, -42);      /* untouched on error */
}

static void
test_duration_good(void **state)
{
    HG_UNUSED(state);
    expect_duration("0", 0);
    expect_duration("0s", 0);
    expect_duration("0ms", 0);
    expect_duration("1ms", 1);
    expect_duration("500ms", 500);
    expect_duration("90s", 90000);
    expect_duration("5m", 300000);
    expect_duration("1h30m", 5400000);
    expect_duration("7d", 7 * 86400000LL);
    expect_duration("30d", 30 * 86400000LL);
    expect_duration("1d2h3m4s5ms", 86400000LL + 7200000 + 180000 + 4000 + 5);
    expect_duration("1h0m", 3600000);
    expect_duration("1s500ms", 1500);
    expect_duration("0001m", 60000);
    expect_duration("9223372036854775807ms", INT64_MAX);
    /* the largest whole number of days, plus what still fits */
    expect_duration("106751991167d", 106751991167LL * 86400000LL);
    expect_duration("106751991167d7h12m55s807ms", INT64_MAX);
    expect_duration("106751991167d5h", 106751991167LL * 86400000LL
                    + 5 * 3600000LL);
}

static void
test_duration_bad(void **state)
{
    HG_UNUSED(state);
    expect_bad_duration(NULL);
    expect_bad_duration("");
    expect_bad_duration("5");           /* no unit */
    expect_bad_duration("30");
    expect_bad_duration("5x");
    expect_bad_duration("s");
    expect_bad_duration("-5s");
    expect_bad_duration("+5s");
    expect_bad_duration("1.5h");
    expect_bad_duration(" 5s");
    expect_bad_duration("5s ");
    expect_bad_duration("5 s");
    expect_bad_duration("5S");          /* units are lower case */
    expect_bad_duration("5sec");
    expect_bad_duration("1m30m");       /* a unit twice */
    expect_bad_duration("30s1m");       /* smallest first */
    expect_bad_duration("1h1h");
    expect_bad_duration("1ms1s");
    expect_bad_duration("5m3");         /* trailing digits */
    expect_bad_duration("1w");
    /* overflow: in the digits, in the multiplication, in the sum */
    expect_bad_duration("9223372036854775808ms");
    expect_bad_duration("99999999999999999999999s");
    expect_bad_duration("106751991168d");
    expect_bad_duration("9223372036854776s");
    expect_bad_duration("106751991167d8h");
    expect_bad_duration("106751991167d7h12m55s808ms");
}

static void
expect_size(const char *text, uint64_t want)
{
    uint64_t b = 42;

    if (hg_parse_size(text, &b) != HG_OK) {
        fail_msg("\"%s\" should parse", text);
    }
    if (b != want) {
        fail_msg("\"%s\": %" PRIu64 " != %" PRIu64, text, b, want);
    }
}

static void
expect_bad_size(const char *text)
{
    uint64_t b = 42;

    if (hg_parse_size(text, &b) != HG_ERROR) {
        fail_msg("\"%s\" should not parse (got %" PRIu64 ")",
                 text ? text : "(null)", b);
    }
    assert_int_equal(b, 42);
}

static void
test_size_good(void **state)
{
    HG_UNUSED(state);
    expect_size("0", 0);
    expect_size("512", 512);
    expect_size("512B", 512);
    expect_size("64KiB", 65536);
    expect_size("64K", 65536);
    expect_size("64k", 65536);
    expect_size("64KB", 64000);
    expect_size("64kb", 64000);
    expect_size("1MiB", 1048576);
    expect_size("1M", 1048576);
    expect_size("10MB", 10000000);
    expect_size("1GiB", 1073741824ULL);
    expect_size("1G", 1073741824ULL);
    expect_size("1GB", 1000000000ULL);
    expect_size("2TiB", 2ULL << 40);
    expect_size("3TB", 3000000000000ULL);
    expect_size("18446744073709551615", UINT64_MAX);
    expect_size("16777215TiB", 16777215ULL << 40);
}

static void
test_size_bad(void **state)
{
    HG_UNUSED(state);
    expect_bad_size(NULL);
    expect_bad_size("");
    expect_bad_size("KiB");
    expect_bad_size("-1");
    expect_bad_size("1.5MiB");
    expect_bad_size("64 KiB");
    expect_bad_size(" 64KiB");
    expect_bad_size("64XB");
    expect_bad_size("64KiBs");
    expect_bad_size("1e3");
    expect_bad_size("18446744073709551616");        /* 2^64 */
    expect_bad_size("16777216TiB");                 /* 2^64 */
    expect_bad_size("18446744073709552KB");
}

static void
expect_format_duration(int64_t ms, const char *want)
{
    char buf[HG_UNITS_TEXT_MAX];
    int64_t back;

    assert_string_equal(hg_format_duration(ms, buf, sizeof(buf)), want);
    if (ms >= 0) {
        assert_int_equal(hg_parse_duration(buf, &back), HG_OK);
        assert_true(back == ms);
    }
}

static void
test_format_duration(void **state)
{
    char buf[HG_UNITS_TEXT_MAX], small[5];
    int64_t v, back;
    int i;

    HG_UNUSED(state);
    expect_format_duration(0, "0s");
    expect_format_duration(1, "1ms");
    expect_format_duration(500, "500ms");
    expect_format_duration(1500, "1s500ms");
    expect_format_duration(60000, "1m");
    expect_format_duration(90000, "1m30s");
    expect_format_duration(5400000, "1h30m");
    expect_format_duration(7 * 86400000LL, "7d");
    expect_format_duration(90061001, "1d1h1m1s1ms");
    expect_format_duration(INT64_MAX, "106751991167d7h12m55s807ms");
    expect_format_duration(-1500, "-1s500ms");
    /* no positive twin: must not overflow */
    assert_string_equal(hg_format_duration(INT64_MIN, buf, sizeof(buf)),
                        "-106751991167d7h12m55s808ms");
    assert_true(strlen(buf) < HG_UNITS_TEXT_MAX);

    /* a short buffer is cut, never overrun */
    hg_format_duration(5400000, small, sizeof(small));
    assert_true(strlen(small) < sizeof(small));
    assert_ptr_equal(hg_format_duration(5, small, 0), small);

    /* round trip over a spread of values */
    for (i = 0, v = 1; v < INT64_MAX / 4; i++, v = v * 2 + i) {
        hg_format_duration(v, buf, sizeof(buf));
        assert_int_equal(hg_parse_duration(buf, &back), HG_OK);
        assert_true(back == v);
    }
}

static void
expect_format_size(uint64_t bytes, const char *want)
{
    char buf[HG_UNITS_TEXT_MAX];
    uint64_t back;

    assert_string_equal(hg_format_size(bytes, buf, sizeof(buf)), want);
    assert_int_equal(hg_parse_size(buf, &back), HG_OK);
    assert_true(back == bytes);
}

static void
test_format_size(void **state)
{
    HG_UNUSED(state);
    expect_format_size(0, "0");
    expect_format_size(1, "1");
    expect_format_size(1023, "1023");
    expect_format_size(1000, "1KB");
    expect_format_size(1024, "1KiB");
    expect_format_size(65536, "64KiB");
    expect_format_size(1024000, "1000KiB");
    expect_format_size(1536 * 1024, "1536KiB");
    expect_format_size(1048576, "1MiB");
    expect_format_size(10000000, "10MB");
    expect_format_size(1ULL << 30, "1GiB");
    expect_format_size(5ULL << 40, "5TiB");
    expect_format_size(UINT64_MAX, "18446744073709551615");
}

static void
expect_suggest(int (*fn)(const char *, char *, size_t), const char *text,
               const char *want)
{
    char buf[HG_UNITS_TEXT_MAX];

    if (want == NULL) {
        assert_int_equal(fn(text, buf, sizeof(buf)), HG_ERROR);
        return;
    }
    assert_int_equal(fn(text, buf, sizeof(buf)), HG_OK);
    assert_string_equal(buf, want);
}

static void
test_suggest(void **state)
{
    HG_UNUSED(state);
    expect_suggest(hg_suggest_duration, "5x", "5m");
    expect_suggest(hg_suggest_duration, "30", "30s");
    expect_suggest(hg_suggest_duration, "30 seconds", "30s");
    expect_suggest(hg_suggest_duration, "5 min", "5m");
    expect_suggest(hg_suggest_duration, "1.5h", "1h30m");
    expect_suggest(hg_suggest_duration, "1 hour and 30 minutes", "1h30m");
    expect_suggest(hg_suggest_duration, "1H30M", "1h30m");
    expect_suggest(hg_suggest_duration, "2w", "14d");
    expect_suggest(hg_suggest_duration, "0.5s", "500ms");
    /* nothing sensible to say */
    expect_suggest(hg_suggest_duration, "soon", NULL);
    expect_suggest(hg_suggest_duration, "", NULL);
    expect_suggest(hg_suggest_duration, NULL, NULL);
    expect_suggest(hg_suggest_duration, "0.5ms", NULL);
    expect_suggest(hg_suggest_duration, "-5s", NULL);
    /* units out of order: a sum would guess */
    expect_suggest(hg_suggest_duration, "1m30m", NULL);
    expect_suggest(hg_suggest_duration, "30s1m", NULL);
    expect_suggest(hg_suggest_duration, "1e400s", NULL);

    expect_suggest(hg_suggest_size, "64 KiB", "64KiB");
    expect_suggest(hg_suggest_size, "1.5MiB", "1536KiB");
    expect_suggest(hg_suggest_size, "10 megabytes", "10MB");
    expect_suggest(hg_suggest_size, "2 bytes", "2");
    expect_suggest(hg_suggest_size, "lots", NULL);
    expect_suggest(hg_suggest_size, "64 XB", NULL);
    expect_suggest(hg_suggest_size, "0.5 bytes", NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_good),
        cmocka_unit_test(test_duration_bad),
        cmocka_unit_test(test_size_good),
        cmocka_unit_test(test_size_bad),
        cmocka_unit_test(test_format_duration),
        cmocka_unit_test(test_format_size),
        cmocka_unit_test(test_suggest),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
