/*
 * Test module "dupname": a valid module that calls itself "shell", to
 * check what the loader does with two modules of one name (it must refuse
 * the second with a message naming both files, not pick one silently).
 * Its execute must never run in a test that gets that right.
 */

#include <hourglass/module.h>

static hg_result_t
dupname_execute(hg_exec_t *exec)
{
    hg_exec_set_error(exec, "dupname: this module should never have run");
    return HG_FATAL;
}

HG_EXPORT const hg_module_t hg_module =
    HG_MODULE_V1("shell", NULL, NULL, dupname_execute, NULL);
