/*
 * hg_api.c: the admin HTTP API's server (/api/v1, /healthz, /metrics,
 * the dashboard's files).
 *
 * It owns the listening socket, libmicrohttpd's daemon in external epoll
 * mode (its one epoll descriptor watched by the master's loop, its
 * timeouts on a timer of the same loop: no thread of libmicrohttpd's
 * touches anything), TLS, bodies read up to api.body_limit, and a
 * request's way through: access, route, handler, answer. An answer that
 * waits for the store suspends its connection until the master's reply
 * resumes it. What each route does is in the hg_api_*.c files that
 * hg_api_http.h lists.
 *
 * It never blocks the loop, never logs a token, and never reaches into
 * the master's state.
 */

#include "hg_core.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "hg_api_http.h"
#include "hg_log.h"

/* Connections at once, and from one address: one client cannot take
 * them all (64 of a load test's connections fit). */
#define HG_API_CONN_LIMIT     256
#define HG_API_CONN_PER_IP    128

/*
 * The API's share of the loop. libmicrohttpd serves every ready
 * connection in one turn, so a flood of clients would be the whole loop
 * and the schedule would wait behind it. Its turns are paced instead: a
 * request met once a turn has taken HG_API_TURN_NS waits (its connection
 * parked) for the next turn, and after a turn that took D the next one
 * comes no sooner than D * HG_API_PACE later, the API's descriptor out of
 * the loop meanwhile. When the loop is quiet a turn takes microseconds and
 * so does the pause; under a flood the API has a tenth of the loop, and
 * answers more slowly rather than making jobs late (with a pace of 3 the
 * lag p99 under wrk was 1.23x the quiet run's on an idle machine; with 9,
 * 1.11x and 0.79x).
 *
 * And the schedule goes first: while executions wait for a worker, or a
 * fire is due within about a turn's length (a turn begun just before would
 * hold it), a turn waits, HG_API_GIVE_WAY_NS at most at a time, so that
 * the API is still answered when the schedule never rests.
 */
#define HG_API_TURN_NS      (2 * HG_NSEC_PER_MSEC)
#define HG_API_PACE         9
#define HG_API_GIVE_WAY_NS  (50 * HG_NSEC_PER_MSEC)
#define HG_API_RECHECK_NS   HG_NSEC_PER_MSEC

/* Whether a request met now waits for the next turn. */
static bool
hg_api_turn_spent(const hg_api_t *api)
{
    return hg_clock_ns(CLOCK_MONOTONIC) - api->turn_start_ns
           > HG_API_TURN_NS;
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
            const char *auth = MHD_lookup_connection_value(
                req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);

            /* Never says which part was wrong, nor echoes the token. */
            hg_api_error(req, MHD_HTTP_UNAUTHORIZED, "unauthorized", "%s",
                         auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0
                         ? "this bearer token is not one of api.tokens"
                         : "a bearer token is required (Authorization: "
                           "Bearer ...)");
            return;
        }
        if (role < route->role) {
            hg_api_error(req, MHD_HTTP_FORBIDDEN, "forbidden", "this needs "
                         "the role %s; the token's is %s",
                         hg_api_role_names[route->role],
                         hg_api_role_names[role]);
            return;
        }
        req->role = role;
    }
    if (req->too_large) {
        hg_api_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", "the body"
                     " is larger than api.body_limit (%" PRIu64 " bytes)",
                     conf->api.body_limit);
        return;
    }
    req->route = route;
    if (route->kind == HG_API_JSON) {
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
    hg_api_conn_whole(conn);
    if (!req->answered && !req->waiting && hg_api_turn_spent(api)) {
        req->deferred = true;
        req->suspended = true;
        api->ndeferred++;
        MHD_suspend_connection(conn);
        return MHD_YES;
    }
    if (!req->answered && !req->waiting) {
        hg_api_dispatch(api, req, method, url);
        if (!req->answered && req->route != NULL) {
            switch (req->route->kind) {
            case HG_API_METRICS:
                return hg_api_metrics(api, conn);
            case HG_API_EVENTS:
                return hg_api_events_start(api, req);
            case HG_API_STATIC:
                return hg_api_static(api, req);
            case HG_API_JSON:
                break;
            }
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
    HG_UNUSED(toe);
    hg_api_conn_next(conn);
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



/* --- the loop's side ------------------------------------------------------ */

/* libmicrohttpd's next timeout, or the end of the pause, on the loop's
 * timer. */
static void
hg_api_rearm(hg_api_t *api)
{
    MHD_UNSIGNED_LONG_LONG ms;
    int64_t at = INT64_MAX;

    if (MHD_get_timeout(api->mhd, &ms) == MHD_YES) {
        at = hg_clock_ns(CLOCK_MONOTONIC) + (int64_t) ms * HG_NSEC_PER_MSEC;
    }
    /* parked requests, or the descriptor out of the loop: the pause's
     * end is a turn */
    if ((api->ndeferred > 0 || api->resting) && at > api->rest_until_ns) {
        at = api->rest_until_ns;
    }
    if (at == INT64_MAX) {
        hg_timer_cancel(&api->timer);
        return;
    }
    hg_timer_set(&api->timers, &api->timer,
                 at > api->rest_until_ns ? at : api->rest_until_ns);
}

/* Whether the turn due NOW waits for the schedule (see the pace). */
static bool
hg_api_gives_way(hg_api_t *api, int64_t now)
{
    if (!hg_master_busy(api->master, api->long_turn_ns + HG_API_RECHECK_NS))
    {
        api->giving_way_since = 0;
        return false;
    }
    if (api->giving_way_since == 0) {
        api->giving_way_since = now;
    }
    if (now - api->giving_way_since >= HG_API_GIVE_WAY_NS) {
        api->giving_way_since = 0;
        return false;
    }
    api->rest_until_ns = now + HG_API_RECHECK_NS;
    return true;
}

static void
hg_api_run(hg_api_t *api)
{
    int64_t now = hg_clock_ns(CLOCK_MONOTONIC), turn;
    hg_api_req_t *req;

    if (now < api->rest_until_ns || hg_api_gives_way(api, now)) {
        if (!api->resting && hg_event_modify(&api->ev, 0) == HG_OK) {
            api->resting = true;
        }
        hg_api_rearm(api);
        return;
    }
    if (api->resting && hg_event_modify(&api->ev, EPOLLIN) == HG_OK) {
        api->resting = false;
    }
    for (req = api->reqs; req != NULL && api->ndeferred > 0;
         req = req->next)
    {
        if (req->deferred) {
            req->deferred = false;
            api->ndeferred--;
            hg_api_resume(api, req->conn, &req->suspended);
        }
    }
    api->turn_start_ns = now;
    if (MHD_run(api->mhd) != MHD_YES) {
        hg_log(HG_LOG_WARN, "api: libmicrohttpd could not run a turn");
    }
    now = hg_clock_ns(CLOCK_MONOTONIC);
    turn = now - api->turn_start_ns;
    /* the longest recent turn, forgotten slowly: what a turn begun now
     * may take (a page of metrics, not only a page of jobs) */
    api->long_turn_ns = turn > api->long_turn_ns
                        ? turn : api->long_turn_ns - api->long_turn_ns / 16;
    api->rest_until_ns = now + turn * HG_API_PACE;
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
    unsigned timeout_s;
    hg_api_t *api;

    api = calloc(1, sizeof(*api));
    if (api == NULL) {
        snprintf(err, errlen, "api: out of memory");
        return NULL;
    }
    api->master = master;
    api->timeout_ns = conf->api.timeout_ms * HG_NSEC_PER_MSEC;
    timeout_s = (unsigned) ((conf->api.timeout_ms + 999) / 1000);
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
            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned) HG_API_CONN_PER_IP,
            MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
            MHD_OPTION_NOTIFY_COMPLETED, hg_api_on_completed, api,
            MHD_OPTION_NOTIFY_CONNECTION, hg_api_on_connection, api,
            MHD_OPTION_END);
    } else {
        api->mhd = MHD_start_daemon(
            MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
            hg_api_on_request, api,
            MHD_OPTION_LISTEN_SOCKET, api->fd,
            MHD_OPTION_CONNECTION_LIMIT, (unsigned) HG_API_CONN_LIMIT,
            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned) HG_API_CONN_PER_IP,
            MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
            MHD_OPTION_NOTIFY_COMPLETED, hg_api_on_completed, api,
            MHD_OPTION_NOTIFY_CONNECTION, hg_api_on_connection, api,
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
    if (hg_api_static_load(api, conf->prefix) != HG_OK) {
        snprintf(err, errlen, "api: out of memory reading html/");
        goto failed;
    }
    api->timers_ready = true;
    hg_timer_init(&api->timer, hg_api_on_timer, api);
    hg_timer_init(&api->keepalive, hg_api_on_keepalive, api);
    hg_timer_init(&api->sweep, hg_api_on_sweep, api);
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

    if (api == NULL) {
        return;
    }
    hg_master_on_notice(api->master, NULL, NULL);
    if (api->ev.active) {
        hg_event_del(&api->ev);
    }
    hg_api_events_end(api);
    if (api->timers_ready) {
        hg_timer_cancel(&api->keepalive);
        hg_timer_cancel(&api->sweep);
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
    hg_api_static_free(api);
    free(api->tls_cert);
    free(api->tls_key);
    free(api);
}
