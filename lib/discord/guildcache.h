/* guildcache.h - a guild's roles, channels and members as Discord reports
 * them, read through Redis (the gateway listener writes the same keys from
 * its events) with a REST fallback (bot token):
 *   bot:{<guild>}:cache:roles          JSON array, 300 s
 *   bot:{<guild>}:cache:channels       JSON array, 300 s
 *   bot:{<guild>}:cache:member:<user>  JSON object, 60 s
 * (the TTLs above are this module's, for what it fetched from REST; the
 * gateway's copies, kept fresh by events in features/events/cache.c, live
 * 24 h from their last write, and the gateway also keeps the guild summary
 * hash bot:{<guild>}:cache:guild: docs/features/events.md).
 * Redis down: straight to Discord. Used by the API (settings, pickers) and
 * by moderation's hierarchy checks. */
#ifndef GH_DISCORD_GUILDCACHE_H
#define GH_DISCORD_GUILDCACHE_H

#include <json-c/json.h>
#include <stdint.h>

struct gh_ctx;

/* GET path with the bot token, parsed into *out (caller puts). GH_OK or the
 * REST error (logged by the client). */
int gh_guildcache_get(struct gh_ctx *ctx, const char *path, json_object **out);
int gh_guildcache_roles(struct gh_ctx *ctx, uint64_t guild_id, json_object **out);
int gh_guildcache_channels(struct gh_ctx *ctx, uint64_t guild_id, json_object **out);
/* GH_ENOTFOUND when the user is not a member. */
int gh_guildcache_member(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, json_object **out);
/* Drops a cached member (after a role change). */
void gh_guildcache_forget_member(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id);
/* Highest role position of a member (0 = only @everyone), given the roles. */
int gh_guildcache_highest(const json_object *roles, const json_object *member);
/* Position of one role, -1 when not in roles. */
int gh_guildcache_role_position(const json_object *roles, const char *role_id);
/* Position of the bot's highest role (its member is read like any other). */
int gh_guildcache_bot_position(struct gh_ctx *ctx, uint64_t guild_id, const json_object *roles, int *out);

#endif
