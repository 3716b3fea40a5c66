/* store.c - the levels totals in Redis and PostgreSQL.
 *
 * Redis is where totals change (xp.c, the voice job); PostgreSQL is the
 * durable copy, written by the flush. Three rules keep them together:
 *  - the flush upserts the Redis total (SET, not add): twice is once;
 *  - a user leaves the dirty set only when Redis still holds the total
 *    that was written (a compare in one script), so XP earned during a
 *    flush is flushed next time, and only after COMMIT;
 *  - after a Redis loss (no seeded marker) the PostgreSQL totals are added
 *    to whatever Redis counted since, once (the marker is checked and set
 *    in the same script), before anything reads or flushes the guild. Until
 *    then the inline handler still counts, but decides no level-ups. */
#include "features/levels/levels.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "discord/interaction.h"
#include "features/premium/premium.h"
#include "store/pg.h"
#include "store/redis.h"

#define FLUSH_CHUNK 500
#define TIER_TTL_S 3600

/* KEYS[1] seeded, KEYS[2] lb, KEYS[3..] xp keys. ARGV: n users then n totals. */
static const char seed_lua[] = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
                               "local n = #KEYS - 2\n"
                               "for i = 1, n do\n"
                               "  local t = redis.call('INCRBY', KEYS[2 + i], ARGV[n + i])\n"
                               "  redis.call('ZADD', KEYS[2], t, ARGV[i])\n"
                               "end\n"
                               "redis.call('SET', KEYS[1], '1')\n"
                               "return 1\n";

/* KEYS[1] dirty, KEYS[2..] xp keys. ARGV: n users then n totals written. */
static const char clean_lua[] = "local n = #KEYS - 1\n"
                                "local c = 0\n"
                                "for i = 1, n do\n"
                                "  if (redis.call('GET', KEYS[1 + i]) or 'missing') == ARGV[n + i] then\n"
                                "    redis.call('SREM', KEYS[1], ARGV[i]) c = c + 1\n"
                                "  end\n"
                                "end\n"
                                "return c\n";

static void idstr(char *out, size_t n, uint64_t v)
{
    snprintf(out, n, "%" PRIu64, v);
}

static int seeded(struct gh_ctx *ctx, uint64_t g)
{
    char key[80];
    redisReply *r;
    int v;

    gh_key_guild(key, sizeof(key), g, "levels", "seeded");
    r = gh_redis_cmd(ctx->redis, "EXISTS %s", key);
    v = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
    freeReplyObject(r);
    return v;
}

int gh_lv_seed(struct gh_ctx *ctx, uint64_t guild_id)
{
    char gid[24];
    PGresult *res = NULL;
    const char **argv = NULL;
    size_t *lens = NULL;
    char **owned = NULL;
    int n = 0, argc = 0, rc = GH_EREDIS, s;
    redisReply *r = NULL;

    s = seeded(ctx, guild_id);
    if (s < 0)
        return GH_EREDIS;
    if (s == 1)
        return GH_OK;
    idstr(gid, sizeof(gid), guild_id);
    res =
        gh_pg_exec_prepared(ctx->pg, "lv_seed", "SELECT user_id, xp FROM levels_members WHERE guild_id = $1",
                            1, (const char *const[]){gid});
    if (res == NULL) {
        GH_ERROR(&ctx->log, "levels: cannot seed guild %s from PostgreSQL: %s", gid, gh_pg_errmsg(ctx->pg));
        return GH_EPG;
    }
    n = PQntuples(res);
    argc = 3 + 2 + 2 * n + n;
    argv = calloc((size_t)argc, sizeof(*argv));
    lens = calloc((size_t)argc, sizeof(*lens));
    owned = calloc((size_t)n + 3, sizeof(*owned));
    if (!argv || !lens || !owned) {
        rc = GH_ENOMEM;
        goto out;
    }
    int a = 0;
    char numkeys[24], k_seeded[80], k_lb[80];
    snprintf(numkeys, sizeof(numkeys), "%d", n + 2);
    gh_key_guild(k_seeded, sizeof(k_seeded), guild_id, "levels", "seeded");
    gh_key_guild(k_lb, sizeof(k_lb), guild_id, "levels", "lb");
    argv[a++] = "EVAL";
    argv[a++] = seed_lua;
    argv[a++] = numkeys;
    argv[a++] = k_seeded;
    argv[a++] = k_lb;
    for (int i = 0; i < n; i++) {
        owned[i] = malloc(96);
        if (!owned[i]) {
            rc = GH_ENOMEM;
            goto out;
        }
        gh_key_guild(owned[i], 96, guild_id, "levels", "xp:%s", PQgetvalue(res, i, 0));
        argv[a++] = owned[i];
    }
    for (int i = 0; i < n; i++)
        argv[a++] = PQgetvalue(res, i, 0);
    for (int i = 0; i < n; i++)
        argv[a++] = PQgetvalue(res, i, 1);
    for (int i = 0; i < a; i++)
        lens[i] = strlen(argv[i]);
    r = gh_redis_cmdargv(ctx->redis, a, argv, lens);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        GH_ERROR(&ctx->log, "levels: seeding guild %s in Redis failed: %s", gid,
                 r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
        rc = GH_EREDIS;
        goto out;
    }
    if (r->integer == 1)
        GH_INFO(&ctx->log, "levels: guild %s seeded from PostgreSQL (%d members)", gid, n);
    rc = GH_OK;
out:
    freeReplyObject(r);
    for (int i = 0; owned && i < n; i++)
        free(owned[i]);
    free(owned);
    free(argv);
    free(lens);
    PQclear(res);
    return rc;
}

void gh_lv_tier_refresh(struct gh_ctx *ctx, uint64_t guild_id, int *rank)
{
    struct gh_premium p;
    char key[80];
    int rk = 0;

    memset(&p, 0, sizeof(p));
    if (gh_premium_get(ctx, guild_id, &p) == GH_OK)
        rk = p.effective;
    if (rank)
        *rank = rk;
    gh_key_guild(key, sizeof(key), guild_id, "levels", "tier");
    freeReplyObject(gh_redis_cmd(ctx->redis, "SET %s %d EX %d", key, rk, TIER_TTL_S));
}

/* Writes one chunk of users: read totals, upsert, clean. */
static int flush_chunk(struct gh_ctx *ctx, uint64_t g, redisReply *users, size_t from, size_t to,
                       int *written)
{
    char gid[24], dirty[80];
    struct gh_buf uids, xps, lvls;
    size_t n = to - from, got = 0;
    int64_t *tot = calloc(n ? n : 1, sizeof(*tot));
    int rc = GH_EREDIS;
    const char **argv = NULL;
    size_t *lens = NULL;
    char **owned = NULL;
    redisReply *r = NULL;

    gh_buf_init(&uids, 1 << 24);
    gh_buf_init(&xps, 1 << 24);
    gh_buf_init(&lvls, 1 << 24);
    idstr(gid, sizeof(gid), g);
    if (!tot) {
        rc = GH_ENOMEM;
        goto out;
    }
    for (size_t i = from; i < to; i++) {
        char key[96];
        gh_key_guild(key, sizeof(key), g, "levels", "xp:%s", users->element[i]->str);
        gh_redis_append(ctx->redis, "GET %s", key);
    }
    for (size_t i = 0; i < n; i++) {
        redisReply *x = gh_redis_get_reply(ctx->redis);
        if (x == NULL) {
            rc = GH_EREDIS;
            for (size_t k = i + 1; k < n; k++)
                freeReplyObject(gh_redis_get_reply(ctx->redis));
            goto out;
        }
        tot[i] = x->type == REDIS_REPLY_STRING ? strtoll(x->str, NULL, 10) : -1;
        freeReplyObject(x);
    }
    gh_buf_puts(&uids, "{");
    gh_buf_puts(&xps, "{");
    gh_buf_puts(&lvls, "{");
    for (size_t i = 0; i < n; i++) {
        if (tot[i] < 0)
            continue;
        gh_buf_printf(&uids, "%s%s", got ? "," : "", users->element[from + i]->str);
        gh_buf_printf(&xps, "%s%" PRId64, got ? "," : "", tot[i]);
        gh_buf_printf(&lvls, "%s%d", got ? "," : "", gh_lv_level_for_xp(tot[i]));
        got++;
    }
    gh_buf_puts(&uids, "}");
    gh_buf_puts(&xps, "}");
    gh_buf_puts(&lvls, "}");
    if (got > 0) {
        static const char upsert[] =
            "INSERT INTO levels_members (guild_id, user_id, xp, level) "
            "SELECT $1, u, x, l FROM unnest($2::bigint[], $3::bigint[], $4::int[]) AS t(u, x, l) "
            "ON CONFLICT (guild_id, user_id) DO UPDATE SET xp = EXCLUDED.xp, level = EXCLUDED.level "
            "WHERE levels_members.xp IS DISTINCT FROM EXCLUDED.xp";
        if (gh_pg_begin(ctx->pg) != GH_OK) {
            rc = GH_EPG;
            goto out;
        }
        if (gh_pg_command(ctx->pg, "INSERT INTO guilds (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", 1,
                          (const char *const[]){gid}) != GH_OK ||
            gh_pg_command(ctx->pg, upsert, 4,
                          (const char *const[]){gid, gh_buf_cstr(&uids), gh_buf_cstr(&xps),
                                                gh_buf_cstr(&lvls)}) != GH_OK ||
            gh_pg_commit(ctx->pg) != GH_OK) {
            GH_ERROR(&ctx->log, "levels: flush of guild %s failed, dirty set kept: %s", gid,
                     gh_pg_errmsg(ctx->pg));
            (void)gh_pg_rollback(ctx->pg);
            rc = GH_EPG;
            goto out;
        }
    }
    /* committed: clean the users whose total is still what was written */
    {
        int argc = 3 + 1 + 2 * (int)n + (int)n, a = 0;
        char numkeys[24];
        argv = calloc((size_t)argc, sizeof(*argv));
        lens = calloc((size_t)argc, sizeof(*lens));
        owned = calloc(2 * n + 1, sizeof(*owned));
        if (!argv || !lens || !owned) {
            rc = GH_ENOMEM;
            goto out;
        }
        snprintf(numkeys, sizeof(numkeys), "%zu", n + 1);
        gh_key_guild(dirty, sizeof(dirty), g, "levels", "dirty");
        argv[a++] = "EVAL";
        argv[a++] = clean_lua;
        argv[a++] = numkeys;
        argv[a++] = dirty;
        for (size_t i = 0; i < n; i++) {
            owned[i] = malloc(96);
            if (!owned[i]) {
                rc = GH_ENOMEM;
                goto out;
            }
            gh_key_guild(owned[i], 96, g, "levels", "xp:%s", users->element[from + i]->str);
            argv[a++] = owned[i];
        }
        for (size_t i = 0; i < n; i++)
            argv[a++] = users->element[from + i]->str;
        for (size_t i = 0; i < n; i++) {
            owned[n + i] = malloc(24);
            if (!owned[n + i]) {
                rc = GH_ENOMEM;
                goto out;
            }
            /* a missing total: the script reads nil as "missing" */
            if (tot[i] < 0)
                snprintf(owned[n + i], 24, "missing");
            else
                snprintf(owned[n + i], 24, "%" PRId64, tot[i]);
            argv[a++] = owned[n + i];
        }
        for (int i = 0; i < a; i++)
            lens[i] = strlen(argv[i]);
        r = gh_redis_cmdargv(ctx->redis, a, argv, lens);
        if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
            /* written but still dirty: the next flush writes the same totals again */
            rc = GH_EREDIS;
            goto out;
        }
    }
    if (written)
        *written += (int)got;
    rc = GH_OK;
out:
    freeReplyObject(r);
    for (size_t i = 0; owned && i < 2 * n; i++)
        free(owned[i]);
    free(owned);
    free(argv);
    free(lens);
    free(tot);
    gh_buf_cleanup(&uids);
    gh_buf_cleanup(&xps);
    gh_buf_cleanup(&lvls);
    return rc;
}

int gh_lv_flush_guild(struct gh_ctx *ctx, uint64_t guild_id, int *written)
{
    char dirty[80];
    redisReply *users = NULL;
    int rc;

    if (written)
        *written = 0;
    rc = gh_lv_seed(ctx, guild_id);
    if (rc != GH_OK)
        return rc;
    gh_key_guild(dirty, sizeof(dirty), guild_id, "levels", "dirty");
    users = gh_redis_cmd(ctx->redis, "SMEMBERS %s", dirty);
    if (users == NULL || users->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(users);
        return GH_EREDIS;
    }
    for (size_t i = 0; i < users->elements; i += FLUSH_CHUNK) {
        size_t to = i + FLUSH_CHUNK < users->elements ? i + FLUSH_CHUNK : users->elements;
        rc = flush_chunk(ctx, guild_id, users, i, to, written);
        if (rc != GH_OK)
            break;
    }
    freeReplyObject(users);
    return rc;
}

int gh_lv_flush_shard(struct gh_ctx *ctx, int shard, int *guilds, int *rows)
{
    char key[96];
    redisReply *gs;
    int first = GH_OK;

    if (guilds)
        *guilds = 0;
    if (rows)
        *rows = 0;
    gh_key_global(key, sizeof(key), "levels", "dirty_guilds:%d", shard);
    gs = gh_redis_cmd(ctx->redis, "SMEMBERS %s", key);
    if (gs == NULL || gs->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(gs);
        return GH_EREDIS;
    }
    for (size_t i = 0; i < gs->elements; i++) {
        uint64_t g = gh_snowflake_parse(gs->element[i]->str);
        char dirty[80];
        int w = 0, rc;
        redisReply *c;
        if (g == 0) {
            freeReplyObject(gh_redis_cmd(ctx->redis, "SREM %s %s", key, gs->element[i]->str));
            continue;
        }
        gh_lv_tier_refresh(ctx, g, NULL);
        rc = gh_lv_flush_guild(ctx, g, &w);
        if (rows)
            *rows += w;
        if (rc != GH_OK) {
            if (first == GH_OK)
                first = rc;
            continue;
        }
        if (guilds)
            (*guilds)++;
        /* Leave the set only when nothing is dirty; check again after the
         * SREM: an award between the two re-adds it itself, one before the
         * second check is seen here. */
        gh_key_guild(dirty, sizeof(dirty), g, "levels", "dirty");
        c = gh_redis_cmd(ctx->redis, "SCARD %s", dirty);
        if (c && c->type == REDIS_REPLY_INTEGER && c->integer == 0) {
            freeReplyObject(gh_redis_cmd(ctx->redis, "SREM %s %s", key, gs->element[i]->str));
            freeReplyObject(c);
            c = gh_redis_cmd(ctx->redis, "SCARD %s", dirty);
            if (c == NULL || c->type != REDIS_REPLY_INTEGER || c->integer > 0)
                freeReplyObject(gh_redis_cmd(ctx->redis, "SADD %s %s", key, gs->element[i]->str));
        }
        freeReplyObject(c);
    }
    freeReplyObject(gs);
    return first;
}

int gh_lv_user_total(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, int64_t *xp, long *rank)
{
    char key[96], lb[80], uid[24], gid[24];
    redisReply *r;
    int rc = gh_lv_seed(ctx, guild_id);

    *xp = 0;
    *rank = 0;
    idstr(uid, sizeof(uid), user_id);
    idstr(gid, sizeof(gid), guild_id);
    if (rc == GH_OK) {
        gh_key_guild(key, sizeof(key), guild_id, "levels", "xp:%s", uid);
        gh_key_guild(lb, sizeof(lb), guild_id, "levels", "lb");
        gh_redis_append(ctx->redis, "GET %s", key);
        gh_redis_append(ctx->redis, "ZREVRANK %s %s", lb, uid);
        r = gh_redis_get_reply(ctx->redis);
        if (r && r->type == REDIS_REPLY_STRING)
            *xp = strtoll(r->str, NULL, 10);
        rc = r ? GH_OK : GH_EREDIS;
        freeReplyObject(r);
        r = gh_redis_get_reply(ctx->redis);
        if (r && r->type == REDIS_REPLY_INTEGER)
            *rank = (long)r->integer + 1;
        freeReplyObject(r);
        if (rc == GH_OK)
            return GH_OK;
    }
    if (rc != GH_EREDIS)
        return rc;
    /* Redis down: the last flushed totals */
    PGresult *res = gh_pg_exec_prepared(ctx->pg, "lv_total",
                                        "SELECT m.xp, (SELECT count(*) + 1 FROM levels_members o WHERE "
                                        "o.guild_id = m.guild_id AND o.xp > m.xp) "
                                        "FROM levels_members m WHERE m.guild_id = $1 AND m.user_id = $2",
                                        2, (const char *const[]){gid, uid});
    if (res == NULL)
        return GH_EPG;
    if (PQntuples(res) > 0) {
        *xp = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        *rank = strtol(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
    return GH_OK;
}

static json_object *entry(const char *user, int64_t xp, long rank)
{
    json_object *e = json_object_new_object();

    json_object_object_add(e, "user_id", json_object_new_string(user));
    json_object_object_add(e, "xp", json_object_new_int64(xp));
    json_object_object_add(e, "level", json_object_new_int(gh_lv_level_for_xp(xp)));
    json_object_object_add(e, "rank", json_object_new_int64(rank));
    return e;
}

int gh_lv_leaderboard(struct gh_ctx *ctx, uint64_t guild_id, int page, int size, json_object **out,
                      long *total)
{
    char lb[80], gid[24], off[24], lim[24];
    redisReply *r = NULL, *c = NULL;
    PGresult *res;
    long start = (long)page * size;

    *out = NULL;
    *total = 0;
    if (gh_lv_seed(ctx, guild_id) == GH_OK) {
        gh_key_guild(lb, sizeof(lb), guild_id, "levels", "lb");
        gh_redis_append(ctx->redis, "ZREVRANGE %s %ld %ld WITHSCORES", lb, start, start + size - 1);
        gh_redis_append(ctx->redis, "ZCARD %s", lb);
        r = gh_redis_get_reply(ctx->redis);
        c = gh_redis_get_reply(ctx->redis);
        if (r && r->type == REDIS_REPLY_ARRAY && c && c->type == REDIS_REPLY_INTEGER) {
            *out = json_object_new_array();
            for (size_t i = 0; i + 1 < r->elements; i += 2)
                json_object_array_add(*out,
                                      entry(r->element[i]->str, strtoll(r->element[i + 1]->str, NULL, 10),
                                            start + (long)i / 2 + 1));
            *total = (long)c->integer;
            freeReplyObject(r);
            freeReplyObject(c);
            return GH_OK;
        }
        freeReplyObject(r);
        freeReplyObject(c);
    }
    idstr(gid, sizeof(gid), guild_id);
    snprintf(off, sizeof(off), "%ld", start);
    snprintf(lim, sizeof(lim), "%d", size);
    res = gh_pg_exec_prepared(ctx->pg, "lv_board",
                              "SELECT user_id, xp, count(*) OVER () FROM levels_members WHERE guild_id = $1 "
                              "AND xp > 0 ORDER BY xp DESC, user_id LIMIT $3 OFFSET $2",
                              3, (const char *const[]){gid, off, lim});
    if (res == NULL)
        return GH_EPG;
    *out = json_object_new_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_object_array_add(
            *out, entry(PQgetvalue(res, i, 0), strtoll(PQgetvalue(res, i, 1), NULL, 10), start + i + 1));
        *total = strtol(PQgetvalue(res, i, 2), NULL, 10);
    }
    PQclear(res);
    return GH_OK;
}

int gh_lv_reset(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, uint64_t actor_id, int64_t *before)
{
    char xpk[96], lb[80], dirty[80], gid[24], uid[24], actor[24], corr[80];
    long rank = 0;
    int64_t old = 0;
    int rc;
    redisReply *r;

    rc = gh_lv_user_total(ctx, guild_id, user_id, &old, &rank);
    if (rc != GH_OK)
        return rc;
    if (before)
        *before = old;
    idstr(gid, sizeof(gid), guild_id);
    idstr(uid, sizeof(uid), user_id);
    idstr(actor, sizeof(actor), actor_id);
    gh_key_guild(xpk, sizeof(xpk), guild_id, "levels", "xp:%s", uid);
    gh_key_guild(lb, sizeof(lb), guild_id, "levels", "lb");
    gh_key_guild(dirty, sizeof(dirty), guild_id, "levels", "dirty");
    gh_redis_append(ctx->redis, "MULTI");
    gh_redis_append(ctx->redis, "SET %s 0", xpk);
    gh_redis_append(ctx->redis, "ZREM %s %s", lb, uid);
    gh_redis_append(ctx->redis, "SADD %s %s", dirty, uid);
    gh_redis_append(ctx->redis, "EXEC");
    rc = GH_OK;
    for (int i = 0; i < 5; i++) {
        r = gh_redis_get_reply(ctx->redis);
        if (r == NULL || (i == 4 && r->type != REDIS_REPLY_ARRAY))
            rc = GH_EREDIS;
        freeReplyObject(r);
    }
    if (rc != GH_OK) {
        GH_ERROR(&ctx->log, "levels: reset of user %s in guild %s failed in Redis", uid, gid);
        return GH_EREDIS;
    }
    snprintf(corr, sizeof(corr), "%s", ctx->log.corr);
    {
        char bj[64];
        snprintf(bj, sizeof(bj), "{\"xp\":%" PRId64 "}", old);
        if (gh_pg_begin(ctx->pg) != GH_OK)
            return GH_EPG;
        if (gh_pg_command(ctx->pg, "INSERT INTO guilds (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", 1,
                          (const char *const[]){gid}) != GH_OK ||
            gh_pg_command(ctx->pg,
                          "INSERT INTO levels_members (guild_id, user_id, xp, level) VALUES ($1, $2, 0, 0) "
                          "ON CONFLICT (guild_id, user_id) DO UPDATE SET xp = 0, level = 0",
                          2, (const char *const[]){gid, uid}) != GH_OK ||
            gh_pg_command(ctx->pg,
                          "INSERT INTO audit_log (guild_id, actor_id, action, target, before, after, corr) "
                          "VALUES ($1, NULLIF($2::bigint, 0), 'levels.reset', 'user:' || $3, $4::jsonb, "
                          "'{\"xp\":0}'::jsonb, $5)",
                          5, (const char *const[]){gid, actor, uid, bj, corr}) != GH_OK ||
            gh_pg_commit(ctx->pg) != GH_OK) {
            GH_ERROR(&ctx->log, "levels: reset of user %s in guild %s not recorded in PostgreSQL: %s", uid,
                     gid, gh_pg_errmsg(ctx->pg));
            (void)gh_pg_rollback(ctx->pg);
            return GH_EPG;
        }
    }
    GH_INFO(&ctx->log, "levels: user %s of guild %s reset from %" PRId64 " XP by %s", uid, gid, old, actor);
    return GH_OK;
}

/* KEYS: xp, lb, dirty. ARGV: user, delta. -> {old, new} */
static const char adjust_lua[] = "local old = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
                                 "local new = old + tonumber(ARGV[2])\n"
                                 "if new < 0 then new = 0 end\n"
                                 "redis.call('SET', KEYS[1], new)\n"
                                 "redis.call('ZADD', KEYS[2], new, ARGV[1])\n"
                                 "redis.call('SADD', KEYS[3], ARGV[1])\n"
                                 "return {old, new}\n";

int gh_lv_adjust(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, int64_t delta, uint64_t actor_id,
                 int64_t *before, int64_t *after)
{
    char xpk[96], lb[80], dirty[80], gid[24], uid[24], actor[24], d[24], bj[64], aj[64], xs[24], ls[16];
    const char *action = delta > 0 ? "levels.give" : "levels.remove";
    redisReply *r;
    int rc;

    if (delta == 0)
        return GH_EINVAL;
    rc = gh_lv_seed(ctx, guild_id);
    if (rc != GH_OK)
        return rc;
    idstr(gid, sizeof(gid), guild_id);
    idstr(uid, sizeof(uid), user_id);
    idstr(actor, sizeof(actor), actor_id);
    snprintf(d, sizeof(d), "%" PRId64, delta);
    gh_key_guild(xpk, sizeof(xpk), guild_id, "levels", "xp:%s", uid);
    gh_key_guild(lb, sizeof(lb), guild_id, "levels", "lb");
    gh_key_guild(dirty, sizeof(dirty), guild_id, "levels", "dirty");
    r = gh_redis_cmd(ctx->redis, "EVAL %s 3 %s %s %s %s %s", adjust_lua, xpk, lb, dirty, uid, d);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        GH_ERROR(&ctx->log, "levels: %s of %s XP to user %s in guild %s failed in Redis", action, d, uid,
                 gid);
        freeReplyObject(r);
        return GH_EREDIS;
    }
    *before = r->element[0]->integer;
    *after = r->element[1]->integer;
    freeReplyObject(r);
    snprintf(bj, sizeof(bj), "{\"xp\":%" PRId64 "}", *before);
    snprintf(aj, sizeof(aj), "{\"xp\":%" PRId64 "}", *after);
    snprintf(xs, sizeof(xs), "%" PRId64, *after);
    snprintf(ls, sizeof(ls), "%d", gh_lv_level_for_xp(*after));
    if (gh_pg_begin(ctx->pg) != GH_OK)
        return GH_EPG;
    if (gh_pg_command(ctx->pg, "INSERT INTO guilds (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", 1,
                      (const char *const[]){gid}) != GH_OK ||
        gh_pg_command(
            ctx->pg,
            "INSERT INTO levels_members (guild_id, user_id, xp, level) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (guild_id, user_id) DO UPDATE SET xp = EXCLUDED.xp, level = EXCLUDED.level",
            4, (const char *const[]){gid, uid, xs, ls}) != GH_OK ||
        gh_pg_command(ctx->pg,
                      "INSERT INTO audit_log (guild_id, actor_id, action, target, before, after, corr) "
                      "VALUES ($1, NULLIF($2::bigint, 0), $3, 'user:' || $4, $5::jsonb, $6::jsonb, $7)",
                      7, (const char *const[]){gid, actor, action, uid, bj, aj, ctx->log.corr}) != GH_OK ||
        gh_pg_commit(ctx->pg) != GH_OK) {
        GH_ERROR(&ctx->log, "levels: %s of user %s in guild %s not recorded in PostgreSQL: %s", action, uid,
                 gid, gh_pg_errmsg(ctx->pg));
        (void)gh_pg_rollback(ctx->pg);
        return GH_EPG;
    }
    GH_INFO(&ctx->log, "levels: %s %s XP for user %s of guild %s (%" PRId64 " -> %" PRId64 ") by %s", action,
            d, uid, gid, *before, *after, actor);
    return GH_OK;
}
