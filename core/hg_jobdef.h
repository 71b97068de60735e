/*
 * Jobs defined through the master's surface (the admin API), beside the
 * file's: hg_jobdef.c.
 */

#ifndef HG_JOBDEF_H
#define HG_JOBDEF_H

#include "hg_scheduler.h"

typedef enum {
    HG_JOBDEF_CREATE = 0,
    HG_JOBDEF_REPLACE,
    HG_JOBDEF_PATCH,                /* a JSON merge patch (RFC 7386) */
    HG_JOBDEF_DELETE,
    HG_JOBDEF_IMPORT,               /* many jobs created or replaced */
    HG_JOBDEF_PEER                  /* a cluster peer's changes, in the
                                       store already (hg_jobdef_peer) */
} hg_jobdef_op_t;

/* Queue a job command (DEFINITION for CREATE, REPLACE and PATCH, an array
 * of definitions for IMPORT, JOB_ID for PATCH and DELETE; all copied). REPLY follows, always, from the loop. HG_ERROR
 * (REPLY not called) when out of memory. */
int hg_jobdef_submit(hg_master_t *m, hg_jobdef_op_t op, const char *job_id,
                     const json_t *definition, const char *actor,
                     hg_master_reply_pt reply, void *data);
/* Cluster: the changes peers made to the API's jobs that the store read
 * (hg_store_peer_jobs), queued as a command per job: a job added or
 * replaced is checked as the API's own (a reader, against the
 * configuration in force), then put in force, as a deleted one is,
 * without writing the store again; one refused holds back no other.
 * A job of this instance's file keeps its id; a change refused here is
 * logged, left out and kept (m->peer_refused) until a reload applies, the
 * peer changes the job again, or this instance does. */
void hg_jobdef_peer(hg_master_t *m);
/* After a reload that applied: the peers' changes refused here before are
 * checked again, as if they had just come (the reload may have loaded
 * their module, or taken their job out of the file). */
void hg_jobdef_peer_retry(hg_master_t *m);
/* Start the next command when nothing holds the reader: true when it
 * did something (started one, or answered one at once), so the caller
 * may call again. */
bool hg_jobdef_pump(hg_master_t *m);
/* Whether a command is in flight (a reload must wait for it: a cycle
 * read without its job would undo it). */
bool hg_jobdef_busy(const hg_master_t *m);
/* {jobs: [definitions of the API's jobs, by id]}; NULL: out of memory. */
json_t *hg_jobdef_export(hg_master_t *m);
/* The master goes: every command is answered HG_ERROR and freed, and
 * the refused peers' changes with them. */
void hg_jobdef_free_all(hg_master_t *m);

#endif /* HG_JOBDEF_H */
