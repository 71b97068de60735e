/*
 * Did-you-mean hints: the edit distance between what was written and what
 * was meant. Used for unknown keys and enum values in scheduler.conf
 * (hg_conf_did_you_mean in hg_conf.h is built on it), and usable for any
 * other name a user types (module types, API fields); and the hint for a
 * crontab line pasted into `schedule`.
 */

#ifndef HG_HINT_H
#define HG_HINT_H

#include "hg_core.h"

/* Words longer than this get no hint (and a distance of SIZE_MAX). */
#define HG_HINT_MAX_WORD  64

/*
 * Optimal string alignment distance (Levenshtein plus transposition of two
 * adjacent characters, the commonest typo: "levle"), ignoring ASCII case.
 * SIZE_MAX when either word is longer than HG_HINT_MAX_WORD.
 */
size_t hg_hint_distance(const char *a, const char *b);

/*
 * The candidate closest to word, or NULL when none is within
 * max(1, strlen(word) / 3) edits. Ties go to the earlier candidate.
 * `candidates` is NULL-terminated.
 */
const char *hg_hint_closest(const char *word, const char *const *candidates);

/*
 * A schedule that does not parse but begins with one that does, followed by
 * more words, is a crontab line pasted whole ("0 2 * * * /usr/bin/backup"):
 * into HINT a sentence (with a leading blank) to move the rest into
 * `command`; else HINT is "". Returns 1 when it wrote one.
 */
int hg_hint_crontab_line(const char *schedule, char *hint, size_t len);

/*
 * The zone name under the directory ZONEINFO closest to WORD (as
 * hg_hint_closest measures), copied into OUT; NULL when none is close
 * enough. The walk is bounded (a few levels, a few thousand entries).
 */
const char *hg_hint_zone(const char *zoneinfo, const char *word, char *out,
                         size_t len);

#endif /* HG_HINT_H */
