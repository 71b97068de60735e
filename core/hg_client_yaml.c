/*
 * hg_client_yaml.c owns reading a YAML file of jobs for `import`: libyaml
 * parses it, and what it holds becomes the JSON the API takes (jansson
 * builds it). Linked into the executable only, with the client. It reads
 * data only: no tags are honoured, no anchors followed beyond what
 * libyaml's document loader resolves, nothing is run.
 *
 * Scalars are typed as YAML's core schema types them: a quoted or block
 * scalar is a string; a plain one is null (~, null, empty), a boolean
 * (true, false, in any case), an integer or a real when it reads as one,
 * and a string otherwise. "yes" and "no" stay strings: a job key that
 * wants a boolean says so in its error.
 */

#include "hg_core.h"

#include <ctype.h>
#include <yaml.h>

#include "hg_client.h"

#define HG_YAML_DEPTH_MAX  64

static json_t *hg_yaml_node(yaml_document_t *doc, yaml_node_t *node,
                            int depth, char *err, size_t errlen);

static bool
hg_yaml_is(const char *text, const char *const *words, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcasecmp(text, words[i]) == 0) {
            return true;
        }
    }
    return false;
}

static json_t *
hg_yaml_plain(const char *text, size_t len)
{
    static const char *const nulls[] = { "~", "null" };
    static const char *const trues[] = { "true" };
    static const char *const falses[] = { "false" };
    long long n;
    double d;
    char *end;

    if (len == 0 || hg_yaml_is(text, nulls, HG_NELEMS(nulls))) {
        return json_null();
    }
    if (hg_yaml_is(text, trues, HG_NELEMS(trues))) {
        return json_true();
    }
    if (hg_yaml_is(text, falses, HG_NELEMS(falses))) {
        return json_false();
    }
    if (isdigit((unsigned char) text[0]) || ((text[0] == '-'
        || text[0] == '+') && isdigit((unsigned char) text[1])))
    {
        errno = 0;
        n = strtoll(text, &end, 10);
        if (errno == 0 && *end == '\0') {
            return json_integer((json_int_t) n);
        }
        errno = 0;
        d = strtod(text, &end);
        if (errno == 0 && *end == '\0' && strpbrk(text, "xXpP") == NULL) {
            return json_real(d);
        }
    }
    return json_stringn(text, len);
}

/*
 * jansson's NULL for a string is text that is not UTF-8 or a lack of
 * memory; only the second sets errno (ENOMEM, as malloc does), so that
 * the message can say which.
 */
static void
hg_yaml_text_error(const yaml_node_t *node, const char *what, char *err,
                   size_t errlen)
{
    if (errno == ENOMEM) {
        snprintf(err, errlen, "out of memory");
    } else {
        snprintf(err, errlen, "%zu:%zu: %s is not UTF-8 text",
                 node->start_mark.line + 1, node->start_mark.column + 1,
                 what);
    }
}

static json_t *
hg_yaml_mapping(yaml_document_t *doc, yaml_node_t *node, int depth,
                char *err, size_t errlen)
{
    yaml_node_pair_t *pair;
    yaml_node_t *key;
    json_t *obj = json_object(), *value;

    if (obj == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (pair = node->data.mapping.pairs.start;
         pair < node->data.mapping.pairs.top; pair++)
    {
        key = yaml_document_get_node(doc, pair->key);
        if (key == NULL || key->type != YAML_SCALAR_NODE) {
            snprintf(err, errlen, "%zu:%zu: a key must be a plain name",
                     node->start_mark.line + 1,
                     node->start_mark.column + 1);
            goto failed;
        }
        value = hg_yaml_node(doc, yaml_document_get_node(doc, pair->value),
                             depth + 1, err, errlen);
        if (value == NULL) {
            goto failed;
        }
        errno = 0;
        if (json_object_setn_new(obj, (const char *) key->data.scalar.value,
                                 key->data.scalar.length, value) != 0)
        {
            hg_yaml_text_error(key, "the key", err, errlen);
            goto failed;
        }
    }
    return obj;

failed:
    json_decref(obj);
    return NULL;
}

static json_t *
hg_yaml_node(yaml_document_t *doc, yaml_node_t *node, int depth, char *err,
             size_t errlen)
{
    yaml_node_item_t *item;
    json_t *v, *member;

    if (node == NULL) {
        snprintf(err, errlen, "an empty document");
        return NULL;
    }
    if (depth > HG_YAML_DEPTH_MAX) {
        snprintf(err, errlen, "%zu:%zu: nested deeper than %d levels",
                 node->start_mark.line + 1, node->start_mark.column + 1,
                 HG_YAML_DEPTH_MAX);
        return NULL;
    }
    switch (node->type) {
    case YAML_SCALAR_NODE:
        errno = 0;
        v = node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE
            ? hg_yaml_plain((const char *) node->data.scalar.value,
                            node->data.scalar.length)
            : json_stringn((const char *) node->data.scalar.value,
                           node->data.scalar.length);
        if (v == NULL) {
            hg_yaml_text_error(node, "the value", err, errlen);
        }
        return v;
    case YAML_SEQUENCE_NODE:
        v = json_array();
        for (item = node->data.sequence.items.start;
             v != NULL && item < node->data.sequence.items.top; item++)
        {
            member = hg_yaml_node(doc, yaml_document_get_node(doc, *item),
                                  depth + 1, err, errlen);
            if (member == NULL) {
                json_decref(v);
                return NULL;
            }
            if (json_array_append_new(v, member) != 0) {
                json_decref(v);
                v = NULL;               /* never a list with one missing */
            }
        }
        if (v == NULL) {
            snprintf(err, errlen, "out of memory");
        }
        return v;
    case YAML_MAPPING_NODE:
        return hg_yaml_mapping(doc, node, depth, err, errlen);
    default:
        snprintf(err, errlen, "an empty document");
        return NULL;
    }
}

/*
 * A Kubernetes-style object ({kind, metadata: {name}, spec: {...}}) as the
 * job it describes: its spec, with metadata.name as the id. Anything else
 * is taken as it is.
 */
static json_t *
hg_yaml_job(json_t *v)
{
    json_t *name = json_object_get(json_object_get(v, "metadata"), "name");
    json_t *spec = json_object_get(v, "spec"), *job;

    if (!json_is_string(name) || !json_is_object(spec)) {
        return json_incref(v);
    }
    job = json_deep_copy(spec);
    if (job != NULL && json_object_get(job, "id") == NULL
        && json_object_set(job, "id", name) != 0)
    {
        json_decref(job);
        job = NULL;                     /* out of memory, as its caller says */
    }
    return job;
}

/* Adds the jobs of one document to JOBS: a list of jobs, {jobs: [...]},
 * {kind: List, items: [...]}, or one job. */
static int
hg_yaml_add_jobs(json_t *jobs, json_t *doc)
{
    json_t *list = doc, *v;
    size_t i;

    if (json_is_array(json_object_get(doc, "jobs"))) {
        list = json_object_get(doc, "jobs");
    } else if (json_is_array(json_object_get(doc, "items"))) {
        list = json_object_get(doc, "items");
    }
    if (!json_is_array(list)) {
        return json_array_append_new(jobs, hg_yaml_job(list)) == 0
               ? HG_OK : HG_ERROR;
    }
    json_array_foreach(list, i, v) {
        if (json_array_append_new(jobs, hg_yaml_job(v)) != 0) {
            return HG_ERROR;
        }
    }
    return HG_OK;
}

/* The line and column of byte OFFSET of DATA: libyaml's reader gives
 * only the offset of the bytes it cannot decode. */
static void
hg_yaml_mark_at(const char *data, size_t len, size_t offset, yaml_mark_t *at)
{
    size_t i;

    at->line = 0;
    at->column = 0;
    for (i = 0; i < offset && i < len; i++) {
        if (data[i] == '\n') {
            at->line++;
            at->column = 0;
        } else {
            at->column++;
        }
    }
}

json_t *
hg_client_yaml_jobs(const char *data, size_t len, char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_node_t *root;
    json_t *jobs = json_array(), *v;
    bool done = false;

    if (jobs == NULL || !yaml_parser_initialize(&parser)) {
        json_decref(jobs);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *) data, len);
    /* every document of the stream ("---" between them) */
    while (!done) {
        if (!yaml_parser_load(&parser, &doc)) {
            yaml_mark_t at = parser.problem_mark;

            if (parser.error == YAML_READER_ERROR) {
                hg_yaml_mark_at(data, len, parser.problem_offset, &at);
            }
            snprintf(err, errlen, "%zu:%zu: %s%s%s", at.line + 1,
                     at.column + 1,
                     parser.context != NULL ? parser.context : "",
                     parser.context != NULL ? ": " : "",
                     parser.problem != NULL ? parser.problem : "not YAML");
            json_decref(jobs);
            jobs = NULL;
            break;
        }
        root = yaml_document_get_root_node(&doc);
        if (root == NULL) {
            done = true;                /* the end of the stream */
        } else {
            v = hg_yaml_node(&doc, root, 0, err, errlen);
            if (v == NULL || hg_yaml_add_jobs(jobs, v) != HG_OK) {
                if (v != NULL) {
                    snprintf(err, errlen, "out of memory");
                }
                json_decref(jobs);
                jobs = NULL;
                done = true;
            }
            json_decref(v);
        }
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    return jobs;
}
