/*
 * An execution's object (struct hg_execution_s in hg_scheduler.h) and the
 * master's lists of executions: hg_execution.c.
 */

#ifndef HG_EXECUTION_H
#define HG_EXECUTION_H

#include "hg_scheduler.h"

void hg_exec_list_init(hg_exec_list_t *list, size_t link);
void hg_exec_list_append(hg_exec_list_t *list, hg_execution_t *exec);
void hg_exec_list_remove(hg_exec_list_t *list, hg_execution_t *exec);
/* Put EXEC on the primed or committing list. */
void hg_exec_start_join(hg_exec_list_t *list, hg_execution_t *exec);
/* Put EXEC first on the primed list: it was taken before those there. */
void hg_exec_start_push(hg_exec_list_t *list, hg_execution_t *exec);
/* Take EXEC off the primed or committing list, if it is on one. */
void hg_exec_start_leave(hg_execution_t *exec);
hg_execution_t *hg_execution_new(hg_master_t *m, hg_job_t *job,
                                 int64_t scheduled_for_ms, unsigned attempt,
                                 const char *trigger);
/* A queued execution's unique key is free again once it leaves the
 * queue (it starts, or ends without running). */
void hg_execution_release_key(hg_master_t *m, hg_execution_t *exec);
/* A copy of PAYLOAD (LEN bytes; none when 0) for EXEC, which has none
 * yet. HG_ERROR when out of memory: EXEC is left without one. */
int hg_execution_set_payload(hg_execution_t *exec, const void *payload,
                             size_t len);
void hg_execution_free(hg_master_t *m, hg_execution_t *exec);

#endif /* HG_EXECUTION_H */
