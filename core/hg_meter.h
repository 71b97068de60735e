/*
 * The master's metrics: hg_meter.c.
 */

#ifndef HG_METER_H
#define HG_METER_H

#include "hg_scheduler.h"

int hg_meter_init(hg_master_t *m);
/* An execution ended with STATUS recorded (final or before a retry). */
void hg_meter_count_end(hg_master_t *m, const hg_execution_t *exec,
                        hg_exec_status_t status, const hg_master_result_t *r);
/* A module's own metrics, summed by module and name. */
void hg_meter_count_module(hg_master_t *m, const hg_execution_t *exec,
                           const json_t *metrics);
int hg_meter_render(hg_master_t *m, FILE *out);
/* What /status says: version, pid, start, uptime, configuration file,
 * reloads by result, workers by state, jobs, queue depth, executions
 * ended by status; NULL when out of memory. */
json_t *hg_meter_status(hg_master_t *m);
/* What /stats says: executions ended by status, jobs by state (as the
 * metrics count them), dispatched and finished totals, queue depth. */
json_t *hg_meter_stats(hg_master_t *m);
/* Whether the daemon is well (workers ready, the store writable, not
 * stopping): {status, problems [...], workers_ready}; *WELL says. */
json_t *hg_meter_health(hg_master_t *m, bool *well);

#endif /* HG_METER_H */
