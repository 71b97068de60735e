/*
 * hg_event.c: the epoll loop. Never blocks anywhere but in epoll_wait.
 */

#include "hg_core.h"

#include "hg_event.h"

#define HG_EVENT_BATCH  256
#define HG_EVENT_HOOKS  8

struct hg_event_loop_s {
    int epfd;
    uint64_t turn;
    size_t nhooks;
    hg_event_hook_pt hooks[HG_EVENT_HOOKS];
    void *hook_data[HG_EVENT_HOOKS];
    struct epoll_event ready[HG_EVENT_BATCH];
};

hg_event_loop_t *
hg_event_loop_create(void)
{
    hg_event_loop_t *loop;

    loop = calloc(1, sizeof(*loop));
    if (loop == NULL) {
        return NULL;
    }
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        free(loop);
        return NULL;
    }
    loop->turn = 1;
    return loop;
}

void
hg_event_loop_destroy(hg_event_loop_t *loop)
{
    if (loop == NULL) {
        return;
    }
    close(loop->epfd);
    free(loop);
}

int
hg_event_add(hg_event_loop_t *loop, hg_event_t *ev, int fd, uint32_t events,
             hg_event_handler_pt handler, void *data)
{
    struct epoll_event ee;

    memset(&ee, 0, sizeof(ee));
    ee.events = events;
    ee.data.ptr = ev;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ee) < 0) {
        return HG_ERROR;
    }
    ev->fd = fd;
    ev->events = events;
    ev->active = true;
    ev->turn_deleted = 0;
    ev->turn_added = loop->turn;
    ev->handler = handler;
    ev->data = data;
    ev->loop = loop;
    return HG_OK;
}

int
hg_event_modify(hg_event_t *ev, uint32_t events)
{
    struct epoll_event ee;

    if (!ev->active) {
        return HG_ERROR;
    }
    if (ev->events == events) {
        return HG_OK;
    }
    memset(&ee, 0, sizeof(ee));
    ee.events = events;
    ee.data.ptr = ev;
    if (epoll_ctl(ev->loop->epfd, EPOLL_CTL_MOD, ev->fd, &ee) < 0) {
        return HG_ERROR;
    }
    ev->events = events;
    return HG_OK;
}

int
hg_event_del(hg_event_t *ev)
{
    int rc = HG_OK;

    if (!ev->active) {
        return HG_OK;
    }
    if (epoll_ctl(ev->loop->epfd, EPOLL_CTL_DEL, ev->fd, NULL) < 0
        && errno != EBADF && errno != ENOENT)
    {
        rc = HG_ERROR;
    }
    ev->active = false;
    ev->turn_deleted = ev->loop->turn;
    return rc;
}

int
hg_event_loop_before_wait(hg_event_loop_t *loop, hg_event_hook_pt hook,
                          void *data)
{
    if (loop->nhooks == HG_EVENT_HOOKS) {
        return HG_ERROR;
    }
    loop->hooks[loop->nhooks] = hook;
    loop->hook_data[loop->nhooks] = data;
    loop->nhooks++;
    return HG_OK;
}

void
hg_event_loop_remove_hook(hg_event_loop_t *loop, hg_event_hook_pt hook,
                          void *data)
{
    size_t i;

    for (i = 0; i < loop->nhooks; i++) {
        if (loop->hooks[i] == hook && loop->hook_data[i] == data) {
            memmove(&loop->hooks[i], &loop->hooks[i + 1],
                    (loop->nhooks - i - 1) * sizeof(loop->hooks[0]));
            memmove(&loop->hook_data[i], &loop->hook_data[i + 1],
                    (loop->nhooks - i - 1) * sizeof(loop->hook_data[0]));
            loop->nhooks--;
            return;
        }
    }
}

int
hg_event_loop_turn(hg_event_loop_t *loop, int timeout_ms)
{
    size_t i;
    int n;

    for (i = 0; i < loop->nhooks; i++) {
        loop->hooks[i](loop->hook_data[i]);
    }
    n = epoll_wait(loop->epfd, loop->ready, HG_EVENT_BATCH, timeout_ms);
    /* A new turn begins with the events it reports: what handlers add or
     * delete from here on is dated with it. */
    loop->turn++;
    if (n < 0) {
        return errno == EINTR ? 0 : HG_ERROR;
    }
    for (i = 0; i < (size_t) n; i++) {
        hg_event_t *ev = loop->ready[i].data.ptr;
        /* Deleted by an earlier handler of this turn (its owner may have
         * closed the descriptor), or deleted and added again on another
         * descriptor: what epoll reported is about the old one. */
        if (!ev->active || ev->turn_deleted == loop->turn
            || ev->turn_added == loop->turn)
        {
            continue;
        }
        ev->handler(ev, loop->ready[i].events);
    }
    return n;
}
