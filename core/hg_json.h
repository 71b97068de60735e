/*
 * JSON as text, whole or not at all.
 */

#ifndef HG_JSON_H
#define HG_JSON_H

#include "hg_core.h"

/*
 * json_dumps (same FLAGS, same result: NUL-terminated, free()d by the
 * caller), but NULL with errno ENOMEM whenever any part of the text could
 * not be stored, never a text with a part missing.
 */
char *hg_json_dumps(const json_t *value, size_t flags);

/*
 * The length of the UTF-8 character at S (N >= 1 bytes there) as jansson
 * and PostgreSQL take one (a NUL is one), or 0 when none starts there: a
 * stray or cut sequence, an overlong form, a surrogate, or a code point
 * past U+10FFFF. The one reading of UTF-8 for core.
 */
size_t hg_json_utf8_len(const unsigned char *s, size_t n);

/*
 * TEXT (LEN bytes, a job's output, say: anything) as a JSON string: its
 * UTF-8 kept, each byte that is not part of a character (and each NUL)
 * replaced by BAD ("?", or U+FFFD's bytes). NULL only when out of memory.
 */
json_t *hg_json_text(const char *text, size_t len, const char *bad);

#endif /* HG_JSON_H */
