/*
 * hg_query.c: the master's reads and commands that go through the store.
 *
 * It owns each query's life: its task handed to the store, the reads it
 * runs there (the store's maintenance thread owns the read connection
 * once the loop runs), what the loop then does with what was read (a dead
 * execution's next attempt admitted, its record re-written), and the JSON
 * answer, built with jansson, given to the caller's reply. It never reads
 * the store in the loop and never outlives its master: a query still at
 * the store when its master goes is orphaned, and freed when it is back.
 */

#include "hg_core.h"

#include "hg_dispatch.h"
#include "hg_fire.h"
#include "hg_job.h"
#include "hg_journal.h"
#include "hg_log.h"
#include "hg_json.h"
#include "hg_query.h"
#include "hg_tz.h"

/* A window of executions is read from the store's list in pages of
 * this many. */
#define HG_QUERY_WINDOW_PAGE 200
/* A bulk retry takes at most this many dead executions at a time. */
#define HG_QUERY_RETRY_MAX  1000
/* Next fire times in a job's answer. */
#define HG_QUERY_NEXT_FIRES 5

struct hg_query_s {
    hg_store_task_t task;           /* first: the store frees it as one */
    hg_master_t *m;                 /* NULL: orphaned */
    hg_query_t *prev, *next;        /* m->queries */
    hg_query_kind_t kind;
    hg_master_reply_pt reply;
    void *data;
    /* the arguments, copied */
    char *job_id;
    char *exec_id;
    char *trigger;
    int64_t before;
    int64_t since, until;           /* EXECUTIONS: a window, 0 = open */
    size_t limit;
    size_t offset;
    /* what the store's side read */
    hg_job_stats_t stats;
    hg_exec_row_t *rows;
    size_t nrows;
    uint64_t purged;
    json_t *jobs;                   /* PUT_JOBS */
    char *status;                   /* EXECUTIONS; JOBS' filter */
    char *type, *tag;               /* JOBS' filter */
    hg_job_stats_row_t *all_stats;  /* JOBS: every job's, by id */
    size_t nstats;
    uint64_t total;                 /* EXECUTIONS: without the page;
                                       QUEUE: the unowned ones */
    bool removed;                   /* DEQUEUED */
    bool shared;                    /* DEQUEUED: from the shared queue */
    bool keyed;                     /* EXECUTION */
    hg_store_dequeued_t dequeued;   /* what became of it there */
    size_t local;                   /* QUEUE */
};

static void
hg_query_release(void *cookie)
{
    hg_query_t *q = cookie;

    hg_exec_rows_free(q->rows, q->nrows);
    free(q->job_id);
    free(q->exec_id);
    free(q->trigger);
    free(q->status);
    free(q->type);
    free(q->tag);
    hg_job_stats_rows_free(q->all_stats, q->nstats);
    json_decref(q->jobs);
}

static void
hg_query_free(hg_query_t *q)
{
    hg_query_release(q);
    free(q);
}

static char *
hg_query_strdup(const char *s, bool *failed)
{
    char *copy;

    if (s == NULL) {
        return NULL;
    }
    copy = strdup(s);
    if (copy == NULL) {
        *failed = true;
    }
    return copy;
}

/* A page of the queue starts with this instance's waiting executions
 * (Q->local of them when the query started); the rest of the page, if
 * any, is the cluster's unowned ones. */
static int
hg_query_read_unowned(hg_store_t *store, hg_query_t *q)
{
    size_t mine = q->local > q->offset ? q->local - q->offset : 0;

    if (mine > q->limit) {
        mine = q->limit;
    }
    return hg_store_list_shared(store, q->job_id, q->limit - mine,
                                q->offset > q->local
                                ? q->offset - q->local : 0,
                                &q->rows, &q->nrows, &q->total);
}

/* DELETE /queue/{id} of an execution this instance does not hold: out of
 * the cluster's shared queue, if no instance has taken it. */
static int
hg_query_dequeue_shared(hg_store_t *store, hg_query_t *q)
{
    char why[256];

    snprintf(why, sizeof(why), "removed from the queue by %s", q->trigger);
    return hg_store_dequeue_shared(store, q->exec_id, q->before, why,
                                   &q->dequeued);
}

/* The execution named, whole: HG_AGAIN when the store has none. */
static int
hg_query_read_one(hg_store_t *store, hg_query_t *q)
{
    int rc;

    q->rows = calloc(1, sizeof(*q->rows));
    if (q->rows == NULL) {
        return HG_ERROR;
    }
    rc = hg_store_get_execution(store, q->exec_id, q->rows);
    if (rc != HG_OK) {
        free(q->rows);
        q->rows = NULL;
        return rc;
    }
    q->nrows = 1;
    return HG_OK;
}

/* Dead executions, with their output and payload (a list leaves those
 * out): the one named, or a page of those of the job. */
static int
hg_query_read_dead(hg_store_t *store, hg_query_t *q, bool whole)
{
    hg_exec_row_t *list = NULL;
    size_t n = 0, i;
    int rc;

    if (q->exec_id != NULL) {
        rc = hg_query_read_one(store, q);
        if (rc == HG_OK && q->rows[0].r.status != HG_EXEC_DEAD) {
            rc = HG_AGAIN;          /* not (or no longer) dead */
        }
        return rc;
    }
    rc = hg_store_list_executions(store, q->job_id, "dead", q->limit,
                                  q->offset, &list, &n);
    if (rc != HG_OK || !whole) {
        q->rows = list;
        q->nrows = n;
        return rc;
    }
    q->rows = calloc(n + 1, sizeof(*q->rows));
    if (q->rows == NULL) {
        hg_exec_rows_free(list, n);
        return HG_ERROR;
    }
    for (i = 0; i < n && rc == HG_OK; i++) {
        rc = hg_store_get_execution(store, list[i].r.id, &q->rows[q->nrows]);
        if (rc == HG_OK) {
            q->nrows++;
        } else if (rc == HG_AGAIN) {
            rc = HG_OK;             /* purged meanwhile */
        }
    }
    hg_exec_rows_free(list, n);
    return rc;
}

/*
 * A page of the executions scheduled in [since, until), newest first, and
 * how many there are. The store's list has no window, so it is read here,
 * on the store's side, page by page in its order (scheduled_for
 * descending): rows after UNTIL are passed over, and the reading stops at
 * the first row before SINCE. A window of the last hour reads about what
 * it answers; one with only UNTIL reads the job's history to its start.
 */
static int
hg_query_read_window(hg_store_t *store, hg_query_t *q)
{
    hg_exec_row_t *page;
    size_t n, i, at = 0;
    bool done = false;
    int64_t t;
    int rc = HG_OK;

    q->total = 0;
    q->rows = calloc(q->limit + 1, sizeof(*q->rows));
    if (q->rows == NULL) {
        return HG_ERROR;
    }
    while (!done && rc == HG_OK) {
        page = NULL;
        n = 0;
        rc = hg_store_list_executions(store, q->job_id, q->status,
                                      HG_QUERY_WINDOW_PAGE, at, &page, &n);
        done = n < HG_QUERY_WINDOW_PAGE;
        for (i = 0; i < n && rc == HG_OK; i++) {
            t = page[i].r.scheduled_for;
            if (q->until > 0 && t >= q->until) {
                continue;
            }
            if (t < q->since) {
                done = true;
                break;
            }
            if (q->total++ >= q->offset && q->nrows < q->limit) {
                q->rows[q->nrows++] = page[i];      /* moved: ours now */
                page[i].mem = NULL;
            }
        }
        hg_exec_rows_free(page, n);
        at += n;
    }
    return rc;
}

/* On the store's side: only the store's reads, into the query. */
static int
hg_query_run(hg_store_t *store, hg_store_task_t *task)
{
    hg_query_t *q = (hg_query_t *) task;

    switch (q->kind) {
    case HG_QUERY_JOB:
        return hg_store_job_stats(store, q->job_id, &q->stats);
    case HG_QUERY_DEQUEUED:
        if (q->shared) {
            return hg_query_dequeue_shared(store, q);
        }
        return hg_query_read_one(store, q);
    case HG_QUERY_EXECUTION:
        return hg_query_read_one(store, q);
    case HG_QUERY_DEAD:
        if (hg_store_count_executions(store, q->job_id, "dead", &q->total)
            != HG_OK)
        {
            return HG_ERROR;
        }
        return hg_query_read_dead(store, q, false);
    case HG_QUERY_RETRY:
        return hg_query_read_dead(store, q, true);
    case HG_QUERY_PURGE:
        return hg_store_purge_dead(store, q->exec_id, q->job_id, q->before,
                                   &q->purged);
    case HG_QUERY_PUT_JOBS:
        return hg_store_put_jobs(store, q->jobs);
    case HG_QUERY_EXECUTIONS:
        if (q->since > 0 || q->until > 0) {
            return hg_query_read_window(store, q);
        }
        if (hg_store_count_executions(store, q->job_id, q->status, &q->total)
            != HG_OK)
        {
            return HG_ERROR;
        }
        return hg_store_list_executions(store, q->job_id, q->status, q->limit,
                                        q->offset, &q->rows, &q->nrows);
    case HG_QUERY_JOBS:
        return hg_store_all_job_stats(store, &q->all_stats, &q->nstats);
    case HG_QUERY_QUEUE:
        return hg_query_read_unowned(store, q);
    }
    return HG_ERROR;
}

int
hg_query_start(hg_master_t *m, hg_query_kind_t kind,
               const hg_query_args_t *args, hg_master_reply_pt reply,
               void *data)
{
    hg_query_t *q;
    bool failed = false;

    if (m->store == NULL) {
        return HG_ERROR;
    }
    if (((kind == HG_QUERY_JOB || kind == HG_QUERY_EXECUTIONS)
         && hg_job_find(m, args->job_id) == NULL)
        || ((kind == HG_QUERY_EXECUTION || kind == HG_QUERY_DEQUEUED)
            && args->exec_id == NULL))
    {
        return HG_AGAIN;
    }
    q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return HG_ERROR;
    }
    q->m = m;
    q->kind = kind;
    q->reply = reply;
    q->data = data;
    q->job_id = hg_query_strdup(args->job_id, &failed);
    q->exec_id = hg_query_strdup(args->exec_id, &failed);
    q->trigger = hg_query_strdup(args->trigger != NULL ? args->trigger
                                                       : "manual", &failed);
    q->status = hg_query_strdup(args->filter != NULL ? args->filter->status
                                                     : args->status, &failed);
    if (args->filter != NULL) {
        q->type = hg_query_strdup(args->filter->type, &failed);
        q->tag = hg_query_strdup(args->filter->tag, &failed);
    }
    q->before = args->before;
    q->since = args->since;
    q->until = args->until;
    q->limit = args->limit;
    if (kind == HG_QUERY_RETRY
        && (q->limit == 0 || q->limit > HG_QUERY_RETRY_MAX))
    {
        q->limit = HG_QUERY_RETRY_MAX;
    }
    q->offset = args->offset;
    q->removed = args->removed;
    q->shared = args->shared;
    q->keyed = args->keyed;
    q->local = args->local;
    if (args->jobs != NULL) {
        q->jobs = json_deep_copy(args->jobs);
        failed = failed || q->jobs == NULL;
    }
    q->task.kind = HG_STORE_TASK_QUERY;
    q->task.query = hg_query_run;
    q->task.cookie = q;
    q->task.release = hg_query_release;
    if (failed || hg_store_task(m->store, &q->task) != HG_OK) {
        hg_query_free(q);
        return HG_ERROR;
    }
    q->next = m->queries;
    if (m->queries != NULL) {
        m->queries->prev = q;
    }
    m->queries = q;
    return HG_OK;
}

/* --- answers ------------------------------------------------------------ */

json_t *
hg_query_time(int64_t ms)
{
    char text[40];

    if (ms <= 0) {
        return json_null();
    }
    hg_format_utc_ms(ms, text, sizeof(text));
    return json_string(text);
}

/* Text as JSON: its UTF-8 kept, every other byte (and NUL) read as
 * U+FFFD, so an output that is not text still reads (its length is said
 * apart). */
static json_t *
hg_query_text(const char *s, size_t len)
{
    return s != NULL ? hg_json_text(s, len, "\xef\xbf\xbd") : json_null();
}

static json_t *
hg_query_execution_json(const hg_exec_record_t *r)
{
    return json_pack("{s:s, s:s?, s:s, s:s, s:i, s:s?, s:o, s:o, s:o,"
                     " s:o, s:o, s:o, s:o, s:I, s:b, s:s?, s:o, s:o, s:I,"
                     " s:I, s:s, s:s?}",
                     "id", r->id,
                     "run_id", r->run_id,
                     "job_id", r->job_id,
                     "status", hg_exec_status_name(r->status),
                     "attempt", (int) r->attempt,
                     "triggered_by", r->trigger,
                     "scheduled_for", hg_query_time(r->scheduled_for),
                     "started_at", hg_query_time(r->started_at),
                     "finished_at", hg_query_time(r->finished_at),
                     "duration_ms", r->duration_ms >= 0
                                    ? json_integer(r->duration_ms)
                                    : json_null(),
                     "exit_code", r->exit_code >= 0
                                  ? json_integer(r->exit_code) : json_null(),
                     "signal", r->signo > 0 ? json_integer(r->signo)
                                            : json_null(),
                     "output", hg_query_text(r->output, r->output_len),
                     "output_bytes", (json_int_t) r->output_len,
                     "output_truncated", r->output_truncated,
                     "error", r->error,
                     "worker_pid", r->worker_pid > 0
                                   ? json_integer(r->worker_pid)
                                   : json_null(),
                     "max_rss_kb", r->max_rss_kb >= 0
                                   ? json_integer(r->max_rss_kb)
                                   : json_null(),
                     "cpu_user_ms", (json_int_t) r->cpu_user_ms,
                     "cpu_sys_ms", (json_int_t) r->cpu_sys_ms,
                     "priority", hg_conf_priority_name((hg_priority_t) r->priority),
                     "unique_key", r->unique_key);
}

/* The job's next fire times: in UTC (TZ NULL), or with TZ's offset. */
static json_t *
hg_query_fires(hg_master_t *m, const hg_job_t *job, const hg_tz_t *tz)
{
    int64_t fires[HG_QUERY_NEXT_FIRES];
    char text[48];
    json_t *next, *t;
    size_t n = 0, i;

    /* Out of memory is an error (NULL), never an answer with a fire time
     * missing. */
    next = json_array();
    if (next == NULL) {
        return NULL;
    }
    if (hg_fire_next_fires(m, job->id, fires, HG_NELEMS(fires), &n)
        != HG_OK)
    {
        n = 0;
    }
    for (i = 0; i < n; i++) {
        if (tz == NULL) {
            t = hg_query_time(fires[i]);
        } else if (hg_tz_format_rfc3339(tz, fires[i] / 1000, text,
                                        sizeof(text)) == HG_OK)
        {
            t = json_string(text);
        } else {
            t = json_null();        /* past year 9999 */
        }
        if (json_array_append_new(next, t) != 0) {
            json_decref(next);
            return NULL;
        }
    }
    return next;
}

json_t *
hg_query_next_fires(hg_master_t *m, const hg_job_t *job)
{
    return hg_query_fires(m, job, NULL);
}

/* An API job's creator and times, from what the store keeps, into
 * ANSWER. */
static int
hg_query_job_origin(hg_master_t *m, const hg_job_t *job, json_t *answer)
{
    const json_t *record = json_object_get(m->api_jobs, job->id);

    if (record == NULL) {
        return HG_OK;
    }
    return json_object_set(answer, "created_by",
                           json_object_get(record, "created_by")) == 0
           && json_object_set_new(answer, "created_at", hg_query_time(
                  json_integer_value(json_object_get(record, "created_at"))))
              == 0
           && json_object_set_new(answer, "updated_at", hg_query_time(
                  json_integer_value(json_object_get(record, "updated_at"))))
              == 0
           ? HG_OK : HG_ERROR;
}

static json_t *
hg_query_job_json(hg_master_t *m, hg_job_t *job, const hg_job_stats_t *st)
{
    json_t *answer, *next, *definition;

    next = hg_query_next_fires(m, job);
    if (next == NULL) {
        return NULL;
    }
    definition = NULL;
    if (job->definition_text != NULL) {
        definition = json_loads(job->definition_text, 0, NULL);
        if (definition == NULL) {
            json_decref(next);
            return NULL;
        }
    }
    answer = json_pack("{s:s, s:s, s:O, s:b, s:b, s:b, s:o?, s:o, s:i, s:i,"
                       " s:{s:I, s:I, s:I, s:f, s:I, s:o, s:s?}}",
                       "id", job->id,
                       "type", job->type,
                       "tags", job->tags,
                       "api", job->api,
                       "enabled", job->enabled,
                       "paused", job->paused,
                       "definition", definition,
                       "next_fires", next,
                       "running", (int) job->running,
                       "pending", (int) job->pending,
                       "stats",
                       "runs", (json_int_t) st->runs,
                       "successes", (json_int_t) st->successes,
                       "failures", (json_int_t) st->failures,
                       "mean_duration_ms", st->mean_duration_ms,
                       "p95_duration_ms", (json_int_t) st->p95_duration_ms,
                       "last_run", hg_query_time(st->last_run),
                       "last_status", st->runs > 0
                                      ? hg_exec_status_name(st->last_status)
                                      : NULL);
    if (answer != NULL && job->api && hg_query_job_origin(m, job, answer)
                                      != HG_OK)
    {
        json_decref(answer);
        return NULL;
    }
    return answer;
}

static json_t *
hg_query_list_json(const hg_exec_row_t *rows, size_t n)
{
    json_t *list = json_array();
    size_t i;

    for (i = 0; list != NULL && i < n; i++) {
        if (json_array_append_new(list, hg_query_execution_json(&rows[i].r))
            != 0)
        {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

static bool
hg_query_job_has_tag(const hg_job_t *job, const char *tag)
{
    const json_t *t;
    size_t i;

    json_array_foreach(job->tags, i, t) {
        if (strcmp(json_string_value(t), tag) == 0) {
            return true;
        }
    }
    return false;
}

static bool
hg_query_job_is(const hg_job_t *job, const hg_job_filter_t *filter)
{
    const char *status = filter->status;

    if ((filter->type != NULL && strcmp(job->type, filter->type) != 0)
        || (filter->tag != NULL && !hg_query_job_has_tag(job, filter->tag)))
    {
        return false;
    }
    if (status == NULL) {
        return true;
    }
    if (strcmp(status, "paused") == 0) {
        return job->paused;
    }
    if (strcmp(status, "disabled") == 0) {
        return !job->enabled;
    }
    if (strcmp(status, "running") == 0) {
        return job->running > 0;
    }
    return job->enabled && !job->paused;        /* "active" */
}

/* A row of the jobs list: the job table's, with the statistics read
 * (ROW NULL: none yet) and its next fires in its own zone. */
static json_t *
hg_query_job_row(hg_master_t *m, const hg_job_t *job,
                 const hg_job_stats_row_t *row)
{
    static const hg_job_stats_t none;
    const hg_job_stats_t *st = row != NULL ? &row->stats : &none;
    json_t *next;

    next = hg_query_fires(m, job, job->tz != NULL ? job->tz : hg_tz_utc());
    if (next == NULL) {
        return NULL;
    }
    return json_pack("{s:s, s:s, s:O, s:b, s:b, s:b, s:o, s:o, s:i, s:i,"
                     " s:s?, s:o, s:I, s:I, s:I, s:o, s:o}",
                     "id", job->id,
                     "type", job->type,
                     "tags", job->tags,
                     "api", job->api,
                     "enabled", job->enabled,
                     "paused", job->paused,
                     "next_fire", hg_query_time(job->next_due_ms),
                     "next_fires", next,
                     "running", (int) job->running,
                     "pending", (int) job->pending,
                     "last_status", st->runs > 0
                                    ? hg_exec_status_name(st->last_status)
                                    : NULL,
                     "last_run", hg_query_time(st->last_run),
                     "runs", (json_int_t) st->runs,
                     "successes", (json_int_t) st->successes,
                     "failures", (json_int_t) st->failures,
                     "success_rate", st->runs > 0
                         ? json_real((double) st->successes
                                     / (double) st->runs)
                         : json_null(),
                     "p95_duration_ms", st->runs > 0
                         ? json_integer(st->p95_duration_ms) : json_null());
}

/* A page of the job table, with the statistics Q read. */
static json_t *
hg_query_jobs(hg_master_t *m, const hg_query_t *q)
{
    hg_job_filter_t filter = { q->status, q->type, q->tag };
    size_t limit = q->limit, offset = q->offset;
    hg_job_t *const *order;
    json_t *list;
    size_t n, total = 0, i;

    order = hg_job_order(m, &n);
    list = json_array();
    if (order == NULL || list == NULL) {
        json_decref(list);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (!hg_query_job_is(order[i], &filter)) {
            continue;
        }
        if (total++ < offset || total - offset > limit) {
            continue;
        }
        if (json_array_append_new(list, hg_query_job_row(m, order[i],
                hg_job_stats_find(q->all_stats, q->nstats, order[i]->id)))
            != 0)
        {
            json_decref(list);
            return NULL;
        }
    }
    return json_pack("{s:o, s:I, s:I, s:I, s:I}", "jobs", list,
                     "total", (json_int_t) total, "limit", (json_int_t) limit,
                     "offset", (json_int_t) offset,
                     "page", (json_int_t) (limit > 0 ? offset / limit + 1
                                                     : 1));
}

/* --- the queue ----------------------------------------------------------- */

/* An execution that waits, with what orders it: when it is due (a time
 * passed counts as now, as the ready queue takes every due one by
 * priority), then its priority, then its own due time, then its id. */
typedef struct {
    hg_execution_t *exec;
    const char *waiting;
    int64_t due;                    /* its own: run_at or scheduled_for */
    int64_t turn;                   /* due, or now if that passed */
} hg_query_waiting_t;

static int
hg_query_by_turn(const void *a, const void *b)
{
    const hg_query_waiting_t *x = a, *y = b;

    if (x->turn != y->turn) {
        return x->turn < y->turn ? -1 : 1;
    }
    if (x->exec->priority != y->exec->priority) {
        return x->exec->priority > y->exec->priority ? -1 : 1;
    }
    if (x->due != y->due) {
        return x->due < y->due ? -1 : 1;
    }
    return strcmp(x->exec->id, y->exec->id);
}

static json_t *
hg_query_waiting_row(const hg_query_waiting_t *w)
{
    const hg_execution_t *e = w->exec;

    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:s, s:s, s:i, s:s*, s:I,"
                     " s:s}",
                     "id", e->id,
                     "job_id", e->job->id,
                     "due", hg_query_time(w->due),
                     "run_at", hg_query_time(e->run_at_ms),
                     "scheduled_for", hg_query_time(e->scheduled_for_ms),
                     "priority", hg_conf_priority_name(e->priority),
                     "triggered_by", e->trigger,
                     "attempt", (int) e->attempt,
                     "unique_key", e->unique_key,
                     "payload_bytes", (json_int_t) e->payload_len,
                     "waiting", w->waiting);
}

json_t *
hg_query_queue(hg_master_t *m, const char *job_id, size_t limit,
               size_t offset)
{
    hg_query_waiting_t *all;
    hg_execution_t *exec;
    json_t *list;
    int64_t now_ms = hg_now_ms();
    size_t n = 0, i;

    all = calloc(m->executions.count + 1, sizeof(*all));
    list = json_array();
    if (all == NULL || list == NULL) {
        goto failed;
    }
    for (exec = m->executions.head; exec != NULL; exec = exec->all.next) {
        const char *waiting = hg_dispatch_waiting(exec);

        if (waiting == NULL
            || (job_id != NULL && strcmp(exec->job->id, job_id) != 0))
        {
            continue;
        }
        all[n].exec = exec;
        all[n].waiting = waiting;
        all[n].due = exec->run_at_ms > exec->scheduled_for_ms
                     ? exec->run_at_ms : exec->scheduled_for_ms;
        all[n].turn = all[n].due > now_ms ? all[n].due : now_ms;
        n++;
    }
    qsort(all, n, sizeof(*all), hg_query_by_turn);
    for (i = offset; i < n && i - offset < limit; i++) {
        if (json_array_append_new(list, hg_query_waiting_row(&all[i])) != 0) {
            goto failed;
        }
    }
    free(all);
    return json_pack("{s:o, s:I, s:I, s:I}", "executions", list,
                     "total", (json_int_t) n, "limit", (json_int_t) limit,
                     "offset", (json_int_t) offset);

failed:
    free(all);
    json_decref(list);
    return NULL;
}

/* The row of the cluster's unowned queued execution R, as those of
 * hg_query_queue (instance null, waiting "unowned"). */
static json_t *
hg_query_unowned_row(const hg_exec_record_t *r)
{
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:s, s:s, s:i, s:s*, s:I,"
                     " s:s, s:n}",
                     "id", r->id,
                     "job_id", r->job_id,
                     "due", hg_query_time(r->run_at > r->scheduled_for
                                          ? r->run_at : r->scheduled_for),
                     "run_at", hg_query_time(r->run_at),
                     "scheduled_for", hg_query_time(r->scheduled_for),
                     "priority", hg_conf_priority_name(
                         (hg_priority_t) r->priority),
                     "triggered_by", r->trigger != NULL ? r->trigger : "",
                     "attempt", (int) r->attempt,
                     "unique_key", r->unique_key,
                     "payload_bytes", (json_int_t) r->payload_len,
                     "waiting", "unowned",
                     "instance");
}

/* In a cluster: this instance's page of its waiting executions (read now:
 * it may have moved since the query started), each with its instance,
 * then the unowned ones the store read, up to the page's limit. */
static json_t *
hg_query_queue_all(hg_master_t *m, hg_query_t *q)
{
    json_t *answer, *list, *row;
    const char *me = m->cycle->conf->cluster.instance;
    size_t i, total;

    answer = hg_query_queue(m, q->job_id, q->limit, q->offset);
    if (answer == NULL) {
        return NULL;
    }
    list = json_object_get(answer, "executions");
    json_array_foreach(list, i, row) {
        if (json_object_set_new(row, "instance", json_string(me)) != 0) {
            goto failed;
        }
    }
    for (i = 0; i < q->nrows && json_array_size(list) < q->limit; i++) {
        if (json_array_append_new(list, hg_query_unowned_row(&q->rows[i].r))
            != 0)
        {
            goto failed;
        }
    }
    total = (size_t) json_integer_value(json_object_get(answer, "total"));
    if (json_object_set_new(answer, "total", json_integer(
            (json_int_t) (total + q->total))) != 0)
    {
        goto failed;
    }
    return answer;

failed:
    json_decref(answer);
    return NULL;
}

/* Each dead execution read gets its next attempt, unless its job is gone
 * or refuses it now (overlap = skip while it runs): those stay dead. */
static json_t *
hg_query_retry(hg_master_t *m, hg_query_t *q)
{
    json_t *retried = json_array(), *skipped = json_array();
    hg_execution_t *exec;
    size_t i;

    for (i = 0; i < q->nrows; i++) {
        const hg_exec_record_t *dead = &q->rows[i].r;

        if (dead->status != HG_EXEC_DEAD
            || (q->before > 0 && dead->finished_at >= q->before))
        {
            continue;
        }
        exec = hg_fire_retry_dead(m, dead, q->trigger);
        if (exec == NULL) {
            json_array_append_new(skipped, json_pack(
                "{s:s, s:s}", "id", dead->id, "error",
                errno == ENOENT ? "its job no longer exists"
                : errno == EBUSY ? "its job is running (overlap = skip)"
                : errno == ESHUTDOWN ? "the daemon is shutting down"
                : "out of memory"));
            continue;
        }
        hg_journal_undead(m, dead);
        hg_log_event(HG_LOG_INFO, "retry", dead->job_id, exec->id, NULL, 0,
                     "dead execution %s retried by hand (attempt %u)",
                     dead->id, exec->attempt);
        json_array_append_new(retried, json_pack("{s:s, s:s}", "dead",
                                                 dead->id, "execution",
                                                 exec->id));
    }
    return json_pack("{s:o, s:o}", "retried", retried, "skipped", skipped);
}

/*
 * What the store says after a DELETE /queue/{id}, read once everything
 * put before is committed: the execution taken out is recorded killed
 * (the answer waits for that, so a restart never runs it), or one that
 * was not in the queue is unknown or has ended (HG_AGAIN, saying which).
 */
static int
hg_query_dequeued_shared(hg_query_t *q, int rc, json_t **answer)
{
    const hg_store_dequeued_t *o = &q->dequeued;

    if (rc != HG_OK) {
        return rc;
    }
    if (o->removed) {
        *answer = json_pack("{s:s, s:s, s:s}", "id", q->exec_id, "job_id",
                            o->job_id, "status", "killed");
        return *answer != NULL ? HG_OK : HG_ERROR;
    }
    if (!o->found) {
        *answer = json_pack("{s:s}", "error", "no execution with this id");
        return HG_AGAIN;
    }
    if (o->instance[0] != '\0' && (strcmp(o->status, "queued") == 0
                                   || strcmp(o->status, "running") == 0))
    {
        /* Taken meanwhile (or never shared): it is that instance's. */
        *answer = json_pack("{s:o}", "error", json_sprintf(
            "execution %s is no longer in the cluster's shared queue: "
            "instance \"%s\" took it (it is %s there; DELETE it through "
            "that instance's API)", q->exec_id, o->instance, o->status));
        return *answer != NULL ? HG_REPLY_TAKEN : HG_ERROR;
    }
    *answer = json_pack("{s:s+}", "error", "the execution is not in the "
                        "queue: it is ", o->status);
    return HG_AGAIN;
}

static int
hg_query_dequeued(hg_query_t *q, int rc, json_t **answer)
{
    const hg_exec_record_t *r = q->nrows > 0 ? &q->rows[0].r : NULL;

    if (q->shared) {
        return hg_query_dequeued_shared(q, rc, answer);
    }

    if (rc == HG_OK && q->removed && r->status == HG_EXEC_KILLED) {
        *answer = json_pack("{s:s, s:s, s:s}", "id", r->id, "job_id",
                            r->job_id, "status", "killed");
        return *answer != NULL ? HG_OK : HG_ERROR;
    }
    if (q->removed) {
        *answer = json_pack("{s:s}", "error", "taken out of the queue, but "
                            "the store has not recorded it (the daemon's "
                            "log says why): a restart may run it");
        return HG_ERROR;
    }
    if (rc == HG_AGAIN) {
        *answer = json_pack("{s:s}", "error", "no execution with this id");
        return HG_AGAIN;
    }
    if (rc != HG_OK) {
        return rc;
    }
    *answer = json_pack("{s:s+}", "error", "the execution is not in the "
                        "queue: it is ", hg_exec_status_name(r->status));
    return HG_AGAIN;
}

static int
hg_query_answer(hg_master_t *m, hg_query_t *q, int rc, json_t **answer)
{
    hg_job_t *job;

    *answer = NULL;
    if (q->kind == HG_QUERY_DEQUEUED) {
        return hg_query_dequeued(q, rc, answer);
    }
    if (q->keyed && hg_store_claim_lost(m->store, q->exec_id)) {
        /* The cluster's unique index refused its key: as a pending key
         * in this instance's memory is refused (hg_api_enqueue). */
        *answer = json_pack("{s:s}", "error", "an execution with this "
                            "unique_key is queued already");
        return *answer != NULL ? HG_REPLY_EXISTS : HG_ERROR;
    }
    if (rc != HG_OK) {
        return rc;
    }
    switch (q->kind) {
    case HG_QUERY_JOB:
        job = hg_job_find(m, q->job_id);
        if (job == NULL) {
            return HG_AGAIN;        /* removed meanwhile */
        }
        *answer = hg_query_job_json(m, job, &q->stats);
        break;
    case HG_QUERY_EXECUTION:
        *answer = hg_query_execution_json(&q->rows[0].r);
        break;
    case HG_QUERY_DEAD:
    case HG_QUERY_EXECUTIONS:
        *answer = json_pack("{s:o, s:I, s:I, s:I}", "executions",
                            hg_query_list_json(q->rows, q->nrows),
                            "total", (json_int_t) q->total,
                            "limit", (json_int_t) q->limit,
                            "offset", (json_int_t) q->offset);
        break;
    case HG_QUERY_RETRY:
        *answer = hg_query_retry(m, q);
        break;
    case HG_QUERY_PURGE:
        if (q->exec_id != NULL && q->purged == 0) {
            return HG_AGAIN;
        }
        *answer = json_pack("{s:I}", "purged", (json_int_t) q->purged);
        break;
    case HG_QUERY_PUT_JOBS:
    case HG_QUERY_DEQUEUED:
        *answer = json_object();
        break;
    case HG_QUERY_JOBS:
        *answer = hg_query_jobs(m, q);
        break;
    case HG_QUERY_QUEUE:
        *answer = hg_query_queue_all(m, q);
        break;
    }
    return *answer != NULL ? HG_OK : HG_ERROR;
}

void
hg_query_done(hg_master_t *m, hg_store_task_t *task)
{
    hg_query_t *q = (hg_query_t *) task;
    json_t *answer;
    int rc;

    if (q->m != m) {
        hg_query_free(q);           /* its master is gone */
        return;
    }
    if (q->prev != NULL) {
        q->prev->next = q->next;
    } else {
        m->queries = q->next;
    }
    if (q->next != NULL) {
        q->next->prev = q->prev;
    }
    rc = hg_query_answer(m, q, task->rc, &answer);
    if (q->reply != NULL) {
        q->reply(q->data, rc, answer);
    }
    json_decref(answer);
    hg_query_free(q);
}

void
hg_query_orphan_all(hg_master_t *m)
{
    hg_query_t *q;

    for (q = m->queries; q != NULL; q = q->next) {
        q->m = NULL;
    }
    m->queries = NULL;
}
