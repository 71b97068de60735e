/*
 * store_helpers.h: what the store's unit tests (test_store.c for memory
 * and sqlite, test_store_pg.c for postgres, test_store_redis.c for redis)
 * share: waiting for a barrier or a notification as the master does,
 * opening a server's store with quick retries, putting a record, the
 * record with every field set and the comparison of two records field by
 * field.
 */

#ifndef STORE_HELPERS_H
#define STORE_HELPERS_H

#include <poll.h>

#include "hg_store.h"

static int64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits (poll on notify_fd, as the master does) until TICKET is committed;
 * false after timeout_ms. */
static bool
wait_ticket(hg_store_t *store, uint64_t ticket, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    struct pollfd pfd;

    while (hg_store_ack(store) < ticket) {
        int64_t left = end - mono_ms();
        if (left <= 0) {
            return false;
        }
        if (store->notify_fd < 0) {
            return false;
        }
        pfd.fd = store->notify_fd;
        pfd.events = POLLIN;
        (void) poll(&pfd, 1, (int) left);
    }
    return true;
}

/* Waits up to TIMEOUT_MS for the store's notification (a commit, a
 * claim's answer, a line of the writer's), and acks what it says. */
static inline void
settle(hg_store_t *store, int timeout_ms)
{
    struct pollfd pfd = { store->notify_fd, POLLIN, 0 };

    (void) poll(&pfd, 1, timeout_ms);
    (void) hg_store_ack(store);
}

/* The store CONF describes, retrying a server that does not answer at
 * most 200 ms apart (the tests stop servers under it); the test fails,
 * naming WHAT, when it cannot be opened. */
static inline hg_store_t *
open_server_store(const hg_conf_t *conf, const char *what)
{
    hg_store_options_t options = { .retry_max_ms = 200 };
    char err[512] = "";
    hg_store_t *store = hg_store_open_with(conf, &options, err, sizeof(err));

    if (store == NULL) {
        fail_msg("open %s: %s", what, err);
    }
    return store;
}

static void
sync_store(hg_store_t *store)
{
    uint64_t ticket;

    assert_int_equal(hg_store_barrier(store, &ticket), HG_OK);
    if (!wait_ticket(store, ticket, 20000)) {
        fail_msg("ticket %" PRIu64 " not committed within 20 s", ticket);
    }
}

/* The lines of the log file at PATH that hold NEEDLE, so far. */
static inline size_t
log_lines_with(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "r");
    char line[2048];
    size_t n = 0;

    if (fp == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        n += strstr(line, needle) != NULL;
    }
    fclose(fp);
    return n;
}

static void
put(hg_store_t *store, const hg_exec_record_t *r)
{
    assert_int_equal(hg_store_put_execution(store, r), HG_OK);
}

/* Every field set; output and payload hold NULs (and a 0xff byte). */
static const char store_full_output[] = "line 1\n\0binary\0\xff\x01 end";
static const char store_full_payload[] = "{\"a\":1}\0tail";

static hg_exec_record_t
store_full_record(void)
{
    hg_exec_record_t full = {
        .id = "0190f0a1-7c3e-7abc-8def-0123456789ab",
        .run_id = "0190f0a1-0000-7abc-8def-0123456789ab",
        .job_id = "nightly.backup-1",
        .status = HG_EXEC_TIMED_OUT,
        .attempt = 3,
        .trigger = "api:ops",
        .scheduled_for = 1767225600123LL,
        .started_at = 1767225600200LL,
        .finished_at = 1767225660250LL,
        .duration_ms = 60050,
        .exit_code = 137,
        .signo = 9,
        .output = store_full_output,
        .output_len = sizeof(store_full_output) - 1,
        .output_truncated = true,
        .error = "timed out after 1m",
        .worker_pid = 31337,
        .max_rss_kb = 123456,
        .cpu_user_ms = 4567,
        .cpu_sys_ms = 890,
        .payload = store_full_payload,
        .payload_len = sizeof(store_full_payload) - 1,
        .priority = HG_PRIORITY_CRITICAL,
        .run_at = 1767225600000LL,
        .unique_key = "backup:2026-01-01",
        .retry_at = 1767225720000LL,
    };

    return full;
}

static void
assert_same_record(const hg_exec_record_t *a, const hg_exec_record_t *b)
{
#define SAME_STR(field) \
    do { \
        if (a->field == NULL || b->field == NULL) { \
            assert_ptr_equal(a->field, b->field); \
        } else { \
            assert_string_equal(a->field, b->field); \
        } \
    } while (0)
#define SAME_BLOB(field, len) \
    do { \
        assert_int_equal(a->len, b->len); \
        if (a->field == NULL || b->field == NULL) { \
            assert_ptr_equal(a->field, b->field); \
        } else { \
            assert_memory_equal(a->field, b->field, a->len); \
        } \
    } while (0)
    SAME_STR(id);
    SAME_STR(run_id);
    SAME_STR(job_id);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->attempt, b->attempt);
    SAME_STR(trigger);
    assert_int_equal(a->scheduled_for, b->scheduled_for);
    assert_int_equal(a->started_at, b->started_at);
    assert_int_equal(a->finished_at, b->finished_at);
    assert_int_equal(a->duration_ms, b->duration_ms);
    assert_int_equal(a->exit_code, b->exit_code);
    assert_int_equal(a->signo, b->signo);
    SAME_BLOB(output, output_len);
    assert_int_equal(a->output_truncated, b->output_truncated);
    SAME_STR(error);
    assert_int_equal(a->worker_pid, b->worker_pid);
    assert_int_equal(a->max_rss_kb, b->max_rss_kb);
    assert_int_equal(a->cpu_user_ms, b->cpu_user_ms);
    assert_int_equal(a->cpu_sys_ms, b->cpu_sys_ms);
    SAME_BLOB(payload, payload_len);
    assert_int_equal(a->priority, b->priority);
    assert_int_equal(a->run_at, b->run_at);
    SAME_STR(unique_key);
    assert_int_equal(a->retry_at, b->retry_at);
#undef SAME_STR
#undef SAME_BLOB
}

#endif /* STORE_HELPERS_H */
