/*
 * hg_client.c owns the client commands (`hourglass [--url URL] [--token T]
 * [--json] COMMAND ...`): their table (arguments, request, the answer's
 * form for people), where the daemon is (the URL, the token, the CAs of
 * https), and the exit status.
 * It talks to a running daemon through the admin API only: it never opens
 * the store, never signals a process, and never builds or reads JSON but
 * through jansson. Linked into the executable, never into the core
 * library: the daemon reaches none of it.
 *
 * Exit status: 0 done; 1 the API said no (its message and HTTP status
 * printed) or could not be reached (the URL named, with how it was found);
 * 2 usage (a usage line on stderr).
 */

#include "hg_core.h"

#include <ctype.h>
#include <getopt.h>

#include "hg_client.h"
#include "hg_conf.h"
#include "hg_conf_table.h"
#include "hg_tz.h"
#include "hg_json.h"

#define HG_CLIENT_PAGE        500   /* the API's largest page */
#define HG_CLIENT_RUNS        20    /* runs and dead without -n */
#define HG_CLIENT_PAYLOAD_MAX (16u << 20)

/* The options of the commands (a command takes a subset, see the table). */
enum {
    HG_OPT_STATUS = 1 << 0,
    HG_OPT_TAG = 1 << 1,
    HG_OPT_COUNT = 1 << 2,
    HG_OPT_PAYLOAD = 1 << 3,
    HG_OPT_AT = 1 << 4,
    HG_OPT_PRIORITY = 1 << 5,
    HG_OPT_KEY = 1 << 6,
    HG_OPT_CONF = 1 << 7,
};

typedef struct hg_client_cmd_s hg_client_cmd_t;

typedef struct {
    const hg_client_cmd_t *cmd;
    const char *status;
    const char *tag;
    const char *payload;        /* FILE, or "-" */
    const char *at;
    const char *priority;
    const char *key;
    long count;
    bool conf;                  /* export --conf */
    const char *arg;            /* JOB, EXEC or FILE; NULL when none */
    char run_at[512];           /* --at as the API takes it (enqueue) */
} hg_client_args_t;

/* What the options before or after the command word say about where the
 * daemon is and who asks. */
typedef struct {
    const char *url;
    const char *cacert;
    const char *token;
    const char *token_file;
    const char *conf_file;
    const char *prefix;
} hg_client_where_t;

typedef int (*hg_client_cmd_pt)(hg_client_t *c, const hg_client_args_t *a);
/* The answer of a command for people (--json prints it as it is). */
typedef int (*hg_client_human_pt)(const hg_client_t *c,
                                  const hg_client_args_t *a,
                                  const json_t *answer);

struct hg_client_cmd_s {
    const char *name;
    const char *usage;          /* after the command's name */
    int options;                /* HG_OPT_* it takes */
    int min_args;               /* positional arguments: 0 or 1 */
    int max_args;
    hg_client_cmd_pt run;
    /* the request (PATH's %s is the argument) and its answer for people,
     * for the commands that are one request (hg_cmd_request) */
    const char *method;
    const char *path;
    hg_client_human_pt human;
    const char *done;           /* what human says was done */
};

static int hg_cmd_request(hg_client_t *c, const hg_client_args_t *a);
static int hg_cmd_jobs(hg_client_t *c, const hg_client_args_t *a);
static int hg_cmd_runs(hg_client_t *c, const hg_client_args_t *a);
static int hg_cmd_trigger(hg_client_t *c, const hg_client_args_t *a);
static int hg_cmd_enqueue(hg_client_t *c, const hg_client_args_t *a);
static int hg_cmd_dead(hg_client_t *c, const hg_client_args_t *a);
static int hg_cmd_import(hg_client_t *c, const hg_client_args_t *a);
static int hg_print_status(const hg_client_t *c, const hg_client_args_t *a,
                           const json_t *st);
static int hg_print_job(const hg_client_t *c, const hg_client_args_t *a,
                        const json_t *job);
static int hg_print_output(const hg_client_t *c, const hg_client_args_t *a,
                           const json_t *e);
static int hg_print_accepted(const hg_client_t *c, const hg_client_args_t *a,
                             const json_t *answer);
static int hg_print_done(const hg_client_t *c, const hg_client_args_t *a,
                         const json_t *answer);
static int hg_print_export(const hg_client_t *c, const hg_client_args_t *a,
                           const json_t *answer);
static int hg_print_retried(const hg_client_t *c, const hg_client_args_t *a,
                            const json_t *answer);
static int hg_print_killed(const hg_client_t *c, const hg_client_args_t *a,
                           const json_t *answer);

static const hg_client_cmd_t hg_client_cmds[] = {
    { "status", "", 0, 0, 0, hg_cmd_request, "GET", "status",
      hg_print_status, NULL },
    { "jobs", "[--status S] [--tag T]", HG_OPT_STATUS | HG_OPT_TAG, 0, 0,
      hg_cmd_jobs, NULL, NULL, NULL, NULL },
    { "show", "JOB", 0, 1, 1, hg_cmd_request, "GET", "jobs/%s",
      hg_print_job, NULL },
    { "runs", "[JOB] [-n N]", HG_OPT_COUNT, 0, 1, hg_cmd_runs, NULL, NULL,
      NULL, NULL },
    { "output", "EXEC", 0, 1, 1, hg_cmd_request, "GET", "executions/%s",
      hg_print_output, NULL },
    { "trigger", "JOB [--payload FILE|-]", HG_OPT_PAYLOAD, 1, 1,
      hg_cmd_trigger, "POST", "jobs/%s/trigger", hg_print_accepted,
      "triggered" },
    { "enqueue", "JOB [--at TIME] [--priority P] [--key K] "
      "[--payload FILE|-]", HG_OPT_AT | HG_OPT_PRIORITY | HG_OPT_KEY
      | HG_OPT_PAYLOAD, 1, 1, hg_cmd_enqueue, "POST", "queue",
      hg_print_accepted, "queued" },
    { "pause", "JOB", 0, 1, 1, hg_cmd_request, "POST", "jobs/%s/pause",
      hg_print_done, "paused (no fire until resume)" },
    { "resume", "JOB", 0, 1, 1, hg_cmd_request, "POST", "jobs/%s/resume",
      hg_print_done, "resumed" },
    { "stop", "JOB", 0, 1, 1, hg_cmd_request, "POST", "jobs/%s/stop",
      hg_print_killed, NULL },
    { "dead", "[-n N]", HG_OPT_COUNT, 0, 0, hg_cmd_dead, NULL, NULL, NULL,
      NULL },
    { "retry", "EXEC", 0, 1, 1, hg_cmd_request, "POST", "dead/%s/retry",
      hg_print_retried, NULL },
    { "purge", "EXEC", 0, 1, 1, hg_cmd_request, "DELETE", "dead/%s",
      hg_print_done, "purged from the dead-letter list" },
    /* JSON with or without --json: what import takes back */
    { "export", "[--conf]", HG_OPT_CONF, 0, 0, hg_cmd_request, "GET",
      "export", hg_print_export, NULL },
    { "import", "FILE|-", 0, 1, 1, hg_cmd_import, NULL, NULL, NULL, NULL },
};

/* Options before the command word. */
static const struct option hg_client_global_opts[] = {
    { "url", required_argument, NULL, 'u' },
    { "cacert", required_argument, NULL, 'A' },
    { "token", required_argument, NULL, 'k' },
    { "token-file", required_argument, NULL, 'K' },
    { "json", no_argument, NULL, 'j' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 }
};

/* Options after it: the global ones are taken there too, where people and
 * scripts put them ("hourglass jobs --json"). */
static const struct option hg_client_cmd_opts[] = {
    { "url", required_argument, NULL, 'u' },
    { "cacert", required_argument, NULL, 'A' },
    { "token", required_argument, NULL, 'k' },
    { "token-file", required_argument, NULL, 'K' },
    { "json", no_argument, NULL, 'j' },
    { "status", required_argument, NULL, 's' },
    { "tag", required_argument, NULL, 't' },
    { "payload", required_argument, NULL, 'P' },
    { "at", required_argument, NULL, 'a' },
    { "priority", required_argument, NULL, 'r' },
    { "key", required_argument, NULL, 'y' },
    { "conf", no_argument, NULL, 'C' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 }
};

static const hg_client_cmd_t *
hg_client_find(const char *word)
{
    size_t i;

    for (i = 0; i < HG_NELEMS(hg_client_cmds); i++) {
        if (strcmp(hg_client_cmds[i].name, word) == 0) {
            return &hg_client_cmds[i];
        }
    }
    return NULL;
}

/*
 * Whether ARGV is a client command line rather than one of the daemon's:
 * a client option (--url, --cacert, --token, --token-file, --json), or a
 * command word as the first argument that is not an option or the value
 * of one (-c FILE and -p PREFIX may come before it: they say where the
 * configuration naming the URL is; "stop" in "-s stop" is the daemon's).
 */
bool
hg_client_wanted(int argc, char **argv)
{
    int i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0
            || strncmp(argv[i], "--url", 5) == 0
            || strncmp(argv[i], "--cacert", 8) == 0
            || strncmp(argv[i], "--token", 7) == 0)
        {
            return true;
        }
        if (argv[i][0] == '-') {
            /* the daemon's -c FILE, -p PREFIX and -s SIGNAL (also at the
             * end of a cluster, "-ts stop"): their value is no command */
            if (argv[i][1] != '-' && argv[i][1] != '\0'
                && strchr("cps", argv[i][strlen(argv[i]) - 1]) != NULL
                && strcspn(argv[i] + 1, "cps") == strlen(argv[i]) - 2)
            {
                i++;
            }
            continue;
        }
        return hg_client_find(argv[i]) != NULL;
    }
    return false;
}

static void
hg_client_usage(FILE *out)
{
    size_t i;

    fprintf(out, "Usage: hourglass [-c FILE] [-p PREFIX] [--url URL] "
            "[--cacert FILE] [--token T | --token-file F] [--json] "
            "COMMAND ...\n");
    if (out != stdout) {
        return;
    }
    fprintf(out, "\nCommands, over the admin API of a running daemon:\n");
    for (i = 0; i < HG_NELEMS(hg_client_cmds); i++) {
        fprintf(out, "  %s %s\n", hg_client_cmds[i].name,
                hg_client_cmds[i].usage);
    }
    fprintf(out,
        "\nThe URL: --url, else HOURGLASS_URL, else api.listen in the "
        "configuration\n(-c FILE, default PREFIX/conf/scheduler.conf). The "
        "token: --token-file F or\nHOURGLASS_TOKEN_FILE (kept out of the "
        "process list), --token T or HOURGLASS_TOKEN. For https: --cacert "
        "FILE or\nHOURGLASS_CACERT, else api.tls.cert of the configuration "
        "when the URL comes\nfrom it, else the system's CAs.\n"
        "Exit status: 0 done, 1 the daemon said no or cannot be reached, "
        "2 usage.\n");
}

/* "hourglass: " FMT on stderr, a line. */
static void
hg_client_vsay(const char *fmt, va_list ap) HG_PRINTF(1, 0);

static void
hg_client_vsay(const char *fmt, va_list ap)
{
    fprintf(stderr, "hourglass: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
}

static int
hg_client_bad_usage(const hg_client_cmd_t *cmd, const char *fmt, ...)
    HG_PRINTF(2, 3);

static int
hg_client_bad_usage(const hg_client_cmd_t *cmd, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    hg_client_vsay(fmt, ap);
    va_end(ap);
    if (cmd != NULL) {
        fprintf(stderr, "Usage: hourglass [OPTIONS] %s %s\n", cmd->name,
                cmd->usage);
    } else {
        hg_client_usage(stderr);
    }
    return HG_CLIENT_EXIT_USAGE;
}

static int
hg_client_fail(const char *fmt, ...) HG_PRINTF(1, 2);

static int
hg_client_fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    hg_client_vsay(fmt, ap);
    va_end(ap);
    return HG_CLIENT_EXIT_API;
}

/* --- where the daemon is ------------------------------------------------ */

/* api.listen ("127.0.0.1:8080", "[::1]:8080", "0.0.0.0:8080") as the URL
 * of a client on this machine: a wildcard address is reached on loopback. */
static int
hg_client_url_from_listen(const hg_conf_t *conf, char **url)
{
    const char *listen = conf->api.listen, *colon;
    const char *scheme = conf->api.tls ? "https" : "http";
    char host[256];
    size_t hlen;

    colon = strrchr(listen, ':');
    if (colon == NULL) {
        return HG_ERROR;
    }
    hlen = (size_t) (colon - listen);
    if (hlen >= sizeof(host)) {
        return HG_ERROR;
    }
    memcpy(host, listen, hlen);
    host[hlen] = '\0';
    if (hlen == 0 || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
    {
        snprintf(host, sizeof(host), "127.0.0.1");
    } else if (strcmp(host, "[::]") == 0 || strcmp(host, "::") == 0) {
        snprintf(host, sizeof(host), "[::1]");
    }
    if (asprintf(url, "%s://%s:%s", scheme, host, colon + 1) < 0) {
        *url = NULL;
        return HG_ERROR;
    }
    return HG_OK;
}

/*
 * Whether the configuration's errors touch what the client reads of it
 * (api.listen, api.tls). The others are the daemon's business: a token
 * written "${HOURGLASS_TOKEN}", as conf/scheduler.conf suggests, is unset
 * in the shell of a client that keeps its own token in a file.
 */
static bool
hg_client_listen_errors(const hg_conf_errors_t *errors)
{
    size_t i;

    for (i = 0; i < errors->count; i++) {
        if (strstr(errors->items[i].message, "api.listen") != NULL
            || strstr(errors->items[i].message, "api.tls") != NULL)
        {
            return true;
        }
    }
    return false;
}

static int
hg_client_find_url(hg_client_t *c, const char *url, const char *conf_file,
                   const char *prefix)
{
    hg_conf_errors_t errors;
    hg_conf_t *conf = NULL;
    char *abs_prefix = NULL, *file = NULL, cwd[PATH_MAX];
    int rc = HG_CLIENT_EXIT_API;

    if (url == NULL) {
        url = getenv("HOURGLASS_URL");
        c->url_from = strdup("from HOURGLASS_URL");
    } else {
        c->url_from = strdup("from --url");
    }
    if (url != NULL && url[0] != '\0') {
        c->url = strdup(url);
        if (c->url == NULL || c->url_from == NULL) {
            return hg_client_fail("out of memory");
        }
        /* "http://h:p/" and "http://h:p" name the same daemon */
        while (strlen(c->url) > 0 && c->url[strlen(c->url) - 1] == '/') {
            c->url[strlen(c->url) - 1] = '\0';
        }
        return HG_CLIENT_EXIT_OK;
    }
    free(c->url_from);
    c->url_from = NULL;

    /* -p and -c as the daemon takes them */
    if (prefix[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL) {
        if (asprintf(&abs_prefix, "%s/%s", cwd, prefix) < 0) {
            abs_prefix = NULL;
        }
    } else {
        abs_prefix = strdup(prefix);
    }
    if (abs_prefix == NULL) {
        return hg_client_fail("out of memory");
    }
    if (conf_file != NULL) {
        file = strdup(conf_file);
    } else if (asprintf(&file, "%s/conf/scheduler.conf", abs_prefix) < 0) {
        file = NULL;
    }
    if (file == NULL) {
        free(abs_prefix);
        return hg_client_fail("out of memory");
    }
    memset(&errors, 0, sizeof(errors));
    conf = hg_conf_load(file, abs_prefix, &errors);
    if (conf == NULL || hg_client_listen_errors(&errors)) {
        hg_conf_errors_print(&errors, stderr);
        hg_client_fail("no --url and no HOURGLASS_URL, and the daemon's URL "
                       "cannot be read from %s (api.listen)", file);
        goto done;
    }
    if (!conf->api.enabled) {
        hg_client_fail("no --url and no HOURGLASS_URL, and %s has no api "
                       "section: the daemon it configures serves no admin "
                       "API", file);
        goto done;
    }
    if (hg_client_url_from_listen(conf, &c->url) != HG_OK
        || asprintf(&c->url_from, "from api.listen in %s", file) < 0)
    {
        c->url_from = NULL;
        hg_client_fail("out of memory");
        goto done;
    }
    /* the daemon's own certificate, when this user may read it, is what
     * its https is checked against: a self-signed one works as it is */
    if (conf->api.tls && c->cacert == NULL
        && access(conf->api.tls_cert, R_OK) == 0)
    {
        c->cacert = strdup(conf->api.tls_cert);
        if (c->cacert == NULL) {
            hg_client_fail("out of memory");
            goto done;
        }
    }
    rc = HG_CLIENT_EXIT_OK;

done:
    hg_conf_errors_free(&errors);
    hg_conf_free(conf);
    free(file);
    free(abs_prefix);
    return rc;
}

/* The first line of FILE, without its line end. */
static int
hg_client_read_token_file(hg_client_t *c, const char *file, const char *via)
{
    FILE *f = fopen(file, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    if (f == NULL) {
        return hg_client_fail("%s: cannot read the token (%s): %s", file, via,
                              strerror(errno));
    }
    n = getline(&line, &cap, f);
    fclose(f);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'
                     || line[n - 1] == ' ' || line[n - 1] == '\t'))
    {
        line[--n] = '\0';
    }
    if (n <= 0) {
        free(line);
        return hg_client_fail("%s: no token in the file (%s)", file, via);
    }
    c->token = line;
    if (asprintf(&c->token_from, "the token was read from %s (%s)", file,
                 via) < 0)
    {
        c->token_from = NULL;
    }
    return HG_CLIENT_EXIT_OK;
}

/* --token-file, --token, HOURGLASS_TOKEN_FILE, HOURGLASS_TOKEN: the
 * command line first, a file before a value. */
static int
hg_client_find_token(hg_client_t *c, const char *token, const char *file)
{
    const char *env, *via;

    if (file != NULL) {
        return hg_client_read_token_file(c, file, "--token-file");
    }
    via = "--token";
    if (token == NULL) {
        env = getenv("HOURGLASS_TOKEN_FILE");
        if (env != NULL && env[0] != '\0') {
            return hg_client_read_token_file(c, env, "HOURGLASS_TOKEN_FILE");
        }
        token = getenv("HOURGLASS_TOKEN");
        via = "HOURGLASS_TOKEN";
    }
    if (token != NULL && token[0] != '\0') {
        c->token = strdup(token);
        if (asprintf(&c->token_from, "the token was given by %s", via) < 0) {
            c->token_from = NULL;
        }
        if (c->token == NULL) {
            return hg_client_fail("out of memory");
        }
    }
    return HG_CLIENT_EXIT_OK;
}

/* --- requests and answers ---------------------------------------------- */

/* VALUE percent-encoded for a path segment or a query value. */
static char *
hg_client_escape(const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(value) * 3 + 1), *p;
    unsigned char ch;

    if (out == NULL) {
        return NULL;
    }
    for (p = out; *value != '\0'; value++) {
        ch = (unsigned char) *value;
        if (isalnum(ch) || strchr("-._~", ch) != NULL) {
            *p++ = (char) ch;
        } else {
            *p++ = '%';
            *p++ = hex[ch >> 4];
            *p++ = hex[ch & 15];
        }
    }
    *p = '\0';
    return out;
}

/* "/api/v1/" PATH, with %s in PATH (if any) replaced by ARG escaped. */
static char *
hg_client_path(const char *fmt, const char *arg)
{
    char *escaped = NULL, *path = NULL;

    if (arg != NULL && strstr(fmt, "%s") != NULL) {
        escaped = hg_client_escape(arg);
        if (escaped == NULL) {
            return NULL;
        }
    }
    if (asprintf(&path, "/api/v1/%s", fmt) < 0) {
        path = NULL;
    }
    if (path != NULL && escaped != NULL) {
        char *full = NULL;
        char *mark = strstr(path, "%s");

        if (mark == NULL
            || asprintf(&full, "%.*s%s%s", (int) (mark - path), path,
                        escaped, mark + 2) < 0)
        {
            full = NULL;
        }
        free(path);
        path = full;
    }
    free(escaped);
    return path;
}

/* The API's error said on stderr: its message and the HTTP status, or,
 * when it names many bad jobs (an import), each of them; a 401 says
 * where the token came from. */
static int
hg_client_api_error(const hg_client_t *c, const hg_client_reply_t *r)
{
    json_t *error = json_object_get(r->body, "error"), *item;
    json_t *errors = json_object_get(error, "errors");
    const char *message = json_string_value(json_object_get(error,
                                                            "message"));
    size_t i;

    if (c->json && r->body != NULL) {
        json_dumpf(r->body, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    }
    if (json_array_size(errors) > 0) {
        fprintf(stderr, "hourglass: %zu bad job%s, nothing changed "
                "(HTTP %ld):\n", json_array_size(errors),
                json_array_size(errors) == 1 ? "" : "s", r->status);
        json_array_foreach(errors, i, item) {
            message = json_string_value(json_object_get(item, "message"));
            fprintf(stderr, "  %s\n", message != NULL ? message : "invalid");
        }
    } else if (message != NULL) {
        fprintf(stderr, "hourglass: %s (HTTP %ld)\n", message, r->status);
    } else {
        fprintf(stderr, "hourglass: the daemon answered HTTP %ld: %.200s\n",
                r->status, r->text != NULL ? r->text : "");
    }
    if (r->status == 401) {
        fprintf(stderr, "hourglass: %s\n", c->token_from != NULL
                ? c->token_from : "no token was given (--token-file, "
                "--token, HOURGLASS_TOKEN_FILE or HOURGLASS_TOKEN)");
    }
    return HG_CLIENT_EXIT_API;
}

/*
 * One call: HG_CLIENT_EXIT_OK with the answer's JSON in *out (a new
 * reference), or the exit status after the failure was said.
 */
static int
hg_client_call(const hg_client_t *c, const char *method, const char *fmt,
               const char *arg, const json_t *body, json_t **out)
{
    hg_client_reply_t reply;
    char err[1024], *path;
    int rc;

    *out = NULL;
    path = hg_client_path(fmt, arg);
    if (path == NULL) {
        return hg_client_fail("out of memory");
    }
    rc = hg_client_request(c, method, path, body, &reply, err, sizeof(err));
    if (rc != HG_OK) {
        free(path);
        return hg_client_fail("%s", err);
    }
    if (reply.status >= 300) {
        rc = hg_client_api_error(c, &reply);
    } else if (reply.body == NULL) {
        rc = hg_client_fail("the answer of %s%s is not JSON (is %s the "
                            "daemon's admin API?)", c->url, path, c->url);
    } else {
        *out = json_incref(reply.body);
        rc = HG_CLIENT_EXIT_OK;
    }
    free(path);
    hg_client_reply_free(&reply);
    return rc;
}

static int
hg_client_print_json(const json_t *value)
{
    if (json_dumpf(value, stdout, JSON_INDENT(2)) != 0) {
        return hg_client_fail("cannot write the answer: %s",
                              strerror(errno));
    }
    fputc('\n', stdout);
    return HG_CLIENT_EXIT_OK;
}

/* One call, its answer printed: as JSON with --json (or when there is no
 * HUMAN form), else by HUMAN. */
static int
hg_client_answer(hg_client_t *c, const hg_client_args_t *a,
                 const char *method, const char *path, const json_t *body,
                 hg_client_human_pt human)
{
    json_t *answer;
    int rc;

    rc = hg_client_call(c, method, path, a->arg, body, &answer);
    if (rc == HG_CLIENT_EXIT_OK) {
        rc = c->json || human == NULL ? hg_client_print_json(answer)
                                      : human(c, a, answer);
    }
    json_decref(answer);
    return rc;
}

static int
hg_cmd_request(hg_client_t *c, const hg_client_args_t *a)
{
    return hg_client_answer(c, a, a->cmd->method, a->cmd->path, NULL,
                            a->cmd->human);
}

static int64_t
hg_client_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "Mon 2026-12-07 10:05:00 CET" for an API time; "-" for none. */
static const char *
hg_client_when(const json_t *value, char *buf, size_t len)
{
    int64_t t = hg_client_api_time(value);

    return hg_client_local_time(t < 0 ? -1 : t / 1000, buf, len);
}

/* "in 3m", "2h ago"; "-" for none. */
static const char *
hg_client_left(const json_t *value, char *buf, size_t len)
{
    int64_t t = hg_client_api_time(value);

    if (t < 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    return hg_client_relative(t, hg_client_now_ms(), buf, len);
}

static const char *
hg_client_int(const json_t *value, char *buf, size_t len)
{
    if (!json_is_integer(value)) {
        snprintf(buf, len, "-");
    } else {
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(value));
    }
    return buf;
}

/* --- status ------------------------------------------------------------- */

static int
hg_print_status(const hg_client_t *c, const hg_client_args_t *a,
                const json_t *st)
{
    static const char *const statuses[] = {
        "queued", "running", "succeeded", "failed", "timed_out", "crashed",
        "killed", "skipped", "missed", "dead"
    };
    json_t *workers, *ended, *reloads;
    char when[HG_CLIENT_TEXT_MAX], ago[HG_CLIENT_TEXT_MAX];
    int64_t started;
    size_t i, shown = 0;

    (void) a;
    workers = json_object_get(st, "workers");
    ended = json_object_get(st, "executions_ended");
    reloads = json_object_get(st, "reloads");
    started = json_integer_value(json_object_get(st, "started_at_ms"));
    printf("hourglass %s at %s, pid %" JSON_INTEGER_FORMAT "\n",
           json_string_value(json_object_get(st, "version")), c->url,
           json_integer_value(json_object_get(st, "pid")));
    printf("Started:       %s (up %s)\n",
           hg_client_local_time(started / 1000, when, sizeof(when)),
           hg_client_duration(hg_client_now_ms() - started, ago,
                              sizeof(ago)));
    printf("Configuration: %s\n",
           json_string_value(json_object_get(st, "configuration")));
    printf("Workers:       %" JSON_INTEGER_FORMAT " configured: %"
           JSON_INTEGER_FORMAT " idle, %" JSON_INTEGER_FORMAT " busy, %"
           JSON_INTEGER_FORMAT " starting\n",
           json_integer_value(json_object_get(st, "workers_configured")),
           json_integer_value(json_object_get(workers, "idle")),
           json_integer_value(json_object_get(workers, "busy")),
           json_integer_value(json_object_get(workers, "starting")));
    printf("Jobs:          %" JSON_INTEGER_FORMAT "\n",
           json_integer_value(json_object_get(st, "jobs")));
    printf("Queue:         %" JSON_INTEGER_FORMAT " waiting\n",
           json_integer_value(json_object_get(st, "queue_depth")));
    printf("Executions:    ");
    for (i = 0; i < HG_NELEMS(statuses); i++) {
        json_int_t n = json_integer_value(json_object_get(ended,
                                                          statuses[i]));
        if (n > 0) {
            printf("%s%" JSON_INTEGER_FORMAT " %s", shown++ > 0 ? ", " : "",
                   n, statuses[i]);
        }
    }
    printf("%s\n", shown == 0 ? "none since the start" : "");
    printf("Reloads:       %" JSON_INTEGER_FORMAT " ok, %" JSON_INTEGER_FORMAT
           " failed\n", json_integer_value(json_object_get(reloads, "ok")),
           json_integer_value(json_object_get(reloads, "failed")));
    return HG_CLIENT_EXIT_OK;
}

/* --- jobs --------------------------------------------------------------- */

/* Every page of a list (the API gives at most 500 a page) as one array of
 * its KEY rows. */
static int
hg_client_all_pages(const hg_client_t *c, const char *what,
                    const char *query, const char *key, json_t **rows)
{
    json_t *page = NULL;
    char *path = NULL;
    size_t n, total;
    int rc = HG_CLIENT_EXIT_OK, p;

    *rows = json_array();
    if (*rows == NULL) {
        return hg_client_fail("out of memory");
    }
    for (p = 1; rc == HG_CLIENT_EXIT_OK; p++) {
        if (asprintf(&path, "%s?page_size=%d&page=%d%s", what,
                     HG_CLIENT_PAGE, p, query) < 0)
        {
            path = NULL;
            rc = hg_client_fail("out of memory");
            break;
        }
        rc = hg_client_call(c, "GET", path, NULL, NULL, &page);
        free(path);
        if (rc != HG_CLIENT_EXIT_OK) {
            break;
        }
        n = json_array_size(json_object_get(page, key));
        json_array_extend(*rows, json_object_get(page, key));
        total = (size_t) json_integer_value(json_object_get(page, "total"));
        json_decref(page);
        if (n == 0 || json_array_size(*rows) >= total) {
            break;
        }
    }
    if (rc != HG_CLIENT_EXIT_OK) {
        json_decref(*rows);
        *rows = NULL;
    }
    return rc;
}

/* "?a=x&b=y" of the options given, escaped (empty when none). */
static char *
hg_client_query(const char *k1, const char *v1, const char *k2,
                const char *v2)
{
    char *e1 = v1 != NULL ? hg_client_escape(v1) : NULL;
    char *e2 = v2 != NULL ? hg_client_escape(v2) : NULL;
    char *q = NULL;

    if ((v1 == NULL || e1 != NULL) && (v2 == NULL || e2 != NULL)
        && asprintf(&q, "%s%s%s%s%s%s%s%s", e1 != NULL ? "&" : "",
                    e1 != NULL ? k1 : "", e1 != NULL ? "=" : "",
                    e1 != NULL ? e1 : "", e2 != NULL ? "&" : "",
                    e2 != NULL ? k2 : "", e2 != NULL ? "=" : "",
                    e2 != NULL ? e2 : "") < 0)
    {
        q = NULL;
    }
    free(e1);
    free(e2);
    return q;
}

static const char *
hg_client_job_state(const json_t *job)
{
    if (!json_is_true(json_object_get(job, "enabled"))) {
        return "disabled";
    }
    if (json_is_true(json_object_get(job, "paused"))) {
        return "paused";
    }
    return "active";
}

static int
hg_cmd_jobs(hg_client_t *c, const hg_client_args_t *a)
{
    static const char *const header[] = {
        "ID", "TYPE", "STATE", "NEXT", "LEFT", "LAST", "RUNNING", "QUEUED",
        "FROM", "TAGS"
    };
    const char *last;
    hg_client_table_t table;
    json_t *jobs = NULL, *job, *tag, *answer;
    char next[HG_CLIENT_TEXT_MAX], left[HG_CLIENT_TEXT_MAX];
    char running[24], pending[24], tags[512], *query;
    size_t i, j, off;
    int rc;

    query = hg_client_query("status", a->status, "tag", a->tag);
    if (query == NULL) {
        return hg_client_fail("out of memory");
    }
    rc = hg_client_all_pages(c, "jobs", query, "jobs", &jobs);
    free(query);
    if (rc != HG_CLIENT_EXIT_OK) {
        return rc;
    }
    if (c->json) {
        answer = json_pack("{s:o, s:I}", "jobs", jobs,
                           "total", (json_int_t) json_array_size(jobs));
        rc = answer != NULL ? hg_client_print_json(answer)
                            : hg_client_fail("out of memory");
        json_decref(answer);
        return rc;
    }
    if (json_array_size(jobs) == 0) {
        printf("No jobs%s.\n", a->status != NULL || a->tag != NULL
               ? " match" : "");
        json_decref(jobs);
        return HG_CLIENT_EXIT_OK;
    }
    hg_client_table_init(&table, HG_NELEMS(header), header);
    json_array_foreach(jobs, i, job) {
        const char *row[HG_NELEMS(header)];

        off = 0;
        tags[0] = '\0';
        json_array_foreach(json_object_get(job, "tags"), j, tag) {
            off += (size_t) snprintf(tags + off, sizeof(tags) - off, "%s%s",
                                     j > 0 ? "," : "",
                                     json_string_value(tag));
            if (off >= sizeof(tags)) {
                break;
            }
        }
        row[0] = json_string_value(json_object_get(job, "id"));
        row[1] = json_string_value(json_object_get(job, "type"));
        row[2] = hg_client_job_state(job);
        row[3] = hg_client_when(json_object_get(job, "next_fire"), next,
                                sizeof(next));
        row[4] = hg_client_left(json_object_get(job, "next_fire"), left,
                                sizeof(left));
        /* the status of its last run, which the list carries */
        last = json_string_value(json_object_get(job, "last_status"));
        row[5] = last != NULL ? last : "-";
        row[6] = hg_client_int(json_object_get(job, "running"), running,
                               sizeof(running));
        row[7] = hg_client_int(json_object_get(job, "pending"), pending,
                               sizeof(pending));
        row[8] = json_is_true(json_object_get(job, "api")) ? "api" : "conf";
        row[9] = tags;
        hg_client_table_add(&table, row);
    }
    rc = hg_client_table_print(&table, stdout) == HG_OK
         ? HG_CLIENT_EXIT_OK : hg_client_fail("out of memory");
    hg_client_table_free(&table);
    json_decref(jobs);
    return rc;
}

/* --- show --------------------------------------------------------------- */

static void
hg_client_print_definition(const json_t *def)
{
    const char *key;
    json_t *value;
    char *text;
    int width = 0;

    json_object_foreach((json_t *) def, key, value) {
        width = (int) strlen(key) > width ? (int) strlen(key) : width;
    }
    json_object_foreach((json_t *) def, key, value) {
        /* a string as it is, unless it spans lines: then as JSON writes
         * it, on one line of the table */
        if (json_is_string(value)
            && strchr(json_string_value(value), '\n') == NULL)
        {
            printf("  %-*s  %s\n", width, key, json_string_value(value));
            continue;
        }
        text = hg_json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        printf("  %-*s  %s\n", width, key, text != NULL ? text : "?");
        free(text);
    }
}

static int
hg_print_job(const hg_client_t *c, const hg_client_args_t *a,
             const json_t *job)
{
    json_t *fire, *stats;
    char when[HG_CLIENT_TEXT_MAX], left[HG_CLIENT_TEXT_MAX];
    char mean[HG_CLIENT_TEXT_MAX], p95[HG_CLIENT_TEXT_MAX];
    size_t i;

    (void) c;
    (void) a;
    printf("Job %s (%s, defined %s)\n",
           json_string_value(json_object_get(job, "id")),
           json_string_value(json_object_get(job, "type")),
           json_is_true(json_object_get(job, "api"))
           ? "through the API" : "in the configuration");
    printf("State:       %s, %" JSON_INTEGER_FORMAT " running, %"
           JSON_INTEGER_FORMAT " queued\n", hg_client_job_state(job),
           json_integer_value(json_object_get(job, "running")),
           json_integer_value(json_object_get(job, "pending")));
    printf("Definition:\n");
    hg_client_print_definition(json_object_get(job, "definition"));
    printf("Next fire times:\n");
    json_array_foreach(json_object_get(job, "next_fires"), i, fire) {
        printf("  %s  %s\n", hg_client_when(fire, when, sizeof(when)),
               hg_client_left(fire, left, sizeof(left)));
    }
    if (json_array_size(json_object_get(job, "next_fires")) == 0) {
        printf("  none (runs when triggered or enqueued)\n");
    }
    stats = json_object_get(job, "stats");
    printf("Statistics:\n");
    printf("  Runs:      %" JSON_INTEGER_FORMAT " (%" JSON_INTEGER_FORMAT
           " succeeded, %" JSON_INTEGER_FORMAT " failed)\n",
           json_integer_value(json_object_get(stats, "runs")),
           json_integer_value(json_object_get(stats, "successes")),
           json_integer_value(json_object_get(stats, "failures")));
    if (json_integer_value(json_object_get(stats, "runs")) > 0) {
        printf("  Duration:  mean %s, p95 %s\n",
               hg_client_duration((int64_t) json_number_value(
                   json_object_get(stats, "mean_duration_ms")), mean,
                   sizeof(mean)),
               hg_client_duration((int64_t) json_number_value(
                   json_object_get(stats, "p95_duration_ms")), p95,
                   sizeof(p95)));
        printf("  Last run:  %s (%s), %s\n",
               hg_client_when(json_object_get(stats, "last_run"), when,
                              sizeof(when)),
               hg_client_left(json_object_get(stats, "last_run"), left,
                              sizeof(left)),
               json_string_value(json_object_get(stats, "last_status")) != NULL
               ? json_string_value(json_object_get(stats, "last_status"))
               : "-");
    }
    return HG_CLIENT_EXIT_OK;
}

/* --- runs and dead ------------------------------------------------------ */

/* When an execution started, or, not started yet, when it was due. */
static int64_t
hg_client_exec_time(const json_t *e)
{
    int64_t t = hg_client_api_time(json_object_get(e, "started_at"));

    return t >= 0 ? t : hg_client_api_time(json_object_get(e,
                                                           "scheduled_for"));
}

static int
hg_client_newest_first(const void *a, const void *b)
{
    int64_t ta = hg_client_exec_time(*(json_t *const *) a);
    int64_t tb = hg_client_exec_time(*(json_t *const *) b);

    return ta < tb ? 1 : ta > tb ? -1 : 0;
}

static int
hg_client_print_executions(const json_t *list)
{
    static const char *const header[] = {
        "EXECUTION", "JOB", "STATUS", "STARTED", "AGO", "DURATION", "EXIT",
        "ATTEMPT", "BY"
    };
    hg_client_table_t table;
    json_t *e;
    char when[HG_CLIENT_TEXT_MAX], ago[HG_CLIENT_TEXT_MAX];
    char dur[HG_CLIENT_TEXT_MAX], code[32], attempt[24];
    int64_t t;
    size_t i;
    int rc;

    if (json_array_size(list) == 0) {
        printf("No executions.\n");
        return HG_CLIENT_EXIT_OK;
    }
    hg_client_table_init(&table, HG_NELEMS(header), header);
    json_array_foreach(list, i, e) {
        const char *row[HG_NELEMS(header)];

        t = hg_client_exec_time(e);
        if (json_is_integer(json_object_get(e, "signal"))) {
            snprintf(code, sizeof(code), "signal %" JSON_INTEGER_FORMAT,
                     json_integer_value(json_object_get(e, "signal")));
        } else {
            hg_client_int(json_object_get(e, "exit_code"), code,
                          sizeof(code));
        }
        row[0] = json_string_value(json_object_get(e, "id"));
        row[1] = json_string_value(json_object_get(e, "job_id"));
        row[2] = json_string_value(json_object_get(e, "status"));
        row[3] = hg_client_local_time(t < 0 ? -1 : t / 1000, when,
                                      sizeof(when));
        if (t < 0) {
            snprintf(ago, sizeof(ago), "-");
        } else {
            hg_client_relative(t, hg_client_now_ms(), ago, sizeof(ago));
        }
        row[4] = ago;
        row[5] = json_is_integer(json_object_get(e, "duration_ms"))
                 ? hg_client_duration(json_integer_value(json_object_get(
                       e, "duration_ms")), dur, sizeof(dur)) : "-";
        row[6] = code;
        row[7] = hg_client_int(json_object_get(e, "attempt"), attempt,
                               sizeof(attempt));
        row[8] = json_string_value(json_object_get(e, "triggered_by"));
        hg_client_table_add(&table, row);
    }
    rc = hg_client_table_print(&table, stdout) == HG_OK
         ? HG_CLIENT_EXIT_OK : hg_client_fail("out of memory");
    hg_client_table_free(&table);
    return rc;
}

static int
hg_print_execution_page(const hg_client_t *c, const hg_client_args_t *a,
                        const json_t *page)
{
    (void) c;
    (void) a;
    return hg_client_print_executions(json_object_get(page, "executions"));
}

/* The N newest executions of one job, or of every job (the API lists them
 * per job: the N newest of each, merged). */
static int
hg_cmd_runs(hg_client_t *c, const hg_client_args_t *a)
{
    json_t *jobs = NULL, *all = NULL, *page, *job, *answer = NULL;
    json_t **sorted = NULL;
    long n = a->count > 0 ? a->count : HG_CLIENT_RUNS;
    char path[64];
    size_t i;
    int rc;

    if (n > HG_CLIENT_PAGE) {
        n = HG_CLIENT_PAGE;
    }
    snprintf(path, sizeof(path), "jobs/%%s/executions?page_size=%ld", n);
    if (a->arg != NULL) {
        return hg_client_answer(c, a, "GET", path, NULL,
                                hg_print_execution_page);
    }
    rc = hg_client_all_pages(c, "jobs", "", "jobs", &jobs);
    all = json_array();
    if (rc == HG_CLIENT_EXIT_OK && all == NULL) {
        rc = hg_client_fail("out of memory");
    }
    json_array_foreach(jobs, i, job) {
        if (rc != HG_CLIENT_EXIT_OK) {
            break;
        }
        rc = hg_client_call(c, "GET", path, json_string_value(
                                json_object_get(job, "id")), NULL, &page);
        if (rc == HG_CLIENT_EXIT_OK) {
            json_array_extend(all, json_object_get(page, "executions"));
            json_decref(page);
        }
    }
    if (rc != HG_CLIENT_EXIT_OK) {
        goto done;
    }
    sorted = calloc(json_array_size(all) + 1, sizeof(json_t *));
    answer = json_array();
    if (sorted == NULL || answer == NULL) {
        rc = hg_client_fail("out of memory");
        goto done;
    }
    for (i = 0; i < json_array_size(all); i++) {
        sorted[i] = json_array_get(all, i);
    }
    qsort(sorted, json_array_size(all), sizeof(json_t *),
          hg_client_newest_first);
    for (i = 0; i < json_array_size(all) && i < (size_t) n; i++) {
        json_array_append(answer, sorted[i]);
    }
    if (c->json) {
        json_t *doc = json_pack("{s:O}", "executions", answer);
        rc = doc != NULL ? hg_client_print_json(doc)
                         : hg_client_fail("out of memory");
        json_decref(doc);
    } else {
        rc = hg_client_print_executions(answer);
    }

done:
    free(sorted);
    json_decref(answer);
    json_decref(all);
    json_decref(jobs);
    return rc;
}

static int
hg_cmd_dead(hg_client_t *c, const hg_client_args_t *a)
{
    char path[64];

    snprintf(path, sizeof(path), "dead?page_size=%ld",
             a->count > 0 ? a->count : HG_CLIENT_RUNS);
    return hg_client_answer(c, a, "GET", path, NULL,
                            hg_print_execution_page);
}

/* --- output ------------------------------------------------------------- */

static int
hg_print_output(const hg_client_t *c, const hg_client_args_t *a,
                const json_t *e)
{
    json_t *output;

    (void) c;
    (void) a;
    /* the output alone on stdout, as `kubectl logs` gives it, so that it
     * can be piped; what is missing from it is said on stderr */
    output = json_object_get(e, "output");
    if (json_is_string(output)) {
        fwrite(json_string_value(output), 1, json_string_length(output),
               stdout);
    }
    if (json_is_true(json_object_get(e, "output_truncated"))) {
        fprintf(stderr, "hourglass: the output was truncated: %"
                JSON_INTEGER_FORMAT " bytes in all, the job's output "
                "limit kept the end\n",
                json_integer_value(json_object_get(e, "output_bytes")));
    }
    return HG_CLIENT_EXIT_OK;
}

/* --- trigger and enqueue ------------------------------------------------ */

/* FILE, or standard input for "-", whole, in *data (NUL-terminated);
 * WHAT names it in messages. */
static int
hg_client_read_all(const char *file, const char *what, char **data,
                   size_t *len)
{
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
    char *grown;
    size_t cap = 0, n;
    int rc = HG_CLIENT_EXIT_OK;

    *data = NULL;
    *len = 0;
    if (f == NULL) {
        return hg_client_fail("%s: cannot read the %s: %s", file, what,
                              strerror(errno));
    }
    for (;;) {
        if (*len + 1 >= cap) {
            cap = cap == 0 ? 4096 : cap * 2;
            if (cap > HG_CLIENT_PAYLOAD_MAX) {
                rc = hg_client_fail("%s: the %s is too large", file, what);
                break;
            }
            grown = realloc(*data, cap);
            if (grown == NULL) {
                rc = hg_client_fail("%s: out of memory", file);
                break;
            }
            *data = grown;
        }
        n = fread(*data + *len, 1, cap - *len - 1, f);
        *len += n;
        (*data)[*len] = '\0';
        if (n == 0) {
            if (ferror(f)) {
                rc = hg_client_fail("%s: cannot read the %s: %s", file, what,
                                    strerror(errno));
            }
            break;
        }
    }
    if (f != stdin) {
        fclose(f);
    }
    if (rc != HG_CLIENT_EXIT_OK) {
        free(*data);
        *data = NULL;
    }
    return rc;
}

/* FILE, or standard input for "-", whole, as a JSON string. */
static int
hg_client_read_payload(const char *file, json_t **out)
{
    char *data;
    size_t len;
    int rc;

    *out = NULL;
    rc = hg_client_read_all(file, "payload", &data, &len);
    if (rc == HG_CLIENT_EXIT_OK) {
        errno = 0;                  /* jansson's NULL: bad text, or ENOMEM */
        *out = json_stringn(data, len);
        if (*out == NULL) {
            rc = hg_client_fail("%s: %s", file, errno == ENOMEM
                                ? "out of memory"
                                : "the payload is not UTF-8 text");
        }
    }
    free(data);
    return rc;
}

/* trigger and enqueue: "JOB: triggered, execution ID", with its due time
 * when it was given. */
static int
hg_print_accepted(const hg_client_t *c, const hg_client_args_t *a,
                  const json_t *answer)
{
    char when[HG_CLIENT_TEXT_MAX], left[HG_CLIENT_TEXT_MAX];
    json_t *at;
    int64_t t;

    (void) c;
    printf("%s: %s, execution %s", json_string_value(json_object_get(
               answer, "job")), a->cmd->done,
           json_string_value(json_object_get(answer, "execution")));
    if (a->run_at[0] != '\0') {
        at = json_string(a->run_at);
        t = hg_client_api_time(at);
        json_decref(at);
        if (t >= 0) {
            printf(", due %s (%s)", hg_client_local_time(t / 1000, when,
                                                         sizeof(when)),
                   hg_client_relative(t, hg_client_now_ms(), left,
                                      sizeof(left)));
        }
    }
    printf("\n");
    return HG_CLIENT_EXIT_OK;
}

/* --at TIME: RFC 3339, a local time ("2026-12-24 18:00"), "@EPOCH", or
 * "+DURATION" from now; as RFC 3339 in UTC for the API. */
static int
hg_client_parse_at(const char *text, char *out, size_t len)
{
    const hg_tz_t *local;
    char err[256];
    int64_t t, ms;

    if (text[0] == '+') {
        if (hg_parse_duration(text + 1, &ms) != HG_OK) {
            snprintf(out, len, "--at %.100s: a duration after \"+\" is expected "
                     "(\"+5m\", \"+1h30m\")", text);
            return HG_ERROR;
        }
        t = (hg_client_now_ms() + ms + 999) / 1000;
    } else {
        local = hg_tz_get(NULL, err, sizeof(err));
        if (local == NULL
            || hg_tz_parse_time(local, text, &t, err, sizeof(err)) != HG_OK)
        {
            snprintf(out, len, "--at %.100s: %.200s; or a local time "
                     "\"2026-12-24 18:00\", or \"+5m\"", text, err);
            return HG_ERROR;
        }
    }
    return hg_tz_format_rfc3339(hg_tz_utc(), t, out, len);
}

static int
hg_cmd_enqueue(hg_client_t *c, const hg_client_args_t *a)
{
    json_t *payload = NULL, *body;
    int rc = HG_CLIENT_EXIT_OK;

    body = json_pack("{s:s}", "job", a->arg);
    if (body == NULL) {
        return hg_client_fail("out of memory");
    }
    if (a->payload != NULL) {
        rc = hg_client_read_payload(a->payload, &payload);
        if (rc == HG_CLIENT_EXIT_OK) {
            json_object_set(body, "payload", payload);
        }
    }
    if (a->at != NULL) {
        json_object_set_new(body, "run_at", json_string(a->run_at));
    }
    if (a->priority != NULL) {
        json_object_set_new(body, "priority", json_string(a->priority));
    }
    if (a->key != NULL) {
        json_object_set_new(body, "unique_key", json_string(a->key));
    }
    if (rc == HG_CLIENT_EXIT_OK) {
        rc = hg_client_answer(c, a, "POST", "queue", body,
                              hg_print_accepted);
    }
    json_decref(payload);
    json_decref(body);
    return rc;
}

static int
hg_cmd_trigger(hg_client_t *c, const hg_client_args_t *a)
{
    /* POST /jobs/{id}/trigger takes no payload: a run now with one is an
     * enqueue without a time, which the queue starts at once */
    return a->payload != NULL ? hg_cmd_enqueue(c, a) : hg_cmd_request(c, a);
}

/* pause, resume, purge: the table's words */
static int
hg_print_done(const hg_client_t *c, const hg_client_args_t *a,
              const json_t *answer)
{
    (void) c;
    (void) answer;
    printf("%s: %s\n", a->arg, a->cmd->done);
    return HG_CLIENT_EXIT_OK;
}

static int
hg_print_retried(const hg_client_t *c, const hg_client_args_t *a,
                 const json_t *answer)
{
    json_t *retried;
    size_t i;

    (void) c;
    json_array_foreach(json_object_get(answer, "retried"), i, retried) {
        printf("%s: off the dead-letter list, queued again as execution "
               "%s\n", a->arg, json_string_value(json_object_get(
                   retried, "execution")));
    }
    return HG_CLIENT_EXIT_OK;
}

static int
hg_print_killed(const hg_client_t *c, const hg_client_args_t *a,
                const json_t *answer)
{
    json_int_t killed = json_integer_value(json_object_get(answer,
                                                           "killed"));

    (void) c;
    printf("%s: %" JSON_INTEGER_FORMAT " running execution%s killed\n",
           a->arg, killed, killed == 1 ? "" : "s");
    return HG_CLIENT_EXIT_OK;
}

/* --- export and import -------------------------------------------------- */

/* export: the API's JSON, or with --conf the same jobs as scheduler.conf
 * text, written by the writer of -T (hg_conf_dump_json: "$" doubled, so
 * nothing is expanded again). */
static int
hg_print_export(const hg_client_t *c, const hg_client_args_t *a,
                const json_t *answer)
{
    const json_t *jobs = json_object_get(answer, "jobs");

    if (!a->conf) {
        return hg_client_print_json(answer);
    }
    printf("# %zu job%s defined through the admin API of %s: moved into\n"
           "# scheduler.conf, delete them from the API (DELETE /jobs/ID)\n"
           "# before the reload, or the two definitions of an id clash.\n",
           json_array_size(jobs), json_array_size(jobs) == 1 ? "" : "s",
           c->url);
    printf("jobs = ");
    hg_conf_dump_json(jobs, stdout, 0);
    printf(";\n");
    return HG_CLIENT_EXIT_OK;
}

static void
hg_client_print_names(const char *what, const json_t *names)
{
    json_t *name;
    size_t i;

    if (json_array_size(names) == 0) {
        return;
    }
    printf("  %s:", what);
    json_array_foreach(names, i, name) {
        printf(" %s", json_string_value(name));
    }
    printf("\n");
}

/* YAML when the name says so (.yaml, .yml), JSON when it says so (.json);
 * else (standard input too) JSON when it starts as JSON does. */
static bool
hg_client_is_yaml(const char *name, const char *data)
{
    const char *dot = strrchr(name, '.');

    if (dot != NULL && (strcmp(dot, ".yaml") == 0
                        || strcmp(dot, ".yml") == 0))
    {
        return true;
    }
    if (dot != NULL && strcmp(dot, ".json") == 0) {
        return false;
    }
    data += strspn(data, " \t\r\n");
    return *data != '{' && *data != '[';
}

/* The jobs of FILE, from JSON ({"jobs": [...]} as export writes it, or the
 * list alone) or YAML, as the body of POST /import. */
static int
hg_client_read_jobs(const char *file, json_t **body)
{
    const char *name = strcmp(file, "-") == 0 ? "<stdin>" : file;
    json_error_t error;
    json_t *doc = NULL;
    char *data, err[256];
    size_t len;
    int rc;

    *body = NULL;
    rc = hg_client_read_all(file, "jobs", &data, &len);
    if (rc != HG_CLIENT_EXIT_OK) {
        return rc;
    }
    if (hg_client_is_yaml(file, data)) {
        doc = hg_client_yaml_jobs(data, len, err, sizeof(err));
        if (doc == NULL) {
            rc = hg_client_fail("%s:%s", name, err);
        }
    } else {
        doc = json_loadb(data, len, 0, &error);
        if (doc == NULL) {
            rc = hg_client_fail("%s:%d:%d: %s", name, error.line,
                                error.column, error.text);
        }
    }
    free(data);
    if (json_is_array(doc)) {
        *body = json_pack("{s:O}", "jobs", doc);
    } else if (json_is_array(json_object_get(doc, "jobs"))) {
        *body = json_incref(doc);
    } else if (doc != NULL) {
        rc = hg_client_fail("%s: expected {\"jobs\": [...]} (as export "
                            "writes it) or a list of jobs", name);
    }
    if (rc == HG_CLIENT_EXIT_OK && *body == NULL) {
        rc = hg_client_fail("out of memory");
    }
    json_decref(doc);
    return rc;
}

static int
hg_print_imported(const hg_client_t *c, const hg_client_args_t *a,
                  const json_t *answer)
{
    json_int_t n = json_integer_value(json_object_get(answer, "imported"));

    (void) c;
    (void) a;
    printf("Imported %" JSON_INTEGER_FORMAT " job%s\n", n,
           n == 1 ? "" : "s");
    hg_client_print_names("created", json_object_get(answer, "created"));
    hg_client_print_names("replaced", json_object_get(answer, "replaced"));
    return HG_CLIENT_EXIT_OK;
}

static int
hg_cmd_import(hg_client_t *c, const hg_client_args_t *a)
{
    json_t *body;
    int rc;

    rc = hg_client_read_jobs(a->arg, &body);
    if (rc == HG_CLIENT_EXIT_OK) {
        rc = hg_client_answer(c, a, "POST", "import", body,
                              hg_print_imported);
    }
    json_decref(body);
    return rc;
}

/* --- the command line --------------------------------------------------- */

static int
hg_client_parse_cmd(hg_client_t *c, hg_client_where_t *w,
                    const hg_client_cmd_t *cmd, int argc, char **argv,
                    hg_client_args_t *a)
{
    char *end;
    int opt, given, li = -1, idx;

    memset(a, 0, sizeof(*a));
    a->cmd = cmd;
    optind = 0;                 /* getopt starts over, on the sub-argv */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":c:p:n:h", hg_client_cmd_opts,
                              &li)) != -1)
    {
        /* getopt_long sets li for a long option only */
        idx = li;
        li = -1;
        switch (opt) {
        case 'j': c->json = true; continue;
        case 'u': w->url = optarg; continue;
        case 'A': w->cacert = optarg; continue;
        case 'k': w->token = optarg; continue;
        case 'K': w->token_file = optarg; continue;
        case 'c': w->conf_file = optarg; continue;
        case 'p': w->prefix = optarg; continue;
        case 'h':
            hg_client_usage(stdout);
            printf("\n%s: hourglass [OPTIONS] %s %s\n", cmd->name,
                   cmd->name, cmd->usage);
            return -1;
        case 's': a->status = optarg; given = HG_OPT_STATUS; break;
        case 't': a->tag = optarg; given = HG_OPT_TAG; break;
        case 'P': a->payload = optarg; given = HG_OPT_PAYLOAD; break;
        case 'a': a->at = optarg; given = HG_OPT_AT; break;
        case 'r': a->priority = optarg; given = HG_OPT_PRIORITY; break;
        case 'y': a->key = optarg; given = HG_OPT_KEY; break;
        case 'C': a->conf = true; given = HG_OPT_CONF; break;
        case 'n':
            errno = 0;
            a->count = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || a->count < 1
                || a->count > HG_CLIENT_PAGE)
            {
                return hg_client_bad_usage(cmd, "-n %s: a count from 1 to "
                                           "%d is expected", optarg,
                                           HG_CLIENT_PAGE);
            }
            given = HG_OPT_COUNT;
            break;
        case ':':
            return hg_client_bad_usage(cmd, "%s needs a value",
                                       argv[optind - 1]);
        default:
            return hg_client_bad_usage(cmd, "%s: unknown option for %s",
                                       argv[optind - 1], cmd->name);
        }
        if ((cmd->options & given) == 0) {
            /* the option by its name: argv[optind - 1] may be its value */
            return hg_client_bad_usage(cmd, "%s%s: not an option of %s",
                                       idx >= 0 ? "--" : "-n",
                                       idx >= 0 ? hg_client_cmd_opts[idx].name
                                                : "", cmd->name);
        }
    }
    /* getopt_long has moved the arguments after the options: JOB may
     * come before them or after ("runs backup -n 5") */
    if (optind < argc) {
        a->arg = argv[optind++];
    }
    if (optind < argc) {
        return hg_client_bad_usage(cmd, "unexpected argument \"%s\"",
                                   argv[optind]);
    }
    if (a->at != NULL
        && hg_client_parse_at(a->at, a->run_at, sizeof(a->run_at)) != HG_OK)
    {
        return hg_client_bad_usage(cmd, "%s", a->run_at);
    }
    if (cmd->min_args > 0 && a->arg == NULL) {
        return hg_client_bad_usage(cmd, "%s needs %s", cmd->name,
                                   cmd->usage);
    }
    if (cmd->max_args == 0 && a->arg != NULL) {
        return hg_client_bad_usage(cmd, "unexpected argument \"%s\"",
                                   a->arg);
    }
    return HG_CLIENT_EXIT_OK;
}

int
hg_client_main(int argc, char **argv)
{
    hg_client_where_t w = { NULL, NULL, NULL, NULL, NULL, HG_PREFIX };
    const hg_client_cmd_t *cmd;
    hg_client_args_t args;
    hg_client_t c;
    int opt, rc;

    memset(&c, 0, sizeof(c));
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:c:p:h", hg_client_global_opts,
                              NULL)) != -1)
    {
        switch (opt) {
        case 'c': w.conf_file = optarg; break;
        case 'p': w.prefix = optarg; break;
        case 'u': w.url = optarg; break;
        case 'A': w.cacert = optarg; break;
        case 'k': w.token = optarg; break;
        case 'K': w.token_file = optarg; break;
        case 'j': c.json = true; break;
        case 'h': hg_client_usage(stdout); return HG_CLIENT_EXIT_OK;
        case ':':
            return hg_client_bad_usage(NULL, "%s needs a value",
                                       argv[optind - 1]);
        default:
            return hg_client_bad_usage(NULL, "%s: unknown option",
                                       argv[optind - 1]);
        }
    }
    if (optind >= argc) {
        return hg_client_bad_usage(NULL, "a command is expected");
    }
    cmd = hg_client_find(argv[optind]);
    if (cmd == NULL) {
        return hg_client_bad_usage(NULL, "unknown command \"%s\"",
                                   argv[optind]);
    }
    rc = hg_client_parse_cmd(&c, &w, cmd, argc - optind, argv + optind,
                             &args);
    if (rc != HG_CLIENT_EXIT_OK) {
        return rc < 0 ? HG_CLIENT_EXIT_OK : rc;
    }
    if (w.cacert == NULL) {
        w.cacert = getenv("HOURGLASS_CACERT");
    }
    if (w.cacert != NULL && w.cacert[0] != '\0') {
        c.cacert = strdup(w.cacert);
        if (c.cacert == NULL) {
            return hg_client_fail("out of memory");
        }
    }
    rc = hg_client_find_url(&c, w.url, w.conf_file, w.prefix);
    if (rc == HG_CLIENT_EXIT_OK) {
        rc = hg_client_find_token(&c, w.token, w.token_file);
    }
    if (rc == HG_CLIENT_EXIT_OK) {
        rc = cmd->run(&c, &args);
    }
    if (fflush(stdout) != 0 && rc == HG_CLIENT_EXIT_OK) {
        rc = hg_client_fail("cannot write: %s", strerror(errno));
    }
    hg_client_http_done();
    free(c.url);
    free(c.url_from);
    free(c.token);
    free(c.token_from);
    free(c.cacert);
    return rc;
}
