/*
 * hg_http_module.c: the bundled `http` executor, one HTTP(S) request per
 * execution with libcurl.
 *
 * It owns the http job keys (their validation, shared by validate in the
 * master and by execute in the worker, so that a definition that reached a
 * worker by another road is checked all the same), the process's libcurl
 * global state (curl_global_init in every init, curl_global_cleanup in every
 * fini, so the two stay balanced per process), and one easy handle per
 * worker process, kept between executions so that keep-alive connections
 * and the DNS cache survive, and reset before each one so that no option
 * leaks from one job into the next.
 *
 * What it must never do: include core headers (it is built as if out of
 * tree), block past the job's deadline (the request is bounded by
 * CURLOPT_TIMEOUT_MS and a stop request aborts it through the progress
 * callback), or cut a response at the output limit: the body is read to the
 * end and hg_exec_output drops the excess and marks the record truncated,
 * because aborting the transfer would turn a good response into a failure.
 *
 * Result of an execution:
 *   status in `expect` (default any 2xx)           HG_OK
 *   429 or 503 with a usable Retry-After           HG_RETRY after that delay
 *   any other status                               HG_FAIL "unexpected status"
 *   transport error, timeout, stop                 HG_FAIL with curl's reason
 *   a job definition that does not validate        HG_FATAL (retrying cannot
 *                                                  make it valid)
 * The status code is recorded as the exit code, and counted by its class
 * in the metric `responses_2xx` (`responses_4xx`, ...).
 */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include <hourglass/module.h>

#if LIBCURL_VERSION_NUM < 0x074200
#error "the http module needs libcurl 7.66 or later"
#endif

#define HG_HTTP_ERRLEN          512
#define HG_HTTP_QUOTED_MAX      96      /* a value quoted in a message */
#define HG_HTTP_MAX_REDIRECTS   10L
#define HG_HTTP_PROTOCOLS       "http,https"

/* The job keys of this module; `timeout` is a common job key. */
static const char *const hg_http_keys[] = {
    "url", "method", "headers", "body", "expect", "follow_redirects",
    "verify_tls", "output_limit", NULL
};

static const char *const hg_http_methods[] = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", NULL
};

#define HG_HTTP_METHOD_LIST "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

/* A job definition, checked. Pointers borrow from the job's JSON. */
typedef struct hg_http_job_s {
    const char *url;
    const char *method;             /* canonical, upper case */
    const json_t *headers;          /* object, array or NULL */
    const json_t *body;             /* string or NULL */
    const json_t *expect;           /* integer, array or NULL (any 2xx) */
    int follow_redirects;
    int verify_tls;
} hg_http_job_t;

/* State of one transfer, seen by the curl callbacks. */
typedef struct hg_http_xfer_s {
    hg_exec_t *exec;
    curl_off_t received;            /* body bytes, kept or dropped */
    int stopped;                    /* the progress callback aborted it */
} hg_http_xfer_t;

/*
 * Per-process state. A worker inherits the master's copy when it is
 * forked; `pid` tells that apart from this process's own, so that the
 * worker's init starts its own count (the master never executes, so there
 * is never an inherited handle worth keeping).
 */
static struct {
    pid_t pid;
    unsigned inits;
    CURL *easy;
    char user_agent[64];
} hg_http;

/* --- helpers ------------------------------------------------------- */

static int64_t
hg_http_now_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        return 0;
    }
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A JSON value as it appears in a message: "ftp://x", 42, true. jansson
 * escapes quotes and control characters; a long value is cut with "...". */
static const char *
hg_http_quote(const json_t *value, char *buf, size_t len)
{
    size_t n;

    n = json_dumpb(value, buf, len - 1, JSON_ENCODE_ANY | JSON_COMPACT);
    if (n == 0) {
        snprintf(buf, len, "(value)");
    } else if (n >= len - 1) {
        memcpy(buf + len - 4, "...", 4);
    } else {
        buf[n] = '\0';
    }
    return buf;
}

/* A string quoted as in hg_http_quote. */
static const char *
hg_http_quote_text(const char *text, char *buf, size_t len)
{
    json_t *value;

    value = json_string(text);
    if (value == NULL) {
        snprintf(buf, len, "(text)");
        return buf;
    }
    hg_http_quote(value, buf, len);
    json_decref(value);
    return buf;
}

static int
hg_http_is_tchar(unsigned char c)
{
    /* RFC 9110 token characters, the only ones a header name may hold. */
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9'))
    {
        return 1;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
hg_http_valid_name(const char *name, size_t len)
{
    size_t i;

    if (len == 0) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!hg_http_is_tchar((unsigned char) name[i])) {
            return 0;
        }
    }
    return 1;
}

static int
hg_http_has_line_break(const char *text, size_t len)
{
    return memchr(text, '\r', len) != NULL || memchr(text, '\n', len) != NULL
           || memchr(text, '\0', len) != NULL;
}

/* --- validation ------------------------------------------------------ */

static int
hg_http_check_url(const json_t *value, char *err, size_t errlen)
{
    char quoted[HG_HTTP_QUOTED_MAX];
    CURLU *u;
    CURLUcode uc;
    char *scheme = NULL;
    int rc = -1;

    if (value == NULL || json_is_null(value)) {
        snprintf(err, errlen, "url: is required");
        return -1;
    }
    if (!json_is_string(value)) {
        snprintf(err, errlen, "url: must be a string");
        return -1;
    }
    hg_http_quote(value, quoted, sizeof(quoted));

    u = curl_url();
    if (u == NULL) {
        snprintf(err, errlen, "url: out of memory");
        return -1;
    }
    /* CURLU_NON_SUPPORT_SCHEME: parse any scheme, so that "ftp://x" is
     * refused below for what it is rather than for this libcurl's build. */
    uc = curl_url_set(u, CURLUPART_URL, json_string_value(value),
                      CURLU_NON_SUPPORT_SCHEME);
    if (uc != CURLUE_OK) {
#if LIBCURL_VERSION_NUM >= 0x075000
        snprintf(err, errlen, "url: %s must be an http or https URL (%s)",
                 quoted, curl_url_strerror(uc));
#else
        snprintf(err, errlen, "url: %s must be an http or https URL",
                 quoted);
#endif
        goto done;
    }
    uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (uc != CURLUE_OK
        || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
    {
        snprintf(err, errlen, "url: %s must be an http or https URL",
                 quoted);
        goto done;
    }
    rc = 0;

done:
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

static int
hg_http_check_method(const json_t *value, const char **method, char *err,
                     size_t errlen)
{
    char quoted[HG_HTTP_QUOTED_MAX];
    size_t i;

    if (value == NULL) {
        *method = "GET";
        return 0;
    }
    if (json_is_string(value)) {
        /* Accepted in any case ("post"), sent in the canonical one. */
        for (i = 0; hg_http_methods[i] != NULL; i++) {
            if (strcasecmp(json_string_value(value), hg_http_methods[i])
                == 0)
            {
                *method = hg_http_methods[i];
                return 0;
            }
        }
    }
    snprintf(err, errlen, "method: %s is not one of " HG_HTTP_METHOD_LIST,
             hg_http_quote(value, quoted, sizeof(quoted)));
    return -1;
}

static int
hg_http_check_headers(const json_t *value, char *err, size_t errlen)
{
    char quoted[HG_HTTP_QUOTED_MAX];
    const char *name, *text, *colon;
    const json_t *item;
    size_t i, len;

    if (value == NULL) {
        return 0;
    }
    if (json_is_object(value)) {
        json_object_foreach((json_t *) value, name, item) {
            if (!hg_http_valid_name(name, strlen(name))) {
                snprintf(err, errlen, "headers: %s is not a valid header "
                         "name", hg_http_quote_text(name, quoted,
                                                    sizeof(quoted)));
                return -1;
            }
            if (!json_is_string(item)) {
                snprintf(err, errlen, "headers: %s: must be a string", name);
                return -1;
            }
            if (hg_http_has_line_break(json_string_value(item),
                                       json_string_length(item)))
            {
                snprintf(err, errlen, "headers: %s: must not contain a line "
                         "break", name);
                return -1;
            }
        }
        return 0;
    }
    if (json_is_array(value)) {
        json_array_foreach(value, i, item) {
            if (!json_is_string(item)) {
                snprintf(err, errlen, "headers: item %zu: must be a string "
                         "\"Name: value\"", i + 1);
                return -1;
            }
            text = json_string_value(item);
            len = json_string_length(item);
            colon = memchr(text, ':', len);
            if (colon == NULL || !hg_http_valid_name(text,
                                                     (size_t) (colon - text)))
            {
                snprintf(err, errlen, "headers: item %zu: %s is not "
                         "\"Name: value\"", i + 1,
                         hg_http_quote(item, quoted, sizeof(quoted)));
                return -1;
            }
            if (hg_http_has_line_break(text, len)) {
                snprintf(err, errlen, "headers: item %zu: must not contain "
                         "a line break", i + 1);
                return -1;
            }
        }
        return 0;
    }
    snprintf(err, errlen, "headers: must be a group of strings "
             "({ Name = \"value\"; }) or a list of \"Name: value\" strings");
    return -1;
}

static int
hg_http_valid_status(const json_t *value)
{
    json_int_t code;

    if (!json_is_integer(value)) {
        return 0;
    }
    code = json_integer_value(value);
    return code >= 100 && code <= 599;
}

static int
hg_http_check_expect(const json_t *value, char *err, size_t errlen)
{
    const json_t *item;
    size_t i;

    if (value == NULL || hg_http_valid_status(value)) {
        return 0;
    }
    if (json_is_array(value) && json_array_size(value) > 0) {
        json_array_foreach(value, i, item) {
            if (!hg_http_valid_status(item)) {
                goto bad;
            }
        }
        return 0;
    }

bad:
    snprintf(err, errlen,
             "expect: must be a status code 100-599 or a list of them");
    return -1;
}

static int
hg_http_check_bool(const json_t *job, const char *key, int dflt, int *out,
                   char *err, size_t errlen)
{
    const json_t *value;

    value = json_object_get(job, key);
    if (value == NULL) {
        *out = dflt;
        return 0;
    }
    if (!json_is_boolean(value)) {
        snprintf(err, errlen, "%s: must be true or false", key);
        return -1;
    }
    *out = json_is_true(value);
    return 0;
}

static int
hg_http_check_output_limit(const json_t *value, char *err, size_t errlen)
{
    char quoted[HG_HTTP_QUOTED_MAX];
    uint64_t bytes;

    if (value == NULL) {
        return 0;
    }
    if (json_is_integer(value) && json_integer_value(value) >= 0) {
        return 0;
    }
    if (json_is_string(value)) {
        if (hg_parse_size(json_string_value(value), &bytes) == 0) {
            return 0;
        }
        snprintf(err, errlen, "output_limit: %s is not a size (try "
                 "\"64KiB\")", hg_http_quote(value, quoted, sizeof(quoted)));
        return -1;
    }
    snprintf(err, errlen, "output_limit: must be a size (\"64KiB\") or a "
             "number of bytes");
    return -1;
}

/* Check a job definition and fill *job from it: 0, or -1 with a message
 * that starts with the offending key. */
static int
hg_http_parse_job(const json_t *def, hg_http_job_t *job, char *err,
                  size_t errlen)
{
    const json_t *value;

    memset(job, 0, sizeof(*job));
    if (!json_is_object(def)) {
        snprintf(err, errlen, "the job definition is not an object");
        return -1;
    }

    value = json_object_get(def, "url");
    if (hg_http_check_url(value, err, errlen) != 0) {
        return -1;
    }
    job->url = json_string_value(value);

    if (hg_http_check_method(json_object_get(def, "method"), &job->method,
                             err, errlen) != 0)
    {
        return -1;
    }

    job->headers = json_object_get(def, "headers");
    if (hg_http_check_headers(job->headers, err, errlen) != 0) {
        return -1;
    }

    value = json_object_get(def, "body");
    if (value != NULL) {
        if (!json_is_string(value)) {
            snprintf(err, errlen, "body: must be a string");
            return -1;
        }
        if (strcmp(job->method, "HEAD") == 0) {
            snprintf(err, errlen, "body: a HEAD request has no body (set "
                     "method to POST, PUT or PATCH)");
            return -1;
        }
        job->body = value;
    }

    job->expect = json_object_get(def, "expect");
    if (json_is_object(job->expect)) {
        /* expect = { success_within = ...; }: the core's dead-man alert,
         * not status codes: the default (any 2xx) holds */
        job->expect = NULL;
    }
    if (hg_http_check_expect(job->expect, err, errlen) != 0) {
        return -1;
    }

    if (hg_http_check_bool(def, "follow_redirects", 0,
                           &job->follow_redirects, err, errlen) != 0
        || hg_http_check_bool(def, "verify_tls", 1, &job->verify_tls, err,
                              errlen) != 0)
    {
        return -1;
    }

    return hg_http_check_output_limit(json_object_get(def, "output_limit"),
                                      err, errlen);
}

/* --- the request ----------------------------------------------------- */

static size_t
hg_http_write(char *data, size_t size, size_t nmemb, void *arg)
{
    hg_http_xfer_t *xfer = arg;
    size_t len = size * nmemb;

    /* Past the limit hg_exec_output drops the bytes and marks the record
     * truncated; the transfer goes on to the end either way. */
    (void) hg_exec_output(xfer->exec, data, len);
    xfer->received += (curl_off_t) len;
    return len;
}

static int
hg_http_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
                 curl_off_t ultotal, curl_off_t ulnow)
{
    hg_http_xfer_t *xfer = arg;
    int64_t deadline;

    (void) dltotal;
    (void) dlnow;
    (void) ultotal;
    (void) ulnow;

    if (!hg_exec_cancelled(xfer->exec)) {
        return 0;
    }
    /* Once the deadline has passed, CURLOPT_TIMEOUT_MS ends the transfer
     * with curl's own, better message; only a stop request aborts here. */
    deadline = hg_exec_deadline(xfer->exec);
    if (deadline > 0 && hg_http_now_ms() >= deadline) {
        return 0;
    }
    xfer->stopped = 1;
    return 1;
}

static int
hg_http_add_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *grown;

    grown = curl_slist_append(*list, line);
    if (grown == NULL) {
        return -1;
    }
    *list = grown;
    return 0;
}

/* The request headers of the job as curl lines, plus "Expect:" (no
 * 100-continue round trip, which costs a second with servers that ignore
 * it) and the execution's traceparent (TRACEPARENT, NULL: none), each
 * unless the job sets that header itself. */
static int
hg_http_build_headers(const hg_http_job_t *job, const char *traceparent,
                      struct curl_slist **list)
{
    const json_t *item;
    const char *name;
    char *line;
    size_t i;
    int has_expect = 0, has_trace = 0;
    int rc;

    if (json_is_object(job->headers)) {
        json_object_foreach((json_t *) job->headers, name, item) {
            /* "Name;" is curl's way to send a header with an empty value
             * ("Name:" would remove the header instead). */
            if (json_string_length(item) == 0) {
                rc = asprintf(&line, "%s;", name);
            } else {
                rc = asprintf(&line, "%s: %s", name, json_string_value(item));
            }
            if (rc < 0) {
                return -1;
            }
            rc = hg_http_add_header(list, line);
            free(line);
            if (rc != 0) {
                return -1;
            }
            has_expect |= strcasecmp(name, "Expect") == 0;
            has_trace |= strcasecmp(name, "traceparent") == 0;
        }
    } else if (json_is_array(job->headers)) {
        /* Lines go to curl as written, with curl's meaning: "Accept:"
         * (nothing after the colon) removes a header curl would send. */
        json_array_foreach(job->headers, i, item) {
            if (hg_http_add_header(list, json_string_value(item)) != 0) {
                return -1;
            }
            has_expect |= strncasecmp(json_string_value(item), "Expect:",
                                      7) == 0;
            has_trace |= strncasecmp(json_string_value(item), "traceparent:",
                                     12) == 0;
        }
    }
    if (!has_expect && hg_http_add_header(list, "Expect:") != 0) {
        return -1;
    }
    if (!has_trace && traceparent != NULL) {
        if (asprintf(&line, "traceparent: %s", traceparent) < 0) {
            return -1;
        }
        rc = hg_http_add_header(list, line);
        free(line);
        if (rc != 0) {
            return -1;
        }
    }
    return 0;
}

/*
 * Set every option of the request on a freshly reset handle. 0, or -1 with
 * the option that failed in err. Every pointer handed to curl here must
 * outlive curl_easy_perform and is dropped by the reset that ends the
 * execution.
 */
static int
hg_http_setup(CURL *easy, const hg_http_job_t *job, hg_http_xfer_t *xfer,
              const struct curl_slist *headers, const char *body,
              size_t body_len, long timeout_ms, char *errbuf, char *err,
              size_t errlen)
{
    CURLcode cc = CURLE_OK;
    const char *what = "";
    int send_body;

#define HG_HTTP_SETOPT(option, value)                                     \
    do {                                                                  \
        cc = curl_easy_setopt(easy, option, value);                       \
        if (cc != CURLE_OK) {                                             \
            what = #option;                                               \
            goto failed;                                                  \
        }                                                                 \
    } while (0)

    HG_HTTP_SETOPT(CURLOPT_URL, job->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    HG_HTTP_SETOPT(CURLOPT_PROTOCOLS_STR, HG_HTTP_PROTOCOLS);
    HG_HTTP_SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, HG_HTTP_PROTOCOLS);
#else
    HG_HTTP_SETOPT(CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP
                                              | CURLPROTO_HTTPS));
    HG_HTTP_SETOPT(CURLOPT_REDIR_PROTOCOLS, (long) (CURLPROTO_HTTP
                                                    | CURLPROTO_HTTPS));
#endif
    /* No SIGALRM for timeouts: the worker owns its signals. */
    HG_HTTP_SETOPT(CURLOPT_NOSIGNAL, 1L);
    HG_HTTP_SETOPT(CURLOPT_ERRORBUFFER, errbuf);
    HG_HTTP_SETOPT(CURLOPT_USERAGENT, hg_http.user_agent[0] != '\0'
                                      ? hg_http.user_agent : "hourglass");
    HG_HTTP_SETOPT(CURLOPT_HTTPHEADER, headers);

    HG_HTTP_SETOPT(CURLOPT_WRITEFUNCTION, hg_http_write);
    HG_HTTP_SETOPT(CURLOPT_WRITEDATA, xfer);
    HG_HTTP_SETOPT(CURLOPT_NOPROGRESS, 0L);
    HG_HTTP_SETOPT(CURLOPT_XFERINFOFUNCTION, hg_http_progress);
    HG_HTTP_SETOPT(CURLOPT_XFERINFODATA, xfer);
    if (timeout_ms > 0) {
        HG_HTTP_SETOPT(CURLOPT_TIMEOUT_MS, timeout_ms);
    }

    HG_HTTP_SETOPT(CURLOPT_FOLLOWLOCATION, job->follow_redirects ? 1L : 0L);
    HG_HTTP_SETOPT(CURLOPT_MAXREDIRS, HG_HTTP_MAX_REDIRECTS);
    HG_HTTP_SETOPT(CURLOPT_SSL_VERIFYPEER, job->verify_tls ? 1L : 0L);
    HG_HTTP_SETOPT(CURLOPT_SSL_VERIFYHOST, job->verify_tls ? 2L : 0L);

    /*
     * The method. POST is curl's own (so a followed 301/302/303 turns it
     * into a GET as browsers do); the others are custom requests, which
     * curl keeps across redirects. POST, PUT and PATCH always send a body,
     * empty if need be, so the server sees "Content-Length: 0"; the others
     * send one only when the job (or the payload) gives one.
     */
    if (strcmp(job->method, "HEAD") == 0) {
        HG_HTTP_SETOPT(CURLOPT_NOBODY, 1L);
        send_body = 0;
    } else {
        send_body = body != NULL || strcmp(job->method, "POST") == 0
                    || strcmp(job->method, "PUT") == 0
                    || strcmp(job->method, "PATCH") == 0;
        if (strcmp(job->method, "POST") == 0) {
            HG_HTTP_SETOPT(CURLOPT_POST, 1L);
        } else if (strcmp(job->method, "GET") == 0 && !send_body) {
            HG_HTTP_SETOPT(CURLOPT_HTTPGET, 1L);
        } else {
            HG_HTTP_SETOPT(CURLOPT_CUSTOMREQUEST, job->method);
        }
    }
    if (send_body) {
        HG_HTTP_SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) body_len);
        HG_HTTP_SETOPT(CURLOPT_POSTFIELDS, body != NULL ? body : "");
    }

#undef HG_HTTP_SETOPT
    return 0;

failed:
    snprintf(err, errlen, "curl_easy_setopt(%s): %s", what,
             curl_easy_strerror(cc));
    return -1;
}

/* The URL for a log line: a password in it is replaced by "***". */
static void
hg_http_log_url(const char *url, char *buf, size_t len)
{
    CURLU *u;
    char *password = NULL, *redacted = NULL;

    snprintf(buf, len, "%s", url);
    u = curl_url();
    if (u == NULL) {
        return;
    }
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME)
            == CURLUE_OK
        && curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK
        && curl_url_set(u, CURLUPART_PASSWORD, "***", 0) == CURLUE_OK
        && curl_url_get(u, CURLUPART_URL, &redacted, 0) == CURLUE_OK)
    {
        snprintf(buf, len, "%s", redacted);
    } else if (password != NULL) {
        snprintf(buf, len, "(a URL with a password)");
    }
    curl_free(redacted);
    curl_free(password);
    curl_url_cleanup(u);
}

/* Retry-After as a delay: delay-seconds or an HTTP-date. 0, or -1 when
 * the value is neither. */
static int
hg_http_parse_retry_after(const char *value, int64_t *delay_ms)
{
    const char *p;
    char *end;
    long long secs;
    time_t date;
    int64_t ms;

    while (*value == ' ' || *value == '\t') {
        value++;
    }
    if (*value >= '0' && *value <= '9') {
        for (p = value; *p >= '0' && *p <= '9'; p++) {
            /* digits only, checked below */
        }
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p != '\0') {
            return -1;
        }
        errno = 0;
        secs = strtoll(value, &end, 10);
        if (errno == ERANGE || secs > INT64_MAX / 1000) {
            secs = INT64_MAX / 1000;
        }
        *delay_ms = (int64_t) secs * 1000;
        return 0;
    }
    date = curl_getdate(value, NULL);
    if (date == (time_t) -1) {
        return -1;
    }
    if ((int64_t) date > INT64_MAX / 1000) {
        return -1;
    }
    ms = (int64_t) date * 1000 - hg_http_now_ms();
    *delay_ms = ms > 0 ? ms : 0;
    return 0;
}

/* The Retry-After of the last response: 0 with the delay, or -1 when the
 * response has none (or one that is neither seconds nor a date). */
static int
hg_http_retry_after(CURL *easy, int64_t *delay_ms)
{
    curl_off_t secs;
#if LIBCURL_VERSION_NUM >= 0x075400
    struct curl_header *header;
    CURLHcode hc;

    hc = curl_easy_header(easy, "Retry-After", 0, CURLH_HEADER, -1,
                          &header);
    if (hc == CURLHE_OK) {
        return hg_http_parse_retry_after(header->value, delay_ms);
    }
    if (hc != CURLHE_NOT_BUILT_IN) {
        return -1;
    }
#endif
    /* Without the header API, curl's own parse; it cannot tell a missing
     * header from "Retry-After: 0", so 0 counts as missing. */
    if (curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &secs) != CURLE_OK
        || secs <= 0)
    {
        return -1;
    }
    *delay_ms = secs > INT64_MAX / 1000 ? INT64_MAX : (int64_t) secs * 1000;
    return 0;
}

static int
hg_http_expected(const json_t *expect, long status)
{
    const json_t *item;
    size_t i;

    if (expect == NULL) {
        return status >= 200 && status <= 299;
    }
    if (json_is_integer(expect)) {
        return json_integer_value(expect) == status;
    }
    json_array_foreach(expect, i, item) {
        if (json_integer_value(item) == status) {
            return 1;
        }
    }
    return 0;
}

/* "2xx", "200", "200, 204" for the error message. */
static const char *
hg_http_expect_text(const json_t *expect, char *buf, size_t len)
{
    const json_t *item;
    size_t i, used = 0;
    int n;

    if (expect == NULL) {
        snprintf(buf, len, "2xx");
        return buf;
    }
    if (json_is_integer(expect)) {
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(expect));
        return buf;
    }
    buf[0] = '\0';
    json_array_foreach(expect, i, item) {
        n = snprintf(buf + used, len - used, "%s%" JSON_INTEGER_FORMAT,
                     i > 0 ? ", " : "", json_integer_value(item));
        if (n < 0 || (size_t) n >= len - used) {
            break;
        }
        used += (size_t) n;
    }
    return buf;
}

/* The handle of this process. Every execution resets it when it is done
 * (see hg_http_execute), so it comes here with no options set. */
static CURL *
hg_http_handle(void)
{
    if (hg_http.easy != NULL && hg_http.pid == getpid()) {
        return hg_http.easy;
    }
    /* None yet, or one inherited from the parent: never share it. */
    hg_http.easy = curl_easy_init();
    hg_http.pid = getpid();
    return hg_http.easy;
}

static hg_result_t
hg_http_execute(hg_exec_t *exec)
{
    hg_http_job_t job;
    hg_http_xfer_t xfer;
    struct curl_slist *headers = NULL;
    char err[HG_HTTP_ERRLEN], errbuf[CURL_ERROR_SIZE], url[1024];
    char expected[128], via[48];
    const char *body = NULL;
    size_t body_len = 0;
    int64_t deadline, remaining, started, elapsed, delay_ms;
    long timeout_ms = 0, status = 0;
    long redirects = 0;
    CURLcode cc;
    CURL *easy = NULL;
    hg_result_t result = HG_FAIL;

    memset(&xfer, 0, sizeof(xfer));
    xfer.exec = exec;
    errbuf[0] = '\0';

    if (hg_http_parse_job(hg_exec_job(exec), &job, err, sizeof(err)) != 0) {
        hg_exec_set_error(exec, "%s", err);
        return HG_FATAL;
    }
    hg_http_log_url(job.url, url, sizeof(url));

    if (job.body != NULL) {
        body = json_string_value(job.body);
        body_len = json_string_length(job.body);
    } else if (strcmp(job.method, "HEAD") != 0) {
        body = hg_exec_payload(exec, &body_len);
    }

    started = hg_http_now_ms();
    deadline = hg_exec_deadline(exec);
    if (deadline > 0) {
        remaining = deadline - started;
        if (remaining <= 0) {
            hg_exec_set_error(exec, "the job's timeout was reached before "
                              "the request started");
            goto done;
        }
        timeout_ms = remaining > LONG_MAX ? LONG_MAX : (long) remaining;
    }

    easy = hg_http_handle();
    if (easy == NULL) {
        hg_exec_set_error(exec, "curl_easy_init failed");
        goto done;
    }
    if (hg_http_build_headers(&job, hg_exec_traceparent(exec), &headers)
        != 0)
    {
        hg_exec_set_error(exec, "out of memory for the request headers");
        goto done;
    }
    if (hg_http_setup(easy, &job, &xfer, headers, body, body_len, timeout_ms,
                      errbuf, err, sizeof(err)) != 0)
    {
        hg_exec_set_error(exec, "%s", err);
        goto done;
    }

    cc = curl_easy_perform(easy);
    elapsed = hg_http_now_ms() - started;

    if (curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
    {
        status = 0;
    }
    if (status > 0) {
        char name[32];

        hg_exec_set_exit_code(exec, (int) status);
        /* A counter the master sums: one answer of its class (the code
         * itself summed over executions would mean nothing). */
        snprintf(name, sizeof(name), "responses_%ldxx", status / 100);
        hg_exec_metric(exec, name, 1);
    }

    if (cc != CURLE_OK) {
        if (cc == CURLE_ABORTED_BY_CALLBACK && xfer.stopped) {
            hg_exec_set_error(exec, "stopped after %" PRId64 " ms", elapsed);
        } else if (errbuf[0] != '\0'
                   && strcmp(errbuf, curl_easy_strerror(cc)) != 0)
        {
            hg_exec_set_error(exec, "curl: %s (%s)", curl_easy_strerror(cc),
                              errbuf);
        } else {
            hg_exec_set_error(exec, "curl: %s", curl_easy_strerror(cc));
        }
        hg_exec_log(exec, HG_LOG_WARN, "%s %s -> %s after %" PRId64 " ms",
                    job.method, url, xfer.stopped ? "stopped"
                                     : curl_easy_strerror(cc), elapsed);
        goto done;
    }

    via[0] = '\0';
    if (curl_easy_getinfo(easy, CURLINFO_REDIRECT_COUNT, &redirects)
            == CURLE_OK
        && redirects > 0)
    {
        snprintf(via, sizeof(via), " after %ld redirect%s", redirects,
                 redirects == 1 ? "" : "s");
    }
    hg_exec_log(exec, HG_LOG_INFO, "%s %s -> %ld%s in %" PRId64 " ms, %"
                CURL_FORMAT_CURL_OFF_T " bytes", job.method, url, status,
                via, elapsed, xfer.received);

    if (hg_http_expected(job.expect, status)) {
        result = HG_OK;
        goto done;
    }
    hg_http_expect_text(job.expect, expected, sizeof(expected));
    if ((status == 429 || status == 503)
        && hg_http_retry_after(easy, &delay_ms) == 0)
    {
        hg_exec_retry_after(exec, delay_ms);
        hg_exec_set_error(exec, "status %ld, retry after %" PRId64 " ms "
                          "(expected %s)", status, delay_ms, expected);
        result = HG_RETRY;
        goto done;
    }
    hg_exec_set_error(exec, "unexpected status %ld (expected %s)", status,
                      expected);

done:
    /* Reset now, not at the next execution: the handle must not keep
     * pointers to this one's headers, body, buffers and callbacks' data
     * (curl_easy_cleanup may still report into the error buffer). The
     * connection cache survives a reset. */
    if (easy != NULL) {
        curl_easy_reset(easy);
    }
    curl_slist_free_all(headers);
    return result;
}

/* --- life cycle ------------------------------------------------------ */

static int
hg_http_init(const json_t *conf, const hg_host_t *host, char *err,
             size_t errlen)
{
    const char *key;
    const json_t *value;
    CURLcode cc;

    json_object_foreach((json_t *) conf, key, value) {
        snprintf(err, errlen, "modules.http: unknown setting \"%.64s\" (the "
                 "http module has none)", key);
        return -1;
    }

    /* The worker inherits the master's state: start its own count. */
    if (hg_http.pid != getpid()) {
        hg_http.pid = getpid();
        hg_http.inits = 0;
        hg_http.easy = NULL;
    }
    cc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "curl_global_init: %s", curl_easy_strerror(cc));
        return -1;
    }
    hg_http.inits++;
    snprintf(hg_http.user_agent, sizeof(hg_http.user_agent), "hourglass/%s",
             host != NULL && host->version != NULL ? host->version : "0");
    return 0;
}

static int
hg_http_validate(const json_t *def, char *err, size_t errlen)
{
    hg_http_job_t job;

    return hg_http_parse_job(def, &job, err, errlen);
}

static void
hg_http_fini(void)
{
    if (hg_http.pid != getpid() || hg_http.inits == 0) {
        return;
    }
    if (--hg_http.inits == 0 && hg_http.easy != NULL) {
        curl_easy_cleanup(hg_http.easy);
        hg_http.easy = NULL;
    }
    curl_global_cleanup();
}

HG_EXPORT const hg_module_t hg_module =
    HG_MODULE_V1_KEYS("http", hg_http_keys, hg_http_init, hg_http_validate,
                      hg_http_execute, hg_http_fini);
