// fuzz-sources: core/hg_conf.c core/hg_conf_dump.c core/hg_json.c core/hg_units.c core/hg_hint.c core/hg_map.c core/hg_cron.c core/hg_tz.c
// fuzz-max-len: 2048
// fuzz-seed: {"id": "a", "type": "shell", "command": "echo hi", "every": "1m"}
// fuzz-seed: {"id": "b", "type": "http", "url": "http://127.0.0.1/", "schedule": "*/5 * * * * *", "timezone": "Europe/Berlin", "tags": ["x"], "backoff": {"initial": "1s", "jitter": 0.5}}
// fuzz-seed: {"id": "c", "type": "shell", "argv": ["a", "b"], "at": "2030-01-01T00:00:00Z", "max_retries": 3, "overlap": "queue", "pass_env": ["HOME"]}
/*
 * libFuzzer target for the admin API's job bodies: any bytes as the body
 * of POST /api/v1/jobs, parsed as the API parses it (jansson, duplicate
 * keys refused) and added as a job defined through the API
 * (hg_conf_add_api_jobs, hg_conf_job_from_json: the key table, types,
 * ranges, schedules' form), beside a file job it may collide with. Besides
 * "no crash, no leak": a body that is accepted makes a job whose
 * definition, given again, is accepted and makes the same job (the
 * definition the store keeps reads back as the job it was), and an id the
 * file holds is always refused.
 */

#include "hg_core.h"

#include "hg_conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/* As fuzz_conf.c: libconfig before 1.7 leaks a token's text on a syntax
 * error; nothing the caller can free. */
const char *
__lsan_default_suppressions(void)
{
    return "leak:libconfig_yylex\n"
           "leak:strbuf_append\n";
}

static hg_conf_t *fuzz_conf;

static hg_conf_t *
fuzz_base(void)
{
    static const char text[] =
        "defaults = { timeout = \"1m\"; max_retries = 1; };\n"
        "jobs = ( { id = \"file\"; type = \"shell\"; command = \"true\";"
        " every = \"1h\"; } );\n";
    hg_conf_errors_t errors = { NULL, 0, 0 };
    char dir[64], path[128];
    FILE *f;

    snprintf(dir, sizeof(dir), "/tmp/hg_fuzz_api.XXXXXX");
    if (mkdtemp(dir) == NULL) {
        abort();
    }
    snprintf(path, sizeof(path), "%s/scheduler.conf", dir);
    f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        abort();
    }
    fuzz_conf = hg_conf_load(path, "/opt/hg", &errors);
    if (fuzz_conf == NULL || errors.count > 0) {
        abort();
    }
    unlink(path);
    rmdir(dir);
    return fuzz_conf;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hg_conf_errors_t errors = { NULL, 0, 0 }, again = { NULL, 0, 0 };
    hg_conf_t *conf = fuzz_conf != NULL ? fuzz_conf : fuzz_base();
    hg_job_conf_t job, job2;
    json_t *body, *list;
    size_t njobs = conf->njobs;

    body = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES,
                      NULL);
    list = body != NULL ? json_pack("[O]", body) : NULL;
    if (list == NULL) {
        json_decref(body);
        return 0;
    }
    if (hg_conf_add_api_jobs(conf, list, &errors) == HG_OK) {
        /* accepted: one more job, not the file's id, and its definition
         * makes the same job again */
        if (conf->njobs != njobs + 1 || !conf->jobs[njobs].api
            || strcmp(conf->jobs[njobs].id, "file") == 0)
        {
            abort();
        }
        if (hg_conf_job_from_json(conf, conf->jobs[njobs].definition, &job2,
                                  &again) != HG_OK
            || strcmp(job2.definition_text,
                      conf->jobs[njobs].definition_text) != 0)
        {
            hg_conf_errors_print(&again, stderr);
            abort();
        }
        hg_conf_job_free(&job2);
    } else if (errors.count == 0) {
        abort();                        /* refused without a reason */
    }
    /* back to the file's job alone */
    while (conf->njobs > njobs) {
        job = conf->jobs[--conf->njobs];
        hg_conf_job_free(&job);
    }
    hg_conf_errors_free(&errors);
    hg_conf_errors_free(&again);
    json_decref(list);
    json_decref(body);
    return 0;
}
