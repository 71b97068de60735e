/*
 * fault_alloc.h: out-of-memory on demand for the unit tests, so that the
 * failure paths of an allocation are run and checked, not assumed.
 *
 * A test arms the injector around one operation with the number N of the
 * allocation to refuse (fault_alloc_arm(N)): the Nth allocation the
 * calling thread makes after that returns NULL (errno ENOMEM), once; the
 * others succeed. Run in a loop, N = 1, 2, ... until the operation
 * succeeds (FAULT_ALLOC_LOOP), each allocation of the operation fails in
 * turn and the test checks what the failure must leave: an error code, a
 * message, the state unchanged. Leaks on those paths are for ASan's leak
 * checker and valgrind, which run the unit tests (.ci/run).
 *
 * What is counted: core's own calls (malloc, calloc, realloc, strdup,
 * strndup, asprintf, vasprintf: the test binary is linked with
 * -Wl,--wrap for each, see TEST_LDFLAGS in Makefile.in), jansson's
 * allocations (fault_alloc_setup gives it the wrapped malloc and free;
 * unless spared: fault_alloc_spare_json) and SQLite's (its allocator,
 * through SQLITE_CONFIG_MALLOC, before the library is initialized). Only
 * the arming thread's allocations are counted and refused: a store's
 * writer thread goes on unharmed, and a run is the same every time.
 *
 * --wrap redirects the references of the linked objects only; ASan's and
 * valgrind's own malloc stay underneath (__real_malloc is whatever
 * malloc the process has), so the three unit passes of .ci/run work the
 * same. Include this file in one test source only: it defines the
 * wrappers.
 */

#ifndef FAULT_ALLOC_H
#define FAULT_ALLOC_H

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fault_count.h"
#if HG_HAVE_SQLITE
#include <sqlite3.h>
#endif

static _Thread_local fault_count_t fault_alloc_count;
static _Thread_local bool fault_spare_json;

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_vasprintf(char **out, const char *fmt, va_list ap);

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
int __wrap_vasprintf(char **out, const char *fmt, va_list ap);
int __wrap_asprintf(char **out, const char *fmt, ...);

/* Whether this allocation is the one to refuse. */
static bool
fault_hit(void)
{
    if (fault_count_hit(&fault_alloc_count)) {
        errno = ENOMEM;
        return true;
    }
    return false;
}

void *
__wrap_malloc(size_t size)
{
    return fault_hit() ? NULL : __real_malloc(size);
}

void *
__wrap_calloc(size_t n, size_t size)
{
    return fault_hit() ? NULL : __real_calloc(n, size);
}

void *
__wrap_realloc(void *p, size_t size)
{
    return fault_hit() ? NULL : __real_realloc(p, size);
}

char *
__wrap_strdup(const char *s)
{
    return fault_hit() ? NULL : __real_strdup(s);
}

char *
__wrap_strndup(const char *s, size_t n)
{
    return fault_hit() ? NULL : __real_strndup(s, n);
}

int
__wrap_vasprintf(char **out, const char *fmt, va_list ap)
{
    return fault_hit() ? -1 : __real_vasprintf(out, fmt, ap);
}

int
__wrap_asprintf(char **out, const char *fmt, ...)
{
    va_list ap;
    int rc;

    if (fault_hit()) {
        return -1;
    }
    va_start(ap, fmt);
    rc = __real_vasprintf(out, fmt, ap);
    va_end(ap);
    return rc;
}

/* jansson's allocator: see fault_alloc_spare_json. */
static void *
fault_json_malloc(size_t size)
{
    return fault_spare_json ? __real_malloc(size) : __wrap_malloc(size);
}

#if HG_HAVE_SQLITE
static sqlite3_mem_methods fault_sqlite_mem;

static void *
fault_sqlite_malloc(int size)
{
    return fault_hit() ? NULL : fault_sqlite_mem.xMalloc(size);
}

static void *
fault_sqlite_realloc(void *p, int size)
{
    return fault_hit() ? NULL : fault_sqlite_mem.xRealloc(p, size);
}
#endif

/* A forked child (a worker, a configuration reader) starts unarmed: the
 * faults are the arming process's, and a child's refusal would show in
 * the parent as another failure than the one the test looks for. */
static void
fault_alloc_child(void)
{
    fault_count_disarm(&fault_alloc_count);
}

/* Once, in main, before anything uses jansson or SQLite. */
static void
fault_alloc_setup(void)
{
    pthread_atfork(NULL, NULL, fault_alloc_child);
    json_set_alloc_funcs(fault_json_malloc, free);
#if HG_HAVE_SQLITE
    {
        sqlite3_mem_methods mine;

        if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &fault_sqlite_mem)
            != SQLITE_OK)
        {
            fprintf(stderr, "fault_alloc: SQLite is already initialized\n");
            abort();
        }
        mine = fault_sqlite_mem;
        mine.xMalloc = fault_sqlite_malloc;
        mine.xRealloc = fault_sqlite_realloc;
        if (sqlite3_config(SQLITE_CONFIG_MALLOC, &mine) != SQLITE_OK) {
            fprintf(stderr, "fault_alloc: SQLITE_CONFIG_MALLOC refused\n");
            abort();
        }
    }
#endif
}

/* Refuse the Nth allocation of this thread from now on (N >= 1). */
static inline void
fault_alloc_arm(unsigned long n)
{
    fault_count_arm(&fault_alloc_count, n);
}

/*
 * Whether jansson's allocations are spared (never refused, not counted).
 * For the tests that parse JSON under faults: jansson's lexer ignores a
 * failure to grow the text of a token (lex_save, up to 2.14 at least) and
 * goes on with a character missing, so a refusal there yields another
 * document, not an error, and no caller can tell.
 */
static inline void
fault_alloc_spare_json(bool spare)
{
    fault_spare_json = spare;
}

/* Stop counting; whether an allocation was refused since the arming. */
static inline bool
fault_alloc_disarm(void)
{
    return fault_count_disarm(&fault_alloc_count);
}

/*
 * for (FAULT_ALLOC_LOOP(n)) { arm, operation, fired = disarm; if (!fired)
 * { check success; break; } check failure; } -- N = 1, 2, ... with a
 * bound, so that an operation that never stops allocating fails the test
 * instead of hanging it.
 */
#define FAULT_ALLOC_MAX 100000UL
#define FAULT_ALLOC_LOOP(n) unsigned long n = 1; n < FAULT_ALLOC_MAX; n++

#endif /* FAULT_ALLOC_H */
