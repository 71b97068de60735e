/*
 * Test module "initquiet": init logs through the host's log service, then
 * fails without a message of its own. The log line must come out
 * attributed to the module, and the loader must still say why the module
 * is refused.
 */

#include <hourglass/module.h>

static int
initquiet_init(const json_t *conf, const hg_host_t *host, char *err,
    size_t errlen)
{
    (void) conf;
    (void) err;
    (void) errlen;
    host->log(HG_LOG_WARN, "initquiet", "initquiet: giving up after %d "
              "tries (test)", 3);
    return -1;
}

static hg_result_t
initquiet_execute(hg_exec_t *exec)
{
    hg_exec_set_error(exec, "initquiet: execute after a failed init");
    return HG_FATAL;
}

HG_EXPORT const hg_module_t hg_module =
    HG_MODULE_V1("initquiet", initquiet_init, NULL, initquiet_execute, NULL);
