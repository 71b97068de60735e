#include "hg_core.h"

/*
 * hg_hint: edit distances for did-you-mean hints. Owns nothing but a
 * stack buffer per call; words are short (keys, enum values), so the
 * quadratic algorithm is the right one.
 */

#include <ctype.h>
#include <dirent.h>
#include <sys/stat.h>

#include "hg_conf.h"
#include "hg_cron.h"
#include "hg_hint.h"

size_t
hg_hint_distance(const char *a, const char *b)
{
    /* three rows of the dynamic-programming matrix: the transposition case
     * looks two rows back */
    size_t rows[3][HG_HINT_MAX_WORD + 1];
    size_t la = strlen(a), lb = strlen(b), i, j;
    size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2];

    if (la > HG_HINT_MAX_WORD || lb > HG_HINT_MAX_WORD) {
        return SIZE_MAX;
    }
    for (j = 0; j <= lb; j++) {
        prev[j] = j;
    }
    for (i = 1; i <= la; i++) {
        size_t *t;
        int ca = tolower((unsigned char) a[i - 1]);

        cur[0] = i;
        for (j = 1; j <= lb; j++) {
            int cb = tolower((unsigned char) b[j - 1]);
            size_t cost = ca == cb ? 0 : 1;
            size_t best = prev[j] + 1;                  /* deletion */

            if (cur[j - 1] + 1 < best) {
                best = cur[j - 1] + 1;                  /* insertion */
            }
            if (prev[j - 1] + cost < best) {
                best = prev[j - 1] + cost;              /* substitution */
            }
            if (i > 1 && j > 1
                && ca == tolower((unsigned char) b[j - 2])
                && tolower((unsigned char) a[i - 2]) == cb
                && prev2[j - 2] + 1 < best)
            {
                best = prev2[j - 2] + 1;                /* transposition */
            }
            cur[j] = best;
        }
        t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

const char *
hg_hint_closest(const char *word, const char *const *candidates)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX, limit, i;

    if (word == NULL || candidates == NULL) {
        return NULL;
    }
    limit = strlen(word) / 3;
    if (limit < 1) {
        limit = 1;
    }
    for (i = 0; candidates[i] != NULL; i++) {
        size_t d = hg_hint_distance(word, candidates[i]);
        if (d <= limit && d < best_d) {
            best = candidates[i];
            best_d = d;
        }
    }
    return best;
}

const char *
hg_conf_did_you_mean(const char *word, const char *const *candidates)
{
    return hg_hint_closest(word, candidates);
}

/* The longest run of leading words (up to a time zone prefix and six
 * fields) that parses wins: "0 0 2 * * * cmd" keeps its seconds. */
int
hg_hint_crontab_line(const char *schedule, char *hint, size_t len)
{
    char err[256], head[HG_CRON_MAX_TEXT + 1];
    const char *p = schedule, *cut = NULL, *rest;
    hg_cron_t *cron;
    int words = 0;

    hint[0] = '\0';
    if (schedule == NULL || strlen(schedule) > HG_CRON_MAX_TEXT) {
        return 0;
    }
    while (words < 7) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        while (*p != '\0' && *p != ' ' && *p != '\t') {
            p++;
        }
        words++;
        for (rest = p; *rest == ' ' || *rest == '\t'; rest++) {
        }
        if (*rest == '\0') {
            break;                      /* the whole text: no command left */
        }
        snprintf(head, sizeof(head), "%.*s", (int) (p - schedule), schedule);
        cron = hg_cron_parse(head, err, sizeof(err));
        if (cron != NULL) {
            cut = p;
            hg_cron_free(cron);
        }
    }
    if (cut == NULL) {
        return 0;
    }
    for (rest = cut; *rest == ' ' || *rest == '\t'; rest++) {
    }
    snprintf(hint, len, " (a crontab line? keep schedule = \"%.*s\" and "
             "move \"%s\" to command)", (int) (cut - schedule), schedule,
             rest);
    return 1;
}

/*
 * The zone names under a zoneinfo directory: a walk bounded in depth and
 * in entries (an error path must not stall on a strange TZDIR), leaving
 * out dot files, the posix/ and right/ copies and the tables (names with
 * a '.', such as zone.tab).
 */
#define HG_HINT_ZONE_DEPTH    3
#define HG_HINT_ZONE_ENTRIES  5000

typedef struct {
    const char *word;
    size_t limit;
    size_t best_d;
    size_t entries;
    char *best;
    size_t best_len;
} hg_hint_zone_walk_t;

static void
hg_hint_zone_dir(hg_hint_zone_walk_t *w, const char *root, const char *rel,
                 int depth)
{
    char path[PATH_MAX], name[PATH_MAX];
    struct dirent *de;
    struct stat st;
    DIR *dir;
    bool is_dir;
    size_t d;
    int n;

    n = snprintf(path, sizeof(path), "%s%s%s", root, rel[0] ? "/" : "", rel);
    if (n < 0 || (size_t) n >= sizeof(path) || (dir = opendir(path)) == NULL) {
        return;
    }
    while ((de = readdir(dir)) != NULL
           && ++w->entries <= HG_HINT_ZONE_ENTRIES)
    {
        if (de->d_name[0] == '.' || strchr(de->d_name, '.') != NULL
            || (depth == 0 && (strcmp(de->d_name, "posix") == 0
                               || strcmp(de->d_name, "right") == 0)))
        {
            continue;
        }
        n = snprintf(name, sizeof(name), "%s%s%s", rel, rel[0] ? "/" : "",
                     de->d_name);
        if (n < 0 || (size_t) n >= sizeof(name)) {
            continue;
        }
        if (de->d_type == DT_DIR || de->d_type == DT_REG) {
            is_dir = de->d_type == DT_DIR;
        } else {
            n = snprintf(path, sizeof(path), "%s/%s", root, name);
            if (n < 0 || (size_t) n >= sizeof(path) || stat(path, &st) != 0) {
                continue;
            }
            is_dir = S_ISDIR(st.st_mode);
        }
        if (is_dir) {
            if (depth + 1 < HG_HINT_ZONE_DEPTH) {
                hg_hint_zone_dir(w, root, name, depth + 1);
            }
            continue;
        }
        d = hg_hint_distance(w->word, name);
        /* readdir's order is the file system's: ties go to the name that
         * sorts first, so that the hint is the same everywhere */
        if (d <= w->limit && (d < w->best_d
                              || (d == w->best_d && strcmp(name, w->best) < 0))
            && strlen(name) < w->best_len)
        {
            memcpy(w->best, name, strlen(name) + 1);
            w->best_d = d;
        }
    }
    closedir(dir);
}

const char *
hg_hint_zone(const char *zoneinfo, const char *word, char *out, size_t len)
{
    hg_hint_zone_walk_t w;

    if (zoneinfo == NULL || word == NULL || len == 0
        || strlen(word) > HG_HINT_MAX_WORD)
    {
        return NULL;
    }
    memset(&w, 0, sizeof(w));
    w.word = word;
    w.limit = strlen(word) / 3 > 1 ? strlen(word) / 3 : 1;
    w.best_d = SIZE_MAX;
    w.best = out;
    w.best_len = len;
    out[0] = '\0';
    hg_hint_zone_dir(&w, zoneinfo, "", 0);
    return w.best_d != SIZE_MAX ? out : NULL;
}
