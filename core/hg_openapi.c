/*
 * hg_openapi.c: the admin API's OpenAPI description (api/openapi.json,
 * kept in the repository) built into the binary, so that the daemon
 * serves the one that describes it, with no file to find at run time.
 * It owns those bytes and nothing else.
 */

#include "hg_core.h"

#include "hg_openapi.h"

/* The assembler copies the file into .rodata, NUL-terminated; the make
 * rule of this object names the file as its prerequisite. */
__asm__(".section .rodata\n"
        ".balign 16\n"
        ".global hg_openapi_text\n"
        ".type hg_openapi_text, @object\n"
        "hg_openapi_text:\n"
        ".incbin \"api/openapi.json\"\n"
        ".byte 0\n"
        ".size hg_openapi_text, . - hg_openapi_text\n"
        ".previous\n");
