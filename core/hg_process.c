/*
 * hg_process.c: pid file, daemon, signal names. The pid file is locked
 * with flock for the master's whole life: a stale file left by a crash does
 * not stop a restart, and a live master cannot be started twice.
 */

#include "hg_core.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

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
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open pid file %s: %s", path,
                 strerror(errno));
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

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open pid file %s: %s (is hourglass "
                 "running?)", path, strerror(errno));
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

int
hg_daemonize(char *err, size_t errlen)
{
    pid_t pid;
    int fd;

    pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return HG_ERROR;
    }
    if (pid > 0) {
        _exit(0);
    }
    if (setsid() < 0) {
        snprintf(err, errlen, "setsid: %s", strerror(errno));
        return HG_ERROR;
    }
    fd = open("/dev/null", O_RDWR);
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
