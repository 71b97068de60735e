/*
 * Test module "hang": execute never returns and ignores cancellation, as a
 * module stuck in a blocking call would, and leaves a child (`sleep 300`)
 * in the worker's process group, as a module that started a program would.
 * It exists to show that the master's timeout (killing the worker and its
 * process group) ends what a module will not end itself. Never load it
 * outside the tests.
 */

#include <unistd.h>

#include <hourglass/module.h>

static hg_result_t
hang_execute(hg_exec_t *exec)
{
    (void) exec;
    if (fork() == 0) {
        execlp("sleep", "sleep", "300", (char *) NULL);
        _exit(127);
    }
    for (;;) {
        /* deliberately not checking hg_exec_cancelled; sleep's early
         * return on a signal is just another turn of the loop */
        (void) sleep(1);
    }
    return HG_OK;
}

HG_EXPORT const hg_module_t hg_module =
    HG_MODULE_V1("hang", NULL, NULL, hang_execute, NULL);
