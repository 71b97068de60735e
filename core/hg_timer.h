/*
 * Timers: a heap of deadlines on one clock, behind one timerfd registered
 * in the event loop. Adding, moving or removing a timer is O(log n) and
 * costs no system call; the timerfd is re-armed once per loop turn, just
 * before the loop waits, and only when the earliest deadline changed.
 *
 * A timer set on CLOCK_REALTIME also notices wall-clock steps (NTP, date
 * -s) and calls its clock_changed hook, once per step and before any of
 * its timers fires, so the owner can recompute wall-clock deadlines. The
 * kernel says so through TFD_TIMER_CANCEL_ON_SET, but not always first:
 * a deadline the step jumped over can expire, and be read, before the
 * timerfd is cancelled. So each wake-up also compares the wall clock's
 * offset from CLOCK_MONOTONIC with the last one seen (NTP's slewing moves
 * both clocks alike; only a step moves one from the other).
 */

#ifndef HG_TIMER_H
#define HG_TIMER_H

#include "hg_core.h"
#include "hg_event.h"
#include "hg_heap.h"

typedef struct hg_timer_s hg_timer_t;
typedef struct hg_timers_s hg_timers_t;

typedef void (*hg_timer_handler_pt)(hg_timer_t *timer);

struct hg_timer_s {
    hg_heap_node_t node;            /* key: deadline, ns on the set's clock */
    hg_timer_handler_pt handler;
    void *data;
    hg_timers_t *set;
};

struct hg_timers_s {
    clockid_t clock;
    int fd;
    hg_heap_t heap;
    hg_event_t ev;
    int64_t armed;                  /* deadline the timerfd holds, or -1 */
    size_t max_per_turn;            /* expiries handled per wake-up */
    void (*clock_changed)(hg_timers_t *set);
    void *data;
    int64_t offset;                 /* CLOCK_REALTIME - CLOCK_MONOTONIC,
                                       ns, as last seen (realtime sets) */
};

int64_t hg_clock_ns(clockid_t clock);

int hg_timers_init(hg_timers_t *set, hg_event_loop_t *loop, clockid_t clock);
void hg_timers_close(hg_timers_t *set);

void hg_timer_init(hg_timer_t *timer, hg_timer_handler_pt handler,
                   void *data);
/* Set (or move) the timer to fire at `when` ns on its set's clock. */
int hg_timer_set(hg_timers_t *set, hg_timer_t *timer, int64_t when);
void hg_timer_cancel(hg_timer_t *timer);

static inline bool
hg_timer_pending(const hg_timer_t *timer)
{
    return hg_heap_node_queued(&timer->node);
}

static inline int64_t
hg_timer_when(const hg_timer_t *timer)
{
    return timer->node.key;
}

#endif /* HG_TIMER_H */
