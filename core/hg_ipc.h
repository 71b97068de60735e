/*
 * The master <-> worker message format.
 *
 * Frame = 16-byte header + body, all integers in host byte order (both ends
 * are the same machine, parent and forked child):
 *
 *     offset  size  field
 *          0     4  magic    0x31464748 ("HGF1" in memory on little-endian)
 *          4     2  version  HG_IPC_VERSION (1)
 *          6     2  type     HG_IPC_DISPATCH, HG_IPC_RESULT, HG_IPC_READY,
 *                           HG_IPC_STORE_TASK, HG_IPC_STORE_REPLY
 *          8     4  length   of the body, at most HG_IPC_MAX_BODY
 *         12     4  reserved must be 0
 *
 * Body = a sequence of fields, each `tag (2) | length (4) | bytes`. Fixed
 * size fields (u32, i32, i64) must have exactly their size; strings carry
 * no NUL. Unknown tags are skipped, so a newer writer can add fields; a
 * missing required field, a field running past the body, a bad magic,
 * version or reserved word makes the frame malformed. A malformed frame is
 * never half-used: the reader reports it and the connection (the worker)
 * is dropped.
 *
 * Frames larger than PIPE_BUF are fine: readers reassemble from a buffer,
 * the master writes through a per-worker output buffer when the pipe is
 * full and never blocks.
 */

#ifndef HG_IPC_H
#define HG_IPC_H

#include "hg_core.h"

#define HG_IPC_MAGIC        0x31464748u
#define HG_IPC_VERSION      1
#define HG_IPC_HEADER_SIZE  16
#define HG_IPC_MAX_BODY     (64u * 1024 * 1024)
#define HG_IPC_MAX_FIELDS   32

typedef enum {
    HG_IPC_DISPATCH = 1,            /* master -> worker: run this */
    HG_IPC_RESULT = 2,              /* worker -> master: it ended so */
    HG_IPC_READY = 3,               /* worker -> master: initialised */
    /* A running execution's store task (the system module's): the worker
     * asks and waits; the master's store side runs it and answers, if
     * the worker still runs that execution. */
    HG_IPC_STORE_TASK = 4,          /* worker -> master: run this task */
    HG_IPC_STORE_REPLY = 5          /* master -> worker: it ended so */
} hg_ipc_type_t;

/* The highest type a reader accepts: move it with each new type. */
#define HG_IPC_TYPE_LAST    HG_IPC_STORE_REPLY

typedef enum {
    /* DISPATCH */
    HG_IPC_F_EXEC_ID = 1,           /* string */
    HG_IPC_F_JOB_ID = 2,            /* string */
    HG_IPC_F_JOB_DEF = 3,           /* string: the job as JSON */
    HG_IPC_F_PAYLOAD = 4,           /* bytes */
    HG_IPC_F_ATTEMPT = 5,           /* u32 */
    HG_IPC_F_SCHEDULED_FOR = 6,     /* i64 ms */
    /* The worker's deadline is its own start plus this: an execution
     * handed ahead starts when its worker is done with the one before. */
    HG_IPC_F_TIMEOUT = 7,           /* i64 ms, 0 = none */
    HG_IPC_F_TRIGGER = 8,           /* string */
    HG_IPC_F_OUTPUT_LIMIT = 9,      /* i64 bytes */
    HG_IPC_F_TYPE = 10,             /* string: module name */
    HG_IPC_F_TRACEPARENT = 11,      /* string: W3C trace context */

    /* RESULT */
    HG_IPC_F_RESULT = 20,           /* u32 hg_result_t */
    HG_IPC_F_EXIT_CODE = 21,        /* i32, present when set */
    HG_IPC_F_SIGNAL = 22,           /* i32 */
    HG_IPC_F_OUTPUT = 23,           /* bytes */
    HG_IPC_F_TRUNCATED = 24,        /* u32 0/1 */
    HG_IPC_F_ERROR = 25,            /* string */
    HG_IPC_F_RETRY_AFTER = 26,      /* i64 ms, -1 = not set */
    HG_IPC_F_METRICS = 27,          /* string: JSON object */
    HG_IPC_F_STARTED_AT = 28,       /* i64 ms */
    HG_IPC_F_FINISHED_AT = 29,      /* i64 ms */
    HG_IPC_F_MAX_RSS_KB = 30,       /* i64 */
    HG_IPC_F_CPU_USER_MS = 31,      /* i64 */
    HG_IPC_F_CPU_SYS_MS = 32,       /* i64 */
    /* The worker's own deadline (its start plus the timeout) had passed
     * when the module returned: the master's clock for an execution
     * handed ahead starts later than the worker's. */
    HG_IPC_F_DEADLINE_PASSED = 33,  /* u32 0/1 */

    /* READY */
    HG_IPC_F_PID = 40,              /* i32 */
    HG_IPC_F_INIT_ERROR = 41,       /* string: a module's init failed */

    /* STORE_TASK (with HG_IPC_F_EXEC_ID) and STORE_REPLY (the same) */
    HG_IPC_F_STORE_TASK = 50,       /* string: history_cleanup ... */
    HG_IPC_F_STORE_OK = 51,         /* u32 0/1 */
    HG_IPC_F_STORE_REPORT = 52,     /* string: JSON object, when ok */
    HG_IPC_F_STORE_ERROR = 53,      /* string, when not ok */

    /* DISPATCH: the job's limits, absent when none (hg_cgroup.c) */
    HG_IPC_F_LIMIT_MEMORY = 60,     /* i64 bytes */
    HG_IPC_F_LIMIT_CPU = 61,        /* i64 thousandths of a core */
    HG_IPC_F_LIMIT_TASKS = 62       /* i64 processes */
} hg_ipc_tag_t;

/* A growable byte buffer: frames are built into it, and it doubles as the
 * master's per-worker output queue (bytes [start, len) still to send). */
typedef struct hg_ipc_buf_s {
    uint8_t *data;
    size_t len;
    size_t start;
    size_t cap;
    size_t frame;                   /* offset of the frame being built */
    bool failed;                    /* an allocation failed while building */
} hg_ipc_buf_t;

void hg_ipc_buf_init(hg_ipc_buf_t *buf);
void hg_ipc_buf_free(hg_ipc_buf_t *buf);
void hg_ipc_buf_compact(hg_ipc_buf_t *buf);

void hg_ipc_begin(hg_ipc_buf_t *buf, hg_ipc_type_t type);
void hg_ipc_put_bytes(hg_ipc_buf_t *buf, uint16_t tag, const void *data,
                      size_t len);
void hg_ipc_put_str(hg_ipc_buf_t *buf, uint16_t tag, const char *s);
void hg_ipc_put_u32(hg_ipc_buf_t *buf, uint16_t tag, uint32_t v);
void hg_ipc_put_i32(hg_ipc_buf_t *buf, uint16_t tag, int32_t v);
void hg_ipc_put_i64(hg_ipc_buf_t *buf, uint16_t tag, int64_t v);
/* Close the frame; HG_ERROR if anything failed while building it (the
 * partial frame is then dropped from the buffer). */
int hg_ipc_end(hg_ipc_buf_t *buf);

typedef struct hg_ipc_field_s {
    uint16_t tag;
    uint32_t len;
    const uint8_t *data;
} hg_ipc_field_t;

/* A decoded frame; fields point into the reader's buffer and are valid
 * until the next call to hg_ipc_next or hg_ipc_read (which may move the
 * buffer). */
typedef struct hg_ipc_frame_s {
    uint16_t type;
    size_t nfields;
    hg_ipc_field_t fields[HG_IPC_MAX_FIELDS];
} hg_ipc_frame_t;

typedef struct hg_ipc_reader_s {
    hg_ipc_buf_t in;
    size_t consumed;                /* bytes of the last frame handed out */
} hg_ipc_reader_t;

void hg_ipc_reader_init(hg_ipc_reader_t *reader);
void hg_ipc_reader_free(hg_ipc_reader_t *reader);

/* Read what is available from fd into the reader. Returns bytes read (> 0),
 * 0 at end of file, HG_AGAIN when nothing is available (nonblocking fd),
 * HG_ERROR on error. */
ssize_t hg_ipc_read(hg_ipc_reader_t *reader, int fd);

/* The next complete frame in the reader: 1 and *frame filled, 0 when more
 * bytes are needed, HG_ERROR when the bytes are not a valid frame (err
 * says why). */
int hg_ipc_next(hg_ipc_reader_t *reader, hg_ipc_frame_t *frame, char *err,
                size_t errlen);

/* Append LEN bytes to what the reader holds, as if read after them (bytes
 * read by another reader: hg_ipc_reader_rest). Invalidates the fields of
 * the last frame handed out. */
int hg_ipc_reader_feed(hg_ipc_reader_t *reader, const void *data,
                       size_t len);
/* The bytes of the frame hg_ipc_next handed out last (none before the
 * first), and those the reader holds after it, not handed out yet. */
void hg_ipc_reader_last(const hg_ipc_reader_t *reader, const uint8_t **data,
                        size_t *len);
void hg_ipc_reader_rest(const hg_ipc_reader_t *reader, const uint8_t **data,
                        size_t *len);
/* Parse a complete frame held in memory (for tests and fuzzing). */
int hg_ipc_parse(const uint8_t *data, size_t len, hg_ipc_frame_t *frame,
                 size_t *frame_len, char *err, size_t errlen);

const hg_ipc_field_t *hg_ipc_field(const hg_ipc_frame_t *frame, uint16_t tag);
int hg_ipc_get_u32(const hg_ipc_frame_t *frame, uint16_t tag, uint32_t *v);
int hg_ipc_get_i32(const hg_ipc_frame_t *frame, uint16_t tag, int32_t *v);
int hg_ipc_get_i64(const hg_ipc_frame_t *frame, uint16_t tag, int64_t *v);
/* A string field copied into a new NUL-terminated allocation. NULL when
 * absent or when it holds a NUL byte. */
char *hg_ipc_get_strdup(const hg_ipc_frame_t *frame, uint16_t tag);

/* Write buf[start, len) to a blocking fd, retrying short writes and EINTR. */
int hg_ipc_write_all(int fd, hg_ipc_buf_t *buf);
/* Write as much as a nonblocking fd takes: HG_OK when all is out, HG_AGAIN
 * when some is left, HG_ERROR on error. */
int hg_ipc_write_some(int fd, hg_ipc_buf_t *buf);

#endif /* HG_IPC_H */
