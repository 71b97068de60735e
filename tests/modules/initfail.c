/*
 * Test module "initfail": init refuses to start. The loader must report
 * the module's own message and not use the module (no validate, no
 * execute, and no fini for an init that failed).
 */

#include <stdio.h>

#include <hourglass/module.h>

static int
initfail_init(const json_t *conf, const hg_host_t *host, char *err,
    size_t errlen)
{
    (void) conf;
    (void) host;
    (void) snprintf(err, errlen, "initfail: refusing to start (test)");
    return -1;
}

static hg_result_t
initfail_execute(hg_exec_t *exec)
{
    hg_exec_set_error(exec, "initfail: execute after a failed init");
    return HG_FATAL;
}

HG_EXPORT const hg_module_t hg_module =
    HG_MODULE_V1("initfail", initfail_init, NULL, initfail_execute, NULL);
