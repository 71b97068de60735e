/*
 * hg_log.c owns the log target of the process and the format of a line.
 * JSON lines are built by jansson; text lines are `key=value` pairs whose
 * values are quoted when they hold spaces, quotes or control characters.
 * In a text line every control character of every part (process, event,
 * keys, values, message) is escaped: one event is one line, whatever a
 * module or a job put in its text. It never writes a raw control
 * character but the line's final newline.
 */

#include "hg_core.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "hg_log.h"
#include "hg_json.h"

#define HG_LOG_LINE_MAX     8192
#define HG_LOG_BUFFER_MAX   (256 * 1024)

typedef struct hg_log_s {
    int fd;
    bool owns_fd;
    char *file;
    hg_log_level_t level;
    hg_log_format_t format;
    const char *process;
    bool buffered;
    char *buffer;
    size_t used;
} hg_log_state_t;

static hg_log_state_t hg_log_state = {
    STDERR_FILENO, false, NULL, HG_LOG_INFO, HG_LOG_FORMAT_TEXT,
    "master", false, NULL, 0
};

/* Why the last hg_log_open or hg_log_reopen failed. */
static char hg_log_open_reason[PATH_MAX + 128];
/* The last error-level message of this process (what a daemon that fails
 * to start tells the process that started it). */
static char hg_log_last_error_text[512];

static const char *const hg_log_level_names[] = {
    "error", "warn", "info", "debug"
};

const char *
hg_log_level_name(hg_log_level_t level)
{
    if ((unsigned) level >= HG_NELEMS(hg_log_level_names)) {
        return "info";
    }
    return hg_log_level_names[level];
}

/*
 * The log holds job output and error text: created 0640, never reached
 * through a symbolic link (a link planted in a writable directory must not
 * make root append to the file it points at), and only a regular file or
 * a character device such as /dev/null. -1 with hg_log_open_reason set.
 */
static int
hg_log_open_fd(const char *file)
{
    struct stat st;
    int fd, saved;

    if (strcmp(file, "-") == 0) {
        return STDERR_FILENO;
    }
    /* O_NONBLOCK: opening a FIFO planted there must not hang the master */
    fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK
              | O_CLOEXEC, 0640);
    if (fd < 0) {
        saved = errno;
        if (saved == ELOOP && lstat(file, &st) == 0 && S_ISLNK(st.st_mode)) {
            snprintf(hg_log_open_reason, sizeof(hg_log_open_reason),
                     "log file %s is a symbolic link: hourglass does not "
                     "follow links there", file);
        } else {
            snprintf(hg_log_open_reason, sizeof(hg_log_open_reason),
                     "cannot open log file %s: %s", file, strerror(saved));
        }
        errno = saved;
        return -1;
    }
    if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode))
        || fcntl(fd, F_SETFL, O_APPEND) < 0)
    {
        snprintf(hg_log_open_reason, sizeof(hg_log_open_reason),
                 "log file %s is not a regular file", file);
        close(fd);
        errno = EINVAL;
        return -1;
    }
    return fd;
}

const char *
hg_log_open_error(void)
{
    return hg_log_open_reason;
}

const char *
hg_log_last_error(void)
{
    return hg_log_last_error_text;
}

int
hg_log_open(const char *file, hg_log_level_t level, hg_log_format_t format)
{
    int fd;
    char *copy;

    copy = strdup(file);
    if (copy == NULL) {
        return HG_ERROR;
    }
    fd = hg_log_open_fd(file);
    if (fd < 0) {
        free(copy);
        return HG_ERROR;
    }
    hg_log_flush();
    if (hg_log_state.owns_fd) {
        close(hg_log_state.fd);
    }
    free(hg_log_state.file);
    hg_log_state.fd = fd;
    hg_log_state.owns_fd = (fd != STDERR_FILENO);
    hg_log_state.file = copy;
    hg_log_state.level = level;
    hg_log_state.format = format;
    return HG_OK;
}

int
hg_log_reopen(void)
{
    int fd;

    if (hg_log_state.file == NULL || !hg_log_state.owns_fd) {
        return HG_OK;
    }
    fd = hg_log_open_fd(hg_log_state.file);
    if (fd < 0) {
        return HG_ERROR;
    }
    hg_log_flush();
    close(hg_log_state.fd);
    hg_log_state.fd = fd;
    return HG_OK;
}

void
hg_log_close(void)
{
    hg_log_flush();
    if (hg_log_state.owns_fd) {
        close(hg_log_state.fd);
    }
    free(hg_log_state.file);
    free(hg_log_state.buffer);
    hg_log_state.fd = STDERR_FILENO;
    hg_log_state.owns_fd = false;
    hg_log_state.file = NULL;
    hg_log_state.buffer = NULL;
    hg_log_state.used = 0;
    hg_log_state.buffered = false;
}

void
hg_log_set_process(const char *name)
{
    hg_log_state.process = name;
}

int
hg_log_fd(void)
{
    return hg_log_state.fd;
}

void
hg_log_use_fd(int fd)
{
    hg_log_state.fd = fd;
    hg_log_state.owns_fd = (fd != STDERR_FILENO);
}

bool
hg_log_enabled(hg_log_level_t level)
{
    return level <= hg_log_state.level;
}

static void
hg_log_write_all(const char *data, size_t len)
{
    ssize_t n;

    while (len > 0) {
        n = write(hg_log_state.fd, data, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            /* Nowhere left to report a failing log; drop the line rather
             * than stall the scheduler. */
            return;
        }
        data += n;
        len -= (size_t) n;
    }
}

void
hg_log_set_buffered(bool buffered)
{
    if (!buffered) {
        hg_log_flush();
    }
    if (buffered && hg_log_state.buffer == NULL) {
        hg_log_state.buffer = malloc(HG_LOG_BUFFER_MAX);
        if (hg_log_state.buffer == NULL) {
            return;
        }
    }
    hg_log_state.buffered = buffered;
}

void
hg_log_flush(void)
{
    if (hg_log_state.used > 0) {
        hg_log_write_all(hg_log_state.buffer, hg_log_state.used);
        hg_log_state.used = 0;
    }
}

static void
hg_log_emit(const char *line, size_t len)
{
    if (!hg_log_state.buffered) {
        hg_log_write_all(line, len);
        return;
    }
    if (hg_log_state.used + len > HG_LOG_BUFFER_MAX) {
        hg_log_flush();
    }
    if (len > HG_LOG_BUFFER_MAX) {
        hg_log_write_all(line, len);
        return;
    }
    memcpy(hg_log_state.buffer + hg_log_state.used, line, len);
    hg_log_state.used += len;
}

void
hg_format_utc_ms(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t) (ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    /* The modulos tell the compiler the fields' widths. */
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100,
             tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
             tm.tm_sec % 100, (int) (((ms % 1000) + 1000) % 1000));
}

static void
hg_log_timestamp(char *buf, size_t len)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    hg_format_utc_ms((int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000, buf,
                     len);
}

/* Appends to a fixed line buffer, silently truncating: a log line is never
 * worth an allocation failure. */
typedef struct {
    char *buf;
    size_t len;
    size_t cap;
} hg_log_line_t;

static void
hg_log_append(hg_log_line_t *line, const char *fmt, ...) HG_PRINTF(2, 3);

static void
hg_log_append(hg_log_line_t *line, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (line->len >= line->cap) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(line->buf + line->len, line->cap - line->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    line->len += (size_t) n;
    if (line->len >= line->cap) {
        line->len = line->cap - 1;
    }
}

static bool
hg_log_is_control(unsigned char c)
{
    return c < ' ' || c == 0x7f;
}

static bool
hg_log_needs_quotes(const char *s)
{
    if (*s == '\0') {
        return true;
    }
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char) *s;
        if (c == ' ' || hg_log_is_control(c) || c == '"' || c == '='
            || c == '\\')
        {
            return true;
        }
    }
    return false;
}

/* Appends S with every control character written as an escape (\n, \r,
 * \t, or \xNN: ESC is \x1b, DEL \x7f), so that no text from a job, a
 * module or a configuration file can end a line or start a forged one.
 * In a quoted value `"` and `\` are escaped too. */
static void
hg_log_append_escaped(hg_log_line_t *line, const char *s, bool quoted)
{
    for (; *s != '\0' && line->len + 4 < line->cap; s++) {
        unsigned char c = (unsigned char) *s;
        if (quoted && (c == '"' || c == '\\')) {
            hg_log_append(line, "\\%c", c);
        } else if (c == '\n') {
            hg_log_append(line, "\\n");
        } else if (c == '\r') {
            hg_log_append(line, "\\r");
        } else if (c == '\t') {
            hg_log_append(line, "\\t");
        } else if (hg_log_is_control(c)) {
            hg_log_append(line, "\\x%02x", c);
        } else {
            line->buf[line->len++] = (char) c;
            line->buf[line->len] = '\0';
        }
    }
}

static void
hg_log_append_value(hg_log_line_t *line, const char *s)
{
    if (!hg_log_needs_quotes(s)) {
        hg_log_append(line, "%s", s);
        return;
    }
    hg_log_append(line, "\"");
    hg_log_append_escaped(line, s, true);
    hg_log_append(line, "\"");
}

static void
hg_log_text(hg_log_level_t level, const char *event, const char *job_id,
            const char *exec_id, const hg_log_field_t *fields,
            size_t nfields, const char *message)
{
    char buf[HG_LOG_LINE_MAX], ts[40];
    hg_log_line_t line = { buf, 0, sizeof(buf) - 1 };
    size_t i;

    hg_log_timestamp(ts, sizeof(ts));
    hg_log_append(&line, "%s [%s] ", ts, hg_log_level_name(level));
    hg_log_append_escaped(&line, hg_log_state.process, false);
    hg_log_append(&line, " %d:", (int) getpid());
    if (event != NULL) {
        hg_log_append(&line, " event=");
        hg_log_append_value(&line, event);
    }
    if (job_id != NULL) {
        hg_log_append(&line, " job=");
        hg_log_append_value(&line, job_id);
    }
    if (exec_id != NULL) {
        hg_log_append(&line, " exec=");
        hg_log_append_value(&line, exec_id);
    }
    for (i = 0; i < nfields; i++) {
        hg_log_append(&line, " ");
        hg_log_append_escaped(&line, fields[i].key, false);
        hg_log_append(&line, "=");
        switch (fields[i].type) {
        case HG_LOG_FIELD_STRING:
            hg_log_append_value(&line, fields[i].s ? fields[i].s : "");
            break;
        case HG_LOG_FIELD_INT:
            hg_log_append(&line, "%" PRId64, fields[i].i);
            break;
        case HG_LOG_FIELD_REAL:
            hg_log_append(&line, "%.3f", fields[i].r);
            break;
        }
    }
    if (message != NULL && *message != '\0') {
        hg_log_append(&line, " ");
        hg_log_append_escaped(&line, message, false);
    }
    buf[line.len++] = '\n';
    hg_log_emit(buf, line.len);
}

static void
hg_log_json(hg_log_level_t level, const char *event, const char *job_id,
            const char *exec_id, const hg_log_field_t *fields,
            size_t nfields, const char *message)
{
    char ts[40];
    json_t *obj;
    char *text;
    size_t i, len;

    obj = json_object();
    if (obj == NULL) {
        return;
    }
    hg_log_timestamp(ts, sizeof(ts));
    json_object_set_new(obj, "time", json_string(ts));
    json_object_set_new(obj, "level", json_string(hg_log_level_name(level)));
    json_object_set_new(obj, "process", json_string(hg_log_state.process));
    json_object_set_new(obj, "pid", json_integer(getpid()));
    if (event != NULL) {
        json_object_set_new(obj, "event", json_string(event));
    }
    if (job_id != NULL) {
        json_object_set_new(obj, "job", json_string(job_id));
    }
    if (exec_id != NULL) {
        json_object_set_new(obj, "exec", json_string(exec_id));
    }
    for (i = 0; i < nfields; i++) {
        json_t *v = NULL;
        switch (fields[i].type) {
        case HG_LOG_FIELD_STRING:
            v = json_string(fields[i].s ? fields[i].s : "");
            break;
        case HG_LOG_FIELD_INT:
            v = json_integer(fields[i].i);
            break;
        case HG_LOG_FIELD_REAL:
            v = json_real(fields[i].r);
            break;
        }
        json_object_set_new(obj, fields[i].key, v);
    }
    if (message != NULL && *message != '\0') {
        json_object_set_new(obj, "message", json_string(message));
    }
    text = hg_json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (text == NULL) {
        return;
    }
    len = strlen(text);
    text[len] = '\n';    /* hg_json_dumps leaves room: overwrite the NUL */
    hg_log_emit(text, len + 1);
    free(text);
}

static void
hg_log_vevent(hg_log_level_t level, const char *event, const char *job_id,
              const char *exec_id, const hg_log_field_t *fields,
              size_t nfields, const char *fmt, va_list ap) HG_PRINTF(7, 0);

static void
hg_log_vevent(hg_log_level_t level, const char *event, const char *job_id,
              const char *exec_id, const hg_log_field_t *fields,
              size_t nfields, const char *fmt, va_list ap)
{
    char message[HG_LOG_LINE_MAX / 2];

    if (!hg_log_enabled(level)) {
        return;
    }
    message[0] = '\0';
    if (fmt != NULL) {
        vsnprintf(message, sizeof(message), fmt, ap);
    }
    if (level == HG_LOG_ERROR) {
        /* Cut to the buffer on purpose; the precision says so, which
         * gcc's truncation warning (-O0) needs to see. */
        snprintf(hg_log_last_error_text, sizeof(hg_log_last_error_text),
                 "%.*s", (int) sizeof(hg_log_last_error_text) - 1,
                 message[0] != '\0' ? message
                                     : (event != NULL ? event : ""));
    }
    if (hg_log_state.format == HG_LOG_FORMAT_JSON) {
        hg_log_json(level, event, job_id, exec_id, fields, nfields, message);
    } else {
        hg_log_text(level, event, job_id, exec_id, fields, nfields, message);
    }
}

void
hg_log(hg_log_level_t level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    hg_log_vevent(level, NULL, NULL, NULL, NULL, 0, fmt, ap);
    va_end(ap);
}

void
hg_log_event(hg_log_level_t level, const char *event, const char *job_id,
             const char *exec_id, const hg_log_field_t *fields,
             size_t nfields, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    hg_log_vevent(level, event, job_id, exec_id, fields, nfields, fmt, ap);
    va_end(ap);
}
