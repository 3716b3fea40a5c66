/* xp.c - gateway-lite's inline handlers of the levels feature.
 *
 * Text XP (MESSAGE_CREATE batches): each message is filtered without any I/O
 * but the settings cache (bots, webhooks, DMs, AutoMod spam/deleted, prefix
 * commands, a disabled feature, blacklisted users and roles, ignored
 * channels), then one award script per remaining message is appended to the
 * connection's pipeline, plus one SADD of the guild to its shard's
 * dirty_guilds set: the whole batch is one round trip. The script applies
 * the cooldown (SET NX EX, so two processes cannot both award one user in a
 * window), adds the gain, updates the leaderboard and the dirty set, and
 * answers the totals before and after, so the level-up decision needs no
 * second trip. A level-up is a job (levels:levelup).
 *
 * The gain is 15..25 (uniform) times gh_lv_factor; the script picks the
 * capped gain (free guild: each multiplier at most 2x) or the full one from
 * the guild's tier key, which the worker keeps (levels:tier, 1 h).
 *
 * Redis down: the batch earns no XP; logged once per 10 s burst and counted
 * (ev->stats->redis_failures). Never blocks beyond the connection's timeout.
 *
 * Voice (VOICE_STATE_UPDATE): members in voice are kept in a hash per guild,
 * user -> "<channel>:<since_ms>:<flags>" (flags: 1 muted, 2 deafened, self or
 * server); the voice job (jobs.c) awards the minutes. */
#include "features/levels/levels.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "discord/interaction.h"
#include "gateway/gwstats.h"
#include "store/jobspool.h"
#include "store/queue.h"
#include "store/redis.h"
#include "store/setcache.h"

/* KEYS: cd, xp, lb, dirty, seeded, tier. ARGV: user, cooldown_s (0 = none),
 * gain_free, gain_premium. -> {old, new, seeded} or {-1} in cooldown. */
static const char award_lua[] =
    "if tonumber(ARGV[2]) > 0 then\n"
    "  if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then return {-1} end\n"
    "end\n"
    "local gain = tonumber(ARGV[3])\n"
    "local t = tonumber(redis.call('GET', KEYS[6]) or '0')\n"
    "if t and t >= 1 then gain = tonumber(ARGV[4]) end\n"
    "local new = redis.call('INCRBY', KEYS[2], gain)\n"
    "redis.call('ZADD', KEYS[3], new, ARGV[1])\n"
    "redis.call('SADD', KEYS[4], ARGV[1])\n"
    "return {new - gain, new, redis.call('EXISTS', KEYS[5])}\n";

/* KEYS: voice hash. ARGV: user, channel ("" = left), now_ms, flags. */
static const char voice_lua[] =
    "local old = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) return 0 end\n"
    "if old then\n"
    "  local c, s, f = string.match(old, '^(%d+):(%d+):(%d+)$')\n"
    "  if c == ARGV[2] and f == ARGV[4] then return 0 end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. ARGV[3] .. ':' .. ARGV[4])\n"
    "return 1\n";

static char award_sha[48];
static struct gh_setcache *cache;
static long redis_failures;
static int64_t last_fail_log_ms;
static uint64_t rng_state;
#define SLOTS 256
#define DIRTY_SEEN_MAX 64
static int64_t flush_slot[SLOTS], voice_slot[SLOTS];

long gh_lv_redis_failures(void)
{
    return redis_failures;
}

static void *parse_settings(json_object *doc, uint64_t guild_id)
{
    struct gh_lv_settings *s = malloc(sizeof(*s));

    (void)guild_id;
    if (s)
        gh_lv_settings_parse(doc, s);
    return s;
}

void gh_lv_inline_reset(void)
{
    gh_setcache_free(cache);
    cache = NULL;
    award_sha[0] = '\0';
    memset(flush_slot, 0, sizeof(flush_slot));
    memset(voice_slot, 0, sizeof(voice_slot));
}

static const struct gh_lv_settings *settings_of(struct gh_ctx *ctx, uint64_t guild_id)
{
    if (cache == NULL)
        cache =
            gh_setcache_new("levels", ctx->cfg ? ctx->cfg->gateway_settings_ttl_ms : 0, parse_settings, free);
    return cache ? gh_setcache_get(cache, ctx, guild_id) : NULL;
}

static long gain_roll(void)
{
    if (rng_state == 0)
        rng_state = ((uint64_t)gh_mono_us() << 16) ^ (uint64_t)getpid() ^ 0x9E3779B97F4A7C15ULL;
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return GH_LV_GAIN_MIN + (long)(rng_state % (GH_LV_GAIN_MAX - GH_LV_GAIN_MIN + 1));
}

static void redis_down(struct gh_ctx *ctx, struct gh_event *const *evs, int n, const char *what)
{
    int64_t now = gh_mono_ms();

    redis_failures++;
    for (int i = 0; i < n; i++)
        if (evs[i]->stats) {
            evs[i]->stats->redis_failures++;
            break;
        }
    if (gh_every(&last_fail_log_ms, now, 10000)) {
        GH_WARN(&ctx->log, "levels: Redis unavailable (%s): no XP for this batch of %d events", what, n);
    }
}

static int load_script(struct gh_ctx *ctx)
{
    redisReply *r;

    if (award_sha[0])
        return GH_OK;
    r = gh_redis_cmd(ctx->redis, "SCRIPT LOAD %s", award_lua);
    if (r == NULL || r->type != REDIS_REPLY_STRING || r->len >= sizeof(award_sha)) {
        freeReplyObject(r);
        return GH_EREDIS;
    }
    memcpy(award_sha, r->str, r->len);
    award_sha[r->len] = '\0';
    freeReplyObject(r);
    return GH_OK;
}

static int award_append(struct gh_ctx *ctx, uint64_t g, uint64_t u, int cooldown_s, long gfree, long gprem,
                        int with_body)
{
    static struct gh_rcmd c; /* reused: the loop is one thread */

    gh_rcmd_begin(&c, 13);
    gh_rcmd_cstr(&c, with_body ? "EVAL" : "EVALSHA");
    gh_rcmd_cstr(&c, with_body ? award_lua : award_sha);
    gh_rcmd_cstr(&c, "6");
    gh_rcmd_key_guild(&c, g, "levels", "cd:", u);
    gh_rcmd_key_guild(&c, g, "levels", "xp:", u);
    gh_rcmd_key_guild(&c, g, "levels", "lb", 0);
    gh_rcmd_key_guild(&c, g, "levels", "dirty", 0);
    gh_rcmd_key_guild(&c, g, "levels", "seeded", 0);
    gh_rcmd_key_guild(&c, g, "levels", "tier", 0);
    gh_rcmd_u64(&c, u);
    gh_rcmd_i64(&c, cooldown_s);
    gh_rcmd_i64(&c, gfree);
    gh_rcmd_i64(&c, gprem);
    return gh_redis_append_rcmd(ctx->redis, &c);
}

int gh_lv_award_append(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, int cooldown_s,
                       long gain_free, long gain_premium)
{
    return award_append(ctx, guild_id, user_id, cooldown_s, gain_free, gain_premium, 1);
}

/* GH_OK (*awarded ...), GH_ENOTFOUND (NOSCRIPT), GH_EREDIS. */
static int parse_award(redisReply *r, int *awarded, int64_t *old_xp, int64_t *new_xp, int *seeded)
{
    *awarded = 0;
    if (r == NULL)
        return GH_EREDIS;
    if (r->type == REDIS_REPLY_ERROR)
        return strncmp(r->str, "NOSCRIPT", 8) == 0 ? GH_ENOTFOUND : GH_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->type != REDIS_REPLY_INTEGER)
        return GH_EREDIS;
    if (r->element[0]->integer < 0)
        return GH_OK;
    if (r->elements < 3)
        return GH_EREDIS;
    *awarded = 1;
    *old_xp = r->element[0]->integer;
    *new_xp = r->element[1]->integer;
    *seeded = (int)r->element[2]->integer;
    return GH_OK;
}

int gh_lv_award_reply(struct gh_ctx *ctx, int *awarded, int64_t *old_xp, int64_t *new_xp, int *seeded)
{
    redisReply *r = gh_redis_get_reply(ctx->redis);
    int rc = parse_award(r, awarded, old_xp, new_xp, seeded);

    freeReplyObject(r);
    return rc;
}

int gh_lv_levelup_enqueue(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, uint64_t channel_id,
                          int64_t old_xp, int64_t new_xp, const char *username)
{
    int oldl = gh_lv_level_for_xp(old_xp), newl = gh_lv_level_for_xp(new_xp);
    char id[128], num[24];
    json_object *p;
    int rc;

    if (newl <= oldl)
        return GH_OK;
    snprintf(id, sizeof(id), "levels:up:%" PRIu64 ":%" PRIu64 ":%d", guild_id, user_id, newl);
    p = json_object_new_object();
    snprintf(num, sizeof(num), "%" PRIu64, user_id);
    json_object_object_add(p, "user_id", json_object_new_string(num));
    snprintf(num, sizeof(num), "%" PRIu64, channel_id);
    json_object_object_add(p, "channel_id", json_object_new_string(num));
    json_object_object_add(p, "level", json_object_new_int(newl));
    json_object_object_add(p, "old_level", json_object_new_int(oldl));
    json_object_object_add(p, "xp", json_object_new_int64(new_xp));
    if (username)
        json_object_object_add(p, "username", json_object_new_string(username));
    rc = gh_jobspool_enqueue(ctx, NULL, id, "levels:levelup", guild_id, p, 0, 0);
    json_object_put(p);
    if (rc == GH_EDUPLICATE)
        rc = GH_OK;
    if (rc != GH_OK)
        GH_WARN(&ctx->log, "levels: level-up job of user %" PRIu64 " in guild %" PRIu64 " not queued: %s",
                user_id, guild_id, gh_strerror(rc));
    return rc;
}

int gh_lv_schedule(struct gh_ctx *ctx, const char *kind, int shard, int64_t now_ms)
{
    int64_t slot = now_ms / GH_LV_FLUSH_PERIOD_MS;
    char id[96];
    json_object *p = json_object_new_object();
    int rc;

    snprintf(id, sizeof(id), "%s:%d:%" PRId64, kind, shard, slot);
    json_object_object_add(p, "shard", json_object_new_int(shard));
    rc = gh_jobspool_enqueue(ctx, NULL, id, kind, 0, p, 0, (slot + 1) * GH_LV_FLUSH_PERIOD_MS);
    json_object_put(p);
    return rc == GH_EDUPLICATE ? GH_OK : rc;
}

/* Once per 5-minute slot per shard per process. */
static void schedule_once(struct gh_ctx *ctx, int64_t *slots, const char *kind, int shard)
{
    int64_t now = gh_now_ms(), slot = now / GH_LV_FLUSH_PERIOD_MS;
    int i = (shard < 0 ? 0 : shard) % SLOTS;

    if (slots[i] == slot + 1)
        return;
    if (gh_lv_schedule(ctx, kind, shard, now) == GH_OK)
        slots[i] = slot + 1;
}

struct item {
    uint64_t guild, user, channel;
    long gfree, gprem;
    int cooldown;
    const char *username;
    int state; /* 0 appended, 1 NOSCRIPT (retry with the body) */
    int up;    /* awarded in a seeded guild: check for a level-up after the batch */
    int64_t oldx, newx;
};

static struct item *items_buf; /* gh_lv_on_messages' items (one thread) */
static int items_cap;

static uint64_t id_member(json_object *o, const char *key)
{
    const char *s = gh_json_get_str(o, key);
    return s ? gh_snowflake_parse(s) : 0;
}

int gh_lv_on_messages(struct gh_ctx *ctx, struct gh_event *const *evs, int n)
{
    struct item *items = NULL;
    int m = 0, appended = 0, failed = 0, retry = 0, shard = 0;
    int rc = GH_OK;

    if (ctx->redis == NULL || n <= 0)
        return GH_OK;
    if (n > items_cap) { /* kept between batches: no large allocation per batch */
        struct item *p = realloc(items_buf, (size_t)n * sizeof(*p));
        if (p == NULL)
            return GH_ENOMEM;
        items_buf = p;
        items_cap = n;
    }
    items = items_buf;
    memset(items, 0, (size_t)n * sizeof(*items));
    for (int i = 0; i < n; i++) {
        const struct gh_event *ev = evs[i];
        json_object *author = gh_json_get_obj(ev->d, "author"), *member = gh_json_get_obj(ev->d, "member");
        json_object *roles = member ? gh_json_get_arr(member, "roles") : NULL;
        const struct gh_lv_settings *s;
        int bot = 0;
        double f;
        long base;

        if (ev->guild_id == 0 || author == NULL)
            continue;
        if (ev->flags & (GH_EVF_SPAM | GH_EVF_DELETED | GH_EVF_PREFIX_CMD))
            continue;
        if (gh_json_get_str(ev->d, "webhook_id") != NULL)
            continue;
        if ((gh_json_get_bool(author, "bot", &bot) == GH_OK && bot) ||
            (gh_json_get_bool(author, "system", &bot) == GH_OK && bot))
            continue;
        s = settings_of(ctx, ev->guild_id);
        if (s == NULL || !s->enabled)
            continue;
        items[m].user = id_member(author, "id");
        items[m].channel = id_member(ev->d, "channel_id");
        if (items[m].user == 0 || gh_lv_excluded(s, items[m].user, items[m].channel, roles))
            continue;
        base = gain_roll();
        f = gh_lv_factor(s, items[m].channel, roles, 1);
        items[m].gfree = lround((double)base * f);
        f = gh_lv_factor(s, items[m].channel, roles, 0);
        items[m].gprem = lround((double)base * f);
        items[m].guild = ev->guild_id;
        items[m].cooldown = s->cooldown_s;
        items[m].username = gh_json_get_str(author, "username");
        shard = ev->shard_id;
        m++;
    }
    if (m == 0)
        goto out;
    if (load_script(ctx) != GH_OK) {
        redis_down(ctx, evs, n, "script load");
        rc = GH_OK;
        goto out;
    }
    for (int i = 0; i < m; i++) {
        if (award_append(ctx, items[i].guild, items[i].user, items[i].cooldown, items[i].gfree,
                         items[i].gprem, 0) != GH_OK)
            break;
        appended++;
    }
    /* one SADD of every distinct guild of the batch (a repeat is harmless:
     * past DIRTY_SEEN_MAX guilds, duplicates may go out) */
    int sadds = 0;
    {
        uint64_t seen[DIRTY_SEEN_MAX];
        int n_seen = 0;
        char key[96];
        gh_key_global(key, sizeof(key), "levels", "dirty_guilds:%d", shard);
        for (int i = 0; i < appended; i++) {
            int dup = 0;
            for (int k = 0; k < n_seen && !dup; k++)
                dup = seen[k] == items[i].guild;
            if (dup)
                continue;
            if (n_seen < DIRTY_SEEN_MAX)
                seen[n_seen++] = items[i].guild;
            if (gh_redis_append(ctx->redis, "SADD %s %" PRIu64, key, items[i].guild) != GH_OK)
                break;
            sadds++;
        }
    }
    for (int i = 0; i < appended; i++) {
        int awarded = 0, seeded = 0;
        int64_t oldx = 0, newx = 0;
        int r = gh_lv_award_reply(ctx, &awarded, &oldx, &newx, &seeded);
        if (r == GH_ENOTFOUND) {
            items[i].state = 1;
            retry++;
            continue;
        }
        if (r != GH_OK) {
            failed++;
            continue;
        }
        items[i].up = awarded && seeded;
        items[i].oldx = oldx;
        items[i].newx = newx;
    }
    for (int i = 0; i < sadds; i++) {
        redisReply *r = gh_redis_get_reply(ctx->redis);
        if (r == NULL)
            failed++;
        freeReplyObject(r);
    }
    if (retry > 0) {
        /* Redis lost its script cache (a restart): once more with the body */
        int again = 0;
        award_sha[0] = '\0';
        for (int i = 0; i < appended; i++)
            if (items[i].state == 1 && award_append(ctx, items[i].guild, items[i].user, items[i].cooldown,
                                                    items[i].gfree, items[i].gprem, 1) == GH_OK)
                again++;
        for (int i = 0, k = 0; i < appended && k < again; i++) {
            int awarded = 0, seeded = 0;
            int64_t oldx = 0, newx = 0;
            if (items[i].state != 1)
                continue;
            k++;
            if (gh_lv_award_reply(ctx, &awarded, &oldx, &newx, &seeded) != GH_OK) {
                failed++;
                continue;
            }
            items[i].up = awarded && seeded;
            items[i].oldx = oldx;
            items[i].newx = newx;
        }
    }
    /* every reply read: the connection is free for the (rare) level-up jobs */
    for (int i = 0; i < appended; i++)
        if (items[i].up)
            (void)gh_lv_levelup_enqueue(ctx, items[i].guild, items[i].user, items[i].channel, items[i].oldx,
                                        items[i].newx, items[i].username);
    if (appended < m || failed > 0)
        redis_down(ctx, evs, n, "award");
    else
        schedule_once(ctx, flush_slot, "levels:flush", shard);
out:
    return rc;
}

/* One voice state d of guild g: tracked, updated or removed. 1 tracked or
 * changed, 0 skipped, -1 Redis failed. */
static int voice_one(struct gh_ctx *ctx, uint64_t g, json_object *d, int shard)
{
    json_object *member = gh_json_get_obj(d, "member");
    json_object *user = member ? gh_json_get_obj(member, "user") : NULL;
    uint64_t u = id_member(d, "user_id"), ch = id_member(d, "channel_id");
    const struct gh_lv_settings *s;
    int bot = 0, b, flags = 0;
    char hkey[96], gkey[96], chs[24] = "", now[24];
    redisReply *r;

    if (g == 0 || u == 0)
        return 0;
    if (user && gh_json_get_bool(user, "bot", &bot) == GH_OK && bot)
        return 0;
    s = settings_of(ctx, g);
    if (s == NULL || !s->enabled || !s->voice_enabled)
        return 0;
    if ((gh_json_get_bool(d, "self_mute", &b) == GH_OK && b) ||
        (gh_json_get_bool(d, "mute", &b) == GH_OK && b) ||
        (gh_json_get_bool(d, "suppress", &b) == GH_OK && b))
        flags |= 1;
    if ((gh_json_get_bool(d, "self_deaf", &b) == GH_OK && b) ||
        (gh_json_get_bool(d, "deaf", &b) == GH_OK && b))
        flags |= 2;
    if (ch)
        snprintf(chs, sizeof(chs), "%" PRIu64, ch);
    snprintf(now, sizeof(now), "%" PRId64, gh_now_ms());
    gh_key_guild(hkey, sizeof(hkey), g, "levels", "voice");
    r = gh_redis_cmd(ctx->redis, "EVAL %s 1 %s %" PRIu64 " %s %s %d", voice_lua, hkey, u, chs, now, flags);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    gh_key_global(gkey, sizeof(gkey), "levels", "voice_guilds:%d", shard);
    freeReplyObject(gh_redis_cmd(ctx->redis, "SADD %s %" PRIu64, gkey, g));
    return 1;
}

int gh_lv_on_voice(struct gh_ctx *ctx, struct gh_event *const *evs, int n)
{
    int failed = 0, any = 0, shard = 0;

    if (ctx->redis == NULL)
        return GH_OK;
    for (int i = 0; i < n && !failed; i++) {
        int r = voice_one(ctx, evs[i]->guild_id, evs[i]->d, evs[i]->shard_id);
        if (r < 0)
            failed = 1;
        else if (r > 0) {
            any = 1;
            shard = evs[i]->shard_id;
        }
    }
    if (failed)
        redis_down(ctx, evs, n, "voice");
    else if (any)
        schedule_once(ctx, voice_slot, "levels:voice", shard);
    return GH_OK;
}

/* GUILD_CREATE carries the voice states of members already in voice (a
 * connect, a resume that missed updates, a Redis that lost the hash): each is
 * tracked like an update (an unchanged state keeps its since). */
int gh_lv_on_guild_create(struct gh_ctx *ctx, struct gh_event *const *evs, int n)
{
    int failed = 0, any = 0, shard = 0;

    if (ctx->redis == NULL)
        return GH_OK;
    for (int i = 0; i < n && !failed; i++) {
        json_object *vs = gh_json_get_arr(evs[i]->d, "voice_states");
        for (size_t k = 0; vs && k < json_object_array_length(vs) && !failed; k++) {
            json_object *d = json_object_array_get_idx(vs, k);
            if (id_member(d, "channel_id") == 0)
                continue;
            int r = voice_one(ctx, evs[i]->guild_id, d, evs[i]->shard_id);
            if (r < 0)
                failed = 1;
            else if (r > 0) {
                any = 1;
                shard = evs[i]->shard_id;
            }
        }
    }
    if (failed)
        redis_down(ctx, evs, n, "voice states of GUILD_CREATE");
    else if (any)
        schedule_once(ctx, voice_slot, "levels:voice", shard);
    return GH_OK;
}
