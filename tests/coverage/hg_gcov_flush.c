/*
 * hg_gcov_flush: linked into the executables of a coverage build only
 * (./configure --with-coverage), never into a real one. It owns getting
 * gcov's counters onto disk from the processes that would otherwise leave
 * without writing them; it must never change what a process does.
 *
 * gcov writes the .gcda files from an exit handler. Forked children of the
 * daemon leave with _exit (workers, the cycle reader, the parent of a
 * daemonising start), which skips it, and the master ends its workers with
 * SIGKILL on a stop, which no handler sees. So:
 *   - the link wraps _exit (-Wl,--wrap=_exit): the counters are dumped,
 *     then the process leaves as it meant to;
 *   - a worker dumps them each time it is about to wait for the master
 *     (the link wraps hg_ipc_read), and starts counting again from zero, so
 *     a worker killed while it waits has lost nothing it ran. A worker
 *     knows it is one when it names itself to the log (the link wraps
 *     hg_log_set_process).
 * __gcov_dump walks every instrumented object the process holds, the
 * modules it loaded with dlopen included. gcov merges into a .gcda under a
 * lock on the file, so processes that dump at the same time add up.
 *
 * Only references between object files are wrapped: modules (.so) are
 * linked without these flags, so the shell module's vfork-style child,
 * which shares the worker's memory, leaves with the real _exit.
 */

#include <stdbool.h>
#include <string.h>
#include <sys/types.h>

#include "hg_ipc.h"

void __gcov_dump(void);
void __gcov_reset(void);

_Noreturn void __real__exit(int status);
_Noreturn void __wrap__exit(int status);
ssize_t __real_hg_ipc_read(hg_ipc_reader_t *reader, int fd);
ssize_t __wrap_hg_ipc_read(hg_ipc_reader_t *reader, int fd);
void __real_hg_log_set_process(const char *name);
void __wrap_hg_log_set_process(const char *name);

static bool hg_gcov_in_worker;

void
__wrap__exit(int status)
{
    __gcov_dump();
    __real__exit(status);
}

ssize_t
__wrap_hg_ipc_read(hg_ipc_reader_t *reader, int fd)
{
    if (hg_gcov_in_worker) {
        __gcov_dump();
        __gcov_reset();
    }
    return __real_hg_ipc_read(reader, fd);
}

void
__wrap_hg_log_set_process(const char *name)
{
    hg_gcov_in_worker = name != NULL && strcmp(name, "worker") == 0;
    __real_hg_log_set_process(name);
}
