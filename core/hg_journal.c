/*
 * hg_journal.c: what the store says of each execution.
 *
 * It owns every execution record written (queued, running, final), the
 * barrier each start waits for and its acknowledgement (m->acked), the
 * store's degraded state as the master sees it, and the commit delay
 * measured from those barriers. It never decides a status (it writes the
 * one it is given), never starts an execution and never waits: the
 * store copies and batches what it is given, on its own thread.
 */

#include "hg_core.h"

#include "hg_execution.h"
#include "hg_journal.h"
#include "hg_log.h"
#include "hg_notice.h"
#include "hg_meter.h"

void
hg_journal_put(hg_master_t *m, hg_execution_t *exec,
               hg_exec_status_t status, const hg_master_result_t *res)
{
    hg_exec_record_t rec;

    if (m->store == NULL) {
        return;
    }
    memset(&rec, 0, sizeof(rec));
    rec.id = exec->id;
    rec.run_id = exec->run_id;
    rec.job_id = exec->job->id;
    rec.status = status;
    rec.attempt = exec->attempt;
    rec.trigger = exec->trigger;
    rec.scheduled_for = exec->scheduled_for_ms;
    rec.started_at = exec->dispatched_ms;
    rec.duration_ms = -1;
    rec.exit_code = -1;
    rec.worker_pid = exec->worker != NULL ? (int) exec->worker->pid : 0;
    rec.max_rss_kb = -1;
    rec.payload = exec->payload;
    rec.payload_len = exec->payload_len;
    rec.priority = (int) exec->priority;
    rec.run_at = exec->run_at_ms;
    rec.unique_key = exec->unique_key;
    rec.claim = exec->claim;
    rec.def_hash = exec->claim ? exec->job->def_hash : 0;
    rec.shared = exec->shared;
    if (res != NULL) {
        rec.started_at = res->started_ms;
        rec.finished_at = res->finished_ms;
        if (res->started_ms > 0 && res->finished_ms >= res->started_ms) {
            rec.duration_ms = res->finished_ms - res->started_ms;
        }
        rec.exit_code = res->exit_code;
        rec.signo = res->signo;
        rec.output = res->output;
        rec.output_len = res->output != NULL ? res->output_len : 0;
        rec.output_truncated = res->truncated;
        rec.error = res->error;
        rec.max_rss_kb = res->max_rss_kb;
        rec.cpu_user_ms = res->cpu_user_ms;
        rec.cpu_sys_ms = res->cpu_sys_ms;
    }
    if (hg_store_put_execution(m->store, &rec) != HG_OK) {
        hg_log_event(HG_LOG_ERROR, "store", exec->job->id, exec->id, NULL, 0,
                     "cannot queue the execution's record for the store");
        return;
    }
    exec->recorded = true;
}

void
hg_journal_unrun(hg_master_t *m, hg_execution_t *exec,
                 hg_exec_status_t status, const char *why)
{
    hg_master_result_t result;
    char due[40];
    hg_log_field_t fields[] = {
        HG_LOG_STR("status", hg_exec_status_name(status)),
        HG_LOG_STR("scheduled_for", due),
        HG_LOG_STR("trigger", exec->trigger),
    };

    hg_format_utc_ms(exec->scheduled_for_ms, due, sizeof(due));
    hg_log_event(HG_LOG_WARN, "finish", exec->job->id, exec->id, fields,
                 HG_NELEMS(fields), "%s", why);
    memset(&result, 0, sizeof(result));
    result.exec = exec;
    result.status = status;
    result.exit_code = -1;
    result.error = why;
    result.max_rss_kb = -1;
    result.finished_ms = hg_now_ms();
    hg_journal_put(m, exec, status, &result);
    hg_meter_count_end(m, exec, status, NULL);
    hg_notice_finished(m, &result);
    if (m->observer != NULL) {
        m->observer(m, &result, m->observer_data);
    }
    hg_execution_free(m, exec);
}

bool
hg_journal_committed(const hg_master_t *m, const hg_execution_t *exec)
{
    return exec->ticket == 0 || exec->ticket <= m->acked
           || m->store_degraded;
}

void
hg_journal_mark_running(hg_master_t *m, hg_execution_t *exec)
{
    uint64_t ticket;

    hg_execution_release_key(m, exec);
    exec->status = HG_EXEC_RUNNING;
    exec->dispatched_ms = hg_now_ms();
    exec->job->running++;
    exec->ticket = 0;
    hg_journal_put(m, exec, HG_EXEC_RUNNING, NULL);
    if (m->store != NULL && m->store->notify_fd >= 0
        && !m->store_degraded
        && hg_store_barrier_for(m->store, exec->id, &ticket) == HG_OK)
    {
        exec->ticket = ticket;
        if (m->probe_ticket == 0) {
            m->probe_ticket = ticket;
            m->probe_ns = hg_clock_ns(CLOCK_MONOTONIC);
        }
    }
}

void
hg_journal_undead(hg_master_t *m, const hg_exec_record_t *dead)
{
    hg_exec_record_t rec = *dead;

    if (m->store == NULL) {
        return;
    }
    rec.status = HG_EXEC_FAILED;
    if (hg_store_put_execution(m->store, &rec) != HG_OK) {
        hg_log_event(HG_LOG_ERROR, "store", rec.job_id, rec.id, NULL, 0,
                     "cannot queue the retried dead execution's record");
    }
}

bool
hg_journal_peek(hg_master_t *m)
{
    uint64_t committed;

    if (m->store == NULL || m->committing.head == NULL) {
        return false;
    }
    committed = hg_store_peek(m->store);
    if (committed <= m->acked) {
        return false;
    }
    m->acked = committed;
    return true;
}

void
hg_journal_ack(hg_master_t *m)
{
    uint64_t acked;
    bool degraded;

    acked = hg_store_ack(m->store);
    if (acked > m->acked) {
        m->acked = acked;
    }
    if (m->probe_ticket != 0 && m->acked >= m->probe_ticket) {
        double sample = (double) (hg_clock_ns(CLOCK_MONOTONIC)
                                  - m->probe_ns);
        m->commit_ns = m->commit_ns == 0 ? sample
                       : (7.0 * m->commit_ns + sample) / 8.0;
        m->probe_ticket = 0;
    }
    if (m->store->failing) {
        m->probe_ticket = 0;        /* a failing store's delay is no sample */
    }
    /* In a cluster a start never goes without its record: a fenced
     * instance's writes fail too, and another instance may run the work
     * by then. There, executions wait for the store as fire times do. */
    degraded = m->store->failing && !m->cycle->conf->cluster.enabled;
    if (degraded && !m->store_degraded) {
        hg_log(HG_LOG_ERROR, "store: writes are failing; executions start "
               "without waiting for their records (kept in memory and "
               "written when the store recovers)");
    } else if (!degraded && m->store_degraded) {
        hg_log(HG_LOG_INFO, "store: writes succeed again; executions wait "
               "for their records once more");
    }
    m->store_degraded = degraded;
}
