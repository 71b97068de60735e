// fuzz-sources: core/hg_conf.c core/hg_conf_dump.c core/hg_json.c core/hg_units.c core/hg_hint.c core/hg_map.c core/hg_cron.c core/hg_tz.c
// fuzz-max-len: 4096
// fuzz-seed-file: conf/scheduler.conf
// fuzz-seed-file: conf/examples/backup.conf
// fuzz-seed-file: conf/examples/jobs.d/reports.conf
// fuzz-seed: jobs = ( { id = "a"; type = "t"; every = "1h30m"; x = ( 1, "${HOME:-h}$$", [ 1.5 ], { y = 3000000000L; } ); } );
// fuzz-seed: api = { tokens = ( { name = "a"; token = "b"; role = "read"; } ); body_limit = "64KiB"; }; workers = "auto";
/*
 * libFuzzer target for the configuration reader: any bytes as
 * scheduler.conf, through the whole of hg_conf_load, the job key check, the
 * -T dump, ${VAR} expansion and hg_conf_job_from_json. Besides "no crash,
 * no leak" it checks two properties of a file that loads without errors:
 * it dumps to a file that loads without errors too and dumps again to the
 * same text (the dump is the inverse of the reader), and each job's
 * definition, given to hg_conf_job_from_json, makes the same job. A
 * violation aborts, so the fuzzer reports it.
 *
 * The input goes through a real file (hg_conf_load reads files, and the
 * include directory is set from its path). Inputs containing "@include"
 * are skipped: libconfig would open whatever path they name, /dev/zero or
 * a FIFO included, and hang the fuzzer on reading the machine rather than
 * the input.
 *
 * Build (tests/fuzz/run.sh does this from the first line):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE \
 *     -Iinclude -Icore -Iobjs tests/fuzz/fuzz_conf.c core/hg_conf.c \
 *     core/hg_conf_dump.c core/hg_json.c core/hg_units.c core/hg_hint.c \
 *     core/hg_map.c \
 *     $(pkg-config --cflags --libs libconfig jansson) -o objs/fuzz/fuzz_conf
 */

#include "hg_core.h"

#include "hg_conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/*
 * libconfig before 1.7 leaks the text of a string token that its parser
 * discards while recovering from a syntax error (hyperrealm/libconfig
 * issue #142, fixed by pull request #155). Nothing the caller can free:
 * told to LeakSanitizer, narrowly: only memory the lexer allocated, in
 * yylex or its string buffer (libconfig has no frame pointers, so a stack
 * may stop at either), so that leaks of ours, a forgotten config_destroy
 * included, still show.
 */
const char *
__lsan_default_suppressions(void)
{
    return "leak:libconfig_yylex\n"
           "leak:strbuf_append\n";
}

static char fuzz_dir[64];
static char fuzz_file[128];
static char fuzz_dump[128];

static int
fuzz_write(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    int rc = HG_OK;

    if (f == NULL) {
        return HG_ERROR;
    }
    if (size > 0 && fwrite(data, 1, size, f) != size) {
        rc = HG_ERROR;
    }
    if (fclose(f) != 0) {
        rc = HG_ERROR;
    }
    return rc;
}

static char *
fuzz_dump_text(const hg_conf_t *conf)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);

    if (m == NULL) {
        abort();
    }
    if (hg_conf_dump(conf, m) != HG_OK) {
        abort();
    }
    if (fclose(m) != 0) {
        abort();
    }
    return text;
}

static void
fuzz_round_trip(const hg_conf_t *conf)
{
    hg_conf_errors_t errors = { NULL, 0, 0 };
    hg_conf_t *again = NULL;
    char *d1, *d2 = NULL;

    d1 = fuzz_dump_text(conf);
    if (fuzz_write(fuzz_dump, d1, strlen(d1)) != HG_OK) {
        goto done;
    }
    again = hg_conf_load(fuzz_dump, "/opt/hg", &errors);
    if (again == NULL || errors.count > 0) {
        fprintf(stderr, "the dump does not read back:\n%s\n---\n", d1);
        hg_conf_errors_print(&errors, stderr);
        abort();
    }
    d2 = fuzz_dump_text(again);
    /* the first line names the file */
    if (strcmp(strchr(d1, '\n'), strchr(d2, '\n')) != 0) {
        fprintf(stderr, "the dump changes when read back:\n%s\n---\n%s\n",
                d1, d2);
        abort();
    }

done:
    free(d1);
    free(d2);
    hg_conf_free(again);
    hg_conf_errors_free(&errors);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const keys[] = { "command", "argv", "url", "task",
                                        NULL };
    hg_conf_errors_t errors = { NULL, 0, 0 }, kerrors = { NULL, 0, 0 };
    hg_conf_t *conf = NULL;
    char *text = NULL, *out = NULL, err[256];
    size_t i;

    if (fuzz_dir[0] == '\0') {
        snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/hg_fuzz_conf.XXXXXX");
        if (mkdtemp(fuzz_dir) == NULL) {
            abort();
        }
        snprintf(fuzz_file, sizeof(fuzz_file), "%s/scheduler.conf", fuzz_dir);
        snprintf(fuzz_dump, sizeof(fuzz_dump), "%s/dump.conf", fuzz_dir);
    }
    if (memmem(data, size, "@include", 8) != NULL) {
        return 0;
    }

    /* ${VAR} expansion on the raw text */
    text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    if (hg_conf_expand_env(text, &out, err, sizeof(err)) == HG_OK) {
        free(out);
    }

    if (fuzz_write(fuzz_file, data, size) != HG_OK) {
        goto done;
    }
    conf = hg_conf_load(fuzz_file, "/opt/hg", &errors);
    if (conf == NULL) {
        goto done;
    }
    for (i = 0; i < conf->njobs; i++) {
        const hg_job_conf_t *job = &conf->jobs[i];

        if (hg_conf_find_job(conf, job->id) != job
            || job->definition_text == NULL || job->tags == NULL)
        {
            abort();
        }
        (void) hg_conf_job_key_line(job, "backoff.initial");
        hg_conf_check_job_keys(job, keys, &kerrors);
    }
    if (errors.count == 0) {
        fuzz_round_trip(conf);
        /* a definition from the file reads the same through the API path */
        for (i = 0; i < conf->njobs; i++) {
            hg_job_conf_t copy;

            if (hg_conf_job_from_json(conf, conf->jobs[i].definition, &copy,
                                      &kerrors) != HG_OK
                || strcmp(copy.definition_text,
                          conf->jobs[i].definition_text) != 0
                || copy.schedule_kind != conf->jobs[i].schedule_kind
                || copy.policy.timeout_ms != conf->jobs[i].policy.timeout_ms)
            {
                hg_conf_errors_print(&kerrors, stderr);
                abort();
            }
            hg_conf_job_free(&copy);
        }
    }

done:
    hg_conf_free(conf);
    hg_conf_errors_free(&errors);
    hg_conf_errors_free(&kerrors);
    free(text);
    return 0;
}
