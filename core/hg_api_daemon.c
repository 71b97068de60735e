/*
 * hg_api_daemon.c: the routes about the instance itself: /healthz,
 * status, stats, reload, and the API's own description.
 *
 * It never reloads by itself: POST /reload asks the master, which
 * reloads as SIGHUP does.
 */

#include "hg_core.h"

#include "hg_api_http.h"
#include "hg_openapi.h"

void
hg_api_healthz(hg_api_t *api, hg_api_req_t *req)
{
    bool well = false;
    json_t *answer = hg_master_health(api->master, &well);

    hg_api_answer(req, well ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                  answer);
}

void
hg_api_status(hg_api_t *api, hg_api_req_t *req)
{
    json_t *status = hg_master_status(api->master);

    /* the caller's own role, so that the dashboard shows only the
     * actions it may take rather than learning from a 403 */
    if (status != NULL) {
        json_object_set_new(status, "token", json_pack(
            "{s:s, s:s}", "name", req->token_name,
            "role", hg_api_role_names[req->role]));
    }
    hg_api_answer(req, MHD_HTTP_OK, status);
}

void
hg_api_stats(hg_api_t *api, hg_api_req_t *req)
{
    hg_api_answer(req, MHD_HTTP_OK, hg_master_stats(api->master));
}


void
hg_api_reload(hg_api_t *api, hg_api_req_t *req)
{
    int rc = hg_master_reload(api->master);

    if (rc == HG_ERROR) {
        hg_api_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                     "the reload could not start (the daemon's log says "
                     "why)");
        return;
    }
    hg_api_answer(req, MHD_HTTP_ACCEPTED, json_pack("{s:s}", "reload",
                                                    "started"));
}

void
hg_api_openapi(hg_api_t *api, hg_api_req_t *req)
{
    HG_UNUSED(api);
    hg_api_answer(req, MHD_HTTP_OK, json_loads(hg_openapi_text, 0, NULL));
}
