/*
 * hg_msg.c: DISPATCH and RESULT as structs (see hg_msg.h), one encoder and
 * one decoder each, over the tagged fields of hg_ipc.h.
 */

#include "hg_core.h"

#include "hg_msg.h"

/* Each field's name, for the errors that say which one is wrong. */
static const struct {
    uint16_t tag;
    const char *name;
} hg_msg_names[] = {
    { HG_IPC_F_EXEC_ID, "exec_id" },
    { HG_IPC_F_JOB_ID, "job_id" },
    { HG_IPC_F_JOB_DEF, "job definition" },
    { HG_IPC_F_PAYLOAD, "payload" },
    { HG_IPC_F_ATTEMPT, "attempt" },
    { HG_IPC_F_SCHEDULED_FOR, "scheduled_for" },
    { HG_IPC_F_TIMEOUT, "timeout" },
    { HG_IPC_F_TRIGGER, "trigger" },
    { HG_IPC_F_OUTPUT_LIMIT, "output_limit" },
    { HG_IPC_F_TYPE, "type" },
    { HG_IPC_F_TRACEPARENT, "traceparent" },
    { HG_IPC_F_RESULT, "result code" },
    { HG_IPC_F_ERROR, "error" },
    { HG_IPC_F_METRICS, "metrics" },
};

static const char *
hg_msg_name(uint16_t tag)
{
    size_t i;

    for (i = 0; i < HG_NELEMS(hg_msg_names); i++) {
        if (hg_msg_names[i].tag == tag) {
            return hg_msg_names[i].name;
        }
    }
    return "?";
}

/* A string field to copy out of a frame: where its copy goes. */
typedef struct hg_msg_str_s {
    uint16_t tag;
    const char **to;
    bool required;
} hg_msg_str_t;

/* The string fields of FRAME listed in WANT, NUL-terminated in one
 * allocation (*STRINGS). HG_ERROR when a required one is missing or one
 * holds a NUL byte, ERR naming it. */
static int
hg_msg_strings(const hg_ipc_frame_t *frame, const hg_msg_str_t *want,
               size_t n, char **strings, char *err, size_t errlen)
{
    const hg_ipc_field_t *f;
    size_t i, total = 0;
    char *p;

    for (i = 0; i < n; i++) {
        *want[i].to = NULL;
        f = hg_ipc_field(frame, want[i].tag);
        if (f == NULL) {
            if (want[i].required) {
                snprintf(err, errlen, "field %u (%s) is missing",
                         (unsigned) want[i].tag, hg_msg_name(want[i].tag));
                return HG_ERROR;
            }
            continue;
        }
        if (memchr(f->data, '\0', f->len) != NULL) {
            snprintf(err, errlen, "field %u (%s) holds a NUL byte",
                     (unsigned) want[i].tag, hg_msg_name(want[i].tag));
            return HG_ERROR;
        }
        total += f->len + 1;
    }
    *strings = p = malloc(total > 0 ? total : 1);
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return HG_ERROR;
    }
    for (i = 0; i < n; i++) {
        f = hg_ipc_field(frame, want[i].tag);
        if (f == NULL) {
            continue;
        }
        memcpy(p, f->data, f->len);
        p[f->len] = '\0';
        *want[i].to = p;
        p += f->len + 1;
    }
    return HG_OK;
}

static int
hg_msg_require_i64(const hg_ipc_frame_t *frame, uint16_t tag, int64_t *v,
                   char *err, size_t errlen)
{
    if (hg_ipc_get_i64(frame, tag, v) != HG_OK) {
        snprintf(err, errlen, "field %u (%s) is missing or not 8 bytes",
                 (unsigned) tag, hg_msg_name(tag));
        return HG_ERROR;
    }
    return HG_OK;
}

/* --- DISPATCH ------------------------------------------------------------ */

int
hg_msg_put_dispatch(hg_ipc_buf_t *out, const hg_msg_dispatch_t *d)
{
    const hg_limits_t *l = &d->limits;

    hg_ipc_begin(out, HG_IPC_DISPATCH);
    hg_ipc_put_str(out, HG_IPC_F_EXEC_ID, d->exec_id);
    hg_ipc_put_str(out, HG_IPC_F_JOB_ID, d->job_id);
    hg_ipc_put_str(out, HG_IPC_F_TYPE, d->type);
    hg_ipc_put_bytes(out, HG_IPC_F_JOB_DEF, d->job_def, d->job_def_len);
    if (d->payload != NULL) {
        hg_ipc_put_bytes(out, HG_IPC_F_PAYLOAD, d->payload, d->payload_len);
    }
    hg_ipc_put_u32(out, HG_IPC_F_ATTEMPT, d->attempt);
    hg_ipc_put_i64(out, HG_IPC_F_SCHEDULED_FOR, d->scheduled_for_ms);
    hg_ipc_put_i64(out, HG_IPC_F_TIMEOUT, d->timeout_ms);
    if (d->trigger != NULL) {
        hg_ipc_put_str(out, HG_IPC_F_TRIGGER, d->trigger);
    }
    if (d->traceparent != NULL) {
        hg_ipc_put_str(out, HG_IPC_F_TRACEPARENT, d->traceparent);
    }
    hg_ipc_put_i64(out, HG_IPC_F_OUTPUT_LIMIT, d->output_limit);
    if (l->memory > 0) {
        hg_ipc_put_i64(out, HG_IPC_F_LIMIT_MEMORY, (int64_t) l->memory);
    }
    if (l->cpu > 0) {
        hg_ipc_put_i64(out, HG_IPC_F_LIMIT_CPU,
                       (int64_t) (l->cpu * 1000.0 + 0.5));
    }
    if (l->tasks > 0) {
        hg_ipc_put_i64(out, HG_IPC_F_LIMIT_TASKS, l->tasks);
    }
    return hg_ipc_end(out);
}

/* The limits, absent fields meaning none; nonsense values are none too
 * (a limit the master never sends). */
static void
hg_msg_get_limits(const hg_ipc_frame_t *frame, hg_limits_t *l)
{
    int64_t v;

    memset(l, 0, sizeof(*l));
    if (hg_ipc_get_i64(frame, HG_IPC_F_LIMIT_MEMORY, &v) == HG_OK && v > 0) {
        l->memory = (uint64_t) v;
    }
    if (hg_ipc_get_i64(frame, HG_IPC_F_LIMIT_CPU, &v) == HG_OK && v > 0) {
        l->cpu = (double) v / 1000.0;
    }
    if (hg_ipc_get_i64(frame, HG_IPC_F_LIMIT_TASKS, &v) == HG_OK && v > 0
        && v <= INT_MAX)
    {
        l->tasks = (int) v;
    }
}

int
hg_msg_get_dispatch(const hg_ipc_frame_t *frame, hg_msg_dispatch_t *d,
                    char *err, size_t errlen)
{
    const hg_msg_str_t strs[] = {
        { HG_IPC_F_EXEC_ID, &d->exec_id, true },
        { HG_IPC_F_JOB_ID, &d->job_id, true },
        { HG_IPC_F_TYPE, &d->type, true },
        { HG_IPC_F_TRIGGER, &d->trigger, false },
        { HG_IPC_F_TRACEPARENT, &d->traceparent, false },
    };
    const hg_ipc_field_t *f;

    memset(d, 0, sizeof(*d));
    d->output_limit = -1;
    if (frame->type != HG_IPC_DISPATCH) {
        snprintf(err, errlen, "frame type %u is not a dispatch",
                 (unsigned) frame->type);
        return HG_ERROR;
    }
    if (hg_msg_strings(frame, strs, HG_NELEMS(strs), &d->strings, err,
                       errlen) != HG_OK)
    {
        return HG_ERROR;
    }
    f = hg_ipc_field(frame, HG_IPC_F_JOB_DEF);
    if (f == NULL) {
        snprintf(err, errlen, "field %u (%s) is missing",
                 (unsigned) HG_IPC_F_JOB_DEF, hg_msg_name(HG_IPC_F_JOB_DEF));
        return HG_ERROR;
    }
    d->job_def = f->data;
    d->job_def_len = f->len;
    f = hg_ipc_field(frame, HG_IPC_F_PAYLOAD);
    if (f != NULL) {
        d->payload = f->data;
        d->payload_len = f->len;
    }
    if (hg_ipc_get_u32(frame, HG_IPC_F_ATTEMPT, &d->attempt) != HG_OK) {
        snprintf(err, errlen, "field %u (%s) is missing or not 4 bytes",
                 (unsigned) HG_IPC_F_ATTEMPT, hg_msg_name(HG_IPC_F_ATTEMPT));
        return HG_ERROR;
    }
    if (hg_msg_require_i64(frame, HG_IPC_F_SCHEDULED_FOR,
                           &d->scheduled_for_ms, err, errlen) != HG_OK
        || hg_msg_require_i64(frame, HG_IPC_F_TIMEOUT, &d->timeout_ms, err,
                              errlen) != HG_OK)
    {
        return HG_ERROR;
    }
    if (d->timeout_ms < 0) {
        d->timeout_ms = 0;
    }
    if (hg_ipc_get_i64(frame, HG_IPC_F_OUTPUT_LIMIT, &d->output_limit)
        != HG_OK || d->output_limit < 0)
    {
        d->output_limit = -1;
    }
    hg_msg_get_limits(frame, &d->limits);
    return HG_OK;
}

void
hg_msg_dispatch_free(hg_msg_dispatch_t *d)
{
    free(d->strings);
    d->strings = NULL;
}

/* --- RESULT -------------------------------------------------------------- */

int
hg_msg_put_result(hg_ipc_buf_t *out, const hg_msg_result_t *r)
{
    hg_ipc_begin(out, HG_IPC_RESULT);
    hg_ipc_put_str(out, HG_IPC_F_EXEC_ID, r->exec_id);
    hg_ipc_put_u32(out, HG_IPC_F_RESULT, r->result);
    if (r->has_exit_code) {
        hg_ipc_put_i32(out, HG_IPC_F_EXIT_CODE, r->exit_code);
    }
    if (r->signo > 0) {
        hg_ipc_put_i32(out, HG_IPC_F_SIGNAL, r->signo);
    }
    if (r->output != NULL && r->output_len > 0) {
        hg_ipc_put_bytes(out, HG_IPC_F_OUTPUT, r->output, r->output_len);
    }
    hg_ipc_put_u32(out, HG_IPC_F_TRUNCATED, r->truncated ? 1 : 0);
    if (r->error != NULL) {
        hg_ipc_put_str(out, HG_IPC_F_ERROR, r->error);
    }
    hg_ipc_put_i64(out, HG_IPC_F_RETRY_AFTER, r->retry_after_ms);
    if (r->metrics != NULL) {
        hg_ipc_put_str(out, HG_IPC_F_METRICS, r->metrics);
    }
    if (r->has_times) {
        hg_ipc_put_i64(out, HG_IPC_F_STARTED_AT, r->started_ms);
        hg_ipc_put_i64(out, HG_IPC_F_FINISHED_AT, r->finished_ms);
    }
    if (r->max_rss_kb >= 0) {
        hg_ipc_put_i64(out, HG_IPC_F_MAX_RSS_KB, r->max_rss_kb);
    }
    hg_ipc_put_i64(out, HG_IPC_F_CPU_USER_MS, r->cpu_user_ms);
    hg_ipc_put_i64(out, HG_IPC_F_CPU_SYS_MS, r->cpu_sys_ms);
    if (r->deadline_passed) {
        hg_ipc_put_u32(out, HG_IPC_F_DEADLINE_PASSED, 1);
    }
    return hg_ipc_end(out);
}

int
hg_msg_get_result(const hg_ipc_frame_t *frame, hg_msg_result_t *r,
                  char *err, size_t errlen)
{
    const hg_msg_str_t strs[] = {
        { HG_IPC_F_EXEC_ID, &r->exec_id, true },
        { HG_IPC_F_ERROR, &r->error, false },
        { HG_IPC_F_METRICS, &r->metrics, false },
    };
    const hg_ipc_field_t *f;
    uint32_t truncated = 0, passed = 0;

    memset(r, 0, sizeof(*r));
    r->retry_after_ms = -1;
    r->max_rss_kb = -1;
    if (frame->type != HG_IPC_RESULT) {
        snprintf(err, errlen, "frame type %u is not a result",
                 (unsigned) frame->type);
        return HG_ERROR;
    }
    if (hg_msg_strings(frame, strs, HG_NELEMS(strs), &r->strings, err,
                       errlen) != HG_OK)
    {
        return HG_ERROR;
    }
    if (hg_ipc_get_u32(frame, HG_IPC_F_RESULT, &r->result) != HG_OK) {
        snprintf(err, errlen, "field %u (%s) is missing or not 4 bytes",
                 (unsigned) HG_IPC_F_RESULT, hg_msg_name(HG_IPC_F_RESULT));
        return HG_ERROR;
    }
    r->has_exit_code = hg_ipc_get_i32(frame, HG_IPC_F_EXIT_CODE,
                                      &r->exit_code) == HG_OK;
    if (hg_ipc_get_i32(frame, HG_IPC_F_SIGNAL, &r->signo) != HG_OK
        || r->signo < 0)
    {
        r->signo = 0;
    }
    f = hg_ipc_field(frame, HG_IPC_F_OUTPUT);
    if (f != NULL) {
        r->output = f->data;
        r->output_len = f->len;
    }
    (void) hg_ipc_get_u32(frame, HG_IPC_F_TRUNCATED, &truncated);
    r->truncated = truncated != 0;
    (void) hg_ipc_get_i64(frame, HG_IPC_F_RETRY_AFTER, &r->retry_after_ms);
    r->has_times = hg_ipc_get_i64(frame, HG_IPC_F_STARTED_AT,
                                  &r->started_ms) == HG_OK
                   && hg_ipc_get_i64(frame, HG_IPC_F_FINISHED_AT,
                                     &r->finished_ms) == HG_OK;
    if (hg_ipc_get_i64(frame, HG_IPC_F_MAX_RSS_KB, &r->max_rss_kb) != HG_OK
        || r->max_rss_kb < 0)
    {
        r->max_rss_kb = -1;
    }
    (void) hg_ipc_get_i64(frame, HG_IPC_F_CPU_USER_MS, &r->cpu_user_ms);
    (void) hg_ipc_get_i64(frame, HG_IPC_F_CPU_SYS_MS, &r->cpu_sys_ms);
    (void) hg_ipc_get_u32(frame, HG_IPC_F_DEADLINE_PASSED, &passed);
    r->deadline_passed = passed != 0;
    return HG_OK;
}

void
hg_msg_result_free(hg_msg_result_t *r)
{
    free(r->strings);
    r->strings = NULL;
}
