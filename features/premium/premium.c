/* premium.c - premium tiers: status (cached), the gate, limits, and the
 * changes (grant, revoke, code, trial, Discord entitlement).
 *
 * Status. PostgreSQL (premium_subscriptions + premium_trials) is the truth.
 * Redis holds the stored row, not the verdict, at bot:{<g>}:premium:status
 * for 300 s ({"t":rank,"s":source,"r":ref,"st":ms,"ex":ms,"gr":ms,"tu":0|1};
 * a guild without a row is cached as t 0), and gh_premium_evaluate turns it
 * into the effective tier at every read: an expiry that passes while the copy
 * is cached takes effect at once. The read-fill race is closed the way
 * settings.c closes it: a reader that misses takes a fill ticket before it
 * reads PostgreSQL and fills only while its ticket is still there; every
 * change deletes the key and the ticket after its commit.
 *
 * Changes. Each is one transaction that first locks the guild's guilds row
 * (FOR NO KEY UPDATE: foreign-key inserts elsewhere are not blocked), so two
 * changes of one guild are serialised, and a missing row is GH_ENOTFOUND.
 * Inside it: the change's own rows (code marked redeemed, trial recorded,
 * entitlement upserted), the subscription upsert, a premium_history row and
 * an audit_log row with the subscription before and after. The cache is
 * dropped after the commit.
 *
 * Codes. "GH-" and 20 characters of Crockford's base32 (100 random bits from
 * getrandom) in groups of five. Only sha256(canonical text) is stored. A
 * code is redeemed by an UPDATE that requires redeemed_at IS NULL on a row
 * locked FOR UPDATE: of two concurrent redeems the second waits, then sees
 * the code used. */
#include "features/premium/premium.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <sodium.h>

#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "store/pg.h"
#include "store/redis.h"

#define STATUS_TTL_S 300
#define FILL_TICKET_MS 5000
#define DAY_MS 86400000LL
#define HISTORY_SHOWN 20
#define CODE_CHARS 20
#define CODE_GROUP 5
#define CODE_TEXT_MAX 32 /* "GH-" + 20 + 3 dashes + NUL = 27 */
#define CODES_MAX 100
#define CODE_DAYS_MAX 3650
#define WHAT_MAX 200

/* round(epoch ms) of a timestamptz column, NULL stays NULL. */
#define MS(col) "round(extract(epoch FROM " col ") * 1000)::bigint"

/* KEYS[1] cache key, KEYS[2] fill ticket; ARGV[1] token, ARGV[2] value, ARGV[3] ttl. */
static const char FILL_LUA[] = "if redis.call('GET', KEYS[2]) == ARGV[1] then "
                               "redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) "
                               "redis.call('DEL', KEYS[2]) return 1 end return 0";

/* KEYS[1] fill ticket; ARGV[1] token: a reader that could not read PostgreSQL
 * gives its ticket back, so the next reader may fill. */
static const char RELEASE_LUA[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                  "return redis.call('DEL', KEYS[1]) end return 0";

/* Crockford's base32: no I, L, O, U. */
static const char CODE_ALPHABET[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* ------------------------------------------------------------------------ */
/* tiers, limits, sources */

static const char *const limit_names[] = {GH_PREMIUM_LIMIT_ROLE_PANELS, GH_PREMIUM_LIMIT_TRIGGERS,
                                          GH_PREMIUM_LIMIT_GIVEAWAYS};
static const char *const limit_titles[] = {"role panels", "triggers", "active giveaways"};
#define N_LIMITS (sizeof(limit_names) / sizeof(limit_names[0]))

static const char *const unlocks_free[] = {
    "Every feature's commands and settings",
    "3 role panels, 10 triggers, 2 active giveaways",
    NULL,
};
static const char *const unlocks_premium[] = {
    "Custom embed color", "25 role panels", "100 triggers", "20 active giveaways at once", NULL,
};
static const char *const unlocks_pro[] = {
    "Everything in Premium",
    "Unlimited role panels, triggers and giveaways",
    "AI assistant knowledge base (coming in a later release)",
    NULL,
};

static const struct tier {
    const char *name;
    const char *title;
    int limits[N_LIMITS]; /* -1 = unlimited, in limit_names order */
    const char *const *unlocks;
} tiers[GH_PREMIUM_MAX_RANK + 1] = {
    {"free", "Free", {3, 10, 2}, unlocks_free},
    {"premium", "Guildhall Premium", {25, 100, 20}, unlocks_premium},
    {"pro", "Guildhall Pro", {-1, -1, -1}, unlocks_pro},
};

static const char *const source_names[] = {
#define GH_PREMIUM_SRC_NAME(id, name) name,
    GH_PREMIUM_SOURCES(GH_PREMIUM_SRC_NAME)
#undef GH_PREMIUM_SRC_NAME
};

const char *gh_premium_tier_name(int rank)
{
    return rank >= 0 && rank <= GH_PREMIUM_MAX_RANK ? tiers[rank].name : tiers[0].name;
}

const char *gh_premium_tier_title(int rank)
{
    return rank >= 0 && rank <= GH_PREMIUM_MAX_RANK ? tiers[rank].title : tiers[0].title;
}

int gh_premium_tier_rank(const char *name)
{
    for (int i = 0; name && i <= GH_PREMIUM_MAX_RANK; i++)
        if (strcmp(tiers[i].name, name) == 0)
            return i;
    return GH_EINVAL;
}

const char *gh_premium_source_name(enum gh_premium_source s)
{
    return (unsigned)s < GH_PREMIUM_SRC_COUNT ? source_names[s] : NULL;
}

static int limit_index(const char *what)
{
    for (size_t i = 0; what && i < N_LIMITS; i++)
        if (strcmp(limit_names[i], what) == 0)
            return (int)i;
    return -1;
}

int gh_premium_limit(int rank, const char *what)
{
    int i = limit_index(what);

    if (i < 0 || rank < 0 || rank > GH_PREMIUM_MAX_RANK)
        return 0;
    return tiers[rank].limits[i];
}

void gh_premium_evaluate(struct gh_premium *p, int64_t now_ms)
{
    if (p->tier <= 0 || p->tier > GH_PREMIUM_MAX_RANK) {
        p->tier = 0;
        p->effective = 0;
        p->status = "none";
        return;
    }
    if (p->expires_at == 0 || now_ms < p->expires_at) {
        p->effective = p->tier;
        p->status = strcmp(p->source, "trial") == 0 ? "trial" : "active";
    } else if (p->grace_until != 0 && now_ms < p->grace_until) {
        p->effective = p->tier;
        p->status = "grace";
    } else {
        p->effective = 0;
        p->status = "expired";
    }
}

int gh_premium_sku_rank(const struct gh_config *cfg, uint64_t sku_id)
{
    char list[sizeof(cfg->premium_skus)], *save = NULL, *item;
    int found = 0;

    if (!cfg || sku_id == 0)
        return 0;
    snprintf(list, sizeof(list), "%s", cfg->premium_skus);
    for (item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(item, ':'), *end;
        uint64_t id = 0;
        int rank;

        while (isspace((unsigned char)*item))
            item++;
        if (!*item)
            continue;
        if (!colon)
            return GH_EINVAL;
        *colon = '\0';
        for (end = colon - 1; end >= item && isspace((unsigned char)*end); end--)
            *end = '\0';
        for (colon++; isspace((unsigned char)*colon); colon++)
            ;
        for (end = colon + strlen(colon); end > colon && isspace((unsigned char)end[-1]); end--)
            end[-1] = '\0';
        rank = gh_premium_tier_rank(colon);
        if (gh_cstr_to_u64(item, &id) != GH_OK || id == 0 || rank < 1)
            return GH_EINVAL;
        if (id == sku_id && !found)
            found = rank;
    }
    return found;
}

/* "custom embed color" -> "Custom embed color". */
static void capitalised(const char *what, char *out, size_t n)
{
    snprintf(out, n, "%s", what);
    if (out[0])
        out[0] = (char)toupper((unsigned char)out[0]);
}

static const char *upgrade_url(const struct gh_config *cfg)
{
    return cfg && cfg->premium_url[0] ? cfg->premium_url : NULL;
}

int gh_premium_upgrade_text(const struct gh_config *cfg, int min_rank, const char *what, char *out, size_t n)
{
    char first[WHAT_MAX + 1];
    const char *url = upgrade_url(cfg);

    if (!out || n == 0 || !what || !what[0] || min_rank < 1 || min_rank > GH_PREMIUM_MAX_RANK)
        return GH_EINVAL;
    capitalised(what, first, sizeof(first));
    if (url)
        return gh_snprintf(out, n, "%s needs %s. Upgrade at %s", first, tiers[min_rank].title, url);
    return gh_snprintf(out, n, "%s needs %s.", first, tiers[min_rank].title);
}

int gh_premium_limit_text(const struct gh_config *cfg, int rank, const char *what, char *out, size_t n)
{
    const char *url = upgrade_url(cfg);
    char next[128] = "";
    int i = limit_index(what), rc;

    if (!out || n == 0 || i < 0 || rank < 0 || rank > GH_PREMIUM_MAX_RANK)
        return GH_EINVAL;
    if (tiers[rank].limits[i] < 0)
        return gh_snprintf(out, n, "There is no limit on %s on %s.", limit_titles[i], tiers[rank].title);
    for (int r = rank + 1; r <= GH_PREMIUM_MAX_RANK; r++) {
        int l = tiers[r].limits[i];
        if (l >= 0 && l <= tiers[rank].limits[i])
            continue;
        if (l < 0)
            snprintf(next, sizeof(next), " %s removes the limit.", tiers[r].title);
        else
            snprintf(next, sizeof(next), " %s raises it to %d.", tiers[r].title, l);
        break;
    }
    rc = gh_snprintf(out, n, "This server can have %d %s on its tier (%s).%s%s%s", tiers[rank].limits[i],
                     limit_titles[i], tiers[rank].title, next, next[0] && url ? " Upgrade at " : "",
                     next[0] && url ? url : "");
    return rc;
}

/* ------------------------------------------------------------------------ */
/* small helpers */

static void u64_text(char *out, size_t n, uint64_t v)
{
    snprintf(out, n, "%" PRIu64, v);
}

/* Text of an epoch-ms parameter; NULL (SQL NULL) for 0. */
static const char *ms_param(char *buf, size_t n, int64_t ms)
{
    if (ms == 0)
        return NULL;
    snprintf(buf, n, "%" PRId64, ms);
    return buf;
}

static int64_t ms_value(const PGresult *res, int row, int col)
{
    int64_t v = 0;

    if (PQgetisnull(res, row, col) || gh_cstr_to_i64(PQgetvalue(res, row, col), &v) != GH_OK)
        return 0;
    return v;
}

static int grace_days(const struct gh_ctx *ctx)
{
    return ctx->cfg && ctx->cfg->premium_grace_days > 0 ? ctx->cfg->premium_grace_days : 0;
}

static const char *corr_of(const struct gh_ctx *ctx)
{
    return ctx->log.corr[0] ? ctx->log.corr : NULL;
}

static int status_keys(uint64_t guild_id, char *key, char *fill, size_t n)
{
    if (gh_key_guild(key, n, (unsigned long long)guild_id, "premium", "status") != GH_OK)
        return GH_ETOOBIG;
    return gh_key_guild(fill, n, (unsigned long long)guild_id, "premium", "status:fill");
}

/* 24 hex characters; out has room for 25. */
static void random_token(char *out, size_t n)
{
    unsigned char b[12];

    if (n < 2 * sizeof(b) + 1)
        return;
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        memset(b, 0x5a, sizeof(b)); /* only ever compared with itself */
    sodium_bin2hex(out, n, b, sizeof(b));
}

/* ------------------------------------------------------------------------ */
/* reading the stored row */

/* One row always: the subscription (NULLs when none) and whether a trial was used. */
static const char SUB_SQL[] =
    "SELECT s.tier::text, s.source::text, s.source_ref, " MS("s.starts_at") ", " MS("s.expires_at") ", " MS(
        "s.grace_until") ", "
                         "EXISTS (SELECT 1 FROM premium_trials t WHERE t.guild_id = $1) "
                         "FROM (SELECT 1) one LEFT JOIN premium_subscriptions s ON s.guild_id = $1";

static void sub_from_row(const PGresult *res, struct gh_premium *p)
{
    memset(p, 0, sizeof(*p));
    if (!PQgetisnull(res, 0, 0)) {
        int r = gh_premium_tier_rank(PQgetvalue(res, 0, 0));
        p->tier = r > 0 ? r : 0;
        snprintf(p->source, sizeof(p->source), "%s", PQgetvalue(res, 0, 1));
        snprintf(p->source_ref, sizeof(p->source_ref), "%s", PQgetvalue(res, 0, 2));
        p->starts_at = ms_value(res, 0, 3);
        p->expires_at = ms_value(res, 0, 4);
        p->grace_until = ms_value(res, 0, 5);
    }
    p->trial_used = PQgetvalue(res, 0, 6)[0] == 't';
}

/* GH_OK or GH_EPG. Also used inside a change's transaction. */
static int read_sub(struct gh_ctx *ctx, const char *gid, struct gh_premium *p)
{
    const char *params[1] = {gid};
    PGresult *res;

    if (!ctx->pg)
        return GH_EPG;
    res = gh_pg_exec_prepared(ctx->pg, "gh_premium_sub", SUB_SQL, 1, params);
    if (!res)
        return GH_EPG;
    sub_from_row(res, p);
    PQclear(res);
    return GH_OK;
}

static char *cache_value(const struct gh_premium *p)
{
    char text[256];

    if (gh_snprintf(text, sizeof(text),
                    "{\"t\":%d,\"s\":\"%s\",\"r\":\"%s\",\"st\":%" PRId64 ",\"ex\":%" PRId64
                    ",\"gr\":%" PRId64 ",\"tu\":%d}",
                    p->tier, p->source, p->source_ref, p->starts_at, p->expires_at, p->grace_until,
                    p->trial_used) != GH_OK)
        return NULL;
    return strdup(text);
}

static int cache_parse(const char *text, struct gh_premium *p)
{
    json_object *root = NULL;
    int64_t t = 0, st = 0, ex = 0, gr = 0, tu = 0;
    const char *s, *r;
    int rc = GH_EJSON;

    memset(p, 0, sizeof(*p));
    if (gh_json_parse(text, strlen(text), 2, &root) != GH_OK || !root)
        goto out;
    s = gh_json_get_str(root, "s");
    r = gh_json_get_str(root, "r");
    if (!s || !r || gh_json_get_int(root, "t", &t) != GH_OK || gh_json_get_int(root, "st", &st) != GH_OK ||
        gh_json_get_int(root, "ex", &ex) != GH_OK || gh_json_get_int(root, "gr", &gr) != GH_OK ||
        gh_json_get_int(root, "tu", &tu) != GH_OK || t < 0 || t > GH_PREMIUM_MAX_RANK)
        goto out;
    p->tier = (int)t;
    snprintf(p->source, sizeof(p->source), "%s", s);
    snprintf(p->source_ref, sizeof(p->source_ref), "%s", r);
    p->starts_at = st;
    p->expires_at = ex;
    p->grace_until = gr;
    p->trial_used = tu != 0;
    rc = GH_OK;
out:
    json_object_put(root);
    return rc;
}

int gh_premium_get(struct gh_ctx *ctx, uint64_t guild_id, struct gh_premium *out)
{
    char key[128], fill[128], gid[24], token[32] = "";
    redisReply *rep = NULL;
    char *value = NULL;
    int rc = GH_EINVAL, ticket = 0;

    if (!ctx || !out || guild_id == 0)
        return GH_EINVAL;
    memset(out, 0, sizeof(*out));
    out->status = "none";
    if (status_keys(guild_id, key, fill, sizeof(key)) != GH_OK)
        return GH_ETOOBIG;
    u64_text(gid, sizeof(gid), guild_id);

    if (ctx->redis) {
        rep = gh_redis_cmd(ctx->redis, "GET %s", key);
        if (rep && rep->type == REDIS_REPLY_STRING) {
            if (cache_parse(rep->str, out) == GH_OK) {
                rc = GH_OK;
                goto out;
            }
            GH_WARN(&ctx->log, "premium: cached status %s is malformed; dropped", key);
            freeReplyObject(gh_redis_cmd(ctx->redis, "DEL %s", key));
        }
        if (rep && (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_NIL)) {
            freeReplyObject(rep);
            random_token(token, sizeof(token));
            rep = gh_redis_cmd(ctx->redis, "SET %s %s NX PX %d", fill, token, FILL_TICKET_MS);
            ticket = rep && rep->type == REDIS_REPLY_STATUS;
        } else if (!rep) {
            GH_DEBUG(&ctx->log, "premium: Redis unavailable, guild %s status read from PostgreSQL", gid);
        }
    }
    rc = read_sub(ctx, gid, out);
    if (rc != GH_OK) {
        GH_WARN(&ctx->log, "premium: status of guild %s unreadable: %s", gid,
                ctx->pg ? gh_pg_errmsg(ctx->pg) : "no database");
        if (ticket) {
            freeReplyObject(rep);
            rep = gh_redis_cmd(ctx->redis, "EVAL %s 1 %s %s", RELEASE_LUA, fill, token);
        }
        goto out;
    }
    if (ticket) {
        value = cache_value(out);
        if (value) {
            freeReplyObject(rep);
            rep = gh_redis_cmd(ctx->redis, "EVAL %s 2 %s %s %s %s %d", FILL_LUA, key, fill, token, value,
                               STATUS_TTL_S);
        }
    }
out:
    if (rc == GH_OK)
        gh_premium_evaluate(out, gh_now_ms());
    else {
        memset(out, 0, sizeof(*out));
        out->status = "none";
    }
    free(value);
    freeReplyObject(rep);
    return rc;
}

void gh_premium_invalidate(struct gh_ctx *ctx, uint64_t guild_id)
{
    char key[128], fill[128];
    redisReply *rep;

    if (!ctx || !ctx->redis || guild_id == 0 || status_keys(guild_id, key, fill, sizeof(key)) != GH_OK)
        return;
    rep = gh_redis_cmd(ctx->redis, "DEL %s %s", key, fill);
    if (!rep || rep->type == REDIS_REPLY_ERROR)
        GH_ERROR(&ctx->log,
                 "premium: could not drop the cached status %s (Redis down); it may be stale for up "
                 "to %d s",
                 key, STATUS_TTL_S);
    freeReplyObject(rep);
}

/* ------------------------------------------------------------------------ */
/* the gate */

/* A premium_denials row (best effort) and the warn line. */
static void refuse(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, int required, int effective,
                   const char *what)
{
    static const char sql[] =
        "INSERT INTO premium_denials (guild_id, user_id, required_tier, effective_tier, "
        "what, corr) VALUES ($1, $2, $3::premium_tier, $4::premium_tier, $5, $6)";
    char gid[24], uid[24], w[WHAT_MAX + 1];
    const char *params[6];
    struct gh_buf extra;

    u64_text(gid, sizeof(gid), guild_id);
    u64_text(uid, sizeof(uid), user_id);
    snprintf(w, sizeof(w), "%s", what);
    params[0] = gid;
    params[1] = user_id ? uid : NULL;
    params[2] = gh_premium_tier_name(required);
    params[3] = effective > 0 ? gh_premium_tier_name(effective) : NULL;
    params[4] = w;
    params[5] = corr_of(ctx);

    gh_buf_init(&extra, 1024);
    gh_buf_printf(&extra, "{\"premium_guild\":\"%s\",\"premium_user\":\"%s\",\"premium_what\":\"", gid, uid);
    gh_buf_append_json_escaped(&extra, w, strlen(w));
    gh_buf_printf(&extra, "\",\"required_tier\":\"%s\",\"effective_tier\":\"%s\"}",
                  gh_premium_tier_name(required), gh_premium_tier_name(effective));
    gh_log_fields(&ctx->log, GH_LOG_WARN, 0, gh_buf_cstr(&extra),
                  "premium: refused %s in guild %s for user %s: needs %s, has %s", w, gid, uid,
                  gh_premium_tier_name(required), gh_premium_tier_name(effective));
    gh_buf_cleanup(&extra);

    if (!ctx->pg || gh_pg_command(ctx->pg, sql, 6, params) != GH_OK)
        GH_ERROR(&ctx->log, "premium: denial of %s in guild %s not recorded: %s", w, gid,
                 ctx->pg ? gh_pg_errmsg(ctx->pg) : "no database");
}

int gh_premium_require(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, int min_rank,
                       const char *what)
{
    struct gh_premium p;
    int rc;

    if (!ctx || guild_id == 0 || !what || !what[0] || min_rank > GH_PREMIUM_MAX_RANK)
        return GH_EINVAL;
    if (min_rank <= 0)
        return GH_OK;
    rc = gh_premium_get(ctx, guild_id, &p);
    if (rc != GH_OK) {
        GH_WARN(&ctx->log, "premium: cannot tell whether guild %" PRIu64 " may use %s (%s); refused for now",
                guild_id, what, gh_strerror(rc));
        return GH_EPG;
    }
    if (p.effective >= min_rank)
        return GH_OK;
    refuse(ctx, guild_id, user_id, min_rank, p.effective, what);
    return GH_EPREMIUM;
}

int gh_premium_check_limit(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, const char *what,
                           long current_count)
{
    struct gh_premium p;
    char w[WHAT_MAX + 1];
    int i = limit_index(what), rc, limit, need = 0;

    if (!ctx || guild_id == 0 || i < 0 || current_count < 0)
        return GH_EINVAL;
    rc = gh_premium_get(ctx, guild_id, &p);
    if (rc != GH_OK) {
        GH_WARN(&ctx->log, "premium: cannot read the %s limit of guild %" PRIu64 " (%s); refused for now",
                what, guild_id, gh_strerror(rc));
        return GH_EPG;
    }
    limit = tiers[p.effective].limits[i];
    if (limit < 0 || current_count < limit)
        return GH_OK;
    /* The lowest tier that would allow one more. */
    for (int r = p.effective + 1; r <= GH_PREMIUM_MAX_RANK && !need; r++)
        if (tiers[r].limits[i] < 0 || current_count < tiers[r].limits[i])
            need = r;
    snprintf(w, sizeof(w), "%s limit", what);
    refuse(ctx, guild_id, user_id, need ? need : GH_PREMIUM_MAX_RANK, p.effective, w);
    return GH_EPREMIUM;
}

/* ------------------------------------------------------------------------ */
/* changes */

/* Locks the guilds row for the transaction. GH_OK, GH_ENOTFOUND, GH_EPG. */
static int lock_guild(struct gh_ctx *ctx, const char *gid)
{
    const char *params[1] = {gid};
    PGresult *res = gh_pg_exec_prepared(ctx->pg, "gh_premium_lock_guild",
                                        "SELECT id FROM guilds WHERE id = $1 FOR NO KEY UPDATE", 1, params);
    int rc;

    if (!res)
        return GH_EPG;
    rc = PQntuples(res) == 1 ? GH_OK : GH_ENOTFOUND;
    PQclear(res);
    return rc;
}

/* The stored subscription as JSON for audit_log and the API; NULL when none. */
static json_object *sub_json(const struct gh_premium *p)
{
    json_object *o;
    char iso[40];

    if (p->tier <= 0)
        return NULL;
    o = json_object_new_object();
    if (!o)
        return NULL;
    json_object_object_add(o, "tier", json_object_new_string(gh_premium_tier_name(p->tier)));
    json_object_object_add(o, "source", json_object_new_string(p->source));
    json_object_object_add(o, "source_ref", p->source_ref[0] ? json_object_new_string(p->source_ref) : NULL);
    gh_iso8601(p->starts_at, iso, sizeof(iso));
    json_object_object_add(o, "starts_at", json_object_new_string(iso));
    gh_iso8601(p->expires_at, iso, sizeof(iso));
    json_object_object_add(o, "expires_at", p->expires_at ? json_object_new_string(iso) : NULL);
    gh_iso8601(p->grace_until, iso, sizeof(iso));
    json_object_object_add(o, "grace_until", p->grace_until ? json_object_new_string(iso) : NULL);
    return o;
}

/* What a change writes. */
struct change {
    const char *action;            /* audit action: premium.grant, ... */
    enum gh_premium_source source; /* of the history row */
    const char *source_ref;        /* of the history row, NULL = none */
    int ended;                     /* history to_tier NULL */
    uint64_t actor_id;
    const char *reason;
};

/* Inside an open transaction: upserts the subscription to *after, writes the
 * history and audit rows. GH_OK or GH_EPG. */
static int write_change(struct gh_ctx *ctx, const char *gid, const struct gh_premium *before,
                        const struct gh_premium *after, const struct change *c)
{
    static const char upsert[] =
        "INSERT INTO premium_subscriptions (guild_id, tier, source, source_ref, starts_at, expires_at, "
        "grace_until, created_by, updated_by) VALUES ($1, $2::premium_tier, $3::premium_source, $4, "
        "to_timestamp($5::float8 / 1000), to_timestamp($6::float8 / 1000), to_timestamp($7::float8 / 1000), "
        "$8, $8) ON CONFLICT (guild_id) DO UPDATE SET tier = EXCLUDED.tier, source = EXCLUDED.source, "
        "source_ref = EXCLUDED.source_ref, starts_at = EXCLUDED.starts_at, expires_at = EXCLUDED.expires_at, "
        "grace_until = EXCLUDED.grace_until, updated_by = EXCLUDED.updated_by";
    static const char history[] =
        "INSERT INTO premium_history (guild_id, from_tier, to_tier, source, source_ref, expires_at, reason, "
        "actor_id) VALUES ($1, $2::premium_tier, $3::premium_tier, $4::premium_source, $5, "
        "to_timestamp($6::float8 / 1000), $7, $8)";
    static const char audit[] =
        "INSERT INTO audit_log (guild_id, actor_id, action, target, before, after, corr) "
        "VALUES ($1, $2, $3, 'premium', $4::jsonb, $5::jsonb, $6)";
    char st[24], ex[24], gr[24], ex2[24], actor[24];
    json_object *jb = sub_json(before), *ja = sub_json(after);
    const char *actor_p = NULL, *jb_text = NULL, *ja_text = NULL;
    int rc = GH_EPG;

    u64_text(actor, sizeof(actor), c->actor_id);
    if (c->actor_id)
        actor_p = actor;
    if (gh_pg_command(ctx->pg, upsert, 8,
                      (const char *const[]){gid, gh_premium_tier_name(after->tier), after->source,
                                            after->source_ref[0] ? after->source_ref : NULL,
                                            ms_param(st, sizeof(st), after->starts_at),
                                            ms_param(ex, sizeof(ex), after->expires_at),
                                            ms_param(gr, sizeof(gr), after->grace_until), actor_p}) != GH_OK)
        goto out;
    if (gh_pg_command(ctx->pg, history, 8,
                      (const char *const[]){
                          gid, before->effective > 0 ? gh_premium_tier_name(before->effective) : NULL,
                          c->ended ? NULL : gh_premium_tier_name(after->tier),
                          gh_premium_source_name(c->source), c->source_ref,
                          ms_param(ex2, sizeof(ex2), after->expires_at), c->reason, actor_p}) != GH_OK)
        goto out;
    if (jb)
        jb_text = json_object_to_json_string_ext(jb, JSON_C_TO_STRING_PLAIN);
    if (ja)
        ja_text = json_object_to_json_string_ext(ja, JSON_C_TO_STRING_PLAIN);
    if (gh_pg_command(ctx->pg, audit, 6,
                      (const char *const[]){gid, actor_p, c->action, jb_text, ja_text, corr_of(ctx)}) !=
        GH_OK)
        goto out;
    rc = GH_OK;
out:
    json_object_put(jb);
    json_object_put(ja);
    return rc;
}

/* Ends the transaction: commits when rc is GH_OK (a failed commit turns it
 * into GH_EPG), else rolls back. Logs failures with what. */
static int finish(struct gh_ctx *ctx, int rc, const char *what, const char *gid)
{
    if (rc == GH_OK && gh_pg_commit(ctx->pg) != GH_OK)
        rc = GH_EPG;
    if (rc != GH_OK)
        gh_pg_rollback(ctx->pg);
    if (rc == GH_EPG)
        GH_ERROR(&ctx->log, "premium: %s for guild %s failed: %s", what, gid ? gid : "-",
                 gh_pg_errmsg(ctx->pg));
    return rc;
}

static void set_source(struct gh_premium *p, enum gh_premium_source s, const char *ref)
{
    snprintf(p->source, sizeof(p->source), "%s", gh_premium_source_name(s));
    snprintf(p->source_ref, sizeof(p->source_ref), "%s", ref ? ref : "");
}

static int64_t grace_for(const struct gh_ctx *ctx, enum gh_premium_source s, int64_t expires_ms)
{
    if (expires_ms == 0)
        return 0;
    if (s == GH_PREMIUM_SRC_TRIAL)
        return expires_ms;
    return expires_ms + grace_days(ctx) * DAY_MS;
}

int gh_premium_grant(struct gh_ctx *ctx, uint64_t guild_id, int rank, enum gh_premium_source source,
                     const char *source_ref, int64_t starts_ms, int64_t expires_ms, uint64_t actor_id,
                     const char *reason)
{
    struct gh_premium before, after;
    struct change c = {"premium.grant", source, source_ref, 0, actor_id, reason};
    char gid[24];
    int rc;

    if (!ctx || guild_id == 0 || rank < 1 || rank > GH_PREMIUM_MAX_RANK || !gh_premium_source_name(source) ||
        starts_ms < 0 || expires_ms < 0 || (source_ref && strlen(source_ref) >= sizeof(after.source_ref)))
        return GH_EINVAL;
    if (starts_ms == 0)
        starts_ms = gh_now_ms();
    if (expires_ms && expires_ms < starts_ms)
        return GH_EINVAL;
    if (!ctx->pg)
        return GH_EPG;
    u64_text(gid, sizeof(gid), guild_id);
    if (gh_pg_begin(ctx->pg) != GH_OK)
        return finish(ctx, GH_EPG, "grant", gid);
    rc = lock_guild(ctx, gid);
    if (rc == GH_OK)
        rc = read_sub(ctx, gid, &before);
    if (rc == GH_OK) {
        gh_premium_evaluate(&before, gh_now_ms());
        after = before;
        after.tier = rank;
        set_source(&after, source, source_ref);
        after.starts_at = starts_ms;
        after.expires_at = expires_ms;
        after.grace_until = grace_for(ctx, source, expires_ms);
        rc = write_change(ctx, gid, &before, &after, &c);
    }
    rc = finish(ctx, rc, "grant", gid);
    if (rc == GH_OK) {
        gh_premium_invalidate(ctx, guild_id);
        GH_INFO(&ctx->log, "premium: guild %s granted %s (%s) until %" PRId64, gid,
                gh_premium_tier_name(rank), gh_premium_source_name(source), expires_ms);
    }
    return rc;
}

/* Inside a transaction with the guild locked and before read: ends the
 * subscription now (no grace). *changed = 0 when nothing was in force. */
static int end_now(struct gh_ctx *ctx, const char *gid, const struct gh_premium *before,
                   const struct change *c, int *changed)
{
    struct gh_premium after = *before;
    int64_t now = gh_now_ms();

    *changed = 0;
    if (before->effective == 0)
        return GH_OK;
    if (after.starts_at > now)
        after.starts_at = now;
    after.expires_at = now;
    after.grace_until = now;
    *changed = 1;
    return write_change(ctx, gid, before, &after, c);
}

int gh_premium_revoke(struct gh_ctx *ctx, uint64_t guild_id, uint64_t actor_id, const char *reason)
{
    struct gh_premium before;
    struct change c = {"premium.revoke", GH_PREMIUM_SRC_OPERATOR, NULL, 1, actor_id, reason};
    char gid[24];
    int rc, changed = 0;

    if (!ctx || guild_id == 0)
        return GH_EINVAL;
    if (!ctx->pg)
        return GH_EPG;
    u64_text(gid, sizeof(gid), guild_id);
    if (gh_pg_begin(ctx->pg) != GH_OK)
        return finish(ctx, GH_EPG, "revoke", gid);
    rc = lock_guild(ctx, gid);
    if (rc == GH_OK)
        rc = read_sub(ctx, gid, &before);
    if (rc == GH_OK) {
        gh_premium_evaluate(&before, gh_now_ms());
        rc = end_now(ctx, gid, &before, &c, &changed);
    }
    rc = finish(ctx, rc, "revoke", gid);
    if (rc == GH_OK && changed) {
        gh_premium_invalidate(ctx, guild_id);
        GH_INFO(&ctx->log, "premium: guild %s revoked (%s)", gid, reason ? reason : "no reason given");
    }
    return rc;
}

/* ---- codes ---- */

/* Canonical "GH-XXXXX-XXXXX-XXXXX-XXXXX" from what a person typed. GH_OK or GH_EINVAL. */
static int code_canonical(const char *in, char *out, size_t n)
{
    char raw[CODE_CHARS + 3];
    size_t len = 0, o = 0;

    if (!in || n < CODE_TEXT_MAX)
        return GH_EINVAL;
    for (; *in; in++) {
        char ch = (char)toupper((unsigned char)*in);
        if (ch == '-' || isspace((unsigned char)ch))
            continue;
        if (len >= sizeof(raw) - 1)
            return GH_EINVAL;
        raw[len++] = ch;
    }
    raw[len] = '\0';
    if (len == CODE_CHARS + 2 && raw[0] == 'G' && raw[1] == 'H') {
        memmove(raw, raw + 2, CODE_CHARS + 1);
        len = CODE_CHARS;
    }
    if (len != CODE_CHARS)
        return GH_EINVAL;
    o = (size_t)snprintf(out, n, "GH");
    for (size_t i = 0; i < CODE_CHARS; i++) {
        char ch = raw[i];
        if (ch == 'O')
            ch = '0';
        else if (ch == 'I' || ch == 'L')
            ch = '1';
        if (ch == '\0' || !strchr(CODE_ALPHABET, ch))
            return GH_EINVAL;
        if (i % CODE_GROUP == 0)
            out[o++] = '-';
        out[o++] = ch;
    }
    out[o] = '\0';
    return GH_OK;
}

static void code_hash(const char *canonical, char *hex, size_t n)
{
    unsigned char h[crypto_hash_sha256_BYTES];

    crypto_hash_sha256(h, (const unsigned char *)canonical, strlen(canonical));
    sodium_bin2hex(hex, n, h, sizeof(h));
}

/* A new random code. GH_OK or GH_EIO. */
static int code_new(char *out, size_t n)
{
    unsigned char b[CODE_CHARS];
    char raw[CODE_CHARS + 1];

    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        return GH_EIO;
    for (size_t i = 0; i < CODE_CHARS; i++)
        raw[i] = CODE_ALPHABET[b[i] & 31]; /* 256 is a multiple of 32: uniform */
    raw[CODE_CHARS] = '\0';
    sodium_memzero(b, sizeof(b));
    return code_canonical(raw, out, n);
}

int gh_premium_redeem(struct gh_ctx *ctx, uint64_t guild_id, const char *code, uint64_t actor_id)
{
    static const char find[] = "SELECT id::text, tier::text, days, " MS(
        "expires_at") ", redeemed_at IS NOT NULL, "
                      "expires_at IS NOT NULL AND expires_at <= now() "
                      "FROM premium_codes WHERE code_hash = $1 FOR UPDATE";
    static const char mark[] = "UPDATE premium_codes SET redeemed_guild_id = $2, redeemed_by = $3, "
                               "redeemed_at = now() WHERE id = $1 AND redeemed_at IS NULL";
    struct gh_premium before, after;
    struct change c = {"premium.redeem", GH_PREMIUM_SRC_CODE, NULL, 0, actor_id, "code redeemed"};
    char canonical[CODE_TEXT_MAX], hash[2 * crypto_hash_sha256_BYTES + 1], gid[24], actor[24], code_id[24];
    PGresult *res = NULL;
    int64_t now = gh_now_ms(), days = 0;
    int rc, rank;

    memset(&after, 0, sizeof(after));
    if (!ctx || guild_id == 0)
        return GH_EINVAL;
    if (code_canonical(code, canonical, sizeof(canonical)) != GH_OK) {
        GH_INFO(&ctx->log, "premium: redeem refused in guild %" PRIu64 ": not shaped like a code", guild_id);
        return GH_EINVAL;
    }
    code_hash(canonical, hash, sizeof(hash));
    sodium_memzero(canonical, sizeof(canonical));
    if (!ctx->pg)
        return GH_EPG;
    u64_text(gid, sizeof(gid), guild_id);
    u64_text(actor, sizeof(actor), actor_id);
    if (gh_pg_begin(ctx->pg) != GH_OK)
        return finish(ctx, GH_EPG, "redeem", gid);
    rc = lock_guild(ctx, gid);
    if (rc != GH_OK)
        goto out;
    rc = GH_EPG;
    res = gh_pg_exec_prepared(ctx->pg, "gh_premium_code_find", find, 1, (const char *const[]){hash});
    if (!res)
        goto out;
    rc = GH_ENOTFOUND;
    if (PQntuples(res) != 1)
        goto out;
    snprintf(code_id, sizeof(code_id), "%s", PQgetvalue(res, 0, 0));
    rank = gh_premium_tier_rank(PQgetvalue(res, 0, 1));
    days = atoll(PQgetvalue(res, 0, 2));
    rc = GH_ECONFLICT;
    if (PQgetvalue(res, 0, 4)[0] == 't')
        goto out;
    rc = GH_EEXPIRED;
    if (PQgetvalue(res, 0, 5)[0] == 't')
        goto out;
    rc = read_sub(ctx, gid, &before);
    if (rc != GH_OK)
        goto out;
    gh_premium_evaluate(&before, now);
    rc = GH_ECONFLICT;
    if (rank < 1 || before.effective > rank)
        goto out;
    after = before;
    after.tier = rank;
    set_source(&after, GH_PREMIUM_SRC_CODE, code_id);
    if (before.effective == rank && before.tier == rank) {
        /* Same tier in force (active or in grace): extend from its expiry. */
        if (before.expires_at)
            after.expires_at = before.expires_at + days * DAY_MS;
    } else {
        after.starts_at = now;
        after.expires_at = now + days * DAY_MS;
    }
    after.grace_until = grace_for(ctx, GH_PREMIUM_SRC_CODE, after.expires_at);
    rc = GH_EPG;
    if (gh_pg_command(ctx->pg, mark, 3, (const char *const[]){code_id, gid, actor_id ? actor : NULL}) !=
        GH_OK)
        goto out;
    c.source_ref = code_id;
    rc = write_change(ctx, gid, &before, &after, &c);
out:
    PQclear(res);
    rc = finish(ctx, rc, "redeem", gid);
    if (rc == GH_OK) {
        gh_premium_invalidate(ctx, guild_id);
        GH_INFO(&ctx->log, "premium: guild %s redeemed code %s (%s, %" PRId64 " days)", gid, code_id,
                gh_premium_tier_name(after.tier), days);
    } else if (rc != GH_EPG) {
        GH_INFO(&ctx->log, "premium: redeem refused in guild %s: %s", gid,
                rc == GH_ENOTFOUND ? "unknown code or guild" : gh_strerror(rc));
    }
    return rc;
}

int gh_premium_codes_create(struct gh_ctx *ctx, int rank, int days, int count, uint64_t actor_id,
                            json_object **codes_out)
{
    static const char ins[] =
        "INSERT INTO premium_codes (code_hash, tier, days, created_by) "
        "SELECT h, $2::premium_tier, $3::int, $4 FROM unnest($1::text[]) AS h RETURNING id";
    static const char audit[] = "INSERT INTO audit_log (guild_id, actor_id, action, target, after, corr) "
                                "VALUES (NULL, $1, 'premium.codes', $2, $3::jsonb, $4)";
    struct gh_buf hashes;
    json_object *codes = NULL, *after = NULL, *ids = NULL;
    PGresult *res = NULL;
    char code[CODE_TEXT_MAX], hash[2 * crypto_hash_sha256_BYTES + 1], days_text[16], actor[24];
    const char *actor_p = NULL;
    int rc = GH_EINVAL;

    if (codes_out)
        *codes_out = NULL;
    if (!ctx || !codes_out || rank < 1 || rank > GH_PREMIUM_MAX_RANK || days < 1 || days > CODE_DAYS_MAX ||
        count < 1 || count > CODES_MAX)
        return GH_EINVAL;
    if (!ctx->pg)
        return GH_EPG;
    gh_buf_init(&hashes, (size_t)CODES_MAX * (sizeof(hash) + 1) + 8);
    rc = GH_ENOMEM;
    codes = json_object_new_array();
    after = json_object_new_object();
    ids = json_object_new_array();
    if (!codes || !after || !ids)
        goto out;
    gh_buf_puts(&hashes, "{");
    for (int i = 0; i < count; i++) {
        rc = code_new(code, sizeof(code));
        if (rc != GH_OK) {
            GH_ERROR(&ctx->log, "premium: no randomness for codes");
            goto out;
        }
        code_hash(code, hash, sizeof(hash));
        gh_buf_printf(&hashes, "%s%s", i ? "," : "", hash);
        json_object_array_add(codes, json_object_new_string(code));
        sodium_memzero(code, sizeof(code));
    }
    gh_buf_puts(&hashes, "}");
    snprintf(days_text, sizeof(days_text), "%d", days);
    u64_text(actor, sizeof(actor), actor_id);
    if (actor_id)
        actor_p = actor;
    rc = GH_EPG;
    if (gh_pg_begin(ctx->pg) != GH_OK)
        goto out;
    res = gh_pg_exec(
        ctx->pg, ins, 4,
        (const char *const[]){gh_buf_cstr(&hashes), gh_premium_tier_name(rank), days_text, actor_p});
    if (!res || PQntuples(res) != count)
        goto rollback;
    for (int i = 0; i < count; i++)
        json_object_array_add(ids, json_object_new_string(PQgetvalue(res, i, 0)));
    json_object_object_add(after, "tier", json_object_new_string(gh_premium_tier_name(rank)));
    json_object_object_add(after, "days", json_object_new_int(days));
    json_object_object_add(after, "count", json_object_new_int(count));
    json_object_object_add(after, "ids", ids);
    ids = NULL;
    if (gh_pg_command(ctx->pg, audit, 4,
                      (const char *const[]){actor_p, gh_premium_tier_name(rank),
                                            json_object_to_json_string_ext(after, JSON_C_TO_STRING_PLAIN),
                                            corr_of(ctx)}) != GH_OK)
        goto rollback;
    if (gh_pg_commit(ctx->pg) != GH_OK)
        goto rollback;
    rc = GH_OK;
    *codes_out = codes;
    codes = NULL;
    GH_INFO(&ctx->log, "premium: %d %s code(s) of %d days issued by %s", count, gh_premium_tier_name(rank),
            days, actor);
    goto out;
rollback:
    GH_ERROR(&ctx->log, "premium: issuing codes failed: %s", gh_pg_errmsg(ctx->pg));
    gh_pg_rollback(ctx->pg);
out:
    PQclear(res);
    json_object_put(ids);
    json_object_put(after);
    json_object_put(codes);
    gh_buf_cleanup(&hashes);
    return rc;
}

/* ---- trial ---- */

int gh_premium_start_trial(struct gh_ctx *ctx, uint64_t guild_id, uint64_t actor_id)
{
    static const char ins[] =
        "INSERT INTO premium_trials (guild_id, started_by, starts_at, ends_at) "
        "VALUES ($1, $2, to_timestamp($3::float8 / 1000), to_timestamp($4::float8 / 1000)) "
        "ON CONFLICT (guild_id) DO NOTHING RETURNING guild_id";
    struct gh_premium before, after;
    struct change c = {"premium.trial", GH_PREMIUM_SRC_TRIAL, NULL, 0, actor_id, "trial started"};
    char gid[24], actor[24], st[24], en[24];
    PGresult *res = NULL;
    int64_t now = gh_now_ms();
    int days = ctx && ctx->cfg ? ctx->cfg->premium_trial_days : 0, rc;

    memset(&before, 0, sizeof(before));
    if (!ctx || guild_id == 0)
        return GH_EINVAL;
    if (days <= 0) {
        GH_INFO(&ctx->log,
                "premium: trial refused in guild %" PRIu64 ": trials are off (PREMIUM_TRIAL_DAYS=0)",
                guild_id);
        return GH_EINVAL;
    }
    if (!ctx->pg)
        return GH_EPG;
    u64_text(gid, sizeof(gid), guild_id);
    u64_text(actor, sizeof(actor), actor_id);
    if (gh_pg_begin(ctx->pg) != GH_OK)
        return finish(ctx, GH_EPG, "trial", gid);
    rc = lock_guild(ctx, gid);
    if (rc != GH_OK)
        goto out;
    rc = read_sub(ctx, gid, &before);
    if (rc != GH_OK)
        goto out;
    gh_premium_evaluate(&before, now);
    rc = GH_ECONFLICT;
    if (before.trial_used || before.effective >= GH_PREMIUM_PREMIUM)
        goto out;
    after = before;
    after.tier = GH_PREMIUM_PREMIUM;
    set_source(&after, GH_PREMIUM_SRC_TRIAL, NULL);
    after.starts_at = now;
    after.expires_at = now + days * DAY_MS;
    after.grace_until = grace_for(ctx, GH_PREMIUM_SRC_TRIAL, after.expires_at);
    rc = GH_EPG;
    res = gh_pg_exec(ctx->pg, ins, 4,
                     (const char *const[]){gid, actor_id ? actor : NULL, ms_param(st, sizeof(st), now),
                                           ms_param(en, sizeof(en), after.expires_at)});
    if (!res)
        goto out;
    rc = GH_ECONFLICT;
    if (PQntuples(res) != 1)
        goto out;
    rc = write_change(ctx, gid, &before, &after, &c);
out:
    PQclear(res);
    rc = finish(ctx, rc, "trial", gid);
    if (rc == GH_OK) {
        gh_premium_invalidate(ctx, guild_id);
        GH_INFO(&ctx->log, "premium: guild %s started its %d-day trial", gid, days);
    } else if (rc == GH_ECONFLICT) {
        GH_INFO(&ctx->log, "premium: trial refused in guild %s: %s", gid,
                before.trial_used ? "already used" : "a paid tier is in force");
    }
    return rc;
}

/* ---- entitlements ---- */

/* Epoch ms of "2024-05-01T12:00:00[.ffffff](Z|+HH:MM|-HH:MM|)". GH_OK or GH_EINVAL. */
static int parse_iso_ms(const char *s, int64_t *out)
{
    struct tm tm;
    int y, mo, d, h, mi, sec, n = 0, frac_ms = 0, off = 0;
    const char *p;
    time_t t;

    memset(&tm, 0, sizeof(tm));
    if (!s || sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n < 19)
        return GH_EINVAL;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || h < 0 ||
        mi < 0 || sec < 0)
        return GH_EINVAL;
    p = s + n;
    if (*p == '.') {
        int digits = 0;
        for (p++; isdigit((unsigned char)*p); p++, digits++)
            if (digits < 3)
                frac_ms = frac_ms * 10 + (*p - '0');
        if (digits == 0)
            return GH_EINVAL;
        for (; digits < 3; digits++)
            frac_ms *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh = 0, om = 0, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 && sscanf(p + 1, "%2d%2d%n", &oh, &om, &k) != 2)
            return GH_EINVAL;
        if (oh > 23 || om > 59 || oh < 0 || om < 0)
            return GH_EINVAL;
        off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
        p += 1 + k;
    }
    if (*p)
        return GH_EINVAL;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return GH_EINVAL;
    *out = ((int64_t)t - off) * 1000 + frac_ms;
    return GH_OK;
}

/* An optional date member: missing or null -> 0. GH_OK or GH_EINVAL. */
static int date_member(json_object *o, const char *key, int64_t *out)
{
    json_object *v = NULL;

    *out = 0;
    if (!json_object_object_get_ex(o, key, &v) || !v)
        return GH_OK;
    if (!json_object_is_type(v, json_type_string))
        return GH_EINVAL;
    return parse_iso_ms(json_object_get_string(v), out);
}

struct entitlement {
    uint64_t id, sku_id, guild_id, user_id;
    int64_t starts_ms, ends_ms;
    int deleted;
};

static int entitlement_parse(const char *event_type, json_object *e, struct entitlement *out)
{
    int is_delete, flag = 0;

    memset(out, 0, sizeof(*out));
    if (!event_type || !e || !json_object_is_type(e, json_type_object))
        return GH_EINVAL;
    if (strcmp(event_type, "ENTITLEMENT_DELETE") == 0)
        is_delete = 1;
    else if (strcmp(event_type, "ENTITLEMENT_CREATE") == 0 || strcmp(event_type, "ENTITLEMENT_UPDATE") == 0)
        is_delete = 0;
    else
        return GH_EINVAL;
    out->id = gh_json_get_snowflake(e, "id");
    out->sku_id = gh_json_get_snowflake(e, "sku_id");
    out->guild_id = gh_json_get_snowflake(e, "guild_id");
    out->user_id = gh_json_get_snowflake(e, "user_id");
    if (!out->id || !out->sku_id)
        return GH_EINVAL;
    if (gh_json_get_bool(e, "deleted", &flag) == GH_EINVAL)
        return GH_EINVAL;
    if (date_member(e, "starts_at", &out->starts_ms) != GH_OK ||
        date_member(e, "ends_at", &out->ends_ms) != GH_OK)
        return GH_EINVAL;
    out->deleted = is_delete || flag;
    return GH_OK;
}

/* Upserts the entitlement row; *changed = 0 when the stored row already said
 * the same (then nothing else may happen). *deleted: the stored flag, which
 * never goes back to false. GH_OK or GH_EPG. */
static int entitlement_upsert(struct gh_ctx *ctx, const char *gid, const struct entitlement *e, int rank,
                              json_object *raw, int *changed, int *deleted)
{
    static const char sql[] =
        "INSERT INTO premium_entitlements AS p (entitlement_id, guild_id, sku_id, user_id, tier, starts_at, "
        "ends_at, deleted, raw) VALUES ($1, $2, $3, $4, $5::premium_tier, to_timestamp($6::float8 / 1000), "
        "to_timestamp($7::float8 / 1000), $8::boolean, $9::jsonb) "
        "ON CONFLICT (entitlement_id) DO UPDATE SET guild_id = EXCLUDED.guild_id, sku_id = EXCLUDED.sku_id, "
        "user_id = EXCLUDED.user_id, tier = EXCLUDED.tier, starts_at = EXCLUDED.starts_at, "
        "ends_at = EXCLUDED.ends_at, deleted = p.deleted OR EXCLUDED.deleted, raw = EXCLUDED.raw "
        "WHERE (p.guild_id, p.sku_id, p.user_id, p.tier, p.starts_at, p.ends_at, p.deleted) IS DISTINCT FROM "
        "(EXCLUDED.guild_id, EXCLUDED.sku_id, EXCLUDED.user_id, EXCLUDED.tier, EXCLUDED.starts_at, "
        "EXCLUDED.ends_at, p.deleted OR EXCLUDED.deleted) RETURNING deleted";
    char id[24], sku[24], uid[24], st[24], en[24];
    PGresult *res;

    u64_text(id, sizeof(id), e->id);
    u64_text(sku, sizeof(sku), e->sku_id);
    u64_text(uid, sizeof(uid), e->user_id);
    res = gh_pg_exec_prepared(
        ctx->pg, "gh_premium_entitlement_upsert", sql, 9,
        (const char *const[]){id, gid, sku, e->user_id ? uid : NULL, gh_premium_tier_name(rank),
                              ms_param(st, sizeof(st), e->starts_ms), ms_param(en, sizeof(en), e->ends_ms),
                              e->deleted ? "true" : "false",
                              json_object_to_json_string_ext(raw, JSON_C_TO_STRING_PLAIN)});
    if (!res)
        return GH_EPG;
    *changed = PQntuples(res) == 1;
    *deleted = *changed && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return GH_OK;
}

int gh_premium_entitlement(struct gh_ctx *ctx, const char *event_type, json_object *entitlement)
{
    struct gh_premium before, after;
    struct entitlement e;
    struct change c = {"premium.entitlement", GH_PREMIUM_SRC_ENTITLEMENT, NULL, 0, 0, NULL};
    char gid[24], eid[24];
    int64_t now = gh_now_ms();
    int rc, rank, changed = 0, deleted = 0, wrote = 0;

    if (!ctx)
        return GH_EINVAL;
    rc = entitlement_parse(event_type, entitlement, &e);
    if (rc != GH_OK) {
        GH_WARN(&ctx->log, "premium: %s event with a malformed entitlement ignored",
                event_type ? event_type : "?");
        return rc;
    }
    u64_text(eid, sizeof(eid), e.id);
    rank = gh_premium_sku_rank(ctx->cfg, e.sku_id);
    if (rank < 0) {
        GH_ERROR(&ctx->log, "premium: PREMIUM_SKUS is malformed; entitlement %s not applied", eid);
        return GH_ECONFIG;
    }
    if (rank == 0 || !e.guild_id) {
        GH_INFO(&ctx->log, "premium: entitlement %s ignored (%s, sku %" PRIu64 ")", eid,
                rank == 0 ? "SKU not in PREMIUM_SKUS" : "no guild", e.sku_id);
        return GH_OK;
    }
    if (!ctx->pg)
        return GH_EPG;
    u64_text(gid, sizeof(gid), e.guild_id);
    if (gh_pg_begin(ctx->pg) != GH_OK)
        return finish(ctx, GH_EPG, "entitlement", gid);
    rc = lock_guild(ctx, gid);
    if (rc == GH_OK)
        rc = entitlement_upsert(ctx, gid, &e, rank, entitlement, &changed, &deleted);
    if (rc != GH_OK || !changed)
        goto out;
    rc = read_sub(ctx, gid, &before);
    if (rc != GH_OK)
        goto out;
    gh_premium_evaluate(&before, now);
    c.source_ref = eid;
    if (deleted) {
        c.ended = 1;
        c.reason = "entitlement deleted";
        if (strcmp(before.source, "entitlement") == 0 && strcmp(before.source_ref, eid) == 0)
            rc = end_now(ctx, gid, &before, &c, &wrote);
        goto out;
    }
    if (before.effective > rank &&
        !(strcmp(before.source, "entitlement") == 0 && strcmp(before.source_ref, eid) == 0)) {
        GH_INFO(&ctx->log, "premium: entitlement %s (%s) recorded; guild %s keeps %s", eid,
                gh_premium_tier_name(rank), gid, gh_premium_tier_name(before.effective));
        goto out;
    }
    after = before;
    after.tier = rank;
    set_source(&after, GH_PREMIUM_SRC_ENTITLEMENT, eid);
    after.starts_at = e.starts_ms ? e.starts_ms : now;
    after.expires_at = e.ends_ms;
    if (after.expires_at && after.expires_at < after.starts_at)
        after.starts_at = after.expires_at;
    after.grace_until = grace_for(ctx, GH_PREMIUM_SRC_ENTITLEMENT, after.expires_at);
    if (before.tier == after.tier && strcmp(before.source, after.source) == 0 &&
        strcmp(before.source_ref, after.source_ref) == 0 && before.expires_at == after.expires_at &&
        before.starts_at == after.starts_at)
        goto out; /* the subscription already says so */
    c.reason = strcmp(event_type, "ENTITLEMENT_CREATE") == 0 ? "entitlement created" : "entitlement updated";
    rc = write_change(ctx, gid, &before, &after, &c);
    wrote = rc == GH_OK;
out:
    rc = finish(ctx, rc, "entitlement", gid);
    if (rc == GH_OK && wrote) {
        gh_premium_invalidate(ctx, e.guild_id);
        GH_INFO(&ctx->log, "premium: guild %s %s by entitlement %s", gid,
                deleted ? "ended" : gh_premium_tier_name(rank), eid);
    } else if (rc == GH_OK && !changed) {
        GH_DEBUG(&ctx->log, "premium: %s for entitlement %s changed nothing (replay)", event_type, eid);
    } else if (rc == GH_ENOTFOUND) {
        GH_WARN(&ctx->log, "premium: entitlement %s for guild %s, which has no guilds row; not applied", eid,
                gid);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* the API body */

static json_object *iso_or_null(int64_t ms)
{
    char iso[40];

    if (ms == 0)
        return NULL;
    gh_iso8601(ms, iso, sizeof(iso));
    return json_object_new_string(iso);
}

static json_object *tiers_json(void)
{
    json_object *arr = json_object_new_array();

    if (!arr)
        return NULL;
    for (int r = 0; r <= GH_PREMIUM_MAX_RANK; r++) {
        json_object *t = json_object_new_object(), *unlocks = json_object_new_array(),
                    *limits = json_object_new_object();
        if (!t || !unlocks || !limits) {
            json_object_put(t);
            json_object_put(unlocks);
            json_object_put(limits);
            json_object_put(arr);
            return NULL;
        }
        for (size_t i = 0; tiers[r].unlocks[i]; i++)
            json_object_array_add(unlocks, json_object_new_string(tiers[r].unlocks[i]));
        for (size_t i = 0; i < N_LIMITS; i++)
            json_object_object_add(limits, limit_names[i],
                                   tiers[r].limits[i] < 0 ? NULL : json_object_new_int(tiers[r].limits[i]));
        json_object_object_add(t, "name", json_object_new_string(tiers[r].name));
        json_object_object_add(t, "title", json_object_new_string(tiers[r].title));
        json_object_object_add(t, "rank", json_object_new_int(r));
        json_object_object_add(t, "unlocks", unlocks);
        json_object_object_add(t, "limits", limits);
        json_object_array_add(arr, t);
    }
    return arr;
}

static json_object *text_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : json_object_new_string(PQgetvalue(res, row, col));
}

int gh_premium_status_json(struct gh_ctx *ctx, uint64_t guild_id, json_object **out)
{
    /* One row per change, newest first; one row of NULLs when there is no
     * history; no row when the guild is unknown. */
    static const char sql[] = "SELECT h.to_tier::text, h.from_tier::text, h.source::text, h.source_ref, " MS(
        "h.expires_at") ", "
                        "h.reason, h.actor_id::text, " MS(
                            "h.created_at") " FROM guilds g LEFT JOIN LATERAL "
                                            "(SELECT * FROM premium_history x WHERE x.guild_id = g.id ORDER "
                                            "BY x.created_at DESC, x.id DESC "
                                            "LIMIT 20) h ON true WHERE g.id = $1";
    struct gh_premium p;
    json_object *o = NULL, *hist = NULL, *tl = NULL;
    PGresult *res = NULL;
    char gid[24];
    int rc = GH_EINVAL, days;

    if (out)
        *out = NULL;
    if (!ctx || !out || guild_id == 0)
        return GH_EINVAL;
    if (!ctx->pg)
        return GH_EPG;
    u64_text(gid, sizeof(gid), guild_id);
    rc = GH_EPG;
    res = gh_pg_exec_prepared(ctx->pg, "gh_premium_history", sql, 1, (const char *const[]){gid});
    if (!res)
        goto out;
    rc = GH_ENOTFOUND;
    if (PQntuples(res) == 0)
        goto out;
    rc = gh_premium_get(ctx, guild_id, &p);
    if (rc != GH_OK)
        goto out;
    rc = GH_ENOMEM;
    o = json_object_new_object();
    hist = json_object_new_array();
    tl = tiers_json();
    if (!o || !hist || !tl)
        goto out;
    for (int i = 0; i < PQntuples(res) && i < HISTORY_SHOWN; i++) {
        json_object *h;
        if (PQgetisnull(res, i, 2)) /* the LEFT JOIN's empty row */
            continue;
        h = json_object_new_object();
        if (!h)
            goto out;
        json_object_object_add(
            h, "tier", json_object_new_string(PQgetisnull(res, i, 0) ? "free" : PQgetvalue(res, i, 0)));
        json_object_object_add(
            h, "from_tier", json_object_new_string(PQgetisnull(res, i, 1) ? "free" : PQgetvalue(res, i, 1)));
        json_object_object_add(h, "source", json_object_new_string(PQgetvalue(res, i, 2)));
        json_object_object_add(h, "source_ref", text_or_null(res, i, 3));
        json_object_object_add(h, "expires_at", iso_or_null(ms_value(res, i, 4)));
        json_object_object_add(h, "reason", text_or_null(res, i, 5));
        json_object_object_add(h, "actor_id", text_or_null(res, i, 6));
        json_object_object_add(h, "created_at", iso_or_null(ms_value(res, i, 7)));
        json_object_array_add(hist, h);
    }
    days = ctx->cfg ? ctx->cfg->premium_trial_days : 0;
    json_object_object_add(o, "tier", json_object_new_string(gh_premium_tier_name(p.tier)));
    json_object_object_add(o, "effective_tier", json_object_new_string(gh_premium_tier_name(p.effective)));
    json_object_object_add(o, "status", json_object_new_string(p.status));
    json_object_object_add(o, "source", p.source[0] ? json_object_new_string(p.source) : NULL);
    json_object_object_add(o, "starts_at", p.tier ? iso_or_null(p.starts_at) : NULL);
    json_object_object_add(o, "expires_at", iso_or_null(p.expires_at));
    json_object_object_add(o, "grace_until", iso_or_null(p.grace_until));
    json_object_object_add(o, "trial_used", json_object_new_boolean(p.trial_used));
    json_object_object_add(
        o, "trial_available",
        json_object_new_boolean(days > 0 && !p.trial_used && p.effective < GH_PREMIUM_PREMIUM));
    json_object_object_add(o, "trial_days", json_object_new_int(days > 0 ? days : 0));
    json_object_object_add(o, "upgrade_url",
                           upgrade_url(ctx->cfg) ? json_object_new_string(upgrade_url(ctx->cfg)) : NULL);
    json_object_object_add(o, "tiers", tl);
    tl = NULL;
    json_object_object_add(o, "history", hist);
    hist = NULL;
    *out = o;
    o = NULL;
    rc = GH_OK;
out:
    if (rc == GH_EPG)
        GH_ERROR(&ctx->log, "premium: status of guild %s unreadable: %s", gid, gh_pg_errmsg(ctx->pg));
    PQclear(res);
    json_object_put(tl);
    json_object_put(hist);
    json_object_put(o);
    return rc;
}
