/* arena.h - per-request memory with a hard cap (nginx pools, h2o mem pools).
 *
 * Allocations live until gh_arena_reset or gh_arena_cleanup. Once the total
 * reaches hard_cap, allocation returns NULL: hostile input fails cleanly. */
#ifndef GH_CORE_ARENA_H
#define GH_CORE_ARENA_H

#include <stddef.h>

struct gh_arena_chunk;

struct gh_arena {
    struct gh_arena_chunk *head;
    size_t chunk_size;
    size_t hard_cap;
    size_t total; /* bytes reserved from the system, chunk headers included */
    size_t used;  /* bytes handed out */
};

void gh_arena_init(struct gh_arena *a, size_t chunk_size, size_t hard_cap);
/* Aligned to max_align_t; NULL when the cap would be exceeded or n == 0. */
void *gh_arena_alloc(struct gh_arena *a, size_t n);
void *gh_arena_calloc(struct gh_arena *a, size_t n, size_t size);
char *gh_arena_strndup(struct gh_arena *a, const char *s, size_t n);
char *gh_arena_strdup(struct gh_arena *a, const char *s);
char *gh_arena_sprintf(struct gh_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees all but the first chunk, used = 0. */
void gh_arena_reset(struct gh_arena *a);
void gh_arena_cleanup(struct gh_arena *a);

#endif
