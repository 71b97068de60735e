/*
 * hg_outcome.c: how an execution ended, and what follows.
 *
 * It owns the one decision of a status from a worker's RESULT or its
 * death, the one retry decision (retryable status, attempts left, the job
 * still there, the module's HG_FATAL), the backoff, the dead letter, the
 * finish line in the log and the observer's report. It never starts an
 * execution itself: a retry goes back to hg_dispatch.c after its backoff,
 * as the next waiting execution of an overlap = queue job does. It never
 * replaces a worker (hg_master.c does, told by the pool).
 */

#include "hg_core.h"

#include <sys/resource.h>
#include <sys/wait.h>

#include "hg_dispatch.h"
#include "hg_execution.h"
#include "hg_journal.h"
#include "hg_log.h"
#include "hg_notice.h"
#include "hg_notify.h"
#include "hg_otlp.h"
#include "hg_msg.h"
#include "hg_outcome.h"
#include "hg_meter.h"
#include "hg_uuid.h"
#include "hg_json.h"

int64_t
hg_outcome_backoff_ms(const hg_backoff_t *b, unsigned attempt)
{
    double delay = (double) b->initial_ms;
    unsigned i;

    for (i = 1; i < attempt && delay < (double) b->max_ms; i++) {
        delay *= b->multiplier;
    }
    if (b->jitter > 0) {
        double r = (double) (hg_random() >> 11) / (double) (1ULL << 53);
        delay *= 1.0 + b->jitter * (2.0 * r - 1.0);
    }
    /* The cap after the jitter: max is a promise, never exceeded. */
    if (delay > (double) b->max_ms) {
        delay = (double) b->max_ms;
    }
    return delay < 0 ? 0 : (int64_t) delay;
}

void
hg_outcome_on_retry_timer(hg_timer_t *timer)
{
    hg_execution_t *exec = timer->data;

    hg_dispatch_ready(exec->job->master, exec);
}

static void
hg_outcome_retry(hg_master_t *m, hg_execution_t *failed, int64_t delay_ms)
{
    hg_execution_t *exec;
    hg_log_field_t fields[2];
    bool later = m->quitting || m->stopping;

    exec = hg_execution_new(m, failed->job, failed->scheduled_for_ms,
                            failed->attempt + 1, "retry");
    if (exec == NULL) {
        return;
    }
    memcpy(exec->run_id, failed->run_id, sizeof(exec->run_id));
    exec->priority = failed->priority;
    /* Out of memory, the retry goes without its payload rather than not
     * at all (as it always has). */
    (void) hg_execution_set_payload(exec, failed->payload,
                                    failed->payload_len);
    fields[0] = (hg_log_field_t) HG_LOG_INT("attempt", exec->attempt);
    fields[1] = (hg_log_field_t) HG_LOG_INT("delay_ms", delay_ms);
    hg_log_event(HG_LOG_INFO, "retry", exec->job->id, exec->id, fields, 2,
                 "retrying run %s%s", exec->run_id,
                 later ? " after the daemon restarts" : "");
    exec->run_at_ms = hg_now_ms() + delay_ms;
    /* A retry is due when its backoff ends: its lag (hourglass_schedule_
     * lag_seconds) is the master's delay from then, not the failed
     * attempt's run and the backoff since the first due time. */
    exec->due_ns = hg_clock_ns(CLOCK_REALTIME) + delay_ms * HG_NSEC_PER_MSEC;
    hg_journal_put(m, exec, HG_EXEC_QUEUED, NULL);
    if (later) {
        /* Shutting down: the queued record is the retry; the next start
         * picks it up. */
        hg_execution_free(m, exec);
        return;
    }
    exec->job->pending++;
    exec->timer.handler = hg_outcome_on_retry_timer;
    hg_timer_set(&m->mono, &exec->timer,
                 hg_clock_ns(CLOCK_MONOTONIC) + delay_ms * HG_NSEC_PER_MSEC);
}

/* Overlap = queue: the next waiting execution goes once the job is free. */
static void
hg_outcome_release_waiting(hg_master_t *m, hg_job_t *job)
{
    hg_execution_t *exec;

    if (job->running > 0 || job->pending > 0 || job->waiting_head == NULL) {
        return;
    }
    exec = job->waiting_head;
    job->waiting_head = exec->next_waiting;
    if (job->waiting_head == NULL) {
        job->waiting_tail = NULL;
    }
    exec->next_waiting = NULL;
    hg_dispatch_ready(m, exec);
}

/*
 * The last lines of a failed run's output for its finish line, so that
 * "why did it fail" is answered by the log alone: at most
 * HG_OUTCOME_TAIL_LINES lines and HG_OUTCOME_TAIL_BYTES bytes, the final
 * newline dropped. The log escapes newlines and control characters; here
 * a NUL (which would end the string) and any byte that is not part of
 * valid UTF-8 (which a JSON log could not carry) become '?'. Empty when
 * the run wrote nothing.
 */
#define HG_OUTCOME_TAIL_LINES  3
#define HG_OUTCOME_TAIL_BYTES  200

static void
hg_outcome_tail(const char *output, size_t len, char *out, size_t outlen)
{
    const unsigned char *p = (const unsigned char *) output;
    size_t start, end, i, o = 0, n;
    int lines = 0;

    end = len;
    while (end > 0 && (p[end - 1] == '\n' || p[end - 1] == '\r')) {
        end--;
    }
    start = end;
    while (start > 0 && end - start < HG_OUTCOME_TAIL_BYTES) {
        if (p[start - 1] == '\n' && ++lines == HG_OUTCOME_TAIL_LINES) {
            break;
        }
        start--;
    }
    /* a cut in the middle of a character starts at the next one */
    while (start < end && (p[start] & 0xc0) == 0x80) {
        start++;
    }
    for (i = start; i < end && o + 4 < outlen; i += n) {
        n = hg_json_utf8_len(p + i, end - i);
        if (n == 0 || p[i] == '\0') {
            out[o++] = '?';
            n = 1;
            continue;
        }
        memcpy(out + o, p + i, n);
        o += n;
    }
    out[o] = '\0';
}

void
hg_outcome_finish(hg_master_t *m, hg_execution_t *exec,
                  hg_master_result_t *result, hg_result_t rc,
                  int64_t retry_after_ms)
{
    size_t output_len = result->output_len;
    bool truncated = result->truncated;
    hg_job_t *job = exec->job;
    hg_log_level_t level;
    char due[40], tail[HG_OUTCOME_TAIL_BYTES + 8];
    bool retryable, retry;
    hg_log_field_t fields[13];
    size_t n = 0;

    result->exec = exec;
    exec->status = result->status;
    level = result->status == HG_EXEC_SUCCEEDED ? HG_LOG_INFO
                                                  : HG_LOG_WARN;
    if (!hg_log_enabled(level)) {
        goto logged;
    }
    hg_format_utc_ms(exec->scheduled_for_ms, due, sizeof(due));
    fields[n++] = (hg_log_field_t) HG_LOG_STR(
        "status", hg_exec_status_name(result->status));
    fields[n++] = (hg_log_field_t) HG_LOG_INT("duration_ms",
                                     result->finished_ms - result->started_ms);
    fields[n++] = (hg_log_field_t) HG_LOG_INT("attempt", exec->attempt);
    fields[n++] = (hg_log_field_t) HG_LOG_STR("trigger", exec->trigger);
    fields[n++] = (hg_log_field_t) HG_LOG_STR("scheduled_for", due);
    if (result->exit_code >= 0) {
        fields[n++] = (hg_log_field_t) HG_LOG_INT("exit_code",
                                                  result->exit_code);
    }
    if (result->signo > 0) {
        fields[n++] = (hg_log_field_t) HG_LOG_INT("signal", result->signo);
        fields[n++] = (hg_log_field_t) HG_LOG_STR("signal_name",
                                                  sigabbrev_np(result->signo));
    }
    fields[n++] = (hg_log_field_t) HG_LOG_INT("output_bytes", output_len);
    if (truncated) {
        fields[n++] = (hg_log_field_t) HG_LOG_STR("output", "truncated");
    }
    if (exec->worker != NULL) {
        fields[n++] = (hg_log_field_t) HG_LOG_INT("worker", exec->worker->pid);
    }
    if (exec->attempt > 1) {
        fields[n++] = (hg_log_field_t) HG_LOG_STR("run", exec->run_id);
    }
    if (result->error != NULL && result->error[0] != '\0') {
        fields[n++] = (hg_log_field_t) HG_LOG_STR("error", result->error);
    }
    if (result->status != HG_EXEC_SUCCEEDED && result->output != NULL) {
        hg_outcome_tail(result->output, output_len, tail, sizeof(tail));
        if (tail[0] != '\0') {
            fields[n++] = (hg_log_field_t) HG_LOG_STR("output_tail", tail);
        }
    }
    hg_log_event(level, "finish", job->id, exec->id, fields, n, NULL);

logged:
    m->finished_total++;
    hg_dispatch_note_finish(m);
    if (m->observer != NULL) {
        m->observer(m, result, m->observer_data);
    }
    hg_notice_finished(m, result);

    retryable = result->status == HG_EXEC_FAILED
                || result->status == HG_EXEC_TIMED_OUT
                || result->status == HG_EXEC_CRASHED;
    retry = retryable && rc != HG_FATAL && !job->removed
            && exec->attempt <= (unsigned) job->policy.max_retries;
    hg_meter_count_end(m, exec, retryable && !retry ? HG_EXEC_DEAD
                                                     : result->status,
                       result);
    if (retry) {
        hg_journal_put(m, exec, result->status, result);
        hg_outcome_retry(m, exec, retry_after_ms >= 0
                                 ? retry_after_ms
                                 : hg_outcome_backoff_ms(&job->policy.backoff,
                                                 exec->attempt));
    } else if (!retryable) {
        hg_journal_put(m, exec, result->status, result);
    } else {
        /* The last attempt failed: the record goes to the dead-letter
         * list; its error still says how it failed. */
        hg_journal_put(m, exec, HG_EXEC_DEAD, result);
        hg_log_field_t dead[] = {
            HG_LOG_STR("status", "dead"),
            HG_LOG_INT("attempts", exec->attempt),
            HG_LOG_STR("run", exec->run_id),
        };
        hg_log_event(HG_LOG_ERROR, "dead", job->id, exec->id, dead,
                     HG_NELEMS(dead), "%s", rc == HG_FATAL
                     ? "fatal failure: no retries"
                     : "failed after its last attempt");
    }
    if (!retry) {
        /* The run's end: what it tells (failure, dead, recovered), or,
         * for a delivery, how it went. */
        hg_notify_finished(m, exec, result, retryable);
    }
    hg_otlp_finished(m, exec, result, retry);   /* the attempt's span */
    hg_outcome_release_waiting(m, job);
    hg_execution_free(m, exec);
}

static hg_exec_status_t
hg_outcome_status(uint32_t rc)
{
    return rc == HG_OK ? HG_EXEC_SUCCEEDED : HG_EXEC_FAILED;
}

/* A module's custom metrics (hg_exec_metric), as the worker sent them: a
 * JSON object of numbers, or NULL (none, or not that: logged). */
static json_t *
hg_outcome_metrics(const hg_worker_t *w, const hg_execution_t *exec,
                   const char *text)
{
    json_error_t jerr;
    json_t *metrics;

    if (text == NULL) {
        return NULL;
    }
    metrics = json_loads(text, 0, &jerr);
    if (!json_is_object(metrics)) {
        hg_log_event(HG_LOG_WARN, "error", exec->job->id, exec->id, NULL, 0,
                     "worker %d sent metrics that are not a JSON object "
                     "(%s): ignored", (int) w->pid,
                     metrics == NULL ? jerr.text : "another JSON value");
        json_decref(metrics);
        return NULL;
    }
    return metrics;
}

void
hg_outcome_result(hg_worker_t *w, void *current,
                  const hg_ipc_frame_t *frame)
{
    hg_master_t *m = w->pool->data;
    hg_execution_t *exec = current;
    hg_master_result_t result;
    hg_msg_result_t r;
    json_t *metrics = NULL;
    char err[256], *why = NULL;

    if (hg_msg_get_result(frame, &r, err, sizeof(err)) != HG_OK) {
        /* err says what */
    } else if (exec == NULL) {
        snprintf(err, sizeof(err), "it runs none");
    } else if (strcmp(r.exec_id, exec->id) != 0) {
        snprintf(err, sizeof(err), "another execution's id");
    } else if (r.result > HG_FATAL) {
        snprintf(err, sizeof(err), "unknown result code %u", r.result);
    } else {
        err[0] = '\0';
    }
    if (err[0] != '\0') {
        hg_log(HG_LOG_ERROR, "worker %d sent a result that does not match "
               "its execution (%s); replacing it", (int) w->pid, err);
        /* Keep the execution with the worker: its death records it, and
         * gives back the one handed ahead, which never started. */
        w->handed = w->current;
        w->handed_sent = w->handed != NULL
                         && ((hg_execution_t *) w->handed)->ahead
                            == HG_AHEAD_SENT;
        w->current = exec;
        hg_pool_kill(w, HG_KILL_PROTOCOL, SIGKILL);
        hg_msg_result_free(&r);
        return;
    }
    if (w->current != NULL) {
        hg_dispatch_promote(m, w->current);
    }
    hg_timer_cancel(&exec->timer);
    exec->timer.handler = NULL;
    memset(&result, 0, sizeof(result));
    result.status = hg_outcome_status(r.result);
    if (r.result != HG_OK
        && (r.deadline_passed
            || (exec->deadline_ms > 0 && hg_now_ms() >= exec->deadline_ms)))
    {
        /* The module saw the deadline first (hg_exec_cancelled) and gave
         * up on its own, just before the master would have killed it. The
         * worker's deadline says so first: one handed ahead started there
         * before the master's clock for it did. */
        result.status = HG_EXEC_TIMED_OUT;
    }
    result.started_ms = r.has_times ? r.started_ms : exec->dispatched_ms;
    result.finished_ms = r.has_times ? r.finished_ms : hg_now_ms();
    result.exit_code = r.has_exit_code ? r.exit_code : -1;
    result.signo = r.signo;
    result.error = r.error;
    if (result.status == HG_EXEC_TIMED_OUT
        && asprintf(&why, "timed out after %" PRId64 " ms (the module "
                    "stopped at its deadline%s%s)",
                    exec->job->policy.timeout_ms, r.error ? ": " : "",
                    r.error ? r.error : "") >= 0)
    {
        result.error = why;
    }
    result.output = (const char *) r.output;
    result.output_len = r.output_len;
    result.truncated = r.truncated;
    result.max_rss_kb = r.max_rss_kb;
    result.cpu_user_ms = r.cpu_user_ms;
    result.cpu_sys_ms = r.cpu_sys_ms;
    metrics = hg_outcome_metrics(w, exec, r.metrics);
    result.metrics = metrics;
    if (metrics != NULL) {
        hg_meter_count_module(m, exec, metrics);
    }
    exec->job->running--;
    exec->job->quick = result.finished_ms - result.started_ms
                       < m->ahead_turn_ms / 2;
    hg_outcome_finish(m, exec, &result, (hg_result_t) r.result,
                      r.result == HG_RETRY ? r.retry_after_ms : -1);
    json_decref(metrics);
    free(why);
    hg_msg_result_free(&r);
    hg_dispatch_run(m);
}


void
hg_outcome_worker_gone(hg_master_t *m, hg_worker_t *w, hg_execution_t *exec,
                       int status, const struct rusage *usage)
{
    hg_master_result_t result;
    char error[256];

    memset(&result, 0, sizeof(result));
    result.started_ms = exec->dispatched_ms;
    result.finished_ms = hg_now_ms();
    result.exit_code = -1;
    result.error = error;
    /* The worker's whole life, not just this execution: the closest
     * figures there are for one that did not report. */
    result.max_rss_kb = usage->ru_maxrss;
    result.cpu_user_ms = (int64_t) usage->ru_utime.tv_sec * 1000
                         + usage->ru_utime.tv_usec / 1000;
    result.cpu_sys_ms = (int64_t) usage->ru_stime.tv_sec * 1000
                        + usage->ru_stime.tv_usec / 1000;
    hg_timer_cancel(&exec->timer);
    exec->timer.handler = NULL;
    switch (w->kill_reason) {
    case HG_KILL_TIMEOUT:
        result.status = HG_EXEC_TIMED_OUT;
        snprintf(error, sizeof(error), "timed out after %" PRId64 " ms; "
                 "worker %d and its process group killed",
                 exec->job->policy.timeout_ms, (int) w->pid);
        break;
    case HG_KILL_STOP:
        result.status = HG_EXEC_KILLED;
        snprintf(error, sizeof(error), "killed on request");
        break;
    case HG_KILL_PROTOCOL:
        result.status = HG_EXEC_CRASHED;
        snprintf(error, sizeof(error), "worker %d broke the protocol "
                 "and was replaced", (int) w->pid);
        break;
    case HG_KILL_STOPPED:
        result.status = HG_EXEC_CRASHED;
        snprintf(error, sizeof(error), "worker %d was stopped (SIGSTOP)"
                 " and was killed and replaced", (int) w->pid);
        break;
    default:
        result.status = HG_EXEC_CRASHED;
        if (WIFSIGNALED(status)) {
            result.signo = WTERMSIG(status);
            snprintf(error, sizeof(error), "worker %d killed by signal "
                     "%d (SIG%s)", (int) w->pid, result.signo,
                     sigabbrev_np(result.signo) ? sigabbrev_np(result.signo)
                                                : "?");
        } else {
            snprintf(error, sizeof(error), "worker %d exited with "
                     "status %d during the execution", (int) w->pid,
                     WEXITSTATUS(status));
        }
        break;
    }
    exec->job->running--;
    hg_outcome_finish(m, exec, &result, HG_FAIL, -1);
}
