/*
 * Unit tests for the hand-over of a cycle from the cycle reader to the
 * master (hg_cycle_json.c): a configuration with every key set, turned into
 * the reader's JSON and rebuilt, is the same configuration (its -T dump,
 * its tokens, each job's definition, file and line, the parsed schedules);
 * and a result that is not one is an error, not a crash.
 */

#include "hg_core.h"

#include <setjmp.h>
#include <cmocka.h>

#include "hg_cycle.h"
#include "hg_cycle_reader.h"

#include "test_dump.h"
#include "fault_alloc.h"

static char tmpdir[64];
static char conf_path[PATH_MAX];

static const char full_conf[] =
    "daemon = true;\n"
    "pid = \"run/hg.pid\";\n"
    "workers = 8;\n"
    "timezone = \"Europe/Berlin\";\n"
    "shutdown_timeout = \"1m30s\";\n"
    "reload_timeout = \"5s\";\n"
    "log = { file = \"/var/log/hg.log\"; level = \"debug\"; "
    "format = \"json\"; };\n"
    "modules = { path = \"/usr/lib/hourglass\"; load = [ \"shell\" ];\n"
    "    shell = { shell = \"/bin/bash\"; mixed = ( 1, \"two\", 3.5 ); }; };\n"
    "store = { driver = \"memory\"; retention = \"7d\"; };\n"
    "api = { listen = \"0.0.0.0:9090\"; allow = [ \"10.0.0.0/8\" ];\n"
    "    tokens = ( { name = \"ops\"; token = \"s3cret\"; role = \"admin\"; },\n"
    "               { name = \"ci\"; token = \"t$$0ken\"; role = \"execute\"; } );\n"
    "    body_limit = \"64KiB\"; };\n"
    "defaults = { timeout = \"10m\"; max_retries = 5; overlap = \"queue\";\n"
    "    backoff = { initial = \"2s\"; multiplier = 1.5; jitter = 0.25; }; };\n"
    "jobs = (\n"
    "    { id = \"backup\"; name = \"Nightly\"; type = \"shell\";\n"
    "      schedule = \"0 2 * * *\"; timezone = \"UTC\"; enabled = false;\n"
    "      backoff = { initial = \"5s\"; }; priority = \"critical\";\n"
    "      tags = [ \"db\" ]; command = \"pg_dump > /tmp/x\"; },\n"
    "    { id = \"tick\"; type = \"shell\"; command = \"true\"; every = \"500ms\";\n"
    "      start_at = \"2026-01-01T00:00:00Z\"; },\n"
    "    { id = \"once\"; type = \"shell\"; command = \"true\";\n"
    "      at = \"2026-12-01T09:00:00+01:00\"; },\n"
    "    { id = \"manual\"; type = \"shell\"; argv = [ \"/bin/true\" ]; },\n"
    /* a variable in a shell command reaches it through pass_env */
    "    { id = \"secret\"; type = \"shell\";\n"
    "      command = \"curl -u \\\"${HG_TEST_CYCLE_PW}\\\" x\"; }\n"
    ");\n";

static int
setup(void **state)
{
    FILE *f;

    HG_UNUSED(state);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/hg_test_cycle.XXXXXX");
    if (mkdtemp(tmpdir) == NULL
        || setenv("HG_TEST_CYCLE_PW", "hunter2", 1) != 0)
    {
        return -1;
    }
    snprintf(conf_path, sizeof(conf_path), "%s/scheduler.conf", tmpdir);
    f = fopen(conf_path, "w");
    if (f == NULL || fputs(full_conf, f) < 0 || fclose(f) != 0) {
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    HG_UNUSED(state);
    unlink(conf_path);
    return rmdir(tmpdir);
}

/* What a cycle reader that read CYCLE writes to the master. */
static char *
reader_result(const hg_cycle_t *cycle)
{
    json_t *doc;
    char err[256], *text;

    doc = hg_cycle_to_json(cycle, err, sizeof(err));
    assert_non_null(doc);
    doc = json_pack("{s:s,s:o}", "result", "ok", "cycle", doc);
    assert_non_null(doc);
    text = json_dumps(doc, JSON_COMPACT);
    assert_non_null(text);
    json_decref(doc);
    return text;
}

static void
test_hand_over_keeps_everything(void **state)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    hg_cycle_t read, *built;
    hg_conf_t *conf;
    char *text, *d1, *d2;
    size_t i;

    HG_UNUSED(state);
    /* what the reader has (its modules aside: nothing here loads them) */
    conf = hg_conf_load(conf_path, tmpdir, &errors);
    assert_non_null(conf);
    assert_int_equal(errors.count, 0);
    memset(&read, 0, sizeof(read));
    read.conf = conf;
    text = reader_result(&read);

    built = hg_cycle_reader_cycle(text, strlen(text), conf_path, tmpdir,
                                  &errors);
    free(text);
    if (built == NULL) {
        hg_conf_errors_print(&errors, stderr);
    }
    assert_non_null(built);
    d1 = dump_text(conf);
    d2 = dump_text(built->conf);
    assert_string_equal(d1, d2);
    free(d1);
    free(d2);

    /* what the dump masks or leaves out */
    assert_int_equal(built->conf->reload_timeout_ms, 5000);
    assert_int_equal(built->conf->api.ntokens, 2);
    assert_string_equal(built->conf->api.tokens[1].token, "t$0ken");
    assert_true(built->conf->api.enabled);
    assert_true(json_equal(built->conf->modules.sections,
                           conf->modules.sections));
    assert_int_equal(built->njobs, conf->njobs);
    for (i = 0; i < conf->njobs; i++) {
        const hg_job_conf_t *a = &conf->jobs[i], *b = &built->conf->jobs[i];

        assert_string_equal(a->definition_text, b->definition_text);
        assert_string_equal(a->file, b->file);
        assert_int_equal(a->line, b->line);
        assert_int_equal(a->schedule_kind, b->schedule_kind);
        assert_true(memcmp(&a->policy, &b->policy, sizeof(a->policy)) == 0);
    }
    /* schedules parsed on the master's side */
    assert_non_null(built->jobs[0].cron);
    assert_int_equal(built->jobs[1].every_ms, 500);
    assert_true(built->jobs[1].has_start_at);
    assert_int_equal(built->jobs[2].at, 1796112000);
    assert_int_equal(built->modules.count, 0);      /* not opened yet */
    assert_non_null(strstr(built->conf->jobs[4].definition_text,
                           "\"pass_env\":[\"HG_TEST_CYCLE_PW\"]"));

    hg_cycle_destroy(built);
    hg_conf_free(conf);
    hg_conf_errors_free(&errors);
}

static void
test_a_bad_result_is_an_error(void **state)
{
    static const char *const bad[] = {
        "",
        "{\"result\": \"ok\"",
        "[1, 2]",
        "{\"result\": \"ok\", \"cycle\": {\"file\": \"x\"}}",
        "{\"result\": \"ok\", \"cycle\": {\"conf\": {}, \"jobs\": [], "
        "\"file\": \"x\", \"module_sections\": {}, "
        "\"module_section_lines\": {}}}",
        "{\"result\": \"failed\"}",
    };
    static const char failed[] =
        "{\"result\": \"failed\", \"errors\": [{\"file\": \"F\", "
        "\"line\": 7, \"message\": \"job \\\"x\\\": no\"}]}";
    hg_conf_errors_t errors = { NULL, 0, 0 };
    size_t i;

    HG_UNUSED(state);
    for (i = 0; i < HG_NELEMS(bad); i++) {
        assert_null(hg_cycle_reader_cycle(bad[i], strlen(bad[i]), "F",
                                          tmpdir, &errors));
        assert_true(errors.count > 0);
        hg_conf_errors_free(&errors);
    }
    assert_null(hg_cycle_reader_cycle(failed, strlen(failed), "F", tmpdir,
                                      &errors));
    assert_int_equal(errors.count, 1);
    assert_int_equal(errors.items[0].line, 7);
    assert_string_equal(errors.items[0].message, "job \"x\": no");
    hg_conf_errors_free(&errors);
}


/* One refusal's outcome: NULL with at least one message in ERRORS (which
 * is then emptied), or a configuration whose dump is WANT. */
static void
check_refused(const char *stage, unsigned long n, const hg_conf_t *conf,
              hg_conf_errors_t *errors, const char *want)
{
    char *got;

    if (conf == NULL) {
        if (errors->count == 0) {
            fail_msg("%s, allocation %lu refused: failed without a message",
                     stage, n);
        }
        hg_conf_errors_free(errors);
        return;
    }
    assert_int_equal(errors->count, 0);
    got = dump_text(conf);
    if (strcmp(got, want) != 0) {
        fail_msg("%s, allocation %lu refused: another configuration:\n%s",
                 stage, n, got);
    }
    free(got);
}

/* Reading the file, turning it into the reader's JSON and rebuilding the
 * cycle from that JSON, each with allocation 1, 2, ... refused in turn:
 * each step fails with a message (the one of -t or of a refused reload)
 * or gives the very configuration it gives without faults; never another
 * one, and a failure leaves nothing behind that changes the next read
 * (the time zone cache among others). */
static void
test_out_of_memory(void **state)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    hg_cycle_t read, *built;
    hg_conf_t *conf;
    json_t *doc;
    char err[256], *text, *want;
    unsigned long failures[3] = { 0, 0, 0 };
    bool fired;

    HG_UNUSED(state);
    conf = hg_conf_load(conf_path, tmpdir, &errors);
    assert_non_null(conf);
    want = dump_text(conf);
    hg_conf_free(conf);

    for (FAULT_ALLOC_LOOP(n)) {
        fault_alloc_arm(n);
        conf = hg_conf_load(conf_path, tmpdir, &errors);
        fired = fault_alloc_disarm();
        check_refused("reading the file", n, conf, &errors, want);
        failures[0] += conf == NULL;
        hg_conf_free(conf);
        if (!fired) {
            break;
        }
    }

    conf = hg_conf_load(conf_path, tmpdir, &errors);
    assert_non_null(conf);
    memset(&read, 0, sizeof(read));
    read.conf = conf;
    for (FAULT_ALLOC_LOOP(n)) {
        err[0] = '\0';
        fault_alloc_arm(n);
        doc = hg_cycle_to_json(&read, err, sizeof(err));
        fired = fault_alloc_disarm();
        if (doc == NULL) {
            assert_true(fired);
            if (err[0] == '\0') {
                fail_msg("to JSON, allocation %lu refused: no message", n);
            }
            failures[1]++;
            continue;
        }
        json_decref(doc);
        if (!fired) {
            break;
        }
    }

    text = reader_result(&read);
    /* the parse itself spared: jansson's lexer drops a character when
     * it cannot grow a token (see fault_alloc.h), which the reader cannot
     * tell from a document that has one less */
    fault_alloc_spare_json(true);
    for (FAULT_ALLOC_LOOP(n)) {
        fault_alloc_arm(n);
        built = hg_cycle_reader_cycle(text, strlen(text), conf_path, tmpdir,
                                      &errors);
        fired = fault_alloc_disarm();
        check_refused("rebuilding the cycle", n,
                      built != NULL ? built->conf : NULL, &errors, want);
        failures[2] += built == NULL;
        if (built != NULL) {
            hg_cycle_destroy(built);
        }
        if (!fired) {
            break;
        }
    }
    fault_alloc_spare_json(false);
    print_message("refusals that failed it: reading %lu, to JSON %lu, "
                  "rebuilding %lu\n", failures[0], failures[1], failures[2]);
    assert_true(failures[0] > 0 && failures[1] > 0 && failures[2] > 0);
    free(text);
    free(want);
    hg_conf_free(conf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hand_over_keeps_everything,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_bad_result_is_an_error,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
    };

    fault_alloc_setup();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
