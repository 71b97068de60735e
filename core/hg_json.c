/*
 * hg_json.c owns turning JSON into text for the daemon and the client
 * (every document the daemon stores, logs, sends or answers with goes
 * through hg_json_dumps), bytes that may not be text into a JSON
 * string (hg_json_text), and what UTF-8 is (hg_json_utf8_len: also for
 * what PostgreSQL and the log take). It never parses, and it never returns
 * part of a document.
 *
 * Why not json_dumps: jansson (up to 2.14 at least) ignores the result of
 * writing an object's key (dump_string in do_dump), so a text buffer that
 * cannot grow for a key and can for what follows yields a "document" with
 * that key missing, and json_dumps returns it as a success: a record, a
 * request body or an answer that is not JSON, or says something else.
 * Here the first failed write fails every later one, and the result.
 */

#include "hg_core.h"

#include "hg_json.h"

typedef struct {
    char *text;
    size_t len;
    size_t cap;
    bool failed;                    /* sticky: nothing is written after */
} hg_json_text_t;

static int
hg_json_append(const char *bytes, size_t n, void *data)
{
    hg_json_text_t *t = data;

    if (t->failed) {
        return -1;
    }
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap > 0 ? t->cap : 256;
        char *grown;

        while (cap < t->len + n + 1) {
            if (cap > SIZE_MAX / 2) {
                t->failed = true;
                errno = ENOMEM;
                return -1;
            }
            cap *= 2;
        }
        grown = realloc(t->text, cap);
        if (grown == NULL) {
            t->failed = true;
            return -1;
        }
        t->text = grown;
        t->cap = cap;
    }
    memcpy(t->text + t->len, bytes, n);
    t->len += n;
    t->text[t->len] = '\0';
    return 0;
}

char *
hg_json_dumps(const json_t *value, size_t flags)
{
    hg_json_text_t t = { NULL, 0, 0, false };

    if (json_dump_callback(value, hg_json_append, &t, flags) != 0
        || t.failed || t.text == NULL)
    {
        free(t.text);
        if (t.failed) {
            errno = ENOMEM;
        }
        return NULL;
    }
    return t.text;
}

size_t
hg_json_utf8_len(const unsigned char *s, size_t n)
{
    uint32_t cp, min;
    size_t len, i;

    if (s[0] < 0x80) {
        return 1;
    }
    if ((s[0] & 0xE0) == 0xC0) {
        len = 2; min = 0x80; cp = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3; min = 0x800; cp = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4; min = 0x10000; cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

json_t *
hg_json_text(const char *text, size_t len, const char *bad)
{
    const unsigned char *u = (const unsigned char *) text;
    size_t badlen = strlen(bad), i = 0, n, o = 0;
    json_t *s;
    char *clean;

    s = json_stringn(text, len);
    if (s != NULL) {
        return s;                   /* UTF-8 as it is */
    }
    if (len > (SIZE_MAX - 1) / (badlen > 0 ? badlen : 1)) {
        return NULL;
    }
    clean = malloc(len * (badlen > 0 ? badlen : 1) + 1);
    if (clean == NULL) {
        return NULL;
    }
    while (i < len) {
        n = u[i] != '\0' ? hg_json_utf8_len(u + i, len - i) : 0;
        if (n == 0) {
            memcpy(clean + o, bad, badlen);
            o += badlen;
            i++;
        } else {
            memcpy(clean + o, text + i, n);
            o += n;
            i += n;
        }
    }
    s = json_stringn(clean, o);
    free(clean);
    return s;
}
