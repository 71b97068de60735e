/*
 * hg_client_http.c owns the client's one request to the admin API: libcurl
 * sends it, jansson reads the answer. It is linked into the executable
 * only (never the core library), and only a client command reaches it:
 * the daemon never initialises libcurl. It never prints: what went wrong
 * goes back to the caller in err, naming the URL and where it came from.
 */

#include "hg_core.h"

#include "hg_client.h"
#include "hg_json.h"

#if HG_HAVE_CURL

#include <curl/curl.h>

/* Long enough for a daemon busy with a reload; a client that hangs on a
 * stopped daemon (SIGSTOP) is worse than one that gives up. */
#define HG_CLIENT_TIMEOUT_S          60L
#define HG_CLIENT_CONNECT_TIMEOUT_S  10L
/* An answer larger than this is not one of the API's. */
#define HG_CLIENT_REPLY_MAX          (256u << 20)

/* The answer, gathered in a memory stream. */
typedef struct {
    FILE *f;
    size_t len;
    bool too_large;
} hg_client_buf_t;

static bool hg_client_curl_ready;

static size_t
hg_client_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    hg_client_buf_t *b = userdata;
    size_t n = size * nmemb;

    if (b->len + n > HG_CLIENT_REPLY_MAX) {
        b->too_large = true;
        return 0;
    }
    b->len += n;
    return fwrite(ptr, 1, n, b->f);
}

int
hg_client_request(const hg_client_t *c, const char *method,
                  const char *path, const json_t *body,
                  hg_client_reply_t *reply, char *err, size_t errlen)
{
    struct curl_slist *headers = NULL, *more;
    hg_client_buf_t buf = { NULL, 0, false };
    char curl_err[CURL_ERROR_SIZE] = "", *url = NULL, *auth = NULL;
    char *text = NULL, *data = NULL;
    json_error_t jerr;
    size_t size = 0;
    CURLcode rc;
    CURL *curl = NULL;
    int ret = HG_ERROR;

    memset(reply, 0, sizeof(*reply));
    if (!hg_client_curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            snprintf(err, errlen, "cannot initialise libcurl");
            return HG_ERROR;
        }
        hg_client_curl_ready = true;
    }
    buf.f = open_memstream(&data, &size);
    if (buf.f == NULL) {
        goto nomem;
    }
    if (asprintf(&url, "%s%s", c->url, path) < 0) {
        url = NULL;
        goto nomem;
    }
    curl = curl_easy_init();
    if (curl == NULL) {
        goto nomem;
    }
    if (c->token != NULL) {
        if (asprintf(&auth, "Authorization: Bearer %s", c->token) < 0) {
            auth = NULL;
            goto nomem;
        }
        more = curl_slist_append(headers, auth);
        if (more == NULL) {
            goto nomem;
        }
        headers = more;
    }
    if (body != NULL) {
        text = hg_json_dumps(body, JSON_COMPACT);
        more = text != NULL
               ? curl_slist_append(headers, "Content-Type: application/json")
               : NULL;
        if (more == NULL) {
            goto nomem;
        }
        headers = more;
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text);
    }
    more = curl_slist_append(headers, "Accept: application/json");
    if (more == NULL) {
        goto nomem;
    }
    headers = more;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (body == NULL && strcmp(method, "POST") == 0) {
        /* an empty POST body, said as such (Content-Length: 0) */
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, hg_client_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &buf);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, HG_CLIENT_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT,
                     HG_CLIENT_CONNECT_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "hourglass/" HG_VERSION);
    /* a token goes to the URL it was given for, not where a redirect
     * points: the API never redirects */
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    if (c->cacert != NULL) {
        curl_easy_setopt(curl, CURLOPT_CAINFO, c->cacert);
    }

    rc = curl_easy_perform(curl);
    if (rc == CURLE_COULDNT_CONNECT) {
        long os_errno = 0;

        curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
        snprintf(err, errlen, "cannot connect to %s (the URL %s): %s; is "
                 "the daemon running, with an api section?", c->url,
                 c->url_from, os_errno != 0 ? strerror((int) os_errno)
                                            : curl_easy_strerror(rc));
        goto done;
    }
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "no answer from %s (the URL %s): %s", c->url,
                 c->url_from, buf.too_large ? "the answer is too large"
                 : curl_err[0] != '\0' ? curl_err : curl_easy_strerror(rc));
        goto done;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply->status);
    if (fclose(buf.f) != 0) {
        buf.f = NULL;
        goto nomem;
    }
    buf.f = NULL;
    reply->text = data;             /* NUL-terminated by the stream */
    data = NULL;
    /* jansson does not always say that it ran out of memory (a string
     * it cannot copy is "invalid syntax"); malloc's ENOMEM does */
    errno = 0;
    reply->body = json_loads(reply->text, JSON_DECODE_ANY, &jerr);
    if (reply->body == NULL
        && (json_error_code(&jerr) == json_error_out_of_memory
            || errno == ENOMEM))
    {
        goto nomem;                 /* not "the answer is not JSON" */
    }
    ret = HG_OK;
    goto done;

nomem:
    snprintf(err, errlen, "out of memory");
done:
    if (ret != HG_OK) {
        hg_client_reply_free(reply);
    }
    if (buf.f != NULL) {
        fclose(buf.f);
    }
    free(data);
    free(text);
    free(auth);
    curl_slist_free_all(headers);
    if (curl != NULL) {
        curl_easy_cleanup(curl);
    }
    free(url);
    return ret;
}

void
hg_client_http_done(void)
{
    if (hg_client_curl_ready) {
        curl_global_cleanup();
        hg_client_curl_ready = false;
    }
}

#else /* !HG_HAVE_CURL */

int
hg_client_request(const hg_client_t *c, const char *method,
                  const char *path, const json_t *body,
                  hg_client_reply_t *reply, char *err, size_t errlen)
{
    (void) c;
    (void) method;
    (void) path;
    (void) body;
    memset(reply, 0, sizeof(*reply));
    snprintf(err, errlen, "this hourglass was built without libcurl "
             "(./configure --without-http), which the client commands "
             "need");
    return HG_ERROR;
}

void
hg_client_http_done(void)
{
}

#endif

void
hg_client_reply_free(hg_client_reply_t *reply)
{
    json_decref(reply->body);
    free(reply->text);
    memset(reply, 0, sizeof(*reply));
}
