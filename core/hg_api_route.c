/*
 * hg_api_route.c: the admin API's route table, the one place that says
 * which routes exist, each one's minimum role and kind of answer, and
 * the check that api/openapi.json describes exactly these routes.
 *
 * It never answers a request; it finds who does.
 */

#include "hg_core.h"

#include <ctype.h>

#include "hg_api_http.h"
#include "hg_openapi.h"

/* Each route with its minimum role (api/openapi.json says the same as
 * x-hourglass-role) and its kind of answer. */
static const hg_api_route_t hg_api_routes[] = {
    { "GET",    "/",                          HG_ROLE_NONE,    HG_API_STATIC,  NULL },
    { "GET",    "/ui/{}",                     HG_ROLE_NONE,    HG_API_STATIC,  NULL },
    { "GET",    "/healthz",                   HG_ROLE_NONE,    HG_API_JSON,    hg_api_healthz },
    { "GET",    "/metrics",                   HG_ROLE_READ,    HG_API_METRICS, NULL },
    { "GET",    "/api/v1/openapi.json",       HG_ROLE_NONE,    HG_API_JSON,    hg_api_openapi },
    { "GET",    "/api/v1/status",             HG_ROLE_READ,    HG_API_JSON,    hg_api_status },
    { "GET",    "/api/v1/stats",              HG_ROLE_READ,    HG_API_JSON,    hg_api_stats },
    { "GET",    "/api/v1/events",             HG_ROLE_READ,    HG_API_EVENTS,  NULL },
    { "GET",    "/api/v1/jobs",               HG_ROLE_READ,    HG_API_JSON,    hg_api_jobs_list },
    { "POST",   "/api/v1/jobs",               HG_ROLE_WRITE,   HG_API_JSON,    hg_api_job_post },
    { "GET",    "/api/v1/jobs/{}",            HG_ROLE_READ,    HG_API_JSON,    hg_api_job_get },
    { "PUT",    "/api/v1/jobs/{}",            HG_ROLE_WRITE,   HG_API_JSON,    hg_api_job_put },
    { "PATCH",  "/api/v1/jobs/{}",            HG_ROLE_WRITE,   HG_API_JSON,    hg_api_job_patch },
    { "DELETE", "/api/v1/jobs/{}",            HG_ROLE_WRITE,   HG_API_JSON,    hg_api_job_delete },
    { "POST",   "/api/v1/jobs/{}/trigger",    HG_ROLE_EXECUTE, HG_API_JSON,    hg_api_job_trigger },
    { "POST",   "/api/v1/jobs/{}/pause",      HG_ROLE_EXECUTE, HG_API_JSON,    hg_api_job_pause },
    { "POST",   "/api/v1/jobs/{}/resume",     HG_ROLE_EXECUTE, HG_API_JSON,    hg_api_job_resume },
    { "POST",   "/api/v1/jobs/{}/stop",       HG_ROLE_EXECUTE, HG_API_JSON,    hg_api_job_stop },
    { "GET",    "/api/v1/jobs/{}/executions", HG_ROLE_READ,    HG_API_JSON,    hg_api_job_executions },
    { "GET",    "/api/v1/executions/{}",      HG_ROLE_READ,    HG_API_JSON,    hg_api_execution_get },
    { "GET",    "/api/v1/dead",               HG_ROLE_READ,    HG_API_JSON,    hg_api_dead_list },
    { "POST",   "/api/v1/dead/retry",         HG_ROLE_EXECUTE, HG_API_JSON,    hg_api_dead_retry },
    { "POST",   "/api/v1/dead/purge",         HG_ROLE_WRITE,   HG_API_JSON,    hg_api_dead_purge },
    { "POST",   "/api/v1/dead/{}/retry",      HG_ROLE_EXECUTE, HG_API_JSON,    hg_api_dead_retry_one },
    { "DELETE", "/api/v1/dead/{}",            HG_ROLE_WRITE,   HG_API_JSON,    hg_api_dead_purge_one },
    { "POST",   "/api/v1/reload",             HG_ROLE_ADMIN,   HG_API_JSON,    hg_api_reload },
    { "POST",   "/api/v1/queue",              HG_ROLE_EXECUTE, HG_API_JSON,    hg_api_enqueue },
    { "GET",    "/api/v1/queue",              HG_ROLE_READ,    HG_API_JSON,    hg_api_queue_list },
    { "DELETE", "/api/v1/queue/{}",           HG_ROLE_EXECUTE, HG_API_JSON,    hg_api_dequeue },
    { "GET",    "/api/v1/export",             HG_ROLE_READ,    HG_API_JSON,    hg_api_export },
    { "POST",   "/api/v1/import",             HG_ROLE_WRITE,   HG_API_JSON,    hg_api_import },
};

/* Whether URL matches PATTERN; the {} segment into ID. An id segment is
 * 1-128 bytes of [A-Za-z0-9._-]: anything else (a "..", a "%2F" decoded
 * to "/", a NUL) matches no route. */
static bool
hg_api_match(const char *pattern, const char *url, char *id, size_t idlen)
{
    const char *brace = strstr(pattern, "{}");
    size_t head, n, i;

    if (brace == NULL) {
        return strcmp(pattern, url) == 0;
    }
    head = (size_t) (brace - pattern);
    if (strncmp(pattern, url, head) != 0) {
        return false;
    }
    url += head;
    n = strcspn(url, "/");
    if (n == 0 || n >= idlen || strcmp(url + n, brace + 2) != 0) {
        return false;
    }
    for (i = 0; i < n; i++) {
        if (!isalnum((unsigned char) url[i]) && url[i] != '.'
            && url[i] != '_' && url[i] != '-')
        {
            return false;
        }
    }
    if (n <= 2 && url[0] == '.' && (n == 1 || url[1] == '.')) {
        return false;
    }
    memcpy(id, url, n);
    id[n] = '\0';
    return true;
}

/* The route for METHOD URL; *PATH_KNOWN whether another method has it.
 * HEAD is GET for the dashboard's files (libmicrohttpd leaves the body
 * out), which browsers and link checkers ask before fetching. */
const hg_api_route_t *
hg_api_route(const char *method, const char *url, char *id, size_t idlen,
             bool *path_known)
{
    const hg_api_route_t *r;
    bool head = strcmp(method, "HEAD") == 0;
    size_t i;

    *path_known = false;
    for (i = 0; i < HG_NELEMS(hg_api_routes); i++) {
        r = &hg_api_routes[i];
        if (hg_api_match(r->path, url, id, idlen)) {
            if (strcmp(r->method, method) == 0
                || (head && r->kind == HG_API_STATIC))
            {
                return r;
            }
            *path_known = true;
        }
    }
    return NULL;
}

/* --- the description ------------------------------------------------------ */

/* PATTERN ("/jobs/{}") as OpenAPI writes it ("/jobs/{id}"). */
static void
hg_api_openapi_path(const char *pattern, char *out, size_t len)
{
    const char *brace = strstr(pattern, "{}");

    if (brace == NULL) {
        snprintf(out, len, "%s", pattern);
    } else {
        snprintf(out, len, "%.*s{id}%s", (int) (brace - pattern), pattern,
                 brace + 2);
    }
}

int
hg_api_check_description(char *err, size_t errlen)
{
    return hg_api_check_description_of(hg_openapi_text, err, errlen);
}

int
hg_api_check_description_of(const char *text, char *err, size_t errlen)
{
    const hg_api_route_t *r;
    const json_t *op, *role;
    const char *path, *method;
    json_t *doc, *paths, *ops;
    char want[256], lower[16];
    size_t i, described = 0, j;
    int rc = HG_ERROR;

    doc = json_loads(text, 0, NULL);
    paths = json_object_get(doc, "paths");
    if (!json_is_object(paths)) {
        snprintf(err, errlen, "the OpenAPI description has no paths");
        goto done;
    }
    for (i = 0; i < HG_NELEMS(hg_api_routes); i++) {
        r = &hg_api_routes[i];
        hg_api_openapi_path(r->path, want, sizeof(want));
        for (j = 0; r->method[j] != '\0' && j < sizeof(lower) - 1; j++) {
            lower[j] = (char) tolower((unsigned char) r->method[j]);
        }
        lower[j] = '\0';
        op = json_object_get(json_object_get(paths, want), lower);
        role = json_object_get(op, "x-hourglass-role");
        if (op == NULL) {
            snprintf(err, errlen, "%s %s is served but not described",
                     r->method, want);
            goto done;
        }
        if (!json_is_string(role)
            || strcmp(json_string_value(role), hg_api_role_names[r->role])
               != 0)
        {
            snprintf(err, errlen, "%s %s: described with role %s, served "
                     "with %s", r->method, want,
                     json_is_string(role) ? json_string_value(role) : "none",
                     hg_api_role_names[r->role]);
            goto done;
        }
    }
    json_object_foreach(paths, path, ops) {
        described += json_object_size(ops);
    }
    if (described != HG_NELEMS(hg_api_routes)) {
        json_object_foreach(paths, path, ops) {
            json_object_foreach(ops, method, op) {
                bool known = false;
                for (i = 0; i < HG_NELEMS(hg_api_routes) && !known; i++) {
                    hg_api_openapi_path(hg_api_routes[i].path, want,
                                        sizeof(want));
                    known = strcmp(want, path) == 0
                            && strcasecmp(hg_api_routes[i].method, method)
                               == 0;
                }
                if (!known) {
                    snprintf(err, errlen, "%s %s is described but not "
                             "served", method, path);
                    goto done;
                }
            }
        }
    }
    rc = HG_OK;

done:
    json_decref(doc);
    return rc;
}
