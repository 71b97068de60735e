/*
 * Redis coordination beside the SQLite store (store.driver "redis"):
 * hg_store_redis.c. The SQLite driver keeps this instance's history at
 * store.path and calls these from its writer thread; the fire times the
 * instances share are claimed here, one key per (job, fire time).
 */

#ifndef HG_STORE_REDIS_H
#define HG_STORE_REDIS_H

#include "hg_conf.h"
#include "hg_map.h"
#include "hg_store_writer.h"

typedef struct hg_redis_s hg_redis_t;

/* Connects to store.url, joins as cluster.instance under a new term and
 * returns the coordinator, or NULL with the reason in err (naming the
 * key and the server). Called before the writer thread starts; from then
 * on only the writer thread uses it. */
hg_redis_t *hg_redis_open(const hg_conf_t *conf, char *err, size_t errlen);
void hg_redis_close(hg_redis_t *r);

/* Writer thread, before the batch's transaction: claims the fire time of
 * each record of BATCH that asks (row.r.claim) and publishes the finals'
 * start and success times (the cluster's dead-man windows). The records
 * whose fire time another instance holds go into LOST (id -> item).
 * HG_ERROR when Redis cannot say (err): nothing may be written, the batch
 * is retried. */
int hg_redis_prepare(hg_redis_t *r, const hg_store_batch_t *batch,
                     hg_map_t *lost, char *err, size_t errlen);

/* Writer thread, every third of the lease: the instance's heartbeat, the
 * leader's key, the picture of the cluster (hg_store_writer_set_view:
 * with "leader" and each job's last start and success, "jobs"),
 * and fencing when another process joined under this instance's name.
 * Returns the wait before the next call. */
int64_t hg_redis_tick(hg_redis_t *r, hg_store_writer_t *w);

/* `hourglass -t`: store.url parses and the server answers PING. */
int hg_redis_check(const hg_conf_t *conf, char *err, size_t errlen);

#endif /* HG_STORE_REDIS_H */
