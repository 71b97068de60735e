/*
 * test_map.c: the string hash map (core/hg_map.c).
 *
 * A reference model (an array indexed by key number saying which value,
 * if any, the key maps to) is driven alongside the map through 100k keys
 * and a few hundred thousand random operations. The map's bookkeeping is
 * checked against its slots: count = live slots, used = live slots +
 * tombstones, and the load stays under 70%.
 */

#include "hg_core.h"

#include <setjmp.h>

#include <cmocka.h>

#include "hg_map.h"
#include "test_rng.h"

#define TEST_KEYS  100000
#define TEST_KEYLEN  16

static char test_keys[TEST_KEYS][TEST_KEYLEN];
static int test_vals[2][TEST_KEYS];
/* The model: -1 = absent, else which of test_vals the key maps to. */
static signed char test_model[TEST_KEYS];

static int
test_setup(void **state)
{
    size_t i;

    HG_UNUSED(state);
    for (i = 0; i < TEST_KEYS; i++) {
        snprintf(test_keys[i], TEST_KEYLEN, "job-%zu", i);
        test_vals[0][i] = (int) i;
        test_vals[1][i] = -(int) i;
        test_model[i] = -1;
    }
    test_rng_seed(0x1234567);
    return 0;
}

/* The map's counters agree with its slots. */
static void
test_check_slots(const hg_map_t *map)
{
    size_t i, live = 0, used = 0;

    assert_true(map->capacity == 0
                || (map->capacity & (map->capacity - 1)) == 0);
    for (i = 0; i < map->capacity; i++) {
        if (map->slots[i].key != NULL) {
            used++;
            if (map->slots[i].value != NULL) {
                live++;
            }
        }
    }
    assert_int_equal(live, map->count);
    assert_int_equal(used, map->used);
    assert_true(map->used * 10 < map->capacity * 7 || map->capacity == 0);
}

/* The map agrees with the model for every key. */
static void
test_check_model(const hg_map_t *map)
{
    size_t i, live = 0;

    for (i = 0; i < TEST_KEYS; i++) {
        void *v = hg_map_get(map, test_keys[i]);
        if (test_model[i] < 0) {
            assert_null(v);
        } else {
            assert_ptr_equal(v, &test_vals[(int) test_model[i]][i]);
            live++;
        }
    }
    assert_int_equal(map->count, live);
}

/* Iteration visits every live entry exactly once, with the right value. */
static void
test_check_iteration(const hg_map_t *map)
{
    static unsigned char seen[TEST_KEYS];
    const char *key;
    void *value;
    size_t iter = 0, n = 0;

    memset(seen, 0, sizeof(seen));
    while (hg_map_next(map, &iter, &key, &value)) {
        size_t k = (size_t) ((const char (*)[TEST_KEYLEN]) key - test_keys);
        assert_true(k < TEST_KEYS);
        assert_ptr_equal(key, test_keys[k]);
        assert_int_equal(seen[k], 0);
        seen[k] = 1;
        assert_true(test_model[k] >= 0);
        assert_ptr_equal(value, &test_vals[(int) test_model[k]][k]);
        n++;
    }
    assert_int_equal(n, map->count);
    /* Finished iterators stay finished. */
    assert_false(hg_map_next(map, &iter, &key, &value));
}

static void
test_empty(void **state)
{
    hg_map_t map;
    const char *key;
    void *value;
    size_t iter = 0;

    HG_UNUSED(state);
    hg_map_init(&map);
    assert_null(hg_map_get(&map, "x"));
    assert_null(hg_map_get(&map, ""));
    assert_null(hg_map_remove(&map, "x"));
    assert_false(hg_map_next(&map, &iter, &key, &value));
    assert_int_equal(map.count, 0);
    hg_map_free(&map);
    hg_map_free(&map);
}

static void
test_basic(void **state)
{
    hg_map_t map;
    int a = 1, b = 2, c = 3;

    HG_UNUSED(state);
    hg_map_init(&map);
    assert_int_equal(hg_map_put(&map, "alpha", &a), HG_OK);
    assert_int_equal(hg_map_put(&map, "beta", &b), HG_OK);
    assert_int_equal(hg_map_put(&map, "", &c), HG_OK);     /* empty key */
    assert_ptr_equal(hg_map_get(&map, "alpha"), &a);
    assert_ptr_equal(hg_map_get(&map, "beta"), &b);
    assert_ptr_equal(hg_map_get(&map, ""), &c);
    assert_null(hg_map_get(&map, "alph"));
    assert_null(hg_map_get(&map, "alphaa"));
    assert_int_equal(map.count, 3);

    assert_ptr_equal(hg_map_remove(&map, "alpha"), &a);
    assert_null(hg_map_get(&map, "alpha"));
    assert_null(hg_map_remove(&map, "alpha"));
    assert_ptr_equal(hg_map_get(&map, "beta"), &b);
    assert_int_equal(map.count, 2);
    test_check_slots(&map);
    hg_map_free(&map);
    assert_int_equal(map.count, 0);
    assert_null(hg_map_get(&map, "beta"));
}

/* Replacing keeps one entry, returns the new value, and takes the new key
 * pointer (keys are borrowed: the old owner may go away). */
static void
test_replace(void **state)
{
    hg_map_t map;
    char *k1 = malloc(8), *k2 = malloc(8);
    int v1 = 1, v2 = 2;
    const char *key;
    void *value;
    size_t iter = 0, used;

    HG_UNUSED(state);
    assert_non_null(k1);
    assert_non_null(k2);
    memcpy(k1, "backup", 7);
    memcpy(k2, "backup", 7);
    hg_map_init(&map);
    assert_int_equal(hg_map_put(&map, k1, &v1), HG_OK);
    used = map.used;
    assert_int_equal(hg_map_put(&map, k2, &v2), HG_OK);
    assert_int_equal(map.count, 1);
    assert_int_equal(map.used, used);
    assert_ptr_equal(hg_map_get(&map, "backup"), &v2);

    /* The first key's owner goes away; the entry must not depend on it. */
    memset(k1, 'x', 7);
    free(k1);
    assert_ptr_equal(hg_map_get(&map, "backup"), &v2);
    assert_true(hg_map_next(&map, &iter, &key, &value));
    assert_ptr_equal(key, k2);
    assert_ptr_equal(value, &v2);
    assert_false(hg_map_next(&map, &iter, &key, &value));

    assert_ptr_equal(hg_map_remove(&map, "backup"), &v2);
    hg_map_free(&map);
    free(k2);
}

/* Put, get and remove 100k keys, in bulk. */
static void
test_bulk_100k(void **state)
{
    hg_map_t map;
    size_t i;

    HG_UNUSED(state);
    hg_map_init(&map);
    for (i = 0; i < TEST_KEYS; i++) {
        assert_int_equal(hg_map_put(&map, test_keys[i], &test_vals[0][i]),
                         HG_OK);
        test_model[i] = 0;
    }
    assert_int_equal(map.count, TEST_KEYS);
    test_check_slots(&map);
    test_check_model(&map);
    test_check_iteration(&map);

    /* Remove the even keys: the odd ones stay reachable past the new
     * tombstones in their probe chains. */
    for (i = 0; i < TEST_KEYS; i += 2) {
        assert_ptr_equal(hg_map_remove(&map, test_keys[i]), &test_vals[0][i]);
        test_model[i] = -1;
    }
    test_check_slots(&map);
    test_check_model(&map);
    test_check_iteration(&map);

    /* Put them back with other values, and replace a third of the odd
     * ones. */
    for (i = 0; i < TEST_KEYS; i++) {
        if (i % 2 == 0 || i % 3 == 0) {
            assert_int_equal(hg_map_put(&map, test_keys[i],
                                        &test_vals[1][i]), HG_OK);
            test_model[i] = 1;
        }
    }
    assert_int_equal(map.count, TEST_KEYS);
    test_check_slots(&map);
    test_check_model(&map);
    test_check_iteration(&map);

    for (i = 0; i < TEST_KEYS; i++) {
        assert_non_null(hg_map_remove(&map, test_keys[i]));
        test_model[i] = -1;
    }
    assert_int_equal(map.count, 0);
    test_check_slots(&map);
    test_check_model(&map);
    test_check_iteration(&map);
    hg_map_free(&map);
}

/* Random puts, replaces, removes and gets against the model. */
static void
test_random_ops(void **state)
{
    enum { OPS = 300000 };
    hg_map_t map;
    size_t op;

    HG_UNUSED(state);
    hg_map_init(&map);
    for (op = 0; op < OPS; op++) {
        /* Keys from a range that grows with op, so the map both grows and
         * churns. */
        size_t range = 1000 + op * (TEST_KEYS - 1000) / OPS;
        size_t k = (size_t) (test_rng() % range);
        unsigned kind = (unsigned) (test_rng() % 8);
        void *v;

        if (kind < 4) {
            int which = (int) (test_rng() & 1);
            assert_int_equal(hg_map_put(&map, test_keys[k],
                                        &test_vals[which][k]), HG_OK);
            test_model[k] = (signed char) which;
        } else if (kind < 7) {
            v = hg_map_remove(&map, test_keys[k]);
            if (test_model[k] < 0) {
                assert_null(v);
            } else {
                assert_ptr_equal(v, &test_vals[(int) test_model[k]][k]);
            }
            test_model[k] = -1;
        } else {
            v = hg_map_get(&map, test_keys[k]);
            if (test_model[k] < 0) {
                assert_null(v);
            } else {
                assert_ptr_equal(v, &test_vals[(int) test_model[k]][k]);
            }
        }
        if (op % 50000 == 0) {
            test_check_slots(&map);
            test_check_model(&map);
        }
    }
    test_check_slots(&map);
    test_check_model(&map);
    test_check_iteration(&map);
    hg_map_free(&map);
    memset(test_model, -1, sizeof(test_model));
}

/* A removed key's tombstone is reused when the key comes back, and churn
 * through many distinct keys with few live ones does not grow the table:
 * tombstones are cleaned by rehashing at the same size. */
static void
test_tombstones(void **state)
{
    hg_map_t map;
    int v = 1;
    size_t i, used, capacity;

    HG_UNUSED(state);
    hg_map_init(&map);
    for (i = 0; i < 8; i++) {
        assert_int_equal(hg_map_put(&map, test_keys[i], &v), HG_OK);
    }
    used = map.used;
    capacity = map.capacity;
    assert_ptr_equal(hg_map_remove(&map, test_keys[3]), &v);
    assert_int_equal(map.used, used);   /* a tombstone, still "used" */
    assert_int_equal(map.count, 7);
    assert_int_equal(hg_map_put(&map, test_keys[3], &v), HG_OK);
    assert_int_equal(map.used, used);   /* the tombstone was reused */
    assert_int_equal(map.capacity, capacity);
    assert_int_equal(map.count, 8);
    test_check_slots(&map);
    hg_map_free(&map);

    /* One live key at a time, 100k distinct keys. */
    hg_map_init(&map);
    for (i = 0; i < TEST_KEYS; i++) {
        assert_int_equal(hg_map_put(&map, test_keys[i], &v), HG_OK);
        assert_ptr_equal(hg_map_get(&map, test_keys[i]), &v);
        assert_ptr_equal(hg_map_remove(&map, test_keys[i]), &v);
        assert_true(map.capacity <= 16);
    }
    test_check_slots(&map);
    assert_int_equal(map.count, 0);
    hg_map_free(&map);

    /* A sliding window of 1000 live keys over 100k. */
    hg_map_init(&map);
    for (i = 0; i < TEST_KEYS; i++) {
        assert_int_equal(hg_map_put(&map, test_keys[i], &v), HG_OK);
        if (i >= 1000) {
            assert_ptr_equal(hg_map_remove(&map, test_keys[i - 1000]), &v);
        }
        assert_true(map.capacity <= 4096);
    }
    assert_int_equal(map.count, 1000);
    test_check_slots(&map);
    for (i = 0; i < TEST_KEYS; i++) {
        if (i < TEST_KEYS - 1000) {
            assert_null(hg_map_get(&map, test_keys[i]));
        } else {
            assert_ptr_equal(hg_map_get(&map, test_keys[i]), &v);
        }
    }
    hg_map_free(&map);
}

/* Removing the entry just visited while iterating is safe (removal leaves
 * a tombstone, nothing moves): every entry is still visited once. */
static void
test_remove_while_iterating(void **state)
{
    enum { N = 5000 };
    static unsigned char seen[N];
    hg_map_t map;
    const char *key;
    void *value;
    size_t iter = 0, i, visits = 0;

    HG_UNUSED(state);
    hg_map_init(&map);
    for (i = 0; i < N; i++) {
        assert_int_equal(hg_map_put(&map, test_keys[i], &test_vals[0][i]),
                         HG_OK);
    }
    memset(seen, 0, sizeof(seen));
    while (hg_map_next(&map, &iter, &key, &value)) {
        size_t k = (size_t) *(const int *) value;
        assert_true(k < N);
        assert_int_equal(seen[k], 0);
        seen[k] = 1;
        visits++;
        if (k % 2 == 0) {
            assert_ptr_equal(hg_map_remove(&map, key), value);
        }
    }
    assert_int_equal(visits, N);
    assert_int_equal(map.count, N / 2);
    for (i = 0; i < N; i++) {
        if (i % 2 == 0) {
            assert_null(hg_map_get(&map, test_keys[i]));
        } else {
            assert_ptr_equal(hg_map_get(&map, test_keys[i]),
                             &test_vals[0][i]);
        }
    }
    test_check_slots(&map);
    hg_map_free(&map);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_empty, test_setup),
        cmocka_unit_test_setup(test_basic, test_setup),
        cmocka_unit_test_setup(test_replace, test_setup),
        cmocka_unit_test_setup(test_bulk_100k, test_setup),
        cmocka_unit_test_setup(test_random_ops, test_setup),
        cmocka_unit_test_setup(test_tombstones, test_setup),
        cmocka_unit_test_setup(test_remove_while_iterating, test_setup),
    };

    return cmocka_run_group_tests_name("map", tests, NULL, NULL);
}
