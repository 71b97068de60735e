/*
 * Unit tests for hg_client_print: the client's relative times ("in 3m",
 * "2h ago"), durations with units, local times, the API's times read back
 * with their milliseconds, and aligned tables; and for hg_client_yaml: the
 * jobs of a YAML stream, its errors, and its allocations refused.
 */

#include "hg_core.h"

#include <setjmp.h>
#include <cmocka.h>

#include "hg_client.h"

#include "fault_alloc.h"

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


/* ---- YAML ------------------------------------------------------------- */

/* Every shape hg_client_yaml_jobs reads, in one stream. */
static const char yaml_stream[] =
    "# a list of jobs\n"
    "- id: backup\n"
    "  type: shell\n"
    "  schedule: \"0 2 * * *\"\n"
    "  enabled: yes\n"
    "  paused: off\n"
    "  max_retries: 3\n"
    "  ratio: 0.5\n"
    "  big: -12\n"
    "  hex: 0x1f\n"
    "  nothing: ~\n"
    "  empty:\n"
    "  tags: [nightly, 'db', \"x\"]\n"
    "  env: {A: \"1\", B: two}\n"
    "---\n"
    "jobs:\n"
    "  - {id: j1, type: system, task: noop}\n"
    "  - {id: j2, type: system, task: noop}\n"
    "---\n"
    "kind: List\n"
    "items:\n"
    "  - kind: Job\n"
    "    metadata: {name: k8s}\n"
    "    spec: {type: shell, command: \"true\", every: 1m}\n"
    "  - kind: Job\n"
    "    metadata: {name: named}\n"
    "    spec: {id: own, type: shell, command: \"true\"}\n"
    "---\n"
    "id: single\n"
    "type: shell\n"
    "argv: [/bin/echo, \"a b\", 3, true, null]\n";

static const char yaml_want[] =
    "[{\"id\": \"backup\", \"type\": \"shell\", \"schedule\": \"0 2 * * *\","
    " \"enabled\": \"yes\", \"paused\": \"off\", \"max_retries\": 3,"
    " \"ratio\": 0.5, \"big\": -12, \"hex\": \"0x1f\", \"nothing\": null,"
    " \"empty\": null, \"tags\": [\"nightly\", \"db\", \"x\"],"
    " \"env\": {\"A\": \"1\", \"B\": \"two\"}},"
    " {\"id\": \"j1\", \"type\": \"system\", \"task\": \"noop\"},"
    " {\"id\": \"j2\", \"type\": \"system\", \"task\": \"noop\"},"
    " {\"id\": \"k8s\", \"type\": \"shell\", \"command\": \"true\","
    " \"every\": \"1m\"},"
    " {\"id\": \"own\", \"type\": \"shell\", \"command\": \"true\"},"
    " {\"id\": \"single\", \"type\": \"shell\","
    " \"argv\": [\"/bin/echo\", \"a b\", 3, true, null]}]";

static void
test_yaml(void **state)
{
    static const struct {
        const char *yaml;
        const char *err;
    } bad[] = {
        { "- id: x\n  type: [unclosed\n", "3:1: while parsing a flow "
          "sequence: did not find expected ',' or ']'" },
        { "? [a, b]\n: c\n", "1:1: a key must be a plain name" },
        /* libyaml checks the text, so jansson never finds bad UTF-8 */
        { "a: \"\\uDC00\"\n", "1:7: while parsing a quoted scalar: found "
          "invalid Unicode character escape code" },
        { "a: 1\nb: \xff\n", "2:4: invalid leading UTF-8 octet" },
    };
    json_t *jobs, *want;
    char err[256];
    size_t i;

    (void) state;
    jobs = hg_client_yaml_jobs(yaml_stream, strlen(yaml_stream), err,
                               sizeof(err));
    if (jobs == NULL) {
        fail_msg("%s", err);
    }
    want = json_loads(yaml_want, 0, NULL);
    assert_non_null(want);
    if (!json_equal(jobs, want)) {
        char *got = json_dumps(jobs, JSON_COMPACT);
        fail_msg("got %s", got);
    }
    json_decref(jobs);
    json_decref(want);

    /* an empty stream has no jobs; errors say where */
    jobs = hg_client_yaml_jobs("", 0, err, sizeof(err));
    assert_true(json_is_array(jobs) && json_array_size(jobs) == 0);
    json_decref(jobs);
    for (i = 0; i < HG_NELEMS(bad); i++) {
        err[0] = '\0';
        jobs = hg_client_yaml_jobs(bad[i].yaml, strlen(bad[i].yaml), err,
                                   sizeof(err));
        if (jobs != NULL || strcmp(err, bad[i].err) != 0) {
            fail_msg("bad[%zu]: \"%s\"", i, err);
        }
    }

    /* nested deeper than the reader follows */
    {
        char deep[2 * 70 + 3];

        memset(deep, '[', 70);
        deep[70] = '1';
        memset(deep + 71, ']', 70);
        memcpy(deep + 141, "\n", 2);
        jobs = hg_client_yaml_jobs(deep, strlen(deep), err, sizeof(err));
        assert_null(jobs);
        assert_string_equal(err, "1:66: nested deeper than 64 levels");
    }
}

/* Each allocation refused in turn: "out of memory", or the same jobs;
 * never a list with a job or a key missing. */
static void
test_yaml_out_of_memory(void **state)
{
    json_t *jobs, *want;
    unsigned long failed = 0;
    char err[256];
    bool fired;

    (void) state;
    want = json_loads(yaml_want, 0, NULL);
    assert_non_null(want);
    for (FAULT_ALLOC_LOOP(n)) {
        err[0] = '\0';
        fault_alloc_arm(n);
        jobs = hg_client_yaml_jobs(yaml_stream, strlen(yaml_stream), err,
                                   sizeof(err));
        fired = fault_alloc_disarm();
        if (jobs == NULL) {
            if (!fired || strcmp(err, "out of memory") != 0) {
                fail_msg("allocation %lu refused: \"%s\"", n, err);
            }
            failed++;
        } else if (!json_equal(jobs, want)) {
            char *got = json_dumps(jobs, JSON_COMPACT);
            fail_msg("allocation %lu refused: other jobs: %s", n, got);
        }
        json_decref(jobs);
        if (!fired) {
            break;
        }
    }
    json_decref(want);
    print_message("refusals that failed it: %lu\n", failed);
    assert_true(failed > 0);
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
        cmocka_unit_test(test_yaml),
        cmocka_unit_test(test_yaml_out_of_memory),
    };

    fault_alloc_setup();
    setenv("TZ", "Europe/Berlin", 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
