/*
 * hourglass: the command line. Parses options, then either tests the
 * configuration (-t, -T), signals a running master (-s), prints the version
 * (-V), computes fire times (`next`), hands `import-crontab` over to
 * hg_crontab.c, or becomes the master.
 */

#include "hg_core.h"

#include <fcntl.h>
#include <getopt.h>

#include "hg_api.h"
#include "hg_cgroup.h"
#include "hg_client.h"
#include "hg_cycle.h"
#include "hg_cycle_reader.h"
#include "hg_log.h"
#include "hg_master.h"
#include "hg_process.h"
#include "hg_store.h"

int hg_next_main(int argc, char **argv);
int hg_crontab_main(int argc, char **argv);

typedef struct hg_options_s {
    const char *conf_file;
    const char *prefix;
    const char *signal;
    bool test;
    bool dump;
} hg_options_t;

static void
hg_usage(FILE *out)
{
    fprintf(out,
        "Usage: hourglass [-c FILE] [-p PREFIX] [-t | -T] [-s SIGNAL] [-V] [-h]\n"
        "       hourglass next [--tz ZONE] [--from TIME] [-n COUNT] EXPR\n"
        "       hourglass import-crontab [--user NAME] [--system] [FILE|- ...]\n"
        "       hourglass [--url URL] [--token T] [--json] COMMAND ...  "
        "(hourglass status --help)\n"
        "\n"
        "  -c FILE     configuration file (default: PREFIX/conf/scheduler.conf)\n"
        "  -p PREFIX   prefix relative paths resolve against (default: %s)\n"
        "  -t          test the configuration and exit\n"
        "  -T          test the configuration, print it as in effect, and exit\n"
        "  -s SIGNAL   send SIGNAL to the running master: reload, stop, quit, reopen\n"
        "  -V, --version  print version and build information\n"
        "  -h, --help     this help\n", HG_PREFIX);
}

static void
hg_version(void)
{
    printf("hourglass version %s\n", HG_VERSION);
    printf("built by %s\n", HG_COMPILER);
    printf("configure arguments: %s\n", HG_CONFIGURE_ARGS);
    printf("module ABI version: %d\n", HG_MODULE_ABI_VERSION);
    printf("bundled modules: shell system%s\n", HG_HAVE_CURL ? " http" : "");
    printf("prefix: %s\n", HG_PREFIX);
}

static void
hg_print_errors(const hg_conf_errors_t *errors)
{
    hg_conf_errors_print(errors, stderr);
}

/* -t, -T and the start: a whole cycle, read and validated by a cycle
 * reader (a crash or a hang there is an error, not ours). */
static hg_cycle_t *
hg_load_cycle(const hg_options_t *opt)
{
    hg_conf_errors_t errors;
    hg_cycle_t *cycle;

    memset(&errors, 0, sizeof(errors));
    cycle = hg_cycle_load(opt->conf_file, opt->prefix,
                          HG_CYCLE_READ_TIMEOUT_MS, &errors);
    if (cycle == NULL) {
        hg_print_errors(&errors);
        fprintf(stderr, "hourglass: configuration file %s test failed\n",
                opt->conf_file);
    }
    hg_conf_errors_free(&errors);
    return cycle;
}

/*
 * The jobs defined through the admin API live in the store, which the
 * file names: once it is open, the file is read again with them by a
 * reader, as a reload reads both. A stored job the configuration now
 * refuses (its module gone, an id the file took since) stops the start
 * with the reader's words, as an error of the file would: nothing is
 * dropped silently.
 */
static int
hg_start_api_jobs(const hg_options_t *opt, hg_store_t *store,
                  hg_cycle_t **cycle)
{
    hg_conf_errors_t errors;
    json_t *jobs, *input;
    hg_cycle_t *with;
    size_t i;

    if (hg_store_load_jobs(store, &jobs) != HG_OK) {
        hg_log(HG_LOG_ERROR, "cannot read the jobs defined through the API "
               "from the store");
        return HG_ERROR;
    }
    if (json_object_size(jobs) == 0) {
        json_decref(jobs);
        return HG_OK;
    }
    input = json_pack("{s:o}", "api_jobs", hg_store_job_definitions(jobs));
    memset(&errors, 0, sizeof(errors));
    with = input != NULL
           ? hg_cycle_load_with(opt->conf_file, opt->prefix, input,
                                (*cycle)->conf->reload_timeout_ms, &errors)
           : NULL;
    json_decref(input);
    json_decref(jobs);
    if (with == NULL) {
        for (i = 0; i < errors.count; i++) {
            hg_log(HG_LOG_ERROR, "%s%s%s", errors.items[i].file != NULL
                   ? errors.items[i].file : "", errors.items[i].file != NULL
                   ? ": " : "", errors.items[i].message);
        }
        hg_log(HG_LOG_ERROR, "cannot start: the jobs defined through the API"
               " (kept in the store, table jobs) do not fit the "
               "configuration; give the file back what they need, or "
               "delete them from the store");
        hg_conf_errors_free(&errors);
        return HG_ERROR;
    }
    hg_conf_errors_free(&errors);
    hg_cycle_destroy(*cycle);
    *cycle = with;
    return HG_OK;
}

/*
 * An `at` in the past is a warning, not an error: a one-shot job stays in
 * the file after its time, and a file that started yesterday must not
 * fail today. It runs only as a misfire: when the store already knew the
 * job before that time (the daemon was down then) and misfire is not skip.
 * CONF is the file read again here: the cycle the reader handed over
 * keeps no line of each key.
 */
static void
hg_test_warn_past(const hg_cycle_t *cycle, const hg_conf_t *conf)
{
    const hg_job_conf_t *job;
    int64_t now = (int64_t) time(NULL);
    size_t i, k;

    for (i = 0; i < cycle->conf->njobs; i++) {
        job = cycle->jobs[i].conf;
        if (job->schedule_kind != HG_SCHEDULE_AT || cycle->jobs[i].at > now) {
            continue;
        }
        for (k = 0; k < conf->njobs; k++) {
            if (strcmp(conf->jobs[k].id, job->id) == 0) {
                job = &conf->jobs[k];
                break;
            }
        }
        fprintf(stderr, "%s:%d: warning: job \"%s\": at: \"%s\" is in the "
                "past: it will not run%s\n", job->file,
                hg_conf_job_key_line(job, "at"), job->id, job->at,
                job->policy.misfire == HG_MISFIRE_SKIP ? " (misfire = skip)"
                : ", unless the daemon knew this job before that time and "
                  "was down then (misfire then runs it once at the start)");
    }
}

static int
hg_test_configuration(const hg_options_t *opt)
{
    hg_conf_errors_t errors;
    hg_conf_t *conf;
    hg_cycle_t *cycle;
    char err[512];

    cycle = hg_load_cycle(opt);
    if (cycle == NULL) {
        return 1;
    }
    memset(&errors, 0, sizeof(errors));
    conf = hg_conf_load(opt->conf_file, opt->prefix, &errors);
    if (conf == NULL || hg_conf_log_place(conf, false, &errors) != HG_OK) {
        hg_print_errors(&errors);
        hg_conf_errors_free(&errors);
        hg_conf_free(conf);
        fprintf(stderr, "hourglass: configuration file %s test failed\n",
                opt->conf_file);
        hg_cycle_destroy(cycle);
        return 1;
    }
    hg_test_warn_past(cycle, conf);
    hg_conf_free(conf);
    hg_conf_errors_free(&errors);
    if (hg_store_check(cycle->conf, err, sizeof(err)) != HG_OK
        || hg_api_check_tls(cycle->conf, err, sizeof(err)) != HG_OK)
    {
        fprintf(stderr, "%s: %s\n", opt->conf_file, err);
        fprintf(stderr, "hourglass: configuration file %s test failed\n",
                opt->conf_file);
        hg_cycle_destroy(cycle);
        return 1;
    }
    (void) hg_cgroup_warn_limits(cycle->conf, true);
    if (opt->dump) {
        hg_conf_dump(cycle->conf, stdout);
    }
    printf("hourglass: configuration file %s test is successful\n",
           opt->conf_file);
    hg_cycle_destroy(cycle);
    return 0;
}

static int
hg_send_signal(const hg_options_t *opt)
{
    hg_conf_errors_t errors;
    hg_conf_t *conf;
    char err[512];
    int signo = hg_signal_by_name(opt->signal);
    pid_t pid;

    if (signo == 0) {
        fprintf(stderr, "hourglass: invalid signal \"%s\": use reload, "
                "stop, quit or reopen\n", opt->signal);
        return 2;
    }
    memset(&errors, 0, sizeof(errors));
    conf = hg_conf_load(opt->conf_file, opt->prefix, &errors);
    if (conf == NULL || errors.count > 0) {
        hg_print_errors(&errors);
        /* stop, quit and reopen need only the pid file, which a file that
         * could be read names: an operator stops a daemon whose file was
         * broken since it started (or whose ${VAR} this shell lacks). A
         * reload of a broken file would be refused by the daemon. */
        if (conf == NULL || signo == SIGHUP) {
            hg_conf_errors_free(&errors);
            hg_conf_free(conf);
            return 1;
        }
        fprintf(stderr, "hourglass: sending SIG%s anyway: the pid file is "
                "%s\n", sigabbrev_np(signo), conf->pid);
    }
    pid = hg_pidfile_read(conf->pid, err, sizeof(err));
    if (pid > 0
        && hg_process_is_hourglass(pid, conf->pid, err, sizeof(err)) != HG_OK)
    {
        pid = -1;
    }
    hg_conf_free(conf);
    hg_conf_errors_free(&errors);
    if (pid < 0) {
        fprintf(stderr, "hourglass: %s\n", err);
        return 1;
    }
    if (kill(pid, signo) < 0) {
        fprintf(stderr, "hourglass: kill(%d, SIG%s): %s\n", (int) pid,
                sigabbrev_np(signo), strerror(errno));
        return 1;
    }
    return 0;
}

/* A start that fails: said on stderr, or, in the background, to the
 * process that started the daemon (which prints it and exits 1). */
static int
hg_start_failed(int *report_fd, const char *fmt, ...) HG_PRINTF(2, 3);

static int
hg_start_failed(int *report_fd, const char *fmt, ...)
{
    char message[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    if (*report_fd >= 0) {
        hg_daemon_report(report_fd, message);
    } else {
        fprintf(stderr, "hourglass: %s\n", message);
    }
    return 1;
}

/* In the background, stderr is the terminal (or the pipe) of whoever
 * started us: once the log has a file of its own, let it go, before the
 * workers inherit it. */
static void
hg_detach_stderr(const hg_conf_t *conf)
{
    int fd;

    if (!conf->daemon || strcmp(conf->log.file, "-") == 0) {
        return;
    }
    fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
}

static int
hg_run_master(const hg_options_t *opt)
{
    hg_cycle_t *cycle;
    hg_master_t *master;
    hg_api_t *api = NULL;
    hg_conf_errors_t errors;
    hg_store_t *store;
    hg_conf_t *conf;
    char pid_path[PATH_MAX];
    char err[512];
    int pid_fd = -1, report_fd = -1, rc;

    cycle = hg_load_cycle(opt);
    if (cycle == NULL) {
        return 1;
    }
    conf = cycle->conf;
    if (conf->daemon && hg_daemonize(&report_fd, err, sizeof(err)) != HG_OK) {
        rc = hg_start_failed(&report_fd, "cannot become a daemon: %s", err);
        hg_cycle_destroy(cycle);
        return rc;
    }
    if (hg_pidfile_create(conf->pid, &pid_fd, err, sizeof(err)) != HG_OK) {
        rc = hg_start_failed(&report_fd, "%s", err);
        hg_cycle_destroy(cycle);
        return rc;
    }
    memset(&errors, 0, sizeof(errors));
    if (hg_conf_log_place(conf, true, &errors) != HG_OK) {
        hg_pidfile_remove(conf->pid, pid_fd);
        rc = hg_start_failed(&report_fd, "%s", errors.items[0].message);
        hg_conf_errors_free(&errors);
        hg_cycle_destroy(cycle);
        return rc;
    }
    if (hg_log_open(conf->log.file, conf->log.level, conf->log.format)
        != HG_OK)
    {
        hg_pidfile_remove(conf->pid, pid_fd);
        rc = hg_start_failed(&report_fd, "%s", hg_log_open_error());
        hg_cycle_destroy(cycle);
        return rc;
    }
    hg_detach_stderr(conf);
    {
        char names[256];
        hg_log_field_t fields[] = {
            HG_LOG_STR("version", HG_VERSION),
            HG_LOG_INT("workers", conf->workers),
            HG_LOG_INT("jobs", (int64_t) conf->njobs),
            HG_LOG_STR("modules", names),
        };
        hg_modules_names(&cycle->modules, names, sizeof(names));
        hg_log_event(HG_LOG_INFO, "start_master", NULL, NULL, fields,
                     HG_NELEMS(fields), "hourglass started with %s",
                     opt->conf_file);
    }
    store = hg_store_open(conf, err, sizeof(err));
    if (store == NULL) {
        hg_log(HG_LOG_ERROR, "cannot open the store: %s", err);
        /* The pid file goes before the starter hears of the failure: it
         * may start again at once, and must not lose its file to us. */
        hg_pidfile_remove(conf->pid, pid_fd);
        hg_daemon_report(&report_fd, hg_log_last_error());
        hg_cycle_destroy(cycle);
        hg_log_close();
        return 1;
    }
    if (hg_start_api_jobs(opt, store, &cycle) != HG_OK) {
        hg_pidfile_remove(conf->pid, pid_fd);
        hg_daemon_report(&report_fd, hg_log_last_error());
        hg_store_close(store);
        hg_cycle_destroy(cycle);
        hg_log_close();
        return 1;
    }
    conf = cycle->conf;
    /* The master takes the cycle over (and frees it if it cannot start):
     * the pid file's path is kept apart (it fits: the file was created). */
    snprintf(pid_path, sizeof(pid_path), "%s", conf->pid);
    conf = NULL;
    master = hg_master_create(cycle, opt->conf_file, opt->prefix, store);
    if (master == NULL) {
        /* what went wrong is in the log already (and on stderr when the
         * log is "-"); the parent of a daemon is told its last error */
        snprintf(err, sizeof(err), "%s", hg_log_last_error()[0] != '\0'
                 ? hg_log_last_error() : "the master could not start");
        hg_store_close(store);
        hg_pidfile_remove(pid_path, pid_fd);
        hg_daemon_report(&report_fd, err);
        hg_log_close();
        return 1;
    }
    if (hg_master_conf(master)->api.enabled) {
        api = hg_api_open(master, hg_master_loop(master), err, sizeof(err));
        if (api == NULL) {
            hg_log(HG_LOG_ERROR, "%s", err);
            hg_master_destroy(master);
            hg_store_close(store);
            hg_pidfile_remove(pid_path, pid_fd);
            hg_daemon_report(&report_fd, err);
            hg_log_close();
            return 1;
        }
    }
    /* The first cycle is applied, the store open, the workers forked. */
    hg_daemon_report(&report_fd, NULL);
    rc = hg_master_run(master);
    {
        /* The pid file path of the configuration in force now. */
        char *now_path = strdup(hg_master_conf(master)->pid);
        hg_log(HG_LOG_INFO, "hourglass exiting");
        hg_api_close(api);
        hg_master_destroy(master);
        hg_api_free(api);
        hg_store_close(store);
        hg_pidfile_remove(now_path != NULL ? now_path : pid_path, pid_fd);
        free(now_path);
    }
    hg_log_close();
    return rc;
}

/* Paths the master keeps using after it has changed directory or been
 * reloaded are made absolute once, here. */
static char *
hg_absolute(const char *path)
{
    char cwd[PATH_MAX];
    char *abs = NULL;

    if (path[0] == '/') {
        return strdup(path);
    }
    if (getcwd(cwd, sizeof(cwd)) == NULL) {
        return strdup(path);
    }
    if (strcmp(path, ".") == 0) {
        return strdup(cwd);
    }
    if (asprintf(&abs, "%s/%s", cwd, path) < 0) {
        return NULL;
    }
    return abs;
}

/* What users of other tools type first. */
static const struct option hg_long_options[] = {
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

int
main(int argc, char **argv)
{
    hg_options_t opt;
    char *prefix = NULL, *conf_file = NULL;
    int c, rc;

    if (argc > 1 && strcmp(argv[1], "next") == 0) {
        return hg_next_main(argc - 1, argv + 1);
    }
    if (argc > 1 && strcmp(argv[1], "import-crontab") == 0) {
        return hg_crontab_main(argc - 1, argv + 1);
    }
    if (argc > 1 && strcmp(argv[1], HG_CYCLE_READER_ARG) == 0) {
        return hg_cycle_reader_main(argc, argv);
    }
    if (hg_client_wanted(argc, argv)) {
        return hg_client_main(argc, argv);
    }
    memset(&opt, 0, sizeof(opt));
    opt.prefix = HG_PREFIX;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:p:tTs:Vh", hg_long_options,
                            NULL)) != -1)
    {
        switch (c) {
        case 'c': opt.conf_file = optarg; break;
        case 'p': opt.prefix = optarg; break;
        case 't': opt.test = true; break;
        case 'T': opt.test = true; opt.dump = true; break;
        case 's': opt.signal = optarg; break;
        case 'V': hg_version(); return 0;
        case 'h': hg_usage(stdout); return 0;
        case ':':
            fprintf(stderr, "hourglass: option -%c needs an argument\n",
                    optopt);
            hg_usage(stderr);
            return 2;
        default:
            if (optopt == 0) {          /* a long one */
                fprintf(stderr, "hourglass: unknown option %s\n",
                        argv[optind - 1]);
            } else {
                fprintf(stderr, "hourglass: unknown option -%c\n", optopt);
            }
            hg_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hourglass: unexpected argument \"%s\"\n",
                argv[optind]);
        hg_usage(stderr);
        return 2;
    }
    prefix = hg_absolute(opt.prefix);
    if (prefix == NULL) {
        fprintf(stderr, "hourglass: out of memory\n");
        return 1;
    }
    opt.prefix = prefix;
    if (opt.conf_file == NULL) {
        if (asprintf(&conf_file, "%s/conf/scheduler.conf", prefix) < 0) {
            conf_file = NULL;
        }
    } else {
        /* Kept as given, so messages name the file as the user wrote it;
         * the master never changes directory. */
        conf_file = strdup(opt.conf_file);
    }
    if (conf_file == NULL) {
        fprintf(stderr, "hourglass: out of memory\n");
        free(prefix);
        return 1;
    }
    opt.conf_file = conf_file;

    if (opt.signal != NULL) {
        rc = hg_send_signal(&opt);
    } else if (opt.test) {
        rc = hg_test_configuration(&opt);
    } else {
        rc = hg_run_master(&opt);
    }
    free(conf_file);
    free(prefix);
    return rc;
}
