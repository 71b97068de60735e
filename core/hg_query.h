/*
 * The master's reads and commands that go through the store:
 * hg_query.c. Each completes later, in the loop, through the caller's
 * reply (hg_master_reply_pt in hg_result.h).
 */

#ifndef HG_QUERY_H
#define HG_QUERY_H

#include "hg_master.h"
#include "hg_scheduler.h"

typedef struct hg_query_s hg_query_t;

typedef enum {
    HG_QUERY_JOB = 0,               /* a job with its statistics */
    HG_QUERY_EXECUTION,             /* one execution, with its output */
    HG_QUERY_DEAD,                  /* a page of the dead-letter list */
    HG_QUERY_RETRY,                 /* dead executions' next attempts */
    HG_QUERY_PURGE,                 /* dead executions deleted */
    HG_QUERY_PUT_JOBS,              /* API jobs written or deleted */
    HG_QUERY_EXECUTIONS,            /* a page of a job's executions */
    HG_QUERY_DEQUEUED,              /* an execution taken out of the queue,
                                       or asked to be and not there */
    HG_QUERY_JOBS,                  /* a page of the job table, with every
                                       job's statistics read at once */
    HG_QUERY_QUEUE                  /* a page of the queue: this instance's
                                       waiting executions, then the
                                       cluster's unowned ones */
} hg_query_kind_t;

typedef struct hg_query_args_s {
    const char *job_id;             /* JOB; filter of DEAD RETRY PURGE */
    const char *exec_id;            /* EXECUTION; one of RETRY PURGE */
    const char *trigger;            /* RETRY: NULL = "manual" */
    int64_t before;                 /* RETRY PURGE: finished before (ms) */
    size_t limit;                   /* DEAD RETRY: a page (0: all) */
    size_t offset;
    const json_t *jobs;             /* PUT_JOBS: {id: record | null} */
    const char *status;             /* EXECUTIONS: NULL = any */
    bool removed;                   /* DEQUEUED: taken out of the queue */
    bool keyed;                     /* EXECUTION: just enqueued; its record
                                       lost for its unique key (the
                                       store said so) is HG_REPLY_EXISTS */
    bool shared;                    /* DEQUEUED: not here: take it out of
                                       the cluster's shared queue, as
                                       trigger (the actor), at before
                                       (ms) */
    size_t local;                   /* QUEUE: this instance's waiting
                                       executions now (the store's page
                                       starts after them) */
    const hg_job_filter_t *filter;  /* JOBS (with limit and offset) */
    int64_t since, until;           /* EXECUTIONS: scheduled in [since,
                                       until) (ms; 0: no bound) */
} hg_query_args_t;

/* HG_OK: REPLY follows (at once for a store without a thread, once the
 * caller pops it through hg_query_done); HG_AGAIN: no such job; HG_ERROR:
 * no store, or out of memory. */
int hg_query_start(hg_master_t *m, hg_query_kind_t kind,
                   const hg_query_args_t *args, hg_master_reply_pt reply,
                   void *data);
/* A time (ms) as the answers write it: UTC text, or null for none. */
json_t *hg_query_time(int64_t ms);
/* The job's next five fire times, as an array of such texts. */
json_t *hg_query_next_fires(hg_master_t *m, const hg_job_t *job);
/* The executions that wait to start, of JOB_ID (NULL: any), in the order
 * they will run, a page of LIMIT from OFFSET, read now (no store):
 * {executions: [{id, job, due, run_at, scheduled_for, priority,
 * triggered_by, attempt, unique_key, payload_bytes, waiting}], total,
 * limit, offset}. NULL when out of memory. */
json_t *hg_query_queue(hg_master_t *m, const char *job_id, size_t limit,
                       size_t offset);
/* A QUERY task came back from the store: answer it (or free an orphan). */
void hg_query_done(hg_master_t *m, hg_store_task_t *task);
/* The master goes: its queries still at the store are orphaned. */
void hg_query_orphan_all(hg_master_t *m);

#endif /* HG_QUERY_H */
