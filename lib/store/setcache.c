/* setcache.c - per-process cache of parsed guild settings (setcache.h). */
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "store/setcache.h"
#include "store/settings.h"

struct entry {
    uint64_t guild_id; /* 0 = empty slot */
    int64_t loaded_ms; /* monotonic */
    void *parsed;
};

struct gh_setcache {
    const char *feature;
    int ttl_ms;
    gh_setcache_parse_fn parse;
    gh_setcache_free_fn free_fn;
    struct entry *slots;
    size_t cap; /* power of two */
    size_t used;
};

struct gh_setcache *gh_setcache_new(const char *feature, int ttl_ms, gh_setcache_parse_fn parse,
                                    gh_setcache_free_fn free_fn)
{
    struct gh_setcache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->feature = feature;
    c->ttl_ms = ttl_ms < 0 ? 0 : ttl_ms;
    c->parse = parse;
    c->free_fn = free_fn;
    c->cap = 64;
    c->slots = calloc(c->cap, sizeof(*c->slots));
    if (!c->slots) {
        free(c);
        return NULL;
    }
    return c;
}

void gh_setcache_free(struct gh_setcache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->cap; i++)
        if (c->slots[i].guild_id && c->free_fn)
            c->free_fn(c->slots[i].parsed);
    free(c->slots);
    free(c);
}

static size_t hash_id(uint64_t id)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)id;
}

static struct entry *find_slot(struct entry *slots, size_t cap, uint64_t guild_id)
{
    size_t i = hash_id(guild_id) & (cap - 1);
    while (slots[i].guild_id && slots[i].guild_id != guild_id)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static int grow(struct gh_setcache *c)
{
    size_t ncap = c->cap * 2;
    struct entry *ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return GH_ENOMEM;
    for (size_t i = 0; i < c->cap; i++)
        if (c->slots[i].guild_id)
            *find_slot(ns, ncap, c->slots[i].guild_id) = c->slots[i];
    free(c->slots);
    c->slots = ns;
    c->cap = ncap;
    return GH_OK;
}

const void *gh_setcache_get(struct gh_setcache *c, struct gh_ctx *ctx, uint64_t guild_id)
{
    json_object *doc = NULL;
    int version = 0;
    int64_t now = gh_mono_ms();

    if (!c || guild_id == 0)
        return NULL;
    if ((c->used + 1) * 4 > c->cap * 3 && grow(c) != GH_OK)
        return NULL;
    struct entry *e = find_slot(c->slots, c->cap, guild_id);
    if (e->guild_id && c->ttl_ms > 0 && now - e->loaded_ms < c->ttl_ms)
        return e->parsed;

    int rc = gh_settings_get(ctx, guild_id, c->feature, &doc, &version);
    if (rc != GH_OK) {
        json_object_put(doc);
        doc = NULL;
        if (e->guild_id) {
            e->loaded_ms = now; /* keep what we had; retry after ttl */
            GH_WARN(&ctx->log, "settings %s of guild %llu unreadable (%s): keeping the copy held", c->feature,
                    (unsigned long long)guild_id, gh_strerror(rc));
            return e->parsed;
        }
        GH_WARN(&ctx->log, "settings %s of guild %llu unreadable (%s): using the defaults", c->feature,
                (unsigned long long)guild_id, gh_strerror(rc));
    }
    if (!doc)
        doc = json_object_new_object();
    void *parsed = doc ? c->parse(doc, guild_id) : NULL;
    json_object_put(doc);
    if (!parsed)
        return e->guild_id ? e->parsed : NULL;
    if (e->guild_id) {
        if (c->free_fn)
            c->free_fn(e->parsed);
    } else {
        e->guild_id = guild_id;
        c->used++;
    }
    e->parsed = parsed;
    e->loaded_ms = now;
    return parsed;
}

void gh_setcache_forget(struct gh_setcache *c, uint64_t guild_id)
{
    if (!c)
        return;
    if (guild_id == 0) {
        for (size_t i = 0; i < c->cap; i++) {
            if (c->slots[i].guild_id && c->free_fn)
                c->free_fn(c->slots[i].parsed);
            c->slots[i].guild_id = 0;
            c->slots[i].parsed = NULL;
        }
        c->used = 0;
        return;
    }
    /* Mark stale instead of deleting (keeps probe chains intact). */
    struct entry *e = find_slot(c->slots, c->cap, guild_id);
    if (e->guild_id)
        e->loaded_ms = gh_mono_ms() - (int64_t)c->ttl_ms - 1;
}
