#include "hg_core.h"

/*
 * hg_cycle_json.c: a checked cycle as a JSON document, and back.
 *
 * The cycle reader (hg_cycle_reader.c) builds a cycle in a process of its
 * own, where module code may crash or hang, and hands it to the master in
 * this form; the master rebuilds the cycle from it without running any
 * module code and without reading the file again.
 *
 * The document carries what the reader established: the top-level
 * configuration, walked through the same key table that read it
 * (hg_conf_table.h; a key of a type this file cannot carry is an error,
 * never a silent loss), and each job as its definition, which the master
 * turns back into a job through the very reader the admin API uses
 * (hg_conf_job_from_reader), so every derived field comes from one code.
 * Schedules and time zones are parsed again on the master's side: they are
 * core code, and sharing a parsed expression between jobs is cheap there.
 *
 * This file never runs module code, and does not even open the modules
 * (hg_cycle_open_modules does, in the master's own thread).
 */

#include "hg_cycle.h"
#include "hg_conf_table.h"
#include "hg_map.h"

/* --- to JSON ------------------------------------------------------------ */

static int hg_cj_section_to(const hg_conf_section_t *sec, const char *base,
                            json_t *out, char *err, size_t errlen);

static json_t *
hg_cj_strings_to(char *const *items, size_t n)
{
    json_t *a = json_array();
    size_t i;

    for (i = 0; a != NULL && i < n; i++) {
        if (json_array_append_new(a, json_string(items[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *
hg_cj_json_or_null(const json_t *v)
{
    return v != NULL ? json_deep_copy(v) : json_null();
}

static json_t *
hg_cj_tokens_to(const hg_conf_t *conf, char *err, size_t errlen)
{
    json_t *a = json_array(), *t;
    size_t i;

    for (i = 0; a != NULL && i < conf->api.ntokens; i++) {
        t = json_object();
        if (t == NULL || json_array_append_new(a, t) != 0
            || hg_cj_section_to(&hg_conf_token_section,
                                (const char *) &conf->api.tokens[i], t, err,
                                errlen) != HG_OK)
        {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* One key's value, or NULL (err set) when it cannot be carried. An unset
 * optional value is JSON null. */
static json_t *
hg_cj_key_to(const hg_conf_key_t *key, const char *base, char *err,
             size_t errlen)
{
    const char *field = base + key->offset;
    const char *s;
    json_t *v;

    switch (key->type) {
    case HG_CONF_BOOL:
        return json_boolean(*(const bool *) field);
    case HG_CONF_INT:
    case HG_CONF_INT_AUTO:
    case HG_CONF_ENUM:
        return json_integer(*(const int *) field);
    case HG_CONF_REAL:
        return json_real(*(const double *) field);
    case HG_CONF_DURATION:
        return json_integer(*(const int64_t *) field);
    case HG_CONF_SIZE:
        return json_integer((json_int_t) *(const uint64_t *) field);
    case HG_CONF_STRING:
    case HG_CONF_PATH:
    case HG_CONF_ENUM_STRING:
        s = *(char *const *) field;
        return s != NULL ? json_string(s) : json_null();
    case HG_CONF_STRING_LIST:
        return hg_cj_strings_to(*(char **const *) field,
                                *(const size_t *) (base + key->offset2));
    case HG_CONF_STRING_ARRAY:
        v = *(json_t *const *) field;
        return v != NULL ? json_deep_copy(v) : json_null();
    case HG_CONF_GROUP:
        v = json_object();
        if (v != NULL && hg_cj_section_to(key->section, field, v, err, errlen)
                         != HG_OK)
        {
            json_decref(v);
            return NULL;
        }
        if (v != NULL && (key->flags & HG_CONF_PRESENCE)
            && json_object_set_new(v, "(present)",
                                   json_boolean(*(const bool *)
                                                (base + key->offset2))) != 0)
        {
            json_decref(v);
            return NULL;
        }
        return v;
    case HG_CONF_HANDLER:
        if (strcmp(key->name, "tokens") == 0) {
            return hg_cj_tokens_to((const hg_conf_t *) base, err, errlen);
        }
        if (strcmp(key->name, "channels") == 0) {
            /* with defaults.notify: the checks of API jobs need both */
            return json_pack("{s:o,s:o}", "channels",
                             hg_cj_json_or_null(((const hg_conf_t *)
                                                 base)->channels),
                             "notify",
                             hg_cj_json_or_null(((const hg_conf_t *)
                                                 base)->notify));
        }
        break;
    }
    snprintf(err, errlen, "the configuration key \"%s\" cannot be handed "
             "from the configuration reader to the master", key->name);
    return NULL;
}

static int
hg_cj_section_to(const hg_conf_section_t *sec, const char *base, json_t *out,
                 char *err, size_t errlen)
{
    size_t i;
    json_t *v;

    for (; sec != NULL; base += sec->also_offset, sec = sec->also) {
        for (i = 0; i < sec->nkeys; i++) {
            const hg_conf_key_t *key = &sec->keys[i];

            if (sec == &hg_conf_root_section && strcmp(key->name, "jobs") == 0)
            {
                continue;               /* carried apart, as definitions */
            }
            v = hg_cj_key_to(key, base, err, errlen);
            if (v == NULL) {
                if (err[0] == '\0') {
                    snprintf(err, errlen, "out of memory");
                }
                return HG_ERROR;
            }
            if (json_object_set_new(out, key->name, v) != 0) {
                snprintf(err, errlen, "out of memory");
                return HG_ERROR;
            }
        }
    }
    return HG_OK;
}

json_t *
hg_cycle_to_json(const hg_cycle_t *cycle, char *err, size_t errlen)
{
    const hg_conf_t *conf = cycle->conf;
    json_t *doc, *top, *jobs, *j;
    size_t i;

    err[0] = '\0';
    /* each made as it goes in: json_object_set_new takes it (NULL
     * included), so a refusal leaves nothing outside doc */
    doc = json_object();
    if (doc == NULL
        || json_object_set_new(doc, "conf", top = json_object()) != 0
        || json_object_set_new(doc, "jobs", jobs = json_array()) != 0)
    {
        goto nomem;
    }
    if (hg_cj_section_to(&hg_conf_root_section, (const char *) conf, top,
                         err, errlen) != HG_OK)
    {
        json_decref(doc);
        return NULL;
    }
    if (json_object_set_new(doc, "file", json_string(conf->file)) != 0
        || json_object_set_new(doc, "prefix", json_string(conf->prefix)) != 0
        || json_object_set_new(doc, "module_sections",
                               json_deep_copy(conf->modules.sections)) != 0
        || json_object_set_new(doc, "module_section_lines",
                               json_deep_copy(conf->modules.section_lines))
           != 0)
    {
        goto nomem;
    }
    for (i = 0; i < conf->njobs; i++) {
        const hg_job_conf_t *job = &conf->jobs[i];

        j = json_pack("{sOsssisb}", "definition", job->definition,
                      "file", job->file ? job->file : conf->file,
                      "line", job->line, "api", job->api);
        if (j == NULL || json_array_append_new(jobs, j) != 0) {
            goto nomem;
        }
    }
    return doc;

nomem:
    json_decref(doc);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

/* --- from JSON ---------------------------------------------------------- */

static int hg_cj_section_from(const hg_conf_section_t *sec, char *base,
                              const json_t *in, char *err, size_t errlen);

static int
hg_cj_strings_from(const json_t *a, char ***items, size_t *n)
{
    size_t i;

    *items = NULL;
    *n = 0;
    if (json_array_size(a) == 0) {
        return HG_OK;
    }
    *items = calloc(json_array_size(a), sizeof(**items));
    if (*items == NULL) {
        return HG_ERROR;
    }
    for (i = 0; i < json_array_size(a); i++) {
        const char *s = json_string_value(json_array_get(a, i));

        (*items)[i] = strdup(s != NULL ? s : "");
        if ((*items)[i] == NULL) {
            return HG_ERROR;
        }
        (*n)++;
    }
    return HG_OK;
}

static int
hg_cj_channels_from(hg_conf_t *conf, const json_t *v)
{
    const json_t *c = json_object_get(v, "channels");
    const json_t *n = json_object_get(v, "notify");

    json_decref(conf->channels);
    json_decref(conf->notify);
    conf->channels = json_is_array(c) ? json_deep_copy(c) : NULL;
    conf->notify = json_is_object(n) ? json_deep_copy(n) : NULL;
    return (json_is_array(c) && conf->channels == NULL)
           || (json_is_object(n) && conf->notify == NULL) ? HG_ERROR : HG_OK;
}

static int
hg_cj_tokens_from(hg_conf_t *conf, const json_t *a, char *err, size_t errlen)
{
    size_t i, n = json_array_size(a);

    if (n == 0) {
        return HG_OK;
    }
    conf->api.tokens = calloc(n, sizeof(*conf->api.tokens));
    if (conf->api.tokens == NULL) {
        return HG_ERROR;
    }
    for (i = 0; i < n; i++) {
        conf->api.ntokens++;
        if (hg_cj_section_from(&hg_conf_token_section,
                               (char *) &conf->api.tokens[i],
                               json_array_get(a, i), err, errlen) != HG_OK)
        {
            return HG_ERROR;
        }
    }
    return HG_OK;
}

static int
hg_cj_key_from(const hg_conf_key_t *key, char *base, const json_t *v,
               char *err, size_t errlen)
{
    char *field = base + key->offset;
    const char *s;

    switch (key->type) {
    case HG_CONF_BOOL:
        *(bool *) field = json_is_true(v);
        return HG_OK;
    case HG_CONF_INT:
    case HG_CONF_INT_AUTO:
    case HG_CONF_ENUM:
        *(int *) field = (int) json_integer_value(v);
        return HG_OK;
    case HG_CONF_REAL:
        *(double *) field = json_number_value(v);
        return HG_OK;
    case HG_CONF_DURATION:
        *(int64_t *) field = json_integer_value(v);
        return HG_OK;
    case HG_CONF_SIZE:
        *(uint64_t *) field = (uint64_t) json_integer_value(v);
        return HG_OK;
    case HG_CONF_STRING:
    case HG_CONF_PATH:
    case HG_CONF_ENUM_STRING:
        free(*(char **) field);
        s = json_string_value(v);
        *(char **) field = s != NULL ? strdup(s) : NULL;
        return s == NULL || *(char **) field != NULL ? HG_OK : HG_ERROR;
    case HG_CONF_STRING_LIST:
        return hg_cj_strings_from(v, (char ***) field,
                                  (size_t *) (base + key->offset2));
    case HG_CONF_STRING_ARRAY:
        json_decref(*(json_t **) field);
        *(json_t **) field = json_is_array(v) ? json_deep_copy(v) : NULL;
        return !json_is_array(v) || *(json_t **) field != NULL
               ? HG_OK : HG_ERROR;
    case HG_CONF_GROUP:
        if (key->flags & HG_CONF_PRESENCE) {
            *(bool *) (base + key->offset2) =
                json_is_true(json_object_get(v, "(present)"));
        }
        return hg_cj_section_from(key->section, field, v, err, errlen);
    case HG_CONF_HANDLER:
        if (strcmp(key->name, "tokens") == 0) {
            return hg_cj_tokens_from((hg_conf_t *) base, v, err, errlen);
        }
        if (strcmp(key->name, "channels") == 0) {
            return hg_cj_channels_from((hg_conf_t *) base, v);
        }
        break;
    }
    snprintf(err, errlen, "the configuration key \"%s\" cannot be taken "
             "from the configuration reader", key->name);
    return HG_ERROR;
}

static int
hg_cj_section_from(const hg_conf_section_t *sec, char *base,
                   const json_t *in, char *err, size_t errlen)
{
    size_t i;

    for (; sec != NULL; base += sec->also_offset, sec = sec->also) {
        for (i = 0; i < sec->nkeys; i++) {
            const hg_conf_key_t *key = &sec->keys[i];
            const json_t *v = json_object_get(in, key->name);

            if (sec == &hg_conf_root_section && strcmp(key->name, "jobs") == 0)
            {
                continue;
            }
            if (v == NULL) {
                snprintf(err, errlen, "the configuration reader's result "
                         "has no key \"%s\"", key->name);
                return HG_ERROR;
            }
            if (hg_cj_key_from(key, base, v, err, errlen) != HG_OK) {
                if (err[0] == '\0') {
                    snprintf(err, errlen, "out of memory");
                }
                return HG_ERROR;
            }
        }
    }
    return HG_OK;
}

hg_conf_t *
hg_cycle_conf_from_json(const json_t *doc, const char *prefix,
                        hg_conf_errors_t *errors)
{
    const char *file = json_string_value(json_object_get(doc, "file"));
    const char *conf_prefix =
        json_string_value(json_object_get(doc, "prefix"));
    const json_t *jobs = json_object_get(doc, "jobs");
    hg_conf_t *conf;
    char err[512];
    size_t i;

    err[0] = '\0';
    conf = calloc(1, sizeof(*conf));
    if (conf == NULL) {
        hg_conf_error_add(errors, file, 0, "out of memory");
        return NULL;
    }
    conf->file = strdup(file != NULL ? file : "");
    conf->prefix = strdup(conf_prefix != NULL ? conf_prefix : prefix);
    conf->modules.sections =
        json_deep_copy(json_object_get(doc, "module_sections"));
    conf->modules.section_lines =
        json_deep_copy(json_object_get(doc, "module_section_lines"));
    if (conf->file == NULL || conf->prefix == NULL
        || !json_is_object(conf->modules.sections)
        || !json_is_object(conf->modules.section_lines))
    {
        snprintf(err, sizeof(err), "the configuration reader's result is "
                 "incomplete");
        goto failed;
    }
    if (hg_cj_section_from(&hg_conf_root_section, (char *) conf,
                           json_object_get(doc, "conf"), err, sizeof(err))
        != HG_OK)
    {
        goto failed;
    }
    if (json_array_size(jobs) > 0) {
        conf->jobs = calloc(json_array_size(jobs), sizeof(*conf->jobs));
        if (conf->jobs == NULL) {
            snprintf(err, sizeof(err), "out of memory");
            goto failed;
        }
    }
    for (i = 0; i < json_array_size(jobs); i++) {
        const json_t *j = json_array_get(jobs, i);
        hg_job_conf_t *job = &conf->jobs[conf->njobs];
        const char *jfile = json_string_value(json_object_get(j, "file"));
        size_t before = errors->count;

        /* The reader checked it: a problem now is the hand-over's. */
        if (hg_conf_job_from_reader(conf, json_object_get(j, "definition"),
                                  job, errors) != HG_OK)
        {
            for (; before < errors->count; before++) {
                if (errors->items[before].file == NULL && jfile != NULL) {
                    errors->items[before].file = strdup(jfile);
                }
            }
            hg_conf_free(conf);
            return NULL;
        }
        conf->njobs++;
        job->file = jfile != NULL ? strdup(jfile) : NULL;
        job->line = (int) json_integer_value(json_object_get(j, "line"));
        job->api = json_is_true(json_object_get(j, "api"));
    }
    return conf;

failed:
    hg_conf_error_add(errors, conf->file, 0, "%s",
                      err[0] ? err : "out of memory");
    hg_conf_free(conf);
    return NULL;
}

hg_cycle_t *
hg_cycle_from_json(const json_t *doc, const char *prefix,
                   hg_conf_errors_t *errors)
{
    hg_conf_t *conf = hg_cycle_conf_from_json(doc, prefix, errors);

    if (conf == NULL) {
        return NULL;
    }
    return hg_cycle_build(conf, prefix, errors);
}
