/*
 * Unit tests for hg_conf: scheduler.conf read into hg_conf_t.
 *
 * Every configuration is written into a fresh mkdtemp directory and read
 * from there; messages are compared as `hourglass -t` prints them, with
 * that directory shown as "T". Covers: every key of a full file with its
 * exact value, the defaults, ${VAR} expansion, @include, the -T dump read
 * back to an equal configuration, module keys, hints, and a table of bad
 * files, each with the exact file:line and message expected.
 */

#define _XOPEN_SOURCE 700
#include "hg_core.h"

#include <ftw.h>
#include <glob.h>
#include <setjmp.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "hg_conf.h"

#include "test_dump.h"
#include "fault_alloc.h"

#define PREFIX  "/opt/hg"

static char tmpdir[64];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    HG_UNUSED(st);
    HG_UNUSED(flag);
    HG_UNUSED(ftw);
    return remove(path);
}

static int
setup(void **state)
{
    char path[PATH_MAX];

    HG_UNUSED(state);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/hg_test_conf.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        return -1;
    }
    snprintf(path, sizeof(path), "%s/jobs.d", tmpdir);
    if (mkdir(path, 0700) != 0) {
        return -1;
    }
    setenv("HG_T_HOME", "/srv/hg", 1);
    setenv("HG_T_EMPTY", "", 1);
    setenv("HG_T_DOLLAR", "a$b", 1);
    unsetenv("HG_T_UNSET");
    return 0;
}

static int
teardown(void **state)
{
    HG_UNUSED(state);
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
write_file(const char *name, const char *text)
{
    char path[PATH_MAX];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static hg_conf_t *
load_file(const char *name, hg_conf_errors_t *errors)
{
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    return hg_conf_load(path, PREFIX, errors);
}

static hg_conf_t *
load_text(const char *text, hg_conf_errors_t *errors)
{
    write_file("scheduler.conf", text);
    return load_file("scheduler.conf", errors);
}

/* The errors as printed, the temporary directory shown as "T". */
static char *
errors_text(const hg_conf_errors_t *errors)
{
    char *raw = NULL, *out, *p, *w;
    size_t len = 0, dl = strlen(tmpdir);
    FILE *m = open_memstream(&raw, &len);

    assert_non_null(m);
    hg_conf_errors_print(errors, m);
    assert_int_equal(fclose(m), 0);
    out = malloc(len + 1);
    assert_non_null(out);
    for (p = raw, w = out; *p != '\0'; ) {
        if (strncmp(p, tmpdir, dl) == 0) {
            *w++ = 'T';
            p += dl;
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
    free(raw);
    return out;
}

static void
assert_no_errors(const hg_conf_errors_t *errors)
{
    if (errors->count > 0) {
        char *text = errors_text(errors);
        print_error("unexpected errors:\n%s", text);
        free(text);
        fail();
    }
}

static void
assert_str_or_null(const char *got, const char *want)
{
    if (want == NULL) {
        assert_null(got);
    } else {
        assert_non_null(got);
        assert_string_equal(got, want);
    }
}

/* --- the defaults ----------------------------------------------------- */

static void
assert_default_policy(const hg_job_policy_t *p)
{
    assert_int_equal(p->timeout_ms, 300000);
    assert_int_equal(p->max_retries, 3);
    assert_int_equal(p->backoff.initial_ms, 1000);
    assert_int_equal(p->backoff.max_ms, 3600000);
    assert_true(p->backoff.multiplier == 2.0);
    assert_true(p->backoff.jitter == 0.1);
    assert_int_equal(p->overlap, HG_OVERLAP_SKIP);
    assert_int_equal(p->misfire, HG_MISFIRE_RUN_ONCE);
    assert_int_equal(p->starting_deadline_ms, 0);
    assert_int_equal(p->priority, HG_PRIORITY_NORMAL);
    assert_int_equal(p->jitter_ms, 0);
}

static void
test_defaults(void **state)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    hg_conf_t *conf;

    HG_UNUSED(state);
    conf = load_text("# nothing but a comment\n", &errors);
    assert_non_null(conf);
    assert_no_errors(&errors);

    assert_string_equal(conf->prefix, PREFIX);
    assert_false(conf->daemon);
    assert_string_equal(conf->pid, PREFIX "/var/hourglass.pid");
    {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);    /* "auto" */

        assert_int_equal(conf->workers,
                         cpus < 1 ? 1 : cpus > 1024 ? 1024 : cpus);
    }
    assert_null(conf->timezone);
    assert_int_equal(conf->shutdown_timeout_ms, 30000);
    assert_string_equal(conf->log.file, "-");
    assert_int_equal(conf->log.level, HG_LOG_INFO);
    assert_int_equal(conf->log.format, HG_LOG_FORMAT_TEXT);
    assert_string_equal(conf->modules.path, PREFIX "/modules");
    assert_non_null(conf->modules.load);        /* empty, never NULL */
    assert_null(conf->modules.load[0]);
    assert_int_equal(conf->modules.nload, 0);
    assert_true(json_is_object(conf->modules.sections));
    assert_int_equal(json_object_size(conf->modules.sections), 0);
    assert_true(json_is_object(conf->modules.section_lines));
    assert_string_equal(conf->store.driver, "sqlite");
    assert_string_equal(conf->store.path, PREFIX "/var/hourglass.db");
    assert_null(conf->store.url);
    assert_int_equal(conf->store.retention_ms, 30 * 86400000LL);
    assert_false(conf->api.enabled);
    assert_null(conf->api.listen);
    assert_int_equal(conf->api.nallow, 0);
    assert_int_equal(conf->api.ntokens, 0);
    assert_default_policy(&conf->defaults);
    assert_int_equal(conf->njobs, 0);
    assert_null(hg_conf_find_job(conf, "anything"));

    hg_conf_free(conf);
    hg_conf_errors_free(&errors);
}

static void
test_api_defaults(void **state)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    hg_conf_t *conf;

    HG_UNUSED(state);
    /* the api runs only when its section is written, then with defaults */
    conf = load_text("api = { };\n", &errors);
    assert_non_null(conf);
    assert_no_errors(&errors);
    assert_true(conf->api.enabled);
    assert_string_equal(conf->api.listen, "127.0.0.1:8080");
    assert_int_equal(conf->api.nallow, 2);
    assert_string_equal(conf->api.allow[0], "127.0.0.0/8");
    assert_string_equal(conf->api.allow[1], "::1/128");
    assert_null(conf->api.allow[2]);
    assert_int_equal(conf->api.ntokens, 0);
    assert_int_equal(conf->api.body_limit, 1048576);
    hg_conf_free(conf);
    hg_conf_errors_free(&errors);
}

/* --- a file with every key -------------------------------------------- */

static const char full_conf[] =
    "# every key, none at its default\n"                            /* 1 */
    "daemon = true;\n"
    "pid = \"run/hg.pid\";\n"
    "workers = 8;\n"
    "timezone = \"Europe/Berlin\";\n"                               /* 5 */
    "shutdown_timeout = \"1m30s\";\n"
    "log = { file = \"/var/log/hg.log\"; level = \"debug\"; format = \"json\"; };\n"
    "modules = {\n"
    "    path = \"/usr/lib/hourglass\";\n"
    "    load = [ \"shell\", \"/opt/x/custom.so\" ];\n"             /* 10 */
    "    shell = { shell = \"/bin/bash\"; limits = { nofile = 1024; };\n"
    "              mixed = ( 1, \"two\", 3.5, true, [ 1, 2 ] ); };\n"
    "};\n"
    "store = { driver = \"postgres\"; path = \"db/x.db\"; url = \"postgresql://u@h/db\";\n"
    "          retention = \"7d\"; };\n"                            /* 15 */
    "api = {\n"
    "    listen = \"0.0.0.0:9090\";\n"
    "    allow = [ \"10.0.0.0/8\", \"::1\" ];\n"
    "    tokens = (\n"
    "        { name = \"ops\"; token = \"s3cret\"; role = \"admin\"; },\n"   /* 20 */
    "        { name = \"ci\"; token = \"t0ken\"; role = \"execute\"; }\n"
    "    );\n"
    "    body_limit = \"64KiB\";\n"
    "};\n"
    "defaults = {\n"                                                /* 25 */
    "    timeout = \"10m\"; max_retries = 5; overlap = \"queue\"; misfire = \"run_all\";\n"
    "    starting_deadline = \"30s\"; priority = \"high\"; jitter = \"5s\";\n"
    "    backoff = { initial = \"2s\"; max = \"30m\"; multiplier = 1.5; jitter = 0.25; };\n"
    "};\n"
    "jobs = (\n"                                                    /* 30 */
    "    {\n"
    "        id = \"backup\";\n"
    "        name = \"Nightly backup\";\n"
    "        description = \"dumps the database\";\n"
    "        type = \"shell\";\n"                                   /* 35 */
    "        schedule = \"0 2 * * *\";\n"
    "        timezone = \"UTC\";\n"
    "        enabled = false;\n"
    "        timeout = \"2h\";\n"
    "        max_retries = 0;\n"                                    /* 40 */
    "        backoff = { initial = \"5s\"; };\n"
    "        overlap = \"replace\";\n"
    "        misfire = \"skip\";\n"
    "        starting_deadline = \"1h\";\n"
    "        priority = \"critical\";\n"                            /* 45 */
    "        jitter = \"1m\";\n"
    "        tags = [ \"db\", \"nightly\" ];\n"
    "        command = \"pg_dump > /tmp/x\";\n"
    "        env = { PGHOST = \"localhost\"; };\n"
    "        output_limit = \"1MiB\";\n"                            /* 50 */
    "    },\n"
    "    { id = \"tick\"; type = \"system\"; task = \"noop\"; every = \"500ms\";\n"
    "      start_at = \"2026-01-01T00:00:00Z\"; },\n"
    "    { id = \"once\"; type = \"http\"; url = \"http://x/\"; expect = [ 200, 204 ];\n"
    "      at = \"2026-12-01T09:00:00+01:00\"; },\n"                /* 55 */
    "    { id = \"manual\"; type = \"shell\"; argv = [ \"/bin/true\" ];\n"
    "      big = 5000000000L; ratio = 0.5; }\n"
    ");\n";

static void
assert_key_line(const hg_job_conf_t *job, const char *key, int line)
{
    if (hg_conf_job_key_line(job, key) != line) {
        fail_msg("job \"%s\" key \"%s\": line %d, want %d", job->id, key,
                 hg_conf_job_key_line(job, key), line);
    }
}

static void
test_full(void **state)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    const hg_job_conf_t *job;
    hg_conf_t *conf;
    char *text;
    json_t *want;

    HG_UNUSED(state);
    conf = load_text(full_conf, &errors);
    assert_non_null(conf);
    assert_no_errors(&errors);

    assert_true(conf->daemon);
    assert_string_equal(conf->pid, PREFIX "/run/hg.pid");
    assert_int_equal(conf->workers, 8);
    assert_string_equal(conf->timezone, "Europe/Berlin");
    assert_int_equal(conf->shutdown_timeout_ms, 90000);
    assert_string_equal(conf->log.file, "/var/log/hg.log");
    assert_int_equal(conf->log.level, HG_LOG_DEBUG);
    assert_int_equal(conf->log.format, HG_LOG_FORMAT_JSON);

    assert_string_equal(conf->modules.path, "/usr/lib/hourglass");
    assert_int_equal(conf->modules.nload, 2);
    assert_string_equal(conf->modules.load[0], "shell");
    assert_string_equal(conf->modules.load[1], "/opt/x/custom.so");
    assert_null(conf->modules.load[2]);
    want = json_loads("{\"shell\": {\"shell\": \"/bin/bash\", "
                      "\"limits\": {\"nofile\": 1024}, "
                      "\"mixed\": [1, \"two\", 3.5, true, [1, 2]]}}", 0, NULL);
    assert_non_null(want);
    assert_true(json_equal(conf->modules.sections, want));
    json_decref(want);
    assert_int_equal(json_integer_value(json_object_get(
                         conf->modules.section_lines, "shell")), 11);

    assert_string_equal(conf->store.driver, "postgres");
    assert_string_equal(conf->store.path, PREFIX "/db/x.db");
    assert_string_equal(conf->store.url, "postgresql://u@h/db");
    assert_int_equal(conf->store.retention_ms, 7 * 86400000LL);

    assert_true(conf->api.enabled);
    assert_string_equal(conf->api.listen, "0.0.0.0:9090");
    assert_int_equal(conf->api.nallow, 2);
    assert_string_equal(conf->api.allow[0], "10.0.0.0/8");
    assert_string_equal(conf->api.allow[1], "::1");
    assert_int_equal(conf->api.ntokens, 2);
    assert_string_equal(conf->api.tokens[0].name, "ops");
    assert_string_equal(conf->api.tokens[0].token, "s3cret");
    assert_string_equal(conf->api.tokens[0].role, "admin");
    assert_string_equal(conf->api.tokens[1].name, "ci");
    assert_string_equal(conf->api.tokens[1].token, "t0ken");
    assert_string_equal(conf->api.tokens[1].role, "execute");
    assert_int_equal(conf->api.body_limit, 65536);

    assert_int_equal(conf->defaults.timeout_ms, 600000);
    assert_int_equal(conf->defaults.max_retries, 5);
    assert_int_equal(conf->defaults.overlap, HG_OVERLAP_QUEUE);
    assert_int_equal(conf->defaults.misfire, HG_MISFIRE_RUN_ALL);
    assert_int_equal(conf->defaults.starting_deadline_ms, 30000);
    assert_int_equal(conf->defaults.priority, HG_PRIORITY_HIGH);
    assert_int_equal(conf->defaults.jitter_ms, 5000);
    assert_int_equal(conf->defaults.backoff.initial_ms, 2000);
    assert_int_equal(conf->defaults.backoff.max_ms, 1800000);
    assert_true(conf->defaults.backoff.multiplier == 1.5);
    assert_true(conf->defaults.backoff.jitter == 0.25);

    assert_int_equal(conf->njobs, 4);

    /* every common key given */
    job = hg_conf_find_job(conf, "backup");
    assert_ptr_equal(job, &conf->jobs[0]);
    assert_string_equal(job->name, "Nightly backup");
    assert_string_equal(job->description, "dumps the database");
    assert_string_equal(job->type, "shell");
    assert_int_equal(job->schedule_kind, HG_SCHEDULE_CRON);
    assert_string_equal(job->schedule, "0 2 * * *");
    assert_int_equal(job->every_ms, 0);
    assert_null(job->at);
    assert_null(job->start_at);
    assert_string_equal(job->timezone, "UTC");
    assert_false(job->enabled);
    assert_int_equal(job->policy.timeout_ms, 7200000);
    assert_int_equal(job->policy.max_retries, 0);
    assert_int_equal(job->policy.backoff.initial_ms, 5000);
    assert_int_equal(job->policy.backoff.max_ms, 1800000);   /* defaults' */
    assert_true(job->policy.backoff.multiplier == 1.5);
    assert_true(job->policy.backoff.jitter == 0.25);
    assert_int_equal(job->policy.overlap, HG_OVERLAP_REPLACE);
    assert_int_equal(job->policy.misfire, HG_MISFIRE_SKIP);
    assert_int_equal(job->policy.starting_deadline_ms, 3600000);
    assert_int_equal(job->policy.priority, HG_PRIORITY_CRITICAL);
    assert_int_equal(job->policy.jitter_ms, 60000);
    assert_int_equal(json_array_size(job->tags), 2);
    assert_string_equal(json_string_value(json_array_get(job->tags, 0)), "db");
    assert_string_equal(json_string_value(json_array_get(job->tags, 1)),
                        "nightly");
    assert_string_equal(job->definition_text,
        "{\"backoff\":{\"initial\":\"5s\"},\"command\":\"pg_dump > /tmp/x\","
        "\"description\":\"dumps the database\",\"enabled\":false,"
        "\"env\":{\"PGHOST\":\"localhost\"},\"id\":\"backup\","
        "\"jitter\":\"1m\",\"max_retries\":0,\"misfire\":\"skip\","
        "\"name\":\"Nightly backup\",\"output_limit\":\"1MiB\","
        "\"overlap\":\"replace\",\"priority\":\"critical\","
        "\"schedule\":\"0 2 * * *\",\"starting_deadline\":\"1h\","
        "\"tags\":[\"db\",\"nightly\"],\"timeout\":\"2h\","
        "\"timezone\":\"UTC\",\"type\":\"shell\"}");
    text = json_dumps(job->definition, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, job->definition_text);
    free(text);
    assert_non_null(job->file);
    assert_int_equal(strncmp(job->file, tmpdir, strlen(tmpdir)), 0);
    assert_string_equal(job->file + strlen(tmpdir), "/scheduler.conf");
    assert_int_equal(job->line, 31);
    assert_int_equal(json_object_size(job->key_lines), 19);
    assert_key_line(job, "id", 32);
    assert_key_line(job, "type", 35);
    assert_key_line(job, "backoff", 41);
    assert_key_line(job, "backoff.initial", 41);
    assert_key_line(job, "command", 48);
    assert_key_line(job, "env.PGHOST", 49);
    assert_key_line(job, "output_limit", 50);
    assert_key_line(job, "not-there", 31);
    assert_key_line(job, NULL, 31);

    /* the rest from defaults, fixed rate */
    job = hg_conf_find_job(conf, "tick");
    assert_ptr_equal(job, &conf->jobs[1]);
    assert_int_equal(job->schedule_kind, HG_SCHEDULE_EVERY);
    assert_int_equal(job->every_ms, 500);
    assert_string_equal(job->start_at, "2026-01-01T00:00:00Z");
    assert_null(job->schedule);
    assert_null(job->timezone);
    assert_null(job->name);
    assert_true(job->enabled);
    assert_memory_equal(&job->policy.backoff, &conf->defaults.backoff,
                        sizeof(hg_backoff_t));
    assert_int_equal(job->policy.timeout_ms, 600000);
    assert_int_equal(job->policy.max_retries, 5);
    assert_int_equal(job->policy.overlap, HG_OVERLAP_QUEUE);
    assert_int_equal(job->policy.priority, HG_PRIORITY_HIGH);
    assert_true(json_is_array(job->tags));
    assert_int_equal(json_array_size(job->tags), 0);
    assert_int_equal(job->line, 52);
    assert_key_line(job, "start_at", 53);

    job = hg_conf_find_job(conf, "once");
    assert_int_equal(job->schedule_kind, HG_SCHEDULE_AT);
    assert_string_equal(job->at, "2026-12-01T09:00:00+01:00");
    assert_string_equal(job->definition_text,
        "{\"at\":\"2026-12-01T09:00:00+01:00\",\"expect\":[200,204],"
        "\"id\":\"once\",\"type\":\"http\",\"url\":\"http://x/\"}");

    job = hg_conf_find_job(conf, "manual");
    assert_int_equal(job->schedule_kind, HG_SCHEDULE_NONE);
    assert_string_equal(job->definition_text,
        "{\"argv\":[\"/bin/true\"],\"big\":5000000000,\"id\":\"manual\","
        "\"ratio\":0.5,\"type\":\"shell\"}");

    hg_conf_free(conf);
    hg_conf_errors_free(&errors);
}

static void
test_workers_auto(void **state)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    hg_conf_t *conf;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    HG_UNUSED(state);
    conf = load_text("workers = \"auto\";\n", &errors);
    assert_non_null(conf);
    assert_no_errors(&errors);
    assert_int_equal(conf->workers, cpus < 1 ? 1 : cpus > 1024 ? 1024 : cpus);
    hg_conf_free(conf);
    hg_conf_errors_free(&errors);
}

/* Jobs start from `defaults` wherever the file puts them. */
static void
test_defaults_after_jobs(void **state)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    hg_conf_t *conf;

    HG_UNUSED(state);
    conf = load_text(
        "jobs = ( { id = \"x\"; type = \"t\"; backoff = { max = \"2h\"; }; } );\n"
        "defaults = { timeout = \"1m\"; backoff = { initial = \"3s\"; }; };\n",
        &errors);
    assert_non_null(conf);
    assert_no_errors(&errors);
    assert_int_equal(conf->jobs[0].policy.timeout_ms, 60000);
    assert_int_equal(conf->jobs[0].policy.backoff.initial_ms, 3000);
    assert_int_equal(conf->jobs[0].policy.backoff.max_ms, 7200000);
    assert_true(conf->jobs[0].policy.backoff.multiplier == 2.0);
    hg_conf_free(conf);
    hg_conf_errors_free(&errors);
}

/* --- ${VAR} ----------------------------------------------------------- */

static const char env_conf[] =
    "pid = \"${HG_T_HOME}/run/hg.pid\";\n"
    "timezone = \"${HG_T_UNSET:-Europe/Paris}\";\n"
    "log = { file = \"${HG_T_EMPTY:-/var/log/x.log}\"; };\n"
    "modules = {\n"
    "    load = [ \"${HG_T_UNSET:-shell}\", \"sys${HG_T_EMPTY}tem\" ];\n"
    "    shell = { home = \"${HG_T_HOME}\";\n"
    "              nested = { list = ( \"${HG_T_HOME}/a\", { deep = \"$${NOT}\"; } ); }; };\n"
    "};\n"
    "api = { tokens = ( { name = \"ops\"; token = \"${HG_T_HOME}\"; role = \"admin\"; } ); };\n"
    "jobs = ( {\n"
    "    id = \"e\"; type = \"shell\";\n"
    "    command = \"echo $HOME $$ $${HG_T_HOME} ${HG_T_HOME} ${HG_T_DOLLAR} 100$\";\n"
    "    schedule = \"${HG_T_UNSET:-*/5 * * * *}\";\n"
    "    argv = [ \"${HG_T_HOME}\" ];\n"
    "    env = { A = \"${HG_T_HOME}\"; B = \"${HG_T_EMPTY}\"; };\n"
    "    timeout = \"${HG_T_UNSET:-90s}\";\n"
    "} );\n";

static void
test_env(void **state)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    const hg_job_conf_t *job;
    hg_conf_t *conf;
    json_t *want;

    HG_UNUSED(state);
    conf = load_text(env_conf, &errors);
    assert_non_null(conf);
    assert_no_errors(&errors);

    assert_string_equal(conf->pid, "/srv/hg/run/hg.pid");
    assert_string_equal(conf->timezone, "Europe/Paris");
    /* as in sh, :- also replaces a variable set to "" */
    assert_string_equal(conf->log.file, "/var/log/x.log");
    assert_string_equal(conf->modules.load[0], "shell");
    assert_string_equal(conf->modules.load[1], "system");
    want = json_loads("{\"shell\": {\"home\": \"/srv/hg\", \"nested\": "
                      "{\"list\": [\"/srv/hg/a\", {\"deep\": \"${NOT}\"}]}}}",
                      0, NULL);
    assert_true(json_equal(conf->modules.sections, want));
    json_decref(want);
    assert_string_equal(conf->api.tokens[0].token, "/srv/hg");

    job = &conf->jobs[0];
    /* a shell command keeps its references for sh; their names go to
     * pass_env (values are never pasted into shell text) */
    assert_string_equal(json_string_value(json_object_get(job->definition,
                                                          "command")),
                        "echo $HOME $ ${HG_T_HOME} ${HG_T_HOME} "
                        "${HG_T_DOLLAR} 100$");
    assert_string_equal(job->schedule, "*/5 * * * *");
    assert_int_equal(job->policy.timeout_ms, 90000);
    want = json_loads("{\"id\": \"e\", \"type\": \"shell\", \"command\": "
                      "\"echo $HOME $ ${HG_T_HOME} ${HG_T_HOME} "
                      "${HG_T_DOLLAR} 100$\", "
                      "\"pass_env\": [\"HG_T_HOME\", \"HG_T_DOLLAR\"], "
                      "\"schedule\": \"*/5 * * * *\", \"argv\": [\"/srv/hg\"], "
                      "\"env\": {\"A\": \"/srv/hg\", \"B\": \"\"}, "
                      "\"timeout\": \"90s\"}", 0, NULL);
    assert_true(json_equal(job->definition, want));
    json_decref(want);

    hg_conf_free(conf);
    hg_conf_errors_free(&errors);
}

static void
expect_expand(const char *text, const char *want)
{
    char *out = NULL, err[256] = "";

    if (hg_conf_expand_env(text, &out, err, sizeof(err)) != HG_OK) {
        fail_msg("\"%s\": %s", text, err);
    }
    assert_string_equal(out, want);
    free(out);
}

static void
expect_expand_error(const char *text, const char *want)
{
    char *out = (char *) "untouched", err[256] = "";

    assert_int_equal(hg_conf_expand_env(text, &out, err, sizeof(err)),
                     HG_ERROR);
    assert_null(out);
    assert_string_equal(err, want);
}

static void
test_expand(void **state)
{
    HG_UNUSED(state);
    expect_expand("", "");
    expect_expand("plain", "plain");
    expect_expand("$", "$");
    expect_expand("a$", "a$");
    expect_expand("$$", "$");
    expect_expand("$$$$", "$$");
    expect_expand("$$$", "$$");
    expect_expand("$HOME", "$HOME");
    expect_expand("${HG_T_HOME}", "/srv/hg");
    expect_expand("x${HG_T_HOME}y${HG_T_HOME}", "x/srv/hgy/srv/hg");
    expect_expand("${HG_T_EMPTY}", "");
    expect_expand("${HG_T_UNSET:-}", "");
    expect_expand("${HG_T_UNSET:-a:-b}", "a:-b");
    expect_expand("${HG_T_UNSET:-a b c}", "a b c");
    expect_expand("${HG_T_HOME:-default}", "/srv/hg");
    expect_expand("${HG_T_DOLLAR}", "a$b");         /* not expanded twice */
    expect_expand("$${HG_T_HOME}", "${HG_T_HOME}");

    expect_expand_error("${HG_T_UNSET}", "environment variable "
                        "\"HG_T_UNSET\" is not set (use ${HG_T_UNSET:-default})");
    expect_expand_error("a ${HG_T_HOME", "unterminated \"${\" (end it with "
                        "\"}\", or write \"$$\" for a literal \"$\")");
    expect_expand_error("${}", "\"${}\" is not a valid reference: a variable "
                        "name is letters, digits and _, not starting with a "
                        "digit (write \"$$\" for a literal \"$\")");
    expect_expand_error("${A B}", "\"${A B}\" is not a valid reference: a "
                        "variable name is letters, digits and _, not starting "
                        "with a digit (write \"$$\" for a literal \"$\")");
    expect_expand_error("${A:-${B}}", "\"${A:-...}\": the default cannot "
                        "hold another \"${\" (a default is plain text)");
    expect_expand_error("${9X:-d}", "\"${9X:-d}\" is not a valid reference: "
                        "a variable name is letters, digits and _, not "
                        "starting with a digit (write \"$$\" for a literal "
                        "\"$\")");
}

/* --- @include --------------------------------------------------------- */

static void
test_include(void **state)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    const hg_job_conf_t *job;
    hg_conf_t *conf;
    char want[PATH_MAX];

    HG_UNUSED(state);
    write_file("jobs.d/a.conf",
               "# an included job\n"
               "{\n"
               "    id = \"inc-job\"; type = \"system\"; task = \"noop\";\n"
               "    every = \"1h\";\n"
               "}\n");
    write_file("policy.conf", "defaults = { timeout = \"1m\"; };\n");
    conf = load_text("@include \"policy.conf\"\n"
                     "jobs = (\n"
                     "    { id = \"main-job\"; type = \"shell\"; command = \"true\"; },\n"
                     "@include \"jobs.d/a.conf\"\n"
                     ");\n", &errors);
    assert_non_null(conf);
    assert_no_errors(&errors);
    assert_int_equal(conf->njobs, 2);
    assert_int_equal(conf->defaults.timeout_ms, 60000);

    job = hg_conf_find_job(conf, "main-job");
    assert_non_null(job);
    snprintf(want, sizeof(want), "%s/scheduler.conf", tmpdir);
    assert_string_equal(job->file, want);
    assert_int_equal(job->line, 3);

    job = hg_conf_find_job(conf, "inc-job");
    assert_non_null(job);
    /* the included file by a path one can open, not as the @include says */
    snprintf(want, sizeof(want), "%s/jobs.d/a.conf", tmpdir);
    assert_string_equal(job->file, want);
    assert_int_equal(job->line, 2);
    assert_key_line(job, "every", 4);
    assert_int_equal(job->policy.timeout_ms, 60000);
    assert_int_equal(job->every_ms, 3600000);

    hg_conf_free(conf);
    hg_conf_errors_free(&errors);
}

/* --- the dump --------------------------------------------------------- */

static void
assert_jobs_equal(const hg_job_conf_t *a, const hg_job_conf_t *b)
{
    const char *key;
    json_t *v;

    assert_string_equal(a->id, b->id);
    assert_str_or_null(b->name, a->name);
    assert_str_or_null(b->description, a->description);
    assert_string_equal(a->type, b->type);
    assert_int_equal(a->schedule_kind, b->schedule_kind);
    assert_str_or_null(b->schedule, a->schedule);
    assert_int_equal(a->every_ms, b->every_ms);
    assert_str_or_null(b->at, a->at);
    assert_str_or_null(b->start_at, a->start_at);
    assert_str_or_null(b->timezone, a->timezone);
    assert_int_equal(a->enabled, b->enabled);
    assert_int_equal(a->policy.timeout_ms, b->policy.timeout_ms);
    assert_int_equal(a->policy.max_retries, b->policy.max_retries);
    assert_int_equal(a->policy.backoff.initial_ms, b->policy.backoff.initial_ms);
    assert_int_equal(a->policy.backoff.max_ms, b->policy.backoff.max_ms);
    assert_true(a->policy.backoff.multiplier == b->policy.backoff.multiplier);
    assert_true(a->policy.backoff.jitter == b->policy.backoff.jitter);
    assert_int_equal(a->policy.overlap, b->policy.overlap);
    assert_int_equal(a->policy.misfire, b->policy.misfire);
    assert_int_equal(a->policy.starting_deadline_ms,
                     b->policy.starting_deadline_ms);
    assert_int_equal(a->policy.priority, b->policy.priority);
    assert_int_equal(a->policy.jitter_ms, b->policy.jitter_ms);
    assert_true(json_equal(a->tags, b->tags));
    assert_true(json_equal(a->definition, b->definition));
    assert_string_equal(a->definition_text, b->definition_text);
    /* the same keys; their lines are those of the dump */
    /* the same keys, but the defaults' notify, which the dump writes in
     * each job that takes it */
    json_object_foreach(b->key_lines, key, v) {
        if (json_object_get(a->key_lines, key) == NULL
            && strcmp(key, "notify") != 0)
        {
            fail_msg("job \"%s\": key %s read back, not given", a->id, key);
        }
    }
    json_object_foreach(a->key_lines, key, v) {
        assert_non_null(json_object_get(b->key_lines, key));
    }
}

static void
assert_confs_equal(const hg_conf_t *a, const hg_conf_t *b)
{
    size_t i;

    assert_string_equal(a->prefix, b->prefix);
    assert_int_equal(a->daemon, b->daemon);
    assert_string_equal(a->pid, b->pid);
    assert_int_equal(a->workers, b->workers);
    assert_str_or_null(b->timezone, a->timezone);
    assert_int_equal(a->shutdown_timeout_ms, b->shutdown_timeout_ms);
    assert_string_equal(a->log.file, b->log.file);
    assert_int_equal(a->log.level, b->log.level);
    assert_int_equal(a->log.format, b->log.format);
    assert_string_equal(a->modules.path, b->modules.path);
    assert_int_equal(a->modules.nload, b->modules.nload);
    for (i = 0; i < a->modules.nload; i++) {
        assert_string_equal(a->modules.load[i], b->modules.load[i]);
    }
    assert_true(json_equal(a->modules.sections, b->modules.sections));
    assert_string_equal(a->store.driver, b->store.driver);
    assert_string_equal(a->store.path, b->store.path);
    assert_str_or_null(b->store.url, a->store.url);
    assert_int_equal(a->store.retention_ms, b->store.retention_ms);
    assert_int_equal(a->api.enabled, b->api.enabled);
    assert_str_or_null(b->api.listen, a->api.listen);
    assert_int_equal(a->api.nallow, b->api.nallow);
    for (i = 0; i < a->api.nallow; i++) {
        assert_string_equal(a->api.allow[i], b->api.allow[i]);
    }
    assert_int_equal(a->api.ntokens, b->api.ntokens);
    for (i = 0; i < a->api.ntokens; i++) {
        assert_string_equal(a->api.tokens[i].name, b->api.tokens[i].name);
        assert_string_equal(a->api.tokens[i].role, b->api.tokens[i].role);
        assert_string_equal(b->api.tokens[i].token, "****");   /* masked */
    }
    assert_int_equal(a->api.body_limit, b->api.body_limit);
    assert_memory_equal(&a->defaults.backoff, &b->defaults.backoff,
                        sizeof(hg_backoff_t));
    assert_int_equal(a->defaults.timeout_ms, b->defaults.timeout_ms);
    assert_int_equal(a->defaults.max_retries, b->defaults.max_retries);
    assert_int_equal(a->defaults.overlap, b->defaults.overlap);
    assert_int_equal(a->defaults.misfire, b->defaults.misfire);
    assert_int_equal(a->defaults.starting_deadline_ms,
                     b->defaults.starting_deadline_ms);
    assert_int_equal(a->defaults.priority, b->defaults.priority);
    assert_int_equal(a->defaults.jitter_ms, b->defaults.jitter_ms);
    assert_int_equal(a->njobs, b->njobs);
    for (i = 0; i < a->njobs; i++) {
        assert_jobs_equal(&a->jobs[i], &b->jobs[i]);
    }
}

/* dump, read the dump back, compare; the dump of the dump is the same
 * text but for its first line, which names the file (and for the
 * defaults' notify, a comment: the dump writes it into each job) */
static void
round_trip(const char *text)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    hg_conf_t *a, *b;
    char *d1, *d2;

    a = load_text(text, &errors);
    assert_non_null(a);
    assert_no_errors(&errors);
    d1 = dump_text(a);
    write_file("dump.conf", d1);
    b = load_file("dump.conf", &errors);
    if (b == NULL || errors.count > 0) {
        print_error("the dump does not read back:\n%s\n", d1);
    }
    assert_non_null(b);
    assert_no_errors(&errors);
    assert_confs_equal(a, b);
    d2 = dump_text(b);
    if (strstr(d1, "# defaults.notify") == NULL) {
        assert_string_equal(strchr(d1, '\n'), strchr(d2, '\n'));
    }

    hg_conf_free(a);
    hg_conf_free(b);
    free(d1);
    free(d2);
    hg_conf_errors_free(&errors);
}

static void
test_dump_round_trip(void **state)
{
    HG_UNUSED(state);
    round_trip(full_conf);
    round_trip(env_conf);
    round_trip("");
    round_trip("api = { };\n"
               "modules = { x = { big = 5000000000L; neg = -3; r = 1e-7; "
               "r2 = 0.1; s = \"q\\\"uote\\\\ back\\nline\\ttab\\x01\"; "
               "e = { }; l = ( ); a = [ ]; }; };\n"
               "jobs = ( { id = \"j\"; type = \"t\"; d = \"$$\"; "
               "n = ( { a = 1; }, [ \"x\" ], 2.0 ); u = \"\\xc3\\xa9t\\xc3\\xa9\"; } );\n");
}

/* ${VAR} in a shell job's command: never pasted into the text (no shell
 * syntax injected, no value in `ps` or -T), checked all the same, and
 * merged with a pass_env written by hand; other job types and other keys
 * expand as before. */
static void
test_env_in_shell_command(void **state)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    const hg_job_conf_t *job;
    hg_conf_t *conf;
    const char *first;
    json_t *want;
    char *d;

    HG_UNUSED(state);
    setenv("HG_T_INJECT", "x; touch /tmp/pwned", 1);
    conf = load_text(
        "jobs = (\n"
        "  { id = \"a\"; type = \"shell\"; every = \"1m\";\n"
        "    pass_env = [ \"LANG\", \"HG_T_HOME\" ];\n"
        "    command = \"echo ${HG_T_INJECT} ${HG_T_UNSET:-d} ${HG_T_HOME}\"; },\n"
        "  { id = \"b\"; type = \"shell\"; every = \"1m\";\n"
        "    command = \"echo \\\"${HG_T_INJECT}\\\"\"; pass_env = [ \"LANG\" ]; },\n"
        "  { id = \"c\"; type = \"other\"; every = \"1m\";\n"
        "    command = \"echo ${HG_T_INJECT}\"; }\n"
        ");\n", &errors);
    assert_non_null(conf);
    assert_no_errors(&errors);

    job = &conf->jobs[0];
    want = json_loads("{\"id\": \"a\", \"type\": \"shell\", \"every\": \"1m\", "
                      "\"pass_env\": [\"LANG\", \"HG_T_HOME\", \"HG_T_INJECT\"], "
                      "\"command\": \"echo ${HG_T_INJECT} ${HG_T_UNSET:-d} "
                      "${HG_T_HOME}\"}", 0, NULL);
    assert_true(json_equal(job->definition, want));
    json_decref(want);
    job = &conf->jobs[1];
    want = json_loads("{\"id\": \"b\", \"type\": \"shell\", \"every\": \"1m\", "
                      "\"command\": \"echo \\\"${HG_T_INJECT}\\\"\", "
                      "\"pass_env\": [\"HG_T_INJECT\", \"LANG\"]}", 0, NULL);
    assert_true(json_equal(job->definition, want));
    json_decref(want);
    assert_int_equal(hg_conf_job_key_line(job, "pass_env"),
                     hg_conf_job_key_line(job, "command"));
    /* not a shell job: expanded as any other value */
    assert_string_equal(json_string_value(json_object_get(
                            conf->jobs[2].definition, "command")),
                        "echo x; touch /tmp/pwned");

    /* -T shows the reference, never the value (but for job c) */
    d = dump_text(conf);
    assert_non_null(strstr(d, "command = \"echo $${HG_T_INJECT} "
                              "$${HG_T_UNSET:-d} $${HG_T_HOME}\";"));
    assert_non_null(strstr(d, "command = \"echo \\\"$${HG_T_INJECT}\\\"\";"));
    first = strstr(d, "x; touch");
    assert_non_null(first);
    assert_ptr_equal(first, strstr(d, "command = \"echo x; touch")
                            + strlen("command = \"echo "));
    assert_null(strstr(first + 1, "x; touch"));
    free(d);
    hg_conf_free(conf);

    /* an unset variable without a default is still an error at load */
    conf = load_text("jobs = ( { id = \"a\"; type = \"shell\"; "
                     "every = \"1m\"; command = \"echo ${HG_T_UNSET}\"; } );\n",
                     &errors);
    hg_conf_free(conf);
    assert_int_equal(errors.count, 1);
    assert_non_null(strstr(errors.items[0].message,
                           "environment variable \"HG_T_UNSET\" is not set"));
    hg_conf_errors_free(&errors);
    unsetenv("HG_T_INJECT");
}

static void
test_dump_content(void **state)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    hg_conf_t *conf;
    char *d;

    HG_UNUSED(state);
    conf = load_text(full_conf, &errors);
    assert_non_null(conf);
    d = dump_text(conf);
    /* tokens masked, values formatted, inherited policy shown */
    assert_null(strstr(d, "s3cret"));
    assert_null(strstr(d, "t0ken"));
    assert_non_null(strstr(d, "token = \"****\";"));
    assert_non_null(strstr(d, "shutdown_timeout = \"1m30s\";"));
    assert_non_null(strstr(d, "body_limit = \"64KiB\";"));
    assert_non_null(strstr(d, "multiplier = 1.5;"));
    assert_non_null(strstr(d, "pid = \"" PREFIX "/run/hg.pid\";"));
    assert_non_null(strstr(d, "# from defaults: enabled = true; "
                              "timeout = \"10m\"; max_retries = 5;"));
    hg_conf_free(conf);
    free(d);

    conf = load_text("", &errors);
    d = dump_text(conf);
    assert_non_null(strstr(d, "# timezone: not set"));
    assert_non_null(strstr(d, "# api = { ... };  (not configured)"));
    assert_non_null(strstr(d, "jobs = ( );"));
    assert_non_null(strstr(d, "load = [ ];"));
    hg_conf_free(conf);
    free(d);

    assert_int_equal(hg_conf_dump(NULL, stdout), HG_ERROR);
    assert_no_errors(&errors);
    hg_conf_errors_free(&errors);
}

/* --- module keys and hints -------------------------------------------- */

static void
test_check_job_keys(void **state)
{
    static const char *const keys[] = { "command", "argv", "cwd", NULL };
    hg_conf_errors_t errors = { NULL, 0, 0 };
    hg_conf_t *conf;
    char *text;

    HG_UNUSED(state);
    conf = load_text("jobs = (\n"
                     "    { id = \"x\"; type = \"shell\";\n"
                     "      comand = \"true\";\n"
                     "      cwd = \"/\";\n"
                     "      timout = \"1m\";\n"
                     "      zzz = 1;\n"
                     "      expect = 5; }\n"
                     ");\n", &errors);
    assert_non_null(conf);
    /* not common keys: left to the module, not errors of the file */
    assert_no_errors(&errors);
    assert_true(json_is_string(json_object_get(conf->jobs[0].definition,
                                               "comand")));

    hg_conf_check_job_keys(&conf->jobs[0], NULL, &errors);
    assert_no_errors(&errors);

    hg_conf_check_job_keys(&conf->jobs[0], keys, &errors);
    text = errors_text(&errors);
    assert_string_equal(text,
        "T/scheduler.conf:3: unknown key \"comand\" in job \"x\" (did you "
        "mean \"command\"?)\n"
        "T/scheduler.conf:5: unknown key \"timout\" in job \"x\" (did you "
        "mean \"timeout\"?)\n"
        "T/scheduler.conf:6: unknown key \"zzz\" in job \"x\" (neither a "
        "common job key nor a key of type \"shell\")\n"
        /* not the dead-man group: the module's, which shell has not */
        "T/scheduler.conf:7: job \"x\": expect: expected a group { "
        "success_within = \"26h\"; } (a job of type \"shell\" has no "
        "expect of its own)\n");
    free(text);
    hg_conf_errors_free(&errors);

    /* a type with an expect of its own (http: status codes) takes it */
    {
        static const char *const http_keys[] = { "url", "expect", NULL };
        hg_conf_t *h = load_text("jobs = ( { id = \"h\"; type = \"http\";\n"
                                 "  url = \"http://x/\"; expect = [ 200 ]; "
                                 "} );\n", &errors);

        assert_non_null(h);
        hg_conf_check_job_keys(&h->jobs[0], http_keys, &errors);
        assert_no_errors(&errors);
        hg_conf_free(h);
    }

    assert_true(hg_conf_is_job_key("timeout"));
    assert_true(hg_conf_is_job_key("backoff"));
    assert_true(hg_conf_is_job_key("id"));
    assert_false(hg_conf_is_job_key("command"));
    assert_false(hg_conf_is_job_key(NULL));

    hg_conf_free(conf);
    hg_conf_errors_free(&errors);
}

static void
test_did_you_mean(void **state)
{
    static const char *const keys[] = {
        "timeout", "workers", "level", "command", "every", "at", NULL
    };
    static const char *const empty[] = { NULL };

    HG_UNUSED(state);
    assert_string_equal(hg_conf_did_you_mean("timout", keys), "timeout");
    assert_string_equal(hg_conf_did_you_mean("wokers", keys), "workers");
    assert_string_equal(hg_conf_did_you_mean("levle", keys), "level");
    assert_string_equal(hg_conf_did_you_mean("comand", keys), "command");
    assert_string_equal(hg_conf_did_you_mean("Workers", keys), "workers");
    assert_string_equal(hg_conf_did_you_mean("TIMEOUT", keys), "timeout");
    assert_string_equal(hg_conf_did_you_mean("evry", keys), "every");
    assert_string_equal(hg_conf_did_you_mean("a", keys), "at");
    assert_null(hg_conf_did_you_mean("zzzzzz", keys));
    assert_null(hg_conf_did_you_mean("tmeot", keys));   /* 2 edits of 5 */
    assert_null(hg_conf_did_you_mean("", empty));
    assert_null(hg_conf_did_you_mean("x", NULL));
    assert_null(hg_conf_did_you_mean(NULL, keys));
    /* words too long to compare get no hint rather than a slow one */
    assert_null(hg_conf_did_you_mean(
        "timeouttimeouttimeouttimeouttimeouttimeouttimeouttimeouttimeout"
        "timeout", keys));
}

/* --- a job from JSON (the admin API) ----------------------------------- */

static void
test_job_from_json(void **state)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    hg_job_conf_t job;
    hg_conf_t *conf;
    json_t *def;
    char *text;

    HG_UNUSED(state);
    conf = load_text("defaults = { timeout = \"1m\"; max_retries = 7; };\n",
                     &errors);
    assert_non_null(conf);

    def = json_loads("{\"id\": \"api-job\", \"type\": \"shell\", "
                     "\"command\": \"echo ${HG_T_HOME} $$\", "
                     "\"every\": \"5m\", \"backoff\": {\"initial\": \"2s\"}, "
                     "\"tags\": [\"a\"], \"big\": 5000000000, \"r\": 0.5, "
                     "\"on\": true, \"nested\": {\"l\": [1, \"x\", "
                     "{\"y\": 2}, []]}}", 0, NULL);
    assert_non_null(def);
    assert_int_equal(hg_conf_job_from_json(conf, def, &job, &errors), HG_OK);
    assert_no_errors(&errors);
    assert_string_equal(job.id, "api-job");
    assert_string_equal(job.type, "shell");
    assert_int_equal(job.schedule_kind, HG_SCHEDULE_EVERY);
    assert_int_equal(job.every_ms, 300000);
    assert_int_equal(job.policy.timeout_ms, 60000);         /* defaults */
    assert_int_equal(job.policy.max_retries, 7);
    assert_int_equal(job.policy.backoff.initial_ms, 2000);
    assert_int_equal(job.policy.backoff.max_ms, 3600000);
    assert_true(job.enabled);
    assert_int_equal(json_array_size(job.tags), 1);
    /* taken as it is: no ${VAR} from an API client */
    assert_true(json_equal(job.definition, def));
    text = json_dumps(def, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(job.definition_text, text);
    free(text);
    assert_null(job.file);
    assert_int_equal(job.line, 0);
    hg_conf_job_free(&job);
    hg_conf_job_free(NULL);
    json_decref(def);

    def = json_loads("{\"id\": \"x\", \"type\": \"t\", \"timeout\": \"5x\", "
                     "\"bad key\": 1, \"n\": null, \"every\": \"1m\", "
                     "\"schedule\": \"@daily\", \"s\": \"a\\u0000b\"}",
                     JSON_ALLOW_NUL, NULL);
    assert_non_null(def);
    assert_int_equal(hg_conf_job_from_json(conf, def, &job, &errors),
                     HG_ERROR);
    assert_null(job.id);
    assert_null(job.definition);
    json_decref(def);

    def = json_loads("{\"type\": \"t\"}", 0, NULL);
    assert_int_equal(hg_conf_job_from_json(conf, def, &job, &errors),
                     HG_ERROR);
    json_decref(def);
    /* an API client may not name the daemon's variables */
    def = json_loads("{\"id\": \"p\", \"type\": \"shell\", \"command\": \"x\", "
                     "\"pass_env\": [\"HG_T_HOME\"]}", 0, NULL);
    assert_int_equal(hg_conf_job_from_json(conf, def, &job, &errors),
                     HG_ERROR);
    json_decref(def);
    def = json_loads("[1]", 0, NULL);
    assert_int_equal(hg_conf_job_from_json(conf, def, &job, &errors),
                     HG_ERROR);
    json_decref(def);

    text = errors_text(&errors);
    assert_string_equal(text,
        "job \"x\": bad key: not a valid key name (a letter, then letters, "
        "digits, _ and -)\n"
        "job \"x\": n: null is not a value (leave the key out)\n"
        "job \"x\": s: the text holds a NUL character\n"
        "job \"x\": timeout: \"5x\" is not a duration (try \"5m\")\n"
        "job \"x\": schedule, every and at are exclusive (found schedule and "
        "every)\n"
        "job: id is required\n"
        "job \"p\": pass_env: not accepted from the API (it names variables "
        "of hourglass's own environment)\n"
        "a job definition is a JSON object: { \"id\": \"...\", \"type\": "
        "\"...\", ... }\n");
    free(text);

    hg_conf_free(conf);
    hg_conf_errors_free(&errors);
}

/* --- unreadable files -------------------------------------------------- */

static void
test_unreadable(void **state)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    char *text;

    HG_UNUSED(state);
    assert_null(load_file("nope.conf", &errors));
    assert_null(load_file("jobs.d", &errors));
    assert_null(hg_conf_load(NULL, PREFIX, &errors));
    text = errors_text(&errors);
    assert_string_equal(text,
        "T/nope.conf: cannot read the configuration file: No such file or "
        "directory\n"
        "T/jobs.d: is a directory, not a configuration file\n"
        "no configuration file given\n");
    free(text);
    hg_conf_errors_free(&errors);

    /* without an error list, any error means no conf */
    write_file("scheduler.conf", "workers = 0;\n");
    assert_null(load_file("scheduler.conf", NULL));
    write_file("scheduler.conf", "workers = 1;\n");
    hg_conf_free(load_file("scheduler.conf", NULL));
}

/* --- bad files --------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *conf;               /* scheduler.conf */
    const char *extra_name;         /* another file, for @include */
    const char *extra;
    const char *want;               /* the errors as printed */
} bad_case_t;

static const bad_case_t bad_cases[] = {
    { "unknown top-level key, with a hint",
      "workers = 2;\nwokers = 4;\n", NULL, NULL,
      "T/scheduler.conf:2: unknown key \"wokers\" (did you mean \"workers\"?)\n" },
    { "unknown top-level key, no hint: the keys listed",
      "colour = true;\n", NULL, NULL,
      "T/scheduler.conf:1: unknown key \"colour\" (known keys: daemon, pid, "
      "workers, timezone, shutdown_timeout, reload_timeout, log, modules, "
      "store, api, cluster, tracing, defaults, channels, jobs)\n" },
    { "unknown key in a section",
      "log = {\n    levle = \"info\";\n};\n", NULL, NULL,
      "T/scheduler.conf:2: unknown key \"levle\" in log (did you mean "
      "\"level\"?)\n" },
    { "integer or auto given a word",
      "workers = \"many\";\n", NULL, NULL,
      "T/scheduler.conf:1: workers: expected an integer or \"auto\", got a "
      "string \"many\"\n" },
    { "integer out of range",
      "workers = 0;\n", NULL, NULL,
      "T/scheduler.conf:1: workers: 0 is out of range 1-1024\n" },
    { "integer given a real",
      "workers = 2.5;\n", NULL, NULL,
      "T/scheduler.conf:1: workers: expected an integer or \"auto\", got a "
      "number 2.5\n" },
    { "boolean given a string",
      "daemon = \"yes\";\n", NULL, NULL,
      "T/scheduler.conf:1: daemon: expected true or false, got a string "
      "\"yes\"\n" },
    { "enum with a hint",
      "log = { level = \"inof\"; };\n", NULL, NULL,
      "T/scheduler.conf:1: log.level: \"inof\" is not one of error, warn, "
      "info, debug (did you mean \"info\"?)\n" },
    { "enum without a hint",
      "log = { format = \"xml\"; };\n", NULL, NULL,
      "T/scheduler.conf:1: log.format: \"xml\" is not one of text, json\n" },
    { "a section that is not a group",
      "store = \"sqlite\";\n", NULL, NULL,
      "T/scheduler.conf:1: store: expected a group { ... }, got a string "
      "\"sqlite\"\n" },
    { "a string given a group",
      "timezone = { name = \"UTC\"; };\n", NULL, NULL,
      "T/scheduler.conf:1: timezone: expected a string, got a group\n" },
    { "bad duration in a job, with a hint, on its own line",
      "jobs = (\n    { id = \"backup\"; type = \"shell\";\n"
      "      timeout = \"5x\"; }\n);\n", NULL, NULL,
      "T/scheduler.conf:3: job \"backup\": timeout: \"5x\" is not a duration "
      "(try \"5m\")\n" },
    { "a duration without units",
      "jobs = ( { id = \"backup\"; type = \"shell\"; timeout = 30; } );\n",
      NULL, NULL,
      "T/scheduler.conf:1: job \"backup\": timeout: 30 is not a duration: "
      "give units, e.g. \"30s\"\n" },
    { "a duration beyond help",
      "shutdown_timeout = \"soon\";\n", NULL, NULL,
      "T/scheduler.conf:1: shutdown_timeout: \"soon\" is not a duration "
      "(write a number and a unit, ms, s, m, h or d, largest first: \"90s\", "
      "\"1h30m\")\n" },
    { "units out of order",
      "shutdown_timeout = \"1m30m\";\n", NULL, NULL,
      "T/scheduler.conf:1: shutdown_timeout: \"1m30m\" is not a duration "
      "(write a number and a unit, ms, s, m, h or d, largest first: \"90s\", "
      "\"1h30m\")\n" },
    { "duration out of range",
      "shutdown_timeout = \"2d\";\n", NULL, NULL,
      "T/scheduler.conf:1: shutdown_timeout: \"2d\" is out of range 0s-1d\n" },
    { "every must be positive",
      "jobs = ( { id = \"x\"; type = \"t\"; every = \"0s\"; } );\n", NULL, NULL,
      "T/scheduler.conf:1: job \"x\": every: \"0s\" is out of range "
      "1ms-36500d\n" },
    { "integer given a string",
      "jobs = ( { id = \"x\"; type = \"t\"; max_retries = \"3\"; } );\n",
      NULL, NULL,
      "T/scheduler.conf:1: job \"x\": max_retries: expected an integer, got "
      "a string \"3\"\n" },
    { "integer out of range in a job",
      "jobs = ( { id = \"x\"; type = \"t\"; max_retries = 1001; } );\n",
      NULL, NULL,
      "T/scheduler.conf:1: job \"x\": max_retries: 1001 is out of range "
      "0-1000\n" },
    { "bad enum in a job",
      "jobs = ( { id = \"x\"; type = \"t\"; overlap = \"sometimes\"; } );\n",
      NULL, NULL,
      "T/scheduler.conf:1: job \"x\": overlap: \"sometimes\" is not one of "
      "skip, queue, replace, allow\n" },
    { "boolean given an integer in a job",
      "jobs = ( { id = \"x\"; type = \"t\"; enabled = 1; } );\n", NULL, NULL,
      "T/scheduler.conf:1: job \"x\": enabled: expected true or false, got "
      "an integer 1\n" },
    { "empty type",
      "jobs = ( { id = \"x\"; type = \"\"; } );\n", NULL, NULL,
      "T/scheduler.conf:1: job \"x\": type: must not be empty\n" },
    { "a string given a list",
      "jobs = ( { id = \"x\"; type = [ \"shell\" ]; } );\n", NULL, NULL,
      "T/scheduler.conf:1: job \"x\": type: expected a string, got a list\n" },
    { "duplicate job id",
      "jobs = (\n    { id = \"backup\"; type = \"shell\"; },\n"
      "    { id = \"backup\"; type = \"shell\"; }\n);\n", NULL, NULL,
      "T/scheduler.conf:3: duplicate job id \"backup\" (first defined at "
      "T/scheduler.conf:2)\n" },
    { "duplicate job id in an included file",
      "jobs = (\n    { id = \"backup\"; type = \"shell\"; },\n"
      "@include \"jobs.d/dup.conf\"\n);\n",
      "jobs.d/dup.conf", "\n{\n    id = \"backup\";\n    type = \"shell\";\n}\n",
      "T/jobs.d/dup.conf:3: duplicate job id \"backup\" (first defined at "
      "T/scheduler.conf:2)\n" },
    { "invalid job id",
      "jobs = ( { id = \"a b\"; type = \"shell\"; } );\n", NULL, NULL,
      "T/scheduler.conf:1: job id \"a b\" is invalid: use 1-128 of A-Z a-z "
      "0-9 . _ -\n" },
    { "invalid job id: the job is named by its place",
      "jobs = (\n    { id = \"ok\"; type = \"t\"; },\n"
      "    { id = \"\"; type = 5; }\n);\n", NULL, NULL,
      "T/scheduler.conf:3: job #2: type: expected a string, got an integer 5\n"
      "T/scheduler.conf:3: job id \"\" is invalid: use 1-128 of A-Z a-z 0-9 "
      ". _ -\n" },
    { "missing id",
      "jobs = (\n    { type = \"shell\"; }\n);\n", NULL, NULL,
      "T/scheduler.conf:2: job #1: id is required\n" },
    { "missing type",
      "jobs = (\n    {\n        id = \"x\";\n        command = \"true\";\n"
      "    }\n);\n", NULL, NULL,
      "T/scheduler.conf:2: job \"x\": type is required\n" },
    { "schedule and every",
      "jobs = ( { id = \"x\"; type = \"t\";\n"
      "           schedule = \"* * * * *\";\n"
      "           every = \"1m\"; } );\n", NULL, NULL,
      "T/scheduler.conf:3: job \"x\": schedule, every and at are exclusive "
      "(found schedule and every)\n" },
    { "schedule, every and at",
      "jobs = ( { id = \"x\"; type = \"t\"; at = \"2026-01-01T00:00:00Z\"; "
      "every = \"1m\"; schedule = \"@daily\"; } );\n", NULL, NULL,
      "T/scheduler.conf:1: job \"x\": schedule, every and at are exclusive "
      "(found schedule, every and at)\n" },
    { "start_at without every",
      "jobs = ( { id = \"x\"; type = \"t\"; schedule = \"@daily\";\n"
      "           start_at = \"2026-01-01T00:00:00Z\"; } );\n", NULL, NULL,
      "T/scheduler.conf:2: job \"x\": start_at is only allowed with every "
      "(it is when a fixed-rate job runs first)\n" },
    { "unset environment variable",
      "jobs = ( { id = \"x\"; type = \"shell\"; command = \"${HG_T_UNSET}\"; } );\n",
      NULL, NULL,
      "T/scheduler.conf:1: job \"x\": command: environment variable "
      "\"HG_T_UNSET\" is not set (use ${HG_T_UNSET:-default})\n" },
    { "unterminated ${",
      "pid = \"${HG_T_HOME/x.pid\";\n", NULL, NULL,
      "T/scheduler.conf:1: pid: unterminated \"${\" (end it with \"}\", or "
      "write \"$$\" for a literal \"$\")\n" },
    { "bad variable name inside a list",
      "jobs = ( { id = \"x\"; type = \"shell\"; argv = [ \"a\", \"${9X}\" ]; } );\n",
      NULL, NULL,
      "T/scheduler.conf:1: job \"x\": argv[1]: \"${9X}\" is not a valid "
      "reference: a variable name is letters, digits and _, not starting "
      "with a digit (write \"$$\" for a literal \"$\")\n" },
    { "unset variable in a module section",
      "modules = {\n    shell = {\n        home = \"${HG_T_UNSET}\";\n"
      "    };\n};\n", NULL, NULL,
      "T/scheduler.conf:3: modules.shell.home: environment variable "
      "\"HG_T_UNSET\" is not set (use ${HG_T_UNSET:-default})\n" },
    { "text that is not UTF-8",
      "jobs = ( { id = \"x\"; type = \"t\"; command = \"caf\\xe9\"; } );\n",
      NULL, NULL,
      "T/scheduler.conf:1: job \"x\": command: the text is not valid UTF-8\n" },
    { "a number too large",
      "jobs = ( { id = \"x\"; type = \"t\"; ratio = 1e400; } );\n", NULL, NULL,
      "T/scheduler.conf:1: job \"x\": ratio: the number is too large\n" },
    { "bad token role and a missing name",
      "api = {\n    tokens = (\n        { token = \"t\"; role = \"root\"; }\n"
      "    );\n};\n", NULL, NULL,
      "T/scheduler.conf:3: api.tokens[0].role: \"root\" is not one of read, "
      "execute, write, admin\n"
      "T/scheduler.conf:3: api.tokens[0].name is required\n" },
    { "missing role",
      "api = { tokens = ( { name = \"ops\"; token = \"t\"; } ); };\n",
      NULL, NULL,
      "T/scheduler.conf:1: api.tokens[0].role is required (one of read, "
      "execute, write, admin)\n" },
    { "token name and value used twice",
      "api = { tokens = (\n"
      "    { name = \"a\"; token = \"x\"; role = \"read\"; },\n"
      "    { name = \"a\"; token = \"x\"; role = \"admin\"; }\n"
      "); };\n", NULL, NULL,
      "T/scheduler.conf:3: api.tokens[1].name: \"a\" is already the name of "
      "api.tokens[0]\n"
      "T/scheduler.conf:3: api.tokens[1].token: the same token as "
      "api.tokens[0]: every token must be different\n" },
    { "tokens not a list",
      "api = { tokens = \"x\"; };\n", NULL, NULL,
      "T/scheduler.conf:1: api.tokens: expected a list of tokens, ( { name = "
      "\"...\"; token = \"...\"; role = \"...\"; }, ... ), got a string "
      "\"x\"\n" },
    { "bad listen address and CIDR block",
      "api = { listen = \"localhost\"; allow = [ \"10.0.0.0/33\" ]; };\n",
      NULL, NULL,
      "T/scheduler.conf:1: api.listen: \"localhost\" is not HOST:PORT (e.g. "
      "\"127.0.0.1:8080\" or \"[::1]:8080\")\n"
      "T/scheduler.conf:1: api.allow[0]: \"10.0.0.0/33\" is not an address "
      "or CIDR block (e.g. \"10.0.0.0/8\", \"::1/128\", \"192.0.2.7\")\n" },
    { "listen: an IPv6 address without its closing bracket",
      "api = { listen = \"[::1:8080\"; };\n", NULL, NULL,
      "T/scheduler.conf:1: api.listen: \"[::1:8080\" is not HOST:PORT (e.g. "
      "\"127.0.0.1:8080\" or \"[::1]:8080\")\n" },
    { "listen: no host",
      "api = { listen = \":8080\"; };\n", NULL, NULL,
      "T/scheduler.conf:1: api.listen: \":8080\" is not HOST:PORT (e.g. "
      "\"127.0.0.1:8080\" or \"[::1]:8080\")\n" },
    { "listen: no port",
      "api = { listen = \"127.0.0.1:\"; };\n", NULL, NULL,
      "T/scheduler.conf:1: api.listen: \"127.0.0.1:\" is not HOST:PORT (e.g. "
      "\"127.0.0.1:8080\" or \"[::1]:8080\")\n" },
    { "listen: port 0",
      "api = { listen = \"127.0.0.1:0\"; };\n", NULL, NULL,
      "T/scheduler.conf:1: api.listen: \"127.0.0.1:0\" is not HOST:PORT (e.g. "
      "\"127.0.0.1:8080\" or \"[::1]:8080\")\n" },
    { "listen: port above 65535",
      "api = { listen = \"127.0.0.1:65536\"; };\n", NULL, NULL,
      "T/scheduler.conf:1: api.listen: \"127.0.0.1:65536\" is not HOST:PORT (e.g. "
      "\"127.0.0.1:8080\" or \"[::1]:8080\")\n" },
    { "listen: port followed by text",
      "api = { listen = \"127.0.0.1:80x\"; };\n", NULL, NULL,
      "T/scheduler.conf:1: api.listen: \"127.0.0.1:80x\" is not HOST:PORT (e.g. "
      "\"127.0.0.1:8080\" or \"[::1]:8080\")\n" },
    { "allow: no address, a name, prefixes out of range or not numbers, "
      "an address too long",
      "api = { allow = [ \"/8\", \"example.org\", \"::1/129\", \"10.0.0.0/\", \"10.0.0.0/x\", \"10.0.0.0/-1\", \"10.0.0.0/8x\", \"1234:5678:9abc:def0:1234:5678:9abc:def0:1234:5678:9abc:def0/8\" ]; };\n", NULL, NULL,
      "T/scheduler.conf:1: api.allow[0]: \"/8\" is not an address "
      "or CIDR block (e.g. \"10.0.0.0/8\", \"::1/128\", \"192.0.2.7\")\n"
      "T/scheduler.conf:1: api.allow[1]: \"example.org\" is not an address "
      "or CIDR block (e.g. \"10.0.0.0/8\", \"::1/128\", \"192.0.2.7\")\n"
      "T/scheduler.conf:1: api.allow[2]: \"::1/129\" is not an address "
      "or CIDR block (e.g. \"10.0.0.0/8\", \"::1/128\", \"192.0.2.7\")\n"
      "T/scheduler.conf:1: api.allow[3]: \"10.0.0.0/\" is not an address "
      "or CIDR block (e.g. \"10.0.0.0/8\", \"::1/128\", \"192.0.2.7\")\n"
      "T/scheduler.conf:1: api.allow[4]: \"10.0.0.0/x\" is not an address "
      "or CIDR block (e.g. \"10.0.0.0/8\", \"::1/128\", \"192.0.2.7\")\n"
      "T/scheduler.conf:1: api.allow[5]: \"10.0.0.0/-1\" is not an address "
      "or CIDR block (e.g. \"10.0.0.0/8\", \"::1/128\", \"192.0.2.7\")\n"
      "T/scheduler.conf:1: api.allow[6]: \"10.0.0.0/8x\" is not an address "
      "or CIDR block (e.g. \"10.0.0.0/8\", \"::1/128\", \"192.0.2.7\")\n"
      "T/scheduler.conf:1: api.allow[7]: \"1234:5678:9abc:def0:1234:5678:9abc:def0:1234:5678:9abc:def0/8\" is not an address "
      "or CIDR block (e.g. \"10.0.0.0/8\", \"::1/128\", \"192.0.2.7\")\n" },
    { "size out of range, written with its unit",
      "api = { body_limit = \"2GiB\"; };\n", NULL, NULL,
      "T/scheduler.conf:1: api.body_limit: \"2GiB\" is out of range "
      "1KiB-1GiB\n" },
    { "size with a space",
      "api = { body_limit = \"10 KiB\"; };\n", NULL, NULL,
      "T/scheduler.conf:1: api.body_limit: \"10 KiB\" is not a size (try "
      "\"10KiB\")\n" },
    { "size out of range",
      "api = { body_limit = 100; };\n", NULL, NULL,
      "T/scheduler.conf:1: api.body_limit: 100 is out of range 1KiB-1GiB\n" },
    { "jobs not a list",
      "jobs = \"x\";\n", NULL, NULL,
      "T/scheduler.conf:1: jobs: expected a list of jobs, ( { id = \"...\"; "
      "type = \"...\"; ... }, ... ), got a string \"x\"\n" },
    { "a job that is not a group",
      "jobs = ( \"backup\" );\n", NULL, NULL,
      "T/scheduler.conf:1: jobs: job #1 is not a group: write each job as "
      "{ id = \"...\"; type = \"...\"; ... }, got a string \"backup\"\n" },
    { "tags: not a string, empty",
      "jobs = ( { id = \"x\"; type = \"t\"; tags = ( \"a\", 1, \"\" ); } );\n",
      NULL, NULL,
      "T/scheduler.conf:1: job \"x\": tags[1]: expected a string, got an "
      "integer 1\n"
      "T/scheduler.conf:1: job \"x\": tags[2]: must not be empty\n" },
    { "backoff: unknown key, range, initial above max",
      "defaults = {\n    backoff = { initial = \"2h\"; intial = \"1s\"; "
      "multiplier = 0.5; };\n};\n", NULL, NULL,
      "T/scheduler.conf:2: unknown key \"intial\" in defaults.backoff (did "
      "you mean \"initial\"?)\n"
      "T/scheduler.conf:2: defaults.backoff.multiplier: 0.5 is out of range "
      "1-1000\n"
      "T/scheduler.conf:2: defaults.backoff: initial (2h) is greater than "
      "max (1h)\n" },
    { "a job's backoff: unknown key, initial above the default max",
      "jobs = ( { id = \"x\"; type = \"t\";\n"
      "    backoff = { intial = \"1s\"; initial = \"2h\"; }; } );\n", NULL, NULL,
      "T/scheduler.conf:2: unknown key \"intial\" in backoff of job \"x\" "
      "(did you mean \"initial\"?)\n"
      "T/scheduler.conf:2: job \"x\": backoff: initial (2h) is greater than "
      "max (1h)\n" },
    { "postgres without url",
      "store = { driver = \"postgres\"; };\n", NULL, NULL,
      "T/scheduler.conf:1: store: driver \"postgres\" needs url (e.g. url = "
      "\"postgresql://hourglass@localhost/hourglass\";)\n" },
    { "modules: a misspelt key, a section that is not a group",
      "modules = {\n    lod = [ \"shell\" ];\n    foo = 3;\n};\n", NULL, NULL,
      "T/scheduler.conf:2: unknown key \"lod\" in modules (did you mean "
      "\"load\"?)\n"
      "T/scheduler.conf:3: modules.foo: expected a group { ... } (the \"foo\" "
      "module's own section), got an integer 3\n" },
    { "modules.load: empty name, listed twice",
      "modules = { load = [ \"shell\", \"\", \"shell\" ]; };\n", NULL, NULL,
      "T/scheduler.conf:1: modules.load[1]: must not be empty\n"
      "T/scheduler.conf:1: modules.load[2]: \"shell\" is already listed at "
      "modules.load[0]\n" },
    { "syntax error",
      "workers = 4;\nlog = { level = ; };\n", NULL, NULL,
      "T/scheduler.conf:2: syntax error\n" },
    { "mixed array (libconfig's own check)",
      "jobs = ( { id = \"x\"; type = \"t\"; tags = [ \"a\", 1 ]; } );\n",
      NULL, NULL,
      "T/scheduler.conf:1: mismatched element type in array\n" },
    { "syntax error in an included file",
      "jobs = (\n@include \"jobs.d/bad.conf\"\n);\n",
      "jobs.d/bad.conf", "{ id = \"x\";\n  type = ; }\n",
      "T/jobs.d/bad.conf:2: syntax error\n" },
    { "missing included file",
      "workers = 1;\n@include \"jobs.d/missing.conf\"\n", NULL, NULL,
      "T/scheduler.conf:2: cannot open include file (@include paths are "
      "relative to T)\n" },
    { "channels not a list",
      "channels = 5;\n", NULL, NULL,
      "T/scheduler.conf:1: channels: expected a list of channels, ( { name = "
      "\"...\"; type = \"webhook\"; url = \"...\"; }, ... ), got an integer "
      "5\n" },
    { "a channel not a group",
      "channels = ( 5 );\n", NULL, NULL,
      "T/scheduler.conf:1: channels[0]: expected a group { name = \"...\"; "
      "type = \"...\"; ... }, got an integer 5\n" },
    { "a webhook's url not http",
      "channels = ( { name = \"w\"; type = \"webhook\"; url = \"ftp://x/y\"; "
      "} );\n", NULL, NULL,
      "T/scheduler.conf:1: channels[0].url: \"ftp://x/y\" is not an http:// "
      "or https:// URL\n" },
    { "a command channel without command, a webhook with one",
      "channels = (\n { name = \"c\"; type = \"command\"; },\n"
      " { name = \"w\"; type = \"webhook\"; url = \"http://x/\";\n"
      "   command = \"cat\"; },\n"
      " { name = \"d\"; type = \"command\"; command = \"cat\";\n"
      "   url = \"http://x/\"; } );\n", NULL, NULL,
      "T/scheduler.conf:2: channels[0]: a command channel needs command\n"
      "T/scheduler.conf:4: channels[1].command: only for type = \"command\"\n"
      "T/scheduler.conf:6: channels[2].url: only for type = \"webhook\"\n" },
    { "two channels of one name",
      "channels = ( { name = \"c\"; type = \"command\"; command = \"cat\"; },\n"
      "  { name = \"c\"; type = \"command\"; command = \"cat\"; } );\n",
      NULL, NULL,
      "T/scheduler.conf:2: channels[1].name: \"c\" is already the name of "
      "channels[0]\n" },
    { "notify: not a group, an unknown key, empty or odd lists, half",
      "channels = ( { name = \"c\"; type = \"command\"; command = \"cat\"; } );\n"
      "defaults = { notify = 5; };\n"
      "jobs = (\n"
      " { id = \"a\"; type = \"t\"; notify = { on = [ \"failure\" ];\n"
      "   via = [ \"c\" ]; wehn = 1; }; },\n"
      " { id = \"b\"; type = \"t\"; notify = { on = [ ]; via = [ \"c\" ]; }; },\n"
      " { id = \"c\"; type = \"t\"; notify = { on = [ 1 ]; via = [ \"c\" ]; }; },\n"
      " { id = \"d\"; type = \"t\"; notify = { on = [ \"failure\" ]; }; },\n"
      " { id = \"e\"; type = \"t\"; notify = { on = [ \"failur\" ];\n"
      "   via = [ \"d\" ]; }; } );\n", NULL, NULL,
      "T/scheduler.conf:5: job \"a\": notify: unknown key \"wehn\" (known "
      "keys: on, via)\n"
      "T/scheduler.conf:6: job \"b\": notify.on: expected a non-empty list of "
      "strings, [ \"...\", ... ]\n"
      "T/scheduler.conf:7: job \"c\": notify.on[0]: expected a string\n"
      "T/scheduler.conf:8: job \"d\": notify: needs both on (the events) and "
      "via (the channels)\n"
      "T/scheduler.conf:9: job \"e\": notify.on: unknown event \"failur\" "
      "(did you mean \"failure\"?)\n"
      "T/scheduler.conf:10: job \"e\": notify.via: unknown channel \"d\" "
      "(not in channels)\n"
      /* defaults are read after the jobs (a job starts from them) */
      "T/scheduler.conf:2: defaults.notify: expected a group { on = [ "
      "\"failure\" ]; via = [ \"CHANNEL\" ]; }\n" },
    { "expect: an unknown key, too short, empty",
      "jobs = (\n"
      " { id = \"a\"; type = \"t\"; expect = { success_within = \"1h\";\n"
      "   succes_within = \"2h\"; }; },\n"
      " { id = \"b\"; type = \"t\"; expect = { run_within = \"10ms\"; }; },\n"
      " { id = \"c\"; type = \"t\"; expect = { }; } );\n", NULL, NULL,
      "T/scheduler.conf:3: job \"a\": expect: unknown key \"succes_within\" "
      "(did you mean \"success_within\"?)\n"
      "T/scheduler.conf:4: job \"b\": expect.run_within: expected a duration "
      "of 1s or more (\"26h\")\n"
      "T/scheduler.conf:5: job \"c\": expect: give success_within or "
      "run_within (e.g. expect = { success_within = \"26h\"; })\n" },
    { "every problem reported, not just the first",
      "workers = 0;\n"
      "log = { level = \"loud\"; };\n"
      "jobs = (\n"
      "    { id = \"a\"; type = \"t\"; timeout = \"5x\"; },\n"
      "    { id = \"a\"; type = \"t\"; }\n"
      ");\n", NULL, NULL,
      "T/scheduler.conf:1: workers: 0 is out of range 1-1024\n"
      "T/scheduler.conf:2: log.level: \"loud\" is not one of error, warn, "
      "info, debug\n"
      "T/scheduler.conf:4: job \"a\": timeout: \"5x\" is not a duration (try "
      "\"5m\")\n"
      "T/scheduler.conf:5: duplicate job id \"a\" (first defined at "
      "T/scheduler.conf:4)\n" },
};

static void
test_bad_configs(void **state)
{
    size_t i, failed = 0;

    HG_UNUSED(state);
    for (i = 0; i < HG_NELEMS(bad_cases); i++) {
        const bad_case_t *c = &bad_cases[i];
        hg_conf_errors_t errors = { NULL, 0, 0 };
        hg_conf_t *conf;
        char *text;

        if (c->extra_name != NULL) {
            write_file(c->extra_name, c->extra);
        }
        conf = load_text(c->conf, &errors);
        text = errors_text(&errors);
        if (errors.count == 0 || strcmp(text, c->want) != 0) {
            print_error("case \"%s\":\n  got:\n%s  want:\n%s", c->name, text,
                        c->want);
            failed++;
        }
        free(text);
        hg_conf_free(conf);
        hg_conf_errors_free(&errors);
    }
    assert_true(HG_NELEMS(bad_cases) >= 25);
    assert_int_equal(failed, 0);
}


/* --- out of memory ----------------------------------------------------- */

/* The keys full_conf leaves out: notifications, dead-man checks, a
 * cluster, tracing, TLS, ${VAR} and pass_env, an @include. */
static const char features_conf[] =
    "modules = { path = \"${HG_T_HOME}/modules\"; load = [ \"shell\", "
    "\"http\" ]; };\n"
    "store = { driver = \"postgres\"; url = \"postgresql://u@h/db\"; };\n"
    "cluster = { instance = \"${HG_T_UNSET:-node-a}\"; lease = \"5s\"; };\n"
    "tracing = { otlp = \"http://127.0.0.1:4318\"; service_name = \"hg\"; };\n"
    "api = { listen = \"127.0.0.1:9443\";\n"
    "    tls = { cert = \"tls/c.pem\"; key = \"tls/k.pem\"; };\n"
    "    tokens = ( { name = \"ops\"; token = \"${HG_T_HOME}\"; "
    "role = \"admin\"; } ); };\n"
    "channels = ( { name = \"hook\"; type = \"webhook\";\n"
    "               url = \"https://hooks.example/x\"; },\n"
    "             { name = \"page\"; type = \"command\"; command = \"cat\"; } );\n"
    "defaults = { notify = { on = [ \"failure\", \"dead\" ]; "
    "via = [ \"hook\" ]; }; };\n"
    "jobs = (\n"
    "    { id = \"a\"; type = \"shell\"; schedule = \"CRON_TZ=UTC 0 2 * * *\";\n"
    "      command = \"tar czf ${HG_T_HOME}/b.tgz /etc\";\n"
    "      pass_env = [ \"LANG\" ];\n"
    "      notify = { on = [ \"missed\", \"overdue\" ]; via = [ \"page\" ]; };\n"
    "      expect = { success_within = \"26h\"; run_within = \"1h\"; }; },\n"
    "    { id = \"h\"; type = \"http\"; url = \"http://x/\"; "
    "expect = [ 200 ]; every = \"1m\"; },\n"
    "@include \"jobs.d/more.conf\"\n"
    ");\n";

/* The -T dump of what full_conf leaves out (notifications, dead-man
 * checks, a cluster, tracing, TLS) and of odd module values reads back
 * as the same configuration. */
static void
test_features_round_trip(void **state)
{
    HG_UNUSED(state);
    write_file("jobs.d/more.conf", "{ id = \"m\"; type = \"shell\"; "
               "command = \"true\"; every = \"5s\"; }\n");
    round_trip(features_conf);
    round_trip("modules = { x = { lg = ( { a = 1; b = [ 1, 2 ]; }, "
               "{ c = \"d\"; n = ( ); } ); i32 = 2147483648L; "
               "small = -2147483649L; f = 1.0e300; third = 0.3333333333333333; "
               "ctl = \"\\x7f\\x1f\"; t = true; ff = false; "
               "mixed = ( 1, \"a\", ( 2 ), { } ); }; };\n");
}

/*
 * The load of FILE, each of its allocations refused in turn: it fails with
 * an error saying "out of memory", or gives what it gives unrefused (the
 * configuration WANT dumps, or the errors WANT_ERRORS). Returns how many
 * refusals failed it.
 */
static const char *oom_case = "";

static unsigned long
oom_load(const char *want, const char *want_errors)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    unsigned long failed = 0;
    hg_conf_t *conf;
    char *text;
    bool fired;

    for (FAULT_ALLOC_LOOP(n)) {
        fault_alloc_arm(n);
        conf = load_file("scheduler.conf", &errors);
        fired = fault_alloc_disarm();
        text = errors_text(&errors);
        if (conf != NULL && want != NULL) {
            char *got = dump_text(conf);
            if (strcmp(got, want) != 0) {
                fail_msg("allocation %lu refused: loaded another "
                         "configuration:\n%s", n, got);
            }
            free(got);
        } else if (!fired || strstr(text, "out of memory") == NULL) {
            if (want == NULL && strcmp(text, want_errors) == 0) {
                /* the refusal changed nothing the user sees */
            } else {
                fail_msg("%s: allocation %lu %s: %s (%zu errors)\n%s",
                         oom_case, n,
                         fired ? "refused" : "(none refused)",
                         conf != NULL ? "loaded" : "failed", errors.count,
                         text);
            }
        } else {
            failed++;
        }
        free(text);
        hg_conf_free(conf);
        hg_conf_errors_free(&errors);
        if (!fired) {
            break;
        }
    }
    return failed;
}

static void
test_out_of_memory(void **state)
{
    const char *good[] = { full_conf, features_conf };
    hg_conf_errors_t errors = { NULL, 0, 0 };
    unsigned long failed_load = 0, failed_bad = 0;
    hg_conf_t *conf;
    char *want;
    size_t i;

    HG_UNUSED(state);
    write_file("jobs.d/more.conf", "{ id = \"m\"; type = \"shell\"; "
               "command = \"true\"; every = \"5s\"; }\n");
    for (i = 0; i < HG_NELEMS(good); i++) {
        conf = load_text(good[i], &errors);
        if (conf == NULL) {
            char *text = errors_text(&errors);
            fail_msg("good[%zu]:\n%s", i, text);
        }
        want = dump_text(conf);
        oom_case = i == 0 ? "full_conf" : "features_conf";
        failed_load += oom_load(want, NULL);
        free(want);
        hg_conf_free(conf);
    }
    for (i = 0; i < HG_NELEMS(bad_cases); i++) {
        const bad_case_t *c = &bad_cases[i];

        if (c->extra_name != NULL) {
            write_file(c->extra_name, c->extra);
        }
        write_file("scheduler.conf", c->conf);
        oom_case = c->name;
        failed_bad += oom_load(NULL, c->want);
    }
    print_message("refusals that failed it: good files %lu, bad files %lu\n",
                  failed_load, failed_bad);
    assert_true(failed_load > 0 && failed_bad > 0);
}

/*
 * Jobs of the admin API added to a configuration, each allocation refused
 * in turn: HG_ERROR with "out of memory" said, or the jobs added as
 * without the refusal; a job the file defines too is an error either way.
 */
static void
test_api_jobs_out_of_memory(void **state)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    unsigned long failed = 0;
    json_t *defs, *clash;
    hg_conf_t *conf;
    char *want, *got, *text;
    bool fired;
    int rc;

    HG_UNUSED(state);
    defs = json_loads("[{\"id\": \"a1\", \"type\": \"shell\", \"command\": "
                      "\"echo $$HOME\", \"every\": \"5m\", \"tags\": [\"x\"], "
                      "\"backoff\": {\"initial\": \"2s\"}},"
                      " {\"id\": \"a2\", \"type\": \"http\", \"url\": "
                      "\"http://x/\", \"expect\": [200], \"at\": "
                      "\"2099-01-01T00:00:00Z\", \"priority\": \"high\"}]",
                      0, NULL);
    clash = json_loads("[{\"id\": \"f\", \"type\": \"shell\", \"command\": "
                       "\"true\"}, {\"id\": \"a1\", \"type\": \"shell\", "
                       "\"command\": \"true\"}, {\"id\": \"a1\", \"type\": "
                       "\"shell\", \"command\": \"true\"}]", 0, NULL);
    assert_non_null(defs);
    assert_non_null(clash);
    write_file("scheduler.conf", "jobs = ( { id = \"f\"; type = \"shell\"; "
               "command = \"true\"; } );\n");
    conf = load_file("scheduler.conf", &errors);
    assert_non_null(conf);
    if (hg_conf_add_api_jobs(conf, defs, &errors) != HG_OK) {
        text = errors_text(&errors);
        fail_msg("%s", text);
    }
    want = dump_text(conf);
    hg_conf_free(conf);

    for (FAULT_ALLOC_LOOP(n)) {
        conf = load_file("scheduler.conf", &errors);
        assert_non_null(conf);
        fault_alloc_arm(n);
        rc = hg_conf_add_api_jobs(conf, defs, &errors);
        fired = fault_alloc_disarm();
        text = errors_text(&errors);
        if (rc == HG_OK) {
            got = dump_text(conf);
            if (strcmp(got, want) != 0) {
                fail_msg("allocation %lu refused: other jobs:\n%s", n, got);
            }
            free(got);
        } else if (!fired || strstr(text, "out of memory") == NULL) {
            fail_msg("allocation %lu: %s", n, text);
        } else {
            failed++;
        }
        free(text);
        hg_conf_errors_free(&errors);
        hg_conf_free(conf);
        if (!fired) {
            break;
        }
    }

    /* the file's id and one given twice: each named */
    conf = load_file("scheduler.conf", &errors);
    assert_non_null(conf);
    assert_int_equal(hg_conf_add_api_jobs(conf, clash, &errors), HG_ERROR);
    text = errors_text(&errors);
    assert_non_null(strstr(text, "job \"f\""));
    assert_non_null(strstr(text, "a1"));
    free(text);
    hg_conf_errors_free(&errors);
    hg_conf_free(conf);
    print_message("refusals that failed it: %lu\n", failed);
    assert_true(failed > 0);
    free(want);
    json_decref(defs);
    json_decref(clash);
}

/* Settings the loader fills in: a redis store coordinates a cluster, and
 * an instance without a name is the machine's. */
static void
test_cluster_defaults(void **state)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    char host[256];
    hg_conf_t *conf;

    HG_UNUSED(state);
    conf = load_text("store = { driver = \"redis\"; "
                     "url = \"redis://127.0.0.1:6379\"; };\n", &errors);
    assert_non_null(conf);
    assert_no_errors(&errors);
    assert_true(conf->cluster.enabled);
    assert_int_equal(conf->cluster.lease_ms, 10000);
    assert_int_equal(gethostname(host, sizeof(host)), 0);
    assert_string_equal(conf->cluster.instance, host);
    hg_conf_free(conf);
}

/* Where the log goes, checked as -t does: a directory that cannot be
 * made is said, with why. */
static void
test_log_place(void **state)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    hg_conf_t *conf;
    char *text;

    HG_UNUSED(state);
    conf = load_text("log = { file = \"/dev/null/sub/hg.log\"; };\n", &errors);
    assert_non_null(conf);
    assert_int_equal(hg_conf_log_place(conf, true, &errors), HG_ERROR);
    text = errors_text(&errors);
    if (strcmp(text, "T/scheduler.conf:1: log.file: cannot create the log "
                     "directory of /dev/null/sub/hg.log: /dev/null is not a "
                     "directory\n") != 0)
    {
        fail_msg("%s", text);
    }
    free(text);
    hg_conf_errors_free(&errors);
    hg_conf_free(conf);
}

/* Values of the wrong type in a job of the API (JSON: no libconfig type
 * check before): each refused, naming the key and what it wanted. */
static void
test_job_from_json_types(void **state)
{
    static const struct {
        const char *def;
        const char *want;
    } cases[] = {
        { "\"enabled\": \"yes\"", "enabled: expected true or false" },
        { "\"max_retries\": \"3\"", "max_retries: expected an integer" },
        { "\"max_retries\": 1e3", "max_retries: expected an integer" },
        { "\"backoff\": {\"multiplier\": \"2\"}", "backoff.multiplier: "
          "expected a number" },
        { "\"backoff\": {\"multiplier\": 0.5}", "backoff.multiplier: 0.5 "
          "is out of range" },
        { "\"timeout\": 5", "timeout: 5 is not a" },
        { "\"timeout\": true", "timeout: expected" },
        { "\"timeout\": \"5\"", "timeout: \"5\" is not a duration" },
        { "\"name\": 5", "name: expected" },
        { "\"tags\": \"db\"", "tags: expected" },
        { "\"tags\": [1]", "tags" },
        { "\"priority\": 1", "priority: expected" },
        { "\"overlap\": \"sometimes\"", "overlap: \"sometimes\" is not one "
          "of" },
        { "\"jitter\": [1]", "jitter: expected" },
        { "\"misfire\": 2", "misfire: expected" },
        { "\"starting_deadline\": \"-5s\"", "starting_deadline" },
    };
    hg_conf_errors_t errors = { NULL, 0, 0 };
    hg_job_conf_t job;
    hg_conf_t *conf;
    char text[512], *got;
    json_t *def;
    size_t i;

    HG_UNUSED(state);
    conf = load_text("workers = 1;\n", &errors);
    assert_non_null(conf);
    for (i = 0; i < HG_NELEMS(cases); i++) {
        snprintf(text, sizeof(text), "{\"id\": \"t\", \"type\": \"shell\", "
                 "\"command\": \"true\", %s}", cases[i].def);
        def = json_loads(text, 0, NULL);
        assert_non_null(def);
        memset(&job, 0, sizeof(job));
        if (hg_conf_job_from_json(conf, def, &job, &errors) == HG_OK) {
            fail_msg("case %zu (%s): accepted", i, cases[i].def);
        }
        got = errors_text(&errors);
        if (strstr(got, cases[i].want) == NULL) {
            fail_msg("case %zu (%s): %s", i, cases[i].def, got);
        }
        free(got);
        hg_conf_errors_free(&errors);
        hg_conf_job_free(&job);
        json_decref(def);
    }
    hg_conf_free(conf);
}

/* --- the shipped files ------------------------------------------------- */

/* The keys of the bundled modules (modules/NAME/), to check that the
 * shipped files use only keys that exist. */
static const char *const shell_keys[] = {
    "command", "argv", "env", "cwd", "user", "group", "umask",
    "output_limit", NULL
};
static const char *const http_keys[] = {
    "url", "method", "headers", "body", "expect", "follow_redirects",
    "verify_tls", "output_limit", NULL
};
static const char *const system_keys[] = { "task", NULL };

static void
load_shipped(const char *path)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    hg_conf_t *conf = hg_conf_load(path, ".", &errors);
    char *text;
    size_t i;

    for (i = 0; conf != NULL && i < conf->njobs; i++) {
        const hg_job_conf_t *job = &conf->jobs[i];
        hg_conf_check_job_keys(job,
                               strcmp(job->type, "shell") == 0 ? shell_keys
                               : strcmp(job->type, "http") == 0 ? http_keys
                               : system_keys, &errors);
    }

    if (errors.count > 0) {
        text = errors_text(&errors);
        print_error("%s:\n%s", path, text);
        free(text);
    }
    assert_non_null(conf);
    assert_int_equal(errors.count, 0);
    assert_true(conf->njobs > 0);
    hg_conf_free(conf);
    hg_conf_errors_free(&errors);
}

static void
test_shipped_configs(void **state)
{
    glob_t g;
    size_t i;

    HG_UNUSED(state);
    /* run from the top of the tree, as `make unit` does */
    if (access("conf/scheduler.conf", R_OK) != 0) {
        skip();
    }
    /* the quick start must work with no environment at all */
    unsetenv("HOURGLASS_TOKEN");
    load_shipped("conf/scheduler.conf");
    /* the examples say which variables they need */
    setenv("HOURGLASS_TOKEN", "example-admin-token", 1);
    setenv("HOURGLASS_READ_TOKEN", "example-read-token", 1);
    if (glob("conf/examples/*.conf", 0, NULL, &g) == 0) {
        for (i = 0; i < g.gl_pathc; i++) {
            load_shipped(g.gl_pathv[i]);
        }
        globfree(&g);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_api_defaults),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_workers_auto),
        cmocka_unit_test(test_defaults_after_jobs),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_include),
        cmocka_unit_test(test_dump_round_trip),
        cmocka_unit_test(test_env_in_shell_command),
        cmocka_unit_test(test_dump_content),
        cmocka_unit_test(test_check_job_keys),
        cmocka_unit_test(test_did_you_mean),
        cmocka_unit_test(test_job_from_json),
        cmocka_unit_test(test_unreadable),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_features_round_trip),
        cmocka_unit_test(test_api_jobs_out_of_memory),
        cmocka_unit_test(test_cluster_defaults),
        cmocka_unit_test(test_log_place),
        cmocka_unit_test(test_job_from_json_types),
        cmocka_unit_test(test_shipped_configs),
    };

    fault_alloc_setup();
    return cmocka_run_group_tests(tests, setup, teardown);
}
