/* arena.c - chunked bump allocator with a hard cap.
 *
 * Chunks are malloc'd blocks chained newest first. A request larger than
 * chunk_size gets a chunk of its own, linked behind the current one so that
 * the current chunk keeps serving small requests. Every byte reserved from
 * the system (headers included) counts against hard_cap; a request that
 * would pass it returns NULL, so hostile input fails cleanly. */
#include "core/arena.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN _Alignof(max_align_t)
#define ARENA_DEFAULT_CHUNK 4096

struct gh_arena_chunk {
    struct gh_arena_chunk *next;
    size_t size; /* bytes usable in data */
    size_t used;
    max_align_t data[]; /* aligned for anything */
};

#define CHUNK_HDR offsetof(struct gh_arena_chunk, data)

static size_t round_up(size_t n);

/* chunk_size 0 picks 4 KiB; hard_cap 0 means no cap. */
void gh_arena_init(struct gh_arena *a, size_t chunk_size, size_t hard_cap)
{
    a->head = NULL;
    a->chunk_size = round_up(chunk_size ? chunk_size : ARENA_DEFAULT_CHUNK);
    a->hard_cap = hard_cap ? hard_cap : SIZE_MAX;
    a->total = 0;
    a->used = 0;
}

static size_t round_up(size_t n)
{
    return (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
}

/* A new chunk of at least n usable bytes (normally chunk_size), or NULL when
 * the cap or malloc says no. Near the cap the chunk shrinks to what is left,
 * so that the cap is the real limit and not chunk_size's multiple. */
static struct gh_arena_chunk *chunk_new(struct gh_arena *a, size_t n)
{
    struct gh_arena_chunk *c;
    size_t size = n > a->chunk_size ? n : a->chunk_size;
    size_t left;

    if (a->total >= a->hard_cap || a->hard_cap - a->total < CHUNK_HDR)
        return NULL;
    left = a->hard_cap - a->total - CHUNK_HDR;
    if (n > left)
        return NULL;
    if (size > left)
        size = left & ~(ARENA_ALIGN - 1); /* round down: still >= n, n is aligned */
    c = malloc(CHUNK_HDR + size);
    if (!c)
        return NULL;
    c->size = size;
    c->used = 0;
    a->total += CHUNK_HDR + size;
    return c;
}

void *gh_arena_alloc(struct gh_arena *a, size_t n)
{
    struct gh_arena_chunk *c = a->head;
    void *p;

    if (n == 0 || n > SIZE_MAX - ARENA_ALIGN)
        return NULL;
    n = round_up(n);
    if (!c || c->size - c->used < n) {
        c = chunk_new(a, n);
        if (!c)
            return NULL;
        if (n > a->chunk_size && a->head) {
            /* Own chunk, full at once: keep the current head for small ones. */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    p = (char *)c->data + c->used;
    c->used += n;
    a->used += n;
    return p;
}

void *gh_arena_calloc(struct gh_arena *a, size_t n, size_t size)
{
    void *p;

    if (size && n > SIZE_MAX / size)
        return NULL;
    p = gh_arena_alloc(a, n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

char *gh_arena_strndup(struct gh_arena *a, const char *s, size_t n)
{
    const char *nul;
    char *p;

    if (!s)
        return NULL;
    nul = memchr(s, '\0', n);
    if (nul)
        n = (size_t)(nul - s);
    if (n == SIZE_MAX)
        return NULL;
    p = gh_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *gh_arena_strdup(struct gh_arena *a, const char *s)
{
    return s ? gh_arena_strndup(a, s, strlen(s)) : NULL;
}

char *gh_arena_sprintf(struct gh_arena *a, const char *fmt, ...)
{
    va_list ap;
    char *p;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    p = gh_arena_alloc(a, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* Keeps one chunk of the ordinary size (the oldest such), frees the rest:
 * a request's big one-off chunks do not stay reserved across requests. */
void gh_arena_reset(struct gh_arena *a)
{
    struct gh_arena_chunk *c = a->head, *next, *keep = NULL;

    while (c) {
        next = c->next;
        if (c->size == a->chunk_size) {
            free(keep); /* a newer ordinary chunk; prefer the older one */
            keep = c;
        } else {
            free(c);
        }
        c = next;
    }
    a->head = keep;
    a->total = 0;
    if (keep) {
        keep->next = NULL;
        keep->used = 0;
        a->total = CHUNK_HDR + keep->size;
    }
    a->used = 0;
}

void gh_arena_cleanup(struct gh_arena *a)
{
    struct gh_arena_chunk *c, *next;

    if (!a)
        return;
    for (c = a->head; c; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
    a->total = 0;
    a->used = 0;
}
