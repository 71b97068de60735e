/*
 * hg_process.c: pid file, daemon, signal names. The pid file is locked
 * with flock for the master's whole life: a stale file left by a crash does
 * not stop a restart, and a live master cannot be started twice.
 *
 * The pid file is never reached through a symbolic link (O_NOFOLLOW) and
 * must be a regular file: a link planted in a writable directory must not
 * make root truncate and write the file it points at. `-s` signals only a
 * process that is hourglass, whatever pid a stale or forged file holds.
 *
 * hg_process_short_slice: a worker runs for some tens of microseconds at
 * the start and at the end of each execution, each time woken by the
 * master or by its job. With the default slice, EEVDF lets the processes
 * already on the CPU (jobs) run on first, and the execution's start or end
 * waits behind them: on a 2-CPU machine running `sh -c true` two at once, a
 * third of a worker's wake-ups waited 30 to 140 us (perf sched timehist),
 * and the daemon ran them 1.17x slower than a bare posix_spawn; with the
 * shortest slice, 1.08x (bench_master -s e). A shorter slice gives no more
 * CPU time, only an earlier deadline: the worker runs sooner when woken,
 * and is preempted sooner if it runs long. Its children (the jobs) get the
 * default slice back (SCHED_FLAG_RESET_ON_FORK).
 */

#include "hg_core.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "hg_process.h"

static int
hg_mkdir_parent(const char *path)
{
    char dir[PATH_MAX];
    char *slash;
    size_t len = strlen(path);

    if (len >= sizeof(dir)) {
        errno = ENAMETOOLONG;
        return HG_ERROR;
    }
    memcpy(dir, path, len + 1);
    slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir) {
        return HG_OK;
    }
    *slash = '\0';
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        return HG_ERROR;
    }
    return HG_OK;
}

static pid_t
hg_pid_parse(const char *text)
{
    char *end;
    long pid;

    errno = 0;
    pid = strtol(text, &end, 10);
    if (errno != 0 || end == text || pid <= 0 || pid > INT_MAX
        || (*end != '\n' && *end != '\0'))
    {
        return -1;
    }
    return (pid_t) pid;
}

static ssize_t
hg_read_small(int fd, char *buf, size_t len)
{
    ssize_t n;

    do {
        n = pread(fd, buf, len - 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n >= 0) {
        buf[n] = '\0';
    }
    return n;
}

/* Opens the pid file PATH without following a symbolic link and checks
 * that it is a regular file. -1 with a message naming PATH and why. */
static int
hg_pidfile_open(const char *path, int flags, char *err, size_t errlen)
{
    struct stat st;
    int fd, saved;

    /* O_NONBLOCK: opening a FIFO planted there must not hang us */
    fd = open(path, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0) {
        saved = errno;
        if (saved == ELOOP && lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
            snprintf(err, errlen, "pid file %s is a symbolic link: hourglass "
                     "does not follow links there (remove it)", path);
        } else if (saved == ENOENT && !(flags & O_CREAT)) {
            snprintf(err, errlen, "cannot open pid file %s: %s (is "
                     "hourglass running?)", path, strerror(saved));
        } else {
            snprintf(err, errlen, "cannot open pid file %s: %s", path,
                     strerror(saved));
        }
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "cannot stat pid file %s: %s", path,
                 strerror(errno));
        goto failed;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "pid file %s is not a regular file (remove "
                 "it)", path);
        goto failed;
    }
    /* Writing our pid into a file that someone else owns would let that
     * user choose what a later `-s` signals. */
    if ((flags & O_CREAT) && st.st_uid != geteuid()) {
        snprintf(err, errlen, "pid file %s belongs to uid %lu, not to uid "
                 "%lu that hourglass runs as (remove it)", path,
                 (unsigned long) st.st_uid, (unsigned long) geteuid());
        goto failed;
    }
    return fd;

failed:
    close(fd);
    return -1;
}

int
hg_pidfile_create(const char *path, int *fdp, char *err, size_t errlen)
{
    char buf[32];
    int fd, len;
    pid_t other;

    if (hg_mkdir_parent(path) != HG_OK) {
        snprintf(err, errlen, "cannot create the directory of pid file %s: "
                 "%s", path, strerror(errno));
        return HG_ERROR;
    }
    fd = hg_pidfile_open(path, O_RDWR | O_CREAT, err, errlen);
    if (fd < 0) {
        return HG_ERROR;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        other = -1;
        if (errno == EWOULDBLOCK && hg_read_small(fd, buf, sizeof(buf)) > 0) {
            other = hg_pid_parse(buf);
        }
        if (other > 0) {
            snprintf(err, errlen, "hourglass is already running (pid %d, "
                     "pid file %s)", (int) other, path);
        } else {
            snprintf(err, errlen, "pid file %s is locked by another "
                     "process", path);
        }
        close(fd);
        return HG_ERROR;
    }
    len = snprintf(buf, sizeof(buf), "%d\n", (int) getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t) len, 0) != len) {
        snprintf(err, errlen, "cannot write pid file %s: %s", path,
                 strerror(errno));
        close(fd);
        return HG_ERROR;
    }
    *fdp = fd;
    return HG_OK;
}

void
hg_pidfile_remove(const char *path, int fd)
{
    if (fd < 0) {
        return;
    }
    /* Unlink while still holding the lock, so that a new master cannot
     * lock the file that is about to disappear. */
    unlink(path);
    close(fd);
}

pid_t
hg_pidfile_read(const char *path, char *err, size_t errlen)
{
    char buf[32];
    int fd;
    pid_t pid;

    fd = hg_pidfile_open(path, O_RDONLY, err, errlen);
    if (fd < 0) {
        return -1;
    }
    if (hg_read_small(fd, buf, sizeof(buf)) <= 0
        || (pid = hg_pid_parse(buf)) < 0)
    {
        snprintf(err, errlen, "pid file %s does not hold a pid", path);
        close(fd);
        return -1;
    }
    /* An unlocked pid file was left by a master that is gone. */
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
        snprintf(err, errlen, "pid file %s is stale: no hourglass holds it "
                 "(pid %d is not running hourglass)", path, (int) pid);
        close(fd);
        return -1;
    }
    close(fd);
    return pid;
}

/* comm of PID (what the kernel took from the program's file name), or
 * -1 with errno. */
static int
hg_process_comm(pid_t pid, char *buf, size_t len)
{
    char path[64];
    ssize_t n;
    int fd, saved;

    snprintf(path, sizeof(path), "/proc/%d/comm", (int) pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    n = hg_read_small(fd, buf, len);
    saved = errno;
    close(fd);
    if (n < 0) {
        errno = saved;
        return -1;
    }
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

/*
 * A live process is hourglass when its executable is the very file we run
 * from (same device and inode), or, when that cannot be told (the binary
 * was upgraded since, or /proc/PID/exe of another user's process is not
 * readable), when its name is "hourglass". A pid file left pointing at
 * an unrelated process (a reused pid, a forged file) is refused.
 */
int
hg_process_is_hourglass(pid_t pid, const char *pidfile, char *err,
                        size_t errlen)
{
    char path[64], comm[64];
    struct stat self, other;

    if (hg_process_comm(pid, comm, sizeof(comm)) < 0) {
        snprintf(err, errlen, "pid file %s names pid %d, which is not "
                 "running: %s (is hourglass running?)", pidfile, (int) pid,
                 strerror(errno));
        return HG_ERROR;
    }
    snprintf(path, sizeof(path), "/proc/%d/exe", (int) pid);
    if (stat("/proc/self/exe", &self) == 0 && stat(path, &other) == 0
        && self.st_dev == other.st_dev && self.st_ino == other.st_ino)
    {
        return HG_OK;
    }
    if (strcmp(comm, "hourglass") == 0) {
        return HG_OK;
    }
    snprintf(err, errlen, "pid file %s names pid %d, which is \"%s\", not "
             "hourglass: not signalled (the pid file is stale or was "
             "tampered with)", pidfile, (int) pid, comm);
    return HG_ERROR;
}

/* The parent's side of a start in the background: waits until the daemon
 * says how its start went (one line: "0", or "1" and a message) and exits
 * with that; the daemon's own exit without a word is a failure too. */
static void hg_daemon_wait(int fd, pid_t pid) __attribute__((noreturn));

static void
hg_daemon_wait(int fd, pid_t pid)
{
    char buf[1024];
    size_t used = 0;
    ssize_t n;
    int status;

    while (used < sizeof(buf) - 1 && memchr(buf, '\n', used) == NULL) {
        n = read(fd, buf + used, sizeof(buf) - 1 - used);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        used += (size_t) n;
    }
    buf[used] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    if (buf[0] == '0') {
        _exit(0);
    }
    if (buf[0] == '1') {
        fprintf(stderr, "hourglass: %s\n", buf + 1);
        _exit(1);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "hourglass: the daemon was killed by signal %d "
                "(%s) before it started\n", WTERMSIG(status),
                sigabbrev_np(WTERMSIG(status)));
    } else {
        fprintf(stderr, "hourglass: the daemon exited (status %d) before it "
                "started\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    _exit(1);
}

int
hg_daemonize(int *report_fd, char *err, size_t errlen)
{
    pid_t pid;
    int fd, pipefd[2];

    *report_fd = -1;
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return HG_ERROR;
    }
    pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(pipefd[0]);
        close(pipefd[1]);
        return HG_ERROR;
    }
    if (pid > 0) {
        close(pipefd[1]);
        hg_daemon_wait(pipefd[0], pid);
    }
    close(pipefd[0]);
    *report_fd = pipefd[1];
    if (setsid() < 0) {
        snprintf(err, errlen, "setsid: %s", strerror(errno));
        return HG_ERROR;
    }
    fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "/dev/null: %s", strerror(errno));
        return HG_ERROR;
    }
    dup2(fd, STDIN_FILENO);
    dup2(fd, STDOUT_FILENO);
    if (fd > STDERR_FILENO) {
        close(fd);
    }
    return HG_OK;
}

void
hg_daemon_report(int *report_fd, const char *failure)
{
    char buf[1024];
    const char *p;
    size_t left;
    ssize_t n;
    int len;

    if (*report_fd < 0) {
        return;
    }
    if (failure == NULL) {
        len = snprintf(buf, sizeof(buf), "0\n");
    } else {
        /* one line: the parent stops at the first newline */
        len = snprintf(buf, sizeof(buf), "1%.*s\n",
                       (int) strcspn(failure, "\n"), failure);
    }
    if (len < 0) {
        len = 0;
    }
    if ((size_t) len >= sizeof(buf)) {
        len = (int) sizeof(buf) - 1;
        buf[len - 1] = '\n';
    }
    p = buf;
    left = (size_t) len;
    while (left > 0) {
        n = write(*report_fd, p, left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        p += n;
        left -= (size_t) n;
    }
    close(*report_fd);
    *report_fd = -1;
}

int
hg_signal_by_name(const char *name)
{
    static const struct {
        const char *name;
        int signo;
    } names[] = {
        { "reload", SIGHUP },
        { "stop", SIGTERM },
        { "quit", SIGQUIT },
        { "reopen", SIGUSR1 },
    };
    size_t i;

    for (i = 0; i < HG_NELEMS(names); i++) {
        if (strcmp(names[i].name, name) == 0) {
            return names[i].signo;
        }
    }
    return 0;
}

/* struct sched_attr of <linux/sched/types.h> (its first version), spelled
 * out: the C library has no wrapper before glibc 2.41. */
typedef struct hg_sched_attr_s {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;         /* SCHED_OTHER: the slice, in ns */
    uint64_t sched_deadline;
    uint64_t sched_period;
} hg_sched_attr_t;

#define HG_SCHED_FLAG_RESET_ON_FORK  0x01
/* The shortest slice Linux accepts (it clamps to 0.1 ms .. 100 ms). */
#define HG_SHORT_SLICE_NS            100000

void
hg_process_short_slice(void)
{
#if defined(SYS_sched_getattr) && defined(SYS_sched_setattr)
    hg_sched_attr_t attr;

    memset(&attr, 0, sizeof(attr));
    if (syscall(SYS_sched_getattr, 0, &attr, sizeof(attr), 0) != 0
        || attr.sched_policy != SCHED_OTHER || attr.sched_nice < 0)
    {
        /* a real-time, batch or idle policy, or a raised priority, is
         * the administrator's choice: left as it is, for the jobs too */
        return;
    }
    attr.size = sizeof(attr);
    attr.sched_flags = HG_SCHED_FLAG_RESET_ON_FORK;
    attr.sched_runtime = HG_SHORT_SLICE_NS;
    /* Refused (a seccomp filter, an old kernel): the default slice. */
    (void) syscall(SYS_sched_setattr, 0, &attr, 0);
#endif
}
