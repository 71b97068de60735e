/*
 * hg_reload.c: a new configuration put in force.
 *
 * It owns reload (SIGHUP) in three steps, none of which holds the loop
 * for long: a cycle reader process reads the file and runs the modules'
 * validate (its pipe and exit watched here, under reload_timeout); a
 * thread turns its result into a cycle (JSON parsing of 100k jobs takes
 * hundreds of ms and touches nothing of the master's); the loop applies
 * it a slice of jobs at a time, adding, updating and removing jobs (the
 * first cycle, at start, at once). It never runs module code in the
 * master's process and never forks a worker: the pool is made whole by
 * hg_master.c after the turn.
 */

#include "hg_core.h"

#include <pthread.h>
#include <sys/eventfd.h>

#include "hg_cycle_reader.h"
#include "hg_dispatch.h"
#include "hg_fire.h"
#include "hg_job.h"
#include "hg_journal.h"
#include "hg_log.h"
#include "hg_notice.h"
#include "hg_reload.h"
#include "hg_service.h"

void
hg_reload_remove_job(hg_master_t *m, hg_job_t *job)
{
    hg_execution_t *exec;

    hg_timer_cancel(&job->timer);
    job->removed = true;
    job->next_due_ms = 0;
    while ((exec = job->waiting_head) != NULL) {
        job->waiting_head = exec->next_waiting;
        hg_journal_unrun(m, exec, HG_EXEC_SKIPPED,
                         "job removed from the configuration");
    }
    job->waiting_tail = NULL;
    hg_job_remove(m, job);
    hg_log_event(HG_LOG_INFO, "job_removed", job->id, NULL, NULL, 0, NULL);
    if (job->refs == 0) {
        hg_job_free(job);
    }
}

/*
 * Applying a cycle, a slice at a time: a reload of 100,000 jobs would hold
 * the loop for a quarter of a second in one go (adding or removing them),
 * so the reload applies HG_APPLY_SLICE jobs per turn of the loop, and
 * timers and workers are served in between. Meanwhile a job not yet
 * reached runs as before the reload; stale jobs are found once every job
 * of the cycle has been applied, then removed a slice at a time too.
 */
#define HG_APPLY_SLICE  2000

typedef struct hg_reload_apply_s {
    hg_cycle_t *cycle;
    size_t next;                    /* the cycle's next job */
    hg_job_t **stale;               /* listed once the cycle is applied */
    size_t nstale;
    size_t next_stale;
    bool stale_listed;
    unsigned added, changed, removed;
    unsigned failed;                /* out of memory */
} hg_reload_apply_t;

static void
hg_reload_apply_start(hg_master_t *m, hg_reload_apply_t *a,
                      hg_cycle_t *cycle)
{
    memset(a, 0, sizeof(*a));
    a->cycle = cycle;
    m->applies++;
}

static void
hg_reload_apply_job(hg_master_t *m, hg_reload_apply_t *a,
                    hg_cycle_job_t *cj)
{
    hg_job_t *job = hg_map_get(&m->jobs, cj->conf->id);
    bool def_changed, schedule_changed, was_enabled;
    bool is_new = (job == NULL);

    if (is_new) {
        job = hg_job_new(m, cj->conf->id, hg_fire_on_timer);
    }
    if (job == NULL) {
        hg_log(HG_LOG_ERROR, "out of memory adding job \"%s\"",
               cj->conf->id);
        a->failed++;
        return;
    }
    was_enabled = job->enabled;
    if (hg_job_update(job, cj, &def_changed, &schedule_changed) != HG_OK) {
        hg_log(HG_LOG_ERROR, "out of memory applying job \"%s\"",
               cj->conf->id);
        if (is_new) {
            hg_job_free(job);
        }
        a->failed++;
        return;
    }
    if (is_new) {
        if (hg_job_add(m, job) != HG_OK) {
            hg_job_free(job);
            a->failed++;
            return;
        }
        a->added++;
        hg_fire_schedule(m, job, hg_now_ms());
        /* Added by a reload: its fire times count from now, so that a
         * restart before its first fire finds the ones it missed; and it
         * runs unpaused, which the store says too. In a cluster only a
         * pause or resume writes the shared flag (a fire never does), so
         * this is put as one: a row left paused by the job's earlier life
         * would otherwise bring it back paused at the next restart while
         * it runs now. Peers that still held it paused resume it, as the
         * flag is the cluster's. Not for a job a peer added (an API job
         * of the cluster's, hg_jobdef_peer): that one's flag is the
         * peers' to say, and writing it would resume the job on all. */
        if (m->store != NULL && m->applies > 1) {
            if (m->applying_peer) {
                hg_store_put_job_state(m->store, job->id, hg_now_ms(),
                                       false);
            } else {
                hg_store_put_pause(m->store, job->id, hg_now_ms(), false);
            }
        }
    } else {
        if (def_changed) {
            a->changed++;
        }
        /* An unchanged schedule keeps its timer as it is: the next
         * fire time neither moves nor repeats across a reload. */
        if (schedule_changed || was_enabled != job->enabled
            || !hg_timer_pending(&job->timer))
        {
            hg_fire_schedule(m, job, hg_now_ms() > job->last_due_ms
                                    ? hg_now_ms() : job->last_due_ms);
        }
    }
    job->removed = false;
    job->applied = m->applies;
}

/* A job this configuration did not mention is stale: one pass, so an
 * apply costs O(n), not a search of the cycle per job. */
static int
hg_reload_apply_list_stale(hg_master_t *m, hg_reload_apply_t *a)
{
    size_t it = 0;
    const char *key;
    void *value;

    a->stale = calloc(m->jobs.count + 1, sizeof(*a->stale));
    if (a->stale == NULL) {
        return HG_ERROR;
    }
    while (hg_map_next(&m->jobs, &it, &key, &value)) {
        if (((hg_job_t *) value)->applied != m->applies) {
            a->stale[a->nstale++] = value;
        }
    }
    a->stale_listed = true;
    return HG_OK;
}

/* Apply about LIMIT jobs more: HG_AGAIN while some are left, HG_OK once
 * the configuration is in force, HG_ERROR when out of memory (a->failed:
 * jobs not put in force; else the stale ones not removed). */
static int
hg_reload_apply_step(hg_master_t *m, hg_reload_apply_t *a, size_t limit)
{
    size_t end;

    end = a->cycle->njobs - a->next > limit ? a->next + limit
                                            : a->cycle->njobs;
    for (; a->next < end; a->next++) {
        hg_reload_apply_job(m, a, &a->cycle->jobs[a->next]);
        limit--;
    }
    if (a->next < a->cycle->njobs) {
        return HG_AGAIN;
    }
    if (!a->stale_listed && hg_reload_apply_list_stale(m, a) != HG_OK) {
        return HG_ERROR;
    }
    for (; a->next_stale < a->nstale && limit > 0; a->next_stale++) {
        hg_reload_remove_job(m, a->stale[a->next_stale]);
        a->removed++;
        limit--;
    }
    if (a->next_stale < a->nstale) {
        return HG_AGAIN;
    }
    if (a->added + a->changed + a->removed > 0) {
        hg_log(HG_LOG_INFO, "jobs: %u added, %u changed, %u removed, %zu "
               "defined", a->added, a->changed, a->removed, m->jobs.count);
    }
    /* a job that could not be put in force (each said above) is not a
     * configuration in force: the start fails, a reload says so */
    return a->failed == 0 ? HG_OK : HG_ERROR;
}

static void
hg_reload_apply_free(hg_reload_apply_t *a)
{
    free(a->stale);
    a->stale = NULL;
}

/* A job check's cycle holds only the jobs to add or replace: nothing
 * is stale, and it is small (one job), so it is applied at once. */
int
hg_reload_apply_jobs(hg_master_t *m, hg_cycle_t *cycle)
{
    hg_reload_apply_t a;
    size_t i;

    hg_reload_apply_start(m, &a, cycle);
    for (i = 0; i < cycle->njobs; i++) {
        hg_reload_apply_job(m, &a, &cycle->jobs[i]);
    }
    return a.failed == 0 ? HG_OK : HG_ERROR;
}

int
hg_reload_apply_all(hg_master_t *m, hg_cycle_t *cycle)
{
    hg_reload_apply_t a;
    int rc;

    hg_reload_apply_start(m, &a, cycle);
    while ((rc = hg_reload_apply_step(m, &a, SIZE_MAX)) == HG_AGAIN) {
    }
    hg_reload_apply_free(&a);
    return rc;
}


/*
 * A reload in three steps, none of which holds the loop for long: a cycle
 * reader process reads the file and runs the modules' validate (its pipe
 * and exit are watched here, under reload_timeout); a thread turns its
 * result into a cycle (JSON parsing and 100k jobs are hundreds of ms, and
 * touch nothing of the master's); the loop applies it.
 */
typedef struct hg_master_reload_s {
    hg_cycle_reader_t reader;
    hg_event_t reader_ev;
    hg_timer_t timer;               /* the deadline, then polling the exit */
    int64_t deadline_ns;
    int64_t started_ns;
    char *file;                     /* thread's copy of what it needs */
    char *prefix;
    char *text;                     /* the reader's result */
    size_t len;
    pthread_t thread;
    bool thread_running;
    int done_fd;                    /* eventfd: the thread is done */
    hg_event_t done_ev;
    hg_cycle_t *cycle;              /* the thread's result */
    hg_conf_errors_t errors;
    hg_reload_apply_t apply;        /* the new cycle, a slice a turn */
    hg_timer_t apply_timer;
    int64_t apply_ns;               /* the slices' total */
    int64_t hold_ns;                /* the longest slice */
    hg_job_conf_t *old_jobs;        /* applied: the thread frees them */
    size_t nold_jobs;
    bool sweeping;                  /* the thread frees old_jobs */
    /* A job check (hg_reload_check): its cycle, or its errors, go to
     * checked, and nothing is committed here. */
    hg_reload_checked_pt checked;
    void *checked_data;
} hg_reload_t;

void
hg_reload_free(hg_master_t *m)
{
    hg_reload_t *r = m->reload;

    if (r == NULL) {
        return;
    }
    if (r->reader_ev.active) {
        hg_event_del(&r->reader_ev);
    }
    hg_timer_cancel(&r->timer);
    hg_timer_cancel(&r->apply_timer);
    hg_reload_apply_free(&r->apply);
    hg_cycle_reader_cleanup(&r->reader);
    if (r->thread_running) {
        pthread_join(r->thread, NULL);
    }
    if (r->done_ev.active) {
        hg_event_del(&r->done_ev);
    }
    if (r->done_fd >= 0) {
        close(r->done_fd);
    }
    hg_cycle_destroy(r->cycle);
    hg_cycle_free_conf_jobs(r->old_jobs, r->nold_jobs);
    hg_conf_errors_free(&r->errors);
    free(r->file);
    free(r->prefix);
    free(r->text);
    free(r);
    m->reload = NULL;
}

static void
hg_reload_failed(hg_master_t *m, const hg_conf_errors_t *errors)
{
    size_t i;

    for (i = 0; i < errors->count; i++) {
        hg_log_field_t field = HG_LOG_STR("result", "failed");
        if (errors->items[i].line > 0) {
            hg_log_event(HG_LOG_ERROR, "reload", NULL, NULL, &field, 1,
                         "%s:%d: %s", errors->items[i].file,
                         errors->items[i].line, errors->items[i].message);
        } else {
            hg_log_event(HG_LOG_ERROR, "reload", NULL, NULL, &field, 1,
                         "%s: %s", errors->items[i].file
                         ? errors->items[i].file : m->conf_file,
                         errors->items[i].message);
        }
    }
    hg_log(HG_LOG_ERROR, "reload failed: the running configuration "
           "stays in force");
    hg_service_reload_failed(errors->count > 0 ? &errors->items[0] : NULL);
    hg_notice(m, "reload", json_pack("{s:s, s:s?}", "result", "failed",
                                     "error", errors->count > 0
                                     ? errors->items[0].message : NULL));
    {
        const char *labels[] = { "failed" };
        hg_metric_add(m->metric.reloads, labels, 1);
    }
}

static void hg_reload_over(hg_master_t *m);
static void *hg_reload_sweep(void *data);

/* The reload (or the job check) cannot go on: said, and over. */
static void
hg_reload_fail(hg_master_t *m)
{
    hg_reload_t *r = m->reload;

    if (r->checked != NULL) {
        r->checked(m, NULL, &r->errors, r->checked_data);
    } else {
        hg_reload_failed(m, &r->errors);
    }
    hg_reload_over(m);
}

/* The new cycle is in force: what is left of its jobs goes to a thread to
 * be freed, and the reload is done. */
static void
hg_reload_applied(hg_master_t *m, hg_reload_t *r)
{
    const char *result = r->apply.failed == 0 ? "ok" : "failed";
    hg_log_field_t fields[] = {
        HG_LOG_STR("result", result),
        HG_LOG_INT("apply_ms", r->apply_ns / HG_NSEC_PER_MSEC),
        HG_LOG_INT("hold_ms", r->hold_ns / HG_NSEC_PER_MSEC),
        HG_LOG_INT("duration_ms", (hg_clock_ns(CLOCK_MONOTONIC)
                                   - r->started_ns) / HG_NSEC_PER_MSEC),
    };

    const char *labels[] = { result };

    hg_metric_add(m->metric.reloads, labels, 1);
    hg_notice(m, "reload", json_pack("{s:s, s:I}", "result", result, "jobs",
                                     (json_int_t) m->jobs.count));
    if (r->apply.failed > 0) {
        hg_log_event(HG_LOG_ERROR, "reload", NULL, NULL, fields,
                     HG_NELEMS(fields), "configuration reloaded in part: "
                     "%u jobs could not be put in force for want of memory "
                     "(named above); reload again", r->apply.failed);
    } else {
        hg_log_event(HG_LOG_INFO, "reload", NULL, NULL, fields,
                     HG_NELEMS(fields), "configuration reloaded: %zu jobs, "
                     "%d workers", m->jobs.count, m->workers);
        m->peer_retry_due = true;
    }
    hg_service_reloaded(m->jobs.count);
    hg_cycle_release_jobs(m->cycle, &r->old_jobs, &r->nold_jobs);
    if (r->old_jobs != NULL
        && pthread_create(&r->thread, NULL, hg_reload_sweep, r) == 0)
    {
        r->thread_running = true;
        r->sweeping = true;
        return;
    }
    hg_reload_over(m);
}

/* One slice of the apply (HG_APPLY_SLICE jobs), then the loop's turn. */
static void
hg_reload_apply_slice(hg_master_t *m)
{
    hg_reload_t *r = m->reload;
    int64_t start = hg_clock_ns(CLOCK_MONOTONIC), took;
    int rc;

    if (m->stopping || m->quitting) {
        hg_reload_over(m);       /* nothing new is scheduled now */
        return;
    }
    rc = hg_reload_apply_step(m, &r->apply, HG_APPLY_SLICE);
    took = hg_clock_ns(CLOCK_MONOTONIC) - start;
    r->apply_ns += took;
    r->hold_ns = took > r->hold_ns ? took : r->hold_ns;
    if (rc == HG_AGAIN) {
        hg_timer_set(&m->mono, &r->apply_timer, start + took);
        return;
    }
    hg_reload_apply_free(&r->apply);
    if (rc != HG_OK && r->apply.failed == 0) {
        hg_log(HG_LOG_ERROR, "reload: out of memory removing the jobs the "
               "new configuration dropped; they stay defined");
    }
    hg_reload_applied(m, r);
}

static void
hg_reload_on_apply_timer(hg_timer_t *timer)
{
    hg_reload_apply_slice(timer->data);
}

/* The new cycle replaces the running one; its jobs are applied a slice
 * at a time from here. */
/* A reload changed a setting read once at start: said, never ignored
 * silently (PostgreSQL's "cannot be changed without restarting"). */
static void
hg_reload_restart_only(const char *name, const char *was, const char *now,
                       void *data)
{
    HG_UNUSED(data);
    hg_log(HG_LOG_WARN, "reload: %s changed from %s to %s, which takes "
           "effect at the next start only (until then the daemon keeps the "
           "first)", name, was, now);
}

static void
hg_reload_commit(hg_master_t *m, hg_reload_t *r, hg_cycle_t *cycle)
{
    hg_cycle_t *old = m->cycle;
    hg_conf_t *conf = cycle->conf;
    hg_worker_t *w;

    if (strcmp(conf->log.file, old->conf->log.file) != 0
        || conf->log.level != old->conf->log.level
        || conf->log.format != old->conf->log.format)
    {
        if (hg_log_open(conf->log.file, conf->log.level, conf->log.format)
            != HG_OK)
        {
            hg_log(HG_LOG_ERROR, "cannot open log file %s: %s; logging "
                   "stays where it was", conf->log.file, strerror(errno));
        }
    }
    hg_conf_restart_changes(old->conf, conf, hg_reload_restart_only, NULL);
    m->cycle = cycle;
    m->workers = conf->workers;

    /* New workers carry the new modules; the old ones leave as soon as
     * they are idle (a running execution finishes where it is). Nothing
     * the jobs hold belongs to the old cycle (hg_job_update copies). */
    m->pool.generation++;
    for (w = m->pool.head; w != NULL; w = w->next) {
        if (w->generation != m->pool.generation) {
            hg_pool_retire(w);
        }
    }
    hg_cycle_destroy(old);
    /* The new generation is forked after this turn (hg_master_turn). */

    hg_reload_apply_start(m, &r->apply, cycle);
    hg_reload_apply_slice(m);
}

/* The reload is over, one way or the other: the next may start (one
 * asked for meanwhile is started by hg_master_turn). */
static void
hg_reload_over(hg_master_t *m)
{
    hg_reload_free(m);
}

static void
hg_reload_signal(hg_reload_t *r)
{
    uint64_t one = 1;

    while (write(r->done_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
}

static void *
hg_reload_build(void *data)
{
    hg_reload_t *r = data;

    r->cycle = hg_cycle_reader_cycle(r->text, r->len, r->file, r->prefix,
                                     &r->errors);
    free(r->text);
    r->text = NULL;
    hg_reload_signal(r);
    return NULL;
}

static void *
hg_reload_sweep(void *data)
{
    hg_reload_t *r = data;

    hg_cycle_free_conf_jobs(r->old_jobs, r->nold_jobs);
    r->old_jobs = NULL;
    r->nold_jobs = 0;
    hg_reload_signal(r);
    return NULL;
}

/* The thread is done: it built the new cycle (applied here), or it freed
 * what the apply left (the reload is over). */
static void
hg_reload_on_thread(hg_event_t *ev, uint32_t events)
{
    hg_master_t *m = ev->data;
    hg_reload_t *r = m->reload;
    hg_cycle_t *cycle;
    uint64_t count;

    HG_UNUSED(events);
    if (read(r->done_fd, &count, sizeof(count)) != sizeof(count)) {
        return;
    }
    pthread_join(r->thread, NULL);
    r->thread_running = false;
    if (r->sweeping) {
        hg_reload_over(m);
        return;
    }
    cycle = r->cycle;
    r->cycle = NULL;
    if (cycle != NULL && hg_cycle_open_modules(cycle, &r->errors) != HG_OK) {
        hg_cycle_destroy(cycle);
        cycle = NULL;
    }
    if (cycle == NULL) {
        hg_reload_fail(m);
        return;
    }
    if (r->checked != NULL) {
        r->checked(m, cycle, &r->errors, r->checked_data);
    } else if (m->stopping || m->quitting) {
        hg_cycle_destroy(cycle);
    } else {
        hg_reload_commit(m, r, cycle);
        return;
    }
    hg_reload_over(m);
}

/* The reader has ended: a failure, or its result to the builder. */
static void
hg_reload_reader_done(hg_master_t *m)
{
    hg_reload_t *r = m->reload;
    int rc;

    if (r->reader_ev.active) {
        hg_event_del(&r->reader_ev);
    }
    hg_timer_cancel(&r->timer);
    if (!r->reader.killed) {
        hg_cycle_reader_read(&r->reader);
    }
    if (hg_cycle_reader_end(&r->reader, &r->errors) != HG_OK) {
        hg_reload_fail(m);
        return;
    }
    r->text = r->reader.buf;
    r->len = r->reader.len;
    r->reader.buf = NULL;
    hg_cycle_reader_cleanup(&r->reader);
    r->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    rc = r->done_fd < 0 ? errno : 0;
    if (rc == 0 && hg_event_add(m->loop, &r->done_ev, r->done_fd, EPOLLIN,
                                hg_reload_on_thread, m) != HG_OK)
    {
        rc = errno;
    }
    if (rc == 0) {
        rc = pthread_create(&r->thread, NULL, hg_reload_build, r);
    }
    if (rc != 0) {
        hg_conf_error_add(&r->errors, m->conf_file, 0, "cannot build the "
                          "new configuration: %s", strerror(rc));
        hg_reload_fail(m);
        return;
    }
    r->thread_running = true;
}

/* The reader's pipe or the timer: read what came, reap it once it is
 * done, kill it when its time is up. */
static void
hg_reload_reader_poll(hg_master_t *m)
{
    hg_reload_t *r = m->reload;
    int64_t now = hg_clock_ns(CLOCK_MONOTONIC);

    if (!r->reader.eof && !r->reader.killed
        && hg_cycle_reader_read(&r->reader) == HG_ERROR)
    {
        hg_cycle_reader_kill(&r->reader);
    }
    if (r->reader.eof && r->reader_ev.active) {
        hg_event_del(&r->reader_ev);
    }
    if (hg_cycle_reader_reap(&r->reader)) {
        hg_reload_reader_done(m);
        return;
    }
    if (now >= r->deadline_ns) {
        hg_cycle_reader_kill(&r->reader);
    }
    /* Ended or ending, its exit is a moment away; else the deadline. */
    hg_timer_set(&m->mono, &r->timer,
                 r->reader.eof || r->reader.killed
                 ? now + 5 * HG_NSEC_PER_MSEC : r->deadline_ns);
}

static void
hg_reload_on_reader(hg_event_t *ev, uint32_t events)
{
    HG_UNUSED(events);
    hg_reload_reader_poll(ev->data);
}

static void
hg_reload_on_reader_timer(hg_timer_t *timer)
{
    hg_reload_reader_poll(timer->data);
}

bool
hg_reload_running(const hg_master_t *m)
{
    return m->reload != NULL && m->reload->checked == NULL;
}

bool
hg_reload_busy(const hg_master_t *m)
{
    return m->reload != NULL || m->reload_again;
}

/* The definitions of the jobs defined through the API, as a reader takes
 * them: {"api_jobs": [...]} and BASE when given (a job check). */
static json_t *
hg_reload_input(hg_master_t *m, json_t *api_jobs, json_t *base)
{
    json_t *list = api_jobs != NULL ? api_jobs
                                    : hg_store_job_definitions(m->api_jobs);

    return json_pack("{s:o, s:o*}", "api_jobs", list, "base", base);
}

static hg_reload_t *
hg_reload_new(hg_master_t *m)
{
    hg_reload_t *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        return NULL;
    }
    m->reload = r;
    r->done_fd = -1;
    r->reader.fd = -1;
    r->started_ns = hg_clock_ns(CLOCK_MONOTONIC);
    r->deadline_ns = r->started_ns
                     + m->cycle->conf->reload_timeout_ms * HG_NSEC_PER_MSEC;
    hg_timer_init(&r->timer, hg_reload_on_reader_timer, m);
    hg_timer_init(&r->apply_timer, hg_reload_on_apply_timer, m);
    return r;
}

/* The reader of the reload or check R, with INPUT (taken). */
static int
hg_reload_read(hg_master_t *m, hg_reload_t *r, json_t *input)
{
    char err[512];
    int rc = HG_OK;

    r->file = strdup(m->conf_file);
    r->prefix = strdup(m->prefix);
    err[0] = '\0';
    errno = ENOMEM;
    if (input == NULL || r->file == NULL || r->prefix == NULL
        || hg_cycle_reader_start(&r->reader, m->conf_file, m->prefix,
                                 input, m->cycle->conf->reload_timeout_ms,
                                 err, sizeof(err)) != HG_OK
        || hg_event_add(m->loop, &r->reader_ev, r->reader.fd, EPOLLIN,
                        hg_reload_on_reader, m) != HG_OK
        || hg_timer_set(&m->mono, &r->timer, r->deadline_ns) != HG_OK)
    {
        hg_conf_error_add(&r->errors, m->conf_file, 0, "%s",
                          err[0] ? err : strerror(errno));
        rc = HG_ERROR;
    }
    json_decref(input);
    return rc;
}

int
hg_reload_start(hg_master_t *m)
{
    hg_reload_t *r;

    if (m->reload != NULL) {
        if (m->reload->checked == NULL) {
            hg_log(HG_LOG_INFO, "reload requested while one is under way:"
                   " another follows it");
        }
        m->reload_again = true;
        return HG_AGAIN;
    }
    hg_log(HG_LOG_INFO, "reloading %s", m->conf_file);
    r = hg_reload_new(m);
    if (r == NULL) {
        hg_log(HG_LOG_ERROR, "reload failed: out of memory");
        return HG_ERROR;
    }
    hg_service_reloading();
    if (hg_reload_read(m, r, hg_reload_input(m, NULL, NULL)) != HG_OK) {
        hg_reload_failed(m, &r->errors);
        hg_reload_free(m);
        return HG_ERROR;
    }
    return HG_AGAIN;
}

int
hg_reload_check(hg_master_t *m, const json_t *definitions,
                hg_reload_checked_pt checked, void *data, char *err,
                size_t errlen)
{
    hg_reload_t *r;
    json_t *list, *base;

    if (m->reload != NULL) {
        snprintf(err, errlen, "a reload is under way");
        return HG_ERROR;
    }
    base = hg_cycle_to_json(m->cycle, err, errlen);
    list = json_deep_copy(definitions);
    r = base != NULL && list != NULL ? hg_reload_new(m) : NULL;
    if (r == NULL) {
        json_decref(base);
        json_decref(list);
        snprintf(err, errlen, "out of memory");
        return HG_ERROR;
    }
    r->checked = checked;
    r->checked_data = data;
    if (hg_reload_read(m, r, hg_reload_input(m, list, base)) != HG_OK) {
        snprintf(err, errlen, "%s", r->errors.count > 0
                 ? r->errors.items[0].message : "out of memory");
        hg_reload_free(m);
        return HG_ERROR;
    }
    return HG_OK;
}

bool
hg_reload_reaped(hg_master_t *m, pid_t pid, int status)
{
    if (m->reload == NULL
        || !hg_cycle_reader_reaped(&m->reload->reader, pid, status))
    {
        return false;
    }
    hg_reload_reader_poll(m);
    return true;
}
