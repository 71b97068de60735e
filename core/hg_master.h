/*
 * The master process: one event loop (epoll) over a signalfd, two timerfds
 * (wall clock for cron and `at`, monotonic for `every`, timeouts, retries,
 * jitter) and the worker pipes. It decides what is due, queues executions
 * by priority, hands each to an idle worker, enforces timeouts by killing
 * the worker's process group, records outcomes, and reloads.
 *
 * hg_master.c never runs job code and never blocks: no module's execute is
 * called here, no read or write waits, no child is waited for without
 * WNOHANG (except after SIGKILL at shutdown).
 */

#ifndef HG_MASTER_H
#define HG_MASTER_H

#include "hg_core.h"
#include "hg_cycle.h"
#include "hg_event.h"
#include "hg_heap.h"
#include "hg_map.h"
#include "hg_metrics.h"
#include "hg_pool.h"
#include "hg_slab.h"
#include "hg_store.h"
#include "hg_timer.h"

typedef struct hg_master_s hg_master_t;
typedef struct hg_job_s hg_job_t;
typedef struct hg_execution_s hg_execution_t;

/* An execution's place in one of the master's lists. */
typedef struct hg_exec_link_s {
    hg_execution_t *prev, *next;
} hg_exec_link_t;

/* A list of executions through one of their links: every live execution
 * (link `all`), or those on their way to a worker (link `start`, see
 * hg_master_dispatch). */
typedef struct hg_exec_list_s {
    hg_execution_t *head, *tail;
    size_t count;
    size_t link;                    /* offsetof(hg_execution_t, LINK) */
} hg_exec_list_t;


/* A job as the master runs it. It outlives reloads while its id exists
 * (definition updated in place) and, once removed, lives on until its last
 * execution ends.
 *
 * There is one per configured job, idle most of the time, so it is kept
 * small: it lives on the master's job slab, its strings on the master's
 * string slabs (hg_slab: off the heap the configuration churns), its type
 * is interned, its parsed cron expression shared with the jobs of the same
 * text; fields are ordered so that none is padded. */
struct hg_job_s {
    char *id;                       /* the key in master->jobs */
    const char *type;               /* interned */
    char *definition_text;
    hg_master_t *master;

    hg_timer_t timer;               /* the next fire */
    int64_t next_due_ms;            /* wall ms of the next fire, 0 = none */
    int64_t last_due_ms;            /* wall ms of the last fire */

    hg_cron_t *cron;                /* CRON (shared: hg_cron_ref) */
    const hg_tz_t *tz;
    int64_t every_ms;
    int64_t at;                     /* s */
    int64_t start_at;               /* s, when has_start_at */

    hg_job_policy_t policy;
    uint64_t output_limit;

    hg_execution_t *waiting_head;   /* overlap = queue: wait for the job */
    hg_execution_t *waiting_tail;
    unsigned running;               /* executions on a worker */
    unsigned pending;               /* in the ready queue or jittering */
    unsigned refs;                  /* executions that point here */
    unsigned applied;               /* the apply that last saw it */
    hg_schedule_kind_t kind;
    bool enabled : 1;               /* by its configuration */
    bool paused : 1;                /* by a command (hg_master_pause) */
    bool has_start_at : 1;
    bool removed : 1;
    /* Its last execution ended soon after it began: the next one for
     * the same worker may be handed ahead behind its next (HG_AHEAD). */
    bool quick : 1;
};

/* An execution handed ahead to a busy worker (see hg_master_hand_ahead):
 * waiting for its `running` record's commit, then its frame sent and
 * waiting for the worker's current execution to end. */
typedef enum {
    HG_AHEAD_NONE = 0,
    HG_AHEAD_WAITING,
    HG_AHEAD_SENT
} hg_ahead_t;

struct hg_execution_s {
    char id[40];
    char run_id[40];                /* the first attempt's id */
    hg_job_t *job;
    int64_t scheduled_for_ms;       /* wall */
    unsigned attempt;
    char trigger[64];
    void *payload;
    size_t payload_len;
    hg_priority_t priority;
    hg_exec_status_t status;
    hg_heap_node_t ready;           /* in the master's ready queue */
    hg_timer_t timer;               /* jitter wait, timeout or retry */
    hg_worker_t *worker;
    int64_t dispatched_ms;          /* wall */
    int64_t deadline_ms;            /* wall, 0 = no timeout */
    int64_t due_ns;                 /* wall, exact: schedule lag */
    int64_t dispatched_ns;          /* wall, when the frame was sent */
    hg_execution_t *next_waiting;
    int64_t run_at_ms;              /* queue: not before (wall), 0 = now */
    char *unique_key;               /* queue: refused twice while queued */
    bool recorded;                  /* the store has a record of it */
    hg_ahead_t ahead;               /* handed ahead to exec->worker */
    uint64_t ticket;                /* store barrier its start waits for */
    hg_exec_list_t *start_list;     /* &m->primed, &m->committing or NULL */
    hg_exec_link_t start;           /* in start_list */
    hg_exec_link_t all;             /* in m->executions */
};

/* What the master reports of every execution that ends (benchmarks and
 * tests hook here; the store comes in through the same door). */
typedef struct hg_master_result_s {
    const hg_execution_t *exec;
    hg_exec_status_t status;
    int64_t started_ms;
    int64_t finished_ms;
    int exit_code;                  /* -1 when none */
    int signo;                      /* 0 when none */
    const char *error;
    const char *output;
    size_t output_len;
    bool truncated;
    int64_t max_rss_kb;             /* -1 when unknown */
    int64_t cpu_user_ms;
    int64_t cpu_sys_ms;
    /* The module's custom metrics (hg_exec_metric): an object of names to
     * numbers, or NULL; borrowed for the observer's call. */
    const json_t *metrics;
} hg_master_result_t;

typedef void (*hg_master_observer_pt)(hg_master_t *master,
                                      const hg_master_result_t *result,
                                      void *data);

struct hg_master_s {
    hg_cycle_t *cycle;
    const char *conf_file;
    const char *prefix;
    hg_event_loop_t *loop;
    hg_timers_t wall;
    hg_timers_t mono;
    hg_pool_t pool;
    int signal_fd;
    hg_event_t signal_ev;
    hg_map_t jobs;
    hg_slab_t job_slab;             /* every hg_job_t */
    hg_slab_strings_t job_strings;  /* their ids, types and definitions */
    hg_heap_t ready;
    int workers;                    /* target */
    unsigned quick_deaths;          /* workers that died young in a row */
    hg_timer_t respawn_timer;
    hg_timer_t quit_timer;
    bool stopping;                  /* SIGTERM: leave now */
    bool quitting;                  /* SIGQUIT: finish, then leave */
    bool done;
    int exit_code;
    uint64_t dispatched_total;
    uint64_t finished_total;
    /* The metrics (DESIGN.md "Metrics"), fed where things happen; the
     * gauges are read when rendered (hg_master_render_metrics). */
    hg_metrics_t *metrics;
    struct {
        hg_metric_t *executions;    /* {job,status} */
        hg_metric_t *duration;      /* {job} */
        hg_metric_t *lag;
        hg_metric_t *queue_depth;
        hg_metric_t *workers;       /* {state} */
        hg_metric_t *restarts;      /* {reason} */
        hg_metric_t *reloads;       /* {result} */
        hg_metric_t *jobs;          /* {state} */
        hg_metric_t *module;        /* {module,name} */
        hg_metric_t *handed;
    } metric;
    int64_t ahead_turn_ms;          /* HG_AHEAD_TURN_MS (tests change it) */
    uint64_t handed_total;          /* frames handed ahead to busy workers */
    uint64_t taken_back_total;      /* of those, taken back unread */
    hg_master_observer_pt observer;
    void *observer_data;

    /* The store (NULL: executions live only in the log). An execution's
     * frame goes to its worker only once its `running` record is
     * committed: `committing` holds those whose worker waits for that
     * commit; `primed` those recorded running ahead of a worker, so that
     * a busy pool finds its next executions committed already (as many
     * as workers finish during a commit; none when executions are
     * long). */
    hg_store_t *store;
    hg_event_t store_ev;
    hg_exec_list_t committing;
    hg_exec_list_t primed;
    uint64_t acked;                 /* the last barrier ticket committed */
    bool store_degraded;
    int64_t last_finish_ns;         /* monotonic, 0 = none yet */
    double finish_gap_ns;           /* between finishes, moving average */
    uint64_t probe_ticket;          /* a barrier being timed, 0 = none */
    int64_t probe_ns;               /* monotonic, when it was issued */
    double commit_ns;               /* barrier to acknowledgement, average */
    hg_map_t unique_keys;           /* unique_key -> queued execution */
    hg_exec_list_t executions;      /* alive (queued .. finishing) */
    unsigned applies;               /* configurations applied so far */
    /* A reload under way (its reader, then its builder thread), or
     * NULL; a SIGHUP meanwhile asks for another once it is done. */
    struct hg_master_reload_s *reload;
    bool reload_again;
};

/* Set up the loop, signals and workers for CYCLE (taken over); STORE (may
 * be NULL, stays the caller's) is recovered from: executions found running
 * are recorded crashed and retried per policy, queued ones are queued
 * again, and fire times missed while the daemon was down follow each job's
 * misfire policy. */
int hg_master_init(hg_master_t *master, hg_cycle_t *cycle,
                   const char *conf_file, const char *prefix,
                   hg_store_t *store);
/* Run until stopped. Returns the process exit code. */
int hg_master_run(hg_master_t *master);
/* One turn of the loop (tests and benchmarks drive it themselves). */
int hg_master_turn(hg_master_t *master, int timeout_ms);
void hg_master_cleanup(hg_master_t *master);

/*
 * Re-read the configuration (SIGHUP). The file is read and the modules'
 * validate run by a cycle reader process, the result built into a cycle
 * in a thread, and applied by the loop a slice of jobs at a time (the
 * cycle is m->cycle from the first slice on). HG_AGAIN: it has started,
 * and the log says how it ends (event=reload result=ok|failed); HG_ERROR:
 * it could not start and the old configuration stays. One reload at a
 * time: asked for meanwhile, another follows the current one.
 */
int hg_master_reload(hg_master_t *master);
/* Whether a reload is under way. */
bool hg_master_reloading(const hg_master_t *master);

/* Run a job now, outside its schedule (trigger "manual", "api:NAME",
 * "queue"), with an optional payload. Returns the execution (its id is
 * final), or NULL when the job does not exist or the overlap policy
 * refused it (errno EBUSY). */
hg_execution_t *hg_master_trigger(hg_master_t *master, const char *job_id,
                                  const char *trigger, const void *payload,
                                  size_t payload_len, hg_priority_t priority);

/* Enqueue a one-off execution of a job: PAYLOAD given to the module,
 * not before RUN_AT_MS (wall; 0 = now), with PRIORITY; a UNIQUE_KEY (may
 * be NULL) is refused while an execution with the same key is queued.
 * The execution is recorded `queued` in the store and survives restarts.
 * NULL with errno ENOENT (no such job), EEXIST (key pending), ESHUTDOWN,
 * EBUSY (overlap = skip and the job runs) or ENOMEM. */
hg_execution_t *hg_master_enqueue(hg_master_t *master, const char *job_id,
                                  const char *trigger, const void *payload,
                                  size_t payload_len, int64_t run_at_ms,
                                  hg_priority_t priority,
                                  const char *unique_key);

hg_job_t *hg_master_find_job(hg_master_t *master, const char *id);

/*
 * Commands and queries, for tests and the admin API. Each returns HG_OK,
 * or HG_AGAIN when no job has that id (HG_ERROR: the store refused the
 * change, which is not made).
 *
 * Pausing a job stops its schedule (fire times pass unrun, and are not
 * misfires when it resumes); its queued and running executions go on, and
 * it can still be triggered, as a suspended Kubernetes CronJob. The state
 * is kept in the store across restarts and reloads. Resuming schedules it
 * again from now.
 */
int hg_master_pause(hg_master_t *master, const char *job_id);
int hg_master_resume(hg_master_t *master, const char *job_id);
/* Kill the job's running executions (recorded `killed`, never retried:
 * someone asked); *KILLED says how many (may be NULL). */
int hg_master_stop_job(hg_master_t *master, const char *job_id,
                       size_t *killed);
/* The job's next fire times (wall ms), at most MAX, into OUT; *N how many
 * (none for a paused job or one without a schedule). */
int hg_master_next_fires(hg_master_t *master, const char *job_id,
                         int64_t *out, size_t max, size_t *n);
/* The metrics in the Prometheus text format, the gauges read now. */
int hg_master_render_metrics(hg_master_t *master, FILE *out);

#endif /* HG_MASTER_H */
