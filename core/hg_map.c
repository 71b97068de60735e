/*
 * hg_map.c: FNV-1a hashed, linear probing; the table doubles at 70% use
 * (tombstones included) so probes stay short.
 */

#include "hg_core.h"

#include "hg_map.h"

uint64_t
hg_map_hash(const char *key)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *key != '\0'; key++) {
        h ^= (unsigned char) *key;
        h *= 1099511628211ULL;
    }
    return h;
}

void
hg_map_init(hg_map_t *map)
{
    memset(map, 0, sizeof(*map));
}

void
hg_map_free(hg_map_t *map)
{
    free(map->slots);
    hg_map_init(map);
}

void
hg_map_free_values(hg_map_t *map)
{
    size_t i = 0;
    const char *key;
    void *value;

    while (hg_map_next(map, &i, &key, &value)) {
        free(value);
    }
    hg_map_free(map);
}

static hg_map_slot_t *
hg_map_find(const hg_map_t *map, const char *key, uint64_t hash)
{
    size_t mask, i;

    if (map->capacity == 0) {
        return NULL;
    }
    mask = map->capacity - 1;
    for (i = hash & mask;; i = (i + 1) & mask) {
        hg_map_slot_t *slot = &map->slots[i];
        if (slot->key == NULL) {
            return NULL;
        }
        if (slot->value != NULL && slot->hash == hash
            && strcmp(slot->key, key) == 0)
        {
            return slot;
        }
    }
}

void *
hg_map_get(const hg_map_t *map, const char *key)
{
    hg_map_slot_t *slot = hg_map_find(map, key, hg_map_hash(key));

    return slot != NULL ? slot->value : NULL;
}

static int
hg_map_grow(hg_map_t *map)
{
    hg_map_slot_t *old = map->slots;
    size_t old_capacity = map->capacity, i, mask;
    size_t capacity = old_capacity ? old_capacity * 2 : 16;

    /* Only tombstones made the table look full: rehash at the same size. */
    if (old_capacity > 0 && map->count * 2 < old_capacity) {
        capacity = old_capacity;
    }
    map->slots = calloc(capacity, sizeof(*map->slots));
    if (map->slots == NULL) {
        map->slots = old;
        return HG_ERROR;
    }
    map->capacity = capacity;
    map->used = map->count;
    mask = capacity - 1;
    for (i = 0; i < old_capacity; i++) {
        size_t j;
        if (old[i].key == NULL || old[i].value == NULL) {
            continue;
        }
        for (j = old[i].hash & mask; map->slots[j].key != NULL;
             j = (j + 1) & mask)
        {
        }
        map->slots[j] = old[i];
    }
    free(old);
    return HG_OK;
}

int
hg_map_put(hg_map_t *map, const char *key, void *value)
{
    uint64_t hash;
    hg_map_slot_t *slot;
    size_t mask, i;

    if (value == NULL) {
        return HG_ERROR;                /* NULL marks a tombstone */
    }
    hash = hg_map_hash(key);
    slot = hg_map_find(map, key, hash);

    if (slot != NULL) {
        slot->key = key;
        slot->value = value;
        return HG_OK;
    }
    if ((map->used + 1) * 10 >= map->capacity * 7) {
        if (hg_map_grow(map) != HG_OK) {
            return HG_ERROR;
        }
    }
    mask = map->capacity - 1;
    for (i = hash & mask; map->slots[i].key != NULL && map->slots[i].value != NULL;
         i = (i + 1) & mask)
    {
    }
    if (map->slots[i].key == NULL) {
        map->used++;
    }
    map->slots[i].key = key;
    map->slots[i].value = value;
    map->slots[i].hash = hash;
    map->count++;
    return HG_OK;
}

void *
hg_map_remove(hg_map_t *map, const char *key)
{
    hg_map_slot_t *slot = hg_map_find(map, key, hg_map_hash(key));
    void *value;

    if (slot == NULL) {
        return NULL;
    }
    value = slot->value;
    slot->value = NULL;     /* tombstone: keeps probe chains intact */
    map->count--;
    return value;
}

bool
hg_map_next(const hg_map_t *map, size_t *iter, const char **key,
            void **value)
{
    while (*iter < map->capacity) {
        hg_map_slot_t *slot = &map->slots[(*iter)++];
        if (slot->key != NULL && slot->value != NULL) {
            *key = slot->key;
            *value = slot->value;
            return true;
        }
    }
    return false;
}
