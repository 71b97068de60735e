/*
 * The bundled `shell` executor module: runs a job's `command` with
 * /bin/sh -c, or its `argv` directly (with a PATH search), and records the
 * exit status and the interleaved stdout+stderr.
 *
 * This file owns the module object, its key table, and the steps of an
 * execution: read the definition, resolve the identity, build the
 * environment, spawn (hg_shell_spawn.c), run (hg_shell_io.c), and map the
 * outcome to a result:
 *   exit 0 -> HG_OK; exit 75 (EX_TEMPFAIL) -> HG_RETRY; any other exit or a
 *   signal -> HG_FAIL; a child that could not be started (cwd, user, exec)
 *   -> HG_FAIL with the step and errno, never an ambiguous exit 127.
 *
 * It never runs anything in the master (validate only reads JSON and looks
 * up users), never leaves a child unreaped or an fd open, and never moves
 * the child out of the worker's process group.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <hourglass/module.h>

#include "hg_shell.h"

#define HG_SHELL_ERRLEN       512
#define HG_SHELL_EX_TEMPFAIL  75

/* The keys of a shell job beyond the common job keys (the core rejects
 * any other, with a did-you-mean hint, before validate is called). */
static const char *const hg_shell_keys[] = {
    "command", "argv", "env", "pass_env", "inherit_env", "cwd", "user",
    "group", "umask", "output_limit", NULL
};

/* host->prefix, copied: a relative `cwd` is taken relative to it, as every
 * other relative path of the configuration is. NULL: the worker's cwd. */
static char *hg_shell_prefix;

static int
shell_init(const json_t *conf, const hg_host_t *host, char *err,
    size_t errlen)
{
    (void) conf;

    free(hg_shell_prefix);
    hg_shell_prefix = NULL;
    if (host != NULL && host->size >= offsetof(hg_host_t, prefix)
                                       + sizeof(host->prefix)
        && host->prefix != NULL && host->prefix[0] != '\0')
    {
        hg_shell_prefix = strdup(host->prefix);
        if (hg_shell_prefix == NULL) {
            return hg_shell_err(err, errlen, "shell: out of memory");
        }
    }
    return 0;
}

static void
shell_fini(void)
{
    free(hg_shell_prefix);
    hg_shell_prefix = NULL;
    hg_shell_spawn_forget();
}

static int
shell_validate(const json_t *job, char *err, size_t errlen)
{
    hg_shell_spec_t spec;
    hg_shell_identity_t id;

    if (hg_shell_spec_read(job, &spec, err, errlen) != 0) {
        return -1;
    }
    /* Only that the user and group exist: whether the worker may switch
     * to them is known only where it runs (execute). */
    if (hg_shell_identity_resolve(&spec, false, &id, err, errlen) != 0) {
        hg_shell_spec_free(&spec);
        return -1;
    }
    hg_shell_identity_free(&id);
    hg_shell_spec_free(&spec);
    return 0;
}

/* The step that failed in the child, as the user should read it. */
static void
shell_report_error(hg_exec_t *exec, const hg_shell_launch_t *launch,
    const hg_shell_spec_t *spec, const hg_shell_report_t *report)
{
    const char *why;

    why = strerror(report->error);
    switch ((hg_shell_stage_t) report->stage) {
    case HG_SHELL_STAGE_EXEC:
        hg_exec_set_error(exec, "exec \"%s\": %s", launch->file, why);
        break;
    case HG_SHELL_STAGE_CWD:
        hg_exec_set_error(exec, "cwd \"%s\": %s", launch->cwd, why);
        break;
    case HG_SHELL_STAGE_SETGROUPS:
        hg_exec_set_error(exec, "user: setgroups: %s", why);
        break;
    case HG_SHELL_STAGE_SETGID:
        hg_exec_set_error(exec, "%s: setgid: %s",
                          spec->group != NULL ? "group" : "user", why);
        break;
    case HG_SHELL_STAGE_SETUID:
        hg_exec_set_error(exec, "user: setuid: %s", why);
        break;
    case HG_SHELL_STAGE_SETUP:
    case HG_SHELL_STAGE_NONE:
    default:
        hg_exec_set_error(exec, "cannot start the job's process: %s", why);
        break;
    }
}

static hg_result_t
shell_result(hg_exec_t *exec, const hg_shell_outcome_t *outcome)
{
    char name[32];
    int code, signo;

    if (outcome->cancelled) {
        hg_exec_set_error(exec, "cancelled");
        return HG_FAIL;
    }
    if (outcome->lost) {
        hg_exec_set_error(exec, "the job's exit status was lost (the worker"
                          " reaped it elsewhere: is SIGCHLD ignored?)");
        return HG_FAIL;
    }
    if (WIFSIGNALED(outcome->status)) {
        signo = WTERMSIG(outcome->status);
        hg_exec_set_signal(exec, signo);
        hg_exec_set_error(exec, "killed by signal %d (%s)", signo,
                          hg_shell_signal_name(signo, name, sizeof(name)));
        return HG_FAIL;
    }
    if (!WIFEXITED(outcome->status)) {
        hg_exec_set_error(exec, "unexpected wait status %#x",
                          (unsigned) outcome->status);
        return HG_FAIL;
    }
    code = WEXITSTATUS(outcome->status);
    hg_exec_set_exit_code(exec, code);
    if (code == 0) {
        return HG_OK;
    }
    if (code == HG_SHELL_EX_TEMPFAIL) {
        hg_exec_set_error(exec, "exit code %d (EX_TEMPFAIL: retry)", code);
        return HG_RETRY;
    }
    hg_exec_set_error(exec, "exit code %d", code);
    return HG_FAIL;
}

static hg_result_t
shell_execute(hg_exec_t *exec)
{
    const char *sh_argv[4];
    char err[HG_SHELL_ERRLEN], *cwd;
    hg_shell_identity_t id;
    hg_shell_outcome_t outcome;
    hg_shell_launch_t launch;
    hg_shell_proc_t proc;
    hg_shell_spec_t spec;
    const void *payload;
    size_t payload_len, nowned;
    char **envp;
    hg_result_t result;

    memset(&id, 0, sizeof(id));
    memset(&launch, 0, sizeof(launch));
    envp = NULL;
    nowned = 0;
    cwd = NULL;
    proc.pid = -1;
    proc.pidfd = proc.in_fd = proc.out_fd = proc.report_fd = -1;
    result = HG_FAIL;

    /* validate accepted this definition; failing here means it changed
     * under us, and no retry would help. */
    if (hg_shell_spec_read(hg_exec_job(exec), &spec, err, sizeof(err)) != 0)
    {
        hg_exec_set_error(exec, "%s", err);
        return HG_FATAL;
    }
    if (hg_shell_identity_resolve(&spec, true, &id, err, sizeof(err)) != 0) {
        hg_exec_set_error(exec, "%s", err);
        goto done;
    }
    envp = hg_shell_env_build(exec, &spec, &id, &nowned, err, sizeof(err));
    if (envp == NULL) {
        hg_exec_set_error(exec, "%s", err);
        goto done;
    }

    if (spec.cwd != NULL && spec.cwd[0] != '/' && hg_shell_prefix != NULL) {
        if (asprintf(&cwd, "%s/%s", hg_shell_prefix, spec.cwd) < 0) {
            cwd = NULL;
            hg_exec_set_error(exec, "cwd: out of memory");
            goto done;
        }
        launch.cwd = cwd;
    } else {
        launch.cwd = spec.cwd;
    }

    if (spec.command != NULL) {
        sh_argv[0] = "sh";
        sh_argv[1] = "-c";
        sh_argv[2] = spec.command;
        sh_argv[3] = NULL;
        launch.file = "/bin/sh";
        launch.argv = sh_argv;
        launch.search_path = false;
    } else {
        launch.file = spec.argv[0];
        launch.argv = spec.argv;
        launch.search_path = true;
    }
    launch.envp = envp;
    launch.has_umask = spec.has_umask;
    launch.umask = spec.umask;
    launch.identity = &id;
    payload = hg_exec_payload(exec, &payload_len);
    launch.payload = payload;
    launch.payload_len = payload_len;
    launch.cgroup_fd = hg_exec_cgroup_fd(exec);
    launch.nprocs = hg_exec_cgroup_procs(exec, &launch.procs);

    if (hg_shell_spawn(&launch, &proc, err, sizeof(err)) != 0) {
        hg_exec_set_error(exec, "%s", err);
        goto done;
    }
    if (hg_shell_run(exec, &proc, payload, payload_len, &outcome, err,
                     sizeof(err)) != 0)
    {
        /* the child has been killed and reaped */
        hg_exec_set_error(exec, "%s", err);
        goto done;
    }

    if (!outcome.lost) {
        hg_exec_set_usage(exec, &outcome.usage);
    }
    if (!outcome.cancelled && outcome.report.stage != HG_SHELL_STAGE_NONE) {
        shell_report_error(exec, &launch, &spec, &outcome.report);
        goto done;
    }
    result = shell_result(exec, &outcome);

done:
    hg_shell_proc_close(&proc);
    hg_shell_env_free(envp, nowned);
    hg_shell_identity_free(&id);
    hg_shell_spec_free(&spec);
    free(cwd);
    return result;
}

HG_EXPORT const hg_module_t hg_module =
    HG_MODULE_V1_KEYS("shell", hg_shell_keys, shell_init, shell_validate,
                      shell_execute, shell_fini);
