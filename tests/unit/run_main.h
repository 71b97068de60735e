/*
 * run_main.h: a command's main (hg_crontab_main, hg_client_main, ...)
 * run in the test's own process with its stdout and stderr kept, for the
 * tests that refuse its allocations one by one (fault_alloc.h): in a
 * child, what a failure path leaks would be lost with the child, while
 * here ASan's leak checker and valgrind see it.
 *
 * The output goes through temporary files, not pipes: a command that
 * writes more than a pipe holds would block on its own test.
 *
 * Include fault_alloc.h before this file to refuse an allocation of the
 * command's (run_main's FAULT argument): armed and disarmed around the
 * command only, so that run_main's own work is never refused.
 */

#ifndef RUN_MAIN_H
#define RUN_MAIN_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    int status;
    bool fired;                     /* the armed allocation was refused */
    char *out;                      /* malloc'd, NUL-terminated */
    char *err;
} run_main_t;

/* The contents of the open file FD from its start, malloc'd (real). */
static char *
run_main_slurp(int fd)
{
    off_t len = lseek(fd, 0, SEEK_END);
    char *buf;

    if (len < 0 || lseek(fd, 0, SEEK_SET) != 0) {
        return NULL;
    }
    buf = calloc(1, (size_t) len + 1);
    if (buf != NULL && read(fd, buf, (size_t) len) != len) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* A file for one stream, unlinked at once: only its descriptor stays. */
static int
run_main_tmp(void)
{
    char path[] = "/tmp/hg_run_main.XXXXXX";
    int fd = mkstemp(path);

    if (fd >= 0) {
        unlink(path);
    }
    return fd;
}

/*
 * Runs MAIN(argc, argv) with stdout and stderr sent to files, refusing
 * its allocation number FAULT (0: none; needs fault_alloc.h); fills R.
 * Returns 0, or -1 if the streams could not be set up or put back.
 */
static int
run_main(int (*main_fn)(int, char **), int argc, char **argv,
         unsigned long fault, run_main_t *r)
{
    int out, err, saved_out, saved_err, rc = -1;

    memset(r, 0, sizeof(*r));
    fflush(stdout);
    fflush(stderr);
    out = run_main_tmp();
    err = run_main_tmp();
    saved_out = dup(1);
    saved_err = dup(2);
    if (out < 0 || err < 0 || saved_out < 0 || saved_err < 0
        || dup2(out, 1) < 0 || dup2(err, 2) < 0)
    {
        goto done;
    }
#ifdef FAULT_ALLOC_H
    if (fault > 0) {
        fault_alloc_arm(fault);
    }
    r->status = main_fn(argc, argv);
    r->fired = fault > 0 && fault_alloc_disarm();
#else
    (void) fault;
    r->status = main_fn(argc, argv);
#endif
    fflush(stdout);
    fflush(stderr);
    if (dup2(saved_out, 1) < 0 || dup2(saved_err, 2) < 0) {
        goto done;
    }
    clearerr(stdout);
    r->out = run_main_slurp(out);
    r->err = run_main_slurp(err);
    rc = r->out != NULL && r->err != NULL ? 0 : -1;

done:
    if (saved_out >= 0) {
        dup2(saved_out, 1);
        close(saved_out);
    }
    if (saved_err >= 0) {
        dup2(saved_err, 2);
        close(saved_err);
    }
    if (out >= 0) {
        close(out);
    }
    if (err >= 0) {
        close(err);
    }
    return rc;
}

static void
run_main_free(run_main_t *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

#endif /* RUN_MAIN_H */
