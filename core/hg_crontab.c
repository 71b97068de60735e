/*
 * hg_crontab.c: `hourglass import-crontab`, cron's tables turned into
 * `jobs = ( ... );` for scheduler.conf (DESIGN.md, "Command line").
 *
 * It owns reading crontab text (a user's table, or the system format of
 * /etc/crontab and the files of /etc/cron.d, with the user column) and
 * printing the equivalent jobs. It never touches a configuration, a store or a running
 * daemon, and it changes nothing on the machine: it only reads the files
 * it is given and writes to stdout.
 *
 * What cron does and how it is carried over (cronie's entry.c, env.c and
 * do_command.c are the reference):
 * - NAME=VALUE lines (quotes optional) set the environment of the entries
 *   that follow: each job's `env`. CRON_TZ becomes a "CRON_TZ=Zone"
 *   prefix of the schedules that follow; RANDOM_DELAY (minutes, cronie)
 *   a `jitter`; SHELL other than /bin/sh an `argv` that runs it; MAILTO a
 *   comment saying what `notify` to add (cron mailed the output).
 * - A command's first unescaped "%" ends the command: the rest is its
 *   standard input, each later "%" a newline, "\%" a literal "%"; given
 *   here as a here-document, which also ends in a newline as cron's input.
 * - cron runs a command in $HOME (the user's home unless HOME= is set),
 *   never times it out, never retries it, and starts each run whatever the
 *   last one is doing: `cwd`, timeout = "0s", max_retries = 0 and
 *   overlap = "allow" say the same.
 * - Anything else (a schedule hourglass does not read, such as cronie's
 *   "~", an environment name libconfig cannot hold) is a comment saying
 *   why, in place of the line.
 */

#include "hg_core.h"

#include <pwd.h>

#include "hg_cron.h"

#define CT_LINE_MAX   8192
#define CT_ID_MAX     48

typedef struct {
    char *name;
    char *value;
} ct_var_t;

/* What the lines read so far say for the entries after them. */
typedef struct {
    const char *file;
    const char *user;               /* --user NAME, or NULL */
    bool system;                    /* the user column is there */
    ct_var_t *vars;                 /* the job's environment */
    size_t nvars;
    char *cron_tz;
    char *mailto;
    char *shell;
    long random_delay;              /* minutes; 0 = none */
} ct_table_t;

/* The output: comments and jobs in the order of the input. */
typedef struct {
    char *text;
    bool job;
} ct_item_t;

typedef struct {
    ct_item_t *items;
    size_t nitems;
    char **ids;                     /* taken, for unique ids */
    size_t nids;
    size_t njobs;
    size_t skipped;
    bool failed;                    /* out of memory */
} ct_out_t;

static const char ct_usage_text[] =
    "Usage: hourglass import-crontab [--user NAME] [--system] [FILE|- ...]\n"
    "  print the jobs of a crontab as `jobs = ( ... );` for scheduler.conf.\n"
    "  FILE is a user's crontab, or has the user column: /etc/crontab and\n"
    "  the files of /etc/cron.d, or any FILE with --system. - or none:\n"
    "  standard input. --user NAME: the jobs run as NAME (with no FILE:\n"
    "  NAME's table in /var/spool/cron/crontabs or /var/spool/cron).\n";

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int
ct_usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("hourglass: import-crontab: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    fputs(ct_usage_text, stderr);
    return 2;
}

static bool
ct_blank(int c)
{
    return c == ' ' || c == '\t';
}

static const char *
ct_skip_blanks(const char *p)
{
    while (ct_blank(*p)) {
        p++;
    }
    return p;
}


/* ---- printing ----------------------------------------------------------- */

/* A libconfig string: quotes, backslashes and control characters escaped. */
static void
ct_quote(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char) *s;
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc(c, out);
        } else if (c == '\n') {
            fputs("\\n", out);
        } else if (c == '\t') {
            fputs("\\t", out);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(out, "\\x%02x", c);
        } else {
            fputc(c, out);
        }
    }
    fputc('"', out);
}

/* The rest of a comment line: the text with tabs as spaces and nothing
 * that ends the line early. */
static void
ct_comment(FILE *out, const char *prefix, const char *text)
{
    fputs(prefix, out);
    for (; *text != '\0'; text++) {
        fputc(*text == '\t' || *text == '\n' || *text == '\r' ? ' ' : *text,
              out);
    }
    fputc('\n', out);
}

static int
ct_add(ct_out_t *o, char *text, bool job)
{
    ct_item_t *items;

    if (text == NULL) {
        o->failed = true;
        return HG_ERROR;
    }
    items = realloc(o->items, (o->nitems + 1) * sizeof(*items));
    if (items == NULL) {
        free(text);
        o->failed = true;
        return HG_ERROR;
    }
    o->items = items;
    o->items[o->nitems].text = text;
    o->items[o->nitems].job = job;
    o->nitems++;
    o->njobs += job;
    return HG_OK;
}

static void
ct_skip(ct_out_t *o, const ct_table_t *t, size_t lineno, const char *line,
        const char *why)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    if (out == NULL) {
        o->failed = true;
        return;
    }
    fprintf(out, "  # %s:%zu: not carried over: ", t->file, lineno);
    ct_comment(out, "", why);
    ct_comment(out, "  #   ", line);
    if (fclose(out) != 0) {
        free(text);
        o->failed = true;
        return;
    }
    o->skipped++;
    ct_add(o, text, false);
}


/* ---- the environment ---------------------------------------------------- */

static int
ct_set(char **slot, const char *value)
{
    char *copy = strdup(value);

    if (copy == NULL) {
        return HG_ERROR;
    }
    free(*slot);
    *slot = copy;
    return HG_OK;
}

static int
ct_setenv(ct_table_t *t, const char *name, const char *value)
{
    ct_var_t *vars;
    size_t i;

    for (i = 0; i < t->nvars; i++) {
        if (strcmp(t->vars[i].name, name) == 0) {
            return ct_set(&t->vars[i].value, value);
        }
    }
    vars = realloc(t->vars, (t->nvars + 1) * sizeof(*vars));
    if (vars == NULL) {
        return HG_ERROR;
    }
    t->vars = vars;
    vars[t->nvars].name = strdup(name);
    vars[t->nvars].value = strdup(value);
    if (vars[t->nvars].name == NULL || vars[t->nvars].value == NULL) {
        free(vars[t->nvars].name);
        free(vars[t->nvars].value);
        return HG_ERROR;
    }
    t->nvars++;
    return HG_OK;
}

/* libconfig's setting names: [A-Za-z*][-A-Za-z0-9_*]* */
static bool
ct_conf_name(const char *name)
{
    const char *p;

    if (!((*name >= 'A' && *name <= 'Z') || (*name >= 'a' && *name <= 'z'))) {
        return false;
    }
    for (p = name; *p != '\0'; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')
              || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
        {
            return false;
        }
    }
    return true;
}

/*
 * "NAME = VALUE" as cronie's load_env reads it: the name runs to a blank
 * or "=", the value may be quoted ('...' or "..."), blanks around both are
 * dropped. 1 when LINE is such a line (NAME and VALUE cut out of it in
 * place), 0 when it is not (an entry).
 */
static int
ct_env_line(char *line, char **name, char **value)
{
    char *p = (char *) ct_skip_blanks(line), *n = p, *v, *end;
    char q;

    while (*p != '\0' && *p != '=' && !ct_blank(*p)) {
        p++;
    }
    if (p == n) {
        return 0;
    }
    end = p;
    p = (char *) ct_skip_blanks(p);
    if (*p != '=') {
        return 0;
    }
    *end = '\0';
    v = (char *) ct_skip_blanks(p + 1);
    end = v + strlen(v);
    while (end > v && ct_blank(end[-1])) {
        end--;
    }
    *end = '\0';
    if ((*v == '\'' || *v == '"') && end - v >= 2 && end[-1] == *v) {
        q = *v;
        if (strchr(v + 1, q) == end - 1) {
            v++;
            end[-1] = '\0';
        }
    }
    *name = n;
    *value = v;
    return 1;
}

/* What an environment line means for the entries after it. */
static int
ct_env(ct_table_t *t, ct_out_t *o, size_t lineno, const char *line,
       const char *name, const char *value)
{
    char *end;
    long minutes;

    if (strcmp(name, "CRON_TZ") == 0) {
        if (value[0] != '\0') {
            return ct_set(&t->cron_tz, value);
        }
        free(t->cron_tz);               /* "CRON_TZ=": the local zone again */
        t->cron_tz = NULL;
        return HG_OK;
    }
    if (strcmp(name, "MAILTO") == 0) {
        return ct_set(&t->mailto, value);
    }
    if (strcmp(name, "RANDOM_DELAY") == 0) {
        errno = 0;
        minutes = strtol(value, &end, 10);
        if (end == value || *end != '\0' || errno != 0 || minutes < 0
            || minutes > 24 * 60)
        {
            ct_skip(o, t, lineno, line, "RANDOM_DELAY is not a number of "
                    "minutes from 0 to 1440 (cronie ignores it too)");
            return HG_OK;
        }
        t->random_delay = minutes;
        return HG_OK;
    }
    if (strcmp(name, "MAILFROM") == 0) {
        ct_skip(o, t, lineno, line, "MAILFROM: hourglass sends no mail; "
                "notifications go through channels");
        return HG_OK;
    }
    if (!ct_conf_name(name)) {
        ct_skip(o, t, lineno, line, "a scheduler.conf env key must match "
                "[A-Za-z][-A-Za-z0-9_]*; set it in the command instead");
        return HG_OK;
    }
    if (strcmp(name, "SHELL") == 0 && ct_set(&t->shell, value) != HG_OK) {
        return HG_ERROR;
    }
    return ct_setenv(t, name, value);
}


/* ---- entries ------------------------------------------------------------ */

static const char *const ct_macros[] = {
    "@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily",
    "@midnight", "@hourly", NULL
};

static const char *const ct_noise[] = {
    "cd", "test", "if", "then", "else", "fi", "exec", "sh", "bash", "nice",
    "ionice", "sudo", "env", "null", "dev", "usr", "bin",
    "sbin", "local", "and", "or", "not", "run", "tmp", NULL
};

static bool
ct_word_in(const char *w, size_t len, const char *const *words)
{
    size_t i;

    for (i = 0; words[i] != NULL; i++) {
        if (strlen(words[i]) == len && strncasecmp(w, words[i], len) == 0) {
            return true;
        }
    }
    return false;
}

static bool
ct_id_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/*
 * An id from the command: up to three of its words that name something
 * (program names, the last part of a path), without options, variables,
 * assignments and shell glue: "cd / && run-parts --report /etc/cron.daily"
 * is "run-parts-cron.daily". The same command always gives the same id;
 * a second one gets "-2", a third "-3" (ct_unique_id).
 */
static void
ct_base_id(const char *cmd, char *id, size_t idlen)
{
    const char *p = cmd, *w, *e, *slash;
    size_t pos = 0, len, words = 0, i;
    bool in_test = false;

    id[0] = '\0';
    while (*p != '\0' && words < 3) {
        while (*p != '\0' && ct_blank(*p)) {
            p++;
        }
        w = p;
        while (*p != '\0' && !ct_blank(*p)) {
            p++;
        }
        e = p;
        /* a test's operands ("test -x /usr/sbin/anacron ||") are not what
         * the job does */
        if ((e - w == 4 && strncmp(w, "test", 4) == 0)
            || (e - w == 1 && *w == '['))
        {
            in_test = true;
            continue;
        }
        if (in_test) {
            in_test = !(e[-1] == ';' || (e - w == 2 && (strncmp(w, "||", 2)
                                                        == 0
                                                        || strncmp(w, "&&", 2)
                                                        == 0)));
            continue;
        }
        if (memchr(w, '=', (size_t) (e - w)) != NULL
            || memchr(w, '$', (size_t) (e - w)) != NULL || *w == '-')
        {
            continue;                   /* assignment, variable, option */
        }
        while (e > w && e[-1] == '/') {
            e--;
        }
        for (slash = e; slash > w && slash[-1] != '/'; slash--) {
        }
        w = slash;
        while (w < e && !ct_id_char(*w)) {
            w++;
        }
        for (len = 0; w + len < e && ct_id_char(w[len]); len++) {
        }
        while (len > 0 && (w[len - 1] == '.' || w[len - 1] == '-')) {
            len--;
        }
        if (len < 2 || ct_word_in(w, len, ct_noise)) {
            continue;
        }
        if (pos + len + 2 > idlen || pos + len + 1 > CT_ID_MAX) {
            break;
        }
        if (pos > 0) {
            id[pos++] = '-';
        }
        for (i = 0; i < len; i++) {
            id[pos++] = (char) (w[i] >= 'A' && w[i] <= 'Z' ? w[i] - 'A' + 'a'
                                                           : w[i]);
        }
        id[pos] = '\0';
        words++;
    }
    if (pos == 0) {
        snprintf(id, idlen, "cron");
    }
}

static char *
ct_unique_id(ct_out_t *o, const char *cmd)
{
    char base[CT_ID_MAX + 1], id[CT_ID_MAX + 16], **ids;
    size_t i, n = 1;

    ct_base_id(cmd, base, sizeof(base));
    snprintf(id, sizeof(id), "%s", base);
    for (i = 0; i < o->nids; i++) {
        if (strcmp(o->ids[i], id) == 0) {
            snprintf(id, sizeof(id), "%s-%zu", base, ++n);
            i = (size_t) -1;            /* again, from the first */
        }
    }
    ids = realloc(o->ids, (o->nids + 1) * sizeof(*ids));
    if (ids == NULL) {
        return NULL;
    }
    o->ids = ids;
    ids[o->nids] = strdup(id);
    if (ids[o->nids] == NULL) {
        return NULL;
    }
    return ids[o->nids++];
}

/*
 * cronie's do_command: the command ends at the first "%" not after a
 * backslash, "\%" in it being "%"; after it "%" is a newline and "\%" a
 * "%", every other backslash kept. *INPUT NULL when there is no "%".
 */
static int
ct_split_percent(const char *cmd, char **command, char **input)
{
    size_t len = strlen(cmd);
    char *c = malloc(len + 1), *in = NULL, *p;
    const char *s = cmd;

    *command = c;
    *input = NULL;
    if (c == NULL) {
        return HG_ERROR;
    }
    for (p = c; *s != '\0'; s++) {
        if (s[0] == '\\' && s[1] == '%') {
            *p++ = '%';
            s++;
        } else if (s[0] == '%') {
            break;
        } else {
            *p++ = *s;
        }
    }
    *p = '\0';
    if (*s != '%') {
        return HG_OK;
    }
    in = malloc(len + 2);
    if (in == NULL) {
        return HG_ERROR;
    }
    for (p = in, s++; *s != '\0'; s++) {
        if (s[0] == '\\' && s[1] == '%') {
            *p++ = '%';
            s++;
        } else {
            *p++ = *s == '%' ? '\n' : *s;
        }
    }
    *p = '\0';
    *input = in;
    return HG_OK;
}

/* The command with INPUT as its standard input: a here-document whose
 * delimiter no line of the input is. */
static int
ct_print_with_input(FILE *out, const char *command, const char *input)
{
    char delim[32], *text = NULL, *line;
    size_t len = 0, n = 0, dlen;
    FILE *f;
    bool clash;

    do {
        snprintf(delim, sizeof(delim), n ? "CRON_INPUT_%zu" : "CRON_INPUT",
                 n);
        dlen = strlen(delim);
        clash = false;
        for (line = (char *) input; line != NULL && *line != '\0';) {
            if (strncmp(line, delim, dlen) == 0
                && (line[dlen] == '\n' || line[dlen] == '\0'))
            {
                clash = true;
                break;
            }
            line = strchr(line, '\n');
            line = line ? line + 1 : NULL;
        }
        n++;
    } while (clash);

    f = open_memstream(&text, &len);
    if (f == NULL) {
        return HG_ERROR;
    }
    /* a newline before "}" ends a "#" comment the command may have */
    fprintf(f, "{\n%s\n} <<'%s'\n%s", command, delim, input);
    if (input[0] != '\0' && input[strlen(input) - 1] != '\n') {
        fputc('\n', f);
    }
    fputs(delim, f);
    if (fclose(f) != 0) {
        free(text);
        return HG_ERROR;
    }
    ct_quote(out, text);
    free(text);
    return HG_OK;
}

/* The command, as cron would run it. */
static int
ct_print_command(FILE *out, const char *command, const char *input)
{
    if (input == NULL) {
        ct_quote(out, command);
        return HG_OK;
    }
    return ct_print_with_input(out, command, input);
}

/* The home cron runs a job in: HOME= of the table, else the user's. */
static void
ct_print_cwd(FILE *out, const ct_table_t *t, const char *user)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    size_t i;

    for (i = 0; i < t->nvars; i++) {
        if (strcmp(t->vars[i].name, "HOME") == 0) {
            fputs("    cwd = ", out);
            ct_quote(out, t->vars[i].value);
            fputs(";\n", out);
            return;
        }
    }
    if (user != NULL && getpwnam_r(user, &pw, buf, sizeof(buf), &res) == 0
        && res != NULL && pw.pw_dir != NULL && pw.pw_dir[0] == '/')
    {
        fputs("    cwd = ", out);
        ct_quote(out, pw.pw_dir);
        fputs(";\n", out);
    }
}

/* A user crontab's command whose first word is a user name followed by
 * more words: most likely the system format read without --system (cron
 * itself would run the user name as the command). */
static bool
ct_user_first(const char *command)
{
    char name[64];
    size_t n = strcspn(command, " \t");

    if (n == 0 || n >= sizeof(name) || command[n] == '\0') {
        return false;
    }
    memcpy(name, command, n);
    name[n] = '\0';
    return getpwnam(name) != NULL;
}

static void
ct_job(ct_out_t *o, const ct_table_t *t, size_t lineno, const char *line,
       const char *schedule, const char *user, const char *cmd)
{
    char *text = NULL, *command = NULL, *input = NULL, *id, *full = NULL;
    char err[256];
    size_t len = 0, i;
    hg_cron_t *cron;
    FILE *out;
    bool mail_on_error = false;

    if (strncmp(cmd, "-n", 2) == 0 && ct_blank(cmd[2])) {
        mail_on_error = true;           /* cronie: mail only on failure */
        cmd = ct_skip_blanks(cmd + 3);
    }
    if (t->cron_tz != NULL && strcasecmp(schedule, "@reboot") != 0) {
        if (asprintf(&full, "CRON_TZ=%s %s", t->cron_tz, schedule) < 0) {
            o->failed = true;
            return;
        }
        schedule = full;
    }
    errno = 0;
    cron = hg_cron_parse(schedule, err, sizeof(err));
    if (cron == NULL && errno == ENOMEM) {
        o->failed = true;               /* not the line's fault: no skip */
        free(full);
        return;
    }
    if (cron == NULL) {
        char why[400];
        if (strchr(schedule, '~') != NULL) {
            snprintf(err, sizeof(err), "cronie's random \"~\" has no "
                     "equivalent: choose a time, or add a jitter");
        }
        snprintf(why, sizeof(why), "the schedule: %s", err);
        ct_skip(o, t, lineno, line, why);
        free(full);
        return;
    }
    hg_cron_free(cron);
    if (ct_split_percent(cmd, &command, &input) != HG_OK
        || (id = ct_unique_id(o, command)) == NULL
        || (out = open_memstream(&text, &len)) == NULL)
    {
        o->failed = true;
        goto done;
    }

    fprintf(out, "  # %s:%zu:\n", t->file, lineno);
    ct_comment(out, "  #   ", line);
    if (t->mailto != NULL && t->mailto[0] != '\0') {
        fputs("  # MAILTO=", out);
        ct_comment(out, "", t->mailto);
        fprintf(out, "  #   cron mailed the output there%s; with a channel "
                "defined, add\n  #   notify = { on = [ \"failure\" ]; via = "
                "[ \"CHANNEL\" ]; };\n",
                mail_on_error ? " (on failure only)" : "");
    }
    if (!t->system && ct_user_first(command)) {
        fputs("  # the command begins with a user name: if this file has "
              "the system format\n  #   (a user column, as /etc/crontab), "
              "import it with --system\n", out);
    }
    if (input != NULL) {
        fputs("  # \"%\": what follows it is the command's standard input "
              "(cron's rule),\n  #   given as a here-document\n", out);
    }
    fputs("  {\n    id = ", out);
    ct_quote(out, id);
    fputs(";\n    type = \"shell\";\n    schedule = ", out);
    ct_quote(out, schedule);
    fputs(";\n", out);
    if (t->shell != NULL && strcmp(t->shell, "/bin/sh") != 0) {
        /* cron runs the command with $SHELL -c */
        fputs("    argv = [ ", out);
        ct_quote(out, t->shell);
        fputs(", \"-c\", ", out);
        o->failed |= ct_print_command(out, command, input) != HG_OK;
        fputs(" ];\n", out);
    } else {
        fputs("    command = ", out);
        o->failed |= ct_print_command(out, command, input) != HG_OK;
        fputs(";\n", out);
    }
    if (user != NULL) {
        fputs("    user = ", out);
        ct_quote(out, user);
        fputs(";\n", out);
    }
    ct_print_cwd(out, t, user);
    if (t->nvars > 0) {
        fputs("    env = {", out);
        for (i = 0; i < t->nvars; i++) {
            fprintf(out, " %s = ", t->vars[i].name);
            ct_quote(out, t->vars[i].value);
            fputc(';', out);
        }
        fputs(" };\n", out);
    }
    if (t->random_delay > 0) {
        fprintf(out, "    jitter = \"%ldm\";\n", t->random_delay);
    }
    fputs("    timeout = \"0s\"; max_retries = 0; overlap = \"allow\";\n  }",
          out);
    if (fclose(out) != 0) {
        free(text);
        o->failed = true;
        goto done;
    }
    ct_add(o, text, true);

done:
    free(command);
    free(input);
    free(full);
}

/* One entry line (not a comment, not an environment line). */
static void
ct_entry(ct_out_t *o, const ct_table_t *t, size_t lineno, const char *line)
{
    char schedule[CT_LINE_MAX], user[256];
    const char *p = ct_skip_blanks(line), *w;
    size_t pos = 0, fields, len;

    if (*p == '@') {
        for (w = p; *p != '\0' && !ct_blank(*p); p++) {
        }
        len = (size_t) (p - w);
        if (!ct_word_in(w, len, ct_macros)) {
            ct_skip(o, t, lineno, line, "not one of cron's @ words (@reboot, "
                    "@yearly, @annually, @monthly, @weekly, @daily, "
                    "@midnight, @hourly)");
            return;
        }
        snprintf(schedule, sizeof(schedule), "%.*s", (int) len, w);
    } else {
        for (fields = 0; fields < 5; fields++) {
            p = ct_skip_blanks(p);
            for (w = p; *p != '\0' && !ct_blank(*p); p++) {
            }
            if (p == w) {
                ct_skip(o, t, lineno, line, "fewer than 5 time fields and a "
                        "command");
                return;
            }
            pos += (size_t) snprintf(schedule + pos, sizeof(schedule) - pos,
                                     "%s%.*s", fields ? " " : "",
                                     (int) (p - w), w);
        }
    }
    p = ct_skip_blanks(p);
    if (t->system) {
        for (w = p; *p != '\0' && !ct_blank(*p); p++) {
        }
        if (p == w || (size_t) (p - w) >= sizeof(user)) {
            ct_skip(o, t, lineno, line, "no user name after the schedule "
                    "(the system format has a user column)");
            return;
        }
        snprintf(user, sizeof(user), "%.*s", (int) (p - w), w);
        p = ct_skip_blanks(p);
    }
    if (*p == '\0') {
        ct_skip(o, t, lineno, line, "no command");
        return;
    }
    ct_job(o, t, lineno, line, schedule, t->system ? user : t->user, p);
}

static int
ct_read(ct_out_t *o, ct_table_t *t, FILE *in)
{
    char line[CT_LINE_MAX], copy[CT_LINE_MAX], *name, *value, *p;
    size_t lineno = 0, len;

    while (fgets(line, sizeof(line), in) != NULL) {
        lineno++;
        len = strlen(line);
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
            fprintf(stderr, "hourglass: import-crontab: %s:%zu: line longer "
                    "than %d characters\n", t->file, lineno, CT_LINE_MAX - 2);
            return HG_ERROR;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            line[--len] = '\0';
        }
        p = (char *) ct_skip_blanks(line);
        if (*p == '\0' || *p == '#') {
            continue;
        }
        snprintf(copy, sizeof(copy), "%s", line);
        if (ct_env_line(copy, &name, &value)) {
            if (ct_env(t, o, lineno, line, name, value) != HG_OK) {
                o->failed = true;
            }
            continue;
        }
        ct_entry(o, t, lineno, line);
        if (o->failed) {
            break;
        }
    }
    if (ferror(in)) {
        fprintf(stderr, "hourglass: import-crontab: %s: %s\n", t->file,
                strerror(errno));
        return HG_ERROR;
    }
    return o->failed ? HG_ERROR : HG_OK;
}

static void
ct_table_free(ct_table_t *t)
{
    size_t i;

    for (i = 0; i < t->nvars; i++) {
        free(t->vars[i].name);
        free(t->vars[i].value);
    }
    free(t->vars);
    free(t->cron_tz);
    free(t->mailto);
    free(t->shell);
}

static void
ct_out_free(ct_out_t *o)
{
    size_t i;

    for (i = 0; i < o->nitems; i++) {
        free(o->items[i].text);
    }
    for (i = 0; i < o->nids; i++) {
        free(o->ids[i]);
    }
    free(o->items);
    free(o->ids);
}

static int
ct_print(const ct_out_t *o, char **files, size_t nfiles)
{
    size_t i, jobs = 0;

    printf("# hourglass import-crontab: %zu job%s from", o->njobs,
           o->njobs == 1 ? "" : "s");
    for (i = 0; i < nfiles; i++) {
        printf(" %s", strcmp(files[i], "-") == 0 ? "standard input"
                                                  : files[i]);
    }
    printf(".\n");
    if (o->skipped > 0) {
        printf("# %zu line%s not carried over: see the comments.\n",
               o->skipped, o->skipped == 1 ? "" : "s");
    }
    printf("# As cron: no timeout, no retry, runs may overlap; each job "
           "keeps its\n# crontab line above it. A configuration has one "
           "jobs list: merge.\njobs = (\n");
    for (i = 0; i < o->nitems; i++) {
        fputs(o->items[i].text, stdout);
        if (o->items[i].job) {
            jobs++;
            fputs(jobs < o->njobs ? ",\n" : "\n", stdout);
        }
    }
    printf(");\n");
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "hourglass: import-crontab: cannot write: %s\n",
                strerror(errno));
        return 1;
    }
    return 0;
}

/* Where a user's table is kept: Debian's spool, then cronie's. */
static const char *
ct_spool(const char *user, char *path, size_t len)
{
    static const char *const dirs[] = {
        "/var/spool/cron/crontabs", "/var/spool/cron"
    };
    size_t i;

    for (i = 0; i < HG_NELEMS(dirs); i++) {
        snprintf(path, len, "%s/%s", dirs[i], user);
        if (access(path, R_OK) == 0) {
            return path;
        }
    }
    return NULL;
}

int
hg_crontab_main(int argc, char **argv)
{
    char *files[256], spool[512];
    const char *user = NULL;
    size_t nfiles = 0, i;
    bool force_system = false, opts = true;
    ct_out_t o;
    int k, rc = 1;

    for (k = 1; k < argc; k++) {
        const char *a = argv[k];
        if (!opts || a[0] != '-' || a[1] == '\0') {
            if (nfiles == HG_NELEMS(files)) {
                return ct_usage_error("more than %s files", "256");
            }
            files[nfiles++] = argv[k];
        } else if (strcmp(a, "--") == 0) {
            opts = false;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(ct_usage_text, stdout);
            return fflush(stdout) == 0 ? 0 : 1;
        } else if (strcmp(a, "--system") == 0) {
            force_system = true;
        } else if (strcmp(a, "--user") == 0 || strncmp(a, "--user=", 7) == 0) {
            user = a[6] == '=' ? a + 7 : k + 1 < argc ? argv[++k] : "";
            if (user[0] == '\0') {
                return ct_usage_error("%s needs a user name", "--user");
            }
        } else {
            return ct_usage_error("unknown option \"%s\"", a);
        }
    }
    if (user != NULL && force_system) {
        return ct_usage_error("%s: the system format names the user on each "
                              "line", "--user and --system");
    }
    if (nfiles == 0 && user != NULL) {
        if (ct_spool(user, spool, sizeof(spool)) == NULL) {
            fprintf(stderr, "hourglass: import-crontab: no crontab of \"%s\" "
                    "in /var/spool/cron/crontabs or /var/spool/cron (give "
                    "the file, or - for standard input)\n", user);
            return 1;
        }
        files[nfiles++] = spool;
    }
    if (nfiles == 0) {
        files[nfiles++] = "-";
    }

    memset(&o, 0, sizeof(o));
    for (i = 0; i < nfiles; i++) {
        ct_table_t t;
        FILE *in;
        int read_rc;

        memset(&t, 0, sizeof(t));
        t.file = files[i];
        t.user = user;
        t.system = force_system || strcmp(files[i], "/etc/crontab") == 0
                   || strncmp(files[i], "/etc/cron.d/", 12) == 0;
        if (t.system && user != NULL) {
            rc = ct_usage_error("--user: %s names the user on each line (the "
                                "system format)", files[i]);
            goto done;
        }
        in = strcmp(files[i], "-") == 0 ? stdin : fopen(files[i], "re");
        if (in == NULL) {
            fprintf(stderr, "hourglass: import-crontab: %s: %s\n", files[i],
                    strerror(errno));
            goto done;
        }
        if (in == stdin) {
            t.file = "stdin";
        }
        read_rc = ct_read(&o, &t, in);
        if (in != stdin) {
            fclose(in);
        }
        ct_table_free(&t);
        if (read_rc != HG_OK) {
            if (o.failed) {
                fprintf(stderr, "hourglass: import-crontab: out of "
                        "memory\n");
            }
            goto done;
        }
    }
    rc = ct_print(&o, files, nfiles);

done:
    ct_out_free(&o);
    return rc;
}
