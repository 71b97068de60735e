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

/* Detach from the terminal: fork, setsid, stdio to /dev/null. */
int hg_daemonize(char *err, size_t errlen);

/* "reload" -> SIGHUP, "stop" -> SIGTERM, "quit" -> SIGQUIT,
 * "reopen" -> SIGUSR1; 0 when NAME is none of them. */
int hg_signal_by_name(const char *name);

#endif /* HG_PROCESS_H */
