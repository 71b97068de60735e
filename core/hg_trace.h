/*
 * Trace context (W3C traceparent) of an execution: hg_trace.c.
 */

#ifndef HG_TRACE_H
#define HG_TRACE_H

#include "hg_core.h"

/* "00-" 32 hex "-" 16 hex "-01" and its NUL. */
#define HG_TRACEPARENT_LEN  56

/* The traceparent of one execution into OUT (HG_TRACEPARENT_LEN bytes):
 * the trace is its run (every attempt of one run shares it), the span is
 * the attempt. HG_ERROR when RUN_ID or EXEC_ID is not a UUID's text. */
int hg_trace_context(const char *run_id, const char *exec_id, char *out,
                     size_t len);

#endif /* HG_TRACE_H */
