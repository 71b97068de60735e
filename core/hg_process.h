/*
 * Process-level chores of the master: the pid file (created, locked for as
 * long as the master lives so that a second instance refuses to start,
 * removed on exit), daemonising, and `-s SIGNAL` for a running master.
 */

#ifndef HG_PROCESS_H
#define HG_PROCESS_H

#include "hg_core.h"

/* Create and lock PATH and write our pid into it. HG_ERROR with a message
 * in err (another instance holds it, or it cannot be written). */
int hg_pidfile_create(const char *path, int *fd, char *err, size_t errlen);
void hg_pidfile_remove(const char *path, int fd);
/* The pid in PATH, or -1 with a message. */
pid_t hg_pidfile_read(const char *path, char *err, size_t errlen);
/* HG_OK when PID is a live hourglass; HG_ERROR with a message naming
 * PIDFILE and what PID is instead. */
int hg_process_is_hourglass(pid_t pid, const char *pidfile, char *err,
                            size_t errlen);

/* Detach from the terminal: fork, setsid, stdin and stdout to /dev/null.
 * The process that was started waits, and exits 0 once the daemon calls
 * hg_daemon_report(NULL), or 1 with the daemon's message when it reports a
 * failure or dies first. *report_fd is the daemon's end of that channel. */
int hg_daemonize(int *report_fd, char *err, size_t errlen);
/* Tell the waiting parent how the start went (FAILURE NULL: started) and
 * close the channel. Does nothing when *report_fd is -1. */
void hg_daemon_report(int *report_fd, const char *failure);

/* Ask the scheduler for the shortest time slice (EEVDF, Linux 6.12 and
 * later; older kernels ignore it) for this process, not its children:
 * see hg_process.c. Best effort, and only for a SCHED_OTHER process whose
 * nice value is not negative (for which resetting on fork changes nothing
 * but the slice). */
void hg_process_short_slice(void);

/* "reload" -> SIGHUP, "stop" -> SIGTERM, "quit" -> SIGQUIT,
 * "reopen" -> SIGUSR1; 0 when NAME is none of them. */
int hg_signal_by_name(const char *name);

#endif /* HG_PROCESS_H */
