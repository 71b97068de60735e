/*
 * How an execution ended, and what follows: hg_outcome.c.
 */

#ifndef HG_OUTCOME_H
#define HG_OUTCOME_H

#include "hg_scheduler.h"
#include "sys/resource.h"

int64_t hg_outcome_backoff_ms(const hg_backoff_t *b, unsigned attempt);
void hg_outcome_on_retry_timer(hg_timer_t *timer);
void hg_outcome_finish(hg_master_t *m, hg_execution_t *exec,
                       hg_master_result_t *result, hg_result_t rc,
                       int64_t retry_after_ms);
void hg_outcome_result(hg_worker_t *w, void *current,
                       const hg_ipc_frame_t *frame);
/* Worker W died (STATUS, USAGE its whole life's) while it ran EXEC: the
 * execution ends as its kill reason says (timed out, killed on request,
 * crashed), and is retried per policy. */
void hg_outcome_worker_gone(hg_master_t *m, hg_worker_t *w,
                            hg_execution_t *exec, int status,
                            const struct rusage *usage);

#endif /* HG_OUTCOME_H */
