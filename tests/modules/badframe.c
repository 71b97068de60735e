/*
 * A module that breaks the worker's protocol: its execute writes garbage on
 * the worker's result pipe (fd 4, HG_WORKER_OUT_FD), as a memory-corrupting
 * module might. The master must log the malformed frame, record the
 * execution as crashed and replace the worker.
 */

#include <unistd.h>

#include <hourglass/module.h>

static hg_result_t
badframe_execute(hg_exec_t *exec)
{
    static const char junk[] = "this is not an hourglass frame, not at all";
    ssize_t n;

    (void) exec;
    n = write(4, junk, sizeof(junk));
    (void) n;
    sleep(5);
    return HG_OK;
}

HG_EXPORT const hg_module_t hg_module =
    HG_MODULE_V1("badframe", NULL, NULL, badframe_execute, NULL);
