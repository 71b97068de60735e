/*
 * Unit tests for the client's commands (hg_client.c, hg_client_http.c)
 * run in this process against a real daemon (objs/hourglass, a memory
 * store, its admin API on loopback): usage errors word for word, and
 * every command with each of its allocations refused in turn. A refusal
 * ends the command with status 1 and "out of memory" (or strerror's
 * words for ENOMEM, where a write failed for it), or changes nothing
 * the user sees (the --json answers compared, digits aside: times move);
 * never a crash, a leak (ASan, valgrind) or another message.
 */

#include "hg_core.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <getopt.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "hg_client.h"

#include "fault_alloc.h"
#include "run_main.h"

#define TOKEN  "s3cret-token-of-ops"

/*
 * The answers are parsed with their allocations spared (linked with
 * -Wl,--wrap=json_loads): jansson's lexer goes on with a character
 * missing when it cannot grow a token (see fault_alloc.h), so a refusal
 * there yields another answer that no caller can tell from the real one.
 * Everything else jansson allocates for the client is refused as usual.
 */
json_t *__real_json_loads(const char *input, size_t flags,
                          json_error_t *error);
json_t *__wrap_json_loads(const char *input, size_t flags,
                          json_error_t *error);

json_t *
__wrap_json_loads(const char *input, size_t flags, json_error_t *error)
{
    json_t *v;

    fault_alloc_spare_json(true);
    v = __real_json_loads(input, flags, error);
    fault_alloc_spare_json(false);
    return v;
}

static char dir[64];
static char url[64];
static char conf_text[PATH_MAX + 1024];    /* the daemon's configuration */
static pid_t daemon_pid;

static int
client_main(int argc, char **argv)
{
    optind = 0;                     /* getopt starts over, as in a new process */
    return hg_client_main(argc, argv);
}

/* A client command line: "hourglass" and ARGS (NULL-terminated). */
static int
client(unsigned long fault, run_main_t *r, char **args)
{
    char *argv[16];
    int argc = 0;

    argv[argc++] = "hourglass";
    while (*args != NULL && argc < 15) {
        argv[argc++] = *args++;
    }
    argv[argc] = NULL;
    return run_main(client_main, argc, argv, fault, r);
}

#define CLIENT(fault, r, ...)                                                 \
    do {                                                                      \
        char *args_[] = { __VA_ARGS__, NULL };                                \
        assert_int_equal(client((fault), (r), args_), 0);                     \
    } while (0)

static int
free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *) &a, sizeof(a)) == 0
        && getsockname(fd, (struct sockaddr *) &a, &len) == 0)
    {
        port = ntohs(a.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

static int
write_text(const char *name, const char *text)
{
    char path[PATH_MAX];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0) {
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    return fclose(f);
}

/* Whether the answer of `--json runs` has N finished executions. */
static bool
runs_finished(size_t n)
{
    run_main_t r;
    json_t *doc, *e;
    size_t i, done = 0;

    CLIENT(0, &r, "--json", "runs");
    doc = json_loads(r.out, 0, NULL);
    json_array_foreach(json_object_get(doc, "executions"), i, e) {
        const char *st = json_string_value(json_object_get(e, "status"));
        done += st != NULL && (strcmp(st, "succeeded") == 0
                               || strcmp(st, "dead") == 0
                               || strcmp(st, "failed") == 0);
    }
    json_decref(doc);
    run_main_free(&r);
    return done >= n;
}

static int
setup(void **state)
{
    char conf[PATH_MAX + 1024], modules[PATH_MAX], path[PATH_MAX];
    run_main_t r;
    int port, i;

    HG_UNUSED(state);
    snprintf(dir, sizeof(dir), "/tmp/hg_test_client.XXXXXX");
    if (mkdtemp(dir) == NULL || realpath("modules", modules) == NULL
        || (port = free_port()) < 0)
    {
        return -1;
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    snprintf(conf, sizeof(conf),
             "pid = \"hg.pid\";\n"
             "log = { file = \"hg.log\"; };\n"
             "workers = 2;\n"
             "modules = { path = \"%s\"; load = [ \"shell\" ]; };\n"
             "store = { driver = \"memory\"; };\n"
             "api = { listen = \"127.0.0.1:%d\";\n"
             "    tokens = ( { name = \"ops\"; token = \"" TOKEN "\";\n"
             "                 role = \"admin\"; } ); };\n"
             "jobs = (\n"
             /* triggered again and again: never "running, skipped" */
             "  { id = \"ok\"; type = \"shell\"; command = \"echo hello\";\n"
             "    tags = [ \"demo\" ]; overlap = \"allow\"; },\n"
             "  { id = \"bad\"; type = \"shell\"; max_retries = 0;\n"
             "    command = \"echo oops >&2; exit 3\"; },\n"
             "  { id = \"later\"; type = \"shell\"; command = \"true\";\n"
             "    schedule = \"0 3 1 1 *\"; timezone = \"UTC\"; },\n"
             "  { id = \"off\"; type = \"shell\"; command = \"true\";\n"
             "    enabled = false; },\n"
             /* "$$$$": the shell's $$ */
             "  { id = \"sig\"; type = \"shell\"; max_retries = 0;\n"
             "    command = \"kill -KILL $$$$\"; },\n"
             "  { id = \"big\"; type = \"shell\"; output_limit = \"1KiB\";\n"
             "    command = \"head -c 5000 /dev/zero | tr '\\\\0' x\"; }\n"
             ");\n", modules, port);
    snprintf(conf_text, sizeof(conf_text), "%s", conf);
    if (write_text("scheduler.conf", conf) != 0
        || write_text("import.yaml", "- id: imported\n  type: shell\n"
                      "  command: \"true\"\n") != 0
        || write_text("payload.json", "{\"n\": 1}\n") != 0)
    {
        return -1;
    }
    snprintf(path, sizeof(path), "%s/scheduler.conf", dir);
    daemon_pid = fork();
    if (daemon_pid < 0) {
        return -1;
    }
    if (daemon_pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        /* gone with this test, even if it crashes before its teardown */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        execl("objs/hourglass", "hourglass", "-p", dir, "-c", path,
              (char *) NULL);
        _exit(127);
    }
    setenv("HOURGLASS_URL", url, 1);
    setenv("HOURGLASS_TOKEN", TOKEN, 1);
    setenv("TZ", "UTC", 1);
    for (i = 0; i < 200; i++) {
        char *argv[] = { "hourglass", "status", NULL };

        if (run_main(client_main, 2, argv, 0, &r) == 0 && r.status == 0) {
            run_main_free(&r);
            break;
        }
        run_main_free(&r);
        usleep(50 * 1000);
    }
    if (i == 200) {
        return -1;
    }
    /* executions to list: one that succeeded, one dead */
    CLIENT(0, &r, "trigger", "ok");
    run_main_free(&r);
    CLIENT(0, &r, "trigger", "bad");
    run_main_free(&r);
    for (i = 0; i < 200 && !runs_finished(2); i++) {
        usleep(50 * 1000);
    }
    return i < 200 ? 0 : -1;
}

static int
teardown(void **state)
{
    char cmd[128];
    int status;

    HG_UNUSED(state);
    if (daemon_pid > 0) {
        kill(daemon_pid, SIGTERM);
        waitpid(daemon_pid, &status, 0);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* --- usage --------------------------------------------------------------- */

static void
test_usage_errors(void **state)
{
    static const struct {
        char *args[6];
        const char *err;
    } cases[] = {
        { { NULL }, "hourglass: a command is expected" },
        { { "frobnicate" }, "hourglass: unknown command \"frobnicate\"" },
        { { "--colour", "jobs" }, "hourglass: --colour: unknown option" },
        { { "jobs", "--url" }, "hourglass: --url needs a value" },
        { { "jobs", "--bogus" }, "hourglass: --bogus: unknown option for "
          "jobs" },
        { { "runs", "-n", "0" }, "hourglass: -n 0: a count from 1 to" },
        { { "runs", "-n", "12x" }, "hourglass: -n 12x: a count from 1 to" },
        { { "status", "extra" }, "hourglass: unexpected argument \"extra\"" },
        { { "runs", "a", "b" }, "hourglass: unexpected argument \"b\"" },
        { { "show" }, "hourglass: show needs JOB" },
        { { "jobs", "--payload", "x" }, "hourglass: --payload: not an "
          "option of jobs" },
        { { "enqueue", "ok", "--at", "+soon" }, "hourglass: --at +soon: a "
          "duration after \"+\" is expected" },
    };
    run_main_t r;
    size_t i;

    HG_UNUSED(state);
    for (i = 0; i < HG_NELEMS(cases); i++) {
        assert_int_equal(client(0, &r, (char **) cases[i].args), 0);
        if (r.status != HG_CLIENT_EXIT_USAGE
            || strncmp(r.err, cases[i].err, strlen(cases[i].err)) != 0)
        {
            fail_msg("case %zu: status %d, \"%s\"", i, r.status, r.err);
        }
        run_main_free(&r);
    }

    /* -h: the usage on stdout, status 0; for a command, its line too */
    CLIENT(0, &r, "-h");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "Usage"));
    run_main_free(&r);
    CLIENT(0, &r, "runs", "-h");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "runs: hourglass [OPTIONS] runs [JOB]"));
    run_main_free(&r);
}

/* --- where the daemon is, who asks, what it says ------------------------ */

/* The daemon's configuration with api.listen = LISTEN, as FILE. */
static void
conf_listening(const char *file, const char *listen)
{
    char text[sizeof(conf_text) + 64], *at, *end;

    snprintf(text, sizeof(text), "%s", conf_text);
    at = strstr(text, "listen = \"");
    assert_non_null(at);
    at += strlen("listen = \"");
    end = strchr(at, '"');
    assert_non_null(end);
    memmove(at + strlen(listen), end, strlen(end) + 1);
    memcpy(at, listen, strlen(listen));
    assert_int_equal(write_text(file, text), 0);
}

/*
 * The URL from the configuration (-c, or -p's conf/scheduler.conf), a
 * wildcard listen address meaning this machine; the token from a file;
 * the daemon's error answers as the user reads them.
 */
static void
test_finding_the_daemon(void **state)
{
    char file[PATH_MAX], tokens[PATH_MAX], empty[PATH_MAX], port[16];
    const char *colon = strrchr(url, ':');
    run_main_t r;

    HG_UNUSED(state);
    snprintf(port, sizeof(port), "%s", colon + 1);
    unsetenv("HOURGLASS_URL");

    /* -c FILE: its api.listen; 0.0.0.0 is reached on 127.0.0.1 */
    snprintf(file, sizeof(file), "%s/any.conf", dir);
    {
        char listen[64];

        snprintf(listen, sizeof(listen), "0.0.0.0:%s", port);
        conf_listening("any.conf", listen);
    }
    CLIENT(0, &r, "-c", file, "--json", "status");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\"jobs\": 6"));
    run_main_free(&r);
    /* -p PREFIX: PREFIX/conf/scheduler.conf */
    {
        char sub[PATH_MAX], listen[64];

        snprintf(sub, sizeof(sub), "%s/conf", dir);
        assert_int_equal(mkdir(sub, 0700), 0);
        snprintf(listen, sizeof(listen), "127.0.0.1:%s", port);
        conf_listening("conf/scheduler.conf", listen);
    }
    CLIENT(0, &r, "-p", dir, "status");
    assert_int_equal(r.status, 0);
    run_main_free(&r);
    /* no api section where it looks: says which file it read */
    CLIENT(0, &r, "-c", "/nonexistent/scheduler.conf", "status");
    assert_int_equal(r.status, HG_CLIENT_EXIT_API);
    assert_non_null(strstr(r.err, "/nonexistent/scheduler.conf"));
    run_main_free(&r);
    setenv("HOURGLASS_URL", url, 1);

    /* the token from a file: its first line, blanks at its end left */
    unsetenv("HOURGLASS_TOKEN");
    snprintf(tokens, sizeof(tokens), "%s/token", dir);
    snprintf(empty, sizeof(empty), "%s/empty", dir);
    assert_int_equal(write_text("token", TOKEN " \r\nsecond line\n"), 0);
    assert_int_equal(write_text("empty", "\n"), 0);
    CLIENT(0, &r, "--token-file", tokens, "jobs");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "disabled"));     /* job "off" */
    run_main_free(&r);
    setenv("HOURGLASS_TOKEN_FILE", tokens, 1);
    CLIENT(0, &r, "jobs", "--status", "disabled");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "off"));
    run_main_free(&r);
    unsetenv("HOURGLASS_TOKEN_FILE");
    CLIENT(0, &r, "--token-file", empty, "jobs");
    assert_int_equal(r.status, HG_CLIENT_EXIT_API);
    assert_non_null(strstr(r.err, "no token in the file"));
    run_main_free(&r);
    /* without one: 401, and the client says no token was given */
    CLIENT(0, &r, "status");
    assert_int_equal(r.status, HG_CLIENT_EXIT_API);
    assert_non_null(strstr(r.err, "HTTP 401"));
    assert_non_null(strstr(r.err, "no token was given"));
    run_main_free(&r);
    /* a wrong one: where it came from */
    CLIENT(0, &r, "--token", "wrong", "status");
    assert_int_equal(r.status, HG_CLIENT_EXIT_API);
    assert_non_null(strstr(r.err, "the token was given by --token"));
    run_main_free(&r);
    setenv("HOURGLASS_TOKEN", TOKEN, 1);

    /* an id that needs escaping reaches the daemon whole: not found */
    CLIENT(0, &r, "show", "no such/job?");
    assert_int_equal(r.status, HG_CLIENT_EXIT_API);
    assert_non_null(strstr(r.err, "HTTP 404"));
    run_main_free(&r);
    CLIENT(0, &r, "--json", "show", "nosuch");
    assert_int_equal(r.status, HG_CLIENT_EXIT_API);
    assert_non_null(strstr(r.out, "\"error\""));    /* the answer, as JSON */
    run_main_free(&r);
    /* nothing to list */
    CLIENT(0, &r, "runs", "later");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "No executions.\n");
    run_main_free(&r);
    CLIENT(0, &r, "jobs", "--tag", "nosuchtag");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "No jobs"));
    run_main_free(&r);
    CLIENT(0, &r, "show", "ok");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "none (runs when triggered or "
                                  "enqueued)"));
    run_main_free(&r);
    /* an import with bad jobs: each named, nothing changed */
    assert_int_equal(write_text("bad.json", "{\"jobs\": [{\"id\": \"b1\", "
                                "\"type\": \"shell\"}, {\"id\": \"b2\", "
                                "\"type\": \"nosuchtype\"}]}"), 0);
    snprintf(file, sizeof(file), "%s/bad.json", dir);
    CLIENT(0, &r, "import", file);
    assert_int_equal(r.status, HG_CLIENT_EXIT_API);
    assert_non_null(strstr(r.err, "bad jobs, nothing changed"));
    run_main_free(&r);
}

/* The id of the first execution of JOB in `--json ARGS` (runs, dead). */
static bool
first_id(const char *list, const char *job, char *id, size_t len)
{
    char *argv[] = { "hourglass", "--json", (char *) list, NULL };
    run_main_t r;
    json_t *doc, *e;
    size_t i;
    bool found = false;

    assert_int_equal(run_main(client_main, 3, argv, 0, &r), 0);
    doc = json_loads(r.out, 0, NULL);
    json_array_foreach(json_object_get(doc, "executions"), i, e) {
        const char *j = json_string_value(json_object_get(e, "job_id"));
        const char *st = json_string_value(json_object_get(e, "status"));

        if (!found && j != NULL && strcmp(j, job) == 0 && st != NULL
            && strcmp(st, "running") != 0 && strcmp(st, "queued") != 0)
        {
            snprintf(id, len, "%s",
                     json_string_value(json_object_get(e, "id")));
            found = true;
        }
    }
    json_decref(doc);
    run_main_free(&r);
    return found;
}

/* A dead execution retried and purged by hand, a stop with nothing
 * running, a run killed by a signal, an output cut at its limit: as the
 * tables and messages say them. */
static void
test_dead_letters_and_runs(void **state)
{
    char dead[64], again[64], id[64];
    run_main_t r;
    int i;

    HG_UNUSED(state);
    assert_true(first_id("dead", "bad", dead, sizeof(dead)));
    CLIENT(0, &r, "retry", dead);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "off the dead-letter list, queued again "
                                  "as execution"));
    run_main_free(&r);
    /* it fails again: dead again, under another execution */
    for (i = 0; i < 200; i++) {
        if (first_id("dead", "bad", again, sizeof(again))
            && strcmp(again, dead) != 0)
        {
            break;
        }
        usleep(50 * 1000);
    }
    assert_true(i < 200);
    CLIENT(0, &r, "purge", again);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "purged from the dead-letter list"));
    run_main_free(&r);

    CLIENT(0, &r, "stop", "ok");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "ok: 0 running executions killed"));
    run_main_free(&r);

    CLIENT(0, &r, "trigger", "sig");
    run_main_free(&r);
    CLIENT(0, &r, "trigger", "big");
    run_main_free(&r);
    for (i = 0; i < 200 && !(first_id("runs", "sig", id, sizeof(id))
                             && first_id("runs", "big", id, sizeof(id)));
         i++)
    {
        usleep(50 * 1000);
    }
    assert_true(i < 200);
    CLIENT(0, &r, "runs", "sig");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "signal 9"));
    run_main_free(&r);
    CLIENT(0, &r, "output", id);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "the output was truncated"));
    run_main_free(&r);
}

/* --- out of memory ------------------------------------------------------- */

/* TEXT with each run of digits as "#": what stays when only times move. */
static void
digits_out(char *text)
{
    char *w = text, *p = text;

    while (*p != '\0') {
        if (isdigit((unsigned char) *p)) {
            while (isdigit((unsigned char) *p)) {
                p++;                /* past the run before writing over it */
            }
            *w++ = '#';
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
}

/*
 * ARGS with each allocation refused in turn. SAME: the answer (--json)
 * must be the unrefused one; else a success only has to succeed (a table
 * of relative times, or a command that changes the daemon).
 */
static unsigned long
oom_command(char **args, bool same)
{
    unsigned long failed = 0;
    run_main_t want, got;

    assert_int_equal(client(0, &want, args), 0);
    if (want.status != 0) {
        fail_msg("%s: status %d: %s", args[0], want.status, want.err);
    }
    digits_out(want.out);
    for (unsigned long n = 1; n < FAULT_ALLOC_MAX; n += fault_step()) {
        assert_int_equal(client(n, &got, args), 0);
        if (got.status == 0) {
            digits_out(got.out);
            if (same && strcmp(got.out, want.out) != 0) {
                fail_msg("%s %s, allocation %lu refused: status 0 and "
                         "another answer:\n%s", args[0],
                         args[1] ? args[1] : "", n, got.out);
            }
        } else if (!got.fired || got.status != HG_CLIENT_EXIT_API
                   || (strstr(got.err, "out of memory") == NULL
                       && strstr(got.err, strerror(ENOMEM)) == NULL))
        {
            fail_msg("%s %s, allocation %lu %s: status %d: %s", args[0],
                     args[1] ? args[1] : "", n,
                     got.fired ? "refused" : "(none refused)", got.status,
                     got.err);
        } else {
            failed++;
        }
        run_main_free(&got);
        if (!got.fired) {
            break;
        }
    }
    run_main_free(&want);
    return failed;
}

static void
test_commands_out_of_memory(void **state)
{
    static char *reads[][6] = {
        { "--json", "status" },
        { "--json", "jobs" },
        { "--json", "jobs", "--tag", "demo" },
        { "--json", "show", "later" },
        { "--json", "runs", "-n", "5" },
        { "--json", "runs", "ok" },
        { "--json", "dead" },
        { "export" },
        { "export", "--conf" },
    };
    static char *tables[][6] = {
        { "status" },
        { "jobs" },
        { "jobs", "--status", "active" },
        { "show", "ok" },
        { "show", "later" },
        { "runs" },
        { "runs", "bad" },
        { "dead" },
    };
    char payload[PATH_MAX], import[PATH_MAX];
    char *changes[][8] = {
        { "pause", "later" },
        { "resume", "later" },
        { "trigger", "ok", "--payload", payload },
        { "enqueue", "ok", "--priority", "high", "--at", "+1h" },
        { "import", import },
    };
    unsigned long failed = 0;
    size_t i;

    HG_UNUSED(state);
    snprintf(payload, sizeof(payload), "%s/payload.json", dir);
    snprintf(import, sizeof(import), "%s/import.yaml", dir);
    for (i = 0; i < HG_NELEMS(reads); i++) {
        failed += oom_command(reads[i], true);
    }
    for (i = 0; i < HG_NELEMS(tables); i++) {
        failed += oom_command(tables[i], false);
    }
    for (i = 0; i < HG_NELEMS(changes); i++) {
        failed += oom_command(changes[i], false);
    }
    print_message("refusals that failed a command: %lu\n", failed);
    assert_true(failed > 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_finding_the_daemon),
        cmocka_unit_test(test_dead_letters_and_runs),
        cmocka_unit_test(test_commands_out_of_memory),
    };

    fault_alloc_setup();
    return cmocka_run_group_tests(tests, setup, teardown);
}
