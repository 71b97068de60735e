/*
 * The way from admitted to running: hg_dispatch.c.
 */

#ifndef HG_DISPATCH_H
#define HG_DISPATCH_H

#include "hg_scheduler.h"

void hg_dispatch_ready(hg_master_t *m, hg_execution_t *exec);
/* An execution ended: the gap since the one before feeds the moving
 * average that sizes the primed pipeline, so that a burst of short
 * executions is seen within a few finishes, not a window later. */
void hg_dispatch_note_finish(hg_master_t *m);
void hg_dispatch_run(hg_master_t *m);
/* A handed execution that never started: first among the primed ones
 * (it is recorded running), for the next worker free; shutting down, it
 * is left queued for the next start, as the primed ones are. */
void hg_dispatch_hand_back(hg_master_t *m, hg_execution_t *exec);
/* The worker reported the execution before EXEC, which was handed ahead:
 * EXEC runs now, if its frame was out; else it is an execution held for
 * its worker like any other, its frame sent once its record commits. */
void hg_dispatch_promote(hg_master_t *m, hg_execution_t *exec);
/* Overlap policy, then jitter, then the ready queue. */
hg_execution_t *hg_dispatch_admit(hg_master_t *m, hg_execution_t *exec,
                                  bool scheduled);
/* A dying worker never started EXEC (handed ahead, or its frame unread):
 * it goes to the next worker free, not counted as an attempt. */
void hg_dispatch_returned(hg_worker_t *w, void *exec);
/* Shutting down: executions not yet started. With a store they stay
 * recorded `queued` and the next start runs them; without one they end
 * here, recorded skipped. */
void hg_dispatch_drop(hg_master_t *m, hg_execution_t *exec, const char *why);
/* A primed execution, recorded running ahead of a worker, is queued
 * again (shutting down). */
void hg_dispatch_drop_primed(hg_master_t *m, hg_execution_t *exec,
                             const char *why);
/* Shutting down: executions handed ahead that their workers have not
 * read are not started (those read run, as running ones do). */
void hg_dispatch_take_back_all(hg_master_t *m);
int hg_dispatch_stop_job(hg_master_t *m, const char *job_id, size_t *killed);
/* The store committed up to m->acked (or writes are failing): start the
 * executions whose `running` record is durable, then hand the busy
 * workers their next behind them. */
void hg_dispatch_committed(hg_master_t *m);
/* Where EXEC waits to start: "ready" (the ready queue), "primed"
 * (recorded running ahead of a worker), "scheduled" (a future run_at or
 * a retry's backoff), "jitter", "overlap" (behind its job's running
 * execution, overlap = queue); NULL once a worker holds it. */
const char *hg_dispatch_waiting(const hg_execution_t *exec);
/* Take EXEC, which waits, out of the way to a worker: it ends without
 * running, recorded killed with WHY, its unique key free again (EXEC is
 * freed). HG_AGAIN (and nothing is done) when it has started. */
int hg_dispatch_remove(hg_master_t *m, hg_execution_t *exec,
                       const char *why);

#endif /* HG_DISPATCH_H */
