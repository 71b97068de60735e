/*
 * A binary min-heap of intrusive nodes, keyed by a 64-bit integer.
 *
 * The node lives inside its owner (a timer, a queued execution) and keeps
 * its own position in the heap, so removal and re-keying are O(log n)
 * without a search. Ties are broken by a sequence number given at push
 * time: nodes with equal keys come out in the order they went in, which is
 * what makes "due at the same second" fair. The heap knows nothing of
 * what it orders.
 */

#ifndef HG_HEAP_H
#define HG_HEAP_H

#include "hg_core.h"

#define HG_HEAP_NOT_IN_HEAP SIZE_MAX

typedef struct hg_heap_node_s {
    int64_t key;
    uint64_t seq;                   /* FIFO order among equal keys */
    size_t index;                   /* position, or HG_HEAP_NOT_IN_HEAP */
} hg_heap_node_t;

typedef struct hg_heap_s {
    hg_heap_node_t **nodes;
    size_t count;
    size_t capacity;
    uint64_t next_seq;
} hg_heap_t;

void hg_heap_init(hg_heap_t *heap);
void hg_heap_free(hg_heap_t *heap);     /* frees the array, not the nodes */
void hg_heap_node_init(hg_heap_node_t *node);

int hg_heap_push(hg_heap_t *heap, hg_heap_node_t *node, int64_t key);
hg_heap_node_t *hg_heap_pop(hg_heap_t *heap);
void hg_heap_remove(hg_heap_t *heap, hg_heap_node_t *node);
/* Change the key of a node in the heap (or push it when it is not). */
int hg_heap_update(hg_heap_t *heap, hg_heap_node_t *node, int64_t key);

static inline hg_heap_node_t *
hg_heap_min(const hg_heap_t *heap)
{
    return heap->count > 0 ? heap->nodes[0] : NULL;
}

static inline bool
hg_heap_node_queued(const hg_heap_node_t *node)
{
    return node->index != HG_HEAP_NOT_IN_HEAP;
}

#define hg_heap_entry(node, type, member) \
    ((type *) ((char *) (node) - offsetof(type, member)))

#endif /* HG_HEAP_H */
