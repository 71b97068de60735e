/*
 * hg_jobdef.c: jobs defined through the master's surface (the admin
 * API's POST, PUT, PATCH and DELETE /jobs, and POST /import), beside the
 * file's.
 *
 * It owns the set of those jobs (m->api_jobs, as the store keeps them)
 * and the life of each command on it: queued, one at a time; the jobs
 * added or replaced are checked by a cycle reader against the
 * configuration in force, as a reload would check them (module, keys,
 * validate, schedule, time zone: hg_reload_check), then written to the
 * store in one transaction, and only then put in force
 * (hg_reload_apply_jobs) and answered, so a job the caller was told
 * exists survives a kill -9, and a command refused (an import with one
 * bad job among many) changed nothing.
 * A reload (SIGHUP) hands the set to its reader with the file, and waits
 * while a command is in flight: a cycle read without it would undo it.
 *
 * In a cluster the peers' changes come in the same way, as a command of
 * their own (HG_JOBDEF_PEER): checked, then put in force without being
 * written again (the store has them). One refused here is kept
 * (m->peer_refused) and checked again after the next reload.
 *
 * It never touches a job of scheduler.conf (those answer "read only"),
 * never runs module code in the master (the reader does), and never
 * writes the store from the loop (the write is a store task).
 */

#include "hg_core.h"

#include "hg_job.h"
#include "hg_jobdef.h"
#include "hg_log.h"
#include "hg_notice.h"
#include "hg_query.h"
#include "hg_reload.h"

#define HG_JOBDEF_ID_MAX     128     /* as the configuration's ids */

typedef struct hg_jobdef_cmd_s {
    struct hg_jobdef_cmd_s *next;
    hg_jobdef_op_t op;
    char *id;                       /* "" for IMPORT */
    json_t *definition;             /* CREATE REPLACE PATCH; IMPORT's is
                                       an array of definitions */
    char *actor;
    hg_master_reply_pt reply;
    void *data;
    hg_cycle_t *cycle;              /* checked, to apply once written */
    json_t *records;                /* what the store keeps: {id: record,
                                       or null for a job deleted} */
    json_t *mirror;                 /* m->api_jobs with the records in,
                                       made before the write: once the
                                       store has them, taking it cannot
                                       fail for want of memory */
} hg_jobdef_cmd_t;

static void
hg_jobdef_cmd_free(hg_jobdef_cmd_t *cmd)
{
    hg_cycle_destroy(cmd->cycle);
    json_decref(cmd->definition);
    json_decref(cmd->records);
    json_decref(cmd->mirror);
    free(cmd->id);
    free(cmd->actor);
    free(cmd);
}

/* The command's answer: REPLY told, the command gone, the next may go. */
static void
hg_jobdef_finish(hg_master_t *m, hg_jobdef_cmd_t *cmd, int rc,
                 json_t *answer)
{
    if (m->jobdef_current == cmd) {
        m->jobdef_current = NULL;
    }
    if (cmd->reply != NULL) {
        cmd->reply(cmd->data, rc, answer);
    }
    json_decref(answer);
    hg_jobdef_cmd_free(cmd);
}

static void
hg_jobdef_refuse(hg_master_t *m, hg_jobdef_cmd_t *cmd, int rc,
                 const char *fmt, ...) HG_PRINTF(4, 5);

static void
hg_jobdef_refuse(hg_master_t *m, hg_jobdef_cmd_t *cmd, int rc,
                 const char *fmt, ...)
{
    char message[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    hg_jobdef_finish(m, cmd, rc, json_pack("{s:s}", "error", message));
}

int
hg_jobdef_submit(hg_master_t *m, hg_jobdef_op_t op, const char *job_id,
                 const json_t *definition, const char *actor,
                 hg_master_reply_pt reply, void *data)
{
    hg_jobdef_cmd_t *cmd;
    const char *id = job_id;

    if (op == HG_JOBDEF_CREATE || op == HG_JOBDEF_REPLACE) {
        id = json_string_value(json_object_get(definition, "id"));
    }
    cmd = calloc(1, sizeof(*cmd));
    if (cmd == NULL) {
        return HG_ERROR;
    }
    cmd->op = op;
    cmd->reply = reply;
    cmd->data = data;
    cmd->id = strdup(id != NULL ? id : "");
    cmd->actor = strdup(actor != NULL ? actor : "api");
    if (op != HG_JOBDEF_DELETE) {
        cmd->definition = json_deep_copy(definition);
    }
    if (cmd->id == NULL || cmd->actor == NULL
        || (op != HG_JOBDEF_DELETE && definition != NULL
            && cmd->definition == NULL))
    {
        hg_jobdef_cmd_free(cmd);
        return HG_ERROR;
    }
    if (m->jobdef_tail != NULL) {
        m->jobdef_tail->next = cmd;
    } else {
        m->jobdef_head = cmd;
    }
    m->jobdef_tail = cmd;
    return HG_OK;
}

/* --- answers ------------------------------------------------------------- */

/* The job as it now runs, with who made it and its next fire times. */
static json_t *
hg_jobdef_job_json(hg_master_t *m, hg_job_t *job, const json_t *record)
{
    return json_pack("{s:s, s:s, s:b, s:b, s:b, s:O, s:O?, s:o, s:o, s:o}",
                     "id", job->id,
                     "type", job->type,
                     "api", 1,
                     "enabled", job->enabled,
                     "paused", job->paused,
                     "definition", json_object_get(record, "definition"),
                     "created_by", json_object_get(record, "created_by"),
                     "created_at", hg_query_time(json_integer_value(
                         json_object_get(record, "created_at"))),
                     "updated_at", hg_query_time(json_integer_value(
                         json_object_get(record, "updated_at"))),
                     "next_fires", hg_query_next_fires(m, job));
}

/*
 * One problem as the caller reads it: {job, field, message}. The reader's
 * messages about a job read `job "ID": KEY: why` (the file's `id` label
 * and a module's own messages alike), or `unknown key "KEY" in job "ID"
 * (...)`; job and field are null when the message names none.
 */
static json_t *
hg_jobdef_problem(const char *message)
{
    char job[HG_JOBDEF_ID_MAX + 1], field[128];
    const char *why = message, *end;
    size_t n;

    job[0] = '\0';
    if (strncmp(why, "job \"", 5) == 0
        && (end = strstr(why + 5, "\": ")) != NULL
        && (size_t) (end - why - 5) <= HG_JOBDEF_ID_MAX)
    {
        memcpy(job, why + 5, (size_t) (end - why - 5));
        job[end - why - 5] = '\0';
        why = end + 3;
    }
    /* the key table's own words: unknown key "K" in job "ID" (...) */
    if (strncmp(why, "unknown key \"", 13) == 0) {
        why += 13;
        n = strcspn(why, "\"");
        end = strstr(why + n, "\" in job \"");
        if (job[0] == '\0' && end != NULL) {
            end += 10;
            snprintf(job, sizeof(job), "%.*s", (int) strcspn(end, "\""),
                     end);
        }
    } else {
        n = strcspn(why, ":");
    }
    field[0] = '\0';
    if ((why[n] == ':' || why[n] == '"') && n > 0 && n < sizeof(field)
        && strcspn(why, " \t\"") >= n)
    {
        memcpy(field, why, n);
        field[n] = '\0';
    }
    return json_pack("{s:s?, s:s?, s:s}", "job", job[0] != '\0' ? job : NULL,
                     "field", field[0] != '\0' ? field : NULL, "message",
                     message);
}

static json_t *
hg_jobdef_invalid(const hg_conf_errors_t *errors)
{
    json_t *list = json_array();
    size_t i;

    for (i = 0; list != NULL && i < errors->count; i++) {
        json_array_append_new(list, hg_jobdef_problem(
            errors->items[i].message));
    }
    return json_pack("{s:s, s:o}", "error", errors->count > 0
                     ? errors->items[0].message
                     : "the job definition was refused", "errors", list);
}

/* --- the steps ------------------------------------------------------------ */

static void hg_jobdef_stored(void *data, int rc, const json_t *answer);

/* Write the command's records (a null one: delete the job); then
 * stored. */
static void
hg_jobdef_store(hg_master_t *m, hg_jobdef_cmd_t *cmd)
{
    hg_query_args_t args;

    if (m->store == NULL) {
        hg_jobdef_stored(m, HG_OK, NULL);
        return;
    }
    memset(&args, 0, sizeof(args));
    args.jobs = cmd->records;
    if (hg_query_start(m, HG_QUERY_PUT_JOBS, &args, hg_jobdef_stored, m)
        != HG_OK)
    {
        hg_jobdef_refuse(m, cmd, HG_ERROR, "cannot hand the change to the "
                         "store (out of memory): nothing changed");
    }
}

/* The definitions the command gives, by id: {id: definition}; NULL when
 * out of memory. */
static json_t *
hg_jobdef_given(const hg_jobdef_cmd_t *cmd)
{
    json_t *given = json_object(), *def;
    size_t i;

    if (cmd->op != HG_JOBDEF_IMPORT) {
        if (given != NULL
            && json_object_set(given, cmd->id, cmd->definition) != 0)
        {
            json_decref(given);
            return NULL;
        }
        return given;
    }
    json_array_foreach(cmd->definition, i, def) {
        if (given == NULL
            || json_object_set(given, json_string_value(json_object_get(
                                   def, "id")), def) != 0)
        {
            json_decref(given);
            return NULL;
        }
    }
    return given;
}

/* What the store keeps of job ID: a replaced job keeps its creator and
 * birth. */
static json_t *
hg_jobdef_record(hg_master_t *m, const hg_jobdef_cmd_t *cmd, const char *id,
                 const json_t *definition, int64_t now)
{
    const json_t *old = json_object_get(m->api_jobs, id);

    return json_pack("{s:O, s:o, s:o, s:I}",
                     "definition", definition,
                     "created_by", old != NULL
                         ? json_incref(json_object_get(old, "created_by"))
                         : json_string(cmd->actor),
                     "created_at", old != NULL
                         ? json_incref(json_object_get(old, "created_at"))
                         : json_integer(now),
                     "updated_at", (json_int_t) now);
}

/* A copy of the set (the records shared); NULL when out of memory. Not
 * json_copy: jansson's ignores a member it could not set, and returns the
 * copy as whole. */
static json_t *
hg_jobdef_copy(const json_t *set)
{
    json_t *copy = json_object(), *record;
    const char *id;

    json_object_foreach((json_t *) set, id, record) {
        if (copy == NULL || json_object_set(copy, id, record) != 0) {
            json_decref(copy);
            return NULL;
        }
    }
    return copy;
}

static void hg_jobdef_peer_apply(hg_master_t *m, hg_jobdef_cmd_t *cmd);

/* A peer's change of job ID refused here: kept for the next reload
 * (hg_jobdef_peer_retry). Out of memory it is only logged: the store
 * keeps it, and a restart or the peer's next change brings it again. */
static void
hg_jobdef_peer_keep_one(hg_master_t *m, const char *id, json_t *record)
{
    if (m->peer_refused == NULL) {
        m->peer_refused = json_object();
    }
    if (m->peer_refused == NULL
        || json_object_set(m->peer_refused, id, record) != 0)
    {
        hg_log(HG_LOG_ERROR, "out of memory keeping another instance's "
               "change of API job \"%s\" for the next reload: a restart "
               "or its next change brings it again", id);
    }
}

static void
hg_jobdef_peer_keep(hg_master_t *m, json_t *records)
{
    const char *id;
    json_t *record;

    json_object_foreach(records, id, record) {
        hg_jobdef_peer_keep_one(m, id, record);
    }
}

static void
hg_jobdef_peer_forget(hg_master_t *m, const char *id)
{
    if (m->peer_refused != NULL) {
        (void) json_object_del(m->peer_refused, id);
    }
}

static void
hg_jobdef_checked(hg_master_t *m, hg_cycle_t *cycle,
                  const hg_conf_errors_t *errors, void *data)
{
    hg_jobdef_cmd_t *cmd = data;
    json_t *given, *definition;
    const char *id;
    int64_t now = hg_now_ms();
    size_t want, i;

    if (m->stopping || m->quitting) {
        hg_cycle_destroy(cycle);
        hg_jobdef_refuse(m, cmd, HG_ERROR, "the daemon is shutting down");
        return;
    }
    if (cycle == NULL) {
        if (cmd->op == HG_JOBDEF_PEER) {
            hg_jobdef_peer_keep(m, cmd->records);
        }
        hg_log_event(HG_LOG_INFO, "job_refused", cmd->id[0] != '\0'
                     ? cmd->id : NULL, NULL, NULL, 0, "%s from %s refused: "
                     "%s", cmd->op == HG_JOBDEF_IMPORT ? "an import"
                     : cmd->op == HG_JOBDEF_PEER ? "a change of API jobs"
                     : "a job", cmd->actor, errors->count > 0
                     ? errors->items[0].message : "?");
        hg_jobdef_finish(m, cmd, HG_REPLY_INVALID, hg_jobdef_invalid(errors));
        return;
    }
    cmd->cycle = cycle;
    if (cmd->op == HG_JOBDEF_PEER) {
        hg_jobdef_peer_apply(m, cmd);   /* the store has it already */
        return;
    }
    want = cmd->op == HG_JOBDEF_IMPORT ? json_array_size(cmd->definition) : 1;
    given = hg_jobdef_given(cmd);
    cmd->records = json_object();
    cmd->mirror = hg_jobdef_copy(m->api_jobs);
    if (given == NULL || cmd->records == NULL || cmd->mirror == NULL) {
        json_decref(given);
        hg_jobdef_refuse(m, cmd, HG_ERROR, "out of memory");
        return;
    }
    for (i = 0; i < cycle->njobs; i++) {
        id = cycle->jobs[i].conf->id;
        definition = json_object_get(given, id);
        if (definition == NULL || cycle->njobs != want) {
            json_decref(given);
            hg_jobdef_refuse(m, cmd, HG_ERROR, "the configuration reader "
                             "answered for other jobs than those given");
            return;
        }
        if (json_object_set_new(cmd->records, id, hg_jobdef_record(
                                    m, cmd, id, definition, now)) != 0
            || json_object_set(cmd->mirror, id,
                               json_object_get(cmd->records, id)) != 0)
        {
            json_decref(given);
            hg_jobdef_refuse(m, cmd, HG_ERROR, "out of memory");
            return;
        }
    }
    json_decref(given);
    hg_jobdef_store(m, cmd);
}

/* Job ID, added or replaced, is in force: said. */
static void
hg_jobdef_say(hg_master_t *m, const hg_jobdef_cmd_t *cmd, const char *id,
              bool added)
{
    hg_log_field_t field = HG_LOG_STR("by", cmd->actor);

    hg_log_event(HG_LOG_INFO, added ? "job_added" : "job_replaced", id, NULL,
                 &field, 1, "job \"%s\" %s by %s%s", id, added ? "added"
                 : "replaced", cmd->actor, cmd->op == HG_JOBDEF_IMPORT
                 ? " (import)" : "");
    hg_notice_job(m, id, added ? "added" : "replaced", cmd->actor);
}

/* The store has the change: now it is put in force, and answered. */
static void
hg_jobdef_stored(void *data, int rc, const json_t *answer)
{
    hg_master_t *m = data;
    hg_jobdef_cmd_t *cmd = m->jobdef_current;
    json_t *created = NULL, *replaced = NULL, *record, *old, *said;
    hg_log_field_t field;
    const char *id;
    hg_job_t *job;
    bool added;

    HG_UNUSED(answer);
    if (cmd == NULL) {
        return;
    }
    if (rc != HG_OK) {
        hg_jobdef_refuse(m, cmd, HG_ERROR, "the store could not write the "
                         "change (the log says why): nothing changed");
        return;
    }
    /* This instance's change is newer than any peer's refused before. */
    json_object_foreach(cmd->records, id, record) {
        hg_jobdef_peer_forget(m, id);
    }
    if (cmd->op == HG_JOBDEF_DELETE) {
        hg_jobdef_peer_forget(m, cmd->id);
        field = (hg_log_field_t) HG_LOG_STR("by", cmd->actor);
        job = hg_job_find(m, cmd->id);
        if (job != NULL) {
            hg_reload_remove_job(m, job);
        }
        (void) json_object_del(m->api_jobs, cmd->id);
        hg_log_event(HG_LOG_INFO, "job_deleted", cmd->id, NULL, &field, 1,
                     "job \"%s\" deleted by %s", cmd->id, cmd->actor);
        hg_notice_job(m, cmd->id, "deleted", cmd->actor);
        hg_jobdef_finish(m, cmd, HG_OK, json_pack("{s:s, s:b}", "id",
                                                  cmd->id, "deleted", 1));
        return;
    }
    /* the set as the store now has it: taken whole, nothing to allocate */
    old = m->api_jobs;
    m->api_jobs = cmd->mirror;
    cmd->mirror = NULL;
    if (hg_reload_apply_jobs(m, cmd->cycle) != HG_OK) {
        goto failed;
    }
    created = json_array();
    replaced = json_array();
    json_object_foreach(cmd->records, id, record) {
        added = json_object_get(old, id) == NULL;
        if (hg_job_find(m, id) == NULL) {
            goto failed;
        }
        hg_jobdef_say(m, cmd, id, added);
        if (created != NULL && replaced != NULL
            && json_array_append_new(added ? created : replaced,
                                     json_string(id)) != 0)
        {
            json_decref(created);
            created = NULL;             /* the answer, not the change */
        }
    }
    json_decref(old);
    old = NULL;
    said = cmd->op == HG_JOBDEF_IMPORT
             ? (created != NULL && replaced != NULL
                ? json_pack("{s:I, s:O, s:O}", "imported",
                            (json_int_t) json_object_size(cmd->records),
                            "created", created, "replaced", replaced)
                : NULL)
             : hg_jobdef_job_json(m, hg_job_find(m, cmd->id),
                                  json_object_get(cmd->records, cmd->id));
    json_decref(created);
    json_decref(replaced);
    if (said == NULL) {
        hg_jobdef_refuse(m, cmd, HG_ERROR, "the change is made (stored and "
                         "in force), but its answer could not be built: out "
                         "of memory");
        return;
    }
    hg_jobdef_finish(m, cmd, HG_OK, said);
    return;

failed:
    json_decref(created);
    json_decref(replaced);
    json_decref(old);
    /* The store has the change, and part of it may be in force already:
     * a reload (which reads the set just taken) puts the rest in force,
     * rather than leave the two apart until someone reloads. */
    m->reload_again = true;
    hg_log(HG_LOG_ERROR, "out of memory putting %s in force; the store has "
           "it, and a reload follows to apply it", cmd->op == HG_JOBDEF_IMPORT
           ? "an import" : "a job");
    hg_jobdef_refuse(m, cmd, HG_ERROR, "out of memory putting the change "
                     "in force: the store has it, and a reload follows to "
                     "apply it");
}

/* An id that is none: said before anything else, and before a message
 * could quote it (it may be long, or not text). */
static void
hg_jobdef_refuse_id(hg_master_t *m, hg_jobdef_cmd_t *cmd)
{
    const char *why = cmd->id[0] == '\0'
                      ? "id: is required: a string of 1-128 of A-Z a-z 0-9 "
                        ". _ -"
                      : "id: is invalid: use 1-128 of A-Z a-z 0-9 . _ -";

    hg_jobdef_finish(m, cmd, HG_REPLY_INVALID, json_pack(
        "{s:s, s:[{s:s, s:s}]}", "error", why, "errors", "field", "id",
        "message", why));
}

/*
 * The job's definition with the command's merge patch applied (RFC 7386:
 * a key set to null goes, an object merges into an object, anything else
 * replaces), as the definition to check; the id stays the job's.
 */
static json_t *
hg_jobdef_merge(json_t *target, const json_t *patch)
{
    const char *key;
    json_t *value;

    if (!json_is_object(patch)) {
        json_decref(target);
        return json_deep_copy(patch);
    }
    if (!json_is_object(target)) {
        json_decref(target);
        target = json_object();
    }
    json_object_foreach((json_t *) patch, key, value) {
        if (json_is_null(value)) {
            (void) json_object_del(target, key);
        } else if (json_object_set_new(target, key, hg_jobdef_merge(
                       json_incref(json_object_get(target, key)), value))
                   != 0)
        {
            json_decref(target);
            return NULL;
        }
    }
    return target;
}

static int
hg_jobdef_patch(hg_master_t *m, hg_jobdef_cmd_t *cmd)
{
    const json_t *old = json_object_get(json_object_get(m->api_jobs,
                                                        cmd->id),
                                        "definition");
    const json_t *id = json_object_get(cmd->definition, "id");
    json_t *merged;

    if (id != NULL && !(json_is_string(id)
                        && strcmp(json_string_value(id), cmd->id) == 0))
    {
        hg_jobdef_finish(m, cmd, HG_REPLY_INVALID, json_pack(
            "{s:s, s:[{s:s, s:s}]}", "error", "id: a job's id cannot "
            "change", "errors", "field", "id", "message", "id: a job's id "
            "cannot change"));
        return HG_ERROR;
    }
    merged = hg_jobdef_merge(json_deep_copy(old), cmd->definition);
    if (merged == NULL
        || json_object_set_new(merged, "id", json_string(cmd->id)) != 0)
    {
        json_decref(merged);
        hg_jobdef_refuse(m, cmd, HG_ERROR, "out of memory");
        return HG_ERROR;
    }
    json_decref(cmd->definition);
    cmd->definition = merged;
    cmd->op = HG_JOBDEF_REPLACE;
    return HG_OK;
}

/* What is wrong with an import's job DEF (number I, id ID) that can be
 * said without the reader, into MESSAGE; false when nothing is. SEEN: the
 * ids before it. */
static bool
hg_jobdef_import_wrong(hg_master_t *m, const json_t *def, size_t i,
                       const char *id, const json_t *seen, char *message,
                       size_t len)
{
    hg_job_t *job;

    if (!json_is_object(def)) {
        snprintf(message, len, "jobs[%zu]: a job definition is a JSON "
                 "object", i);
    } else if (id == NULL || !hg_conf_id_ok(id)) {
        snprintf(message, len, "jobs[%zu]: id: is required: 1-128 of A-Z "
                 "a-z 0-9 . _ -", i);
    } else if (json_object_get(seen, id) != NULL) {
        snprintf(message, len, "job \"%s\": id: given twice", id);
    } else if ((job = hg_job_find(m, id)) != NULL && !job->api) {
        snprintf(message, len, "job \"%s\": id: is a job of the "
                 "configuration file (edit it there and reload)", id);
    } else {
        return false;
    }
    return true;
}

/* What can be said of an import without the reader: every job an object
 * with an id of its own that no job of the file has. Each bad job is
 * named, not only the first; HG_ERROR when answered. */
static int
hg_jobdef_import_check(hg_master_t *m, hg_jobdef_cmd_t *cmd)
{
    json_t *problems = json_array(), *seen = json_object();
    char message[256];
    const json_t *def;
    const char *id;
    size_t i;
    int rc = HG_ERROR;

    if (problems == NULL || seen == NULL) {
        hg_jobdef_refuse(m, cmd, HG_ERROR, "out of memory");
        goto done;
    }
    if (!json_is_array(cmd->definition)
        || json_array_size(cmd->definition) == 0)
    {
        hg_jobdef_refuse(m, cmd, HG_REPLY_INVALID, "jobs: a list of one job "
                         "definition or more is required");
        goto done;
    }
    json_array_foreach(cmd->definition, i, def) {
        id = json_string_value(json_object_get(def, "id"));
        if (hg_jobdef_import_wrong(m, def, i, id, seen, message,
                                   sizeof(message)))
        {
            json_array_append_new(problems, json_pack(
                "{s:s?, s:I, s:s, s:s}", "job", id != NULL
                && hg_conf_id_ok(id) ? id : NULL, "index", (json_int_t) i,
                "field", "id", "message", message));
        } else {
            json_object_set(seen, id, json_true());
        }
    }
    if (json_array_size(problems) > 0) {
        hg_jobdef_finish(m, cmd, HG_REPLY_INVALID, json_pack(
            "{s:O, s:O}", "error", json_object_get(json_array_get(problems, 0),
                                                    "message"),
            "errors", problems));
        goto done;
    }
    rc = HG_OK;

done:
    json_decref(problems);
    json_decref(seen);
    return rc;
}

/* The definitions of CMD read by a cycle reader; then checked. */
static void
hg_jobdef_check(hg_master_t *m, hg_jobdef_cmd_t *cmd)
{
    json_t *list = cmd->op == HG_JOBDEF_IMPORT || cmd->op == HG_JOBDEF_PEER
                   ? json_incref(cmd->definition)
                   : json_pack("[O]", cmd->definition);
    char err[512];

    if (list == NULL) {
        hg_jobdef_refuse(m, cmd, HG_ERROR, "out of memory");
        return;
    }
    if (hg_reload_check(m, list, hg_jobdef_checked, cmd, err, sizeof(err))
        != HG_OK)
    {
        hg_jobdef_refuse(m, cmd, HG_ERROR, "cannot check the jobs: %s", err);
    }
    json_decref(list);
}

/* --- a cluster's peers' changes ---------------------------------------- */

/* The peers' records (CMD->records, {id: record or null}) in force here:
 * the deleted ones removed, the others (checked: CMD->cycle) added or
 * replaced, each said as the API's own changes are, by another instance. */
static void
hg_jobdef_peer_apply(hg_master_t *m, hg_jobdef_cmd_t *cmd)
{
    hg_log_field_t field = HG_LOG_STR("by", cmd->actor);
    const char *id;
    json_t *record;
    hg_job_t *job;
    bool added;
    int rc;

    m->applying_peer = true;
    rc = cmd->cycle != NULL ? hg_reload_apply_jobs(m, cmd->cycle) : HG_OK;
    m->applying_peer = false;
    if (rc != HG_OK) {
        hg_log(HG_LOG_ERROR, "out of memory putting another instance's "
               "change of API jobs in force; a reload or restart applies "
               "it");
        hg_jobdef_finish(m, cmd, HG_ERROR, NULL);
        return;
    }
    json_object_foreach(cmd->records, id, record) {
        if (json_is_null(record)) {
            job = hg_job_find(m, id);
            if (job != NULL) {
                hg_reload_remove_job(m, job);
            }
            (void) json_object_del(m->api_jobs, id);
            hg_log_event(HG_LOG_INFO, "job_deleted", id, NULL, &field, 1,
                         "job \"%s\" deleted by %s", id, cmd->actor);
            hg_notice_job(m, id, "deleted", cmd->actor);
            continue;
        }
        added = json_object_get(m->api_jobs, id) == NULL;
        if (json_object_set(m->api_jobs, id, record) != 0) {
            hg_log(HG_LOG_ERROR, "out of memory keeping job \"%s\" of "
                   "another instance", id);
            continue;
        }
        hg_jobdef_say(m, cmd, id, added);
    }
    hg_jobdef_finish(m, cmd, HG_OK, NULL);
}

/* The peers' changes: what concerns a job of this instance's file is
 * left out (its file decides it here), a deletion of a job not here
 * changes nothing; the jobs added or replaced are checked first. */
static void
hg_jobdef_peer_start(hg_master_t *m, hg_jobdef_cmd_t *cmd)
{
    json_t *defs = json_array(), *keep = json_object(), *record;
    const char *id;
    hg_job_t *job;

    if (defs == NULL || keep == NULL) {
        json_decref(defs);
        json_decref(keep);
        hg_jobdef_refuse(m, cmd, HG_ERROR, "out of memory");
        return;
    }
    json_object_foreach(cmd->records, id, record) {
        job = hg_job_find(m, id);
        if (job != NULL && !job->api) {
            hg_jobdef_peer_keep_one(m, id, record);
            hg_log_event(HG_LOG_WARN, "job_refused", id, NULL, NULL, 0,
                         "another instance of the cluster changed API job "
                         "\"%s\", which is a job of this instance's "
                         "configuration file: left as the file says", id);
            continue;
        }
        if (json_is_null(record) && json_object_get(m->api_jobs, id) == NULL
            && job == NULL)
        {
            continue;                   /* deleted, and not here */
        }
        if (json_object_set(keep, id, record) != 0
            || (!json_is_null(record)
                && json_array_append(defs, json_object_get(record,
                                                           "definition"))
                   != 0))
        {
            json_decref(defs);
            json_decref(keep);
            hg_jobdef_refuse(m, cmd, HG_ERROR, "out of memory");
            return;
        }
    }
    json_decref(cmd->records);
    cmd->records = keep;
    json_decref(cmd->definition);
    cmd->definition = defs;
    if (json_array_size(defs) == 0) {
        hg_jobdef_peer_apply(m, cmd);   /* deletions only */
        return;
    }
    hg_jobdef_check(m, cmd);
}

/* A peer's change of job ID (RECORD, or null: deleted), queued as a
 * command of its own; out of memory, kept for the next reload. */
static void
hg_jobdef_peer_submit(hg_master_t *m, const char *id, json_t *record)
{
    json_t *one = json_pack("{s:O}", id, record);

    if (one == NULL
        || hg_jobdef_submit(m, HG_JOBDEF_PEER, id, NULL,
                            "another instance of the cluster", NULL,
                            NULL) != HG_OK)
    {
        json_decref(one);
        hg_log(HG_LOG_ERROR, "out of memory: another instance's change "
               "of API job \"%s\" is applied at the next reload or "
               "restart", id);
        hg_jobdef_peer_keep_one(m, id, record);
        return;
    }
    m->jobdef_tail->records = one;
}

/* The peers' changes read since the last turn, a command for each job:
 * each is checked alone, so a job this instance refuses (one of a module
 * it does not load, say) holds back none of the others. */
void
hg_jobdef_peer(hg_master_t *m)
{
    json_t *changes, *record;
    const char *id;

    if (m->store == NULL || (changes = hg_store_peer_jobs(m->store)) == NULL)
    {
        return;
    }
    json_object_foreach(changes, id, record) {
        hg_jobdef_peer_forget(m, id);   /* this change is newer */
        hg_jobdef_peer_submit(m, id, record);
    }
    json_decref(changes);
}

void
hg_jobdef_peer_retry(hg_master_t *m)
{
    json_t *refused = m->peer_refused, *record;
    const char *id;

    if (refused == NULL) {
        return;
    }
    m->peer_refused = NULL;             /* a refusal again keeps it again */
    json_object_foreach(refused, id, record) {
        hg_log(HG_LOG_INFO, "another instance's change of API job \"%s\", "
               "refused here before, is checked again after the reload", id);
        hg_jobdef_peer_submit(m, id, record);
    }
    json_decref(refused);
}

/* What can be said without the reader: the job's existence and owner. */
static void
hg_jobdef_start(hg_master_t *m, hg_jobdef_cmd_t *cmd)
{
    hg_job_t *job = hg_job_find(m, cmd->id);

    if (m->stopping || m->quitting) {
        hg_jobdef_refuse(m, cmd, HG_ERROR, "the daemon is shutting down");
        return;
    }
    if (cmd->op == HG_JOBDEF_IMPORT) {
        if (hg_jobdef_import_check(m, cmd) == HG_OK) {
            hg_jobdef_check(m, cmd);
        }
        return;
    }
    if (cmd->op == HG_JOBDEF_PEER) {
        hg_jobdef_peer_start(m, cmd);
        return;
    }
    if (cmd->op != HG_JOBDEF_DELETE && !json_is_object(cmd->definition)) {
        hg_jobdef_refuse(m, cmd, HG_REPLY_INVALID, "a job definition is a "
                         "JSON object: { \"id\": \"...\", \"type\": \"...\","
                         " ... }");
        return;
    }
    if (!hg_conf_id_ok(cmd->id)) {
        hg_jobdef_refuse_id(m, cmd);
        return;
    }
    if (cmd->op == HG_JOBDEF_CREATE && job != NULL) {
        hg_jobdef_refuse(m, cmd, HG_REPLY_EXISTS, "job \"%s\" exists already"
                         " (defined %s)", cmd->id, job->api
                         ? "through the API" : "in the configuration file");
        return;
    }
    if (cmd->op != HG_JOBDEF_CREATE && job == NULL) {
        hg_jobdef_refuse(m, cmd, HG_AGAIN, "no job \"%s\"", cmd->id);
        return;
    }
    if (cmd->op != HG_JOBDEF_CREATE && !job->api) {
        hg_jobdef_refuse(m, cmd, HG_REPLY_READ_ONLY, "job \"%s\" is defined "
                         "in the configuration file: edit it there and "
                         "reload", cmd->id);
        return;
    }
    if (cmd->op == HG_JOBDEF_DELETE) {
        cmd->records = json_pack("{s:n}", cmd->id);
        if (cmd->records == NULL) {
            hg_jobdef_refuse(m, cmd, HG_ERROR, "out of memory");
            return;
        }
        hg_jobdef_store(m, cmd);
        return;
    }
    if (cmd->op == HG_JOBDEF_PATCH && hg_jobdef_patch(m, cmd) != HG_OK) {
        return;
    }
    hg_jobdef_check(m, cmd);
}

bool
hg_jobdef_pump(hg_master_t *m)
{
    hg_jobdef_cmd_t *cmd = m->jobdef_head;

    if (cmd == NULL || m->jobdef_current != NULL || hg_reload_busy(m)) {
        return false;
    }
    m->jobdef_head = cmd->next;
    if (m->jobdef_head == NULL) {
        m->jobdef_tail = NULL;
    }
    cmd->next = NULL;
    m->jobdef_current = cmd;
    hg_jobdef_start(m, cmd);
    return true;
}

static int
hg_jobdef_by_id(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

json_t *
hg_jobdef_export(hg_master_t *m)
{
    size_t n = json_object_size(m->api_jobs), i = 0;
    const char **ids = calloc(n + 1, sizeof(*ids));
    json_t *list = json_array(), *record;
    const char *id;

    if (ids == NULL || list == NULL) {
        goto failed;
    }
    json_object_foreach(m->api_jobs, id, record) {
        ids[i++] = id;
    }
    qsort(ids, n, sizeof(*ids), hg_jobdef_by_id);
    for (i = 0; i < n; i++) {
        record = json_object_get(m->api_jobs, ids[i]);
        if (json_array_append(list, json_object_get(record, "definition"))
            != 0)
        {
            goto failed;
        }
    }
    free(ids);
    return json_pack("{s:o}", "jobs", list);

failed:
    free(ids);
    json_decref(list);
    return NULL;
}

bool
hg_jobdef_busy(const hg_master_t *m)
{
    return m->jobdef_current != NULL;
}

void
hg_jobdef_free_all(hg_master_t *m)
{
    hg_jobdef_cmd_t *cmd;

    if (m->jobdef_current != NULL) {
        hg_jobdef_refuse(m, m->jobdef_current, HG_ERROR,
                         "the daemon is shutting down");
    }
    while ((cmd = m->jobdef_head) != NULL) {
        m->jobdef_head = cmd->next;
        hg_jobdef_refuse(m, cmd, HG_ERROR, "the daemon is shutting down");
    }
    m->jobdef_tail = NULL;
    json_decref(m->peer_refused);
    m->peer_refused = NULL;
}
