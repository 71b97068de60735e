/*
 * Test module "noname": hg_module's name is empty. A job could never name
 * its type, so the loader must refuse it, saying which file.
 */

#include <hourglass/module.h>

static hg_result_t
noname_execute(hg_exec_t *exec)
{
    (void) exec;
    return HG_FATAL;
}

HG_EXPORT const hg_module_t hg_module =
    HG_MODULE_V1("", NULL, NULL, noname_execute, NULL);
