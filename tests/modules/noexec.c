/*
 * Test module "noexec": no execute callback. The loader must refuse it at
 * load time, not let a worker call through NULL later.
 */

#include <hourglass/module.h>

HG_EXPORT const hg_module_t hg_module =
    HG_MODULE_V1("noexec", NULL, NULL, NULL, NULL);
