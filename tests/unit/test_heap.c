/*
 * test_heap.c: the intrusive binary min-heap (core/hg_heap.c).
 *
 * Every test checks the heap's own invariant after each operation:
 * nodes[i]->index == i, every node is no less than its parent by (key,
 * seq), and nodes not in the heap say so. The randomised test drives 10k
 * mixed operations against a reference model (an array scanned for its
 * minimum), with a fixed seed so a failure replays exactly.
 */

#include "hg_core.h"

#include <setjmp.h>

#include <cmocka.h>

#include "hg_heap.h"
#include "test_rng.h"

typedef struct test_item_s {
    hg_heap_node_t node;
    int id;
    bool in;                        /* the model's view: queued or not */
    int64_t key;                    /* the model's key */
} test_item_t;

static bool
test_less(const hg_heap_node_t *a, const hg_heap_node_t *b)
{
    return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static void
test_check_invariants(const hg_heap_t *heap)
{
    size_t i;

    assert_true(heap->count <= heap->capacity);
    for (i = 0; i < heap->count; i++) {
        assert_non_null(heap->nodes[i]);
        assert_int_equal(heap->nodes[i]->index, i);
        if (i > 0) {
            assert_false(test_less(heap->nodes[i],
                                   heap->nodes[(i - 1) / 2]));
        }
    }
    if (heap->count > 0) {
        assert_ptr_equal(hg_heap_min(heap), heap->nodes[0]);
    } else {
        assert_null(hg_heap_min(heap));
    }
}

static void
test_items_init(test_item_t *items, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        hg_heap_node_init(&items[i].node);
        items[i].id = (int) i;
        items[i].in = false;
        items[i].key = 0;
    }
}

static test_item_t *
test_pop_item(hg_heap_t *heap)
{
    hg_heap_node_t *node = hg_heap_pop(heap);

    return node != NULL ? hg_heap_entry(node, test_item_t, node) : NULL;
}

/* --- empty heap and node states --------------------------------------- */

static void
test_empty(void **state)
{
    hg_heap_t heap;
    test_item_t item;

    HG_UNUSED(state);
    hg_heap_init(&heap);
    test_items_init(&item, 1);

    assert_null(hg_heap_min(&heap));
    assert_null(hg_heap_pop(&heap));
    assert_null(hg_heap_pop(&heap));
    /* Removing a node that was never pushed is a no-op. */
    hg_heap_remove(&heap, &item.node);
    assert_false(hg_heap_node_queued(&item.node));
    assert_int_equal(heap.count, 0);
    test_check_invariants(&heap);
    hg_heap_free(&heap);
    hg_heap_free(&heap);            /* freeing twice is harmless */
}

static void
test_queued_states(void **state)
{
    hg_heap_t heap;
    test_item_t items[3];

    HG_UNUSED(state);
    hg_heap_init(&heap);
    test_items_init(items, 3);

    assert_false(hg_heap_node_queued(&items[0].node));
    assert_int_equal(hg_heap_push(&heap, &items[0].node, 5), HG_OK);
    assert_true(hg_heap_node_queued(&items[0].node));
    assert_int_equal(hg_heap_push(&heap, &items[1].node, 3), HG_OK);
    assert_int_equal(hg_heap_push(&heap, &items[2].node, 4), HG_OK);
    test_check_invariants(&heap);

    /* Popped: no longer queued. */
    assert_ptr_equal(test_pop_item(&heap), &items[1]);
    assert_false(hg_heap_node_queued(&items[1].node));

    /* Removed: no longer queued; removing again is a no-op. */
    hg_heap_remove(&heap, &items[0].node);
    assert_false(hg_heap_node_queued(&items[0].node));
    hg_heap_remove(&heap, &items[0].node);
    assert_int_equal(heap.count, 1);
    test_check_invariants(&heap);

    /* Pushing a queued node again moves it instead of adding it twice. */
    assert_int_equal(hg_heap_push(&heap, &items[2].node, 10), HG_OK);
    assert_int_equal(heap.count, 1);
    assert_int_equal(items[2].node.key, 10);
    test_check_invariants(&heap);

    /* hg_heap_free leaves the nodes marked as not queued. */
    assert_int_equal(hg_heap_push(&heap, &items[0].node, 1), HG_OK);
    hg_heap_free(&heap);
    assert_false(hg_heap_node_queued(&items[0].node));
    assert_false(hg_heap_node_queued(&items[2].node));
    assert_int_equal(heap.count, 0);
    assert_null(hg_heap_min(&heap));
}

/* A node whose index points at another node's slot (say, a copy of a
 * queued node) must not be able to remove that other node. */
static void
test_remove_foreign_node(void **state)
{
    hg_heap_t heap;
    test_item_t items[2];
    hg_heap_node_t stale;

    HG_UNUSED(state);
    hg_heap_init(&heap);
    test_items_init(items, 2);
    assert_int_equal(hg_heap_push(&heap, &items[0].node, 1), HG_OK);
    assert_int_equal(hg_heap_push(&heap, &items[1].node, 2), HG_OK);

    stale = items[0].node;          /* index 0, but not the node there */
    hg_heap_remove(&heap, &stale);
    assert_int_equal(heap.count, 2);
    stale.index = 1000;             /* out of range */
    hg_heap_remove(&heap, &stale);
    assert_int_equal(heap.count, 2);
    test_check_invariants(&heap);
    hg_heap_free(&heap);
}

/* --- ordering ------------------------------------------------------------ */

static int
test_cmp_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;

    return (x > y) - (x < y);
}

/* Push 10k random keys, pop them all: the keys come out as qsort orders
 * them, and equal keys come out in push order. */
static void
test_sorted_against_qsort(void **state)
{
    enum { N = 10000 };
    static test_item_t items[N];
    static int64_t keys[N];
    hg_heap_t heap;
    test_item_t *prev = NULL, *it;
    size_t i;

    HG_UNUSED(state);
    test_rng_seed(0x5eed0001);
    hg_heap_init(&heap);
    test_items_init(items, N);
    for (i = 0; i < N; i++) {
        /* A narrow range so that there are many ties; a few extremes. */
        keys[i] = (int64_t) (test_rng() % 2000) - 1000;
        if (i % 997 == 0) {
            keys[i] = (i % 2) ? INT64_MAX : INT64_MIN;
        }
        assert_int_equal(hg_heap_push(&heap, &items[i].node, keys[i]),
                         HG_OK);
    }
    test_check_invariants(&heap);
    qsort(keys, N, sizeof(keys[0]), test_cmp_int64);

    for (i = 0; i < N; i++) {
        it = test_pop_item(&heap);
        assert_non_null(it);
        assert_int_equal(it->node.key, keys[i]);
        if (prev != NULL && prev->node.key == it->node.key) {
            assert_true(prev->id < it->id);     /* FIFO among ties */
        }
        prev = it;
        if (i % 500 == 0) {
            test_check_invariants(&heap);
        }
    }
    assert_null(hg_heap_pop(&heap));
    hg_heap_free(&heap);
}

static void
test_fifo_equal_keys(void **state)
{
    enum { N = 200 };
    test_item_t items[N];
    hg_heap_t heap;
    size_t i;

    HG_UNUSED(state);
    hg_heap_init(&heap);
    test_items_init(items, N);
    /* Interleave two keys; within each key the order must be push order. */
    for (i = 0; i < N; i++) {
        assert_int_equal(hg_heap_push(&heap, &items[i].node,
                                      (i % 2) ? 7 : 3), HG_OK);
        test_check_invariants(&heap);
    }
    for (i = 0; i < N; i += 2) {
        assert_ptr_equal(test_pop_item(&heap), &items[i]);
    }
    for (i = 1; i < N; i += 2) {
        assert_ptr_equal(test_pop_item(&heap), &items[i]);
    }
    assert_null(hg_heap_pop(&heap));

    /* A node popped and pushed again goes behind the equal keys already
     * queued: FIFO is by push time, not by first appearance. */
    for (i = 0; i < 3; i++) {
        assert_int_equal(hg_heap_push(&heap, &items[i].node, 1), HG_OK);
    }
    assert_ptr_equal(test_pop_item(&heap), &items[0]);
    assert_int_equal(hg_heap_push(&heap, &items[0].node, 1), HG_OK);
    assert_ptr_equal(test_pop_item(&heap), &items[1]);
    assert_ptr_equal(test_pop_item(&heap), &items[2]);
    assert_ptr_equal(test_pop_item(&heap), &items[0]);
    hg_heap_free(&heap);
}

static void
test_update_up_down(void **state)
{
    enum { N = 64 };
    test_item_t items[N];
    hg_heap_t heap;
    size_t i;

    HG_UNUSED(state);
    hg_heap_init(&heap);
    test_items_init(items, N);
    for (i = 0; i < N; i++) {
        assert_int_equal(hg_heap_push(&heap, &items[i].node,
                                      (int64_t) i * 10), HG_OK);
    }

    /* A deep leaf moved to the front. */
    assert_int_equal(hg_heap_update(&heap, &items[N - 1].node, -5), HG_OK);
    test_check_invariants(&heap);
    assert_ptr_equal(hg_heap_min(&heap), &items[N - 1].node);
    assert_int_equal(items[N - 1].node.key, -5);

    /* The root moved to the back. */
    assert_int_equal(hg_heap_update(&heap, &items[N - 1].node, 100000),
                     HG_OK);
    test_check_invariants(&heap);
    assert_ptr_equal(hg_heap_min(&heap), &items[0].node);

    /* An inner node moved down past its children, then up again. */
    assert_int_equal(hg_heap_update(&heap, &items[3].node, 355), HG_OK);
    test_check_invariants(&heap);
    assert_int_equal(hg_heap_update(&heap, &items[40].node, 15), HG_OK);
    test_check_invariants(&heap);

    /* Updating a node that is not queued pushes it. */
    assert_ptr_equal(test_pop_item(&heap), &items[0]);
    assert_false(hg_heap_node_queued(&items[0].node));
    assert_int_equal(hg_heap_update(&heap, &items[0].node, 16), HG_OK);
    assert_true(hg_heap_node_queued(&items[0].node));
    assert_int_equal(heap.count, N);
    test_check_invariants(&heap);

    /* The whole heap still drains in order. */
    {
        int64_t last = INT64_MIN;
        test_item_t *it;
        size_t n = 0;
        while ((it = test_pop_item(&heap)) != NULL) {
            assert_true(it->node.key >= last);
            last = it->node.key;
            n++;
        }
        assert_int_equal(n, N);
    }
    hg_heap_free(&heap);
}

/* Removing each position of a small heap in turn (root, inner, leaves,
 * the last slot) keeps the invariants and removes exactly that node. */
static void
test_remove_every_position(void **state)
{
    enum { N = 31 };
    test_item_t items[N];
    hg_heap_t heap;
    size_t pos, i;

    HG_UNUSED(state);
    for (pos = 0; pos < N; pos++) {
        hg_heap_node_t *victim;
        hg_heap_init(&heap);
        test_items_init(items, N);
        for (i = 0; i < N; i++) {
            /* Keys chosen so that the last slot's node is smaller than
             * some of the removed positions' parents: exercises the
             * sift-up branch of remove, not only sift-down. */
            int64_t key = (int64_t) ((i * 7919) % 53);
            assert_int_equal(hg_heap_push(&heap, &items[i].node, key),
                             HG_OK);
        }
        victim = heap.nodes[pos];
        hg_heap_remove(&heap, victim);
        assert_false(hg_heap_node_queued(victim));
        assert_int_equal(heap.count, N - 1);
        test_check_invariants(&heap);
        for (i = 0; i < heap.count; i++) {
            assert_ptr_not_equal(heap.nodes[i], victim);
        }
        hg_heap_free(&heap);
    }
}

/* --- randomised against a model ------------------------------------------ */

/* The model's expected minimum: least key, then least seq. The seq is
 * read from the node (the heap assigns it); the model checks it only
 * through ordering: every (key, seq) pair is unique. */
static test_item_t *
test_model_min(test_item_t *items, size_t n)
{
    test_item_t *best = NULL;
    size_t i;

    for (i = 0; i < n; i++) {
        if (!items[i].in) {
            continue;
        }
        if (best == NULL || items[i].key < best->key
            || (items[i].key == best->key
                && items[i].node.seq < best->node.seq))
        {
            best = &items[i];
        }
    }
    return best;
}

static void
test_random_ops(void **state)
{
    enum { N = 1500, OPS = 10000 };
    static test_item_t items[N];
    hg_heap_t heap;
    size_t op, i, model_count = 0;
    uint64_t last_seq = 0;
    bool any_seq = false;

    HG_UNUSED(state);
    test_rng_seed(0xC0FFEE);
    hg_heap_init(&heap);
    test_items_init(items, N);

    for (op = 0; op < OPS; op++) {
        unsigned kind = (unsigned) (test_rng() % 10);
        test_item_t *it = &items[test_rng() % N];
        int64_t key = (int64_t) (test_rng() % 100);

        if (kind < 4) {                             /* push */
            if (!it->in) {
                assert_int_equal(hg_heap_push(&heap, &it->node, key), HG_OK);
                it->in = true;
                it->key = key;
                model_count++;
                /* A push takes a fresh sequence number. */
                assert_true(!any_seq || it->node.seq > last_seq);
                last_seq = it->node.seq;
                any_seq = true;
            }
        } else if (kind < 6) {                      /* pop */
            test_item_t *want = test_model_min(items, N);
            test_item_t *got = test_pop_item(&heap);
            assert_ptr_equal(got, want);
            if (got != NULL) {
                got->in = false;
                model_count--;
            }
        } else if (kind < 8) {                      /* remove */
            hg_heap_remove(&heap, &it->node);
            if (it->in) {
                it->in = false;
                model_count--;
            }
            assert_false(hg_heap_node_queued(&it->node));
        } else {                                    /* update */
            assert_int_equal(hg_heap_update(&heap, &it->node, key), HG_OK);
            if (!it->in) {
                model_count++;
            }
            it->in = true;
            it->key = key;
            assert_int_equal(it->node.key, key);
        }

        assert_int_equal(heap.count, model_count);
        test_check_invariants(&heap);
        if (op % 1000 == 0) {
            for (i = 0; i < N; i++) {
                assert_int_equal(hg_heap_node_queued(&items[i].node),
                                 items[i].in);
                if (items[i].in) {
                    assert_int_equal(items[i].node.key, items[i].key);
                }
            }
        }
    }

    /* Drain: the rest comes out in model order. */
    for (;;) {
        test_item_t *want = test_model_min(items, N);
        test_item_t *got = test_pop_item(&heap);
        assert_ptr_equal(got, want);
        if (got == NULL) {
            break;
        }
        got->in = false;
    }
    hg_heap_free(&heap);
}

/* hg_heap_entry gets back to the owner from an embedded node. */
static void
test_entry(void **state)
{
    struct owner { int before; hg_heap_node_t node; int after; } o;

    HG_UNUSED(state);
    hg_heap_node_init(&o.node);
    assert_ptr_equal(hg_heap_entry(&o.node, struct owner, node), &o);
    assert_int_equal(o.node.index, HG_HEAP_NOT_IN_HEAP);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_queued_states),
        cmocka_unit_test(test_remove_foreign_node),
        cmocka_unit_test(test_sorted_against_qsort),
        cmocka_unit_test(test_fifo_equal_keys),
        cmocka_unit_test(test_update_up_down),
        cmocka_unit_test(test_remove_every_position),
        cmocka_unit_test(test_random_ops),
        cmocka_unit_test(test_entry),
    };

    return cmocka_run_group_tests_name("heap", tests, NULL, NULL);
}
