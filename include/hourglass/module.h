/*
 * hourglass executor module ABI.
 *
 * A module is a shared object that exports one constant object named
 * `hg_module` of type hg_module_t:
 *
 *     #include <hourglass/module.h>
 *
 *     static hg_result_t my_execute(hg_exec_t *exec) { ... return HG_OK; }
 *
 *     HG_EXPORT const hg_module_t hg_module =
 *         HG_MODULE_V1("mine", my_init, my_validate, my_execute, my_fini);
 *
 * Life cycle.
 *   init      once in every process that uses the module: in the cycle
 *             reader after the module is loaded, and in every worker after
 *             it is forked (host->process tells which: HG_PROCESS_MASTER in
 *             the reader, which works on the master's behalf). The master
 *             itself loads the module (its workers are forked with it) but
 *             never calls it. `conf` is the module's own section
 *             `modules.NAME = { ... }` as a JSON object (an empty object
 *             when there is none). Return 0, or -1 after writing a message
 *             into err: an error of the configuration, at -t, start and
 *             reload.
 *   validate  in the cycle reader, for every job definition of this type
 *             in scheduler.conf. The cycle reader is a short-lived process
 *             that reads the configuration for `hourglass -t`, the start
 *             and every reload: a validate that crashes or hangs fails the
 *             reading (with the job named), never the master. Return 0,
 *             or -1 with a message in err. Start the message with the
 *             offending key followed by ':' ("command: must be a string")
 *             and hourglass reports the file and line of that key.
 *   execute   in a worker, one execution at a time. Never called in the
 *             master. The worker may be killed at any moment (timeout,
 *             stop): keep nothing half-written that matters.
 *   fini      in a worker before it exits. The cycle reader ends with
 *             _exit once it has handed its result over, without fini.
 *
 * Compatibility. The ABI only ever appends: new host services go at the end
 * of hg_host_t (check host->size before using them) and new module callbacks
 * at the end of hg_module_t, which carries its own size. Execution state is
 * reached only through the accessor functions below, never through a struct
 * layout, so a module built against an older header keeps loading.
 *
 * The accessor functions are provided by the hourglass binary itself and
 * resolved when the module is loaded: a module links against nothing but
 * jansson (pkg-config --cflags --libs hourglass).
 */

#ifndef HOURGLASS_MODULE_H
#define HOURGLASS_MODULE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HG_MODULE_ABI_VERSION 1

#if defined(__GNUC__)
#define HG_EXPORT __attribute__((visibility("default")))
#define HG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define HG_EXPORT
#define HG_PRINTF(f, a)
#endif

/* What execute returns. */
typedef enum {
    HG_OK = 0,      /* succeeded */
    HG_FAIL = 1,    /* failed; retried per the job's max_retries/backoff */
    HG_RETRY = 2,   /* failed, retry (after hg_exec_retry_after's delay if set) */
    HG_FATAL = 3    /* failed, no retries: straight to the dead-letter list */
} hg_result_t;

/* Log levels, most severe first. */
typedef enum {
    HG_LOG_ERROR = 0,
    HG_LOG_WARN = 1,
    HG_LOG_INFO = 2,
    HG_LOG_DEBUG = 3
} hg_log_level_t;

typedef enum {
    HG_PROCESS_MASTER = 0,
    HG_PROCESS_WORKER = 1
} hg_process_type_t;

/* Services the host offers to init. Append only; check `size`. */
typedef struct hg_host_s {
    uint32_t abi_version;           /* HG_MODULE_ABI_VERSION of the host */
    uint32_t size;                  /* sizeof(hg_host_t) in the host */
    const char *version;            /* hourglass version string */
    hg_process_type_t process;      /* where init is being called */
    const char *prefix;             /* the prefix relative paths resolve in */
    void (*log)(hg_log_level_t level, const char *module, const char *fmt,
                ...) HG_PRINTF(3, 4);
    /* Store maintenance, from execute in a worker: task
     * "history_cleanup" (delete executions older than store.retention, in
     * bounded batches), "store_vacuum" or "health_check". The master's
     * store runs it and the call waits for the answer (a worker never
     * opens the store itself). On success *report is a JSON object the
     * caller json_decref()s. 0, or -1 with a message in err. Present when
     * host->size covers it (NULL in the master). */
    int (*store_task)(const char *task, json_t **report, char *err,
                      size_t errlen);
} hg_host_t;

/* Whether HOST (of size host->size) has the member MEMBER. */
#define HG_HOST_HAS(host, member)                                          \
    ((host) != NULL                                                       \
     && (host)->size >= offsetof(hg_host_t, member) + sizeof((host)->member) \
     && (host)->member != NULL)

/* One execution, as the worker sees it. Opaque: use the accessors. */
typedef struct hg_exec_s hg_exec_t;

typedef struct hg_module_s {
    uint32_t abi_version;           /* HG_MODULE_ABI_VERSION when built */
    uint32_t size;                  /* sizeof(hg_module_t) when built */
    const char *name;               /* the job `type` this module serves */
    int (*init)(const json_t *conf, const hg_host_t *host, char *err,
                size_t errlen);
    int (*validate)(const json_t *job, char *err, size_t errlen);
    hg_result_t (*execute)(hg_exec_t *exec);
    void (*fini)(void);
    /* The module's own job keys, NULL-terminated, or NULL. When given,
     * hourglass rejects any job key that is neither a common job key nor
     * one of these (with its line and a did-you-mean hint) before calling
     * validate; when NULL, validate must reject unknown keys itself. */
    const char *const *keys;
} hg_module_t;

#define HG_MODULE_V1(name, init, validate, execute, fini)                  \
    { HG_MODULE_ABI_VERSION, (uint32_t) sizeof(hg_module_t), (name),      \
      (init), (validate), (execute), (fini), NULL }

#define HG_MODULE_V1_KEYS(name, keys, init, validate, execute, fini)       \
    { HG_MODULE_ABI_VERSION, (uint32_t) sizeof(hg_module_t), (name),      \
      (init), (validate), (execute), (fini), (keys) }

/* --- the execution handle ------------------------------------------- */

/* The job definition (all keys, the module's own included) as JSON. */
HG_EXPORT const json_t *hg_exec_job(const hg_exec_t *exec);
HG_EXPORT const char *hg_exec_job_id(const hg_exec_t *exec);
/* The execution id (time-sortable, UUIDv7 text). */
HG_EXPORT const char *hg_exec_id(const hg_exec_t *exec);
/* The payload given at enqueue time, or NULL with *len = 0. */
HG_EXPORT const void *hg_exec_payload(const hg_exec_t *exec, size_t *len);
/* 1 for the first attempt. */
HG_EXPORT unsigned hg_exec_attempt(const hg_exec_t *exec);
/* "schedule", "manual", "api:NAME", "retry", "queue", "misfire". */
HG_EXPORT const char *hg_exec_trigger(const hg_exec_t *exec);
/* The execution's W3C trace context ("00-TRACE-SPAN-01": the trace is its
 * run, shared by every attempt; the span this attempt), for the job to
 * pass on (TRACEPARENT, a traceparent header); NULL when there is none. */
HG_EXPORT const char *hg_exec_traceparent(const hg_exec_t *exec);
/* Due time, milliseconds since the Unix epoch. */
HG_EXPORT int64_t hg_exec_scheduled_for(const hg_exec_t *exec);
/* When the worker will be killed, milliseconds since the Unix epoch,
 * 0 when the job has no timeout. */
HG_EXPORT int64_t hg_exec_deadline(const hg_exec_t *exec);
/* Nonzero once the deadline has passed or the master asked the worker to
 * stop: a long-running execute should poll it and return. */
HG_EXPORT int hg_exec_cancelled(const hg_exec_t *exec);

/* A log line attributed to this execution (job id and execution id). */
HG_EXPORT void hg_exec_log(hg_exec_t *exec, hg_log_level_t level,
                           const char *fmt, ...) HG_PRINTF(3, 4);
/* Append to the captured output. Output beyond the job's output limit is
 * dropped and the record marked truncated. Returns 0, or 1 once the limit
 * has been reached. */
HG_EXPORT int hg_exec_output(hg_exec_t *exec, const void *data, size_t len);
/* The job's output limit in bytes (its `output_limit`, default 64 KiB). */
HG_EXPORT size_t hg_exec_output_limit(const hg_exec_t *exec);
/* Record a process exit code (>= 0) or a terminating signal (> 0). */
HG_EXPORT void hg_exec_set_exit_code(hg_exec_t *exec, int code);
HG_EXPORT void hg_exec_set_signal(hg_exec_t *exec, int signo);
/* A one-line reason for a failure, kept in the execution record. */
HG_EXPORT void hg_exec_set_error(hg_exec_t *exec, const char *fmt, ...)
    HG_PRINTF(2, 3);
/* With HG_RETRY: retry after this delay instead of the job's backoff. */
HG_EXPORT void hg_exec_retry_after(hg_exec_t *exec, int64_t delay_ms);
/* A custom counter, reported with the execution: the master adds VALUE to
 * hourglass_module_metric_total{module, name} (a negative VALUE is not
 * added: a counter only goes up). */
HG_EXPORT void hg_exec_metric(hg_exec_t *exec, const char *name,
                              double value);
/* What the job's processes used, as wait4 reported it when the module
 * reaped them: the execution's CPU time and peak memory are taken from it
 * (with the worker's own share), rather than from the worker's lifetime
 * figures for all the children it ever reaped. */
HG_EXPORT void hg_exec_set_usage(hg_exec_t *exec,
                                 const struct rusage *usage);

/* --- helpers a module may use in validate and execute ----------------- */

/* "500ms", "90s", "1h30m", "7d" -> milliseconds. 0 or -1 (bad). */
HG_EXPORT int hg_parse_duration(const char *text, int64_t *ms);
/* "512", "64KiB", "10MB" -> bytes. 0 or -1 (bad). */
HG_EXPORT int hg_parse_size(const char *text, uint64_t *bytes);

/* --- containment (appended) ------------------------------------------ */

/* The execution's cgroup (v2) as a directory fd, to start the job's
 * processes in it (clone3 with CLONE_INTO_CGROUP, or by writing "0" to its
 * cgroup.procs before exec), or -1 when the host gives none. The worker
 * owns the fd and kills whatever is left in the cgroup when the execution
 * ends, times out or is stopped. */
HG_EXPORT int hg_exec_cgroup_fd(const hg_exec_t *exec);
/* Open cgroup.procs files of cgroup v1 hierarchies that enforce this
 * execution's limits on a hybrid host: the job's first process writes "0"
 * to each before exec (before dropping root). Returns their count. */
HG_EXPORT size_t hg_exec_cgroup_procs(const hg_exec_t *exec,
                                      const int **fds);

#ifdef __cplusplus
}
#endif

#endif /* HOURGLASS_MODULE_H */
