/*
 * The service manager's side of the master's life: hg_service.c.
 */

#ifndef HG_SERVICE_H
#define HG_SERVICE_H

#include "hg_core.h"
#include "hg_conf.h"
#include "hg_timer.h"

/* Ready: the first cycle applied and the API listening. Starts the
 * watchdog's pings on MONO when the manager asked for them. */
int hg_service_ready(hg_timers_t *mono, size_t njobs);
void hg_service_reloading(void);
void hg_service_reloaded(size_t njobs);
/* FIRST: the first thing wrong with the new configuration, or NULL. */
void hg_service_reload_failed(const hg_conf_error_t *first);
void hg_service_stopping(void);
/* Before MONO is closed. */
void hg_service_close(void);

#endif /* HG_SERVICE_H */
