/*
 * What a previous master left unfinished, at start, and what a cluster
 * peer left to this instance: hg_recover.c.
 */

#ifndef HG_RECOVER_H
#define HG_RECOVER_H

#include "hg_scheduler.h"

/* Executions the store holds as queued or running: the previous master
 * ended (kill -9, crash, power) before they did. */
void hg_recover_executions(hg_master_t *m);
/* Cluster: the executions the store took over from a peer whose lease
 * lapsed (hg_store_taken), treated as at start; called when the store
 * notifies. */
void hg_recover_taken(hg_master_t *m);
/* Fire times that passed while no master ran, per the job's misfire
 * policy. The store knows each job's last fire time. */
void hg_recover_misfires(hg_master_t *m);

#endif /* HG_RECOVER_H */
