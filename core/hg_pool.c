/*
 * hg_pool.c: worker processes seen from the master. Never blocks: pipes
 * are nonblocking on the master's side, reaping uses WNOHANG (except at
 * shutdown, after SIGKILL, where the wait is bounded by the kill). Killing
 * a worker kills its execution cgroup too (hg_cgroup.c); a worker found
 * stopped (WUNTRACED) is killed and replaced, since it would hold its
 * execution forever.
 */

#include "hg_core.h"

#include <fcntl.h>
#include <sys/wait.h>

#include "hg_cgroup.h"
#include "hg_log.h"
#include "hg_pool.h"

#include <limits.h>
#include "hg_timer.h"
#include "hg_worker.h"

static const char *const hg_worker_state_names[] = {
    "starting", "idle", "busy", "gone"
};

const char *
hg_worker_state_name(hg_worker_state_t state)
{
    return hg_worker_state_names[state];
}

void
hg_pool_init(hg_pool_t *pool, hg_event_loop_t *loop,
             const hg_pool_callbacks_t *cb, void *data)
{
    memset(pool, 0, sizeof(*pool));
    pool->loop = loop;
    pool->cb = *cb;
    pool->data = data;
    pool->generation = 1;
}

static void
hg_pool_close_to(hg_worker_t *w)
{
    if (w->to_fd >= 0) {
        hg_event_del(&w->out_ev);
        close(w->to_fd);
        w->to_fd = -1;
    }
}

static void
hg_pool_close_from(hg_worker_t *w)
{
    if (w->from_fd >= 0) {
        hg_event_del(&w->in_ev);
        close(w->from_fd);
        w->from_fd = -1;
    }
}

void
hg_pool_kill(hg_worker_t *w, hg_kill_reason_t reason, int signo)
{
    if (w->kill_reason == HG_KILL_NONE) {
        w->kill_reason = reason;
    }
    /* The group first: the job's own processes must not survive it. The
     * pid as well, in case the worker has not yet made its group. */
    kill(-w->pid, signo);
    kill(w->pid, signo);
    /* and what left the group (setsid) but not the cgroup */
    if (signo == SIGKILL) {
        hg_cgroup_kill_worker(w->pid);
    }
    w->state = HG_WORKER_GONE;
}

void
hg_pool_retire(hg_worker_t *w)
{
    w->retiring = true;
    if (w->state == HG_WORKER_IDLE || w->state == HG_WORKER_STARTING) {
        /* EOF on its input makes the worker finalise and exit 0. */
        hg_pool_close_to(w);
        w->state = HG_WORKER_GONE;
    }
}

static void
hg_pool_on_writable(hg_event_t *ev, uint32_t events)
{
    hg_worker_t *w = ev->data;
    int rc;

    HG_UNUSED(events);
    rc = hg_ipc_write_some(w->to_fd, &w->out);
    if (rc == HG_OK) {
        hg_event_del(&w->out_ev);
    } else if (rc == HG_ERROR) {
        /* The worker is gone; SIGCHLD will tell what became of it. */
        hg_pool_close_to(w);
    }
}

int
hg_pool_reserve(hg_worker_t *w, void *current)
{
    if (w->state != HG_WORKER_IDLE || w->to_fd < 0) {
        return HG_ERROR;
    }
    w->state = HG_WORKER_BUSY;
    w->current = current;
    return HG_OK;
}

/* Writes what w->out holds; the rest when the pipe is writable. */
static int
hg_pool_flush(hg_worker_t *w)
{
    int rc = hg_ipc_write_some(w->to_fd, &w->out);

    if (rc == HG_AGAIN && !w->out_ev.active
        && hg_event_add(w->pool->loop, &w->out_ev, w->to_fd, EPOLLOUT,
                        hg_pool_on_writable, w) != HG_OK)
    {
        rc = HG_ERROR;
    }
    return rc;
}

void
hg_pool_reply(hg_worker_t *w)
{
    if (w->to_fd < 0) {
        w->out.start = w->out.len = 0;
        return;
    }
    if (hg_pool_flush(w) == HG_ERROR) {
        /* The worker is dying: its death tells the rest. */
        w->out.start = w->out.len = 0;
        hg_pool_close_to(w);
    }
}

int
hg_pool_send(hg_worker_t *w, void *current)
{
    int rc;

    if (w->to_fd < 0
        || !(w->state == HG_WORKER_IDLE
             || (w->state == HG_WORKER_BUSY && w->current == current)))
    {
        return HG_ERROR;
    }
    rc = hg_pool_flush(w);
    if (rc == HG_ERROR) {
        /* The worker is gone (EPIPE) or unusable: the caller keeps the
         * execution and gives it to another worker. */
        w->out.start = w->out.len = 0;
        hg_pool_close_to(w);
        w->state = HG_WORKER_GONE;
        w->current = NULL;
        return HG_ERROR;
    }
    w->state = HG_WORKER_BUSY;
    w->current = current;
    return HG_OK;
}

/* What a worker has not read of its input, read back out of its pipe:
 * the bytes, and where its last two DISPATCH frames lie in them. WHOLE
 * when they are complete frames only (a frame larger than PIPE_BUF may
 * have been read in part: then nothing is taken). */
typedef struct hg_pool_unread_s {
    hg_ipc_reader_t bytes;
    size_t dispatches;              /* complete DISPATCH frames */
    size_t at[2], len[2];           /* [1] the last, [0] the one before */
    bool whole;
} hg_pool_unread_t;

static void
hg_pool_read_back(hg_worker_t *w, hg_pool_unread_t *u)
{
    const uint8_t *base, *frame_data;
    hg_ipc_frame_t frame;
    char err[128];
    size_t frame_len;
    ssize_t n;
    int rc;

    memset(u, 0, sizeof(*u));
    hg_ipc_reader_init(&u->bytes);
    do {
        n = hg_ipc_read(&u->bytes, w->back_fd);
    } while (n > 0);
    u->whole = true;
    base = u->bytes.in.data;
    while ((rc = hg_ipc_next(&u->bytes, &frame, err, sizeof(err))) == 1) {
        if (frame.type != HG_IPC_DISPATCH) {
            continue;
        }
        hg_ipc_reader_last(&u->bytes, &frame_data, &frame_len);
        u->at[0] = u->at[1];
        u->len[0] = u->len[1];
        u->at[1] = (size_t) (frame_data - base);
        u->len[1] = frame_len;
        u->dispatches++;
    }
    u->whole = rc == 0 && u->bytes.consumed == 0
               && u->bytes.in.start == u->bytes.in.len;
}

/* Put back what was read out of the worker's pipe, but the frame at
 * [SKIP, SKIP + SKIP_LEN) (SKIP_LEN 0: none), ahead of whatever w->out
 * still holds: the worker reads the same bytes in the same order. */
static void
hg_pool_put_back(hg_worker_t *w, hg_pool_unread_t *u, size_t skip,
                 size_t skip_len)
{
    hg_ipc_buf_t out;
    const uint8_t *data = u->bytes.in.data;
    size_t len = u->bytes.in.len;

    hg_ipc_buf_init(&out);
    if (len > skip_len || w->out.start < w->out.len) {
        hg_ipc_reader_t joined;

        hg_ipc_reader_init(&joined);
        if (hg_ipc_reader_feed(&joined, data, skip) != HG_OK
            || hg_ipc_reader_feed(&joined, data + skip + skip_len,
                                  len - skip - skip_len) != HG_OK
            || hg_ipc_reader_feed(&joined, w->out.data + w->out.start,
                                  w->out.len - w->out.start) != HG_OK)
        {
            /* The worker would read a stream with a hole: it must go. */
            hg_ipc_reader_free(&joined);
            hg_pool_kill(w, HG_KILL_PROTOCOL, SIGKILL);
            goto done;
        }
        out = joined.in;
    }
    hg_ipc_buf_free(&w->out);
    w->out = out;
    if (w->out.start < w->out.len && w->to_fd >= 0
        && hg_pool_flush(w) == HG_ERROR)
    {
        w->out.start = w->out.len = 0;
        hg_pool_close_to(w);
    }

done:
    hg_ipc_reader_free(&u->bytes);
}

int
hg_pool_hand(hg_worker_t *w, void *next)
{
    if (w->state != HG_WORKER_BUSY || w->handed != NULL || w->retiring
        || w->to_fd < 0 || w->back_fd < 0 || w->out.start != w->out.len)
    {
        return HG_ERROR;
    }
    w->handed = next;
    w->handed_sent = false;
    return HG_OK;
}

int
hg_pool_send_ahead(hg_worker_t *w, void *next)
{
    if (w->to_fd < 0 || w->state != HG_WORKER_BUSY || w->handed != next
        || w->out.len - w->out.start > PIPE_BUF
        || hg_pool_flush(w) != HG_OK)
    {
        /* Too large to be taken back whole, or the pipe is broken (the
         * worker's death tells what became of the current execution). */
        w->out.start = w->out.len = 0;
        w->handed = NULL;
        return HG_ERROR;
    }
    w->handed_sent = true;
    return HG_OK;
}

bool
hg_pool_take_back(hg_worker_t *w, void *next)
{
    hg_pool_unread_t u;

    if (w->handed != next) {
        return false;
    }
    if (!w->handed_sent) {
        w->handed = NULL;
        return true;
    }
    hg_pool_read_back(w, &u);
    if (!u.whole || u.dispatches == 0) {
        /* The worker has read it (or a frame cannot be told apart). */
        hg_pool_put_back(w, &u, 0, 0);
        return false;
    }
    /* Sent last, it is the last dispatch frame in the pipe. */
    hg_pool_put_back(w, &u, u.at[1], u.len[1]);
    w->handed = NULL;
    w->handed_sent = false;
    return true;
}

/* A dying worker: the executions whose frames it never read are given
 * back (the handed one, then the current one if it never got to it). */
static void *
hg_pool_give_back_unread(hg_worker_t *w)
{
    hg_pool_t *pool = w->pool;
    hg_pool_unread_t u;
    void *current = w->current, *handed = w->handed;
    size_t unread = 0;

    if (w->back_fd >= 0) {
        hg_pool_read_back(w, &u);
        unread = u.whole ? u.dispatches : 0;
        hg_ipc_reader_free(&u.bytes);
    }
    w->handed = NULL;
    if (handed != NULL) {
        /* Unread, or read by a worker that died before it reported the
         * execution it is queued behind: never started either way. */
        if (w->handed_sent && unread > 0) {
            unread--;
        }
        if (pool->cb.returned != NULL) {
            pool->cb.returned(w, handed);
        }
    }
    if (current != NULL && unread > 0 && pool->cb.returned != NULL) {
        w->current = NULL;
        pool->cb.returned(w, current);
        return NULL;
    }
    return current;
}

static void
hg_pool_frame(hg_worker_t *w, const hg_ipc_frame_t *frame)
{
    hg_pool_t *pool = w->pool;

    switch (frame->type) {
    case HG_IPC_READY:
        if (hg_ipc_field(frame, HG_IPC_F_INIT_ERROR) != NULL) {
            char *why = hg_ipc_get_strdup(frame, HG_IPC_F_INIT_ERROR);
            hg_log(HG_LOG_ERROR, "worker %d cannot start: %s", (int) w->pid,
                   why ? why : "module init failed");
            free(why);
            w->state = HG_WORKER_GONE;    /* it exits; never dispatch */
            return;
        }
        if (w->state == HG_WORKER_STARTING) {
            w->state = HG_WORKER_IDLE;
        }
        pool->cb.ready(w);
        break;
    case HG_IPC_RESULT:
        if (w->state == HG_WORKER_GONE && w->kill_reason != HG_KILL_NONE) {
            /* It finished just as it was being killed: its death, not this
             * result, is what gets recorded. */
            return;
        }
        if (w->state != HG_WORKER_BUSY) {
            hg_log(HG_LOG_ERROR, "worker %d sent a result while not running "
                   "anything; replacing it", (int) w->pid);
            hg_pool_kill(w, HG_KILL_PROTOCOL, SIGKILL);
            return;
        }
    {
        void *current = w->current;
        w->current = w->handed;
        w->handed = NULL;
        w->handed_sent = false;
        if (w->current == NULL) {
            w->state = HG_WORKER_IDLE;
        }
        pool->cb.result(w, current, frame);
        break;
    }
    case HG_IPC_STORE_TASK:
        if (w->state == HG_WORKER_GONE && w->kill_reason != HG_KILL_NONE) {
            return;                     /* nobody will read the answer */
        }
        if (w->state != HG_WORKER_BUSY || pool->cb.request == NULL) {
            hg_log(HG_LOG_ERROR, "worker %d asked for a store task while "
                   "not running anything; replacing it", (int) w->pid);
            hg_pool_kill(w, HG_KILL_PROTOCOL, SIGKILL);
            return;
        }
        pool->cb.request(w, w->current, frame);
        return;
    default:
        hg_log(HG_LOG_ERROR, "worker %d sent a frame of type %u, which "
               "workers do not send; replacing it", (int) w->pid,
               (unsigned) frame->type);
        hg_pool_kill(w, HG_KILL_PROTOCOL, SIGKILL);
        return;
    }
    if (w->retiring && w->state == HG_WORKER_IDLE) {
        hg_pool_retire(w);
    }
}

static void
hg_pool_on_readable(hg_event_t *ev, uint32_t events)
{
    hg_worker_t *w = ev->data;
    hg_ipc_frame_t frame;
    char err[256];
    ssize_t n;
    int rc;

    HG_UNUSED(events);
    for (;;) {
        n = hg_ipc_read(&w->reader, w->from_fd);
        if (n == HG_AGAIN) {
            return;
        }
        if (n <= 0) {
            /* EOF or a broken pipe: the worker is ending; its exit status
             * arrives with SIGCHLD. Nothing more is sent to it meanwhile. */
            hg_pool_close_from(w);
            if (w->state == HG_WORKER_IDLE || w->state == HG_WORKER_STARTING) {
                w->state = HG_WORKER_GONE;
            }
            return;
        }
        while ((rc = hg_ipc_next(&w->reader, &frame, err, sizeof(err))) == 1)
        {
            hg_pool_frame(w, &frame);
            if (w->from_fd < 0 || w->kill_reason == HG_KILL_PROTOCOL) {
                return;
            }
        }
        if (rc < 0) {
            hg_log(HG_LOG_ERROR, "worker %d sent a malformed frame (%s); "
                   "killing and replacing it", (int) w->pid, err);
            hg_pool_kill(w, HG_KILL_PROTOCOL, SIGKILL);
            hg_pool_close_from(w);
            return;
        }
    }
}

static int
hg_pool_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        return HG_ERROR;
    }
    return HG_OK;
}

/* The worker's end of its input pipe, opened again through /proc: a
 * description of its own, so that O_NONBLOCK here leaves the worker's
 * reads blocking. */
static int
hg_pool_open_back(int fd)
{
    char path[64];
    int back;

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    back = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (back < 0) {
        hg_log(HG_LOG_DEBUG, "cannot open %s (%s): executions are not "
               "handed ahead to this worker", path, strerror(errno));
    }
    return back;
}

hg_worker_t *
hg_pool_spawn(hg_pool_t *pool, hg_modules_t *mods, const char *prefix)
{
    int to[2] = { -1, -1 }, from[2] = { -1, -1 };
    hg_worker_t *w;
    pid_t pid, master = getpid();

    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return NULL;
    }
    w->back_fd = -1;
    if (pipe2(to, O_CLOEXEC) < 0 || pipe2(from, O_CLOEXEC) < 0) {
        hg_log(HG_LOG_ERROR, "cannot create a worker's pipes: %s",
               strerror(errno));
        goto failed;
    }
    /* Lines still in the master's buffer would otherwise be written twice,
     * once by each process. */
    hg_log_flush();
    pid = fork();
    if (pid < 0) {
        hg_log(HG_LOG_ERROR, "cannot fork a worker: %s", strerror(errno));
        goto failed;
    }
    if (pid == 0) {
        close(to[1]);
        close(from[0]);
        hg_worker_main(mods, prefix, master, to[0], from[1]);
    }
    /* Both sides set the group, so it exists whichever runs first. */
    if (setpgid(pid, pid) < 0 && errno != EACCES && errno != ESRCH) {
        hg_log(HG_LOG_WARN, "setpgid(%d): %s", (int) pid, strerror(errno));
    }
    w->back_fd = hg_pool_open_back(to[0]);
    close(to[0]);
    close(from[1]);
    w->pid = pid;
    w->to_fd = to[1];
    w->from_fd = from[0];
    w->generation = pool->generation;
    w->state = HG_WORKER_STARTING;
    w->spawned_ns = hg_clock_ns(CLOCK_MONOTONIC);
    w->pool = pool;
    hg_ipc_reader_init(&w->reader);
    hg_ipc_buf_init(&w->out);
    if (hg_pool_nonblock(w->to_fd) != HG_OK
        || hg_pool_nonblock(w->from_fd) != HG_OK
        || hg_event_add(pool->loop, &w->in_ev, w->from_fd, EPOLLIN,
                        hg_pool_on_readable, w) != HG_OK)
    {
        hg_log(HG_LOG_ERROR, "cannot watch worker %d: %s", (int) pid,
               strerror(errno));
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        /* Keep it in the list so that it is reaped like any other. */
        w->state = HG_WORKER_GONE;
        w->kill_reason = HG_KILL_RETIRE;
    }
    w->next = pool->head;
    if (pool->head != NULL) {
        pool->head->prev = w;
    }
    pool->head = w;
    return w->state == HG_WORKER_GONE ? NULL : w;

failed:
    if (to[0] >= 0) {
        close(to[0]);
        close(to[1]);
    }
    if (from[0] >= 0) {
        close(from[0]);
        close(from[1]);
    }
    free(w);
    return NULL;
}

hg_worker_t *
hg_pool_find(hg_pool_t *pool, pid_t pid)
{
    hg_worker_t *w;

    for (w = pool->head; w != NULL; w = w->next) {
        if (w->pid == pid) {
            return w;
        }
    }
    return NULL;
}

static void
hg_pool_unlink(hg_pool_t *pool, hg_worker_t *w)
{
    if (w->prev != NULL) {
        w->prev->next = w->next;
    } else {
        pool->head = w->next;
    }
    if (w->next != NULL) {
        w->next->prev = w->prev;
    }
    w->prev = w->next = NULL;
}

static void
hg_pool_bury(hg_pool_t *pool, hg_worker_t *w, int status,
             const struct rusage *usage)
{
    void *current;

    /* A result may still sit in the pipe: a worker that finished its job
     * and exited must not have the job recorded as crashed. Its input is
     * closed first so that the result's handler gives it nothing new (not
     * marked retiring: the master tells a retired worker from a dead one
     * by that). */
    hg_pool_close_to(w);
    if (w->from_fd >= 0) {
        hg_pool_on_readable(&w->in_ev, EPOLLIN);
    }
    hg_pool_close_from(w);
    hg_pool_unlink(pool, w);
    /* Whatever the worker started dies with it, however it died: a job's
     * grandchild (sh -c forks its command) would otherwise live on as an
     * orphan in the dead worker's group. A group id is not reused while
     * the group has members, so this reaches only them. */
    kill(-w->pid, SIGKILL);
    hg_cgroup_forget_worker(w->pid);
    w->state = HG_WORKER_GONE;
    current = hg_pool_give_back_unread(w);
    w->current = NULL;
    if (w->back_fd >= 0) {
        close(w->back_fd);
        w->back_fd = -1;
    }
    pool->cb.gone(w, current, status, usage);
    w->next = pool->dead;
    pool->dead = w;
}

void
hg_pool_reap(hg_pool_t *pool)
{
    struct rusage usage;
    hg_worker_t *w;
    int status;
    pid_t pid;

    for (;;) {
        pid = wait4(-1, &status, WNOHANG | WUNTRACED, &usage);
        if (pid < 0 && errno == EINTR) {
            continue;
        }
        if (pid <= 0) {
            return;
        }
        w = hg_pool_find(pool, pid);
        if (w != NULL && WIFSTOPPED(status)) {
            /* Its death comes next, through this same loop. */
            hg_log(HG_LOG_WARN, "worker %d was stopped by signal %d; "
                   "killing and replacing it", (int) pid, WSTOPSIG(status));
            hg_pool_kill(w, HG_KILL_STOPPED, SIGKILL);
        } else if (w != NULL) {
            hg_pool_bury(pool, w, status, &usage);
        } else if (WIFSTOPPED(status)) {
            /* Another child (a cycle reader) stopped: its owner's time
             * bound ends it; only its end is reported. */
            continue;
        } else if (pool->cb.other != NULL) {
            pool->cb.other(pool, pid, status);
        }
    }
}

void
hg_pool_collect(hg_pool_t *pool)
{
    hg_cgroup_sweep();
    while (pool->dead != NULL) {
        hg_worker_t *w = pool->dead;
        pool->dead = w->next;
        hg_ipc_reader_free(&w->reader);
        hg_ipc_buf_free(&w->out);
        free(w);
    }
}

void
hg_pool_kill_all(hg_pool_t *pool, int signo)
{
    struct rusage usage;
    hg_worker_t *w;
    int status;
    pid_t pid;

    while (pool->head != NULL) {
        /* Again each time: a callback may have forked a replacement. */
        for (w = pool->head; w != NULL; w = w->next) {
            if (w->kill_reason == HG_KILL_NONE
                || w->kill_reason == HG_KILL_RETIRE)
            {
                hg_pool_kill(w, HG_KILL_STOP, signo);
            }
        }
        pid = wait4(-1, &status, 0, &usage);
        if (pid < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        w = hg_pool_find(pool, pid);
        if (w != NULL) {
            hg_pool_bury(pool, w, status, &usage);
        }
    }
    /* Not freed here: called from a handler (SIGTERM, the shutdown
     * timeout), the loop's turn may still hold epoll's reports of these
     * workers' pipes; hg_pool_collect frees them after the turn. */
}

size_t
hg_pool_live(const hg_pool_t *pool)
{
    const hg_worker_t *w;
    size_t n = 0;

    for (w = pool->head; w != NULL; w = w->next) {
        n++;
    }
    return n;
}
