/*
 * hg_service.c: what the master tells its service manager (systemd's
 * notify protocol, Type=notify): READY=1 once the first cycle is applied
 * and the API listens, RELOADING=1 and READY=1 around a reload, STOPPING=1,
 * a STATUS= line for `systemctl status`, and WATCHDOG=1 from the loop.
 *
 * It knows nothing of jobs or workers: the master calls it at those
 * points. It never blocks and never sleeps: the watchdog is a timer on the
 * master's loop, so a loop that stops turning stops the pings and the
 * manager restarts us, which is the point. Without NOTIFY_SOCKET (not
 * under systemd, or built without libsystemd) every call does nothing.
 */

#include "hg_core.h"

#if HG_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "hg_log.h"
#include "hg_service.h"

typedef struct {
    hg_timer_t watchdog;
    hg_timers_t *mono;
    int64_t period_ns;              /* half the manager's WATCHDOG_USEC */
} hg_service_t;

static hg_service_t hg_service;

static void hg_service_notify(const char *fmt, ...) HG_PRINTF(1, 2);

static void
hg_service_notify(const char *fmt, ...)
{
#if HG_HAVE_SYSTEMD
    char msg[512];
    va_list ap;
    int rc;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* 0: NOTIFY_SOCKET is unset, we are not under a manager */
    rc = sd_notify(0, msg);
    if (rc < 0) {
        hg_log(HG_LOG_WARN, "cannot notify the service manager: %s",
               strerror(-rc));
    }
#else
    HG_UNUSED(fmt);
#endif
}

static void
hg_service_on_watchdog(hg_timer_t *timer)
{
    hg_service_t *s = timer->data;

    hg_service_notify("WATCHDOG=1");
    hg_timer_set(s->mono, &s->watchdog,
                 hg_clock_ns(CLOCK_MONOTONIC) + s->period_ns);
}

int
hg_service_ready(hg_timers_t *mono, size_t njobs)
{
    hg_service_t *s = &hg_service;

    hg_service_notify("READY=1\nSTATUS=running %zu jobs", njobs);
    hg_timer_init(&s->watchdog, hg_service_on_watchdog, s);
    s->mono = mono;
    s->period_ns = 0;
#if HG_HAVE_SYSTEMD
    {
        uint64_t usec = 0;

        /* 1: WATCHDOG_USEC and WATCHDOG_PID leave the environment, so
         * that no job takes the manager's watchdog for its own. Half the
         * period, as sd_watchdog_enabled(3) advises: one late turn of the
         * loop is no restart. */
        if (sd_watchdog_enabled(1, &usec) > 0 && usec > 0) {
            s->period_ns = (int64_t) (usec / 2) * 1000;
            if (s->period_ns == 0) {
                s->period_ns = 1;
            }
            hg_log(HG_LOG_INFO, "watchdog: a ping every %" PRId64 " ms",
                   (int64_t) (s->period_ns / HG_NSEC_PER_MSEC));
            hg_service_notify("WATCHDOG=1");
            return hg_timer_set(mono, &s->watchdog,
                                hg_clock_ns(CLOCK_MONOTONIC) + s->period_ns);
        }
    }
#endif
    return HG_OK;
}

/* systemd 253 wants the monotonic time of the reload's start with it, to
 * tell this reload from an earlier one. */
void
hg_service_reloading(void)
{
    hg_service_notify("RELOADING=1\nMONOTONIC_USEC=%" PRId64
                      "\nSTATUS=reloading",
                      (int64_t) (hg_clock_ns(CLOCK_MONOTONIC) / 1000));
}

void
hg_service_reloaded(size_t njobs)
{
    hg_service_notify("READY=1\nSTATUS=running %zu jobs", njobs);
}

/* The running configuration stays in force: ready again, and says why
 * the new one was refused. */
void
hg_service_reload_failed(const hg_conf_error_t *first)
{
    if (first == NULL) {
        hg_service_notify("READY=1\nSTATUS=reload failed: see the log");
    } else if (first->line > 0) {
        hg_service_notify("READY=1\nSTATUS=reload failed: %s:%d: %s",
                          first->file != NULL ? first->file : "?",
                          first->line, first->message);
    } else {
        hg_service_notify("READY=1\nSTATUS=reload failed: %s",
                          first->message);
    }
}

void
hg_service_stopping(void)
{
    hg_service_notify("STOPPING=1\nSTATUS=stopping");
}

void
hg_service_close(void)
{
    hg_service_t *s = &hg_service;

    if (s->mono != NULL) {
        hg_timer_cancel(&s->watchdog);
        s->mono = NULL;
    }
}
