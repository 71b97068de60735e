/*
 * hg_api_conn.c: the admin API's client connections and the bound on how
 * long a request may take to arrive.
 *
 * libmicrohttpd closes a connection that stays idle for api.timeout and
 * refuses connections beyond its limits, but a client that trickles its
 * request a byte at a time (slowloris) is never idle. So each connection
 * remembers when its current request began, and a sweep once a second
 * cuts off (shutdown(2): libmicrohttpd then closes it as any broken
 * connection) every one whose request is still not whole after
 * api.timeout. A request that is whole is out of its reach: a long
 * events stream, or an answer that waits for the store.
 *
 * It never reads or writes a client's socket itself.
 */

#include "hg_core.h"

#include <sys/socket.h>

#include "hg_api_http.h"
#include "hg_log.h"

#define HG_API_SWEEP_NS  HG_NSEC_PER_SEC

struct hg_api_conn_s {
    struct hg_api_conn_s *prev, *next;
    int fd;
    int64_t since_ns;               /* its request began; 0: it is whole */
};

static hg_api_conn_t *
hg_api_conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info;

    info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info != NULL ? info->socket_context : NULL;
}

void
hg_api_on_connection(void *cls, struct MHD_Connection *conn,
                     void **socket_context,
                     enum MHD_ConnectionNotificationCode code)
{
    const union MHD_ConnectionInfo *info;
    hg_api_t *api = cls;
    hg_api_conn_t *c = *socket_context;

    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (c == NULL) {
            return;
        }
        if (c->prev != NULL) {
            c->prev->next = c->next;
        } else {
            api->conns = c->next;
        }
        if (c->next != NULL) {
            c->next->prev = c->prev;
        }
        free(c);
        *socket_context = NULL;
        return;
    }
    info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    c = info != NULL ? calloc(1, sizeof(*c)) : NULL;
    if (c == NULL) {
        return;                     /* the idle timeout still holds it */
    }
    c->fd = info->connect_fd;
    c->since_ns = hg_clock_ns(CLOCK_MONOTONIC);
    c->next = api->conns;
    if (api->conns != NULL) {
        api->conns->prev = c;
    }
    api->conns = c;
    *socket_context = c;
    if (!hg_timer_pending(&api->sweep)) {
        hg_timer_set(&api->timers, &api->sweep,
                     c->since_ns + HG_API_SWEEP_NS);
    }
}

void
hg_api_conn_whole(struct MHD_Connection *conn)
{
    hg_api_conn_t *c = hg_api_conn_of(conn);

    if (c != NULL) {
        c->since_ns = 0;
    }
}

void
hg_api_conn_next(struct MHD_Connection *conn)
{
    hg_api_conn_t *c = hg_api_conn_of(conn);

    if (c != NULL) {
        c->since_ns = hg_clock_ns(CLOCK_MONOTONIC);
    }
}

void
hg_api_on_sweep(hg_timer_t *timer)
{
    hg_api_t *api = timer->data;
    int64_t now = hg_clock_ns(CLOCK_MONOTONIC);
    size_t cut = 0;
    hg_api_conn_t *c;

    for (c = api->conns; c != NULL; c = c->next) {
        if (c->since_ns != 0 && now - c->since_ns > api->timeout_ns) {
            (void) shutdown(c->fd, SHUT_RDWR);
            c->since_ns = 0;
            cut++;
        }
    }
    if (cut > 0) {
        hg_log(HG_LOG_INFO, "api: %zu client%s did not send a whole request "
               "within api.timeout: cut off", cut, cut == 1 ? "" : "s");
        /* libmicrohttpd closes them on its next turn: now */
        hg_timer_set(&api->timers, &api->timer, now);
    }
    if (api->conns != NULL) {
        hg_timer_set(&api->timers, &api->sweep, now + HG_API_SWEEP_NS);
    }
}
