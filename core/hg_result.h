/*
 * What the master reports of every execution that ends: the result its
 * observer is given (tests and benchmarks hook there; the store and the
 * metrics are fed from the same record).
 *
 * It owns no code and names the master's objects only as opaque types:
 * the files that make up the master and its public surface both include
 * it, and it must never include either.
 */

#ifndef HG_RESULT_H
#define HG_RESULT_H

#include "hg_core.h"
#include "hg_store.h"

typedef struct hg_master_s hg_master_t;
typedef struct hg_job_s hg_job_t;
typedef struct hg_execution_s hg_execution_t;

typedef struct hg_master_result_s {
    const hg_execution_t *exec;
    hg_exec_status_t status;
    int64_t started_ms;
    int64_t finished_ms;
    int exit_code;                  /* -1 when none */
    int signo;                      /* 0 when none */
    const char *error;
    const char *output;
    size_t output_len;
    bool truncated;
    int64_t max_rss_kb;             /* -1 when unknown */
    int64_t cpu_user_ms;
    int64_t cpu_sys_ms;
    /* The module's custom metrics (hg_exec_metric): an object of names to
     * numbers, or NULL; borrowed for the observer's call. */
    const json_t *metrics;
} hg_master_result_t;

typedef void (*hg_master_observer_pt)(hg_master_t *master,
                                      const hg_master_result_t *result,
                                      void *data);

/* The answer to a query or command that reads the store (hg_master_job
 * and after): RC HG_OK with ANSWER (borrowed for the call), HG_AGAIN when
 * there is no such job or execution, HG_ERROR when the store failed (the
 * log says why); ANSWER is NULL but with HG_OK. */
typedef void (*hg_master_reply_pt)(void *data, int rc, const json_t *answer);

/* A notice of the master's (hg_master_on_notice): EVENT
 * (execution_started, execution_finished, job_changed, reload) with its
 * BODY, borrowed for the call. Called from the loop; must not block. */
typedef void (*hg_master_notice_pt)(void *data, const char *event,
                                    const json_t *body);

/* More answers, of the job commands (hg_master_put_job, _delete_job);
 * each with {"error": "..."} as ANSWER: */
#define HG_REPLY_EXISTS     -3      /* create: the id is taken */
#define HG_REPLY_READ_ONLY  -4      /* a job of the configuration file */
#define HG_REPLY_INVALID    -5      /* refused as a reload would refuse
                                       it; ANSWER has "errors": [{field
                                       (or null), message}] */
#define HG_REPLY_TAKEN      -6      /* another instance of the cluster has
                                       it now (a shared queued execution
                                       taken meanwhile) */

#endif /* HG_RESULT_H */
