/*
 * Unit tests of the execution handle's module side (core/hg_exec.c) as a
 * module sees it, without a worker: output kept up to the limit and
 * marked truncated past it (a write that fills it exactly is not), the
 * limit a module can ask for, custom metrics (nameless ones ignored, a
 * later value replacing an earlier one), the retry delay, cancellation by
 * flag or deadline, and an error that replaces the previous one.
 */

#include "hg_core.h"

#include <setjmp.h>
#include <signal.h>
#include <cmocka.h>

#include "hg_exec.h"

/* Kept output and its mark, then the handle freed. */
static void
assert_kept(hg_exec_t *exec, const char *want, size_t len, bool truncated)
{
    assert_int_equal(exec->output_len, len);
    if (want != NULL) {
        assert_memory_equal(exec->output, want, len);
    }
    assert_true(exec->truncated == truncated);
    hg_exec_reset(exec);
}

static void
test_output_limit(void **state)
{
    char big[3000];
    hg_exec_t exec;

    HG_UNUSED(state);
    hg_exec_init(&exec);
    exec.output_limit = 8;
    assert_int_equal(hg_exec_output_limit(&exec), 8);
    assert_int_equal(hg_exec_output(&exec, "abc", 3), 0);
    assert_int_equal(hg_exec_output(&exec, "defgh", 5), 1);    /* full */
    assert_false(exec.truncated);
    assert_int_equal(hg_exec_output(&exec, "", 0), 1);
    assert_false(exec.truncated);
    assert_int_equal(hg_exec_output(&exec, "i", 1), 1);
    assert_kept(&exec, "abcdefgh", 8, true);

    /* one write over the limit keeps what fits */
    hg_exec_init(&exec);
    exec.output_limit = 4;
    assert_int_equal(hg_exec_output(&exec, "123456", 6), 1);
    assert_kept(&exec, "1234", 4, true);

    /* grows past its first allocation */
    hg_exec_init(&exec);
    exec.output_limit = 5000;
    memset(big, 'x', sizeof(big));
    assert_int_equal(hg_exec_output(&exec, big, sizeof(big)), 0);
    assert_int_equal(hg_exec_output(&exec, big, sizeof(big)), 1);
    assert_kept(&exec, NULL, 5000, true);
}

static void
test_results(void **state)
{
    volatile sig_atomic_t cancel = 0;
    hg_exec_t exec;

    HG_UNUSED(state);
    hg_exec_init(&exec);
    hg_exec_metric(&exec, "", 1.0);
    hg_exec_metric(&exec, NULL, 1.0);
    assert_null(exec.metrics);
    hg_exec_metric(&exec, "rows", 1.0);
    hg_exec_metric(&exec, "rows", 2.5);
    hg_exec_metric(&exec, "bytes", 10.0);
    assert_int_equal(json_object_size(exec.metrics), 2);
    assert_true(json_real_value(json_object_get(exec.metrics, "rows"))
                == 2.5);

    hg_exec_retry_after(&exec, -5);
    assert_int_equal(exec.retry_after_ms, 0);
    hg_exec_retry_after(&exec, 1500);
    assert_int_equal(exec.retry_after_ms, 1500);

    hg_exec_set_error(&exec, "first %d", 1);
    hg_exec_set_error(&exec, "second %s", "try");
    assert_string_equal(exec.error, "second try");

    assert_int_equal(hg_exec_cancelled(&exec), 0);
    exec.cancel = &cancel;
    assert_int_equal(hg_exec_cancelled(&exec), 0);
    cancel = 1;
    assert_int_equal(hg_exec_cancelled(&exec), 1);
    cancel = 0;
    exec.deadline = hg_exec_now_ms() + 60000;
    assert_int_equal(hg_exec_cancelled(&exec), 0);
    exec.deadline = hg_exec_now_ms() - 1;
    assert_int_equal(hg_exec_cancelled(&exec), 1);
    hg_exec_reset(&exec);
    assert_null(exec.metrics);
    assert_null(exec.error);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_limit),
        cmocka_unit_test(test_results),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
