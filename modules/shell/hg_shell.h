/*
 * Private interface between the files of the shell module. Nothing here is
 * part of the module ABI: the module is built as if out of tree and includes
 * only <hourglass/module.h> and system headers.
 *
 *   hg_shell_module.c  the module object, key table, validate and execute
 *   hg_shell_spec.c    reading a job definition into a hg_shell_spec_t (the
 *                      one place where the keys' types and values are checked,
 *                      shared by validate and execute) and user/group lookup
 *   hg_shell_spawn.c   environment, pipes, starting the child (vfork-like,
 *                      into the execution's cgroup) and everything the
 *                      child does before exec
 *   hg_shell_io.c      the parent's poll loop: payload in, output out,
 *                      cancellation, reaping
 */

#ifndef HG_SHELL_H
#define HG_SHELL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct passwd;

#include <hourglass/module.h>

/* A job definition, read and checked. Strings are borrowed from the job's
 * JSON, which outlives the execution; only the arrays are owned. */
typedef struct hg_shell_spec_s {
    const char *command;            /* run by /bin/sh -c, or NULL */
    const char **argv;              /* NULL-terminated, or NULL (owned) */
    const json_t *env;              /* object of strings, or NULL */
    const json_t *pass_env;         /* array of variable names, or NULL */
    bool inherit_env;               /* the worker's environment as a base */
    const char *cwd;                /* as written, or NULL */
    const json_t *user;             /* string or integer, or NULL */
    const json_t *group;            /* string or integer, or NULL */
    bool has_umask;
    mode_t umask;
} hg_shell_spec_t;

/* Who the child runs as. `change` is false when the child keeps the
 * worker's identity (no user/group, or the same ones as the worker). */
typedef struct hg_shell_identity_s {
    bool change;
    bool set_uid;
    uid_t uid;
    gid_t gid;
    gid_t *groups;                  /* supplementary groups (owned) */
    size_t ngroups;
} hg_shell_identity_t;

/* What the child reports over the close-on-exec pipe when a step between
 * fork and exec fails. Written in one write(2) (smaller than PIPE_BUF). */
typedef enum {
    HG_SHELL_STAGE_NONE = 0,
    HG_SHELL_STAGE_SETUP,           /* prctl, dup2: the child's plumbing */
    HG_SHELL_STAGE_SETGROUPS,
    HG_SHELL_STAGE_SETGID,
    HG_SHELL_STAGE_SETUID,
    HG_SHELL_STAGE_CWD,
    HG_SHELL_STAGE_EXEC
} hg_shell_stage_t;

typedef struct hg_shell_report_s {
    int32_t stage;                  /* hg_shell_stage_t */
    int32_t error;                  /* errno */
} hg_shell_report_t;

/* The parent's side of a running child. Every fd is close-on-exec and -1
 * when closed. */
typedef struct hg_shell_proc_s {
    pid_t pid;
    int pidfd;                      /* readable when the child exits; -1 if
                                       the kernel has no pidfd_open */
    int in_fd;                      /* child's stdin (payload), nonblocking */
    int out_fd;                     /* child's stdout+stderr, nonblocking */
    int report_fd;                  /* hg_shell_report_t, or EOF on exec */
} hg_shell_proc_t;

/* How the child ended, as the parent saw it. */
typedef struct hg_shell_outcome_s {
    bool cancelled;                 /* hg_exec_cancelled: we killed it */
    bool lost;                      /* no status (someone else reaped it) */
    int status;                     /* waitpid status, when !lost */
    struct rusage usage;            /* wait4's, when !lost */
    hg_shell_report_t report;       /* stage != NONE: exec never happened */
} hg_shell_outcome_t;

/* What the child needs, prepared before fork so that the child only makes
 * async-signal-safe calls. */
typedef struct hg_shell_launch_s {
    const char *file;               /* "/bin/sh" or argv[0] */
    const char *const *argv;
    char **envp;
    bool search_path;               /* execvp (argv) or execve (command) */
    const char *cwd;                /* resolved, or NULL */
    bool has_umask;
    mode_t umask;
    const hg_shell_identity_t *identity;
    const void *payload;            /* NULL: stdin is /dev/null */
    size_t payload_len;
    int cgroup_fd;                  /* the execution's cgroup, or -1 */
    const int *procs;               /* v1 cgroup.procs to join (limits) */
    size_t nprocs;
} hg_shell_launch_t;

/* hg_shell_spec.c */
int hg_shell_spec_read(const json_t *job, hg_shell_spec_t *spec, char *err,
    size_t errlen);
void hg_shell_spec_free(hg_shell_spec_t *spec);
/* Resolve user/group to ids. `for_exec` also gathers the supplementary
 * groups and refuses a change of identity when not running as root. */
int hg_shell_identity_resolve(const hg_shell_spec_t *spec, bool for_exec,
    hg_shell_identity_t *id, char *err, size_t errlen);
void hg_shell_identity_free(hg_shell_identity_t *id);
/* The passwd entry of UID: 1 found, 0 none, -1 lookup error (errno).
 * *buf is grown as needed and owned by the caller. */
int hg_shell_getpwuid(uid_t uid, struct passwd *pw, char **buf);
int hg_shell_err(char *err, size_t errlen, const char *fmt, ...)
    HG_PRINTF(3, 4);

/* hg_shell_spawn.c */
char **hg_shell_env_build(hg_exec_t *exec, const hg_shell_spec_t *spec,
    const hg_shell_identity_t *id, size_t *nowned, char *err, size_t errlen);
void hg_shell_env_free(char **envp, size_t nowned);
int hg_shell_spawn(const hg_shell_launch_t *launch, hg_shell_proc_t *proc,
    char *err, size_t errlen);
void hg_shell_proc_close(hg_shell_proc_t *proc);
/* Forget what hg_shell_spawn keeps between executions (fini). */
void hg_shell_spawn_forget(void);

/* hg_shell_io.c */
int hg_shell_run(hg_exec_t *exec, hg_shell_proc_t *proc,
    const void *payload, size_t payload_len, hg_shell_outcome_t *outcome,
    char *err, size_t errlen);
const char *hg_shell_signal_name(int signo, char *buf, size_t len);

#endif /* HG_SHELL_H */
