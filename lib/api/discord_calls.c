/* discord_calls.c - the API's reads from Discord: thin wrappers over
 * lib/discord/guildcache.h (roles, channels and members cached in Redis with
 * a REST fallback). */
#include "api/internal.h"
#include "discord/guildcache.h"

int gh_api_discord_get(struct gh_api_call *c, const char *path, json_object **out)
{
    return gh_guildcache_get(c->ctx, path, out);
}

int gh_api_guild_roles_cached(struct gh_api_call *c, uint64_t guild_id, json_object **out)
{
    return gh_guildcache_roles(c->ctx, guild_id, out);
}

int gh_api_guild_channels_cached(struct gh_api_call *c, uint64_t guild_id, json_object **out)
{
    return gh_guildcache_channels(c->ctx, guild_id, out);
}

int gh_api_guild_member_cached(struct gh_api_call *c, uint64_t guild_id, uint64_t user_id, json_object **out)
{
    return gh_guildcache_member(c->ctx, guild_id, user_id, out);
}

int gh_api_highest_position(const json_object *roles, const json_object *member)
{
    return gh_guildcache_highest(roles, member);
}

int gh_api_bot_position(struct gh_api_call *c, uint64_t guild_id, const json_object *roles, int *out)
{
    return gh_guildcache_bot_position(c->ctx, guild_id, roles, out);
}
