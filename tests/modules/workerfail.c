/*
 * Test module "workerfail": its init succeeds in the cycle reader (so -t,
 * the start and reloads accept it) but fails in a worker while the file
 * named by its section's `fail_while` exists. It exists to make workers
 * die as soon as they start, which the master must answer with re-forks
 * at a growing delay rather than a fork loop. Never load it outside the
 * tests.
 */

#include <stdio.h>
#include <unistd.h>

#include <hourglass/module.h>

static int
workerfail_init(const json_t *conf, const hg_host_t *host, char *err,
    size_t errlen)
{
    const char *path = json_string_value(json_object_get(conf, "fail_while"));

    if (host->process == HG_PROCESS_WORKER && path != NULL
        && access(path, F_OK) == 0)
    {
        (void) snprintf(err, errlen, "workerfail: %s exists (test)", path);
        return -1;
    }
    return 0;
}

static hg_result_t
workerfail_execute(hg_exec_t *exec)
{
    (void) exec;
    return HG_OK;
}

HG_EXPORT const hg_module_t hg_module =
    HG_MODULE_V1("workerfail", workerfail_init, NULL, workerfail_execute,
                 NULL);
