/* jobs.c - "automod:offence": what AutoMod does after the hot path, in the
 * worker. The job (enqueued by events.c, id automod:<guild>:<message>:<rule>)
 * records the offence row (idempotent: unique per guild, message and rule),
 * then runs the rule's warn / kick / ban through moderation (gh_mod_act:
 * a case each, moderator 0 = Guildhall, reason "AutoMod: <rule>"; a warn
 * feeds the escalation), then marks the row done with the outcome. A
 * retry after the row was marked done does nothing; a retry before that
 * runs the actions again, and the warn is deduped by moderation (its
 * interaction_id is the message id: at most one AutoMod warning per message,
 * whichever rules matched). PostgreSQL down: the job fails and is retried with
 * backoff (up to 8 attempts over about four minutes). The delete and the
 * timeout were already done by the gateway; the row says so. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "discord/guildcache.h"
#include "features/automod/automod.h"
#include "features/moderation/moderation.h"
#include "store/queue.h"
#include "store/redis.h"

static int get_b(json_object *p, const char *k)
{
    int v = 0;
    return gh_json_get_bool(p, k, &v) == GH_OK && v;
}

static void append(char *out, size_t n, const char *what, const struct gh_mod_case *c, int rc, int dup)
{
    size_t used = strlen(out);
    if (used >= n)
        return;
    if (rc == GH_OK)
        snprintf(out + used, n - used, "%s%s: case #%" PRId64 "%s", used ? "; " : "", what, c->number,
                 dup ? " (already made)" : "");
    else
        snprintf(out + used, n - used, "%s%s: failed (%s)", used ? "; " : "", what,
                 c->error[0] ? c->error : gh_strerror(rc));
}

/* The guild's owner: the gateway's guild cache (bot:{g}:cache:guild owner_id),
 * else Discord (GET /guilds/{id}). 0 when neither answers. */
static uint64_t guild_owner(struct gh_ctx *ctx, uint64_t guild_id)
{
    char key[96], path[64];
    uint64_t owner = 0;
    redisReply *r = NULL;
    json_object *g = NULL;

    if (ctx->redis && gh_key_guild(key, sizeof(key), guild_id, "cache", "guild") == GH_OK &&
        (r = gh_redis_cmd(ctx->redis, "HGET %s owner_id", key)) != NULL && r->type == REDIS_REPLY_STRING)
        (void)gh_cstr_to_u64(r->str, &owner);
    freeReplyObject(r);
    if (owner)
        return owner;
    snprintf(path, sizeof(path), "/guilds/%" PRIu64, guild_id);
    if (gh_guildcache_get(ctx, path, &g) == GH_OK)
        owner = gh_json_get_snowflake(g, "owner_id");
    json_object_put(g);
    return owner;
}

/* Why AutoMod must not act on the member (the owner, or a member whose
 * highest role is not below the bot's), into why; 0 when it may. Unknown
 * roles (Discord unreachable) do not stop a warn: Discord itself refuses a
 * kick or ban above the bot, and the case then says so. */
static int protected_member(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, char *why, size_t n)
{
    json_object *roles = NULL, *member = NULL;
    int bot = 0, prot = 0;

    if (guild_owner(ctx, guild_id) == user_id) {
        snprintf(why, n, "the server owner");
        return 1;
    }
    if (gh_guildcache_roles(ctx, guild_id, &roles) == GH_OK &&
        gh_guildcache_member(ctx, guild_id, user_id, &member) == GH_OK &&
        gh_guildcache_bot_position(ctx, guild_id, roles, &bot) == GH_OK) {
        int mine = gh_guildcache_highest(roles, member);
        prot = mine > 0 && mine >= bot; /* only @everyone (0) is always below */
    }
    if (prot)
        snprintf(why, n, "a member whose highest role is not below Guildhall's");
    json_object_put(member);
    json_object_put(roles);
    return prot;
}

static int job_offence(struct gh_ctx *ctx, const struct gh_job *job)
{
    json_object *p = job->payload;
    struct gh_am_offence o;
    int64_t v = 0;
    int created = 0, done = 0, rc, rule;
    char outcome[1000], reason[96];
    static const struct {
        unsigned bit;
        enum gh_mod_type type;
        const char *name;
    } acts[] = {
        {GH_AM_ACT_WARN, GH_MOD_WARN, "warn"},
        {GH_AM_ACT_KICK, GH_MOD_KICK, "kick"},
        {GH_AM_ACT_BAN, GH_MOD_BAN, "ban"},
    };

    memset(&o, 0, sizeof(o));
    rule = gh_am_rule_parse(gh_json_get_str(p, "rule"));
    o.guild_id = gh_json_get_snowflake(p, "guild_id");
    o.user_id = gh_json_get_snowflake(p, "user_id");
    o.channel_id = gh_json_get_snowflake(p, "channel_id");
    o.message_id = gh_json_get_snowflake(p, "message_id");
    if (rule < 0 || !o.guild_id || !o.user_id || !o.channel_id || !o.message_id) {
        GH_ERROR(&ctx->log, "automod: job %s has a malformed payload: dropped", job->id);
        return GH_OK; /* retrying cannot fix it */
    }
    o.rule = (enum gh_am_rule)rule;
    if (gh_json_get_int(p, "actions", &v) == GH_OK)
        o.actions = (unsigned)v & GH_AM_ACT_ALL;
    o.log_only = get_b(p, "log_only");
    o.is_edit = get_b(p, "edited");
    o.excerpt = gh_json_get_str(p, "excerpt");
    o.matched = gh_json_get_str(p, "matched");
    if (gh_json_get_int(p, "detected_ms", &v) == GH_OK)
        o.message_ms = v;

    rc = gh_am_offence_record(ctx, &o, &created, &done);
    if (rc != GH_OK)
        return rc; /* PostgreSQL down: retried with backoff */
    if (done) {
        GH_INFO(&ctx->log, "automod: offence %s already handled", job->id);
        return GH_OK;
    }

    outcome[0] = '\0';
    if (get_b(p, "deleted"))
        snprintf(outcome, sizeof(outcome), "deleted");
    if (get_b(p, "timed_out") && gh_json_get_int(p, "timeout_s", &v) == GH_OK)
        snprintf(outcome + strlen(outcome), sizeof(outcome) - strlen(outcome), "%stimed out for %" PRId64 " s",
                 outcome[0] ? "; " : "", v);
    snprintf(reason, sizeof(reason), "AutoMod: %s", gh_am_rule_title(o.rule));
    if (!o.log_only && (o.actions & (GH_AM_ACT_WARN | GH_AM_ACT_KICK | GH_AM_ACT_BAN))) {
        char why[96];
        if (protected_member(ctx, o.guild_id, o.user_id, why, sizeof(why))) {
            GH_WARN(&ctx->log, "automod: %s not acted on in guild %" PRIu64 ": user %" PRIu64 " is %s", job->id,
                    o.guild_id, o.user_id, why);
            snprintf(outcome + strlen(outcome), sizeof(outcome) - strlen(outcome), "%snot acted on: %s",
                     outcome[0] ? "; " : "", why);
            o.actions &= ~(unsigned)(GH_AM_ACT_WARN | GH_AM_ACT_KICK | GH_AM_ACT_BAN);
        }
    }
    for (size_t i = 0; !o.log_only && i < sizeof(acts) / sizeof(acts[0]); i++) {
        struct gh_mod_request req;
        struct gh_mod_case c;
        int dup = 0;
        if (!(o.actions & acts[i].bit))
            continue;
        memset(&req, 0, sizeof(req));
        memset(&c, 0, sizeof(c));
        req.type = acts[i].type;
        req.guild_id = o.guild_id;
        req.target_id = o.user_id;
        req.moderator_id = 0;
        req.reason = reason;
        /* one AutoMod warning per message, whichever rules matched and however often the job runs */
        req.interaction_id = acts[i].type == GH_MOD_WARN ? o.message_id : 0;
        rc = gh_mod_act(ctx, &req, &c, &dup);
        append(outcome, sizeof(outcome), acts[i].name, &c, rc, dup);
        GH_INFO(&ctx->log, "automod: %s of user %" PRIu64 " in guild %" PRIu64 " for %s: %s", acts[i].name,
                o.user_id, o.guild_id, gh_am_rule_name(o.rule), rc == GH_OK ? "done" : gh_strerror(rc));
        gh_mod_case_cleanup(&c);
        if (rc == GH_EPG)
            return rc; /* nothing recorded: run again later (the warn is deduped) */
    }
    if (o.log_only && !outcome[0])
        snprintf(outcome, sizeof(outcome), "log only");
    rc = gh_am_offence_done(ctx, o.guild_id, o.message_id, o.rule, outcome);
    if (rc != GH_OK)
        return rc;
    return GH_OK;
}

const struct gh_job_kind gh_am_jobs[GH_AM_N_JOBS] = {
    {.kind = GH_AM_JOB_OFFENCE, .run = job_offence, .timeout_s = 30, .max_attempts = 8, .backoff_base_ms = 2000},
};
