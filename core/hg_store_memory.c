/*
 * hg_store_memory.c: the `memory` store driver, for tests and trials
 * (driver = "memory"). It keeps executions in a hash by id and per-job
 * state and statistics in a hash by job id, in the caller's thread:
 * every put is applied at once, so a barrier is committed as soon as it
 * is issued and there is no completion descriptor (notify_fd = -1).
 * Maintenance tasks run at once too, in hg_store_task, and wait in a list
 * for hg_store_task_done. Nothing survives hg_store_close.
 *
 * It has the sqlite driver's semantics (a later put of an id replaces the
 * record, statistics count a record when it becomes final, cleanup keeps
 * dead executions) so that tests of the master can run on either.
 */

#include "hg_core.h"

#include "hg_log.h"
#include "hg_map.h"
#include "hg_store.h"

typedef struct hg_mem_job_s {
    char *job_id;                   /* the key of jobs */
    bool has_state;
    int64_t last_fire;
    bool paused;
    /* statistics */
    uint64_t runs, successes, failures, durations;
    int64_t duration_sum, duration_max, last_run;
    hg_exec_status_t last_status;
    hg_store_bucket_t *buckets;     /* sorted by bucket */
    size_t nbuckets, cap;
} hg_mem_job_t;

typedef struct hg_mem_s {
    hg_map_t execs;                 /* id -> hg_exec_row_t * */
    hg_map_t jobs;                  /* job id -> hg_mem_job_t * */
    uint64_t issued;
    uint64_t written;
    hg_store_tasks_t done;          /* finished tasks, oldest first */
    hg_map_t claims;                /* "job_id fire_time" -> claim */
    uint64_t tokens;                /* the last fencing token given out */
    json_t *api_jobs;               /* id -> record (hg_store_put_job) */
} hg_mem_t;

static hg_mem_job_t *
hg_mem_job(hg_mem_t *m, const char *job_id)
{
    hg_mem_job_t *job = hg_map_get(&m->jobs, job_id);

    if (job != NULL) {
        return job;
    }
    job = calloc(1, sizeof(*job));
    if (job == NULL) {
        return NULL;
    }
    job->job_id = strdup(job_id);
    if (job->job_id == NULL || hg_map_put(&m->jobs, job->job_id, job) != HG_OK)
    {
        free(job->job_id);
        free(job);
        return NULL;
    }
    return job;
}

static int
hg_mem_bucket_add(hg_mem_job_t *job, unsigned bucket, int64_t delta)
{
    size_t lo = 0, hi = job->nbuckets, mid;
    hg_store_bucket_t *b;

    while (lo < hi) {
        mid = (lo + hi) / 2;
        if (job->buckets[mid].bucket < bucket) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < job->nbuckets && job->buckets[lo].bucket == bucket) {
        job->buckets[lo].count += delta;
        return HG_OK;
    }
    if (job->nbuckets == job->cap) {
        size_t cap = job->cap ? job->cap * 2 : 8;
        b = realloc(job->buckets, cap * sizeof(*b));
        if (b == NULL) {
            return HG_ERROR;
        }
        job->buckets = b;
        job->cap = cap;
    }
    memmove(&job->buckets[lo + 1], &job->buckets[lo],
            (job->nbuckets - lo) * sizeof(*job->buckets));
    job->buckets[lo].bucket = bucket;
    job->buckets[lo].count = delta;
    job->nbuckets++;
    return HG_OK;
}

/* Adds (sign 1) or takes away (sign -1) REC's part of its job's stats. */
static int
hg_mem_stats_apply(hg_mem_t *m, const hg_exec_record_t *rec, int sign)
{
    hg_stats_entry_t e;
    hg_mem_job_t *job;

    hg_stats_entry(rec, &e);
    if (e.runs == 0) {
        return HG_OK;
    }
    job = hg_mem_job(m, rec->job_id);
    if (job == NULL) {
        return HG_ERROR;
    }
    job->runs += (uint64_t) (sign * e.runs);
    job->successes += (uint64_t) (sign * e.successes);
    job->failures += (uint64_t) (sign * e.failures);
    if (e.durations) {
        job->durations += (uint64_t) sign;
        job->duration_sum += sign * e.duration_ms;
        if (sign > 0 && e.duration_ms > job->duration_max) {
            job->duration_max = e.duration_ms;
        }
        if (hg_mem_bucket_add(job, e.bucket, sign) != HG_OK) {
            return HG_ERROR;
        }
    }
    if (sign > 0 && e.time >= job->last_run) {
        job->last_run = e.time;
        job->last_status = rec->status;
    }
    return HG_OK;
}

static int
hg_mem_open(hg_store_t *store, const hg_conf_t *conf,
            const hg_store_options_t *options, char *err, size_t errlen)
{
    hg_mem_t *m;

    HG_UNUSED(conf);
    HG_UNUSED(options);
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        snprintf(err, errlen, "store: out of memory");
        return HG_ERROR;
    }
    hg_map_init(&m->execs);
    hg_map_init(&m->jobs);
    hg_map_init(&m->claims);
    store->data = m;
    store->notify_fd = -1;
    return HG_OK;
}

static void
hg_mem_close(hg_store_t *store)
{
    hg_mem_t *m = store->data;
    size_t i = 0;
    const char *key;
    void *value;

    while (hg_map_next(&m->execs, &i, &key, &value)) {
        hg_exec_row_t *row = value;
        hg_exec_row_free(row);
        free(row);
    }
    i = 0;
    while (hg_map_next(&m->jobs, &i, &key, &value)) {
        hg_mem_job_t *job = value;
        free(job->buckets);
        free(job->job_id);
        free(job);
    }
    hg_map_free(&m->execs);
    hg_map_free(&m->jobs);
    hg_map_free_values(&m->claims);
    hg_store_tasks_free(&m->done);
    json_decref(m->api_jobs);
    free(m);
    store->data = NULL;
}

static int
hg_mem_put_execution(hg_store_t *store, const hg_exec_record_t *rec)
{
    hg_mem_t *m = store->data;
    hg_exec_row_t *row, *old;

    row = malloc(sizeof(*row));
    if (row == NULL || hg_exec_row_copy(row, rec) != HG_OK) {
        free(row);
        goto nomem;
    }
    old = hg_map_get(&m->execs, rec->id);
    if (old != NULL && hg_mem_stats_apply(m, &old->r, -1) != HG_OK) {
        goto failed;
    }
    if (hg_mem_stats_apply(m, &row->r, 1) != HG_OK) {
        if (old != NULL) {
            (void) hg_mem_stats_apply(m, &old->r, 1);
        }
        goto failed;
    }
    /* The key is the new row's id: the old row (and its id) goes. */
    if (hg_map_put(&m->execs, row->r.id, row) != HG_OK) {
        (void) hg_mem_stats_apply(m, &row->r, -1);
        if (old != NULL) {
            (void) hg_mem_stats_apply(m, &old->r, 1);
        }
        goto failed;
    }
    if (old != NULL) {
        hg_exec_row_free(old);
        free(old);
    }
    m->written++;
    return HG_OK;

failed:
    hg_exec_row_free(row);
    free(row);
nomem:
    hg_log(HG_LOG_ERROR, "store: out of memory: execution %s not recorded",
           rec->id);
    return HG_ERROR;
}

static int
hg_mem_put_job_state(hg_store_t *store, const char *job_id,
                     int64_t last_fire, bool paused)
{
    hg_mem_job_t *job = hg_mem_job(store->data, job_id);

    if (job == NULL) {
        hg_log(HG_LOG_ERROR, "store: out of memory: state of job %s not "
               "recorded", job_id);
        return HG_ERROR;
    }
    job->has_state = true;
    job->last_fire = last_fire;
    job->paused = paused;
    return HG_OK;
}

static int
hg_mem_barrier(hg_store_t *store, uint64_t *ticket)
{
    hg_mem_t *m = store->data;

    *ticket = ++m->issued;
    return HG_OK;
}

static uint64_t
hg_mem_committed(hg_store_t *store)
{
    hg_mem_t *m = store->data;

    return m->issued;
}

/* Newest first: scheduled_for, then id, both descending. */
static int
hg_mem_newest_first(const void *a, const void *b)
{
    const hg_exec_row_t *x = *(const hg_exec_row_t *const *) a;
    const hg_exec_row_t *y = *(const hg_exec_row_t *const *) b;

    if (x->r.scheduled_for != y->r.scheduled_for) {
        return x->r.scheduled_for > y->r.scheduled_for ? -1 : 1;
    }
    return -strcmp(x->r.id, y->r.id);
}

static int
hg_mem_oldest_first(const void *a, const void *b)
{
    return hg_mem_newest_first(b, a);
}

typedef bool (*hg_mem_filter_t)(const hg_exec_record_t *r, const void *arg);

/* Rows (deep copies, WITH_BLOBS or not) of the executions FILTER keeps,
 * sorted by CMP, from OFFSET, at most LIMIT (0 = all). */
static int
hg_mem_select(hg_mem_t *m, hg_mem_filter_t filter, const void *arg,
              int (*cmp)(const void *, const void *), size_t limit,
              size_t offset, bool with_blobs, hg_exec_row_t **rows_out,
              size_t *n_out)
{
    hg_exec_row_t **match = NULL, *rows = NULL;
    size_t nmatch = 0, i = 0, j, count;
    const char *key;
    void *value;

    if (m->execs.count > 0) {
        match = malloc(m->execs.count * sizeof(*match));
        if (match == NULL) {
            goto failed;
        }
    }
    while (hg_map_next(&m->execs, &i, &key, &value)) {
        hg_exec_row_t *row = value;
        if (filter(&row->r, arg)) {
            match[nmatch++] = row;
        }
    }
    if (nmatch > 1) {
        qsort(match, nmatch, sizeof(*match), cmp);
    }
    count = offset < nmatch ? nmatch - offset : 0;
    if (limit > 0 && count > limit) {
        count = limit;
    }
    if (count > 0) {
        rows = calloc(count, sizeof(*rows));
        if (rows == NULL) {
            goto failed;
        }
    }
    for (j = 0; j < count; j++) {
        hg_exec_record_t r = match[offset + j]->r;
        if (!with_blobs) {
            r.output = NULL;
            r.output_len = 0;
            r.payload = NULL;
            r.payload_len = 0;
        }
        if (hg_exec_row_copy(&rows[j], &r) != HG_OK) {
            hg_exec_rows_free(rows, j);
            rows = NULL;
            goto failed;
        }
    }
    free(match);
    *rows_out = rows;
    *n_out = count;
    return HG_OK;

failed:
    free(match);
    hg_log(HG_LOG_ERROR, "store: out of memory reading executions");
    return HG_ERROR;
}

static bool
hg_mem_unfinished(const hg_exec_record_t *r, const void *arg)
{
    HG_UNUSED(arg);
    return !hg_exec_status_final(r->status);
}

static int
hg_mem_load_unfinished(hg_store_t *store, hg_exec_row_t **rows, size_t *n)
{
    return hg_mem_select(store->data, hg_mem_unfinished, NULL,
                         hg_mem_oldest_first, 0, 0, true, rows, n);
}

static int
hg_mem_load_job_states(hg_store_t *store, json_t **states)
{
    hg_mem_t *m = store->data;
    json_t *all, *one;
    size_t i = 0;
    const char *key;
    void *value;

    all = json_object();
    if (all == NULL) {
        return HG_ERROR;
    }
    while (hg_map_next(&m->jobs, &i, &key, &value)) {
        hg_mem_job_t *job = value;
        if (!job->has_state) {
            continue;
        }
        one = json_pack("{s:I, s:b}", "last_fire", (json_int_t) job->last_fire,
                        "paused", job->paused);
        if (one == NULL || json_object_set_new(all, key, one) != 0) {
            json_decref(all);
            return HG_ERROR;
        }
    }
    *states = all;
    return HG_OK;
}

static int
hg_mem_get_execution(hg_store_t *store, const char *id, hg_exec_row_t *row)
{
    hg_mem_t *m = store->data;
    hg_exec_row_t *found = hg_map_get(&m->execs, id);

    if (found == NULL) {
        return HG_AGAIN;
    }
    return hg_exec_row_copy(row, &found->r);
}

typedef struct hg_mem_list_filter_s {
    const char *job_id;
    bool has_status;
    hg_exec_status_t status;
} hg_mem_list_filter_t;

static bool
hg_mem_list_match(const hg_exec_record_t *r, const void *arg)
{
    const hg_mem_list_filter_t *f = arg;

    return (f->job_id == NULL || strcmp(r->job_id, f->job_id) == 0)
           && (!f->has_status || r->status == f->status);
}

static int
hg_mem_list_executions(hg_store_t *store, const char *job_id,
                       const char *status, size_t limit, size_t offset,
                       hg_exec_row_t **rows, size_t *n)
{
    hg_mem_list_filter_t f = { job_id, false, HG_EXEC_QUEUED };

    if (status != NULL) {
        if (hg_exec_status_parse(status, &f.status) != HG_OK) {
            return HG_ERROR;
        }
        f.has_status = true;
    }
    return hg_mem_select(store->data, hg_mem_list_match, &f,
                         hg_mem_newest_first, limit, offset, false, rows, n);
}

static int
hg_mem_count_executions(hg_store_t *store, const char *job_id,
                        const char *status, uint64_t *n)
{
    hg_mem_list_filter_t f = { job_id, status != NULL, HG_EXEC_QUEUED };
    hg_mem_t *m = store->data;
    const char *key;
    void *value;
    size_t it = 0;

    if (status != NULL && hg_exec_status_parse(status, &f.status) != HG_OK) {
        return HG_ERROR;
    }
    while (hg_map_next(&m->execs, &it, &key, &value)) {
        *n += hg_mem_list_match(&((hg_exec_row_t *) value)->r, &f);
    }
    return HG_OK;
}

static int
hg_mem_job_stats(hg_store_t *store, const char *job_id, hg_job_stats_t *stats)
{
    hg_mem_t *m = store->data;
    hg_mem_job_t *job = hg_map_get(&m->jobs, job_id);

    if (job == NULL) {
        return HG_OK;
    }
    stats->runs = job->runs;
    stats->successes = job->successes;
    stats->failures = job->failures;
    stats->mean_duration_ms = job->durations > 0
        ? (double) job->duration_sum / (double) job->durations : 0.0;
    stats->p95_duration_ms = hg_store_p95(job->buckets, job->nbuckets,
                                          job->duration_max);
    stats->last_run = job->last_run;
    stats->last_status = job->last_status;
    return HG_OK;
}

static int
hg_mem_unique_key_pending(hg_store_t *store, const char *unique_key,
                          bool *pending)
{
    hg_mem_t *m = store->data;
    size_t i = 0;
    const char *key;
    void *value;

    while (hg_map_next(&m->execs, &i, &key, &value)) {
        const hg_exec_row_t *row = value;
        if (row->r.status == HG_EXEC_QUEUED && row->r.unique_key != NULL
            && strcmp(row->r.unique_key, unique_key) == 0)
        {
            *pending = true;
            return HG_OK;
        }
    }
    return HG_OK;
}

/* Delete ROW, kept under KEY; a tombstone is left in the map, so an
 * iteration over it goes on safely. */
static void
hg_mem_delete(hg_mem_t *m, const char *key, hg_exec_row_t *row,
              uint64_t *deleted)
{
    hg_map_remove(&m->execs, key);
    hg_exec_row_free(row);
    free(row);
    (*deleted)++;
}

static void
hg_mem_cleanup(hg_mem_t *m, int64_t older_than, uint64_t *deleted)
{
    size_t i = 0;
    const char *key;
    void *value;

    /* No batches: nothing waits on a memory store. */
    while (hg_map_next(&m->execs, &i, &key, &value)) {
        hg_exec_row_t *row = value;
        if (hg_exec_status_final(row->r.status)
            && row->r.status != HG_EXEC_DEAD
            && row->r.finished_at > 0 && row->r.finished_at < older_than)
        {
            hg_mem_delete(m, key, row, deleted);
        }
    }
}

static bool
hg_mem_purgeable(const hg_exec_row_t *row, const char *job_id,
                 int64_t before)
{
    return row->r.status == HG_EXEC_DEAD
           && (job_id == NULL || strcmp(row->r.job_id, job_id) == 0)
           && (before <= 0 || row->r.finished_at < before);
}

static int
hg_mem_purge_dead(hg_store_t *store, const char *id, const char *job_id,
                  int64_t before, uint64_t *deleted)
{
    hg_mem_t *m = store->data;
    hg_exec_row_t *row;
    size_t i = 0;
    const char *key;
    void *value;

    if (id != NULL) {
        /* One by its id: the map's own key, no walk. */
        row = hg_map_get(&m->execs, id);
        if (row != NULL && hg_mem_purgeable(row, job_id, before)) {
            hg_mem_delete(m, row->r.id, row, deleted);
        }
        return HG_OK;
    }
    while (hg_map_next(&m->execs, &i, &key, &value)) {
        if (hg_mem_purgeable(value, job_id, before)) {
            hg_mem_delete(m, key, value, deleted);
        }
    }
    return HG_OK;
}

typedef struct hg_mem_claim_s {
    int64_t fire_time;
    char key[];                     /* "job_id fire_time" */
} hg_mem_claim_t;

/* Claims of fire times past retention: nothing fires at those again. */
static void
hg_mem_claims_cleanup(hg_mem_t *m, int64_t older_than)
{
    size_t i = 0;
    const char *key;
    void *value;

    while (hg_map_next(&m->claims, &i, &key, &value)) {
        hg_mem_claim_t *claim = value;
        if (claim->fire_time < older_than) {
            hg_map_remove(&m->claims, key);
            free(claim);
        }
    }
}

/* Vacuum and health have nothing to do in memory. */
static int
hg_mem_task(hg_store_t *store, hg_store_task_t *task)
{
    hg_mem_t *m = store->data;

    task->rc = HG_OK;
    if (task->kind == HG_STORE_TASK_CLEANUP) {
        hg_mem_cleanup(m, task->older_than, &task->deleted);
        hg_mem_claims_cleanup(m, task->older_than);
    } else if (task->kind == HG_STORE_TASK_QUERY) {
        task->rc = task->query(store, task);
    }
    hg_store_tasks_push(&m->done, task);
    return HG_OK;
}

static hg_store_task_t *
hg_mem_task_done(hg_store_t *store)
{
    hg_mem_t *m = store->data;

    return hg_store_tasks_pop(&m->done);
}

static int
hg_mem_health(hg_store_t *store, json_t **report)
{
    hg_mem_t *m = store->data;

    *report = json_pack("{s:s, s:n, s:I, s:I, s:I, s:I, s:b, s:n, s:I, "
                        "s:I}",
                        "driver", "memory", "path",
                        "executions", (json_int_t) m->execs.count,
                        "queue_depth", (json_int_t) 0,
                        "written", (json_int_t) m->written,
                        "write_errors", (json_int_t) 0,
                        "failing", 0,
                        "last_error",
                        "dropped", (json_int_t) 0,
                        "committed", (json_int_t) m->issued);
    return *report != NULL ? HG_OK : HG_ERROR;
}

/* --- the cluster's calls: one instance, which always wins ------------- */

static int
hg_mem_claim_fire(hg_store_t *store, const char *job_id, int64_t fire_time,
                  uint64_t *token)
{
    hg_mem_t *m = store->data;
    hg_mem_claim_t *claim;
    char key[32];
    size_t len;

    /* Job ids hold no space: "job_id fire_time" names one fire. */
    snprintf(key, sizeof(key), " %" PRId64, fire_time);
    len = strlen(job_id) + strlen(key);
    claim = malloc(sizeof(*claim) + len + 1);
    if (claim == NULL) {
        return HG_ERROR;
    }
    claim->fire_time = fire_time;
    snprintf(claim->key, len + 1, "%s%s", job_id, key);
    if (hg_map_get(&m->claims, claim->key) != NULL) {
        free(claim);
        return HG_AGAIN;
    }
    if (hg_map_put(&m->claims, claim->key, claim) != HG_OK) {
        free(claim);
        return HG_ERROR;
    }
    *token = ++m->tokens;
    return HG_OK;
}

typedef struct hg_mem_due_s {
    const hg_store_leases_t *leases;
    int64_t now;
} hg_mem_due_t;

static bool
hg_mem_takeable(const hg_exec_record_t *r, const void *arg)
{
    const hg_mem_due_t *due = arg;

    return r->status == HG_EXEC_QUEUED && r->run_at <= due->now
           && hg_store_leases_free_at(due->leases, r->id, due->now);
}

/* take_queued's order: priority (high first), run_at, id. */
static int
hg_mem_take_order(const void *a, const void *b)
{
    const hg_exec_record_t *x = &(*(const hg_exec_row_t *const *) a)->r;
    const hg_exec_record_t *y = &(*(const hg_exec_row_t *const *) b)->r;

    if (x->priority != y->priority) {
        return x->priority > y->priority ? -1 : 1;
    }
    if (x->run_at != y->run_at) {
        return x->run_at < y->run_at ? -1 : 1;
    }
    return strcmp(x->id, y->id);
}

static int
hg_mem_take_queued(hg_store_t *store, int64_t now, int64_t lease_ms,
                   size_t limit, hg_exec_row_t **rows, size_t *n)
{
    hg_mem_t *m = store->data;
    hg_mem_due_t due = { &store->leases, now };

    if (hg_mem_select(m, hg_mem_takeable, &due, hg_mem_take_order, limit, 0,
                      true, rows, n) != HG_OK)
    {
        return HG_ERROR;
    }
    return hg_store_leases_take(&store->leases, rows, n, now + lease_ms);
}

static int
hg_mem_load_jobs(hg_store_t *store, json_t **jobs)
{
    hg_mem_t *m = store->data;

    *jobs = m->api_jobs != NULL ? json_deep_copy(m->api_jobs)
                                : json_object();
    return *jobs != NULL ? HG_OK : HG_ERROR;
}

/* All or none: the changes are made on a copy, which then replaces the
 * set. */
static int
hg_mem_put_jobs(hg_store_t *store, const json_t *changes)
{
    hg_mem_t *m = store->data;
    json_t *all, *copy, *old, *record;
    const char *id;

    all = m->api_jobs != NULL ? json_deep_copy(m->api_jobs) : json_object();
    if (all == NULL) {
        return HG_ERROR;
    }
    json_object_foreach((json_t *) changes, id, record) {
        if (json_is_null(record)) {
            (void) json_object_del(all, id);
            continue;
        }
        copy = json_deep_copy(record);
        /* as the sqlite driver: a replaced job keeps its creator and
         * birth */
        old = json_object_get(all, id);
        if (copy == NULL
            || (old != NULL
                && (json_object_set(copy, "created_by",
                                    json_object_get(old, "created_by")) != 0
                    || json_object_set(copy, "created_at",
                                       json_object_get(old, "created_at"))
                       != 0))
            || json_object_set_new(all, id, copy) != 0)
        {
            json_decref(all);
            return HG_ERROR;
        }
    }
    json_decref(m->api_jobs);
    m->api_jobs = all;
    return HG_OK;
}

/* Every job's statistics: the map, read whole (in memory, one read is
 * one walk). */
static int
hg_mem_all_job_stats(hg_store_t *store, hg_job_stats_row_t **rows,
                     size_t *n)
{
    hg_mem_t *m = store->data;
    hg_job_stats_row_t *list;
    const char *key;
    void *value;
    size_t it = 0;

    list = calloc(m->jobs.count + 1, sizeof(*list));
    if (list == NULL) {
        return HG_ERROR;
    }
    while (hg_map_next(&m->jobs, &it, &key, &value)) {
        list[*n].job_id = strdup(key);
        if (list[*n].job_id == NULL) {
            hg_job_stats_rows_free(list, *n);
            *n = 0;
            return HG_ERROR;
        }
        (void) hg_mem_job_stats(store, key, &list[*n].stats);
        (*n)++;
    }
    *rows = list;
    return HG_OK;
}

const hg_store_driver_t hg_store_memory_driver = {
    "memory",
    hg_mem_open,
    hg_mem_close,
    hg_mem_put_execution,
    hg_mem_put_job_state,
    hg_mem_barrier,
    hg_mem_committed,
    hg_mem_load_unfinished,
    hg_mem_load_job_states,
    hg_mem_get_execution,
    hg_mem_list_executions,
    hg_mem_job_stats,
    hg_mem_unique_key_pending,
    hg_mem_purge_dead,
    hg_mem_count_executions,
    hg_mem_load_jobs,
    hg_mem_put_jobs,
    hg_mem_task,
    hg_mem_task_done,
    hg_mem_health,
    NULL,
    NULL,
    hg_mem_claim_fire,
    hg_mem_take_queued,
    NULL,
    NULL,
    hg_mem_all_job_stats,
    NULL,                           /* no shared queue */
    NULL
};
