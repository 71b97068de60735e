/*
 * Slabs: objects of one size carved from blocks mapped on their own (mmap),
 * outside malloc's heap; and strings kept on a slab per size class.
 *
 * Why: the master keeps a small object and a few strings per job for as
 * long as the job exists, and it makes them while a configuration is being
 * read, when malloc's heap is full of things that are freed right after
 * (libconfig's parse tree, JSON definitions, the cycle's jobs). Made with
 * malloc, each long-lived object would land among those and pin a page of
 * them: the configuration, freed, would go on costing most of its size in
 * RSS. Nothing of a slab shares a page with the heap, so the heap's freed
 * pages can go back to the system (malloc_trim).
 *
 * A block is HG_SLAB_BLOCK bytes aligned to its size: the block of an
 * object is its address masked, so freeing is O(1) with no header per
 * object. Each block keeps its own free list; a block whose objects are all
 * freed is unmapped, unless it is the only one left with room (so that
 * alternating alloc and free does not map and unmap). A block's pages are
 * touched only as objects are carved from it, so a new block costs the RSS
 * of what it holds.
 *
 * Not thread-safe: a slab belongs to one thread.
 *
 * Built with AddressSanitizer, every object is its own malloc, so that
 * overflows, use after free and leaks of slab objects are still caught.
 */

#ifndef HG_SLAB_H
#define HG_SLAB_H

#include "hg_core.h"
#include "hg_map.h"

/* Under AddressSanitizer: every object from malloc (see above). */
#if defined(__SANITIZE_ADDRESS__)
#define HG_SLAB_MALLOC  1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HG_SLAB_MALLOC  1
#endif
#endif

#define HG_SLAB_BLOCK       (256 * 1024)
#define HG_SLAB_ALIGN       16          /* every object's alignment */

typedef struct hg_slab_block_s hg_slab_block_t;

typedef struct hg_slab_s {
    size_t size;                    /* object size, rounded to the alignment */
    size_t per_block;               /* objects a block holds */
    hg_slab_block_t *partial;       /* blocks with room */
    hg_slab_block_t *full;          /* blocks without */
    size_t nblocks;                 /* mapped */
    size_t count;                   /* objects handed out and not freed */
} hg_slab_t;

/* Maps nothing until the first object. SIZE is meant to be small beside
 * HG_SLAB_BLOCK (a block holds whole objects only). */
void hg_slab_init(hg_slab_t *slab, size_t size);
/* A zeroed object, or NULL with errno ENOMEM (EINVAL: SIZE was larger
 * than a block). */
void *hg_slab_alloc(hg_slab_t *slab);
/* OBJ (may be NULL) must come from this slab. */
void hg_slab_free(hg_slab_t *slab, void *obj);
/* Unmap every block: objects still allocated are freed with them. */
void hg_slab_destroy(hg_slab_t *slab);

/* Strings up to HG_SLAB_STR_MAX bytes (their NUL included) are kept on a
 * slab per 16-byte size class; longer ones, rare, come from malloc. */
#define HG_SLAB_STR_MAX     512

typedef struct hg_slab_strings_s {
    hg_slab_t classes[HG_SLAB_STR_MAX / HG_SLAB_ALIGN];
    hg_map_t interned;              /* text -> its one shared copy */
} hg_slab_strings_t;

void hg_slab_strings_init(hg_slab_strings_t *strings);
/* A copy of S to be freed with hg_slab_strfree, or NULL (ENOMEM). */
char *hg_slab_strdup(hg_slab_strings_t *strings, const char *s);
/* S (may be NULL) from hg_slab_strdup, unchanged since. */
void hg_slab_strfree(hg_slab_strings_t *strings, char *s);
/* One shared copy per distinct text, kept until the strings are destroyed:
 * for the few values that many objects repeat (job types). NULL when out
 * of memory. */
const char *hg_slab_intern(hg_slab_strings_t *strings, const char *s);
/* Free every string, interned or not. */
void hg_slab_strings_destroy(hg_slab_strings_t *strings);

#endif /* HG_SLAB_H */
