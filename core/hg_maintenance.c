/*
 * hg_maintenance.c: the store tasks behind hg_host_t.store_task, both
 * ends. In a worker it only builds the request and reads the answer: it
 * never opens the store and never calls SQLite (a forked process must not;
 * see hg_store.h). In the master it turns a request into a store task and
 * the finished task into the answer; it never waits: the store runs the
 * task on its own thread.
 */

#include "hg_core.h"

#include "hg_maintenance.h"
#include "hg_timer.h"
#include "hg_json.h"

/* The tasks a worker may ask for, with the store's part of each. */
static const struct {
    const char *name;
    hg_store_task_kind_t kind;
} hg_maintenance_tasks[] = {
    { "history_cleanup", HG_STORE_TASK_CLEANUP },
    { "store_vacuum", HG_STORE_TASK_VACUUM },
    { "health_check", HG_STORE_TASK_HEALTH },
};

/* --- in a worker ---------------------------------------------------------- */

int
hg_maintenance_ask(hg_ipc_buf_t *out, const char *exec_id, const char *task)
{
    hg_ipc_begin(out, HG_IPC_STORE_TASK);
    hg_ipc_put_str(out, HG_IPC_F_EXEC_ID, exec_id);
    hg_ipc_put_str(out, HG_IPC_F_STORE_TASK, task);
    return hg_ipc_end(out);
}

int
hg_maintenance_answer(const hg_ipc_frame_t *frame, json_t **report,
                      char *err, size_t errlen)
{
    const hg_ipc_field_t *text;
    json_error_t jerr;
    uint32_t ok = 0;
    char *error;

    *report = NULL;
    if (hg_ipc_get_u32(frame, HG_IPC_F_STORE_OK, &ok) != HG_OK) {
        snprintf(err, errlen, "the master's answer to a store task has no "
                 "outcome");
        return HG_ERROR;
    }
    if (!ok) {
        error = hg_ipc_get_strdup(frame, HG_IPC_F_STORE_ERROR);
        snprintf(err, errlen, "%s", error != NULL ? error
                 : "the store task failed (no reason given)");
        free(error);
        return HG_ERROR;
    }
    text = hg_ipc_field(frame, HG_IPC_F_STORE_REPORT);
    if (text != NULL) {
        *report = json_loadb((const char *) text->data, text->len, 0, &jerr);
    }
    if (!json_is_object(*report)) {
        json_decref(*report);
        *report = NULL;
        snprintf(err, errlen, "the master's report of a store task is not "
                 "a JSON object");
        return HG_ERROR;
    }
    return HG_OK;
}

/* --- in the master -------------------------------------------------------- */

static int64_t
hg_maintenance_now_ms(void)
{
    return hg_clock_ns(CLOCK_REALTIME) / HG_NSEC_PER_MSEC;
}

hg_maintenance_request_t *
hg_maintenance_start(hg_store_t *store, const hg_conf_t *conf,
                     const char *name, pid_t worker, const char *exec_id,
                     char *err, size_t errlen)
{
    hg_maintenance_request_t *req;
    size_t i;

    for (i = 0; i < HG_NELEMS(hg_maintenance_tasks); i++) {
        if (strcmp(hg_maintenance_tasks[i].name, name) == 0) {
            break;
        }
    }
    if (i == HG_NELEMS(hg_maintenance_tasks)) {
        snprintf(err, errlen, "\"%s\" is not a store task", name);
        return NULL;
    }
    if (strlen(exec_id) >= sizeof(req->exec_id)) {
        snprintf(err, errlen, "%s: execution id \"%.40s...\" is too long",
                 name, exec_id);
        return NULL;
    }
    req = calloc(1, sizeof(*req));
    if (req == NULL) {
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    req->name = hg_maintenance_tasks[i].name;
    req->worker = worker;
    memcpy(req->exec_id, exec_id, strlen(exec_id) + 1);
    req->task.kind = hg_maintenance_tasks[i].kind;
    if (req->task.kind == HG_STORE_TASK_CLEANUP
        && conf->store.retention_ms <= 0)
    {
        /* Retention 0 keeps history forever: nothing to delete, so no
         * write transaction either; the report is the store's health. */
        req->kept_forever = true;
        req->task.kind = HG_STORE_TASK_HEALTH;
    } else {
        /* batch 0: the store's default */
        req->task.older_than = hg_maintenance_now_ms()
                               - conf->store.retention_ms;
    }
    if (hg_store_task(store, &req->task) != HG_OK) {
        snprintf(err, errlen, "%s: %s", name, req->task.error);
        free(req);
        return NULL;
    }
    return req;
}

hg_maintenance_request_t *
hg_maintenance_of(hg_store_task_t *task)
{
    /* A request's task is its first member. */
    return (hg_maintenance_request_t *) task;
}

static json_t *
hg_maintenance_report(hg_store_t *store, const hg_maintenance_request_t *req)
{
    json_t *report, *health = NULL;

    report = json_pack("{s:s, s:s}", "task", req->name,
                       "driver", store->driver->name);
    if (report == NULL) {
        return NULL;
    }
    if (req->task.kind == HG_STORE_TASK_CLEANUP) {
        json_object_set_new(report, "deleted",
                            json_integer((json_int_t) req->task.deleted));
        json_object_set_new(report, "older_than_ms",
                            json_integer(req->task.older_than));
        json_object_set_new(report, "batch",
                            json_integer((json_int_t) req->task.batch));
    } else if (req->kept_forever) {
        json_object_set_new(report, "deleted", json_integer(0));
        json_object_set_new(report, "note",
                            json_string("store.retention is 0: history "
                                        "is kept forever"));
    }
    if (hg_store_health(store, &health) == HG_OK) {
        json_object_set_new(report, "store", health);
    }
    return report;
}

int
hg_maintenance_reply(hg_ipc_buf_t *out, hg_store_t *store,
                     const hg_maintenance_request_t *req)
{
    json_t *report;
    char *text;

    if (req->task.rc != HG_OK) {
        return hg_maintenance_refuse(out, req->exec_id, req->task.error);
    }
    report = hg_maintenance_report(store, req);
    text = report != NULL ? hg_json_dumps(report, JSON_COMPACT
                                               | JSON_PRESERVE_ORDER)
                          : NULL;
    json_decref(report);
    if (text == NULL) {
        return hg_maintenance_refuse(out, req->exec_id, "out of memory for "
                                     "the store task's report");
    }
    hg_ipc_begin(out, HG_IPC_STORE_REPLY);
    hg_ipc_put_str(out, HG_IPC_F_EXEC_ID, req->exec_id);
    hg_ipc_put_u32(out, HG_IPC_F_STORE_OK, 1);
    hg_ipc_put_str(out, HG_IPC_F_STORE_REPORT, text);
    free(text);
    return hg_ipc_end(out);
}

int
hg_maintenance_refuse(hg_ipc_buf_t *out, const char *exec_id,
                      const char *error)
{
    hg_ipc_begin(out, HG_IPC_STORE_REPLY);
    hg_ipc_put_str(out, HG_IPC_F_EXEC_ID, exec_id);
    hg_ipc_put_u32(out, HG_IPC_F_STORE_OK, 0);
    hg_ipc_put_str(out, HG_IPC_F_STORE_ERROR, error);
    return hg_ipc_end(out);
}
