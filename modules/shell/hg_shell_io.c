/*
 * hg_shell_io.c is the parent's side of a running job: one poll() loop that
 * feeds the payload to the child's stdin, reads its output into the
 * execution, watches for cancellation and reaps the child.
 *
 * Invariants:
 *  - Output is always drained, even past output_limit (hg_exec_output drops
 *    it and marks the record truncated): a child must never block on a full
 *    pipe, or it would never exit.
 *  - stdin is written without blocking, a pipe buffer at a time, while
 *    output is read: a payload larger than the pipe buffer cannot deadlock
 *    against a child that writes before it has read everything (cat).
 *  - hg_exec_cancelled is checked at least every HG_SHELL_TICK_MS.
 *  - Every path out of hg_shell_run has reaped the child: no zombies.
 *  - SIGPIPE is blocked while we write, so that a child that exits without
 *    reading its stdin gives EPIPE here instead of killing the worker.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hourglass/module.h>

#include "hg_shell.h"

/* How often cancellation is checked when nothing else wakes the loop. */
#define HG_SHELL_TICK_MS       100
/* Without a pidfd, how often waitpid is polled once the pipes are quiet. */
#define HG_SHELL_REAP_TICK_MS  10
/* How long output is still read after the child has exited while something
 * else (a job's background process) keeps the pipe open. Past this, the
 * execution ends without waiting for that process. */
#define HG_SHELL_DRAIN_MS      200
/* One read or write of the loop. */
#define HG_SHELL_CHUNK         (64 * 1024)
/* The most processes of a job's tree killed on cancellation. */
#define HG_SHELL_TREE_MAX      4096

static int64_t
shell_clock_ms(clockid_t clock)
{
    struct timespec ts;

    if (clock_gettime(clock, &ts) != 0) {
        return 0;
    }
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
shell_close(int *fd)
{
    if (*fd >= 0) {
        (void) close(*fd);
        *fd = -1;
    }
}

/* --- killing a job ------------------------------------------------------ */

/* Append the children of pid (every thread's) to pids[*n..max). */
static void
shell_tree_children(pid_t pid, pid_t *pids, size_t *n, size_t max)
{
    char path[64], buf[4096], *p, *end;
    struct dirent *de;
    long child;
    ssize_t len;
    DIR *dir;
    int fd;

    len = snprintf(path, sizeof(path), "/proc/%ld/task", (long) pid);
    if (len < 0 || (size_t) len >= sizeof(path)) {
        return;
    }
    dir = opendir(path);
    if (dir == NULL) {
        return;
    }
    while ((de = readdir(dir)) != NULL && *n < max) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') {
            continue;
        }
        len = snprintf(path, sizeof(path), "/proc/%ld/task/%s/children",
                       (long) pid, de->d_name);
        if (len < 0 || (size_t) len >= sizeof(path)) {
            continue;
        }
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd == -1) {
            continue;
        }
        do {
            len = read(fd, buf, sizeof(buf) - 1);
        } while (len < 0 && errno == EINTR);
        (void) close(fd);
        if (len <= 0) {
            continue;
        }
        /* A list longer than the buffer is cut at a pid boundary below:
         * best effort, the master's process-group kill is the backstop. */
        buf[len] = '\0';
        for (p = buf; *n < max; p = end) {
            errno = 0;
            child = strtol(p, &end, 10);
            if (end == p || errno != 0) {
                break;
            }
            if (child > 0) {
                pids[(*n)++] = (pid_t) child;
            }
        }
    }
    (void) closedir(dir);
}

/*
 * Kill the child and everything it started. The child stays in the
 * worker's process group (so that the master's timeout kill reaches all of
 * it), which means a group kill is not ours to use here: walk the tree in
 * /proc instead. Each process is stopped as it is found, so that it can
 * neither fork nor reap (a reaped pid could be reused) while the walk goes
 * on, and then everything found is killed. Best effort: without
 * /proc/PID/task/TID/children only the child itself is killed, and what
 * left the tree (a double fork) is not found; the worker empties the
 * execution's cgroup (or kills what was reparented to it) when execute
 * returns.
 */
static void
shell_kill_tree(pid_t pid)
{
    pid_t *pids;
    size_t n, i;

    pids = malloc(HG_SHELL_TREE_MAX * sizeof(*pids));
    if (pids == NULL) {
        (void) kill(pid, SIGKILL);
        return;
    }
    n = 0;
    pids[n++] = pid;
    (void) kill(pid, SIGSTOP);
    for (i = 0; i < n; i++) {
        size_t first = n;

        shell_tree_children(pids[i], pids, &n, HG_SHELL_TREE_MAX);
        for (; first < n; first++) {
            (void) kill(pids[first], SIGSTOP);
        }
    }
    /* SIGKILL ends stopped processes too. Errors (ESRCH: it already
     * exited) are fine. */
    for (i = 0; i < n; i++) {
        (void) kill(pids[i], SIGKILL);
    }
    free(pids);
}

/* wait4 that retries EINTR, keeping what the child used in the outcome.
 * Returns the pid, 0 (WNOHANG, still running) or -1. */
static pid_t
shell_waitpid(pid_t pid, hg_shell_outcome_t *outcome, int flags)
{
    pid_t r;

    do {
        r = wait4(pid, &outcome->status, flags, &outcome->usage);
    } while (r == -1 && errno == EINTR);
    return r;
}

/* Kill and reap: the way out of every abnormal path. */
static void
shell_abort(hg_shell_proc_t *proc, hg_shell_outcome_t *outcome)
{
    shell_kill_tree(proc->pid);
    if (shell_waitpid(proc->pid, outcome, 0) != proc->pid) {
        outcome->lost = true;
    }
}

/* --- the loop ----------------------------------------------------------- */

/* Read the child's {stage, errno} report, if any. EOF: exec succeeded (or
 * the child died before reporting). */
static void
shell_read_report(hg_shell_proc_t *proc, hg_shell_report_t *report,
    size_t *got)
{
    ssize_t n;

    if (*got >= sizeof(*report)) {
        char sink[64];

        /* more than one report cannot happen; keep draining to EOF */
        n = read(proc->report_fd, sink, sizeof(sink));
    } else {
        n = read(proc->report_fd, (char *) report + *got,
                 sizeof(*report) - *got);
    }
    if (n > 0) {
        if (*got < sizeof(*report)) {
            *got += (size_t) n;
        }
        return;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;
    }
    shell_close(&proc->report_fd);
}

/* One read of output. Past the limit hg_exec_output drops the bytes (and
 * marks truncation); we read them anyway so that the child never blocks. */
static void
shell_read_output(hg_exec_t *exec, hg_shell_proc_t *proc, char *buf)
{
    ssize_t n;

    n = read(proc->out_fd, buf, HG_SHELL_CHUNK);
    if (n > 0) {
        (void) hg_exec_output(exec, buf, (size_t) n);
        return;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;
    }
    /* EOF: every writer (the child and anything it left behind) is gone */
    shell_close(&proc->out_fd);
}

/* One nonblocking write of payload. The payload is closed (EOF for the
 * child) when it has all been written, or when the child stopped reading
 * (EPIPE: what it did not read is dropped, as a shell pipeline would). */
static void
shell_write_input(hg_shell_proc_t *proc, const char *payload, size_t len,
    size_t *done)
{
    size_t chunk;
    ssize_t n;

    chunk = len - *done;
    if (chunk > HG_SHELL_CHUNK) {
        chunk = HG_SHELL_CHUNK;
    }
    n = write(proc->in_fd, payload + *done, chunk);
    if (n > 0) {
        *done += (size_t) n;
    } else if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;
    } else {
        shell_close(&proc->in_fd);
        return;
    }
    if (*done == len) {
        shell_close(&proc->in_fd);
    }
}

/* The poll timeout: at most a tick, less when the deadline or the end of
 * the drain is nearer. */
static int
shell_timeout(hg_exec_t *exec, bool reaped, int64_t drain_until,
    bool poll_reap)
{
    int64_t timeout, deadline, left;

    timeout = HG_SHELL_TICK_MS;
    deadline = hg_exec_deadline(exec);
    if (deadline > 0) {
        /* +1 so that we wake just after the deadline, not just before */
        left = deadline - shell_clock_ms(CLOCK_REALTIME) + 1;
        if (left < timeout) {
            timeout = left;
        }
    }
    if (reaped) {
        left = drain_until - shell_clock_ms(CLOCK_MONOTONIC);
        if (left < timeout) {
            timeout = left;
        }
    } else if (poll_reap && timeout > HG_SHELL_REAP_TICK_MS) {
        timeout = HG_SHELL_REAP_TICK_MS;
    }
    return timeout < 0 ? 0 : (int) timeout;
}

int
hg_shell_run(hg_exec_t *exec, hg_shell_proc_t *proc, const void *payload,
    size_t payload_len, hg_shell_outcome_t *outcome, char *err, size_t errlen)
{
    struct pollfd pfd[4];
    int idx_out, idx_in, idx_report, idx_pid;
    sigset_t pipe_set, saved, pending;
    bool reaped, pipe_was_pending, masked;
    size_t written, report_got;
    int64_t drain_until;
    nfds_t nfds;
    char *buf;
    pid_t r;
    int rc, n;

    memset(outcome, 0, sizeof(*outcome));
    reaped = false;
    masked = false;
    pipe_was_pending = false;
    written = 0;
    report_got = 0;
    drain_until = 0;
    rc = -1;

    buf = malloc(HG_SHELL_CHUNK);
    if (buf == NULL) {
        hg_shell_err(err, errlen, "out of memory");
        shell_abort(proc, outcome);
        goto done;
    }

    /* Only a payload is written: without one there is no SIGPIPE to
     * block (four system calls per execution saved). */
    if (proc->in_fd >= 0) {
        if (sigemptyset(&pipe_set) != 0
            || sigaddset(&pipe_set, SIGPIPE) != 0
            || sigpending(&pending) != 0
            || pthread_sigmask(SIG_BLOCK, &pipe_set, &saved) != 0)
        {
            hg_shell_err(err, errlen, "cannot block SIGPIPE");
            shell_abort(proc, outcome);
            goto done;
        }
        masked = true;
        pipe_was_pending = sigismember(&pending, SIGPIPE) == 1;
    }

    for (;;) {
        if (hg_exec_cancelled(exec)) {
            if (!reaped) {
                outcome->cancelled = true;
                shell_abort(proc, outcome);
            }
            break;
        }
        if (reaped && proc->report_fd < 0
            && (proc->out_fd < 0
                || shell_clock_ms(CLOCK_MONOTONIC) >= drain_until))
        {
            break;
        }

        nfds = 0;
        idx_out = idx_in = idx_report = idx_pid = -1;
        if (proc->out_fd >= 0) {
            idx_out = (int) nfds;
            pfd[nfds].fd = proc->out_fd;
            pfd[nfds++].events = POLLIN;
        }
        if (proc->report_fd >= 0) {
            idx_report = (int) nfds;
            pfd[nfds].fd = proc->report_fd;
            pfd[nfds++].events = POLLIN;
        }
        if (proc->in_fd >= 0) {
            idx_in = (int) nfds;
            pfd[nfds].fd = proc->in_fd;
            pfd[nfds++].events = POLLOUT;
        }
        if (!reaped && proc->pidfd >= 0) {
            idx_pid = (int) nfds;
            pfd[nfds].fd = proc->pidfd;
            pfd[nfds++].events = POLLIN;
        }

        n = poll(pfd, nfds, shell_timeout(exec, reaped, drain_until,
                                          proc->pidfd < 0));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            hg_shell_err(err, errlen, "poll: %s", strerror(errno));
            if (!reaped) {
                shell_abort(proc, outcome);
            }
            goto done;
        }

        if (idx_report >= 0 && pfd[idx_report].revents != 0) {
            shell_read_report(proc, &outcome->report, &report_got);
        }
        if (idx_out >= 0 && pfd[idx_out].revents != 0) {
            shell_read_output(exec, proc, buf);
        }
        if (idx_in >= 0 && pfd[idx_in].revents != 0) {
            shell_write_input(proc, payload, payload_len, &written);
        }
        if (!reaped && (proc->pidfd < 0
                        || (idx_pid >= 0 && pfd[idx_pid].revents != 0)))
        {
            r = shell_waitpid(proc->pid, outcome, WNOHANG);
            if (r == proc->pid || r == -1) {
                /* -1 (ECHILD): someone else reaped it (SIGCHLD ignored, or
                 * a waitpid(-1) elsewhere in the worker): no status. */
                outcome->lost = r == -1;
                reaped = true;
                drain_until = shell_clock_ms(CLOCK_MONOTONIC)
                              + HG_SHELL_DRAIN_MS;
                /* nobody left to read the rest of the payload */
                shell_close(&proc->in_fd);
                /* Usually everything is in the pipe already and EOF
                 * follows: read now rather than after one more poll. */
                if (proc->out_fd >= 0) {
                    shell_read_output(exec, proc, buf);
                }
            }
        }
    }

    if (report_got > 0 && report_got < sizeof(outcome->report)) {
        /* a torn report: cannot happen with one write below PIPE_BUF */
        outcome->report.stage = HG_SHELL_STAGE_SETUP;
        outcome->report.error = EIO;
    }
    rc = 0;

done:
    if (masked) {
        struct timespec zero = { 0, 0 };

        /* Consume the SIGPIPE our writes raised while it was blocked, but
         * not one that was pending before us: that one is the worker's. */
        if (!pipe_was_pending && sigpending(&pending) == 0
            && sigismember(&pending, SIGPIPE) == 1)
        {
            (void) sigtimedwait(&pipe_set, NULL, &zero);
        }
        (void) pthread_sigmask(SIG_SETMASK, &saved, NULL);
    }
    free(buf);
    return rc;
}

/* --- signal names ------------------------------------------------------- */

static const struct {
    int signo;
    const char *name;
} hg_shell_signals[] = {
    { SIGHUP, "SIGHUP" }, { SIGINT, "SIGINT" }, { SIGQUIT, "SIGQUIT" },
    { SIGILL, "SIGILL" }, { SIGTRAP, "SIGTRAP" }, { SIGABRT, "SIGABRT" },
    { SIGBUS, "SIGBUS" }, { SIGFPE, "SIGFPE" }, { SIGKILL, "SIGKILL" },
    { SIGUSR1, "SIGUSR1" }, { SIGSEGV, "SIGSEGV" }, { SIGUSR2, "SIGUSR2" },
    { SIGPIPE, "SIGPIPE" }, { SIGALRM, "SIGALRM" }, { SIGTERM, "SIGTERM" },
    { SIGCHLD, "SIGCHLD" }, { SIGCONT, "SIGCONT" }, { SIGSTOP, "SIGSTOP" },
    { SIGTSTP, "SIGTSTP" }, { SIGTTIN, "SIGTTIN" }, { SIGTTOU, "SIGTTOU" },
    { SIGURG, "SIGURG" }, { SIGXCPU, "SIGXCPU" }, { SIGXFSZ, "SIGXFSZ" },
    { SIGVTALRM, "SIGVTALRM" }, { SIGPROF, "SIGPROF" },
    { SIGWINCH, "SIGWINCH" }, { SIGIO, "SIGIO" }, { SIGSYS, "SIGSYS" },
#ifdef SIGPWR
    { SIGPWR, "SIGPWR" },
#endif
#ifdef SIGSTKFLT
    { SIGSTKFLT, "SIGSTKFLT" },
#endif
};

/* "SIGKILL", "SIGRTMIN+3"; a table rather than sigabbrev_np so that the
 * module builds against any C library. */
const char *
hg_shell_signal_name(int signo, char *buf, size_t len)
{
    size_t i;

    for (i = 0; i < sizeof(hg_shell_signals) / sizeof(hg_shell_signals[0]);
         i++)
    {
        if (hg_shell_signals[i].signo == signo) {
            return hg_shell_signals[i].name;
        }
    }
    if (signo >= SIGRTMIN && signo <= SIGRTMAX) {
        (void) snprintf(buf, len, "SIGRTMIN+%d", signo - SIGRTMIN);
    } else {
        (void) snprintf(buf, len, "signal %d", signo);
    }
    return buf;
}
