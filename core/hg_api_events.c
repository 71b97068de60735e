/*
 * hg_api_events.c: GET /api/v1/events, the master's notices (execution
 * started and finished, job changed, reload) as server-sent events.
 *
 * Each client has a bounded buffer of what it has not read: a client
 * that falls further behind is dropped, never allowed to grow memory or
 * to hold the loop. A client with nothing to read is parked, woken by the
 * next notice or keepalive.
 */

#include "hg_core.h"

#include "hg_api_http.h"
#include "hg_log.h"
#include "hg_json.h"

/* A client's bound: what it has not read yet, beyond which it is dropped
 * rather than let grow (or hold the loop). */
#define HG_API_SSE_BUFFER        (256 * 1024)
/* A comment this often on every stream: a client that has gone is found
 * by the write that fails (a suspended connection notices nothing by
 * itself). */
#define HG_API_SSE_KEEPALIVE_NS  (15 * HG_NSEC_PER_SEC)

/* One client of GET /api/v1/events: what it has not read yet. */
struct hg_api_sse_s {
    hg_api_t *api;
    struct MHD_Connection *conn;
    struct hg_api_sse_s *prev, *next;
    char *buf;                      /* HG_API_SSE_BUFFER bytes */
    size_t off, len;                /* unread: buf[off .. len) */
    bool suspended;                 /* nothing to send: parked */
    bool dropped;                   /* fell behind, or the API closes */
};
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
void
hg_api_on_notice(void *data, const char *event, const json_t *body)
{
    hg_api_t *api = data;
    char *json, *text;
    int len;

    if (api->sse == NULL) {
        return;
    }
    json = hg_json_dumps(body, JSON_COMPACT);
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

void
hg_api_on_keepalive(hg_timer_t *timer)
{
    static const char comment[] = ": keepalive\n\n";
    hg_api_t *api = timer->data;

    hg_api_sse_push_all(api, comment, sizeof(comment) - 1);
    hg_timer_set(&api->timers, &api->keepalive,
                 hg_clock_ns(CLOCK_MONOTONIC) + HG_API_SSE_KEEPALIVE_NS);
}

enum MHD_Result
hg_api_events_start(hg_api_t *api, hg_api_req_t *req)
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

void
hg_api_events_end(hg_api_t *api)
{
    hg_api_sse_t *c;

    /* its reader says so once resumed */
    for (c = api->sse; c != NULL; c = c->next) {
        c->dropped = true;
        if (c->suspended) {
            c->suspended = false;
            MHD_resume_connection(c->conn);
        }
    }
}
