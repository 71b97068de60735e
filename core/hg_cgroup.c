/*
 * hg_cgroup.c: finding the cgroup hierarchies, making and emptying the
 * execution cgroups, writing limits, and the subreaper fallback. See
 * hg_cgroup.h for the layout.
 *
 * It never kills a cgroup it did not make (a stale hourglass.<pid> group is
 * removed only when that pid no longer exists) and never blocks the
 * master's loop: cgroupfs writes there are immediate, waits for a cgroup
 * to empty happen only in workers and at start or exit.
 */

#include "hg_core.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "hg_cgroup.h"
#include "hg_exec.h"
#include "hg_log.h"
#include "hg_worker.h"

/* The controllers limits use, in HG_LIMIT_* bit order: v2 and the v1
 * hierarchies limits may fall back to spell them alike. */
#define HG_CG_NV1  3
static const char *const hg_cg_names[HG_CG_NV1] = {
    "memory", "cpu", "pids"
};

#define HG_CG_PERIOD_US   100000
/* How long a worker waits for its killed execution cgroup to empty. */
#define HG_CG_EMPTY_WAIT_MS  5000
/* Removals retried while killed processes are still exiting. */
#define HG_CG_PENDING_MAX  256
/* Rounds of the subreaper fallback's kill (one tree level each). */
#define HG_CG_REAP_ROUNDS  64

typedef struct hg_cgroup_state_s {
    bool probed;
    char v2_own[PATH_MAX];              /* our cgroup on the v2 mount */
    bool v2_is_root;
    bool moved;                         /* the master is in HG/master */
    char v1_own[HG_CG_NV1][PATH_MAX];   /* our cgroup in each v1 hierarchy */
    char group[PATH_MAX];               /* v2 hourglass.<pid>, "" = none */
    char group_v1[HG_CG_NV1][PATH_MAX]; /* v1 hourglass.<pid>, "" = none */
    unsigned v2_limits;
    unsigned v1_limits;
    /* worker */
    char wdir[PATH_MAX];
    int dir_fd, kill_fd, events_fd;
    char wdir_v1[HG_CG_NV1][PATH_MAX];  /* made lazily */
    int v1_procs_fd[HG_CG_NV1];
    int join_fds[HG_CG_NV1];            /* the ones this execution joins */
    size_t njoin;
    hg_limits_t applied;
    bool oom_watch;
    uint64_t oom_base;
    char children_path[64];             /* /proc/self/task/<pid>/children */
    /* master: removals to retry */
    char *pending[HG_CG_PENDING_MAX];
    size_t npending;
} hg_cgroup_state_t;

static hg_cgroup_state_t hg_cg = {
    .dir_fd = -1, .kill_fd = -1, .events_fd = -1,
    .v1_procs_fd = { -1, -1, -1 },
};

/* --- small file helpers ------------------------------------------------ */

static int
hg_cg_write(const char *path, const char *text)
{
    size_t len = strlen(text);
    ssize_t n;
    int fd, saved;

    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return HG_ERROR;
    }
    do {
        n = write(fd, text, len);
    } while (n < 0 && errno == EINTR);
    saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t) len ? HG_OK : HG_ERROR;
}

static int
hg_cg_writef(const char *dir, const char *file, const char *text)
{
    char path[PATH_MAX];

    if ((size_t) snprintf(path, sizeof(path), "%s/%s", dir, file)
        >= sizeof(path))
    {
        errno = ENAMETOOLONG;
        return HG_ERROR;
    }
    return hg_cg_write(path, text);
}

/* Read a small file whole (NUL-terminated); -1 or the length. */
static ssize_t
hg_cg_pread_fd(int fd, char *buf, size_t len)
{
    size_t got = 0;
    ssize_t n;

    while (got + 1 < len) {
        n = pread(fd, buf + got, len - 1 - got, (off_t) got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            break;
        }
        got += (size_t) n;
    }
    buf[got] = '\0';
    return (ssize_t) got;
}

static ssize_t
hg_cg_read(const char *dir, const char *file, char *buf, size_t len)
{
    char path[PATH_MAX];
    ssize_t n;
    int fd;

    if ((size_t) snprintf(path, sizeof(path), "%s%s%s", dir,
                          file ? "/" : "", file ? file : "")
        >= sizeof(path))
    {
        return -1;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    n = hg_cg_pread_fd(fd, buf, len);
    close(fd);
    return n;
}

/* Whether WORD is one of the words of LIST (separated by SEP chars). */
static bool
hg_cg_has_word(const char *list, const char *word, const char *sep)
{
    size_t len = strlen(word);
    const char *p = list;

    while (*p != '\0') {
        size_t n = strcspn(p, sep);
        if (n == len && strncmp(p, word, len) == 0) {
            return true;
        }
        p += n;
        p += strspn(p, sep);
    }
    return false;
}

/* The number after "KEY " in a flat keyed file (cgroup.events,
 * memory.events, memory.oom_control); 0 when absent. */
static uint64_t
hg_cg_keyed(const char *text, const char *key)
{
    size_t len = strlen(key);
    const char *p = text;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, key, len) == 0 && p[len] == ' ') {
            return strtoull(p + len + 1, NULL, 10);
        }
        p = strchr(p, '\n');
        if (p != NULL) {
            p++;
        }
    }
    return 0;
}

/* --- finding the hierarchies ------------------------------------------- */

/* MOUNT + (PATH less the mount's ROOT) into out. */
static bool
hg_cg_join(char *out, size_t len, const char *mount, const char *root,
           const char *path)
{
    size_t rl = strlen(root);

    if (strcmp(root, "/") != 0) {
        if (strncmp(path, root, rl) != 0
            || (path[rl] != '\0' && path[rl] != '/'))
        {
            return false;               /* our cgroup is not under it */
        }
        path += rl;
    }
    if (strcmp(path, "/") == 0) {
        path = "";
    }
    return (size_t) snprintf(out, len, "%s%s", mount, path) < len;
}

/* Our path in hierarchy ID from /proc/self/cgroup: "" for v2 (id 0 and no
 * controllers) or a controller name for v1. */
static bool
hg_cg_own_path(const char *controller, char *out, size_t len)
{
    char line[PATH_MAX + 128];
    bool found = false;
    FILE *f;

    f = fopen("/proc/self/cgroup", "re");
    if (f == NULL) {
        return false;
    }
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        char *c1 = strchr(line, ':'), *c2;
        if (c1 == NULL || (c2 = strchr(c1 + 1, ':')) == NULL) {
            continue;
        }
        *c2 = '\0';
        line[strcspn(line, ":")] = '\0';
        c2[1 + strcspn(c2 + 1, "\n")] = '\0';
        if (controller[0] == '\0'
            ? (strcmp(line, "0") == 0 && c1[1] == '\0')
            : hg_cg_has_word(c1 + 1, controller, ","))
        {
            found = (size_t) snprintf(out, len, "%s", c2 + 1) < len;
        }
    }
    fclose(f);
    return found;
}

static void
hg_cg_probe(void)
{
    char line[4096], own[PATH_MAX];
    FILE *f;
    size_t i;

    if (hg_cg.probed) {
        return;
    }
    hg_cg.probed = true;
    f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL) {
        return;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        /* id parent dev root mountpoint opts [optional...] - type src sb */
        char *field[6], *dash, *save = NULL, *type, *super;
        int nf = 0;

        dash = strstr(line, " - ");
        if (dash == NULL) {
            continue;
        }
        *dash = '\0';
        type = strtok_r(dash + 3, " \n", &save);
        (void) strtok_r(NULL, " \n", &save);        /* source */
        super = strtok_r(NULL, " \n", &save);
        save = NULL;
        for (field[nf] = strtok_r(line, " ", &save); field[nf] != NULL
             && nf < 5; field[++nf] = strtok_r(NULL, " ", &save))
        {
        }
        if (type == NULL || nf < 5) {
            continue;
        }
        if (strcmp(type, "cgroup2") == 0 && hg_cg.v2_own[0] == '\0') {
            if (hg_cg_own_path("", own, sizeof(own))
                && hg_cg_join(hg_cg.v2_own, sizeof(hg_cg.v2_own), field[4],
                              field[3], own))
            {
                hg_cg.v2_is_root = strcmp(own, "/") == 0;
            } else {
                hg_cg.v2_own[0] = '\0';
            }
        } else if (strcmp(type, "cgroup") == 0 && super != NULL) {
            for (i = 0; i < HG_CG_NV1; i++) {
                if (hg_cg.v1_own[i][0] == '\0'
                    && hg_cg_has_word(super, hg_cg_names[i], ",")
                    && hg_cg_own_path(hg_cg_names[i], own, sizeof(own))
                    && !hg_cg_join(hg_cg.v1_own[i], sizeof(hg_cg.v1_own[i]),
                                   field[4], field[3], own))
                {
                    hg_cg.v1_own[i][0] = '\0';
                }
            }
        }
    }
    fclose(f);
    /* A v2 hierarchy we cannot write to contains nothing. */
    if (hg_cg.v2_own[0] != '\0' && access(hg_cg.v2_own, W_OK) != 0) {
        hg_cg.v2_own[0] = '\0';
    }
    for (i = 0; i < HG_CG_NV1; i++) {
        if (hg_cg.v1_own[i][0] != '\0' && access(hg_cg.v1_own[i], W_OK) != 0)
        {
            hg_cg.v1_own[i][0] = '\0';
        }
    }
}

unsigned
hg_cgroup_limits_supported(void)
{
    char ctl[512];
    unsigned bits = 0;
    size_t i;

    if (hg_cg.group[0] != '\0' || hg_cg.v1_limits != 0) {
        return hg_cg.v2_limits | hg_cg.v1_limits;
    }
    hg_cg_probe();
    if (hg_cg.v2_own[0] == '\0'
        || hg_cg_read(hg_cg.v2_own, "cgroup.controllers", ctl, sizeof(ctl))
           < 0)
    {
        ctl[0] = '\0';
    }
    for (i = 0; i < HG_CG_NV1; i++) {
        if (hg_cg_has_word(ctl, hg_cg_names[i], " \n")
            || hg_cg.v1_own[i][0] != '\0')
        {
            bits |= 1u << i;
        }
    }
    return bits;
}

size_t
hg_cgroup_warn_limits(const hg_conf_t *conf, bool to_stderr)
{
    unsigned have = hg_cgroup_limits_supported(), want;
    char missing[64];
    size_t i, k, n = 0;

    for (i = 0; i < conf->njobs; i++) {
        const hg_job_conf_t *job = &conf->jobs[i];
        const hg_limits_t *l = &job->policy.limits;

        want = (l->memory > 0 ? HG_LIMIT_MEMORY : 0)
               | (l->cpu > 0 ? HG_LIMIT_CPU : 0)
               | (l->tasks > 0 ? HG_LIMIT_TASKS : 0);
        if ((want & ~have) == 0) {
            continue;
        }
        missing[0] = '\0';
        for (k = 0; k < HG_CG_NV1; k++) {
            if (want & ~have & (1u << k)) {
                size_t len = strlen(missing);
                snprintf(missing + len, sizeof(missing) - len, "%s%s",
                         len > 0 ? ", " : "", hg_cg_names[k]);
            }
        }
        n++;
        if (to_stderr) {
            fprintf(stderr, "%s:%d: warning: job \"%s\": limits cannot be "
                    "enforced on this host (no writable %s cgroup "
                    "controller, v2 or v1); the job would run without "
                    "them\n", job->file ? job->file : conf->file, job->line,
                    job->id, missing);
        } else {
            hg_log(HG_LOG_WARN, "%s:%d: job \"%s\": limits cannot be "
                   "enforced on this host (no writable %s cgroup controller,"
                   " v2 or v1); it runs without them",
                   job->file ? job->file : conf->file, job->line, job->id,
                   missing);
        }
    }
    return n;
}

bool
hg_cgroup_contained(void)
{
    return hg_cg.group[0] != '\0';
}

/* --- removing groups --------------------------------------------------- */

/* SIGKILL every pid listed in DIR/FILE (FILE NULL: DIR is the file),
 * and reap each when REAP (they are our children); how many. */
static int
hg_cg_kill_listed(const char *dir, const char *file, bool reap)
{
    char buf[16384], *p, *end;
    int n = 0;

    if (hg_cg_read(dir, file, buf, sizeof(buf)) <= 0) {
        return 0;
    }
    for (p = buf; *p != '\0'; p = end) {
        long pid = strtol(p, &end, 10);
        if (end == p) {
            break;
        }
        if (pid > 0 && kill((pid_t) pid, SIGKILL) == 0) {
            n++;
            while (reap && waitpid((pid_t) pid, NULL, 0) < 0
                   && errno == EINTR)
            {
            }
        }
    }
    return n;
}

static int
hg_cg_kill_procs(const char *dir)
{
    return hg_cg_kill_listed(dir, "cgroup.procs", false);
}

/* Kill what is in DIR (v2: cgroup.kill; v1: one by one). */
static void
hg_cg_kill_dir(const char *dir, bool v2)
{
    if (!v2 || hg_cg_writef(dir, "cgroup.kill", "1") != HG_OK) {
        (void) hg_cg_kill_procs(dir);
    }
}

/* rmdir DIR, waiting up to WAIT_MS for its killed processes to exit. */
static int
hg_cg_rmdir_wait(const char *dir, bool v2, int wait_ms)
{
    int waited = 0;

    while (rmdir(dir) != 0) {
        if (errno == ENOENT) {
            return HG_OK;
        }
        if (errno != EBUSY || waited >= wait_ms) {
            return HG_ERROR;
        }
        hg_cg_kill_dir(dir, v2);
        usleep(5000);
        waited += 5;
    }
    return HG_OK;
}

/* Kill and remove DIR and its child cgroups (one level: our layout). */
static int
hg_cg_remove_tree(const char *dir, bool v2, int wait_ms)
{
    char sub[PATH_MAX];
    struct dirent *de;
    DIR *d;
    int rc = HG_OK;

    hg_cg_kill_dir(dir, v2);
    d = opendir(dir);
    if (d != NULL) {
        while ((de = readdir(d)) != NULL) {
            if (de->d_type != DT_DIR || de->d_name[0] == '.') {
                continue;
            }
            if ((size_t) snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name)
                < sizeof(sub))
            {
                hg_cg_kill_dir(sub, v2);
                if (hg_cg_rmdir_wait(sub, v2, wait_ms) != HG_OK) {
                    rc = HG_ERROR;
                }
            }
        }
        closedir(d);
    }
    if (hg_cg_rmdir_wait(dir, v2, wait_ms) != HG_OK) {
        rc = HG_ERROR;
    }
    return rc;
}

/* Remove the hourglass.<pid> groups under PARENT whose pid is dead: what
 * a master killed with -9 (and its workers, if they died too) left. */
static void
hg_cg_clean_stale(const char *parent, bool v2)
{
    char path[PATH_MAX];
    struct dirent *de;
    DIR *d;

    d = opendir(parent);
    if (d == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        char *end;
        long pid;

        if (strncmp(de->d_name, "hourglass.", 10) != 0) {
            continue;
        }
        pid = strtol(de->d_name + 10, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == (long) getpid()
            || kill((pid_t) pid, 0) == 0 || errno != ESRCH)
        {
            continue;
        }
        if ((size_t) snprintf(path, sizeof(path), "%s/%s", parent,
                              de->d_name) >= sizeof(path))
        {
            continue;
        }
        if (hg_cg_remove_tree(path, v2, 2000) == HG_OK) {
            hg_log(HG_LOG_INFO, "removed the stale cgroup %s of a previous "
                   "master (pid %ld) and killed what it held", path, pid);
        } else {
            hg_log(HG_LOG_WARN, "cannot remove the stale cgroup %s of a "
                   "previous master (pid %ld): %s", path, pid,
                   strerror(errno));
        }
    }
    closedir(d);
}

/* --- master ------------------------------------------------------------ */

/* Enable the limit controllers for our group's children. On a host that
 * delegates them (systemd Delegate=yes) the master first moves itself to
 * a leaf, HG/master: a cgroup with controllers enabled for its children
 * may hold no process of its own. */
static void
hg_cg_enable_controllers(void)
{
    char avail[512], on[512], leaf[PATH_MAX + 16], want[32];
    size_t i;

    if (hg_cg_read(hg_cg.v2_own, "cgroup.controllers", avail, sizeof(avail))
        < 0)
    {
        return;
    }
    for (i = 0; i < HG_CG_NV1; i++) {
        if (!hg_cg_has_word(avail, hg_cg_names[i], " \n")) {
            continue;
        }
        if (hg_cg_read(hg_cg.v2_own, "cgroup.subtree_control", on,
                       sizeof(on)) < 0)
        {
            return;
        }
        snprintf(want, sizeof(want), "+%s", hg_cg_names[i]);
        if (!hg_cg_has_word(on, hg_cg_names[i], " \n")) {
            if (!hg_cg.v2_is_root && !hg_cg.moved) {
                snprintf(leaf, sizeof(leaf), "%s/master", hg_cg.group);
                if ((mkdir(leaf, 0755) != 0 && errno != EEXIST)
                    || hg_cg_writef(leaf, "cgroup.procs", "0") != HG_OK)
                {
                    return;
                }
                hg_cg.moved = true;
            }
            if (hg_cg_writef(hg_cg.v2_own, "cgroup.subtree_control", want)
                != HG_OK)
            {
                continue;
            }
        }
        if (hg_cg_writef(hg_cg.group, "cgroup.subtree_control", want)
            == HG_OK)
        {
            hg_cg.v2_limits |= 1u << i;
        }
    }
}

/* "memory (v2), cpu (v1), pids (v1)" or "none". */
static const char *
hg_cg_limits_text(char *buf, size_t len)
{
    size_t i, off = 0;

    buf[0] = '\0';
    for (i = 0; i < HG_CG_NV1; i++) {
        const char *how = (hg_cg.v2_limits & (1u << i)) ? "v2"
                          : (hg_cg.v1_limits & (1u << i)) ? "v1" : NULL;
        if (how != NULL && off < len) {
            off += (size_t) snprintf(buf + off, len - off, "%s%s (%s)",
                                     off > 0 ? ", " : "",
                                     hg_cg_names[i], how);
        }
    }
    return off > 0 ? buf : "none";
}

void
hg_cgroup_setup(void)
{
    char limits[128];
    size_t i;

    hg_cg_probe();
    if (hg_cg.v2_own[0] != '\0') {
        hg_cg_clean_stale(hg_cg.v2_own, true);
        if ((size_t) snprintf(hg_cg.group, sizeof(hg_cg.group),
                              "%s/hourglass.%ld", hg_cg.v2_own,
                              (long) getpid()) >= sizeof(hg_cg.group)
            || (mkdir(hg_cg.group, 0755) != 0 && errno != EEXIST))
        {
            hg_log(HG_LOG_WARN, "cannot make the cgroup %s: %s",
                   hg_cg.group, strerror(errno));
            hg_cg.group[0] = '\0';
        } else {
            hg_cg_enable_controllers();
        }
    }
    for (i = 0; i < HG_CG_NV1; i++) {
        if (hg_cg.v1_own[i][0] == '\0') {
            continue;
        }
        hg_cg_clean_stale(hg_cg.v1_own[i], false);
        if (hg_cg.v2_limits & (1u << i)) {
            continue;
        }
        if ((size_t) snprintf(hg_cg.group_v1[i], sizeof(hg_cg.group_v1[i]),
                              "%s/hourglass.%ld", hg_cg.v1_own[i],
                              (long) getpid()) < sizeof(hg_cg.group_v1[i])
            && (mkdir(hg_cg.group_v1[i], 0755) == 0 || errno == EEXIST))
        {
            hg_cg.v1_limits |= 1u << i;
        } else {
            hg_cg.group_v1[i][0] = '\0';
        }
    }
    if (hg_cg.group[0] != '\0') {
        hg_log(HG_LOG_INFO, "containment: cgroup v2, each worker's "
               "executions in %s/w<worker pid>, killed whole at timeout, "
               "stop and when they leave processes; limits: %s",
               hg_cg.group, hg_cg_limits_text(limits, sizeof(limits)));
    } else {
        hg_log(HG_LOG_WARN, "containment: no writable cgroup v2 hierarchy; "
               "workers are child subreapers and kill what their "
               "executions leave (a process that escapes its session and "
               "outlives the worker is not caught); limits: %s",
               hg_cg_limits_text(limits, sizeof(limits)));
    }
}

static bool
hg_cg_worker_dir(char *out, size_t len, const char *group, pid_t worker)
{
    char dir[PATH_MAX];
    size_t n;

    if (group[0] == '\0') {
        return false;
    }
    n = (size_t) snprintf(dir, sizeof(dir), "%s/w%ld", group, (long) worker);
    if (n >= sizeof(dir) || n >= len) {
        return false;
    }
    memcpy(out, dir, n + 1);
    return true;
}

void
hg_cgroup_kill_worker(pid_t worker)
{
    char dir[PATH_MAX];
    size_t i;

    if (hg_cg_worker_dir(dir, sizeof(dir), hg_cg.group, worker)) {
        hg_cg_kill_dir(dir, true);
    }
    for (i = 0; i < HG_CG_NV1; i++) {
        if (hg_cg_worker_dir(dir, sizeof(dir), hg_cg.group_v1[i], worker)) {
            (void) hg_cg_kill_procs(dir);
        }
    }
}

static void
hg_cg_forget(const char *dir, bool v2)
{
    char *copy;

    if (rmdir(dir) == 0 || errno != EBUSY) {
        return;
    }
    hg_cg_kill_dir(dir, v2);
    copy = strdup(dir);
    if (copy == NULL || hg_cg.npending == HG_CG_PENDING_MAX) {
        hg_log(HG_LOG_WARN, "cgroup %s: still busy, left for the next "
               "start to remove", dir);
        free(copy);
        return;
    }
    hg_cg.pending[hg_cg.npending++] = copy;
}

void
hg_cgroup_forget_worker(pid_t worker)
{
    char dir[PATH_MAX];
    size_t i;

    /* No kill first: hg_cg_forget kills exactly when rmdir finds the
     * group still populated (hg_pool_kill has usually killed it). */
    if (hg_cg_worker_dir(dir, sizeof(dir), hg_cg.group, worker)) {
        hg_cg_forget(dir, true);
    }
    for (i = 0; i < HG_CG_NV1; i++) {
        if (hg_cg_worker_dir(dir, sizeof(dir), hg_cg.group_v1[i], worker)) {
            hg_cg_forget(dir, false);
        }
    }
}

void
hg_cgroup_sweep(void)
{
    size_t i = 0;

    while (i < hg_cg.npending) {
        if (rmdir(hg_cg.pending[i]) == 0 || errno != EBUSY) {
            free(hg_cg.pending[i]);
            hg_cg.pending[i] = hg_cg.pending[--hg_cg.npending];
        } else {
            i++;
        }
    }
}

void
hg_cgroup_teardown(void)
{
    size_t i;

    for (i = 0; i < hg_cg.npending; i++) {
        (void) hg_cg_rmdir_wait(hg_cg.pending[i], true, 1000);
        free(hg_cg.pending[i]);
    }
    hg_cg.npending = 0;
    /* HG/master holds this process when it had to move: that one stays
     * for the next start to remove. */
    if (hg_cg.group[0] != '\0' && !hg_cg.moved) {
        (void) hg_cg_remove_tree(hg_cg.group, true, 1000);
    }
    for (i = 0; i < HG_CG_NV1; i++) {
        if (hg_cg.group_v1[i][0] != '\0') {
            (void) hg_cg_remove_tree(hg_cg.group_v1[i], false, 1000);
        }
    }
}

/* --- worker ------------------------------------------------------------ */

static void
hg_cg_close(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/*
 * The worker's cgroup descriptors live high, out of the way of the low
 * numbers that state inherited from the master may still name (SQLite's
 * per-inode bookkeeping, for one, remembers descriptor numbers the worker
 * has closed; a cgroup file must not become one of them).
 */
#define HG_CG_FD_FLOOR  64

static int
hg_cg_open_high(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC), high;

    if (fd < 0 || fd >= HG_CG_FD_FLOOR) {
        return fd;
    }
    high = fcntl(fd, F_DUPFD_CLOEXEC, HG_CG_FD_FLOOR);
    close(fd);
    return high;
}

void
hg_cgroup_worker_init(void)
{
    char path[PATH_MAX + 16];

    /* Orphans of the job (a double fork, setsid) come back to the worker,
     * which can then kill them; on every host, as a backstop. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        hg_log(HG_LOG_WARN, "worker cannot become a child subreaper: %s",
               strerror(errno));
    }
    snprintf(hg_cg.children_path, sizeof(hg_cg.children_path),
             "/proc/self/task/%ld/children", (long) getpid());
    if (!hg_cg_worker_dir(hg_cg.wdir, sizeof(hg_cg.wdir), hg_cg.group,
                          getpid()))
    {
        return;
    }
    if (mkdir(hg_cg.wdir, 0755) != 0 && errno != EEXIST) {
        goto failed;
    }
    hg_cg.dir_fd = hg_cg_open_high(hg_cg.wdir, O_RDONLY | O_DIRECTORY);
    snprintf(path, sizeof(path), "%s/cgroup.kill", hg_cg.wdir);
    hg_cg.kill_fd = hg_cg_open_high(path, O_WRONLY);
    snprintf(path, sizeof(path), "%s/cgroup.events", hg_cg.wdir);
    hg_cg.events_fd = hg_cg_open_high(path, O_RDONLY);
    if (hg_cg.dir_fd < 0 || hg_cg.kill_fd < 0 || hg_cg.events_fd < 0) {
        goto failed;
    }
    return;

failed:
    hg_log(HG_LOG_WARN, "worker cannot set up its cgroup %s (%s); its "
           "executions run without one", hg_cg.wdir, strerror(errno));
    hg_cg_close(&hg_cg.dir_fd);
    hg_cg_close(&hg_cg.kill_fd);
    hg_cg_close(&hg_cg.events_fd);
    hg_cg.wdir[0] = '\0';
}

/* The worker's v1 cgroup of controller I, made the first time a limit
 * needs it. */
static const char *
hg_cg_worker_v1(size_t i)
{
    char path[PATH_MAX + 16];

    if (hg_cg.wdir_v1[i][0] != '\0') {
        return hg_cg.wdir_v1[i];
    }
    if (!hg_cg_worker_dir(hg_cg.wdir_v1[i], sizeof(hg_cg.wdir_v1[i]),
                          hg_cg.group_v1[i], getpid())
        || (mkdir(hg_cg.wdir_v1[i], 0755) != 0 && errno != EEXIST))
    {
        hg_cg.wdir_v1[i][0] = '\0';
        return NULL;
    }
    snprintf(path, sizeof(path), "%s/cgroup.procs", hg_cg.wdir_v1[i]);
    hg_cg.v1_procs_fd[i] = hg_cg_open_high(path, O_WRONLY);
    if (hg_cg.v1_procs_fd[i] < 0) {
        rmdir(hg_cg.wdir_v1[i]);
        hg_cg.wdir_v1[i][0] = '\0';
        return NULL;
    }
    return hg_cg.wdir_v1[i];
}

/* The counter of OOM kills of the memory limit's cgroup. */
static uint64_t
hg_cg_oom_count(void)
{
    char buf[1024];

    if (hg_cg.v2_limits & HG_LIMIT_MEMORY) {
        if (hg_cg_read(hg_cg.wdir, "memory.events", buf, sizeof(buf)) > 0) {
            return hg_cg_keyed(buf, "oom_kill");
        }
    } else if (hg_cg.wdir_v1[0][0] != '\0'
               && hg_cg_read(hg_cg.wdir_v1[0], "memory.oom_control", buf,
                             sizeof(buf)) > 0)
    {
        return hg_cg_keyed(buf, "oom_kill");
    }
    return 0;
}

/* Write one limit: FILE (v2) or V1FILE (v1) gets VALUE ("max" / "-1"
 * forms already chosen by the caller). */
static int
hg_cg_limit(size_t i, const char *file, const char *value,
            const char *v1file, const char *v1value, bool set, char *err,
            size_t errlen)
{
    const char *dir;

    if (hg_cg.v2_limits & (1u << i)) {
        if (hg_cg.wdir[0] != '\0'
            && hg_cg_writef(hg_cg.wdir, file, value) == HG_OK)
        {
            return HG_OK;
        }
        snprintf(err, errlen, "limits: cannot write %s to %s/%s: %s", value,
                 hg_cg.wdir, file, strerror(errno));
        return HG_ERROR;
    }
    if (!(hg_cg.v1_limits & (1u << i))) {
        return HG_OK;                   /* warned about at start */
    }
    if (!set && hg_cg.wdir_v1[i][0] == '\0') {
        return HG_OK;                   /* never limited: nothing to undo */
    }
    dir = hg_cg_worker_v1(i);
    if (dir == NULL || hg_cg_writef(dir, v1file, v1value) != HG_OK) {
        snprintf(err, errlen, "limits: cannot write %s to %s/%s: %s",
                 v1value, dir ? dir : hg_cg.group_v1[i], v1file,
                 strerror(errno));
        return HG_ERROR;
    }
    if (set) {
        hg_cg.join_fds[hg_cg.njoin++] = hg_cg.v1_procs_fd[i];
    }
    return HG_OK;
}

int
hg_cgroup_worker_prepare(const hg_limits_t *limits, char *err,
                         size_t errlen)
{
    static const hg_limits_t none = { 0, 0.0, 0 };
    char v[64], v1[64];
    bool changed;

    if (limits == NULL) {
        limits = &none;
    }
    hg_cg.njoin = 0;
    changed = limits->memory != hg_cg.applied.memory;
    if (changed || limits->memory > 0) {
        if (limits->memory > 0) {
            snprintf(v, sizeof(v), "%" PRIu64, limits->memory);
        } else {
            snprintf(v, sizeof(v), "max");
        }
        snprintf(v1, sizeof(v1), "%s", limits->memory > 0 ? v : "-1");
        if ((changed || !(hg_cg.v2_limits & HG_LIMIT_MEMORY))
            && hg_cg_limit(0, "memory.max", v, "memory.limit_in_bytes", v1,
                           limits->memory > 0, err, errlen) != HG_OK)
        {
            return HG_ERROR;
        }
        if (changed && (hg_cg.v2_limits & HG_LIMIT_MEMORY)) {
            /* Without this a limited job swaps instead of being killed. */
            (void) hg_cg_writef(hg_cg.wdir, "memory.swap.max",
                                limits->memory > 0 ? "0" : "max");
        }
    }
    changed = limits->cpu != hg_cg.applied.cpu;
    if (changed || limits->cpu > 0) {
        long quota = (long) (limits->cpu * HG_CG_PERIOD_US + 0.5);
        if (limits->cpu > 0) {
            snprintf(v, sizeof(v), "%ld %d", quota, HG_CG_PERIOD_US);
            snprintf(v1, sizeof(v1), "%ld", quota);
        } else {
            snprintf(v, sizeof(v), "max %d", HG_CG_PERIOD_US);
            snprintf(v1, sizeof(v1), "-1");
        }
        if ((changed || !(hg_cg.v2_limits & HG_LIMIT_CPU))
            && hg_cg_limit(1, "cpu.max", v, "cpu.cfs_quota_us", v1,
                           limits->cpu > 0, err, errlen) != HG_OK)
        {
            return HG_ERROR;
        }
    }
    changed = limits->tasks != hg_cg.applied.tasks;
    if (changed || limits->tasks > 0) {
        if (limits->tasks > 0) {
            snprintf(v, sizeof(v), "%d", limits->tasks);
        } else {
            snprintf(v, sizeof(v), "max");
        }
        if ((changed || !(hg_cg.v2_limits & HG_LIMIT_TASKS))
            && hg_cg_limit(2, "pids.max", v, "pids.max", v,
                           limits->tasks > 0, err, errlen) != HG_OK)
        {
            return HG_ERROR;
        }
    }
    hg_cg.applied = *limits;
    hg_cg.oom_watch = limits->memory > 0;
    if (hg_cg.oom_watch) {
        hg_cg.oom_base = hg_cg_oom_count();
    }
    return HG_OK;
}

bool
hg_cgroup_worker_oom(void)
{
    return hg_cg.oom_watch && hg_cg_oom_count() > hg_cg.oom_base;
}

void
hg_cgroup_worker_kill_now(void)
{
    char buf[4096];
    ssize_t n;
    long pid;
    int fd, i;

    if (hg_cg.kill_fd >= 0) {
        n = write(hg_cg.kill_fd, "1", 1);
        (void) n;
        return;
    }
    /* No cgroup: the worker's children (the job, and its orphans that
     * came back to this subreaper, each perhaps in a session of its own)
     * and their groups. A signal handler may call: open, read, kill. */
    fd = open(hg_cg.children_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    for (i = 0, pid = 0; i < n; i++) {
        if (buf[i] >= '0' && buf[i] <= '9') {
            pid = pid * 10 + (buf[i] - '0');
        } else if (pid > 0) {
            kill((pid_t) -pid, SIGKILL);
            kill((pid_t) pid, SIGKILL);
            pid = 0;
        }
    }
}

/* One pread: cgroup.events ("populated 0\nfrozen 0\n") comes whole, and
 * this runs after every execution. */
static bool
hg_cg_populated(void)
{
    char buf[256];
    ssize_t n;

    do {
        n = pread(hg_cg.events_fd, buf, sizeof(buf) - 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        return false;
    }
    buf[n] = '\0';
    return hg_cg_keyed(buf, "populated") != 0;
}

/* Count the lines of the execution cgroup's cgroup.procs. */
static int
hg_cg_count_procs(void)
{
    char buf[16384];
    int n = 0;
    char *p;

    if (hg_cg_read(hg_cg.wdir, "cgroup.procs", buf, sizeof(buf)) <= 0) {
        return 1;                   /* populated, whatever the count */
    }
    for (p = buf; *p != '\0'; p++) {
        n += *p == '\n';
    }
    return n > 0 ? n : 1;
}

static void
hg_cg_reap_zombies(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

/* Without a cgroup: kill the worker's children (the job's orphans,
 * reparented to it as a subreaper) a level at a time: when one dies its
 * own children come to the worker and are killed in the next round. */
static int
hg_cg_kill_children(void)
{
    int killed = 0, round, n;

    for (round = 0; round < HG_CG_REAP_ROUNDS; round++) {
        hg_cg_reap_zombies();
        n = hg_cg_kill_listed(hg_cg.children_path, NULL, true);
        if (n == 0) {
            break;
        }
        killed += n;
    }
    return killed;
}

/*
 * Empty the execution cgroup, which stays in use: frozen (nothing in it
 * can fork any more), its processes killed one by one until none is left,
 * thawed. Not cgroup.kill: on the kernel this was written on (6.18), every
 * child started with CLONE_INTO_CGROUP into a cgroup that cgroup.kill had
 * emptied before was killed at birth (observed: SIGKILL before exec; the
 * fork seems to compare the kill count of the parent's cgroup with the
 * target's), so a killed cgroup could never run a job again. cgroup.kill
 * remains for cgroups that are done with (a timeout, a stop, a dying
 * worker).
 */
static void
hg_cg_empty(void)
{
    struct pollfd pfd;
    int waited = 0;

    (void) hg_cg_writef(hg_cg.wdir, "cgroup.freeze", "1");
    pfd.fd = hg_cg.events_fd;
    pfd.events = POLLPRI;
    while (hg_cg_populated() && waited < HG_CG_EMPTY_WAIT_MS) {
        (void) hg_cg_kill_procs(hg_cg.wdir);
        /* cgroup.events signals POLLPRI when populated changes */
        (void) poll(&pfd, 1, 10);
        waited += 10;
    }
    (void) hg_cg_writef(hg_cg.wdir, "cgroup.freeze", "0");
    if (hg_cg_populated()) {
        hg_log(HG_LOG_ERROR, "cgroup %s does not empty; the worker exits "
               "and is replaced", hg_cg.wdir);
        hg_cgroup_worker_kill_now();
        kill(0, SIGKILL);
        _exit(HG_WORKER_EXIT_IO);
    }
}

int
hg_cgroup_worker_sweep(void)
{
    int n = 0;

    if (hg_cg.events_fd >= 0 && hg_cg_populated()) {
        n = hg_cg_count_procs();
        hg_cg_empty();
    }
    hg_cg_reap_zombies();
    if (hg_cg.events_fd < 0) {
        n += hg_cg_kill_children();
    }
    return n;
}

void
hg_cgroup_worker_exit(void)
{
    size_t i;

    (void) hg_cgroup_worker_sweep();
    hg_cg_close(&hg_cg.dir_fd);
    hg_cg_close(&hg_cg.kill_fd);
    hg_cg_close(&hg_cg.events_fd);
    if (hg_cg.wdir[0] != '\0') {
        (void) rmdir(hg_cg.wdir);
    }
    for (i = 0; i < HG_CG_NV1; i++) {
        hg_cg_close(&hg_cg.v1_procs_fd[i]);
        if (hg_cg.wdir_v1[i][0] != '\0') {
            (void) hg_cg_kill_procs(hg_cg.wdir_v1[i]);
            (void) rmdir(hg_cg.wdir_v1[i]);
        }
    }
}

/* --- module accessors -------------------------------------------------- */

HG_EXPORT int
hg_exec_cgroup_fd(const hg_exec_t *exec)
{
    HG_UNUSED(exec);
    return hg_cg.dir_fd;
}

HG_EXPORT size_t
hg_exec_cgroup_procs(const hg_exec_t *exec, const int **fds)
{
    HG_UNUSED(exec);
    *fds = hg_cg.join_fds;
    return hg_cg.njoin;
}
