/*
 * The admin API's OpenAPI 3 description, built in: hg_openapi.c.
 */

#ifndef HG_OPENAPI_H
#define HG_OPENAPI_H

/* api/openapi.json as it was at build time, NUL-terminated. */
extern const char hg_openapi_text[];

#endif /* HG_OPENAPI_H */
