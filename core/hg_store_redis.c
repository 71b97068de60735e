/*
 * hg_store_redis.c: coordination of a cluster through Redis, for the
 * SQLite driver's writer thread (store.driver "redis"; hg_store_redis.h).
 *
 * It owns the connection to Redis and the keys hourglass keeps there,
 * all under "hourglass:":
 *   claim:JOB:FIRE_MS     "INSTANCE/TERM/EXEC_ID", SET NX with an expiry
 *                         of store.claim_ttl: the fire time is that
 *                         execution's; a peer's SET fails and it forgets
 *                         the fire.
 *   term:INSTANCE         the instance's term, INCR at each start (a
 *                         second process started under the same name
 *                         fences the first).
 *   instance:INSTANCE     its term, with an expiry of cluster.lease,
 *                         renewed every third of it: the heartbeat.
 *   instances             the set of names that ever joined.
 *   leader                "INSTANCE/TERM" of the leader, SET NX with an
 *                         expiry of cluster.lease, renewed by its holder.
 *   last_run, last_success
 *                         hashes job id -> ms of the job's last start and
 *                         last success on any instance (kept the
 *                         highest), for the leader's dead-man alerts: each
 *                         instance's own history holds only its share.
 *
 * What it cannot promise (README, "Redis coordination"): the claim and
 * the record are not one transaction, and Redis keeps claims only as
 * long as its own persistence does, so a fire time can run twice around
 * a Redis restart that lost the claim, and a key that expired can be
 * claimed again. It never touches SQLite and never runs on the loop: the
 * writer thread alone calls in, after hg_redis_open.
 */

#include "hg_core.h"

#include <hiredis.h>

#include "hg_log.h"
#include "hg_store_redis.h"

#define HG_REDIS_PREFIX       "hourglass:"
#define HG_REDIS_CONNECT_MS   2000
#define HG_REDIS_COMMAND_MS   5000
#define HG_REDIS_RETRY_MS     1000

/* The leader's key is renewed by its holder only (compare and expire). */
static const char hg_redis_renew_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then"
    " return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

/* Each hash's field keeps the highest value written. */
static const char hg_redis_last_script[] =
    "local function up(k, v) if tonumber(v) > 0 and tonumber(v) >"
    " tonumber(redis.call('HGET', k, ARGV[1]) or '0') then"
    " redis.call('HSET', k, ARGV[1], v) end end"
    " up(KEYS[1], ARGV[2]) up(KEYS[2], ARGV[3]) return 1";

struct hg_redis_s {
    char *url;                      /* as written, for messages */
    char *host;                     /* or NULL with socket */
    char *socket;
    int port;
    char *password;
    int db;
    char *instance;
    int64_t term;
    int64_t lease_ms;
    int64_t claim_ttl_ms;
    char *self;                     /* "INSTANCE/TERM" */
    redisContext *c;
    bool failing;                   /* the tick said it cannot reach Redis */
    bool leader;
};

/* --- the connection ------------------------------------------------------ */

/* redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N]. */
static int
hg_redis_parse_url(hg_redis_t *r, const char *url, char *err, size_t errlen)
{
    const char *p, *at, *slash, *colon;
    char *end;
    long v;

    if (strncmp(url, "unix://", 7) == 0) {
        const char *q = strchr(url + 7, '?');
        size_t n = q != NULL ? (size_t) (q - url - 7) : strlen(url + 7);

        if (n == 0 || url[7] != '/') {
            snprintf(err, errlen, "store.url: \"%s\": a Unix socket needs "
                     "an absolute path (unix:///run/redis/redis.sock)", url);
            return HG_ERROR;
        }
        r->socket = strndup(url + 7, n);
        if (q != NULL && strncmp(q, "?db=", 4) == 0) {
            v = strtol(q + 4, &end, 10);
            if (*end != '\0' || v < 0 || v > 65535) {
                goto bad_db;
            }
            r->db = (int) v;
        }
        return r->socket != NULL ? HG_OK : HG_ERROR;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "store.url: \"%s\" is not a Redis URL "
                 "(redis://host:port/db or unix:///path)", url);
        return HG_ERROR;
    }
    p = url + 8;
    slash = strchr(p, '/');
    at = memchr(p, '@', slash != NULL ? (size_t) (slash - p) : strlen(p));
    if (at != NULL) {
        colon = memchr(p, ':', (size_t) (at - p));
        if (colon != NULL && at - colon > 1) {
            r->password = strndup(colon + 1, (size_t) (at - colon - 1));
            if (r->password == NULL) {
                return HG_ERROR;
            }
        }
        p = at + 1;
    }
    colon = memchr(p, ':', slash != NULL ? (size_t) (slash - p) : strlen(p));
    r->port = 6379;
    if (colon != NULL) {
        v = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || (*end != '\0' && *end != '/') || v < 1
            || v > 65535)
        {
            snprintf(err, errlen, "store.url: \"%s\": the port is not a "
                     "number from 1 to 65535", url);
            return HG_ERROR;
        }
        r->port = (int) v;
    }
    r->host = strndup(p, colon != NULL ? (size_t) (colon - p)
                         : slash != NULL ? (size_t) (slash - p) : strlen(p));
    if (r->host == NULL) {
        return HG_ERROR;
    }
    if (r->host[0] == '\0') {
        snprintf(err, errlen, "store.url: \"%s\" names no host", url);
        return HG_ERROR;
    }
    if (slash != NULL && slash[1] != '\0') {
        v = strtol(slash + 1, &end, 10);
        if (*end != '\0' || v < 0 || v > 65535) {
            goto bad_db;
        }
        r->db = (int) v;
    }
    return HG_OK;

bad_db:
    snprintf(err, errlen, "store.url: \"%s\": the database is not a "
             "number", url);
    return HG_ERROR;
}

static void
hg_redis_disconnect(hg_redis_t *r)
{
    if (r->c != NULL) {
        redisFree(r->c);
        r->c = NULL;
    }
}

/* One command, its reply checked: NULL with err on a failure (and the
 * connection dropped when it broke). The caller frees the reply. */
static redisReply *
hg_redis_command(hg_redis_t *r, char *err, size_t errlen, const char *fmt,
                 ...)
{
    redisReply *reply;
    va_list ap;

    va_start(ap, fmt);
    reply = redisvCommand(r->c, fmt, ap);
    va_end(ap);
    if (reply == NULL) {
        snprintf(err, errlen, "%s: %s", r->url, r->c->errstr[0] != '\0'
                 ? r->c->errstr : "no reply");
        hg_redis_disconnect(r);
        return NULL;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s: %s", r->url, reply->str);
        freeReplyObject(reply);
        return NULL;
    }
    return reply;
}

/* Connected (again, after a failure), authenticated, the database
 * selected; the reason in err. */
static int
hg_redis_connect(hg_redis_t *r, char *err, size_t errlen)
{
    struct timeval connect_tv = { HG_REDIS_CONNECT_MS / 1000, 0 };
    struct timeval command_tv = { HG_REDIS_COMMAND_MS / 1000, 0 };
    redisReply *reply;

    if (r->c != NULL) {
        return HG_OK;
    }
    r->c = r->socket != NULL
           ? redisConnectUnixWithTimeout(r->socket, connect_tv)
           : redisConnectWithTimeout(r->host, r->port, connect_tv);
    if (r->c == NULL) {
        snprintf(err, errlen, "%s: out of memory", r->url);
        return HG_ERROR;
    }
    if (r->c->err != 0) {
        snprintf(err, errlen, "%s: %s", r->url, r->c->errstr);
        hg_redis_disconnect(r);
        return HG_ERROR;
    }
    if (redisSetTimeout(r->c, command_tv) != REDIS_OK) {
        snprintf(err, errlen, "%s: cannot set a timeout", r->url);
        hg_redis_disconnect(r);
        return HG_ERROR;
    }
    if (r->password != NULL) {
        reply = hg_redis_command(r, err, errlen, "AUTH %s", r->password);
        if (reply == NULL) {
            hg_redis_disconnect(r);
            return HG_ERROR;
        }
        freeReplyObject(reply);
    }
    if (r->db != 0) {
        reply = hg_redis_command(r, err, errlen, "SELECT %d", r->db);
        if (reply == NULL) {
            hg_redis_disconnect(r);
            return HG_ERROR;
        }
        freeReplyObject(reply);
    }
    return HG_OK;
}

/* --- open, close, check -------------------------------------------------- */

static void
hg_redis_free(hg_redis_t *r)
{
    if (r == NULL) {
        return;
    }
    hg_redis_disconnect(r);
    free(r->url);
    free(r->host);
    free(r->socket);
    free(r->password);
    free(r->instance);
    free(r->self);
    free(r);
}

static hg_redis_t *
hg_redis_new(const hg_conf_t *conf, char *err, size_t errlen)
{
    hg_redis_t *r = calloc(1, sizeof(*r));

    if (r == NULL || (r->url = strdup(conf->store.url)) == NULL) {
        goto nomem;
    }
    err[0] = '\0';
    if (hg_redis_parse_url(r, conf->store.url, err, errlen) != HG_OK) {
        if (err[0] == '\0') {
            goto nomem;
        }
        hg_redis_free(r);
        return NULL;
    }
    return r;

nomem:
    snprintf(err, errlen, "store: out of memory");
    hg_redis_free(r);
    return NULL;
}

int
hg_redis_check(const hg_conf_t *conf, char *err, size_t errlen)
{
    hg_redis_t *r = hg_redis_new(conf, err, errlen);
    redisReply *reply;
    char msg[384];
    int rc = HG_ERROR;

    if (r == NULL) {
        return HG_ERROR;
    }
    if (hg_redis_connect(r, msg, sizeof(msg)) != HG_OK
        || (reply = hg_redis_command(r, msg, sizeof(msg), "PING")) == NULL)
    {
        snprintf(err, errlen, "store.url: cannot reach Redis: %s", msg);
        goto done;
    }
    freeReplyObject(reply);
    rc = HG_OK;

done:
    hg_redis_free(r);
    return rc;
}

/* At open: a new term (INCR), the heartbeat and the name in the set. */
static int
hg_redis_join(hg_redis_t *r, char *err, size_t errlen)
{
    redisReply *reply;
    char msg[384];

    reply = hg_redis_command(r, msg, sizeof(msg), "INCR "
                             HG_REDIS_PREFIX "term:%s", r->instance);
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        if (reply != NULL) {
            snprintf(msg, sizeof(msg), "%s: INCR gave no number", r->url);
            freeReplyObject(reply);
        }
        snprintf(err, errlen, "store.url: cluster: cannot join as instance "
                 "\"%s\": %s", r->instance, msg);
        return HG_ERROR;
    }
    r->term = reply->integer;
    freeReplyObject(reply);
    if (asprintf(&r->self, "%s/%" PRId64, r->instance, r->term) < 0) {
        r->self = NULL;
        snprintf(err, errlen, "store: out of memory");
        return HG_ERROR;
    }
    reply = hg_redis_command(r, msg, sizeof(msg), "SADD "
                             HG_REDIS_PREFIX "instances %s", r->instance);
    if (reply == NULL) {
        snprintf(err, errlen, "store.url: cluster: cannot join as instance "
                 "\"%s\": %s", r->instance, msg);
        return HG_ERROR;
    }
    freeReplyObject(reply);
    hg_log(HG_LOG_INFO, "cluster: joined as instance \"%s\" (term %" PRId64
           ") through Redis at %s", r->instance, r->term, r->url);
    return HG_OK;
}

hg_redis_t *
hg_redis_open(const hg_conf_t *conf, char *err, size_t errlen)
{
    hg_redis_t *r = hg_redis_new(conf, err, errlen);
    char msg[384];

    if (r == NULL) {
        return NULL;
    }
    r->lease_ms = conf->cluster.lease_ms > 0 ? conf->cluster.lease_ms
                                             : 10000;
    r->claim_ttl_ms = conf->store.claim_ttl_ms > 0
                      ? conf->store.claim_ttl_ms : 86400 * 1000;
    r->instance = strdup(conf->cluster.instance != NULL
                         ? conf->cluster.instance : "hourglass");
    if (r->instance == NULL) {
        snprintf(err, errlen, "store: out of memory");
        goto failed;
    }
    if (hg_redis_connect(r, msg, sizeof(msg)) != HG_OK) {
        snprintf(err, errlen, "store.url: cannot connect to Redis: %s", msg);
        goto failed;
    }
    if (hg_redis_join(r, err, errlen) != HG_OK) {
        goto failed;
    }
    return r;

failed:
    hg_redis_free(r);
    return NULL;
}

void
hg_redis_close(hg_redis_t *r)
{
    redisReply *reply;
    char msg[256];

    /* A clean stop gives the leadership back, so that a peer takes over
     * now rather than a lease later; a server that does not answer
     * within a second is left to let it expire. */
    if (r != NULL && r->c != NULL && r->self != NULL) {
        struct timeval tv = { 1, 0 };

        (void) redisSetTimeout(r->c, tv);
        reply = hg_redis_command(r, msg, sizeof(msg), "EVAL %s 1 "
                                 HG_REDIS_PREFIX "leader %s 1",
                                 hg_redis_renew_script, r->self);
        if (reply != NULL) {
            freeReplyObject(reply);
        }
    }
    hg_redis_free(r);
}

/* --- claims -------------------------------------------------------------- */

/* VALUE, a claim's, is this instance's: written by it under this term or
 * an earlier one (a fire claimed before a crash whose record was not
 * written, fired again at restart). A later term is another process
 * under our name, which the tick fences. */
static bool
hg_redis_claim_ours(const hg_redis_t *r, const char *value)
{
    size_t n = strlen(r->instance);
    char *end;
    long long term;

    if (strncmp(value, r->instance, n) != 0 || value[n] != '/') {
        return false;
    }
    term = strtoll(value + n + 1, &end, 10);
    return *end == '/' && term <= r->term;
}

/* The replies of N pipelined commands into OUT (the caller frees them);
 * HG_ERROR with err, and none kept, when the connection broke. */
static int
hg_redis_replies(hg_redis_t *r, size_t n, redisReply **out, char *err,
                 size_t errlen)
{
    size_t i;
    void *reply;

    for (i = 0; i < n; i++) {
        if (redisGetReply(r->c, &reply) != REDIS_OK || reply == NULL) {
            snprintf(err, errlen, "%s: %s", r->url, r->c->errstr[0] != '\0'
                     ? r->c->errstr : "no reply");
            hg_redis_disconnect(r);
            while (i > 0) {
                freeReplyObject(out[--i]);
            }
            return HG_ERROR;
        }
        out[i] = reply;
    }
    return HG_OK;
}

/* Frees the N replies (not the array holding them). */
static void
hg_redis_replies_free(redisReply **replies, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        freeReplyObject(replies[i]);
    }
}

/* A final record's start and success into last_run and last_success
 * (queued, not sent); the number of commands queued (0 or 1). */
static int
hg_redis_publish(hg_redis_t *r, const hg_exec_record_t *rec, size_t *queued,
                 char *err, size_t errlen)
{
    if (!hg_exec_status_final(rec->status) || rec->started_at <= 0) {
        return HG_OK;
    }
    if (redisAppendCommand(r->c, "EVAL %s 2 " HG_REDIS_PREFIX "last_run "
                           HG_REDIS_PREFIX "last_success %s %" PRId64 " %"
                           PRId64, hg_redis_last_script, rec->job_id,
                           rec->started_at, rec->status == HG_EXEC_SUCCEEDED
                           ? rec->finished_at : (int64_t) 0) != REDIS_OK)
    {
        snprintf(err, errlen, "out of memory");
        hg_redis_disconnect(r);
        return HG_ERROR;
    }
    (*queued)++;
    return HG_OK;
}

/* The finals of BATCH published, one round trip. */
static int
hg_redis_publish_all(hg_redis_t *r, const hg_store_batch_t *batch,
                     char *err, size_t errlen)
{
    hg_store_item_t *item;
    redisReply *reply;
    size_t queued = 0, i;
    int rc = HG_OK;

    for (item = batch->head; item != NULL; item = item->next) {
        if (hg_redis_publish(r, &item->row.r, &queued, err, errlen)
            != HG_OK)
        {
            return HG_ERROR;
        }
    }
    for (i = 0; i < queued; i++) {
        if (hg_redis_replies(r, 1, &reply, err, errlen) != HG_OK) {
            return HG_ERROR;
        }
        if (reply->type == REDIS_REPLY_ERROR && rc == HG_OK) {
            snprintf(err, errlen, "%s: %s", r->url, reply->str);
            rc = HG_ERROR;
        }
        freeReplyObject(reply);
    }
    return rc;
}

static int hg_redis_claim(hg_redis_t *r, const hg_store_batch_t *batch,
                          hg_map_t *lost, char *err, size_t errlen);

int
hg_redis_prepare(hg_redis_t *r, const hg_store_batch_t *batch,
                 hg_map_t *lost, char *err, size_t errlen)
{
    if (hg_redis_connect(r, err, errlen) != HG_OK
        || hg_redis_claim(r, batch, lost, err, errlen) != HG_OK)
    {
        return HG_ERROR;
    }
    return hg_redis_publish_all(r, batch, err, errlen);
}

static int
hg_redis_claim(hg_redis_t *r, const hg_store_batch_t *batch, hg_map_t *lost,
               char *err, size_t errlen)
{
    hg_store_item_t *item;
    redisReply **set = NULL, **get = NULL;
    size_t n = 0, i, held = 0, nget = 0;
    int rc = HG_ERROR;

    for (item = batch->head; item != NULL; item = item->next) {
        n += item->row.r.claim;
    }
    if (n == 0) {
        return HG_OK;
    }
    set = calloc(n, sizeof(*set));
    get = calloc(n, sizeof(*get));
    if (set == NULL || get == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    /* One round trip for every claim, one more for the ones refused. */
    for (item = batch->head; item != NULL; item = item->next) {
        if (item->row.r.claim
            && redisAppendCommand(r->c, "SET " HG_REDIS_PREFIX "claim:%s:%"
                                  PRId64 " %s/%s NX PX %" PRId64,
                                  item->row.r.job_id,
                                  item->row.r.scheduled_for, r->self,
                                  item->row.r.id, r->claim_ttl_ms)
               != REDIS_OK)
        {
            snprintf(err, errlen, "out of memory");
            hg_redis_disconnect(r);         /* half a pipeline is queued */
            goto done;
        }
    }
    if (hg_redis_replies(r, n, set, err, errlen) != HG_OK) {
        free(set);
        set = NULL;
        goto done;
    }
    for (i = 0, item = batch->head; item != NULL; item = item->next) {
        if (!item->row.r.claim) {
            continue;
        }
        if (set[i]->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "%s: %s", r->url, set[i]->str);
            goto done;
        }
        if (set[i]->type == REDIS_REPLY_NIL
            && redisAppendCommand(r->c, "GET " HG_REDIS_PREFIX "claim:%s:%"
                                  PRId64, item->row.r.job_id,
                                  item->row.r.scheduled_for) != REDIS_OK)
        {
            snprintf(err, errlen, "out of memory");
            hg_redis_disconnect(r);
            goto done;
        }
        held += set[i]->type == REDIS_REPLY_NIL;
        i++;
    }
    if (held > 0 && hg_redis_replies(r, held, get, err, errlen) != HG_OK) {
        goto done;
    }
    nget = held;
    for (i = 0, held = 0, item = batch->head; item != NULL;
         item = item->next)
    {
        if (!item->row.r.claim) {
            continue;
        }
        if (set[i++]->type != REDIS_REPLY_NIL) {
            continue;                       /* OK: ours now */
        }
        /* Held by a peer (or by nobody any more: it expired between the
         * two commands, having been a peer's until then): lost. */
        if (get[held]->type != REDIS_REPLY_STRING
            || !hg_redis_claim_ours(r, get[held]->str))
        {
            if (hg_map_put(lost, item->row.r.id, item) != HG_OK) {
                snprintf(err, errlen, "out of memory");
                goto done;
            }
        }
        held++;
    }
    rc = HG_OK;

done:
    if (set != NULL) {
        for (i = 0; i < n && set[i] != NULL; i++) {
            freeReplyObject(set[i]);
        }
        free(set);
    }
    hg_redis_replies_free(get, nget);
    free(get);
    return rc;
}

/* --- the tick: heartbeat, leader, view, fencing -------------------------- */

/* Each job's last start and success on any instance:
 * {JOB: {"run_ms", "success_ms"}}, or NULL when Redis cannot say. */
static json_t *
hg_redis_last_times(hg_redis_t *r)
{
    static const char *const fields[] = { "run_ms", "success_ms" };
    redisReply *replies[2];
    json_t *jobs;
    char msg[256];
    size_t i, k;

    if (redisAppendCommand(r->c, "HGETALL " HG_REDIS_PREFIX "last_run")
        != REDIS_OK
        || redisAppendCommand(r->c, "HGETALL " HG_REDIS_PREFIX
                              "last_success") != REDIS_OK)
    {
        hg_redis_disconnect(r);
        return NULL;
    }
    if (hg_redis_replies(r, 2, replies, msg, sizeof(msg)) != HG_OK) {
        return NULL;
    }
    jobs = json_object();
    for (k = 0; k < 2 && jobs != NULL; k++) {
        if (replies[k]->type != REDIS_REPLY_ARRAY) {
            continue;
        }
        for (i = 0; i + 1 < replies[k]->elements; i += 2) {
            const char *id = replies[k]->element[i]->str;
            json_t *one = json_object_get(jobs, id);

            if (one == NULL) {
                one = json_object();
                if (one == NULL || json_object_set_new(jobs, id, one) != 0) {
                    continue;
                }
            }
            (void) json_object_set_new(one, fields[k], json_integer(
                strtoll(replies[k]->element[i + 1]->str, NULL, 10)));
        }
    }
    hg_redis_replies_free(replies, 2);
    return jobs;
}

/* The instances as Redis has them now: {term, leader, instances[...]}. */
static json_t *
hg_redis_view(hg_redis_t *r, const char *leader_value)
{
    redisReply *names, **ttl = NULL;
    json_t *view, *list;
    char msg[256];
    size_t i, n;

    names = hg_redis_command(r, msg, sizeof(msg), "SMEMBERS "
                             HG_REDIS_PREFIX "instances");
    if (names == NULL || names->type != REDIS_REPLY_ARRAY) {
        if (names != NULL) {
            freeReplyObject(names);
        }
        return NULL;
    }
    n = names->elements;
    ttl = n > 0 ? calloc(n, sizeof(*ttl)) : NULL;
    for (i = 0; i < n && ttl != NULL; i++) {
        if (redisAppendCommand(r->c, "PTTL " HG_REDIS_PREFIX "instance:%s",
                               names->element[i]->str) != REDIS_OK)
        {
            hg_redis_disconnect(r);
            free(ttl);
            freeReplyObject(names);
            return NULL;
        }
    }
    if (n > 0 && (ttl == NULL
                  || hg_redis_replies(r, n, ttl, msg, sizeof(msg)) != HG_OK))
    {
        free(ttl);
        freeReplyObject(names);
        return NULL;
    }
    list = json_array();
    for (i = 0; i < n && list != NULL; i++) {
        long long left = ttl[i]->type == REDIS_REPLY_INTEGER
                         ? ttl[i]->integer : -2;
        const char *name = names->element[i]->str;
        size_t len = strlen(name);
        bool leads = leader_value != NULL
                     && strncmp(leader_value, name, len) == 0
                     && leader_value[len] == '/';

        (void) json_array_append_new(list, json_pack(
            "{s:s, s:b, s:I, s:b}", "name", name, "live", left > 0,
            "lease_left_ms", (json_int_t) (left > 0 ? left : 0),
            "leader", leads));
    }
    hg_redis_replies_free(ttl, n);
    free(ttl);
    freeReplyObject(names);
    view = json_pack("{s:s, s:I, s:b, s:o*, s:o*}", "coordinator", "redis",
                     "term", (json_int_t) r->term, "leader", r->leader,
                     "instances", list, "jobs", hg_redis_last_times(r));
    return view;
}

/* Our term is still the newest under our name; a missing key (Redis
 * restarted without its data) is written back. HG_AGAIN: fenced, with
 * the reason in why. */
static int
hg_redis_fencing(hg_redis_t *r, char *why, size_t len, char *err,
                 size_t errlen)
{
    redisReply *reply;
    long long term;

    reply = hg_redis_command(r, err, errlen, "GET " HG_REDIS_PREFIX
                             "term:%s", r->instance);
    if (reply == NULL) {
        return HG_ERROR;
    }
    term = reply->type == REDIS_REPLY_STRING ? strtoll(reply->str, NULL, 10)
                                             : 0;
    freeReplyObject(reply);
    if (term > r->term) {
        snprintf(why, len, "another process joined as instance \"%s\" "
                 "(term %lld, this one's %" PRId64 ")", r->instance, term,
                 r->term);
        return HG_AGAIN;
    }
    if (term < r->term) {
        reply = hg_redis_command(r, err, errlen, "SET " HG_REDIS_PREFIX
                                 "term:%s %" PRId64, r->instance, r->term);
        if (reply == NULL) {
            return HG_ERROR;
        }
        freeReplyObject(reply);
    }
    return HG_OK;
}

/* Heartbeat and leadership, one round trip: the heartbeat key, the name
 * in the set, the leader's key taken if free or renewed if ours, and who
 * holds it now. */
static int
hg_redis_beat(hg_redis_t *r, char **leader_value, char *err, size_t errlen)
{
    redisReply *replies[5];

    if (redisAppendCommand(r->c, "SET " HG_REDIS_PREFIX "instance:%s %"
                           PRId64 " PX %" PRId64, r->instance, r->term,
                           r->lease_ms) != REDIS_OK
        || redisAppendCommand(r->c, "SADD " HG_REDIS_PREFIX "instances %s",
                              r->instance) != REDIS_OK
        || redisAppendCommand(r->c, "SET " HG_REDIS_PREFIX "leader %s NX PX %"
                              PRId64, r->self, r->lease_ms) != REDIS_OK
        || redisAppendCommand(r->c, "EVAL %s 1 " HG_REDIS_PREFIX "leader %s %"
                              PRId64, hg_redis_renew_script, r->self,
                              r->lease_ms) != REDIS_OK
        || redisAppendCommand(r->c, "GET " HG_REDIS_PREFIX "leader")
           != REDIS_OK)
    {
        snprintf(err, errlen, "out of memory");
        hg_redis_disconnect(r);
        return HG_ERROR;
    }
    if (hg_redis_replies(r, HG_NELEMS(replies), replies, err, errlen)
        != HG_OK)
    {
        return HG_ERROR;
    }
    *leader_value = replies[4]->type == REDIS_REPLY_STRING
                    ? strdup(replies[4]->str) : NULL;
    r->leader = *leader_value != NULL && strcmp(*leader_value, r->self) == 0;
    if (replies[0]->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s: %s", r->url, replies[0]->str);
    }
    hg_redis_replies_free(replies, HG_NELEMS(replies));
    return err[0] == '\0' ? HG_OK : HG_ERROR;
}

int64_t
hg_redis_tick(hg_redis_t *r, hg_store_writer_t *w)
{
    char err[512] = "", why[256];
    char *leader_value = NULL;
    int64_t every = r->lease_ms / 3 > 0 ? r->lease_ms / 3 : 1;
    bool was_leader = r->leader;
    json_t *view;
    int rc;

    rc = hg_redis_connect(r, err, sizeof(err));
    if (rc == HG_OK) {
        rc = hg_redis_fencing(r, why, sizeof(why), err, sizeof(err));
        if (rc == HG_AGAIN) {
            hg_store_writer_fence(w, why);
            return every;
        }
    }
    if (rc == HG_OK) {
        rc = hg_redis_beat(r, &leader_value, err, sizeof(err));
    }
    if (rc != HG_OK) {
        r->leader = false;          /* unsure: nobody here leads */
        if (!r->failing) {
            r->failing = true;
            hg_store_writer_log(w, HG_LOG_WARN, "cluster: cannot reach "
                                "Redis for instance \"%s\": %s; no fire time "
                                "is claimed here until it answers",
                                r->instance, err);
        }
        view = json_pack("{s:s, s:I, s:b, s:[]}", "coordinator", "redis",
                         "term", (json_int_t) r->term, "leader", false,
                         "instances");
        if (view != NULL) {
            hg_store_writer_set_view(w, view);
        }
        return every < HG_REDIS_RETRY_MS ? every : HG_REDIS_RETRY_MS;
    }
    if (r->failing) {
        r->failing = false;
        hg_store_writer_log(w, HG_LOG_INFO, "cluster: Redis at %s answers "
                            "again", r->url);
    }
    if (r->leader != was_leader) {
        hg_store_writer_log(w, HG_LOG_INFO, "cluster: instance \"%s\" %s",
                            r->instance, r->leader ? "is the leader now"
                                                   : "is no longer the leader");
    }
    view = hg_redis_view(r, leader_value);
    free(leader_value);
    if (view != NULL) {
        hg_store_writer_set_view(w, view);
    }
    return every;
}
