/*
 * Test module "echo": a well-behaved module whose every outcome a test can
 * choose from the job definition.
 *   message     text written to the output when there is no payload
 *   exit        0 OK, 1 FAIL, 2 RETRY, 3 FATAL (default 0)
 *   retry_after with exit = 2: retry after this many ms (or a duration)
 *   sleep_ms    sleep this long first, checking hg_exec_cancelled
 *   append      a file to which "EXECUTION_ID ATTEMPT\n" is appended first
 *               (O_APPEND, one write: the list of what really started)
 *   metric      a custom metric reported with the execution: its name,
 *               with the attempt number as its value
 * It writes the payload (or `message`) to the output, and is the reference
 * for the cooperative side of cancellation: it returns promptly once
 * cancelled.
 */

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hourglass/module.h>

/* How often a sleeping execution checks for cancellation. */
#define ECHO_TICK_MS  10

static const char *const echo_keys[] = {
    "message", "exit", "retry_after", "sleep_ms", "append", "metric", NULL
};

static int
echo_err(char *err, size_t errlen, const char *text)
{
    (void) snprintf(err, errlen, "%s", text);
    return -1;
}

static int
echo_validate(const json_t *job, char *err, size_t errlen)
{
    const json_t *v;
    int64_t ms;

    v = json_object_get(job, "message");
    if (v != NULL && !json_is_string(v)) {
        return echo_err(err, errlen, "message: must be a string");
    }
    v = json_object_get(job, "exit");
    if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 0
                      || json_integer_value(v) > 3))
    {
        return echo_err(err, errlen, "exit: must be 0 (ok), 1 (fail), "
                        "2 (retry) or 3 (fatal)");
    }
    v = json_object_get(job, "retry_after");
    if (v != NULL
        && !(json_is_integer(v) && json_integer_value(v) >= 0)
        && !(json_is_string(v)
             && hg_parse_duration(json_string_value(v), &ms) == 0))
    {
        return echo_err(err, errlen, "retry_after: must be milliseconds "
                        "or a duration");
    }
    v = json_object_get(job, "sleep_ms");
    if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 0)) {
        return echo_err(err, errlen,
                        "sleep_ms: must be a non-negative integer");
    }
    v = json_object_get(job, "append");
    if (v != NULL && !json_is_string(v)) {
        return echo_err(err, errlen, "append: must be a file name");
    }
    return 0;
}

/* Sleep ms, a tick at a time; 1 when cancelled before the end. */
static int
echo_sleep(hg_exec_t *exec, int64_t ms)
{
    struct timespec tick;
    int64_t step;

    while (ms > 0) {
        if (hg_exec_cancelled(exec)) {
            return 1;
        }
        step = ms < ECHO_TICK_MS ? ms : ECHO_TICK_MS;
        tick.tv_sec = 0;
        tick.tv_nsec = (long) (step * 1000000);
        /* an early wake (EINTR) only makes this tick shorter */
        (void) nanosleep(&tick, NULL);
        ms -= step;
    }
    return hg_exec_cancelled(exec) ? 1 : 0;
}

static int
echo_append(hg_exec_t *exec, const char *file)
{
    char line[128];
    int fd, len, rc = -1;

    len = snprintf(line, sizeof(line), "%s %u\n", hg_exec_id(exec),
                   hg_exec_attempt(exec));
    fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        return -1;
    }
    if (len > 0 && len < (int) sizeof(line)
        && write(fd, line, (size_t) len) == (ssize_t) len)
    {
        rc = 0;
    }
    if (close(fd) != 0) {
        rc = -1;
    }
    return rc;
}

static hg_result_t
echo_execute(hg_exec_t *exec)
{
    const json_t *job, *v;
    const void *payload;
    const char *message;
    size_t len;
    int64_t ms;

    job = hg_exec_job(exec);
    v = json_object_get(job, "append");
    if (json_is_string(v) && echo_append(exec, json_string_value(v)) != 0) {
        hg_exec_set_error(exec, "echo: cannot append to the file");
        return HG_FAIL;
    }
    v = json_object_get(job, "sleep_ms");
    if (json_is_integer(v) && echo_sleep(exec, json_integer_value(v))) {
        hg_exec_set_error(exec, "cancelled");
        return HG_FAIL;
    }

    v = json_object_get(job, "metric");
    if (json_is_string(v)) {
        hg_exec_metric(exec, json_string_value(v),
                       (double) hg_exec_attempt(exec));
    }

    payload = hg_exec_payload(exec, &len);
    if (payload != NULL) {
        (void) hg_exec_output(exec, payload, len);
    } else {
        message = json_string_value(json_object_get(job, "message"));
        if (message != NULL) {
            (void) hg_exec_output(exec, message, strlen(message));
        }
    }

    v = json_object_get(job, "exit");
    switch (json_is_integer(v) ? json_integer_value(v) : 0) {
    case 0:
        return HG_OK;
    case 1:
        hg_exec_set_error(exec, "echo: asked to fail");
        return HG_FAIL;
    case 2:
        v = json_object_get(job, "retry_after");
        if (json_is_integer(v)) {
            hg_exec_retry_after(exec, json_integer_value(v));
        } else if (json_is_string(v)
                   && hg_parse_duration(json_string_value(v), &ms) == 0)
        {
            hg_exec_retry_after(exec, ms);
        }
        hg_exec_set_error(exec, "echo: asked to retry");
        return HG_RETRY;
    default:
        hg_exec_set_error(exec, "echo: asked to fail for good");
        return HG_FATAL;
    }
}

HG_EXPORT const hg_module_t hg_module =
    HG_MODULE_V1_KEYS("echo", echo_keys, NULL, echo_validate, echo_execute,
                      NULL);
