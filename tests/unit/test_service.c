/*
 * test_service.c: what core/hg_service.c tells a service manager, read
 * from a Unix datagram socket the test binds and names in NOTIFY_SOCKET
 * (as systemd does), with the watchdog's timer on a real event loop.
 * Every wait is bounded: a timer that never fires fails the test.
 */

#include "hg_core.h"

#include <setjmp.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "hg_event.h"
#include "hg_service.h"
#include "hg_timer.h"

#define TEST_GIVE_UP_NS  (5000 * HG_NSEC_PER_MSEC)

typedef struct {
    int fd;
    char path[108];
    hg_event_loop_t *loop;
    hg_timers_t mono;
} test_manager_t;

static int
test_setup(void **state)
{
    test_manager_t *t = calloc(1, sizeof(*t));
    struct sockaddr_un sa;

    assert_non_null(t);
    snprintf(t->path, sizeof(t->path), "/tmp/hg-test-service-%d",
             (int) getpid());
    unlink(t->path);
    t->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(t->fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, t->path, strlen(t->path) + 1);
    assert_int_equal(bind(t->fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    assert_int_equal(setenv("NOTIFY_SOCKET", t->path, 1), 0);
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    t->loop = hg_event_loop_create();
    assert_non_null(t->loop);
    assert_int_equal(hg_timers_init(&t->mono, t->loop, CLOCK_MONOTONIC),
                     HG_OK);
    *state = t;
    return 0;
}

static int
test_teardown(void **state)
{
    test_manager_t *t = *state;

    hg_service_close();
    hg_timers_close(&t->mono);
    hg_event_loop_destroy(t->loop);
    close(t->fd);
    unlink(t->path);
    unsetenv("NOTIFY_SOCKET");
    free(t);
    return 0;
}

/* Built without libsystemd, hg_service says nothing: so much for these. */
static void
test_need_systemd(void)
{
#if !HG_HAVE_SYSTEMD
    skip();
#endif
}

/* The next message, or "" when none waits. */
static const char *
test_next(test_manager_t *t)
{
    static char buf[1024];
    ssize_t n = recv(t->fd, buf, sizeof(buf) - 1, 0);

    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void
test_ready_and_status(void **state)
{
    test_manager_t *t = *state;

    test_need_systemd();
    assert_int_equal(hg_service_ready(&t->mono, 3), HG_OK);
    assert_string_equal(test_next(t), "READY=1\nSTATUS=running 3 jobs");
    assert_string_equal(test_next(t), "");     /* no watchdog: none asked */

    hg_service_reloaded(4);
    assert_string_equal(test_next(t), "READY=1\nSTATUS=running 4 jobs");
    hg_service_stopping();
    assert_string_equal(test_next(t), "STOPPING=1\nSTATUS=stopping");
}

static void
test_reloading_carries_the_monotonic_time(void **state)
{
    test_manager_t *t = *state;
    int64_t before, after, usec;
    const char *msg;
    char *end;

    test_need_systemd();
    before = hg_clock_ns(CLOCK_MONOTONIC) / 1000;
    hg_service_reloading();
    after = hg_clock_ns(CLOCK_MONOTONIC) / 1000;
    msg = test_next(t);
    assert_true(strncmp(msg, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0);
    usec = strtoll(msg + 27, &end, 10);
    assert_true(before <= usec && usec <= after);
    assert_string_equal(end, "\nSTATUS=reloading");
}

static void
test_reload_failed_says_why(void **state)
{
    test_manager_t *t = *state;
    hg_conf_error_t at_line = { "conf/a.conf", 14, "timeout: \"5x\" is not "
                                "a duration" };
    hg_conf_error_t no_line = { NULL, 0, "out of memory" };

    test_need_systemd();
    hg_service_reload_failed(&at_line);
    assert_string_equal(test_next(t), "READY=1\nSTATUS=reload failed: "
                        "conf/a.conf:14: timeout: \"5x\" is not a duration");
    hg_service_reload_failed(&no_line);
    assert_string_equal(test_next(t),
                        "READY=1\nSTATUS=reload failed: out of memory");
    hg_service_reload_failed(NULL);
    assert_string_equal(test_next(t),
                        "READY=1\nSTATUS=reload failed: see the log");
}

/* WATCHDOG_USEC=20ms: a ping at once, then one every 10 ms from the
 * loop's timer; the variables leave the environment (jobs must not take
 * the manager's watchdog for theirs). */
static void
test_watchdog_pings_from_the_loop(void **state)
{
    test_manager_t *t = *state;
    int64_t give_up = hg_clock_ns(CLOCK_MONOTONIC) + TEST_GIVE_UP_NS;
    int pings = 0;
    const char *msg;

    test_need_systemd();
    assert_int_equal(setenv("WATCHDOG_USEC", "20000", 1), 0);
    assert_int_equal(hg_service_ready(&t->mono, 0), HG_OK);
    assert_null(getenv("WATCHDOG_USEC"));
    assert_string_equal(test_next(t), "READY=1\nSTATUS=running 0 jobs");
    assert_string_equal(test_next(t), "WATCHDOG=1");
    while (pings < 3) {
        assert_true(hg_clock_ns(CLOCK_MONOTONIC) < give_up);
        assert_true(hg_event_loop_turn(t->loop, 100) >= 0);
        while (*(msg = test_next(t)) != '\0') {
            assert_string_equal(msg, "WATCHDOG=1");
            pings++;
        }
    }
    hg_service_close();
    assert_int_equal(t->mono.heap.count, 0);   /* nothing left armed */
}

/* WATCHDOG_PID names another process: the watchdog is not ours. */
static void
test_watchdog_of_another_process(void **state)
{
    test_manager_t *t = *state;

    test_need_systemd();
    assert_int_equal(setenv("WATCHDOG_USEC", "20000", 1), 0);
    assert_int_equal(setenv("WATCHDOG_PID", "1", 1), 0);
    assert_int_equal(hg_service_ready(&t->mono, 0), HG_OK);
    assert_string_equal(test_next(t), "READY=1\nSTATUS=running 0 jobs");
    assert_string_equal(test_next(t), "");
    assert_int_equal(t->mono.heap.count, 0);
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

/* Not under a manager: every call does nothing, and says nothing. */
static void
test_without_a_manager(void **state)
{
    test_manager_t *t = *state;

    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(hg_service_ready(&t->mono, 1), HG_OK);
    hg_service_reloading();
    hg_service_reloaded(1);
    hg_service_reload_failed(NULL);
    hg_service_stopping();
    assert_string_equal(test_next(t), "");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ready_and_status,
                                        test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(
            test_reloading_carries_the_monotonic_time, test_setup,
            test_teardown),
        cmocka_unit_test_setup_teardown(test_reload_failed_says_why,
                                        test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_watchdog_pings_from_the_loop,
                                        test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_watchdog_of_another_process,
                                        test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_without_a_manager,
                                        test_setup, test_teardown),
    };

    return cmocka_run_group_tests_name("service (sd_notify)", tests, NULL,
                                       NULL);
}
