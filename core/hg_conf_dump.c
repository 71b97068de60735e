#include "hg_core.h"

/*
 * hg_conf_dump: the effective configuration (hourglass -T) in
 * scheduler.conf syntax, written by walking the same key table that read
 * it (hg_conf_table.h).
 *
 * The output must read back as the same configuration, which fixes a few
 * rules: every "$" is written "$$" (values are already expanded and must
 * not be expanded again), durations and sizes are written exactly (never
 * rounded: "1h30m", "1536KiB"), reals with enough digits to be the same
 * double, integers beyond 32 bits with libconfig's L suffix, and paths
 * absolute. A job is written with the keys it was given, so that its
 * definition reads back unchanged; the policy values it takes from
 * `defaults` follow as comments. Tokens are masked: -T output is for
 * reading, and may be pasted into a bug report.
 *
 * hg_conf_restart_changes compares two configurations by the same text,
 * for the settings a reload cannot apply (HG_CONF_RESTART).
 */

#include "hg_conf.h"
#include "hg_conf_table.h"
#include "hg_units.h"

#define HG_DUMP_INDENT  4

static void hg_dump_key(const hg_conf_key_t *key, const char *base,
                        FILE *out, int indent);

static void
hg_dump_indent(FILE *out, int indent)
{
    fprintf(out, "%*s", indent, "");
}

int
hg_conf_dump_string(const char *s, FILE *out)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char) *s;

        switch (c) {
        case '"':  fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        case '\f': fputs("\\f", out); break;
        case '$':  fputs("$$", out); break;    /* read back without expansion */
        default:
            if (c < 0x20 || c == 0x7f) {
                fprintf(out, "\\x%02X", c);
            } else {
                fputc(c, out);
            }
            break;
        }
    }
    fputc('"', out);
    return HG_OK;
}

/* The shortest text that strtod reads back as d, always with a "." or an
 * exponent so that libconfig reads a float, not an integer. */
static void
hg_dump_real(double d, FILE *out)
{
    char buf[64];
    int prec;

    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d) {
            break;
        }
    }
    fputs(buf, out);
    if (strpbrk(buf, ".eEn") == NULL) {
        fputs(".0", out);
    }
}

static void
hg_dump_integer(json_int_t n, FILE *out)
{
    /* libconfig reads a bare integer as 32 bits, silently wrapping */
    if (n < INT32_MIN || n > INT32_MAX) {
        fprintf(out, "%" JSON_INTEGER_FORMAT "L", n);
    } else {
        fprintf(out, "%" JSON_INTEGER_FORMAT, n);
    }
}

/* A libconfig array holds scalars of one type; anything else is a list. */
static bool
hg_dump_is_array(const json_t *a)
{
    size_t i;
    int type = -1;

    for (i = 0; i < json_array_size(a); i++) {
        const json_t *e = json_array_get(a, i);
        int t = json_typeof(e);

        if (t == JSON_FALSE) {
            t = JSON_TRUE;
        }
        if (json_is_object(e) || json_is_array(e) || json_is_null(e)
            || (type != -1 && t != type)
            || (json_is_integer(e) && (json_integer_value(e) < INT32_MIN
                                       || json_integer_value(e) > INT32_MAX)))
        {
            return false;
        }
        type = t;
    }
    return true;
}

static bool
hg_dump_is_flat(const json_t *a)
{
    size_t i;

    for (i = 0; i < json_array_size(a); i++) {
        const json_t *e = json_array_get(a, i);
        if (json_is_object(e) || json_is_array(e)) {
            return false;
        }
    }
    return true;
}

int
hg_conf_dump_json(const json_t *v, FILE *out, int indent)
{
    const char *key;
    json_t *member;
    size_t i;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (json_object_size(v) == 0) {
            fputs("{ }", out);
            break;
        }
        fputs("{\n", out);
        json_object_foreach((json_t *) v, key, member) {
            hg_dump_indent(out, indent + HG_DUMP_INDENT);
            fprintf(out, "%s = ", key);
            hg_conf_dump_json(member, out, indent + HG_DUMP_INDENT);
            fputs(";\n", out);
        }
        hg_dump_indent(out, indent);
        fputs("}", out);
        break;

    case JSON_ARRAY:
        if (json_array_size(v) == 0) {
            fputs("[ ]", out);
        } else if (hg_dump_is_flat(v)) {
            bool array = hg_dump_is_array(v);

            fputs(array ? "[ " : "( ", out);
            for (i = 0; i < json_array_size(v); i++) {
                fputs(i ? ", " : "", out);
                hg_conf_dump_json(json_array_get(v, i), out, indent);
            }
            fputs(array ? " ]" : " )", out);
        } else {
            fputs("(\n", out);
            for (i = 0; i < json_array_size(v); i++) {
                hg_dump_indent(out, indent + HG_DUMP_INDENT);
                hg_conf_dump_json(json_array_get(v, i), out,
                                  indent + HG_DUMP_INDENT);
                fputs(i + 1 < json_array_size(v) ? ",\n" : "\n", out);
            }
            hg_dump_indent(out, indent);
            fputs(")", out);
        }
        break;

    case JSON_STRING:
        hg_conf_dump_string(json_string_value(v), out);
        break;
    case JSON_INTEGER:
        hg_dump_integer(json_integer_value(v), out);
        break;
    case JSON_REAL:
        hg_dump_real(json_real_value(v), out);
        break;
    case JSON_TRUE:
        fputs("true", out);
        break;
    case JSON_FALSE:
        fputs("false", out);
        break;
    default:
        /* JSON null has no libconfig form; the reader never makes one */
        fputs("\"\"", out);
        break;
    }
    return HG_OK;
}

/* Write the value of a scalar or list key (hg_dump_is_set says it is). */
static void
hg_dump_value(const hg_conf_key_t *key, const char *base, FILE *out)
{
    const char *field = base + key->offset;
    char buf[HG_UNITS_TEXT_MAX];
    size_t i, n;

    switch (key->type) {
    case HG_CONF_BOOL:
        fputs(*(const bool *) field ? "true" : "false", out);
        break;
    case HG_CONF_INT:
    case HG_CONF_INT_AUTO:
        fprintf(out, "%d", *(const int *) field);
        break;
    case HG_CONF_REAL:
        hg_dump_real(*(const double *) field, out);
        break;
    case HG_CONF_STRING:
    case HG_CONF_PATH:
    case HG_CONF_ENUM_STRING:
        hg_conf_dump_string((key->flags & HG_CONF_SECRET)
                            ? HG_CONF_MASK : *(char *const *) field, out);
        break;
    case HG_CONF_DURATION:
        fprintf(out, "\"%s\"",
                hg_format_duration(*(const int64_t *) field, buf, sizeof(buf)));
        break;
    case HG_CONF_SIZE:
        fprintf(out, "\"%s\"",
                hg_format_size(*(const uint64_t *) field, buf, sizeof(buf)));
        break;
    case HG_CONF_ENUM:
        fprintf(out, "\"%s\"", key->values[*(const int *) field]);
        break;
    case HG_CONF_STRING_LIST:
        n = *(const size_t *) (base + key->offset2);
        fputs(n == 0 ? "[ ]" : "[ ", out);
        for (i = 0; i < n; i++) {
            fputs(i ? ", " : "", out);
            hg_conf_dump_string((*(char **const *) field)[i], out);
        }
        fputs(n == 0 ? "" : " ]", out);
        break;
    case HG_CONF_STRING_ARRAY:
        hg_conf_dump_json(*(json_t *const *) field, out, 0);
        break;
    default:
        break;
    }
}

static bool
hg_dump_is_set(const hg_conf_key_t *key, const char *base)
{
    const char *field = base + key->offset;
    int v;
    size_t n;

    switch (key->type) {
    case HG_CONF_STRING:
    case HG_CONF_PATH:
    case HG_CONF_ENUM_STRING:
        return *(char *const *) field != NULL;
    case HG_CONF_STRING_ARRAY:
        return *(json_t *const *) field != NULL;
    case HG_CONF_ENUM:
        v = *(const int *) field;
        for (n = 0; key->values[n] != NULL; n++) {
        }
        return v >= 0 && (size_t) v < n;
    /* Without a default, a zero no value may take means "not set" (the
     * `limits` keys: 0 = no limit). */
    case HG_CONF_SIZE:
        return key->dflt != NULL || key->min <= 0
               || *(const uint64_t *) field != 0;
    case HG_CONF_REAL:
        return key->dflt != NULL || key->rmin <= 0.0
               || *(const double *) field != 0.0;
    case HG_CONF_INT:
        return key->dflt != NULL || key->min <= 0
               || *(const int *) field != 0;
    default:
        return true;
    }
}

int
hg_conf_dump_section(const hg_conf_section_t *sec, const char *base,
                     FILE *out, int indent)
{
    size_t i;

    for (i = 0; i < sec->nkeys; i++) {
        hg_dump_key(&sec->keys[i], base, out, indent);
    }
    if (sec->also != NULL) {
        hg_conf_dump_section(sec->also, base + sec->also_offset, out, indent);
    }
    if (sec->dump_extra != NULL) {
        sec->dump_extra(base, out, indent);
    }
    return HG_OK;
}

static void
hg_dump_key(const hg_conf_key_t *key, const char *base, FILE *out,
            int indent)
{
    switch (key->type) {
    case HG_CONF_GROUP:
        hg_dump_indent(out, indent);
        if ((key->flags & HG_CONF_PRESENCE)
            && !*(const bool *) (base + key->offset2))
        {
            fprintf(out, "# %s = { ... };  (not configured)\n", key->name);
            return;
        }
        fprintf(out, "%s = {\n", key->name);
        hg_conf_dump_section(key->section, base + key->offset, out,
                             indent + HG_DUMP_INDENT);
        hg_dump_indent(out, indent);
        fputs("};\n", out);
        return;

    case HG_CONF_HANDLER:
        key->handler->dump(key, base, out, indent);
        return;

    default:
        hg_dump_indent(out, indent);
        if (!hg_dump_is_set(key, base)) {
            /* an optional key: say what its absence means */
            fprintf(out, "# %s: not set%s%s%s\n", key->name,
                    key->help ? " (" : "", key->help ? key->help : "",
                    key->help ? ")" : "");
            return;
        }
        fprintf(out, "%s = ", key->name);
        hg_dump_value(key, base, out);
        if (key->help != NULL) {
            fprintf(out, ";  # %s\n", key->help);
        } else {
            fputs(";\n", out);
        }
        return;
    }
}

/* `name = value;` on one line, groups included: for comments. */
static void
hg_dump_inline(const hg_conf_key_t *key, const char *base, FILE *out)
{
    size_t i;

    if (key->type != HG_CONF_GROUP && !hg_dump_is_set(key, base)) {
        return;
    }
    fprintf(out, "%s = ", key->name);
    if (key->type == HG_CONF_GROUP) {
        fputs("{ ", out);
        for (i = 0; i < key->section->nkeys; i++) {
            const hg_conf_key_t *k = &key->section->keys[i];
            if (k->type == HG_CONF_GROUP
                || hg_dump_is_set(k, base + key->offset))
            {
                hg_dump_inline(k, base + key->offset, out);
                fputs(" ", out);
            }
        }
        fputs("};", out);
        return;
    }
    hg_dump_value(key, base, out);
    fputs(";", out);
}

int
hg_conf_dump_modules(const char *base, FILE *out, int indent)
{
    const hg_conf_t *conf = (const hg_conf_t *) base;
    const char *name;
    json_t *section;

    json_object_foreach(conf->modules.sections, name, section) {
        hg_dump_indent(out, indent);
        fprintf(out, "%s = ", name);
        hg_conf_dump_json(section, out, indent);
        fputs(";\n", out);
    }
    return HG_OK;
}

int
hg_conf_dump_tokens(const hg_conf_key_t *key, const char *base, FILE *out,
                    int indent)
{
    const hg_conf_t *conf = (const hg_conf_t *) base;
    size_t i;

    hg_dump_indent(out, indent);
    if (conf->api.ntokens == 0) {
        fprintf(out, "%s = ( );\n", key->name);
        return HG_OK;
    }
    fprintf(out, "%s = (\n", key->name);
    for (i = 0; i < conf->api.ntokens; i++) {
        hg_dump_indent(out, indent + HG_DUMP_INDENT);
        fputs("{\n", out);
        hg_conf_dump_section(&hg_conf_token_section,
                             (const char *) &conf->api.tokens[i], out,
                             indent + 2 * HG_DUMP_INDENT);
        hg_dump_indent(out, indent + HG_DUMP_INDENT);
        fputs(i + 1 < conf->api.ntokens ? "},\n" : "}\n", out);
    }
    hg_dump_indent(out, indent);
    fputs(");\n", out);
    return HG_OK;
}

int
hg_conf_dump_channels(const hg_conf_key_t *key, const char *base, FILE *out,
                      int indent)
{
    const hg_conf_t *conf = (const hg_conf_t *) base;
    char d1[HG_UNITS_TEXT_MAX], d2[HG_UNITS_TEXT_MAX];
    const json_t *c;
    size_t i;

    hg_dump_indent(out, indent);
    if (conf->channels == NULL || json_array_size(conf->channels) == 0) {
        fprintf(out, "%s = ( );\n", key->name);
        return HG_OK;
    }
    fprintf(out, "%s = (\n", key->name);
    json_array_foreach(conf->channels, i, c) {
        const char *k = json_object_get(c, "url") != NULL ? "url" : "command";

        hg_dump_indent(out, indent + HG_DUMP_INDENT);
        fputs("{ name = ", out);
        hg_conf_dump_string(json_string_value(json_object_get(c, "name")),
                            out);
        fputs("; type = ", out);
        hg_conf_dump_string(json_string_value(json_object_get(c, "type")),
                            out);
        fprintf(out, "; %s = ", k);
        hg_conf_dump_string(json_string_value(json_object_get(c, k)), out);
        fprintf(out, ";\n");
        hg_dump_indent(out, indent + 2 * HG_DUMP_INDENT);
        fprintf(out, "timeout = \"%s\"; retries = %d; rate_limit = %d; "
                "rate_window = \"%s\"; }%s\n",
                hg_format_duration(json_integer_value(
                    json_object_get(c, "timeout_ms")), d1, sizeof(d1)),
                (int) json_integer_value(json_object_get(c, "retries")),
                (int) json_integer_value(json_object_get(c, "rate_limit")),
                hg_format_duration(json_integer_value(
                    json_object_get(c, "rate_window_ms")), d2, sizeof(d2)),
                i + 1 < json_array_size(conf->channels) ? "," : "");
    }
    hg_dump_indent(out, indent);
    fputs(");\n", out);
    if (conf->notify != NULL) {
        char *text = NULL, *line, *next;
        size_t len = 0;
        FILE *m = open_memstream(&text, &len);

        /* a comment on every line of the group: the dump must read back */
        if (m != NULL) {
            hg_conf_dump_json(conf->notify, m, 0);
        }
        if (m == NULL || fclose(m) != 0 || text == NULL) {
            free(text);
            text = NULL;
        }
        hg_dump_indent(out, indent);
        fputs("# defaults.notify (merged into each job without one): ", out);
        for (line = text; line != NULL; line = next) {
            next = strchr(line, '\n');
            if (next != NULL) {
                *next++ = '\0';
            }
            if (line != text) {
                hg_dump_indent(out, indent);
                fputs("#   ", out);
            }
            fputs(line, out);
            fputc('\n', out);
        }
        if (text == NULL) {
            fputs("(cannot be shown)\n", out);
        }
        free(text);
    }
    return HG_OK;
}

/* Whether the job's definition gives every member of a group key. */
static bool
hg_dump_written(const hg_job_conf_t *job, const hg_conf_key_t *key)
{
    const json_t *v = json_object_get(job->definition, key->name);
    size_t i;

    if (v == NULL) {
        return false;
    }
    if (key->type != HG_CONF_GROUP) {
        return true;
    }
    for (i = 0; i < key->section->nkeys; i++) {
        if (json_object_get(v, key->section->keys[i].name) == NULL) {
            return false;
        }
    }
    return true;
}

static void
hg_dump_job(const hg_job_conf_t *job, FILE *out, int indent)
{
    const hg_conf_section_t *sec;
    int col = 0, width = 78;
    const char *key;
    json_t *value;
    size_t i;

    hg_dump_indent(out, indent);
    fputs("{\n", out);
    json_object_foreach(job->definition, key, value) {
        hg_dump_indent(out, indent + HG_DUMP_INDENT);
        fprintf(out, "%s = ", key);
        hg_conf_dump_json(value, out, indent + HG_DUMP_INDENT);
        fputs(";\n", out);
    }

    /* What the job does not say itself it takes from `defaults`: shown as
     * comments, filled to the width, so the dump reads back exactly. */
    for (sec = &hg_conf_job_section; sec != NULL; sec = sec->also) {
        const char *base = sec == &hg_conf_job_section
            ? (const char *) job
            : (const char *) job + hg_conf_job_section.also_offset;

        for (i = 0; i < sec->nkeys; i++) {
            const hg_conf_key_t *k = &sec->keys[i];
            char *text = NULL;
            size_t len = 0;
            FILE *m;

            if ((k->dflt == NULL && k->type != HG_CONF_GROUP)
                || hg_dump_written(job, k))
            {
                continue;
            }
            m = open_memstream(&text, &len);
            if (m == NULL) {
                continue;
            }
            hg_dump_inline(k, base, m);
            if (fclose(m) != 0 || text == NULL) {
                free(text);
                continue;
            }
            if (col == 0) {
                hg_dump_indent(out, indent + HG_DUMP_INDENT);
                col = indent + HG_DUMP_INDENT
                      + fprintf(out, "# from defaults: ");
            } else if (col + 1 + (int) len > width) {
                fputs("\n", out);
                hg_dump_indent(out, indent + HG_DUMP_INDENT);
                col = indent + HG_DUMP_INDENT + fprintf(out, "#   ");
            } else {
                col += fprintf(out, " ");
            }
            fputs(text, out);
            col += (int) len;
            free(text);
        }
    }
    if (col != 0) {
        fputs("\n", out);
    }
    hg_dump_indent(out, indent);
    fputs("}", out);
}

int
hg_conf_dump_jobs(const hg_conf_key_t *key, const char *base, FILE *out,
                  int indent)
{
    const hg_conf_t *conf = (const hg_conf_t *) base;
    size_t i;

    hg_dump_indent(out, indent);
    if (conf->njobs == 0) {
        fprintf(out, "%s = ( );\n", key->name);
        return HG_OK;
    }
    fprintf(out, "%s = (\n", key->name);
    for (i = 0; i < conf->njobs; i++) {
        hg_dump_job(&conf->jobs[i], out, indent + HG_DUMP_INDENT);
        fputs(i + 1 < conf->njobs ? ",\n" : "\n", out);
    }
    hg_dump_indent(out, indent);
    fputs(");\n", out);
    return HG_OK;
}

int
hg_conf_dump(const hg_conf_t *conf, FILE *out)
{
    if (conf == NULL || out == NULL) {
        return HG_ERROR;
    }
    fprintf(out, "# hourglass %s: the effective configuration of %s\n"
            "# (prefix %s; defaults filled in, environment variables "
            "expanded,\n# paths made absolute, tokens masked)\n\n",
            HG_VERSION, conf->file, conf->prefix);
    hg_conf_dump_section(&hg_conf_root_section, (const char *) conf, out, 0);
    fflush(out);
    return ferror(out) ? HG_ERROR : HG_OK;
}

/* KEY's value in BASE as -T writes it, into BUF ("(not set)" when it has
 * none). */
static void
hg_dump_value_text(const hg_conf_key_t *key, const char *base, char *buf,
                   size_t len)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out;

    snprintf(buf, len, "(not set)");
    if (!hg_dump_is_set(key, base)) {
        return;
    }
    out = open_memstream(&text, &size);
    if (out == NULL) {
        snprintf(buf, len, "(cannot be shown)");
        return;
    }
    hg_dump_value(key, base, out);
    if (fclose(out) == 0 && text != NULL) {
        snprintf(buf, len, "%s", text);
    }
    free(text);
}

static void
hg_restart_section(const hg_conf_section_t *sec, const char *prefix,
                   const char *was, const char *now, hg_conf_change_pt cb,
                   void *data)
{
    char name[128], a[512], b[512];
    const hg_conf_key_t *key;
    bool had, has;
    size_t i;

    for (i = 0; i < sec->nkeys; i++) {
        key = &sec->keys[i];
        snprintf(name, sizeof(name), "%s%s%s", prefix, *prefix ? "." : "",
                 key->name);
        if (key->type == HG_CONF_GROUP) {
            if (key->flags & HG_CONF_PRESENCE) {
                had = *(const bool *) (was + key->offset2);
                has = *(const bool *) (now + key->offset2);
                if ((key->flags & HG_CONF_RESTART) && had != has) {
                    cb(name, had ? "a section" : "no section",
                       has ? "a section" : "no section", data);
                }
                if (!had || !has) {
                    continue;
                }
            }
            hg_restart_section(key->section, name, was + key->offset,
                               now + key->offset, cb, data);
            continue;
        }
        if (!(key->flags & HG_CONF_RESTART)) {
            continue;
        }
        hg_dump_value_text(key, was, a, sizeof(a));
        hg_dump_value_text(key, now, b, sizeof(b));
        if (strcmp(a, b) != 0) {
            cb(name, a, b, data);
        }
    }
}

void
hg_conf_restart_changes(const hg_conf_t *was, const hg_conf_t *now,
                        hg_conf_change_pt cb, void *data)
{
    hg_restart_section(&hg_conf_root_section, "", (const char *) was,
                       (const char *) now, cb, data);
}
