/*
 * hg_heap.c: the array-backed binary heap. Invariant: nodes[i]->index == i
 * for every node in the heap, and a node not in the heap has index
 * HG_HEAP_NOT_IN_HEAP.
 */

#include "hg_core.h"

#include "hg_heap.h"

void
hg_heap_init(hg_heap_t *heap)
{
    memset(heap, 0, sizeof(*heap));
}

void
hg_heap_free(hg_heap_t *heap)
{
    size_t i;

    for (i = 0; i < heap->count; i++) {
        heap->nodes[i]->index = HG_HEAP_NOT_IN_HEAP;
    }
    free(heap->nodes);
    hg_heap_init(heap);
}

void
hg_heap_node_init(hg_heap_node_t *node)
{
    node->key = 0;
    node->seq = 0;
    node->index = HG_HEAP_NOT_IN_HEAP;
}

static inline bool
hg_heap_less(const hg_heap_node_t *a, const hg_heap_node_t *b)
{
    return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static inline void
hg_heap_place(hg_heap_t *heap, hg_heap_node_t *node, size_t index)
{
    heap->nodes[index] = node;
    node->index = index;
}

static void
hg_heap_sift_up(hg_heap_t *heap, size_t index)
{
    hg_heap_node_t *node = heap->nodes[index];

    while (index > 0) {
        size_t parent = (index - 1) / 2;
        if (!hg_heap_less(node, heap->nodes[parent])) {
            break;
        }
        hg_heap_place(heap, heap->nodes[parent], index);
        index = parent;
    }
    hg_heap_place(heap, node, index);
}

static void
hg_heap_sift_down(hg_heap_t *heap, size_t index)
{
    hg_heap_node_t *node = heap->nodes[index];

    for (;;) {
        size_t child = 2 * index + 1;
        if (child >= heap->count) {
            break;
        }
        if (child + 1 < heap->count
            && hg_heap_less(heap->nodes[child + 1], heap->nodes[child]))
        {
            child++;
        }
        if (!hg_heap_less(heap->nodes[child], node)) {
            break;
        }
        hg_heap_place(heap, heap->nodes[child], index);
        index = child;
    }
    hg_heap_place(heap, node, index);
}

int
hg_heap_push(hg_heap_t *heap, hg_heap_node_t *node, int64_t key)
{
    if (hg_heap_node_queued(node)) {
        return hg_heap_update(heap, node, key);
    }
    if (heap->count == heap->capacity) {
        size_t capacity = heap->capacity ? heap->capacity * 2 : 64;
        hg_heap_node_t **nodes = realloc(heap->nodes,
                                         capacity * sizeof(*nodes));
        if (nodes == NULL) {
            return HG_ERROR;
        }
        heap->nodes = nodes;
        heap->capacity = capacity;
    }
    node->key = key;
    node->seq = heap->next_seq++;
    hg_heap_place(heap, node, heap->count++);
    hg_heap_sift_up(heap, node->index);
    return HG_OK;
}

void
hg_heap_remove(hg_heap_t *heap, hg_heap_node_t *node)
{
    size_t index = node->index;
    hg_heap_node_t *last;

    if (index == HG_HEAP_NOT_IN_HEAP || index >= heap->count
        || heap->nodes[index] != node)
    {
        return;
    }
    node->index = HG_HEAP_NOT_IN_HEAP;
    last = heap->nodes[--heap->count];
    if (last == node) {
        return;
    }
    hg_heap_place(heap, last, index);
    if (index > 0 && hg_heap_less(last, heap->nodes[(index - 1) / 2])) {
        hg_heap_sift_up(heap, index);
    } else {
        hg_heap_sift_down(heap, index);
    }
}

hg_heap_node_t *
hg_heap_pop(hg_heap_t *heap)
{
    hg_heap_node_t *node = hg_heap_min(heap);

    if (node != NULL) {
        hg_heap_remove(heap, node);
    }
    return node;
}

int
hg_heap_update(hg_heap_t *heap, hg_heap_node_t *node, int64_t key)
{
    if (!hg_heap_node_queued(node)) {
        return hg_heap_push(heap, node, key);
    }
    hg_heap_remove(heap, node);
    return hg_heap_push(heap, node, key);
}
