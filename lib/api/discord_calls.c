/* discord_calls.c - what the API reads from Discord with the bot token:
 * roles, channels and members, cached in Redis (the gateway listener writes
 * the same keys from its events in a later issue):
 *   bot:{<guild>}:cache:roles     JSON array, 300 s
 *   bot:{<guild>}:cache:channels  JSON array, 300 s
 *   bot:{<guild>}:cache:member:<user>  JSON object, 60 s
 * Redis down: straight to Discord. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "api/internal.h"
#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "discord/rest.h"
#include "store/redis.h"

int gh_api_discord_get(struct gh_api_call *c, const char *path, json_object **out)
{
    struct gh_rest_resp resp;
    struct gh_rest_req req = {.method = "GET", .path = path};
    int rc;

    *out = NULL;
    memset(&resp, 0, sizeof(resp));
    if (c->ctx->rest == NULL)
        return GH_EUNAVAILABLE;
    rc = gh_rest_do(c->ctx->rest, &req, &resp);
    if (rc == GH_OK && gh_json_parse(resp.body, resp.body_len, 16, out) != GH_OK) {
        GH_ERROR(&c->ctx->log, "api: Discord answered GET %s with malformed JSON", path);
        rc = GH_EDISCORD;
    }
    gh_rest_resp_cleanup(&resp);
    return rc;
}

static int cached(struct gh_api_call *c, const char *key, const char *path, int ttl, json_object **out)
{
    int rc;
    *out = NULL;
    if (c->ctx->redis) {
        redisReply *r = gh_redis_cmd(c->ctx->redis, "GET %s", key);
        if (r && r->type == REDIS_REPLY_STRING && gh_json_parse(r->str, r->len, 16, out) == GH_OK) {
            freeReplyObject(r);
            return GH_OK;
        }
        freeReplyObject(r);
    }
    rc = gh_api_discord_get(c, path, out);
    if (rc == GH_OK && c->ctx->redis) {
        redisReply *r = gh_redis_cmd(c->ctx->redis, "SET %s %s EX %d", key,
                                     json_object_to_json_string_ext(*out, JSON_C_TO_STRING_PLAIN), ttl);
        freeReplyObject(r);
    }
    return rc;
}

int gh_api_guild_roles_cached(struct gh_api_call *c, uint64_t guild_id, json_object **out)
{
    char key[128];
    char path[96];
    (void)gh_key_guild(key, sizeof(key), guild_id, "cache", "roles");
    (void)snprintf(path, sizeof(path), "/guilds/%llu/roles", (unsigned long long)guild_id);
    return cached(c, key, path, 300, out);
}

int gh_api_guild_channels_cached(struct gh_api_call *c, uint64_t guild_id, json_object **out)
{
    char key[128];
    char path[96];
    (void)gh_key_guild(key, sizeof(key), guild_id, "cache", "channels");
    (void)snprintf(path, sizeof(path), "/guilds/%llu/channels", (unsigned long long)guild_id);
    return cached(c, key, path, 300, out);
}

int gh_api_guild_member_cached(struct gh_api_call *c, uint64_t guild_id, uint64_t user_id, json_object **out)
{
    char key[128];
    char path[96];
    (void)gh_key_guild(key, sizeof(key), guild_id, "cache", "member:%llu", (unsigned long long)user_id);
    (void)snprintf(path, sizeof(path), "/guilds/%llu/members/%llu", (unsigned long long)guild_id,
                   (unsigned long long)user_id);
    return cached(c, key, path, 60, out);
}

static int role_position(const json_object *roles, const char *id)
{
    size_t n = json_object_array_length(roles);
    for (size_t i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(roles, i);
        const char *rid = gh_json_get_str(r, "id");
        int64_t pos = 0;
        if (rid && strcmp(rid, id) == 0 && gh_json_get_int(r, "position", &pos) == GH_OK)
            return (int)pos;
    }
    return -1;
}

int gh_api_highest_position(const json_object *roles, const json_object *member)
{
    json_object *mr = member ? gh_json_get_arr(member, "roles") : NULL;
    size_t n = mr ? json_object_array_length(mr) : 0;
    int best = 0;
    for (size_t i = 0; i < n; i++) {
        const char *id = json_object_get_string(json_object_array_get_idx(mr, i));
        int p = id ? role_position(roles, id) : -1;
        if (p > best)
            best = p;
    }
    return best;
}

int gh_api_bot_position(struct gh_api_call *c, uint64_t guild_id, const json_object *roles, int *out)
{
    json_object *member = NULL;
    int rc = gh_api_guild_member_cached(c, guild_id, c->ctx->cfg->application_id, &member);
    if (rc != GH_OK)
        return rc;
    *out = gh_api_highest_position(roles, member);
    json_object_put(member);
    return GH_OK;
}
