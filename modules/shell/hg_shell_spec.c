/*
 * hg_shell_spec.c reads a shell job definition (JSON) into a hg_shell_spec_t
 * and resolves its user/group. It is the one place where the shell keys'
 * types and values are checked: validate (in the master) and execute (in a
 * worker) both go through hg_shell_spec_read, so a job that validated is a
 * job that runs. Every message starts with the key it is about, so that
 * hourglass can point at that key's line.
 *
 * It never forks, never writes to the execution and never keeps state
 * between calls. User and group lookups go through NSS (getpwnam_r...), which
 * may be slow with a network directory: that cost is the price of telling
 * the operator at load time that "nobdy" does not exist.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hourglass/module.h>

#include "hg_shell.h"

/* getpwnam_r and friends ask for a buffer of unknown size: start with
 * this, double on ERANGE, give up past the maximum. */
#define HG_SHELL_NSS_BUF       1024
#define HG_SHELL_NSS_BUF_MAX   (1024 * 1024)

/* Output is held in the worker's memory and sent to the master in one
 * frame: a limit above this is a typo, not a wish. */
#define HG_SHELL_OUTPUT_LIMIT_MAX  ((uint64_t) 1024 * 1024 * 1024)

/* Set by hourglass itself; a job may not override them (validate says so
 * rather than silently dropping the job's value). */
static const char *const hg_shell_reserved_env[] = {
    "HOURGLASS_JOB_ID", "HOURGLASS_EXECUTION_ID", "HOURGLASS_ATTEMPT",
    "HOURGLASS_SCHEDULED_FOR", "HOURGLASS_TRIGGER", NULL
};

int
hg_shell_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        /* A message cut at errlen is still the right message: the return
         * value (the untruncated length) is of no use here. */
        (void) vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* A JSON string usable as a C string: jansson allows NUL inside strings,
 * execve does not. */
static const char *
shell_cstring(const json_t *value)
{
    const char *s;

    if (!json_is_string(value)) {
        return NULL;
    }
    s = json_string_value(value);
    if (strlen(s) != json_string_length(value)) {
        return NULL;
    }
    return s;
}

static int
shell_read_command(const json_t *job, hg_shell_spec_t *spec, char *err,
    size_t errlen)
{
    const json_t *command, *argv, *item;
    size_t i, n;

    command = json_object_get(job, "command");
    argv = json_object_get(job, "argv");
    if (command != NULL && argv != NULL) {
        return hg_shell_err(err, errlen, "command and argv are exclusive");
    }
    if (command == NULL && argv == NULL) {
        return hg_shell_err(err, errlen,
                            "one of command or argv is required");
    }

    if (command != NULL) {
        if (!json_is_string(command)) {
            return hg_shell_err(err, errlen, "command: must be a string");
        }
        spec->command = shell_cstring(command);
        if (spec->command == NULL) {
            return hg_shell_err(err, errlen,
                                "command: must not contain a NUL byte");
        }
        if (spec->command[0] == '\0') {
            return hg_shell_err(err, errlen, "command: must not be empty");
        }
        return 0;
    }

    n = json_is_array(argv) ? json_array_size(argv) : 0;
    if (n == 0) {
        return hg_shell_err(err, errlen,
                            "argv: must be a non-empty array of strings");
    }
    for (i = 0; i < n; i++) {
        if (!json_is_string(json_array_get(argv, i))) {
            return hg_shell_err(err, errlen,
                                "argv: must be a non-empty array of strings");
        }
    }
    spec->argv = calloc(n + 1, sizeof(*spec->argv));
    if (spec->argv == NULL) {
        return hg_shell_err(err, errlen, "argv: out of memory");
    }
    for (i = 0; i < n; i++) {
        item = json_array_get(argv, i);
        spec->argv[i] = shell_cstring(item);
        if (spec->argv[i] == NULL) {
            return hg_shell_err(err, errlen,
                                "argv: element %zu contains a NUL byte", i);
        }
    }
    if (spec->argv[0][0] == '\0') {
        return hg_shell_err(err, errlen,
                            "argv: the program (element 0) must not be empty");
    }
    return 0;
}

static int
shell_read_env(const json_t *job, hg_shell_spec_t *spec, char *err,
    size_t errlen)
{
    const json_t *env, *value;
    const char *name;
    size_t i;

    env = json_object_get(job, "env");
    if (env == NULL) {
        return 0;
    }
    if (!json_is_object(env)) {
        return hg_shell_err(err, errlen, "env: must be a group of strings");
    }
    json_object_foreach((json_t *) env, name, value) {
        if (name[0] == '\0' || strchr(name, '=') != NULL) {
            return hg_shell_err(err, errlen,
                                "env: \"%s\" is not a variable name", name);
        }
        for (i = 0; hg_shell_reserved_env[i] != NULL; i++) {
            if (strcmp(name, hg_shell_reserved_env[i]) == 0) {
                return hg_shell_err(err, errlen,
                                    "env: %s: is set by hourglass", name);
            }
        }
        if (!json_is_string(value)) {
            return hg_shell_err(err, errlen, "env: %s: must be a string",
                                name);
        }
        if (shell_cstring(value) == NULL) {
            return hg_shell_err(err, errlen,
                                "env: %s: must not contain a NUL byte", name);
        }
    }
    spec->env = env;
    return 0;
}

/* A variable name as sh reads ${NAME}: letters, digits and _, not
 * starting with a digit. */
static int
shell_var_name_ok(const char *name)
{
    size_t i;

    if (name[0] == '\0' || (name[0] >= '0' && name[0] <= '9')) {
        return 0;
    }
    for (i = 0; name[i] != '\0'; i++) {
        if (!(name[i] == '_' || (name[i] >= 'a' && name[i] <= 'z')
              || (name[i] >= 'A' && name[i] <= 'Z')
              || (name[i] >= '0' && name[i] <= '9')))
        {
            return 0;
        }
    }
    return 1;
}

/* pass_env: names of variables handed over from hourglass's own
 * environment (hourglass adds every ${NAME} of a command to it), and
 * inherit_env: the whole of it instead of the clean environment. */
static int
shell_read_pass_env(const json_t *job, hg_shell_spec_t *spec, char *err,
    size_t errlen)
{
    const json_t *list, *inherit, *item;
    const char *name;
    size_t i;

    inherit = json_object_get(job, "inherit_env");
    if (inherit != NULL) {
        if (!json_is_boolean(inherit)) {
            return hg_shell_err(err, errlen,
                                "inherit_env: must be true or false");
        }
        spec->inherit_env = json_is_true(inherit);
    }
    list = json_object_get(job, "pass_env");
    if (list == NULL) {
        return 0;
    }
    if (!json_is_array(list)) {
        return hg_shell_err(err, errlen,
                            "pass_env: must be a list of variable names");
    }
    json_array_foreach(list, i, item) {
        name = shell_cstring(item);
        if (name == NULL || !shell_var_name_ok(name)) {
            return hg_shell_err(err, errlen, "pass_env: element %zu is not "
                                "a variable name (letters, digits and _)",
                                i);
        }
    }
    spec->pass_env = list;
    return 0;
}

/* A user or group: a name, or a numeric id (integer, or digits in a
 * string as chown accepts them). */
static int
shell_read_principal(const json_t *job, const char *key,
    const json_t **out, char *err, size_t errlen)
{
    const json_t *value;
    json_int_t id;
    const char *s;

    value = json_object_get(job, key);
    if (value == NULL) {
        return 0;
    }
    if (json_is_integer(value)) {
        id = json_integer_value(value);
        /* (uid_t) -1 means "no change" to setuid: never an id. */
        if (id < 0 || id >= (json_int_t) UINT32_MAX) {
            return hg_shell_err(err, errlen,
                                "%s: %" JSON_INTEGER_FORMAT
                                " is not a valid id", key, id);
        }
    } else {
        s = shell_cstring(value);
        if (s == NULL || s[0] == '\0') {
            return hg_shell_err(err, errlen,
                                "%s: must be a name or a numeric id", key);
        }
    }
    *out = value;
    return 0;
}

/* "027" (string) or 27 (integer). libconfig has no octal literals and reads
 * `umask = 027;` as the integer 27, so an integer's decimal digits are read
 * as octal digits: 27 means 027, and 18 is refused rather than silently
 * taken as 022. */
static int
shell_read_umask(const json_t *job, hg_shell_spec_t *spec, char *err,
    size_t errlen)
{
    const json_t *value;
    char digits[32];
    const char *s;
    unsigned long mode;
    size_t i, n;

    value = json_object_get(job, "umask");
    if (value == NULL) {
        return 0;
    }
    if (json_is_integer(value)) {
        if (json_integer_value(value) < 0) {
            return hg_shell_err(err, errlen,
                                "umask: %" JSON_INTEGER_FORMAT
                                " is not an octal mode",
                                json_integer_value(value));
        }
        n = (size_t) snprintf(digits, sizeof(digits),
                              "%" JSON_INTEGER_FORMAT,
                              json_integer_value(value));
        if (n >= sizeof(digits)) {
            return hg_shell_err(err, errlen, "umask: is not an octal mode");
        }
        s = digits;
    } else if (json_is_string(value)) {
        s = json_string_value(value);
        n = strlen(s);
        if (n != json_string_length(value)) {
            return hg_shell_err(err, errlen,
                                "umask: must not contain a NUL byte");
        }
    } else {
        return hg_shell_err(err, errlen,
                            "umask: must be an octal mode such as \"027\"");
    }

    mode = 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '7') {
            break;
        }
        mode = mode * 8 + (unsigned long) (s[i] - '0');
        if (mode > 0777) {
            break;
        }
    }
    if (n == 0 || i < n || mode > 0777) {
        if (json_is_integer(value)) {
            return hg_shell_err(err, errlen, "umask: %s is not an octal mode",
                                s);
        }
        return hg_shell_err(err, errlen, "umask: \"%s\" is not an octal mode",
                            s);
    }
    spec->has_umask = true;
    spec->umask = (mode_t) mode;
    return 0;
}

/* The worker applies output_limit itself (hg_exec_output_limit); it is
 * checked here so that a typo is an error at load time, not a silent
 * fallback to the default. */
static int
shell_read_output_limit(const json_t *job, char *err, size_t errlen)
{
    const json_t *value;
    const char *s;
    uint64_t bytes;

    value = json_object_get(job, "output_limit");
    if (value == NULL) {
        return 0;
    }
    if (json_is_integer(value)) {
        if (json_integer_value(value) < 0) {
            return hg_shell_err(err, errlen,
                                "output_limit: must not be negative");
        }
        bytes = (uint64_t) json_integer_value(value);
        s = NULL;
    } else if (json_is_string(value)) {
        s = json_string_value(value);
        if (hg_parse_size(s, &bytes) != 0) {
            return hg_shell_err(err, errlen,
                                "output_limit: \"%s\" is not a size", s);
        }
    } else {
        return hg_shell_err(err, errlen,
                            "output_limit: must be a size such as \"64KiB\""
                            " or a number of bytes");
    }
    if (bytes > HG_SHELL_OUTPUT_LIMIT_MAX) {
        return hg_shell_err(err, errlen,
                            "output_limit: is too large (at most 1GiB)");
    }
    return 0;
}

int
hg_shell_spec_read(const json_t *job, hg_shell_spec_t *spec, char *err,
    size_t errlen)
{
    const json_t *cwd;

    memset(spec, 0, sizeof(*spec));
    if (!json_is_object(job)) {
        hg_shell_err(err, errlen, "job definition is not an object");
        goto failed;
    }
    if (shell_read_command(job, spec, err, errlen) != 0
        || shell_read_env(job, spec, err, errlen) != 0
        || shell_read_pass_env(job, spec, err, errlen) != 0
        || shell_read_principal(job, "user", &spec->user, err, errlen) != 0
        || shell_read_principal(job, "group", &spec->group, err, errlen) != 0
        || shell_read_umask(job, spec, err, errlen) != 0
        || shell_read_output_limit(job, err, errlen) != 0)
    {
        goto failed;
    }

    cwd = json_object_get(job, "cwd");
    if (cwd != NULL) {
        spec->cwd = shell_cstring(cwd);
        if (spec->cwd == NULL || spec->cwd[0] == '\0') {
            hg_shell_err(err, errlen, "cwd: must be a non-empty string");
            goto failed;
        }
    }
    return 0;

failed:
    hg_shell_spec_free(spec);
    return -1;
}

void
hg_shell_spec_free(hg_shell_spec_t *spec)
{
    free(spec->argv);
    memset(spec, 0, sizeof(*spec));
}

/* --- user and group --------------------------------------------------- */

/* 1 found, 0 no such entry, -1 lookup error (errno set). *buf is grown as
 * needed and owned by the caller. */
static int
shell_getpw(const char *name, uid_t uid, struct passwd *pw, char **buf)
{
    struct passwd *result;
    size_t size;
    char *grown;
    int rc;

    for (size = HG_SHELL_NSS_BUF; size <= HG_SHELL_NSS_BUF_MAX; size *= 2) {
        grown = realloc(*buf, size);
        if (grown == NULL) {
            errno = ENOMEM;
            return -1;
        }
        *buf = grown;
        result = NULL;
        rc = name != NULL ? getpwnam_r(name, pw, *buf, size, &result)
                          : getpwuid_r(uid, pw, *buf, size, &result);
        if (rc == ERANGE) {
            continue;
        }
        if (result != NULL) {
            return 1;
        }
        /* Not found is 0 with no result; some NSS modules say ENOENT. */
        if (rc == 0 || rc == ENOENT || rc == ESRCH) {
            return 0;
        }
        errno = rc;
        return -1;
    }
    errno = ERANGE;
    return -1;
}

int
hg_shell_getpwuid(uid_t uid, struct passwd *pw, char **buf)
{
    return shell_getpw(NULL, uid, pw, buf);
}

static int
shell_getgr(const char *name, gid_t *gid, char **buf)
{
    struct group gr, *result;
    size_t size;
    char *grown;
    int rc;

    for (size = HG_SHELL_NSS_BUF; size <= HG_SHELL_NSS_BUF_MAX; size *= 2) {
        grown = realloc(*buf, size);
        if (grown == NULL) {
            errno = ENOMEM;
            return -1;
        }
        *buf = grown;
        result = NULL;
        rc = getgrnam_r(name, &gr, *buf, size, &result);
        if (rc == ERANGE) {
            continue;
        }
        if (result != NULL) {
            *gid = gr.gr_gid;
            return 1;
        }
        if (rc == 0 || rc == ENOENT || rc == ESRCH) {
            return 0;
        }
        errno = rc;
        return -1;
    }
    errno = ERANGE;
    return -1;
}

/* Digits only, as a 32-bit id other than (id_t) -1. */
static int
shell_numeric_id(const char *s, uint32_t *id)
{
    unsigned long long v;
    char *end;

    if (s[0] < '0' || s[0] > '9') {
        return -1;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v >= UINT32_MAX) {
        return -1;
    }
    *id = (uint32_t) v;
    return 0;
}

/* Supplementary groups of `user` plus `gid`, as initgroups(3) would set
 * them, computed in the parent: the child may only make async-signal-safe
 * calls, and initgroups is not one. */
static int
shell_grouplist(const char *user, gid_t gid, hg_shell_identity_t *id)
{
    gid_t *list, *grown;
    int n, tries;

    n = 32;
    list = NULL;
    for (tries = 0; tries < 8; tries++) {
        grown = realloc(list, (size_t) n * sizeof(gid_t));
        if (grown == NULL) {
            free(list);
            errno = ENOMEM;
            return -1;
        }
        list = grown;
        if (getgrouplist(user, gid, list, &n) >= 0) {
            id->groups = list;
            id->ngroups = (size_t) n;
            return 0;
        }
        /* n now holds the number needed (glibc); grow at least twofold in
         * case the membership changed between calls. */
        n = n < 64 ? 64 : n * 2;
    }
    free(list);
    errno = EOVERFLOW;
    return -1;
}

/* Resolve spec->user: uid, and the primary gid and name when the user has
 * a passwd entry (*name is then allocated). */
static int
shell_resolve_user(const hg_shell_spec_t *spec, hg_shell_identity_t *id,
    bool *have_gid, char **name, char **buf, char *err, size_t errlen)
{
    struct passwd pw;
    const char *s;
    uint32_t numeric;

    s = json_is_string(spec->user) ? json_string_value(spec->user) : NULL;
    if (s == NULL) {
        numeric = (uint32_t) json_integer_value(spec->user);
    } else {
        switch (shell_getpw(s, 0, &pw, buf)) {
        case 1:
            goto found;
        case 0:
            if (shell_numeric_id(s, &numeric) == 0) {
                break;
            }
            return hg_shell_err(err, errlen, "user: no such user \"%s\"", s);
        default:
            return hg_shell_err(err, errlen,
                                "user: cannot look up \"%s\": %s", s,
                                strerror(errno));
        }
    }

    switch (shell_getpw(NULL, (uid_t) numeric, &pw, buf)) {
    case 1:
        goto found;
    case 0:
        /* A uid without a passwd entry has no primary group: running it
         * with the worker's (root's) group would be a nasty surprise. */
        if (spec->group == NULL) {
            return hg_shell_err(err, errlen,
                                "user: uid %" PRIu32 " has no passwd entry: "
                                "set group as well", numeric);
        }
        id->uid = (uid_t) numeric;
        id->set_uid = true;
        return 0;
    default:
        return hg_shell_err(err, errlen,
                            "user: cannot look up uid %" PRIu32 ": %s",
                            numeric, strerror(errno));
    }

found:
    id->uid = pw.pw_uid;
    id->gid = pw.pw_gid;
    id->set_uid = true;
    *have_gid = true;
    *name = strdup(pw.pw_name);
    if (*name == NULL) {
        return hg_shell_err(err, errlen, "user: out of memory");
    }
    return 0;
}

static int
shell_resolve_group(const hg_shell_spec_t *spec, hg_shell_identity_t *id,
    char **buf, char *err, size_t errlen)
{
    const char *s;
    uint32_t numeric;

    s = json_is_string(spec->group) ? json_string_value(spec->group) : NULL;
    if (s == NULL) {
        id->gid = (gid_t) json_integer_value(spec->group);
        return 0;
    }
    switch (shell_getgr(s, &id->gid, buf)) {
    case 1:
        return 0;
    case 0:
        if (shell_numeric_id(s, &numeric) == 0) {
            id->gid = (gid_t) numeric;
            return 0;
        }
        return hg_shell_err(err, errlen, "group: no such group \"%s\"", s);
    default:
        return hg_shell_err(err, errlen, "group: cannot look up \"%s\": %s",
                            s, strerror(errno));
    }
}

/* "nobody" (quoted) or 65534, as the job wrote it, for messages. */
static const char *
shell_principal_text(const json_t *value, char *buf, size_t len)
{
    if (json_is_string(value)) {
        (void) snprintf(buf, len, "\"%s\"", json_string_value(value));
    } else {
        (void) snprintf(buf, len, "%" JSON_INTEGER_FORMAT,
                        json_integer_value(value));
    }
    return buf;
}

int
hg_shell_identity_resolve(const hg_shell_spec_t *spec, bool for_exec,
    hg_shell_identity_t *id, char *err, size_t errlen)
{
    char *buf, *user_name, text[160];
    bool have_gid;
    int rc;

    memset(id, 0, sizeof(*id));
    buf = NULL;
    user_name = NULL;
    have_gid = false;
    rc = -1;

    if (spec->user != NULL
        && shell_resolve_user(spec, id, &have_gid, &user_name, &buf, err,
                              errlen) != 0)
    {
        goto done;
    }
    if (spec->group != NULL) {
        if (shell_resolve_group(spec, id, &buf, err, errlen) != 0) {
            goto done;
        }
        have_gid = true;
    }
    if (!for_exec || !have_gid) {
        rc = 0;
        goto done;
    }

    if (geteuid() != 0) {
        /* Only root can change identity. Naming the current user is
         * allowed (and a no-op), so that one definition works both as root
         * and in an unprivileged trial run. */
        if (spec->user != NULL && id->uid != geteuid()) {
            hg_shell_err(err, errlen, "user: cannot run as %s (uid %lu): "
                         "hourglass is not running as root",
                         shell_principal_text(spec->user, text,
                                              sizeof(text)),
                         (unsigned long) id->uid);
            goto done;
        }
        if (spec->group != NULL && id->gid != getegid()) {
            hg_shell_err(err, errlen, "group: cannot run as %s (gid %lu): "
                         "hourglass is not running as root",
                         shell_principal_text(spec->group, text,
                                              sizeof(text)),
                         (unsigned long) id->gid);
            goto done;
        }
        rc = 0;
        goto done;
    }

    id->change = true;
    if (user_name != NULL) {
        if (shell_grouplist(user_name, id->gid, id) != 0) {
            hg_shell_err(err, errlen, "user: cannot list the groups of "
                         "\"%s\": %s", user_name, strerror(errno));
            goto done;
        }
    } else {
        /* A group alone (or a uid without a passwd entry): that group and
         * no supplementary ones, rather than keeping root's. */
        id->groups = malloc(sizeof(gid_t));
        if (id->groups == NULL) {
            hg_shell_err(err, errlen, "group: out of memory");
            goto done;
        }
        id->groups[0] = id->gid;
        id->ngroups = 1;
    }
    rc = 0;

done:
    free(buf);
    free(user_name);
    if (rc != 0) {
        hg_shell_identity_free(id);
    }
    return rc;
}

void
hg_shell_identity_free(hg_shell_identity_t *id)
{
    free(id->groups);
    memset(id, 0, sizeof(*id));
}
