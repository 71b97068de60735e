/*
 * The event loop: epoll over file descriptors, nothing else. It knows
 * nothing of jobs, workers or timers (hg_timer builds on it with timerfd;
 * signals arrive through a signalfd registered like any descriptor).
 *
 * An hg_event_t is embedded in its owner. Deleting an event from inside a
 * handler is safe for the rest of the turn: events deleted during a turn
 * are not dispatched again in it. Owners must not free a deleted event's
 * memory before the turn ends (hg_event_loop_turn_done marks the end).
 */

#ifndef HG_EVENT_H
#define HG_EVENT_H

#include "hg_core.h"

#include <sys/epoll.h>

typedef struct hg_event_loop_s hg_event_loop_t;
typedef struct hg_event_s hg_event_t;

typedef void (*hg_event_handler_pt)(hg_event_t *ev, uint32_t events);
typedef void (*hg_event_hook_pt)(void *data);

struct hg_event_s {
    int fd;
    uint32_t events;
    bool active;
    uint64_t turn_deleted;          /* the turn it was deleted in, or 0 */
    uint64_t turn_added;            /* the turn it was (re-)added in */
    hg_event_handler_pt handler;
    void *data;
    hg_event_loop_t *loop;
};

hg_event_loop_t *hg_event_loop_create(void);
void hg_event_loop_destroy(hg_event_loop_t *loop);

int hg_event_add(hg_event_loop_t *loop, hg_event_t *ev, int fd,
                 uint32_t events, hg_event_handler_pt handler, void *data);
int hg_event_modify(hg_event_t *ev, uint32_t events);
int hg_event_del(hg_event_t *ev);

/* Called before every wait (flush logs, re-arm timers). At most 8. */
int hg_event_loop_before_wait(hg_event_loop_t *loop, hg_event_hook_pt hook,
                              void *data);

void hg_event_loop_remove_hook(hg_event_loop_t *loop, hg_event_hook_pt hook,
                               void *data);

/* One turn: run the hooks, wait up to timeout_ms (-1 = no limit), dispatch.
 * Returns the number of events dispatched, or HG_ERROR. */
int hg_event_loop_turn(hg_event_loop_t *loop, int timeout_ms);

#endif /* HG_EVENT_H */
