/*
 * hg_next.c owns the `hourglass next` subcommand: print the next fire
 * times of a schedule, as the daemon would compute them, without a
 * configuration file. It only reads its arguments and the environment;
 * it never changes the process's time zone.
 *
 * Exit status: 0 printed; 1 the schedule is invalid, never fires, or has no
 * fire time within the search bound; 2 usage (unknown option, bad -n,
 * --tz or --from value).
 */

#include "hg_core.h"

#include "hg_cron.h"
#include "hg_tz.h"

#define NEXT_MAX_COUNT  10000

static const char next_usage[] =
    "Usage: hourglass next [--tz ZONE] [--from TIME] [-n COUNT] EXPR\n"
    "  print the next COUNT (default 5, at most 10000) fire times of the\n"
    "  cron expression EXPR strictly after TIME (default now), in ZONE\n"
    "  (default the local zone, TZ). TIME is RFC 3339, e.g.\n"
    "  2026-03-29T01:00:00+01:00, or without an offset a local time in ZONE.\n";

/*
 * ${VAR} and ${VAR:-default} from the environment, as the configuration
 * reader does for schedule = "...": `hourglass next "${BACKUP_CRON}"`
 * then shows what the daemon would run. An unset ${VAR} is an error rather
 * than an empty string, which would only make a confusing field count.
 */
static int
expand_env(const char *in, char *out, size_t outlen, char *err, size_t errlen)
{
    const char *p = in, *close, *dflt, *value;
    char name[256];
    size_t pos = 0, len, nlen;

    while (*p != '\0') {
        if (p[0] != '$' || p[1] != '{') {
            if (pos + 1 >= outlen) {
                goto too_long;
            }
            out[pos++] = *p++;
            continue;
        }
        close = strchr(p + 2, '}');
        if (close == NULL) {
            snprintf(err, errlen, "unterminated \"${\"");
            return HG_ERROR;
        }
        dflt = NULL;
        for (nlen = 0; p + 2 + nlen < close; nlen++) {
            if (p[2 + nlen] == ':' && p[3 + nlen] == '-') {
                dflt = p + 4 + nlen;
                break;
            }
        }
        if (nlen == 0 || nlen >= sizeof(name)) {
            snprintf(err, errlen, "\"%.*s\" is not a variable reference",
                     (int) (close - p + 1), p);
            return HG_ERROR;
        }
        memcpy(name, p + 2, nlen);
        name[nlen] = '\0';
        if (strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                   "0123456789_") != nlen || (name[0] >= '0' && name[0] <= '9'))
        {
            snprintf(err, errlen, "\"%s\" is not a variable name", name);
            return HG_ERROR;
        }
        value = getenv(name);
        if (dflt != NULL && (value == NULL || value[0] == '\0')) {
            value = dflt;
            len = (size_t) (close - dflt);
        } else if (value == NULL) {
            snprintf(err, errlen, "environment variable %s is not set", name);
            return HG_ERROR;
        } else {
            len = strlen(value);
        }
        if (pos + len >= outlen) {
            goto too_long;
        }
        memcpy(out + pos, value, len);
        pos += len;
        p = close + 1;
    }
    out[pos] = '\0';
    return HG_OK;

too_long:
    snprintf(err, errlen, "too long after expanding variables");
    return HG_ERROR;
}

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int
usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("hourglass: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    fputs(next_usage, stderr);
    return 2;
}

/* "--tz ZONE", "--tz=ZONE": the value, advancing *i past it */
static const char *
option_value(int argc, char **argv, int *i, const char *name)
{
    const char *a = argv[*i];
    size_t len = strlen(name);

    if (strncmp(a, name, len) != 0) {
        return NULL;
    }
    if (a[len] == '=') {
        return a + len + 1;
    }
    if (a[len] != '\0') {
        return NULL;
    }
    if (*i + 1 >= argc) {
        return "";                      /* reported as missing */
    }
    return argv[++*i];
}

int
hg_next_main(int argc, char **argv)
{
    const char *zone = NULL, *from = NULL, *count_arg = NULL, *expr = NULL;
    const char *v, *a;
    char expanded[HG_CRON_MAX_TEXT * 4], err[512], line[64];
    const hg_tz_t *tz;
    hg_cron_t *cron;
    struct timespec now;
    int64_t t;
    long count = 5, i;
    int opts = 1, k, rc = 0;
    char *end;

    for (k = 1; k < argc; k++) {
        a = argv[k];
        if (!opts || a[0] != '-' || a[1] == '\0') {
            if (expr != NULL) {
                return usage_error("more than one EXPR (quote the "
                                   "expression as one argument: \"%s\")",
                                   "*/5 * * * *");
            }
            expr = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            opts = 0;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(next_usage, stdout);
            return fflush(stdout) == 0 ? 0 : 1;
        } else if ((v = option_value(argc, argv, &k, "--tz")) != NULL) {
            if (v[0] == '\0') {
                return usage_error("%s needs a time zone", "--tz");
            }
            zone = v;
        } else if ((v = option_value(argc, argv, &k, "--from")) != NULL) {
            if (v[0] == '\0') {
                return usage_error("%s needs a time", "--from");
            }
            from = v;
        } else if ((v = option_value(argc, argv, &k, "--count")) != NULL
                   || (v = option_value(argc, argv, &k, "-n")) != NULL)
        {
            count_arg = v;
        } else if (strncmp(a, "-n", 2) == 0 && a[2] != '\0') {
            count_arg = a + 2;
        } else {
            return usage_error("unknown option \"%s\"", a);
        }
    }
    if (expr == NULL) {
        return usage_error("%s", "missing EXPR");
    }

    if (count_arg != NULL) {
        errno = 0;
        count = strtol(count_arg, &end, 10);
        if (end == count_arg || *end != '\0' || errno != 0 || count < 1
            || count > NEXT_MAX_COUNT)
        {
            return usage_error("-n: \"%s\" is not a count from 1 to 10000",
                               count_arg);
        }
    }

    tz = hg_tz_get(zone, err, sizeof(err));
    if (tz == NULL) {
        return usage_error("--tz: %s", err);
    }

    if (expand_env(expr, expanded, sizeof(expanded), err, sizeof(err))
        != HG_OK)
    {
        fprintf(stderr, "hourglass: invalid schedule \"%s\": %s\n", expr, err);
        return 1;
    }
    cron = hg_cron_parse(expanded, err, sizeof(err));
    if (cron == NULL) {
        fprintf(stderr, "hourglass: invalid schedule \"%s\": %s\n", expr, err);
        return 1;
    }
    if (hg_cron_is_reboot(cron)) {
        fprintf(stderr, "hourglass: schedule \"%s\" has no fire times: it "
                "runs once per boot, when the daemon starts\n", expr);
        hg_cron_free(cron);
        return 1;
    }
    /* "CRON_TZ=Zone ...": the expression's own zone, as for a job */
    if (hg_cron_zone(cron) != NULL) {
        if (zone != NULL && strcmp(zone, hg_cron_zone(cron)) != 0) {
            rc = usage_error("--tz %s and the schedule's prefix (%s) say "
                             "different zones", zone, hg_cron_zone(cron));
            hg_cron_free(cron);
            return rc;
        }
        tz = hg_tz_get(hg_cron_zone(cron), err, sizeof(err));
        if (tz == NULL) {
            fprintf(stderr, "hourglass: invalid schedule \"%s\": %s\n",
                    expr, err);
            hg_cron_free(cron);
            return 1;
        }
    }

    if (from != NULL) {
        if (hg_tz_parse_time(tz, from, &t, err, sizeof(err)) != HG_OK) {
            hg_cron_free(cron);
            return usage_error("--from: %s", err);
        }
    } else {
        clock_gettime(CLOCK_REALTIME, &now);
        t = now.tv_sec;
    }

    for (i = 0; i < count; i++) {
        if (hg_cron_next(cron, tz, t, &t) != HG_OK
            || hg_tz_format_rfc3339(tz, t, line, sizeof(line)) != HG_OK)
        {
            fprintf(stderr, "hourglass: schedule \"%s\" has no %sfire time "
                    "within %d years or before the year 10000\n", expr,
                    i ? "further " : "", HG_CRON_SEARCH_YEARS);
            rc = 1;
            break;
        }
        fputs(line, stdout);
        fputc('\n', stdout);
    }
    hg_cron_free(cron);

    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "hourglass: cannot write the fire times: %s\n",
                strerror(errno));
        return 1;
    }
    return rc;
}
