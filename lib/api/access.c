/* access.c - who may manage which guild from the dashboard (docs/security.md).
 *
 * A user reaches a guild when Guildhall is in it (an active guilds row) and
 * the user is its owner, has Administrator or Manage Server there (from
 * Discord's GET /users/@me/guilds, read with the user's OAuth token), or was
 * granted access (authorized_users). The union is the access model. The
 * user's guild list is kept in dashboard_users.guilds and in Redis
 * (bot:{global}:dash:guilds:<user>, 300 s), and read again from Discord when
 * older than 10 minutes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "api/internal.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "discord/rest.h"
#include "store/pg.h"
#include "store/redis.h"

#define MAX_GUILDS_JSON (1 << 20)

static int guilds_key(char *out, size_t n, uint64_t user_id)
{
    return gh_key_global(out, n, "dash", "guilds:%llu", (unsigned long long)user_id);
}

enum gh_access gh_access_from_entry(const json_object *entry)
{
    json_object *v = NULL;
    uint64_t perms = 0;
    const char *p;

    if (entry == NULL)
        return GH_ACCESS_NONE;
    if (json_object_object_get_ex(entry, "owner", &v) && json_object_get_boolean(v))
        return GH_ACCESS_OWNER;
    p = gh_json_get_str(entry, "permissions");
    if (p != NULL && gh_cstr_to_u64(p, &perms) == GH_OK &&
        (perms & (GH_PERM_ADMINISTRATOR | GH_PERM_MANAGE_GUILD)) != 0)
        return GH_ACCESS_ADMIN;
    return GH_ACCESS_NONE;
}

static void cache_guilds(struct gh_api_call *c, uint64_t user_id, const char *text)
{
    char key[128];
    if (c->ctx->redis == NULL || guilds_key(key, sizeof(key), user_id) != GH_OK)
        return;
    redisReply *r = gh_redis_cmd(c->ctx->redis, "SET %s %s EX %d", key, text, GH_USER_GUILDS_TTL_S);
    freeReplyObject(r);
}

/* Keeps what access needs of each partial guild. */
static json_object *trim_guilds(json_object *list)
{
    json_object *out = json_object_new_array();
    size_t n = json_object_array_length(list);
    for (size_t i = 0; i < n; i++) {
        json_object *g = json_object_array_get_idx(list, i);
        json_object *t = json_object_new_object();
        json_object *v = NULL;
        const char *id = gh_json_get_str(g, "id");
        if (id == NULL) {
            json_object_put(t);
            continue;
        }
        json_object_object_add(t, "id", json_object_new_string(id));
        json_object_object_add(t, "name", gh_api_str_or_null(gh_json_get_str(g, "name")));
        json_object_object_add(t, "icon", gh_api_str_or_null(gh_json_get_str(g, "icon")));
        json_object_object_add(
            t, "owner",
            json_object_new_boolean(json_object_object_get_ex(g, "owner", &v) && json_object_get_boolean(v)));
        json_object_object_add(t, "permissions",
                               json_object_new_string(gh_json_get_str(g, "permissions")
                                                          ? gh_json_get_str(g, "permissions")
                                                          : "0"));
        json_object_array_add(out, t);
    }
    return out;
}

int gh_access_store_guilds(struct gh_api_call *c, uint64_t user_id, json_object *guilds)
{
    char uid[24];
    json_object *t = trim_guilds(guilds);
    const char *text = json_object_to_json_string_ext(t, JSON_C_TO_STRING_PLAIN);
    const char *params[2] = {uid, text};
    (void)snprintf(uid, sizeof(uid), "%llu", (unsigned long long)user_id);
    int rc = gh_pg_command(
        c->ctx->pg, "UPDATE dashboard_users SET guilds = $2::jsonb, guilds_fetched_at = now() WHERE id = $1",
        2, params);
    if (rc == GH_OK)
        cache_guilds(c, user_id, text);
    json_object_put(t);
    return rc;
}

int gh_access_fetch_guilds(struct gh_api_call *c, const char *authorization, json_object **out)
{
    char path[96], after[24] = "";
    json_object *all = json_object_new_array();
    int rc = all ? GH_OK : GH_ENOMEM;

    *out = NULL;
    for (int page = 0; rc == GH_OK && page < GH_ACCESS_GUILD_PAGES; page++) {
        struct gh_rest_resp resp;
        json_object *list = NULL;
        size_t n = 0;

        memset(&resp, 0, sizeof(resp));
        (void)snprintf(path, sizeof(path), "/users/@me/guilds?limit=200%s%s", after[0] ? "&after=" : "", after);
        struct gh_rest_req req = {.method = "GET", .path = path, .authorization = authorization};
        rc = c->ctx->rest ? gh_api_user_call(c, &req, &resp) : GH_EUNAVAILABLE;
        if (rc == GH_OK && (gh_json_parse(resp.body, resp.body_len, 8, &list) != GH_OK ||
                            !json_object_is_type(list, json_type_array)))
            rc = GH_EJSON;
        if (rc != GH_OK)
            GH_WARN(&c->ctx->log, "access: GET %s with the user's token failed: %s", path,
                    resp.error[0] ? resp.error : gh_strerror(rc));
        gh_rest_resp_cleanup(&resp);
        if (rc == GH_OK) {
            n = json_object_array_length(list);
            for (size_t i = 0; i < n; i++)
                json_object_array_add(all, json_object_get(json_object_array_get_idx(list, i)));
            const char *last = n ? gh_json_get_str(json_object_array_get_idx(list, n - 1), "id") : NULL;
            if (n < 200 || !last || strlen(last) >= sizeof(after))
                n = 0; /* the last page */
            else
                (void)snprintf(after, sizeof(after), "%s", last);
        }
        json_object_put(list);
        if (rc == GH_OK && n == 0)
            break;
        if (rc == GH_OK && page == GH_ACCESS_GUILD_PAGES - 1)
            GH_WARN(&c->ctx->log, "access: user %llu is in more than %d guilds; only the first %d are read",
                    (unsigned long long)c->user_id, GH_ACCESS_GUILD_PAGES * 200, GH_ACCESS_GUILD_PAGES * 200);
    }
    if (rc != GH_OK) {
        json_object_put(all);
        return rc;
    }
    *out = all;
    return GH_OK;
}

/* Reads the list again from Discord with the user's token. */
static int refresh_from_discord(struct gh_api_call *c, const char *sealed)
{
    unsigned char key[32];
    char token[512];
    char auth[600];
    char aad[24];
    size_t tlen = 0;
    struct gh_rest_resp resp;
    json_object *list = NULL;
    int rc;

    memset(&resp, 0, sizeof(resp));
    (void)snprintf(aad, sizeof(aad), "%llu", (unsigned long long)c->user_id);
    if (sealed == NULL || gh_crypto_key_from_hex(c->ctx->cfg->encryption_key, key) != GH_OK ||
        gh_unseal(key, aad, sealed, token, sizeof(token), &tlen) != GH_OK) {
        GH_WARN(&c->ctx->log, "access: the stored token of user %llu cannot be unsealed",
                (unsigned long long)c->user_id);
        return GH_EUNAUTHORIZED;
    }
    (void)snprintf(auth, sizeof(auth), "Bearer %s", token);
    rc = gh_access_fetch_guilds(c, auth, &list);
    if (rc == GH_OK)
        rc = gh_access_store_guilds(c, c->user_id, list);
    else
        GH_WARN(&c->ctx->log, "access: refreshing the guilds of user %llu from Discord failed: %s",
                (unsigned long long)c->user_id, resp.error[0] ? resp.error : gh_strerror(rc));
    json_object_put(list);
    gh_rest_resp_cleanup(&resp);
    return rc;
}

int gh_access_load_guilds(struct gh_api_call *c)
{
    char key[128];
    char uid[24];
    const char *params[1] = {uid};
    PGresult *res = NULL;
    json_object *list = NULL;
    int rc = GH_OK;

    if (c->user_guilds != NULL)
        return GH_OK;
    if (c->ctx->redis && guilds_key(key, sizeof(key), c->user_id) == GH_OK) {
        redisReply *r = gh_redis_cmd(c->ctx->redis, "GET %s", key);
        if (r && r->type == REDIS_REPLY_STRING && gh_json_parse(r->str, r->len, 8, &list) == GH_OK &&
            json_object_is_type(list, json_type_array)) {
            freeReplyObject(r);
            c->user_guilds = list;
            return GH_OK;
        }
        json_object_put(list);
        list = NULL;
        freeReplyObject(r);
    }
    (void)snprintf(uid, sizeof(uid), "%llu", (unsigned long long)c->user_id);
    res = gh_pg_exec_prepared(
        c->ctx->pg, "api_user_guilds",
        "SELECT guilds::text, coalesce(guilds_fetched_at > now() - interval '600 seconds', "
        "false), access_token_enc FROM dashboard_users WHERE id = $1",
        1, params);
    if (res == NULL)
        return GH_EPG;
    if (PQntuples(res) == 0) {
        c->user_guilds = json_object_new_array();
        goto out;
    }
    if (PQgetvalue(res, 0, 1)[0] != 't' &&
        refresh_from_discord(c, PQgetisnull(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2)) == GH_OK &&
        c->ctx->redis && guilds_key(key, sizeof(key), c->user_id) == GH_OK) {
        /* stored and cached by the refresh: read back what it wrote */
        PQclear(res);
        res = gh_pg_exec_prepared(c->ctx->pg, "api_user_guilds_only",
                                  "SELECT guilds::text FROM dashboard_users WHERE id = $1", 1, params);
        if (res == NULL)
            return GH_EPG;
    }
    if (PQntuples(res) == 1 &&
        gh_json_parse(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), 8, &list) == GH_OK &&
        json_object_is_type(list, json_type_array)) {
        c->user_guilds = list;
        cache_guilds(c, c->user_id, PQgetvalue(res, 0, 0));
    } else {
        json_object_put(list);
        c->user_guilds = json_object_new_array();
    }
out:
    PQclear(res);
    return rc;
}

static json_object *find_entry(json_object *list, uint64_t guild_id)
{
    char gid[24];
    size_t n = list ? json_object_array_length(list) : 0;
    (void)snprintf(gid, sizeof(gid), "%llu", (unsigned long long)guild_id);
    for (size_t i = 0; i < n; i++) {
        json_object *g = json_object_array_get_idx(list, i);
        const char *id = gh_json_get_str(g, "id");
        if (id && strcmp(id, gid) == 0)
            return g;
    }
    return NULL;
}

static int check_uncached(struct gh_api_call *c);

int gh_access_key(char *out, size_t n, uint64_t guild_id, uint64_t user_id)
{
    return gh_key_guild(out, n, guild_id, "dash", "access:%llu", (unsigned long long)user_id);
}

void gh_access_forget(struct gh_api_call *c, uint64_t guild_id, uint64_t user_id)
{
    char key[128];
    if (c->ctx->redis == NULL || gh_access_key(key, sizeof(key), guild_id, user_id) != GH_OK)
        return;
    redisReply *r = gh_redis_cmd(c->ctx->redis, "DEL %s", key);
    if (r == NULL)
        GH_ERROR(&c->ctx->log,
                 "access: Redis down: the cached access of user %llu to guild %llu lasts until its "
                 "TTL (%d s)",
                 (unsigned long long)user_id, (unsigned long long)guild_id, GH_ACCESS_CACHE_TTL_S);
    freeReplyObject(r);
}

json_object *gh_access_entry(struct gh_api_call *c)
{
    if (c->guild_entry == NULL && gh_access_load_guilds(c) == GH_OK)
        c->guild_entry = find_entry(c->user_guilds, c->guild_id);
    return c->guild_entry;
}

int gh_access_check(struct gh_api_call *c)
{
    char key[128];
    int have_key = c->ctx->redis != NULL && gh_access_key(key, sizeof(key), c->guild_id, c->user_id) == GH_OK;
    int rc;

    /* A granted decision is cached briefly (grants and revocations drop it). */
    if (c->pre_access >= GH_ACCESS_GRANTED && c->pre_access <= GH_ACCESS_OWNER) {
        c->access = (enum gh_access)c->pre_access;
        return GH_OK;
    }
    if (have_key && c->pre_access < 0) {
        redisReply *r = gh_redis_cmd(c->ctx->redis, "GET %s", key);
        if (r && r->type == REDIS_REPLY_STRING && r->len == 1 && r->str[0] >= '1' && r->str[0] <= '3') {
            c->access = (enum gh_access)(r->str[0] - '0');
            freeReplyObject(r);
            return GH_OK;
        }
        freeReplyObject(r);
    }
    rc = check_uncached(c);
    if (rc == GH_OK && have_key) {
        redisReply *r =
            gh_redis_cmd(c->ctx->redis, "SET %s %d EX %d", key, (int)c->access, GH_ACCESS_CACHE_TTL_S);
        freeReplyObject(r);
    }
    return rc;
}

static int check_uncached(struct gh_api_call *c)
{
    char gid[24];
    char uid[24];
    const char *params[2] = {gid, uid};
    PGresult *res;
    int active;
    int granted;
    int rc;

    (void)snprintf(gid, sizeof(gid), "%llu", (unsigned long long)c->guild_id);
    (void)snprintf(uid, sizeof(uid), "%llu", (unsigned long long)c->user_id);
    res = gh_pg_exec_prepared(
        c->ctx->pg, "api_guild_access",
        "SELECT g.is_active, EXISTS (SELECT 1 FROM authorized_users a WHERE a.guild_id = g.id "
        "AND a.user_id = $2 AND a.deleted_at IS NULL) FROM guilds g WHERE g.id = $1",
        2, params);
    if (res == NULL)
        return GH_EPG;
    active = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
    granted = active && PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);
    if (!active)
        return GH_EFORBIDDEN;
    rc = gh_access_load_guilds(c);
    if (rc != GH_OK)
        return rc;
    c->guild_entry = find_entry(c->user_guilds, c->guild_id);
    c->access = gh_access_from_entry(c->guild_entry);
    if (c->access == GH_ACCESS_NONE && granted)
        c->access = GH_ACCESS_GRANTED;
    return c->access == GH_ACCESS_NONE ? GH_EFORBIDDEN : GH_OK;
}

int gh_api_record_install(struct gh_ctx *ctx, uint64_t guild_id, const char *name, uint64_t user_id)
{
    char gid[24];
    char uid[24];
    const char *params[3] = {gid, name, user_id ? uid : NULL};
    int rc;

    (void)snprintf(gid, sizeof(gid), "%llu", (unsigned long long)guild_id);
    (void)snprintf(uid, sizeof(uid), "%llu", (unsigned long long)user_id);
    if ((rc = gh_pg_begin(ctx->pg)) != GH_OK)
        return rc;
    rc = gh_pg_command(
        ctx->pg,
        "INSERT INTO guilds (id, name, added_by) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE "
        "SET name = coalesce(EXCLUDED.name, guilds.name), is_active = true, deleted_at = NULL, "
        "added_by = coalesce(guilds.added_by, EXCLUDED.added_by), "
        "added_at = CASE WHEN guilds.is_active THEN guilds.added_at ELSE now() END",
        3, params);
    if (rc == GH_OK && user_id != 0) {
        const char *p2[2] = {gid, uid};
        rc = gh_pg_command(
            ctx->pg,
            "INSERT INTO authorized_users (guild_id, user_id, is_installer) VALUES ($1, $2, true) "
            "ON CONFLICT (guild_id, user_id) DO UPDATE SET is_installer = true, deleted_at = NULL",
            2, p2);
    }
    if (rc == GH_OK && user_id != 0) {
        const char *p3[3] = {gid, uid, name};
        rc = gh_pg_command(
            ctx->pg,
            "INSERT INTO audit_log (guild_id, actor_id, action, target, after) VALUES ($1::bigint, $2, "
            "'guild.install', $1::text, jsonb_build_object('name', $3::text))",
            3, p3);
    }
    if (rc == GH_OK)
        rc = gh_pg_commit(ctx->pg);
    else
        (void)gh_pg_rollback(ctx->pg);
    if (rc == GH_OK)
        GH_INFO(&ctx->log, "install: guild %llu (%s) installed by user %llu", (unsigned long long)guild_id,
                name ? name : "?", (unsigned long long)user_id);
    else
        GH_ERROR(&ctx->log, "install: recording guild %llu failed", (unsigned long long)guild_id);
    return rc;
}
