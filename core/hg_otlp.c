/*
 * hg_otlp.c: each execution's span, exported over OTLP/HTTP JSON to the
 * collector `tracing.otlp` names.
 *
 * It owns the span's JSON (jansson; trace and span ids from hg_trace.c, so
 * the span is the very one the job saw in its traceparent), the spans held
 * for the next export, their batching and bound, and the exporter's
 * internal job. A span is made when an attempt ends (every attempt: a
 * retry is a span of its own in the run's trace). The first attempt is
 * the run's root span; a retry's parent is that first attempt, whose span
 * id every attempt can derive from the run id (a run is its first
 * attempt's id), so no state survives between attempts.
 *
 * It never sends anything itself (the master never blocks and runs no
 * libcurl): an export is an execution of the internal job "trace:otlp",
 * of type http (a POST of the batch to OTLP/v1/traces), run by a worker as
 * notification deliveries are, with tracing.retries tries after the
 * first, the defaults' backoff between them and tracing.timeout for each.
 * Like a delivery, it is recorded in the history (one row per export, not
 * per span, the batch as its payload) and is no job of the table: no API
 * lists, pauses or triggers it, and it makes no span of its own.
 *
 * Bounded: at most tracing.queue spans wait, plus one export under way
 * (at most tracing.batch). A span with no room is dropped and counted; an
 * export refused after its retries counts its spans failed.
 */

#include "hg_core.h"

#include <signal.h>

#include "hg_dispatch.h"
#include "hg_execution.h"
#include "hg_log.h"
#include "hg_notify.h"
#include "hg_otlp.h"
#include "hg_trace.h"
#include "hg_json.h"

/* OTLP's SPAN_KIND_INTERNAL and STATUS_CODE_OK / _ERROR. */
#define HG_OTLP_KIND_INTERNAL  1
#define HG_OTLP_STATUS_OK      1
#define HG_OTLP_STATUS_ERROR   2

struct hg_otlp_s {
    json_t *held;                   /* spans waiting, oldest first */
    hg_job_t *job;                  /* the exporter, as `spec` defined it */
    char *spec;                     /* what `job` was made from */
    size_t sending;                 /* spans of the export under way */
    hg_timer_t timer;               /* the oldest span's longest wait */
    char host[256];                 /* the instance without a cluster */
};

/* --- the span's JSON ----------------------------------------------------- */

static json_t *
hg_otlp_attr(const char *key, json_t *value, const char *type)
{
    return value == NULL ? NULL
           : json_pack("{s:s, s:{s:o}}", "key", key, "value", type, value);
}

static int
hg_otlp_add_string(json_t *attrs, const char *key, const char *value)
{
    return value == NULL ? 0
           : json_array_append_new(attrs, hg_otlp_attr(key,
                                   json_string(value), "stringValue"));
}

/* OTLP/JSON carries 64-bit integers as strings (the protobuf mapping). */
static json_t *
hg_otlp_int64(int64_t v)
{
    return json_sprintf("%" PRId64, v);
}

static int
hg_otlp_add_int(json_t *attrs, const char *key, int64_t value)
{
    return json_array_append_new(attrs, hg_otlp_attr(key,
                                 hg_otlp_int64(value), "intValue"));
}

static json_t *
hg_otlp_attributes(const hg_otlp_span_t *s)
{
    json_t *a = json_array();
    int rc = 0;

    if (a == NULL) {
        return NULL;
    }
    rc |= hg_otlp_add_string(a, "hourglass.job", s->job_id);
    rc |= hg_otlp_add_int(a, "hourglass.attempt", s->attempt);
    rc |= hg_otlp_add_string(a, "hourglass.status", s->status);
    rc |= hg_otlp_add_int(a, "hourglass.lag_ms", s->lag_ms);
    rc |= hg_otlp_add_string(a, "hourglass.instance", s->instance);
    rc |= hg_otlp_add_string(a, "hourglass.execution", s->exec_id);
    rc |= hg_otlp_add_string(a, "hourglass.run", s->run_id);
    rc |= hg_otlp_add_string(a, "hourglass.trigger", s->trigger);
    if (s->exit_code >= 0) {
        rc |= hg_otlp_add_int(a, "hourglass.exit_code", s->exit_code);
    }
    if (s->signo > 0 && sigabbrev_np(s->signo) != NULL) {
        char name[32];

        snprintf(name, sizeof(name), "SIG%s", sigabbrev_np(s->signo));
        rc |= hg_otlp_add_string(a, "hourglass.signal", name);
    }
    if (rc != 0) {
        json_decref(a);
        return NULL;
    }
    return a;
}

json_t *
hg_otlp_span_json(const hg_otlp_span_t *s)
{
    char ctx[HG_TRACEPARENT_LEN], root[HG_TRACEPARENT_LEN];
    bool ok = strcmp(s->status, "succeeded") == 0;
    json_t *span, *status, *message;

    /* "00-" trace(32) "-" span(16) "-01": the job's own traceparent. */
    if (hg_trace_context(s->run_id, s->exec_id, ctx, sizeof(ctx)) != HG_OK
        || hg_trace_context(s->run_id, s->run_id, root, sizeof(root))
           != HG_OK)
    {
        return NULL;
    }
    ctx[35] = '\0';
    ctx[52] = '\0';
    root[52] = '\0';
    /* An error that is not UTF-8 (a module's words) leaves the status's
     * name as the message: the span is sent all the same. */
    message = s->error != NULL && s->error[0] ? json_string(s->error) : NULL;
    status = ok ? json_pack("{s:i}", "code", HG_OTLP_STATUS_OK)
                : json_pack("{s:i, s:o}", "code", HG_OTLP_STATUS_ERROR,
                            "message", message != NULL
                                       ? message : json_string(s->status));
    if (ok) {
        json_decref(message);
    }
    span = json_pack("{s:s, s:s, s:s, s:i, s:o, s:o, s:o, s:o}",
                     "traceId", ctx + 3, "spanId", ctx + 36,
                     "name", s->job_id, "kind", HG_OTLP_KIND_INTERNAL,
                     "startTimeUnixNano", hg_otlp_int64(s->start_ms
                                                        * HG_NSEC_PER_MSEC),
                     "endTimeUnixNano", hg_otlp_int64(s->end_ms
                                                      * HG_NSEC_PER_MSEC),
                     "attributes", hg_otlp_attributes(s),
                     "status", status);
    if (span != NULL && s->attempt > 1
        && json_object_set_new(span, "parentSpanId", json_string(root + 36))
           != 0)
    {
        json_decref(span);
        return NULL;
    }
    return span;
}

json_t *
hg_otlp_request_json(json_t *spans, const char *service,
                     const char *instance)
{
    json_t *attrs = json_pack("[{s:s, s:{s:s}}, {s:s, s:{s:s}}]",
                              "key", "service.name",
                              "value", "stringValue", service,
                              "key", "service.instance.id",
                              "value", "stringValue", instance);

    return json_pack("{s:[{s:{s:o}, s:[{s:{s:s, s:s}, s:o}]}]}",
                     "resourceSpans", "resource", "attributes", attrs,
                     "scopeSpans", "scope", "name", "hourglass",
                     "version", HG_VERSION, "spans", spans);
}

/* --- the master's side ---------------------------------------------------- */

static void hg_otlp_export(hg_master_t *m);

static void
hg_otlp_count(hg_master_t *m, const char *result, size_t n)
{
    const char *labels[] = { result };

    if (n > 0) {
        hg_metric_add(m->metric.trace_spans, labels, (double) n);
    }
}

static void
hg_otlp_on_timer(hg_timer_t *timer)
{
    hg_otlp_export(timer->data);
}

static struct hg_otlp_s *
hg_otlp_state(hg_master_t *m)
{
    struct hg_otlp_s *o = m->otlp;

    if (o != NULL || (o = calloc(1, sizeof(*o))) == NULL) {
        return o;
    }
    o->held = json_array();
    if (o->held == NULL) {
        free(o);
        return NULL;
    }
    if (gethostname(o->host, sizeof(o->host)) != 0 || o->host[0] == '\0') {
        snprintf(o->host, sizeof(o->host), "hourglass");
    }
    o->host[sizeof(o->host) - 1] = '\0';
    hg_timer_init(&o->timer, hg_otlp_on_timer, m);
    m->otlp = o;
    return o;
}

static void
hg_otlp_job_drop(struct hg_otlp_s *o)
{
    hg_notify_internal_job_drop(o->job);
    o->job = NULL;
    free(o->spec);
    o->spec = NULL;
}

/* The exporter's job as the configuration in force defines it, made
 * anew when a reload changed `tracing` (or the defaults' backoff). */
static hg_job_t *
hg_otlp_job(hg_master_t *m, struct hg_otlp_s *o)
{
    const hg_conf_t *conf = m->cycle->conf;
    size_t len = strlen(conf->tracing.otlp);
    json_t *def = NULL;
    char *url = NULL, *text = NULL, *spec = NULL;
    hg_job_t *job = NULL;

    /* OTEL_EXPORTER_OTLP_ENDPOINT's rule: the base URL, then the path. */
    if (len > 0 && conf->tracing.otlp[len - 1] == '/') {
        len--;
    }
    if (asprintf(&url, "%.*s/v1/traces", (int) len, conf->tracing.otlp) < 0) {
        url = NULL;
        goto done;
    }
    def = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}}", "id", HG_OTLP_JOB_ID,
                    "type", "http", "url", url, "method", "POST", "headers",
                    "Content-Type", "application/json");
    if (def == NULL
        || (text = hg_json_dumps(def, JSON_COMPACT | JSON_SORT_KEYS)) == NULL
        || asprintf(&spec, "%s %" PRId64 " %d %" PRId64 " %" PRId64 " %g %g",
                    text, conf->tracing.timeout_ms, conf->tracing.retries,
                    conf->defaults.backoff.initial_ms,
                    conf->defaults.backoff.max_ms,
                    conf->defaults.backoff.multiplier,
                    conf->defaults.backoff.jitter) < 0)
    {
        spec = NULL;
        goto done;
    }
    if (o->job != NULL && strcmp(o->spec, spec) == 0) {
        job = o->job;
        goto done;
    }
    hg_otlp_job_drop(o);
    job = hg_notify_internal_job(m, def, conf->tracing.timeout_ms,
                                 conf->tracing.retries, HG_PRIORITY_NORMAL);
    if (job == NULL) {
        goto done;
    }
    o->job = job;
    o->spec = spec;
    spec = NULL;

done:
    free(spec);
    free(text);
    free(url);
    json_decref(def);
    return job;
}

/* Hand the oldest batch to a worker, unless one is under way (its end
 * comes back here). */
static void
hg_otlp_export(hg_master_t *m)
{
    struct hg_otlp_s *o = m->otlp;
    const hg_conf_t *conf = m->cycle->conf;
    size_t n, i;
    json_t *batch = NULL, *rest = NULL, *body = NULL;
    hg_execution_t *exec = NULL;
    hg_job_t *job;
    char *text = NULL;

    if (o == NULL || o->sending > 0 || json_array_size(o->held) == 0) {
        return;
    }
    hg_timer_cancel(&o->timer);
    n = json_array_size(o->held);
    if (!conf->tracing.enabled || m->quitting || m->stopping) {
        /* Turned off by a reload, or the master ends. */
        hg_otlp_count(m, "dropped", n);
        json_array_clear(o->held);
        return;
    }
    if (n > (size_t) conf->tracing.batch) {
        n = (size_t) conf->tracing.batch;
    }
    batch = json_array();
    rest = json_array();
    for (i = 0; batch != NULL && rest != NULL
                && i < json_array_size(o->held); i++)
    {
        if (json_array_append(i < n ? batch : rest,
                              json_array_get(o->held, i)) != 0)
        {
            goto failed;
        }
    }
    if (batch == NULL || rest == NULL) {
        goto failed;
    }
    json_decref(o->held);
    o->held = rest;
    rest = NULL;
    body = hg_otlp_request_json(batch, conf->tracing.service_name,
                                conf->cluster.enabled
                                ? conf->cluster.instance : o->host);
    batch = NULL;                   /* taken */
    if (body == NULL || (text = hg_json_dumps(body, JSON_COMPACT)) == NULL
        || (job = hg_otlp_job(m, o)) == NULL
        || (exec = hg_execution_new(m, job, hg_now_ms(), 1, "trace"))
           == NULL
        || hg_execution_set_payload(exec, text, strlen(text)) != HG_OK)
    {
        if (exec != NULL) {
            hg_execution_free(m, exec);
        }
        hg_log(HG_LOG_ERROR, "otlp: out of memory: %zu spans lost", n);
        hg_otlp_count(m, "failed", n);
        goto done;
    }
    o->sending = n;
    (void) hg_dispatch_admit(m, exec, false);
    goto done;

failed:
    hg_log(HG_LOG_ERROR, "otlp: out of memory: %zu spans lost",
           json_array_size(o->held));
    hg_otlp_count(m, "dropped", json_array_size(o->held));
    json_array_clear(o->held);

done:
    free(text);
    json_decref(body);
    json_decref(batch);
    json_decref(rest);
}

/* An export's run ended: its spans are in, or lost. */
static void
hg_otlp_exported(hg_master_t *m, const hg_master_result_t *r)
{
    struct hg_otlp_s *o = m->otlp;
    const hg_conf_t *conf = m->cycle->conf;

    if (o == NULL) {
        return;
    }
    if (r->status == HG_EXEC_SUCCEEDED) {
        hg_otlp_count(m, "exported", o->sending);
    } else {
        hg_log(HG_LOG_WARN, "otlp: export of %zu spans to %s failed: %s",
               o->sending, conf->tracing.otlp != NULL ? conf->tracing.otlp
                                                       : "the collector",
               r->error != NULL ? r->error : hg_exec_status_name(r->status));
        hg_otlp_count(m, "failed", o->sending);
    }
    o->sending = 0;
    if (json_array_size(o->held) >= (size_t) conf->tracing.batch
        || !conf->tracing.enabled)
    {
        hg_otlp_export(m);
    } else if (json_array_size(o->held) > 0 && !hg_timer_pending(&o->timer)) {
        hg_timer_set(&m->mono, &o->timer, hg_clock_ns(CLOCK_MONOTONIC)
                     + conf->tracing.interval_ms * HG_NSEC_PER_MSEC);
    }
}

void
hg_otlp_finished(hg_master_t *m, const hg_execution_t *exec,
                 const hg_master_result_t *r, bool retry)
{
    const hg_conf_t *conf = m->cycle->conf;
    struct hg_otlp_s *o;
    hg_otlp_span_t s;
    json_t *span;

    if (exec->job->channel) {
        /* Internal jobs make no span: an export's would call for
         * another export, without end. */
        if (!retry && strcmp(exec->job->id, HG_OTLP_JOB_ID) == 0) {
            hg_otlp_exported(m, r);
        }
        return;
    }
    if (!conf->tracing.enabled) {
        if (m->otlp != NULL && json_array_size(m->otlp->held) > 0) {
            hg_otlp_export(m);      /* drops them, counted */
        }
        return;
    }
    if ((o = hg_otlp_state(m)) == NULL
        || json_array_size(o->held) >= (size_t) conf->tracing.queue)
    {
        hg_otlp_count(m, "dropped", 1);
        return;
    }
    memset(&s, 0, sizeof(s));
    s.job_id = exec->job->id;
    s.exec_id = exec->id;
    s.run_id = exec->run_id;
    s.status = hg_exec_status_name(r->status);
    s.error = r->error;
    s.trigger = exec->trigger;
    s.instance = conf->cluster.enabled ? conf->cluster.instance : o->host;
    s.attempt = exec->attempt;
    s.exit_code = r->exit_code;
    s.signo = r->signo;
    s.start_ms = r->started_ms > 0 ? r->started_ms : exec->dispatched_ms;
    s.end_ms = r->finished_ms > s.start_ms ? r->finished_ms : s.start_ms;
    /* As hourglass_schedule_lag_seconds: a retry's from its backoff's
     * end. */
    s.lag_ms = exec->dispatched_ns > 0 && exec->due_ns > 0
               ? (exec->dispatched_ns - exec->due_ns) / HG_NSEC_PER_MSEC : 0;
    span = hg_otlp_span_json(&s);
    if (span == NULL || json_array_append_new(o->held, span) != 0) {
        hg_otlp_count(m, "dropped", 1);
        return;
    }
    if (json_array_size(o->held) >= (size_t) conf->tracing.batch) {
        hg_otlp_export(m);
    } else if (!hg_timer_pending(&o->timer) && o->sending == 0) {
        hg_timer_set(&m->mono, &o->timer, hg_clock_ns(CLOCK_MONOTONIC)
                     + conf->tracing.interval_ms * HG_NSEC_PER_MSEC);
    }
}

void
hg_otlp_free(hg_master_t *m)
{
    struct hg_otlp_s *o = m->otlp;

    if (o == NULL) {
        return;
    }
    hg_timer_cancel(&o->timer);
    hg_otlp_job_drop(o);
    json_decref(o->held);
    free(o);
    m->otlp = NULL;
}
