/*
 * Loading executor modules (.so files) and calling their init and fini.
 *
 * One hg_modules_t belongs to one cycle. dlopen counts references, so a
 * module that both the running cycle and a new one (being prepared for a
 * reload) list is the same loaded object. Who calls init: the cycle reader
 * and every worker, each once (hg_modules_init); the master only opens
 * the modules (its workers are forked with them) and never calls them, so
 * a reload hands nothing over between cycles there.
 */

#ifndef HG_MODULE_H
#define HG_MODULE_H

#include "hg_core.h"
#include "hg_conf.h"

typedef struct hg_module_ref_s {
    char *name;                     /* as listed in modules.load */
    char *path;                     /* the file dlopen was given */
    void *handle;
    const hg_module_t *module;
    json_t *conf;                   /* modules.NAME, or an empty object */
    bool initialized;               /* init has run in this process */
} hg_module_ref_t;

typedef struct hg_modules_s {
    hg_module_ref_t *items;
    size_t count;
    const char *file;               /* the configuration, for errors */
} hg_modules_t;

/* dlopen every module of conf->modules.load and check its ABI and name. */
int hg_modules_open(hg_modules_t *mods, const hg_conf_t *conf,
                    hg_conf_errors_t *errors);
/* Call init in this process (the cycle reader and each worker initialise
 * their modules once; the master never does). */
int hg_modules_init(hg_modules_t *mods, hg_process_type_t process,
                    const char *prefix, hg_conf_errors_t *errors);
/* fini for every module this process initialised. */
void hg_modules_fini(hg_modules_t *mods);
void hg_modules_close(hg_modules_t *mods);

const hg_module_ref_t *hg_modules_find(const hg_modules_t *mods,
                                       const char *type);
/* The module's key table (NULL when it declares none). */
const char *const *hg_module_ref_keys(const hg_module_ref_t *ref);
/* Names of the loaded modules, comma separated, into buf. */
void hg_modules_names(const hg_modules_t *mods, char *buf, size_t len);

const hg_host_t *hg_module_host(hg_process_type_t process,
                                const char *prefix);

#endif /* HG_MODULE_H */
