/*
 * Included first by every core file: the system headers the core uses, the
 * return conventions, and the functions a scheduler must not call.
 *
 * Return convention of the core: HG_OK (0) on success, HG_ERROR (-1) on
 * failure with the reason logged or written into an error buffer; HG_AGAIN
 * (-2) where an operation would block and will be resumed by the event loop.
 */

#ifndef HG_CORE_H
#define HG_CORE_H

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "hg_auto_config.h"
#include <hourglass/module.h>

#define HG_OK      0
#define HG_ERROR  -1
#define HG_AGAIN  -2

#define HG_NELEMS(a)  (sizeof(a) / sizeof((a)[0]))
#define HG_UNUSED(x)  ((void) (x))

#define HG_MSEC_PER_SEC   1000LL
#define HG_NSEC_PER_MSEC  1000000LL
#define HG_NSEC_PER_SEC   1000000000LL

/*
 * As git's banned.h: the unbounded string functions and the non-reentrant
 * time functions are compile errors in the core. Use snprintf, memcpy with
 * a checked length, gmtime_r and localtime_r (or hg_tz).
 */
#define HG_BANNED(func) sorry_##func##_is_a_banned_function
#undef strcpy
#define strcpy(x, y) HG_BANNED(strcpy)
#undef strcat
#define strcat(x, y) HG_BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) HG_BANNED(strncpy)
#undef sprintf
#define sprintf(...) HG_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) HG_BANNED(vsprintf)
#undef gmtime
#define gmtime(t) HG_BANNED(gmtime)
#undef localtime
#define localtime(t) HG_BANNED(localtime)
#undef ctime
#define ctime(t) HG_BANNED(ctime)
#undef asctime
#define asctime(t) HG_BANNED(asctime)
#undef atoi
#define atoi(s) HG_BANNED(atoi)

#endif /* HG_CORE_H */
