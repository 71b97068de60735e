/*
 * hg_notify.c: a job's events turned into notifications on its channels.
 *
 * hg_outcome.c decides that something happened (a run failed for good, it
 * went dead, the job recovered, a run was missed); this file builds the
 * event's JSON, applies the job's `notify` (read from its definition, where
 * the reader merged `defaults.notify`), rate-limits per job and channel,
 * and hands each delivery to the pool.
 *
 * It never delivers anything itself (no socket, no process: the master
 * never blocks and never runs job code). A delivery is an execution of the
 * channel's internal job, "notify:NAME", of type http for a webhook (the
 * event is the POST body: the http module sends the payload) or shell for
 * a command (the event on stdin): it runs in a worker like any job's, its
 * retries follow the channel's `retries` with the defaults' backoff, it is
 * recorded in the store's history and counted in executions_total, and
 * hourglass_notifications_total{channel,result} counts its end. The
 * internal jobs are not in the master's job table: no API lists, pauses or
 * triggers them, and no fire time is ever set for them.
 *
 * Rate limit: at most rate_limit notifications per (job, channel) in a
 * window of rate_window that opens with the first one; the rest of the
 * window's events are counted, and when it closes one summary goes out
 * ("12 more failure notifications of backup suppressed").
 *
 * Dead-man alerts (a job's `expect`) are watched here too: see below.
 */

#include "hg_core.h"

#include <signal.h>

#include "hg_dispatch.h"
#include "hg_exec.h"
#include "hg_execution.h"
#include "hg_job.h"
#include "hg_log.h"
#include "hg_notify.h"
#include "hg_query.h"
#include "hg_tz.h"
#include "hg_units.h"
#include "hg_json.h"

/* The output a notification carries: its last lines, at most this many
 * lines and bytes (a chat message, not a log). */
#define HG_NOTIFY_OUTPUT_LINES  20
#define HG_NOTIFY_OUTPUT_BYTES  2048
/* How often a dead-man watch looks whether the store has answered. */
#define HG_NOTIFY_ASK_POLL_MS   100

typedef struct hg_notify_channel_s {
    hg_job_t *job;                  /* its internal job, "notify:NAME" */
    char *spec;                     /* the channel's JSON as configured */
} hg_notify_channel_t;

/* A (job, channel) pair's rate window. */
typedef struct hg_notify_limit_s {
    hg_master_t *m;
    char *key;                      /* "JOB\nCHANNEL" (the map's key) */
    char *job_id;
    char *channel;
    int64_t window_end_ns;          /* monotonic; 0 = no window open */
    unsigned sent;
    unsigned suppressed;
    char event[16];                 /* the last suppressed one's name */
    hg_timer_t timer;               /* the window's end, with a summary */
} hg_notify_limit_t;

struct hg_notify_s {
    hg_map_t channels;              /* name -> hg_notify_channel_t */
    hg_map_t limits;                /* "JOB\nCHANNEL" -> hg_notify_limit_t */
    hg_map_t failing;               /* job id -> its own strdup: its last
                                       run failed for good */
    hg_map_t watches;               /* job id -> hg_notify_watch_t */
    hg_map_t asks;                  /* job id -> hg_notify_ask_t */
};

static struct hg_notify_s *
hg_notify_state(hg_master_t *m)
{
    if (m->notify == NULL && (m->notify = calloc(1, sizeof(*m->notify)))
                             != NULL)
    {
        hg_map_init(&m->notify->channels);
        hg_map_init(&m->notify->limits);
        hg_map_init(&m->notify->failing);
        hg_map_init(&m->notify->watches);
        hg_map_init(&m->notify->asks);
    }
    return m->notify;
}

static void
hg_notify_count(hg_master_t *m, const char *channel, const char *result)
{
    const char *labels[] = { channel, result };

    hg_metric_add(m->metric.notifications, labels, 1);
}

/* --- the channels' internal jobs ----------------------------------------- */

static void
hg_notify_never_fires(hg_timer_t *timer)
{
    HG_UNUSED(timer);
}

static void
hg_notify_channel_drop(hg_notify_channel_t *ch)
{
    hg_notify_internal_job_drop(ch->job);
    free(ch->spec);
    free(ch);
}

/* The definition a channel's deliveries run with. */
static json_t *
hg_notify_definition(const json_t *c, const char *id)
{
    const char *type = json_string_value(json_object_get(c, "type"));

    if (strcmp(type, "webhook") == 0) {
        return json_pack("{sssssOsss{ss}}", "id", id, "type", "http",
                         "url", json_object_get(c, "url"), "method", "POST",
                         "headers", "Content-Type", "application/json");
    }
    return json_pack("{sssssO}", "id", id, "type", "shell",
                     "command", json_object_get(c, "command"));
}

/* Channel NAME in the configuration in force, or NULL. */
static const json_t *
hg_notify_channel_conf(hg_master_t *m, const char *name)
{
    const json_t *c;
    size_t i;

    json_array_foreach(m->cycle->conf->channels, i, c) {
        if (strcmp(json_string_value(json_object_get(c, "name")), name)
            == 0)
        {
            return c;
        }
    }
    return NULL;
}

hg_job_t *
hg_notify_internal_job(hg_master_t *m, const json_t *def, int64_t timeout_ms,
                       int retries, hg_priority_t priority)
{
    const char *id = json_string_value(json_object_get(def, "id"));
    char *text = hg_json_dumps(def, JSON_COMPACT | JSON_SORT_KEYS);
    hg_job_t *job = NULL;

    if (text == NULL || id == NULL
        || (job = hg_job_new(m, id, hg_notify_never_fires)) == NULL)
    {
        goto done;
    }
    job->type = hg_slab_intern(&m->job_strings,
                               json_string_value(json_object_get(def,
                                                                 "type")));
    job->definition_text = hg_slab_strdup(&m->job_strings, text);
    if (job->type == NULL || job->definition_text == NULL) {
        job->removed = true;
        hg_job_free(job);
        job = NULL;
        goto done;
    }
    /* The defaults' backoff between tries; its own timeout and tries;
     * its executions run side by side. */
    job->policy = m->cycle->conf->defaults;
    memset(&job->policy.limits, 0, sizeof(job->policy.limits));
    job->policy.timeout_ms = timeout_ms;
    job->policy.max_retries = retries;
    job->policy.overlap = HG_OVERLAP_ALLOW;
    job->policy.starting_deadline_ms = 0;
    job->policy.jitter_ms = 0;
    job->policy.priority = priority;
    job->output_limit = hg_exec_limit_from_job(def);
    job->kind = HG_SCHEDULE_NONE;
    job->enabled = true;
    job->channel = true;

done:
    free(text);
    return job;
}

void
hg_notify_internal_job_drop(hg_job_t *job)
{
    /* Executions under way finish with it: freed by its last one. */
    if (job != NULL) {
        job->removed = true;
        if (job->refs == 0) {
            hg_job_free(job);
        }
    }
}

static hg_job_t *
hg_notify_job_new(hg_master_t *m, const json_t *c, const char *name)
{
    char id[160];
    json_t *def;
    hg_job_t *job = NULL;

    snprintf(id, sizeof(id), "%s%s", HG_NOTIFY_JOB_PREFIX, name);
    def = hg_notify_definition(c, id);
    if (def != NULL) {
        job = hg_notify_internal_job(m, def, json_integer_value(
                  json_object_get(c, "timeout_ms")),
                  (int) json_integer_value(json_object_get(c, "retries")),
                  HG_PRIORITY_HIGH);
    }
    json_decref(def);
    return job;
}

/* The internal job of channel NAME as the configuration in force defines
 * it, made anew when a reload changed the channel; NULL when there is no
 * such channel (any more). */
static hg_job_t *
hg_notify_channel_job(hg_master_t *m, const char *name)
{
    struct hg_notify_s *n = hg_notify_state(m);
    const json_t *found = hg_notify_channel_conf(m, name);
    hg_notify_channel_t *ch;
    char *spec;

    if (n == NULL || found == NULL) {
        return NULL;
    }
    spec = hg_json_dumps(found, JSON_COMPACT | JSON_SORT_KEYS);
    if (spec == NULL) {
        return NULL;
    }
    ch = hg_map_get(&n->channels, name);
    if (ch != NULL && strcmp(ch->spec, spec) == 0) {
        free(spec);
        return ch->job;
    }
    if (ch != NULL) {
        /* Changed by a reload: deliveries under way finish with the old
         * definition (the job lives on until its last one ends). */
        hg_map_remove(&n->channels, name);
        hg_notify_channel_drop(ch);
    }
    ch = calloc(1, sizeof(*ch));
    if (ch == NULL) {
        free(spec);
        return NULL;
    }
    ch->spec = spec;
    ch->job = hg_notify_job_new(m, found, name);
    if (ch->job == NULL
        || hg_map_put(&n->channels, ch->job->id + strlen(HG_NOTIFY_JOB_PREFIX),
                      ch) != HG_OK)
    {
        hg_notify_channel_drop(ch);
        return NULL;
    }
    return ch->job;
}

/* --- the event ---------------------------------------------------------- */

/* TEXT as a JSON string; bytes that are not UTF-8 (a job's output may be
 * anything) become '?', so the event is always sent. */
static json_t *
hg_notify_string(const char *text, size_t len)
{
    return hg_json_text(text, len, "?");
}

/* The last lines of OUTPUT (LEN bytes): where a failure says why. */
static json_t *
hg_notify_tail(const char *output, size_t len)
{
    size_t start = len, lines = 0;

    if (output == NULL || len == 0) {
        return json_string("");
    }
    if (output[start - 1] == '\n') {
        start--;
    }
    while (start > 0 && len - start < HG_NOTIFY_OUTPUT_BYTES) {
        if (output[start - 1] == '\n'
            && ++lines == HG_NOTIFY_OUTPUT_LINES)
        {
            break;
        }
        start--;
    }
    /* Cut in the middle of a character, the JSON string would be
     * refused: step to the next character's start. */
    while (start < len && ((unsigned char) output[start] & 0xC0) == 0x80) {
        start++;
    }
    return hg_notify_string(output + start, len - start);
}

static int
hg_notify_set_time(json_t *ev, const char *key, int64_t ms)
{
    char buf[40];

    if (ms <= 0) {
        return json_object_set_new(ev, key, json_null());
    }
    hg_format_utc_ms(ms, buf, sizeof(buf));
    return json_object_set_new(ev, key, json_string(buf));
}

/* The Slack-compatible one-line summary. */
static json_t *
hg_notify_text(const char *event, const char *job_id,
               const hg_execution_t *exec, const hg_master_result_t *r)
{
    char how[96] = "";

    if (r != NULL && r->exit_code >= 0) {
        snprintf(how, sizeof(how), ", exit code %d", r->exit_code);
    } else if (r != NULL && r->signo > 0) {
        snprintf(how, sizeof(how), ", signal %s",
                 sigabbrev_np(r->signo) ? sigabbrev_np(r->signo) : "?");
    }
    if (strcmp(event, "failure") == 0 || strcmp(event, "dead") == 0) {
        return json_sprintf("hourglass: job %s failed after %u attempt%s "
                            "(%s%s)%s", job_id, exec->attempt,
                            exec->attempt == 1 ? "" : "s",
                            r != NULL ? hg_exec_status_name(r->status) : "?",
                            how, strcmp(event, "dead") == 0
                                 ? "; it is on the dead-letter list" : "");
    }
    if (strcmp(event, "recovered") == 0) {
        return json_sprintf("hourglass: job %s recovered: it succeeded "
                            "again", job_id);
    }
    if (strcmp(event, "missed") == 0) {
        char due[40];

        hg_format_utc_ms(exec->scheduled_for_ms, due, sizeof(due));
        return json_sprintf("hourglass: job %s missed its run due %s",
                            job_id, due);
    }
    return json_sprintf("hourglass: job %s: %s", job_id, event);
}

static json_t *
hg_notify_event_json(const char *event, const hg_execution_t *exec,
                     const hg_master_result_t *r)
{
    const char *last;
    json_t *ev;
    int rc = 0;

    ev = json_pack("{sssssssssi}", "event", event, "job", exec->job->id,
                   "execution", exec->id, "run", exec->run_id,
                   "attempt", (int) exec->attempt);
    if (ev == NULL) {
        return NULL;
    }
    /* The run's status as the store keeps it (a run that failed for good
     * is dead, one that never started missed), and how its last attempt
     * ended (failed, timed_out...). */
    last = strcmp(event, "missed") == 0 ? "missed"
           : hg_exec_status_name(r != NULL ? r->status : exec->status);
    rc |= json_object_set_new(ev, "status", json_string(
             strcmp(event, "failure") == 0 || strcmp(event, "dead") == 0
             ? "dead" : last));
    rc |= json_object_set_new(ev, "attempt_status", json_string(last));
    rc |= json_object_set_new(ev, "exit_code", r != NULL && r->exit_code >= 0
                              ? json_integer(r->exit_code) : json_null());
    rc |= json_object_set_new(ev, "signal", r != NULL && r->signo > 0
                              && sigabbrev_np(r->signo) != NULL
                              ? json_sprintf("SIG%s", sigabbrev_np(r->signo))
                              : json_null());
    rc |= json_object_set_new(ev, "error", r != NULL && r->error != NULL
                              ? json_string(r->error) : json_null());
    rc |= hg_notify_set_time(ev, "scheduled_for", exec->scheduled_for_ms);
    rc |= hg_notify_set_time(ev, "started_at", r ? r->started_ms : 0);
    rc |= hg_notify_set_time(ev, "finished_at", r ? r->finished_ms : 0);
    rc |= json_object_set_new(ev, "output", r != NULL
                              ? hg_notify_tail(r->output, r->output_len)
                              : json_string(""));
    rc |= json_object_set_new(ev, "text", hg_notify_text(event,
                                                         exec->job->id,
                                                         exec, r));
    if (rc != 0) {
        json_decref(ev);
        return NULL;
    }
    return ev;
}

/* --- delivery ----------------------------------------------------------- */

static void
hg_notify_deliver(hg_master_t *m, const char *channel, const char *job_id,
                  const json_t *ev)
{
    hg_job_t *job = hg_notify_channel_job(m, channel);
    hg_execution_t *exec;
    char *body;

    if (job == NULL) {
        hg_log_event(HG_LOG_ERROR, "notify", job_id, NULL, NULL, 0,
                     "no channel \"%s\" in the configuration (or no "
                     "memory): notification lost", channel);
        hg_notify_count(m, channel, "error");
        return;
    }
    if (m->quitting || m->stopping) {
        hg_notify_count(m, channel, "error");
        return;
    }
    body = hg_json_dumps(ev, JSON_COMPACT);
    exec = body != NULL ? hg_execution_new(m, job, hg_now_ms(), 1, "notify")
                        : NULL;
    if (exec == NULL
        || hg_execution_set_payload(exec, body, strlen(body)) != HG_OK)
    {
        if (exec != NULL) {
            hg_execution_free(m, exec);
        }
        free(body);
        hg_notify_count(m, channel, "error");
        return;
    }
    free(body);
    exec->priority = HG_PRIORITY_HIGH;
    hg_log_event(HG_LOG_INFO, "notify", job_id, exec->id, NULL, 0,
                 "%s notification on channel %s",
                 json_string_value(json_object_get(ev, "event")), channel);
    (void) hg_dispatch_admit(m, exec, false);
}

static void
hg_notify_on_window_end(hg_timer_t *timer)
{
    hg_notify_limit_t *l = timer->data;
    json_t *ev;

    if (l->suppressed > 0) {
        ev = json_pack("{sssssiss}", "event", "suppressed", "job", l->job_id,
                       "suppressed", (int) l->suppressed, "last_event",
                       l->event);
        if (ev != NULL
            && json_object_set_new(ev, "text", json_sprintf(
                   "hourglass: %u more %s notification%s of job %s "
                   "suppressed (rate limit)", l->suppressed, l->event,
                   l->suppressed == 1 ? "" : "s", l->job_id)) == 0)
        {
            hg_notify_deliver(l->m, l->channel, l->job_id, ev);
        }
        json_decref(ev);
    }
    l->window_end_ns = 0;
    l->sent = 0;
    l->suppressed = 0;
}

static hg_notify_limit_t *
hg_notify_limit(hg_master_t *m, const char *job_id, const char *channel)
{
    struct hg_notify_s *n = hg_notify_state(m);
    hg_notify_limit_t *l;
    size_t jl = strlen(job_id), cl = strlen(channel);

    if (n == NULL) {
        return NULL;
    }
    l = calloc(1, sizeof(*l) + 2 * (jl + cl + 2));
    if (l == NULL) {
        return NULL;
    }
    l->key = (char *) (l + 1);
    snprintf(l->key, jl + cl + 2, "%s\n%s", job_id, channel);
    l->job_id = l->key + jl + cl + 2;
    memcpy(l->job_id, job_id, jl + 1);
    l->channel = l->job_id + jl + 1;
    memcpy(l->channel, channel, cl + 1);
    {
        hg_notify_limit_t *old = hg_map_get(&n->limits, l->key);

        if (old != NULL) {
            free(l);
            return old;
        }
    }
    l->m = m;
    hg_timer_init(&l->timer, hg_notify_on_window_end, l);
    if (hg_map_put(&n->limits, l->key, l) != HG_OK) {
        free(l);
        return NULL;
    }
    return l;
}

/* Whether the window lets one more notification of JOB through CHANNEL;
 * else it is counted for the window's summary. */
static bool
hg_notify_admit(hg_master_t *m, const char *job_id, const char *channel,
                const char *event)
{
    const json_t *c = hg_notify_channel_conf(m, channel);
    hg_notify_limit_t *l = hg_notify_limit(m, job_id, channel);
    int64_t now = hg_clock_ns(CLOCK_MONOTONIC);
    int64_t window_ms = json_integer_value(json_object_get(c,
                                                           "rate_window_ms"));
    unsigned limit = (unsigned) json_integer_value(json_object_get(
                                                       c, "rate_limit"));

    if (l == NULL || limit == 0) {
        return true;                /* the delivery says what is wrong */
    }
    if (l->window_end_ns == 0) {
        l->window_end_ns = now + window_ms * HG_NSEC_PER_MSEC;
        hg_timer_set(&m->mono, &l->timer, l->window_end_ns);
    }
    if (l->sent < limit) {
        l->sent++;
        return true;
    }
    l->suppressed++;
    snprintf(l->event, sizeof(l->event), "%s", event);
    hg_notify_count(m, channel, "suppressed");
    return false;
}

/* EVENT of EXEC's job: to each channel of its notify that asks for it. */
static void
hg_notify_event(hg_master_t *m, const char *event, const hg_job_t *job,
                const hg_execution_t *exec, const hg_master_result_t *r,
                json_t *ev)
{
    json_t *def, *notify, *on, *via, *item;
    const char *wanted = event;
    bool asked = false;
    size_t i;

    def = json_loads(job->definition_text, 0, NULL);
    notify = json_object_get(def, "notify");
    on = json_object_get(notify, "on");
    via = json_object_get(notify, "via");
    /* Every run that fails for good goes to the dead-letter list, so
     * `failure` and `dead` name one moment: a job that asks for either
     * hears of it once, as "dead" when it asked for that by name. */
    json_array_foreach(on, i, item) {
        const char *name = json_string_value(item);

        if (name == NULL) {
            continue;
        }
        if (strcmp(name, event) == 0) {
            asked = true;
            wanted = event;
        } else if (strcmp(event, "dead") == 0
                   && strcmp(name, "failure") == 0)
        {
            if (!asked) {
                wanted = "failure";
            }
            asked = true;
        }
    }
    if (ev != NULL) {
        json_incref(ev);            /* built by the caller (overdue) */
    } else if (asked && exec != NULL) {
        ev = hg_notify_event_json(wanted, exec, r);
    }
    if (!asked || ev == NULL) {
        json_decref(ev);
        json_decref(def);
        return;
    }
    json_array_foreach(via, i, item) {
        const char *channel = json_string_value(item);

        if (channel != NULL
            && hg_notify_admit(m, job->id, channel, wanted))
        {
            hg_notify_deliver(m, channel, job->id, ev);
        }
    }
    json_decref(ev);
    json_decref(def);
}

/* --- dead-man: expect = { success_within; run_within; } --------------- */

/*
 * A job with an `expect` group is watched: its last success and its last
 * run (wall ms), taken from the store once at start (a query on the
 * store's thread: the loop never waits for it) and from each run's end
 * since. When success_within (run_within) passes after the last success
 * (run), the job is overdue: `overdue` is raised, and again once per such
 * window while it lasts; hourglass_job_overdue{job} is 1 until the job
 * succeeds (runs) again. Whatever the cause: the master down, the job
 * paused, failing, or its schedule wrong.
 */
typedef struct hg_notify_watch_s {
    hg_master_t *m;
    char *id;                       /* the job's (the map's key) */
    int64_t success_within_ms;      /* 0 = not watched */
    int64_t run_within_ms;
    int64_t last_success_ms;        /* wall; 0 = none known */
    int64_t last_run_ms;
    int64_t next_raise_ms;          /* overdue: when it is raised again */
    int pending;                    /* store queries not answered yet */
    bool asked;                     /* the store was asked */
    bool known;                     /* its answer is in */
    bool overdue;
    hg_timer_t timer;
} hg_notify_watch_t;

static void hg_notify_watch_check(hg_notify_watch_t *w);
static void hg_notify_ask_failing(hg_master_t *m, const hg_job_t *job);

static void
hg_notify_watch_free(hg_notify_watch_t *w)
{
    hg_timer_cancel(&w->timer);
    if (w->overdue) {
        const char *labels[] = { w->id };

        hg_metric_set(w->m->metric.overdue, labels, 0);
    }
    free(w->id);
    free(w);
}

/* The store has answered (or could not be asked): a job it knows no
 * success (run) of counts its window from the master's start. */
static void
hg_notify_watch_known(hg_notify_watch_t *w)
{
    if (w->last_success_ms == 0) {
        w->last_success_ms = w->m->started_ms;
    }
    if (w->last_run_ms == 0) {
        w->last_run_ms = w->m->started_ms;
    }
    w->known = true;
}

/* The store's answer to "the job's last success (or run)": the newest
 * execution of the page, if any. */
static void
hg_notify_watch_read(hg_notify_watch_t *w, int rc, const json_t *answer,
                     bool success)
{
    const json_t *row = json_array_get(json_object_get(answer,
                                                       "executions"), 0);
    const char *at = json_string_value(json_object_get(row, success
                                                       ? "finished_at"
                                                       : "started_at"));
    char err[128];
    int64_t t;

    if (rc == HG_OK && at != NULL
        && hg_tz_parse_time(hg_tz_utc(), at, &t, err, sizeof(err)) == HG_OK)
    {
        int64_t *slot = success ? &w->last_success_ms : &w->last_run_ms;

        if (t * 1000 > *slot) {
            *slot = t * 1000;
        }
    }
    if (--w->pending == 0) {
        hg_notify_watch_known(w);
    }
}

static void
hg_notify_on_last_success(void *data, int rc, const json_t *answer)
{
    hg_notify_watch_read(data, rc, answer, true);
}

static void
hg_notify_on_last_run(void *data, int rc, const json_t *answer)
{
    hg_notify_watch_read(data, rc, answer, false);
}

/* Ask the store when the job last succeeded and ran; without a store (or
 * its answer) the window starts with the master. */
static void
hg_notify_watch_ask(hg_notify_watch_t *w)
{
    hg_query_args_t args;

    memset(&args, 0, sizeof(args));
    args.job_id = w->id;
    args.limit = 1;
    w->pending = 1;                 /* held while the queries go out */
    if (w->success_within_ms > 0) {
        args.status = "succeeded";
        if (hg_query_start(w->m, HG_QUERY_EXECUTIONS, &args,
                           hg_notify_on_last_success, w) == HG_OK)
        {
            w->pending++;
        }
    }
    if (w->run_within_ms > 0) {
        args.status = NULL;
        if (hg_query_start(w->m, HG_QUERY_EXECUTIONS, &args,
                           hg_notify_on_last_run, w) == HG_OK)
        {
            w->pending++;
        }
    }
    if (--w->pending == 0) {
        hg_notify_watch_known(w);
    }
}

static json_t *
hg_notify_overdue_json(const hg_notify_watch_t *w, bool success,
                       int64_t within_ms)
{
    char span[HG_UNITS_TEXT_MAX], last[40] = "never";
    int64_t since = success ? w->last_success_ms : w->last_run_ms;
    json_t *ev;

    hg_format_duration(within_ms, span, sizeof(span));
    ev = json_pack("{sssssss{sssI}}", "event", "overdue", "job", w->id,
                   "status", "overdue", "expect",
                   success ? "success_within" : "run_within", span,
                   "within_ms", (json_int_t) within_ms);
    if (ev == NULL) {
        return NULL;
    }
    if (hg_notify_set_time(ev, success ? "last_success" : "last_run", since)
        != 0)
    {
        json_decref(ev);
        return NULL;
    }
    if (since > 0) {
        hg_format_utc_ms(since, last, sizeof(last));
    }
    if (json_object_set_new(ev, "text", json_sprintf(
            "hourglass: job %s is overdue: no %s within %s (last: %s)",
            w->id, success ? "success" : "run", span, last)) != 0)
    {
        json_decref(ev);
        return NULL;
    }
    return ev;
}

/*
 * In a cluster each instance runs only its share of a job's runs (and,
 * coordinated through Redis, holds only its share of the history): the
 * job's last run and success on any instance come from the store's
 * picture of the cluster ("jobs"), and only the leader raises overdue,
 * once for the cluster. Returns whether this instance may raise (always
 * without such a picture).
 */
static bool
hg_notify_watch_shared(hg_notify_watch_t *w)
{
    json_t *view = w->m->store != NULL ? hg_store_cluster(w->m->store)
                                       : NULL;
    const json_t *last, *leader;
    int64_t t;
    bool may = true;

    if (view == NULL) {
        return true;
    }
    last = json_object_get(json_object_get(view, "jobs"), w->id);
    t = (int64_t) json_integer_value(json_object_get(last, "run_ms"));
    if (t > w->last_run_ms) {
        w->last_run_ms = t;
    }
    t = (int64_t) json_integer_value(json_object_get(last, "success_ms"));
    if (t > w->last_success_ms) {
        w->last_success_ms = t;
    }
    leader = json_object_get(view, "leader");
    if (json_is_boolean(leader)) {
        may = json_is_true(leader);
    }
    json_decref(view);
    return may;
}

static void
hg_notify_on_watch(hg_timer_t *timer)
{
    hg_notify_watch_check(timer->data);
}

static void
hg_notify_watch_check(hg_notify_watch_t *w)
{
    hg_master_t *m = w->m;
    const char *labels[] = { w->id };
    const hg_job_t *job = hg_job_find(m, w->id);
    int64_t now = hg_now_ms(), next = INT64_MAX, due;
    bool late_success, late_run, may_raise;
    json_t *ev;

    if (!w->asked) {
        /* From the loop, once the job is in the table (a new job's
         * definition comes before it is added). */
        w->asked = true;
        hg_notify_watch_ask(w);
    }
    if (!w->known) {
        /* The store's answer comes first. Polled: a store without a
         * thread answers in the turn after, and nothing else may wake
         * the loop. */
        hg_timer_set(&m->mono, &w->timer, hg_clock_ns(CLOCK_MONOTONIC)
                     + HG_NOTIFY_ASK_POLL_MS * HG_NSEC_PER_MSEC);
        return;
    }
    if (job == NULL) {
        /* Removed: nothing to watch any more, nor to say is overdue. */
        if (w->overdue) {
            w->overdue = false;
            hg_metric_set(m->metric.overdue, labels, 0);
        }
        return;
    }
    may_raise = hg_notify_watch_shared(w);
    due = w->success_within_ms > 0
          ? w->last_success_ms + w->success_within_ms : INT64_MAX;
    late_success = now >= due;
    if (!late_success && due < next) {
        next = due;
    }
    due = w->run_within_ms > 0 ? w->last_run_ms + w->run_within_ms
                               : INT64_MAX;
    late_run = now >= due;
    if (!late_run && due < next) {
        next = due;
    }
    if ((late_success || late_run) && !may_raise) {
        /* The leader says it, once for the cluster; asked again within a
         * lease, should this instance lead by then. */
        if (w->overdue) {
            w->overdue = false;
            hg_metric_set(m->metric.overdue, labels, 0);
        }
        next = now + (m->cycle->conf->cluster.lease_ms > 0
                      ? m->cycle->conf->cluster.lease_ms : 10000);
    } else if (late_success || late_run) {
        if (!w->overdue || now >= w->next_raise_ms) {
            int64_t within = late_success ? w->success_within_ms
                                          : w->run_within_ms;

            hg_log_event(HG_LOG_WARN, "overdue", w->id, NULL, NULL, 0,
                         "no %s within the expected time",
                         late_success ? "success" : "run");
            ev = hg_notify_overdue_json(w, late_success, within);
            if (ev != NULL) {
                hg_notify_event(m, "overdue", job, NULL, NULL, ev);
            }
            json_decref(ev);
            w->next_raise_ms = now + within;
        }
        w->overdue = true;
        hg_metric_set(m->metric.overdue, labels, 1);
        next = w->next_raise_ms;
    } else if (w->overdue) {
        w->overdue = false;
        hg_metric_set(m->metric.overdue, labels, 0);
    }
    if (next != INT64_MAX) {
        hg_timer_set(&m->mono, &w->timer, hg_clock_ns(CLOCK_MONOTONIC)
                     + (next - now) * HG_NSEC_PER_MSEC);
    }
}

/* The window of JOB's expect, in ms (0: none), from its definition. */
static int64_t
hg_notify_expect_ms(const json_t *def, const char *key)
{
    const json_t *expect = json_object_get(def, "expect");
    int64_t ms = 0;

    if (!json_is_object(expect)
        || hg_parse_duration(json_string_value(json_object_get(expect, key)),
                             &ms) != 0)
    {
        return 0;
    }
    return ms;
}

void
hg_notify_job_defined(hg_master_t *m, const hg_job_t *job)
{
    struct hg_notify_s *n;
    hg_notify_watch_t *w;
    json_t *def;
    int64_t success_ms, run_ms;

    if (strstr(job->definition_text, "\"recovered\"") != NULL) {
        hg_notify_ask_failing(m, job);
    }
    if (strstr(job->definition_text, "\"expect\":{") == NULL
        && (m->notify == NULL || hg_map_get(&m->notify->watches, job->id)
                                 == NULL))
    {
        return;                     /* the common case: nothing to watch */
    }
    if ((n = hg_notify_state(m)) == NULL) {
        return;
    }
    def = json_loads(job->definition_text, 0, NULL);
    success_ms = hg_notify_expect_ms(def, "success_within");
    run_ms = hg_notify_expect_ms(def, "run_within");
    json_decref(def);
    w = hg_map_get(&n->watches, job->id);
    if (success_ms == 0 && run_ms == 0) {
        if (w != NULL) {
            hg_map_remove(&n->watches, w->id);
            hg_notify_watch_free(w);
        }
        return;
    }
    if (w == NULL) {
        w = calloc(1, sizeof(*w));
        if (w == NULL || (w->id = strdup(job->id)) == NULL
            || hg_map_put(&n->watches, w->id, w) != HG_OK)
        {
            if (w != NULL) {
                free(w->id);
            }
            free(w);
            return;
        }
        w->m = m;
        hg_timer_init(&w->timer, hg_notify_on_watch, w);
    }
    w->success_within_ms = success_ms;
    w->run_within_ms = run_ms;
    /* Checked from the loop, now: a new job is not in the table yet. */
    hg_timer_set(&m->mono, &w->timer, hg_clock_ns(CLOCK_MONOTONIC));
}

/* A run of a watched job ended (SUCCEEDED or not). */
static void
hg_notify_watch_ran(hg_master_t *m, const hg_job_t *job, bool succeeded)
{
    hg_notify_watch_t *w;

    if (m->notify == NULL
        || (w = hg_map_get(&m->notify->watches, job->id)) == NULL)
    {
        return;
    }
    w->last_run_ms = hg_now_ms();
    if (succeeded) {
        w->last_success_ms = w->last_run_ms;
    }
    hg_notify_watch_check(w);
}

/* --- recovered across a restart ----------------------------------------- */

/*
 * Whether a job is failing (its last run failed for good: its next
 * success raises `recovered`) is kept in memory as runs end, and learnt
 * from the store once per job and master, for the jobs that ask for
 * `recovered`: the last final status of its statistics. A run that ends
 * before the store answers knows better, and the answer is ignored.
 */
typedef struct hg_notify_ask_s {
    hg_master_t *m;
    char *id;                       /* the job's (the map's key) */
    bool ran;                       /* a run ended before the answer */
    hg_timer_t timer;
} hg_notify_ask_t;

static void
hg_notify_on_last_status(void *data, int rc, const json_t *answer)
{
    hg_notify_ask_t *a = data;
    struct hg_notify_s *n = a->m->notify;
    const char *last = json_string_value(json_object_get(
        json_object_get(answer, "stats"), "last_status"));
    char *id;

    if (rc != HG_OK || a->ran || last == NULL || n == NULL
        || (strcmp(last, "dead") != 0 && strcmp(last, "failed") != 0
            && strcmp(last, "timed_out") != 0
            && strcmp(last, "crashed") != 0)
        || hg_map_get(&n->failing, a->id) != NULL)
    {
        return;
    }
    if ((id = strdup(a->id)) != NULL && hg_map_put(&n->failing, id, id)
                                        != HG_OK)
    {
        free(id);
    }
}

static void
hg_notify_on_ask(hg_timer_t *timer)
{
    hg_notify_ask_t *a = timer->data;
    hg_query_args_t args;

    /* From the loop, once the job is in the table. Without a store (or
     * its answer) the job starts as not failing. */
    memset(&args, 0, sizeof(args));
    args.job_id = a->id;
    (void) hg_query_start(a->m, HG_QUERY_JOB, &args,
                          hg_notify_on_last_status, a);
}

static void
hg_notify_ask_failing(hg_master_t *m, const hg_job_t *job)
{
    struct hg_notify_s *n = hg_notify_state(m);
    hg_notify_ask_t *a;

    if (n == NULL || hg_map_get(&n->asks, job->id) != NULL) {
        return;                     /* asked once: memory knows since */
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL || (a->id = strdup(job->id)) == NULL
        || hg_map_put(&n->asks, a->id, a) != HG_OK)
    {
        if (a != NULL) {
            free(a->id);
        }
        free(a);
        return;
    }
    a->m = m;
    hg_timer_init(&a->timer, hg_notify_on_ask, a);
    hg_timer_set(&m->mono, &a->timer, hg_clock_ns(CLOCK_MONOTONIC));
}

/* --- what hg_outcome.c tells ------------------------------------------- */

void
hg_notify_finished(hg_master_t *m, const hg_execution_t *exec,
                   const hg_master_result_t *result, bool dead)
{
    hg_job_t *job = exec->job;
    struct hg_notify_s *n;
    hg_notify_ask_t *ask;
    char *id;

    if (job->channel) {
        if (strncmp(job->id, HG_NOTIFY_JOB_PREFIX,
                    strlen(HG_NOTIFY_JOB_PREFIX)) != 0)
        {
            return;                 /* another internal job (hg_otlp.c) */
        }
        hg_notify_count(m, job->id + strlen(HG_NOTIFY_JOB_PREFIX),
                        result->status == HG_EXEC_SUCCEEDED ? "sent"
                                                             : "failed");
        return;
    }
    hg_notify_watch_ran(m, job, result->status == HG_EXEC_SUCCEEDED);
    if (strstr(job->definition_text, "\"notify\":") == NULL
        || (n = hg_notify_state(m)) == NULL)
    {
        return;                     /* the common case: nothing to tell */
    }
    if ((ask = hg_map_get(&n->asks, job->id)) != NULL) {
        ask->ran = true;
    }
    if (dead) {
        hg_notify_event(m, "dead", job, exec, result, NULL);
        if (hg_map_get(&n->failing, job->id) == NULL
            && (id = strdup(job->id)) != NULL
            && hg_map_put(&n->failing, id, id) != HG_OK)
        {
            free(id);
        }
    } else if (result->status == HG_EXEC_SUCCEEDED
               && (id = hg_map_remove(&n->failing, job->id)) != NULL)
    {
        free(id);
        hg_notify_event(m, "recovered", job, exec, result, NULL);
    }
}

void
hg_notify_missed(hg_master_t *m, const hg_execution_t *exec)
{
    if (!exec->job->channel
        && strstr(exec->job->definition_text, "\"notify\":") != NULL)
    {
        hg_notify_event(m, "missed", exec->job, exec, NULL, NULL);
    }
}

void
hg_notify_free(hg_master_t *m)
{
    struct hg_notify_s *n = m->notify;
    const char *key;
    void *value;
    size_t it = 0;

    if (n == NULL) {
        return;
    }
    while (hg_map_next(&n->channels, &it, &key, &value)) {
        hg_notify_channel_drop(value);
    }
    hg_map_free(&n->channels);
    it = 0;
    while (hg_map_next(&n->limits, &it, &key, &value)) {
        hg_timer_cancel(&((hg_notify_limit_t *) value)->timer);
    }
    hg_map_free_values(&n->limits);
    hg_map_free_values(&n->failing);
    it = 0;
    while (hg_map_next(&n->watches, &it, &key, &value)) {
        hg_notify_watch_free(value);
    }
    hg_map_free(&n->watches);
    it = 0;
    while (hg_map_next(&n->asks, &it, &key, &value)) {
        hg_notify_ask_t *a = value;

        hg_timer_cancel(&a->timer);
        free(a->id);
        free(a);
    }
    hg_map_free(&n->asks);
    free(n);
    m->notify = NULL;
}
