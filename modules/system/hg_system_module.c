/*
 * The bundled `system` executor module: hourglass's own maintenance as
 * jobs (`task = "history_cleanup" | "store_vacuum" | "health_check" |
 * "noop"`).
 *
 * This file owns the task table: one {name, function} row per task, walked
 * by validate (is the name known) and execute (run it). Adding a task is
 * adding a row.
 *
 * It must never be expensive on the `noop` path: noop is what the dispatch
 * benchmark runs 50,000 times a second, so execute does one hash lookup and
 * a few strcmp, and nothing is allocated or cached per call. It must never
 * print JSON by hand: health_check builds its document with jansson.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hourglass/module.h>

typedef hg_result_t (*hg_system_task_fn)(hg_exec_t *exec);

typedef struct hg_system_task_s {
    const char *name;
    hg_system_task_fn run;
} hg_system_task_t;

static const char *const hg_system_keys[] = { "task", NULL };

/* When this process initialised the module (CLOCK_MONOTONIC, ms): in a
 * worker, init runs right after the fork, so this is the worker's start
 * and health_check's uptime is the worker's. */
static int64_t hg_system_started_ms = -1;
static const char *hg_system_version;

static int64_t
system_monotonic_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return 0;
    }
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The store tasks are the host's (hg_host_t.store_task): this worker asks
 * the master, whose store runs the task on a thread and connection of its
 * own, and waits for the answer. A worker never opens the store itself: it
 * was forked from a master that has it open, and SQLite's state does not
 * survive a fork (a connection here corrupts the file). The report it
 * returns is the execution's output. */
static const hg_host_t *hg_system_host;

static hg_result_t
system_store_task(hg_exec_t *exec, const char *task)
{
    json_t *report = NULL;
    char err[512], *text;

    if (!HG_HOST_HAS(hg_system_host, store_task)) {
        hg_exec_set_error(exec, "%s: this hourglass offers no store "
                          "maintenance", task);
        return HG_FATAL;
    }
    err[0] = '\0';
    if (hg_system_host->store_task(task, &report, err, sizeof(err)) != 0) {
        hg_exec_set_error(exec, "%s", err[0] ? err : "store task failed");
        return HG_FAIL;
    }
    text = json_dumps(report, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(report);
    if (text != NULL) {
        (void) hg_exec_output(exec, text, strlen(text));
        free(text);
    }
    return HG_OK;
}

static hg_result_t
system_history_cleanup(hg_exec_t *exec)
{
    return system_store_task(exec, "history_cleanup");
}

static hg_result_t
system_store_vacuum(hg_exec_t *exec)
{
    return system_store_task(exec, "store_vacuum");
}

/* One line of JSON: {"status":"ok","pid":N,"uptime_seconds":S,...}. */
static hg_result_t
system_health_check(hg_exec_t *exec)
{
    json_t *doc;
    char *text;
    int64_t uptime_ms;
    hg_result_t result;

    if (hg_system_started_ms < 0) {
        /* init was not called in this process (a test calling execute
         * directly): count from the first call */
        hg_system_started_ms = system_monotonic_ms();
    }
    uptime_ms = system_monotonic_ms() - hg_system_started_ms;
    if (uptime_ms < 0) {
        uptime_ms = 0;
    }

    text = NULL;
    result = HG_FAIL;
    doc = json_pack("{s:s, s:I, s:f}", "status", "ok",
                    "pid", (json_int_t) getpid(),
                    "uptime_seconds", (double) uptime_ms / 1000.0);
    if (doc == NULL) {
        hg_exec_set_error(exec, "health_check: cannot build the report");
        goto done;
    }
    if (hg_system_version != NULL
        && json_object_set_new(doc, "version",
                               json_string(hg_system_version)) != 0)
    {
        hg_exec_set_error(exec, "health_check: cannot build the report");
        goto done;
    }
    if (HG_HOST_HAS(hg_system_host, store_task)) {
        json_t *report = NULL, *store;
        char err[512];
        if (hg_system_host->store_task("health_check", &report, err,
                                       sizeof(err)) == 0)
        {
            /* the store's own figures, not the task's wrapping */
            store = json_object_get(report, "store");
            json_object_set(doc, "store", store != NULL ? store : report);
            json_decref(report);
        } else {
            json_object_set_new(doc, "status", json_string("degraded"));
            json_object_set_new(doc, "store_error", json_string(err));
            result = HG_FAIL;
            hg_exec_set_error(exec, "health_check: %s", err);
        }
    }
    text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text == NULL) {
        hg_exec_set_error(exec, "health_check: cannot encode the report");
        goto done;
    }
    (void) hg_exec_output(exec, text, strlen(text));
    if (json_object_get(doc, "store_error") == NULL) {
        result = HG_OK;
    }

done:
    free(text);
    json_decref(doc);
    return result;
}

static hg_result_t
system_noop(hg_exec_t *exec)
{
    (void) exec;
    return HG_OK;
}

/* In the order the documentation lists them; the error message follows
 * this order too. */
static const hg_system_task_t hg_system_tasks[] = {
    { "history_cleanup", system_history_cleanup },
    { "store_vacuum", system_store_vacuum },
    { "health_check", system_health_check },
    { "noop", system_noop },
};

#define HG_SYSTEM_NTASKS \
    (sizeof(hg_system_tasks) / sizeof(hg_system_tasks[0]))

static const hg_system_task_t *
system_find(const char *name)
{
    size_t i;

    for (i = 0; i < HG_SYSTEM_NTASKS; i++) {
        if (strcmp(hg_system_tasks[i].name, name) == 0) {
            return &hg_system_tasks[i];
        }
    }
    return NULL;
}

static int
system_init(const json_t *conf, const hg_host_t *host, char *err,
    size_t errlen)
{
    (void) conf;
    (void) err;
    (void) errlen;

    hg_system_started_ms = system_monotonic_ms();
    /* host->version points into the host binary, which outlives us */
    hg_system_version = host != NULL ? host->version : NULL;
    hg_system_host = host;
    return 0;
}

static int
system_validate(const json_t *job, char *err, size_t errlen)
{
    const json_t *task;
    const char *name;
    size_t i, used;
    int n;

    task = json_object_get(job, "task");
    if (task == NULL) {
        (void) snprintf(err, errlen, "task: is required");
        return -1;
    }
    if (!json_is_string(task)) {
        (void) snprintf(err, errlen, "task: must be a string");
        return -1;
    }
    name = json_string_value(task);
    if (system_find(name) != NULL
        && strlen(name) == json_string_length(task))
    {
        return 0;
    }

    /* task: "x" is not one of history_cleanup, store_vacuum, ... -- the
     * list comes from the table, so it can never go stale. */
    n = snprintf(err, errlen, "task: \"%s\" is not one of", name);
    used = n < 0 ? errlen : (size_t) n;
    for (i = 0; i < HG_SYSTEM_NTASKS && used < errlen; i++) {
        n = snprintf(err + used, errlen - used, "%s %s", i > 0 ? "," : "",
                     hg_system_tasks[i].name);
        used = n < 0 ? errlen : used + (size_t) n;
    }
    return -1;
}

static hg_result_t
system_execute(hg_exec_t *exec)
{
    const hg_system_task_t *task;
    const char *name;

    name = json_string_value(json_object_get(hg_exec_job(exec), "task"));
    task = name != NULL ? system_find(name) : NULL;
    if (task == NULL) {
        /* validate let it through, so the definition is not ours to run */
        hg_exec_set_error(exec, "task: \"%s\" is not a system task",
                          name != NULL ? name : "");
        return HG_FATAL;
    }
    return task->run(exec);
}

HG_EXPORT const hg_module_t hg_module =
    HG_MODULE_V1_KEYS("system", hg_system_keys, system_init,
                      system_validate, system_execute, NULL);
