/* jobs.c - the levels job kinds.
 *
 *   levels:levelup  role rewards, then the notification (id
 *                   levels:up:<g>:<u>:<level>: one per level reached)
 *   levels:flush    Redis totals -> levels_members for one shard's guilds
 *   levels:voice    voice minutes -> XP for one shard's guilds
 *
 * flush and voice are per 5-minute slot (id <kind>:<shard>:<slot>, due at
 * the slot's end): gateway-lite's inline handlers enqueue the slot's job
 * when they first change something in it, and a voice job enqueues the next
 * slot's while anyone is still in voice. A flush that fails (PostgreSQL
 * down) is retried with the queue's backoff; its dirty sets are kept, so the
 * next run or the next slot's job writes everything. */
#include "features/levels/levels.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "discord/guildcache.h"
#include "discord/interaction.h"
#include "discord/perms.h"
#include "discord/respond.h"
#include "discord/rest.h"
#include "store/queue.h"
#include "store/redis.h"

const struct gh_job_kind gh_lv_jobs[GH_LV_N_JOBS] = {
    {.kind = "levels:levelup", .run = gh_lv_job_levelup, .timeout_s = 30, .max_attempts = 3},
    {.kind = "levels:flush",
     .run = gh_lv_job_flush,
     .timeout_s = 120,
     .max_attempts = 10,
     .backoff_base_ms = 2000},
    {.kind = "levels:voice", .run = gh_lv_job_voice, .timeout_s = 120, .max_attempts = 3},
};

static int rest(struct gh_ctx *ctx, const char *method, const char *path, const char *body, const char *audit,
                struct gh_rest_resp *resp)
{
    struct gh_rest_req req = {.method = method, .path = path, .body = body, .audit_reason = audit};

    memset(resp, 0, sizeof(*resp));
    if (ctx->rest == NULL)
        return GH_EUNAVAILABLE;
    if (body)
        req.body_len = strlen(body);
    return gh_rest_do(ctx->rest, &req, resp);
}

static int member_has(json_object *member, uint64_t role)
{
    json_object *roles = gh_json_get_arr(member, "roles");

    for (size_t i = 0; roles && i < json_object_array_length(roles); i++)
        if (gh_snowflake_parse(json_object_get_string(json_object_array_get_idx(roles, i))) == role)
            return 1;
    return 0;
}

/* The bot's guild permissions from its roles (and @everyone's). */
static uint64_t bot_perms(uint64_t guild_id, json_object *roles, json_object *bot)
{
    uint64_t p = 0, v;

    for (size_t i = 0; roles && i < json_object_array_length(roles); i++) {
        json_object *r = json_object_array_get_idx(roles, i);
        uint64_t id = gh_snowflake_parse(gh_json_get_str(r, "id"));
        const char *perm = gh_json_get_str(r, "permissions");
        if (perm && (id == guild_id || member_has(bot, id)) && gh_perms_parse(perm, &v) == GH_OK)
            p |= v;
    }
    return p;
}

/* Applies the rewards reached at level. GH_OK, or an error worth a retry. */
static int apply_rewards(struct gh_ctx *ctx, uint64_t g, uint64_t u, int level,
                         const struct gh_lv_settings *s, int allowed)
{
    json_object *roles = NULL, *member = NULL, *bot = NULL;
    int rc, botpos = 0, top = -1;
    uint64_t perms;
    char path[160];
    struct gh_rest_resp resp;

    for (int i = 0; i < s->n_rewards && i < allowed; i++)
        if (s->rewards[i].level <= level)
            top = i;
    if (top < 0)
        return GH_OK;
    rc = gh_guildcache_roles(ctx, g, &roles);
    if (rc == GH_OK)
        rc = gh_guildcache_member(ctx, g, u, &member);
    if (rc == GH_OK)
        rc = gh_guildcache_member(ctx, g, ctx->cfg->application_id, &bot);
    if (rc == GH_ENOTFOUND) { /* the member left: nothing to give */
        rc = GH_OK;
        goto out;
    }
    if (rc != GH_OK)
        goto out;
    perms = bot_perms(g, roles, bot);
    if (!gh_perms_has(perms, GH_PERM(MANAGE_ROLES))) {
        GH_WARN(&ctx->log,
                "levels: cannot give level %d rewards in guild %" PRIu64 ": Guildhall lacks Manage Roles",
                level, g);
        goto out;
    }
    botpos = gh_guildcache_highest(roles, bot);
    for (int i = 0; i <= top; i++) {
        uint64_t role = s->rewards[i].role_id;
        char rid[24];
        int want = s->reward_stack || i == top;
        snprintf(rid, sizeof(rid), "%" PRIu64, role);
        if (gh_guildcache_role_position(roles, rid) < 0) {
            GH_WARN(&ctx->log, "levels: reward role %s of guild %" PRIu64 " no longer exists", rid, g);
            continue;
        }
        if (gh_guildcache_role_position(roles, rid) >= botpos) {
            GH_WARN(&ctx->log,
                    "levels: reward role %s of guild %" PRIu64
                    " is not below Guildhall's highest role: skipped",
                    rid, g);
            continue;
        }
        if (want == member_has(member, role))
            continue;
        snprintf(path, sizeof(path), "/guilds/%" PRIu64 "/members/%" PRIu64 "/roles/%s", g, u, rid);
        int r = rest(ctx, want ? "PUT" : "DELETE", path, NULL, "Level reward", &resp);
        if (r != GH_OK && r != GH_EFORBIDDEN && r != GH_ENOTFOUND && r != GH_EDISCORD) {
            gh_rest_resp_cleanup(&resp);
            rc = r;
            goto out;
        }
        if (r != GH_OK)
            GH_WARN(&ctx->log, "levels: role %s %s user %" PRIu64 " refused: %s", rid, want ? "to" : "from",
                    u, resp.error);
        gh_rest_resp_cleanup(&resp);
    }
    gh_guildcache_forget_member(ctx, g, u);
    rc = GH_OK;
out:
    json_object_put(roles);
    json_object_put(member);
    json_object_put(bot);
    return rc;
}

int gh_lv_job_levelup(struct gh_ctx *ctx, const struct gh_job *job)
{
    struct gh_lv_settings s;
    uint64_t g = job->guild_id, u, ch;
    int64_t level = 0, xp = 0;
    int rank = 0, rc, allowed;
    char text[1200], path[96], uid[24];
    json_object *msg = NULL, *am, *users;
    struct gh_rest_resp resp;

    u = gh_snowflake_parse(gh_json_get_str(job->payload, "user_id"));
    ch = gh_snowflake_parse(gh_json_get_str(job->payload, "channel_id"));
    if (g == 0 || u == 0 || gh_json_get_int(job->payload, "level", &level) != GH_OK) {
        GH_ERROR(&ctx->log, "levels: malformed levelup job %s", job->id);
        return GH_OK; /* nothing a retry would fix */
    }
    (void)gh_json_get_int(job->payload, "xp", &xp);
    rc = gh_lv_settings_load(ctx, g, &s);
    if (rc != GH_OK)
        return rc;
    if (!s.enabled)
        return GH_OK;
    gh_lv_tier_refresh(ctx, g, &rank);
    allowed = rank >= 1 ? GH_LV_MAX_REWARDS : GH_LV_FREE_REWARDS;
    rc = apply_rewards(ctx, g, u, (int)level, &s, allowed);
    if (rc != GH_OK)
        return rc;
    if (s.notify == GH_LV_NOTIFY_OFF)
        return GH_OK;
    if (s.notify == GH_LV_NOTIFY_CHANNEL && s.notify_channel_id)
        ch = s.notify_channel_id;
    if (ch == 0)
        return GH_OK;
    (void)gh_lv_notify_text(&s, u, gh_json_get_str(job->payload, "username"), (int)level, xp, text,
                            sizeof(text));
    msg = json_object_new_object();
    json_object_object_add(msg, "content", json_object_new_string(text));
    am = json_object_new_object();
    json_object_object_add(am, "parse", json_object_new_array());
    users = json_object_new_array();
    snprintf(uid, sizeof(uid), "%" PRIu64, u);
    json_object_array_add(users, json_object_new_string(uid));
    json_object_object_add(am, "users", users);
    json_object_object_add(msg, "allowed_mentions", am);
    gh_msg_set_nonce(msg, job->id); /* a job run twice posts once */
    snprintf(path, sizeof(path), "/channels/%" PRIu64 "/messages", ch);
    rc = rest(ctx, "POST", path, json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN), NULL, &resp);
    if (rc == GH_EFORBIDDEN || rc == GH_ENOTFOUND || rc == GH_EDISCORD) {
        GH_WARN(&ctx->log, "levels: level-up message in channel %" PRIu64 " refused: %s", ch, resp.error);
        rc = GH_OK;
    }
    gh_rest_resp_cleanup(&resp);
    json_object_put(msg);
    return rc;
}

int gh_lv_job_flush(struct gh_ctx *ctx, const struct gh_job *job)
{
    int64_t shard = 0;
    int guilds = 0, rows = 0, rc;

    (void)gh_json_get_int(job->payload, "shard", &shard);
    rc = gh_lv_flush_shard(ctx, (int)shard, &guilds, &rows);
    if (rc == GH_OK)
        GH_INFO(&ctx->log, "levels: flush of shard %d: %d guilds, %d rows", (int)shard, guilds, rows);
    else
        GH_WARN(&ctx->log,
                "levels: flush of shard %d incomplete (%s): %d guilds, %d rows written, will retry",
                (int)shard, gh_strerror(rc), guilds, rows);
    return rc;
}

struct vmember {
    char user[24];
    uint64_t channel;
    int64_t since;
    int flags;
    char raw[80];
};

int gh_lv_voice_award(struct gh_ctx *ctx, uint64_t guild_id, int64_t now_ms, int *awarded)
{
    char hkey[80];
    redisReply *h;
    struct vmember *m = NULL;
    size_t n = 0;
    struct gh_lv_settings s;
    int rank = 0;
    static const char cas_lua[] = "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then "
                                  "redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) return 1 end return 0";

    *awarded = 0;
    gh_key_guild(hkey, sizeof(hkey), guild_id, "levels", "voice");
    h = gh_redis_cmd(ctx->redis, "HGETALL %s", hkey);
    if (h == NULL || h->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(h);
        return GH_EREDIS;
    }
    if (gh_lv_settings_load(ctx, guild_id, &s) != GH_OK) {
        freeReplyObject(h);
        return GH_EPG; /* nothing moved: the minutes are awarded by a later run */
    }
    if (!s.enabled || !s.voice_enabled) {
        /* off: forget who is in voice (tracking starts again with the next update) */
        freeReplyObject(h);
        freeReplyObject(gh_redis_cmd(ctx->redis, "DEL %s", hkey));
        return GH_OK;
    }
    gh_lv_tier_refresh(ctx, guild_id, &rank);
    m = calloc(h->elements / 2 + 1, sizeof(*m));
    for (size_t i = 0; m && i + 1 < h->elements; i += 2) {
        struct vmember *v = &m[n];
        unsigned long long c = 0;
        long long since = 0;
        if (sscanf(h->element[i + 1]->str, "%llu:%lld:%d", &c, &since, &v->flags) != 3)
            continue;
        snprintf(v->user, sizeof(v->user), "%s", h->element[i]->str);
        snprintf(v->raw, sizeof(v->raw), "%s", h->element[i + 1]->str);
        v->channel = c;
        v->since = since;
        n++;
    }
    for (size_t i = 0; i < n; i++) {
        struct vmember *v = &m[i];
        int others = 0, eligible = v->flags == 0;
        int64_t minutes = (now_ms - v->since) / 60000, next_since;
        char next[80];
        uint64_t u = gh_snowflake_parse(v->user);
        for (size_t k = 0; k < n; k++)
            if (k != i && m[k].channel == v->channel && m[k].flags == 0)
                others++;
        if (others < 1 || gh_lv_excluded(&s, u, v->channel, NULL))
            eligible = 0;
        if (minutes < 1)
            continue;
        next_since = eligible ? v->since + minutes * 60000 : now_ms;
        snprintf(next, sizeof(next), "%" PRIu64 ":%" PRId64 ":%d", v->channel, next_since, v->flags);
        redisReply *c =
            gh_redis_cmd(ctx->redis, "EVAL %s 1 %s %s %s %s", cas_lua, hkey, v->user, v->raw, next);
        int moved = c && c->type == REDIS_REPLY_INTEGER && c->integer == 1;
        freeReplyObject(c);
        if (!moved || !eligible)
            continue; /* changed meanwhile (its new state counts from now) or not earning */
        double f = gh_lv_factor(&s, v->channel, NULL, rank < 1);
        long gain = lround((double)(minutes * s.voice_xp_per_min) * f);
        int aw = 0, seeded = 0;
        int64_t oldx = 0, newx = 0;
        if (gh_lv_award_append(ctx, guild_id, u, 0, gain, gain) != GH_OK ||
            gh_lv_award_reply(ctx, &aw, &oldx, &newx, &seeded) != GH_OK) {
            free(m);
            freeReplyObject(h);
            return GH_EREDIS;
        }
        (*awarded)++;
        if (seeded)
            (void)gh_lv_levelup_enqueue(ctx, guild_id, u, v->channel, oldx, newx, NULL);
    }
    free(m);
    freeReplyObject(h);
    return GH_OK;
}

int gh_lv_job_voice(struct gh_ctx *ctx, const struct gh_job *job)
{
    int64_t shard = 0, now = gh_now_ms();
    char key[96];
    redisReply *gs;
    int first = GH_OK, left = 0;

    (void)gh_json_get_int(job->payload, "shard", &shard);
    gh_key_global(key, sizeof(key), "levels", "voice_guilds:%d", (int)shard);
    gs = gh_redis_cmd(ctx->redis, "SMEMBERS %s", key);
    if (gs == NULL || gs->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(gs);
        return GH_EREDIS;
    }
    for (size_t i = 0; i < gs->elements; i++) {
        uint64_t g = gh_snowflake_parse(gs->element[i]->str);
        char hkey[80];
        int aw = 0, rc;
        redisReply *c;
        if (g == 0)
            continue;
        rc = gh_lv_voice_award(ctx, g, now, &aw);
        if (rc != GH_OK && first == GH_OK)
            first = rc;
        if (aw > 0) {
            char dkey[96];
            gh_key_global(dkey, sizeof(dkey), "levels", "dirty_guilds:%d", (int)shard);
            freeReplyObject(gh_redis_cmd(ctx->redis, "SADD %s %" PRIu64, dkey, g));
        }
        gh_key_guild(hkey, sizeof(hkey), g, "levels", "voice");
        c = gh_redis_cmd(ctx->redis, "HLEN %s", hkey);
        if (c && c->type == REDIS_REPLY_INTEGER && c->integer == 0)
            freeReplyObject(gh_redis_cmd(ctx->redis, "SREM %s %s", key, gs->element[i]->str));
        else
            left++;
        freeReplyObject(c);
    }
    freeReplyObject(gs);
    if (left > 0) /* members still in voice: the next slot's award */
        (void)gh_lv_schedule(ctx, "levels:voice", (int)shard, now + GH_LV_VOICE_PERIOD_MS);
    /* the awards made users dirty: make sure the shard's flush follows */
    (void)gh_lv_schedule(ctx, "levels:flush", (int)shard, now);
    return first;
}
