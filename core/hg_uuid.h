/*
 * Execution ids: UUIDv7 (RFC 9562), time-sortable. Within one millisecond
 * the 12-bit rand_a field is a counter, so ids made by one process sort in
 * the order they were made.
 */

#ifndef HG_UUID_H
#define HG_UUID_H

#include "hg_core.h"

#define HG_UUID_LEN  36             /* text form, without the NUL */

void hg_uuid_v7(char out[HG_UUID_LEN + 1]);
/* A fast non-cryptographic random number (jitter, ids), seeded from
 * getrandom once per process; call hg_random_reseed after fork. */
uint64_t hg_random(void);
void hg_random_reseed(void);

#endif /* HG_UUID_H */
