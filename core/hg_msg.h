/*
 * The messages the master and a worker exchange about an execution, as
 * structs: DISPATCH (master -> worker: run this) and RESULT (worker ->
 * master: it ended so). Each has one encoder and one decoder, used by both
 * sides, so that a new field is added here and nowhere else in the framing.
 *
 * hg_msg.c owns the mapping between these structs and the tagged fields of
 * hg_ipc.h, and which fields are required. It never reads or writes a
 * descriptor (hg_ipc.c frames, hg_pool.c and hg_worker.c move the bytes)
 * and never decides what a result means (hg_master.c).
 *
 * A decoded message's strings are NUL-terminated copies in one allocation
 * of its own (freed with its _free); its bytes fields (the job definition,
 * the payload, the output) point into the frame and are valid as long as
 * the frame is.
 */

#ifndef HG_MSG_H
#define HG_MSG_H

#include "hg_core.h"
#include "hg_conf.h"
#include "hg_ipc.h"

typedef struct hg_msg_dispatch_s {
    const char *exec_id;
    const char *job_id;
    const char *type;               /* the module's name */
    const char *trigger;
    const char *traceparent;        /* W3C trace context, NULL: none */
    const uint8_t *job_def;         /* the job as JSON, not NUL-terminated */
    size_t job_def_len;
    const uint8_t *payload;         /* NULL: none */
    size_t payload_len;
    uint32_t attempt;
    int64_t scheduled_for_ms;       /* wall */
    int64_t timeout_ms;             /* 0: none; the worker's deadline is
                                       its own start plus this */
    int64_t output_limit;           /* bytes, -1: the module's default */
    hg_limits_t limits;             /* zero: none */
    char *strings;                  /* decoded: behind the strings above */
} hg_msg_dispatch_t;

typedef struct hg_msg_result_s {
    const char *exec_id;
    uint32_t result;                /* hg_result_t as sent, unchecked */
    bool has_exit_code;
    int32_t exit_code;
    int32_t signo;                  /* 0: none */
    const uint8_t *output;          /* NULL: none */
    size_t output_len;
    bool truncated;
    const char *error;              /* NULL: none */
    int64_t retry_after_ms;         /* -1: not set */
    const char *metrics;            /* a JSON object's text, NULL: none */
    bool has_times;                 /* started_ms and finished_ms are set */
    int64_t started_ms;             /* wall */
    int64_t finished_ms;
    int64_t max_rss_kb;             /* -1: unknown */
    int64_t cpu_user_ms;
    int64_t cpu_sys_ms;
    bool deadline_passed;           /* the worker's deadline, at the end */
    char *strings;                  /* decoded: behind the strings above */
} hg_msg_result_t;

/* Append the message as a frame to OUT: HG_ERROR if it cannot be built
 * (too large, out of memory), with OUT as it was before. */
int hg_msg_put_dispatch(hg_ipc_buf_t *out, const hg_msg_dispatch_t *d);
int hg_msg_put_result(hg_ipc_buf_t *out, const hg_msg_result_t *r);

/* FRAME (of the matching type) into *D / *R: HG_ERROR with ERR naming
 * what is missing or malformed. Free with the _free below either way. */
int hg_msg_get_dispatch(const hg_ipc_frame_t *frame, hg_msg_dispatch_t *d,
                        char *err, size_t errlen);
int hg_msg_get_result(const hg_ipc_frame_t *frame, hg_msg_result_t *r,
                      char *err, size_t errlen);

void hg_msg_dispatch_free(hg_msg_dispatch_t *d);
void hg_msg_result_free(hg_msg_result_t *r);

#endif /* HG_MSG_H */
