/*
 * test_slab.c: slabs and strings on slabs (core/hg_slab.c).
 *
 * Objects are filled with a pattern naming them and checked after every
 * round of random allocs and frees: an object handed out twice, or carved
 * over another, shows as a broken pattern. The slab's bookkeeping (objects
 * counted, blocks mapped) is checked against what the test holds. Built
 * with AddressSanitizer the slab is plain malloc; the block checks are then
 * left out and the sanitizer watches the objects.
 */

#include "hg_core.h"

#include <setjmp.h>

#include <cmocka.h>

#include "hg_slab.h"

#define TEST_OBJECTS  40000

static void
test_fill(unsigned char *obj, size_t size, size_t n)
{
    size_t i;

    for (i = 0; i < size; i++) {
        obj[i] = (unsigned char) (n * 31 + i);
    }
}

static void
test_check_fill(const unsigned char *obj, size_t size, size_t n)
{
    size_t i;

    for (i = 0; i < size; i++) {
        assert_int_equal(obj[i], (unsigned char) (n * 31 + i));
    }
}

static bool
test_zeroed(const unsigned char *obj, size_t size)
{
    size_t i;

    for (i = 0; i < size; i++) {
        if (obj[i] != 0) {
            return false;
        }
    }
    return true;
}

/* At most one more block than the objects need: the one kept with room. */
static void
test_check_blocks(const hg_slab_t *slab)
{
#ifndef HG_SLAB_MALLOC
    size_t needed = (slab->count + slab->per_block - 1) / slab->per_block;

    assert_true(slab->nblocks >= needed);
    if (slab->count == 0) {
        assert_true(slab->nblocks <= 1);
    }
#else
    HG_UNUSED(slab);
#endif
}

/* Objects of SIZE: zeroed, aligned, each its own, whatever the order of
 * allocs and frees. */
static void
test_slab_size(size_t size)
{
    static unsigned char *objs[TEST_OBJECTS];
    hg_slab_t slab;
    size_t i, round, n, live = 0;

    hg_slab_init(&slab, size);
    /* Enough for a few blocks, few enough to fill each byte under
     * valgrind. */
    n = slab.per_block * 3 + 7;
    if (n > TEST_OBJECTS) {
        n = TEST_OBJECTS;
    }
    assert_true(slab.size >= size);
    assert_int_equal(slab.size % HG_SLAB_ALIGN, 0);
    assert_int_equal(slab.nblocks, 0);
    memset(objs, 0, sizeof(objs));

    for (round = 0; round < 8; round++) {
        for (i = 0; i < n; i++) {
            /* A scatter (Knuth's multiplicative hash) of the objects;
             * rounds alternate between filling up and thinning out. */
            uint32_t h = (uint32_t) (i + round * n)
                         * 2654435761u;
            bool want = (h >> 16) % 100 < (round % 2 == 0 ? 80u : 20u);

            if (want && objs[i] == NULL) {
                objs[i] = hg_slab_alloc(&slab);
                assert_non_null(objs[i]);
                assert_int_equal((uintptr_t) objs[i] % HG_SLAB_ALIGN, 0);
                assert_true(test_zeroed(objs[i], slab.size));
                test_fill(objs[i], slab.size, i);
                live++;
            } else if (!want && objs[i] != NULL) {
                test_check_fill(objs[i], slab.size, i);
                hg_slab_free(&slab, objs[i]);
                objs[i] = NULL;
                live--;
            }
        }
        assert_int_equal(slab.count, live);
        test_check_blocks(&slab);
        for (i = 0; i < n; i++) {
            if (objs[i] != NULL) {
                test_check_fill(objs[i], slab.size, i);
            }
        }
    }
    for (i = 0; i < n; i++) {
        hg_slab_free(&slab, objs[i]);
        objs[i] = NULL;
    }
    assert_int_equal(slab.count, 0);
    test_check_blocks(&slab);
    hg_slab_destroy(&slab);
    assert_int_equal(slab.nblocks, 0);
}

static void
test_slab_sizes(void **state)
{
    static const size_t sizes[] = { 1, 8, 16, 17, 100, 272, 4096 };
    size_t i;

    HG_UNUSED(state);
    for (i = 0; i < HG_NELEMS(sizes); i++) {
        test_slab_size(sizes[i]);
    }
}

/* A freed object is handed out again, zeroed, before any new one is
 * carved; a block that empties goes back unless it is the last with room. */
static void
test_slab_reuse(void **state)
{
    hg_slab_t slab;
    unsigned char *a, *b, *c;

    HG_UNUSED(state);
    hg_slab_init(&slab, 40);
    a = hg_slab_alloc(&slab);
    b = hg_slab_alloc(&slab);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a != b);
    memset(b, 0xa5, slab.size);
    hg_slab_free(&slab, b);
    c = hg_slab_alloc(&slab);
    assert_non_null(c);
    assert_true(test_zeroed(c, slab.size));
#ifndef HG_SLAB_MALLOC
    assert_ptr_equal(b, c);
    assert_int_equal(slab.nblocks, 1);
#endif
    hg_slab_free(&slab, a);
    hg_slab_free(&slab, c);
    assert_int_equal(slab.count, 0);
    test_check_blocks(&slab);
    hg_slab_free(&slab, NULL);
    hg_slab_destroy(&slab);

#ifndef HG_SLAB_MALLOC
    hg_slab_init(&slab, HG_SLAB_BLOCK);
    errno = 0;
    assert_null(hg_slab_alloc(&slab));
    assert_int_equal(errno, EINVAL);
    hg_slab_destroy(&slab);
#endif
}

/* Filling whole blocks, then freeing all: the blocks are unmapped as they
 * empty, all but one. */
static void
test_slab_blocks(void **state)
{
    hg_slab_t slab;
    void **objs;
    size_t n, i;

    HG_UNUSED(state);
    hg_slab_init(&slab, 256);
    n = slab.per_block * 5 + 3;
    objs = calloc(n, sizeof(*objs));
    assert_non_null(objs);
    for (i = 0; i < n; i++) {
        objs[i] = hg_slab_alloc(&slab);
        assert_non_null(objs[i]);
    }
#ifndef HG_SLAB_MALLOC
    assert_int_equal(slab.nblocks, 6);
    /* Objects of one block share its aligned window. */
    assert_true(((uintptr_t) objs[0] & ~(uintptr_t) (HG_SLAB_BLOCK - 1))
                == ((uintptr_t) objs[slab.per_block - 1]
                    & ~(uintptr_t) (HG_SLAB_BLOCK - 1)));
#endif
    for (i = 0; i < n; i++) {
        hg_slab_free(&slab, objs[i]);
    }
    assert_int_equal(slab.count, 0);
#ifndef HG_SLAB_MALLOC
    assert_int_equal(slab.nblocks, 1);
#endif
    /* Destroying with objects still out frees them with their blocks. */
    for (i = 0; i < 3; i++) {
        objs[i] = hg_slab_alloc(&slab);
        assert_non_null(objs[i]);
    }
#ifdef HG_SLAB_MALLOC
    for (i = 0; i < 3; i++) {
        hg_slab_free(&slab, objs[i]);
    }
#endif
    hg_slab_destroy(&slab);
    assert_int_equal(slab.nblocks, 0);
    assert_int_equal(slab.count, 0);
    free(objs);
}

/* Strings of every length around the class boundaries and past the
 * largest class (those come from malloc). */
static void
test_slab_strings(void **state)
{
    hg_slab_strings_t strings;
    char text[HG_SLAB_STR_MAX + 100];
    char *copies[HG_SLAB_STR_MAX + 100];
    size_t len;

    HG_UNUSED(state);
    hg_slab_strings_init(&strings);
    for (len = 0; len < sizeof(text); len++) {
        memset(text, 'a' + (int) (len % 26), len);
        text[len] = '\0';
        copies[len] = hg_slab_strdup(&strings, text);
        assert_non_null(copies[len]);
        assert_string_equal(copies[len], text);
    }
    for (len = 0; len < sizeof(text); len++) {
        assert_int_equal(strlen(copies[len]), len);
        if (len > 0) {
            assert_int_equal(copies[len][0], 'a' + (int) (len % 26));
        }
        hg_slab_strfree(&strings, copies[len]);
    }
    for (len = 0; len < HG_NELEMS(strings.classes); len++) {
        assert_int_equal(strings.classes[len].count, 0);
    }
    hg_slab_strfree(&strings, NULL);
    hg_slab_strings_destroy(&strings);
}

/* One copy per distinct text, short or long, until destroyed. */
static void
test_slab_intern(void **state)
{
    hg_slab_strings_t strings;
    char type[32], longer[HG_SLAB_STR_MAX * 2];
    const char *system, *shell, *again, *big;

    HG_UNUSED(state);
    hg_slab_strings_init(&strings);
    snprintf(type, sizeof(type), "system");
    system = hg_slab_intern(&strings, type);
    assert_non_null(system);
    assert_true(system != type);
    assert_string_equal(system, "system");
    shell = hg_slab_intern(&strings, "shell");
    assert_true(shell != system);
    again = hg_slab_intern(&strings, "system");
    assert_ptr_equal(again, system);

    memset(longer, 'x', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    big = hg_slab_intern(&strings, longer);
    assert_non_null(big);
    assert_ptr_equal(hg_slab_intern(&strings, longer), big);
    assert_int_equal(strings.interned.count, 3);
    hg_slab_strings_destroy(&strings);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slab_sizes),
        cmocka_unit_test(test_slab_reuse),
        cmocka_unit_test(test_slab_blocks),
        cmocka_unit_test(test_slab_strings),
        cmocka_unit_test(test_slab_intern),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
