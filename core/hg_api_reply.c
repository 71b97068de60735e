/*
 * hg_api_reply.c: the admin API's answers.
 *
 * It owns the JSON error shape ({"error": {"code", "message"}}), the
 * translation of the master's reply codes to HTTP statuses, request
 * bodies (a JSON object or a 400 that says where it broke) and query
 * arguments, and the requests that wait for the master's reply: their
 * connection is parked, and resumed by the reply.
 *
 * It never decides what a route does, and never builds JSON by printf.
 */

#include "hg_core.h"

#include "hg_api_http.h"
#include "hg_timer.h"
#include "hg_json.h"

/* --- answers -------------------------------------------------------------- */

void
hg_api_answer(hg_api_req_t *req, unsigned status, json_t *answer)
{
    req->answered = true;
    req->status = status;
    json_decref(req->answer);
    req->answer = answer;
}

void
hg_api_error(hg_api_req_t *req, unsigned status, const char *code,
             const char *fmt, ...)
{
    char message[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    hg_api_answer(req, status, json_pack("{s:{s:s, s:s}}", "error", "code",
                                         code, "message", message));
}

enum MHD_Result
hg_api_send(struct MHD_Connection *conn, unsigned status, const char *type,
            char *text, size_t len)
{
    struct MHD_Response *resp;
    enum MHD_Result rc;

    resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

enum MHD_Result
hg_api_send_json(hg_api_req_t *req)
{
    char *text;

    if (req->answer == NULL) {
        hg_api_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
                     "out of memory");
    }
    text = req->answer != NULL ? hg_json_dumps(req->answer, JSON_COMPACT) : NULL;
    if (text == NULL) {
        return MHD_NO;
    }
    return hg_api_send(req->conn, req->status, "application/json", text,
                       strlen(text));
}

/* A master's reply code to HTTP, with its answer. */
static void
hg_api_master_answer(hg_api_req_t *req, int rc, const json_t *answer,
                     unsigned ok_status)
{
    const char *message = json_string_value(json_object_get(answer,
                                                            "error"));
    json_t *error;

    switch (rc) {
    case HG_OK:
        hg_api_answer(req, ok_status, answer != NULL ? json_deep_copy(answer)
                                                     : json_object());
        return;
    case HG_AGAIN:
        hg_api_error(req, MHD_HTTP_NOT_FOUND, "not_found", "%s",
                     message != NULL ? message : "no such job or execution");
        return;
    case HG_REPLY_EXISTS:
        hg_api_error(req, MHD_HTTP_CONFLICT, "exists", "%s",
                     message != NULL ? message : "it exists already");
        return;
    case HG_REPLY_TAKEN:
        hg_api_error(req, MHD_HTTP_CONFLICT, "taken", "%s",
                     message != NULL ? message : "another instance has it");
        return;
    case HG_REPLY_READ_ONLY:
        hg_api_error(req, MHD_HTTP_FORBIDDEN, "read_only", "%s",
                     message != NULL ? message : "read only");
        return;
    case HG_REPLY_INVALID:
        hg_api_error(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "invalid", "%s",
                     message != NULL ? message : "invalid");
        error = json_object_get(req->answer, "error");
        json_object_set(error, "errors", json_object_get(answer, "errors"));
        return;
    default:
        hg_api_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable", "%s",
                     message != NULL ? message : "the store could not answer "
                     "(the daemon's log says why)");
        return;
    }
}

/* --- replies that come later ----------------------------------------------- */

void
hg_api_req_free(hg_api_req_t *req)
{
    free(req->body);
    json_decref(req->answer);
    free(req);
}

void
hg_api_req_unlink(hg_api_req_t *req)
{
    if (req->api == NULL) {
        return;
    }
    if (req->prev != NULL) {
        req->prev->next = req->next;
    } else {
        req->api->reqs = req->next;
    }
    if (req->next != NULL) {
        req->next->prev = req->prev;
    }
    req->prev = req->next = NULL;
}

/* A parked connection (*SUSPENDED) goes on. In external epoll mode
 * nothing wakes libmicrohttpd for it: its next turn is now. */
void
hg_api_resume(hg_api_t *api, struct MHD_Connection *conn, bool *suspended)
{
    if (!*suspended) {
        return;
    }
    *suspended = false;
    MHD_resume_connection(conn);
    hg_timer_set(&api->timers, &api->timer, hg_clock_ns(CLOCK_MONOTONIC));
}

/* The master answered REQ: its connection goes on (resumed) or, if it
 * ended meanwhile, the request is done with. */
static void
hg_api_reply_with(hg_api_req_t *req, int rc, const json_t *answer,
                  unsigned ok_status)
{
    req->waiting = false;
    if (req->api == NULL || req->conn == NULL) {
        hg_api_req_unlink(req);
        hg_api_req_free(req);
        return;
    }
    hg_api_master_answer(req, rc, answer, ok_status);
    hg_api_resume(req->api, req->conn, &req->suspended);
}

void
hg_api_reply_ok(void *data, int rc, const json_t *answer)
{
    hg_api_reply_with(data, rc, answer, MHD_HTTP_OK);
}

void
hg_api_reply_created(void *data, int rc, const json_t *answer)
{
    hg_api_reply_with(data, rc, answer, MHD_HTTP_CREATED);
}

/* The master read back an execution the request started (a trigger, an
 * enqueue): the store has it, so the 202 that says it will run can go. */
static void
hg_api_reply_accepted(void *data, int rc, const json_t *answer)
{
    hg_api_req_t *req = data;
    json_t *accepted = NULL;

    if (rc == HG_OK) {
        accepted = json_pack("{s:O?, s:O?}", "job", json_object_get(
                                 answer, "job_id"), "execution",
                             json_object_get(answer, "id"));
        rc = accepted != NULL ? HG_OK : HG_ERROR;
    } else if (rc == HG_REPLY_EXISTS) {
        accepted = json_deep_copy(answer);  /* the store refused its key */
    } else {
        accepted = json_pack("{s:s}", "error", "the execution was started "
                             "but the store could not confirm that it is "
                             "written (the daemon's log says why)");
        rc = HG_ERROR;
    }
    hg_api_reply_with(req, rc, accepted, MHD_HTTP_ACCEPTED);
    json_decref(accepted);
}

void
hg_api_accept(hg_api_t *api, hg_api_req_t *req, const char *exec_id)
{
    hg_api_wait(req, hg_master_execution(api->master, exec_id,
                                         hg_api_reply_accepted, req));
}

void
hg_api_accept_enqueued(hg_api_t *api, hg_api_req_t *req,
                       const char *exec_id)
{
    hg_api_wait(req, hg_master_enqueued(api->master, exec_id,
                                        hg_api_reply_accepted, req));
}

/* REQ waits for a reply the master promised (HG_OK from the call), or
 * failed to promise one. */
void
hg_api_wait(hg_api_req_t *req, int rc)
{
    if (rc == HG_OK) {
        req->waiting = !req->answered;
        return;
    }
    if (rc == HG_AGAIN) {
        hg_api_error(req, MHD_HTTP_NOT_FOUND, "not_found", "no job or "
                     "execution \"%s\"", req->id);
        return;
    }
    hg_api_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                 "the daemon cannot take it now (no store, or out of "
                 "memory)");
}


json_t *
hg_api_body(hg_api_req_t *req)
{
    json_error_t jerr;
    json_t *body;

    if (req->len == 0) {
        hg_api_error(req, MHD_HTTP_BAD_REQUEST, "bad_request", "a JSON "
                     "object is required as the body");
        return NULL;
    }
    body = json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL) {
        hg_api_error(req, MHD_HTTP_BAD_REQUEST, "bad_json", "the body is not"
                     " JSON: %s at line %d, column %d", jerr.text, jerr.line,
                     jerr.column);
        return NULL;
    }
    if (!json_is_object(body)) {
        hg_api_error(req, MHD_HTTP_BAD_REQUEST, "bad_request", "the body "
                     "must be a JSON object");
        json_decref(body);
        return NULL;
    }
    return body;
}

void
hg_api_actor(const hg_api_req_t *req, char *actor, size_t len)
{
    snprintf(actor, len, "api:%s", req->token_name);
}

/* The query argument NAME, or NULL. */
const char *
hg_api_arg(hg_api_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
                                       name);
}

/* A query argument as a count in [MIN, MAX]; DFLT when absent. False
 * (answered 400) when it is not one. */
static bool
hg_api_arg_count(hg_api_req_t *req, const char *name, size_t dflt,
                 size_t min, size_t max, size_t *out)
{
    const char *v = MHD_lookup_connection_value(req->conn,
                                                MHD_GET_ARGUMENT_KIND, name);
    char *end;
    unsigned long long n;

    *out = dflt;
    if (v == NULL) {
        return true;
    }
    errno = 0;
    n = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || n < min
        || n > max)
    {
        hg_api_error(req, MHD_HTTP_BAD_REQUEST, "bad_request", "%s: must be "
                     "a whole number from %zu to %zu", name, min, max);
        return false;
    }
    *out = (size_t) n;
    return true;
}

#define HG_API_PAGE_SIZE      50
#define HG_API_PAGE_SIZE_MAX  500

/* ?page=N&page_size=M: pages from 1, of at most HG_API_PAGE_SIZE_MAX. */
bool
hg_api_page(hg_api_req_t *req, size_t *page, size_t *size)
{
    return hg_api_arg_count(req, "page", 1, 1,
                            SIZE_MAX / HG_API_PAGE_SIZE_MAX, page)
           && hg_api_arg_count(req, "page_size", HG_API_PAGE_SIZE, 1,
                               HG_API_PAGE_SIZE_MAX, size);
}
