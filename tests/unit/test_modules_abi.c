/*
 * Unit tests of the module ABI as the shared objects present it: every
 * .so in tests/modules loads and exports hg_module (except noexport, which
 * must not), the bundled modules describe themselves correctly, the
 * misbehaving modules misbehave as advertised (in forked children, so a
 * crash fails nothing but the child), and the system module's tasks do
 * what the contract says. Run from the repository root after make.
 *
 * This file tests the modules, not the loader (core/hg_module.c has its own
 * tests): it calls dlopen and the callbacks directly.
 */

#include "hg_core.h"

#include <dlfcn.h>
#include <glob.h>
#include <setjmp.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "hg_exec.h"

typedef struct {
    const char *file;
    const char *name;               /* NULL: must not export hg_module */
    uint32_t abi_version;
} expected_module_t;

static const expected_module_t expected[] = {
    { "tests/modules/crash.so", "crash", HG_MODULE_ABI_VERSION },
    { "tests/modules/hang.so", "hang", HG_MODULE_ABI_VERSION },
    { "tests/modules/badabi.so", "badabi", 999 },
    { "tests/modules/noexport.so", NULL, 0 },
    { "tests/modules/dupname.so", "shell", HG_MODULE_ABI_VERSION },
    { "tests/modules/initfail.so", "initfail", HG_MODULE_ABI_VERSION },
    { "tests/modules/echo.so", "echo", HG_MODULE_ABI_VERSION },
    { "tests/modules/badvalidate.so", "badvalidate", HG_MODULE_ABI_VERSION },
};

/* dlopen a module and return its hg_module (NULL when absent). */
static const hg_module_t *
load(const char *file, void **handle)
{
    *handle = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (*handle == NULL) {
        print_error("dlopen %s: %s\n", file, dlerror());
        fail();
    }
    return dlsym(*handle, "hg_module");
}

static void
exec_prepare(hg_exec_t *exec, json_t *job)
{
    assert_non_null(job);
    hg_exec_init(exec);
    exec->id = "0190b5a4-7c1e-7000-8000-000000000002";
    exec->job_id = "abi-test";
    exec->job = job;
    exec->attempt = 1;
    exec->output_limit = hg_exec_limit_from_job(job);
}

static void
exec_finish(hg_exec_t *exec)
{
    json_decref(exec->job);
    hg_exec_reset(exec);
}

static void
assert_output(const hg_exec_t *exec, const char *want)
{
    size_t len = strlen(want);

    if (exec->output_len != len
        || (len > 0 && memcmp(exec->output, want, len) != 0))
    {
        print_error("output: got \"%.*s\", want \"%s\"\n",
                    (int) exec->output_len,
                    exec->output != NULL ? exec->output : "", want);
        fail();
    }
}

static void
expect_invalid(const hg_module_t *m, const char *text, const char *message)
{
    json_error_t jerr;
    char err[256];
    json_t *job;

    job = json_loads(text, 0, &jerr);
    assert_non_null(job);
    err[0] = '\0';
    if (m->validate(job, err, sizeof(err)) != -1
        || strcmp(err, message) != 0)
    {
        print_error("%s validate %s: got \"%s\", want \"%s\"\n", m->name,
                    text, err, message);
        json_decref(job);
        fail();
    }
    json_decref(job);
}

static void
expect_valid(const hg_module_t *m, const char *text)
{
    json_error_t jerr;
    char err[256];
    json_t *job;

    job = json_loads(text, 0, &jerr);
    assert_non_null(job);
    err[0] = '\0';
    if (m->validate(job, err, sizeof(err)) != 0) {
        print_error("%s validate %s: %s\n", m->name, text, err);
        json_decref(job);
        fail();
    }
    json_decref(job);
}

/* --- every test module ------------------------------------------------- */

static void
test_test_modules_load(void **state)
{
    const hg_module_t *m;
    glob_t g;
    size_t i;
    void *handle;

    (void) state;
    /* each one we expect, with its name and ABI version */
    for (i = 0; i < HG_NELEMS(expected); i++) {
        m = load(expected[i].file, &handle);
        if (expected[i].name == NULL) {
            assert_null(m);
        } else {
            assert_non_null(m);
            assert_int_equal(m->abi_version, expected[i].abi_version);
            assert_int_equal(m->size, sizeof(hg_module_t));
            assert_string_equal(m->name, expected[i].name);
            assert_non_null(m->execute);
        }
        assert_int_equal(dlclose(handle), 0);
    }

    /* and every .so there (others add their own test modules) loads and
     * exports hg_module, noexport alone excepted */
    assert_int_equal(glob("tests/modules/*.so", 0, NULL, &g), 0);
    assert_true(g.gl_pathc >= HG_NELEMS(expected));
    for (i = 0; i < g.gl_pathc; i++) {
        m = load(g.gl_pathv[i], &handle);
        if ((m == NULL) != (strstr(g.gl_pathv[i], "noexport") != NULL)) {
            print_error("%s: hg_module %s\n", g.gl_pathv[i],
                        m == NULL ? "missing" : "unexpectedly exported");
            fail();
        }
        if (m != NULL) {
            assert_non_null(m->name);
        }
        assert_int_equal(dlclose(handle), 0);
    }
    globfree(&g);
}

static void
test_bundled_modules_describe_themselves(void **state)
{
    static const char *const files[] = {
        "modules/shell.so", "modules/system.so"
    };
    static const char *const names[] = { "shell", "system" };
    const hg_module_t *m;
    void *handle;
    size_t i;

    (void) state;
    for (i = 0; i < HG_NELEMS(files); i++) {
        m = load(files[i], &handle);
        assert_non_null(m);
        assert_int_equal(m->abi_version, HG_MODULE_ABI_VERSION);
        assert_int_equal(m->size, sizeof(hg_module_t));
        assert_string_equal(m->name, names[i]);
        assert_non_null(m->validate);
        assert_non_null(m->execute);
        assert_non_null(m->keys);
        assert_int_equal(dlclose(handle), 0);
    }
}

/* --- the misbehaving ones ---------------------------------------------- */

static void
test_crash_segfaults(void **state)
{
    const hg_module_t *m;
    hg_exec_t exec;
    void *handle;
    int status;
    pid_t pid;

    (void) state;
    m = load("tests/modules/crash.so", &handle);
    assert_non_null(m);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* no core file from a crash we asked for */
        struct rlimit no_core = { 0, 0 };

        (void) setrlimit(RLIMIT_CORE, &no_core);
        /* cmocka catches SIGSEGV to report a crashing test; a worker has
         * the default action, which is what this is about */
        (void) signal(SIGSEGV, SIG_DFL);
        exec_prepare(&exec, json_object());
        (void) m->execute(&exec);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
    assert_int_equal(dlclose(handle), 0);
}

static volatile sig_atomic_t cancelled = 1;

static void
test_hang_ignores_cancellation(void **state)
{
    const hg_module_t *m;
    struct timespec wait = { 0, 300 * 1000000L };
    hg_exec_t exec;
    void *handle;
    int status;
    pid_t pid;

    (void) state;
    m = load("tests/modules/hang.so", &handle);
    assert_non_null(m);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        exec_prepare(&exec, json_object());
        exec.cancel = &cancelled;           /* already cancelled... */
        exec.deadline = 1;                  /* ...and long past due */
        (void) m->execute(&exec);
        _exit(0);
    }
    nanosleep(&wait, NULL);
    /* still running: only a kill ends it */
    assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(dlclose(handle), 0);
}

static void
test_initfail_refuses(void **state)
{
    const hg_module_t *m;
    hg_host_t host;
    char err[256];
    json_t *conf;
    void *handle;

    (void) state;
    m = load("tests/modules/initfail.so", &handle);
    assert_non_null(m);
    assert_non_null(m->init);
    memset(&host, 0, sizeof(host));
    host.abi_version = HG_MODULE_ABI_VERSION;
    host.size = (uint32_t) sizeof(host);
    conf = json_object();
    err[0] = '\0';
    assert_int_equal(m->init(conf, &host, err, sizeof(err)), -1);
    assert_string_equal(err, "initfail: refusing to start (test)");
    json_decref(conf);
    assert_int_equal(dlclose(handle), 0);
}

static void
test_badvalidate_rejects(void **state)
{
    const hg_module_t *m;
    void *handle;

    (void) state;
    m = load("tests/modules/badvalidate.so", &handle);
    assert_non_null(m);
    expect_invalid(m, "{\"id\": \"x\", \"mode\": \"a\"}",
                   "mode: must be one of a, b (test)");
    assert_int_equal(dlclose(handle), 0);
}

/* --- echo: the well-behaved reference ----------------------------------- */

static void
test_echo(void **state)
{
    static const char payload[] = "from the queue";
    const hg_module_t *m;
    hg_exec_t exec;
    void *handle;
    int64_t start;

    (void) state;
    m = load("tests/modules/echo.so", &handle);
    assert_non_null(m);

    exec_prepare(&exec, json_pack("{s:s}", "message", "hello"));
    assert_int_equal(m->execute(&exec), HG_OK);
    assert_output(&exec, "hello");
    exec_finish(&exec);

    /* the payload wins over message */
    exec_prepare(&exec, json_pack("{s:s}", "message", "hello"));
    exec.payload = payload;
    exec.payload_len = sizeof(payload) - 1;
    assert_int_equal(m->execute(&exec), HG_OK);
    assert_output(&exec, payload);
    exec_finish(&exec);

    exec_prepare(&exec, json_pack("{s:i}", "exit", 1));
    assert_int_equal(m->execute(&exec), HG_FAIL);
    exec_finish(&exec);

    exec_prepare(&exec, json_pack("{s:i, s:i}", "exit", 2,
                                  "retry_after", 1500));
    assert_int_equal(m->execute(&exec), HG_RETRY);
    assert_int_equal(exec.retry_after_ms, 1500);
    exec_finish(&exec);

    exec_prepare(&exec, json_pack("{s:i, s:s}", "exit", 2,
                                  "retry_after", "2s"));
    assert_int_equal(m->execute(&exec), HG_RETRY);
    assert_int_equal(exec.retry_after_ms, 2000);
    exec_finish(&exec);

    exec_prepare(&exec, json_pack("{s:i}", "exit", 3));
    assert_int_equal(m->execute(&exec), HG_FATAL);
    exec_finish(&exec);

    exec_prepare(&exec, json_pack("{s:i}", "sleep_ms", 20));
    assert_int_equal(m->execute(&exec), HG_OK);
    exec_finish(&exec);

    /* cooperative cancellation: returns soon after the deadline */
    exec_prepare(&exec, json_pack("{s:i}", "sleep_ms", 30000));
    exec.deadline = hg_exec_now_ms() + 100;
    start = hg_exec_now_ms();
    assert_int_equal(m->execute(&exec), HG_FAIL);
    assert_true(hg_exec_now_ms() - start < 5000);
    assert_string_equal(exec.error, "cancelled");
    exec_finish(&exec);

    expect_valid(m, "{\"message\": \"x\", \"exit\": 2, \"retry_after\": "
                 "\"500ms\", \"sleep_ms\": 0}");
    expect_invalid(m, "{\"exit\": 4}",
                   "exit: must be 0 (ok), 1 (fail), 2 (retry) or 3 (fatal)");
    expect_invalid(m, "{\"message\": 1}", "message: must be a string");
    expect_invalid(m, "{\"sleep_ms\": -1}",
                   "sleep_ms: must be a non-negative integer");
    expect_invalid(m, "{\"retry_after\": \"soon\"}",
                   "retry_after: must be milliseconds or a duration");

    assert_int_equal(dlclose(handle), 0);
}

/* --- the system module -------------------------------------------------- */

static void
test_system_validate(void **state)
{
    const hg_module_t *m;
    void *handle;

    (void) state;
    m = load("modules/system.so", &handle);
    assert_non_null(m);
    assert_string_equal(m->keys[0], "task");
    assert_null(m->keys[1]);
    expect_valid(m, "{\"id\": \"prune\", \"type\": \"system\", "
                 "\"schedule\": \"@daily\", \"task\": \"history_cleanup\"}");
    expect_valid(m, "{\"task\": \"store_vacuum\"}");
    expect_valid(m, "{\"task\": \"health_check\"}");
    expect_valid(m, "{\"task\": \"noop\"}");
    expect_invalid(m, "{\"id\": \"x\"}", "task: is required");
    expect_invalid(m, "{\"task\": 1}", "task: must be a string");
    expect_invalid(m, "{\"task\": \"x\"}",
                   "task: \"x\" is not one of history_cleanup, "
                   "store_vacuum, health_check, noop");
    assert_int_equal(dlclose(handle), 0);
}

static int
fake_store_task(const char *task, json_t **report, char *err, size_t errlen)
{
    (void) err;
    (void) errlen;
    *report = json_pack("{s:s, s:i}", "task", task, "deleted", 0);
    return *report != NULL ? 0 : -1;
}

static void
test_system_tasks(void **state)
{
    const hg_module_t *m;
    json_error_t jerr;
    hg_exec_t exec;
    hg_host_t host;
    char err[64];
    json_t *doc, *conf;
    void *handle;

    (void) state;
    m = load("modules/system.so", &handle);
    assert_non_null(m);
    memset(&host, 0, sizeof(host));
    host.abi_version = HG_MODULE_ABI_VERSION;
    host.size = (uint32_t) sizeof(host);
    host.version = "9.9.9-test";
    host.process = HG_PROCESS_WORKER;
    conf = json_object();
    assert_int_equal(m->init(conf, &host, err, sizeof(err)), 0);
    json_decref(conf);

    exec_prepare(&exec, json_pack("{s:s}", "task", "noop"));
    assert_int_equal(m->execute(&exec), HG_OK);
    assert_int_equal(exec.output_len, 0);
    assert_null(exec.error);
    exec_finish(&exec);

    /* A host without store maintenance: the store tasks cannot run. */
    exec_prepare(&exec, json_pack("{s:s}", "task", "history_cleanup"));
    assert_int_equal(m->execute(&exec), HG_FATAL);
    assert_non_null(exec.error);
    exec_finish(&exec);

    /* A host with it: the task's report is the output. */
    host.store_task = fake_store_task;
    assert_int_equal(m->init(NULL, &host, err, sizeof(err)), 0);
    exec_prepare(&exec, json_pack("{s:s}", "task", "history_cleanup"));
    assert_int_equal(m->execute(&exec), HG_OK);
    assert_output(&exec, "{\"task\":\"history_cleanup\",\"deleted\":0}");
    exec_finish(&exec);

    exec_prepare(&exec, json_pack("{s:s}", "task", "store_vacuum"));
    assert_int_equal(m->execute(&exec), HG_OK);
    assert_output(&exec, "{\"task\":\"store_vacuum\",\"deleted\":0}");
    exec_finish(&exec);
    host.store_task = NULL;
    assert_int_equal(m->init(NULL, &host, err, sizeof(err)), 0);

    exec_prepare(&exec, json_pack("{s:s}", "task", "health_check"));
    assert_int_equal(m->execute(&exec), HG_OK);
    assert_non_null(exec.output);
    assert_null(memchr(exec.output, '\n', exec.output_len));
    doc = json_loadb(exec.output, exec.output_len, 0, &jerr);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "status")),
                        "ok");
    assert_int_equal(json_integer_value(json_object_get(doc, "pid")),
                     getpid());
    assert_true(json_is_number(json_object_get(doc, "uptime_seconds")));
    assert_true(json_number_value(json_object_get(doc, "uptime_seconds"))
                >= 0.0);
    assert_string_equal(json_string_value(json_object_get(doc, "version")),
                        "9.9.9-test");
    json_decref(doc);
    exec_finish(&exec);

    /* a definition validate would have refused: not retried */
    exec_prepare(&exec, json_pack("{s:s}", "task", "nope"));
    assert_int_equal(m->execute(&exec), HG_FATAL);
    assert_non_null(exec.error);
    exec_finish(&exec);

    if (m->fini != NULL) {
        m->fini();
    }
    assert_int_equal(dlclose(handle), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_test_modules_load),
        cmocka_unit_test(test_bundled_modules_describe_themselves),
        cmocka_unit_test(test_crash_segfaults),
        cmocka_unit_test(test_hang_ignores_cancellation),
        cmocka_unit_test(test_initfail_refuses),
        cmocka_unit_test(test_badvalidate_rejects),
        cmocka_unit_test(test_echo),
        cmocka_unit_test(test_system_validate),
        cmocka_unit_test(test_system_tasks),
    };

    return cmocka_run_group_tests_name("module ABI", tests, NULL, NULL);
}
