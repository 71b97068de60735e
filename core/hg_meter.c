/*
 * hg_meter.c: the master's metrics (DESIGN.md "Metrics").
 *
 * It owns the families table (name, help, type, labels, buckets) and the
 * registry built from it, the counting of ends and of modules' own
 * metrics, and the gauges read when the metrics are rendered. The others
 * count where things happen through m->metric; nothing here changes the
 * scheduler's state, and rendering only reads it.
 */

#include "hg_core.h"

#include "hg_meter.h"
#include "hg_notify.h"

static const double hg_duration_bounds[] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
    900, 3600
};
/* 1-2.5-5 steps from 0.5 ms: a p99 read from these is within a step of
 * the truth (1 ms then 5 ms could not tell 1.1 ms from 4.9 ms). */
static const double hg_lag_bounds[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
    2.5, 5, 10, 60
};

static const char *const hg_l_job_status[] = { "job", "status", NULL };
static const char *const hg_l_job[] = { "job", NULL };
static const char *const hg_l_state[] = { "state", NULL };
static const char *const hg_l_reason[] = { "reason", NULL };
static const char *const hg_l_result[] = { "result", NULL };
static const char *const hg_l_module[] = { "module", "name", NULL };
static const char *const hg_l_channel_result[] = {
    "channel", "result", NULL
};

/* The master's metrics: where each goes in m->metric, and what it is. */
static const struct {
    size_t offset;
    const char *name;
    const char *help;
    hg_metric_type_t type;
    const char *const *labels;
    const double *bounds;
    size_t nbounds;
} hg_meter_families[] = {
#define HG_MF(field) offsetof(hg_master_t, metric.field)
    { HG_MF(executions), "hourglass_executions_total",
      "Executions that ended, by job and the status recorded",
      HG_METRIC_COUNTER, hg_l_job_status, NULL, 0 },
    { HG_MF(duration), "hourglass_execution_duration_seconds",
      "How long executions ran", HG_METRIC_HISTOGRAM, hg_l_job,
      hg_duration_bounds, HG_NELEMS(hg_duration_bounds) },
    { HG_MF(lag), "hourglass_schedule_lag_seconds",
      "Start time minus due time", HG_METRIC_HISTOGRAM, NULL,
      hg_lag_bounds, HG_NELEMS(hg_lag_bounds) },
    { HG_MF(queue_depth), "hourglass_queue_depth",
      "Executions waiting for a worker", HG_METRIC_GAUGE, NULL, NULL, 0 },
    { HG_MF(workers), "hourglass_workers", "Worker processes by state",
      HG_METRIC_GAUGE, hg_l_state, NULL, 0 },
    { HG_MF(restarts), "hourglass_worker_restarts_total",
      "Workers that ended other than by being retired, by reason",
      HG_METRIC_COUNTER, hg_l_reason, NULL, 0 },
    { HG_MF(reloads), "hourglass_reloads_total", "Reloads by result",
      HG_METRIC_COUNTER, hg_l_result, NULL, 0 },
    { HG_MF(jobs), "hourglass_jobs", "Jobs by state", HG_METRIC_GAUGE,
      hg_l_state, NULL, 0 },
    { HG_MF(module), "hourglass_module_metric_total",
      "Modules' own metrics (hg_exec_metric), summed", HG_METRIC_COUNTER,
      hg_l_module, NULL, 0 },
    { HG_MF(handed), "hourglass_dispatch_handed_ahead_total",
      "Executions handed to a busy worker ahead of their turn",
      HG_METRIC_COUNTER, NULL, NULL, 0 },
    { HG_MF(store_queue), "hourglass_store_queue_depth",
      "Execution records waiting for the store's writer",
      HG_METRIC_GAUGE, NULL, NULL, 0 },
    { HG_MF(store_written), "hourglass_store_records_written_total",
      "Execution records committed to the store", HG_METRIC_COUNTER, NULL,
      NULL, 0 },
    { HG_MF(store_errors), "hourglass_store_write_errors_total",
      "Store transactions that failed (retried)", HG_METRIC_COUNTER, NULL,
      NULL, 0 },
    { HG_MF(store_dropped), "hourglass_store_records_dropped_total",
      "Execution records given up because the store's queue was full",
      HG_METRIC_COUNTER, NULL, NULL, 0 },
    { HG_MF(store_failing), "hourglass_store_failing",
      "1 while the store's writes are failing", HG_METRIC_GAUGE, NULL, NULL,
      0 },
    { HG_MF(store_commit), "hourglass_store_commit_seconds",
      "Time from a start's barrier to its commit (moving average)",
      HG_METRIC_GAUGE, NULL, NULL, 0 },
    { HG_MF(leader), "hourglass_leader",
      "1 while this instance fires the schedules (a single instance always"
      " does)", HG_METRIC_GAUGE, NULL, NULL, 0 },
    /* The families below belong to features not built yet: declared so
     * that dashboards and alerts can be written against the contract,
     * with no series until their feature counts. */
    { HG_MF(overdue), "hourglass_job_overdue",
      "1 while a job has not reported within its dead-man window",
      HG_METRIC_GAUGE, hg_l_job, NULL, 0 },
    { HG_MF(notifications), "hourglass_notifications_total",
      "Notifications sent, by channel and result", HG_METRIC_COUNTER,
      hg_l_channel_result, NULL, 0 },
    { HG_MF(trace_spans), "hourglass_trace_spans_total",
      "Execution spans for the OTLP collector, by result (exported, "
      "dropped: no room to hold them, failed: refused after the retries)",
      HG_METRIC_COUNTER, hg_l_result, NULL, 0 },
    { HG_MF(claims), "hourglass_claims_total",
      "Fire times this instance tried to claim in the cluster, by result",
      HG_METRIC_COUNTER, hg_l_result, NULL, 0 },
    { HG_MF(claim_seconds), "hourglass_claim_seconds",
      "Time from a fire's claim to its commit saying whose it is",
      HG_METRIC_HISTOGRAM, NULL, hg_lag_bounds, HG_NELEMS(hg_lag_bounds) },
    { HG_MF(lease_expired), "hourglass_lease_expirations_total",
      "Executions of a dead instance found by their lease expiring",
      HG_METRIC_COUNTER, NULL, NULL, 0 },
    { HG_MF(instances), "hourglass_cluster_instances",
      "Instances of the cluster by state (live: its lease holds)",
      HG_METRIC_GAUGE, hg_l_state, NULL, 0 },
    { HG_MF(term), "hourglass_cluster_term",
      "This instance's lease term (its fencing token)", HG_METRIC_GAUGE,
      NULL, NULL, 0 },
#undef HG_MF
};

int
hg_meter_init(hg_master_t *m)
{
    hg_metric_t **family;
    size_t i;

    m->metrics = hg_metrics_new();
    if (m->metrics == NULL) {
        return HG_ERROR;
    }
    for (i = 0; i < HG_NELEMS(hg_meter_families); i++) {
        family = (hg_metric_t **) ((char *) m
                                   + hg_meter_families[i].offset);
        *family = hg_metrics_family(m->metrics, hg_meter_families[i].name,
                                    hg_meter_families[i].help,
                                    hg_meter_families[i].type,
                                    hg_meter_families[i].labels,
                                    hg_meter_families[i].bounds,
                                    hg_meter_families[i].nbounds);
        if (*family == NULL) {
            return HG_ERROR;
        }
    }
    return HG_OK;
}

void
hg_meter_count_end(hg_master_t *m, const hg_execution_t *exec,
                   hg_exec_status_t status, const hg_master_result_t *r)
{
    const char *labels[] = { exec->job->id, hg_exec_status_name(status) };

    hg_metric_add(m->metric.executions, labels, 1);
    m->ended[status]++;
    if (status == HG_EXEC_MISSED) {
        /* every missed run is counted here, wherever it was decided */
        hg_notify_missed(m, exec);
    }
    if (r != NULL && r->finished_ms >= r->started_ms && r->started_ms > 0) {
        hg_metric_observe(m->metric.duration, labels,
                          (double) (r->finished_ms - r->started_ms) / 1e3);
    }
}

void
hg_meter_count_module(hg_master_t *m, const hg_execution_t *exec,
                      const json_t *metrics)
{
    const char *name;
    json_t *value;

    json_object_foreach((json_t *) metrics, name, value) {
        const char *labels[] = { exec->job->type, name };
        /* A counter only goes up: a negative value would read as a
         * counter reset to every rate() over it, so it is not summed. */
        if (json_is_number(value) && json_number_value(value) >= 0) {
            hg_metric_add(m->metric.module, labels, json_number_value(value));
        }
    }
}

/* A job's state as jobs{state} counts it: an index into jstates. */
static const char *const jstates[] = {
    "scheduled", "paused", "disabled", "manual"
};

static size_t
hg_meter_job_state(const hg_job_t *job)
{
    return !job->enabled ? 2 : job->paused ? 1
           : job->kind == HG_SCHEDULE_NONE ? 3 : 0;
}

json_t *
hg_meter_status(hg_master_t *m)
{
    static const char *const results[] = { "ok", "failed" };
    const hg_conf_t *conf = m->cycle->conf;
    json_t *workers = json_object(), *ended = json_object(), *reloads;
    json_t *cluster;
    double counts[4] = { 0 };
    hg_worker_t *w;
    size_t i;

    for (w = m->pool.head; w != NULL; w = w->next) {
        counts[w->state]++;
    }
    for (i = 0; workers != NULL && i < HG_NELEMS(counts); i++) {
        json_object_set_new(workers, hg_worker_state_name(
                                (hg_worker_state_t) i),
                            json_integer((json_int_t) counts[i]));
    }
    for (i = 0; ended != NULL && i < HG_EXEC_NSTATUS; i++) {
        json_object_set_new(ended, hg_exec_status_name((hg_exec_status_t) i),
                            json_integer((json_int_t) m->ended[i]));
    }
    reloads = json_object();
    for (i = 0; reloads != NULL && i < HG_NELEMS(results); i++) {
        const char *labels[] = { results[i] };
        json_object_set_new(reloads, results[i], json_integer(
            (json_int_t) hg_metric_value(m->metric.reloads, labels)));
    }
    cluster = conf->cluster.enabled
              ? json_pack("{s:s, s:I}", "instance", conf->cluster.instance,
                          "lease_ms", (json_int_t) conf->cluster.lease_ms)
              : json_null();
    if (json_is_object(cluster) && m->store != NULL) {
        /* term and instances, as the store last read them */
        json_t *view = hg_store_cluster(m->store);

        if (view != NULL) {
            (void) json_object_update(cluster, view);
            json_decref(view);
        }
    }
    return json_pack("{s:s, s:i, s:I, s:I, s:s, s:o, s:i, s:o, s:I, s:I,"
                     " s:o, s:o}",
                     "version", HG_VERSION,
                     "pid", (int) getpid(),
                     "started_at_ms", (json_int_t) m->started_ms,
                     "uptime_s", (json_int_t) ((hg_now_ms() - m->started_ms)
                                               / 1000),
                     "configuration", m->conf_file,
                     "reloads", reloads,
                     "workers_configured", m->workers,
                     "workers", workers,
                     "jobs", (json_int_t) m->jobs.count,
                     "queue_depth", (json_int_t) (m->ready.count
                                                  + m->primed.count),
                     "executions_ended", ended,
                     "cluster", cluster);
}

json_t *
hg_meter_stats(hg_master_t *m)
{
    json_t *ended = json_object(), *jobs = json_object();
    json_int_t counts[HG_NELEMS(jstates)] = { 0 };
    const char *key;
    void *value;
    size_t it = 0, i;

    for (i = 0; ended != NULL && i < HG_EXEC_NSTATUS; i++) {
        json_object_set_new(ended, hg_exec_status_name((hg_exec_status_t) i),
                            json_integer((json_int_t) m->ended[i]));
    }
    while (hg_map_next(&m->jobs, &it, &key, &value)) {
        const hg_job_t *job = value;
        counts[hg_meter_job_state(job)]++;
    }
    for (i = 0; jobs != NULL && i < HG_NELEMS(jstates); i++) {
        json_object_set_new(jobs, jstates[i], json_integer(counts[i]));
    }
    return json_pack("{s:o, s:o, s:I, s:I, s:I, s:I}",
                     "executions_ended", ended, "jobs", jobs,
                     "dispatched", (json_int_t) m->dispatched_total,
                     "finished", (json_int_t) m->finished_total,
                     "queue_depth", (json_int_t) (m->ready.count
                                                  + m->primed.count),
                     "handed_ahead", (json_int_t) m->handed_total);
}

json_t *
hg_meter_health(hg_master_t *m, bool *well)
{
    json_t *problems = json_array();
    unsigned alive = 0;
    hg_worker_t *w;

    for (w = m->pool.head; w != NULL; w = w->next) {
        alive += w->state == HG_WORKER_IDLE || w->state == HG_WORKER_BUSY;
    }
    if (m->stopping || m->quitting) {
        json_array_append_new(problems, json_string("shutting down"));
    }
    if (alive == 0) {
        json_array_append_new(problems, json_string("no worker is ready"));
    }
    if (m->store != NULL) {
        hg_store_figures_t fig;

        hg_store_figures(m->store, &fig);
        if (fig.failing) {
            json_array_append_new(problems, json_sprintf(
                "the store cannot be written: %s", fig.last_error[0]
                ? fig.last_error : "(no reason given)"));
        }
    }
    *well = json_array_size(problems) == 0;
    return json_pack("{s:s, s:o, s:i}", "status", *well ? "ok" : "unwell",
                     "problems", problems, "workers_ready", (int) alive);
}

/* The cluster's gauges, from the store's last picture of it. */
static void
hg_meter_cluster(hg_master_t *m)
{
    const char *live[] = { "live" }, *lapsed[] = { "lapsed" };
    json_t *view, *one;
    double n = 0, total = 0;
    size_t i;

    view = m->store != NULL ? hg_store_cluster(m->store) : NULL;
    if (view == NULL) {
        return;
    }
    json_array_foreach(json_object_get(view, "instances"), i, one) {
        n += json_is_true(json_object_get(one, "live"));
        total++;
    }
    hg_metric_set(m->metric.instances, live, n);
    hg_metric_set(m->metric.instances, lapsed, total - n);
    hg_metric_set(m->metric.term, NULL, (double) json_integer_value(
                      json_object_get(view, "term")));
    if (json_is_boolean(json_object_get(view, "leader"))) {
        hg_metric_set(m->metric.leader, NULL,
                      json_is_true(json_object_get(view, "leader")) ? 1 : 0);
    }
    json_decref(view);
}

int
hg_meter_render(hg_master_t *m, FILE *out)
{
    double jobs[HG_NELEMS(jstates)] = { 0 }, workers[4] = { 0 };
    const char *key;
    void *value;
    size_t it = 0, i;
    hg_worker_t *w;

    hg_metric_set(m->metric.queue_depth, NULL,
                  (double) (m->ready.count + m->primed.count));
    for (w = m->pool.head; w != NULL; w = w->next) {
        workers[w->state]++;
    }
    for (i = 0; i < HG_NELEMS(workers); i++) {
        const char *labels[] = {
            hg_worker_state_name((hg_worker_state_t) i)
        };
        hg_metric_set(m->metric.workers, labels, workers[i]);
    }
    while (hg_map_next(&m->jobs, &it, &key, &value)) {
        const hg_job_t *job = value;
        jobs[hg_meter_job_state(job)]++;
    }
    for (i = 0; i < HG_NELEMS(jstates); i++) {
        const char *labels[] = { jstates[i] };
        hg_metric_set(m->metric.jobs, labels, jobs[i]);
    }
    hg_metric_set(m->metric.handed, NULL, (double) m->handed_total);
    if (m->store != NULL) {
        hg_store_figures_t fig;

        hg_store_figures(m->store, &fig);
        hg_metric_set(m->metric.store_queue, NULL, (double) fig.queue_depth);
        hg_metric_set(m->metric.store_written, NULL, (double) fig.written);
        hg_metric_set(m->metric.store_errors, NULL,
                      (double) fig.write_errors);
        hg_metric_set(m->metric.store_dropped, NULL, (double) fig.dropped);
        hg_metric_set(m->metric.store_failing, NULL, fig.failing ? 1 : 0);
        hg_metric_set(m->metric.store_commit, NULL, m->commit_ns / 1e9);
    }
    /* Without a cluster this instance is the only one firing schedules,
     * so it is its own leader: 1, not 0. A fleet's alert "no leader"
     * (sum of hourglass_leader == 0) then holds for single instances
     * and clusters alike, and a dashboard need not know which it shows.
     * A cluster elects one (Redis, PostgreSQL) and sets 0 on the others. */
    hg_metric_set(m->metric.leader, NULL, 1);
    hg_meter_cluster(m);
    return hg_metrics_render(m->metrics, out);
}
