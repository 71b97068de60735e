/*
 * hg_shell_spawn.c starts a job's process: it builds the environment, makes
 * the pipes and starts the child, and owns everything the child does
 * between its start and exec.
 *
 * The child is started as vfork starts one (clone with CLONE_VM and
 * CLONE_VFORK: no copy of the worker's page tables, the worker waits until
 * exec), straight into the execution's cgroup (clone3 with
 * CLONE_INTO_CGROUP) where the host has one, so that the worker can kill
 * whatever the job leaves. It shares the worker's memory until exec: it
 * may only make async-signal-safe calls (no malloc, no stdio, no NSS) and
 * must write no memory of the worker's (environ is the one exception, put
 * back by the parent). Everything it needs is prepared by the parent first,
 * in hg_shell_launch_t. A failure in the child is reported to the parent
 * over a close-on-exec pipe ({stage, errno}), so that "the program could not
 * be started" is never confused with "the program exited 127".
 *
 * The child stays in the worker's process group (no setsid, no setpgid):
 * on a timeout the master kills the worker's whole group as well as the
 * cgroup.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <hourglass/module.h>

#include "hg_shell.h"

extern char **environ;

/* The close-loop fallback (kernels without close_range) stops here even
 * when RLIMIT_NOFILE is unlimited. */
#define HG_SHELL_MAX_FD_LOOP  (1 << 20)

/* The child's fd 3 while it sets up: the report pipe, close-on-exec. */
#define HG_SHELL_REPORT_FD    3

/* The child's stack until exec (it shares the worker's memory). Room for
 * execvp's PATH walk and its script fallback's argument copy. */
#define HG_SHELL_STACK_SIZE   (256 * 1024)

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP     0x200000000ULL
#endif

/* --- environment ------------------------------------------------------- */

/* Due time as RFC 3339 in UTC with a numeric offset:
 * 2026-11-23T19:00:00+00:00, with milliseconds only when there are some. */
static int
shell_rfc3339(int64_t ms, char *buf, size_t len)
{
    struct tm tm;
    time_t sec;
    int64_t frac;
    size_t n;
    int m;

    /* floor division, so that times before 1970 stay correct */
    sec = (time_t) (ms / 1000);
    frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        sec -= 1;
    }
    if (gmtime_r(&sec, &tm) == NULL) {
        return -1;
    }
    n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n == 0) {
        return -1;
    }
    if (frac != 0) {
        m = snprintf(buf + n, len - n, ".%03d+00:00", (int) frac);
    } else {
        m = snprintf(buf + n, len - n, "+00:00");
    }
    if (m < 0 || (size_t) m >= len - n) {
        return -1;
    }
    return 0;
}

/* Whether one of envp[0..n) sets the variable that `entry` ("NAME=...")
 * sets. */
static int
shell_env_has(char **envp, size_t n, const char *entry)
{
    const char *eq;
    size_t i, len;

    eq = strchr(entry, '=');
    len = eq != NULL ? (size_t) (eq - entry) : strlen(entry);
    for (i = 0; i < n; i++) {
        if (strncmp(envp[i], entry, len) == 0 && envp[i][len] == '=') {
            return 1;
        }
    }
    return 0;
}

static int
shell_env_add(char **envp, size_t *n, const char *name, const char *value)
{
    char *entry;

    if (asprintf(&entry, "%s=%s", name, value) < 0) {
        return -1;
    }
    envp[(*n)++] = entry;
    return 0;
}

/* PATH as cron gives it: the sbin directories only for root. */
#define HG_SHELL_PATH_USER  "/usr/local/bin:/usr/bin:/bin"
#define HG_SHELL_PATH_ROOT  "/usr/local/sbin:/usr/local/bin:/usr/sbin:" \
                            "/usr/bin:/sbin:/bin"

/*
 * The passwd entry of the user a command runs as, kept for a second in
 * this worker: short jobs run back to back would otherwise each read
 * /etc/passwd (or ask a directory service) for the same HOME and name. An
 * edit shows within the second, as with nscd's cache, only sooner.
 */
#define HG_SHELL_PW_TTL_NS  1000000000LL

typedef struct shell_pw_cache_s {
    int found;                      /* 1 found, 0 no entry, -1 empty */
    uid_t uid;
    long long at_ns;                /* CLOCK_MONOTONIC */
    char *home;
    char *name;
} shell_pw_cache_t;

static shell_pw_cache_t shell_pw = { -1, 0, 0, NULL, NULL };

static long long
shell_monotonic_ns(void)
{
    struct timespec ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* HOME and name of UID, from the cache or NSS: 1, 0 for no entry, -1 for
 * a lookup error (errno set). */
static int
shell_pw_lookup(uid_t uid, const char **home, const char **name)
{
    struct passwd pw;
    char *buf = NULL, *h = NULL, *nm = NULL;
    long long now = shell_monotonic_ns();
    int rc;

    if (shell_pw.found >= 0 && shell_pw.uid == uid
        && now - shell_pw.at_ns < HG_SHELL_PW_TTL_NS)
    {
        *home = shell_pw.home;
        *name = shell_pw.name;
        return shell_pw.found;
    }
    rc = hg_shell_getpwuid(uid, &pw, &buf);
    if (rc == 1 && ((h = strdup(pw.pw_dir)) == NULL
                    || (nm = strdup(pw.pw_name)) == NULL))
    {
        errno = ENOMEM;
        rc = -1;
    }
    free(buf);
    if (rc < 0) {
        free(h);
        free(nm);
        return -1;
    }
    free(shell_pw.home);
    free(shell_pw.name);
    shell_pw.found = rc;
    shell_pw.uid = uid;
    shell_pw.at_ns = now;
    shell_pw.home = h;
    shell_pw.name = nm;
    *home = h;
    *name = nm;
    return rc;
}

void
hg_shell_spawn_forget(void)
{
    free(shell_pw.home);
    free(shell_pw.name);
    shell_pw.home = shell_pw.name = NULL;
    shell_pw.found = -1;
}

/* The clean base, as cron gives a job: HOME, LOGNAME, USER of the user the
 * command runs as (the job's `user`, else the worker's), SHELL=/bin/sh
 * (what runs a command, whatever the login shell), and PATH. A uid without
 * a passwd entry gets HOME=/ and its number as its name. */
static int
shell_env_base(char **envp, size_t *n, const hg_shell_identity_t *id,
    char *err, size_t errlen)
{
    const char *base[5][2], *home = NULL, *name = NULL;
    char number[16];
    uid_t uid;
    size_t i;
    int rc;

    uid = id->set_uid ? id->uid : geteuid();
    rc = shell_pw_lookup(uid, &home, &name);
    if (rc < 0) {
        hg_shell_err(err, errlen, "environment: cannot look up uid %lu: %s",
                     (unsigned long) uid, strerror(errno));
        return -1;
    }
    (void) snprintf(number, sizeof(number), "%lu", (unsigned long) uid);
    base[0][0] = "HOME";    base[0][1] = rc == 1 ? home : "/";
    base[1][0] = "LOGNAME"; base[1][1] = rc == 1 ? name : number;
    base[2][0] = "USER";    base[2][1] = base[1][1];
    base[3][0] = "SHELL";   base[3][1] = "/bin/sh";
    base[4][0] = "PATH";
    base[4][1] = uid == 0 ? HG_SHELL_PATH_ROOT : HG_SHELL_PATH_USER;
    for (i = 0; i < 5; i++) {
        if (shell_env_has(envp, *n, base[i][0])) {
            continue;
        }
        if (shell_env_add(envp, n, base[i][0], base[i][1]) != 0) {
            hg_shell_err(err, errlen, "environment: out of memory");
            return -1;
        }
    }
    return 0;
}

/* pass_env: the named variables of the worker's environment (which is
 * hourglass's, unchanged since it started), when the job does not set
 * them itself. */
static int
shell_env_pass(char **envp, size_t *n, const json_t *names)
{
    const json_t *item;
    const char *name, *value;
    size_t i;

    json_array_foreach(names, i, item) {
        name = json_string_value(item);
        value = name != NULL ? getenv(name) : NULL;
        if (value == NULL || shell_env_has(envp, *n, name)) {
            continue;
        }
        if (shell_env_add(envp, n, name, value) != 0) {
            return -1;
        }
    }
    return 0;
}

/* The child's environment, first setter wins: hourglass's variables, the
 * job's `env`, the variables named by `pass_env`, then the clean base
 * (shell_env_base), or with `inherit_env` whatever the worker inherited
 * instead. The first *nowned entries are allocated; the rest point into
 * environ. */
char **
hg_shell_env_build(hg_exec_t *exec, const hg_shell_spec_t *spec,
    const hg_shell_identity_t *id, size_t *nowned, char *err, size_t errlen)
{
    const json_t *env = spec->env;
    const char *name, *text;
    char attempt[16], when[64];
    json_t *value;
    char **envp;
    size_t ninherit, cap, n, owned, i;

    *nowned = 0;
    ninherit = 0;
    while (spec->inherit_env && environ != NULL && environ[ninherit] != NULL) {
        ninherit++;
    }
    cap = 5 + (env != NULL ? json_object_size(env) : 0)
          + (spec->pass_env != NULL ? json_array_size(spec->pass_env) : 0)
          + 6 + ninherit + 1;
    envp = calloc(cap, sizeof(*envp));
    if (envp == NULL) {
        hg_shell_err(err, errlen, "environment: out of memory");
        return NULL;
    }
    n = 0;

    (void) snprintf(attempt, sizeof(attempt), "%u", hg_exec_attempt(exec));
    if (shell_rfc3339(hg_exec_scheduled_for(exec), when, sizeof(when)) != 0) {
        hg_shell_err(err, errlen, "environment: cannot format the due time");
        goto failed;
    }
    text = hg_exec_job_id(exec);
    if (shell_env_add(envp, &n, "HOURGLASS_JOB_ID", text ? text : "") != 0) {
        goto nomem;
    }
    text = hg_exec_id(exec);
    if (shell_env_add(envp, &n, "HOURGLASS_EXECUTION_ID", text ? text : "")
            != 0
        || shell_env_add(envp, &n, "HOURGLASS_ATTEMPT", attempt) != 0
        || shell_env_add(envp, &n, "HOURGLASS_SCHEDULED_FOR", when) != 0
        || shell_env_add(envp, &n, "HOURGLASS_TRIGGER",
                         hg_exec_trigger(exec)) != 0
        || (hg_exec_traceparent(exec) != NULL
            && shell_env_add(envp, &n, "TRACEPARENT",
                             hg_exec_traceparent(exec)) != 0))
    {
        goto nomem;
    }

    if (env != NULL) {
        json_object_foreach((json_t *) env, name, value) {
            /* validate refuses the HOURGLASS_ names; stay safe anyway */
            if (shell_env_has(envp, n, name)) {
                continue;
            }
            if (shell_env_add(envp, &n, name, json_string_value(value))
                != 0)
            {
                goto nomem;
            }
        }
    }
    if (spec->pass_env != NULL
        && shell_env_pass(envp, &n, spec->pass_env) != 0)
    {
        goto nomem;
    }
    if (!spec->inherit_env
        && shell_env_base(envp, &n, id, err, errlen) != 0)
    {
        goto failed;
    }

    owned = n;
    for (i = 0; i < ninherit; i++) {
        if (strchr(environ[i], '=') == NULL
            || shell_env_has(envp, owned, environ[i]))
        {
            continue;
        }
        envp[n++] = environ[i];
    }
    envp[n] = NULL;
    *nowned = owned;
    return envp;

nomem:
    hg_shell_err(err, errlen, "environment: out of memory");
failed:
    hg_shell_env_free(envp, n);
    return NULL;
}

void
hg_shell_env_free(char **envp, size_t nowned)
{
    size_t i;

    if (envp == NULL) {
        return;
    }
    for (i = 0; i < nowned; i++) {
        free(envp[i]);
    }
    free(envp);
}

/* --- the child ---------------------------------------------------------- */

static void shell_child_fail(int fd, hg_shell_stage_t stage, int error)
    __attribute__((noreturn));

/* Tell the parent which step failed, then exit. Only async-signal-safe
 * calls. The 127 is never reported as the job's exit code: the parent
 * sees the report first. */
static void
shell_child_fail(int fd, hg_shell_stage_t stage, int error)
{
    hg_shell_report_t report;
    const char *p;
    size_t left;
    ssize_t n;

    report.stage = (int32_t) stage;
    report.error = (int32_t) error;
    p = (const char *) &report;
    left = sizeof(report);
    while (left > 0) {
        n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        p += n;
        left -= (size_t) n;
    }
    _exit(127);
}

/* Move fd out of the way of 0..3 (the slots the child is about to fill):
 * in a worker whose 0/1/2 were closed, pipe2 may have returned them. */
static int
shell_child_move_high(int fd)
{
    if (fd > HG_SHELL_REPORT_FD) {
        return fd;
    }
    return fcntl(fd, F_DUPFD_CLOEXEC, HG_SHELL_REPORT_FD + 1);
}

static void
shell_child_close_from(int first, int max_fd)
{
    int fd;

#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned) first, ~0U, 0U) == 0) {
        return;
    }
#endif
    /* Older kernel (ENOSYS): close one by one up to the limit computed by
     * the parent. EBADF for the many fds that are not open is expected. */
    for (fd = first; fd < max_fd; fd++) {
        (void) close(fd);
    }
}

/*
 * The C library's sigaction refuses the signals it keeps for itself (glibc:
 * 32 and 33, for thread cancellation and setxid), yet an ignored
 * disposition of those is inherited from whoever started hourglass, and
 * through exec by the job. Reset them with the system call itself. An
 * all-zero struct sigaction is SIG_DFL, no flags, empty mask whatever the
 * architecture's field order, so one zeroed buffer (larger than any
 * layout) serves everywhere.
 */
static void
shell_child_default_raw(int sig)
{
#ifdef SYS_rt_sigaction
    static const unsigned long zero[32];

    (void) syscall(SYS_rt_sigaction, sig, zero, NULL, (size_t) (NSIG - 1) / 8);
#else
    (void) sig;
#endif
}

/* What the child starts from, on the parent's stack (shared memory). */
typedef struct shell_child_args_s {
    const hg_shell_launch_t *l;
    int in_fd;
    int out_fd;
    int report_fd;
    int max_fd;
    pid_t parent;
    int join_cgroup;        /* v2 cgroup fd to join by hand, or -1 */
    const int *procs;       /* v1 cgroup.procs fds to join */
    size_t nprocs;
} shell_child_args_t;

/* Join the execution's cgroups: the v2 one when clone3 could not start
 * the child in it, and the v1 ones that enforce limits on a hybrid host.
 * Before the identity change: cgroupfs belongs to root. */
static int
shell_child_join(const shell_child_args_t *a)
{
    size_t i;
    int fd;

    if (a->join_cgroup >= 0) {
        fd = openat(a->join_cgroup, "cgroup.procs", O_WRONLY | O_CLOEXEC);
        if (fd == -1 || write(fd, "0", 1) != 1) {
            return -1;
        }
        (void) close(fd);
    }
    for (i = 0; i < a->nprocs; i++) {
        if (write(a->procs[i], "0", 1) != 1) {
            return -1;
        }
    }
    return 0;
}

static int shell_child(void *arg) __attribute__((noreturn));

static int
shell_child(void *arg)
{
    const shell_child_args_t *a = arg;
    const hg_shell_launch_t *l = a->l;
    int in_fd = a->in_fd, out_fd = a->out_fd, report_fd = a->report_fd;
    const hg_shell_identity_t *id;
    struct sigaction sa;
    sigset_t none;
    int sig;

    /* The job dies with the worker, whatever kills the worker. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1) {
        shell_child_fail(report_fd, HG_SHELL_STAGE_SETUP, errno);
    }
    if (getppid() != a->parent) {
        /* the worker died between clone and prctl */
        _exit(127);
    }
    if (shell_child_join(a) != 0) {
        shell_child_fail(report_fd, HG_SHELL_STAGE_SETUP, errno);
    }

    /* Handlers and ignored signals of the worker mean nothing in the job
     * (and SIG_IGN would survive exec); the mask, all blocked since before
     * fork, is cleared just before exec. SIGKILL and SIGSTOP fail with
     * EINVAL both ways, as they should. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    if (sigemptyset(&sa.sa_mask) != 0) {
        shell_child_fail(report_fd, HG_SHELL_STAGE_SETUP, errno);
    }
    for (sig = 1; sig < NSIG; sig++) {
        if (sigaction(sig, &sa, NULL) == -1 && errno == EINVAL) {
            shell_child_default_raw(sig);
        }
    }

    report_fd = shell_child_move_high(report_fd);
    if (report_fd == -1) {
        _exit(127);
    }
    in_fd = shell_child_move_high(in_fd);
    out_fd = shell_child_move_high(out_fd);
    if (in_fd == -1 || out_fd == -1) {
        shell_child_fail(report_fd, HG_SHELL_STAGE_SETUP, errno);
    }
    /* stdout and stderr are one pipe so that their interleaving is kept */
    if (dup2(in_fd, STDIN_FILENO) == -1
        || dup2(out_fd, STDOUT_FILENO) == -1
        || dup2(out_fd, STDERR_FILENO) == -1)
    {
        shell_child_fail(report_fd, HG_SHELL_STAGE_SETUP, errno);
    }
    if (dup3(report_fd, HG_SHELL_REPORT_FD, O_CLOEXEC) == -1) {
        shell_child_fail(report_fd, HG_SHELL_STAGE_SETUP, errno);
    }
    report_fd = HG_SHELL_REPORT_FD;
    /* Nothing of the worker's (IPC pipes, log file, sockets) reaches the
     * job, close-on-exec or not. */
    shell_child_close_from(HG_SHELL_REPORT_FD + 1, a->max_fd);

    if (l->has_umask) {
        (void) umask(l->umask);     /* cannot fail */
    }

    /* Groups first, then gid, then uid: once the uid is dropped, the right
     * to change the others is gone. System calls, not the C library's
     * wrappers, which may coordinate with other threads through memory
     * this child shares with the worker. */
    id = l->identity;
    if (id != NULL && id->change) {
        if (syscall(SYS_setgroups, id->ngroups, id->groups) == -1) {
            shell_child_fail(report_fd, HG_SHELL_STAGE_SETGROUPS, errno);
        }
        if (syscall(SYS_setgid, id->gid) == -1) {
            shell_child_fail(report_fd, HG_SHELL_STAGE_SETGID, errno);
        }
        if (id->set_uid && syscall(SYS_setuid, id->uid) == -1) {
            shell_child_fail(report_fd, HG_SHELL_STAGE_SETUID, errno);
        }
    }

    /* After the identity change, so that the directory is entered with
     * the job's rights, not root's. */
    if (l->cwd != NULL && chdir(l->cwd) == -1) {
        shell_child_fail(report_fd, HG_SHELL_STAGE_CWD, errno);
    }

    if (sigemptyset(&none) != 0
        || sigprocmask(SIG_SETMASK, &none, NULL) != 0)
    {
        shell_child_fail(report_fd, HG_SHELL_STAGE_SETUP, errno);
    }

    if (l->search_path) {
        /* execvp searches the PATH of environ: make it the job's, so that
         * a PATH set in `env` is the one searched. The worker's own is put
         * back by the parent when this child has exec'd or exited. */
        environ = l->envp;
        (void) execvp(l->file, (char *const *) l->argv);
    } else {
        (void) execve(l->file, (char *const *) l->argv, l->envp);
    }
    shell_child_fail(report_fd, HG_SHELL_STAGE_EXEC, errno);
}

/* --- starting the child ------------------------------------------------ */

/* struct clone_args of <linux/sched.h> (v2, with `cgroup`), spelled out
 * so as not to mix that header with the C library's. */
typedef struct shell_clone_args_s {
    uint64_t flags;
    uint64_t pidfd;
    uint64_t child_tid;
    uint64_t parent_tid;
    uint64_t exit_signal;
    uint64_t stack;
    uint64_t stack_size;
    uint64_t tls;
    uint64_t set_tid;
    uint64_t set_tid_size;
    uint64_t cgroup;
} shell_clone_args_t;

static unsigned char shell_stack[HG_SHELL_STACK_SIZE]
    __attribute__((aligned(64)));

#if defined(__x86_64__) && defined(SYS_clone3)
/*
 * clone3 with CLONE_VM: the child runs on its own stack from the system
 * call's return, where no C function can be, so it is entered here: the
 * child calls fn(arg) (which never returns; exit otherwise). The parent
 * gets the pid or -errno.
 */
static long
shell_clone3(shell_clone_args_t *ca, int (*fn)(void *), void *arg)
{
    register long rax __asm__("rax") = SYS_clone3;
    register void *r12 __asm__("r12") = (void *) fn;
    register void *r13 __asm__("r13") = arg;

    __asm__ __volatile__(
        "syscall\n\t"
        "testq %%rax, %%rax\n\t"
        "jnz 1f\n\t"
        "xorl %%ebp, %%ebp\n\t"
        "movq %%r13, %%rdi\n\t"
        "callq *%%r12\n\t"
        "movl %%eax, %%edi\n\t"
        "movl %[nr_exit], %%eax\n\t"
        "syscall\n\t"
        "hlt\n"
        "1:\n\t"
        : "+r" (rax)
        : "D" (ca), "S" (sizeof(*ca)), "r" (r12), "r" (r13),
          [nr_exit] "i" (SYS_exit)
        : "rcx", "r11", "memory");
    return rax;
}
#endif

/* Start the child as vfork would, in CGROUP_FD (-1: the worker's own
 * cgroup). The pid, with *pidfd set when the kernel gave one; -1 and
 * errno on failure. */
static pid_t
shell_start(shell_child_args_t *a, int cgroup_fd, int *pidfd)
{
    pid_t pid;

    *pidfd = -1;
    a->join_cgroup = cgroup_fd;
#if defined(__x86_64__) && defined(SYS_clone3)
    {
        shell_clone_args_t ca;
        long r;

        memset(&ca, 0, sizeof(ca));
        ca.flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD;
        ca.pidfd = (uint64_t) (uintptr_t) pidfd;
        ca.exit_signal = SIGCHLD;
        ca.stack = (uint64_t) (uintptr_t) shell_stack;
        ca.stack_size = sizeof(shell_stack);
        if (cgroup_fd >= 0) {
            ca.flags |= CLONE_INTO_CGROUP;
            ca.cgroup = (uint64_t) cgroup_fd;
            a->join_cgroup = -1;
        }
        r = shell_clone3(&ca, shell_child, a);
        if (r > 0) {
            return (pid_t) r;
        }
        *pidfd = -1;
        if (r != -ENOSYS && r != -E2BIG && r != -EINVAL) {
            errno = (int) -r;
            return -1;
        }
        /* an older kernel: clone below, joining the cgroup by hand */
        a->join_cgroup = cgroup_fd;
    }
#endif
    pid = clone(shell_child, shell_stack + sizeof(shell_stack),
                CLONE_VM | CLONE_VFORK | SIGCHLD, a);
    return pid;
}

/* --- the parent's side of the start ------------------------------------- */

/* A pipe end just made has no status flag that F_SETFL changes set: no
 * need to read them first. */
static int
shell_set_nonblock(int fd)
{
    return fcntl(fd, F_SETFL, O_NONBLOCK);
}

static void
shell_close(int *fd)
{
    if (*fd >= 0) {
        /* Linux closes the fd even when close reports EINTR: never retry,
         * the number may already belong to someone else. */
        (void) close(*fd);
        *fd = -1;
    }
}

static int
shell_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
    /* a pidfd is always close-on-exec */
    return (int) syscall(SYS_pidfd_open, pid, 0);
#else
    (void) pid;
    return -1;
#endif
}

int
hg_shell_spawn(const hg_shell_launch_t *l, hg_shell_proc_t *proc, char *err,
    size_t errlen)
{
    int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 };
    int report_pipe[2] = { -1, -1 };
    int child_in, max_fd, rc, saved_errno, pidfd;
    shell_child_args_t args;
    char **saved_environ;
    sigset_t all, saved;
    struct rlimit rl;
    pid_t pid;

    proc->pid = -1;
    proc->pidfd = -1;
    proc->in_fd = -1;
    proc->out_fd = -1;
    proc->report_fd = -1;
    child_in = -1;

    if (l->payload != NULL) {
        if (pipe2(in_pipe, O_CLOEXEC) == -1) {
            hg_shell_err(err, errlen, "stdin pipe: %s", strerror(errno));
            goto failed;
        }
        child_in = in_pipe[0];
        in_pipe[0] = -1;
        proc->in_fd = in_pipe[1];
        in_pipe[1] = -1;
        if (shell_set_nonblock(proc->in_fd) == -1) {
            hg_shell_err(err, errlen, "stdin pipe: %s", strerror(errno));
            goto failed;
        }
    } else {
        child_in = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (child_in == -1) {
            hg_shell_err(err, errlen, "/dev/null: %s", strerror(errno));
            goto failed;
        }
    }
    if (pipe2(out_pipe, O_CLOEXEC) == -1
        || pipe2(report_pipe, O_CLOEXEC) == -1)
    {
        hg_shell_err(err, errlen, "pipe: %s", strerror(errno));
        goto failed;
    }
    /* Only the parent's ends are nonblocking: each end of a pipe is its
     * own open file description, so the child's stay blocking. */
    if (shell_set_nonblock(out_pipe[0]) == -1
        || shell_set_nonblock(report_pipe[0]) == -1)
    {
        hg_shell_err(err, errlen, "pipe: %s", strerror(errno));
        goto failed;
    }

    max_fd = HG_SHELL_MAX_FD_LOOP;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
        && rl.rlim_cur < (rlim_t) HG_SHELL_MAX_FD_LOOP)
    {
        max_fd = (int) rl.rlim_cur;
    }

    /* Block every signal across the start so that none of the worker's
     * handlers runs in the child (on memory it shares with the worker)
     * before it has reset them. */
    if (sigfillset(&all) != 0) {
        hg_shell_err(err, errlen, "sigfillset: %s", strerror(errno));
        goto failed;
    }
    rc = pthread_sigmask(SIG_SETMASK, &all, &saved);
    if (rc != 0) {
        hg_shell_err(err, errlen, "pthread_sigmask: %s", strerror(rc));
        goto failed;
    }
    args.l = l;
    args.in_fd = child_in;
    args.out_fd = out_pipe[1];
    args.report_fd = report_pipe[1];
    args.max_fd = max_fd;
    args.parent = getpid();
    args.nprocs = l->nprocs;
    args.procs = l->procs;
    saved_environ = environ;
    pid = shell_start(&args, l->cgroup_fd, &pidfd);
    saved_errno = errno;
    /* The child has exec'd or exited: what it changed in environ (for
     * execvp's PATH) is put back. */
    environ = saved_environ;
    /* Restoring a mask we just read cannot fail. */
    (void) pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (pid < 0) {
        hg_shell_err(err, errlen, "clone: %s", strerror(saved_errno));
        goto failed;
    }

    proc->pid = pid;
    proc->out_fd = out_pipe[0];
    out_pipe[0] = -1;
    proc->report_fd = report_pipe[0];
    report_pipe[0] = -1;
    /* No pidfd on kernels before 5.3: hg_shell_run then polls waitpid. */
    proc->pidfd = pidfd >= 0 ? pidfd : shell_pidfd_open(pid);

    shell_close(&child_in);
    shell_close(&out_pipe[1]);
    shell_close(&report_pipe[1]);
    return 0;

failed:
    shell_close(&child_in);
    shell_close(&in_pipe[0]);
    shell_close(&in_pipe[1]);
    shell_close(&out_pipe[0]);
    shell_close(&out_pipe[1]);
    shell_close(&report_pipe[0]);
    shell_close(&report_pipe[1]);
    hg_shell_proc_close(proc);
    return -1;
}

void
hg_shell_proc_close(hg_shell_proc_t *proc)
{
    shell_close(&proc->pidfd);
    shell_close(&proc->in_fd);
    shell_close(&proc->out_fd);
    shell_close(&proc->report_fd);
}
