/*
 * What the store says of each execution: hg_journal.c.
 */

#ifndef HG_JOURNAL_H
#define HG_JOURNAL_H

#include "hg_scheduler.h"

/*
 * Write the execution's current state to the store (queued, running, or
 * final with RESULT). The store copies what it keeps and batches the
 * writes; nothing here waits.
 */
void hg_journal_put(hg_master_t *m, hg_execution_t *exec,
                    hg_exec_status_t status, const hg_master_result_t *res);
/* An execution that ends without running (skipped, missed). */
void hg_journal_unrun(hg_master_t *m, hg_execution_t *exec,
                      hg_exec_status_t status, const char *why);
/* Whether EXEC's `running` record is durable, so its frame may go. */
bool hg_journal_committed(const hg_master_t *m, const hg_execution_t *exec);
/* Leaving the queue for a worker: the execution is recorded `running`,
 * and when the store is durable a barrier is asked for, which its frame
 * waits for (a master killed after sending it must find it running at
 * restart, and record it crashed rather than lose or repeat it). */
void hg_journal_mark_running(hg_master_t *m, hg_execution_t *exec);
/* A dead execution was retried by hand: its record leaves the dead-letter
 * list as the failed attempt it was (the next attempt follows it, as after
 * an automatic retry). */
void hg_journal_undead(hg_master_t *m, const hg_exec_record_t *dead);
/* The store said how far it committed (its notification): m->acked moves
 * on, the commit delay is sampled, and a store that starts or stops
 * failing is said once. */
void hg_journal_ack(hg_master_t *m);
/* In the middle of a long turn (a burst of fires): whether the store
 * committed more than m->acked while executions wait for their records
 * (m->acked moves on). The notification still comes, and hg_journal_ack
 * does the rest. */
bool hg_journal_peek(hg_master_t *m);

#endif /* HG_JOURNAL_H */
