/*
 * The key table of scheduler.conf, shared by the reader (hg_conf.c) and the
 * -T dump (hg_conf_dump.c). Internal to hg_conf: nothing outside those two
 * files includes it.
 *
 * Every key is described once: its name, type, default (as it would be
 * written in the file), bounds and where its value lives (an offset into
 * the structure its group fills). A group key points to the section that
 * describes its members. Reading, defaults, messages, hints, the dump and
 * freeing all walk these tables; adding a key is adding one line.
 */

#ifndef HG_CONF_TABLE_H
#define HG_CONF_TABLE_H

#include "hg_core.h"

#include <libconfig.h>

#include "hg_conf.h"

typedef enum {
    HG_CONF_BOOL = 0,       /* bool */
    HG_CONF_INT,            /* int, min .. max */
    HG_CONF_INT_AUTO,       /* int, or "auto" = online CPUs */
    HG_CONF_REAL,           /* double, rmin .. rmax; integers accepted */
    HG_CONF_STRING,         /* char * */
    HG_CONF_PATH,           /* char *, made absolute against the prefix */
    HG_CONF_DURATION,       /* int64_t milliseconds, min .. max */
    HG_CONF_SIZE,           /* uint64_t bytes, min .. max */
    HG_CONF_ENUM,           /* int (a C enum): the index in values[] */
    HG_CONF_ENUM_STRING,    /* char *, one of values[] */
    HG_CONF_STRING_LIST,    /* char ** at offset, size_t count at offset2 */
    HG_CONF_STRING_ARRAY,   /* json_t * array of strings */
    HG_CONF_GROUP,          /* section; its offsets start at offset */
    HG_CONF_HANDLER         /* read, dumped and freed by handler */
} hg_conf_type_t;

#define HG_CONF_REQUIRED  0x01u     /* an error when absent */
#define HG_CONF_NONEMPTY  0x02u     /* strings (and list elements): not "" */
#define HG_CONF_DASH      0x04u     /* PATH: "-" (stderr) kept as is */
#define HG_CONF_PRESENCE  0x08u     /* GROUP: if written; bool at offset2 */
#define HG_CONF_SECRET    0x10u     /* dumped masked */
#define HG_CONF_LATE      0x20u     /* read after the other keys of its group */
#define HG_CONF_UNIQUE    0x40u     /* lists: no element twice */
/* Read once at start: a reload that changes it says so (the daemon keeps
 * the value it started with until the next start). */
#define HG_CONF_RESTART   0x80u

/* What the dump writes for a SECRET value. */
#define HG_CONF_MASK  "****"

typedef struct hg_conf_key_s hg_conf_key_t;
typedef struct hg_conf_section_s hg_conf_section_t;
typedef struct hg_conf_loader_s hg_conf_loader_t;

/* Where a value sits, for messages: `job "x"` (or NULL outside jobs) and
 * the dotted path of the group being read ("" at the top, "log",
 * "api.tokens[0]", "backoff" inside a job). */
typedef struct hg_conf_where_s {
    const char *job;
    const char *group;
} hg_conf_where_t;

typedef struct hg_conf_handler_s {
    void (*read)(hg_conf_loader_t *ld, const hg_conf_key_t *key, char *base,
                 const config_setting_t *setting, const hg_conf_where_t *w);
    int (*dump)(const hg_conf_key_t *key, const char *base, FILE *out,
                int indent);
    void (*free)(const hg_conf_key_t *key, char *base);
} hg_conf_handler_t;

struct hg_conf_key_s {
    const char *name;
    hg_conf_type_t type;
    unsigned flags;
    size_t offset;
    size_t offset2;
    const char *dflt;               /* as written in the file; NULL: none */
    int64_t min, max;               /* INT, DURATION (ms), SIZE (bytes) */
    double rmin, rmax;              /* REAL */
    const char *const *values;      /* ENUM, ENUM_STRING; NULL-terminated */
    const hg_conf_section_t *section;               /* GROUP */
    const hg_conf_handler_t *handler;               /* HANDLER */
    /* extra validation of a string value: HG_ERROR with a reason */
    int (*check)(const char *value, char *err, size_t errlen);
    const char *help;               /* one line, shown by the -T dump */
};

struct hg_conf_section_s {
    const char *name;
    const hg_conf_key_t *keys;
    size_t nkeys;
    /* more keys of this group described by another section, stored at
     * also_offset (a job's policy keys are the `defaults` keys) */
    const hg_conf_section_t *also;
    size_t also_offset;
    /* members that are no key: NULL reports them as unknown keys */
    void (*unknown)(hg_conf_loader_t *ld, const hg_conf_section_t *sec,
                    char *base, const config_setting_t *member,
                    const hg_conf_where_t *w, json_t *out);
    /* extra output after the keys in the dump (modules.NAME sections) */
    int (*dump_extra)(const char *base, FILE *out, int indent);
};

extern const hg_conf_section_t hg_conf_root_section;
extern const hg_conf_section_t hg_conf_job_section;
extern const hg_conf_section_t hg_conf_policy_section;
extern const hg_conf_section_t hg_conf_token_section;

/* The key NAME of SEC (its `also` keys included), with *offset set to
 * what must be added to the group's base for the key's own offset. */
const hg_conf_key_t *hg_conf_section_find(const hg_conf_section_t *sec,
                                          const char *name, size_t *offset);

/* Dump side (hg_conf_dump.c). */
int hg_conf_dump_section(const hg_conf_section_t *sec, const char *base,
                         FILE *out, int indent);
int hg_conf_dump_jobs(const hg_conf_key_t *key, const char *base, FILE *out,
                      int indent);
int hg_conf_dump_channels(const hg_conf_key_t *key, const char *base,
                          FILE *out, int indent);
int hg_conf_dump_tokens(const hg_conf_key_t *key, const char *base,
                        FILE *out, int indent);
int hg_conf_dump_modules(const char *base, FILE *out, int indent);
/* A JSON value in scheduler.conf syntax ("$" written "$$"). */
int hg_conf_dump_json(const json_t *value, FILE *out, int indent);
int hg_conf_dump_string(const char *s, FILE *out);

#endif /* HG_CONF_TABLE_H */
