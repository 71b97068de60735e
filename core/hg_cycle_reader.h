/*
 * The cycle reader: a short-lived process that reads scheduler.conf (its
 * @includes too), loads and initialises the modules, runs every job's
 * validate and hands the checked configuration back as JSON over a pipe
 * (hg_cycle_json.c). Whatever module code or a file does there, crash,
 * hang or take seconds, happens in that process: to the master, it is a
 * failed reload with its cause, under a time bound.
 *
 * The reader is the hourglass binary run again (`hourglass --cycle-reader
 * FILE PREFIX`, posix_spawn): it inherits nothing of the master but its
 * environment and directory (no SQLite connection, no store thread's
 * locks, no buffered log lines, no worker pipes), so the rule that no
 * SQLite call is made in a process forked from one holding a connection
 * holds by construction. Its end is known from its pipe (EOF) and its
 * status: a parent that reaps every child with wait4(-1), as the master
 * does, hands the reader's to hg_cycle_reader_reaped.
 *
 * The master drives one with hg_cycle_reader_read/_reap/_kill from its
 * event loop; `hourglass -t` and the start wait for one (hg_cycle_load).
 */

#ifndef HG_CYCLE_READER_H
#define HG_CYCLE_READER_H

#include "hg_core.h"
#include "hg_cycle.h"

/* How long a reader may take when no configuration says (-t, start). */
#define HG_CYCLE_READ_TIMEOUT_MS  (60 * 1000)

/* argv[1] of the reader process. */
#define HG_CYCLE_READER_ARG  "--cycle-reader"

typedef struct hg_cycle_reader_s {
    pid_t pid;                      /* 0: none */
    int fd;                         /* the result's pipe, non-blocking */
    char *stage;                    /* shared page: what it does now */
    char *file;
    char *buf;                      /* the result as read so far */
    size_t len, cap;
    int64_t timeout_ms;
    int status;                     /* waitpid status, once reaped */
    bool eof;
    bool reaped;
    bool killed;                    /* by hg_cycle_reader_kill */
    bool nomem;                     /* its result could not all be kept
                                       (and it was killed for that, not
                                       for its time) */
} hg_cycle_reader_t;

/* Start a reader of FILE; INPUT (NULL: none) is handed to it: the jobs
 * defined through the API ({"api_jobs": [...]}), and "base" to check
 * those against the configuration in force instead of reading FILE
 * (hg_cycle_create_from). HG_ERROR with the reason in err. */
int hg_cycle_reader_start(hg_cycle_reader_t *r, const char *file,
                          const char *prefix, const json_t *input,
                          int64_t timeout_ms, char *err, size_t errlen);
/* Read what is there without blocking: HG_AGAIN while more may come,
 * HG_OK at the end (r->eof), HG_ERROR when out of memory. */
int hg_cycle_reader_read(hg_cycle_reader_t *r);
/* PID, reaped by someone else with STATUS: whether it was this reader. */
bool hg_cycle_reader_reaped(hg_cycle_reader_t *r, pid_t pid, int status);
/* Whether it has ended (reaped now or before); never blocks. */
bool hg_cycle_reader_reap(hg_cycle_reader_t *r);
/* Its time is up: SIGKILL (reap it after). */
void hg_cycle_reader_kill(hg_cycle_reader_t *r);
/*
 * Once reaped: HG_OK with the result in r->buf/r->len (taken by the
 * caller, who frees it), or HG_ERROR with what went wrong in ERRORS
 * ("configuration reader killed by signal 11 (SIGSEGV) while validating
 * job \"x\"", "... timed out after 2 s while reading F").
 */
int hg_cycle_reader_end(hg_cycle_reader_t *r, hg_conf_errors_t *errors);
/* Kill (if it runs), reap and free. */
void hg_cycle_reader_cleanup(hg_cycle_reader_t *r);

/* The cycle a reader's result TEXT describes, its modules not opened
 * (hg_cycle_open_modules), or NULL with the problems (the file's, or the
 * hand-over's) in ERRORS. Parses and builds: the master calls it in a
 * thread; it runs no module code. */
hg_cycle_t *hg_cycle_reader_cycle(const char *text, size_t len,
                                  const char *file, const char *prefix,
                                  hg_conf_errors_t *errors);

/* The executable run as reader: /proc/self/exe unless set (tests and
 * benchmarks, whose own binary is not hourglass, name objs/hourglass). */
void hg_cycle_reader_set_exe(const char *path);

/* main() of the reader process (argv[1] is HG_CYCLE_READER_ARG). */
int hg_cycle_reader_main(int argc, char **argv);

#endif /* HG_CYCLE_READER_H */
