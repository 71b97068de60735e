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

#endif /* HG_JSON_H */
