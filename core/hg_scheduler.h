/*
 * The scheduler's state: the master, its jobs and their executions, as
 * the files that make up the master share them (hg_master.c, hg_reload.c,
 * hg_job.c, hg_execution.c, hg_journal.c, hg_dispatch.c, hg_outcome.c,
 * hg_fire.c, hg_recover.c, hg_query.c, hg_meter.c), and the master's own
 * unit tests and benchmarks.
 *
 * It owns no code. Each field has one owner that changes it (said at the
 * field, or its file's opening comment); the others read it. Nothing
 * outside those files includes it: the rest of the daemon, and the admit
 * API next, go through hg_master.h.
 */

#ifndef HG_SCHEDULER_H
#define HG_SCHEDULER_H

#include "hg_core.h"
#include "hg_cycle.h"
#include "hg_event.h"
#include "hg_heap.h"
#include "hg_map.h"
#include "hg_metrics.h"
#include "hg_pool.h"
#include "hg_result.h"
#include "hg_schedule.h"
#include "hg_slab.h"
#include "hg_store.h"
#include "hg_timer.h"

/* Fire times owed by misfire = run_all are run up to this many. */
#define HG_RUN_ALL_CAP           100
/* How long an execution handed ahead may wait for its worker's current one
 * to end before it is taken back for another worker; a job whose last run
 * took under half of it counts as quick. */
#define HG_AHEAD_TURN_MS         10

static inline int64_t
hg_now_ms(void)
{
    return hg_clock_ns(CLOCK_REALTIME) / HG_NSEC_PER_MSEC;
}

/* An execution's place in one of the master's lists. */
typedef struct hg_exec_link_s {
    hg_execution_t *prev, *next;
} hg_exec_link_t;

/* A list of executions through one of their links: every live execution
 * (link `all`), or those on their way to a worker (link `start`, see
 * hg_dispatch.c). */
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
    uint64_t def_hash;              /* hg_map_hash(definition_text) */
    json_t *tags;                   /* strings: its definition's, a
                                       reference */
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
    bool api : 1;                   /* defined through the API, not the
                                       file (hg_jobdef.c) */
    bool channel : 1;               /* an internal job, not in the table:
                                       a notification channel's
                                       (hg_notify.c), the OTLP exporter
                                       (hg_otlp.c) */
};

/* An execution handed ahead to a busy worker (see hg_dispatch_hand_ahead):
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
    bool claim;                     /* cluster: its fire time is claimed
                                       with its record (hg_fire.c) */
    int64_t claim_ns;               /* monotonic, when its claim went */
    bool shared;                    /* cluster: recorded for any instance
                                       to take (hg_fire_share) */
    hg_ahead_t ahead;               /* handed ahead to exec->worker */
    uint64_t ticket;                /* store barrier its start waits for */
    hg_exec_list_t *start_list;     /* &m->primed, &m->committing,
                                       &m->claiming or NULL */
    hg_exec_link_t start;           /* in start_list */
    hg_exec_link_t all;             /* in m->executions */
};

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
    /* The jobs by id, for listings (hg_job_order): built when asked after
     * the table changed, not per listing. */
    hg_job_t **job_order;
    size_t njob_order;
    bool job_order_valid;
    hg_slab_t job_slab;             /* every hg_job_t */
    hg_slab_strings_t job_strings;  /* their ids, types and definitions */
    hg_heap_t ready;
    int workers;                    /* target */
    unsigned quick_deaths;          /* workers that died young in a row */
    hg_timer_t respawn_timer;
    hg_timer_t quit_timer;
    int64_t started_ms;             /* wall, when the master was made */
    uint64_t ended[HG_EXEC_NSTATUS];    /* executions ended, by status */
    bool stopping;                  /* SIGTERM: leave now */
    bool quitting;                  /* SIGQUIT: finish, then leave */
    bool done;
    int exit_code;
    uint64_t dispatched_total;
    uint64_t finished_total;
    /* The metrics (DESIGN.md "Metrics"), fed where things happen; the
     * gauges are read when rendered (hg_meter_render). */
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
        hg_metric_t *store_queue;
        hg_metric_t *store_written;
        hg_metric_t *store_errors;
        hg_metric_t *store_dropped;
        hg_metric_t *store_failing;
        hg_metric_t *store_commit;
        /* overdue and notifications are fed by hg_notify.c; the
         * cluster's are declared for it: HELP and TYPE, no series yet. */
        hg_metric_t *leader;
        hg_metric_t *overdue;       /* {job} */
        hg_metric_t *notifications; /* {channel,result} */
        hg_metric_t *trace_spans;   /* {result}: hg_otlp.c */
        hg_metric_t *claims;        /* {result} */
        hg_metric_t *claim_seconds;
        hg_metric_t *lease_expired;
        hg_metric_t *instances;     /* {state} */
        hg_metric_t *term;
    } metric;
    int64_t ahead_turn_ms;          /* HG_AHEAD_TURN_MS (tests change it) */
    uint64_t handed_total;          /* frames handed ahead to busy workers */
    uint64_t taken_back_total;      /* of those, taken back unread */
    hg_master_observer_pt observer;
    void *observer_data;
    hg_master_notice_pt notice;     /* hg_notice.c */
    void *notice_data;
    struct hg_query_s *queries;     /* at the store (hg_query.c) */
    struct hg_notify_s *notify;     /* channels, rate windows (hg_notify.c) */
    struct hg_otlp_s *otlp;         /* spans waiting for export (hg_otlp.c) */

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
    /* Cluster: fires whose claim is being committed with their record;
     * admitted once it is, unless another instance holds the fire time. */
    hg_exec_list_t claiming;
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
    /* The jobs defined through the API (hg_jobdef.c): id -> {definition,
     * created_by, created_at, updated_at}, as the store keeps them; what
     * every reload hands the cycle reader besides the file. */
    json_t *api_jobs;
    /* Job commands: the one in flight (its check, then its write), and
     * those waiting their turn, oldest first. */
    struct hg_jobdef_cmd_s *jobdef_current;
    bool applying_peer;             /* a peer's change of API jobs is being
                                       put in force (hg_jobdef_peer) */
    /* Cluster: peers' changes of API jobs refused here (a module not
     * loaded, a job of this instance's file), id -> record; checked again
     * after each reload that applies (hg_jobdef_peer_retry). NULL when
     * none. */
    json_t *peer_refused;
    bool peer_retry_due;            /* a reload applied: peer_refused is
                                       checked again once it is over */
    struct hg_jobdef_cmd_s *jobdef_head, *jobdef_tail;
};

#endif /* HG_SCHEDULER_H */
