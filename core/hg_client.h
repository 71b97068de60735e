/*
 * The command-line client (`hourglass [--url URL] [--token T] [--json]
 * COMMAND ...`): private surface shared by its three files.
 *
 *   hg_client.c        arguments, where the daemon is, one function per
 *                      command (linked into the executable only)
 *   hg_client_http.c   one request to the admin API through libcurl
 *                      (linked into the executable only)
 *   hg_client_print.c  text for people: times, durations, tables (pure,
 *                      in the core library so that unit tests reach it)
 *
 * Nothing here runs in the daemon: the master and its workers never call
 * a client function, so libcurl is never initialised there.
 */

#ifndef HG_CLIENT_H
#define HG_CLIENT_H

#include "hg_core.h"

/* Exit statuses of a client command (DESIGN.md, "Command line"). */
#define HG_CLIENT_EXIT_OK     0
#define HG_CLIENT_EXIT_API    1     /* the daemon said no, or is not there */
#define HG_CLIENT_EXIT_USAGE  2

/* Where the client talks to, and as whom. */
typedef struct hg_client_s {
    char *url;                  /* base, no trailing "/": http://h:p */
    char *url_from;             /* how it was found, for messages */
    char *cacert;               /* CAs to trust for https; NULL: the system's */
    char *token;                /* NULL: no Authorization header */
    char *token_from;           /* how it was found, for a 401 */
    bool json;                  /* --json: the API's JSON as is */
} hg_client_t;

/* An answer of the API: status 0 when there was none (then err says why,
 * naming the URL and where it came from). */
typedef struct hg_client_reply_s {
    long status;
    json_t *body;               /* NULL when the body was not JSON */
    char *text;                 /* the raw body, NUL-terminated */
} hg_client_reply_t;

/* hg_client.c */
bool hg_client_wanted(int argc, char **argv);
int hg_client_main(int argc, char **argv);

/* hg_client_http.c: METHOD PATH (from "/api/v1/..." or "/healthz") with
 * BODY (or NULL). HG_OK when an HTTP answer came back, whatever its
 * status; HG_ERROR with err when none did. */
int hg_client_request(const hg_client_t *c, const char *method,
                      const char *path, const json_t *body,
                      hg_client_reply_t *reply, char *err, size_t errlen);
void hg_client_reply_free(hg_client_reply_t *reply);
void hg_client_http_done(void);

/* hg_client_yaml.c: the jobs of a YAML stream (a list of jobs, {jobs:
 * [...]}, {kind: List, items: [...]}, one job per document, a
 * Kubernetes-style object's spec named by metadata.name) as a JSON array;
 * NULL with "LINE:COLUMN: problem" in err. */
json_t *hg_client_yaml_jobs(const char *data, size_t len, char *err,
                            size_t errlen);

/* hg_client_print.c */
#define HG_CLIENT_TEXT_MAX  64

/* "in 3m 12s", "2h 5m ago", "now": THEN relative to NOW (ms). */
char *hg_client_relative(int64_t then_ms, int64_t now_ms, char *buf,
                         size_t len);
/* 950 -> "950ms", 1500 -> "1.5s", 192000 -> "3m 12s", 7500000 -> "2h 5m",
 * 273600000 -> "3d 4h". */
char *hg_client_duration(int64_t ms, char *buf, size_t len);
/* "Mon 2026-12-07 10:05:00 CET" in the local zone; "-" for t < 0. */
char *hg_client_local_time(int64_t t_s, char *buf, size_t len);
/* An API time ("2026-12-07T00:05:00.000Z") as epoch ms; -1 for null or
 * what does not parse. */
int64_t hg_client_api_time(const json_t *value);

/* A table printed with its columns aligned, as `kubectl get` does. */
typedef struct hg_client_table_s {
    size_t ncols;
    size_t nrows;               /* including the header */
    size_t cap;
    char **cells;               /* nrows * ncols, owned */
    bool failed;                /* out of memory along the way */
} hg_client_table_t;

int hg_client_table_init(hg_client_table_t *t, size_t ncols,
                         const char *const *header);
/* Appends one row of ncols cells (NULL prints "-"). */
int hg_client_table_add(hg_client_table_t *t, const char *const *cells);
int hg_client_table_print(const hg_client_table_t *t, FILE *out);
void hg_client_table_free(hg_client_table_t *t);

#endif /* HG_CLIENT_H */
