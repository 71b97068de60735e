/*
 * The master's side of the worker processes: forking them, their pipes, the
 * frames that go in and out, killing them and reaping them. The pool knows
 * what a worker is doing only as an opaque pointer (`current`); what a
 * result means is the master's business, told through the callbacks.
 *
 * Writes to a worker never block: a dispatch larger than the pipe can take
 * waits in the worker's output buffer until the pipe is writable.
 */

#ifndef HG_POOL_H
#define HG_POOL_H

#include "hg_core.h"
#include "hg_event.h"
#include "hg_ipc.h"
#include "hg_module.h"

#include <sys/resource.h>

typedef enum {
    HG_WORKER_STARTING = 0,         /* forked, READY not yet received */
    HG_WORKER_IDLE,
    HG_WORKER_BUSY,
    HG_WORKER_GONE                  /* killed or exited, not reaped yet */
} hg_worker_state_t;

typedef enum {
    HG_KILL_NONE = 0,
    HG_KILL_TIMEOUT,
    HG_KILL_STOP,                   /* replace / API stop / shutdown */
    HG_KILL_PROTOCOL,               /* sent a malformed frame */
    HG_KILL_RETIRE,                 /* no longer wanted (reload, shrink) */
    HG_KILL_STOPPED                 /* stopped (SIGSTOP): cannot answer */
} hg_kill_reason_t;

typedef struct hg_worker_s hg_worker_t;
typedef struct hg_pool_s hg_pool_t;

struct hg_worker_s {
    pid_t pid;
    unsigned generation;
    hg_worker_state_t state;
    int to_fd;                      /* master -> worker, nonblocking */
    /* The worker's end of that pipe, opened again (a description of its
     * own, nonblocking) so that frames it has not read yet can be taken
     * back; -1 where /proc is not there: nothing is handed ahead. */
    int back_fd;
    int from_fd;                    /* worker -> master, nonblocking */
    hg_event_t in_ev;
    hg_event_t out_ev;
    hg_ipc_reader_t reader;
    hg_ipc_buf_t out;
    void *current;                  /* the master's execution, or NULL */
    /* The next execution, handed ahead while CURRENT runs (hg_pool_hand):
     * it becomes current when CURRENT's result comes. */
    void *handed;
    bool handed_sent;               /* its frame is in the pipe */
    hg_kill_reason_t kill_reason;
    bool retiring;                  /* close when idle */
    int64_t spawned_ns;             /* monotonic */
    hg_pool_t *pool;
    hg_worker_t *prev, *next;
};

typedef struct hg_pool_callbacks_s {
    void (*ready)(hg_worker_t *w);
    /* CURRENT is what the worker was running; the worker is already idle
     * (w->current NULL) so the callback may give it the next execution,
     * or it runs the execution handed ahead (now w->current), which the
     * callback starts the clock of. */
    void (*result)(hg_worker_t *w, void *current,
                   const hg_ipc_frame_t *frame);
    /* The worker is reaped: status as from waitpid, usage from wait4;
     * CURRENT is what it was running, or NULL. The worker is freed at the
     * end of the loop turn. */
    void (*gone)(hg_worker_t *w, void *current, int status,
                 const struct rusage *usage);
    /* A dying worker never started EXEC: its frame was still unread in
     * the pipe, or it was handed ahead behind the execution it died in.
     * Called before gone; EXEC is the caller's again. */
    void (*returned)(hg_worker_t *w, void *exec);
    /* A request from the worker while it runs CURRENT (a STORE_TASK
     * frame); the worker stays busy and waits for the answer
     * (hg_pool_reply). NULL: such a frame is a protocol error. */
    void (*request)(hg_worker_t *w, void *current,
                    const hg_ipc_frame_t *frame);
    /* A child that is no worker (the cycle reader) is reaped (may be
     * NULL): its status would be lost otherwise. */
    void (*other)(hg_pool_t *pool, pid_t pid, int status);
} hg_pool_callbacks_t;

struct hg_pool_s {
    hg_event_loop_t *loop;
    hg_pool_callbacks_t cb;
    void *data;
    hg_worker_t *head;              /* every worker not yet reaped */
    size_t count;                   /* workers not retiring and not gone */
    unsigned generation;            /* workers forked now get this */
    hg_worker_t *dead;              /* reaped, freed at the end of a turn */
};

void hg_pool_init(hg_pool_t *pool, hg_event_loop_t *loop,
                  const hg_pool_callbacks_t *cb, void *data);
/* Fork one worker that serves MODS. */
hg_worker_t *hg_pool_spawn(hg_pool_t *pool, hg_modules_t *mods,
                           const char *prefix);
/* Hold an idle worker for CURRENT before its frame can go (the master
 * waits for the store to commit the execution's `running` record). */
int hg_pool_reserve(hg_worker_t *w, void *current);
/* Send the DISPATCH frame built in w->out (hg_ipc_begin .. hg_ipc_end) and
 * mark the worker busy with CURRENT (idle, or reserved for CURRENT).
 * HG_ERROR when it cannot take it: the caller keeps the execution. */
int hg_pool_send(hg_worker_t *w, void *current);
/*
 * Handing ahead: a busy worker is given its next execution before the
 * current one ends, so that it starts it without waiting for the master
 * (hg_pool_hand, then hg_pool_send_ahead). The worker reads it only once
 * the current one is done; until then hg_pool_take_back can read the
 * frame back out of the pipe, and whichever of the two reads it first
 * has it: it never runs twice.
 */
/* Hold a busy worker's next slot for NEXT (its frame may wait for the
 * store): HG_ERROR if it has one, or is retiring, or cannot be written,
 * or its frames cannot be taken back. */
int hg_pool_hand(hg_worker_t *w, void *next);
/* Send the frame built in w->out for the handed NEXT, which must fit in
 * one atomic pipe write (PIPE_BUF). HG_ERROR: the slot is freed, the
 * caller keeps NEXT. */
int hg_pool_send_ahead(hg_worker_t *w, void *next);
/* Take the handed NEXT back if the worker has not read its frame yet:
 * true, and NEXT is the caller's again, never started; false when the
 * worker has it (it starts it when the current execution ends). */
bool hg_pool_take_back(hg_worker_t *w, void *next);
/* Send the answer to a request built in w->out; the worker's state and
 * execution are unchanged (a broken pipe is left to SIGCHLD). */
void hg_pool_reply(hg_worker_t *w);
/* Kill the worker's whole process group and its execution cgroup. */
void hg_pool_kill(hg_worker_t *w, hg_kill_reason_t reason, int signo);
/* Close the worker's input: it exits after its current execution. */
void hg_pool_retire(hg_worker_t *w);
/* Reap exited workers (SIGCHLD). A worker found stopped (SIGSTOP, a
 * debugger's SIGTSTP...) is killed and reaped like a dead one: it would
 * hold its execution forever. */
void hg_pool_reap(hg_pool_t *pool);
/* Free workers reaped during the last turn. */
void hg_pool_collect(hg_pool_t *pool);
/* Kill every worker and wait for them (shutdown). They are freed by the
 * next hg_pool_collect, after the loop's turn. */
void hg_pool_kill_all(hg_pool_t *pool, int signo);

size_t hg_pool_live(const hg_pool_t *pool);     /* not yet reaped */
/* The worker with this pid, not yet reaped; NULL if none. */
hg_worker_t *hg_pool_find(hg_pool_t *pool, pid_t pid);

const char *hg_worker_state_name(hg_worker_state_t state);

#endif /* HG_POOL_H */
