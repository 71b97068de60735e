/*
 * test_readme.c: README.md's "Job keys" reference names every key a job
 * may set. The keys are taken from where they are defined (the job table
 * of hg_conf.c with its policy keys, and the `keys` each bundled module
 * declares), so a key added there without a row here fails this test.
 * Nothing but reading: no daemon, no module code run.
 */

#include "hg_core.h"

#include <dlfcn.h>
#include <setjmp.h>

#include <cmocka.h>

#include "hg_conf.h"
#include "hg_conf_table.h"

#define README_MAX  (1024 * 1024)

static char *
readme(void)
{
    static char text[README_MAX];
    FILE *f = fopen("README.md", "r");
    size_t n;

    assert_non_null(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

/* The text of README.md's "## Job keys" section. */
static char *
job_keys_section(void)
{
    char *start, *end;

    start = strstr(readme(), "\n## Job keys\n");
    assert_non_null(start);
    end = strstr(start + 1, "\n## ");
    if (end != NULL) {
        *end = '\0';
    }
    return start;
}

/* A row of the section whose first cell (or, for a module, second cell
 * after the module's) is `NAME`. */
static bool
has_row(const char *section, const char *module, const char *name)
{
    char row[256];

    if (module != NULL) {
        snprintf(row, sizeof(row), "\n| `%s` | `%s` |", module, name);
    } else {
        snprintf(row, sizeof(row), "\n| `%s` |", name);
    }
    return strstr(section, row) != NULL;
}

static size_t
check_section(const char *text, const hg_conf_section_t *sec,
              const char *prefix)
{
    char name[128];
    size_t i, checked = 0;

    for (i = 0; i < sec->nkeys; i++) {
        const hg_conf_key_t *key = &sec->keys[i];

        snprintf(name, sizeof(name), "%s%s", prefix, key->name);
        if (key->type == HG_CONF_GROUP && key->section != NULL) {
            char sub[160];

            snprintf(sub, sizeof(sub), "%s.", name);
            checked += check_section(text, key->section, sub);
            continue;
        }
        if (!has_row(text, NULL, name)) {
            fail_msg("README.md, Job keys: no row for the job key `%s`",
                     name);
        }
        checked++;
    }
    if (sec->also != NULL) {
        checked += check_section(text, sec->also, prefix);
    }
    return checked;
}

static void
test_every_common_job_key_has_a_row(void **state)
{
    const char *text = job_keys_section();

    (void) state;
    /* id, type, schedule, ... and the policy keys with backoff.* and
     * limits.*: far more than a handful */
    assert_true(check_section(text, &hg_conf_job_section, "") > 20);
}

static void
test_every_bundled_module_key_has_a_row(void **state)
{
    static const char *const modules[] = { "shell", "http", "system" };
    const char *text = job_keys_section();
    const hg_module_t *module;
    char path[64];
    void *handle;
    size_t i, k;

    (void) state;
    for (i = 0; i < HG_NELEMS(modules); i++) {
        snprintf(path, sizeof(path), "modules/%s.so", modules[i]);
        handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (handle == NULL) {
            fail_msg("%s", dlerror());
        }
        module = dlsym(handle, "hg_module");
        assert_non_null(module);
        assert_non_null(module->keys);
        for (k = 0; module->keys[k] != NULL; k++) {
            if (!has_row(text, module->name, module->keys[k])) {
                fail_msg("README.md, Job keys: no row for the %s module's "
                         "key `%s`", module->name, module->keys[k]);
            }
        }
        assert_true(k > 0);
        dlclose(handle);
    }
}

/* The README is the whole manual: it sends the reader to no file outside
 * the repository (the contract the project was built from is not
 * shipped). */
static void
test_the_readme_points_nowhere_outside(void **state)
{
    const char *text = readme();

    (void) state;
    assert_null(strstr(text, "../"));
    assert_null(strstr(text, "DESIGN.md"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_common_job_key_has_a_row),
        cmocka_unit_test(test_every_bundled_module_key_has_a_row),
        cmocka_unit_test(test_the_readme_points_nowhere_outside),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
