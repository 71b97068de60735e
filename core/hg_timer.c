/*
 * hg_timer.c: timer heaps behind timerfds.
 */

#include "hg_core.h"

#include <sys/timerfd.h>

#include "hg_timer.h"

/* With nothing to wait for, a realtime set still arms its timerfd this far
 * ahead so that TFD_TIMER_CANCEL_ON_SET keeps reporting clock steps. */
#define HG_TIMER_IDLE_NS  (3600LL * HG_NSEC_PER_SEC)
/* A change of the wall clock's offset from CLOCK_MONOTONIC past this is a
 * step; the two readings that measure it are a few microseconds apart. */
#define HG_TIMER_STEP_NS  (1LL * HG_NSEC_PER_MSEC)

int64_t
hg_clock_ns(clockid_t clock)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    return (int64_t) ts.tv_sec * HG_NSEC_PER_SEC + ts.tv_nsec;
}

static int
hg_timers_arm(hg_timers_t *set, int64_t when)
{
    struct itimerspec its;
    int flags = TFD_TIMER_ABSTIME;

    memset(&its, 0, sizeof(its));
    if (when <= 0) {
        when = 1;   /* an all-zero it_value would disarm the timer */
    }
    its.it_value.tv_sec = (time_t) (when / HG_NSEC_PER_SEC);
    its.it_value.tv_nsec = (long) (when % HG_NSEC_PER_SEC);
    if (set->clock == CLOCK_REALTIME) {
        flags |= TFD_TIMER_CANCEL_ON_SET;
    }
    if (timerfd_settime(set->fd, flags, &its, NULL) < 0) {
        return HG_ERROR;
    }
    set->armed = when;
    return HG_OK;
}

static void
hg_timers_rearm(void *data)
{
    hg_timers_t *set = data;
    hg_heap_node_t *min = hg_heap_min(&set->heap);
    int64_t when;

    if (min != NULL) {
        when = min->key;
        /* Armed for an earlier instant already: leave it. Waking once for
         * nothing is cheaper than a timerfd_settime per turn, which is
         * what executions finishing before their timeouts would cost. */
        if (set->armed > 0 && when > set->armed) {
            return;
        }
    } else if (set->clock == CLOCK_REALTIME) {
        if (set->armed > hg_clock_ns(set->clock)) {
            return;
        }
        when = hg_clock_ns(set->clock) + HG_TIMER_IDLE_NS;
    } else {
        when = -1;
    }
    if (when == set->armed) {
        return;
    }
    if (when < 0) {
        struct itimerspec off;
        memset(&off, 0, sizeof(off));
        timerfd_settime(set->fd, 0, &off, NULL);
        set->armed = -1;
        return;
    }
    hg_timers_arm(set, when);
}

static int64_t
hg_timers_offset(void)
{
    return hg_clock_ns(CLOCK_REALTIME) - hg_clock_ns(CLOCK_MONOTONIC);
}

/* Whether the wall clock was stepped since the set last looked: its
 * offset from CLOCK_MONOTONIC moved (then kept as the new one). */
static bool
hg_timers_stepped(hg_timers_t *set)
{
    int64_t offset = hg_timers_offset(), moved = offset - set->offset;

    if (moved > -HG_TIMER_STEP_NS && moved < HG_TIMER_STEP_NS) {
        return false;
    }
    set->offset = offset;
    return true;
}

static void
hg_timers_expire(hg_event_t *ev, uint32_t events)
{
    hg_timers_t *set = ev->data;
    uint64_t ticks;
    size_t handled = 0;
    int64_t now;

    HG_UNUSED(events);
    /* ECANCELED (the kernel's word for a step) or ticks: either way the
     * timerfd is disarmed now, and re-armed by the hook before the wait.
     * A step is told to the owner before any timer fires, whichever of
     * the two came first (hg_timer.h), and once. */
    if (read(set->fd, &ticks, sizeof(ticks)) < 0) {
        ticks = 0;                      /* ECANCELED, or woken for nothing */
    }
    set->armed = -1;
    if (set->clock == CLOCK_REALTIME && hg_timers_stepped(set)
        && set->clock_changed != NULL)
    {
        set->clock_changed(set);
    }
    now = hg_clock_ns(set->clock);
    while (handled < set->max_per_turn) {
        hg_heap_node_t *min = hg_heap_min(&set->heap);
        hg_timer_t *timer;
        if (min == NULL || min->key > now) {
            break;
        }
        hg_heap_remove(&set->heap, min);
        timer = hg_heap_entry(min, hg_timer_t, node);
        timer->handler(timer);
        handled++;
    }
}

int
hg_timers_init(hg_timers_t *set, hg_event_loop_t *loop, clockid_t clock)
{
    memset(set, 0, sizeof(*set));
    set->clock = clock;
    set->armed = -1;
    set->offset = hg_timers_offset();
    set->max_per_turn = 4096;
    hg_heap_init(&set->heap);
    set->fd = timerfd_create(clock, TFD_NONBLOCK | TFD_CLOEXEC);
    if (set->fd < 0) {
        return HG_ERROR;
    }
    if (hg_event_add(loop, &set->ev, set->fd, EPOLLIN, hg_timers_expire,
                     set) != HG_OK
        || hg_event_loop_before_wait(loop, hg_timers_rearm, set) != HG_OK)
    {
        close(set->fd);
        set->fd = -1;
        return HG_ERROR;
    }
    return HG_OK;
}

void
hg_timers_close(hg_timers_t *set)
{
    if (set->fd >= 0) {
        hg_event_loop_remove_hook(set->ev.loop, hg_timers_rearm, set);
        hg_event_del(&set->ev);
        close(set->fd);
        set->fd = -1;
    }
    hg_heap_free(&set->heap);
}

void
hg_timer_init(hg_timer_t *timer, hg_timer_handler_pt handler, void *data)
{
    hg_heap_node_init(&timer->node);
    timer->handler = handler;
    timer->data = data;
    timer->set = NULL;
}

int
hg_timer_set(hg_timers_t *set, hg_timer_t *timer, int64_t when)
{
    if (timer->set != NULL && timer->set != set) {
        hg_timer_cancel(timer);
    }
    timer->set = set;
    return hg_heap_update(&set->heap, &timer->node, when);
}

void
hg_timer_cancel(hg_timer_t *timer)
{
    if (timer->set != NULL) {
        hg_heap_remove(&timer->set->heap, &timer->node);
    }
}
