/*
 * Test module "badvalidate": validate rejects every job, with a message
 * that starts with a key ("mode:") as module.h asks, so that the tests can
 * check that hourglass reports it with the file and line of that key (or
 * the API's 422 naming the field). Its execute must never run.
 */

#include <stdio.h>

#include <hourglass/module.h>

static const char *const badvalidate_keys[] = { "mode", NULL };

static int
badvalidate_validate(const json_t *job, char *err, size_t errlen)
{
    (void) job;
    (void) snprintf(err, errlen, "mode: must be one of a, b (test)");
    return -1;
}

static hg_result_t
badvalidate_execute(hg_exec_t *exec)
{
    hg_exec_set_error(exec, "badvalidate: execute of a rejected job");
    return HG_FATAL;
}

HG_EXPORT const hg_module_t hg_module =
    HG_MODULE_V1_KEYS("badvalidate", badvalidate_keys, NULL,
                      badvalidate_validate, badvalidate_execute, NULL);
