/*
 * hg_api.c: the admin HTTP API (/api/v1, JSON), /healthz and /metrics.
 *
 * It owns the listening socket, libmicrohttpd's daemon in external epoll
 * mode (its one epoll descriptor watched by the master's loop, its
 * timeouts on a timer of the same loop: no thread of libmicrohttpd's
 * touches anything), the route table with each route's minimum role,
 * access control (the `allow` list first, then bearer tokens compared in
 * constant time), request bodies (bounded) and every answer, built with
 * jansson. It speaks to the master only through hg_master.h; an answer
 * that waits for the store suspends its connection until the master's
 * reply resumes it.
 *
 * It never blocks the loop, never logs a token, and never reaches into
 * the master's state.
 */

#include "hg_core.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "hg_api.h"
#include "hg_event.h"
#include "hg_log.h"
#include "hg_openapi.h"
#include "hg_timer.h"
#include "hg_tz.h"

#define HG_API_CONN_LIMIT     64
#define HG_API_CONN_TIMEOUT_S 30
#define HG_API_ID_MAX         128
/* An events client's bound: what it has not read yet, beyond which it is
 * dropped rather than let grow (or hold the loop). */
#define HG_API_SSE_BUFFER     (256 * 1024)
/* A comment this often on every events stream: a client that has gone is
 * found by the write that fails (a suspended connection notices nothing
 * by itself). */
#define HG_API_SSE_KEEPALIVE_NS  (15 * HG_NSEC_PER_SEC)

typedef enum {
    HG_ROLE_NONE = 0,               /* no token needed */
    HG_ROLE_READ,
    HG_ROLE_EXECUTE,
    HG_ROLE_WRITE,
    HG_ROLE_ADMIN
} hg_api_role_t;

static const char *const hg_api_role_names[] = {
    "none", "read", "execute", "write", "admin"
};

typedef struct hg_api_req_s hg_api_req_t;
typedef void (*hg_api_handler_pt)(hg_api_t *api, hg_api_req_t *req);

/* A route: METHOD PATH, where "{}" in PATH matches one segment (an id). */
typedef struct hg_api_route_s {
    const char *method;
    const char *path;
    hg_api_role_t role;
    hg_api_handler_pt handler;
} hg_api_route_t;

struct hg_api_req_s {
    hg_api_t *api;                  /* NULL: the API closed meanwhile */
    struct MHD_Connection *conn;    /* NULL once the connection ended */
    hg_api_req_t *prev, *next;      /* api->reqs */
    char *body;
    size_t len;
    bool too_large;
    bool sse;                       /* answered with the events stream */
    bool waiting;                   /* for the master's reply */
    bool suspended;
    /* the answer */
    bool answered;
    unsigned status;
    json_t *answer;
    /* the request */
    char id[HG_API_ID_MAX + 1];     /* the {} segment */
    char token_name[128];
    const hg_api_route_t *route;
};

/* One client of GET /api/v1/events: what it has not read yet. */
typedef struct hg_api_sse_s {
    hg_api_t *api;
    struct MHD_Connection *conn;
    struct hg_api_sse_s *prev, *next;
    char *buf;                      /* HG_API_SSE_BUFFER bytes */
    size_t off, len;                /* unread: buf[off .. len) */
    bool suspended;                 /* nothing to send: parked */
    bool dropped;                   /* fell behind, or the API closes */
} hg_api_sse_t;

struct hg_api_s {
    hg_master_t *master;
    struct MHD_Daemon *mhd;
    int fd;                         /* the listening socket */
    hg_event_t ev;                  /* libmicrohttpd's epoll descriptor */
    hg_timers_t timers;
    hg_timer_t timer;
    bool timers_ready;
    hg_api_req_t *reqs;             /* every request alive */
    hg_api_sse_t *sse;              /* every events client */
    hg_timer_t keepalive;
    char *tls_cert;                 /* PEM texts: libmicrohttpd keeps */
    char *tls_key;                  /* pointers to them while it runs */
};

/* --- answers -------------------------------------------------------------- */

static void
hg_api_answer(hg_api_req_t *req, unsigned status, json_t *answer)
{
    req->answered = true;
    req->status = status;
    json_decref(req->answer);
    req->answer = answer;
}

static void hg_api_error(hg_api_req_t *req, unsigned status, const char *code,
                         const char *fmt, ...) HG_PRINTF(4, 5);

static void
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

static enum MHD_Result
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

static enum MHD_Result
hg_api_send_json(hg_api_req_t *req)
{
    char *text;

    if (req->answer == NULL) {
        hg_api_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
                     "out of memory");
    }
    text = req->answer != NULL ? json_dumps(req->answer, JSON_COMPACT) : NULL;
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

static void
hg_api_req_free(hg_api_req_t *req)
{
    free(req->body);
    json_decref(req->answer);
    free(req);
}

static void
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
static void
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

static void
hg_api_reply_ok(void *data, int rc, const json_t *answer)
{
    hg_api_reply_with(data, rc, answer, MHD_HTTP_OK);
}

static void
hg_api_reply_created(void *data, int rc, const json_t *answer)
{
    hg_api_reply_with(data, rc, answer, MHD_HTTP_CREATED);
}

/* REQ waits for a reply the master promised (HG_OK from the call), or
 * failed to promise one. */
static void
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

/* --- handlers ------------------------------------------------------------- */

static void
hg_api_healthz(hg_api_t *api, hg_api_req_t *req)
{
    bool well = false;
    json_t *answer = hg_master_health(api->master, &well);

    hg_api_answer(req, well ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                  answer);
}

static void
hg_api_status(hg_api_t *api, hg_api_req_t *req)
{
    hg_api_answer(req, MHD_HTTP_OK, hg_master_status(api->master));
}

static void
hg_api_stats(hg_api_t *api, hg_api_req_t *req)
{
    hg_api_answer(req, MHD_HTTP_OK, hg_master_stats(api->master));
}

static json_t *
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

static void
hg_api_actor(const hg_api_req_t *req, char *actor, size_t len)
{
    snprintf(actor, len, "api:%s", req->token_name);
}

static void
hg_api_job_get(hg_api_t *api, hg_api_req_t *req)
{
    hg_api_wait(req, hg_master_job(api->master, req->id, hg_api_reply_ok,
                                   req));
}

static void
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

static void
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

static void
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

static void
hg_api_job_delete(hg_api_t *api, hg_api_req_t *req)
{
    char actor[160];

    hg_api_actor(req, actor, sizeof(actor));
    hg_api_wait(req, hg_master_delete_job(api->master, req->id, actor,
                                          hg_api_reply_ok, req));
}

static void
hg_api_job_trigger(hg_api_t *api, hg_api_req_t *req)
{
    hg_execution_t *exec;
    char actor[160];

    hg_api_actor(req, actor, sizeof(actor));
    errno = 0;
    exec = hg_master_trigger(api->master, req->id, actor, NULL, 0,
                             HG_PRIORITY_NORMAL);
    if (exec != NULL) {
        hg_api_answer(req, MHD_HTTP_ACCEPTED, json_pack(
            "{s:s, s:s}", "job", req->id, "execution",
            hg_execution_id(exec)));
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

static void
hg_api_job_pause(hg_api_t *api, hg_api_req_t *req)
{
    hg_api_job_pause_or_resume(api, req, true);
}

static void
hg_api_job_resume(hg_api_t *api, hg_api_req_t *req)
{
    hg_api_job_pause_or_resume(api, req, false);
}

static void
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

static void
hg_api_execution_get(hg_api_t *api, hg_api_req_t *req)
{
    hg_api_wait(req, hg_master_execution(api->master, req->id,
                                         hg_api_reply_ok, req));
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
static bool
hg_api_page(hg_api_req_t *req, size_t *page, size_t *size)
{
    return hg_api_arg_count(req, "page", 1, 1,
                            SIZE_MAX / HG_API_PAGE_SIZE_MAX, page)
           && hg_api_arg_count(req, "page_size", HG_API_PAGE_SIZE, 1,
                               HG_API_PAGE_SIZE_MAX, size);
}

static void
hg_api_dead_list(hg_api_t *api, hg_api_req_t *req)
{
    const char *job = MHD_lookup_connection_value(req->conn,
                                                  MHD_GET_ARGUMENT_KIND,
                                                  "job");
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

static void
hg_api_dead_retry_one(hg_api_t *api, hg_api_req_t *req)
{
    char actor[160];

    hg_api_actor(req, actor, sizeof(actor));
    hg_api_wait(req, hg_master_retry_dead(api->master, req->id, NULL, 0,
                                          actor, hg_api_reply_ok, req));
}

static void
hg_api_dead_purge_one(hg_api_t *api, hg_api_req_t *req)
{
    hg_api_wait(req, hg_master_purge_dead(api->master, req->id, NULL, 0,
                                          hg_api_reply_ok, req));
}

static void
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

static void
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

static void
hg_api_reload(hg_api_t *api, hg_api_req_t *req)
{
    int rc = hg_master_reload(api->master);

    if (rc == HG_ERROR) {
        hg_api_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                     "the reload could not start (the daemon's log says "
                     "why)");
        return;
    }
    hg_api_answer(req, MHD_HTTP_ACCEPTED, json_pack("{s:s}", "reload",
                                                    "started"));
}

/* POST /queue: {job, payload, run_at, priority, unique_key}, job alone
 * required; a payload that is not a string is given as its JSON text. */
static void
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
        dumped = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
        text = dumped;
    }
    hg_api_actor(req, actor, sizeof(actor));
    errno = 0;
    exec = hg_master_enqueue(api->master, json_string_value(job), actor,
                             text, text != NULL ? strlen(text) : 0,
                             at * 1000, prio,
                             json_string_value(unique_key));
    if (exec != NULL) {
        hg_api_answer(req, MHD_HTTP_ACCEPTED, json_pack(
            "{s:s, s:s}", "job", json_string_value(job), "execution",
            hg_execution_id(exec)));
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

static void
hg_api_job_executions(hg_api_t *api, hg_api_req_t *req)
{
    const char *status = MHD_lookup_connection_value(req->conn,
                                                     MHD_GET_ARGUMENT_KIND,
                                                     "status");
    hg_exec_status_t st;
    size_t page, size;

    if (status != NULL && hg_exec_status_parse(status, &st) != HG_OK) {
        hg_api_error(req, MHD_HTTP_BAD_REQUEST, "bad_request", "status: one "
                     "of queued, running, succeeded, failed, timed_out, "
                     "crashed, killed, skipped, missed, dead");
        return;
    }
    if (!hg_api_page(req, &page, &size)) {
        return;
    }
    hg_api_wait(req, hg_master_executions(api->master, req->id, status, size,
                                          (page - 1) * size, hg_api_reply_ok,
                                          req));
}

static void
hg_api_jobs_list(hg_api_t *api, hg_api_req_t *req)
{
    static const char *const statuses[] = {
        "active", "paused", "disabled", "running"
    };
    const char *status = MHD_lookup_connection_value(req->conn,
                                                     MHD_GET_ARGUMENT_KIND,
                                                     "status");
    const char *type = MHD_lookup_connection_value(req->conn,
                                                   MHD_GET_ARGUMENT_KIND,
                                                   "type");
    size_t page, size, i;
    json_t *answer;

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
    answer = hg_master_jobs(api->master, status, type, size,
                            (page - 1) * size);
    if (answer != NULL) {
        json_object_set_new(answer, "page", json_integer((json_int_t) page));
    }
    hg_api_answer(req, MHD_HTTP_OK, answer);
}

static void
hg_api_openapi(hg_api_t *api, hg_api_req_t *req)
{
    HG_UNUSED(api);
    hg_api_answer(req, MHD_HTTP_OK, json_loads(hg_openapi_text, 0, NULL));
}

static void
hg_api_events(hg_api_t *api, hg_api_req_t *req)
{
    HG_UNUSED(api);
    req->sse = true;                /* hg_api_sse_start answers */
}

static const hg_api_route_t hg_api_routes[] = {
    { "GET",    "/healthz",                   HG_ROLE_NONE,    hg_api_healthz },
    { "GET",    "/metrics",                   HG_ROLE_READ,    NULL },
    { "GET",    "/api/v1/openapi.json",       HG_ROLE_NONE,    hg_api_openapi },
    { "GET",    "/api/v1/status",             HG_ROLE_READ,    hg_api_status },
    { "GET",    "/api/v1/stats",              HG_ROLE_READ,    hg_api_stats },
    { "GET",    "/api/v1/events",             HG_ROLE_READ,    hg_api_events },
    { "GET",    "/api/v1/jobs",               HG_ROLE_READ,    hg_api_jobs_list },
    { "POST",   "/api/v1/jobs",               HG_ROLE_WRITE,   hg_api_job_post },
    { "GET",    "/api/v1/jobs/{}",            HG_ROLE_READ,    hg_api_job_get },
    { "PUT",    "/api/v1/jobs/{}",            HG_ROLE_WRITE,   hg_api_job_put },
    { "PATCH",  "/api/v1/jobs/{}",            HG_ROLE_WRITE,   hg_api_job_patch },
    { "DELETE", "/api/v1/jobs/{}",            HG_ROLE_WRITE,   hg_api_job_delete },
    { "POST",   "/api/v1/jobs/{}/trigger",    HG_ROLE_EXECUTE, hg_api_job_trigger },
    { "POST",   "/api/v1/jobs/{}/pause",      HG_ROLE_EXECUTE, hg_api_job_pause },
    { "POST",   "/api/v1/jobs/{}/resume",     HG_ROLE_EXECUTE, hg_api_job_resume },
    { "POST",   "/api/v1/jobs/{}/stop",       HG_ROLE_EXECUTE, hg_api_job_stop },
    { "GET",    "/api/v1/jobs/{}/executions", HG_ROLE_READ,    hg_api_job_executions },
    { "GET",    "/api/v1/executions/{}",      HG_ROLE_READ,    hg_api_execution_get },
    { "GET",    "/api/v1/dead",               HG_ROLE_READ,    hg_api_dead_list },
    { "POST",   "/api/v1/dead/retry",         HG_ROLE_EXECUTE, hg_api_dead_retry },
    { "POST",   "/api/v1/dead/purge",         HG_ROLE_WRITE,   hg_api_dead_purge },
    { "POST",   "/api/v1/dead/{}/retry",      HG_ROLE_EXECUTE, hg_api_dead_retry_one },
    { "DELETE", "/api/v1/dead/{}",            HG_ROLE_WRITE,   hg_api_dead_purge_one },
    { "POST",   "/api/v1/reload",             HG_ROLE_ADMIN,   hg_api_reload },
    { "POST",   "/api/v1/queue",              HG_ROLE_EXECUTE, hg_api_enqueue },
};

/* --- routing and access -------------------------------------------------- */

/* Whether URL matches PATTERN; the {} segment into ID. An id segment is
 * 1-128 bytes of [A-Za-z0-9._-]: anything else (a "..", a "%2F" decoded
 * to "/", a NUL) matches no route. */
static bool
hg_api_match(const char *pattern, const char *url, char *id, size_t idlen)
{
    const char *brace = strstr(pattern, "{}");
    size_t head, n, i;

    if (brace == NULL) {
        return strcmp(pattern, url) == 0;
    }
    head = (size_t) (brace - pattern);
    if (strncmp(pattern, url, head) != 0) {
        return false;
    }
    url += head;
    n = strcspn(url, "/");
    if (n == 0 || n >= idlen || strcmp(url + n, brace + 2) != 0) {
        return false;
    }
    for (i = 0; i < n; i++) {
        if (!isalnum((unsigned char) url[i]) && url[i] != '.'
            && url[i] != '_' && url[i] != '-')
        {
            return false;
        }
    }
    if (n <= 2 && url[0] == '.' && (n == 1 || url[1] == '.')) {
        return false;
    }
    memcpy(id, url, n);
    id[n] = '\0';
    return true;
}

/* The route for METHOD URL; *PATH_KNOWN whether another method has it. */
static const hg_api_route_t *
hg_api_route(const char *method, const char *url, char *id, size_t idlen,
             bool *path_known)
{
    size_t i;

    *path_known = false;
    for (i = 0; i < HG_NELEMS(hg_api_routes); i++) {
        if (hg_api_match(hg_api_routes[i].path, url, id, idlen)) {
            if (strcmp(hg_api_routes[i].method, method) == 0) {
                return &hg_api_routes[i];
            }
            *path_known = true;
        }
    }
    return NULL;
}

/* Whether ADDR is in CIDR ("10.0.0.0/8", "::1/128"; no prefix: the host). */
bool
hg_api_cidr_has(const char *cidr, const struct sockaddr *addr)
{
    unsigned char net[16], host[16];
    char text[64];
    const char *slash = strchr(cidr, '/');
    size_t len = slash != NULL ? (size_t) (slash - cidr) : strlen(cidr);
    int family, bits, width, i;

    if (len >= sizeof(text)) {
        return false;
    }
    memcpy(text, cidr, len);
    text[len] = '\0';
    family = strchr(text, ':') != NULL ? AF_INET6 : AF_INET;
    width = family == AF_INET6 ? 128 : 32;
    bits = slash != NULL ? (int) strtol(slash + 1, NULL, 10) : width;
    if (inet_pton(family, text, net) != 1 || bits < 0 || bits > width) {
        return false;
    }
    if (addr->sa_family == AF_INET && family == AF_INET) {
        memcpy(host, &((const struct sockaddr_in *) addr)->sin_addr, 4);
    } else if (addr->sa_family == AF_INET6 && family == AF_INET6) {
        memcpy(host, &((const struct sockaddr_in6 *) addr)->sin6_addr, 16);
    } else if (addr->sa_family == AF_INET6 && family == AF_INET
               && IN6_IS_ADDR_V4MAPPED(
                   &((const struct sockaddr_in6 *) addr)->sin6_addr))
    {
        memcpy(host, ((const struct sockaddr_in6 *) addr)->sin6_addr.s6_addr
                     + 12, 4);
    } else {
        return false;
    }
    for (i = 0; bits > 0; i++, bits -= 8) {
        unsigned char mask = bits >= 8 ? 0xff
                                       : (unsigned char) (0xff << (8 - bits));
        if ((net[i] & mask) != (host[i] & mask)) {
            return false;
        }
    }
    return true;
}

static bool
hg_api_allowed(const hg_conf_t *conf, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info;
    size_t i;

    info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (info == NULL || info->client_addr == NULL) {
        return false;
    }
    for (i = 0; i < conf->api.nallow; i++) {
        if (hg_api_cidr_has(conf->api.allow[i], info->client_addr)) {
            return true;
        }
    }
    return false;
}

/* Equal, in a time that depends on the lengths only, not on where the two
 * first differ. */
static bool
hg_api_same(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = alen != blen;
    size_t i;

    for (i = 0; i < alen && i < blen; i++) {
        diff |= (unsigned char) (a[i] ^ b[i]);
    }
    return diff == 0;
}

static hg_api_role_t
hg_api_role_of(const char *name)
{
    size_t i;

    for (i = 1; i < HG_NELEMS(hg_api_role_names); i++) {
        if (strcmp(hg_api_role_names[i], name) == 0) {
            return (hg_api_role_t) i;
        }
    }
    return HG_ROLE_NONE;
}

/* The role of the request's bearer token (its name into REQ), or NONE:
 * every token is compared, whichever matches. */
static hg_api_role_t
hg_api_token_role(const hg_conf_t *conf, struct MHD_Connection *conn,
                  hg_api_req_t *req)
{
    const char *auth, *given;
    hg_api_role_t role = HG_ROLE_NONE;
    size_t i, len;

    auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_AUTHORIZATION);
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
        return HG_ROLE_NONE;
    }
    given = auth + 7;
    len = strlen(given);
    for (i = 0; i < conf->api.ntokens; i++) {
        const hg_api_token_t *t = &conf->api.tokens[i];
        if (hg_api_same(given, len, t->token, strlen(t->token))) {
            role = hg_api_role_of(t->role);
            snprintf(req->token_name, sizeof(req->token_name), "%s",
                     t->name);
        }
    }
    return role;
}

/* Route, access, handler: the answer is in REQ, or will be (waiting). */
static void
hg_api_dispatch(hg_api_t *api, hg_api_req_t *req, const char *method,
                const char *url)
{
    const hg_conf_t *conf = hg_master_conf(api->master);
    const hg_api_route_t *route;
    hg_api_role_t role;
    bool path_known;

    /* the allow list before anything else */
    if (!hg_api_allowed(conf, req->conn)) {
        hg_api_error(req, MHD_HTTP_FORBIDDEN, "forbidden", "this address "
                     "is not in api.allow");
        return;
    }
    route = hg_api_route(method, url, req->id, sizeof(req->id), &path_known);
    if (route == NULL) {
        if (path_known) {
            hg_api_error(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method",
                         "%.16s is not allowed here", method);
        } else {
            hg_api_error(req, MHD_HTTP_NOT_FOUND, "not_found", "no such "
                         "route");
        }
        return;
    }
    if (route->role != HG_ROLE_NONE) {
        role = hg_api_token_role(conf, req->conn, req);
        if (role == HG_ROLE_NONE) {
            hg_api_error(req, MHD_HTTP_UNAUTHORIZED, "unauthorized", "a "
                         "bearer token is required (Authorization: Bearer "
                         "...)");
            return;
        }
        if (role < route->role) {
            hg_api_error(req, MHD_HTTP_FORBIDDEN, "forbidden", "this needs "
                         "the role %s; the token's is %s",
                         hg_api_role_names[route->role],
                         hg_api_role_names[role]);
            return;
        }
    }
    if (req->too_large) {
        hg_api_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", "the body"
                     " is larger than api.body_limit (%" PRIu64 " bytes)",
                     conf->api.body_limit);
        return;
    }
    req->route = route;
    if (route->handler != NULL) {
        route->handler(api, req);
    }
}

static enum MHD_Result
hg_api_metrics(hg_api_t *api, struct MHD_Connection *conn)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    if (out == NULL) {
        return MHD_NO;
    }
    if (hg_master_render_metrics(api->master, out) != HG_OK) {
        fclose(out);
        free(text);
        return MHD_NO;
    }
    if (fclose(out) != 0) {
        free(text);
        return MHD_NO;
    }
    return hg_api_send(conn, MHD_HTTP_OK,
                       "text/plain; version=0.0.4; charset=utf-8", text, len);
}

/* --- server-sent events -------------------------------------------------- */

/* libmicrohttpd asks for more of a client's stream: what is there, or the
 * connection parked until a notice comes (returning 0 without parking
 * would turn the loop into a busy one). */
static ssize_t
hg_api_sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    hg_api_sse_t *c = cls;
    size_t n = c->len - c->off;

    HG_UNUSED(pos);
    if (c->dropped) {
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (n == 0) {
        c->suspended = true;
        MHD_suspend_connection(c->conn);
        return 0;
    }
    n = n < max ? n : max;
    memcpy(buf, c->buf + c->off, n);
    c->off += n;
    if (c->off == c->len) {
        c->off = c->len = 0;
    }
    return (ssize_t) n;
}

static void
hg_api_sse_free(void *cls)
{
    hg_api_sse_t *c = cls;

    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else if (c->api != NULL) {
        c->api->sse = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    free(c->buf);
    free(c);
}

/* TEXT (LEN bytes) for client C: appended, or C dropped when it does not
 * fit what C has left unread; a parked client is woken. */
static void
hg_api_sse_push(hg_api_sse_t *c, const char *text, size_t len)
{
    if (c->dropped) {
        return;
    }
    if (c->off > 0) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (len > HG_API_SSE_BUFFER - c->len) {
        c->dropped = true;
        hg_log(HG_LOG_WARN, "api: an events client fell %d KiB behind: "
               "dropped", HG_API_SSE_BUFFER / 1024);
    } else {
        memcpy(c->buf + c->len, text, len);
        c->len += len;
    }
    hg_api_resume(c->api, c->conn, &c->suspended);
}

static void
hg_api_sse_push_all(hg_api_t *api, const char *text, size_t len)
{
    hg_api_sse_t *c;

    for (c = api->sse; c != NULL; c = c->next) {
        hg_api_sse_push(c, text, len);
    }
}

/* The master's notice, as one event on every stream. */
static void
hg_api_on_notice(void *data, const char *event, const json_t *body)
{
    hg_api_t *api = data;
    char *json, *text;
    int len;

    if (api->sse == NULL) {
        return;
    }
    json = json_dumps(body, JSON_COMPACT);
    len = json != NULL ? asprintf(&text, "event: %s\ndata: %s\n\n", event,
                                  json)
                       : -1;
    free(json);
    if (len < 0) {
        hg_log(HG_LOG_ERROR, "api: out of memory for an event");
        return;
    }
    hg_api_sse_push_all(api, text, (size_t) len);
    free(text);
}

static void
hg_api_on_keepalive(hg_timer_t *timer)
{
    static const char comment[] = ": keepalive\n\n";
    hg_api_t *api = timer->data;

    hg_api_sse_push_all(api, comment, sizeof(comment) - 1);
    hg_timer_set(&api->timers, &api->keepalive,
                 hg_clock_ns(CLOCK_MONOTONIC) + HG_API_SSE_KEEPALIVE_NS);
}

static enum MHD_Result
hg_api_sse_start(hg_api_t *api, hg_api_req_t *req)
{
    static const char hello[] = "retry: 3000\n: hourglass events\n\n";
    struct MHD_Response *resp;
    enum MHD_Result rc;
    hg_api_sse_t *c;

    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->buf = malloc(HG_API_SSE_BUFFER)) == NULL) {
        free(c);
        return MHD_NO;
    }
    c->api = api;
    c->conn = req->conn;
    memcpy(c->buf, hello, sizeof(hello) - 1);
    c->len = sizeof(hello) - 1;
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096,
                                             hg_api_sse_read, c,
                                             hg_api_sse_free);
    if (resp == NULL) {
        free(c->buf);
        free(c);
        return MHD_NO;
    }
    c->next = api->sse;
    if (api->sse != NULL) {
        api->sse->prev = c;
    }
    api->sse = c;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    rc = MHD_queue_response(req->conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    if (!hg_timer_pending(&api->keepalive)) {
        hg_timer_set(&api->timers, &api->keepalive,
                     hg_clock_ns(CLOCK_MONOTONIC) + HG_API_SSE_KEEPALIVE_NS);
    }
    return rc;
}

static enum MHD_Result
hg_api_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                  const char *method, const char *version,
                  const char *upload_data, size_t *upload_data_size,
                  void **con_cls)
{
    hg_api_t *api = cls;
    hg_api_req_t *req = *con_cls;
    uint64_t limit = hg_master_conf(api->master)->api.body_limit;
    char *grown;

    HG_UNUSED(version);
    if (req == NULL) {
        req = calloc(1, sizeof(*req));
        if (req == NULL) {
            return MHD_NO;
        }
        req->api = api;
        req->conn = conn;
        req->next = api->reqs;
        if (api->reqs != NULL) {
            api->reqs->prev = req;
        }
        api->reqs = req;
        *con_cls = req;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!req->too_large && req->len + *upload_data_size <= limit) {
            grown = realloc(req->body, req->len + *upload_data_size + 1);
            if (grown == NULL) {
                return MHD_NO;
            }
            req->body = grown;
            memcpy(req->body + req->len, upload_data, *upload_data_size);
            req->len += *upload_data_size;
            req->body[req->len] = '\0';
        } else {
            req->too_large = true;  /* read to the end, kept nowhere */
            free(req->body);
            req->body = NULL;
            req->len = 0;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!req->answered && !req->waiting) {
        hg_api_dispatch(api, req, method, url);
        if (!req->answered && req->route != NULL
            && req->route->handler == NULL)
        {
            return hg_api_metrics(api, conn);
        }
        if (!req->answered && req->sse) {
            return hg_api_sse_start(api, req);
        }
    }
    if (req->waiting && !req->answered) {
        req->suspended = true;
        MHD_suspend_connection(conn);
        return MHD_YES;
    }
    return hg_api_send_json(req);
}

static void
hg_api_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    hg_api_req_t *req = *con_cls;

    HG_UNUSED(cls);
    HG_UNUSED(conn);
    HG_UNUSED(toe);
    if (req == NULL) {
        return;
    }
    *con_cls = NULL;
    req->conn = NULL;
    if (req->waiting) {
        return;                     /* freed when the master replies */
    }
    hg_api_req_unlink(req);
    hg_api_req_free(req);
}

/* --- the description ------------------------------------------------------ */

/* PATTERN ("/jobs/{}") as OpenAPI writes it ("/jobs/{id}"). */
static void
hg_api_openapi_path(const char *pattern, char *out, size_t len)
{
    const char *brace = strstr(pattern, "{}");

    if (brace == NULL) {
        snprintf(out, len, "%s", pattern);
    } else {
        snprintf(out, len, "%.*s{id}%s", (int) (brace - pattern), pattern,
                 brace + 2);
    }
}

int
hg_api_check_description(char *err, size_t errlen)
{
    return hg_api_check_description_of(hg_openapi_text, err, errlen);
}

int
hg_api_check_description_of(const char *text, char *err, size_t errlen)
{
    const hg_api_route_t *r;
    const json_t *op, *role;
    const char *path, *method;
    json_t *doc, *paths, *ops;
    char want[256], lower[16];
    size_t i, described = 0, j;
    int rc = HG_ERROR;

    doc = json_loads(text, 0, NULL);
    paths = json_object_get(doc, "paths");
    if (!json_is_object(paths)) {
        snprintf(err, errlen, "the OpenAPI description has no paths");
        goto done;
    }
    for (i = 0; i < HG_NELEMS(hg_api_routes); i++) {
        r = &hg_api_routes[i];
        hg_api_openapi_path(r->path, want, sizeof(want));
        for (j = 0; r->method[j] != '\0' && j < sizeof(lower) - 1; j++) {
            lower[j] = (char) tolower((unsigned char) r->method[j]);
        }
        lower[j] = '\0';
        op = json_object_get(json_object_get(paths, want), lower);
        role = json_object_get(op, "x-hourglass-role");
        if (op == NULL) {
            snprintf(err, errlen, "%s %s is served but not described",
                     r->method, want);
            goto done;
        }
        if (!json_is_string(role)
            || strcmp(json_string_value(role), hg_api_role_names[r->role])
               != 0)
        {
            snprintf(err, errlen, "%s %s: described with role %s, served "
                     "with %s", r->method, want,
                     json_is_string(role) ? json_string_value(role) : "none",
                     hg_api_role_names[r->role]);
            goto done;
        }
    }
    json_object_foreach(paths, path, ops) {
        described += json_object_size(ops);
    }
    if (described != HG_NELEMS(hg_api_routes)) {
        json_object_foreach(paths, path, ops) {
            json_object_foreach(ops, method, op) {
                bool known = false;
                for (i = 0; i < HG_NELEMS(hg_api_routes) && !known; i++) {
                    hg_api_openapi_path(hg_api_routes[i].path, want,
                                        sizeof(want));
                    known = strcmp(want, path) == 0
                            && strcasecmp(hg_api_routes[i].method, method)
                               == 0;
                }
                if (!known) {
                    snprintf(err, errlen, "%s %s is described but not "
                             "served", method, path);
                    goto done;
                }
            }
        }
    }
    rc = HG_OK;

done:
    json_decref(doc);
    return rc;
}

/* --- the loop's side ------------------------------------------------------ */

/* libmicrohttpd's next timeout, on the loop's timer. */
static void
hg_api_rearm(hg_api_t *api)
{
    MHD_UNSIGNED_LONG_LONG ms;

    if (MHD_get_timeout(api->mhd, &ms) == MHD_YES) {
        hg_timer_set(&api->timers, &api->timer,
                     hg_clock_ns(CLOCK_MONOTONIC)
                     + (int64_t) ms * HG_NSEC_PER_MSEC);
    } else {
        hg_timer_cancel(&api->timer);
    }
}

static void
hg_api_run(hg_api_t *api)
{
    if (MHD_run(api->mhd) != MHD_YES) {
        hg_log(HG_LOG_WARN, "api: libmicrohttpd could not run a turn");
    }
    hg_api_rearm(api);
}

static void
hg_api_on_event(hg_event_t *ev, uint32_t events)
{
    HG_UNUSED(events);
    hg_api_run(ev->data);
}

static void
hg_api_on_timer(hg_timer_t *timer)
{
    hg_api_run(timer->data);
}

/* LISTEN ("HOST:PORT", "[V6]:PORT") as a bound, listening, non-blocking
 * socket; -1 with the reason in err. */
int
hg_api_listen(const char *listen_on, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    char host[64];
    const char *colon, *h = listen_on;
    size_t hlen;
    long port;
    socklen_t slen;
    int fd, one = 1;

    colon = strrchr(listen_on, ':');
    if (colon == NULL) {
        snprintf(err, errlen, "api.listen \"%s\": HOST:PORT expected",
                 listen_on);
        return -1;
    }
    hlen = (size_t) (colon - listen_on);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen >= sizeof(host)) {
        snprintf(err, errlen, "api.listen \"%s\": host too long", listen_on);
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    port = strtol(colon + 1, NULL, 10);
    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, host, &((struct sockaddr_in *) &ss)->sin_addr)
        == 1)
    {
        ss.ss_family = AF_INET;
        ((struct sockaddr_in *) &ss)->sin_port = htons((uint16_t) port);
        slen = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, host,
                         &((struct sockaddr_in6 *) &ss)->sin6_addr) == 1)
    {
        ss.ss_family = AF_INET6;
        ((struct sockaddr_in6 *) &ss)->sin6_port = htons((uint16_t) port);
        slen = sizeof(struct sockaddr_in6);
    } else {
        snprintf(err, errlen, "api.listen \"%s\": the host must be an IPv4 "
                 "or IPv6 address", listen_on);
        return -1;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0
        || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0
        || bind(fd, (struct sockaddr *) &ss, slen) != 0
        || listen(fd, 128) != 0)
    {
        snprintf(err, errlen, "api.listen %s: %s", listen_on,
                 strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

/* PATH's text, whole, NUL-terminated; NULL with the reason in err. */
static char *
hg_api_read_pem(const char *what, const char *path, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "re"), *m;
    bool failed;
    int c;

    if (f == NULL) {
        snprintf(err, errlen, "api.tls.%s %s: %s", what, path,
                 strerror(errno));
        return NULL;
    }
    m = open_memstream(&text, &len);
    if (m == NULL) {
        snprintf(err, errlen, "api.tls.%s %s: out of memory", what, path);
        fclose(f);
        return NULL;
    }
    while ((c = getc(f)) != EOF) {
        putc(c, m);
    }
    /* the stream is closed whatever happened: it owns TEXT until then */
    failed = ferror(f) != 0;
    if (fclose(m) != 0 || failed) {
        snprintf(err, errlen, "api.tls.%s %s: cannot be read%s%s", what,
                 path, failed && errno != 0 ? ": " : "",
                 failed && errno != 0 ? strerror(errno) : "");
        fclose(f);
        free(text);
        return NULL;
    }
    fclose(f);
    if (strstr(text, "-----BEGIN ") == NULL) {
        snprintf(err, errlen, "api.tls.%s %s: not a PEM file (no "
                 "\"-----BEGIN\" line)", what, path);
        free(text);
        return NULL;
    }
    return text;
}

int
hg_api_check_tls(const hg_conf_t *conf, char *err, size_t errlen)
{
    char *cert, *key;

    if (!conf->api.enabled || !conf->api.tls) {
        return HG_OK;
    }
    cert = hg_api_read_pem("cert", conf->api.tls_cert, err, errlen);
    key = cert != NULL ? hg_api_read_pem("key", conf->api.tls_key, err,
                                         errlen)
                       : NULL;
    free(cert);
    free(key);
    return key != NULL ? HG_OK : HG_ERROR;
}

hg_api_t *
hg_api_open(hg_master_t *master, hg_event_loop_t *loop, char *err,
            size_t errlen)
{
    const hg_conf_t *conf = hg_master_conf(master);
    const union MHD_DaemonInfo *info;
    hg_api_t *api;

    api = calloc(1, sizeof(*api));
    if (api == NULL) {
        snprintf(err, errlen, "api: out of memory");
        return NULL;
    }
    api->master = master;
    api->fd = hg_api_listen(conf->api.listen, err, errlen);
    if (api->fd < 0) {
        free(api);
        return NULL;
    }
    if (conf->api.tls) {
        api->tls_cert = hg_api_read_pem("cert", conf->api.tls_cert, err,
                                        errlen);
        api->tls_key = api->tls_cert != NULL
                       ? hg_api_read_pem("key", conf->api.tls_key, err,
                                         errlen)
                       : NULL;
        if (api->tls_key == NULL) {
            hg_api_close(api);
            hg_api_free(api);
            return NULL;
        }
        api->mhd = MHD_start_daemon(
            MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TLS, 0, NULL,
            NULL, hg_api_on_request, api,
            MHD_OPTION_LISTEN_SOCKET, api->fd,
            MHD_OPTION_HTTPS_MEM_CERT, api->tls_cert,
            MHD_OPTION_HTTPS_MEM_KEY, api->tls_key,
            MHD_OPTION_CONNECTION_LIMIT, (unsigned) HG_API_CONN_LIMIT,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) HG_API_CONN_TIMEOUT_S,
            MHD_OPTION_NOTIFY_COMPLETED, hg_api_on_completed, api,
            MHD_OPTION_END);
    } else {
        api->mhd = MHD_start_daemon(
            MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
            hg_api_on_request, api,
            MHD_OPTION_LISTEN_SOCKET, api->fd,
            MHD_OPTION_CONNECTION_LIMIT, (unsigned) HG_API_CONN_LIMIT,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) HG_API_CONN_TIMEOUT_S,
            MHD_OPTION_NOTIFY_COMPLETED, hg_api_on_completed, api,
            MHD_OPTION_END);
    }
    info = api->mhd != NULL
           ? MHD_get_daemon_info(api->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (info == NULL
        || hg_timers_init(&api->timers, loop, CLOCK_MONOTONIC) != HG_OK)
    {
        snprintf(err, errlen, "api: cannot start the HTTP%s server on %s%s",
                 conf->api.tls ? "S" : "", conf->api.listen, conf->api.tls
                 ? " (do api.tls.cert and api.tls.key make a pair?)" : "");
        goto failed;
    }
    api->timers_ready = true;
    hg_timer_init(&api->timer, hg_api_on_timer, api);
    hg_timer_init(&api->keepalive, hg_api_on_keepalive, api);
    hg_master_on_notice(master, hg_api_on_notice, api);
    if (hg_event_add(loop, &api->ev, info->epoll_fd, EPOLLIN, hg_api_on_event,
                     api) != HG_OK)
    {
        snprintf(err, errlen, "api: cannot watch the HTTP server: %s",
                 strerror(errno));
        goto failed;
    }
    hg_api_rearm(api);
    hg_log(HG_LOG_INFO, "api: listening on %s", conf->api.listen);
    return api;

failed:
    hg_api_close(api);
    hg_api_free(api);
    return NULL;
}

void
hg_api_close(hg_api_t *api)
{
    hg_api_req_t *req;

    hg_api_sse_t *c;

    if (api == NULL) {
        return;
    }
    hg_master_on_notice(api->master, NULL, NULL);
    if (api->ev.active) {
        hg_event_del(&api->ev);
    }
    /* every stream ends: its reader says so once resumed */
    for (c = api->sse; c != NULL; c = c->next) {
        c->dropped = true;
        if (c->suspended) {
            c->suspended = false;
            MHD_resume_connection(c->conn);
        }
    }
    if (api->timers_ready) {
        hg_timer_cancel(&api->keepalive);
        hg_timer_cancel(&api->timer);
        hg_timers_close(&api->timers);
        api->timers_ready = false;
    }
    /* a connection waiting for the master is resumed so that it can be
     * closed; its request stays until the master's reply frees it */
    for (req = api->reqs; req != NULL; req = req->next) {
        if (req->suspended) {
            req->suspended = false;
            MHD_resume_connection(req->conn);
        }
    }
    if (api->mhd != NULL) {
        MHD_stop_daemon(api->mhd);
        api->mhd = NULL;
    }
    if (api->fd >= 0) {
        close(api->fd);
        api->fd = -1;
    }
}

void
hg_api_free(hg_api_t *api)
{
    hg_api_req_t *req;

    if (api == NULL) {
        return;
    }
    while ((req = api->reqs) != NULL) {
        api->reqs = req->next;
        hg_api_req_free(req);
    }
    free(api->tls_cert);
    free(api->tls_key);
    free(api);
}
