/*
 * The execution handle a module's execute receives (hg_exec_t, opaque to
 * modules: include/hourglass/module.h declares its accessors). The worker
 * fills the inputs from the dispatch frame, calls execute, and sends the
 * outputs back in the result frame. Lives only in worker processes (and in
 * unit tests that call modules directly).
 */

#ifndef HG_EXEC_H
#define HG_EXEC_H

#include "hg_core.h"

#include <sys/resource.h>

#define HG_EXEC_DEFAULT_OUTPUT_LIMIT  (64 * 1024)

struct hg_exec_s {
    /* inputs, owned by the caller of hg_exec_init */
    const char *id;
    const char *job_id;
    const char *trigger;
    const char *traceparent;        /* W3C trace context, NULL: none */
    json_t *job;
    const void *payload;
    size_t payload_len;
    unsigned attempt;
    int64_t scheduled_for;          /* ms since the epoch */
    int64_t deadline;               /* ms since the epoch, 0 = none */
    size_t output_limit;
    volatile sig_atomic_t *cancel;  /* set asynchronously, may be NULL */

    /* outputs, owned by the handle (hg_exec_reset frees them) */
    char *output;
    size_t output_len;
    size_t output_cap;
    bool truncated;
    bool has_exit_code;
    int exit_code;
    int signo;
    char *error;
    int64_t retry_after_ms;         /* -1 = not set */
    json_t *metrics;                /* object name -> real, or NULL */
    bool has_usage;                 /* hg_exec_set_usage was called */
    struct rusage usage;            /* the job's processes, as wait4 saw */
};

/* Zero the handle and set the defaults of its outputs. */
void hg_exec_init(hg_exec_t *exec);
/* Free the outputs (not the inputs) and zero the handle. */
void hg_exec_reset(hg_exec_t *exec);
/* The job's output_limit (or the default) from its definition. */
size_t hg_exec_limit_from_job(const json_t *job);
int64_t hg_exec_now_ms(void);

#endif /* HG_EXEC_H */
