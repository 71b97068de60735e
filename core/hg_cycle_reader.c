#include "hg_core.h"

/*
 * hg_cycle_reader.c: the cycle reader process and its parent's side.
 *
 * The parent's side never blocks (hg_cycle_load aside, which -t and the
 * start use on purpose, with the same time bound) and never runs module
 * code. The reader's side (hg_cycle_reader_main) is a fresh process: it
 * may do anything a configuration asks, and only ever writes to its pipe
 * (fd 3) and its stage page (fd 4), then leaves with _exit.
 *
 * Input document (fd 5, when argv[4] is --input): {"api_jobs": [job
 * definitions]} adds the jobs defined through the API to the file's;
 * with "base" (the running cycle's hg_cycle_to_json), the file is not
 * read: the API jobs alone are checked against the configuration in
 * force (hg_cycle_create_from).
 *
 * Result document: {"result": "ok", "cycle": {...hg_cycle_to_json...}} or
 * {"result": "failed", "errors": [{"file", "line", "message"}, ...]}. A
 * reader that ends without a complete document has crashed, was killed,
 * or exited: its status says which, its stage page where.
 */

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "hg_cycle_reader.h"
#include "hg_timer.h"

#define HG_READER_RESULT_FD  3
#define HG_READER_STAGE_FD   4
#define HG_READER_INPUT_FD   5      /* with HG_READER_INPUT_ARG */
#define HG_READER_INPUT_ARG  "--input"
#define HG_READER_STAGE_SIZE 512
#define HG_READER_CHUNK      (64 * 1024)

static const char *hg_reader_exe = "/proc/self/exe";

void
hg_cycle_reader_set_exe(const char *path)
{
    hg_reader_exe = path;
}

/* --- the reader process ------------------------------------------------ */

typedef struct hg_reader_out_s {
    int fd;
    size_t len;
    char buf[HG_READER_CHUNK];
} hg_reader_out_t;

static int
hg_reader_flush(hg_reader_out_t *out)
{
    const char *p = out->buf;
    ssize_t n;

    while (out->len > 0) {
        n = write(out->fd, p, out->len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        out->len -= (size_t) n;
    }
    return 0;
}

/* jansson hands over a token at a time: a write each would be millions
 * of system calls for a large configuration. */
static int
hg_reader_write(const char *buffer, size_t size, void *data)
{
    hg_reader_out_t *out = data;
    size_t n;

    while (size > 0) {
        if (out->len == sizeof(out->buf) && hg_reader_flush(out) != 0) {
            return -1;
        }
        n = sizeof(out->buf) - out->len;
        n = n < size ? n : size;
        memcpy(out->buf + out->len, buffer, n);
        out->len += n;
        buffer += n;
        size -= n;
    }
    return 0;
}

static json_t *
hg_reader_errors(const hg_conf_errors_t *errors)
{
    json_t *a = json_array();
    size_t i;

    for (i = 0; a != NULL && i < errors->count; i++) {
        const hg_conf_error_t *e = &errors->items[i];
        json_t *o = json_pack("{s:s?,s:i,s:s}", "file", e->file,
                              "line", e->line, "message", e->message);
        if (o == NULL || json_array_append_new(a, o) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* The input document, from the start of its memfd. */
static json_t *
hg_reader_input(hg_conf_errors_t *errors, const char *file)
{
    json_error_t jerr;
    json_t *input;

    if (lseek(HG_READER_INPUT_FD, 0, SEEK_SET) != 0) {
        hg_conf_error_add(errors, file, 0, "cannot read the master's input:"
                          " %s", strerror(errno));
        return NULL;
    }
    input = json_loadfd(HG_READER_INPUT_FD, 0, &jerr);
    if (!json_is_object(input)) {
        hg_conf_error_add(errors, file, 0, "the master's input is not a "
                          "JSON object: %s", jerr.text);
        json_decref(input);
        return NULL;
    }
    return input;
}

/*
 * A cycle of API_JOBS alone, checked against the configuration in force
 * (BASE: hg_cycle_to_json of the running cycle, whose jobs are left out),
 * without reading the file: one job added or replaced through the API is
 * checked as a reload would check it, while an edit of the file that no
 * one reloaded yet stays out of it.
 */
static hg_cycle_t *
hg_reader_cycle_from(const json_t *base, const char *prefix,
                     const json_t *api_jobs, hg_conf_errors_t *errors)
{
    hg_conf_t *conf;

    hg_cycle_stage("reading the configuration in force");
    conf = hg_cycle_conf_from_json(base, prefix, errors);
    if (conf == NULL) {
        return NULL;
    }
    hg_conf_jobs_free(conf);
    hg_cycle_stage("reading the jobs defined through the API");
    (void) hg_conf_add_api_jobs(conf, api_jobs, errors);
    return hg_cycle_create_from_conf(conf, prefix, errors);
}

static hg_cycle_t *
hg_reader_cycle(int argc, char **argv, hg_conf_errors_t *errors)
{
    const json_t *base, *api_jobs;
    hg_cycle_t *cycle;
    json_t *input;

    if (argc < 5) {
        return hg_cycle_create(argv[2], argv[3], errors);
    }
    input = hg_reader_input(errors, argv[2]);
    if (input == NULL) {
        return NULL;
    }
    base = json_object_get(input, "base");
    api_jobs = json_object_get(input, "api_jobs");
    cycle = base != NULL
            ? hg_reader_cycle_from(base, argv[3], api_jobs, errors)
            : hg_cycle_create_with(argv[2], argv[3], api_jobs, errors);
    json_decref(input);
    return cycle;
}

int
hg_cycle_reader_main(int argc, char **argv)
{
    hg_conf_errors_t errors;
    hg_cycle_t *cycle;
    json_t *doc = NULL, *body;
    sigset_t none;
    static hg_reader_out_t out;
    char err[512];
    void *page;

    out.fd = HG_READER_RESULT_FD;
    if ((argc != 4 && (argc != 5 || strcmp(argv[4], HG_READER_INPUT_ARG)))
        || fcntl(out.fd, F_GETFD) < 0)
    {
        fprintf(stderr, "hourglass: %s is run by the master, not by hand\n",
                HG_CYCLE_READER_ARG);
        _exit(2);
    }
    /* The master blocks the signals it reads through a signalfd; a
     * reader takes them as any process does. */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    page = mmap(NULL, HG_READER_STAGE_SIZE, PROT_READ | PROT_WRITE,
                MAP_SHARED, HG_READER_STAGE_FD, 0);
    if (page != MAP_FAILED) {
        hg_cycle_stage_page(page, HG_READER_STAGE_SIZE);
    }
    close(HG_READER_STAGE_FD);

#if !defined(__GLIBC__) || !__GLIBC_PREREQ(2, 34)
    close_range(argc == 5 ? HG_READER_INPUT_FD + 1
                          : HG_READER_STAGE_FD + 1, ~0U, 0);
#endif
    memset(&errors, 0, sizeof(errors));
    cycle = hg_reader_cycle(argc, argv, &errors);
    hg_cycle_stage("handing the configuration to the master");
    if (cycle != NULL) {
        err[0] = '\0';
        body = hg_cycle_to_json(cycle, err, sizeof(err));
        if (body == NULL) {
            hg_conf_error_add(&errors, argv[2], 0, "%s", err);
        } else {
            doc = json_pack("{s:s,s:o}", "result", "ok", "cycle", body);
        }
    }
    if (doc == NULL) {
        if (errors.count == 0) {
            hg_conf_error_add(&errors, argv[2], 0, "out of memory");
        }
        doc = json_pack("{s:s,s:o*}", "result", "failed", "errors",
                        hg_reader_errors(&errors));
    }
    /* Nothing is freed or finalised: the process ends here, and a module's
     * fini is not worth a crash of its own. */
    if (doc == NULL
        || json_dump_callback(doc, hg_reader_write, &out, JSON_COMPACT) != 0
        || hg_reader_flush(&out) != 0)
    {
        _exit(1);
    }
    _exit(0);
}

/* --- the parent's side ------------------------------------------------- */

/* FD again, numbered 10 or more: out of the way of the reader's 3 and 4
 * whatever pipe2 and memfd_create gave. */
static int
hg_reader_high_fd(int fd)
{
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 10);

    close(fd);
    return high;
}

static int
hg_reader_spawn(hg_cycle_reader_t *r, char *const *argv, int result_fd,
                int stage_fd, int input_fd)
{
    extern char **environ;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, dflt;
    int rc;

    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE);
    /* The master blocks the signals it reads through a signalfd and
     * ignores SIGPIPE: a reader takes signals as any process does. */
    rc = posix_spawnattr_setsigmask(&attr, &none);
    if (rc == 0) {
        rc = posix_spawnattr_setsigdefault(&attr, &dflt);
    }
    if (rc == 0) {
        rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK
                                             | POSIX_SPAWN_SETSIGDEF);
    }
    if (rc == 0) {
        rc = posix_spawn_file_actions_adddup2(&fa, result_fd,
                                              HG_READER_RESULT_FD);
    }
    if (rc == 0) {
        rc = posix_spawn_file_actions_adddup2(&fa, stage_fd,
                                              HG_READER_STAGE_FD);
    }
    if (rc == 0 && input_fd >= 0) {
        rc = posix_spawn_file_actions_adddup2(&fa, input_fd,
                                              HG_READER_INPUT_FD);
    }
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
    /* Whatever the master holds without O_CLOEXEC (a worker's pipe, say)
     * is none of the reader's business, and would outlive a crash. */
    if (rc == 0) {
        rc = posix_spawn_file_actions_addclosefrom_np(&fa,
                 input_fd >= 0 ? HG_READER_INPUT_FD + 1
                               : HG_READER_STAGE_FD + 1);
    }
#endif
    if (rc == 0) {
        rc = posix_spawn(&r->pid, hg_reader_exe, &fa, &attr, argv, environ);
    }
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return rc;
}

/* INPUT in a memfd of its own, numbered high: -1 with the reason in err. */
static int
hg_reader_input_fd(const json_t *input, char *err, size_t errlen)
{
    int fd = memfd_create("hourglass-cycle-input", MFD_CLOEXEC);

    if (fd < 0) {
        snprintf(err, errlen, "cannot set up the configuration reader: "
                 "memfd_create: %s", strerror(errno));
        return -1;
    }
    if (json_dumpfd(input, fd, JSON_COMPACT) != 0) {
        snprintf(err, errlen, "cannot set up the configuration reader: "
                 "writing its input: %s", errno ? strerror(errno)
                                                : "out of memory");
        close(fd);
        return -1;
    }
    fd = hg_reader_high_fd(fd);
    if (fd < 0) {
        snprintf(err, errlen, "cannot set up the configuration reader: "
                 "fcntl: %s", strerror(errno));
    }
    return fd;
}

int
hg_cycle_reader_start(hg_cycle_reader_t *r, const char *file,
                      const char *prefix, const json_t *input,
                      int64_t timeout_ms, char *err, size_t errlen)
{
    char *argv[] = { "hourglass", HG_CYCLE_READER_ARG, (char *) file,
                     (char *) prefix,
                     input != NULL ? HG_READER_INPUT_ARG : NULL, NULL };
    int fds[2] = { -1, -1 }, stage_fd = -1, input_fd = -1, rc;
    void *page;

    memset(r, 0, sizeof(*r));
    r->fd = -1;
    r->timeout_ms = timeout_ms;
    r->file = strdup(file);
    stage_fd = memfd_create("hourglass-cycle-stage", MFD_CLOEXEC);
    if (r->file == NULL || stage_fd < 0
        || ftruncate(stage_fd, HG_READER_STAGE_SIZE) != 0)
    {
        snprintf(err, errlen, "cannot set up the configuration reader: %s",
                 r->file ? strerror(errno) : "out of memory");
        goto failed;
    }
    page = mmap(NULL, HG_READER_STAGE_SIZE, PROT_READ | PROT_WRITE,
                MAP_SHARED, stage_fd, 0);
    if (page == MAP_FAILED) {
        snprintf(err, errlen, "cannot set up the configuration reader: "
                 "mmap: %s", strerror(errno));
        goto failed;
    }
    r->stage = page;
    snprintf(r->stage, HG_READER_STAGE_SIZE, "starting");
    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "cannot set up the configuration reader: "
                 "pipe: %s", strerror(errno));
        goto failed;
    }
    fds[1] = hg_reader_high_fd(fds[1]);
    stage_fd = hg_reader_high_fd(stage_fd);
    if (fds[1] < 0 || stage_fd < 0) {
        snprintf(err, errlen, "cannot set up the configuration reader: "
                 "fcntl: %s", strerror(errno));
        goto failed;
    }
    if (input != NULL) {
        errno = 0;
        input_fd = hg_reader_input_fd(input, err, errlen);
        if (input_fd < 0) {
            goto failed;
        }
    }
    rc = hg_reader_spawn(r, argv, fds[1], stage_fd, input_fd);
    if (input_fd >= 0) {
        close(input_fd);
        input_fd = -1;
    }
    if (rc != 0) {
        r->pid = 0;
        snprintf(err, errlen, "cannot start the configuration reader %s: "
                 "%s", hg_reader_exe, strerror(rc));
        goto failed;
    }
    close(fds[1]);
    close(stage_fd);
    r->fd = fds[0];
    if (fcntl(r->fd, F_SETFL, O_NONBLOCK) != 0) {
        snprintf(err, errlen, "cannot set up the configuration reader: "
                 "fcntl: %s", strerror(errno));
        hg_cycle_reader_cleanup(r);
        return HG_ERROR;
    }
    return HG_OK;

failed:
    if (fds[0] >= 0) {
        close(fds[0]);
    }
    if (fds[1] >= 0) {
        close(fds[1]);
    }
    if (stage_fd >= 0) {
        close(stage_fd);
    }
    hg_cycle_reader_cleanup(r);
    return HG_ERROR;
}

int
hg_cycle_reader_read(hg_cycle_reader_t *r)
{
    ssize_t n;
    size_t cap;
    char *grown;

    while (!r->eof) {
        if (r->cap - r->len < HG_READER_CHUNK) {
            cap = r->cap ? r->cap * 2 : 4 * HG_READER_CHUNK;
            grown = realloc(r->buf, cap);
            if (grown == NULL) {
                r->nomem = true;
                return HG_ERROR;
            }
            r->buf = grown;
            r->cap = cap;
        }
        n = read(r->fd, r->buf + r->len, r->cap - r->len - 1);
        if (n > 0) {
            r->len += (size_t) n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return HG_AGAIN;
        }
        r->eof = true;                  /* EOF, or an error as good as */
    }
    return HG_OK;
}

bool
hg_cycle_reader_reaped(hg_cycle_reader_t *r, pid_t pid, int status)
{
    if (r->pid <= 0 || pid != r->pid || r->reaped) {
        return false;
    }
    r->status = status;
    r->reaped = true;
    return true;
}

bool
hg_cycle_reader_reap(hg_cycle_reader_t *r)
{
    pid_t pid;

    while (!r->reaped && r->pid > 0) {
        pid = waitpid(r->pid, &r->status, WNOHANG);
        if (pid < 0 && errno == EINTR) {
            continue;
        }
        if (pid == 0) {
            return false;
        }
        if (pid < 0) {
            r->status = 0;              /* ECHILD: gone, status unknown */
        }
        r->reaped = true;
    }
    return true;
}

void
hg_cycle_reader_kill(hg_cycle_reader_t *r)
{
    if (r->pid > 0 && !r->reaped && !r->killed) {
        kill(r->pid, SIGKILL);
        r->killed = true;
    }
}

int
hg_cycle_reader_end(hg_cycle_reader_t *r, hg_conf_errors_t *errors)
{
    char stage[HG_READER_STAGE_SIZE + 8];
    int st = r->status;

    snprintf(stage, sizeof(stage), "%.*s", HG_READER_STAGE_SIZE - 1,
             r->stage ? r->stage : "starting");
    if (r->nomem) {
        hg_conf_error_add(errors, r->file, 0, "out of memory keeping the "
                          "configuration reader's result");
    } else if (r->killed) {
        hg_conf_error_add(errors, r->file, 0, "configuration reader timed "
                          "out after %g s while %s", r->timeout_ms / 1000.0,
                          stage);
    } else if (WIFSIGNALED(st)) {
        hg_conf_error_add(errors, r->file, 0, "configuration reader killed "
                          "by signal %d (SIG%s) while %s", WTERMSIG(st),
                          sigabbrev_np(WTERMSIG(st))
                          ? sigabbrev_np(WTERMSIG(st)) : "?", stage);
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == 127 && r->len == 0) {
        hg_conf_error_add(errors, r->file, 0, "cannot run the configuration "
                          "reader %s", hg_reader_exe);
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || r->len == 0) {
        hg_conf_error_add(errors, r->file, 0, "configuration reader exited "
                          "with status %d and no result while %s",
                          WIFEXITED(st) ? WEXITSTATUS(st) : -1, stage);
    } else {
        return HG_OK;
    }
    return HG_ERROR;
}

void
hg_cycle_reader_cleanup(hg_cycle_reader_t *r)
{
    if (r->pid > 0 && !r->reaped) {
        hg_cycle_reader_kill(r);
        /* SIGKILL cannot be refused: this wait is short */
        while (waitpid(r->pid, &r->status, 0) < 0 && errno == EINTR) {
        }
        r->reaped = true;
    }
    if (r->fd >= 0) {
        close(r->fd);
    }
    if (r->stage != NULL) {
        munmap(r->stage, HG_READER_STAGE_SIZE);
    }
    free(r->file);
    free(r->buf);
    memset(r, 0, sizeof(*r));
    r->fd = -1;
}

/* --- the result -------------------------------------------------------- */

hg_cycle_t *
hg_cycle_reader_cycle(const char *text, size_t len, const char *file,
                      const char *prefix, hg_conf_errors_t *errors)
{
    json_error_t jerr;
    json_t *doc, *list, *e;
    const char *result;
    hg_cycle_t *cycle = NULL;
    size_t i;

    doc = json_loadb(text, len, 0, &jerr);
    result = json_string_value(json_object_get(doc, "result"));
    if (result == NULL) {
        hg_conf_error_add(errors, file, 0, "the configuration reader's "
                          "result cannot be read: %s", doc ? "no \"result\""
                          : jerr.text);
    } else if (strcmp(result, "ok") == 0) {
        cycle = hg_cycle_from_json(json_object_get(doc, "cycle"), prefix,
                                   errors);
    } else {
        list = json_object_get(doc, "errors");
        json_array_foreach(list, i, e) {
            const char *f = json_string_value(json_object_get(e, "file"));
            const char *m = json_string_value(json_object_get(e, "message"));
            hg_conf_error_add(errors, f, (int) json_integer_value(
                                  json_object_get(e, "line")),
                              "%s", m ? m : "?");
        }
        if (errors->count == 0) {
            hg_conf_error_add(errors, file, 0, "the configuration reader "
                              "failed without saying why");
        }
    }
    json_decref(doc);
    return cycle;
}

hg_cycle_t *
hg_cycle_load(const char *file, const char *prefix, int64_t timeout_ms,
              hg_conf_errors_t *errors)
{
    return hg_cycle_load_with(file, prefix, NULL, timeout_ms, errors);
}

hg_cycle_t *
hg_cycle_load_with(const char *file, const char *prefix,
                   const json_t *input, int64_t timeout_ms,
                   hg_conf_errors_t *errors)
{
    hg_cycle_reader_t r;
    hg_cycle_t *cycle;
    struct pollfd pfd;
    int64_t deadline, left;
    char err[512];

    if (hg_cycle_reader_start(&r, file, prefix, input, timeout_ms, err,
                              sizeof(err)) != HG_OK)
    {
        hg_conf_error_add(errors, file, 0, "%s", err);
        return NULL;
    }
    deadline = hg_clock_ns(CLOCK_MONOTONIC) + timeout_ms * HG_NSEC_PER_MSEC;
    while (!hg_cycle_reader_reap(&r)) {
        left = (deadline - hg_clock_ns(CLOCK_MONOTONIC)) / HG_NSEC_PER_MSEC;
        if (left <= 0) {
            hg_cycle_reader_kill(&r);
        }
        if (r.eof || r.killed) {
            /* ended or ending: its exit is a moment away */
            poll(NULL, 0, 5);
            continue;
        }
        pfd.fd = r.fd;
        pfd.events = POLLIN;
        if (poll(&pfd, 1, (int) (left < 1000 ? left + 1 : 1000)) > 0
            && hg_cycle_reader_read(&r) == HG_ERROR)
        {
            hg_cycle_reader_cleanup(&r);
            hg_conf_error_add(errors, file, 0, "out of memory");
            return NULL;
        }
    }
    if (!r.killed) {
        hg_cycle_reader_read(&r);       /* what came just before the end */
    }
    if (hg_cycle_reader_end(&r, errors) != HG_OK) {
        hg_cycle_reader_cleanup(&r);
        return NULL;
    }
    cycle = hg_cycle_reader_cycle(r.buf, r.len, file, prefix, errors);
    hg_cycle_reader_cleanup(&r);
    if (cycle != NULL && hg_cycle_open_modules(cycle, errors) != HG_OK) {
        hg_cycle_destroy(cycle);
        return NULL;
    }
    return cycle;
}
