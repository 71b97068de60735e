/*
 * What the master tells whoever listens (the admin API's /events): an
 * execution started or finished, a job changed, a reload ended:
 * hg_notice.c.
 */

#ifndef HG_NOTICE_H
#define HG_NOTICE_H

#include "hg_scheduler.h"

/* Whether anyone listens: build a notice's body only then. */
bool hg_notice_wanted(const hg_master_t *m);
/* EVENT with BODY (taken; NULL is fine and says nothing). */
void hg_notice(hg_master_t *m, const char *event, json_t *body);
/* The notices of an execution's start and end. */
void hg_notice_started(hg_master_t *m, const hg_execution_t *exec);
void hg_notice_finished(hg_master_t *m, const hg_master_result_t *result);
/* A job added, replaced, deleted, paused or resumed (CHANGE), by BY. */
void hg_notice_job(hg_master_t *m, const char *job_id, const char *change,
                   const char *by);

#endif /* HG_NOTICE_H */
