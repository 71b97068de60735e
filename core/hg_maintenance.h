/*
 * Store maintenance run by the `system` module's tasks in a worker
 * (hg_host_t.store_task): retention cleanup, vacuum, health. The worker
 * opens a store connection of its own for the task (the master's writer
 * thread does not exist in a forked child) and closes it after, so the
 * master's event loop never runs these long operations.
 */

#ifndef HG_MAINTENANCE_H
#define HG_MAINTENANCE_H

#include "hg_core.h"
#include "hg_conf.h"

/* The configuration the tasks use (the worker's cycle). */
void hg_maintenance_set_conf(const hg_conf_t *conf);

int hg_maintenance_task(const char *task, json_t **report, char *err,
                        size_t errlen);

#endif /* HG_MAINTENANCE_H */
