/*
 * hg_module.c: dlopen, the ABI checks, and the init/fini bookkeeping.
 * A module that fails any check is an error naming the module, the file and
 * what is wrong; nothing of it is called.
 */

#include "hg_core.h"

#include <dlfcn.h>

#include "hg_log.h"
#include "hg_module.h"
#include "hg_worker.h"

/* hg_module_t as version 1 first shipped it, up to and including fini:
 * a module at least this large is usable. */
#define HG_MODULE_V1_MIN_SIZE  offsetof(hg_module_t, keys)

static void
hg_module_host_log(hg_log_level_t level, const char *module, const char *fmt,
                   ...) HG_PRINTF(3, 4);

static void
hg_module_host_log(hg_log_level_t level, const char *module, const char *fmt,
                   ...)
{
    char message[4096];
    va_list ap;
    hg_log_field_t field = HG_LOG_STR("module", module);

    if (!hg_log_enabled(level)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    hg_log_event(level, "module", NULL, NULL, &field, 1, "%s", message);
}

const hg_host_t *
hg_module_host(hg_process_type_t process, const char *prefix)
{
    static hg_host_t host;

    host.abi_version = HG_MODULE_ABI_VERSION;
    host.size = (uint32_t) sizeof(hg_host_t);
    host.version = HG_VERSION;
    host.process = process;
    host.prefix = prefix;
    host.log = hg_module_host_log;
    /* A worker asks the master; the master's own modules never run a
     * job, so they are offered none. */
    host.store_task = process == HG_PROCESS_WORKER ? hg_worker_store_task
                                                   : NULL;
    return &host;
}

static char *
hg_module_path(const hg_conf_t *conf, const char *name)
{
    char *path = NULL;
    int rc;

    if (strchr(name, '/') != NULL) {
        if (name[0] == '/' || conf->prefix == NULL) {
            return strdup(name);
        }
        rc = asprintf(&path, "%s/%s", conf->prefix, name);
    } else {
        rc = asprintf(&path, "%s/%s.so", conf->modules.path, name);
    }
    return rc < 0 ? NULL : path;
}

static int
hg_module_check(const hg_module_ref_t *ref, char *err, size_t errlen)
{
    const hg_module_t *m = ref->module;

    if (m->abi_version != HG_MODULE_ABI_VERSION) {
        snprintf(err, errlen, "%s was built for module ABI version %" PRIu32
                 ", this hourglass speaks version %d (rebuild it against "
                 "this hourglass's include/hourglass/module.h)",
                 ref->path, m->abi_version, HG_MODULE_ABI_VERSION);
        return HG_ERROR;
    }
    if (m->size < HG_MODULE_V1_MIN_SIZE) {
        snprintf(err, errlen, "%s: hg_module is %" PRIu32 " bytes, smaller "
                 "than any version 1 module (%zu)", ref->path, m->size,
                 (size_t) HG_MODULE_V1_MIN_SIZE);
        return HG_ERROR;
    }
    if (m->name == NULL || m->name[0] == '\0') {
        snprintf(err, errlen, "%s: hg_module has no name", ref->path);
        return HG_ERROR;
    }
    if (m->execute == NULL) {
        snprintf(err, errlen, "%s: module \"%s\" has no execute callback",
                 ref->path, m->name);
        return HG_ERROR;
    }
    return HG_OK;
}

/* The keys table only exists in modules built with a header that has it. */
static const char *const *
hg_module_keys(const hg_module_t *m)
{
    if (m->size < offsetof(hg_module_t, keys) + sizeof(m->keys)) {
        return NULL;
    }
    return m->keys;
}

int
hg_modules_open(hg_modules_t *mods, const hg_conf_t *conf,
                hg_conf_errors_t *errors)
{
    size_t i, j;
    char err[1024];
    int rc = HG_OK;

    memset(mods, 0, sizeof(*mods));
    mods->file = conf->file;
    if (conf->modules.nload == 0) {
        return HG_OK;
    }
    mods->items = calloc(conf->modules.nload, sizeof(*mods->items));
    if (mods->items == NULL) {
        hg_conf_error_add(errors, conf->file, 0, "out of memory");
        return HG_ERROR;
    }
    for (i = 0; i < conf->modules.nload; i++) {
        const char *name = conf->modules.load[i];
        hg_module_ref_t *ref = &mods->items[mods->count];
        json_t *section;

        memset(ref, 0, sizeof(*ref));
        ref->name = strdup(name);
        ref->path = hg_module_path(conf, name);
        if (ref->name == NULL || ref->path == NULL) {
            free(ref->name);
            free(ref->path);
            hg_conf_error_add(errors, conf->file, 0, "out of memory");
            rc = HG_ERROR;
            continue;
        }
        ref->handle = dlopen(ref->path, RTLD_NOW | RTLD_LOCAL);
        if (ref->handle == NULL) {
            const char *why = dlerror();
            size_t plen = strlen(ref->path);

            /* glibc's message starts with the path, said once already. */
            if (why != NULL && strncmp(why, ref->path, plen) == 0
                && strncmp(why + plen, ": ", 2) == 0)
            {
                why += plen + 2;
            }
            hg_conf_error_add(errors, conf->file, 0,
                              "module \"%s\": cannot load %s: %s", name,
                              ref->path, why != NULL ? why : "dlopen failed");
            goto bad;
        }
        ref->module = dlsym(ref->handle, "hg_module");
        if (ref->module == NULL) {
            hg_conf_error_add(errors, conf->file, 0,
                              "module \"%s\": %s does not export the symbol "
                              "hg_module (is it an hourglass module?)",
                              name, ref->path);
            goto bad;
        }
        if (hg_module_check(ref, err, sizeof(err)) != HG_OK) {
            hg_conf_error_add(errors, conf->file, 0, "module \"%s\": %s",
                              name, err);
            goto bad;
        }
        for (j = 0; j < mods->count; j++) {
            if (strcmp(mods->items[j].module->name, ref->module->name) == 0) {
                hg_conf_error_add(errors, conf->file, 0,
                                  "module name \"%s\" is provided by both %s "
                                  "and %s", ref->module->name,
                                  mods->items[j].path, ref->path);
                goto bad;
            }
        }
        section = json_object_get(conf->modules.sections, ref->module->name);
        if (section == NULL && strchr(name, '/') == NULL) {
            section = json_object_get(conf->modules.sections, name);
        }
        ref->conf = section ? json_incref(section) : json_object();
        if (ref->conf == NULL) {
            hg_conf_error_add(errors, conf->file, 0, "out of memory");
            goto bad;
        }
        mods->count++;
        continue;
    bad:
        if (ref->handle != NULL) {
            dlclose(ref->handle);
        }
        json_decref(ref->conf);
        free(ref->name);
        free(ref->path);
        memset(ref, 0, sizeof(*ref));
        rc = HG_ERROR;
    }
    return rc;
}

static int
hg_module_call_init(hg_module_ref_t *ref, hg_process_type_t process,
                    const char *prefix, char *err, size_t errlen)
{
    err[0] = '\0';
    if (ref->module->init != NULL
        && ref->module->init(ref->conf, hg_module_host(process, prefix), err,
                             errlen) != 0)
    {
        if (err[0] == '\0') {
            snprintf(err, errlen, "init returned an error");
        }
        return HG_ERROR;
    }
    ref->initialized = true;
    return HG_OK;
}

int
hg_modules_init(hg_modules_t *mods, hg_process_type_t process,
                const char *prefix, hg_conf_errors_t *errors)
{
    char err[1024];
    size_t i;
    int rc = HG_OK;

    for (i = 0; i < mods->count; i++) {
        hg_module_ref_t *ref = &mods->items[i];

        if (hg_module_call_init(ref, process, prefix, err, sizeof(err))
            != HG_OK)
        {
            hg_conf_error_add(errors, mods->file, 0, "module \"%s\": init failed: "
                              "%s", ref->module->name, err);
            rc = HG_ERROR;
        }
    }
    return rc;
}

void
hg_modules_fini(hg_modules_t *mods)
{
    size_t i;

    for (i = mods->count; i-- > 0;) {
        hg_module_ref_t *ref = &mods->items[i];
        if (ref->initialized && ref->module->fini != NULL) {
            ref->module->fini();
        }
        ref->initialized = false;
    }
}

void
hg_modules_close(hg_modules_t *mods)
{
    size_t i;

    for (i = 0; i < mods->count; i++) {
        hg_module_ref_t *ref = &mods->items[i];
        if (ref->handle != NULL) {
            dlclose(ref->handle);
        }
        json_decref(ref->conf);
        free(ref->name);
        free(ref->path);
    }
    free(mods->items);
    memset(mods, 0, sizeof(*mods));
}

const hg_module_ref_t *
hg_modules_find(const hg_modules_t *mods, const char *type)
{
    size_t i;

    for (i = 0; i < mods->count; i++) {
        if (strcmp(mods->items[i].module->name, type) == 0) {
            return &mods->items[i];
        }
    }
    return NULL;
}

const char *const *
hg_module_ref_keys(const hg_module_ref_t *ref)
{
    return hg_module_keys(ref->module);
}

void
hg_modules_names(const hg_modules_t *mods, char *buf, size_t len)
{
    size_t i, used = 0;

    if (len == 0) {
        return;
    }
    buf[0] = '\0';
    for (i = 0; i < mods->count && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
                         mods->items[i].module->name);
        if (n < 0) {
            break;
        }
        used += (size_t) n;
    }
}
