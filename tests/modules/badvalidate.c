/*
 * Test module "badvalidate": validate rejects every job, with a message
 * that starts with a key ("mode:") as module.h asks, so that the tests can
 * check that hourglass reports it with the file and line of that key (or
 * the API's 422 naming the field). Its execute must never run.
 *
 * Three modes misbehave instead, to show that reading a configuration
 * cannot take the master down or stall it: `mode = "crash"` dereferences
 * NULL in validate (SIGSEGV), `mode = "exit"` ends the process there with
 * status 3, `mode = "hang"` never returns from it. `mode = "silent"`
 * rejects the job without a word, which hourglass must still report,
 * naming the module. Never load it outside the tests.
 */

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <hourglass/module.h>

static const char *const badvalidate_keys[] = { "mode", NULL };

static int
badvalidate_validate(const json_t *job, char *err, size_t errlen)
{
    const char *mode = json_string_value(json_object_get(job, "mode"));

    if (mode != NULL && strcmp(mode, "crash") == 0) {
        /* both volatile, as in crash.c: the store must happen */
        volatile int *volatile p = NULL;
        *p = 42;
    }
    if (mode != NULL && strcmp(mode, "exit") == 0) {
        _exit(3);
    }
    while (mode != NULL && strcmp(mode, "hang") == 0) {
        (void) sleep(1);
    }
    if (mode != NULL && strcmp(mode, "silent") == 0) {
        return -1;
    }
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
