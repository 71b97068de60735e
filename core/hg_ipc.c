/*
 * hg_ipc.c: building, sending, receiving and checking frames. It trusts
 * nothing it reads: every length is checked against what is really there
 * before it is used.
 */

#include "hg_core.h"

#include "hg_ipc.h"

void
hg_ipc_buf_init(hg_ipc_buf_t *buf)
{
    memset(buf, 0, sizeof(*buf));
}

void
hg_ipc_buf_free(hg_ipc_buf_t *buf)
{
    free(buf->data);
    hg_ipc_buf_init(buf);
}

void
hg_ipc_buf_compact(hg_ipc_buf_t *buf)
{
    if (buf->start == 0) {
        return;
    }
    if (buf->start < buf->len) {
        memmove(buf->data, buf->data + buf->start, buf->len - buf->start);
    }
    buf->len -= buf->start;
    buf->start = 0;
}

static int
hg_ipc_reserve(hg_ipc_buf_t *buf, size_t more)
{
    size_t need, cap;
    uint8_t *data;

    if (buf->failed) {
        return HG_ERROR;
    }
    if (more > SIZE_MAX - buf->len) {
        buf->failed = true;
        return HG_ERROR;
    }
    need = buf->len + more;
    if (need <= buf->cap) {
        return HG_OK;
    }
    cap = buf->cap ? buf->cap : 4096;
    while (cap < need) {
        cap *= 2;
    }
    data = realloc(buf->data, cap);
    if (data == NULL) {
        buf->failed = true;
        return HG_ERROR;
    }
    buf->data = data;
    buf->cap = cap;
    return HG_OK;
}

static void
hg_ipc_append(hg_ipc_buf_t *buf, const void *data, size_t len)
{
    if (hg_ipc_reserve(buf, len) != HG_OK) {
        return;
    }
    if (len > 0) {
        memcpy(buf->data + buf->len, data, len);
    }
    buf->len += len;
}

void
hg_ipc_begin(hg_ipc_buf_t *buf, hg_ipc_type_t type)
{
    uint32_t magic = HG_IPC_MAGIC, zero = 0;
    uint16_t version = HG_IPC_VERSION, t = (uint16_t) type;

    buf->failed = false;
    buf->frame = buf->len;
    hg_ipc_append(buf, &magic, 4);
    hg_ipc_append(buf, &version, 2);
    hg_ipc_append(buf, &t, 2);
    hg_ipc_append(buf, &zero, 4);      /* length, filled by hg_ipc_end */
    hg_ipc_append(buf, &zero, 4);
}

void
hg_ipc_put_bytes(hg_ipc_buf_t *buf, uint16_t tag, const void *data,
                 size_t len)
{
    uint32_t l;

    if (len > HG_IPC_MAX_BODY) {
        buf->failed = true;
        return;
    }
    l = (uint32_t) len;
    hg_ipc_append(buf, &tag, 2);
    hg_ipc_append(buf, &l, 4);
    hg_ipc_append(buf, data, len);
}

void
hg_ipc_put_str(hg_ipc_buf_t *buf, uint16_t tag, const char *s)
{
    if (s != NULL) {
        hg_ipc_put_bytes(buf, tag, s, strlen(s));
    }
}

void
hg_ipc_put_u32(hg_ipc_buf_t *buf, uint16_t tag, uint32_t v)
{
    hg_ipc_put_bytes(buf, tag, &v, sizeof(v));
}

void
hg_ipc_put_i32(hg_ipc_buf_t *buf, uint16_t tag, int32_t v)
{
    hg_ipc_put_bytes(buf, tag, &v, sizeof(v));
}

void
hg_ipc_put_i64(hg_ipc_buf_t *buf, uint16_t tag, int64_t v)
{
    hg_ipc_put_bytes(buf, tag, &v, sizeof(v));
}

int
hg_ipc_end(hg_ipc_buf_t *buf)
{
    size_t body;
    uint32_t len;

    if (buf->failed || buf->len < buf->frame + HG_IPC_HEADER_SIZE) {
        buf->len = buf->frame;
        buf->failed = false;
        return HG_ERROR;
    }
    body = buf->len - buf->frame - HG_IPC_HEADER_SIZE;
    if (body > HG_IPC_MAX_BODY) {
        buf->len = buf->frame;
        return HG_ERROR;
    }
    len = (uint32_t) body;
    memcpy(buf->data + buf->frame + 8, &len, 4);
    return HG_OK;
}

void
hg_ipc_reader_init(hg_ipc_reader_t *reader)
{
    hg_ipc_buf_init(&reader->in);
    reader->consumed = 0;
}

void
hg_ipc_reader_free(hg_ipc_reader_t *reader)
{
    hg_ipc_buf_free(&reader->in);
    reader->consumed = 0;
}

ssize_t
hg_ipc_read(hg_ipc_reader_t *reader, int fd)
{
    hg_ipc_buf_t *in = &reader->in;
    ssize_t n;

    in->start += reader->consumed;
    reader->consumed = 0;
    if (in->start > 0 && in->start == in->len) {
        in->start = in->len = 0;
    } else if (in->start > in->cap / 2) {
        hg_ipc_buf_compact(in);
    }
    if (hg_ipc_reserve(in, 65536) != HG_OK) {
        in->failed = false;
        return HG_ERROR;
    }
    for (;;) {
        n = read(fd, in->data + in->len, in->cap - in->len);
        if (n >= 0) {
            in->len += (size_t) n;
            return n;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return HG_AGAIN;
        }
        return HG_ERROR;
    }
}

int
hg_ipc_reader_feed(hg_ipc_reader_t *reader, const void *data, size_t len)
{
    hg_ipc_buf_t *in = &reader->in;

    in->start += reader->consumed;
    reader->consumed = 0;
    if (in->start > 0 && in->start == in->len) {
        in->start = in->len = 0;
    }
    if (len == 0) {
        return HG_OK;
    }
    if (hg_ipc_reserve(in, len) != HG_OK) {
        in->failed = false;
        return HG_ERROR;
    }
    memcpy(in->data + in->len, data, len);
    in->len += len;
    return HG_OK;
}

void
hg_ipc_reader_last(const hg_ipc_reader_t *reader, const uint8_t **data,
                   size_t *len)
{
    *data = reader->in.data != NULL ? reader->in.data + reader->in.start
                                    : NULL;
    *len = reader->consumed;
}

void
hg_ipc_reader_rest(const hg_ipc_reader_t *reader, const uint8_t **data,
                   size_t *len)
{
    size_t from = reader->in.start + reader->consumed;

    *data = reader->in.data != NULL ? reader->in.data + from : NULL;
    *len = reader->in.len - from;
}

int
hg_ipc_parse(const uint8_t *data, size_t len, hg_ipc_frame_t *frame,
             size_t *frame_len, char *err, size_t errlen)
{
    uint32_t magic, body, reserved;
    uint16_t version, type;
    size_t pos, end;

    if (len < HG_IPC_HEADER_SIZE) {
        return 0;
    }
    memcpy(&magic, data, 4);
    memcpy(&version, data + 4, 2);
    memcpy(&type, data + 6, 2);
    memcpy(&body, data + 8, 4);
    memcpy(&reserved, data + 12, 4);
    if (magic != HG_IPC_MAGIC) {
        snprintf(err, errlen, "bad magic 0x%08" PRIx32, magic);
        return HG_ERROR;
    }
    if (version != HG_IPC_VERSION) {
        snprintf(err, errlen, "frame version %u, expected %u",
                 (unsigned) version, (unsigned) HG_IPC_VERSION);
        return HG_ERROR;
    }
    if (type < HG_IPC_DISPATCH || type > HG_IPC_TYPE_LAST) {
        snprintf(err, errlen, "unknown frame type %u", (unsigned) type);
        return HG_ERROR;
    }
    if (reserved != 0) {
        snprintf(err, errlen, "reserved header word is not zero");
        return HG_ERROR;
    }
    if (body > HG_IPC_MAX_BODY) {
        snprintf(err, errlen, "frame body of %" PRIu32 " bytes exceeds the "
                 "limit of %u", body, HG_IPC_MAX_BODY);
        return HG_ERROR;
    }
    if (len - HG_IPC_HEADER_SIZE < body) {
        return 0;
    }
    frame->type = type;
    frame->nfields = 0;
    pos = HG_IPC_HEADER_SIZE;
    end = HG_IPC_HEADER_SIZE + (size_t) body;
    while (pos < end) {
        uint16_t tag;
        uint32_t flen;
        if (end - pos < 6) {
            snprintf(err, errlen, "truncated field header at byte %zu", pos);
            return HG_ERROR;
        }
        memcpy(&tag, data + pos, 2);
        memcpy(&flen, data + pos + 2, 4);
        pos += 6;
        if (flen > end - pos) {
            snprintf(err, errlen, "field %u of %" PRIu32 " bytes runs past "
                     "the end of the frame", (unsigned) tag, flen);
            return HG_ERROR;
        }
        if (frame->nfields == HG_IPC_MAX_FIELDS) {
            snprintf(err, errlen, "more than %d fields", HG_IPC_MAX_FIELDS);
            return HG_ERROR;
        }
        frame->fields[frame->nfields].tag = tag;
        frame->fields[frame->nfields].len = flen;
        frame->fields[frame->nfields].data = data + pos;
        frame->nfields++;
        pos += flen;
    }
    *frame_len = end;
    return 1;
}

int
hg_ipc_next(hg_ipc_reader_t *reader, hg_ipc_frame_t *frame, char *err,
            size_t errlen)
{
    hg_ipc_buf_t *in = &reader->in;
    size_t frame_len = 0;
    int rc;

    in->start += reader->consumed;
    reader->consumed = 0;
    if (in->start == in->len) {
        return 0;                       /* nothing buffered (data may be NULL) */
    }
    rc = hg_ipc_parse(in->data + in->start, in->len - in->start, frame,
                      &frame_len, err, errlen);
    if (rc == 1) {
        reader->consumed = frame_len;
    }
    return rc;
}

const hg_ipc_field_t *
hg_ipc_field(const hg_ipc_frame_t *frame, uint16_t tag)
{
    size_t i;

    for (i = 0; i < frame->nfields; i++) {
        if (frame->fields[i].tag == tag) {
            return &frame->fields[i];
        }
    }
    return NULL;
}

static int
hg_ipc_get_fixed(const hg_ipc_frame_t *frame, uint16_t tag, void *v,
                 size_t size)
{
    const hg_ipc_field_t *f = hg_ipc_field(frame, tag);

    if (f == NULL || f->len != size) {
        return HG_ERROR;
    }
    memcpy(v, f->data, size);
    return HG_OK;
}

int
hg_ipc_get_u32(const hg_ipc_frame_t *frame, uint16_t tag, uint32_t *v)
{
    return hg_ipc_get_fixed(frame, tag, v, sizeof(*v));
}

int
hg_ipc_get_i32(const hg_ipc_frame_t *frame, uint16_t tag, int32_t *v)
{
    return hg_ipc_get_fixed(frame, tag, v, sizeof(*v));
}

int
hg_ipc_get_i64(const hg_ipc_frame_t *frame, uint16_t tag, int64_t *v)
{
    return hg_ipc_get_fixed(frame, tag, v, sizeof(*v));
}

char *
hg_ipc_get_strdup(const hg_ipc_frame_t *frame, uint16_t tag)
{
    const hg_ipc_field_t *f = hg_ipc_field(frame, tag);
    char *s;

    if (f == NULL || memchr(f->data, '\0', f->len) != NULL) {
        return NULL;
    }
    s = malloc((size_t) f->len + 1);
    if (s == NULL) {
        return NULL;
    }
    memcpy(s, f->data, f->len);
    s[f->len] = '\0';
    return s;
}

int
hg_ipc_write_all(int fd, hg_ipc_buf_t *buf)
{
    while (buf->start < buf->len) {
        ssize_t n = write(fd, buf->data + buf->start, buf->len - buf->start);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return HG_ERROR;
        }
        buf->start += (size_t) n;
    }
    buf->start = buf->len = 0;
    return HG_OK;
}

int
hg_ipc_write_some(int fd, hg_ipc_buf_t *buf)
{
    while (buf->start < buf->len) {
        ssize_t n = write(fd, buf->data + buf->start, buf->len - buf->start);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return HG_AGAIN;
            }
            return HG_ERROR;
        }
        buf->start += (size_t) n;
    }
    buf->start = buf->len = 0;
    return HG_OK;
}
