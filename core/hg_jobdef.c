/*
 * hg_jobdef.c: jobs defined through the master's surface (the admin
 * API's POST, PUT and DELETE /jobs), beside the file's.
 *
 * It owns the set of those jobs (m->api_jobs, as the store keeps them)
 * and the life of each command on it: queued, one at a time; a job added
 * or replaced is checked by a cycle reader against the configuration in
 * force, as a reload would check it (module, keys, validate, schedule,
 * time zone: hg_reload_check), then written to the store, and only then
 * put in force (hg_reload_apply_jobs) and answered, so a job the caller
 * was told exists survives a kill -9, and one refused changed nothing.
 * A reload (SIGHUP) hands the set to its reader with the file, and waits
 * while a command is in flight: a cycle read without it would undo it.
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
    char *id;
    json_t *definition;             /* CREATE REPLACE */
    char *actor;
    hg_master_reply_pt reply;
    void *data;
    hg_cycle_t *cycle;              /* checked, to apply once written */
    json_t *record;                 /* what the store keeps */
} hg_jobdef_cmd_t;

static void
hg_jobdef_cmd_free(hg_jobdef_cmd_t *cmd)
{
    hg_cycle_destroy(cmd->cycle);
    json_decref(cmd->definition);
    json_decref(cmd->record);
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

    if (op != HG_JOBDEF_DELETE && op != HG_JOBDEF_PATCH) {
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
 * One problem as the caller reads it: {field, message}. The reader's
 * messages about a job read `job "ID": KEY: why` (the file's `id` label
 * and a module's own messages alike), or `unknown key "KEY" in job ...`;
 * the field is KEY when there is one.
 */
static json_t *
hg_jobdef_problem(const char *id, const char *message)
{
    char label[HG_JOBDEF_ID_MAX + 16], field[128];
    const char *why = message;
    size_t n;

    snprintf(label, sizeof(label), "job \"%s\": ", id);
    if (strncmp(why, label, strlen(label)) == 0) {
        why += strlen(label);
    }
    /* the key table's own words: unknown key "K" in job "ID" (...) */
    if (strncmp(why, "unknown key \"", 13) == 0) {
        why += 13;
        n = strcspn(why, "\"");
    } else {
        n = strcspn(why, ":");
    }
    if ((why[n] == ':' || why[n] == '"') && n > 0 && n < sizeof(field)
        && strcspn(why, " \t\"") >= n)
    {
        memcpy(field, why, n);
        field[n] = '\0';
        return json_pack("{s:s, s:s}", "field", field, "message", message);
    }
    return json_pack("{s:n, s:s}", "field", "message", message);
}

static json_t *
hg_jobdef_invalid(const hg_jobdef_cmd_t *cmd, const hg_conf_errors_t *errors)
{
    json_t *list = json_array();
    size_t i;

    for (i = 0; list != NULL && i < errors->count; i++) {
        json_array_append_new(list, hg_jobdef_problem(
            cmd->id, errors->items[i].message));
    }
    return json_pack("{s:s, s:o}", "error", errors->count > 0
                     ? errors->items[0].message
                     : "the job definition was refused", "errors", list);
}

/* --- the steps ------------------------------------------------------------ */

static void hg_jobdef_stored(void *data, int rc, const json_t *answer);

/* Write RECORD as the command's job (NULL: delete it); then stored. */
static void
hg_jobdef_store(hg_master_t *m, hg_jobdef_cmd_t *cmd)
{
    hg_query_args_t args;

    if (m->store == NULL) {
        hg_jobdef_stored(m, HG_OK, NULL);
        return;
    }
    memset(&args, 0, sizeof(args));
    args.job_id = cmd->id;
    args.record = cmd->record;
    if (hg_query_start(m, HG_QUERY_PUT_JOB, &args, hg_jobdef_stored, m)
        != HG_OK)
    {
        hg_jobdef_refuse(m, cmd, HG_ERROR, "job \"%s\": cannot hand the "
                         "change to the store (out of memory): nothing "
                         "changed", cmd->id);
    }
}

static void
hg_jobdef_checked(hg_master_t *m, hg_cycle_t *cycle,
                  const hg_conf_errors_t *errors, void *data)
{
    hg_jobdef_cmd_t *cmd = data;
    const json_t *old = json_object_get(m->api_jobs, cmd->id);
    json_t *created_by, *created_at;
    int64_t now = hg_now_ms();

    if (m->stopping || m->quitting) {
        hg_cycle_destroy(cycle);
        hg_jobdef_refuse(m, cmd, HG_ERROR, "the daemon is shutting down");
        return;
    }
    if (cycle == NULL) {
        hg_log_event(HG_LOG_INFO, "job_refused", cmd->id, NULL, NULL, 0,
                     "job \"%s\" from %s refused: %s", cmd->id, cmd->actor,
                     errors->count > 0 ? errors->items[0].message : "?");
        hg_jobdef_finish(m, cmd, HG_REPLY_INVALID,
                         hg_jobdef_invalid(cmd, errors));
        return;
    }
    cmd->cycle = cycle;
    if (cycle->njobs != 1 || strcmp(cycle->jobs[0].conf->id, cmd->id) != 0) {
        hg_jobdef_refuse(m, cmd, HG_ERROR, "job \"%s\": the configuration "
                         "reader answered for another job", cmd->id);
        return;
    }
    /* A replaced job keeps its creator and birth. */
    created_by = old != NULL ? json_incref(json_object_get(old, "created_by"))
                             : json_string(cmd->actor);
    created_at = old != NULL ? json_incref(json_object_get(old, "created_at"))
                             : json_integer(now);
    cmd->record = json_pack("{s:O, s:o, s:o, s:I}",
                            "definition", cmd->definition,
                            "created_by", created_by,
                            "created_at", created_at,
                            "updated_at", (json_int_t) now);
    if (cmd->record == NULL) {
        hg_jobdef_refuse(m, cmd, HG_ERROR, "out of memory");
        return;
    }
    hg_jobdef_store(m, cmd);
}

/* The store has the change: now it is put in force, and answered. */
static void
hg_jobdef_stored(void *data, int rc, const json_t *answer)
{
    hg_master_t *m = data;
    hg_jobdef_cmd_t *cmd = m->jobdef_current;
    hg_log_field_t field;
    hg_job_t *job;

    HG_UNUSED(answer);
    if (cmd == NULL) {
        return;
    }
    if (rc != HG_OK) {
        hg_jobdef_refuse(m, cmd, HG_ERROR, "job \"%s\": the store could not "
                         "write the change (the log says why): nothing "
                         "changed", cmd->id);
        return;
    }
    field = (hg_log_field_t) HG_LOG_STR("by", cmd->actor);
    if (cmd->op == HG_JOBDEF_DELETE) {
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
    if (hg_reload_apply_jobs(m, cmd->cycle) != HG_OK
        || json_object_set(m->api_jobs, cmd->id, cmd->record) != 0
        || (job = hg_job_find(m, cmd->id)) == NULL)
    {
        hg_log(HG_LOG_ERROR, "job \"%s\": out of memory putting it in force;"
               " the store has it, a reload or restart applies it", cmd->id);
        hg_jobdef_refuse(m, cmd, HG_ERROR, "job \"%s\": out of memory "
                         "putting it in force", cmd->id);
        return;
    }
    hg_log_event(HG_LOG_INFO, cmd->op == HG_JOBDEF_CREATE ? "job_added"
                 : "job_replaced", cmd->id, NULL, &field, 1,
                 "job \"%s\" %s by %s", cmd->id, cmd->op == HG_JOBDEF_CREATE
                 ? "added" : "replaced", cmd->actor);
    hg_notice_job(m, cmd->id, cmd->op == HG_JOBDEF_CREATE ? "added"
                                                          : "replaced",
                  cmd->actor);
    hg_jobdef_finish(m, cmd, HG_OK, hg_jobdef_job_json(m, job, cmd->record));
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

/* What can be said without the reader: the job's existence and owner. */
static void
hg_jobdef_start(hg_master_t *m, hg_jobdef_cmd_t *cmd)
{
    hg_job_t *job = hg_job_find(m, cmd->id);
    char err[512];

    if (m->stopping || m->quitting) {
        hg_jobdef_refuse(m, cmd, HG_ERROR, "the daemon is shutting down");
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
        hg_jobdef_store(m, cmd);
        return;
    }
    if (cmd->op == HG_JOBDEF_PATCH && hg_jobdef_patch(m, cmd) != HG_OK) {
        return;
    }
    if (hg_reload_check(m, cmd->definition, hg_jobdef_checked, cmd, err,
                        sizeof(err)) != HG_OK)
    {
        hg_jobdef_refuse(m, cmd, HG_ERROR, "job \"%s\": cannot check it: %s",
                         cmd->id, err);
    }
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
}
