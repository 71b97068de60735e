/*
 * Store maintenance for the `system` module's tasks (history_cleanup,
 * store_vacuum, health_check): what a worker asks, and how the master
 * has it done and answers.
 *
 * The worker never touches the store: no SQLite call is made in a process
 * forked from one that has the store open (see hg_store.h; a connection
 * opened in a worker corrupts the file). A worker running such a job sends
 * a STORE_TASK frame and blocks until the STORE_REPLY comes
 * (hg_worker_store_task, hg_host_t.store_task). The master hands the task
 * to its store (hg_store_task: the store's maintenance thread and
 * connection, never the event loop) and, when the store says it is done,
 * answers the worker if it still runs the same execution; a worker killed
 * meanwhile (timeout, stop) gets nothing, and the answer is dropped.
 *
 * The frames' fields are HG_IPC_F_EXEC_ID and HG_IPC_F_STORE_* (hg_ipc.h).
 */

#ifndef HG_MAINTENANCE_H
#define HG_MAINTENANCE_H

#include "hg_core.h"
#include "hg_conf.h"
#include "hg_ipc.h"
#include "hg_store.h"

/* --- in a worker ---------------------------------------------------------- */

/* Appends the STORE_TASK frame for TASK, asked by execution EXEC_ID. */
int hg_maintenance_ask(hg_ipc_buf_t *out, const char *exec_id,
                       const char *task);
/* Reads a STORE_REPLY: HG_OK with *report (the caller's), or HG_ERROR
 * with the master's message (or what is wrong with the frame) in err. */
int hg_maintenance_answer(const hg_ipc_frame_t *frame, json_t **report,
                          char *err, size_t errlen);

/* --- in the master -------------------------------------------------------- */

/* A worker's request, as the store holds it. The task comes first: the
 * store frees a request it still holds at close as a task (free). */
typedef struct hg_maintenance_request_s {
    hg_store_task_t task;
    const char *name;               /* the task's name (static) */
    bool kept_forever;              /* store.retention 0: nothing to
                                       clean, health only */
    pid_t worker;                   /* who asked ... */
    char exec_id[40];               /* ... for which execution */
} hg_maintenance_request_t;

/* Hands task NAME, asked by WORKER for EXEC_ID, to STORE. NULL with the
 * reason in err (an unknown task, an id too long, no memory, a store that
 * cannot take it). */
hg_maintenance_request_t *hg_maintenance_start(hg_store_t *store,
                                               const hg_conf_t *conf,
                                               const char *name,
                                               pid_t worker,
                                               const char *exec_id,
                                               char *err, size_t errlen);
/* The request whose task the store has finished (hg_store_task_done, a
 * task other than a QUERY); free() it after. */
hg_maintenance_request_t *hg_maintenance_of(hg_store_task_t *task);
/* Appends the STORE_REPLY for REQ (its report, with the store's health,
 * or its error). */
int hg_maintenance_reply(hg_ipc_buf_t *out, hg_store_t *store,
                         const hg_maintenance_request_t *req);
/* Appends a STORE_REPLY that says ERROR. */
int hg_maintenance_refuse(hg_ipc_buf_t *out, const char *exec_id,
                          const char *error);

#endif /* HG_MAINTENANCE_H */
