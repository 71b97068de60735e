/*
 * OTLP export of executions as spans (`tracing = { otlp = "..."; }`):
 * hg_otlp.c.
 */

#ifndef HG_OTLP_H
#define HG_OTLP_H

#include "hg_scheduler.h"

/* The exporter's internal job id: a ':' no job id may hold, so it never
 * meets a configured job. */
#define HG_OTLP_JOB_ID  "trace:otlp"

/* One finished execution, as a span is made of it. */
typedef struct hg_otlp_span_s {
    const char *job_id;
    const char *exec_id;            /* the span: its last 64 bits */
    const char *run_id;             /* the trace; the first attempt's id */
    const char *status;             /* succeeded, failed, timed_out... */
    const char *error;              /* the status message; NULL: none */
    const char *trigger;
    const char *instance;
    unsigned attempt;
    int exit_code;                  /* -1: none */
    int signo;                      /* 0: none */
    int64_t start_ms;               /* wall */
    int64_t end_ms;
    int64_t lag_ms;                 /* start minus due time */
} hg_otlp_span_t;

/* The OTLP/JSON span of S (new reference); NULL when its ids are not
 * UUIDs' text, or out of memory. */
json_t *hg_otlp_span_json(const hg_otlp_span_t *s);
/* The body of an export (POST /v1/traces) of SPANS (an array; the
 * reference is taken), from SERVICE on INSTANCE. */
json_t *hg_otlp_request_json(json_t *spans, const char *service,
                             const char *instance);

/* An execution ended (RETRY: another attempt follows): with tracing on,
 * its span waits for the next export; when it was an export, how that
 * went is counted. Called once per execution, whatever its job. */
void hg_otlp_finished(hg_master_t *m, const hg_execution_t *exec,
                      const hg_master_result_t *result, bool retry);
/* Free the spans held and the exporter's job (at the master's end). */
void hg_otlp_free(hg_master_t *m);

#endif /* HG_OTLP_H */
