/* settings.c - per-guild, per-feature settings documents.
 *
 * PostgreSQL (guild_settings) is the truth; Redis holds a copy per (guild,
 * feature) at bot:{<g>}:settings:<feature> for an hour, as
 * {"v":<version>,"doc":{...}} (a guild without a row is cached as v 0 and an
 * empty document, so the router's enabled check does not reach PostgreSQL on
 * every command).
 *
 * The read-fill race. A reader that misses, reads PostgreSQL, then fills the
 * cache can overwrite a newer write's invalidation with the old document:
 * reader reads v1, writer commits v2 and deletes the key, reader stores v1
 * for an hour. So a reader first takes a fill ticket (SET ...:fill <token> NX
 * PX 5000) before reading PostgreSQL, and fills only if its ticket is still
 * there (one Lua script); a writer deletes the key and the ticket after
 * committing. Whatever the interleaving, a reader that read before the commit
 * finds its ticket gone, and one that took its ticket after the delete read
 * after the commit.
 *
 * Writes: one transaction (row locked FOR UPDATE, version check, upsert with
 * version + 1, an audit_log row with before and after), then the cache key is
 * deleted. If Redis is down at that moment the old copy can outlive the write
 * until its TTL; that is logged as an error. */
#include "store/settings.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "store/pg.h"
#include "store/redis.h"

#define SETTINGS_TTL_S 3600
#define SETTINGS_FILL_TICKET_MS 5000
#define SETTINGS_PUT_TRIES 3

/* KEYS[1] cache key, KEYS[2] fill ticket; ARGV[1] token, ARGV[2] value, ARGV[3] ttl. */
static const char FILL_LUA[] = "if redis.call('GET', KEYS[2]) == ARGV[1] then "
                               "redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) "
                               "redis.call('DEL', KEYS[2]) return 1 end return 0";

__attribute__((format(printf, 3, 4))) static void slog(struct gh_ctx *ctx, enum gh_log_level lvl,
                                                       const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (!ctx->log.sink)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gh_log(&ctx->log, lvl, 0, "settings: %s", msg);
}

static int valid_feature(const char *f)
{
    size_t i;

    if (!f || !(f[0] >= 'a' && f[0] <= 'z'))
        return 0;
    for (i = 1; f[i]; i++)
        if (i >= 32 || !((f[i] >= 'a' && f[i] <= 'z') || (f[i] >= '0' && f[i] <= '9') || f[i] == '_'))
            return 0;
    return 1;
}

static int keys_for(uint64_t guild_id, const char *feature, char *key, char *fill, size_t size)
{
    if (gh_key_guild(key, size, (unsigned long long)guild_id, "settings", "%s", feature) != GH_OK)
        return GH_ETOOBIG;
    return gh_key_guild(fill, size, (unsigned long long)guild_id, "settings", "%s:fill", feature);
}

/* {"v":N,"doc":{...}} -> doc (new reference) and version. */
static int parse_cached(const char *text, json_object **doc, int *version)
{
    json_object *root = json_tokener_parse(text);
    json_object *v = NULL, *d = NULL;
    int rc = GH_EJSON;

    if (!root || !json_object_object_get_ex(root, "v", &v) || !json_object_object_get_ex(root, "doc", &d) ||
        !json_object_is_type(v, json_type_int) || !json_object_is_type(d, json_type_object))
        goto out;
    *version = json_object_get_int(v);
    *doc = json_object_get(d);
    rc = GH_OK;
out:
    json_object_put(root);
    return rc;
}

/* Text of {"v":version,"doc":doc}; caller frees. */
static char *cache_value(json_object *doc, int version)
{
    json_object *root = json_object_new_object();
    char *text = NULL;

    if (!root)
        return NULL;
    json_object_object_add(root, "v", json_object_new_int(version));
    json_object_object_add(root, "doc", json_object_get(doc));
    text = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
    json_object_put(root);
    return text;
}

static void random_token(char *out, size_t size)
{
    unsigned char b[12];
    size_t i;

    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        memset(b, 0x5a, sizeof(b)); /* only ever compared with itself */
    for (i = 0; i < sizeof(b) && 2 * i + 2 < size; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* Reads the row from PostgreSQL: doc (new reference, empty when no row) and version. */
static int read_pg(struct gh_ctx *ctx, uint64_t guild_id, const char *feature, json_object **doc,
                   int *version)
{
    static const char sql[] = "SELECT document::text, version FROM guild_settings "
                              "WHERE guild_id = $1 AND feature = $2";
    char gid[24];
    const char *params[2] = {gid, feature};
    PGresult *res = NULL;
    int rc = GH_EPG;

    if (!ctx->pg)
        return GH_EPG;
    snprintf(gid, sizeof(gid), "%llu", (unsigned long long)guild_id);
    res = gh_pg_exec_prepared(ctx->pg, "gh_settings_get", sql, 2, params);
    if (!res)
        goto out;
    if (PQntuples(res) == 0) {
        *doc = json_object_new_object();
        *version = 0;
        rc = *doc ? GH_OK : GH_ENOMEM;
        goto out;
    }
    *doc = json_tokener_parse(PQgetvalue(res, 0, 0));
    if (!*doc || !json_object_is_type(*doc, json_type_object)) {
        json_object_put(*doc);
        *doc = NULL;
        slog(ctx, GH_LOG_ERROR, "guild %llu feature %s: stored document is not a JSON object",
             (unsigned long long)guild_id, feature);
        rc = GH_EJSON;
        goto out;
    }
    *version = atoi(PQgetvalue(res, 0, 1));
    rc = GH_OK;
out:
    PQclear(res);
    return rc;
}

int gh_settings_get(struct gh_ctx *ctx, uint64_t guild_id, const char *feature, json_object **doc,
                    int *version)
{
    char key[160], fill[160], token[32] = "";
    redisReply *rep = NULL;
    char *value = NULL;
    int rc = GH_EINVAL, ticket = 0;

    if (!ctx || guild_id == 0 || !valid_feature(feature) || !doc || !version)
        return GH_EINVAL;
    *doc = NULL;
    *version = 0;
    if (keys_for(guild_id, feature, key, fill, sizeof(key)) != GH_OK)
        return GH_ETOOBIG;

    if (ctx->redis) {
        rep = gh_redis_cmd(ctx->redis, "GET %s", key);
        if (rep && rep->type == REDIS_REPLY_STRING) {
            if (parse_cached(rep->str, doc, version) == GH_OK) {
                rc = GH_OK;
                goto out;
            }
            slog(ctx, GH_LOG_WARN, "cached copy %s is malformed; dropped", key);
            freeReplyObject(gh_redis_cmd(ctx->redis, "DEL %s", key));
        }
        if (rep && (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_NIL)) {
            freeReplyObject(rep);
            random_token(token, sizeof(token));
            rep = gh_redis_cmd(ctx->redis, "SET %s %s NX PX %d", fill, token, SETTINGS_FILL_TICKET_MS);
            ticket = rep && rep->type == REDIS_REPLY_STATUS;
        }
    }

    rc = read_pg(ctx, guild_id, feature, doc, version);
    if (rc != GH_OK) {
        slog(ctx, GH_LOG_ERROR, "guild %llu feature %s: neither Redis nor PostgreSQL answered",
             (unsigned long long)guild_id, feature);
        goto out;
    }
    if (ticket) {
        value = cache_value(*doc, *version);
        if (value) {
            freeReplyObject(rep);
            rep = gh_redis_cmd(ctx->redis, "EVAL %s 2 %s %s %s %s %d", FILL_LUA, key, fill, token, value,
                               SETTINGS_TTL_S);
        }
    }
out:
    free(value);
    freeReplyObject(rep);
    return rc;
}

void gh_settings_invalidate(struct gh_ctx *ctx, uint64_t guild_id, const char *feature)
{
    char key[160], fill[160];
    redisReply *rep;

    if (!ctx || !ctx->redis || !valid_feature(feature) || keys_for(guild_id, feature, key, fill, sizeof(key)))
        return;
    rep = gh_redis_cmd(ctx->redis, "DEL %s %s", key, fill);
    if (!rep || rep->type == REDIS_REPLY_ERROR)
        slog(ctx, GH_LOG_ERROR,
             "could not drop the cached copy %s (Redis down); it may be stale for up to %d s", key,
             SETTINGS_TTL_S);
    freeReplyObject(rep);
}

/* One attempt of the write transaction. GH_OK, GH_ECONFLICT, GH_ENOTFOUND,
 * GH_EPG, or GH_EDUPLICATE when a concurrent first insert won the race (the
 * caller may try again). */
static int put_once(struct gh_ctx *ctx, const char *gid, const char *feature, const char *doc_text,
                    const char *actor, int expected_version, int *new_version)
{
    static const char sel[] = "SELECT document::text, version FROM guild_settings "
                              "WHERE guild_id = $1 AND feature = $2 FOR UPDATE";
    static const char ins[] = "INSERT INTO guild_settings (guild_id, feature, document, version, created_by, "
                              "updated_by) VALUES ($1, $2, $3::jsonb, 1, $4, $4) "
                              "ON CONFLICT (guild_id, feature) DO NOTHING RETURNING version";
    static const char upd[] = "UPDATE guild_settings SET document = $3::jsonb, version = version + 1, "
                              "updated_by = $4 WHERE guild_id = $1 AND feature = $2 RETURNING version";
    static const char audit[] =
        "INSERT INTO audit_log (guild_id, actor_id, action, target, before, after, corr) "
        "VALUES ($1, $2, 'settings.update', $3, $4::jsonb, $5::jsonb, $6)";
    PGresult *cur = NULL, *res = NULL;
    const char *before = NULL;
    int rc = GH_EPG, version = 0;

    if (gh_pg_begin(ctx->pg) != GH_OK)
        return GH_EPG;
    cur = gh_pg_exec_prepared(ctx->pg, "gh_settings_lock", sel, 2, (const char *const[]){gid, feature});
    if (!cur)
        goto out;
    if (PQntuples(cur) > 0) {
        before = PQgetvalue(cur, 0, 0);
        version = atoi(PQgetvalue(cur, 0, 1));
    }
    if (expected_version >= 0 && expected_version != version) {
        rc = GH_ECONFLICT;
        goto out;
    }
    if (version == 0)
        res = gh_pg_exec_prepared(ctx->pg, "gh_settings_insert", ins, 4,
                                  (const char *const[]){gid, feature, doc_text, actor});
    else
        res = gh_pg_exec_prepared(ctx->pg, "gh_settings_update", upd, 4,
                                  (const char *const[]){gid, feature, doc_text, actor});
    if (!res) {
        if (strcmp(gh_pg_sqlstate(ctx->pg), "23503") == 0)
            rc = GH_ENOTFOUND; /* no guilds row */
        goto out;
    }
    if (PQntuples(res) == 0) {
        rc = expected_version >= 0 ? GH_ECONFLICT : GH_EDUPLICATE;
        goto out;
    }
    *new_version = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    res = gh_pg_exec_prepared(ctx->pg, "gh_settings_audit", audit, 6,
                              (const char *const[]){gid, actor, feature, before, doc_text,
                                                    ctx->log.corr[0] ? ctx->log.corr : NULL});
    if (!res)
        goto out;
    if (gh_pg_commit(ctx->pg) != GH_OK)
        goto out;
    rc = GH_OK;
out:
    if (rc != GH_OK)
        gh_pg_rollback(ctx->pg);
    PQclear(res);
    PQclear(cur);
    return rc;
}

int gh_settings_put(struct gh_ctx *ctx, uint64_t guild_id, const char *feature, json_object *doc,
                    uint64_t updated_by, int expected_version, int *new_version)
{
    char gid[24], actor[24];
    const char *doc_text;
    int rc = GH_EPG, try, nv = 0;

    if (!ctx || guild_id == 0 || !valid_feature(feature) || !json_object_is_type(doc, json_type_object) ||
        expected_version < -1)
        return GH_EINVAL;
    if (!ctx->pg)
        return GH_EPG;
    snprintf(gid, sizeof(gid), "%llu", (unsigned long long)guild_id);
    snprintf(actor, sizeof(actor), "%llu", (unsigned long long)updated_by);
    doc_text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN);
    for (try = 0; try < SETTINGS_PUT_TRIES; try++) {
        rc = put_once(ctx, gid, feature, doc_text, updated_by ? actor : NULL, expected_version, &nv);
        if (rc != GH_EDUPLICATE)
            break;
    }
    if (rc == GH_EDUPLICATE)
        rc = GH_ECONFLICT;
    if (rc == GH_ENOTFOUND)
        slog(ctx, GH_LOG_WARN, "guild %s is not in guilds; settings %s not saved", gid, feature);
    if (rc != GH_OK)
        return rc;
    if (new_version)
        *new_version = nv;
    gh_settings_invalidate(ctx, guild_id, feature);
    return GH_OK;
}

int gh_settings_feature_enabled(struct gh_ctx *ctx, uint64_t guild_id, const char *feature,
                                int default_enabled)
{
    json_object *doc = NULL, *en = NULL;
    int version = 0, enabled = default_enabled ? 1 : 0;
    int rc;

    if (guild_id == 0) /* direct messages have no guild settings */
        return enabled;
    rc = gh_settings_get(ctx, guild_id, feature, &doc, &version);
    if (rc != GH_OK) {
        if (ctx)
            slog(ctx, GH_LOG_WARN, "guild %llu feature %s: settings unreadable (%s); using the default (%s)",
                 (unsigned long long)guild_id, feature ? feature : "?", gh_strerror(rc),
                 enabled ? "enabled" : "disabled");
        return enabled;
    }
    if (json_object_object_get_ex(doc, "enabled", &en) && json_object_is_type(en, json_type_boolean))
        enabled = json_object_get_boolean(en) ? 1 : 0;
    json_object_put(doc);
    return enabled;
}
