/*
 * hg_store.c owns what every store driver shares: the table of drivers and
 * the dispatch to the one named in the configuration, execution status
 * names, record validation and copying, freeing rows, the duration buckets
 * behind p95, how a record counts in its job's statistics, the lines a
 * writer thread queues for the master to log, the leases of a driver that
 * serves one instance, a cluster's preferred claimer of a fire time (a
 * hash every instance computes alike), and `hourglass -t`'s check.
 *
 * It never does I/O of its own but through a driver, never calls the
 * shared writer (hg_store_writer.c calls it), and holds no state between
 * calls: a store is what hg_store_open returned.
 */

#include "hg_core.h"

#include <poll.h>

#include "hg_log.h"
#include "hg_store.h"
#include "hg_store_writer.h"

/* The drivers by the name store.driver gives them. */
static const struct {
    const char *name;
    const hg_store_driver_t *driver;
} hg_store_drivers[] = {
    { "memory", &hg_store_memory_driver },
#if HG_HAVE_SQLITE
    { "sqlite", &hg_store_sqlite_driver },
#endif
#if HG_HAVE_POSTGRES
    { "postgres", &hg_store_postgres_driver },
#endif
#if HG_HAVE_REDIS
    /* the history in SQLite, the fire times claimed in Redis */
    { "redis", &hg_store_sqlite_driver },
#endif
};

/* --- statuses ------------------------------------------------------------ */

static const char *const hg_exec_status_names[HG_EXEC_NSTATUS] = {
    "queued", "running", "succeeded", "failed", "timed_out", "crashed",
    "killed", "skipped", "missed", "dead"
};

const char *
hg_exec_status_name(hg_exec_status_t status)
{
    if ((unsigned) status >= HG_EXEC_NSTATUS) {
        return "unknown";
    }
    return hg_exec_status_names[status];
}

int
hg_exec_status_parse(const char *name, hg_exec_status_t *status)
{
    unsigned i;

    if (name == NULL) {
        return HG_ERROR;
    }
    for (i = 0; i < HG_EXEC_NSTATUS; i++) {
        if (strcmp(name, hg_exec_status_names[i]) == 0) {
            *status = (hg_exec_status_t) i;
            return HG_OK;
        }
    }
    return HG_ERROR;
}

bool
hg_exec_status_final(hg_exec_status_t status)
{
    return status != HG_EXEC_QUEUED && status != HG_EXEC_RUNNING;
}

/* --- records and rows ---------------------------------------------------- */

int
hg_exec_record_check(const hg_exec_record_t *rec, char *err, size_t errlen)
{
    if (rec == NULL) {
        snprintf(err, errlen, "no record");
        return HG_ERROR;
    }
    if (rec->id == NULL || rec->id[0] == '\0') {
        snprintf(err, errlen, "execution without an id");
        return HG_ERROR;
    }
    if (rec->job_id == NULL || rec->job_id[0] == '\0') {
        snprintf(err, errlen, "execution %s: no job_id", rec->id);
        return HG_ERROR;
    }
    if ((unsigned) rec->status >= HG_EXEC_NSTATUS) {
        snprintf(err, errlen, "execution %s: status %d is not a status",
                 rec->id, (int) rec->status);
        return HG_ERROR;
    }
    if (rec->output == NULL && rec->output_len > 0) {
        snprintf(err, errlen, "execution %s: output_len %zu without output",
                 rec->id, rec->output_len);
        return HG_ERROR;
    }
    if (rec->payload == NULL && rec->payload_len > 0) {
        snprintf(err, errlen, "execution %s: payload_len %zu without "
                 "payload", rec->id, rec->payload_len);
        return HG_ERROR;
    }
    if (rec->output_len > INT_MAX / 2 || rec->payload_len > INT_MAX / 2) {
        snprintf(err, errlen, "execution %s: output or payload over 1GiB",
                 rec->id);
        return HG_ERROR;
    }
    return HG_OK;
}

static size_t
hg_str_size(const char *s)
{
    return s != NULL ? strlen(s) + 1 : 0;
}

/* Copies LEN bytes (plus a NUL) of SRC to *cursor; NULL stays NULL. */
static char *
hg_row_put(char **cursor, const void *src, size_t len)
{
    char *dst;

    if (src == NULL) {
        return NULL;
    }
    dst = *cursor;
    if (len > 0) {
        memcpy(dst, src, len);
    }
    dst[len] = '\0';
    *cursor += len + 1;
    return dst;
}

int
hg_exec_row_copy(hg_exec_row_t *row, const hg_exec_record_t *src)
{
    size_t size;
    char *mem, *cursor;

    size = hg_str_size(src->id) + hg_str_size(src->run_id)
           + hg_str_size(src->job_id) + hg_str_size(src->trigger)
           + hg_str_size(src->error) + hg_str_size(src->unique_key)
           + (src->output != NULL ? src->output_len + 1 : 0)
           + (src->payload != NULL ? src->payload_len + 1 : 0);
    mem = malloc(size > 0 ? size : 1);
    if (mem == NULL) {
        return HG_ERROR;
    }
    row->r = *src;
    row->mem = mem;
    cursor = mem;
    row->r.id = src->id
        ? hg_row_put(&cursor, src->id, strlen(src->id)) : NULL;
    row->r.run_id = src->run_id
        ? hg_row_put(&cursor, src->run_id, strlen(src->run_id)) : NULL;
    row->r.job_id = src->job_id
        ? hg_row_put(&cursor, src->job_id, strlen(src->job_id)) : NULL;
    row->r.trigger = src->trigger
        ? hg_row_put(&cursor, src->trigger, strlen(src->trigger)) : NULL;
    row->r.error = src->error
        ? hg_row_put(&cursor, src->error, strlen(src->error)) : NULL;
    row->r.unique_key = src->unique_key
        ? hg_row_put(&cursor, src->unique_key, strlen(src->unique_key))
        : NULL;
    row->r.output = hg_row_put(&cursor, src->output, src->output_len);
    row->r.output_len = src->output != NULL ? src->output_len : 0;
    row->r.payload = hg_row_put(&cursor, src->payload, src->payload_len);
    row->r.payload_len = src->payload != NULL ? src->payload_len : 0;
    return HG_OK;
}

void
hg_exec_row_free(hg_exec_row_t *row)
{
    if (row == NULL) {
        return;
    }
    free(row->mem);
    memset(row, 0, sizeof(*row));
}

void
hg_exec_rows_free(hg_exec_row_t *rows, size_t n)
{
    size_t i;

    if (rows == NULL) {
        return;
    }
    for (i = 0; i < n; i++) {
        free(rows[i].mem);
    }
    free(rows);
}

/* --- statistics ---------------------------------------------------------- */

#define HG_BUCKET_EXACT   128       /* one bucket per ms below this */
#define HG_BUCKET_SUBBITS 6         /* 64 buckets per power of two above */

unsigned
hg_store_duration_bucket(int64_t ms)
{
    uint64_t v;
    unsigned k;

    if (ms < HG_BUCKET_EXACT) {
        return ms < 0 ? 0 : (unsigned) ms;
    }
    v = (uint64_t) ms;
    k = 63 - (unsigned) __builtin_clzll(v);             /* >= 7 */
    return HG_BUCKET_EXACT + (k - 7) * (1u << HG_BUCKET_SUBBITS)
           + (unsigned) ((v >> (k - HG_BUCKET_SUBBITS))
                         - (1u << HG_BUCKET_SUBBITS));
}

int64_t
hg_store_bucket_high(unsigned bucket)
{
    unsigned k, sub;
    uint64_t low, width;

    if (bucket < HG_BUCKET_EXACT) {
        return (int64_t) bucket;
    }
    k = 7 + (bucket - HG_BUCKET_EXACT) / (1u << HG_BUCKET_SUBBITS);
    sub = (bucket - HG_BUCKET_EXACT) % (1u << HG_BUCKET_SUBBITS);
    if (k > 62) {
        return INT64_MAX;
    }
    width = 1ULL << (k - HG_BUCKET_SUBBITS);
    low = ((1ULL << HG_BUCKET_SUBBITS) + sub) * width;
    return (int64_t) (low + width - 1);
}

int64_t
hg_store_p95(const hg_store_bucket_t *buckets, size_t n, int64_t max_ms)
{
    uint64_t total = 0, rank, seen = 0;
    size_t i;
    int64_t high;

    for (i = 0; i < n; i++) {
        if (buckets[i].count > 0) {
            total += (uint64_t) buckets[i].count;
        }
    }
    if (total == 0) {
        return 0;
    }
    rank = (total * 95 + 99) / 100;             /* nearest rank, >= 1 */
    for (i = 0; i < n; i++) {
        if (buckets[i].count <= 0) {
            continue;
        }
        seen += (uint64_t) buckets[i].count;
        if (seen >= rank) {
            high = hg_store_bucket_high(buckets[i].bucket);
            return high < max_ms ? high : max_ms;
        }
    }
    return max_ms;
}

void
hg_stats_entry(const hg_exec_record_t *rec, hg_stats_entry_t *e)
{
    memset(e, 0, sizeof(*e));
    if (!hg_exec_status_final(rec->status)) {
        return;
    }
    e->runs = 1;
    switch (rec->status) {
    case HG_EXEC_SUCCEEDED:
        e->successes = 1;
        break;
    case HG_EXEC_FAILED:
    case HG_EXEC_TIMED_OUT:
    case HG_EXEC_CRASHED:
    case HG_EXEC_KILLED:
    case HG_EXEC_DEAD:
        e->failures = 1;
        break;
    default:                        /* skipped, missed: neither */
        break;
    }
    if (rec->duration_ms >= 0) {
        e->durations = 1;
        e->duration_ms = rec->duration_ms;
        e->bucket = hg_store_duration_bucket(rec->duration_ms);
    }
    e->time = rec->finished_at > 0 ? rec->finished_at
              : rec->started_at > 0 ? rec->started_at : rec->scheduled_for;
}

void
hg_store_deltas_free(hg_map_t *deltas)
{
    size_t i = 0;
    const char *key;
    void *value;

    while (hg_map_next(deltas, &i, &key, &value)) {
        hg_store_delta_t *delta = value;
        free(delta->buckets);
        free(delta);
    }
    hg_map_free(deltas);
}

/* Adds (sign 1) or takes away (sign -1) REC's part of its job's stats. */
int
hg_store_delta_apply(hg_map_t *deltas, const hg_exec_record_t *rec, int sign)
{
    hg_stats_entry_t e;
    hg_store_delta_t *delta;
    size_t i, len;

    hg_stats_entry(rec, &e);
    if (e.runs == 0) {
        return HG_OK;
    }
    delta = hg_map_get(deltas, rec->job_id);
    if (delta == NULL) {
        len = strlen(rec->job_id);
        delta = calloc(1, sizeof(*delta) + len + 1);
        if (delta == NULL) {
            return HG_ERROR;
        }
        memcpy(delta->job_id, rec->job_id, len + 1);
        if (hg_map_put(deltas, delta->job_id, delta) != HG_OK) {
            free(delta);
            return HG_ERROR;
        }
    }
    delta->runs += sign * e.runs;
    delta->successes += sign * e.successes;
    delta->failures += sign * e.failures;
    if (e.durations) {
        delta->durations += sign;
        delta->duration_sum += sign * e.duration_ms;
        if (sign > 0 && e.duration_ms > delta->duration_max) {
            delta->duration_max = e.duration_ms;
        }
        for (i = 0; i < delta->nbuckets; i++) {
            if (delta->buckets[i].bucket == e.bucket) {
                break;
            }
        }
        if (i == delta->nbuckets) {
            if (delta->nbuckets == delta->cap) {
                size_t cap = delta->cap ? delta->cap * 2 : 8;
                hg_store_bucket_t *b = realloc(delta->buckets,
                                               cap * sizeof(*b));
                if (b == NULL) {
                    return HG_ERROR;
                }
                delta->buckets = b;
                delta->cap = cap;
            }
            delta->buckets[i].bucket = e.bucket;
            delta->buckets[i].count = 0;
            delta->nbuckets++;
        }
        delta->buckets[i].count += sign;
    }
    if (sign > 0 && (!delta->has_last || e.time >= delta->last_run)) {
        delta->has_last = true;
        delta->last_run = e.time;
        delta->last_status = rec->status;
    }
    return HG_OK;
}


/* --- lines from a writer thread ------------------------------------------ */

void
hg_store_logline_add(hg_store_logline_t **list, hg_log_level_t level,
                     const char *fmt, ...)
{
    va_list ap;
    int len;
    hg_store_logline_t *line;

    va_start(ap, fmt);
    len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0) {
        return;
    }
    line = malloc(sizeof(*line) + (size_t) len + 1);
    if (line == NULL) {
        return;
    }
    line->next = NULL;
    line->level = level;
    va_start(ap, fmt);
    vsnprintf(line->text, (size_t) len + 1, fmt, ap);
    va_end(ap);
    while (*list != NULL) {
        list = &(*list)->next;
    }
    *list = line;
}

void
hg_store_loglines_emit(hg_store_logline_t *list)
{
    hg_store_logline_t *next;

    for (; list != NULL; list = next) {
        next = list->next;
        hg_log(list->level, "%s", list->text);
        free(list);
    }
}

/* --- dispatch ------------------------------------------------------------ */

static const hg_store_driver_t *
hg_store_find_driver(const char *name, char *err, size_t errlen)
{
    size_t i;

    for (i = 0; i < HG_NELEMS(hg_store_drivers); i++) {
        if (strcmp(hg_store_drivers[i].name, name) == 0) {
            return hg_store_drivers[i].driver;
        }
    }
    snprintf(err, errlen, "store.driver: \"%s\" is not available "
             "(drivers in this build: memory%s%s%s)", name,
             HG_HAVE_SQLITE ? ", sqlite" : "",
             HG_HAVE_POSTGRES ? ", postgres" : "",
             HG_HAVE_REDIS ? ", redis" : "");
    return NULL;
}

hg_store_t *
hg_store_open_with(const hg_conf_t *conf, const hg_store_options_t *options,
                   char *err, size_t errlen)
{
    static const hg_store_options_t none;
    const hg_store_driver_t *driver;
    hg_store_t *store;
    const char *name;

    name = conf->store.driver != NULL ? conf->store.driver : "sqlite";
    driver = hg_store_find_driver(name, err, errlen);
    if (driver == NULL) {
        return NULL;
    }
    store = calloc(1, sizeof(*store));
    if (store == NULL) {
        snprintf(err, errlen, "store: out of memory");
        return NULL;
    }
    store->driver = driver;
    store->notify_fd = -1;
    hg_store_leases_init(&store->leases);
    if (driver->open(store, conf, options != NULL ? options : &none, err,
                     errlen) != HG_OK)
    {
        hg_store_leases_free(&store->leases);
        free(store);
        return NULL;
    }
    return store;
}

hg_store_t *
hg_store_open(const hg_conf_t *conf, char *err, size_t errlen)
{
    return hg_store_open_with(conf, NULL, err, errlen);
}

void
hg_store_close(hg_store_t *store)
{
    if (store == NULL) {
        return;
    }
    store->driver->close(store);
    hg_store_leases_free(&store->leases);
    free(store->last_error);
    free(store);
}

int
hg_store_put_execution(hg_store_t *store, const hg_exec_record_t *rec)
{
    char err[256];

    if (hg_exec_record_check(rec, err, sizeof(err)) != HG_OK) {
        hg_log(HG_LOG_ERROR, "store: not recorded: %s", err);
        return HG_ERROR;
    }
    return store->driver->put_execution(store, rec);
}

int
hg_store_put_job_state(hg_store_t *store, const char *job_id,
                       int64_t last_fire, bool paused)
{
    if (job_id == NULL || job_id[0] == '\0') {
        hg_log(HG_LOG_ERROR, "store: job state without a job id");
        return HG_ERROR;
    }
    return store->driver->put_job_state(store, job_id, last_fire, paused);
}

int
hg_store_barrier(hg_store_t *store, uint64_t *ticket)
{
    return store->driver->barrier(store, ticket);
}

int
hg_store_barrier_for(hg_store_t *store, const char *exec_id,
                     uint64_t *ticket)
{
    return store->writer != NULL
           ? hg_store_writer_barrier_for(store, exec_id, ticket)
           : store->driver->barrier(store, ticket);
}

void
hg_store_gather(hg_store_t *store)
{
    if (store->writer != NULL) {
        hg_store_writer_gather(store);
    }
}

uint64_t
hg_store_peek(hg_store_t *store)
{
    return store->writer != NULL ? hg_store_writer_peek(store)
                                 : hg_store_ack(store);
}

bool
hg_store_claim_lost(hg_store_t *store, const char *exec_id)
{
    return store->writer != NULL
           && hg_store_writer_claim_lost(store, exec_id);
}

int
hg_store_taken(hg_store_t *store, hg_exec_row_t **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    return store->writer != NULL ? hg_store_writer_taken(store, rows, n)
                                 : HG_OK;
}

void
hg_store_set_capacity(hg_store_t *store, size_t free_workers)
{
    if (store->shared_queue && store->writer != NULL) {
        hg_store_writer_set_capacity(store, free_workers);
    }
}

void
hg_store_set_starting(hg_store_t *store, bool starting)
{
    if (store->writer != NULL) {
        hg_store_writer_set_starting(store, starting);
    }
}

int
hg_store_put_pause(hg_store_t *store, const char *job_id, int64_t last_fire,
                   bool paused)
{
    if (!store->shared_queue || store->writer == NULL) {
        return hg_store_put_job_state(store, job_id, last_fire, paused);
    }
    return hg_store_writer_put_pause(store, job_id, last_fire, paused);
}

json_t *
hg_store_paused(hg_store_t *store)
{
    return store->shared_queue && store->writer != NULL
           ? hg_store_writer_paused(store) : NULL;
}

json_t *
hg_store_peer_jobs(hg_store_t *store)
{
    return store->shared_queue && store->writer != NULL
           ? hg_store_writer_jobs(store) : NULL;
}

json_t *
hg_store_cluster(hg_store_t *store)
{
    return store->writer != NULL ? hg_store_writer_view(store) : NULL;
}

bool
hg_store_fenced(hg_store_t *store, char *why, size_t len)
{
    return store->writer != NULL
           && hg_store_writer_fenced(store, why, len);
}

void
hg_store_flush(hg_store_t *store)
{
    if (store->writer != NULL) {
        hg_store_writer_flush(store);
    }
}

uint64_t
hg_store_ack(hg_store_t *store)
{
    return store->driver->committed(store);
}

int
hg_store_load_unfinished(hg_store_t *store, hg_exec_row_t **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    return store->driver->load_unfinished(store, rows, n);
}

int
hg_store_count_executions(hg_store_t *store, const char *job_id,
                          const char *status, uint64_t *n)
{
    hg_exec_status_t st;

    *n = 0;
    if (status != NULL && hg_exec_status_parse(status, &st) != HG_OK) {
        return HG_ERROR;
    }
    return store->driver->count_executions(store, job_id, status, n);
}

int
hg_store_load_jobs(hg_store_t *store, json_t **jobs)
{
    *jobs = NULL;
    return store->driver->load_jobs(store, jobs);
}

json_t *
hg_store_job_definitions(const json_t *jobs)
{
    json_t *list = json_array(), *record;
    const char *id;

    json_object_foreach((json_t *) jobs, id, record) {
        if (list == NULL
            || json_array_append(list, json_object_get(record, "definition"))
               != 0)
        {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

int
hg_store_put_jobs(hg_store_t *store, const json_t *changes)
{
    const char *id;
    json_t *record;

    if (!json_is_object(changes)) {
        return HG_ERROR;
    }
    json_object_foreach((json_t *) changes, id, record) {
        if (!json_is_null(record)
            && !json_is_object(json_object_get(record, "definition")))
        {
            return HG_ERROR;
        }
    }
    return store->driver->put_jobs(store, changes);
}

int
hg_store_put_job(hg_store_t *store, const char *id, const json_t *record)
{
    json_t *changes;
    int rc;

    if (id == NULL) {
        return HG_ERROR;
    }
    changes = json_pack("{s:O?}", id, record);
    rc = changes != NULL ? hg_store_put_jobs(store, changes) : HG_ERROR;
    json_decref(changes);
    return rc;
}

int
hg_store_load_job_states(hg_store_t *store, json_t **states)
{
    *states = NULL;
    return store->driver->load_job_states(store, states);
}

int
hg_store_get_execution(hg_store_t *store, const char *id, hg_exec_row_t *row)
{
    memset(row, 0, sizeof(*row));
    if (id == NULL) {
        return HG_AGAIN;
    }
    return store->driver->get_execution(store, id, row);
}

int
hg_store_list_executions(hg_store_t *store, const char *job_id,
                         const char *status, size_t limit, size_t offset,
                         hg_exec_row_t **rows, size_t *n)
{
    hg_exec_status_t st;

    *rows = NULL;
    *n = 0;
    if (status != NULL && hg_exec_status_parse(status, &st) != HG_OK) {
        return HG_ERROR;
    }
    return store->driver->list_executions(store, job_id, status, limit,
                                          offset, rows, n);
}

int
hg_store_job_stats(hg_store_t *store, const char *job_id,
                   hg_job_stats_t *stats)
{
    memset(stats, 0, sizeof(*stats));
    if (job_id == NULL) {
        return HG_ERROR;
    }
    return store->driver->job_stats(store, job_id, stats);
}

int
hg_store_unique_key_pending(hg_store_t *store, const char *unique_key,
                            bool *pending)
{
    *pending = false;
    if (unique_key == NULL) {
        return HG_OK;
    }
    return store->driver->unique_key_pending(store, unique_key, pending);
}

int
hg_store_task(hg_store_t *store, hg_store_task_t *task)
{
    task->next = NULL;
    task->store = store;
    task->rc = HG_ERROR;
    task->deleted = 0;
    task->error[0] = '\0';
    if (task->kind == HG_STORE_TASK_CLEANUP && task->batch == 0) {
        task->batch = 1000;
    }
    return store->driver->task(store, task);
}

int
hg_store_purge_dead(hg_store_t *store, const char *id, const char *job_id,
                    int64_t before, uint64_t *deleted)
{
    *deleted = 0;
    return store->driver->purge_dead(store, id, job_id, before, deleted);
}

hg_store_task_t *
hg_store_task_done(hg_store_t *store)
{
    return store->driver->task_done(store);
}

void
hg_store_tasks_push(hg_store_tasks_t *list, hg_store_task_t *task)
{
    task->next = NULL;
    if (list->tail != NULL) {
        list->tail->next = task;
    } else {
        list->head = task;
    }
    list->tail = task;
}

hg_store_task_t *
hg_store_tasks_pop(hg_store_tasks_t *list)
{
    hg_store_task_t *task = list->head;

    if (task != NULL) {
        list->head = task->next;
        if (list->head == NULL) {
            list->tail = NULL;
        }
        task->next = NULL;
    }
    return task;
}

void
hg_store_tasks_free(hg_store_tasks_t *list)
{
    hg_store_task_t *task;

    while ((task = hg_store_tasks_pop(list)) != NULL) {
        if (task->release != NULL) {
            task->release(task->cookie);
        }
        free(task);
    }
}

/* Runs one task to its end in the caller's thread: waits on notify_fd. */
static int
hg_store_task_wait(hg_store_t *store, hg_store_task_kind_t kind,
                   int64_t older_than, size_t batch, uint64_t *deleted)
{
    hg_store_task_t *task, *done;
    struct pollfd pfd;
    int rc;

    task = calloc(1, sizeof(*task));
    if (task == NULL) {
        hg_log(HG_LOG_ERROR, "store: out of memory for a maintenance task");
        return HG_ERROR;
    }
    task->kind = kind;
    task->older_than = older_than;
    task->batch = batch;
    if (hg_store_task(store, task) != HG_OK) {
        hg_log(HG_LOG_ERROR, "%s", task->error);
        free(task);
        return HG_ERROR;
    }
    while ((done = hg_store_task_done(store)) == NULL) {
        pfd.fd = store->notify_fd;
        pfd.events = POLLIN;
        if (pfd.fd >= 0 && poll(&pfd, 1, -1) < 0 && errno != EINTR) {
            hg_log(HG_LOG_ERROR, "store: waiting for a maintenance task: %s",
                   strerror(errno));
            return HG_ERROR;    /* the store frees the task at close */
        }
        (void) hg_store_ack(store);
    }
    if (deleted != NULL) {
        *deleted = done->deleted;
    }
    rc = done->rc;
    if (rc != HG_OK) {
        hg_log(HG_LOG_ERROR, "%s", done->error);
    }
    free(done);
    return rc;
}

int
hg_store_cleanup(hg_store_t *store, int64_t older_than, size_t batch,
                 uint64_t *deleted)
{
    *deleted = 0;
    return hg_store_task_wait(store, HG_STORE_TASK_CLEANUP, older_than,
                              batch, deleted);
}

int
hg_store_vacuum(hg_store_t *store)
{
    return hg_store_task_wait(store, HG_STORE_TASK_VACUUM, 0, 0, NULL);
}

int
hg_store_health(hg_store_t *store, json_t **report)
{
    *report = NULL;
    return store->driver->health(store, report);
}

int
hg_store_set_max_page_count(hg_store_t *store, uint64_t pages)
{
    if (store->driver->set_max_page_count == NULL) {
        return HG_ERROR;
    }
    return store->driver->set_max_page_count(store, pages);
}

/* --- the cluster's calls ------------------------------------------------ */

int
hg_store_claim_fire(hg_store_t *store, const char *job_id, int64_t fire_time,
                    uint64_t *token)
{
    if (job_id == NULL || job_id[0] == '\0') {
        return HG_ERROR;
    }
    return store->driver->claim_fire(store, job_id, fire_time, token);
}

int
hg_store_take_queued(hg_store_t *store, int64_t now, int64_t lease_ms,
                     size_t limit, hg_exec_row_t **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    return store->driver->take_queued(store, now, lease_ms, limit, rows, n);
}

int
hg_store_renew(hg_store_t *store, const char *id, int64_t now,
               int64_t lease_ms)
{
    if (store->driver->renew == NULL) {
        return hg_store_leases_renew(&store->leases, id, now + lease_ms);
    }
    return store->driver->renew(store, id, now, lease_ms);
}

int
hg_store_release(hg_store_t *store, const char *id)
{
    if (store->driver->release == NULL) {
        return hg_store_leases_release(&store->leases, id);
    }
    return store->driver->release(store, id);
}

typedef struct hg_store_lease_s {
    int64_t until;
    char id[];
} hg_store_lease_t;

void
hg_store_leases_init(hg_store_leases_t *leases)
{
    hg_map_init(&leases->held);
}

void
hg_store_leases_free(hg_store_leases_t *leases)
{
    hg_map_free_values(&leases->held);
}

bool
hg_store_leases_free_at(const hg_store_leases_t *leases, const char *id,
                        int64_t now)
{
    const hg_store_lease_t *lease = hg_map_get(&leases->held, id);

    return lease == NULL || lease->until <= now;
}

int
hg_store_leases_hold(hg_store_leases_t *leases, const char *id,
                     int64_t until)
{
    hg_store_lease_t *lease = hg_map_get(&leases->held, id);
    size_t len;

    if (lease == NULL) {
        len = strlen(id);
        lease = malloc(sizeof(*lease) + len + 1);
        if (lease == NULL) {
            return HG_ERROR;
        }
        memcpy(lease->id, id, len + 1);
        if (hg_map_put(&leases->held, lease->id, lease) != HG_OK) {
            free(lease);
            return HG_ERROR;
        }
    }
    lease->until = until;
    return HG_OK;
}

int
hg_store_leases_take(hg_store_leases_t *leases, hg_exec_row_t **rows,
                     size_t *n, int64_t until)
{
    size_t i;

    for (i = 0; i < *n; i++) {
        if (hg_store_leases_hold(leases, (*rows)[i].r.id, until) != HG_OK) {
            while (i-- > 0) {
                (void) hg_store_leases_release(leases, (*rows)[i].r.id);
            }
            hg_exec_rows_free(*rows, *n);
            *rows = NULL;
            *n = 0;
            hg_log(HG_LOG_ERROR, "store: out of memory taking queued "
                   "executions");
            return HG_ERROR;
        }
    }
    return HG_OK;
}

int
hg_store_leases_renew(hg_store_leases_t *leases, const char *id,
                      int64_t until)
{
    hg_store_lease_t *lease = hg_map_get(&leases->held, id);

    if (lease == NULL) {
        return HG_AGAIN;
    }
    lease->until = until;
    return HG_OK;
}

int
hg_store_leases_release(hg_store_leases_t *leases, const char *id)
{
    hg_store_lease_t *lease = hg_map_remove(&leases->held, id);

    if (lease == NULL) {
        return HG_AGAIN;
    }
    free(lease);
    return HG_OK;
}

int
hg_store_check(const hg_conf_t *conf, char *err, size_t errlen)
{
    const hg_store_driver_t *driver;
    const char *name;

    name = conf->store.driver != NULL ? conf->store.driver : "sqlite";
    driver = hg_store_find_driver(name, err, errlen);
    if (driver == NULL) {
        return HG_ERROR;
    }
    if (driver->check == NULL) {
        return HG_OK;
    }
    return driver->check(conf, err, errlen);
}

/* --- every job's statistics ---------------------------------------------- */

void
hg_job_stats_rows_free(hg_job_stats_row_t *rows, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(rows[i].job_id);
    }
    free(rows);
}

static int
hg_store_stats_by_id(const void *a, const void *b)
{
    return strcmp(((const hg_job_stats_row_t *) a)->job_id,
                  ((const hg_job_stats_row_t *) b)->job_id);
}

int
hg_store_list_shared(hg_store_t *store, const char *job_id, size_t limit,
                     size_t offset, hg_exec_row_t **rows, size_t *n,
                     uint64_t *total)
{
    *rows = NULL;
    *n = 0;
    *total = 0;
    if (!store->shared_queue || store->driver->list_shared == NULL) {
        return HG_OK;
    }
    return store->driver->list_shared(store, job_id, limit, offset, rows, n,
                                      total);
}

int
hg_store_dequeue_shared(hg_store_t *store, const char *id,
                        int64_t finished_at, const char *error,
                        hg_store_dequeued_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!store->shared_queue || store->driver->dequeue_shared == NULL) {
        return HG_OK;
    }
    return store->driver->dequeue_shared(store, id, finished_at, error, out);
}

int
hg_store_all_job_stats(hg_store_t *store, hg_job_stats_row_t **rows,
                       size_t *n)
{
    *rows = NULL;
    *n = 0;
    if (store->driver->all_job_stats(store, rows, n) != HG_OK) {
        return HG_ERROR;
    }
    /* Sorted here, whatever order (or collation) the driver read in. */
    if (*n > 1) {
        qsort(*rows, *n, sizeof(**rows), hg_store_stats_by_id);
    }
    return HG_OK;
}

const hg_job_stats_row_t *
hg_job_stats_find(const hg_job_stats_row_t *rows, size_t n,
                  const char *job_id)
{
    hg_job_stats_row_t key;

    if (n == 0) {
        return NULL;
    }
    key.job_id = (char *) job_id;
    return bsearch(&key, rows, n, sizeof(*rows), hg_store_stats_by_id);
}

/* Room for one more of SIZE bytes in *ARRAY of *CAP, full. */
static int
hg_store_stats_grow(void **array, size_t *cap, size_t size)
{
    size_t more = *cap > 0 ? *cap * 2 : 64;
    void *grown = realloc(*array, more * size);

    if (grown == NULL) {
        return HG_ERROR;
    }
    *array = grown;
    *cap = more;
    return HG_OK;
}

/* The current job is complete: its p95 from the buckets gathered. */
static void
hg_store_stats_list_close(hg_store_stats_list_t *list)
{
    if (list->n > 0) {
        list->rows[list->n - 1].stats.p95_duration_ms =
            hg_store_p95(list->buckets, list->nbuckets, list->max);
    }
    list->nbuckets = 0;
}

static int
hg_store_stats_list_job(hg_store_stats_list_t *list, const char *job_id,
                        const int64_t totals[7], const char *last_status)
{
    hg_job_stats_row_t *row;

    hg_store_stats_list_close(list);
    if (list->n == list->cap
        && hg_store_stats_grow((void **) &list->rows, &list->cap,
                               sizeof(*row)) != HG_OK)
    {
        return HG_ERROR;
    }
    row = &list->rows[list->n];
    memset(row, 0, sizeof(*row));
    row->job_id = strdup(job_id);
    if (row->job_id == NULL) {
        return HG_ERROR;
    }
    list->n++;
    row->stats.runs = (uint64_t) totals[0];
    row->stats.successes = (uint64_t) totals[1];
    row->stats.failures = (uint64_t) totals[2];
    row->stats.mean_duration_ms = totals[3] > 0
        ? (double) totals[4] / (double) totals[3] : 0.0;
    list->max = totals[5];
    row->stats.last_run = totals[6];
    if (last_status == NULL
        || hg_exec_status_parse(last_status, &row->stats.last_status)
           != HG_OK)
    {
        row->stats.last_status = HG_EXEC_QUEUED;
    }
    return HG_OK;
}

int
hg_store_stats_list_add(hg_store_stats_list_t *list, const char *job_id,
                        const int64_t totals[7], const char *last_status,
                        bool has_bucket, unsigned bucket, int64_t count)
{
    if ((list->n == 0 || strcmp(list->rows[list->n - 1].job_id, job_id) != 0)
        && hg_store_stats_list_job(list, job_id, totals, last_status)
           != HG_OK)
    {
        return HG_ERROR;
    }
    if (!has_bucket || count <= 0) {
        return HG_OK;
    }
    if (list->nbuckets == list->bcap
        && hg_store_stats_grow((void **) &list->buckets, &list->bcap,
                               sizeof(*list->buckets)) != HG_OK)
    {
        return HG_ERROR;
    }
    list->buckets[list->nbuckets].bucket = bucket;
    list->buckets[list->nbuckets].count = count;
    list->nbuckets++;
    return HG_OK;
}

void
hg_store_stats_list_end(hg_store_stats_list_t *list,
                        hg_job_stats_row_t **rows, size_t *n)
{
    hg_store_stats_list_close(list);
    *rows = list->rows;
    *n = list->n;
    free(list->buckets);
    memset(list, 0, sizeof(*list));
}

void
hg_store_stats_list_free(hg_store_stats_list_t *list)
{
    hg_job_stats_rows_free(list->rows, list->n);
    free(list->buckets);
    memset(list, 0, sizeof(*list));
}

/* --- a cluster's preferred claimer --------------------------------------- */

size_t
hg_store_preferred(const char *job_id, int64_t fire_time, size_t nlive)
{
    uint64_t h;

    /* FNV-1a of the job, the fire time mixed in by splitmix64's
     * finalizer: one job's fire times go round the instances. */
    h = hg_map_hash(job_id) ^ (uint64_t) fire_time;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return nlive > 0 ? (size_t) (h % nlive) : 0;
}
