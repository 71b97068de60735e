/*
 * The admin API's inside, shared by its files and by nothing else:
 *
 *   hg_api.c         the server: libmicrohttpd in the master's loop,
 *                    listening, TLS, a request's way in and out
 *   hg_api_conn.c    client connections: the bound on a slow request
 *   hg_api_route.c   the route table (each route's minimum role and kind
 *                    of answer) and its check against api/openapi.json
 *   hg_api_access.c  the allow list and bearer tokens
 *   hg_api_reply.c   answers: the JSON error shape, bodies and query
 *                    arguments, requests waiting for the master's reply
 *   hg_api_events.c  GET /api/v1/events (server-sent events)
 *   hg_api_jobs.c    the /jobs routes
 *   hg_api_runs.c    executions, the queue and dead letters
 *   hg_api_daemon.c  the instance: health, status, stats, reload, the
 *                    description
 *   hg_api_static.c  the dashboard's files (GET /, GET /ui/NAME)
 *
 * Handlers speak to the master only through hg_master.h.
 */

#ifndef HG_API_HTTP_H
#define HG_API_HTTP_H

#include "hg_core.h"

#include <sys/socket.h>

#include <microhttpd.h>

#include "hg_api.h"
#include "hg_event.h"
#include "hg_timer.h"

#define HG_API_ID_MAX         128

typedef enum {
    HG_ROLE_NONE = 0,               /* no token needed */
    HG_ROLE_READ,
    HG_ROLE_EXECUTE,
    HG_ROLE_WRITE,
    HG_ROLE_ADMIN
} hg_api_role_t;

/* How a route answers: JSON built by its handler (most), or a stream of
 * its own kind that the server starts. */
typedef enum {
    HG_API_JSON = 0,
    HG_API_METRICS,                 /* Prometheus text */
    HG_API_EVENTS,                  /* server-sent events */
    HG_API_STATIC                   /* a file of PREFIX/html */
} hg_api_kind_t;

typedef struct hg_api_req_s hg_api_req_t;
typedef void (*hg_api_handler_pt)(hg_api_t *api, hg_api_req_t *req);

/* A route: METHOD PATH, where "{}" in PATH matches one segment (an id). */
typedef struct hg_api_route_s {
    const char *method;
    const char *path;
    hg_api_role_t role;
    hg_api_kind_t kind;
    hg_api_handler_pt handler;      /* HG_API_JSON's */
} hg_api_route_t;

struct hg_api_req_s {
    hg_api_t *api;                  /* NULL: the API closed meanwhile */
    struct MHD_Connection *conn;    /* NULL once the connection ended */
    hg_api_req_t *prev, *next;      /* api->reqs */
    char *body;
    size_t len;
    bool too_large;
    bool waiting;                   /* for the master's reply */
    bool deferred;                  /* for the API's next turn */
    bool suspended;
    /* the answer */
    bool answered;
    unsigned status;
    json_t *answer;
    /* the request */
    char id[HG_API_ID_MAX + 1];     /* the {} segment */
    char token_name[128];
    hg_api_role_t role;             /* the token's, NONE without one */
    const hg_api_route_t *route;
};

typedef struct hg_api_sse_s hg_api_sse_t;
typedef struct hg_api_conn_s hg_api_conn_t;

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
    hg_api_conn_t *conns;           /* every client connection */
    hg_timer_t sweep;               /* cuts off slow requests */
    int64_t timeout_ns;             /* api.timeout */
    int64_t turn_start_ns;          /* libmicrohttpd's turn began */
    int64_t rest_until_ns;          /* no turn before (the pace) */
    int64_t long_turn_ns;           /* the longest recent turn */
    int64_t giving_way_since;       /* to the schedule, or 0 */
    size_t ndeferred;               /* requests parked for the next turn */
    bool resting;                   /* its descriptor out of the loop */
    char *tls_cert;                 /* PEM texts: libmicrohttpd keeps */
    char *tls_key;                  /* pointers to them while it runs */
    struct hg_api_file_s *files;    /* the dashboard's, read at the start */
    size_t nfiles;
};

/* hg_api_route.c */
/* The route for METHOD URL, its {} segment into ID; *PATH_KNOWN whether
 * another method has the path. */
const hg_api_route_t *hg_api_route(const char *method, const char *url,
                                   char *id, size_t idlen, bool *path_known);

/* hg_api_access.c */
extern const char *const hg_api_role_names[HG_ROLE_ADMIN + 1];
bool hg_api_allowed(const hg_conf_t *conf, struct MHD_Connection *conn);
/* The role of the request's bearer token (its name into REQ), or NONE. */
hg_api_role_t hg_api_token_role(const hg_conf_t *conf,
                                struct MHD_Connection *conn,
                                hg_api_req_t *req);

/* hg_api_reply.c */
void hg_api_answer(hg_api_req_t *req, unsigned status, json_t *answer);
void hg_api_error(hg_api_req_t *req, unsigned status, const char *code,
                  const char *fmt, ...) HG_PRINTF(4, 5);
enum MHD_Result hg_api_send(struct MHD_Connection *conn, unsigned status,
                            const char *type, char *text, size_t len);
enum MHD_Result hg_api_send_json(hg_api_req_t *req);
void hg_api_req_free(hg_api_req_t *req);
void hg_api_req_unlink(hg_api_req_t *req);
void hg_api_resume(hg_api_t *api, struct MHD_Connection *conn,
                   bool *suspended);
void hg_api_reply_ok(void *data, int rc, const json_t *answer);
void hg_api_reply_created(void *data, int rc, const json_t *answer);
void hg_api_wait(hg_api_req_t *req, int rc);
/* 202 with {job, execution} for the execution EXEC_ID the request
 * started, once the store has it (kill -9 loses nothing acknowledged). */
void hg_api_accept(hg_api_t *api, hg_api_req_t *req, const char *exec_id);
/* The same for an enqueue: in a cluster a unique key the store refused
 * as the record committed is a 409, as a local one is. */
void hg_api_accept_enqueued(hg_api_t *api, hg_api_req_t *req,
                            const char *exec_id);
json_t *hg_api_body(hg_api_req_t *req);
void hg_api_actor(const hg_api_req_t *req, char *actor, size_t len);
const char *hg_api_arg(hg_api_req_t *req, const char *name);
bool hg_api_page(hg_api_req_t *req, size_t *page, size_t *size);

/* hg_api_conn.c */
void hg_api_on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode code);
/* The connection's request has arrived whole; it is done (the next one
 * begins). */
void hg_api_conn_whole(struct MHD_Connection *conn);
void hg_api_conn_next(struct MHD_Connection *conn);
void hg_api_on_sweep(hg_timer_t *timer);

/* hg_api_events.c */
enum MHD_Result hg_api_events_start(hg_api_t *api, hg_api_req_t *req);
void hg_api_on_notice(void *data, const char *event, const json_t *body);
void hg_api_on_keepalive(hg_timer_t *timer);
/* Every stream ends (the API closes). */
void hg_api_events_end(hg_api_t *api);

/* hg_api_static.c */
typedef struct hg_api_file_s hg_api_file_t;
/* PREFIX/html's files into memory, once (none when there is no html/);
 * HG_ERROR only when out of memory. */
int hg_api_static_load(hg_api_t *api, const char *prefix);
void hg_api_static_free(hg_api_t *api);
/* The file the route names (REQ's id, or index.html), or 404. */
enum MHD_Result hg_api_static(hg_api_t *api, hg_api_req_t *req);

/* the handlers: hg_api_jobs.c, hg_api_runs.c, hg_api_daemon.c */
void hg_api_jobs_list(hg_api_t *api, hg_api_req_t *req);
void hg_api_job_post(hg_api_t *api, hg_api_req_t *req);
void hg_api_job_get(hg_api_t *api, hg_api_req_t *req);
void hg_api_job_put(hg_api_t *api, hg_api_req_t *req);
void hg_api_job_patch(hg_api_t *api, hg_api_req_t *req);
void hg_api_job_delete(hg_api_t *api, hg_api_req_t *req);
void hg_api_job_trigger(hg_api_t *api, hg_api_req_t *req);
void hg_api_job_pause(hg_api_t *api, hg_api_req_t *req);
void hg_api_job_resume(hg_api_t *api, hg_api_req_t *req);
void hg_api_job_stop(hg_api_t *api, hg_api_req_t *req);
void hg_api_job_executions(hg_api_t *api, hg_api_req_t *req);
void hg_api_export(hg_api_t *api, hg_api_req_t *req);
void hg_api_import(hg_api_t *api, hg_api_req_t *req);
void hg_api_execution_get(hg_api_t *api, hg_api_req_t *req);
void hg_api_dead_list(hg_api_t *api, hg_api_req_t *req);
void hg_api_dead_retry(hg_api_t *api, hg_api_req_t *req);
void hg_api_dead_purge(hg_api_t *api, hg_api_req_t *req);
void hg_api_dead_retry_one(hg_api_t *api, hg_api_req_t *req);
void hg_api_dead_purge_one(hg_api_t *api, hg_api_req_t *req);
void hg_api_enqueue(hg_api_t *api, hg_api_req_t *req);
void hg_api_queue_list(hg_api_t *api, hg_api_req_t *req);
void hg_api_dequeue(hg_api_t *api, hg_api_req_t *req);
void hg_api_healthz(hg_api_t *api, hg_api_req_t *req);
void hg_api_status(hg_api_t *api, hg_api_req_t *req);
void hg_api_stats(hg_api_t *api, hg_api_req_t *req);
void hg_api_reload(hg_api_t *api, hg_api_req_t *req);
void hg_api_openapi(hg_api_t *api, hg_api_req_t *req);

#endif /* HG_API_HTTP_H */
