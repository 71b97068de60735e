/*
 * test_http.c: the bundled http module (modules/http.so, dlopen'ed as the
 * worker loads it) against a real HTTP server: libmicrohttpd on 127.0.0.1,
 * an ephemeral port, one thread per connection so that /slow does not hold
 * up the other routes. Run from the repository root.
 *
 * Routes: /ok (200 "hello"), /status/N, /slow (3 s), /retry (503,
 * Retry-After: 7), /retry-date (503, Retry-After: an HTTP-date a minute
 * ahead), /redirect (302 to /ok), /echo (the request as JSON: method, some
 * headers, body), /big (200 KiB).
 */

#include "hg_core.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "hg_exec.h"
#include "hg_log.h"

#define TEST_MODULE_PATH  "modules/http.so"
#define TEST_BIG_SIZE     (200 * 1024)

typedef struct test_upload_s {
    char *data;
    size_t len;
} test_upload_t;

static struct {
    struct MHD_Daemon *daemon;
    uint16_t port;
    int refused_fd;                 /* bound, never listening */
    uint16_t refused_port;
    void *dl;
    const hg_module_t *module;
    atomic_int stopping;
} test;

static char test_big[TEST_BIG_SIZE];

/* --- the server ------------------------------------------------------ */

static enum MHD_Result
test_respond(struct MHD_Connection *conn, unsigned status, const char *body,
             size_t len, enum MHD_ResponseMemoryMode mode,
             const char *header, const char *value)
{
    struct MHD_Response *response;
    enum MHD_Result rc;

    response = MHD_create_response_from_buffer(len, (void *) body, mode);
    if (response == NULL) {
        return MHD_NO;
    }
    if (header != NULL
        && MHD_add_response_header(response, header, value) != MHD_YES)
    {
        MHD_destroy_response(response);
        return MHD_NO;
    }
    rc = MHD_queue_response(conn, status, response);
    MHD_destroy_response(response);
    return rc;
}

static json_t *
test_header(struct MHD_Connection *conn, const char *name)
{
    const char *value;

    value = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
    return value != NULL ? json_string(value) : json_null();
}

static enum MHD_Result
test_echo(struct MHD_Connection *conn, const char *method,
          const test_upload_t *up)
{
    json_t *doc;
    char *text;

    doc = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:s%}",
                    "method", method,
                    "x_test", test_header(conn, "X-Test"),
                    "authorization", test_header(conn, "Authorization"),
                    "content_type", test_header(conn, "Content-Type"),
                    "expect", test_header(conn, "Expect"),
                    "user_agent", test_header(conn, "User-Agent"),
                    "body", up->data != NULL ? up->data : "", up->len);
    if (doc == NULL) {
        return MHD_NO;
    }
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL) {
        return MHD_NO;
    }
    return test_respond(conn, MHD_HTTP_OK, text, strlen(text),
                        MHD_RESPMEM_MUST_FREE, "Content-Type",
                        "application/json");
}

static enum MHD_Result
test_serve(void *cls, struct MHD_Connection *conn, const char *url,
           const char *method, const char *version, const char *upload_data,
           size_t *upload_data_size, void **con_cls)
{
    test_upload_t *up = *con_cls;
    char date[64], *grown, *end;
    struct timespec step = { 0, 50 * 1000 * 1000 };
    struct tm tm;
    time_t when;
    long code;
    int i;

    HG_UNUSED(cls);
    HG_UNUSED(version);

    /* First call: headers only. Then the body in pieces, then a last call
     * with nothing, where the response is made. */
    if (up == NULL) {
        up = calloc(1, sizeof(*up));
        if (up == NULL) {
            return MHD_NO;
        }
        *con_cls = up;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        grown = realloc(up->data, up->len + *upload_data_size + 1);
        if (grown == NULL) {
            return MHD_NO;
        }
        memcpy(grown + up->len, upload_data, *upload_data_size);
        up->data = grown;
        up->len += *upload_data_size;
        up->data[up->len] = '\0';
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (strcmp(url, "/ok") == 0) {
        return test_respond(conn, MHD_HTTP_OK, "hello", 5,
                            MHD_RESPMEM_PERSISTENT, NULL, NULL);
    }
    if (strncmp(url, "/status/", 8) == 0) {
        errno = 0;
        code = strtol(url + 8, &end, 10);
        if (errno != 0 || *end != '\0' || code < 100 || code > 599) {
            code = MHD_HTTP_BAD_REQUEST;
        }
        return test_respond(conn, (unsigned) code, "status", 6,
                            MHD_RESPMEM_PERSISTENT, NULL, NULL);
    }
    if (strcmp(url, "/slow") == 0) {
        for (i = 0; i < 60 && !atomic_load(&test.stopping); i++) {
            nanosleep(&step, NULL);
        }
        return test_respond(conn, MHD_HTTP_OK, "slow", 4,
                            MHD_RESPMEM_PERSISTENT, NULL, NULL);
    }
    if (strcmp(url, "/retry") == 0) {
        return test_respond(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "busy", 4,
                            MHD_RESPMEM_PERSISTENT, "Retry-After", "7");
    }
    if (strcmp(url, "/retry-429") == 0) {
        return test_respond(conn, MHD_HTTP_TOO_MANY_REQUESTS, "slow down",
                            9, MHD_RESPMEM_PERSISTENT, "Retry-After", "2");
    }
    if (strcmp(url, "/retry-bad") == 0) {
        return test_respond(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "busy", 4,
                            MHD_RESPMEM_PERSISTENT, "Retry-After", "soon");
    }
    if (strcmp(url, "/retry-date") == 0) {
        when = time(NULL) + 60;
        if (gmtime_r(&when, &tm) == NULL
            || strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT",
                        &tm) == 0)
        {
            return MHD_NO;
        }
        return test_respond(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "busy", 4,
                            MHD_RESPMEM_PERSISTENT, "Retry-After", date);
    }
    if (strcmp(url, "/redirect") == 0) {
        return test_respond(conn, MHD_HTTP_FOUND, "moved", 5,
                            MHD_RESPMEM_PERSISTENT, "Location", "/ok");
    }
    if (strcmp(url, "/echo") == 0) {
        return test_echo(conn, method, up);
    }
    if (strcmp(url, "/big") == 0) {
        return test_respond(conn, MHD_HTTP_OK, test_big, sizeof(test_big),
                            MHD_RESPMEM_PERSISTENT, NULL, NULL);
    }
    return test_respond(conn, MHD_HTTP_NOT_FOUND, "not found", 9,
                        MHD_RESPMEM_PERSISTENT, NULL, NULL);
}

static void
test_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
               enum MHD_RequestTerminationCode toe)
{
    test_upload_t *up = *con_cls;

    HG_UNUSED(cls);
    HG_UNUSED(conn);
    HG_UNUSED(toe);

    if (up != NULL) {
        free(up->data);
        free(up);
        *con_cls = NULL;
    }
}

/* --- running the module ---------------------------------------------- */

static void
test_host_log(hg_log_level_t level, const char *module, const char *fmt,
              ...) HG_PRINTF(3, 4);

static void
test_host_log(hg_log_level_t level, const char *module, const char *fmt,
              ...)
{
    va_list ap;

    fprintf(stderr, "[%d] %s: ", (int) level, module);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static const hg_host_t test_host = {
    .abi_version = HG_MODULE_ABI_VERSION,
    .size = (uint32_t) sizeof(hg_host_t),
    .version = "test",
    .process = HG_PROCESS_WORKER,
    .prefix = ".",
    .log = test_host_log,
};

/* A job for PATH on the test server (or URL when it has a scheme), with
 * the keys of the JSON object EXTRA added. */
static json_t *
test_job(const char *path, const char *extra)
{
    json_error_t error;
    json_t *job;
    char url[256];

    job = json_loads(extra != NULL ? extra : "{}", 0, &error);
    assert_non_null(job);
    if (strncmp(path, "http", 4) == 0) {
        snprintf(url, sizeof(url), "%s", path);
    } else {
        snprintf(url, sizeof(url), "http://127.0.0.1:%u%s",
                 (unsigned) test.port, path);
    }
    assert_int_equal(json_object_set_new(job, "url", json_string(url)), 0);
    assert_int_equal(json_object_set_new(job, "type", json_string("http")),
                     0);
    assert_int_equal(json_object_set_new(job, "id", json_string("web")), 0);
    return job;
}

/* The handle as the worker fills it, with a 10 s deadline. */
static void
test_exec(hg_exec_t *exec, json_t *job)
{
    hg_exec_init(exec);
    exec->id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    exec->job_id = "web";
    exec->trigger = "manual";
    exec->job = job;
    exec->attempt = 1;
    exec->scheduled_for = hg_exec_now_ms();
    exec->deadline = hg_exec_now_ms() + 10000;
    exec->output_limit = hg_exec_limit_from_job(job);
}

static void
test_done(hg_exec_t *exec, json_t *job)
{
    hg_exec_reset(exec);
    json_decref(job);
}

static void
assert_output(const hg_exec_t *exec, const char *expected)
{
    assert_int_equal(exec->output_len, strlen(expected));
    if (exec->output_len > 0) {
        assert_memory_equal(exec->output, expected, exec->output_len);
    }
}

static void
assert_status(const hg_exec_t *exec, int status)
{
    json_t *metric;
    char name[32];

    assert_true(exec->has_exit_code);
    assert_int_equal(exec->exit_code, status);
    snprintf(name, sizeof(name), "responses_%dxx", status / 100);
    metric = json_object_get(exec->metrics, name);
    assert_true(json_is_real(metric));
    assert_true(json_real_value(metric) == 1.0);
    assert_int_equal(json_object_size(exec->metrics), 1);
}

/* Run a job on PATH with EXTRA keys and return the result; the handle is
 * left for the caller to inspect and pass to test_done. */
static hg_result_t
test_run(hg_exec_t *exec, json_t **job, const char *path, const char *extra)
{
    *job = test_job(path, extra);
    test_exec(exec, *job);
    return test.module->execute(exec);
}

/* The request as /echo returned it. */
static json_t *
test_echoed(const hg_exec_t *exec)
{
    json_error_t error;
    json_t *doc;

    doc = json_loadb(exec->output, exec->output_len, 0, &error);
    if (doc == NULL) {
        fail_msg("/echo returned no JSON: %s", error.text);
    }
    return doc;
}

static int64_t
test_monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- tests ----------------------------------------------------------- */

static void
test_get_ok(void **state)
{
    hg_exec_t exec;
    json_t *job;

    HG_UNUSED(state);
    assert_int_equal(test_run(&exec, &job, "/ok", NULL), HG_OK);
    assert_output(&exec, "hello");
    assert_false(exec.truncated);
    assert_null(exec.error);
    assert_status(&exec, 200);
    assert_int_equal(exec.retry_after_ms, -1);
    test_done(&exec, job);
}

static void
test_head(void **state)
{
    hg_exec_t exec;
    json_t *job;

    HG_UNUSED(state);
    assert_int_equal(test_run(&exec, &job, "/ok", "{\"method\": \"HEAD\"}"),
                     HG_OK);
    assert_output(&exec, "");
    assert_status(&exec, 200);
    test_done(&exec, job);
}

static void
test_expect(void **state)
{
    hg_exec_t exec;
    json_t *job;

    HG_UNUSED(state);
    assert_int_equal(test_run(&exec, &job, "/status/404",
                              "{\"expect\": [200, 404]}"), HG_OK);
    assert_status(&exec, 404);
    test_done(&exec, job);

    assert_int_equal(test_run(&exec, &job, "/status/204",
                              "{\"expect\": 204}"), HG_OK);
    assert_status(&exec, 204);
    test_done(&exec, job);

    assert_int_equal(test_run(&exec, &job, "/status/201", NULL), HG_OK);
    test_done(&exec, job);

    assert_int_equal(test_run(&exec, &job, "/ok", "{\"expect\": 204}"),
                     HG_FAIL);
    assert_string_equal(exec.error, "unexpected status 200 (expected 204)");
    test_done(&exec, job);

    assert_int_equal(test_run(&exec, &job, "/status/500",
                              "{\"expect\": [200, 204]}"), HG_FAIL);
    assert_string_equal(exec.error,
                        "unexpected status 500 (expected 200, 204)");
    test_done(&exec, job);
}

static void
test_unexpected_status(void **state)
{
    hg_exec_t exec;
    json_t *job;

    HG_UNUSED(state);
    assert_int_equal(test_run(&exec, &job, "/status/404", NULL), HG_FAIL);
    assert_string_equal(exec.error, "unexpected status 404 (expected 2xx)");
    assert_status(&exec, 404);
    assert_output(&exec, "status");
    test_done(&exec, job);

    /* A 5xx without Retry-After is a plain failure. */
    assert_int_equal(test_run(&exec, &job, "/status/503", NULL), HG_FAIL);
    assert_string_equal(exec.error, "unexpected status 503 (expected 2xx)");
    assert_int_equal(exec.retry_after_ms, -1);
    test_done(&exec, job);
}

static void
test_retry_after(void **state)
{
    hg_exec_t exec;
    json_t *job;

    HG_UNUSED(state);
    assert_int_equal(test_run(&exec, &job, "/retry", NULL), HG_RETRY);
    assert_int_equal(exec.retry_after_ms, 7000);
    assert_status(&exec, 503);
    assert_non_null(exec.error);
    test_done(&exec, job);

    assert_int_equal(test_run(&exec, &job, "/retry-429", NULL), HG_RETRY);
    assert_int_equal(exec.retry_after_ms, 2000);
    assert_status(&exec, 429);
    test_done(&exec, job);

    /* An HTTP-date a minute ahead (whole seconds, so 59-60 s from now). */
    assert_int_equal(test_run(&exec, &job, "/retry-date", NULL), HG_RETRY);
    assert_in_range(exec.retry_after_ms, 55000, 61000);
    test_done(&exec, job);

    /* A Retry-After that is neither: an ordinary unexpected status. */
    assert_int_equal(test_run(&exec, &job, "/retry-bad", NULL), HG_FAIL);
    assert_string_equal(exec.error, "unexpected status 503 (expected 2xx)");
    assert_int_equal(exec.retry_after_ms, -1);
    test_done(&exec, job);

    /* 503 listed in expect is a success, Retry-After or not. */
    assert_int_equal(test_run(&exec, &job, "/retry", "{\"expect\": 503}"),
                     HG_OK);
    test_done(&exec, job);
}

static void
test_redirect(void **state)
{
    hg_exec_t exec;
    json_t *job;

    HG_UNUSED(state);
    assert_int_equal(test_run(&exec, &job, "/redirect", NULL), HG_FAIL);
    assert_string_equal(exec.error, "unexpected status 302 (expected 2xx)");
    assert_status(&exec, 302);
    test_done(&exec, job);

    assert_int_equal(test_run(&exec, &job, "/redirect",
                              "{\"follow_redirects\": true}"), HG_OK);
    assert_output(&exec, "hello");
    assert_status(&exec, 200);
    test_done(&exec, job);
}

static void
test_post_body_headers(void **state)
{
    hg_exec_t exec;
    json_t *job, *echo;

    HG_UNUSED(state);
    assert_int_equal(test_run(&exec, &job, "/echo",
                              "{\"method\": \"POST\", \"body\": \"{\\\"a\\\": 1}\","
                              " \"headers\": {\"X-Test\": \"abc\","
                              " \"Authorization\": \"Bearer x\","
                              " \"Content-Type\": \"application/json\"}}"),
                     HG_OK);
    echo = test_echoed(&exec);
    assert_string_equal(json_string_value(json_object_get(echo, "method")),
                        "POST");
    assert_string_equal(json_string_value(json_object_get(echo, "x_test")),
                        "abc");
    assert_string_equal(
        json_string_value(json_object_get(echo, "authorization")),
        "Bearer x");
    assert_string_equal(
        json_string_value(json_object_get(echo, "content_type")),
        "application/json");
    assert_string_equal(json_string_value(json_object_get(echo, "body")),
                        "{\"a\": 1}");
    assert_true(json_is_null(json_object_get(echo, "expect")));
    assert_string_equal(
        json_string_value(json_object_get(echo, "user_agent")),
        "hourglass/test");
    json_decref(echo);
    test_done(&exec, job);

    /* Headers as a list, a method in lower case, a custom request. */
    assert_int_equal(test_run(&exec, &job, "/echo",
                              "{\"method\": \"put\", \"body\": \"v=1\","
                              " \"headers\": [\"X-Test: listed\","
                              " \"User-Agent: mine\"]}"), HG_OK);
    echo = test_echoed(&exec);
    assert_string_equal(json_string_value(json_object_get(echo, "method")),
                        "PUT");
    assert_string_equal(json_string_value(json_object_get(echo, "x_test")),
                        "listed");
    assert_string_equal(
        json_string_value(json_object_get(echo, "user_agent")), "mine");
    assert_string_equal(json_string_value(json_object_get(echo, "body")),
                        "v=1");
    json_decref(echo);
    test_done(&exec, job);

    assert_int_equal(test_run(&exec, &job, "/echo",
                              "{\"method\": \"DELETE\"}"), HG_OK);
    echo = test_echoed(&exec);
    assert_string_equal(json_string_value(json_object_get(echo, "method")),
                        "DELETE");
    assert_string_equal(json_string_value(json_object_get(echo, "body")),
                        "");
    json_decref(echo);
    test_done(&exec, job);
}

static void
test_payload_as_body(void **state)
{
    static const char payload[] = "{\"from\": \"queue\"}";
    hg_exec_t exec;
    json_t *job, *echo;

    HG_UNUSED(state);
    job = test_job("/echo", "{\"method\": \"POST\"}");
    test_exec(&exec, job);
    exec.payload = payload;
    exec.payload_len = strlen(payload);
    assert_int_equal(test.module->execute(&exec), HG_OK);
    echo = test_echoed(&exec);
    assert_string_equal(json_string_value(json_object_get(echo, "body")),
                        payload);
    json_decref(echo);
    test_done(&exec, job);

    /* The job's own body wins over the payload. */
    job = test_job("/echo", "{\"method\": \"POST\", \"body\": \"mine\"}");
    test_exec(&exec, job);
    exec.payload = payload;
    exec.payload_len = strlen(payload);
    assert_int_equal(test.module->execute(&exec), HG_OK);
    echo = test_echoed(&exec);
    assert_string_equal(json_string_value(json_object_get(echo, "body")),
                        "mine");
    json_decref(echo);
    test_done(&exec, job);
}

static void
test_deadline(void **state)
{
    hg_exec_t exec;
    json_t *job;
    int64_t started, elapsed;

    HG_UNUSED(state);
    job = test_job("/slow", NULL);
    test_exec(&exec, job);
    exec.deadline = hg_exec_now_ms() + 500;
    started = test_monotonic_ms();
    assert_int_equal(test.module->execute(&exec), HG_FAIL);
    elapsed = test_monotonic_ms() - started;
    /* /slow answers after 3 s: well under that means the deadline cut it. */
    assert_in_range(elapsed, 400, 2000);
    assert_non_null(exec.error);
    assert_non_null(strstr(exec.error, "curl: Timeout was reached"));
    assert_false(exec.has_exit_code);
    test_done(&exec, job);

    /* A deadline already past: no request at all. */
    job = test_job("/ok", NULL);
    test_exec(&exec, job);
    exec.deadline = hg_exec_now_ms() - 1;
    assert_int_equal(test.module->execute(&exec), HG_FAIL);
    assert_non_null(exec.error);
    test_done(&exec, job);
}

static void
test_cancelled(void **state)
{
    volatile sig_atomic_t cancel = 1;
    hg_exec_t exec;
    json_t *job;
    int64_t started;

    HG_UNUSED(state);
    job = test_job("/slow", NULL);
    test_exec(&exec, job);
    exec.deadline = 0;
    exec.cancel = &cancel;
    started = test_monotonic_ms();
    assert_int_equal(test.module->execute(&exec), HG_FAIL);
    assert_in_range(test_monotonic_ms() - started, 0, 2000);
    assert_non_null(exec.error);
    assert_int_equal(strncmp(exec.error, "stopped after", 13), 0);
    test_done(&exec, job);
}

static void
test_connection_refused(void **state)
{
    hg_exec_t exec;
    json_t *job;
    char url[64];

    HG_UNUSED(state);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/ok",
             (unsigned) test.refused_port);
    assert_int_equal(test_run(&exec, &job, url, NULL), HG_FAIL);
    assert_non_null(exec.error);
    assert_int_equal(strncmp(exec.error, "curl: Couldn't connect to server",
                             32), 0);
    assert_false(exec.has_exit_code);
    assert_null(exec.metrics);
    test_done(&exec, job);
}

static void
test_output_limit(void **state)
{
    hg_exec_t exec;
    json_t *job;

    HG_UNUSED(state);
    assert_int_equal(test_run(&exec, &job, "/big",
                              "{\"output_limit\": 1000}"), HG_OK);
    assert_int_equal(exec.output_len, 1000);
    assert_true(exec.truncated);
    assert_status(&exec, 200);
    test_done(&exec, job);

    /* The default limit (64 KiB) applies too; the transfer completes. */
    assert_int_equal(test_run(&exec, &job, "/big", NULL), HG_OK);
    assert_int_equal(exec.output_len, HG_EXEC_DEFAULT_OUTPUT_LIMIT);
    assert_true(exec.truncated);
    test_done(&exec, job);

    /* Exactly at the limit: not truncated. */
    assert_int_equal(test_run(&exec, &job, "/ok", "{\"output_limit\": 5}"),
                     HG_OK);
    assert_output(&exec, "hello");
    assert_false(exec.truncated);
    test_done(&exec, job);
}

static void
test_log_line(void **state)
{
    char path[] = "/tmp/test_http_log_XXXXXX";
    char line[4096], expected[128];
    hg_exec_t exec;
    json_t *job;
    ssize_t n;
    int fd;

    HG_UNUSED(state);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(hg_log_open(path, HG_LOG_INFO, HG_LOG_FORMAT_TEXT),
                     HG_OK);
    assert_int_equal(test_run(&exec, &job, "/ok", NULL), HG_OK);
    test_done(&exec, job);
    hg_log_close();

    n = read(fd, line, sizeof(line) - 1);
    assert_true(n > 0);
    line[n] = '\0';
    snprintf(expected, sizeof(expected), "GET http://127.0.0.1:%u/ok -> 200",
             (unsigned) test.port);
    if (strstr(line, expected) == NULL) {
        fail_msg("no \"%s\" in the log: %s", expected, line);
    }
    close(fd);
    unlink(path);
}

static void
test_password_not_logged(void **state)
{
    char path[] = "/tmp/test_http_log_XXXXXX";
    char line[4096], url[128];
    hg_exec_t exec;
    json_t *job;
    ssize_t n;
    int fd;

    HG_UNUSED(state);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(hg_log_open(path, HG_LOG_INFO, HG_LOG_FORMAT_TEXT),
                     HG_OK);
    snprintf(url, sizeof(url), "http://user:s3cret@127.0.0.1:%u/ok",
             (unsigned) test.port);
    assert_int_equal(test_run(&exec, &job, url, NULL), HG_OK);
    test_done(&exec, job);
    hg_log_close();

    n = read(fd, line, sizeof(line) - 1);
    assert_true(n > 0);
    line[n] = '\0';
    assert_null(strstr(line, "s3cret"));
    assert_non_null(strstr(line, "user:***@"));
    close(fd);
    unlink(path);
}

typedef struct test_invalid_s {
    const char *job;
    const char *message;            /* exact, or a prefix ending in '*' */
} test_invalid_t;

static const test_invalid_t test_invalid[] = {
    { "{}", "url: is required" },
    { "{\"url\": null}", "url: is required" },
    { "{\"url\": 5}", "url: must be a string" },
    { "{\"url\": \"ftp://x\"}", "url: \"ftp://x\" must be an http or https URL" },
    { "{\"url\": \"example.com/x\"}",
      "url: \"example.com/x\" must be an http or https URL*" },
    { "{\"url\": \"http://h\", \"method\": \"FETCH\"}",
      "method: \"FETCH\" is not one of GET, HEAD, POST, PUT, PATCH, DELETE, "
      "OPTIONS" },
    { "{\"url\": \"http://h\", \"method\": 7}",
      "method: 7 is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS" },
    { "{\"url\": \"http://h\", \"expect\": \"200\"}",
      "expect: must be a status code 100-599 or a list of them" },
    { "{\"url\": \"http://h\", \"expect\": 99}",
      "expect: must be a status code 100-599 or a list of them" },
    { "{\"url\": \"http://h\", \"expect\": []}",
      "expect: must be a status code 100-599 or a list of them" },
    { "{\"url\": \"http://h\", \"expect\": [200, 600]}",
      "expect: must be a status code 100-599 or a list of them" },
    { "{\"url\": \"http://h\", \"headers\": {\"X\": 1}}",
      "headers: X: must be a string" },
    { "{\"url\": \"http://h\", \"headers\": {\"Bad Name\": \"v\"}}",
      "headers: \"Bad Name\" is not a valid header name" },
    { "{\"url\": \"http://h\", \"headers\": {\"X\": \"a\\r\\nY: 1\"}}",
      "headers: X: must not contain a line break" },
    { "{\"url\": \"http://h\", \"headers\": [\"NoColon\"]}",
      "headers: item 1: \"NoColon\" is not \"Name: value\"" },
    { "{\"url\": \"http://h\", \"headers\": [\"A: b\", 1]}",
      "headers: item 2: must be a string \"Name: value\"" },
    { "{\"url\": \"http://h\", \"headers\": \"X: y\"}", "headers: must be *" },
    { "{\"url\": \"http://h\", \"body\": 5}", "body: must be a string" },
    { "{\"url\": \"http://h\", \"method\": \"HEAD\", \"body\": \"x\"}",
      "body: a HEAD request has no body*" },
    { "{\"url\": \"http://h\", \"follow_redirects\": \"yes\"}",
      "follow_redirects: must be true or false" },
    { "{\"url\": \"http://h\", \"verify_tls\": 1}",
      "verify_tls: must be true or false" },
    { "{\"url\": \"http://h\", \"output_limit\": \"5x\"}",
      "output_limit: \"5x\" is not a size (try \"64KiB\")" },
    { "{\"url\": \"http://h\", \"output_limit\": -1}", "output_limit: *" },
};

static void
test_validate(void **state)
{
    char err[512];
    json_error_t error;
    json_t *job;
    size_t i, len;
    const char *want;

    HG_UNUSED(state);
    for (i = 0; i < HG_NELEMS(test_invalid); i++) {
        job = json_loads(test_invalid[i].job, 0, &error);
        assert_non_null(job);
        err[0] = '\0';
        if (test.module->validate(job, err, sizeof(err)) != -1) {
            fail_msg("%s: accepted", test_invalid[i].job);
        }
        want = test_invalid[i].message;
        len = strlen(want);
        if (want[len - 1] == '*'
            ? strncmp(err, want, len - 1) != 0 : strcmp(err, want) != 0)
        {
            fail_msg("%s: \"%s\", wanted \"%s\"", test_invalid[i].job, err,
                     want);
        }
        json_decref(job);
    }

    job = json_loads("{\"id\": \"ping\", \"type\": \"http\", \"timeout\": "
                     "\"5s\", \"url\": \"HTTPS://example.com:8443/h?x=1\", "
                     "\"method\": \"post\", \"headers\": {\"A\": \"\"}, "
                     "\"body\": \"x\", \"expect\": [200, 599], "
                     "\"follow_redirects\": true, \"verify_tls\": false, "
                     "\"output_limit\": \"64KiB\"}", 0, &error);
    assert_non_null(job);
    assert_int_equal(test.module->validate(job, err, sizeof(err)), 0);
    json_decref(job);
}

static void
test_execute_invalid(void **state)
{
    hg_exec_t exec;
    json_t *job;

    HG_UNUSED(state);
    job = test_job("/ok", "{\"method\": \"FETCH\"}");
    test_exec(&exec, job);
    assert_int_equal(test.module->execute(&exec), HG_FATAL);
    assert_string_equal(exec.error, "method: \"FETCH\" is not one of GET, "
                        "HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
    test_done(&exec, job);
}

static void
test_init_conf(void **state)
{
    char err[256];
    json_t *conf;

    HG_UNUSED(state);
    conf = json_pack("{s:i}", "proxy", 1);
    assert_non_null(conf);
    assert_int_equal(test.module->init(conf, &test_host, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "\"proxy\""));
    json_decref(conf);

    /* A second init in the same process, balanced by its fini. */
    conf = json_object();
    assert_int_equal(test.module->init(conf, &test_host, err, sizeof(err)),
                     0);
    test.module->fini();
    json_decref(conf);
}

/* --- set up ---------------------------------------------------------- */

static int
test_setup(void **state)
{
    struct sockaddr_in addr;
    socklen_t addrlen = sizeof(addr);
    const union MHD_DaemonInfo *info;
    char err[256];
    json_t *conf;
    int rc;

    HG_UNUSED(state);
    /* The test server is on loopback: no proxy from the environment. */
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");
    memset(test_big, 'x', sizeof(test_big));

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    test.daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD
                                   | MHD_USE_THREAD_PER_CONNECTION
                                   | MHD_USE_ERROR_LOG,
                                   0, NULL, NULL, test_serve, NULL,
                                   MHD_OPTION_SOCK_ADDR, &addr,
                                   MHD_OPTION_NOTIFY_COMPLETED,
                                   test_completed, NULL,
                                   MHD_OPTION_END);
    if (test.daemon == NULL) {
        fprintf(stderr, "cannot start the test HTTP server\n");
        return -1;
    }
    info = MHD_get_daemon_info(test.daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0) {
        return -1;
    }
    test.port = info->port;

    /* A port that refuses connections: bound, never listening. */
    test.refused_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (test.refused_fd < 0
        || bind(test.refused_fd, (struct sockaddr *) &addr, sizeof(addr))
           != 0
        || getsockname(test.refused_fd, (struct sockaddr *) &addr, &addrlen)
           != 0)
    {
        perror("refused socket");
        return -1;
    }
    test.refused_port = ntohs(addr.sin_port);

    test.dl = dlopen(TEST_MODULE_PATH, RTLD_NOW | RTLD_LOCAL);
    if (test.dl == NULL) {
        fprintf(stderr, "dlopen %s: %s\n", TEST_MODULE_PATH, dlerror());
        return -1;
    }
    test.module = dlsym(test.dl, "hg_module");
    if (test.module == NULL
        || test.module->abi_version != HG_MODULE_ABI_VERSION
        || test.module->size != sizeof(hg_module_t)
        || strcmp(test.module->name, "http") != 0
        || test.module->keys == NULL)
    {
        fprintf(stderr, "%s: not an http module of this ABI\n",
                TEST_MODULE_PATH);
        return -1;
    }
    conf = json_object();
    rc = test.module->init(conf, &test_host, err, sizeof(err));
    json_decref(conf);
    if (rc != 0) {
        fprintf(stderr, "init: %s\n", err);
        return -1;
    }
    return 0;
}

static int
test_teardown(void **state)
{
    HG_UNUSED(state);
    if (test.module != NULL) {
        test.module->fini();
    }
    if (test.dl != NULL) {
        dlclose(test.dl);
    }
    if (test.refused_fd >= 0) {
        close(test.refused_fd);
    }
    atomic_store(&test.stopping, 1);
    if (test.daemon != NULL) {
        MHD_stop_daemon(test.daemon);
    }
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_init_conf),
        cmocka_unit_test(test_get_ok),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_expect),
        cmocka_unit_test(test_unexpected_status),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_redirect),
        cmocka_unit_test(test_post_body_headers),
        cmocka_unit_test(test_payload_as_body),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_cancelled),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_output_limit),
        cmocka_unit_test(test_log_line),
        cmocka_unit_test(test_password_not_logged),
        cmocka_unit_test(test_execute_invalid),
    };

    test.refused_fd = -1;
    return cmocka_run_group_tests_name("http module", tests, test_setup,
                                       test_teardown);
}
