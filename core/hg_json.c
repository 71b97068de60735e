/*
 * hg_json.c owns turning JSON into text for the daemon and the client:
 * every document the daemon stores, logs, sends or answers with goes
 * through hg_json_dumps. It never parses, and it never returns part of a
 * document.
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
