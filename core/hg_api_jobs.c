/*
 * hg_api_jobs.c: the /api/v1/jobs routes: list, read, create, replace,
 * patch and delete a job; trigger, pause, resume and stop it; its
 * executions; and the API's jobs all at once (export, import).
 *
 * It checks the request's shape (ids, paths, arguments) and leaves what a
 * job may be to the master (hg_master_put_job validates it as the
 * configuration would). It never touches the job table itself.
 */

#include "hg_core.h"

#include "hg_api_http.h"
#include "hg_tz.h"

void
hg_api_job_get(hg_api_t *api, hg_api_req_t *req)
{
    hg_api_wait(req, hg_master_job(api->master, req->id, hg_api_reply_ok,
                                   req));
}

void
hg_api_job_post(hg_api_t *api, hg_api_req_t *req)
{
    char actor[160];
    json_t *body = hg_api_body(req);

    if (body == NULL) {
        return;
    }
    hg_api_actor(req, actor, sizeof(actor));
    hg_api_wait(req, hg_master_put_job(api->master, body, true, actor,
                                       hg_api_reply_created, req));
    json_decref(body);
}

void
hg_api_job_put(hg_api_t *api, hg_api_req_t *req)
{
    char actor[160];
    const json_t *id;
    json_t *body = hg_api_body(req);

    if (body == NULL) {
        return;
    }
    id = json_object_get(body, "id");
    if (id != NULL && (!json_is_string(id)
                       || strcmp(json_string_value(id), req->id) != 0))
    {
        hg_api_error(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid",
                     "id: the body's id differs from the path's");
        json_decref(body);
        return;
    }
    if (id == NULL) {
        json_object_set_new(body, "id", json_string(req->id));
    }
    hg_api_actor(req, actor, sizeof(actor));
    hg_api_wait(req, hg_master_put_job(api->master, body, false, actor,
                                       hg_api_reply_ok, req));
    json_decref(body);
}

void
hg_api_job_patch(hg_api_t *api, hg_api_req_t *req)
{
    char actor[160];
    json_t *body = hg_api_body(req);

    if (body == NULL) {
        return;
    }
    hg_api_actor(req, actor, sizeof(actor));
    hg_api_wait(req, hg_master_patch_job(api->master, req->id, body, actor,
                                         hg_api_reply_ok, req));
    json_decref(body);
}

void
hg_api_job_delete(hg_api_t *api, hg_api_req_t *req)
{
    char actor[160];

    hg_api_actor(req, actor, sizeof(actor));
    hg_api_wait(req, hg_master_delete_job(api->master, req->id, actor,
                                          hg_api_reply_ok, req));
}

void
hg_api_job_trigger(hg_api_t *api, hg_api_req_t *req)
{
    hg_execution_t *exec;
    char actor[160];

    hg_api_actor(req, actor, sizeof(actor));
    errno = 0;
    exec = hg_master_trigger(api->master, req->id, actor, NULL, 0,
                             HG_PRIORITY_NORMAL);
    if (exec != NULL) {
        hg_api_accept(api, req, hg_execution_id(exec));
    } else if (hg_master_find_job(api->master, req->id) == NULL) {
        hg_api_error(req, MHD_HTTP_NOT_FOUND, "not_found", "no job \"%s\"",
                     req->id);
    } else if (errno == EBUSY) {
        hg_api_error(req, MHD_HTTP_CONFLICT, "running", "job \"%s\" is "
                     "running and its overlap is \"skip\"", req->id);
    } else {
        hg_api_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                     "job \"%s\" cannot start now: %s", req->id,
                     strerror(errno != 0 ? errno : ENOMEM));
    }
}

static void
hg_api_job_pause_or_resume(hg_api_t *api, hg_api_req_t *req, bool pause)
{
    int rc = pause ? hg_master_pause(api->master, req->id)
                   : hg_master_resume(api->master, req->id);

    if (rc == HG_OK) {
        hg_api_answer(req, MHD_HTTP_OK, json_pack("{s:s, s:b}", "id",
                                                  req->id, "paused", pause));
    } else if (rc == HG_AGAIN) {
        hg_api_error(req, MHD_HTTP_NOT_FOUND, "not_found", "no job \"%s\"",
                     req->id);
    } else {
        hg_api_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                     "the store refused the change; nothing changed");
    }
}

void
hg_api_job_pause(hg_api_t *api, hg_api_req_t *req)
{
    hg_api_job_pause_or_resume(api, req, true);
}

void
hg_api_job_resume(hg_api_t *api, hg_api_req_t *req)
{
    hg_api_job_pause_or_resume(api, req, false);
}

void
hg_api_job_stop(hg_api_t *api, hg_api_req_t *req)
{
    size_t killed = 0;

    if (hg_master_stop_job(api->master, req->id, &killed) != HG_OK) {
        hg_api_error(req, MHD_HTTP_NOT_FOUND, "not_found", "no job \"%s\"",
                     req->id);
        return;
    }
    hg_api_answer(req, MHD_HTTP_OK, json_pack("{s:s, s:I}", "id", req->id,
                                              "killed", (json_int_t) killed));
}


/* ?NAME=TIME: RFC 3339 (fractions of a second kept to the ms) or ms
 * since the epoch, into *MS (0 when absent); false when answered 400. */
static bool
hg_api_time_arg(hg_api_req_t *req, const char *name, int64_t *ms)
{
    const char *v = hg_api_arg(req, name), *frac;
    char err[128], *end;
    long long n;
    int64_t t, part = 0, scale = 100;

    *ms = 0;
    if (v == NULL) {
        return true;
    }
    if (v[0] >= '0' && v[0] <= '9' && strchr(v, '-') == NULL) {
        errno = 0;
        n = strtoll(v, &end, 10);
        if (*end == '\0' && errno == 0 && n > 0) {
            *ms = n;
            return true;
        }
    } else if (hg_tz_parse_time(hg_tz_utc(), v, &t, err, sizeof(err))
               == HG_OK && t > 0 && t < INT64_MAX / 1000)
    {
        frac = strchr(v, '.');
        for (frac = frac != NULL ? frac + 1 : NULL;
             frac != NULL && *frac >= '0' && *frac <= '9' && scale > 0;
             frac++, scale /= 10)
        {
            part += (*frac - '0') * scale;
        }
        *ms = t * 1000 + part;
        return true;
    }
    hg_api_error(req, MHD_HTTP_BAD_REQUEST, "bad_request", "%s: an RFC 3339 "
                 "time (2026-12-07T09:00:00Z) or milliseconds since the "
                 "epoch", name);
    return false;
}

void
hg_api_job_executions(hg_api_t *api, hg_api_req_t *req)
{
    const char *status = hg_api_arg(req, "status");
    hg_exec_status_t st;
    int64_t since, until;
    size_t page, size;

    if (status != NULL && hg_exec_status_parse(status, &st) != HG_OK) {
        hg_api_error(req, MHD_HTTP_BAD_REQUEST, "bad_request", "status: one "
                     "of queued, running, succeeded, failed, timed_out, "
                     "crashed, killed, skipped, missed, dead");
        return;
    }
    if (!hg_api_page(req, &page, &size) || !hg_api_time_arg(req, "since",
                                                            &since)
        || !hg_api_time_arg(req, "until", &until))
    {
        return;
    }
    hg_api_wait(req, hg_master_executions(api->master, req->id, status,
                                          since, until, size,
                                          (page - 1) * size, hg_api_reply_ok,
                                          req));
}

void
hg_api_jobs_list(hg_api_t *api, hg_api_req_t *req)
{
    static const char *const statuses[] = {
        "active", "paused", "disabled", "running"
    };
    const char *status = hg_api_arg(req, "status");
    hg_job_filter_t filter;
    size_t page, size, i;

    for (i = 0; status != NULL && i < HG_NELEMS(statuses)
                && strcmp(statuses[i], status) != 0; i++) {
    }
    if (status != NULL && i == HG_NELEMS(statuses)) {
        hg_api_error(req, MHD_HTTP_BAD_REQUEST, "bad_request", "status: one "
                     "of active, paused, disabled, running");
        return;
    }
    if (!hg_api_page(req, &page, &size)) {
        return;
    }
    filter.status = status;
    filter.type = hg_api_arg(req, "type");
    filter.tag = hg_api_arg(req, "tag");
    hg_api_wait(req, hg_master_jobs(api->master, &filter, size,
                                    (page - 1) * size, hg_api_reply_ok, req));
}

void
hg_api_export(hg_api_t *api, hg_api_req_t *req)
{
    hg_api_answer(req, MHD_HTTP_OK, hg_master_export_jobs(api->master));
}

/* POST /import: {"jobs": [definitions]}, what GET /export gives. */
void
hg_api_import(hg_api_t *api, hg_api_req_t *req)
{
    char actor[160];
    const json_t *jobs;
    json_t *body = hg_api_body(req);

    if (body == NULL) {
        return;
    }
    jobs = json_object_get(body, "jobs");
    if (!json_is_array(jobs) || json_object_size(body) != 1) {
        hg_api_error(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid", "jobs: "
                     "the body is {\"jobs\": [job definitions]}, as GET "
                     "/api/v1/export gives it");
        json_decref(body);
        return;
    }
    hg_api_actor(req, actor, sizeof(actor));
    hg_api_wait(req, hg_master_import_jobs(api->master, jobs, actor,
                                           hg_api_reply_ok, req));
    json_decref(body);
}
