/*
 * Test module "badabi": claims ABI version 999, which no hourglass speaks.
 * The loader must refuse it with a message naming both versions, and never
 * call anything in it. The initializer is written out by hand because
 * HG_MODULE_V1 would (rightly) fill in the real version.
 */

#include <hourglass/module.h>

static hg_result_t
badabi_execute(hg_exec_t *exec)
{
    (void) exec;
    return HG_FATAL;
}

HG_EXPORT const hg_module_t hg_module = {
    999,                            /* abi_version: from the future */
    (uint32_t) sizeof(hg_module_t),
    "badabi",
    NULL,
    NULL,
    badabi_execute,
    NULL,
    NULL
};
