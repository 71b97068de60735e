/*
 * hg_exec.c implements the execution handle accessors exported to modules.
 * Everything here runs in a worker, inside a module's execute: it must not
 * touch master state, and output beyond the limit is dropped, never grown.
 */

#include "hg_core.h"

#include "hg_exec.h"
#include "hg_log.h"

void
hg_exec_init(hg_exec_t *exec)
{
    memset(exec, 0, sizeof(*exec));
    exec->output_limit = HG_EXEC_DEFAULT_OUTPUT_LIMIT;
    exec->retry_after_ms = -1;
    exec->exit_code = -1;
}

void
hg_exec_reset(hg_exec_t *exec)
{
    free(exec->output);
    free(exec->error);
    json_decref(exec->metrics);
    hg_exec_init(exec);
}

int64_t
hg_exec_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * HG_MSEC_PER_SEC + ts.tv_nsec / HG_NSEC_PER_MSEC;
}

size_t
hg_exec_limit_from_job(const json_t *job)
{
    json_t *value;
    uint64_t bytes;

    value = json_object_get(job, "output_limit");
    if (json_is_integer(value) && json_integer_value(value) >= 0) {
        return (size_t) json_integer_value(value);
    }
    if (json_is_string(value)
        && hg_parse_size(json_string_value(value), &bytes) == HG_OK
        && bytes <= SIZE_MAX / 2)
    {
        return (size_t) bytes;
    }
    return HG_EXEC_DEFAULT_OUTPUT_LIMIT;
}

HG_EXPORT const json_t *
hg_exec_job(const hg_exec_t *exec)
{
    return exec->job;
}

HG_EXPORT const char *
hg_exec_job_id(const hg_exec_t *exec)
{
    return exec->job_id;
}

HG_EXPORT const char *
hg_exec_id(const hg_exec_t *exec)
{
    return exec->id;
}

HG_EXPORT const void *
hg_exec_payload(const hg_exec_t *exec, size_t *len)
{
    if (len != NULL) {
        *len = exec->payload_len;
    }
    return exec->payload_len > 0 ? exec->payload : NULL;
}

HG_EXPORT unsigned
hg_exec_attempt(const hg_exec_t *exec)
{
    return exec->attempt;
}

HG_EXPORT const char *
hg_exec_traceparent(const hg_exec_t *exec)
{
    return exec->traceparent;
}

HG_EXPORT const char *
hg_exec_trigger(const hg_exec_t *exec)
{
    return exec->trigger != NULL ? exec->trigger : "schedule";
}

HG_EXPORT int64_t
hg_exec_scheduled_for(const hg_exec_t *exec)
{
    return exec->scheduled_for;
}

HG_EXPORT int64_t
hg_exec_deadline(const hg_exec_t *exec)
{
    return exec->deadline;
}

HG_EXPORT int
hg_exec_cancelled(const hg_exec_t *exec)
{
    if (exec->cancel != NULL && *exec->cancel) {
        return 1;
    }
    return exec->deadline > 0 && hg_exec_now_ms() >= exec->deadline;
}

HG_EXPORT void
hg_exec_log(hg_exec_t *exec, hg_log_level_t level, const char *fmt, ...)
{
    char message[4096];
    va_list ap;

    if (!hg_log_enabled(level)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    hg_log_event(level, "module", exec->job_id, exec->id, NULL, 0, "%s",
                 message);
}

HG_EXPORT int
hg_exec_output(hg_exec_t *exec, const void *data, size_t len)
{
    size_t room, take, cap;
    char *grown;

    if (exec->output_len >= exec->output_limit) {
        if (len > 0) {
            exec->truncated = true;
        }
        return 1;
    }
    room = exec->output_limit - exec->output_len;
    take = len < room ? len : room;
    if (exec->output_len + take > exec->output_cap) {
        cap = exec->output_cap ? exec->output_cap : 1024;
        while (cap < exec->output_len + take) {
            cap *= 2;
        }
        if (cap > exec->output_limit) {
            cap = exec->output_limit;
        }
        grown = realloc(exec->output, cap);
        if (grown == NULL) {
            exec->truncated = true;
            return 1;
        }
        exec->output = grown;
        exec->output_cap = cap;
    }
    memcpy(exec->output + exec->output_len, data, take);
    exec->output_len += take;
    if (take < len) {
        exec->truncated = true;
        return 1;
    }
    return exec->output_len >= exec->output_limit ? 1 : 0;
}

HG_EXPORT size_t
hg_exec_output_limit(const hg_exec_t *exec)
{
    return exec->output_limit;
}

HG_EXPORT void
hg_exec_set_exit_code(hg_exec_t *exec, int code)
{
    exec->has_exit_code = true;
    exec->exit_code = code;
}

HG_EXPORT void
hg_exec_set_signal(hg_exec_t *exec, int signo)
{
    exec->signo = signo;
}

HG_EXPORT void
hg_exec_set_error(hg_exec_t *exec, const char *fmt, ...)
{
    va_list ap;
    char *text;

    va_start(ap, fmt);
    if (vasprintf(&text, fmt, ap) < 0) {
        text = NULL;
    }
    va_end(ap);
    if (text != NULL) {
        free(exec->error);
        exec->error = text;
    }
}

HG_EXPORT void
hg_exec_retry_after(hg_exec_t *exec, int64_t delay_ms)
{
    exec->retry_after_ms = delay_ms < 0 ? 0 : delay_ms;
}

HG_EXPORT void
hg_exec_metric(hg_exec_t *exec, const char *name, double value)
{
    if (name == NULL || *name == '\0') {
        return;
    }
    if (exec->metrics == NULL) {
        exec->metrics = json_object();
        if (exec->metrics == NULL) {
            return;
        }
    }
    json_object_set_new(exec->metrics, name, json_real(value));
}

HG_EXPORT void
hg_exec_set_usage(hg_exec_t *exec, const struct rusage *usage)
{
    if (usage != NULL) {
        exec->usage = *usage;
        exec->has_usage = true;
    }
}
