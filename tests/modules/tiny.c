/*
 * Test module "tiny": its hg_module says it is 8 bytes long, smaller than
 * any version 1 module, as a truncated or foreign struct would. The loader
 * must refuse it before reading past the size it was told (the name is
 * there only for the tests that list every test module's name).
 */

#include <hourglass/module.h>

static hg_result_t
tiny_execute(hg_exec_t *exec)
{
    (void) exec;
    return HG_FATAL;
}

HG_EXPORT const hg_module_t hg_module = {
    HG_MODULE_ABI_VERSION,
    8,                              /* size: too small for version 1 */
    "tiny",
    NULL,
    NULL,
    tiny_execute,
    NULL,
    NULL
};
