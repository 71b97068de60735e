/*
 * hg_slab.c: a block is mapped at twice its size and trimmed to an aligned
 * window; its objects are carved from the untouched tail on demand and
 * recycled through the block's free list, linked through their first word.
 * A block is on exactly one of the slab's lists: partial (it has room) or
 * full.
 */

#include "hg_core.h"

#include <sys/mman.h>

#include "hg_slab.h"

struct hg_slab_block_s {
    hg_slab_block_t *prev;
    hg_slab_block_t *next;
    void *free;                     /* freed objects */
    size_t used;                    /* objects handed out */
    size_t carved;                  /* objects ever taken from the tail */
};

#define HG_SLAB_ROUND(n)  (((n) + HG_SLAB_ALIGN - 1) \
                           & ~(size_t) (HG_SLAB_ALIGN - 1))
#define HG_SLAB_HEADER    HG_SLAB_ROUND(sizeof(hg_slab_block_t))

void
hg_slab_init(hg_slab_t *slab, size_t size)
{
    memset(slab, 0, sizeof(*slab));
    slab->size = HG_SLAB_ROUND(size > 0 ? size : 1);
    slab->per_block = (HG_SLAB_BLOCK - HG_SLAB_HEADER) / slab->size;
}

#ifndef HG_SLAB_MALLOC

static void
hg_slab_link(hg_slab_block_t **list, hg_slab_block_t *b)
{
    b->prev = NULL;
    b->next = *list;
    if (*list != NULL) {
        (*list)->prev = b;
    }
    *list = b;
}

static void
hg_slab_unlink(hg_slab_block_t **list, hg_slab_block_t *b)
{
    if (b->prev != NULL) {
        b->prev->next = b->next;
    } else {
        *list = b->next;
    }
    if (b->next != NULL) {
        b->next->prev = b->prev;
    }
    b->prev = NULL;
    b->next = NULL;
}

static hg_slab_block_t *
hg_slab_map_block(void)
{
    const uintptr_t size = HG_SLAB_BLOCK;
    char *p, *aligned, *end;

    p = mmap(NULL, 2 * size, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    aligned = (char *) (((uintptr_t) p + size - 1) & ~(size - 1));
    end = p + 2 * size;
    if (aligned > p) {
        munmap(p, (size_t) (aligned - p));
    }
    if (aligned + size < end) {
        munmap(aligned + size, (size_t) (end - (aligned + size)));
    }
    /* Anonymous memory is zeroed: the header starts empty, and so does
     * every object carved from the tail. */
    return (hg_slab_block_t *) (void *) aligned;
}

void *
hg_slab_alloc(hg_slab_t *slab)
{
    hg_slab_block_t *b = slab->partial;
    void *obj;

    if (slab->per_block == 0) {
        errno = EINVAL;                 /* an object larger than a block */
        return NULL;
    }
    if (b == NULL) {
        b = hg_slab_map_block();
        if (b == NULL) {
            return NULL;
        }
        slab->nblocks++;
        hg_slab_link(&slab->partial, b);
    }
    if (b->free != NULL) {
        obj = b->free;
        memcpy(&b->free, obj, sizeof(b->free));
        memset(obj, 0, slab->size);
    } else {
        obj = (char *) b + HG_SLAB_HEADER + b->carved * slab->size;
        b->carved++;
    }
    if (++b->used == slab->per_block) {
        hg_slab_unlink(&slab->partial, b);
        hg_slab_link(&slab->full, b);
    }
    slab->count++;
    return obj;
}

void
hg_slab_free(hg_slab_t *slab, void *obj)
{
    hg_slab_block_t *b;

    if (obj == NULL) {
        return;
    }
    b = (hg_slab_block_t *) ((uintptr_t) obj
                             & ~(uintptr_t) (HG_SLAB_BLOCK - 1));
    if (b->used == slab->per_block) {
        hg_slab_unlink(&slab->full, b);
        hg_slab_link(&slab->partial, b);
    }
    memcpy(obj, &b->free, sizeof(b->free));
    b->free = obj;
    b->used--;
    slab->count--;
    /* An empty block goes back to the system, unless no other block has
     * room: then the next alloc would only map it again. */
    if (b->used == 0 && (b->prev != NULL || b->next != NULL)) {
        hg_slab_unlink(&slab->partial, b);
        munmap(b, HG_SLAB_BLOCK);
        slab->nblocks--;
    }
}

void
hg_slab_destroy(hg_slab_t *slab)
{
    hg_slab_block_t **lists[2] = { &slab->partial, &slab->full };
    hg_slab_block_t *b;
    size_t i;

    for (i = 0; i < HG_NELEMS(lists); i++) {
        while ((b = *lists[i]) != NULL) {
            *lists[i] = b->next;
            munmap(b, HG_SLAB_BLOCK);
        }
    }
    hg_slab_init(slab, slab->size);
}

#else /* HG_SLAB_MALLOC */

/* Each object is the sanitizer's to watch; destroy leaves those still
 * allocated to its leak check. */

void *
hg_slab_alloc(hg_slab_t *slab)
{
    void *obj = calloc(1, slab->size);

    if (obj != NULL) {
        slab->count++;
    }
    return obj;
}

void
hg_slab_free(hg_slab_t *slab, void *obj)
{
    if (obj != NULL) {
        slab->count--;
        free(obj);
    }
}

void
hg_slab_destroy(hg_slab_t *slab)
{
    hg_slab_init(slab, slab->size);
}

#endif /* HG_SLAB_MALLOC */

/* --- strings ------------------------------------------------------------ */

void
hg_slab_strings_init(hg_slab_strings_t *strings)
{
    size_t i;

    for (i = 0; i < HG_NELEMS(strings->classes); i++) {
        hg_slab_init(&strings->classes[i], (i + 1) * HG_SLAB_ALIGN);
    }
    hg_map_init(&strings->interned);
}

/* The slab for a string of BYTES bytes (NUL included), NULL for malloc. */
static hg_slab_t *
hg_slab_str_class(hg_slab_strings_t *strings, size_t bytes)
{
    return bytes <= HG_SLAB_STR_MAX
           ? &strings->classes[(bytes - 1) / HG_SLAB_ALIGN] : NULL;
}

char *
hg_slab_strdup(hg_slab_strings_t *strings, const char *s)
{
    size_t bytes = strlen(s) + 1;
    hg_slab_t *slab = hg_slab_str_class(strings, bytes);
    char *copy = slab != NULL ? hg_slab_alloc(slab) : malloc(bytes);

    if (copy != NULL) {
        memcpy(copy, s, bytes);
    }
    return copy;
}

void
hg_slab_strfree(hg_slab_strings_t *strings, char *s)
{
    hg_slab_t *slab;

    if (s == NULL) {
        return;
    }
    slab = hg_slab_str_class(strings, strlen(s) + 1);
    if (slab != NULL) {
        hg_slab_free(slab, s);
    } else {
        free(s);
    }
}

const char *
hg_slab_intern(hg_slab_strings_t *strings, const char *s)
{
    char *copy = hg_map_get(&strings->interned, s);

    if (copy != NULL) {
        return copy;
    }
    copy = hg_slab_strdup(strings, s);
    if (copy == NULL) {
        return NULL;
    }
    if (hg_map_put(&strings->interned, copy, copy) != HG_OK) {
        hg_slab_strfree(strings, copy);
        return NULL;
    }
    return copy;
}

void
hg_slab_strings_destroy(hg_slab_strings_t *strings)
{
    const char *key;
    void *value;
    size_t it = 0, i;

    while (hg_map_next(&strings->interned, &it, &key, &value)) {
        hg_slab_strfree(strings, value);
    }
    hg_map_free(&strings->interned);
    for (i = 0; i < HG_NELEMS(strings->classes); i++) {
        hg_slab_destroy(&strings->classes[i]);
    }
}
