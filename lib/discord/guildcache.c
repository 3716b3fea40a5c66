/* guildcache.c - see guildcache.h. */
#include "discord/guildcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "discord/rest.h"
#include "store/redis.h"

int gh_guildcache_get(struct gh_ctx *ctx, const char *path, json_object **out)
{
    struct gh_rest_resp resp;
    struct gh_rest_req req = {.method = "GET", .path = path};
    int rc;

    *out = NULL;
    memset(&resp, 0, sizeof(resp));
    if (ctx->rest == NULL)
        return GH_EUNAVAILABLE;
    rc = gh_rest_do(ctx->rest, &req, &resp);
    if (rc == GH_OK && gh_json_parse(resp.body, resp.body_len, 16, out) != GH_OK) {
        GH_ERROR(&ctx->log, "guildcache: Discord answered GET %s with malformed JSON", path);
        rc = GH_EDISCORD;
    }
    gh_rest_resp_cleanup(&resp);
    return rc;
}

static int cached(struct gh_ctx *ctx, const char *key, const char *path, int ttl, json_object **out)
{
    int rc;
    *out = NULL;
    if (ctx->redis) {
        redisReply *r = gh_redis_cmd(ctx->redis, "GET %s", key);
        if (r && r->type == REDIS_REPLY_STRING && gh_json_parse(r->str, r->len, 16, out) == GH_OK) {
            freeReplyObject(r);
            return GH_OK;
        }
        freeReplyObject(r);
    }
    rc = gh_guildcache_get(ctx, path, out);
    if (rc == GH_OK && ctx->redis) {
        redisReply *r = gh_redis_cmd(ctx->redis, "SET %s %s EX %d", key,
                                     json_object_to_json_string_ext(*out, JSON_C_TO_STRING_PLAIN), ttl);
        freeReplyObject(r);
    }
    return rc;
}

int gh_guildcache_roles(struct gh_ctx *ctx, uint64_t guild_id, json_object **out)
{
    char key[128];
    char path[96];
    (void)gh_key_guild(key, sizeof(key), guild_id, "cache", "roles");
    (void)snprintf(path, sizeof(path), "/guilds/%llu/roles", (unsigned long long)guild_id);
    return cached(ctx, key, path, 300, out);
}

int gh_guildcache_channels(struct gh_ctx *ctx, uint64_t guild_id, json_object **out)
{
    char key[128];
    char path[96];
    (void)gh_key_guild(key, sizeof(key), guild_id, "cache", "channels");
    (void)snprintf(path, sizeof(path), "/guilds/%llu/channels", (unsigned long long)guild_id);
    return cached(ctx, key, path, 300, out);
}

int gh_guildcache_member(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, json_object **out)
{
    char key[128];
    char path[96];
    (void)gh_key_guild(key, sizeof(key), guild_id, "cache", "member:%llu", (unsigned long long)user_id);
    (void)snprintf(path, sizeof(path), "/guilds/%llu/members/%llu", (unsigned long long)guild_id,
                   (unsigned long long)user_id);
    return cached(ctx, key, path, 60, out);
}

void gh_guildcache_forget_member(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id)
{
    char key[128];
    if (ctx->redis == NULL || gh_key_guild(key, sizeof(key), guild_id, "cache", "member:%llu",
                                           (unsigned long long)user_id) != GH_OK)
        return;
    redisReply *r = gh_redis_cmd(ctx->redis, "DEL %s", key);
    freeReplyObject(r);
}

int gh_guildcache_role_position(const json_object *roles, const char *id)
{
    size_t n = roles && json_object_is_type(roles, json_type_array) ? json_object_array_length(roles) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(roles, i);
        const char *rid = gh_json_get_str(r, "id");
        int64_t pos = 0;
        if (rid && strcmp(rid, id) == 0 && gh_json_get_int(r, "position", &pos) == GH_OK)
            return (int)pos;
    }
    return -1;
}

int gh_guildcache_highest(const json_object *roles, const json_object *member)
{
    json_object *mr = member ? gh_json_get_arr(member, "roles") : NULL;
    size_t n = mr ? json_object_array_length(mr) : 0;
    int best = 0;
    for (size_t i = 0; i < n; i++) {
        const char *id = json_object_get_string(json_object_array_get_idx(mr, i));
        int p = id ? gh_guildcache_role_position(roles, id) : -1;
        if (p > best)
            best = p;
    }
    return best;
}

int gh_guildcache_bot_position(struct gh_ctx *ctx, uint64_t guild_id, const json_object *roles, int *out)
{
    json_object *member = NULL;
    int rc = gh_guildcache_member(ctx, guild_id, ctx->cfg->application_id, &member);
    if (rc != GH_OK)
        return rc;
    *out = gh_guildcache_highest(roles, member);
    json_object_put(member);
    return GH_OK;
}
