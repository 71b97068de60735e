/*
 * The worker process: receives DISPATCH frames from the master on fd
 * HG_WORKER_IN_FD, runs the module's execute, answers with a RESULT frame on
 * HG_WORKER_OUT_FD. One execution at a time. It is the only place job code
 * runs.
 *
 * A worker is its own process group (so the master can kill it and every
 * process it started at once), asks the kernel for SIGTERM when the master
 * dies (PR_SET_PDEATHSIG) and answers SIGTERM by killing its whole group,
 * and exits when the master's end of its pipe closes: it never outlives
 * the master and leaves no orphans.
 */

#ifndef HG_WORKER_H
#define HG_WORKER_H

#include "hg_core.h"
#include "hg_module.h"

#define HG_WORKER_IN_FD   3
#define HG_WORKER_OUT_FD  4
#define HG_WORKER_LOG_FD  5

/* Exit codes of a worker that gives up (the master logs them). */
#define HG_WORKER_EXIT_OK         0
#define HG_WORKER_EXIT_INIT       70    /* a module's init failed */
#define HG_WORKER_EXIT_PROTOCOL   71    /* the master sent a malformed frame */
#define HG_WORKER_EXIT_IO         72    /* the pipe to the master broke */
#define HG_WORKER_EXIT_MASTER     73    /* the master is gone */

/*
 * Called in the child right after fork. Sets up the process (group, death
 * signal, descriptors, signals), initialises the modules in the worker and
 * serves dispatches until the master closes the pipe. Never returns.
 */
void hg_worker_main(hg_modules_t *mods, const char *prefix, pid_t master,
                    int in_fd, int out_fd)
    __attribute__((noreturn));

/* hg_host_t.store_task in a worker: asks the master's store side to run
 * TASK for the execution running and waits for the answer (see
 * hg_maintenance.h). -1 with a message outside a running execution. */
int hg_worker_store_task(const char *task, json_t **report, char *err,
                         size_t errlen);

#endif /* HG_WORKER_H */
