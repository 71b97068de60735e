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

#endif /* HG_METER_H */
