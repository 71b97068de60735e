/*
 * Durations and sizes as people write them in scheduler.conf: "1h30m",
 * "500ms", "7d"; "64KiB", "10MB", "512".
 *
 * The parsers themselves (hg_parse_duration, hg_parse_size) are declared in
 * include/hourglass/module.h because modules use them too; this header adds
 * what only the core needs: formatting back to text (for -T and messages)
 * and suggestions for text that almost parses.
 */

#ifndef HG_UNITS_H
#define HG_UNITS_H

#include "hg_core.h"

/* Longest text hg_format_duration and hg_format_size ever write, with the
 * terminating NUL. */
#define HG_UNITS_TEXT_MAX  48

/*
 * ms as the shortest exact text that hg_parse_duration reads back to the
 * same value: 5400000 -> "1h30m", 500 -> "500ms", 0 -> "0s". Negative
 * values get a leading "-" (never produced by the parser; for messages).
 * Returns buf, which is always NUL-terminated when len > 0.
 */
char *hg_format_duration(int64_t ms, char *buf, size_t len);

/* bytes as exact text that hg_parse_size reads back to the same value,
 * preferring binary units: 65536 -> "64KiB", 10000000 -> "10MB",
 * 1000 -> "1KB", 1023 -> "1023". Returns buf. */
char *hg_format_size(uint64_t bytes, char *buf, size_t len);

/*
 * A corrected spelling of a duration that hg_parse_duration rejected, for
 * a hint: "30 seconds" -> "30s", "1.5h" -> "1h30m", "5 min" -> "5m",
 * "5x" -> "5m" (an unknown unit: minutes is the likeliest intent in a
 * scheduler). HG_OK with the suggestion in buf, HG_ERROR when there is
 * nothing sensible to suggest.
 */
int hg_suggest_duration(const char *text, char *buf, size_t len);

/* The same for sizes: "64 KiB" -> "64KiB", "1.5MiB" -> "1536KiB",
 * "10 megabytes" -> "10MB". */
int hg_suggest_size(const char *text, char *buf, size_t len);

#endif /* HG_UNITS_H */
