// fuzz-sources: core/hg_ipc.c core/hg_msg.c
/*
 * fuzz_ipc.c: libFuzzer target for the IPC frame parser (core/hg_ipc.c).
 *
 * The input is a byte stream as a worker or the master might send it. It
 * goes through two paths that must agree:
 *
 *  1. hg_ipc_parse over the whole buffer, frame after frame;
 *  2. a real pipe into an hg_ipc_reader, in chunks whose sizes are derived
 *     from the input (one byte at a time up to whole), with hg_ipc_next
 *     drained after every chunk, as the master's read handler does.
 *
 * Both must produce the same frames, then the same end: "need more bytes"
 * or the same error message. Every decoded frame has every getter called
 * on every tag it holds (and on absent tags), checked against the raw
 * field; it is re-encoded with the writer, which must give back the very
 * same bytes, and every proper prefix of it must parse as incomplete.
 *
 * A DISPATCH or RESULT frame also goes through its typed decoder
 * (core/hg_msg.c): when that accepts it, its encoder must give a frame
 * that decodes to the same message.
 *
 * Any disagreement calls abort(), which libFuzzer reports as a crash.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "hg_core.h"

#include <fcntl.h>

#include "hg_ipc.h"
#include "hg_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "fuzz_ipc.c:%d: check failed: %s\n",          \
                    __LINE__, #cond);                                     \
            abort();                                                      \
        }                                                                 \
    } while (0)

static int fuzz_fds[2] = { -1, -1 };

static uint64_t
fuzz_seed(const uint8_t *data, size_t size)
{
    uint64_t h = 1469598103934665603ULL;
    size_t i;

    for (i = 0; i < size; i++) {
        h ^= data[i];
        h *= 1099511628211ULL;
    }
    return h ? h : 1;
}

static uint64_t
fuzz_rng(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

/* The first field with `tag`, found the slow way. */
static const hg_ipc_field_t *
fuzz_first(const hg_ipc_frame_t *frame, uint16_t tag)
{
    size_t i;

    for (i = 0; i < frame->nfields; i++) {
        if (frame->fields[i].tag == tag) {
            return &frame->fields[i];
        }
    }
    return NULL;
}

/* Every getter on `tag`, checked against the raw field. */
static void
fuzz_getters(const hg_ipc_frame_t *frame, uint16_t tag)
{
    const hg_ipc_field_t *want = fuzz_first(frame, tag), *got;
    uint32_t u32 = 0x5a5a5a5a;
    int32_t i32 = 0x5a5a5a5a;
    int64_t i64 = 0x5a5a5a5a5a5a5a5aLL;
    char *s;
    int rc;

    got = hg_ipc_field(frame, tag);
    FUZZ_CHECK(got == want);

    rc = hg_ipc_get_u32(frame, tag, &u32);
    FUZZ_CHECK((rc == HG_OK) == (want != NULL && want->len == 4));
    FUZZ_CHECK(rc == HG_OK ? memcmp(&u32, want->data, 4) == 0
                           : u32 == 0x5a5a5a5a);
    rc = hg_ipc_get_i32(frame, tag, &i32);
    FUZZ_CHECK((rc == HG_OK) == (want != NULL && want->len == 4));
    FUZZ_CHECK(rc == HG_OK ? memcmp(&i32, want->data, 4) == 0
                           : i32 == 0x5a5a5a5a);
    rc = hg_ipc_get_i64(frame, tag, &i64);
    FUZZ_CHECK((rc == HG_OK) == (want != NULL && want->len == 8));
    FUZZ_CHECK(rc == HG_OK ? memcmp(&i64, want->data, 8) == 0
                           : i64 == 0x5a5a5a5a5a5a5a5aLL);

    s = hg_ipc_get_strdup(frame, tag);
    if (want == NULL || memchr(want->data, '\0', want->len) != NULL) {
        FUZZ_CHECK(s == NULL);
    } else {
        FUZZ_CHECK(s != NULL);
        FUZZ_CHECK(strlen(s) == want->len);
        FUZZ_CHECK(memcmp(s, want->data, want->len) == 0);
    }
    free(s);
}

static bool
fuzz_same_frame(const hg_ipc_frame_t *a, const hg_ipc_frame_t *b)
{
    size_t i;

    if (a->type != b->type || a->nfields != b->nfields) {
        return false;
    }
    for (i = 0; i < a->nfields; i++) {
        if (a->fields[i].tag != b->fields[i].tag
            || a->fields[i].len != b->fields[i].len
            || (a->fields[i].len > 0
                && memcmp(a->fields[i].data, b->fields[i].data,
                          a->fields[i].len) != 0))
        {
            return false;
        }
    }
    return true;
}

static bool
fuzz_same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL)
           || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool
fuzz_same_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* The typed decoders: what they accept, re-encoded, decodes the same. */
static void
fuzz_check_message(const hg_ipc_frame_t *frame)
{
    hg_ipc_frame_t again;
    hg_ipc_buf_t buf;
    size_t len = 0;
    char err[256];

    hg_ipc_buf_init(&buf);
    if (frame->type == HG_IPC_DISPATCH) {
        hg_msg_dispatch_t d, e;
        if (hg_msg_get_dispatch(frame, &d, err, sizeof(err)) == HG_OK) {
            FUZZ_CHECK(hg_msg_put_dispatch(&buf, &d) == HG_OK);
            FUZZ_CHECK(hg_ipc_parse(buf.data, buf.len, &again, &len, err,
                                    sizeof(err)) == 1);
            FUZZ_CHECK(hg_msg_get_dispatch(&again, &e, err, sizeof(err))
                       == HG_OK);
            FUZZ_CHECK(fuzz_same_str(d.exec_id, e.exec_id)
                       && fuzz_same_str(d.job_id, e.job_id)
                       && fuzz_same_str(d.type, e.type)
                       && fuzz_same_str(d.trigger, e.trigger)
                       && fuzz_same_bytes(d.job_def, d.job_def_len,
                                          e.job_def, e.job_def_len)
                       && (d.payload == NULL) == (e.payload == NULL)
                       && fuzz_same_bytes(d.payload, d.payload_len,
                                          e.payload, e.payload_len)
                       && d.attempt == e.attempt
                       && d.scheduled_for_ms == e.scheduled_for_ms
                       && d.timeout_ms == e.timeout_ms
                       && d.output_limit == e.output_limit
                       && d.limits.memory == e.limits.memory
                       && d.limits.tasks == e.limits.tasks);
            hg_msg_dispatch_free(&e);
        }
        hg_msg_dispatch_free(&d);
    } else if (frame->type == HG_IPC_RESULT) {
        hg_msg_result_t r, q;
        if (hg_msg_get_result(frame, &r, err, sizeof(err)) == HG_OK) {
            FUZZ_CHECK(hg_msg_put_result(&buf, &r) == HG_OK);
            FUZZ_CHECK(hg_ipc_parse(buf.data, buf.len, &again, &len, err,
                                    sizeof(err)) == 1);
            FUZZ_CHECK(hg_msg_get_result(&again, &q, err, sizeof(err))
                       == HG_OK);
            FUZZ_CHECK(fuzz_same_str(r.exec_id, q.exec_id)
                       && r.result == q.result
                       && r.has_exit_code == q.has_exit_code
                       && (!r.has_exit_code || r.exit_code == q.exit_code)
                       && r.signo == q.signo
                       && fuzz_same_bytes(r.output, r.output_len,
                                          q.output, q.output_len)
                       && r.truncated == q.truncated
                       && fuzz_same_str(r.error, q.error)
                       && r.retry_after_ms == q.retry_after_ms
                       && fuzz_same_str(r.metrics, q.metrics)
                       && r.has_times == q.has_times
                       && (!r.has_times
                           || (r.started_ms == q.started_ms
                               && r.finished_ms == q.finished_ms))
                       && r.max_rss_kb == q.max_rss_kb
                       && r.cpu_user_ms == q.cpu_user_ms
                       && r.cpu_sys_ms == q.cpu_sys_ms);
            hg_msg_result_free(&q);
        }
        hg_msg_result_free(&r);
    }
    hg_ipc_buf_free(&buf);
}

/* A frame parsed from `bytes` (frame_len long): its fields lie inside it,
 * the getters agree with the raw fields, the writer re-encodes it to the
 * same bytes, and no proper prefix of it is a frame. */
static void
fuzz_check_frame(const hg_ipc_frame_t *frame, const uint8_t *bytes,
                 size_t frame_len, uint64_t *rng)
{
    static const uint16_t extra_tags[] = { 0, 11, 19, 33, 39, 42, 0xffff };
    hg_ipc_frame_t again, partial;
    hg_ipc_buf_t buf;
    size_t i, pos = HG_IPC_HEADER_SIZE, again_len = 0, cut;
    char err[256];

    FUZZ_CHECK(frame->type >= HG_IPC_DISPATCH
               && frame->type <= HG_IPC_TYPE_LAST);
    FUZZ_CHECK(frame->nfields <= HG_IPC_MAX_FIELDS);
    FUZZ_CHECK(frame_len >= HG_IPC_HEADER_SIZE
               && frame_len <= HG_IPC_HEADER_SIZE + (size_t) HG_IPC_MAX_BODY);
    /* Fields are consecutive and fill the body exactly. */
    for (i = 0; i < frame->nfields; i++) {
        pos += 6;
        FUZZ_CHECK(frame->fields[i].data == bytes + pos);
        pos += frame->fields[i].len;
        FUZZ_CHECK(pos <= frame_len);
    }
    FUZZ_CHECK(pos == frame_len);

    for (i = 0; i < frame->nfields; i++) {
        fuzz_getters(frame, frame->fields[i].tag);
    }
    for (i = 0; i < HG_NELEMS(extra_tags); i++) {
        fuzz_getters(frame, extra_tags[i]);
    }
    for (i = HG_IPC_F_EXEC_ID; i <= HG_IPC_F_INIT_ERROR; i++) {
        fuzz_getters(frame, (uint16_t) i);
    }
    fuzz_check_message(frame);

    /* Re-encode: the same bytes, and they parse to the same frame. */
    hg_ipc_buf_init(&buf);
    hg_ipc_begin(&buf, (hg_ipc_type_t) frame->type);
    for (i = 0; i < frame->nfields; i++) {
        hg_ipc_put_bytes(&buf, frame->fields[i].tag, frame->fields[i].data,
                         frame->fields[i].len);
    }
    FUZZ_CHECK(hg_ipc_end(&buf) == HG_OK);
    FUZZ_CHECK(buf.start == 0 && buf.len == frame_len);
    FUZZ_CHECK(memcmp(buf.data, bytes, frame_len) == 0);
    FUZZ_CHECK(hg_ipc_parse(buf.data, buf.len, &again, &again_len, err,
                            sizeof(err)) == 1);
    FUZZ_CHECK(again_len == frame_len);
    FUZZ_CHECK(fuzz_same_frame(frame, &again));
    hg_ipc_buf_free(&buf);

    /* Proper prefixes: "need more", never a frame and never an error (the
     * header is valid, and the body is checked only once complete). */
    for (i = 0; i < 4; i++) {
        switch (i) {
        case 0: cut = HG_IPC_HEADER_SIZE - 1; break;
        case 1: cut = HG_IPC_HEADER_SIZE; break;
        case 2: cut = frame_len - 1; break;
        default: cut = (size_t) (fuzz_rng(rng) % frame_len); break;
        }
        if (cut >= frame_len) {
            continue;
        }
        again_len = 0;
        FUZZ_CHECK(hg_ipc_parse(bytes, cut, &partial, &again_len, err,
                                sizeof(err)) == 0);
        FUZZ_CHECK(again_len == 0);
    }
}

static void
fuzz_pipe_init(void)
{
    if (fuzz_fds[0] >= 0) {
        return;
    }
    if (pipe2(fuzz_fds, O_CLOEXEC | O_NONBLOCK) < 0) {
        perror("fuzz_ipc: pipe2");
        abort();
    }
}

/* Read everything the pipe holds into the reader. */
static void
fuzz_read_all(hg_ipc_reader_t *reader, size_t *in_reader)
{
    ssize_t n;

    for (;;) {
        n = hg_ipc_read(reader, fuzz_fds[0]);
        if (n == HG_AGAIN) {
            return;
        }
        FUZZ_CHECK(n > 0);          /* the write end stays open */
        *in_reader += (size_t) n;
    }
}

/* Put `len` bytes through the pipe into the reader. */
static void
fuzz_feed(hg_ipc_reader_t *reader, const uint8_t *p, size_t len,
          size_t *in_reader)
{
    while (len > 0) {
        ssize_t n = write(fuzz_fds[1], p, len < 65536 ? len : 65536);
        if (n < 0) {
            FUZZ_CHECK(errno == EAGAIN || errno == EINTR);
            n = 0;
        }
        p += n;
        len -= (size_t) n;
        fuzz_read_all(reader, in_reader);
    }
}

/* A valid frame of `len` bytes (READY with one unknown field), made once
 * per size. Sent ahead of some inputs so that, once it is consumed, the
 * reader holds more than half its buffer of consumed bytes in front of
 * the input's bytes: that is the path where hg_ipc_read compacts the
 * buffer under a partial frame. */
static const uint8_t *
fuzz_padding(size_t len)
{
    static uint8_t *pad;
    static size_t pad_len;

    if (pad_len != len) {
        uint32_t body = (uint32_t) (len - HG_IPC_HEADER_SIZE);
        uint32_t magic = HG_IPC_MAGIC, zero = 0, flen = body - 6;
        uint16_t version = HG_IPC_VERSION, type = HG_IPC_READY;
        uint16_t tag = 0xfffe;
        free(pad);
        pad = calloc(1, len);
        FUZZ_CHECK(pad != NULL);
        memcpy(pad, &magic, 4);
        memcpy(pad + 4, &version, 2);
        memcpy(pad + 6, &type, 2);
        memcpy(pad + 8, &body, 4);
        memcpy(pad + 12, &zero, 4);
        memcpy(pad + 16, &tag, 2);
        memcpy(pad + 18, &flen, 4);
        pad_len = len;
    }
    return pad;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hg_ipc_reader_t reader;
    hg_ipc_frame_t frame, direct;
    char err[256], direct_err[256];
    size_t off = 0, fed = 0, in_reader = 0, frame_len, chunk_max;
    size_t pad_len = 0;
    uint64_t seed, rng;
    int rc = 0, drc;

    if (size == 0) {
        return 0;
    }
    seed = fuzz_seed(data, size);
    rng = seed;

    /* Path 1: the whole buffer, frame after frame. */
    for (;;) {
        frame_len = 0;
        rc = hg_ipc_parse(data + off, size - off, &frame, &frame_len, err,
                          sizeof(err));
        if (rc != 1) {
            break;
        }
        FUZZ_CHECK(frame_len > 0 && frame_len <= size - off);
        fuzz_check_frame(&frame, data + off, frame_len, &rng);
        off += frame_len;
    }
    FUZZ_CHECK(rc == 0 || rc == HG_ERROR);

    /* Path 2: through a pipe and a reader, in input-derived chunks. */
    fuzz_pipe_init();
    hg_ipc_reader_init(&reader);
    if ((seed >> 8) % 8 == 0) {
        /* Read into the reader but not handed out yet: it comes out
         * first, in the loop below, together with the first chunk. The
         * sizes straddle the reader's growth steps (its buffer keeps 64
         * KiB free beyond what it holds) so that some inputs start past
         * half of the buffer. */
        pad_len = 200000 + (size_t) ((seed >> 16) % 300000);
        fuzz_feed(&reader, fuzz_padding(pad_len), pad_len, &in_reader);
        in_reader = 0;
    }
    switch (seed % 5) {
    case 0: chunk_max = 1; break;
    case 1: chunk_max = 7; break;
    case 2: chunk_max = 64; break;
    case 3: chunk_max = 4096; break;
    default: chunk_max = size; break;
    }
    off = 0;
    rc = 0;
    while (fed < size && rc != HG_ERROR) {
        size_t chunk = 1 + (size_t) (fuzz_rng(&rng) % chunk_max);
        if (chunk > size - fed) {
            chunk = size - fed;
        }
        fuzz_feed(&reader, data + fed, chunk, &in_reader);
        fed += chunk;
        FUZZ_CHECK(in_reader == fed);
        while ((rc = hg_ipc_next(&reader, &frame, err, sizeof(err))) == 1) {
            if (pad_len > 0) {
                FUZZ_CHECK(frame.type == HG_IPC_READY && frame.nfields == 1
                           && frame.fields[0].tag == 0xfffe
                           && frame.fields[0].len
                              == pad_len - HG_IPC_HEADER_SIZE - 6);
                pad_len = 0;
                continue;
            }
            /* The same frame the whole-buffer parse found here. */
            frame_len = 0;
            drc = hg_ipc_parse(data + off, size - off, &direct, &frame_len,
                               direct_err, sizeof(direct_err));
            FUZZ_CHECK(drc == 1);
            FUZZ_CHECK(frame_len <= fed - off);
            FUZZ_CHECK(fuzz_same_frame(&frame, &direct));
            fuzz_getters(&frame, frame.nfields > 0 ? frame.fields[0].tag
                                                   : HG_IPC_F_PID);
            off += frame_len;
        }
    }
    /* The same ending: need more bytes, or the same error. */
    frame_len = 0;
    direct_err[0] = '\0';
    drc = hg_ipc_parse(data + off, size - off, &direct, &frame_len,
                       direct_err, sizeof(direct_err));
    FUZZ_CHECK(drc == rc);
    if (rc == HG_ERROR) {
        FUZZ_CHECK(strcmp(err, direct_err) == 0);
    }
    /* Leave the pipe empty for the next input. */
    fuzz_read_all(&reader, &in_reader);
    hg_ipc_reader_free(&reader);
    return 0;
}
