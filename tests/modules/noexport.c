/*
 * Test module "noexport": a shared object without an exported hg_module,
 * the mistake of forgetting HG_EXPORT under -fvisibility=hidden. The object
 * below is complete and correct but hidden, so dlsym cannot find it and
 * the loader must say that the file is not an hourglass module.
 */

#include <hourglass/module.h>

static hg_result_t
noexport_execute(hg_exec_t *exec)
{
    (void) exec;
    return HG_OK;
}

/* no HG_EXPORT: not in the dynamic symbol table */
const hg_module_t hg_module =
    HG_MODULE_V1("noexport", NULL, NULL, noexport_execute, NULL);
