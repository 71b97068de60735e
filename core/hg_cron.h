/*
 * Cron expressions: parsing into bitmasks (cronie's representation) and
 * next-fire computation in a time zone with cronie's daylight-saving rules.
 * See hg_cron.c for the syntax and the rules.
 */

#ifndef HG_CRON_H
#define HG_CRON_H

#include "hg_core.h"
#include "hg_tz.h"

#define HG_CRON_MAX_TEXT  1024

/* How far hg_cron_next looks ahead. The rarest day any expression can ask
 * for is February 29 falling on a given weekday (dom/dow "29 2 MON" in AND
 * form, or "? 2 MON#5"): up to 40 years apart around a century year such as
 * 2100. */
#define HG_CRON_SEARCH_YEARS  50

typedef struct hg_cron_s hg_cron_t;

/* NULL and a message in err ("field 3 (day of month): 32 is out of range
 * 1-31", "never fires: day 30 does not occur in February") on error; errno
 * ENOMEM (and "out of memory") when the fault is not the expression's. */
hg_cron_t *hg_cron_parse(const char *expr, char *err, size_t errlen);
/*
 * A parsed expression never changes, so the jobs that share a text can
 * share one: hg_cron_ref adds a holder (and returns CRON), hg_cron_free
 * drops one and frees the expression with the last. The count is not
 * atomic: an expression is shared within one thread.
 */
hg_cron_t *hg_cron_ref(hg_cron_t *cron);
void hg_cron_free(hg_cron_t *cron);

/*
 * The next fire time strictly after `after`, in zone tz (NULL = UTC).
 * HG_ERROR when there is none within HG_CRON_SEARCH_YEARS or before the
 * year 10000. @every fires `after` + its interval.
 */
int hg_cron_next(const hg_cron_t *cron, const hg_tz_t *tz, int64_t after,
                 int64_t *next);

/* > 0 for @every (seconds), else 0 */
int64_t hg_cron_every_seconds(const hg_cron_t *cron);
/* 1 if the schedule follows real time across DST changes (see hg_cron.c) */
int hg_cron_is_interval_like(const hg_cron_t *cron);
/* the expression as given, without surrounding blanks */
const char *hg_cron_text(const hg_cron_t *cron);
/* 1 for @reboot: hg_cron_next never finds a time; run once per boot */
int hg_cron_is_reboot(const hg_cron_t *cron);
/* the zone of a "CRON_TZ=Zone ..." or "TZ=Zone ..." prefix, else NULL */
const char *hg_cron_zone(const hg_cron_t *cron);

/* 1 if the local civil time matches every field (tests and fuzzers);
 * always 0 for @every */
int hg_cron_matches(const hg_cron_t *cron, int64_t year, int mon, int mday,
                    int hour, int min, int sec);

/* `hourglass next ...`, argv[0] == "next": exit status 0, 1 or 2 */
int hg_next_main(int argc, char **argv);
/* `hourglass import-crontab ...` (hg_crontab.c), argv[0] ==
 * "import-crontab": exit status 0, 1 or 2 */
int hg_crontab_main(int argc, char **argv);

#endif /* HG_CRON_H */
