/*
 * hg_worker.c: the worker process. Its I/O with the master is blocking and
 * simple on purpose: it has nothing else to do while it waits. Everything
 * the master sends is checked before use; a malformed frame ends the worker
 * (the master replaces it) rather than running half a job.
 *
 * It never touches the store: it was forked from a master that has the
 * store open, and no SQLite call may be made in such a process (see
 * hg_store.h). A module's store task is asked of the master
 * (hg_worker_store_task).
 *
 * It is a child subreaper and owns its execution cgroup (hg_cgroup.c):
 * whatever an execution leaves behind is killed before its result goes,
 * and nothing it started outlives the worker, however the worker ends.
 */

#include "hg_core.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "hg_cgroup.h"
#include "hg_exec.h"
#include "hg_ipc.h"
#include "hg_log.h"
#include "hg_maintenance.h"
#include "hg_msg.h"
#include "hg_process.h"
#include "hg_units.h"
#include "hg_uuid.h"
#include "hg_worker.h"
#include "hg_json.h"

typedef struct hg_worker_state_s {
    hg_modules_t *mods;
    hg_ipc_reader_t reader;
    hg_ipc_buf_t out;
    /* The job definition of the previous dispatch, parsed: a job that runs
     * again (the common case) is not parsed again. */
    char *last_def;
    json_t *last_job;
    const char *exec_id;            /* the execution running, or NULL */
    /* Frames that came while a store task's answer was awaited (an
     * execution handed ahead): read before the pipe once it is done. */
    hg_ipc_reader_t held;
    /* What this process and its reaped children had used when last read
     * (getrusage), and what modules reported since of children they
     * reaped themselves (hg_exec_set_usage): one getrusage an execution,
     * two when a module forks without reporting. */
    struct rusage self_base;
    struct rusage children_base;
    int64_t reported_user_ms;
    int64_t reported_sys_ms;
} hg_worker_state_t;

/* This process's worker, for hg_worker_store_task (a host service, called
 * by a module with no handle to pass). NULL outside a worker. */
static hg_worker_state_t *hg_worker_self;

/* SIGUSR1 from the master: reopen the log file before the next dispatch
 * (after rotation, as the master does). */
static volatile sig_atomic_t hg_worker_reopen_log;

static void
hg_worker_on_usr1(int signo)
{
    HG_UNUSED(signo);
    hg_worker_reopen_log = 1;
}

/* SIGTERM (sent by the kernel when the master dies, or by the master on a
 * fast stop) takes the execution's cgroup and the whole process group
 * down: the worker and whatever its job started, a job's process that
 * left the group (setsid) included. */
static void
hg_worker_on_term(int signo)
{
    HG_UNUSED(signo);
    hg_cgroup_worker_kill_now();
    kill(0, SIGKILL);
    _exit(HG_WORKER_EXIT_MASTER);
}

static void
hg_worker_signals(void)
{
    struct sigaction sa;
    sigset_t all;
    int signo;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (signo = 1; signo < NSIG; signo++) {
        if (signo != SIGKILL && signo != SIGSTOP) {
            sigaction(signo, &sa, NULL);
        }
    }
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sa.sa_handler = hg_worker_on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = hg_worker_on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
}

static void
hg_worker_close_from(int first)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned) first, ~0U, 0) == 0) {
        return;
    }
#endif
    {
        long max = sysconf(_SC_OPEN_MAX);
        int fd;
        if (max < 0 || max > 65536) {
            max = 65536;
        }
        for (fd = first; fd < max; fd++) {
            close(fd);
        }
    }
}

/* Put the pipes and the log on fixed descriptors and close every other
 * descriptor inherited from the master (epoll, timerfds, other workers'
 * pipes, listening sockets). */
static int
hg_worker_descriptors(int in_fd, int out_fd)
{
    int log_fd = hg_log_fd(), tmp_in, tmp_out, tmp_log = -1;

    tmp_in = fcntl(in_fd, F_DUPFD_CLOEXEC, 100);
    tmp_out = fcntl(out_fd, F_DUPFD_CLOEXEC, 100);
    if (log_fd != STDERR_FILENO) {
        tmp_log = fcntl(log_fd, F_DUPFD_CLOEXEC, 100);
    }
    if (tmp_in < 0 || tmp_out < 0 || (log_fd != STDERR_FILENO && tmp_log < 0)) {
        return HG_ERROR;
    }
    if (dup2(tmp_in, HG_WORKER_IN_FD) < 0
        || dup2(tmp_out, HG_WORKER_OUT_FD) < 0
        || (tmp_log >= 0 && dup2(tmp_log, HG_WORKER_LOG_FD) < 0))
    {
        return HG_ERROR;
    }
    if (tmp_log >= 0) {
        hg_log_use_fd(HG_WORKER_LOG_FD);
    }
    hg_worker_close_from(tmp_log >= 0 ? HG_WORKER_LOG_FD + 1
                                      : HG_WORKER_OUT_FD + 1);
    /* Job processes must not inherit the pipes to the master. */
    fcntl(HG_WORKER_IN_FD, F_SETFD, FD_CLOEXEC);
    fcntl(HG_WORKER_OUT_FD, F_SETFD, FD_CLOEXEC);
    if (tmp_log >= 0) {
        fcntl(HG_WORKER_LOG_FD, F_SETFD, FD_CLOEXEC);
    }
    return HG_OK;
}

static void
hg_worker_send(hg_worker_state_t *w)
{
    if (hg_ipc_write_all(HG_WORKER_OUT_FD, &w->out) != HG_OK) {
        /* The master is gone or its pipe broke: nobody to work for. */
        hg_cgroup_worker_exit();
        _exit(HG_WORKER_EXIT_IO);
    }
}

static void
hg_worker_ready(hg_worker_state_t *w, const char *init_error)
{
    hg_ipc_begin(&w->out, HG_IPC_READY);
    hg_ipc_put_i32(&w->out, HG_IPC_F_PID, (int32_t) getpid());
    if (init_error != NULL) {
        hg_ipc_put_str(&w->out, HG_IPC_F_INIT_ERROR, init_error);
    }
    if (hg_ipc_end(&w->out) != HG_OK) {
        _exit(HG_WORKER_EXIT_IO);
    }
    hg_worker_send(w);
}

static int64_t
hg_worker_tv_ms(const struct timeval *tv)
{
    return (int64_t) tv->tv_sec * 1000 + tv->tv_usec / 1000;
}


/* The job definition as JSON, parsed at most once per distinct text. */
static json_t *
hg_worker_job(hg_worker_state_t *w, const uint8_t *def, size_t len)
{
    json_error_t jerr;
    json_t *job;
    char *text;

    if (w->last_def != NULL && strlen(w->last_def) == len
        && memcmp(w->last_def, def, len) == 0)
    {
        return w->last_job;
    }
    job = json_loadb((const char *) def, len, 0, &jerr);
    if (!json_is_object(job)) {
        json_decref(job);
        return NULL;
    }
    text = malloc(len + 1);
    if (text == NULL) {
        json_decref(job);
        return NULL;
    }
    memcpy(text, def, len);
    text[len] = '\0';
    free(w->last_def);
    json_decref(w->last_job);
    w->last_def = text;
    w->last_job = job;
    return job;
}

static hg_result_t
hg_worker_run(hg_worker_state_t *w, hg_exec_t *exec, const char *type)
{
    const hg_module_ref_t *ref = hg_modules_find(w->mods, type);
    hg_result_t rc;

    if (ref == NULL) {
        hg_exec_set_error(exec, "no module serves type \"%s\" in this "
                          "worker", type);
        return HG_FATAL;
    }
    rc = ref->module->execute(exec);
    if (rc != HG_OK && rc != HG_FAIL && rc != HG_RETRY && rc != HG_FATAL) {
        hg_exec_set_error(exec, "module \"%s\" returned %d, which is not a "
                          "result code", type, (int) rc);
        rc = HG_FAIL;
    }
    return rc;
}

/*
 * hg_host_t.store_task: the store's maintenance, done by the master's
 * store side. This process never touches the store: it was forked from a
 * master that has it open, and SQLite state does not survive a fork (see
 * hg_store.h). It asks over its pipe and blocks until the answer comes
 * (the execution's timeout still applies: the master kills the worker).
 */
int
hg_worker_store_task(const char *task, json_t **report, char *err,
                     size_t errlen)
{
    hg_worker_state_t *w = hg_worker_self;
    hg_ipc_reader_t reader;
    hg_ipc_frame_t frame;
    const uint8_t *data;
    char why[256];
    size_t len;
    ssize_t n;
    int rc;

    *report = NULL;
    if (w == NULL || w->exec_id == NULL) {
        snprintf(err, errlen, "%s: store tasks are asked by a worker that "
                 "runs an execution", task);
        return -1;
    }
    if (hg_maintenance_ask(&w->out, w->exec_id, task) != HG_OK) {
        snprintf(err, errlen, "%s: cannot build the request", task);
        return -1;
    }
    hg_worker_send(w);
    /* A reader of its own: the dispatch frame's fields, which the module
     * may still use, point into the main reader's buffer. Besides the
     * answer, only the next execution (handed ahead) may come meanwhile. */
    hg_ipc_reader_init(&reader);
    for (;;) {
        rc = hg_ipc_next(&reader, &frame, why, sizeof(why));
        if (rc == 1 && frame.type == HG_IPC_DISPATCH) {
            /* The next execution, handed ahead: it waits its turn. */
            hg_ipc_reader_last(&reader, &data, &len);
            if (hg_ipc_reader_feed(&w->held, data, len) != HG_OK) {
                _exit(HG_WORKER_EXIT_IO);
            }
            continue;
        }
        if (rc == 1) {
            if (frame.type != HG_IPC_STORE_REPLY) {
                hg_log(HG_LOG_ERROR, "frame type %u from the master while "
                       "waiting for a store task's answer; exiting",
                       (unsigned) frame.type);
                _exit(HG_WORKER_EXIT_PROTOCOL);
            }
            rc = hg_maintenance_answer(&frame, report, err, errlen);
            hg_ipc_reader_rest(&reader, &data, &len);
            if (hg_ipc_reader_feed(&w->held, data, len) != HG_OK) {
                _exit(HG_WORKER_EXIT_IO);
            }
            hg_ipc_reader_free(&reader);
            return rc == HG_OK ? 0 : -1;
        }
        if (rc < 0) {
            hg_log(HG_LOG_ERROR, "malformed frame from the master (%s); "
                   "exiting", why);
            _exit(HG_WORKER_EXIT_PROTOCOL);
        }
        n = hg_ipc_read(&reader, HG_WORKER_IN_FD);
        if (n <= 0 && n != HG_AGAIN) {
            _exit(n == 0 ? HG_WORKER_EXIT_MASTER : HG_WORKER_EXIT_IO);
        }
    }
}


/* After the module returned: an execution killed by its memory limit is
 * recorded so; whatever processes it left behind are killed (the whole
 * cgroup, as systemd's KillMode=control-group), and the record says how
 * many, after the module's own error if any: "left 2 processes behind,
 * killed". Its result stands: leftovers are cleaned, not a failure. */
static hg_result_t
hg_worker_contain(hg_exec_t *exec, hg_result_t rc, const hg_limits_t *limits)
{
    char size[32];
    int left;

    left = hg_cgroup_worker_sweep();
    if (hg_cgroup_worker_oom()) {
        hg_exec_set_signal(exec, SIGKILL);
        hg_exec_set_error(exec, "killed by its memory limit (%s)",
                          hg_format_size(limits->memory, size,
                                         sizeof(size)));
        rc = rc == HG_FATAL ? rc : HG_FAIL;
    }
    if (left > 0) {
        hg_exec_set_error(exec, "%s%sleft %d process%s behind, killed",
                          exec->error ? exec->error : "",
                          exec->error ? "; " : "", left,
                          left == 1 ? "" : "es");
    }
    return rc;
}

/* Frames held while a store task's answer was awaited go before whatever
 * the pipe has next (the last frame's fields are no longer in use). */
static void
hg_worker_take_held(hg_worker_state_t *w)
{
    const uint8_t *data;
    size_t len;

    hg_ipc_reader_rest(&w->held, &data, &len);
    if (len == 0) {
        return;
    }
    if (hg_ipc_reader_feed(&w->reader, data, len) != HG_OK) {
        _exit(HG_WORKER_EXIT_IO);
    }
    hg_ipc_reader_free(&w->held);
    hg_ipc_reader_init(&w->held);
}

/* Rounding to milliseconds on both sides may leave -1. */
static int64_t
hg_worker_clamp0(int64_t ms)
{
    return ms < 0 ? 0 : ms;
}

/*
 * The execution's CPU time and peak memory, from what this process used
 * since the last reading (the work between two executions counts for the
 * next) and what the job's processes used. A module that reaped them
 * itself says what (hg_exec_set_usage): that, and no more reading. Else
 * the children reaped since the last reading, less those modules reported
 * meanwhile; their peak memory then is the largest any child of this
 * worker ever had, so it is given only when larger than the worker's own.
 */
static void
hg_worker_usage_of(hg_worker_state_t *w, const hg_exec_t *exec,
                   hg_msg_result_t *r)
{
    struct rusage self, children;
    const struct rusage *base;

    getrusage(RUSAGE_SELF, &self);
    r->cpu_user_ms = hg_worker_tv_ms(&self.ru_utime)
                     - hg_worker_tv_ms(&w->self_base.ru_utime);
    r->cpu_sys_ms = hg_worker_tv_ms(&self.ru_stime)
                    - hg_worker_tv_ms(&w->self_base.ru_stime);
    w->self_base = self;
    if (exec->has_usage) {
        r->cpu_user_ms += hg_worker_tv_ms(&exec->usage.ru_utime);
        r->cpu_sys_ms += hg_worker_tv_ms(&exec->usage.ru_stime);
        r->max_rss_kb = exec->usage.ru_maxrss;
        w->reported_user_ms += hg_worker_tv_ms(&exec->usage.ru_utime);
        w->reported_sys_ms += hg_worker_tv_ms(&exec->usage.ru_stime);
        return;
    }
    getrusage(RUSAGE_CHILDREN, &children);
    /* children the modules reported are not this execution's */
    base = &w->children_base;
    r->cpu_user_ms += hg_worker_clamp0(hg_worker_tv_ms(&children.ru_utime)
                                       - hg_worker_tv_ms(&base->ru_utime)
                                       - w->reported_user_ms);
    r->cpu_sys_ms += hg_worker_clamp0(hg_worker_tv_ms(&children.ru_stime)
                                      - hg_worker_tv_ms(&base->ru_stime)
                                      - w->reported_sys_ms);
    w->children_base = children;
    w->reported_user_ms = w->reported_sys_ms = 0;
    r->max_rss_kb = children.ru_maxrss > self.ru_maxrss ? children.ru_maxrss
                                                        : self.ru_maxrss;
}

static void
hg_worker_dispatch(hg_worker_state_t *w, const hg_ipc_frame_t *frame)
{
    hg_exec_t exec;
    hg_msg_dispatch_t d;
    hg_msg_result_t r;
    int64_t started, finished;
    hg_result_t rc;
    char *metrics = NULL, err[256];

    hg_exec_init(&exec);
    if (hg_msg_get_dispatch(frame, &d, err, sizeof(err)) != HG_OK) {
        hg_log(HG_LOG_ERROR, "dispatch frame from the master: %s; exiting "
               "so that the master replaces this worker", err);
        _exit(HG_WORKER_EXIT_PROTOCOL);
    }
    exec.id = d.exec_id;
    exec.job_id = d.job_id;
    exec.trigger = d.trigger;
    exec.traceparent = d.traceparent;
    exec.attempt = d.attempt;
    exec.scheduled_for = d.scheduled_for_ms;
    exec.payload = d.payload;
    exec.payload_len = d.payload_len;
    exec.job = hg_worker_job(w, d.job_def, d.job_def_len);
    if (d.output_limit >= 0) {
        exec.output_limit = (size_t) d.output_limit;
    }

    w->exec_id = d.exec_id;
    started = hg_exec_now_ms();
    exec.deadline = d.timeout_ms > 0 ? started + d.timeout_ms : 0;
    if (exec.job == NULL) {
        hg_exec_set_error(&exec, "job definition is not a JSON object");
        rc = HG_FATAL;
    } else if (hg_cgroup_worker_prepare(&d.limits, err, sizeof(err))
               != HG_OK)
    {
        hg_exec_set_error(&exec, "%s", err);
        rc = HG_FAIL;
    } else {
        rc = hg_worker_run(w, &exec, d.type);
        rc = hg_worker_contain(&exec, rc, &d.limits);
    }
    finished = hg_exec_now_ms();
    w->exec_id = NULL;

    memset(&r, 0, sizeof(r));
    r.exec_id = d.exec_id;
    r.result = (uint32_t) rc;
    r.has_exit_code = exec.has_exit_code;
    r.exit_code = exec.exit_code;
    r.signo = exec.signo;
    r.output = (const uint8_t *) exec.output;
    r.output_len = exec.output_len;
    r.truncated = exec.truncated;
    r.error = exec.error;
    r.retry_after_ms = exec.retry_after_ms;
    if (exec.metrics != NULL) {
        metrics = hg_json_dumps(exec.metrics, JSON_COMPACT);
        r.metrics = metrics;
    }
    r.has_times = true;
    r.started_ms = started;
    r.finished_ms = finished;
    r.deadline_passed = exec.deadline > 0 && finished >= exec.deadline;
    hg_worker_usage_of(w, &exec, &r);
    if (hg_msg_put_result(&w->out, &r) != HG_OK) {
        /* Too large or out of memory: report the execution without its
         * output rather than not at all. */
        hg_msg_result_t small;

        memset(&small, 0, sizeof(small));
        small.exec_id = d.exec_id;
        small.result = HG_FAIL;
        small.error = "result too large to send";
        small.retry_after_ms = -1;
        small.has_times = true;
        small.started_ms = started;
        small.finished_ms = finished;
        small.max_rss_kb = -1;
        if (hg_msg_put_result(&w->out, &small) != HG_OK) {
            _exit(HG_WORKER_EXIT_IO);
        }
    }
    hg_worker_send(w);

    free(metrics);
    hg_msg_dispatch_free(&d);
    hg_exec_reset(&exec);
}

void
hg_worker_main(hg_modules_t *mods, const char *prefix, pid_t master,
               int in_fd, int out_fd)
{
    hg_worker_state_t w;
    hg_conf_errors_t errors;
    hg_ipc_frame_t frame;
    char err[256];
    ssize_t n;
    int rc;

    memset(&w, 0, sizeof(w));
    w.mods = mods;
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    hg_worker_signals();
    hg_process_short_slice();       /* why: hg_process.c */
    if (getppid() != master) {
        _exit(HG_WORKER_EXIT_MASTER);     /* the master died before prctl */
    }
    hg_log_set_buffered(false);
    hg_log_set_process("worker");
    if (hg_worker_descriptors(in_fd, out_fd) != HG_OK) {
        hg_log(HG_LOG_ERROR, "worker cannot set up its descriptors: %s",
               strerror(errno));
        _exit(HG_WORKER_EXIT_IO);
    }
    hg_cgroup_worker_init();
    hg_random_reseed();
    hg_worker_self = &w;
    hg_ipc_reader_init(&w.reader);
    hg_ipc_reader_init(&w.held);
    getrusage(RUSAGE_SELF, &w.self_base);
    getrusage(RUSAGE_CHILDREN, &w.children_base);
    hg_ipc_buf_init(&w.out);

    memset(&errors, 0, sizeof(errors));
    if (hg_modules_init(mods, HG_PROCESS_WORKER, prefix, &errors)
        != HG_OK)
    {
        hg_worker_ready(&w, errors.count > 0 ? errors.items[0].message
                                             : "module init failed");
        _exit(HG_WORKER_EXIT_INIT);
    }
    hg_conf_errors_free(&errors);
    hg_worker_ready(&w, NULL);

    for (;;) {
        if (hg_worker_reopen_log) {
            hg_worker_reopen_log = 0;
            if (hg_log_reopen() != HG_OK) {
                hg_log(HG_LOG_ERROR, "worker cannot reopen the log file: %s",
                       strerror(errno));
            }
        }
        hg_worker_take_held(&w);
        rc = hg_ipc_next(&w.reader, &frame, err, sizeof(err));
        if (rc == 1) {
            if (frame.type != HG_IPC_DISPATCH) {
                hg_log(HG_LOG_ERROR, "unexpected frame type %u from the "
                       "master; exiting", (unsigned) frame.type);
                _exit(HG_WORKER_EXIT_PROTOCOL);
            }
            hg_worker_dispatch(&w, &frame);
            continue;
        }
        if (rc < 0) {
            hg_log(HG_LOG_ERROR, "malformed frame from the master (%s); "
                   "exiting", err);
            _exit(HG_WORKER_EXIT_PROTOCOL);
        }
        n = hg_ipc_read(&w.reader, HG_WORKER_IN_FD);
        if (n == 0) {
            break;                        /* the master closed the pipe */
        }
        if (n < 0) {
            _exit(HG_WORKER_EXIT_IO);
        }
    }
    /* The master closed the pipe: it retires this worker, or it died
     * (kill -9) and nothing else will clean up after the job. */
    hg_cgroup_worker_exit();
    hg_modules_fini(mods);
    _exit(HG_WORKER_EXIT_OK);
}
