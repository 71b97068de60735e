/*
 * A module that breaks the worker's protocol: its execute writes on the
 * worker's result pipe (fd 4, HG_WORKER_OUT_FD), as a memory-corrupting
 * module might. The master must log what was wrong, record the execution
 * as crashed and replace the worker. The job's `mode` says what it writes:
 *   (none)      garbage, not a frame at all
 *   "dispatch"  a well-formed frame of a type only the master sends
 *   "result"    a well-formed RESULT frame with no field: a result that
 *               names no execution
 * The header is written out by hand (core/hg_ipc.h is no module's to
 * include): magic, version 1, type, body length, reserved, in host order.
 */

#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <hourglass/module.h>

static const char *const badframe_keys[] = { "mode", NULL };

static void
badframe_header(uint16_t type)
{
    unsigned char h[16];
    uint32_t magic = 0x31464748u, zero = 0;
    uint16_t version = 1;
    ssize_t n;

    memcpy(h, &magic, 4);
    memcpy(h + 4, &version, 2);
    memcpy(h + 6, &type, 2);
    memcpy(h + 8, &zero, 4);
    memcpy(h + 12, &zero, 4);
    n = write(4, h, sizeof(h));
    (void) n;
}

static hg_result_t
badframe_execute(hg_exec_t *exec)
{
    static const char junk[] = "this is not an hourglass frame, not at all";
    const char *mode = json_string_value(json_object_get(hg_exec_job(exec),
                                                         "mode"));
    ssize_t n;

    if (mode != NULL && strcmp(mode, "dispatch") == 0) {
        badframe_header(1);
    } else if (mode != NULL && strcmp(mode, "result") == 0) {
        badframe_header(2);
    } else {
        n = write(4, junk, sizeof(junk));
        (void) n;
    }
    sleep(5);
    return HG_OK;
}

HG_EXPORT const hg_module_t hg_module =
    HG_MODULE_V1_KEYS("badframe", badframe_keys, NULL, NULL,
                      badframe_execute, NULL);
