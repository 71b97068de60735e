/*
 * A string-keyed hash map (open addressing, linear probing, tombstones).
 * Keys are borrowed: the value's owner keeps the key alive while it is in
 * the map. Used for job ids, so a lookup is O(1) however many jobs exist.
 */

#ifndef HG_MAP_H
#define HG_MAP_H

#include "hg_core.h"

typedef struct hg_map_slot_s {
    const char *key;                /* NULL = empty */
    void *value;                    /* NULL with a key = tombstone */
    uint64_t hash;
} hg_map_slot_t;

typedef struct hg_map_s {
    hg_map_slot_t *slots;
    size_t capacity;                /* a power of two, or 0 */
    size_t count;                   /* live entries */
    size_t used;                    /* live entries + tombstones */
} hg_map_t;

/* FNV-1a, 64 bits, of KEY: the map's, and a job definition's digest. */
uint64_t hg_map_hash(const char *key);
void hg_map_init(hg_map_t *map);
void hg_map_free(hg_map_t *map);
/* For a map whose values are single malloc'd blocks holding their keys:
 * free()s each value, then the map. */
void hg_map_free_values(hg_map_t *map);
void *hg_map_get(const hg_map_t *map, const char *key);
/* Insert or replace; value must not be NULL. */
int hg_map_put(hg_map_t *map, const char *key, void *value);
void *hg_map_remove(hg_map_t *map, const char *key);

/* Iterate: for (i = 0; hg_map_next(map, &i, &key, &value);) */
bool hg_map_next(const hg_map_t *map, size_t *iter, const char **key,
                 void **value);

#endif /* HG_MAP_H */
