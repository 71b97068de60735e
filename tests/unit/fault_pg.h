/*
 * fault_pg.h: PostgreSQL errors on demand for the unit tests, the way
 * fault_io.h fails SQLite's file operations: the Nth libpq call that
 * sends a statement fails, once, as a server that refuses it would make
 * it fail (an error result for PQexec, PQexecParams, PQexecPrepared and
 * PQprepare; 0 for PQsendQueryPrepared, PQpipelineSync and entering or
 * leaving pipeline mode).
 *
 * How: the test binary is linked with -Wl,--wrap for each of those calls
 * (TEST_LDFLAGS in Makefile.in); the wrappers count every thread's calls
 * (the store's writer, maintenance and read connections each have one),
 * under a lock. Reading results (PQgetResult) is never failed: a result
 * that never came would leave libpq's pipeline out of step, which no
 * server does.
 */

#ifndef FAULT_PG_H
#define FAULT_PG_H

#include <pthread.h>
#include <stdbool.h>

#include <libpq-fe.h>

#include "fault_count.h"

static fault_count_t fault_pg_count;
static pthread_mutex_t fault_pg_lock = PTHREAD_MUTEX_INITIALIZER;

PGresult *__real_PQexec(PGconn *conn, const char *query);
PGresult *__real_PQexecParams(PGconn *conn, const char *command, int n,
                              const Oid *types, const char *const *values,
                              const int *lengths, const int *formats,
                              int result_format);
PGresult *__real_PQexecPrepared(PGconn *conn, const char *name, int n,
                                const char *const *values,
                                const int *lengths, const int *formats,
                                int result_format);
PGresult *__real_PQprepare(PGconn *conn, const char *name, const char *query,
                           int n, const Oid *types);
int __real_PQsendQueryPrepared(PGconn *conn, const char *name, int n,
                               const char *const *values, const int *lengths,
                               const int *formats, int result_format);
int __real_PQpipelineSync(PGconn *conn);
int __real_PQenterPipelineMode(PGconn *conn);
int __real_PQexitPipelineMode(PGconn *conn);

PGresult *__wrap_PQexec(PGconn *conn, const char *query);
PGresult *__wrap_PQexecParams(PGconn *conn, const char *command, int n,
                              const Oid *types, const char *const *values,
                              const int *lengths, const int *formats,
                              int result_format);
PGresult *__wrap_PQexecPrepared(PGconn *conn, const char *name, int n,
                                const char *const *values,
                                const int *lengths, const int *formats,
                                int result_format);
PGresult *__wrap_PQprepare(PGconn *conn, const char *name, const char *query,
                           int n, const Oid *types);
int __wrap_PQsendQueryPrepared(PGconn *conn, const char *name, int n,
                               const char *const *values, const int *lengths,
                               const int *formats, int result_format);
int __wrap_PQpipelineSync(PGconn *conn);
int __wrap_PQenterPipelineMode(PGconn *conn);
int __wrap_PQexitPipelineMode(PGconn *conn);

/* Whether this call is the one to fail. */
static bool
fault_pg_hit(void)
{
    bool hit;

    pthread_mutex_lock(&fault_pg_lock);
    hit = fault_count_hit(&fault_pg_count);
    pthread_mutex_unlock(&fault_pg_lock);
    return hit;
}

/* What a statement the server refused gives back. */
static PGresult *
fault_pg_error(PGconn *conn)
{
    return PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
}

PGresult *
__wrap_PQexec(PGconn *conn, const char *query)
{
    return fault_pg_hit() ? fault_pg_error(conn) : __real_PQexec(conn, query);
}

PGresult *
__wrap_PQexecParams(PGconn *conn, const char *command, int n,
                    const Oid *types, const char *const *values,
                    const int *lengths, const int *formats, int result_format)
{
    return fault_pg_hit() ? fault_pg_error(conn)
           : __real_PQexecParams(conn, command, n, types, values, lengths,
                                 formats, result_format);
}

PGresult *
__wrap_PQexecPrepared(PGconn *conn, const char *name, int n,
                      const char *const *values, const int *lengths,
                      const int *formats, int result_format)
{
    return fault_pg_hit() ? fault_pg_error(conn)
           : __real_PQexecPrepared(conn, name, n, values, lengths, formats,
                                   result_format);
}

PGresult *
__wrap_PQprepare(PGconn *conn, const char *name, const char *query, int n,
                 const Oid *types)
{
    return fault_pg_hit() ? fault_pg_error(conn)
           : __real_PQprepare(conn, name, query, n, types);
}

int
__wrap_PQsendQueryPrepared(PGconn *conn, const char *name, int n,
                           const char *const *values, const int *lengths,
                           const int *formats, int result_format)
{
    return fault_pg_hit() ? 0
           : __real_PQsendQueryPrepared(conn, name, n, values, lengths,
                                        formats, result_format);
}

int
__wrap_PQpipelineSync(PGconn *conn)
{
    return fault_pg_hit() ? 0 : __real_PQpipelineSync(conn);
}

int
__wrap_PQenterPipelineMode(PGconn *conn)
{
    return fault_pg_hit() ? 0 : __real_PQenterPipelineMode(conn);
}

int
__wrap_PQexitPipelineMode(PGconn *conn)
{
    return fault_pg_hit() ? 0 : __real_PQexitPipelineMode(conn);
}

/* Fail the Nth of these calls, of any thread, from now on (N >= 1). */
static inline void
fault_pg_arm(unsigned long n)
{
    pthread_mutex_lock(&fault_pg_lock);
    fault_count_arm(&fault_pg_count, n);
    pthread_mutex_unlock(&fault_pg_lock);
}

/* Stop counting; whether a call was failed since the arming. */
static inline bool
fault_pg_disarm(void)
{
    bool fired;

    pthread_mutex_lock(&fault_pg_lock);
    fired = fault_count_disarm(&fault_pg_count);
    pthread_mutex_unlock(&fault_pg_lock);
    return fired;
}

#endif /* FAULT_PG_H */
