/*
 * Logging: one line per event, in text or JSON, to stderr or a file.
 *
 * Every process (master and workers) writes whole lines with one write(2)
 * on an O_APPEND descriptor, so lines from several processes never
 * interleave. The master may turn on buffering: lines then collect in memory
 * and go out in one write at the end of each event-loop turn
 * (hg_log_flush), which keeps a busy master from paying a system call per
 * line. hg_log never blocks on anything but that write.
 */

#ifndef HG_LOG_H
#define HG_LOG_H

#include "hg_core.h"
#include "hg_conf.h"

typedef enum {
    HG_LOG_FIELD_STRING = 0,
    HG_LOG_FIELD_INT,
    HG_LOG_FIELD_REAL
} hg_log_field_type_t;

/* A structured field of an event: `key=value` in text, a member in JSON. */
typedef struct hg_log_field_s {
    const char *key;
    hg_log_field_type_t type;
    const char *s;
    int64_t i;
    double r;
} hg_log_field_t;

#define HG_LOG_STR(k, v)  { (k), HG_LOG_FIELD_STRING, (v), 0, 0.0 }
#define HG_LOG_INT(k, v)  { (k), HG_LOG_FIELD_INT, NULL, (int64_t) (v), 0.0 }
#define HG_LOG_REAL(k, v) { (k), HG_LOG_FIELD_REAL, NULL, 0, (double) (v) }

/* Open FILE ("-" = stderr). Until the first call, lines go to stderr as
 * text at level info. On failure the previous target stays. A file is
 * created 0640 (it holds job output), never opened through a symbolic
 * link, and must be a regular file or a character device. */
int hg_log_open(const char *file, hg_log_level_t level,
                hg_log_format_t format);
/* Reopen the same file (SIGUSR1, after log rotation). */
int hg_log_reopen(void);
/* Why the last hg_log_open or hg_log_reopen failed, naming the file:
 * "log file F is a symbolic link: ...", "cannot open log file F: ...". */
const char *hg_log_open_error(void);
/* The last error-level message logged by this process, or "". */
const char *hg_log_last_error(void);
void hg_log_close(void);
/* The process name written in every line ("master", "worker"). */
void hg_log_set_process(const char *name);
void hg_log_set_buffered(bool buffered);
void hg_log_flush(void);
bool hg_log_enabled(hg_log_level_t level);
int hg_log_fd(void);
/* The log descriptor was moved (dup2) to FD: use it from now on. */
void hg_log_use_fd(int fd);

/* A plain message. */
void hg_log(hg_log_level_t level, const char *fmt, ...) HG_PRINTF(2, 3);

/* An event about a job and/or an execution (either may be NULL), with
 * structured fields and an optional message (fmt may be NULL). */
void hg_log_event(hg_log_level_t level, const char *event,
                  const char *job_id, const char *exec_id,
                  const hg_log_field_t *fields, size_t nfields,
                  const char *fmt, ...) HG_PRINTF(7, 8);

const char *hg_log_level_name(hg_log_level_t level);
/* 2026-11-23T19:00:00.123Z: at least 25 bytes. */
void hg_format_utc_ms(int64_t ms, char *buf, size_t len);

#endif /* HG_LOG_H */
