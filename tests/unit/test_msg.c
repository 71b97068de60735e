/*
 * The typed messages (core/hg_msg.c): DISPATCH and RESULT through their one
 * encoder and one decoder, every field back as it went, the defaults of
 * the optional ones, and a clear error for each required field missing or
 * a string holding a NUL. Then the reader's feed and rest, which a worker
 * uses to keep a frame that came while it waited for a store task.
 */

#include "hg_core.h"

#include <setjmp.h>
#include <cmocka.h>

#include "hg_ipc.h"
#include "hg_msg.h"

static void
parse_one(const hg_ipc_buf_t *buf, hg_ipc_frame_t *frame)
{
    size_t len = 0;
    char err[256];

    assert_int_equal(hg_ipc_parse(buf->data + buf->start,
                                  buf->len - buf->start, frame, &len, err,
                                  sizeof(err)), 1);
    assert_int_equal(len, buf->len - buf->start);
}

/* The frame being built in BUF, alone in it, is refused by the decoder
 * for TYPE with an error that holds NEEDLE. BUF is freed. */
static void
expect_refused(hg_ipc_buf_t *buf, hg_ipc_type_t type, const char *needle)
{
    hg_ipc_frame_t frame;
    char err[256] = "";

    assert_int_equal(hg_ipc_end(buf), HG_OK);
    parse_one(buf, &frame);
    if (type == HG_IPC_DISPATCH) {
        hg_msg_dispatch_t d;
        assert_int_equal(hg_msg_get_dispatch(&frame, &d, err, sizeof(err)),
                         HG_ERROR);
        hg_msg_dispatch_free(&d);
    } else {
        hg_msg_result_t r;
        assert_int_equal(hg_msg_get_result(&frame, &r, err, sizeof(err)),
                         HG_ERROR);
        hg_msg_result_free(&r);
    }
    assert_non_null(strstr(err, needle));
    hg_ipc_buf_free(buf);
}

static void
full_dispatch(hg_msg_dispatch_t *d)
{
    static const char def[] = "{\"command\":\"true\"}";

    memset(d, 0, sizeof(*d));
    d->exec_id = "01a2-exec";
    d->job_id = "backup";
    d->type = "shell";
    d->trigger = "schedule";
    d->traceparent = "00-01a24ec8d0dc700091549f26697bd53d-91549f26697bd53d-01";
    d->job_def = (const uint8_t *) def;
    d->job_def_len = sizeof(def) - 1;
    d->payload = (const uint8_t *) "a\0b";
    d->payload_len = 3;
    d->attempt = 3;
    d->scheduled_for_ms = 1765000000123LL;
    d->timeout_ms = 300000;
    d->output_limit = 65536;
    d->limits.memory = 512ULL << 20;
    d->limits.cpu = 0.5;
    d->limits.tasks = 64;
}

/* IN through the encoder, a frame and the decoder into *OUT (whose
 * bytes point into *BUF: free both after). */
static void
dispatch_through(const hg_msg_dispatch_t *in, hg_msg_dispatch_t *out,
                 hg_ipc_buf_t *buf)
{
    hg_ipc_frame_t frame;
    char err[256];

    hg_ipc_buf_init(buf);
    assert_int_equal(hg_msg_put_dispatch(buf, in), HG_OK);
    parse_one(buf, &frame);
    assert_int_equal(hg_msg_get_dispatch(&frame, out, err, sizeof(err)),
                     HG_OK);
}

static void
test_dispatch_roundtrip(void **state)
{
    hg_msg_dispatch_t in, out;
    hg_ipc_buf_t buf;

    HG_UNUSED(state);
    full_dispatch(&in);
    dispatch_through(&in, &out, &buf);
    assert_string_equal(out.exec_id, in.exec_id);
    assert_string_equal(out.job_id, in.job_id);
    assert_string_equal(out.type, in.type);
    assert_string_equal(out.trigger, in.trigger);
    assert_string_equal(out.traceparent, in.traceparent);
    assert_int_equal(out.job_def_len, in.job_def_len);
    assert_memory_equal(out.job_def, in.job_def, in.job_def_len);
    assert_int_equal(out.payload_len, 3);
    assert_memory_equal(out.payload, "a\0b", 3);
    assert_int_equal(out.attempt, 3);
    assert_int_equal(out.scheduled_for_ms, in.scheduled_for_ms);
    assert_int_equal(out.timeout_ms, 300000);
    assert_int_equal(out.output_limit, 65536);
    assert_int_equal(out.limits.memory, 512ULL << 20);
    assert_true(out.limits.cpu > 0.499 && out.limits.cpu < 0.501);
    assert_int_equal(out.limits.tasks, 64);
    hg_msg_dispatch_free(&out);
    hg_ipc_buf_free(&buf);
}

/* Optional fields left out come back as their defaults. */
static void
test_dispatch_defaults(void **state)
{
    hg_msg_dispatch_t in, out;
    hg_ipc_buf_t buf;

    HG_UNUSED(state);
    full_dispatch(&in);
    in.trigger = NULL;
    in.traceparent = NULL;
    in.payload = NULL;
    in.payload_len = 0;
    in.output_limit = -1;
    memset(&in.limits, 0, sizeof(in.limits));
    dispatch_through(&in, &out, &buf);
    assert_null(out.trigger);
    assert_null(out.traceparent);
    assert_null(out.payload);
    assert_int_equal(out.output_limit, -1);
    assert_int_equal(out.limits.memory, 0);
    assert_int_equal(out.limits.tasks, 0);
    assert_true(out.limits.cpu == 0.0);
    hg_msg_dispatch_free(&out);
    hg_ipc_buf_free(&buf);
}

/* A dispatch frame built by hand from TAGS (each a field of the full
 * dispatch), to see the decoder refuse what is missing. */
static void
dispatch_without(uint16_t missing, hg_ipc_buf_t *buf)
{
    hg_ipc_begin(buf, HG_IPC_DISPATCH);
    if (missing != HG_IPC_F_EXEC_ID) {
        hg_ipc_put_str(buf, HG_IPC_F_EXEC_ID, "e");
    }
    if (missing != HG_IPC_F_JOB_ID) {
        hg_ipc_put_str(buf, HG_IPC_F_JOB_ID, "j");
    }
    if (missing != HG_IPC_F_TYPE) {
        hg_ipc_put_str(buf, HG_IPC_F_TYPE, "shell");
    }
    if (missing != HG_IPC_F_JOB_DEF) {
        hg_ipc_put_str(buf, HG_IPC_F_JOB_DEF, "{}");
    }
    if (missing != HG_IPC_F_ATTEMPT) {
        hg_ipc_put_u32(buf, HG_IPC_F_ATTEMPT, 1);
    }
    if (missing != HG_IPC_F_SCHEDULED_FOR) {
        hg_ipc_put_i64(buf, HG_IPC_F_SCHEDULED_FOR, 1);
    }
    if (missing != HG_IPC_F_TIMEOUT) {
        hg_ipc_put_i64(buf, HG_IPC_F_TIMEOUT, 0);
    }
}

static void
test_dispatch_required(void **state)
{
    static const uint16_t required[] = {
        HG_IPC_F_EXEC_ID, HG_IPC_F_JOB_ID, HG_IPC_F_TYPE, HG_IPC_F_JOB_DEF,
        HG_IPC_F_ATTEMPT, HG_IPC_F_SCHEDULED_FOR, HG_IPC_F_TIMEOUT
    };
    hg_msg_dispatch_t out;
    hg_ipc_frame_t frame;
    hg_ipc_buf_t buf;
    char err[256], want[64];
    size_t i;

    HG_UNUSED(state);
    for (i = 0; i < HG_NELEMS(required); i++) {
        hg_ipc_buf_init(&buf);
        dispatch_without(required[i], &buf);
        snprintf(want, sizeof(want), "field %u (", (unsigned) required[i]);
        expect_refused(&buf, HG_IPC_DISPATCH, want);
    }
    /* and with every one there, it decodes */
    hg_ipc_buf_init(&buf);
    dispatch_without(0, &buf);
    assert_int_equal(hg_ipc_end(&buf), HG_OK);
    parse_one(&buf, &frame);
    assert_int_equal(hg_msg_get_dispatch(&frame, &out, err, sizeof(err)),
                     HG_OK);
    hg_msg_dispatch_free(&out);
    hg_ipc_buf_free(&buf);
}

static void
test_dispatch_string_with_nul(void **state)
{
    hg_ipc_buf_t buf;

    HG_UNUSED(state);
    hg_ipc_buf_init(&buf);
    hg_ipc_begin(&buf, HG_IPC_DISPATCH);
    hg_ipc_put_bytes(&buf, HG_IPC_F_EXEC_ID, "a\0b", 3);
    expect_refused(&buf, HG_IPC_DISPATCH,
                   "field 1 (exec_id) holds a NUL byte");
    /* a result is not a dispatch */
    hg_ipc_buf_init(&buf);
    hg_ipc_begin(&buf, HG_IPC_RESULT);
    expect_refused(&buf, HG_IPC_DISPATCH, "not a dispatch");
}

static void
test_result_roundtrip(void **state)
{
    hg_msg_result_t in, out;
    hg_ipc_frame_t frame;
    hg_ipc_buf_t buf;
    char err[256];

    HG_UNUSED(state);
    memset(&in, 0, sizeof(in));
    in.exec_id = "01a2-exec";
    in.result = HG_RETRY;
    in.has_exit_code = true;
    in.exit_code = 3;
    in.signo = 9;
    in.output = (const uint8_t *) "out\0put";
    in.output_len = 7;
    in.truncated = true;
    in.error = "exit status 3";
    in.retry_after_ms = 1500;
    in.metrics = "{\"rows\":42}";
    in.has_times = true;
    in.started_ms = 1000;
    in.finished_ms = 2500;
    in.max_rss_kb = 2048;
    in.cpu_user_ms = 12;
    in.cpu_sys_ms = 7;
    in.deadline_passed = true;
    hg_ipc_buf_init(&buf);
    assert_int_equal(hg_msg_put_result(&buf, &in), HG_OK);
    parse_one(&buf, &frame);
    assert_int_equal(hg_msg_get_result(&frame, &out, err, sizeof(err)),
                     HG_OK);
    assert_string_equal(out.exec_id, in.exec_id);
    assert_int_equal(out.result, HG_RETRY);
    assert_true(out.has_exit_code);
    assert_int_equal(out.exit_code, 3);
    assert_int_equal(out.signo, 9);
    assert_int_equal(out.output_len, 7);
    assert_memory_equal(out.output, "out\0put", 7);
    assert_true(out.truncated);
    assert_string_equal(out.error, "exit status 3");
    assert_int_equal(out.retry_after_ms, 1500);
    assert_string_equal(out.metrics, "{\"rows\":42}");
    assert_true(out.has_times);
    assert_int_equal(out.started_ms, 1000);
    assert_int_equal(out.finished_ms, 2500);
    assert_int_equal(out.max_rss_kb, 2048);
    assert_int_equal(out.cpu_user_ms, 12);
    assert_int_equal(out.cpu_sys_ms, 7);
    assert_true(out.deadline_passed);
    hg_msg_result_free(&out);
    hg_ipc_buf_free(&buf);
}

/* The least a result can be: its execution's id and a result code. */
static void
test_result_minimal(void **state)
{
    hg_msg_result_t out;
    hg_ipc_frame_t frame;
    hg_ipc_buf_t buf;
    char err[256];

    HG_UNUSED(state);
    hg_ipc_buf_init(&buf);
    hg_ipc_begin(&buf, HG_IPC_RESULT);
    hg_ipc_put_str(&buf, HG_IPC_F_EXEC_ID, "e");
    hg_ipc_put_u32(&buf, HG_IPC_F_RESULT, HG_OK);
    assert_int_equal(hg_ipc_end(&buf), HG_OK);
    parse_one(&buf, &frame);
    assert_int_equal(hg_msg_get_result(&frame, &out, err, sizeof(err)),
                     HG_OK);
    assert_false(out.has_exit_code);
    assert_int_equal(out.signo, 0);
    assert_null(out.output);
    assert_null(out.error);
    assert_null(out.metrics);
    assert_int_equal(out.retry_after_ms, -1);
    assert_false(out.has_times);
    assert_false(out.deadline_passed);
    assert_int_equal(out.max_rss_kb, -1);
    hg_msg_result_free(&out);

    hg_ipc_buf_free(&buf);

    /* without a result code, or without an id: refused, and said why */
    hg_ipc_buf_init(&buf);
    hg_ipc_begin(&buf, HG_IPC_RESULT);
    hg_ipc_put_str(&buf, HG_IPC_F_EXEC_ID, "e");
    expect_refused(&buf, HG_IPC_RESULT,
                   "field 20 (result code) is missing");
    hg_ipc_buf_init(&buf);
    hg_ipc_begin(&buf, HG_IPC_RESULT);
    hg_ipc_put_u32(&buf, HG_IPC_F_RESULT, HG_OK);
    expect_refused(&buf, HG_IPC_RESULT, "field 1 (exec_id) is missing");
}

/* A frame read by one reader, fed to another ahead of what that one reads
 * next: the frames come out whole and in order. */
static void
test_reader_feed_and_rest(void **state)
{
    hg_ipc_reader_t first, second;
    hg_ipc_frame_t frame;
    hg_ipc_buf_t buf;
    const uint8_t *data;
    size_t len;
    char err[256];
    uint32_t v;
    int i;

    HG_UNUSED(state);
    hg_ipc_buf_init(&buf);
    for (i = 1; i <= 3; i++) {
        hg_ipc_begin(&buf, HG_IPC_READY);
        hg_ipc_put_u32(&buf, HG_IPC_F_PID, (uint32_t) i);
        assert_int_equal(hg_ipc_end(&buf), HG_OK);
    }
    hg_ipc_reader_init(&first);
    hg_ipc_reader_init(&second);
    assert_int_equal(hg_ipc_reader_feed(&first, buf.data, buf.len), HG_OK);
    /* nothing handed out yet: no last frame, everything is the rest */
    hg_ipc_reader_last(&first, &data, &len);
    assert_int_equal(len, 0);
    hg_ipc_reader_rest(&first, &data, &len);
    assert_int_equal(len, buf.len);
    assert_int_equal(hg_ipc_next(&first, &frame, err, sizeof(err)), 1);
    hg_ipc_reader_last(&first, &data, &len);
    assert_int_equal(len, buf.len / 3);
    assert_int_equal(hg_ipc_reader_feed(&second, data, len), HG_OK);
    hg_ipc_reader_rest(&first, &data, &len);
    assert_int_equal(len, 2 * buf.len / 3);
    assert_int_equal(hg_ipc_reader_feed(&second, data, len), HG_OK);
    for (i = 1; i <= 3; i++) {
        assert_int_equal(hg_ipc_next(&second, &frame, err, sizeof(err)), 1);
        assert_int_equal(hg_ipc_get_u32(&frame, HG_IPC_F_PID, &v), HG_OK);
        assert_int_equal(v, (uint32_t) i);
    }
    assert_int_equal(hg_ipc_next(&second, &frame, err, sizeof(err)), 0);
    hg_ipc_reader_free(&first);
    hg_ipc_reader_free(&second);
    hg_ipc_buf_free(&buf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch_roundtrip),
        cmocka_unit_test(test_dispatch_defaults),
        cmocka_unit_test(test_dispatch_required),
        cmocka_unit_test(test_dispatch_string_with_nul),
        cmocka_unit_test(test_result_roundtrip),
        cmocka_unit_test(test_result_minimal),
        cmocka_unit_test(test_reader_feed_and_rest),
    };

    return cmocka_run_group_tests_name("msg", tests, NULL, NULL);
}
