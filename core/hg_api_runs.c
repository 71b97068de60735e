/*
 * hg_api_runs.c: the routes of executions: one execution with its output,
 * the queue (enqueue, list, remove) and dead letters (list, retry and purge, one or
 * all matching a filter).
 *
 * It checks the request's shape and hands the rest to the master; it
 * never reads the store itself.
 */

#include "hg_core.h"

#include "hg_api_http.h"
#include "hg_tz.h"
#include "hg_json.h"

void
hg_api_execution_get(hg_api_t *api, hg_api_req_t *req)
{
    hg_api_wait(req, hg_master_execution(api->master, req->id,
                                         hg_api_reply_ok, req));
}


void
hg_api_dead_list(hg_api_t *api, hg_api_req_t *req)
{
    const char *job = hg_api_arg(req, "job");
    size_t page, size;

    if (!hg_api_page(req, &page, &size)) {
        return;
    }
    hg_api_wait(req, hg_master_dead(api->master, job, size, (page - 1) * size,
                                    hg_api_reply_ok, req));
}

/* The bulk filter of POST /dead/retry and /dead/purge: {job, before}, both
 * optional; false when answered 400/422. */
static bool
hg_api_dead_filter(hg_api_req_t *req, const char **job, int64_t *before,
                   json_t **body)
{
    const json_t *j, *b;
    char err[256];
    int64_t t;

    *job = NULL;
    *before = 0;
    *body = req->len > 0 ? hg_api_body(req) : json_object();
    if (*body == NULL) {
        return false;
    }
    j = json_object_get(*body, "job");
    b = json_object_get(*body, "before");
    if ((j != NULL && !json_is_string(j))
        || json_object_size(*body) > (size_t) (j != NULL) + (b != NULL))
    {
        hg_api_error(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid", "the "
                     "filter is {\"job\": ID, \"before\": TIME}, both "
                     "optional");
        json_decref(*body);
        return false;
    }
    if (b != NULL) {
        if (!json_is_string(b)
            || hg_tz_parse_time(hg_tz_utc(), json_string_value(b), &t, err,
                                sizeof(err)) != HG_OK)
        {
            hg_api_error(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid",
                         "before: an RFC 3339 time is expected");
            json_decref(*body);
            return false;
        }
        *before = t * 1000;
    }
    *job = json_string_value(j);
    return true;
}

void
hg_api_dead_retry_one(hg_api_t *api, hg_api_req_t *req)
{
    char actor[160];

    hg_api_actor(req, actor, sizeof(actor));
    hg_api_wait(req, hg_master_retry_dead(api->master, req->id, NULL, 0,
                                          actor, hg_api_reply_ok, req));
}

void
hg_api_dead_purge_one(hg_api_t *api, hg_api_req_t *req)
{
    hg_api_wait(req, hg_master_purge_dead(api->master, req->id, NULL, 0,
                                          hg_api_reply_ok, req));
}

void
hg_api_dead_retry(hg_api_t *api, hg_api_req_t *req)
{
    const char *job;
    char actor[160];
    int64_t before;
    json_t *body;

    if (!hg_api_dead_filter(req, &job, &before, &body)) {
        return;
    }
    hg_api_actor(req, actor, sizeof(actor));
    hg_api_wait(req, hg_master_retry_dead(api->master, NULL, job, before,
                                          actor, hg_api_reply_ok, req));
    json_decref(body);
}

void
hg_api_dead_purge(hg_api_t *api, hg_api_req_t *req)
{
    const char *job;
    int64_t before;
    json_t *body;

    if (!hg_api_dead_filter(req, &job, &before, &body)) {
        return;
    }
    hg_api_wait(req, hg_master_purge_dead(api->master, NULL, job, before,
                                          hg_api_reply_ok, req));
    json_decref(body);
}


/* POST /queue: {job, payload, run_at, priority, unique_key}, job alone
 * required; a payload that is not a string is given as its JSON text. */
void
hg_api_enqueue(hg_api_t *api, hg_api_req_t *req)
{
    static const char *const keys[] = {
        "job", "payload", "run_at", "priority", "unique_key"
    };
    const json_t *job, *payload, *run_at, *priority, *unique_key;
    hg_priority_t prio = HG_PRIORITY_NORMAL;
    hg_execution_t *exec;
    const char *key, *text = NULL;
    char actor[160], err[256], *dumped = NULL;
    json_t *body = hg_api_body(req), *value;
    int64_t at = 0;
    size_t i;

    if (body == NULL) {
        return;
    }
    json_object_foreach(body, key, value) {
        for (i = 0; i < HG_NELEMS(keys) && strcmp(keys[i], key) != 0; i++) {
        }
        if (i == HG_NELEMS(keys)) {
            hg_api_error(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid",
                         "%.64s: unknown key (job, payload, run_at, "
                         "priority, unique_key)", key);
            goto done;
        }
    }
    job = json_object_get(body, "job");
    payload = json_object_get(body, "payload");
    run_at = json_object_get(body, "run_at");
    priority = json_object_get(body, "priority");
    unique_key = json_object_get(body, "unique_key");
    if (!json_is_string(job)) {
        hg_api_error(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid", "job: "
                     "the id of the job to run is required");
        goto done;
    }
    if (run_at != NULL
        && (!json_is_string(run_at)
            || hg_tz_parse_time(hg_tz_utc(), json_string_value(run_at), &at,
                                err, sizeof(err)) != HG_OK))
    {
        hg_api_error(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid",
                     "run_at: an RFC 3339 time is expected");
        goto done;
    }
    if (priority != NULL
        && hg_conf_priority_parse(json_string_value(priority), &prio)
           != HG_OK)
    {
        hg_api_error(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid",
                     "priority: one of low, normal, high, critical");
        goto done;
    }
    if (unique_key != NULL && !json_is_string(unique_key)) {
        hg_api_error(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid",
                     "unique_key: a string is expected");
        goto done;
    }
    if (json_is_string(payload)) {
        text = json_string_value(payload);
    } else if (payload != NULL) {
        dumped = hg_json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
        text = dumped;
    }
    hg_api_actor(req, actor, sizeof(actor));
    errno = 0;
    exec = hg_master_enqueue(api->master, json_string_value(job), actor,
                             text, text != NULL ? strlen(text) : 0,
                             at * 1000, prio,
                             json_string_value(unique_key));
    if (exec != NULL) {
        hg_api_accept_enqueued(api, req, hg_execution_id(exec));
    } else if (errno == ENOENT) {
        hg_api_error(req, MHD_HTTP_NOT_FOUND, "not_found", "no job \"%.128s\"",
                     json_string_value(job));
    } else if (errno == EEXIST) {
        hg_api_error(req, MHD_HTTP_CONFLICT, "exists", "an execution with "
                     "this unique_key is queued already");
    } else if (errno == EBUSY) {
        hg_api_error(req, MHD_HTTP_CONFLICT, "running", "the job is running "
                     "and its overlap is \"skip\"");
    } else {
        hg_api_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                     "cannot enqueue now: %s", strerror(errno != 0 ? errno
                                                                   : ENOMEM));
    }

done:
    free(dumped);
    json_decref(body);
}


/* GET /queue?job=ID&page=N&page_size=M: what waits to start, in the order
 * it will run (the master's loop holds it all: no store read); in a
 * cluster, then what waits unowned in the database (a store read). */
void
hg_api_queue_list(hg_api_t *api, hg_api_req_t *req)
{
    size_t page, size;
    json_t *answer;
    int rc;

    if (!hg_api_page(req, &page, &size)) {
        return;
    }
    /* A cluster's unowned items are read on the store's side. */
    rc = hg_master_queue_read(api->master, hg_api_arg(req, "job"), size,
                              (page - 1) * size, hg_api_reply_ok, req);
    if (rc != HG_AGAIN) {
        hg_api_wait(req, rc);
        return;
    }
    answer = hg_master_queue(api->master, hg_api_arg(req, "job"), size,
                             (page - 1) * size);
    if (answer == NULL) {
        hg_api_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                     "out of memory");
        return;
    }
    hg_api_answer(req, MHD_HTTP_OK, answer);
}

/* DELETE /queue/{id}: answered once the store has it killed. */
void
hg_api_dequeue(hg_api_t *api, hg_api_req_t *req)
{
    char actor[160], job[HG_API_ID_MAX + 1];
    int rc;

    hg_api_actor(req, actor, sizeof(actor));
    rc = hg_master_dequeue(api->master, req->id, actor, job, sizeof(job),
                           hg_api_reply_ok, req);
    if (rc == HG_REPLY_STARTED) {
        hg_api_error(req, MHD_HTTP_CONFLICT, "running", "execution %s has "
                     "started: POST /api/v1/jobs/%s/stop stops it", req->id,
                     job);
        return;
    }
    hg_api_wait(req, rc);
}
