/* test_premium.c - premium tiers: the tier math at its boundaries, the
 * status cache (key, TTL, hit, invalidation, fill), Redis down, PostgreSQL
 * down, the gate and its denial rows and log line, limits per tier, codes
 * (stored hashed, redeemed once, extending, normalised), the trial,
 * Discord entitlements (idempotent, unknown SKU), grant and revoke,
 * cross-guild isolation, two processes redeeming one code at once, the API
 * body, /premium, and the embed-color gate in /serverinfo and /userinfo.
 *
 * Needs DATABASE_URL and REDIS_URL with the migrations applied (skips
 * without). Every test makes its own random guild ids and removes what it
 * wrote (premium rows, audit rows, settings, Redis keys, guilds). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "discord/interaction.h"
#include "features/premium/premium.h"
#include "features/registry.h"
#include "store/pg.h"
#include "store/redis.h"
#include "store/settings.h"

#define DEAD_REDIS "redis://127.0.0.1:1/0"
#define DEAD_PG "postgresql://guildhall@127.0.0.1:1/guildhall?connect_timeout=1"
#define DAY_MS 86400000LL
#define SKU_PREMIUM "1111111111111111111"
#define SKU_PRO "2222222222222222222"
#define SKU_OTHER "3333333333333333333"
#define USER 123456789012345678ULL
#define URL "https://guildhall.example/premium"

#define NEED_STORES()                                                                                        \
    do {                                                                                                     \
        if (!getenv("DATABASE_URL") || !getenv("REDIS_URL")) {                                               \
            print_message("DATABASE_URL or REDIS_URL is not set: premium store tests skipped\n");            \
            skip();                                                                                          \
        }                                                                                                    \
    } while (0)

struct fx {
    struct gh_config cfg;
    struct gh_log_sink sink;
    struct gh_ctx ctx;
    struct gh_pg *pg; /* the test's own connection, for checks */
    struct gh_redis *redis;
    char log_path[64];
    uint64_t guilds[8];
    int n_guilds;
    uint64_t actor; /* created_by of this test's codes */
};

/* ---- fixture ---------------------------------------------------------------- */

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
    snprintf(fx->log_path, sizeof(fx->log_path), "/tmp/test_premium.%d.log", (int)getpid());
    unlink(fx->log_path);
    if (gh_log_sink_init(&fx->sink, "test_premium", GH_LOG_DEBUG, fx->log_path, 0, 0) != GH_OK)
        return -1;
    gh_logger_init(&fx->ctx.log, &fx->sink, "premium");
    snprintf(fx->ctx.log.corr, sizeof(fx->ctx.log.corr), "premcorr%d", (int)getpid());
    fx->ctx.cfg = &fx->cfg;
    snprintf(fx->cfg.premium_url, sizeof(fx->cfg.premium_url), "%s", URL);
    snprintf(fx->cfg.premium_skus, sizeof(fx->cfg.premium_skus), " " SKU_PREMIUM ":premium, " SKU_PRO ":pro");
    fx->cfg.premium_grace_days = 7;
    fx->cfg.premium_trial_days = 7;
    fx->actor = random_id();
    if (db && ru) {
        fx->pg = gh_pg_new(db, 5000, NULL);
        fx->redis = gh_redis_new(ru, 500, NULL);
        fx->ctx.pg = gh_pg_new(db, 5000, &fx->ctx.log);
        fx->ctx.redis = gh_redis_new(ru, 500, &fx->ctx.log);
    }
    *state = fx;
    return 0;
}

static void q(struct fx *fx, const char *sql, const char *p1)
{
    const char *params[1] = {p1};

    if (gh_pg_command(fx->pg, sql, p1 ? 1 : 0, p1 ? params : NULL) != GH_OK)
        fail_msg("%s: %s", sql, gh_pg_errmsg(fx->pg));
}

static void drop_guild(struct fx *fx, uint64_t g)
{
    static const char *const sql[] = {
        "DELETE FROM premium_denials WHERE guild_id = $1",
        "DELETE FROM premium_history WHERE guild_id = $1",
        "DELETE FROM premium_entitlements WHERE guild_id = $1",
        "DELETE FROM premium_trials WHERE guild_id = $1",
        "DELETE FROM premium_codes WHERE redeemed_guild_id = $1",
        "DELETE FROM premium_subscriptions WHERE guild_id = $1",
        "DELETE FROM audit_log WHERE guild_id = $1",
        "DELETE FROM guilds WHERE id = $1",
    };
    char id[24];

    snprintf(id, sizeof(id), "%" PRIu64, g);
    for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++)
        q(fx, sql[i], id);
    freeReplyObject(gh_redis_cmd(fx->redis,
                                 "DEL bot:{%s}:premium:status bot:{%s}:premium:status:fill "
                                 "bot:{%s}:settings:core bot:{%s}:settings:core:fill",
                                 id, id, id, id));
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    char actor[24];

    if (fx->pg) {
        for (int i = 0; i < fx->n_guilds; i++)
            drop_guild(fx, fx->guilds[i]);
        snprintf(actor, sizeof(actor), "%" PRIu64, fx->actor);
        q(fx, "DELETE FROM premium_codes WHERE created_by = $1", actor);
        q(fx, "DELETE FROM audit_log WHERE guild_id IS NULL AND actor_id = $1", actor);
    }
    gh_pg_free(fx->ctx.pg);
    gh_redis_free(fx->ctx.redis);
    gh_pg_free(fx->pg);
    gh_redis_free(fx->redis);
    gh_log_sink_cleanup(&fx->sink);
    unlink(fx->log_path);
    free(fx);
    return 0;
}

/* A fresh guild; insert = 0 leaves it out of the guilds table. */
static uint64_t new_guild(struct fx *fx, int insert)
{
    uint64_t g = random_id();
    char id[24];

    assert_true(fx->n_guilds < 8);
    fx->guilds[fx->n_guilds++] = g;
    snprintf(id, sizeof(id), "%" PRIu64, g);
    if (insert)
        q(fx, "INSERT INTO guilds (id, name) VALUES ($1, 'premium test')", id);
    return g;
}

static long long count(struct fx *fx, const char *sql, uint64_t g)
{
    char id[24];
    const char *params[1] = {id};
    PGresult *res;
    long long n;

    snprintf(id, sizeof(id), "%" PRIu64, g);
    res = gh_pg_exec(fx->pg, sql, 1, params);
    if (!res)
        fail_msg("%s: %s", sql, gh_pg_errmsg(fx->pg));
    n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

/* First column of the first row as text (static buffer), "" for NULL. */
static const char *value(struct fx *fx, const char *sql, const char *p1)
{
    static char out[4096];
    const char *params[1] = {p1};
    PGresult *res = gh_pg_exec(fx->pg, sql, 1, params);

    if (!res)
        fail_msg("%s: %s", sql, gh_pg_errmsg(fx->pg));
    snprintf(out, sizeof(out), "%s", PQntuples(res) ? PQgetvalue(res, 0, 0) : "(no row)");
    PQclear(res);
    return out;
}

static long long history(struct fx *fx, uint64_t g)
{
    return count(fx, "SELECT count(*) FROM premium_history WHERE guild_id = $1", g);
}

static long long denials(struct fx *fx, uint64_t g)
{
    return count(fx, "SELECT count(*) FROM premium_denials WHERE guild_id = $1", g);
}

static long long cached(struct fx *fx, uint64_t g)
{
    redisReply *r = gh_redis_cmd(fx->redis, "EXISTS bot:{%" PRIu64 "}:premium:status", g);
    long long n;

    assert_non_null(r);
    n = r->integer;
    freeReplyObject(r);
    return n;
}

static struct gh_premium status(struct fx *fx, uint64_t g)
{
    struct gh_premium p;

    assert_int_equal(gh_premium_get(&fx->ctx, g, &p), GH_OK);
    return p;
}

/* One code of rank for days, issued by this test's actor. */
static void make_code(struct fx *fx, int rank, int days, char *out, size_t n)
{
    json_object *codes = NULL;

    assert_int_equal(gh_premium_codes_create(&fx->ctx, rank, days, 1, fx->actor, &codes), GH_OK);
    assert_int_equal(json_object_array_length(codes), 1);
    snprintf(out, n, "%s", json_object_get_string(json_object_array_get_idx(codes, 0)));
    json_object_put(codes);
}

static void sha256_hex(const char *s, char *hex, size_t n)
{
    unsigned char h[crypto_hash_sha256_BYTES];

    crypto_hash_sha256(h, (const unsigned char *)s, strlen(s));
    sodium_bin2hex(hex, n, h, sizeof(h));
}

static int log_has(struct fx *fx, const char *needle)
{
    FILE *f = fopen(fx->log_path, "r");
    char line[8192];
    int found = 0;

    if (!f)
        return 0;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* ---- pure: names, tables, text, tier math ------------------------------------ */

static void test_tables_and_text(void **state)
{
    struct fx *fx = *state;
    char out[256];

    assert_string_equal(gh_premium_tier_name(0), "free");
    assert_string_equal(gh_premium_tier_name(2), "pro");
    assert_string_equal(gh_premium_tier_name(7), "free");
    assert_int_equal(gh_premium_tier_rank("premium"), 1);
    assert_int_equal(gh_premium_tier_rank("Pro"), GH_EINVAL);
    assert_string_equal(gh_premium_source_name(GH_PREMIUM_SRC_ENTITLEMENT), "entitlement");
    assert_null(gh_premium_source_name(GH_PREMIUM_SRC_COUNT));

    /* The limits table of the issue, unlimited = -1, unknown = 0 (fail closed). */
    assert_int_equal(gh_premium_limit(0, "role_panels"), 3);
    assert_int_equal(gh_premium_limit(1, "role_panels"), 25);
    assert_int_equal(gh_premium_limit(2, "role_panels"), -1);
    assert_int_equal(gh_premium_limit(0, "triggers"), 10);
    assert_int_equal(gh_premium_limit(1, "triggers"), 100);
    assert_int_equal(gh_premium_limit(2, "triggers"), -1);
    assert_int_equal(gh_premium_limit(0, "giveaways"), 2);
    assert_int_equal(gh_premium_limit(1, "giveaways"), 20);
    assert_int_equal(gh_premium_limit(2, "giveaways"), -1);
    assert_int_equal(gh_premium_limit(1, "rockets"), 0);
    assert_int_equal(gh_premium_limit(3, "triggers"), 0);

    /* PREMIUM_SKUS, spaces tolerated; malformed lists are an error. */
    assert_int_equal(gh_premium_sku_rank(&fx->cfg, 1111111111111111111ULL), 1);
    assert_int_equal(gh_premium_sku_rank(&fx->cfg, 2222222222222222222ULL), 2);
    assert_int_equal(gh_premium_sku_rank(&fx->cfg, 3333333333333333333ULL), 0);
    snprintf(fx->cfg.premium_skus, sizeof(fx->cfg.premium_skus), "12:gold");
    assert_int_equal(gh_premium_sku_rank(&fx->cfg, 12), GH_EINVAL);
    snprintf(fx->cfg.premium_skus, sizeof(fx->cfg.premium_skus), "12");
    assert_int_equal(gh_premium_sku_rank(&fx->cfg, 12), GH_EINVAL);
    fx->cfg.premium_skus[0] = '\0';
    assert_int_equal(gh_premium_sku_rank(&fx->cfg, 12), 0);

    /* The upgrade message (also the API's 403 body). */
    assert_int_equal(gh_premium_upgrade_text(&fx->cfg, 1, "custom embed color", out, sizeof(out)), GH_OK);
    assert_string_equal(out, "Custom embed color needs Guildhall Premium. Upgrade at " URL);
    assert_int_equal(gh_premium_upgrade_text(&fx->cfg, 2, "the knowledge base", out, sizeof(out)), GH_OK);
    assert_string_equal(out, "The knowledge base needs Guildhall Pro. Upgrade at " URL);
    assert_int_equal(gh_premium_upgrade_text(&fx->cfg, 1, "custom embed color", out, 20), GH_ETOOBIG);
    assert_int_equal(gh_premium_upgrade_text(&fx->cfg, 0, "x", out, sizeof(out)), GH_EINVAL);
    fx->cfg.premium_url[0] = '\0';
    assert_int_equal(gh_premium_upgrade_text(&fx->cfg, 1, "custom embed color", out, sizeof(out)), GH_OK);
    assert_string_equal(out, "Custom embed color needs Guildhall Premium.");
    snprintf(fx->cfg.premium_url, sizeof(fx->cfg.premium_url), "%s", URL);

    assert_int_equal(gh_premium_limit_text(&fx->cfg, 0, "role_panels", out, sizeof(out)), GH_OK);
    assert_string_equal(out,
                        "This server can have 3 role panels on its tier (Free). Guildhall Premium raises it "
                        "to 25. Upgrade at " URL);
    assert_int_equal(gh_premium_limit_text(&fx->cfg, 1, "giveaways", out, sizeof(out)), GH_OK);
    assert_string_equal(out,
                        "This server can have 20 active giveaways on its tier (Guildhall Premium). Guildhall "
                        "Pro removes the limit. Upgrade at " URL);
    assert_int_equal(gh_premium_limit_text(&fx->cfg, 1, "nope", out, sizeof(out)), GH_EINVAL);
}

static void test_tier_math_boundaries(void **state)
{
    const int64_t exp = 1800000000000LL, grace = exp + 7 * DAY_MS;
    struct gh_premium p;

    (void)state;
    memset(&p, 0, sizeof(p));
    gh_premium_evaluate(&p, exp);
    assert_int_equal(p.effective, 0);
    assert_string_equal(p.status, "none");

    p.tier = 1;
    snprintf(p.source, sizeof(p.source), "code");
    p.expires_at = exp;
    p.grace_until = grace;
    gh_premium_evaluate(&p, exp - 1); /* the last millisecond of the period */
    assert_int_equal(p.effective, 1);
    assert_string_equal(p.status, "active");
    gh_premium_evaluate(&p, exp); /* exactly at expiry: the period is over, grace starts */
    assert_int_equal(p.effective, 1);
    assert_string_equal(p.status, "grace");
    gh_premium_evaluate(&p, grace - 1);
    assert_int_equal(p.effective, 1);
    assert_string_equal(p.status, "grace");
    gh_premium_evaluate(&p, grace); /* exactly at the end of grace: free */
    assert_int_equal(p.effective, 0);
    assert_string_equal(p.status, "expired");
    assert_int_equal(p.tier, 1); /* the stored tier stays */

    p.grace_until = 0; /* no grace: free right at expiry */
    gh_premium_evaluate(&p, exp);
    assert_string_equal(p.status, "expired");

    p.tier = 2;
    p.expires_at = 0; /* no end */
    gh_premium_evaluate(&p, INT64_MAX);
    assert_int_equal(p.effective, 2);
    assert_string_equal(p.status, "active");

    snprintf(p.source, sizeof(p.source), "trial");
    p.tier = 1;
    p.expires_at = exp;
    p.grace_until = exp;
    gh_premium_evaluate(&p, exp - 1);
    assert_string_equal(p.status, "trial");
    gh_premium_evaluate(&p, exp);
    assert_string_equal(p.status, "expired");
}

/* ---- status through the stores ------------------------------------------------ */

static void test_status_in_db_at_boundaries(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t active = new_guild(fx, 1), grace = new_guild(fx, 1), expired = new_guild(fx, 1),
             forever = new_guild(fx, 1);
    int64_t now = gh_now_ms();
    struct gh_premium p;

    p = status(fx, active);
    assert_string_equal(p.status, "none");
    assert_int_equal(p.effective, 0);

    assert_int_equal(gh_premium_grant(&fx->ctx, active, 1, GH_PREMIUM_SRC_OPERATOR, NULL, now - DAY_MS,
                                      now + DAY_MS, USER, "test"),
                     GH_OK);
    /* Expired an hour ago: 7 days of grace left. */
    assert_int_equal(gh_premium_grant(&fx->ctx, grace, 2, GH_PREMIUM_SRC_OPERATOR, NULL, now - 30 * DAY_MS,
                                      now - 3600000, USER, "test"),
                     GH_OK);
    /* Expired 8 days ago: grace (7 days) is over. */
    assert_int_equal(gh_premium_grant(&fx->ctx, expired, 1, GH_PREMIUM_SRC_OPERATOR, NULL, now - 30 * DAY_MS,
                                      now - 8 * DAY_MS, USER, "test"),
                     GH_OK);
    assert_int_equal(
        gh_premium_grant(&fx->ctx, forever, 2, GH_PREMIUM_SRC_OPERATOR, "deal-7", 0, 0, USER, NULL), GH_OK);

    p = status(fx, active);
    assert_string_equal(p.status, "active");
    assert_int_equal(p.effective, 1);
    assert_int_equal(p.expires_at, now + DAY_MS);
    assert_int_equal(p.grace_until, now + 8 * DAY_MS);
    assert_int_equal(p.starts_at, now - DAY_MS);
    assert_string_equal(p.source, "operator");

    p = status(fx, grace);
    assert_string_equal(p.status, "grace");
    assert_int_equal(p.effective, 2);
    assert_int_equal(p.grace_until, now - 3600000 + 7 * DAY_MS);

    p = status(fx, expired);
    assert_string_equal(p.status, "expired");
    assert_int_equal(p.effective, 0);
    assert_int_equal(p.tier, 1);

    p = status(fx, forever);
    assert_string_equal(p.status, "active");
    assert_int_equal(p.effective, 2);
    assert_int_equal(p.expires_at, 0);
    assert_int_equal(p.grace_until, 0);
    assert_string_equal(p.source_ref, "deal-7");

    /* Refused: a period ending before it starts, bad ranks, unknown guild. */
    assert_int_equal(
        gh_premium_grant(&fx->ctx, active, 1, GH_PREMIUM_SRC_OPERATOR, NULL, now, now - 1, 0, NULL),
        GH_EINVAL);
    assert_int_equal(gh_premium_grant(&fx->ctx, active, 3, GH_PREMIUM_SRC_OPERATOR, NULL, 0, 0, 0, NULL),
                     GH_EINVAL);
    assert_int_equal(
        gh_premium_grant(&fx->ctx, new_guild(fx, 0), 1, GH_PREMIUM_SRC_OPERATOR, NULL, 0, 0, 0, NULL),
        GH_ENOTFOUND);
    assert_int_equal(history(fx, active), 1);
    assert_int_equal(
        count(fx, "SELECT count(*) FROM audit_log WHERE guild_id = $1 AND action = 'premium.grant'", active),
        1);
}

static void test_cache_hit_miss_invalidate(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, 1);
    char id[24];
    redisReply *r;
    struct gh_premium p;

    snprintf(id, sizeof(id), "%" PRIu64, g);
    /* Miss: read from PostgreSQL, the cache filled with a TTL of 300 s. */
    assert_int_equal(cached(fx, g), 0);
    p = status(fx, g);
    assert_string_equal(p.status, "none");
    assert_int_equal(cached(fx, g), 1);
    r = gh_redis_cmd(fx->redis, "TTL bot:{%s}:premium:status", id);
    assert_non_null(r);
    assert_true(r->integer > 0 && r->integer <= 300);
    freeReplyObject(r);

    /* A change drops the key; the next read refills it. */
    assert_int_equal(gh_premium_grant(&fx->ctx, g, 1, GH_PREMIUM_SRC_OPERATOR, NULL, 0, 0, USER, NULL),
                     GH_OK);
    assert_int_equal(cached(fx, g), 0);
    p = status(fx, g);
    assert_int_equal(p.effective, 1);
    assert_int_equal(cached(fx, g), 1);

    /* Hit: PostgreSQL changed behind the cache's back, the cached copy answers. */
    q(fx, "UPDATE premium_subscriptions SET tier = 'pro' WHERE guild_id = $1", id);
    p = status(fx, g);
    assert_int_equal(p.effective, 1);
    gh_premium_invalidate(&fx->ctx, g);
    assert_int_equal(cached(fx, g), 0);
    p = status(fx, g);
    assert_int_equal(p.effective, 2);

    /* The cache holds the row, not the verdict: an expiry passing while
     * cached takes effect at once. */
    q(fx,
      "UPDATE premium_subscriptions SET starts_at = now() - interval '1 day', "
      "expires_at = now() - interval '1 hour', "
      "grace_until = now() - interval '1 minute' WHERE guild_id = $1",
      id);
    gh_premium_invalidate(&fx->ctx, g);
    p = status(fx, g);
    assert_string_equal(p.status, "expired");

    /* A malformed cached copy is dropped and PostgreSQL answers. */
    freeReplyObject(gh_redis_cmd(fx->redis, "SET bot:{%s}:premium:status garbage EX 300", id));
    p = status(fx, g);
    assert_string_equal(p.status, "expired");
    assert_true(log_has(fx, "is malformed"));
}

static void test_redis_down_reads_postgres(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, 1);
    struct gh_redis *live = fx->ctx.redis;
    struct gh_premium p;

    assert_int_equal(gh_premium_grant(&fx->ctx, g, 2, GH_PREMIUM_SRC_OPERATOR, NULL, 0, 0, USER, NULL),
                     GH_OK);
    fx->ctx.redis = gh_redis_new(DEAD_REDIS, 200, &fx->ctx.log);
    p = status(fx, g);
    assert_int_equal(p.effective, 2);
    assert_true(log_has(fx, "Redis unavailable"));
    assert_int_equal(gh_premium_require(&fx->ctx, g, USER, 2, "pro thing"), GH_OK);
    /* A change still commits; the cache drop failing is logged. */
    assert_int_equal(gh_premium_revoke(&fx->ctx, g, USER, "test"), GH_OK);
    assert_true(log_has(fx, "could not drop the cached status"));
    gh_redis_free(fx->ctx.redis);
    fx->ctx.redis = NULL; /* no Redis at all */
    p = status(fx, g);
    assert_string_equal(p.status, "expired");
    fx->ctx.redis = live;
    assert_int_equal(cached(fx, g), 0);
}

static void test_postgres_down(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, 1);
    struct gh_pg *live = fx->ctx.pg;
    struct gh_premium p;
    json_object *body = NULL;

    assert_int_equal(gh_premium_grant(&fx->ctx, g, 1, GH_PREMIUM_SRC_OPERATOR, NULL, 0, 0, USER, NULL),
                     GH_OK);
    fx->ctx.pg = gh_pg_new(DEAD_PG, 1000, &fx->ctx.log);
    /* Nothing cached: GH_EPG, and the gate refuses (GH_EPG, not GH_OK). */
    assert_int_equal(gh_premium_get(&fx->ctx, g, &p), GH_EPG);
    assert_int_equal(p.effective, 0);
    assert_int_equal(gh_premium_require(&fx->ctx, g, USER, 1, "custom embed color"), GH_EPG);
    assert_int_equal(gh_premium_check_limit(&fx->ctx, g, USER, "triggers", 0), GH_EPG);
    assert_int_equal(gh_premium_status_json(&fx->ctx, g, &body), GH_EPG);
    assert_null(body);
    assert_int_equal(gh_premium_grant(&fx->ctx, g, 2, GH_PREMIUM_SRC_OPERATOR, NULL, 0, 0, USER, NULL),
                     GH_EPG);
    assert_true(log_has(fx, "refused for now"));
    gh_pg_free(fx->ctx.pg);
    fx->ctx.pg = live;
    /* Nothing was decided, so nothing was recorded as a denial. */
    assert_int_equal(denials(fx, g), 0);
    assert_int_equal(history(fx, g), 1);

    /* With the status cached, a PostgreSQL outage does not stop the gate. */
    p = status(fx, g);
    assert_int_equal(cached(fx, g), 1);
    fx->ctx.pg = gh_pg_new(DEAD_PG, 1000, &fx->ctx.log);
    assert_int_equal(gh_premium_require(&fx->ctx, g, USER, 1, "custom embed color"), GH_OK);
    gh_pg_free(fx->ctx.pg);
    fx->ctx.pg = live;
}

/* ---- the gate and limits ----------------------------------------------------- */

static void test_require_refusals_write_one_denial_each(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, 1);
    char id[24], want[128];

    snprintf(id, sizeof(id), "%" PRIu64, g);
    assert_int_equal(gh_premium_require(&fx->ctx, g, USER, 0, "anything"), GH_OK);
    assert_int_equal(gh_premium_require(&fx->ctx, g, USER, 3, "anything"), GH_EINVAL);
    assert_int_equal(denials(fx, g), 0);

    assert_int_equal(gh_premium_require(&fx->ctx, g, USER, 1, "custom embed color"), GH_EPREMIUM);
    assert_int_equal(denials(fx, g), 1);
    snprintf(want, sizeof(want), "123456789012345678|premium|NULL|custom embed color|premcorr%d",
             (int)getpid());
    assert_string_equal(
        value(fx,
              "SELECT concat_ws('|', user_id, required_tier, coalesce(effective_tier::text, 'NULL'), "
              "what, corr) FROM premium_denials WHERE guild_id = $1",
              id),
        want);
    assert_true(log_has(fx, "premium: refused custom embed color in guild"));
    assert_true(log_has(fx, "\"required_tier\":\"premium\",\"effective_tier\":\"free\""));

    assert_int_equal(gh_premium_grant(&fx->ctx, g, 1, GH_PREMIUM_SRC_OPERATOR, NULL, 0, 0, USER, NULL),
                     GH_OK);
    assert_int_equal(gh_premium_require(&fx->ctx, g, USER, 1, "custom embed color"), GH_OK);
    assert_int_equal(denials(fx, g), 1);
    assert_int_equal(gh_premium_require(&fx->ctx, g, 0, 2, "knowledge base"), GH_EPREMIUM);
    assert_int_equal(denials(fx, g), 2);
    assert_string_equal(
        value(fx,
              "SELECT concat_ws('|', coalesce(user_id::text, 'NULL'), required_tier, effective_tier, "
              "what) FROM premium_denials WHERE guild_id = $1 ORDER BY id DESC LIMIT 1",
              id),
        "NULL|pro|premium|knowledge base");
}

static void test_limits_per_tier(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, 1);
    char id[24];

    snprintf(id, sizeof(id), "%" PRIu64, g);
    /* Free: 3 role panels. */
    assert_int_equal(gh_premium_check_limit(&fx->ctx, g, USER, "role_panels", 2), GH_OK);
    assert_int_equal(gh_premium_check_limit(&fx->ctx, g, USER, "role_panels", 3), GH_EPREMIUM);
    assert_int_equal(gh_premium_check_limit(&fx->ctx, g, USER, "giveaways", 1), GH_OK);
    assert_int_equal(gh_premium_check_limit(&fx->ctx, g, USER, "giveaways", 2), GH_EPREMIUM);
    assert_int_equal(gh_premium_check_limit(&fx->ctx, g, USER, "rockets", 0), GH_EINVAL);
    assert_int_equal(denials(fx, g), 2);
    assert_string_equal(
        value(fx,
              "SELECT string_agg(what || ':' || required_tier, ',' ORDER BY id) FROM premium_denials "
              "WHERE guild_id = $1",
              id),
        "role_panels limit:premium,giveaways limit:premium");
    /* Premium: 25 role panels, 100 triggers. */
    assert_int_equal(gh_premium_grant(&fx->ctx, g, 1, GH_PREMIUM_SRC_OPERATOR, NULL, 0, 0, USER, NULL),
                     GH_OK);
    assert_int_equal(gh_premium_check_limit(&fx->ctx, g, USER, "role_panels", 3), GH_OK);
    assert_int_equal(gh_premium_check_limit(&fx->ctx, g, USER, "role_panels", 24), GH_OK);
    assert_int_equal(gh_premium_check_limit(&fx->ctx, g, USER, "role_panels", 25), GH_EPREMIUM);
    assert_int_equal(gh_premium_check_limit(&fx->ctx, g, USER, "triggers", 99), GH_OK);
    assert_int_equal(gh_premium_check_limit(&fx->ctx, g, USER, "triggers", 100), GH_EPREMIUM);
    assert_int_equal(denials(fx, g), 4);
    assert_string_equal(
        value(fx,
              "SELECT required_tier || '/' || effective_tier FROM premium_denials WHERE guild_id = $1 "
              "ORDER BY id DESC LIMIT 1",
              id),
        "pro/premium");
    /* Pro: unlimited. */
    assert_int_equal(gh_premium_grant(&fx->ctx, g, 2, GH_PREMIUM_SRC_OPERATOR, NULL, 0, 0, USER, NULL),
                     GH_OK);
    assert_int_equal(gh_premium_check_limit(&fx->ctx, g, USER, "role_panels", 100000), GH_OK);
    assert_int_equal(gh_premium_check_limit(&fx->ctx, g, USER, "giveaways", 100000), GH_OK);
    assert_int_equal(denials(fx, g), 4);
}

/* ---- codes ---------------------------------------------------------------------- */

static void test_codes_stored_hashed_only(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    json_object *codes = NULL;
    regex_t re;
    char hex[65], actor[24];

    assert_int_equal(gh_premium_codes_create(&fx->ctx, 1, 30, 0, fx->actor, &codes), GH_EINVAL);
    assert_int_equal(gh_premium_codes_create(&fx->ctx, 1, 30, 101, fx->actor, &codes), GH_EINVAL);
    assert_int_equal(gh_premium_codes_create(&fx->ctx, 0, 30, 1, fx->actor, &codes), GH_EINVAL);
    assert_int_equal(gh_premium_codes_create(&fx->ctx, 1, 0, 1, fx->actor, &codes), GH_EINVAL);
    assert_null(codes);
    assert_int_equal(gh_premium_codes_create(&fx->ctx, 2, 90, 5, fx->actor, &codes), GH_OK);
    assert_int_equal(json_object_array_length(codes), 5);
    assert_int_equal(regcomp(&re,
                             "^GH-[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}-"
                             "[0-9A-HJKMNP-TV-Z]{5}$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    snprintf(actor, sizeof(actor), "%" PRIu64, fx->actor);
    for (size_t i = 0; i < 5; i++) {
        const char *code = json_object_get_string(json_object_array_get_idx(codes, i));
        char needle[64];
        assert_int_equal(regexec(&re, code, 0, NULL, 0), 0);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(code, json_object_get_string(json_object_array_get_idx(codes, j)));
        /* The stored hash is sha256 of the code; the code is nowhere in the table or the audit log. */
        sha256_hex(code, hex, sizeof(hex));
        assert_string_equal(
            value(fx, "SELECT tier || '/' || days FROM premium_codes WHERE code_hash = $1", hex), "pro/90");
        snprintf(needle, sizeof(needle), "%%%s%%", code + 3);
        assert_string_equal(
            value(fx,
                  "SELECT count(*) FROM premium_codes p WHERE row_to_json(p)::text LIKE $1 OR "
                  "EXISTS (SELECT 1 FROM audit_log a WHERE row_to_json(a)::text LIKE $1)",
                  needle),
            "0");
    }
    regfree(&re);
    assert_string_equal(value(fx, "SELECT count(*) FROM premium_codes WHERE created_by = $1", actor), "5");
    assert_string_equal(
        value(fx,
              "SELECT after->>'count' || '/' || jsonb_array_length(after->'ids') FROM audit_log "
              "WHERE action = 'premium.codes' AND actor_id = $1",
              actor),
        "5/5");
    json_object_put(codes);
}

static void test_redeem(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, 1), ghost = new_guild(fx, 0);
    char code[40], code2[40], pro[40], late[40], typed[64], id[24], hex[65];
    int64_t t0, t1;
    struct gh_premium p;

    snprintf(id, sizeof(id), "%" PRIu64, g);
    assert_int_equal(gh_premium_redeem(&fx->ctx, g, "GH-00000-00000-00000-00000", USER), GH_ENOTFOUND);
    assert_int_equal(gh_premium_redeem(&fx->ctx, g, "hello", USER), GH_EINVAL);
    assert_int_equal(gh_premium_redeem(&fx->ctx, g, "GH-UUUUU-00000-00000-00000", USER), GH_EINVAL);
    make_code(fx, 1, 30, code, sizeof(code));
    /* No guilds row: refused, and the code stays unused. */
    assert_int_equal(gh_premium_redeem(&fx->ctx, ghost, code, USER), GH_ENOTFOUND);

    t0 = gh_now_ms();
    assert_int_equal(gh_premium_redeem(&fx->ctx, g, code, USER), GH_OK);
    t1 = gh_now_ms();
    p = status(fx, g);
    assert_string_equal(p.status, "active");
    assert_string_equal(p.source, "code");
    assert_true(p.expires_at >= t0 + 30 * DAY_MS && p.expires_at <= t1 + 30 * DAY_MS);
    assert_int_equal(p.grace_until, p.expires_at + 7 * DAY_MS);
    sha256_hex(code, hex, sizeof(hex));
    assert_string_equal(value(fx, "SELECT id::text FROM premium_codes WHERE code_hash = $1", hex),
                        p.source_ref);
    snprintf(typed, sizeof(typed), "%s/123456789012345678", id);
    assert_string_equal(
        value(fx, "SELECT redeemed_guild_id || '/' || redeemed_by FROM premium_codes WHERE code_hash = $1",
              hex),
        typed);
    /* Used. */
    assert_int_equal(gh_premium_redeem(&fx->ctx, g, code, USER), GH_ECONFLICT);

    /* A second code of the same tier extends from the expiry; typed sloppily. */
    make_code(fx, 1, 10, code2, sizeof(code2));
    snprintf(typed, sizeof(typed), " gh %s ", code2 + 3);
    for (char *c = typed; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    for (char *c = typed; *c; c++)
        if (*c == '0')
            *c = 'o'; /* O reads as 0 */
    {
        int64_t before = p.expires_at;
        assert_int_equal(gh_premium_redeem(&fx->ctx, g, typed, USER), GH_OK);
        p = status(fx, g);
        assert_int_equal(p.expires_at, before + 10 * DAY_MS);
    }
    assert_int_equal(history(fx, g), 2);
    assert_int_equal(
        count(fx, "SELECT count(*) FROM audit_log WHERE guild_id = $1 AND action = 'premium.redeem'", g), 2);

    /* A pro code upgrades from now; a premium code while pro is in force is refused and stays unused. */
    make_code(fx, 2, 5, pro, sizeof(pro));
    t0 = gh_now_ms();
    assert_int_equal(gh_premium_redeem(&fx->ctx, g, pro, USER), GH_OK);
    t1 = gh_now_ms();
    p = status(fx, g);
    assert_int_equal(p.effective, 2);
    assert_true(p.expires_at >= t0 + 5 * DAY_MS && p.expires_at <= t1 + 5 * DAY_MS);
    make_code(fx, 1, 30, late, sizeof(late));
    assert_int_equal(gh_premium_redeem(&fx->ctx, g, late, USER), GH_ECONFLICT);
    sha256_hex(late, hex, sizeof(hex));
    assert_string_equal(value(fx, "SELECT redeemed_at IS NULL FROM premium_codes WHERE code_hash = $1", hex),
                        "t");
    assert_int_equal(history(fx, g), 3);

    /* A code whose own redeem-by date passed. */
    q(fx, "UPDATE premium_codes SET expires_at = now() - interval '1 second' WHERE code_hash = $1", hex);
    assert_int_equal(gh_premium_redeem(&fx->ctx, g, late, USER), GH_EEXPIRED);
}

static void test_trial_once(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, 1), paid = new_guild(fx, 1);
    struct gh_premium p;
    json_object *body = NULL;
    int64_t t0, t1;

    fx->cfg.premium_trial_days = 0;
    assert_int_equal(gh_premium_start_trial(&fx->ctx, g, USER), GH_EINVAL);
    fx->cfg.premium_trial_days = 7;

    t0 = gh_now_ms();
    assert_int_equal(gh_premium_start_trial(&fx->ctx, g, USER), GH_OK);
    t1 = gh_now_ms();
    p = status(fx, g);
    assert_string_equal(p.status, "trial");
    assert_int_equal(p.effective, 1);
    assert_true(p.trial_used);
    assert_true(p.expires_at >= t0 + 7 * DAY_MS && p.expires_at <= t1 + 7 * DAY_MS);
    assert_int_equal(p.grace_until, p.expires_at); /* no grace after a trial */
    assert_int_equal(gh_premium_start_trial(&fx->ctx, g, USER), GH_ECONFLICT);
    /* Ended early: still used. */
    assert_int_equal(gh_premium_revoke(&fx->ctx, g, USER, "test"), GH_OK);
    assert_string_equal(status(fx, g).status, "expired");
    assert_int_equal(gh_premium_start_trial(&fx->ctx, g, USER), GH_ECONFLICT);
    assert_int_equal(gh_premium_status_json(&fx->ctx, g, &body), GH_OK);
    assert_false(json_object_get_boolean(json_object_object_get(body, "trial_available")));
    json_object_put(body);
    assert_int_equal(history(fx, g), 2);
    assert_int_equal(count(fx, "SELECT count(*) FROM premium_trials WHERE guild_id = $1", g), 1);

    /* A guild with paid premium has no use for a trial. */
    assert_int_equal(gh_premium_grant(&fx->ctx, paid, 1, GH_PREMIUM_SRC_CODE, "1", 0, 0, USER, NULL), GH_OK);
    assert_int_equal(gh_premium_start_trial(&fx->ctx, paid, USER), GH_ECONFLICT);
    assert_int_equal(count(fx, "SELECT count(*) FROM premium_trials WHERE guild_id = $1", paid), 0);
    assert_int_equal(gh_premium_start_trial(&fx->ctx, new_guild(fx, 0), USER), GH_ENOTFOUND);
}

/* ---- grant and revoke: audit rows, nothing deleted ------------------------------ */

static void test_revoke_downgrades_and_deletes_nothing(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, 1);
    json_object *doc = json_tokener_parse("{\"embed_color\":255}");
    char id[24];
    int nv = 0;

    snprintf(id, sizeof(id), "%" PRIu64, g);
    assert_int_equal(gh_settings_put(&fx->ctx, g, "core", doc, USER, -1, &nv), GH_OK);
    json_object_put(doc);
    assert_int_equal(gh_premium_grant(&fx->ctx, g, 2, GH_PREMIUM_SRC_OPERATOR, "deal", 0, 0, USER, "sold"),
                     GH_OK);
    assert_int_equal(gh_premium_revoke(&fx->ctx, g, USER, "refund"), GH_OK);
    assert_string_equal(status(fx, g).status, "expired");
    assert_int_equal(status(fx, g).tier, 2);
    /* Revoking what is not in force writes nothing. */
    assert_int_equal(gh_premium_revoke(&fx->ctx, g, USER, "again"), GH_OK);
    assert_int_equal(history(fx, g), 2);
    assert_string_equal(
        value(fx,
              "SELECT string_agg(coalesce(to_tier::text, 'NULL') || ':' || source || ':' || reason, "
              "',' ORDER BY id) FROM premium_history WHERE guild_id = $1",
              id),
        "pro:operator:sold,NULL:operator:refund");
    assert_string_equal(
        value(fx,
              "SELECT before->>'tier' || '/' || (before->'expires_at' = 'null'::jsonb) || '/' || "
              "(after->>'expires_at' IS NOT NULL) FROM audit_log WHERE guild_id = $1 AND action = "
              "'premium.revoke'",
              id),
        "pro/true/true");
    /* The settings and the subscription row survive the downgrade. */
    assert_string_equal(
        value(fx, "SELECT document->>'embed_color' FROM guild_settings WHERE guild_id = $1", id), "255");
    assert_int_equal(count(fx, "SELECT count(*) FROM premium_subscriptions WHERE guild_id = $1", g), 1);
    assert_int_equal(gh_premium_revoke(&fx->ctx, new_guild(fx, 0), USER, NULL), GH_ENOTFOUND);
}

/* ---- entitlements -------------------------------------------------------------- */

static int entitlement(struct fx *fx, const char *type, const char *id, const char *sku, uint64_t guild,
                       const char *ends_at, int deleted)
{
    char text[1024], g[40];
    json_object *e;
    int rc;

    if (guild)
        snprintf(g, sizeof(g), "\"%" PRIu64 "\"", guild);
    else
        snprintf(g, sizeof(g), "null");
    snprintf(text, sizeof(text),
             "{\"id\":\"%s\",\"sku_id\":\"%s\",\"application_id\":\"1234567890123456789\","
             "\"user_id\":\"123456789012345678\",\"guild_id\":%s,\"type\":8,\"deleted\":%s,"
             "\"starts_at\":\"2024-01-01T00:00:00.000000+00:00\",\"ends_at\":%s,\"consumed\":false}",
             id, sku, g, deleted ? "true" : "false", ends_at ? ends_at : "null");
    e = json_tokener_parse(text);
    assert_non_null(e);
    rc = gh_premium_entitlement(&fx->ctx, type, e);
    json_object_put(e);
    return rc;
}

static void test_entitlements_idempotent(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, 1);
    char eid[24], ends[64], iso[40];
    struct gh_premium p;
    int64_t end_ms = (gh_now_ms() / 1000 + 30 * 86400) * 1000;

    snprintf(eid, sizeof(eid), "%" PRIu64, random_id());
    /* Create, twice: one history row. */
    assert_int_equal(entitlement(fx, "ENTITLEMENT_CREATE", eid, SKU_PREMIUM, g, NULL, 0), GH_OK);
    assert_int_equal(history(fx, g), 1);
    p = status(fx, g);
    assert_string_equal(p.status, "active");
    assert_int_equal(p.effective, 1);
    assert_string_equal(p.source, "entitlement");
    assert_string_equal(p.source_ref, eid);
    assert_int_equal(p.expires_at, 0);
    assert_int_equal(p.starts_at, 1704067200000LL);
    assert_int_equal(entitlement(fx, "ENTITLEMENT_CREATE", eid, SKU_PREMIUM, g, NULL, 0), GH_OK);
    assert_int_equal(history(fx, g), 1);

    /* Update with an end (offset form and fraction), twice: one more row. */
    gh_iso8601(end_ms, iso, sizeof(iso));
    snprintf(ends, sizeof(ends), "\"%.19s.000000+00:00\"", iso);
    assert_int_equal(entitlement(fx, "ENTITLEMENT_UPDATE", eid, SKU_PREMIUM, g, ends, 0), GH_OK);
    assert_int_equal(entitlement(fx, "ENTITLEMENT_UPDATE", eid, SKU_PREMIUM, g, ends, 0), GH_OK);
    assert_int_equal(history(fx, g), 2);
    p = status(fx, g);
    assert_int_equal(p.expires_at, end_ms);
    assert_int_equal(p.grace_until, end_ms + 7 * DAY_MS);

    /* Delete, twice: ended now, one more row, nothing deleted. */
    assert_int_equal(entitlement(fx, "ENTITLEMENT_DELETE", eid, SKU_PREMIUM, g, ends, 0), GH_OK);
    assert_int_equal(entitlement(fx, "ENTITLEMENT_DELETE", eid, SKU_PREMIUM, g, ends, 0), GH_OK);
    assert_int_equal(history(fx, g), 3);
    p = status(fx, g);
    assert_string_equal(p.status, "expired");
    assert_int_equal(p.effective, 0);
    /* deleted never goes back to false; a stale update changes nothing. */
    assert_int_equal(entitlement(fx, "ENTITLEMENT_UPDATE", eid, SKU_PREMIUM, g, ends, 0), GH_OK);
    assert_int_equal(history(fx, g), 3);
    assert_string_equal(
        value(fx, "SELECT deleted::text FROM premium_entitlements WHERE entitlement_id = $1", eid), "true");
    assert_string_equal(status(fx, g).status, "expired");
    assert_int_equal(
        count(fx, "SELECT count(*) FROM audit_log WHERE guild_id = $1 AND action = 'premium.entitlement'", g),
        3);

    /* deleted:true in an UPDATE ends it too (a new entitlement of pro). */
    snprintf(eid, sizeof(eid), "%" PRIu64, random_id());
    assert_int_equal(entitlement(fx, "ENTITLEMENT_CREATE", eid, SKU_PRO, g, NULL, 0), GH_OK);
    assert_int_equal(status(fx, g).effective, 2);
    assert_int_equal(entitlement(fx, "ENTITLEMENT_UPDATE", eid, SKU_PRO, g, NULL, 1), GH_OK);
    assert_int_equal(status(fx, g).effective, 0);
    assert_int_equal(history(fx, g), 5);
}

static void test_entitlement_edges(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, 1), ghost = new_guild(fx, 0);
    char eid[24], other[24];
    json_object *bad;

    snprintf(eid, sizeof(eid), "%" PRIu64, random_id());
    /* Unknown SKU, no guild: logged and ignored, nothing stored. */
    assert_int_equal(entitlement(fx, "ENTITLEMENT_CREATE", eid, SKU_OTHER, g, NULL, 0), GH_OK);
    assert_int_equal(entitlement(fx, "ENTITLEMENT_CREATE", eid, SKU_PREMIUM, 0, NULL, 0), GH_OK);
    assert_string_equal(value(fx, "SELECT count(*) FROM premium_entitlements WHERE entitlement_id = $1", eid),
                        "0");
    assert_int_equal(history(fx, g), 0);
    assert_true(log_has(fx, "SKU not in PREMIUM_SKUS"));
    /* Malformed. */
    assert_int_equal(entitlement(fx, "ENTITLEMENT_EXPLODE", eid, SKU_PREMIUM, g, NULL, 0), GH_EINVAL);
    assert_int_equal(entitlement(fx, "ENTITLEMENT_CREATE", eid, SKU_PREMIUM, g, "\"next tuesday\"", 0),
                     GH_EINVAL);
    bad = json_tokener_parse("{\"sku_id\":\"" SKU_PREMIUM "\"}");
    assert_int_equal(gh_premium_entitlement(&fx->ctx, "ENTITLEMENT_CREATE", bad), GH_EINVAL);
    json_object_put(bad);
    /* Unknown guild. */
    assert_int_equal(entitlement(fx, "ENTITLEMENT_CREATE", eid, SKU_PREMIUM, ghost, NULL, 0), GH_ENOTFOUND);
    /* Pro from a code is kept when a premium entitlement arrives; the
     * entitlement is recorded, and deleting it does not end the code's pro. */
    assert_int_equal(gh_premium_grant(&fx->ctx, g, 2, GH_PREMIUM_SRC_CODE, "99", 0, 0, USER, NULL), GH_OK);
    assert_int_equal(entitlement(fx, "ENTITLEMENT_CREATE", eid, SKU_PREMIUM, g, NULL, 0), GH_OK);
    assert_string_equal(value(fx, "SELECT count(*) FROM premium_entitlements WHERE entitlement_id = $1", eid),
                        "1");
    assert_int_equal(entitlement(fx, "ENTITLEMENT_DELETE", eid, SKU_PREMIUM, g, NULL, 0), GH_OK);
    assert_int_equal(status(fx, g).effective, 2);
    assert_string_equal(status(fx, g).source, "code");
    assert_int_equal(history(fx, g), 1);
    /* A malformed PREMIUM_SKUS is a configuration error. */
    snprintf(other, sizeof(other), "%" PRIu64, random_id());
    snprintf(fx->cfg.premium_skus, sizeof(fx->cfg.premium_skus), "x:y");
    assert_int_equal(entitlement(fx, "ENTITLEMENT_CREATE", other, SKU_PREMIUM, g, NULL, 0), GH_ECONFIG);
}

/* ---- isolation and concurrency ---------------------------------------------------- */

static void test_cross_guild_isolation(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t a = new_guild(fx, 1), b = new_guild(fx, 1);
    char code[40];
    struct gh_premium p;

    p = status(fx, b);
    assert_string_equal(p.status, "none");
    make_code(fx, 1, 30, code, sizeof(code));
    assert_int_equal(gh_premium_redeem(&fx->ctx, a, code, USER), GH_OK);
    assert_int_equal(gh_premium_start_trial(&fx->ctx, a, USER), GH_ECONFLICT);
    assert_int_equal(gh_premium_require(&fx->ctx, a, USER, 2, "pro thing"), GH_EPREMIUM);
    /* B: the same code is used, B's status, history, denials and trial untouched. */
    assert_int_equal(gh_premium_redeem(&fx->ctx, b, code, USER), GH_ECONFLICT);
    p = status(fx, b);
    assert_string_equal(p.status, "none");
    assert_int_equal(p.effective, 0);
    assert_false(p.trial_used);
    assert_int_equal(history(fx, b), 0);
    assert_int_equal(denials(fx, b), 0);
    assert_int_equal(denials(fx, a), 1);
    assert_int_equal(status(fx, a).effective, 1);
    assert_int_equal(gh_premium_start_trial(&fx->ctx, b, USER), GH_OK);
    assert_string_equal(status(fx, a).source, "code");
}

static void test_concurrent_redeem_one_wins(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t guilds[2] = {new_guild(fx, 1), new_guild(fx, 1)};
    char code[40], hex[65], winner[24];
    int go[2], ready[2], ok = 0, conflict = 0, won = -1;
    pid_t pids[2];

    make_code(fx, 1, 30, code, sizeof(code));
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(ready), 0);
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            struct gh_ctx c = fx->ctx;
            char byte;
            int rc;
            c.pg = gh_pg_new(getenv("DATABASE_URL"), 5000, NULL);
            c.redis = gh_redis_new(getenv("REDIS_URL"), 500, NULL);
            if (!c.pg || gh_pg_connect(c.pg) != GH_OK)
                _exit(3);
            if (write(ready[1], "r", 1) != 1 || read(go[0], &byte, 1) != 1)
                _exit(4);
            rc = gh_premium_redeem(&c, guilds[i], code, USER);
            _exit(rc == GH_OK ? 0 : rc == GH_ECONFLICT ? 1 : 2);
        }
    }
    /* Both connected and waiting; release them together. */
    for (int i = 0; i < 2; i++) {
        char byte;
        assert_int_equal(read(ready[0], &byte, 1), 1);
    }
    assert_int_equal(write(go[1], "gg", 2), 2);
    for (int i = 0; i < 2; i++) {
        int st = 0;
        assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
        assert_true(WIFEXITED(st));
        if (WEXITSTATUS(st) == 0) {
            ok++;
            won = i;
        } else if (WEXITSTATUS(st) == 1) {
            conflict++;
        } else {
            fail_msg("child %d exited with %d", i, WEXITSTATUS(st));
        }
    }
    close(go[0]);
    close(go[1]);
    close(ready[0]);
    close(ready[1]);
    assert_int_equal(ok, 1);
    assert_int_equal(conflict, 1);
    sha256_hex(code, hex, sizeof(hex));
    snprintf(winner, sizeof(winner), "%" PRIu64, guilds[won]);
    assert_string_equal(
        value(fx, "SELECT redeemed_guild_id::text FROM premium_codes WHERE code_hash = $1", hex), winner);
    assert_int_equal(history(fx, guilds[won]), 1);
    assert_int_equal(history(fx, guilds[1 - won]), 0);
    assert_int_equal(
        count(fx, "SELECT count(*) FROM premium_subscriptions WHERE guild_id = $1", guilds[1 - won]), 0);
    assert_int_equal(status(fx, guilds[1 - won]).effective, 0);
    assert_int_equal(status(fx, guilds[won]).effective, 1);
}

/* ---- the API body ---------------------------------------------------------------- */

static void test_status_json(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, 1);
    json_object *body = NULL, *tiers, *hist, *t;
    int64_t exp = 1900000000000LL;

    assert_int_equal(gh_premium_status_json(&fx->ctx, new_guild(fx, 0), &body), GH_ENOTFOUND);
    assert_null(body);
    assert_int_equal(gh_premium_status_json(&fx->ctx, g, &body), GH_OK);
    assert_string_equal(json_object_get_string(json_object_object_get(body, "tier")), "free");
    assert_string_equal(json_object_get_string(json_object_object_get(body, "status")), "none");
    assert_null(json_object_object_get(body, "source"));
    assert_null(json_object_object_get(body, "expires_at"));
    assert_true(json_object_get_boolean(json_object_object_get(body, "trial_available")));
    assert_int_equal(json_object_array_length(json_object_object_get(body, "history")), 0);
    json_object_put(body);

    assert_int_equal(gh_premium_grant(&fx->ctx, g, 1, GH_PREMIUM_SRC_OPERATOR, NULL, 0, exp, USER, "first"),
                     GH_OK);
    assert_int_equal(gh_premium_grant(&fx->ctx, g, 2, GH_PREMIUM_SRC_CODE, "42", 0, exp, USER, "second"),
                     GH_OK);
    assert_int_equal(gh_premium_status_json(&fx->ctx, g, &body), GH_OK);
    assert_string_equal(json_object_get_string(json_object_object_get(body, "tier")), "pro");
    assert_string_equal(json_object_get_string(json_object_object_get(body, "effective_tier")), "pro");
    assert_string_equal(json_object_get_string(json_object_object_get(body, "status")), "active");
    assert_string_equal(json_object_get_string(json_object_object_get(body, "source")), "code");
    assert_string_equal(json_object_get_string(json_object_object_get(body, "expires_at")),
                        "2030-03-17T17:46:40.000Z");
    assert_string_equal(json_object_get_string(json_object_object_get(body, "grace_until")),
                        "2030-03-24T17:46:40.000Z");
    assert_false(json_object_get_boolean(json_object_object_get(body, "trial_available")));
    assert_string_equal(json_object_get_string(json_object_object_get(body, "upgrade_url")), URL);
    tiers = json_object_object_get(body, "tiers");
    assert_int_equal(json_object_array_length(tiers), 3);
    t = json_object_array_get_idx(tiers, 2);
    assert_string_equal(json_object_get_string(json_object_object_get(t, "name")), "pro");
    assert_int_equal(json_object_get_int(json_object_object_get(t, "rank")), 2);
    assert_true(json_object_object_get_ex(json_object_object_get(t, "limits"), "role_panels", NULL));
    assert_null(json_object_object_get(json_object_object_get(t, "limits"), "role_panels")); /* unlimited */
    t = json_object_array_get_idx(tiers, 1);
    assert_int_equal(
        json_object_get_int(json_object_object_get(json_object_object_get(t, "limits"), "triggers")), 100);
    assert_true(json_object_array_length(json_object_object_get(t, "unlocks")) > 0);
    hist = json_object_object_get(body, "history");
    assert_int_equal(json_object_array_length(hist), 2);
    t = json_object_array_get_idx(hist, 0); /* newest first */
    assert_string_equal(json_object_get_string(json_object_object_get(t, "reason")), "second");
    assert_string_equal(json_object_get_string(json_object_object_get(t, "tier")), "pro");
    assert_string_equal(json_object_get_string(json_object_object_get(t, "from_tier")), "premium");
    assert_string_equal(json_object_get_string(json_object_object_get(t, "actor_id")), "123456789012345678");
    t = json_object_array_get_idx(hist, 1);
    assert_string_equal(json_object_get_string(json_object_object_get(t, "from_tier")), "free");
    json_object_put(body);
}

/* ---- /premium and the embed-color gate ---------------------------------------------- */

static json_object *run_command(struct fx *fx, const char *name, uint64_t guild)
{
    const struct gh_command *c = gh_registry_command(name, 1, NULL);
    struct gh_interaction ix;
    struct gh_buf out;
    char body[2048], who[512], err[256];
    json_object *r;
    int n;

    assert_non_null(c);
    if (guild)
        snprintf(who, sizeof(who),
                 "\"guild_id\":\"%" PRIu64 "\",\"guild\":{\"id\":\"%" PRIu64
                 "\",\"features\":[]},\"context\":0,"
                 "\"member\":{\"permissions\":\"0\",\"roles\":[],\"user\":{\"id\":\"123456789012345678\","
                 "\"username\":\"alice\"}}",
                 guild, guild);
    else
        snprintf(who, sizeof(who),
                 "\"context\":1,\"user\":{\"id\":\"123456789012345678\",\"username\":\"alice\"}");
    n = snprintf(
        body, sizeof(body),
        "{\"id\":\"1300000000000000001\",\"application_id\":\"1234567890123456789\",\"type\":2,"
        "\"token\":\"t\",\"version\":1,\"channel_id\":\"1\",%s,\"data\":{\"id\":\"1\",\"name\":\"%s\","
        "\"type\":1}}",
        who, name);
    assert_true(n > 0 && (size_t)n < sizeof(body));
    if (gh_interaction_parse(body, (size_t)n, &ix, err, sizeof(err)) != GH_OK)
        fail_msg("interaction does not parse: %s", err);
    gh_buf_init(&out, 64 * 1024);
    assert_int_equal(c->handler(&fx->ctx, &ix, &out), GH_OK);
    r = json_tokener_parse(gh_buf_cstr(&out));
    assert_non_null(r);
    gh_buf_cleanup(&out);
    gh_interaction_cleanup(&ix);
    return r;
}

static const char *text_of(json_object *r)
{
    return json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

static int embed_color_of(json_object *r)
{
    json_object *data = json_object_object_get(r, "data");
    json_object *e = json_object_array_get_idx(json_object_object_get(data, "embeds"), 0);

    return json_object_get_int(json_object_object_get(e, "color"));
}

static void test_premium_command(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, 1);
    struct gh_pg *live = fx->ctx.pg;
    json_object *r, *data;
    const struct gh_feature *f = NULL;

    assert_non_null(gh_registry_command("premium", 1, &f));
    assert_ptr_equal(f, &gh_feature_premium);
    assert_false(f->can_disable);

    r = run_command(fx, "premium", g);
    data = json_object_object_get(r, "data");
    assert_int_equal(json_object_get_int(json_object_object_get(r, "type")), 4);
    assert_int_equal(json_object_get_int(json_object_object_get(data, "flags")) & 64, 64);
    assert_string_equal(json_object_to_json_string_ext(json_object_object_get(data, "allowed_mentions"),
                                                       JSON_C_TO_STRING_PLAIN),
                        "{\"parse\":[]}");
    assert_non_null(strstr(text_of(r), "Premium: Free"));
    assert_non_null(strstr(text_of(r), "free tier"));
    assert_non_null(strstr(text_of(r), "Role panels: 3"));
    assert_non_null(strstr(text_of(r), URL));
    assert_non_null(strstr(text_of(r), "7 days of Guildhall Premium"));
    json_object_put(r);

    assert_int_equal(
        gh_premium_grant(&fx->ctx, g, 1, GH_PREMIUM_SRC_CODE, "5", 0, 1900000000000LL, USER, NULL), GH_OK);
    r = run_command(fx, "premium", g);
    assert_non_null(strstr(text_of(r), "Premium: Guildhall Premium"));
    assert_non_null(strstr(text_of(r), "<t:1900000000:D>"));
    assert_non_null(strstr(text_of(r), "Grace until"));
    assert_non_null(strstr(text_of(r), "Role panels: 25"));
    assert_non_null(strstr(text_of(r), "Active giveaways: 20"));
    json_object_put(r);

    r = run_command(fx, "premium", 0);
    assert_non_null(strstr(text_of(r), "only works in a server"));
    json_object_put(r);

    gh_premium_invalidate(&fx->ctx, g);
    fx->ctx.pg = gh_pg_new(DEAD_PG, 1000, &fx->ctx.log);
    r = run_command(fx, "premium", g);
    assert_non_null(strstr(text_of(r), "can't read this server's premium status"));
    json_object_put(r);
    gh_pg_free(fx->ctx.pg);
    fx->ctx.pg = live;
}

static void test_embed_color_gate_where_it_executes(void **state)
{
    NEED_STORES();
    struct fx *fx = *state;
    uint64_t g = new_guild(fx, 1), plain = new_guild(fx, 1);
    json_object *doc = json_tokener_parse("{\"embed_color\":16711680}"), *r;
    int nv = 0;
    char id[24];

    snprintf(id, sizeof(id), "%" PRIu64, g);
    assert_int_equal(gh_settings_put(&fx->ctx, g, "core", doc, USER, -1, &nv), GH_OK);
    json_object_put(doc);

    /* No color set: the default, and no premium check at all. */
    r = run_command(fx, "serverinfo", plain);
    assert_int_equal(embed_color_of(r), 0x5865F2);
    json_object_put(r);
    assert_int_equal(denials(fx, plain), 0);

    /* Free guild with a color: the default color, the command works, one denial each. */
    r = run_command(fx, "serverinfo", g);
    assert_int_equal(embed_color_of(r), 0x5865F2);
    json_object_put(r);
    r = run_command(fx, "userinfo", g);
    assert_int_equal(embed_color_of(r), 0x5865F2);
    json_object_put(r);
    assert_int_equal(denials(fx, g), 2);
    assert_string_equal(value(fx, "SELECT DISTINCT what FROM premium_denials WHERE guild_id = $1", id),
                        "custom embed color");

    /* Premium: the guild's color, no new denial. */
    assert_int_equal(gh_premium_grant(&fx->ctx, g, 1, GH_PREMIUM_SRC_OPERATOR, NULL, 0, 0, USER, NULL),
                     GH_OK);
    r = run_command(fx, "serverinfo", g);
    assert_int_equal(embed_color_of(r), 0xFF0000);
    json_object_put(r);
    r = run_command(fx, "userinfo", g);
    assert_int_equal(embed_color_of(r), 0xFF0000);
    json_object_put(r);
    assert_int_equal(denials(fx, g), 2);

    /* Downgraded: back to the default; the setting itself is kept. */
    assert_int_equal(gh_premium_revoke(&fx->ctx, g, USER, "test"), GH_OK);
    r = run_command(fx, "userinfo", g);
    assert_int_equal(embed_color_of(r), 0x5865F2);
    json_object_put(r);
    assert_int_equal(denials(fx, g), 3);
    assert_string_equal(
        value(fx, "SELECT document->>'embed_color' FROM guild_settings WHERE guild_id = $1", id), "16711680");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tables_and_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tier_math_boundaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_in_db_at_boundaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_hit_miss_invalidate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_down_reads_postgres, setup, teardown),
        cmocka_unit_test_setup_teardown(test_postgres_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_require_refusals_write_one_denial_each, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_per_tier, setup, teardown),
        cmocka_unit_test_setup_teardown(test_codes_stored_hashed_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redeem, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trial_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_downgrades_and_deletes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entitlements_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entitlement_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cross_guild_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_redeem_one_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_premium_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_embed_color_gate_where_it_executes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
