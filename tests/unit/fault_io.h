/*
 * fault_io.h: SQLite I/O errors on demand for the unit tests, the way
 * fault_alloc.h refuses memory: the Nth file operation the arming thread
 * asks of SQLite's operating system layer fails, once, with the error a
 * failing disk gives (SQLITE_IOERR_READ for a read, _WRITE, _FSYNC,
 * _TRUNCATE, _FSTAT, _LOCK, _SHMMAP; SQLITE_CANTOPEN for an open).
 *
 * How: a VFS ("fault") registered as the default, which is the system's
 * own VFS with each file's methods passed through a check first. Files
 * opened before fault_io_setup are not seen; call it in main, after
 * fault_alloc_setup when both are used (registering a VFS starts SQLite,
 * after which its allocator can no longer be set).
 *
 * Closing, unlocking and unmapping are never failed: SQLite cannot undo
 * them, and no disk refuses to let go of a file. Only the arming thread's
 * calls count (fault_io_arm), so a store's writer and maintenance
 * threads, with their own connections, are not touched unless the
 * operation runs there; fault_io_arm_any counts every thread's.
 */

#ifndef FAULT_IO_H
#define FAULT_IO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <sqlite3.h>

#include "fault_count.h"

static _Thread_local fault_count_t fault_io_count;
/* fault_io_arm_any's: every thread's calls, under the lock */
static fault_count_t fault_io_any;
static pthread_mutex_t fault_io_any_lock = PTHREAD_MUTEX_INITIALIZER;

static sqlite3_vfs *fault_io_real;          /* the system's VFS */
static sqlite3_vfs fault_io_vfs;

typedef struct fault_io_file_s {
    sqlite3_file base;
    sqlite3_file *real;                     /* follows this struct */
} fault_io_file_t;

static bool
fault_io_hit(void)
{
    bool hit;

    if (fault_count_hit(&fault_io_count)) {
        return true;
    }
    pthread_mutex_lock(&fault_io_any_lock);
    hit = fault_count_hit(&fault_io_any);
    pthread_mutex_unlock(&fault_io_any_lock);
    return hit;
}

#define FAULT_IO_REAL(f) (((fault_io_file_t *) (f))->real)

static int
fault_io_close(sqlite3_file *f)
{
    return FAULT_IO_REAL(f)->pMethods->xClose(FAULT_IO_REAL(f));
}

static int
fault_io_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    return fault_io_hit() ? SQLITE_IOERR_READ
        : FAULT_IO_REAL(f)->pMethods->xRead(FAULT_IO_REAL(f), buf, n, off);
}

static int
fault_io_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    return fault_io_hit() ? SQLITE_IOERR_WRITE
        : FAULT_IO_REAL(f)->pMethods->xWrite(FAULT_IO_REAL(f), buf, n, off);
}

static int
fault_io_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return fault_io_hit() ? SQLITE_IOERR_TRUNCATE
        : FAULT_IO_REAL(f)->pMethods->xTruncate(FAULT_IO_REAL(f), size);
}

static int
fault_io_sync(sqlite3_file *f, int flags)
{
    return fault_io_hit() ? SQLITE_IOERR_FSYNC
        : FAULT_IO_REAL(f)->pMethods->xSync(FAULT_IO_REAL(f), flags);
}

static int
fault_io_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return fault_io_hit() ? SQLITE_IOERR_FSTAT
        : FAULT_IO_REAL(f)->pMethods->xFileSize(FAULT_IO_REAL(f), size);
}

static int
fault_io_lock(sqlite3_file *f, int level)
{
    return fault_io_hit() ? SQLITE_IOERR_LOCK
        : FAULT_IO_REAL(f)->pMethods->xLock(FAULT_IO_REAL(f), level);
}

static int
fault_io_unlock(sqlite3_file *f, int level)
{
    return FAULT_IO_REAL(f)->pMethods->xUnlock(FAULT_IO_REAL(f), level);
}

static int
fault_io_reserved(sqlite3_file *f, int *out)
{
    return FAULT_IO_REAL(f)->pMethods->xCheckReservedLock(FAULT_IO_REAL(f),
                                                          out);
}

static int
fault_io_control(sqlite3_file *f, int op, void *arg)
{
    return FAULT_IO_REAL(f)->pMethods->xFileControl(FAULT_IO_REAL(f), op,
                                                    arg);
}

static int
fault_io_sector(sqlite3_file *f)
{
    return FAULT_IO_REAL(f)->pMethods->xSectorSize(FAULT_IO_REAL(f));
}

static int
fault_io_device(sqlite3_file *f)
{
    return FAULT_IO_REAL(f)->pMethods->xDeviceCharacteristics(
        FAULT_IO_REAL(f));
}

static int
fault_io_shm_map(sqlite3_file *f, int region, int size, int extend,
                 void volatile **out)
{
    return fault_io_hit() ? SQLITE_IOERR_SHMMAP
        : FAULT_IO_REAL(f)->pMethods->xShmMap(FAULT_IO_REAL(f), region, size,
                                              extend, out);
}

static int
fault_io_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return FAULT_IO_REAL(f)->pMethods->xShmLock(FAULT_IO_REAL(f), offset, n,
                                                flags);
}

static void
fault_io_shm_barrier(sqlite3_file *f)
{
    FAULT_IO_REAL(f)->pMethods->xShmBarrier(FAULT_IO_REAL(f));
}

static int
fault_io_shm_unmap(sqlite3_file *f, int delete_flag)
{
    return FAULT_IO_REAL(f)->pMethods->xShmUnmap(FAULT_IO_REAL(f),
                                                 delete_flag);
}

static int
fault_io_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **out)
{
    return FAULT_IO_REAL(f)->pMethods->xFetch(FAULT_IO_REAL(f), off, n, out);
}

static int
fault_io_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return FAULT_IO_REAL(f)->pMethods->xUnfetch(FAULT_IO_REAL(f), off, p);
}

static const sqlite3_io_methods fault_io_methods = {
    3, fault_io_close, fault_io_read, fault_io_write, fault_io_truncate,
    fault_io_sync, fault_io_size, fault_io_lock, fault_io_unlock,
    fault_io_reserved, fault_io_control, fault_io_sector, fault_io_device,
    fault_io_shm_map, fault_io_shm_lock, fault_io_shm_barrier,
    fault_io_shm_unmap, fault_io_fetch, fault_io_unfetch
};

static int
fault_io_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f,
              int flags, int *out_flags)
{
    fault_io_file_t *p = (fault_io_file_t *) f;
    int rc;

    (void) vfs;
    p->real = (sqlite3_file *) (p + 1);
    p->base.pMethods = NULL;
    if (fault_io_hit()) {
        return SQLITE_CANTOPEN;
    }
    rc = fault_io_real->xOpen(fault_io_real, name, p->real, flags,
                              out_flags);
    /* the system's methods are version 3 (mmap) on every system SQLite
     * runs hourglass on; ours stand in for them only then */
    if (p->real->pMethods != NULL) {
        if (p->real->pMethods->iVersion < 3) {
            fprintf(stderr, "fault_io: the system VFS is too old\n");
            abort();
        }
        p->base.pMethods = &fault_io_methods;
    }
    return rc;
}

static int
fault_io_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void) vfs;
    return fault_io_hit() ? SQLITE_IOERR_ACCESS
        : fault_io_real->xAccess(fault_io_real, name, flags, out);
}

/* Once, in main (after fault_alloc_setup, if any). */
static void
fault_io_setup(void)
{
    fault_io_real = sqlite3_vfs_find(NULL);
    if (fault_io_real == NULL) {
        fprintf(stderr, "fault_io: no SQLite VFS\n");
        abort();
    }
    fault_io_vfs = *fault_io_real;
    fault_io_vfs.zName = "fault";
    fault_io_vfs.szOsFile = (int) sizeof(fault_io_file_t)
                            + fault_io_real->szOsFile;
    fault_io_vfs.pNext = NULL;
    fault_io_vfs.xOpen = fault_io_open;
    fault_io_vfs.xAccess = fault_io_access;
    if (sqlite3_vfs_register(&fault_io_vfs, 1) != SQLITE_OK) {
        fprintf(stderr, "fault_io: cannot register the VFS\n");
        abort();
    }
}

/* Fail the Nth file operation of this thread from now on (N >= 1). */
static inline void
fault_io_arm(unsigned long n)
{
    fault_count_arm(&fault_io_count, n);
}

/* Stop counting; whether an operation was failed since the arming. */
static inline bool
fault_io_disarm(void)
{
    return fault_count_disarm(&fault_io_count);
}

/* The same over every thread's calls: for what a store does on its own
 * threads (commits, checkpoints, maintenance), where the order of the
 * calls is the threads' and a run is not the same every time. */
static inline void
fault_io_arm_any(unsigned long n)
{
    pthread_mutex_lock(&fault_io_any_lock);
    fault_count_arm(&fault_io_any, n);
    pthread_mutex_unlock(&fault_io_any_lock);
}

static inline bool
fault_io_disarm_any(void)
{
    bool fired;

    pthread_mutex_lock(&fault_io_any_lock);
    fired = fault_count_disarm(&fault_io_any);
    pthread_mutex_unlock(&fault_io_any_lock);
    return fired;
}

#endif /* FAULT_IO_H */
