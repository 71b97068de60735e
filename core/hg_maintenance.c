/*
 * hg_maintenance.c: the store tasks behind hg_host_t.store_task. Runs in
 * a worker only: every call may take as long as the database needs.
 */

#include "hg_core.h"

#include "hg_maintenance.h"
#include "hg_store.h"

#define HG_CLEANUP_BATCH  1000

static const hg_conf_t *hg_maintenance_conf;

void
hg_maintenance_set_conf(const hg_conf_t *conf)
{
    hg_maintenance_conf = conf;
}

static int64_t
hg_maintenance_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
hg_maintenance_cleanup(hg_store_t *store, const hg_conf_t *conf,
                       json_t *report, char *err, size_t errlen)
{
    uint64_t deleted = 0;
    int64_t older_than;

    if (conf->store.retention_ms <= 0) {
        json_object_set_new(report, "deleted", json_integer(0));
        json_object_set_new(report, "note",
                            json_string("store.retention is 0: history is "
                                        "kept forever"));
        return HG_OK;
    }
    older_than = hg_maintenance_now_ms() - conf->store.retention_ms;
    if (hg_store_cleanup(store, older_than, HG_CLEANUP_BATCH, &deleted)
        != HG_OK)
    {
        snprintf(err, errlen, "history_cleanup: deleting executions older "
                 "than the retention failed (%" PRIu64 " deleted before the "
                 "error)", deleted);
        return HG_ERROR;
    }
    json_object_set_new(report, "deleted", json_integer((json_int_t) deleted));
    json_object_set_new(report, "older_than_ms", json_integer(older_than));
    json_object_set_new(report, "batch", json_integer(HG_CLEANUP_BATCH));
    return HG_OK;
}

int
hg_maintenance_task(const char *task, json_t **report, char *err,
                    size_t errlen)
{
    const hg_conf_t *conf = hg_maintenance_conf;
    hg_store_t *store = NULL;
    json_t *out = NULL, *health = NULL;
    char open_err[512];
    int rc = HG_ERROR;

    *report = NULL;
    if (conf == NULL) {
        snprintf(err, errlen, "%s: no configuration in this process", task);
        return HG_ERROR;
    }
    out = json_object();
    if (out == NULL) {
        snprintf(err, errlen, "%s: out of memory", task);
        return HG_ERROR;
    }
    json_object_set_new(out, "task", json_string(task));
    json_object_set_new(out, "driver", json_string(conf->store.driver));
    if (strcmp(conf->store.driver, "memory") == 0) {
        /* The memory store lives in the master; a worker cannot reach it,
         * and it keeps nothing worth cleaning across restarts. */
        json_object_set_new(out, "note", json_string("memory store: nothing "
                                                     "to do in a worker"));
        *report = out;
        return HG_OK;
    }
    store = hg_store_open(conf, open_err, sizeof(open_err));
    if (store == NULL) {
        snprintf(err, errlen, "%s: cannot open the store: %s", task,
                 open_err);
        goto done;
    }
    if (strcmp(task, "history_cleanup") == 0) {
        rc = hg_maintenance_cleanup(store, conf, out, err, errlen);
    } else if (strcmp(task, "store_vacuum") == 0) {
        rc = hg_store_vacuum(store);
        if (rc != HG_OK) {
            snprintf(err, errlen, "store_vacuum: vacuum failed");
        }
    } else if (strcmp(task, "health_check") == 0) {
        rc = HG_OK;
    } else {
        snprintf(err, errlen, "unknown store task \"%s\"", task);
        goto done;
    }
    if (rc == HG_OK && hg_store_health(store, &health) == HG_OK) {
        json_object_set_new(out, "store", health);
    }

done:
    if (store != NULL) {
        hg_store_close(store);
    }
    if (rc == HG_OK) {
        *report = out;
    } else {
        json_decref(out);
    }
    return rc;
}
