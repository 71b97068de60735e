/*
 * hg_api_static.c: the dashboard's files, GET / and GET /ui/NAME (and
 * HEAD), served from PREFIX/html (found under the prefix, as the modules
 * are). The files are read once, when the API starts: a request never
 * touches the file system from the master's loop, and a new dashboard
 * (make install) comes with a restart, as a new binary does.
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

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "hg_api_http.h"
#include "hg_log.h"

/* What is read at the start: a file larger, or files beyond the count,
 * are left out with a warning (the dashboard is a few small files). */
#define HG_API_STATIC_FILE_MAX   (1024 * 1024)
#define HG_API_STATIC_FILES_MAX  64
/* hg_api_static_read(): not a file to serve, and not an error */
#define HG_API_STATIC_SKIP       1

/* One file, as read at the start. */
struct hg_api_file_s {
    char *name;
    const char *type;
    void *data;
    size_t len;
};

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

/* DIR/NAME's contents into FILE when it is a regular file that is not a
 * link and not too large; HG_API_STATIC_SKIP when it is not one to serve. */
static int
hg_api_static_read(int dir, const char *name, hg_api_file_t *file)
{
    struct stat st;
    ssize_t n;
    size_t off = 0;
    int fd, rc = HG_ERROR;

    /* a link, even one that stays inside html/, is refused: nothing to
     * check about where it leads */
    fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        return HG_API_STATIC_SKIP;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = HG_API_STATIC_SKIP;
        goto done;
    }
    if (st.st_size > HG_API_STATIC_FILE_MAX) {
        hg_log(HG_LOG_WARN, "api: html/%s is larger than %d bytes: not "
               "served", name, HG_API_STATIC_FILE_MAX);
        rc = HG_API_STATIC_SKIP;
        goto done;
    }
    file->len = (size_t) st.st_size;
    file->data = malloc(file->len > 0 ? file->len : 1);
    file->name = strdup(name);
    if (file->data == NULL || file->name == NULL) {
        goto done;
    }
    while (off < file->len) {
        n = read(fd, (char *) file->data + off, file->len - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            hg_log(HG_LOG_WARN, "api: cannot read html/%s: %s", name,
                   n < 0 ? strerror(errno) : "it shrank");
            rc = HG_API_STATIC_SKIP;
            goto done;
        }
        off += (size_t) n;
    }
    rc = HG_OK;

done:
    close(fd);
    if (rc != HG_OK) {
        free(file->data);
        free(file->name);
        memset(file, 0, sizeof(*file));
    }
    return rc;
}

int
hg_api_static_load(hg_api_t *api, const char *prefix)
{
    char path[PATH_MAX];
    struct dirent *de;
    hg_api_file_t file;
    DIR *dir;
    int n, rc = HG_OK;

    if (prefix == NULL) {
        return HG_OK;
    }
    n = snprintf(path, sizeof(path), "%s/html", prefix);
    if (n < 0 || (size_t) n >= sizeof(path)) {
        return HG_OK;
    }
    dir = opendir(path);
    if (dir == NULL) {
        /* no dashboard installed: GET / is a 404 like any missing file */
        return HG_OK;
    }
    api->files = calloc(HG_API_STATIC_FILES_MAX, sizeof(*api->files));
    if (api->files == NULL) {
        closedir(dir);
        return HG_ERROR;
    }
    while ((de = readdir(dir)) != NULL) {
        memset(&file, 0, sizeof(file));
        file.type = hg_api_static_type(de->d_name);
        if (de->d_name[0] == '.' || file.type == NULL) {
            continue;
        }
        if (api->nfiles == HG_API_STATIC_FILES_MAX) {
            hg_log(HG_LOG_WARN, "api: more than %d files in %s: html/%s "
                   "and the rest not served", HG_API_STATIC_FILES_MAX, path,
                   de->d_name);
            break;
        }
        rc = hg_api_static_read(dirfd(dir), de->d_name, &file);
        if (rc == HG_ERROR) {
            break;
        }
        if (rc == HG_OK) {
            api->files[api->nfiles++] = file;
        }
        rc = HG_OK;
    }
    closedir(dir);
    return rc;
}

void
hg_api_static_free(hg_api_t *api)
{
    size_t i;

    for (i = 0; i < api->nfiles; i++) {
        free(api->files[i].name);
        free(api->files[i].data);
    }
    free(api->files);
    api->files = NULL;
    api->nfiles = 0;
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
    const char *name = req->id[0] != '\0' ? req->id : "index.html";
    const hg_api_file_t *file = NULL;
    struct MHD_Response *resp;
    enum MHD_Result rc;
    size_t i;

    for (i = 0; i < api->nfiles; i++) {
        if (strcmp(api->files[i].name, name) == 0) {
            file = &api->files[i];
            break;
        }
    }
    if (file == NULL) {
        return hg_api_static_missing(req);
    }
    /* the bytes stay with the API until it is freed, after libmicrohttpd
     * has stopped */
    resp = MHD_create_response_from_buffer(file->len, file->data,
                                           MHD_RESPMEM_PERSISTENT);
    if (resp == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, file->type);
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
