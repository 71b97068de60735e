/*
 * test_timer.c: the event loop (core/hg_event.c), the timer heaps behind
 * timerfds (core/hg_timer.c) and UUIDv7 execution ids (core/hg_uuid.c).
 *
 * Events are driven with real pipes. Timers run against the real clocks
 * with short deadlines; the only timing assertions are "not before the
 * deadline" and "within 500 ms after it", and every wait is bounded so a
 * broken timer fails the test instead of hanging it.
 */

#include "hg_core.h"

#include <fcntl.h>
#include <setjmp.h>

#include <cmocka.h>

#include "hg_event.h"
#include "hg_timer.h"
#include "hg_uuid.h"

#define TEST_MS           HG_NSEC_PER_MSEC
#define TEST_LATE_NS      (500 * TEST_MS)       /* generous lateness bound */
#define TEST_GIVE_UP_NS   (5000 * TEST_MS)      /* a wait that never ends */

static void
test_pipe(int fds[2])
{
    assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
}

static void
test_put_byte(int fd)
{
    assert_int_equal(write(fd, "x", 1), 1);
}

static void
test_drain(int fd)
{
    char b[256];

    while (read(fd, b, sizeof(b)) > 0) {
    }
}

/* --- events ------------------------------------------------------------ */

typedef struct test_ev_s {
    hg_event_t ev;
    int calls;
    uint32_t last;
    int fds[2];
    struct test_ev_s *other;        /* for handlers that touch another */
    int order;                      /* which call of the turn it was */
} test_ev_t;

static int test_turn_calls;

static void
test_on_ready(hg_event_t *ev, uint32_t events)
{
    test_ev_t *t = ev->data;

    t->calls++;
    t->last = events;
    t->order = ++test_turn_calls;
    if (events & EPOLLIN) {
        test_drain(ev->fd);
    }
}

static void
test_event_add_del_modify(void **state)
{
    hg_event_loop_t *loop;
    test_ev_t r, w, dup;

    HG_UNUSED(state);
    memset(&r, 0, sizeof(r));
    memset(&w, 0, sizeof(w));
    memset(&dup, 0, sizeof(dup));
    loop = hg_event_loop_create();
    assert_non_null(loop);
    test_pipe(r.fds);

    /* Read end: nothing to read, nothing dispatched. */
    assert_int_equal(hg_event_add(loop, &r.ev, r.fds[0], EPOLLIN,
                                  test_on_ready, &r), HG_OK);
    assert_true(r.ev.active);
    assert_int_equal(r.ev.fd, r.fds[0]);
    assert_int_equal(hg_event_loop_turn(loop, 0), 0);
    assert_int_equal(r.calls, 0);

    test_put_byte(r.fds[1]);
    assert_int_equal(hg_event_loop_turn(loop, 1000), 1);
    assert_int_equal(r.calls, 1);
    assert_true(r.last & EPOLLIN);
    assert_int_equal(hg_event_loop_turn(loop, 0), 0);      /* drained */
    assert_int_equal(r.calls, 1);

    /* The same descriptor twice is refused. */
    assert_int_equal(hg_event_add(loop, &dup.ev, r.fds[0], EPOLLIN,
                                  test_on_ready, &dup), HG_ERROR);

    /* Write end: writable at once; modified to no interest, silent;
     * modified back, writable again. */
    assert_int_equal(hg_event_add(loop, &w.ev, r.fds[1], EPOLLOUT,
                                  test_on_ready, &w), HG_OK);
    assert_int_equal(hg_event_loop_turn(loop, 1000), 1);
    assert_int_equal(w.calls, 1);
    assert_true(w.last & EPOLLOUT);
    assert_int_equal(hg_event_modify(&w.ev, 0), HG_OK);
    assert_int_equal(w.ev.events, 0);
    assert_int_equal(hg_event_loop_turn(loop, 0), 0);
    assert_int_equal(w.calls, 1);
    assert_int_equal(hg_event_modify(&w.ev, EPOLLOUT), HG_OK);
    assert_int_equal(hg_event_modify(&w.ev, EPOLLOUT), HG_OK);  /* same */
    assert_int_equal(hg_event_loop_turn(loop, 0), 1);
    assert_int_equal(w.calls, 2);

    /* Modify the read end to want output too: a pipe's read end never
     * becomes writable, input still dispatches. */
    assert_int_equal(hg_event_modify(&r.ev, EPOLLIN | EPOLLOUT), HG_OK);
    assert_int_equal(hg_event_del(&w.ev), HG_OK);
    test_put_byte(r.fds[1]);
    assert_int_equal(hg_event_loop_turn(loop, 1000), 1);
    assert_int_equal(r.calls, 2);
    assert_int_equal(r.last & EPOLLOUT, 0);

    /* Deleted: never dispatched; deleting again is fine; modifying a
     * deleted event is an error. */
    assert_int_equal(hg_event_del(&r.ev), HG_OK);
    assert_false(r.ev.active);
    test_put_byte(r.fds[1]);
    assert_int_equal(hg_event_loop_turn(loop, 0), 0);
    assert_int_equal(r.calls, 2);
    assert_int_equal(hg_event_del(&r.ev), HG_OK);
    assert_int_equal(hg_event_modify(&r.ev, EPOLLIN), HG_ERROR);

    /* Added back: the byte written while it was away is seen. */
    assert_int_equal(hg_event_add(loop, &r.ev, r.fds[0], EPOLLIN,
                                  test_on_ready, &r), HG_OK);
    assert_int_equal(hg_event_loop_turn(loop, 1000), 1);
    assert_int_equal(r.calls, 3);

    /* The writer goes away: the read end reports hang-up. */
    close(r.fds[1]);
    assert_int_equal(hg_event_loop_turn(loop, 1000), 1);
    assert_true(r.last & EPOLLHUP);

    /* An owner that closed the descriptor before deleting the event. */
    close(r.fds[0]);
    assert_int_equal(hg_event_del(&r.ev), HG_OK);
    assert_false(r.ev.active);

    hg_event_loop_destroy(loop);
    hg_event_loop_destroy(NULL);
}

/* Two pipes ready in the same turn; whichever handler runs first deletes
 * the other event and closes its descriptors (as an owner freeing a
 * worker would). The other must not be dispatched in that turn. */
static void
test_on_ready_kill_other(hg_event_t *ev, uint32_t events)
{
    test_ev_t *t = ev->data;

    test_on_ready(ev, events);
    if (t->other->ev.active) {
        assert_int_equal(hg_event_del(&t->other->ev), HG_OK);
        close(t->other->fds[0]);
        close(t->other->fds[1]);
        t->other->fds[0] = t->other->fds[1] = -1;
    }
}

static void
test_event_del_in_same_turn(void **state)
{
    hg_event_loop_t *loop;
    test_ev_t a, b;
    test_ev_t *survivor;

    HG_UNUSED(state);
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    loop = hg_event_loop_create();
    assert_non_null(loop);
    test_pipe(a.fds);
    test_pipe(b.fds);
    a.other = &b;
    b.other = &a;
    assert_int_equal(hg_event_add(loop, &a.ev, a.fds[0], EPOLLIN,
                                  test_on_ready_kill_other, &a), HG_OK);
    assert_int_equal(hg_event_add(loop, &b.ev, b.fds[0], EPOLLIN,
                                  test_on_ready_kill_other, &b), HG_OK);
    test_put_byte(a.fds[1]);
    test_put_byte(b.fds[1]);

    test_turn_calls = 0;
    /* epoll reported both; only one handler ran. */
    assert_int_equal(hg_event_loop_turn(loop, 1000), 2);
    assert_int_equal(a.calls + b.calls, 1);
    survivor = a.calls ? &a : &b;
    assert_true(survivor->ev.active);
    assert_false(survivor->other->ev.active);

    /* Later turns: nothing (the survivor drained its pipe). */
    assert_int_equal(hg_event_loop_turn(loop, 0), 0);
    assert_int_equal(a.calls + b.calls, 1);

    /* A handler deleting its own event is fine too. */
    test_put_byte(survivor->fds[1]);
    assert_int_equal(hg_event_loop_turn(loop, 1000), 1);
    assert_int_equal(survivor->calls, 2);
    assert_int_equal(hg_event_del(&survivor->ev), HG_OK);
    close(survivor->fds[0]);
    close(survivor->fds[1]);
    hg_event_loop_destroy(loop);
}

/* As above, but the deleting handler re-adds the other event at once, on
 * a fresh, empty pipe (an owner respawning a worker into the same slot).
 * The readiness epoll reported for the old descriptor must not reach the
 * new registration.
 *
 * BUG (core/hg_event.c): this test FAILS today. hg_event_add resets
 * ev->turn_deleted to 0 and sets active, so the stale entry still in this
 * turn's ready array passes the check in hg_event_loop_turn and the
 * handler runs with the old descriptor's events (here EPOLLIN on an empty
 * pipe; EPOLLHUP/EPOLLERR of a dead peer would be worse). hg_event.h
 * promises that "events deleted during a turn are not dispatched again in
 * it". Fix: remember the turn an event was added in and skip events added
 * during the dispatching turn (they cannot be in its ready array); this
 * needs loop->turn to be advanced after epoll_wait rather than before the
 * hooks, so that events added by a before-wait hook still dispatch. */
static void
test_on_ready_replace_other(hg_event_t *ev, uint32_t events)
{
    test_ev_t *t = ev->data;
    test_ev_t *o = t->other;

    test_on_ready(ev, events);
    if (o->calls == 0 && o->fds[1] >= 0 && o->order == 0) {
        assert_int_equal(hg_event_del(&o->ev), HG_OK);
        close(o->fds[0]);
        close(o->fds[1]);
        test_pipe(o->fds);
        assert_int_equal(hg_event_add(o->ev.loop, &o->ev, o->fds[0], EPOLLIN,
                                      test_on_ready_replace_other, o),
                         HG_OK);
        o->order = -1;              /* replaced; do not replace back */
    }
}

static void
test_event_del_readd_same_turn(void **state)
{
    hg_event_loop_t *loop;
    test_ev_t a, b;

    HG_UNUSED(state);
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    loop = hg_event_loop_create();
    assert_non_null(loop);
    test_pipe(a.fds);
    test_pipe(b.fds);
    a.other = &b;
    b.other = &a;
    assert_int_equal(hg_event_add(loop, &a.ev, a.fds[0], EPOLLIN,
                                  test_on_ready_replace_other, &a), HG_OK);
    assert_int_equal(hg_event_add(loop, &b.ev, b.fds[0], EPOLLIN,
                                  test_on_ready_replace_other, &b), HG_OK);
    test_put_byte(a.fds[1]);
    test_put_byte(b.fds[1]);

    test_turn_calls = 0;
    assert_int_equal(hg_event_loop_turn(loop, 1000), 2);
    /* The replaced one's new pipe is empty: it has nothing to report. */
    assert_int_equal(a.calls + b.calls, 1);

    hg_event_del(&a.ev);
    hg_event_del(&b.ev);
    close(a.fds[0]);
    close(a.fds[1]);
    close(b.fds[0]);
    close(b.fds[1]);
    hg_event_loop_destroy(loop);
}

static int test_hook_calls[9];

static void
test_hook(void *data)
{
    test_hook_calls[*(int *) data]++;
}

static void
test_event_hooks(void **state)
{
    static int ids[9] = { 0, 1, 2, 3, 4, 5, 6, 7, 8 };
    hg_event_loop_t *loop;
    int i;

    HG_UNUSED(state);
    memset(test_hook_calls, 0, sizeof(test_hook_calls));
    loop = hg_event_loop_create();
    assert_non_null(loop);
    for (i = 0; i < 8; i++) {
        assert_int_equal(hg_event_loop_before_wait(loop, test_hook, &ids[i]),
                         HG_OK);
    }
    assert_int_equal(hg_event_loop_before_wait(loop, test_hook, &ids[8]),
                     HG_ERROR);
    assert_int_equal(hg_event_loop_turn(loop, 0), 0);
    assert_int_equal(hg_event_loop_turn(loop, 0), 0);
    for (i = 0; i < 8; i++) {
        assert_int_equal(test_hook_calls[i], 2);
    }
    assert_int_equal(test_hook_calls[8], 0);
    hg_event_loop_destroy(loop);
}

/* --- timers ------------------------------------------------------------ */

#define TEST_TIMERS  8

typedef struct test_clock_s {
    hg_event_loop_t *loop;
    hg_timers_t set;
    hg_timer_t timers[TEST_TIMERS];
    int64_t fired_at[TEST_TIMERS];
    int fired_count[TEST_TIMERS];
    int order[64];
    int nfired;
    int cancel_in_handler;          /* timer index to cancel, or -1 */
    int rearm_times;                /* for the self-rearming timer */
} test_clock_t;

static test_clock_t test_clk;

static void
test_on_timer(hg_timer_t *timer)
{
    int i = (int) (timer - test_clk.timers);

    assert_true(i >= 0 && i < TEST_TIMERS);
    assert_ptr_equal(timer->data, &test_clk);
    /* Off the heap before its handler runs. */
    assert_false(hg_timer_pending(timer));
    test_clk.fired_at[i] = hg_clock_ns(test_clk.set.clock);
    test_clk.fired_count[i]++;
    if (test_clk.nfired < (int) HG_NELEMS(test_clk.order)) {
        test_clk.order[test_clk.nfired] = i;
    }
    test_clk.nfired++;
    if (test_clk.cancel_in_handler >= 0) {
        hg_timer_cancel(&test_clk.timers[test_clk.cancel_in_handler]);
        test_clk.cancel_in_handler = -1;
    }
    if (i == 7 && test_clk.rearm_times > 0) {
        test_clk.rearm_times--;
        assert_int_equal(hg_timer_set(&test_clk.set, timer,
                                      hg_clock_ns(test_clk.set.clock)
                                      + 2 * TEST_MS), HG_OK);
    }
}

static void
test_clock_start(clockid_t clock)
{
    int i;

    memset(&test_clk, 0, sizeof(test_clk));
    test_clk.cancel_in_handler = -1;
    test_clk.loop = hg_event_loop_create();
    assert_non_null(test_clk.loop);
    assert_int_equal(hg_timers_init(&test_clk.set, test_clk.loop, clock),
                     HG_OK);
    for (i = 0; i < TEST_TIMERS; i++) {
        hg_timer_init(&test_clk.timers[i], test_on_timer, &test_clk);
        assert_false(hg_timer_pending(&test_clk.timers[i]));
    }
}

static void
test_clock_stop(void)
{
    hg_timers_close(&test_clk.set);
    hg_event_loop_destroy(test_clk.loop);
    test_clk.loop = NULL;
}

/* Turn the loop until `n` timers in all have fired; fails after 5 s. */
static void
test_run_until_fired(int n)
{
    int64_t give_up = hg_clock_ns(CLOCK_MONOTONIC) + TEST_GIVE_UP_NS;

    while (test_clk.nfired < n) {
        assert_true(hg_event_loop_turn(test_clk.loop, 100) >= 0);
        if (hg_clock_ns(CLOCK_MONOTONIC) > give_up) {
            fail_msg("only %d of %d timers fired in 5 s", test_clk.nfired, n);
        }
    }
}

/* Turn the loop for about `ms` milliseconds. */
static void
test_run_for(int ms)
{
    int64_t end = hg_clock_ns(CLOCK_MONOTONIC) + ms * TEST_MS;

    while (hg_clock_ns(CLOCK_MONOTONIC) < end) {
        assert_true(hg_event_loop_turn(test_clk.loop, 5) >= 0);
    }
}

static void
test_check_fired_in_time(int i)
{
    int64_t when = hg_timer_when(&test_clk.timers[i]);

    assert_int_equal(test_clk.fired_count[i], 1);
    if (test_clk.fired_at[i] < when) {
        fail_msg("timer %d fired %" PRId64 " ns early", i,
                 when - test_clk.fired_at[i]);
    }
    if (test_clk.fired_at[i] > when + TEST_LATE_NS) {
        fail_msg("timer %d fired %" PRId64 " ms late", i,
                 (int64_t) ((test_clk.fired_at[i] - when) / TEST_MS));
    }
}

static void
test_timer_order(void **state)
{
    static const int64_t offsets_ms[5] = { 30, 10, 20, 20, 20 };
    static const int expected[5] = { 1, 2, 3, 4, 0 };
    int64_t now;
    int i;

    HG_UNUSED(state);
    test_clock_start(CLOCK_MONOTONIC);
    now = hg_clock_ns(CLOCK_MONOTONIC);
    for (i = 0; i < 5; i++) {
        assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[i],
                                      now + offsets_ms[i] * TEST_MS), HG_OK);
        assert_true(hg_timer_pending(&test_clk.timers[i]));
        assert_int_equal(hg_timer_when(&test_clk.timers[i]),
                         now + offsets_ms[i] * TEST_MS);
    }
    test_run_until_fired(5);
    for (i = 0; i < 5; i++) {
        assert_int_equal(test_clk.order[i], expected[i]);
        test_check_fired_in_time(i);
    }
    /* Nothing more, and the set's timerfd is disarmed. */
    test_run_for(20);
    assert_int_equal(test_clk.nfired, 5);
    assert_int_equal(test_clk.set.armed, -1);
    test_clock_stop();
}

/* Deadlines already past fire on the next turn, earliest first; equal
 * past deadlines in the order they were set. */
static void
test_timer_past(void **state)
{
    int64_t now;

    HG_UNUSED(state);
    test_clock_start(CLOCK_MONOTONIC);
    now = hg_clock_ns(CLOCK_MONOTONIC);
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[0],
                                  now - 5 * TEST_MS), HG_OK);
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[1],
                                  0), HG_OK);
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[2],
                                  now - 5 * TEST_MS), HG_OK);
    assert_int_equal(hg_event_loop_turn(test_clk.loop, 1000), 1);
    assert_int_equal(test_clk.nfired, 3);
    assert_int_equal(test_clk.order[0], 1);
    assert_int_equal(test_clk.order[1], 0);
    assert_int_equal(test_clk.order[2], 2);
    test_clock_stop();
}

static void
test_timer_cancel(void **state)
{
    int64_t now;

    HG_UNUSED(state);
    test_clock_start(CLOCK_MONOTONIC);

    /* Cancelling a timer never set, or twice, is harmless. */
    hg_timer_cancel(&test_clk.timers[5]);
    now = hg_clock_ns(CLOCK_MONOTONIC);
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[0],
                                  now + 10 * TEST_MS), HG_OK);
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[1],
                                  now + 30 * TEST_MS), HG_OK);
    hg_timer_cancel(&test_clk.timers[0]);
    assert_false(hg_timer_pending(&test_clk.timers[0]));
    hg_timer_cancel(&test_clk.timers[0]);
    test_run_until_fired(1);
    assert_int_equal(test_clk.order[0], 1);
    test_check_fired_in_time(1);
    test_run_for(30);
    assert_int_equal(test_clk.fired_count[0], 0);
    assert_int_equal(test_clk.nfired, 1);

    /* Cancelled after it was armed but before its turn: the timerfd
     * still wakes the loop, but nothing fires. */
    now = hg_clock_ns(CLOCK_MONOTONIC);
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[2],
                                  now + 5 * TEST_MS), HG_OK);
    assert_int_equal(hg_event_loop_turn(test_clk.loop, 0), 0);  /* armed */
    hg_timer_cancel(&test_clk.timers[2]);
    test_run_for(30);
    assert_int_equal(test_clk.fired_count[2], 0);

    /* A handler cancels another timer due in the same turn. */
    now = hg_clock_ns(CLOCK_MONOTONIC);
    test_clk.cancel_in_handler = 4;
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[3],
                                  now - TEST_MS), HG_OK);
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[4],
                                  now - TEST_MS), HG_OK);
    assert_int_equal(hg_event_loop_turn(test_clk.loop, 1000), 1);
    assert_int_equal(test_clk.fired_count[3], 1);
    test_run_for(20);
    assert_int_equal(test_clk.fired_count[4], 0);
    assert_false(hg_timer_pending(&test_clk.timers[4]));
    test_clock_stop();
}

static void
test_timer_move(void **state)
{
    int64_t now;

    HG_UNUSED(state);
    test_clock_start(CLOCK_MONOTONIC);
    now = hg_clock_ns(CLOCK_MONOTONIC);

    /* Earlier: a 10 s timer moved to 10 ms fires within the bound. */
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[0],
                                  now + 10000 * TEST_MS), HG_OK);
    assert_int_equal(hg_event_loop_turn(test_clk.loop, 0), 0);  /* armed */
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[0],
                                  now + 10 * TEST_MS), HG_OK);
    assert_true(hg_timer_pending(&test_clk.timers[0]));
    test_run_until_fired(1);
    test_check_fired_in_time(0);

    /* Later: a 10 ms timer moved to 80 ms fires no earlier than that,
     * after a 40 ms one. */
    now = hg_clock_ns(CLOCK_MONOTONIC);
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[1],
                                  now + 10 * TEST_MS), HG_OK);
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[2],
                                  now + 40 * TEST_MS), HG_OK);
    assert_int_equal(hg_event_loop_turn(test_clk.loop, 0), 0);  /* armed */
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[1],
                                  now + 80 * TEST_MS), HG_OK);
    test_run_until_fired(3);
    assert_int_equal(test_clk.order[1], 2);
    assert_int_equal(test_clk.order[2], 1);
    test_check_fired_in_time(1);
    test_check_fired_in_time(2);

    /* Moved to another set on the same clock: leaves the first. */
    {
        hg_timers_t other;
        assert_int_equal(hg_timers_init(&other, test_clk.loop,
                                        CLOCK_MONOTONIC), HG_OK);
        now = hg_clock_ns(CLOCK_MONOTONIC);
        assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[3],
                                      now + 10 * TEST_MS), HG_OK);
        assert_int_equal(hg_timer_set(&other, &test_clk.timers[3],
                                      now + 20 * TEST_MS), HG_OK);
        assert_int_equal(test_clk.set.heap.count, 0);
        assert_int_equal(other.heap.count, 1);
        assert_ptr_equal(test_clk.timers[3].set, &other);
        test_run_until_fired(4);
        test_check_fired_in_time(3);
        hg_timers_close(&other);
    }
    test_clock_stop();
}

/* max_per_turn bounds how many expiries one wake-up handles; the rest
 * fire on the following turns. */
static void
test_timer_max_per_turn(void **state)
{
    int64_t now;
    int i;

    HG_UNUSED(state);
    test_clock_start(CLOCK_MONOTONIC);
    test_clk.set.max_per_turn = 2;
    now = hg_clock_ns(CLOCK_MONOTONIC);
    for (i = 0; i < 5; i++) {
        assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[i],
                                      now - TEST_MS), HG_OK);
    }
    assert_int_equal(hg_event_loop_turn(test_clk.loop, 1000), 1);
    assert_int_equal(test_clk.nfired, 2);
    assert_int_equal(hg_event_loop_turn(test_clk.loop, 1000), 1);
    assert_int_equal(test_clk.nfired, 4);
    assert_int_equal(hg_event_loop_turn(test_clk.loop, 1000), 1);
    assert_int_equal(test_clk.nfired, 5);
    for (i = 0; i < 5; i++) {
        assert_int_equal(test_clk.order[i], i);
    }
    assert_int_equal(hg_event_loop_turn(test_clk.loop, 0), 0);
    assert_int_equal(test_clk.nfired, 5);
    test_clock_stop();
}

/* A handler that sets its own timer again (a periodic timer). */
static void
test_timer_rearm_in_handler(void **state)
{
    HG_UNUSED(state);
    test_clock_start(CLOCK_MONOTONIC);
    test_clk.rearm_times = 3;
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[7],
                                  hg_clock_ns(CLOCK_MONOTONIC) + TEST_MS),
                     HG_OK);
    test_run_until_fired(4);
    assert_int_equal(test_clk.fired_count[7], 4);
    assert_false(hg_timer_pending(&test_clk.timers[7]));
    test_run_for(10);
    assert_int_equal(test_clk.fired_count[7], 4);
    test_clock_stop();
}

static void
test_timer_realtime(void **state)
{
    int64_t now;

    HG_UNUSED(state);
    test_clock_start(CLOCK_REALTIME);
    now = hg_clock_ns(CLOCK_REALTIME);
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[0],
                                  now + 20 * TEST_MS), HG_OK);
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[1],
                                  now + 10 * TEST_MS), HG_OK);
    test_run_until_fired(2);
    assert_int_equal(test_clk.order[0], 1);
    assert_int_equal(test_clk.order[1], 0);
    test_check_fired_in_time(0);
    test_check_fired_in_time(1);

    /* With nothing pending, a realtime set stays armed well ahead so that
     * it keeps noticing clock steps. */
    assert_int_equal(hg_event_loop_turn(test_clk.loop, 0), 0);
    assert_true(test_clk.set.armed
                > hg_clock_ns(CLOCK_REALTIME) + 60 * HG_NSEC_PER_SEC);

    /* A timer set far ahead, armed, then cancelled: nothing fires. */
    now = hg_clock_ns(CLOCK_REALTIME);
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[2],
                                  now + 10 * HG_NSEC_PER_SEC), HG_OK);
    assert_int_equal(hg_event_loop_turn(test_clk.loop, 0), 0);
    hg_timer_cancel(&test_clk.timers[2]);
    test_run_for(10);
    assert_int_equal(test_clk.nfired, 2);
    test_clock_stop();
}

/* The clock_changed hook: counted, and placed among the timers' firings
 * (index -1 in order[]). */
static int test_steps_told;

static void
test_on_step(hg_timers_t *set)
{
    assert_ptr_equal(set, &test_clk.set);
    test_steps_told++;
    if (test_clk.nfired < (int) HG_NELEMS(test_clk.order)) {
        test_clk.order[test_clk.nfired] = -1;
    }
    test_clk.nfired++;
}

/*
 * A step the kernel has not reported yet when a deadline it jumped over
 * expires (its TFD_TIMER_CANCEL_ON_SET notice can come after the expiry):
 * the set finds it from the wall clock's offset from CLOCK_MONOTONIC and
 * tells the owner first, and once. Stepping the real clock needs root and
 * disturbs the machine (tests/t/test_clock.py does it, opt-in); here the
 * offset last seen is moved instead, which is what a step looks like.
 */
static void
test_timer_step_told_first(void **state)
{
    int64_t now;

    HG_UNUSED(state);
    test_clock_start(CLOCK_REALTIME);
    test_steps_told = 0;
    test_clk.set.clock_changed = test_on_step;
    now = hg_clock_ns(CLOCK_REALTIME);
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[0],
                                  now + 5 * TEST_MS), HG_OK);
    test_clk.set.offset -= 8 * HG_NSEC_PER_SEC;    /* stepped 8 s ahead */
    test_run_until_fired(2);
    assert_int_equal(test_steps_told, 1);
    assert_int_equal(test_clk.order[0], -1);       /* the step first */
    assert_int_equal(test_clk.order[1], 0);

    /* Once: the next expiry, with no step since, tells nothing. */
    now = hg_clock_ns(CLOCK_REALTIME);
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[1],
                                  now + 5 * TEST_MS), HG_OK);
    test_run_until_fired(3);
    assert_int_equal(test_steps_told, 1);
    assert_int_equal(test_clk.order[2], 1);

    /* A step back, found at a wake-up with nothing due (the kernel's
     * notice, which a test cannot send, would be such a wake-up). */
    test_clk.set.offset += 3 * HG_NSEC_PER_SEC;
    now = hg_clock_ns(CLOCK_REALTIME);
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[2],
                                  now + 5 * TEST_MS), HG_OK);
    test_run_until_fired(5);
    assert_int_equal(test_steps_told, 2);
    assert_int_equal(test_clk.order[3], -1);
    assert_int_equal(test_clk.order[4], 2);

    /* A monotonic set never looks. */
    test_clock_stop();
    test_clock_start(CLOCK_MONOTONIC);
    test_steps_told = 0;
    test_clk.set.clock_changed = test_on_step;
    test_clk.set.offset -= 8 * HG_NSEC_PER_SEC;
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[0],
                                  hg_clock_ns(CLOCK_MONOTONIC)
                                  + 5 * TEST_MS), HG_OK);
    test_run_until_fired(1);
    assert_int_equal(test_steps_told, 0);
    test_clock_stop();
}

/* A set needs one of the loop's eight before-wait hooks; when none is
 * left, hg_timers_init fails cleanly. */
static void
test_hook_noop(void *data)
{
    HG_UNUSED(data);
}

static void
test_timers_init_fails(void **state)
{
    hg_event_loop_t *loop;
    hg_timers_t set;
    int i;

    HG_UNUSED(state);
    loop = hg_event_loop_create();
    assert_non_null(loop);
    for (i = 0; i < 8; i++) {
        assert_int_equal(hg_event_loop_before_wait(loop, test_hook_noop,
                                                   NULL), HG_OK);
    }
    assert_int_equal(hg_timers_init(&set, loop, CLOCK_MONOTONIC), HG_ERROR);
    assert_int_equal(set.fd, -1);
    hg_timers_close(&set);
    assert_int_equal(hg_event_loop_turn(loop, 0), 0);
    hg_event_loop_destroy(loop);
}

/* Closing a set leaves its timers not pending. */
static void
test_timers_close(void **state)
{
    HG_UNUSED(state);
    test_clock_start(CLOCK_MONOTONIC);
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[0],
                                  hg_clock_ns(CLOCK_MONOTONIC)
                                  + 1000 * TEST_MS), HG_OK);
    assert_int_equal(hg_timer_set(&test_clk.set, &test_clk.timers[1],
                                  hg_clock_ns(CLOCK_MONOTONIC)
                                  + 2000 * TEST_MS), HG_OK);
    hg_timers_close(&test_clk.set);
    assert_false(hg_timer_pending(&test_clk.timers[0]));
    assert_false(hg_timer_pending(&test_clk.timers[1]));
    assert_int_equal(test_clk.set.fd, -1);
    hg_timers_close(&test_clk.set);     /* twice is harmless */
    hg_event_loop_destroy(test_clk.loop);
    assert_int_equal(test_clk.nfired, 0);
}

/* --- UUIDv7 ------------------------------------------------------------ */

static void
test_check_uuid_format(const char *u)
{
    size_t i;

    assert_int_equal(strlen(u), HG_UUID_LEN);
    for (i = 0; i < HG_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            assert_int_equal(u[i], '-');
        } else if (!((u[i] >= '0' && u[i] <= '9')
                     || (u[i] >= 'a' && u[i] <= 'f')))
        {
            fail_msg("\"%s\": character %zu is not lowercase hex", u, i);
        }
    }
    assert_int_equal(u[14], '7');                   /* version 7 */
    assert_non_null(strchr("89ab", u[19]));         /* variant 10xx */
}

static int64_t
test_uuid_ms(const char *u)
{
    char hex[13];

    memcpy(hex, u, 8);
    memcpy(hex + 8, u + 9, 4);
    hex[12] = '\0';
    return (int64_t) strtoll(hex, NULL, 16);
}

static void
test_uuid_v7(void **state)
{
    enum { N = 100000 };
    char prev[HG_UUID_LEN + 1], cur[HG_UUID_LEN + 1];
    int64_t before, after, first_ms, last_ms;
    int i;

    HG_UNUSED(state);
    before = hg_clock_ns(CLOCK_REALTIME) / HG_NSEC_PER_MSEC;
    memset(prev, 0, sizeof(prev));
    hg_uuid_v7(prev);
    test_check_uuid_format(prev);
    first_ms = test_uuid_ms(prev);
    for (i = 1; i < N; i++) {
        hg_uuid_v7(cur);
        if (i % 97 == 0) {
            test_check_uuid_format(cur);
        }
        if (strcmp(prev, cur) >= 0) {
            fail_msg("uuid %d \"%s\" does not sort after \"%s\"", i, cur,
                     prev);
        }
        memcpy(prev, cur, sizeof(cur));
    }
    test_check_uuid_format(prev);
    after = hg_clock_ns(CLOCK_REALTIME) / HG_NSEC_PER_MSEC;
    last_ms = test_uuid_ms(prev);

    /* The time field is the wall clock in ms. Past 4096 ids in one ms the
     * counter borrows from the next ms, so the last id may run a little
     * ahead of the clock: at most one ms per 4096 ids. */
    assert_true(first_ms >= before && first_ms <= after);
    assert_true(last_ms >= first_ms);
    assert_true(last_ms <= after + N / 4096 + 1);
}

static void
test_random(void **state)
{
    uint64_t a, b, c, or_all = 0, and_all = UINT64_MAX;
    int i;

    HG_UNUSED(state);
    a = hg_random();
    b = hg_random();
    c = hg_random();
    assert_true(a != b && b != c && a != c);
    for (i = 0; i < 1000; i++) {
        uint64_t r = hg_random();
        or_all |= r;
        and_all &= r;
    }
    /* Every bit takes both values. */
    assert_true(or_all == UINT64_MAX);
    assert_true(and_all == 0);
    hg_random_reseed();
    assert_true(hg_random() != hg_random());
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_add_del_modify),
        cmocka_unit_test(test_event_del_in_same_turn),
        cmocka_unit_test(test_event_del_readd_same_turn),
        cmocka_unit_test(test_event_hooks),
        cmocka_unit_test(test_timer_order),
        cmocka_unit_test(test_timer_past),
        cmocka_unit_test(test_timer_cancel),
        cmocka_unit_test(test_timer_move),
        cmocka_unit_test(test_timer_max_per_turn),
        cmocka_unit_test(test_timer_rearm_in_handler),
        cmocka_unit_test(test_timer_realtime),
        cmocka_unit_test(test_timer_step_told_first),
        cmocka_unit_test(test_timers_init_fails),
        cmocka_unit_test(test_timers_close),
        cmocka_unit_test(test_uuid_v7),
        cmocka_unit_test(test_random),
    };

    return cmocka_run_group_tests_name("event, timer, uuid", tests, NULL,
                                       NULL);
}
