/*
 * hg_job.c: a job as the master runs it, and the master's table of jobs.
 *
 * It owns a job's memory (the master's job slab and string slabs), its
 * definition copied from a checked cycle, and its reference count (the
 * executions that point to it keep a removed job alive). It never sets a
 * timer, never creates an execution and never writes to the store: firing
 * a job is hg_fire.c's, running it hg_dispatch.c's.
 */

#include "hg_core.h"

#include "hg_exec.h"
#include "hg_job.h"
#include "hg_notify.h"

void
hg_job_free(hg_job_t *job)
{
    hg_master_t *m = job->master;

    hg_slab_strfree(&m->job_strings, job->id);
    hg_slab_strfree(&m->job_strings, job->definition_text);
    hg_cron_free(job->cron);
    json_decref(job->tags);
    hg_slab_free(&m->job_slab, job);
}

void
hg_job_release(hg_job_t *job)
{
    if (--job->refs == 0 && job->removed) {
        hg_job_free(job);
    }
}

/* Whether CJ's schedule is the one JOB runs (never for a new job). The
 * parsed values are compared, so a text that says the same thing another
 * way (blanks around a cron expression, `at` with another UTC offset for
 * the same instant) is the same schedule; the zone is compared by name. */
static bool
hg_job_same_schedule(const hg_job_t *job, const hg_cycle_job_t *cj)
{
    if (job->tz == NULL
        || job->kind != cj->conf->schedule_kind
        || job->every_ms != cj->every_ms
        || job->at != cj->at
        || job->has_start_at != cj->has_start_at
        || job->start_at != cj->start_at
        || strcmp(hg_tz_name(job->tz), hg_tz_name(cj->tz)) != 0)
    {
        return false;
    }
    return job->cron == cj->cron
           || (job->cron != NULL && cj->cron != NULL
               && strcmp(hg_cron_text(job->cron), hg_cron_text(cj->cron))
                  == 0);
}

int
hg_job_update(hg_job_t *job, hg_cycle_job_t *cj, bool *changed,
              bool *schedule_changed)
{
    hg_master_t *m = job->master;
    const hg_job_conf_t *conf = cj->conf;
    const char *type = hg_slab_intern(&m->job_strings, conf->type);
    char *def;

    if (type == NULL) {
        return HG_ERROR;
    }
    *changed = job->definition_text == NULL
               || strcmp(job->definition_text, conf->definition_text) != 0;
    job->api = conf->api;
    if (*changed) {
        def = hg_slab_strdup(&m->job_strings, conf->definition_text);
        if (def == NULL) {
            return HG_ERROR;
        }
        hg_slab_strfree(&m->job_strings, job->definition_text);
        job->definition_text = def;
        job->def_hash = hg_map_hash(def);
    }
    job->type = type;
    json_decref(job->tags);
    job->tags = json_incref(conf->tags);
    job->policy = conf->policy;
    job->enabled = conf->enabled;
    job->output_limit = hg_exec_limit_from_job(conf->definition);

    *schedule_changed = !hg_job_same_schedule(job, cj);
    /* The cycle's expression is taken either way (it says the same when
     * the schedule is unchanged): the previous cycle's can go with it. */
    {
        hg_cron_t *old = job->cron;

        job->cron = hg_cron_ref(cj->cron);
        hg_cron_free(old);
    }
    job->kind = conf->schedule_kind;
    job->tz = cj->tz;
    job->every_ms = cj->every_ms;
    job->at = cj->at;
    job->has_start_at = cj->has_start_at;
    job->start_at = cj->start_at;
    if (*changed) {
        hg_notify_job_defined(m, job);      /* its dead-man expect */
    }
    return HG_OK;
}

hg_schedule_t
hg_job_sched(const hg_job_t *job)
{
    hg_schedule_t s;

    s.kind = job->kind;
    s.cron = job->cron;
    s.tz = job->tz;
    s.every_ms = job->every_ms;
    s.at = job->at;
    s.has_start_at = job->has_start_at;
    s.start_at = job->start_at;
    return s;
}

bool
hg_job_on_wall_clock(const hg_job_t *job)
{
    hg_schedule_t s = hg_job_sched(job);

    return hg_schedule_on_wall_clock(&s);
}

hg_job_t *
hg_job_new(hg_master_t *m, const char *id, hg_timer_handler_pt on_fire)
{
    hg_job_t *job = hg_slab_alloc(&m->job_slab);

    if (job == NULL) {
        return NULL;
    }
    job->master = m;
    job->id = hg_slab_strdup(&m->job_strings, id);
    if (job->id == NULL) {
        hg_slab_free(&m->job_slab, job);
        return NULL;
    }
    hg_timer_init(&job->timer, on_fire, job);
    return job;
}

hg_job_t *
hg_job_find(hg_master_t *m, const char *id)
{
    return hg_map_get(&m->jobs, id);
}

int
hg_job_add(hg_master_t *m, hg_job_t *job)
{
    m->job_order_valid = false;
    return hg_map_put(&m->jobs, job->id, job);
}

void
hg_job_remove(hg_master_t *m, hg_job_t *job)
{
    m->job_order_valid = false;
    hg_map_remove(&m->jobs, job->id);
}

static int
hg_job_by_id(const void *a, const void *b)
{
    const hg_job_t *const *x = a, *const *y = b;

    return strcmp((*x)->id, (*y)->id);
}

hg_job_t *const *
hg_job_order(hg_master_t *m, size_t *n)
{
    hg_job_t **order;
    const char *key;
    void *value;
    size_t it = 0, i = 0;

    if (!m->job_order_valid) {
        order = realloc(m->job_order, (m->jobs.count + 1) * sizeof(*order));
        if (order == NULL) {
            return NULL;
        }
        m->job_order = order;
        while (hg_map_next(&m->jobs, &it, &key, &value)) {
            order[i++] = value;
        }
        qsort(order, i, sizeof(*order), hg_job_by_id);
        m->njob_order = i;
        m->job_order_valid = true;
    }
    *n = m->njob_order;
    return m->job_order;
}

void
hg_job_order_free(hg_master_t *m)
{
    free(m->job_order);
    m->job_order = NULL;
    m->njob_order = 0;
    m->job_order_valid = false;
}
