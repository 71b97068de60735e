/*
 * Test module "badresult": its execute breaks the module contract in the
 * way the job's `mode` says, so that the tests can check what the worker
 * and the master make of it.
 *   mode = "code"   returns 42, which is none of HG_OK, HG_FAIL, HG_RETRY,
 *                   HG_FATAL: the worker must record a failure naming the
 *                   module and the value, not pass the number on
 *   mode = "exit"   ends the worker process with status 7 (a library's
 *                   exit() in the middle of a job): the master must record
 *                   the execution crashed with that status and replace the
 *                   worker
 * Never load it outside the tests.
 */

#include <string.h>
#include <unistd.h>

#include <hourglass/module.h>

static const char *const badresult_keys[] = { "mode", NULL };

static hg_result_t
badresult_execute(hg_exec_t *exec)
{
    const char *mode = json_string_value(json_object_get(hg_exec_job(exec),
                                                         "mode"));

    if (mode != NULL && strcmp(mode, "exit") == 0) {
        _exit(7);
    }
    return (hg_result_t) 42;
}

HG_EXPORT const hg_module_t hg_module =
    HG_MODULE_V1_KEYS("badresult", badresult_keys, NULL, NULL,
                      badresult_execute, NULL);
