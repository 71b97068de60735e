/*
 * Containment of executions in cgroups, as systemd's KillMode=control-group.
 *
 * Layout (every path found from /proc/self/mountinfo and /proc/self/cgroup,
 * none hard-coded): the master makes HG = <its own cgroup>/hourglass.<pid>
 * on the cgroup v2 mount, and each worker makes HG/w<worker pid>, the
 * cgroup its executions' processes are spawned into (clone3 with
 * CLONE_INTO_CGROUP) and which is emptied (cgroup.kill) when an execution
 * ends with processes left, at a timeout and at every stop. The cgroup is
 * reused execution after execution: cheaper than a mkdir/rmdir each.
 * Workers themselves stay outside it, so killing it never kills them.
 *
 * Limits (memory, cpu, tasks) are written to that cgroup's v2 controllers
 * when the host delegates them; otherwise to the v1 hierarchy of the same
 * controller (a hybrid host, as systemd's hybrid mode does), where the
 * job's first process moves itself before exec.
 *
 * Without cgroup v2 the worker is a child subreaper and kills whatever is
 * reparented to it (hg_cgroup_worker_sweep). The worker is a subreaper on
 * every host, as a backstop.
 *
 * This file never runs in the master's loop anything but non-blocking
 * cgroupfs writes, and never kills a cgroup that is not ours: stale
 * hourglass.<pid> groups are removed only when that pid is dead.
 */

#ifndef HG_CGROUP_H
#define HG_CGROUP_H

#include "hg_core.h"
#include "hg_conf.h"

/* Which limits can be enforced: HG_LIMIT_* bits. */
#define HG_LIMIT_MEMORY  0x1u
#define HG_LIMIT_CPU     0x2u
#define HG_LIMIT_TASKS   0x4u

/* --- master ---------------------------------------------------------- */

/* Find the hierarchies, remove stale groups of dead masters, make this
 * master's group and log one line saying what is in force. */
void hg_cgroup_setup(void);
/* Whether executions are contained by cgroup v2 (else: subreapers). */
bool hg_cgroup_contained(void);
/* HG_LIMIT_* bits this host can enforce (probes without creating). */
unsigned hg_cgroup_limits_supported(void);
/* Warn about every job of CONF whose limits this host cannot enforce: in
 * the log (start), or on stderr as FILE:LINE: warning (-t). How many. */
size_t hg_cgroup_warn_limits(const hg_conf_t *conf, bool to_stderr);
/* Kill every process of the worker's execution cgroup. */
void hg_cgroup_kill_worker(pid_t worker);
/* Remove the worker's cgroups once it is reaped; retried by
 * hg_cgroup_sweep while its killed processes are still exiting. */
void hg_cgroup_forget_worker(pid_t worker);
void hg_cgroup_sweep(void);
/* At exit: remove what this master made. */
void hg_cgroup_teardown(void);

/* --- worker ---------------------------------------------------------- */

/* Become a subreaper and make this worker's execution cgroup. */
void hg_cgroup_worker_init(void);
/* Apply LIMITS (NULL: none) to the execution cgroup before a spawn.
 * HG_ERROR with a message when a limit cannot be enforced. */
int hg_cgroup_worker_prepare(const hg_limits_t *limits, char *err,
                             size_t errlen);
/* After an execution: kill whatever it left, reap it, and return how
 * many processes that was. */
int hg_cgroup_worker_sweep(void);
/* Whether the memory limit killed a process since the last prepare. */
bool hg_cgroup_worker_oom(void);
/* Async-signal-safe: kill the execution cgroup now (worker dying). */
void hg_cgroup_worker_kill_now(void);
/* Worker exiting: kill, sweep and remove its cgroups. */
void hg_cgroup_worker_exit(void);

#endif /* HG_CGROUP_H */
