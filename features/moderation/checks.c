/* checks.c - who may act on whom, checked before every moderation action.
 *
 * The order is fixed (moderation.h): the invoker's permission or staff tier,
 * then the target (not the invoker, not Guildhall, not the owner), then the
 * role hierarchy when the target is a member (the invoker's highest role and
 * Guildhall's above the target's), then Guildhall's own permission. Every
 * refusal writes one sentence into why for the ephemeral reply; the caller
 * logs it as a security event. Reading the guild (owner, roles, members)
 * goes through lib/discord/guildcache (Redis, REST fallback); the owner id is
 * cached here in bot:{g}:cache:owner for the same 300 s as the roles. When
 * Discord cannot be read the check fails closed. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <json-c/json.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "discord/guildcache.h"
#include "discord/interaction.h"
#include "discord/perms.h"
#include "features/moderation/moderation.h"
#include "store/redis.h"

#define OWNER_TTL_S 300

static const char *tier_name(enum gh_mod_tier t)
{
    switch (t) {
    case GH_MOD_TIER_NONE:
        return "none";
    case GH_MOD_TIER_MODERATOR:
        return "moderator";
    case GH_MOD_TIER_ADMIN:
        return "admin";
    }
    return "unknown";
}

static int has_role(const json_object *roles, uint64_t want)
{
    size_t n = roles && json_object_is_type(roles, json_type_array) ? json_object_array_length(roles) : 0;

    for (size_t i = 0; i < n; i++)
        if (gh_snowflake_parse(json_object_get_string(json_object_array_get_idx(roles, i))) == want)
            return 1;
    return 0;
}

static int has_any_role(const json_object *roles, const uint64_t *ids, int n)
{
    for (int i = 0; i < n; i++)
        if (ids[i] && has_role(roles, ids[i]))
            return 1;
    return 0;
}

/* The invoker's staff tier from the roles the settings map to tiers. */
static enum gh_mod_tier invoker_tier(const struct gh_interaction *ix, const struct gh_mod_settings *s)
{
    if (!s)
        return GH_MOD_TIER_NONE;
    if (has_any_role(ix->member_roles, s->admin_roles, s->n_admin_roles))
        return GH_MOD_TIER_ADMIN;
    if (has_any_role(ix->member_roles, s->moderator_roles, s->n_moderator_roles))
        return GH_MOD_TIER_MODERATOR;
    return GH_MOD_TIER_NONE;
}

static uint64_t bot_id(const struct gh_ctx *ctx, const struct gh_interaction *ix)
{
    if (ctx->cfg && ctx->cfg->application_id)
        return ctx->cfg->application_id;
    return ix->application_id;
}

/* The guild owner's id: Redis bot:{g}:cache:owner, else GET /guilds/{g}. */
static int guild_owner(struct gh_ctx *ctx, uint64_t guild_id, uint64_t *owner)
{
    char key[128], path[64], val[24];
    json_object *guild = NULL;
    int rc;

    *owner = 0;
    if (gh_key_guild(key, sizeof(key), guild_id, "cache", "owner") != GH_OK)
        return GH_EINVAL;
    if (ctx->redis) {
        redisReply *r = gh_redis_cmd(ctx->redis, "GET %s", key);
        if (r && r->type == REDIS_REPLY_STRING)
            *owner = gh_snowflake_parse(r->str);
        freeReplyObject(r);
        if (*owner)
            return GH_OK;
    }
    (void)snprintf(path, sizeof(path), "/guilds/%" PRIu64, guild_id);
    rc = gh_guildcache_get(ctx, path, &guild);
    if (rc != GH_OK)
        goto out;
    *owner = gh_json_get_snowflake(guild, "owner_id");
    if (!*owner) {
        GH_ERROR(&ctx->log, "moderation: GET %s has no owner_id", path);
        rc = GH_EDISCORD;
        goto out;
    }
    if (ctx->redis) {
        (void)snprintf(val, sizeof(val), "%" PRIu64, *owner);
        freeReplyObject(gh_redis_cmd(ctx->redis, "SET %s %s EX %d", key, val, OWNER_TTL_S));
    }
out:
    json_object_put(guild);
    return rc;
}

/* Highest position among the invoker's roles (0 = only @everyone). */
static int invoker_position(const struct gh_interaction *ix, const json_object *roles)
{
    size_t n = ix->member_roles ? json_object_array_length(ix->member_roles) : 0;
    int best = 0;

    for (size_t i = 0; i < n; i++) {
        const char *id = json_object_get_string(json_object_array_get_idx(ix->member_roles, i));
        int p = id ? gh_guildcache_role_position(roles, id) : -1;
        if (p > best)
            best = p;
    }
    return best;
}

static int unreadable(struct gh_ctx *ctx, int rc, const char *what, char *why, size_t whylen)
{
    GH_WARN(&ctx->log, "moderation: could not read %s from Discord: %s", what, gh_strerror(rc));
    (void)snprintf(why, whylen,
                   "I could not read %s from Discord (%s), so I could not check the role hierarchy. Nothing "
                   "was done; try again in a minute.",
                   what, gh_strerror(rc));
    return rc == GH_EHTTP || rc == GH_ETIMEOUT ? GH_EHTTP : GH_EUNAVAILABLE;
}

/* The role hierarchy for a target who is a member. */
static int check_hierarchy(struct gh_ctx *ctx, const struct gh_interaction *ix,
                           const struct gh_mod_check *chk, char *why, size_t whylen)
{
    json_object *roles = NULL, *fetched = NULL;
    const json_object *member = chk->target_member;
    uint64_t owner = 0;
    int target_pos, bot_pos = 0, rc;

    rc = guild_owner(ctx, ix->guild_id, &owner);
    if (rc != GH_OK) {
        rc = unreadable(ctx, rc, "this server's owner", why, whylen);
        goto out;
    }
    if (chk->target_id == owner) {
        (void)snprintf(why, whylen, "The server owner can't be moderated.");
        rc = GH_EFORBIDDEN;
        goto out;
    }
    rc = gh_guildcache_roles(ctx, ix->guild_id, &roles);
    if (rc != GH_OK) {
        rc = unreadable(ctx, rc, "this server's roles", why, whylen);
        goto out;
    }
    if (!member) {
        rc = gh_guildcache_member(ctx, ix->guild_id, chk->target_id, &fetched);
        if (rc == GH_ENOTFOUND) { /* left meanwhile: no hierarchy to respect */
            rc = GH_OK;
            goto out;
        }
        if (rc != GH_OK) {
            rc = unreadable(ctx, rc, "the member", why, whylen);
            goto out;
        }
        member = fetched;
    }
    target_pos = gh_guildcache_highest(roles, member);
    if (ix->user_id != owner && invoker_position(ix, roles) <= target_pos) {
        (void)snprintf(why, whylen,
                       "Your highest role must be above the member's highest role to act on them.");
        rc = GH_EFORBIDDEN;
        goto out;
    }
    rc = gh_guildcache_bot_position(ctx, ix->guild_id, roles, &bot_pos);
    if (rc != GH_OK) {
        rc = unreadable(ctx, rc, "Guildhall's own roles", why, whylen);
        goto out;
    }
    if (bot_pos <= target_pos) {
        (void)snprintf(why, whylen,
                       "Guildhall's highest role must be above the member's highest role: move Guildhall's "
                       "role up in Server Settings > Roles.");
        rc = GH_EFORBIDDEN;
        goto out;
    }
    rc = GH_OK;
out:
    json_object_put(fetched);
    json_object_put(roles);
    return rc;
}

int gh_mod_check(struct gh_ctx *ctx, const struct gh_interaction *ix, const struct gh_mod_settings *s,
                 const struct gh_mod_check *chk, char *why, size_t whylen)
{
    uint64_t bot_need;
    char missing[256];
    int rc;

    if (whylen)
        why[0] = '\0';
    if (!ix || !chk || !ix->guild_id || !ix->has_member) {
        (void)snprintf(why, whylen, "Moderation commands only work in a server.");
        return GH_EFORBIDDEN;
    }
    /* 1. The invoker's permission, or a staff tier that stands for it. */
    if (!gh_perms_has(ix->member_permissions, chk->need) &&
        !(chk->tier != GH_MOD_TIER_NONE && invoker_tier(ix, s) >= chk->tier)) {
        gh_perms_missing(ix->member_permissions, chk->need, missing, sizeof(missing));
        if (chk->tier != GH_MOD_TIER_NONE)
            (void)snprintf(why, whylen,
                           "You need the **%s** permission, or a role of the %s staff tier (set in the "
                           "dashboard), to do this.",
                           missing, tier_name(chk->tier));
        else
            (void)snprintf(why, whylen, "You need the **%s** permission to do this.", missing);
        return GH_EFORBIDDEN;
    }
    /* 2. Who the target is. */
    if (chk->target_id) {
        if (chk->target_id == ix->user_id) {
            (void)snprintf(why, whylen, "You can't use this on yourself.");
            return GH_EFORBIDDEN;
        }
        if (chk->target_id == bot_id(ctx, ix)) {
            (void)snprintf(why, whylen, "Guildhall can't act on itself.");
            return GH_EFORBIDDEN;
        }
        /* 3. The owner and the role hierarchy (only a member has roles; the
         * owner is always a member). */
        if (chk->target_is_member) {
            rc = check_hierarchy(ctx, ix, chk, why, whylen);
            if (rc != GH_OK)
                return rc;
        }
    }
    /* 4. Guildhall's own permission here. */
    bot_need = chk->bot_need_none ? 0 : chk->bot_need ? chk->bot_need : chk->need;
    if (bot_need && !gh_perms_has(ix->app_permissions, bot_need)) {
        gh_perms_missing(ix->app_permissions, bot_need, missing, sizeof(missing));
        (void)snprintf(why, whylen,
                       "Guildhall lacks the **%s** permission here: give its role that permission in Server "
                       "Settings > Roles (or in this channel's permissions).",
                       missing);
        return GH_EFORBIDDEN;
    }
    return GH_OK;
}
