/* store.c - moderation cases in PostgreSQL, active-warning counts in Redis,
 * and warning decay (sql/0007_moderation.up.sql).
 *
 * Numbers. A case is created in one transaction: the guilds row is created
 * if missing, then the guild's mod_case_counters row is upserted
 * (INSERT ... ON CONFLICT DO UPDATE last_number + 1 RETURNING), which locks
 * that row until commit. Case creation is therefore serialised per guild
 * (other guilds never wait), the counter and the case commit together, and
 * a rolled-back creation gives its number back: numbers are gapless.
 *
 * Duplicates. With the counter locked, a SELECT looks for a case of the
 * guild with the same interaction_id: a second delivery of one interaction
 * waits on the lock for the first to commit, then finds its case, rolls back
 * (so no number is consumed) and returns that case with *duplicate = 1. The
 * UNIQUE (guild_id, interaction_id) is the backstop.
 *
 * Warn counts. A warning counts while status is active and expires_at is
 * NULL or in the future (so one past its expiry stops counting before the
 * hourly decay marks it). The count that drives escalation is taken inside
 * the creating transaction after the insert: with the counter lock held,
 * concurrent warns of one guild see 1, 2, 3, ... exactly once each. Redis
 * keeps a copy at bot:{<g>}:moderation:warns:<user> for 24 h:
 *   - a create raises it to its count after commit, never lowers it (a Lua
 *     max), so two creates whose SETs arrive out of order leave the larger;
 *   - a void, a failed settle and the decay recount after their commit and
 *     SET the count (it may go down);
 *   - a reader that misses counts in PostgreSQL and fills with SET NX, so it
 *     never overwrites a count written meanwhile by a change.
 * Redis down: every count comes from PostgreSQL; nothing fails.
 *
 * Audit. A reason edit and a void write an audit_log row (before/after) in
 * their own transaction. */
#include "features/moderation/moderation.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "store/pg.h"
#include "store/redis.h"
#include "store/timers.h"

#define WARNS_TTL_S 86400
#define DECAY_BATCH 1000
#define LIST_DEFAULT_LIMIT 25
#define LIST_MAX_LIMIT 100

/* round(epoch ms) of a timestamptz column; NULL stays NULL. */
#define MS(col) "round(extract(epoch FROM " col ") * 1000)::bigint"

/* The columns every case read returns, in the order row_to_case reads them. */
#define CASE_COLS                                                                                            \
    "id, guild_id, number, type::text, status::text, target_id, moderator_id, reason, duration_s, " MS(      \
        "created_at") ", " MS("expires_at") ", refs_case, interaction_id, target_roles::text, error, "       \
                                            "voided_by, void_reason, lift::text, lift_error"
#define N_CASE_COLS 19

/* A warning that counts. */
#define WARN_COUNTS "type = 'WARN' AND status = 'active' AND (expires_at IS NULL OR expires_at > now())"

static const char COUNT_SQL[] =
    "SELECT count(*) FROM mod_cases WHERE guild_id = $1 AND target_id = $2 AND " WARN_COUNTS;

/* KEYS[1] count key; ARGV[1] count, ARGV[2] ttl: raise, never lower. */
static const char MAX_LUA[] = "local c = tonumber(redis.call('GET', KEYS[1])) "
                              "if c == nil or c < tonumber(ARGV[1]) then "
                              "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1 end return 0";

static const char *const type_names[] = {
#define GH_MOD_TYPE_NAME(id, name) name,
    GH_MOD_CASE_TYPES(GH_MOD_TYPE_NAME)
#undef GH_MOD_TYPE_NAME
};

static const char *const status_names[] = {"pending", "active", "inactive", "void", "failed"};
static const char *const lift_names[] = {"none", "pending", "done", "failed"};

#define N_STATUS ((int)(sizeof(status_names) / sizeof(status_names[0])))
#define N_LIFT ((int)(sizeof(lift_names) / sizeof(lift_names[0])))

const char *gh_mod_type_name(enum gh_mod_type t)
{
    return (unsigned)t < GH_MOD_TYPE_COUNT ? type_names[t] : "UNKNOWN";
}

int gh_mod_type_parse(const char *name)
{
    for (int i = 0; name && i < GH_MOD_TYPE_COUNT; i++)
        if (strcasecmp(type_names[i], name) == 0)
            return i;
    return -1;
}

const char *gh_mod_status_name(enum gh_mod_status s)
{
    return (int)s >= 0 && (int)s < N_STATUS ? status_names[s] : "unknown";
}

static int status_parse(const char *name)
{
    for (int i = 0; i < N_STATUS; i++)
        if (strcmp(status_names[i], name) == 0)
            return i;
    return -1;
}

static const char *lift_name(enum gh_mod_lift l)
{
    return (int)l >= 0 && (int)l < N_LIFT ? lift_names[l] : NULL;
}

static int lift_parse(const char *name)
{
    for (int i = 0; i < N_LIFT; i++)
        if (strcmp(lift_names[i], name) == 0)
            return i;
    return -1;
}

void gh_mod_case_cleanup(struct gh_mod_case *c)
{
    if (!c)
        return;
    json_object_put(c->target_roles);
    c->target_roles = NULL;
}

/* ------------------------------------------------------------------------ */
/* helpers */

static const char *u64_text(char *buf, size_t n, uint64_t v)
{
    snprintf(buf, n, "%" PRIu64, v);
    return buf;
}

static const char *i64_text(char *buf, size_t n, int64_t v)
{
    snprintf(buf, n, "%" PRId64, v);
    return buf;
}

/* NULL for 0: the SQL NULL of optional ids. */
static const char *opt_u64(char *buf, size_t n, uint64_t v)
{
    return v ? u64_text(buf, n, v) : NULL;
}

static const char *opt_i64(char *buf, size_t n, int64_t v)
{
    return v ? i64_text(buf, n, v) : NULL;
}

static const char *opt_str(const char *s)
{
    return s && s[0] ? s : NULL;
}

static const char *corr_of(const struct gh_ctx *ctx)
{
    return ctx->log.corr[0] ? ctx->log.corr : NULL;
}

static const char *pg_err(const struct gh_ctx *ctx)
{
    return ctx->pg ? gh_pg_errmsg(ctx->pg) : "no database";
}

/* UTF-8 code points (continuation bytes not counted). */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;

    for (; s && *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

static int reason_ok(const char *s)
{
    return !s || utf8_chars(s) <= GH_MOD_REASON_MAX;
}

/* Copies src into dst (size n), cut at a UTF-8 character boundary. */
static void copy_utf8(char *dst, size_t n, const char *src)
{
    size_t len;

    if (n == 0)
        return;
    len = src ? strlen(src) : 0;
    if (len >= n) {
        len = n - 1;
        while (len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80)
            len--;
    }
    if (len)
        memcpy(dst, src, len);
    dst[len] = '\0';
}

static uint64_t u64_value(const PGresult *res, int row, int col)
{
    uint64_t v = 0;

    if (PQgetisnull(res, row, col) || gh_cstr_to_u64(PQgetvalue(res, row, col), &v) != GH_OK)
        return 0;
    return v;
}

static int64_t i64_value(const PGresult *res, int row, int col)
{
    int64_t v = 0;

    if (PQgetisnull(res, row, col) || gh_cstr_to_i64(PQgetvalue(res, row, col), &v) != GH_OK)
        return 0;
    return v;
}

/* Fills c from row `row` of a CASE_COLS result. */
static void row_to_case(const PGresult *res, int row, struct gh_mod_case *c)
{
    int t, s, l;

    memset(c, 0, sizeof(*c));
    c->id = i64_value(res, row, 0);
    c->guild_id = u64_value(res, row, 1);
    c->number = i64_value(res, row, 2);
    t = gh_mod_type_parse(PQgetvalue(res, row, 3));
    c->type = t >= 0 ? (enum gh_mod_type)t : GH_MOD_NOTE;
    s = status_parse(PQgetvalue(res, row, 4));
    c->status = s >= 0 ? (enum gh_mod_status)s : GH_MOD_PENDING;
    c->target_id = u64_value(res, row, 5);
    c->moderator_id = u64_value(res, row, 6);
    copy_utf8(c->reason, sizeof(c->reason), PQgetvalue(res, row, 7));
    c->duration_s = i64_value(res, row, 8);
    c->created_ms = i64_value(res, row, 9);
    c->expires_ms = i64_value(res, row, 10);
    c->refs_case = i64_value(res, row, 11);
    c->interaction_id = u64_value(res, row, 12);
    if (!PQgetisnull(res, row, 13)) {
        const char *text = PQgetvalue(res, row, 13);
        if (gh_json_parse(text, strlen(text), 4, &c->target_roles) != GH_OK)
            c->target_roles = NULL;
    }
    copy_utf8(c->error, sizeof(c->error), PQgetvalue(res, row, 14));
    c->voided_by = u64_value(res, row, 15);
    copy_utf8(c->void_reason, sizeof(c->void_reason), PQgetvalue(res, row, 16));
    l = lift_parse(PQgetvalue(res, row, 17));
    c->lift = l >= 0 ? (enum gh_mod_lift)l : GH_MOD_LIFT_NONE;
    copy_utf8(c->lift_error, sizeof(c->lift_error), PQgetvalue(res, row, 18));
}

/* Ends a transaction: commits when rc is GH_OK (a failed commit makes it
 * GH_EPG), else rolls back. Logs a PostgreSQL failure with what. */
static int finish(struct gh_ctx *ctx, int rc, const char *what, const char *gid)
{
    if (rc == GH_OK && gh_pg_commit(ctx->pg) != GH_OK)
        rc = GH_EPG;
    if (rc != GH_OK)
        gh_pg_rollback(ctx->pg);
    if (rc == GH_EPG)
        GH_ERROR(&ctx->log, "moderation: %s in guild %s failed: %s", what, gid, gh_pg_errmsg(ctx->pg));
    return rc;
}

static int warns_key(uint64_t guild_id, uint64_t user_id, char *key, size_t n)
{
    return gh_key_guild(key, n, (unsigned long long)guild_id, "moderation", "warns:%" PRIu64, user_id);
}

/* Counts in PostgreSQL (outside or inside a transaction). GH_OK or GH_EPG. */
static int count_pg(struct gh_ctx *ctx, const char *gid, const char *uid, int *count)
{
    const char *params[2] = {gid, uid};
    PGresult *res;
    int64_t n = 0;

    if (!ctx->pg)
        return GH_EPG;
    res = gh_pg_exec_prepared(ctx->pg, "gh_mod_warn_count", COUNT_SQL, 2, params);
    if (!res)
        return GH_EPG;
    if (PQntuples(res) == 1)
        n = i64_value(res, 0, 0);
    PQclear(res);
    *count = (int)n;
    return GH_OK;
}

/* After a commit that may have lowered the count: recount and SET it, or
 * drop the key when PostgreSQL cannot tell (the next read rebuilds). */
void gh_mod_warns_refresh(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id)
{
    char gid[24], uid[24], key[128];
    int count = 0;

    if (count_pg(ctx, u64_text(gid, sizeof(gid), guild_id), u64_text(uid, sizeof(uid), user_id), &count) ==
        GH_OK) {
        gh_mod_warns_cache(ctx, guild_id, user_id, count);
        return;
    }
    GH_WARN(&ctx->log, "moderation: warnings of %s in guild %s not recounted (%s); cached count dropped", uid,
            gid, pg_err(ctx));
    if (ctx->redis && warns_key(guild_id, user_id, key, sizeof(key)) == GH_OK)
        freeReplyObject(gh_redis_cmd(ctx->redis, "DEL %s", key));
}

/* ------------------------------------------------------------------------ */
/* warn counts */

/* Redis did not take a count: a durable recount (PostgreSQL row first) puts
 * the right one in once Redis answers again, whatever copy it kept. One per
 * (guild, user) per minute. */
static void warns_schedule_recount(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id)
{
    char key[96];
    char uid[24];
    json_object *payload = json_object_new_object();

    (void)snprintf(key, sizeof(key), "recount:%" PRIu64 ":%lld", user_id, (long long)(gh_now_ms() / 60000));
    json_object_object_add(payload, "user_id", json_object_new_string(u64_text(uid, sizeof(uid), user_id)));
    int64_t timer_id = 0;
    int rc = gh_timers_schedule(ctx, guild_id, "moderation:recount", payload, key, gh_now_ms(), &timer_id);
    if (rc != GH_OK && rc != GH_EDUPLICATE)
        GH_ERROR(&ctx->log,
                 "moderation: warn count of %s in guild %" PRIu64 " may stay stale in Redis until its TTL",
                 uid, guild_id);
    json_object_put(payload);
}

void gh_mod_warns_cache(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, int count)
{
    char key[128];
    redisReply *rep;

    if (!ctx || !ctx->redis || guild_id == 0 || user_id == 0 || count < 0 ||
        warns_key(guild_id, user_id, key, sizeof(key)) != GH_OK)
        return;
    rep = gh_redis_cmd(ctx->redis, "SET %s %d EX %d", key, count, WARNS_TTL_S);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        GH_WARN(&ctx->log, "moderation: warn count %s not cached (Redis %s); a recount is scheduled", key,
                rep ? rep->str : "down");
        warns_schedule_recount(ctx, guild_id, user_id);
    }
    freeReplyObject(rep);
}

/* After a create: raise the cached count to count, never lower it. */
static void warns_raise(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, int count)
{
    char key[128];
    redisReply *rep;

    if (!ctx->redis || warns_key(guild_id, user_id, key, sizeof(key)) != GH_OK)
        return;
    rep = gh_redis_cmd(ctx->redis, "EVAL %s 1 %s %d %d", MAX_LUA, key, count, WARNS_TTL_S);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        GH_WARN(&ctx->log, "moderation: warn count %s not cached (Redis %s); a recount is scheduled", key,
                rep ? rep->str : "down");
        warns_schedule_recount(ctx, guild_id, user_id);
    }
    freeReplyObject(rep);
}

int gh_mod_warns_count(struct gh_ctx *ctx, uint64_t guild_id, uint64_t user_id, int *count)
{
    char key[128], gid[24], uid[24];
    redisReply *rep = NULL;
    int miss = 0, rc;

    if (!ctx || !count || guild_id == 0 || user_id == 0 ||
        warns_key(guild_id, user_id, key, sizeof(key)) != GH_OK)
        return GH_EINVAL;
    *count = 0;
    if (ctx->redis) {
        rep = gh_redis_cmd(ctx->redis, "GET %s", key);
        if (rep && rep->type == REDIS_REPLY_STRING) {
            int64_t v = 0;
            if (gh_cstr_to_i64(rep->str, &v) == GH_OK && v >= 0 && v <= INT32_MAX) {
                *count = (int)v;
                freeReplyObject(rep);
                return GH_OK;
            }
            GH_WARN(&ctx->log, "moderation: cached warn count %s is malformed; rebuilt", key);
            freeReplyObject(gh_redis_cmd(ctx->redis, "DEL %s", key));
        }
        miss = rep && (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_NIL);
        freeReplyObject(rep);
        rep = NULL;
    }
    rc = count_pg(ctx, u64_text(gid, sizeof(gid), guild_id), u64_text(uid, sizeof(uid), user_id), count);
    if (rc != GH_OK) {
        GH_ERROR(&ctx->log, "moderation: warnings of %s in guild %s unreadable: %s", uid, gid, pg_err(ctx));
        return rc;
    }
    if (miss) {
        /* NX: a change that wrote a count meanwhile knows better than this read. */
        rep = gh_redis_cmd(ctx->redis, "SET %s %d EX %d NX", key, *count, WARNS_TTL_S);
        freeReplyObject(rep);
    }
    return GH_OK;
}

/* ------------------------------------------------------------------------ */
/* cases */

static int timed(enum gh_mod_type t)
{
    return t == GH_MOD_TIMEOUT || t == GH_MOD_TEMPBAN || t == GH_MOD_MUTE || t == GH_MOD_JAIL;
}

/* Inside the creating transaction, counter locked: the case of this
 * interaction, if any. 1 found (out filled), 0 none, GH_EPG. */
int gh_mod_case_create(struct gh_ctx *ctx, const struct gh_mod_case *in, struct gh_mod_case *out,
                       int *duplicate, int *warn_count)
{
    /* One round trip does the whole transaction (sql/0008_mod_case_create.up.sql): guild row, next
     * number under the counter row's lock, duplicate check, insert, and a WARN's count. */
    static const char create[] =
        "SELECT dup, warn_count, case_id FROM mod_case_create($1, $2::mod_case_type, "
        "$3::mod_case_status, $4, $5, $6, $7, $8::float8, $9, $10, $11::jsonb, $12)";
    static const char by_id[] = "SELECT " CASE_COLS " FROM mod_cases WHERE id = $1";
    char gid[24], target[24], mod[24], dur[24], exp[24], refs[24], iid[24], idtext[24];
    const char *roles = NULL;
    PGresult *res = NULL;
    int64_t expires_ms;
    int rc = GH_EINVAL, count = 0, dup;

    if (duplicate)
        *duplicate = 0;
    if (warn_count)
        *warn_count = 0;
    if (!ctx || !in || !out)
        return GH_EINVAL;
    memset(out, 0, sizeof(*out));
    if (in->guild_id == 0 || in->target_id == 0 || (unsigned)in->type >= GH_MOD_TYPE_COUNT ||
        (int)in->status < 0 || (int)in->status >= N_STATUS || in->status == GH_MOD_VOID ||
        in->duration_s < 0 || in->expires_ms < 0 || in->refs_case < 0 ||
        (in->guild_id | in->target_id | in->moderator_id | in->interaction_id) > INT64_MAX ||
        !reason_ok(in->reason) ||
        (in->target_roles && !json_object_is_type(in->target_roles, json_type_array)))
        return GH_EINVAL;
    if (in->status == GH_MOD_FAILED && !in->error[0])
        return GH_EINVAL;
    if (!ctx->pg)
        return GH_EPG;
    u64_text(gid, sizeof(gid), in->guild_id);

    expires_ms = in->expires_ms;
    if (expires_ms == 0 && in->type == GH_MOD_WARN) {
        struct gh_mod_settings s;
        gh_mod_settings_load(ctx, in->guild_id, &s); /* stores down: the defaults */
        if (s.warn_decay_s > 0)
            expires_ms = gh_now_ms() + s.warn_decay_s * 1000;
    } else if (expires_ms == 0 && timed(in->type) && in->duration_s > 0) {
        expires_ms = gh_now_ms() + in->duration_s * 1000;
    }
    if (in->target_roles)
        roles = json_object_to_json_string_ext(in->target_roles, JSON_C_TO_STRING_PLAIN);

    res = gh_pg_exec_prepared(
        ctx->pg, "gh_mod_case_create", create, 12,
        (const char *const[]){
            gid, gh_mod_type_name(in->type), gh_mod_status_name(in->status),
            u64_text(target, sizeof(target), in->target_id), opt_u64(mod, sizeof(mod), in->moderator_id),
            opt_str(in->reason), opt_i64(dur, sizeof(dur), in->duration_s),
            opt_i64(exp, sizeof(exp), expires_ms), opt_i64(refs, sizeof(refs), in->refs_case),
            opt_u64(iid, sizeof(iid), in->interaction_id), roles, opt_str(in->error)});
    if (!res || PQntuples(res) != 1) {
        /* 23503 on refs_case: the referenced case is not in this guild;
         * 23514: a CHECK refused a value. */
        const char *st = gh_pg_sqlstate(ctx->pg);
        rc = !res && (strcmp(st, "23503") == 0 || strcmp(st, "23514") == 0) ? GH_EINVAL : GH_EPG;
        if (rc == GH_EINVAL)
            GH_WARN(&ctx->log, "moderation: case refused in guild %s: %s", gid, gh_pg_errmsg(ctx->pg));
        if (rc == GH_EPG)
            GH_ERROR(&ctx->log, "moderation: case create in guild %s failed: %s", gid, gh_pg_errmsg(ctx->pg));
        PQclear(res);
        return rc;
    }
    dup = PQgetvalue(res, 0, 0)[0] == 't';
    count = (int)i64_value(res, 0, 1);
    (void)gh_snprintf(idtext, sizeof(idtext), "%s", PQgetvalue(res, 0, 2));
    PQclear(res);
    res = gh_pg_exec_prepared(ctx->pg, "gh_mod_case_by_id", by_id, 1, (const char *const[]){idtext});
    if (!res || PQntuples(res) != 1) {
        GH_ERROR(&ctx->log, "moderation: reading back a new case in guild %s failed: %s", gid,
                 gh_pg_errmsg(ctx->pg));
        PQclear(res);
        return GH_EPG;
    }
    row_to_case(res, 0, out);
    PQclear(res);
    if (dup) {
        if (duplicate)
            *duplicate = 1;
        GH_INFO(&ctx->log, "moderation: duplicate delivery of interaction %s in guild %s: case #%" PRId64,
                iid, gid, out->number);
        return GH_OK;
    }
    if (in->type == GH_MOD_WARN) {
        if (warn_count)
            *warn_count = count;
        warns_raise(ctx, in->guild_id, in->target_id, count);
    }
    return GH_OK;
}

int gh_mod_case_settle(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, enum gh_mod_status status,
                       const char *error)
{
    /* From pending, or again to the same status (a retried settle). */
    static const char sql[] =
        "UPDATE mod_cases SET status = $3::mod_case_status, error = CASE WHEN $3 = 'failed' THEN $4 ELSE "
        "error "
        "END WHERE guild_id = $1 AND number = $2 AND status IN ('pending', $3::mod_case_status) "
        "RETURNING type::text, target_id";
    static const char exists[] = "SELECT status::text FROM mod_cases WHERE guild_id = $1 AND number = $2";
    char gid[24], num[24];
    PGresult *res = NULL;
    int rc = GH_EPG, warn = 0;
    uint64_t target = 0;

    if (!ctx || guild_id == 0 || number <= 0 || (status != GH_MOD_ACTIVE && status != GH_MOD_FAILED))
        return GH_EINVAL;
    if (!ctx->pg)
        return GH_EPG;
    u64_text(gid, sizeof(gid), guild_id);
    i64_text(num, sizeof(num), number);
    if (status == GH_MOD_FAILED && !opt_str(error))
        error = "unknown error";
    res = gh_pg_exec_prepared(ctx->pg, "gh_mod_case_settle", sql, 4,
                              (const char *const[]){gid, num, gh_mod_status_name(status), error});
    if (!res)
        goto out;
    if (PQntuples(res) == 1) {
        warn = strcmp(PQgetvalue(res, 0, 0), "WARN") == 0;
        target = u64_value(res, 0, 1);
        rc = GH_OK;
        goto out;
    }
    PQclear(res);
    res = gh_pg_exec_prepared(ctx->pg, "gh_mod_case_status", exists, 2, (const char *const[]){gid, num});
    if (!res)
        goto out;
    rc = PQntuples(res) == 1 ? GH_ECONFLICT : GH_ENOTFOUND;
    GH_WARN(&ctx->log, "moderation: case #%s of guild %s not settled to %s: %s", num, gid,
            gh_mod_status_name(status), rc == GH_ECONFLICT ? PQgetvalue(res, 0, 0) : "no such case");
out:
    if (rc == GH_EPG)
        GH_ERROR(&ctx->log, "moderation: settling case #%s of guild %s failed: %s", num, gid, pg_err(ctx));
    PQclear(res);
    if (rc == GH_OK && warn && status == GH_MOD_FAILED)
        gh_mod_warns_refresh(ctx, guild_id, target);
    return rc;
}

int gh_mod_case_get(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, struct gh_mod_case *out)
{
    static const char sql[] = "SELECT " CASE_COLS " FROM mod_cases WHERE guild_id = $1 AND number = $2";
    char gid[24], num[24];
    PGresult *res;
    int rc;

    if (!ctx || !out)
        return GH_EINVAL;
    memset(out, 0, sizeof(*out));
    if (guild_id == 0 || number <= 0)
        return guild_id == 0 ? GH_EINVAL : GH_ENOTFOUND;
    if (!ctx->pg)
        return GH_EPG;
    res = gh_pg_exec_prepared(
        ctx->pg, "gh_mod_case_get", sql, 2,
        (const char *const[]){u64_text(gid, sizeof(gid), guild_id), i64_text(num, sizeof(num), number)});
    if (!res) {
        GH_ERROR(&ctx->log, "moderation: reading case #%s of guild %s failed: %s", num, gid, pg_err(ctx));
        return GH_EPG;
    }
    rc = PQntuples(res) == 1 ? GH_OK : GH_ENOTFOUND;
    if (rc == GH_OK)
        row_to_case(res, 0, out);
    PQclear(res);
    return rc;
}

/* Inside a transaction: the case row locked. 1 found, 0 not, GH_EPG. */
static int lock_case(struct gh_ctx *ctx, const char *gid, const char *num, PGresult **row)
{
    static const char sql[] = "SELECT status::text, type::text, target_id, reason FROM mod_cases "
                              "WHERE guild_id = $1 AND number = $2 FOR UPDATE";

    *row = gh_pg_exec_prepared(ctx->pg, "gh_mod_case_lock", sql, 2, (const char *const[]){gid, num});
    if (!*row)
        return GH_EPG;
    return PQntuples(*row) == 1;
}

static int audit(struct gh_ctx *ctx, const char *gid, const char *actor, const char *action, const char *num,
                 json_object *before, json_object *after)
{
    static const char sql[] =
        "INSERT INTO audit_log (guild_id, actor_id, action, target, before, after, corr) "
        "VALUES ($1, $2, $3, 'case:' || $4::text, $5::jsonb, $6::jsonb, $7)";

    return gh_pg_command(ctx->pg, sql, 7,
                         (const char *const[]){gid, actor, action, num,
                                               json_object_to_json_string_ext(before, JSON_C_TO_STRING_PLAIN),
                                               json_object_to_json_string_ext(after, JSON_C_TO_STRING_PLAIN),
                                               corr_of(ctx)});
}

static json_object *one_field(const char *key, const char *value)
{
    json_object *o = json_object_new_object();

    if (o)
        json_object_object_add(o, key, value ? json_object_new_string(value) : NULL);
    return o;
}

int gh_mod_case_set_reason(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, const char *reason,
                           uint64_t actor_id)
{
    static const char upd[] =
        "UPDATE mod_cases SET reason = $3, updated_by = $4 WHERE guild_id = $1 AND number = $2";
    char gid[24], num[24], actor[24];
    PGresult *row = NULL;
    json_object *before = NULL, *after = NULL;
    const char *actor_p;
    int rc, found;

    if (!ctx || guild_id == 0 || number <= 0 || !reason_ok(reason) || actor_id > INT64_MAX)
        return GH_EINVAL;
    if (!ctx->pg)
        return GH_EPG;
    u64_text(gid, sizeof(gid), guild_id);
    i64_text(num, sizeof(num), number);
    actor_p = opt_u64(actor, sizeof(actor), actor_id);
    reason = opt_str(reason);
    if (gh_pg_begin(ctx->pg) != GH_OK)
        return finish(ctx, GH_EPG, "reason edit", gid);
    found = lock_case(ctx, gid, num, &row);
    rc = found < 0 ? found : found ? GH_OK : GH_ENOTFOUND;
    if (rc != GH_OK)
        goto out;
    before = one_field("reason", PQgetisnull(row, 0, 3) ? NULL : PQgetvalue(row, 0, 3));
    after = one_field("reason", reason);
    if (!before || !after) {
        rc = GH_ENOMEM;
        goto out;
    }
    rc = gh_pg_command(ctx->pg, upd, 4, (const char *const[]){gid, num, reason, actor_p});
    if (rc == GH_OK)
        rc = audit(ctx, gid, actor_p, "moderation.case.reason", num, before, after);
out:
    PQclear(row);
    json_object_put(before);
    json_object_put(after);
    rc = finish(ctx, rc, "reason edit", gid);
    if (rc == GH_OK)
        GH_INFO(&ctx->log, "moderation: reason of case #%s in guild %s edited by %s", num, gid,
                actor_p ? actor_p : "Guildhall");
    return rc;
}

int gh_mod_case_void(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, const char *why,
                     uint64_t actor_id)
{
    static const char upd[] = "UPDATE mod_cases SET status = 'void', voided_by = $3, void_reason = $4, "
                              "voided_at = now(), updated_by = $3 WHERE guild_id = $1 AND number = $2";
    char gid[24], num[24], actor[24];
    PGresult *row = NULL;
    json_object *before = NULL, *after = NULL;
    const char *actor_p;
    uint64_t target = 0;
    int rc, found, warn = 0;

    if (!ctx || guild_id == 0 || number <= 0 || !reason_ok(why) || actor_id > INT64_MAX)
        return GH_EINVAL;
    if (!ctx->pg)
        return GH_EPG;
    u64_text(gid, sizeof(gid), guild_id);
    i64_text(num, sizeof(num), number);
    actor_p = opt_u64(actor, sizeof(actor), actor_id);
    why = opt_str(why);
    if (gh_pg_begin(ctx->pg) != GH_OK)
        return finish(ctx, GH_EPG, "void", gid);
    found = lock_case(ctx, gid, num, &row);
    rc = found < 0 ? found : found ? GH_OK : GH_ENOTFOUND;
    if (rc != GH_OK)
        goto out;
    if (strcmp(PQgetvalue(row, 0, 0), "void") == 0) {
        rc = GH_ECONFLICT;
        goto out;
    }
    warn = strcmp(PQgetvalue(row, 0, 1), "WARN") == 0;
    target = u64_value(row, 0, 2);
    before = one_field("status", PQgetvalue(row, 0, 0));
    after = one_field("status", "void");
    if (!before || !after) {
        rc = GH_ENOMEM;
        goto out;
    }
    json_object_object_add(after, "void_reason", why ? json_object_new_string(why) : NULL);
    rc = gh_pg_command(ctx->pg, upd, 4, (const char *const[]){gid, num, actor_p, why});
    if (rc == GH_OK)
        rc = audit(ctx, gid, actor_p, "moderation.case.void", num, before, after);
out:
    PQclear(row);
    json_object_put(before);
    json_object_put(after);
    rc = finish(ctx, rc, "void", gid);
    if (rc == GH_OK) {
        GH_INFO(&ctx->log, "moderation: case #%s in guild %s voided by %s", num, gid,
                actor_p ? actor_p : "Guildhall");
        if (warn)
            gh_mod_warns_refresh(ctx, guild_id, target);
    }
    return rc;
}

int gh_mod_case_set_lift(struct gh_ctx *ctx, uint64_t guild_id, int64_t number, enum gh_mod_lift lift,
                         const char *error)
{
    static const char sql[] = "UPDATE mod_cases SET lift = $3::mod_lift_state, lift_error = $4, "
                              "status = CASE WHEN $3 = 'done' AND status = 'active' THEN 'inactive' "
                              "ELSE status END WHERE guild_id = $1 AND number = $2";
    char gid[24], num[24];
    PGresult *res;
    int rc;

    if (!ctx || guild_id == 0 || number <= 0 || !lift_name(lift))
        return GH_EINVAL;
    if (!ctx->pg)
        return GH_EPG;
    res = gh_pg_exec_prepared(ctx->pg, "gh_mod_case_lift", sql, 4,
                              (const char *const[]){u64_text(gid, sizeof(gid), guild_id),
                                                    i64_text(num, sizeof(num), number), lift_name(lift),
                                                    lift == GH_MOD_LIFT_FAILED ? opt_str(error) : NULL});
    if (!res) {
        GH_ERROR(&ctx->log, "moderation: lift state of case #%s in guild %s not saved: %s", num, gid,
                 pg_err(ctx));
        return GH_EPG;
    }
    rc = strcmp(PQcmdTuples(res), "1") == 0 ? GH_OK : GH_ENOTFOUND;
    PQclear(res);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* list */

/* Parameters: $1 guild, $2 target, $3 moderator, $4 type, $5 status, $6 from
 * ms, $7 to ms (both inclusive), $8 text (reason contains it, % _ and \
 * taken literally: escaped here, in SQL, from the parameter). */
#define LIST_WHERE                                                                                           \
    " FROM mod_cases WHERE guild_id = $1 AND ($2::bigint IS NULL OR target_id = $2) "                        \
    "AND ($3::bigint IS NULL OR moderator_id = $3) AND ($4::mod_case_type IS NULL OR type = $4) "            \
    "AND ($5::mod_case_status IS NULL OR status = $5) "                                                      \
    "AND ($6::float8 IS NULL OR created_at >= to_timestamp($6 / 1000)) "                                     \
    "AND ($7::float8 IS NULL OR created_at <= to_timestamp($7 / 1000)) "                                     \
    "AND ($8::text IS NULL OR reason ILIKE '%' || replace(replace(replace($8, '\\', '\\\\'), '%', '\\%'), "  \
    "'_', '\\_') || '%')"

int gh_mod_case_list(struct gh_ctx *ctx, uint64_t guild_id, const struct gh_mod_filter *f, json_object **out,
                     int64_t *total)
{
    static const char count_sql[] = "SELECT count(*)" LIST_WHERE;
    static const char page_sql[] = "SELECT " CASE_COLS LIST_WHERE
                                   " AND ($9::bigint IS NULL OR number < $9) ORDER BY number DESC LIMIT $10";
    static const struct gh_mod_filter any = {0, 0, -1, -1, 0, 0, NULL, 0, 0};
    char gid[24], target[24], mod[24], from[24], to[24], before[24], limit[8];
    const char *params[10];
    PGresult *res = NULL;
    json_object *arr = NULL;
    int rc = GH_EPG, lim;

    if (out)
        *out = NULL;
    if (total)
        *total = 0;
    if (!ctx || !out || guild_id == 0)
        return GH_EINVAL;
    if (!f)
        f = &any;
    if (f->type < -1 || f->type >= GH_MOD_TYPE_COUNT || f->status < -1 || f->status >= N_STATUS ||
        f->from_ms < 0 || f->to_ms < 0 || f->before_number < 0 || f->limit < 0 ||
        (f->target_id | f->moderator_id) > INT64_MAX)
        return GH_EINVAL;
    if (!ctx->pg)
        return GH_EPG;
    lim = f->limit == 0 ? LIST_DEFAULT_LIMIT : f->limit > LIST_MAX_LIMIT ? LIST_MAX_LIMIT : f->limit;
    params[0] = u64_text(gid, sizeof(gid), guild_id);
    params[1] = opt_u64(target, sizeof(target), f->target_id);
    params[2] = opt_u64(mod, sizeof(mod), f->moderator_id);
    params[3] = f->type >= 0 ? gh_mod_type_name((enum gh_mod_type)f->type) : NULL;
    params[4] = f->status >= 0 ? gh_mod_status_name((enum gh_mod_status)f->status) : NULL;
    params[5] = opt_i64(from, sizeof(from), f->from_ms);
    params[6] = opt_i64(to, sizeof(to), f->to_ms);
    params[7] = opt_str(f->text);
    params[8] = opt_i64(before, sizeof(before), f->before_number);
    snprintf(limit, sizeof(limit), "%d", lim);
    params[9] = limit;

    res = gh_pg_exec_prepared(ctx->pg, "gh_mod_case_count", count_sql, 8, params);
    if (!res || PQntuples(res) != 1)
        goto out;
    if (total)
        *total = i64_value(res, 0, 0);
    PQclear(res);
    res = gh_pg_exec_prepared(ctx->pg, "gh_mod_case_page", page_sql, 10, params);
    if (!res)
        goto out;
    arr = json_object_new_array();
    if (!arr) {
        rc = GH_ENOMEM;
        goto out;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        struct gh_mod_case c;
        json_object *o;

        row_to_case(res, i, &c);
        o = gh_mod_case_json(&c);
        gh_mod_case_cleanup(&c);
        if (!o || json_object_array_add(arr, o) != 0) {
            json_object_put(o);
            rc = GH_ENOMEM;
            goto out;
        }
    }
    *out = arr;
    arr = NULL;
    rc = GH_OK;
out:
    if (rc == GH_EPG)
        GH_ERROR(&ctx->log, "moderation: listing cases of guild %s failed: %s", gid, pg_err(ctx));
    if (rc != GH_OK && total)
        *total = 0;
    json_object_put(arr);
    PQclear(res);
    return rc;
}

static json_object *snowflake_or_null(uint64_t v)
{
    char buf[24];

    return v ? json_object_new_string(u64_text(buf, sizeof(buf), v)) : NULL;
}

static json_object *string_or_null(const char *s)
{
    return s && s[0] ? json_object_new_string(s) : NULL;
}

static json_object *iso_or_null(int64_t ms)
{
    char iso[40];

    if (ms <= 0)
        return NULL;
    gh_iso8601(ms, iso, sizeof(iso));
    return json_object_new_string(iso);
}

json_object *gh_mod_case_json(const struct gh_mod_case *c)
{
    json_object *o;

    if (!c || !(o = json_object_new_object()))
        return NULL;
    json_object_object_add(o, "number", json_object_new_int64(c->number));
    json_object_object_add(o, "type", json_object_new_string(gh_mod_type_name(c->type)));
    json_object_object_add(o, "status", json_object_new_string(gh_mod_status_name(c->status)));
    json_object_object_add(o, "target_id", snowflake_or_null(c->target_id));
    json_object_object_add(o, "moderator_id", snowflake_or_null(c->moderator_id));
    json_object_object_add(o, "reason", string_or_null(c->reason));
    json_object_object_add(o, "duration_s", c->duration_s > 0 ? json_object_new_int64(c->duration_s) : NULL);
    json_object_object_add(o, "created_at", iso_or_null(c->created_ms));
    json_object_object_add(o, "expires_at", iso_or_null(c->expires_ms));
    json_object_object_add(o, "refs_case", c->refs_case > 0 ? json_object_new_int64(c->refs_case) : NULL);
    json_object_object_add(o, "target_roles", c->target_roles ? json_object_get(c->target_roles) : NULL);
    json_object_object_add(o, "error", string_or_null(c->error));
    json_object_object_add(o, "voided_by", snowflake_or_null(c->voided_by));
    json_object_object_add(o, "void_reason", string_or_null(c->void_reason));
    json_object_object_add(o, "lift",
                           json_object_new_string(lift_name(c->lift) ? lift_name(c->lift) : "none"));
    json_object_object_add(o, "lift_error", string_or_null(c->lift_error));
    return o;
}

/* ------------------------------------------------------------------------ */
/* decay */

struct pair {
    uint64_t guild_id, user_id;
};

static int pair_cmp(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;

    if (x->guild_id != y->guild_id)
        return x->guild_id < y->guild_id ? -1 : 1;
    return x->user_id < y->user_id ? -1 : x->user_id > y->user_id;
}

int gh_mod_decay(struct gh_ctx *ctx, int64_t *changed)
{
    /* In batches, so one run never holds a long lock; SKIP LOCKED: a warning
     * being voided right now is left for the void (or the next run). */
    static const char sql[] =
        "UPDATE mod_cases SET status = 'inactive' WHERE id IN (SELECT id FROM mod_cases WHERE type = 'WARN' "
        "AND "
        "status = 'active' AND expires_at <= now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED) "
        "RETURNING guild_id, target_id";
    char batch[16];
    struct pair *pairs = NULL;
    size_t n = 0, cap = 0;
    int64_t total = 0;
    int rc = GH_OK, rows;

    if (changed)
        *changed = 0;
    if (!ctx)
        return GH_EINVAL;
    if (!ctx->pg)
        return GH_EPG;
    snprintf(batch, sizeof(batch), "%d", DECAY_BATCH);
    do {
        PGresult *res = gh_pg_exec_prepared(ctx->pg, "gh_mod_decay", sql, 1, (const char *const[]){batch});
        if (!res) {
            GH_ERROR(&ctx->log, "moderation: warning decay failed after %" PRId64 " warning(s): %s", total,
                     pg_err(ctx));
            rc = GH_EPG;
            break;
        }
        rows = PQntuples(res);
        total += rows;
        for (int i = 0; i < rows; i++) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                struct pair *p = realloc(pairs, ncap * sizeof(*p));
                if (!p) {
                    rc = GH_ENOMEM;
                    break;
                }
                pairs = p;
                cap = ncap;
            }
            pairs[n].guild_id = u64_value(res, i, 0);
            pairs[n].user_id = u64_value(res, i, 1);
            n++;
        }
        PQclear(res);
    } while (rc == GH_OK && rows == DECAY_BATCH);

    /* Every affected count, once (also after a failure: what committed did). */
    if (n > 1)
        qsort(pairs, n, sizeof(*pairs), pair_cmp);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || pair_cmp(&pairs[i], &pairs[i - 1]) != 0)
            gh_mod_warns_refresh(ctx, pairs[i].guild_id, pairs[i].user_id);
    free(pairs);
    if (changed)
        *changed = total;
    if (total > 0)
        GH_INFO(&ctx->log, "moderation: %" PRId64 " warning(s) expired", total);
    return rc;
}
