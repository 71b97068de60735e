/*
 * Test module "crash": execute dereferences a NULL pointer, so the worker
 * running it dies of SIGSEGV. It exists to show that a module bug takes
 * down one worker, which the master replaces, and nothing else.
 * Never load it outside the tests.
 */

#include <hourglass/module.h>

static hg_result_t
crash_execute(hg_exec_t *exec)
{
    /* volatile: the compiler may not prove the store away or turn it
     * into a trap of its own choosing */
    int *volatile p = NULL;

    (void) exec;
    *p = 42;
    return HG_OK;
}

HG_EXPORT const hg_module_t hg_module =
    HG_MODULE_V1("crash", NULL, NULL, crash_execute, NULL);
