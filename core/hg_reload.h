/*
 * A new configuration put in force: hg_reload.c.
 */

#ifndef HG_RELOAD_H
#define HG_RELOAD_H

#include "hg_scheduler.h"

/* The whole cycle at once: at start, before the loop runs. */
int hg_reload_apply_all(hg_master_t *m, hg_cycle_t *cycle);
void hg_reload_free(hg_master_t *m);
bool hg_reload_running(const hg_master_t *m);
int hg_reload_start(hg_master_t *m);
/* The pool reaped a child that is no worker: the reader, perhaps
 * (then true). */
bool hg_reload_reaped(hg_master_t *m, pid_t pid, int status);

#endif /* HG_RELOAD_H */
