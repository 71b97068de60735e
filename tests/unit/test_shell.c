/*
 * Unit tests of the bundled shell module, driven the way a worker drives
 * it: dlopen modules/shell.so (run from the repository root), take its
 * hg_module, and call init, validate and execute with an hg_exec_t filled
 * by hand. The hg_exec_* functions the module calls resolve to this binary
 * (linked with -rdynamic).
 *
 * Every test checks on the way out that it left no fd open and no child
 * (running or zombie) behind. The timing bounds below are deliberately
 * loose: they tell "stopped promptly" from "waited for the 30 s sleep",
 * not a benchmark.
 */

#include "hg_core.h"

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <setjmp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "hg_exec.h"

#define SHELL_SO  "modules/shell.so"
#define MIB       (1024 * 1024)

static void *shell_handle;
static const hg_module_t *shell;
static json_t *empty_conf;
static int fds_before;

/* --- helpers ------------------------------------------------------------- */

static void test_host_log(hg_log_level_t level, const char *module,
    const char *fmt, ...) HG_PRINTF(3, 4);

static void
test_host_log(hg_log_level_t level, const char *module, const char *fmt, ...)
{
    va_list ap;

    (void) level;
    fprintf(stderr, "[%s] ", module);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void
host_fill(hg_host_t *host, const char *prefix)
{
    memset(host, 0, sizeof(*host));
    host->abi_version = HG_MODULE_ABI_VERSION;
    host->size = (uint32_t) sizeof(*host);
    host->version = "test";
    host->process = HG_PROCESS_WORKER;
    host->prefix = prefix;
    host->log = test_host_log;
}

static int
count_fds(void)
{
    struct dirent *de;
    DIR *dir;
    int n;

    dir = opendir("/proc/self/fd");
    if (dir == NULL) {
        return -1;
    }
    n = 0;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] != '.') {
            n++;
        }
    }
    closedir(dir);
    return n;
}

/* Children of this process, running or zombie. */
static int
count_children(void)
{
    char path[64], buf[4096];
    ssize_t len;
    int fd, n;
    char *p;

    snprintf(path, sizeof(path), "/proc/self/task/%ld/children",
             (long) getpid());
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    len = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (len < 0) {
        return -1;
    }
    buf[len] = '\0';
    n = 0;
    for (p = strtok(buf, " \n"); p != NULL; p = strtok(NULL, " \n")) {
        n++;
    }
    return n;
}

/* A live (not zombie) process whose command line is exactly argv. */
static bool
process_alive(const char **argv)
{
    char want[256], have[256], path[300], stat_buf[512], *paren;
    struct dirent *de;
    size_t wantlen, i, l;
    ssize_t len;
    bool found;
    DIR *dir;
    int fd;

    wantlen = 0;
    for (i = 0; argv[i] != NULL; i++) {
        l = strlen(argv[i]) + 1;
        assert_true(wantlen + l <= sizeof(want));
        memcpy(want + wantlen, argv[i], l);
        wantlen += l;
    }
    found = false;
    dir = opendir("/proc");
    assert_non_null(dir);
    while (!found && (de = readdir(dir)) != NULL) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9') {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        len = read(fd, have, sizeof(have));
        close(fd);
        if (len != (ssize_t) wantlen || memcmp(have, want, wantlen) != 0) {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        len = read(fd, stat_buf, sizeof(stat_buf) - 1);
        close(fd);
        if (len <= 0) {
            continue;
        }
        stat_buf[len] = '\0';
        paren = strrchr(stat_buf, ')');
        found = paren != NULL && paren[1] == ' ' && paren[2] != 'Z'
                && paren[2] != 'X';
    }
    closedir(dir);
    return found;
}

/* A killed process takes a moment to die: wait up to 2 s for it. */
static bool
process_gone(const char **argv)
{
    int i;

    for (i = 0; i < 200; i++) {
        if (!process_alive(argv)) {
            return true;
        }
        usleep(10000);
    }
    return false;
}

static int64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
exec_prepare(hg_exec_t *exec, json_t *job)
{
    hg_exec_init(exec);
    exec->id = "0190b5a4-7c1e-7000-8000-000000000001";
    exec->job_id = "test-job";
    exec->trigger = "manual";
    exec->job = job;
    exec->attempt = 1;
    exec->scheduled_for = 1795460400000LL;
    exec->output_limit = hg_exec_limit_from_job(job);
}

static void
exec_finish(hg_exec_t *exec)
{
    json_decref(exec->job);
    hg_exec_reset(exec);
}

/* Run a job (which this takes over) with the defaults of exec_prepare. */
static hg_result_t
run(hg_exec_t *exec, json_t *job)
{
    assert_non_null(job);
    exec_prepare(exec, job);
    return shell->execute(exec);
}

static void
assert_output(const hg_exec_t *exec, const char *want)
{
    size_t len = strlen(want);

    if (exec->output_len != len
        || (len > 0 && memcmp(exec->output, want, len) != 0))
    {
        print_error("output: got %zu bytes \"%.*s\", want \"%s\"\n",
                    exec->output_len, (int) exec->output_len,
                    exec->output != NULL ? exec->output : "", want);
        fail();
    }
}

static void
assert_error(const hg_exec_t *exec, const char *want)
{
    if (exec->error == NULL || strcmp(exec->error, want) != 0) {
        print_error("error: got \"%s\", want \"%s\"\n",
                    exec->error != NULL ? exec->error : "(none)", want);
        fail();
    }
}

/* --- fixtures ------------------------------------------------------------ */

static int
group_setup(void **state)
{
    char err[256];
    hg_host_t host;

    (void) state;
    shell_handle = dlopen(SHELL_SO, RTLD_NOW | RTLD_LOCAL);
    if (shell_handle == NULL) {
        print_error("dlopen %s: %s (run from the repository root after "
                    "make)\n", SHELL_SO, dlerror());
        return -1;
    }
    shell = dlsym(shell_handle, "hg_module");
    if (shell == NULL || shell->abi_version != HG_MODULE_ABI_VERSION
        || strcmp(shell->name, "shell") != 0)
    {
        print_error("%s: no usable hg_module\n", SHELL_SO);
        return -1;
    }
    empty_conf = json_object();
    host_fill(&host, NULL);
    err[0] = '\0';
    if (shell->init(empty_conf, &host, err, sizeof(err)) != 0) {
        print_error("init: %s\n", err);
        return -1;
    }
    return 0;
}

static int
group_teardown(void **state)
{
    (void) state;
    if (shell != NULL && shell->fini != NULL) {
        shell->fini();
    }
    if (shell_handle != NULL) {
        dlclose(shell_handle);
    }
    json_decref(empty_conf);
    return 0;
}

static int
setup(void **state)
{
    (void) state;
    fds_before = count_fds();
    return fds_before < 0 ? -1 : 0;
}

static int
teardown(void **state)
{
    int fds, children;

    (void) state;
    fds = count_fds();
    children = count_children();
    if (fds != fds_before) {
        print_error("fd leak: %d open before, %d after\n", fds_before, fds);
        return -1;
    }
    if (children != 0) {
        print_error("%d child process(es) left behind (zombies?)\n",
                    children);
        return -1;
    }
    return 0;
}

/* --- execute ------------------------------------------------------------- */

static void
test_command_output(void **state)
{
    hg_exec_t exec;

    (void) state;
    assert_int_equal(run(&exec, json_pack("{s:s}", "command",
                                          "echo hello; echo world")), HG_OK);
    assert_output(&exec, "hello\nworld\n");
    assert_true(exec.has_exit_code);
    assert_int_equal(exec.exit_code, 0);
    assert_int_equal(exec.signo, 0);
    assert_false(exec.truncated);
    assert_null(exec.error);
    /* what the job's process used, as wait4 saw it */
    assert_true(exec.has_usage);
    assert_true(exec.usage.ru_maxrss > 0);
    exec_finish(&exec);
}

static void
test_stderr_interleaved(void **state)
{
    hg_exec_t exec;

    (void) state;
    assert_int_equal(run(&exec, json_pack("{s:s}", "command",
                     "echo one; echo two >&2; echo three; echo four >&2")),
                     HG_OK);
    assert_output(&exec, "one\ntwo\nthree\nfour\n");
    exec_finish(&exec);
}

static void
test_argv_no_shell(void **state)
{
    hg_exec_t exec;

    (void) state;
    /* no shell: $HOME, * and the quotes reach printf untouched */
    assert_int_equal(run(&exec, json_pack("{s:[s,s,s,s,s,s]}", "argv",
                     "printf", "%s|", "a b", "$HOME", "*", "'q'")), HG_OK);
    assert_output(&exec, "a b|$HOME|*|'q'|");
    exec_finish(&exec);
}

static void
test_exit_code_fails(void **state)
{
    hg_exec_t exec;

    (void) state;
    assert_int_equal(run(&exec, json_pack("{s:s}", "command",
                                          "echo partial; exit 3")), HG_FAIL);
    assert_true(exec.has_exit_code);
    assert_int_equal(exec.exit_code, 3);
    assert_error(&exec, "exit code 3");
    assert_output(&exec, "partial\n");
    exec_finish(&exec);
}

static void
test_exit_tempfail_retries(void **state)
{
    hg_exec_t exec;

    (void) state;
    assert_int_equal(run(&exec, json_pack("{s:s}", "command", "exit 75")),
                     HG_RETRY);
    assert_true(exec.has_exit_code);
    assert_int_equal(exec.exit_code, 75);
    exec_finish(&exec);
}

static void
test_missing_command_is_exit_127(void **state)
{
    hg_exec_t exec;

    (void) state;
    /* the shell started, and it is the shell that says 127: an ordinary
     * failure, unlike an exec that never happened (below) */
    assert_int_equal(run(&exec, json_pack("{s:s}", "command",
                                          "hg-no-such-command-xyz")),
                     HG_FAIL);
    assert_true(exec.has_exit_code);
    assert_int_equal(exec.exit_code, 127);
    assert_error(&exec, "exit code 127");
    exec_finish(&exec);
}

static void
test_killed_by_signal(void **state)
{
    hg_exec_t exec;

    (void) state;
    assert_int_equal(run(&exec, json_pack("{s:s}", "command", "kill -9 $$")),
                     HG_FAIL);
    assert_int_equal(exec.signo, SIGKILL);
    assert_false(exec.has_exit_code);
    assert_error(&exec, "killed by signal 9 (SIGKILL)");
    exec_finish(&exec);

    assert_int_equal(run(&exec, json_pack("{s:s}", "command",
                                          "kill -TERM $$")), HG_FAIL);
    assert_int_equal(exec.signo, SIGTERM);
    assert_error(&exec, "killed by signal 15 (SIGTERM)");
    exec_finish(&exec);
}

static void
test_env_and_hourglass_vars(void **state)
{
    hg_exec_t exec;
    json_t *job;

    (void) state;
    assert_int_equal(setenv("HG_TEST_INHERITED", "from-worker", 1), 0);
    assert_int_equal(setenv("HG_TEST_OVERRIDDEN", "old", 1), 0);
    /* inherit_env: the worker's environment under the job's own */
    job = json_pack("{s:s, s:{s:s, s:s}, s:b}",
                    "command",
                    "printf '%s\\n' \"$FOO\" \"$HG_TEST_OVERRIDDEN\" "
                    "\"$HG_TEST_INHERITED\" \"$HOURGLASS_JOB_ID\" "
                    "\"$HOURGLASS_EXECUTION_ID\" \"$HOURGLASS_ATTEMPT\" "
                    "\"$HOURGLASS_SCHEDULED_FOR\" \"$HOURGLASS_TRIGGER\"; "
                    "env | grep -c '^HG_TEST_OVERRIDDEN='",
                    "env", "FOO", "bar baz", "HG_TEST_OVERRIDDEN", "new",
                    "inherit_env", 1);
    assert_non_null(job);
    exec_prepare(&exec, job);
    exec.job_id = "nightly-report";
    exec.id = "0190b5a4-7c1e-7abc-8def-0123456789ab";
    exec.attempt = 3;
    exec.scheduled_for = 1795460400000LL;   /* 2026-11-23T19:00:00Z */
    exec.trigger = "api:ops";
    assert_int_equal(shell->execute(&exec), HG_OK);
    assert_output(&exec,
                  "bar baz\nnew\nfrom-worker\nnightly-report\n"
                  "0190b5a4-7c1e-7abc-8def-0123456789ab\n3\n"
                  "2026-11-23T19:00:00+00:00\napi:ops\n1\n");
    exec_finish(&exec);

    /* milliseconds are kept when there are some */
    job = json_pack("{s:s}", "command", "echo $HOURGLASS_SCHEDULED_FOR");
    exec_prepare(&exec, job);
    exec.scheduled_for = 1795460400250LL;
    assert_int_equal(shell->execute(&exec), HG_OK);
    assert_output(&exec, "2026-11-23T19:00:00.250+00:00\n");
    exec_finish(&exec);

    unsetenv("HG_TEST_INHERITED");
    unsetenv("HG_TEST_OVERRIDDEN");
}

/* Without inherit_env a command gets what cron gives: HOME, LOGNAME, USER,
 * SHELL and PATH of its user, its `env`, what `pass_env` names and the
 * HOURGLASS_ variables; nothing else of the worker's environment. */
static void
test_env_is_clean_by_default(void **state)
{
    struct passwd *pw;
    hg_exec_t exec;
    char want[1024];

    (void) state;
    assert_int_equal(setenv("HG_TEST_SECRET", "s3cret", 1), 0);
    assert_int_equal(setenv("HG_TEST_PASSED", "handed over", 1), 0);
    pw = getpwuid(geteuid());
    assert_non_null(pw);
    assert_int_equal(run(&exec, json_pack("{s:s, s:{s:s}, s:[s, s]}",
        "command",
        "env | sed -n 's/=.*//p' | grep -v '^PWD$' | grep -v '^SHLVL$' "
        "| grep -v '^_$' | sort | tr '\\n' ' '; echo; "
        "printf '%s\\n' \"$HOME\" \"$LOGNAME\" \"$USER\" \"$SHELL\" "
        "\"$PATH\" \"$FOO\" \"$HG_TEST_PASSED\"",
        "env", "FOO", "bar", "pass_env", "HG_TEST_PASSED", "HG_NOT_SET")),
        HG_OK);
    snprintf(want, sizeof(want),
             "FOO HG_TEST_PASSED HOME HOURGLASS_ATTEMPT "
             "HOURGLASS_EXECUTION_ID HOURGLASS_JOB_ID "
             "HOURGLASS_SCHEDULED_FOR HOURGLASS_TRIGGER LOGNAME PATH SHELL "
             "USER \n%s\n%s\n%s\n/bin/sh\n%s\nbar\nhanded over\n",
             pw->pw_dir, pw->pw_name, pw->pw_name,
             geteuid() == 0 ? "/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                              "/usr/bin:/sbin:/bin"
                            : "/usr/local/bin:/usr/bin:/bin");
    assert_output(&exec, want);
    exec_finish(&exec);

    /* the job's env wins over the clean base */
    assert_int_equal(run(&exec, json_pack("{s:s, s:{s:s}}", "command",
                                          "echo \"$PATH\"", "env", "PATH",
                                          "/opt/x")), HG_OK);
    assert_output(&exec, "/opt/x\n");
    exec_finish(&exec);

    /* the user the job runs as, not the worker's */
    pw = getpwnam("nobody");
    if (geteuid() == 0 && pw != NULL) {
        /* echo's trailing space: HG_TEST_SECRET is empty */
        snprintf(want, sizeof(want), "%s %s %s \n", pw->pw_dir, pw->pw_name,
                 "/usr/local/bin:/usr/bin:/bin");
        assert_int_equal(run(&exec, json_pack("{s:s, s:s, s:s}", "command",
                         "echo \"$HOME\" \"$USER\" \"$PATH\" "
                         "\"$HG_TEST_SECRET\"", "user", "nobody", "cwd", "/")),
                         HG_OK);
        assert_output(&exec, want);
        exec_finish(&exec);
    }
    unsetenv("HG_TEST_SECRET");
    unsetenv("HG_TEST_PASSED");
}

static void
test_env_path_used_for_argv(void **state)
{
    hg_exec_t exec;
    char dir[] = "/tmp/hg-shell-path-XXXXXX", tool[64];
    FILE *f;

    (void) state;
    assert_non_null(mkdtemp(dir));
    snprintf(tool, sizeof(tool), "%s/hg-only-here", dir);
    f = fopen(tool, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\necho found me\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(tool, 0755), 0);

    /* the PATH searched for argv[0] is the job's */
    assert_int_equal(run(&exec, json_pack("{s:[s], s:{s:s}}", "argv",
                                          "hg-only-here", "env", "PATH",
                                          dir)), HG_OK);
    assert_output(&exec, "found me\n");
    exec_finish(&exec);

    unlink(tool);
    rmdir(dir);
}

static void
test_cwd(void **state)
{
    hg_exec_t exec;
    hg_host_t host;
    char err[256];

    (void) state;
    assert_int_equal(run(&exec, json_pack("{s:s, s:s}", "command", "pwd",
                                          "cwd", "/tmp")), HG_OK);
    assert_output(&exec, "/tmp\n");
    exec_finish(&exec);

    assert_int_equal(run(&exec, json_pack("{s:s, s:s}", "command", "pwd",
                                          "cwd", "/hg-no-such-dir")),
                     HG_FAIL);
    assert_error(&exec, "cwd \"/hg-no-such-dir\": No such file or directory");
    assert_false(exec.has_exit_code);
    exec_finish(&exec);

    /* a relative cwd is relative to the prefix, as every relative path */
    host_fill(&host, "/usr");
    assert_int_equal(shell->init(empty_conf, &host, err, sizeof(err)), 0);
    assert_int_equal(run(&exec, json_pack("{s:s, s:s}", "command", "pwd",
                                          "cwd", "bin")), HG_OK);
    assert_output(&exec, "/usr/bin\n");
    exec_finish(&exec);
    host_fill(&host, NULL);
    assert_int_equal(shell->init(empty_conf, &host, err, sizeof(err)), 0);
}

static void
test_umask(void **state)
{
    hg_exec_t exec;

    (void) state;
    assert_int_equal(run(&exec, json_pack("{s:s, s:s}", "command", "umask",
                                          "umask", "027")), HG_OK);
    assert_output(&exec, "0027\n");
    exec_finish(&exec);

    /* libconfig reads `umask = 077;` as 77: the digits are octal */
    assert_int_equal(run(&exec, json_pack("{s:s, s:i}", "command", "umask",
                                          "umask", 77)), HG_OK);
    assert_output(&exec, "0077\n");
    exec_finish(&exec);
}

static void
test_child_setup(void **state)
{
    struct sigaction ign, old_int;
    sigset_t usr1, old_mask;
    hg_exec_t exec;
    /* a kernel struct sigaction: handler first on x86-64 and arm64 */
    unsigned long ign_raw[32] = { (unsigned long) SIG_IGN };
    char cmd[512];
    int leak, len, i;

    (void) state;
    /* The worker ignores SIGINT and may block signals, and has fds of its
     * own: none of that may reach the job. */
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    assert_int_equal(sigaction(SIGINT, &ign, &old_int), 0);
    /* glibc's own signal 32 cannot be set through sigaction(3), but an
     * ignored one is inherited all the same: the module must reset it */
    assert_int_equal(syscall(SYS_rt_sigaction, 32, &ign_raw, NULL,
                             (size_t) (NSIG - 1) / 8), 0);
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    assert_int_equal(sigprocmask(SIG_BLOCK, &usr1, &old_mask), 0);
    leak = open("/dev/null", O_RDONLY);     /* not close-on-exec */
    assert_true(leak >= 0);

    /* grep run directly reads its own status: through a shell it would
     * race with the shell, which blocks every signal for an instant while
     * it waits for a child */
    assert_int_equal(run(&exec, json_pack("{s:[s,s,s,s]}", "argv", "grep",
                                          "-E", "^Sig(Ign|Blk)",
                                          "/proc/self/status")), HG_OK);
    assert_output(&exec, "SigBlk:\t0000000000000000\n"
                         "SigIgn:\t0000000000000000\n");
    exec_finish(&exec);

    /* [ -e ] rather than a glob or ls, which would open fds of their own
     * while looking */
    len = snprintf(cmd, sizeof(cmd), "for i in 0 1 2 %d", leak);
    for (i = 3; i < 64; i++) {
        len += snprintf(cmd + len, sizeof(cmd) - (size_t) len, " %d", i);
    }
    snprintf(cmd + len, sizeof(cmd) - (size_t) len,
             "; do [ -e /proc/$$/fd/$i ] && echo $i; done; true");
    assert_int_equal(run(&exec, json_pack("{s:s}", "command", cmd)), HG_OK);
    assert_output(&exec, "0\n1\n2\n");
    exec_finish(&exec);

    /* and the job stays in the worker's process group (field 5 of stat) */
    {
        char want[32];

        snprintf(want, sizeof(want), "%ld\n", (long) getpgrp());
        assert_int_equal(run(&exec, json_pack("{s:s}", "command",
                         "cut -d' ' -f5 /proc/$$/stat")), HG_OK);
        assert_output(&exec, want);
        exec_finish(&exec);
    }

    close(leak);
    ign_raw[0] = (unsigned long) SIG_DFL;
    assert_int_equal(syscall(SYS_rt_sigaction, 32, &ign_raw, NULL,
                             (size_t) (NSIG - 1) / 8), 0);
    assert_int_equal(sigprocmask(SIG_SETMASK, &old_mask, NULL), 0);
    assert_int_equal(sigaction(SIGINT, &old_int, NULL), 0);
}

static void
test_payload_stdin(void **state)
{
    static const char text[] = "line one\nline two\n";
    hg_exec_t exec;

    (void) state;
    exec_prepare(&exec, json_pack("{s:s}", "command", "cat"));
    exec.payload = text;
    exec.payload_len = sizeof(text) - 1;
    assert_int_equal(shell->execute(&exec), HG_OK);
    assert_output(&exec, text);
    exec_finish(&exec);

    /* no payload: stdin is empty, cat returns at once */
    assert_int_equal(run(&exec, json_pack("{s:s}", "command", "cat")),
                     HG_OK);
    assert_output(&exec, "");
    exec_finish(&exec);
}

static void
test_payload_larger_than_pipe(void **state)
{
    hg_exec_t exec;
    char *payload;
    size_t i;

    (void) state;
    payload = malloc(MIB);
    assert_non_null(payload);
    for (i = 0; i < MIB; i++) {
        payload[i] = (char) ('a' + (i * 7 + i / 4096) % 26);
    }

    /* cat writes back while it reads: both directions must flow */
    exec_prepare(&exec, json_pack("{s:s, s:s}", "command", "cat",
                                  "output_limit", "2MiB"));
    assert_int_equal(exec.output_limit, 2 * MIB);
    exec.payload = payload;
    exec.payload_len = MIB;
    assert_int_equal(shell->execute(&exec), HG_OK);
    assert_int_equal(exec.output_len, MIB);
    assert_memory_equal(exec.output, payload, MIB);
    assert_false(exec.truncated);
    exec_finish(&exec);

    /* a child that never reads its stdin: EPIPE, not a dead worker */
    exec_prepare(&exec, json_pack("{s:s}", "command", "exit 0"));
    exec.payload = payload;
    exec.payload_len = MIB;
    assert_int_equal(shell->execute(&exec), HG_OK);
    exec_finish(&exec);

    free(payload);
}

static void
test_output_limit_truncates(void **state)
{
    hg_exec_t exec;
    int64_t start;
    size_t i;

    (void) state;
    start = mono_ms();
    exec_prepare(&exec, json_pack("{s:s, s:i}", "command",
                                  "yes | head -c 200000; echo done >&2",
                                  "output_limit", 1000));
    assert_int_equal(exec.output_limit, 1000);
    /* the child still runs to completion: output is drained past the
     * limit, so it never blocks on a full pipe */
    assert_int_equal(shell->execute(&exec), HG_OK);
    assert_int_equal(exec.output_len, 1000);
    assert_true(exec.truncated);
    for (i = 0; i < 1000; i += 2) {
        assert_int_equal(exec.output[i], 'y');
        assert_int_equal(exec.output[i + 1], '\n');
    }
    assert_true(mono_ms() - start < 10000);
    exec_finish(&exec);
}

static void
test_cancel_by_deadline(void **state)
{
    /* durations unique to this test process, so that the /proc scan
     * finds ours and not those of a test run beside us */
    char fg_time[32], bg_time[32], cmd[128];
    const char *sleeper[] = { "sleep", fg_time, NULL };
    const char *bg[] = { "sleep", bg_time, NULL };
    hg_exec_t exec;
    int64_t start, took;

    (void) state;
    snprintf(fg_time, sizeof(fg_time), "30.%ld", (long) getpid());
    snprintf(bg_time, sizeof(bg_time), "31.%ld", (long) getpid());
    snprintf(cmd, sizeof(cmd), "sleep %s & echo started; sleep %s", bg_time,
             fg_time);
    assert_false(process_alive(sleeper));
    start = mono_ms();
    exec_prepare(&exec, json_pack("{s:s}", "command", cmd));
    exec.deadline = hg_exec_now_ms() + 300;
    assert_int_equal(shell->execute(&exec), HG_FAIL);
    took = mono_ms() - start;
    assert_error(&exec, "cancelled");
    assert_output(&exec, "started\n");
    print_message("cancelled after %" PRId64 " ms\n", took);
    assert_true(took >= 250);
    assert_true(took < 5000);
    /* the shell's children (foreground and background) went with it */
    assert_true(process_gone(sleeper));
    assert_true(process_gone(bg));
    exec_finish(&exec);
}

static void
test_background_process_does_not_hold_execution(void **state)
{
    hg_exec_t exec;
    int64_t start;
    long bg;

    (void) state;
    /* The job exits but leaves a process holding the output pipe: the
     * execution ends shortly after the job's own exit (what the left-over
     * process does is its business; the master's process-group kill on a
     * timeout is what reaches it otherwise). */
    start = mono_ms();
    assert_int_equal(run(&exec, json_pack("{s:s}", "command",
                                          "sleep 5.125 & echo $!")), HG_OK);
    assert_true(mono_ms() - start < 3000);
    assert_non_null(exec.output);
    bg = strtol(exec.output, NULL, 10);
    assert_true(bg > 0);
    assert_int_equal(kill((pid_t) bg, SIGKILL), 0);
    exec_finish(&exec);
}

static volatile sig_atomic_t cancel_flag;

static void
on_alarm(int signo)
{
    (void) signo;
    cancel_flag = 1;
}

static void
test_cancel_by_stop_request(void **state)
{
    char fg_time[32];
    const char *sleeper[] = { "sleep", fg_time, NULL };
    struct sigaction sa, old;
    struct itimerval timer;
    hg_exec_t exec;
    int64_t start;

    (void) state;
    /* as the worker does on SIGTERM: a flag set from a signal handler */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
    cancel_flag = 0;
    memset(&timer, 0, sizeof(timer));
    timer.it_value.tv_usec = 200000;

    snprintf(fg_time, sizeof(fg_time), "32.%ld", (long) getpid());
    exec_prepare(&exec, json_pack("{s:[s,s]}", "argv", "sleep", fg_time));
    exec.cancel = &cancel_flag;
    start = mono_ms();
    assert_int_equal(setitimer(ITIMER_REAL, &timer, NULL), 0);
    assert_int_equal(shell->execute(&exec), HG_FAIL);
    assert_true(mono_ms() - start < 5000);
    assert_error(&exec, "cancelled");
    assert_true(process_gone(sleeper));
    exec_finish(&exec);
    assert_int_equal(sigaction(SIGALRM, &old, NULL), 0);
}

static void
test_exec_failure_reported(void **state)
{
    hg_exec_t exec;

    (void) state;
    assert_int_equal(run(&exec, json_pack("{s:[s,s]}", "argv",
                                          "/nonexistent", "x")), HG_FAIL);
    assert_error(&exec, "exec \"/nonexistent\": No such file or directory");
    assert_false(exec.has_exit_code);
    assert_int_equal(exec.signo, 0);
    exec_finish(&exec);

    assert_int_equal(run(&exec, json_pack("{s:[s]}", "argv",
                                          "hg-no-such-program-xyz")),
                     HG_FAIL);
    assert_error(&exec,
                 "exec \"hg-no-such-program-xyz\": No such file or directory");
    exec_finish(&exec);

    assert_int_equal(run(&exec, json_pack("{s:[s]}", "argv", "/etc/passwd")),
                     HG_FAIL);
    assert_error(&exec, "exec \"/etc/passwd\": Permission denied");
    exec_finish(&exec);
}

static void
test_user_and_group(void **state)
{
    struct passwd *pw;
    hg_exec_t exec;
    char want[128];
    pid_t pid;
    int status;

    (void) state;
    pw = getpwnam("nobody");
    if (pw == NULL) {
        skip();
    }
    if (geteuid() == 0) {
        snprintf(want, sizeof(want), "%lu\n%lu\n%lu\n",
                 (unsigned long) pw->pw_uid, (unsigned long) pw->pw_gid,
                 (unsigned long) pw->pw_gid);
        assert_int_equal(run(&exec, json_pack("{s:s, s:s, s:s}", "command",
                         "id -u; id -g; id -G", "user", "nobody", "cwd",
                         "/")), HG_OK);
        assert_output(&exec, want);
        exec_finish(&exec);

        /* numeric ids, and a group alone for the group */
        snprintf(want, sizeof(want), "%lu\n%lu\n",
                 (unsigned long) pw->pw_uid, 4242UL);
        assert_int_equal(run(&exec, json_pack("{s:s, s:i, s:s, s:s}",
                         "command", "id -u; id -G", "user",
                         (int) pw->pw_uid, "group", "4242", "cwd", "/")),
                         HG_OK);
        assert_output(&exec, want);
        exec_finish(&exec);
    }

    /* Not root: asking for another user fails clearly; asking for the
     * current one is fine. Checked in a child that drops root first. */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int bad = 0;

        if (geteuid() == 0
            && (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0
                || setuid(pw->pw_uid) != 0))
        {
            _exit(90);
        }
        exec_prepare(&exec, json_pack("{s:s, s:s}", "command", "true",
                                      "user", "root"));
        if (shell->execute(&exec) != HG_FAIL || exec.error == NULL
            || strcmp(exec.error, "user: cannot run as \"root\" (uid 0): "
                      "hourglass is not running as root") != 0)
        {
            fprintf(stderr, "not root, user root: %s\n",
                    exec.error ? exec.error : "(no error)");
            bad |= 1;
        }
        exec_finish(&exec);
        exec_prepare(&exec, json_pack("{s:s, s:s, s:s}", "command", "id -u",
                                      "user", pw->pw_name, "cwd", "/"));
        if (shell->execute(&exec) != HG_OK) {
            fprintf(stderr, "not root, own user: %s\n",
                    exec.error ? exec.error : "(no error)");
            bad |= 2;
        }
        exec_finish(&exec);
        _exit(bad);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* --- validate ------------------------------------------------------------ */

static void
expect_invalid(const char *text, const char *message)
{
    json_error_t jerr;
    char err[256];
    json_t *job;

    job = json_loads(text, JSON_ALLOW_NUL, &jerr);
    if (job == NULL) {
        print_error("bad test JSON %s: %s\n", text, jerr.text);
        fail();
    }
    err[0] = '\0';
    if (shell->validate(job, err, sizeof(err)) != -1
        || strcmp(err, message) != 0)
    {
        print_error("validate %s: got \"%s\", want \"%s\"\n", text, err,
                    message);
        json_decref(job);
        fail();
    }
    json_decref(job);
}

static void
test_validate_errors(void **state)
{
    (void) state;
    expect_invalid("{\"command\": 5}", "command: must be a string");
    expect_invalid("{\"command\": \"\"}", "command: must not be empty");
    expect_invalid("{\"argv\": []}",
                   "argv: must be a non-empty array of strings");
    expect_invalid("{\"argv\": \"ls -l\"}",
                   "argv: must be a non-empty array of strings");
    expect_invalid("{\"argv\": [\"ls\", 1]}",
                   "argv: must be a non-empty array of strings");
    expect_invalid("{\"command\": \"x\", \"argv\": [\"x\"]}",
                   "command and argv are exclusive");
    expect_invalid("{\"id\": \"a\", \"type\": \"shell\"}",
                   "one of command or argv is required");
    expect_invalid("{\"command\": \"x\", \"user\": \"nobdy\"}",
                   "user: no such user \"nobdy\"");
    expect_invalid("{\"command\": \"x\", \"user\": 4242424}",
                   "user: uid 4242424 has no passwd entry: set group as "
                   "well");
    expect_invalid("{\"command\": \"x\", \"user\": -1}",
                   "user: -1 is not a valid id");
    expect_invalid("{\"command\": \"x\", \"group\": \"nogrp-xyz\"}",
                   "group: no such group \"nogrp-xyz\"");
    expect_invalid("{\"command\": \"x\", \"group\": true}",
                   "group: must be a name or a numeric id");
    expect_invalid("{\"command\": \"x\", \"umask\": \"999\"}",
                   "umask: \"999\" is not an octal mode");
    expect_invalid("{\"command\": \"x\", \"umask\": \"01777\"}",
                   "umask: \"01777\" is not an octal mode");
    expect_invalid("{\"command\": \"x\", \"umask\": 18}",
                   "umask: 18 is not an octal mode");
    expect_invalid("{\"command\": \"x\", \"umask\": 0.5}",
                   "umask: must be an octal mode such as \"027\"");
    expect_invalid("{\"command\": \"x\", \"env\": {\"FOO\": 1}}",
                   "env: FOO: must be a string");
    expect_invalid("{\"command\": \"x\", \"env\": [\"FOO=1\"]}",
                   "env: must be a group of strings");
    expect_invalid("{\"command\": \"x\", \"env\": {\"A=B\": \"1\"}}",
                   "env: \"A=B\" is not a variable name");
    expect_invalid("{\"command\": \"x\", \"env\": "
                   "{\"HOURGLASS_JOB_ID\": \"1\"}}",
                   "env: HOURGLASS_JOB_ID: is set by hourglass");
    expect_invalid("{\"command\": \"x\", \"cwd\": 5}",
                   "cwd: must be a non-empty string");
    expect_invalid("{\"command\": \"x\", \"output_limit\": \"5XB\"}",
                   "output_limit: \"5XB\" is not a size");
    expect_invalid("{\"command\": \"x\", \"output_limit\": -1}",
                   "output_limit: must not be negative");
    expect_invalid("{\"command\": \"a\\u0000b\"}",
                   "command: must not contain a NUL byte");
}

static void
test_validate_accepts(void **state)
{
    static const char *const good[] = {
        /* the common job keys are the core's: validate lets them be */
        ("{\"id\": \"backup\", \"type\": \"shell\", \"name\": \"Backup\","
         " \"schedule\": \"0 2 * * *\", \"timeout\": \"30m\","
         " \"max_retries\": 3, \"overlap\": \"skip\", \"tags\": [\"a\"],"
         " \"command\": \"/usr/local/bin/backup.sh\"}"),
        ("{\"argv\": [\"tar\", \"-czf\", \"/tmp/x.tgz\", \"/etc\"],"
         " \"env\": {\"LANG\": \"C\"}, \"cwd\": \"/tmp\", \"umask\": \"022\","
         " \"output_limit\": \"1MiB\"}"),
        "{\"command\": \"true\", \"user\": \"root\", \"group\": \"root\"}",
        ("{\"command\": \"true\", \"user\": 0, \"group\": 0, \"umask\": 0,"
         " \"output_limit\": 0}"),
        "{\"command\": \"true\", \"user\": \"4242424\", \"group\": 4242}",
        "{\"command\": \"true\", \"umask\": 777}",
    };
    json_error_t jerr;
    char err[256];
    json_t *job;
    size_t i;

    (void) state;
    for (i = 0; i < HG_NELEMS(good); i++) {
        job = json_loads(good[i], 0, &jerr);
        assert_non_null(job);
        err[0] = '\0';
        if (shell->validate(job, err, sizeof(err)) != 0) {
            print_error("validate %s: %s\n", good[i], err);
            json_decref(job);
            fail();
        }
        json_decref(job);
    }
}

static void
test_module_object(void **state)
{
    const char *const *k;
    int seen;

    (void) state;
    assert_int_equal(shell->abi_version, HG_MODULE_ABI_VERSION);
    assert_int_equal(shell->size, sizeof(hg_module_t));
    assert_string_equal(shell->name, "shell");
    assert_non_null(shell->validate);
    assert_non_null(shell->execute);
    assert_non_null(shell->keys);
    seen = 0;
    for (k = shell->keys; *k != NULL; k++) {
        seen += strcmp(*k, "command") == 0 || strcmp(*k, "argv") == 0
                || strcmp(*k, "output_limit") == 0;
    }
    assert_int_equal(seen, 3);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

static void
test_env_keys_are_checked(void **state)
{
    (void) state;
    expect_invalid("{\"command\": \"x\", \"inherit_env\": 1}",
                   "inherit_env: must be true or false");
    expect_invalid("{\"command\": \"x\", \"pass_env\": \"A\"}",
                   "pass_env: must be a list of variable names");
    expect_invalid("{\"command\": \"x\", \"pass_env\": [\"A\", \"B=C\"]}",
                   "pass_env: element 1 is not a variable name (letters, "
                   "digits and _)");
    expect_invalid("{\"command\": \"x\", \"pass_env\": [\"1A\"]}",
                   "pass_env: element 0 is not a variable name (letters, "
                   "digits and _)");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_module_object),
        T(test_command_output),
        T(test_stderr_interleaved),
        T(test_argv_no_shell),
        T(test_exit_code_fails),
        T(test_exit_tempfail_retries),
        T(test_missing_command_is_exit_127),
        T(test_killed_by_signal),
        T(test_env_and_hourglass_vars),
        T(test_env_path_used_for_argv),
        T(test_env_is_clean_by_default),
        T(test_env_keys_are_checked),
        T(test_cwd),
        T(test_umask),
        T(test_child_setup),
        T(test_payload_stdin),
        T(test_payload_larger_than_pipe),
        T(test_output_limit_truncates),
        T(test_background_process_does_not_hold_execution),
        T(test_cancel_by_deadline),
        T(test_cancel_by_stop_request),
        T(test_exec_failure_reported),
        T(test_user_and_group),
        T(test_validate_errors),
        T(test_validate_accepts),
    };

    return cmocka_run_group_tests_name("shell module", tests, group_setup,
                                       group_teardown);
}
