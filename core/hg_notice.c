/*
 * hg_notice.c: the master's notices to its one listener (the admin API,
 * which turns them into server-sent events).
 *
 * It owns the notices' names and bodies, built with jansson only when
 * someone listens, so that a daemon without the API pays one test per
 * event. It never blocks and never keeps a notice: the listener copies
 * what it sends on.
 */

#include "hg_core.h"

#include "hg_log.h"
#include "hg_notice.h"

bool
hg_notice_wanted(const hg_master_t *m)
{
    return m->notice != NULL;
}

void
hg_notice(hg_master_t *m, const char *event, json_t *body)
{
    if (m->notice != NULL && body != NULL) {
        m->notice(m->notice_data, event, body);
    }
    json_decref(body);
}

static json_t *
hg_notice_time(int64_t ms)
{
    char text[40];

    hg_format_utc_ms(ms, text, sizeof(text));
    return json_string(text);
}

void
hg_notice_started(hg_master_t *m, const hg_execution_t *exec)
{
    if (!hg_notice_wanted(m)) {
        return;
    }
    hg_notice(m, "execution_started", json_pack(
        "{s:s, s:s, s:i, s:s, s:o, s:i}", "id", exec->id,
        "job", exec->job->id, "attempt", (int) exec->attempt,
        "trigger", exec->trigger,
        "scheduled_for", hg_notice_time(exec->scheduled_for_ms),
        "worker", exec->worker != NULL ? (int) exec->worker->pid : 0));
}

void
hg_notice_finished(hg_master_t *m, const hg_master_result_t *r)
{
    const hg_execution_t *exec = r->exec;

    if (!hg_notice_wanted(m)) {
        return;
    }
    hg_notice(m, "execution_finished", json_pack(
        "{s:s, s:s, s:s, s:i, s:s, s:I, s:o, s:o}", "id", exec->id,
        "job", exec->job->id, "status", hg_exec_status_name(r->status),
        "attempt", (int) exec->attempt, "trigger", exec->trigger,
        "duration_ms", (json_int_t) (r->started_ms > 0
                                     ? r->finished_ms - r->started_ms : 0),
        "exit_code", r->exit_code >= 0 ? json_integer(r->exit_code)
                                       : json_null(),
        "signal", r->signo > 0 ? json_integer(r->signo) : json_null()));
}

void
hg_notice_job(hg_master_t *m, const char *job_id, const char *change,
              const char *by)
{
    if (!hg_notice_wanted(m)) {
        return;
    }
    hg_notice(m, "job_changed", json_pack("{s:s, s:s, s:s?}", "id", job_id,
                                          "change", change, "by", by));
}
