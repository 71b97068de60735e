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
    /* Both volatile: a volatile pointer alone is not enough, gcc -O2
     * still drops the store to the (non-volatile) int as dead. A store to
     * a volatile object must happen, through whatever p holds. */
    volatile int *volatile p = NULL;

    (void) exec;
    *p = 42;
    return HG_OK;
}

HG_EXPORT const hg_module_t hg_module =
    HG_MODULE_V1("crash", NULL, NULL, crash_execute, NULL);
