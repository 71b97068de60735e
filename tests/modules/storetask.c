/*
 * Test module "storetask": execute asks the master, through the host's
 * store_task service, for the store task named by the job's `task` key,
 * whatever it is (the system module asks only for tasks that exist). A
 * refusal becomes the execution's error; a report, its output.
 */

#include <stdlib.h>
#include <string.h>

#include <hourglass/module.h>

static const char *const storetask_keys[] = { "task", NULL };
static const hg_host_t *storetask_host;

static int
storetask_init(const json_t *conf, const hg_host_t *host, char *err,
    size_t errlen)
{
    (void) conf;
    (void) err;
    (void) errlen;
    storetask_host = host;
    return 0;
}

static hg_result_t
storetask_execute(hg_exec_t *exec)
{
    const char *task = json_string_value(
        json_object_get(hg_exec_job(exec), "task"));
    json_t *report = NULL;
    char err[512], *text;

    if (task == NULL || !HG_HOST_HAS(storetask_host, store_task)
        || storetask_host->store_task == NULL)
    {
        hg_exec_set_error(exec, "storetask: no task, or no store_task");
        return HG_FATAL;
    }
    err[0] = '\0';
    if (storetask_host->store_task(task, &report, err, sizeof(err)) != 0) {
        hg_exec_set_error(exec, "%s", err);
        return HG_FATAL;
    }
    text = json_dumps(report, JSON_COMPACT);
    json_decref(report);
    if (text != NULL) {
        (void) hg_exec_output(exec, text, strlen(text));
        free(text);
    }
    return HG_OK;
}

HG_EXPORT const hg_module_t hg_module =
    HG_MODULE_V1_KEYS("storetask", storetask_keys, storetask_init, NULL,
                      storetask_execute, NULL);
