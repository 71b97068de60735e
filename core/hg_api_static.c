/*
 * hg_api_static.c: the dashboard's files, GET / and GET /ui/NAME, served
 * from PREFIX/html (found under the prefix, as the modules are).
 *
 * A file is served only when its name is one segment the route table
 * accepted (no "/", no "." or ".."; libmicrohttpd has decoded "%2e"
 * already), does not begin with a dot, has an extension the table below
 * knows, and is a regular file that is not a symbolic link: nothing
 * outside html/ and no directory listing. No token is needed for the
 * files (the page asks for one and sends it to /api/v1); the allow list
 * has been checked before.
 *
 * It never serves what it cannot type, and never follows a link.
 */

#include "hg_core.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "hg_api_http.h"

/* The types served, by extension; any other file is not found. */
static const struct {
    const char *ext;
    const char *type;
} hg_api_static_types[] = {
    { ".html", "text/html; charset=utf-8" },
    { ".js",   "text/javascript; charset=utf-8" },
    { ".css",  "text/css; charset=utf-8" },
    { ".svg",  "image/svg+xml" },
    { ".png",  "image/png" },
    { ".ico",  "image/x-icon" },
    { ".txt",  "text/plain; charset=utf-8" },
};

static const char *
hg_api_static_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    size_t i;

    if (dot == NULL || dot == name) {
        return NULL;
    }
    for (i = 0; i < HG_NELEMS(hg_api_static_types); i++) {
        if (strcmp(dot, hg_api_static_types[i].ext) == 0) {
            return hg_api_static_types[i].type;
        }
    }
    return NULL;
}

static enum MHD_Result
hg_api_static_missing(hg_api_req_t *req)
{
    hg_api_error(req, MHD_HTTP_NOT_FOUND, "not_found", "no such file");
    return hg_api_send_json(req);
}

enum MHD_Result
hg_api_static(hg_api_t *api, hg_api_req_t *req)
{
    const hg_conf_t *conf = hg_master_conf(api->master);
    const char *name = req->id[0] != '\0' ? req->id : "index.html";
    const char *type = hg_api_static_type(name);
    struct MHD_Response *resp;
    enum MHD_Result rc;
    struct stat st;
    char path[PATH_MAX];
    int fd, n;

    if (type == NULL || name[0] == '.' || conf->prefix == NULL) {
        return hg_api_static_missing(req);
    }
    n = snprintf(path, sizeof(path), "%s/html/%s", conf->prefix, name);
    if (n < 0 || (size_t) n >= sizeof(path)) {
        return hg_api_static_missing(req);
    }
    /* a link, even one that stays inside html/, is refused: nothing to
     * check about where it leads */
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        return hg_api_static_missing(req);
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return hg_api_static_missing(req);
    }
    resp = MHD_create_response_from_fd((uint64_t) st.st_size, fd);
    if (resp == NULL) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    /* the page may load nothing but its own files and talk to nothing
     * but this daemon: what "nothing fetched from the internet" means */
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'self'; frame-ancestors 'none'; "
                            "base-uri 'none'; form-action 'none'");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    rc = MHD_queue_response(req->conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return rc;
}
