/* test_levels_inline.c - features/levels against the test stack's Redis and
 * PostgreSQL: gateway-lite's inline MESSAGE_CREATE handler (cooldown, gain
 * range, multipliers and the free cap, every exclusion, two processes at
 * once, level-up jobs, Redis down), the flush (idempotent, PostgreSQL down
 * keeps the dirty set), the reseed after a Redis loss, voice XP rules and
 * the reset.
 *
 * Needs DATABASE_URL and REDIS_URL with the migrations applied. Every test
 * uses fresh random guild ids and its own queue name, removed at teardown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "features/levels/levels.h"
#include "gateway/gwstats.h"
#include "store/pg.h"
#include "store/queue.h"
#include "store/redis.h"
#include "store/settings.h"

#define DEAD_REDIS "redis://127.0.0.1:1/0"
#define DEAD_PG "postgresql://guildhall@127.0.0.1:1/guildhall?connect_timeout=1"
#define MAX_GUILDS 8
#define SHARD 3

struct fx {
    struct gh_config cfg;
    struct gh_log_sink sink;
    struct gh_ctx ctx;
    struct gh_pg *pg;
    struct gh_redis *redis;
    char log_path[64];
    char queue[32];
    uint64_t guilds[MAX_GUILDS];
    int n_guilds;
};

static uint64_t random_id(void)
{
    uint64_t r = 0;

    assert_int_equal(getrandom(&r, sizeof(r), 0), (ssize_t)sizeof(r));
    return 1000000000000000000ULL + r % 4000000000000000000ULL;
}

static int setup(void **state)
{
    const char *db = getenv("DATABASE_URL"), *ru = getenv("REDIS_URL");
    struct fx *fx = calloc(1, sizeof(*fx));

    if (!fx)
        return -1;
    if (!db || !ru) {
        print_message("DATABASE_URL or REDIS_URL is not set\n");
        free(fx);
        return -1;
    }
    snprintf(fx->log_path, sizeof(fx->log_path), "/tmp/test_levels_inline.%d.log", (int)getpid());
    if (gh_log_sink_init(&fx->sink, "test_levels_inline", GH_LOG_DEBUG, fx->log_path, 0, 0) != GH_OK)
        return -1;
    gh_logger_init(&fx->ctx.log, &fx->sink, "levels");
    fx->ctx.cfg = &fx->cfg;
    fx->cfg.gateway_settings_ttl_ms = 0;
    snprintf(fx->queue, sizeof(fx->queue), "lvtest%d", (int)(random_id() % 100000000));
    fx->ctx.queue = fx->queue;
    fx->pg = gh_pg_new(db, 10000, NULL);
    fx->redis = gh_redis_new(ru, 1000, NULL);
    fx->ctx.pg = gh_pg_new(db, 10000, &fx->ctx.log);
    fx->ctx.redis = gh_redis_new(ru, 1000, &fx->ctx.log);
    gh_lv_inline_reset();
    *state = fx;
    return 0;
}

static void q(struct fx *fx, const char *sql, const char *p1)
{
    const char *params[1] = {p1};

    if (gh_pg_command(fx->pg, sql, p1 ? 1 : 0, p1 ? params : NULL) != GH_OK)
        fail_msg("%s: %s", sql, gh_pg_errmsg(fx->pg));
}

static const char *value(struct fx *fx, const char *sql, const char *p1, const char *p2)
{
    static char out[512];
    const char *params[2] = {p1, p2};
    PGresult *res = gh_pg_exec(fx->pg, sql, p2 ? 2 : 1, params);

    if (!res)
        fail_msg("%s: %s", sql, gh_pg_errmsg(fx->pg));
    snprintf(out, sizeof(out), "%s", PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return out;
}

static const char *idtext(uint64_t v)
{
    static char bufs[8][24];
    static int next;
    char *b = bufs[next++ % 8];

    snprintf(b, 24, "%" PRIu64, v);
    return b;
}

static void del_pattern(struct fx *fx, const char *pattern)
{
    redisReply *keys = gh_redis_cmd(fx->redis, "KEYS %s", pattern);

    for (size_t i = 0; keys && keys->type == REDIS_REPLY_ARRAY && i < keys->elements; i++)
        freeReplyObject(gh_redis_cmd(fx->redis, "DEL %s", keys->element[i]->str));
    freeReplyObject(keys);
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    char pattern[96];

    for (int i = 0; i < fx->n_guilds; i++) {
        const char *id = idtext(fx->guilds[i]);
        q(fx, "DELETE FROM audit_log WHERE guild_id = $1", id);
        q(fx, "DELETE FROM levels_members WHERE guild_id = $1", id);
        q(fx, "DELETE FROM guild_settings WHERE guild_id = $1", id);
        q(fx, "DELETE FROM guilds WHERE id = $1", id);
        snprintf(pattern, sizeof(pattern), "bot:{%s}:*", id);
        del_pattern(fx, pattern);
    }
    snprintf(pattern, sizeof(pattern), "bot:{q*}:jobs:%s:*", fx->queue);
    del_pattern(fx, pattern);
    snprintf(pattern, sizeof(pattern), "bot:{global}:levels:*:%d", SHARD);
    del_pattern(fx, pattern);
    gh_lv_inline_reset();
    gh_pg_free(fx->ctx.pg);
    gh_redis_free(fx->ctx.redis);
    gh_pg_free(fx->pg);
    gh_redis_free(fx->redis);
    gh_log_sink_cleanup(&fx->sink);
    unlink(fx->log_path);
    free(fx);
    return 0;
}

/* A guild with the levels settings doc (JSON text). */
static uint64_t new_guild(struct fx *fx, const char *settings)
{
    uint64_t g = random_id();
    json_object *doc = json_tokener_parse(settings);
    int ver = 0;

    assert_non_null(doc);
    assert_true(fx->n_guilds < MAX_GUILDS);
    fx->guilds[fx->n_guilds++] = g;
    q(fx, "INSERT INTO guilds (id) VALUES ($1)", idtext(g));
    assert_int_equal(gh_settings_put(&fx->ctx, g, "levels", doc, 0, -1, &ver), GH_OK);
    json_object_put(doc);
    return g;
}

struct msg {
    uint64_t guild, user, channel;
    int bot, webhook;
    const char *roles; /* JSON array text or NULL */
    unsigned flags;
};

/* Runs one batch through the inline handler. */
static int run_batch(struct fx *fx, const struct msg *m, int n, struct gh_gw_stats *stats)
{
    struct gh_event evs[32], *ptrs[32];
    json_object *ds[32];
    char text[512];
    int rc;

    assert_true(n <= 32);
    for (int i = 0; i < n; i++) {
        snprintf(text, sizeof(text),
                 "{\"id\":\"%" PRIu64 "\",\"channel_id\":\"%" PRIu64 "\",%s%s%s\"author\":{\"id\":\"%" PRIu64
                 "\",\"username\":\"u%d\"%s},\"member\":{\"roles\":%s}%s,\"content\":\"hi\"}",
                 random_id(), m[i].channel, m[i].guild ? "\"guild_id\":\"" : "",
                 m[i].guild ? idtext(m[i].guild) : "", m[i].guild ? "\"," : "", m[i].user, i,
                 m[i].bot ? ",\"bot\":true" : "", m[i].roles ? m[i].roles : "[]",
                 m[i].webhook ? ",\"webhook_id\":\"123456789012345678\"" : "");
        ds[i] = json_tokener_parse(text);
        assert_non_null(ds[i]);
        memset(&evs[i], 0, sizeof(evs[i]));
        evs[i].name = "MESSAGE_CREATE";
        evs[i].guild_id = m[i].guild;
        evs[i].d = ds[i];
        evs[i].shard_id = SHARD;
        evs[i].flags = m[i].flags;
        evs[i].stats = stats;
        ptrs[i] = &evs[i];
    }
    rc = gh_lv_on_messages(&fx->ctx, ptrs, n);
    for (int i = 0; i < n; i++)
        json_object_put(ds[i]);
    return rc;
}

static long long rget(struct fx *fx, uint64_t g, const char *what, uint64_t u)
{
    char key[128];
    redisReply *r;
    long long v = -1;

    if (u)
        snprintf(key, sizeof(key), "bot:{%" PRIu64 "}:levels:%s:%" PRIu64, g, what, u);
    else
        snprintf(key, sizeof(key), "bot:{%" PRIu64 "}:levels:%s", g, what);
    r = gh_redis_cmd(fx->redis, "GET %s", key);
    if (r && r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    freeReplyObject(r);
    return v;
}

static long long rnum(struct fx *fx, const char *fmt, const char *a, const char *b)
{
    redisReply *r = gh_redis_cmd(fx->redis, fmt, a, b);
    long long v = -1;

    if (r && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r && r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    freeReplyObject(r);
    return v;
}

static void dirty_key(char *out, size_t n, uint64_t g)
{
    snprintf(out, n, "bot:{%" PRIu64 "}:levels:dirty", g);
}

/* Jobs in the test queue (ready + delayed) whose text contains needle. */
static int jobs_matching(struct fx *fx, const char *needle)
{
    char key[128];
    redisReply *r;
    int n = 0;

    gh_queue_key(key, sizeof(key), fx->queue, "ready");
    r = gh_redis_cmd(fx->redis, "LRANGE %s 0 -1", key);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        n += strstr(r->element[i]->str, needle) != NULL;
    freeReplyObject(r);
    gh_queue_key(key, sizeof(key), fx->queue, "delayed");
    r = gh_redis_cmd(fx->redis, "ZRANGE %s 0 -1", key);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        n += strstr(r->element[i]->str, needle) != NULL;
    freeReplyObject(r);
    return n;
}

/* ---- tests */

static void test_cooldown_and_range(void **state)
{
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, "{\"enabled\":true}"), u1 = random_id(), u2 = random_id();
    struct msg m[4] = {{g, u1, 11, 0, 0, NULL, 0},
                       {g, u1, 11, 0, 0, NULL, 0},
                       {g, u2, 11, 0, 0, NULL, 0},
                       {g, u1, 12, 0, 0, NULL, 0}};
    char dk[96], gk[96];
    long long x1, x2;

    assert_int_equal(run_batch(fx, m, 4, NULL), GH_OK);
    x1 = rget(fx, g, "xp", u1);
    x2 = rget(fx, g, "xp", u2);
    assert_in_range(x1, 15, 25); /* once, though three messages */
    assert_in_range(x2, 15, 25);
    assert_int_equal(rget(fx, g, "cd", u1), 1);
    dirty_key(dk, sizeof(dk), g);
    assert_int_equal(rnum(fx, "SISMEMBER %s %s", dk, idtext(u1)), 1);
    assert_int_equal(rnum(fx, "ZSCORE %s %s",
                          (snprintf(gk, sizeof(gk), "bot:{%" PRIu64 "}:levels:lb", g), gk), idtext(u1)),
                     x1);
    snprintf(gk, sizeof(gk), "bot:{global}:levels:dirty_guilds:%d", SHARD);
    assert_int_equal(rnum(fx, "SISMEMBER %s %s", gk, idtext(g)), 1);
    /* the flush job of this slot was queued */
    assert_true(jobs_matching(fx, "\"levels:flush\"") >= 1);
    /* a second batch inside the cooldown changes nothing */
    assert_int_equal(run_batch(fx, m, 4, NULL), GH_OK);
    assert_int_equal(rget(fx, g, "xp", u1), x1);
    assert_int_equal(rget(fx, g, "xp", u2), x2);
    /* the cooldown over (key gone), XP again */
    char cd[96];
    snprintf(cd, sizeof(cd), "bot:{%" PRIu64 "}:levels:cd:%" PRIu64, g, u1);
    freeReplyObject(gh_redis_cmd(fx->redis, "DEL %s", cd));
    assert_int_equal(run_batch(fx, m, 1, NULL), GH_OK);
    assert_in_range(rget(fx, g, "xp", u1) - x1, 15, 25);
    /* the cooldown key has a TTL of the setting (60 s) */
    assert_in_range(rnum(fx, "TTL %s%s", cd, ""), 55, 60);
}

static void test_exclusions(void **state)
{
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, "{\"enabled\":true,\"ignored_channels\":[\"400000000000000009\"],"
                               "\"blacklisted_roles\":[\"300000000000000009\"],"
                               "\"blacklisted_users\":[\"500000000000000009\"]}");
    uint64_t off = new_guild(fx, "{\"enabled\":false}");
    uint64_t us[10];
    for (int i = 0; i < 10; i++)
        us[i] = random_id();
    struct msg m[10] = {
        {g, us[0], 11, 1, 0, NULL, 0},                                        /* bot */
        {g, us[1], 11, 0, 1, NULL, 0},                                        /* webhook */
        {g, us[2], 400000000000000009ULL, 0, 0, NULL, 0},                     /* ignored channel */
        {g, us[3], 11, 0, 0, "[\"300000000000000009\"]", 0},                  /* blacklisted role */
        {g, 500000000000000009ULL, 11, 0, 0, NULL, 0},                        /* blacklisted user */
        {g, us[5], 11, 0, 0, NULL, GH_EVF_SPAM},                              /* AutoMod spam */
        {g, us[6], 11, 0, 0, NULL, GH_EVF_DELETED},                           /* deleted by AutoMod */
        {g, us[7], 11, 0, 0, NULL, GH_EVF_PREFIX_CMD},                        /* prefix command */
        {off, us[8], 11, 0, 0, NULL, 0},                                      /* feature off */
        {g, us[9], 11, 0, 0, "[\"300000000000000001\"]", GH_EVF_AUTOMOD_HIT}, /* log-only hit: earns */
    };

    assert_int_equal(run_batch(fx, m, 10, NULL), GH_OK);
    for (int i = 0; i < 8; i++)
        assert_int_equal(rget(fx, g, "xp", us[i]), -1);
    assert_int_equal(rget(fx, g, "xp", 500000000000000009ULL), -1);
    assert_int_equal(rget(fx, off, "xp", us[8]), -1);
    assert_in_range(rget(fx, g, "xp", us[9]), 15, 25);
    /* DMs: no guild, nothing */
    struct msg dm = {0, us[0], 11, 0, 0, NULL, 0};
    assert_int_equal(run_batch(fx, &dm, 1, NULL), GH_OK);
}

static void test_multipliers_and_cap(void **state)
{
    struct fx *fx = *state;
    uint64_t g = new_guild(
        fx, "{\"enabled\":true,\"multiplier\":4,"
            "\"channel_multipliers\":[{\"channel_id\":\"400000000000000001\",\"multiplier\":0.5}]}");
    uint64_t u1 = random_id(), u2 = random_id(), u3 = random_id();
    struct msg a = {g, u1, 11, 0, 0, NULL, 0}, b = {g, u2, 11, 0, 0, NULL, 0},
               c = {g, u3, 400000000000000001ULL, 0, 0, NULL, 0};
    char tier[96];

    /* free: 4x capped at 2x */
    assert_int_equal(run_batch(fx, &a, 1, NULL), GH_OK);
    assert_in_range(rget(fx, g, "xp", u1), 30, 50);
    /* premium: the full 4x */
    snprintf(tier, sizeof(tier), "bot:{%" PRIu64 "}:levels:tier", g);
    freeReplyObject(gh_redis_cmd(fx->redis, "SET %s 1", tier));
    assert_int_equal(run_batch(fx, &b, 1, NULL), GH_OK);
    assert_in_range(rget(fx, g, "xp", u2), 60, 100);
    /* channel 0.5 x guild 4 */
    assert_int_equal(run_batch(fx, &c, 1, NULL), GH_OK);
    assert_in_range(rget(fx, g, "xp", u3), 30, 50);
}

static void test_two_processes(void **state)
{
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, "{\"enabled\":true}");
    uint64_t users[8];
    int64_t start;
    pid_t pids[2];

    for (int i = 0; i < 8; i++)
        users[i] = random_id();
    start = gh_now_ms() + 300;
    for (int p = 0; p < 2; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            /* a process of its own: its own connections, like a second gateway */
            struct gh_ctx c = fx->ctx;
            struct gh_event evs[8], *ptrs[8];
            json_object *ds[8];
            c.redis = gh_redis_new(getenv("REDIS_URL"), 1000, NULL);
            c.pg = gh_pg_new(getenv("DATABASE_URL"), 10000, NULL);
            gh_lv_inline_reset();
            for (int i = 0; i < 8; i++) {
                char text[256];
                snprintf(text, sizeof(text),
                         "{\"channel_id\":\"11\",\"guild_id\":\"%" PRIu64 "\",\"author\":{\"id\":\"%" PRIu64
                         "\"},\"member\":{\"roles\":[]}}",
                         g, users[i]);
                ds[i] = json_tokener_parse(text);
                memset(&evs[i], 0, sizeof(evs[i]));
                evs[i].name = "MESSAGE_CREATE";
                evs[i].guild_id = g;
                evs[i].d = ds[i];
                evs[i].shard_id = SHARD;
                ptrs[i] = &evs[i];
            }
            /* settings read before the start, so both fire together */
            while (gh_now_ms() < start)
                usleep(1000);
            int rc = gh_lv_on_messages(&c, ptrs, 8);
            _exit(rc == GH_OK ? 0 : 1);
        }
    }
    for (int p = 0; p < 2; p++) {
        int st = 0;
        assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    for (int i = 0; i < 8; i++)
        assert_in_range(rget(fx, g, "xp", users[i]), 15, 25); /* exactly one award each */
}

static void test_levelup_job(void **state)
{
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, "{\"enabled\":true}"), u = random_id(), v = random_id();
    char key[128], needle[128];
    struct msg m = {g, u, 11, 0, 0, NULL, 0}, mv = {g, v, 11, 0, 0, NULL, 0};

    long fails = gh_lv_redis_failures();

    /* 90 XP, one message crosses level 1 (100) */
    snprintf(key, sizeof(key), "bot:{%" PRIu64 "}:levels:seeded", g);
    freeReplyObject(gh_redis_cmd(fx->redis, "SET %s 1", key));
    snprintf(key, sizeof(key), "bot:{%" PRIu64 "}:levels:xp:%" PRIu64, g, u);
    freeReplyObject(gh_redis_cmd(fx->redis, "SET %s 90", key));
    assert_int_equal(run_batch(fx, &m, 1, NULL), GH_OK);
    snprintf(needle, sizeof(needle), "levels:up:%" PRIu64 ":%" PRIu64 ":1", g, u);
    assert_int_equal(jobs_matching(fx, needle), 1);
    assert_int_equal(jobs_matching(fx, "\"levels:levelup\""), 1);
    assert_int_equal(gh_lv_redis_failures(), fails); /* the batch's replies all read before the enqueue */
    /* two users crossing in one batch with another guild's message between: every reply read */
    uint64_t p = random_id(), q2 = random_id();
    snprintf(key, sizeof(key), "bot:{%" PRIu64 "}:levels:xp:%" PRIu64, g, p);
    freeReplyObject(gh_redis_cmd(fx->redis, "SET %s 250", key));
    snprintf(key, sizeof(key), "bot:{%" PRIu64 "}:levels:xp:%" PRIu64, g, q2);
    freeReplyObject(gh_redis_cmd(fx->redis, "SET %s 460", key));
    uint64_t g2 = new_guild(fx, "{\"enabled\":true}");
    struct msg two[3] = {
        {g, p, 11, 0, 0, NULL, 0}, {g2, random_id(), 11, 0, 0, NULL, 0}, {g, q2, 11, 0, 0, NULL, 0}};
    assert_int_equal(run_batch(fx, two, 3, NULL), GH_OK);
    assert_int_equal(gh_lv_redis_failures(), fails);
    snprintf(needle, sizeof(needle), "levels:up:%" PRIu64 ":%" PRIu64 ":2", g, p);
    assert_int_equal(jobs_matching(fx, needle), 1);
    snprintf(needle, sizeof(needle), "levels:up:%" PRIu64 ":%" PRIu64 ":3", g, q2);
    assert_int_equal(jobs_matching(fx, needle), 1);
    assert_int_equal(jobs_matching(fx, "\"levels:levelup\""), 3);
    snprintf(needle, sizeof(needle), "levels:up:%" PRIu64 ":%" PRIu64 ":1", g, u);
    /* no crossing, no job */
    assert_int_equal(run_batch(fx, &mv, 1, NULL), GH_OK);
    assert_int_equal(jobs_matching(fx, "\"levels:levelup\""), 3);
    /* the same level reached again (a replay after a reset) is deduplicated */
    assert_int_equal(gh_lv_levelup_enqueue(&fx->ctx, g, u, 11, 50, 120, "x"), GH_OK);
    assert_int_equal(jobs_matching(fx, needle), 1);
}

static void test_no_levelup_unseeded(void **state)
{
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, "{\"enabled\":true}"), u = random_id();
    char key[128];
    struct msg m = {g, u, 11, 0, 0, NULL, 0};

    /* Redis lost its copy (no seeded marker): counts, decides no level-up */
    snprintf(key, sizeof(key), "bot:{%" PRIu64 "}:levels:xp:%" PRIu64, g, u);
    freeReplyObject(gh_redis_cmd(fx->redis, "SET %s 95", key));
    assert_int_equal(run_batch(fx, &m, 1, NULL), GH_OK);
    assert_true(rget(fx, g, "xp", u) >= 110);
    assert_int_equal(jobs_matching(fx, "\"levels:levelup\""), 0);
}

static void test_redis_down(void **state)
{
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, "{\"enabled\":true}"), u = random_id();
    struct msg m[3] = {
        {g, u, 11, 0, 0, NULL, 0}, {g, random_id(), 11, 0, 0, NULL, 0}, {g, u, 12, 0, 0, NULL, 0}};
    struct gh_redis *live = fx->ctx.redis;
    struct gh_gw_stats stats;
    long before = gh_lv_redis_failures();
    int64_t t0;

    memset(&stats, 0, sizeof(stats));
    fx->ctx.redis = gh_redis_new(DEAD_REDIS, 200, &fx->ctx.log);
    t0 = gh_mono_ms();
    assert_int_equal(run_batch(fx, m, 3, &stats), GH_OK);
    assert_int_equal(run_batch(fx, m, 3, &stats), GH_OK);
    assert_true(gh_mono_ms() - t0 < 3000); /* never blocks */
    assert_true(gh_lv_redis_failures() >= before + 2);
    assert_true(stats.redis_failures >= 2);
    gh_redis_free(fx->ctx.redis);
    fx->ctx.redis = live;
    assert_int_equal(rget(fx, g, "xp", u), -1);
    /* Redis back: XP again */
    assert_int_equal(run_batch(fx, m, 1, NULL), GH_OK);
    assert_in_range(rget(fx, g, "xp", u), 15, 25);
}

static void test_flush_idempotent_and_pg_down(void **state)
{
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, "{\"enabled\":true}"), u1 = random_id(), u2 = random_id();
    struct msg m[2] = {{g, u1, 11, 0, 0, NULL, 0}, {g, u2, 11, 0, 0, NULL, 0}};
    struct gh_pg *live = fx->ctx.pg;
    char dk[96], gk[96], upd[64];
    int guilds = 0, rows = 0;
    long long x1;

    assert_int_equal(run_batch(fx, m, 2, NULL), GH_OK);
    x1 = rget(fx, g, "xp", u1);
    dirty_key(dk, sizeof(dk), g);
    snprintf(gk, sizeof(gk), "bot:{global}:levels:dirty_guilds:%d", SHARD);

    /* PostgreSQL down: fails, keeps the dirty set and the guild */
    fx->ctx.pg = gh_pg_new(DEAD_PG, 2000, &fx->ctx.log);
    assert_int_not_equal(gh_lv_flush_shard(&fx->ctx, SHARD, &guilds, &rows), GH_OK);
    gh_pg_free(fx->ctx.pg);
    fx->ctx.pg = live;
    assert_int_equal(rnum(fx, "SCARD %s%s", dk, ""), 2);
    assert_int_equal(rnum(fx, "SISMEMBER %s %s", gk, idtext(g)), 1);
    assert_string_equal(value(fx, "SELECT count(*) FROM levels_members WHERE guild_id = $1", idtext(g), NULL),
                        "0");

    /* back: the rows land with the Redis totals, the sets are emptied */
    assert_int_equal(gh_lv_flush_shard(&fx->ctx, SHARD, &guilds, &rows), GH_OK);
    assert_true(rows >= 2);
    assert_int_equal(atoll(value(fx, "SELECT xp FROM levels_members WHERE guild_id = $1 AND user_id = $2",
                                 idtext(g), idtext(u1))),
                     x1);
    assert_int_equal(atoi(value(fx, "SELECT level FROM levels_members WHERE guild_id = $1 AND user_id = $2",
                                idtext(g), idtext(u1))),
                     gh_lv_level_for_xp(x1));
    assert_int_equal(rnum(fx, "SCARD %s%s", dk, ""), 0);
    assert_int_equal(rnum(fx, "SISMEMBER %s %s", gk, idtext(g)), 0);
    snprintf(upd, sizeof(upd), "%s",
             value(fx, "SELECT updated_at::text FROM levels_members WHERE guild_id = $1 AND user_id = $2",
                   idtext(g), idtext(u1)));

    /* twice is once: mark dirty again without a change, flush: same rows, same updated_at */
    freeReplyObject(gh_redis_cmd(fx->redis, "SADD %s %s", dk, idtext(u1)));
    freeReplyObject(gh_redis_cmd(fx->redis, "SADD %s %s", gk, idtext(g)));
    assert_int_equal(gh_lv_flush_shard(&fx->ctx, SHARD, &guilds, &rows), GH_OK);
    assert_string_equal(value(fx, "SELECT count(*) FROM levels_members WHERE guild_id = $1", idtext(g), NULL),
                        "2");
    assert_int_equal(atoll(value(fx, "SELECT xp FROM levels_members WHERE guild_id = $1 AND user_id = $2",
                                 idtext(g), idtext(u1))),
                     x1);
    assert_string_equal(
        value(fx, "SELECT updated_at::text FROM levels_members WHERE guild_id = $1 AND user_id = $2",
              idtext(g), idtext(u1)),
        upd);
}

static void test_seed_after_redis_loss(void **state)
{
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, "{\"enabled\":true}"), u = random_id(), w = random_id();
    char pattern[64], sql[256];
    struct msg m = {g, u, 11, 0, 0, NULL, 0};
    int64_t xp = 0;
    long rank = 0;
    long long gain;

    snprintf(sql, sizeof(sql),
             "INSERT INTO levels_members (guild_id, user_id, xp, level) VALUES (%" PRIu64 ", %" PRIu64
             ", 1000, 4), (%" PRIu64 ", %" PRIu64 ", 5000, 9)",
             g, u, g, w);
    q(fx, sql, NULL);
    snprintf(pattern, sizeof(pattern), "bot:{%s}:levels:*", idtext(g));
    del_pattern(fx, pattern); /* Redis lost everything */
    assert_int_equal(run_batch(fx, &m, 1, NULL), GH_OK);
    gain = rget(fx, g, "xp", u);
    assert_in_range(gain, 15, 25);
    /* /rank seeds: the stored total plus what Redis counted since */
    assert_int_equal(gh_lv_user_total(&fx->ctx, g, u, &xp, &rank), GH_OK);
    assert_int_equal(xp, 1000 + gain);
    assert_int_equal(rank, 2);
    /* seeding twice adds nothing */
    assert_int_equal(gh_lv_seed(&fx->ctx, g), GH_OK);
    assert_int_equal(rget(fx, g, "xp", u), 1000 + gain);
    assert_int_equal(rget(fx, g, "xp", w), 5000);
}

static void voice_event(struct fx *fx, uint64_t g, uint64_t u, uint64_t ch, const char *extra)
{
    char text[512];
    struct gh_event ev, *p = &ev;
    json_object *d;

    snprintf(text, sizeof(text),
             "{\"guild_id\":\"%" PRIu64 "\",\"channel_id\":%s%s%s,\"user_id\":\"%" PRIu64
             "\",\"self_mute\":false,\"self_deaf\":false,\"mute\":false,\"deaf\":false%s}",
             g, ch ? "\"" : "", ch ? idtext(ch) : "null", ch ? "\"" : "", u, extra ? extra : "");
    d = json_tokener_parse(text);
    assert_non_null(d);
    memset(&ev, 0, sizeof(ev));
    ev.name = "VOICE_STATE_UPDATE";
    ev.guild_id = g;
    ev.d = d;
    ev.shard_id = SHARD;
    assert_int_equal(gh_lv_on_voice(&fx->ctx, &p, 1), GH_OK);
    json_object_put(d);
}

static void test_voice_rules(void **state)
{
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, "{\"enabled\":true,\"voice_xp_per_minute\":10}");
    uint64_t a = random_id(), b = random_id(), alone = random_id(), muted = random_id(), deaf = random_id(),
             smuted = random_id(), bot = random_id(), left = random_id();
    int awarded = 0;
    char key[96];

    voice_event(fx, g, a, 21, NULL);
    voice_event(fx, g, b, 21, NULL);
    voice_event(fx, g, muted, 21, ",\"self_mute\":true");
    voice_event(fx, g, smuted, 21, ",\"mute\":true");
    voice_event(fx, g, deaf, 21, ",\"self_deaf\":true");
    voice_event(fx, g, alone, 22, NULL);
    voice_event(fx, g, muted, 22, ",\"self_mute\":true"); /* moved next to alone, muted: alone stays alone */
    voice_event(fx, g, bot, 21, ",\"member\":{\"user\":{\"id\":\"1\",\"bot\":true}}");
    voice_event(fx, g, left, 21, NULL);
    voice_event(fx, g, left, 0, NULL); /* left again */
    snprintf(key, sizeof(key), "bot:{global}:levels:voice_guilds:%d", SHARD);
    assert_int_equal(rnum(fx, "SISMEMBER %s %s", key, idtext(g)), 1);
    snprintf(key, sizeof(key), "bot:{%" PRIu64 "}:levels:voice", g);
    assert_int_equal(rnum(fx, "HLEN %s%s", key, ""), 6);

    assert_int_equal(gh_lv_voice_award(&fx->ctx, g, gh_now_ms() + 5 * 60000 + 500, &awarded), GH_OK);
    assert_int_equal(awarded, 2);
    assert_int_equal(rget(fx, g, "xp", a), 50);
    assert_int_equal(rget(fx, g, "xp", b), 50);
    assert_int_equal(rget(fx, g, "xp", alone), -1);
    assert_int_equal(rget(fx, g, "xp", muted), -1);
    assert_int_equal(rget(fx, g, "xp", smuted), -1);
    assert_int_equal(rget(fx, g, "xp", deaf), -1);
    assert_int_equal(rget(fx, g, "xp", bot), -1);
    assert_int_equal(rget(fx, g, "xp", left), -1);
    /* the same minutes are not awarded twice */
    assert_int_equal(gh_lv_voice_award(&fx->ctx, g, gh_now_ms() + 5 * 60000 + 500, &awarded), GH_OK);
    assert_int_equal(awarded, 0);
    assert_int_equal(rget(fx, g, "xp", a), 50);
}

static void test_voice_job_and_off(void **state)
{
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, "{\"enabled\":true}"),
             off = new_guild(fx, "{\"enabled\":true,\"voice_enabled\":false}");
    uint64_t a = random_id(), b = random_id();
    struct gh_pg *live = fx->ctx.pg;
    struct gh_job job;
    char key[96], dg[96];
    int awarded = -1;

    voice_event(fx, off, a, 21, NULL);
    voice_event(fx, off, b, 21, NULL);
    snprintf(key, sizeof(key), "bot:{%" PRIu64 "}:levels:voice", off);
    assert_int_equal(rnum(fx, "HLEN %s%s", key, ""), 0); /* voice XP off: not tracked */

    voice_event(fx, g, a, 21, NULL);
    voice_event(fx, g, b, 21, NULL);
    snprintf(key, sizeof(key), "bot:{%" PRIu64 "}:levels:voice", g);
    assert_int_equal(rnum(fx, "HLEN %s%s", key, ""), 2);
    assert_true(jobs_matching(fx, "\"levels:voice\"") >= 1); /* the slot's voice job */
    /* PostgreSQL down (settings unreadable): nothing moves, nothing is lost */
    fx->ctx.pg = gh_pg_new(DEAD_PG, 2000, &fx->ctx.log);
    freeReplyObject(gh_redis_cmd(fx->redis, "DEL bot:{%" PRIu64 "}:settings:levels", g));
    assert_int_not_equal(gh_lv_voice_award(&fx->ctx, g, gh_now_ms() + 6 * 60000, &awarded), GH_OK);
    gh_pg_free(fx->ctx.pg);
    fx->ctx.pg = live;
    assert_int_equal(rnum(fx, "HLEN %s%s", key, ""), 2);
    assert_int_equal(rget(fx, g, "xp", a), -1);
    /* the job (run now: the members joined just now, so under a minute: nothing earned yet),
     * keeps the guild in the voice set and makes sure a flush follows */
    memset(&job, 0, sizeof(job));
    job.payload = json_tokener_parse("{\"shard\":3}");
    assert_int_equal(gh_lv_job_voice(&fx->ctx, &job), GH_OK);
    json_object_put(job.payload);
    snprintf(dg, sizeof(dg), "bot:{global}:levels:voice_guilds:%d", SHARD);
    assert_int_equal(rnum(fx, "SISMEMBER %s %s", dg, idtext(g)), 1);
    assert_true(jobs_matching(fx, "\"levels:flush\"") >= 1);
    /* both leave: the next run drops the guild from the voice set */
    voice_event(fx, g, a, 0, NULL);
    voice_event(fx, g, b, 0, NULL);
    job.payload = json_tokener_parse("{\"shard\":3}");
    assert_int_equal(gh_lv_job_voice(&fx->ctx, &job), GH_OK);
    json_object_put(job.payload);
    assert_int_equal(rnum(fx, "SISMEMBER %s %s", dg, idtext(g)), 0);
}

static void test_voice_from_guild_create(void **state)
{
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, "{\"enabled\":true}"), a = random_id(), b = random_id(), c = random_id();
    char text[768], key[96];
    struct gh_event ev, *p = &ev;
    json_object *d;
    redisReply *r;

    snprintf(text, sizeof(text),
             "{\"id\":\"%" PRIu64 "\",\"voice_states\":[{\"channel_id\":\"21\",\"user_id\":\"%" PRIu64
             "\",\"self_mute\":false,\"self_deaf\":false,\"mute\":false,\"deaf\":false},"
             "{\"channel_id\":\"21\",\"user_id\":\"%" PRIu64
             "\",\"self_mute\":false,\"self_deaf\":true,\"mute\":false,\"deaf\":false},"
             "{\"channel_id\":null,\"user_id\":\"%" PRIu64 "\"}]}",
             g, a, b, c);
    d = json_tokener_parse(text);
    assert_non_null(d);
    memset(&ev, 0, sizeof(ev));
    ev.name = "GUILD_CREATE";
    ev.guild_id = g;
    ev.d = d;
    ev.shard_id = SHARD;
    assert_int_equal(gh_lv_on_guild_create(&fx->ctx, &p, 1), GH_OK);
    json_object_put(d);
    snprintf(key, sizeof(key), "bot:{%" PRIu64 "}:levels:voice", g);
    assert_int_equal(rnum(fx, "HLEN %s%s", key, ""), 2);
    r = gh_redis_cmd(fx->redis, "HGET %s %s", key, idtext(b));
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_non_null(strstr(r->str, ":2")); /* deafened */
    freeReplyObject(r);
}

static void test_reset(void **state)
{
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, "{\"enabled\":true}"), u = random_id();
    struct msg m = {g, u, 11, 0, 0, NULL, 0};
    int64_t before = -1;
    int guilds, rows;

    assert_int_equal(run_batch(fx, &m, 1, NULL), GH_OK);
    assert_int_equal(gh_lv_flush_shard(&fx->ctx, SHARD, &guilds, &rows), GH_OK);
    assert_int_equal(gh_lv_reset(&fx->ctx, g, u, 777777777777777777ULL, &before), GH_OK);
    assert_in_range(before, 15, 25);
    assert_int_equal(rget(fx, g, "xp", u), 0);
    assert_string_equal(
        value(fx, "SELECT xp FROM levels_members WHERE guild_id = $1 AND user_id = $2", idtext(g), idtext(u)),
        "0");
    assert_string_equal(
        value(fx,
              "SELECT count(*) FROM audit_log WHERE guild_id = $1 AND action = 'levels.reset' "
              "AND actor_id = 777777777777777777",
              idtext(g), NULL),
        "1");
    /* the next flush keeps it at 0 */
    assert_int_equal(gh_lv_flush_shard(&fx->ctx, SHARD, &guilds, &rows), GH_OK);
    assert_string_equal(
        value(fx, "SELECT xp FROM levels_members WHERE guild_id = $1 AND user_id = $2", idtext(g), idtext(u)),
        "0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cooldown_and_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exclusions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multipliers_and_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levelup_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_levelup_unseeded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_idempotent_and_pg_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_after_redis_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_voice_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_voice_job_and_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_voice_from_guild_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
